/* Reducing evaluation accumulators over the ranks (popsteer/dist.h). Every counter of
 * ps_metrics_acc is an integer, so the sum is exact and any rank count gives one process's
 * numbers. */
#include "popsteer/dist.h"
#include "popsteer/metrics.h"

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
