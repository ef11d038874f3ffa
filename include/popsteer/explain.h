/* Why does the steered recommender score an item the way it does (issue 14 §4)? One user's
 * SAE codes and one item's score split into the latents that make it, before and after steering.
 *
 * The scored vector is the SAE's decoding ĥ = Σ_j z_j W_dec[j] + b_dec (sae.h), and SASRec's
 * scores are s_i = ĥ · E[i] with no output bias (ps_sasrec_score: one sgemm against the item
 * embedding). So the score of item i is exactly
 *   s_i = Σ_{j active} z_j (W_dec[j] · E[i])  +  b_dec · E[i]  [+ (h − ĥ_0) · E[i]]
 * where the last term exists only for PopSteer-U with keep_error (the scored vector is then
 * h + ĥ_steered − ĥ_0, ĥ_0 the unsteered decoding: SASRec's own error is carried along).
 *
 * "Before" is the unsteered SAE (the alpha = 0 reconstruction; SASRec itself under keep_error),
 * "after" the same user with the plan's or the rule's shifts added to the pre-activations before
 * TopK — the steered scorers' own chain (popsteer.h, steer_rule.h), computed here one user at a
 * time on dense pre-activations, so its scores equal theirs up to float rounding.
 *
 * The CLI's `popsteer explain` is a thin shell over ps_explain_user; a server can call it too. */
#ifndef POPSTEER_EXPLAIN_H
#define POPSTEER_EXPLAIN_H

#include <stdint.h>

#include "popsteer/error.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/steer.h"
#include "popsteer/steer_rule.h"

/* One active latent of a user (TopK value z > 0) and its share of the explained item's score. */
typedef struct ps_explain_code {
    int32_t latent;
    float z;          /* its TopK code */
    double contrib;   /* z · (W_dec[latent] · E[item]), in double */
    double d;         /* Cohen's d from the probe's table (NaN without a table) */
    double fire_rate; /* its fire rate on real users (NaN without a table) */
} ps_explain_code;

/* One side (before or after steering). */
typedef struct ps_explain_side {
    int n_codes;              /* active latents: those of the k TopK slots with z > 0 */
    ps_explain_code *codes;   /* [n_codes] in TopK order: largest z first (z > 0, so largest |z|) */
    int32_t *by_contrib;      /* [n_codes] indices into codes, largest |contrib| first (ties: the
                                 earlier code) */
    double bias_term;         /* b_dec · E[item] */
    double error_term;        /* (h − ĥ_0) · E[item] under keep_error, else 0 */
    double sum;               /* Σ contrib + bias_term + error_term, in double */
    float score;              /* the item's score as ps_sasrec_score computes it from the scored vector */
    float *scores;            /* [n_items + 1] every item's score (column 0 the pad item) */
} ps_explain_side;

typedef struct ps_explain {
    int32_t item;             /* the explained item */
    int item_was_top1;        /* 1: no item was asked for and item is the steered list's top 1 */
    double gate;              /* PopSteer-U's g_u for this user (1 for the paper's rule or none) */
    int n_items;
    ps_explain_side before, after;
} ps_explain;

/* Steering for the "after" side: at most one of plan and rule (both NULL: after == before). */
typedef struct ps_explain_steering {
    const ps_steer_plan *plan; /* the paper's rule (steer.h) */
    const ps_steer_rule *rule; /* PopSteer-U (steer_rule.h) */
} ps_explain_steering;

/* Explains the user whose prefix is seq [len] (oldest first, 1 <= len <= max_len, as for
 * ps_steer_user) and item (1..n_items; 0: the top-1 item of the steered scores, in ps_topk
 * order). table (may be NULL) supplies each code's d and fire rate; it must have the SAE's latent
 * count, as must the plan or rule, and the SAE's d_in must be the model's d. Errors name what does
 * not fit. On failure *out is left empty (safe to free). */
int ps_explain_user(const ps_sasrec *m, const ps_sae *sae, const ps_explain_steering *steer,
                    const ps_latent_table *table, const int32_t *seq, int len, int32_t item, ps_explain *out,
                    ps_error *err);
void ps_explain_free(ps_explain *e);

/* The n_top items whose embedding, passed as h, activates latent most (the probe's definition,
 * SPEC §4: largest W_enc[latent] · (E[i] − b_dec) + b_enc[latent]; ties go to the smaller item),
 * into top [n_top]; slots beyond n_items hold 0. Recomputed here because the latents table's
 * reader does not keep its top_items column; computed in double, so an order may differ from
 * the table's float one at near-ties. */
int ps_explain_latent_top_items(const ps_sasrec *m, const ps_sae *sae, int32_t latent, int n_top, int32_t *top,
                                ps_error *err);

#endif
