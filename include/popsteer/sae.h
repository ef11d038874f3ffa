/* TopK sparse autoencoder on recommender user vectors (SPEC §3).
 *
 *   pre = (h − b_dec) W_encᵀ + b_enc            [B,m]  pre-activations (what steering shifts)
 *   z   = TopK_k(ReLU(pre))                      kept as k (index, value) pairs per row
 *   ĥ   = Σ z_j W_dec[j] + b_dec                 [B,d]
 *   loss = FVU + aux_coef · AuxK
 *   FVU  = Σ‖ĥ − h‖² / Σ‖h − mean_batch(h)‖²
 *   AuxK = min(#dead/k_aux, 1) · Σ‖ê − e‖² / Σ‖h − mean_batch(h)‖², where ê = Σ z_aux W_dec (no
 *          b_dec), z_aux = the top min(k_aux, #dead) of ReLU(pre) among the dead latents of each row,
 *          and e = h − ĥ is a constant (no gradient flows through it).
 *
 * All parameters live in ONE flat float buffer, W_enc [m,d] | b_enc [m] | W_dec [m,d] | b_dec [d],
 * described by a size/offset table; gradients and Adam moments use the same layout.
 *
 * TopK order, everywhere: larger value first, the smaller latent index first on equal values. When a
 * row has fewer than k positive pre-activations the remaining slots hold value 0 and the smallest
 * latent indices among those with ReLU(pre) = 0 (always valid indices).
 *
 * Threads: OpenMP. Results are bitwise identical for any thread count (no float atomics; every sum
 * is taken in a fixed order), given the same OpenBLAS build. */
#ifndef POPSTEER_SAE_H
#define POPSTEER_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

struct ps_dist;

#define PS_SAE_DEFAULT_D_IN 64
#define PS_SAE_DEFAULT_SCALE 64 /* n_latents = d_in * scale */
#define PS_SAE_DEFAULT_K 32
#define PS_SAE_DEFAULT_K_AUX 128
#define PS_SAE_DEFAULT_AUX_COEF 0.5f

typedef struct ps_sae_config {
    int d_in;       /* input width (the recommender's hidden size) */
    int n_latents;  /* m = d_in * scale */
    int k;          /* active latents per input, 1..n_latents */
    int k_aux;      /* AuxK latents per input, 1..n_latents */
    float aux_coef; /* weight of AuxK in the loss, >= 0 (0 switches AuxK off) */
} ps_sae_config;

/* Defaults for the given input width and scale: k 32, k_aux 128, aux_coef 0.5 (SPEC §3). Use
 * PS_SAE_DEFAULT_D_IN / PS_SAE_DEFAULT_SCALE for the paper's 64 → 4096. n_latents saturates at
 * INT32_MAX on overflow, which validation then rejects. */
void ps_sae_config_init(ps_sae_config *c, int d_in, int scale);
/* PS_OK, or PS_ERR with a message naming the bad field, its value and the allowed range. */
int ps_sae_config_validate(const ps_sae_config *c, ps_error *err);

/* Tensors of the flat buffer, in storage order. */
enum { PS_SAE_W_ENC, PS_SAE_B_ENC, PS_SAE_W_DEC, PS_SAE_B_DEC, PS_SAE_N_TENSORS };

typedef struct ps_sae {
    ps_sae_config cfg;
    size_t size[PS_SAE_N_TENSORS];   /* elements of each tensor */
    size_t offset[PS_SAE_N_TENSORS]; /* its first element in the flat buffers */
    size_t n_params;                 /* total elements */
    float *params;                   /* W_enc | b_enc | W_dec | b_dec */
    float *grads;                    /* same layout; NULL until ps_sae_alloc_grads */
    float *adam_m, *adam_v;          /* same layout; NULL until ps_sae_alloc_adam */
    int64_t adam_t;                  /* Adam steps taken */
    int trained_epochs;              /* epochs behind the kept parameters, summed over ps_sae_train
                                        calls (0 = untrained/unknown) */
    double val_fvu;                  /* best validation FVU of the last training (NaN = unknown) */
} ps_sae;

/* Pointers to the four tensors inside a flat buffer laid out like params. */
typedef struct ps_sae_tensors {
    float *W_enc; /* [m,d] */
    float *b_enc; /* [m] */
    float *W_dec; /* [m,d] */
    float *b_dec; /* [d] */
} ps_sae_tensors;

/* "W_enc", "b_enc", "W_dec", "b_dec" (the safetensors names); "?" out of range. */
const char *ps_sae_tensor_name(int t);
/* Views of buf (sae->params, sae->grads, ...). */
ps_sae_tensors ps_sae_view(const ps_sae *sae, float *buf);

/* Validates cfg and allocates a model with zeroed parameters; NULL (err set) on failure. */
ps_sae *ps_sae_create(const ps_sae_config *cfg, ps_error *err);
/* Safe on NULL. */
void ps_sae_free(ps_sae *sae);
/* SPEC §3 initialisation: W_enc ~ U(−1/√d, 1/√d) (row-major draws from a splitmix64 stream seeded
 * with seed), b_enc = 0, W_dec = the rows of W_enc scaled to unit L2 norm, b_dec = 0. Also resets
 * the Adam state, the step counter and the training record. */
void ps_sae_init(ps_sae *sae, uint64_t seed);
/* Gradient / Adam buffers on demand (no-ops when present). */
int ps_sae_alloc_grads(ps_sae *sae, ps_error *err);
int ps_sae_alloc_adam(ps_sae *sae, ps_error *err);
void ps_sae_zero_grads(ps_sae *sae);
/* One torch.optim.Adam step (no weight decay) of params from grads over the whole flat buffer;
 * increments adam_t. Needs both buffers (PS_ERR otherwise). */
int ps_sae_adam_step(ps_sae *sae, float lr, float beta1, float beta2, float eps, ps_error *err);

/* ---------------------------------------------------------------------------------------------
 * Inference, one user or a batch at a time; a caller can change pre between the steps (steering).
 * These use no scratch memory of their own and may run concurrently on one model. */

/* h [B,d] -> pre [B,m] = (h − b_dec) W_encᵀ + b_enc. One sgemm; the bias is folded into
 * b_enc − W_enc b_dec (computed in double), so no scratch copy of h − b_dec is needed. */
void ps_sae_encode_pre(const ps_sae *sae, const float *h, int B, float *pre);
/* The encoder prepared for inference at scale (the steered scorer, the sweep): W_encᵀ for the
 * AVX-512 GEMM and the folded bias b_enc − W_enc b_dec, to which steering adds its shifts (every
 * user gets the same shift, so steering is a change of bias and costs nothing per user).
 * ps_sae_encoder_topk gives TopK_k(ReLU(h W_encᵀ + bias)) without the [B,m] pre-activations:
 * blocks of rows are encoded and selected while in cache, in parallel. Its values equal
 * ps_sae_encode_pre + ps_sae_topk up to float rounding (another GEMM), and each row's bits are the
 * same in any batch and for any thread count. It holds per-thread scratch: one encoder per
 * concurrent caller. The SAE must outlive it and not change (re-init after training). */
typedef struct ps_sae_encoder {
    const ps_sae *sae;
    float *w_t;     /* [d, m] W_encᵀ */
    float *bias;    /* [m] folded encoder bias (+ steering shifts) */
    float *scratch; /* [n_threads, block, m] */
    int n_threads;  /* omp_get_max_threads() at init: at most this many threads run */
} ps_sae_encoder;

int ps_sae_encoder_init(ps_sae_encoder *e, const ps_sae *sae, ps_error *err);
void ps_sae_encoder_free(ps_sae_encoder *e);
/* bias = the folded encoder bias again (drops any steering shifts). */
void ps_sae_encoder_reset_bias(ps_sae_encoder *e);
/* h [B,d] -> idx [B,k], val [B,k] = TopK_k(ReLU(h W_encᵀ + bias)), each row in the order of
 * ps_sae_topk. */
void ps_sae_encoder_topk(const ps_sae_encoder *e, const float *h, int B, int32_t *idx, float *val);
/* h [B,d] -> pre [B,m] = h W_encᵀ + bias, dense (the probe's statistics need every latent); rows
 * in parallel, with the same bits as the rows ps_sae_encoder_topk selects from. */
void ps_sae_encoder_pre(const ps_sae_encoder *e, const float *h, int B, float *pre);
/* pre [B,m] -> idx [B,k], val [B,k] = TopK_k(ReLU(pre)) per row, in the order above. Partial
 * selection, never a full sort: a threshold from 16-wide block maxima, then a k-heap over the few
 * values above it. */
void ps_sae_topk(const ps_sae *sae, const float *pre, int B, int32_t *idx, float *val);
/* idx [B,k], val [B,k] -> out [B,d] = Σ_s val[s] W_dec[idx[s]] + b_dec. idx must be in [0, m). */
void ps_sae_decode(const ps_sae *sae, const int32_t *idx, const float *val, int B, float *out);
/* Bytes of scratch ps_sae_reconstruct needs for B rows (pre, idx and val). */
size_t ps_sae_scratch_bytes(const ps_sae *sae, int B);
/* h [B,d] -> out [B,d] = decode(topk(encode_pre(h))). scratch: ps_sae_scratch_bytes(sae, B) bytes,
 * aligned for float (malloc'ed memory is). */
void ps_sae_reconstruct(const ps_sae *sae, const float *h, int B, float *out, void *scratch);

/* ---------------------------------------------------------------------------------------------
 * Training pieces: one batch forward (+ backward). */

typedef struct ps_sae_workspace ps_sae_workspace;

/* Buffers for batches of up to max_batch rows of this model's shape. */
ps_sae_workspace *ps_sae_workspace_new(const ps_sae *sae, int max_batch, ps_error *err);
void ps_sae_workspace_free(ps_sae_workspace *ws); /* safe on NULL */

typedef struct ps_sae_batch_loss {
    double fvu;  /* sse / var (NaN when var == 0) */
    double auxk; /* 0 without dead latents or with aux_coef == 0 */
    double loss; /* fvu + aux_coef * auxk */
    double sse;  /* Σ‖ĥ − h‖² */
    double var;  /* Σ‖h − mean_batch(h)‖² */
    int n_dead;  /* dead latents in the mask */
} ps_sae_batch_loss;

/* Loss of the batch h [B,d] (1 <= B <= max_batch) given the dead mask (dead [m], nonzero = dead;
 * NULL = none dead). If backward, ADDS d loss / d params to sae->grads (allocate and zero it first);
 * only the rows of W_enc / W_dec of latents selected in the batch (TopK and AuxK) receive gradient.
 * fire_count [m] (may be NULL) += how often each latent was in a row's TopK with a value > 0.
 * Errors: B out of range, workspace of another shape, backward without grads, or backward on a
 * batch whose variance is 0 (all rows equal: FVU undefined). */
int ps_sae_forward_backward(ps_sae *sae, ps_sae_workspace *ws, const float *h, int B,
                            const uint8_t *dead, int64_t *fire_count, int backward,
                            ps_sae_batch_loss *out, ps_error *err);

/* Data parallelism (sae_train.c under mpirun): a batch of B rows cut into parts, one per rank.
 * ps_sae_batch_variance is the whole batch's Σ‖h − mean_batch(h)‖², in double, with the same bits
 * ps_sae_forward_backward computes for it. ps_sae_forward_backward_part is ps_sae_forward_backward
 * on rows h [B,d] that are one part of a batch of variance var (> 0): the loss's terms are per-row
 * sums over 1 / var, so its sse, its fvu and auxk (this part's share of the batch's) and the
 * gradients it adds, summed over the parts, are the whole batch's up to summation order. */
double ps_sae_batch_variance(ps_sae_workspace *ws, const float *h, int B);
int ps_sae_forward_backward_part(ps_sae *sae, ps_sae_workspace *ws, const float *h, int B, double var,
                                 const uint8_t *dead, int64_t *fire_count, int backward,
                                 ps_sae_batch_loss *out, ps_error *err);

/* FVU of the dataset X [N,d] (N >= 2): Σ‖ĥ − h‖² / Σ‖h − mean(X)‖² with the mean over all N rows,
 * evaluated in batches of batch_size rows (<= 0: 4096). Fails on zero variance. */
int ps_sae_fvu(const ps_sae *sae, const float *X, int64_t N, int batch_size, double *fvu,
               ps_error *err);

/* ---------------------------------------------------------------------------------------------
 * Training loop. */

typedef struct ps_sae_train_options {
    int batch_size;  /* rows per Adam step; default 4096 (a final batch of 1 row is skipped) */
    int max_epochs;  /* default 50 */
    int patience;    /* stop after this many epochs without a better validation FVU; default 3 */
    float lr;        /* Adam, constant; default 1e-3 */
    float beta1;     /* default 0.9 */
    float beta2;     /* default 0.999 */
    float eps;       /* default 1e-8 */
    uint64_t seed;   /* shuffling (the initialisation is ps_sae_init's); default 42 */
    /* asked with ps_sae_train's ctx before every batch (NULL by default): nonzero stops training
     * with PS_ERR and the message "SAE training interrupted at epoch E, batch B"; the parameters
     * are then the best epoch's (the current ones before the first epoch ends). */
    int (*cancel)(void *ctx);
    /* data parallelism (popsteer/dist.h; NULL by default: one process). Every rank holds all of X
     * and Xval and takes its part of each batch; the gradients are summed with one allreduce per
     * Adam step, every rank takes the same step; the validation batches are split over the ranks
     * and their errors added in the one-process order, so every rank gets the one-process FVU and
     * all stop together. The result is one process's up to summation order. */
    const struct ps_dist *dist;
} ps_sae_train_options;

void ps_sae_train_options_init(ps_sae_train_options *o);

typedef struct ps_sae_epoch_info {
    int epoch;            /* 1-based */
    double train_fvu;     /* mean over the epoch's batches, weighted by rows */
    double train_auxk;    /* same for AuxK (0 in epoch 1: nothing is dead yet) */
    double dead_fraction; /* latents never in a TopK during this epoch (dead in the next) / m */
    double val_fvu;       /* ps_sae_fvu on the validation set (the train FVU when there is none) */
    double seconds;       /* wall time of the epoch, validation included */
    int is_best;          /* this epoch's parameters are the best so far */
} ps_sae_epoch_info;

typedef struct ps_sae_batch_info {
    int epoch;
    int64_t batch, n_batches; /* batch is 0-based */
    double loss, fvu, auxk;
} ps_sae_batch_info;

/* Progress hooks; either pointer may be NULL. A nonzero return from epoch stops training after that
 * epoch (the best parameters are still kept). */
typedef struct ps_sae_callbacks {
    int (*epoch)(const ps_sae_epoch_info *info, void *ctx);
    void (*batch)(const ps_sae_batch_info *info, void *ctx);
} ps_sae_callbacks;

typedef struct ps_sae_train_result {
    int epochs_run;
    int best_epoch;
    double best_val_fvu;
    int stopped_early; /* by patience or by the callback */
} ps_sae_train_result;

/* Trains sae (already initialised, or loaded to continue) on X [N,d] with Adam on batches of the
 * rows shuffled each epoch by a permutation that depends only on (seed, epoch). Dead latents for
 * AuxK are those never in a TopK during the previous epoch (none in epoch 1). After each epoch the
 * FVU on Xval [Nval,d] (Xval may be NULL with Nval 0: the train FVU is used instead) decides early
 * stopping; the best epoch's parameters are kept. Sets sae->trained_epochs and sae->val_fvu.
 * cb and res may be NULL. Inputs must be finite. */
int ps_sae_train(ps_sae *sae, const float *X, int64_t N, const float *Xval, int64_t Nval,
                 const ps_sae_train_options *o, const ps_sae_callbacks *cb, void *ctx,
                 ps_sae_train_result *res, ps_error *err);

/* ---------------------------------------------------------------------------------------------
 * Files: safetensors with tensors W_enc [m,d], b_enc [m], W_dec [m,d], b_dec [d] (F32) and
 * __metadata__ d_in, n_latents, k, k_aux, aux_coef, and (when known) trained_epochs, val_fvu. */

/* Atomic write. */
int ps_sae_save(const ps_sae *sae, const char *path, ps_error *err);
/* Reads and validates (metadata present and well-formed, shapes as the metadata says, values
 * finite); every message names the file. aux_coef defaults to 0.5 when absent. NULL on failure. */
ps_sae *ps_sae_load(const char *path, ps_error *err);

#endif
