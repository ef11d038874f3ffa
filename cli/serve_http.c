/* The libmicrohttpd side of `popsteer serve`: a thread per connection (the thread-pool mode put
 * many connections on one thread and left cores idle), a body collected up to the limit (413
 * beyond it, announced or not), every request timed from its headers to its completion, and the
 * endpoints' replies turned into responses. */
#include "serve.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct serve_daemon {
    struct MHD_Daemon *mhd;
};

/* One request's state between the handler's calls (MHD's con_cls). */
typedef struct request_state {
    struct timespec t0;
    char *body;
    size_t len, cap;
    int too_large;
    int route, status;
} request_state;

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static const char *query_arg(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, request_state *st, serve_reply *r)
{
    struct MHD_Response *resp =
        r->static_body ? MHD_create_response_from_buffer(r->len, (void *)r->static_body, MHD_RESPMEM_PERSISTENT)
                       : MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);
    free(r->body);
    r->body = NULL;
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    st->status = r->status;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, request_state *st, int status, const char *msg)
{
    serve_reply r;
    serve_reply_error(&r, status, "%s", msg);
    return send_reply(conn, st, &r);
}

/* Appends a piece of the body, or notes that the body is over the limit (and drops it). */
static void take_body(request_state *st, size_t max, const char *data, size_t n)
{
    if (st->too_large || st->len + n > max) {
        st->too_large = 1;
        return;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < st->len + n + 1)
            cap *= 2;
        char *b = realloc(st->body, cap);
        if (!b) {
            st->too_large = 1; /* answered as too large: we cannot hold it */
            return;
        }
        st->body = b;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    serve_ctx *s = cls;
    request_state *st = *con_cls;
    if (!st) { /* the headers: allocate the state, refuse an announced oversized body now */
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &st->t0);
        st->route = SERVE_ROUTE_OTHER;
        *con_cls = st;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->limits.max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", s->limits.max_body);
            return send_error(conn, st, 413, msg);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        take_body(st, s->limits.max_body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", s->limits.max_body);
        return send_error(conn, st, 413, msg);
    }
    /* the library's OpenMP loops stay on this thread: the workspace pool has one per core */
    omp_set_num_threads(1);
    serve_request rq = {method, url, query_arg, conn, st->body ? st->body : "", st->len};
    serve_reply r;
    st->route = serve_api_handle(s, &rq, &r);
    return send_reply(conn, st, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    serve_ctx *s = cls;
    request_state *st = *con_cls;
    if (!st)
        return;
    int status = st->status ? st->status : 500;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !st->status)
        status = 499; /* the client went away or timed out before a response: counted as a 4xx */
    serve_metrics_record(&s->metrics, st->route, status, seconds_since(&st->t0));
    free(st->body);
    free(st);
    *con_cls = NULL;
}

int serve_http_start(serve_daemon **out, serve_ctx *s, const char *host, int port, int *bound_port, ps_error *err)
{
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return ps_fail(err, "--host: '%s' is not an IPv4 address (e.g. 127.0.0.1)", host);
    serve_daemon *d = calloc(1, sizeof *d);
    if (!d)
        return ps_fail(err, "out of memory");
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    d->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                              MHD_OPTION_CONNECTION_LIMIT, s->limits.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, s->limits.timeout_s,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_END);
    if (!d->mhd) {
        free(d);
        return ps_fail(err, "could not listen on %s:%d (in use, or not an address of this machine?)", host, port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    *out = d;
    return PS_OK;
}

void serve_http_stop(serve_daemon *d)
{
    if (!d)
        return;
    MHD_stop_daemon(d->mhd);
    free(d);
}
