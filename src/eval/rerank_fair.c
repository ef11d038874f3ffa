/* fair: FA*IR (Zehlike et al., CIKM 2017) with Šidák-adjusted binomial quotas.
 *
 * m(i) = min { m : BinomCDF(m; i, p) > alpha_c }, alpha_c = 1 - (1 - alpha)^(1/k), i = 1..k.
 * The binomial terms are summed in log space (lgamma-free recurrence), so large i and
 * extreme p neither overflow nor underflow to a wrong quantile. Protected = tail items by
 * default, as the PopSteer reference; when the candidates hold too few protected items the
 * remaining positions are filled from the unprotected ones (the reference does the same). */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <math.h>
#include <stdlib.h>

enum { FAIR_P = 0, FAIR_ALPHA = 1, FAIR_GROUP = 2 };
enum { GROUP_TAIL = 0, GROUP_NONHEAD = 1 };

typedef struct fair_state {
    int protected_group; /* GROUP_TAIL or GROUP_NONHEAD */
    int *quota;          /* [k + 1]: quota[i] = m(i), quota[0] = 0 */
} fair_state;

static const ps_rerank_param_spec fair_params[] = {
    { "p", PS_RP_REAL, 0.0, 1.0, 1, 1, NULL, "0.5", "target proportion of protected items" },
    { "alpha", PS_RP_REAL, 0.0, 1.0, 1, 1, NULL, "0.1", "significance of the ranked group test" },
    { "group", PS_RP_CHOICE, 0, 0, 0, 0, "tail|nonhead", "tail", "protected items" },
};

/* Smallest m in 0..i with P(X <= m) > alpha_c for X ~ Binomial(i, p). */
static int binom_quantile(int i, double p, double alpha_c)
{
    double lp = log(p), lq = log1p(-p);
    double logpmf = i * lq; /* P(X = 0) */
    double cdf = 0.0;
    for (int m = 0; m < i; m++) {
        cdf += exp(logpmf);
        if (cdf > alpha_c)
            return m;
        /* P(X = m+1) = P(X = m) * (i - m)/(m + 1) * p/(1 - p) */
        logpmf += log((double)(i - m) / (double)(m + 1)) + lp - lq;
    }
    return i; /* CDF(i) = 1 > alpha_c */
}

static int fair_init(ps_reranker *r, ps_error *err)
{
    const int k = r->ctx.k;
    fair_state *st = ps_calloc(1, sizeof *st, "fair state", err);
    if (!st)
        return PS_ERR;
    st->quota = ps_calloc((size_t)k + 1, sizeof *st->quota, "fair quotas", err);
    if (!st->quota) {
        free(st);
        return PS_ERR;
    }
    st->protected_group = (int)r->val[FAIR_GROUP];
    double p = r->val[FAIR_P], alpha = r->val[FAIR_ALPHA];
    double alpha_c = -expm1(log1p(-alpha) / k); /* 1 - (1 - alpha)^(1/k), accurately */
    for (int i = 1; i <= k; i++)
        st->quota[i] = binom_quantile(i, p, alpha_c);
    r->state = st;
    return PS_OK;
}

static void fair_free(ps_reranker *r)
{
    fair_state *st = r->state;
    if (st)
        free(st->quota);
    free(st);
    r->state = NULL;
}

static int is_protected(const fair_state *st, int group)
{
    return st->protected_group == GROUP_TAIL ? group == PS_RERANK_TAIL : group != PS_RERANK_HEAD;
}

static int fair_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const fair_state *st = r->state;
    const int n = in->n;
    int *order = in->iwork;
    double *key = in->dwork;
    for (int j = 0; j < n; j++) {
        key[j] = in->score[j];
        order[j] = j;
    }
    ps_rerank_sort_desc(order, n, key);
    /* Two queues over the score order: next protected / next unprotected position. */
    int pp = 0, pu = 0, placed_protected = 0;
    int take = n < r->ctx.k ? n : r->ctx.k;
    for (int i = 1; i <= take; i++) {
        while (pp < n && !is_protected(st, in->group[order[pp]]))
            pp++;
        while (pu < n && is_protected(st, in->group[order[pu]]))
            pu++;
        int pick; /* position in order[] */
        if (pp < n && (placed_protected < st->quota[i] || pu >= n || pp < pu))
            pick = pp++;
        else
            pick = pu++;
        if (is_protected(st, in->group[order[pick]]))
            placed_protected++;
        out[i - 1] = in->id[order[pick]];
    }
    return PS_OK;
}

int ps_reranker_fair_quota(const ps_reranker *r, int i)
{
    if (!r || r->m != &ps_rerank_fair_impl || i < 1 || i > r->ctx.k)
        return -1;
    const fair_state *st = r->state;
    return st->quota[i];
}

/* p × alpha with the tail protected (SPEC §7); the reference sweeps p up to 0.99. */
#define F3(p, a) { 3, { "p=" p, "alpha=" a, "group=tail" } }
#define FROW(p) F3(p, "0.01"), F3(p, "0.05"), F3(p, "0.1")
static const ps_rerank_setting fair_grid[] = {
    FROW("0.5"), FROW("0.6"), FROW("0.7"), FROW("0.8"), FROW("0.9"), FROW("0.95"), FROW("0.99"),
};
#undef FROW
#undef F3

const ps_rerank_method_impl ps_rerank_fair_impl = {
    .info = { .name = "fair",
              .doc = "FA*IR: binomial quotas (Sidak-adjusted) of protected (tail / non-head) items per prefix",
              .params_doc = "p: real in (0, 1), default 0.5; alpha: real in (0, 1), default 0.1; "
                            "group: tail|nonhead, default tail; candidates: 500; "
                            "grid: p in {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99} x alpha in "
                            "{0.01, 0.05, 0.1}, group=tail",
              .sequential = 0,
              .default_L = 500 },
    .params = fair_params,
    .n_params = 3,
    .grid = fair_grid,
    .n_grid = (int)(sizeof fair_grid / sizeof fair_grid[0]),
    .init = fair_init,
    .apply = fair_apply,
    .free_state = fair_free,
};
