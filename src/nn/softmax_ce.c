/* Softmax cross-entropy against a whole embedding table, fused forward + backward, in row
 * blocks: the [block, V] logits are turned into the gradient in place, so N x V never exists. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>

/* logits [block,V] + per-row losses as doubles (+1 float to 8-byte align them) */
size_t ps_nn_softmax_ce_scratch_floats(int block, int V)
{
    return (size_t)block * V + 1 + 2 * (size_t)block;
}

static double *row_loss_buffer(float *scratch, int block, int V)
{
    size_t off = (size_t)block * V;
    if (((uintptr_t)(scratch + off)) % sizeof(double))
        off++;
    return (double *)(void *)(scratch + off);
}

/* One row: loss = log(sum_j exp(l_j - max)) + max - l_t in double; optionally turns the row into
 * grad_scale * (softmax - onehot(t)). */
PS_NN_CLONES static double ce_row(float *row, int V, int32_t t, int want_grad, float grad_scale)
{
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < V; j++)
        mx = row[j] > mx ? row[j] : mx;
    const float lt = row[t];
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
        float e = ps_nn_fexp(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    if (want_grad) {
        const float inv = (float)(grad_scale / sum);
#pragma omp simd
        for (int j = 0; j < V; j++)
            row[j] *= inv;
        row[t] -= grad_scale;
    }
    return log(sum) + (double)mx - (double)lt;
}

void ps_nn_ce_rows(float *logits, int nb, int V, const int32_t *target, int want_grad, float grad_scale,
                   double *losses)
{
    for (int r = 0; r < nb; r++)
        losses[r] = ce_row(logits + (size_t)r * V, V, target[r], want_grad, grad_scale);
}

double ps_nn_softmax_ce(float *dh, float *dE, const float *h, const float *E, const int32_t *target,
                        int N, int V, int C, float grad_scale, int block, float *scratch)
{
    float *logits = scratch;
    double *losses = row_loss_buffer(scratch, block, V);
    const int want_grad = dh != NULL;
    double total = 0.0;
    for (int r0 = 0; r0 < N; r0 += block) {
        const int nb = N - r0 < block ? N - r0 : block;
        const float *hb = h + (size_t)r0 * C;
        /* logits [nb,V] = hb [nb,C] E^T */
        ps_nn_sgemm(0, 1, nb, V, C, 1.0f, hb, C, E, C, 0.0f, logits, V);
#pragma omp parallel for schedule(static) if ((size_t)nb * V > 32768)
        for (int r = 0; r < nb; r++)
            losses[r] = ce_row(logits + (size_t)r * V, V, target[r0 + r], want_grad, grad_scale);
        for (int r = 0; r < nb; r++) /* serial, in row order: deterministic */
            total += losses[r];
        if (want_grad) {
            /* dh [nb,C] += G [nb,V] E [V,C];  dE [V,C] += G^T hb */
            ps_nn_sgemm(0, 0, nb, C, V, 1.0f, logits, V, E, C, 1.0f, dh + (size_t)r0 * C, C);
            if (dE)
                ps_nn_sgemm(1, 0, V, C, nb, 1.0f, logits, V, hb, C, 1.0f, dE, C);
        }
    }
    return total;
}
