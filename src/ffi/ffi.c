/* Flat entry points for foreign-function interfaces: see include/popsteer/ffi.h. */
#include "popsteer/ffi.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "popsteer/checkpoint.h"
#include "popsteer/metrics.h"
#include "popsteer/popsteer.h"
#include "popsteer/safetensors.h"
#include "popsteer/sweep.h"
#include "popsteer/synth.h"
#include "popsteer/train.h"

int psffi_abi_version(void)
{
    return PSFFI_ABI_VERSION;
}

void psffi_free(void *p)
{
    free(p);
}

int psffi_threads(int n)
{
    if (n > 0) /* the GEMM backends run single-threaded inside the library's own OpenMP threads */
        omp_set_num_threads(n);
    return omp_get_max_threads();
}

int psffi_gemm_rows_exact(void)
{
    return ps_nn_gemm_rows_exact();
}

int psffi_synth(const char *path, int32_t n_users, int32_t n_items, int64_t n_interactions, uint64_t seed,
                ps_error *err)
{
    if (!path)
        return ps_fail(err, "synth: no output path");
    ps_synth_options o;
    ps_synth_options_init(&o);
    if (n_users > 0)
        o.n_users = n_users;
    if (n_items > 0)
        o.n_items = n_items;
    if (n_interactions > 0)
        o.n_interactions = n_interactions;
    o.seed = seed;
    return ps_synth_write(&o, path, err);
}

/* ---------------------------------------------------------------------------------------------
 * Datasets */

ps_dataset *psffi_dataset_load(const char *path, const char *format, int kcore, int has_rating_threshold,
                               double rating_threshold, int max_len, double head_share, double tail_share,
                               const char *user_col, const char *item_col, const char *time_col,
                               const char *rating_col, ps_error *err)
{
    if (!path) {
        ps_fail(err, "no dataset path");
        return NULL;
    }
    ps_load_options o;
    ps_load_options_init(&o);
    if (format) {
        int f = ps_format_parse(format);
        if (f < 0) {
            ps_fail(err, "unknown format '%s' (expected auto, atomic, dat, udata, sequence or csv)", format);
            return NULL;
        }
        o.format = (ps_format)f;
    }
    if (kcore < 0) {
        ps_fail(err, "kcore must be >= 0 (got %d)", kcore);
        return NULL;
    }
    o.kcore = kcore;
    o.has_rating_threshold = has_rating_threshold != 0;
    o.rating_threshold = rating_threshold;
    if (max_len > 0)
        o.max_seq_len = max_len;
    if (head_share > 0)
        o.head_share = head_share;
    if (tail_share > 0)
        o.tail_share = tail_share;
    o.user_col = user_col;
    o.item_col = item_col;
    o.time_col = time_col;
    o.rating_col = rating_col;
    ps_dataset *ds = ps_calloc(1, sizeof *ds, "dataset", err);
    if (ds && ps_dataset_load(ds, path, &o, err) != PS_OK) {
        free(ds);
        return NULL;
    }
    return ds;
}

void psffi_dataset_free(ps_dataset *ds)
{
    if (!ds)
        return;
    ps_dataset_free(ds);
    free(ds);
}

void psffi_dataset_sizes(const ps_dataset *ds, int64_t *out)
{
    out[PSFFI_DS_N_USERS] = ds->n_users;
    out[PSFFI_DS_N_ITEMS] = ds->n_items;
    out[PSFFI_DS_N_INTER] = ds->n_inter;
    out[PSFFI_DS_MAX_LEN] = ds->max_seq_len;
    out[PSFFI_DS_N_TRAIN] = ds->n_train;
    out[PSFFI_DS_N_HEAD] = ds->n_head;
    out[PSFFI_DS_N_MID] = ds->n_mid;
    out[PSFFI_DS_N_TAIL] = ds->n_tail;
}

const void *psffi_dataset_array(const ps_dataset *ds, int which)
{
    switch (which) {
    case PSFFI_DS_SEQ: return ds->seq;
    case PSFFI_DS_USER_OFF: return ds->user_off;
    case PSFFI_DS_LABEL: return ds->label;
    case PSFFI_DS_TRAIN_COUNT: return ds->train_count;
    case PSFFI_DS_TRAIN: return ds->train;
    case PSFFI_DS_VALID: return ds->valid;
    case PSFFI_DS_TEST: return ds->test;
    default: return NULL;
    }
}

const char *psffi_dataset_user_token(const ps_dataset *ds, int64_t u)
{
    return u >= 1 && u <= ds->n_users ? ps_strings_get(&ds->user_tokens, (int32_t)u) : NULL;
}

const char *psffi_dataset_item_token(const ps_dataset *ds, int64_t i)
{
    return i >= 0 && i <= ds->n_items ? ps_strings_get(&ds->item_tokens, (int32_t)i) : NULL;
}

int psffi_dataset_prefixes(const ps_dataset *ds, const int32_t *samples, int64_t n, int L, int32_t *seq,
                           int32_t *len, ps_error *err)
{
    if (L < 1)
        return ps_fail(err, "prefix length must be >= 1 (got %d)", L);
    for (int64_t i = 0; i < n; i++) {
        ps_sample s = {samples[2 * i], samples[2 * i + 1]};
        if (s.user < 1 || s.user > ds->n_users)
            return ps_fail(err, "sample %lld: user %d is not in 1..%d", (long long)i, s.user, ds->n_users);
        if (s.pos < 1 || s.pos > ps_user_len(ds, s.user))
            return ps_fail(err, "sample %lld: position %d is not in 1..%lld (user %d's items)", (long long)i, s.pos,
                           (long long)ps_user_len(ds, s.user), s.user);
        ps_batch_prefixes(ds, &s, 1, L, seq + i * L, len + i);
    }
    return PS_OK;
}

/* cJSON text of o (deleted), or PS_ERR. */
static int json_text(cJSON *o, char **json, ps_error *err)
{
    *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return *json ? PS_OK : ps_fail(err, "out of memory formatting JSON");
}

int psffi_dataset_stats_json(const ps_dataset *ds, char **json, ps_error *err)
{
    ps_dataset_stats st;
    *json = NULL;
    if (ps_dataset_stats_compute(ds, &st, err) != PS_OK)
        return PS_ERR;
    return json_text(ps_dataset_report_json(ds, &st), json, err);
}

/* ---------------------------------------------------------------------------------------------
 * SASRec */

ps_sasrec *psffi_sasrec_load(const char *path, ps_error *err)
{
    ps_sasrec *m = NULL;
    if (!path) {
        ps_fail(err, "no model path");
        return NULL;
    }
    if (ps_sasrec_load(&m, path, err) != PS_OK) {
        ps_sasrec_free(m);
        return NULL;
    }
    return m;
}

int psffi_sasrec_save(const ps_sasrec *m, const char *path, ps_error *err)
{
    if (!path)
        return ps_fail(err, "no model path");
    return ps_sasrec_save(m, NULL, path, err);
}

ps_sasrec *psffi_sasrec_new(const ps_dataset *ds, int d, int n_layers, int n_heads, int d_ff, double hidden_dropout,
                            double attn_dropout, uint64_t seed, ps_error *err)
{
    ps_sasrec_config c;
    ps_sasrec_config_default(&c, ds->n_items);
    c.max_len = ds->max_seq_len;
    if (d > 0)
        c.d = d;
    if (n_layers > 0)
        c.n_layers = n_layers;
    if (n_heads > 0)
        c.n_heads = n_heads;
    if (d_ff > 0)
        c.d_ff = d_ff;
    if (hidden_dropout >= 0)
        c.hidden_dropout = (float)hidden_dropout;
    if (attn_dropout >= 0)
        c.attn_dropout = (float)attn_dropout;
    ps_sasrec *m = NULL;
    if (ps_sasrec_config_validate(&c, err) != PS_OK || ps_sasrec_create(&m, &c, err) != PS_OK) {
        ps_sasrec_free(m);
        return NULL;
    }
    ps_sasrec_init_weights(m, seed);
    return m;
}

void psffi_sasrec_config(const ps_sasrec *m, int64_t *out, double *dropout)
{
    out[PSFFI_CFG_N_ITEMS] = m->cfg.n_items;
    out[PSFFI_CFG_D] = m->cfg.d;
    out[PSFFI_CFG_N_LAYERS] = m->cfg.n_layers;
    out[PSFFI_CFG_N_HEADS] = m->cfg.n_heads;
    out[PSFFI_CFG_D_FF] = m->cfg.d_ff;
    out[PSFFI_CFG_MAX_LEN] = m->cfg.max_len;
    dropout[0] = m->cfg.hidden_dropout;
    dropout[1] = m->cfg.attn_dropout;
}

const float *psffi_sasrec_item_embedding(const ps_sasrec *m)
{
    int dim;
    return ps_sasrec_item_embedding(m, &dim);
}

int psffi_sasrec_check_dataset(const ps_sasrec *m, const ps_dataset *ds, ps_error *err)
{
    return ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, "model", err);
}

/* Adapts the library's training hooks to one psffi_progress; remembers a request to stop. */
typedef struct progress_ctx {
    psffi_progress fn;
    void *ctx;
    int stop;
    int max_epochs;
} progress_ctx;

static void report(progress_ctx *p, const char *stage, int epoch, int64_t done, int64_t total, double value)
{
    if (p->fn && p->fn(p->ctx, stage, epoch, done, total, value))
        p->stop = 1;
}

static int should_cancel(void *ctx)
{
    return ((progress_ctx *)ctx)->stop;
}

static void sasrec_on_batch(void *ctx, int epoch, int64_t batch, int64_t n_batches, double loss, int64_t targets_done,
                            double seconds)
{
    (void)targets_done, (void)seconds;
    report(ctx, "batch", epoch, batch, n_batches, loss);
}

static void sasrec_on_epoch(void *ctx, const ps_epoch_report *r)
{
    progress_ctx *p = ctx;
    report(p, "epoch", r->epoch, r->epoch, p->max_epochs, r->valid_ndcg);
}

int psffi_sasrec_train(ps_sasrec *m, const ps_dataset *ds, int max_epochs, int min_epochs, int patience, double lr,
                       int batch_targets, int micro_batch, int prefix_layout, uint64_t seed, int keep_weights,
                       psffi_progress progress, void *ctx, double *result, ps_error *err)
{
    ps_train_options o;
    ps_train_options_init(&o);
    if (max_epochs > 0)
        o.max_epochs = max_epochs;
    if (min_epochs >= 0)
        o.min_epochs = min_epochs;
    if (patience > 0)
        o.patience = patience;
    if (lr > 0)
        o.lr = (float)lr;
    if (batch_targets > 0)
        o.batch_targets = batch_targets;
    if (micro_batch > 0)
        o.micro_batch = micro_batch;
    o.layout = prefix_layout ? PS_LAYOUT_PREFIX : PS_LAYOUT_WINDOW;
    o.seed = seed;
    o.init_weights = !keep_weights;
    progress_ctx p = {progress, ctx, 0, o.max_epochs};
    o.on_batch = sasrec_on_batch;
    o.on_epoch = sasrec_on_epoch;
    o.cancel = should_cancel;
    o.cb_ctx = &p;
    ps_train_result res;
    if (ps_sasrec_train(m, ds, &o, &res, err) != PS_OK)
        return PS_ERR;
    result[0] = res.epochs;
    result[1] = res.best_epoch;
    result[2] = res.best_ndcg;
    result[3] = res.seconds;
    return PS_OK;
}

/* Ids in 0..n_items and lengths in 1..L, so the kernels only ever see valid rows. */
static int check_sequences(const int32_t *seq, const int32_t *len, int64_t B, int L, int32_t n_items, ps_error *err)
{
    for (int64_t b = 0; b < B; b++) {
        if (len[b] < 1 || len[b] > L)
            return ps_fail(err, "sequence %lld: length %d is not in 1..%d", (long long)b, len[b], L);
        for (int j = 0; j < L; j++) {
            int32_t v = seq[b * L + j];
            if (v < 0 || v > n_items)
                return ps_fail(err, "sequence %lld, position %d: item %d is not in 1..%d", (long long)b, j, v,
                               n_items);
        }
    }
    return PS_OK;
}

int psffi_sasrec_user_vectors(const ps_sasrec *m, const int32_t *seq, const int32_t *len, int64_t B, float *out,
                              ps_error *err)
{
    const int L = m->cfg.max_len;
    if (B < 0 || B > INT32_MAX)
        return ps_fail(err, "batch of %lld sequences", (long long)B);
    if (B == 0)
        return PS_OK;
    if (check_sequences(seq, len, B, L, m->cfg.n_items, err) != PS_OK)
        return PS_ERR;
    ps_sasrec_ws *ws = NULL;
    int rc = ps_sasrec_ws_create(&ws, m, B < 256 ? (int)B : 256, 0, err);
    if (rc == PS_OK)
        rc = ps_sasrec_user_vectors(m, ws, seq, len, (int)B, out, err);
    ps_sasrec_ws_free(ws);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * SAE */

ps_sae *psffi_sae_load(const char *path, ps_error *err)
{
    if (!path) {
        ps_fail(err, "no SAE path");
        return NULL;
    }
    return ps_sae_load(path, err);
}

int psffi_sae_save(const ps_sae *sae, const char *path, ps_error *err)
{
    if (!path)
        return ps_fail(err, "no SAE path");
    return ps_sae_save(sae, path, err);
}

void psffi_sae_free(ps_sae *sae)
{
    ps_sae_free(sae);
}

static void sae_on_batch(const ps_sae_batch_info *b, void *ctx)
{
    report(ctx, "batch", b->epoch, b->batch + 1, b->n_batches, b->loss);
}

static int sae_on_epoch(const ps_sae_epoch_info *e, void *ctx)
{
    progress_ctx *p = ctx;
    report(p, "epoch", e->epoch, e->epoch, p->max_epochs, e->val_fvu);
    return 0; /* a stop request is honoured before the next batch, by the cancel hook */
}

ps_sae *psffi_sae_train(const ps_sasrec *m, const ps_dataset *ds, int k, int scale, int k_aux, int max_epochs,
                        int patience, double lr, int batch, uint64_t seed, psffi_progress progress, void *ctx,
                        double *result, ps_error *err)
{
    if (ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, "model", err) != PS_OK)
        return NULL;
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, m->cfg.d, scale > 0 ? scale : PS_SAE_DEFAULT_SCALE);
    if (k > 0)
        cfg.k = k;
    if (k_aux > 0)
        cfg.k_aux = k_aux;
    if (ps_sae_config_validate(&cfg, err) != PS_OK)
        return NULL;
    ps_sae_train_options o;
    ps_sae_train_options_init(&o);
    if (max_epochs > 0)
        o.max_epochs = max_epochs;
    if (patience > 0)
        o.patience = patience;
    if (lr > 0)
        o.lr = (float)lr;
    if (batch > 0)
        o.batch_size = batch;
    o.seed = seed;
    progress_ctx p = {progress, ctx, 0, o.max_epochs};
    o.cancel = should_cancel;
    ps_sae_callbacks cb = {.epoch = sae_on_epoch, .batch = sae_on_batch};
    ps_sae_train_result res;
    ps_sae *sae = ps_sae_train_on_model(m, ds, &cfg, &o, seed, &cb, &p, NULL, &res, err);
    if (sae) {
        result[0] = res.epochs_run;
        result[1] = res.best_epoch;
        result[2] = res.best_val_fvu;
    }
    return sae;
}

void psffi_sae_config(const ps_sae *sae, int64_t *out)
{
    out[PSFFI_SAE_D_IN] = sae->cfg.d_in;
    out[PSFFI_SAE_N_LATENTS] = sae->cfg.n_latents;
    out[PSFFI_SAE_K] = sae->cfg.k;
    out[PSFFI_SAE_K_AUX] = sae->cfg.k_aux;
}

const float *psffi_sae_tensor(const ps_sae *sae, int which)
{
    if (which < 0 || which >= PS_SAE_N_TENSORS)
        return NULL;
    return sae->params + sae->offset[which];
}

#define SAE_CHUNK 256 /* rows per encode/decode step: bounds the [rows, m] scratch */

static int check_finite_rows(const float *x, int64_t n, const char *what, ps_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ps_fail(err, "%s: element %lld is %g (not finite)", what, (long long)i, (double)x[i]);
    return PS_OK;
}

int psffi_sae_encode(const ps_sae *sae, const float *h, int64_t B, float *z, ps_error *err)
{
    const int m = sae->cfg.n_latents, k = sae->cfg.k, d = sae->cfg.d_in;
    if (B < 0)
        return ps_fail(err, "encode: %lld rows", (long long)B);
    if (check_finite_rows(h, B * d, "encode", err) != PS_OK)
        return PS_ERR;
    const int chunk = B < SAE_CHUNK ? (int)B : SAE_CHUNK;
    if (chunk == 0)
        return PS_OK;
    float *pre = ps_calloc((size_t)chunk * (size_t)m, sizeof *pre, "SAE pre-activations", err);
    float *val = pre ? ps_calloc((size_t)chunk * (size_t)k, sizeof *val, "SAE activations", err) : NULL;
    int32_t *idx = val ? ps_calloc((size_t)chunk * (size_t)k, sizeof *idx, "SAE latents", err) : NULL;
    int rc = idx ? PS_OK : PS_ERR;
    for (int64_t first = 0; rc == PS_OK && first < B; first += chunk) {
        int n = (int)(B - first < chunk ? B - first : chunk);
        ps_sae_encode_pre(sae, h + first * d, n, pre);
        ps_sae_topk(sae, pre, n, idx, val);
        float *zr = z + first * m;
        memset(zr, 0, (size_t)n * (size_t)m * sizeof *zr);
        for (int r = 0; r < n; r++)
            for (int s = 0; s < k; s++)
                zr[(size_t)r * m + idx[r * k + s]] = val[r * k + s];
    }
    free(pre);
    free(val);
    free(idx);
    return rc;
}

int psffi_sae_decode(const ps_sae *sae, const float *z, int64_t B, float *out, ps_error *err)
{
    const int m = sae->cfg.n_latents, k = sae->cfg.k, d = sae->cfg.d_in;
    if (B < 0)
        return ps_fail(err, "decode: %lld rows", (long long)B);
    if (check_finite_rows(z, B * m, "decode", err) != PS_OK)
        return PS_ERR;
    const int chunk = B < SAE_CHUNK ? (int)B : SAE_CHUNK;
    if (chunk == 0)
        return PS_OK;
    float *val = ps_calloc((size_t)chunk * (size_t)k, sizeof *val, "SAE activations", err);
    int32_t *idx = val ? ps_calloc((size_t)chunk * (size_t)k, sizeof *idx, "SAE latents", err) : NULL;
    int rc = idx ? PS_OK : PS_ERR;
    for (int64_t first = 0; rc == PS_OK && first < B; first += chunk) {
        int n = (int)(B - first < chunk ? B - first : chunk);
        memset(val, 0, (size_t)n * (size_t)k * sizeof *val);
        memset(idx, 0, (size_t)n * (size_t)k * sizeof *idx);
        for (int r = 0; r < n && rc == PS_OK; r++) {
            const float *zr = z + (first + r) * m;
            int s = 0;
            for (int j = 0; j < m; j++) {
                if (zr[j] == 0.0f)
                    continue;
                if (s == k) {
                    rc = ps_fail(err, "decode: row %lld has more than k = %d nonzero latents", (long long)(first + r),
                                 k);
                    break;
                }
                idx[r * k + s] = j;
                val[r * k + s++] = zr[j];
            }
        }
        if (rc == PS_OK)
            ps_sae_decode(sae, idx, val, n, out + first * d);
    }
    free(val);
    free(idx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Probe and latents table */

int psffi_probe(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, int64_t cap, uint64_t seed, int n_top,
                double *d, double *mean_pop, double *std_pop, double *mean_unpop, double *std_unpop,
                double *fire_rate, int32_t *top, int64_t *n_synthetic, ps_error *err)
{
    if (ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, "model", err) != PS_OK)
        return PS_ERR;
    ps_probe_options o;
    ps_probe_options_init(&o);
    o.cap = cap;
    o.seed = seed;
    if (n_top > 0)
        o.n_top = n_top;
    ps_probe_result r;
    memset(&r, 0, sizeof r);
    if (ps_probe_run(m, sae, ds, &o, &r, err) != PS_OK) {
        ps_probe_result_free(&r);
        return PS_ERR;
    }
    const size_t n = (size_t)r.table.m;
    memcpy(d, r.table.d, n * sizeof *d);
    memcpy(mean_pop, r.table.mean_pop, n * sizeof *d);
    memcpy(std_pop, r.table.std_pop, n * sizeof *d);
    memcpy(mean_unpop, r.table.mean_unpop, n * sizeof *d);
    memcpy(std_unpop, r.table.std_unpop, n * sizeof *d);
    memcpy(fire_rate, r.table.fire_rate, n * sizeof *d);
    memcpy(top, r.top_items, n * (size_t)r.n_top * sizeof *top);
    *n_synthetic = r.n_synthetic;
    ps_probe_result_free(&r);
    return PS_OK;
}

int psffi_latents_write(const char *path, int m, const double *d, const double *mean_pop, const double *std_pop,
                        const double *mean_unpop, const double *std_unpop, const double *fire_rate,
                        const int32_t *top, int n_top, const ps_dataset *ds, ps_error *err)
{
    if (!path)
        return ps_fail(err, "no latents path");
    if (m < 1)
        return ps_fail(err, "latents table: %d latents", m);
    if (top && !ds)
        return ps_fail(err, "latents table: top items need the dataset that names them");
    ps_latent_table t = {m, (double *)d, (double *)mean_pop, (double *)std_pop, (double *)mean_unpop,
                         (double *)std_unpop, (double *)fire_rate};
    ps_latent_items items = {top, n_top, ds ? &ds->item_tokens : NULL, NULL};
    return ps_latents_csv_write(path, &t, top ? &items : NULL, err);
}

int psffi_latents_read(const char *path, int expected_m, int *m, double *const *cols, ps_error *err)
{
    if (!path)
        return ps_fail(err, "no latents path");
    ps_latent_table t;
    if (ps_latents_csv_read(path, expected_m, &t, err) != PS_OK)
        return PS_ERR;
    *m = t.m;
    if (cols) {
        const double *src[6] = {t.d, t.mean_pop, t.std_pop, t.mean_unpop, t.std_unpop, t.fire_rate};
        for (int i = 0; i < 6; i++)
            memcpy(cols[i], src[i], (size_t)t.m * sizeof *src[i]);
    }
    ps_latent_table_free(&t);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Scorers */

struct psffi_scorer {
    const ps_sasrec *model;
    int steered; /* 0: plain SASRec (plain), 1: through the SAE (steer) */
    ps_sasrec_scorer plain;
    ps_steer_scorer steer;
    ps_steer_plan plan;
    int has_plan;
    ps_scorer sc;
};

void psffi_scorer_free(psffi_scorer *s)
{
    if (!s)
        return;
    if (s->steered)
        ps_steer_scorer_free(&s->steer);
    else
        ps_sasrec_scorer_free(&s->plain);
    if (s->has_plan)
        ps_steer_plan_free(&s->plan);
    free(s);
}

psffi_scorer *psffi_scorer_new(const ps_sasrec *m, const ps_sae *sae, const double *d, const double *sd_pop,
                               const double *sd_unpop, int n_steer, double alpha, int max_batch, ps_error *err)
{
    if (max_batch < 1 || max_batch > 4096) {
        ps_fail(err, "scorer batch %d is not in 1..4096", max_batch);
        return NULL;
    }
    psffi_scorer *s = ps_calloc(1, sizeof *s, "scorer", err);
    if (!s)
        return NULL;
    s->model = m;
    int rc;
    if (!sae) {
        rc = ps_sasrec_scorer_init(&s->plain, m, max_batch, err);
        if (rc == PS_OK)
            s->sc = ps_sasrec_scorer_as_scorer(&s->plain);
    } else {
        s->steered = 1;
        rc = ps_sae_fits_model(sae, m, err);
        if (rc == PS_OK && d) {
            const int lat = sae->cfg.n_latents;
            rc = ps_steer_plan_make(d, sd_pop, sd_unpop, lat, n_steer > 0 ? n_steer : lat, alpha, &s->plan, err);
            s->has_plan = rc == PS_OK;
        }
        if (rc == PS_OK)
            rc = ps_steer_scorer_init(&s->steer, m, sae, s->has_plan ? &s->plan : NULL, max_batch, err);
        if (rc == PS_OK)
            s->sc = ps_steer_scorer_as_scorer(&s->steer);
    }
    if (rc != PS_OK) {
        psffi_scorer_free(s);
        return NULL;
    }
    return s;
}

int psffi_scorer_plan(const psffi_scorer *s, int *n, int32_t *latent, double *weight, double *shift)
{
    *n = s->has_plan ? s->plan.n : 0;
    if (s->has_plan && latent) {
        memcpy(latent, s->plan.latent, (size_t)s->plan.n * sizeof *latent);
        memcpy(weight, s->plan.weight, (size_t)s->plan.n * sizeof *weight);
        memcpy(shift, s->plan.shift, (size_t)s->plan.n * sizeof *shift);
    }
    return PS_OK;
}

int psffi_scorer_scores(psffi_scorer *s, const int32_t *seq, const int32_t *len, int64_t B, float *scores,
                        ps_error *err)
{
    const int L = s->model->cfg.max_len;
    const int64_t V = (int64_t)s->model->cfg.n_items + 1;
    if (B < 0)
        return ps_fail(err, "batch of %lld sequences", (long long)B);
    if (check_sequences(seq, len, B, L, s->model->cfg.n_items, err) != PS_OK)
        return PS_ERR;
    for (int64_t first = 0; first < B; first += s->sc.max_batch) {
        int n = (int)(B - first < s->sc.max_batch ? B - first : s->sc.max_batch);
        if (s->sc.score(s->sc.ctx, seq + first * L, len + first, n, scores + first * V, err) != PS_OK)
            return PS_ERR;
    }
    return PS_OK;
}

int psffi_evaluate(psffi_scorer *s, const ps_dataset *ds, int split, int k, int mask_seen, char **json,
                   ps_error *err)
{
    *json = NULL;
    if (split != PS_SPLIT_VALID && split != PS_SPLIT_TEST)
        return ps_fail(err, "split must be 0 (valid) or 1 (test), got %d", split);
    if (k < 1 || k > 100000)
        return ps_fail(err, "k must be in 1..100000 (got %d)", k);
    if (ps_sasrec_check_dataset(s->model, ds->n_items, ds->max_seq_len, "model", err) != PS_OK)
        return PS_ERR;
    ps_eval_options o;
    ps_eval_options_init(&o);
    o.split = (ps_split)split;
    o.k = k;
    o.mask_seen = mask_seen != 0;
    o.item_embedding = ps_sasrec_item_embedding(s->model, &o.item_embedding_dim);
    if (!o.item_embedding)
        return ps_fail(err, "model: no item_embedding.weight of shape [n_items + 1, d]");
    ps_metrics met;
    if (ps_evaluate(ds, &s->sc, &o, &met, err) != PS_OK)
        return PS_ERR;
    return json_text(ps_metrics_to_json(&met), json, err);
}

void psffi_topk(const float *scores, int64_t B, int32_t n_items, int k, const uint8_t *exclude, int32_t *out)
{
    const int64_t V = (int64_t)n_items + 1;
    for (int64_t b = 0; b < B; b++)
        ps_topk(scores + b * V, n_items, k, exclude ? exclude + b * V : NULL, out + b * k);
}

/* ---------------------------------------------------------------------------------------------
 * Checkpoints from elsewhere */

int psffi_write_tensors(const char *path, int n, const char *const *names, const int *ndims, const int64_t *shapes,
                        const float *const *data, int n_meta, const char *const *keys, const char *const *values,
                        ps_error *err)
{
    if (!path)
        return ps_fail(err, "no output path");
    ps_st_writer *w = ps_st_writer_new(err);
    int rc = w ? PS_OK : PS_ERR;
    for (int i = 0; rc == PS_OK && i < n; i++)
        rc = ps_st_writer_add(w, names[i], PS_DTYPE_F32, ndims[i], shapes + (size_t)i * PS_ST_MAX_DIMS, data[i], err);
    for (int i = 0; rc == PS_OK && i < n_meta; i++)
        rc = ps_st_writer_meta(w, keys[i], values[i], err);
    if (rc == PS_OK)
        rc = ps_st_writer_write(w, path, err);
    ps_st_writer_free(w);
    return rc;
}
