/* The dataset pipeline of SPEC §1: the reference Last.fm numbers, ML-100K k-core against an
 * independent computation, format equivalence, time order and label rules. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/lines.h"
#include "popsteer/dataset.h"

static ps_dataset load_ok(const char *path, const ps_load_options *opt)
{
    ps_dataset ds;
    ps_error err = {{0}};
    ps_load_options def;
    if (!opt) {
        ps_load_options_init(&def);
        opt = &def;
    }
    int rc = ps_dataset_load(&ds, path, opt, &err);
    if (rc != PS_OK)
        fail_msg("load %s: %s", path, err.msg);
    return ds;
}

static void test_lastfm_reference_split(void **state)
{
    (void)state;
    TU_SKIP_IF_NO_SHARED(path, "data/lastfm/popsteer/lastfm.inter");
    ps_dataset ds = load_ok(path, NULL);
    assert_int_equal(ds.n_users, 1362);
    assert_int_equal(ds.n_items, 2975);
    assert_int_equal(ds.n_inter, 64286);
    assert_int_equal(ds.n_train, 60200);
    assert_int_equal(ds.n_head, 42);
    assert_int_equal(ds.n_mid, 1157);
    assert_int_equal(ds.n_tail, 1776);

    /* The authors' labels, keyed by the internal ids of SPEC §1 step 2. */
    TU_SKIP_IF_NO_SHARED(ref, "reference/lastfm/item_popularity_labels.csv");
    FILE *fp = fopen(ref, "r");
    assert_non_null(fp);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, fp)); /* header */
    int rows = 0, equal = 0;
    while (fgets(line, sizeof line, fp)) {
        int id = atoi(line);
        const char *last = strrchr(line, ',');
        assert_non_null(last);
        int label = atoi(last + 1);
        assert_true(id >= 1 && id <= ds.n_items);
        rows++;
        equal += ds.label[id] == label;
    }
    fclose(fp);
    printf("lastfm labels equal to the reference: %d of %d\n", equal, rows);
    assert_int_equal(rows, 2975);
    assert_true(equal >= 2940);
    ps_dataset_free(&ds);
}

/* ---- ML-100K 5-core, checked against a naive k-core written here ---- */

typedef struct row { int u, i; } row;

static int naive_kcore(row *rows, int n, int k, int *users, int *items)
{
    static int uc[4000], ic[4000];
    for (int changed = 1; changed;) {
        memset(uc, 0, sizeof uc);
        memset(ic, 0, sizeof ic);
        for (int r = 0; r < n; r++)
            if (rows[r].u >= 0)
                uc[rows[r].u]++, ic[rows[r].i]++;
        changed = 0;
        for (int r = 0; r < n; r++)
            if (rows[r].u >= 0 && (uc[rows[r].u] < k || ic[rows[r].i] < k))
                rows[r].u = -1, changed = 1;
    }
    int kept = 0;
    *users = *items = 0;
    for (int x = 0; x < 4000; x++) {
        *users += uc[x] > 0;
        *items += ic[x] > 0;
    }
    for (int r = 0; r < n; r++)
        kept += rows[r].u >= 0;
    return kept;
}

static void test_ml100k_kcore(void **state)
{
    (void)state;
    TU_SKIP_IF_NO_SHARED(path, "data/ml-100k/u.data");
    ps_dataset raw = load_ok(path, NULL);
    assert_int_equal(raw.report.format, PS_FORMAT_UDATA);
    assert_int_equal(raw.n_users, 943);
    assert_int_equal(raw.n_items, 1682);
    assert_int_equal(raw.n_inter, 100000);
    ps_dataset_free(&raw);

    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    row *rows = malloc(100000 * sizeof *rows);
    assert_non_null(rows);
    int n = 0, u, i, r;
    long t;
    while (fscanf(fp, "%d %d %d %ld", &u, &i, &r, &t) == 4)
        rows[n++] = (row){u, i};
    fclose(fp);
    int users, items;
    int kept = naive_kcore(rows, n, 5, &users, &items);
    free(rows);

    ps_load_options opt;
    ps_load_options_init(&opt);
    opt.kcore = 5;
    ps_dataset ds = load_ok(path, &opt);
    printf("ml-100k 5-core: %d users, %d items, %lld interactions (naive: %d, %d, %d)\n", ds.n_users, ds.n_items,
           (long long)ds.n_inter, users, items, kept);
    assert_int_equal(ds.n_users, users);
    assert_int_equal(ds.n_items, items);
    assert_int_equal(ds.n_inter, kept);
    assert_int_equal(ds.n_train, kept - 3 * users);
    ps_dataset_free(&ds);
}

/* ---- the same small log in every format gives the same dataset ---- */

static const int LOG[][3] = { /* user, item, time; not sorted by time, with ties */
    {7, 100, 50}, {7, 101, 10}, {7, 102, 30}, {7, 103, 30}, {7, 100, 70},
    {9, 101, 5},  {9, 104, 6},  {9, 105, 6},  {9, 102, 1},
    {8, 105, 3},  {8, 100, 2},  {8, 106, 9},  {8, 101, 9},  {8, 102, 4}, {8, 103, 11},
};
#define LOG_ROWS ((int)(sizeof LOG / sizeof LOG[0]))

static char *write_log(const char *dir, const char *name, const char *header, const char *fmt_row)
{
    char *path = tu_path(dir, name);
    char buf[8192];
    size_t used = (size_t)snprintf(buf, sizeof buf, "%s", header);
    for (int r = 0; r < LOG_ROWS; r++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, fmt_row, LOG[r][0], LOG[r][1], 4, LOG[r][2]);
    tu_write(path, buf, used);
    return path;
}

static void assert_same_dataset(const ps_dataset *a, const ps_dataset *b)
{
    assert_int_equal(a->n_users, b->n_users);
    assert_int_equal(a->n_items, b->n_items);
    assert_int_equal(a->n_inter, b->n_inter);
    assert_memory_equal(a->user_off, b->user_off, ((size_t)a->n_users + 2) * sizeof *a->user_off);
    assert_memory_equal(a->seq, b->seq, (size_t)a->n_inter * sizeof *a->seq);
    assert_memory_equal(a->label, b->label, ((size_t)a->n_items + 1) * sizeof *a->label);
    assert_int_equal(a->n_train, b->n_train);
    assert_memory_equal(a->train, b->train, (size_t)a->n_train * sizeof *a->train);
    for (int32_t i = 0; i <= a->n_items; i++)
        assert_string_equal(ps_strings_get(&a->item_tokens, i), ps_strings_get(&b->item_tokens, i));
}

static void test_formats_agree(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *atomic = write_log(dir, "a.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n",
                             "%d\t%d\t%d\t%d\n");
    char *dat = write_log(dir, "ratings.dat", "", "%d::%d::%d::%d\n");
    char *udata = write_log(dir, "u.data", "", "%d\t%d\t%d\t%d\n");
    char *csv = write_log(dir, "log.csv", "userId,movieId,rating,timestamp\n", "%d,%d,%d,%d\n");
    ps_dataset ref = load_ok(atomic, NULL);
    assert_int_equal(ref.report.format, PS_FORMAT_ATOMIC);
    const char *others[] = {dat, udata, csv};
    const ps_format formats[] = {PS_FORMAT_DAT, PS_FORMAT_UDATA, PS_FORMAT_CSV};
    for (int k = 0; k < 3; k++) {
        ps_dataset ds = load_ok(others[k], NULL);
        assert_int_equal(ds.report.format, formats[k]);
        assert_same_dataset(&ref, &ds);
        ps_dataset_free(&ds);
    }
    /* user 7 (first seen) = id 1: times 10,30,30,50,70 -> items 101,102,103,100,100 (tie keeps file order) */
    assert_int_equal(ref.n_users, 3);
    assert_string_equal(ps_strings_get(&ref.user_tokens, 1), "7");
    assert_string_equal(ps_strings_get(&ref.user_tokens, 2), "9");
    const char *expect_u1[] = {"101", "102", "103", "100", "100"};
    for (int k = 0; k < 5; k++)
        assert_string_equal(ps_strings_get(&ref.item_tokens, ref.seq[ref.user_off[1] + k]), expect_u1[k]);
    /* item ids by first appearance in the file: 100 -> 1, 101 -> 2, ... */
    assert_string_equal(ps_strings_get(&ref.item_tokens, 1), "100");
    assert_string_equal(ps_strings_get(&ref.item_tokens, 5), "104");
    assert_string_equal(ps_strings_get(&ref.item_tokens, 6), "105");
    assert_int_equal(ref.n_train, 15 - 9);

    /* A sequence file in time order gives the same dataset as the timed log. */
    char *seqf = tu_path(dir, "seq.txt");
    char buf[1024];
    size_t used = 0;
    for (int32_t u = 1; u <= ref.n_users; u++) {
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s", ps_strings_get(&ref.user_tokens, u));
        for (int64_t j = ref.user_off[u]; j < ref.user_off[u + 1]; j++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, " %s", ps_strings_get(&ref.item_tokens, ref.seq[j]));
        used += (size_t)snprintf(buf + used, sizeof buf - used, "\n");
    }
    tu_write(seqf, buf, used);
    ps_dataset sq = load_ok(seqf, NULL);
    assert_int_equal(sq.report.format, PS_FORMAT_SEQUENCE);
    /* ids follow first appearance, which differs in the reordered file: compare through tokens */
    assert_int_equal(sq.n_inter, ref.n_inter);
    for (int64_t j = 0; j < ref.n_inter; j++)
        assert_string_equal(ps_strings_get(&sq.item_tokens, sq.seq[j]), ps_strings_get(&ref.item_tokens, ref.seq[j]));
    ps_dataset_free(&sq);
    ps_dataset_free(&ref);
    free(atomic); free(dat); free(udata); free(csv); free(seqf);
    tu_rmtree(dir);
    free(dir);
}

/* CRLF endings and a UTF-8 BOM are normalised, not errors: same dataset as the clean file. */
static void test_crlf_and_bom(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *clean = tu_path(dir, "clean.inter"), *dirty = tu_path(dir, "dirty.inter");
    tu_write_str(clean, "user_id:token\titem_id:token\ttimestamp:float\n1\t5\t1\n1\t6\t2\n1\t7\t3\n2\t5\t1\n2\t7\t2\n2\t8\t3\n");
    tu_write_str(dirty, "\xEF\xBB\xBFuser_id:token\titem_id:token\ttimestamp:float\r\n1\t5\t1\r\n1\t6\t2\r\n1\t7\t3\r\n"
                        "2\t5\t1\r\n2\t7\t2\r\n2\t8\t3");
    ps_dataset a = load_ok(clean, NULL), b = load_ok(dirty, NULL);
    assert_same_dataset(&a, &b);
    ps_dataset_free(&a);
    ps_dataset_free(&b);
    free(clean); free(dirty);
    tu_rmtree(dir);
    free(dir);
}

/* Float32 rounding of the normalised time decides near-ties (SPEC §1 step 3): two times
 * that differ in double but round to the same float keep file order. */
static void test_float32_time_ties(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "t.inter");
    /* range 0..1e12; 500000000001 and 500000000000 differ by 1e-12 after normalisation: same float */
    tu_write_str(path, "user_id:token\titem_id:token\ttimestamp:float\n"
                       "1\t10\t0\n1\t11\t500000000001\n1\t12\t500000000000\n1\t13\t1000000000000\n");
    ps_dataset ds = load_ok(path, NULL);
    const char *expect[] = {"10", "11", "12", "13"};
    for (int k = 0; k < 4; k++)
        assert_string_equal(ps_strings_get(&ds.item_tokens, ds.seq[k]), expect[k]);
    ps_dataset_free(&ds);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* Labels: head = largest counts while the cumulative share <= 0.2, tail likewise from the
 * bottom, ties broken by item id. */
static void test_labels(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "l.inter");
    /* 10 items; build training targets so that counts are known: each user u has sequence
     * [filler, target, v, t] -> one training target at position 1. */
    char buf[8192];
    size_t used = (size_t)snprintf(buf, sizeof buf, "user_id:token\titem_id:token\n");
    const int counts[10] = {10, 5, 2, 1, 1, 1, 0, 0, 0, 0}; /* items 1..10 as training targets; total 20 */
    int user = 0;
    for (int i = 0; i < 10; i++)
        for (int c = 0; c < counts[i]; c++, user++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "u%d\ti1\nu%d\ti%d\nu%d\ti9\nu%d\ti10\n", user, user,
                                     i + 1, user, user);
    tu_write(path, buf, used);
    ps_dataset ds = load_ok(path, NULL);
    /* internal ids: i1 -> 1 (first row), then i2.. by appearance; i9 -> 2, i10 -> 3 */
    int32_t id[11];
    for (int i = 1; i <= 10; i++) {
        char tok[16];
        snprintf(tok, sizeof tok, "i%d", i);
        id[i] = ps_dataset_find_item(&ds, tok);
        assert_true(id[i] > 0 || i == 7 || i == 8); /* i7, i8 never occur */
        if (id[i])
            assert_int_equal(ds.train_count[id[i]], counts[i - 1]);
    }
    assert_int_equal(ds.n_items, 8);
    /* head: cumulative shares 10/20 = 0.5 > 0.2 -> no head at 0.2; at 0.5 item i1 is head */
    assert_int_equal(ds.n_head, 0);
    ps_error err;
    assert_int_equal(ps_dataset_label(&ds, 0.5, 0.2, &err), PS_OK);
    assert_int_equal(ds.label[id[1]], 1);
    assert_int_equal(ds.n_head, 1);
    /* tail (ascending, ties by id): the zero-count fillers i9, i10, then the count-1 items
     * i4, i5, i6 in id order: cumulative 3/20 <= 0.2, all tail; adding i3 gives 5/20 > 0.2 */
    assert_int_equal(ds.label[id[9]], -1);
    assert_int_equal(ds.label[id[10]], -1);
    assert_int_equal(ds.label[id[4]], -1);
    assert_int_equal(ds.label[id[5]], -1);
    assert_int_equal(ds.label[id[6]], -1);
    assert_int_equal(ds.label[id[3]], 0); /* 3/20 + 2/20 = 0.25 > 0.2 */
    assert_int_equal(ds.label[id[2]], 0);
    ps_dataset_free(&ds);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_prefix_cap(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "long.txt");
    char buf[4096];
    size_t used = (size_t)snprintf(buf, sizeof buf, "u");
    for (int i = 1; i <= 60; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, " %d", i);
    used += (size_t)snprintf(buf + used, sizeof buf - used, "\n");
    tu_write(path, buf, used);
    ps_dataset ds = load_ok(path, NULL);
    assert_int_equal(ds.n_train, 57);
    int len;
    const int32_t *p = ps_sample_prefix(&ds, ds.test[0], &len);
    assert_int_equal(len, 50);
    assert_int_equal(p[49], ds.seq[58]);
    assert_int_equal(ps_sample_target(&ds, ds.test[0]), ds.seq[59]);
    p = ps_sample_prefix(&ds, ds.train[0], &len);
    assert_int_equal(len, 1);
    ps_dataset_free(&ds);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ps_field_double's integer fast path gives strtod's double, and everything else still goes to
 * strtod (decimals, signs, exponents, more than 15 digits) or is refused. */
static void test_field_double(void **state)
{
    (void)state;
    static const char *const ok[] = {"0", "7", "0005", "881250949", "1026882498", "123456789012345",
                                     "1234567890123456789", "99999999999999999", "4.5", "-3", "+2", "1e3",
                                     " 881250949\t", "3.0"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double got = -1;
        ps_field f = {ok[i], strlen(ok[i])};
        assert_int_equal(ps_field_double(f, &got), PS_OK);
        if (got != strtod(ok[i], NULL))
            fail_msg("'%s': %.17g, strtod says %.17g", ok[i], got, strtod(ok[i], NULL));
    }
    static const char *const bad[] = {"", " ", "12a", "a12", "1 2", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double got;
        ps_field f = {bad[i], strlen(bad[i])};
        if (ps_field_double(f, &got) != PS_ERR)
            fail_msg("'%s' was accepted as %g", bad[i], got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_double),
        cmocka_unit_test(test_lastfm_reference_split),
        cmocka_unit_test(test_ml100k_kcore),
        cmocka_unit_test(test_formats_agree),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_float32_time_ties),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_prefix_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
