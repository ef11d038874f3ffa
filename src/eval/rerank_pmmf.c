/* pmmf: P-MMF (Xu et al., WWW 2023) with the head / mid / tail groups as providers.
 *
 * Online dual mirror descent following the authors' released implementation (P-MMF.py, CPU
 * path): rank by r_i - mu_group (r = sigmoid of the score, as the authors, or s_norm) among
 * groups with budget left, serve the k best in base-score order, then a momentum step on
 * the authors' gradient (remaining budget rate minus consumption) with step eta/sqrt(T) and
 * the rho-weighted projection onto
 * D = { mu : sum_{g in S} rho_g mu_g >= -lambda for all subsets S } (exact, closed form).
 * The state evolves with every served user: sequential, one thread, fixed user order. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PM_LAMBDA = 0, PM_ETA = 1, PM_MOMENTUM = 2, PM_SHARE = 3, PM_SLACK = 4, PM_NORM = 5 };
enum { SHARE_EQUAL = 0, SHARE_SIZE = 1, SHARE_SIZE43 = 2 };
enum { NORM_SIGMOID = 0, NORM_MINMAX = 1 };
#define G PS_RERANK_GROUPS

typedef struct pmmf_state {
    double lambda, eta_t, momentum;
    int sigmoid;         /* relevance = logistic(score), else s_norm */
    double horizon_k;    /* T * k: the authors' gradient divides the remaining budget by it */
    int active[G];       /* group has at least one item */
    double rho[G];       /* fair share per group (0 when inactive) */
    int capped;          /* budgets enforced */
    double budget0[G];   /* slack * T * k * rho, or INFINITY */
    /* evolving state */
    double mu[G], grad_mom[G];
    int64_t exposure[G];
    int64_t users;
} pmmf_state;

static const ps_rerank_param_spec pmmf_params[] = {
    { "lambda", PS_RP_REAL, 0.0, 1e6, 0, 0, NULL, "0.1", "max-min fairness regulariser (bound on dual bonuses)" },
    { "eta", PS_RP_REAL, 0.0, 1e6, 1, 0, NULL, "0.001", "learning rate; step = eta/sqrt(n_users)" },
    { "momentum", PS_RP_REAL, 0.0, 1.0, 1, 0, NULL, "0.1", "weight of the new gradient in the momentum average" },
    { "share", PS_RP_CHOICE, 0, 0, 0, 0, "equal|size|size43", "size43",
      "fair share: equal per group, group size / n_items, or (1 + 1/groups) * size / n_items" },
    { "slack", PS_RP_REAL, 0.0, 1e6, 0, 0, NULL, "1", "budget = slack*n_users*k*share; 0 = no budget cap" },
    { "norm", PS_RP_CHOICE, 0, 0, 0, 0, "sigmoid|minmax", "sigmoid", "relevance: logistic of the score, or s_norm" },
};

static void pmmf_reset(ps_reranker *r)
{
    pmmf_state *st = r->state;
    memset(st->mu, 0, sizeof st->mu);
    memset(st->grad_mom, 0, sizeof st->grad_mom);
    memset(st->exposure, 0, sizeof st->exposure);
    st->users = 0;
}

static int pmmf_init(ps_reranker *r, ps_error *err)
{
    pmmf_state *st = ps_calloc(1, sizeof *st, "pmmf state", err);
    if (!st)
        return PS_ERR;
    int64_t size[G] = { 0 };
    for (int32_t i = 1; i <= r->ctx.n_items; i++)
        size[ps_rerank_group_of(r->ctx.label[i])]++;
    int n_active = 0;
    for (int g = 0; g < G; g++) {
        st->active[g] = size[g] > 0;
        n_active += st->active[g];
    }
    for (int g = 0; g < G; g++) {
        if (!st->active[g])
            st->rho[g] = 0.0;
        else if ((int)r->val[PM_SHARE] == SHARE_EQUAL)
            st->rho[g] = 1.0 / n_active;
        else if ((int)r->val[PM_SHARE] == SHARE_SIZE)
            st->rho[g] = (double)size[g] / (double)r->ctx.n_items;
        else /* the authors' rho = (1 + 1/num_providers) * providerLen / sum(providerLen) */
            st->rho[g] = (1.0 + 1.0 / n_active) * (double)size[g] / (double)r->ctx.n_items;
    }
    st->lambda = r->val[PM_LAMBDA];
    /* The authors' step is eta / sqrt(T), T the users in the horizon; unscaled when T is
     * unknown. */
    st->eta_t = r->val[PM_ETA] / (r->ctx.n_users > 0 ? sqrt((double)r->ctx.n_users) : 1.0);
    st->momentum = r->val[PM_MOMENTUM];
    st->sigmoid = (int)r->val[PM_NORM] == NORM_SIGMOID;
    st->horizon_k = (double)r->ctx.n_users * r->ctx.k;
    double slack = r->val[PM_SLACK];
    st->capped = slack > 0.0 && r->ctx.n_users > 0;
    for (int g = 0; g < G; g++)
        st->budget0[g] = st->capped ? slack * (double)r->ctx.n_users * r->ctx.k * st->rho[g] : INFINITY;
    r->state = st;
    pmmf_reset(r);
    return PS_OK;
}

static void pmmf_free(ps_reranker *r)
{
    free(r->state);
    r->state = NULL;
}

/* Euclidean projection of y onto { y : sum_g min(y_g, 0) >= -lambda } — equivalently onto
 * every subset constraint sum_{g in S} y_g >= -lambda, the worst subset being the negative
 * entries. KKT: y_g >= 0 stay; negative y_g become min(y_g + nu, 0) with nu >= 0 the root of
 * sum_{y_g < 0} min(y_g + nu, 0) = -lambda (water filling over the sorted negatives). */
static void project(double *y, int n, double lambda)
{
    double neg[G];
    int m = 0;
    double sum = 0.0;
    for (int g = 0; g < n; g++) {
        if (y[g] < 0.0) {
            neg[m++] = y[g];
            sum += y[g];
        }
    }
    if (sum >= -lambda)
        return;
    /* ascending insertion sort (m <= 3) */
    for (int a = 1; a < m; a++) {
        double v = neg[a];
        int b = a - 1;
        while (b >= 0 && neg[b] > v) {
            neg[b + 1] = neg[b];
            b--;
        }
        neg[b + 1] = v;
    }
    double nu = INFINITY; /* no valid r: every negative entry becomes 0 */
    double prefix = sum;
    for (int rr = m; rr >= 1; rr--) {
        double cand = (-lambda - prefix) / rr;
        if (neg[rr - 1] + cand <= 0.0) {
            nu = cand < 0.0 ? 0.0 : cand;
            break;
        }
        prefix -= neg[rr - 1];
    }
    for (int g = 0; g < n; g++) {
        if (y[g] < 0.0)
            y[g] = y[g] + nu < 0.0 ? y[g] + nu : 0.0;
    }
}

static int pmmf_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    pmmf_state *st = r->state;
    const int n = in->n;
    int *idx = in->iwork;
    double *key = in->dwork;
    int exhausted[G];
    for (int g = 0; g < G; g++)
        exhausted[g] = st->capped && st->budget0[g] - (double)st->exposure[g] <= 0.0;
    /* Candidates of groups with budget left first, each part by relevance - mu. */
    int n_open = 0;
    for (int j = 0; j < n; j++) {
        double rel = in->snorm[j];
        if (st->sigmoid) {
            /* Logistic without overflow; NaN stays NaN (sorted last), -inf gives 0. */
            double s = in->score[j];
            rel = s >= 0 ? 1.0 / (1.0 + exp(-s)) : exp(s) / (1.0 + exp(s));
        }
        key[j] = rel - st->mu[in->group[j]];
        if (!exhausted[in->group[j]])
            idx[n_open++] = j;
    }
    int pos = n_open;
    for (int j = 0; j < n; j++) {
        if (exhausted[in->group[j]])
            idx[pos++] = j;
    }
    ps_rerank_sort_desc(idx, n_open, key);
    ps_rerank_sort_desc(idx + n_open, n - n_open, key);
    int take = n < r->ctx.k ? n : r->ctx.k;
    /* The chosen set is listed in base-score order. */
    for (int j = 0; j < n; j++)
        key[j] = in->score[j];
    ps_rerank_sort_desc(idx, take, key);
    int64_t cnt[G] = { 0 };
    for (int i = 0; i < take; i++) {
        out[i] = in->id[idx[i]];
        cnt[in->group[idx[i]]]++;
    }

    /* Budget accounting and the dual step. */
    st->users++;
    double y[G];
    for (int g = 0; g < G; g++) {
        st->exposure[g] += cnt[g];
        y[g] = 0.0;
        if (!st->active[g])
            continue;
        /* The authors' gradient: remaining budget / (T k) - consumption; with budgets off the
         * remaining budget never moves, so its rate stays rho. */
        double rate = st->capped ? (st->budget0[g] - (double)st->exposure[g]) / st->horizon_k
                                 : st->rho[g];
        double grad = rate - (double)cnt[g] / take;
        st->grad_mom[g] = st->momentum * grad + (1.0 - st->momentum) * st->grad_mom[g];
        double mu_tilde = st->mu[g] - st->eta_t * st->grad_mom[g] / (st->rho[g] * st->rho[g]);
        y[g] = st->rho[g] * mu_tilde;
    }
    project(y, G, st->lambda);
    for (int g = 0; g < G; g++)
        st->mu[g] = st->active[g] ? y[g] / st->rho[g] : 0.0;
    return PS_OK;
}

int ps_reranker_budget(const ps_reranker *r, ps_rerank_budget *out, ps_error *err)
{
    if (!r || !out)
        return ps_fail(err, "rerank budget: NULL argument");
    if (r->m != &ps_rerank_pmmf_impl)
        return ps_fail(err, "rerank budget: method %s keeps no budget (only pmmf does)",
                       r->m->info.name);
    const pmmf_state *st = r->state;
    out->users_served = st->users;
    for (int g = 0; g < G; g++) {
        out->exposure[g] = st->exposure[g];
        out->share[g] = st->rho[g];
        out->budget_initial[g] = st->budget0[g];
        out->budget_remaining[g] = st->budget0[g] - (double)st->exposure[g];
        out->mu[g] = st->mu[g];
    }
    return PS_OK;
}

/* lambda x eta with the authors' shares (SPEC §7): lambda only bounds the dual bonuses, eta
 * sets how fast the duals move, so both axes are needed to reach the strongest point. */
#define P3(l, e) { 3, { "lambda=" l, "eta=" e, "share=size43" } }
#define PROW(l) P3(l, "0.0001"), P3(l, "0.001"), P3(l, "0.01")
static const ps_rerank_setting pmmf_grid[] = {
    PROW("0.001"), PROW("0.01"), PROW("0.1"), PROW("1"), PROW("10"),
};
#undef PROW
#undef P3

const ps_rerank_method_impl ps_rerank_pmmf_impl = {
    .info = { .name = "pmmf",
              .doc = "P-MMF: online dual mirror descent for max-min fair exposure of head/mid/tail (sequential)",
              .params_doc = "lambda: real in [0, 1e6], default 0.1; eta: real in (0, 1e6], default 0.001; "
                            "momentum: real in (0, 1], default 0.1; share: equal|size|size43, default size43; "
                            "slack: real in [0, 1e6], default 1 (0 = no budget cap); "
                            "norm: sigmoid|minmax, default sigmoid; "
                            "grid: lambda in {0.001, 0.01, 0.1, 1, 10} x eta in {1e-4, 1e-3, 1e-2}, share=size43",
              .sequential = 1,
              .default_L = 0 },
    .params = pmmf_params,
    .n_params = 6,
    .grid = pmmf_grid,
    .n_grid = (int)(sizeof pmmf_grid / sizeof pmmf_grid[0]),
    .init = pmmf_init,
    .apply = pmmf_apply,
    .reset = pmmf_reset,
    .free_state = pmmf_free,
};
