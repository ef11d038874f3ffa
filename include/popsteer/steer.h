/* Steering (SPEC §5): shift the SAE pre-activations of the most popularity-biased latents
 * before ReLU/TopK, so that the decoded user vector leans towards long-tail taste.
 *
 * A plan is computed once from the probe's Cohen's d and the synthetic groups' standard
 * deviations; applying it is a handful of additions per user, done in place on the dense
 * pre-activations the SAE encoder produced. */
#ifndef POPSTEER_STEER_H
#define POPSTEER_STEER_H

#include <stdint.h>

#include "popsteer/error.h"

/* The latents to shift and by how much, in the order of S (largest |d| first). */
typedef struct ps_steer_plan {
    int m;              /* latents of the SAE the plan was made for (row stride for apply) */
    int n;              /* |S| = N */
    double alpha;
    double min_abs_d;   /* min |d| over all latents with d != 0 (0 if there are none) */
    double max_abs_d;   /* max |d| over S */
    int32_t *latent;    /* [n] latent indices of S */
    double *weight;     /* [n] w_j (0 for a latent with d_j == 0: it is never shifted) */
    double *shift;      /* [n] the amount added to pre-activation latent[i] */
} ps_steer_plan;

/* Builds the plan of SPEC §5 from d, sd_pop, sd_unpop (each [m]):
 *  1. S = the N latents with the largest |d|, both signs together; ties go to the smaller
 *     index.
 *  2. w_j = α · (|d_j| − min|d|) / (max|d| − min|d|), the min over ALL latents with d != 0,
 *     the max over S; when max == min (all non-zero |d| equal), w_j = α/2.
 *  3. shift_j = +w_j · σ_j^pop if d_j < 0, −w_j · σ_j^unpop if d_j > 0, 0 if d_j == 0
 *     (each side scaled by the std of the *other* synthetic group, as in the reference).
 * So the weakest non-zero latent overall gets weight 0 and the strongest gets α; with α = 0
 * every shift is 0 and steering reduces to the plain SAE reconstruction.
 *
 * Validation: m >= 1; 1 <= N <= m (the message names N and m); α finite and >= 0 — a
 * negative α would push users towards popular items, i.e. amplify the bias this method
 * exists to reduce, so it is rejected rather than silently allowed; every d_j, σ_j^pop,
 * σ_j^unpop finite, and σ >= 0 (the message names the first bad latent).
 * On failure *plan is left empty (safe to free). */
int ps_steer_plan_make(const double *d, const double *sd_pop, const double *sd_unpop, int m, int N, double alpha,
                       ps_steer_plan *plan, ps_error *err);
void ps_steer_plan_free(ps_steer_plan *plan);

/* Adds the plan's shifts in place to B rows of dense pre-activations pre[B][plan->m]
 * (row-major), before ReLU/TopK. Each shift is rounded to float once, so every row receives
 * exactly the same float increment. */
void ps_steer_apply(const ps_steer_plan *plan, float *pre, int B);
/* The same shifts added once to an encoder bias [m] (ps_sae_encoder.bias): since every row gets
 * the same shift, steering is a change of the bias, and costs nothing per user. */
void ps_steer_shift_bias(const ps_steer_plan *plan, float *bias);

#endif
