/* One user's SAE codes and one item's score split into latent contributions (explain.h). */
#include "popsteer/explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/metrics.h"

static double dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void side_free(ps_explain_side *s)
{
    free(s->codes);
    free(s->by_contrib);
    free(s->scores);
    memset(s, 0, sizeof *s);
}

void ps_explain_free(ps_explain *e)
{
    side_free(&e->before);
    side_free(&e->after);
    memset(e, 0, sizeof *e);
}

/* The checks that keep every index in range below; each message names both sides of a misfit. */
static int check_inputs(const ps_sasrec *m, const ps_sae *sae, const ps_explain_steering *st,
                        const ps_latent_table *table, int len, int32_t item, ps_error *err)
{
    int nl = sae->cfg.n_latents, dim = 0;
    if (!ps_sasrec_item_embedding(m, &dim))
        return ps_fail(err, "the model has no item embedding of shape [n_items + 1, d]");
    if (sae->cfg.d_in != m->cfg.d)
        return ps_fail(err, "the SAE reads vectors of width %d but the model's hidden size is %d", sae->cfg.d_in,
                       m->cfg.d);
    if (len < 1 || len > m->cfg.max_len)
        return ps_fail(err, "a sequence must hold 1 to %d items (got %d)", m->cfg.max_len, len);
    if (item < 0 || item > m->cfg.n_items)
        return ps_fail(err, "item id %d is out of range 1..%d", (int)item, m->cfg.n_items);
    if (table && table->m != nl)
        return ps_fail(err, "the latents table has %d latents but the SAE has %d", table->m, nl);
    if (st && st->plan && st->rule)
        return ps_fail(err, "steering takes a plan or a rule, not both");
    if (st && st->plan && st->plan->m != nl)
        return ps_fail(err, "the steering plan was made for %d latents but the SAE has %d", st->plan->m, nl);
    if (st && st->rule && st->rule->m != nl)
        return ps_fail(err, "the steering rule was made for %d latents but the SAE has %d", st->rule->m, nl);
    return PS_OK;
}

/* TopK of pre, the scored vector v (the decoding, or SASRec's error carried along under
 * keep_error: v = h + ĥ − ĥ_0) and every item's score. */
static int side_scores(const ps_sasrec *m, const ps_sae *sae, const float *pre, const float *h, const float *hrec0,
                       int keep_error, int32_t *idx, float *val, float *v, ps_explain_side *s, ps_error *err)
{
    int d = sae->cfg.d_in;
    s->scores = ps_calloc((size_t)m->cfg.n_items + 1, sizeof *s->scores, "scores", err);
    if (!s->scores)
        return PS_ERR;
    ps_sae_topk(sae, pre, 1, idx, val);
    ps_sae_decode(sae, idx, val, 1, v);
    if (keep_error)
        for (int i = 0; i < d; i++)
            v[i] = h[i] + (v[i] - hrec0[i]);
    ps_sasrec_score(m, v, 1, s->scores);
    return PS_OK;
}

/* The codes with z > 0 and their contributions to item's score; by_contrib by |contrib|. */
static int side_decompose(const ps_sasrec *m, const ps_sae *sae, const ps_latent_table *table, const int32_t *idx,
                          const float *val, const float *err_vec, int32_t item, ps_explain_side *s, ps_error *err)
{
    int k = sae->cfg.k, d = sae->cfg.d_in, dim;
    const float *e = ps_sasrec_item_embedding(m, &dim) + (size_t)item * d;
    ps_sae_tensors t = ps_sae_view(sae, sae->params);
    s->codes = ps_calloc((size_t)k, sizeof *s->codes, "codes", err);
    s->by_contrib = ps_calloc((size_t)k, sizeof *s->by_contrib, "codes", err);
    if (!s->codes || !s->by_contrib)
        return PS_ERR;
    /* slots with z = 0 are TopK's padding when fewer than k pre-activations are positive: they
     * contribute nothing and are not active */
    s->n_codes = 0;
    double sum = 0;
    for (int i = 0; i < k; i++) {
        if (!(val[i] > 0))
            continue;
        ps_explain_code *c = &s->codes[s->n_codes];
        c->latent = idx[i];
        c->z = val[i];
        c->contrib = (double)val[i] * dot(t.W_dec + (size_t)idx[i] * d, e, d);
        c->d = table ? table->d[idx[i]] : NAN;
        c->fire_rate = table ? table->fire_rate[idx[i]] : NAN;
        sum += c->contrib;
        /* insertion by |contrib|, strictly larger moves ahead: ties keep the TopK order */
        int pos = s->n_codes;
        while (pos > 0 && fabs(c->contrib) > fabs(s->codes[s->by_contrib[pos - 1]].contrib)) {
            s->by_contrib[pos] = s->by_contrib[pos - 1];
            pos--;
        }
        s->by_contrib[pos] = s->n_codes++;
    }
    s->bias_term = dot(t.b_dec, e, d);
    s->error_term = err_vec ? dot(err_vec, e, d) : 0;
    s->sum = sum + s->bias_term + s->error_term;
    s->score = s->scores[item];
    return PS_OK;
}

int ps_explain_user(const ps_sasrec *m, const ps_sae *sae, const ps_explain_steering *steer,
                    const ps_latent_table *table, const int32_t *seq, int len, int32_t item, ps_explain *out,
                    ps_error *err)
{
    memset(out, 0, sizeof *out);
    if (check_inputs(m, sae, steer, table, len, item, err) != PS_OK)
        return PS_ERR;
    const ps_steer_plan *plan = steer ? steer->plan : NULL;
    const ps_steer_rule *rule = steer ? steer->rule : NULL;
    int keep_error = rule && rule->p.keep_error;
    int L = m->cfg.max_len, d = sae->cfg.d_in, nl = sae->cfg.n_latents, k = sae->cfg.k;
    ps_sasrec_ws *ws = NULL;
    int32_t *row = ps_calloc((size_t)L, sizeof *row, "sequence", err);
    float *h = ps_calloc((size_t)d * 5, sizeof *h, "user vectors", err);
    float *pre0 = ps_calloc((size_t)nl * 2, sizeof *pre0, "pre-activations", err);
    float *val = ps_calloc((size_t)k * 2, sizeof *val, "codes", err);
    int32_t *idx = ps_calloc((size_t)k * 2, sizeof *idx, "codes", err);
    int rc = row && h && pre0 && val && idx ? PS_OK : PS_ERR;
    if (rc == PS_OK)
        rc = ps_sasrec_ws_create(&ws, m, 1, 0, err);
    /* h | v0 (before's scored vector) | v1 (after's) | ĥ_0 | h − ĥ_0 */
    float *v0 = h + d, *v1 = h + 2 * d, *hrec0 = h + 3 * d, *resid = h + 4 * d;
    float *pre1 = pre0 + nl;
    if (rc == PS_OK) {
        memcpy(row, seq, (size_t)len * sizeof *row);
        int32_t n = len;
        rc = ps_sasrec_user_vectors(m, ws, row, &n, 1, h, err);
    }
    if (rc == PS_OK) {
        ps_sae_encode_pre(sae, h, 1, pre0);
        memcpy(pre1, pre0, (size_t)nl * sizeof *pre1);
        out->gate = 1;
        if (plan)
            ps_steer_apply(plan, pre1, 1);
        else if (rule)
            ps_steer_rule_apply(rule, pre1, 1, &out->gate);
        /* ĥ_0 first: keep_error's scored vectors carry h − ĥ_0 */
        ps_sae_topk(sae, pre0, 1, idx, val);
        ps_sae_decode(sae, idx, val, 1, hrec0);
        for (int i = 0; i < d; i++)
            resid[i] = h[i] - hrec0[i];
        out->n_items = m->cfg.n_items;
        rc = side_scores(m, sae, pre0, h, hrec0, keep_error, idx, val, v0, &out->before, err);
    }
    if (rc == PS_OK)
        rc = side_scores(m, sae, pre1, h, hrec0, keep_error, idx + k, val + k, v1, &out->after, err);
    if (rc == PS_OK) {
        if (!item) {
            ps_topk(out->after.scores, m->cfg.n_items, 1, NULL, &item);
            out->item_was_top1 = 1;
        }
        out->item = item;
        rc = side_decompose(m, sae, table, idx, val, keep_error ? resid : NULL, item, &out->before, err);
    }
    if (rc == PS_OK)
        rc = side_decompose(m, sae, table, idx + k, val + k, keep_error ? resid : NULL, item, &out->after, err);
    ps_sasrec_ws_free(ws);
    free(row);
    free(h);
    free(pre0);
    free(val);
    free(idx);
    if (rc != PS_OK)
        ps_explain_free(out);
    return rc;
}

int ps_explain_latent_top_items(const ps_sasrec *m, const ps_sae *sae, int32_t latent, int n_top, int32_t *top,
                                ps_error *err)
{
    int d = sae->cfg.d_in, dim = 0;
    const float *E = ps_sasrec_item_embedding(m, &dim);
    if (!E || dim != d)
        return ps_fail(err, "the SAE reads vectors of width %d but the model's item embedding has %d", d, dim);
    if (latent < 0 || latent >= sae->cfg.n_latents)
        return ps_fail(err, "latent %d is out of range 0..%d", (int)latent, sae->cfg.n_latents - 1);
    if (n_top < 1)
        return ps_fail(err, "n_top must be >= 1 (got %d)", n_top);
    double *act = ps_calloc((size_t)n_top, sizeof *act, "activations", err);
    if (!act)
        return PS_ERR;
    memset(top, 0, (size_t)n_top * sizeof *top);
    ps_sae_tensors t = ps_sae_view(sae, sae->params);
    const float *w = t.W_enc + (size_t)latent * d;
    /* b_enc[latent] and W_enc[latent] · b_dec are the same for every item: they cannot change the
     * order, so only W_enc[latent] · E[i] is ranked */
    for (int32_t i = 1; i <= m->cfg.n_items; i++) {
        double a = dot(w, E + (size_t)i * d, d);
        if (top[n_top - 1] != 0 && a <= act[n_top - 1])
            continue;
        int pos = n_top - 1;
        while (pos > 0 && (top[pos - 1] == 0 || a > act[pos - 1])) {
            top[pos] = top[pos - 1];
            act[pos] = act[pos - 1];
            pos--;
        }
        top[pos] = i;
        act[pos] = a;
    }
    free(act);
    return PS_OK;
}
