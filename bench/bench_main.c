#define _DEFAULT_SOURCE /* wait4 */
/* popsteer benchmark suite (`make bench`): the speed of every stage, side by side for each thread
 * count, GFLOP/s as a ratio to the machine's sgemm peak measured in the same run, and the peak
 * resident memory of each stage.
 *
 * Every stage runs in a forked child, so its peak RSS (wait4 rusage) is its own and no stage
 * warms another's caches or heap. Models are freshly initialised (speed does not depend on the
 * weights' values); the steering plan is a deterministic synthetic one over all latents.
 *
 * FLOPs are counted from the model shapes, only for the work the model needs (docs/performance.md):
 *   one layer over n real positions: n (8 d^2 + 4 d F) for the Linear layers
 *                                    + 2 d n (n+1) for QK^T and PV over the causal pairs;
 *   scores / logits: 2 d V per target (V = n_items + 1);
 *   training = 3 x forward (backward = two products per forward product);
 *   a user vector: every layer but the last over its n positions, the last layer's K/V
 *   projection (4 d^2 per position) and the rest of that layer for the last position only;
 *   the SAE's training vectors: per user one pass over its first-window prefixes (every layer
 *   over the longest), then a user vector per later (sliding-window) prefix;
 *   the probe: a user vector and the SAE encoder (2 d m) per synthetic and per real user, the
 *   encoder per item.
 * Padding positions, the skipped (future) attention pairs and the last layer's unused rows are
 * not counted, so GFLOP/s is useful work per second.
 *
 * sgemm peak: the best of every GEMM backend popsteer can run here (src/nn/gemm_backend.c: our
 * own kernels, OpenBLAS with the kernels popsteer loads it with, BLIS), each single-threaded per
 * call with the rows shared out between the threads, over a few shapes, with the stage's thread
 * count. The ratio is to the largest.
 *
 * Usage: bench_main DATA.inter [--threads N] [--epochs N] [--json OUT] [--only a,b,...]
 *        [--probe-cap N] [--label NAME] [--targets 1]
 * (--epochs: SASRec epochs to train, default 2, the fastest reported; --targets 1 ends with the
 * issues' targets, met or missed, for the 2-thread runs on ML-1M-sized data; --targets 2 with
 * issue 12's Last.fm target.) */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"
#include "util/clock.h"
#include "popsteer/dataset.h"
#include "popsteer/evaluate.h"
#include "popsteer/popsteer.h"
#include "popsteer/rerank.h"
#include "popsteer/sae.h"
#include "popsteer/steer.h"
#include "popsteer/train.h"

#define MAX_RESULTS 16

typedef struct result {
    char name[48];
    char unit[24];
    double seconds; /* the timed section */
    double work;    /* units of work done in it (targets, users, vectors ...) */
    double flops;   /* counted FLOPs (0 if not counted) */
    double value;   /* for stages that report a value instead of a rate (0 = none) */
    double cpu;     /* CPU seconds of all threads over the timed section */
} result;

typedef struct stage_out {
    int n;
    result r[MAX_RESULTS];
    int ok;
} stage_out;

typedef struct bench_opts {
    const char *data;
    int threads;
    int epochs;
    int64_t probe_cap;
} bench_opts;

/* CPU time of the whole process (every thread), to see spinning and competition for the CPUs. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static double g_cpu0; /* CPU time at the start of the current timed section */

/* Starts a timed section: returns the wall clock. */
static double tic(void)
{
    g_cpu0 = cpu_now();
    return ps_now_seconds();
}

static result *add(stage_out *o, const char *name, const char *unit, double seconds, double work, double flops)
{
    if (o->n >= MAX_RESULTS)
        return NULL;
    result *r = &o->r[o->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    r->seconds = seconds;
    r->work = work;
    r->flops = flops;
    r->cpu = cpu_now() - g_cpu0;
    return r;
}

/* ---------- sgemm peak ---------- */

static void fill(float *p, size_t n, int mod)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i % (size_t)mod) * 0.01f - 0.02f;
}

/* Best GFLOP/s of C [M,N] = A [M,K] B [K,N] on one backend (PS_GEMM_*), the rows split between
 * the threads; 0 when the backend is not available. */
static double gemm_gflops(int backend, int M, int N, int K, int threads)
{
    if (!ps_nn_gemm_available(backend))
        return 0;
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N),
          *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C) {
        fprintf(stderr, "bench: no memory for the sgemm peak (%dx%dx%d)\n", M, N, K);
        free(A), free(B), free(C);
        return 0;
    }
    fill(A, (size_t)M * K, 7), fill(B, (size_t)K * N, 5);
    double flop = 2.0 * M * N * K, best = 1e30;
    int reps = (int)(3e9 / flop) + 1;
    for (int trial = 0; trial < 6; trial++) {
        double t0 = ps_now_seconds();
        for (int r = 0; r < reps; r++) {
#pragma omp parallel num_threads(threads)
            {
                int lo, hi;
                ps_nn_split(M, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
                if (backend == PS_GEMM_OWN)
                    ps_nn_gemm_own(hi - lo, N, K, A + (size_t)lo * K, K, 1, B, N, C + (size_t)lo * N, N, 1.0f, NULL,
                                   0);
                else if (hi > lo)
                    ps_nn_gemm_lib(backend, hi - lo, N, K, A + (size_t)lo * K, K, 1, B, N, C + (size_t)lo * N, N, 1.0f,
                                   NULL, 0);
            }
        }
        double t = (ps_now_seconds() - t0) / reps;
        best = t < best ? t : best;
    }
    free(A), free(B), free(C);
    return flop / best / 1e9;
}

static const int PEAK_SHAPES[][3] = {{2048, 2048, 2048}, {4096, 3417, 64}, {8192, 256, 256}, {12800, 192, 64}};
#define N_PEAK_SHAPES (int)(sizeof PEAK_SHAPES / sizeof PEAK_SHAPES[0])

static double peak_of(int backend, int threads)
{
    double best = 0;
    for (int s = 0; s < N_PEAK_SHAPES; s++) {
        double g = gemm_gflops(backend, PEAK_SHAPES[s][0], PEAK_SHAPES[s][1], PEAK_SHAPES[s][2], threads);
        best = g > best ? g : best;
    }
    return best;
}

/* ---------- helpers for stages ---------- */

static int load(const char *data, ps_dataset *ds)
{
    ps_load_options o;
    ps_load_options_init(&o);
    ps_error err;
    if (ps_dataset_load(ds, data, &o, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static ps_sasrec *make_model(const ps_dataset *ds)
{
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, ds->n_items);
    ps_sasrec *m;
    ps_error err;
    if (ps_sasrec_create(&m, &cfg, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return NULL;
    }
    ps_sasrec_init_weights(m, 1);
    return m;
}

/* Forward FLOPs of one layer over n positions (see the top of the file). */
static double layer_flops(const ps_sasrec_config *c, double n)
{
    double d = c->d, F = c->d_ff;
    return n * (8 * d * d + 4 * d * F) + 2 * d * n * (n + 1);
}

/* A user vector from a prefix of n positions. */
static double user_vector_flops(const ps_sasrec_config *c, double n)
{
    double d = c->d, F = c->d_ff;
    double last = n * 4 * d * d + (4 * d * d + 4 * d * F) + 4 * d * n;
    return (c->n_layers - 1) * layer_flops(c, n) + last;
}

static int prefix_len(const ps_dataset *ds, ps_sample s)
{
    int n;
    ps_sample_prefix(ds, s, &n);
    return n < ds->max_seq_len ? n : ds->max_seq_len;
}

/* The SAE's training vectors as ps_training_vectors computes them: per user, one pass over its
 * first-window prefixes (every layer over the longest), then one user vector per later prefix. */
static double training_vectors_flops(const ps_dataset *ds, const ps_sasrec_config *c)
{
    const int L = c->max_len;
    double f = 0;
    int first_window = 0; /* longest first-window prefix of the current user */
    for (int64_t i = 0; i < ds->n_train; i++) {
        const ps_sample s = ds->train[i];
        if (s.pos <= L)
            first_window = s.pos;
        else
            f += user_vector_flops(c, L);
        if (i + 1 == ds->n_train || ds->train[i + 1].user != s.user) {
            f += c->n_layers * layer_flops(c, first_window);
            first_window = 0;
        }
    }
    return f;
}

static double eval_flops(const ps_dataset *ds, const ps_sasrec_config *c, const ps_sample *samples, int64_t n)
{
    double f = 0;
    for (int64_t i = 0; i < n; i++)
        f += user_vector_flops(c, prefix_len(ds, samples[i])) + 2.0 * c->d * (c->n_items + 1.0);
    return f;
}

static ps_sae *make_sae(void)
{
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, PS_SAE_DEFAULT_D_IN, PS_SAE_DEFAULT_SCALE);
    ps_error err;
    ps_sae *sae = ps_sae_create(&cfg, &err);
    if (!sae) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return NULL;
    }
    ps_sae_init(sae, 7);
    return sae;
}

/* What the stages start from: the data, a fresh model and (sae != NULL) a fresh SAE. The stage
 * runs in a child that exits after it, but stage_teardown still frees them: the code under test
 * must not need the exit to clean up. */
static int stage_setup(const bench_opts *o, ps_dataset *ds, ps_sasrec **m, ps_sae **sae)
{
    if (load(o->data, ds))
        return -1;
    *m = make_model(ds);
    if (sae)
        *sae = make_sae();
    return *m && (!sae || *sae) ? 0 : -1;
}

static void stage_teardown(ps_dataset *ds, ps_sasrec *m, ps_sae *sae)
{
    ps_sae_free(sae);
    ps_sasrec_free(m);
    ps_dataset_free(ds);
}

/* ---------- stages ---------- */

typedef int (*stage_fn)(const bench_opts *o, stage_out *out);

static int stage_load(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    double t0 = tic();
    if (load(o->data, &ds))
        return -1;
    add(out, "load", "rows/s", ps_now_seconds() - t0, (double)ds.n_inter, 0);
    ps_dataset_free(&ds);
    return 0;
}

/* The fastest epoch: on a shared machine every epoch takes at least the code's time, and the
 * slower ones also someone else's. */
typedef struct epoch_probe {
    double best_seconds;
    int64_t targets;
} epoch_probe;

static void on_epoch(void *ctx, const ps_epoch_report *e)
{
    epoch_probe *p = ctx;
    if (p->targets == 0 || e->train_seconds < p->best_seconds)
        p->best_seconds = e->train_seconds;
    p->targets = e->targets;
}

/* Useful FLOPs of one training epoch in the default window layout. */
static double train_epoch_flops(const ps_dataset *ds, const ps_sasrec_config *c, const ps_train_options *o,
                                int64_t *targets_out)
{
    const int L = c->max_len;
    double f = 0;
    int64_t targets = 0;
    for (int32_t u = 1; u <= ds->n_users; u++) {
        int64_t last = (int64_t)ps_user_len(ds, u) - 3, covered = last < L ? last : L;
        if (last < 1)
            continue;
        f += c->n_layers * layer_flops(c, (double)covered); /* first window: covered positions */
        targets += covered;
        while (covered < last) {
            int64_t end = covered + o->window_stride < last ? covered + o->window_stride : last;
            f += c->n_layers * layer_flops(c, L);
            targets += end - covered;
            covered = end;
        }
    }
    f += (double)targets * 2.0 * c->d * (c->n_items + 1.0);
    *targets_out = targets;
    return 3.0 * f;
}

static int stage_train(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    ps_sasrec *m;
    if (stage_setup(o, &ds, &m, NULL))
        return -1;
    ps_train_options to;
    ps_train_options_init(&to);
    to.max_epochs = to.min_epochs = o->epochs;
    epoch_probe p = {0, 0};
    to.on_epoch = on_epoch;
    to.cb_ctx = &p;
    ps_train_result res;
    ps_error err;
    tic();
    if (ps_sasrec_train(m, &ds, &to, &res, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    int64_t targets;
    double flops = train_epoch_flops(&ds, &m->cfg, &to, &targets);
    add(out, "sasrec_train_epoch", "targets/s", p.best_seconds, (double)p.targets, flops);
    stage_teardown(&ds, m, NULL);
    return 0;
}

/* The best of EVAL_REPEATS evaluations (a quarter-second run is easily hit by someone else's
 * burst); the CPU time reported is that of the last. A filter with state across users (P-MMF)
 * carries it into the next repeat, which does not change its work per user. */
#define EVAL_REPEATS 3

static int run_eval(const ps_dataset *ds, const ps_scorer *sc, const ps_list_filter *filter, double *seconds)
{
    ps_eval_options eo;
    ps_eval_options_init(&eo);
    eo.split = PS_SPLIT_TEST;
    eo.filter = filter;
    ps_metrics met;
    ps_error err;
    *seconds = 1e30;
    for (int rep = 0; rep < EVAL_REPEATS; rep++) {
        double t0 = tic();
        if (ps_evaluate(ds, sc, &eo, &met, &err) != PS_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        double t = ps_now_seconds() - t0;
        *seconds = t < *seconds ? t : *seconds;
    }
    return 0;
}

/* A deterministic plan over every latent (speed does not depend on the probe's values). */
static int synthetic_plan(int m, ps_steer_plan *plan)
{
    double *d = malloc(sizeof(double) * m), *sp = malloc(sizeof(double) * m), *su = malloc(sizeof(double) * m);
    if (!d || !sp || !su) {
        free(d), free(sp), free(su);
        return -1;
    }
    for (int j = 0; j < m; j++) {
        d[j] = sin(0.37 * j + 1.0);
        sp[j] = 0.5 + 0.25 * cos(0.11 * j);
        su[j] = 0.5 + 0.25 * sin(0.13 * j);
    }
    ps_error err;
    int rc = ps_steer_plan_make(d, sp, su, m, m, 1.5, plan, &err);
    if (rc != PS_OK)
        fprintf(stderr, "bench: %s\n", err.msg);
    free(d), free(sp), free(su);
    return rc == PS_OK ? 0 : -1;
}

/* Full-ranking evaluation of every test user: plain, SAE-reconstructed (alpha 0) and steered. */
static int stage_eval(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    if (stage_setup(o, &ds, &m, &sae))
        return -1;
    ps_error err;
    double flops = eval_flops(&ds, &m->cfg, ds.test, ds.n_users), t;
    ps_sasrec_scorer s;
    if (ps_sasrec_scorer_init(&s, m, 512, &err) != PS_OK)
        return -1;
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&s);
    if (run_eval(&ds, &sc, NULL, &t))
        return -1;
    add(out, "eval_all_users", "users/s", t, ds.n_users, flops);
    ps_sasrec_scorer_free(&s);

    ps_steer_plan plan;
    if (synthetic_plan(sae->cfg.n_latents, &plan))
        return -1;
    for (int steered = 0; steered < 2; steered++) {
        ps_steer_scorer ss;
        if (ps_steer_scorer_init(&ss, m, sae, steered ? &plan : NULL, 512, &err) != PS_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        ps_scorer sc2 = ps_steer_scorer_as_scorer(&ss);
        if (run_eval(&ds, &sc2, NULL, &t))
            return -1;
        add(out, steered ? "eval_steered" : "eval_sae_alpha0", "users/s", t, ds.n_users, 0);
        ps_steer_scorer_free(&ss);
    }
    ps_steer_plan_free(&plan);
    stage_teardown(&ds, m, sae);
    return 0;
}

/* Full-ranking evaluation with each re-ranker (default parameters) on the top-100. */
static int stage_rerank(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    ps_sasrec *m;
    if (stage_setup(o, &ds, &m, NULL))
        return -1;
    ps_error err;
    ps_sasrec_scorer s;
    if (ps_sasrec_scorer_init(&s, m, 512, &err) != PS_OK)
        return -1;
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&s);
    for (int i = 0; i < ps_rerank_method_count(); i++) {
        const ps_rerank_method_info *info = ps_rerank_method_at(i);
        ps_rerank_ctx ctx = {ds.n_items, ds.label, ds.train_count, 10, PS_RERANK_DEFAULT_L, 42, ds.n_users};
        ps_reranker *r = ps_reranker_create(info->name, &ctx, NULL, 0, &err);
        ps_rerank_filter f;
        if (!r || ps_rerank_filter_init(&f, r, &ds, PS_RERANK_DEFAULT_L, &err) != PS_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        double t;
        if (run_eval(&ds, &sc, &f.filter, &t))
            return -1;
        char name[48];
        snprintf(name, sizeof name, "eval_rerank_%s", info->name);
        add(out, name, "users/s", t, ds.n_users, 0);
        ps_rerank_filter_free(&f);
        ps_reranker_free(r);
    }
    ps_sasrec_scorer_free(&s);
    stage_teardown(&ds, m, NULL);
    return 0;
}

/* SASRec user vectors of every training prefix, then one SAE epoch on them. */
static int stage_sae(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    if (stage_setup(o, &ds, &m, &sae))
        return -1;
    const int d = m->cfg.d;
    float *X = malloc(sizeof(float) * (size_t)ds.n_train * d), *Xv = malloc(sizeof(float) * (size_t)ds.n_users * d);
    if (!X || !Xv)
        return -1;
    ps_error err;
    double t0 = tic();
    if (ps_training_vectors(m, &ds, X, NULL, NULL, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    double t = ps_now_seconds() - t0;
    add(out, "user_vectors_train", "vectors/s", t, (double)ds.n_train, training_vectors_flops(&ds, &m->cfg));
    if (ps_user_vectors(m, &ds, ds.valid, ds.n_users, Xv, NULL, NULL, &err) != PS_OK)
        return -1;
    ps_sae_train_options so;
    ps_sae_train_options_init(&so);
    so.max_epochs = 1;
    ps_sae_train_result res;
    t0 = tic();
    if (ps_sae_train(sae, X, ds.n_train, Xv, ds.n_users, &so, NULL, NULL, &res, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    t = ps_now_seconds() - t0;
    /* encoder + decoder GEMM work per vector: 2 d m (encode) + 2 k d (decode) forward, x3 */
    double fv = 3.0 * (2.0 * d * sae->cfg.n_latents + 2.0 * sae->cfg.k * d);
    add(out, "sae_train_epoch", "vectors/s", t, (double)ds.n_train, fv * (double)ds.n_train);
    free(X), free(Xv);
    stage_teardown(&ds, m, sae);
    return 0;
}

/* The probe's work (ps_probe_run with default options): a user vector and the SAE's encoder
 * (2 d m) per synthetic user of both groups, the same per real user for the firing rates (its
 * validation prefix), and the encoder on every item embedding for the top items. 0 when the
 * synthetic users cannot be rebuilt. */
static double probe_flops(const ps_dataset *ds, const ps_sasrec_config *c, int m, int64_t cap, uint64_t seed)
{
    ps_probe_users u;
    ps_error err;
    if (ps_probe_users_make(ds, cap, seed, &u, &err) != PS_OK)
        return 0;
    const double enc = 2.0 * c->d * m;
    double f = 0;
    for (int64_t r = 0; r < u.n; r++)
        f += user_vector_flops(c, u.len[r]) + enc;
    ps_probe_users_free(&u);
    for (int64_t i = 0; i < ds->n_users; i++)
        f += user_vector_flops(c, prefix_len(ds, ds->valid[i])) + enc;
    return f + (double)ds->n_items * enc;
}

static int stage_probe(const bench_opts *o, stage_out *out)
{
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    if (stage_setup(o, &ds, &m, &sae))
        return -1;
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.cap = o->probe_cap;
    ps_probe_result r;
    ps_error err;
    double t0 = tic();
    if (ps_probe_run(m, sae, &ds, &po, &r, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    double t = ps_now_seconds() - t0;
    add(out, "probe", "synth users/s", t, 2.0 * (double)r.n_synthetic,
        probe_flops(&ds, &m->cfg, sae->cfg.n_latents, po.cap, po.seed));
    ps_probe_result_free(&r);
    stage_teardown(&ds, m, sae);
    return 0;
}

typedef struct stage {
    const char *name;
    stage_fn fn;
} stage;

static int stage_peaks(const bench_opts *o, stage_out *out)
{
    for (int b = 0; b < PS_GEMM_NBACKENDS; b++)
        add(out, ps_nn_gemm_backend_name(b), "GFLOP/s", 0, 0, 0)->value = peak_of(b, o->threads);
    return 0;
}
static const stage PEAK_STAGE = {"peaks", stage_peaks};

static const stage STAGES[] = {
    {"load", stage_load},   {"train", stage_train}, {"eval", stage_eval},
    {"rerank", stage_rerank}, {"sae", stage_sae},     {"probe", stage_probe},
};
#define N_STAGES (int)(sizeof STAGES / sizeof STAGES[0])

static stage_out run_stage(const stage *s, const bench_opts *o, long *peak_kb)
{
    stage_out r;
    memset(&r, 0, sizeof r);
    *peak_kb = 0;
    int fd[2];
    if (pipe(fd) != 0)
        return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        omp_set_num_threads(o->threads);
        stage_out cr;
        memset(&cr, 0, sizeof cr);
        cr.ok = s->fn(o, &cr) == 0;
        ssize_t w = write(fd[1], &cr, sizeof cr);
        _exit(w == (ssize_t)sizeof cr ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (pid > 0 && got < sizeof r) {
        ssize_t n = read(fd[0], (char *)&r + got, sizeof r - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || got != sizeof r)
        r.ok = 0;
    *peak_kb = ru.ru_maxrss;
    return r;
}

/* Every printed row, for the targets summary. */
typedef struct kept {
    char name[48];
    int threads;
    double seconds, gflops, ratio, peak_mb;
} kept;
static kept g_kept[256];
static int g_nkept;

static const kept *find_kept(const char *name, int threads)
{
    for (int i = 0; i < g_nkept; i++)
        if (!strcmp(g_kept[i].name, name) && g_kept[i].threads == threads)
            return &g_kept[i];
    return NULL;
}

static void target_line(const char *what, const char *fmt_value, double value, int ok, int known)
{
    char v[64];
    if (known)
        snprintf(v, sizeof v, fmt_value, value);
    else
        snprintf(v, sizeof v, "n/a");
    printf("  %-58s %-14s %s\n", what, v, !known ? "NOT MEASURED" : ok ? "met" : "MISSED");
}

/* A time (or a fraction, when at_least) against its target: met, or missed by how much. */
static void limit_line(const char *what, const char *unit, double value, double limit, int at_least, int known)
{
    char v[64];
    if (known)
        snprintf(v, sizeof v, "%.*f%s", !strcmp(unit, "%") ? 0 : 3, value, unit);
    else
        snprintf(v, sizeof v, "n/a");
    const int ok = at_least ? value >= limit : value <= limit;
    if (!known || ok)
        printf("  %-58s %-14s %s\n", what, v, !known ? "NOT MEASURED" : "met");
    else if (at_least)
        printf("  %-58s %-14s MISSED by %.0f points\n", what, v, limit - value);
    else
        printf("  %-58s %-14s MISSED by %.0f %%\n", what, v, 100 * (value / limit - 1));
}

/* Issue 12's targets, set for a 2-core AVX2 machine (2 threads): printed on every machine,
 * which is the only way to see how far a given one is from them. */
static void print_issue12_targets(int lastfm)
{
    if (lastfm) {
        const kept *tr = find_kept("sasrec_train_epoch", 2);
        printf("\nissue 12 target (2 threads, Last.fm; set for a 2-core AVX2 machine):\n");
        limit_line("SASRec epoch on Last.fm <= 1.2 s", " s", tr ? tr->seconds : 0, 1.2, 0, tr != NULL);
        return;
    }
    static const struct {
        const char *stage, *what;
        double limit;
    } T[] = {{"sasrec_train_epoch", "training epoch <= 20 s", 20},
             {"user_vectors_train", "training vectors for the SAE <= 40 s", 40},
             {"sae_train_epoch", "SAE epoch <= 6 s", 6},
             {"probe", "probe <= 8 s", 8},
             {"eval_all_users", "evaluation of all users <= 0.4 s", 0.4}};
    printf("\nissue 12 targets (2 threads, ML-1M-sized; set for a 2-core AVX2 machine):\n");
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        const kept *k = find_kept(T[i].stage, 2);
        limit_line(T[i].what, " s", k ? k->seconds : 0, T[i].limit, 0, k != NULL);
    }
    static const char *const HEAVY[] = {"sasrec_train_epoch", "eval_all_users", "user_vectors_train",
                                        "sae_train_epoch", "probe"};
    for (size_t i = 0; i < sizeof HEAVY / sizeof HEAVY[0]; i++) {
        const kept *k = find_kept(HEAVY[i], 2);
        char what[96];
        snprintf(what, sizeof what, "%s >= 60%% of the best sgemm in the run", HEAVY[i]);
        limit_line(what, "%", k ? 100 * k->ratio : 0, 60, 1, k != NULL);
    }
}

/* The issue's targets (2 threads, ML-1M-sized data, 64-d model). */
static void print_targets(void)
{
    const kept *tr2 = find_kept("sasrec_train_epoch", 2), *tr1 = find_kept("sasrec_train_epoch", 1);
    const kept *ev = find_kept("eval_all_users", 2), *st = find_kept("eval_steered", 2);
    const kept *sae = find_kept("sae_train_epoch", 2), *pr = find_kept("probe", 2);
    printf("\ntargets (2 threads):\n");
    target_line("SASRec training >= 50% of the measured sgemm peak (epoch)", "%.0f%%", tr2 ? 100 * tr2->ratio : 0,
                tr2 && tr2->ratio >= 0.5, tr2 != NULL);
    target_line("SASRec epoch <= 30 s", "%.2f s", tr2 ? tr2->seconds : 0, tr2 && tr2->seconds <= 30, tr2 != NULL);
    target_line("full-ranking eval of all users <= 1.5 s", "%.3f s", ev ? ev->seconds : 0, ev && ev->seconds <= 1.5,
                ev != NULL);
    target_line("steering adds <= 20 % to the evaluation", "+%.0f%%",
                ev && st ? 100 * (st->seconds / ev->seconds - 1) : 0, ev && st && st->seconds <= 1.2 * ev->seconds,
                ev && st);
    target_line("SAE training epoch <= 10 s", "%.2f s", sae ? sae->seconds : 0, sae && sae->seconds <= 10, sae != NULL);
    target_line("probe <= 10 s", "%.2f s", pr ? pr->seconds : 0, pr && pr->seconds <= 10, pr != NULL);
    double worst = 0;
    for (int i = 0; i < g_nkept; i++)
        worst = g_kept[i].peak_mb > worst ? g_kept[i].peak_mb : worst;
    target_line("peak resident memory of every stage <= 1 GB", "%.0f MB", worst, worst <= 1024, g_nkept > 0);
    target_line("2 threads >= 1.7x faster than 1 on training", "%.2fx", tr1 && tr2 ? tr1->seconds / tr2->seconds : 0,
                tr1 && tr2 && tr1->seconds >= 1.7 * tr2->seconds, tr1 && tr2);
}

static void measure_peaks(const bench_opts *o, double pk[PS_GEMM_NBACKENDS])
{
    /* in a child: a parent that ever ran an OpenMP region would leave its forked children a
     * thread pool whose threads do not exist (libgomp is not fork-safe) */
    long unused_kb;
    stage_out r = run_stage(&PEAK_STAGE, o, &unused_kb);
    for (int b = 0; b < PS_GEMM_NBACKENDS; b++)
        pk[b] = r.n == PS_GEMM_NBACKENDS ? r.r[b].value : 0;
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            v += *v == ' ';
            snprintf(out, n, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    fclose(f);
}

static double loadavg(void)
{
    double l[1] = {0};
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_main DATA.inter [--threads N] [--epochs N] [--json OUT] [--only a,b] "
                        "[--probe-cap N] [--label NAME] [--targets 1]\n");
        return 2;
    }
    bench_opts o = {argv[1], 1, 2, 86016};
    const char *json = NULL, *only = NULL, *label = argv[1];
    int targets = 0;
    int threads_list[2] = {1, 2}, n_threads = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) {
            threads_list[0] = atoi(argv[i + 1]);
            n_threads = 1;
        } else if (!strcmp(argv[i], "--epochs")) {
            o.epochs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--json")) {
            json = argv[i + 1];
        } else if (!strcmp(argv[i], "--only")) {
            only = argv[i + 1];
        } else if (!strcmp(argv[i], "--probe-cap")) {
            o.probe_cap = atoll(argv[i + 1]);
        } else if (!strcmp(argv[i], "--label")) {
            label = argv[i + 1];
        } else if (!strcmp(argv[i], "--targets")) {
            targets = atoi(argv[i + 1]);
        }
    }
    FILE *js = json ? fopen(json, "w") : NULL;
    if (json && !js)
        fprintf(stderr, "bench: %s: cannot create; no JSON written\n", json);
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    /* the GEMM backends are chosen (or read from the cache) in a child, like every stage: the
     * parent must not start OpenMP threads before it forks */
    char backends[512] = "", libs[3][200], notes[1024] = "";
    {
        int fd[2];
        if (pipe(fd) == 0) {
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                close(fd[0]);
                char buf[512 + 3 * 200 + 1024];
                snprintf(buf, sizeof buf, "%s\n%s\n%s\n%s\n%s\n", ps_nn_gemm_backends(),
                         ps_nn_gemm_library(PS_GEMM_OWN), ps_nn_gemm_library(PS_GEMM_OPENBLAS),
                         ps_nn_gemm_library(PS_GEMM_BLIS), ps_nn_gemm_notes());
                ssize_t w = write(fd[1], buf, strlen(buf));
                _exit(w > 0 ? 0 : 1);
            }
            close(fd[1]);
            char buf[512 + 3 * 200 + 1024 + 1];
            size_t got = 0;
            for (ssize_t n; pid > 0 && got + 1 < sizeof buf && (n = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0;)
                got += (size_t)n;
            buf[got] = 0;
            close(fd[0]);
            if (pid > 0)
                waitpid(pid, NULL, 0);
            char *line = buf, *fields[5] = {backends, libs[0], libs[1], libs[2], notes};
            size_t sizes[5] = {sizeof backends, sizeof libs[0], sizeof libs[1], sizeof libs[2], sizeof notes};
            for (int k = 0; k < 5; k++) {
                char *nl = strchr(line, '\n');
                if (!nl)
                    break;
                *nl = 0;
                snprintf(fields[k], sizes[k], "%s", line);
                line = nl + 1;
            }
        }
    }
    if (js) {
        fprintf(js, "{\n  \"data\": \"%s\",\n  \"cpu\": \"%s\",\n  \"gemm_isa\": \"%s\",\n", label, cpu, libs[0]);
        fprintf(js, "  \"gemm_backends\": \"%s\",\n  \"openblas\": \"%s\",\n  \"blis\": \"%s\",\n", backends,
                libs[1], libs[2]);
        fprintf(js, "  \"gemm_notes\": \"%s\",\n  \"runs\": [\n", notes);
    }
    printf("data %s; CPU: %s; our GEMM: %s; load average at start %.2f\n", label, cpu, libs[0], loadavg());
    printf("GEMM backends %s\n  OpenBLAS: %s; BLIS: %s%s%s\n", backends, libs[1], libs[2], notes[0] ? "\n  notes: " : "",
           notes);
    printf("%-26s %3s %9s %8s %19s %8s %7s %8s %6s\n", "stage", "thr", "seconds", "cpu s", "throughput", "GFLOP/s",
           "of peak", "peak MB", "load");
    int first = 1;
    for (int t = 0; t < n_threads; t++) {
        o.threads = threads_list[t];
        /* The peak is measured before and after the stages and the larger value used: on a shared
         * machine a single measurement can be depressed by someone else's load, which would
         * flatter the ratios. */
        double pk[2][PS_GEMM_NBACKENDS]; /* [before/after][own, openblas, blis] */
        measure_peaks(&o, pk[0]);
        typedef struct row {
            result r;
            long peak_kb;
            double load;
            const char *group;
        } row;
        row rows[64];
        int n_rows = 0;
        for (int s = 0; s < N_STAGES; s++) {
            if (only && !strstr(only, STAGES[s].name))
                continue;
            long peak_kb;
            double la = loadavg();
            fprintf(stderr, "bench: %s, %d thread%s ...\n", STAGES[s].name, o.threads, o.threads > 1 ? "s" : "");
            stage_out r = run_stage(&STAGES[s], &o, &peak_kb);
            if (!r.ok) {
                printf("%-26s %3d FAILED\n", STAGES[s].name, o.threads);
                continue;
            }
            for (int i = 0; i < r.n && n_rows < 64; i++)
                rows[n_rows++] = (row){r.r[i], peak_kb, la, STAGES[s].name};
        }
        measure_peaks(&o, pk[1]);
        double best[PS_GEMM_NBACKENDS], peak = 0;
        for (int k = 0; k < PS_GEMM_NBACKENDS; k++) {
            best[k] = pk[0][k] > pk[1][k] ? pk[0][k] : pk[1][k];
            peak = best[k] > peak ? best[k] : peak;
        }
        for (int k = 0; k < PS_GEMM_NBACKENDS; k++)
            if (best[k] > 0)
                printf("sgemm_peak_%-15s %3d %9s %8s %19s %8.1f %7s %8s %6s  (before %.1f, after %.1f)\n",
                       ps_nn_gemm_backend_name(k), o.threads, "", "", "", best[k], "", "", "", pk[0][k], pk[1][k]);
        if (js) {
            fprintf(js,
                    "%s    {\"stage\": \"sgemm_peak\", \"threads\": %d, \"gflops\": %.2f, \"own\": %.2f, "
                    "\"openblas\": %.2f, \"blis\": %.2f, \"loadavg\": %.2f}",
                    first ? "" : ",\n", o.threads, peak, best[PS_GEMM_OWN], best[PS_GEMM_OPENBLAS], best[PS_GEMM_BLIS],
                    loadavg());
            first = 0;
        }
        for (int i = 0; i < n_rows; i++) {
            const result *x = &rows[i].r;
            const double la = rows[i].load, peak_mb = rows[i].peak_kb / 1024.0;
            char thr[40], ratio[16] = "", gf[16] = "";
            snprintf(thr, sizeof thr, "%.0f %s", x->work / x->seconds, x->unit);
            double g = x->flops > 0 ? x->flops / x->seconds / 1e9 : 0;
            if (g > 0) {
                snprintf(gf, sizeof gf, "%.1f", g);
                snprintf(ratio, sizeof ratio, "%.0f%%", 100 * g / peak);
            }
            printf("%-26s %3d %9.3f %8.2f %19s %8s %7s %8.0f %6.2f\n", x->name, o.threads, x->seconds, x->cpu, thr, gf,
                   ratio, peak_mb, la);
            if (g_nkept < (int)(sizeof g_kept / sizeof g_kept[0])) {
                kept *k = &g_kept[g_nkept++];
                memcpy(k->name, x->name, sizeof k->name);
                k->name[sizeof k->name - 1] = '\0';
                k->threads = o.threads;
                k->seconds = x->seconds;
                k->gflops = g;
                k->ratio = g / peak;
                k->peak_mb = peak_mb;
            }
            if (js)
                fprintf(js,
                        ",\n    {\"stage\": \"%s\", \"threads\": %d, \"seconds\": %.4f, \"throughput\": %.1f, "
                        "\"unit\": \"%s\", \"gflops\": %.2f, \"peak_fraction\": %.4f, \"peak_rss_mb\": %.1f, "
                        "\"stage_group\": \"%s\", \"loadavg\": %.2f, \"cpu_seconds\": %.3f}",
                        x->name, o.threads, x->seconds, x->work / x->seconds, x->unit, g, g / peak, peak_mb,
                        rows[i].group, la, x->cpu);
        }
        fflush(stdout);
    }
    if (js) {
        fprintf(js, "\n  ]\n}\n");
        fclose(js);
    }
    if (targets == 1) {
        print_targets();
        print_issue12_targets(0);
    } else if (targets == 2) {
        print_issue12_targets(1);
    }
    return 0;
}
