/* SASRec against the PyTorch golden fixture written by tests/reference/sasrec_reference.py
 * (RecBole-flavoured model, n_items 30, d 16, 2 heads, 2 layers, d_ff 32, L 8, batch 4, eval mode).
 *
 * Tolerance: for each compared tensor T (hidden states, user vectors, loss, every parameter
 * gradient, the 10 Adam-step losses), max |ours - ref| <= 1e-4 * max |ref|. Exception: a tensor
 * whose reference is analytically zero (the attention key biases: softmax ignores a per-row
 * shift) holds only float noise, so it is compared with the absolute bound 1e-4 * (largest
 * gradient entry of the whole model) instead. */
#include "testutil.h"

#include "popsteer/safetensors.h"
#include "popsteer/sasrec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE POPSTEER_SOURCE_DIR "/tests/fixtures/sasrec_golden.safetensors"
#define REL_TOL 1e-4

typedef struct golden {
    ps_st_file f;
    ps_sasrec *m;
    ps_sasrec_ws *ws;
    int B, L, d;
    int32_t *seq, *target;
} golden;

static int meta_int(const ps_st_file *f, const char *key)
{
    const char *v = ps_st_meta(f, key);
    if (!v)
        fail_msg("fixture metadata %s missing", key);
    return atoi(v);
}

static float *read_f32(const golden *g, const char *name, int ndim, const int64_t *shape, size_t n)
{
    ps_error err;
    float *p = calloc(n, sizeof *p);
    assert_non_null(p);
    if (ps_st_read_f32(&g->f, name, ndim, shape, p, &err))
        fail_msg("%s", err.msg);
    return p;
}

static int setup(void **state)
{
    ps_error err;
    golden *g = calloc(1, sizeof *g);
    assert_non_null(g);
    if (ps_st_open(&g->f, FIXTURE, &err))
        fail_msg("cannot open the golden fixture: %s", err.msg);
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, meta_int(&g->f, "n_items"));
    cfg.d = meta_int(&g->f, "hidden_size");
    cfg.n_heads = meta_int(&g->f, "n_heads");
    cfg.n_layers = meta_int(&g->f, "n_layers");
    cfg.d_ff = meta_int(&g->f, "inner_size");
    cfg.max_len = meta_int(&g->f, "max_seq_length");
    cfg.ln_eps = strtof(ps_st_meta(&g->f, "layer_norm_eps"), NULL);
    cfg.hidden_dropout = 0.0f; /* the reference runs in eval mode throughout */
    cfg.attn_dropout = 0.0f;
    g->B = meta_int(&g->f, "batch");
    g->L = cfg.max_len;
    g->d = cfg.d;
    if (ps_sasrec_create(&g->m, &cfg, &err) || ps_sasrec_alloc_training(g->m, &err) ||
        ps_sasrec_ws_create(&g->ws, g->m, g->B, 1, &err))
        fail_msg("%s", err.msg);

    /* parameters by RecBole name: this is also how checkpoint loading maps names to memory */
    for (int i = 0; i < g->m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &g->m->tensors[i];
        char name[PS_SASREC_NAME_MAX + 8];
        snprintf(name, sizeof name, "param.%s", t->name);
        if (ps_st_read_f32(&g->f, name, t->ndim, t->shape, g->m->params + t->offset, &err))
            fail_msg("%s", err.msg);
    }
    int64_t shape[2] = {g->B, g->L};
    g->seq = calloc((size_t)g->B * g->L, sizeof *g->seq);
    g->target = calloc((size_t)g->B * g->L, sizeof *g->target);
    assert_non_null(g->seq);
    assert_non_null(g->target);
    if (ps_st_read_i32(&g->f, "input.seq", 2, shape, g->seq, &err) ||
        ps_st_read_i32(&g->f, "input.target", 2, shape, g->target, &err))
        fail_msg("%s", err.msg);
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    golden *g = *state;
    ps_sasrec_ws_free(g->ws);
    ps_sasrec_free(g->m);
    ps_st_close(&g->f);
    free(g->seq);
    free(g->target);
    free(g);
    return 0;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* max |a - ref| / scale; scale = max |ref| unless given */
static double compare(const char *what, const float *a, const float *ref, size_t n, double scale)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)a[i] - ref[i]));
    if (scale <= 0)
        scale = max_abs(ref, n);
    double rel = e / scale;
    printf("  %-58s max|err| %.3g, / %.3g = %.3g\n", what, e, scale, rel);
    return rel;
}

static void test_forward_hidden_and_user_vectors(void **state)
{
    golden *g = *state;
    ps_error err;
    const size_t nh = (size_t)g->B * g->L * g->d;
    assert_int_equal(ps_sasrec_forward(g->m, g->ws, g->seq, g->B, 0, 0, 0, &err), PS_OK);
    int64_t hs[3] = {g->B, g->L, g->d};
    float *ref = read_f32(g, "out.hidden", 3, hs, nh);
    assert_true(compare("out.hidden [B,L,d], every position incl. padding", ps_sasrec_ws_hidden(g->ws), ref,
                        nh, 0) <= REL_TOL);
    free(ref);

    int32_t *len = calloc((size_t)g->B, sizeof *len);
    float *uv = calloc((size_t)g->B * g->d, sizeof *uv);
    assert_non_null(len);
    assert_non_null(uv);
    for (int b = 0; b < g->B; b++)
        for (int l = 0; l < g->L; l++)
            len[b] += g->seq[b * g->L + l] != 0;
    assert_int_equal(ps_sasrec_user_vectors(g->m, g->ws, g->seq, len, g->B, uv, &err), PS_OK);
    int64_t us[2] = {g->B, g->d};
    ref = read_f32(g, "out.user_vectors", 2, us, (size_t)g->B * g->d);
    assert_true(compare("out.user_vectors [B,d]", uv, ref, (size_t)g->B * g->d, 0) <= REL_TOL);
    free(ref);
    free(uv);
    free(len);
}

static void test_loss_and_gradients(void **state)
{
    golden *g = *state;
    ps_error err;
    ps_sasrec_loss_stats st;
    ps_sasrec_zero_grad(g->m);
    assert_int_equal(ps_sasrec_forward(g->m, g->ws, g->seq, g->B, 0, 0, 0, &err), PS_OK);
    assert_int_equal(ps_sasrec_backward(g->m, g->ws, g->target, 0, &st, &err), PS_OK);
    int64_t one = 1;
    float *ref = read_f32(g, "out.loss", 1, &one, 1);
    assert_true(compare("out.loss", &st.loss, ref, 1, 0) <= REL_TOL);
    free(ref);

    /* the whole-model gradient scale, for the analytically-zero tensors */
    double gscale = 0;
    float **refs = calloc((size_t)g->m->n_tensors, sizeof *refs);
    assert_non_null(refs);
    for (int i = 0; i < g->m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &g->m->tensors[i];
        char name[PS_SASREC_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", t->name);
        refs[i] = read_f32(g, name, t->ndim, t->shape, t->numel);
        gscale = fmax(gscale, max_abs(refs[i], t->numel));
    }
    double worst = 0;
    for (int i = 0; i < g->m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &g->m->tensors[i];
        int zero_grad = strstr(t->name, "key.bias") != NULL;
        char what[PS_SASREC_NAME_MAX + 32];
        snprintf(what, sizeof what, "grad.%s%s", t->name, zero_grad ? " (abs)" : "");
        double r = compare(what, g->m->grads + t->offset, refs[i], t->numel, zero_grad ? gscale : 0);
        worst = fmax(worst, r);
        free(refs[i]);
    }
    free(refs);
    printf("  worst gradient error %.3g (tolerance %.0e)\n", worst, REL_TOL);
    assert_true(worst <= REL_TOL);
}

/* Ten Adam steps (lr 1e-3) on the same batch from the fixture's parameters; the loss before each
 * step must follow PyTorch's. Runs last: it changes the parameters. */
static void test_adam_losses(void **state)
{
    golden *g = *state;
    ps_error err;
    int64_t ten = 10;
    float *ref = read_f32(g, "adam.losses", 1, &ten, 10);
    float ours[10];
    g->m->adam_t = 0;
    memset(g->m->adam_m, 0, g->m->n_params * sizeof(float));
    memset(g->m->adam_v, 0, g->m->n_params * sizeof(float));
    for (int s = 0; s < 10; s++) {
        ps_sasrec_loss_stats st;
        ps_sasrec_zero_grad(g->m);
        assert_int_equal(ps_sasrec_forward(g->m, g->ws, g->seq, g->B, 0, 0, (uint64_t)s, &err), PS_OK);
        assert_int_equal(ps_sasrec_backward(g->m, g->ws, g->target, 0, &st, &err), PS_OK);
        ours[s] = st.loss;
        assert_int_equal(ps_sasrec_adam_step(g->m, 1e-3f, &err), PS_OK);
    }
    printf("  losses: ours %.7f .. %.7f, PyTorch %.7f .. %.7f\n", (double)ours[0], (double)ours[9],
           (double)ref[0], (double)ref[9]);
    assert_true(ours[9] < ours[0]);
    assert_true(compare("adam.losses [10]", ours, ref, 10, 0) <= REL_TOL);
    free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_hidden_and_user_vectors),
        cmocka_unit_test(test_loss_and_gradients),
        cmocka_unit_test(test_adam_losses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
