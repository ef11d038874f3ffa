/* Option errors: exit status 2 and a message that names the real problem (unknown, ambiguous,
 * missing value, value given to a flag, short option) and the offending word, for every command.
 * Exit status 1 stays reserved for failures on valid options (a missing file). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct option_case {
    const char *args;
    int status;
    const char *expect;
} option_case;

static void test_option_errors(void **state)
{
    (void)state;
    const option_case cases[] = {
        {"eval -xy", 2, "popsteer eval: unknown option '-x' (options are long: --NAME)"},
        {"eval --data x -q", 2, "unknown option '-q'"},
        {"eval --model", 2, "popsteer eval: option '--model' needs a value"},
        {"eval --data x --mod", 2, "option '--model' needs a value"},
        {"eval --json=3", 2, "option '--json' takes no value (got '--json=3')"},
        {"eval --ma", 2, "option '--ma' is ambiguous: --max-len, --mask-seen"},
        {"train --ma=1", 2, "option '--ma' is ambiguous: --max-len, --max-memory"},
        {"data stats --bogus=1", 2, "popsteer data stats: unknown option '--bogus=1'"},
        {"data synth --out", 2, "popsteer data synth: option '--out' needs a value"},
        {"sae train --k", 2, "popsteer sae train: option '--k' needs a value"}, /* exact name wins */
        {"probe --cap 1 --cap x", 2, "--cap: expected a whole number"},
        {"recommend --user", 2, "option '--user' needs a value"},
        {"train --epochs 0", 2, "--epochs: expected a whole number from 1 to 100000, got '0'"},
        {"train --data /nonexistent/x.inter --out /nonexistent/m.st", 1, "/nonexistent/x.inter: cannot open"},
        {"eval extra", 2, "unexpected argument 'extra'"},
        {"nosuchcommand", 2, "popsteer: unknown command 'nosuchcommand'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int status = tu_run_cli(cases[i].args, &out, &err);
        if (status != cases[i].status || !strstr(err, cases[i].expect))
            fail_msg("popsteer %s: status %d, stderr: %s\nexpected status %d and '%s'", cases[i].args, status, err,
                     cases[i].status, cases[i].expect);
        if (status == 2 && strncmp(cases[i].args, "nosuch", 6) != 0 && !strstr(err, "--help'."))
            fail_msg("popsteer %s: a usage error should point to --help: %s", cases[i].args, err);
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
