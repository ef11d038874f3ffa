/* recommend.h on the tiny generated stack (untrained SASRec and SAE, a real probe table): the
 * list of ps_recommend equals the evaluation path's (the SASRec scorer, the SAE-reconstructed
 * and the steered scorer with ps_steer_plan_make's plan, then ps_topk) for test prefixes; the
 * per-call plan is the plan eval makes; exclusions, shares, query checks, token lookup, and
 * several threads with their own workspaces agreeing. */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/metrics.h"
#include "popsteer/popsteer.h"
#include "popsteer/recommend.h"
#include "popsteer/train.h"

static char *g_dir;
static ps_dataset g_ds;
static ps_sasrec *g_m;
static ps_sae *g_sae;
static ps_probe_result g_probe;

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    tu_tiny_stack(g_dir, &g_ds, &g_m, &g_sae);
    ps_probe_options po;
    ps_probe_options_init(&po);
    ps_error err = {{0}};
    if (ps_probe_run(g_m, g_sae, &g_ds, &po, &g_probe, &err) != PS_OK)
        fail_msg("probe: %s", err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ps_probe_result_free(&g_probe);
    ps_sae_free(g_sae);
    ps_sasrec_free(g_m);
    ps_dataset_free(&g_ds);
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* The test sample's prefix of user u as a history: the items before the target. */
static ps_rec_query test_prefix(int32_t u, int k)
{
    ps_sample s = g_ds.test[u - 1];
    int64_t start = s.pos > g_ds.max_seq_len ? s.pos - g_ds.max_seq_len : 0;
    ps_rec_query q = {g_ds.seq + g_ds.user_off[u] + start, s.pos - start, k, 0, 0, 0, 0};
    return q;
}

/* The evaluation path: the scorer's scores of the sample and ps_topk. */
static void eval_list(ps_scorer *sc, int32_t u, int k, int32_t *list, float *scores)
{
    const int L = g_m->cfg.max_len;
    int32_t *seq = calloc((size_t)L, sizeof *seq), len;
    assert_non_null(seq);
    ps_batch_prefixes(&g_ds, &g_ds.test[u - 1], 1, L, seq, &len);
    ps_error err = {{0}};
    if (sc->score(sc->ctx, seq, &len, 1, scores, &err) != PS_OK)
        fail_msg("score: %s", err.msg);
    ps_topk(scores, g_ds.n_items, k, NULL, list);
    free(seq);
}

static void assert_same_list(const ps_rec_list *l, const int32_t *list, const float *scores, int k)
{
    assert_int_equal(l->n, k);
    for (int j = 0; j < k; j++) {
        assert_int_equal(l->items[j], list[j]);
        assert_true(l->scores[j] == scores[list[j]]);
    }
}

static void check_against_eval(const ps_sae *sae, const ps_latent_table *t, double alpha, int neurons)
{
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    ps_rec_ws *w = NULL;
    if (ps_recommender_create(&r, &g_ds, g_m, sae, t, &err) != PS_OK || ps_rec_ws_create(&w, r, &err) != PS_OK)
        fail_msg("recommender: %s", err.msg);
    ps_sasrec_scorer plain = {0};
    ps_steer_scorer steered = {0};
    ps_steer_plan plan = {0};
    ps_scorer sc;
    if (!sae) {
        assert_int_equal(ps_sasrec_scorer_init(&plain, g_m, 1, &err), PS_OK);
        sc = ps_sasrec_scorer_as_scorer(&plain);
    } else {
        if (t) /* the plan `eval --alpha --neurons` makes */
            assert_int_equal(ps_steer_plan_make(t->d, t->std_pop, t->std_unpop, t->m, neurons ? neurons : t->m, alpha,
                                                &plan, &err),
                             PS_OK);
        assert_int_equal(ps_steer_scorer_init(&steered, g_m, sae, t ? &plan : NULL, 1, &err), PS_OK);
        sc = ps_steer_scorer_as_scorer(&steered);
    }
    const int k = 10;
    int32_t list[10];
    float *scores = calloc((size_t)g_ds.n_items + 1, sizeof *scores);
    assert_non_null(scores);
    for (int32_t u = 1; u <= g_ds.n_users; u += 7) {
        ps_rec_query q = test_prefix(u, k);
        q.alpha = alpha;
        q.neurons = neurons;
        ps_rec_list l;
        if (ps_recommend(r, w, &q, &l, &err) != PS_OK)
            fail_msg("recommend: %s", err.msg);
        eval_list(&sc, u, k, list, scores);
        assert_same_list(&l, list, scores, k);
        assert_int_equal(l.scoring, !sae ? PS_REC_SASREC : alpha > 0 ? PS_REC_STEERED : PS_REC_SAE);
        assert_int_equal(l.n_head + l.n_mid + l.n_tail, l.n);
    }
    free(scores);
    ps_steer_plan_free(&plan);
    ps_steer_scorer_free(&steered);
    ps_sasrec_scorer_free(&plain);
    ps_rec_ws_free(w);
    ps_recommender_free(r);
}

static void test_plain_equals_eval(void **state)
{
    (void)state;
    check_against_eval(NULL, NULL, 0, 0);
}

static void test_sae_equals_eval(void **state)
{
    (void)state;
    check_against_eval(g_sae, NULL, 0, 0);
}

static void test_steered_equals_eval(void **state)
{
    (void)state;
    check_against_eval(g_sae, &g_probe.table, 1.5, 0);
    check_against_eval(g_sae, &g_probe.table, 4, 9);
    check_against_eval(g_sae, &g_probe.table, 0, 0);
}

/* Steering changes the list (the check above is not vacuous). */
static void test_steering_changes_scores(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    ps_rec_ws *w = NULL;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, g_sae, &g_probe.table, &err), PS_OK);
    assert_int_equal(ps_rec_ws_create(&w, r, &err), PS_OK);
    ps_rec_query q = test_prefix(3, 5);
    ps_rec_list l;
    assert_int_equal(ps_recommend(r, w, &q, &l, &err), PS_OK);
    float s0 = l.scores[0];
    int32_t i0 = l.items[0];
    q.alpha = 5;
    assert_int_equal(ps_recommend(r, w, &q, &l, &err), PS_OK);
    assert_int_equal(l.neurons, g_sae->cfg.n_latents);
    assert_true(l.items[0] != i0 || l.scores[0] != s0);
    ps_rec_ws_free(w);
    ps_recommender_free(r);
}

static void test_exclude_and_short_lists(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    ps_rec_ws *w = NULL;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, NULL, NULL, &err), PS_OK);
    assert_int_equal(ps_rec_ws_create(&w, r, &err), PS_OK);
    const int32_t u = 5;
    const int64_t n = ps_user_len(&g_ds, u);
    const int32_t *hist = g_ds.seq + g_ds.user_off[u];
    ps_rec_query q = {hist, n, PS_REC_MAX_K, 0, 0, 1, 0};
    ps_rec_list l;
    assert_int_equal(ps_recommend(r, w, &q, &l, &err), PS_OK);
    uint8_t *seen = calloc((size_t)g_ds.n_items + 1, 1);
    assert_non_null(seen);
    int distinct = 0;
    for (int64_t i = 0; i < n; i++)
        distinct += !seen[hist[i]]++;
    assert_int_equal(l.n, g_ds.n_items - distinct); /* every unseen item, none seen */
    for (int j = 0; j < l.n; j++)
        assert_int_equal(seen[l.items[j]], 0);
    /* the same query again: the exclusion marks were cleared */
    q.exclude_seen = 0;
    assert_int_equal(ps_recommend(r, w, &q, &l, &err), PS_OK);
    assert_int_equal(l.n, g_ds.n_items);
    free(seen);
    ps_rec_ws_free(w);
    ps_recommender_free(r);
}

static void test_query_checks(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *plain = NULL, *r = NULL;
    assert_int_equal(ps_recommender_create(&plain, &g_ds, g_m, NULL, NULL, &err), PS_OK);
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, g_sae, &g_probe.table, &err), PS_OK);
    const int32_t hist[3] = {1, 2, 3};
    const ps_rec_query ok = {hist, 3, 10, 1, 0, 0, 0};
    assert_int_equal(ps_rec_query_check(r, &ok, &err), PS_OK);
    ps_rec_query q = ok;
    q.k = 0;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "k = 0"));
    q.k = -3;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q = ok;
    q.alpha = NAN;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q.alpha = INFINITY;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q.alpha = -0.5;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q = ok;
    q.neurons = g_sae->cfg.n_latents + 1;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "neurons"));
    q.neurons = g_sae->cfg.n_latents;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_OK);
    q = ok;
    q.n_history = 0;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    const int32_t bad[2] = {1, g_ds.n_items + 1};
    q = ok;
    q.history = bad;
    q.n_history = 2;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q = ok;
    q.user = g_ds.n_users + 1;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_ERR);
    q.user = g_ds.n_users; /* a user's own history: history and n_history are not looked at */
    q.n_history = 0;
    assert_int_equal(ps_rec_query_check(r, &q, &err), PS_OK);
    q = ok; /* alpha > 0 without steering */
    assert_int_equal(ps_rec_query_check(plain, &q, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "latents"));
    q.alpha = 0;
    assert_int_equal(ps_rec_query_check(plain, &q, &err), PS_OK);
    ps_recommender_free(plain);
    ps_recommender_free(r);
}

static void test_token_lookup(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, NULL, NULL, &err), PS_OK);
    for (int32_t u = 1; u <= g_ds.n_users; u++)
        assert_int_equal(ps_recommender_find_user(r, ps_strings_get(&g_ds.user_tokens, u)), u);
    for (int32_t i = 1; i <= g_ds.n_items; i++)
        assert_int_equal(ps_recommender_find_item(r, ps_strings_get(&g_ds.item_tokens, i)), i);
    assert_int_equal(ps_recommender_find_user(r, "no such user"), 0);
    assert_int_equal(ps_recommender_find_item(r, "[PAD]"), 0);
    assert_int_equal(ps_recommender_find_item(r, ""), 0);
    ps_recommender_free(r);
}

/* A query by user equals the query of that user's whole history, with and without the cached
 * vectors, to the bit. */
static void test_user_queries_and_cache(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    ps_rec_ws *w = NULL;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, g_sae, &g_probe.table, &err), PS_OK);
    assert_int_equal(ps_rec_ws_create(&w, r, &err), PS_OK);
    const int k = 8;
    int32_t *items = calloc((size_t)g_ds.n_users * 3 * k, sizeof *items);
    float *scores = calloc((size_t)g_ds.n_users * 3 * k, sizeof *scores);
    assert_true(items && scores);
    for (int pass = 0; pass < 3; pass++) { /* history, user, user with the cache */
        if (pass == 2)
            assert_int_equal(ps_recommender_cache_users(r, &err), PS_OK);
        for (int32_t u = 1; u <= g_ds.n_users; u++) {
            ps_rec_query q = {g_ds.seq + g_ds.user_off[u], ps_user_len(&g_ds, u), k, 1.5, 20, u % 2, pass ? u : 0};
            ps_rec_list l;
            if (ps_recommend(r, w, &q, &l, &err) != PS_OK)
                fail_msg("user %d: %s", (int)u, err.msg);
            assert_int_equal(l.n, k);
            assert_int_equal(l.prefix_len, ps_user_len(&g_ds, u) < g_m->cfg.max_len ? ps_user_len(&g_ds, u)
                                                                                     : g_m->cfg.max_len);
            size_t at = ((size_t)pass * g_ds.n_users + (size_t)(u - 1)) * k;
            memcpy(items + at, l.items, k * sizeof *items);
            memcpy(scores + at, l.scores, k * sizeof *scores);
        }
    }
    size_t n = (size_t)g_ds.n_users * k;
    assert_memory_equal(items, items + n, n * sizeof *items);
    assert_memory_equal(items, items + 2 * n, n * sizeof *items);
    assert_memory_equal(scores, scores + n, n * sizeof *scores);
    assert_memory_equal(scores, scores + 2 * n, n * sizeof *scores);
    free(items);
    free(scores);
    ps_rec_ws_free(w);
    ps_recommender_free(r);
}

typedef struct worker {
    const ps_recommender *r;
    int32_t first[64]; /* the top 1 of users 1..64 at alpha 2 */
    int rc;
} worker;

static void *work(void *arg)
{
    worker *wk = arg;
    ps_error err;
    ps_rec_ws *w = NULL;
    wk->rc = ps_rec_ws_create(&w, wk->r, &err);
    for (int32_t u = 1; u <= 64 && wk->rc == PS_OK; u++) {
        ps_rec_query q = test_prefix(u, 3);
        q.alpha = 2;
        ps_rec_list l;
        wk->rc = ps_recommend(wk->r, w, &q, &l, &err);
        wk->first[u - 1] = wk->rc == PS_OK ? l.items[0] : -1;
    }
    ps_rec_ws_free(w);
    return NULL;
}

static void test_threads_agree(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, g_sae, &g_probe.table, &err), PS_OK);
    worker wk[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&wk[i], 0, sizeof wk[i]);
        wk[i].r = r;
        assert_int_equal(pthread_create(&th[i], NULL, work, &wk[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wk[i].rc, PS_OK);
        assert_memory_equal(wk[i].first, wk[0].first, sizeof wk[0].first);
    }
    ps_recommender_free(r);
}

static void test_open_errors(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_recommender *r = NULL;
    char *missing = tu_path(g_dir, "missing.safetensors");
    assert_int_equal(ps_recommender_open(&r, &g_ds, missing, NULL, NULL, &err), PS_ERR);
    assert_null(r);
    assert_non_null(strstr(err.msg, "missing.safetensors"));
    assert_int_equal(ps_recommender_open(&r, &g_ds, missing, NULL, "latents.csv", &err), PS_ERR);
    assert_non_null(strstr(err.msg, "SAE"));
    ps_latent_table small = g_probe.table;
    small.m = g_probe.table.m - 1;
    assert_int_equal(ps_recommender_create(&r, &g_ds, g_m, g_sae, &small, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "latents"));
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_equals_eval),       cmocka_unit_test(test_sae_equals_eval),
        cmocka_unit_test(test_steered_equals_eval),     cmocka_unit_test(test_steering_changes_scores),
        cmocka_unit_test(test_exclude_and_short_lists), cmocka_unit_test(test_query_checks),
        cmocka_unit_test(test_token_lookup),            cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_user_queries_and_cache),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
