/* PopSteer end to end on generated data: sae train -> probe -> steered eval. A moderate alpha
 * must lower Gini@10 and raise deep-long-tail coverage against alpha = 0; bad SAE, latents
 * and steering options fail with a clear message. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_dir, *g_data, *g_model, *g_sae, *g_latents;

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "d.inter");
    g_model = tu_path(g_dir, "m.safetensors");
    g_sae = tu_path(g_dir, "sae.safetensors");
    g_latents = tu_path(g_dir, "latents.csv");
    char a[4096];
    snprintf(a, sizeof a, "data synth --quiet --users 400 --items 200 --interactions 14000 --out '%s'", g_data);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "train --quiet --threads 2 --epochs 6 --data '%s' --out '%s'", g_data, g_model);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "sae train --quiet --threads 2 --scale 8 --k 16 --epochs 15 --data '%s' --model '%s' --out '%s'",
             g_data, g_model, g_sae);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "probe --quiet --threads 2 --cap 4000 --data '%s' --model '%s' --sae '%s' --out '%s'", g_data,
             g_model, g_sae, g_latents);
    return tu_run_cli_ok(a) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir); free(g_data); free(g_model); free(g_sae); free(g_latents);
    return 0;
}

static char *eval_json(const char *extra)
{
    char a[8192], *out, *err;
    snprintf(a, sizeof a, "eval --json --split valid --data '%s' --model '%s' %s", g_data, g_model, extra);
    int rc = tu_run_cli(a, &out, &err);
    if (rc != 0)
        fail_msg("eval %s failed: %s", extra, err);
    free(err);
    return out;
}

static void test_steering_lowers_gini(void **state)
{
    (void)state;
    char steer[4096];
    snprintf(steer, sizeof steer, "--sae '%s' --latents '%s' --alpha 0", g_sae, g_latents);
    char *base = eval_json(steer);
    snprintf(steer, sizeof steer, "--sae '%s' --latents '%s' --alpha 2", g_sae, g_latents);
    char *steered = eval_json(steer);
    double g0 = tu_json_number(base, "gini@10"), g1 = tu_json_number(steered, "gini@10");
    double d0 = tu_json_number(base, "deep_lt_coverage@10"), d1 = tu_json_number(steered, "deep_lt_coverage@10");
    printf("alpha 0: gini %.4f deep-LT %.4f ndcg %.4f; alpha 2: gini %.4f deep-LT %.4f ndcg %.4f\n", g0, d0,
           tu_json_number(base, "ndcg@10"), g1, d1, tu_json_number(steered, "ndcg@10"));
    assert_true(g1 < g0);
    assert_true(d1 > d0);
    free(base);
    free(steered);
}

/* --sae alone is the SAE-reconstructed recommender, the same as alpha 0 with latents. */
static void test_alpha_zero_is_reconstruction(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "--sae '%s'", g_sae);
    char *plain = eval_json(a);
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --alpha 0 --neurons 10", g_sae, g_latents);
    char *zero = eval_json(a);
    const char *keys[] = {"ndcg@10", "gini@10", "coverage@10"};
    for (int i = 0; i < 3; i++)
        assert_true(tu_json_number(plain, keys[i]) == tu_json_number(zero, keys[i]));
    free(plain);
    free(zero);
}

static void test_latents_table(void **state)
{
    (void)state;
    FILE *fp = fopen(g_latents, "r");
    assert_non_null(fp);
    char line[8192];
    int rows = 0, with_items = 0;
    assert_non_null(fgets(line, sizeof line, fp));
    assert_true(strncmp(line, "latent,cohens_d,mean_pop,std_pop,mean_unpop,std_unpop,fire_rate,top_items", 70) == 0);
    while (fgets(line, sizeof line, fp)) {
        rows++;
        with_items += strstr(line, ",\"") != NULL;
    }
    fclose(fp);
    assert_int_equal(rows, 64 * 8);
    assert_int_equal(with_items, rows);
}

/* PopSteer-I end to end: probe --side items writes a full table; eval --rule decoder at alpha 0 is
 * plain SASRec exactly (nothing added to h), and a moderate alpha lowers Gini@10. */
static void test_popsteer_i(void **state)
{
    (void)state;
    char *items = tu_path(g_dir, "items-side.csv"), a[8192], *out, *err;
    snprintf(a, sizeof a, "probe --json --threads 2 --side items --data '%s' --model '%s' --sae '%s' --out '%s'", g_data,
             g_model, g_sae, items);
    if (tu_run_cli(a, &out, &err) != 0)
        fail_msg("probe --side items: %s", err);
    assert_non_null(strstr(out, "\"items\""));
    assert_true(tu_json_number(out, "n_latents") == 512);
    free(out);
    free(err);
    char *plain = eval_json("");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --rule decoder --alpha 0", g_sae, items);
    char *zero = eval_json(a);
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --rule decoder --alpha 0.2", g_sae, items);
    char *moved = eval_json(a);
    const char *keys[] = {"ndcg@10", "gini@10", "coverage@10"};
    for (int i = 0; i < 3; i++)
        assert_true(tu_json_number(plain, keys[i]) == tu_json_number(zero, keys[i]));
    printf("PopSteer-I alpha 0.2: gini %.4f -> %.4f, ndcg %.4f -> %.4f\n", tu_json_number(plain, "gini@10"),
           tu_json_number(moved, "gini@10"), tu_json_number(plain, "ndcg@10"), tu_json_number(moved, "ndcg@10"));
    assert_true(tu_json_number(moved, "gini@10") < tu_json_number(plain, "gini@10"));
    free(plain);
    free(zero);
    free(moved);
    free(items);
}

static void expect_eval_error(const char *extra, int status, const char *what)
{
    char a[8192], *err;
    snprintf(a, sizeof a, "eval --data '%s' --model '%s' %s", g_data, g_model, extra);
    int rc = tu_run_cli(a, NULL, &err);
    if (rc != status || !strstr(err, what))
        fail_msg("eval %s: expected status %d and '%s', got %d: %s", extra, status, what, rc, err);
    free(err);
}

static void test_bad_steering_inputs(void **state)
{
    (void)state;
    char a[8192];
    /* latents with too few rows, and with a NaN */
    char *few = tu_path(g_dir, "few.csv"), *nan = tu_path(g_dir, "nan.csv");
    FILE *in = fopen(g_latents, "r"), *f1 = fopen(few, "w"), *f2 = fopen(nan, "w");
    assert_non_null(in);
    char line[8192];
    for (int i = 0; fgets(line, sizeof line, in); i++) {
        if (i <= 100)
            fputs(line, f1);
        if (i == 7) {
            char *comma = strchr(line, ',');
            fprintf(f2, "6,nan%s", strchr(comma + 1, ','));
        } else {
            fputs(line, f2);
        }
    }
    fclose(in); fclose(f1); fclose(f2);
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --alpha 1", g_sae, few);
    expect_eval_error(a, 1, "has 100 rows but the SAE has 512 latents");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --alpha 1", g_sae, nan);
    expect_eval_error(a, 1, "nan.csv:8");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --alpha 1 --neurons 513", g_sae, g_latents);
    expect_eval_error(a, 1, "513");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --alpha -1", g_sae, g_latents);
    expect_eval_error(a, 2, "--alpha");
    snprintf(a, sizeof a, "--sae '%s' --alpha 1", g_sae);
    expect_eval_error(a, 2, "need --latents");
    snprintf(a, sizeof a, "--latents '%s'", g_latents);
    expect_eval_error(a, 2, "need --sae");
    snprintf(a, sizeof a, "--sae '%s' --rule decoder", g_sae);
    expect_eval_error(a, 2, "--rule decoder needs --latents");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --rule decoder --keep-error", g_sae, g_latents);
    expect_eval_error(a, 2, "need --rule peruser");
    snprintf(a, sizeof a, "--sae '%s' --latents '%s' --rule sideways", g_sae, g_latents);
    expect_eval_error(a, 2, "'decoder'");
    snprintf(a, sizeof a, "probe --side items --cap 10 --data '%s' --model '%s' --sae '%s' --out x.csv", g_data,
             g_model, g_sae);
    char *perr;
    assert_int_equal(tu_run_cli(a, NULL, &perr), 2);
    assert_non_null(strstr(perr, "--side items has none"));
    free(perr);
    /* an SAE of another model width */
    char *narrow = tu_path(g_dir, "narrow.safetensors");
    snprintf(a, sizeof a, "train --quiet --epochs 1 --hidden 32 --data '%s' --out '%s'", g_data, narrow);
    assert_int_equal(tu_run_cli_ok(a), 0);
    char *err;
    snprintf(a, sizeof a, "eval --data '%s' --model '%s' --sae '%s'", g_data, narrow, g_sae);
    assert_int_equal(tu_run_cli(a, NULL, &err), 1);
    assert_non_null(strstr(err, "the SAE reads 64-dimensional vectors but the model's are 32-dimensional"));
    free(err);
    free(few); free(nan); free(narrow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steering_lowers_gini),
        cmocka_unit_test(test_alpha_zero_is_reconstruction),
        cmocka_unit_test(test_latents_table),
        cmocka_unit_test(test_popsteer_i),
        cmocka_unit_test(test_bad_steering_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
