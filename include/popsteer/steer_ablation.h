/* Ablations of PopSteer that cannot be folded into the encoder bias (issue 14 §1): they change
 * each user differently (conditional) or act without the SAE (direction). The plan variants
 * (unweighted, random latents) are in steer.h.
 *
 * Conditional ("ps-conditional"). The paper's plan (same S, weights and shifts), but latent j is
 * shifted for user u only when the user's unshifted pre-activation a_uj lies beyond the other
 * synthetic group's range on it: a_uj > μ_j^other + 2 σ_j^other, "other" being the long-tail-only
 * group for a popular latent (d_j > 0) and the popular-only group for a long-tail latent (d_j < 0).
 * For either sign this is "the latent fires more strongly than it does for users of the opposite
 * taste", i.e. the user expresses the latent's own popularity side on it: popular latents are
 * lowered only for users who are clearly popular-leaning on them, long-tail latents raised only for
 * users already clearly long-tail-leaning on them. Why this rule: the authors' later code
 * (parepic/PopSteer2.0, dampen_neurons in recbole/model/.../sasrec_sae.py and lightgcn_sae.py) reads, for each steered latent,
 * the mean and sd of the *other* group and computes the latent's column with the comments
 * "positions where the neuron's activation is above its mean" (long-tail latents) / "below its
 * mean" (popular ones); in the versions stored there the mask is computed but not applied, and no
 * threshold is given. The issue fixes the threshold at μ ± 2σ of the other group; we take the side
 * that selects users who express the latent (above, for both signs, since d's sign already says
 * which group the latent is high for).
 *
 * Direction ("ps-direction"). Activation steering in SASRec's own space, no SAE:
 *   h' = h + α · ν · u,   u = (m_lt − m_pop) / ‖m_lt − m_pop‖,
 * m_pop / m_lt the mean SASRec user vector of the probe's popular-only / long-tail-only synthetic
 * users (the same users, same seed and cap, as the probe behind Cohen's d), and ν the mean ‖h‖ of
 * the real users' validation prefixes. ν is taken from the validation split and used for both
 * splits, so the test split sees the vector chosen on validation and α is in units of a typical
 * user vector's length (α = 1 moves a user by one typical norm). */
#ifndef POPSTEER_STEER_ABLATION_H
#define POPSTEER_STEER_ABLATION_H

#include <stdint.h>

#include "popsteer/error.h"
#include "popsteer/evaluate.h"
#include "popsteer/popsteer.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/steer.h"

/* ---- conditional ---- */

/* thr[i] = μ^other + 2σ^other of plan->latent[i] (+INFINITY when d == 0: never shifted). mean_* and
 * sd_* are the probe's per-latent group statistics, [plan->m] each. */
void ps_steer_conditional_thresholds(const ps_steer_plan *plan, const double *d, const double *mean_pop,
                                     const double *sd_pop, const double *mean_unpop, const double *sd_unpop,
                                     double *thr);

/* Adds (float)shift_i to pre[b][latent_i] of each of the B rows where the unshifted pre[b][latent_i]
 * > thr[i]. Returns how many (row, latent) shifts were applied. */
int64_t ps_steer_apply_conditional(const ps_steer_plan *plan, const double *thr, float *pre, int B);

/* ---- direction ---- */

/* The mean SASRec user vector of the probe's popular-only (mean_pop) and long-tail-only (mean_lt)
 * synthetic users: ps_probe_users_make(ds, o->cap, o->seed) — the very users ps_probe_run measures —
 * through the model, averaged in double in row order (deterministic). Each output has model d
 * entries. */
int ps_probe_mean_vectors(const ps_sasrec *m, const ps_dataset *ds, const ps_probe_options *o, double *mean_pop,
                          double *mean_lt, ps_error *err);

/* delta = α · ν · (m_lt − m_pop) / ‖m_lt − m_pop‖ in float, [dim]. Fails when the means coincide
 * (no direction) or any input is not finite; α must be >= 0. */
int ps_direction_delta(const double *mean_pop, const double *mean_lt, int dim, double alpha, double nu,
                       float *delta, ps_error *err);

/* Mean Euclidean norm of n vectors h [n, dim] (0 when n == 0). */
double ps_mean_norm(const float *h, int64_t n, int dim);

/* ---- the scorer of both (SASRec → [ablation] → scores), for ps_evaluate or a sweep ---- */

typedef enum ps_ablation_kind { PS_ABLATION_CONDITIONAL = 0, PS_ABLATION_DIRECTION = 1 } ps_ablation_kind;

typedef struct ps_ablation_scorer {
    ps_ablation_kind kind;
    const ps_sasrec *model;
    const ps_sae *sae;             /* conditional only */
    const ps_steer_plan *plan;     /* conditional: the paper's plan */
    const double *thr;             /* conditional: [plan->n] thresholds */
    const float *delta;            /* direction: [d] the added vector */
    ps_sasrec_ws *ws;
    ps_sae_encoder enc;
    float *h, *pre, *val, *hrec;
    int32_t *idx;
    int max_batch;
    int64_t shifted;               /* conditional: (user, latent) shifts applied so far */
} ps_ablation_scorer;

/* Conditional: sae, plan (made for the SAE's m) and thr needed; delta NULL. Direction: delta needed,
 * sae/plan/thr NULL. Everything passed must outlive the scorer. */
int ps_ablation_scorer_init(ps_ablation_scorer *s, ps_ablation_kind kind, const ps_sasrec *m, const ps_sae *sae,
                            const ps_steer_plan *plan, const double *thr, const float *delta, int max_batch,
                            ps_error *err);
void ps_ablation_scorer_free(ps_ablation_scorer *s);
ps_scorer ps_ablation_scorer_as_scorer(ps_ablation_scorer *s);
/* Scores [B, n_items + 1] from B <= max_batch SASRec user vectors h [B, d] (the sweep caches them). */
void ps_ablation_score_vectors(ps_ablation_scorer *s, const float *h, int B, float *scores);

#endif
