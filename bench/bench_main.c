#define _DEFAULT_SOURCE /* wait4 */
/* popsteer benchmark suite (`make bench`): speed of every stage as a ratio to the machine's own
 * sgemm peak measured in the same run, plus peak memory per stage.
 *
 * Every stage runs in a forked child so that its peak resident memory (wait4 rusage) is its own.
 * FLOPs are counted from the model shapes (docs/performance.md has the formula):
 *   forward per sequence of L positions, per layer: 2L·3d² (QKV) + 2L²d (QKᵀ) + 2L²d (PV)
 *   + 2Ld² (output) + 4L·d·d_ff (FFN); logits 2·d·V per target position;
 *   training = 3 × forward (backward costs two matmuls per forward matmul).
 * Usage: bench_main DATA.inter [--threads N] [--json OUT] [--epochs N] */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "popsteer/dataset.h"
#include "popsteer/popsteer.h"
#include "popsteer/train.h"

typedef struct stage_result {
    double seconds;       /* the stage's own timed section */
    double work;          /* stage-specific count (targets, users, FLOPs ...) */
    double gflops;        /* 0 if not a FLOP-counted stage */
    long peak_kb;         /* child's peak RSS */
    int ok;
} stage_result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------- sgemm peak ---------- */

static double sgemm_gflops(int M, int N, int K, int reps)
{
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N),
          *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C)
        return 0;
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 5) * 0.01f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    free(A); free(B); free(C);
    return 2.0 * M * N * K / best / 1e9;
}

/* ---------- stages (run in children) ---------- */

typedef int (*stage_fn)(const char *data, int threads, int epochs, stage_result *r);

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

static int stage_load(const char *data, int threads, int epochs, stage_result *r)
{
    (void)threads; (void)epochs;
    ps_dataset ds;
    double t0 = now();
    if (load(data, &ds))
        return -1;
    r->seconds = now() - t0;
    r->work = (double)ds.n_inter;
    ps_dataset_free(&ds);
    return 0;
}

static double forward_flops_per_seq(const ps_sasrec_config *c, int targets)
{
    double L = c->max_len, d = c->d, f = c->d_ff, V = c->n_items + 1.0;
    double layer = 2 * L * 3 * d * d + 2 * L * L * d + 2 * L * L * d + 2 * L * d * d + 4 * L * d * f;
    return c->n_layers * layer + 2.0 * targets * d * V;
}

typedef struct epoch_probe {
    double train_seconds;
    int64_t targets;
} epoch_probe;

static void on_epoch(void *ctx, const ps_epoch_report *e)
{
    epoch_probe *p = ctx;
    p->train_seconds += e->train_seconds;
    p->targets += e->targets;
}

static int stage_train(const char *data, int threads, int epochs, stage_result *r)
{
    (void)threads;
    ps_dataset ds;
    if (load(data, &ds))
        return -1;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, ds.n_items);
    ps_sasrec *m;
    ps_error err;
    if (ps_sasrec_create(&m, &cfg, &err) != PS_OK)
        return -1;
    ps_train_options o;
    ps_train_options_init(&o);
    o.max_epochs = o.min_epochs = epochs;
    epoch_probe p = {0, 0};
    o.on_epoch = on_epoch;
    o.cb_ctx = &p;
    ps_train_result res;
    if (ps_sasrec_train(m, &ds, &o, &res, &err) != PS_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    /* windows of the default layout: one pass of L positions per window */
    int64_t windows = 0;
    for (int32_t u = 1; u <= ds.n_users; u++) {
        int64_t last = ps_user_len(&ds, u) - 3;
        if (last >= 1)
            windows += 1 + (last > cfg.max_len ? (last - cfg.max_len + o.window_stride - 1) / o.window_stride : 0);
    }
    double flops = 3.0 * (windows * forward_flops_per_seq(&cfg, 0) + 2.0 * (double)(p.targets / epochs) * cfg.d *
                                                                       (cfg.n_items + 1.0));
    r->seconds = p.train_seconds / epochs;
    r->work = (double)p.targets / epochs;
    r->gflops = flops / r->seconds / 1e9;
    ps_sasrec_free(m);
    ps_dataset_free(&ds);
    return 0;
}

static int stage_eval(const char *data, int threads, int epochs, stage_result *r)
{
    (void)threads; (void)epochs;
    ps_dataset ds;
    if (load(data, &ds))
        return -1;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, ds.n_items);
    ps_sasrec *m;
    ps_error err;
    if (ps_sasrec_create(&m, &cfg, &err) != PS_OK)
        return -1;
    ps_sasrec_init_weights(m, 1);
    double ndcg, t0 = now();
    if (ps_sasrec_quick_eval(m, &ds, PS_SPLIT_TEST, &ndcg, NULL, &err) != PS_OK)
        return -1;
    r->seconds = now() - t0;
    r->work = ds.n_users;
    double flops = ds.n_users * (forward_flops_per_seq(&cfg, 0) + 2.0 * cfg.d * (cfg.n_items + 1.0));
    r->gflops = flops / r->seconds / 1e9;
    ps_sasrec_free(m);
    ps_dataset_free(&ds);
    return 0;
}

typedef struct stage {
    const char *name, *unit;
    stage_fn fn;
} stage;

static stage_result run_stage(const stage *s, const char *data, int threads, int epochs)
{
    stage_result r;
    memset(&r, 0, sizeof r);
    int fd[2];
    if (pipe(fd) != 0)
        return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
        stage_result cr;
        memset(&cr, 0, sizeof cr);
        cr.ok = s->fn(data, threads, epochs, &cr) == 0;
        ssize_t w = write(fd[1], &cr, sizeof cr);
        _exit(w == (ssize_t)sizeof cr ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || got != (ssize_t)sizeof r)
        r.ok = 0;
    r.peak_kb = ru.ru_maxrss;
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_main DATA.inter [--threads N] [--epochs N] [--json OUT]\n");
        return 2;
    }
    const char *data = argv[1], *json = NULL;
    int threads_list[2] = {1, 2}, n_threads = 2, epochs = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) {
            threads_list[0] = atoi(argv[i + 1]);
            n_threads = 1;
        } else if (!strcmp(argv[i], "--epochs")) {
            epochs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--json")) {
            json = argv[i + 1];
        }
    }
    static const stage stages[] = {
        {"load", "rows/s", stage_load},
        {"sasrec_train_epoch", "targets/s", stage_train},
        {"sasrec_eval_all_users", "users/s", stage_eval},
    };
    FILE *js = json ? fopen(json, "w") : NULL;
    if (js)
        fprintf(js, "{\n  \"data\": \"%s\",\n  \"runs\": [\n", data);
    printf("%-24s %7s %10s %14s %9s %8s %9s\n", "stage", "threads", "seconds", "throughput", "GFLOP/s", "of peak",
           "peak MB");
    for (int t = 0; t < n_threads; t++) {
        int th = threads_list[t];
        openblas_set_num_threads(th);
        double peak = 0;
        int shapes[][3] = {{2048, 2048, 2048}, {12800, 192, 64}, {4096, 3417, 64}};
        for (int s = 0; s < 3; s++) {
            double g = sgemm_gflops(shapes[s][0], shapes[s][1], shapes[s][2], 5);
            if (g > peak)
                peak = g;
        }
        printf("%-24s %7d %10s %14s %9.1f %8s %9s\n", "sgemm_peak", th, "", "", peak, "100%", "");
        if (js)
            fprintf(js, "    {\"stage\": \"sgemm_peak\", \"threads\": %d, \"gflops\": %.2f},\n", th, peak);
        for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++) {
            stage_result r = run_stage(&stages[s], data, th, epochs);
            if (!r.ok) {
                printf("%-24s %7d FAILED\n", stages[s].name, th);
                continue;
            }
            char thr[32], ratio[16] = "", gf[16] = "";
            snprintf(thr, sizeof thr, "%.0f %s", r.work / r.seconds, stages[s].unit);
            if (r.gflops > 0) {
                snprintf(gf, sizeof gf, "%.1f", r.gflops);
                snprintf(ratio, sizeof ratio, "%.0f%%", 100 * r.gflops / peak);
            }
            printf("%-24s %7d %10.2f %14s %9s %8s %9.0f\n", stages[s].name, th, r.seconds, thr, gf, ratio,
                   r.peak_kb / 1024.0);
            if (js)
                fprintf(js,
                        "    {\"stage\": \"%s\", \"threads\": %d, \"seconds\": %.4f, \"throughput\": %.1f, \"unit\": "
                        "\"%s\", \"gflops\": %.2f, \"peak_fraction\": %.4f, \"peak_rss_mb\": %.1f},\n",
                        stages[s].name, th, r.seconds, r.work / r.seconds, stages[s].unit, r.gflops,
                        r.gflops / peak, r.peak_kb / 1024.0);
        }
    }
    if (js) {
        fprintf(js, "    {\"stage\": \"end\"}\n  ]\n}\n");
        fclose(js);
    }
    return 0;
}
