/* Dropout whose mask is a pure function of (seed, stream, element index): a counter-based
 * generator, so the mask is reproducible, independent of the thread count and recomputed in
 * backward instead of stored. One 64-bit hash feeds two elements (its two 32-bit halves). */
#include "nn/nn.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define PAR_MIN 32768 /* below this many elements threads cost more than they save */

static int active(const ps_nn_dropout *d)
{
    return d && d->p > 0.0f;
}

/* Per-call key: distinct (seed, stream) pairs give unrelated keys. */
static uint64_t call_key(const ps_nn_dropout *d)
{
    return ps_nn_mix64(d->seed ^ ps_nn_mix64(d->stream + GOLDEN));
}

/* Drop iff the 32-bit word < threshold; p = 0.5 -> 2^31. */
static uint32_t drop_threshold(float p)
{
    double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

static uint64_t pair_hash(uint64_t key, uint64_t pair)
{
    return ps_nn_mix64(key + (pair + 1) * GOLDEN);
}

int ps_nn_dropout_keep(const ps_nn_dropout *d, uint64_t e)
{
    if (!active(d))
        return 1;
    uint64_t w = pair_hash(call_key(d), e >> 1);
    uint32_t word = (e & 1) ? (uint32_t)(w >> 32) : (uint32_t)w;
    return word >= drop_threshold(d->p);
}

void ps_nn_dropout_forward(float *out, const float *x, size_t n, const ps_nn_dropout *d)
{
    if (!active(d)) {
        if (out != x) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (size_t i = 0; i < n; i++)
                out[i] = x[i];
        }
        return;
    }
    const uint64_t key = call_key(d);
    const uint32_t thr = drop_threshold(d->p);
    const float scale = 1.0f / (1.0f - d->p);
    const size_t npairs = (n + 1) / 2;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t q = 0; q < npairs; q++) {
        uint64_t w = pair_hash(key, q);
        size_t i = 2 * q;
        out[i] = (uint32_t)w >= thr ? x[i] * scale : 0.0f;
        if (i + 1 < n)
            out[i + 1] = (uint32_t)(w >> 32) >= thr ? x[i + 1] * scale : 0.0f;
    }
}

void ps_nn_dropout_backward(float *dx, const float *dout, size_t n, const ps_nn_dropout *d)
{
    if (!active(d)) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            dx[i] += dout[i];
        return;
    }
    const uint64_t key = call_key(d);
    const uint32_t thr = drop_threshold(d->p);
    const float scale = 1.0f / (1.0f - d->p);
    const size_t npairs = (n + 1) / 2;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t q = 0; q < npairs; q++) {
        uint64_t w = pair_hash(key, q);
        size_t i = 2 * q;
        if ((uint32_t)w >= thr)
            dx[i] += dout[i] * scale;
        if (i + 1 < n && (uint32_t)(w >> 32) >= thr)
            dx[i + 1] += dout[i + 1] * scale;
    }
}
