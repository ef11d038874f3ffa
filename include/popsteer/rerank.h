/* Post-hoc re-ranking baselines (SPEC §7).
 *
 * Every method works on one user's candidate list — the top-L items of the base model's
 * full score vector, best first, with their scores (ps_rerank_candidates builds it) — and
 * writes a top-k list. Items follow the dataset convention: real items are 1..n_items,
 * 0 is padding; label[i] is +1 head, 0 mid, -1 tail; pop_count[i] is the training-target
 * count, so the popularity share is p_i = pop_count[i] / Σ pop_count.
 *
 * Usage:
 *     ps_rerank_ctx ctx = { .n_items = n, .label = label, .pop_count = pop, .k = 10,
 *                           .L = 100, .seed = 42, .n_users = users };
 *     const ps_rerank_setting *grid; int n_grid;
 *     ps_rerank_default_grid("xquad", &grid, &n_grid, &err);
 *     ps_reranker *r = ps_reranker_create("xquad", &ctx, grid[g].params, grid[g].n_params, &err);
 *     ... ps_reranker_apply_ex(r, u, cand, cand_scores, L, hist, hist_len, topk, &err) ...
 *     ps_reranker_free(r);
 *
 * Parameters are "name=value" strings. An unknown method, an unknown or repeated parameter
 * name, a missing '=', or a value that is not a number / outside its range / not one of
 * the listed choices is an error whose message lists every valid parameter with its range
 * and default. Omitted parameters take their defaults.
 *
 * Threads: a reranker whose method is not sequential (every method but pmmf) only reads
 * its state in apply, so one reranker may serve different users from several threads at
 * once (OpenMP over users), and its output for a user does not depend on the thread or on
 * the order in which users are served. pmmf is sequential (ps_reranker_is_sequential):
 * its dual variables and budgets evolve as users are served, so the caller must call apply
 * from one thread, users in a fixed order; the result depends on that order.
 *
 * Candidates: cand[0..L) are item ids, best first (ps_topk order), cand_scores their base
 * scores. Padding ids (0) anywhere in the list are skipped; an id outside 0..n_items or a
 * repeated real id is an error. Methods that re-score break ties by candidate position
 * (earlier first). "s_norm" below is the per-user min-max normalisation of the real
 * candidates' scores to [0, 1] (all 0 when every finite score is equal); a NaN or -inf
 * score normalises to -1 (below every finite score) and +inf to 1.
 * When fewer than k real candidates are given, the list has that many items and the rest
 * of out_topk is 0.
 *
 * Methods (groups: head = label +1, mid = 0, tail = -1; "non-head" = mid or tail):
 *
 * random — uniform random permutation of the real candidates, first k kept. The generator
 *   is seeded from (ctx.seed, user_index) alone (SplitMix64), so the same seed and user
 *   give the same list whatever the thread or order. No parameters; the grid is one point.
 *
 * penalty — popularity-penalised re-scoring, then the k best:
 *     s'_i = s_i - |s_i| * (1 - 1/(1 + beta * r_i)),   r_i = pop_count[i] / max_j pop_count[j]
 *   For s_i >= 0 this is SPEC's s_i/(1 + beta r_i); for s_i < 0 it equals
 *   s_i * (1 + beta r_i/(1 + beta r_i)), which moves the score DOWN (plain division would
 *   move a negative score up, rewarding popularity). s' is strictly increasing in s_i and
 *   non-increasing in r_i, so items of equal popularity keep their order and a more popular
 *   item is never promoted. With max pop_count = 0 the scores are unchanged.
 *   Parameter: beta in [0, 1e6], default 1. Grid (6 points): beta ∈ {0.1, 0.25, 0.5, 1, 2, 4}.
 *
 * fair — FA*IR (Zehlike et al., CIKM 2017). Protected items are the tail items (group=tail,
 *   the default, as the reference) or the non-head items (group=nonhead). The minimum number
 *   of protected items in the top-i prefix is the binomial quantile
 *     m(i) = min { m : BinomCDF(m; i, p) > alpha_c },   i = 1..k,
 *   with the Šidák correction alpha_c = 1 - (1 - alpha)^(1/k) for the k prefix tests — the
 *   simple correction, as the reference code, not the paper's exact (recursive) adjustment,
 *   which is slightly less conservative. Construction: walk positions i = 1..k; if fewer
 *   than m(i) protected items are placed so far and a protected candidate remains, place the
 *   best remaining protected candidate; otherwise place the best remaining candidate of
 *   either group. So when the candidates run out of protected items the list is filled from
 *   the unprotected ones (the quota is then not met; the reference does the same).
 *   "Best" = base score, ties by candidate position. Parameters: p in (0, 1) target
 *   protected proportion, default 0.5; alpha in (0, 1) significance, default 0.1;
 *   group = tail | nonhead, default tail. Candidates: default_L = 500 (SPEC §7).
 *   Grid (21 points): p ∈ {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99} × alpha ∈ {0.01, 0.05, 0.1},
 *   group = tail; p = 0.99, alpha = 0.1 is the strongest (most tail items per prefix),
 *   though not the lowest Gini: past p ≈ 0.9 every user gets the same few top tail items
 *   (Last.fm validation: lowest Gini@10 at p = 0.8–0.9, -12.7 %; p = 0.99 raises it).
 *
 * xquad — xQuAD for popularity (Abdollahpouri et al., "Managing popularity bias in
 *   recommender systems with personalized re-ranking", FLAIRS 2019). Categories
 *   c ∈ {short head (label +1), long tail (mid + tail)}. Greedy: S = {}; k times add
 *     argmax_{i ∉ S} (1 - lambda) s_norm(i) + lambda * Σ_c P(c|u) [i ∈ c] cov(c, S)
 *   variant=binary (the paper's binary xQuAD): cov(c, S) = Π_{j ∈ S} (1 - [j ∈ c]), i.e. 1
 *     while c is absent from S and 0 once it is present;
 *   variant=smooth (the paper's smooth xQuAD): cov(c, S) = 1 - |S ∩ c| / |S| (1 for S = {}),
 *     so an item keeps earning lambda·P(c|u) in proportion to how under-represented its
 *     category is in the list so far.
 *   P(c|u) = share of the user's history items (ids 1..n_items in hist) in c; without a
 *   history (hist NULL or no valid id) the share among the real candidates is used. Ties by
 *   candidate position. Parameters: lambda in [0, 1], default 0.5; variant = binary | smooth,
 *   default binary. Grid (22 points): lambda ∈ {0, 0.1, ..., 1} × variant ∈ {binary, smooth};
 *   lambda = 1 (relevance only breaks ties) is the strongest. xQuAD moves each list towards
 *   the user's own head / long-tail mix; it lowers popularity concentration only where the
 *   base lists hold MORE head items than the profiles. On Last.fm validation they hold fewer
 *   (SASRec's lists are 14.6 % head, the profile-calibrated ones about 21 %), so every grid
 *   point adds head items and Gini@10 rises (+1.7 % binary, +4.5 % smooth at lambda = 1).
 *
 * cp — calibrated popularity (Abdollahpouri et al., 2021). Target distribution P over
 *   {head, mid, tail} = the user's history shares (fallback: the candidates' shares, as in
 *   xquad). Greedy: S = {}; k times add
 *     argmax_{i ∉ S} (1 - lambda) s_norm(i) - lambda * JS(P, Q(S ∪ {i}))
 *   (equivalently maximise (1-lambda) Σ_S s_norm - lambda JS for the grown list), where Q(S)
 *   is the {head, mid, tail} share of S and JS the Jensen–Shannon divergence with log base 2
 *   (so 0 <= JS <= 1). Both distributions are smoothed before JS: x_g <- (x_g + 1e-6) /
 *   (1 + 3e-6). Parameter: lambda in [0, 1], default 0.5. Grid (13 points): lambda ∈ {0,
 *   0.1, ..., 0.9, 0.95, 0.99, 1}. CP calibrates, it does not target Gini: it moves each list
 *   towards the user's own head/mid/tail mix, which for most users means MORE head items
 *   than the base model shows, so Gini may rise; lambda = 1 is full calibration.
 *
 * pmmf — P-MMF (Xu et al., WWW 2023): provider max-min fairness by online dual mirror
 *   descent, providers = the head, mid and tail groups, following the authors' released
 *   implementation (P-MMF.py, CPU path). Per-group share rho_g over the G non-empty groups:
 *   share=equal gives 1/G; share=size gives |group g| / n_items; share=size43 (default, the
 *   authors' and the PopSteer reference's choice) gives (1 + 1/G) · |group g| / n_items,
 *   i.e. (4/3)·n_g/N for three groups (the shares sum to 4/3, so no single group's budget
 *   has to be filled exactly). Relevance r_i: norm=sigmoid (default, the authors': they
 *   squash the preference scores with the logistic function) gives r_i = 1/(1 + e^(-s_i));
 *   norm=minmax gives s_norm(i). Exposure = number of items of the group in a served top-k
 *   list (no position weighting). Horizon T = ctx.n_users (the users to be served).
 *   Budgets: B_g = slack · T · k · rho_g; they are off (infinite) when slack = 0 or T = 0.
 *   State: mu_g = 0, momentum G_g = 0. For each served user (list length n = min(k, real
 *   candidates), n_g of them in group g):
 *     1. key(i) = r_i - mu_{g(i)}; candidates of groups whose remaining budget is <= 0 rank
 *        after all others; the n best keys are chosen and then listed in base score order
 *        (the authors re-sort the chosen set by relevance);
 *     2. exposure e_g += n_g, remaining R_g = B_g - e_g;
 *     3. gradient grad_g = R_g / (T·k) - n_g / n with budgets on (the authors' form: the
 *        remaining budget rate minus the consumption), grad_g = rho_g - n_g / n with budgets
 *        off; momentum G <- momentum·grad + (1 - momentum)·G;
 *     4. mu~ = mu - eta_t · G / rho^2 with eta_t = eta / sqrt(T) (the authors' step; eta when
 *        T = 0), then mu = the rho-weighted projection argmin_{mu ∈ D} Σ_g rho_g² (mu_g -
 *        mu~_g)² onto D = { mu : Σ_{g ∈ S} rho_g mu_g >= -lambda for every group subset S },
 *        computed exactly in closed form (y = rho·mu~; negative y_g are raised to
 *        min(y_g + nu, 0) with the smallest nu >= 0 making Σ_g min(y_g, 0) >= -lambda). The
 *        authors solve the same projection with cvxpy over the prefix constraints of the
 *        rho·mu~ order, which is the same set for the worst subsets.
 *   Over-exposed groups get a growing mu (a penalty); under-exposed groups may get a
 *   negative mu (a bonus) whose total weighted size lambda bounds — lambda acts only through
 *   that bound, so it changes the lists only once eta is large enough for the bonuses to
 *   reach it and they are not already decided by the budgets. With share=size43 the budgets
 *   dominate: on Last.fm validation the head budget (4/3 · 42/2975 · 1362 · 10 = 256 slots)
 *   is spent within the first ~100 users and the mid budget (7,062 slots) before the end,
 *   after which only tail items can be served; the hard mask, not the duals, sets the group
 *   mix (tail >= 46 % of all slots for any lambda), so lambda moves NDCG@10 and Gini@10 only
 *   in the third decimal (eta >= 1e-3) or not at all (eta = 1e-4, where the bonuses stay
 *   below even lambda = 0.001). The authors' code is the same here: lambda enters only the
 *   projection. The authors serve users in batches of T = 256 with a fresh state per batch; here
 *   the horizon is every user the caller serves. A user with no real candidate changes
 *   nothing. Parameters: lambda in [0, 1e6] (default 0.1), eta in (0, 1e6] (default 0.001),
 *   momentum in (0, 1] (default 0.1, the authors' alpha), share = equal | size | size43
 *   (default size43), slack in [0, 1e6] (default 1; 0 = no budget cap), norm = sigmoid |
 *   minmax (default sigmoid). Grid (15 points): lambda ∈ {0.001, 0.01, 0.1, 1, 10} ×
 *   eta ∈ {1e-4, 1e-3, 1e-2}, share = size43.
 *
 * pct — the PopSteer reference's calibrated-exposure re-ranker (PCT). Two groups: niche =
 *   tail items (label -1), the rest = head + mid. Position weights w_r = 1/log2(r + 1) for
 *   list positions r = 1..k, total W = Σ_r w_r; target exposure t_niche = p·W,
 *   t_rest = (1 - p)·W; exposure e_g starts at 0. Candidates are taken in the caller's order
 *   (best first); rank(i) = 1 + the candidate's index among the real candidates.
 *     Pass 1 (keep the best items while safe): for r = 1..k, place at r the first unplaced
 *       candidate i (in candidate order) with e_{g(i)} + w_r <= t_{g(i)}, and add w_r to
 *       e_{g(i)}; when no candidate fits, r stays empty.
 *     Pass 2 (MMR fill): for each empty r in increasing order, place
 *       argmax_{i unplaced} lambda / rank(i) - (1 - lambda) · ½ Σ_g (e'_g - t_g)²
 *       with e' = e plus w_r on g(i) (ties: the earlier candidate), and add w_r to e_{g(i)}.
 *   The list is the placed items in position order (with fewer than k candidates the empty
 *   positions are dropped). Relevance enters only through the rank (1/rank, as the
 *   reference), not the score. The reference's personalised variant (per-user targets from a
 *   batch linear program) is not offered: its targets depend on which users share a batch.
 *   Parameters: p in [0, 1] target niche share of the exposure, default 0.5; lambda in
 *   [0, 1] weight of the rank in the fill, default 0.7 (the reference's defaults).
 *   Candidates: default_L = 250 (the reference's list_size). Grid (25 points):
 *   p ∈ {0.3, 0.5, 0.7, 0.9, 0.99} × lambda ∈ {0, 0.3, 0.5, 0.7, 0.9}; p = 0.99 with
 *   lambda = 0 pushes hardest to the niche. Gini is not monotone in p: past the point where
 *   the lists' tail share matches the tail's share of exposure, every user gets the same
 *   few top tail items and concentration rises again (Last.fm validation: lowest Gini@10
 *   at p = 0.5–0.7, -12 %; p = 0.99 raises it).
 */
#ifndef POPSTEER_RERANK_H
#define POPSTEER_RERANK_H

#include <stdint.h>

#include "popsteer/error.h"

#define PS_RERANK_DEFAULT_L 100
#define PS_RERANK_MAX_PARAMS 6
#define PS_RERANK_GROUPS 3 /* head, mid, tail: indices PS_RERANK_HEAD.. */
enum { PS_RERANK_HEAD = 0, PS_RERANK_MID = 1, PS_RERANK_TAIL = 2 };

/* What every method may read; the arrays are borrowed and must outlive the reranker. */
typedef struct ps_rerank_ctx {
    int32_t n_items;          /* real items 1..n_items */
    const int8_t *label;      /* [n_items + 1] +1 head, 0 mid, -1 tail (required) */
    const int64_t *pop_count; /* [n_items + 1] training-target counts >= 0 (required) */
    int k;                    /* output list length, 1 <= k <= L */
    int L;                    /* candidates per user; 0 means PS_RERANK_DEFAULT_L */
    uint64_t seed;            /* random: per-user permutations derive from (seed, user) */
    int64_t n_users;          /* pmmf: users to be served (budget horizon T); 0 = unknown */
} ps_rerank_ctx;

/* One grid point: n_params "name=value" strings, ready for ps_reranker_create. */
typedef struct ps_rerank_setting {
    int n_params;
    const char *params[PS_RERANK_MAX_PARAMS];
} ps_rerank_setting;

/* A method's static description. */
typedef struct ps_rerank_method_info {
    const char *name;        /* "random", "penalty", "fair", "xquad", "cp", "pmmf", "pct" */
    const char *doc;         /* one line */
    const char *params_doc;  /* "beta: real in [0, 1e6], default 1; grid: ..." ("" when none) */
    int sequential;          /* 1: apply must be called from one thread, users in order */
    int default_L;           /* the method's own candidate count (fair 500, pct 250), for
                              * callers that let the method choose L; 0 = the caller's
                              * default, PS_RERANK_DEFAULT_L */
} ps_rerank_method_info;

typedef struct ps_reranker ps_reranker;

/* The registered methods, in a fixed order: ps_rerank_method_at(0 .. count-1); NULL when
 * i is out of range. */
int ps_rerank_method_count(void);
const ps_rerank_method_info *ps_rerank_method_at(int i);

/* The candidate count L to use for method when the caller has no explicit L: the method's
 * default_L, or PS_RERANK_DEFAULT_L when that is 0 or the method is unknown. */
int ps_rerank_method_default_L(const char *method);

/* The method's default sweep grid (static storage, never freed): *n_settings points. */
int ps_rerank_default_grid(const char *method, const ps_rerank_setting **settings,
                           int *n_settings, ps_error *err);

/* Builds a reranker; params[0..n_params) are "name=value" (params may be NULL when
 * n_params is 0). Returns NULL with err set on any error (see the top of this file). */
ps_reranker *ps_reranker_create(const char *method, const ps_rerank_ctx *ctx,
                                const char *const *params, int n_params, ps_error *err);

/* Re-ranks one user's candidates into out_topk[0..k). hist[0..hist_len) is the user's
 * interaction history (used by xquad and cp; others ignore it; may be NULL). Returns the
 * number of real items written (min(k, real candidates)), or PS_ERR with err set (err may
 * be NULL) for a bad argument, an invalid or repeated candidate id, or out of memory. */
int ps_reranker_apply_ex(ps_reranker *r, int32_t user_index, const int32_t *cand,
                         const float *cand_scores, int L, const int32_t *hist, int hist_len,
                         int32_t *out_topk, ps_error *err);

/* ps_reranker_apply_ex without history or error message. */
int ps_reranker_apply(ps_reranker *r, int32_t user_index, const int32_t *cand,
                      const float *cand_scores, int L, int32_t *out_topk);

/* "method(name=value, ...)" with every parameter's value, defaults included. */
const char *ps_reranker_describe(const ps_reranker *r);
const char *ps_reranker_method(const ps_reranker *r);
int ps_reranker_is_sequential(const ps_reranker *r);

/* Returns a sequential reranker to its initial state (pmmf: mu, momentum, exposure and
 * budgets), e.g. before a second pass over users; a no-op for stateless methods. */
void ps_reranker_reset(ps_reranker *r);

void ps_reranker_free(ps_reranker *r);

/* fair only: the quota m(i) for 1 <= i <= k; -1 for another method or i out of range. */
int ps_reranker_fair_quota(const ps_reranker *r, int i);

/* pmmf only: the explicit budget accounting, indexed by PS_RERANK_HEAD/MID/TAIL. */
typedef struct ps_rerank_budget {
    int64_t users_served;                        /* users with >= 1 real candidate */
    int64_t exposure[PS_RERANK_GROUPS];          /* items served per group so far */
    double share[PS_RERANK_GROUPS];              /* rho_g (0 for an empty group) */
    double budget_initial[PS_RERANK_GROUPS];     /* slack·T·k·rho_g, or INFINITY when off */
    double budget_remaining[PS_RERANK_GROUPS];   /* budget_initial - exposure */
    double mu[PS_RERANK_GROUPS];                 /* current dual variables */
} ps_rerank_budget;
int ps_reranker_budget(const ps_reranker *r, ps_rerank_budget *out, ps_error *err);

/* Candidate extraction: the L best items of scores[1..n_items] (ps_topk order, exclude as
 * in ps_topk, may be NULL) into cand[0..L) with their scores; slots beyond the eligible
 * items get id 0 and score 0. Returns the number of real candidates. */
int ps_rerank_candidates(const float *scores, int32_t n_items, int L, const uint8_t *exclude,
                         int32_t *cand, float *cand_scores);

/* ---- Implementation interface: only for src/eval/rerank*.c, which define
 * PS_RERANK_IMPL before including this header. ---- */
#ifdef PS_RERANK_IMPL
#include <stddef.h>

enum { PS_RP_REAL = 0, PS_RP_CHOICE = 1 };

typedef struct ps_rerank_param_spec {
    const char *name;
    int kind;             /* PS_RP_REAL or PS_RP_CHOICE */
    double lo, hi;        /* PS_RP_REAL: allowed range */
    int lo_open, hi_open; /* 1: the bound itself is excluded */
    const char *choices;  /* PS_RP_CHOICE: "a|b|c"; the value is the choice's index */
    const char *def;      /* default, as it would be written after '=' */
    const char *doc;
} ps_rerank_param_spec;

/* One user's candidates after the common checks: n >= 1 distinct real items. */
typedef struct ps_rerank_input {
    int32_t user;
    int n;
    const int32_t *id;       /* [n] in the caller's order (best first) */
    const float *score;      /* [n] base scores */
    const double *snorm;     /* [n] per-user min-max normalised scores */
    const int *group;        /* [n] PS_RERANK_HEAD / MID / TAIL */
    const int32_t *hist;     /* may be NULL */
    int hist_len;
    int *iwork;              /* [n] scratch */
    double *dwork;           /* [n] scratch */
    uint8_t *used;           /* [n] zeroed scratch */
} ps_rerank_input;

struct ps_reranker;

typedef struct ps_rerank_method_impl {
    ps_rerank_method_info info;
    const ps_rerank_param_spec *params;
    int n_params;
    const ps_rerank_setting *grid;
    int n_grid;
    /* Reads r->val, may set r->state; on error sets err and leaves nothing to free. */
    int (*init)(struct ps_reranker *r, ps_error *err);
    /* Writes min(k, in->n) ids to out; returns PS_OK or PS_ERR. */
    int (*apply)(struct ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err);
    void (*reset)(struct ps_reranker *r);      /* may be NULL */
    void (*free_state)(struct ps_reranker *r); /* may be NULL */
} ps_rerank_method_impl;

struct ps_reranker {
    const ps_rerank_method_impl *m;
    ps_rerank_ctx ctx;
    double val[PS_RERANK_MAX_PARAMS]; /* parameter values in spec order (choice: index) */
    char desc[320];
    void *state;
};

extern const ps_rerank_method_impl ps_rerank_random_impl;
extern const ps_rerank_method_impl ps_rerank_penalty_impl;
extern const ps_rerank_method_impl ps_rerank_fair_impl;
extern const ps_rerank_method_impl ps_rerank_xquad_impl;
extern const ps_rerank_method_impl ps_rerank_cp_impl;
extern const ps_rerank_method_impl ps_rerank_pmmf_impl;
extern const ps_rerank_method_impl ps_rerank_pct_impl;

/* Group index of a label: +1 -> HEAD, 0 -> MID, anything else -> TAIL. */
static inline int ps_rerank_group_of(int8_t label)
{
    return label > 0 ? PS_RERANK_HEAD : label == 0 ? PS_RERANK_MID : PS_RERANK_TAIL;
}

/* Sorts idx[0..n) (candidate positions) by key descending; NaN keys last; ties by
 * position ascending. */
void ps_rerank_sort_desc(int *idx, int n, const double *key);

/* Shares of head/mid/tail among the valid ids of hist (1..n_items); returns the number of
 * valid ids (0: shares untouched). */
int ps_rerank_hist_shares(const ps_rerank_ctx *ctx, const int32_t *hist, int hist_len,
                          double share[PS_RERANK_GROUPS]);
#endif /* PS_RERANK_IMPL */

#endif
