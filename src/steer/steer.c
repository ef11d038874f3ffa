/* Steering plan and its application (SPEC §5). */
#include "popsteer/steer.h"

#include "steer/steer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ps_steer_plan_free(ps_steer_plan *plan)
{
    free(plan->latent);
    free(plan->weight);
    free(plan->shift);
    memset(plan, 0, sizeof *plan);
}

static int check_plan_inputs(const double *d, const double *sd_pop, const double *sd_unpop, int m, int N,
                             double alpha, ps_error *err)
{
    if (m < 1)
        return ps_fail(err, "steering needs at least one latent (the SAE has m = %d)", m);
    if (N < 1 || N > m)
        return ps_fail(err, "steering: N = %d latents is outside 1..%d (the SAE has m = %d latents)", N, m, m);
    if (!isfinite(alpha))
        return ps_fail(err, "steering: alpha must be a finite number (got %g)", alpha);
    if (alpha < 0)
        return ps_fail(err, "steering: alpha = %g is negative; a negative alpha would amplify popularity bias; "
                            "use 0 (no steering) or more",
                       alpha);
    for (int j = 0; j < m; j++) {
        if (!isfinite(d[j]))
            return ps_fail(err, "steering: latent %d has Cohen's d = %g; the probe statistics are broken", j, d[j]);
        if (!isfinite(sd_pop[j]) || sd_pop[j] < 0 || !isfinite(sd_unpop[j]) || sd_unpop[j] < 0)
            return ps_fail(err, "steering: latent %d has std %g (popular) and %g (unpopular); both must be finite "
                                "and >= 0",
                           j, sd_pop[j], sd_unpop[j]);
    }
    return PS_OK;
}

typedef struct ranked {
    double abs_d;
    int32_t j;
} ranked;

/* |d| descending, then index ascending: a total order, so qsort's instability is harmless. */
static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->abs_d != b->abs_d)
        return a->abs_d > b->abs_d ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

int ps_steer_order(const double *d, const uint8_t *eligible, int m, int32_t *order, int *n, ps_error *err)
{
    ranked *r = ps_calloc((size_t)m, sizeof *r, "steering order", err);
    if (!r)
        return PS_ERR;
    int k = 0;
    for (int j = 0; j < m; j++)
        if (!eligible || eligible[j])
            r[k++] = (ranked){fabs(d[j]), j};
    qsort(r, (size_t)k, sizeof *r, cmp_ranked);
    for (int i = 0; i < k; i++)
        order[i] = r[i].j;
    *n = k;
    free(r);
    return PS_OK;
}

/* The N latents with the largest |d|, in that order. */
static int select_latents(const double *d, int m, int N, int32_t *out, ps_error *err)
{
    int32_t *order = ps_calloc((size_t)m, sizeof *order, "steering order", err);
    int n = 0;
    if (!order || ps_steer_order(d, NULL, m, order, &n, err) != PS_OK) {
        free(order);
        return PS_ERR;
    }
    memcpy(out, order, (size_t)N * sizeof *out);
    free(order);
    return PS_OK;
}

double ps_steer_min_nonzero_abs(const double *d, int m)
{
    double lo = INFINITY;
    for (int j = 0; j < m; j++)
        if (d[j] != 0 && fabs(d[j]) < lo)
            lo = fabs(d[j]);
    return isinf(lo) ? 0.0 : lo;
}

double ps_steer_weight(double abs_d, double lo, double hi, double alpha)
{
    if (hi == lo)
        return alpha / 2;
    return alpha * (abs_d - lo) / (hi - lo);
}

void ps_steer_plan_fill(const double *d, const double *sd_pop, const double *sd_unpop, int m, const int32_t *order,
                        int N, double alpha, double min_abs_d, ps_steer_plan *plan)
{
    plan->m = m;
    plan->n = N;
    plan->alpha = alpha;
    plan->min_abs_d = min_abs_d;
    if (plan->latent != order)
        memcpy(plan->latent, order, (size_t)N * sizeof *plan->latent);
    plan->max_abs_d = fabs(d[plan->latent[0]]);
    for (int i = 0; i < N; i++) {
        int32_t j = plan->latent[i];
        plan->weight[i] = plan->shift[i] = 0;
        /* a latent with d == 0 shows no bias: it is never shifted, and its formula weight
         * (negative when some other latent has d != 0) would only confuse a report */
        if (d[j] == 0)
            continue;
        double w = ps_steer_weight(fabs(d[j]), plan->min_abs_d, plan->max_abs_d, alpha);
        plan->weight[i] = w;
        /* long-tail latents (d < 0) are raised by the popular group's spread, popular ones
         * (d > 0) lowered by the unpopular group's spread, as in the reference */
        plan->shift[i] = d[j] < 0 ? w * sd_pop[j] : -w * sd_unpop[j];
    }
}

int ps_steer_plan_make(const double *d, const double *sd_pop, const double *sd_unpop, int m, int N, double alpha,
                       ps_steer_plan *plan, ps_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (check_plan_inputs(d, sd_pop, sd_unpop, m, N, alpha, err) != PS_OK)
        return PS_ERR;
    plan->latent = ps_calloc((size_t)N, sizeof *plan->latent, "steering latents", err);
    plan->weight = plan->latent ? ps_calloc((size_t)N, sizeof *plan->weight, "steering weights", err) : NULL;
    plan->shift = plan->weight ? ps_calloc((size_t)N, sizeof *plan->shift, "steering shifts", err) : NULL;
    if (!plan->shift || select_latents(d, m, N, plan->latent, err) != PS_OK) {
        ps_steer_plan_free(plan);
        return PS_ERR;
    }
    ps_steer_plan_fill(d, sd_pop, sd_unpop, m, plan->latent, N, alpha, ps_steer_min_nonzero_abs(d, m), plan);
    return PS_OK;
}

/* The step-3 shift of latent j with weight w: raise long-tail latents by the popular group's
 * spread, lower popular ones by the unpopular group's; a latent with d == 0 is left alone. */
static double step3_shift(double d, double sd_pop, double sd_unpop, double w)
{
    return d < 0 ? w * sd_pop : d > 0 ? -w * sd_unpop : 0.0;
}

static uint64_t variant_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* N distinct latents of 0..m-1, uniformly (partial Fisher–Yates), into out in draw order. */
static int draw_latents(int m, int N, uint64_t seed, int32_t *out, ps_error *err)
{
    int32_t *perm = ps_calloc((size_t)m, sizeof *perm, "random latents", err);
    if (!perm)
        return PS_ERR;
    for (int j = 0; j < m; j++)
        perm[j] = j;
    uint64_t x = seed ^ ((uint64_t)N * 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < N; i++) {
        /* the modulo bias is below m / 2^64: irrelevant for a control draw */
        int j = i + (int)(variant_splitmix64(&x) % (uint64_t)(m - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    free(perm);
    return PS_OK;
}

int ps_steer_plan_make_variant(const double *d, const double *sd_pop, const double *sd_unpop, int m, int N,
                               double alpha, ps_steer_variant variant, uint64_t seed, ps_steer_plan *plan,
                               ps_error *err)
{
    /* the paper's plan first: its latents (unweighted) or its weights (random) are the ablation's */
    if (ps_steer_plan_make(d, sd_pop, sd_unpop, m, N, alpha, plan, err) != PS_OK)
        return PS_ERR;
    if (variant == PS_STEER_RANDOM && draw_latents(m, N, seed, plan->latent, err) != PS_OK) {
        ps_steer_plan_free(plan);
        return PS_ERR;
    }
    for (int i = 0; variant != PS_STEER_PAPER && i < N; i++) {
        int32_t j = plan->latent[i];
        if (variant == PS_STEER_UNWEIGHTED)
            plan->weight[i] = d[j] != 0 ? alpha : 0.0;
        plan->shift[i] = step3_shift(d[j], sd_pop[j], sd_unpop[j], plan->weight[i]);
    }
    return PS_OK;
}

void ps_steer_apply(const ps_steer_plan *plan, float *pre, int B)
{
    /* row by row: each user's pre-activations are contiguous, the plan is small */
    for (int b = 0; b < B; b++) {
        float *row = pre + (size_t)b * (size_t)plan->m;
        for (int i = 0; i < plan->n; i++)
            row[plan->latent[i]] += (float)plan->shift[i];
    }
}

void ps_steer_shift_bias(const ps_steer_plan *plan, float *bias)
{
    for (int i = 0; i < plan->n; i++)
        bias[plan->latent[i]] += (float)plan->shift[i];
}
