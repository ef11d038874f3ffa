/* Rank 0's artefacts (a SASRec, an SAE, a latent table) copied to every rank (popsteer/dist.h).
 * A pipeline under mpirun (popsteer run) reads and writes its files on rank 0 only, so the output
 * directory need not be shared between nodes and every rank computes with the very bits rank 0
 * saved (or read), whether the artefact was reused, given, or just trained. */
#include "popsteer/dist.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"

#include <string.h>

int ps_dist_bcast_sasrec(const ps_dist *d, ps_sasrec **m, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
    const int root = ps_dist_rank(d) == 0;
    if (root && !*m)
        return ps_fail(err, "broadcasting the SASRec: rank 0 has none");
    ps_sasrec_config cfg;
    if (root)
        cfg = (*m)->cfg;
    if (ps_dist_bcast(d, &cfg, sizeof cfg, 0, err) != PS_OK)
        return ps_fail_wrap(err, "broadcasting the SASRec's configuration");
    if (!root) { /* whatever this rank held (nothing, or its own copy of a trained model) goes */
        ps_sasrec_free(*m);
        *m = NULL;
        if (ps_sasrec_create(m, &cfg, err) != PS_OK)
            return PS_ERR;
    }
    if (ps_dist_bcast(d, (*m)->params, (*m)->n_params * sizeof(float), 0, err) != PS_OK)
        return ps_fail_wrap(err, "broadcasting the SASRec's weights");
    return PS_OK;
}

/* What ps_sae_load restores besides the weights. */
typedef struct sae_header {
    ps_sae_config cfg;
    int trained_epochs;
    double val_fvu;
} sae_header;

int ps_dist_bcast_sae(const ps_dist *d, ps_sae **sae, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
    const int root = ps_dist_rank(d) == 0;
    if (root && !*sae)
        return ps_fail(err, "broadcasting the SAE: rank 0 has none");
    sae_header h;
    memset(&h, 0, sizeof h);
    if (root)
        h = (sae_header){(*sae)->cfg, (*sae)->trained_epochs, (*sae)->val_fvu};
    if (ps_dist_bcast(d, &h, sizeof h, 0, err) != PS_OK)
        return ps_fail_wrap(err, "broadcasting the SAE's configuration");
    if (!root) {
        ps_sae_free(*sae);
        if (!(*sae = ps_sae_create(&h.cfg, err)))
            return PS_ERR;
        (*sae)->trained_epochs = h.trained_epochs;
        (*sae)->val_fvu = h.val_fvu;
    }
    if (ps_dist_bcast(d, (*sae)->params, (*sae)->n_params * sizeof(float), 0, err) != PS_OK)
        return ps_fail_wrap(err, "broadcasting the SAE's weights");
    return PS_OK;
}

int ps_dist_bcast_latent_table(const ps_dist *d, ps_latent_table *t, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
    const int root = ps_dist_rank(d) == 0;
    int m = root ? t->m : 0;
    if (ps_dist_bcast(d, &m, sizeof m, 0, err) != PS_OK)
        return ps_fail_wrap(err, "broadcasting the latent table's size");
    if (!root) {
        ps_latent_table_free(t);
        if (ps_latent_table_alloc(t, m, err) != PS_OK)
            return PS_ERR;
    }
    double *cols[] = {t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, t->fire_rate};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        if (ps_dist_bcast(d, cols[c], (size_t)m * sizeof(double), 0, err) != PS_OK)
            return ps_fail_wrap(err, "broadcasting the latent table");
    return PS_OK;
}
