/* popsteer serve: an HTTP front end over the library's recommender (recommend.h) and explanation
 * (explain.h). Everything is loaded once and read-only; a thread per connection, and each request
 * computed on one of a small pool of workspaces (one per core: threads beyond that wait for one).
 *
 *   serve_http.c     libmicrohttpd: body and size limits, timing, responses
 *   serve_ctx.c      the context, the workspace pool, JSON error bodies
 *   serve_explain.c  GET /v1/explain and /v1/latents/{j}
 *   serve_api.c      the endpoints: parameters checked, library called, JSON built
 *   serve_metrics.c  counters and the latency histogram, Prometheus text
 *   serve_page.c     the page at / (HTML and a little JavaScript, no framework)
 *   cmd_serve.c      options, loading, signals */
#ifndef POPSTEER_CLI_SERVE_H
#define POPSTEER_CLI_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "popsteer/items.h"
#include "popsteer/recommend.h"

/* ---- metrics ---- */

enum { SERVE_ROUTE_PAGE, SERVE_ROUTE_HEALTH, SERVE_ROUTE_METRICS, SERVE_ROUTE_RECOMMEND, SERVE_ROUTE_EXPLAIN,
       SERVE_ROUTE_LATENT, SERVE_ROUTE_USERS, SERVE_ROUTE_OTHER, SERVE_N_ROUTES };
#define SERVE_N_BUCKETS 12

typedef struct serve_metrics {
    atomic_uint_fast64_t requests[SERVE_N_ROUTES][3]; /* by status class 2xx, 4xx, 5xx */
    atomic_uint_fast64_t bucket[SERVE_N_BUCKETS];     /* latency <= serve_bucket_le[i] (not cumulative) */
    atomic_uint_fast64_t latency_us_sum, count;
} serve_metrics;

extern const double serve_bucket_le[SERVE_N_BUCKETS]; /* seconds; the last is +Inf */
const char *serve_route_name(int route);
void serve_metrics_record(serve_metrics *m, int route, int status, double seconds);
/* The Prometheus text exposition (malloc'ed, NUL-terminated), or NULL when out of memory. */
char *serve_metrics_text(serve_metrics *m, size_t *len);

/* ---- the server's context: the only state, shared by every thread ---- */

typedef struct serve_limits {
    size_t max_body;       /* bytes of a POST body */
    int max_history;       /* items of a POSTed history */
    int max_k;             /* list length */
    unsigned max_connections;
    unsigned timeout_s;    /* idle connection timeout */
} serve_limits;

typedef struct serve_ctx {
    const ps_recommender *rec;
    const ps_dataset *ds;
    const ps_item_titles *titles; /* NULL without --items */
    serve_limits limits;
    /* the workspace pool */
    pthread_mutex_t lock;
    pthread_cond_t freed;
    ps_rec_ws **free_ws;
    int n_free, n_ws;
    serve_metrics metrics;
} serve_ctx;

/* Builds n workspaces; on failure prints nothing and leaves the context safe to free. */
int serve_ctx_init(serve_ctx *s, const ps_recommender *rec, const ps_item_titles *titles, const serve_limits *lim,
                   int n_workers, ps_error *err);
void serve_ctx_free(serve_ctx *s);
ps_rec_ws *serve_ws_acquire(serve_ctx *s);
void serve_ws_release(serve_ctx *s, ps_rec_ws *w);

/* ---- one request, as the endpoints see it ---- */

typedef struct serve_request {
    const char *method, *path;
    const char *(*arg)(void *conn, const char *name); /* a query argument, NULL when absent */
    void *conn;
    const char *body;
    size_t body_len;
} serve_request;

typedef struct serve_reply {
    int status;
    const char *content_type;
    char *body;        /* malloc'ed, or NULL when static_body is set */
    const char *static_body;
    size_t len;
} serve_reply;

/* Routes a request; returns the route (for metrics) and fills the reply. */
int serve_api_handle(serve_ctx *s, const serve_request *rq, serve_reply *out);
/* A JSON error body {"error": message, "status": status}. */
void serve_reply_error(serve_reply *out, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Query parameters (serve_api.c): 0 = fine (absent: *out = def), -1 = the reply is a 400 (404 for
 * an unknown user) naming the parameter, its value and the range. */
int serve_arg_long(const serve_request *rq, const char *name, long min, long max, long def, long *out,
                   serve_reply *r);
int serve_arg_double(const serve_request *rq, const char *name, double min, double max, double def, double *out,
                     serve_reply *r);
int serve_arg_neurons(const serve_ctx *s, const serve_request *rq, int *out, serve_reply *r); /* 0 = all */
int serve_arg_user(const serve_ctx *s, const serve_request *rq, int32_t *u, serve_reply *r);
/* A 200 with o printed (o is taken over); a 500 when it cannot be printed. */
struct cJSON;
int serve_reply_json(serve_reply *out, struct cJSON *o);

/* GET /v1/explain and GET /v1/latents/{j} (serve_explain.c). */
void serve_explain(serve_ctx *s, const serve_request *rq, serve_reply *out);
void serve_latent(serve_ctx *s, const char *j, serve_reply *out);

/* ---- the page ---- */
extern const char serve_page_html[];

/* ---- the HTTP daemon ---- */
typedef struct serve_daemon serve_daemon;
/* Listens on host:port (port 0: a free one, *bound_port tells which): a thread per connection
 * (at most limits.max_connections), requests computed on the context's workspaces (one per core:
 * the threads beyond that wait for one, so the cores are shared fairly whichever connection
 * the requests come on). */
int serve_http_start(serve_daemon **out, serve_ctx *s, const char *host, int port, int *bound_port, ps_error *err);
void serve_http_stop(serve_daemon *d);

#endif
