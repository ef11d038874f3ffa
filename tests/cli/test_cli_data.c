/* `popsteer data ...` on good and bad input: exit status, the message (file, line, what is
 * wrong) and that nothing half-written is left behind. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct bad_case {
    const char *name;      /* file name inside the temp dir */
    const char *content;   /* NULL: do not create the file */
    size_t len;            /* 0: strlen(content) */
    const char *expect[3]; /* substrings the message must contain */
} bad_case;

static void run_stats_expect_failure(const char *dir, const bad_case *bc)
{
    char *path = tu_path(dir, bc->name);
    if (bc->content)
        tu_write(path, bc->content, bc->len ? bc->len : strlen(bc->content));
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "data stats --data '%s'", path);
    int before = tu_count_entries(dir);
    int status = tu_run_cli(args, &out, &err);
    if (status == 0 || status == 2)
        fail_msg("%s: expected exit 1, got %d (stderr: %s)", bc->name, status, err);
    for (int k = 0; k < 3 && bc->expect[k]; k++)
        if (!strstr(err, bc->expect[k]))
            fail_msg("%s: message lacks '%s': %s", bc->name, bc->expect[k], err);
    assert_int_equal(tu_count_entries(dir), before); /* nothing written */
    assert_string_equal(out, "");
    free(out);
    free(err);
    free(path);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char longline[3u << 20];
    memset(longline, '7', sizeof longline);
    memcpy(longline, "user item\n1 ", 12);
    longline[sizeof longline - 1] = '\n';
    const bad_case cases[] = {
        {"empty.inter", "", 0, {"empty.inter", "empty file", NULL}},
        {"blank.txt", "\n\n  \n", 0, {"blank.txt", "empty file", NULL}},
        {"header_only.inter", "user_id:token\titem_id:token\n", 0, {"header_only.inter", "no interactions", NULL}},
        {"nouser.csv", "a,b,c\n1,2,3\n", 0, {"nouser.csv:1", "no user column", "'a', 'b', 'c'"}},
        {"noitem.inter", "user_id:token\tthing:token\n1\t2\n", 0, {"noitem.inter:1", "no item column", NULL}},
        {"badtime.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\tabc\n", 0,
         {"badtime.inter:3", "timestamp 'abc' is not a number", NULL}},
        {"notime.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t\n", 0,
         {"notime.inter:2", "missing timestamp", NULL}},
        {"short.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t5\n1\t3\n", 0,
         {"short.inter:3", "expected at least 3 tab-separated fields, found 2", NULL}},
        {"commas.inter", "user_id:token,item_id:token,timestamp:float\n1,2,3\n", 0,
         {"commas.inter:1", "tab-separated", "wrong separator"}},
        {"mixed.csv", "user,item,timestamp\n1,2,3\n1\t3\t4\n", 0, {"mixed.csv:3", "comma-separated", "wrong separator"}},
        {"nosep.txt", "1,2,3,4\n", 0, {"nosep.txt:1", "cannot tell the format", "--format"}},
        {"trunc.data", "1\t2\t3\t881250949\n1\t3\t4\t881250950\n1\t4\t3", 0,
         {"trunc.data:3", "expected at least 4", "truncated"}},
        {"long.txt", longline, sizeof longline, {"long.txt:2", "over the limit", NULL}},
        {"nul.inter", "user_id:token\titem_id:token\n1\t2\0\n", 33, {"nul.inter:2", "NUL byte", NULL}},
        {"badrating.dat", "1::2::x::5\n", 0, {"badrating.dat:1", "rating 'x' is not a number", NULL}},
        {"missing.inter", NULL, 0, {"missing.inter", "cannot open", "No such file"}},
        {"empty.inter/x.inter", NULL, 0, {"empty.inter/x.inter", "cannot open", "Not a directory"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_stats_expect_failure(dir, &cases[i]);
    /* a directory is not a data file */
    char args[4096], *err;
    snprintf(args, sizeof args, "data stats --data '%s'", dir);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "not a regular file"));
    free(err);
    tu_rmtree(dir);
    free(dir);
}

static void test_unreadable_path(void **state)
{
    (void)state;
    if (geteuid() == 0) { /* root reads everything: the permission check cannot fail */
        printf("SKIP: running as root, file permissions are not enforced\n");
        skip();
    }
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "secret.inter");
    tu_write_str(path, "user_id:token\titem_id:token\n1\t2\n");
    chmod(path, 0);
    char args[4096], *err;
    snprintf(args, sizeof args, "data stats --data '%s'", path);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "Permission denied"));
    free(err);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_short_users_are_counted(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "s.txt");
    tu_write_str(path, "a 1 2 3 4\nb 1 2\nc 5\nd 2 3 4\n");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "data stats --json --data '%s'", path);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(err, "dropped 2 users with fewer than 3 interactions (3 rows)"));
    assert_non_null(strstr(out, "\"users\":\t2"));
    assert_non_null(strstr(out, "\"users_too_short\":\t2"));
    free(out);
    free(err);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_stats_json_keys(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "l.inter");
    tu_write_str(path, "user_id:token\titem_id:token\n1\t1\n1\t2\n1\t3\n1\t4\n2\t2\n2\t3\n2\t1\n");
    char args[4096], *out;
    snprintf(args, sizeof args, "data stats --json --data '%s'", path);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    const char *keys[] = {"\"users\":\t2", "\"items\":\t4", "\"interactions\":\t7", "\"train_samples\":\t1",
                          "\"valid_samples\":\t2", "\"test_samples\":\t2", "\"head_items\"", "\"mid_items\"",
                          "\"tail_items\""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strstr(out, keys[i]))
            fail_msg("missing %s in %s", keys[i], out);
    free(out);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_help_and_usage(void **state)
{
    (void)state;
    const char *ok[] = {"--help", "data --help", "data stats --help", "data synth --help"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *out;
        assert_int_equal(tu_run_cli(ok[i], &out, NULL), 0);
        assert_non_null(strstr(out, "usage: popsteer"));
        free(out);
    }
    const char *bad[] = {"", "frobnicate", "data stats --bogus", "data stats", "data stats --data x --threads 0",
                         "data synth", "data synth --out x --preset huge"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err;
        assert_int_equal(tu_run_cli(bad[i], NULL, &err), 2);
        assert_true(strlen(err) > 0);
        free(err);
    }
}

static void test_synth_then_stats(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "demo.inter");
    char args[4096], *out;
    snprintf(args, sizeof args, "data synth --quiet --users 300 --items 200 --interactions 6000 --out '%s'", path);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    assert_int_equal(tu_count_entries(dir), 1);
    snprintf(args, sizeof args, "data stats --json --data '%s'", path);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    assert_non_null(strstr(out, "\"users\":\t300"));
    free(out);
    /* invalid options: an error, and no file */
    char *bad = tu_path(dir, "bad.inter"), *err;
    snprintf(args, sizeof args, "data synth --users 10 --items 20 --interactions 20 --out '%s'", bad);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "interactions"));
    assert_int_equal(tu_count_entries(dir), 1);
    free(err);
    free(bad);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_unreadable_path),
        cmocka_unit_test(test_short_users_are_counted),
        cmocka_unit_test(test_stats_json_keys),
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_synth_then_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
