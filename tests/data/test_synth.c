/* Tests of the synthetic log generator: determinism, file format, popularity concentration,
 * learnable sequential structure and option validation. The file is parsed here, not with
 * the dataset loader, so these tests check the generator alone. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"
#include "popsteer/synth.h"

static const char HEADER[] = "user_id:token\titem_id:token\ttimestamp:float\n";

/* A generated file, parsed: users are numbered by block (0..n_users-1) and items densely
 * by sorted token (0..n_items-1); the raw tokens are kept to check they are not dense. */
typedef struct parsed {
    int64_t n_rows;
    int64_t *user_tok, *item_tok, *ts; /* [n_rows] raw values */
    int32_t *item;                     /* [n_rows] dense item index */
    int32_t n_users, n_items;
    int64_t *user_off;                 /* [n_users + 1] rows of block u */
    int64_t *item_tokens;              /* [n_items] sorted distinct item tokens */
} parsed;

static void parsed_free(parsed *p)
{
    free(p->user_tok);
    free(p->item_tok);
    free(p->ts);
    free(p->item);
    free(p->user_off);
    free(p->item_tokens);
    memset(p, 0, sizeof *p);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Parses one strictly decimal field ending at `end` (a tab or newline); returns the next
 * position. Fails the test on anything else, so the column count is checked too. */
static const char *parse_field(const char *s, char end, int64_t *out)
{
    int64_t v = 0;
    const char *start = s;
    while (*s >= '0' && *s <= '9') {
        assert_true(v < INT64_MAX / 10);
        v = v * 10 + (*s - '0');
        s++;
    }
    assert_true(s > start);
    assert_int_equal(*s, end);
    *out = v;
    return s + 1;
}

static void count_rows(const char *body, parsed *p)
{
    for (const char *s = body; *s; s++)
        p->n_rows += *s == '\n';
    p->user_tok = calloc((size_t)p->n_rows + 1, sizeof(int64_t));
    p->item_tok = calloc((size_t)p->n_rows + 1, sizeof(int64_t));
    p->ts = calloc((size_t)p->n_rows + 1, sizeof(int64_t));
    p->item = calloc((size_t)p->n_rows + 1, sizeof(int32_t));
    p->user_off = calloc((size_t)p->n_rows + 2, sizeof(int64_t));
    assert_true(p->user_tok && p->item_tok && p->ts && p->item && p->user_off);
}

/* User blocks: a new block starts whenever the user token changes; a token that comes
 * back later would mean rows are not grouped by user. */
static void index_users(parsed *p)
{
    p->n_users = 0;
    for (int64_t r = 0; r < p->n_rows; r++)
        if (r == 0 || p->user_tok[r] != p->user_tok[r - 1])
            p->user_off[p->n_users++] = r;
    p->user_off[p->n_users] = p->n_rows;
    int64_t *toks = calloc((size_t)p->n_users + 1, sizeof(int64_t));
    assert_non_null(toks);
    for (int32_t u = 0; u < p->n_users; u++)
        toks[u] = p->user_tok[p->user_off[u]];
    qsort(toks, (size_t)p->n_users, sizeof *toks, cmp_i64);
    for (int32_t u = 1; u < p->n_users; u++)
        assert_true(toks[u] != toks[u - 1]);
    free(toks);
}

static void index_items(parsed *p)
{
    int64_t *toks = calloc((size_t)p->n_rows + 1, sizeof(int64_t));
    assert_non_null(toks);
    memcpy(toks, p->item_tok, (size_t)p->n_rows * sizeof(int64_t));
    qsort(toks, (size_t)p->n_rows, sizeof *toks, cmp_i64);
    int32_t n = 0;
    for (int64_t r = 0; r < p->n_rows; r++)
        if (r == 0 || toks[r] != toks[n - 1])
            toks[n++] = toks[r];
    p->n_items = n;
    p->item_tokens = toks;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t *hit = bsearch(&p->item_tok[r], toks, (size_t)n, sizeof *toks, cmp_i64);
        assert_non_null(hit);
        p->item[r] = (int32_t)(hit - toks);
    }
}

static void parse_file(const char *path, parsed *p)
{
    memset(p, 0, sizeof *p);
    char *data = NULL;
    size_t len = 0;
    ps_error err;
    assert_int_equal(ps_read_file(path, 0, &data, &len, &err), PS_OK);
    assert_true(len >= sizeof HEADER - 1);
    assert_memory_equal(data, HEADER, sizeof HEADER - 1);
    assert_int_equal(data[len - 1], '\n');
    const char *s = data + sizeof HEADER - 1;
    count_rows(s, p);
    for (int64_t r = 0; r < p->n_rows; r++) {
        s = parse_field(s, '\t', &p->user_tok[r]);
        s = parse_field(s, '\t', &p->item_tok[r]);
        s = parse_field(s, '\n', &p->ts[r]);
    }
    assert_int_equal(*s, '\0');
    free(data);
    index_users(p);
    index_items(p);
}

static void generate(const ps_synth_options *o, const char *path)
{
    ps_error err;
    err.msg[0] = '\0';
    int rc = ps_synth_write(o, path, &err);
    if (rc != PS_OK)
        fail_msg("ps_synth_write: %s", err.msg);
}

/* Generates with o into a fresh directory and parses the result. */
static void generate_parsed(const ps_synth_options *o, parsed *p)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "synth.inter");
    generate(o, path);
    parse_file(path, p);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary file left over */
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static int64_t user_len(const parsed *p, int32_t u)
{
    return p->user_off[u + 1] - p->user_off[u];
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_option_presets(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_init(&o);
    assert_int_equal(o.n_users, 2000);
    assert_int_equal(o.n_items, 1500);
    assert_int_equal(o.n_interactions, 80000);
    assert_int_equal(o.min_len, 5);
    assert_int_equal(o.n_topics, 20);
    assert_true(o.zipf == 1.0 && o.markov == 0.5);
    assert_int_equal(o.seed, 42);
    ps_synth_options_ml1m(&o);
    assert_int_equal(o.n_users, 6040);
    assert_int_equal(o.n_items, 3416);
    assert_int_equal(o.n_interactions, 1000000);
    assert_int_equal(o.min_len, 20);
    assert_int_equal(o.n_topics, 18);
    assert_true(o.zipf == 0.9 && o.markov == 0.5);
    assert_int_equal(o.seed, 42);
}

static void test_deterministic(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *a = tu_path(dir, "a.inter"), *b = tu_path(dir, "b.inter"), *c = tu_path(dir, "c.inter");
    ps_synth_options o;
    ps_synth_options_init(&o);
    generate(&o, a);
    generate(&o, b);
    o.seed = 43;
    generate(&o, c);

    char *da, *db, *dc;
    size_t la, lb, lc;
    ps_error err;
    assert_int_equal(ps_read_file(a, 0, &da, &la, &err), PS_OK);
    assert_int_equal(ps_read_file(b, 0, &db, &lb, &err), PS_OK);
    assert_int_equal(ps_read_file(c, 0, &dc, &lc, &err), PS_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_true(la != lc || memcmp(da, dc, la) != 0);
    free(da);
    free(db);
    free(dc);
    tu_rmtree(dir);
    free(a);
    free(b);
    free(c);
    free(dir);
}

/* Header, columns, grouping, chronology, lengths and non-dense tokens at the defaults. */
static void test_format_and_lengths(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_init(&o);
    parsed p;
    generate_parsed(&o, &p);

    double target = (double)o.n_interactions;
    assert_true((double)p.n_rows >= 0.95 * target && (double)p.n_rows <= 1.05 * target);
    assert_int_equal(p.n_users, o.n_users);
    assert_true(p.n_items >= 2 && p.n_items <= o.n_items);

    int64_t ties = 0, user_not_dense = 0, max_len = 0;
    int64_t *lens = calloc((size_t)p.n_users, sizeof(int64_t));
    assert_non_null(lens);
    for (int32_t u = 0; u < p.n_users; u++) {
        lens[u] = user_len(&p, u);
        assert_true(lens[u] >= o.min_len);
        max_len = lens[u] > max_len ? lens[u] : max_len;
        user_not_dense += p.user_tok[p.user_off[u]] != u + 1;
        for (int64_t r = p.user_off[u] + 1; r < p.user_off[u + 1]; r++) {
            assert_true(p.ts[r] >= p.ts[r - 1]);
            ties += p.ts[r] == p.ts[r - 1];
            assert_true(p.item[r] != p.item[r - 1]); /* no immediate repeats */
        }
    }
    assert_true(ties > 0);          /* loaders must meet equal timestamps */
    assert_true(user_not_dense > 0); /* user tokens are not the order of appearance */
    /* Item tokens are not 1..n_items: a loader that uses them as ids would overflow. */
    assert_true(p.item_tokens[p.n_items - 1] > o.n_items);

    /* Heavy tail: mean well above the median, and some users far longer than the mean. */
    qsort(lens, (size_t)p.n_users, sizeof *lens, cmp_i64);
    double mean = (double)p.n_rows / p.n_users;
    assert_true(mean > 1.2 * (double)lens[p.n_users / 2]);
    assert_true((double)max_len > 5 * mean);
    assert_true((double)max_len <= 20 * mean + 1);
    free(lens);
    parsed_free(&p);
}

static int cmp_i64_desc(const void *a, const void *b)
{
    return cmp_i64(b, a);
}

static void test_popularity_concentration(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_init(&o);
    parsed p;
    generate_parsed(&o, &p);
    int64_t *count = calloc((size_t)o.n_items, sizeof(int64_t));
    assert_non_null(count);
    for (int64_t r = 0; r < p.n_rows; r++)
        count[p.item[r]]++;
    qsort(count, (size_t)o.n_items, sizeof *count, cmp_i64_desc);
    int64_t top = 0;
    for (int32_t k = 0; k < o.n_items / 5; k++)
        top += count[k];
    double share = (double)top / (double)p.n_rows;
    print_message("top-20%% item share at defaults: %.3f\n", share);
    assert_true(share >= 0.45 && share <= 0.80);
    free(count);
    parsed_free(&p);
}

/* argmax of counts[0..n-1], lowest index on ties; -1 if all are zero. */
static int32_t argmax(const int32_t *counts, int32_t n)
{
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++)
        if (counts[i] > 0 && (best < 0 || counts[i] > counts[best]))
            best = i;
    return best;
}

/* "Previous item -> most frequent successor", fit on the first 80 % of every user's
 * transitions and scored on the rest, must beat "always the most popular item" 2x. */
static void test_sequential_structure(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_init(&o);
    parsed p;
    generate_parsed(&o, &p);
    size_t n = (size_t)p.n_items;
    int32_t *pair = calloc(n * n, sizeof(int32_t)); /* pair[prev * n + next] */
    int32_t *pop = calloc(n, sizeof(int32_t));
    int32_t *best_next = calloc(n, sizeof(int32_t));
    assert_true(pair && pop && best_next);

    for (int32_t u = 0; u < p.n_users; u++) {
        int64_t t = user_len(&p, u) - 1, n_fit = (int64_t)(0.8 * (double)t);
        for (int64_t k = 0; k < n_fit; k++) {
            int64_t r = p.user_off[u] + k;
            pair[(size_t)p.item[r] * n + (size_t)p.item[r + 1]]++;
            pop[p.item[r + 1]]++;
        }
    }
    int32_t top = argmax(pop, p.n_items);
    for (size_t i = 0; i < n; i++) {
        int32_t b = argmax(pair + i * n, p.n_items);
        best_next[i] = b >= 0 ? b : top;
    }

    int64_t scored = 0, hits_markov = 0, hits_pop = 0;
    for (int32_t u = 0; u < p.n_users; u++) {
        int64_t t = user_len(&p, u) - 1, n_fit = (int64_t)(0.8 * (double)t);
        for (int64_t k = n_fit; k < t; k++) {
            int64_t r = p.user_off[u] + k;
            scored++;
            hits_markov += best_next[p.item[r]] == p.item[r + 1];
            hits_pop += top == p.item[r + 1];
        }
    }
    print_message("next-item hit rate: successor %.4f, most popular %.4f (%lld scored)\n",
                  (double)hits_markov / scored, (double)hits_pop / scored, (long long)scored);
    assert_true(scored > 1000);
    assert_true(hits_markov >= 2 * hits_pop);
    assert_true(hits_markov > 0);
    free(pair);
    free(pop);
    free(best_next);
    parsed_free(&p);
}

/* The smallest legal problem and every sequence at exactly min_len. */
static void test_edge_sizes(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_init(&o);
    o.n_users = 1;
    o.n_items = 2;
    o.n_topics = 2;
    o.min_len = 3;
    o.n_interactions = 3;
    parsed p;
    generate_parsed(&o, &p);
    assert_int_equal(p.n_rows, 3);
    assert_int_equal(p.n_users, 1);
    assert_true(p.item[0] != p.item[1] && p.item[1] != p.item[2]);
    parsed_free(&p);

    ps_synth_options_init(&o);
    o.n_users = 50;
    o.n_items = 10;
    o.n_topics = 1;
    o.min_len = 7;
    o.n_interactions = 350; /* = n_users * min_len: no room for longer sequences */
    o.markov = 1.0;
    generate_parsed(&o, &p);
    assert_int_equal(p.n_rows, 350);
    for (int32_t u = 0; u < p.n_users; u++)
        assert_int_equal(user_len(&p, u), 7);
    parsed_free(&p);
}

/* The ML-1M-sized preset: right size and shape (generation time is measured elsewhere). */
static void test_ml1m_preset(void **state)
{
    (void)state;
    ps_synth_options o;
    ps_synth_options_ml1m(&o);
    parsed p;
    generate_parsed(&o, &p);
    assert_true(p.n_rows >= 950000 && p.n_rows <= 1050000);
    assert_int_equal(p.n_users, 6040);
    assert_true(p.n_items <= 3416 && p.n_items > 3000);
    for (int32_t u = 0; u < p.n_users; u++)
        assert_true(user_len(&p, u) >= 20);
    parsed_free(&p);
}

typedef struct bad_case {
    const char *name; /* must appear in the message */
    void (*apply)(ps_synth_options *o);
} bad_case;

static void bad_users(ps_synth_options *o) { o->n_users = 0; }
static void bad_items(ps_synth_options *o) { o->n_items = 1; }
static void bad_topics_low(ps_synth_options *o) { o->n_topics = 0; }
static void bad_topics_high(ps_synth_options *o) { o->n_topics = o->n_items + 1; }
static void bad_min_len(ps_synth_options *o) { o->min_len = 2; }
static void bad_markov_low(ps_synth_options *o) { o->markov = -0.1; }
static void bad_markov_high(ps_synth_options *o) { o->markov = 1.5; }
static void bad_markov_nan(ps_synth_options *o) { o->markov = NAN; }
static void bad_zipf(ps_synth_options *o) { o->zipf = 0.0; }
static void bad_zipf_inf(ps_synth_options *o) { o->zipf = INFINITY; }
static void bad_interactions(ps_synth_options *o) { o->n_interactions = (int64_t)o->n_users * o->min_len - 1; }

static void test_invalid_options(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"n_users", bad_users},         {"n_items", bad_items},
        {"n_topics", bad_topics_low},   {"n_topics", bad_topics_high},
        {"min_len", bad_min_len},       {"markov", bad_markov_low},
        {"markov", bad_markov_high},    {"markov", bad_markov_nan},
        {"zipf", bad_zipf},             {"zipf", bad_zipf_inf},
        {"n_interactions", bad_interactions},
    };
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "synth.inter");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ps_synth_options o;
        ps_synth_options_init(&o);
        cases[k].apply(&o);
        ps_error err;
        err.msg[0] = '\0';
        assert_int_equal(ps_synth_write(&o, path, &err), PS_ERR);
        if (!strstr(err.msg, cases[k].name))
            fail_msg("message for bad %s does not name it: \"%s\"", cases[k].name, err.msg);
        assert_int_equal(tu_count_entries(dir), 0);
    }

    /* An existing file survives a failed call untouched. */
    tu_write_str(path, "old\n");
    ps_synth_options o;
    ps_synth_options_init(&o);
    o.min_len = 1;
    ps_error err;
    assert_int_equal(ps_synth_write(&o, path, &err), PS_ERR);
    assert_int_equal(tu_count_entries(dir), 1);
    char *data;
    size_t len;
    assert_int_equal(ps_read_file(path, 0, &data, &len, &err), PS_OK);
    assert_string_equal(data, "old\n");
    free(data);

    /* An unwritable destination is an error, not a crash, and leaves nothing behind. */
    char *missing = tu_path(dir, "no/such/dir.inter");
    ps_synth_options_init(&o);
    assert_int_equal(ps_synth_write(&o, missing, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "no/such/dir.inter"));
    assert_int_equal(tu_count_entries(dir), 1);
    free(missing);

    tu_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_presets),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_format_and_lengths),
        cmocka_unit_test(test_popularity_concentration),
        cmocka_unit_test(test_sequential_structure),
        cmocka_unit_test(test_edge_sizes),
        cmocka_unit_test(test_ml1m_preset),
        cmocka_unit_test(test_invalid_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
