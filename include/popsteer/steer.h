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

/* Ablations of the plan (issue 14 §1): which part of the paper's rule does the work? Both fold
 * into the encoder bias exactly like the paper's plan (the shift is the same for every user).
 *  PS_STEER_UNWEIGHTED: the paper's S (the N latents with the largest |d|), every latent with
 *    d != 0 weight α (no Cohen's-d scaling); the shifts as step 3.
 *  PS_STEER_RANDOM: N latents drawn uniformly without replacement from all m (a partial
 *    Fisher–Yates shuffle driven by splitmix64 seeded with seed ^ (N · 0x9e3779b97f4a7c15), so
 *    every N has its own draw and the draw depends on nothing else), in draw order. The i-th
 *    drawn latent gets the weight of the paper's i-th latent (the paper's weight vector for this
 *    α and N, position by position), and its shift follows step 3 with the drawn latent's own
 *    d and σ: +w σ^pop if d < 0, −w σ^unpop if d > 0, 0 if d == 0 (a latent without bias
 *    cannot be given a direction). So the same amount of steering is spent, on latents the
 *    probe did not pick.
 * Validation and failure as ps_steer_plan_make. min_abs_d / max_abs_d are the paper's. */
typedef enum ps_steer_variant { PS_STEER_PAPER = 0, PS_STEER_UNWEIGHTED = 1, PS_STEER_RANDOM = 2 } ps_steer_variant;

int ps_steer_plan_make_variant(const double *d, const double *sd_pop, const double *sd_unpop, int m, int N,
                               double alpha, ps_steer_variant variant, uint64_t seed, ps_steer_plan *plan,
                               ps_error *err);

/* Adds the plan's shifts in place to B rows of dense pre-activations pre[B][plan->m]
 * (row-major), before ReLU/TopK. Each shift is rounded to float once, so every row receives
 * exactly the same float increment. */
void ps_steer_apply(const ps_steer_plan *plan, float *pre, int B);
/* The same shifts added once to an encoder bias [m] (ps_sae_encoder.bias): since every row gets
 * the same shift, steering is a change of the bias, and costs nothing per user. */
void ps_steer_shift_bias(const ps_steer_plan *plan, float *bias);

#endif
