/* The item-side probe (src/steer/probe_items.c): its table equals a direct double-precision
 * computation of e_ij = W_dec[j] · E_i over the head and tail items; a planted latent whose decoder
 * row points from the tail items' mean embedding to the head items' gets d > 0 and its negation
 * the opposite d; concept sides and the probe's item_side option use the same table. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/dataset.h"
#include "popsteer/popsteer.h"

typedef struct fixture {
    char *dir;
    ps_dataset ds;
    ps_sasrec *m;
    ps_sae *sae;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    tu_tiny_stack(f->dir, &f->ds, &f->m, &f->sae);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ps_sae_free(f->sae);
    ps_sasrec_free(f->m);
    ps_dataset_free(&f->ds);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void assert_close(double got, double want, double rel, const char *what, int j)
{
    if (!(fabs(got - want) <= rel * fmax(1e-3, fabs(want))))
        fail_msg("%s of latent %d: got %.9g, want %.9g", what, j, got, want);
}

/* Mean and population std of latent j's effect over the items of one side, in double. */
static void direct_stats(const fixture *f, const int8_t *side, int8_t want, int j, double *mean, double *sd)
{
    int dim;
    const float *E = ps_sasrec_item_embedding(f->m, &dim);
    const float *W = f->sae->params + f->sae->offset[PS_SAE_W_DEC] + (size_t)j * (size_t)dim;
    double s = 0, s2 = 0;
    int n = 0;
    for (int32_t i = 1; i <= f->ds.n_items; i++) {
        if (side[i] != want)
            continue;
        double e = 0;
        for (int c = 0; c < dim; c++)
            e += (double)W[c] * E[(size_t)i * (size_t)dim + (size_t)c];
        s += e;
        s2 += e * e;
        n++;
    }
    *mean = s / n;
    *sd = sqrt(fmax(s2 / n - *mean * *mean, 0));
}

static void test_matches_direct(void **state)
{
    fixture *f = *state;
    ps_latent_table t;
    ps_error err = {{0}};
    if (ps_item_side_table(f->m, f->sae, &f->ds, NULL, &t, &err) != PS_OK)
        fail_msg("item-side table: %s", err.msg);
    assert_int_equal(t.m, f->sae->cfg.n_latents);
    for (int j = 0; j < t.m; j++) {
        double mp, sp, mu, su;
        direct_stats(f, f->ds.label, +1, j, &mp, &sp);
        direct_stats(f, f->ds.label, -1, j, &mu, &su);
        assert_close(t.mean_pop[j], mp, 1e-4, "head mean", j);
        assert_close(t.std_pop[j], sp, 1e-4, "head std", j);
        assert_close(t.mean_unpop[j], mu, 1e-4, "tail mean", j);
        assert_close(t.std_unpop[j], su, 1e-4, "tail std", j);
        assert_close(t.d[j], (mp - mu) / sqrt((sp * sp + su * su) / 2), 1e-3, "d", j);
        assert_true(t.fire_rate[j] == 0);
    }
    ps_latent_table_free(&t);
}

/* Latent 0's decoder row := mean head embedding − mean tail embedding, latent 1's := its negation:
 * raising latent 0 favours the head items on average (d > 0), latent 1 the tail items (d exactly −d0,
 * since negating a row negates every effect exactly). The probe with item_side = 1 writes the same d;
 * head and tail swapped by a concept's sides flip every sign. */
static void test_planted(void **state)
{
    fixture *f = *state;
    int dim;
    const float *E = ps_sasrec_item_embedding(f->m, &dim);
    float *W = f->sae->params + f->sae->offset[PS_SAE_W_DEC];
    double *dir = calloc((size_t)dim, sizeof *dir);
    int8_t *swapped = calloc((size_t)f->ds.n_items + 1, 1);
    assert_true(dir && swapped);
    int nh = 0, nt = 0;
    for (int32_t i = 1; i <= f->ds.n_items; i++) {
        int8_t l = f->ds.label[i];
        swapped[i] = (int8_t)-l;
        nh += l > 0;
        nt += l < 0;
    }
    for (int32_t i = 1; i <= f->ds.n_items; i++) {
        int8_t l = f->ds.label[i];
        for (int c = 0; c < dim && l; c++)
            dir[c] += (l > 0 ? 1.0 / nh : -1.0 / nt) * E[(size_t)i * (size_t)dim + (size_t)c];
    }
    for (int c = 0; c < dim; c++) {
        W[c] = (float)dir[c];
        W[dim + c] = (float)-dir[c];
    }
    ps_latent_table t, u;
    ps_error err = {{0}};
    if (ps_item_side_table(f->m, f->sae, &f->ds, NULL, &t, &err) != PS_OK ||
        ps_item_side_table(f->m, f->sae, &f->ds, swapped, &u, &err) != PS_OK)
        fail_msg("item-side table: %s", err.msg);
    assert_true(t.d[0] > 0.5);
    assert_true(t.d[1] == -t.d[0]);
    for (int j = 0; j < t.m; j++)
        assert_true(u.d[j] == -t.d[j]);
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.item_side = 1;
    ps_probe_result r;
    if (ps_probe_run(f->m, f->sae, &f->ds, &po, &r, &err) != PS_OK)
        fail_msg("probe: %s", err.msg);
    assert_int_equal(r.n_synthetic, 0);
    for (int j = 0; j < t.m; j++) {
        assert_true(r.table.d[j] == t.d[j]);
        assert_true(r.table.fire_rate[j] >= 0 && r.table.fire_rate[j] <= 1);
    }
    ps_probe_result_free(&r);
    ps_latent_table_free(&t);
    ps_latent_table_free(&u);
    free(dir);
    free(swapped);
}

/* A side with no item is an error that says which. */
static void test_empty_side(void **state)
{
    fixture *f = *state;
    int8_t *sides = calloc((size_t)f->ds.n_items + 1, 1);
    assert_non_null(sides);
    sides[1] = -1;
    ps_latent_table t;
    ps_error err = {{0}};
    assert_int_equal(ps_item_side_table(f->m, f->sae, &f->ds, sides, &t, &err), PS_ERR);
    assert_non_null(strstr(err.msg, "no contrast-set items"));
    assert_null(t.d);
    free(sides);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_matches_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_side, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
