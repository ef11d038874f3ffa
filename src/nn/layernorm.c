/* LayerNorm over the last dimension (PyTorch: biased variance, eps inside the sqrt). */
#include "nn/nn.h"

#include <math.h>
#include <omp.h>

/* Row statistics in double: with eps = 1e-12 nothing guards a near-constant row, so the
 * variance must not lose digits to cancellation. */
void ps_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                             const float *b, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += xr[c];
        double m = s / C;
        double v = 0.0;
        for (int c = 0; c < C; c++) {
            double dv = xr[c] - m;
            v += dv * dv;
        }
        v /= C;
        float mf = (float)m;
        float rs = (float)(1.0 / sqrt(v + (double)eps));
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++)
            o[c] = (xr[c] - mf) * rs * w[c] + b[c];
        mean[n] = mf;
        rstd[n] = rs;
    }
}

/* With xhat = (x - mean) rstd and g = dout * w:
 *   dx = rstd (g - mean_c(g) - xhat mean_c(g xhat)),  dw = sum_n dout xhat,  db = sum_n dout.
 * dx is row-parallel; dw/db are split by column so each sum runs in row order (deterministic). */
void ps_nn_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                              const float *w, const float *mean, const float *rstd, int N, int C)
{
#pragma omp parallel if ((size_t)N * C > 32768)
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * C;
            const float *gr = dout + (size_t)n * C;
            const float m = mean[n], rs = rstd[n];
            float sg = 0.0f, sgx = 0.0f;
            for (int c = 0; c < C; c++) {
                float xh = (xr[c] - m) * rs;
                float g = gr[c] * w[c];
                sg += g;
                sgx += g * xh;
            }
            sg /= (float)C;
            sgx /= (float)C;
            float *dr = dx + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float xh = (xr[c] - m) * rs;
                dr[c] += rs * (gr[c] * w[c] - sg - xh * sgx);
            }
        }
        int c0, c1;
        ps_nn_split(C, omp_get_num_threads(), omp_get_thread_num(), &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * C;
            const float *gr = dout + (size_t)n * C;
            const float m = mean[n], rs = rstd[n];
            for (int c = c0; c < c1; c++) {
                dw[c] += gr[c] * (xr[c] - m) * rs;
                db[c] += gr[c];
            }
        }
    }
}
