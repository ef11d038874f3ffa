/* Whole-model checks of SASRec (src/model): finite-difference gradients sampled from every
 * parameter tensor, thread-count independence, and the API contracts (parameter table, init,
 * validation, user vectors, causality).
 *
 * FD tolerance: central differences with step 1e-2 on the float parameters, loss = mean CE in
 * double; error |a - n| / max(|a|, |n|, 1e-3) < 2e-2 (2 % relative, or 2e-5 absolute for
 * gradients below 1e-3). The model is tiny (12 items, d 8, 2 heads, d_ff 16, L 6, 2 layers)
 * with weights drawn larger than the 0.02 init so that every path carries real gradient. */
#include "testutil.h"

#include "popsteer/sasrec.h"
#include "nn/nn.h"
#include "../nn/fdcheck.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-2f
#define FD_FLOOR 1e-3
#define FD_TOL 2e-2
#define PER_TENSOR 12

enum { B = 3, L = 6 };

/* left-aligned, lengths 6, 4, 2; row 0 window style (a target everywhere), rows 1-2 prefix */
static const int32_t SEQ[B * L] = {
    3, 7, 1, 12, 7, 5,
    2, 9, 11, 4, 0, 0,
    6, 10, 0, 0, 0, 0,
};
static const int32_t TARGET[B * L] = {
    7, 1, 12, 7, 5, 8,
    -1, -1, -1, 3, -1, -1,
    -1, 2, -1, -1, -1, -1,
};
static const int32_t LEN[B] = {6, 4, 2};

static void tiny_config(ps_sasrec_config *c, float dropout)
{
    ps_sasrec_config_default(c, 12);
    c->d = 8;
    c->n_heads = 2;
    c->d_ff = 16;
    c->max_len = L;
    c->hidden_dropout = dropout;
    c->attn_dropout = dropout;
}

/* Weights U(-0.5, 0.5), biases U(-0.2, 0.2), LayerNorm weights 1 + U(-0.3, 0.3). */
static void randomize(ps_sasrec *m, uint64_t seed)
{
    ps_nn_rng r;
    ps_nn_rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &m->tensors[i];
        int ln_w = strstr(t->name, "LayerNorm.weight") != NULL;
        int bias = strstr(t->name, ".bias") != NULL;
        for (size_t k = 0; k < t->numel; k++) {
            float u = (float)ps_nn_rng_uniform(&r) - 0.5f;
            m->params[t->offset + k] = ln_w ? 1.0f + 0.6f * u : (bias ? 0.4f * u : u);
        }
    }
}

typedef struct model_ctx {
    ps_sasrec *m;
    ps_sasrec_ws *ws;
    int training;
} model_ctx;

static double model_loss(void *p)
{
    model_ctx *c = p;
    ps_error err;
    ps_sasrec_loss_stats st;
    assert_int_equal(ps_sasrec_forward(c->m, c->ws, SEQ, B, c->training, 17, 3, &err), PS_OK);
    assert_int_equal(ps_sasrec_loss(c->m, c->ws, TARGET, &st, &err), PS_OK);
    return st.loss_sum / (double)st.n_targets;
}

static void make_model(model_ctx *c, float dropout, int training)
{
    ps_error err;
    ps_sasrec_config cfg;
    tiny_config(&cfg, dropout);
    assert_int_equal(ps_sasrec_create(&c->m, &cfg, &err), PS_OK);
    randomize(c->m, 2024);
    assert_int_equal(ps_sasrec_alloc_training(c->m, &err), PS_OK);
    assert_int_equal(ps_sasrec_ws_create(&c->ws, c->m, B, 1, &err), PS_OK);
    c->training = training;
}

static void free_model(model_ctx *c)
{
    ps_sasrec_ws_free(c->ws);
    ps_sasrec_free(c->m);
}

static double analytic_grads(model_ctx *c, ps_sasrec_loss_stats *st)
{
    ps_error err;
    ps_sasrec_zero_grad(c->m);
    assert_int_equal(ps_sasrec_forward(c->m, c->ws, SEQ, B, c->training, 17, 3, &err), PS_OK);
    assert_int_equal(ps_sasrec_backward(c->m, c->ws, TARGET, 0, st, &err), PS_OK);
    return st->loss;
}

static void check_all_tensors(model_ctx *c, const char *label)
{
    ps_sasrec_loss_stats st;
    analytic_grads(c, &st);
    assert_int_equal(st.n_targets, 8);
    float *g = malloc(c->m->n_params * sizeof *g);
    assert_non_null(g);
    memcpy(g, c->m->grads, c->m->n_params * sizeof *g);
    printf("  %s: loss %.6f over %lld targets\n", label, (double)st.loss, (long long)st.n_targets);
    double worst = 0;
    for (int i = 0; i < c->m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &c->m->tensors[i];
        fd_result r = fd_check(model_loss, c, c->m->params + t->offset, g + t->offset, t->numel, FD_H,
                               FD_FLOOR, PER_TENSOR);
        fd_report(t->name, &r);
        worst = fmax(worst, r.max_err);
        /* every tensor must get gradient somewhere, or the check would prove nothing; except the
         * key bias: q.(k_j + b) shifts a whole score row by q.b, which softmax ignores */
        double gmax = 0;
        for (size_t k = 0; k < t->numel; k++)
            gmax = fmax(gmax, fabs(g[t->offset + k]));
        if (strstr(t->name, "key.bias"))
            assert_true(gmax < 1e-6);
        else
            assert_true(gmax > 1e-4);
    }
    printf("  %s: worst error %.3g (tolerance %.0e)\n", label, worst, FD_TOL);
    assert_true(worst < FD_TOL);
    free(g);
}

static void test_fd_no_dropout(void **state)
{
    (void)state;
    model_ctx c;
    make_model(&c, 0.0f, 1);
    check_all_tensors(&c, "dropout 0");
    free_model(&c);
}

/* With dropout on, the masks are a function of (seed, step, site, element), so the forward is a
 * fixed function of the parameters and FD checks the dropout paths too. */
static void test_fd_with_dropout(void **state)
{
    (void)state;
    model_ctx c;
    make_model(&c, 0.2f, 1);
    check_all_tensors(&c, "dropout 0.2, training");
    free_model(&c);
}

/* The gradient must not change with the OpenMP thread count: every non-BLAS reduction is ordered.
 * A mid-sized model, so that every kernel takes its parallel path (the tiny one stays below
 * the thresholds where threads are worth waking). */
static void test_threads_bitwise(void **state)
{
    (void)state;
    enum { TB = 64, TL = 20 };
    int saved = omp_get_max_threads();
    ps_error err;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, 500);
    cfg.d = 32, cfg.d_ff = 64, cfg.max_len = TL, cfg.hidden_dropout = 0.3f, cfg.attn_dropout = 0.3f;
    ps_sasrec *m;
    ps_sasrec_ws *ws;
    assert_int_equal(ps_sasrec_create(&m, &cfg, &err), PS_OK);
    ps_sasrec_init_weights(m, 99);
    assert_int_equal(ps_sasrec_alloc_training(m, &err), PS_OK);
    assert_int_equal(ps_sasrec_ws_create(&ws, m, TB, 1, &err), PS_OK);
    int32_t *seq = calloc(TB * TL, sizeof *seq), *tgt = calloc(TB * TL, sizeof *tgt);
    assert_non_null(seq);
    assert_non_null(tgt);
    ps_nn_rng r;
    ps_nn_rng_seed(&r, 5);
    for (int b = 0; b < TB; b++) {
        int len = 1 + (int)(ps_nn_rng_u64(&r) % TL);
        for (int l = 0; l < TL; l++) {
            seq[b * TL + l] = l < len ? 1 + (int32_t)(ps_nn_rng_u64(&r) % 500) : 0;
            tgt[b * TL + l] = l < len ? 1 + (int32_t)(ps_nn_rng_u64(&r) % 500) : -1;
        }
    }
    float *g[2];
    double loss[2];
    for (int k = 0; k < 2; k++) {
        ps_sasrec_loss_stats st;
        omp_set_num_threads(k + 1);
        ps_sasrec_zero_grad(m);
        assert_int_equal(ps_sasrec_forward(m, ws, seq, TB, 1, 17, 3, &err), PS_OK);
        assert_int_equal(ps_sasrec_backward(m, ws, tgt, 0, &st, &err), PS_OK);
        loss[k] = st.loss_sum;
        g[k] = malloc(m->n_params * sizeof(float));
        assert_non_null(g[k]);
        memcpy(g[k], m->grads, m->n_params * sizeof(float));
    }
    omp_set_num_threads(saved);
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(g[0], g[1], m->n_params * sizeof(float));
    free(g[0]), free(g[1]), free(seq), free(tgt);
    ps_sasrec_ws_free(ws);
    ps_sasrec_free(m);
}

/* ---------------------------------------------------------------------------------------------
 * API contracts */

static void test_parameter_table(void **state)
{
    (void)state;
    ps_error err;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, 3416);
    ps_sasrec *m;
    assert_int_equal(ps_sasrec_create(&m, &cfg, &err), PS_OK);
    /* SPEC model: E 3417x64, P 50x64, per layer 4 (64x64 + 64) + 2 x 2 x 64 + 64x256 + 256
     * + 256x64 + 64, final LayerNorm 2 x 64 */
    size_t per_layer = 4 * (64 * 64 + 64) + 4 * 64 + 64 * 256 + 256 + 256 * 64 + 64;
    assert_int_equal(ps_sasrec_num_params(m), 3417 * 64 + 50 * 64 + 2 * per_layer + 128);
    assert_int_equal(m->n_tensors, 2 + 2 * 16 + 2);
    static const char *const names[] = {
        "item_embedding.weight",
        "position_embedding.weight",
        "trm_encoder.layer.0.multi_head_attention.query.weight",
        "trm_encoder.layer.0.multi_head_attention.query.bias",
        "trm_encoder.layer.0.multi_head_attention.key.weight",
        "trm_encoder.layer.0.multi_head_attention.key.bias",
        "trm_encoder.layer.0.multi_head_attention.value.weight",
        "trm_encoder.layer.0.multi_head_attention.value.bias",
        "trm_encoder.layer.0.multi_head_attention.dense.weight",
        "trm_encoder.layer.0.multi_head_attention.dense.bias",
        "trm_encoder.layer.0.multi_head_attention.LayerNorm.weight",
        "trm_encoder.layer.0.multi_head_attention.LayerNorm.bias",
        "trm_encoder.layer.0.feed_forward.dense_1.weight",
        "trm_encoder.layer.0.feed_forward.dense_1.bias",
        "trm_encoder.layer.0.feed_forward.dense_2.weight",
        "trm_encoder.layer.0.feed_forward.dense_2.bias",
        "trm_encoder.layer.0.feed_forward.LayerNorm.weight",
        "trm_encoder.layer.0.feed_forward.LayerNorm.bias",
        "trm_encoder.layer.1.multi_head_attention.query.weight",
        "trm_encoder.layer.1.feed_forward.LayerNorm.bias",
        "LayerNorm.weight",
        "LayerNorm.bias",
    };
    size_t covered = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const ps_sasrec_tensor *t = ps_sasrec_find(m, names[i]);
        if (!t)
            fail_msg("tensor %s missing", names[i]);
        assert_true(t->offset + t->numel <= m->n_params);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &m->tensors[i];
        assert_int_equal(t->offset, covered); /* contiguous, no overlap, no hole */
        covered += t->numel;
    }
    assert_int_equal(covered, m->n_params);
    assert_null(ps_sasrec_find(m, "trm_encoder.layer.2.feed_forward.LayerNorm.bias"));
    const ps_sasrec_tensor *w1 = ps_sasrec_find(m, "trm_encoder.layer.1.feed_forward.dense_1.weight");
    assert_int_equal(w1->ndim, 2);
    assert_int_equal(w1->shape[0], 256); /* [out, in] */
    assert_int_equal(w1->shape[1], 64);
    const ps_sasrec_tensor *e = ps_sasrec_find(m, "item_embedding.weight");
    assert_int_equal(e->shape[0], 3417);
    ps_sasrec_free(m);
}

static void test_init_weights(void **state)
{
    (void)state;
    ps_error err;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, 500);
    ps_sasrec *a, *b;
    assert_int_equal(ps_sasrec_create(&a, &cfg, &err), PS_OK);
    assert_int_equal(ps_sasrec_create(&b, &cfg, &err), PS_OK);
    ps_sasrec_init_weights(a, 7);
    ps_sasrec_init_weights(b, 7);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    ps_sasrec_init_weights(b, 8);
    assert_memory_not_equal(a->params, b->params, a->n_params * sizeof(float));
    for (int i = 0; i < a->n_tensors; i++) {
        const ps_sasrec_tensor *t = &a->tensors[i];
        const float *p = a->params + t->offset;
        double s = 0, s2 = 0;
        for (size_t k = 0; k < t->numel; k++)
            s += p[k], s2 += (double)p[k] * p[k];
        double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
        if (strstr(t->name, "LayerNorm.weight")) {
            assert_true(mean == 1.0 && sd == 0.0);
        } else if (strstr(t->name, ".bias")) {
            assert_true(mean == 0.0 && sd == 0.0);
        } else { /* N(0, 0.02^2), the pad row included */
            assert_true(fabs(mean) < 0.005 && fabs(sd - 0.02) < 0.004);
            if (i == 0)
                assert_true(p[0] != 0.0f || p[1] != 0.0f);
        }
    }
    ps_sasrec_free(a);
    ps_sasrec_free(b);
}

static void test_config_validation(void **state)
{
    (void)state;
    ps_error err;
    ps_sasrec_config cfg;
    ps_sasrec *m = NULL;
    ps_sasrec_config_default(&cfg, 100);
    assert_int_equal(ps_sasrec_config_validate(&cfg, &err), PS_OK);
    cfg.d = 10, cfg.n_heads = 3;
    assert_int_equal(ps_sasrec_create(&m, &cfg, &err), PS_ERR);
    assert_null(m);
    assert_non_null(strstr(err.msg, "not divisible by n_heads"));
    ps_sasrec_config_default(&cfg, 0);
    assert_int_equal(ps_sasrec_config_validate(&cfg, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "n_items"));
    ps_sasrec_config_default(&cfg, 10);
    cfg.hidden_dropout = 1.0f;
    assert_int_equal(ps_sasrec_config_validate(&cfg, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "hidden_dropout"));
    ps_sasrec_config_default(&cfg, 10);
    cfg.max_len = 0;
    assert_int_equal(ps_sasrec_config_validate(&cfg, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "max_len"));
    ps_sasrec_config_default(&cfg, 10);
    cfg.ln_eps = 0.0f;
    assert_int_equal(ps_sasrec_config_validate(&cfg, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "ln_eps"));
}

static void test_input_validation(void **state)
{
    (void)state;
    model_ctx c;
    make_model(&c, 0.0f, 0);
    ps_error err;
    ps_sasrec_loss_stats st;
    int32_t seq[B * L], tgt[B * L];
    memcpy(seq, SEQ, sizeof seq);
    seq[7] = 13; /* n_items = 12 */
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, seq, B, 0, 0, 0, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "seq[1][1] = 13"));
    assert_int_equal(ps_sasrec_loss(c.m, c.ws, TARGET, &st, &err), PS_ERR); /* no forward */
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B + 1, 0, 0, 0, &err), PS_ERR);
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 0, 0, 0, &err), PS_OK);
    memcpy(tgt, TARGET, sizeof tgt);
    tgt[4] = 0;
    assert_int_equal(ps_sasrec_backward(c.m, c.ws, tgt, 0, &st, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "target[0][4] = 0"));
    int32_t len[B] = {6, 0, 2};
    float out[B * 8];
    assert_int_equal(ps_sasrec_user_vectors(c.m, c.ws, SEQ, len, B, out, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "len[1] = 0"));
    free_model(&c);
}

/* User vectors = hidden at len-1; an eval workspace (shared buffers) and chunking over a small
 * workspace give the same numbers; the output at position t does not depend on later items. */
static void test_user_vectors_and_causality(void **state)
{
    (void)state;
    model_ctx c;
    make_model(&c, 0.5f, 0);
    ps_error err;
    const int d = c.m->cfg.d;
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 0, 0, 0, &err), PS_OK);
    float hidden[B * L * 8];
    memcpy(hidden, ps_sasrec_ws_hidden(c.ws), sizeof hidden);

    ps_sasrec_ws *small;
    assert_int_equal(ps_sasrec_ws_create(&small, c.m, 2, 0, &err), PS_OK);
    float uv[B * 8];
    assert_int_equal(ps_sasrec_user_vectors(c.m, small, SEQ, LEN, B, uv, &err), PS_OK);
    for (int b = 0; b < B; b++)
        tu_assert_rows_equal(uv + b * d, hidden + ((size_t)b * L + LEN[b] - 1) * d, (size_t)d);

    for (int b = 0; b < B; b++)
        for (int t = 0; t < LEN[b]; t++) {
            int32_t pre[L] = {0};
            memcpy(pre, SEQ + b * L, (size_t)(t + 1) * sizeof *pre);
            assert_int_equal(ps_sasrec_forward(c.m, small, pre, 1, 0, 0, 0, &err), PS_OK);
            const float *h = ps_sasrec_ws_hidden(small) + (size_t)t * d;
            for (int k = 0; k < d; k++)
                assert_true(fabsf(h[k] - hidden[((size_t)b * L + t) * d + k]) < 1e-5f);
        }

    /* scores = h E^T */
    float scores[B * 13];
    ps_sasrec_score(c.m, uv, B, scores);
    const float *E = c.m->params + ps_sasrec_find(c.m, "item_embedding.weight")->offset;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 13; i++) {
            double s = 0;
            for (int k = 0; k < d; k++)
                s += (double)uv[b * d + k] * E[i * d + k];
            assert_true(fabs(s - scores[b * 13 + i]) < 1e-5);
        }
    ps_sasrec_ws_free(small);
    free_model(&c);
}

/* Training-mode dropout is replayable from (seed, step) and changes with the step. */
static void test_dropout_replay(void **state)
{
    (void)state;
    model_ctx c;
    make_model(&c, 0.5f, 1);
    ps_error err;
    const size_t n = (size_t)B * L * 8;
    float h1[B * L * 8];
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 1, 5, 10, &err), PS_OK);
    memcpy(h1, ps_sasrec_ws_hidden(c.ws), sizeof h1);
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 1, 5, 11, &err), PS_OK);
    assert_memory_not_equal(h1, ps_sasrec_ws_hidden(c.ws), n * sizeof(float));
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 1, 5, 10, &err), PS_OK);
    assert_memory_equal(h1, ps_sasrec_ws_hidden(c.ws), n * sizeof(float));
    free_model(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_no_dropout),
        cmocka_unit_test(test_fd_with_dropout),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_parameter_table),
        cmocka_unit_test(test_init_weights),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_user_vectors_and_causality),
        cmocka_unit_test(test_dropout_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
