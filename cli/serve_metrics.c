/* Request counters and the latency histogram of `popsteer serve`, in Prometheus text format. */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double serve_bucket_le[SERVE_N_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,   0.25,  0.5,   1.0,  1e300};

static const char *const ROUTES[SERVE_N_ROUTES] = {"page", "healthz", "metrics", "recommend",
                                                   "explain", "latents", "users", "other"};

const char *serve_route_name(int route)
{
    return route >= 0 && route < SERVE_N_ROUTES ? ROUTES[route] : "other";
}

void serve_metrics_record(serve_metrics *m, int route, int status, double seconds)
{
    if (route < 0 || route >= SERVE_N_ROUTES)
        route = SERVE_ROUTE_OTHER;
    int cls = status >= 500 ? 2 : status >= 400 ? 1 : 0;
    atomic_fetch_add_explicit(&m->requests[route][cls], 1, memory_order_relaxed);
    int b = 0;
    while (b < SERVE_N_BUCKETS - 1 && seconds > serve_bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&m->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_us_sum, (uint_fast64_t)(seconds * 1e6 + 0.5), memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

typedef struct text {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

char *serve_metrics_text(serve_metrics *m, size_t *len)
{
    text t = {malloc(4096), 0, 4096, 0};
    if (!t.buf)
        return NULL;
    t.buf[0] = '\0';
    add(&t, "# HELP popsteer_requests_total HTTP requests answered, by route and status class.\n"
            "# TYPE popsteer_requests_total counter\n");
    static const char *const CLS[3] = {"2xx", "4xx", "5xx"};
    uint64_t errors = 0;
    for (int r = 0; r < SERVE_N_ROUTES; r++)
        for (int c = 0; c < 3; c++) {
            uint64_t n = atomic_load_explicit(&m->requests[r][c], memory_order_relaxed);
            errors += c ? n : 0;
            add(&t, "popsteer_requests_total{route=\"%s\",code=\"%s\"} %llu\n", ROUTES[r], CLS[c],
                (unsigned long long)n);
        }
    add(&t, "# HELP popsteer_request_errors_total Requests answered with a 4xx or 5xx status.\n"
            "# TYPE popsteer_request_errors_total counter\npopsteer_request_errors_total %llu\n",
        (unsigned long long)errors);
    add(&t, "# HELP popsteer_request_duration_seconds Time from a request's headers to its response sent.\n"
            "# TYPE popsteer_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < SERVE_N_BUCKETS; b++) {
        cum += atomic_load_explicit(&m->bucket[b], memory_order_relaxed);
        if (b == SERVE_N_BUCKETS - 1)
            add(&t, "popsteer_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        else
            add(&t, "popsteer_request_duration_seconds_bucket{le=\"%g\"} %llu\n", serve_bucket_le[b],
                (unsigned long long)cum);
    }
    add(&t, "popsteer_request_duration_seconds_sum %.6f\npopsteer_request_duration_seconds_count %llu\n",
        (double)atomic_load_explicit(&m->latency_us_sum, memory_order_relaxed) / 1e6,
        (unsigned long long)atomic_load_explicit(&m->count, memory_order_relaxed));
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
