/* GELU, exact erf form (RecBole's "gelu", not the tanh approximation):
 *   gelu(x) = x Phi(x),  Phi(x) = 0.5 (1 + erf(x / sqrt 2)),  gelu'(x) = Phi(x) + x phi(x). */
#include "nn/fastmath.h"
#include "nn/nn.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define PAR_MIN 16384

PS_NN_CLONES_FMA static void gelu_span(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + ps_nn_ferf(v * INV_SQRT2));
    }
}

PS_NN_CLONES_FMA static void gelu_backward_span(float *dx, const float *x, const float *dout, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i], z = v * INV_SQRT2;
        float ez = ps_nn_fexp(-z * z); /* exp(-v^2/2): in erf's tail and in the density */
        float cdf = 0.5f * (1.0f + ps_nn_ferf_with_exp(z, ez));
        float pdf = INV_SQRT_2PI * ez;
        dx[i] += dout[i] * (cdf + v * pdf);
    }
}

PS_NN_CLONES_FMA static void gelu_backward_set(float *dx, const float *x, const float *dout, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i], z = v * INV_SQRT2;
        float ez = ps_nn_fexp(-z * z);
        float cdf = 0.5f * (1.0f + ps_nn_ferf_with_exp(z, ez));
        float pdf = INV_SQRT_2PI * ez;
        dx[i] = dout[i] * (cdf + v * pdf);
    }
}

void ps_nn_gelu_span(float *out, const float *x, size_t n)
{
    gelu_span(out, x, n);
}

void ps_nn_gelu_backward_span(float *dx, const float *x, const float *dout, size_t n, int accumulate)
{
    if (accumulate)
        gelu_backward_span(dx, x, dout, n);
    else
        gelu_backward_set(dx, x, dout, n);
}

void ps_nn_gelu_forward(float *out, const float *x, size_t n)
{
#pragma omp parallel if (n > PAR_MIN)
    {
        size_t lo, hi;
        ps_nn_thread_span(n, &lo, &hi);
        gelu_span(out + lo, x + lo, hi - lo);
    }
}

void ps_nn_gelu_backward(float *dx, const float *x, const float *dout, size_t n)
{
#pragma omp parallel if (n > PAR_MIN)
    {
        size_t lo, hi;
        ps_nn_thread_span(n, &lo, &hi);
        gelu_backward_span(dx + lo, x + lo, dout + lo, hi - lo);
    }
}
