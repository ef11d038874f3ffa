/* The probe (src/steer/probe.c): synthetic popular-only / long-tail-only users, streaming
 * per-latent statistics against a naive two-pass computation, Cohen's d on a hand example,
 * and TopK firing counts. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/dataset.h"
#include "popsteer/probe.h"

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* ---- a small dataset --------------------------------------------------------------------- */

/* 40 users with 3..70 items (so some prefixes hit the 50-item cap) over 60 items whose
 * popularity falls off steeply: item "i<k>" is drawn with k = (x·x) / 100 for x uniform in
 * 0..77, so low k are frequent. Gives a few head items, many tail items. */
static ps_dataset small_dataset(void)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "seq.txt");
    size_t cap = 1 << 16, used = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    uint64_t x = 12345;
    for (int u = 1; u <= 40; u++) {
        used += (size_t)snprintf(text + used, cap - used, "u%d", u);
        int len = 3 + (u * 17) % 68;
        for (int p = 0; p < len; p++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int v = (int)((x >> 33) % 78);
            used += (size_t)snprintf(text + used, cap - used, " i%d", v * v / 100);
        }
        used += (size_t)snprintf(text + used, cap - used, "\n");
        assert_true(used < cap - 1024);
    }
    tu_write(path, text, used);
    free(text);
    ps_load_options opt;
    ps_load_options_init(&opt);
    opt.format = PS_FORMAT_SEQUENCE;
    ps_dataset ds;
    ps_error err = {{0}};
    if (ps_dataset_load(&ds, path, &opt, &err) != PS_OK)
        fail_msg("load: %s", err.msg);
    tu_rmtree(dir);
    free(path);
    free(dir);
    assert_true(ds.n_head >= 2);
    assert_true(ds.n_tail >= 5);
    assert_true(ds.n_train > 500);
    return ds;
}

static ps_probe_users make_ok(const ps_dataset *ds, int64_t cap, uint64_t seed)
{
    ps_probe_users u;
    ps_error err = {{0}};
    if (ps_probe_users_make(ds, cap, seed, &u, &err) != PS_OK)
        fail_msg("probe users: %s", err.msg);
    return u;
}

static int same_users(const ps_probe_users *a, const ps_probe_users *b)
{
    return a->n == b->n && a->max_len == b->max_len &&
           memcmp(a->seq, b->seq, (size_t)a->n * (size_t)a->max_len * sizeof *a->seq) == 0 &&
           memcmp(a->len, b->len, (size_t)a->n * sizeof *a->len) == 0 &&
           memcmp(a->source, b->source, (size_t)a->n_group * sizeof *a->source) == 0;
}

/* ---- synthetic users ------------------------------------------------------------------------ */

/* Every training prefix gives one popular row and one unpopular row of its length, holding
 * only head (resp. tail) items, left-aligned and 0-padded. */
static void test_users_lengths_and_pools(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    ps_probe_users u = make_ok(&ds, 0, 42);
    assert_int_equal(u.n_group, ds.n_train);
    assert_int_equal(u.n, 2 * ds.n_train);
    assert_int_equal(u.max_len, ds.max_seq_len);
    int saw_full = 0;
    for (int64_t r = 0; r < u.n_group; r++) {
        assert_int_equal(u.source[r], r);
        int len;
        (void)ps_sample_prefix(&ds, ds.train[r], &len);
        saw_full |= len == ds.max_seq_len;
        for (int g = 0; g < 2; g++) {
            int64_t row = r + g * u.n_group;
            int want = g == 0 ? +1 : -1;
            assert_int_equal(u.len[row], len);
            assert_int_equal(u.label[row], want);
            const int32_t *seq = ps_probe_users_row(&u, row);
            for (int p = 0; p < u.max_len; p++) {
                if (p < len) {
                    assert_true(seq[p] >= 1 && seq[p] <= ds.n_items);
                    assert_int_equal(ds.label[seq[p]], want);
                } else {
                    assert_int_equal(seq[p], 0);
                }
            }
        }
    }
    assert_true(saw_full); /* the 50-item cap on prefixes was exercised */
    ps_probe_users_free(&u);
    ps_dataset_free(&ds);
}

/* Draws are uniform over the pool: with thousands of draws every head item appears, each
 * within 25 % of its expected share (binomial sd is ~ 3 % here). */
static void test_users_draws_are_uniform(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    ps_probe_users u = make_ok(&ds, 0, 7);
    int64_t *count = calloc((size_t)ds.n_items + 1, sizeof *count);
    assert_non_null(count);
    int64_t draws = 0;
    for (int64_t r = 0; r < u.n_group; r++)
        for (int p = 0; p < u.len[r]; p++, draws++)
            count[ps_probe_users_row(&u, r)[p]]++;
    double expect = (double)draws / ds.n_head;
    for (int32_t i = 1; i <= ds.n_items; i++)
        if (ds.label[i] == 1)
            assert_true(fabs((double)count[i] - expect) < 0.25 * expect);
    free(count);
    ps_probe_users_free(&u);
    ps_dataset_free(&ds);
}

static void test_users_same_seed_same_users(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    ps_probe_users a = make_ok(&ds, 0, 99), b = make_ok(&ds, 0, 99), c = make_ok(&ds, 0, 100);
    assert_true(same_users(&a, &b));
    assert_false(same_users(&a, &c));
    ps_probe_users_free(&a);
    ps_probe_users_free(&b);
    ps_probe_users_free(&c);
    ps_dataset_free(&ds);
}

/* The same users whatever the number of OpenMP threads. */
static void test_users_independent_of_threads(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    ps_probe_users a = make_ok(&ds, 0, 5);
    omp_set_num_threads(4);
    ps_probe_users b = make_ok(&ds, 0, 5);
    omp_set_num_threads(saved);
    assert_true(same_users(&a, &b));
    ps_probe_users_free(&a);
    ps_probe_users_free(&b);
    ps_dataset_free(&ds);
}

/* A cap selects exactly cap prefixes, in train order, deterministically; their users are
 * exactly those of the uncapped probe with the same seed. */
static void test_users_cap(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    ps_probe_users all = make_ok(&ds, 0, 3);
    ps_probe_users a = make_ok(&ds, 37, 3), b = make_ok(&ds, 37, 3), c = make_ok(&ds, 37, 4);
    assert_int_equal(a.n_group, 37);
    assert_int_equal(a.n, 74);
    assert_true(same_users(&a, &b));
    assert_memory_not_equal(a.source, c.source, 37 * sizeof *a.source);
    for (int64_t r = 0; r < a.n_group; r++) {
        int64_t t = a.source[r];
        if (r > 0)
            assert_true(t > a.source[r - 1]);
        assert_true(t >= 0 && t < ds.n_train);
        for (int g = 0; g < 2; g++) {
            int64_t row = r + g * a.n_group, full = t + g * all.n_group;
            assert_int_equal(a.len[row], all.len[full]);
            assert_memory_equal(ps_probe_users_row(&a, row), ps_probe_users_row(&all, full),
                                (size_t)a.max_len * sizeof *a.seq);
        }
    }
    /* a cap at or above n_train means "all of them" */
    ps_probe_users d = make_ok(&ds, ds.n_train, 3), e = make_ok(&ds, ds.n_train + 100, 3);
    assert_true(same_users(&d, &all));
    assert_true(same_users(&e, &all));
    ps_probe_users_free(&all);
    ps_probe_users_free(&a);
    ps_probe_users_free(&b);
    ps_probe_users_free(&c);
    ps_probe_users_free(&d);
    ps_probe_users_free(&e);
    ps_dataset_free(&ds);
}

/* The capped selection is uniform: over 400 seeds, every training sample is chosen about
 * cap / n_train of the time, and the two halves of the train set equally often. */
static void test_users_cap_is_uniform(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    int64_t cap = ds.n_train / 4, first_half = 0, total = 0;
    for (uint64_t seed = 0; seed < 400; seed++) {
        ps_probe_users u = make_ok(&ds, cap, seed);
        assert_int_equal(u.n_group, cap);
        for (int64_t r = 0; r < u.n_group; r++, total++)
            first_half += u.source[r] < ds.n_train / 2;
        ps_probe_users_free(&u);
    }
    double share = (double)first_half / (double)total, want = (double)(ds.n_train / 2) / (double)ds.n_train;
    assert_true(fabs(share - want) < 0.01);
    ps_dataset_free(&ds);
}

static void test_users_errors(void **state)
{
    (void)state;
    ps_dataset ds = small_dataset();
    ps_probe_users u;
    ps_error err = {{0}};
    assert_int_equal(ps_probe_users_make(&ds, -1, 1, &u, &err), PS_ERR);
    assert_contains(err.msg, "cap");
    assert_null(u.seq);

    /* no head items: head share 0 */
    assert_int_equal(ps_dataset_label(&ds, 0.0, 0.2, &err), PS_OK);
    assert_int_equal(ds.n_head, 0);
    assert_int_equal(ps_probe_users_make(&ds, 0, 1, &u, &err), PS_ERR);
    assert_contains(err.msg, "0 head");
    assert_contains(err.msg, "--head-share/--tail-share");
    assert_null(u.seq);
    ps_probe_users_free(&u); /* safe on a failed make */

    /* no tail items */
    assert_int_equal(ps_dataset_label(&ds, 0.2, 0.0, &err), PS_OK);
    assert_int_equal(ps_probe_users_make(&ds, 0, 1, &u, &err), PS_ERR);
    assert_contains(err.msg, "0 tail");
    ps_dataset_free(&ds);
}

/* ---- streaming statistics ------------------------------------------------------------------------ */

/* Deterministic test data: values around a large offset (1000 + 10·j), where the naive
 * one-pass formula E[x²] − E[x]² would lose most digits in float, and a spread that differs
 * per latent. */
static float *random_matrix(int64_t rows, int m, uint64_t seed)
{
    float *a = malloc((size_t)rows * (size_t)m * sizeof *a);
    assert_non_null(a);
    uint64_t x = seed;
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < m; j++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(x >> 11) / 9007199254740992.0;
            a[r * m + j] = (float)(1000.0 + 10.0 * j + (u - 0.5) * (1.0 + j % 7));
        }
    return a;
}

/* The reference: two passes over all rows in double. */
static void naive_mean_std(const float *a, int64_t rows, int m, double *mean, double *std)
{
    for (int j = 0; j < m; j++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++)
            s += a[r * m + j];
        mean[j] = s / (double)rows;
        double q = 0;
        for (int64_t r = 0; r < rows; r++) {
            double dev = a[r * m + j] - mean[j];
            q += dev * dev;
        }
        std[j] = sqrt(q / (double)rows);
    }
}

/* Tolerance: 1e-9 relative. Both computations are in double on float inputs; the streaming
 * one differs only by the rounding of Chan's merge terms, which is ~1e-15 relative here. */
static void assert_close_rel(double got, double want)
{
    if (fabs(got - want) > 1e-9 * fmax(fabs(want), 1e-300))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void add_in_batches(ps_latent_stats *s, const float *a, int64_t rows, const int64_t *sizes, int n_sizes)
{
    ps_error err = {{0}};
    int64_t r = 0;
    for (int b = 0; r < rows; b++) {
        int64_t n = sizes[b % n_sizes];
        if (n > rows - r)
            n = rows - r;
        if (ps_latent_stats_add(s, a + r * s->m, n, &err) != PS_OK)
            fail_msg("%s", err.msg);
        r += n;
    }
}

static ps_latent_stats_result finish_ok(const ps_latent_stats *s)
{
    ps_latent_stats_result r;
    ps_error err = {{0}};
    if (ps_latent_stats_finish(s, &r, &err) != PS_OK)
        fail_msg("%s", err.msg);
    return r;
}

static void test_stats_match_naive_two_pass(void **state)
{
    (void)state;
    /* m = 130 spans three blocks of 64 latents, the last one partial */
    const int m = 130;
    const int64_t rows = 1009;
    float *a = random_matrix(rows, m, 1);
    double mean[130], std[130];
    naive_mean_std(a, rows, m, mean, std);

    const int64_t sizes[] = {1, 7, 0, 256, 33, 2, 100};
    ps_latent_stats s;
    ps_error err = {{0}};
    assert_int_equal(ps_latent_stats_init(&s, m, &err), PS_OK);
    add_in_batches(&s, a, rows, sizes, 7);
    assert_int_equal(s.n, rows);
    ps_latent_stats_result r = finish_ok(&s);
    assert_int_equal(r.m, m);
    assert_int_equal(r.n, rows);
    for (int j = 0; j < m; j++) {
        assert_close_rel(r.mean[j], mean[j]);
        assert_close_rel(r.std[j], std[j]);
    }
    ps_latent_stats_result_free(&r);
    ps_latent_stats_free(&s);
    free(a);
}

/* Two accumulators over the two halves, merged, equal one accumulator over everything. */
static void test_stats_merge_equals_single(void **state)
{
    (void)state;
    const int m = 70;
    const int64_t rows = 500, split = 123;
    float *a = random_matrix(rows, m, 2);
    const int64_t sizes[] = {50, 3, 77};
    ps_latent_stats whole, left, right, empty;
    ps_error err = {{0}};
    assert_int_equal(ps_latent_stats_init(&whole, m, &err), PS_OK);
    assert_int_equal(ps_latent_stats_init(&left, m, &err), PS_OK);
    assert_int_equal(ps_latent_stats_init(&right, m, &err), PS_OK);
    assert_int_equal(ps_latent_stats_init(&empty, m, &err), PS_OK);
    add_in_batches(&whole, a, rows, sizes, 3);
    add_in_batches(&left, a, split, sizes, 3);
    add_in_batches(&right, a + split * m, rows - split, sizes, 3);
    assert_int_equal(ps_latent_stats_merge(&left, &right, &err), PS_OK);
    assert_int_equal(ps_latent_stats_merge(&left, &empty, &err), PS_OK);  /* no-op */
    assert_int_equal(ps_latent_stats_merge(&empty, &whole, &err), PS_OK); /* copy */
    assert_int_equal(left.n, rows);
    ps_latent_stats_result rw = finish_ok(&whole), rl = finish_ok(&left), re = finish_ok(&empty);
    for (int j = 0; j < m; j++) {
        assert_close_rel(rl.mean[j], rw.mean[j]);
        assert_close_rel(rl.std[j], rw.std[j]);
        assert_true(re.mean[j] == rw.mean[j] && re.std[j] == rw.std[j]);
    }
    ps_latent_stats mismatched;
    assert_int_equal(ps_latent_stats_init(&mismatched, m + 1, &err), PS_OK);
    assert_int_equal(ps_latent_stats_merge(&left, &mismatched, &err), PS_ERR);
    assert_contains(err.msg, "71");
    ps_latent_stats_free(&mismatched);
    ps_latent_stats_result_free(&rw);
    ps_latent_stats_result_free(&rl);
    ps_latent_stats_result_free(&re);
    ps_latent_stats_free(&whole);
    ps_latent_stats_free(&left);
    ps_latent_stats_free(&right);
    ps_latent_stats_free(&empty);
    free(a);
}

/* Bit-identical results for 1 and 3 threads (large enough batches to go parallel). */
static void test_stats_independent_of_threads(void **state)
{
    (void)state;
    const int m = 300;
    const int64_t rows = 2000;
    float *a = random_matrix(rows, m, 3);
    const int64_t sizes[] = {700, 555};
    ps_latent_stats s1, s3;
    ps_error err = {{0}};
    int saved = omp_get_max_threads();
    assert_int_equal(ps_latent_stats_init(&s1, m, &err), PS_OK);
    assert_int_equal(ps_latent_stats_init(&s3, m, &err), PS_OK);
    omp_set_num_threads(1);
    add_in_batches(&s1, a, rows, sizes, 2);
    omp_set_num_threads(3);
    add_in_batches(&s3, a, rows, sizes, 2);
    omp_set_num_threads(saved);
    assert_memory_equal(s1.mean, s3.mean, (size_t)m * sizeof(double));
    assert_memory_equal(s1.m2, s3.m2, (size_t)m * sizeof(double));
    ps_latent_stats_free(&s1);
    ps_latent_stats_free(&s3);
    free(a);
}

static void test_stats_errors(void **state)
{
    (void)state;
    ps_latent_stats s;
    ps_latent_stats_result r;
    ps_error err = {{0}};
    assert_int_equal(ps_latent_stats_init(&s, 0, &err), PS_ERR);
    assert_int_equal(ps_latent_stats_init(&s, 3, &err), PS_OK);
    assert_int_equal(ps_latent_stats_finish(&s, &r, &err), PS_ERR);
    assert_contains(err.msg, "no activations");
    float a[6] = {1, 2, 3, 4, NAN, 6};
    assert_int_equal(ps_latent_stats_add(&s, a, -1, &err), PS_ERR);
    assert_int_equal(ps_latent_stats_add(&s, a, 2, &err), PS_OK);
    assert_int_equal(ps_latent_stats_finish(&s, &r, &err), PS_ERR);
    assert_contains(err.msg, "latent 1");
    assert_null(r.mean);
    ps_latent_stats_free(&s);
}

/* ---- Cohen's d ------------------------------------------------------------------------------------ */

/* Hand example, three latents, two users per group (columns are latents):
 *   pop   = [[1, 2, 0], [3, 2, 4]]  -> μ = [2, 2, 2], σ (population) = [1, 0, 2]
 *   unpop = [[-1, 0, 5], [1, 0, 7]] -> μ = [0, 0, 6], σ = [1, 0, 1]
 *   d_0 = (2 − 0) / √((1 + 1)/2) = 2
 *   d_1: denominator √((0 + 0)/2) = 0 -> defined as 0 (although the means differ)
 *   d_2 = (2 − 6) / √((4 + 1)/2) = −4 / √2.5 = −2.5298221281347035 */
static void test_cohens_d_hand_example(void **state)
{
    (void)state;
    const float pop[6] = {1, 2, 0, 3, 2, 4}, unpop[6] = {-1, 0, 5, 1, 0, 7};
    ps_latent_stats sp, su;
    ps_error err = {{0}};
    assert_int_equal(ps_latent_stats_init(&sp, 3, &err), PS_OK);
    assert_int_equal(ps_latent_stats_init(&su, 3, &err), PS_OK);
    /* one row at a time: exercises the merge path */
    assert_int_equal(ps_latent_stats_add(&sp, pop, 1, &err), PS_OK);
    assert_int_equal(ps_latent_stats_add(&sp, pop + 3, 1, &err), PS_OK);
    assert_int_equal(ps_latent_stats_add(&su, unpop, 2, &err), PS_OK);
    ps_latent_stats_result rp = finish_ok(&sp), ru = finish_ok(&su);
    assert_true(rp.mean[0] == 2 && rp.std[0] == 1 && rp.std[1] == 0 && rp.std[2] == 2);
    assert_true(ru.mean[2] == 6 && ru.std[2] == 1);
    double d[3];
    assert_int_equal(ps_cohens_d(&rp, &ru, d, &err), PS_OK);
    assert_close_rel(d[0], 2.0);
    assert_true(d[1] == 0.0);
    assert_close_rel(d[2], -4.0 / sqrt(2.5));
    assert_close_rel(d[2], -2.5298221281347035);

    /* mismatched latent counts */
    ps_latent_stats_result short_r = rp;
    short_r.m = 2;
    assert_int_equal(ps_cohens_d(&short_r, &ru, d, &err), PS_ERR);
    ps_latent_stats_result_free(&rp);
    ps_latent_stats_result_free(&ru);
    ps_latent_stats_free(&sp);
    ps_latent_stats_free(&su);
}

/* ---- firing counts ----------------------------------------------------------------------------------- */

static void test_fire_counts(void **state)
{
    (void)state;
    /* 3 users, k = 2, m = 4; user 2's second slot was selected with activation 0 */
    const int32_t idx[6] = {0, 3, 3, 1, 3, 0};
    const float val[6] = {1.5f, 0.2f, 2.0f, 0.1f, 0.7f, 0.0f};
    int64_t count[4] = {0};
    ps_error err = {{0}};
    assert_int_equal(ps_fire_counts_add(count, 4, idx, NULL, 3, 2, &err), PS_OK);
    assert_true(count[0] == 2 && count[1] == 1 && count[2] == 0 && count[3] == 3);
    memset(count, 0, sizeof count);
    assert_int_equal(ps_fire_counts_add(count, 4, idx, val, 3, 2, &err), PS_OK);
    assert_true(count[0] == 1 && count[1] == 1 && count[2] == 0 && count[3] == 3);
    double rate[4];
    ps_fire_rate(count, 4, 3, rate);
    assert_close_rel(rate[0], 1.0 / 3);
    assert_true(rate[2] == 0 && rate[3] == 1);
    ps_fire_rate(count, 4, 0, rate);
    assert_true(rate[3] == 0);

    const int32_t bad[2] = {1, 4};
    int64_t before[4];
    memcpy(before, count, sizeof count);
    assert_int_equal(ps_fire_counts_add(count, 4, bad, NULL, 1, 2, &err), PS_ERR);
    assert_contains(err.msg, "latent 4");
    assert_memory_equal(count, before, sizeof count); /* nothing half-counted */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users_lengths_and_pools),
        cmocka_unit_test(test_users_draws_are_uniform),
        cmocka_unit_test(test_users_same_seed_same_users),
        cmocka_unit_test(test_users_independent_of_threads),
        cmocka_unit_test(test_users_cap),
        cmocka_unit_test(test_users_cap_is_uniform),
        cmocka_unit_test(test_users_errors),
        cmocka_unit_test(test_stats_match_naive_two_pass),
        cmocka_unit_test(test_stats_merge_equals_single),
        cmocka_unit_test(test_stats_independent_of_threads),
        cmocka_unit_test(test_stats_errors),
        cmocka_unit_test(test_cohens_d_hand_example),
        cmocka_unit_test(test_fire_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
