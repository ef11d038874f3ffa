/* Finite-difference gradient checks for every kernel's backward in src/nn, plus forward checks
 * against naive double-precision references.
 *
 * Tolerance (all FD checks): step h = 1e-2 on float inputs, error measure
 * |a - n| / max(|a|, |n|, 1e-2) < 1e-2, i.e. 1 % relative error, or 1e-4 absolute for
 * gradients below 1e-2. test_checker_catches_wrong_gradient shows the checker fails on an
 * analytic gradient that is off by 5 % in a single element. */
#include "testutil.h"

#include "nn/nn.h"
#include "fdcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-2f
#define FD_FLOOR 1e-2
#define FD_TOL 1e-2
#define FD_SAMPLES 400

static float *fvec(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    ps_nn_rng r;
    ps_nn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)ps_nn_rng_uniform(&r);
}

static double dot_d(const float *w, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * (double)y[i];
    return s;
}

static void expect_fd(const char *what, fd_loss_fn f, void *ctx, float *x, const float *analytic,
                      size_t n)
{
    fd_result r = fd_check(f, ctx, x, analytic, n, FD_H, FD_FLOOR, FD_SAMPLES);
    fd_report(what, &r);
    assert_true(r.checked > 0);
    assert_true(r.max_err < FD_TOL);
}

/* ---------------------------------------------------------------------------------------------
 * Linear: loss = sum w * (x W^T + b) */

typedef struct lin_ctx {
    int N, IC, OC;
    float *x, *W, *b, *y, *w;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    ps_nn_linear_forward(c->y, c->x, c->W, c->b, c->N, c->IC, c->OC);
    return dot_d(c->w, c->y, (size_t)c->N * c->OC);
}

static void lin_setup(lin_ctx *c, float **dx, float **dW, float **db)
{
    c->N = 7, c->IC = 5, c->OC = 6;
    c->x = fvec((size_t)c->N * c->IC);
    c->W = fvec((size_t)c->OC * c->IC);
    c->b = fvec((size_t)c->OC);
    c->y = fvec((size_t)c->N * c->OC);
    c->w = fvec((size_t)c->N * c->OC);
    fill_uniform(c->x, (size_t)c->N * c->IC, -1, 1, 1);
    fill_uniform(c->W, (size_t)c->OC * c->IC, -1, 1, 2);
    fill_uniform(c->b, (size_t)c->OC, -1, 1, 3);
    fill_uniform(c->w, (size_t)c->N * c->OC, -1, 1, 4);
    *dx = fvec((size_t)c->N * c->IC);
    *dW = fvec((size_t)c->OC * c->IC);
    *db = fvec((size_t)c->OC);
    /* analytic, accumulated on top of a known value to check the += contract */
    for (int i = 0; i < c->OC; i++)
        (*db)[i] = 1.0f;
    ps_nn_linear_backward(*dx, *dW, *db, c->w, c->x, c->W, c->N, c->IC, c->OC);
    for (int i = 0; i < c->OC; i++)
        (*db)[i] -= 1.0f;
}

static void lin_free(lin_ctx *c)
{
    free(c->x), free(c->W), free(c->b), free(c->y), free(c->w);
}

static void test_linear_grad(void **state)
{
    (void)state;
    lin_ctx c;
    float *dx, *dW, *db;
    lin_setup(&c, &dx, &dW, &db);
    /* forward against a naive loop */
    lin_loss(&c);
    for (int n = 0; n < c.N; n++)
        for (int o = 0; o < c.OC; o++) {
            double s = c.b[o];
            for (int i = 0; i < c.IC; i++)
                s += (double)c.x[n * c.IC + i] * c.W[o * c.IC + i];
            assert_true(fabs(s - c.y[n * c.OC + o]) < 1e-5);
        }
    expect_fd("linear dx", lin_loss, &c, c.x, dx, (size_t)c.N * c.IC);
    expect_fd("linear dW", lin_loss, &c, c.W, dW, (size_t)c.OC * c.IC);
    expect_fd("linear db", lin_loss, &c, c.b, db, (size_t)c.OC);
    free(dx), free(dW), free(db);
    lin_free(&c);
}

/* The checker must be able to fail: 5 % off in one element of dW. */
static void test_checker_catches_wrong_gradient(void **state)
{
    (void)state;
    lin_ctx c;
    float *dx, *dW, *db;
    lin_setup(&c, &dx, &dW, &db);
    size_t k = 7;
    assert_true(fabsf(dW[k]) > 0.05f);
    dW[k] *= 1.05f;
    fd_result r = fd_check(lin_loss, &c, c.W, dW, (size_t)c.OC * c.IC, FD_H, FD_FLOOR, FD_SAMPLES);
    fd_report("linear dW, one entry 5% off", &r);
    assert_true(r.max_err >= FD_TOL);
    assert_int_equal(r.worst, k);
    /* and a gradient of the wrong sign in a tiny entry is caught through the absolute floor */
    dW[k] /= 1.05f;
    dx[3] = -dx[3];
    r = fd_check(lin_loss, &c, c.x, dx, (size_t)c.N * c.IC, FD_H, FD_FLOOR, FD_SAMPLES);
    assert_true(r.max_err >= FD_TOL);
    free(dx), free(dW), free(db);
    lin_free(&c);
}

/* ---------------------------------------------------------------------------------------------
 * LayerNorm */

typedef struct ln_ctx {
    int N, C;
    float eps;
    float *x, *w, *b, *y, *mean, *rstd, *wt;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    ps_nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, c->eps);
    return dot_d(c->wt, c->y, (size_t)c->N * c->C);
}

static void test_layernorm_grad(void **state)
{
    (void)state;
    ln_ctx c = {.N = 5, .C = 8, .eps = 1e-12f};
    size_t nc = (size_t)c.N * c.C;
    c.x = fvec(nc), c.w = fvec(c.C), c.b = fvec(c.C), c.y = fvec(nc), c.mean = fvec(c.N);
    c.rstd = fvec(c.N), c.wt = fvec(nc);
    fill_uniform(c.x, nc, -2, 2, 11);
    fill_uniform(c.w, c.C, 0.5f, 1.5f, 12);
    fill_uniform(c.b, c.C, -0.5f, 0.5f, 13);
    fill_uniform(c.wt, nc, -1, 1, 14);
    ln_loss(&c);
    /* forward against double */
    for (int n = 0; n < c.N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < c.C; i++)
            m += c.x[n * c.C + i];
        m /= c.C;
        for (int i = 0; i < c.C; i++)
            v += (c.x[n * c.C + i] - m) * (c.x[n * c.C + i] - m);
        v /= c.C;
        for (int i = 0; i < c.C; i++) {
            double ref = (c.x[n * c.C + i] - m) / sqrt(v + 1e-12) * c.w[i] + c.b[i];
            assert_true(fabs(ref - c.y[n * c.C + i]) < 1e-5);
        }
    }
    float *dx = fvec(nc), *dw = fvec(c.C), *db = fvec(c.C);
    ps_nn_layernorm_backward(dx, dw, db, c.wt, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    /* smaller step: LayerNorm curves faster than the other kernels at this input scale */
    fd_result r = fd_check(ln_loss, &c, c.x, dx, nc, 2e-3f, FD_FLOOR, FD_SAMPLES);
    fd_report("layernorm dx", &r);
    assert_true(r.max_err < FD_TOL);
    expect_fd("layernorm dw", ln_loss, &c, c.w, dw, c.C);
    expect_fd("layernorm db", ln_loss, &c, c.b, db, c.C);
    free(dx), free(dw), free(db);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.mean), free(c.rstd), free(c.wt);
}

/* ---------------------------------------------------------------------------------------------
 * Embedding */

typedef struct emb_ctx {
    int B, L, C, rows;
    int32_t *ids;
    float *table, *pos, *y, *w;
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    ps_nn_embedding_forward(c->y, c->ids, c->table, c->pos, c->B, c->L, c->C);
    return dot_d(c->w, c->y, (size_t)c->B * c->L * c->C);
}

static void test_embedding_grad(void **state)
{
    (void)state;
    /* left-aligned with padding, and item 2 repeated so scatter-add has to sum */
    int32_t ids[] = {3, 2, 2, 0, 0, 1, 4, 2, 5, 0};
    emb_ctx c = {.B = 2, .L = 5, .C = 4, .rows = 6, .ids = ids};
    size_t ny = (size_t)c.B * c.L * c.C;
    c.table = fvec((size_t)c.rows * c.C), c.pos = fvec((size_t)c.L * c.C), c.y = fvec(ny), c.w = fvec(ny);
    fill_uniform(c.table, (size_t)c.rows * c.C, -1, 1, 21);
    fill_uniform(c.pos, (size_t)c.L * c.C, -1, 1, 22);
    fill_uniform(c.w, ny, -1, 1, 23);
    emb_loss(&c);
    assert_true(c.y[(1 * 5 + 3) * 4 + 2] == c.table[5 * 4 + 2] + c.pos[3 * 4 + 2]);
    float *dt = fvec((size_t)c.rows * c.C), *dp = fvec((size_t)c.L * c.C);
    ps_nn_embedding_backward(dt, dp, c.w, c.ids, c.B, c.L, c.C, 0);
    /* padding_idx = 0: the pad row gets no gradient from the lookup, although it is used */
    for (int i = 0; i < c.C; i++)
        assert_true(dt[i] == 0.0f);
    expect_fd("embedding dtable (rows 1..)", emb_loss, &c, c.table + c.C, dt + c.C,
              (size_t)(c.rows - 1) * c.C);
    expect_fd("embedding dpos", emb_loss, &c, c.pos, dp, (size_t)c.L * c.C);
    /* without a padding index row 0 gets its true gradient */
    memset(dt, 0, (size_t)c.rows * c.C * sizeof *dt);
    ps_nn_embedding_backward(dt, NULL, c.w, c.ids, c.B, c.L, c.C, -1);
    expect_fd("embedding dtable (no padding_idx)", emb_loss, &c, c.table, dt, (size_t)c.rows * c.C);
    free(dt), free(dp);
    free(c.table), free(c.pos), free(c.y), free(c.w);
}

/* ---------------------------------------------------------------------------------------------
 * GELU */

typedef struct gelu_ctx {
    size_t n;
    float *x, *y, *w;
} gelu_ctx;

static double gelu_loss(void *p)
{
    gelu_ctx *c = p;
    ps_nn_gelu_forward(c->y, c->x, c->n);
    return dot_d(c->w, c->y, c->n);
}

static void test_gelu_grad(void **state)
{
    (void)state;
    gelu_ctx c = {.n = 200};
    c.x = fvec(c.n), c.y = fvec(c.n), c.w = fvec(c.n);
    fill_uniform(c.x, c.n, -5, 5, 31);
    c.x[0] = 0.0f, c.x[1] = 1.4142135f, c.x[2] = -1.4142135f; /* where the erf pieces meet */
    fill_uniform(c.w, c.n, -1, 1, 32);
    gelu_loss(&c);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.x[i], ref = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
        assert_true(fabs(ref - c.y[i]) < 1e-6 * fmax(1.0, fabs(x)));
    }
    float *dx = fvec(c.n);
    ps_nn_gelu_backward(dx, c.x, c.w, c.n);
    expect_fd("gelu dx", gelu_loss, &c, c.x, dx, c.n);
    /* in place forward (c.y recomputed: the FD loop left it at a perturbed x) */
    gelu_loss(&c);
    memcpy(dx, c.x, c.n * sizeof *dx);
    ps_nn_gelu_forward(dx, dx, c.n);
    assert_memory_equal(dx, c.y, c.n * sizeof *dx);
    free(dx), free(c.x), free(c.y), free(c.w);
}

/* ---------------------------------------------------------------------------------------------
 * Attention (mask and padding; with and without dropout on the probabilities) */

typedef struct att_ctx {
    int B, L, C, H;
    const int32_t *ids;
    ps_nn_dropout drop;
    float *qkv, *ctx, *probs, *probs_d, *w;
} att_ctx;

static double att_loss(void *p)
{
    att_ctx *c = p;
    ps_nn_attention_forward(c->ctx, c->probs, c->probs_d, c->qkv, c->ids, c->B, c->L, c->C, c->H,
                            &c->drop);
    return dot_d(c->w, c->ctx, (size_t)c->B * c->L * c->C);
}

/* ctx from a direct double-precision reading of RecBole's formula, dropout mask included */
static void att_reference(const att_ctx *c, double *ref)
{
    const int C3 = 3 * c->C, hd = c->C / c->H;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->L; i++) {
                double s[64], mx = -1e300, sum = 0;
                for (int j = 0; j < c->L; j++) {
                    double dot = 0;
                    for (int e = 0; e < hd; e++)
                        dot += (double)c->qkv[(b * c->L + i) * C3 + h * hd + e] *
                               c->qkv[(b * c->L + j) * C3 + c->C + h * hd + e];
                    int keep = j <= i && c->ids[b * c->L + j] != 0;
                    s[j] = dot / sqrt((double)hd) + (keep ? 0.0 : -10000.0);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < c->L; j++)
                    sum += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < hd; e++) {
                    double acc = 0;
                    for (int j = 0; j < c->L; j++) {
                        uint64_t idx = (((uint64_t)b * c->H + h) * c->L + i) * c->L + j;
                        double keep = ps_nn_dropout_keep(&c->drop, idx) ? 1.0 / (1.0 - c->drop.p) : 0.0;
                        acc += s[j] / sum * keep * c->qkv[(b * c->L + j) * C3 + 2 * c->C + h * hd + e];
                    }
                    ref[(b * c->L + i) * c->C + h * hd + e] = acc;
                }
            }
}

static void run_attention_check(float p_drop)
{
    /* left-aligned sequences of lengths 5, 3 and 1 */
    static const int32_t ids[] = {4, 1, 7, 2, 9, 3, 3, 5, 0, 0, 6, 0, 0, 0, 0};
    att_ctx c = {.B = 3, .L = 5, .C = 8, .H = 2, .ids = ids};
    c.drop.p = p_drop, c.drop.seed = 99, c.drop.stream = 5;
    size_t nq = (size_t)c.B * c.L * 3 * c.C, nc = (size_t)c.B * c.L * c.C;
    size_t na = (size_t)c.B * c.H * c.L * c.L;
    c.qkv = fvec(nq), c.ctx = fvec(nc), c.probs = fvec(na), c.probs_d = fvec(na), c.w = fvec(nc);
    fill_uniform(c.qkv, nq, -1.5f, 1.5f, 41);
    fill_uniform(c.w, nc, -1, 1, 42);
    att_loss(&c);

    double *ref = calloc(nc, sizeof *ref);
    assert_non_null(ref);
    att_reference(&c, ref);
    for (size_t i = 0; i < nc; i++)
        assert_true(fabs(ref[i] - c.ctx[i]) < 1e-5);
    /* masked probabilities are exactly zero: future keys and padded keys */
    for (int b = 0; b < c.B; b++)
        for (int i = 0; i < c.L; i++)
            for (int j = 0; j < c.L; j++)
                if (j > i || ids[b * c.L + j] == 0)
                    assert_true(c.probs[((size_t)(b * c.H + 1) * c.L + i) * c.L + j] == 0.0f);
    free(ref);

    float *dqkv = fvec(nq), *scratch = fvec(na);
    ps_nn_attention_backward(dqkv, scratch, c.w, c.qkv, c.probs, c.probs_d, c.B, c.L, c.C, c.H, &c.drop);
    expect_fd(p_drop > 0 ? "attention dqkv (dropout 0.3)" : "attention dqkv (no dropout)", att_loss, &c,
              c.qkv, dqkv, nq);
    free(dqkv), free(scratch);
    free(c.qkv), free(c.ctx), free(c.probs), free(c.probs_d), free(c.w);
}

static void test_attention_grad(void **state)
{
    (void)state;
    run_attention_check(0.0f);
    run_attention_check(0.3f);
}

/* An all-padding sequence: every score gets -10000, so PyTorch softmaxes the raw scores. */
static void test_attention_all_padding_row(void **state)
{
    (void)state;
    static const int32_t ids[] = {0, 0, 0, 0};
    att_ctx c = {.B = 1, .L = 4, .C = 4, .H = 1, .ids = ids};
    size_t nq = 4 * 12, na = 16;
    c.qkv = fvec(nq), c.ctx = fvec(16), c.probs = fvec(na), c.w = fvec(16);
    fill_uniform(c.qkv, nq, -1, 1, 43);
    ps_nn_attention_forward(c.ctx, c.probs, NULL, c.qkv, ids, 1, 4, 4, 1, NULL);
    for (int i = 0; i < 4; i++) {
        double s[4], mx = -1e300, sum = 0;
        for (int j = 0; j < 4; j++) {
            double dot = 0;
            for (int e = 0; e < 4; e++)
                dot += (double)c.qkv[i * 12 + e] * c.qkv[j * 12 + 4 + e];
            s[j] = dot / 2.0;
            mx = fmax(mx, s[j]);
        }
        for (int j = 0; j < 4; j++)
            sum += (s[j] = exp(s[j] - mx));
        for (int j = 0; j < 4; j++) /* float(s - 10000) keeps ~3 decimals of s */
            assert_true(fabs(s[j] / sum - c.probs[i * 4 + j]) < 2e-3);
    }
    free(c.qkv), free(c.ctx), free(c.probs), free(c.w);
}

/* ---------------------------------------------------------------------------------------------
 * Softmax cross-entropy against a table, in blocks */

typedef struct ce_ctx {
    int N, V, C, block;
    const int32_t *target;
    float scale;
    float *h, *E, *scratch;
} ce_ctx;

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    return c->scale * ps_nn_softmax_ce(NULL, NULL, c->h, c->E, c->target, c->N, c->V, c->C, 0.0f,
                                       c->block, c->scratch);
}

static void test_softmax_ce_grad(void **state)
{
    (void)state;
    static const int32_t target[] = {3, 0, 10, 5, 5, 1, 7};
    ce_ctx c = {.N = 7, .V = 11, .C = 6, .block = 3, .target = target};
    c.scale = 1.0f / (float)c.N;
    c.h = fvec((size_t)c.N * c.C), c.E = fvec((size_t)c.V * c.C);
    c.scratch = fvec(ps_nn_softmax_ce_scratch_floats(c.block, c.V));
    fill_uniform(c.h, (size_t)c.N * c.C, -1.5f, 1.5f, 51);
    fill_uniform(c.E, (size_t)c.V * c.C, -1.5f, 1.5f, 52);

    /* loss against double */
    double ref = 0;
    for (int n = 0; n < c.N; n++) {
        double l[16], mx = -1e300, s = 0;
        for (int v = 0; v < c.V; v++) {
            l[v] = 0;
            for (int k = 0; k < c.C; k++)
                l[v] += (double)c.h[n * c.C + k] * c.E[v * c.C + k];
            mx = fmax(mx, l[v]);
        }
        for (int v = 0; v < c.V; v++)
            s += exp(l[v] - mx);
        ref += log(s) + mx - l[target[n]];
    }
    double got = ps_nn_softmax_ce(NULL, NULL, c.h, c.E, c.target, c.N, c.V, c.C, 0.0f, c.block, c.scratch);
    assert_true(fabs(got - ref) < 1e-5 * fabs(ref));

    float *dh = fvec((size_t)c.N * c.C), *dE = fvec((size_t)c.V * c.C);
    double got2 = ps_nn_softmax_ce(dh, dE, c.h, c.E, c.target, c.N, c.V, c.C, c.scale, c.block, c.scratch);
    assert_true(got2 == got);
    expect_fd("softmax-ce dh", ce_loss, &c, c.h, dh, (size_t)c.N * c.C);
    expect_fd("softmax-ce dE", ce_loss, &c, c.E, dE, (size_t)c.V * c.C);

    /* the block size changes nothing but rounding */
    float *dh1 = fvec((size_t)c.N * c.C), *dE1 = fvec((size_t)c.V * c.C);
    float *s1 = fvec(ps_nn_softmax_ce_scratch_floats(64, c.V));
    double got3 = ps_nn_softmax_ce(dh1, dE1, c.h, c.E, c.target, c.N, c.V, c.C, c.scale, 64, s1);
    assert_true(fabs(got3 - got) < 1e-6 * fabs(got));
    for (int i = 0; i < c.N * c.C; i++)
        assert_true(fabs(dh1[i] - dh[i]) < 1e-6);
    for (int i = 0; i < c.V * c.C; i++)
        assert_true(fabs(dE1[i] - dE[i]) < 1e-6);
    free(dh1), free(dE1), free(s1);
    free(dh), free(dE), free(c.h), free(c.E), free(c.scratch);
}

/* Large logits: max subtraction keeps it finite. */
static void test_softmax_ce_stable(void **state)
{
    (void)state;
    float h[2] = {100.0f, -100.0f}, E[3 * 2] = {1, 0, 0, 1, 2, 0};
    int32_t t[1] = {1};
    float dh[2] = {0, 0}, dE[6] = {0};
    float *scratch = fvec(ps_nn_softmax_ce_scratch_floats(4, 3));
    /* logits 100, -100, 200: loss = logsumexp - (-100) ~ 300 */
    double l = ps_nn_softmax_ce(dh, dE, h, E, t, 1, 3, 2, 1.0f, 4, scratch);
    assert_true(isfinite(l) && fabs(l - 300.0) < 1e-3);
    for (int i = 0; i < 2; i++)
        assert_true(isfinite(dh[i]));
    free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_grad),
        cmocka_unit_test(test_checker_catches_wrong_gradient),
        cmocka_unit_test(test_layernorm_grad),
        cmocka_unit_test(test_embedding_grad),
        cmocka_unit_test(test_gelu_grad),
        cmocka_unit_test(test_attention_grad),
        cmocka_unit_test(test_attention_all_padding_row),
        cmocka_unit_test(test_softmax_ce_grad),
        cmocka_unit_test(test_softmax_ce_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
