/* xquad: xQuAD for popularity (Abdollahpouri et al., FLAIRS 2019) with the categories short
 * head (label +1) and long tail (every other label). Greedy:
 *   argmax_{i not in S} (1-lambda) s_norm(i) + lambda sum_c P(c|u) [i in c] cov(c, S)
 * binary: cov = 1 while c is absent from S, else 0 (the product of (1 - [j in c]));
 * smooth: cov = 1 - |S in c| / |S| (1 for an empty S), the paper's smooth variant.
 * P(c|u): the user's history shares, or the candidates' shares without a history. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

enum { XQ_LAMBDA = 0, XQ_VARIANT = 1 };
enum { VARIANT_BINARY = 0, VARIANT_SMOOTH = 1 };

static const ps_rerank_param_spec xquad_params[] = {
    { "lambda", PS_RP_REAL, 0.0, 1.0, 0, 0, NULL, "0.5", "weight of the popularity-diversity term" },
    { "variant", PS_RP_CHOICE, 0, 0, 0, 0, "binary|smooth", "binary",
      "category coverage: absent-or-present, or 1 - share in the list so far" },
};

static int xquad_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const double lambda = r->val[XQ_LAMBDA];
    const int smooth = (int)r->val[XQ_VARIANT] == VARIANT_SMOOTH;
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
    int in_list[2] = { 0, 0 }; /* items of each category placed so far */
    int take = n < r->ctx.k ? n : r->ctx.k;
    for (int pos = 0; pos < take; pos++) {
        /* The coverage term depends on the candidate only through its category. */
        double bonus[2];
        for (int c = 0; c < 2; c++) {
            double cov = smooth ? (pos ? 1.0 - (double)in_list[c] / pos : 1.0) : (in_list[c] ? 0.0 : 1.0);
            bonus[c] = lambda * p_cat[c] * cov;
        }
        int best = -1;
        double best_v = 0.0;
        for (int j = 0; j < n; j++) {
            if (in->used[j])
                continue;
            int c = in->group[j] == PS_RERANK_HEAD ? 0 : 1;
            double v = (1.0 - lambda) * in->snorm[j] + bonus[c];
            if (best < 0 || v > best_v) {
                best = j;
                best_v = v;
            }
        }
        in->used[best] = 1;
        in_list[in->group[best] == PS_RERANK_HEAD ? 0 : 1]++;
        out[pos] = in->id[best];
    }
    return PS_OK;
}

/* lambda from 0 (the base order) to 1 (coverage only, relevance breaks ties), both variants:
 * enough points to draw each variant's trade-off curve. */
#define XB(l) { 2, { "lambda=" l, "variant=binary" } }
#define XS(l) { 2, { "lambda=" l, "variant=smooth" } }
static const ps_rerank_setting xquad_grid[] = {
    XB("0"),   XB("0.1"), XB("0.2"), XB("0.3"), XB("0.4"), XB("0.5"), XB("0.6"), XB("0.7"),
    XB("0.8"), XB("0.9"), XB("1"),   XS("0"),   XS("0.1"), XS("0.2"), XS("0.3"), XS("0.4"),
    XS("0.5"), XS("0.6"), XS("0.7"), XS("0.8"), XS("0.9"), XS("1"),
};
#undef XB
#undef XS

const ps_rerank_method_impl ps_rerank_xquad_impl = {
    .info = { .name = "xquad",
              .doc = "xQuAD for popularity (head / long-tail categories, binary or smooth coverage, P(c|u) from history)",
              .params_doc = "lambda: real in [0, 1], default 0.5; variant: binary|smooth, default binary; "
                            "grid: lambda in {0, 0.1, ..., 1} x variant in {binary, smooth}",
              .sequential = 0,
              .default_L = 0 },
    .params = xquad_params,
    .n_params = 2,
    .grid = xquad_grid,
    .n_grid = (int)(sizeof xquad_grid / sizeof xquad_grid[0]),
    .init = NULL,
    .apply = xquad_apply,
};
