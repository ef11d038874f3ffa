/* The per-latent CSV table (src/steer/latents_csv.c): round trip, quoting of top items, the
 * reader's validation (row count, NaN/Inf, header, latent order, CRLF, BOM, missing file),
 * atomic writes that leave nothing behind on failure, and the summary. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"
#include "popsteer/probe.h"

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* What a value is after a round trip through "%.9g". */
static double via_9g(double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", v);
    return strtod(buf, NULL);
}

/* A 5-latent table with awkward numbers: negative zero, tiny and large magnitudes, values
 * that need all 9 digits. */
static ps_latent_table sample_table(void)
{
    ps_latent_table t;
    ps_error err = {{0}};
    assert_int_equal(ps_latent_table_alloc(&t, 5, &err), PS_OK);
    const double d[5] = {0.123456789012, -2.5298221281347035, 0.0, -0.0, 1e-30};
    for (int j = 0; j < 5; j++) {
        t.d[j] = d[j];
        t.mean_pop[j] = 1000.0 / 3.0 * (j + 1);
        t.std_pop[j] = 0.1 * j;
        t.mean_unpop[j] = -1e20 * j;
        t.std_unpop[j] = 3.25e-7;
        t.fire_rate[j] = j / 4.0;
    }
    return t;
}

static char *read_text(const char *path)
{
    char *data;
    size_t len;
    ps_error err = {{0}};
    if (ps_read_file(path, 0, &data, &len, &err) != PS_OK)
        fail_msg("%s", err.msg);
    return data;
}

/* Item tokens as the dataset stores them: pool + offsets, index 0 = "[PAD]". */
static const char TOKEN_POOL[] = "[PAD]\0i1\0i2\0i3";
static int64_t TOKEN_OFF[4] = {0, 6, 9, 12};

static void test_round_trip_and_top_items(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "latents.csv");
    ps_latent_table t = sample_table();
    ps_strings tokens = {(char *)TOKEN_POOL, TOKEN_OFF, 4};
    char t1[] = "Say \"Hi\", now", t3[] = "two\nlines";
    char *titles[4] = {NULL, t1, NULL, t3};
    /* 5 latents x 12 items (only 10 are written); 0 ends a list early */
    int32_t top[60] = {0};
    top[0] = 1, top[1] = 2, top[2] = 3;           /* latent 0: three items */
    for (int s = 0; s < 12; s++)
        top[12 + s] = 1 + s % 3;                  /* latent 1: twelve items, 10 written */
    top[24] = 2, top[25] = 0, top[26] = 3;        /* latent 2: stops at the 0 */
    ps_latent_items items = {top, 12, &tokens, titles};
    ps_error err = {{0}};
    assert_int_equal(ps_latents_csv_write(path, &t, &items, &err), PS_OK);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary file left */

    char *text = read_text(path);
    assert_true(strncmp(text, PS_LATENTS_CSV_HEADER "\n0,", strlen(PS_LATENTS_CSV_HEADER) + 3) == 0);
    assert_non_null(strstr(text, ",\"i1:Say \"\"Hi\"\", now|i2|i3:two lines\"\n"));
    assert_non_null(strstr(text, ",\"i1:Say \"\"Hi\"\", now|i2|i3:two lines|i1:Say \"\"Hi\"\", now|i2|i3:two lines|"
                                 "i1:Say \"\"Hi\"\", now|i2|i3:two lines|i1:Say \"\"Hi\"\", now\"\n"));
    assert_non_null(strstr(text, ",\"i2\"\n"));
    assert_non_null(strstr(text, ",\"\"\n")); /* latents 3 and 4: no items */
    free(text);

    ps_latent_table back;
    assert_int_equal(ps_latents_csv_read(path, 5, &back, &err), PS_OK);
    assert_int_equal(back.m, 5);
    for (int j = 0; j < 5; j++) {
        assert_true(back.d[j] == via_9g(t.d[j]));
        assert_true(back.mean_pop[j] == via_9g(t.mean_pop[j]));
        assert_true(back.std_pop[j] == via_9g(t.std_pop[j]));
        assert_true(back.mean_unpop[j] == via_9g(t.mean_unpop[j]));
        assert_true(back.std_unpop[j] == via_9g(t.std_unpop[j]));
        assert_true(back.fire_rate[j] == via_9g(t.fire_rate[j]));
    }
    ps_latent_table_free(&back);

    /* any row count is accepted when none is expected; no items gives empty quotes */
    assert_int_equal(ps_latents_csv_write(path, &t, NULL, &err), PS_OK);
    assert_int_equal(ps_latents_csv_read(path, 0, &back, &err), PS_OK);
    assert_int_equal(back.m, 5);
    ps_latent_table_free(&back);

    ps_latent_table_free(&t);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* Writes text to dir/name and expects the reader to fail with a message naming the file and
 * containing both words. */
static void expect_read_error(const char *dir, const char *text, int expected_m, const char *w1, const char *w2)
{
    char *path = tu_path(dir, "bad.csv");
    tu_write_str(path, text);
    ps_latent_table t;
    ps_error err = {{0}};
    assert_int_equal(ps_latents_csv_read(path, expected_m, &t, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, w1);
    if (w2)
        assert_contains(err.msg, w2);
    assert_null(t.d);
    ps_latent_table_free(&t); /* safe on a failed read */
    free(path);
}

#define HDR PS_LATENTS_CSV_HEADER "\n"

static void test_wrong_row_count(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    /* the message of the brief: 4000 rows for a 4096-latent SAE */
    size_t cap = 4000 * 40 + 200, used = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    used += (size_t)snprintf(text, cap, HDR);
    for (int j = 0; j < 4000; j++)
        used += (size_t)snprintf(text + used, cap - used, "%d,0.5,1,1,0,1,0.01,\"\"\n", j);
    expect_read_error(dir, text, 4096, "has 4000 rows but the SAE has 4096 latents", NULL);
    free(text);
    expect_read_error(dir, HDR "0,1,1,1,1,1,0,\"\"\n1,1,1,1,1,1,0,\"\"\n", 1, "has 2 rows", "1 latents");
    expect_read_error(dir, HDR, 0, "no rows", NULL);
    expect_read_error(dir, "", 3, "empty", NULL);
    tu_rmtree(dir);
    free(dir);
}

static void test_non_finite_and_bad_numbers(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    expect_read_error(dir, HDR "0,1,1,1,1,1,0,\"\"\n1,nan,1,1,1,1,0,\"\"\n", 2, ":3:", "cohens_d is nan");
    expect_read_error(dir, HDR "0,1,1,-inf,1,1,0,\"\"\n", 1, ":2:", "std_pop is -inf");
    expect_read_error(dir, HDR "0,1,1,1,NaN,1,0,\"\"\n", 1, ":2:", "mean_unpop is NaN");
    expect_read_error(dir, HDR "0,1,abc,1,1,1,0,\"\"\n", 1, ":2:", "mean_pop 'abc' is not a number");
    expect_read_error(dir, HDR "0,1,,1,1,1,0,\"\"\n", 1, ":2:", "not a number");
    expect_read_error(dir, HDR "0,1,1,1,1,-1,0,\"\"\n", 1, ":2:", "std_unpop is negative");
    expect_read_error(dir, HDR "0,1,1,1,1,1,1.5,\"\"\n", 1, ":2:", "fire_rate");
    expect_read_error(dir, HDR "0,1,1,1,1,1,0\n", 1, ":2:", "expected 8 columns");
    expect_read_error(dir, HDR "0,1,1\n", 1, ":2:", "found 3");
    expect_read_error(dir, HDR "0,1,1,1,1,1,0,\"\"\n2,1,1,1,1,1,0,\"\"\n", 2, ":3:", "expected latent 1, found 2");
    expect_read_error(dir, HDR "x,1,1,1,1,1,0,\"\"\n", 1, ":2:", "not an integer");
    expect_read_error(dir, HDR "0,1,1,1,1,1,0,\"\"\n\n1,1,1,1,1,1,0,\"\"\n", 0, ":3:", "empty line");
    tu_rmtree(dir);
    free(dir);
}

static void test_bad_header(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    expect_read_error(dir, "latent,d,mean_pop,std_pop,mean_unpop,std_unpop,fire_rate,top_items\n0,1,1,1,1,1,0,\"\"\n",
                      1, ":1:", "header");
    expect_read_error(dir, "0,1,1,1,1,1,0,\"\"\n", 1, ":1:", "expected 'latent,cohens_d");
    tu_rmtree(dir);
    free(dir);
}

static void test_missing_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "nope.csv");
    ps_latent_table t;
    ps_error err = {{0}};
    assert_int_equal(ps_latents_csv_read(path, 4, &t, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot open");
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* CRLF line ends, a UTF-8 BOM, quoted top items holding commas and trailing blank lines are
 * all accepted. */
static void test_crlf_bom_and_commas(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "crlf.csv");
    tu_write_str(path, "\xEF\xBB\xBF" PS_LATENTS_CSV_HEADER "\r\n"
                       "0,-0.25,1.5,0.5,2,1,0.125,\"a:Hello, world|b\"\r\n"
                       "1,0.75,1,0,1,0,1,\"\"\r\n\r\n");
    ps_latent_table t;
    ps_error err = {{0}};
    if (ps_latents_csv_read(path, 2, &t, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_true(t.d[0] == -0.25 && t.mean_pop[0] == 1.5 && t.std_pop[0] == 0.5);
    assert_true(t.mean_unpop[0] == 2 && t.std_unpop[0] == 1 && t.fire_rate[0] == 0.125);
    assert_true(t.d[1] == 0.75 && t.fire_rate[1] == 1);
    ps_latent_table_free(&t);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* A table the reader would reject is never written: no file, no temporary file. */
static void test_failed_write_leaves_no_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "latents.csv");
    ps_latent_table t = sample_table();
    ps_error err = {{0}};

    t.std_unpop[3] = NAN;
    assert_int_equal(ps_latents_csv_write(path, &t, NULL, &err), PS_ERR);
    assert_contains(err.msg, "latent 3");
    assert_contains(err.msg, "std_unpop");
    assert_int_equal(tu_count_entries(dir), 0);
    t.std_unpop[3] = 1;

    t.d[1] = INFINITY;
    assert_int_equal(ps_latents_csv_write(path, &t, NULL, &err), PS_ERR);
    assert_contains(err.msg, "cohens_d");
    assert_int_equal(tu_count_entries(dir), 0);
    t.d[1] = 1;

    ps_strings tokens = {(char *)TOKEN_POOL, TOKEN_OFF, 4};
    int32_t top[5] = {1, 2, 4, 0, 0}; /* item 4 does not exist */
    ps_latent_items items = {top, 1, &tokens, NULL};
    assert_int_equal(ps_latents_csv_write(path, &t, &items, &err), PS_ERR);
    assert_contains(err.msg, "latent 2");
    assert_int_equal(tu_count_entries(dir), 0);

    /* an unwritable destination */
    char *nodir = tu_path(dir, "missing/latents.csv");
    assert_int_equal(ps_latents_csv_write(nodir, &t, NULL, &err), PS_ERR);
    assert_contains(err.msg, "cannot create");
    assert_int_equal(tu_count_entries(dir), 0);

    /* an existing table survives a failed rewrite untouched */
    assert_int_equal(ps_latents_csv_write(path, &t, NULL, &err), PS_OK);
    char *before = read_text(path);
    t.fire_rate[0] = 2.0;
    assert_int_equal(ps_latents_csv_write(path, &t, NULL, &err), PS_ERR);
    assert_contains(err.msg, "fire_rate");
    char *after = read_text(path);
    assert_string_equal(before, after);
    assert_int_equal(tu_count_entries(dir), 1);
    free(before);
    free(after);

    ps_latent_table_free(&t);
    tu_rmtree(dir);
    free(nodir);
    free(path);
    free(dir);
}

/* d = [0.1, −0.3, 0.6, 0, −0.9, 0.85, −0.3, 0.25]:
 *   d > 0: latents 0, 2, 5, 7 (4); d < 0: 1, 4, 6 (3); d == 0: latent 3
 *   |d| > 0.2: 0.3, 0.6, 0.9, 0.85, 0.3, 0.25 -> 6; > 0.5: 0.6, 0.9, 0.85 -> 3; > 0.8: 2
 *   by sign: d > 0.2: 2, 5, 7 (3); > 0.5: 2, 5 (2); > 0.8: 5 (1)
 *            d < −0.2: 1, 4, 6 (3); < −0.5: 4 (1); < −0.8: 4 (1)
 *   strongest 2 of each: pop 5 (0.85), 2 (0.6); long-tail 4 (−0.9), then 1 and 6 tie at
 *   −0.3 -> the smaller index, 1 */
static void test_summary(void **state)
{
    (void)state;
    const double d[8] = {0.1, -0.3, 0.6, 0.0, -0.9, 0.85, -0.3, 0.25};
    ps_latents_summary s;
    ps_error err = {{0}};
    assert_int_equal(ps_latents_summary_make(d, 8, 2, &s, &err), PS_OK);
    assert_int_equal(s.m, 8);
    assert_int_equal(s.n_pos, 4);
    assert_int_equal(s.n_neg, 3);
    assert_int_equal(s.n_zero, 1);
    const int abs_gt[3] = {6, 3, 2}, pos_gt[3] = {3, 2, 1}, neg_gt[3] = {3, 1, 1};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(s.n_abs_gt[k], abs_gt[k]);
        assert_int_equal(s.n_pos_gt[k], pos_gt[k]);
        assert_int_equal(s.n_neg_gt[k], neg_gt[k]);
    }
    assert_int_equal(s.n_top_pos, 2);
    assert_int_equal(s.top_pos[0], 5);
    assert_int_equal(s.top_pos[1], 2);
    assert_int_equal(s.n_top_neg, 2);
    assert_int_equal(s.top_neg[0], 4);
    assert_int_equal(s.top_neg[1], 1);

    /* asking for more than there are lists them all, in order */
    assert_int_equal(ps_latents_summary_make(d, 8, 10, &s, &err), PS_OK);
    assert_int_equal(s.n_top_pos, 4);
    const int32_t pos_order[4] = {5, 2, 7, 0}, neg_order[3] = {4, 1, 6};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.top_pos[i], pos_order[i]);
    assert_int_equal(s.n_top_neg, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s.top_neg[i], neg_order[i]);

    assert_int_equal(ps_latents_summary_make(d, 8, PS_LATENTS_SUMMARY_MAX_TOP + 1, &s, &err), PS_ERR);
    const double bad[3] = {0.1, NAN, 0.2};
    assert_int_equal(ps_latents_summary_make(bad, 3, 2, &s, &err), PS_ERR);
    assert_contains(err.msg, "latent 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_top_items),
        cmocka_unit_test(test_wrong_row_count),
        cmocka_unit_test(test_non_finite_and_bad_numbers),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_crlf_bom_and_commas),
        cmocka_unit_test(test_failed_write_leaves_no_file),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
