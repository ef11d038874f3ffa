/* Metrics of SPEC §6 on hand-computed cases, order and merge independence, input checks,
 * ILAD (hand case, zero vectors, naive cross-check, the vector checks), the JSON contract of
 * SPEC §8 and the printed table. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/metrics.h"

#define TOL 1e-9

static void assert_close(double got, double want)
{
    if (fabs(got - want) > TOL)
        fail_msg("got %.12f, want %.12f", got, want);
}

/* Exact equality of every field: the accumulator promises bit-identical results. */
static void assert_metrics_identical(const ps_metrics *a, const ps_metrics *b)
{
    assert_int_equal(a->k, b->k);
    assert_int_equal(a->users, b->users);
    assert_int_equal(a->users_head, b->users_head);
    assert_int_equal(a->users_mid, b->users_mid);
    assert_int_equal(a->users_tail, b->users_tail);
    assert_int_equal(a->has_ilad, b->has_ilad);
    assert_int_equal(a->has_ilad_features, b->has_ilad_features);
    assert_int_equal(a->ilad_users, b->ilad_users);
    const double x[] = { a->ndcg, a->hit, a->recall, a->precision, a->mrr, a->ndcg_head,
                         a->ndcg_mid, a->ndcg_tail, a->coverage, a->lt_coverage,
                         a->deep_lt_coverage, a->gini, a->arp, a->arp_distinct, a->aplt, a->entropy,
                         a->ilad, a->ilad_features };
    const double y[] = { b->ndcg, b->hit, b->recall, b->precision, b->mrr, b->ndcg_head,
                         b->ndcg_mid, b->ndcg_tail, b->coverage, b->lt_coverage,
                         b->deep_lt_coverage, b->gini, b->arp, b->arp_distinct, b->aplt, b->entropy,
                         b->ilad, b->ilad_features };
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        if (x[i] != y[i])
            fail_msg("metric %zu differs: %.17g vs %.17g", i, x[i], y[i]);
    }
}

/* ------------------------------------------------------------------ the hand case
 *
 * 5 items, k = 2.
 *   item      1     2     3     4     5
 *   label   head  head   mid  tail  tail
 *   pop        8     6     4     2     0     Σ = 20 → p = .4 .3 .2 .1 0
 * Users (target, rank, list):
 *   u1: 1 (head) rank 1 [1,2]     u2: 3 (mid)  rank 2 [1,3]     u3: 4 (tail) rank 3 [2,1]
 *   u4: 2 (head) rank 2 [1,2]     u5: 5 (tail) rank 1 [5,0]  (padding in the list) */
static const int8_t hand_label[6] = { 0, 1, 1, 0, -1, -1 };
static const int64_t hand_pop[6] = { 0, 8, 6, 4, 2, 0 };
static const int32_t hand_target[5] = { 1, 3, 4, 2, 5 };
static const int32_t hand_rank[5] = { 1, 2, 3, 2, 1 };
static const int32_t hand_lists[5][2] = { { 1, 2 }, { 1, 3 }, { 2, 1 }, { 1, 2 }, { 5, 0 } };

static void hand_metrics(int reverse, ps_metrics *m)
{
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 2, 5, hand_label, hand_pop, &err), PS_OK);
    for (int j = 0; j < 5; j++) {
        int u = reverse ? 4 - j : j;
        ps_metrics_acc_add(&a, hand_target[u], hand_rank[u], hand_lists[u]);
    }
    ps_metrics_acc_finish(&a, m);
    ps_metrics_acc_free(&a);
}

static void test_hand_accuracy(void **state)
{
    (void)state;
    ps_metrics m;
    hand_metrics(0, &m);
    assert_int_equal(m.k, 2);
    assert_int_equal(m.users, 5);
    /* NDCG per user: 1, 1/log2(3) = 0.6309297536, 0 (rank 3 > k), 0.6309297536, 1
     * → mean 3.2618595071 / 5 = 0.6523719014. */
    assert_close(m.ndcg, 0.652371901428583);
    /* Hits 1,1,0,1,1 → 0.8 = recall; precision = 0.8 / 2 = 0.4. */
    assert_close(m.hit, 0.8);
    assert_close(m.recall, 0.8);
    assert_close(m.precision, 0.4);
    /* MRR: 1, 1/2, 0, 1/2, 1 → 3 / 5 = 0.6. */
    assert_close(m.mrr, 0.6);
    /* Head users u1, u4: (1 + 0.6309297536) / 2 = 0.8154648768; mid u2: 0.6309297536;
     * tail u3, u5: (0 + 1) / 2 = 0.5. */
    assert_int_equal(m.users_head, 2);
    assert_int_equal(m.users_mid, 1);
    assert_int_equal(m.users_tail, 2);
    assert_close(m.ndcg_head, 0.8154648767857288);
    assert_close(m.ndcg_mid, 0.6309297535714575);
    assert_close(m.ndcg_tail, 0.5);
}

static void test_hand_exposure(void **state)
{
    (void)state;
    ps_metrics m;
    hand_metrics(0, &m);
    /* Exposure c = (4, 3, 1, 0, 1), Σc = 9 (the padding 0 in u5's list is ignored).
     * Coverage: 4 of 5 items = 0.8. Non-head items {3,4,5}: 3 and 5 seen → 2/3.
     * Tail items {4,5}: 5 seen → 1/2. */
    assert_close(m.coverage, 0.8);
    assert_close(m.lt_coverage, 2.0 / 3.0);
    assert_close(m.deep_lt_coverage, 0.5);
    /* Gini: ascending (0,1,1,3,4), I = 5, weights 2j-6 = (-4,-2,0,2,4):
     * 0 - 2 + 0 + 6 + 16 = 20 → 20 / (5 * 9) = 0.4444444444. */
    assert_close(m.gini, 20.0 / 45.0);
    /* ARP (literature): list means of p: u1 (.4+.3)/2 = .35, u2 (.4+.2)/2 = .30, u3 .35,
     * u4 .35, u5 [5] → 0/1 = 0 → (1.35) / 5 = 0.27. */
    assert_close(m.arp, 0.27);
    /* ARP (distinct): items {1,2,3,5}: (.4+.3+.2+0) / 4 = 0.225. */
    assert_close(m.arp_distinct, 0.225);
    /* APLT: non-head share per list: 0, 1/2, 0, 0, 1/1 → 1.5 / 5 = 0.3. */
    assert_close(m.aplt, 0.3);
    /* Entropy: q = (4/9, 3/9, 1/9, 1/9):
     * 4/9 ln(9/4) + 1/3 ln 3 + 2/9 ln 9 = .3604135 + .3662041 + .4882721 = 1.2148896539. */
    assert_close(m.entropy, 1.2148896539491205);
}

/* Reversing the order of the users changes no bit. */
static void test_order_independent(void **state)
{
    (void)state;
    ps_metrics a, b;
    hand_metrics(0, &a);
    hand_metrics(1, &b);
    assert_metrics_identical(&a, &b);
}

/* ------------------------------------------------------------------ Gini / entropy cases */

static void exposure_metrics(const int32_t (*lists)[2], int n_lists, int32_t n_items, ps_metrics *m)
{
    int8_t label[9] = { 0 };
    int64_t pop[9] = { 0, 1, 1, 1, 1, 1, 1, 1, 1 };
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 2, n_items, label, pop, &err), PS_OK);
    for (int u = 0; u < n_lists; u++)
        ps_metrics_acc_add(&a, 1, 1, lists[u]);
    ps_metrics_acc_finish(&a, m);
    ps_metrics_acc_free(&a);
}

static void test_gini_entropy_0013(void **state)
{
    (void)state;
    /* Lists [4,3], [4,0], [4,0] over 4 items → c = (0,0,1,3), Σc = 4.
     * Gini: weights 2j-5 = (-3,-1,1,3): 0 + 0 + 1 + 9 = 10 → 10 / (4 * 4) = 0.625.
     * Entropy: q = (1/4, 3/4): 1/4 ln 4 + 3/4 ln(4/3) = .3465736 + .2157616 = 0.5623351446. */
    const int32_t lists[3][2] = { { 4, 3 }, { 4, 0 }, { 4, 0 } };
    ps_metrics m;
    exposure_metrics(lists, 3, 4, &m);
    assert_close(m.gini, 0.625);
    assert_close(m.entropy, 0.5623351446188083);
    assert_close(m.coverage, 0.5);
}

static void test_gini_entropy_uniform(void **state)
{
    (void)state;
    /* Every item of 4 shown twice: c = (2,2,2,2) → Gini 0, entropy ln 4 = 1.3862943611. */
    const int32_t lists[4][2] = { { 1, 2 }, { 3, 4 }, { 2, 1 }, { 4, 3 } };
    ps_metrics m;
    exposure_metrics(lists, 4, 4, &m);
    assert_close(m.gini, 0.0);
    assert_close(m.entropy, log(4.0));
    assert_close(m.coverage, 1.0);
}

static void test_gini_single_item(void **state)
{
    (void)state;
    /* All exposure on 1 of 8 items: c = (0,...,0,2): weight of the top item is 2*8-9 = 7
     * → 7*2 / (8*2) = 0.875 = 1 - 1/I (the maximum), entropy 0. */
    const int32_t lists[2][2] = { { 8, 0 }, { 8, 8 } };
    ps_metrics m;
    exposure_metrics(lists, 2, 8, &m);
    assert_close(m.gini, 0.875);
    assert_close(m.entropy, 0.0);
}

/* ------------------------------------------------------------------ edge cases */

/* A repeated id counts once in a list; padding and out-of-range ids are ignored. */
static void test_duplicates_and_padding(void **state)
{
    (void)state;
    const int8_t label[4] = { 0, 1, 0, -1 };
    const int64_t pop[4] = { 0, 6, 3, 1 }; /* Σ 10 */
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 4, 3, label, pop, &err), PS_OK);
    const int32_t list[4] = { 1, 1, 0, 99 }; /* really just [1] */
    ps_metrics_acc_add(&a, 1, 1, list);
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_int_equal(a.exposure[1], 1);
    assert_close(m.arp, 0.6);
    assert_close(m.arp_distinct, 0.6);
    assert_close(m.aplt, 0.0);
    assert_close(m.coverage, 1.0 / 3.0);
    ps_metrics_acc_free(&a);
}

/* Ranks < 1 or > k are misses; a target outside 1..n_items counts only in the totals. */
static void test_misses_and_unlabelled_targets(void **state)
{
    (void)state;
    const int8_t label[4] = { 0, 1, 0, -1 };
    const int64_t pop[4] = { 0, 1, 1, 1 };
    const int32_t list[2] = { 1, 2 };
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 2, 3, label, pop, &err), PS_OK);
    ps_metrics_acc_add(&a, 1, 0, list);   /* invalid rank: miss */
    ps_metrics_acc_add(&a, 2, 3, list);   /* beyond k: miss */
    ps_metrics_acc_add(&a, 0, 1, list);   /* no label group, but a hit */
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_int_equal(m.users, 3);
    assert_int_equal(m.users_head + m.users_mid + m.users_tail, 2);
    assert_close(m.hit, 1.0 / 3.0);
    assert_close(m.ndcg, 1.0 / 3.0);
    assert_close(m.ndcg_head, 0.0);
    assert_close(m.ndcg_mid, 0.0);
    assert_close(m.ndcg_tail, 0.0); /* no tail users → 0, not NaN */
    ps_metrics_acc_free(&a);
}

static void test_empty_accumulator(void **state)
{
    (void)state;
    const int8_t label[3] = { 0, 1, -1 };
    const int64_t pop[3] = { 0, 0, 0 };
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 10, 2, label, pop, &err), PS_OK);
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_int_equal(m.k, 10);
    assert_int_equal(m.users, 0);
    const double v[] = { m.ndcg, m.hit, m.mrr, m.precision, m.coverage, m.gini, m.arp,
                         m.arp_distinct, m.aplt, m.entropy, m.lt_coverage, m.deep_lt_coverage };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_true(v[i] == 0.0);
    ps_metrics_acc_free(&a);
    ps_metrics_acc_free(&a); /* second free is harmless */
}

static void test_init_rejects_bad_input(void **state)
{
    (void)state;
    const int8_t label[3] = { 0, 1, -1 };
    const int64_t pop[3] = { 0, 1, 1 };
    const int64_t bad_pop[3] = { 0, 1, -5 };
    ps_metrics_acc a;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 0, 2, label, pop, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "k must be"));
    assert_int_equal(ps_metrics_acc_init(&a, 10, 0, label, pop, &err), PS_ERR);
    assert_int_equal(ps_metrics_acc_init(&a, 10, 2, NULL, pop, &err), PS_ERR);
    assert_int_equal(ps_metrics_acc_init(&a, 10, 2, label, NULL, &err), PS_ERR);
    assert_int_equal(ps_metrics_acc_init(&a, 10, 2, label, bad_pop, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "negative popularity"));
    ps_metrics_acc_free(&a); /* init failure leaves a freeable, empty accumulator */
}

/* ------------------------------------------------------------------ merge */

typedef struct random_world {
    int32_t n;
    int8_t *label;
    int64_t *pop;
    float *scores;
    int32_t *topk;
    float *unit;   /* [n + 1][WORLD_DIM] unit vectors for ILAD; item 3's row is zero */
    float *unit2;  /* [n + 1][2] a second set, as "features" */
} random_world;

enum { WORLD_DIM = 5 };

static uint32_t next_rand(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return (uint32_t)(*st >> 11);
}

static void world_init(random_world *w, int32_t n, int k, uint64_t *st)
{
    w->n = n;
    w->label = calloc((size_t)n + 1, sizeof *w->label);
    w->pop = calloc((size_t)n + 1, sizeof *w->pop);
    w->scores = calloc((size_t)n + 1, sizeof *w->scores);
    w->topk = calloc((size_t)k, sizeof *w->topk);
    assert_true(w->label && w->pop && w->scores && w->topk);
    for (int32_t i = 1; i <= n; i++) {
        w->label[i] = (int8_t)((int)(next_rand(st) % 3) - 1);
        w->pop[i] = next_rand(st) % 50;
    }
    float *raw = calloc(((size_t)n + 1) * WORLD_DIM, sizeof *raw);
    float *raw2 = calloc(((size_t)n + 1) * 2, sizeof *raw2);
    assert_true(raw && raw2);
    for (int32_t i = 1; i <= n; i++) {
        for (int j = 0; j < WORLD_DIM; j++)
            raw[(size_t)i * WORLD_DIM + j] = i == 3 ? 0.0f : (float)((int)(next_rand(st) % 201) - 100) / 37.0f;
        raw2[(size_t)i * 2] = (float)(next_rand(st) % 2);
        raw2[(size_t)i * 2 + 1] = (float)(next_rand(st) % 2);
    }
    ps_error err;
    w->unit = ps_item_unit_vectors(raw, n, WORLD_DIM, &err);
    w->unit2 = ps_item_unit_vectors(raw2, n, 2, &err);
    assert_true(w->unit && w->unit2);
    free(raw);
    free(raw2);
}

/* init plus both kinds of ILAD vectors of the world. */
static void world_acc_init(ps_metrics_acc *a, const random_world *w, int k)
{
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(a, k, w->n, w->label, w->pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(a, PS_ILAD_EMBEDDING, w->unit, WORLD_DIM, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(a, PS_ILAD_FEATURES, w->unit2, 2, &err), PS_OK);
}

static void world_free(random_world *w)
{
    free(w->label);
    free(w->pop);
    free(w->scores);
    free(w->topk);
    free(w->unit);
    free(w->unit2);
}

/* One random user scored, ranked and listed by the real ps_topk / ps_target_rank. */
static void add_random_user(ps_metrics_acc *a, random_world *w, int k, uint64_t *st)
{
    for (int32_t i = 1; i <= w->n; i++)
        w->scores[i] = (float)(next_rand(st) % 1000) / 7.0f;
    int32_t target = 1 + (int32_t)(next_rand(st) % (uint32_t)w->n);
    ps_topk(w->scores, w->n, k, NULL, w->topk);
    ps_metrics_acc_add(a, target, ps_target_rank(w->scores, w->n, target, NULL), w->topk);
}

static void test_merge_equals_single(void **state)
{
    (void)state;
    enum { N = 60, K = 10, USERS = 400 };
    uint64_t st = 2024;
    random_world w;
    world_init(&w, N, K, &st);
    ps_metrics_acc one, part[2];
    ps_error err;
    world_acc_init(&one, &w, K);
    for (int p = 0; p < 2; p++)
        world_acc_init(&part[p], &w, K);
    for (int u = 0; u < USERS; u++) {
        uint64_t saved = st; /* replay the same user into both */
        add_random_user(&one, &w, K, &st);
        st = saved;
        add_random_user(&part[(u * 7) % 3 == 0], &w, K, &st);
    }
    /* Merge in both orders into fresh accumulators. */
    ps_metrics_acc ab, ba;
    world_acc_init(&ab, &w, K);
    world_acc_init(&ba, &w, K);
    assert_int_equal(ps_metrics_acc_merge(&ab, &part[0], &err), PS_OK);
    assert_int_equal(ps_metrics_acc_merge(&ab, &part[1], &err), PS_OK);
    assert_int_equal(ps_metrics_acc_merge(&ba, &part[1], &err), PS_OK);
    assert_int_equal(ps_metrics_acc_merge(&ba, &part[0], &err), PS_OK);
    ps_metrics m1, m2, m3;
    ps_metrics_acc_finish(&one, &m1);
    ps_metrics_acc_finish(&ab, &m2);
    ps_metrics_acc_finish(&ba, &m3);
    assert_int_equal(m1.users, USERS);
    assert_true(part[0].users > 0 && part[1].users > 0);
    assert_true(m1.has_ilad && m1.has_ilad_features && m1.ilad > 0 && m1.ilad_features > 0);
    assert_metrics_identical(&m1, &m2);
    assert_metrics_identical(&m1, &m3);
    ps_metrics_acc_free(&one);
    ps_metrics_acc_free(&part[0]);
    ps_metrics_acc_free(&part[1]);
    ps_metrics_acc_free(&ab);
    ps_metrics_acc_free(&ba);
    world_free(&w);
}

static void test_merge_rejects_mismatch(void **state)
{
    (void)state;
    const int8_t label[4] = { 0, 1, 0, -1 };
    const int64_t pop[4] = { 0, 1, 1, 1 };
    ps_metrics_acc a, b, c;
    ps_error err;
    assert_int_equal(ps_metrics_acc_init(&a, 10, 3, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_init(&b, 5, 3, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_init(&c, 10, 2, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_merge(&a, &b, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "cannot merge"));
    assert_int_equal(ps_metrics_acc_merge(&a, &c, &err), PS_ERR);
    ps_metrics_acc_free(&a);
    ps_metrics_acc_free(&b);
    ps_metrics_acc_free(&c);
}

/* ILAD of one list of k distinct real items, pair by pair as SPEC §6 writes it: cosine as
 * dot / (|a| |b|), 0 when either vector is zero. */
static double naive_ilad(const float *v, int dim, const int32_t *list, int k)
{
    double sum = 0;
    int pairs = 0;
    for (int i = 0; i < k; i++) {
        for (int j = i + 1; j < k; j++) {
            const float *a = v + (size_t)list[i] * dim, *b = v + (size_t)list[j] * dim;
            double ab = 0, aa = 0, bb = 0;
            for (int d = 0; d < dim; d++) {
                ab += (double)a[d] * b[d];
                aa += (double)a[d] * a[d];
                bb += (double)b[d] * b[d];
            }
            sum += 1.0 - (aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0);
            pairs++;
        }
    }
    return sum / pairs;
}

/* Metrics computed from scratch, one user at a time in double, straight from the SPEC §6
 * formulas: a second, naive implementation to cross-check the integer bookkeeping. */
static void test_against_naive_formulas(void **state)
{
    (void)state;
    enum { N = 40, K = 5, USERS = 300 };
    uint64_t st = 99;
    random_world w;
    world_init(&w, N, K, &st);
    ps_metrics_acc a;
    world_acc_init(&a, &w, K);
    double ndcg = 0, mrr = 0, arp = 0, aplt = 0, ptotal = 0, ilad = 0, ilad2 = 0;
    int64_t c[N + 1] = { 0 };
    for (int32_t i = 1; i <= N; i++)
        ptotal += (double)w.pop[i];
    for (int u = 0; u < USERS; u++) {
        for (int32_t i = 1; i <= N; i++)
            w.scores[i] = (float)(next_rand(&st) % 30);
        int32_t t = 1 + (int32_t)(next_rand(&st) % N);
        ps_topk(w.scores, N, K, NULL, w.topk);
        int32_t r = ps_target_rank(w.scores, N, t, NULL);
        ps_metrics_acc_add(&a, t, r, w.topk);
        ndcg += r <= K ? 1.0 / log2(r + 1.0) : 0.0;
        mrr += r <= K ? 1.0 / r : 0.0;
        double lp = 0, lt = 0;
        for (int j = 0; j < K; j++) {
            c[w.topk[j]]++;
            lp += (double)w.pop[w.topk[j]] / ptotal;
            lt += w.label[w.topk[j]] != 1;
        }
        arp += lp / K;
        aplt += lt / K;
        ilad += naive_ilad(w.unit, WORLD_DIM, w.topk, K);
        ilad2 += naive_ilad(w.unit2, 2, w.topk, K);
    }
    double total = (double)USERS * K, ent = 0, dist_p = 0;
    int covered = 0;
    for (int32_t i = 1; i <= N; i++) {
        if (c[i] > 0) {
            ent -= (c[i] / total) * log(c[i] / total);
            covered++;
            dist_p += (double)w.pop[i] / ptotal;
        }
    }
    /* Gini by the mean-absolute-difference definition, independent of the sorted formula:
     * G = Σ_i Σ_j |c_i - c_j| / (2 I Σc). */
    double mad = 0;
    for (int32_t i = 1; i <= N; i++)
        for (int32_t j = 1; j <= N; j++)
            mad += fabs((double)(c[i] - c[j]));
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_close(m.ndcg, ndcg / USERS);
    assert_close(m.mrr, mrr / USERS);
    assert_close(m.arp, arp / USERS);
    assert_close(m.aplt, aplt / USERS);
    assert_close(m.entropy, ent);
    assert_close(m.coverage, (double)covered / N);
    assert_close(m.arp_distinct, dist_p / covered);
    assert_close(m.gini, mad / (2.0 * N * total));
    assert_int_equal(m.ilad_users, USERS);
    /* the unit copies are float32 (norm 1 to ~6e-8), so agreement is to ~1e-8, not 1e-12 */
    tu_assert_near(m.ilad, ilad / USERS, 1e-7);
    tu_assert_near(m.ilad_features, ilad2 / USERS, 1e-7);
    ps_metrics_acc_free(&a);
    world_free(&w);
}

/* ------------------------------------------------------------------ ILAD
 *
 * 4 items, k = 3, 2-d embeddings (raw, normalised by ps_item_unit_vectors):
 *   item 1 (1, 0) at 0°, item 2 (0, 2) at 90°, item 3 (0.5, √3/2) at 60°, item 4 (0, 0).
 *   distances 1 − cos: d12 = 1, d13 = 1/2, d23 = 1 − √3/2, anything with item 4 = 1.
 * 3-d features: item 1 (1,0,0), item 2 (1,1,0), item 3 (0,0,1), item 4 (0,0,0):
 *   d12 = 1 − 1/√2, d13 = d23 = 1, anything with item 4 = 1.
 * Users (lists):                        embedding ILAD_u          feature ILAD_u
 *   [1,2,3]                             (2.5 − √3/2)/3            (3 − 1/√2)/3
 *   [3,1,0]   padding                   1/2                       1
 *   [2,0,0]   one item: left out        —                         —
 *   [1,1,3]   repeat: the set {1,3}     1/2                       1
 *   [1,4,2]   zero vector               (1 + 1 + 1)/3 = 1         (1 + (1 − 1/√2) + 1)/3
 *   [4,4,0]   one item: left out        —                         —
 * → 4 users in the means. Vectors are float32, so values agree to ~1e-7, not 1e-12. */
#define ILAD_TOL 1e-6

static const float ilad_emb[5 * 2] = { 0, 0, 1, 0, 0, 2, 0.5f, 0.8660254037844386f, 0, 0 };
static const float ilad_feat[5 * 3] = { 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0 };
static const int32_t ilad_lists[6][3] = { { 1, 2, 3 }, { 3, 1, 0 }, { 2, 0, 0 }, { 1, 1, 3 }, { 1, 4, 2 }, { 4, 4, 0 } };
static const int8_t ilad_label[5] = { 0, 1, 0, -1, -1 };
static const int64_t ilad_pop[5] = { 0, 4, 3, 2, 1 };

static void ilad_hand_metrics(int reverse, int with_features, ps_metrics *m)
{
    ps_error err;
    float *ue = ps_item_unit_vectors(ilad_emb, 4, 2, &err);
    float *uf = ps_item_unit_vectors(ilad_feat, 4, 3, &err);
    assert_true(ue && uf);
    ps_metrics_acc a;
    assert_int_equal(ps_metrics_acc_init(&a, 3, 4, ilad_label, ilad_pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_EMBEDDING, ue, 2, &err), PS_OK);
    if (with_features)
        assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_FEATURES, uf, 3, &err), PS_OK);
    for (int j = 0; j < 6; j++) {
        int u = reverse ? 5 - j : j;
        ps_metrics_acc_add(&a, 1, 1, ilad_lists[u]);
    }
    ps_metrics_acc_finish(&a, m);
    ps_metrics_acc_free(&a);
    free(ue);
    free(uf);
}

static void test_ilad_hand_case(void **state)
{
    (void)state;
    ps_metrics m;
    ilad_hand_metrics(0, 1, &m);
    const double s3 = sqrt(3.0) / 2.0, r2 = 1.0 / sqrt(2.0);
    assert_true(m.has_ilad && m.has_ilad_features);
    assert_int_equal(m.ilad_users, 4);
    tu_assert_near(m.ilad, ((2.5 - s3) / 3.0 + 0.5 + 0.5 + 1.0) / 4.0, ILAD_TOL); /* 0.63616455 */
    tu_assert_near(m.ilad_features, (2.0 * (3.0 - r2) / 3.0 + 1.0 + 1.0) / 4.0, ILAD_TOL); /* 0.88214887 */
    /* Any order of the users gives the same bits (fixed-point sums). */
    ps_metrics r;
    ilad_hand_metrics(1, 1, &r);
    assert_metrics_identical(&m, &r);
}

/* Zero vectors: distance 1 to everything (cosine 0), and the pair still counts. Two zero
 * items together are distance 1 as well: no information is not "identical". */
static void test_ilad_zero_vectors(void **state)
{
    (void)state;
    const float raw[4 * 2] = { 0, 0, 0, 0, 0, 0, 3, 4 }; /* items 1 and 2 zero, item 3 (0.6, 0.8) */
    const int8_t label[4] = { 0, 1, 0, -1 };
    const int64_t pop[4] = { 0, 1, 1, 1 };
    ps_error err;
    float *u = ps_item_unit_vectors(raw, 3, 2, &err);
    assert_non_null(u);
    assert_true(u[2] == 0 && u[3] == 0 && u[4] == 0 && u[5] == 0); /* zero rows stay zero */
    tu_assert_near(u[6], 0.6, 1e-7);
    tu_assert_near(u[7], 0.8, 1e-7);
    ps_metrics_acc a;
    assert_int_equal(ps_metrics_acc_init(&a, 2, 3, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_EMBEDDING, u, 2, &err), PS_OK);
    const int32_t lists[3][2] = { { 1, 2 }, { 1, 3 }, { 3, 3 } };
    for (int j = 0; j < 3; j++)
        ps_metrics_acc_add(&a, 1, 1, lists[j]);
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_int_equal(m.ilad_users, 2);
    assert_true(m.ilad == 1.0); /* exact: 1 is a multiple of the fixed-point unit */
    ps_metrics_acc_free(&a);
    free(u);
}

/* Identical vectors: distance 0, never a rounding-negative value. */
static void test_ilad_identical_items(void **state)
{
    (void)state;
    const float raw[3 * 3] = { 0, 0, 0, 0.1f, 0.7f, -0.3f, 0.2f, 1.4f, -0.6f };
    const int8_t label[3] = { 0, 1, -1 };
    const int64_t pop[3] = { 0, 1, 1 };
    ps_error err;
    float *u = ps_item_unit_vectors(raw, 2, 3, &err);
    assert_non_null(u);
    ps_metrics_acc a;
    assert_int_equal(ps_metrics_acc_init(&a, 2, 2, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_EMBEDDING, u, 3, &err), PS_OK);
    const int32_t list[2] = { 1, 2 };
    ps_metrics_acc_add(&a, 1, 1, list);
    ps_metrics m;
    ps_metrics_acc_finish(&a, &m);
    assert_true(m.ilad >= 0.0 && m.ilad < 1e-6);
    ps_metrics_acc_free(&a);
    free(u);
}

static void test_ilad_not_set(void **state)
{
    (void)state;
    ps_metrics m;
    hand_metrics(0, &m);
    assert_false(m.has_ilad);
    assert_false(m.has_ilad_features);
    assert_true(m.ilad == 0.0);
    assert_int_equal(m.ilad_users, 4); /* u1..u4 have 2 items, u5 one: counted even without vectors */
}

static void test_ilad_rejects_bad_vectors(void **state)
{
    (void)state;
    const int8_t label[3] = { 0, 1, -1 };
    const int64_t pop[3] = { 0, 1, 1 };
    const float raw[3 * 2] = { 0, 0, 3, 4, 1, 0 };
    const float bad[3 * 2] = { 0, 0, 1, NAN, 1, 0 };
    ps_error err;
    /* the helper: non-finite values, bad sizes */
    assert_null(ps_item_unit_vectors(bad, 2, 2, &err));
    assert_non_null(strstr(err.msg, "item 1 has a non-finite value in dimension 2"));
    assert_null(ps_item_unit_vectors(raw, 2, 0, &err));
    assert_null(ps_item_unit_vectors(NULL, 2, 2, &err));
    ps_metrics_acc a;
    assert_int_equal(ps_metrics_acc_init(&a, 2, 2, label, pop, &err), PS_OK);
    /* raw (not unit) vectors, a bad kind, no vectors */
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_EMBEDDING, raw, 2, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "unit length"));
    float *u = ps_item_unit_vectors(raw, 2, 2, &err);
    assert_non_null(u);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_COUNT, u, 2, &err), PS_ERR);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_FEATURES, NULL, 2, &err), PS_ERR);
    /* accumulators with different vectors do not merge */
    ps_metrics_acc b;
    assert_int_equal(ps_metrics_acc_init(&b, 2, 2, label, pop, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&b, PS_ILAD_EMBEDDING, u, 2, &err), PS_OK);
    assert_int_equal(ps_metrics_acc_merge(&a, &b, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "different ILAD embedding vectors"));
    /* set after a user was added: refused, the users before would be missing from the mean */
    const int32_t list[2] = { 1, 2 };
    ps_metrics_acc_add(&a, 1, 1, list);
    assert_int_equal(ps_metrics_acc_set_item_vectors(&a, PS_ILAD_EMBEDDING, u, 2, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "before the first user"));
    ps_metrics_acc_free(&a);
    ps_metrics_acc_free(&b);
    free(u);
}

/* ------------------------------------------------------------------ JSON and printing */

static const char *const json_names[] = {
    "ndcg", "hit", "recall", "precision", "mrr", "ndcg_head", "ndcg_mid", "ndcg_tail",
    "coverage", "lt_coverage", "deep_lt_coverage", "gini", "arp", "arp_distinct", "aplt", "entropy",
};

static void check_json_for_k(int k)
{
    ps_metrics m;
    hand_metrics(0, &m);
    m.k = k; /* only the key suffix depends on it */
    m.has_ilad = 1;
    m.ilad = 0.375;
    cJSON *obj = ps_metrics_to_json(&m);
    assert_non_null(obj);
    cJSON *users = cJSON_GetObjectItemCaseSensitive(obj, "users");
    assert_true(cJSON_IsNumber(users));
    assert_int_equal((int64_t)users->valuedouble, 5);
    char key[64], other[64];
    for (size_t i = 0; i < sizeof json_names / sizeof json_names[0]; i++) {
        snprintf(key, sizeof key, "%s@%d", json_names[i], k);
        snprintf(other, sizeof other, "%s@%d", json_names[i], k == 10 ? 5 : 10);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!cJSON_IsNumber(v))
            fail_msg("key %s missing or not a number", key);
        assert_null(cJSON_GetObjectItemCaseSensitive(obj, other));
    }
    snprintf(key, sizeof key, "ilad@%d", k);
    assert_close(cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble, 0.375);
    assert_int_equal(cJSON_GetArraySize(obj), 18);
    snprintf(key, sizeof key, "gini@%d", k);
    assert_close(cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble, m.gini);
    snprintf(key, sizeof key, "arp_distinct@%d", k);
    assert_close(cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble, m.arp_distinct);
    /* Printed numbers must parse back as numbers too (no NaN → null). */
    char *text = cJSON_PrintUnformatted(obj);
    assert_non_null(text);
    assert_null(strstr(text, "null"));
    free(text);
    cJSON_Delete(obj);
}

static void test_json_keys_k10(void **state)
{
    (void)state;
    check_json_for_k(10);
}

static void test_json_keys_follow_k(void **state)
{
    (void)state;
    check_json_for_k(5);
}

/* ilad@k is always there: null when no embeddings were set (never a made-up 0);
 * ilad_features@k only when features were set. */
static void test_json_ilad_keys(void **state)
{
    (void)state;
    ps_metrics m;
    hand_metrics(0, &m);
    cJSON *obj = ps_metrics_to_json(&m);
    assert_non_null(obj);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, "ilad@2")));
    assert_null(cJSON_GetObjectItemCaseSensitive(obj, "ilad_features@2"));
    assert_int_equal(cJSON_GetArraySize(obj), 18);
    cJSON_Delete(obj);
    ilad_hand_metrics(0, 1, &m);
    obj = ps_metrics_to_json(&m);
    assert_non_null(obj);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "ilad@3");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "ilad_features@3");
    assert_true(cJSON_IsNumber(v) && cJSON_IsNumber(f));
    assert_true(v->valuedouble == m.ilad && f->valuedouble == m.ilad_features);
    assert_int_equal(cJSON_GetArraySize(obj), 19);
    cJSON_Delete(obj);
}

static void test_print_table(void **state)
{
    (void)state;
    ps_metrics m;
    hand_metrics(0, &m);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    ps_metrics_print(fp, &m);
    fclose(fp);
    assert_non_null(strstr(buf, "NDCG@2"));
    assert_non_null(strstr(buf, "0.6524"));
    assert_non_null(strstr(buf, "Gini@2"));
    assert_non_null(strstr(buf, "ARP-distinct@2"));
    assert_non_null(strstr(buf, "(2 users)"));
    assert_non_null(strstr(buf, "nats"));
    assert_null(strstr(buf, "ILAD")); /* not computed: no line rather than a 0 */
    free(buf);
    ilad_hand_metrics(0, 1, &m);
    fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    ps_metrics_print(fp, &m);
    fclose(fp);
    assert_non_null(strstr(buf, "ILAD@3                0.6362  (item embeddings, 4 users)"));
    assert_non_null(strstr(buf, "ILAD-features@3       0.8821  (item features, 4 users)"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_accuracy),
        cmocka_unit_test(test_hand_exposure),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_gini_entropy_0013),
        cmocka_unit_test(test_gini_entropy_uniform),
        cmocka_unit_test(test_gini_single_item),
        cmocka_unit_test(test_duplicates_and_padding),
        cmocka_unit_test(test_misses_and_unlabelled_targets),
        cmocka_unit_test(test_empty_accumulator),
        cmocka_unit_test(test_init_rejects_bad_input),
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_merge_rejects_mismatch),
        cmocka_unit_test(test_against_naive_formulas),
        cmocka_unit_test(test_ilad_hand_case),
        cmocka_unit_test(test_ilad_zero_vectors),
        cmocka_unit_test(test_ilad_identical_items),
        cmocka_unit_test(test_ilad_not_set),
        cmocka_unit_test(test_ilad_rejects_bad_vectors),
        cmocka_unit_test(test_json_ilad_keys),
        cmocka_unit_test(test_json_keys_k10),
        cmocka_unit_test(test_json_keys_follow_k),
        cmocka_unit_test(test_print_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
