/* Tuning the steering strength α for a goal (issue 14 §4): the smallest α whose Gini@k reaches a
 * target, or the largest α whose relative NDCG@k drop stays within a budget.
 *
 * The search knows nothing about models: it calls back `metric(ctx, α)` for the (NDCG, Gini) of
 * the steered recommender at α (in the CLI, a full-ranking evaluation on the validation split),
 * so it can be tested on synthetic curves.
 *
 * Why a coarse grid first. Gini(α) falls as α grows and then may rise again (steering too hard
 * puts every user on the same long-tail items: on Last.fm the curve turns at α ≈ 2, on Amazon
 * Beauty already below 1), so bisection over [0, ∞) would be meaningless. The search evaluates
 * the coarse grid, takes its prefix up to the lowest Gini (ties: the smallest α) — the monotone
 * part — and bisects only inside the bracket of that prefix where the goal switches from met to
 * unmet. Nothing beyond the turning point is ever chosen: a larger α there only costs NDCG and
 * buys no Gini. Within a bracket the curve is assumed monotone; if it is not, bisection still
 * ends at a point that meets the goal next to one that does not. */
#ifndef POPSTEER_TUNE_H
#define POPSTEER_TUNE_H

#include "popsteer/error.h"

/* (NDCG, Gini) at α; PS_OK or PS_ERR with err set (the search stops and passes it on). */
typedef int (*ps_tune_metric)(void *ctx, double alpha, double *ndcg, double *gini, ps_error *err);

typedef enum ps_tune_goal {
    /* the smallest α on the monotone part with gini(α) <= target (absolute) */
    PS_TUNE_TARGET_GINI = 0,
    /* the largest α on the monotone part with ps_rel_reduction(base_ndcg, ndcg(α)) <= target */
    PS_TUNE_MAX_NDCG_LOSS = 1,
} ps_tune_goal;

typedef struct ps_tune_options {
    ps_tune_goal goal;
    double target;       /* the Gini target, or the largest relative NDCG drop (0.01 = 1 %) */
    double base_ndcg;    /* PS_TUNE_MAX_NDCG_LOSS: the reference NDCG (plain SASRec), > 0 */
    const double *grid;  /* the coarse grid: strictly ascending, finite, >= 0, at least 2 values */
    int n_grid;
    double alpha_tol;    /* bisection stops when the bracket is this narrow (default 0.01) ... */
    double metric_tol;   /* ... or when the bracket's good end is this close to the target (default 1e-4) */
    int max_evals;       /* hard bound on metric calls, grid included (default 64; >= n_grid) */
    /* after every metric call (1-based count); may be NULL */
    void (*progress)(void *ctx, int eval, double alpha, double ndcg, double gini);
    void *progress_ctx;
} ps_tune_options;

/* Defaults: the goal and target are left to the caller (PS_TUNE_TARGET_GINI, 0); grid
 * α ∈ {0, 0.5, 1, …, 8} (static), alpha_tol 0.01, metric_tol 1e-4, max_evals 64. */
void ps_tune_options_init(ps_tune_options *o);

typedef struct ps_tune_result {
    int found;           /* 1: alpha/ndcg/gini are the chosen point */
    int out_of_reach;    /* 1: PS_ERR because the goal is out of reach on the monotone part (not
                          * because of the options or a failed metric call) */
    double alpha, ndcg, gini;
    int evals;           /* metric calls used */
    /* the monotone part: it ends at the grid's lowest Gini */
    double turn_alpha, turn_ndcg, turn_gini;
    /* the smallest relative NDCG drop over the monotone part's grid points and its α (what a
     * PS_TUNE_MAX_NDCG_LOSS budget must at least allow) */
    double min_drop, min_drop_alpha;
} ps_tune_result;

/* Runs the search. Returns PS_OK with r->found = 1 and the chosen point, or — when the goal is out
 * of reach on the grid's monotone part — PS_ERR with r->out_of_reach = 1, r's turn_* and min_drop* filled
 * in and err saying what is reachable ("the lowest Gini steering reaches is 0.4964 at alpha=2;
 * target 0.45 is below it", "the smallest relative NDCG drop steering has is 0.031 at alpha=0;
 * budget 0.01 is below it"). PS_ERR also for bad options (named in err) and for a failed or
 * non-finite metric call; r->evals always counts the calls made.
 *
 * PS_TUNE_TARGET_GINI: α = grid[0] if it already meets the target; otherwise the bracket is the
 * first grid step of the monotone part that crosses the target, and the result is its end that
 * meets it. PS_TUNE_MAX_NDCG_LOSS: the last grid point of the monotone part within the budget; if
 * it is the turning point, that is the result, else the bracket is it and the next grid point, and
 * the result is the end within the budget. Bisection takes at most
 * ceil(log2(grid step / alpha_tol)) further calls, never beyond max_evals. */
int ps_tune_run(ps_tune_metric metric, void *ctx, const ps_tune_options *o, ps_tune_result *r, ps_error *err);

#endif
