/* The item-side probe (PopSteer-I, docs/steering.md): a latent's popularity read from what its
 * decoder row does to the items' scores, instead of from synthetic users.
 *
 * Why: SASRec scores item i for a user vector h as h · E_i, so adding latent j's decoder row
 * W_dec[j] to h moves item i's score by e_ij = W_dec[j] · E_i. The paper's probe asks which
 * latents fire for popular-only synthetic users; on short-sequence logs (Amazon Beauty: a median
 * of 6 items) those users are one to five random items and the probe separates poorly. This probe
 * asks the question steering needs answered directly: does raising latent j raise the head items'
 * scores or the tail items'? Per latent, e_ij over the items of the popular role (head, or a
 * concept probe's contrast set) and of the long-tail role are the two groups of Cohen's d (SPEC
 * §4's formula), so d > 0 still means "a popular latent". It needs no forward pass and no
 * sequences: one [items, d] x [d, m] product. */
#include "popsteer/popsteer.h"

#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define ITEM_BATCH 256 /* items per product: 256 x m floats of effects (4 MB for m = 4096) */

/* Effects of the B items of rows[] on every latent, added to st. */
static int add_effects(const float *E, const float *W_dec, int d, int m, const int32_t *items, int B, float *rows,
                       float *effects, ps_latent_stats *st, ps_error *err)
{
    if (!B)
        return PS_OK;
    for (int b = 0; b < B; b++)
        memcpy(rows + (size_t)b * d, E + (size_t)items[b] * d, (size_t)d * sizeof *rows);
    /* effects [B, m] = rows [B, d] · W_dec^T (W_dec is [m, d]) */
    ps_nn_sgemm(0, 1, B, m, d, 1.0f, rows, d, W_dec, d, 0.0f, effects, m);
    return ps_latent_stats_add(st, effects, B, err);
}

/* Streams the effects of every item with sides[i] == want into st, in item order. */
static int side_stats(const float *E, const float *W_dec, int d, int m, const ps_dataset *ds, const int8_t *sides,
                      int8_t want, ps_latent_stats *st, ps_error *err)
{
    int32_t *items = ps_calloc(ITEM_BATCH, sizeof *items, "item batch", err);
    float *rows = items ? ps_calloc((size_t)ITEM_BATCH * (size_t)d, sizeof *rows, "item batch", err) : NULL;
    float *effects = rows ? ps_calloc((size_t)ITEM_BATCH * (size_t)m, sizeof *effects, "item effects", err) : NULL;
    int rc = effects ? PS_OK : PS_ERR, B = 0;
    for (int32_t i = 1; rc == PS_OK && i <= ds->n_items; i++) {
        if (sides[i] != want)
            continue;
        items[B++] = i;
        if (B == ITEM_BATCH) {
            rc = add_effects(E, W_dec, d, m, items, B, rows, effects, st, err);
            B = 0;
        }
    }
    if (rc == PS_OK)
        rc = add_effects(E, W_dec, d, m, items, B, rows, effects, st, err);
    free(items);
    free(rows);
    free(effects);
    return rc;
}

int ps_item_side_table(const ps_sasrec *model, const ps_sae *sae, const ps_dataset *ds, const int8_t *sides,
                       ps_latent_table *t, ps_error *err)
{
    memset(t, 0, sizeof *t);
    if (ps_sae_fits_model(sae, model, err) != PS_OK)
        return PS_ERR;
    int d, m = sae->cfg.n_latents;
    const float *E = ps_sasrec_item_embedding(model, &d);
    if (!E)
        return ps_fail(err, "item-side probe: the model has no item_embedding.weight of shape [n_items + 1, d]");
    const float *W_dec = sae->params + sae->offset[PS_SAE_W_DEC];
    const int8_t *side = sides ? sides : ds->label;
    ps_latent_stats pop, unpop;
    memset(&pop, 0, sizeof pop);
    memset(&unpop, 0, sizeof unpop);
    int rc = ps_latent_stats_init(&pop, m, err);
    if (rc == PS_OK)
        rc = ps_latent_stats_init(&unpop, m, err);
    if (rc == PS_OK)
        rc = side_stats(E, W_dec, d, m, ds, side, +1, &pop, err);
    if (rc == PS_OK)
        rc = side_stats(E, W_dec, d, m, ds, side, -1, &unpop, err);
    if (rc == PS_OK && (!pop.n || !unpop.n))
        rc = ps_fail(err, "item-side probe: no %s items (try --head-share/--tail-share)",
                     !pop.n ? (sides ? "contrast-set" : "head") : (sides ? "concept" : "tail"));
    if (rc == PS_OK)
        rc = ps_latent_table_alloc(t, m, err);
    if (rc == PS_OK)
        rc = ps_latent_table_fill(&pop, &unpop, t, err);
    if (rc != PS_OK)
        ps_latent_table_free(t);
    ps_latent_stats_free(&pop);
    ps_latent_stats_free(&unpop);
    return rc;
}
