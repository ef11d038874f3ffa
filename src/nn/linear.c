/* Linear layers in PyTorch layout (W [out, in]), the sgemm wrapper they use, small helpers. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <omp.h>

void ps_nn_split(int n, int nth, int t, int *lo, int *hi)
{
    int base = n / nth, rem = n % nth;
    *lo = t * base + (t < rem ? t : rem);
    *hi = *lo + base + (t < rem ? 1 : 0);
}

void ps_nn_thread_span(size_t n, size_t *lo, size_t *hi)
{
    size_t nth = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t base = n / nth, rem = n % nth;
    *lo = t * base + (t < rem ? t : rem);
    *hi = *lo + base + (t < rem ? 1 : 0);
}

void ps_nn_colsum_acc(float *out, const float *x, int N, int C)
{
#pragma omp parallel if ((size_t)N * C > 32768)
    {
        int c0, c1;
        ps_nn_split(C, omp_get_num_threads(), omp_get_thread_num(), &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * C;
            for (int c = c0; c < c1; c++)
                out[c] += xr[c];
        }
    }
}

PS_NN_CLONES void ps_nn_colsum_rows(float *out, const float *x, int N, int C, ptrdiff_t ldx)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (ptrdiff_t)n * ldx;
#pragma omp simd
        for (int c = 0; c < C; c++)
            out[c] += xr[c];
    }
}

PS_NN_CLONES void ps_nn_add_to(float *y, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

#define GEMM_PAR_MIN 1048576.0 /* m*n*k below which one thread does the whole product */
#define GEMM_CHUNKS 8           /* blocks a product is cut into, whatever the thread count */

void ps_nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc)
{
    if ((double)M * N * K < GEMM_PAR_MIN) {
        ps_nn_blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* The larger of M and N is cut into blocks of a size that depends on the shape only (a
     * multiple of 16, the micro-kernels' unroll), each block one single-threaded sgemm: every
     * output element is computed by the same call for any number of threads. */
    const int split_m = M >= N, dim = split_m ? M : N;
    const int blk = ((dim + GEMM_CHUNKS - 1) / GEMM_CHUNKS + 15) / 16 * 16;
    const int nblk = (dim + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int i = 0; i < nblk; i++) {
        int lo = i * blk, n = dim - lo < blk ? dim - lo : blk;
        if (split_m) /* rows lo.. of C come from rows (columns, when transposed) of A */
            ps_nn_blas_sgemm(ta, tb, n, N, K, alpha, ta ? A + lo : A + (size_t)lo * lda, lda, B, ldb, beta,
                             C + (size_t)lo * ldc, ldc);
        else
            ps_nn_blas_sgemm(ta, tb, M, n, K, alpha, A, lda, tb ? B + (size_t)lo * ldb : B + lo, ldb, beta, C + lo,
                             ldc);
    }
}

/* The bias is written first and the product added with beta = 1: one sgemm over all N rows
 * (every position of the batch at once) instead of one per sequence. */
void ps_nn_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int IC,
                          int OC)
{
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 32768)
        for (int n = 0; n < N; n++) {
            float *yr = y + (size_t)n * OC;
            for (int o = 0; o < OC; o++)
                yr[o] = b[o];
        }
        beta = 1.0f;
    }
    ps_nn_sgemm(0, 1, N, OC, IC, 1.0f, x, IC, W, IC, beta, y, OC);
}

void ps_nn_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                           const float *W, int N, int IC, int OC)
{
    if (dx) /* dx [N,IC] += dy [N,OC] W [OC,IC] */
        ps_nn_sgemm(0, 0, N, IC, OC, 1.0f, dy, OC, W, IC, 1.0f, dx, IC);
    /* dW [OC,IC] += dy^T [OC,N] x [N,IC] */
    ps_nn_sgemm(1, 0, OC, IC, N, 1.0f, dy, OC, x, IC, 1.0f, dW, IC);
    if (db)
        ps_nn_colsum_acc(db, dy, N, OC);
}
