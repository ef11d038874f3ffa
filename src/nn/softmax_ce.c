/* Softmax cross-entropy against a whole embedding table, fused forward + backward, in row
 * blocks: the [block, V] logits are turned into the gradient in place, so N x V never exists. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>
#include <string.h>

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
PS_NN_CLONES_FMA static double ce_row(float *row, int V, int32_t t, int want_grad, float grad_scale)
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

/* ce_row in explicit 16-lane vectors: the max with four independent accumulators (one is a
 * dependency chain of maxes), the exponentials summed in float lanes (four accumulators of 16
 * partial sums of ~V/64 terms each, added pairwise, then the 16 lanes in order in double), the
 * scaling in place.
 * Same result as ce_row up to float rounding. */
PS_NN_INLINE ps_v16f load16(const float *p)
{
    ps_v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

PS_NN_INLINE void store16(float *p, ps_v16f v)
{
    memcpy(p, &v, sizeof v);
}

PS_NN_INLINE ps_v16f vmax16(ps_v16f a, ps_v16f b)
{
    ps_v16i ge = a >= b;
    return (ps_v16f)(((ps_v16i)a & ge) | ((ps_v16i)b & ~ge));
}

PS_NN_CLONES_FMA static double ce_row_v16(float *row, int V, int32_t t, int want_grad, float grad_scale)
{
    const int nv = V / 16, n4 = nv / 4 * 4, tail = nv * 16;
    const ps_v16f ninf = (ps_v16f){0} - INFINITY;
    ps_v16f m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int q = 0;
    for (; q < n4; q += 4) {
        m0 = vmax16(m0, load16(row + 16 * q));
        m1 = vmax16(m1, load16(row + 16 * q + 16));
        m2 = vmax16(m2, load16(row + 16 * q + 32));
        m3 = vmax16(m3, load16(row + 16 * q + 48));
    }
    for (; q < nv; q++)
        m0 = vmax16(m0, load16(row + 16 * q));
    ps_v16f m = vmax16(vmax16(m0, m1), vmax16(m2, m3));
    float mx = -INFINITY;
    for (int l = 0; l < 16; l++)
        mx = m[l] > mx ? m[l] : mx;
    for (int j = tail; j < V; j++)
        mx = row[j] > mx ? row[j] : mx;
    const float lt = row[t];
    ps_v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (q = 0; q < n4; q += 4) {
        ps_v16f e0 = ps_nn_fexp_v16(load16(row + 16 * q) - mx);
        ps_v16f e1 = ps_nn_fexp_v16(load16(row + 16 * q + 16) - mx);
        ps_v16f e2 = ps_nn_fexp_v16(load16(row + 16 * q + 32) - mx);
        ps_v16f e3 = ps_nn_fexp_v16(load16(row + 16 * q + 48) - mx);
        store16(row + 16 * q, e0);
        store16(row + 16 * q + 16, e1);
        store16(row + 16 * q + 32, e2);
        store16(row + 16 * q + 48, e3);
        a0 = a0 + e0;
        a1 = a1 + e1;
        a2 = a2 + e2;
        a3 = a3 + e3;
    }
    for (; q < nv; q++) {
        ps_v16f e = ps_nn_fexp_v16(load16(row + 16 * q) - mx);
        store16(row + 16 * q, e);
        a0 = a0 + e;
    }
    ps_v16f a = (a0 + a1) + (a2 + a3);
    double sum = 0.0;
    for (int l = 0; l < 16; l++)
        sum += (double)a[l];
    for (int j = tail; j < V; j++) {
        float e = ps_nn_fexp(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    if (want_grad) {
        const float inv = (float)(grad_scale / sum);
        for (q = 0; q < nv; q++)
            store16(row + 16 * q, load16(row + 16 * q) * inv);
        for (int j = tail; j < V; j++)
            row[j] *= inv;
        row[t] -= grad_scale;
    }
    return log(sum) + (double)mx - (double)lt;
}

void ps_nn_ce_rows(float *logits, int nb, int V, const int32_t *target, int want_grad, float grad_scale,
                   double *losses)
{
    for (int r = 0; r < nb; r++)
        losses[r] = ce_row_v16(logits + (size_t)r * V, V, target[r], want_grad, grad_scale);
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
