/* The cancel hooks of SASRec and SAE training (ps_train_options.cancel,
 * ps_sae_train_options.cancel; what the Python package turns Ctrl-C into): asked before every
 * batch, a nonzero answer stops training before that batch with a message naming epoch and batch,
 * and the model keeps the best parameters so far (the initial ones before any validation). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "popsteer/dataset.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/train.h"

typedef struct counter {
    int asked, batches, stop_at; /* cancel answers 1 from its stop_at-th call on */
} counter;

static int cancel_at(void *ctx)
{
    counter *c = ctx;
    return ++c->asked >= c->stop_at;
}

static void count_batch(void *ctx, int epoch, int64_t batch, int64_t n_batches, double loss, int64_t done, double s)
{
    (void)epoch, (void)batch, (void)n_batches, (void)loss, (void)done, (void)s;
    ((counter *)ctx)->batches++;
}

static void test_sasrec_cancel(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
    tu_tiny_stack(dir, &ds, &m, &sae);
    float *init = malloc(m->n_params * sizeof *init);
    assert_non_null(init);
    ps_sasrec_init_weights(m, 42);
    memcpy(init, m->params, m->n_params * sizeof *init);

    ps_train_options o;
    ps_train_options_init(&o);
    o.batch_targets = 64; /* many batches per epoch */
    o.max_epochs = 2;
    o.min_epochs = 0;
    counter c = {0, 0, 3};
    o.cancel = cancel_at;
    o.on_batch = count_batch;
    o.cb_ctx = &c;
    ps_train_result res;
    ps_error err = {{0}};
    assert_int_equal(ps_sasrec_train(m, &ds, &o, &res, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "training interrupted at epoch 1, batch 3"));
    assert_int_equal(c.batches, 2); /* the third batch never ran */
    assert_memory_equal(m->params, init, m->n_params * sizeof *init); /* no validation yet: the initial weights */

    /* without the hook (or with one that never fires) the same training runs to the end */
    c = (counter){0, 0, 1 << 30};
    assert_int_equal(ps_sasrec_train(m, &ds, &o, &res, &err), PS_OK);
    assert_int_equal(res.epochs, 2);
    assert_int_equal(c.asked, c.batches);
    free(init);
    ps_sae_free(sae);
    ps_sasrec_free(m);
    ps_dataset_free(&ds);
    tu_rmtree(dir);
    free(dir);
}

static void count_sae_batch(const ps_sae_batch_info *b, void *ctx)
{
    (void)b;
    ((counter *)ctx)->batches++;
}

static void test_sae_cancel(void **state)
{
    (void)state;
    ps_sae_config cfg;
    ps_sae_config_init(&cfg, 8, 4);
    cfg.k = 4;
    cfg.k_aux = 8;
    ps_error err = {{0}};
    ps_sae *sae = ps_sae_create(&cfg, &err);
    assert_non_null(sae);
    ps_sae_init(sae, 1);
    enum { N = 256 };
    float *X = malloc((size_t)N * 8 * sizeof *X);
    assert_non_null(X);
    uint64_t s = 12345;
    for (int i = 0; i < N * 8; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        X[i] = (float)((s >> 40) % 1000) / 1000.0f - 0.5f;
    }
    float *init = malloc(sae->n_params * sizeof *init);
    assert_non_null(init);
    memcpy(init, sae->params, sae->n_params * sizeof *init);
    ps_sae_train_options o;
    ps_sae_train_options_init(&o);
    assert_null(o.cancel);
    o.batch_size = 32;
    o.max_epochs = 3;
    o.cancel = cancel_at;
    counter c = {0, 0, 2};
    ps_sae_callbacks cb = {.batch = count_sae_batch};
    assert_int_equal(ps_sae_train(sae, X, N, NULL, 0, &o, &cb, &c, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "SAE training interrupted at epoch 1, batch 2"));
    assert_int_equal(c.batches, 1);

    /* stopped in epoch 2: the parameters are epoch 1's, the best so far */
    ps_sae_init(sae, 1);
    c = (counter){0, 0, N / 32 + 2};
    assert_int_equal(ps_sae_train(sae, X, N, NULL, 0, &o, &cb, &c, NULL, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "epoch 2, batch 2"));
    assert_int_equal(c.batches, N / 32 + 1);
    assert_memory_not_equal(sae->params, init, sae->n_params * sizeof *init);
    float *stopped = malloc(sae->n_params * sizeof *stopped);
    assert_non_null(stopped);
    memcpy(stopped, sae->params, sae->n_params * sizeof *stopped);
    ps_sae_init(sae, 1);
    o.cancel = NULL;
    o.max_epochs = 1;
    assert_int_equal(ps_sae_train(sae, X, N, NULL, 0, &o, NULL, NULL, NULL, &err), PS_OK);
    assert_memory_equal(sae->params, stopped, sae->n_params * sizeof *stopped);
    free(stopped);
    free(init);
    free(X);
    ps_sae_free(sae);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sasrec_cancel),
        cmocka_unit_test(test_sae_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
