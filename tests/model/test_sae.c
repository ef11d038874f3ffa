/* TopK SAE: configuration, initialisation, TopK selection (ties, fewer than k positive values),
 * sparse decode, finite-difference gradient checks of the full loss (FVU + AuxK with fewer dead
 * latents than k_aux), training on synthetic low-rank data, determinism, and safetensors files. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/safetensors.h"
#include "popsteer/sae.h"

/* ---------------------------------------------------------------------------------------------
 * helpers */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unif(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s)
{
    double u1 = rng_unif(s) + 1e-12, u2 = rng_unif(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static ps_sae *make_sae(int d, int m, int k, int k_aux, float aux_coef)
{
    ps_sae_config c;
    ps_sae_config_init(&c, d, 1);
    c.n_latents = m;
    c.k = k;
    c.k_aux = k_aux;
    c.aux_coef = aux_coef;
    ps_error err;
    ps_sae *sae = ps_sae_create(&c, &err);
    if (!sae)
        fail_msg("%s", err.msg);
    return sae;
}

/* ---------------------------------------------------------------------------------------------
 * configuration and initialisation */

static void expect_invalid(const ps_sae_config *c, const char *needle)
{
    ps_error err;
    assert_int_equal(ps_sae_config_validate(c, &err), PS_ERR);
    if (!strstr(err.msg, needle))
        fail_msg("message \"%s\" does not mention \"%s\"", err.msg, needle);
    assert_null(ps_sae_create(c, &err));
}

static void test_config(void **state)
{
    (void)state;
    ps_sae_config c;
    ps_sae_config_init(&c, PS_SAE_DEFAULT_D_IN, PS_SAE_DEFAULT_SCALE);
    assert_int_equal(c.d_in, 64);
    assert_int_equal(c.n_latents, 4096);
    assert_int_equal(c.k, 32);
    assert_int_equal(c.k_aux, 128);
    assert_true(c.aux_coef == 0.5f);
    ps_error err;
    assert_int_equal(ps_sae_config_validate(&c, &err), PS_OK);

    ps_sae_config b = c;
    b.d_in = 0;
    expect_invalid(&b, "d_in is 0");
    b = c;
    b.k = 0;
    expect_invalid(&b, "k is 0");
    b = c;
    b.k = 4097;
    expect_invalid(&b, "k is 4097, must be between 1 and n_latents (4096)");
    b = c;
    b.k_aux = 5000;
    expect_invalid(&b, "k_aux is 5000");
    b = c;
    b.aux_coef = -1.0f;
    expect_invalid(&b, "aux_coef");
    b = c;
    b.aux_coef = NAN;
    expect_invalid(&b, "aux_coef");
    ps_sae_config_init(&b, 1 << 20, 1 << 20); /* overflows int */
    expect_invalid(&b, "n_latents");
}

static void test_init(void **state)
{
    (void)state;
    ps_sae *a = make_sae(16, 256, 8, 32, 0.5f), *b = make_sae(16, 256, 8, 32, 0.5f);
    ps_sae_init(a, 7);
    ps_sae_init(b, 7);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    ps_sae_init(b, 8);
    assert_memory_not_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_int_equal(a->n_params, 2 * 256 * 16 + 256 + 16);
    assert_string_equal(ps_sae_tensor_name(PS_SAE_W_DEC), "W_dec");
    ps_sae_tensors p = ps_sae_view(a, a->params);
    assert_ptr_equal(p.b_dec, a->params + a->n_params - 16);
    const float bound = 0.25f; /* 1/sqrt(16) */
    double mean = 0.0;
    for (int i = 0; i < 256 * 16; i++) {
        assert_true(p.W_enc[i] >= -bound && p.W_enc[i] <= bound);
        mean += p.W_enc[i];
    }
    assert_true(fabs(mean / 4096) < 0.01); /* uniform around 0 */
    for (int j = 0; j < 256; j++) {
        double nd = 0.0, dot = 0.0, ne = 0.0;
        for (int i = 0; i < 16; i++) {
            nd += (double)p.W_dec[j * 16 + i] * p.W_dec[j * 16 + i];
            ne += (double)p.W_enc[j * 16 + i] * p.W_enc[j * 16 + i];
            dot += (double)p.W_dec[j * 16 + i] * p.W_enc[j * 16 + i];
        }
        assert_true(fabs(nd - 1.0) < 1e-6);         /* unit rows */
        assert_true(fabs(dot - sqrt(ne)) < 1e-6);   /* same direction as W_enc */
        assert_true(p.b_enc[j] == 0.0f);
    }
    for (int i = 0; i < 16; i++)
        assert_true(p.b_dec[i] == 0.0f);
    ps_sae_free(a);
    ps_sae_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * TopK, encode, decode */

/* The documented order by a full sort: value of relu desc, smaller index first. */
typedef struct vi {
    float v;
    int32_t i;
} vi;

static int cmp_vi(const void *a, const void *b)
{
    const vi *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void reference_topk(const float *row, int m, int k, int32_t *idx, float *val)
{
    vi *all = malloc((size_t)m * sizeof *all);
    assert_non_null(all);
    for (int j = 0; j < m; j++)
        all[j] = (vi){ row[j] > 0 ? row[j] : 0, j };
    qsort(all, (size_t)m, sizeof *all, cmp_vi);
    for (int s = 0; s < k; s++) {
        idx[s] = all[s].i;
        val[s] = all[s].v;
    }
    free(all);
}

/* ROWS rows of m values; row r has about r/9 of its entries positive (row 0 none). tied: values
 * from a handful of levels (ties everywhere), else continuous. */
static void check_topk_rows(int m, int k, int tied, uint64_t *s)
{
    enum { ROWS = 9 };
    ps_sae *sae = make_sae(2, m, k, 1, 0.5f);
    float *pre = malloc(sizeof(float) * ROWS * m), *val = malloc(sizeof(float) * ROWS * k);
    int32_t *idx = malloc(sizeof(int32_t) * ROWS * k);
    float *rv = malloc(sizeof(float) * k);
    int32_t *ri = malloc(sizeof(int32_t) * k);
    assert_true(pre && val && idx && rv && ri);
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < m; j++) {
            int pos = (int)(rng_next(s) % 9) < r;
            float mag = tied ? (float)(1 + rng_next(s) % 4) * 0.5f : (float)rng_unif(s) + 1e-3f;
            pre[r * m + j] = pos ? mag : -(float)(rng_next(s) % 3) * 0.25f;
        }
    ps_sae_topk(sae, pre, ROWS, idx, val);
    for (int r = 0; r < ROWS; r++) {
        reference_topk(pre + r * m, m, k, ri, rv);
        if (memcmp(idx + r * k, ri, sizeof(int32_t) * k) || memcmp(val + r * k, rv, sizeof(float) * k))
            fail_msg("m %d k %d tied %d row %d: TopK differs from the full sort", m, k, tied, r);
    }
    free(pre);
    free(val);
    free(idx);
    free(rv);
    free(ri);
    ps_sae_free(sae);
}

static void test_topk_ties_and_few_positive(void **state)
{
    (void)state;
    /* explicit case: ties at 2.0 keep the smaller indices; only 3 positive values for k = 6, so the
     * zero slots take the smallest indices whose ReLU is 0 (here 0, 2, 4: negatives count as 0) */
    {
        ps_sae *sae = make_sae(2, 8, 6, 2, 0.5f);
        const float pre[8] = { -1.0f, 2.0f, 0.0f, 2.0f, -3.0f, 5.0f, -0.5f, -2.0f };
        int32_t idx[6];
        float val[6];
        ps_sae_topk(sae, pre, 1, idx, val);
        const int32_t want_idx[6] = { 5, 1, 3, 0, 2, 4 };
        const float want_val[6] = { 5, 2, 2, 0, 0, 0 };
        assert_memory_equal(idx, want_idx, sizeof idx);
        assert_memory_equal(val, want_val, sizeof val);
        ps_sae_free(sae);
    }
    /* random rows, m not a multiple of the 16-wide blocks or large, k from 1 to m, against a
     * full sort; covers both the block-threshold path and the plain heap (T <= 0) */
    uint64_t s = 12345;
    const int ms[4] = { 37, 100, 300, 4096 };
    for (int mi = 0; mi < 4; mi++) {
        const int m = ms[mi], step = m > 1000 ? 97 : 13;
        for (int k = 1; k <= m; k += (k < 8 ? 1 : step))
            for (int tied = 0; tied < 2; tied++)
                check_topk_rows(m, k, tied, &s);
    }
}

static void test_encode_decode(void **state)
{
    (void)state;
    enum { D = 3, M = 5, K = 2 };
    ps_sae *sae = make_sae(D, M, K, 2, 0.5f);
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
    /* W_dec row j = (j, 10 j, 100 j) */
    for (int j = 0; j < M; j++)
        for (int i = 0; i < D; i++)
            p.W_dec[j * D + i] = (float)(j * (i == 0 ? 1 : i == 1 ? 10 : 100));
    p.b_dec[0] = 0.5f;
    p.b_dec[1] = -1.0f;
    p.b_dec[2] = 2.0f;
    const int32_t idx[2 * K] = { 3, 1, 4, 0 };
    const float val[2 * K] = { 2.0f, 0.5f, 0.0f, 0.0f }; /* row 1: an all-zero code */
    float out[2 * D];
    ps_sae_decode(sae, idx, val, 2, out);
    const float want[2 * D] = { 0.5f + 6.5f, -1.0f + 65.0f, 2.0f + 650.0f, 0.5f, -1.0f, 2.0f };
    assert_memory_equal(out, want, sizeof out);

    /* encode_pre = (h − b_dec) W_encᵀ + b_enc, against a double loop */
    for (int j = 0; j < M; j++) {
        p.b_enc[j] = 0.1f * (float)j - 0.2f;
        for (int i = 0; i < D; i++)
            p.W_enc[j * D + i] = (float)((j + 1) * (i + 2) % 7) * 0.25f - 0.7f;
    }
    const float h[2 * D] = { 1.0f, -2.0f, 0.5f, 3.0f, 0.25f, -1.0f };
    float pre[2 * M];
    ps_sae_encode_pre(sae, h, 2, pre);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < M; j++) {
            double s = p.b_enc[j];
            for (int i = 0; i < D; i++)
                s += ((double)h[b * D + i] - p.b_dec[i]) * p.W_enc[j * D + i];
            assert_true(fabs(s - pre[b * M + j]) < 1e-5);
        }
    ps_sae_free(sae);
}

/* The prepared encoder (blocks of rows, our GEMM, TopK while in cache) selects what encode_pre +
 * topk select, for a batch of several blocks and a partial one, with and without a bias shift
 * (steering): same latents, values within float rounding of the unfused chain; and a row's bits
 * do not depend on the batch it is in. */
static void test_encoder_topk(void **state)
{
    (void)state;
    enum { D = 16, M = 512, K = 8, B = 100 };
    ps_sae *sae = make_sae(D, M, K, 16, 0.5f);
    ps_sae_init(sae, 3);
    uint64_t s = 99;
    float *h = malloc(sizeof(float) * B * D), *pre = malloc(sizeof(float) * B * M);
    float *val = malloc(sizeof(float) * B * K), *rv = malloc(sizeof(float) * B * K);
    int32_t *idx = malloc(sizeof(int32_t) * B * K), *ri = malloc(sizeof(int32_t) * B * K);
    assert_true(h && pre && val && rv && ri && idx);
    for (int i = 0; i < B * D; i++)
        h[i] = (float)rng_unif(&s) * 2.0f - 1.0f;
    ps_error err;
    ps_sae_encoder enc;
    if (ps_sae_encoder_init(&enc, sae, &err) != PS_OK)
        fail_msg("%s", err.msg);
    for (int shifted = 0; shifted < 2; shifted++) {
        ps_sae_encoder_reset_bias(&enc);
        ps_sae_encode_pre(sae, h, B, pre);
        if (shifted) /* push some latents up and down, as a steering plan would */
            for (int j = 0; j < M; j += 7) {
                const float shift = (j % 2 ? 0.3f : -0.3f);
                enc.bias[j] += shift;
                for (int b = 0; b < B; b++)
                    pre[b * M + j] += shift;
            }
        ps_sae_topk(sae, pre, B, ri, rv);
        ps_sae_encoder_topk(&enc, h, B, idx, val);
        for (int q = 0; q < B * K; q++) {
            if (idx[q] != ri[q])
                fail_msg("shifted %d slot %d: latent %d, unfused %d", shifted, q, idx[q], ri[q]);
            assert_true(fabsf(val[q] - rv[q]) <= 1e-5f * (1.0f + fabsf(rv[q])));
        }
        /* the dense encoder gives the rows the fused one selects from, bit for bit */
        ps_sae_encoder_pre(&enc, h, B, pre);
        ps_sae_topk(sae, pre, B, ri, rv);
        assert_memory_equal(ri, idx, sizeof(int32_t) * B * K);
        assert_memory_equal(rv, val, sizeof(float) * B * K);
        /* row 77 alone: the same bits as inside the batch */
        int32_t one_idx[K];
        float one_val[K];
        ps_sae_encoder_topk(&enc, h + 77 * D, 1, one_idx, one_val);
        assert_memory_equal(one_idx, idx + 77 * K, sizeof one_idx);
        tu_assert_rows_equal(one_val, val + 77 * K, K);
    }
    ps_sae_encoder_topk(&enc, h, 0, idx, val); /* no rows: nothing happens */
    ps_sae_encoder_free(&enc);
    free(h), free(pre), free(val), free(rv), free(idx), free(ri);
    ps_sae_free(sae);
}

/* ---------------------------------------------------------------------------------------------
 * Finite-difference gradient checks.
 *
 * (1) Through the library itself, on the FVU (no dead latents, so the loss is exactly FVU and the
 *     detached AuxK residual plays no role): float central differences, step 1e-3. Within a fixed
 *     TopK selection the FVU is a quadratic function of any single parameter, so central
 *     differences are exact up to float rounding; entries whose step changes the selection are
 *     skipped (and counted). Tolerance: |analytic − fd| <= 5e-4 * max|fd| of the tensor + 5e-4|fd|
 *     (float rounding of the loss divided by the step gives ~5e-5).
 * (2) The full loss FVU + 0.5 AuxK with 5 dead latents (< k_aux = 8, so the factor 5/8 applies),
 *     against an independent double-precision implementation written here from SPEC §3 with the
 *     residual e frozen at its unperturbed value (e is detached). Every entry of every tensor,
 *     step 1e-4, central differences in double. Tolerance: |analytic − fd| <= 1e-5 * max|fd| of
 *     the tensor. A gradient with AuxK missing, or with one entry off by 0.1%, must fail it. */

enum { GD = 8, GM = 32, GK = 4, GKA = 8, GB = 10, GDEAD = 5 };

typedef struct ref_params {
    double We[GM * GD], be[GM], Wd[GM * GD], bd[GD];
} ref_params;

static double *ref_tensor(ref_params *r, int t)
{
    return t == PS_SAE_W_ENC ? r->We : t == PS_SAE_B_ENC ? r->be : t == PS_SAE_W_DEC ? r->Wd : r->bd;
}

/* Top n of relu(pre) among cand (ascending), order value desc then index asc, by selection. */
static void ref_select(const double *pre, const int *cand, int nc, int n, int *out)
{
    unsigned char used[GM] = { 0 };
    for (int s = 0; s < n; s++) {
        int best = -1;
        double bv = -1.0;
        for (int c = 0; c < nc; c++) {
            int j = cand[c];
            double v = pre[j] > 0 ? pre[j] : 0;
            if (!used[j] && v > bv) {
                bv = v;
                best = j;
            }
        }
        used[best] = 1;
        out[s] = best;
    }
}

/* The SPEC §3 loss in double. e_in (may be NULL) replaces the residual h − ĥ in AuxK; e_out (may be
 * NULL) receives h − ĥ. sel (may be NULL) receives every selected latent * 2 + (pre > 0), so a
 * caller can tell whether a perturbation changed the selection. */
static double ref_loss(const ref_params *r, const float *h, const uint8_t *dead, double coef,
                       const double *e_in, double *e_out, int *sel, double *fvu, double *auxk)
{
    int all[GM], dl[GM], nd = 0;
    for (int j = 0; j < GM; j++) {
        all[j] = j;
        if (dead[j])
            dl[nd++] = j;
    }
    const int ka = nd < GKA ? nd : GKA;
    double mean[GD] = { 0 }, var = 0.0, sse = 0.0, aux = 0.0;
    for (int b = 0; b < GB; b++)
        for (int i = 0; i < GD; i++)
            mean[i] += h[b * GD + i] / (double)GB;
    for (int b = 0; b < GB; b++)
        for (int i = 0; i < GD; i++)
            var += (h[b * GD + i] - mean[i]) * (h[b * GD + i] - mean[i]);
    for (int b = 0; b < GB; b++) {
        double pre[GM], rec[GD], eh[GD] = { 0 };
        for (int j = 0; j < GM; j++) {
            pre[j] = r->be[j];
            for (int i = 0; i < GD; i++)
                pre[j] += (h[b * GD + i] - r->bd[i]) * r->We[j * GD + i];
        }
        int top[GM], atop[GKA];
        ref_select(pre, all, GM, GK, top);
        ref_select(pre, dl, nd, ka, atop);
        for (int i = 0; i < GD; i++)
            rec[i] = r->bd[i];
        for (int s = 0; s < GK; s++) {
            double z = pre[top[s]] > 0 ? pre[top[s]] : 0;
            for (int i = 0; i < GD; i++)
                rec[i] += z * r->Wd[top[s] * GD + i];
            if (sel)
                *sel++ = top[s] * 2 + (pre[top[s]] > 0);
        }
        for (int s = 0; s < ka; s++) {
            double z = pre[atop[s]] > 0 ? pre[atop[s]] : 0;
            for (int i = 0; i < GD; i++)
                eh[i] += z * r->Wd[atop[s] * GD + i];
            if (sel)
                *sel++ = atop[s] * 2 + (pre[atop[s]] > 0);
        }
        for (int i = 0; i < GD; i++) {
            double e = h[b * GD + i] - rec[i];
            sse += e * e;
            if (e_out)
                e_out[b * GD + i] = e;
            double target = e_in ? e_in[b * GD + i] : e;
            aux += (eh[i] - target) * (eh[i] - target);
        }
    }
    *fvu = sse / var;
    *auxk = nd ? (nd < GKA ? (double)nd / GKA : 1.0) * aux / var : 0.0;
    return *fvu + coef * *auxk;
}

/* Random model (biases moved off zero), inputs with a per-column offset, and 5 dead latents. */
static ps_sae *grad_problem(float *h, uint8_t *dead, uint64_t seed, float coef)
{
    ps_sae *sae = make_sae(GD, GM, GK, GKA, coef);
    ps_sae_init(sae, seed);
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
    uint64_t s = seed * 2654435761u + 1;
    for (int j = 0; j < GM; j++)
        p.b_enc[j] = (float)(0.05 * rng_normal(&s));
    for (int i = 0; i < GD; i++)
        p.b_dec[i] = (float)(0.1 * rng_normal(&s));
    double offset[GD];
    for (int i = 0; i < GD; i++)
        offset[i] = 0.5 * rng_normal(&s);
    for (int b = 0; b < GB; b++)
        for (int i = 0; i < GD; i++)
            h[b * GD + i] = (float)(rng_normal(&s) + offset[i]);
    memset(dead, 0, GM);
    for (int n = 0; n < GDEAD;) {
        int j = (int)(rng_next(&s) % GM);
        if (!dead[j]) {
            dead[j] = 1;
            n++;
        }
    }
    return sae;
}

static void to_ref(const ps_sae *sae, ref_params *r)
{
    for (int t = 0; t < PS_SAE_N_TENSORS; t++)
        for (size_t i = 0; i < sae->size[t]; i++)
            ref_tensor(r, t)[i] = sae->params[sae->offset[t] + i];
}

static void analytic_grads(ps_sae *sae, const float *h, const uint8_t *dead, ps_sae_batch_loss *L)
{
    ps_error err;
    if (ps_sae_alloc_grads(sae, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_sae_workspace *ws = ps_sae_workspace_new(sae, GB, &err);
    if (!ws)
        fail_msg("%s", err.msg);
    ps_sae_zero_grads(sae);
    if (ps_sae_forward_backward(sae, ws, h, GB, dead, NULL, 1, L, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_sae_workspace_free(ws);
}

/* Numerical gradient of the double reference for every parameter; e frozen at e0. */
static void fd_full(const ref_params *r0, const float *h, const uint8_t *dead, const double *e0,
                    double *fd, int *skipped)
{
    const double eps = 1e-4;
    int sel0[GB * (GK + GKA)], sel[GB * (GK + GKA)];
    memset(sel0, 0xff, sizeof sel0); /* rows hold fewer than GKA AuxK slots */
    memset(sel, 0xff, sizeof sel);
    double f, a;
    ref_loss(r0, h, dead, 0.5, e0, NULL, sel0, &f, &a);
    size_t n = 0;
    *skipped = 0;
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        size_t sz = t == PS_SAE_W_ENC || t == PS_SAE_W_DEC ? GM * GD : t == PS_SAE_B_ENC ? GM : GD;
        for (size_t i = 0; i < sz; i++, n++) {
            ref_params r = *r0;
            ref_tensor(&r, t)[i] += eps;
            double lp = ref_loss(&r, h, dead, 0.5, e0, NULL, sel, &f, &a);
            int same = !memcmp(sel, sel0, sizeof sel);
            ref_tensor(&r, t)[i] -= 2 * eps;
            double lm = ref_loss(&r, h, dead, 0.5, e0, NULL, sel, &f, &a);
            same = same && !memcmp(sel, sel0, sizeof sel);
            fd[n] = same ? (lp - lm) / (2 * eps) : NAN;
            *skipped += !same;
        }
    }
}

/* Largest |analytic − fd| relative to max|fd| over one tensor (skipped entries ignored). */
static double tensor_error(const float *an, const double *fd, size_t n)
{
    double err = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(fd[i]))
            continue;
        err = fmax(err, fabs(an[i] - fd[i]));
        scale = fmax(scale, fabs(fd[i]));
    }
    return err / (scale > 0 ? scale : 1.0);
}

#define FULL_TOL 1e-5

static void test_gradcheck_full_loss(void **state)
{
    (void)state;
    float h[GB * GD];
    uint8_t dead[GM];
    ps_sae *sae = grad_problem(h, dead, 3, 0.5f);
    ref_params r;
    to_ref(sae, &r);
    double e0[GB * GD], rf, ra;
    double rl = ref_loss(&r, h, dead, 0.5, NULL, e0, NULL, &rf, &ra);
    ps_sae_batch_loss L;
    analytic_grads(sae, h, dead, &L);
    printf("  loss %.9g (ref %.9g), fvu %.9g (ref %.9g), auxk %.9g (ref %.9g), %d dead\n", L.loss,
           rl, L.fvu, rf, L.auxk, ra, L.n_dead);
    assert_int_equal(L.n_dead, GDEAD);
    assert_true(ra > 0.01); /* AuxK is really exercised */
    assert_true(fabs(L.fvu - rf) < 1e-5 * rf);
    assert_true(fabs(L.auxk - ra) < 1e-5 * ra);
    assert_true(fabs(L.loss - rl) < 1e-5 * rl);

    double *fd = malloc(sizeof(double) * sae->n_params);
    assert_non_null(fd);
    int skipped;
    fd_full(&r, h, dead, e0, fd, &skipped);
    printf("  %d of %zu entries skipped (selection changed)\n", skipped, sae->n_params);
    assert_true(skipped < (int)sae->n_params / 20);
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        double e = tensor_error(sae->grads + sae->offset[t], fd + sae->offset[t], sae->size[t]);
        printf("  %-6s max |analytic - fd| / max |fd| = %.3g (tolerance %.0e)\n",
               ps_sae_tensor_name(t), e, FULL_TOL);
        assert_true(e <= FULL_TOL);
    }

    /* Sparsity: rows of latents selected in no row (TopK or AuxK) get exactly zero gradient. */
    int sel[GB * (GK + GKA)];
    memset(sel, 0xff, sizeof sel);
    unsigned char used[GM] = { 0 };
    double f, a;
    ref_loss(&r, h, dead, 0.5, NULL, NULL, sel, &f, &a);
    for (int q = 0; q < GB * (GK + GKA); q++)
        if (sel[q] >= 0)
            used[sel[q] / 2] = 1;
    ps_sae_tensors g = ps_sae_view(sae, sae->grads);
    int unused = 0;
    for (int j = 0; j < GM; j++) {
        if (used[j])
            continue;
        unused++;
        for (int i = 0; i < GD; i++)
            assert_true(g.W_enc[j * GD + i] == 0.0f && g.W_dec[j * GD + i] == 0.0f);
        assert_true(g.b_enc[j] == 0.0f);
    }
    assert_true(unused > 0);

    /* The check can fail: (a) the gradient without AuxK (aux_coef 0) is rejected for every tensor;
     * (b) scaling the largest entry of a tensor by 1.001 is rejected. */
    ps_sae *noaux = grad_problem(h, dead, 3, 0.0f);
    analytic_grads(noaux, h, dead, &L);
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        double e = tensor_error(noaux->grads + noaux->offset[t], fd + sae->offset[t], sae->size[t]);
        printf("  without AuxK: %-6s error %.3g\n", ps_sae_tensor_name(t), e);
        assert_true(e > 100 * FULL_TOL);
    }
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        float *gt = sae->grads + sae->offset[t];
        size_t arg = 0;
        for (size_t i = 1; i < sae->size[t]; i++)
            if (fabsf(gt[i]) > fabsf(gt[arg]))
                arg = i;
        float keep = gt[arg];
        gt[arg] *= 1.001f;
        assert_true(tensor_error(gt, fd + sae->offset[t], sae->size[t]) > FULL_TOL);
        gt[arg] = keep;
    }
    ps_sae_free(noaux);
    free(fd);
    ps_sae_free(sae);
}

/* AuxK selection with ties: pre-activations from a handful of exact values (W_enc has one non-zero
 * column, h's first component is -1, 0 or 1), 20 dead latents for k_aux 8, so rows have ties at
 * the k_aux boundary and some rows fewer than 8 positive dead values. A different choice among tied
 * latents decodes other W_dec rows and changes AuxK, so matching the reference's AuxK (ties to the
 * smaller latent index) checks the selection itself. */
static void test_auxk_selection_ties(void **state)
{
    (void)state;
    float h[GB * GD];
    uint8_t dead[GM];
    ps_sae *sae = grad_problem(h, dead, 17, 0.5f);
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
    memset(p.W_enc, 0, sizeof(float) * GM * GD);
    for (int j = 0; j < GM; j++) {
        p.W_enc[j * GD] = (float)((j * 7) % 5 - 2) * 0.5f;
        p.b_enc[j] = (float)((j * 3) % 4) * 0.25f - 0.25f;
    }
    p.b_dec[0] = 0.0f;
    for (int b = 0; b < GB; b++)
        h[b * GD] = (float)(b % 3 - 1);
    memset(dead, 0, GM);
    for (int j = 0; j < GM; j += 3)
        dead[j] = 1;
    for (int j = 1; j < GM && j < 20; j += 3)
        dead[j] = 1; /* 11 + 7 = 18 dead */
    dead[2] = dead[5] = 1;
    ref_params r;
    to_ref(sae, &r);
    double rf, ra;
    double rl = ref_loss(&r, h, dead, 0.5, NULL, NULL, NULL, &rf, &ra);
    ps_sae_batch_loss L;
    analytic_grads(sae, h, dead, &L);
    printf("  %d dead: auxk %.9g (ref %.9g), fvu %.9g (ref %.9g)\n", L.n_dead, L.auxk, ra, L.fvu, rf);
    assert_int_equal(L.n_dead, 20);
    assert_true(ra > 0.0);
    assert_true(fabs(L.fvu - rf) <= 1e-5 * rf);
    assert_true(fabs(L.auxk - ra) <= 1e-5 * ra);
    assert_true(fabs(L.loss - rl) <= 1e-5 * rl);
    ps_sae_free(sae);
}

static void test_gradcheck_fvu_through_library(void **state)
{
    (void)state;
    float h[GB * GD];
    uint8_t dead[GM];
    ps_sae *sae = grad_problem(h, dead, 11, 0.5f);
    ps_sae_batch_loss L;
    analytic_grads(sae, h, NULL, &L); /* nothing dead: loss = FVU */
    assert_true(L.auxk == 0.0 && L.loss == L.fvu);
    ps_error err;
    ps_sae_workspace *ws = ps_sae_workspace_new(sae, GB, &err);
    if (!ws)
        fail_msg("%s", err.msg);
    const float eps = 1e-3f;
    float pre[GB * GM], val0[GB * GK], val[GB * GK];
    int32_t idx0[GB * GK], idx[GB * GK];
    ps_sae_encode_pre(sae, h, GB, pre);
    ps_sae_topk(sae, pre, GB, idx0, val0);
    int skipped = 0, checked = 0;
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        const size_t n = sae->size[t];
        double *fd = malloc(sizeof(double) * n);
        assert_non_null(fd);
        for (size_t i = 0; i < n; i++) {
            float *w = sae->params + sae->offset[t] + i;
            const float keep = *w;
            double l[2];
            int same = 1;
            for (int side = 0; side < 2; side++) {
                *w = keep + (side ? -eps : eps);
                ps_sae_batch_loss Lp;
                ps_sae_encode_pre(sae, h, GB, pre);
                ps_sae_topk(sae, pre, GB, idx, val);
                same = same && !memcmp(idx, idx0, sizeof idx);
                for (int q = 0; q < GB * GK; q++)
                    same = same && ((val[q] > 0) == (val0[q] > 0));
                if (ps_sae_forward_backward(sae, ws, h, GB, NULL, NULL, 0, &Lp, &err) != PS_OK)
                    fail_msg("%s", err.msg);
                l[side] = Lp.loss;
            }
            *w = keep;
            fd[i] = same ? (l[0] - l[1]) / (2.0 * eps) : NAN;
            skipped += !same;
            checked += same;
        }
        const float *an = sae->grads + sae->offset[t];
        double scale = 0.0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(fd[i]))
                scale = fmax(scale, fabs(fd[i]));
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            if (isnan(fd[i]))
                continue;
            double e = fabs(an[i] - fd[i]), tol = 5e-4 * scale + 5e-4 * fabs(fd[i]);
            worst = fmax(worst, e / (scale > 0 ? scale : 1));
            if (!(e <= tol))
                fail_msg("%s[%zu]: analytic %.7g, finite difference %.7g", ps_sae_tensor_name(t), i,
                         (double)an[i], fd[i]);
        }
        printf("  %-6s max |analytic - fd| / max |fd| = %.3g\n", ps_sae_tensor_name(t), worst);
        free(fd);
    }
    printf("  %d entries checked, %d skipped (selection changed)\n", checked, skipped);
    assert_true(skipped < checked / 10);
    ps_sae_workspace_free(ws);
    ps_sae_free(sae);
}

/* Data parallelism's premise (sae_train.c under mpirun): a batch cut into parts, each run through
 * ps_sae_forward_backward_part with the whole batch's variance, gives the whole batch's loss terms
 * and gradients when the parts are added (up to float rounding), with AuxK on. */
static void test_batch_parts_add_up(void **state)
{
    (void)state;
    float h[GB * GD];
    uint8_t dead[GM];
    ps_error err;
    ps_sae *sae = grad_problem(h, dead, 11, 0.5f);
    ps_sae_batch_loss whole, part;
    analytic_grads(sae, h, dead, &whole);
    float *g_whole = malloc(sae->n_params * sizeof *g_whole);
    assert_non_null(g_whole);
    memcpy(g_whole, sae->grads, sae->n_params * sizeof *g_whole);
    ps_sae_workspace *ws = ps_sae_workspace_new(sae, GB, &err);
    assert_non_null(ws);
    const double var = ps_sae_batch_variance(ws, h, GB);
    assert_true(var == whole.var); /* the same bits */
    ps_sae_zero_grads(sae);
    const int cut[] = {0, GB / 3, GB / 3 + 1, GB}; /* a part of one row too */
    double sse = 0, fvu = 0, auxk = 0;
    for (int p = 0; p < 3; p++) {
        assert_int_equal(ps_sae_forward_backward_part(sae, ws, h + cut[p] * GD, cut[p + 1] - cut[p], var, dead, NULL,
                                                      1, &part, &err), PS_OK);
        sse += part.sse, fvu += part.fvu, auxk += part.auxk;
    }
    /* our kernels give each row the same bits in any batching; a library backend may round a row
     * differently by batch size (ps_nn_gemm_rows_exact), so there the sums agree to float rounding */
    const double tol = tu_gemm_rows_exact() ? 1e-9 : 1e-5, gtol = tu_gemm_rows_exact() ? 1e-6 : 1e-5;
    assert_true(fabs(sse - whole.sse) <= tol * whole.sse);
    assert_true(fabs(fvu - whole.fvu) <= tol * whole.fvu);
    assert_true(whole.auxk > 0 && fabs(auxk - whole.auxk) <= tol * whole.auxk);
    double dd = 0, gg = 0;
    for (size_t i = 0; i < sae->n_params; i++) {
        double d = (double)sae->grads[i] - g_whole[i];
        dd += d * d, gg += (double)g_whole[i] * g_whole[i];
    }
    assert_true(gg > 0 && sqrt(dd / gg) <= gtol);
    assert_int_equal(ps_sae_forward_backward_part(sae, ws, h, GB, 0.0, dead, NULL, 1, &part, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "variance"));
    ps_sae_workspace_free(ws);
    free(g_whole);
    ps_sae_free(sae);
}

static void test_forward_errors(void **state)
{
    (void)state;
    ps_sae *sae = make_sae(4, 16, 2, 4, 0.5f);
    ps_sae_init(sae, 1);
    ps_error err;
    ps_sae_workspace *ws = ps_sae_workspace_new(sae, 8, &err);
    assert_non_null(ws);
    float h[8 * 4];
    for (int i = 0; i < 8 * 4; i++)
        h[i] = (float)(i % 4); /* 8 identical rows */
    ps_sae_batch_loss L;
    /* without a gradient buffer */
    assert_int_equal(ps_sae_forward_backward(sae, ws, h, 8, NULL, NULL, 1, &L, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "gradient buffer"));
    assert_int_equal(ps_sae_alloc_grads(sae, &err), PS_OK);
    assert_int_equal(ps_sae_forward_backward(sae, ws, h, 8, NULL, NULL, 1, &L, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "identical"));
    /* forward only: reported, not an error */
    assert_int_equal(ps_sae_forward_backward(sae, ws, h, 8, NULL, NULL, 0, &L, &err), PS_OK);
    assert_true(isnan(L.fvu) && L.var == 0.0);
    assert_int_equal(ps_sae_forward_backward(sae, ws, h, 9, NULL, NULL, 0, &L, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "between 1 and 8"));
    ps_sae *other = make_sae(4, 32, 2, 4, 0.5f);
    assert_int_equal(ps_sae_forward_backward(other, ws, h, 8, NULL, NULL, 0, &L, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "another model shape"));
    assert_int_equal(ps_sae_fvu(sae, h, 8, 0, &L.fvu, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "variance 0"));
    ps_sae_free(other);
    ps_sae_workspace_free(ws);
    ps_sae_free(sae);
}

/* ---------------------------------------------------------------------------------------------
 * Training */

enum { TD = 16, TRANK = 4, TM = 128, TK = 8, TKA = 32, TN = 3000, TNV = 600 };

/* h = offset + U c + 0.5 noise with U [TD x TRANK] fixed and c ~ N(0, 1): rank-4 structure. */
static float *low_rank_data(int N, uint64_t seed)
{
    uint64_t s = 99; /* the structure is shared by train and validation */
    double U[TD * TRANK], off[TD];
    for (int i = 0; i < TD * TRANK; i++)
        U[i] = rng_normal(&s);
    for (int i = 0; i < TD; i++)
        off[i] = 2.0 * rng_normal(&s);
    s = seed;
    float *X = malloc(sizeof(float) * (size_t)N * TD);
    assert_non_null(X);
    for (int n = 0; n < N; n++) {
        double c[TRANK];
        for (int r = 0; r < TRANK; r++)
            c[r] = rng_normal(&s);
        for (int i = 0; i < TD; i++) {
            double v = off[i] + 0.5 * rng_normal(&s);
            for (int r = 0; r < TRANK; r++)
                v += U[i * TRANK + r] * c[r];
            X[n * TD + i] = (float)v;
        }
    }
    return X;
}

typedef struct epoch_log {
    int n;
    ps_sae_epoch_info e[200];
    int64_t batches;
} epoch_log;

static int log_epoch(const ps_sae_epoch_info *info, void *ctx)
{
    epoch_log *lg = ctx;
    if (lg->n < 200)
        lg->e[lg->n++] = *info;
    return 0;
}

static void log_batch(const ps_sae_batch_info *info, void *ctx)
{
    epoch_log *lg = ctx;
    assert_true(info->batch < info->n_batches);
    assert_true(isfinite(info->loss));
    lg->batches++;
}

static ps_sae *train_small(const float *X, const float *Xv, int max_epochs, uint64_t seed,
                           epoch_log *lg, ps_sae_train_result *res)
{
    ps_sae *sae = make_sae(TD, TM, TK, TKA, 0.5f);
    ps_sae_init(sae, 5);
    ps_sae_train_options o;
    ps_sae_train_options_init(&o);
    o.batch_size = 256;
    o.max_epochs = max_epochs;
    o.patience = 3;
    o.lr = 3e-3f;
    o.seed = seed;
    ps_sae_callbacks cb = { log_epoch, log_batch };
    ps_error err;
    if (ps_sae_train(sae, X, TN, Xv, TNV, &o, &cb, lg, res, &err) != PS_OK)
        fail_msg("%s", err.msg);
    return sae;
}

static void test_training(void **state)
{
    (void)state;
    float *X = low_rank_data(TN, 1), *Xv = low_rank_data(TNV, 2);
    epoch_log *lg = calloc(1, sizeof *lg);
    assert_non_null(lg);
    ps_sae_train_result res;
    ps_sae *sae = train_small(X, Xv, 150, 7, lg, &res);
    ps_error err;
    double fvu0;
    {
        ps_sae *fresh = make_sae(TD, TM, TK, TKA, 0.5f);
        ps_sae_init(fresh, 5);
        assert_int_equal(ps_sae_fvu(fresh, Xv, TNV, 0, &fvu0, &err), PS_OK);
        ps_sae_free(fresh);
    }
    int best = 0;
    for (int i = 0; i < lg->n; i++) {
        const ps_sae_epoch_info *e = &lg->e[i];
        assert_int_equal(e->epoch, i + 1);
        assert_true(e->seconds >= 0.0);
        assert_int_equal(e->is_best, e->val_fvu < lg->e[best].val_fvu || i == 0);
        if (e->val_fvu < lg->e[best].val_fvu)
            best = i;
    }
    for (int i = 0; i < lg->n; i++) {
        const ps_sae_epoch_info *e = &lg->e[i];
        if (i < 3 || i >= lg->n - 4 || i == best)
            printf("  epoch %3d train fvu %.4f auxk %.4f dead %.3f val fvu %.4f%s\n", e->epoch,
                   e->train_fvu, e->train_auxk, e->dead_fraction, e->val_fvu, e->is_best ? " *" : "");
    }
    printf("  initial val fvu %.4f; %d epochs, best %d (val fvu %.4f), stopped early %d\n", fvu0,
           res.epochs_run, res.best_epoch, res.best_val_fvu, res.stopped_early);
    assert_int_equal(lg->e[0].train_auxk, 0.0); /* nothing is dead in epoch 1 */
    assert_int_equal(res.epochs_run, lg->n);
    assert_int_equal(lg->batches, (int64_t)lg->n * ((TN + 255) / 256));
    assert_int_equal(res.best_epoch, best + 1);
    assert_true(res.best_val_fvu == lg->e[best].val_fvu);
    assert_true(res.best_val_fvu < 0.1 && fvu0 > 0.5);
    assert_true(res.stopped_early && res.epochs_run > res.best_epoch);
    /* the kept parameters are the best epoch's, not the last one's */
    double fvu; /* evaluated in the training's batches of 256: bit-identical */
    assert_int_equal(ps_sae_fvu(sae, Xv, TNV, 256, &fvu, &err), PS_OK);
    assert_true(fvu == res.best_val_fvu);
    assert_true(lg->e[lg->n - 1].val_fvu > fvu);
    assert_int_equal(sae->trained_epochs, res.best_epoch);
    assert_true(sae->val_fvu == fvu);

    /* ps_sae_fvu = Σ‖ĥ − h‖² / Σ‖h − mean‖² over the whole set, via the inference path */
    float *rec = malloc(sizeof(float) * TNV * TD);
    void *scratch = malloc(ps_sae_scratch_bytes(sae, TNV));
    assert_non_null(rec);
    assert_non_null(scratch);
    ps_sae_reconstruct(sae, Xv, TNV, rec, scratch);
    double mean[TD] = { 0 }, num = 0, den = 0;
    for (int n = 0; n < TNV; n++)
        for (int i = 0; i < TD; i++)
            mean[i] += Xv[n * TD + i] / (double)TNV;
    for (int n = 0; n < TNV; n++)
        for (int i = 0; i < TD; i++) {
            num += (rec[n * TD + i] - (double)Xv[n * TD + i]) * (rec[n * TD + i] - Xv[n * TD + i]);
            den += (Xv[n * TD + i] - mean[i]) * (Xv[n * TD + i] - mean[i]);
        }
    assert_true(fabs(num / den - fvu) < 1e-4 * fvu + 1e-6);
    double fvu_small_batches;
    assert_int_equal(ps_sae_fvu(sae, Xv, TNV, 7, &fvu_small_batches, &err), PS_OK);
    assert_true(fabs(fvu_small_batches - fvu) < 1e-9);
    free(rec);
    free(scratch);
    ps_sae_free(sae);
    free(lg);
    free(X);
    free(Xv);
}

static void test_training_determinism(void **state)
{
    (void)state;
    float *X = low_rank_data(TN, 1), *Xv = low_rank_data(TNV, 2);
    epoch_log *lg = calloc(1, sizeof *lg);
    assert_non_null(lg);
    ps_sae_train_result r1, r2, r3, r4;
    const int threads = omp_get_max_threads();
    ps_sae *a = train_small(X, Xv, 6, 7, lg, &r1);
    ps_sae *b = train_small(X, Xv, 6, 7, lg, &r2);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_memory_equal(a->adam_m, b->adam_m, a->n_params * sizeof(float));
    assert_true(r1.best_val_fvu == r2.best_val_fvu);
    /* one thread gives the same bits as several */
    omp_set_num_threads(1);
    ps_sae *c = train_small(X, Xv, 6, 7, lg, &r3);
    omp_set_num_threads(threads);
    printf("  %d threads vs 1 thread: %s\n", threads,
           memcmp(a->params, c->params, a->n_params * sizeof(float)) ? "DIFFERENT" : "identical");
    assert_memory_equal(a->params, c->params, a->n_params * sizeof(float));
    /* another shuffling seed gives another model */
    ps_sae *d = train_small(X, Xv, 6, 8, lg, &r4);
    assert_memory_not_equal(a->params, d->params, a->n_params * sizeof(float));
    ps_sae_free(a);
    ps_sae_free(b);
    ps_sae_free(c);
    ps_sae_free(d);
    free(lg);
    free(X);
    free(Xv);
}

static void test_training_errors(void **state)
{
    (void)state;
    ps_sae *sae = make_sae(4, 16, 2, 4, 0.5f);
    ps_sae_init(sae, 1);
    float X[10 * 4];
    for (int i = 0; i < 40; i++)
        X[i] = (float)((i * 7) % 11);
    ps_sae_train_options o;
    ps_sae_train_options_init(&o);
    ps_error err;
    o.batch_size = 1;
    assert_int_equal(ps_sae_train(sae, X, 10, NULL, 0, &o, NULL, NULL, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "batch size 1"));
    ps_sae_train_options_init(&o);
    o.lr = -1.0f;
    assert_int_equal(ps_sae_train(sae, X, 10, NULL, 0, &o, NULL, NULL, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "learning rate"));
    ps_sae_train_options_init(&o);
    assert_int_equal(ps_sae_train(sae, X, 10, X, 1, &o, NULL, NULL, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "validation"));
    X[13] = NAN;
    assert_int_equal(ps_sae_train(sae, X, 10, NULL, 0, &o, NULL, NULL, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "training vector 3, component 1 is NaN"));
    X[13] = 1.0f;
    /* no validation set: the train FVU decides; 10 rows in batches of 4 -> 4, 4, 2 */
    o.batch_size = 4;
    o.max_epochs = 3;
    ps_sae_train_result res;
    assert_int_equal(ps_sae_train(sae, X, 10, NULL, 0, &o, NULL, NULL, &res, &err), PS_OK);
    assert_int_equal(res.epochs_run, 3);
    assert_true(isfinite(res.best_val_fvu));
    ps_sae_free(sae);
}

/* ---------------------------------------------------------------------------------------------
 * Files */

static void test_save_load(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "sae.safetensors");
    ps_sae *sae = make_sae(8, 48, 3, 6, 0.25f);
    ps_sae_init(sae, 21);
    sae->params[sae->offset[PS_SAE_B_DEC] + 2] = 0.125f;
    sae->trained_epochs = 12;
    sae->val_fvu = 0.1234567890123;
    ps_error err;
    if (ps_sae_save(sae, path, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary left behind */
    ps_sae *back = ps_sae_load(path, &err);
    if (!back)
        fail_msg("%s", err.msg);
    assert_memory_equal(&back->cfg, &sae->cfg, sizeof sae->cfg);
    assert_int_equal(back->n_params, sae->n_params);
    assert_memory_equal(back->params, sae->params, sae->n_params * sizeof(float));
    assert_int_equal(back->trained_epochs, 12);
    assert_true(back->val_fvu == sae->val_fvu);

    /* the file is plain safetensors with the documented names and metadata */
    ps_st_file f;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    assert_int_equal(f.n_tensors, 4);
    assert_string_equal(f.tensors[0].name, "W_enc");
    assert_string_equal(f.tensors[3].name, "b_dec");
    assert_string_equal(ps_st_meta(&f, "d_in"), "8");
    assert_string_equal(ps_st_meta(&f, "n_latents"), "48");
    assert_string_equal(ps_st_meta(&f, "k"), "3");
    assert_string_equal(ps_st_meta(&f, "k_aux"), "6");
    assert_string_equal(ps_st_meta(&f, "trained_epochs"), "12");
    ps_st_close(&f);

    /* an untrained model has no training record */
    ps_sae_init(sae, 3);
    assert_int_equal(ps_sae_save(sae, path, &err), PS_OK);
    ps_sae_free(back);
    back = ps_sae_load(path, &err);
    assert_non_null(back);
    assert_int_equal(back->trained_epochs, 0);
    assert_true(isnan(back->val_fvu));
    assert_int_equal(ps_sae_save(sae, "/nonexistent-dir/x.safetensors", &err), PS_ERR);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.safetensors"));
    ps_sae_free(back);
    ps_sae_free(sae);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

/* Writes an SAE-like file (d 4, m 8) with one defect selected by `bad`. */
enum { OK_FILE, BAD_SHAPE, NO_TENSOR, NO_META, BAD_META, BAD_CONFIG, NAN_VALUE };

static void write_sae_file(const char *path, int bad)
{
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    assert_non_null(w);
    static float data[64];
    for (int i = 0; i < 64; i++)
        data[i] = 0.01f * (float)i;
    if (bad == NAN_VALUE)
        data[5] = NAN;
    const int64_t We[2] = { 8, 4 }, Wbad[2] = { 8, 5 }, be[1] = { 8 }, bd[1] = { 4 };
    assert_int_equal(ps_st_writer_add(w, "W_enc", PS_DTYPE_F32, 2, bad == BAD_SHAPE ? Wbad : We, data,
                                      &err), PS_OK);
    assert_int_equal(ps_st_writer_add(w, "b_enc", PS_DTYPE_F32, 1, be, data, &err), PS_OK);
    assert_int_equal(ps_st_writer_add(w, "W_dec", PS_DTYPE_F32, 2, We, data, &err), PS_OK);
    if (bad != NO_TENSOR)
        assert_int_equal(ps_st_writer_add(w, "b_dec", PS_DTYPE_F32, 1, bd, data, &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "d_in", "4", &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "n_latents", "8", &err), PS_OK);
    if (bad != NO_META)
        assert_int_equal(ps_st_writer_meta(w, "k", bad == BAD_META ? "2x" : bad == BAD_CONFIG ? "9" : "2",
                                           &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "k_aux", "4", &err), PS_OK);
    if (ps_st_writer_write(w, path, &err) != PS_OK)
        fail_msg("%s", err.msg);
    ps_st_writer_free(w);
}

static void expect_load_error(const char *path, int bad, const char *n1, const char *n2)
{
    write_sae_file(path, bad);
    ps_error err;
    ps_sae *sae = ps_sae_load(path, &err);
    assert_null(sae);
    printf("  %s\n", err.msg);
    if (!strstr(err.msg, path) || !strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
        fail_msg("message \"%s\" should name the file, \"%s\" and \"%s\"", err.msg, n1, n2 ? n2 : "");
}

static void test_load_errors(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "bad.safetensors");
    ps_error err;
    write_sae_file(path, OK_FILE);
    ps_sae *ok = ps_sae_load(path, &err);
    if (!ok)
        fail_msg("%s", err.msg);
    assert_int_equal(ok->cfg.k, 2);
    assert_true(ok->cfg.aux_coef == 0.5f); /* absent: the default */
    ps_sae_free(ok);
    expect_load_error(path, BAD_SHAPE, "W_enc", "expected shape [8, 4], found [8, 5]");
    expect_load_error(path, NO_TENSOR, "b_dec", "not found");
    expect_load_error(path, NO_META, "'k'", NULL);
    expect_load_error(path, BAD_META, "'k'", "2x");
    expect_load_error(path, BAD_CONFIG, "k is 9", NULL);
    expect_load_error(path, NAN_VALUE, "W_enc", "not finite");
    char *missing = tu_path(dir, "missing.safetensors");
    assert_null(ps_sae_load(missing, &err));
    assert_non_null(strstr(err.msg, missing));
    free(missing);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_topk_ties_and_few_positive),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_encoder_topk),
        cmocka_unit_test(test_gradcheck_full_loss),
        cmocka_unit_test(test_auxk_selection_ties),
        cmocka_unit_test(test_gradcheck_fvu_through_library),
        cmocka_unit_test(test_batch_parts_add_up),
        cmocka_unit_test(test_forward_errors),
        cmocka_unit_test(test_training),
        cmocka_unit_test(test_training_determinism),
        cmocka_unit_test(test_training_errors),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
