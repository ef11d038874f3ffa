/* SASRec passes over a preallocated activation workspace: forward, cross-entropy loss,
 * backward (accumulating into model->grads) and eval-mode user vectors. */
#include "model/sasrec_internal.h"
#include "nn/nn.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define CE_BLOCK 256 /* rows of logits alive at once in the softmax cross-entropy */

/* Activations of one block, named after the forward:
 *   qkv = x Wqkv^T + b; ctx = attention(qkv); res1 = dropout(ctx Wd^T + bd) + x; ln1 = LN(res1)
 *   f1 = ln1 W1^T + b1; g = gelu(f1); res2 = dropout(g W2^T + b2) + ln1; out = LN(res2) */
typedef struct layer_acts {
    float *qkv;                 /* [BL, 3d] */
    float *probs;               /* [B, H, L, L] softmax */
    float *probs_d;             /* [B, H, L, L] after dropout (== probs when not stored apart) */
    float *ctx;                 /* [BL, d] */
    float *res1;                /* [BL, d] */
    float *ln1_mean, *ln1_rstd; /* [BL] */
    float *ln1;                 /* [BL, d] */
    float *f1;                  /* [BL, F] */
    float *g;                   /* [BL, F] (== f1 in an eval workspace: gelu in place) */
    float *res2;                /* [BL, d] */
    float *ln2_mean, *ln2_rstd; /* [BL] */
    float *out;                 /* [BL, d] */
} layer_acts;

struct ps_sasrec_ws {
    ps_sasrec_config cfg; /* of the model it was made for */
    int max_B;
    int for_training;
    size_t n_floats; /* size of mem */
    float *mem;      /* every float buffer below points into this one allocation */
    int32_t *imem;
    /* embedding stage: emb = E[seq] + P; ln0 = LN(emb); x0 = dropout(ln0) */
    float *emb, *ln0_mean, *ln0_rstd, *ln0, *x0;
    float *tmp;        /* [BL, d] dense outputs before their dropout */
    layer_acts *layer; /* n_layers (all alike in an eval workspace) */
    /* cross-entropy over the selected positions */
    int32_t *sel_row, *sel_target; /* [BL] */
    float *hsel, *dhsel;           /* [BL, d] */
    float *ce_scratch;
    /* backward scratch */
    float *g_a, *g_b, *g_c, *g_d; /* [BL, d] */
    float *g_f1, *g_f2;           /* [BL, F] */
    float *g_qkv;                 /* [BL, 3d] */
    float *g_att;                 /* [B, H, L, L] */
    /* the latest forward */
    int32_t *seq; /* [BL] */
    int B;
    int training;
    uint64_t seed, step;
    int have_forward;
};

/* ---------------------------------------------------------------------------------------------
 * Workspace layout: one pass computes the total size (base == NULL), a second hands out
 * pointers. */

typedef struct carver {
    float *base;
    size_t used;
} carver;

static float *carve(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15; /* 64-byte steps keep every buffer SIMD-aligned */
    return p;
}

static void layout(ps_sasrec_ws *ws, carver *c)
{
    const ps_sasrec_config *k = &ws->cfg;
    const size_t BL = (size_t)ws->max_B * k->max_len, d = (size_t)k->d, F = (size_t)k->d_ff;
    const size_t att = (size_t)ws->max_B * k->n_heads * k->max_len * k->max_len;
    const int train = ws->for_training;

    ws->emb = carve(c, BL * d);
    ws->ln0_mean = carve(c, BL);
    ws->ln0_rstd = carve(c, BL);
    ws->ln0 = carve(c, BL * d);
    ws->x0 = carve(c, BL * d);
    ws->tmp = carve(c, BL * d);
    /* an eval workspace shares one set of block buffers, with the outputs alternating */
    float *out_alt[2] = {NULL, NULL};
    if (!train) {
        out_alt[0] = carve(c, BL * d);
        out_alt[1] = carve(c, BL * d);
    }
    for (int l = 0; l < k->n_layers; l++) {
        layer_acts *a = &ws->layer[l];
        if (!train && l > 0) {
            *a = ws->layer[0];
            a->out = out_alt[l % 2];
            continue;
        }
        a->qkv = carve(c, BL * 3 * d);
        a->probs = carve(c, att);
        /* backward needs the probabilities before and after dropout; an eval workspace drops in
         * place (whatever the model's dropout settings are later changed to) */
        a->probs_d = train ? carve(c, att) : a->probs;
        a->ctx = carve(c, BL * d);
        a->res1 = carve(c, BL * d);
        a->ln1_mean = carve(c, BL);
        a->ln1_rstd = carve(c, BL);
        a->ln1 = carve(c, BL * d);
        a->f1 = carve(c, BL * F);
        a->g = train ? carve(c, BL * F) : a->f1;
        a->res2 = carve(c, BL * d);
        a->ln2_mean = carve(c, BL);
        a->ln2_rstd = carve(c, BL);
        a->out = train ? carve(c, BL * d) : out_alt[0];
    }
    ws->hsel = carve(c, BL * d);
    ws->ce_scratch = carve(c, ps_nn_softmax_ce_scratch_floats(CE_BLOCK, k->n_items + 1));
    if (train) {
        ws->dhsel = carve(c, BL * d);
        ws->g_a = carve(c, BL * d);
        ws->g_b = carve(c, BL * d);
        ws->g_c = carve(c, BL * d);
        ws->g_d = carve(c, BL * d);
        ws->g_f1 = carve(c, BL * F);
        ws->g_f2 = carve(c, BL * F);
        ws->g_qkv = carve(c, BL * 3 * d);
        ws->g_att = carve(c, att);
    }
}

int ps_sasrec_ws_create(ps_sasrec_ws **out, const ps_sasrec *m, int max_batch, int for_training,
                        ps_error *err)
{
    *out = NULL;
    const ps_sasrec_config *k = &m->cfg;
    if (max_batch < 1)
        return ps_fail(err, "sasrec workspace: batch size %d must be at least 1", max_batch);
    /* kernels index rows of [B*L, max(3d, d_ff)] and [B*H, L, L] with int counts */
    int widest = 3 * k->d > k->d_ff ? 3 * k->d : k->d_ff;
    if ((double)max_batch * k->max_len * widest > INT_MAX ||
        (double)max_batch * k->n_heads * k->max_len * k->max_len > INT_MAX)
        return ps_fail(err, "sasrec workspace: batch size %d is too large for max_len %d", max_batch,
                       k->max_len);
    ps_sasrec_ws *ws = ps_calloc(1, sizeof *ws, "sasrec workspace", err);
    if (!ws)
        return PS_ERR;
    ws->cfg = *k;
    ws->max_B = max_batch;
    ws->for_training = for_training ? 1 : 0;
    ws->layer = ps_calloc((size_t)k->n_layers, sizeof *ws->layer, "sasrec workspace layers", err);
    if (!ws->layer)
        goto fail;
    carver c = {NULL, 0};
    layout(ws, &c);
    ws->n_floats = c.used;
    ws->mem = ps_calloc(c.used, sizeof(float), "sasrec activations", err);
    if (!ws->mem)
        goto fail;
    c.base = ws->mem;
    c.used = 0;
    layout(ws, &c);
    const size_t BL = (size_t)max_batch * k->max_len;
    ws->imem = ps_calloc(3 * BL, sizeof(int32_t), "sasrec workspace ids", err);
    if (!ws->imem)
        goto fail;
    ws->seq = ws->imem;
    ws->sel_row = ws->imem + BL;
    ws->sel_target = ws->imem + 2 * BL;
    *out = ws;
    return PS_OK;
fail:
    ps_sasrec_ws_free(ws);
    return PS_ERR;
}

void ps_sasrec_ws_free(ps_sasrec_ws *ws)
{
    if (!ws)
        return;
    free(ws->mem);
    free(ws->imem);
    free(ws->layer);
    free(ws);
}

int ps_sasrec_ws_max_batch(const ps_sasrec_ws *ws)
{
    return ws->max_B;
}

size_t ps_sasrec_ws_bytes(const ps_sasrec_ws *ws)
{
    return ws->n_floats * sizeof(float) + 3 * (size_t)ws->max_B * ws->cfg.max_len * sizeof(int32_t);
}

const float *ps_sasrec_ws_hidden(const ps_sasrec_ws *ws)
{
    return ws->layer[ws->cfg.n_layers - 1].out;
}

static int same_shape(const ps_sasrec_config *a, const ps_sasrec_config *b)
{
    return a->n_items == b->n_items && a->d == b->d && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->d_ff == b->d_ff && a->max_len == b->max_len;
}

/* ---------------------------------------------------------------------------------------------
 * Forward */

/* Dropout call sites of one step: 0 after the embedding LayerNorm, then per block the attention
 * probabilities, the attention output and the FFN output. */
static ps_nn_dropout dropout_at(const ps_sasrec_ws *ws, int site, float p)
{
    ps_nn_dropout d;
    const uint64_t n_sites = 1 + 3 * (uint64_t)ws->cfg.n_layers;
    d.p = ws->training ? p : 0.0f;
    d.seed = ws->seed;
    d.stream = ws->step * n_sites + (uint64_t)site;
    return d;
}

/* out [n] = dropout(y) + residual */
static void dropout_add(float *out, const float *y, const float *residual, size_t n,
                        const ps_nn_dropout *d)
{
    ps_nn_dropout_forward(out, y, n, d);
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++)
        out[i] += residual[i];
}

static void layer_forward(const ps_sasrec *m, ps_sasrec_ws *ws, int l, const float *x)
{
    const ps_sasrec_config *k = &m->cfg;
    const int N = ws->B * k->max_len, d = k->d, F = k->d_ff;
    const size_t Nd = (size_t)N * d;
    layer_acts *a = &ws->layer[l];
    float *P = m->params;
#define W(which) sasrec_at(m, P, sasrec_layer_index(l, which))
    ps_nn_dropout d_att = dropout_at(ws, 1 + 3 * l, k->attn_dropout);
    ps_nn_dropout d_ao = dropout_at(ws, 2 + 3 * l, k->hidden_dropout);
    ps_nn_dropout d_ff = dropout_at(ws, 3 + 3 * l, k->hidden_dropout);

    ps_nn_linear_forward(a->qkv, x, W(L_QKV_W), W(L_QKV_B), N, d, 3 * d);
    ps_nn_attention_forward(a->ctx, a->probs, a->probs_d, a->qkv, ws->seq, ws->B, k->max_len, d,
                            k->n_heads, &d_att);
    ps_nn_linear_forward(ws->tmp, a->ctx, W(L_DENSE_W), W(L_DENSE_B), N, d, d);
    dropout_add(a->res1, ws->tmp, x, Nd, &d_ao);
    ps_nn_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, W(L_ATT_LN_W), W(L_ATT_LN_B), N,
                            d, k->ln_eps);

    ps_nn_linear_forward(a->f1, a->ln1, W(L_FF1_W), W(L_FF1_B), N, d, F);
    ps_nn_gelu_forward(a->g, a->f1, (size_t)N * F);
    ps_nn_linear_forward(ws->tmp, a->g, W(L_FF2_W), W(L_FF2_B), N, F, d);
    dropout_add(a->res2, ws->tmp, a->ln1, Nd, &d_ff);
    ps_nn_layernorm_forward(a->out, a->ln2_mean, a->ln2_rstd, a->res2, W(L_FF_LN_W), W(L_FF_LN_B), N,
                            d, k->ln_eps);
#undef W
}

static int check_ids(const int32_t *ids, size_t n, int32_t hi, const char *what, int L, ps_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] > hi)
            return ps_fail(err, "sasrec: %s[%zu][%zu] = %d is outside 0..%d", what, i / (size_t)L,
                           i % (size_t)L, (int)ids[i], (int)hi);
    return PS_OK;
}

int ps_sasrec_forward(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, int B, int training,
                      uint64_t dropout_seed, uint64_t step, ps_error *err)
{
    const ps_sasrec_config *k = &m->cfg;
    if (!same_shape(&ws->cfg, k))
        return ps_fail(err, "sasrec forward: the workspace was made for a model of another shape");
    if (B < 1 || B > ws->max_B)
        return ps_fail(err, "sasrec forward: batch of %d sequences, workspace holds 1..%d", B,
                       ws->max_B);
    const int L = k->max_len, d = k->d, N = B * L;
    ws->have_forward = 0;
    if (check_ids(seq, (size_t)N, k->n_items, "seq", L, err))
        return PS_ERR;
    memcpy(ws->seq, seq, (size_t)N * sizeof *seq);
    ws->B = B;
    ws->training = training ? 1 : 0;
    ws->seed = dropout_seed;
    ws->step = step;

    float *P = m->params;
    const int ln = sasrec_ln_w_index(m);
    ps_nn_dropout d_emb = dropout_at(ws, 0, k->hidden_dropout);
    ps_nn_embedding_forward(ws->emb, ws->seq, sasrec_at(m, P, SASREC_ITEM_EMB),
                            sasrec_at(m, P, SASREC_POS_EMB), B, L, d);
    ps_nn_layernorm_forward(ws->ln0, ws->ln0_mean, ws->ln0_rstd, ws->emb, sasrec_at(m, P, ln),
                            sasrec_at(m, P, ln + 1), N, d, k->ln_eps);
    ps_nn_dropout_forward(ws->x0, ws->ln0, (size_t)N * d, &d_emb);

    const float *x = ws->x0;
    for (int l = 0; l < k->n_layers; l++) {
        layer_forward(m, ws, l, x);
        x = ws->layer[l].out;
    }
    ws->have_forward = 1;
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Loss */

/* Gathers the positions with a target into sel_row / sel_target and their hidden rows into hsel;
 * returns their count, or -1 (with err) for an invalid target. */
static int64_t select_targets(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target,
                              ps_error *err)
{
    const int L = m->cfg.max_len, d = m->cfg.d, N = ws->B * L;
    int64_t n = 0;
    for (int i = 0; i < N; i++) {
        int32_t t = target[i];
        if (t == -1)
            continue;
        if (t < 1 || t > m->cfg.n_items) {
            ps_fail(err, "sasrec loss: target[%d][%d] = %d; expected an item id 1..%d or -1 (no loss)",
                    i / L, i % L, (int)t, m->cfg.n_items);
            return -1;
        }
        ws->sel_row[n] = i;
        ws->sel_target[n] = t;
        n++;
    }
    const float *h = ps_sasrec_ws_hidden(ws);
#pragma omp parallel for schedule(static) if (n > 1024)
    for (int64_t r = 0; r < n; r++)
        memcpy(ws->hsel + (size_t)r * d, h + (size_t)ws->sel_row[r] * d, (size_t)d * sizeof(float));
    return n;
}

static int loss_preconditions(const ps_sasrec *m, const ps_sasrec_ws *ws, const char *who,
                              ps_error *err)
{
    if (!same_shape(&ws->cfg, &m->cfg))
        return ps_fail(err, "sasrec %s: the workspace was made for a model of another shape", who);
    if (!ws->have_forward)
        return ps_fail(err, "sasrec %s: no forward pass to take the loss of", who);
    return PS_OK;
}

static void fill_stats(ps_sasrec_loss_stats *st, double sum, int64_t n)
{
    st->loss_sum = sum;
    st->n_targets = n;
    st->loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
}

int ps_sasrec_loss(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target,
                   ps_sasrec_loss_stats *stats, ps_error *err)
{
    if (loss_preconditions(m, ws, "loss", err))
        return PS_ERR;
    int64_t n = select_targets(m, ws, target, err);
    if (n < 0)
        return PS_ERR;
    const float *E = sasrec_at(m, m->params, SASREC_ITEM_EMB);
    double sum = ps_nn_softmax_ce(NULL, NULL, ws->hsel, E, ws->sel_target, (int)n, m->cfg.n_items + 1,
                                  m->cfg.d, 0.0f, CE_BLOCK, ws->ce_scratch);
    fill_stats(stats, sum, n);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Backward */

/* Gradient scratch is zeroed before every += kernel; two threads get more memory bandwidth. */
static void zero(float *p, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = 0.0f;
}

/* In: ws->g_a = dL/d(block output). Out: ws->g_a = dL/d(block input x). */
static void layer_backward(ps_sasrec *m, ps_sasrec_ws *ws, int l, const float *x)
{
    const ps_sasrec_config *k = &m->cfg;
    const int N = ws->B * k->max_len, d = k->d, F = k->d_ff;
    const size_t Nd = (size_t)N * d, NF = (size_t)N * F;
    layer_acts *a = &ws->layer[l];
    float *P = m->params, *G = m->grads;
#define W(which) sasrec_at(m, P, sasrec_layer_index(l, which))
#define DW(which) sasrec_at(m, G, sasrec_layer_index(l, which))
    ps_nn_dropout d_att = dropout_at(ws, 1 + 3 * l, k->attn_dropout);
    ps_nn_dropout d_ao = dropout_at(ws, 2 + 3 * l, k->hidden_dropout);
    ps_nn_dropout d_ff = dropout_at(ws, 3 + 3 * l, k->hidden_dropout);
    float *dout = ws->g_a, *dres = ws->g_b, *dln1 = ws->g_c, *dy = ws->g_d;

    /* out = LN(res2), res2 = dropout(f2) + ln1 */
    zero(dres, Nd);
    ps_nn_layernorm_backward(dres, DW(L_FF_LN_W), DW(L_FF_LN_B), dout, a->res2, W(L_FF_LN_W),
                             a->ln2_mean, a->ln2_rstd, N, d);
    memcpy(dln1, dres, Nd * sizeof *dln1);
    zero(dy, Nd);
    ps_nn_dropout_backward(dy, dres, Nd, &d_ff);
    /* f2 = g W2^T + b2, g = gelu(f1), f1 = ln1 W1^T + b1 */
    zero(ws->g_f1, NF);
    ps_nn_linear_backward(ws->g_f1, DW(L_FF2_W), DW(L_FF2_B), dy, a->g, W(L_FF2_W), N, F, d);
    zero(ws->g_f2, NF);
    ps_nn_gelu_backward(ws->g_f2, a->f1, ws->g_f1, NF);
    ps_nn_linear_backward(dln1, DW(L_FF1_W), DW(L_FF1_B), ws->g_f2, a->ln1, W(L_FF1_W), N, d, F);

    /* ln1 = LN(res1), res1 = dropout(ctx Wd^T + bd) + x; dout (g_a) becomes dL/dx */
    zero(dres, Nd);
    ps_nn_layernorm_backward(dres, DW(L_ATT_LN_W), DW(L_ATT_LN_B), dln1, a->res1, W(L_ATT_LN_W),
                             a->ln1_mean, a->ln1_rstd, N, d);
    float *dx = dout;
    memcpy(dx, dres, Nd * sizeof *dx);
    zero(dy, Nd);
    ps_nn_dropout_backward(dy, dres, Nd, &d_ao);
    float *dctx = ws->g_c;
    zero(dctx, Nd);
    ps_nn_linear_backward(dctx, DW(L_DENSE_W), DW(L_DENSE_B), dy, a->ctx, W(L_DENSE_W), N, d, d);
    zero(ws->g_qkv, Nd * 3);
    ps_nn_attention_backward(ws->g_qkv, ws->g_att, dctx, a->qkv, a->probs, a->probs_d, ws->B,
                             k->max_len, d, k->n_heads, &d_att);
    ps_nn_linear_backward(dx, DW(L_QKV_W), DW(L_QKV_B), ws->g_qkv, x, W(L_QKV_W), N, d, 3 * d);
#undef W
#undef DW
}

int ps_sasrec_backward(ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target, double loss_denom,
                       ps_sasrec_loss_stats *stats, ps_error *err)
{
    if (loss_preconditions(m, ws, "backward", err))
        return PS_ERR;
    if (!ws->for_training)
        return ps_fail(err, "sasrec backward: the workspace was created without training buffers");
    if (!m->grads)
        return ps_fail(err, "sasrec backward: gradient buffers are not allocated "
                            "(call ps_sasrec_alloc_training first)");
    const ps_sasrec_config *k = &m->cfg;
    const int L = k->max_len, d = k->d, N = ws->B * L;
    const size_t Nd = (size_t)N * d;
    int64_t n = select_targets(m, ws, target, err);
    if (n < 0)
        return PS_ERR;
    double denom = loss_denom > 0.0 ? loss_denom : (double)n;
    float *P = m->params, *G = m->grads;

    /* loss and dL/dh at the selected rows, scattered back to [B*L, d] */
    zero(ws->dhsel, (size_t)n * d);
    double sum = ps_nn_softmax_ce(ws->dhsel, sasrec_at(m, G, SASREC_ITEM_EMB), ws->hsel,
                                  sasrec_at(m, P, SASREC_ITEM_EMB), ws->sel_target, (int)n,
                                  k->n_items + 1, d, n > 0 ? (float)(1.0 / denom) : 0.0f, CE_BLOCK,
                                  ws->ce_scratch);
    fill_stats(stats, sum, n);
    zero(ws->g_a, Nd);
    for (int64_t r = 0; r < n; r++)
        memcpy(ws->g_a + (size_t)ws->sel_row[r] * d, ws->dhsel + (size_t)r * d, (size_t)d * sizeof(float));

    for (int l = k->n_layers - 1; l >= 0; l--)
        layer_backward(m, ws, l, l > 0 ? ws->layer[l - 1].out : ws->x0);

    /* x0 = dropout(LN(E[seq] + P)) */
    const int ln = sasrec_ln_w_index(m);
    ps_nn_dropout d_emb = dropout_at(ws, 0, k->hidden_dropout);
    zero(ws->g_b, Nd);
    ps_nn_dropout_backward(ws->g_b, ws->g_a, Nd, &d_emb);
    zero(ws->g_c, Nd);
    ps_nn_layernorm_backward(ws->g_c, sasrec_at(m, G, ln), sasrec_at(m, G, ln + 1), ws->g_b, ws->emb,
                             sasrec_at(m, P, ln), ws->ln0_mean, ws->ln0_rstd, N, d);
    ps_nn_embedding_backward(sasrec_at(m, G, SASREC_ITEM_EMB), sasrec_at(m, G, SASREC_POS_EMB), ws->g_c,
                             ws->seq, ws->B, L, d, 0);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * User vectors */

int ps_sasrec_user_vectors(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq,
                           const int32_t *len, int B, float *out, ps_error *err)
{
    const int L = m->cfg.max_len, d = m->cfg.d;
    for (int b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > L)
            return ps_fail(err, "sasrec user vectors: len[%d] = %d is outside 1..%d", b, (int)len[b], L);
    for (int b0 = 0; b0 < B; b0 += ws->max_B) {
        int nb = B - b0 < ws->max_B ? B - b0 : ws->max_B;
        if (ps_sasrec_forward(m, ws, seq + (size_t)b0 * L, nb, 0, 0, 0, err))
            return ps_fail_wrap(err, "sasrec user vectors (sequences %d..%d)", b0, b0 + nb - 1);
        const float *h = ps_sasrec_ws_hidden(ws);
        for (int b = 0; b < nb; b++) {
            size_t row = (size_t)b * L + (size_t)(len[b0 + b] - 1);
            memcpy(out + (size_t)(b0 + b) * d, h + row * d, (size_t)d * sizeof(float));
        }
    }
    return PS_OK;
}
