/* Resource guards of the loaders: absurd inputs are refused with a message before any large
 * allocation, so that a hostile or corrupt file cannot turn into an out-of-memory kill.
 *  - safetensors: a header length of 10^12 bytes; a header of millions of JSON values (cJSON
 *    would spend ~64 bytes on each);
 *  - interaction logs: no format carries a count to trust (sizes come from the rows actually
 *    present), and a line of millions of fields is refused by the line-length limit before it
 *    is split;
 *  - the probe table: a file of newlines costs no per-line index;
 *  - item titles: tokens that are not items never index the title table (a fuzzing finding). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "popsteer/dataset.h"
#include "popsteer/items.h"
#include "popsteer/probe.h"
#include "popsteer/safetensors.h"

static long max_rss_kb(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

static void expect_msg(const ps_error *err, const char *what)
{
    if (!strstr(err->msg, what))
        fail_msg("expected '%s' in: %s", what, err->msg);
}

static void test_safetensors_header_of_a_terabyte(void **state)
{
    (void)state;
    unsigned char buf[8 + 2];
    uint64_t n = 1000000000000ull; /* 10^12 */
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, "{}", 2);
    long before = max_rss_kb();
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_parse(&f, buf, sizeof buf, "tera.safetensors", &err), PS_ERR);
    expect_msg(&err, "tera.safetensors: header length 1000000000000 bytes is larger than the limit");
    assert_true(max_rss_kb() - before < 10 * 1024);
}

static void test_safetensors_header_of_millions_of_values(void **state)
{
    (void)state;
    /* {"a":[0,0,0,...]} with 3 million zeros: 6 MB of header, ~200 MB for cJSON */
    size_t zeros = 3000000, hlen = 7 + 2 * zeros - 1 + 2;
    char *buf = malloc(8 + hlen);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (char)((uint64_t)hlen >> (8 * i));
    char *p = buf + 8;
    memcpy(p, "{\"a\":[", 6);
    p += 6;
    for (size_t i = 0; i < zeros; i++) {
        *p++ = '0';
        *p++ = i + 1 < zeros ? ',' : ']';
    }
    *p++ = '}';
    assert_int_equal((size_t)(p - buf), 8 + hlen - 1);
    *p = ' ';
    long before = max_rss_kb();
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_parse(&f, buf, 8 + hlen, "values.safetensors", &err), PS_ERR);
    expect_msg(&err, "values.safetensors: header holds more than 1048576 JSON values");
    assert_true(max_rss_kb() - before < 64 * 1024); /* the copy of the buffer, not cJSON's 200 MB */
    free(buf);
}

/* Writes a file of `repeat` copies of unit after head. */
static char *write_repeated(const char *dir, const char *name, const char *head, const char *unit, size_t repeat,
                            const char *tail)
{
    char *path = tu_path(dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(head, fp);
    for (size_t i = 0; i < repeat; i++)
        fputs(unit, fp);
    fputs(tail, fp);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static void expect_load_error(const char *path, ps_format format, const char *what)
{
    ps_load_options o;
    ps_load_options_init(&o);
    o.format = format;
    ps_dataset ds;
    ps_error err;
    assert_int_equal(ps_dataset_load(&ds, path, &o, &err), PS_ERR);
    expect_msg(&err, what);
}

static void test_line_of_ten_million_fields(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    /* 10^7 items for one user: 20 MB on one line, refused by the 1 MiB line limit before splitting
     * (10^8 fields would be refused the same way, after reading 200 MB) */
    char *seq = write_repeated(dir, "seq.txt", "u1 1 2 3\nu2", " 7", 10000000, "\n");
    long before = max_rss_kb();
    expect_load_error(seq, PS_FORMAT_SEQUENCE, "seq.txt:2: line is 20000002 bytes long, over the limit of 1048576");
    expect_load_error(seq, PS_FORMAT_AUTO, "seq.txt:2: line is 20000002 bytes long");
    /* the file buffer (20 MB) but not 10^7 fields (160 MB) */
    assert_true(max_rss_kb() - before < 80 * 1024);
    char *csv = write_repeated(dir, "wide.csv", "user,item\n1,2\n1", ",3", 2000000, "\n");
    expect_load_error(csv, PS_FORMAT_CSV, "wide.csv:3: line is 4000001 bytes long, over the limit");
    tu_rmtree(dir);
    free(dir); free(seq); free(csv);
}

static void test_latents_file_of_newlines(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = write_repeated(dir, "newlines.csv", "", "\n", 64u << 20, "");
    long before = max_rss_kb();
    ps_latent_table t;
    ps_error err;
    assert_int_equal(ps_latents_csv_read(path, 0, &t, &err), PS_ERR);
    expect_msg(&err, "newlines.csv: the file is empty");
    /* 64 MB of file; a line index would have added 512 MB */
    assert_true(max_rss_kb() - before < 192 * 1024);
    tu_rmtree(dir);
    free(dir); free(path);
}

static void test_titles_of_unknown_tokens(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *data = tu_path(dir, "seq.txt"), *titles = tu_path(dir, "titles.csv");
    tu_write_str(data, "u1 a b c d\nu2 b c d a\n");
    /* "x" is no item: seen a second time it used to pass as item n_items + 1 */
    tu_write_str(titles, "x,1\nx,2\nb,Bee\nx,3\n");
    ps_load_options o;
    ps_load_options_init(&o);
    ps_dataset ds;
    ps_error err;
    assert_int_equal(ps_dataset_load(&ds, data, &o, &err), PS_OK);
    ps_item_titles t;
    assert_int_equal(ps_item_titles_load(&t, &ds, titles, &err), PS_OK);
    assert_int_equal(t.n, ds.n_items + 1);
    assert_int_equal(t.found, 1);
    assert_string_equal(ps_item_title(&t, ps_dataset_find_item(&ds, "b")), "Bee");
    ps_item_titles_free(&t);
    ps_dataset_free(&ds);
    tu_rmtree(dir);
    free(dir); free(data); free(titles);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_header_of_a_terabyte),
        cmocka_unit_test(test_safetensors_header_of_millions_of_values),
        cmocka_unit_test(test_line_of_ten_million_fields),
        cmocka_unit_test(test_latents_file_of_newlines),
        cmocka_unit_test(test_titles_of_unknown_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
