/* The fairness–accuracy sweep: grid evaluation with per-split caches, the selection rule,
 * Pareto fronts and their comparison (see include/popsteer/sweep.h). No printing. */
#include "popsteer/sweep.h"
#include "popsteer/dist.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/popsteer.h"
#include "popsteer/rerank.h"
#include "popsteer/steer.h"
#include "popsteer/steer_ablation.h"
#include "popsteer/steer_decoder.h"
#include "popsteer/steer_rule.h"
#include "util/clock.h"

#define SWEEP_BATCH 256 /* users per scoring batch: the batch size of ps_user_vectors and eval's scorers */
#define TIE_EPS 1e-12

/* ======================= selection, fronts, comparison ======================= */

double ps_rel_reduction(double base, double x)
{
    return base > 0 ? (base - x) / base : base - x;
}

void ps_select_rule_init(ps_select_rule *r)
{
    r->objective = PS_SELECT_TRADEOFF;
    r->max_ndcg_drop = 0.05;
}

static double objective_of(const ps_select_rule *rule, double drop, double cut)
{
    return rule->objective == PS_SELECT_TRADEOFF ? cut - drop : cut;
}

int ps_select_point(const double *ndcg, const double *gini, int n, double base_ndcg, double base_gini,
                    const ps_select_rule *rule)
{
    int best = -1;
    double best_obj = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(ndcg[i]) || !isfinite(gini[i]))
            continue;
        double drop = ps_rel_reduction(base_ndcg, ndcg[i]);
        /* the tolerance keeps a point whose drop equals the budget up to rounding eligible */
        if (drop > rule->max_ndcg_drop + TIE_EPS)
            continue;
        double obj = objective_of(rule, drop, ps_rel_reduction(base_gini, gini[i]));
        if (best < 0 || obj > best_obj + TIE_EPS || (fabs(obj - best_obj) <= TIE_EPS && ndcg[i] > ndcg[best])) {
            best = i;
            best_obj = obj;
        }
    }
    return best;
}

static int dominates(double ga, double na, double gb, double nb)
{
    return ga <= gb && na >= nb && (ga < gb || na > nb);
}

static int on_front(const double *gini, const double *ndcg, int n, int i)
{
    for (int j = 0; j < n; j++) {
        if (j == i || !isfinite(gini[j]) || !isfinite(ndcg[j]))
            continue;
        if (dominates(gini[j], ndcg[j], gini[i], ndcg[i]))
            return 0;
        if (j < i && gini[j] == gini[i] && ndcg[j] == ndcg[i])
            return 0; /* an exact duplicate of an earlier point */
    }
    return 1;
}

int ps_pareto_front(const double *gini, const double *ndcg, int n, int *front)
{
    int nf = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(gini[i]) && isfinite(ndcg[i]) && on_front(gini, ndcg, n, i))
            front[nf++] = i;
    /* insertion sort by Gini: fronts are a few dozen points */
    for (int a = 1; a < nf; a++) {
        int v = front[a], b = a;
        for (; b > 0 && gini[front[b - 1]] > gini[v]; b--)
            front[b] = front[b - 1];
        front[b] = v;
    }
    return nf;
}

/* Where x falls on a front (g ascending): its value there is y[i] + (y[j] − y[i]) · t. */
static void front_locate(const double *g, int n, double x, int *i, int *j, double *t)
{
    *i = *j = 0;
    *t = 0;
    if (n == 1 || x <= g[0])
        return;
    for (int q = 1; q < n; q++)
        if (x <= g[q]) {
            double span = g[q] - g[q - 1];
            *i = span > 0 ? q - 1 : q;
            *j = q;
            *t = span > 0 ? (x - g[q - 1]) / span : 0;
            return;
        }
    *i = *j = n - 1;
}

/* Linear interpolation of a front (x ascending) at x inside its range. */
static double front_at(const double *g, const double *y, int n, double x)
{
    int i, j;
    double t;
    front_locate(g, n, x, &i, &j, &t);
    return y[i] + (y[j] - y[i]) * t;
}

static double front_sample(double lo, double hi, int s)
{
    return lo + (hi - lo) * s / (PS_FRONT_SAMPLES - 1);
}

void ps_front_mean_weights(const double *gini, int n, double lo, double hi, double *w)
{
    for (int q = 0; q < n; q++)
        w[q] = 0;
    for (int s = 0; s < PS_FRONT_SAMPLES; s++) {
        int i, j;
        double t;
        front_locate(gini, n, front_sample(lo, hi, s), &i, &j, &t);
        w[i] += (1 - t) / PS_FRONT_SAMPLES;
        w[j] += t / PS_FRONT_SAMPLES;
    }
}

static int count_dominated(const double *ga, const double *na, int n_a, const double *gb, const double *nb, int n_b)
{
    int c = 0;
    for (int i = 0; i < n_b; i++)
        for (int j = 0; j < n_a; j++)
            if (ga[j] <= gb[i] && na[j] >= nb[i]) {
                c++;
                break;
            }
    return c;
}

void ps_front_compare(const double *gini_a, const double *ndcg_a, int n_a, const double *gini_b,
                      const double *ndcg_b, int n_b, ps_front_cmp *out)
{
    memset(out, 0, sizeof *out);
    out->n_b = n_b;
    if (n_a < 1 || n_b < 1)
        return;
    out->n_dominated = count_dominated(gini_a, ndcg_a, n_a, gini_b, ndcg_b, n_b);
    double lo = fmax(gini_a[0], gini_b[0]), hi = fmin(gini_a[n_a - 1], gini_b[n_b - 1]);
    if (lo > hi)
        return;
    out->has_overlap = 1;
    out->gini_lo = lo;
    out->gini_hi = hi;
    int above = 0;
    double sum = 0;
    for (int s = 0; s < PS_FRONT_SAMPLES; s++) {
        double x = front_sample(lo, hi, s);
        double diff = front_at(gini_a, ndcg_a, n_a, x) - front_at(gini_b, ndcg_b, n_b, x);
        sum += diff;
        above += diff >= -TIE_EPS;
        out->min_diff = s == 0 || diff < out->min_diff ? diff : out->min_diff;
        out->max_diff = s == 0 || diff > out->max_diff ? diff : out->max_diff;
    }
    out->mean_diff = sum / PS_FRONT_SAMPLES;
    out->share_above = (double)above / PS_FRONT_SAMPLES;
}

ps_front_verdict ps_front_verdict_of(const ps_front_cmp *c)
{
    if (c->n_b > 0 && c->n_dominated == c->n_b)
        return PS_FRONT_ABOVE;
    if (!c->has_overlap)
        return PS_FRONT_DISJOINT;
    if (c->share_above >= 1)
        return PS_FRONT_ABOVE_OVERLAP;
    if (c->share_above <= 0 && c->n_dominated == 0)
        return PS_FRONT_BELOW;
    return PS_FRONT_CROSSING;
}

const char *ps_front_verdict_name(ps_front_verdict v)
{
    switch (v) {
    case PS_FRONT_ABOVE: return "above";
    case PS_FRONT_ABOVE_OVERLAP: return "above on the common Gini range";
    case PS_FRONT_CROSSING: return "crossing";
    case PS_FRONT_BELOW: return "below";
    default: return "no common Gini range";
    }
}

/* ======================= options and grid ======================= */

static const double DEFAULT_ALPHAS[] = {0, 0.5, 1, 1.5, 2, 3, 4, 5};
/* On Last.fm direction steering at 0.5 typical lengths already costs 2.8 % NDCG@10, at 1 a third
 * of it: its grid is finer and shorter than PopSteer's */
static const double DEFAULT_DIRECTION_ALPHAS[] = {0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5};
static const int DEFAULT_NEURONS[] = {256, 1024, 2048, 0};
static const char *const DEFAULT_METHODS[] = {"random", "penalty", "fair", "xquad", "cp", "pmmf", "pct"};

void ps_sweep_options_init(ps_sweep_options *o)
{
    memset(o, 0, sizeof *o);
    o->alphas = DEFAULT_ALPHAS;
    o->n_alphas = (int)(sizeof DEFAULT_ALPHAS / sizeof DEFAULT_ALPHAS[0]);
    o->neurons = DEFAULT_NEURONS;
    o->n_neurons = (int)(sizeof DEFAULT_NEURONS / sizeof DEFAULT_NEURONS[0]);
    o->methods = DEFAULT_METHODS;
    o->n_methods = (int)(sizeof DEFAULT_METHODS / sizeof DEFAULT_METHODS[0]);
    o->k = 10;
    o->seed = 42;
    o->popsteer_u = 1;
    o->popsteer_i = 1;
    o->ablations = 1;
    o->direction_alphas = DEFAULT_DIRECTION_ALPHAS;
    o->n_direction_alphas = (int)(sizeof DEFAULT_DIRECTION_ALPHAS / sizeof DEFAULT_DIRECTION_ALPHAS[0]);
    o->probe_seed = 42;
    o->bootstrap = PS_BOOTSTRAP_DEFAULT_RESAMPLES;
    o->ci_level = 0.95;
}

static int check_options(const ps_sweep_options *o, ps_error *err)
{
    if (o->n_alphas < 0 || o->n_alphas > PS_SWEEP_MAX_GRID || o->n_neurons < 0 || o->n_neurons > PS_SWEEP_MAX_GRID ||
        o->n_methods < 0 || o->n_methods > PS_SWEEP_MAX_GRID || o->n_direction_alphas < 0 ||
        o->n_direction_alphas > PS_SWEEP_MAX_GRID || (o->n_direction_alphas && !o->direction_alphas))
        return ps_fail(err, "sweep: at most %d alphas, neuron counts and methods each", PS_SWEEP_MAX_GRID);
    for (int i = 0; i < o->n_direction_alphas; i++)
        if (!isfinite(o->direction_alphas[i]) || o->direction_alphas[i] < 0)
            return ps_fail(err, "sweep: direction alpha %g is not a finite number >= 0", o->direction_alphas[i]);
    for (int i = 0; i < o->n_alphas; i++)
        if (!isfinite(o->alphas[i]) || o->alphas[i] < 0)
            return ps_fail(err, "sweep: alpha %g is not a finite number >= 0 (a negative alpha would push users "
                                "towards popular items)", o->alphas[i]);
    for (int i = 0; i < o->n_neurons; i++)
        if (o->neurons[i] < 0)
            return ps_fail(err, "sweep: neuron count %d is negative", o->neurons[i]);
    if (o->k < 1)
        return ps_fail(err, "sweep: k must be at least 1 (got %d)", o->k);
    if (o->candidates < 0)
        return ps_fail(err, "sweep: the candidate list length must be >= 0 (got %d)", o->candidates);
    if (o->bootstrap < 0)
        return ps_fail(err, "sweep: the number of bootstrap resamples must be >= 0 (got %d)", o->bootstrap);
    if (!(o->ci_level > 0 && o->ci_level < 1))
        return ps_fail(err, "sweep: the confidence level must be in (0, 1) (got %g)", o->ci_level);
    return PS_OK;
}

/* The distinct N values after capping at m, in the given order. */
static int distinct_neurons(const int *neurons, int n_neurons, int m, int *out)
{
    int n = 0;
    for (int i = 0; i < n_neurons; i++) {
        int N = neurons[i] <= 0 || neurons[i] > m ? m : neurons[i];
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= out[j] == N;
        if (!seen)
            out[n++] = N;
    }
    return n;
}

static ps_sweep_point *add_point(ps_sweep_result *r, ps_point_kind kind, const char *method)
{
    ps_sweep_point *p = &r->points[r->n_points++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    snprintf(p->method, sizeof p->method, "%s", method);
    return p;
}

static void rerank_setting_text(const ps_rerank_setting *s, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_params && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? " " : "", s->params[i]);
    if (!s->n_params)
        snprintf(buf, size, "default");
}

static int count_rerank_points(const ps_sweep_options *o, int *total, ps_error *err)
{
    *total = 0;
    for (int i = 0; i < o->n_methods; i++) {
        const ps_rerank_setting *set;
        int n;
        if (ps_rerank_default_grid(o->methods[i], &set, &n, err) != PS_OK)
            return PS_ERR;
        for (int j = 0; j < i; j++)
            if (!strcmp(o->methods[i], o->methods[j]))
                return ps_fail(err, "sweep: method '%s' is listed twice", o->methods[i]);
        *total += n;
    }
    return PS_OK;
}

/* PopSteer-U's grid beyond the symmetric strengths: (α_pop, α_unpop) pairs that weigh the popular
 * latents twice as much (docs/steering.md). Its N values: 1024 and all. */
static const double RULE_PAIRS[][2] = {{4, 2}, {8, 4}};
#define N_RULE_PAIRS ((int)(sizeof RULE_PAIRS / sizeof RULE_PAIRS[0]))
static const int RULE_NEURONS[] = {1024, 0};

static void add_rule_point(ps_sweep_result *r, double alpha_pop, double alpha_unpop, int N)
{
    ps_sweep_point *p = add_point(r, PS_POINT_RULE, "popsteer-u");
    p->alpha_pop = alpha_pop;
    p->alpha = alpha_unpop;
    p->neurons = N;
    if (alpha_pop == alpha_unpop)
        snprintf(p->setting, sizeof p->setting, "alpha=%g N=%d", alpha_unpop, N);
    else
        snprintf(p->setting, sizeof p->setting, "a_pop=%g a_unpop=%g N=%d", alpha_pop, alpha_unpop, N);
}

/* PopSteer-U's points (none when o->popsteer_u is 0); counts them when r is NULL. */
static int rule_grid(const ps_sweep_options *o, int m, ps_sweep_result *r)
{
    if (!o->popsteer_u)
        return 0;
    int Ns[2], n_N = distinct_neurons(RULE_NEURONS, 2, m, Ns), n = 0;
    for (int j = 0; j < n_N; j++) {
        for (int i = 0; i < o->n_alphas; i++) {
            if (!(o->alphas[i] > 0))
                continue; /* α = 0 keeps the SAE's error: that is plain SASRec, already a point */
            n++;
            if (r)
                add_rule_point(r, o->alphas[i], o->alphas[i], Ns[j]);
        }
        for (int q = 0; q < N_RULE_PAIRS; q++) {
            n++;
            if (r)
                add_rule_point(r, RULE_PAIRS[q][0], RULE_PAIRS[q][1], Ns[j]);
        }
    }
    return n;
}

/* PopSteer-I's points (none when o->popsteer_i is 0): N ∈ {1024, all} × ps-direction's positive
 * strengths; counts them when r is NULL. */
static int decoder_grid(const ps_sweep_options *o, int m, ps_sweep_result *r)
{
    if (!o->popsteer_i)
        return 0;
    int Ns[2], n_N = distinct_neurons(RULE_NEURONS, 2, m, Ns), n = 0;
    for (int j = 0; j < n_N; j++)
        for (int i = 0; i < o->n_direction_alphas; i++) {
            if (!(o->direction_alphas[i] > 0))
                continue; /* α = 0 is SASRec itself */
            n++;
            if (!r)
                continue;
            ps_sweep_point *p = add_point(r, PS_POINT_DECODER, "popsteer-i");
            p->alpha = o->direction_alphas[i];
            p->neurons = Ns[j];
            snprintf(p->setting, sizeof p->setting, "alpha=%g N=%d", p->alpha, p->neurons);
        }
    return n;
}

/* The ablations in grid order; direction and mean have no N. */
static const struct { ps_point_kind kind; const char *name; } ABLATIONS[] = {
    {PS_POINT_RANDOM, "ps-random"}, {PS_POINT_UNWEIGHTED, "ps-unweighted"},
    {PS_POINT_CONDITIONAL, "ps-conditional"}, {PS_POINT_DIRECTION, "ps-direction"}, {PS_POINT_MEAN, "ps-mean"}};
#define N_ABLATIONS ((int)(sizeof ABLATIONS / sizeof ABLATIONS[0]))

/* The ablations' points: each over PopSteer's positive α × N (direction: its own positive α only);
 * none when o->ablations is 0. Counts them when r is NULL. */
static int ablation_grid(const ps_sweep_options *o, const int *Ns, int n_N, ps_sweep_result *r)
{
    int n = 0;
    for (int a = 0; o->ablations && a < N_ABLATIONS; a++) {
        int direction = ABLATIONS[a].kind == PS_POINT_DIRECTION || ABLATIONS[a].kind == PS_POINT_MEAN;
        int per_alpha = direction ? 1 : n_N;
        const double *alphas = direction ? o->direction_alphas : o->alphas;
        int n_alphas = direction ? o->n_direction_alphas : o->n_alphas;
        for (int j = 0; j < per_alpha; j++)
            for (int i = 0; i < n_alphas; i++) {
                if (!(alphas[i] > 0))
                    continue; /* α = 0 is the SAE reference (or, for direction, SASRec itself) */
                n++;
                if (!r)
                    continue;
                ps_sweep_point *p = add_point(r, ABLATIONS[a].kind, ABLATIONS[a].name);
                p->alpha = alphas[i];
                if (direction) {
                    snprintf(p->setting, sizeof p->setting, "alpha=%g", p->alpha);
                } else {
                    p->neurons = Ns[j];
                    snprintf(p->setting, sizeof p->setting, "alpha=%g N=%d", p->alpha, p->neurons);
                }
            }
    }
    return n;
}

/* Lays out every grid point (metrics still empty). */
static int build_grid(const ps_sweep_options *o, int m, ps_sweep_result *r, ps_error *err)
{
    int Ns[PS_SWEEP_MAX_GRID], n_N = distinct_neurons(o->neurons, o->n_neurons, m, Ns), n_pos = 0, n_rr;
    for (int i = 0; i < o->n_alphas; i++)
        n_pos += o->alphas[i] > 0;
    if (count_rerank_points(o, &n_rr, err) != PS_OK)
        return PS_ERR;
    int total = 2 + n_N * n_pos + rule_grid(o, m, NULL) + decoder_grid(o, m, NULL) + ablation_grid(o, Ns, n_N, NULL) +
                n_rr;
    r->points = ps_calloc((size_t)total, sizeof *r->points, "sweep points", err);
    if (!r->points)
        return PS_ERR;
    add_point(r, PS_POINT_SASREC, "sasrec");
    snprintf(add_point(r, PS_POINT_POPSTEER, "popsteer")->setting, sizeof r->points[0].setting, "alpha=0");
    for (int j = 0; j < n_N; j++)
        for (int i = 0; i < o->n_alphas; i++) {
            if (!(o->alphas[i] > 0))
                continue;
            ps_sweep_point *p = add_point(r, PS_POINT_POPSTEER, "popsteer");
            p->alpha = o->alphas[i];
            p->neurons = Ns[j];
            snprintf(p->setting, sizeof p->setting, "alpha=%g N=%d", p->alpha, p->neurons);
        }
    rule_grid(o, m, r);
    decoder_grid(o, m, r);
    ablation_grid(o, Ns, n_N, r);
    for (int i = 0; i < o->n_methods; i++) {
        const ps_rerank_setting *set;
        int n;
        ps_rerank_default_grid(o->methods[i], &set, &n, err);
        int L = o->candidates ? o->candidates : ps_rerank_method_default_L(o->methods[i]);
        for (int j = 0; j < n; j++) {
            ps_sweep_point *p = add_point(r, PS_POINT_RERANK, o->methods[i]);
            rerank_setting_text(&set[j], p->setting, sizeof p->setting);
            p->candidates = L < r->L ? L : r->L; /* r->L: the cache, already capped at n_items */
        }
    }
    return PS_OK;
}

/* ======================= evaluation ======================= */

typedef struct sweep_worker {
    ps_metrics_acc acc;
    int64_t decile[PS_SWEEP_DECILES];
    int32_t *list;
    int failed;
    ps_error err;
} sweep_worker;

/* Everything that does not depend on the grid point, for one split. */
typedef struct split_cache {
    int64_t n;
    const ps_sample *samples;
    float *h;          /* [n, d] SASRec user vectors */
    int32_t *cand;     /* [n, L] plain SASRec's top-L */
    float *cand_scores;
    int32_t *n_cand;   /* [n] real candidates */
} split_cache;

typedef struct sweep_ctx {
    const ps_sasrec *model;
    const ps_sae *sae;
    const ps_latent_table *latents;
    const ps_dataset *ds;
    const ps_sweep_options *o;
    int k, L, d, m, nth;
    size_t V;
    uint8_t *decile;   /* [n_items + 1] */
    split_cache c;
    ps_sae_encoder enc;               /* its bias carries the current point's shifts */
    ps_ilad_vectors ilad;             /* unit item vectors for ilad@k (and ilad_features@k) */
    float *val, *hrec, *scores;       /* one batch */
    int32_t *idx;
    sweep_worker *w;
    /* per-user results of the current point, for the bootstrap intervals */
    int32_t *rank_u;                  /* [n_users] target rank, 0 beyond the list */
    int32_t *lists;                   /* [n_users, k] top-k lists */
    float *ndcg_u;                    /* [n_users] */
    ps_bootstrap boot;                /* the users' resamples; empty without bootstrap */
    double *res, *base_ndcg, *base_gini; /* [R] the point's, and plain SASRec's on this split */
    /* ps-direction: the synthetic groups' mean user vectors [d] each (probe_means: computed) and ν,
     * the mean ‖h‖ of the validation users (set while the validation split's cache exists) */
    double *mean_pop, *mean_lt, nu;
    double *mean_h;                   /* ps-mean: [2d] the validation users' mean h, then d zeros */
    int probe_means;
    float *delta;                     /* [d] the current direction or PopSteer-I point's added vector */
    ps_latent_table item_table;       /* PopSteer-I: the item-side probe (item_table.m 0 until needed) */
    int replicated;                   /* the current point ran every user on every rank (a sequential
                                         re-ranker): nothing to reduce over the ranks */
} sweep_ctx;

/* Under mpirun (ps_sweep_options.dist) each rank scores its share of the users [lo, hi), in whole
 * batches of SWEEP_BATCH: the batches are the one-process run's, so the scores have its bits, and
 * the reduction of the integer counters gives its numbers (as eval's). Every user in one process. */
static void user_share(const sweep_ctx *x, int64_t *lo, int64_t *hi)
{
    int64_t b0, b1;
    ps_dist_share(x->o->dist, (x->c.n + SWEEP_BATCH - 1) / SWEEP_BATCH, &b0, &b1);
    *lo = b0 * SWEEP_BATCH;
    *hi = b1 * SWEEP_BATCH < x->c.n ? b1 * SWEEP_BATCH : x->c.n;
}

static void workers_free(sweep_ctx *x)
{
    for (int t = 0; x->w && t < x->nth; t++) {
        ps_metrics_acc_free(&x->w[t].acc);
        free(x->w[t].list);
    }
    free(x->w);
    x->w = NULL;
}

/* Fresh accumulators for one point on one split. */
static int workers_reset(sweep_ctx *x, ps_error *err)
{
    x->replicated = 0;
    if (x->rank_u && ps_dist_size(x->o->dist) > 1) { /* the other ranks' users: zero for the gather */
        memset(x->rank_u, 0, (size_t)x->c.n * sizeof *x->rank_u);
        memset(x->lists, 0, (size_t)x->c.n * (size_t)x->k * sizeof *x->lists);
    }
    for (int t = 0; t < x->nth; t++) {
        sweep_worker *w = &x->w[t];
        ps_metrics_acc_free(&w->acc);
        memset(w->decile, 0, sizeof w->decile);
        w->failed = 0;
        if (ps_metrics_acc_init(&w->acc, x->k, x->ds->n_items, x->ds->label, x->ds->train_count, err) != PS_OK ||
            ps_ilad_vectors_attach(&x->ilad, &w->acc, err) != PS_OK)
            return PS_ERR;
    }
    return PS_OK;
}

/* The point's counters summed over the ranks (integers: exact), and the users' ranks and lists
 * the bootstrap reads gathered from them. */
static int reduce_point(sweep_ctx *x, ps_error *err)
{
    const ps_dist *dist = x->o->dist;
    if (ps_dist_size(dist) <= 1 || x->replicated)
        return PS_OK;
    const size_t n = (size_t)x->c.n;
    if (ps_dist_sum_metrics(dist, &x->w[0].acc, err) != PS_OK ||
        ps_dist_sum_i64(dist, x->w[0].decile, PS_SWEEP_DECILES, err) != PS_OK)
        return PS_ERR;
    if (x->rank_u && (ps_dist_gather_disjoint(dist, x->rank_u, n * sizeof *x->rank_u, err) != PS_OK ||
                      ps_dist_gather_disjoint(dist, x->lists, n * (size_t)x->k * sizeof *x->lists, err) != PS_OK))
        return PS_ERR;
    return PS_OK;
}

/* After the plain SASRec point: every user's re-ranking candidates on every rank (a sequential
 * re-ranker runs all users everywhere; the others read only their own). */
static int gather_candidates(sweep_ctx *x, ps_error *err)
{
    const ps_dist *dist = x->o->dist;
    const size_t n = (size_t)x->c.n, L = (size_t)x->L;
    if (ps_dist_gather_disjoint(dist, x->c.cand, n * L * sizeof *x->c.cand, err) != PS_OK ||
        ps_dist_gather_disjoint(dist, x->c.cand_scores, n * L * sizeof *x->c.cand_scores, err) != PS_OK ||
        ps_dist_gather_disjoint(dist, x->c.n_cand, n * sizeof *x->c.n_cand, err) != PS_OK)
        return ps_fail_wrap(err, "sweep: sharing the re-ranking candidates between ranks");
    return PS_OK;
}

static int workers_finish(sweep_ctx *x, ps_metrics *m, int64_t decile[PS_SWEEP_DECILES], ps_error *err)
{
    for (int t = 0; t < x->nth; t++)
        if (x->w[t].failed) {
            *err = x->w[t].err;
            return PS_ERR;
        }
    for (int t = 1; t < x->nth; t++) {
        if (ps_metrics_acc_merge(&x->w[0].acc, &x->w[t].acc, err) != PS_OK)
            return PS_ERR;
        for (int q = 0; q < PS_SWEEP_DECILES; q++)
            x->w[0].decile[q] += x->w[t].decile[q];
    }
    if (reduce_point(x, err) != PS_OK)
        return ps_fail_wrap(err, "sweep: summing the point over the ranks");
    ps_metrics_acc_finish(&x->w[0].acc, m);
    memcpy(decile, x->w[0].decile, sizeof x->w[0].decile);
    return PS_OK;
}

/* Adds user u's list to the thread's accumulator and exposure deciles, and keeps it for the
 * bootstrap. */
static void add_user(sweep_ctx *x, sweep_worker *w, int64_t u, int32_t target, int32_t rank)
{
    ps_metrics_acc_add(&w->acc, target, rank, w->list);
    if (x->rank_u) {
        x->rank_u[u] = rank;
        memcpy(x->lists + (size_t)u * x->k, w->list, (size_t)x->k * sizeof *w->list);
    }
    for (int j = 0; j < x->k; j++)
        if (w->list[j] > 0 && w->list[j] <= x->ds->n_items)
            w->decile[x->decile[w->list[j]]]++;
}

/* Top-k and target rank of a batch of full score rows; with cache_candidates also the top-L
 * candidates the re-rankers start from (plain SASRec pass). */
static void rank_scores(sweep_ctx *x, int64_t first, int B, int cache_candidates)
{
    const ps_dataset *ds = x->ds;
#pragma omp parallel for schedule(dynamic, 16)
    for (int b = 0; b < B; b++) {
        sweep_worker *w = &x->w[omp_get_thread_num()];
        const float *s = x->scores + (size_t)b * x->V;
        int64_t u = first + b;
        int32_t target = ps_sample_target(ds, x->c.samples[u]);
        ps_topk(s, ds->n_items, x->k, NULL, w->list);
        add_user(x, w, u, target, ps_target_rank(s, ds->n_items, target, NULL));
        if (cache_candidates)
            x->c.n_cand[u] = ps_rerank_candidates(s, ds->n_items, x->L, NULL, x->c.cand + (size_t)u * x->L,
                                                  x->c.cand_scores + (size_t)u * x->L);
    }
}

/* The steered scorer's chain (ps_steer_scorer), so a point has the numbers `eval --alpha` gives. */
static void batch_scores_steered(sweep_ctx *x, int64_t first, int B)
{
    ps_sae_encoder_topk(&x->enc, x->c.h + (size_t)first * x->d, B, x->idx, x->val);
    ps_sae_decode(x->sae, x->idx, x->val, B, x->hrec);
    ps_sasrec_score(x->model, x->hrec, B, x->scores);
}

/* A plan of the paper or of an ablation variant for point p. */
static int point_plan(const sweep_ctx *x, const ps_sweep_point *p, ps_steer_plan *plan, ps_error *err)
{
    const ps_latent_table *t = x->latents;
    ps_steer_variant v = p->kind == PS_POINT_RANDOM ? PS_STEER_RANDOM
                         : p->kind == PS_POINT_UNWEIGHTED ? PS_STEER_UNWEIGHTED : PS_STEER_PAPER;
    return ps_steer_plan_make_variant(t->d, t->std_pop, t->std_unpop, t->m, p->neurons, p->alpha, v, x->o->seed,
                                      plan, err);
}

/* kind SASREC: plain scores (and the candidate cache); POPSTEER: through the SAE and the plan. */
static void eval_scored(sweep_ctx *x, ps_point_kind kind, const ps_steer_plan *plan)
{
    if (kind != PS_POINT_SASREC) {
        ps_sae_encoder_reset_bias(&x->enc);
        if (plan)
            ps_steer_shift_bias(plan, x->enc.bias);
    }
    int64_t lo, hi;
    user_share(x, &lo, &hi);
    for (int64_t first = lo; first < hi; first += SWEEP_BATCH) {
        int B = (int)(hi - first < SWEEP_BATCH ? hi - first : SWEEP_BATCH);
        if (kind == PS_POINT_SASREC)
            ps_sasrec_score(x->model, x->c.h + (size_t)first * x->d, B, x->scores);
        else
            batch_scores_steered(x, first, B);
        rank_scores(x, first, B, kind == PS_POINT_SASREC);
    }
}

/* One user through a re-ranker, exactly as ps_rerank_filter does it inside ps_evaluate. */
static void rerank_user(sweep_ctx *x, ps_reranker *r, int candidates, sweep_worker *w, int64_t u)
{
    ps_sample s = x->c.samples[u];
    const int32_t *hist = x->ds->seq + x->ds->user_off[s.user];
    int32_t target = ps_sample_target(x->ds, s);
    int L = x->c.n_cand[u] < candidates ? x->c.n_cand[u] : candidates; /* the method's prefix of the cache */
    if (ps_reranker_apply_ex(r, (int32_t)u, x->c.cand + (size_t)u * x->L, x->c.cand_scores + (size_t)u * x->L, L,
                             hist, s.pos, w->list, &w->err) < 0) {
        w->failed = 1;
        return;
    }
    int32_t rank = 0;
    for (int j = 0; j < x->k; j++)
        if (w->list[j] == target)
            rank = j + 1;
    add_user(x, w, u, target, rank);
}

static void eval_rerank(sweep_ctx *x, ps_reranker *r, int candidates)
{
    if (ps_reranker_is_sequential(r)) { /* pmmf: state evolves user by user, in split order */
        x->replicated = 1;                 /* on every rank, as eval does */
        for (int64_t u = 0; u < x->c.n && !x->w[0].failed; u++)
            rerank_user(x, r, candidates, &x->w[0], u);
        return;
    }
    int64_t lo, hi;
    user_share(x, &lo, &hi);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t u = lo; u < hi; u++) {
        sweep_worker *w = &x->w[omp_get_thread_num()];
        if (!w->failed)
            rerank_user(x, r, candidates, w, u);
    }
}

/* The grid setting a re-ranking point was made from (points store it as text). */
static int find_setting(const ps_sweep_point *p, const ps_rerank_setting **out, ps_error *err)
{
    const ps_rerank_setting *set;
    int n;
    if (ps_rerank_default_grid(p->method, &set, &n, err) != PS_OK)
        return PS_ERR;
    for (int j = 0; j < n; j++) {
        char text[sizeof p->setting];
        rerank_setting_text(&set[j], text, sizeof text);
        if (!strcmp(text, p->setting)) {
            *out = &set[j];
            return PS_OK;
        }
    }
    return ps_fail(err, "sweep: no grid point '%s' for %s", p->setting, p->method);
}

/* A PopSteer-U point: the rule scores the cached user vectors batch by batch (its shift differs
 * per user, so it cannot be folded into the encoder bias as the paper's can). */
static int eval_rule(sweep_ctx *x, const ps_sweep_point *p, ps_error *err)
{
    const ps_latent_table *t = x->latents;
    ps_steer_rule_probe pr = {t->m, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, t->fire_rate};
    ps_steer_rule_params par = {.N = p->neurons, .alpha_pop = p->alpha_pop, .alpha_unpop = p->alpha,
                                .gate = PS_RULE_GATE_USER, .skip_dead = 0, .keep_error = 1};
    ps_steer_rule rule;
    ps_rule_scorer rs;
    if (ps_steer_rule_make(&pr, &par, &rule, err) != PS_OK)
        return PS_ERR;
    if (ps_rule_scorer_init(&rs, x->model, x->sae, &rule, SWEEP_BATCH, err) != PS_OK) {
        ps_steer_rule_free(&rule);
        return PS_ERR;
    }
    int64_t lo, hi;
    user_share(x, &lo, &hi);
    for (int64_t first = lo; first < hi; first += SWEEP_BATCH) {
        int B = (int)(hi - first < SWEEP_BATCH ? hi - first : SWEEP_BATCH);
        ps_rule_score_vectors(&rs, x->c.h + (size_t)first * x->d, B, x->scores);
        rank_scores(x, first, B, 0);
    }
    ps_rule_scorer_free(&rs);
    ps_steer_rule_free(&rule);
    return PS_OK;
}

/* The synthetic groups' mean user vectors, once per sweep (the probe's users: SASRec on 2 × the
 * probe's prefixes, so only when a direction point needs them). */
static int ensure_probe_means(sweep_ctx *x, ps_error *err)
{
    if (x->probe_means)
        return PS_OK;
    ps_probe_options po;
    ps_probe_options_init(&po);
    po.cap = x->o->probe_cap;
    po.seed = x->o->probe_seed;
    if (!(x->mean_pop = ps_calloc(2 * (size_t)x->d, sizeof *x->mean_pop, "mean user vectors", err)))
        return PS_ERR;
    x->mean_lt = x->mean_pop + x->d;
    if (ps_probe_mean_vectors(x->model, x->ds, &po, x->mean_pop, x->mean_lt, err) != PS_OK)
        return PS_ERR;
    x->probe_means = 1;
    return PS_OK;
}

/* PopSteer-I's table, once per sweep (one [items, d] x [d, m] product). */
static int ensure_item_table(sweep_ctx *x, ps_error *err)
{
    if (x->item_table.m)
        return PS_OK;
    return ps_item_side_table(x->model, x->sae, x->ds, NULL, &x->item_table, err);
}

/* x->delta for a point that adds one vector to every h: ps-direction, PopSteer-I or ps-mean. */
static int point_delta(sweep_ctx *x, const ps_sweep_point *p, ps_error *err)
{
    if (!x->delta && !(x->delta = ps_calloc((size_t)x->d, sizeof *x->delta, "steering vector", err)))
        return PS_ERR;
    if (p->kind == PS_POINT_MEAN) /* from the mean towards 0: h − α ν m/‖m‖ */
        return ps_direction_delta(x->mean_h, x->mean_h + x->d, x->d, p->alpha, x->nu, x->delta, err);
    if (p->kind == PS_POINT_DIRECTION)
        return ensure_probe_means(x, err) == PS_OK
                   ? ps_direction_delta(x->mean_pop, x->mean_lt, x->d, p->alpha, x->nu, x->delta, err)
                   : PS_ERR;
    return ensure_item_table(x, err) == PS_OK
               ? ps_decoder_delta(x->sae, x->item_table.d, p->neurons, p->alpha, x->nu, x->delta, err)
               : PS_ERR;
}

/* A point that needs its own scoring path: conditional (dense pre-activations), or one vector added
 * to every h (ps-direction, PopSteer-I, ps-mean): this rank's cached user vectors through
 * ps_ablation_score_vectors, batch by batch. */
static int eval_ablation(sweep_ctx *x, const ps_sweep_point *p, ps_error *err)
{
    ps_steer_plan plan = {0};
    double *thr = NULL;
    ps_ablation_scorer as;
    int rc = PS_OK;
    int moves_h = p->kind == PS_POINT_DIRECTION || p->kind == PS_POINT_DECODER || p->kind == PS_POINT_MEAN;
    if (moves_h) {
        rc = point_delta(x, p, err);
    } else {
        const ps_latent_table *t = x->latents;
        rc = point_plan(x, p, &plan, err);
        if (rc == PS_OK && !(thr = ps_calloc((size_t)plan.n, sizeof *thr, "thresholds", err)))
            rc = PS_ERR;
        if (rc == PS_OK)
            ps_steer_conditional_thresholds(&plan, t->d, t->mean_pop, t->std_pop, t->mean_unpop, t->std_unpop, thr);
    }
    if (rc == PS_OK)
        rc = ps_ablation_scorer_init(&as, moves_h ? PS_ABLATION_DIRECTION : PS_ABLATION_CONDITIONAL, x->model,
                                     moves_h ? NULL : x->sae, moves_h ? NULL : &plan, thr, moves_h ? x->delta : NULL,
                                     SWEEP_BATCH, err);
    int64_t lo = 0, hi = 0;
    user_share(x, &lo, &hi);
    for (int64_t first = lo; rc == PS_OK && first < hi; first += SWEEP_BATCH) {
        int B = (int)(hi - first < SWEEP_BATCH ? hi - first : SWEEP_BATCH);
        ps_ablation_score_vectors(&as, x->c.h + (size_t)first * x->d, B, x->scores);
        rank_scores(x, first, B, 0);
    }
    if (rc == PS_OK)
        ps_ablation_scorer_free(&as);
    ps_steer_plan_free(&plan);
    free(thr);
    return rc;
}

static int eval_point(sweep_ctx *x, ps_sweep_point *p, ps_split split, ps_error *err)
{
    if (workers_reset(x, err) != PS_OK)
        return PS_ERR;
    int rc = PS_OK;
    if (p->kind == PS_POINT_SASREC || (p->kind == PS_POINT_POPSTEER && p->alpha == 0)) {
        eval_scored(x, p->kind, NULL);
        if (p->kind == PS_POINT_SASREC && ps_dist_size(x->o->dist) > 1)
            rc = gather_candidates(x, err);
    } else if (p->kind == PS_POINT_POPSTEER || p->kind == PS_POINT_RANDOM || p->kind == PS_POINT_UNWEIGHTED) {
        ps_steer_plan plan; /* the same shift for every user: folded into the encoder bias */
        rc = point_plan(x, p, &plan, err);
        if (rc == PS_OK)
            eval_scored(x, PS_POINT_POPSTEER, &plan);
        ps_steer_plan_free(&plan);
    } else if (p->kind == PS_POINT_RULE) {
        rc = eval_rule(x, p, err);
    } else if (p->kind >= PS_POINT_CONDITIONAL) { /* conditional, direction, PopSteer-I, mean */
        rc = eval_ablation(x, p, err);
    } else {
        ps_rerank_ctx rc_ctx = {x->ds->n_items, x->ds->label, x->ds->train_count, x->k, p->candidates, x->o->seed,
                                x->ds->n_users};
        const ps_rerank_setting *set = NULL;
        ps_reranker *r = NULL;
        rc = find_setting(p, &set, err);
        if (rc == PS_OK && !(r = ps_reranker_create(p->method, &rc_ctx, set->params, set->n_params, err)))
            rc = PS_ERR;
        if (rc == PS_OK)
            eval_rerank(x, r, p->candidates);
        ps_reranker_free(r);
    }
    if (rc == PS_OK)
        rc = workers_finish(x, &p->split[split], p->decile_exposure[split], err);
    if (rc != PS_OK)
        ps_fail_wrap(err, "%s %s", p->method, p->setting);
    return rc;
}

static void cache_free(split_cache *c)
{
    free(c->h);
    free(c->cand);
    free(c->cand_scores);
    free(c->n_cand);
    memset(c, 0, sizeof *c);
}

/* User vectors of one split (the SAE part is recomputed per point: cheaper than keeping
 * [n, m] pre-activations, and it is the scorer's own code path). */
static int cache_build(sweep_ctx *x, ps_split split, ps_error *err)
{
    split_cache *c = &x->c;
    c->n = x->ds->n_users;
    c->samples = ps_split_samples(x->ds, split);
    size_t n = (size_t)c->n;
    c->h = ps_calloc(n * (size_t)x->d, sizeof *c->h, "user vectors", err);
    c->cand = c->h ? ps_calloc(n * (size_t)x->L, sizeof *c->cand, "candidates", err) : NULL;
    c->cand_scores = c->cand ? ps_calloc(n * (size_t)x->L, sizeof *c->cand_scores, "candidates", err) : NULL;
    c->n_cand = c->cand_scores ? ps_calloc(n, sizeof *c->n_cand, "candidates", err) : NULL;
    if (!c->n_cand || ps_user_vectors_dist(x->model, x->ds, c->samples, c->n, c->h, x->o->dist, NULL, NULL, err) != PS_OK)
        return PS_ERR;
    return PS_OK;
}

/* NDCG@k of each user from the target's rank (SPEC §6), as the accumulator counts it. */
static void user_ndcg(const int32_t *rank, int64_t n, int k, float *out)
{
    for (int64_t u = 0; u < n; u++)
        out[u] = rank[u] >= 1 && rank[u] <= k ? (float)(1.0 / log2(rank[u] + 1.0)) : 0.0f;
}

/* The point's intervals against plain SASRec on this split, from the users' ranks and lists it
 * just left in x. Plain SASRec is evaluated first on every split and becomes the base. */
static int point_intervals(sweep_ctx *x, ps_sweep_result *r, int i, ps_split split, ps_error *err)
{
    ps_sweep_point *p = &r->points[i];
    p->ndcg_ci[split] = p->gini_ci[split] = (ps_interval){NAN, NAN};
    if (!x->boot.resamples)
        return PS_OK;
    const int R = x->boot.resamples;
    const int64_t n = x->c.n;
    const int32_t n_items = x->ds->n_items;
    float *ndcg = split == PS_SPLIT_VALID ? r->valid_ndcg + (size_t)i * (size_t)n : x->ndcg_u;
    user_ndcg(x->rank_u, n, x->k, ndcg);
    ps_bootstrap_means(&x->boot, ndcg, x->res);
    if (p->kind == PS_POINT_SASREC) {
        memcpy(x->base_ndcg, x->res, (size_t)R * sizeof *x->res);
        if (split == PS_SPLIT_TEST && ps_bootstrap_gini(&x->boot, x->lists, x->k, n_items, x->base_gini, err) != PS_OK)
            return PS_ERR;
    }
    const ps_metrics *m = &p->split[split], *b = &r->points[0].split[split];
    double d_ndcg = b->ndcg > 0 ? m->ndcg / b->ndcg - 1 : NAN, d_gini = b->gini > 0 ? m->gini / b->gini - 1 : NAN;
    if (ps_bootstrap_interval(x->res, x->base_ndcg, R, 1, d_ndcg, r->ci_level, &p->ndcg_ci[split], err) != PS_OK)
        return PS_ERR;
    if (split != PS_SPLIT_TEST)
        return PS_OK;
    if (ps_bootstrap_gini(&x->boot, x->lists, x->k, n_items, x->res, err) != PS_OK)
        return PS_ERR;
    return ps_bootstrap_interval(x->res, x->base_gini, R, 1, d_gini, r->ci_level, &p->gini_ci[split], err);
}

static void report_progress(const sweep_ctx *x, const char *what, int done, int total)
{
    if (x->o->progress)
        x->o->progress(x->o->progress_ctx, what, done, total);
}

/* What the vector-moving points take from the validation users, for both splits: ν = their mean
 * ‖h‖ (ps-direction's, PopSteer-I's and ps-mean's scale) and their mean h (ps-mean's direction),
 * summed in double in user order. */
static int validation_vectors(sweep_ctx *x, ps_error *err)
{
    x->nu = ps_mean_norm(x->c.h, x->c.n, x->d);
    if (!x->mean_h && !(x->mean_h = ps_calloc(2 * (size_t)x->d, sizeof *x->mean_h, "mean user vector", err)))
        return PS_ERR;
    for (int64_t u = 0; u < x->c.n; u++)
        for (int c = 0; c < x->d; c++)
            x->mean_h[c] += x->c.h[(size_t)u * (size_t)x->d + (size_t)c];
    for (int c = 0; x->c.n && c < x->d; c++)
        x->mean_h[c] /= (double)x->c.n;
    return PS_OK;
}

/* Every point on one split; the SASRec point first, since it fills the candidate cache. */
static int run_split(sweep_ctx *x, ps_sweep_result *r, ps_split split, ps_error *err)
{
    const char *name = split == PS_SPLIT_VALID ? "validation" : "test";
    char what[160];
    snprintf(what, sizeof what, "%s: SASRec user vectors", name);
    report_progress(x, what, split * r->n_points, 2 * r->n_points);
    if (cache_build(x, split, err) != PS_OK)
        return PS_ERR;
    if (split == PS_SPLIT_VALID && validation_vectors(x, err) != PS_OK)
        return PS_ERR;
    for (int i = 0; i < r->n_points; i++) {
        ps_sweep_point *p = &r->points[i];
        double t0 = ps_now_seconds();
        if (eval_point(x, p, split, err) != PS_OK || point_intervals(x, r, i, split, err) != PS_OK)
            return PS_ERR;
        p->seconds += ps_now_seconds() - t0;
        snprintf(what, sizeof what, "%s: %s %s", name, p->method, p->setting);
        report_progress(x, what, split * r->n_points + i + 1, 2 * r->n_points);
    }
    cache_free(&x->c);
    return PS_OK;
}

/* r->history_head_share / tail_share over the validation users' histories. */
static void history_shares(const ps_dataset *ds, ps_sweep_result *r)
{
    double head = 0, tail = 0;
    int64_t users = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        ps_sample s = ds->valid[u];
        const int32_t *h = ds->seq + ds->user_off[s.user];
        int64_t nh = 0, nt = 0;
        for (int32_t j = 0; j < s.pos; j++) {
            nh += ds->label[h[j]] > 0;
            nt += ds->label[h[j]] < 0;
        }
        if (s.pos > 0) {
            head += (double)nh / s.pos;
            tail += (double)nt / s.pos;
            users++;
        }
    }
    r->history_head_share = users ? head / (double)users : 0;
    r->history_tail_share = users ? tail / (double)users : 0;
}

int ps_popularity_deciles(const ps_dataset *ds, uint8_t *decile, int32_t count[PS_SWEEP_DECILES], ps_error *err)
{
    int32_t n = ds->n_items;
    int32_t *order = ps_calloc((size_t)n, sizeof *order, "item order", err);
    if (!order)
        return PS_ERR;
    for (int32_t i = 0; i < n; i++)
        order[i] = i + 1;
    /* Shell sort on (count desc, id asc): qsort's comparator could not see the counts without
     * a global, and the key is total, so the order is the same as any stable sort's. */
    const int64_t *cnt = ds->train_count;
    for (int32_t gap = n / 2; gap > 0; gap /= 2)
        for (int32_t i = gap; i < n; i++) {
            int32_t v = order[i], j = i;
            for (; j >= gap && (cnt[order[j - gap]] < cnt[v] || (cnt[order[j - gap]] == cnt[v] && order[j - gap] > v));
                 j -= gap)
                order[j] = order[j - gap];
            order[j] = v;
        }
    memset(count, 0, PS_SWEEP_DECILES * sizeof *count);
    decile[0] = 0;
    for (int32_t r = 0; r < n; r++) {
        int q = (int)((int64_t)r * PS_SWEEP_DECILES / n);
        decile[order[r]] = (uint8_t)q;
        count[q]++;
    }
    free(order);
    return PS_OK;
}

/* The users' resamples and the per-user buffers the intervals are computed from. */
static int bootstrap_init(sweep_ctx *x, ps_error *err)
{
    size_t n = (size_t)x->ds->n_users, R = (size_t)x->o->bootstrap;
    x->rank_u = ps_calloc(n, sizeof *x->rank_u, "per-user ranks", err);
    x->lists = x->rank_u ? ps_calloc(n * (size_t)x->k, sizeof *x->lists, "per-user lists", err) : NULL;
    x->ndcg_u = x->lists ? ps_calloc(n, sizeof *x->ndcg_u, "per-user NDCG", err) : NULL;
    x->res = x->ndcg_u ? ps_calloc(3 * R, sizeof *x->res, "bootstrap statistics", err) : NULL;
    if (!x->res)
        return PS_ERR;
    x->base_ndcg = x->res + R;
    x->base_gini = x->res + 2 * R;
    return ps_bootstrap_init(&x->boot, x->ds->n_users, x->o->bootstrap, x->o->seed, err);
}

static int ctx_init(sweep_ctx *x, ps_error *err)
{
    size_t B = SWEEP_BATCH, ksae = (size_t)x->sae->cfg.k;
    x->nth = omp_get_max_threads();
    x->V = (size_t)x->ds->n_items + 1;
    x->decile = ps_calloc(x->V, 1, "popularity deciles", err);
    x->val = ps_calloc(B * ksae, sizeof *x->val, "codes", err);
    x->idx = ps_calloc(B * ksae, sizeof *x->idx, "codes", err);
    x->hrec = ps_calloc(B * (size_t)x->d, sizeof *x->hrec, "user vectors", err);
    x->scores = ps_calloc(B * x->V, sizeof *x->scores, "scores", err);
    x->w = ps_calloc((size_t)x->nth, sizeof *x->w, "workers", err);
    int emb_dim = 0;
    const float *emb = ps_sasrec_item_embedding(x->model, &emb_dim);
    if (!emb)
        return ps_fail(err, "sweep: the model has no item_embedding.weight of shape [n_items + 1, d]");
    if (!x->decile || !x->val || !x->idx || !x->hrec || !x->scores || !x->w ||
        ps_sae_encoder_init(&x->enc, x->sae, err) != PS_OK ||
        ps_ilad_vectors_make(&x->ilad, x->ds->n_items, emb, emb_dim, x->o->item_features, x->o->item_features_dim,
                             err) != PS_OK)
        return PS_ERR;
    for (int t = 0; t < x->nth; t++)
        if (!(x->w[t].list = ps_calloc((size_t)x->k, sizeof *x->w[t].list, "top-k list", err)))
            return PS_ERR;
    return x->o->bootstrap ? bootstrap_init(x, err) : PS_OK;
}

static void ctx_free(sweep_ctx *x)
{
    cache_free(&x->c);
    workers_free(x);
    free(x->decile);
    ps_sae_encoder_free(&x->enc);
    ps_ilad_vectors_free(&x->ilad);
    free(x->val);
    free(x->idx);
    free(x->hrec);
    free(x->scores);
    free(x->rank_u);
    free(x->lists);
    free(x->ndcg_u);
    free(x->res);
    free(x->mean_pop);
    free(x->mean_h);
    free(x->delta);
    ps_latent_table_free(&x->item_table);
    ps_bootstrap_free(&x->boot);
}

static int check_inputs(const ps_sasrec *model, const ps_sae *sae, const ps_latent_table *latents,
                        const ps_dataset *ds, ps_error *err)
{
    if (model->cfg.n_items != ds->n_items)
        return ps_fail(err, "sweep: the model has %d items but the dataset %d", model->cfg.n_items, ds->n_items);
    if (ps_sae_fits_model(sae, model, err) != PS_OK)
        return ps_fail_wrap(err, "sweep");
    if (latents->m != sae->cfg.n_latents)
        return ps_fail(err, "sweep: the latents table has %d rows but the SAE %d latents: was it probed on "
                            "another SAE?", latents->m, sae->cfg.n_latents);
    if (ds->n_users < 1)
        return ps_fail(err, "sweep: the dataset has no users");
    return PS_OK;
}

int ps_sweep_run(const ps_sasrec *model, const ps_sae *sae, const ps_latent_table *latents, const ps_dataset *ds,
                 const ps_sweep_options *o, ps_sweep_result *r, ps_error *err)
{
    memset(r, 0, sizeof *r);
    if (check_inputs(model, sae, latents, ds, err) != PS_OK || check_options(o, err) != PS_OK)
        return PS_ERR;
    double t0 = ps_now_seconds();
    sweep_ctx x = {.model = model, .sae = sae, .latents = latents, .ds = ds, .o = o, .k = o->k,
                   .d = model->cfg.d, .m = sae->cfg.n_latents};
    x.L = o->candidates ? o->candidates : PS_RERANK_DEFAULT_L;
    for (int i = 0; !o->candidates && i < o->n_methods; i++) {
        int L = ps_rerank_method_default_L(o->methods[i]);
        x.L = L > x.L ? L : x.L;
    }
    x.L = x.L > ds->n_items ? ds->n_items : x.L;
    if (x.L < o->k)
        return ps_fail(err, "sweep: the candidate list (%d) must be at least as long as the top-k list (%d)", x.L,
                       o->k);
    r->k = o->k;
    r->L = x.L;
    r->n_items = ds->n_items;
    r->n_users = ds->n_users;
    r->n_latents = x.m;
    r->bootstrap = o->bootstrap;
    r->ci_level = o->ci_level;
    r->seed = o->seed;
    int rc = build_grid(o, x.m, r, err);
    if (rc == PS_OK && o->bootstrap &&
        !(r->valid_ndcg = ps_calloc((size_t)r->n_points * (size_t)ds->n_users, sizeof *r->valid_ndcg,
                                    "per-user validation NDCG", err)))
        rc = PS_ERR;
    if (rc == PS_OK)
        rc = ctx_init(&x, err);
    if (rc == PS_OK)
        rc = ps_popularity_deciles(ds, x.decile, r->decile_items, err);
    history_shares(ds, r);
    if (rc == PS_OK && !(r->cohens_d = ps_calloc((size_t)x.m, sizeof *r->cohens_d, "Cohen's d", err)))
        rc = PS_ERR;
    if (rc == PS_OK) {
        memcpy(r->cohens_d, latents->d, (size_t)x.m * sizeof *r->cohens_d);
        rc = run_split(&x, r, PS_SPLIT_VALID, err);
    }
    if (rc == PS_OK)
        rc = run_split(&x, r, PS_SPLIT_TEST, err);
    ctx_free(&x);
    if (rc != PS_OK) {
        ps_sweep_result_free(r);
        return PS_ERR;
    }
    r->seconds = ps_now_seconds() - t0;
    return PS_OK;
}

void ps_sweep_result_free(ps_sweep_result *r)
{
    free(r->points);
    free(r->valid_ndcg);
    free(r->cohens_d);
    memset(r, 0, sizeof *r);
}

/* ======================= summary ======================= */

const char *ps_sweep_base_name(ps_sweep_base b)
{
    return b == PS_BASE_SAE ? "popsteer alpha=0 (SAE-reconstructed SASRec)" : "sasrec (plain SASRec)";
}

/* Validation (ndcg, gini) of points[first .. first+n) into the two arrays. */
static void valid_coords(const ps_sweep_result *r, int first, int n, double *ndcg, double *gini)
{
    for (int i = 0; i < n; i++) {
        ndcg[i] = r->points[first + i].split[PS_SPLIT_VALID].ndcg;
        gini[i] = r->points[first + i].split[PS_SPLIT_VALID].gini;
    }
}

static int summarize_method(const ps_sweep_result *r, ps_method_summary *ms, const ps_select_rule *rule,
                            double tight_drop, ps_error *err)
{
    double *ndcg = ps_calloc((size_t)ms->n, sizeof *ndcg, "summary", err);
    double *gini = ps_calloc((size_t)ms->n, sizeof *gini, "summary", err);
    ms->front = ps_calloc((size_t)ms->n, sizeof *ms->front, "Pareto front", err);
    if (!ndcg || !gini || !ms->front) {
        free(ndcg);
        free(gini);
        return PS_ERR;
    }
    valid_coords(r, ms->first, ms->n, ndcg, gini);
    const ps_metrics *b = &r->points[ms->base].split[PS_SPLIT_VALID];
    int sel = ps_select_point(ndcg, gini, ms->n, b->ndcg, b->gini, rule);
    ps_select_rule tight = {PS_SELECT_MAX_GINI_CUT, tight_drop};
    int best = ps_select_point(ndcg, gini, ms->n, b->ndcg, b->gini, &tight);
    ms->selected = sel < 0 ? -1 : ms->first + sel;
    ms->best_tight = best < 0 ? -1 : ms->first + best;
    ms->n_front = ps_pareto_front(gini, ndcg, ms->n, ms->front);
    for (int i = 0; i < ms->n_front; i++)
        ms->front[i] += ms->first;
    free(ndcg);
    free(gini);
    return PS_OK;
}

/* Coordinates of a front (validation) into gini/ndcg arrays. */
static void front_coords(const ps_sweep_result *r, const ps_method_summary *ms, double *gini, double *ndcg)
{
    for (int i = 0; i < ms->n_front; i++) {
        gini[i] = r->points[ms->front[i]].split[PS_SPLIT_VALID].gini;
        ndcg[i] = r->points[ms->front[i]].split[PS_SPLIT_VALID].ndcg;
    }
}

/* Adds sign · Σ_i w_i · (user NDCG of front point i) to gap[u] for every validation user. */
static void add_front_ndcg(const ps_sweep_result *r, const ps_method_summary *ms, const double *w, double sign,
                           double *gap)
{
    const size_t n = (size_t)r->n_users;
    for (int i = 0; i < ms->n_front; i++) {
        const float *y = r->valid_ndcg + (size_t)ms->front[i] * n;
        for (size_t u = 0; u < n; u++)
            gap[u] += sign * w[i] * y[u];
    }
}

/* b->gap_ci: the interval of the mean NDCG gap between PopSteer's front (a) and b's, by resampling
 * the validation users. The gap is linear in the front points' NDCG (ps_front_mean_weights), so
 * each user has a gap of their own and the resampled mean gaps give the interval. */
static int gap_interval(const ps_sweep_result *r, const ps_bootstrap *boot, const ps_method_summary *a,
                        const double *ga, const ps_method_summary *b, const double *gb, ps_front_vs *vs,
                        ps_error *err)
{
    const ps_front_cmp *c = &vs->cmp;
    const size_t n = (size_t)r->n_users, R = (size_t)boot->resamples;
    double *wa = ps_calloc((size_t)a->n_front + (size_t)b->n_front, sizeof *wa, "front weights", err);
    double *gap = wa ? ps_calloc(n, sizeof *gap, "per-user gap", err) : NULL;
    float *gap_f = gap ? ps_calloc(n, sizeof *gap_f, "per-user gap", err) : NULL;
    double *res = gap_f ? ps_calloc(2 * R, sizeof *res, "bootstrap statistics", err) : NULL;
    int rc = res ? PS_OK : PS_ERR;
    if (rc == PS_OK) {
        double *wb = wa + a->n_front;
        ps_front_mean_weights(ga, a->n_front, c->gini_lo, c->gini_hi, wa);
        ps_front_mean_weights(gb, b->n_front, c->gini_lo, c->gini_hi, wb);
        add_front_ndcg(r, a, wa, 1.0, gap);
        add_front_ndcg(r, b, wb, -1.0, gap);
        for (size_t u = 0; u < n; u++)
            gap_f[u] = (float)gap[u];
        ps_bootstrap_means(boot, gap_f, res); /* res + R stays 0: the gap is measured against 0 */
        rc = ps_bootstrap_interval(res, res + R, (int)R, 0, c->mean_diff, r->ci_level, &vs->gap_ci, err);
        vs->gap_within_noise = rc == PS_OK && ps_interval_contains_zero(&vs->gap_ci);
    }
    free(wa);
    free(gap);
    free(gap_f);
    free(res);
    return rc;
}

/* Every other method's front against reference q's (s->ref[q] >= 0). */
static int compare_fronts(const ps_sweep_result *r, ps_sweep_summary *s, int q, ps_error *err)
{
    const ps_method_summary *a = &s->methods[s->ref[q]];
    size_t cap = (size_t)r->n_points;
    double *ga = ps_calloc(cap, sizeof *ga, "front", err), *na = ps_calloc(cap, sizeof *na, "front", err);
    double *gb = ps_calloc(cap, sizeof *gb, "front", err), *nb = ps_calloc(cap, sizeof *nb, "front", err);
    ps_bootstrap boot = {0};
    int rc = ga && na && gb && nb ? PS_OK : PS_ERR;
    if (rc == PS_OK && r->bootstrap && r->valid_ndcg)
        rc = ps_bootstrap_init(&boot, r->n_users, r->bootstrap, r->seed, err);
    if (rc == PS_OK)
        front_coords(r, a, ga, na);
    for (int i = 0; rc == PS_OK && i < s->n_methods; i++) {
        ps_method_summary *b = &s->methods[i];
        ps_front_vs *vs = &b->vs[q];
        if (b == a)
            continue;
        front_coords(r, b, gb, nb);
        vs->valid = 1;
        ps_front_compare(ga, na, a->n_front, gb, nb, b->n_front, &vs->cmp);
        vs->verdict = ps_front_verdict_of(&vs->cmp);
        vs->gap_ci = (ps_interval){NAN, NAN};
        if (boot.resamples && vs->cmp.has_overlap)
            rc = gap_interval(r, &boot, a, ga, b, gb, vs, err);
    }
    ps_bootstrap_free(&boot);
    free(ga);
    free(na);
    free(gb);
    free(nb);
    return rc;
}

/* Groups the points into methods: popsteer (all its points), then each re-ranker. */
static int group_methods(const ps_sweep_result *r, ps_sweep_summary *s, ps_error *err)
{
    s->methods = ps_calloc((size_t)r->n_points, sizeof *s->methods, "summary", err);
    if (!s->methods)
        return PS_ERR;
    for (int i = 0; i < r->n_points; i++) {
        const ps_sweep_point *p = &r->points[i];
        if (p->kind == PS_POINT_SASREC)
            continue;
        ps_method_summary *last = s->n_methods ? &s->methods[s->n_methods - 1] : NULL;
        if (last && !strcmp(last->method, p->method) && last->first + last->n == i) {
            last->n++;
            continue;
        }
        ps_method_summary *ms = &s->methods[s->n_methods++];
        snprintf(ms->method, sizeof ms->method, "%s", p->method);
        ms->first = i;
        ms->n = 1;
        ms->base = s->sasrec;
        ms->selected = ms->best_tight = -1;
    }
    return PS_OK;
}

int ps_sweep_summarize(const ps_sweep_result *r, const ps_select_rule *rule, ps_sweep_base base, double tight_drop,
                       ps_sweep_summary *s, ps_error *err)
{
    memset(s, 0, sizeof *s);
    s->rule = *rule;
    s->base = base;
    s->tight_drop = tight_drop;
    if (r->n_points < 2 || r->points[0].kind != PS_POINT_SASREC || r->points[1].kind != PS_POINT_POPSTEER ||
        r->points[1].alpha != 0)
        return ps_fail(err, "summary: the sweep must start with the sasrec and popsteer alpha=0 points");
    s->sasrec = 0;
    s->sae = 1;
    int rc = group_methods(r, s, err);
    if (rc == PS_OK && base == PS_BASE_SAE)
        s->methods[0].base = s->sae;
    for (int i = 0; rc == PS_OK && i < s->n_methods; i++)
        rc = summarize_method(r, &s->methods[i], rule, tight_drop, err);
    s->ref[PS_REF_POPSTEER] = 0;
    s->ref[PS_REF_POPSTEER_U] = s->ref[PS_REF_POPSTEER_I] = -1;
    for (int i = 0; rc == PS_OK && i < s->n_methods; i++) {
        if (!strcmp(s->methods[i].method, "popsteer-u"))
            s->ref[PS_REF_POPSTEER_U] = i;
        if (!strcmp(s->methods[i].method, "popsteer-i"))
            s->ref[PS_REF_POPSTEER_I] = i;
    }
    for (int q = 0; rc == PS_OK && q < PS_SWEEP_REFS; q++)
        if (s->ref[q] >= 0)
            rc = compare_fronts(r, s, q, err);
    if (rc != PS_OK)
        ps_sweep_summary_free(s);
    return rc;
}

void ps_sweep_summary_free(ps_sweep_summary *s)
{
    for (int i = 0; s->methods && i < s->n_methods; i++)
        free(s->methods[i].front);
    free(s->methods);
    memset(s, 0, sizeof *s);
}

const ps_method_summary *ps_sweep_summary_find(const ps_sweep_summary *s, const char *method)
{
    for (int i = 0; i < s->n_methods; i++)
        if (!strcmp(s->methods[i].method, method))
            return &s->methods[i];
    return NULL;
}

/* ======================= pipeline helper: SAE on a model ======================= */

ps_sae *ps_sae_train_on_model(const ps_sasrec *m, const ps_dataset *ds, const ps_sae_config *cfg,
                              const ps_sae_train_options *o, uint64_t seed, const ps_sae_callbacks *cb, void *cb_ctx,
                              void (*vectors_progress)(void *ctx, int64_t done, int64_t total),
                              ps_sae_train_result *res, ps_error *err)
{
    if (cfg->d_in != m->cfg.d) {
        ps_fail(err, "the SAE config reads %d-dimensional vectors but the model's are %d-dimensional", cfg->d_in,
                m->cfg.d);
        return NULL;
    }
    ps_sae *sae = ps_sae_create(cfg, err);
    float *X = NULL, *Xv = NULL;
    int rc = sae ? ps_sae_vector_sets(m, ds, o->dist, &X, &Xv, vectors_progress, cb_ctx, err) : PS_ERR;
    if (rc == PS_OK) {
        ps_sae_init(sae, seed);
        rc = ps_sae_train(sae, X, ds->n_train, Xv, ds->n_users, o, cb, cb_ctx, res, err);
    }
    free(X);
    free(Xv);
    if (rc != PS_OK) {
        ps_sae_free(sae);
        return NULL;
    }
    return sae;
}
