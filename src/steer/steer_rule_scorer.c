/* The recommender steered by PopSteer-U (steer_rule.h). Unlike the paper's scorer, the shift
 * differs per user, so it cannot be folded into the encoder bias: the dense pre-activations
 * [B, m] are materialised, shifted row by row, then selected (ps_sae_topk). */
#include "popsteer/steer_rule.h"

#include "popsteer/popsteer.h" /* ps_sae_fits_model */

#include <stdlib.h>
#include <string.h>

void ps_rule_scorer_free(ps_rule_scorer *s)
{
    ps_sasrec_ws_free(s->ws);
    ps_sae_encoder_free(&s->enc);
    free(s->h);
    free(s->pre);
    free(s->val);
    free(s->hrec);
    free(s->idx);
    free(s->pre0);
    free(s->hrec0);
    memset(s, 0, sizeof *s);
}

int ps_rule_scorer_init(ps_rule_scorer *s, const ps_sasrec *m, const ps_sae *sae, const ps_steer_rule *rule,
                        int max_batch, ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (ps_sae_fits_model(sae, m, err) != PS_OK)
        return PS_ERR;
    if (rule->m != sae->cfg.n_latents)
        return ps_fail(err, "the steering rule has %d latents but the SAE has %d", rule->m, sae->cfg.n_latents);
    if (max_batch < 1)
        return ps_fail(err, "the rule scorer needs a batch of at least 1 (got %d)", max_batch);
    s->model = m;
    s->sae = sae;
    s->rule = rule;
    s->max_batch = max_batch;
    size_t B = (size_t)max_batch, d = (size_t)m->cfg.d, k = (size_t)sae->cfg.k, nl = (size_t)sae->cfg.n_latents;
    s->h = ps_calloc(B * d, sizeof *s->h, "user vectors", err);
    s->hrec = s->h ? ps_calloc(B * d, sizeof *s->hrec, "user vectors", err) : NULL;
    s->pre = s->hrec ? ps_calloc(B * nl, sizeof *s->pre, "pre-activations", err) : NULL;
    s->val = s->pre ? ps_calloc(B * k, sizeof *s->val, "codes", err) : NULL;
    s->idx = s->val ? ps_calloc(B * k, sizeof *s->idx, "codes", err) : NULL;
    if (s->idx && rule->p.keep_error) {
        s->pre0 = ps_calloc(B * nl, sizeof *s->pre0, "pre-activations", err);
        s->hrec0 = s->pre0 ? ps_calloc(B * d, sizeof *s->hrec0, "user vectors", err) : NULL;
        if (!s->hrec0) {
            ps_rule_scorer_free(s);
            return PS_ERR;
        }
    }
    if (!s->idx || ps_sae_encoder_init(&s->enc, sae, err) != PS_OK ||
        ps_sasrec_ws_create(&s->ws, m, max_batch, 0, err) != PS_OK) {
        ps_rule_scorer_free(s);
        return PS_ERR;
    }
    return PS_OK;
}

int ps_rule_score(ps_rule_scorer *s, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err)
{
    if (B > s->max_batch)
        return ps_fail(err, "the rule scorer takes at most %d users per call (got %d)", s->max_batch, B);
    if (ps_sasrec_user_vectors(s->model, s->ws, seq, len, B, s->h, err) != PS_OK)
        return PS_ERR;
    ps_rule_score_vectors(s, s->h, B, scores);
    return PS_OK;
}

void ps_rule_score_vectors(ps_rule_scorer *s, const float *h, int B, float *scores)
{
    /* the same bits as the rows ps_sae_encoder_topk selects from (sae.h), before any shift */
    ps_sae_encoder_pre(&s->enc, h, B, s->pre);
    const size_t nl = (size_t)s->rule->m, d = (size_t)s->model->cfg.d;
    if (s->pre0)
        memcpy(s->pre0, s->pre, (size_t)B * nl * sizeof *s->pre0);
    for (int b = 0; b < B; b++) {
        double g;
        ps_steer_rule_apply(s->rule, s->pre + (size_t)b * nl, 1, &g);
        s->gate_sum += g;
    }
    s->gate_rows += B;
    ps_sae_topk(s->sae, s->pre, B, s->idx, s->val);
    ps_sae_decode(s->sae, s->idx, s->val, B, s->hrec);
    if (s->pre0) {
        /* h + (ĥ_steered − ĥ): the SAE's error term stays, only the steering's change is added;
         * b_dec cancels in the difference */
        ps_sae_topk(s->sae, s->pre0, B, s->idx, s->val);
        ps_sae_decode(s->sae, s->idx, s->val, B, s->hrec0);
        for (size_t i = 0; i < (size_t)B * d; i++)
            s->hrec[i] = h[i] + (s->hrec[i] - s->hrec0[i]);
    }
    ps_sasrec_score(s->model, s->hrec, B, scores);
}

/* ps_evaluate calls score() from one thread, batch after batch (the parallelism is inside),
 * so the gate totals need no locking. */
static int rule_score(void *ctx, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err)
{
    return ps_rule_score(ctx, seq, len, B, scores, err);
}

ps_scorer ps_rule_scorer_as_scorer(ps_rule_scorer *s)
{
    return (ps_scorer){s, s->max_batch, rule_score};
}
