/* SASRec, RecBole flavour (SPEC section 2): model, forward/backward, Adam, user vectors, scores.
 *
 *   x   = dropout(LayerNorm(E[seq] + P[0..L-1]))
 *   per block: a = LayerNorm(dropout(dense(attention(x))) + x)
 *              x = LayerNorm(dropout(dense_2(gelu(dense_1(a)))) + a)
 *   attention: heads of d/n_heads, scores QK^T/sqrt(d/n_heads) + mask, mask = 0 where key
 *              position <= query position and key item != 0, else -10000; softmax; dropout.
 *   logits = x E^T over all n_items + 1 rows (pad row 0 included, no bias).
 *
 * Sequences are LEFT-ALIGNED: positions 0..len-1 hold the items in time order, the rest are 0.
 * Every batch has exactly max_len positions.
 *
 * All parameters live in ONE flat float buffer; a table names each tensor with its RecBole
 * state_dict name, shape and offset, so checkpoint code maps names to memory with
 * ps_sasrec_find. grads / adam_m / adam_v have the same layout.
 *
 * Typical training step (ws from ps_sasrec_ws_create(m, B, 1, ...)):
 *   ps_sasrec_zero_grad(m);
 *   ps_sasrec_forward(m, ws, seq, B, 1, seed, step, &err);
 *   ps_sasrec_backward(m, ws, target, 0, &stats, &err);
 *   ps_sasrec_adam_step(m, 1e-3f, &err);
 *
 * Threading: OpenMP inside (a model and a workspace are used by one caller thread at a time).
 * No float atomics; every reduction has a fixed order and large GEMMs are split into blocks that
 * depend on the shape only (ps_nn_sgemm), so with the OpenMP build of OpenBLAS that CMake links
 * the results are bitwise identical for any OMP_NUM_THREADS. (With a multi-threaded pthreads
 * OpenBLAS, GEMMs are left to OpenBLAS and reproducible only for a given thread count.) */
#ifndef POPSTEER_SASREC_H
#define POPSTEER_SASREC_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef struct ps_sasrec_config {
    int n_items;          /* real items; the embedding table has n_items + 1 rows (row 0 = pad) */
    int d;                /* hidden size (64) */
    int n_layers;         /* transformer blocks (2) */
    int n_heads;          /* attention heads (2); d % n_heads == 0 */
    int d_ff;             /* feed-forward inner size (256) */
    int max_len;          /* positions per sequence, L (50) */
    float ln_eps;         /* LayerNorm epsilon (1e-12) */
    float hidden_dropout; /* RecBole hidden_dropout_prob (0.5): embedding, attention out, FFN out */
    float attn_dropout;   /* RecBole attn_dropout_prob (0.5): attention probabilities */
} ps_sasrec_config;

/* The SPEC defaults above for a catalogue of n_items real items. */
void ps_sasrec_config_default(ps_sasrec_config *c, int n_items);
/* Positive sizes, d divisible by n_heads, dropout in [0, 1), eps > 0, sizes that fit. */
int ps_sasrec_config_validate(const ps_sasrec_config *c, ps_error *err);

#define PS_SASREC_NAME_MAX 96

typedef struct ps_sasrec_tensor {
    char name[PS_SASREC_NAME_MAX]; /* RecBole state_dict name, e.g. "item_embedding.weight" */
    int ndim;                      /* 1 or 2 */
    int64_t shape[2];              /* PyTorch shape; Linear weights are [out, in] */
    size_t offset;                 /* in floats, into params (and grads, adam_m, adam_v) */
    size_t numel;
} ps_sasrec_tensor;

typedef struct ps_sasrec {
    ps_sasrec_config cfg;
    /* Table in memory order. That is RecBole's state_dict order except that within each
     * attention block query/key/value weights come first and then their three biases (so Q, K
     * and V are one fused [3d, d] projection). Use the names, not the order. */
    ps_sasrec_tensor *tensors;
    int n_tensors;
    size_t n_params;
    float *params;  /* n_params */
    float *grads;   /* n_params, NULL until ps_sasrec_alloc_training */
    float *adam_m;  /* n_params, NULL until ps_sasrec_alloc_training */
    float *adam_v;  /* n_params, NULL until ps_sasrec_alloc_training */
    int64_t adam_t; /* Adam steps taken (bias correction uses adam_t after increment) */
} ps_sasrec;

/* Allocates the model with zeroed parameters (call ps_sasrec_init_weights or load them). */
int ps_sasrec_create(ps_sasrec **out, const ps_sasrec_config *cfg, ps_error *err);
/* Safe on NULL. */
void ps_sasrec_free(ps_sasrec *m);

/* RecBole initialisation: Linear and Embedding weights N(0, 0.02^2) (pad row included),
 * biases 0, LayerNorm weight 1 and bias 0. Deterministic for a seed (Box-Muller on a splitmix64
 * stream, tensors filled in table order). */
void ps_sasrec_init_weights(ps_sasrec *m, uint64_t seed);

/* The tensor with this RecBole name, or NULL. */
const ps_sasrec_tensor *ps_sasrec_find(const ps_sasrec *m, const char *name);
/* The item embedding table [n_items + 1][d] (item_embedding.weight, pad row 0), or NULL when the
 * model lacks it in that shape. *dim = d. The scores are h · E[i], so it is also ilad@k's
 * item space: steering and re-ranking change the user side and the lists, never this table. */
const float *ps_sasrec_item_embedding(const ps_sasrec *m, int *dim);
size_t ps_sasrec_num_params(const ps_sasrec *m);

/* Allocates (zeroed) grads, adam_m and adam_v if not there yet; adam_t is left alone. */
int ps_sasrec_alloc_training(ps_sasrec *m, ps_error *err);
/* grads = 0 (no-op when not allocated). */
void ps_sasrec_zero_grad(ps_sasrec *m);
/* One Adam step (torch.optim.Adam: betas 0.9/0.999, eps 1e-8, no weight decay) over all
 * parameters with the accumulated grads; increments adam_t. Fails if training buffers are not
 * allocated. */
int ps_sasrec_adam_step(ps_sasrec *m, float lr, ps_error *err);

/* ---------------------------------------------------------------------------------------------
 * Activation workspace: allocated once for up to max_batch sequences and reused; forward and
 * backward never allocate. With for_training = 1 it keeps every layer's activations and the
 * backward scratch: ~780 KB per sequence for the SPEC model (203 MB for B = 256). With 0 the
 * layers share one set of buffers and only forward / loss / user vectors work: ~260 KB per
 * sequence (68 MB for B = 256). Both add ~3.5 MB of softmax scratch (256 x (n_items+1)). */
typedef struct ps_sasrec_ws ps_sasrec_ws;

int ps_sasrec_ws_create(ps_sasrec_ws **out, const ps_sasrec *m, int max_batch, int for_training,
                        ps_error *err);
void ps_sasrec_ws_free(ps_sasrec_ws *ws); /* safe on NULL */
int ps_sasrec_ws_max_batch(const ps_sasrec_ws *ws);
/* Bytes held by the workspace. */
size_t ps_sasrec_ws_bytes(const ps_sasrec_ws *ws);
/* Last block's output [B, L, d] of the latest forward (valid until the next one). */
const float *ps_sasrec_ws_hidden(const ps_sasrec_ws *ws);

/* Forward pass over B <= max_batch sequences seq [B, L] (item ids in 0..n_items, 0 = pad),
 * result in ps_sasrec_ws_hidden(ws). training = 1 applies dropout; its masks are a function of
 * (dropout_seed, step, call site, element index in the batch) only, so a step can be replayed
 * exactly: pass a different step for every training forward (a running batch counter; two
 * micro-batches given the same step get the same masks). Rejects out-of-range ids and B outside
 * 1..max_batch. */
int ps_sasrec_forward(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, int B, int training,
                      uint64_t dropout_seed, uint64_t step, ps_error *err);

typedef struct ps_sasrec_loss_stats {
    double loss_sum;   /* sum over target positions of -log softmax[target] */
    int64_t n_targets; /* positions with a target */
    float loss;        /* loss_sum / n_targets (0 when there is none) */
} ps_sasrec_loss_stats;

/* Cross-entropy of the latest forward against target [B, L]: an item id 1..n_items, or -1 for
 * no loss at that position (the "prefix" layout sets only position len-1, the "window" layout
 * many). Softmax over all n_items + 1 classes, pad class included. Anything else (including 0,
 * which would ask the model to predict padding) is rejected. No gradients. */
int ps_sasrec_loss(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target,
                   ps_sasrec_loss_stats *stats, ps_error *err);

/* Loss as above AND its gradient, accumulated (+=) into m->grads (zero them with
 * ps_sasrec_zero_grad). The gradient is that of loss_sum / denom with denom = loss_denom if
 * > 0, else n_targets (the mean; pass the total target count of all micro-batches to
 * accumulate a large batch in pieces). Needs a for_training workspace whose latest forward was
 * on the sequences the targets belong to, and alloc'ed training buffers. */
int ps_sasrec_backward(ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target, double loss_denom,
                       ps_sasrec_loss_stats *stats, ps_error *err);

/* Eval-mode user vectors: the last block's output at position len[b]-1 of each sequence, no
 * dropout. Any B (processed in chunks of the workspace's max_batch); 1 <= len[b] <= max_len.
 * out [B, d]. Overwrites the workspace's activations. */
int ps_sasrec_user_vectors(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq,
                           const int32_t *len, int B, float *out, ps_error *err);

/* scores [B, n_items + 1] = h [B, d] E^T (one sgemm; column 0 is the pad item, which callers
 * mask at evaluation). */
void ps_sasrec_score(const ps_sasrec *m, const float *h, int B, float *scores);
/* The same scores with the item embedding transposed once by the caller: et [d, n_items + 1] =
 * ps_sasrec_item_embedding_t(m, et) (what ps_sasrec_score does on every call), for a server that
 * scores one user per request. */
void ps_sasrec_item_embedding_t(const ps_sasrec *m, float *et);
void ps_sasrec_score_t(const ps_sasrec *m, const float *et, const float *h, int B, float *scores);

#endif
