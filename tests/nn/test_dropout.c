/* Counter-based dropout: reproducible masks, independence from the thread count, the drop rate,
 * the 1/(1-p) scaling, identity when inactive, and a finite-difference check of backward with a
 * fixed mask (tolerance as in test_layers.c: |a - n| / max(|a|, |n|, 1e-2) < 1e-2, step 1e-2). */
#include "testutil.h"

#include "nn/nn.h"
#include "fdcheck.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define N_BIG 200001 /* odd, and above the size where the kernel goes parallel */

static float *fvec(size_t n)
{
    float *p = calloc(n, sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f + (float)(i % 97) * 0.01f; /* never 0, so dropped <=> output 0 */
}

static size_t count_diff_mask(const float *a, const float *b, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (a[i] == 0.0f) != (b[i] == 0.0f);
    return k;
}

static void test_mask_reproducible_and_stream_dependent(void **state)
{
    (void)state;
    float *x = fvec(N_BIG), *y1 = fvec(N_BIG), *y2 = fvec(N_BIG), *y3 = fvec(N_BIG), *y4 = fvec(N_BIG);
    fill(x, N_BIG);
    ps_nn_dropout d = {0.5f, 1234, 7};
    ps_nn_dropout_forward(y1, x, N_BIG, &d);
    ps_nn_dropout_forward(y2, x, N_BIG, &d);
    assert_memory_equal(y1, y2, N_BIG * sizeof(float));
    ps_nn_dropout other_step = {0.5f, 1234, 8};
    ps_nn_dropout_forward(y3, x, N_BIG, &other_step);
    ps_nn_dropout other_seed = {0.5f, 1235, 7};
    ps_nn_dropout_forward(y4, x, N_BIG, &other_seed);
    /* independent masks at p = 0.5 disagree on about half of the elements */
    double f3 = (double)count_diff_mask(y1, y3, N_BIG) / N_BIG;
    double f4 = (double)count_diff_mask(y1, y4, N_BIG) / N_BIG;
    printf("  mask disagreement: other step %.4f, other seed %.4f\n", f3, f4);
    assert_true(fabs(f3 - 0.5) < 0.01);
    assert_true(fabs(f4 - 0.5) < 0.01);
    /* ps_nn_dropout_keep is the same mask */
    for (size_t i = 0; i < N_BIG; i += 997)
        assert_int_equal(ps_nn_dropout_keep(&d, i), y1[i] != 0.0f);
    free(x), free(y1), free(y2), free(y3), free(y4);
}

static void test_rate_and_scale(void **state)
{
    (void)state;
    const float ps[] = {0.1f, 0.5f, 0.9f};
    float *x = fvec(N_BIG), *y = fvec(N_BIG);
    fill(x, N_BIG);
    for (int k = 0; k < 3; k++) {
        ps_nn_dropout d = {ps[k], 42, 3};
        ps_nn_dropout_forward(y, x, N_BIG, &d);
        size_t dropped = 0;
        for (size_t i = 0; i < N_BIG; i++) {
            if (y[i] == 0.0f)
                dropped++;
            else
                assert_true(y[i] == x[i] * (1.0f / (1.0f - ps[k])));
        }
        double rate = (double)dropped / N_BIG;
        printf("  p = %.1f: dropped %.4f\n", (double)ps[k], rate);
        assert_true(fabs(rate - ps[k]) < 0.005); /* ~7 standard deviations */
    }
    free(x), free(y);
}

static void test_thread_count_independent(void **state)
{
    (void)state;
    int saved = omp_get_max_threads();
    float *x = fvec(N_BIG), *y1 = fvec(N_BIG), *y2 = fvec(N_BIG), *g1 = fvec(N_BIG), *g2 = fvec(N_BIG);
    fill(x, N_BIG);
    ps_nn_dropout d = {0.5f, 77, 123456789};
    omp_set_num_threads(1);
    ps_nn_dropout_forward(y1, x, N_BIG, &d);
    ps_nn_dropout_backward(g1, x, N_BIG, &d);
    omp_set_num_threads(2);
    ps_nn_dropout_forward(y2, x, N_BIG, &d);
    ps_nn_dropout_backward(g2, x, N_BIG, &d);
    omp_set_num_threads(saved);
    assert_memory_equal(y1, y2, N_BIG * sizeof(float));
    assert_memory_equal(g1, g2, N_BIG * sizeof(float));
    /* and a mask does not depend on how the array is split between calls: in place on a copy */
    memcpy(y2, x, N_BIG * sizeof(float));
    ps_nn_dropout_forward(y2, y2, N_BIG, &d);
    assert_memory_equal(y1, y2, N_BIG * sizeof(float));
    free(x), free(y1), free(y2), free(g1), free(g2);
}

static void test_inactive_is_identity(void **state)
{
    (void)state;
    float x[5] = {1, -2, 3, -4, 5}, y[5], g[5] = {0};
    ps_nn_dropout off = {0.0f, 1, 1};
    ps_nn_dropout_forward(y, x, 5, &off);
    assert_memory_equal(x, y, sizeof x);
    ps_nn_dropout_forward(y, x, 5, NULL);
    assert_memory_equal(x, y, sizeof x);
    ps_nn_dropout_backward(g, x, 5, NULL);
    assert_memory_equal(x, g, sizeof x);
}

typedef struct dctx {
    size_t n;
    ps_nn_dropout d;
    float *x, *y, *w;
} dctx;

static double drop_loss(void *p)
{
    dctx *c = p;
    ps_nn_dropout_forward(c->y, c->x, c->n, &c->d);
    double s = 0;
    for (size_t i = 0; i < c->n; i++)
        s += (double)c->w[i] * c->y[i];
    return s;
}

static void test_backward_fd_fixed_mask(void **state)
{
    (void)state;
    dctx c = {.n = 101, .d = {0.5f, 5, 9}};
    c.x = fvec(c.n), c.y = fvec(c.n), c.w = fvec(c.n);
    for (size_t i = 0; i < c.n; i++) {
        c.x[i] = (float)i * 0.01f - 0.5f;
        c.w[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;
    }
    float *dx = fvec(c.n);
    ps_nn_dropout_backward(dx, c.w, c.n, &c.d);
    fd_result r = fd_check(drop_loss, &c, c.x, dx, c.n, 1e-2f, 1e-2, 1000);
    fd_report("dropout dx (fixed mask)", &r);
    assert_true(r.max_err < 1e-2);
    free(dx), free(c.x), free(c.y), free(c.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_reproducible_and_stream_dependent),
        cmocka_unit_test(test_rate_and_scale),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_inactive_is_identity),
        cmocka_unit_test(test_backward_fd_fixed_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
