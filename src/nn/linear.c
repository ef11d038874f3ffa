/* Linear layers in PyTorch layout (W [out, in]) through cblas_sgemm, plus small helpers. */
#include "nn/nn.h"

#include <cblas.h>
#include <omp.h>

void ps_nn_split(int n, int nth, int t, int *lo, int *hi)
{
    int base = n / nth, rem = n % nth;
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, x, IC, W, IC, beta, y, OC);
}

void ps_nn_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                           const float *W, int N, int IC, int OC)
{
    if (dx) /* dx [N,IC] += dy [N,OC] W [OC,IC] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dy, OC, W, IC, 1.0f,
                    dx, IC);
    /* dW [OC,IC] += dy^T [OC,N] x [N,IC] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dy, OC, x, IC, 1.0f, dW, IC);
    if (db)
        ps_nn_colsum_acc(db, dy, N, OC);
}
