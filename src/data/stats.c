/* Descriptive statistics of a loaded dataset (`popsteer data stats`). */
#include "popsteer/dataset.h"

#include <stdlib.h>
#include <string.h>

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

static int cmp_i64_asc(const void *a, const void *b)
{
    return -cmp_i64_desc(a, b);
}

/* Quantile by linear interpolation between order statistics (numpy's default). */
static double quantile(const int64_t *sorted, int64_t n, double q)
{
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)pos;
    int64_t hi = lo + 1 < n ? lo + 1 : lo;
    double frac = pos - (double)lo;
    return (double)sorted[lo] * (1.0 - frac) + (double)sorted[hi] * frac;
}

static int top_share(const ps_dataset *ds, double *share, ps_error *err)
{
    int64_t *count = ps_calloc((size_t)ds->n_items + 1, sizeof *count, "item counts", err);
    if (!count)
        return PS_ERR;
    for (int64_t i = 0; i < ds->n_inter; i++)
        count[ds->seq[i]]++;
    qsort(count + 1, (size_t)ds->n_items, sizeof *count, cmp_i64_desc);
    int64_t top = (ds->n_items + 4) / 5, sum = 0; /* the 20 % most popular items, rounded up */
    for (int64_t i = 1; i <= top; i++)
        sum += count[i];
    free(count);
    *share = ds->n_inter ? (double)sum / (double)ds->n_inter : 0.0;
    return PS_OK;
}

int ps_dataset_stats_compute(const ps_dataset *ds, ps_dataset_stats *st, ps_error *err)
{
    memset(st, 0, sizeof *st);
    st->users = ds->n_users;
    st->items = ds->n_items;
    st->interactions = ds->n_inter;
    st->train_samples = ds->n_train;
    st->valid_samples = st->test_samples = ds->n_users;
    st->head_items = ds->n_head;
    st->mid_items = ds->n_mid;
    st->tail_items = ds->n_tail;
    st->density = (double)ds->n_inter / ((double)ds->n_users * (double)ds->n_items);
    if (top_share(ds, &st->top20_share, err) != PS_OK)
        return PS_ERR;
    int64_t *len = ps_calloc((size_t)ds->n_users, sizeof *len, "sequence lengths", err);
    if (!len)
        return PS_ERR;
    for (int32_t u = 1; u <= ds->n_users; u++)
        len[u - 1] = ps_user_len(ds, u);
    qsort(len, (size_t)ds->n_users, sizeof *len, cmp_i64_asc);
    st->len_min = (double)len[0];
    st->len_q25 = quantile(len, ds->n_users, 0.25);
    st->len_median = quantile(len, ds->n_users, 0.5);
    st->len_q75 = quantile(len, ds->n_users, 0.75);
    st->len_q90 = quantile(len, ds->n_users, 0.90);
    st->len_max = (double)len[ds->n_users - 1];
    st->len_mean = (double)ds->n_inter / ds->n_users;
    free(len);
    return PS_OK;
}
