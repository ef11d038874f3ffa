/* Flat entry points for foreign-function interfaces (the Python package in python/, over ctypes).
 *
 * Everything here is a thin adapter over the public headers: opaque pointers, scalars and flat
 * arrays only (no struct passed or returned by value, no struct layout a binding has to mirror),
 * every failure PS_ERR (or NULL) with the message in a caller-owned ps_error (a 1024-byte buffer).
 * Strings returned as char ** are malloc'ed: release them with psffi_free. Nothing here prints,
 * exits or keeps global state; the computations are the library's own (ps_evaluate +
 * ps_metrics_to_json is `eval --json`, ps_dataset_report_json is `data stats --json`, the
 * scorers are `eval`'s and `recommend`'s).
 *
 * Arrays: sequences are seq [B, L] int32, left-aligned and 0-padded, L = the model's max_len, with
 * len [B] (1..L); vectors and scores are row-major float32. Lengths and ids are checked here
 * (item ids 0..n_items, 1 <= len <= L) so that a binding's mistakes are errors, not crashes.
 *
 * Progress and cancellation: a psffi_progress callback gets (stage, epoch, done, total, value)
 * after every training batch (stage "batch", value = the batch loss) and epoch (stage "epoch",
 * value = validation NDCG@10 for SASRec, validation FVU for the SAE); a nonzero return stops the
 * training before its next batch (ps_train_options.cancel / ps_sae_train_options.cancel), and the
 * call fails with "... interrupted ...". */
#ifndef POPSTEER_FFI_H
#define POPSTEER_FFI_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/error.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"

/* Bumped whenever a signature below changes; bindings check it at load time. */
#define PSFFI_ABI_VERSION 1
int psffi_abi_version(void);

typedef int (*psffi_progress)(void *ctx, const char *stage, int epoch, int64_t done, int64_t total, double value);

void psffi_free(void *p);
/* OpenMP and OpenBLAS threads for the calling thread's later calls (n >= 1); returns the current
 * maximum (n <= 0 only asks). */
int psffi_threads(int n);
/* 1 when every GEMM shape class runs on popsteer's own kernels, so a user's vector is the same bits
 * in any batch; 0 when a library backend was chosen (then equal to float rounding). */
int psffi_gemm_rows_exact(void);

/* ---- generated data (synth.h) ---- */
int psffi_synth(const char *path, int32_t n_users, int32_t n_items, int64_t n_interactions, uint64_t seed,
                ps_error *err);

/* ---- datasets (dataset.h) ---- */

/* format: NULL or a ps_format_parse name; kcore 0 = off; rating_threshold used when
 * has_rating_threshold; max_len, head_share, tail_share <= 0 = the defaults; the *_col may be
 * NULL. Returns NULL on failure. */
ps_dataset *psffi_dataset_load(const char *path, const char *format, int kcore, int has_rating_threshold,
                               double rating_threshold, int max_len, double head_share, double tail_share,
                               const char *user_col, const char *item_col, const char *time_col,
                               const char *rating_col, ps_error *err);
void psffi_dataset_free(ps_dataset *ds); /* safe on NULL */

enum {
    PSFFI_DS_N_USERS, PSFFI_DS_N_ITEMS, PSFFI_DS_N_INTER, PSFFI_DS_MAX_LEN, PSFFI_DS_N_TRAIN,
    PSFFI_DS_N_HEAD, PSFFI_DS_N_MID, PSFFI_DS_N_TAIL, PSFFI_DS_N_SIZES
};
/* The sizes above, in that order, into out [PSFFI_DS_N_SIZES]. */
void psffi_dataset_sizes(const ps_dataset *ds, int64_t *out);

enum {
    PSFFI_DS_SEQ,         /* int32 [n_inter] */
    PSFFI_DS_USER_OFF,    /* int64 [n_users + 2] */
    PSFFI_DS_LABEL,       /* int8 [n_items + 1] */
    PSFFI_DS_TRAIN_COUNT, /* int64 [n_items + 1] */
    PSFFI_DS_TRAIN,       /* int32 [n_train, 2]: (user, pos) */
    PSFFI_DS_VALID,       /* int32 [n_users, 2] */
    PSFFI_DS_TEST         /* int32 [n_users, 2] */
};
/* The dataset's own memory (valid until psffi_dataset_free), or NULL for an unknown array. */
const void *psffi_dataset_array(const ps_dataset *ds, int which);
/* Raw tokens: user 1..n_users, item 0..n_items (0 = "[PAD]"); NULL out of range. */
const char *psffi_dataset_user_token(const ps_dataset *ds, int64_t u);
const char *psffi_dataset_item_token(const ps_dataset *ds, int64_t i);
/* The prefixes of n samples (user, pos) as left-aligned rows seq [n, L] and len [n]; checks the
 * samples against the dataset. */
int psffi_dataset_prefixes(const ps_dataset *ds, const int32_t *samples, int64_t n, int L, int32_t *seq,
                           int32_t *len, ps_error *err);
/* The `data stats --json` object as text. */
int psffi_dataset_stats_json(const ps_dataset *ds, char **json, ps_error *err);

/* ---- SASRec (sasrec.h, checkpoint.h, train.h) ---- */

ps_sasrec *psffi_sasrec_load(const char *path, ps_error *err);
int psffi_sasrec_save(const ps_sasrec *m, const char *path, ps_error *err);
/* A fresh model for the dataset (item count and max_len from it), RecBole initialisation from
 * seed; d, n_layers, n_heads, d_ff <= 0 and dropouts < 0 take the SPEC defaults. */
ps_sasrec *psffi_sasrec_new(const ps_dataset *ds, int d, int n_layers, int n_heads, int d_ff, double hidden_dropout,
                            double attn_dropout, uint64_t seed, ps_error *err);
enum { PSFFI_CFG_N_ITEMS, PSFFI_CFG_D, PSFFI_CFG_N_LAYERS, PSFFI_CFG_N_HEADS, PSFFI_CFG_D_FF, PSFFI_CFG_MAX_LEN,
       PSFFI_CFG_N };
void psffi_sasrec_config(const ps_sasrec *m, int64_t *out /* [PSFFI_CFG_N] */, double *dropout /* [2] */);
/* item_embedding.weight [n_items + 1, d] (the model's memory). */
const float *psffi_sasrec_item_embedding(const ps_sasrec *m);
/* ps_sasrec_check_dataset with the label "model". */
int psffi_sasrec_check_dataset(const ps_sasrec *m, const ps_dataset *ds, ps_error *err);
/* ps_sasrec_train (window layout unless prefix_layout) from the model's current weights when
 * keep_weights, else from a fresh init by seed; options <= 0 take ps_train_options_init's values.
 * result [4]: epochs, best epoch, best validation NDCG@10, seconds. */
int psffi_sasrec_train(ps_sasrec *m, const ps_dataset *ds, int max_epochs, int min_epochs, int patience, double lr,
                       int batch_targets, int micro_batch, int prefix_layout, uint64_t seed, int keep_weights,
                       psffi_progress progress, void *ctx, double *result, ps_error *err);
/* Eval-mode user vectors out [B, d] of seq [B, L] / len [B]. */
int psffi_sasrec_user_vectors(const ps_sasrec *m, const int32_t *seq, const int32_t *len, int64_t B, float *out,
                              ps_error *err);

/* ---- the sparse autoencoder (sae.h) ---- */

ps_sae *psffi_sae_load(const char *path, ps_error *err);
int psffi_sae_save(const ps_sae *sae, const char *path, ps_error *err);
void psffi_sae_free(ps_sae *sae);
/* A fresh SAE trained on the model's training-prefix vectors, early stopping on the validation
 * prefixes (ps_sae_train_on_model, as `sae train` and `run`); k, scale, k_aux, max_epochs,
 * patience, batch <= 0 and lr <= 0 take the defaults. result [3]: epochs run, best epoch, best
 * validation FVU. */
ps_sae *psffi_sae_train(const ps_sasrec *m, const ps_dataset *ds, int k, int scale, int k_aux, int max_epochs,
                        int patience, double lr, int batch, uint64_t seed, psffi_progress progress, void *ctx,
                        double *result, ps_error *err);
enum { PSFFI_SAE_D_IN, PSFFI_SAE_N_LATENTS, PSFFI_SAE_K, PSFFI_SAE_K_AUX, PSFFI_SAE_N };
void psffi_sae_config(const ps_sae *sae, int64_t *out /* [PSFFI_SAE_N] */);
/* W_enc [m, d], b_enc [m], W_dec [m, d], b_dec [d] (PS_SAE_W_ENC...): the SAE's memory. */
const float *psffi_sae_tensor(const ps_sae *sae, int which);
/* h [B, d] -> z [B, m] dense: TopK_k(ReLU(pre)) scattered, zeros elsewhere. */
int psffi_sae_encode(const ps_sae *sae, const float *h, int64_t B, float *z, ps_error *err);
/* z [B, m] dense (at most k nonzero latents per row, as encode gives) -> out [B, d] = ps_sae_decode. */
int psffi_sae_decode(const ps_sae *sae, const float *z, int64_t B, float *out, ps_error *err);

/* ---- the probe and its table (popsteer.h, probe.h) ---- */

/* ps_probe_run; every output array has m = the SAE's latents entries (top [m, n_top]).
 * n_top <= 0: 10. n_synthetic: users per group. */
int psffi_probe(const ps_sasrec *m, const ps_sae *sae, const ps_dataset *ds, int64_t cap, uint64_t seed, int n_top,
                double *d, double *mean_pop, double *std_pop, double *mean_unpop, double *std_unpop,
                double *fire_rate, int32_t *top, int64_t *n_synthetic, ps_error *err);
/* ps_latents_csv_write of the table's columns (each [m]); top [m, n_top] may be NULL, else ds
 * names its items. */
int psffi_latents_write(const char *path, int m, const double *d, const double *mean_pop, const double *std_pop,
                        const double *mean_unpop, const double *std_unpop, const double *fire_rate,
                        const int32_t *top, int n_top, const ps_dataset *ds, ps_error *err);
/* ps_latents_csv_read into the six columns (each [m]): call with cols NULL to learn m (expected_m
 * <= 0 accepts any), then with six arrays of m. */
int psffi_latents_read(const char *path, int expected_m, int *m, double *const *cols, ps_error *err);

/* ---- scorers: plain SASRec, SAE-reconstructed, or steered (evaluate.h, steer.h) ---- */

typedef struct psffi_scorer psffi_scorer;

/* sae NULL: plain SASRec. Otherwise d, sd_pop, sd_unpop NULL: the SAE-reconstructed model;
 * given (each [m], the probe's table): the paper's steering plan with n_steer latents (<= 0: all)
 * and strength alpha. The model and SAE are borrowed and must outlive the scorer. */
psffi_scorer *psffi_scorer_new(const ps_sasrec *m, const ps_sae *sae, const double *d, const double *sd_pop,
                               const double *sd_unpop, int n_steer, double alpha, int max_batch, ps_error *err);
void psffi_scorer_free(psffi_scorer *s);
/* The plan's latents (largest |d| first), weights and shifts, each [n]: call with NULLs to learn n
 * (0 without a plan). */
int psffi_scorer_plan(const psffi_scorer *s, int *n, int32_t *latent, double *weight, double *shift);
/* scores [B, n_items + 1] (column 0 = pad) of seq [B, L] / len [B], max_batch users at a time. */
int psffi_scorer_scores(psffi_scorer *s, const int32_t *seq, const int32_t *len, int64_t B, float *scores,
                        ps_error *err);
/* ps_evaluate of the scorer on a split (0 valid, 1 test) with `eval`'s options (ILAD over the
 * model's item embeddings): the `eval --json` object as text. */
int psffi_evaluate(psffi_scorer *s, const ps_dataset *ds, int split, int k, int mask_seen, char **json,
                   ps_error *err);

/* ps_topk of B rows scores [B, n_items + 1] -> out [B, k]; exclude [B, n_items + 1] or NULL. */
void psffi_topk(const float *scores, int64_t B, int32_t n_items, int k, const uint8_t *exclude, int32_t *out);

/* ---- checkpoints from elsewhere (safetensors.h) ---- */

/* Writes n F32 tensors (names[i], ndims[i] <= 8 dims in shapes[8 i ..], data[i]) and n_meta
 * __metadata__ pairs to path, atomically. */
int psffi_write_tensors(const char *path, int n, const char *const *names, const int *ndims, const int64_t *shapes,
                        const float *const *data, int n_meta, const char *const *keys, const char *const *values,
                        ps_error *err);

#endif
