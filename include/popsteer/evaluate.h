/* Full-ranking evaluation (SPEC §6): every user's target ranked against all items.
 *
 * The model is abstracted as a scorer: a function from a batch of left-aligned prefixes to
 * scores over the item table. Plain SASRec, the SAE-reconstructed recommender and the steered
 * one are different scorers; re-ranking baselines act on the scores afterwards. */
#ifndef POPSTEER_EVALUATE_H
#define POPSTEER_EVALUATE_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/metrics.h"

typedef enum ps_split { PS_SPLIT_VALID = 0, PS_SPLIT_TEST = 1 } ps_split;

typedef struct ps_scorer {
    void *ctx;
    int max_batch; /* the largest B score() accepts */
    /* seq [B,L] left-aligned (0 = pad), len [B] -> scores [B, n_items + 1] (column 0 = pad). */
    int (*score)(void *ctx, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err);
} ps_scorer;

/* Optional step between scores and the top-k list (re-ranking baselines). Called for users in
 * increasing order when sequential is set (stateful methods), otherwise from several threads. */
typedef struct ps_list_filter {
    void *ctx;
    int sequential;
    /* scores [n_items + 1] of the sample (user_index: 0-based position in the split) -> out [k]
     * item ids (0-padded). exclude may be NULL. */
    int (*apply)(void *ctx, int32_t user_index, ps_sample s, const float *scores, const uint8_t *exclude,
                 int32_t *out);
} ps_list_filter;

typedef struct ps_eval_options {
    ps_split split;
    int k;                      /* list length, default 10 */
    int mask_seen;              /* exclude items the user interacted with before the target */
    const ps_list_filter *filter; /* NULL: plain top-k */
    /* if non-NULL, receives c_i: in how many top-k lists item i appears, [n_items + 1] */
    int64_t *exposure_out;
    /* ILAD (metrics.h): item vectors [n_items + 1][dim] by item id, raw (ps_evaluate makes the
     * unit copies), borrowed. item_embedding is the model's item embedding table — SASRec shares
     * it with the output layer, so it is the same for plain, steered and re-ranked scoring —
     * and gives ilad@k; item_features (e.g. ps_item_features_load) gives ilad_features@k.
     * NULL: that ILAD is not computed (has_ilad / has_ilad_features stay 0). */
    const float *item_embedding;
    int item_embedding_dim;
    const float *item_features;
    int item_features_dim;
    /* called after every batch with the number of users done, for progress lines; may be NULL */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
    /* popsteer/dist.h (NULL: one process): users sharded across the ranks, the integer counters
     * summed, every rank gets the same metrics as one process would (a sequential re-ranker,
     * whose lists depend on the users before, runs every user on every rank instead) */
    const struct ps_dist *dist;
} ps_eval_options;

void ps_eval_options_init(ps_eval_options *o);

/* Ranks every user of the split and fills m. */
int ps_evaluate(const ps_dataset *ds, const ps_scorer *sc, const ps_eval_options *o, ps_metrics *m, ps_error *err);

/* The samples of a split (n_users of them). */
const ps_sample *ps_split_samples(const ps_dataset *ds, ps_split split);

/* Fills seq [B,L] (left-aligned, 0-padded) and len [B] with the prefixes of B samples. */
void ps_batch_prefixes(const ps_dataset *ds, const ps_sample *samples, int B, int L, int32_t *seq, int32_t *len);

/* ---- re-ranking baselines as a list filter ---- */
#include "popsteer/rerank.h"

typedef struct ps_rerank_filter {
    ps_list_filter filter;
    ps_reranker *r;
    const ps_dataset *ds;
    int L, n_threads;
    int32_t *cand;   /* [n_threads, L] */
    float *cand_scores;
} ps_rerank_filter;

/* Wraps r (not owned) so ps_evaluate re-ranks the top-L candidates of every user; xQuAD and
 * calibrated popularity see the user's history before the target. */
int ps_rerank_filter_init(ps_rerank_filter *f, ps_reranker *r, const ps_dataset *ds, int L, ps_error *err);
void ps_rerank_filter_free(ps_rerank_filter *f);

#endif
