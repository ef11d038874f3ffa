/* PopSteer's model-dependent glue: SASRec user vectors, the SAE + steering scorer and the probe. */
#include "popsteer/popsteer.h"
#include "popsteer/dist.h"
#include "nn/nn.h"
#include "steer/steer_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define VEC_BATCH 1024 /* sequences per call: fewer parallel regions, more sequences to sort by length */

/* Batch bi is computed by rank bi mod P (round robin: the ranks share every stretch of the data,
 * long and short sequences alike); all batches in one process. */
static int my_batch(const ps_dist *dist, int64_t bi)
{
    return bi % ps_dist_size(dist) == ps_dist_rank(dist);
}

/* Before a sharded computation of rows [n, d]: the rows a rank does not compute must be zero for
 * ps_dist_gather_disjoint. */
static void clear_for_gather(const ps_dist *dist, float *out, int64_t n, int d)
{
    if (ps_dist_size(dist) > 1)
        memset(out, 0, (size_t)n * (size_t)d * sizeof *out);
}

int ps_user_vectors(const ps_sasrec *m, const ps_dataset *ds, const ps_sample *samples, int64_t n, float *out,
                    void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err)
{
    return ps_user_vectors_dist(m, ds, samples, n, out, NULL, progress, ctx, err);
}

int ps_user_vectors_dist(const ps_sasrec *m, const ps_dataset *ds, const ps_sample *samples, int64_t n, float *out,
                         const ps_dist *dist, void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx,
                         ps_error *err)
{
    int L = m->cfg.max_len;
    clear_for_gather(dist, out, n, m->cfg.d);
    ps_sasrec_ws *ws = NULL;
    int32_t *seq = ps_calloc((size_t)VEC_BATCH * (size_t)L, sizeof *seq, "batch", err);
    int32_t *len = ps_calloc(VEC_BATCH, sizeof *len, "batch", err);
    int rc = (seq && len) ? ps_sasrec_ws_create(&ws, m, VEC_BATCH, 0, err) : PS_ERR;
    for (int64_t first = 0; rc == PS_OK && first < n; first += VEC_BATCH) {
        int B = (int)(n - first < VEC_BATCH ? n - first : VEC_BATCH);
        if (!my_batch(dist, first / VEC_BATCH))
            continue;
        ps_batch_prefixes(ds, samples + first, B, L, seq, len);
        rc = ps_sasrec_user_vectors(m, ws, seq, len, B, out + first * m->cfg.d, err);
        if (progress)
            progress(ctx, first + B, n);
    }
    if (rc == PS_OK)
        rc = ps_dist_gather_disjoint(dist, out, (size_t)n * (size_t)m->cfg.d * sizeof *out, err);
    ps_sasrec_ws_free(ws);
    free(seq);
    free(len);
    return rc;
}

/* ---------- the SAE's training vectors ---------- */

typedef struct vec_batch {
    int32_t *seq, *len;   /* [VEC_BATCH, L], [VEC_BATCH] */
    int64_t *dest, *slot; /* [VEC_BATCH * L]: sample index in X, row of the forward's hidden states */
    ps_sample *samples;   /* [VEC_BATCH] */
    float *tmp;           /* [VEC_BATCH, d] */
    int B, n;             /* sequences, vectors to copy out */
} vec_batch;

static void vec_batch_free(vec_batch *b)
{
    free(b->seq), free(b->len), free(b->dest), free(b->slot), free(b->samples), free(b->tmp);
}

static int vec_batch_alloc(vec_batch *b, int L, int d, ps_error *err)
{
    memset(b, 0, sizeof *b);
    const size_t n = VEC_BATCH, rows = n * (size_t)L;
    b->seq = ps_calloc(rows, sizeof *b->seq, "prefix batch", err);
    b->len = b->seq ? ps_calloc(n, sizeof *b->len, "prefix batch", err) : NULL;
    b->dest = b->len ? ps_calloc(rows, sizeof *b->dest, "prefix batch", err) : NULL;
    b->slot = b->dest ? ps_calloc(rows, sizeof *b->slot, "prefix batch", err) : NULL;
    b->samples = b->slot ? ps_calloc(n, sizeof *b->samples, "prefix batch", err) : NULL;
    b->tmp = b->samples ? ps_calloc(n * (size_t)d, sizeof *b->tmp, "prefix batch", err) : NULL;
    if (!b->tmp) {
        vec_batch_free(b);
        return PS_ERR;
    }
    return PS_OK;
}

/* Pass 1: one forward per user over its first min(length, L) items; its first-window prefixes
 * (pos <= L) are rows of the hidden states. A full forward keeps every row of every layer, so
 * its batches are small (FIRST_PASS_BATCH users, ~20 MB of activations): the workspace is
 * sized for VEC_BATCH, but untouched pages cost nothing. */
#define FIRST_PASS_BATCH 64
static int first_window_vectors(const ps_sasrec *m, ps_sasrec_ws *ws, const ps_dataset *ds, const ps_dist *dist,
                                vec_batch *b, float *X, int64_t *done, void (*progress)(void *, int64_t, int64_t),
                                void *ctx, ps_error *err)
{
    const int L = m->cfg.max_len, d = m->cfg.d;
    for (int64_t i = 0, bi = 0; i < ds->n_train; bi++) {
        b->B = b->n = 0;
        while (b->B < FIRST_PASS_BATCH && i < ds->n_train) {
            const ps_sample s = ds->train[i];
            if (s.pos > L) { /* a sliding-window prefix: pass 2 */
                i++;
                continue;
            }
            int32_t *row = b->seq + (size_t)b->B * L;
            int64_t n = ps_user_len(ds, s.user) < L ? ps_user_len(ds, s.user) : L;
            memset(row, 0, (size_t)L * sizeof *row);
            memcpy(row, ds->seq + ds->user_off[s.user], (size_t)n * sizeof *row);
            for (; i < ds->n_train && ds->train[i].user == s.user && ds->train[i].pos <= L; i++) {
                b->dest[b->n] = i;
                b->slot[b->n++] = (int64_t)b->B * L + ds->train[i].pos - 1;
            }
            b->B++;
        }
        if (b->B == 0)
            break;
        *done += b->n; /* how far through the pass, also when another rank computes this batch */
        if (!my_batch(dist, bi))
            continue;
        if (ps_sasrec_forward(m, ws, b->seq, b->B, 0, 0, 0, err) != PS_OK)
            return PS_ERR;
        const float *hid = ps_sasrec_ws_hidden(ws);
        for (int j = 0; j < b->n; j++)
            memcpy(X + (size_t)b->dest[j] * d, hid + (size_t)b->slot[j] * d, (size_t)d * sizeof *X);
        if (progress)
            progress(ctx, *done, ds->n_train);
    }
    return PS_OK;
}

/* Pass 2: the sliding-window prefixes (pos > L), VEC_BATCH at a time, as ps_user_vectors does. */
static int window_vectors(const ps_sasrec *m, ps_sasrec_ws *ws, const ps_dataset *ds, const ps_dist *dist,
                          vec_batch *b, float *X, int64_t *done, void (*progress)(void *, int64_t, int64_t),
                          void *ctx, ps_error *err)
{
    const int L = m->cfg.max_len, d = m->cfg.d;
    for (int64_t i = 0, bi = 0; i < ds->n_train; bi++) {
        b->B = 0;
        for (; b->B < VEC_BATCH && i < ds->n_train; i++)
            if (ds->train[i].pos > L) {
                b->dest[b->B] = i;
                b->samples[b->B++] = ds->train[i];
            }
        if (b->B == 0)
            break;
        *done += b->B;
        if (!my_batch(dist, bi))
            continue;
        ps_batch_prefixes(ds, b->samples, b->B, L, b->seq, b->len);
        if (ps_sasrec_user_vectors(m, ws, b->seq, b->len, b->B, b->tmp, err) != PS_OK)
            return PS_ERR;
        for (int j = 0; j < b->B; j++)
            memcpy(X + (size_t)b->dest[j] * d, b->tmp + (size_t)j * d, (size_t)d * sizeof *X);
        if (progress)
            progress(ctx, *done, ds->n_train);
    }
    return PS_OK;
}

int ps_training_vectors(const ps_sasrec *m, const ps_dataset *ds, float *X,
                        void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err)
{
    return ps_training_vectors_dist(m, ds, X, NULL, progress, ctx, err);
}

int ps_training_vectors_dist(const ps_sasrec *m, const ps_dataset *ds, float *X, const ps_dist *dist,
                             void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err)
{
    if (m->cfg.max_len != ds->max_seq_len)
        return ps_fail(err, "the model reads %d-item prefixes but the dataset has %d", m->cfg.max_len,
                       ds->max_seq_len);
    vec_batch b;
    ps_sasrec_ws *ws = NULL;
    int64_t done = 0;
    if (vec_batch_alloc(&b, m->cfg.max_len, m->cfg.d, err) != PS_OK)
        return PS_ERR;
    clear_for_gather(dist, X, ds->n_train, m->cfg.d);
    int rc = ps_sasrec_ws_create(&ws, m, VEC_BATCH, 0, err);
    if (rc == PS_OK)
        rc = first_window_vectors(m, ws, ds, dist, &b, X, &done, progress, ctx, err);
    if (rc == PS_OK)
        rc = window_vectors(m, ws, ds, dist, &b, X, &done, progress, ctx, err);
    if (rc == PS_OK)
        rc = ps_dist_gather_disjoint(dist, X, (size_t)ds->n_train * (size_t)m->cfg.d * sizeof *X, err);
    ps_sasrec_ws_free(ws);
    vec_batch_free(&b);
    return rc;
}

int ps_sae_vector_sets(const ps_sasrec *m, const ps_dataset *ds, const ps_dist *dist, float **X, float **Xv,
                       void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err)
{
    const size_t d = (size_t)m->cfg.d;
    *X = ps_calloc((size_t)ds->n_train * d, sizeof **X, "training vectors", err);
    *Xv = *X ? ps_calloc((size_t)ds->n_users * d, sizeof **Xv, "validation vectors", err) : NULL;
    if (!*Xv)
        return PS_ERR;
    if (ps_training_vectors_dist(m, ds, *X, dist, progress, ctx, err) != PS_OK ||
        ps_user_vectors_dist(m, ds, ds->valid, ds->n_users, *Xv, dist, progress, ctx, err) != PS_OK)
        return PS_ERR;
    return PS_OK;
}

int ps_sae_fits_model(const ps_sae *sae, const ps_sasrec *m, ps_error *err)
{
    if (sae->cfg.d_in != m->cfg.d)
        return ps_fail(err, "the SAE reads %d-dimensional vectors but the model's are %d-dimensional: was it "
                            "trained on another model?",
                       sae->cfg.d_in, m->cfg.d);
    return PS_OK;
}

/* ---------- the steered recommender ---------- */

void ps_steer_scorer_free(ps_steer_scorer *s)
{
    ps_sasrec_ws_free(s->ws);
    free(s->h);
    ps_sae_encoder_free(&s->enc);
    free(s->val);
    free(s->hrec);
    free(s->idx);
    memset(s, 0, sizeof *s);
}

int ps_steer_scorer_init(ps_steer_scorer *s, const ps_sasrec *m, const ps_sae *sae, const ps_steer_plan *plan,
                         int max_batch, ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (ps_sae_fits_model(sae, m, err) != PS_OK)
        return PS_ERR;
    if (plan && plan->m != sae->cfg.n_latents)
        return ps_fail(err, "the steering plan has %d latents but the SAE has %d", plan->m, sae->cfg.n_latents);
    s->model = m;
    s->sae = sae;
    s->plan = plan;
    s->max_batch = max_batch;
    size_t B = (size_t)max_batch, d = (size_t)m->cfg.d, k = (size_t)sae->cfg.k;
    s->h = ps_calloc(B * d, sizeof *s->h, "user vectors", err);
    s->hrec = ps_calloc(B * d, sizeof *s->hrec, "user vectors", err);
    s->val = ps_calloc(B * k, sizeof *s->val, "codes", err);
    s->idx = ps_calloc(B * k, sizeof *s->idx, "codes", err);
    if (!s->h || !s->hrec || !s->val || !s->idx || ps_sae_encoder_init(&s->enc, sae, err) != PS_OK ||
        ps_sasrec_ws_create(&s->ws, m, max_batch, 0, err) != PS_OK) {
        ps_steer_scorer_free(s);
        return PS_ERR;
    }
    if (plan)
        ps_steer_shift_bias(plan, s->enc.bias);
    return PS_OK;
}

static int steer_score(void *ctx, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err)
{
    ps_steer_scorer *s = ctx;
    if (ps_sasrec_user_vectors(s->model, s->ws, seq, len, B, s->h, err) != PS_OK)
        return PS_ERR;
    ps_sae_encoder_topk(&s->enc, s->h, B, s->idx, s->val);
    ps_sae_decode(s->sae, s->idx, s->val, B, s->hrec);
    ps_sasrec_score(s->model, s->hrec, B, scores);
    return PS_OK;
}

ps_scorer ps_steer_scorer_as_scorer(ps_steer_scorer *s)
{
    return (ps_scorer){s, s->max_batch, steer_score};
}

int ps_steer_user(ps_steer_scorer *s, const int32_t *seq, int len, float *scores, ps_error *err)
{
    int L = s->model->cfg.max_len;
    if (len < 1 || len > L)
        return ps_fail(err, "a sequence must hold 1 to %d items (got %d)", L, len);
    int32_t *row = ps_calloc((size_t)L, sizeof *row, "sequence", err);
    if (!row)
        return PS_ERR;
    memcpy(row, seq, (size_t)len * sizeof *row);
    int32_t n = len;
    int rc = steer_score(s, row, &n, 1, scores, err);
    free(row);
    return rc;
}

/* ---------- the probe ---------- */

void ps_probe_options_init(ps_probe_options *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->n_top = 10;
}

void ps_probe_result_free(ps_probe_result *r)
{
    ps_latent_table_free(&r->table);
    free(r->top_items);
    memset(r, 0, sizeof *r);
}

typedef struct probe_run {
    const ps_sasrec *m;
    const ps_sae *sae;
    const ps_dataset *ds;
    const ps_probe_options *o;
    ps_sasrec_ws *ws;
    ps_sae_encoder enc;
    float *h, *pre, *val;
    float *cols; /* [n_cols_threads, VEC_BATCH, STATS_COLS]: a thread's block of pre-activations */
    int n_cols_threads;
    int32_t *idx, *len;
} probe_run;

static void report(const probe_run *p, const char *stage, int64_t done, int64_t total)
{
    if (p->o->progress)
        p->o->progress(p->o->progress_ctx, stage, done, total);
}

/* This rank's rows [lo, hi) of n, in whole batches of VEC_BATCH (all of them in one process). */
static void batch_share(const probe_run *p, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t b0, b1;
    ps_dist_share(p->o->dist, (n + VEC_BATCH - 1) / VEC_BATCH, &b0, &b1);
    *lo = b0 * VEC_BATCH;
    *hi = b1 * VEC_BATCH < n ? b1 * VEC_BATCH : n;
}

/* Latents per block of the probe's encoder: a block of a 1,024-user batch is 512 KB. */
#define STATS_COLS 128

/* The batch's pre-activations h W_encᵀ + bias (ps_sae_encoder_pre), STATS_COLS latents at a time
 * per thread, each block folded into the statistics while it is still in the thread's cache:
 * the [B, m] matrix (16 MB for 1,024 users and 4,096 latents) is never written and read back.
 * Every latent's sums run over the rows in order, as in ps_latent_stats_add, and on our kernels
 * every element is the same product (each is computed alone), so the statistics have the same
 * bits; a library may round an element differently in a block of another shape. */
static void encode_into_stats(probe_run *p, int B, ps_latent_stats *st)
{
    const int m = p->sae->cfg.n_latents, d = p->m->cfg.d;
    const int n_blocks = (m + STATS_COLS - 1) / STATS_COLS;
    const int nth = n_blocks < p->n_cols_threads ? n_blocks : p->n_cols_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int b = 0; b < n_blocks; b++) {
        const int j0 = b * STATS_COLS, j1 = j0 + STATS_COLS < m ? j0 + STATS_COLS : m;
        float *cols = p->cols + (size_t)omp_get_thread_num() * VEC_BATCH * STATS_COLS;
        ps_nn_gemm(B, j1 - j0, d, p->h, d, 1, p->enc.w_t + j0, m, cols, STATS_COLS, 1.0f, p->enc.bias + j0, 0);
        ps_latent_stats_add_columns(st, cols, STATS_COLS, B, j0, j1);
    }
    ps_latent_stats_count(st, B);
}

/* Dense pre-activations of the synthetic users of one group, streamed into its statistics. */
static int probe_group(probe_run *p, const ps_probe_users *u, int64_t first_row, const char *stage,
                       ps_latent_stats *st, ps_error *err)
{
    int64_t lo, hi;
    batch_share(p, u->n_group, &lo, &hi);
    for (int64_t r = lo; r < hi; r += VEC_BATCH) {
        int B = (int)(hi - r < VEC_BATCH ? hi - r : VEC_BATCH);
        const int32_t *seq = ps_probe_users_row(u, first_row + r);
        if (ps_sasrec_user_vectors(p->m, p->ws, seq, u->len + first_row + r, B, p->h, err) != PS_OK)
            return PS_ERR;
        encode_into_stats(p, B, st);
        report(p, stage, r + B - lo, hi - lo);
    }
    return ps_dist_merge_latent_stats(p->o->dist, st, err);
}

/* How often each latent is in the TopK of real users (their most recent, validation prefix). */
static int fire_rates(probe_run *p, double *rate, ps_error *err)
{
    int m = p->sae->cfg.n_latents, L = p->m->cfg.max_len, k = p->sae->cfg.k;
    int64_t n = p->ds->n_users;
    int64_t *count = ps_calloc((size_t)m, sizeof *count, "fire counts", err);
    int32_t *seq = ps_calloc((size_t)VEC_BATCH * (size_t)L, sizeof *seq, "batch", err);
    int rc = (count && seq) ? PS_OK : PS_ERR;
    int64_t lo, hi;
    batch_share(p, n, &lo, &hi);
    for (int64_t first = lo; rc == PS_OK && first < hi; first += VEC_BATCH) {
        int B = (int)(hi - first < VEC_BATCH ? hi - first : VEC_BATCH);
        ps_batch_prefixes(p->ds, p->ds->valid + first, B, L, seq, p->len);
        rc = ps_sasrec_user_vectors(p->m, p->ws, seq, p->len, B, p->h, err);
        if (rc == PS_OK) {
            ps_sae_encoder_topk(&p->enc, p->h, B, p->idx, p->val);
            rc = ps_fire_counts_add(count, m, p->idx, p->val, B, k, err);
        }
    }
    if (rc == PS_OK)
        rc = ps_dist_sum_i64(p->o->dist, count, (size_t)m, err);
    if (rc == PS_OK)
        ps_fire_rate(count, m, n, rate);
    free(count);
    free(seq);
    return rc;
}

/* Inserts item into latent j's top list (descending activation) if it belongs there. */
static void top_insert(int32_t *top, float *act, int n_top, int32_t item, float a)
{
    if (top[n_top - 1] != 0 && a <= act[n_top - 1])
        return;
    int pos = n_top - 1;
    while (pos > 0 && (top[pos - 1] == 0 || a > act[pos - 1])) {
        top[pos] = top[pos - 1];
        act[pos] = act[pos - 1];
        pos--;
    }
    top[pos] = item;
    act[pos] = a;
}

/* The items whose embedding, passed as h, activates each latent most (SPEC §4). */
static int top_items(probe_run *p, int32_t *top, int n_top, ps_error *err)
{
    int m = p->sae->cfg.n_latents, d = p->m->cfg.d;
    const float *E = p->m->params + ps_sasrec_find(p->m, "item_embedding.weight")->offset;
    float *act = ps_calloc((size_t)m * (size_t)n_top, sizeof *act, "activations", err);
    if (!act)
        return PS_ERR;
    for (int32_t first = 1; first <= p->ds->n_items; first += VEC_BATCH) {
        int B = p->ds->n_items - first + 1 < VEC_BATCH ? p->ds->n_items - first + 1 : VEC_BATCH;
        ps_sae_encoder_pre(&p->enc, E + (size_t)first * d, B, p->pre);
#pragma omp parallel for schedule(static)
        for (int j = 0; j < m; j++)
            for (int b = 0; b < B; b++)
                top_insert(top + (size_t)j * n_top, act + (size_t)j * n_top, n_top, first + b,
                           p->pre[(size_t)b * m + j]);
    }
    free(act);
    return PS_OK;
}

static int probe_stats(probe_run *p, ps_probe_result *r, ps_error *err)
{
    int m = p->sae->cfg.n_latents;
    ps_probe_users u;
    int made = p->o->sides || p->o->min_len
                   ? ps_probe_users_make_sides(p->ds, p->o->sides ? p->o->sides : p->ds->label, p->o->cap,
                                               p->o->min_len, p->o->seed, &u, err)
                   : ps_probe_users_make(p->ds, p->o->cap, p->o->seed, &u, err);
    if (made != PS_OK)
        return PS_ERR;
    r->n_synthetic = u.n_group;
    ps_latent_stats pop, unpop;
    memset(&pop, 0, sizeof pop);
    memset(&unpop, 0, sizeof unpop);
    int rc = PS_ERR;
    if (ps_latent_stats_init(&pop, m, err) == PS_OK && ps_latent_stats_init(&unpop, m, err) == PS_OK &&
        probe_group(p, &u, 0, p->o->sides ? "contrast-set users" : "popular-only users", &pop, err) == PS_OK &&
        probe_group(p, &u, u.n_group, p->o->sides ? "concept users" : "long-tail-only users", &unpop, err) == PS_OK)
        rc = ps_latent_table_fill(&pop, &unpop, &r->table, err);
    ps_latent_stats_free(&pop);
    ps_latent_stats_free(&unpop);
    ps_probe_users_free(&u);
    return rc;
}

int ps_probe_run(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, const ps_probe_options *o,
                 ps_probe_result *r, ps_error *err)
{
    memset(r, 0, sizeof *r);
    if (ps_sae_fits_model(sae, m, err) != PS_OK)
        return PS_ERR;
    int nl = sae->cfg.n_latents, k = sae->cfg.k;
    probe_run p = {.m = m, .sae = sae, .ds = ds, .o = o};
    r->n_top = o->n_top > 0 ? o->n_top : 10;
    p.h = ps_calloc((size_t)VEC_BATCH * (size_t)m->cfg.d, sizeof *p.h, "user vectors", err);
    p.pre = ps_calloc((size_t)VEC_BATCH * (size_t)nl, sizeof *p.pre, "pre-activations", err);
    p.val = ps_calloc((size_t)VEC_BATCH * (size_t)k, sizeof *p.val, "codes", err);
    p.idx = ps_calloc((size_t)VEC_BATCH * (size_t)k, sizeof *p.idx, "codes", err);
    p.len = ps_calloc(VEC_BATCH, sizeof *p.len, "lengths", err);
    p.n_cols_threads = omp_get_max_threads();
    p.cols = ps_calloc((size_t)p.n_cols_threads * VEC_BATCH, STATS_COLS * sizeof *p.cols, "pre-activation blocks", err);
    r->top_items = ps_calloc((size_t)nl * (size_t)r->n_top, sizeof *r->top_items, "top items", err);
    int rc = (p.h && p.pre && p.val && p.idx && p.len && p.cols && r->top_items) ? PS_OK : PS_ERR;
    if (rc == PS_OK)
        rc = ps_sasrec_ws_create(&p.ws, m, VEC_BATCH, 0, err);
    if (rc == PS_OK)
        rc = ps_sae_encoder_init(&p.enc, sae, err);
    if (rc == PS_OK && o->item_side) { /* d from the decoder rows' effect on items (probe_items.c) */
        rc = ps_item_side_table(m, sae, ds, o->sides, &r->table, err);
    } else {
        if (rc == PS_OK)
            rc = ps_latent_table_alloc(&r->table, nl, err);
        if (rc == PS_OK)
            rc = probe_stats(&p, r, err);
    }
    if (rc == PS_OK)
        rc = fire_rates(&p, r->table.fire_rate, err);
    if (rc == PS_OK)
        rc = top_items(&p, r->top_items, r->n_top, err);
    ps_sasrec_ws_free(p.ws);
    ps_sae_encoder_free(&p.enc);
    free(p.h);
    free(p.pre);
    free(p.val);
    free(p.idx);
    free(p.len);
    free(p.cols);
    if (rc != PS_OK)
        ps_probe_result_free(r);
    return rc;
}
