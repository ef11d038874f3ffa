/* SASRec passes over a preallocated activation workspace: forward, cross-entropy loss,
 * backward (accumulating into model->grads) and eval-mode user vectors.
 *
 * Execution: a batch is cut into chunks of consecutive sequences whose size depends on the
 * batch size only; one OpenMP region runs the chunks (dynamic schedule), each chunk on one
 * thread with serial kernels (ps_nn_gemm and row loops), from the embedding to the last layer
 * in the forward and from the loss back to the embedding in the backward. So a step has a
 * handful of parallel regions instead of hundreds, and threads do not wait for each other
 * between layers (what made a loaded machine slow: every barrier waited for a descheduled
 * thread). Weight gradients go to one partial buffer per chunk, summed in chunk order at the
 * end; with the row-independent GEMM every number is the same for any thread count.
 *
 * Truncation: a chunk's sequences are computed over Le = the longest effective length in the
 * chunk instead of max_len (ps_sasrec_forward_len), exact because a query never sees later
 * positions. The public ps_sasrec_forward keeps every position (its hidden states include the
 * padding). A chunk's activations are stored compactly, [nb, Le, ...], from the row of its
 * first sequence. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "model/sasrec_internal.h"
#include "nn/nn.h"
#include "nn/sampled_softmax.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CE_BLOCK 256                  /* rows of logits alive at once per thread */
#define MAX_CHUNKS 16                 /* chunks per batch (at most) */
/* User vectors run in chunks of at most this many sequences, whatever the batch: the chunk of
 * training (a 256-window micro-batch in MAX_CHUNKS chunks) and of the shapes the GEMM backends
 * are timed on (gemm_backend.c: ~800 rows). A chunk's layer then works on ~0.8 MB of activations
 * per buffer instead of 3 MB at 64 sequences (1,024 in MAX_CHUNKS chunks), which left a core's
 * cache between one product and the next. */
#define VEC_CHUNK_SEQS 16
#define PARTIAL_BUDGET (96u << 20)    /* bytes of per-chunk gradient buffers (at least 2 chunks) */
#define MAX_SLOTS 64                  /* threads with their own scratch */

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

/* Per-thread scratch. */
typedef struct slot {
    float *att;    /* attention scratch */
    float *logits; /* [CE_BLOCK, V] */
    /* the last layer of user vectors, one row per sequence: [cs_max, d] (f [cs_max, F]) */
    float *xl, *ql, *ctxl, *tmp, *res1, *ln1, *res2, *f, *mean, *rstd;
} slot;

struct ps_sasrec_ws {
    ps_sasrec_config cfg; /* of the model it was made for */
    int max_B;
    int for_training;
    size_t n_floats; /* size of mem */
    float *mem;      /* every float buffer below points into this one allocation */
    int32_t *imem;
    size_t n_ints;
    /* embedding stage: emb = E[seq] + P; x0 = dropout(LN(emb)) (in place) */
    float *emb, *ln0_mean, *ln0_rstd, *x0;
    float *tmp;        /* [BL, d] dense outputs before their dropout */
    layer_acts *layer; /* n_layers (all alike in an eval workspace) */
    /* cross-entropy over the selected positions */
    int32_t *sel_row, *sel_target; /* [BL] */
    double *row_loss;              /* [BL] */
    float *hsel, *dhsel;           /* [BL, d] */
    /* backward scratch */
    float *g_a, *g_b, *g_c, *g_d; /* [BL, d] */
    float *g_f1, *g_f2;           /* [BL, F] */
    float *g_qkv;                 /* [BL, 3d] */
    /* weights transposed for the GEMM (per layer: qkv [d,3d], dense [d,d], ff1 [d,F], ff2 [F,d])
     * and the item table transposed [d, V] for the logits */
    float *wt, *et;
    size_t wt_per_layer;
    /* per-chunk gradient buffers (training) */
    float *partial;
    int max_chunks;
    /* threads */
    slot slots[MAX_SLOTS];
    int n_slots, cs_max;
    /* the latest forward: seq in the chunks' compact layout */
    int32_t *seq; /* [BL] */
    int B, n_chunks, chunk_size;
    int *Le; /* per chunk, its positions: [max(MAX_CHUNKS, vec_chunks(max_B))] */
    int chunk_sel0[MAX_CHUNKS + 1];
    int training;
    uint64_t seed, step;
    int have_forward;
    int b_base; /* dropout masks as for sequences b_base.. of a larger batch (distributed shares) */
    /* sampled softmax (smp_n = 0: the full softmax): negatives and log-Q table owned by the
     * caller; smp_mem holds their rows e [n, d], et [d, n] and per slot logits [CE_BLOCK, n],
     * dneg [n, d], target logits and gradients [CE_BLOCK] */
    int smp_n;
    const int32_t *smp_neg;
    const float *smp_logq;
    float *smp_mem;
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
    const size_t V = (size_t)k->n_items + 1;
    const size_t att = (size_t)ws->max_B * k->n_heads * k->max_len * k->max_len;
    const int train = ws->for_training;

    ws->emb = carve(c, BL * d);
    ws->ln0_mean = carve(c, BL);
    ws->ln0_rstd = carve(c, BL);
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
        /* backward needs the probabilities before and after dropout */
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
    ws->row_loss = (double *)(void *)carve(c, 2 * BL);
    ws->wt = carve(c, ws->wt_per_layer * (size_t)k->n_layers);
    ws->et = carve(c, d * V);
    for (int t = 0; t < ws->n_slots; t++) {
        slot *s = &ws->slots[t];
        const size_t cs = (size_t)ws->cs_max;
        s->att = carve(c, ps_nn_attn_causal_scratch_floats(k->max_len, k->d, k->n_heads));
        s->logits = carve(c, (size_t)CE_BLOCK * V);
        s->xl = carve(c, cs * d);
        s->ql = carve(c, cs * d);
        s->ctxl = carve(c, cs * d);
        s->tmp = carve(c, cs * d);
        s->res1 = carve(c, cs * d);
        s->ln1 = carve(c, cs * d);
        s->res2 = carve(c, cs * d);
        s->f = carve(c, cs * F);
        s->mean = carve(c, cs);
        s->rstd = carve(c, cs);
    }
    if (train) {
        ws->dhsel = carve(c, BL * d);
        ws->g_a = carve(c, BL * d);
        ws->g_b = carve(c, BL * d);
        ws->g_c = carve(c, BL * d);
        ws->g_d = carve(c, BL * d);
        ws->g_f1 = carve(c, BL * F);
        ws->g_f2 = carve(c, BL * F);
        ws->g_qkv = carve(c, BL * 3 * d);
    }
}

/* Gradient buffers of one chunk: the whole parameter table. */
static size_t n_params_of(const ps_sasrec_config *k)
{
    const size_t d = (size_t)k->d, F = (size_t)k->d_ff;
    size_t per_layer = 4 * d * d + 4 * d + 4 * d + d * F + F + F * d + d;
    return ((size_t)k->n_items + 1) * d + (size_t)k->max_len * d + (size_t)k->n_layers * per_layer + 2 * d;
}

/* Chunks of a user-vector batch of B sequences: as many as the other passes use (MAX_CHUNKS),
 * more when that would make them longer than VEC_CHUNK_SEQS; so never larger than cs_max. */
static int vec_chunks(int B)
{
    int by_size = (B + VEC_CHUNK_SEQS - 1) / VEC_CHUNK_SEQS, fixed = B < MAX_CHUNKS ? B : MAX_CHUNKS;
    return by_size > fixed ? by_size : fixed;
}

/* Zeroed memory for the activations, in transparent huge pages where the kernel offers them
 * (madvise mode): a fresh workspace is touched in 2 MB steps instead of 4 KB page faults, and
 * the kernels' strided walks over it need far fewer TLB entries. */
static float *big_alloc(size_t bytes, ps_error *err)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        ps_fail(err, "out of memory allocating %zu bytes for sasrec activations", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
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
        (double)max_batch * k->n_heads * k->max_len * k->max_len > INT_MAX ||
        (double)CE_BLOCK * (k->n_items + 1.0) > INT_MAX)
        return ps_fail(err, "sasrec workspace: batch size %d is too large for max_len %d", max_batch,
                       k->max_len);
    ps_sasrec_ws *ws = ps_calloc(1, sizeof *ws, "sasrec workspace", err);
    if (!ws)
        return PS_ERR;
    ws->cfg = *k;
    ws->max_B = max_batch;
    ws->for_training = for_training ? 1 : 0;
    {
        int nt = omp_get_max_threads(), np = omp_get_num_procs();
        ws->n_slots = nt > np ? nt : np;
        if (ws->n_slots > MAX_SLOTS)
            ws->n_slots = MAX_SLOTS;
        if (ws->n_slots < 1)
            ws->n_slots = 1;
    }
    ws->max_chunks = MAX_CHUNKS;
    if (for_training) {
        size_t per = n_params_of(k) * sizeof(float);
        size_t fit = PARTIAL_BUDGET / (per ? per : 1);
        ws->max_chunks = fit < 2 ? 2 : (fit > MAX_CHUNKS ? MAX_CHUNKS : (int)fit);
    }
    {
        int nch = max_batch < MAX_CHUNKS ? max_batch : MAX_CHUNKS;
        ws->cs_max = (max_batch + nch - 1) / nch; /* eval chunks are never larger */
    }
    const size_t d = (size_t)k->d, F = (size_t)k->d_ff;
    ws->wt_per_layer = 3 * d * d + d * d + d * F + F * d;
    const int max_chunks_any = vec_chunks(max_batch) > MAX_CHUNKS ? vec_chunks(max_batch) : MAX_CHUNKS;
    ws->Le = ps_calloc((size_t)max_chunks_any, sizeof *ws->Le, "sasrec workspace chunks", err);
    ws->layer = ws->Le ? ps_calloc((size_t)k->n_layers, sizeof *ws->layer, "sasrec workspace layers", err) : NULL;
    if (!ws->layer)
        goto fail;
    carver c = {NULL, 0};
    layout(ws, &c);
    size_t partial_floats = for_training ? (size_t)ws->max_chunks * n_params_of(k) : 0;
    ws->n_floats = c.used + partial_floats;
    ws->mem = big_alloc(ws->n_floats * sizeof(float), err);
    if (!ws->mem)
        goto fail;
    c.base = ws->mem;
    c.used = 0;
    layout(ws, &c);
    ws->partial = for_training ? ws->mem + c.used : NULL;
    const size_t BL = (size_t)max_batch * k->max_len;
    ws->n_ints = 3 * BL;
    ws->imem = ps_calloc(ws->n_ints, sizeof(int32_t), "sasrec workspace ids", err);
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
    if (ws->mem)
        munmap(ws->mem, ws->n_floats * sizeof(float));
    free(ws->imem);
    free(ws->layer);
    free(ws->Le);
    free(ws->smp_mem);
    free(ws);
}

int ps_sasrec_ws_max_batch(const ps_sasrec_ws *ws)
{
    return ws->max_B;
}

size_t ps_sasrec_ws_bytes(const ps_sasrec_ws *ws)
{
    return ws->n_floats * sizeof(float) + ws->n_ints * sizeof(int32_t);
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

/* Threads for a region over n tasks: never more than the scratch slots. */
static int region_threads(const ps_sasrec_ws *ws, int n)
{
    int t = omp_get_max_threads();
    if (t > ws->n_slots)
        t = ws->n_slots;
    if (t > n)
        t = n;
    return t < 1 ? 1 : t;
}

/* ---------------------------------------------------------------------------------------------
 * Chunks */

typedef struct chunk {
    int b0, nb, Le; /* sequences b0..b0+nb-1, Le positions each */
    size_t r0, pb;  /* where its rows start in the [B*L] buffers, its probabilities in [B,H,L,L] */
} chunk;

static void plan_chunks(ps_sasrec_ws *ws, int B, int max_chunks)
{
    int nch = B < max_chunks ? B : max_chunks;
    int cs = (B + nch - 1) / nch;
    ws->chunk_size = cs;
    ws->n_chunks = (B + cs - 1) / cs;
}

static chunk chunk_at(const ps_sasrec_ws *ws, int c)
{
    chunk ch;
    ch.b0 = c * ws->chunk_size;
    ch.nb = ws->B - ch.b0 < ws->chunk_size ? ws->B - ch.b0 : ws->chunk_size;
    ch.Le = ws->Le[c];
    ch.r0 = (size_t)ch.b0 * ws->cfg.max_len;
    ch.pb = (size_t)ch.b0 * ws->cfg.n_heads * ws->cfg.max_len * ws->cfg.max_len;
    return ch;
}

/* The ids of a chunk's sequences (rows of seq, L apart) in the compact layout at its rows. */
static void copy_ids(ps_sasrec_ws *ws, const chunk *ch, const int32_t *seq)
{
    const size_t L = (size_t)ws->cfg.max_len;
    for (int s = 0; s < ch->nb; s++)
        memcpy(ws->seq + ch->r0 + (size_t)s * ch->Le, seq + (size_t)(ch->b0 + s) * L, (size_t)ch->Le * sizeof *seq);
}

/* Chunk lengths from per-sequence effective lengths (NULL: every position), and (copy) the ids
 * in the compact layout. A sequence that starts with padding keeps every position: its first
 * rows attend to all keys (PyTorch's fully masked rows). */
static void set_chunks(ps_sasrec_ws *ws, const int32_t *seq, const int32_t *eff_len, int copy)
{
    const int L = ws->cfg.max_len;
    for (int c = 0; c < ws->n_chunks; c++) {
        int b0 = c * ws->chunk_size, nb = ws->B - b0 < ws->chunk_size ? ws->B - b0 : ws->chunk_size;
        int Le = 1;
        for (int b = b0; b < b0 + nb; b++) {
            int e = eff_len ? eff_len[b] : L;
            if (seq[(size_t)b * L] == 0)
                e = L;
            Le = e > Le ? e : Le;
        }
        ws->Le[c] = Le;
        if (copy) {
            chunk ch = chunk_at(ws, c);
            copy_ids(ws, &ch, seq);
        }
    }
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

typedef struct layer_w {
    const float *qkv_t, *dense_t, *ff1_t, *ff2_t; /* transposed weights */
    const float *qkv_w, *dense_w, *ff1_w, *ff2_w; /* PyTorch layout [out, in] */
    const float *qkv_b, *dense_b, *ff1_b, *ff2_b;
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} layer_w;

static layer_w weights_of(const ps_sasrec *m, const ps_sasrec_ws *ws, int l)
{
    const size_t d = (size_t)m->cfg.d, F = (size_t)m->cfg.d_ff;
    const float *wt = ws->wt + ws->wt_per_layer * (size_t)l;
    float *P = m->params;
#define W(which) sasrec_at(m, P, sasrec_layer_index(l, which))
    layer_w w = {
        wt, wt + 3 * d * d, wt + 4 * d * d, wt + 4 * d * d + d * F,
        W(L_QKV_W), W(L_DENSE_W), W(L_FF1_W), W(L_FF2_W),
        W(L_QKV_B), W(L_DENSE_B), W(L_FF1_B), W(L_FF2_B),
        W(L_ATT_LN_W), W(L_ATT_LN_B), W(L_FF_LN_W), W(L_FF_LN_B),
    };
#undef W
    return w;
}

/* The transposed copies of every Linear weight (d x 3d, d x d, d x F, F x d per layer). */
static void pack_weights(const ps_sasrec *m, ps_sasrec_ws *ws)
{
    const int d = m->cfg.d, F = m->cfg.d_ff;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        layer_w w = weights_of(m, ws, l);
        ps_nn_transpose((float *)w.qkv_t, w.qkv_w, 3 * d, d);
        ps_nn_transpose((float *)w.dense_t, w.dense_w, d, d);
        ps_nn_transpose((float *)w.ff1_t, w.ff1_w, F, d);
        ps_nn_transpose((float *)w.ff2_t, w.ff2_w, d, F);
    }
}

/* y [R, OC] = x [R, IC] W^T + b with the transposed weight wt [IC, OC] */
static void linear(float *y, const float *x, const float *wt, const float *b, int R, int IC, int OC)
{
    ps_nn_gemm(R, OC, IC, x, IC, 1, wt, OC, y, OC, 1.0f, b, 0);
}

/* out = dropout(y) + residual over a chunk's rows; the mask of (sequence b, position l, c) is
 * element (b*L + l)*C + c of a [B, L, C] array, whatever the chunk's Le. */
static void dropout_add_chunk(const ps_sasrec_ws *ws, const chunk *ch, float *out, const float *y,
                              const float *residual, int C, const ps_nn_dropout *d)
{
    const size_t L = (size_t)ws->cfg.max_len, span = (size_t)ch->Le * C;
    for (int s = 0; s < ch->nb; s++) {
        size_t o = (size_t)s * span;
        ps_nn_dropout_span(out + o, y + o, residual ? residual + o : NULL, span, d,
                           (uint64_t)(ws->b_base + ch->b0 + s) * L * (uint64_t)C);
    }
}

static void embed_chunk(const ps_sasrec *m, ps_sasrec_ws *ws, const chunk *ch)
{
    const ps_sasrec_config *k = &m->cfg;
    const int d = k->d, R = ch->nb * ch->Le;
    const float *E = sasrec_at(m, m->params, SASREC_ITEM_EMB), *Pos = sasrec_at(m, m->params, SASREC_POS_EMB);
    const int ln = sasrec_ln_w_index(m);
    float *emb = ws->emb + ch->r0 * d, *x0 = ws->x0 + ch->r0 * d;
    const int32_t *ids = ws->seq + ch->r0;
    for (int r = 0; r < R; r++) {
        const float *e = E + (size_t)ids[r] * d, *p = Pos + (size_t)(r % ch->Le) * d;
        float *o = emb + (size_t)r * d;
#pragma omp simd
        for (int c = 0; c < d; c++)
            o[c] = e[c] + p[c];
    }
    ps_nn_layernorm_rows(x0, ws->ln0_mean + ch->r0, ws->ln0_rstd + ch->r0, emb, sasrec_at(m, m->params, ln),
                         sasrec_at(m, m->params, ln + 1), R, d, k->ln_eps);
    ps_nn_dropout d_emb = dropout_at(ws, 0, k->hidden_dropout);
    dropout_add_chunk(ws, ch, x0, x0, NULL, d, &d_emb);
}

static void layer_forward_chunk(const ps_sasrec *m, ps_sasrec_ws *ws, int l, const chunk *ch, const float *x_all,
                                slot *sl)
{
    const ps_sasrec_config *k = &m->cfg;
    const int d = k->d, F = k->d_ff, H = k->n_heads, L = k->max_len, Le = ch->Le, R = ch->nb * Le;
    const size_t r0 = ch->r0, pb = ch->pb;
    layer_acts *a = &ws->layer[l];
    layer_w w = weights_of(m, ws, l);
    ps_nn_dropout d_att = dropout_at(ws, 1 + 3 * l, k->attn_dropout);
    ps_nn_dropout d_ao = dropout_at(ws, 2 + 3 * l, k->hidden_dropout);
    ps_nn_dropout d_ff = dropout_at(ws, 3 + 3 * l, k->hidden_dropout);
    const float *x = x_all + r0 * d;
    float *qkv = a->qkv + r0 * 3 * d, *ctx = a->ctx + r0 * d, *tmp = ws->tmp + r0 * d;

    linear(qkv, x, w.qkv_t, w.qkv_b, R, d, 3 * d);
    for (int s = 0; s < ch->nb; s++) {
        size_t ro = (size_t)s * Le, po = pb + (size_t)s * H * Le * Le;
        ps_nn_attn_causal_forward(ctx + ro * d, d, a->probs + po, a->probs_d + po, qkv + ro * 3 * d, 3 * d,
                                  qkv + ro * 3 * d + d, 3 * d, ws->seq + r0 + ro, Le, 0, Le, d, H, &d_att,
                                  (uint64_t)(ws->b_base + ch->b0 + s) * H * L * L, L, sl->att);
    }
    linear(tmp, ctx, w.dense_t, w.dense_b, R, d, d);
    dropout_add_chunk(ws, ch, a->res1 + r0 * d, tmp, x, d, &d_ao);
    ps_nn_layernorm_rows(a->ln1 + r0 * d, a->ln1_mean + r0, a->ln1_rstd + r0, a->res1 + r0 * d, w.ln1_w, w.ln1_b,
                         R, d, k->ln_eps);
    linear(a->f1 + r0 * F, a->ln1 + r0 * d, w.ff1_t, w.ff1_b, R, d, F);
    ps_nn_gelu_span(a->g + r0 * F, a->f1 + r0 * F, (size_t)R * F);
    linear(tmp, a->g + r0 * F, w.ff2_t, w.ff2_b, R, F, d);
    dropout_add_chunk(ws, ch, a->res2 + r0 * d, tmp, a->ln1 + r0 * d, d, &d_ff);
    ps_nn_layernorm_rows(a->out + r0 * d, a->ln2_mean + r0, a->ln2_rstd + r0, a->res2 + r0 * d, w.ln2_w, w.ln2_b,
                         R, d, k->ln_eps);
}

/* Layers first..last-1 of a chunk (the embedding first when first == 0). */
static void chunk_forward(const ps_sasrec *m, ps_sasrec_ws *ws, const chunk *ch, int n_layers, slot *sl)
{
    embed_chunk(m, ws, ch);
    const float *x = ws->x0;
    for (int l = 0; l < n_layers; l++) {
        layer_forward_chunk(m, ws, l, ch, x, sl);
        x = ws->layer[l].out;
    }
}

static int check_ids(const int32_t *ids, size_t n, int32_t hi, const char *what, int L, ps_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] > hi)
            return ps_fail(err, "sasrec: %s[%zu][%zu] = %d is outside 0..%d", what, i / (size_t)L,
                           i % (size_t)L, (int)ids[i], (int)hi);
    return PS_OK;
}

static int forward_impl(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *eff_len, int B,
                        int training, uint64_t dropout_seed, uint64_t step, ps_error *err)
{
    const ps_sasrec_config *k = &m->cfg;
    if (!same_shape(&ws->cfg, k))
        return ps_fail(err, "sasrec forward: the workspace was made for a model of another shape");
    if (B < 1 || B > ws->max_B)
        return ps_fail(err, "sasrec forward: batch of %d sequences, workspace holds 1..%d", B,
                       ws->max_B);
    const int L = k->max_len, N = B * L;
    ws->have_forward = 0;
    if (check_ids(seq, (size_t)N, k->n_items, "seq", L, err))
        return PS_ERR;
    if (eff_len)
        for (int b = 0; b < B; b++)
            if (eff_len[b] < 1 || eff_len[b] > L)
                return ps_fail(err, "sasrec forward: length %d of sequence %d is outside 1..%d", (int)eff_len[b], b, L);
    ws->B = B;
    ws->training = training ? 1 : 0;
    ws->seed = dropout_seed;
    ws->step = step;
    plan_chunks(ws, B, ws->max_chunks);
    set_chunks(ws, seq, eff_len, 1);
    pack_weights(m, ws);
    const int nch = ws->n_chunks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(region_threads(ws, nch))
    for (int c = 0; c < nch; c++) {
        chunk ch = chunk_at(ws, c);
        chunk_forward(m, ws, &ch, k->n_layers, &ws->slots[omp_get_thread_num()]);
    }
    ws->have_forward = 1;
    return PS_OK;
}

int ps_sasrec_forward(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, int B, int training,
                      uint64_t dropout_seed, uint64_t step, ps_error *err)
{
    return forward_impl(m, ws, seq, NULL, B, training, dropout_seed, step, err);
}

int ps_sasrec_forward_len(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *len, int B,
                          int training, uint64_t dropout_seed, uint64_t step, ps_error *err)
{
    return forward_impl(m, ws, seq, len, B, training, dropout_seed, step, err);
}

/* ---------------------------------------------------------------------------------------------
 * Loss */

/* Gathers the positions with a target into sel_row (rows within their chunk) / sel_target, chunk by chunk
 * in batch order; returns their count, or -1 (with err) for an invalid target. */
static int64_t select_targets(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target, ps_error *err)
{
    const int L = m->cfg.max_len;
    int64_t n = 0;
    for (int c = 0; c < ws->n_chunks; c++) {
        chunk ch = chunk_at(ws, c);
        ws->chunk_sel0[c] = (int)n;
        for (int s = 0; s < ch.nb; s++) {
            const int32_t *t = target + (size_t)(ch.b0 + s) * L;
            for (int l = 0; l < L; l++) {
                if (t[l] == -1)
                    continue;
                if (t[l] < 1 || t[l] > m->cfg.n_items) {
                    ps_fail(err, "sasrec loss: target[%d][%d] = %d; expected an item id 1..%d or -1 (no loss)",
                            ch.b0 + s, l, (int)t[l], m->cfg.n_items);
                    return -1;
                }
                if (l >= ch.Le) {
                    ps_fail(err, "sasrec loss: target[%d][%d] lies past the sequence's length %d given to the forward",
                            ch.b0 + s, l, ch.Le);
                    return -1;
                }
                ws->sel_row[n] = (int32_t)((size_t)s * ch.Le + (size_t)l); /* row within the chunk */
                ws->sel_target[n] = t[l];
                n++;
            }
        }
    }
    ws->chunk_sel0[ws->n_chunks] = (int)n;
    return n;
}

static int loss_preconditions(const ps_sasrec *m, const ps_sasrec_ws *ws, const char *who, ps_error *err)
{
    if (!same_shape(&ws->cfg, &m->cfg))
        return ps_fail(err, "sasrec %s: the workspace was made for a model of another shape", who);
    if (!ws->have_forward)
        return ps_fail(err, "sasrec %s: no forward pass to take the loss of", who);
    return PS_OK;
}

/* A backward needs the training buffers of the workspace and the model's gradient buffers. */
static int training_preconditions(const ps_sasrec *m, const ps_sasrec_ws *ws, const char *who, ps_error *err)
{
    if (!ws->for_training)
        return ps_fail(err, "sasrec %s: the workspace was created without training buffers", who);
    if (!m->grads)
        return ps_fail(err, "sasrec %s: gradient buffers are not allocated (call ps_sasrec_alloc_training first)",
                       who);
    return PS_OK;
}

/* dL/dlogit scale: 1 / loss_denom (the logical batch's targets), or 1 / n when it is not given. */
static float gradient_scale(int64_t n, double loss_denom)
{
    const double denom = loss_denom > 0.0 ? loss_denom : (double)n;
    return n > 0 ? (float)(1.0 / denom) : 0.0f;
}

static void fill_stats(ps_sasrec_loss_stats *st, double sum, int64_t n)
{
    st->loss_sum = sum;
    st->n_targets = n;
    st->loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
}

static void pack_items(const ps_sasrec *m, ps_sasrec_ws *ws)
{
    ps_nn_transpose(ws->et, sasrec_at(m, m->params, SASREC_ITEM_EMB), m->cfg.n_items + 1, m->cfg.d);
}

/* ---- sampled softmax (nn/sampled_softmax.h) ---- */

int ps_sasrec_ws_set_sampled(ps_sasrec_ws *ws, const int32_t *neg, const float *logq, int n, ps_error *err)
{
    free(ws->smp_mem);
    ws->smp_mem = NULL;
    ws->smp_n = 0;
    if (n <= 0)
        return PS_OK;
    if ((double)CE_BLOCK * n > INT_MAX || (double)n * ws->cfg.d > INT_MAX)
        return ps_fail(err, "sampled softmax: %d negatives are too many", n);
    const size_t d = (size_t)ws->cfg.d, N = (size_t)n;
    const size_t per_slot = (size_t)CE_BLOCK * N + N * d + 2 * (size_t)CE_BLOCK;
    ws->smp_mem = ps_calloc(2 * N * d + (size_t)ws->n_slots * per_slot, sizeof(float), "sampled-softmax scratch", err);
    if (!ws->smp_mem)
        return PS_ERR;
    ws->smp_n = n;
    ws->smp_neg = neg;
    ws->smp_logq = logq;
    return PS_OK;
}

void ps_sasrec_ws_set_dropout_base(ps_sasrec_ws *ws, int b_base)
{
    ws->b_base = b_base;
}

typedef struct smp_slot {
    float *logits, *dneg, *tlogit, *tgrad;
} smp_slot;

static float *smp_e(const ps_sasrec_ws *ws)
{
    return ws->smp_mem;
}

static float *smp_et(const ps_sasrec_ws *ws)
{
    return ws->smp_mem + (size_t)ws->smp_n * ws->cfg.d;
}

static smp_slot smp_slot_of(const ps_sasrec_ws *ws, const slot *sl)
{
    const size_t d = (size_t)ws->cfg.d, N = (size_t)ws->smp_n;
    const size_t per_slot = (size_t)CE_BLOCK * N + N * d + 2 * (size_t)CE_BLOCK;
    float *b = ws->smp_mem + 2 * N * d + (size_t)(sl - ws->slots) * per_slot;
    smp_slot s = {b, b + (size_t)CE_BLOCK * N, b + (size_t)CE_BLOCK * N + N * d,
                  b + (size_t)CE_BLOCK * N + N * d + CE_BLOCK};
    return s;
}

/* The negatives' rows of the item table, as rows [n, d] and transposed [d, n]. */
static void pack_negatives(const ps_sasrec *m, ps_sasrec_ws *ws)
{
    const int d = m->cfg.d, n = ws->smp_n;
    const float *E = sasrec_at(m, m->params, SASREC_ITEM_EMB);
    float *e = smp_e(ws), *et = smp_et(ws);
    for (int j = 0; j < n; j++)
        memcpy(e + (size_t)j * d, E + (size_t)ws->smp_neg[j] * d, (size_t)d * sizeof *e);
    ps_nn_transpose(et, e, n, d);
}

/* chunk_ce with the sampled softmax: logits against the n negatives (one GEMM per block) and
 * the target's own logit; with dE, dh and the gradient of the negatives' and targets' rows (dE
 * must have been zeroed: only those rows are added to). */
static void chunk_sampled_ce(const ps_sasrec *m, ps_sasrec_ws *ws, int s0, int s1, float grad_scale, float *dE,
                             slot *sl)
{
    const int d = m->cfg.d, n = ws->smp_n;
    const float *E = sasrec_at(m, m->params, SASREC_ITEM_EMB);
    smp_slot ss = smp_slot_of(ws, sl);
    for (int r0 = s0; r0 < s1; r0 += CE_BLOCK) {
        const int nb = s1 - r0 < CE_BLOCK ? s1 - r0 : CE_BLOCK;
        const float *hb = ws->hsel + (size_t)r0 * d;
        const int32_t *tg = ws->sel_target + r0;
        ps_nn_gemm(nb, n, d, hb, d, 1, smp_et(ws), n, ss.logits, n, 1.0f, NULL, 0);
        for (int r = 0; r < nb; r++) {
            const float *e = E + (size_t)tg[r] * d, *h = hb + (size_t)r * d;
            float acc = 0.0f;
            for (int c = 0; c < d; c++)
                acc += h[c] * e[c];
            ss.tlogit[r] = acc;
        }
        ps_nn_sampled_ce_rows(ss.logits, nb, n, ws->smp_neg, ws->smp_logq, ss.tlogit, tg, dE != NULL, grad_scale,
                              ss.tgrad, ws->row_loss + r0);
        if (!dE)
            continue;
        float *dh = ws->dhsel + (size_t)r0 * d;
        ps_nn_gemm(nb, d, n, ss.logits, n, 1, smp_e(ws), d, dh, d, 1.0f, NULL, 0);
        ps_nn_gemm(n, d, nb, ss.logits, 1, n, hb, d, ss.dneg, d, 1.0f, NULL, r0 > s0);
        for (int r = 0; r < nb; r++) {
            const float g = ss.tgrad[r], *e = E + (size_t)tg[r] * d, *h = hb + (size_t)r * d;
            float *de = dE + (size_t)tg[r] * d, *o = dh + (size_t)r * d;
            for (int c = 0; c < d; c++) {
                o[c] += g * e[c];
                de[c] += g * h[c];
            }
        }
    }
    if (dE && s1 > s0)
        for (int j = 0; j < n; j++)
            ps_nn_add_to(dE + (size_t)ws->smp_neg[j] * d, ss.dneg + (size_t)j * d, (size_t)d);
}

/* Cross-entropy of a chunk's selected rows, in blocks of CE_BLOCK: losses into row_loss; with
 * dE != NULL also dh (dhsel rows) and dE = G^T h (the first block writes, the next add). */
static void chunk_ce(const ps_sasrec *m, ps_sasrec_ws *ws, int c, const chunk *ch, float grad_scale, float *dE,
                     slot *sl)
{
    const int d = m->cfg.d, V = m->cfg.n_items + 1;
    const int s0 = ws->chunk_sel0[c], s1 = ws->chunk_sel0[c + 1];
    const float *h = ps_sasrec_ws_hidden(ws) + ch->r0 * d, *E = sasrec_at(m, m->params, SASREC_ITEM_EMB);
    for (int r = s0; r < s1; r++)
        memcpy(ws->hsel + (size_t)r * d, h + (size_t)ws->sel_row[r] * d, (size_t)d * sizeof(float));
    if (ws->smp_n > 0) {
        chunk_sampled_ce(m, ws, s0, s1, grad_scale, dE, sl);
        return;
    }
    for (int r0 = s0; r0 < s1; r0 += CE_BLOCK) {
        const int nb = s1 - r0 < CE_BLOCK ? s1 - r0 : CE_BLOCK;
        const float *hb = ws->hsel + (size_t)r0 * d;
        ps_nn_gemm(nb, V, d, hb, d, 1, ws->et, V, sl->logits, V, 1.0f, NULL, 0);
        ps_nn_ce_rows(sl->logits, nb, V, ws->sel_target + r0, dE != NULL, grad_scale, ws->row_loss + r0);
        if (dE) {
            ps_nn_gemm(nb, d, V, sl->logits, V, 1, E, d, ws->dhsel + (size_t)r0 * d, d, 1.0f, NULL, 0);
            ps_nn_gemm(V, d, nb, sl->logits, 1, V, hb, d, dE, d, 1.0f, NULL, r0 > s0);
        }
    }
}

static double sum_losses(const ps_sasrec_ws *ws, int64_t n)
{
    double s = 0.0;
    for (int64_t r = 0; r < n; r++) /* serial, in row order: deterministic */
        s += ws->row_loss[r];
    return s;
}

int ps_sasrec_loss(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target, ps_sasrec_loss_stats *stats,
                   ps_error *err)
{
    if (loss_preconditions(m, ws, "loss", err))
        return PS_ERR;
    int64_t n = select_targets(m, ws, target, err);
    if (n < 0)
        return PS_ERR;
    pack_items(m, ws);
    if (ws->smp_n > 0)
        pack_negatives(m, ws);
    const int nch = ws->n_chunks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(region_threads(ws, nch))
    for (int c = 0; c < nch; c++) {
        chunk ch = chunk_at(ws, c);
        chunk_ce(m, ws, c, &ch, 0.0f, NULL, &ws->slots[omp_get_thread_num()]);
    }
    fill_stats(stats, sum_losses(ws, n), n);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Backward */

/* Gradient of one block over a chunk's rows; weight gradients += into G (the chunk's buffer).
 * In: g_a rows = dL/d(block output). Out: g_a rows = dL/d(block input x). */
static void layer_backward_chunk(ps_sasrec *m, ps_sasrec_ws *ws, int l, const chunk *ch, const float *x_all, float *G,
                                 slot *sl)
{
    const ps_sasrec_config *k = &m->cfg;
    const int d = k->d, F = k->d_ff, H = k->n_heads, L = k->max_len, Le = ch->Le, R = ch->nb * Le;
    const size_t r0 = ch->r0, pb = ch->pb, Rd = (size_t)R * d;
    layer_acts *a = &ws->layer[l];
    layer_w w = weights_of(m, ws, l);
#define DW(which) sasrec_at(m, G, sasrec_layer_index(l, which))
    ps_nn_dropout d_att = dropout_at(ws, 1 + 3 * l, k->attn_dropout);
    ps_nn_dropout d_ao = dropout_at(ws, 2 + 3 * l, k->hidden_dropout);
    ps_nn_dropout d_ff = dropout_at(ws, 3 + 3 * l, k->hidden_dropout);
    const float *x = x_all + r0 * d, *ln1 = a->ln1 + r0 * d, *g = a->g + r0 * F, *f1 = a->f1 + r0 * F;
    float *dout = ws->g_a + r0 * d, *dres = ws->g_b + r0 * d, *dln1 = ws->g_c + r0 * d, *dy = ws->g_d + r0 * d;
    float *dg = ws->g_f1 + r0 * F, *df1 = ws->g_f2 + r0 * F, *dqkv = ws->g_qkv + r0 * 3 * d;

    /* out = LN(res2), res2 = dropout(f2) + ln1 */
    ps_nn_layernorm_backward_rows(dres, DW(L_FF_LN_W), DW(L_FF_LN_B), dout, a->res2 + r0 * d, w.ln2_w,
                                  a->ln2_mean + r0, a->ln2_rstd + r0, R, d, 0);
    memcpy(dln1, dres, Rd * sizeof *dln1);
    dropout_add_chunk(ws, ch, dy, dres, NULL, d, &d_ff);
    /* f2 = g W2^T + b2: dg = dy W2, dW2 += dy^T g, db2 += colsum(dy) */
    ps_nn_gemm(R, F, d, dy, d, 1, w.ff2_w, F, dg, F, 1.0f, NULL, 0);
    ps_nn_gemm(d, F, R, dy, 1, d, g, F, DW(L_FF2_W), F, 1.0f, NULL, 1);
    ps_nn_colsum_rows(DW(L_FF2_B), dy, R, d, d);
    /* g = gelu(f1), f1 = ln1 W1^T + b1 */
    ps_nn_gelu_backward_span(df1, f1, dg, (size_t)R * F, 0);
    ps_nn_gemm(R, d, F, df1, F, 1, w.ff1_w, d, dln1, d, 1.0f, NULL, 1);
    ps_nn_gemm(F, d, R, df1, 1, F, ln1, d, DW(L_FF1_W), d, 1.0f, NULL, 1);
    ps_nn_colsum_rows(DW(L_FF1_B), df1, R, F, F);

    /* ln1 = LN(res1), res1 = dropout(ctx Wd^T + bd) + x; dout becomes dL/dx */
    ps_nn_layernorm_backward_rows(dres, DW(L_ATT_LN_W), DW(L_ATT_LN_B), dln1, a->res1 + r0 * d, w.ln1_w,
                                  a->ln1_mean + r0, a->ln1_rstd + r0, R, d, 0);
    float *dx = dout;
    memcpy(dx, dres, Rd * sizeof *dx);
    dropout_add_chunk(ws, ch, dy, dres, NULL, d, &d_ao);
    float *dctx = dln1; /* free again */
    ps_nn_gemm(R, d, d, dy, d, 1, w.dense_w, d, dctx, d, 1.0f, NULL, 0);
    ps_nn_gemm(d, d, R, dy, 1, d, a->ctx + r0 * d, d, DW(L_DENSE_W), d, 1.0f, NULL, 1);
    ps_nn_colsum_rows(DW(L_DENSE_B), dy, R, d, d);
    for (int s = 0; s < ch->nb; s++) {
        size_t ro = (size_t)s * Le, po = pb + (size_t)s * H * Le * Le;
        ps_nn_attn_causal_backward(dqkv + ro * 3 * d, dctx + ro * d, a->qkv + (r0 + ro) * 3 * d, a->probs + po,
                                   a->probs_d + po, ws->seq + r0 + ro, Le, d, H, &d_att,
                                   (uint64_t)(ws->b_base + ch->b0 + s) * H * L * L, L, sl->att);
    }
    ps_nn_gemm(R, d, 3 * d, dqkv, 3 * d, 1, w.qkv_w, d, dx, d, 1.0f, NULL, 1);
    ps_nn_gemm(3 * d, d, R, dqkv, 1, 3 * d, x, d, DW(L_QKV_W), d, 1.0f, NULL, 1);
    ps_nn_colsum_rows(DW(L_QKV_B), dqkv, R, 3 * d, 3 * d);
#undef DW
}

/* The whole backward of one chunk into its gradient buffer G (zeroed here). */
static void chunk_backward(ps_sasrec *m, ps_sasrec_ws *ws, int c, const chunk *chp, float grad_scale, float *G,
                           slot *sl)
{
    const ps_sasrec_config *k = &m->cfg;
    const int d = k->d;
    const chunk ch = *chp;
    const int R = ch.nb * ch.Le;
    const size_t r0 = ch.r0;
    /* the item table's gradient is written by the first block of logits, the rest zeroed */
    const size_t n_emb = ((size_t)k->n_items + 1) * d;
    memset(G + n_emb, 0, (m->n_params - n_emb) * sizeof *G);
    if (ws->chunk_sel0[c] == ws->chunk_sel0[c + 1] || ws->smp_n > 0)
        memset(G, 0, n_emb * sizeof *G);
    chunk_ce(m, ws, c, &ch, grad_scale, sasrec_at(m, G, SASREC_ITEM_EMB), sl);
    float *ga = ws->g_a + r0 * d;
    memset(ga, 0, (size_t)R * d * sizeof *ga);
    for (int r = ws->chunk_sel0[c]; r < ws->chunk_sel0[c + 1]; r++)
        memcpy(ga + (size_t)ws->sel_row[r] * d, ws->dhsel + (size_t)r * d, (size_t)d * sizeof(float));

    for (int l = k->n_layers - 1; l >= 0; l--)
        layer_backward_chunk(m, ws, l, &ch, l > 0 ? ws->layer[l - 1].out : ws->x0, G, sl);

    /* x0 = dropout(LN(E[seq] + P)) */
    const int ln = sasrec_ln_w_index(m);
    ps_nn_dropout d_emb = dropout_at(ws, 0, k->hidden_dropout);
    float *gb = ws->g_b + r0 * d, *gc = ws->g_c + r0 * d;
    dropout_add_chunk(ws, &ch, gb, ga, NULL, d, &d_emb);
    ps_nn_layernorm_backward_rows(gc, sasrec_at(m, G, ln), sasrec_at(m, G, ln + 1), gb, ws->emb + r0 * d,
                                  sasrec_at(m, m->params, ln), ws->ln0_mean + r0, ws->ln0_rstd + r0, R, d, 0);
    float *dE = sasrec_at(m, G, SASREC_ITEM_EMB), *dP = sasrec_at(m, G, SASREC_POS_EMB);
    const int32_t *ids = ws->seq + r0;
    for (int r = 0; r < R; r++) {
        const float *g = gc + (size_t)r * d;
        if (ids[r] != 0) /* padding_idx: the pad row gets no gradient from the lookup */
            ps_nn_add_to(dE + (size_t)ids[r] * d, g, (size_t)d);
        ps_nn_add_to(dP + (size_t)(r % ch.Le) * d, g, (size_t)d);
    }
}

/* Inside a parallel region, after the chunks: grads [np] += the nch per-chunk buffers part
 * [nch, np], each thread over its span of elements, every element summed in chunk order (so the
 * result does not depend on the thread count). */
static void add_chunk_grads(float *grads, const float *part, int nch, size_t np)
{
    size_t lo, hi;
    ps_nn_thread_span(np, &lo, &hi);
    for (int c = 0; c < nch; c++)
        ps_nn_add_to(grads + lo, part + (size_t)c * np + lo, hi - lo);
}

int ps_sasrec_backward(ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *target, double loss_denom,
                       ps_sasrec_loss_stats *stats, ps_error *err)
{
    if (loss_preconditions(m, ws, "backward", err) || training_preconditions(m, ws, "backward", err))
        return PS_ERR;
    int64_t n = select_targets(m, ws, target, err);
    if (n < 0)
        return PS_ERR;
    const float grad_scale = gradient_scale(n, loss_denom);
    pack_items(m, ws);
    if (ws->smp_n > 0)
        pack_negatives(m, ws);
    const int nch = ws->n_chunks;
    const size_t np = m->n_params;
    float *grads = m->grads, *part = ws->partial;
#pragma omp parallel num_threads(region_threads(ws, nch))
    {
        slot *sl = &ws->slots[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < nch; c++) {
            chunk ch = chunk_at(ws, c);
            chunk_backward(m, ws, c, &ch, grad_scale, part + (size_t)c * np, sl);
        }
        add_chunk_grads(grads, part, nch, np);
    }
    fill_stats(stats, sum_losses(ws, n), n);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Fused training step: forward and backward of a chunk run back to back on one thread (its
 * activations are still in cache for the backward, and only the chunks in flight occupy the
 * workspace), and the gradient buffers are summed after one barrier: one parallel region per
 * micro-batch. Same numbers as ps_sasrec_forward_len + ps_sasrec_backward. */

int ps_sasrec_train_step(ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *len,
                         const int32_t *target, int B, uint64_t dropout_seed, uint64_t step, double loss_denom,
                         ps_sasrec_loss_stats *stats, ps_error *err)
{
    const ps_sasrec_config *k = &m->cfg;
    const int L = k->max_len;
    if (!same_shape(&ws->cfg, k))
        return ps_fail(err, "sasrec train step: the workspace was made for a model of another shape");
    if (training_preconditions(m, ws, "train step", err))
        return PS_ERR;
    if (B < 1 || B > ws->max_B)
        return ps_fail(err, "sasrec train step: batch of %d sequences, workspace holds 1..%d", B, ws->max_B);
    ws->have_forward = 0;
    if (check_ids(seq, (size_t)B * L, k->n_items, "seq", L, err))
        return PS_ERR;
    for (int b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > L)
            return ps_fail(err, "sasrec train step: length %d of sequence %d is outside 1..%d", (int)len[b], b, L);
    ws->B = B;
    ws->training = 1;
    ws->seed = dropout_seed;
    ws->step = step;
    plan_chunks(ws, B, ws->max_chunks);
    set_chunks(ws, seq, len, 0);
    int64_t n = select_targets(m, ws, target, err);
    if (n < 0)
        return PS_ERR;
    const float grad_scale = gradient_scale(n, loss_denom);
    pack_weights(m, ws);
    if (ws->smp_n > 0)
        pack_negatives(m, ws); /* the full table's transpose is not needed */
    else
        pack_items(m, ws);
    const int nch = ws->n_chunks;
    const size_t np = m->n_params;
    float *grads = m->grads, *part = ws->partial;
    /* chunks in flight live in their thread's rows of the buffers (fewer pages touched) */
    const int by_slot = ws->n_slots * ws->chunk_size <= ws->max_B;
#pragma omp parallel num_threads(region_threads(ws, nch))
    {
        const int t = omp_get_thread_num();
        slot *sl = &ws->slots[t];
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < nch; c++) {
            chunk ch = chunk_at(ws, c);
            if (by_slot) {
                ch.r0 = (size_t)t * ws->chunk_size * L;
                ch.pb = (size_t)t * ws->chunk_size * k->n_heads * L * L;
            }
            copy_ids(ws, &ch, seq);
            chunk_forward(m, ws, &ch, k->n_layers, sl);
            chunk_backward(m, ws, c, &ch, grad_scale, part + (size_t)c * np, sl);
        }
        add_chunk_grads(grads, part, nch, np);
    }
    fill_stats(stats, sum_losses(ws, n), n);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * User vectors: per chunk, every layer but the last over the chunk's positions, then the last
 * layer's keys and values for every position and everything else for the last position only.
 * With the row-independent GEMM and row-wise kernels, the result has the same bits as row
 * len-1 of a full forward. Sequences are sorted by length so that a chunk's Le fits them all. */

static void last_layer_rows(const ps_sasrec *m, ps_sasrec_ws *ws, const chunk *ch, const int32_t *len,
                            float *const *out_rows, slot *sl)
{
    const ps_sasrec_config *k = &m->cfg;
    const int d = k->d, F = k->d_ff, H = k->n_heads, L = k->max_len, Le = ch->Le, R = ch->nb * Le, nb = ch->nb;
    const int l = k->n_layers - 1;
    const size_t r0 = ch->r0, pb = ch->pb;
    layer_acts *a = &ws->layer[l];
    layer_w w = weights_of(m, ws, l);
    const float *x = (l > 0 ? ws->layer[l - 1].out : ws->x0) + r0 * d;
    float *qkv = a->qkv + r0 * 3 * d;
    /* keys and values of every position: columns d..3d of the fused projection */
    ps_nn_gemm(R, 2 * d, d, x, d, 1, w.qkv_t + d, 3 * d, qkv + d, 3 * d, 1.0f, w.qkv_b + d, 0);
    for (int s = 0; s < nb; s++)
        memcpy(sl->xl + (size_t)s * d, x + ((size_t)s * Le + (size_t)(len[s] - 1)) * d, (size_t)d * sizeof(float));
    ps_nn_gemm(nb, d, d, sl->xl, d, 1, w.qkv_t, 3 * d, sl->ql, d, 1.0f, w.qkv_b, 0);
    for (int s = 0; s < nb; s++) {
        size_t ro = (size_t)s * Le, po = pb + (size_t)s * H * Le * Le;
        ps_nn_attn_causal_forward(sl->ctxl + (size_t)s * d, d, a->probs + po, NULL, sl->ql + (size_t)s * d, d,
                                  qkv + ro * 3 * d + d, 3 * d, ws->seq + r0 + ro, Le, len[s] - 1, len[s], d, H, NULL,
                                  0, L, sl->att);
    }
    linear(sl->tmp, sl->ctxl, w.dense_t, w.dense_b, nb, d, d);
    ps_nn_dropout_span(sl->res1, sl->tmp, sl->xl, (size_t)nb * d, NULL, 0);
    ps_nn_layernorm_rows(sl->ln1, sl->mean, sl->rstd, sl->res1, w.ln1_w, w.ln1_b, nb, d, k->ln_eps);
    linear(sl->f, sl->ln1, w.ff1_t, w.ff1_b, nb, d, F);
    ps_nn_gelu_span(sl->f, sl->f, (size_t)nb * F);
    linear(sl->tmp, sl->f, w.ff2_t, w.ff2_b, nb, F, d);
    ps_nn_dropout_span(sl->res2, sl->tmp, sl->ln1, (size_t)nb * d, NULL, 0);
    ps_nn_layernorm_rows(sl->res1, sl->mean, sl->rstd, sl->res2, w.ln2_w, w.ln2_b, nb, d, k->ln_eps);
    for (int s = 0; s < nb; s++)
        memcpy(out_rows[s], sl->res1 + (size_t)s * d, (size_t)d * sizeof(float));
}

int ps_sasrec_user_vectors(const ps_sasrec *m, ps_sasrec_ws *ws, const int32_t *seq, const int32_t *len, int B,
                           float *out, ps_error *err)
{
    const ps_sasrec_config *k = &m->cfg;
    const int L = k->max_len, d = k->d;
    if (!same_shape(&ws->cfg, k))
        return ps_fail(err, "sasrec user vectors: the workspace was made for a model of another shape");
    for (int b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > L)
            return ps_fail(err, "sasrec user vectors: len[%d] = %d is outside 1..%d", b, (int)len[b], L);
    if (check_ids(seq, (size_t)B * L, k->n_items, "seq", L, err))
        return PS_ERR;
    const int maxB = ws->max_B;
    int32_t *order = malloc((size_t)maxB * sizeof *order), *slen = malloc((size_t)maxB * sizeof *slen);
    int32_t *sseq = malloc((size_t)maxB * L * sizeof *sseq);
    float **rows = malloc((size_t)maxB * sizeof *rows);
    if (!order || !slen || !sseq || !rows) {
        free(order), free(slen), free(sseq), free(rows);
        return ps_fail(err, "sasrec user vectors: out of memory");
    }
    pack_weights(m, ws);
    ws->have_forward = 0;
    ws->training = 0;
    ws->seed = ws->step = 0;
    for (int b0 = 0; b0 < B; b0 += maxB) {
        const int nb = B - b0 < maxB ? B - b0 : maxB;
        /* counting sort by length, longest first, stable */
        int count[4097] = {0};
        int *cnt = L <= 4096 ? count : NULL;
        if (cnt) {
            for (int b = 0; b < nb; b++)
                cnt[L - len[b0 + b]]++;
            for (int v = 0, acc = 0; v <= L; v++) {
                int t = cnt[v];
                cnt[v] = acc;
                acc += t;
            }
            for (int b = 0; b < nb; b++)
                order[cnt[L - len[b0 + b]]++] = b0 + b;
        } else {
            for (int b = 0; b < nb; b++)
                order[b] = b0 + b;
        }
        for (int i = 0; i < nb; i++) {
            memcpy(sseq + (size_t)i * L, seq + (size_t)order[i] * L, (size_t)L * sizeof *sseq);
            slen[i] = len[order[i]];
            rows[i] = out + (size_t)order[i] * d;
        }
        ws->B = nb;
        plan_chunks(ws, nb, vec_chunks(nb));
        set_chunks(ws, sseq, slen, 0);
        const int nch = ws->n_chunks;
        /* each thread keeps its chunks in its own rows of the buffers, so only those pages are
         * ever touched (a fresh workspace costs page faults, not just a calloc) */
        const int by_slot = ws->n_slots * ws->chunk_size <= ws->max_B;
#pragma omp parallel for schedule(dynamic, 1) num_threads(region_threads(ws, nch))
        for (int c = 0; c < nch; c++) {
            chunk ch = chunk_at(ws, c);
            const int t = omp_get_thread_num();
            slot *sl = &ws->slots[t];
            if (by_slot) {
                ch.r0 = (size_t)t * ws->chunk_size * L;
                ch.pb = (size_t)t * ws->chunk_size * k->n_heads * L * L;
            }
            copy_ids(ws, &ch, sseq);
            chunk_forward(m, ws, &ch, k->n_layers - 1, sl);
            last_layer_rows(m, ws, &ch, slen + ch.b0, rows + ch.b0, sl);
        }
    }
    free(order), free(slen), free(sseq), free(rows);
    return PS_OK;
}
