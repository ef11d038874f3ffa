/* exp and erf as branch-free inline float code that GCC vectorises inside `#pragma omp simd`
 * loops. glibc's expf/erff are scalar calls (erff costs ~36 ns), which would dominate the
 * softmax over thousands of items and the GELU of every FFN element.
 *
 * Written for the default -ftrapping-math: GCC will not if-convert float comparisons or call
 * floorf inline there, so every select and clamp below is done on integer bit patterns. */
#ifndef POPSTEER_NN_FASTMATH_H
#define POPSTEER_NN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Must inline into the caller's simd loop (a call stops vectorisation), and GCC's inliner
 * declines ps_nn_ferf at -O2 on size alone. */
#define PS_NN_INLINE static inline __attribute__((always_inline))

/* The build targets x86-64-v2 (SSE4.2, 4 floats per vector). Hot elementwise loops are also
 * compiled for AVX2 (8 floats) and AVX-512 (16 floats) and picked at load time. ISO C mode keeps
 * -ffp-contract=off, so PS_NN_CLONES versions round every operation alike and only the order of
 * simd reductions (sums within a row) follows the vector width; PS_NN_CLONES_FMA ones may fuse
 * multiply-adds. Every thread runs the same version, so results never depend on the thread
 * count, only (in the last bits) on the machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_NN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* The same, and a*b+c may become one FMA where the clone's ISA has it (the AVX-512 one): for the
 * polynomial-heavy elementwise kernels (exp, erf, GELU, softmax), about a third fewer
 * operations; each result changes by float rounding only (the FMA rounds once). */
#define PS_NN_CLONES_FMA __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=fast")))
#else
#define PS_NN_CLONES
#define PS_NN_CLONES_FMA
#endif

PS_NN_INLINE int32_t ps_nn_fbits(float x)
{
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

PS_NN_INLINE float ps_nn_bitsf(int32_t i)
{
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}

/* exp(x) for x <= 88: Cephes range reduction x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial
 * for e^r, scaled by 2^n through the exponent bits. Relative error < 1e-7 down to x = -87.3;
 * exactly 0 below (expf would give denormals < 1.2e-38), so the -10000 attention mask gives
 * exact zeros. n = round(x / ln2) comes from the 1.5*2^23 trick: adding it leaves n in the low
 * mantissa bits (exact while |n| < 2^22; larger |x| only yield clamped garbage, never UB). */
PS_NN_INLINE float ps_nn_fexp(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float t = x * 1.44269504088896341f + magic;
    /* unsigned difference: NaN/Inf inputs give bit patterns whose signed difference overflows */
    int32_t n = (int32_t)((uint32_t)ps_nn_fbits(t) - (uint32_t)ps_nn_fbits(magic));
    float nf = t - magic;
    float r = x - nf * 0.693359375f; /* ln2 split in two so nf * hi is exact */
    r = r - nf * -2.12194440e-4f;
    float z = r * r;
    float y = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r + 1.0f;
    int32_t keep = -(int32_t)(n >= -126); /* all ones unless the result underflows */
    n = n < -126 ? -126 : n;
    n = n > 127 ? 127 : n;
    float res = y * ps_nn_bitsf((n + 127) * (1 << 23));
    return ps_nn_bitsf(ps_nn_fbits(res) & keep);
}

/* The same exp on 16 floats at once (GCC vector extensions: one zmm in an AVX-512 clone, two ymm
 * or four xmm elsewhere), operation for operation, so every lane gives ps_nn_fexp's bits. */
typedef float ps_v16f __attribute__((vector_size(64)));
typedef int32_t ps_v16i __attribute__((vector_size(64)));

/* Always inlined, so 64-byte vectors in non-AVX-512 clones never cross a call: GCC's note about
 * their calling convention (-Wpsabi, also at every call site) does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
PS_NN_INLINE ps_v16f ps_nn_fexp_v16(ps_v16f x)
{
    const float magic = 12582912.0f;
    const ps_v16i magic_bits = (ps_v16i){0} + ps_nn_fbits(magic);
    ps_v16f t = x * 1.44269504088896341f + magic;
    ps_v16i n = (ps_v16i)t - magic_bits;
    ps_v16f nf = t - magic;
    ps_v16f r = x - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    ps_v16f z = r * r;
    ps_v16f y = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                   4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r + 1.0f;
    ps_v16i keep = n >= -126; /* all ones unless the result underflows */
    ps_v16i lo = n < -126, hi = n > 127;
    n = (n & ~lo) | (-126 & lo);
    n = (n & ~hi) | (127 & hi);
    ps_v16f res = y * (ps_v16f)((n + 127) * (1 << 23));
    return (ps_v16f)((ps_v16i)res & keep);
}

/* erf(x) given ex = exp(-x^2), absolute error < 2.5e-7 (glibc erff: 5e-8). Both pieces are
 * evaluated and one is selected, so the code stays branch-free: for |x| < 1 the odd/even
 * rational minimax approximation used by Eigen and XLA (accurate near 0, where the other one
 * cancels); for |x| >= 1 Abramowitz & Stegun 7.1.26, 1 - t(a1 + a2 t + ... + a5 t^4) exp(-x^2)
 * with t = 1/(1 + p|x|) (the form PyTorch's vectorised CPU erf uses). Taking exp(-x^2) as an
 * argument lets GELU's backward share it with the normal density. */
PS_NN_INLINE float ps_nn_ferf_with_exp(float x, float ex)
{
    float ax = fabsf(x);
    /* rational piece (garbage, then discarded, where |x| >= 1) */
    float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    float small = p / q;
    /* Abramowitz & Stegun piece */
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
                  0.254829592f) * t;
    float big = copysignf(1.0f - poly * ex, x);
    /* for non-negative floats the bit patterns order like the values */
    int32_t use_small = -(int32_t)(ps_nn_fbits(ax) < ps_nn_fbits(1.0f));
    return ps_nn_bitsf((ps_nn_fbits(small) & use_small) | (ps_nn_fbits(big) & ~use_small));
}

PS_NN_INLINE float ps_nn_ferf(float x)
{
    return ps_nn_ferf_with_exp(x, ps_nn_fexp(-x * x));
}

#endif
