/* Synthetic sequential interaction logs (see popsteer/synth.h).
 *
 * The model, in generation order:
 *   1. Items: internal index r = popularity rank, weight (r + 1)^-zipf. Topics are dealt
 *      round-robin over a seeded shuffle, so popularity is independent of topic and every
 *      topic has head and tail items. Item tokens are a seeded permutation of
 *      1..n_items plus 1000, user tokens a seeded permutation of 1..n_users, so a loader
 *      must really remap ids.
 *   2. Successors: every item gets SUCC_K successor items with decreasing weights, drawn
 *      mostly from its own topic (popularity-biased or uniform, so tail items appear) and
 *      sometimes from the whole catalogue.
 *   3. Users: a Dirichlet(1) taste over 1-3 topics plus a little exploration; a length
 *      from a shifted lognormal, capped and scaled so lengths sum to n_interactions.
 *   4. Sequences: with probability `markov` the next item is a successor of the previous
 *      one, otherwise an item of a taste topic weighted by popularity. Immediate repeats
 *      never happen; items the user already consumed are usually redrawn.
 *   5. Timestamps: a start time per user plus short in-session gaps, occasional long
 *      breaks and a few zero gaps (ties).
 *
 * Everything comes from xoshiro256** streams seeded by splitmix64 from `seed`, consumed in
 * a fixed order on one thread, so identical options give a byte-identical file. (Across
 * C libraries this also assumes exp/log/pow/cos round alike, as glibc's do everywhere.) */
#include "popsteer/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"

/* ---- tuning constants ------------------------------------------------------------------ */

enum {
    SUCC_K = 8,              /* successors per item: small, so transitions are learnable */
    SUCC_TRIES = 32,         /* draws to find a fresh successor before accepting any item */
    NEXT_TRIES = 16,         /* draws to find an unseen next item before accepting a repeat */
    MAX_TASTE_TOPICS = 3,    /* users concentrate on 1-3 topics */
    LEN_CAP_FACTOR = 20,     /* longest sequence = 20x the mean length */
    OUT_BUF = 1 << 16,       /* output buffer; rows are formatted by hand for speed */
    ROW_MAX = 80,            /* three int64 decimals, two tabs and a newline fit easily */
};

/* A successor slot holds a popular item of the item's own topic, or any item of that topic
 * (this is how tail items become reachable), or else a popular item of any topic. */
static const double SUCC_SAME_TOPIC_POP = 0.70;
static const double SUCC_SAME_TOPIC_UNI = 0.15;
/* Taste draws that ignore topics. Besides modelling exploration, drawing by global
 * popularity keeps the head share near MovieLens levels: heavy users otherwise exhaust
 * their topics' heads and spill into the tail. */
static const double EXPLORE = 0.20;
static const double REPEAT_OK = 0.03;   /* chance an already-seen item is accepted anyway */
static const double LEN_SIGMA = 1.1;    /* lognormal sigma: mean/median of ML-1M lengths ~1.7 */
static const double TS_TIE = 0.03;      /* share of zero gaps, so timestamp ties exist */
static const double TS_BREAK = 0.06;    /* share of gaps that start a new session */
static const double TWO_PI = 6.28318530717958647692;

static const int64_t TS_ORIGIN = 956703932;          /* ML-1M's first timestamp (April 2000) */
static const int64_t TS_START_SPAN = 3 * 365 * 86400; /* users start within three years */
static const int64_t TS_MAX_GAP = 365 * 86400;        /* bounds any single gap */

/* Independent streams per purpose: changing how one stage draws never shifts another. */
enum { STREAM_ITEMS = 1, STREAM_LENGTHS = 2, STREAM_USERS = 3 };

/* ---- PRNG: splitmix64 seeding xoshiro256** -------------------------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    /* Mixing the stream id through splitmix keeps streams of nearby seeds unrelated. */
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1) from the top 53 bits. */
static double rng_unif(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n >= 1, without modulo bias. */
static uint64_t rng_below(rng *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

static double rng_exp(rng *r)
{
    return -log(1.0 - rng_unif(r)); /* 1 - u is in (0, 1] */
}

/* Standard normal by Box-Muller (one value per call keeps the stream order simple). */
static double rng_normal(rng *r)
{
    double u1 = 1.0 - rng_unif(r);
    double u2 = rng_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

/* Fisher-Yates shuffle of 0..n-1 into perm. */
static void rng_permutation(rng *r, int32_t *perm, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)rng_below(r, (uint64_t)i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Index of a draw from cumulative weights cum[0..n-1] (binary search, O(log n)). Falls
 * back to a uniform index if every weight underflowed to zero (huge zipf). */
static int32_t draw_cum(rng *r, const double *cum, int32_t n)
{
    double total = cum[n - 1];
    if (!(total > 0))
        return (int32_t)rng_below(r, (uint64_t)n);
    double u = rng_unif(r) * total;
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- options --------------------------------------------------------------------------- */

void ps_synth_options_init(ps_synth_options *o)
{
    o->n_users = 2000;
    o->n_items = 1500;
    o->n_interactions = 80000;
    o->min_len = 5;
    o->n_topics = 20;
    o->zipf = 1.0;
    o->markov = 0.5;
    o->seed = 42;
}

void ps_synth_options_ml1m(ps_synth_options *o)
{
    ps_synth_options_init(o);
    o->n_users = 6040;
    o->n_items = 3416;
    o->n_interactions = 1000000;
    o->min_len = 20;
    o->n_topics = 18;
    o->zipf = 0.9;
    o->markov = 0.5;
}

void ps_synth_options_ml20m(ps_synth_options *o)
{
    ps_synth_options_ml1m(o);
    o->n_users = 138493;
    o->n_items = 26744;
    o->n_interactions = 20000263;
}

static int validate(const ps_synth_options *o, ps_error *err)
{
    if (o->n_users < 1)
        return ps_fail(err, "synth: n_users must be >= 1 (got %ld)", (long)o->n_users);
    if (o->n_items < 2)
        return ps_fail(err, "synth: n_items must be >= 2 (got %ld)", (long)o->n_items);
    if (o->n_topics < 1 || o->n_topics > o->n_items)
        return ps_fail(err, "synth: n_topics must be between 1 and n_items = %ld (got %d)",
                       (long)o->n_items, o->n_topics);
    if (o->min_len < 3)
        return ps_fail(err, "synth: min_len must be >= 3, the shortest sequence the loader "
                            "keeps (got %d)", o->min_len);
    if (!(o->markov >= 0.0 && o->markov <= 1.0)) /* also rejects NaN */
        return ps_fail(err, "synth: markov must be between 0 and 1 (got %g)", o->markov);
    if (!(o->zipf > 0.0) || !isfinite(o->zipf))
        return ps_fail(err, "synth: zipf must be a finite number > 0 (got %g)", o->zipf);
    int64_t need = (int64_t)o->n_users * o->min_len; /* both < 2^31: cannot overflow */
    if (o->n_interactions < need)
        return ps_fail(err, "synth: n_interactions must be >= n_users * min_len = %lld "
                            "(got %lld)", (long long)need, (long long)o->n_interactions);
    return PS_OK;
}

/* ---- the item model -------------------------------------------------------------------- */

typedef struct model {
    int32_t n_items, n_topics;
    double *pop_cum;        /* [n_items] cumulative popularity over ranks */
    int32_t *topic_of;      /* [n_items] */
    int32_t *topic_off;     /* [n_topics + 1] topic t's items are topic_items[off[t]..off[t+1]) */
    int32_t *topic_items;   /* [n_items] ascending rank within each topic */
    double *topic_cum;      /* [n_items] cumulative popularity within each topic */
    int32_t *succ;          /* [n_items * SUCC_K] */
    double succ_cum[SUCC_K];/* shared slot weights 1/(j+1): slot 0 is the usual successor */
    int32_t *item_token;    /* [n_items] token minus 1000 */
    int32_t *user_token;    /* [n_users] */
} model;

static void model_free(model *m)
{
    free(m->pop_cum);
    free(m->topic_of);
    free(m->topic_off);
    free(m->topic_items);
    free(m->topic_cum);
    free(m->succ);
    free(m->item_token);
    free(m->user_token);
    memset(m, 0, sizeof *m);
}

static int model_alloc(model *m, const ps_synth_options *o, ps_error *err)
{
    size_t n = (size_t)o->n_items;
    memset(m, 0, sizeof *m);
    m->n_items = o->n_items;
    m->n_topics = o->n_topics;
    if (!(m->pop_cum = ps_calloc(n, sizeof(double), "item popularity", err)) ||
        !(m->topic_of = ps_calloc(n, sizeof(int32_t), "item topics", err)) ||
        !(m->topic_off = ps_calloc((size_t)o->n_topics + 1, sizeof(int32_t), "topic offsets", err)) ||
        !(m->topic_items = ps_calloc(n, sizeof(int32_t), "topic items", err)) ||
        !(m->topic_cum = ps_calloc(n, sizeof(double), "topic popularity", err)) ||
        !(m->succ = ps_calloc(n, SUCC_K * sizeof(int32_t), "item successors", err)) ||
        !(m->item_token = ps_calloc(n, sizeof(int32_t), "item tokens", err)) ||
        !(m->user_token = ps_calloc((size_t)o->n_users, sizeof(int32_t), "user tokens", err))) {
        model_free(m);
        return PS_ERR;
    }
    return PS_OK;
}

static double popularity(const ps_synth_options *o, int32_t rank)
{
    return pow((double)rank + 1.0, -o->zipf);
}

/* Round-robin over a shuffle: topic sizes differ by at most one and every topic gets
 * items from the whole popularity range. Items are then grouped by topic in rank order
 * (a counting sort) with cumulative popularity per group. */
static void assign_topics(model *m, const ps_synth_options *o, rng *r, int32_t *scratch)
{
    rng_permutation(r, scratch, m->n_items);
    for (int32_t k = 0; k < m->n_items; k++)
        m->topic_of[scratch[k]] = k % m->n_topics;
    for (int32_t i = 0; i < m->n_items; i++)
        m->topic_off[m->topic_of[i] + 1]++;
    for (int32_t t = 0; t < m->n_topics; t++)
        m->topic_off[t + 1] += m->topic_off[t];
    memcpy(scratch, m->topic_off, (size_t)m->n_topics * sizeof(int32_t));
    for (int32_t i = 0; i < m->n_items; i++)
        m->topic_items[scratch[m->topic_of[i]]++] = i;
    for (int32_t t = 0; t < m->n_topics; t++) {
        double acc = 0;
        for (int32_t k = m->topic_off[t]; k < m->topic_off[t + 1]; k++) {
            acc += popularity(o, m->topic_items[k]);
            m->topic_cum[k] = acc;
        }
    }
}

static int32_t topic_size(const model *m, int32_t t)
{
    return m->topic_off[t + 1] - m->topic_off[t];
}

/* A popularity-weighted item of topic t. */
static int32_t draw_in_topic(const model *m, rng *r, int32_t t)
{
    int32_t off = m->topic_off[t];
    return m->topic_items[off + draw_cum(r, m->topic_cum + off, topic_size(m, t))];
}

static int32_t draw_global(const model *m, rng *r)
{
    return draw_cum(r, m->pop_cum, m->n_items);
}

/* Any item except `not` (n_items >= 2 guarantees one exists). */
static int32_t draw_other(const model *m, rng *r, int32_t not)
{
    int32_t x = (int32_t)rng_below(r, (uint64_t)m->n_items - 1);
    return x >= not ? x + 1 : x;
}

/* One successor candidate of item i: mostly its topic, popular or not, sometimes global. */
static int32_t successor_candidate(const model *m, rng *r, int32_t i)
{
    int32_t t = m->topic_of[i];
    double u = rng_unif(r);
    if (u < SUCC_SAME_TOPIC_POP)
        return draw_in_topic(m, r, t);
    if (u < SUCC_SAME_TOPIC_POP + SUCC_SAME_TOPIC_UNI)
        return m->topic_items[m->topic_off[t] + (int32_t)rng_below(r, (uint64_t)topic_size(m, t))];
    return draw_global(m, r);
}

static int in_list(const int32_t *list, int n, int32_t x)
{
    for (int k = 0; k < n; k++)
        if (list[k] == x)
            return 1;
    return 0;
}

/* Distinct successors when possible; a duplicate only merges two slots' weights, so after
 * SUCC_TRIES failures (tiny topics or catalogues) any other item is accepted. */
static void build_successors(model *m, rng *r)
{
    for (int32_t i = 0; i < m->n_items; i++) {
        int32_t *list = m->succ + (size_t)i * SUCC_K;
        for (int j = 0; j < SUCC_K; j++) {
            int32_t pick = -1;
            for (int tries = 0; tries < SUCC_TRIES && pick < 0; tries++) {
                int32_t c = successor_candidate(m, r, i);
                if (c != i && !in_list(list, j, c))
                    pick = c;
            }
            list[j] = pick >= 0 ? pick : draw_other(m, r, i);
        }
    }
    double acc = 0;
    for (int j = 0; j < SUCC_K; j++) {
        acc += 1.0 / (j + 1);
        m->succ_cum[j] = acc;
    }
}

static int model_build(model *m, const ps_synth_options *o, ps_error *err)
{
    if (model_alloc(m, o, err) != PS_OK)
        return PS_ERR;
    rng r;
    rng_seed(&r, o->seed, STREAM_ITEMS);
    double acc = 0;
    for (int32_t i = 0; i < m->n_items; i++) {
        acc += popularity(o, i);
        m->pop_cum[i] = acc;
    }
    /* item_token doubles as scratch space for the topic shuffle before it is filled. */
    assign_topics(m, o, &r, m->item_token);
    build_successors(m, &r);
    rng_permutation(&r, m->item_token, m->n_items);
    rng_permutation(&r, m->user_token, o->n_users);
    return PS_OK;
}

/* ---- sequence lengths ------------------------------------------------------------------ */

static double capped_extra_sum(const double *x, int32_t n, double scale, double cap)
{
    double s = 0;
    for (int32_t u = 0; u < n; u++)
        s += fmin(cap, scale * x[u]);
    return s;
}

/* len[u] = min_len + min(cap - min_len, scale * X_u), X_u lognormal, with scale found by
 * bisection so the total matches n_interactions, then rounding residue spread by +-1. */
static int draw_lengths(const ps_synth_options *o, int64_t *len, ps_error *err)
{
    int32_t n = o->n_users;
    double *x = ps_calloc((size_t)n, sizeof(double), "sequence lengths", err);
    if (!x)
        return PS_ERR;
    rng r;
    rng_seed(&r, o->seed, STREAM_LENGTHS);
    for (int32_t u = 0; u < n; u++)
        x[u] = exp(LEN_SIGMA * rng_normal(&r));

    /* fmin keeps the conversion defined for absurd n_interactions. */
    int64_t cap = (int64_t)fmin(9e18, (double)LEN_CAP_FACTOR * (double)o->n_interactions / n);
    if (cap < o->min_len)
        cap = o->min_len;
    double extra = (double)(o->n_interactions - (int64_t)n * o->min_len);
    double room = (double)(cap - o->min_len);
    double lo = 0, hi = 1;
    for (int k = 0; k < 2000 && capped_extra_sum(x, n, hi, room) < extra; k++)
        hi *= 2;
    for (int k = 0; k < 100; k++) {
        double mid = 0.5 * (lo + hi);
        if (capped_extra_sum(x, n, mid, room) < extra)
            lo = mid;
        else
            hi = mid;
    }
    int64_t total = 0;
    for (int32_t u = 0; u < n; u++) {
        len[u] = o->min_len + (int64_t)llround(fmin(room, hi * x[u]));
        total += len[u];
    }
    free(x);

    /* Rounding leaves at most a few rows per user of residue; every user can absorb one
     * in the needed direction because n * cap >= n_interactions >= n * min_len. */
    int64_t diff = o->n_interactions - total;
    while (diff != 0) {
        int64_t before = diff;
        for (int32_t u = 0; u < n && diff != 0; u++) {
            if (diff > 0 && len[u] < cap) {
                len[u]++;
                diff--;
            } else if (diff < 0 && len[u] > o->min_len) {
                len[u]--;
                diff++;
            }
        }
        if (diff == before)
            break; /* unreachable given the bounds; never loop forever */
    }
    return PS_OK;
}

/* ---- users and their sequences --------------------------------------------------------- */

typedef struct taste {
    int n;
    int32_t topic[MAX_TASTE_TOPICS];
    double cum[MAX_TASTE_TOPICS];
} taste;

/* Dirichlet(1) weights (normalised exponentials) over 1-3 distinct random topics. */
static void draw_taste(const model *m, rng *r, taste *t)
{
    double u = rng_unif(r);
    t->n = u < 0.3 ? 1 : u < 0.7 ? 2 : 3;
    if (t->n > m->n_topics)
        t->n = m->n_topics;
    double acc = 0;
    for (int k = 0; k < t->n; k++) {
        int32_t c;
        do
            c = (int32_t)rng_below(r, (uint64_t)m->n_topics);
        while (in_list(t->topic, k, c));
        t->topic[k] = c;
        acc += rng_exp(r);
        t->cum[k] = acc;
    }
}

static int32_t draw_from_taste(const model *m, rng *r, const taste *t)
{
    if (rng_unif(r) < EXPLORE)
        return draw_global(m, r);
    int k = (int)draw_cum(r, t->cum, t->n);
    return draw_in_topic(m, r, t->topic[k]);
}

/* The next item after prev (-1 at the start). seen[i] == stamp marks items this user
 * already consumed: those are redrawn most of the time, the previous item always. */
static int32_t draw_next(const model *m, rng *r, const ps_synth_options *o, const taste *t,
                         int32_t prev, const int32_t *seen, int32_t stamp)
{
    for (int tries = 0; tries < NEXT_TRIES; tries++) {
        int32_t c;
        if (prev >= 0 && rng_unif(r) < o->markov)
            c = m->succ[(size_t)prev * SUCC_K + draw_cum(r, m->succ_cum, SUCC_K)];
        else
            c = draw_from_taste(m, r, t);
        if (c == prev)
            continue;
        if (seen[c] == stamp && rng_unif(r) >= REPEAT_OK)
            continue;
        return c;
    }
    return prev >= 0 ? draw_other(m, r, prev) : draw_global(m, r);
}

static int64_t draw_gap(rng *r)
{
    double u = rng_unif(r);
    double g;
    if (u < TS_TIE)
        return 0;
    if (u < TS_TIE + TS_BREAK)
        g = 3600.0 + 86400.0 * exp(1.5 * rng_normal(r)); /* a new session: hours to weeks */
    else
        g = 20.0 + 120.0 * exp(rng_normal(r));           /* within a session: ~minutes */
    return g < (double)TS_MAX_GAP ? (int64_t)g : TS_MAX_GAP;
}

/* ---- output ---------------------------------------------------------------------------- */

typedef struct writer {
    FILE *fp;
    char buf[OUT_BUF];
    size_t len;
    int failed; /* errno of the first failed write, 0 while all is well */
} writer;

static void writer_flush(writer *w)
{
    if (w->len && !w->failed && fwrite(w->buf, 1, w->len, w->fp) != w->len)
        w->failed = errno ? errno : EIO;
    w->len = 0;
}

static void put_u64(writer *w, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        w->buf[w->len++] = tmp[--n];
}

static void put_row(writer *w, uint64_t user, uint64_t item, uint64_t ts)
{
    if (w->len + ROW_MAX > sizeof w->buf)
        writer_flush(w);
    put_u64(w, user);
    w->buf[w->len++] = '\t';
    put_u64(w, item);
    w->buf[w->len++] = '\t';
    put_u64(w, ts);
    w->buf[w->len++] = '\n';
}

/* Generates every user's sequence in user order and streams the rows to w. */
static int write_rows(const model *m, const ps_synth_options *o, const int64_t *len,
                      writer *w, ps_error *err)
{
    int32_t *seen = ps_calloc((size_t)m->n_items, sizeof(int32_t), "seen marks", err);
    if (!seen)
        return PS_ERR;
    rng r;
    rng_seed(&r, o->seed, STREAM_USERS);
    for (int32_t u = 0; u < o->n_users && !w->failed; u++) {
        taste t;
        draw_taste(m, &r, &t);
        int64_t ts = TS_ORIGIN + (int64_t)rng_below(&r, (uint64_t)TS_START_SPAN);
        int32_t prev = -1;
        for (int64_t p = 0; p < len[u]; p++) {
            int32_t item = draw_next(m, &r, o, &t, prev, seen, u + 1);
            seen[item] = u + 1;
            if (p > 0)
                ts += draw_gap(&r);
            put_row(w, (uint64_t)m->user_token[u] + 1, (uint64_t)m->item_token[item] + 1001,
                    (uint64_t)ts);
            prev = item;
        }
    }
    free(seen);
    return PS_OK;
}

/* Streams header and rows into an atomic temporary file; commits only a complete file. */
static int write_file(const model *m, const ps_synth_options *o, const int64_t *len,
                      const char *path, ps_error *err)
{
    static const char header[] = "user_id:token\titem_id:token\ttimestamp:float\n";
    writer *w = ps_calloc(1, sizeof *w, "an output buffer", err);
    if (!w)
        return PS_ERR;
    ps_atomic_file af;
    if (ps_atomic_open(&af, path, err) != PS_OK) {
        free(w);
        return PS_ERR;
    }
    w->fp = af.fp;
    memcpy(w->buf, header, sizeof header - 1);
    w->len = sizeof header - 1;
    int rc = write_rows(m, o, len, w, err);
    if (rc == PS_OK) {
        writer_flush(w);
        if (w->failed)
            rc = ps_fail(err, "%s: write failed: %s", path, strerror(w->failed));
    }
    if (rc == PS_OK)
        rc = ps_atomic_commit(&af, err); /* removes the temporary file itself on failure */
    else
        ps_atomic_abort(&af);
    free(w);
    return rc;
}

int ps_synth_write(const ps_synth_options *o, const char *path, ps_error *err)
{
    if (!o || !path)
        return ps_fail(err, "synth: options and output path are required");
    /* Validation comes first, so a bad option never creates or touches a file. */
    if (validate(o, err) != PS_OK)
        return PS_ERR;
    int64_t *len = ps_calloc((size_t)o->n_users, sizeof(int64_t), "sequence lengths", err);
    if (!len)
        return PS_ERR;
    model m;
    memset(&m, 0, sizeof m);
    int rc = PS_ERR;
    if (draw_lengths(o, len, err) == PS_OK && model_build(&m, o, err) == PS_OK)
        rc = write_file(&m, o, len, path, err);
    model_free(&m);
    free(len);
    return rc;
}
