/* Steering plans (src/steer/steer.c, SPEC §5): a hand-computed example, N = m against a
 * smaller N, the equal min/max case, α = 0, tie order, application, and the error cases. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/steer.h"

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

static void assert_near(double got, double want)
{
    if (fabs(got - want) > 1e-12 * fmax(1.0, fabs(want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* The running example. */
static const double D[5] = {0.9, -0.5, 0.1, 0.0, -1.2};
static const double SD_POP[5] = {1.0, 2.0, 3.0, 4.0, 5.0};
static const double SD_UNPOP[5] = {0.5, 1.5, 2.5, 3.5, 4.5};

static ps_steer_plan plan_ok(const double *d, const double *sp, const double *su, int m, int N, double alpha)
{
    ps_steer_plan p;
    ps_error err = {{0}};
    if (ps_steer_plan_make(d, sp, su, m, N, alpha, &p, &err) != PS_OK)
        fail_msg("plan: %s", err.msg);
    return p;
}

/* d = [0.9, −0.5, 0.1, 0, −1.2], N = 3, α = 2:
 *   |d| = [0.9, 0.5, 0.1, 0, 1.2] -> S = {4 (1.2), 0 (0.9), 1 (0.5)}
 *   min|d| over d != 0 = 0.1 (latent 2, outside S); max over S = 1.2; max − min = 1.1
 *   w_4 = 2·(1.2 − 0.1)/1.1 = 2
 *   w_0 = 2·(0.9 − 0.1)/1.1 = 1.6/1.1 = 16/11 ≈ 1.4545
 *   w_1 = 2·(0.5 − 0.1)/1.1 = 0.8/1.1 = 8/11 ≈ 0.7273
 *   shifts: latent 4, d < 0: +w·σ_pop  = +2·5          = +10
 *           latent 0, d > 0: −w·σ_unpop = −(16/11)·0.5  = −8/11 ≈ −0.7273
 *           latent 1, d < 0: +w·σ_pop  = +(8/11)·2     = +16/11 ≈ +1.4545 */
static void test_hand_example(void **state)
{
    (void)state;
    ps_steer_plan p = plan_ok(D, SD_POP, SD_UNPOP, 5, 3, 2.0);
    assert_int_equal(p.m, 5);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.latent[0], 4);
    assert_int_equal(p.latent[1], 0);
    assert_int_equal(p.latent[2], 1);
    assert_near(p.min_abs_d, 0.1);
    assert_near(p.max_abs_d, 1.2);
    assert_near(p.weight[0], 2.0);
    assert_near(p.weight[1], 16.0 / 11.0);
    assert_near(p.weight[2], 8.0 / 11.0);
    assert_near(p.shift[0], 10.0);
    assert_near(p.shift[1], -8.0 / 11.0);
    assert_near(p.shift[2], 16.0 / 11.0);
    ps_steer_plan_free(&p);
}

/* N = m: S adds latent 2 (|d| = 0.1, the global min: w = 0, shift 0) and latent 3 (d = 0:
 * never shifted). The N = 3 plan is a prefix of the N = 5 plan with the same weights,
 * because the max over S is always the overall max and the min is over all latents. */
static void test_all_latents_vs_fewer(void **state)
{
    (void)state;
    ps_steer_plan all = plan_ok(D, SD_POP, SD_UNPOP, 5, 5, 2.0);
    ps_steer_plan few = plan_ok(D, SD_POP, SD_UNPOP, 5, 3, 2.0);
    const int32_t order[5] = {4, 0, 1, 2, 3};
    for (int i = 0; i < 5; i++)
        assert_int_equal(all.latent[i], order[i]);
    for (int i = 0; i < 3; i++) {
        assert_true(all.weight[i] == few.weight[i]);
        assert_true(all.shift[i] == few.shift[i]);
    }
    assert_true(all.weight[3] == 0 && all.shift[3] == 0); /* latent 2: w = 2·(0.1 − 0.1)/1.1 = 0 */
    assert_true(all.weight[4] == 0 && all.shift[4] == 0); /* latent 3: d = 0 */
    ps_steer_plan_free(&all);
    ps_steer_plan_free(&few);

    /* N = 1: only latent 4, still weighted against the global min: w = α */
    ps_steer_plan one = plan_ok(D, SD_POP, SD_UNPOP, 5, 1, 2.0);
    assert_int_equal(one.n, 1);
    assert_int_equal(one.latent[0], 4);
    assert_near(one.shift[0], 10.0);
    ps_steer_plan_free(&one);
}

/* All non-zero |d| equal: max == min, so every w = α/2.
 *   d = [0.5, −0.5, 0, 0.5], N = 2, α = 3 -> S = {0, 1} (ties: smaller index first)
 *   w = 1.5; shift_0 = −1.5·σ_unpop[0] = −1.5·0.5 = −0.75; shift_1 = +1.5·σ_pop[1] = +3 */
static void test_equal_min_max(void **state)
{
    (void)state;
    const double d[4] = {0.5, -0.5, 0.0, 0.5};
    ps_steer_plan p = plan_ok(d, SD_POP, SD_UNPOP, 4, 2, 3.0);
    assert_int_equal(p.latent[0], 0);
    assert_int_equal(p.latent[1], 1);
    assert_near(p.weight[0], 1.5);
    assert_near(p.weight[1], 1.5);
    assert_near(p.shift[0], -0.75);
    assert_near(p.shift[1], 3.0);
    ps_steer_plan_free(&p);

    /* a single non-zero latent is its own min and max: w = α/2 too */
    const double d1[3] = {0.0, -0.4, 0.0};
    ps_steer_plan q = plan_ok(d1, SD_POP, SD_UNPOP, 3, 3, 1.0);
    assert_int_equal(q.latent[0], 1);
    assert_int_equal(q.latent[1], 0); /* the zeros follow, by index */
    assert_int_equal(q.latent[2], 2);
    assert_near(q.shift[0], 0.5 * 2.0);
    assert_true(q.shift[1] == 0 && q.shift[2] == 0);
    ps_steer_plan_free(&q);
}

/* All d = 0 (no bias found) and α = 0 (the plain SAE) both give zero shifts. */
static void test_zero_shifts(void **state)
{
    (void)state;
    const double zeros[5] = {0};
    ps_steer_plan p = plan_ok(zeros, SD_POP, SD_UNPOP, 5, 5, 4.0);
    assert_true(p.min_abs_d == 0 && p.max_abs_d == 0);
    for (int i = 0; i < 5; i++)
        assert_true(p.shift[i] == 0 && p.latent[i] == i);
    ps_steer_plan_free(&p);

    ps_steer_plan q = plan_ok(D, SD_POP, SD_UNPOP, 5, 5, 0.0);
    for (int i = 0; i < 5; i++)
        assert_true(q.shift[i] == 0);
    ps_steer_plan_free(&q);
}

/* Apply adds each shift to its latent in every row and leaves the others alone. */
static void test_apply(void **state)
{
    (void)state;
    ps_steer_plan p = plan_ok(D, SD_POP, SD_UNPOP, 5, 3, 2.0);
    float pre[10] = {1, 1, 1, 1, 1, -2, 0, 3, 0.5f, -7};
    float want[10];
    memcpy(want, pre, sizeof pre);
    for (int b = 0; b < 2; b++) {
        want[b * 5 + 4] += 10.0f;
        want[b * 5 + 0] += (float)(-8.0 / 11.0);
        want[b * 5 + 1] += (float)(16.0 / 11.0);
    }
    ps_steer_apply(&p, pre, 2);
    assert_memory_equal(pre, want, sizeof pre);
    ps_steer_apply(&p, pre, 0); /* no rows: nothing happens */
    assert_memory_equal(pre, want, sizeof pre);
    ps_steer_plan_free(&p);
}

/* Shifting the encoder bias adds the same amounts to the same latents as apply does per row. */
static void test_shift_bias(void **state)
{
    (void)state;
    ps_steer_plan p = plan_ok(D, SD_POP, SD_UNPOP, 5, 3, 2.0);
    float row[5] = {0}, bias[5] = {0};
    ps_steer_apply(&p, row, 1);
    ps_steer_shift_bias(&p, bias);
    assert_memory_equal(bias, row, sizeof bias);
    assert_true(bias[2] == 0 && bias[3] == 0 && bias[4] == 10.0f);
    ps_steer_plan_free(&p);
}

static void expect_error(const double *d, const double *sp, const double *su, int m, int N, double alpha,
                         const char *w1, const char *w2)
{
    ps_steer_plan p;
    ps_error err = {{0}};
    assert_int_equal(ps_steer_plan_make(d, sp, su, m, N, alpha, &p, &err), PS_ERR);
    assert_contains(err.msg, w1);
    if (w2)
        assert_contains(err.msg, w2);
    assert_null(p.latent);
    ps_steer_plan_free(&p); /* safe on a failed make */
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(D, SD_POP, SD_UNPOP, 5, 0, 1.0, "N = 0", "m = 5");
    expect_error(D, SD_POP, SD_UNPOP, 5, 6, 1.0, "N = 6", "m = 5");
    expect_error(D, SD_POP, SD_UNPOP, 5, -3, 1.0, "N = -3", "m = 5");
    expect_error(D, SD_POP, SD_UNPOP, 0, 1, 1.0, "m = 0", NULL);
    expect_error(D, SD_POP, SD_UNPOP, 5, 3, -0.5, "amplify popularity bias", "use 0");
    expect_error(D, SD_POP, SD_UNPOP, 5, 3, NAN, "alpha", NULL);
    expect_error(D, SD_POP, SD_UNPOP, 5, 3, INFINITY, "alpha", NULL);

    double d[5], sp[5], su[5];
    memcpy(d, D, sizeof d);
    d[2] = NAN;
    expect_error(d, SD_POP, SD_UNPOP, 5, 3, 1.0, "latent 2", "Cohen's d");
    memcpy(sp, SD_POP, sizeof sp);
    sp[3] = NAN;
    expect_error(D, sp, SD_UNPOP, 5, 3, 1.0, "latent 3", "std");
    memcpy(su, SD_UNPOP, sizeof su);
    su[1] = -1.0;
    expect_error(D, SD_POP, su, 5, 3, 1.0, "latent 1", "std");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_example),
        cmocka_unit_test(test_all_latents_vs_fewer),
        cmocka_unit_test(test_equal_min_max),
        cmocka_unit_test(test_zero_shifts),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_shift_bias),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
