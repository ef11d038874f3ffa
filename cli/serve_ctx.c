/* The server's context: the recommender, the limits, the metrics and the workspace pool. */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int serve_ctx_init(serve_ctx *s, const ps_recommender *rec, const ps_item_titles *titles, const serve_limits *lim,
                   int n_workers, ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return ps_fail(err, "could not create a mutex");
    if (pthread_cond_init(&s->freed, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        return ps_fail(err, "could not create a condition variable");
    }
    s->rec = rec; /* from here on serve_ctx_free has something to free */
    s->ds = ps_recommender_dataset(rec);
    s->titles = titles;
    s->limits = *lim;
    s->free_ws = ps_calloc((size_t)n_workers, sizeof *s->free_ws, "workspace pool", err);
    if (!s->free_ws)
        return PS_ERR;
    for (int i = 0; i < n_workers; i++) {
        if (ps_rec_ws_create(&s->free_ws[i], rec, err) != PS_OK)
            return PS_ERR;
        s->n_ws = s->n_free = i + 1;
    }
    return PS_OK;
}

void serve_ctx_free(serve_ctx *s)
{
    if (!s->free_ws && !s->rec)
        return;
    for (int i = 0; i < s->n_free; i++)
        ps_rec_ws_free(s->free_ws[i]);
    free(s->free_ws);
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s);
}

ps_rec_ws *serve_ws_acquire(serve_ctx *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->n_free == 0)
        pthread_cond_wait(&s->freed, &s->lock);
    ps_rec_ws *w = s->free_ws[--s->n_free];
    pthread_mutex_unlock(&s->lock);
    return w;
}

void serve_ws_release(serve_ctx *s, ps_rec_ws *w)
{
    pthread_mutex_lock(&s->lock);
    s->free_ws[s->n_free++] = w;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

void serve_reply_error(serve_reply *out, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memset(out, 0, sizeof *out);
    out->status = status;
    out->content_type = "application/json";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddNumberToObject(o, "status", status);
    out->body = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!out->body) { /* out of memory: a fixed body still says what happened */
        out->status = 500;
        out->static_body = "{\"error\":\"out of memory\",\"status\":500}";
    }
    out->len = strlen(out->body ? out->body : out->static_body);
}
