/* The ablations of issue 14 §1 on hand-made numbers: the unweighted and random-latent plans
 * (steer.h), the conditional gate and the direction vector (steer_ablation.h). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/steer.h"
#include "popsteer/steer_ablation.h"

/* Six latents. |d| order: 0 (0.9), 1 (0.6), 2 and 3 (0.3; the smaller index first), 5 (0.1), 4 (0).
 * min |d| over d != 0 is 0.1. */
static const double D[6] = {0.9, -0.6, 0.3, -0.3, 0.0, 0.1};
static const double SD_POP[6] = {1, 2, 3, 4, 5, 6};
static const double SD_UNPOP[6] = {0.5, 1, 1.5, 2, 2.5, 3};
static const double MEAN_POP[6] = {3, 0.5, 0, 0, 0, 0};
static const double MEAN_UNPOP[6] = {1, 2, 0, 0, 0, 0};

static void make(int N, double alpha, ps_steer_variant v, uint64_t seed, ps_steer_plan *p)
{
    ps_error err = {{0}};
    if (ps_steer_plan_make_variant(D, SD_POP, SD_UNPOP, 6, N, alpha, v, seed, p, &err) != PS_OK)
        fail_msg("plan: %s", err.msg);
}

/* Top 3 by |d|, every weight α = 2: shifts −2·0.5, +2·2, −2·1.5. */
static void test_unweighted(void **state)
{
    (void)state;
    ps_steer_plan p;
    make(3, 2, PS_STEER_UNWEIGHTED, 0, &p);
    const int32_t lat[3] = {0, 1, 2};
    const double shift[3] = {-1, 4, -3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p.latent[i], lat[i]);
        tu_assert_near(p.weight[i], 2, 0);
        tu_assert_near(p.shift[i], shift[i], 1e-15);
    }
    ps_steer_plan_free(&p);
    /* with all six the d = 0 latent (4, last) keeps weight and shift 0 */
    make(6, 2, PS_STEER_UNWEIGHTED, 0, &p);
    assert_int_equal(p.latent[5], 4);
    tu_assert_near(p.weight[5], 0, 0);
    tu_assert_near(p.shift[5], 0, 0);
    tu_assert_near(p.shift[4], -2 * 3.0, 1e-15); /* latent 5: d = 0.1 > 0 → −α σ_unpop */
    ps_steer_plan_free(&p);
}

/* The paper's weights for N = 3, α = 2 are 2·(|d| − 0.1)/0.8 = 2, 1.25, 0.5, by position; the random
 * plan gives them to its drawn latents, each shifted by its own d and σ. */
static void test_random(void **state)
{
    (void)state;
    const double w[3] = {2, 1.25, 0.5};
    ps_steer_plan p, q;
    make(3, 2, PS_STEER_RANDOM, 42, &p);
    make(3, 2, PS_STEER_RANDOM, 42, &q);
    for (int i = 0; i < 3; i++) {
        int32_t j = p.latent[i];
        assert_true(j >= 0 && j < 6);
        for (int k = 0; k < i; k++)
            assert_true(p.latent[k] != j);
        assert_int_equal(q.latent[i], j); /* the same seed and N draw the same latents */
        tu_assert_near(p.weight[i], w[i], 1e-15);
        double want = D[j] < 0 ? w[i] * SD_POP[j] : D[j] > 0 ? -w[i] * SD_UNPOP[j] : 0;
        tu_assert_near(p.shift[i], want, 1e-15);
    }
    ps_steer_plan_free(&q);
    /* N = m: a permutation of every latent */
    make(6, 2, PS_STEER_RANDOM, 42, &q);
    int seen[6] = {0};
    for (int i = 0; i < 6; i++)
        seen[q.latent[i]]++;
    for (int j = 0; j < 6; j++)
        assert_int_equal(seen[j], 1);
    ps_steer_plan_free(&q);
    /* some other seed draws another set or order (the 3-of-6 draw has 120 outcomes) */
    int differs = 0;
    for (uint64_t s = 1; s <= 8 && !differs; s++) {
        make(3, 2, PS_STEER_RANDOM, s, &q);
        differs = memcmp(p.latent, q.latent, 3 * sizeof *p.latent) != 0;
        ps_steer_plan_free(&q);
    }
    assert_true(differs);
    ps_steer_plan_free(&p);
    /* the variants validate like the paper's plan */
    ps_error err = {{0}};
    assert_int_equal(ps_steer_plan_make_variant(D, SD_POP, SD_UNPOP, 6, 7, 1, PS_STEER_RANDOM, 1, &q, &err), PS_ERR);
    assert_null(q.latent);
}

/* The paper's plan for N = 2, α = 2: latent 0 (d > 0, w 2, shift −1) and latent 1 (d < 0, w 1.25,
 * shift +2.5). Thresholds: latent 0 the long-tail group's 1 + 2·0.5 = 2, latent 1 the popular
 * group's 0.5 + 2·2 = 4.5. */
static void test_conditional(void **state)
{
    (void)state;
    ps_steer_plan p;
    make(2, 2, PS_STEER_PAPER, 0, &p);
    double thr[2];
    ps_steer_conditional_thresholds(&p, D, MEAN_POP, SD_POP, MEAN_UNPOP, SD_UNPOP, thr);
    tu_assert_near(thr[0], 2, 0);
    tu_assert_near(thr[1], 4.5, 0);
    float pre[2][6] = {{2.5f, 4.0f, 7, 7, 7, 7}, {2.0f, 5.0f, 7, 7, 7, 7}};
    assert_int_equal(ps_steer_apply_conditional(&p, thr, &pre[0][0], 2), 2);
    /* row 0: latent 0 is beyond 2 (shifted), latent 1 not beyond 4.5; row 1: only latent 1 */
    tu_assert_near(pre[0][0], 1.5, 0);
    tu_assert_near(pre[0][1], 4.0, 0);
    tu_assert_near(pre[1][0], 2.0, 0);
    tu_assert_near(pre[1][1], 7.5, 0);
    for (int j = 2; j < 6; j++)
        tu_assert_near(pre[0][j], 7, 0);
    ps_steer_plan_free(&p);
    /* a d = 0 latent is never shifted */
    make(6, 2, PS_STEER_PAPER, 0, &p);
    double thr6[6];
    ps_steer_conditional_thresholds(&p, D, MEAN_POP, SD_POP, MEAN_UNPOP, SD_UNPOP, thr6);
    assert_int_equal(p.latent[5], 4);
    assert_true(isinf(thr6[5]));
    ps_steer_plan_free(&p);
}

/* m_lt − m_pop = (0, 3, 4), unit (0, 0.6, 0.8); α = 2, ν = 1.5 → (0, 1.8, 2.4). */
static void test_direction(void **state)
{
    (void)state;
    const double mp[3] = {1, 0, 0}, ml[3] = {1, 3, 4};
    float delta[3];
    ps_error err = {{0}};
    assert_int_equal(ps_direction_delta(mp, ml, 3, 2, 1.5, delta, &err), PS_OK);
    tu_assert_near(delta[0], 0, 0);
    tu_assert_near(delta[1], 1.8, 1e-6);
    tu_assert_near(delta[2], 2.4, 1e-6);
    assert_int_equal(ps_direction_delta(mp, mp, 3, 2, 1.5, delta, &err), PS_ERR); /* no direction */
    assert_non_null(strstr(err.msg, "coincide"));
    assert_int_equal(ps_direction_delta(mp, ml, 3, -1, 1.5, delta, &err), PS_ERR);
    const float h[2][2] = {{3, 4}, {0, 0}};
    tu_assert_near(ps_mean_norm(&h[0][0], 2, 2), 2.5, 1e-12);
    tu_assert_near(ps_mean_norm(&h[0][0], 0, 2), 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unweighted),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_conditional),
        cmocka_unit_test(test_direction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
