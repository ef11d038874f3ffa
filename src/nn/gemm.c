/* Our own single-threaded GEMM for the model's shapes (one small dimension of 32..256, one large
 * one), register-blocked with AVX-512 or AVX2+FMA intrinsics, picked once at load time, and a
 * plain C fallback.
 *
 * Why not OpenBLAS here: OpenBLAS's result for a row of C depends on where the row falls in its
 * micro-tiles (measured with 0.3.21: a row computed in a call of 5 rows and in a call of 4096
 * rows differs in the last bits), so a user vector computed for one row could not equal the
 * same row of a batched forward. Here every element is one FMA chain over k in order, whatever
 * M, N, the row's or column's position in the call and the thread: rows and columns can be
 * computed in any grouping with the same bits. Also, the Debian OpenBLAS 0.3.21 does not know
 * AMD Zen 4/5 and falls back to its Haswell (AVX2) kernels, half the machine's width.
 *
 * Layout: C[i][j] (row stride ldc); A(i,k) = A[i*a_rs + k*a_ks], so A can be read row-major
 * (a_rs = lda, a_ks = 1) or transposed (a_rs = 1, a_ks = lda) without a copy; B(k,j) =
 * B[k*ldb + j], j contiguous (transpose small weights once with ps_nn_transpose).
 * Tiles are 6 rows x 64 columns (AVX-512: 24 zmm accumulators; AVX2: 6 x 16). K is cut into
 * pieces of GEMM_KC (fixed) so that a B panel stays in cache; that cut depends on K only. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PS_HAVE_X86 1
#endif

#define MR 6
#define GEMM_KC 384

typedef void (*gemm_fn)(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                        const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha,
                        const float *bias, int accumulate);

/* ---------------------------------------------------------------------------------------------
 * Plain C: 6 x 16 tiles, products rounded before the add (no FMA at the baseline ISA). */

#define GNR 16
static void tile_generic(int mr, int nr, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                         const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha,
                         const float *bias, int accumulate)
{
    float acc[MR][GNR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < K; k++) {
        const float *b = B + (ptrdiff_t)k * ldb;
        for (int i = 0; i < mr; i++) {
            float a = A[i * a_rs + (ptrdiff_t)k * a_ks];
            for (int j = 0; j < nr; j++)
                acc[i][j] += a * b[j];
        }
    }
    for (int i = 0; i < mr; i++) {
        float *c = C + (ptrdiff_t)i * ldc;
        for (int j = 0; j < nr; j++) {
            float r = alpha * acc[i][j];
            if (bias)
                r = r + bias[j];
            c[j] = accumulate ? c[j] + r : r;
        }
    }
}

static void gemm_generic(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                         const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha,
                         const float *bias, int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += GNR) {
        int nr = N - j0 < GNR ? N - j0 : GNR;
        for (int i0 = 0; i0 < M; i0 += MR) {
            int mr = M - i0 < MR ? M - i0 : MR;
            tile_generic(mr, nr, K, A + (ptrdiff_t)i0 * a_rs, a_rs, a_ks, B + j0, ldb,
                         C + (ptrdiff_t)i0 * ldc + j0, ldc, alpha, bias ? bias + j0 : NULL, accumulate);
        }
    }
}

#ifdef PS_HAVE_X86
/* ---------------------------------------------------------------------------------------------
 * AVX-512: tile of MR rows x NV vectors of 16 columns; the last vector is masked. Rows past mr
 * read row 0 of the tile (valid memory) and are not stored. */

#define T512 __attribute__((target("avx512f"), always_inline)) static inline

T512 void tile512(const int NV, int mr, __mmask16 mlast, int K, const float *A, ptrdiff_t a_rs,
                  ptrdiff_t a_ks, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha,
                  const float *bias, int accumulate)
{
    __m512 acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm512_setzero_ps();
    const float *a[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        a[i] = A + (i < mr ? i : 0) * a_rs;
    for (int k = 0; k < K; k++) {
        __m512 b[4];
        const float *bk = B + (ptrdiff_t)k * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(mlast, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
        const ptrdiff_t ko = (ptrdiff_t)k * a_ks;
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i][ko]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, b[v], acc[i][v]);
        }
    }
    const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= mr)
            break;
        float *c = C + (ptrdiff_t)i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 m = v == NV - 1 ? mlast : (__mmask16)0xffff;
            __m512 r = _mm512_mul_ps(al, acc[i][v]);
            if (bias)
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, bias + 16 * v));
            if (accumulate)
                r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + 16 * v), r);
            _mm512_mask_storeu_ps(c + 16 * v, m, r);
        }
    }
}

__attribute__((target("avx512f"))) static void gemm_avx512(int M, int N, int K, const float *A, ptrdiff_t a_rs,
                                                         ptrdiff_t a_ks, const float *B, ptrdiff_t ldb, float *C,
                                                         ptrdiff_t ldc, float alpha, const float *bias,
                                                         int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += 64) {
        const int nc = N - j0 < 64 ? N - j0 : 64;
        const int nv = (nc + 15) / 16;
        const __mmask16 mlast = (__mmask16)(0xffffu >> (16 * nv - nc));
        const float *bj = B + j0, *biasj = bias ? bias + j0 : NULL;
        for (int i0 = 0; i0 < M; i0 += MR) {
            const int mr = M - i0 < MR ? M - i0 : MR;
            const float *ai = A + (ptrdiff_t)i0 * a_rs;
            float *ci = C + (ptrdiff_t)i0 * ldc + j0;
            switch (nv) {
            case 4: tile512(4, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate); break;
            case 3: tile512(3, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate); break;
            case 2: tile512(2, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate); break;
            default: tile512(1, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate); break;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 + FMA: 6 rows x NV vectors of 8 columns (NV <= 2). */

#define T256 __attribute__((target("avx2,fma"), always_inline)) static inline

T256 __m256i mask256(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

T256 void tile256(const int NV, int mr, __m256i mlast, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                  const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias,
                  int accumulate)
{
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm256_setzero_ps();
    const float *a[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        a[i] = A + (i < mr ? i : 0) * a_rs;
    for (int k = 0; k < K; k++) {
        __m256 b[2];
        const float *bk = B + (ptrdiff_t)k * ldb;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            b[v] = v == NV - 1 ? _mm256_maskload_ps(bk + 8 * v, mlast) : _mm256_loadu_ps(bk + 8 * v);
        const ptrdiff_t ko = (ptrdiff_t)k * a_ks;
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a[i] + ko);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm256_fmadd_ps(ai, b[v], acc[i][v]);
        }
    }
    const __m256 al = _mm256_set1_ps(alpha);
    const __m256i full = _mm256_set1_epi32(-1);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= mr)
            break;
        float *c = C + (ptrdiff_t)i * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const __m256i m = v == NV - 1 ? mlast : full;
            __m256 r = _mm256_mul_ps(al, acc[i][v]);
            if (bias)
                r = _mm256_add_ps(r, _mm256_maskload_ps(bias + 8 * v, m));
            if (accumulate)
                r = _mm256_add_ps(_mm256_maskload_ps(c + 8 * v, m), r);
            _mm256_maskstore_ps(c + 8 * v, m, r);
        }
    }
}

__attribute__((target("avx2,fma"))) static void gemm_avx2(int M, int N, int K, const float *A, ptrdiff_t a_rs,
                                                        ptrdiff_t a_ks, const float *B, ptrdiff_t ldb, float *C,
                                                        ptrdiff_t ldc, float alpha, const float *bias, int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += 16) {
        const int nc = N - j0 < 16 ? N - j0 : 16;
        const int nv = (nc + 7) / 8;
        const __m256i mlast = mask256(nc - 8 * (nv - 1));
        const float *bj = B + j0, *biasj = bias ? bias + j0 : NULL;
        for (int i0 = 0; i0 < M; i0 += MR) {
            const int mr = M - i0 < MR ? M - i0 : MR;
            const float *ai = A + (ptrdiff_t)i0 * a_rs;
            float *ci = C + (ptrdiff_t)i0 * ldc + j0;
            if (nv == 2)
                tile256(2, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate);
            else
                tile256(1, mr, mlast, K, ai, a_rs, a_ks, bj, ldb, ci, ldc, alpha, biasj, accumulate);
        }
    }
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Dispatch */

static gemm_fn g_gemm;
static const char *g_gemm_name = "generic";

static void pick(void)
{
    const char *force = getenv("POPSTEER_GEMM_ISA"); /* generic | avx2 | avx512, for testing */
    g_gemm = gemm_generic;
    g_gemm_name = "generic";
#ifdef PS_HAVE_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (force && !strcmp(force, "generic"))
        has512 = has2 = 0;
    else if (force && !strcmp(force, "avx2"))
        has512 = 0;
    if (has512) {
        g_gemm = gemm_avx512;
        g_gemm_name = "avx512";
    } else if (has2) {
        g_gemm = gemm_avx2;
        g_gemm_name = "avx2";
    }
#endif
}

__attribute__((constructor)) static void gemm_init(void)
{
    pick();
}

const char *ps_nn_gemm_isa(void)
{
    return g_gemm_name;
}

/* The backend chosen for the call's shape class (gemm_backend.c), else our kernels. */
void ps_nn_gemm(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *B,
                ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias, int accumulate)
{
    if (M <= 0 || N <= 0)
        return;
    if (K > 0) {
        const int b = ps_nn_gemm_backend_for(M, N, K, a_rs, a_ks);
        if (b != PS_GEMM_OWN && ps_nn_gemm_lib(b, M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, bias, accumulate))
            return;
    }
    ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, bias, accumulate);
}

void ps_nn_gemm_own(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *B,
                    ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias, int accumulate)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* the empty sum */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float r = 0.0f;
                if (bias)
                    r = r + bias[j];
                float *c = C + (ptrdiff_t)i * ldc + j;
                *c = accumulate ? *c + r : r;
            }
        return;
    }
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
        const int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        g_gemm(M, N, kc, A + (ptrdiff_t)k0 * a_ks, a_rs, a_ks, B + (ptrdiff_t)k0 * ldb, ldb, C, ldc, alpha,
               k0 == 0 ? bias : NULL, k0 == 0 ? accumulate : 1);
    }
}

void ps_nn_transpose(float *dst, const float *src, int rows, int cols)
{
    for (int r0 = 0; r0 < rows; r0 += 16)
        for (int c0 = 0; c0 < cols; c0 += 16) {
            int r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                    dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
        }
}
