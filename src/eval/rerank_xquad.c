/* xquad: xQuAD for popularity (Abdollahpouri et al., FLAIRS 2019), binary variant with the
 * categories short head (label +1) and long tail (every other label). Greedy:
 *   argmax_{i not in S} (1-lambda) s_norm(i) + lambda sum_c P(c|u) [i in c] prod_{j in S}(1 - [j in c]).
 * P(c|u): the user's history shares, or the candidates' shares without a history. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

static const ps_rerank_param_spec xquad_params[] = {
    { "lambda", PS_RP_REAL, 0.0, 1.0, 0, 0, NULL, "0.5", "weight of the popularity-diversity term" },
};

static int xquad_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const double lambda = r->val[0];
    const int n = in->n;
    double share[PS_RERANK_GROUPS];
    if (!ps_rerank_hist_shares(&r->ctx, in->hist, in->hist_len, share)) {
        int cnt[PS_RERANK_GROUPS] = { 0 };
        for (int j = 0; j < n; j++)
            cnt[in->group[j]]++;
        for (int g = 0; g < PS_RERANK_GROUPS; g++)
            share[g] = (double)cnt[g] / n;
    }
    /* c = 0: short head; c = 1: long tail (mid + tail). */
    const double p_cat[2] = { share[PS_RERANK_HEAD], share[PS_RERANK_MID] + share[PS_RERANK_TAIL] };
    int covered[2] = { 0, 0 };
    int take = n < r->ctx.k ? n : r->ctx.k;
    for (int pos = 0; pos < take; pos++) {
        int best = -1;
        double best_v = 0.0;
        for (int j = 0; j < n; j++) {
            if (in->used[j])
                continue;
            int c = in->group[j] == PS_RERANK_HEAD ? 0 : 1;
            double v = (1.0 - lambda) * in->snorm[j] + (covered[c] ? 0.0 : lambda * p_cat[c]);
            if (best < 0 || v > best_v) {
                best = j;
                best_v = v;
            }
        }
        in->used[best] = 1;
        covered[in->group[best] == PS_RERANK_HEAD ? 0 : 1] = 1;
        out[pos] = in->id[best];
    }
    return PS_OK;
}

static const ps_rerank_setting xquad_grid[] = {
    { 1, { "lambda=0.1" } }, { 1, { "lambda=0.2" } }, { 1, { "lambda=0.3" } },
    { 1, { "lambda=0.4" } }, { 1, { "lambda=0.5" } }, { 1, { "lambda=0.6" } },
    { 1, { "lambda=0.7" } }, { 1, { "lambda=0.8" } }, { 1, { "lambda=0.9" } },
};

const ps_rerank_method_impl ps_rerank_xquad_impl = {
    .info = { .name = "xquad",
              .doc = "xQuAD for popularity (binary head / long-tail categories, P(c|u) from history)",
              .params_doc = "lambda: real in [0, 1], default 0.5",
              .sequential = 0 },
    .params = xquad_params,
    .n_params = 1,
    .grid = xquad_grid,
    .n_grid = (int)(sizeof xquad_grid / sizeof xquad_grid[0]),
    .init = NULL,
    .apply = xquad_apply,
};
