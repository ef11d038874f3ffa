/* `popsteer train / eval / recommend` end to end: the authors' Last.fm model reproduces its
 * logged validation NDCG@10, training is deterministic and resumable, and bad model files fail
 * with a clear message. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_dir, *g_data, *g_model;

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "small.inter");
    g_model = tu_path(g_dir, "model.safetensors");
    return tu_synth_small(g_data) == 0 && tu_train_small(g_data, g_model, 2) == 0 ? 0 : -1;
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

static void test_authors_model_reproduces_logged_ndcg(void **state)
{
    (void)state;
    TU_SKIP_IF_NO_SHARED(data, "data/lastfm/popsteer/lastfm.inter");
    char data_copy[4096];
    snprintf(data_copy, sizeof data_copy, "%s", data);
    TU_SKIP_IF_NO_SHARED(model, "models/sasrec-lastfm.safetensors");
    char args[8192], *out;
    snprintf(args, sizeof args, "eval --json --split valid --data '%s' --model '%s'", data_copy, model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    double ndcg = tu_json_number(out, "ndcg@10");
    printf("authors' model, validation NDCG@10 = %.4f (logged 0.6273)\n", ndcg);
    assert_true(fabs(ndcg - 0.6273) <= 0.0015);
    free(out);
}

static void test_eval_json_has_every_key(void **state)
{
    (void)state;
    char args[4096], *out;
    snprintf(args, sizeof args, "eval --json --k 5 --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    const char *keys[] = {"users", "ndcg@5", "hit@5", "recall@5", "precision@5", "mrr@5", "ndcg_head@5",
                          "ndcg_mid@5", "ndcg_tail@5", "coverage@5", "lt_coverage@5", "deep_lt_coverage@5",
                          "gini@5", "arp@5", "arp_distinct@5", "aplt@5", "entropy@5", "ilad@5"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        (void)tu_json_number(out, keys[i]);
    assert_int_equal((int)tu_json_number(out, "users"), 300);
    double ndcg = tu_json_number(out, "ndcg@5");
    assert_true(ndcg > 0 && ndcg <= 1);
    double ilad = tu_json_number(out, "ilad@5"); /* 1 - cosine: in [0, 2] */
    assert_true(ilad >= 0 && ilad <= 2);
    free(out);
}

static void test_recommend(void **state)
{
    (void)state;
    char args[4096], *out, *err;
    /* user tokens of the generator are a permutation of 1..n_users */
    snprintf(args, sizeof args, "recommend --json --k 3 --user 1 --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, &out, NULL), 0);
    assert_non_null(strstr(out, "\"rank\":\t3"));
    free(out);
    snprintf(args, sizeof args, "recommend --user nobody --data '%s' --model '%s'", g_data, g_model);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "user 'nobody' is not in the dataset"));
    free(err);
}

static int files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            eq = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

/* Same seed and thread count -> bit-identical checkpoint; --resume after 2 epochs ends where an
 * uninterrupted 3-epoch run ends. */
static void test_determinism_and_resume(void **state)
{
    (void)state;
    char *a = tu_path(g_dir, "a.safetensors"), *b = tu_path(g_dir, "b.safetensors");
    char args[4096];
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs 3 --data '%s' --out '%s'", g_data, a);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs 2 --data '%s' --out '%s'", g_data, b);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs 3 --resume --data '%s' --out '%s'", g_data, b);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    assert_true(files_equal(a, b));
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs 2 --data '%s' --out '%s'", g_data, b);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    assert_false(files_equal(a, b)); /* sanity: 2 epochs differ from 3, so the comparison can fail */
    snprintf(args, sizeof args, "train --quiet --threads 2 --epochs 2 --data '%s' --out '%s'", g_data, a);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    assert_true(files_equal(a, b));
    /* resuming with other options is refused */
    char *err;
    snprintf(args, sizeof args, "train --quiet --epochs 3 --lr 0.01 --resume --data '%s' --out '%s'", g_data, b);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "other training options"));
    free(err);
    free(a); free(b);
}

static void expect_model_error(const char *model, const char *data, const char *what)
{
    char args[8192], *err;
    snprintf(args, sizeof args, "eval --data '%s' --model '%s'", data, model);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    if (!strstr(err, what))
        fail_msg("expected '%s' in: %s", what, err);
    free(err);
}

static void test_bad_model_files(void **state)
{
    (void)state;
    char *missing = tu_path(g_dir, "missing.safetensors");
    expect_model_error(missing, g_data, "cannot open");
    size_t len;
    char *bytes = tu_read(g_model, &len);
    char *trunc = tu_path(g_dir, "trunc.safetensors");
    tu_write(trunc, bytes, len - 100);
    expect_model_error(trunc, g_data, "trunc.safetensors");
    char *foreign = tu_path(g_dir, "foreign.safetensors");
    tu_write_str(foreign, "this is not a model at all, just some text that is long enough\n");
    expect_model_error(foreign, g_data, "foreign.safetensors");
    /* a float in the middle of the data becomes NaN */
    char *nan = tu_path(g_dir, "nan.safetensors");
    unsigned char qnan[4] = {0x00, 0x00, 0xc0, 0x7f};
    memcpy(bytes + len - 4 * 100, qnan, 4);
    tu_write(nan, bytes, len);
    expect_model_error(nan, g_data, "not finite");
    /* a model of other data: item counts differ */
    char *other = tu_path(g_dir, "other.inter");
    char args[4096];
    snprintf(args, sizeof args, "data synth --quiet --users 100 --items 90 --interactions 2000 --out '%s'", other);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    expect_model_error(g_model, other, "the model has 150 items but the dataset has");
    free(bytes); free(missing); free(trunc); free(foreign); free(nan); free(other);
}

/* A diverging run stops with a message naming the step, and writes no model. */
static void test_divergence_is_reported(void **state)
{
    (void)state;
    char *out = tu_path(g_dir, "diverged.safetensors");
    char args[4096], *err;
    snprintf(args, sizeof args, "train --quiet --lr 10 --dropout 0 --epochs 3 --data '%s' --out '%s'", g_data, out);
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "training diverged"));
    assert_non_null(strstr(err, "at Adam step"));
    assert_false(tu_exists(out));
    free(err);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authors_model_reproduces_logged_ndcg),
        cmocka_unit_test(test_eval_json_has_every_key),
        cmocka_unit_test(test_recommend),
        cmocka_unit_test(test_determinism_and_resume),
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_divergence_is_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
