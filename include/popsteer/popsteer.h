/* PopSteer end to end on one model (SPEC §3–§5): user vectors for the SAE, the probe that scores
 * every latent, and the steered recommender, as a scorer for evaluation or one user at a time.
 *
 *   h = SASRec(prefix)                      ps_user_vectors
 *   a = W_enc (h − b_dec) + b_enc           ps_sae_encode_pre
 *   a_j += shift_j for the steered latents  ps_steer_apply
 *   ĥ = decode(TopK(ReLU(a)))               ps_sae_topk + ps_sae_decode
 *   s_i = ĥ · E[i]                          ps_sasrec_score
 * The scorer folds the shifts into the encoder bias once and fuses the encoding with TopK
 * (ps_steer_shift_bias on a ps_sae_encoder, then ps_sae_encoder_topk). ps_steer_user runs the
 * chain for a single prefix. */
#ifndef POPSTEER_POPSTEER_H
#define POPSTEER_POPSTEER_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/evaluate.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/steer.h"

/* Eval-mode user vectors of n samples' prefixes: out [n, d]. progress may be NULL. */
int ps_user_vectors(const ps_sasrec *m, const ps_dataset *ds, const ps_sample *samples, int64_t n, float *out,
                    void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err);

/* Eval-mode user vectors of every training prefix, X [n_train, d] in ds->train order: what
 * ps_user_vectors(m, ds, ds->train, ...) computes (the SAE's training set), with one causal pass
 * per user for all its prefixes that fit in the first window (the output at position t of a
 * left-aligned sequence only sees items 0..t, so it IS the vector of the prefix ending at t; equal
 * up to float rounding) and ps_user_vectors' own path for the sliding-window prefixes after it.
 * progress may be NULL. */
int ps_training_vectors(const ps_sasrec *m, const ps_dataset *ds, float *X,
                        void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err);

/* The two above with the work split over the ranks of dist (popsteer/dist.h; NULL: one process,
 * the same as above): rank r computes every P-th batch of the one-process run (the same sequences
 * in each call, so the same bits for any GEMM backend) and every rank gets every row. Under
 * mpirun, every rank must call them. progress reports how far through the rows this rank is. */
struct ps_dist;
int ps_user_vectors_dist(const ps_sasrec *m, const ps_dataset *ds, const ps_sample *samples, int64_t n, float *out,
                         const struct ps_dist *dist, void (*progress)(void *ctx, int64_t done, int64_t total),
                         void *ctx, ps_error *err);
int ps_training_vectors_dist(const ps_sasrec *m, const ps_dataset *ds, float *X, const struct ps_dist *dist,
                             void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err);

/* What an SAE is trained on: *X [n_train, d] the vectors of every training prefix, *Xv [n_users, d]
 * those of the validation prefixes (early stopping), allocated here (free both, also on failure),
 * computed with ps_*_vectors_dist. */
int ps_sae_vector_sets(const ps_sasrec *m, const ps_dataset *ds, const struct ps_dist *dist, float **X, float **Xv,
                       void (*progress)(void *ctx, int64_t done, int64_t total), void *ctx, ps_error *err);

/* ---- the steered recommender ---- */

typedef struct ps_steer_scorer {
    const ps_sasrec *model;
    const ps_sae *sae;
    const ps_steer_plan *plan; /* the plan it was made with, read once (its shifts are in enc.bias);
                                  NULL: the plain SAE-reconstructed recommender (alpha = 0) */
    ps_sasrec_ws *ws;
    ps_sae_encoder enc; /* its bias carries the plan's shifts */
    float *h, *val, *hrec;
    int32_t *idx;
    int max_batch;
} ps_steer_scorer;

/* PS_OK when the SAE reads the model's user vectors (its d_in is the model's d); otherwise an error
 * asking whether the SAE was trained on another model. Every SAE-on-model path checks this. */
int ps_sae_fits_model(const ps_sae *sae, const ps_sasrec *m, ps_error *err);

int ps_steer_scorer_init(ps_steer_scorer *s, const ps_sasrec *m, const ps_sae *sae, const ps_steer_plan *plan,
                         int max_batch, ps_error *err);
void ps_steer_scorer_free(ps_steer_scorer *s);
ps_scorer ps_steer_scorer_as_scorer(ps_steer_scorer *s);
/* Scores of one user: seq [len] (oldest first, len <= max_len) -> scores [n_items + 1]. */
int ps_steer_user(ps_steer_scorer *s, const int32_t *seq, int len, float *scores, ps_error *err);

/* ---- the probe ---- */

typedef struct ps_probe_options {
    int64_t cap;        /* training prefixes used for synthetic users (0 = all) */
    uint64_t seed;
    int n_top;          /* top items per latent (10) */
    /* NULL: the paper's probe (popular-only versus long-tail-only users); else a concept probe
     * (group.h): [n_items + 1] item sides, +1 the contrast set, −1 the concept (ps_item_group.side) */
    const int8_t *sides;
    int min_len;        /* synthetic users hold at least this many items (capped at the model's
                         * max length; 0 = the paper: each prefix's own length) */
    /* 1: the item-side probe (ps_item_side_table, PopSteer-I): d from what each latent's decoder
     * row does to the head (or contrast-set) items' scores against the tail (or concept) items';
     * no synthetic users (cap and min_len unused, n_synthetic 0). Fire rates and top items as usual. */
    int item_side;
    void (*progress)(void *ctx, const char *stage, int64_t done, int64_t total);
    void *progress_ctx;
    /* popsteer/dist.h (NULL: one process): synthetic and real users sharded across the ranks,
     * statistics merged in rank order and fire counts summed; every rank gets the result */
    const struct ps_dist *dist;
} ps_probe_options;

void ps_probe_options_init(ps_probe_options *o);

typedef struct ps_probe_result {
    ps_latent_table table;   /* d, means, stds, fire rates */
    int32_t *top_items;      /* [m * n_top] items whose embedding activates each latent most */
    int n_top;
    int64_t n_synthetic;     /* users per group */
} ps_probe_result;

int ps_probe_run(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, const ps_probe_options *o,
                 ps_probe_result *r, ps_error *err);
void ps_probe_result_free(ps_probe_result *r);

/* The item-side probe's table (src/steer/probe_items.c): for latent j and real item i, the score
 * change e_ij = W_dec[j] · E_i that raising the latent by 1 gives the item; the two groups are the
 * items with sides[i] = +1 (the popular role: mean_pop, std_pop) and −1 (mean_unpop, std_unpop),
 * sides NULL = ds->label (head versus tail); d is Cohen's d of SPEC §4 between them (d > 0: raising
 * the latent favours the popular role's items). fire_rate is left 0. Deterministic for a given GEMM
 * backend (rows are added in item order). On failure *t is empty. */
int ps_item_side_table(const ps_sasrec *model, const ps_sae *sae, const ps_dataset *ds, const int8_t *sides,
                       ps_latent_table *t, ps_error *err);

#endif
