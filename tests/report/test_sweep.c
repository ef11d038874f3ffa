/* The sweep (sweep.h): the selection rule on hand-made points (SPEC §7 and a configured budget,
 * ties), Pareto fronts, the front comparison, and the grid evaluation itself against
 * ps_evaluate on a small generated dataset with freshly initialised models. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/evaluate.h"
#include "popsteer/popsteer.h"
#include "popsteer/steer_ablation.h"
#include "popsteer/steer_decoder.h"
#include "popsteer/steer_rule.h"
#include "popsteer/sweep.h"
#include "popsteer/synth.h"
#include "popsteer/train.h"

/* ---- selection rule ---- */

static void test_rel_reduction(void **state)
{
    (void)state;
    tu_assert_near(ps_rel_reduction(0.5, 0.4), 0.2, 1e-15);
    tu_assert_near(ps_rel_reduction(0.5, 0.6), -0.2, 1e-15);
    tu_assert_near(ps_rel_reduction(0, 0.1), -0.1, 1e-15); /* no ratio without a positive base */
}

/* Base NDCG 0.50, Gini 0.80. Drops: A 0 %, B 2 %, C 5 % (exactly the budget), D 6 %.
 * Gini cuts: A 0 %, B 10 %, C 20 %, D 50 %. Objective (cut − drop): A 0, B .08, C .15; D is over
 * budget. The SPEC rule picks C; a 3 % budget picks B; max-gini with 1 % picks A. */
static const double NDCG[4] = {0.50, 0.49, 0.475, 0.47};
static const double GINI[4] = {0.80, 0.72, 0.64, 0.40};

static void test_select_spec_rule(void **state)
{
    (void)state;
    ps_select_rule r;
    ps_select_rule_init(&r);
    assert_int_equal(r.objective, PS_SELECT_TRADEOFF);
    tu_assert_near(r.max_ndcg_drop, 0.05, 0);
    assert_int_equal(ps_select_point(NDCG, GINI, 4, 0.50, 0.80, &r), 2);
}

static void test_select_configurable_drop(void **state)
{
    (void)state;
    ps_select_rule r = {PS_SELECT_TRADEOFF, 0.03};
    assert_int_equal(ps_select_point(NDCG, GINI, 4, 0.50, 0.80, &r), 1);
    r.max_ndcg_drop = 0.10; /* D: 0.5 − 0.06 = 0.44 beats C */
    assert_int_equal(ps_select_point(NDCG, GINI, 4, 0.50, 0.80, &r), 3);
    ps_select_rule tight = {PS_SELECT_MAX_GINI_CUT, 0.01};
    assert_int_equal(ps_select_point(NDCG, GINI, 4, 0.50, 0.80, &tight), 0);
    tight.max_ndcg_drop = 0.02;
    assert_int_equal(ps_select_point(NDCG, GINI, 4, 0.50, 0.80, &tight), 1);
}

static void test_select_none_eligible(void **state)
{
    (void)state;
    ps_select_rule r;
    ps_select_rule_init(&r);
    const double ndcg[2] = {0.3, NAN}, gini[2] = {0.1, 0.1};
    assert_int_equal(ps_select_point(ndcg, gini, 2, 0.5, 0.8, &r), -1);
    assert_int_equal(ps_select_point(ndcg, gini, 0, 0.5, 0.8, &r), -1);
}

/* Equal objectives: the higher NDCG wins; equal in everything: the earlier point. */
static void test_select_ties(void **state)
{
    (void)state;
    ps_select_rule r;
    ps_select_rule_init(&r);
    /* objective 0.1 for both: (cut 0.1, drop 0) and (cut 0.12, drop 0.02) */
    const double ndcg[3] = {0.49, 0.50, 0.50}, gini[3] = {0.704, 0.72, 0.72};
    assert_int_equal(ps_select_point(ndcg, gini, 3, 0.50, 0.80, &r), 1);
    const double n2[2] = {0.49, 0.49}, g2[2] = {0.7, 0.7};
    assert_int_equal(ps_select_point(n2, g2, 2, 0.50, 0.80, &r), 0);
}

/* ---- Pareto fronts ---- */

static void test_pareto_front(void **state)
{
    (void)state;
    /* 0 (0.5, 0.40) front; 1 (0.3, 0.35) front; 2 (0.4, 0.30) dominated by 1; 3 (0.6, 0.45) front;
     * 4 (0.6, 0.40) dominated by 3 (same Gini, lower NDCG); 5 duplicate of 1; 6 NaN ignored */
    const double gini[7] = {0.5, 0.3, 0.4, 0.6, 0.6, 0.3, NAN};
    const double ndcg[7] = {0.40, 0.35, 0.30, 0.45, 0.40, 0.35, 0.9};
    int front[7];
    int n = ps_pareto_front(gini, ndcg, 7, front);
    assert_int_equal(n, 3);
    assert_int_equal(front[0], 1); /* sorted by Gini */
    assert_int_equal(front[1], 0);
    assert_int_equal(front[2], 3);
    assert_int_equal(ps_pareto_front(gini, ndcg, 1, front), 1);
    assert_int_equal(ps_pareto_front(gini, ndcg, 0, front), 0);
}

/* ---- front comparison ---- */

static void test_front_compare_above(void **state)
{
    (void)state;
    /* A: (0.2, 0.40) (0.6, 0.50); B: (0.3, 0.40) (0.5, 0.45). Each B point has an A point with
     * lower Gini and higher NDCG? (0.3,0.40): A(0.2,0.40) yes. (0.5,0.45): A(0.6,...) no Gini; A(0.2,0.4)
     * no NDCG -> 1 of 2 dominated. On [0.3, 0.5], A(g) = 0.40 + 0.25 (g − 0.2), B(g) = 0.40 + 0.25 (g − 0.3):
     * A − B = 0.025 everywhere: above on the common range. */
    const double ga[2] = {0.2, 0.6}, na[2] = {0.40, 0.50}, gb[2] = {0.3, 0.5}, nb[2] = {0.40, 0.45};
    ps_front_cmp c;
    ps_front_compare(ga, na, 2, gb, nb, 2, &c);
    assert_int_equal(c.n_b, 2);
    assert_int_equal(c.n_dominated, 1);
    assert_true(c.has_overlap);
    tu_assert_near(c.gini_lo, 0.3, 1e-15);
    tu_assert_near(c.gini_hi, 0.5, 1e-15);
    tu_assert_near(c.mean_diff, 0.025, 1e-12);
    tu_assert_near(c.min_diff, 0.025, 1e-12);
    tu_assert_near(c.share_above, 1, 0);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_ABOVE_OVERLAP);
    /* the mean gap is linear in the fronts' NDCG: the averaged interpolation weights rebuild it */
    double wa[2], wb[2];
    ps_front_mean_weights(ga, 2, c.gini_lo, c.gini_hi, wa);
    ps_front_mean_weights(gb, 2, c.gini_lo, c.gini_hi, wb);
    tu_assert_near(wa[0] + wa[1], 1, 1e-12);
    tu_assert_near(wa[0], 0.5, 1e-12); /* [0.3, 0.5] sits symmetrically inside [0.2, 0.6] */
    tu_assert_near(wb[0], 0.5, 1e-12);
    tu_assert_near(wa[0] * na[0] + wa[1] * na[1] - wb[0] * nb[0] - wb[1] * nb[1], c.mean_diff, 1e-12);
    /* a single B point under A's front that no A point dominates: A(0.4) = 0.45 > 0.42 */
    const double gb1[1] = {0.4}, nb1[1] = {0.42};
    ps_front_compare(ga, na, 2, gb1, nb1, 1, &c);
    assert_int_equal(c.n_dominated, 0);
    tu_assert_near(c.mean_diff, 0.03, 1e-12);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_ABOVE_OVERLAP);
    /* B entirely dominated */
    const double gb2[1] = {0.7}, nb2[1] = {0.45};
    ps_front_compare(ga, na, 2, gb2, nb2, 1, &c);
    assert_int_equal(c.n_dominated, 1);
    assert_false(c.has_overlap);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_ABOVE);
    assert_string_equal(ps_front_verdict_name(PS_FRONT_ABOVE), "above");
}

static void test_front_compare_crossing_below_disjoint(void **state)
{
    (void)state;
    /* A flat at 0.45 on [0.2, 0.6]; B from 0.40 to 0.50 on the same range: crosses at 0.4 */
    const double ga[2] = {0.2, 0.6}, na[2] = {0.45, 0.45}, gb[2] = {0.2, 0.6}, nb[2] = {0.40, 0.50};
    ps_front_cmp c;
    ps_front_compare(ga, na, 2, gb, nb, 2, &c);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_CROSSING);
    tu_assert_near(c.mean_diff, 0, 1e-12);
    tu_assert_near(c.min_diff, -0.05, 1e-12);
    tu_assert_near(c.max_diff, 0.05, 1e-12);
    tu_assert_near(c.share_above, 51.0 / 101.0, 1e-12); /* samples 0..50 of 101 have A >= B */
    /* A below everywhere */
    const double na2[2] = {0.30, 0.35};
    ps_front_compare(ga, na2, 2, gb, nb, 2, &c);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_BELOW);
    /* disjoint Gini ranges, nothing dominated */
    const double gb3[1] = {0.1}, nb3[1] = {0.5};
    ps_front_compare(ga, na, 2, gb3, nb3, 1, &c);
    assert_false(c.has_overlap);
    assert_int_equal(ps_front_verdict_of(&c), PS_FRONT_DISJOINT);
}

/* ---- the grid evaluation against ps_evaluate ---- */

typedef struct fixture {
    char *dir;
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    ps_probe_result probe;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    tu_tiny_stack(f->dir, &f->ds, &f->m, &f->sae);
    ps_error err = {{0}};
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.cap = 400;
    if (ps_probe_run(f->m, f->sae, &f->ds, &po, &f->probe, &err) != PS_OK)
        fail_msg("probe: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ps_probe_result_free(&f->probe);
    ps_sae_free(f->sae);
    ps_sasrec_free(f->m);
    ps_dataset_free(&f->ds);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void assert_same_metrics(const ps_metrics *a, const ps_metrics *b, const char *what)
{
    const double x[] = {a->ndcg, a->hit, a->mrr, a->ndcg_head, a->ndcg_mid, a->ndcg_tail, a->coverage,
                        a->lt_coverage, a->deep_lt_coverage, a->gini, a->arp, a->arp_distinct, a->aplt, a->entropy};
    const double y[] = {b->ndcg, b->hit, b->mrr, b->ndcg_head, b->ndcg_mid, b->ndcg_tail, b->coverage,
                        b->lt_coverage, b->deep_lt_coverage, b->gini, b->arp, b->arp_distinct, b->aplt, b->entropy};
    if (a->users != b->users)
        fail_msg("%s: users %lld vs %lld", what, (long long)a->users, (long long)b->users);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        if (fabs(x[i] - y[i]) > 1e-12)
            fail_msg("%s: metric %zu differs: sweep %.17g, ps_evaluate %.17g", what, i, x[i], y[i]);
}

static const ps_sweep_point *find_point(const ps_sweep_result *r, const char *method, const char *setting)
{
    for (int i = 0; i < r->n_points; i++)
        if (!strcmp(r->points[i].method, method) && !strcmp(r->points[i].setting, setting))
            return &r->points[i];
    fail_msg("no point %s %s", method, setting);
    return NULL;
}

static void evaluate_ref(const fixture *f, ps_scorer *sc, const ps_list_filter *filter, ps_split split,
                         ps_metrics *out)
{
    ps_eval_options eo;
    ps_eval_options_init(&eo);
    eo.split = split;
    eo.filter = filter;
    ps_error err = {{0}};
    if (ps_evaluate(&f->ds, sc, &eo, out, &err) != PS_OK)
        fail_msg("evaluate: %s", err.msg);
}

/* setting: "default" or space-separated name=value parameters, as the sweep names its points. */
static void check_rerank(const fixture *f, const ps_sweep_result *r, const char *method, const char *setting)
{
    ps_error err = {{0}};
    char buf[96];
    const char *params[4];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", setting);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && strcmp(setting, "default"); t = strtok_r(NULL, " ", &save))
        params[n++] = t;
    ps_sasrec_scorer ss;
    assert_int_equal(ps_sasrec_scorer_init(&ss, f->m, 256, &err), PS_OK);
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&ss);
    const int L = find_point(r, method, setting)->candidates;
    for (int split = 0; split < 2; split++) {
        ps_rerank_ctx ctx = {f->ds.n_items, f->ds.label, f->ds.train_count, 10, L, 42, f->ds.n_users};
        ps_reranker *rr = ps_reranker_create(method, &ctx, params, n, &err);
        if (!rr)
            fail_msg("%s: %s", method, err.msg);
        ps_rerank_filter filt;
        assert_int_equal(ps_rerank_filter_init(&filt, rr, &f->ds, L, &err), PS_OK);
        ps_metrics ref;
        evaluate_ref(f, &sc, &filt.filter, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, method, setting)->split[split], &ref, method);
        ps_rerank_filter_free(&filt);
        ps_reranker_free(rr);
    }
    ps_sasrec_scorer_free(&ss);
}

static void check_steered(const fixture *f, const ps_sweep_result *r, double alpha, int N, const char *setting)
{
    ps_error err = {{0}};
    const ps_latent_table *t = &f->probe.table;
    ps_steer_plan plan;
    assert_int_equal(ps_steer_plan_make(t->d, t->std_pop, t->std_unpop, t->m, N, alpha, &plan, &err), PS_OK);
    ps_steer_scorer st;
    assert_int_equal(ps_steer_scorer_init(&st, f->m, f->sae, alpha > 0 ? &plan : NULL, 256, &err), PS_OK);
    ps_scorer sc = ps_steer_scorer_as_scorer(&st);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "popsteer", setting)->split[split], &ref, setting);
    }
    ps_steer_scorer_free(&st);
    ps_steer_plan_free(&plan);
}

/* A PopSteer-U point equals ps_evaluate with the rule's scorer (gate per user, error kept). */
static void check_rule(const fixture *f, const ps_sweep_result *r, double a_pop, double a_unpop, const char *setting)
{
    ps_error err = {{0}};
    const ps_latent_table *t = &f->probe.table;
    ps_steer_rule_probe pr = {t->m, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, t->fire_rate};
    ps_steer_rule_params par = {.N = t->m, .alpha_pop = a_pop, .alpha_unpop = a_unpop, .gate = PS_RULE_GATE_USER,
                                .keep_error = 1};
    ps_steer_rule rule;
    assert_int_equal(ps_steer_rule_make(&pr, &par, &rule, &err), PS_OK);
    ps_rule_scorer rs;
    assert_int_equal(ps_rule_scorer_init(&rs, f->m, f->sae, &rule, 256, &err), PS_OK);
    ps_scorer sc = ps_rule_scorer_as_scorer(&rs);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "popsteer-u", setting)->split[split], &ref, setting);
    }
    ps_rule_scorer_free(&rs);
    ps_steer_rule_free(&rule);
}

/* A ps-random or ps-unweighted point equals ps_evaluate with the paper's scorer given the variant's
 * plan (both fold into the encoder bias the same way). */
static void check_variant(const fixture *f, const ps_sweep_result *r, const char *method, ps_steer_variant v,
                          uint64_t seed, double alpha, int N, const char *setting)
{
    ps_error err = {{0}};
    const ps_latent_table *t = &f->probe.table;
    ps_steer_plan plan;
    assert_int_equal(ps_steer_plan_make_variant(t->d, t->std_pop, t->std_unpop, t->m, N, alpha, v, seed, &plan, &err),
                     PS_OK);
    ps_steer_scorer st;
    assert_int_equal(ps_steer_scorer_init(&st, f->m, f->sae, &plan, 256, &err), PS_OK);
    ps_scorer sc = ps_steer_scorer_as_scorer(&st);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, method, setting)->split[split], &ref, setting);
    }
    ps_steer_scorer_free(&st);
    ps_steer_plan_free(&plan);
}

/* Both ablation-scorer points equal ps_evaluate with ps_ablation_scorer: ps-conditional (the paper's
 * plan, gated per user) and ps-direction (ν = mean ‖h‖ of the validation users, the probe's users'
 * means with its cap and seed). */
static void check_ablation_scorers(const fixture *f, const ps_sweep_result *r, int64_t probe_cap)
{
    ps_error err = {{0}};
    const ps_latent_table *t = &f->probe.table;
    ps_steer_plan plan;
    assert_int_equal(ps_steer_plan_make(t->d, t->std_pop, t->std_unpop, t->m, 8, 3, &plan, &err), PS_OK);
    double thr[8];
    ps_steer_conditional_thresholds(&plan, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, thr);
    const int d = f->m->cfg.d;
    double *mp = calloc(2 * (size_t)d, sizeof *mp);
    float *h = calloc((size_t)f->ds.n_users * (size_t)d, sizeof *h), *delta = calloc((size_t)d, sizeof *delta);
    assert_true(mp && h && delta);
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.cap = probe_cap;
    assert_int_equal(ps_probe_mean_vectors(f->m, &f->ds, &po, mp, mp + d, &err), PS_OK);
    assert_int_equal(ps_user_vectors(f->m, &f->ds, f->ds.valid, f->ds.n_users, h, NULL, NULL, &err), PS_OK);
    double nu = ps_mean_norm(h, f->ds.n_users, d);
    assert_true(nu > 0);
    assert_int_equal(ps_direction_delta(mp, mp + d, d, 1, nu, delta, &err), PS_OK);
    ps_ablation_scorer cs, ds;
    assert_int_equal(ps_ablation_scorer_init(&cs, PS_ABLATION_CONDITIONAL, f->m, f->sae, &plan, thr, NULL, 256, &err),
                     PS_OK);
    assert_int_equal(ps_ablation_scorer_init(&ds, PS_ABLATION_DIRECTION, f->m, NULL, NULL, NULL, delta, 256, &err),
                     PS_OK);
    ps_scorer csc = ps_ablation_scorer_as_scorer(&cs), dsc = ps_ablation_scorer_as_scorer(&ds);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &csc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "ps-conditional", "alpha=3 N=8")->split[split], &ref, "ps-conditional");
        evaluate_ref(f, &dsc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "ps-direction", "alpha=1")->split[split], &ref, "ps-direction");
    }
    ps_ablation_scorer_free(&cs);
    ps_ablation_scorer_free(&ds);
    ps_steer_plan_free(&plan);
    free(mp);
    free(h);
    free(delta);
}

/* The PopSteer-I point equals ps_evaluate with SASRec's h moved by ps_decoder_delta on the item-side
 * probe's table (ν = mean ‖h‖ of the validation users), and its ablation ps-mean with h moved from
 * the validation users' mean towards 0. */
static void check_decoder(const fixture *f, const ps_sweep_result *r, double alpha, int N, const char *setting)
{
    ps_error err = {{0}};
    ps_latent_table t;
    assert_int_equal(ps_item_side_table(f->m, f->sae, &f->ds, NULL, &t, &err), PS_OK);
    const int d = f->m->cfg.d;
    float *h = calloc((size_t)f->ds.n_users * (size_t)d, sizeof *h), *delta = calloc((size_t)d, sizeof *delta);
    assert_true(h && delta);
    assert_int_equal(ps_user_vectors(f->m, &f->ds, f->ds.valid, f->ds.n_users, h, NULL, NULL, &err), PS_OK);
    assert_int_equal(ps_decoder_delta(f->sae, t.d, N, alpha, ps_mean_norm(h, f->ds.n_users, d), delta, &err), PS_OK);
    ps_ablation_scorer ms;
    assert_int_equal(ps_ablation_scorer_init(&ms, PS_ABLATION_DIRECTION, f->m, NULL, NULL, NULL, delta, 256, &err),
                     PS_OK);
    ps_scorer sc = ps_ablation_scorer_as_scorer(&ms);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "popsteer-i", setting)->split[split], &ref, "popsteer-i");
    }
    ps_ablation_scorer_free(&ms);
    /* ps-mean at the same alpha: h − α ν m/‖m‖, m the validation users' mean h */
    double *mean = calloc(2 * (size_t)d, sizeof *mean);
    assert_non_null(mean);
    for (int64_t u = 0; u < f->ds.n_users; u++)
        for (int c = 0; c < d; c++)
            mean[c] += h[(size_t)u * (size_t)d + (size_t)c];
    for (int c = 0; c < d; c++)
        mean[c] /= (double)f->ds.n_users;
    assert_int_equal(ps_direction_delta(mean, mean + d, d, alpha, ps_mean_norm(h, f->ds.n_users, d), delta, &err),
                     PS_OK);
    assert_int_equal(ps_ablation_scorer_init(&ms, PS_ABLATION_DIRECTION, f->m, NULL, NULL, NULL, delta, 256, &err),
                     PS_OK);
    sc = ps_ablation_scorer_as_scorer(&ms);
    char mean_setting[32];
    snprintf(mean_setting, sizeof mean_setting, "alpha=%g", alpha);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&find_point(r, "ps-mean", mean_setting)->split[split], &ref, "ps-mean");
    }
    ps_ablation_scorer_free(&ms);
    ps_latent_table_free(&t);
    free(mean);
    free(h);
    free(delta);
}

static void test_sweep_matches_evaluate(void **state)
{
    fixture *f = *state;
    static const double alphas[] = {0, 1, 3};
    static const int neurons[] = {8, 0, 1000}; /* 0 and 1000 both mean all 64: evaluated once */
    static const char *const methods[] = {"penalty", "pmmf", "xquad", "random", "fair", "pct"};
    ps_sweep_options o;
    ps_sweep_options_init(&o);
    o.alphas = alphas;
    o.n_alphas = 3;
    o.direction_alphas = alphas; /* ps-direction over the same positive alphas: alpha=1 is checked below */
    o.n_direction_alphas = 3;
    o.neurons = neurons;
    o.n_neurons = 3;
    o.methods = methods;
    o.n_methods = 6; /* each with its own candidate count: 100, fair 500 and pct 250 capped at 120 items */
    o.probe_cap = 400; /* the fixture's probe: ps-direction's synthetic users are its users */
    ps_sweep_result r;
    ps_error err = {{0}};
    if (ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err) != PS_OK)
        fail_msg("sweep: %s", err.msg);
    /* sasrec, alpha=0, 2 alphas x 2 distinct N, then every method's grid */
    int grid_points = 0;
    for (int i = 0; i < 6; i++) {
        const ps_rerank_setting *set;
        int ns;
        assert_int_equal(ps_rerank_default_grid(methods[i], &set, &ns, &err), PS_OK);
        grid_points += ns;
    }
    /* PopSteer-U: N 1024 and all are both the 64 latents; 2 positive alphas and 2 (a_pop, a_unpop) pairs.
     * Ablations: ps-random, ps-unweighted and ps-conditional over PopSteer's 2 positive alphas x 2 distinct N
     * (4 each), ps-direction over the 2 positive alphas. PopSteer-I: ps-direction's 2 positive alphas x
     * N 64 (1024 and all); its ablation ps-mean over the same 2 alphas */
    assert_int_equal(r.n_points, 2 + 4 + 4 + 2 + 3 * 4 + 2 + 2 + grid_points);
    assert_string_equal(r.points[0].method, "sasrec");
    assert_string_equal(r.points[1].setting, "alpha=0");
    assert_string_equal(r.points[2].setting, "alpha=1 N=8");
    assert_string_equal(r.points[5].setting, "alpha=3 N=64");
    assert_int_equal(f->ds.n_items, 120);
    assert_int_equal(r.L, 120);
    assert_int_equal(find_point(&r, "penalty", "beta=2")->candidates, 100);
    assert_int_equal(find_point(&r, "fair", "p=0.9 alpha=0.1 group=tail")->candidates, 120);
    int32_t items = 0;
    for (int q = 0; q < PS_SWEEP_DECILES; q++)
        items += r.decile_items[q];
    assert_int_equal(items, f->ds.n_items);

    ps_sasrec_scorer ss;
    assert_int_equal(ps_sasrec_scorer_init(&ss, f->m, 256, &err), PS_OK);
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&ss);
    for (int split = 0; split < 2; split++) {
        ps_metrics ref;
        evaluate_ref(f, &sc, NULL, (ps_split)split, &ref);
        assert_same_metrics(&r.points[0].split[split], &ref, "sasrec");
        /* exposure deciles add up to every list slot */
        int64_t slots = 0;
        for (int q = 0; q < PS_SWEEP_DECILES; q++)
            slots += r.points[0].decile_exposure[split][q];
        assert_int_equal(slots, f->ds.n_users * 10);
    }
    ps_sasrec_scorer_free(&ss);
    check_steered(f, &r, 0, 64, "alpha=0");
    check_steered(f, &r, 3, 8, "alpha=3 N=8");
    check_steered(f, &r, 1, 64, "alpha=1 N=64");
    check_rule(f, &r, 3, 3, "alpha=3 N=64");
    check_rule(f, &r, 8, 4, "a_pop=8 a_unpop=4 N=64");
    check_variant(f, &r, "ps-random", PS_STEER_RANDOM, o.seed, 3, 8, "alpha=3 N=8");
    check_variant(f, &r, "ps-random", PS_STEER_RANDOM, o.seed, 1, 64, "alpha=1 N=64");
    check_variant(f, &r, "ps-unweighted", PS_STEER_UNWEIGHTED, 0, 3, 8, "alpha=3 N=8");
    check_ablation_scorers(f, &r, o.probe_cap);
    check_decoder(f, &r, 1, 64, "alpha=1 N=64");
    check_decoder(f, &r, 3, 64, "alpha=3 N=64");
    check_rerank(f, &r, "penalty", "beta=2");
    check_rerank(f, &r, "pmmf", "lambda=0.1 eta=0.01 share=size43");
    check_rerank(f, &r, "xquad", "lambda=0.7 variant=smooth");
    check_rerank(f, &r, "random", "default");
    check_rerank(f, &r, "fair", "p=0.9 alpha=0.1 group=tail");
    check_rerank(f, &r, "pct", "p=0.5 lambda=0.7");
    ps_sweep_result_free(&r);
}

static void check_gaps(const ps_sweep_result *r, const ps_sweep_summary *s, int q);

/* The bootstrap intervals: plain SASRec's change against itself is exactly 0; every point's
 * per-user validation NDCG averages to its metric and rebuilds its interval; the front gap's
 * per-user decomposition averages to the summary's mean gap. */
static void check_intervals(const ps_sweep_result *r, const ps_sweep_summary *s)
{
    const int64_t n = r->n_users;
    assert_non_null(r->valid_ndcg);
    assert_int_equal(r->bootstrap, 1000);
    for (int sp = 0; sp < 2; sp++) {
        tu_assert_near(r->points[0].ndcg_ci[sp].lo, 0, 0);
        tu_assert_near(r->points[0].ndcg_ci[sp].hi, 0, 0);
    }
    tu_assert_near(r->points[0].gini_ci[PS_SPLIT_TEST].lo, 0, 0);
    assert_true(isnan(r->points[0].gini_ci[PS_SPLIT_VALID].lo));
    ps_bootstrap b;
    ps_error err;
    assert_int_equal(ps_bootstrap_init(&b, n, r->bootstrap, r->seed, &err), PS_OK);
    double *m0 = calloc(1000, sizeof *m0), *m1 = calloc(1000, sizeof *m1);
    assert_non_null(m0);
    assert_non_null(m1);
    ps_bootstrap_means(&b, r->valid_ndcg, m0);
    for (int i = 1; i < r->n_points; i++) {
        const ps_sweep_point *p = &r->points[i];
        const float *y = r->valid_ndcg + (size_t)i * (size_t)n;
        double sum = 0;
        for (int64_t u = 0; u < n; u++)
            sum += y[u];
        tu_assert_near(sum / (double)n, p->split[PS_SPLIT_VALID].ndcg, 1e-6);
        ps_interval ci;
        ps_bootstrap_means(&b, y, m1);
        double est = p->split[PS_SPLIT_VALID].ndcg / r->points[0].split[PS_SPLIT_VALID].ndcg - 1;
        assert_int_equal(ps_bootstrap_interval(m1, m0, 1000, 1, est, 0.95, &ci, &err), PS_OK);
        tu_assert_near(ci.lo, p->ndcg_ci[PS_SPLIT_VALID].lo, 0);
        tu_assert_near(ci.hi, p->ndcg_ci[PS_SPLIT_VALID].hi, 0);
        for (int sp = 0; sp < 2; sp++)
            assert_true(p->ndcg_ci[sp].lo <= p->ndcg_ci[sp].hi);
        assert_true(p->gini_ci[PS_SPLIT_TEST].lo <= p->gini_ci[PS_SPLIT_TEST].hi);
    }
    for (int q = 0; q < PS_SWEEP_REFS; q++)
        if (s->ref[q] >= 0)
            check_gaps(r, s, q);
    free(m0);
    free(m1);
    ps_bootstrap_free(&b);
}

/* Every front comparison against reference q: the per-user gaps average to the mean gap. */
static void check_gaps(const ps_sweep_result *r, const ps_sweep_summary *s, int q)
{
    const int64_t n = r->n_users;
    const ps_method_summary *a = &s->methods[s->ref[q]];
    for (int mth = 0; mth < s->n_methods; mth++) {
        const ps_method_summary *ms = &s->methods[mth];
        const ps_front_vs *vs = &ms->vs[q];
        assert_int_equal(vs->valid, ms != a);
        const ps_front_cmp *c = &vs->cmp;
        if (!vs->valid)
            continue;
        if (!c->has_overlap) {
            assert_true(isnan(vs->gap_ci.lo));
            continue;
        }
        double wa[64], wb[64], gap = 0;
        double ga[64], gb[64];
        assert_true(a->n_front <= 64 && ms->n_front <= 64);
        for (int i = 0; i < a->n_front; i++)
            ga[i] = r->points[a->front[i]].split[PS_SPLIT_VALID].gini;
        for (int i = 0; i < ms->n_front; i++)
            gb[i] = r->points[ms->front[i]].split[PS_SPLIT_VALID].gini;
        ps_front_mean_weights(ga, a->n_front, c->gini_lo, c->gini_hi, wa);
        ps_front_mean_weights(gb, ms->n_front, c->gini_lo, c->gini_hi, wb);
        for (int64_t u = 0; u < n; u++) {
            for (int i = 0; i < a->n_front; i++)
                gap += wa[i] * r->valid_ndcg[(size_t)a->front[i] * (size_t)n + (size_t)u];
            for (int i = 0; i < ms->n_front; i++)
                gap -= wb[i] * r->valid_ndcg[(size_t)ms->front[i] * (size_t)n + (size_t)u];
        }
        tu_assert_near(gap / (double)n, c->mean_diff, 1e-6);
        assert_true(vs->gap_ci.lo <= vs->gap_ci.hi);
        assert_int_equal(vs->gap_within_noise, ps_interval_contains_zero(&vs->gap_ci));
    }
}

static void test_sweep_summary(void **state)
{
    fixture *f = *state;
    static const double alphas[] = {0, 2};
    static const int neurons[] = {16};
    static const char *const methods[] = {"penalty"};
    ps_sweep_options o;
    ps_sweep_options_init(&o);
    o.alphas = alphas;
    o.n_alphas = 2;
    o.direction_alphas = alphas;
    o.n_direction_alphas = 2;
    o.neurons = neurons;
    o.n_neurons = 1;
    o.methods = methods;
    o.n_methods = 1;
    ps_sweep_result r;
    ps_error err = {{0}};
    if (ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err) != PS_OK)
        fail_msg("sweep: %s", err.msg);
    ps_select_rule rule;
    ps_select_rule_init(&rule);
    ps_sweep_summary s;
    assert_int_equal(ps_sweep_summarize(&r, &rule, PS_BASE_SAE, 0.01, &s, &err), PS_OK);
    /* popsteer, popsteer-u, popsteer-i, the five ablations (each its own method and front), penalty */
    assert_int_equal(s.n_methods, 9);
    assert_string_equal(s.methods[0].method, "popsteer");
    assert_int_equal(s.methods[0].first, 1);
    assert_int_equal(s.methods[0].n, 2);
    assert_int_equal(s.methods[0].base, s.sae);
    /* PopSteer-U: N 1024 and all are both the 64 latents: alpha=2 and the two (a_pop, a_unpop) pairs */
    assert_string_equal(s.methods[1].method, "popsteer-u");
    assert_int_equal(s.methods[1].n, 3);
    assert_int_equal(s.methods[1].base, s.sasrec);
    assert_string_equal(r.points[s.methods[1].first].setting, "alpha=2 N=64");
    assert_string_equal(r.points[s.methods[1].first + 1].setting, "a_pop=4 a_unpop=2 N=64");
    assert_int_equal(s.ref[PS_REF_POPSTEER], 0);
    assert_int_equal(s.ref[PS_REF_POPSTEER_U], 1);
    /* PopSteer-I: alpha=2 at N 64 (1024 and all); compared with both other rules, and they with it */
    assert_int_equal(s.ref[PS_REF_POPSTEER_I], 2);
    assert_string_equal(s.methods[2].method, "popsteer-i");
    assert_int_equal(s.methods[2].n, 1);
    assert_int_equal(s.methods[2].vs[PS_REF_POPSTEER].valid, 1);
    assert_int_equal(s.methods[2].vs[PS_REF_POPSTEER_I].valid, 0);
    assert_int_equal(s.methods[0].vs[PS_REF_POPSTEER_I].valid, 1);
    static const char *const ABL[5] = {"ps-random", "ps-unweighted", "ps-conditional", "ps-direction", "ps-mean"};
    for (int a = 0; a < 5; a++) {
        assert_string_equal(s.methods[3 + a].method, ABL[a]);
        assert_int_equal(s.methods[3 + a].n, 1); /* alpha=2 (and N=16) */
        assert_int_equal(s.methods[3 + a].vs[PS_REF_POPSTEER].valid, 1);
    }
    assert_int_equal(s.methods[7].vs[PS_REF_POPSTEER_I].valid, 1); /* ps-mean against PopSteer-I */
    assert_int_equal(s.methods[8].base, s.sasrec);
    assert_int_equal(s.methods[8].n, 6);
    assert_non_null(ps_sweep_summary_find(&s, "penalty"));
    assert_null(ps_sweep_summary_find(&s, "cp"));
    /* the selection agrees with ps_select_point on the method's own points */
    const ps_method_summary *pen = &s.methods[8];
    double nd[6], gi[6];
    for (int i = 0; i < 6; i++) {
        nd[i] = r.points[pen->first + i].split[PS_SPLIT_VALID].ndcg;
        gi[i] = r.points[pen->first + i].split[PS_SPLIT_VALID].gini;
    }
    const ps_metrics *b = &r.points[0].split[PS_SPLIT_VALID];
    int sel = ps_select_point(nd, gi, 6, b->ndcg, b->gini, &rule);
    assert_int_equal(pen->selected, sel < 0 ? -1 : pen->first + sel);
    assert_true(pen->n_front >= 1);
    check_intervals(&r, &s);
    ps_sweep_summary_free(&s);
    ps_sweep_result_free(&r);
    /* without bootstrap: no intervals and no per-user store */
    o.bootstrap = 0;
    if (ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err) != PS_OK)
        fail_msg("sweep: %s", err.msg);
    assert_null(r.valid_ndcg);
    assert_true(isnan(r.points[2].ndcg_ci[PS_SPLIT_TEST].lo) && isnan(r.points[2].gini_ci[PS_SPLIT_TEST].hi));
    assert_int_equal(ps_sweep_summarize(&r, &rule, PS_BASE_SAE, 0.01, &s, &err), PS_OK);
    assert_true(isnan(s.methods[8].vs[PS_REF_POPSTEER].gap_ci.lo));
    ps_sweep_summary_free(&s);
    ps_sweep_result_free(&r);
}

/* One pass per user gives the same vectors as one pass per prefix (the generated users are up to
 * a few hundred items long, so sliding-window prefixes are covered too). */
static void test_training_vectors(void **state)
{
    fixture *f = *state;
    size_t n = (size_t)f->ds.n_train, d = (size_t)f->m->cfg.d;
    float *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    ps_error err = {{0}};
    assert_int_equal(ps_training_vectors(f->m, &f->ds, a, NULL, NULL, &err), PS_OK);
    assert_int_equal(ps_user_vectors(f->m, &f->ds, f->ds.train, f->ds.n_train, b, NULL, NULL, &err), PS_OK);
    int long_prefixes = 0;
    for (int64_t i = 0; i < f->ds.n_train; i++)
        long_prefixes += f->ds.train[i].pos > f->ds.max_seq_len;
    assert_true(long_prefixes > 0);
    for (size_t i = 0; i < n * d; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1 + fabsf(b[i])))
            fail_msg("vector %zu, component %zu: %.9g vs %.9g", i / d, i % d, a[i], b[i]);
    free(a);
    free(b);
}

static void test_sweep_errors(void **state)
{
    fixture *f = *state;
    ps_sweep_options o;
    ps_sweep_options_init(&o);
    ps_sweep_result r;
    ps_error err = {{0}};
    static const double bad[] = {-1};
    o.alphas = bad;
    o.n_alphas = 1;
    assert_int_equal(ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "alpha"));
    ps_sweep_options_init(&o);
    o.direction_alphas = bad;
    o.n_direction_alphas = 1;
    assert_int_equal(ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "direction alpha"));
    ps_sweep_options_init(&o);
    static const char *const unknown[] = {"nosuch"};
    o.methods = unknown;
    o.n_methods = 1;
    assert_int_equal(ps_sweep_run(f->m, f->sae, &f->probe.table, &f->ds, &o, &r, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "nosuch"));
    ps_sweep_options_init(&o);
    ps_latent_table t = f->probe.table;
    t.m = 10;
    assert_int_equal(ps_sweep_run(f->m, f->sae, &t, &f->ds, &o, &r, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "latents table"));
    ps_sweep_result_free(&r); /* safe on the emptied result */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rel_reduction),
        cmocka_unit_test(test_select_spec_rule),
        cmocka_unit_test(test_select_configurable_drop),
        cmocka_unit_test(test_select_none_eligible),
        cmocka_unit_test(test_select_ties),
        cmocka_unit_test(test_pareto_front),
        cmocka_unit_test(test_front_compare_above),
        cmocka_unit_test(test_front_compare_crossing_below_disjoint),
        cmocka_unit_test_setup_teardown(test_sweep_matches_evaluate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
