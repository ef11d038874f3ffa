/* Re-ranking baselines (rerank.h): registry and parameter errors, the contract shared by
 * every method (k distinct items taken from the candidates), and hand-worked cases per
 * method, with the arithmetic in the comments. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/rerank.h"

/* ---- small fixtures ---- */

/* Six items for the hand cases: 1..3 head, 4 tail, 5 mid, 6 tail. */
static const int8_t six_label[7] = { 0, +1, +1, +1, -1, 0, -1 };
static const int64_t six_pop[7] = { 0, 50, 40, 30, 2, 5, 1 };
static const int32_t six_cand[6] = { 1, 2, 3, 4, 5, 6 };
static const float six_score[6] = { 1.0f, 0.9f, 0.8f, 0.5f, 0.4f, 0.0f };

static ps_rerank_ctx six_ctx(int k)
{
    ps_rerank_ctx c = { .n_items = 6, .label = six_label, .pop_count = six_pop, .k = k, .L = 6,
                        .seed = 1, .n_users = 0 };
    return c;
}

static ps_reranker *make(const char *method, const ps_rerank_ctx *ctx, const char *p1, const char *p2)
{
    const char *params[2] = { p1, p2 };
    int n = p2 ? 2 : p1 ? 1 : 0;
    ps_error err = { "" };
    ps_reranker *r = ps_reranker_create(method, ctx, params, n, &err);
    if (!r)
        fail_msg("create %s failed: %s", method, err.msg);
    return r;
}

/* Deterministic xorshift so failures reproduce. */
static uint32_t next_rand(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return (uint32_t)(*st >> 32);
}

static double unit_rand(uint64_t *st)
{
    return (next_rand(st) + 0.5) / 4294967296.0;
}

/* A synthetic catalogue: items 1..20 head, 21..80 mid, 81..200 tail; popularity 1000/i.
 * Base scores favour popular items: s_i = log(pop_i) + 2·noise. */
#define SYN_N 200
typedef struct syn {
    int8_t label[SYN_N + 1];
    int64_t pop[SYN_N + 1];
} syn;

static void syn_init(syn *d)
{
    d->label[0] = 0;
    d->pop[0] = 0;
    for (int i = 1; i <= SYN_N; i++) {
        d->label[i] = i <= 20 ? +1 : i <= 80 ? 0 : -1;
        d->pop[i] = 1000 / i;
    }
}

static void syn_candidates(const syn *d, uint64_t *rng, int L, int32_t *cand, float *cs)
{
    float scores[SYN_N + 1];
    scores[0] = 0.0f;
    for (int i = 1; i <= SYN_N; i++)
        scores[i] = (float)(log((double)d->pop[i]) + 2.0 * unit_rand(rng));
    int n = ps_rerank_candidates(scores, SYN_N, L, NULL, cand, cs);
    assert_int_equal(n, L);
}

static int in_list(const int32_t *v, int n, int32_t x)
{
    for (int j = 0; j < n; j++)
        if (v[j] == x)
            return 1;
    return 0;
}

/* ---- registry, parameters, descriptions ---- */

static void test_registry_and_grids(void **state)
{
    (void)state;
    const char *names[7] = { "random", "penalty", "fair", "xquad", "cp", "pmmf", "pct" };
    const int grid_sizes[7] = { 1, 6, 21, 22, 13, 15, 25 };
    /* the methods' own candidate counts: fair 500 (SPEC §7), pct 250 (the reference) */
    const int default_L[7] = { 0, 0, 500, 0, 0, 0, 250 };
    assert_int_equal(ps_rerank_method_count(), 7);
    assert_null(ps_rerank_method_at(7));
    syn d;
    syn_init(&d);
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = 10, .L = 50,
                          .seed = 3, .n_users = 100 };
    for (int m = 0; m < 7; m++) {
        const ps_rerank_method_info *info = ps_rerank_method_at(m);
        assert_non_null(info);
        assert_string_equal(info->name, names[m]);
        assert_int_equal(info->default_L, default_L[m]);
        assert_int_equal(ps_rerank_method_default_L(names[m]),
                         default_L[m] ? default_L[m] : PS_RERANK_DEFAULT_L);
        /* every method documents its grid (random's is the single parameterless point) */
        if (m > 0)
            assert_non_null(strstr(info->params_doc, "grid: "));
        assert_true(strlen(info->doc) > 10);
        assert_int_equal(info->sequential, strcmp(names[m], "pmmf") == 0);
        const ps_rerank_setting *grid;
        int n_grid;
        ps_error err = { "" };
        assert_int_equal(ps_rerank_default_grid(names[m], &grid, &n_grid, &err), PS_OK);
        assert_int_equal(n_grid, grid_sizes[m]);
        for (int g = 0; g < n_grid; g++) {
            ps_reranker *r = ps_reranker_create(names[m], &ctx, grid[g].params, grid[g].n_params, &err);
            if (!r)
                fail_msg("%s grid point %d: %s", names[m], g, err.msg);
            assert_int_equal(ps_reranker_is_sequential(r), info->sequential);
            assert_string_equal(ps_reranker_method(r), names[m]);
            /* the description names the method and every grid value */
            const char *desc = ps_reranker_describe(r);
            assert_true(strncmp(desc, names[m], strlen(names[m])) == 0);
            for (int p = 0; p < grid[g].n_params; p++)
                assert_non_null(strstr(desc, grid[g].params[p]));
            ps_reranker_free(r);
        }
    }
    ps_error err = { "" };
    const ps_rerank_setting *grid;
    int n_grid;
    assert_int_equal(ps_rerank_default_grid("nope", &grid, &n_grid, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "pct"));
    assert_int_equal(ps_rerank_method_default_L("nope"), PS_RERANK_DEFAULT_L);
    assert_int_equal(ps_rerank_method_default_L(NULL), PS_RERANK_DEFAULT_L);
}

static void test_describe_defaults(void **state)
{
    (void)state;
    ps_rerank_ctx ctx = six_ctx(3);
    struct {
        const char *method, *want;
    } cases[] = {
        { "random", "random()" },
        { "penalty", "penalty(beta=1)" },
        { "fair", "fair(p=0.5, alpha=0.1, group=tail)" },
        { "xquad", "xquad(lambda=0.5, variant=binary)" },
        { "cp", "cp(lambda=0.5)" },
        { "pmmf", "pmmf(lambda=0.1, eta=0.001, momentum=0.1, share=size43, slack=1, norm=sigmoid)" },
        { "pct", "pct(p=0.5, lambda=0.7)" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ps_reranker *r = make(cases[c].method, &ctx, NULL, NULL);
        assert_string_equal(ps_reranker_describe(r), cases[c].want);
        ps_reranker_free(r);
    }
    ps_reranker *r = make("fair", &ctx, "group=tail", "p=0.25");
    assert_string_equal(ps_reranker_describe(r), "fair(p=0.25, alpha=0.1, group=tail)");
    ps_reranker_free(r);
}

/* Creation must fail with a message containing every fragment in want (NULL-ended). */
static void expect_create_error(const char *method, const ps_rerank_ctx *ctx, const char *param,
                                const char *const *want)
{
    ps_error err = { "" };
    const char *params[1] = { param };
    ps_reranker *r = ps_reranker_create(method, ctx, params, param ? 1 : 0, &err);
    if (r)
        fail_msg("%s with '%s' was accepted", method, param ? param : "");
    for (int i = 0; want[i]; i++) {
        if (!strstr(err.msg, want[i]))
            fail_msg("message for %s '%s' lacks '%s': %s", method, param ? param : "", want[i], err.msg);
    }
}

static void test_parameter_errors(void **state)
{
    (void)state;
    ps_rerank_ctx ctx = six_ctx(3);
    expect_create_error("mmr", &ctx, NULL,
                        (const char *[]){ "unknown re-ranking method 'mmr'", "random", "xquad", "pmmf", NULL });
    expect_create_error("penalty", &ctx, "gamma=1",
                        (const char *[]){ "unknown parameter 'gamma'", "valid parameters", "beta: real in [0, 1e+06]", NULL });
    expect_create_error("penalty", &ctx, "beta=-0.5",
                        (const char *[]){ "bad value '-0.5'", "'beta'", "default 1", NULL });
    expect_create_error("penalty", &ctx, "beta=abc", (const char *[]){ "bad value 'abc'", NULL });
    expect_create_error("penalty", &ctx, "beta=", (const char *[]){ "bad value ''", NULL });
    expect_create_error("penalty", &ctx, "beta=nan", (const char *[]){ "bad value 'nan'", NULL });
    expect_create_error("penalty", &ctx, "beta", (const char *[]){ "not of the form name=value", "beta", NULL });
    expect_create_error("xquad", &ctx, "lambda=1.5",
                        (const char *[]){ "bad value '1.5'", "lambda: real in [0, 1]", NULL });
    expect_create_error("cp", &ctx, "lambda=-0.1", (const char *[]){ "'lambda'", NULL });
    /* open bounds: p in (0, 1) */
    expect_create_error("fair", &ctx, "p=0", (const char *[]){ "p: real in (0, 1)", NULL });
    expect_create_error("fair", &ctx, "p=1", (const char *[]){ "bad value '1'", NULL });
    expect_create_error("fair", &ctx, "alpha=0", (const char *[]){ "alpha: real in (0, 1)", NULL });
    expect_create_error("fair", &ctx, "group=mid",
                        (const char *[]){ "bad value 'mid'", "group: one of tail|nonhead", NULL });
    expect_create_error("pmmf", &ctx, "eta=0", (const char *[]){ "eta: real in (0, 1e+06]", NULL });
    expect_create_error("pmmf", &ctx, "share=pop", (const char *[]){ "share: one of equal|size|size43", NULL });
    expect_create_error("pmmf", &ctx, "norm=rank", (const char *[]){ "norm: one of sigmoid|minmax", NULL });
    expect_create_error("xquad", &ctx, "variant=soft", (const char *[]){ "variant: one of binary|smooth", NULL });
    expect_create_error("pct", &ctx, "p=1.5", (const char *[]){ "p: real in [0, 1]", NULL });
    expect_create_error("pct", &ctx, "lambda=-1", (const char *[]){ "lambda: real in [0, 1]", NULL });
    expect_create_error("random", &ctx, "seed=3", (const char *[]){ "unknown parameter 'seed'", "valid parameters: none", NULL });

    /* a repeated parameter */
    ps_error err = { "" };
    const char *twice[2] = { "beta=1", "beta=2" };
    assert_null(ps_reranker_create("penalty", &ctx, twice, 2, &err));
    assert_non_null(strstr(err.msg, "given twice"));
    /* a bad context */
    ps_rerank_ctx bad = ctx;
    bad.k = 7; /* > L = 6 */
    expect_create_error("random", &bad, NULL, (const char *[]){ "1 <= k <= L", NULL });
    bad = ctx;
    bad.label = NULL;
    expect_create_error("cp", &bad, NULL, (const char *[]){ "label", NULL });
    bad = ctx;
    bad.L = 0; /* defaults to 100: accepted */
    ps_reranker *r = make("random", &bad, NULL, NULL);
    ps_reranker_free(r);
    /* negative popularity counts are refused by the method that reads them */
    int64_t negpop[7] = { 0, 1, 2, -3, 4, 5, 6 };
    bad = ctx;
    bad.pop_count = negpop;
    expect_create_error("penalty", &bad, NULL, (const char *[]){ "pop_count[3]", NULL });
}

static void test_apply_argument_checks(void **state)
{
    (void)state;
    ps_rerank_ctx ctx = six_ctx(3);
    ps_reranker *r = make("penalty", &ctx, NULL, NULL);
    int32_t out[3] = { 9, 9, 9 };
    ps_error err = { "" };
    const int32_t bad_id[3] = { 1, 7, 2 };
    const float sc[3] = { 3, 2, 1 };
    assert_int_equal(ps_reranker_apply_ex(r, 4, bad_id, sc, 3, NULL, 0, out, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "candidate id 7 outside 0..6"));
    const int32_t dup[3] = { 1, 2, 1 };
    assert_int_equal(ps_reranker_apply_ex(r, 4, dup, sc, 3, NULL, 0, out, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "candidate 1 appears twice"));
    /* padding only: nothing to rank, the list is all padding */
    const int32_t pad[3] = { 0, 0, 0 };
    out[0] = 9;
    assert_int_equal(ps_reranker_apply(r, 0, pad, sc, 3, out), 0);
    assert_int_equal(out[0], 0);
    /* padding in the middle is skipped; fewer real candidates than k pads the end */
    const int32_t holes[3] = { 5, 0, 2 };
    assert_int_equal(ps_reranker_apply(r, 0, holes, sc, 3, out), 2);
    assert_int_equal(out[2], 0);
    assert_true(in_list(out, 2, 5) && in_list(out, 2, 2));
    ps_reranker_free(r);
}

/* ---- the contract every method keeps ---- */

static void test_every_method_returns_k_distinct_candidates(void **state)
{
    (void)state;
    syn d;
    syn_init(&d);
    enum { L = 40, K = 10 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = K, .L = L,
                          .seed = 11, .n_users = 30 };
    int32_t hist[5] = { 3, 90, 150, 0, 45 }; /* 0 = padding, ignored */
    for (int m = 0; m < ps_rerank_method_count(); m++) {
        const char *name = ps_rerank_method_at(m)->name;
        const ps_rerank_setting *grid;
        int n_grid;
        assert_int_equal(ps_rerank_default_grid(name, &grid, &n_grid, NULL), PS_OK);
        for (int g = 0; g < n_grid; g++) {
            ps_error err = { "" };
            ps_reranker *r = ps_reranker_create(name, &ctx, grid[g].params, grid[g].n_params, &err);
            assert_non_null(r);
            uint64_t rng = 0x1234567ull + (uint64_t)g;
            for (int u = 0; u < 30; u++) {
                int32_t cand[L];
                float cs[L];
                syn_candidates(&d, &rng, L, cand, cs);
                int n_real = L;
                if (u % 5 == 1) { /* a short list: only 6 real candidates */
                    for (int j = 6; j < L; j++)
                        cand[j] = 0;
                    n_real = 6;
                }
                if (u % 7 == 2)
                    cs[3] = NAN; /* a NaN score must not break anything */
                int32_t out[K];
                int got = ps_reranker_apply_ex(r, u, cand, cs, L, u % 2 ? hist : NULL, u % 2 ? 5 : 0, out, &err);
                if (got < 0)
                    fail_msg("%s: %s", ps_reranker_describe(r), err.msg);
                int want = n_real < K ? n_real : K;
                assert_int_equal(got, want);
                for (int i = 0; i < want; i++) {
                    assert_true(in_list(cand, n_real, out[i]));
                    assert_false(in_list(out, i, out[i]));
                }
                for (int i = want; i < K; i++)
                    assert_int_equal(out[i], 0);
            }
            ps_reranker_free(r);
        }
    }
}

/* Stateless methods give every user the same list whether users are served in order on
 * one thread or out of order on several (OpenMP), from one shared reranker. */
static void test_stateless_methods_thread_independent(void **state)
{
    (void)state;
    syn d;
    syn_init(&d);
    enum { L = 40, K = 10, USERS = 200 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = K, .L = L,
                          .seed = 5 };
    static int32_t cand[USERS][L], seq[USERS][K], par[USERS][K];
    static float cs[USERS][L];
    uint64_t rng = 4242;
    for (int u = 0; u < USERS; u++)
        syn_candidates(&d, &rng, L, cand[u], cs[u]);
    const int32_t hist[3] = { 2, 100, 150 };
    for (int m = 0; m < ps_rerank_method_count(); m++) {
        const ps_rerank_method_info *info = ps_rerank_method_at(m);
        if (info->sequential)
            continue;
        ps_reranker *r = make(info->name, &ctx, NULL, NULL);
        for (int u = 0; u < USERS; u++)
            assert_int_equal(ps_reranker_apply_ex(r, u, cand[u], cs[u], L, hist, 3, seq[u], NULL), K);
        int bad = 0;
        #pragma omp parallel for schedule(dynamic, 3) reduction(+ : bad)
        for (int u = USERS - 1; u >= 0; u--)
            bad += ps_reranker_apply_ex(r, u, cand[u], cs[u], L, hist, 3, par[u], NULL) != K;
        assert_int_equal(bad, 0);
        if (memcmp(seq, par, sizeof seq) != 0)
            fail_msg("%s: parallel lists differ from sequential ones", info->name);
        ps_reranker_free(r);
    }
}

/* ---- random ---- */

static void test_random_permutation_deterministic(void **state)
{
    (void)state;
    syn d;
    syn_init(&d);
    enum { L = 12, USERS = 64 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = L, .L = L,
                          .seed = 2024 };
    int32_t cand[L];
    float cs[L];
    for (int j = 0; j < L; j++) {
        cand[j] = 10 * (j + 1);
        cs[j] = (float)(L - j);
    }
    ps_reranker *a = make("random", &ctx, NULL, NULL);
    ps_reranker *b = make("random", &ctx, NULL, NULL);
    ps_rerank_ctx ctx2 = ctx;
    ctx2.seed = 2025;
    ps_reranker *c = make("random", &ctx2, NULL, NULL);

    static int32_t seq[USERS][L], par[USERS][L];
    for (int u = 0; u < USERS; u++) {
        assert_int_equal(ps_reranker_apply(a, u, cand, cs, L, seq[u]), L);
        /* k = L: the list is a permutation of the candidates */
        for (int i = 0; i < L; i++) {
            assert_true(in_list(cand, L, seq[u][i]));
            assert_false(in_list(seq[u], i, seq[u][i]));
        }
    }
    /* a second reranker with the same seed, users in reverse order on several threads */
    #pragma omp parallel for schedule(dynamic, 1)
    for (int u = USERS - 1; u >= 0; u--)
        ps_reranker_apply(b, u, cand, cs, L, par[u]);
    assert_memory_equal(seq, par, sizeof seq);
    /* different users get different lists; another seed gives other lists */
    int differ_users = 0, differ_seed = 0, identity = 0;
    for (int u = 0; u < USERS; u++) {
        int32_t other[L];
        ps_reranker_apply(c, u, cand, cs, L, other);
        differ_seed += memcmp(other, seq[u], sizeof other) != 0;
        if (u > 0)
            differ_users += memcmp(seq[u], seq[u - 1], sizeof seq[u]) != 0;
        identity += memcmp(seq[u], cand, sizeof cand) == 0;
    }
    assert_int_equal(differ_users, USERS - 1);
    assert_int_equal(differ_seed, USERS);
    assert_int_equal(identity, 0);
    ps_reranker_free(a);
    ps_reranker_free(b);
    ps_reranker_free(c);
}

static void test_random_first_position_uniform(void **state)
{
    (void)state;
    syn d;
    syn_init(&d);
    enum { L = 10, USERS = 20000 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = 3, .L = L,
                          .seed = 7 };
    int32_t cand[L];
    float cs[L];
    for (int j = 0; j < L; j++) {
        cand[j] = j + 1;
        cs[j] = (float)(L - j);
    }
    ps_reranker *r = make("random", &ctx, NULL, NULL);
    int count[L + 1] = { 0 };
    for (int u = 0; u < USERS; u++) {
        int32_t out[3];
        ps_reranker_apply(r, u, cand, cs, L, out);
        count[out[0]]++;
    }
    /* chi-square with 9 degrees of freedom; 27.9 is the 0.999 quantile */
    double chi2 = 0.0, expect = USERS / (double)L;
    for (int i = 1; i <= L; i++)
        chi2 += (count[i] - expect) * (count[i] - expect) / expect;
    assert_true(chi2 < 27.9);
    ps_reranker_free(r);
}

/* ---- penalty ---- */

static void test_penalty_negative_scores(void **state)
{
    (void)state;
    /* Items 1 and 6 have pop 100 (r = 1), the others pop 1 (r = 0.01). beta = 1:
     *   id5  s= 0.5 r=.01:  0.5/1.01                      =  0.49505
     *   id6  s= 0.4 r=1  :  0.4/2                          =  0.2
     *   id1  s=-0.9 r=1  : -0.9 - 0.9*(1 - 1/2)            = -1.35
     *   id2  s=-1.0 r=.01: -1.0 - 1.0*(1 - 1/1.01)         = -1.00990
     *   id3  s=-1.5 r=.01: -1.5 - 1.5*0.0099010            = -1.51485
     *   id4  s=-2.0 r=.01: -2.0 - 2.0*0.0099010            = -2.01980
     * Order 5, 6, 2, 1, 3, 4: the popular id1 falls below id2, the equally popular items
     * 5, 2, 3, 4 keep their order. Plain s/(1 + beta r) would give id1 -0.45, moving the
     * popular item UP (it would stay above id2 = -0.990 with a wider margin). */
    const int8_t label[7] = { 0, +1, 0, -1, -1, 0, +1 };
    const int64_t pop[7] = { 0, 100, 1, 1, 1, 1, 100 };
    ps_rerank_ctx ctx = { .n_items = 6, .label = label, .pop_count = pop, .k = 6, .L = 6 };
    const int32_t cand[6] = { 5, 6, 1, 2, 3, 4 };
    const float cs[6] = { 0.5f, 0.4f, -0.9f, -1.0f, -1.5f, -2.0f };
    int32_t out[6];
    ps_reranker *r = make("penalty", &ctx, "beta=1", NULL);
    assert_int_equal(ps_reranker_apply(r, 0, cand, cs, 6, out), 6);
    const int32_t want[6] = { 5, 6, 2, 1, 3, 4 };
    assert_memory_equal(out, want, sizeof want);
    ps_reranker_free(r);
    /* beta = 0 leaves the base order */
    r = make("penalty", &ctx, "beta=0", NULL);
    ps_reranker_apply(r, 0, cand, cs, 6, out);
    assert_memory_equal(out, cand, sizeof cand);
    ps_reranker_free(r);
    /* beta = 4 (r = 1: factor 1/5): id6 0.4/5 = 0.08 still above every negative score;
     * id1 -0.9 - 0.9*0.8 = -1.62 now also falls below id3 (-1.5 - 1.5*(1 - 1/1.04) = -1.5577) */
    r = make("penalty", &ctx, "beta=4", NULL);
    ps_reranker_apply(r, 0, cand, cs, 6, out);
    const int32_t want4[6] = { 5, 6, 2, 3, 1, 4 };
    assert_memory_equal(out, want4, sizeof want4);
    ps_reranker_free(r);
}

static void test_penalty_positive_matches_division(void **state)
{
    (void)state;
    /* For positive scores the order is exactly that of s/(1 + beta p/max p). */
    syn d;
    syn_init(&d);
    enum { L = 50, K = 20 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = K, .L = L };
    ps_reranker *r = make("penalty", &ctx, "beta=2", NULL);
    uint64_t rng = 99;
    for (int u = 0; u < 20; u++) {
        int32_t cand[L], out[K];
        float cs[L];
        syn_candidates(&d, &rng, L, cand, cs); /* log(pop) + noise > 0 */
        ps_reranker_apply(r, u, cand, cs, L, out);
        for (int i = 0; i + 1 < K; i++) {
            double a = cs[0], b = cs[0];
            for (int j = 0; j < L; j++) {
                if (cand[j] == out[i])
                    a = cs[j] / (1.0 + 2.0 * d.pop[cand[j]] / 1000.0);
                if (cand[j] == out[i + 1])
                    b = cs[j] / (1.0 + 2.0 * d.pop[cand[j]] / 1000.0);
            }
            assert_true(a >= b);
        }
    }
    ps_reranker_free(r);
}

/* ---- FA*IR ---- */

/* Independent quota: exact integer binomials for p = 1/2,
 * CDF(m; i, 1/2) = sum_{j <= m} C(i, j) / 2^i. */
static int quota_half(int i, double alpha_c)
{
    uint64_t c = 1, acc = 0; /* c = C(i, j) */
    for (int m = 0; m <= i; m++) {
        acc += c;
        if ((double)acc / (double)(UINT64_C(1) << i) > alpha_c)
            return m;
        c = c * (uint64_t)(i - m) / (uint64_t)(m + 1);
    }
    return i;
}

/* Independent quota for any p: direct products. */
static int quota_general(int i, double p, double alpha_c)
{
    double cdf = 0.0;
    for (int m = 0; m <= i; m++) {
        double binom = 1.0;
        for (int j = 1; j <= m; j++)
            binom = binom * (i - m + j) / j;
        cdf += binom * pow(p, m) * pow(1.0 - p, i - m);
        if (cdf > alpha_c)
            return m;
    }
    return i;
}

static void test_fair_quotas(void **state)
{
    (void)state;
    /* p = 0.5, alpha = 0.1, k = 10: alpha_c = 1 - 0.9^(1/10) = 0.0104807.
     *   i = 1..6: CDF(0) = 2^-i >= 1/64 = 0.0156 > alpha_c          -> m = 0
     *   i = 7: CDF(0) = 1/128 = 0.0078 <= alpha_c, CDF(1) = 8/128     -> m = 1
     *   i = 8: CDF(1) = 9/256 = 0.035; i = 9: CDF(1) = 10/512 = 0.0195 -> m = 1
     *   i = 10: CDF(1) = 11/1024 = 0.010742 > 0.010481 (close call)    -> m = 1
     * (Without the Šidák correction the paper's table reads 0,0,0,1,1,1,2,2,3,3.) */
    const int hand[11] = { 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1 };
    const double alpha_c = 1.0 - pow(0.9, 0.1);
    ps_rerank_ctx ctx = six_ctx(6);
    ctx.L = 100;
    ctx.k = 10;
    ps_reranker *r = make("fair", &ctx, "p=0.5", "alpha=0.1");
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(quota_half(i, alpha_c), hand[i]);
        assert_int_equal(ps_reranker_fair_quota(r, i), hand[i]);
    }
    assert_int_equal(ps_reranker_fair_quota(r, 0), -1);
    assert_int_equal(ps_reranker_fair_quota(r, 11), -1);
    ps_reranker_free(r);

    /* other p, alpha and k against the direct-product computation */
    const double ps_[3] = { 0.2, 0.5, 0.7 };
    const int ks[2] = { 10, 50 };
    for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 2; b++) {
            char pbuf[32];
            snprintf(pbuf, sizeof pbuf, "p=%g", ps_[a]);
            ctx.k = ks[b];
            r = make("fair", &ctx, pbuf, "alpha=0.05");
            double ac = 1.0 - pow(0.95, 1.0 / ks[b]);
            for (int i = 1; i <= ks[b]; i++)
                assert_int_equal(ps_reranker_fair_quota(r, i), quota_general(i, ps_[a], ac));
            ps_reranker_free(r);
        }
    }
    assert_int_equal(ps_reranker_fair_quota(NULL, 1), -1);
}

static void test_fair_construction(void **state)
{
    (void)state;
    /* 20 candidates: ids 1..14 head (scores 20..7), 15..17 mid, 18..20 tail (scores 6..1).
     * Quotas (p = 0.5, alpha = 0.1, k = 10): 0 0 0 0 0 0 1 1 1 1. Positions 1..6 take the
     * best items (heads 1..6); position 7 needs one protected item: group=nonhead takes 15
     * (best mid), group=tail takes 18 (best tail); positions 8..10 take heads 7, 8, 9. */
    int8_t label[21];
    int64_t pop[21];
    int32_t cand[20];
    float cs[20];
    label[0] = 0;
    pop[0] = 0;
    for (int i = 1; i <= 20; i++) {
        label[i] = i <= 14 ? +1 : i <= 17 ? 0 : -1;
        pop[i] = 21 - i;
        cand[i - 1] = i;
        cs[i - 1] = (float)(21 - i);
    }
    ps_rerank_ctx ctx = { .n_items = 20, .label = label, .pop_count = pop, .k = 10, .L = 20 };
    int32_t out[10];
    ps_reranker *r = make("fair", &ctx, "group=nonhead", NULL);
    ps_reranker_apply(r, 0, cand, cs, 20, out);
    const int32_t want_nonhead[10] = { 1, 2, 3, 4, 5, 6, 15, 7, 8, 9 };
    assert_memory_equal(out, want_nonhead, sizeof out);
    ps_reranker_free(r);
    r = make("fair", &ctx, "group=tail", NULL);
    ps_reranker_apply(r, 0, cand, cs, 20, out);
    const int32_t want_tail[10] = { 1, 2, 3, 4, 5, 6, 18, 7, 8, 9 };
    assert_memory_equal(out, want_tail, sizeof out);
    ps_reranker_free(r);

    /* Every prefix meets its quota whenever enough protected candidates exist: check for
     * each grid p on the synthetic lists (non-head items are plentiful among 60 candidates). */
    syn d;
    syn_init(&d);
    enum { L = 60, K = 10 };
    ps_rerank_ctx sctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = K, .L = L };
    const char *pv[7] = { "p=0.1", "p=0.2", "p=0.3", "p=0.4", "p=0.5", "p=0.6", "p=0.7" };
    int max_quota = 0;
    for (int g = 0; g < 7; g++) {
        r = make("fair", &sctx, pv[g], "group=nonhead"); /* prot counts non-head items */
        uint64_t rng = 5 + (uint64_t)g;
        for (int u = 0; u < 20; u++) {
            int32_t c[L], o[K];
            float s[L];
            syn_candidates(&d, &rng, L, c, s);
            int avail = 0;
            for (int j = 0; j < L; j++)
                avail += d.label[c[j]] != +1;
            assert_true(avail >= K);
            ps_reranker_apply(r, u, c, s, L, o);
            int prot = 0;
            for (int i = 1; i <= K; i++) {
                prot += d.label[o[i - 1]] != +1;
                int q = ps_reranker_fair_quota(r, i);
                max_quota = q > max_quota ? q : max_quota;
                assert_true(prot >= q);
            }
        }
        ps_reranker_free(r);
    }
    /* p = 0.7: P(X <= 3; 10, .7) = 0.0106 > alpha_c, so m(10) = 3 protected items */
    assert_int_equal(max_quota, 3);
}

static void test_fair_tail_default_and_fill(void **state)
{
    (void)state;
    /* Default group = tail (the reference). k = 4, p = 0.99, alpha = 0.1: alpha_c =
     * 1 - 0.9^(1/4) = 0.026004; CDF(0; 1) = .01 -> m(1) = 1; CDF(1; 2) = .0199 -> m(2) = 2;
     * CDF(2; 3) = 1 - .99^3 = .0297 -> m(3) = 2; CDF(2; 4) = .00059, CDF(3; 4) = .0394
     * -> m(4) = 3. The six candidates hold only two tail items (4, 6): positions 1, 2 take
     * them, position 3 is free (best: 1), position 4 needs a third tail item, none is
     * left, so it is filled from the rest (2). */
    ps_rerank_ctx ctx = six_ctx(4);
    ps_reranker *r = make("fair", &ctx, "p=0.99", "alpha=0.1");
    assert_string_equal(ps_reranker_describe(r), "fair(p=0.99, alpha=0.1, group=tail)");
    const int quota[5] = { 0, 1, 2, 2, 3 };
    for (int i = 1; i <= 4; i++)
        assert_int_equal(ps_reranker_fair_quota(r, i), quota[i]);
    int32_t out[4];
    assert_int_equal(ps_reranker_apply(r, 0, six_cand, six_score, 6, out), 4);
    const int32_t want[4] = { 4, 6, 1, 2 };
    assert_memory_equal(out, want, sizeof want);
    ps_reranker_free(r);
    /* group=nonhead protects the mid item 5 too: position 4 takes it */
    r = make("fair", &ctx, "p=0.99", "group=nonhead");
    ps_reranker_apply(r, 0, six_cand, six_score, 6, out);
    const int32_t want_nh[4] = { 4, 5, 1, 6 };
    assert_memory_equal(out, want_nh, sizeof want_nh);
    ps_reranker_free(r);
}

/* ---- xQuAD ---- */

static void test_xquad_hand_example(void **state)
{
    (void)state;
    /* Candidates (s_norm = score, since min 0 and max 1): 1 H 1.0, 2 H 0.9, 3 H 0.8,
     * 4 T 0.5, 5 M 0.4, 6 T 0.0. History {1, 5, 4, 6}: P(head|u) = 0.25, P(tail|u) = 0.75.
     * lambda = 0.6, value = 0.4 s + 0.6 P(c|u) while c is uncovered:
     *  step 1: 1: .40+.15=.55  2: .36+.15=.51  3: .47  4: .20+.45=.65  5: .16+.45=.61  6: .45 -> 4
     *  step 2 (tail covered): 1: .55  2: .51  3: .47  5: .16  6: 0                     -> 1
     *  step 3 (both covered): 2: .36  3: .32  5: .16  6: 0                              -> 2
     *  step 4:                                                                          -> 3 */
    ps_rerank_ctx ctx = six_ctx(4);
    ps_reranker *r = make("xquad", &ctx, "lambda=0.6", NULL);
    const int32_t hist[4] = { 1, 5, 4, 6 };
    int32_t out[4];
    ps_error err = { "" };
    assert_int_equal(ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, &err), 4);
    const int32_t want[4] = { 4, 1, 2, 3 };
    assert_memory_equal(out, want, sizeof want);
    /* Without a history P(c|u) = candidate shares: head 3/6, tail 3/6:
     *  step 1: 1: .40+.30=.70  4: .20+.30=.50                                           -> 1
     *  step 2 (head covered): 2: .36  3: .32  4: .50  5: .16+.30=.46  6: .30            -> 4
     *  steps 3, 4: by score                                                             -> 2, 3 */
    ps_reranker_apply(r, 0, six_cand, six_score, 6, out);
    const int32_t want_fb[4] = { 1, 4, 2, 3 };
    assert_memory_equal(out, want_fb, sizeof want_fb);
    /* a history of padding only also falls back */
    const int32_t pad_hist[2] = { 0, 0 };
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, pad_hist, 2, out, NULL);
    assert_memory_equal(out, want_fb, sizeof want_fb);
    ps_reranker_free(r);
    /* lambda = 0 is the base order */
    r = make("xquad", &ctx, "lambda=0", NULL);
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    assert_memory_equal(out, six_cand, sizeof out);
    ps_reranker_free(r);
}

static void test_xquad_smooth_differs_from_binary(void **state)
{
    (void)state;
    /* Same candidates and history as above (P(head|u) = .25, P(LT|u) = .75), lambda = 0.6,
     * smooth coverage 1 - |S in c|/|S|:
     *  step 1 (S empty, both 1): as binary                                                   -> 4
     *  step 2 (S={T}: head 1, LT 0): 1: .55  2: .51  3: .47  5: .16  6: 0                      -> 1
     *  step 3 (S={T,H}: both 1/2; bonus head .6·.25·.5 = .075, LT .6·.75·.5 = .225):
     *          2: .36+.075=.435  3: .32+.075=.395  5: .16+.225=.385  6: .225                 -> 2
     *  step 4 (S={T,H,H}: head 1/3 -> .05, LT 2/3 -> .30):
     *          3: .32+.05=.37  5: .16+.30=.46  6: .30                                         -> 5
     * The binary variant gives 4, 1, 2, 3 (both categories covered after step 2). */
    ps_rerank_ctx ctx = six_ctx(4);
    const int32_t hist[4] = { 1, 5, 4, 6 };
    int32_t out[4];
    ps_reranker *r = make("xquad", &ctx, "lambda=0.6", "variant=smooth");
    assert_string_equal(ps_reranker_describe(r), "xquad(lambda=0.6, variant=smooth)");
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    const int32_t want[4] = { 4, 1, 2, 5 };
    assert_memory_equal(out, want, sizeof want);
    ps_reranker_free(r);
    r = make("xquad", &ctx, "lambda=0.6", "variant=binary");
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    const int32_t want_bin[4] = { 4, 1, 2, 3 };
    assert_memory_equal(out, want_bin, sizeof want_bin);
    ps_reranker_free(r);
    /* lambda = 0 is the base order in the smooth variant too */
    r = make("xquad", &ctx, "lambda=0", "variant=smooth");
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    assert_memory_equal(out, six_cand, sizeof out);
    ps_reranker_free(r);
}

/* ---- calibrated popularity ---- */

static void test_cp_hand_example(void **state)
{
    (void)state;
    /* Same candidates; history {1 H, 5 M, 4 T, 6 T}: target P = (H .25, M .25, T .5).
     * JS(P, Q) in bits (smoothing 1e-6 changes the 5th decimal at most):
     *   Q = (1,0,0) or (0,1,0): .548775   (0,0,1): .311260   (.5,.5,0): .311268
     *   (.5,0,.5): .155630   (1/3,1/3,1/3): .020721   (2/3,0,1/3): .207975
     *   (1/3,0,2/3): .137916   (3/4,0,1/4): .249990   (1/2,1/4,1/4): .061278
     * lambda = 0.6, value = 0.4 s - 0.6 JS(P, Q(S + i)):
     *  step 1: 1: .40-.3293=.0707  2: .0307  4: .20-.1868=.0132  5: .16-.3293<0        -> 1
     *  step 2 (S={H}): 2: .36-.3293=.0307  3: -.0093  4: .20-.6*.15563=.1066
     *                  5: .16-.6*.311268=-.0268  6: -.0934                              -> 4
     *  step 3 (S={H,T}): 2: .36-.6*.207975=.2352  5: .16-.6*.020721=.1476  6: -.0828    -> 2
     *  step 4 (S={H,T,H}): 3: .32-.6*.24999=.1700  5: .16-.6*.061278=.1232  6: -.0934   -> 3 */
    ps_rerank_ctx ctx = six_ctx(4);
    ps_reranker *r = make("cp", &ctx, "lambda=0.6", NULL);
    const int32_t hist[4] = { 1, 5, 4, 6 };
    int32_t out[4];
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    const int32_t want[4] = { 1, 4, 2, 3 };
    assert_memory_equal(out, want, sizeof want);
    ps_reranker_free(r);
    /* k = 5 continues with 5: S = {H,T,H,H} + M gives Q = (3/5,1/5,1/5), + T (3/5,0,2/5);
     * 5: .16 - .6 JS(.., (.6,.2,.2)) beats 6: 0 - .6 JS(.., (.6,0,.4)). */
    ctx = six_ctx(5);
    r = make("cp", &ctx, "lambda=0.6", NULL);
    int32_t out5[5];
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out5, NULL);
    const int32_t want5[5] = { 1, 4, 2, 3, 5 };
    assert_memory_equal(out5, want5, sizeof want5);
    ps_reranker_free(r);
    /* lambda = 0: base order; a high lambda with an all-tail history puts tail items first:
     * lambda = 0.9, P = (0,0,1): step 1 value 0.1 s - 0.9 JS: a tail item has JS ~ 0 and
     * 4 (s .5) beats 6 (s 0); then 6 keeps Q = (0,0,1) (JS ~ 0), heads cost .9 JS((.5,0,.5)). */
    ctx = six_ctx(4);
    r = make("cp", &ctx, "lambda=0", NULL);
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, hist, 4, out, NULL);
    assert_memory_equal(out, six_cand, sizeof out);
    ps_reranker_free(r);
    r = make("cp", &ctx, "lambda=0.9", NULL);
    const int32_t tail_hist[2] = { 4, 6 };
    ps_reranker_apply_ex(r, 0, six_cand, six_score, 6, tail_hist, 2, out, NULL);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 6);
    ps_reranker_free(r);
}

/* ---- P-MMF ---- */

static void test_pmmf_hand_steps(void **state)
{
    (void)state;
    /* 9 items: 1..3 head, 4..6 mid, 7..9 tail; share equal rho = 1/3; T = 4 users and
     * eta = 0.2 so the step is eta/sqrt(T) = 0.1; momentum = 1 (plain gradient); lambda =
     * 0.05; k = 3; norm=minmax. Scores: 1.0 .9 .8 | .5 .4 .3 | .2 .1 0 (s_norm = score).
     * User 1, mu = 0: the three heads 1, 2, 3. grad = rho - share = (-2/3, 1/3, 1/3);
     *   mu~ = mu - 0.1 grad / (1/9) = (0.6, -0.3, -0.3); y = rho mu~ = (0.2, -0.1, -0.1);
     *   the negatives sum to -0.2 < -lambda: nu = (-0.05 + 0.2)/2 = 0.075 ->
     *   y = (0.2, -0.025, -0.025), mu = (0.6, -0.075, -0.075) (Σ rho min(mu, 0) = -lambda).
     * User 2 without budgets: keys heads .4 .3 .2, mids .575 .475 .375, tails .275 .175 .075
     *   -> {4, 5, 1}, listed by base score: 1, 4, 5.
     * User 2 with budgets (T = 4, slack 0.5): budget 0.5·4·3·(1/3) = 2 per group; heads
     *   used 3, so head is exhausted (remaining -1) and the list is 4, 5, 6. With budgets the
     *   gradient is the authors' remaining / (T k) - share = (-1/12 - 1, 2/12, 2/12):
     *   mu~ = -0.1·9·grad = (0.975, -0.15, -0.15), y = (0.325, -0.05, -0.05), negatives
     *   sum to -0.1: nu = 0.025, mu = (0.975, -0.075, -0.075). */
    int8_t label[10];
    int64_t pop[10];
    int32_t cand[9];
    float cs[9];
    const float sc[9] = { 1.0f, 0.9f, 0.8f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.0f };
    label[0] = 0;
    pop[0] = 0;
    for (int i = 1; i <= 9; i++) {
        label[i] = i <= 3 ? +1 : i <= 6 ? 0 : -1;
        pop[i] = 10 - i;
        cand[i - 1] = i;
        cs[i - 1] = sc[i - 1];
    }
    ps_rerank_ctx ctx = { .n_items = 9, .label = label, .pop_count = pop, .k = 3, .L = 9, .n_users = 4 };
    const char *params[6] = { "eta=0.2", "momentum=1", "lambda=0.05", "slack=0", "share=equal", "norm=minmax" };
    ps_error err = { "" };
    ps_reranker *r = ps_reranker_create("pmmf", &ctx, params, 6, &err);
    assert_non_null(r);
    int32_t out[3];
    ps_rerank_budget b;
    ps_reranker_apply(r, 0, cand, cs, 9, out);
    const int32_t want1[3] = { 1, 2, 3 };
    assert_memory_equal(out, want1, sizeof out);
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
    tu_assert_near(b.mu[0], 0.6, 1e-12);
    tu_assert_near(b.mu[1], -0.075, 1e-12);
    tu_assert_near(b.mu[2], -0.075, 1e-12);
    assert_true(isinf(b.budget_initial[0]));
    ps_reranker_apply(r, 1, cand, cs, 9, out);
    const int32_t want2[3] = { 1, 4, 5 };
    assert_memory_equal(out, want2, sizeof out);
    ps_reranker_free(r);

    /* lambda changes the list: with lambda = 10 the projection leaves mu~ = (0.6, -0.3,
     * -0.3) alone, the mid and tail bonuses are four times larger, and user 2 gets keys
     * heads .4 .3 .2, mids .8 .7 .6, tails .5 .4 .3 -> 4, 5, 6 instead of 1, 4, 5. */
    params[2] = "lambda=10";
    r = ps_reranker_create("pmmf", &ctx, params, 6, &err);
    assert_non_null(r);
    ps_reranker_apply(r, 0, cand, cs, 9, out);
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
    tu_assert_near(b.mu[1], -0.3, 1e-12);
    ps_reranker_apply(r, 1, cand, cs, 9, out);
    const int32_t want2_l10[3] = { 4, 5, 6 };
    assert_memory_equal(out, want2_l10, sizeof out);
    ps_reranker_free(r);
    params[2] = "lambda=0.05";

    /* norm=sigmoid (the authors'): relevance 1/(1 + e^-s) = .7311 .7109 .6900 | .6225 .5987
     * .5744 | .5498 .5250 .5; the duals after user 1 do not depend on it (three heads
     * either way), and the compressed gaps let the same mu = (0.6, -0.075, -0.075) push the
     * heads out: keys heads .131 .111 .090, mids .698 .674 .649, tails .625 .600 .575. */
    params[5] = "norm=sigmoid";
    r = ps_reranker_create("pmmf", &ctx, params, 6, &err);
    assert_non_null(r);
    ps_reranker_apply(r, 0, cand, cs, 9, out);
    assert_memory_equal(out, want1, sizeof out);
    ps_reranker_apply(r, 1, cand, cs, 9, out);
    assert_memory_equal(out, want2_l10, sizeof out);
    ps_reranker_free(r);
    params[5] = "norm=minmax";

    params[3] = "slack=0.5";
    r = ps_reranker_create("pmmf", &ctx, params, 6, &err);
    assert_non_null(r);
    ps_reranker_apply(r, 0, cand, cs, 9, out);
    assert_memory_equal(out, want1, sizeof out);
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
    tu_assert_near(b.budget_initial[0], 2.0, 1e-12);
    tu_assert_near(b.budget_remaining[0], -1.0, 1e-12);
    assert_int_equal(b.exposure[0], 3);
    tu_assert_near(b.mu[0], 0.975, 1e-12);
    tu_assert_near(b.mu[1], -0.075, 1e-12);
    tu_assert_near(b.mu[2], -0.075, 1e-12);
    ps_reranker_apply(r, 1, cand, cs, 9, out);
    const int32_t want2c[3] = { 4, 5, 6 };
    assert_memory_equal(out, want2c, sizeof out);
    /* reset: back to the initial state and the first list again */
    ps_reranker_reset(r);
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
    assert_int_equal(b.users_served, 0);
    assert_int_equal(b.exposure[0], 0);
    tu_assert_near(b.mu[0], 0.0, 0.0);
    ps_reranker_apply(r, 0, cand, cs, 9, out);
    assert_memory_equal(out, want1, sizeof out);
    ps_reranker_free(r);

    /* budget queries on another method fail with a message */
    r = make("cp", &ctx, NULL, NULL);
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "only pmmf"));
    ps_reranker_free(r);
}

static int group_of(int8_t lab)
{
    return lab > 0 ? 0 : lab == 0 ? 1 : 2;
}

/* Serves USERS synthetic users in order; returns the tail share of all served items and
 * checks the budget accounting against the lists on the way. */
static double pmmf_run(const char *lambda, const char *eta, const char *slack, int64_t n_users,
                       int check_invariants)
{
    syn d;
    syn_init(&d);
    enum { L = 50, K = 10, USERS = 400 };
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = K, .L = L,
                          .n_users = n_users };
    const char *params[5] = { lambda, eta, slack, "share=equal", "norm=minmax" };
    ps_error err = { "" };
    ps_reranker *r = ps_reranker_create("pmmf", &ctx, params, 5, &err);
    if (!r)
        fail_msg("%s", err.msg);
    double lam = atof(lambda + strlen("lambda="));
    double slack_v = atof(slack + strlen("slack="));
    int64_t served[3] = { 0, 0, 0 };
    uint64_t rng = 77;
    for (int u = 0; u < USERS; u++) {
        int32_t cand[L], out[K];
        float cs[L];
        syn_candidates(&d, &rng, L, cand, cs);
        ps_rerank_budget before;
        assert_int_equal(ps_reranker_budget(r, &before, &err), PS_OK);
        assert_int_equal(ps_reranker_apply(r, u, cand, cs, L, out), K);
        if (check_invariants) {
            /* An item of a group whose budget was already spent is served only when the
             * groups with budget left cannot fill the list: then all their candidates are in. */
            int closed_served = 0;
            for (int i = 0; i < K; i++) {
                int g = group_of(d.label[out[i]]);
                closed_served |= before.budget_remaining[g] <= 0.0;
            }
            if (closed_served) {
                for (int j = 0; j < L; j++) {
                    if (before.budget_remaining[group_of(d.label[cand[j]])] > 0.0)
                        assert_true(in_list(out, K, cand[j]));
                }
            }
        }
        for (int i = 0; i < K; i++) {
            served[group_of(d.label[out[i]])]++;
        }
        if (check_invariants) {
            ps_rerank_budget b;
            assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
            assert_int_equal(b.users_served, u + 1);
            double neg = 0.0;
            for (int g = 0; g < 3; g++) {
                /* the module's exposure is exactly what the lists contain */
                assert_int_equal(b.exposure[g], served[g]);
                if (isfinite(b.budget_initial[g])) {
                    tu_assert_near(b.budget_remaining[g], b.budget_initial[g] - (double)served[g], 1e-9);
                    tu_assert_near(b.budget_initial[g], slack_v * (double)n_users * K * b.share[g], 1e-9);
                }
                neg += b.share[g] * (b.mu[g] < 0 ? b.mu[g] : 0.0);
            }
            /* the duals stay in D: Σ rho_g min(mu_g, 0) >= -lambda */
            assert_true(neg >= -lam - 1e-12);
        }
    }
    ps_rerank_budget b;
    assert_int_equal(ps_reranker_budget(r, &b, &err), PS_OK);
    assert_int_equal(b.exposure[0] + b.exposure[1] + b.exposure[2], (int64_t)USERS * K);
    ps_reranker_free(r);
    return served[2] / (double)(USERS * K);
}

static void test_pmmf_tail_exposure_rises_with_lambda(void **state)
{
    (void)state;
    /* Without budgets (slack = 0) lambda alone bounds how far the under-exposed groups may be
     * boosted, so the tail share grows with lambda. */
    const char *lambdas[5] = { "lambda=0", "lambda=0.01", "lambda=0.1", "lambda=0.5", "lambda=1" };
    double tail[5];
    for (int i = 0; i < 5; i++) {
        tail[i] = pmmf_run(lambdas[i], "eta=0.01", "slack=0", SYN_N, 1); /* step eta/sqrt(200) */
        print_message("pmmf %s eta=0.01 slack=0: tail share %.4f\n", lambdas[i], tail[i]);
    }
    for (int i = 1; i < 5; i++)
        assert_true(tail[i] >= tail[i - 1]);
    assert_true(tail[4] > tail[0] + 0.05);
}

static void test_pmmf_budget_accounting(void **state)
{
    (void)state;
    /* With the paper's budgets (slack 1, T = 400 users, k = 10): every group is capped at
     * 400·10/3 items; the invariants are checked after every user inside pmmf_run. */
    double t1 = pmmf_run("lambda=0.1", "eta=0.01", "slack=1", 400, 1);
    double t2 = pmmf_run("lambda=1", "eta=0.1", "slack=1.5", 400, 1);
    double t3 = pmmf_run("lambda=0.5", "eta=0.1", "slack=0", SYN_N, 1);
    print_message("pmmf tail shares: capped %.4f, slack 1.5 %.4f, uncapped %.4f\n", t1, t2, t3);
    /* the base lists (lambda irrelevant, budgets off, tiny eta) have few tail items */
    double base = pmmf_run("lambda=0", "eta=0.000001", "slack=0", 0, 0);
    print_message("pmmf near-base tail share %.4f\n", base);
    assert_true(t1 > base);

    /* fair shares: equal = 1/3 each; size = 20/200, 60/200, 120/200 */
    syn d;
    syn_init(&d);
    ps_rerank_ctx ctx = { .n_items = SYN_N, .label = d.label, .pop_count = d.pop, .k = 10, .L = 50,
                          .n_users = 7 };
    ps_rerank_budget b;
    ps_reranker *r = make("pmmf", &ctx, "share=equal", NULL);
    assert_int_equal(ps_reranker_budget(r, &b, NULL), PS_OK);
    for (int g = 0; g < 3; g++) {
        tu_assert_near(b.share[g], 1.0 / 3.0, 1e-15);
        tu_assert_near(b.budget_initial[g], 7 * 10 / 3.0, 1e-12);
    }
    ps_reranker_free(r);
    r = make("pmmf", &ctx, "share=size", "slack=2");
    assert_int_equal(ps_reranker_budget(r, &b, NULL), PS_OK);
    tu_assert_near(b.share[0], 0.1, 1e-15);
    tu_assert_near(b.share[1], 0.3, 1e-15);
    tu_assert_near(b.share[2], 0.6, 1e-15);
    tu_assert_near(b.budget_initial[2], 2 * 7 * 10 * 0.6, 1e-12);
    ps_reranker_free(r);
    /* the authors' shares (the default): (1 + 1/3) · size / n_items */
    r = make("pmmf", &ctx, NULL, NULL);
    assert_int_equal(ps_reranker_budget(r, &b, NULL), PS_OK);
    tu_assert_near(b.share[0], 0.4 / 3.0, 1e-15);
    tu_assert_near(b.share[1], 0.4, 1e-15);
    tu_assert_near(b.share[2], 0.8, 1e-15);
    tu_assert_near(b.budget_initial[1], 7 * 10 * 0.4, 1e-12);
    ps_reranker_free(r);
}

/* ---- PCT ---- */

static void test_pct_hand_examples(void **state)
{
    (void)state;
    /* Six candidates 1 H, 2 H, 3 H, 4 T, 5 M, 6 T (niche = tail = {4, 6}); k = 4: weights
     * w = 1, 1/log2 3 = .630930, .5, 1/log2 5 = .430677; W = 2.561606.
     * p = 0.5: targets rest = niche = 1.280803.
     *  pass 1: r1: 1 (rest 1 <= 1.28)                                    e = (1, 0)
     *          r2: 2, 3 rest 1.63 > 1.28; 4 niche .63 fits                e = (1, .63)
     *          r3: 2, 3, 5 rest 1.5 > 1.28; 6 niche 1.13 fits             e = (1, 1.13)
     *          r4: rest 1.43 > 1.28 and no niche left                     empty
     *  pass 2: r4: only rest items remain, the same error for all: the best rank, 2.
     * List 1, 4, 6, 2. */
    ps_rerank_ctx ctx = six_ctx(4);
    int32_t out[4];
    ps_reranker *r = make("pct", &ctx, "p=0.5", "lambda=0.7");
    assert_int_equal(ps_reranker_apply(r, 0, six_cand, six_score, 6, out), 4);
    const int32_t want[4] = { 1, 4, 6, 2 };
    assert_memory_equal(out, want, sizeof want);
    ps_reranker_free(r);
    /* p = 0: the niche target is 0, so pass 1 keeps the rest in order and skips 4 (r4:
     * 5 lands exactly on the target W, which the <= admits): 1, 2, 3, 5. */
    r = make("pct", &ctx, "p=0", NULL);
    ps_reranker_apply(r, 0, six_cand, six_score, 6, out);
    const int32_t want_p0[4] = { 1, 2, 3, 5 };
    assert_memory_equal(out, want_p0, sizeof want_p0);
    ps_reranker_free(r);

    /* The MMR trade-off. Candidates (in this order) 1 H, 2 H, 4 T, 6 T; k = 3: w = 1, .630930,
     * .5, W = 2.130930; p = 0.5: targets 1.065465 each.
     *  pass 1: r1: 1 (e = (1, 0)); r2: 2 rest 1.63 > 1.07, 4 niche fits (e = (1, .63));
     *          r3: 2 rest 1.5 > 1.07, 6 niche 1.13 > 1.07: empty.
     *  pass 2: r3: 2 (rank 2) -> e' = (1.5, .63): errors ±.434535, ½Σ = .188821;
     *              6 (rank 4) -> e' = (1, 1.13): errors ±.065465, ½Σ = .004286;
     *          2 wins iff lambda/2 - (1-lambda) .188821 > lambda/4 - (1-lambda) .004286,
     *          i.e. lambda > .4247: lambda = 0.3 -> 6, lambda = 0.5 -> 2. */
    ctx = six_ctx(3);
    const int32_t c4[4] = { 1, 2, 4, 6 };
    const float s4[4] = { 1.0f, 0.9f, 0.5f, 0.0f };
    r = make("pct", &ctx, "p=0.5", "lambda=0.3");
    ps_reranker_apply(r, 0, c4, s4, 4, out);
    const int32_t want_l3[3] = { 1, 4, 6 };
    assert_memory_equal(out, want_l3, sizeof want_l3);
    ps_reranker_free(r);
    r = make("pct", &ctx, "p=0.5", "lambda=0.5");
    ps_reranker_apply(r, 0, c4, s4, 4, out);
    const int32_t want_l5[3] = { 1, 4, 2 };
    assert_memory_equal(out, want_l5, sizeof want_l5);
    ps_reranker_free(r);

    /* Fewer candidates than k: k = 4, candidates 4 T and 1 H only, p = 1 (rest target 0):
     * pass 1: r1: 4 (niche 1 <= W); r2..r4: 1 never fits; pass 2 puts 1 at r2 and stops.
     * Two items, then zeros. */
    ctx = six_ctx(4);
    const int32_t c2[2] = { 4, 1 };
    const float s2[2] = { 0.5f, 1.0f };
    r = make("pct", &ctx, "p=1", NULL);
    int32_t out4[4] = { 9, 9, 9, 9 };
    assert_int_equal(ps_reranker_apply(r, 0, c2, s2, 2, out4), 2);
    const int32_t want_short[4] = { 4, 1, 0, 0 };
    assert_memory_equal(out4, want_short, sizeof want_short);
    ps_reranker_free(r);
}

/* ---- candidate extraction ---- */

static void test_candidates_extraction(void **state)
{
    (void)state;
    const float scores[7] = { 0, 0.5f, 3.0f, NAN, 2.0f, 3.0f, -1.0f };
    const uint8_t exclude[7] = { 0, 0, 0, 0, 1, 0, 0 };
    int32_t cand[8];
    float cs[8];
    /* order: 2 (3.0, smaller id first), 5 (3.0), 1 (0.5), 6 (-1), 3 (NaN); 4 excluded */
    assert_int_equal(ps_rerank_candidates(scores, 6, 8, exclude, cand, cs), 5);
    const int32_t want[8] = { 2, 5, 1, 6, 3, 0, 0, 0 };
    assert_memory_equal(cand, want, sizeof want);
    tu_assert_near(cs[0], 3.0, 0);
    tu_assert_near(cs[3], -1.0, 0);
    assert_true(isnan(cs[4]));
    tu_assert_near(cs[5], 0.0, 0);
    assert_int_equal(ps_rerank_candidates(scores, 6, 0, NULL, cand, cs), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_and_grids),
        cmocka_unit_test(test_describe_defaults),
        cmocka_unit_test(test_parameter_errors),
        cmocka_unit_test(test_apply_argument_checks),
        cmocka_unit_test(test_every_method_returns_k_distinct_candidates),
        cmocka_unit_test(test_stateless_methods_thread_independent),
        cmocka_unit_test(test_random_permutation_deterministic),
        cmocka_unit_test(test_random_first_position_uniform),
        cmocka_unit_test(test_penalty_negative_scores),
        cmocka_unit_test(test_penalty_positive_matches_division),
        cmocka_unit_test(test_fair_quotas),
        cmocka_unit_test(test_fair_construction),
        cmocka_unit_test(test_fair_tail_default_and_fill),
        cmocka_unit_test(test_xquad_hand_example),
        cmocka_unit_test(test_xquad_smooth_differs_from_binary),
        cmocka_unit_test(test_cp_hand_example),
        cmocka_unit_test(test_pmmf_hand_steps),
        cmocka_unit_test(test_pmmf_tail_exposure_rises_with_lambda),
        cmocka_unit_test(test_pmmf_budget_accounting),
        cmocka_unit_test(test_pct_hand_examples),
        cmocka_unit_test(test_candidates_extraction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
