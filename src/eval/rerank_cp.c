/* cp: calibrated popularity (Abdollahpouri et al., 2021). Greedy:
 *   argmax_{i not in S} (1-lambda) s_norm(i) - lambda JS(P, Q(S + {i}))
 * with P the user's {head, mid, tail} history shares (fallback: the candidates' shares),
 * Q the shares of the grown list, JS in bits with 1e-6 smoothing of both distributions. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <math.h>

#define CP_EPS 1e-6

static const ps_rerank_param_spec cp_params[] = {
    { "lambda", PS_RP_REAL, 0.0, 1.0, 0, 0, NULL, "0.5", "weight of the calibration term" },
};

/* Jensen–Shannon divergence in bits of the smoothed distributions. */
static double js_bits(const double p_raw[PS_RERANK_GROUPS], const double q_raw[PS_RERANK_GROUPS])
{
    const double norm = 1.0 + PS_RERANK_GROUPS * CP_EPS;
    double js = 0.0;
    for (int g = 0; g < PS_RERANK_GROUPS; g++) {
        double p = (p_raw[g] + CP_EPS) / norm, q = (q_raw[g] + CP_EPS) / norm;
        double m = 0.5 * (p + q);
        js += 0.5 * p * log2(p / m) + 0.5 * q * log2(q / m);
    }
    return js;
}

static int cp_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const double lambda = r->val[0];
    const int n = in->n;
    double target[PS_RERANK_GROUPS];
    if (!ps_rerank_hist_shares(&r->ctx, in->hist, in->hist_len, target)) {
        int cnt[PS_RERANK_GROUPS] = { 0 };
        for (int j = 0; j < n; j++)
            cnt[in->group[j]]++;
        for (int g = 0; g < PS_RERANK_GROUPS; g++)
            target[g] = (double)cnt[g] / n;
    }
    int have[PS_RERANK_GROUPS] = { 0 };
    int take = n < r->ctx.k ? n : r->ctx.k;
    for (int pos = 0; pos < take; pos++) {
        /* The divergence depends on the candidate only through its group. */
        double div[PS_RERANK_GROUPS];
        for (int g = 0; g < PS_RERANK_GROUPS; g++) {
            double q[PS_RERANK_GROUPS];
            for (int h = 0; h < PS_RERANK_GROUPS; h++)
                q[h] = (double)(have[h] + (h == g)) / (pos + 1);
            div[g] = js_bits(target, q);
        }
        int best = -1;
        double best_v = 0.0;
        for (int j = 0; j < n; j++) {
            if (in->used[j])
                continue;
            double v = (1.0 - lambda) * in->snorm[j] - lambda * div[in->group[j]];
            if (best < 0 || v > best_v) {
                best = j;
                best_v = v;
            }
        }
        in->used[best] = 1;
        have[in->group[best]]++;
        out[pos] = in->id[best];
    }
    return PS_OK;
}

/* lambda from 0 (the base order) to 1 (calibration only); the lists move most near the high
 * end, where the calibration term starts to outweigh the relevance gaps, hence the fine steps. */
static const ps_rerank_setting cp_grid[] = {
    { 1, { "lambda=0" } },    { 1, { "lambda=0.1" } },  { 1, { "lambda=0.2" } },
    { 1, { "lambda=0.3" } },  { 1, { "lambda=0.4" } },  { 1, { "lambda=0.5" } },
    { 1, { "lambda=0.6" } },  { 1, { "lambda=0.7" } },  { 1, { "lambda=0.8" } },
    { 1, { "lambda=0.9" } },  { 1, { "lambda=0.95" } }, { 1, { "lambda=0.99" } },
    { 1, { "lambda=1" } },
};

const ps_rerank_method_impl ps_rerank_cp_impl = {
    .info = { .name = "cp",
              .doc = "calibrated popularity: greedy (1-lambda) s_norm - lambda JS(history, list) over head/mid/tail",
              .params_doc = "lambda: real in [0, 1], default 0.5; "
                            "grid: lambda in {0, 0.1, ..., 0.9, 0.95, 0.99, 1}",
              .sequential = 0,
              .default_L = 0 },
    .params = cp_params,
    .n_params = 1,
    .grid = cp_grid,
    .n_grid = (int)(sizeof cp_grid / sizeof cp_grid[0]),
    .init = NULL,
    .apply = cp_apply,
};
