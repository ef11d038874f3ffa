/* The α search (src/steer/tune.c, issue 14 §4) on synthetic curves, no model: a monotone
 * decreasing Gini, a Gini that turns at a known α, unreachable goals (the message names what is
 * reachable), the tolerances, the bound on evaluations, and bad options. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/tune.h"

/* A curve: gini(α) = g0 + slope·α + curv·(α − turn)², ndcg(α) = n0·(1 − drop·α); every call
 * recorded, so tests can check which α were visited. */
typedef struct curve {
    double g0, slope, curv, turn;
    double n0, drop;
    int calls;
    double seen[256];
    int fail_at_call; /* 0: never fails */
} curve;

static int curve_metric(void *ctx, double alpha, double *ndcg, double *gini, ps_error *err)
{
    curve *c = ctx;
    c->calls++;
    if (c->calls < 256)
        c->seen[c->calls - 1] = alpha;
    if (c->fail_at_call && c->calls == c->fail_at_call)
        return ps_fail(err, "the evaluation broke");
    *gini = c->g0 + c->slope * alpha + c->curv * (alpha - c->turn) * (alpha - c->turn);
    *ndcg = c->n0 * (1 - c->drop * alpha);
    return PS_OK;
}

/* gini 0.6 below α = 4.7 and 0.4 from it on */
static int step_metric(void *ctx, double alpha, double *ndcg, double *gini, ps_error *err)
{
    (void)err;
    ++*(int *)ctx;
    *gini = alpha < 4.7 ? 0.6 : 0.4;
    *ndcg = 0.5;
    return PS_OK;
}

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* ceil(log2(step / tol)) bisection steps after the grid's points */
static int eval_bound(const ps_tune_options *o, double step)
{
    return o->n_grid + (int)ceil(log2(step / o->alpha_tol));
}

/* gini = 0.6 − 0.02 α (monotone over the whole grid): target 0.5053 is met from α = 4.735 on
 * (not a bisection midpoint, so the search has to converge on it). */
static void test_monotone_decreasing(void **state)
{
    (void)state;
    curve c = {.g0 = 0.6, .slope = -0.02, .n0 = 0.5, .drop = 0.01};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.5053;
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_true(r.found);
    assert_true(r.gini <= o.target);
    assert_true(r.alpha >= 4.735 && r.alpha <= 4.735 + o.alpha_tol);
    tu_assert_near(r.turn_alpha, 8, 0);
    assert_int_equal(r.evals, c.calls);
    assert_true(r.evals <= eval_bound(&o, 0.5));
    /* every bisection point lies in the bracket [4.5, 5] */
    for (int i = o.n_grid; i < c.calls; i++)
        assert_true(c.seen[i] > 4.5 && c.seen[i] < 5);

    /* the NDCG budget on the same curve: drop = 0.01 α, so 3 % allows α up to 3 (a grid point)
     * and 3.3 % up to 3.3 */
    memset(&c, 0, sizeof c);
    c = (curve){.g0 = 0.6, .slope = -0.02, .n0 = 0.5, .drop = 0.01};
    o.goal = PS_TUNE_MAX_NDCG_LOSS;
    o.base_ndcg = 0.5;
    o.target = 0.033;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_true(r.found);
    assert_true((0.5 - r.ndcg) / 0.5 <= o.target);
    assert_true(r.alpha <= 3.3 && r.alpha >= 3.3 - o.alpha_tol);
    assert_true(r.evals <= eval_bound(&o, 0.5));
}

/* gini = 0.3 + 0.05 (α − 2)²: falls to 0.3 at α = 2, then rises again. */
static void test_turning_point(void **state)
{
    (void)state;
    curve c = {.g0 = 0.3, .curv = 0.05, .turn = 2, .n0 = 0.6, .drop = 0.01};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.32; /* met for α in [2 − sqrt(0.4), 2 + sqrt(0.4)]: the smallest, not the rising side */
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    tu_assert_near(r.turn_alpha, 2, 0);
    tu_assert_near(r.turn_gini, 0.3, 1e-12);
    const double want = 2 - sqrt(0.4);
    assert_true(r.alpha >= want && r.alpha <= want + o.alpha_tol);
    assert_true(r.gini <= 0.32);

    /* a budget that would allow α = 5 stops at the turning point: beyond it Gini rises again */
    c.calls = 0;
    o.goal = PS_TUNE_MAX_NDCG_LOSS;
    o.base_ndcg = 0.6;
    o.target = 0.05;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    tu_assert_near(r.alpha, 2, 0);
    assert_int_equal(r.evals, o.n_grid); /* nothing to bisect */

    /* a budget inside the monotone part: drop 0.0123 at α = 1.23 */
    c.calls = 0;
    o.target = 0.0123;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_true(r.alpha <= 1.23 && r.alpha >= 1.23 - o.alpha_tol);
    assert_true(ps_tune_run(curve_metric, &c, &o, &r, &err) == PS_OK && r.evals <= eval_bound(&o, 0.5));

    /* a flat bottom: the turning point is its smallest α */
    curve flat = {.g0 = 0.4, .n0 = 0.6};
    o.goal = PS_TUNE_TARGET_GINI;
    o.target = 0.5;
    assert_int_equal(ps_tune_run(curve_metric, &flat, &o, &r, &err), PS_OK);
    tu_assert_near(r.turn_alpha, 0, 0);
    tu_assert_near(r.alpha, 0, 0); /* met at α = 0 already */
    assert_int_equal(r.evals, o.n_grid);
}

static void test_unreachable(void **state)
{
    (void)state;
    curve c = {.g0 = 0.3, .curv = 0.05, .turn = 2, .n0 = 0.6, .drop = 0.01};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.25;
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_false(r.found);
    assert_true(r.out_of_reach);
    assert_contains(err.msg, "the lowest Gini steering reaches is 0.3000 at alpha=2");
    assert_contains(err.msg, "target 0.25 is below it");
    tu_assert_near(r.turn_gini, 0.3, 1e-12);
    assert_int_equal(r.evals, o.n_grid);

    /* the reference NDCG is above anything steering reaches: drop 1/7 already at α = 0 */
    c.calls = 0;
    o.goal = PS_TUNE_MAX_NDCG_LOSS;
    o.base_ndcg = 0.7;
    o.target = 0.01;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, "the smallest relative NDCG drop steering has is 0.1429 at alpha=0");
    assert_contains(err.msg, "budget 0.01 is below it");
    assert_true(r.out_of_reach);
    tu_assert_near(r.min_drop, 1.0 / 7, 1e-12);
}

/* A tighter α tolerance lands closer and costs at most log2 more calls; a loose metric
 * tolerance stops as soon as the good end is that close to the target. */
static void test_tolerances(void **state)
{
    (void)state;
    curve c = {.g0 = 0.6, .slope = -0.02, .n0 = 0.5, .drop = 0.01};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.5053;
    o.alpha_tol = 0.001;
    o.metric_tol = 0;
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_true(r.alpha >= 4.735 && r.alpha <= 4.736);
    assert_true(r.evals <= eval_bound(&o, 0.5));
    assert_true(r.evals > eval_bound(&o, 0.5) - 2); /* it did use the bisection */

    c.calls = 0;
    o.alpha_tol = 1e-9;
    o.metric_tol = 0.002; /* gini within 0.002 of the target: α within 0.1 of 4.735 */
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_true(r.gini <= 0.5053 && r.gini >= 0.5053 - 0.002);
    assert_true(r.evals <= o.n_grid + 3);
}

/* max_evals is a hard bound, and a discontinuous curve still ends (by the α tolerance). */
static void test_eval_bound(void **state)
{
    (void)state;
    curve c = {.g0 = 0.6, .slope = -0.02, .n0 = 0.5, .drop = 0.01};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.5053;
    o.alpha_tol = 1e-12;
    o.metric_tol = 0;
    o.max_evals = o.n_grid + 2;
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_OK);
    assert_int_equal(r.evals, o.max_evals);
    assert_int_equal(c.calls, o.max_evals);
    assert_true(r.gini <= o.target && r.alpha >= 4.735 && r.alpha <= 5);

    /* a jump in the Gini: the good end never gets close to the target, so only the α tolerance
     * ends the bisection, at the jump */
    int calls = 0;
    o.max_evals = 1000;
    o.alpha_tol = 1e-6;
    assert_int_equal(ps_tune_run(step_metric, &calls, &o, &r, &err), PS_OK);
    assert_true(r.alpha >= 4.7 && r.alpha <= 4.7 + 1e-6);
    assert_int_equal(r.evals, calls);
    assert_true(r.evals <= eval_bound(&o, 0.5));
}

static void test_errors(void **state)
{
    (void)state;
    curve c = {.g0 = 0.6, .slope = -0.02, .n0 = 0.5, .drop = 0.01, .fail_at_call = 3};
    ps_tune_options o;
    ps_tune_options_init(&o);
    o.target = 0.5;
    ps_tune_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, "alpha=1: the evaluation broke");
    assert_false(r.out_of_reach);
    assert_int_equal(r.evals, 3);

    c.fail_at_call = 0;
    const double bad_grid[] = {0, 1, 1};
    o.grid = bad_grid;
    o.n_grid = 3;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, "ascending");
    const double neg_grid[] = {-1, 1};
    o.grid = neg_grid;
    o.n_grid = 2;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, ">= 0");
    ps_tune_options_init(&o);
    o.goal = PS_TUNE_MAX_NDCG_LOSS;
    o.target = 0.01;
    o.base_ndcg = 0;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, "reference NDCG");
    o.base_ndcg = 0.5;
    o.max_evals = 3;
    assert_int_equal(ps_tune_run(curve_metric, &c, &o, &r, &err), PS_ERR);
    assert_contains(err.msg, "max_evals");
    assert_int_equal(r.evals, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monotone_decreasing),
        cmocka_unit_test(test_turning_point),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_tolerances),
        cmocka_unit_test(test_eval_bound),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
