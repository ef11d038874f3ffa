/* PopSteer-I's steering vector (steer_decoder.h): the named latents' decoder rows, weighted. */
#include "popsteer/steer_decoder.h"

#include <math.h>
#include <stdlib.h>

#include "popsteer/popsteer.h"
#include "popsteer/steer.h"
#include "popsteer/steer_ablation.h"

int ps_decoder_delta(const ps_sae *sae, const double *d, int N, double alpha, double nu, float *delta,
                     ps_error *err)
{
    if (!isfinite(alpha) || alpha < 0 || !isfinite(nu) || nu < 0)
        return ps_fail(err, "decoder steering: alpha (%g) and the norm scale (%g) must be finite and >= 0", alpha,
                       nu);
    const int m = sae->cfg.n_latents, dim = sae->cfg.d_in;
    /* S and w_j exactly as the paper's plan picks them (α = 1: the weights are the normalised |d|);
     * its σ-scaled shifts are not used, so unit σ stands in */
    double *ones = ps_calloc((size_t)m, sizeof *ones, "unit spreads", err);
    double *v = ones ? ps_calloc((size_t)dim, sizeof *v, "steering direction", err) : NULL;
    if (!v) {
        free(ones);
        return PS_ERR;
    }
    for (int j = 0; j < m; j++)
        ones[j] = 1;
    ps_steer_plan plan;
    int rc = ps_steer_plan_make(d, ones, ones, m, N, 1.0, &plan, err);
    if (rc == PS_OK) {
        const float *W_dec = sae->params + sae->offset[PS_SAE_W_DEC];
        for (int i = 0; i < plan.n; i++) {
            int j = plan.latent[i];
            double w = d[j] > 0 ? -plan.weight[i] : plan.weight[i];
            for (int c = 0; c < dim; c++)
                v[c] += w * W_dec[(size_t)j * (size_t)dim + (size_t)c];
        }
        ps_steer_plan_free(&plan);
        double n2 = 0;
        for (int c = 0; c < dim; c++)
            n2 += v[c] * v[c];
        if (!(n2 > 0) || !isfinite(n2))
            rc = ps_fail(err, "decoder steering: the %d steered latents' weighted decoder rows %s", N,
                         isfinite(n2) ? "sum to zero: there is no direction" : "are not finite");
        for (int c = 0; rc == PS_OK && c < dim; c++)
            delta[c] = (float)(alpha * nu * v[c] / sqrt(n2));
    }
    free(ones);
    free(v);
    return rc;
}

int ps_validation_mean_norm(const ps_sasrec *m, const ps_dataset *ds, double *nu, ps_error *err)
{
    float *h = ps_calloc((size_t)ds->n_users * (size_t)m->cfg.d, sizeof *h, "validation user vectors", err);
    int rc = h ? ps_user_vectors(m, ds, ds->valid, ds->n_users, h, NULL, NULL, err) : PS_ERR;
    if (rc == PS_OK)
        *nu = ps_mean_norm(h, ds->n_users, m->cfg.d);
    free(h);
    return rc;
}
