/* popsteer tune on generated data (small SASRec, SAE and probe made through the CLI): an NDCG
 * budget gives a point whose validation drop is within it, unreachable goals fail with status 1
 * and say what steering reaches, and the usage errors. */
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
    if (tu_synth_small(g_data) || tu_train_small(g_data, g_model, 4))
        return -1;
    char a[4096];
    snprintf(a, sizeof a, "sae train --quiet --threads 2 --scale 4 --k 8 --epochs 5 --data '%s' --model '%s' --out '%s'",
             g_data, g_model, g_sae);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "probe --quiet --threads 2 --cap 2000 --data '%s' --model '%s' --sae '%s' --out '%s'", g_data,
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

/* Runs tune with the fixture's files and a short grid; returns the status. */
static int tune(const char *extra, char **out, char **err)
{
    char a[8192];
    snprintf(a, sizeof a,
             "tune --quiet --threads 2 --data '%s' --model '%s' --sae '%s' --latents '%s' --alphas 0,1,2,4 %s", g_data,
             g_model, g_sae, g_latents, extra);
    return tu_run_cli(a, out, err);
}

static void assert_contains(const char *text, const char *word)
{
    if (!strstr(text, word))
        fail_msg("\"%s\" lacks \"%s\"", text, word);
}

/* The tiny SAE alone costs about a quarter of SASRec's NDCG, so the budget is wide; what matters
 * is that the validation drop of the chosen point is within it and that test metrics come along. */
static void test_ndcg_budget(void **state)
{
    (void)state;
    char *out, *err;
    int rc = tune("--json --max-ndcg-loss 0.4 --neurons-grid 16,64,all", &out, &err);
    if (rc != 0)
        fail_msg("tune failed (%d): %s", rc, err);
    const char *valid = strstr(out, "\"valid\""), *test = strstr(out, "\"test\"");
    assert_non_null(valid);
    assert_non_null(test);
    double base = tu_json_number(valid, "sasrec_ndcg"), ndcg = tu_json_number(valid, "ndcg");
    double drop = tu_json_number(valid, "ndcg_drop");
    printf("alpha %g N %g: valid ndcg %.4f (SASRec %.4f, drop %.4f), gini %.4f; %g evaluations\n",
           tu_json_number(out, "alpha"), tu_json_number(out, "neurons"), ndcg, base, drop, tu_json_number(valid, "gini"),
           tu_json_number(out, "evaluations"));
    assert_true(drop <= 0.4);
    tu_assert_near(drop, (base - ndcg) / base, 1e-12);
    assert_true(tu_json_number(out, "alpha") >= 0);
    assert_true(tu_json_number(test, "ndcg") > 0);
    assert_true(tu_json_number(test, "gini") > 0);
    /* bounded: the grid and at most ceil(log2(2 / 0.01)) = 8 bisection steps per N, plus the two
     * evaluations of the chosen point */
    assert_true(tu_json_number(out, "evaluations") <= 3 * (4 + 8) + 2);
    free(out);
    free(err);

    /* the text output names the choice */
    rc = tune("--max-ndcg-loss 0.4 --neurons 64", &out, &err);
    assert_int_equal(rc, 0);
    assert_contains(out, "chosen         alpha");
    assert_contains(out, "N 64");
    free(out);
    free(err);
}

static void test_unreachable(void **state)
{
    (void)state;
    char *err;
    assert_int_equal(tune("--target-gini 0 --neurons-grid 16,all", NULL, &err), 1);
    assert_contains(err, "the lowest validation Gini@10 steering reaches is");
    assert_contains(err, "target 0 is below it");
    free(err);
    assert_int_equal(tune("--target-gini=-99%", NULL, &err), 1);
    assert_contains(err, "(-99% of SASRec's) is below it");
    free(err);
    /* the SAE's reconstruction alone costs more than 1 % */
    assert_int_equal(tune("--max-ndcg-loss 0.01", NULL, &err), 1);
    assert_contains(err, "the smallest validation NDCG@10 drop against SASRec steering has is");
    assert_contains(err, "budget 0.01 is below it");
    free(err);
}

static void test_target_gini(void **state)
{
    (void)state;
    char *out, *err;
    /* a target at SASRec's own Gini is met (steering only lowers it here) */
    int rc = tune("--json --target-gini=0% --neurons all", &out, &err);
    if (rc != 0)
        fail_msg("tune failed (%d): %s", rc, err);
    const char *valid = strstr(out, "\"valid\"");
    assert_non_null(valid);
    assert_true(tu_json_number(valid, "gini") <= tu_json_number(out, "target_gini"));
    tu_assert_near(tu_json_number(out, "target_gini"), tu_json_number(valid, "sasrec_gini"), 1e-12);
    free(out);
    free(err);
}

static void test_usage(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(tu_run_cli("tune --help", &out, NULL), 0);
    assert_contains(out, "--max-ndcg-loss");
    assert_contains(out, "--target-gini");
    free(out);
    assert_int_equal(tune("", NULL, &err), 2);
    assert_contains(err, "exactly one goal");
    free(err);
    assert_int_equal(tune("--target-gini 0.3 --max-ndcg-loss 0.1", NULL, &err), 2);
    assert_contains(err, "exactly one goal");
    free(err);
    assert_int_equal(tune("--max-ndcg-loss 0.1 --neurons 4 --neurons-grid 8,16", NULL, &err), 2);
    assert_contains(err, "exclude each other");
    free(err);
    assert_int_equal(tune("--max-ndcg-loss 0.1 --alphas 0,2,1", NULL, &err), 2);
    assert_contains(err, "ascending");
    free(err);
    assert_int_equal(tune("--target-gini abc", NULL, &err), 2);
    assert_contains(err, "--target-gini");
    free(err);
    assert_int_equal(tu_run_cli("tune --max-ndcg-loss 0.1", NULL, &err), 2);
    assert_contains(err, "--model, --sae and --latents are required");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ndcg_budget),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_target_gini),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
