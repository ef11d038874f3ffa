/* Sampled softmax with log-Q correction: the proposal, the draws and the row kernel (see
 * sampled_softmax.h). */
#include "nn/sampled_softmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int ps_neg_sampler_init(ps_neg_sampler *s, ps_neg_sampler_kind kind, int32_t n_items, const int64_t *counts, int n,
                        ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (n_items < 1)
        return ps_fail(err, "sampled softmax: the dataset has no items");
    if (n < 1)
        return ps_fail(err, "sampled softmax: --negatives must be at least 1 (got %d)", n);
    if (kind == PS_SAMPLER_POP && !counts)
        return ps_fail(err, "sampled softmax: the popularity sampler needs item counts");
    s->kind = kind;
    s->n_items = n_items;
    s->n = n;
    s->logq = ps_calloc((size_t)n_items + 1, sizeof *s->logq, "sampled-softmax corrections", err);
    if (!s->logq)
        return PS_ERR;
    if (kind == PS_SAMPLER_UNIFORM) {
        const float lq = (float)log((double)n / (double)n_items);
        for (int32_t i = 1; i <= n_items; i++)
            s->logq[i] = lq;
        return PS_OK;
    }
    s->cdf = ps_calloc((size_t)n_items, sizeof *s->cdf, "sampled-softmax proposal", err);
    if (!s->cdf) {
        ps_neg_sampler_free(s);
        return PS_ERR;
    }
    double total = 0;
    for (int32_t i = 1; i <= n_items; i++)
        total += (double)(counts[i] > 0 ? counts[i] : 0) + 1.0; /* add-one: every item can be drawn */
    double acc = 0;
    for (int32_t i = 1; i <= n_items; i++) {
        const double w = (double)(counts[i] > 0 ? counts[i] : 0) + 1.0;
        acc += w;
        s->cdf[i - 1] = acc / total;
        s->logq[i] = (float)log((double)n * w / total);
    }
    s->cdf[n_items - 1] = 1.0;
    return PS_OK;
}

void ps_neg_sampler_free(ps_neg_sampler *s)
{
    free(s->cdf);
    free(s->logq);
    memset(s, 0, sizeof *s);
}

void ps_neg_sampler_draw(const ps_neg_sampler *s, uint64_t seed, uint64_t step, int32_t *out)
{
    uint64_t state = mix64(seed ^ mix64(step ^ 0x5A3D5A3Dull));
    for (int j = 0; j < s->n; j++) {
        state = mix64(state);
        if (s->kind == PS_SAMPLER_UNIFORM) {
            out[j] = 1 + (int32_t)(state % (uint64_t)s->n_items);
            continue;
        }
        const double u = (double)(state >> 11) * 0x1.0p-53; /* [0, 1) */
        int32_t lo = 0, hi = s->n_items - 1;                  /* first cdf > u */
        while (lo < hi) {
            int32_t mid = lo + (hi - lo) / 2;
            if (s->cdf[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        out[j] = lo + 1;
    }
}

void ps_nn_sampled_ce_rows(float *logits, int nb, int n, const int32_t *neg, const float *logq, const float *tlogit,
                           const int32_t *target, int want_grad, float grad_scale, float *tgrad, double *losses)
{
    for (int r = 0; r < nb; r++) {
        float *row = logits + (size_t)r * n;
        const int32_t t = target[r];
        const float zt = tlogit[r] - logq[t];
        float mx = zt;
        for (int j = 0; j < n; j++) {
            row[j] = neg[j] == t ? -INFINITY : row[j] - logq[neg[j]];
            mx = row[j] > mx ? row[j] : mx;
        }
        const double et = exp((double)(zt - mx));
        double sum = et;
        for (int j = 0; j < n; j++) {
            const float e = neg[j] == t ? 0.0f : expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        losses[r] = log(sum) + (double)mx - (double)zt;
        if (want_grad) {
            const float inv = (float)(grad_scale / sum);
            for (int j = 0; j < n; j++)
                row[j] *= inv;
            tgrad[r] = (float)(grad_scale * (et / sum - 1.0));
        }
    }
}
