/* Full-ranking evaluation: batches of prefixes through a scorer, then per-user top-k and
 * target rank in parallel, accumulated into integer counters (order-independent). */
#include "popsteer/evaluate.h"
#include "popsteer/dist.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_BATCH 512

void ps_eval_options_init(ps_eval_options *o)
{
    memset(o, 0, sizeof *o);
    o->split = PS_SPLIT_VALID;
    o->k = 10;
}

const ps_sample *ps_split_samples(const ps_dataset *ds, ps_split split)
{
    return split == PS_SPLIT_TEST ? ds->test : ds->valid;
}

void ps_batch_prefixes(const ps_dataset *ds, const ps_sample *samples, int B, int L, int32_t *seq, int32_t *len)
{
    memset(seq, 0, (size_t)B * (size_t)L * sizeof *seq);
    for (int b = 0; b < B; b++) {
        int n;
        const int32_t *p = ps_sample_prefix(ds, samples[b], &n);
        if (n > L) { /* keep the most recent L items */
            p += n - L;
            n = L;
        }
        memcpy(seq + (size_t)b * L, p, (size_t)n * sizeof *seq);
        len[b] = n;
    }
}

/* Per-thread state: its own accumulator and exclusion mask. */
typedef struct eval_worker {
    ps_metrics_acc acc;
    uint8_t *exclude;
    int32_t *list;
} eval_worker;

static void set_seen(const ps_dataset *ds, ps_sample s, uint8_t *exclude, uint8_t value)
{
    const int32_t *items = ds->seq + ds->user_off[s.user];
    for (int32_t j = 0; j < s.pos; j++)
        exclude[items[j]] = value;
}

static int rank_user(const ps_dataset *ds, const ps_eval_options *o, eval_worker *w, int64_t index, ps_sample s,
                     const float *scores)
{
    uint8_t *exclude = NULL;
    int32_t target = ps_sample_target(ds, s);
    if (o->mask_seen) {
        set_seen(ds, s, w->exclude, 1);
        w->exclude[target] = 0; /* a repeated item stays rankable: it is the answer */
        exclude = w->exclude;
    }
    int rc = 0;
    if (o->filter)
        rc = o->filter->apply(o->filter->ctx, (int32_t)index, s, scores, exclude, w->list);
    else
        ps_topk(scores, ds->n_items, o->k, exclude, w->list);
    int32_t rank = 0;
    if (o->filter) { /* a re-ranked list defines the rank: position of the target in it */
        for (int j = 0; j < o->k; j++)
            if (w->list[j] == target)
                rank = j + 1;
    } else {
        rank = ps_target_rank(scores, ds->n_items, target, exclude);
    }
    ps_metrics_acc_add(&w->acc, target, rank, w->list);
    if (o->mask_seen)
        set_seen(ds, s, w->exclude, 0);
    return rc;
}

static void free_workers(eval_worker *w, int n)
{
    for (int t = 0; t < n && w; t++) {
        ps_metrics_acc_free(&w[t].acc);
        free(w[t].exclude);
        free(w[t].list);
    }
    free(w);
}

static eval_worker *make_workers(const ps_dataset *ds, const ps_eval_options *o, const ps_ilad_vectors *v, int n,
                                 ps_error *err)
{
    eval_worker *w = ps_calloc((size_t)n, sizeof *w, "evaluation workers", err);
    if (!w)
        return NULL;
    for (int t = 0; t < n; t++) {
        w[t].exclude = ps_calloc((size_t)ds->n_items + 1, 1, "exclusion mask", err);
        w[t].list = ps_calloc((size_t)o->k, sizeof *w[t].list, "top-k list", err);
        if (!w[t].exclude || !w[t].list ||
            ps_metrics_acc_init(&w[t].acc, o->k, ds->n_items, ds->label, ds->train_count, err) != PS_OK ||
            ps_ilad_vectors_attach(v, &w[t].acc, err) != PS_OK) {
            free_workers(w, n);
            return NULL;
        }
    }
    return w;
}

static int rank_batch(const ps_dataset *ds, const ps_eval_options *o, eval_worker *w, const ps_sample *samples,
                      int64_t first, int B, const float *scores)
{
    size_t V = (size_t)ds->n_items + 1;
    int failed = 0;
    if (o->filter && o->filter->sequential) {
        for (int b = 0; b < B && !failed; b++)
            failed = rank_user(ds, o, &w[0], first + b, samples[first + b], scores + (size_t)b * V) != 0;
        return failed;
    }
#pragma omp parallel for schedule(dynamic, 16) reduction(| : failed)
    for (int b = 0; b < B; b++)
        failed |= rank_user(ds, o, &w[omp_get_thread_num()], first + b, samples[first + b], scores + (size_t)b * V) != 0;
    return failed;
}

int ps_evaluate(const ps_dataset *ds, const ps_scorer *sc, const ps_eval_options *o, ps_metrics *m, ps_error *err)
{
    if (o->k < 1)
        return ps_fail(err, "k must be at least 1 (got %d)", o->k);
    const ps_sample *samples = ps_split_samples(ds, o->split);
    int64_t n = ds->n_users;
    int L = ds->max_seq_len;
    int batch = sc->max_batch < EVAL_BATCH ? sc->max_batch : EVAL_BATCH;
    int nth = omp_get_max_threads();
    ps_ilad_vectors vec;
    if (ps_ilad_vectors_make(&vec, ds->n_items, o->item_embedding, o->item_embedding_dim, o->item_features,
                             o->item_features_dim, err) != PS_OK)
        return PS_ERR;
    eval_worker *w = make_workers(ds, o, &vec, nth, err);
    int32_t *seq = ps_calloc((size_t)batch * (size_t)L, sizeof *seq, "evaluation batch", err);
    int32_t *len = ps_calloc((size_t)batch, sizeof *len, "evaluation batch", err);
    float *scores = ps_calloc((size_t)batch * ((size_t)ds->n_items + 1), sizeof *scores, "scores", err);
    int rc = (w && seq && len && scores) ? PS_OK : PS_ERR;
    int64_t lo = 0, hi = n; /* this rank's users (all in one process) */
    const int sharded = ps_dist_size(o->dist) > 1 && !(o->filter && o->filter->sequential);
    if (sharded)
        ps_dist_share(o->dist, n, &lo, &hi);
    for (int64_t first = lo; rc == PS_OK && first < hi; first += batch) {
        int B = (int)(hi - first < batch ? hi - first : batch);
        ps_batch_prefixes(ds, samples + first, B, L, seq, len);
        rc = sc->score(sc->ctx, seq, len, B, scores, err);
        if (rc == PS_OK && rank_batch(ds, o, w, samples, first, B, scores))
            rc = ps_fail(err, "re-ranking failed");
        if (o->progress)
            o->progress(o->progress_ctx, first + B - lo, hi - lo);
    }
    for (int t = 1; rc == PS_OK && t < nth; t++)
        rc = ps_metrics_acc_merge(&w[0].acc, &w[t].acc, err);
    if (rc == PS_OK && sharded)
        rc = ps_dist_sum_metrics(o->dist, &w[0].acc, err);
    if (rc == PS_OK)
        ps_metrics_acc_finish(&w[0].acc, m);
    if (rc == PS_OK && o->exposure_out)
        memcpy(o->exposure_out, w[0].acc.exposure, ((size_t)ds->n_items + 1) * sizeof *o->exposure_out);
    if (w)
        free_workers(w, nth);
    ps_ilad_vectors_free(&vec);
    free(seq);
    free(len);
    free(scores);
    return rc;
}

/* ---------- re-ranking ---------- */

static int rerank_apply(void *ctx, int32_t user_index, ps_sample s, const float *scores, const uint8_t *exclude,
                        int32_t *out)
{
    ps_rerank_filter *f = ctx;
    int t = omp_get_thread_num() % f->n_threads;
    int32_t *cand = f->cand + (size_t)t * f->L;
    float *cs = f->cand_scores + (size_t)t * f->L;
    int n = ps_rerank_candidates(scores, f->ds->n_items, f->L, exclude, cand, cs);
    const int32_t *hist = f->ds->seq + f->ds->user_off[s.user];
    return ps_reranker_apply_ex(f->r, user_index, cand, cs, n, hist, s.pos, out, NULL) < 0 ? PS_ERR : PS_OK;
}

int ps_rerank_filter_init(ps_rerank_filter *f, ps_reranker *r, const ps_dataset *ds, int L, ps_error *err)
{
    memset(f, 0, sizeof *f);
    f->r = r;
    f->ds = ds;
    f->L = L;
    f->n_threads = omp_get_max_threads();
    f->cand = ps_calloc((size_t)f->n_threads * (size_t)L, sizeof *f->cand, "candidates", err);
    f->cand_scores = ps_calloc((size_t)f->n_threads * (size_t)L, sizeof *f->cand_scores, "candidates", err);
    if (!f->cand || !f->cand_scores) {
        ps_rerank_filter_free(f);
        return PS_ERR;
    }
    f->filter = (ps_list_filter){f, ps_reranker_is_sequential(r), rerank_apply};
    return PS_OK;
}

void ps_rerank_filter_free(ps_rerank_filter *f)
{
    free(f->cand);
    free(f->cand_scores);
    memset(f, 0, sizeof *f);
}
