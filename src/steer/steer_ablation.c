/* The ablations that need their own scoring path (steer_ablation.h): conditional steering on dense
 * pre-activations, and direction steering of SASRec's user vector without the SAE. */
#include "popsteer/steer_ablation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEAN_BATCH 1024 /* synthetic users per SASRec call, as the probe's */

/* ---- conditional ---- */

void ps_steer_conditional_thresholds(const ps_steer_plan *plan, const double *d, const double *mean_pop,
                                     const double *sd_pop, const double *mean_unpop, const double *sd_unpop,
                                     double *thr)
{
    for (int i = 0; i < plan->n; i++) {
        int32_t j = plan->latent[i];
        /* the other group's upper edge: long-tail users' for a popular latent and vice versa */
        thr[i] = d[j] > 0 ? mean_unpop[j] + 2 * sd_unpop[j] : d[j] < 0 ? mean_pop[j] + 2 * sd_pop[j] : INFINITY;
    }
}

int64_t ps_steer_apply_conditional(const ps_steer_plan *plan, const double *thr, float *pre, int B)
{
    int64_t applied = 0;
    for (int b = 0; b < B; b++) {
        float *row = pre + (size_t)b * (size_t)plan->m;
        /* each latent appears once in S, so reading row[j] before adding is the unshifted value */
        for (int i = 0; i < plan->n; i++) {
            int32_t j = plan->latent[i];
            if ((double)row[j] > thr[i]) {
                row[j] += (float)plan->shift[i];
                applied++;
            }
        }
    }
    return applied;
}

/* ---- direction ---- */

/* Adds the user vectors of one group's rows [first, first + n_group) to sum [dim]. */
static int sum_group(const ps_sasrec *m, ps_sasrec_ws *ws, const ps_probe_users *u, int64_t first, float *h,
                     double *sum, ps_error *err)
{
    const int dim = m->cfg.d;
    for (int64_t r = 0; r < u->n_group; r += MEAN_BATCH) {
        int B = (int)(u->n_group - r < MEAN_BATCH ? u->n_group - r : MEAN_BATCH);
        if (ps_sasrec_user_vectors(m, ws, ps_probe_users_row(u, first + r), u->len + first + r, B, h, err) != PS_OK)
            return PS_ERR;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < dim; c++)
                sum[c] += h[(size_t)b * (size_t)dim + (size_t)c];
    }
    return PS_OK;
}

int ps_probe_mean_vectors(const ps_sasrec *m, const ps_dataset *ds, const ps_probe_options *o, double *mean_pop,
                          double *mean_lt, ps_error *err)
{
    const int dim = m->cfg.d;
    memset(mean_pop, 0, (size_t)dim * sizeof *mean_pop);
    memset(mean_lt, 0, (size_t)dim * sizeof *mean_lt);
    ps_probe_users u;
    if (ps_probe_users_make(ds, o->cap, o->seed, &u, err) != PS_OK)
        return PS_ERR;
    ps_sasrec_ws *ws = NULL;
    float *h = ps_calloc((size_t)MEAN_BATCH * (size_t)dim, sizeof *h, "user vectors", err);
    int rc = h ? ps_sasrec_ws_create(&ws, m, MEAN_BATCH, 0, err) : PS_ERR;
    if (rc == PS_OK && u.n_group < 1)
        rc = ps_fail(err, "the probe made no synthetic users");
    if (rc == PS_OK)
        rc = sum_group(m, ws, &u, 0, h, mean_pop, err);
    if (rc == PS_OK)
        rc = sum_group(m, ws, &u, u.n_group, h, mean_lt, err);
    for (int c = 0; rc == PS_OK && c < dim; c++) {
        mean_pop[c] /= (double)u.n_group;
        mean_lt[c] /= (double)u.n_group;
    }
    ps_sasrec_ws_free(ws);
    free(h);
    ps_probe_users_free(&u);
    return rc;
}

int ps_direction_delta(const double *mean_pop, const double *mean_lt, int dim, double alpha, double nu,
                       float *delta, ps_error *err)
{
    if (!isfinite(alpha) || alpha < 0 || !isfinite(nu) || nu < 0)
        return ps_fail(err, "direction steering: alpha (%g) and the norm scale (%g) must be finite and >= 0", alpha,
                       nu);
    double n2 = 0;
    for (int c = 0; c < dim; c++)
        n2 += (mean_lt[c] - mean_pop[c]) * (mean_lt[c] - mean_pop[c]);
    if (!(n2 > 0) || !isfinite(n2))
        return ps_fail(err, "direction steering: the two synthetic groups' mean user vectors %s",
                       isfinite(n2) ? "coincide: there is no direction" : "are not finite");
    double scale = alpha * nu / sqrt(n2);
    for (int c = 0; c < dim; c++)
        delta[c] = (float)(scale * (mean_lt[c] - mean_pop[c]));
    return PS_OK;
}

double ps_mean_norm(const float *h, int64_t n, int dim)
{
    double sum = 0;
    for (int64_t u = 0; u < n; u++) {
        double s2 = 0;
        for (int c = 0; c < dim; c++) {
            double v = h[(size_t)u * (size_t)dim + (size_t)c];
            s2 += v * v;
        }
        sum += sqrt(s2);
    }
    return n > 0 ? sum / (double)n : 0.0;
}

/* ---- the scorer ---- */

void ps_ablation_scorer_free(ps_ablation_scorer *s)
{
    ps_sasrec_ws_free(s->ws);
    ps_sae_encoder_free(&s->enc);
    free(s->h);
    free(s->pre);
    free(s->val);
    free(s->hrec);
    free(s->idx);
    memset(s, 0, sizeof *s);
}

static int check_scorer_inputs(ps_ablation_kind kind, const ps_sasrec *m, const ps_sae *sae,
                               const ps_steer_plan *plan, const double *thr, const float *delta, int max_batch,
                               ps_error *err)
{
    if (max_batch < 1)
        return ps_fail(err, "the ablation scorer needs a batch of at least 1 (got %d)", max_batch);
    if (kind == PS_ABLATION_DIRECTION)
        return delta ? PS_OK : ps_fail(err, "direction steering needs its vector");
    if (!sae || !plan || !thr)
        return ps_fail(err, "conditional steering needs the SAE, the plan and the thresholds");
    if (ps_sae_fits_model(sae, m, err) != PS_OK)
        return PS_ERR;
    if (plan->m != sae->cfg.n_latents)
        return ps_fail(err, "the steering plan has %d latents but the SAE has %d", plan->m, sae->cfg.n_latents);
    return PS_OK;
}

int ps_ablation_scorer_init(ps_ablation_scorer *s, ps_ablation_kind kind, const ps_sasrec *m, const ps_sae *sae,
                            const ps_steer_plan *plan, const double *thr, const float *delta, int max_batch,
                            ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (check_scorer_inputs(kind, m, sae, plan, thr, delta, max_batch, err) != PS_OK)
        return PS_ERR;
    *s = (ps_ablation_scorer){.kind = kind, .model = m, .sae = sae, .plan = plan, .thr = thr, .delta = delta,
                              .max_batch = max_batch};
    size_t B = (size_t)max_batch, d = (size_t)m->cfg.d;
    s->h = ps_calloc(B * d, sizeof *s->h, "user vectors", err);
    s->hrec = s->h ? ps_calloc(B * d, sizeof *s->hrec, "user vectors", err) : NULL;
    int rc = s->hrec ? PS_OK : PS_ERR;
    if (rc == PS_OK && kind == PS_ABLATION_CONDITIONAL) {
        size_t k = (size_t)sae->cfg.k, nl = (size_t)sae->cfg.n_latents;
        s->pre = ps_calloc(B * nl, sizeof *s->pre, "pre-activations", err);
        s->val = s->pre ? ps_calloc(B * k, sizeof *s->val, "codes", err) : NULL;
        s->idx = s->val ? ps_calloc(B * k, sizeof *s->idx, "codes", err) : NULL;
        rc = s->idx ? ps_sae_encoder_init(&s->enc, sae, err) : PS_ERR;
    }
    if (rc == PS_OK)
        rc = ps_sasrec_ws_create(&s->ws, m, max_batch, 0, err);
    if (rc != PS_OK)
        ps_ablation_scorer_free(s);
    return rc;
}

void ps_ablation_score_vectors(ps_ablation_scorer *s, const float *h, int B, float *scores)
{
    const size_t d = (size_t)s->model->cfg.d;
    if (s->kind == PS_ABLATION_DIRECTION) {
        for (int b = 0; b < B; b++)
            for (size_t c = 0; c < d; c++)
                s->hrec[(size_t)b * d + c] = h[(size_t)b * d + c] + s->delta[c];
    } else {
        /* the paper's chain (SAE reconstruction, no error term), with the per-user gate on the shift */
        ps_sae_encoder_pre(&s->enc, h, B, s->pre);
        s->shifted += ps_steer_apply_conditional(s->plan, s->thr, s->pre, B);
        ps_sae_topk(s->sae, s->pre, B, s->idx, s->val);
        ps_sae_decode(s->sae, s->idx, s->val, B, s->hrec);
    }
    ps_sasrec_score(s->model, s->hrec, B, scores);
}

/* ps_evaluate calls score() from one thread, batch after batch, so the counter needs no lock. */
static int ablation_score(void *ctx, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err)
{
    ps_ablation_scorer *s = ctx;
    if (B > s->max_batch)
        return ps_fail(err, "the ablation scorer takes at most %d users per call (got %d)", s->max_batch, B);
    if (ps_sasrec_user_vectors(s->model, s->ws, seq, len, B, s->h, err) != PS_OK)
        return PS_ERR;
    ps_ablation_score_vectors(s, s->h, B, scores);
    return PS_OK;
}

ps_scorer ps_ablation_scorer_as_scorer(ps_ablation_scorer *s)
{
    return (ps_scorer){s, s->max_batch, ablation_score};
}
