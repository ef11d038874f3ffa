/* Paired bootstrap: resample bookkeeping, determinism, the exact Gini against the metrics
 * accumulator, percentile intervals on hand-made values, and the interval of a known difference. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/bootstrap.h"
#include "popsteer/metrics.h"

static void test_resamples_sum_to_n_and_ignore_threads(void **state)
{
    (void)state;
    ps_bootstrap a, b;
    ps_error err;
    omp_set_num_threads(1);
    assert_int_equal(ps_bootstrap_init(&a, 1234, 50, 7, &err), PS_OK);
    omp_set_num_threads(2);
    assert_int_equal(ps_bootstrap_init(&b, 1234, 50, 7, &err), PS_OK);
    assert_memory_equal(a.weight, b.weight, 50 * 1234 * sizeof *a.weight);
    for (int r = 0; r < 50; r++) {
        int64_t s = 0, distinct = 0;
        for (int u = 0; u < 1234; u++) {
            s += a.weight[r * 1234 + u];
            distinct += a.weight[r * 1234 + u] > 0;
        }
        assert_int_equal(s, 1234);
        /* a resample holds about 1 - 1/e = 63 % of the users */
        assert_true(distinct > 0.58 * 1234 && distinct < 0.69 * 1234);
    }
    /* another seed draws other resamples */
    ps_bootstrap c;
    assert_int_equal(ps_bootstrap_init(&c, 1234, 50, 8, &err), PS_OK);
    assert_true(memcmp(a.weight, c.weight, 50 * 1234 * sizeof *a.weight) != 0);
    ps_bootstrap_free(&a);
    ps_bootstrap_free(&b);
    ps_bootstrap_free(&c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ps_bootstrap b;
    ps_error err;
    assert_int_equal(ps_bootstrap_init(&b, 0, 10, 1, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "users"));
    assert_int_equal(ps_bootstrap_init(&b, 10, 0, 1, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "resample"));
    double x[2] = {1, 2}, y[2] = {0, 0};
    ps_interval ci;
    assert_int_equal(ps_bootstrap_interval(x, y, 2, 0, 0.0, 1.0, &ci, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "level"));
}

/* The normal interval: estimate ± z · SD of the resampled changes (divisor R − 1). */
static void test_interval_normal(void **state)
{
    (void)state;
    ps_error err;
    ps_interval ci;
    tu_assert_near(ps_normal_quantile(0.975), 1.959963984540054, 1e-9);
    tu_assert_near(ps_normal_quantile(0.5), 0, 1e-12);
    tu_assert_near(ps_normal_quantile(0.05), -1.644853626951472, 1e-9);
    /* changes 0..4 against a zero base: SD sqrt(2.5); centred on the given estimate, not their mean */
    double x[5] = {4, 0, 3, 1, 2}, z[5] = {0};
    assert_int_equal(ps_bootstrap_interval(x, z, 5, 0, 7.0, 0.95, &ci, &err), PS_OK);
    tu_assert_near(ci.lo, 7.0 - 1.959963984540054 * sqrt(2.5), 1e-8);
    tu_assert_near(ci.hi, 7.0 + 1.959963984540054 * sqrt(2.5), 1e-8);
    assert_false(ps_interval_contains_zero(&ci));
    /* relative: x / base - 1 = {0.1, 0.2, 0.3} (a non-positive base is skipped): SD 0.1 */
    double num[4] = {1.1, 1.2, 5.0, 1.3}, den[4] = {1, 1, 0, 1};
    assert_int_equal(ps_bootstrap_interval(num, den, 4, 1, 0.05, 0.95, &ci, &err), PS_OK);
    tu_assert_near(ci.lo, 0.05 - 0.1959963984540054, 1e-9);
    tu_assert_near(ci.hi, 0.05 + 0.1959963984540054, 1e-9);
    assert_true(ps_interval_contains_zero(&ci));
    /* nothing usable, or no estimate: NaN bounds */
    assert_int_equal(ps_bootstrap_interval(num, z, 4, 1, 0.05, 0.95, &ci, &err), PS_OK);
    assert_true(isnan(ci.lo) && isnan(ci.hi));
    assert_int_equal(ps_bootstrap_interval(x, z, 5, 0, NAN, 0.95, &ci, &err), PS_OK);
    assert_true(isnan(ci.lo) && isnan(ci.hi));
}

/* A constant per-user difference has a degenerate interval at exactly that difference. */
static void test_constant_difference(void **state)
{
    (void)state;
    enum { N = 300, R = 200 };
    ps_bootstrap b;
    ps_error err;
    assert_int_equal(ps_bootstrap_init(&b, N, R, 3, &err), PS_OK);
    float x[N], base[N];
    for (int u = 0; u < N; u++) {
        base[u] = (float)(u % 7) * 0.125f; /* exact in binary */
        x[u] = base[u] + 0.25f;
    }
    double mx[R], mb[R];
    ps_bootstrap_means(&b, x, mx);
    ps_bootstrap_means(&b, base, mb);
    ps_interval ci;
    assert_int_equal(ps_bootstrap_interval(mx, mb, R, 0, 0.25, 0.95, &ci, &err), PS_OK);
    tu_assert_near(ci.lo, 0.25, 1e-12);
    tu_assert_near(ci.hi, 0.25, 1e-12);
    ps_bootstrap_free(&b);
}

/* A known noisy difference: d_u = +1 for 60 % of the users and -1 for 40 % (mean 0.2, sd
 * 0.98). The resamples' spread must give the 95 % interval of the mean about the normal-theory
 * width 2 · 1.96 · sd / sqrt(n), so that it excludes 0. */
static void test_known_noisy_difference(void **state)
{
    (void)state;
    enum { N = 1000, R = 1000 };
    ps_bootstrap b;
    ps_error err;
    assert_int_equal(ps_bootstrap_init(&b, N, R, 42, &err), PS_OK);
    float *x = calloc(N, sizeof *x), *base = calloc(N, sizeof *base);
    assert_non_null(x);
    assert_non_null(base);
    for (int u = 0; u < N; u++) {
        base[u] = 0.5f;
        x[u] = base[u] + ((u * 7919) % 10 < 6 ? 1.0f : -1.0f);
    }
    double *mx = calloc(R, sizeof *mx), *mb = calloc(R, sizeof *mb);
    assert_non_null(mx);
    assert_non_null(mb);
    ps_bootstrap_means(&b, x, mx);
    ps_bootstrap_means(&b, base, mb);
    double est = 0;
    for (int u = 0; u < N; u++)
        est += (double)x[u] - base[u];
    est /= N;
    ps_interval ci;
    assert_int_equal(ps_bootstrap_interval(mx, mb, R, 0, est, 0.95, &ci, &err), PS_OK);
    double sd = sqrt(1.0 - 0.2 * 0.2), width = 2 * 1.96 * sd / sqrt((double)N);
    assert_true(ci.lo < 0.2 && ci.hi > 0.2);
    assert_false(ps_interval_contains_zero(&ci));
    if (fabs((ci.hi - ci.lo) / width - 1.0) > 0.12)
        fail_msg("interval [%g, %g] has width %g, normal theory %g", ci.lo, ci.hi, ci.hi - ci.lo, width);
    free(x);
    free(base);
    free(mx);
    free(mb);
    ps_bootstrap_free(&b);
}

/* With chosen multiplicities the resampled Gini is the metrics Gini of the users added that
 * many times. */
static void test_gini_matches_metrics(void **state)
{
    (void)state;
    enum { N = 6, K = 3, ITEMS = 9 };
    const int32_t lists[N * K] = {1, 2, 3, 1, 2, 4, 1, 5, 0, 2, 3, 6, 1, 2, 7, 9, 1, 2};
    const uint16_t w[2][N] = {{1, 1, 1, 1, 1, 1}, {3, 0, 2, 0, 1, 0}};
    int8_t label[ITEMS + 1] = {0};
    int64_t pop[ITEMS + 1] = {0};
    ps_bootstrap b = {.resamples = 2, .n = N, .seed = 0, .weight = calloc(2 * N, sizeof(uint16_t))};
    assert_non_null(b.weight);
    memcpy(b.weight, w, sizeof w);
    double g[2];
    ps_error err;
    assert_int_equal(ps_bootstrap_gini(&b, lists, K, ITEMS, g, &err), PS_OK);
    for (int r = 0; r < 2; r++) {
        ps_metrics_acc a;
        ps_metrics m;
        assert_int_equal(ps_metrics_acc_init(&a, K, ITEMS, label, pop, &err), PS_OK);
        for (int u = 0; u < N; u++)
            for (int t = 0; t < w[r][u]; t++)
                ps_metrics_acc_add(&a, 1, 0, lists + u * K);
        ps_metrics_acc_finish(&a, &m);
        tu_assert_near(g[r], m.gini, 1e-12);
        ps_metrics_acc_free(&a);
    }
    assert_true(g[1] > g[0]); /* the second resample concentrates exposure on items 1-3 */
    free(b.weight);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resamples_sum_to_n_and_ignore_threads),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_interval_normal),
        cmocka_unit_test(test_constant_difference),
        cmocka_unit_test(test_known_noisy_difference),
        cmocka_unit_test(test_gini_matches_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
