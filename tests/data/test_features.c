/* Item feature files for ilad_features@k (features.h): both formats, header detection, rows
 * for items that filtering removed, every error class with its line number, ML-100K u.item
 * against u.data when ../shared has it, and `popsteer eval` reporting ilad@10 and
 * ilad_features@10. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/dataset.h"
#include "popsteer/features.h"

static char *g_dir;

/* A u.data-style log: users 1..3 rate items 10, 20, 30 (and user 1 item 40) with 4 or 5;
 * item 99 only ever gets a 1, so the rating threshold 3 removes it from the dataset while it
 * stays a raw item of the log. */
static const char LOG[] = "1\t10\t5\t100\n1\t20\t4\t101\n1\t30\t5\t102\n1\t40\t4\t103\n1\t99\t1\t104\n"
                          "2\t10\t5\t100\n2\t20\t4\t101\n2\t30\t5\t102\n2\t99\t1\t103\n"
                          "3\t30\t5\t100\n3\t20\t4\t101\n3\t10\t5\t102\n";

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
    assert_int_equal(ps_dataset_find_item(ds, "99"), 0);
}

/* Loads text as a feature file: PS_OK or the error message in err. */
static int load_text(const ps_dataset *ds, const char *name, const char *text, ps_item_features *f,
                     ps_error *err)
{
    char *path = tu_path(g_dir, name);
    tu_write_str(path, text);
    int rc = ps_item_features_load(f, path, ds, err);
    free(path);
    return rc;
}

static const float *row(const ps_item_features *f, const ps_dataset *ds, const char *token)
{
    int32_t id = ps_dataset_find_item(ds, token);
    assert_true(id > 0);
    return f->v + (size_t)id * (size_t)f->dim;
}

/* ------------------------------------------------------------------ formats */

static void test_dataset_remembers_dropped_items(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    assert_int_equal(ds.dropped_item_tokens.n, 2); /* "" and "99" */
    assert_string_equal(ps_strings_get(&ds.dropped_item_tokens, 1), "99");
    ps_dataset_free(&ds);
}

static void test_generic_with_header(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    ps_item_features f;
    ps_error err;
    /* a header, a comment, blanks/tabs/commas, the filtered item 99; item 40 has no row */
    const char *text = "item_id  drama comedy\n# a comment\n10 1 0\n20,0, 1\n30\t0.5\t-2e-1\n99 1 1\n";
    if (load_text(&ds, "gen.txt", text, &f, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(f.format, PS_FEATURES_GENERIC);
    assert_int_equal(f.dim, 2);
    assert_int_equal(f.rows, 4);
    assert_int_equal(f.items_with_row, 3);
    assert_int_equal(f.rows_filtered, 1);
    assert_true(row(&f, &ds, "10")[0] == 1.0f && row(&f, &ds, "10")[1] == 0.0f);
    assert_true(row(&f, &ds, "20")[0] == 0.0f && row(&f, &ds, "20")[1] == 1.0f);
    assert_true(row(&f, &ds, "30")[0] == 0.5f && row(&f, &ds, "30")[1] == -0.2f);
    assert_true(row(&f, &ds, "40")[0] == 0.0f && row(&f, &ds, "40")[1] == 0.0f); /* no row: zero */
    assert_true(f.v[0] == 0.0f && f.v[1] == 0.0f);                                 /* padding */
    ps_item_features_free(&f);
    ps_item_features_free(&f); /* idempotent */
    ps_dataset_free(&ds);
}

static void test_generic_without_header(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    ps_item_features f;
    ps_error err;
    if (load_text(&ds, "nohdr.txt", "40 3\n10 4\n", &f, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(f.dim, 1);
    assert_int_equal(f.items_with_row, 2);
    assert_true(row(&f, &ds, "40")[0] == 3.0f);
    ps_item_features_free(&f);
    ps_dataset_free(&ds);
}

static void test_uitem(void **state)
{
    (void)state;
    ps_dataset ds;
    load_log(&ds);
    ps_item_features f;
    ps_error err;
    const char *text = "10|Toy Story (1995)|01-Jan-1995||http://x?a|0|0|1|1\n"
                       "20|unknown||||1|0|0|0\n"
                       "99|Filtered (1990)|01-Jan-1990||http://y|0|1|0|0\n"
                       "30|A, B (1996)|01-Jan-1996||http://z|0|0|0|1\n";
    if (load_text(&ds, "u.item", text, &f, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(f.format, PS_FEATURES_UITEM);
    assert_int_equal(f.dim, 4);
    assert_int_equal(f.rows, 4);
    assert_int_equal(f.items_with_row, 3);
    assert_int_equal(f.rows_filtered, 1);
    const float *v = row(&f, &ds, "10");
    assert_true(v[0] == 0 && v[1] == 0 && v[2] == 1 && v[3] == 1);
    v = row(&f, &ds, "20");
    assert_true(v[0] == 1 && v[1] == 0 && v[2] == 0 && v[3] == 0);
    ps_item_features_free(&f);
    ps_dataset_free(&ds);
}

/* ------------------------------------------------------------------ errors, each with its line */

static void expect_error(const char *name, const char *text, const char *want)
{
    ps_dataset ds;
    load_log(&ds);
    ps_item_features f;
    ps_error err;
    if (load_text(&ds, name, text, &f, &err) == PS_OK)
        fail_msg("%s loaded; expected an error containing \"%s\"", name, want);
    char expect[512];
    snprintf(expect, sizeof expect, "%s:%s", name, want);
    if (!strstr(err.msg, expect))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, expect);
    assert_null(f.v); /* nothing left behind */
    ps_dataset_free(&ds);
}

static void test_error_unknown_item(void **state)
{
    (void)state;
    expect_error("unknown.txt", "10 1 0\n# comment\n77 1 1\n", "3: item '77' is not in the interaction log");
    /* line 1 with numbers is data, not a header, so an unknown id there is an error too */
    expect_error("unknown1.txt", "77 1 1\n10 1 0\n", "1: item '77' is not in the interaction log");
    /* the padding token is not an item */
    expect_error("pad.txt", "10 1\n[PAD] 1\n", "2: item '[PAD]' is not in the interaction log");
    expect_error("unknown.item", "10|T|d||u|1|0\n5|T|d||u|0|1\n", "2: item '5' is not in the interaction log");
}

static void test_error_width(void **state)
{
    (void)state;
    expect_error("width.txt", "10 1 0\n20 1\n", "2: 1 values, but the first row (line 1) has 2");
    expect_error("width2.txt", "hdr a b\n10 1 0\n\n20 1 0 1\n", "4: 3 values, but the first row (line 2) has 2");
    expect_error("width.item", "10|T|d||u|1|0\n20|T|d||u|1|0|1\n", "2: 3 values, but the first row (line 1) has 2");
    expect_error("short.item", "10|T|d\n", "1: expected at least 6 '|'-separated fields");
    expect_error("noval.txt", "10\n", "1: an item id but no values");
}

static void test_error_values(void **state)
{
    (void)state;
    expect_error("nan.txt", "10 1 0\n20 nan 1\n", "2: value 1 ('nan') is not a finite number");
    expect_error("inf.txt", "10 1 0\n20 1 -inf\n", "2: value 2 ('-inf') is not a finite number");
    expect_error("word.txt", "10 1 0\n20 1 x2\n", "2: value 2 ('x2') is not a finite number");
    expect_error("big.txt", "10 1 1e39\n", "1: value 2 ('1e39') is not a finite number"); /* beyond float */
    expect_error("empty.csv", "10,1,0\n20,,1\n", "2: value 1 ('') is not a finite number");
    /* a known id on line 1 makes it a data row: the bad value is reported, not taken for a header */
    expect_error("first.txt", "10 drama 0\n", "1: value 1 ('drama') is not a finite number");
    expect_error("nan.item", "10|T|d||u|1|0\n20|T|d||u|1|NaN\n", "2: value 2 ('NaN') is not a finite number");
}

static void test_error_repeated(void **state)
{
    (void)state;
    expect_error("rep.txt", "10 1 0\n# c\n10 0 1\n", "3: item '10' is repeated (first on line 1)");
    /* repeats of a filtered item are just as wrong */
    expect_error("rep99.txt", "99 1\n10 1\n99 1\n", "3: item '99' is repeated (first on line 1)");
}

static void test_error_empty(void **state)
{
    (void)state;
    const char *want = " no item rows";
    expect_error("empty.txt", "", want);
    expect_error("comments.txt", "# only\n#comments\n\n", want);
    expect_error("header.txt", "item a b\n", want);
}

/* ------------------------------------------------------------------ ML-100K */

static void test_ml100k_uitem(void **state)
{
    (void)state;
    TU_SKIP_IF_NO_SHARED(udata, "data/ml-100k/u.data");
    char udata_copy[4096];
    snprintf(udata_copy, sizeof udata_copy, "%s", udata);
    TU_SKIP_IF_NO_SHARED(uitem, "data/ml-100k/u.item");
    ps_load_options opt;
    ps_load_options_init(&opt);
    opt.kcore = 5;
    ps_dataset ds;
    ps_error err;
    if (ps_dataset_load(&ds, udata_copy, &opt, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_item_features f;
    if (ps_item_features_load(&f, uitem, &ds, &err) != PS_OK)
        fail_msg("%s", err.msg);
    /* 1,682 movies, all rated in u.data; the 5-core keeps 1,349 and drops 333 */
    assert_int_equal(f.format, PS_FEATURES_UITEM);
    assert_int_equal(f.dim, 19);
    assert_int_equal(f.rows, 1682);
    assert_int_equal(f.items_with_row, ds.n_items);
    assert_int_equal(f.rows_filtered + f.items_with_row, 1682);
    assert_int_equal(ds.dropped_item_tokens.n - 1, f.rows_filtered);
    /* Toy Story: Animation, Children's, Comedy = flags 3, 4, 5 of u.genre's 0..18 */
    const float *toy = row(&f, &ds, "1");
    for (int j = 0; j < 19; j++)
        assert_true(toy[j] == (j >= 3 && j <= 5 ? 1.0f : 0.0f));
    printf("ML-100K 5-core: %d items with genre flags, %lld u.item rows for filtered items\n",
           (int)f.items_with_row, (long long)f.rows_filtered);
    ps_item_features_free(&f);
    ps_dataset_free(&ds);
}

/* ------------------------------------------------------------------ the CLI */

static char *g_data, *g_model;

static int cli_setup(void **state)
{
    (void)state;
    g_data = tu_path(g_dir, "small.inter");
    g_model = tu_path(g_dir, "model.safetensors");
    return tu_synth_small(g_data) == 0 && tu_train_small(g_data, g_model, 1) == 0 ? 0 : -1;
}

static int cli_teardown(void **state)
{
    (void)state;
    free(g_data);
    free(g_model);
    return 0;
}

/* Feature rows for the items of the synthetic data but the first 'missing' ones, by raw token,
 * values from a small hash; tokens[0], tokens[1] get the tokens of items 1 and 2. */
static char *synth_features(int missing, char tokens[2][64])
{
    ps_load_options opt;
    ps_load_options_init(&opt);
    ps_dataset ds;
    ps_error err;
    if (ps_dataset_load(&ds, g_data, &opt, &err) != PS_OK)
        fail_msg("%s", err.msg);
    char *path = tu_path(g_dir, "synth_features.tsv"), *text = malloc((size_t)ds.n_items * 96 + 64);
    assert_non_null(text);
    size_t used = (size_t)sprintf(text, "item\tf1\tf2\tf3\n");
    for (int i = 1 + missing; i <= ds.n_items; i++)
        used += (size_t)sprintf(text + used, "%s\t%d\t%d\t%d\n", ps_strings_get(&ds.item_tokens, i), (i * 7) % 3,
                                (i * 5) % 4, i % 2);
    for (int i = 0; i < 2; i++)
        snprintf(tokens[i], 64, "%s", ps_strings_get(&ds.item_tokens, i + 1));
    tu_write_str(path, text);
    free(text);
    assert_int_equal(ds.n_items, 150);
    ps_dataset_free(&ds);
    return path;
}

static void test_cli_eval_json_has_ilad(void **state)
{
    (void)state;
    char args[8192], *out, *err;
    snprintf(args, sizeof args, "eval --json --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    double ilad = tu_json_number(out, "ilad@10");
    assert_true(ilad > 0 && ilad <= 2);
    assert_null(strstr(out, "ilad_features"));
    free(out);
    /* re-ranked lists get it too, and it follows --k */
    snprintf(args, sizeof args, "eval --json --k 5 --rerank random --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    ilad = tu_json_number(out, "ilad@5");
    assert_true(ilad > 0 && ilad <= 2);
    free(out);
    /* with features: ilad_features@10, and a note on the items without a row */
    char tokens[2][64];
    char *feat = synth_features(4, tokens);
    snprintf(args, sizeof args, "eval --json --data '%s' --model '%s' --item-features '%s'", g_data, g_model, feat);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    double f = tu_json_number(out, "ilad_features@10");
    assert_true(f > 0 && f <= 2);
    assert_true(tu_json_number(out, "ilad@10") > 0);
    if (!strstr(err, "4 of 150 items have no row"))
        fail_msg("no note on the missing rows in: %s", err);
    free(out);
    free(err);
    free(feat);
}

static void test_cli_eval_bad_features(void **state)
{
    (void)state;
    char tokens[2][64], text[512];
    free(synth_features(0, tokens));
    char *bad = tu_path(g_dir, "bad_features.txt"), args[8192], *err;
    snprintf(text, sizeof text, "%s 0 1\n%s 0 nope\n", tokens[0], tokens[1]);
    tu_write_str(bad, text);
    snprintf(args, sizeof args, "eval --data '%s' --model '%s' --item-features '%s'", g_data, g_model, bad);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    if (!strstr(err, "bad_features.txt:2: value 2 ('nope') is not a finite number"))
        fail_msg("unexpected error: %s", err);
    free(err);
    free(bad);
}

static void test_cli_eval_text_has_ilad(void **state)
{
    (void)state;
    char args[8192], *out;
    snprintf(args, sizeof args, "eval --quiet --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    assert_non_null(strstr(out, "ILAD@10"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_remembers_dropped_items),
        cmocka_unit_test(test_generic_with_header),
        cmocka_unit_test(test_generic_without_header),
        cmocka_unit_test(test_uitem),
        cmocka_unit_test(test_error_unknown_item),
        cmocka_unit_test(test_error_width),
        cmocka_unit_test(test_error_values),
        cmocka_unit_test(test_error_repeated),
        cmocka_unit_test(test_error_empty),
        cmocka_unit_test(test_ml100k_uitem),
    };
    const struct CMUnitTest cli_tests[] = {
        cmocka_unit_test(test_cli_eval_json_has_ilad),
        cmocka_unit_test(test_cli_eval_bad_features),
        cmocka_unit_test(test_cli_eval_text_has_ilad),
    };
    int failed = 0;
    if (setup(NULL) != 0)
        return 1;
    failed |= cmocka_run_group_tests_name("features", tests, NULL, NULL);
    failed |= cmocka_run_group_tests_name("eval-cli", cli_tests, cli_setup, cli_teardown);
    teardown(NULL);
    return failed ? 1 : 0;
}
