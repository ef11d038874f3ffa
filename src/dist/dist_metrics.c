/* Reducing evaluation accumulators over the ranks (popsteer/dist.h). Every counter of
 * ps_metrics_acc is an integer, so the sum is exact and any rank count gives one process's
 * numbers. */
#include "popsteer/dist.h"
#include "popsteer/metrics.h"
#include "popsteer/probe.h"

#include <stdlib.h>
#include <string.h>

int ps_dist_sum_metrics(const ps_dist *d, ps_metrics_acc *a, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
    const size_t k1 = (size_t)a->k + 1;
    if (ps_dist_sum_i64(d, &a->users, 1, err) != PS_OK ||
        ps_dist_sum_i64(d, a->rank_hist, (size_t)PS_GROUP_COUNT * k1, err) != PS_OK ||
        ps_dist_sum_i64(d, a->len_users, k1, err) != PS_OK || ps_dist_sum_i64(d, a->len_pop, k1, err) != PS_OK ||
        ps_dist_sum_i64(d, a->len_nonhead, k1, err) != PS_OK ||
        ps_dist_sum_i64(d, a->exposure, (size_t)a->n_items + 1, err) != PS_OK ||
        ps_dist_sum_i64(d, a->ilad_fixed, PS_ILAD_COUNT, err) != PS_OK)
        return ps_fail_wrap(err, "summing the evaluation over the ranks");
    return PS_OK;
}

/* Each rank's (n, mean, M2) in its own slot of a [P][2m + 1] buffer, summed (the other slots are
 * zero, so the sum is a gather), then merged in rank order: every rank gets the same bits. */
int ps_dist_merge_latent_stats(const ps_dist *d, ps_latent_stats *s, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
    const int P = ps_dist_size(d), m = s->m;
    const size_t per = 2 * (size_t)m + 1;
    double *all = ps_calloc((size_t)P * per, sizeof *all, "latent statistics of every rank", err);
    if (!all)
        return PS_ERR;
    double *mine = all + (size_t)ps_dist_rank(d) * per;
    mine[0] = (double)s->n;
    memcpy(mine + 1, s->mean, (size_t)m * sizeof *mine);
    memcpy(mine + 1 + m, s->m2, (size_t)m * sizeof *mine);
    int rc = ps_dist_sum_f64(d, all, (size_t)P * per, err);
    if (rc == PS_OK) {
        s->n = (int64_t)all[0];
        memcpy(s->mean, all + 1, (size_t)m * sizeof *s->mean);
        memcpy(s->m2, all + 1 + m, (size_t)m * sizeof *s->m2);
        for (int r = 1; rc == PS_OK && r < P; r++) {
            double *o = all + (size_t)r * per;
            ps_latent_stats src = {m, (int64_t)o[0], o + 1, o + 1 + m, NULL};
            if (src.n > 0)
                rc = ps_latent_stats_merge(s, &src, err);
        }
    }
    free(all);
    return rc == PS_OK ? PS_OK : ps_fail_wrap(err, "merging the probe statistics of the ranks");
}
