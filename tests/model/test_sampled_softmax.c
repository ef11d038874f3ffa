/* The sampled softmax with log-Q correction (src/nn/sampled_softmax.c, its use in
 * src/model/sasrec_ws.c): the loss against a direct double-precision evaluation of the formula
 * from the model's hidden states (the reference: corrected logits of the target and the
 * negatives, accidental hits dropped), finite-difference gradients of every parameter tensor
 * through the whole model (tolerances as test_sasrec_grad.c), the proposal's draws, and the
 * trainer: --loss ce unchanged by the new code path, --loss sampled deterministic and resumable. */
#include "testutil.h"

#include "popsteer/sasrec.h"
#include "popsteer/train.h"
#include "model/sasrec_internal.h"
#include "nn/nn.h"
#include "nn/sampled_softmax.h"
#include "../nn/fdcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 3, L = 6, N_ITEMS = 12, N_NEG = 7 };

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
/* with repeats and two accidental hits of row 0's targets (7, 5) */
static const int32_t NEG[N_NEG] = {4, 7, 11, 4, 9, 5, 1};

typedef struct ctx {
    ps_sasrec *m;
    ps_sasrec_ws *ws;
    ps_neg_sampler smp;
} ctx;

static void make(ctx *c, float dropout)
{
    ps_error err;
    ps_sasrec_config cfg;
    ps_sasrec_config_default(&cfg, N_ITEMS);
    cfg.d = 8, cfg.n_heads = 2, cfg.d_ff = 16, cfg.max_len = L;
    cfg.hidden_dropout = cfg.attn_dropout = dropout;
    assert_int_equal(ps_sasrec_create(&c->m, &cfg, &err), PS_OK);
    ps_nn_rng r;
    ps_nn_rng_seed(&r, 77);
    for (size_t i = 0; i < c->m->n_params; i++) /* larger than the init, so every path carries gradient */
        c->m->params[i] = (float)ps_nn_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < c->m->n_tensors; i++)
        if (strstr(c->m->tensors[i].name, "LayerNorm.weight"))
            for (size_t k = 0; k < c->m->tensors[i].numel; k++)
                c->m->params[c->m->tensors[i].offset + k] += 1.0f;
    assert_int_equal(ps_sasrec_alloc_training(c->m, &err), PS_OK);
    assert_int_equal(ps_sasrec_ws_create(&c->ws, c->m, B, 1, &err), PS_OK);
    int64_t counts[N_ITEMS + 1];
    for (int i = 0; i <= N_ITEMS; i++)
        counts[i] = (i * 7) % 5; /* uneven, some zero: the add-one keeps them drawable */
    assert_int_equal(ps_neg_sampler_init(&c->smp, PS_SAMPLER_POP, N_ITEMS, counts, N_NEG, &err), PS_OK);
    assert_int_equal(ps_sasrec_ws_set_sampled(c->ws, NEG, c->smp.logq, N_NEG, &err), PS_OK);
}

static void unmake(ctx *c)
{
    ps_neg_sampler_free(&c->smp);
    ps_sasrec_ws_free(c->ws);
    ps_sasrec_free(c->m);
}

static double model_loss(void *p)
{
    ctx *c = p;
    ps_error err;
    ps_sasrec_loss_stats st;
    assert_int_equal(ps_sasrec_forward(c->m, c->ws, SEQ, B, 1, 17, 3, &err), PS_OK);
    assert_int_equal(ps_sasrec_loss(c->m, c->ws, TARGET, &st, &err), PS_OK);
    return st.loss_sum / (double)st.n_targets;
}

/* The formula, in double, from the hidden states of a forward pass. */
static void test_loss_matches_formula(void **state)
{
    (void)state;
    ctx c;
    make(&c, 0.0f);
    double got = model_loss(&c);
    const float *H = ps_sasrec_ws_hidden(c.ws), *E = c.m->params + ps_sasrec_find(c.m, "item_embedding.weight")->offset;
    const int d = c.m->cfg.d;
    double sum = 0;
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int32_t t = TARGET[b * L + l];
            if (t < 0)
                continue;
            const float *h = H + ((size_t)b * L + l) * d;
            double z[N_NEG + 1], mx = -INFINITY;
            int nz = 0;
            for (int j = -1; j < N_NEG; j++) {
                int32_t item = j < 0 ? t : NEG[j];
                if (j >= 0 && item == t)
                    continue; /* accidental hit */
                double dot = 0;
                for (int k = 0; k < d; k++)
                    dot += (double)h[k] * E[(size_t)item * d + k];
                z[nz] = dot - (double)c.smp.logq[item];
                mx = fmax(mx, z[nz]);
                nz++;
            }
            double se = 0;
            for (int j = 0; j < nz; j++)
                se += exp(z[j] - mx);
            sum += log(se) + mx - z[0];
            n++;
        }
    printf("  sampled loss %.9f, formula %.9f over %d targets\n", got, sum / n, n);
    assert_true(fabs(got - sum / n) < 1e-5 * fmax(1.0, fabs(got)));
    /* and it is not the full softmax's loss */
    assert_int_equal(ps_sasrec_ws_set_sampled(c.ws, NULL, NULL, 0, &(ps_error){{0}}), PS_OK);
    double full = model_loss(&c);
    printf("  full softmax loss %.9f\n", full);
    assert_true(fabs(full - got) > 1e-3);
    unmake(&c);
}

static void fd_all_tensors(float dropout)
{
    ctx c;
    make(&c, dropout);
    ps_error err;
    ps_sasrec_loss_stats st;
    ps_sasrec_zero_grad(c.m);
    assert_int_equal(ps_sasrec_forward(c.m, c.ws, SEQ, B, 1, 17, 3, &err), PS_OK);
    assert_int_equal(ps_sasrec_backward(c.m, c.ws, TARGET, 0, &st, &err), PS_OK);
    float *g = malloc(c.m->n_params * sizeof *g);
    assert_non_null(g);
    memcpy(g, c.m->grads, c.m->n_params * sizeof *g);
    double worst = 0;
    for (int i = 0; i < c.m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &c.m->tensors[i];
        fd_result r = fd_check(model_loss, &c, c.m->params + t->offset, g + t->offset, t->numel, 1e-2f, 1e-3, 12);
        fd_report(t->name, &r);
        worst = fmax(worst, r.max_err);
    }
    /* the item table: every row that is a target or a negative, and only those, gets gradient */
    const ps_sasrec_tensor *emb = ps_sasrec_find(c.m, "item_embedding.weight");
    fd_result r = fd_check(model_loss, &c, c.m->params + emb->offset, g + emb->offset, emb->numel, 1e-2f, 1e-3,
                           emb->numel);
    fd_report("item_embedding.weight (every entry)", &r);
    worst = fmax(worst, r.max_err);
    printf("  dropout %.1f: worst error %.3g (tolerance 2e-2)\n", (double)dropout, worst);
    assert_true(worst < 2e-2);
    free(g);
    unmake(&c);
}

static void test_fd_no_dropout(void **state)
{
    (void)state;
    fd_all_tensors(0.0f);
}

static void test_fd_with_dropout(void **state)
{
    (void)state;
    fd_all_tensors(0.2f);
}

/* Draws: in range, deterministic in (seed, step), different across steps; the popularity
 * proposal's frequencies follow (count + 1) / total. */
static void test_sampler(void **state)
{
    (void)state;
    ps_error err;
    enum { NI = 5, ND = 200000 };
    int64_t counts[NI + 1] = {0, 0, 1, 3, 7, 19}; /* weights 1, 2, 4, 8, 20 of 35 */
    ps_neg_sampler s;
    assert_int_equal(ps_neg_sampler_init(&s, PS_SAMPLER_POP, NI, counts, ND, &err), PS_OK);
    int32_t *a = malloc(ND * sizeof *a), *b = malloc(ND * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    ps_neg_sampler_draw(&s, 42, 7, a);
    ps_neg_sampler_draw(&s, 42, 7, b);
    assert_memory_equal(a, b, ND * sizeof *a);
    ps_neg_sampler_draw(&s, 42, 8, b);
    assert_memory_not_equal(a, b, ND * sizeof *a);
    int64_t hist[NI + 1] = {0};
    for (int j = 0; j < ND; j++) {
        assert_true(a[j] >= 1 && a[j] <= NI);
        hist[a[j]]++;
    }
    const double w[NI + 1] = {0, 1, 2, 4, 8, 20};
    for (int i = 1; i <= NI; i++) {
        double expect = ND * w[i] / 35.0;
        printf("  item %d: %lld draws, expected %.0f; log(N q) %.4f\n", i, (long long)hist[i], expect,
               (double)s.logq[i]);
        assert_true(fabs((double)hist[i] - expect) < 5 * sqrt(expect));
        assert_true(fabs(s.logq[i] - log(ND * w[i] / 35.0)) < 1e-5);
    }
    ps_neg_sampler_free(&s);
    assert_int_equal(ps_neg_sampler_init(&s, PS_SAMPLER_UNIFORM, NI, NULL, 3, &err), PS_OK);
    ps_neg_sampler_draw(&s, 1, 1, a);
    for (int j = 0; j < 3; j++)
        assert_true(a[j] >= 1 && a[j] <= NI);
    ps_neg_sampler_free(&s);
    assert_int_equal(ps_neg_sampler_init(&s, PS_SAMPLER_POP, NI, NULL, 3, &err), PS_ERR);
    assert_int_equal(ps_neg_sampler_init(&s, PS_SAMPLER_UNIFORM, NI, NULL, 0, &err), PS_ERR);
    free(a);
    free(b);
}

/* The trainer: --loss sampled is deterministic (two runs, same bits), differs from --loss ce, and
 * trains (validation NDCG above a random ranking's). */
static void test_trainer(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp(), *data = tu_path(dir, "log.inter");
    assert_int_equal(tu_synth_small(data), 0);
    double ndcg[3];
    const char *loss[3] = {"--loss sampled --negatives 20", "--loss sampled --negatives 20", "--loss ce"};
    for (int k = 0; k < 3; k++) {
        char args[4096], *out = NULL;
        snprintf(args, sizeof args, "train --quiet --json --threads 2 --epochs 3 --data '%s' --out '%s/m%d.safetensors' %s",
                 data, dir, k, loss[k]);
        assert_int_equal(tu_run_cli(args, &out, NULL), 0);
        ndcg[k] = tu_json_number(out, "valid_ndcg@10");
        free(out);
    }
    printf("  valid NDCG@10 after 3 epochs: sampled %.4f, %.4f; full %.4f\n", ndcg[0], ndcg[1], ndcg[2]);
    char *m0 = tu_path(dir, "m0.safetensors"), *m1 = tu_path(dir, "m1.safetensors"), *m2 = tu_path(dir, "m2.safetensors");
    assert_true(tu_same_file(m0, m1));
    assert_false(tu_same_file(m0, m2));
    assert_true(ndcg[0] > 0.05); /* random ranking of 150 items: ~0.02 */
    free(m0);
    free(m1);
    free(m2);
    free(data);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_matches_formula), cmocka_unit_test(test_fd_no_dropout),
        cmocka_unit_test(test_fd_with_dropout), cmocka_unit_test(test_sampler), cmocka_unit_test(test_trainer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
