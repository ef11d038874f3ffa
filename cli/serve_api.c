/* The endpoints of `popsteer serve`: routing, parameters (every one range-checked: a bad one is a
 * 400 with a JSON body naming it), and the recommendation lists. Explanations and latents are in
 * serve_explain.c. */
#include "serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "explain_json.h"

/* ---------- parameters ---------- */

int serve_arg_long(const serve_request *rq, const char *name, long min, long max, long def, long *out,
                   serve_reply *r)
{
    const char *a = rq->arg(rq->conn, name);
    *out = def;
    if (!a)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(a, &end, 10);
    if (!*a || *end || errno || v < min || v > max) {
        serve_reply_error(r, 400, "%s = '%s': expected an integer in %ld..%ld", name, a, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int serve_arg_double(const serve_request *rq, const char *name, double min, double max, double def, double *out,
                     serve_reply *r)
{
    const char *a = rq->arg(rq->conn, name);
    *out = def;
    if (!a)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(a, &end);
    if (!*a || *end || errno || !isfinite(v) || v < min || v > max) {
        serve_reply_error(r, 400, "%s = '%s': expected a finite number in %g..%g", name, a, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int serve_arg_neurons(const serve_ctx *s, const serve_request *rq, int *out, serve_reply *r)
{
    const ps_latent_table *t = ps_recommender_latents(s->rec);
    const char *a = rq->arg(rq->conn, "neurons");
    *out = 0;
    if (!a || !strcmp(a, "all"))
        return 0;
    if (!t) {
        serve_reply_error(r, 400, "neurons: this server steers nothing (started without --sae and --latents)");
        return -1;
    }
    long v;
    if (serve_arg_long(rq, "neurons", 1, t->m, 0, &v, r) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int serve_arg_user(const serve_ctx *s, const serve_request *rq, int32_t *u, serve_reply *r)
{
    const char *a = rq->arg(rq->conn, "user");
    if (!a || !*a) {
        serve_reply_error(r, 400, "user: the user's id as written in the data file is required");
        return -1;
    }
    if (!(*u = ps_recommender_find_user(s->rec, a))) {
        serve_reply_error(r, 404, "user '%s' is not in the dataset (after filtering)", a);
        return -1;
    }
    return 0;
}

int serve_reply_json(serve_reply *out, cJSON *o)
{
    memset(out, 0, sizeof *out);
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body) {
        serve_reply_error(out, 500, "out of memory");
        return -1;
    }
    out->status = 200;
    out->content_type = "application/json";
    out->body = body;
    out->len = strlen(body);
    return 0;
}

/* ---------- lists ---------- */

static cJSON *list_json(const serve_ctx *s, const ps_rec_query *q, const ps_rec_list *l)
{
    const ps_dataset *ds = s->ds;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "k", q->k);
    cJSON_AddNumberToObject(o, "alpha", q->alpha);
    cJSON_AddNumberToObject(o, "neurons", l->neurons);
    cJSON_AddStringToObject(o, "scoring", ps_rec_scoring_name(l->scoring));
    cJSON_AddBoolToObject(o, "exclude_seen", q->exclude_seen);
    cJSON_AddNumberToObject(o, "history_len", (double)q->n_history);
    cJSON_AddNumberToObject(o, "prefix_len", l->prefix_len);
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (int j = 0; j < l->n; j++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddNumberToObject(it, "rank", j + 1);
        cJSON_AddStringToObject(it, "item", ps_strings_get(&ds->item_tokens, l->items[j]));
        cJSON_AddNumberToObject(it, "score", l->scores[j]);
        cJSON_AddStringToObject(it, "popularity", explain_label_name(ds->label[l->items[j]]));
        const char *t = ps_item_title(s->titles, l->items[j]);
        if (t)
            cJSON_AddStringToObject(it, "title", t);
        cJSON_AddItemToArray(items, it);
    }
    cJSON *sh = cJSON_AddObjectToObject(o, "shares");
    double n = l->n ? l->n : 1;
    cJSON_AddNumberToObject(sh, "head", l->n_head / n);
    cJSON_AddNumberToObject(sh, "mid", l->n_mid / n);
    cJSON_AddNumberToObject(sh, "tail", l->n_tail / n);
    return o;
}

/* Runs q on a pooled workspace; the list JSON, or NULL with the reply filled. */
static cJSON *run_query(serve_ctx *s, const ps_rec_query *q, serve_reply *out)
{
    ps_error err;
    if (ps_rec_query_check(s->rec, q, &err) != PS_OK) {
        serve_reply_error(out, 400, "%s", err.msg);
        return NULL;
    }
    ps_rec_ws *w = serve_ws_acquire(s);
    ps_rec_list l;
    int rc = ps_recommend(s->rec, w, q, &l, &err);
    cJSON *o = rc == PS_OK ? list_json(s, q, &l) : NULL; /* l points into w: build before releasing */
    serve_ws_release(s, w);
    if (rc != PS_OK)
        serve_reply_error(out, 500, "%s", err.msg);
    else if (!o)
        serve_reply_error(out, 500, "out of memory");
    return o;
}

static int common_query(serve_ctx *s, const serve_request *rq, ps_rec_query *q, serve_reply *out)
{
    long k, ex;
    if (serve_arg_long(rq, "k", 1, s->limits.max_k, 10, &k, out) < 0 ||
        serve_arg_double(rq, "alpha", 0, 1e6, 0, &q->alpha, out) < 0 ||
        serve_arg_neurons(s, rq, &q->neurons, out) < 0 ||
        serve_arg_long(rq, "exclude_seen", 0, 1, 0, &ex, out) < 0)
        return -1;
    q->k = (int)k;
    q->exclude_seen = (int)ex;
    return 0;
}

static void recommend_get(serve_ctx *s, const serve_request *rq, serve_reply *out)
{
    int32_t u;
    ps_rec_query q = {0};
    if (serve_arg_user(s, rq, &u, out) < 0 || common_query(s, rq, &q, out) < 0)
        return;
    q.user = u; /* the whole history, with the vector cached at startup */
    q.history = s->ds->seq + s->ds->user_off[u];
    q.n_history = ps_user_len(s->ds, u);
    cJSON *o = run_query(s, &q, out);
    if (o) {
        cJSON_AddStringToObject(o, "user", ps_strings_get(&s->ds->user_tokens, u));
        serve_reply_json(out, o);
    }
}

/* A JSON number field of the POST body: absent keeps *v; integral when asked. */
static int body_number(const cJSON *body, const char *name, double min, double max, int integral, double *v,
                       serve_reply *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!f || cJSON_IsNull(f))
        return 0;
    double x = cJSON_IsNumber(f) ? f->valuedouble : NAN;
    if (cJSON_IsBool(f) && !strcmp(name, "exclude_seen"))
        x = cJSON_IsTrue(f);
    if (!isfinite(x) || x < min || x > max || (integral && x != floor(x))) {
        serve_reply_error(out, 400, "\"%s\": expected %s in %g..%g", name, integral ? "an integer" : "a number", min,
                          max);
        return -1;
    }
    *v = x;
    return 0;
}

/* history: raw item ids (strings, or integers for numeric ids); unknown ones are listed. */
static int body_history(serve_ctx *s, const cJSON *body, int32_t *hist, int64_t *n, cJSON *unknown, serve_reply *out)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(body, "history");
    if (!cJSON_IsArray(h)) {
        serve_reply_error(out, 400, "\"history\": expected an array of item ids");
        return -1;
    }
    int len = cJSON_GetArraySize(h);
    if (len > s->limits.max_history) {
        serve_reply_error(out, 413, "\"history\" has %d items; at most %d are accepted", len, s->limits.max_history);
        return -1;
    }
    *n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h)
    {
        char num[32];
        const char *tok = cJSON_IsString(e) ? e->valuestring : NULL;
        if (cJSON_IsNumber(e) && e->valuedouble == floor(e->valuedouble) && fabs(e->valuedouble) < 1e15) {
            snprintf(num, sizeof num, "%.0f", e->valuedouble);
            tok = num;
        }
        if (!tok) {
            serve_reply_error(out, 400, "\"history\": every item id must be a string or an integer");
            return -1;
        }
        int32_t it = ps_recommender_find_item(s->rec, tok);
        if (it)
            hist[(*n)++] = it;
        else
            cJSON_AddItemToArray(unknown, cJSON_CreateString(tok));
    }
    if (*n == 0) {
        serve_reply_error(out, 422, "none of the history's %d items is in the dataset", len);
        return -1;
    }
    return 0;
}

static void recommend_post(serve_ctx *s, const serve_request *rq, serve_reply *out)
{
    cJSON *body = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        serve_reply_error(out, 400, "the body is not a JSON object (malformed JSON?)");
        return;
    }
    double k = 10, alpha = 0, neurons = 0, ex = 0;
    const ps_latent_table *t = ps_recommender_latents(s->rec);
    int32_t *hist = calloc((size_t)s->limits.max_history + 1, sizeof *hist);
    cJSON *unknown = cJSON_CreateArray();
    ps_rec_query q = {0};
    cJSON *o = NULL;
    if (!hist || !unknown)
        serve_reply_error(out, 500, "out of memory");
    else if (body_number(body, "k", 1, s->limits.max_k, 1, &k, out) == 0 &&
             body_number(body, "alpha", 0, 1e6, 0, &alpha, out) == 0 &&
             body_number(body, "neurons", 0, t ? t->m : 0, 1, &neurons, out) == 0 &&
             body_number(body, "exclude_seen", 0, 1, 1, &ex, out) == 0 &&
             body_history(s, body, hist, &q.n_history, unknown, out) == 0) {
        q.history = hist;
        q.k = (int)k;
        q.alpha = alpha;
        q.neurons = (int)neurons;
        q.exclude_seen = (int)ex;
        o = run_query(s, &q, out);
    }
    if (o) {
        cJSON_AddItemToObject(o, "unknown_items", unknown);
        unknown = NULL;
        serve_reply_json(out, o);
    }
    cJSON_Delete(unknown);
    cJSON_Delete(body);
    free(hist);
}

/* ---------- the small endpoints ---------- */

static void users(serve_ctx *s, const serve_request *rq, serve_reply *out)
{
    long limit, offset;
    if (serve_arg_long(rq, "limit", 1, 1000, 100, &limit, out) < 0 ||
        serve_arg_long(rq, "offset", 0, s->ds->n_users, 0, &offset, out) < 0)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_users", s->ds->n_users);
    cJSON *arr = cJSON_AddArrayToObject(o, "users");
    for (long u = offset + 1; u <= s->ds->n_users && u <= offset + limit; u++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "user", ps_strings_get(&s->ds->user_tokens, (int32_t)u));
        cJSON_AddNumberToObject(e, "history_len", (double)ps_user_len(s->ds, (int32_t)u));
        cJSON_AddItemToArray(arr, e);
    }
    serve_reply_json(out, o);
}

static void health(serve_ctx *s, serve_reply *out)
{
    const ps_sae *sae = ps_recommender_sae(s->rec);
    const ps_latent_table *t = ps_recommender_latents(s->rec);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "users", s->ds->n_users);
    cJSON_AddNumberToObject(o, "items", s->ds->n_items);
    cJSON_AddStringToObject(o, "scoring", t ? "popsteer" : sae ? "sae" : "sasrec");
    cJSON_AddBoolToObject(o, "steering", t != NULL);
    cJSON_AddNumberToObject(o, "n_latents", sae ? sae->cfg.n_latents : 0);
    cJSON_AddNumberToObject(o, "max_k", s->limits.max_k);
    cJSON_AddNumberToObject(o, "max_history", s->limits.max_history);
    cJSON_AddBoolToObject(o, "titles", s->titles != NULL);
    serve_reply_json(out, o);
}

static void metrics(serve_ctx *s, serve_reply *out)
{
    size_t len = 0;
    char *text = serve_metrics_text(&s->metrics, &len);
    if (!text) {
        serve_reply_error(out, 500, "out of memory");
        return;
    }
    memset(out, 0, sizeof *out);
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = text;
    out->len = len;
}

/* ---------- routing ---------- */

static int method_is(const serve_request *rq, const char *m)
{
    return !strcmp(rq->method, m);
}

int serve_api_handle(serve_ctx *s, const serve_request *rq, serve_reply *out)
{
    static const char LATENT_PREFIX[] = "/v1/latents/";
    const char *p = rq->path;
    int get = method_is(rq, "GET") || method_is(rq, "HEAD");
    if (!strcmp(p, "/v1/recommend")) {
        if (get)
            recommend_get(s, rq, out);
        else if (method_is(rq, "POST"))
            recommend_post(s, rq, out);
        else
            serve_reply_error(out, 405, "%s /v1/recommend: use GET or POST", rq->method);
        return SERVE_ROUTE_RECOMMEND;
    }
    int route = !strcmp(p, "/") ? SERVE_ROUTE_PAGE
              : !strcmp(p, "/healthz") ? SERVE_ROUTE_HEALTH
              : !strcmp(p, "/metrics") ? SERVE_ROUTE_METRICS
              : !strcmp(p, "/v1/explain") ? SERVE_ROUTE_EXPLAIN
              : !strncmp(p, LATENT_PREFIX, sizeof LATENT_PREFIX - 1) ? SERVE_ROUTE_LATENT
              : !strcmp(p, "/v1/users") ? SERVE_ROUTE_USERS
              : SERVE_ROUTE_OTHER;
    if (route == SERVE_ROUTE_OTHER) {
        serve_reply_error(out, 404, "no such endpoint: %s (see GET / and docs/serving.md)", p);
        return route;
    }
    if (!get) {
        serve_reply_error(out, 405, "%s %s: use GET", rq->method, p);
        return route;
    }
    switch (route) {
    case SERVE_ROUTE_PAGE:
        memset(out, 0, sizeof *out);
        out->status = 200;
        out->content_type = "text/html; charset=utf-8";
        out->static_body = serve_page_html;
        out->len = strlen(serve_page_html);
        break;
    case SERVE_ROUTE_HEALTH: health(s, out); break;
    case SERVE_ROUTE_METRICS: metrics(s, out); break;
    case SERVE_ROUTE_EXPLAIN: serve_explain(s, rq, out); break;
    case SERVE_ROUTE_LATENT: serve_latent(s, p + sizeof LATENT_PREFIX - 1, out); break;
    default: users(s, rq, out); break;
    }
    return route;
}
