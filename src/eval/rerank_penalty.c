/* penalty: popularity-penalised re-scoring
 *     s'_i = s_i - |s_i| (1 - 1/(1 + beta r_i)),  r_i = pop_count[i] / max pop_count,
 * i.e. s_i/(1 + beta r_i) for s_i >= 0 and a downward move for s_i < 0 (see rerank.h). */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <math.h>
#include <stdlib.h>

typedef struct penalty_state {
    double beta;
    double inv_max_pop; /* 1 / max pop_count, 0 when every count is 0 */
} penalty_state;

static const ps_rerank_param_spec penalty_params[] = {
    { "beta", PS_RP_REAL, 0.0, 1e6, 0, 0, NULL, "1", "penalty strength" },
};

static int penalty_init(ps_reranker *r, ps_error *err)
{
    penalty_state *st = ps_calloc(1, sizeof *st, "penalty state", err);
    if (!st)
        return PS_ERR;
    int64_t mx = 0;
    for (int32_t i = 1; i <= r->ctx.n_items; i++) {
        if (r->ctx.pop_count[i] < 0) {
            free(st);
            return ps_fail(err, "pop_count[%d] = %lld is negative", (int)i,
                           (long long)r->ctx.pop_count[i]);
        }
        if (r->ctx.pop_count[i] > mx)
            mx = r->ctx.pop_count[i];
    }
    st->beta = r->val[0];
    st->inv_max_pop = mx > 0 ? 1.0 / (double)mx : 0.0;
    r->state = st;
    return PS_OK;
}

static void penalty_free(ps_reranker *r)
{
    free(r->state);
    r->state = NULL;
}

static int penalty_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const penalty_state *st = r->state;
    double *key = in->dwork;
    int *idx = in->iwork;
    for (int j = 0; j < in->n; j++) {
        double s = in->score[j];
        double rel = (double)r->ctx.pop_count[in->id[j]] * st->inv_max_pop;
        double shrink = 1.0 - 1.0 / (1.0 + st->beta * rel); /* in [0, 1) */
        /* non-finite scores keep their value (NaN ranks last, +-inf stay extreme) */
        key[j] = isfinite(s) ? s - fabs(s) * shrink : s;
        idx[j] = j;
    }
    ps_rerank_sort_desc(idx, in->n, key);
    int take = in->n < r->ctx.k ? in->n : r->ctx.k;
    for (int i = 0; i < take; i++)
        out[i] = in->id[idx[i]];
    return PS_OK;
}

static const ps_rerank_setting penalty_grid[] = {
    { 1, { "beta=0.1" } }, { 1, { "beta=0.25" } }, { 1, { "beta=0.5" } },
    { 1, { "beta=1" } },   { 1, { "beta=2" } },    { 1, { "beta=4" } },
};

const ps_rerank_method_impl ps_rerank_penalty_impl = {
    .info = { .name = "penalty",
              .doc = "re-score s - |s|(1 - 1/(1 + beta p/max p)) (= s/(1 + beta p/max p) for s >= 0)",
              .params_doc = "beta: real in [0, 1e6], default 1; grid: beta in {0.1, 0.25, 0.5, 1, 2, 4}",
              .sequential = 0 },
    .params = penalty_params,
    .n_params = 1,
    .grid = penalty_grid,
    .n_grid = (int)(sizeof penalty_grid / sizeof penalty_grid[0]),
    .init = penalty_init,
    .apply = penalty_apply,
    .free_state = penalty_free,
};
