/* PopSteer-U (src/steer/steer_rule.c): the shifts and the per-user gate on a hand-computed
 * example, equality with the paper's rule (ps_steer_apply) at the paper's parameters, dead
 * latents left out, and the error cases. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/steer.h"
#include "popsteer/steer_rule.h"

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

static void assert_near(double got, double want, double tol)
{
    if (fabs(got - want) > tol * fmax(1.0, fabs(want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* The hand example, m = 4:
 *   d      = [ 2,   −1,  0.5, 0 ]
 *   μ_pop  = [ 1,    0,  0,   0 ]   μ_unpop = [ 0, 2, 0, 0 ]
 *   σ_pop  = [ 0.5,  3,  1,   1 ]   σ_unpop = [ 0.5, 3, 1, 1 ]
 *   fire   = [ 0.5,  0,  0.1, 0.2 ] (latent 1 never fires on real users) */
static const double D[4] = {2, -1, 0.5, 0};
static const double MP[4] = {1, 0, 0, 0};
static const double MU[4] = {0, 2, 0, 0};
static const double SP[4] = {0.5, 3, 1, 1};
static const double SU[4] = {0.5, 3, 1, 1};
static const double FIRE[4] = {0.5, 0, 0.1, 0.2};

static ps_steer_rule rule_ok(const ps_steer_rule_params *p)
{
    ps_steer_rule_probe pr = {4, D, MP, SP, MU, SU, FIRE};
    ps_steer_rule r;
    ps_error err = {{0}};
    if (ps_steer_rule_make(&pr, p, &r, &err) != PS_OK)
        fail_msg("rule: %s", err.msg);
    return r;
}

/* N = 3, α_pop = 2, α_unpop = 1, per-user gate:
 *   S = {0 (|d| 2), 1 (1), 2 (0.5)}; min|d| = 0.5, max = 2, max − min = 1.5
 *   w_0 = α_pop·(2 − 0.5)/1.5 = 2 -> shift_0 = −2·σ_unpop0 = −1
 *   w_1 = α_unpop·(1 − 0.5)/1.5 = 1/3 -> shift_1 = +(1/3)·σ_pop1 = +1
 *   w_2 = α_pop·0 = 0 -> shift_2 = 0
 * Gate: c = [0.5, 1, 0], pooled s = [0.5, 3, 1], Σ|d| = 3.5, Σd² = 5.25, π_ref = 0.75;
 *   π_u = (4·(a_0 − 0.5) − (1/3)·(a_1 − 1) + 0.5·a_2) / 3.5, g = clamp((π + 0.75)/1.5, 0, 1).
 *   row A = [0.5, 1, 0, 7]:      π = 0                 -> g = 0.5 -> [0, 1.5, 0, 7]
 *   row B = [1.5, 1, 0, 7]:      π = 4/3.5 > π_ref     -> g = 1   -> [0.5, 2, 0, 7]
 *   row C = [−0.15625, 1, 0, 7]: π = 4·(−0.65625)/3.5 = −0.75 -> g = 0 -> unchanged
 *   row D = [0.5, 4, 0, 7]:      π = −(1/3)·3/3.5 = −2/7 -> g = (0.75 − 2/7)/1.5 = 13/42
 *                                -> [0.5 − 13/42, 4 + 13/42, 0, 7] */
static void test_hand_example(void **state)
{
    (void)state;
    ps_steer_rule_params p = {.N = 3, .alpha_pop = 2, .alpha_unpop = 1, .gate = PS_RULE_GATE_USER};
    ps_steer_rule r = rule_ok(&p);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.latent[0], 0);
    assert_int_equal(r.latent[1], 1);
    assert_int_equal(r.latent[2], 2);
    assert_near(r.weight[0], 2, 1e-12);
    assert_near(r.weight[1], 1.0 / 3.0, 1e-12);
    assert_near(r.weight[2], 0, 1e-12);
    assert_near(r.shift[0], -1, 1e-12);
    assert_near(r.shift[1], 1, 1e-12);
    assert_near(r.shift[2], 0, 1e-12);
    assert_near(r.pi_ref, 0.75, 1e-12);

    float pre[4][4] = {{0.5f, 1, 0, 7}, {1.5f, 1, 0, 7}, {-0.15625f, 1, 0, 7}, {0.5f, 4, 0, 7}};
    const double want_g[4] = {0.5, 1, 0, 13.0 / 42.0};
    const double want[4][4] = {{0, 1.5, 0, 7},
                               {0.5, 2, 0, 7},
                               {-0.15625, 1, 0, 7},
                               {0.5 - 13.0 / 42.0, 4 + 13.0 / 42.0, 0, 7}};
    double g[4];
    ps_steer_rule_apply(&r, &pre[0][0], 4, g);
    for (int b = 0; b < 4; b++) {
        assert_near(g[b], want_g[b], 1e-12);
        for (int j = 0; j < 4; j++)
            assert_near(pre[b][j], want[b][j], 1e-6);
    }
    ps_steer_rule_free(&r);
}

/* Without the gate every row gets the full shift, whatever it holds. */
static void test_no_gate(void **state)
{
    (void)state;
    ps_steer_rule_params p = {.N = 3, .alpha_pop = 2, .alpha_unpop = 1, .gate = PS_RULE_GATE_NONE};
    ps_steer_rule r = rule_ok(&p);
    float pre[2][4] = {{0.5f, 1, 0, 7}, {-0.15625f, 1, 0, 7}};
    double g[2];
    ps_steer_rule_apply(&r, &pre[0][0], 2, g);
    assert_true(g[0] == 1 && g[1] == 1);
    assert_near(pre[0][0], -0.5, 1e-7);
    assert_near(pre[0][1], 2, 1e-7);
    assert_near(pre[1][0], -1.15625, 1e-7);
    assert_near(pre[1][1], 2, 1e-7);
    ps_steer_rule_free(&r);
}

/* skip_dead leaves latent 1 (fire rate 0) out: S = {0, 2, 3} for N = 3. min|d| stays over
 * all latents (0.5), so w_0 and w_2 are unchanged; latent 3 has d = 0 and no shift. */
static void test_skip_dead(void **state)
{
    (void)state;
    ps_steer_rule_params p = {.N = 3, .alpha_pop = 2, .alpha_unpop = 1, .skip_dead = 1};
    ps_steer_rule r = rule_ok(&p);
    assert_int_equal(r.n_dead_skipped, 1);
    assert_int_equal(r.latent[0], 0);
    assert_int_equal(r.latent[1], 2);
    assert_int_equal(r.latent[2], 3);
    assert_near(r.shift[0], -1, 1e-12);
    assert_near(r.shift[1], 0, 1e-12);
    assert_near(r.shift[2], 0, 1e-12);
    ps_steer_rule_free(&r);

    /* only 3 latents fire: N = 4 is refused, saying so */
    p.N = 4;
    ps_steer_rule_probe pr = {4, D, MP, SP, MU, SU, FIRE};
    ps_error err = {{0}};
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "only 3 of 4");
    ps_steer_rule_free(&r);
}

/* A deterministic pseudo-random probe table and pre-activations (no libc rand: same on every
 * platform). */
static double lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* At the paper's parameters (α_pop = α_unpop = α, no gate, dead latents kept) the rule's S,
 * weights and shifts are the plan's bit for bit, and applying it gives exactly
 * ps_steer_apply's rows, for several N and α (including ties in |d| and d == 0). */
static void test_equals_paper(void **state)
{
    (void)state;
    enum { M = 64, B = 5 };
    double d[M], mp[M], mu[M], sp[M], su[M];
    uint64_t seed = 7;
    for (int j = 0; j < M; j++) {
        d[j] = 6 * lcg(&seed) - 3;
        mp[j] = lcg(&seed);
        mu[j] = lcg(&seed);
        sp[j] = 2 * lcg(&seed);
        su[j] = 2 * lcg(&seed);
    }
    d[5] = 0;
    d[9] = -d[3]; /* a tie in |d|: the smaller index first, in both */
    ps_steer_rule_probe pr = {M, d, mp, sp, mu, su, NULL};
    const int Ns[] = {1, 7, 32, M};
    const double alphas[] = {0, 0.5, 1.5, 4};
    for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++)
        for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++) {
            ps_steer_plan plan;
            ps_steer_rule r;
            ps_steer_rule_params p;
            ps_error err = {{0}};
            ps_steer_rule_params_paper(&p, Ns[n], alphas[a]);
            assert_int_equal(ps_steer_plan_make(d, sp, su, M, Ns[n], alphas[a], &plan, &err), PS_OK);
            assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_OK);
            assert_int_equal(r.n, plan.n);
            for (int i = 0; i < r.n; i++) {
                assert_int_equal(r.latent[i], plan.latent[i]);
                assert_true(r.weight[i] == plan.weight[i]);
                assert_true(r.shift[i] == plan.shift[i]);
            }
            float x[B * M], y[B * M];
            for (int i = 0; i < B * M; i++)
                x[i] = y[i] = (float)(4 * lcg(&seed) - 2);
            ps_steer_apply(&plan, x, B);
            ps_steer_rule_apply(&r, y, B, NULL);
            assert_memory_equal(x, y, sizeof x);
            ps_steer_plan_free(&plan);
            ps_steer_rule_free(&r);
        }
}

static void test_errors(void **state)
{
    (void)state;
    ps_steer_rule_probe pr = {4, D, MP, SP, MU, SU, NULL};
    ps_steer_rule r;
    ps_error err = {{0}};
    ps_steer_rule_params p = {.N = 2, .alpha_pop = -1, .alpha_unpop = 1};
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "alpha_pop");
    p.alpha_pop = 1;
    p.alpha_unpop = NAN;
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "alpha_unpop");
    p.alpha_unpop = 1;
    p.N = 5;
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "N = 5");
    p.N = 2;
    p.skip_dead = 1; /* no fire rates given */
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "fire rates");
    p.skip_dead = 0;
    p.gate = 7;
    assert_int_equal(ps_steer_rule_make(&pr, &p, &r, &err), PS_ERR);
    assert_contains(err.msg, "gate");
    ps_steer_rule_free(&r); /* an empty rule is safe to free */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_example), cmocka_unit_test(test_no_gate), cmocka_unit_test(test_skip_dead),
        cmocka_unit_test(test_equals_paper), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
