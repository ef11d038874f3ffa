/* PopSteer-I: steering along the named latents' decoder rows, with latents named by the item-side
 * probe (ps_item_side_table in popsteer.h). A method of its own next to the paper's rule (steer.h)
 * and PopSteer-U (steer_rule.h); docs/steering.md has the measurements that motivate it.
 *
 * Why: SASRec's score of item i is h · E_i, so any change of the user vector moves the scores by
 * Δh · E_i. The paper's rule makes Δh out of the latents the synthetic-user probe names, passed
 * through TopK: on Amazon Beauty that Δh raises a few long-tail items for everybody and Gini rises.
 * PopSteer-I keeps the ingredients — S = the N latents with the largest |d|, the weights
 * w_j = (|d_j| − min|d|) / (max|d| − min|d|) of SPEC §5 — but
 *   1. d comes from the item-side probe: what raising latent j does to head versus tail items'
 *      scores (Cohen's d of W_dec[j] · E_i between the two item groups), so a latent's sign says
 *      directly which items its decoder row favours;
 *   2. the named latents are moved linearly: popular latents (d > 0) lowered, long-tail ones
 *      (d < 0) raised by w_j, and the change passed through the decoder without re-running TopK
 *      (no latent is switched on from nothing, so users do not all receive the same new latents):
 *        v = Σ_{j∈S} −sign(d_j) · w_j · W_dec[j],   h' = h + α · ν · v / ‖v‖,
 *      ν = the mean ‖h‖ of the validation users (as ps-direction's), so α is in typical
 *      user-vector lengths. With the SAE's error kept, α = 0 is SASRec itself.
 * Every user receives the same Δh; it is still readable latent by latent: Δh is the sum of named
 * decoder rows with the weights w_j, and each latent's top items and item-side d are in its table. */
#ifndef POPSTEER_STEER_DECODER_H
#define POPSTEER_STEER_DECODER_H

#include "popsteer/dataset.h"
#include "popsteer/error.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"

/* delta [sae d_in] = α ν v / ‖v‖ as above, for the N (1..m) latents with the largest |d| (d [m],
 * the item-side probe's table; ties: the smaller index, as ps_steer_plan_make). The sum runs in
 * double over S in its order (deterministic). Fails when α or ν is negative or not finite, d is not
 * finite, or v is 0 (every weight 0 or the rows cancel: no direction). */
int ps_decoder_delta(const ps_sae *sae, const double *d, int N, double alpha, double nu, float *delta,
                     ps_error *err);

/* ν: the mean ‖h‖ of the model's vectors of the dataset's validation prefixes (the sweep takes it
 * from the vectors it has cached; a front end that scores users one way or another calls this). */
int ps_validation_mean_norm(const ps_sasrec *m, const ps_dataset *ds, double *nu, ps_error *err);

#endif
