/* Same inputs, seed and thread count -> byte-identical outputs, for every stage after training
 * (training itself is covered by test_cli_model.c): `data synth`, `eval --json` (plain and
 * steered), the SAE file of `sae train` and the probe's CSV. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_dir, *g_data, *g_model;

/* Runs `popsteer ARGS` (ARGS has one %s for the output name) for out names a and b. */
static void run_twice(const char *fmt, const char *a, const char *b)
{
    char args[8192];
    const char *outs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        char *err;
        snprintf(args, sizeof args, fmt, outs[i]);
        if (tu_run_cli(args, NULL, &err) != 0)
            fail_msg("popsteer %s failed: %s", args, err);
        free(err);
    }
}

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "small.inter");
    g_model = tu_path(g_dir, "model.safetensors");
    return tu_synth_small(g_data) == 0 && tu_train_small(g_data, g_model, 1) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir);
    free(g_data);
    free(g_model);
    return 0;
}

static void test_synth(void **state)
{
    (void)state;
    char *a = tu_path(g_dir, "synth_a.inter"), *b = tu_path(g_dir, "synth_b.inter");
    char *c = tu_path(g_dir, "synth_c.inter");
    run_twice("data synth --quiet --seed 7 --users 200 --items 100 --interactions 4000 --out '%s'", a, b);
    assert_true(tu_same_file(a, b));
    char args[4096];
    snprintf(args, sizeof args, "data synth --quiet --seed 8 --users 200 --items 100 --interactions 4000 --out '%s'", c);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    assert_false(tu_same_file(a, c)); /* sanity: the seed matters, so the comparison can fail */
    free(a); free(b); free(c);
}

/* The SAE and the probe table are made here, once each, and compared; eval then uses them. */
static void test_sae_probe_and_eval(void **state)
{
    (void)state;
    char fmt[8192];
    char *sae_a = tu_path(g_dir, "sae_a.safetensors"), *sae_b = tu_path(g_dir, "sae_b.safetensors");
    snprintf(fmt, sizeof fmt, "sae train --quiet --threads 2 --seed 7 --epochs 2 --scale 4 --data '%s' --model '%s' "
                              "--out '%%s'", g_data, g_model);
    run_twice(fmt, sae_a, sae_b);
    assert_true(tu_same_file(sae_a, sae_b));

    char *csv_a = tu_path(g_dir, "latents_a.csv"), *csv_b = tu_path(g_dir, "latents_b.csv");
    snprintf(fmt, sizeof fmt, "probe --quiet --threads 2 --seed 7 --cap 500 --data '%s' --model '%s' --sae '%s' "
                              "--out '%%s'", g_data, g_model, sae_a);
    run_twice(fmt, csv_a, csv_b);
    assert_true(tu_same_file(csv_a, csv_b));

    /* eval prints to stdout: compare the JSON of two runs, plain and steered */
    const char *variants[2] = {"", "--alpha 1 --sae '%s' --latents '%s'"};
    for (int v = 0; v < 2; v++) {
        char extra[4096], args[8192], *out[2];
        snprintf(extra, sizeof extra, variants[v], sae_a, csv_a);
        snprintf(args, sizeof args, "eval --json --threads 2 --quiet --data '%s' --model '%s' %s", g_data, g_model,
                 extra);
        for (int i = 0; i < 2; i++)
            assert_int_equal(tu_run_cli(args, &out[i], NULL), 0);
        assert_true(strlen(out[0]) > 100);
        assert_string_equal(out[0], out[1]);
        free(out[0]);
        free(out[1]);
    }
    free(sae_a); free(sae_b); free(csv_a); free(csv_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth),
        cmocka_unit_test(test_sae_probe_and_eval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
