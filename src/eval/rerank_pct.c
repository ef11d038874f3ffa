/* pct: the PopSteer reference's calibrated-exposure re-ranker (PCT), non-personalised.
 *
 * Two groups, niche (tail) and the rest; position weights w_r = 1/log2(r + 1); the target
 * exposure of the niche group is p·W and of the rest (1 - p)·W, W = Σ_{r<=k} w_r.
 * Pass 1 walks the positions and keeps, at each, the first candidate (in the base order)
 * whose group still has room for w_r; pass 2 fills the positions pass 1 left empty by MMR:
 *   lambda / rank - (1 - lambda) · ½ Σ_g (exposure after placing - target)².
 * The squared-error term depends on the candidate only through its group and 1/rank falls
 * with the rank, so each step compares only the first unplaced candidate of each group;
 * the full scan below is kept anyway because it is the definition and n is small. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <math.h>
#include <stdlib.h>

enum { PCT_P = 0, PCT_LAMBDA = 1 };
enum { REST = 0, NICHE = 1 };

typedef struct pct_state {
    double *weight;   /* [k]: 1/log2(r + 1) for position r = 1..k (index r - 1) */
    double target[2]; /* exposure targets of the rest and of the niche group */
} pct_state;

static const ps_rerank_param_spec pct_params[] = {
    { "p", PS_RP_REAL, 0.0, 1.0, 0, 0, NULL, "0.5", "target niche (tail) share of the position-weighted exposure" },
    { "lambda", PS_RP_REAL, 0.0, 1.0, 0, 0, NULL, "0.7", "weight of 1/rank against the exposure error in the fill" },
};

static int pct_init(ps_reranker *r, ps_error *err)
{
    const int k = r->ctx.k;
    pct_state *st = ps_calloc(1, sizeof *st, "pct state", err);
    if (!st)
        return PS_ERR;
    st->weight = ps_calloc((size_t)k, sizeof *st->weight, "pct position weights", err);
    if (!st->weight) {
        free(st);
        return PS_ERR;
    }
    double total = 0.0;
    for (int pos = 0; pos < k; pos++) {
        st->weight[pos] = 1.0 / log2(pos + 2.0);
        total += st->weight[pos];
    }
    const double p = r->val[PCT_P];
    st->target[REST] = (1.0 - p) * total;
    st->target[NICHE] = p * total;
    r->state = st;
    return PS_OK;
}

static void pct_free(ps_reranker *r)
{
    pct_state *st = r->state;
    if (st)
        free(st->weight);
    free(st);
    r->state = NULL;
}

static int pct_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    const pct_state *st = r->state;
    const double lambda = r->val[PCT_LAMBDA];
    const int n = in->n, k = r->ctx.k;
    /* slot[pos] = candidate index placed at pos, or -1; iwork has n >= 1 entries but k may be
     * larger, so the slots live in out (as candidate indices) until the final compaction. */
    int32_t *slot = out;
    double exposure[2] = { 0.0, 0.0 };
    for (int pos = 0; pos < k; pos++)
        slot[pos] = -1;

    /* Pass 1: at each position the first candidate whose group has room left. */
    for (int pos = 0; pos < k; pos++) {
        const double w = st->weight[pos];
        for (int j = 0; j < n; j++) {
            if (in->used[j])
                continue;
            int g = in->group[j] == PS_RERANK_TAIL ? NICHE : REST;
            if (exposure[g] + w <= st->target[g]) {
                in->used[j] = 1;
                slot[pos] = j;
                exposure[g] += w;
                break;
            }
        }
    }

    /* Pass 2: MMR fill of the empty positions, in position order. */
    for (int pos = 0; pos < k; pos++) {
        if (slot[pos] >= 0)
            continue;
        const double w = st->weight[pos];
        int best = -1;
        double best_v = 0.0;
        for (int j = 0; j < n; j++) {
            if (in->used[j])
                continue;
            int g = in->group[j] == PS_RERANK_TAIL ? NICHE : REST;
            double disp = 0.0;
            for (int h = 0; h < 2; h++) {
                double e = exposure[h] + (h == g ? w : 0.0) - st->target[h];
                disp += e * e;
            }
            double v = lambda / (j + 1.0) - (1.0 - lambda) * 0.5 * disp;
            if (best < 0 || v > best_v) {
                best = j;
                best_v = v;
            }
        }
        if (best < 0)
            break; /* every candidate is placed: the remaining positions stay empty */
        in->used[best] = 1;
        slot[pos] = best;
        exposure[in->group[best] == PS_RERANK_TAIL ? NICHE : REST] += w;
    }

    /* Compact: placed items in position order, ids instead of indices, zeros after. */
    int m = 0;
    for (int pos = 0; pos < k; pos++) {
        if (slot[pos] >= 0)
            out[m++] = in->id[slot[pos]];
    }
    for (; m < k; m++)
        out[m] = 0;
    return PS_OK;
}

/* p × lambda (SPEC §7); p = 0.99 with lambda = 0 is the strongest push to the niche. */
#define C2(p, l) { 2, { "p=" p, "lambda=" l } }
#define CROW(p) C2(p, "0"), C2(p, "0.3"), C2(p, "0.5"), C2(p, "0.7"), C2(p, "0.9")
static const ps_rerank_setting pct_grid[] = {
    CROW("0.3"), CROW("0.5"), CROW("0.7"), CROW("0.9"), CROW("0.99"),
};
#undef CROW
#undef C2

const ps_rerank_method_impl ps_rerank_pct_impl = {
    .info = { .name = "pct",
              .doc = "PCT: position-weighted niche (tail) exposure calibrated to p, greedy pass then MMR fill",
              .params_doc = "p: real in [0, 1], default 0.5; lambda: real in [0, 1], default 0.7; "
                            "candidates: 250; grid: p in {0.3, 0.5, 0.7, 0.9, 0.99} x "
                            "lambda in {0, 0.3, 0.5, 0.7, 0.9}",
              .sequential = 0,
              .default_L = 250 },
    .params = pct_params,
    .n_params = 2,
    .grid = pct_grid,
    .n_grid = (int)(sizeof pct_grid / sizeof pct_grid[0]),
    .init = pct_init,
    .apply = pct_apply,
    .free_state = pct_free,
};
