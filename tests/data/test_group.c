/* Item groups for concept probes (group.h): every spec on a hand-made log with known first-seen
 * times, genres and filtered items; the error classes; the share of list slots; and the probe's
 * synthetic users drawn from a group's two sides. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "popsteer/dataset.h"
#include "popsteer/group.h"
#include "popsteer/probe.h"
#include "popsteer/synth.h"

static char *g_dir;

/* u.data-style: items 10, 20, 30, 40 first seen at times 100, 101, 102, 103 (normalised 0, 1/3,
 * 2/3, 1); item 99 only gets ratings of 1, so the threshold 3 removes it from the dataset while
 * it stays a raw item of the log. */
static const char LOG[] = "1\t10\t5\t100\n1\t20\t4\t101\n1\t30\t5\t102\n1\t40\t4\t103\n1\t99\t1\t104\n"
                          "2\t10\t5\t100\n2\t20\t4\t101\n2\t30\t5\t102\n2\t99\t1\t103\n"
                          "3\t30\t5\t102\n3\t20\t4\t102\n3\t10\t5\t103\n";

/* u.item flags: unknown, Action, Drama. Action = {10, 30}, Drama = {30, 40}. */
static const char UITEM[] = "10|Ten (1995)|01-Jan-1995||http://x|0|1|0\n20|Twenty (1995)|01-Jan-1995||http://x|0|0|0\n"
                            "30|Thirty (1995)|01-Jan-1995||http://x|0|1|1\n40|Forty (1995)|01-Jan-1995||http://x|0|0|1\n"
                            "99|Gone (1995)|01-Jan-1995||http://x|1|1|1\n";
static const char UGENRE[] = "unknown|0\nAction|1\nDrama|2\n\n";

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    return g_dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

static void load_log(ps_dataset *ds)
{
    char *path = tu_path(g_dir, "log.data");
    tu_write_str(path, LOG);
    ps_load_options opt;
    ps_load_options_init(&opt);
    opt.format = PS_FORMAT_UDATA;
    opt.has_rating_threshold = 1;
    opt.rating_threshold = 3;
    ps_error err;
    if (ps_dataset_load(ds, path, &opt, &err) != PS_OK)
        fail_msg("%s", err.msg);
    free(path);
    assert_int_equal(ds->n_items, 4);
}

static char *write_in_dir(const char *name, const char *text)
{
    char *path = tu_path(g_dir, name);
    tu_write_str(path, text);
    return path;
}

/* The raw tokens of the concept side, in id order, e.g. "10,30". */
static void concept_tokens(const ps_dataset *ds, const ps_item_group *g, char *buf, size_t size)
{
    buf[0] = 0;
    for (int32_t i = 1; i <= ds->n_items; i++)
        if (g->side[i] == PS_GROUP_CONCEPT) {
            size_t n = strlen(buf);
            snprintf(buf + n, size - n, "%s%s", n ? "," : "", ps_strings_get(&ds->item_tokens, i));
        }
}

static void expect_group(const ps_dataset *ds, const char *spec, const char *versus, const char *items,
                         const char *want_concept, int want_contrast)
{
    ps_item_group g;
    ps_error err;
    if (ps_item_group_make(&g, ds, spec, versus, items, &err) != PS_OK)
        fail_msg("%s: %s", spec, err.msg);
    char got[256];
    concept_tokens(ds, &g, got, sizeof got);
    printf("%s versus %s: {%s}, %d in the contrast set\n", spec, versus ? versus : "(rest)", got, g.n_contrast);
    assert_string_equal(got, want_concept);
    assert_int_equal(g.n_contrast, want_contrast);
    assert_int_equal(g.side[0], 0);
    ps_item_group_free(&g);
}

static void expect_error(const ps_dataset *ds, const char *spec, const char *versus, const char *items,
                         const char *want)
{
    ps_item_group g;
    ps_error err;
    assert_int_equal(ps_item_group_make(&g, ds, spec, versus, items, &err), PS_ERR);
    printf("%s: %s\n", spec, err.msg);
    if (!strstr(err.msg, want))
        fail_msg("'%s' does not say '%s'", err.msg, want);
    assert_null(g.side);
}

static void test_first_seen_times(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    const char *tok[] = {"10", "20", "30", "40"};
    const float want[] = {0.0f, 1.0f / 3, 2.0f / 3, 1.0f};
    for (int i = 0; i < 4; i++)
        tu_assert_near(ds.first_seen[ps_dataset_find_item(&ds, tok[i])], want[i], 1e-6);
    ps_dataset_free(&ds);
}

static void test_specs(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    char *uitem = write_in_dir("u.item", UITEM);
    char *ugenre = write_in_dir("u.genre", UGENRE);
    char *ids = write_in_dir("ids.txt", "# the concept\n20\t(a title)\n99\n\n40\n");
    expect_group(&ds, "genre:Action", NULL, uitem, "10,30", 2);
    expect_group(&ds, "genre:drama", NULL, uitem, "30,40", 2); /* names match without regard to case */
    expect_group(&ds, "not:genre:Action", "genre:Action", uitem, "20,40", 2);
    expect_group(&ds, "new:0.5", NULL, NULL, "30,40", 2);
    expect_group(&ds, "new:0.1", NULL, NULL, "40", 3);
    expect_group(&ds, ids, NULL, NULL, "20,40", 2);
    char spec[4200];
    snprintf(spec, sizeof spec, "file:%s", ids);
    expect_group(&ds, spec, "genre:Action", uitem, "20,40", 2);
    free(uitem);
    free(ugenre);
    free(ids);
    ps_dataset_free(&ds);
}

static void test_errors(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    char *sub = tu_path(g_dir, "nogenre");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *lone = tu_path(sub, "u.item"); /* no u.genre beside it */
    tu_write_str(lone, UITEM);
    char *uitem = write_in_dir("u.item", UITEM);
    char *ugenre = write_in_dir("u.genre", UGENRE);
    char *ids = write_in_dir("bad-ids.txt", "20\n77\n");
    char *gone = write_in_dir("gone-ids.txt", "99\n");
    expect_error(&ds, "genre:Action", NULL, NULL, "needs the MovieLens u.item file");
    expect_error(&ds, "genre:Action", NULL, lone, "u.genre");
    expect_error(&ds, "genre:Western", NULL, uitem, "no such genre");
    expect_error(&ds, "genre:Action", NULL, ugenre, "u.genre:1: expected at least 6 '|'-separated fields");
    char *table = write_in_dir("table.txt", "10 1 0\n20 0 1\n");
    expect_error(&ds, "genre:Action", NULL, table, "not a MovieLens u.item file");
    free(table);
    expect_error(&ds, "genre:Action", "genre:Drama", uitem, "share 1 items (e.g. '30')");
    expect_error(&ds, "new:0.5", "genre:Drama", uitem, "share 2 items");
    expect_error(&ds, "new:1.5", NULL, NULL, "between 0 and 1");
    expect_error(&ds, "new:x", NULL, NULL, "between 0 and 1");
    expect_error(&ds, "", NULL, NULL, "an empty item group");
    expect_error(&ds, ids, NULL, NULL, "bad-ids.txt:2: '77' is not an item of the log");
    expect_error(&ds, gone, NULL, NULL, "has no item of the dataset");
    expect_error(&ds, "genre:Action", "genre:unknown", uitem, "contrast set genre:unknown has no item");
    expect_error(&ds, "no-such-file.txt", NULL, NULL, "no-such-file.txt");
    free(sub);
    free(lone);
    free(uitem);
    free(ugenre);
    free(ids);
    free(gone);
    ps_dataset_free(&ds);
}

static void test_share(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    ps_item_group g;
    ps_error err;
    assert_int_equal(ps_item_group_make(&g, &ds, "new:0.5", NULL, NULL, &err), PS_OK);
    int64_t c[5] = {0};
    c[ps_dataset_find_item(&ds, "10")] = 5;
    c[ps_dataset_find_item(&ds, "20")] = 1;
    c[ps_dataset_find_item(&ds, "30")] = 1;
    c[ps_dataset_find_item(&ds, "40")] = 3;
    tu_assert_near(ps_item_group_share(&g, c), 0.4, 1e-12);
    memset(c, 0, sizeof c);
    tu_assert_near(ps_item_group_share(&g, c), 0.0, 0);
    ps_item_group_free(&g);
    ps_dataset_free(&ds);
}

/* Synthetic users from a group: the -1 rows hold only concept items, the +1 rows only contrast
 * items; with the popularity labels as sides it is the paper's probe, item for item. */
static void test_probe_users_from_sides(void **state)
{
    (void)state;
    char *path = tu_path(g_dir, "synth.inter");
    ps_synth_options so;
    ps_synth_options_init(&so);
    so.n_users = 120;
    so.n_items = 90;
    so.n_interactions = 2400;
    ps_error err;
    ps_dataset ds;
    ps_load_options lo;
    ps_load_options_init(&lo);
    if (ps_synth_write(&so, path, &err) != PS_OK || ps_dataset_load(&ds, path, &lo, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_probe_users a, b;
    assert_int_equal(ps_probe_users_make(&ds, 300, 5, &a, &err), PS_OK);
    assert_int_equal(ps_probe_users_make_sides(&ds, ds.label, 300, 0, 5, &b, &err), PS_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.seq, b.seq, (size_t)a.n * (size_t)a.max_len * sizeof *a.seq);
    ps_probe_users_free(&b);
    /* min_len: short rows lengthened, long rows unchanged, the same streams (so the lengthened
     * rows extend the originals) */
    assert_int_equal(ps_probe_users_make_sides(&ds, ds.label, 300, 12, 5, &b, &err), PS_OK);
    for (int64_t r = 0; r < b.n; r++) {
        int want = a.len[r] < 12 ? (12 < a.max_len ? 12 : a.max_len) : a.len[r];
        assert_int_equal(b.len[r], want);
        assert_memory_equal(ps_probe_users_row(&a, r), ps_probe_users_row(&b, r), (size_t)a.len[r] * sizeof(int32_t));
    }
    ps_probe_users_free(&b);
    assert_int_equal(ps_probe_users_make_sides(&ds, ds.label, 300, -1, 5, &b, &err), PS_ERR);
    int8_t *side = calloc((size_t)ds.n_items + 1, 1);
    assert_non_null(side);
    for (int32_t i = 1; i <= ds.n_items; i++) /* odd ids the concept, ids divisible by 4 the contrast */
        side[i] = (int8_t)(i % 2 ? PS_GROUP_CONCEPT : i % 4 == 0 ? PS_GROUP_CONTRAST : 0);
    assert_int_equal(ps_probe_users_make_sides(&ds, side, 300, 0, 5, &b, &err), PS_OK);
    for (int64_t r = 0; r < b.n; r++) {
        const int32_t *row = ps_probe_users_row(&b, r);
        for (int p = 0; p < b.len[r]; p++)
            assert_int_equal(side[row[p]], b.label[r]);
    }
    ps_probe_users_free(&a);
    ps_probe_users_free(&b);
    memset(side + 1, PS_GROUP_CONTRAST, (size_t)ds.n_items);
    assert_int_equal(ps_probe_users_make_sides(&ds, side, 300, 0, 5, &b, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "items on both sides"));
    free(side);
    ps_dataset_free(&ds);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_seen_times),
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_probe_users_from_sides),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
