/* PopSteer-U: a steering rule with per-user strength and separate strengths per sign, as a
 * method of its own next to the paper's (steer.h, SPEC §5), which stays unchanged.
 *
 * Why another rule (docs/steering.md has the measurements): the paper's rule adds the same
 * shift to every user, so on datasets where the probe separates poorly (short sequences,
 * Amazon Beauty) it pushes every user along one common direction; users converge on the same
 * few long-tail items and exposure concentrates (Gini rises) while accuracy falls. This rule
 * keeps the paper's ingredients — the same named latents S, ranked by |Cohen's d|, the same
 * d-proportional weights, the same σ scaling — and changes only how much each user receives:
 *
 *   1. S, w_j and shift_j as in SPEC §5, except that latents with d > 0 ("pop latents") use
 *      α_pop and latents with d < 0 ("long-tail latents") use α_unpop:
 *        w_j = α_sign(j) · (|d_j| − min|d|) / (max|d| − min|d|)   (α_sign/2 when max == min)
 *        shift_j = +w_j σ_j^pop (d_j < 0),  −w_j σ_j^unpop (d_j > 0)
 *      Optionally (skip_dead) latents that never fire on real users (fire rate 0 in the probe's
 *      table) are left out of S before ranking, so no strength is spent on latents that cannot
 *      reach any user's TopK except by the shift itself.
 *   2. Per-user gate (gate = PS_RULE_GATE_USER): where the user lies between the probe's two
 *      synthetic groups along the steered latents,
 *        π_u = Σ_{j∈S} d_j · (a_uj − c_j) / s_j  /  Σ_{j∈S} |d_j|,
 *      c_j = (μ_j^pop + μ_j^unpop)/2, s_j = √((σ_j^pop² + σ_j^unpop²)/2) (Cohen's pooled σ),
 *      latents with d_j == 0 or s_j == 0 left out. A synthetic popular-only user has expected
 *      π = π_ref = Σ d_j² / (2 Σ |d_j|) and a long-tail-only one −π_ref, so
 *        g_u = clamp((π_u + π_ref) / (2 π_ref), 0, 1)
 *      is 1 for a user as popular-leaning as the popular-only users, 0 for one as
 *      long-tail-leaning as the long-tail-only users, linear in between. Each of the user's
 *      shifts is multiplied by g_u: users whose popular latents are active are steered, the
 *      others are left (nearly) alone. No parameter: the probe's own statistics set the scale.
 *   3. a_uj += g_u · shift_j, then TopK, decode and score as in SPEC §5.
 *   4. Optionally (keep_error) the SAE's reconstruction error is kept: the scored vector is
 *      h + decode(TopK(a + shift)) − decode(TopK(a)), i.e. SASRec's own h moved by exactly what
 *      the steering changed in the SAE's output. Without a shift this is SASRec itself, so the
 *      method does not pay the reconstruction cost (docs/steering.md measures it).
 *
 * With α_pop = α_unpop = α, gate NONE and skip_dead off, the shifts are bit-for-bit the paper's
 * (ps_steer_plan_make) and ps_steer_rule_apply equals ps_steer_apply exactly. */
#ifndef POPSTEER_STEER_RULE_H
#define POPSTEER_STEER_RULE_H

#include <stdint.h>

#include "popsteer/error.h"
#include "popsteer/evaluate.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"

enum { PS_RULE_GATE_NONE = 0, PS_RULE_GATE_USER = 1 };

typedef struct ps_steer_rule_params {
    int N;              /* |S|: the N latents with the largest |d| (after skip_dead), 1..m */
    double alpha_pop;   /* strength on latents with d > 0 (lowered), >= 0 */
    double alpha_unpop; /* strength on latents with d < 0 (raised), >= 0 */
    int gate;           /* PS_RULE_GATE_NONE (every user the full shift) or PS_RULE_GATE_USER */
    int skip_dead;      /* 1: leave latents with fire rate 0 out of S (needs fire_rate) */
    int keep_error;     /* 1: score h + ĥ_steered − ĥ (step 4; read by the scorer only) */
} ps_steer_rule_params;

/* The paper's rule: α_pop = α_unpop = alpha, no gate, dead latents kept. */
void ps_steer_rule_params_paper(ps_steer_rule_params *p, int N, double alpha);

/* The probe's per-latent statistics the rule reads (each [m]; fire_rate may be NULL unless
 * skip_dead). ps_latent_table from probe.h fits field by field. */
typedef struct ps_steer_rule_probe {
    int m;
    const double *d, *mean_pop, *std_pop, *mean_unpop, *std_unpop, *fire_rate;
} ps_steer_rule_probe;

typedef struct ps_steer_rule {
    int m, n;              /* latents of the SAE (row stride), |S| */
    ps_steer_rule_params p;
    double min_abs_d;      /* min |d| over all latents with d != 0 */
    double max_abs_d;      /* max |d| over S */
    int32_t *latent;       /* [n] S, largest |d| first (ties: smaller index) */
    double *d;             /* [n] d of latent[i] */
    double *weight;        /* [n] w (0 when d == 0) */
    double *shift;         /* [n] the full (g = 1) shift of latent[i] */
    double *centre;        /* [n] c_j, the gate's midpoint between the groups' means */
    double *inv_spread;    /* [n] d_j / s_j / Σ|d| (0 when s_j == 0 or d_j == 0): π_u = Σ inv_spread·(a − c) */
    double pi_ref;         /* π of an average synthetic popular-only user (> 0 unless every d is 0) */
    int n_dead_skipped;    /* latents left out of the ranking by skip_dead */
} ps_steer_rule;

/* Builds the rule. Validation as ps_steer_plan_make (m >= 1; 1 <= N <= m; α's finite and >= 0;
 * d, means and σ finite, σ >= 0; fire rates finite in [0, 1] when given), plus: skip_dead needs
 * fire_rate, and N must not exceed the latents left after skipping (the message says how many).
 * On failure *r is left empty (safe to free). */
int ps_steer_rule_make(const ps_steer_rule_probe *pr, const ps_steer_rule_params *p, ps_steer_rule *r,
                       ps_error *err);
void ps_steer_rule_free(ps_steer_rule *r);

/* The gate of one row of dense pre-activations [m]: 1 when the rule has no gate, else g_u of
 * step 2 (1 when π_ref is 0: no latent separates the groups, nothing to gate on). */
double ps_steer_rule_gate(const ps_steer_rule *r, const float *row);

/* Adds g_u · shift_j in place to B rows of dense pre-activations pre[B][r->m] (row-major),
 * before ReLU/TopK. gate_out (may be NULL) receives each row's g_u. Each increment is rounded
 * to float once; without a gate it is (float)shift_j, exactly ps_steer_apply's. */
void ps_steer_rule_apply(const ps_steer_rule *r, float *pre, int B, double *gate_out);

/* ---- the recommender steered by the rule (SASRec → SAE pre-activations → rule → TopK →
 * decode → scores), as a ps_scorer for ps_evaluate or a sweep ---- */
typedef struct ps_rule_scorer {
    const ps_sasrec *model;
    const ps_sae *sae;
    const ps_steer_rule *rule;
    ps_sasrec_ws *ws;
    ps_sae_encoder enc;   /* the unshifted folded bias: the rule shifts per row */
    float *h, *pre, *val, *hrec;
    float *pre0, *hrec0;  /* keep_error: the unshifted pre-activations and their decoding */
    int32_t *idx;
    int max_batch;
    double gate_sum;      /* Σ g_u over the rows scored so far (ps_evaluate may call from one
                           * thread only for this scorer; see the note in the .c) */
    int64_t gate_rows;    /* rows scored so far */
} ps_rule_scorer;

/* rule->m must equal the SAE's latent count and the SAE's d_in the model's. The rule, SAE and
 * model must outlive the scorer. */
int ps_rule_scorer_init(ps_rule_scorer *s, const ps_sasrec *m, const ps_sae *sae, const ps_steer_rule *rule,
                        int max_batch, ps_error *err);
void ps_rule_scorer_free(ps_rule_scorer *s);
ps_scorer ps_rule_scorer_as_scorer(ps_rule_scorer *s);
/* The scores [B, n_items + 1] of B prefixes seq [B, L] / len [B] (what the ps_scorer calls). */
int ps_rule_score(ps_rule_scorer *s, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err);
/* The same from B <= max_batch SASRec user vectors h [B, d] (the sweep caches them). */
void ps_rule_score_vectors(ps_rule_scorer *s, const float *h, int B, float *scores);

#endif
