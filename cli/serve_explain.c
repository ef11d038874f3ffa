/* GET /v1/explain (the object of `popsteer explain --json`, computed by ps_explain_user) and
 * GET /v1/latents/{j} (one latent's probe statistics and top items). */
#include "serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain_json.h"
#include "popsteer/evaluate.h"
#include "popsteer/explain.h"
#include "popsteer/metrics.h"

static int need_steering(const serve_ctx *s, serve_reply *out)
{
    if (ps_recommender_latents(s->rec))
        return 0;
    serve_reply_error(out, 400, "this server was started without --sae and --latents: there are no latents");
    return -1;
}

/* The explanation for user u's whole history with the plan of (alpha, N); the reply is filled. */
static void explain_user(serve_ctx *s, int32_t u, int32_t item, int k, double alpha, int neurons, serve_reply *out)
{
    const ps_dataset *ds = s->ds;
    const ps_sasrec *m = ps_recommender_model(s->rec);
    const ps_sae *sae = ps_recommender_sae(s->rec);
    const int L = m->cfg.max_len;
    ps_error err;
    ps_steer_plan plan;
    ps_explain e = {0};
    int32_t *seq = calloc((size_t)L, sizeof *seq), *lists = calloc((size_t)k * 2, sizeof *lists);
    if (!seq || !lists) {
        free(seq);
        free(lists);
        serve_reply_error(out, 500, "out of memory");
        return;
    }
    int32_t len;
    ps_sample next = {u, (int32_t)ps_user_len(ds, u)}; /* the whole history, as `recommend` scores it */
    ps_batch_prefixes(ds, &next, 1, L, seq, &len);
    int rc = ps_recommender_plan(s->rec, alpha, neurons, &plan, &err);
    if (rc == PS_OK) {
        ps_explain_steering es = {&plan, NULL};
        rc = ps_explain_user(m, sae, &es, ps_recommender_latents(s->rec), seq, len, item, &e, &err);
    }
    cJSON *o = NULL;
    if (rc == PS_OK) {
        ps_topk(e.before.scores, ds->n_items, k, NULL, lists);
        ps_topk(e.after.scores, ds->n_items, k, NULL, lists + k);
        char desc[128];
        snprintf(desc, sizeof desc, "PopSteer (alpha %g, %d of %d latents)", alpha, plan.n, plan.m);
        explain_view v = {NULL, ps_strings_get(&ds->user_tokens, u), k, ds, s->titles, m, sae, &e, desc,
                          ps_user_len(ds, u), len};
        o = explain_json(&v, lists, lists + k, &err);
        rc = o ? PS_OK : PS_ERR;
    }
    if (rc == PS_OK) {
        cJSON_AddNumberToObject(o, "alpha", alpha);
        cJSON_AddNumberToObject(o, "neurons", plan.n);
        serve_reply_json(out, o);
    } else
        serve_reply_error(out, 500, "%s", err.msg);
    ps_steer_plan_free(&plan);
    ps_explain_free(&e);
    free(seq);
    free(lists);
}

void serve_explain(serve_ctx *s, const serve_request *rq, serve_reply *out)
{
    int32_t u, item = 0;
    long k;
    double alpha;
    int neurons;
    if (need_steering(s, out) < 0 || serve_arg_user(s, rq, &u, out) < 0 ||
        serve_arg_long(rq, "k", 1, s->limits.max_k < s->ds->n_items ? s->limits.max_k : s->ds->n_items, 10, &k,
                       out) < 0 ||
        serve_arg_double(rq, "alpha", 0, 1e6, 0, &alpha, out) < 0 || serve_arg_neurons(s, rq, &neurons, out) < 0)
        return;
    const char *it = rq->arg(rq->conn, "item");
    if (it && !(item = ps_recommender_find_item(s->rec, it))) {
        serve_reply_error(out, 404, "item '%s' is not in the dataset (after filtering)", it);
        return;
    }
    explain_user(s, u, item, (int)k, alpha, neurons, out);
}

#define LATENT_TOP_ITEMS 10

void serve_latent(serve_ctx *s, const char *arg, serve_reply *out)
{
    if (need_steering(s, out) < 0)
        return;
    const ps_latent_table *t = ps_recommender_latents(s->rec);
    char *end;
    errno = 0;
    long j = strtol(arg, &end, 10);
    if (!*arg || *end || errno || j < 0 || j >= t->m) {
        serve_reply_error(out, 404, "latent '%s': expected an index in 0..%d", arg, t->m - 1);
        return;
    }
    int32_t top[LATENT_TOP_ITEMS];
    ps_error err;
    if (ps_explain_latent_top_items(ps_recommender_model(s->rec), ps_recommender_sae(s->rec), (int32_t)j,
                                    LATENT_TOP_ITEMS, top, &err) != PS_OK) {
        serve_reply_error(out, 500, "%s", err.msg);
        return;
    }
    /* rank by |d| as steering orders the latents: larger |d| first, ties to the smaller index */
    int rank = 1;
    for (int i = 0; i < t->m; i++)
        rank += fabs(t->d[i]) > fabs(t->d[j]) || (fabs(t->d[i]) == fabs(t->d[j]) && i < j);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "latent", (double)j);
    cJSON_AddNumberToObject(o, "cohens_d", t->d[j]);
    cJSON_AddNumberToObject(o, "rank_by_abs_d", rank);
    cJSON_AddNumberToObject(o, "n_latents", t->m);
    cJSON_AddNumberToObject(o, "mean_pop", t->mean_pop[j]);
    cJSON_AddNumberToObject(o, "std_pop", t->std_pop[j]);
    cJSON_AddNumberToObject(o, "mean_unpop", t->mean_unpop[j]);
    cJSON_AddNumberToObject(o, "std_unpop", t->std_unpop[j]);
    cJSON_AddNumberToObject(o, "fire_rate", t->fire_rate[j]);
    cJSON *arr = cJSON_AddArrayToObject(o, "top_items");
    for (int i = 0; i < LATENT_TOP_ITEMS && top[i]; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "item", ps_strings_get(&s->ds->item_tokens, top[i]));
        cJSON_AddStringToObject(e, "popularity", explain_label_name(s->ds->label[top[i]]));
        const char *title = ps_item_title(s->titles, top[i]);
        if (title)
            cJSON_AddStringToObject(e, "title", title);
        cJSON_AddItemToArray(arr, e);
    }
    serve_reply_json(out, o);
}
