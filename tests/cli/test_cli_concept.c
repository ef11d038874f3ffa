/* Concept steering end to end (issue 14 §3) on a log with a planted concept: 30 of 200 items
 * ("c…") are consumed almost only by a third of the users. A concept probe with that item set
 * must find latents whose top items are the concept's, steering with its table must move the
 * concept's share of the top-10 lists up (and the table of not:S must move it down), the probe
 * of tail versus head must be the paper's probe byte for byte, and bad group options fail
 * clearly. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_USERS 420
#define N_CONCEPT 30
#define N_OTHER 170

static char *g_dir, *g_data, *g_model, *g_sae, *g_ids, *g_toward, *g_away;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Fans (every third user) walk the concept items, the others the rest, each mostly along a
 * fixed successor chain (so SASRec has sequential structure to learn), with a few items from
 * the other side so that the two tastes are not entirely disjoint. */
static void write_planted_log(const char *path)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "user_id:token\titem_id:token\ttimestamp:float\n");
    uint64_t s = 12345;
    long t = 0;
    for (int u = 0; u < N_USERS; u++) {
        int fan = u % 3 == 0, n = 15 + (int)(lcg(&s) % 20);
        int cur = (int)(lcg(&s) % (fan ? N_CONCEPT : N_OTHER));
        for (int p = 0; p < n; p++) {
            int own = lcg(&s) % 100 < 92, item;
            if (own) {
                int size = fan ? N_CONCEPT : N_OTHER;
                cur = lcg(&s) % 100 < 60 ? (cur + 1) % size : (int)(lcg(&s) % (uint64_t)size);
                item = cur;
            } else { /* the other side's items, skewed to its first few (popular) ones */
                item = (int)(lcg(&s) % 8);
            }
            len += (size_t)snprintf(buf + len, cap - len, "u%d\t%c%d\t%ld\n", u, fan == own ? 'c' : 'o', item, t++);
            assert_true(len < cap - 64);
        }
    }
    tu_write(path, buf, len);
    free(buf);
}

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "planted.inter");
    g_model = tu_path(g_dir, "m.safetensors");
    g_sae = tu_path(g_dir, "sae.safetensors");
    g_ids = tu_path(g_dir, "concept.txt");
    g_toward = tu_path(g_dir, "toward.csv");
    g_away = tu_path(g_dir, "away.csv");
    write_planted_log(g_data);
    char ids[N_CONCEPT * 8 + 32] = "# the planted concept\n";
    for (int i = 0; i < N_CONCEPT; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "c%d\n", i);
    tu_write_str(g_ids, ids);
    char a[4096];
    snprintf(a, sizeof a, "train --quiet --threads 2 --epochs 8 --data '%s' --out '%s'", g_data, g_model);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "sae train --quiet --threads 2 --scale 8 --k 16 --epochs 15 --data '%s' --model '%s' --out '%s'",
             g_data, g_model, g_sae);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "probe --quiet --threads 2 --data '%s' --model '%s' --sae '%s' --group '%s' --out '%s'", g_data,
             g_model, g_sae, g_ids, g_toward);
    if (tu_run_cli_ok(a))
        return -1;
    snprintf(a, sizeof a, "probe --quiet --threads 2 --data '%s' --model '%s' --sae '%s' --group 'not:%s' --out '%s'",
             g_data, g_model, g_sae, g_ids, g_away);
    return tu_run_cli_ok(a) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir); free(g_data); free(g_model); free(g_sae); free(g_ids); free(g_toward); free(g_away);
    return 0;
}

/* The latent with the most negative d (the concept side) and its top_items field. */
static double strongest_concept_latent(const char *csv, char *top, size_t size)
{
    char *text = tu_read(csv, NULL);
    double best = 0;
    top[0] = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        int j;
        double d;
        if (sscanf(line + 1, "%d,%lf", &j, &d) != 2)
            fail_msg("bad CSV row: %.60s", line + 1);
        const char *q = strchr(line + 1, '"');
        const char *end = q ? strchr(q + 1, '"') : NULL;
        if (d < best && q && end) {
            best = d;
            snprintf(top, size, "%.*s", (int)(end - q - 1), q + 1);
        }
    }
    free(text);
    return best;
}

/* The strongest concept latent is about the concept: large |d|, and its top items are
 * concept items. */
static void test_probe_finds_the_planted_concept(void **state)
{
    (void)state;
    char top[1024];
    double d = strongest_concept_latent(g_toward, top, sizeof top);
    printf("strongest concept latent: d %.3f, top items %s\n", d, top);
    assert_true(d < -1.0);
    int concept = 0, all = 0;
    for (char *p = strtok(top, "|"); p; p = strtok(NULL, "|"), all++)
        concept += p[0] == 'c';
    printf("%d of its %d top items are concept items\n", concept, all);
    assert_true(all >= 5);
    assert_true(concept * 10 >= all * 8);
}

static double group_share(const char *latents, const char *alpha)
{
    char a[8192], *out, *err;
    snprintf(a, sizeof a,
             "eval --json --split valid --data '%s' --model '%s' --sae '%s' --latents '%s' --alpha %s --neurons 64 "
             "--group '%s'",
             g_data, g_model, g_sae, latents, alpha, g_ids);
    if (tu_run_cli(a, &out, &err) != 0)
        fail_msg("eval failed: %s", err);
    double share = tu_json_number(out, "group_share@10"), ndcg = tu_json_number(out, "ndcg@10");
    printf("%s alpha %s: concept share %.4f, NDCG@10 %.4f\n", strstr(latents, "away") ? "away" : "toward", alpha,
           share, ndcg);
    free(out);
    free(err);
    return share;
}

static void test_steering_moves_the_concept_share(void **state)
{
    (void)state;
    double base = group_share(g_toward, "0");
    double toward = group_share(g_toward, "2");
    double away_base = group_share(g_away, "0");
    double away = group_share(g_away, "2");
    tu_assert_near(away_base, base, 1e-12); /* alpha 0 is the SAE reconstruction either way */
    assert_true(toward > base + 0.05);
    assert_true(away < base - 0.02);
}

/* The generalised probe with the popularity labels as the group is the paper's probe. */
static void test_tail_versus_head_is_the_paper_probe(void **state)
{
    (void)state;
    char *paper = tu_path(g_dir, "paper.csv"), *group = tu_path(g_dir, "group.csv");
    char a[4096];
    snprintf(a, sizeof a, "probe --quiet --threads 2 --cap 500 --data '%s' --model '%s' --sae '%s' --out '%s'", g_data,
             g_model, g_sae, paper);
    assert_int_equal(tu_run_cli_ok(a), 0);
    snprintf(a, sizeof a,
             "probe --quiet --threads 2 --cap 500 --data '%s' --model '%s' --sae '%s' --group tail --versus head "
             "--out '%s'",
             g_data, g_model, g_sae, group);
    assert_int_equal(tu_run_cli_ok(a), 0);
    assert_true(tu_same_file(paper, group));
    free(paper);
    free(group);
}

static void expect_cli_error(const char *args, int status, const char *want)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    printf("%s\n", err);
    assert_int_equal(rc, status);
    if (!strstr(err, want))
        fail_msg("stderr '%s' does not say '%s'", err, want);
    free(out);
    free(err);
}

static void test_bad_group_options(void **state)
{
    (void)state;
    char *out = tu_path(g_dir, "never.csv");
    char base[4096], a[8192];
    snprintf(base, sizeof base, "probe --quiet --data '%s' --model '%s' --sae '%s' --out '%s'", g_data, g_model,
             g_sae, out);
    snprintf(a, sizeof a, "%s --versus head", base);
    expect_cli_error(a, 2, "--versus needs --group");
    snprintf(a, sizeof a, "%s --group genre:Horror", base);
    expect_cli_error(a, 1, "needs the MovieLens u.item file");
    snprintf(a, sizeof a, "%s --group '%s' --versus '%s'", base, g_ids, g_ids);
    expect_cli_error(a, 1, "must be disjoint");
    snprintf(a, sizeof a, "%s --group new:2", base);
    expect_cli_error(a, 1, "between 0 and 1");
    assert_false(tu_exists(out));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_finds_the_planted_concept),
        cmocka_unit_test(test_steering_moves_the_concept_share),
        cmocka_unit_test(test_tail_versus_head_is_the_paper_probe),
        cmocka_unit_test(test_bad_group_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
