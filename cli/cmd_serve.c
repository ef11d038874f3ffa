/* popsteer serve: loads the data, the model and (optionally) the SAE and its latents table once,
 * then answers HTTP requests on a loopback address until SIGTERM or SIGINT (serve.h). */
#include "cli.h"

#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/items.h"
#include "popsteer/recommend.h"
#include "serve.h"

static const char HELP[] =
    "usage: popsteer serve --data PATH --model MODEL.safetensors [--sae SAE --latents LATENTS.csv]\n"
    "                      [--items FILE] [--host 127.0.0.1] [--port 8080] [--threads N]\n\n"
    "Answers recommendation, steering and explanation requests over HTTP, with a page at / to\n"
    "turn the alpha knob and see the lists before and after (docs/serving.md):\n"
    "  GET  /v1/recommend?user=ID&k=10&alpha=1.5&neurons=all&exclude_seen=0\n"
    "  POST /v1/recommend   {\"history\": [item ids], \"k\": 10, \"alpha\": 2}\n"
    "  GET  /v1/explain?user=ID[&item=ID]&alpha=1.5     GET /v1/latents/J     GET /v1/users\n"
    "  GET  /healthz        GET /metrics (Prometheus)\n"
    "Everything is loaded once and shared read-only by the connections' threads. Stops cleanly on\n"
    "SIGTERM or SIGINT.\n\n"
    "Options:\n"
    "  --model FILE       the SASRec model\n"
    "  --sae FILE         score through the sparse autoencoder (alone: alpha 0 only)\n"
    "  --latents FILE     the probe's latents table: steering and explanations\n"
    "  --items FILE       item titles (RecBole .item, MovieLens u.item/movies.dat, CSV)\n"
    "  --host ADDR        IPv4 address to listen on (default 127.0.0.1, loopback only)\n"
    "  --port N           TCP port (default 8080; 0 = any free port, see --port-file)\n"
    "  --port-file FILE   write the port listened on to FILE once ready\n"
    "  --threads N        requests computed at a time (default: the number of cores)\n"
    "  --max-connections N  concurrent connections (default 512)\n"
    "  --max-body BYTES   largest request body (default 65536)\n"
    "  --max-history N    largest POSTed history (default 50)\n"
    "  --max-k N          longest list (default 1000)\n"
    "  --timeout S        idle connection timeout in seconds (default 10)\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_SAE_PATH, OPT_LATENTS_PATH, OPT_ITEMS, OPT_HOST, OPT_PORT,
       OPT_PORT_FILE, OPT_MAX_CONN, OPT_MAX_BODY, OPT_MAX_HISTORY, OPT_MAX_K, OPT_TIMEOUT };

typedef struct serve_args {
    const char *model, *sae, *latents, *items, *host, *port_file;
    long port;
    serve_limits lim;
} serve_args;

static int parse_limit(const cli_common *c, serve_args *a, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_PORT: return cli_parse_long(c, "port", arg, 0, 65535, &a->port) < 0 ? -1 : 1;
    case OPT_MAX_CONN:
        if (cli_parse_long(c, "max-connections", arg, 1, 100000, &v) < 0)
            return -1;
        a->lim.max_connections = (unsigned)v;
        return 1;
    case OPT_MAX_BODY:
        if (cli_parse_long(c, "max-body", arg, 64, 16L << 20, &v) < 0)
            return -1;
        a->lim.max_body = (size_t)v;
        return 1;
    case OPT_MAX_HISTORY:
        if (cli_parse_long(c, "max-history", arg, 1, 100000, &v) < 0)
            return -1;
        a->lim.max_history = (int)v;
        return 1;
    case OPT_MAX_K:
        if (cli_parse_long(c, "max-k", arg, 1, PS_REC_MAX_K, &v) < 0)
            return -1;
        a->lim.max_k = (int)v;
        return 1;
    case OPT_TIMEOUT:
        if (cli_parse_long(c, "timeout", arg, 1, 3600, &v) < 0)
            return -1;
        a->lim.timeout_s = (unsigned)v;
        return 1;
    default: return 0;
    }
}

static int write_port_file(const char *path, int port)
{
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp)
        return -1;
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%d\n", port) > 0;
    ok = (f && fclose(f) == 0) && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        remove(tmp);
    free(tmp);
    return ok ? 0 : -1;
}

/* Listens until SIGTERM or SIGINT; the signals are blocked in every thread (MHD's inherit the
 * mask) and taken here with sigwait, so shutdown runs on this thread, outside any handler. */
static int run(const cli_common *c, const serve_args *a, serve_ctx *s, int n_workers)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    ps_error err;
    serve_daemon *d = NULL;
    int port = 0;
    if (serve_http_start(&d, s, a->host, (int)a->port, &port, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    if (a->port_file && write_port_file(a->port_file, port) != 0) {
        serve_http_stop(d);
        return cli_error(c, "--port-file: cannot write %s", a->port_file);
    }
    cli_note(c, "listening on http://%s:%d/, %d requests computed at a time (SIGTERM or Ctrl-C stops)", a->host, port,
             n_workers);
    int sig = 0;
    sigwait(&set, &sig);
    cli_note(c, "%s: finishing the requests in flight and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_http_stop(d);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"sae", required_argument, 0, OPT_SAE_PATH},
        {"latents", required_argument, 0, OPT_LATENTS_PATH}, {"items", required_argument, 0, OPT_ITEMS},
        {"host", required_argument, 0, OPT_HOST}, {"port", required_argument, 0, OPT_PORT},
        {"port-file", required_argument, 0, OPT_PORT_FILE}, {"max-connections", required_argument, 0, OPT_MAX_CONN},
        {"max-body", required_argument, 0, OPT_MAX_BODY}, {"max-history", required_argument, 0, OPT_MAX_HISTORY},
        {"max-k", required_argument, 0, OPT_MAX_K}, {"timeout", required_argument, 0, OPT_TIMEOUT}, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    serve_args a = {.host = "127.0.0.1", .port = 8080, .lim = {65536, 50, 1000, 512, 10}};
    cli_common_init(&c, "serve");
    cli_data_init(&d);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = parse_limit(&c, &a, opt, optarg);
        if (r == 0) {
            r = 1;
            switch (opt) {
            case OPT_MODEL: a.model = optarg; break;
            case OPT_SAE_PATH: a.sae = optarg; break;
            case OPT_LATENTS_PATH: a.latents = optarg; break;
            case OPT_ITEMS: a.items = optarg; break;
            case OPT_HOST: a.host = optarg; break;
            case OPT_PORT_FILE: a.port_file = optarg; break;
            default: r = 0;
            }
        }
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(HELP, stdout), 0;
    if (optind < argc)
        return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
    if (!a.model)
        return cli_usage_error(&c, "--model is required");
    if (a.latents && !a.sae)
        return cli_usage_error(&c, "--latents needs --sae (the SAE it was probed on)");
    int n_workers = c.threads > 0 ? c.threads : omp_get_num_procs();
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (rc)
        return rc;
    ps_item_titles titles = {0};
    ps_recommender *rec = NULL;
    serve_ctx s = {0};
    ps_error err;
    if (a.items && ps_item_titles_load(&titles, &ds, a.items, &err) != PS_OK)
        rc = cli_error(&c, "%s", err.msg);
    if (!rc && (ps_recommender_open(&rec, &ds, a.model, a.sae, a.latents, &err) != PS_OK ||
                ps_recommender_cache_users(rec, &err) != PS_OK ||
                serve_ctx_init(&s, rec, a.items ? &titles : NULL, &a.lim, n_workers, &err) != PS_OK))
        rc = cli_error(&c, "%s", err.msg);
    if (!rc)
        rc = run(&c, &a, &s, n_workers);
    serve_ctx_free(&s);
    ps_recommender_free(rec);
    ps_item_titles_free(&titles);
    ps_dataset_free(&ds);
    return rc;
}
