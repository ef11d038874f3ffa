/* popsteer explain on generated data with freshly initialised model and SAE (written through the
 * library, no training: the decomposition does not need a good model): --json has the keys, the
 * parts add up to the score before and after steering, the default item is the steered top 1;
 * unknown user / item, a latents table of another SAE, missing files and --help. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/popsteer.h"

static char *g_dir, *g_data, *g_model, *g_sae, *g_latents, *g_user, *g_item;

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "d.inter");
    g_model = tu_path(g_dir, "m.safetensors");
    g_sae = tu_path(g_dir, "sae.safetensors");
    g_latents = tu_path(g_dir, "latents.csv");
    ps_dataset ds;
    tu_steer_files(g_data, g_model, g_sae, g_latents, 11, 5, &ds);
    g_user = strdup(ps_strings_get(&ds.user_tokens, 7));
    g_item = strdup(ps_strings_get(&ds.item_tokens, 20));
    assert_true(g_user && g_item);
    ps_dataset_free(&ds);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir); free(g_data); free(g_model); free(g_sae); free(g_latents); free(g_user); free(g_item);
    return 0;
}

static cJSON *explain_json(const char *extra)
{
    char a[8192], *out, *err;
    snprintf(a, sizeof a, "explain --json --threads 2 --data '%s' --model '%s' --sae '%s' --latents '%s' --user '%s' %s",
             g_data, g_model, g_sae, g_latents, g_user, extra);
    int rc = tu_run_cli(a, &out, &err);
    if (rc != 0)
        fail_msg("explain %s failed (%d): %s", extra, rc, err);
    cJSON *o = cJSON_Parse(out);
    if (!o)
        fail_msg("explain %s: not JSON: %s", extra, out);
    free(out);
    free(err);
    return o;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number \"%s\"", key);
    return v->valuedouble;
}

/* latents' contributions + bias term + error term == score; the two lists agree */
static void check_side(const cJSON *side, int k)
{
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(side, "latents");
    const cJSON *con = cJSON_GetObjectItemCaseSensitive(side, "contributions");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(side, "top");
    assert_true(cJSON_IsArray(lat) && cJSON_IsArray(con) && cJSON_IsArray(top));
    int n = cJSON_GetArraySize(lat);
    assert_true(n >= 1 && n <= 8);
    assert_int_equal(cJSON_GetArraySize(con), n);
    assert_int_equal(cJSON_GetArraySize(top), k);
    double sum = num(side, "bias_term") + num(side, "error_term"), sum2 = sum, prev_z = INFINITY,
           prev_c = INFINITY;
    assert_true(num(side, "bias_term") != 0);
    const cJSON *l;
    cJSON_ArrayForEach(l, lat)
    {
        sum += num(l, "contribution");
        assert_true(num(l, "z") <= prev_z);
        prev_z = num(l, "z");
        (void)num(l, "latent");
        (void)num(l, "cohens_d");
        (void)num(l, "fire_rate");
        assert_true(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "top_items")) == 5);
    }
    cJSON_ArrayForEach(l, con)
    {
        sum2 += num(l, "contribution");
        assert_true(fabs(num(l, "contribution")) <= prev_c);
        prev_c = fabs(num(l, "contribution"));
    }
    double score = num(side, "score");
    if (fabs(sum - score) > 1e-4 * fmax(fabs(score), 1e-3) || fabs(sum2 - score) > 1e-4 * fmax(fabs(score), 1e-3))
        fail_msg("parts %.9g / %.9g do not add up to the score %.9g", sum, sum2, score);
    tu_assert_near(num(side, "sum"), score, 1e-4 * fmax(fabs(score), 1e-3));
}

static void test_json_item(void **state)
{
    (void)state;
    char a[1024];
    snprintf(a, sizeof a, "--item '%s' --alpha 3 --neurons 32 --k 5", g_item);
    cJSON *o = explain_json(a);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, "item");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(item, "item")->valuestring, g_item);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(item, "top1_of_steered")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "user")->valuestring, g_user);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(o, "steering")->valuestring, "alpha 3"));
    check_side(cJSON_GetObjectItemCaseSensitive(o, "before"), 5);
    check_side(cJSON_GetObjectItemCaseSensitive(o, "after"), 5);
    cJSON_Delete(o);
}

/* without --item: the steered list's top 1; PopSteer-U with keep_error adds SASRec's error */
static void test_json_top1_rule(void **state)
{
    (void)state;
    cJSON *o = explain_json("--rule peruser --alpha 2 --keep-error");
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, "item");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "top1_of_steered")));
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(o, "after");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(after, "top"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "item")->valuestring,
                        cJSON_GetObjectItemCaseSensitive(item, "item")->valuestring);
    check_side(cJSON_GetObjectItemCaseSensitive(o, "before"), 10);
    check_side(after, 10);
    assert_true(num(after, "error_term") != 0);
    double g = num(o, "gate");
    assert_true(g >= 0 && g <= 1);
    cJSON_Delete(o);
}

static void test_text(void **state)
{
    (void)state;
    char a[8192], *out, *err;
    snprintf(a, sizeof a, "explain --data '%s' --model '%s' --sae '%s' --latents '%s' --user '%s' --alpha 1", g_data,
             g_model, g_sae, g_latents, g_user);
    assert_int_equal(tu_run_cli(a, &out, &err), 0);
    const char *want[] = {"Active latents before steering", "Active latents after steering",
                          "the top 1 of the steered list", "(b_dec . E)", "Top 10 before -> after steering"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            fail_msg("text output lacks '%s':\n%s", want[i], out);
    free(out);
    free(err);
}

static void expect_error(const char *args, int status, const char *what)
{
    char *err;
    int rc = tu_run_cli(args, NULL, &err);
    if (rc != status || !strstr(err, what))
        fail_msg("explain %s: expected status %d and '%s', got %d: %s", args, status, what, rc, err);
    free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char a[8192], base[6144];
    snprintf(base, sizeof base, "explain --data '%s' --model '%s' --sae '%s' --latents '%s'", g_data, g_model, g_sae,
             g_latents);
    snprintf(a, sizeof a, "%s --user no-such-user", base);
    expect_error(a, 1, "user 'no-such-user' is not in the dataset");
    snprintf(a, sizeof a, "%s --user '%s' --item no-such-item", base, g_user);
    expect_error(a, 1, "item 'no-such-item' is not in the dataset");
    /* a table of another SAE: fewer rows than this SAE has latents */
    char *few = tu_path(g_dir, "few.csv");
    FILE *in = fopen(g_latents, "r"), *out = fopen(few, "w");
    assert_true(in && out);
    char line[8192];
    for (int i = 0; i <= 10 && fgets(line, sizeof line, in); i++)
        fputs(line, out);
    fclose(in);
    fclose(out);
    snprintf(a, sizeof a, "explain --data '%s' --model '%s' --sae '%s' --latents '%s' --user '%s'", g_data, g_model,
             g_sae, few, g_user);
    expect_error(a, 1, "has 10 rows but the SAE has 64 latents");
    free(few);
    snprintf(a, sizeof a, "explain --data '%s' --model '%s' --sae '%s/none.safetensors' --latents '%s' --user '%s'",
             g_data, g_model, g_dir, g_latents, g_user);
    expect_error(a, 1, "none.safetensors");
    snprintf(a, sizeof a, "explain --data '%s' --model '%s/none.safetensors' --sae '%s' --latents '%s' --user '%s'",
             g_data, g_dir, g_sae, g_latents, g_user);
    expect_error(a, 1, "none.safetensors");
    snprintf(a, sizeof a, "explain --data '%s' --model '%s' --sae '%s' --user '%s'", g_data, g_model, g_sae, g_user);
    expect_error(a, 2, "--latents");
    snprintf(a, sizeof a, "%s --user '%s' --gate none", base, g_user);
    expect_error(a, 2, "need --rule peruser");
    char *out_s, *err_s;
    assert_int_equal(tu_run_cli("explain --help", &out_s, &err_s), 0);
    assert_non_null(strstr(out_s, "usage: popsteer explain"));
    free(out_s);
    free(err_s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_item), cmocka_unit_test(test_json_top1_rule), cmocka_unit_test(test_text),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
