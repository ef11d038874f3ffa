/* Sampled softmax with log-Q correction (Bengio & Senecal 2008; Jean et al. 2015; the
 * "logQ correction" of Yi et al. 2019) for catalogues too large for a full softmax per target.
 *
 * One set of N negatives is drawn per Adam step (shared by every row of the logical batch, so
 * the logits of a block of rows are one GEMM against an [d, N] table), with replacement, from a
 * proposal Q: uniform over the items 1..n, or proportional to (training count + 1). Each row r
 * with target t scores the N + 1 candidates {t} u S with corrected logits
 *     z_t = h_r . e_t - log(N q_t),   z_j = h_r . e_{s_j} - log(N q_{s_j}),
 * drops the "accidental hits" s_j == t (logit -inf), and takes the cross-entropy of t among them:
 *     loss_r = log(exp z_t + sum_j exp z_j) - z_t.
 * Gradients: dL/dz_j = p_j, dL/dz_t = p_t - 1 (p the softmax over the candidates), times the
 * gradient scale. With uniform Q the correction is a constant that cancels. Evaluation never uses
 * this: it ranks the whole catalogue. */
#ifndef POPSTEER_NN_SAMPLED_SOFTMAX_H
#define POPSTEER_NN_SAMPLED_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef enum ps_neg_sampler_kind { PS_SAMPLER_UNIFORM = 0, PS_SAMPLER_POP = 1 } ps_neg_sampler_kind;

/* The proposal over items 1..n_items (index 0, padding, is never drawn). */
typedef struct ps_neg_sampler {
    ps_neg_sampler_kind kind;
    int32_t n_items;
    int n;          /* negatives per draw */
    double *cdf;    /* [n_items] cumulative (pop only) */
    float *logq;    /* [n_items + 1]: log(n * q_i), the correction; logq[0] unused */
} ps_neg_sampler;

/* counts [n_items + 1] (training-target counts; index 0 ignored) are needed for PS_SAMPLER_POP. */
int ps_neg_sampler_init(ps_neg_sampler *s, ps_neg_sampler_kind kind, int32_t n_items, const int64_t *counts, int n,
                        ps_error *err);
void ps_neg_sampler_free(ps_neg_sampler *s);
/* n draws into out[n], a pure function of (seed, step): every rank of a distributed run and a
 * resumed run draw the same negatives for the same Adam step. */
void ps_neg_sampler_draw(const ps_neg_sampler *s, uint64_t seed, uint64_t step, int32_t *out);

/* Rows r of logits [nb, n]: in h_r . e_{neg_j}; out, with want_grad, grad_scale * dL/dlogit.
 * tlogit[r] = h_r . e_{target[r]}; tgrad[r] (want_grad) = grad_scale * dL/dtlogit. losses[r] =
 * loss_r in double. logq as in ps_neg_sampler (indexed by item). */
void ps_nn_sampled_ce_rows(float *logits, int nb, int n, const int32_t *neg, const float *logq, const float *tlogit,
                           const int32_t *target, int want_grad, float grad_scale, float *tgrad, double *losses);

#endif
