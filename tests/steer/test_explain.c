/* The score decomposition (src/steer/explain.c) on a small generated dataset with freshly
 * initialised models: the latent contributions plus the decoder-bias term add up to the score
 * the steered scorers compute, before and after steering (the paper's rule and PopSteer-U with
 * keep_error), the orderings hold, the top-1 default, the latents' top items, and the errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/evaluate.h"
#include "popsteer/explain.h"
#include "popsteer/popsteer.h"
#include "popsteer/steer_rule.h"
#include "popsteer/train.h" /* ps_sasrec_scorer */

typedef struct fixture {
    char *dir;
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    ps_probe_result probe;
    ps_steer_plan plan;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    tu_tiny_stack(f->dir, &f->ds, &f->m, &f->sae);
    ps_error err = {{0}};
    /* a fresh SAE has b_dec = 0: give it one, so that the bias term is tested too */
    ps_sae_tensors t = ps_sae_view(f->sae, f->sae->params);
    for (int i = 0; i < 16; i++)
        t.b_dec[i] = 0.05f * (float)((i * 7) % 11 - 5);
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.cap = 400;
    if (ps_probe_run(f->m, f->sae, &f->ds, &po, &f->probe, &err) != PS_OK)
        fail_msg("probe: %s", err.msg);
    const ps_latent_table *tb = &f->probe.table;
    if (ps_steer_plan_make(tb->d, tb->std_pop, tb->std_unpop, tb->m, 20, 3.0, &f->plan, &err) != PS_OK)
        fail_msg("plan: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ps_steer_plan_free(&f->plan);
    ps_probe_result_free(&f->probe);
    ps_sae_free(f->sae);
    ps_sasrec_free(f->m);
    ps_dataset_free(&f->ds);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* user u's test-time prefix, as `popsteer recommend` builds it */
static int32_t prefix(const fixture *f, int32_t u, int32_t *seq)
{
    ps_sample s = {u, (int32_t)ps_user_len(&f->ds, u)};
    int32_t len;
    ps_batch_prefixes(&f->ds, &s, 1, f->m->cfg.max_len, seq, &len);
    return len;
}

static void assert_rel(double got, double want, double rel, const char *what)
{
    if (fabs(got - want) > rel * fmax(fabs(want), 1e-3))
        fail_msg("%s: got %.9g, want %.9g", what, got, want);
}

/* the parts add up, codes in TopK order, by_contrib by |contrib|, d and fire rate from the table */
static void check_side(const fixture *f, const ps_explain_side *s, const char *what)
{
    assert_true(s->n_codes >= 1 && s->n_codes <= f->sae->cfg.k);
    double sum = s->bias_term + s->error_term;
    for (int i = 0; i < s->n_codes; i++) {
        const ps_explain_code *c = &s->codes[i];
        assert_true(c->z > 0);
        if (i)
            assert_true(c->z <= s->codes[i - 1].z);
        assert_true(c->d == f->probe.table.d[c->latent]);
        assert_true(c->fire_rate == f->probe.table.fire_rate[c->latent]);
        sum += c->contrib;
        if (i)
            assert_true(fabs(s->codes[s->by_contrib[i]].contrib) <= fabs(s->codes[s->by_contrib[i - 1]].contrib));
    }
    tu_assert_near(sum, s->sum, 1e-9 * fmax(1, fabs(sum)));
    assert_rel(s->sum, s->score, 1e-4, what);
}

static void test_sum_equals_scorer(void **state)
{
    fixture *f = *state;
    ps_error err = {{0}};
    ps_steer_scorer plain = {0}, steered = {0};
    assert_int_equal(ps_steer_scorer_init(&plain, f->m, f->sae, NULL, 1, &err), PS_OK);
    assert_int_equal(ps_steer_scorer_init(&steered, f->m, f->sae, &f->plan, 1, &err), PS_OK);
    int L = f->m->cfg.max_len, V = f->ds.n_items + 1, changed = 0;
    int32_t *seq = calloc((size_t)L, sizeof *seq);
    float *s0 = calloc((size_t)V, sizeof *s0), *s1 = calloc((size_t)V, sizeof *s1);
    assert_true(seq && s0 && s1);
    ps_explain_steering st = {&f->plan, NULL};
    for (int32_t u = 1; u <= 20; u++) {
        int len = prefix(f, u, seq);
        assert_int_equal(ps_steer_user(&plain, seq, len, s0, &err), PS_OK);
        assert_int_equal(ps_steer_user(&steered, seq, len, s1, &err), PS_OK);
        for (int32_t item = 0; item <= 3; item++) {
            ps_explain e;
            if (ps_explain_user(f->m, f->sae, &st, &f->probe.table, seq, len, item ? item * 37 : 0, &e, &err) != PS_OK)
                fail_msg("explain: %s", err.msg);
            if (!item) { /* the steered list's top 1 */
                int32_t top;
                ps_topk(s1, f->ds.n_items, 1, NULL, &top);
                assert_int_equal(e.item, top);
                assert_true(e.item_was_top1);
            } else {
                assert_int_equal(e.item, item * 37);
                assert_false(e.item_was_top1);
            }
            check_side(f, &e.before, "before");
            check_side(f, &e.after, "after");
            assert_rel(e.before.sum, s0[e.item], 1e-4, "before vs ps_steer_user");
            assert_rel(e.after.sum, s1[e.item], 1e-4, "after vs ps_steer_user");
            tu_assert_near(e.before.error_term, 0, 0);
            tu_assert_near(e.gate, 1, 0);
            changed += e.before.codes[0].latent != e.after.codes[0].latent ||
                       e.before.codes[0].z != e.after.codes[0].z;
            ps_explain_free(&e);
        }
    }
    assert_true(changed > 0); /* alpha 3 on 20 latents moves some user's codes */
    free(seq);
    free(s0);
    free(s1);
    ps_steer_scorer_free(&plain);
    ps_steer_scorer_free(&steered);
}

/* PopSteer-U with the gate and keep_error: the error term carries SASRec's own residual */
static void test_rule_keep_error(void **state)
{
    fixture *f = *state;
    ps_error err = {{0}};
    const ps_latent_table *t = &f->probe.table;
    ps_steer_rule_probe pr = {t->m, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, t->fire_rate};
    ps_steer_rule_params p;
    ps_steer_rule_params_paper(&p, 20, 3.0);
    p.gate = PS_RULE_GATE_USER;
    p.keep_error = 1;
    ps_steer_rule rule;
    assert_int_equal(ps_steer_rule_make(&pr, &p, &rule, &err), PS_OK);
    ps_rule_scorer rs = {0};
    assert_int_equal(ps_rule_scorer_init(&rs, f->m, f->sae, &rule, 1, &err), PS_OK);
    ps_sasrec_scorer plain = {0};
    assert_int_equal(ps_sasrec_scorer_init(&plain, f->m, 1, &err), PS_OK);
    ps_scorer ps = ps_sasrec_scorer_as_scorer(&plain);
    int L = f->m->cfg.max_len, V = f->ds.n_items + 1;
    int32_t *seq = calloc((size_t)L, sizeof *seq);
    float *s0 = calloc((size_t)V, sizeof *s0), *s1 = calloc((size_t)V, sizeof *s1);
    assert_true(seq && s0 && s1);
    ps_explain_steering st = {NULL, &rule};
    for (int32_t u = 1; u <= 10; u++) {
        int32_t len = prefix(f, u, seq);
        assert_int_equal(ps.score(ps.ctx, seq, &len, 1, s0, &err), PS_OK);
        assert_int_equal(ps_rule_score(&rs, seq, &len, 1, s1, &err), PS_OK);
        ps_explain e;
        assert_int_equal(ps_explain_user(f->m, f->sae, &st, t, seq, len, 5, &e, &err), PS_OK);
        check_side(f, &e.before, "before");
        check_side(f, &e.after, "after");
        assert_rel(e.before.sum, s0[5], 1e-4, "before vs SASRec");
        assert_rel(e.after.sum, s1[5], 1e-4, "after vs ps_rule_score");
        assert_true(e.gate >= 0 && e.gate <= 1);
        tu_assert_near(e.before.error_term, e.after.error_term, 0);
        ps_explain_free(&e);
    }
    free(seq);
    free(s0);
    free(s1);
    ps_sasrec_scorer_free(&plain);
    ps_rule_scorer_free(&rs);
    ps_steer_rule_free(&rule);
}

/* no steering: after == before */
static void test_no_steering(void **state)
{
    fixture *f = *state;
    ps_error err = {{0}};
    int32_t seq[256] = {0};
    assert_true(f->m->cfg.max_len <= 256);
    int len = prefix(f, 3, seq);
    ps_explain e;
    assert_int_equal(ps_explain_user(f->m, f->sae, NULL, NULL, seq, len, 9, &e, &err), PS_OK);
    assert_int_equal(e.before.n_codes, e.after.n_codes);
    for (int i = 0; i < e.before.n_codes; i++) {
        assert_int_equal(e.before.codes[i].latent, e.after.codes[i].latent);
        assert_true(isnan(e.before.codes[i].d));
    }
    assert_true(e.before.score == e.after.score);
    ps_explain_free(&e);
}

/* the probe's top items (float) and the recomputed ones (double) agree on the leaders */
static void test_top_items(void **state)
{
    fixture *f = *state;
    ps_error err = {{0}};
    int32_t top[10];
    int agree = 0;
    for (int32_t j = 0; j < 64; j++) {
        assert_int_equal(ps_explain_latent_top_items(f->m, f->sae, j, 10, top, &err), PS_OK);
        agree += top[0] == f->probe.top_items[(size_t)j * f->probe.n_top];
    }
    assert_true(agree >= 60);
    int32_t many[200];
    assert_int_equal(ps_explain_latent_top_items(f->m, f->sae, 0, 200, many, &err), PS_OK);
    assert_int_equal(many[f->ds.n_items - 1] != 0, 1);
    assert_int_equal(many[f->ds.n_items], 0);
    assert_int_equal(ps_explain_latent_top_items(f->m, f->sae, 64, 10, top, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "latent 64"));
}

static void test_errors(void **state)
{
    fixture *f = *state;
    ps_error err = {{0}};
    int32_t seq[256] = {0};
    int len = prefix(f, 3, seq);
    ps_explain e;
    assert_int_equal(ps_explain_user(f->m, f->sae, NULL, NULL, seq, len, f->ds.n_items + 1, &e, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(ps_explain_user(f->m, f->sae, NULL, NULL, seq, 0, 1, &e, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "got 0"));
    ps_latent_table small;
    assert_int_equal(ps_latent_table_alloc(&small, 32, &err), PS_OK);
    assert_int_equal(ps_explain_user(f->m, f->sae, NULL, &small, seq, len, 1, &e, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "has 32 latents but the SAE has 64"));
    ps_latent_table_free(&small);
    ps_steer_plan other;
    double d[8] = {1, -1, 0.5, 0, 0, 0, 0, 0}, sd[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(ps_steer_plan_make(d, sd, sd, 8, 2, 1.0, &other, &err), PS_OK);
    ps_explain_steering st = {&other, NULL};
    assert_int_equal(ps_explain_user(f->m, f->sae, &st, NULL, seq, len, 1, &e, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "made for 8 latents"));
    ps_steer_plan_free(&other);
    ps_explain_free(&e); /* empty after a failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_equals_scorer), cmocka_unit_test(test_rule_keep_error),
        cmocka_unit_test(test_no_steering), cmocka_unit_test(test_top_items), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
