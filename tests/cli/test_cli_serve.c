/* popsteer serve end to end on generated data (freshly initialised SASRec and SAE, a real probe
 * table): the server is started on a free loopback port and stopped by the test. Checks that the
 * lists equal `popsteer recommend`'s and the explanation `popsteer explain --json`'s, a POSTed
 * history equals the user's own, every error class is a 4xx with a JSON body, 50 concurrent
 * clients all get their own right answers, /metrics counts them, the page renders in headless
 * Chromium, and SIGTERM and SIGINT stop the server cleanly. */
#include "testutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "popsteer/checkpoint.h"
#include "popsteer/popsteer.h"

#define N_USERS 4
#define MAX_BODY 4096

static char *g_dir, *g_data, *g_model, *g_sae, *g_latents;
static char *g_user[N_USERS];   /* raw ids of a few users */
static char *g_item;            /* a raw item id */
static int g_n_latents; /* tu_steer_files' SAE */
static pid_t g_pid;
static int g_port;

/* ---------- the fixture and the server ---------- */

static void sleep_100ms(void)
{
    struct timespec t = {0, 100 * 1000 * 1000};
    nanosleep(&t, NULL);
}

static void make_fixture(void)
{
    g_dir = tu_mkdtemp();
    g_data = tu_path(g_dir, "d.inter");
    g_model = tu_path(g_dir, "m.safetensors");
    g_sae = tu_path(g_dir, "sae.safetensors");
    g_latents = tu_path(g_dir, "latents.csv");
    ps_dataset ds;
    tu_steer_files(g_data, g_model, g_sae, g_latents, 13, 17, &ds);
    g_n_latents = 64;
    /* users spread over the file whose histories leave unseen items (lists with exclude_seen) */
    int n = 0;
    for (int32_t u = 1; u <= ds.n_users && n < N_USERS; u += 1 + ds.n_users / (2 * N_USERS))
        if (ps_user_len(&ds, u) <= 60)
            assert_non_null(g_user[n++] = strdup(ps_strings_get(&ds.user_tokens, u)));
    assert_int_equal(n, N_USERS);
    assert_non_null(g_item = strdup(ps_strings_get(&ds.item_tokens, 9)));
    ps_dataset_free(&ds);
}

/* Starts `popsteer serve` on a free loopback port; *port is the one it listens on. */
static pid_t start_server(int *port)
{
    char *port_file = tu_path(g_dir, "port"), *log = tu_path(g_dir, "server.log");
    unlink(port_file);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl(POPSTEER_CLI, "popsteer", "serve", "--quiet", "--data", g_data, "--model", g_model, "--sae", g_sae,
              "--latents", g_latents, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file, "--threads",
              "2", "--max-body", "4096", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1200 && !tu_exists(port_file); i++) { /* 120 s: sanitizer builds load slowly */
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *text = tu_read(log, NULL);
            fail_msg("popsteer serve exited before listening: %s", text);
        }
        sleep_100ms();
    }
    assert_true(tu_exists(port_file));
    char *text = tu_read(port_file, NULL);
    *port = atoi(text);
    assert_true(*port > 0 && *port < 65536);
    free(text);
    free(port_file);
    free(log);
    return pid;
}

/* Sends sig and waits (at most 30 s) for a clean exit. */
static void stop_server(pid_t pid, int sig)
{
    assert_int_equal(kill(pid, sig), 0);
    int status = 0;
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            return;
        }
        sleep_100ms();
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("popsteer serve did not stop within 30 s of signal %d", sig);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    make_fixture();
    g_pid = start_server(&g_port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
    }
    tu_rmtree(g_dir);
    for (int i = 0; i < N_USERS; i++)
        free(g_user[i]);
    free(g_item);
    free(g_dir); free(g_data); free(g_model); free(g_sae); free(g_latents);
    return 0;
}

/* ---------- a minimal HTTP/1.1 client (no cmocka asserts: called from threads) ---------- */

/* Sends one request (Connection: close) and reads the whole answer. headers: extra header lines
 * ending in \r\n, or NULL; a body gets its Content-Length unless headers already frame it.
 * Returns the status (-1 on a socket error) and the body (malloc'ed) in *out. */
static int http(int port, const char *method, const char *target, const char *headers, const char *body,
                char **out)
{
    *out = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(target) + (headers ? strlen(headers) : 0) + blen + 256;
    char *req = malloc(cap);
    if (!req) {
        close(fd);
        return -1;
    }
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, target,
                     headers ? headers : "");
    if (body && !(headers && (strstr(headers, "Content-Length") || strstr(headers, "chunked"))))
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\nContent-Type: application/json\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    memcpy(req + n, body ? body : "", blen);
    size_t total = (size_t)n + blen, sent = 0;
    while (sent < total) {
        ssize_t w = send(fd, req + sent, total - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer (413) before reading everything: read what it said */
        sent += (size_t)w;
    }
    free(req);
    size_t len = 0, rcap = 8192;
    char *resp = malloc(rcap);
    for (ssize_t r; resp && (r = recv(fd, resp + len, rcap - len - 1, 0)) > 0;) {
        len += (size_t)r;
        if (rcap - len < 1024) {
            char *bigger = realloc(resp, rcap *= 2);
            if (!bigger) {
                free(resp);
                resp = NULL;
            }
            resp = bigger;
        }
    }
    close(fd);
    if (!resp)
        return -1;
    resp[len] = '\0';
    int status = -1;
    char *sep = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || !sep) {
        free(resp);
        return -1;
    }
    *out = strdup(sep + 4);
    free(resp);
    return *out ? status : -1;
}

static int get(const char *target, char **out)
{
    return http(g_port, "GET", target, NULL, NULL, out);
}

static cJSON *get_json(const char *target, int expect_status)
{
    char *body;
    int status = get(target, &body);
    if (status != expect_status)
        fail_msg("GET %s: status %d, expected %d: %s", target, status, expect_status, body ? body : "");
    cJSON *o = cJSON_Parse(body);
    if (!o)
        fail_msg("GET %s: not JSON: %s", target, body);
    free(body);
    return o;
}

/* ---------- the lists against `popsteer recommend` ---------- */

static void assert_same_items(const cJSON *server_items, const cJSON *cli_items, const char *what)
{
    int n = cJSON_GetArraySize(cli_items);
    if (n != cJSON_GetArraySize(server_items) || n == 0)
        fail_msg("%s: %d items from the server, %d from the CLI:\n%s\n%s", what, cJSON_GetArraySize(server_items), n,
                 cJSON_PrintUnformatted(server_items), cJSON_PrintUnformatted(cli_items));
    for (int j = 0; j < n; j++) {
        const cJSON *a = cJSON_GetArrayItem(server_items, j), *b = cJSON_GetArrayItem(cli_items, j);
        const char *ia = cJSON_GetObjectItem(a, "item")->valuestring, *ib = cJSON_GetObjectItem(b, "item")->valuestring;
        if (strcmp(ia, ib))
            fail_msg("%s: rank %d is %s on the server but %s from the CLI", what, j + 1, ia, ib);
        tu_assert_near(cJSON_GetObjectItem(a, "score")->valuedouble, cJSON_GetObjectItem(b, "score")->valuedouble,
                       1e-6);
        assert_string_equal(cJSON_GetObjectItem(a, "popularity")->valuestring,
                            cJSON_GetObjectItem(b, "popularity")->valuestring);
    }
}

static void test_recommend_equals_cli(void **state)
{
    (void)state;
    static const char *const alphas[] = {"0", "1.5", "4"};
    static const char *const neurons[] = {"all", "8"};
    int checked = 0;
    for (int u = 0; u < N_USERS; u++)
        for (int a = 0; a < 3; a++)
            for (int n = 0; n < 2; n++) {
                int mask = (u + a + n) % 2;
                char target[256], args[2048];
                snprintf(target, sizeof target, "/v1/recommend?user=%s&k=10&alpha=%s&neurons=%s&exclude_seen=%d",
                         g_user[u], alphas[a], neurons[n], mask);
                cJSON *s = get_json(target, 200);
                snprintf(args, sizeof args,
                         "recommend --quiet --json --data '%s' --model '%s' --sae '%s' --latents '%s' --user '%s' "
                         "--k 10 --alpha %s %s%s %s",
                         g_data, g_model, g_sae, g_latents, g_user[u], alphas[a], n ? "--neurons " : "",
                         n ? neurons[n] : "", mask ? "--mask-seen" : "");
                char *out, *err;
                int rc = tu_run_cli(args, &out, &err);
                if (rc != 0)
                    fail_msg("popsteer %s: %s", args, err);
                cJSON *c = cJSON_Parse(out);
                assert_non_null(c);
                assert_same_items(cJSON_GetObjectItem(s, "items"), c, target);
                assert_string_equal(cJSON_GetObjectItem(s, "scoring")->valuestring, a ? "popsteer" : "sae");
                assert_int_equal((int)cJSON_GetObjectItem(s, "neurons")->valuedouble, a ? (n ? 8 : g_n_latents) : 0);
                const cJSON *sh = cJSON_GetObjectItem(s, "shares");
                tu_assert_near(cJSON_GetObjectItem(sh, "head")->valuedouble + cJSON_GetObjectItem(sh, "mid")->valuedouble +
                                   cJSON_GetObjectItem(sh, "tail")->valuedouble,
                               1.0, 1e-9);
                checked++;
                cJSON_Delete(c);
                cJSON_Delete(s);
                free(out);
                free(err);
            }
    assert_int_equal(checked, N_USERS * 6);
}

/* POSTing a user's history (from the CLI's data) gives that user's list; unknown ids are listed. */
static void test_post_history(void **state)
{
    (void)state;
    ps_error err = {{0}};
    ps_dataset ds;
    ps_load_options lo;
    ps_load_options_init(&lo);
    assert_int_equal(ps_dataset_load(&ds, g_data, &lo, &err), PS_OK);
    int32_t u = 0;
    for (int32_t v = 1; v <= ds.n_users && !u; v++)
        if (ps_user_len(&ds, v) >= 10 && ps_user_len(&ds, v) <= 49)
            u = v;
    assert_true(u > 0);
    char body[4096];
    int n = snprintf(body, sizeof body, "{\"history\": [\"no-such-item\"");
    for (int64_t j = ds.user_off[u]; j < ds.user_off[u + 1]; j++)
        n += snprintf(body + n, sizeof body - (size_t)n, ", \"%s\"", ps_strings_get(&ds.item_tokens, ds.seq[j]));
    snprintf(body + n, sizeof body - (size_t)n, "], \"k\": 7, \"alpha\": 2, \"neurons\": 16}");
    char *resp;
    int status = http(g_port, "POST", "/v1/recommend", NULL, body, &resp);
    if (status != 200)
        fail_msg("POST: %d %s", status, resp);
    cJSON *p = cJSON_Parse(resp);
    char target[256];
    snprintf(target, sizeof target, "/v1/recommend?user=%s&k=7&alpha=2&neurons=16", ps_strings_get(&ds.user_tokens, u));
    cJSON *g = get_json(target, 200);
    assert_same_items(cJSON_GetObjectItem(p, "items"), cJSON_GetObjectItem(g, "items"), "POST vs GET");
    const cJSON *unknown = cJSON_GetObjectItem(p, "unknown_items");
    assert_int_equal(cJSON_GetArraySize(unknown), 1);
    assert_string_equal(cJSON_GetArrayItem(unknown, 0)->valuestring, "no-such-item");
    assert_int_equal((int)cJSON_GetObjectItem(p, "history_len")->valuedouble, (int)ps_user_len(&ds, u));
    cJSON_Delete(p);
    cJSON_Delete(g);
    free(resp);
    ps_dataset_free(&ds);
}

/* ---------- errors ---------- */

typedef struct bad_request {
    const char *method, *target, *headers, *body;
    int status;
    const char *says; /* a word the message must contain */
} bad_request;

static void test_errors_are_json_4xx(void **state)
{
    (void)state;
    char big_history[2048] = "{\"history\": [\"1\"";
    for (int i = 0; i < 60; i++)
        strcat(big_history, ", \"1\"");
    strcat(big_history, "]}");
    char chunked[8192];
    int n = snprintf(chunked, sizeof chunked, "1000\r\n");
    memset(chunked + n, ' ', 0x1000);
    n += 0x1000;
    n += snprintf(chunked + n, sizeof chunked - (size_t)n, "\r\n1\r\n{\r\n0\r\n\r\n");
    char user_q[128], neurons_q[160];
    snprintf(user_q, sizeof user_q, "/v1/recommend?user=%s&k=-1", g_user[0]);
    snprintf(neurons_q, sizeof neurons_q, "/v1/recommend?user=%s&alpha=1&neurons=%d", g_user[0], g_n_latents + 1);
    char nan_q[128], inf_q[128], neg_q[128], k0_q[128], explain_q[160];
    snprintf(nan_q, sizeof nan_q, "/v1/recommend?user=%s&alpha=nan", g_user[0]);
    snprintf(inf_q, sizeof inf_q, "/v1/recommend?user=%s&alpha=inf", g_user[0]);
    snprintf(neg_q, sizeof neg_q, "/v1/recommend?user=%s&alpha=-1", g_user[0]);
    snprintf(k0_q, sizeof k0_q, "/v1/recommend?user=%s&k=abc", g_user[0]);
    snprintf(explain_q, sizeof explain_q, "/v1/explain?user=%s&item=no-such-item", g_user[0]);
    const bad_request bad[] = {
        {"POST", "/v1/recommend", NULL, "{\"history\": [\"1\", ", 400, "JSON"},
        {"POST", "/v1/recommend", NULL, "[1, 2]", 400, "JSON"},
        {"POST", "/v1/recommend", NULL, "{\"history\": \"1\"}", 400, "history"},
        {"POST", "/v1/recommend", NULL, "{\"history\": [\"nope\"]}", 422, "none"},
        {"POST", "/v1/recommend", NULL, "{\"history\": [\"1\"], \"k\": -3}", 400, "k"},
        {"POST", "/v1/recommend", NULL, "{\"history\": [\"1\"], \"alpha\": \"2\"}", 400, "alpha"},
        {"POST", "/v1/recommend", NULL, "{\"history\": [\"1\"], \"alpha\": 1e999}", 400, "alpha"},
        {"POST", "/v1/recommend", NULL, big_history, 413, "at most"},
        {"POST", "/v1/recommend", "Content-Length: 10000000\r\nContent-Type: application/json\r\n", NULL, 413, "limit"},
        {"POST", "/v1/recommend", "Transfer-Encoding: chunked\r\n", chunked, 413, "limit"},
        {"GET", "/v1/recommend?user=no-such-user", NULL, NULL, 404, "no-such-user"},
        {"GET", "/v1/recommend", NULL, NULL, 400, "user"},
        {"GET", user_q, NULL, NULL, 400, "k"},
        {"GET", k0_q, NULL, NULL, 400, "k"},
        {"GET", nan_q, NULL, NULL, 400, "alpha"},
        {"GET", inf_q, NULL, NULL, 400, "alpha"},
        {"GET", neg_q, NULL, NULL, 400, "alpha"},
        {"GET", neurons_q, NULL, NULL, 400, "neurons"},
        {"GET", explain_q, NULL, NULL, 404, "no-such-item"},
        {"GET", "/v1/latents/99999", NULL, NULL, 404, "latent"},
        {"GET", "/v1/latents/x1", NULL, NULL, 404, "latent"},
        {"GET", "/v1/users?limit=0", NULL, NULL, 400, "limit"},
        {"GET", "/no/such/endpoint", NULL, NULL, 404, "endpoint"},
        {"DELETE", "/v1/recommend", NULL, NULL, 405, "GET"},
        {"POST", "/healthz", NULL, "{}", 405, "GET"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_request *b = &bad[i];
        char *resp;
        int status = http(g_port, b->method, b->target, b->headers, b->body, &resp);
        if (status != b->status)
            fail_msg("%s %s (case %zu): status %d, expected %d: %s", b->method, b->target, i, status, b->status,
                     resp ? resp : "");
        cJSON *o = cJSON_Parse(resp);
        if (!o || !cJSON_IsString(cJSON_GetObjectItem(o, "error")))
            fail_msg("%s %s (case %zu): not a JSON error: %s", b->method, b->target, i, resp);
        assert_int_equal((int)cJSON_GetObjectItem(o, "status")->valuedouble, b->status);
        if (!strstr(cJSON_GetObjectItem(o, "error")->valuestring, b->says))
            fail_msg("case %zu: '%s' does not mention '%s'", i, cJSON_GetObjectItem(o, "error")->valuestring, b->says);
        cJSON_Delete(o);
        free(resp);
    }
    cJSON *h = get_json("/healthz", 200); /* and the server is still there */
    assert_string_equal(cJSON_GetObjectItem(h, "status")->valuestring, "ok");
    cJSON_Delete(h);
}

/* ---------- explanations and latents ---------- */

static void test_explain_equals_cli(void **state)
{
    (void)state;
    for (int u = 0; u < 2; u++) {
        char target[256], args[2048];
        snprintf(target, sizeof target, "/v1/explain?user=%s&alpha=2.5&neurons=32%s%s", g_user[u], u ? "&item=" : "",
                 u ? g_item : "");
        cJSON *s = get_json(target, 200);
        snprintf(args, sizeof args,
                 "explain --quiet --json --data '%s' --model '%s' --sae '%s' --latents '%s' --user '%s' --alpha 2.5 "
                 "--neurons 32 %s%s",
                 g_data, g_model, g_sae, g_latents, g_user[u], u ? "--item " : "", u ? g_item : "");
        char *out, *err;
        if (tu_run_cli(args, &out, &err) != 0)
            fail_msg("popsteer %s: %s", args, err);
        cJSON *c = cJSON_Parse(out);
        assert_non_null(c);
        assert_int_equal((int)cJSON_GetObjectItem(s, "neurons")->valuedouble, 32);
        cJSON_DeleteItemFromObject(s, "alpha");
        cJSON_DeleteItemFromObject(s, "neurons");
        if (!cJSON_Compare(s, c, 1)) {
            char *a = cJSON_PrintUnformatted(s);
            fail_msg("GET %s differs from popsteer explain --json:\n%s\n%s", target, a, out);
        }
        /* the score split: largest |contribution| first, each with its d and top items */
        const cJSON *con = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "after"), "contributions"), *l;
        assert_true(cJSON_GetArraySize(con) > 0);
        double prev = INFINITY;
        cJSON_ArrayForEach(l, con)
        {
            double c_abs = fabs(cJSON_GetObjectItem(l, "contribution")->valuedouble);
            assert_true(c_abs <= prev);
            prev = c_abs;
            assert_true(cJSON_IsNumber(cJSON_GetObjectItem(l, "cohens_d")));
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(l, "top_items")), 5);
        }
        cJSON_Delete(c);
        cJSON_Delete(s);
        free(out);
        free(err);
    }
}

static void test_latent(void **state)
{
    (void)state;
    ps_latent_table t;
    ps_error err = {{0}};
    assert_int_equal(ps_latents_csv_read(g_latents, g_n_latents, &t, &err), PS_OK);
    for (int j = 0; j < g_n_latents; j += 21) {
        char target[64];
        snprintf(target, sizeof target, "/v1/latents/%d", j);
        cJSON *o = get_json(target, 200);
        tu_assert_near(cJSON_GetObjectItem(o, "cohens_d")->valuedouble, t.d[j], 1e-12);
        tu_assert_near(cJSON_GetObjectItem(o, "fire_rate")->valuedouble, t.fire_rate[j], 1e-12);
        int rank = (int)cJSON_GetObjectItem(o, "rank_by_abs_d")->valuedouble;
        assert_true(rank >= 1 && rank <= g_n_latents);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "top_items")), 10);
        cJSON_Delete(o);
    }
    ps_latent_table_free(&t);
}

/* ---------- 50 concurrent clients ---------- */

#define N_CLIENTS 50
#define PER_CLIENT 10
#define N_ALPHAS 4

typedef struct client {
    int id, port;
    char *const *expected; /* [N_USERS * N_ALPHAS] the sequential answers */
    int ok, wrong, failed;
    char first_problem[512];
} client;

static void target_of(char *buf, size_t n, int u, int a)
{
    snprintf(buf, n, "/v1/recommend?user=%s&k=10&alpha=%g", g_user[u], 0.8 * a);
}

static void *run_client(void *arg)
{
    client *c = arg;
    for (int r = 0; r < PER_CLIENT; r++) {
        int u = (c->id + r) % N_USERS, a = (c->id * 3 + r) % N_ALPHAS;
        char target[256], *body;
        target_of(target, sizeof target, u, a);
        int status = http(c->port, "GET", target, NULL, NULL, &body);
        if (status != 200)
            c->failed++;
        else if (strcmp(body, c->expected[u * N_ALPHAS + a]))
            c->wrong++;
        else
            c->ok++;
        if (status != 200 && !c->first_problem[0])
            snprintf(c->first_problem, sizeof c->first_problem, "%.200s: status %d %.150s", target, status,
                     body ? body : "");
        free(body);
    }
    return NULL;
}

static double metric(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    if (!p)
        fail_msg("/metrics has no %s:\n%s", name, text);
    return strtod(p + strlen(name), NULL);
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    char *expected[N_USERS * N_ALPHAS], *m0;
    for (int u = 0; u < N_USERS; u++)
        for (int a = 0; a < N_ALPHAS; a++) {
            char target[256];
            target_of(target, sizeof target, u, a);
            assert_int_equal(get(target, &expected[u * N_ALPHAS + a]), 200);
        }
    assert_int_equal(get("/metrics", &m0), 200);
    const double before = metric(m0, "popsteer_requests_total{route=\"recommend\",code=\"2xx\"} ");
    client c[N_CLIENTS];
    pthread_t th[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].id = i;
        c[i].port = g_port;
        c[i].expected = expected;
        assert_int_equal(pthread_create(&th[i], NULL, run_client, &c[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (c[i].failed || c[i].wrong)
            fail_msg("client %d: %d failed, %d wrong answers; %s", i, c[i].failed, c[i].wrong, c[i].first_problem);
        ok += c[i].ok;
    }
    assert_int_equal(ok, N_CLIENTS * PER_CLIENT);
    char *m1;
    assert_int_equal(get("/metrics", &m1), 200);
    const double after = metric(m1, "popsteer_requests_total{route=\"recommend\",code=\"2xx\"} ");
    assert_true(after - before >= N_CLIENTS * PER_CLIENT);
    assert_true(metric(m1, "popsteer_request_duration_seconds_count ") >= after);
    assert_non_null(strstr(m1, "popsteer_request_duration_seconds_bucket{le=\"+Inf\"}"));
    free(m0);
    free(m1);
    for (int i = 0; i < N_USERS * N_ALPHAS; i++)
        free(expected[i]);
}

/* ---------- the page in headless Chromium ---------- */

static const char *find_chromium(void)
{
    static const char *const names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (access(names[i], X_OK) == 0)
            return names[i];
    return NULL;
}

/* The data-item attributes of the <li>s in the list with this id, in order, comma-joined. */
static void dom_list(const char *dom, const char *id, char *out, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "id=\"%s\"", id);
    const char *p = strstr(dom, key), *end = p ? strstr(p, "</ol>") : NULL;
    out[0] = '\0';
    if (!p || !end)
        fail_msg("the page has no list %s", id);
    for (const char *q = p; (q = strstr(q, "data-item=\"")) && q < end;) {
        q += strlen("data-item=\"");
        const char *e = strchr(q, '"');
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%.*s", len ? "," : "", (int)(e - q), q);
    }
}

static void test_page_in_chromium(void **state)
{
    (void)state;
    const char *chromium = find_chromium();
    if (!chromium) {
        printf("SKIP: chromium is not installed (scripts/install-deps.sh installs it): the page test needs it\n");
        skip();
    }
    char *page;
    assert_int_equal(get("/", &page), 200);
    assert_non_null(strstr(page, "<script>"));
    free(page);
    char *dom_path = tu_path(g_dir, "dom.html"), *profile = tu_path(g_dir, "chromium-profile"),
         *log = tu_path(g_dir, "chromium.log");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 240 '%s' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
             "--disable-extensions --disable-breakpad --disable-crash-reporter --user-data-dir='%s' "
             "--virtual-time-budget=30000 --dump-dom "
             "'http://127.0.0.1:%d/?user=%s&alpha=2.5&neurons=32&k=8&exclude_seen=1' > '%s' 2> '%s'",
             chromium, profile, g_port, g_user[1], dom_path, log);
    int rc = system(cmd);
    if (rc != 0) {
        char *text = tu_read(log, NULL);
        fail_msg("chromium failed (%d): %s", rc, text);
    }
    char *dom = tu_read(dom_path, NULL);
    if (!strstr(dom, "data-state=\"ready\""))
        fail_msg("the page did not finish rendering: %.300s", strstr(dom, "id=\"status\"") ? strstr(dom, "id=\"status\"") : dom);
    char shown_before[2048], shown_after[2048], api_before[2048] = "", api_after[2048] = "";
    dom_list(dom, "before-list", shown_before, sizeof shown_before);
    dom_list(dom, "after-list", shown_after, sizeof shown_after);
    for (int side = 0; side < 2; side++) { /* what the API answers for the same request */
        char target[256];
        snprintf(target, sizeof target, "/v1/recommend?user=%s&k=8&exclude_seen=1&neurons=32&alpha=%s", g_user[1],
                 side ? "2.5" : "0");
        cJSON *o = get_json(target, 200);
        char *buf = side ? api_after : api_before;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "items"))
        {
            size_t len = strlen(buf);
            snprintf(buf + len, 2048 - len, "%s%s", len ? "," : "", cJSON_GetObjectItem(it, "item")->valuestring);
        }
        cJSON_Delete(o);
    }
    if (!strcmp(api_before, api_after)) /* else the page could show one list twice unnoticed */
        fail_msg("steering does not change this user's list: pick a larger alpha for the page test");
    assert_string_equal(shown_before, api_before);
    assert_string_equal(shown_after, api_after);
    assert_non_null(strstr(dom, "class=\"bar\" id=\"after-bar\" data-head="));
    assert_non_null(strstr(dom, "<tr data-latent=")); /* the latents that changed */
    free(dom);
    free(dom_path);
    free(profile);
    free(log);
}

/* ---------- usage errors of serve and recommend's steering options ---------- */

static void test_usage_errors(void **state)
{
    (void)state;
    char args[4096];
    typedef struct { const char *fmt; int status; const char *says; } usage;
    const usage cases[] = {
        {"serve --quiet --data '%s'", 2, "--model"},
        {"serve --quiet --data '%s' --model '%s' --latents '%s'", 2, "--sae"},
        {"serve --quiet --data '%s' --model '%s' --host localhost --port 0", 1, "IPv4"},
        {"recommend --quiet --data '%s' --model '%s' --user 1 --alpha 1", 2, "--sae"},
        {"recommend --quiet --data '%s' --model '%s' --user 1 --sae '%s' --alpha 1", 2, "--latents"},
        {"recommend --quiet --data '%s' --model '%s' --user 1 --sae '%s' --latents '%s' --rule peruser", 2, "paper"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, cases[i].fmt, g_data, g_model, i == 1 ? g_latents : g_sae, g_latents);
        char *err;
        int rc = tu_run_cli(args, NULL, &err);
        if (rc != cases[i].status || !strstr(err, cases[i].says))
            fail_msg("popsteer %s: status %d (expected %d): %s", args, rc, cases[i].status, err);
        free(err);
    }
    /* the port the test's server holds: a clear error, not a hang */
    snprintf(args, sizeof args, "serve --quiet --data '%s' --model '%s' --port %d", g_data, g_model, g_port);
    char *err;
    assert_int_equal(tu_run_cli(args, NULL, &err), 1);
    assert_non_null(strstr(err, "could not listen"));
    free(err);
}

/* ---------- shutdown ---------- */

static void test_signals_stop_cleanly(void **state)
{
    (void)state;
    stop_server(g_pid, SIGTERM);
    g_pid = 0;
    char *body;
    assert_int_equal(get("/healthz", &body), -1); /* nobody listens any more */
    int port;
    pid_t pid = start_server(&port);
    assert_int_equal(http(port, "GET", "/healthz", NULL, NULL, &body), 200);
    free(body);
    stop_server(pid, SIGINT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recommend_equals_cli), cmocka_unit_test(test_post_history),
        cmocka_unit_test(test_errors_are_json_4xx),  cmocka_unit_test(test_explain_equals_cli),
        cmocka_unit_test(test_latent),               cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_page_in_chromium),     cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_signals_stop_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
