/* Accuracy of the vectorisable exp/erf used by softmax and GELU, on a dense grid against libm
 * in double: exp relative error < 2e-7 on [-87, 88], exact 0 far below; erf absolute error
 * < 3e-7 on [-8, 8] (glibc's erff itself is ~5e-8 off). */
#include "testutil.h"

#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

static void test_exp(void **state)
{
    (void)state;
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 3.7e-4) {
        double ref = exp((double)(float)x);
        double e = fabs(ps_nn_fexp((float)x) - ref) / ref;
        worst = fmax(worst, e);
    }
    printf("  exp max relative error %.3g\n", worst);
    assert_true(worst < 2e-7);
    assert_true(ps_nn_fexp(0.0f) == 1.0f);
    assert_true(ps_nn_fexp(-10000.0f) == 0.0f);
    assert_true(ps_nn_fexp(-INFINITY) == 0.0f);
    assert_true(ps_nn_fexp(-100.0f) == 0.0f);
}

static void test_erf(void **state)
{
    (void)state;
    double worst = 0;
    for (double x = -8.0; x <= 8.0; x += 1.3e-5) {
        double e = fabs(ps_nn_ferf((float)x) - erf((double)(float)x));
        worst = fmax(worst, e);
    }
    printf("  erf max absolute error %.3g\n", worst);
    assert_true(worst < 3e-7);
    assert_true(ps_nn_ferf(0.0f) == 0.0f);
    assert_true(ps_nn_ferf(INFINITY) == 1.0f && ps_nn_ferf(-INFINITY) == -1.0f);
    assert_true(ps_nn_ferf(1e30f) == 1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_erf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
