/* Evaluation metrics (SPEC §6) and top-k selection.
 *
 * Ids follow the dataset convention: real items are 1..n_items and item 0 is padding, so
 * score arrays have n_items + 1 entries and index 0 is never selected or ranked.
 *
 * Ranking order, shared by ps_topk and ps_target_rank so that "target in the top-k list"
 * and "rank <= k" always agree: score descending, ties broken by the smaller item id, and a
 * NaN score ranks below every number (including -inf); NaNs among themselves by id.
 *
 * Determinism: the accumulator keeps only integer counts (users per rank and target label,
 * popularity sums per list length, exposure per item), so its results are bit-identical
 * whatever the order in which users are added and accumulators are merged — the per-thread
 * split of an OpenMP loop does not change a single digit. Doubles appear only in
 * ps_metrics_acc_finish, which visits the counts in a fixed order. */
#ifndef POPSTEER_METRICS_H
#define POPSTEER_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "popsteer/error.h"

/* Writes the k best items of scores[1..n_items] to out[0..k), best first, skipping items
 * with exclude[i] != 0 (exclude may be NULL; it has n_items + 1 entries). Uses a k-sized
 * heap over one pass (O(n log k), no allocation), not a full sort. When fewer than k items
 * are eligible (k > n_items, or many excluded) the remaining slots are filled with 0.
 * Does nothing when k <= 0. */
void ps_topk(const float *scores, int32_t n_items, int k, const uint8_t *exclude, int32_t *out);

/* 1-based rank of target in the ps_topk order among the non-excluded items 1..n_items:
 * 1 + #{i != target: i ranks before target}. The target itself is ranked even if it is
 * excluded (its rank is then its position had it been eligible). Returns 0 if target is
 * not in 1..n_items. O(n_items), no allocation. */
int32_t ps_target_rank(const float *scores, int32_t n_items, int32_t target, const uint8_t *exclude);

/* Final metric values. Accuracy metrics are means over users; NDCG by label is the mean
 * over users whose target has that label (0 when there are none). Exposure metrics use
 * c_i = number of top-k lists containing item i, over the n_items real items. */
typedef struct ps_metrics {
    int k;
    int64_t users;
    double ndcg, hit, recall, precision, mrr;        /* recall == hit: one target per user */
    double ndcg_head, ndcg_mid, ndcg_tail;
    int64_t users_head, users_mid, users_tail;
    double coverage;          /* |{i: c_i > 0}| / n_items */
    double lt_coverage;       /* share of non-head items (label != +1) with c_i > 0 */
    double deep_lt_coverage;  /* share of tail items (label == -1) with c_i > 0 */
    double gini;              /* Gini of (c_1..c_n), zero-exposure items included */
    double arp;               /* literature: mean over users of the list's mean p_i, p_i = pop_i / Σ pop */
    double arp_distinct;      /* reference code: mean p_i over the distinct recommended items */
    double aplt;              /* mean over users of the share of non-head items in the list */
    double entropy;           /* -Σ q_i ln q_i, q_i = c_i / Σ c: natural log (nats) */
} ps_metrics;

/* Target-label groups used to index ps_metrics_acc.rank_hist. */
enum { PS_GROUP_HEAD = 0, PS_GROUP_MID = 1, PS_GROUP_TAIL = 2, PS_GROUP_NONE = 3, PS_GROUP_COUNT = 4 };

/* Running sums over users. A complete type so callers can keep one on the stack or one per
 * thread; treat the fields as private. label and pop_count are borrowed and must outlive
 * the accumulator. */
typedef struct ps_metrics_acc {
    int k;
    int32_t n_items;
    const int8_t *label;      /* [n_items + 1] +1 head, 0 mid, -1 tail */
    const int64_t *pop_count; /* [n_items + 1] popularity counts (training targets) */
    int64_t pop_total;        /* Σ pop_count[1..n_items] */
    int64_t users;
    int64_t *rank_hist;       /* [PS_GROUP_COUNT][k + 1]: users by target group and rank 1..k; slot 0 = miss */
    int64_t *len_users;       /* [k + 1] users whose list has len real items */
    int64_t *len_pop;         /* [k + 1] Σ pop_count over those lists' items */
    int64_t *len_nonhead;     /* [k + 1] Σ #non-head items over those lists */
    int64_t *exposure;        /* [n_items + 1] c_i */
    int64_t *scratch;         /* [n_items] sorting space for the Gini, so finish needs no allocation */
} ps_metrics_acc;

/* Prepares an empty accumulator for top-k lists of length k over items 1..n_items.
 * label and pop_count must be non-NULL with n_items + 1 entries and pop_count >= 0. */
int ps_metrics_acc_init(ps_metrics_acc *a, int k, int32_t n_items, const int8_t *label,
                        const int64_t *pop_count, ps_error *err);

/* Adds one user: target item, its rank (from ps_target_rank; rank < 1 or > k is a miss)
 * and its top-k list (k ids). Ids outside 1..n_items — padding 0 — are ignored, and an id
 * repeated in one list counts once, so a list is treated as its set of real items. */
void ps_metrics_acc_add(ps_metrics_acc *a, int32_t target, int32_t rank, const int32_t *topk);

/* Adds from's users to into (e.g. per-thread accumulators). Both must have the same k and
 * n_items; the result equals adding all users to one accumulator, exactly. */
int ps_metrics_acc_merge(ps_metrics_acc *into, const ps_metrics_acc *from, ps_error *err);

/* Computes the metrics. Writes the accumulator's scratch buffer, so do not call it on the
 * same accumulator from two threads at once. With no users every value is 0. */
void ps_metrics_acc_finish(const ps_metrics_acc *a, ps_metrics *out);

/* Releases the buffers; safe on a zeroed or already-freed accumulator. */
void ps_metrics_acc_free(ps_metrics_acc *a);

/* A JSON object with the SPEC §8 keys, "@k" following m->k: users, ndcg@k, hit@k,
 * recall@k, precision@k, mrr@k, ndcg_head@k, ndcg_mid@k, ndcg_tail@k, coverage@k,
 * lt_coverage@k, deep_lt_coverage@k, gini@k, arp@k, arp_distinct@k, aplt@k, entropy@k —
 * all numbers. Exactly these keys, so callers may add their own without clashes.
 * Returns NULL on allocation failure. */
cJSON *ps_metrics_to_json(const ps_metrics *m);

/* A human-readable multi-line table (one metric per line, with the label-split user counts). */
void ps_metrics_print(FILE *fp, const ps_metrics *m);

#endif
