/* Dropout whose mask is a pure function of (seed, stream, element index): a counter-based
 * generator, so the mask is reproducible, independent of the thread count and recomputed in
 * backward instead of stored.
 *
 * Per call, (seed, stream) is mixed into a 64-bit key with splitmix64. Element e then gets the
 * 32-bit word fmix32(fmix32(e * 0x9e3779b9 + k_lo) ^ k_hi) (two rounds of MurmurHash3's
 * finaliser over a Weyl sequence): 32-bit integer multiplies, so the loop vectorises. Arrays of
 * 2^31 elements or more are cut into chunks, each with its own key. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <string.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define PAR_MIN 32768                /* below this many elements threads cost more than they save */
#define CHUNK ((size_t)1 << 31)

static int active(const ps_nn_dropout *d)
{
    return d && d->p > 0.0f;
}

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Key of the chunk of elements [chunk * 2^31, (chunk + 1) * 2^31). */
static uint64_t chunk_key(const ps_nn_dropout *d, uint64_t chunk)
{
    return mix64(d->seed ^ mix64(d->stream + GOLDEN) ^ mix64(chunk * GOLDEN + 1));
}

static inline uint32_t word(uint64_t key, uint32_t j)
{
    return fmix32(fmix32(j * 0x9e3779b9u + (uint32_t)key) ^ (uint32_t)(key >> 32));
}

/* Drop iff word < threshold; p = 0.5 -> 2^31. */
static uint32_t drop_threshold(float p)
{
    double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

static int32_t float_bits(float x)
{
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

int ps_nn_dropout_keep(const ps_nn_dropout *d, uint64_t e)
{
    if (!active(d))
        return 1;
    return word(chunk_key(d, e / CHUNK), (uint32_t)(e % CHUNK)) >= drop_threshold(d->p);
}

/* y[j] = x[j] * (kept ? 1/(1-p) : 0) for elements j0 .. j0+n-1 of a chunk, accumulating into y
 * when acc is set. The factor is picked with an integer mask and always multiplied: a float
 * select would not vectorise under the default -ftrapping-math. */
PS_NN_CLONES static void apply_span(float *y, const float *x, uint32_t j0, uint32_t n, uint64_t key,
                                    uint32_t thr, int32_t scale_bits, int acc)
{
    if (acc) {
#pragma omp simd
        for (uint32_t j = 0; j < n; j++) {
            int32_t fb = scale_bits & -(int32_t)(word(key, j0 + j) >= thr);
            float f;
            memcpy(&f, &fb, sizeof f);
            y[j] += x[j] * f;
        }
    } else {
#pragma omp simd
        for (uint32_t j = 0; j < n; j++) {
            int32_t fb = scale_bits & -(int32_t)(word(key, j0 + j) >= thr);
            float f;
            memcpy(&f, &fb, sizeof f);
            y[j] = x[j] * f;
        }
    }
}

static void apply(float *y, const float *x, size_t n, const ps_nn_dropout *d, int acc)
{
    const uint32_t thr = drop_threshold(d->p);
    const int32_t scale_bits = float_bits(1.0f / (1.0f - d->p));
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        const uint64_t key = chunk_key(d, c0 / CHUNK);
        const size_t len = n - c0 < CHUNK ? n - c0 : CHUNK;
#pragma omp parallel if (len > PAR_MIN)
        {
            size_t lo, hi;
            ps_nn_thread_span(len, &lo, &hi);
            apply_span(y + c0 + lo, x + c0 + lo, (uint32_t)lo, (uint32_t)(hi - lo), key, thr, scale_bits,
                       acc);
        }
    }
}

/* out[t] = x[t] * mask(e0 + t) / (1-p) (+ add[t]); add == out accumulates. */
PS_NN_CLONES static void span_add(float *out, const float *x, const float *add, uint32_t j0, uint32_t n,
                                  uint64_t key, uint32_t thr, int32_t scale_bits)
{
#pragma omp simd
    for (uint32_t j = 0; j < n; j++) {
        int32_t fb = scale_bits & -(int32_t)(word(key, j0 + j) >= thr);
        float f;
        memcpy(&f, &fb, sizeof f);
        out[j] = x[j] * f + add[j];
    }
}

void ps_nn_dropout_span(float *out, const float *x, const float *add, size_t n, const ps_nn_dropout *d,
                        uint64_t e0)
{
    if (!active(d)) {
        if (add) {
#pragma omp simd
            for (size_t i = 0; i < n; i++)
                out[i] = x[i] + add[i];
        } else if (out != x) {
            memcpy(out, x, n * sizeof *out);
        }
        return;
    }
    const uint32_t thr = drop_threshold(d->p);
    const int32_t scale_bits = float_bits(1.0f / (1.0f - d->p));
    size_t t = 0;
    while (t < n) {
        const uint64_t e = e0 + t, chunk = e / CHUNK;
        const uint32_t j = (uint32_t)(e % CHUNK);
        size_t len = (size_t)(CHUNK - j);
        if (len > n - t)
            len = n - t;
        const uint64_t key = chunk_key(d, chunk);
        if (add)
            span_add(out + t, x + t, add + t, j, (uint32_t)len, key, thr, scale_bits);
        else
            apply_span(out + t, x + t, j, (uint32_t)len, key, thr, scale_bits, 0);
        t += len;
    }
}

void ps_nn_dropout_forward(float *out, const float *x, size_t n, const ps_nn_dropout *d)
{
    if (active(d)) {
        apply(out, x, n, d, 0);
    } else if (out != x) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            out[i] = x[i];
    }
}

void ps_nn_dropout_backward(float *dx, const float *dout, size_t n, const ps_nn_dropout *d)
{
    if (active(d)) {
        apply(dx, dout, n, d, 1);
    } else {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            dx[i] += dout[i];
    }
}
