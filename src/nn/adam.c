/* Adam over one flat buffer, following torch.optim.Adam (single-tensor path, no weight decay,
 * no amsgrad): m <- lerp(m, g, 1-b1); v <- b2 v + (1-b2) g^2;
 * p <- p - (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) + eps). Bias corrections in double. */
#include "nn/nn.h"

#include <math.h>

void ps_nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, double lr, double beta1,
                     double beta2, double eps, int64_t t)
{
    const double bc1 = 1.0 - pow(beta1, (double)t);
    const double bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float w1 = (float)(1.0 - beta1), w2 = (float)(1.0 - beta2), b2 = (float)beta2;
    const float epsf = (float)eps;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + w1 * (gi - m[i]);
        float vi = b2 * v[i] + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) / bc2_sqrt + epsf);
    }
}
