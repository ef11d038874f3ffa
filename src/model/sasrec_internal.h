/* Internal layout of the SASRec parameter table, shared by sasrec.c and sasrec_ws.c. */
#ifndef POPSTEER_SASREC_INTERNAL_H
#define POPSTEER_SASREC_INTERNAL_H

#include "popsteer/sasrec.h"

/* Table indices. The table is: item embedding, position embedding, n_layers blocks of
 * SASREC_PER_LAYER tensors, then the embedding LayerNorm (last, as in RecBole's state_dict). */
enum {
    SASREC_ITEM_EMB = 0,
    SASREC_POS_EMB = 1,
    SASREC_FIRST_LAYER = 2
};

/* Within a block. Q, K, V weights are consecutive and so are their biases, which makes
 * QKV_W a [3d, d] weight and QKV_B a [3d] bias in memory. */
enum {
    L_Q_W, L_K_W, L_V_W, L_Q_B, L_K_B, L_V_B,
    L_DENSE_W, L_DENSE_B, L_ATT_LN_W, L_ATT_LN_B,
    L_FF1_W, L_FF1_B, L_FF2_W, L_FF2_B, L_FF_LN_W, L_FF_LN_B,
    SASREC_PER_LAYER
};
#define L_QKV_W L_Q_W
#define L_QKV_B L_Q_B

static inline int sasrec_layer_index(int layer, int which)
{
    return SASREC_FIRST_LAYER + layer * SASREC_PER_LAYER + which;
}

static inline int sasrec_ln_w_index(const ps_sasrec *m)
{
    return SASREC_FIRST_LAYER + m->cfg.n_layers * SASREC_PER_LAYER;
}

/* Pointer to tensor idx inside a buffer laid out like params (params, grads, ...). */
static inline float *sasrec_at(const ps_sasrec *m, float *base, int idx)
{
    return base + m->tensors[idx].offset;
}

/* ps_sasrec_forward over the first len[b] positions of each sequence only (1..max_len): the
 * positions after them are neither read nor computed. Exact for every position < len[b] (a
 * query never sees later positions), so training windows shorter than max_len skip their
 * padding. The workspace's hidden states are then stored per chunk, not as [B, L, d]: use
 * ps_sasrec_backward / ps_sasrec_loss, whose targets must lie before len[b]. */
int ps_sasrec_forward_len(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *len, int B,
                          int training, uint64_t dropout_seed, uint64_t step, ps_error *err);

/* ps_sasrec_forward_len followed by ps_sasrec_backward, fused: each chunk of sequences goes
 * forward and backward on one thread, one parallel region per call. Same results (bit for
 * bit); the workspace's activations are not kept (no ps_sasrec_ws_hidden / loss afterwards). */
int ps_sasrec_train_step(ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *len,
                         const int32_t *target, int B, uint64_t dropout_seed, uint64_t step, double loss_denom,
                         ps_sasrec_loss_stats *stats, ps_error *err);

/* Training losses of this workspace (ps_sasrec_loss, ps_sasrec_backward, ps_sasrec_train_step)
 * as a sampled softmax (nn/sampled_softmax.h) over the n negatives neg[n] with the log-Q table
 * logq [n_items + 1]; both stay the caller's and are read at every call, so the caller redraws
 * neg in place between steps. n = 0: the full softmax again. */
int ps_sasrec_ws_set_sampled(ps_sasrec_ws *ws, const int32_t *neg, const float *logq, int n, ps_error *err);

/* Dropout masks of the next passes as if sequence 0 of the batch were sequence b_base of a larger
 * one (a rank's share of a micro-batch draws the masks the single process draws). Default 0. */
void ps_sasrec_ws_set_dropout_base(ps_sasrec_ws *ws, int b_base);

#endif
