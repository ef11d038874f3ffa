/* SASRec as a ps_scorer: eval-mode user vectors, then scores over the whole item table. */
#include "popsteer/train.h"

#include <stdlib.h>
#include <string.h>

int ps_sasrec_scorer_init(ps_sasrec_scorer *s, const ps_sasrec *m, int max_batch, ps_error *err)
{
    memset(s, 0, sizeof *s);
    s->model = m;
    s->max_batch = max_batch;
    s->h = ps_calloc((size_t)max_batch * (size_t)m->cfg.d, sizeof *s->h, "user vectors", err);
    if (!s->h || ps_sasrec_ws_create(&s->ws, m, max_batch, 0, err) != PS_OK) {
        ps_sasrec_scorer_free(s);
        return PS_ERR;
    }
    return PS_OK;
}

void ps_sasrec_scorer_free(ps_sasrec_scorer *s)
{
    ps_sasrec_ws_free(s->ws);
    free(s->h);
    memset(s, 0, sizeof *s);
}

static int score_batch(void *ctx, const int32_t *seq, const int32_t *len, int B, float *scores, ps_error *err)
{
    ps_sasrec_scorer *s = ctx;
    if (ps_sasrec_user_vectors(s->model, s->ws, seq, len, B, s->h, err) != PS_OK)
        return PS_ERR;
    ps_sasrec_score(s->model, s->h, B, scores);
    return PS_OK;
}

ps_scorer ps_sasrec_scorer_as_scorer(ps_sasrec_scorer *s)
{
    return (ps_scorer){s, s->max_batch, score_batch};
}

int ps_sasrec_quick_eval(const ps_sasrec *m, const ps_dataset *ds, int split, double *ndcg, double *hit,
                         ps_error *err)
{
    ps_sasrec_scorer s;
    if (ps_sasrec_scorer_init(&s, m, 512, err) != PS_OK)
        return PS_ERR;
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&s);
    ps_eval_options o;
    ps_eval_options_init(&o);
    o.split = (ps_split)split;
    ps_metrics met;
    int rc = ps_evaluate(ds, &sc, &o, &met, err);
    ps_sasrec_scorer_free(&s);
    if (rc == PS_OK) {
        *ndcg = met.ndcg;
        if (hit)
            *hit = met.hit;
    }
    return rc;
}
