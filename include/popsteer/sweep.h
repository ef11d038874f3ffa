/* The fairness–accuracy sweep (SPEC §7, issue 5): PopSteer over a grid of α × N and every
 * re-ranking baseline over its grid, on both splits; one operating point per method chosen on
 * the validation split; Pareto fronts of NDCG@k against Gini@k and the comparison of PopSteer's
 * front with each baseline's; and the report directory (results.csv/json, report.md/html and
 * gnuplot images).
 *
 * Cost. Every grid point is a full-ranking evaluation of every user, so nothing that does not
 * depend on the point is recomputed: SASRec user vectors and SAE pre-activations are computed
 * once per split (steering only shifts pre-activations: copy, shift, TopK, decode, score), and
 * the plain SASRec top-L candidates once per split for all re-rankers. The numbers are exactly
 * those of ps_evaluate with the matching scorer and list filter (same top-k order, same target
 * ranks, same integer accumulators), without masking seen items. */
#ifndef POPSTEER_SWEEP_H
#define POPSTEER_SWEEP_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "popsteer/bootstrap.h"
#include "popsteer/dataset.h"
#include "popsteer/evaluate.h"
#include "popsteer/metrics.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"

/* ---- selection rule, Pareto fronts, front comparison (pure functions on numbers) ---------- */

/* Relative NDCG drop and relative Gini reduction against a base value: (base − x) / base.
 * Positive = x is lower than the base. A base of 0 (or less) has no meaningful ratio, so the
 * absolute difference base − x is returned instead. */
double ps_rel_reduction(double base, double x);

typedef enum ps_select_objective {
    /* SPEC §7: maximise (relative Gini reduction − relative NDCG drop) */
    PS_SELECT_TRADEOFF = 0,
    /* maximise the relative Gini reduction alone ("how much fairness for at most X % NDCG") */
    PS_SELECT_MAX_GINI_CUT = 1,
} ps_select_objective;

typedef struct ps_select_rule {
    ps_select_objective objective;
    double max_ndcg_drop; /* eligible points: relative NDCG drop <= this (SPEC: 0.05) */
} ps_select_rule;

/* The SPEC §7 rule: PS_SELECT_TRADEOFF with a 5 % budget. */
void ps_select_rule_init(ps_select_rule *r);

/* Index (0..n-1) of the point the rule selects among (ndcg[i], gini[i]), measured against
 * (base_ndcg, base_gini), or -1 when no point is eligible. A point whose numbers are not finite
 * is never eligible. Ties — objectives within 1e-12 of each other — go to the higher NDCG, then
 * to the lower index (the earlier grid point), so the choice never depends on rounding noise. */
int ps_select_point(const double *ndcg, const double *gini, int n, double base_ndcg, double base_gini,
                    const ps_select_rule *rule);

/* The Pareto front of (gini, ndcg) points, lower Gini and higher NDCG being better: the points
 * no other point dominates (a dominates b when gini_a <= gini_b and ndcg_a >= ndcg_b with at
 * least one strict). Of exactly equal points only the lowest index is kept, so the front is a
 * set of distinct points. Writes their indices to front (room for n) sorted by Gini ascending
 * (on a front NDCG then ascends too) and returns how many there are. Non-finite points are
 * ignored. */
int ps_pareto_front(const double *gini, const double *ndcg, int n, int *front);

/* How front A (PopSteer) compares with front B (a baseline). Both are fronts as returned by
 * ps_pareto_front, given as coordinates sorted by Gini ascending. */
typedef struct ps_front_cmp {
    int n_b;             /* points on front B */
    int n_dominated;     /* of them, weakly dominated by a point of A (gini_a <= gini_b and ndcg_a >= ndcg_b) */
    int has_overlap;     /* the fronts' Gini ranges [min, max] intersect */
    double gini_lo, gini_hi; /* that intersection */
    /* NDCG_A(g) − NDCG_B(g) at PS_FRONT_SAMPLES evenly spaced g of the intersection, each front
     * interpolated linearly between its points ("NDCG at equal Gini"); 0 without overlap */
    double mean_diff, min_diff, max_diff;
    double share_above;  /* share of those g where NDCG_A(g) >= NDCG_B(g) */
} ps_front_cmp;

/* mean_diff is linear in the fronts' NDCG values: mean_diff = Σ_i w_a[i] ndcg_a[i] − Σ_j w_b[j] ndcg_b[j]
 * with w the average, over the PS_FRONT_SAMPLES Gini values of [lo, hi], of each front point's
 * interpolation weight. Writes those weights (w has n entries; they sum to 1), so the same
 * difference can be formed per user and bootstrapped. */
void ps_front_mean_weights(const double *gini, int n, double lo, double hi, double *w);

#define PS_FRONT_SAMPLES 101

typedef enum ps_front_verdict {
    PS_FRONT_ABOVE = 0,        /* every point of B is weakly dominated by a point of A */
    PS_FRONT_ABOVE_OVERLAP,    /* A >= B at every sampled Gini of the common range, not all of B dominated */
    PS_FRONT_CROSSING,         /* A is above B on part of the common range and below on another */
    PS_FRONT_BELOW,            /* A < B on the whole common range and no point of B dominated */
    PS_FRONT_DISJOINT,         /* no common Gini range (see n_dominated) */
} ps_front_verdict;

void ps_front_compare(const double *gini_a, const double *ndcg_a, int n_a, const double *gini_b,
                      const double *ndcg_b, int n_b, ps_front_cmp *out);
ps_front_verdict ps_front_verdict_of(const ps_front_cmp *c);
/* "above", "above on the common Gini range", "crossing", "below", "no common Gini range" */
const char *ps_front_verdict_name(ps_front_verdict v);

/* ---- the sweep ------------------------------------------------------------------------------ */

#define PS_SWEEP_DECILES 10
#define PS_SWEEP_MAX_GRID 64 /* alphas, neuron counts and methods each */

/* PS_POINT_RULE: PopSteer-U (steer_rule.h), method "popsteer-u": the paper's latents and weights with a
 * per-user gate, separate strengths per sign, the SAE's reconstruction error kept.
 * PS_POINT_DECODER: PopSteer-I (steer_decoder.h), method "popsteer-i": the item-side probe's latents
 * (ps_item_side_table, computed by the sweep from the model and the SAE), their decoder rows added
 * to SASRec's h; N ∈ {1024, all} × ps-direction's strengths. */
/* The ablations (issue 14 §1; steer.h, steer_ablation.h), each a method of its own over PopSteer's
 * grid (positive α × N; direction: positive α only):
 *   PS_POINT_RANDOM "ps-random": N random latents with the paper's weight vector;
 *   PS_POINT_UNWEIGHTED "ps-unweighted": the paper's latents, every weight α;
 *   PS_POINT_CONDITIONAL "ps-conditional": the paper's plan, a latent shifted only for users beyond
 *     the other synthetic group's μ + 2σ on it;
 *   PS_POINT_DIRECTION "ps-direction": h + α ν u in SASRec's space, no SAE;
 * and one of PopSteer-I's (over ps-direction's α):
 *   PS_POINT_MEAN "ps-mean": h − α ν m/‖m‖, m the validation users' mean h — no SAE and no probe:
 *     is PopSteer-I more than "remove the average user's direction"? */
typedef enum ps_point_kind {
    PS_POINT_SASREC = 0,
    PS_POINT_POPSTEER = 1,
    PS_POINT_RERANK = 2,
    PS_POINT_RULE = 3,
    PS_POINT_RANDOM = 4,
    PS_POINT_UNWEIGHTED = 5,
    PS_POINT_CONDITIONAL = 6,
    PS_POINT_DIRECTION = 7,
    PS_POINT_DECODER = 8,
    PS_POINT_MEAN = 9
} ps_point_kind;

typedef struct ps_sweep_point {
    ps_point_kind kind;
    char method[16];       /* "sasrec", "popsteer", "popsteer-u", an ablation ("ps-random", ...) or a
                            * re-ranking method ("penalty", ...) */
    char setting[96];      /* "", "alpha=0", "alpha=1.5 N=1024", "beta=0.5", "lambda=0.1 eta=0.01" */
    double alpha;          /* popsteer: steering strength; popsteer-u: the strength on long-tail latents (d < 0) */
    double alpha_pop;      /* popsteer-u: the strength on popular latents (d > 0) */
    int neurons;           /* popsteer, popsteer-u, ps-random/-unweighted/-conditional: N steered latents (0 for alpha 0, where N changes nothing) */
    int candidates;        /* re-rankers: how many of plain SASRec's top items they re-order */
    ps_metrics split[2];   /* [PS_SPLIT_VALID], [PS_SPLIT_TEST] */
    /* Σ c_i (top-k appearances) over the items of each training-popularity decile, decile 0 =
     * the most popular 10 % of items */
    int64_t decile_exposure[2][PS_SWEEP_DECILES];
    /* Paired-bootstrap intervals (ps_sweep_options.bootstrap resamples of the users, level
     * ci_level) of the relative changes x / x_sasrec − 1 against plain SASRec on the same
     * resampled users: NDCG@k on both splits, Gini@k on the test split (the validation Gini
     * interval is NaN). NaN when the sweep ran without bootstrap. */
    ps_interval ndcg_ci[2], gini_ci[2];
    double seconds;        /* wall time of both splits */
} ps_sweep_point;

typedef struct ps_sweep_options {
    const double *alphas;   /* steering strengths; 0 is always evaluated once as the SAE reference */
    int n_alphas;
    const int *neurons;     /* N values; 0 or anything >= m means all m latents; duplicates after
                             * capping at m are evaluated once */
    int n_neurons;
    const char *const *methods; /* re-ranking methods to sweep (their default grids) */
    int n_methods;
    int candidates;         /* L, the re-rankers' candidate list; 0 = each method's own
                             * (ps_rerank_method_default_L: fair 500, pct 250, others 100); capped at n_items */
    int k;                  /* list length (10) */
    uint64_t seed;          /* the random re-ranker and the bootstrap resamples */
    int popsteer_u;         /* 1 (default): also sweep PopSteer-U over N ∈ {1024, all} × α_pop = α_unpop ∈ the
                             * positive alphas, plus (α_pop, α_unpop) ∈ {(4, 2), (8, 4)} */
    int popsteer_i;         /* 1 (default): also sweep PopSteer-I (PS_POINT_DECODER) */
    int ablations;          /* 1 (default): also sweep the four ablations (ps_point_kind) */
    const double *direction_alphas; /* ps-direction's and PopSteer-I's strengths, in typical user-vector lengths (default
                                     * 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5: beyond ~0.5 it moves every
                                     * user onto the same items); the positive ones are used */
    int n_direction_alphas;
    int64_t probe_cap;      /* ps-direction: the probe's cap and seed, so its synthetic users are the */
    uint64_t probe_seed;    /* probe's (defaults 0 = every training prefix, and 42, as ps_probe_options) */
    int bootstrap;          /* resamples for the confidence intervals (default 1000; 0 = none) */
    double ci_level;        /* their confidence level (default 0.95) */
    const float *item_features; /* [n_items + 1][dim] for ilad_features@k (ps_item_features_load); may be NULL.
                                 * ilad@k always uses the model's item embeddings. */
    int item_features_dim;
    /* after every grid point (done of total) with its description; may be NULL */
    void (*progress)(void *ctx, const char *what, int done, int total);
    void *progress_ctx;
    /* popsteer/dist.h (NULL: one process): every point's users sharded across the ranks in whole
     * scoring batches, the integer counters summed and the per-user ranks and lists (bootstrap)
     * gathered, so every rank gets one process's results; a sequential re-ranker (P-MMF) runs
     * every user on every rank, as in eval. Every rank must call ps_sweep_run. */
    const struct ps_dist *dist;
} ps_sweep_options;

/* Defaults: α ∈ {0, 0.5, 1, 1.5, 2, 3, 4, 5}, ps-direction's and PopSteer-I's α ∈ {0.02 … 0.5}, N ∈ {256, 1024, 2048, all}, every re-ranking
 * method, each method's own candidate count, k = 10, seed 42, 1,000 bootstrap resamples at 95 %.
 * The arrays are static. */
void ps_sweep_options_init(ps_sweep_options *o);

typedef struct ps_sweep_result {
    int k, L;                   /* L: the longest candidate list any re-ranker read */
    int32_t n_items;
    int64_t n_users;
    int n_latents;
    int n_points;
    ps_sweep_point *points;     /* sasrec, popsteer α=0, popsteer α>0 by N then α, re-rankers by method */
    double *cohens_d;           /* [n_latents] the probe's d (for the histogram) */
    int32_t decile_items[PS_SWEEP_DECILES];
    /* Mean over the validation users of the head / tail share of their history (the items
     * before the validation target): the profile that xquad and cp calibrate the lists to. */
    double history_head_share, history_tail_share;
    int bootstrap;              /* resamples behind the intervals (0: none) */
    double ci_level;
    uint64_t seed;              /* of the resamples */
    float *valid_ndcg;          /* [n_points][n_users] per-user NDCG@k on validation (front-gap intervals);
                                 * NULL without bootstrap */
    double seconds;
} ps_sweep_result;

/* Runs the grid on the validation and the test split. latents is the probe's table (d and the
 * groups' stds make the steering plans). On failure r is left empty (safe to free). */
int ps_sweep_run(const ps_sasrec *model, const ps_sae *sae, const ps_latent_table *latents, const ps_dataset *ds,
                 const ps_sweep_options *o, ps_sweep_result *r, ps_error *err);
void ps_sweep_result_free(ps_sweep_result *r);

/* Popularity deciles: items sorted by training count descending (ties by id) and cut into 10
 * groups of as equal size as possible; decile[i] in 0..9 for items 1..n_items, decile[0] = 0. */
int ps_popularity_deciles(const ps_dataset *ds, uint8_t *decile, int32_t count[PS_SWEEP_DECILES], ps_error *err);

/* ---- selection over a sweep ------------------------------------------------------------------ */

/* What PopSteer's relative changes are measured against when selecting: plain SASRec (the
 * default, the same base as the baselines, so every method answers "compared with what I run
 * today") or the SAE-reconstructed model (α = 0), which isolates the effect of steering. */
typedef enum ps_sweep_base { PS_BASE_SASREC = 0, PS_BASE_SAE = 1 } ps_sweep_base;
const char *ps_sweep_base_name(ps_sweep_base b);

/* A steering method's front (A) against another method's (B), on validation. */
typedef struct ps_front_vs {
    int valid;             /* 0: not compared (B is A itself, or A was not swept) */
    ps_front_cmp cmp;
    ps_front_verdict verdict;
    /* Interval of cmp.mean_diff by paired bootstrap over the validation users (the fronts' points
     * and Gini positions held fixed, their per-user NDCG resampled); NaN without a common Gini
     * range or without bootstrap. gap_within_noise: the interval contains 0. */
    ps_interval gap_ci;
    int gap_within_noise;
} ps_front_vs;

/* The references every other method's front is compared with: the paper's PopSteer, PopSteer-U
 * and PopSteer-I (each when swept). */
enum { PS_REF_POPSTEER = 0, PS_REF_POPSTEER_U = 1, PS_REF_POPSTEER_I = 2, PS_SWEEP_REFS = 3 };

typedef struct ps_method_summary {
    char method[16];
    int first, n;          /* the method's points: points[first .. first + n) */
    int base;              /* index of the point relative changes are measured against */
    int selected;          /* the rule's choice on validation, or -1 */
    int best_tight;        /* largest Gini reduction at NDCG drop <= tight_drop on validation, or -1 */
    int n_front;
    int *front;            /* validation Pareto front, indices into points, by Gini ascending */
    ps_front_vs vs[PS_SWEEP_REFS]; /* vs[q]: reference q's front (A) against this method's (B) */
} ps_method_summary;

typedef struct ps_sweep_summary {
    ps_select_rule rule;
    ps_sweep_base base;
    double tight_drop;     /* 0.01 in the report */
    int sasrec, sae;       /* indices of the reference points (sae = popsteer α=0) */
    int n_methods;
    ps_method_summary *methods; /* popsteer first, then popsteer-u (when swept), then the re-rankers */
    int ref[PS_SWEEP_REFS];     /* index in methods of each reference method, -1 when not swept */
} ps_sweep_summary;

int ps_sweep_summarize(const ps_sweep_result *r, const ps_select_rule *rule, ps_sweep_base base, double tight_drop,
                       ps_sweep_summary *s, ps_error *err);
void ps_sweep_summary_free(ps_sweep_summary *s);
/* The summary of a method, or NULL. */
const ps_method_summary *ps_sweep_summary_find(const ps_sweep_summary *s, const char *method);

/* ---- the report directory ------------------------------------------------------------------- */

typedef struct ps_report_stage {
    const char *name;      /* "SASRec", "SAE", ... */
    double seconds;        /* wall time (of loading, when reused) */
    int reused;            /* the artefact existed and was reused */
    const char *artefact;  /* file it produced or reused; may be NULL */
} ps_report_stage;

typedef struct ps_report_info {
    const char *data_path, *model_path, *sae_path, *latents_path; /* shown in the report; may be NULL */
    const ps_dataset_stats *stats;   /* may be NULL */
    const ps_report_stage *stages;   /* wall time per stage; may be NULL */
    int n_stages;
    const char *gnuplot;             /* the gnuplot program; NULL = "gnuplot" from PATH */
} ps_report_info;

/* Writes, into dir (created if missing, parents too): the images pareto.png, alpha.png,
 * cohens_d.png, exposure_deciles.png (their data and gnuplot script in dir/plots/), then
 * results.csv, results.json, report.md and report.html. Every file is written atomically. Fails —
 * with gnuplot's own message — if gnuplot is missing or fails, before any of the results and
 * pages are written (only the plots/ inputs remain). */
int ps_report_write(const char *dir, const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info,
                    ps_error *err);

/* The pieces, for tests and other front ends. */
int ps_results_csv_write(const char *path, const ps_sweep_result *r, const ps_sweep_summary *s, ps_error *err);
cJSON *ps_results_json(const ps_sweep_result *r, const ps_sweep_summary *s, const ps_report_info *info);
int ps_plots_write(const char *dir, const ps_sweep_result *r, const ps_sweep_summary *s, const char *gnuplot,
                   ps_error *err);
/* Checks that the gnuplot program (NULL = "gnuplot") runs and has the pngcairo terminal, so a
 * long pipeline can fail at its start instead of at its end. */
int ps_gnuplot_check(const char *gnuplot, ps_error *err);
/* mkdir -p */
int ps_mkdir_p(const char *dir, ps_error *err);

/* ---- pipeline helpers for `popsteer run` ------------------------------------------------------ */

/* The SPEC §8 dataset statistics object (users, items, interactions, train/valid/test samples,
 * head/mid/tail items, plus popularity concentration and sequence-length quantiles). NULL on
 * allocation failure. */
cJSON *ps_dataset_stats_json(const ps_dataset_stats *st);
/* That object plus a "load" object saying how the file was read (format, rows read, rows removed
 * by the rating threshold and the k-core, users and rows too short, has_time): `data stats --json`. */
cJSON *ps_dataset_report_json(const ps_dataset *ds, const ps_dataset_stats *st);

/* Trains a fresh SAE (initialised from seed) on ps_training_vectors, stopping early on the
 * validation prefixes' FVU (SPEC §3). vectors_progress (may be NULL) is called with cb_ctx.
 * Returns NULL with err set on failure. */
ps_sae *ps_sae_train_on_model(const ps_sasrec *m, const ps_dataset *ds, const ps_sae_config *cfg,
                              const ps_sae_train_options *o, uint64_t seed, const ps_sae_callbacks *cb, void *cb_ctx,
                              void (*vectors_progress)(void *ctx, int64_t done, int64_t total),
                              ps_sae_train_result *res, ps_error *err);

#endif
