/* The α search of tune.h: coarse grid, monotone prefix, bisection in one bracket. */
#include "popsteer/tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/sweep.h"

static const double DEFAULT_GRID[] = {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8};

void ps_tune_options_init(ps_tune_options *o)
{
    memset(o, 0, sizeof *o);
    o->goal = PS_TUNE_TARGET_GINI;
    o->grid = DEFAULT_GRID;
    o->n_grid = (int)(sizeof DEFAULT_GRID / sizeof DEFAULT_GRID[0]);
    o->alpha_tol = 0.01;
    o->metric_tol = 1e-4;
    o->max_evals = 64;
}

typedef struct tune_state {
    ps_tune_metric metric;
    void *ctx;
    const ps_tune_options *o;
    ps_tune_result *r;
} tune_state;

static int eval_at(tune_state *s, double alpha, double *ndcg, double *gini, ps_error *err)
{
    if (s->r->evals >= s->o->max_evals)
        return ps_fail(err, "tune: the evaluation budget (%d) is spent", s->o->max_evals);
    s->r->evals++;
    if (s->metric(s->ctx, alpha, ndcg, gini, err) != PS_OK)
        return ps_fail_wrap(err, "alpha=%g", alpha);
    if (!isfinite(*ndcg) || !isfinite(*gini))
        return ps_fail(err, "tune: the metric at alpha=%g is not finite (ndcg %g, gini %g)", alpha, *ndcg, *gini);
    if (s->o->progress)
        s->o->progress(s->o->progress_ctx, s->r->evals, alpha, *ndcg, *gini);
    return PS_OK;
}

/* Whether a point meets the goal. */
static int meets(const ps_tune_options *o, double ndcg, double gini)
{
    if (o->goal == PS_TUNE_TARGET_GINI)
        return gini <= o->target;
    return ps_rel_reduction(o->base_ndcg, ndcg) <= o->target;
}

/* How far a point that meets the goal is from its edge (>= 0): the metric tolerance applies to it. */
static double slack(const ps_tune_options *o, double ndcg, double gini)
{
    if (o->goal == PS_TUNE_TARGET_GINI)
        return o->target - gini;
    return o->target - ps_rel_reduction(o->base_ndcg, ndcg);
}

static int check_options(const ps_tune_options *o, ps_error *err)
{
    if (o->goal != PS_TUNE_TARGET_GINI && o->goal != PS_TUNE_MAX_NDCG_LOSS)
        return ps_fail(err, "tune: unknown goal %d", (int)o->goal);
    if (!isfinite(o->target))
        return ps_fail(err, "tune: the target is not finite");
    if (o->goal == PS_TUNE_MAX_NDCG_LOSS && !(o->target >= 0))
        return ps_fail(err, "tune: the NDCG loss budget must be >= 0, got %g", o->target);
    if (o->goal == PS_TUNE_MAX_NDCG_LOSS && !(isfinite(o->base_ndcg) && o->base_ndcg > 0))
        return ps_fail(err, "tune: the reference NDCG must be > 0, got %g", o->base_ndcg);
    if (!o->grid || o->n_grid < 2)
        return ps_fail(err, "tune: the coarse grid needs at least 2 alphas, got %d", o->n_grid);
    for (int i = 0; i < o->n_grid; i++) {
        if (!isfinite(o->grid[i]) || o->grid[i] < 0)
            return ps_fail(err, "tune: grid alpha %d (%g) must be finite and >= 0", i + 1, o->grid[i]);
        if (i && !(o->grid[i] > o->grid[i - 1]))
            return ps_fail(err, "tune: the grid must be strictly ascending (%g after %g)", o->grid[i], o->grid[i - 1]);
    }
    if (!(o->alpha_tol > 0) || !isfinite(o->alpha_tol))
        return ps_fail(err, "tune: alpha_tol must be > 0, got %g", o->alpha_tol);
    if (!(o->metric_tol >= 0) || !isfinite(o->metric_tol))
        return ps_fail(err, "tune: metric_tol must be >= 0, got %g", o->metric_tol);
    if (o->max_evals < o->n_grid)
        return ps_fail(err, "tune: max_evals (%d) is below the grid's %d points", o->max_evals, o->n_grid);
    return PS_OK;
}

/* The search once the grid's metrics have room: ndcg and gini [n_grid]. */
static int search(tune_state *s, double *ndcg, double *gini, ps_error *err)
{
    const ps_tune_options *o = s->o;
    ps_tune_result *r = s->r;
    /* 1. the whole coarse grid: the curve may turn anywhere, so no early stop */
    int turn = 0;
    for (int i = 0; i < o->n_grid; i++) {
        if (eval_at(s, o->grid[i], &ndcg[i], &gini[i], err) != PS_OK)
            return PS_ERR;
        if (gini[i] < gini[turn])
            turn = i;
    }
    r->turn_alpha = o->grid[turn];
    r->turn_ndcg = ndcg[turn];
    r->turn_gini = gini[turn];
    int min_drop = 0;
    for (int i = 1; i <= turn; i++)
        if (ndcg[i] > ndcg[min_drop])
            min_drop = i;
    r->min_drop_alpha = o->grid[min_drop];
    r->min_drop = o->base_ndcg > 0 ? ps_rel_reduction(o->base_ndcg, ndcg[min_drop]) : NAN;

    /* 2. the bracket on the monotone prefix 0..turn: good = meets the goal, bad = does not */
    int good, bad;
    if (o->goal == PS_TUNE_TARGET_GINI) {
        good = -1;
        for (int i = 0; i <= turn && good < 0; i++)
            if (meets(o, ndcg[i], gini[i]))
                good = i;
        if (good < 0) {
            r->out_of_reach = 1;
            return ps_fail(err, "the lowest Gini steering reaches is %.4f at alpha=%g; target %.4g is below it",
                           r->turn_gini, r->turn_alpha, o->target);
        }
        bad = good - 1; /* -1 when grid[0] already meets it */
    } else {
        good = -1;
        for (int i = 0; i <= turn; i++)
            if (meets(o, ndcg[i], gini[i]))
                good = i;
        if (good < 0) {
            r->out_of_reach = 1;
            return ps_fail(err,
                           "the smallest relative NDCG drop steering has is %.4f at alpha=%g; budget %.4g is below it",
                           r->min_drop, r->min_drop_alpha, o->target);
        }
        bad = good < turn ? good + 1 : -1; /* the turning point within budget: nothing further is worth it */
    }
    double ga = o->grid[good], gn = ndcg[good], gg = gini[good];
    /* 3. bisection between the good and the bad end */
    if (bad >= 0) {
        double ba = o->grid[bad];
        while (fabs(ga - ba) > o->alpha_tol && slack(o, gn, gg) > o->metric_tol && r->evals < o->max_evals) {
            double mid = 0.5 * (ga + ba), mn, mg;
            if (eval_at(s, mid, &mn, &mg, err) != PS_OK)
                return PS_ERR;
            if (meets(o, mn, mg)) {
                ga = mid;
                gn = mn;
                gg = mg;
            } else {
                ba = mid;
            }
        }
    }
    r->found = 1;
    r->alpha = ga;
    r->ndcg = gn;
    r->gini = gg;
    return PS_OK;
}

int ps_tune_run(ps_tune_metric metric, void *ctx, const ps_tune_options *o, ps_tune_result *r, ps_error *err)
{
    memset(r, 0, sizeof *r);
    r->turn_alpha = r->turn_ndcg = r->turn_gini = r->min_drop = r->min_drop_alpha = NAN;
    r->alpha = r->ndcg = r->gini = NAN;
    if (!metric)
        return ps_fail(err, "tune: no metric callback");
    if (check_options(o, err) != PS_OK)
        return PS_ERR;
    double *buf = ps_calloc(2 * (size_t)o->n_grid, sizeof *buf, "tune grid metrics", err);
    if (!buf)
        return PS_ERR;
    tune_state s = {metric, ctx, o, r};
    int rc = search(&s, buf, buf + o->n_grid, err);
    free(buf);
    return rc;
}
