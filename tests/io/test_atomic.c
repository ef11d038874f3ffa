/* Atomic writes and whole-file reads (src/io/atomic.c): a file appears only when complete, an
 * aborted write leaves nothing behind, and failures explain themselves. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

static void assert_file_is(const char *path, const char *text)
{
    char *data;
    size_t len;
    ps_error err;
    if (ps_read_file(path, 0, &data, &len, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(len, strlen(text));
    assert_string_equal(data, text);
    free(data);
}

static void test_commit_renames_into_place(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "out.txt");
    ps_atomic_file af;
    ps_error err;
    assert_int_equal(ps_atomic_open(&af, path, &err), PS_OK);
    fputs("hello\n", af.fp);
    /* Until the commit only the temporary file exists, next to the destination. */
    assert_false(tu_exists(path));
    assert_true(tu_exists(af.tmp_path));
    assert_int_equal(strncmp(af.tmp_path, path, strlen(path)), 0);
    assert_int_equal(tu_count_entries(dir), 1);
    char *tmp = strdup(af.tmp_path);
    assert_non_null(tmp);
    assert_int_equal(ps_atomic_commit(&af, &err), PS_OK);
    assert_false(tu_exists(tmp));
    assert_int_equal(tu_count_entries(dir), 1);
    assert_file_is(path, "hello\n");
    free(tmp);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_commit_replaces_existing_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "out.txt");
    tu_write_str(path, "old contents");
    ps_atomic_file af;
    ps_error err;
    assert_int_equal(ps_atomic_open(&af, path, &err), PS_OK);
    fputs("new", af.fp);
    assert_file_is(path, "old contents"); /* readers see the old file until the commit */
    assert_int_equal(ps_atomic_commit(&af, &err), PS_OK);
    assert_file_is(path, "new");
    assert_int_equal(tu_count_entries(dir), 1);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "out.txt");
    ps_atomic_file af;
    ps_error err;
    assert_int_equal(ps_atomic_open(&af, path, &err), PS_OK);
    fputs("partial", af.fp);
    ps_atomic_abort(&af);
    assert_int_equal(tu_count_entries(dir), 0);
    assert_false(tu_exists(path));
    ps_atomic_abort(&af); /* safe to call twice */
    assert_int_equal(tu_count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_abort_keeps_old_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "out.txt");
    tu_write_str(path, "old");
    ps_atomic_file af;
    ps_error err;
    assert_int_equal(ps_atomic_open(&af, path, &err), PS_OK);
    fputs("half-written", af.fp);
    ps_atomic_abort(&af);
    assert_file_is(path, "old");
    assert_int_equal(tu_count_entries(dir), 1);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_two_open_temp_files_differ(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "out.txt");
    ps_atomic_file a, b;
    ps_error err;
    assert_int_equal(ps_atomic_open(&a, path, &err), PS_OK);
    assert_int_equal(ps_atomic_open(&b, path, &err), PS_OK);
    assert_string_not_equal(a.tmp_path, b.tmp_path);
    ps_atomic_abort(&a);
    ps_atomic_abort(&b);
    assert_int_equal(tu_count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_write_file_atomic_round_trip(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "data.bin");
    const char bytes[] = {'a', '\0', 'b', '\n'};
    ps_error err;
    assert_int_equal(ps_write_file_atomic(path, bytes, sizeof bytes, &err), PS_OK);
    char *data;
    size_t len;
    assert_int_equal(ps_read_file(path, 0, &data, &len, &err), PS_OK);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(data, bytes, sizeof bytes);
    assert_int_equal(data[len], '\0'); /* NUL-terminated for text parsers */
    free(data);
    assert_int_equal(ps_write_file_atomic(path, NULL, 0, &err), PS_OK); /* empty file */
    assert_int_equal(ps_read_file(path, 0, &data, &len, &err), PS_OK);
    assert_int_equal(len, 0);
    assert_non_null(data);
    assert_int_equal(data[0], '\0');
    free(data);
    assert_int_equal(tu_count_entries(dir), 1);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_write_to_missing_directory_fails(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "no/such/dir/out.txt");
    ps_error err = {{0}};
    assert_int_equal(ps_write_file_atomic(path, "x", 1, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot create");
    assert_contains(err.msg, "No such file or directory");
    ps_atomic_file af;
    assert_int_equal(ps_atomic_open(&af, path, &err), PS_ERR);
    assert_null(af.fp);
    assert_null(af.tmp_path);
    ps_atomic_abort(&af); /* harmless after a failed open */
    assert_int_equal(tu_count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_file_limit(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "big.txt");
    tu_write_str(path, "0123456789abcdef"); /* 16 bytes */
    char *data = (char *)1;
    size_t len = 99;
    ps_error err = {{0}};
    assert_int_equal(ps_read_file(path, 10, &data, &len, &err), PS_ERR);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "16 bytes, more than the limit of 10");
    /* Exactly at the limit is fine. */
    assert_int_equal(ps_read_file(path, 16, &data, &len, &err), PS_OK);
    assert_int_equal(len, 16);
    assert_string_equal(data, "0123456789abcdef");
    free(data);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_missing_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "absent.txt");
    char *data = (char *)1;
    size_t len = 99;
    ps_error err = {{0}};
    assert_int_equal(ps_read_file(path, 0, &data, &len, &err), PS_ERR);
    assert_null(data);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot open");
    assert_contains(err.msg, "No such file or directory");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_directory_refused(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *data;
    size_t len;
    ps_error err = {{0}};
    assert_int_equal(ps_read_file(dir, 0, &data, &len, &err), PS_ERR);
    assert_contains(err.msg, dir);
    assert_contains(err.msg, "not a regular file");
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_renames_into_place),
        cmocka_unit_test(test_commit_replaces_existing_file),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_abort_keeps_old_file),
        cmocka_unit_test(test_two_open_temp_files_differ),
        cmocka_unit_test(test_write_file_atomic_round_trip),
        cmocka_unit_test(test_write_to_missing_directory_fails),
        cmocka_unit_test(test_read_file_limit),
        cmocka_unit_test(test_read_missing_file),
        cmocka_unit_test(test_read_directory_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
