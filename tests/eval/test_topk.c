/* ps_topk and ps_target_rank against a reference full sort: many ties, NaN, infinities and
 * an exclude mask, for k from 1 to beyond n_items. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/metrics.h"

typedef struct scored {
    float s;
    int32_t id;
} scored;

/* The documented order, written independently of topk.c: NaN last, score descending,
 * smaller id first. */
static int cmp_reference(const void *x, const void *y)
{
    const scored *a = x, *b = y;
    int na = isnan(a->s), nb = isnan(b->s);
    if (na != nb)
        return na - nb;
    if (!na && a->s != b->s)
        return a->s > b->s ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Full order of the non-excluded items; returns how many there are. */
static int32_t reference_order(const float *scores, int32_t n, const uint8_t *exclude, int32_t *order)
{
    scored *v = calloc((size_t)n + 1, sizeof *v);
    assert_non_null(v);
    int32_t m = 0;
    for (int32_t i = 1; i <= n; i++) {
        if (!exclude || !exclude[i])
            v[m++] = (scored){ scores[i], i };
    }
    qsort(v, (size_t)m, sizeof *v, cmp_reference);
    for (int32_t j = 0; j < m; j++)
        order[j] = v[j].id;
    free(v);
    return m;
}

/* Deterministic xorshift so failures reproduce. */
static uint32_t next_rand(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return (uint32_t)(*st >> 11);
}

/* Scores from a handful of values so ties are everywhere, plus NaN and ±inf. The padding
 * slot gets the best score to prove it is never selected. */
static void random_scores(float *scores, int32_t n, uint64_t *st)
{
    scores[0] = INFINITY;
    for (int32_t i = 1; i <= n; i++) {
        uint32_t r = next_rand(st) % 12;
        scores[i] = r == 10 ? NAN : r == 11 ? -INFINITY : (float)(r % 5) * 0.5f;
    }
}

static void random_mask(uint8_t *mask, int32_t n, uint64_t *st)
{
    mask[0] = 0;
    for (int32_t i = 1; i <= n; i++)
        mask[i] = next_rand(st) % 4 == 0;
}

static void check_topk(const float *scores, int32_t n, const uint8_t *exclude, int k)
{
    int32_t *order = calloc((size_t)n + 1, sizeof *order);
    int32_t *out = calloc((size_t)k + 1, sizeof *out);
    assert_non_null(order);
    assert_non_null(out);
    int32_t m = reference_order(scores, n, exclude, order);
    out[k] = -7; /* guard: must stay untouched */
    ps_topk(scores, n, k, exclude, out);
    for (int j = 0; j < k; j++)
        assert_int_equal(out[j], j < m ? order[j] : 0);
    assert_int_equal(out[k], -7);
    free(order);
    free(out);
}

static void check_all_k(const float *scores, int32_t n, const uint8_t *exclude)
{
    const int ks[] = { 1, 2, 10, n - 1, n, n + 3 };
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        if (ks[i] >= 1)
            check_topk(scores, n, exclude, ks[i]);
    }
}

static void test_topk_matches_full_sort(void **state)
{
    (void)state;
    uint64_t st = 0x9E3779B97F4A7C15ull;
    const int32_t sizes[] = { 1, 2, 7, 50, 333 };
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        int32_t n = sizes[z];
        float *scores = calloc((size_t)n + 1, sizeof *scores);
        uint8_t *mask = calloc((size_t)n + 1, 1);
        assert_non_null(scores);
        assert_non_null(mask);
        for (int rep = 0; rep < 20; rep++) {
            random_scores(scores, n, &st);
            random_mask(mask, n, &st);
            check_all_k(scores, n, NULL);
            check_all_k(scores, n, mask);
        }
        free(scores);
        free(mask);
    }
}

/* Distinct scores in reverse id order: the heap must reorder everything. */
static void test_topk_distinct_descending_ids(void **state)
{
    (void)state;
    float scores[101];
    scores[0] = 1e9f;
    for (int i = 1; i <= 100; i++)
        scores[i] = (float)i;
    int32_t out[5];
    ps_topk(scores, 100, 5, NULL, out);
    const int32_t want[5] = { 100, 99, 98, 97, 96 };
    assert_memory_equal(out, want, sizeof want);
}

/* All scores equal: ids ascending. All excluded: all padding. */
static void test_topk_all_ties_and_all_excluded(void **state)
{
    (void)state;
    float scores[9] = { 5, 1, 1, 1, 1, 1, 1, 1, 1 };
    uint8_t none[9] = { 0, 1, 1, 1, 1, 1, 1, 1, 1 };
    int32_t out[4];
    ps_topk(scores, 8, 4, NULL, out);
    const int32_t want[4] = { 1, 2, 3, 4 };
    assert_memory_equal(out, want, sizeof want);
    ps_topk(scores, 8, 4, none, out);
    const int32_t zeros[4] = { 0, 0, 0, 0 };
    assert_memory_equal(out, zeros, sizeof zeros);
}

static void test_topk_k_zero_writes_nothing(void **state)
{
    (void)state;
    float scores[3] = { 0, 1, 2 };
    int32_t out[1] = { 42 };
    ps_topk(scores, 2, 0, NULL, out);
    assert_int_equal(out[0], 42);
}

/* The rank of every target equals its 1-based position in the reference order; an
 * excluded target gets the position it would have among the eligible items. */
static void check_ranks(const float *scores, int32_t n, const uint8_t *exclude)
{
    int32_t *order = calloc((size_t)n + 1, sizeof *order);
    assert_non_null(order);
    for (int32_t t = 1; t <= n; t++) {
        /* The reference order with only this target re-admitted. */
        uint8_t *mask = NULL;
        if (exclude) {
            mask = malloc((size_t)n + 1);
            assert_non_null(mask);
            memcpy(mask, exclude, (size_t)n + 1);
            mask[t] = 0;
        }
        int32_t m = reference_order(scores, n, mask, order);
        int32_t pos = 0;
        while (pos < m && order[pos] != t)
            pos++;
        assert_true(pos < m);
        assert_int_equal(ps_target_rank(scores, n, t, exclude), pos + 1);
        free(mask);
    }
    free(order);
}

static void test_rank_matches_position(void **state)
{
    (void)state;
    uint64_t st = 12345;
    const int32_t sizes[] = { 1, 3, 40, 200 };
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        int32_t n = sizes[z];
        float *scores = calloc((size_t)n + 1, sizeof *scores);
        uint8_t *mask = calloc((size_t)n + 1, 1);
        assert_non_null(scores);
        assert_non_null(mask);
        for (int rep = 0; rep < 5; rep++) {
            random_scores(scores, n, &st);
            random_mask(mask, n, &st);
            check_ranks(scores, n, NULL);
            check_ranks(scores, n, mask);
        }
        free(scores);
        free(mask);
    }
}

/* rank <= k exactly when the target is in ps_topk's list (the contract the metrics rely on). */
static void test_rank_agrees_with_topk_membership(void **state)
{
    (void)state;
    uint64_t st = 777;
    enum { N = 120, K = 10 };
    float scores[N + 1];
    uint8_t mask[N + 1];
    int32_t out[K];
    for (int rep = 0; rep < 30; rep++) {
        random_scores(scores, N, &st);
        random_mask(mask, N, &st);
        ps_topk(scores, N, K, mask, out);
        for (int32_t t = 1; t <= N; t++) {
            if (mask[t])
                continue;
            int32_t r = ps_target_rank(scores, N, t, mask);
            int in_list = 0;
            for (int j = 0; j < K; j++) {
                if (out[j] == t) {
                    in_list = 1;
                    assert_int_equal(r, j + 1);
                }
            }
            assert_int_equal(in_list, r <= K);
        }
    }
}

/* Hand case: scores (pad, 3, NaN, 3, 5, -inf). Order: 4(5), 1(3), 3(3), 5(-inf), 2(NaN). */
static void test_rank_hand_case(void **state)
{
    (void)state;
    float scores[6] = { 100, 3, NAN, 3, 5, -INFINITY };
    assert_int_equal(ps_target_rank(scores, 5, 4, NULL), 1);
    assert_int_equal(ps_target_rank(scores, 5, 1, NULL), 2);
    assert_int_equal(ps_target_rank(scores, 5, 3, NULL), 3);
    assert_int_equal(ps_target_rank(scores, 5, 5, NULL), 4);
    assert_int_equal(ps_target_rank(scores, 5, 2, NULL), 5);
    uint8_t ex[6] = { 0, 1, 0, 0, 0, 0 }; /* item 1 excluded: item 3 moves up to 2 */
    assert_int_equal(ps_target_rank(scores, 5, 3, ex), 2);
    assert_int_equal(ps_target_rank(scores, 5, 0, NULL), 0);
    assert_int_equal(ps_target_rank(scores, 5, 6, NULL), 0);
    int32_t out[7];
    ps_topk(scores, 5, 7, NULL, out);
    const int32_t want[7] = { 4, 1, 3, 5, 2, 0, 0 };
    assert_memory_equal(out, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topk_matches_full_sort),
        cmocka_unit_test(test_topk_distinct_descending_ids),
        cmocka_unit_test(test_topk_all_ties_and_all_excluded),
        cmocka_unit_test(test_topk_k_zero_writes_nothing),
        cmocka_unit_test(test_rank_matches_position),
        cmocka_unit_test(test_rank_agrees_with_topk_membership),
        cmocka_unit_test(test_rank_hand_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
