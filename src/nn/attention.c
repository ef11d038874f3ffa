/* Causal, padding-masked multi-head self-attention core (RecBole's MultiHeadAttention between
 * the Q/K/V projections and the output dense). One small sgemm per (batch, head), the heads read
 * in place from the fused qkv rows through the leading dimension, OpenMP over batch x heads. */
#include "nn/fastmath.h"
#include "nn/nn.h"

#include <math.h>

#define MASK_VALUE -10000.0f

/* ps_nn_sgemm runs a product single-threaded when m*n*k is small; above that it shares it out
 * between the threads itself, so the (batch, head) loop then runs serially. */
static int small_gemms(int L, int hd)
{
    return (double)L * L * hd <= 262144.0;
}

/* Parallel over (batch, head) when the products are small enough to run
 * single-threaded and there is enough work to pay for waking the threads. */
static int parallel_heads(int BH, int L, int hd)
{
    return small_gemms(L, hd) && (double)BH * L * L * hd > 65536.0;
}

PS_NN_CLONES static void softmax_masked_rows(float *S, const int32_t *ids, int L)
{
    for (int i = 0; i < L; i++) {
        float *row = S + (size_t)i * L;
        float mx = -INFINITY;
        for (int j = 0; j < L; j++) {
            /* added, as PyTorch does: a fully masked row then still softmaxes its raw scores */
            row[j] += (j <= i && ids[j] != 0) ? 0.0f : MASK_VALUE;
            mx = row[j] > mx ? row[j] : mx;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < L; j++) {
            row[j] = ps_nn_fexp(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < L; j++)
            row[j] *= inv;
    }
}

void ps_nn_attention_forward(float *ctx, float *probs, float *probs_drop, const float *qkv,
                             const int32_t *ids, int B, int L, int C, int H,
                             const ps_nn_dropout *drop)
{
    const int C3 = 3 * C, hd = C / H, BH = B * H;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t LL = (size_t)L * L;
    const int par = parallel_heads(BH, L, hd);

#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < BH; bh++) {
        int b = bh / H, h = bh % H;
        const float *q = qkv + (size_t)b * L * C3 + (size_t)h * hd;
        const float *k = q + C;
        float *S = probs + (size_t)bh * LL;
        ps_nn_sgemm(0, 1, L, L, hd, scale, q, C3, k, C3, 0.0f, S, L);
        softmax_masked_rows(S, ids + (size_t)b * L, L);
    }

    const float *P = probs;
    if (drop && drop->p > 0.0f) {
        /* one call over the whole [B,H,L,L] array: element indices, and so the mask, are global */
        ps_nn_dropout_forward(probs_drop, probs, (size_t)BH * LL, drop);
        P = probs_drop;
    }

#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < BH; bh++) {
        int b = bh / H, h = bh % H;
        const float *v = qkv + (size_t)b * L * C3 + 2 * (size_t)C + (size_t)h * hd;
        float *c = ctx + (size_t)b * L * C + (size_t)h * hd;
        ps_nn_sgemm(0, 0, L, hd, L, 1.0f, P + (size_t)bh * LL, L,
                    v, C3, 0.0f, c, C);
    }
}

/* ctx = Pd V:  dPd = dctx V^T, dV += Pd^T dctx;  dP = mask * dPd / (1-p);
 * softmax: dS = P (dP - rowsum(P dP));  S = scale Q K^T:  dQ += scale dS K, dK += scale dS^T Q.
 * The mask is a constant added to S, so it has no gradient (and P = 0 where it bites). */
void ps_nn_attention_backward(float *dqkv, float *dscratch, const float *dctx, const float *qkv,
                              const float *probs, const float *probs_drop, int B, int L, int C,
                              int H, const ps_nn_dropout *drop)
{
    const int C3 = 3 * C, hd = C / H, BH = B * H;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t LL = (size_t)L * L;
    const int par = parallel_heads(BH, L, hd);
    const int dropping = drop && drop->p > 0.0f;
    const float *Pd_all = dropping ? probs_drop : probs;

#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < BH; bh++) {
        int b = bh / H, h = bh % H;
        size_t off = (size_t)b * L * C3 + (size_t)h * hd;
        const float *v = qkv + off + 2 * (size_t)C;
        float *dv = dqkv + off + 2 * (size_t)C;
        const float *dc = dctx + (size_t)b * L * C + (size_t)h * hd;
        float *dS = dscratch + (size_t)bh * LL;
        ps_nn_sgemm(0, 1, L, L, hd, 1.0f, dc, C, v, C3, 0.0f, dS, L);
        ps_nn_sgemm(1, 0, L, hd, L, 1.0f, Pd_all + (size_t)bh * LL, L,
                    dc, C, 1.0f, dv, C3);
    }

    if (dropping) /* applying the forward op to the gradient multiplies by mask / (1-p) */
        ps_nn_dropout_forward(dscratch, dscratch, (size_t)BH * LL, drop);

#pragma omp parallel for schedule(static) if (par)
    for (int bh = 0; bh < BH; bh++) {
        int b = bh / H, h = bh % H;
        size_t off = (size_t)b * L * C3 + (size_t)h * hd;
        const float *q = qkv + off, *k = qkv + off + C;
        float *dq = dqkv + off, *dk = dqkv + off + C;
        const float *P = probs + (size_t)bh * LL;
        float *dS = dscratch + (size_t)bh * LL;
        for (int i = 0; i < L; i++) {
            const float *pr = P + (size_t)i * L;
            float *dr = dS + (size_t)i * L;
            float dot = 0.0f;
            for (int j = 0; j < L; j++)
                dot += pr[j] * dr[j];
            for (int j = 0; j < L; j++)
                dr[j] = pr[j] * (dr[j] - dot);
        }
        ps_nn_sgemm(0, 0, L, hd, L, scale, dS, L, k, C3, 1.0f, dq, C3);
        ps_nn_sgemm(1, 0, L, hd, L, scale, dS, L, q, C3, 1.0f, dk, C3);
    }
}
