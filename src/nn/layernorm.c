/* LayerNorm over the last dimension (PyTorch: biased variance, eps inside the sqrt). */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Row statistics in double: with eps = 1e-12 nothing guards a near-constant row, so the
 * variance must not lose digits to cancellation. */
static inline void ln_row(float *out, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int n, int C, float eps)
{
    {
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

void ps_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                             const float *b, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
    for (int n = 0; n < N; n++)
        ln_row(out, mean, rstd, x, w, b, n, C, eps);
}

/* The serial row versions: the same formulas with the row sums vectorised (their order follows
 * the vector width, so the bits differ slightly from ln_row; each row still depends on itself
 * only). */
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));

/* Rows whose width is a multiple of 16: the double sums in 8-lane vectors (lane-wise over the
 * row, then the lanes in order), the output in 16-lane floats. */
PS_NN_CLONES static void layernorm_rows16(float *out, float *mean, float *rstd, const float *x, const float *w,
                                          const float *b, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        v8d s = {0};
        for (int c = 0; c < C; c += 8) {
            v8f f;
            memcpy(&f, xr + c, sizeof f);
            s += __builtin_convertvector(f, v8d);
        }
        double sum = 0.0;
        for (int l = 0; l < 8; l++)
            sum += s[l];
        const double m = sum / C;
        v8d vv = {0};
        for (int c = 0; c < C; c += 8) {
            v8f f;
            memcpy(&f, xr + c, sizeof f);
            v8d dv = __builtin_convertvector(f, v8d) - m;
            vv += dv * dv;
        }
        double v = 0.0;
        for (int l = 0; l < 8; l++)
            v += vv[l];
        v /= C;
        const float mf = (float)m;
        const float rs = (float)(1.0 / sqrt(v + (double)eps));
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c += 16) {
            ps_v16f xv, wv, bv;
            memcpy(&xv, xr + c, sizeof xv);
            memcpy(&wv, w + c, sizeof wv);
            memcpy(&bv, b + c, sizeof bv);
            ps_v16f ov = (xv - mf) * rs * wv + bv;
            memcpy(o + c, &ov, sizeof ov);
        }
        mean[n] = mf;
        rstd[n] = rs;
    }
}

PS_NN_CLONES void ps_nn_layernorm_rows(float *out, float *mean, float *rstd, const float *x, const float *w,
                                       const float *b, int N, int C, float eps)
{
    if (C % 16 == 0) {
        layernorm_rows16(out, mean, rstd, x, w, b, N, C, eps);
        return;
    }
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += xr[c];
        const double m = s / C;
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            double dv = xr[c] - m;
            v += dv * dv;
        }
        v /= C;
        const float mf = (float)m;
        const float rs = (float)(1.0 / sqrt(v + (double)eps));
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = (xr[c] - mf) * rs * w[c] + b[c];
        mean[n] = mf;
        rstd[n] = rs;
    }
}

PS_NN_CLONES void ps_nn_layernorm_backward_rows(float *dx, float *dw, float *db, const float *dout, const float *x,
                                                const float *w, const float *mean, const float *rstd, int N, int C,
                                                int accumulate)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        const float *gr = dout + (size_t)n * C;
        const float m = mean[n], rs = rstd[n];
        float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - m) * rs;
            float g = gr[c] * w[c];
            sg += g;
            sgx += g * xh;
        }
        sg /= (float)C;
        sgx /= (float)C;
        float *dr = dx + (size_t)n * C;
        if (accumulate) {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float xh = (xr[c] - m) * rs;
                dr[c] = dr[c] + rs * (gr[c] * w[c] - sg - xh * sgx);
            }
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float xh = (xr[c] - m) * rs;
                dr[c] = rs * (gr[c] * w[c] - sg - xh * sgx);
            }
        }
#pragma omp simd
        for (int c = 0; c < C; c++) {
            dw[c] += gr[c] * (xr[c] - m) * rs;
            db[c] += gr[c];
        }
    }
}

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
