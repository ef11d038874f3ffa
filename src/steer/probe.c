/* Probe (SPEC §4): synthetic popular-only / long-tail-only users, streaming per-latent
 * statistics, Cohen's d and TopK firing counts. */
#include "popsteer/probe.h"
#include "steer/steer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG: xoshiro256** seeded by splitmix64 ------------------------------------------ */

/* Self-contained so that the synthetic users depend on nothing but the seed: another
 * module changing its generator must not change the probe. */
typedef struct probe_rng {
    uint64_t s[4];
} probe_rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One independent stream per (seed, stream id): the id is mixed through splitmix64 first so
 * that neighbouring ids (consecutive rows) do not give correlated states. */
static void rng_seed(probe_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t t = stream;
    uint64_t x = seed ^ splitmix64(&t);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(probe_rng *r)
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

/* Uniform in [0, n), n >= 1, without modulo bias: draws at or above the largest multiple
 * of n are rejected (probability < n / 2^64). */
static uint64_t rng_below(probe_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next(r);
    while (x >= limit);
    return x % n;
}

/* Stream ids: the selection uses its own id, far from the row ids 0..2·n_train. */
#define STREAM_SELECTION UINT64_C(0xfeedfacecafebeef)

/* ---- synthetic users ------------------------------------------------------------------- */

void ps_probe_users_free(ps_probe_users *u)
{
    free(u->seq);
    free(u->len);
    free(u->label);
    free(u->source);
    memset(u, 0, sizeof *u);
}

/* Items whose side is `side` (n of them), ascending by id. */
static int32_t *items_on_side(const ps_dataset *ds, const int8_t *sides, int side, int32_t n, ps_error *err)
{
    int32_t *items = ps_calloc((size_t)n, sizeof *items, "probe item pool", err);
    if (!items)
        return NULL;
    int32_t k = 0;
    for (int32_t i = 1; i <= ds->n_items && k < n; i++)
        if (sides[i] == side)
            items[k++] = i;
    return items;
}

/* Chooses which training prefixes to use, in train order. Selection sampling (Knuth's
 * Algorithm S with integer draws): sample t is kept with probability need / remaining,
 * which makes every cap-subset equally likely and yields it already sorted. */
static void select_prefixes(int64_t n_train, int64_t n_sel, uint64_t seed, int64_t *source)
{
    if (n_sel == n_train) {
        for (int64_t t = 0; t < n_train; t++)
            source[t] = t;
        return;
    }
    probe_rng r;
    rng_seed(&r, seed, STREAM_SELECTION);
    int64_t k = 0;
    for (int64_t t = 0; t < n_train && k < n_sel; t++)
        if ((int64_t)rng_below(&r, (uint64_t)(n_train - t)) < n_sel - k)
            source[k++] = t;
}

static void fill_row(int32_t *row, int len, const int32_t *pool, int32_t n_pool, uint64_t seed, uint64_t stream)
{
    probe_rng r;
    rng_seed(&r, seed, stream);
    for (int p = 0; p < len; p++)
        row[p] = pool[rng_below(&r, (uint64_t)n_pool)];
    /* the rest of the row stays 0 (padding) from calloc */
}

static int check_probe_inputs(const ps_dataset *ds, int64_t cap, ps_error *err)
{
    if (cap < 0)
        return ps_fail(err, "probe cap must be 0 (all training prefixes) or positive (got %lld)", (long long)cap);
    if (ds->n_train < 1)
        return ps_fail(err, "the dataset has no training samples to build probe users from");
    if (ds->max_seq_len < 1)
        return ps_fail(err, "the dataset's maximum sequence length is %d; it must be at least 1", ds->max_seq_len);
    return PS_OK;
}

static int alloc_probe_users(ps_probe_users *u, int64_t n_group, int max_len, ps_error *err)
{
    u->n_group = n_group;
    u->n = 2 * n_group;
    u->max_len = max_len;
    u->seq = ps_calloc((size_t)u->n * (size_t)max_len, sizeof *u->seq, "probe sequences", err);
    u->len = u->seq ? ps_calloc((size_t)u->n, sizeof *u->len, "probe lengths", err) : NULL;
    u->label = u->len ? ps_calloc((size_t)u->n, sizeof *u->label, "probe labels", err) : NULL;
    u->source = u->label ? ps_calloc((size_t)n_group, sizeof *u->source, "probe sources", err) : NULL;
    if (!u->source) {
        ps_probe_users_free(u);
        return PS_ERR;
    }
    return PS_OK;
}

/* Lengths and labels of both groups; checked serially before the parallel fill so that
 * an inconsistent dataset is reported instead of overflowing a row. */
static int set_lengths(const ps_dataset *ds, ps_probe_users *u, int min_len, ps_error *err)
{
    for (int64_t r = 0; r < u->n_group; r++) {
        int len;
        (void)ps_sample_prefix(ds, ds->train[u->source[r]], &len);
        if (len < 0 || len > u->max_len)
            return ps_fail(err, "training sample %lld has a prefix of %d items, outside 0..%d",
                           (long long)u->source[r], len, u->max_len);
        int64_t q = u->n_group + r;
        if (len < min_len)
            len = min_len < u->max_len ? min_len : u->max_len;
        u->len[r] = u->len[q] = len;
        u->label[r] = +1;
        u->label[q] = -1;
    }
    return PS_OK;
}

int ps_probe_users_make(const ps_dataset *ds, int64_t cap, uint64_t seed, ps_probe_users *out, ps_error *err)
{
    memset(out, 0, sizeof *out);
    if (ds->n_head < 1 || ds->n_tail < 1)
        return ps_fail(err,
                       "the probe needs both head and tail items, but the dataset has %d head and %d tail items; "
                       "raise --head-share/--tail-share so that each group gets at least one item",
                       ds->n_head, ds->n_tail);
    return ps_probe_users_make_sides(ds, ds->label, cap, 0, seed, out, err);
}

int ps_probe_users_make_sides(const ps_dataset *ds, const int8_t *sides, int64_t cap, int min_len, uint64_t seed,
                              ps_probe_users *out, ps_error *err)
{
    memset(out, 0, sizeof *out);
    if (check_probe_inputs(ds, cap, err) != PS_OK)
        return PS_ERR;
    if (min_len < 0)
        return ps_fail(err, "the probe's minimum length must be 0 (off) or positive (got %d)", min_len);
    int32_t n_pos = 0, n_neg = 0;
    for (int32_t i = 1; i <= ds->n_items; i++) {
        n_pos += sides[i] > 0;
        n_neg += sides[i] < 0;
    }
    if (n_pos < 1 || n_neg < 1)
        return ps_fail(err, "the probe needs items on both sides, but there are %d items labelled +1 and %d labelled -1",
                       n_pos, n_neg);
    int64_t n_group = (cap > 0 && cap < ds->n_train) ? cap : ds->n_train;
    if (alloc_probe_users(out, n_group, ds->max_seq_len, err) != PS_OK)
        return PS_ERR;
    int32_t *pos = items_on_side(ds, sides, +1, n_pos, err);
    int32_t *neg = pos ? items_on_side(ds, sides, -1, n_neg, err) : NULL;
    if (!neg) {
        free(pos);
        ps_probe_users_free(out);
        return PS_ERR;
    }
    select_prefixes(ds->n_train, n_group, seed, out->source);
    int rc = set_lengths(ds, out, min_len, err);
    if (rc == PS_OK) {
        /* Every row draws from its own stream, named by the training sample it comes from
         * (2t for the +1 side, 2t+1 for the -1 side): the split between threads cannot change a
         * single item, and a capped probe is exactly a subset of the uncapped one. */
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n_group; r++) {
            int64_t q = n_group + r;
            uint64_t t = (uint64_t)out->source[r];
            fill_row(out->seq + r * out->max_len, out->len[r], pos, n_pos, seed, 2 * t);
            fill_row(out->seq + q * out->max_len, out->len[q], neg, n_neg, seed, 2 * t + 1);
        }
    } else {
        ps_probe_users_free(out);
    }
    free(pos);
    free(neg);
    return rc;
}

/* ---- streaming statistics -------------------------------------------------------------- */

int ps_latent_stats_init(ps_latent_stats *s, int m, ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (m < 1)
        return ps_fail(err, "latent statistics need at least one latent (got m = %d)", m);
    s->m = m;
    s->mean = ps_calloc((size_t)m, sizeof *s->mean, "latent means", err);
    s->m2 = s->mean ? ps_calloc((size_t)m, sizeof *s->m2, "latent M2", err) : NULL;
    s->scratch = s->m2 ? ps_calloc(2 * (size_t)m, sizeof *s->scratch, "latent batch statistics", err) : NULL;
    if (!s->scratch) {
        ps_latent_stats_free(s);
        return PS_ERR;
    }
    return PS_OK;
}

void ps_latent_stats_free(ps_latent_stats *s)
{
    free(s->mean);
    free(s->m2);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

/* Chan et al.: combines (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b). Written so that an
 * empty side leaves the other exactly unchanged. */
static inline void chan_merge(int64_t n_a, double *mean_a, double *m2_a, int64_t n_b, double mean_b, double m2_b)
{
    if (n_b == 0)
        return;
    if (n_a == 0) {
        *mean_a = mean_b;
        *m2_a = m2_b;
        return;
    }
    double n = (double)n_a + (double)n_b;
    double delta = mean_b - *mean_a;
    *mean_a += delta * ((double)n_b / n);
    *m2_a += m2_b + delta * delta * ((double)n_a * (double)n_b / n);
}

/* Latents are processed in blocks so that each thread walks the rows of the batch over a
 * contiguous slice of columns (cache-friendly for row-major [B][m]); the order of the rows
 * within a latent's sums is always 0..B−1. */
#define STATS_BLOCK 64

/* Batch mean and M2 of latents [j0, j1) into bmean / bm2 (indexed by latent), from a[r * lda + j − j0]. */
static void batch_block(const float *a, ptrdiff_t lda, int64_t B, int j0, int j1, double *bmean, double *bm2)
{
    const int w = j1 - j0;
    double *mean = bmean + j0, *m2 = bm2 + j0;
    for (int j = 0; j < w; j++)
        mean[j] = m2[j] = 0.0;
    for (int64_t r = 0; r < B; r++) {
        const float *row = a + r * lda;
        for (int j = 0; j < w; j++)
            mean[j] += row[j];
    }
    for (int j = 0; j < w; j++)
        mean[j] /= (double)B;
    for (int64_t r = 0; r < B; r++) {
        const float *row = a + r * lda;
        for (int j = 0; j < w; j++) {
            double dev = (double)row[j] - mean[j];
            m2[j] += dev * dev;
        }
    }
}

void ps_latent_stats_add_columns(ps_latent_stats *s, const float *a, ptrdiff_t lda, int64_t B, int j0, int j1)
{
    if (B <= 0)
        return;
    double *bmean = s->scratch, *bm2 = s->scratch + s->m;
    batch_block(a, lda, B, j0, j1, bmean, bm2);
    for (int j = j0; j < j1; j++)
        chan_merge(s->n, &s->mean[j], &s->m2[j], B, bmean[j], bm2[j]);
}

void ps_latent_stats_count(ps_latent_stats *s, int64_t B)
{
    s->n += B > 0 ? B : 0;
}

int ps_latent_stats_add(ps_latent_stats *s, const float *a, int64_t B, ps_error *err)
{
    if (B < 0)
        return ps_fail(err, "latent statistics: negative batch size %lld", (long long)B);
    if (B == 0)
        return PS_OK;
    int m = s->m;
    int n_blocks = (m + STATS_BLOCK - 1) / STATS_BLOCK;
#pragma omp parallel for schedule(static) if (B * (int64_t)m >= 65536)
    for (int b = 0; b < n_blocks; b++) {
        int j0 = b * STATS_BLOCK, j1 = j0 + STATS_BLOCK < m ? j0 + STATS_BLOCK : m;
        ps_latent_stats_add_columns(s, a + j0, m, B, j0, j1);
    }
    ps_latent_stats_count(s, B);
    return PS_OK;
}

int ps_latent_stats_merge(ps_latent_stats *dst, const ps_latent_stats *src, ps_error *err)
{
    if (dst->m != src->m)
        return ps_fail(err, "cannot merge latent statistics over %d and %d latents", dst->m, src->m);
    for (int j = 0; j < dst->m; j++)
        chan_merge(dst->n, &dst->mean[j], &dst->m2[j], src->n, src->mean[j], src->m2[j]);
    dst->n += src->n;
    return PS_OK;
}

int ps_latent_stats_finish(const ps_latent_stats *s, ps_latent_stats_result *r, ps_error *err)
{
    memset(r, 0, sizeof *r);
    if (s->n < 1)
        return ps_fail(err, "latent statistics: no activations were added");
    for (int j = 0; j < s->m; j++)
        if (!isfinite(s->mean[j]) || !isfinite(s->m2[j]))
            return ps_fail(err, "latent %d: a NaN or infinite pre-activation was added (mean %g, M2 %g)", j,
                           s->mean[j], s->m2[j]);
    r->mean = ps_calloc((size_t)s->m, sizeof *r->mean, "latent means", err);
    r->std = r->mean ? ps_calloc((size_t)s->m, sizeof *r->std, "latent stds", err) : NULL;
    if (!r->std) {
        ps_latent_stats_result_free(r);
        return PS_ERR;
    }
    r->m = s->m;
    r->n = s->n;
    for (int j = 0; j < s->m; j++) {
        r->mean[j] = s->mean[j];
        /* population std; M2 is a sum of squares, so it is >= 0 up to rounding of the
         * merge term — clamp rather than take the root of a tiny negative number */
        double var = s->m2[j] / (double)s->n;
        r->std[j] = var > 0 ? sqrt(var) : 0.0;
    }
    return PS_OK;
}

void ps_latent_stats_result_free(ps_latent_stats_result *r)
{
    free(r->mean);
    free(r->std);
    memset(r, 0, sizeof *r);
}

int ps_cohens_d(const ps_latent_stats_result *pop, const ps_latent_stats_result *unpop, double *d, ps_error *err)
{
    if (pop->m != unpop->m)
        return ps_fail(err, "Cohen's d: the popular group has %d latents and the unpopular group %d", pop->m,
                       unpop->m);
    for (int j = 0; j < pop->m; j++) {
        double sp = pop->std[j], su = unpop->std[j];
        double pooled = sqrt((sp * sp + su * su) / 2.0);
        double diff = pop->mean[j] - unpop->mean[j];
        if (isnan(pooled) || isnan(diff))
            d[j] = NAN;
        else
            d[j] = pooled > 0 ? diff / pooled : 0.0;
    }
    return PS_OK;
}

int ps_latent_table_fill(const ps_latent_stats *pop, const ps_latent_stats *unpop, ps_latent_table *t, ps_error *err)
{
    ps_latent_stats_result rp = {0}, ru = {0};
    size_t bytes = (size_t)t->m * sizeof *t->d;
    int rc = ps_latent_stats_finish(pop, &rp, err);
    if (rc == PS_OK)
        rc = ps_latent_stats_finish(unpop, &ru, err);
    if (rc == PS_OK)
        rc = ps_cohens_d(&rp, &ru, t->d, err);
    if (rc == PS_OK) {
        memcpy(t->mean_pop, rp.mean, bytes);
        memcpy(t->std_pop, rp.std, bytes);
        memcpy(t->mean_unpop, ru.mean, bytes);
        memcpy(t->std_unpop, ru.std, bytes);
    }
    ps_latent_stats_result_free(&rp);
    ps_latent_stats_result_free(&ru);
    return rc;
}

/* ---- firing counts ------------------------------------------------------------------------ */

int ps_fire_counts_add(int64_t *count, int m, const int32_t *idx, const float *val, int64_t B, int k, ps_error *err)
{
    if (B < 0 || k < 0)
        return ps_fail(err, "firing counts: bad batch shape %lld x %d", (long long)B, k);
    /* validate first so that a bad batch does not leave the counts half-updated */
    for (int64_t u = 0; u < B; u++)
        for (int s = 0; s < k; s++) {
            int32_t j = idx[u * k + s];
            if (j < 0 || j >= m)
                return ps_fail(err, "firing counts: user %lld, TopK slot %d holds latent %d, outside 0..%d",
                               (long long)u, s, j, m - 1);
        }
    for (int64_t u = 0; u < B; u++)
        for (int s = 0; s < k; s++)
            if (!val || val[u * k + s] > 0)
                count[idx[u * k + s]]++;
    return PS_OK;
}

void ps_fire_rate(const int64_t *count, int m, int64_t n_users, double *rate)
{
    for (int j = 0; j < m; j++)
        rate[j] = n_users > 0 ? (double)count[j] / (double)n_users : 0.0;
}
