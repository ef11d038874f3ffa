/* SASRec parameters: configuration, the flat parameter buffer and its name table, RecBole
 * initialisation, Adam and scoring. The passes live in sasrec_ws.c. */
#include "model/sasrec_internal.h"
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds that keep every index product far from int/size_t overflow. */
#define MAX_ITEMS 100000000
#define MAX_DIM 8192
#define MAX_LEN 4096
#define MAX_LAYERS 64

void ps_sasrec_config_default(ps_sasrec_config *c, int n_items)
{
    c->n_items = n_items;
    c->d = 64;
    c->n_layers = 2;
    c->n_heads = 2;
    c->d_ff = 256;
    c->max_len = 50;
    c->ln_eps = 1e-12f;
    c->hidden_dropout = 0.5f;
    c->attn_dropout = 0.5f;
}

static int check_range(const char *what, int v, int lo, int hi, ps_error *err)
{
    if (v < lo || v > hi)
        return ps_fail(err, "sasrec config: %s = %d, must be in %d..%d", what, v, lo, hi);
    return PS_OK;
}

static int check_prob(const char *what, float p, ps_error *err)
{
    if (!(p >= 0.0f && p < 1.0f))
        return ps_fail(err, "sasrec config: %s = %g, must be in [0, 1)", what, (double)p);
    return PS_OK;
}

int ps_sasrec_config_validate(const ps_sasrec_config *c, ps_error *err)
{
    if (check_range("n_items", c->n_items, 1, MAX_ITEMS, err) ||
        check_range("hidden size d", c->d, 1, MAX_DIM, err) ||
        check_range("n_layers", c->n_layers, 1, MAX_LAYERS, err) ||
        check_range("n_heads", c->n_heads, 1, MAX_DIM, err) ||
        check_range("d_ff (inner size)", c->d_ff, 1, 8 * MAX_DIM, err) ||
        check_range("max_len", c->max_len, 1, MAX_LEN, err) ||
        check_prob("hidden_dropout", c->hidden_dropout, err) ||
        check_prob("attn_dropout", c->attn_dropout, err))
        return PS_ERR;
    if (c->d % c->n_heads != 0)
        return ps_fail(err, "sasrec config: hidden size d = %d is not divisible by n_heads = %d", c->d,
                       c->n_heads);
    if (!(c->ln_eps > 0.0f) || !isfinite(c->ln_eps))
        return ps_fail(err, "sasrec config: ln_eps = %g, must be a positive number", (double)c->ln_eps);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The name table */

static void add_tensor(ps_sasrec *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    ps_sasrec_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset = m->n_params;
    m->n_params += t->numel;
}

static void add_layer(ps_sasrec *m, int l)
{
    const int64_t d = m->cfg.d, f = m->cfg.d_ff;
    char name[PS_SASREC_NAME_MAX];
    static const char *const qkv[3] = {"query", "key", "value"};
#define LNAME(fmt, ...) (snprintf(name, sizeof name, "trm_encoder.layer.%d." fmt, l, __VA_ARGS__), name)
    for (int i = 0; i < 3; i++)
        add_tensor(m, LNAME("multi_head_attention.%s.weight", qkv[i]), 2, d, d);
    for (int i = 0; i < 3; i++)
        add_tensor(m, LNAME("multi_head_attention.%s.bias", qkv[i]), 1, d, 0);
    add_tensor(m, LNAME("multi_head_attention.%s.weight", "dense"), 2, d, d);
    add_tensor(m, LNAME("multi_head_attention.%s.bias", "dense"), 1, d, 0);
    add_tensor(m, LNAME("multi_head_attention.%s.weight", "LayerNorm"), 1, d, 0);
    add_tensor(m, LNAME("multi_head_attention.%s.bias", "LayerNorm"), 1, d, 0);
    add_tensor(m, LNAME("feed_forward.%s.weight", "dense_1"), 2, f, d);
    add_tensor(m, LNAME("feed_forward.%s.bias", "dense_1"), 1, f, 0);
    add_tensor(m, LNAME("feed_forward.%s.weight", "dense_2"), 2, d, f);
    add_tensor(m, LNAME("feed_forward.%s.bias", "dense_2"), 1, d, 0);
    add_tensor(m, LNAME("feed_forward.%s.weight", "LayerNorm"), 1, d, 0);
    add_tensor(m, LNAME("feed_forward.%s.bias", "LayerNorm"), 1, d, 0);
#undef LNAME
}

static void build_table(ps_sasrec *m)
{
    const ps_sasrec_config *c = &m->cfg;
    m->n_tensors = 0;
    m->n_params = 0;
    add_tensor(m, "item_embedding.weight", 2, (int64_t)c->n_items + 1, c->d);
    add_tensor(m, "position_embedding.weight", 2, c->max_len, c->d);
    for (int l = 0; l < c->n_layers; l++)
        add_layer(m, l);
    add_tensor(m, "LayerNorm.weight", 1, c->d, 0);
    add_tensor(m, "LayerNorm.bias", 1, c->d, 0);
}

int ps_sasrec_create(ps_sasrec **out, const ps_sasrec_config *cfg, ps_error *err)
{
    *out = NULL;
    if (ps_sasrec_config_validate(cfg, err))
        return PS_ERR;
    ps_sasrec *m = ps_calloc(1, sizeof *m, "sasrec model", err);
    if (!m)
        return PS_ERR;
    m->cfg = *cfg;
    int n = SASREC_FIRST_LAYER + cfg->n_layers * SASREC_PER_LAYER + 2;
    m->tensors = ps_calloc((size_t)n, sizeof *m->tensors, "sasrec tensor table", err);
    if (!m->tensors)
        goto fail;
    build_table(m);
    m->params = ps_calloc(m->n_params, sizeof(float), "sasrec parameters", err);
    if (!m->params)
        goto fail;
    *out = m;
    return PS_OK;
fail:
    ps_sasrec_free(m);
    return PS_ERR;
}

void ps_sasrec_free(ps_sasrec *m)
{
    if (!m)
        return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void ps_sasrec_init_weights(ps_sasrec *m, uint64_t seed)
{
    ps_nn_rng rng;
    ps_nn_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int is_ln = strstr(t->name, "LayerNorm.") != NULL;
        if (ends_with(t->name, ".bias")) {
            memset(p, 0, t->numel * sizeof *p);
        } else if (is_ln) {
            for (size_t k = 0; k < t->numel; k++)
                p[k] = 1.0f;
        } else { /* Linear and Embedding weights */
            for (size_t k = 0; k < t->numel; k++)
                p[k] = (float)(0.02 * ps_nn_rng_normal(&rng));
        }
    }
}

const ps_sasrec_tensor *ps_sasrec_find(const ps_sasrec *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

const float *ps_sasrec_item_embedding(const ps_sasrec *m, int *dim)
{
    const ps_sasrec_tensor *t = ps_sasrec_find(m, "item_embedding.weight");
    if (!t || t->ndim != 2 || t->shape[0] != (int64_t)m->cfg.n_items + 1 || t->shape[1] != m->cfg.d)
        return NULL;
    *dim = m->cfg.d;
    return m->params + t->offset;
}

size_t ps_sasrec_num_params(const ps_sasrec *m)
{
    return m->n_params;
}

int ps_sasrec_alloc_training(ps_sasrec *m, ps_error *err)
{
    float **bufs[3] = {&m->grads, &m->adam_m, &m->adam_v};
    static const char *const what[3] = {"sasrec gradients", "sasrec adam m", "sasrec adam v"};
    for (int i = 0; i < 3; i++) {
        if (*bufs[i])
            continue;
        *bufs[i] = ps_calloc(m->n_params, sizeof(float), what[i], err);
        if (!*bufs[i])
            return PS_ERR;
    }
    return PS_OK;
}

void ps_sasrec_zero_grad(ps_sasrec *m)
{
    if (m->grads)
        memset(m->grads, 0, m->n_params * sizeof *m->grads);
}

int ps_sasrec_adam_step(ps_sasrec *m, float lr, ps_error *err)
{
    if (!m->grads || !m->adam_m || !m->adam_v)
        return ps_fail(err, "sasrec adam step: training buffers are not allocated "
                            "(call ps_sasrec_alloc_training first)");
    if (!(lr >= 0.0f) || !isfinite(lr))
        return ps_fail(err, "sasrec adam step: learning rate %g is not a non-negative number",
                       (double)lr);
    m->adam_t++;
    ps_nn_adam_step(m->params, m->grads, m->adam_m, m->adam_v, m->n_params, (double)lr, 0.9, 0.999, 1e-8,
                    m->adam_t);
    return PS_OK;
}

/* With our GEMM (E transposed once per call, the users shared out between threads); falls back
 * to OpenBLAS when the transposed copy cannot be allocated. */
void ps_sasrec_item_embedding_t(const ps_sasrec *m, float *et)
{
    ps_nn_transpose(et, m->params + m->tensors[SASREC_ITEM_EMB].offset, m->cfg.n_items + 1, m->cfg.d);
}

void ps_sasrec_score_t(const ps_sasrec *m, const float *et, const float *h, int B, float *scores)
{
    const int V = m->cfg.n_items + 1, d = m->cfg.d;
#pragma omp parallel if ((double)B * V * d > 1e6)
    {
        size_t lo, hi;
        ps_nn_thread_span((size_t)B, &lo, &hi);
        ps_nn_gemm((int)(hi - lo), V, d, h + lo * d, d, 1, et, V, scores + lo * V, V, 1.0f, NULL, 0);
    }
}

void ps_sasrec_score(const ps_sasrec *m, const float *h, int B, float *scores)
{
    const int V = m->cfg.n_items + 1, d = m->cfg.d;
    const float *E = m->params + m->tensors[SASREC_ITEM_EMB].offset;
    float *et = malloc((size_t)V * d * sizeof *et);
    if (!et) {
        ps_nn_sgemm(0, 1, B, V, d, 1.0f, h, d, E, d, 0.0f, scores, V);
        return;
    }
    ps_sasrec_item_embedding_t(m, et);
    ps_sasrec_score_t(m, et, h, B, scores);
    free(et);
}
