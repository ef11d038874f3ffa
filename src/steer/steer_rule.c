/* PopSteer-U (steer_rule.h): the paper's steering shifts with separate strengths per sign, an
 * optional per-user gate from the probe's own statistics, and optionally no strength spent on
 * latents that never fire. */
#include "popsteer/steer_rule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "steer/steer_internal.h"

void ps_steer_rule_params_paper(ps_steer_rule_params *p, int N, double alpha)
{
    memset(p, 0, sizeof *p);
    p->N = N;
    p->alpha_pop = alpha;
    p->alpha_unpop = alpha;
    p->gate = PS_RULE_GATE_NONE;
    p->skip_dead = 0;
}

void ps_steer_rule_free(ps_steer_rule *r)
{
    free(r->latent);
    free(r->d);
    free(r->weight);
    free(r->shift);
    free(r->centre);
    free(r->inv_spread);
    memset(r, 0, sizeof *r);
}

static int check_alpha(const char *name, double a, ps_error *err)
{
    if (!isfinite(a))
        return ps_fail(err, "steering rule: %s must be a finite number (got %g)", name, a);
    /* a negative strength would push users towards popular items: refused, as in steer.c */
    if (a < 0)
        return ps_fail(err, "steering rule: %s = %g is negative; it would amplify popularity bias; use 0 or more",
                       name, a);
    return PS_OK;
}

static int check_inputs(const ps_steer_rule_probe *pr, const ps_steer_rule_params *p, ps_error *err)
{
    int m = pr->m;
    if (m < 1)
        return ps_fail(err, "steering needs at least one latent (the SAE has m = %d)", m);
    if (p->N < 1 || p->N > m)
        return ps_fail(err, "steering: N = %d latents is outside 1..%d (the SAE has m = %d latents)", p->N, m, m);
    if (check_alpha("alpha_pop", p->alpha_pop, err) != PS_OK ||
        check_alpha("alpha_unpop", p->alpha_unpop, err) != PS_OK)
        return PS_ERR;
    if (p->gate != PS_RULE_GATE_NONE && p->gate != PS_RULE_GATE_USER)
        return ps_fail(err, "steering rule: unknown gate %d", p->gate);
    if (p->skip_dead && !pr->fire_rate)
        return ps_fail(err, "steering rule: skipping dead latents needs the probe's fire rates");
    for (int j = 0; j < m; j++) {
        if (!isfinite(pr->d[j]) || !isfinite(pr->mean_pop[j]) || !isfinite(pr->mean_unpop[j]))
            return ps_fail(err, "steering: latent %d has d = %g, means %g and %g; the probe statistics are broken", j,
                           pr->d[j], pr->mean_pop[j], pr->mean_unpop[j]);
        if (!isfinite(pr->std_pop[j]) || pr->std_pop[j] < 0 || !isfinite(pr->std_unpop[j]) || pr->std_unpop[j] < 0)
            return ps_fail(err, "steering: latent %d has std %g (popular) and %g (unpopular); both must be finite "
                                "and >= 0",
                           j, pr->std_pop[j], pr->std_unpop[j]);
        if (pr->fire_rate && !(pr->fire_rate[j] >= 0 && pr->fire_rate[j] <= 1))
            return ps_fail(err, "steering: latent %d has fire rate %g, outside [0, 1]", j, pr->fire_rate[j]);
    }
    return PS_OK;
}

/* S: the N eligible latents with the largest |d| (steer.c's order, so S is the paper's S). Fails
 * when fewer than N are eligible. */
static int select_latents(const ps_steer_rule_probe *pr, const ps_steer_rule_params *p, ps_steer_rule *r,
                          ps_error *err)
{
    uint8_t *eligible = ps_calloc((size_t)pr->m, 1, "steering order", err);
    int32_t *order = eligible ? ps_calloc((size_t)pr->m, sizeof *order, "steering order", err) : NULL;
    int n = 0, rc = order ? PS_OK : PS_ERR;
    for (int j = 0; rc == PS_OK && j < pr->m; j++) {
        eligible[j] = !(p->skip_dead && pr->fire_rate[j] == 0);
        r->n_dead_skipped += !eligible[j];
    }
    if (rc == PS_OK)
        rc = ps_steer_order(pr->d, eligible, pr->m, order, &n, err);
    if (rc == PS_OK && n < p->N)
        rc = ps_fail(err, "steering: N = %d latents, but only %d of %d latents ever fire on real users", p->N, n,
                     pr->m);
    if (rc == PS_OK)
        memcpy(r->latent, order, (size_t)p->N * sizeof *r->latent);
    free(eligible);
    free(order);
    return rc;
}

/* The gate's tables: c_j, d_j / s_j / Σ|d| and π_ref (steer_rule.h, step 2). */
static void make_gate(const ps_steer_rule_probe *pr, ps_steer_rule *r)
{
    double sum_abs = 0, sum_sq = 0;
    for (int i = 0; i < r->n; i++) {
        int32_t j = r->latent[i];
        double s = sqrt((pr->std_pop[j] * pr->std_pop[j] + pr->std_unpop[j] * pr->std_unpop[j]) / 2);
        r->centre[i] = (pr->mean_pop[j] + pr->mean_unpop[j]) / 2;
        /* a latent without spread or without bias says nothing about where a user lies */
        if (s > 0 && r->d[i] != 0) {
            r->inv_spread[i] = r->d[i] / s;
            sum_abs += fabs(r->d[i]);
            sum_sq += r->d[i] * r->d[i];
        }
    }
    if (sum_abs == 0)
        return; /* pi_ref stays 0: ps_steer_rule_gate answers 1 */
    for (int i = 0; i < r->n; i++)
        r->inv_spread[i] /= sum_abs;
    /* a synthetic popular-only user sits d_j/2 pooled σ above c_j on every latent on average */
    r->pi_ref = sum_sq / (2 * sum_abs);
}

int ps_steer_rule_make(const ps_steer_rule_probe *pr, const ps_steer_rule_params *p, ps_steer_rule *r,
                       ps_error *err)
{
    memset(r, 0, sizeof *r);
    if (check_inputs(pr, p, err) != PS_OK)
        return PS_ERR;
    size_t N = (size_t)p->N;
    r->latent = ps_calloc(N, sizeof *r->latent, "steering latents", err);
    r->d = r->latent ? ps_calloc(N, sizeof *r->d, "steering d", err) : NULL;
    r->weight = r->d ? ps_calloc(N, sizeof *r->weight, "steering weights", err) : NULL;
    r->shift = r->weight ? ps_calloc(N, sizeof *r->shift, "steering shifts", err) : NULL;
    r->centre = r->shift ? ps_calloc(N, sizeof *r->centre, "steering gate", err) : NULL;
    r->inv_spread = r->centre ? ps_calloc(N, sizeof *r->inv_spread, "steering gate", err) : NULL;
    if (!r->inv_spread || select_latents(pr, p, r, err) != PS_OK) {
        ps_steer_rule_free(r);
        return PS_ERR;
    }
    r->m = pr->m;
    r->n = p->N;
    r->p = *p;
    r->min_abs_d = ps_steer_min_nonzero_abs(pr->d, pr->m);
    r->max_abs_d = fabs(pr->d[r->latent[0]]);
    for (int i = 0; i < r->n; i++) {
        int32_t j = r->latent[i];
        double dj = pr->d[j];
        r->d[i] = dj;
        if (dj == 0) /* no bias shown: never shifted (as in steer.c) */
            continue;
        double w = ps_steer_weight(fabs(dj), r->min_abs_d, r->max_abs_d, dj > 0 ? p->alpha_pop : p->alpha_unpop);
        r->weight[i] = w;
        /* each side scaled by the other synthetic group's spread, as in the paper's rule */
        r->shift[i] = dj < 0 ? w * pr->std_pop[j] : -w * pr->std_unpop[j];
    }
    make_gate(pr, r);
    return PS_OK;
}

double ps_steer_rule_gate(const ps_steer_rule *r, const float *row)
{
    if (r->p.gate == PS_RULE_GATE_NONE || r->pi_ref <= 0)
        return 1.0;
    double pi = 0;
    for (int i = 0; i < r->n; i++)
        pi += r->inv_spread[i] * ((double)row[r->latent[i]] - r->centre[i]);
    double g = (pi + r->pi_ref) / (2 * r->pi_ref);
    return g < 0 ? 0.0 : g > 1 ? 1.0 : g;
}

void ps_steer_rule_apply(const ps_steer_rule *r, float *pre, int B, double *gate_out)
{
    for (int b = 0; b < B; b++) {
        float *row = pre + (size_t)b * (size_t)r->m;
        /* the gate reads the unshifted row: it is measured before any latent moves */
        double g = ps_steer_rule_gate(r, row);
        if (gate_out)
            gate_out[b] = g;
        if (r->p.gate == PS_RULE_GATE_NONE) {
            /* exactly ps_steer_apply's increment (no multiplication by 1.0 to round) */
            for (int i = 0; i < r->n; i++)
                row[r->latent[i]] += (float)r->shift[i];
        } else {
            for (int i = 0; i < r->n; i++)
                row[r->latent[i]] += (float)(g * r->shift[i]);
        }
    }
}
