/* The TopK SAE against the PyTorch reference (tests/reference/sae_reference.py): pre-activations,
 * TopK codes, reconstruction, FVU, AuxK, loss and the four parameter gradients of
 * tests/fixtures/sae_golden.safetensors (d_in 16, 64 latents, k 4, k_aux 8, batch 12, 20 dead).
 *
 * Tolerance: for every tensor, max |C − PyTorch| <= 1e-5 * max |PyTorch| over that tensor (scalars:
 * relative 1e-5). Both sides are float32; the observed errors are printed. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/safetensors.h"
#include "popsteer/sae.h"

#define GOLDEN POPSTEER_SOURCE_DIR "/tests/fixtures/sae_golden.safetensors"
#define TOL 1e-5

enum { D = 16, M = 64, K = 4, KAUX = 8, B = 12 };

typedef struct golden {
    ps_st_file f;
    ps_sae *sae;
    float h[B * D];
    uint8_t dead[M];
} golden;

static float *read_tensor(const ps_st_file *f, const char *name, int ndim, const int64_t *shape,
                          size_t n)
{
    ps_error err;
    float *p = calloc(n, sizeof *p);
    assert_non_null(p);
    if (ps_st_read_f32(f, name, ndim, shape, p, &err) != PS_OK)
        fail_msg("%s", err.msg);
    return p;
}

static int setup(void **state)
{
    golden *g = calloc(1, sizeof *g);
    assert_non_null(g);
    ps_error err;
    if (ps_st_open(&g->f, GOLDEN, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(ps_st_meta(&g->f, "d_in"), "16");
    assert_string_equal(ps_st_meta(&g->f, "n_latents"), "64");
    assert_string_equal(ps_st_meta(&g->f, "k"), "4");
    assert_string_equal(ps_st_meta(&g->f, "k_aux"), "8");
    assert_string_equal(ps_st_meta(&g->f, "batch"), "12");

    ps_sae_config c;
    ps_sae_config_init(&c, D, M / D);
    c.k = K;
    c.k_aux = KAUX;
    c.aux_coef = 0.5f;
    g->sae = ps_sae_create(&c, &err);
    if (!g->sae)
        fail_msg("%s", err.msg);
    static const char *names[PS_SAE_N_TENSORS] = { "param.W_enc", "param.b_enc", "param.W_dec",
                                                    "param.b_dec" };
    const int64_t shapes[PS_SAE_N_TENSORS][2] = { { M, D }, { M, 0 }, { M, D }, { D, 0 } };
    const int ndims[PS_SAE_N_TENSORS] = { 2, 1, 2, 1 };
    for (int t = 0; t < PS_SAE_N_TENSORS; t++)
        if (ps_st_read_f32(&g->f, names[t], ndims[t], shapes[t], g->sae->params + g->sae->offset[t],
                           &err) != PS_OK)
            fail_msg("%s", err.msg);
    const int64_t hs[2] = { B, D }, ds[1] = { M };
    if (ps_st_read_f32(&g->f, "input.h", 2, hs, g->h, &err) != PS_OK)
        fail_msg("%s", err.msg);
    int32_t dead[M];
    if (ps_st_read_i32(&g->f, "input.dead", 1, ds, dead, &err) != PS_OK)
        fail_msg("%s", err.msg);
    int n_dead = 0;
    for (int j = 0; j < M; j++) {
        g->dead[j] = dead[j] != 0;
        n_dead += g->dead[j];
    }
    assert_int_equal(n_dead, 20);
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    golden *g = *state;
    ps_sae_free(g->sae);
    ps_st_close(&g->f);
    free(g);
    return 0;
}

/* max |got − want| <= TOL * max |want|; prints the observed relative error. */
static void check_close(const char *what, const float *got, const float *want, size_t n)
{
    double err = 0.0, scale = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (e > err || isnan(e)) {
            err = isnan(e) ? INFINITY : e;
            worst = i;
        }
        if (fabs(want[i]) > scale)
            scale = fabs(want[i]);
    }
    if (scale == 0.0)
        scale = 1.0;
    printf("  %-12s max abs err %.3g, relative to max |ref| %.3g: %.3g\n", what, err, scale,
           err / scale);
    if (!(err <= TOL * scale))
        fail_msg("%s: element %zu is %.9g, PyTorch %.9g (max err %.3g > %.3g)", what, worst,
                 (double)got[worst], (double)want[worst], err, TOL * scale);
}

static void check_scalar(const char *what, double got, const ps_st_file *f, const char *name)
{
    const int64_t s1[1] = { 1 };
    float *want = read_tensor(f, name, 1, s1, 1);
    float g = (float)got;
    check_close(what, &g, want, 1);
    free(want);
}

static void test_forward(void **state)
{
    golden *g = *state;
    const int64_t s_pre[2] = { B, M }, s_rec[2] = { B, D };
    float pre[B * M], val[B * K], z[B * M], recon[B * D];
    int32_t idx[B * K];
    ps_sae_encode_pre(g->sae, g->h, B, pre);
    float *want = read_tensor(&g->f, "out.pre", 2, s_pre, B * M);
    check_close("out.pre", pre, want, B * M);
    free(want);

    ps_sae_topk(g->sae, pre, B, idx, val);
    memset(z, 0, sizeof z);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < K; s++)
            z[b * M + idx[b * K + s]] = val[b * K + s];
    want = read_tensor(&g->f, "out.z", 2, s_pre, B * M);
    check_close("out.z", z, want, B * M);
    /* and the same support: every selected entry is non-zero in PyTorch's z */
    for (int b = 0; b < B; b++)
        for (int s = 0; s < K; s++)
            assert_true(want[b * M + idx[b * K + s]] > 0.0f);
    free(want);

    ps_sae_decode(g->sae, idx, val, B, recon);
    want = read_tensor(&g->f, "out.recon", 2, s_rec, B * D);
    check_close("out.recon", recon, want, B * D);
    free(want);

    void *scratch = malloc(ps_sae_scratch_bytes(g->sae, B));
    assert_non_null(scratch);
    float recon2[B * D];
    ps_sae_reconstruct(g->sae, g->h, B, recon2, scratch);
    assert_memory_equal(recon, recon2, sizeof recon);
    free(scratch);
}

static void test_loss_and_gradients(void **state)
{
    golden *g = *state;
    ps_error err;
    if (ps_sae_alloc_grads(g->sae, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_sae_workspace *ws = ps_sae_workspace_new(g->sae, B, &err);
    if (!ws)
        fail_msg("%s", err.msg);
    ps_sae_zero_grads(g->sae);
    ps_sae_batch_loss L;
    int64_t fires[M] = { 0 };
    if (ps_sae_forward_backward(g->sae, ws, g->h, B, g->dead, fires, 1, &L, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(L.n_dead, 20);
    check_scalar("out.fvu", L.fvu, &g->f, "out.fvu");
    check_scalar("out.auxk", L.auxk, &g->f, "out.auxk");
    check_scalar("out.loss", L.loss, &g->f, "out.loss");
    int64_t total = 0;
    for (int j = 0; j < M; j++)
        total += fires[j];
    assert_int_equal(total, B * K); /* the fixture has 4 positive values in every row */

    static const char *names[PS_SAE_N_TENSORS] = { "grad.W_enc", "grad.b_enc", "grad.W_dec",
                                                    "grad.b_dec" };
    const int64_t shapes[PS_SAE_N_TENSORS][2] = { { M, D }, { M, 0 }, { M, D }, { D, 0 } };
    const int ndims[PS_SAE_N_TENSORS] = { 2, 1, 2, 1 };
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        float *want = read_tensor(&g->f, names[t], ndims[t], shapes[t], g->sae->size[t]);
        check_close(names[t], g->sae->grads + g->sae->offset[t], want, g->sae->size[t]);
        free(want);
    }

    /* backward accumulates: a second pass doubles every gradient (up to rounding) */
    const size_t n = g->sae->n_params;
    float *twice = malloc(n * sizeof(float));
    assert_non_null(twice);
    for (size_t i = 0; i < n; i++)
        twice[i] = 2.0f * g->sae->grads[i];
    if (ps_sae_forward_backward(g->sae, ws, g->h, B, g->dead, NULL, 1, &L, &err) != PS_OK)
        fail_msg("%s", err.msg);
    check_close("accumulated", g->sae->grads, twice, n);
    free(twice);
    ps_sae_workspace_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_loss_and_gradients),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
