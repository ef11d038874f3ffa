/* Causal self-attention of one sequence (all heads), single-threaded, on ps_nn_gemm.
 *
 * Same function as ps_nn_attention_forward/backward (RecBole's masked multi-head attention) but:
 * - only the keys a query can see are computed: row i takes keys 0..i (the -10000 of every later
 *   key gives exactly 0 after exp anyway), so half the products are skipped and, with the
 *   row-independent GEMM, the result of row i does not depend on how many rows or keys follow
 *   (a sequence can be cut after its last real item, and one query row computed alone, with the
 *   same bits);
 * - a row whose visible keys are ALL padding (only when the sequence starts with padding) keeps
 *   PyTorch's behaviour of a softmax over the raw scores of every key 0..Le-1.
 * Queries are processed in tiles of 6 rows; a tile computes the keys of its last row, the extra
 * entries of its earlier rows are written as exact zeros and contribute exact zeros. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MASK_VALUE -10000.0f
#define TILE 6

static int first_real_key(const int32_t *ids, int Le)
{
    int f = 0;
    while (f < Le && ids[f] == 0)
        f++;
    return f;
}

/* Softmax of row i over keys [0, n) with the additive mask, then zeros over [n, ncol).
 * softmax_row_small: rows of up to 64 keys (the model's) in 16-lane vectors padded with -inf
 * (exp gives exact zeros there), the sums in a fixed order that depends on n only; an AVX-512
 * version with masked loads, and a portable one. */
PS_NN_INLINE void softmax_finish(ps_v16f *v, int nv, float *row, int n, int ncol)
{
    ps_v16f m = v[0];
    for (int q = 1; q < nv; q++) {
        ps_v16i ge = m >= v[q];
        m = (ps_v16f)(((ps_v16i)m & ge) | ((ps_v16i)v[q] & ~ge));
    }
    float mx = m[0];
    for (int l = 1; l < 16; l++)
        mx = m[l] > mx ? m[l] : mx;
    ps_v16f acc = {0};
    for (int q = 0; q < nv; q++) {
        v[q] = ps_nn_fexp_v16(v[q] - mx);
        acc = acc + v[q];
    }
    float sum = 0.0f;
    for (int l = 0; l < 16; l++)
        sum += acc[l];
    const float inv = 1.0f / sum;
    for (int q = 0; q < nv; q++)
        v[q] = v[q] * inv;
    memcpy(row, v, sizeof(float) * (size_t)n);
    for (int j = n; j < ncol; j++)
        row[j] = 0.0f;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"), optimize("fp-contract=fast"))) static void softmax_row_small_512(float *row, const int32_t *ids, int i, int n,
                                                                   int ncol)
{
    const int nv = (n + 15) / 16;
    ps_v16f v[4] = {{0}};
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 minf = _mm512_set1_ps(-INFINITY), maskv = _mm512_set1_ps(MASK_VALUE), zero = _mm512_setzero_ps();
    for (int q = 0; q < nv; q++) {
        const int left = n - 16 * q;
        const __mmask16 valid = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        const __m512i j = _mm512_add_epi32(lane, _mm512_set1_epi32(16 * q));
        __m512 x = _mm512_maskz_loadu_ps(valid, row + 16 * q);
        __m512i idv = _mm512_maskz_loadu_epi32(valid, ids + 16 * q);
        __mmask16 seen = _mm512_cmple_epi32_mask(j, _mm512_set1_epi32(i)) & _mm512_cmpneq_epi32_mask(idv, _mm512_setzero_si512());
        x = _mm512_mask_blend_ps(seen, _mm512_add_ps(x, maskv), _mm512_add_ps(x, zero));
        v[q] = (ps_v16f)_mm512_mask_blend_ps(valid, minf, x);
    }
    softmax_finish(v, nv, row, n, ncol);
}
#endif

#define SOFTMAX_ROW_SMALL_BODY                                                                         \
    ps_v16f v[4] = {{0}};                                                                              \
    const int nv = (n + 15) / 16;                                                                      \
    for (int q = 0; q < nv; q++)                                                                       \
        for (int l = 0; l < 16; l++) {                                                                 \
            int j = 16 * q + l;                                                                        \
            v[q][l] = j < n ? row[j] + ((j <= i && ids[j] != 0) ? 0.0f : MASK_VALUE) : -INFINITY;      \
        }                                                                                              \
    softmax_finish(v, nv, row, n, ncol);

static void softmax_row_small_generic(float *row, const int32_t *ids, int i, int n, int ncol)
{
    SOFTMAX_ROW_SMALL_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same 16-lane code for AVX2 + FMA: each 16-lane vector becomes two 8-lane ones and exp's
 * polynomial fuses as in the AVX-512 version, so the sums keep their order (the baseline build,
 * x86-64-v2, would run it in 4-lane SSE without FMA). */
__attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) static void
softmax_row_small_256(float *row, const int32_t *ids, int i, int n, int ncol)
{
    SOFTMAX_ROW_SMALL_BODY
}
#endif

typedef void (*softmax_small_fn)(float *row, const int32_t *ids, int i, int n, int ncol);
static softmax_small_fn softmax_small = softmax_row_small_generic;

__attribute__((constructor)) static void pick_softmax(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char *force = getenv("POPSTEER_GEMM_ISA");
    const int generic = force && !strcmp(force, "generic");
    if (__builtin_cpu_supports("avx512f") && !generic && !(force && !strcmp(force, "avx2")))
        softmax_small = softmax_row_small_512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !generic)
        softmax_small = softmax_row_small_256;
#endif
}

PS_NN_CLONES_FMA static void softmax_row_long(float *row, const int32_t *ids, int i, int n, int ncol)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) {
        float v = row[j] + ((j <= i && ids[j] != 0) ? 0.0f : MASK_VALUE);
        row[j] = v;
        mx = v > mx ? v : mx;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        row[j] = ps_nn_fexp(row[j] - mx);
        sum += row[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++)
        row[j] *= inv;
    for (int j = n; j < ncol; j++)
        row[j] = 0.0f;
}

static void softmax_row(float *row, const int32_t *ids, int i, int n, int ncol)
{
    if (n <= 64)
        softmax_small(row, ids, i, n, ncol);
    else
        softmax_row_long(row, ids, i, n, ncol);
}

/* d = p (d - sum(p d)) over [0, n), zeros over [n, ncol). */
PS_NN_CLONES static void softmax_backward_row(float *d, const float *p, int n, int ncol)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++)
        dot += p[j] * d[j];
#pragma omp simd
    for (int j = 0; j < n; j++)
        d[j] = p[j] * (d[j] - dot);
    for (int j = n; j < ncol; j++)
        d[j] = 0.0f;
}

static int dropping(const ps_nn_dropout *d)
{
    return d && d->p > 0.0f;
}

void ps_nn_attn_causal_forward(float *ctx, ptrdiff_t ctx_ld, float *probs, float *probs_d, const float *q,
                               ptrdiff_t q_ld, const float *kv, ptrdiff_t kv_ld, const int32_t *ids, int Le,
                               int q0, int q1, int C, int H, const ps_nn_dropout *drop, uint64_t e_base, int L,
                               float *scratch)
{
    const int hd = C / H;
    const float scale = 1.0f / sqrtf((float)hd);
    const int fr = first_real_key(ids, Le);
    const int dr = dropping(drop);
    float *kt = scratch; /* [hd, Le] */
    for (int h = 0; h < H; h++) {
        const float *K = kv + (ptrdiff_t)h * hd, *V = kv + C + (ptrdiff_t)h * hd;
        const int nk = q0 < fr ? Le : q1; /* keys any query of the call can see */
        for (int j = 0; j < nk; j++)
            for (int c = 0; c < hd; c++)
                kt[(size_t)c * nk + j] = K[(ptrdiff_t)j * kv_ld + c];
        float *P = probs + (size_t)h * Le * Le, *Pd = dr ? probs_d + (size_t)h * Le * Le : P;
        for (int i0 = q0; i0 < q1; i0 += TILE) {
            const int mt = q1 - i0 < TILE ? q1 - i0 : TILE;
            const int ncol = i0 < fr ? Le : i0 + mt; /* a fully masked row needs every key */
            float *S = P + (size_t)i0 * Le;
            ps_nn_gemm(mt, ncol, hd, q + (ptrdiff_t)(i0 - q0) * q_ld + (ptrdiff_t)h * hd, q_ld, 1, kt, nk, S, Le,
                       scale, NULL, 0);
            for (int r = 0; r < mt; r++) {
                const int i = i0 + r, n = i < fr ? Le : i + 1;
                float *row = S + (size_t)r * Le;
                softmax_row(row, ids, i, n, Le);
                if (dr) {
                    float *rd = Pd + (size_t)(i0 + r) * Le;
                    ps_nn_dropout_span(rd, row, NULL, (size_t)n, drop,
                                       e_base + ((uint64_t)h * L + (uint64_t)i) * (uint64_t)L);
                    for (int j = n; j < Le; j++)
                        rd[j] = 0.0f;
                }
            }
            ps_nn_gemm(mt, hd, ncol, Pd + (size_t)i0 * Le, Le, 1, V, kv_ld,
                       ctx + (ptrdiff_t)(i0 - q0) * ctx_ld + (ptrdiff_t)h * hd, ctx_ld, 1.0f, NULL, 0);
        }
    }
}

size_t ps_nn_attn_causal_scratch_floats(int L, int C, int H)
{
    return (size_t)L * L + (size_t)(C / H) * L;
}

void ps_nn_attn_causal_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                                const float *probs_d, const int32_t *ids, int Le, int C, int H,
                                const ps_nn_dropout *drop, uint64_t e_base, int L, float *scratch)
{
    const int hd = C / H, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hd);
    const int fr = first_real_key(ids, Le);
    const int dr = dropping(drop);
    float *dS = scratch, *vt = scratch + (size_t)Le * Le;
    for (int h = 0; h < H; h++) {
        const ptrdiff_t ho = (ptrdiff_t)h * hd;
        const float *Q = qkv + ho, *K = qkv + C + ho, *V = qkv + 2 * C + ho, *dc = dctx + ho;
        float *dQ = dqkv + ho, *dK = dqkv + C + ho, *dV = dqkv + 2 * C + ho;
        const float *P = probs + (size_t)h * Le * Le, *Pd = dr ? probs_d + (size_t)h * Le * Le : P;
        for (int j = 0; j < Le; j++)
            for (int c = 0; c < hd; c++)
                vt[(size_t)c * Le + j] = V[(ptrdiff_t)j * C3 + c];
        /* dP = dctx V^T over the visible keys; dS = P (dP - rowsum(P dP)), 0 elsewhere */
        for (int i0 = 0; i0 < Le; i0 += TILE) {
            const int mt = Le - i0 < TILE ? Le - i0 : TILE;
            const int ncol = i0 < fr ? Le : i0 + mt;
            ps_nn_gemm(mt, ncol, hd, dc + (ptrdiff_t)i0 * C, C, 1, vt, Le, dS + (size_t)i0 * Le, Le, 1.0f, NULL, 0);
            for (int r = 0; r < mt; r++) {
                const int i = i0 + r, n = i < fr ? Le : i + 1;
                float *d = dS + (size_t)i * Le;
                const float *p = P + (size_t)i * Le;
                if (dr) /* the forward op applied to the gradient: mask / (1-p) */
                    ps_nn_dropout_span(d, d, NULL, (size_t)n, drop,
                                       e_base + ((uint64_t)h * L + (uint64_t)i) * (uint64_t)L);
                softmax_backward_row(d, p, n, Le);
            }
        }
        /* dV_j = sum_i Pd_ij dctx_i, dK_j = scale sum_i dS_ij Q_i over i >= j (every i when some
         * row is fully masked); dQ_i = scale sum_j dS_ij K_j over the visible keys */
        for (int j0 = 0; j0 < Le; j0 += TILE) {
            const int mt = Le - j0 < TILE ? Le - j0 : TILE;
            const int is = fr > 0 ? 0 : j0;
            ps_nn_gemm(mt, hd, Le - is, Pd + (size_t)is * Le + j0, 1, Le, dc + (ptrdiff_t)is * C, C,
                       dV + (ptrdiff_t)j0 * C3, C3, 1.0f, NULL, 0);
            ps_nn_gemm(mt, hd, Le - is, dS + (size_t)is * Le + j0, 1, Le, Q + (ptrdiff_t)is * C3, C3,
                       dK + (ptrdiff_t)j0 * C3, C3, scale, NULL, 0);
            const int ncol = j0 < fr ? Le : j0 + mt;
            ps_nn_gemm(mt, hd, ncol, dS + (size_t)j0 * Le, Le, 1, K, C3, dQ + (ptrdiff_t)j0 * C3, C3, scale, NULL, 0);
        }
    }
}
