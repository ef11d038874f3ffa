/* Paired bootstrap over users (see include/popsteer/bootstrap.h). */
#include "popsteer/bootstrap.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

void ps_bootstrap_free(ps_bootstrap *b)
{
    if (!b)
        return;
    free(b->weight);
    memset(b, 0, sizeof *b);
}

/* Resample r's multiplicities: n uniform draws from a stream that depends on (seed, r) only.
 * A draw is the high 32 bits of a 64-bit word times n, shifted: unbiased to within n / 2^32,
 * far below anything a percentile of 1,000 resamples can show. Returns -1 on a count overflow. */
static int draw_resample(uint64_t seed, int r, int64_t n, uint16_t *w)
{
    ps_nn_rng rng;
    ps_nn_rng_seed(&rng, ps_nn_mix64(seed ^ ps_nn_mix64(0x626f6f74ULL + (uint64_t)r)));
    memset(w, 0, (size_t)n * sizeof *w);
    for (int64_t j = 0; j < n; j++) {
        uint64_t u = (ps_nn_rng_u64(&rng) >> 32) * (uint64_t)n >> 32;
        if (w[u] == UINT16_MAX)
            return -1;
        w[u]++;
    }
    return 0;
}

int ps_bootstrap_init(ps_bootstrap *b, int64_t n, int resamples, uint64_t seed, ps_error *err)
{
    memset(b, 0, sizeof *b);
    if (n < 1 || n > INT32_MAX)
        return ps_fail(err, "bootstrap: need 1 to 2^31-1 users (got %lld)", (long long)n);
    if (resamples < 1)
        return ps_fail(err, "bootstrap: need at least one resample (got %d)", resamples);
    b->weight = ps_calloc((size_t)resamples * (size_t)n, sizeof *b->weight, "bootstrap resamples", err);
    if (!b->weight)
        return PS_ERR;
    b->resamples = resamples;
    b->n = n;
    b->seed = seed;
    int overflow = 0;
#pragma omp parallel for schedule(static) reduction(| : overflow)
    for (int r = 0; r < resamples; r++)
        overflow |= draw_resample(seed, r, n, b->weight + (size_t)r * (size_t)n) != 0;
    if (overflow) {
        ps_bootstrap_free(b);
        return ps_fail(err, "bootstrap: a user was drawn more than 65535 times in one resample");
    }
    return PS_OK;
}

void ps_bootstrap_means(const ps_bootstrap *b, const float *x, double *out)
{
    const int64_t n = b->n;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < b->resamples; r++) {
        const uint16_t *w = b->weight + (size_t)r * (size_t)n;
        double s = 0.0;
        for (int64_t u = 0; u < n; u++)
            s += (double)w[u] * (double)x[u];
        out[r] = s / (double)n;
    }
}

/* Gini of counts c[1..n_items] from their histogram: the items of value v fill the sorted
 * positions a+1 .. a+m, whose weights (2k − I − 1) sum to m(2a + m − I). Exact in int64:
 * |v·m·(2a + m − I)| <= Σc · 2I. */
static double gini_of_counts(const int32_t *c, int32_t n_items, int32_t *hist, int32_t max_count)
{
    int64_t total = 0;
    memset(hist, 0, ((size_t)max_count + 1) * sizeof *hist);
    for (int32_t i = 1; i <= n_items; i++) {
        hist[c[i]]++;
        total += c[i];
    }
    if (total == 0)
        return 0.0;
    int64_t num = 0, a = hist[0]; /* a: items placed so far, the zero-exposure ones first */
    for (int32_t v = 1; v <= max_count; v++) {
        int64_t m = hist[v];
        if (m == 0)
            continue;
        num += (int64_t)v * m * (2 * a + m - (int64_t)n_items);
        a += m;
    }
    return (double)num / ((double)n_items * (double)total);
}

int ps_bootstrap_gini(const ps_bootstrap *b, const int32_t *lists, int k, int32_t n_items, double *out,
                      ps_error *err)
{
    if (k < 1 || n_items < 1)
        return ps_fail(err, "bootstrap gini: need k >= 1 and n_items >= 1 (got %d, %d)", k, (int)n_items);
    const int64_t n = b->n;
    const int nth = omp_get_max_threads();
    /* per thread: counts [n_items + 1] and the histogram of counts [n + 1] (a count is at most n) */
    const size_t per = (size_t)n_items + 1 + (size_t)n + 1;
    int32_t *work = ps_calloc((size_t)nth * per, sizeof *work, "bootstrap Gini workspace", err);
    if (!work)
        return PS_ERR;
#pragma omp parallel num_threads(nth)
    {
        int32_t *c = work + (size_t)omp_get_thread_num() * per;
        int32_t *hist = c + (size_t)n_items + 1;
#pragma omp for schedule(dynamic, 8)
        for (int r = 0; r < b->resamples; r++) {
            const uint16_t *w = b->weight + (size_t)r * (size_t)n;
            memset(c, 0, ((size_t)n_items + 1) * sizeof *c);
            int32_t max_count = 0;
            for (int64_t u = 0; u < n; u++) {
                if (!w[u])
                    continue;
                const int32_t *l = lists + (size_t)u * (size_t)k;
                for (int j = 0; j < k; j++) {
                    int32_t it = l[j];
                    if (it < 1 || it > n_items)
                        continue;
                    c[it] += w[u];
                    max_count = c[it] > max_count ? c[it] : max_count;
                }
            }
            out[r] = gini_of_counts(c, n_items, hist, max_count);
        }
    }
    free(work);
    return PS_OK;
}

double ps_normal_quantile(double p)
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200 && hi - lo > 1e-13; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int ps_bootstrap_interval(const double *x, const double *base, int resamples, int relative, double estimate,
                          double level, ps_interval *out, ps_error *err)
{
    out->lo = out->hi = NAN;
    if (!(level > 0 && level < 1))
        return ps_fail(err, "bootstrap: the confidence level must be in (0, 1) (got %g)", level);
    /* two passes (mean, then squared deviations): exact enough for changes of any size */
    double sum = 0;
    int m = 0;
    for (int r = 0; r < resamples; r++) {
        if (relative && !(base[r] > 0))
            continue;
        double d = relative ? x[r] / base[r] - 1.0 : x[r] - base[r];
        if (isfinite(d)) {
            sum += d;
            m++;
        }
    }
    if (m < 2 || !isfinite(estimate))
        return PS_OK;
    double mean = sum / m, ss = 0;
    for (int r = 0; r < resamples; r++) {
        if (relative && !(base[r] > 0))
            continue;
        double d = relative ? x[r] / base[r] - 1.0 : x[r] - base[r];
        if (isfinite(d))
            ss += (d - mean) * (d - mean);
    }
    double half = ps_normal_quantile(0.5 * (1.0 + level)) * sqrt(ss / (m - 1));
    out->lo = estimate - half;
    out->hi = estimate + half;
    return PS_OK;
}

int ps_interval_contains_zero(const ps_interval *ci)
{
    return ci->lo <= 0.0 && ci->hi >= 0.0;
}
