/* Adam against a two-step example worked by hand (torch.optim.Adam semantics).
 *
 * lr = 0.1, betas 0.9 / 0.999, eps 1e-8; two parameters starting at 1.
 * Step 1, g = (0.5, -2):  m = 0.1 g = (0.05, -0.2);  v = 0.001 g^2 = (0.00025, 0.004)
 *   m_hat = m / 0.1 = g;  sqrt(v_hat) = sqrt(v / 0.001) = |g|
 *   p -= 0.1 * g / (|g| + 1e-8)  ->  p = (0.900000002, 1.1)
 * Step 2, g = (-0.25, 1):  m = 0.9 m + 0.1 g = (0.02, -0.08)
 *   v = 0.999 v + 0.001 g^2 = (0.00031225, 0.004996)
 *   bias corrections 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
 *   p -= 0.1 * (m / 0.19) / (sqrt(v / 0.001999) + 1e-8)
 *   p0 = 0.900000002 - 0.1 * 0.105263158 / 0.395225... = 0.873366299
 *   p1 = 1.1 + 0.1 * 0.421052632 / 1.580901... = 1.126633703
 * Tolerance: parameters 1e-6 absolute, moments 1e-6 relative (float arithmetic). */
#include "testutil.h"

#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

static void test_two_steps_by_hand(void **state)
{
    (void)state;
    float p[3] = {1.0f, 1.0f, 3.0f}, m[3] = {0}, v[3] = {0};
    float g1[3] = {0.5f, -2.0f, 0.0f}, g2[3] = {-0.25f, 1.0f, 0.0f};
    ps_nn_adam_step(p, g1, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 1);
    assert_true(fabs(p[0] - 0.900000002) < 1e-6);
    assert_true(fabs(p[1] - 1.1) < 1e-6);
    assert_true(fabs(m[0] - 0.05) < 1e-6 * 0.05 && fabs(v[1] - 0.004) < 1e-6 * 0.004);
    ps_nn_adam_step(p, g2, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 2);
    printf("  after 2 steps: %.9f %.9f (expected 0.873366299 1.126633703)\n", (double)p[0], (double)p[1]);
    assert_true(fabs(p[0] - 0.873366299) < 1e-6);
    assert_true(fabs(p[1] - 1.126633703) < 1e-6);
    assert_true(fabs(m[0] - 0.02) < 1e-6 * 0.02 && fabs(v[0] - 0.00031225) < 1e-6 * 0.00031225);
    /* a zero gradient never moves a parameter with zero moments */
    assert_true(p[2] == 3.0f && m[2] == 0.0f && v[2] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_steps_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
