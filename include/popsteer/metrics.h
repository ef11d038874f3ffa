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
 * ps_metrics_acc_finish, which visits the counts in a fixed order. The one per-user real number,
 * a list's ILAD, is computed from that list alone and stored as an integer (fixed point with
 * PS_ILAD_FIXED_ONE units), so it obeys the same rule.
 *
 * ILAD@k (intra-list average distance, SPEC §6), for item vectors v_i (SASRec item embeddings,
 * or item feature rows):
 *   ILAD_u = mean over the m(m-1)/2 pairs {i, j} of u's list of (1 - cos(v_i, v_j)),
 *   ILAD   = mean of ILAD_u over the users whose list has m >= 2 distinct real items
 * (a list of 0 or 1 real items has no pair, so its user is left out of this mean, not counted
 * as 0). The list is the same set of distinct real items the other metrics use. A zero vector
 * (an item without features, an all-zero flag row) has cosine 0 with every item, so each of its
 * pairs has distance 1 — the value sklearn's cosine_similarity gives, and what the dot product
 * of L2-normalised copies (ps_item_unit_vectors keeps a zero row zero) yields by itself.
 * Cost per user is O(m d), not O(m^2 d): with unit vectors u_i and S = Σ u_i,
 *   Σ_{i<j} u_i·u_j = (|S|^2 - Σ |u_i|^2) / 2,
 * evaluated in double. */
#ifndef POPSTEER_METRICS_H
#define POPSTEER_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "popsteer/error.h"

/* The two kinds of item vectors ILAD can be computed with. */
enum { PS_ILAD_EMBEDDING = 0, PS_ILAD_FEATURES = 1, PS_ILAD_COUNT = 2 };

/* A user's ILAD (in [0, 2]) is accumulated as llround(ILAD_u * PS_ILAD_FIXED_ONE): resolution
 * 9.3e-10, and at most 2^31 per user, so 2^31 users cannot overflow the int64 sum. */
#define PS_ILAD_FIXED_ONE ((int64_t)1 << 30)

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
    double ilad;              /* ILAD with the item embeddings; meaningful when has_ilad */
    double ilad_features;     /* ILAD with the item feature vectors; meaningful when has_ilad_features */
    int has_ilad, has_ilad_features; /* whether those vectors were set on the accumulator */
    int64_t ilad_users;       /* users in the ILAD means: lists with >= 2 distinct real items */
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
    int32_t *distinct;        /* [k] the distinct real items of the list being added */
    const float *ilad_vec[PS_ILAD_COUNT]; /* borrowed unit vectors [n_items + 1][dim]; NULL = not set */
    int ilad_dim[PS_ILAD_COUNT];
    double *ilad_sum[PS_ILAD_COUNT];      /* [dim] S = Σ of the list's vectors (scratch) */
    int64_t ilad_fixed[PS_ILAD_COUNT];    /* Σ over users of llround(ILAD_u * PS_ILAD_FIXED_ONE) */
} ps_metrics_acc;

/* Prepares an empty accumulator for top-k lists of length k over items 1..n_items.
 * label and pop_count must be non-NULL with n_items + 1 entries and pop_count >= 0. */
int ps_metrics_acc_init(ps_metrics_acc *a, int k, int32_t n_items, const int8_t *label,
                        const int64_t *pop_count, ps_error *err);

/* L2-normalised copy of item vectors [n_items + 1][dim] (row i = item i, row 0 = padding), for
 * ps_metrics_acc_set_item_vectors: make it once, share it between accumulators and threads.
 * Row 0 is zeroed (padding never counts), a zero row stays zero, norms are computed in double.
 * Fails on a non-finite value, naming the item. Returns a malloc'ed array (free() it), or NULL. */
float *ps_item_unit_vectors(const float *vectors, int32_t n_items, int dim, ps_error *err);

/* Both kinds of ILAD vectors, normalised once and shared by every accumulator of an evaluation
 * (ps_evaluate, the sweep). */
typedef struct ps_ilad_vectors {
    float *unit[PS_ILAD_COUNT]; /* ps_item_unit_vectors copies, NULL when not given */
    int dim[PS_ILAD_COUNT];
} ps_ilad_vectors;

/* Normalised copies of the item embeddings and of the item features (either may be NULL: that
 * ILAD is then not computed). On failure v is left empty (safe to free). */
int ps_ilad_vectors_make(ps_ilad_vectors *v, int32_t n_items, const float *embedding, int embedding_dim,
                         const float *features, int features_dim, ps_error *err);
/* ps_metrics_acc_set_item_vectors for every kind v holds. */
int ps_ilad_vectors_attach(const ps_ilad_vectors *v, ps_metrics_acc *a, ps_error *err);
void ps_ilad_vectors_free(ps_ilad_vectors *v);

/* Makes the accumulator compute ILAD with these vectors: which is PS_ILAD_EMBEDDING (reported as
 * ilad@k) or PS_ILAD_FEATURES (ilad_features@k); unit_vectors [n_items + 1][dim] from
 * ps_item_unit_vectors, borrowed (must outlive the accumulator); dim >= 1. Every row must have
 * norm 1 or 0 (checked to 1e-3, so raw embeddings are caught). Must be called before the first
 * ps_metrics_acc_add; accumulators to be merged need the same vectors. */
int ps_metrics_acc_set_item_vectors(ps_metrics_acc *a, int which, const float *unit_vectors, int dim,
                                    ps_error *err);

/* Adds one user: target item, its rank (from ps_target_rank; rank < 1 or > k is a miss)
 * and its top-k list (k ids). Ids outside 1..n_items — padding 0 — are ignored, and an id
 * repeated in one list counts once, so a list is treated as its set of real items. */
void ps_metrics_acc_add(ps_metrics_acc *a, int32_t target, int32_t rank, const int32_t *topk);

/* Adds from's users to into (e.g. per-thread accumulators). Both must have the same k and
 * n_items and the same ILAD vectors (pointer and dim, or none); the result equals adding all
 * users to one accumulator, exactly. */
int ps_metrics_acc_merge(ps_metrics_acc *into, const ps_metrics_acc *from, ps_error *err);

/* Computes the metrics. Writes the accumulator's scratch buffer, so do not call it on the
 * same accumulator from two threads at once. With no users every value is 0. */
void ps_metrics_acc_finish(const ps_metrics_acc *a, ps_metrics *out);

/* Releases the buffers; safe on a zeroed or already-freed accumulator. */
void ps_metrics_acc_free(ps_metrics_acc *a);

/* A JSON object with the SPEC §8 keys, "@k" following m->k: users, ndcg@k, hit@k,
 * recall@k, precision@k, mrr@k, ndcg_head@k, ndcg_mid@k, ndcg_tail@k, coverage@k,
 * lt_coverage@k, deep_lt_coverage@k, gini@k, arp@k, arp_distinct@k, aplt@k, entropy@k and
 * ilad@k — all numbers, except ilad@k, which is null when no embeddings were set (has_ilad 0)
 * rather than a made-up 0 — plus ilad_features@k (a number) only when has_ilad_features.
 * Exactly these keys, so callers may add their own without clashes.
 * Returns NULL on allocation failure. */
cJSON *ps_metrics_to_json(const ps_metrics *m);

/* A human-readable multi-line table (one metric per line, with the label-split user counts;
 * the ILAD lines only for the vectors that were set). */
void ps_metrics_print(FILE *fp, const ps_metrics *m);

#endif
