/* PopSteer-I's steering vector (src/steer/steer_decoder.c) on a hand-made SAE, and its errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/sae.h"
#include "popsteer/steer_decoder.h"

/* Four latents in two dimensions; decoder rows W0 = (1, 0), W1 = (0, 2), W2 = (3, 3), W3 = (1, 1). */
static ps_sae *hand_sae(void)
{
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, 2, 2);
    cfg.k = 2;
    cfg.k_aux = 2;
    ps_error err = {{0}};
    ps_sae *sae = ps_sae_create(&cfg, &err);
    if (!sae)
        fail_msg("sae: %s", err.msg);
    static const float W[8] = {1, 0, 0, 2, 3, 3, 1, 1};
    memcpy(sae->params + sae->offset[PS_SAE_W_DEC], W, sizeof W);
    return sae;
}

/* d = [+1, −0.5, 0.25, 0]: S(N = 3) = {0, 1, 2}, min|d| 0.25, max|d| 1, so w = 1, 1/3, 0; latent 0 is
 * popular (negated): v = −W0 + W1/3 = (−1, 2/3); delta = α ν v/‖v‖. */
static void test_hand_vector(void **state)
{
    (void)state;
    ps_sae *sae = hand_sae();
    static const double d[4] = {1, -0.5, 0.25, 0};
    float delta[2];
    ps_error err = {{0}};
    assert_int_equal(ps_decoder_delta(sae, d, 3, 0.5, 4, delta, &err), PS_OK);
    double n = sqrt(1 + 4.0 / 9);
    tu_assert_near(delta[0], 0.5 * 4 * -1 / n, 1e-6);
    tu_assert_near(delta[1], 0.5 * 4 * (2.0 / 3) / n, 1e-6);
    /* N = 1: only latent 0, whose weight (|d| − min)/(max − min) is 1: delta = −α ν W0 */
    assert_int_equal(ps_decoder_delta(sae, d, 1, 2, 1, delta, &err), PS_OK);
    tu_assert_near(delta[0], -2, 1e-7);
    tu_assert_near(delta[1], 0, 0);
    /* α = 0 steers nothing */
    assert_int_equal(ps_decoder_delta(sae, d, 4, 0, 3, delta, &err), PS_OK);
    tu_assert_near(delta[0], 0, 0);
    tu_assert_near(delta[1], 0, 0);
    ps_sae_free(sae);
}

static void test_errors(void **state)
{
    (void)state;
    ps_sae *sae = hand_sae();
    float delta[2];
    ps_error err = {{0}};
    static const double d[4] = {1, -0.5, 0.25, 0};
    assert_int_equal(ps_decoder_delta(sae, d, 3, -1, 1, delta, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "alpha"));
    assert_int_equal(ps_decoder_delta(sae, d, 3, 1, NAN, delta, &err), PS_ERR);
    assert_int_equal(ps_decoder_delta(sae, d, 5, 1, 1, delta, &err), PS_ERR); /* N > m */
    /* no latent shows a bias (every d 0, so every weight 0): no direction */
    static const double flat[4] = {0, 0, 0, 0};
    assert_int_equal(ps_decoder_delta(sae, flat, 4, 1, 1, delta, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "no direction"));
    static const double bad[4] = {1, NAN, 0, 0};
    assert_int_equal(ps_decoder_delta(sae, bad, 2, 1, 1, delta, &err), PS_ERR);
    ps_sae_free(sae);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_hand_vector), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
