/* popsteer sweep: PopSteer over α × N and every re-ranking baseline over its grid, one operating
 * point per method, and the report directory. Also the sweep options and the sweep-and-report
 * step shared with `popsteer run`. */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/sweep.h"

static const char HELP[] =
    "usage: popsteer sweep --data PATH --model MODEL --sae SAE --latents LATENTS.csv --out DIR [options]\n\n"
    "Answers 'how much fairness do I buy, at what accuracy cost, and is steering better than\n"
    "re-ranking?': evaluates PopSteer over a grid of steering strengths alpha and numbers N of steered\n"
    "latents, and every re-ranking baseline over its grid, on the validation and the test split; picks\n"
    "one operating point per method on validation (SPEC 7: among points losing at most 5 % NDCG@10,\n"
    "the largest relative Gini@10 reduction minus relative NDCG@10 drop) and reports it on test.\n"
    "Writes DIR/results.csv, DIR/results.json, DIR/report.md, DIR/report.html and PNG plots (gnuplot).\n\n"
    "Inputs:\n"
    "  --model FILE       SASRec checkpoint\n"
    "  --sae FILE         the sparse autoencoder (popsteer sae train)\n"
    "  --latents FILE     the probe's per-latent table (popsteer probe)\n"
    "  --out DIR          the report directory (created if missing)\n"
    "  --probe-cap N      the --cap the latents were probed with (default: all prefixes), so that\n"
    "                     ps-direction averages the probe's own synthetic users\n"
    "Under mpirun (docs/distributed.md) every point's users are sharded across the ranks (the same\n"
    "results as one process); rank 0 writes the report.\n"
    "\n" CLI_SWEEP_HELP "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

/* ---- shared sweep options ---- */

void cli_sweep_init(cli_sweep *s)
{
    memset(s, 0, sizeof *s);
    ps_sweep_options_init(&s->so);
    ps_select_rule_init(&s->rule);
    s->base = PS_BASE_SASREC;
    s->tight_drop = 0.01;
}

void cli_sweep_free(cli_sweep *s)
{
    free(s->methods_buf);
    s->methods_buf = NULL;
}

/* Splits a comma-separated list in place; returns the number of items or -1 if more than max. */
static int split_list(char *text, char **items, int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        items[n++] = tok;
    }
    return n;
}

static int parse_alphas(const cli_common *c, cli_sweep *s, const char *arg)
{
    char buf[1024], *items[PS_SWEEP_MAX_GRID];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, items, PS_SWEEP_MAX_GRID);
    if (n <= 0)
        return cli_usage_error(c, "--alphas: expected 1 to %d comma-separated numbers, got '%s'", PS_SWEEP_MAX_GRID,
                               arg), -1;
    for (int i = 0; i < n; i++)
        if (cli_parse_double(c, "alphas", items[i], 0, 1e6, &s->alphas[i]) < 0)
            return -1;
    s->so.alphas = s->alphas;
    s->so.n_alphas = n;
    return 1;
}

static int parse_neurons(const cli_common *c, cli_sweep *s, const char *arg)
{
    char buf[1024], *items[PS_SWEEP_MAX_GRID];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, items, PS_SWEEP_MAX_GRID);
    if (n <= 0)
        return cli_usage_error(c, "--neurons: expected 1 to %d comma-separated counts or 'all', got '%s'",
                               PS_SWEEP_MAX_GRID, arg), -1;
    for (int i = 0; i < n; i++) {
        long v = 0;
        if (strcmp(items[i], "all") && cli_parse_long(c, "neurons", items[i], 1, 1 << 30, &v) < 0)
            return -1;
        s->neurons[i] = (int)v; /* 0 = all */
    }
    s->so.neurons = s->neurons;
    s->so.n_neurons = n;
    return 1;
}

static int parse_methods(const cli_common *c, cli_sweep *s, const char *arg)
{
    free(s->methods_buf);
    s->methods_buf = strdup(arg);
    if (!s->methods_buf)
        return cli_error(c, "out of memory"), -1;
    if (!strcmp(arg, "none")) {
        s->so.n_methods = 0;
        return 1;
    }
    int n = split_list(s->methods_buf, (char **)s->methods, PS_SWEEP_MAX_GRID);
    if (n <= 0)
        return cli_usage_error(c, "--methods: expected a comma-separated list of re-ranking methods"), -1;
    for (int i = 0; i < n; i++) {
        const ps_rerank_setting *set;
        int ns;
        ps_error err;
        if (ps_rerank_default_grid(s->methods[i], &set, &ns, &err) != PS_OK)
            return cli_usage_error(c, "--methods: %s", err.msg), -1;
    }
    s->so.methods = s->methods;
    s->so.n_methods = n;
    return 1;
}

static int parse_choice(const cli_common *c, const char *opt, const char *arg, const char *a, const char *b)
{
    if (!strcmp(arg, a))
        return 0;
    if (!strcmp(arg, b))
        return 1;
    cli_usage_error(c, "--%s: expected '%s' or '%s', got '%s'", opt, a, b, arg);
    return -1;
}

int cli_sweep_option(const cli_common *c, cli_sweep *s, int opt, const char *arg)
{
    long v;
    int ch;
    switch (opt) {
    case OPT_ALPHAS: return parse_alphas(c, s, arg);
    case OPT_SWEEP_NEURONS: return parse_neurons(c, s, arg);
    case OPT_METHODS: return parse_methods(c, s, arg);
    case OPT_CANDIDATES_L:
        if (cli_parse_long(c, "candidates", arg, 1, 1 << 20, &v) < 0)
            return -1;
        s->so.candidates = (int)v;
        return 1;
    case OPT_SWEEP_K:
        if (cli_parse_long(c, "k", arg, 1, 100000, &v) < 0)
            return -1;
        s->so.k = (int)v;
        return 1;
    case OPT_MAX_DROP: return cli_parse_double(c, "max-drop", arg, 0, 1, &s->rule.max_ndcg_drop) < 0 ? -1 : 1;
    case OPT_TIGHT_DROP: return cli_parse_double(c, "tight-drop", arg, 0, 1, &s->tight_drop) < 0 ? -1 : 1;
    case OPT_OBJECTIVE:
        if ((ch = parse_choice(c, "objective", arg, "tradeoff", "max-gini")) < 0)
            return -1;
        s->rule.objective = ch ? PS_SELECT_MAX_GINI_CUT : PS_SELECT_TRADEOFF;
        return 1;
    case OPT_BASE:
        if ((ch = parse_choice(c, "base", arg, "sasrec", "sae")) < 0)
            return -1;
        s->base = ch ? PS_BASE_SAE : PS_BASE_SASREC;
        return 1;
    case OPT_GNUPLOT: s->gnuplot = arg; return 1;
    case OPT_ABLATIONS:
        if ((ch = parse_choice(c, "ablations", arg, "off", "on")) < 0)
            return -1;
        s->so.ablations = ch;
        return 1;
    case OPT_SWEEP_ITEM_FEATURES: s->item_features = arg; return 1;
    case OPT_BOOTSTRAP:
        if (cli_parse_long(c, "bootstrap", arg, 0, 100000, &v) < 0)
            return -1;
        s->so.bootstrap = (int)v;
        return 1;
    case OPT_CI_LEVEL:
        if (cli_parse_double(c, "ci-level", arg, 0.5, 0.999, &s->so.ci_level) < 0)
            return -1;
        return 1;
    default: return 0;
    }
}

int cli_sweep_preflight(const cli_common *c, const cli_sweep *s)
{
    ps_error err;
    return ps_gnuplot_check(s->gnuplot, &err) == PS_OK ? 0 : cli_error(c, "%s", err.msg);
}

/* ---- progress ---- */

typedef struct sweep_ui {
    cli_progress p;
    double t0;
    char group[96]; /* "validation: penalty": a permanent line whenever it changes */
} sweep_ui;

static void on_sweep(void *ctx, const char *what, int done, int total)
{
    sweep_ui *ui = ctx;
    /* "validation: penalty beta=0.5" belongs to the group "validation: penalty" */
    char group[96];
    const char *sp = strchr(what, ':');
    sp = sp && !strstr(what, "user vectors") ? strchr(sp + 2, ' ') : NULL;
    snprintf(group, sizeof group, "%.*s", sp ? (int)(sp - what) : (int)strlen(what), what);
    char t[32];
    cli_format_duration(ps_now_seconds() - ui->t0, t, sizeof t);
    if (strcmp(group, ui->group)) {
        snprintf(ui->group, sizeof ui->group, "%s", group);
        cli_progress_line(&ui->p, "sweep %3d/%d  %s  (%s)", done, total, group, t);
    }
    cli_progress_live(&ui->p, done == total, "sweep %d/%d  %s  %s", done, total, what, t);
}

/* ---- output ---- */

static void print_summary(const ps_sweep_result *r, const ps_sweep_summary *s, const char *dir)
{
    const ps_metrics *b = &r->points[s->sasrec].split[PS_SPLIT_TEST];
    printf("%-14s %-32s %9s %9s %9s %9s\n", "method", "selected (validation)", "NDCG@k", "dNDCG", "Gini@k", "dGini");
    printf("%-14s %-32s %9.4f %9s %9.4f %9s\n", "sasrec", "-", b->ndcg, "", b->gini, "");
    for (int i = 0; i < s->n_methods; i++) {
        const ps_method_summary *ms = &s->methods[i];
        if (ms->selected < 0) {
            printf("%-14s %-32s\n", ms->method, "(none within budget)");
            continue;
        }
        const ps_sweep_point *p = &r->points[ms->selected];
        const ps_metrics *m = &p->split[PS_SPLIT_TEST];
        printf("%-14s %-32s %9.4f %+8.2f%% %9.4f %+8.2f%%", ms->method, p->setting, m->ndcg,
               100 * (m->ndcg / b->ndcg - 1), m->gini, 100 * (m->gini / b->gini - 1));
        if (r->bootstrap)
            printf("   dNDCG [%+.2f, %+.2f]%%  dGini [%+.2f, %+.2f]%%", 100 * p->ndcg_ci[PS_SPLIT_TEST].lo,
                   100 * p->ndcg_ci[PS_SPLIT_TEST].hi, 100 * p->gini_ci[PS_SPLIT_TEST].lo,
                   100 * p->gini_ci[PS_SPLIT_TEST].hi);
        printf("\n");
    }
    printf("(test split; d = relative change against plain SASRec");
    if (r->bootstrap)
        printf("; [ ] = %.0f%% paired-bootstrap interval, %d resamples", 100 * r->ci_level, r->bootstrap);
    printf(")\n");
    static const char *const REF[PS_SWEEP_REFS] = {"PopSteer's", "PopSteer-U's", "PopSteer-I's"};
    for (int q = 0; q < PS_SWEEP_REFS; q++)
        for (int i = 0; i < s->n_methods; i++) {
            const ps_front_vs *vs = &s->methods[i].vs[q];
            if (!vs->valid)
                continue;
            printf("%-12s front vs %-14s %s (%d of %d of its front points dominated)%s\n", REF[q], s->methods[i].method,
                   ps_front_verdict_name(vs->verdict), vs->cmp.n_dominated, vs->cmp.n_b,
                   r->bootstrap && vs->cmp.has_overlap && vs->gap_within_noise ? "; gap within noise" : "");
        }
    printf("report         %s/report.md (also report.html, results.csv, results.json)\n", dir);
}

static int print_json(const cli_common *c, const ps_sweep_result *r, const ps_sweep_summary *s, const char *dir)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "report", dir);
    cJSON *sel = cJSON_AddObjectToObject(o, "selected");
    for (int i = 0; sel && i < s->n_methods; i++) {
        const ps_method_summary *ms = &s->methods[i];
        cJSON *m = cJSON_AddObjectToObject(sel, ms->method);
        if (!m || ms->selected < 0)
            continue;
        cJSON_AddStringToObject(m, "setting", r->points[ms->selected].setting);
        cJSON_AddItemToObject(m, "test", ps_metrics_to_json(&r->points[ms->selected].split[PS_SPLIT_TEST]));
        if (ms->vs[PS_REF_POPSTEER].valid)
            cJSON_AddStringToObject(m, "popsteer_front", ps_front_verdict_name(ms->vs[PS_REF_POPSTEER].verdict));
        if (ms->vs[PS_REF_POPSTEER_U].valid)
            cJSON_AddStringToObject(m, "popsteer_u_front", ps_front_verdict_name(ms->vs[PS_REF_POPSTEER_U].verdict));
        if (ms->vs[PS_REF_POPSTEER_I].valid)
            cJSON_AddStringToObject(m, "popsteer_i_front", ps_front_verdict_name(ms->vs[PS_REF_POPSTEER_I].verdict));
    }
    return cli_print_json(c, o);
}

int cli_sweep_report(const cli_common *c, cli_sweep *s, const ps_sasrec *m, const ps_sae *sae,
                     const ps_latent_table *latents, const ps_dataset *ds, const char *dir, ps_report_info *info,
                     ps_report_stage *sweep_stage)
{
    ps_error err;
    sweep_ui ui = {.t0 = ps_now_seconds()};
    cli_progress_init(&ui.p, c->quiet);
    s->so.seed = c->seed;
    s->so.probe_seed = c->seed; /* the probe's seed (cmd_probe, cmd_run): ps-direction's users are its users */
    s->so.progress = on_sweep;
    s->so.progress_ctx = &ui;
    ps_sweep_result r = {0};
    ps_sweep_summary sum = {0};
    ps_item_features feat = {0};
    if (s->item_features && cli_load_item_features(c, s->item_features, ds, &feat))
        return 1;
    s->so.item_features = feat.v;
    s->so.item_features_dim = feat.dim;
    int rc = ps_sweep_run(m, sae, latents, ds, &s->so, &r, &err);
    ps_item_features_free(&feat);
    s->so.item_features = NULL;
    cli_progress_done(&ui.p);
    if (rc == PS_OK)
        rc = ps_sweep_summarize(&r, &s->rule, s->base, s->tight_drop, &sum, &err);
    if (rc == PS_OK && sweep_stage)
        sweep_stage->seconds = r.seconds;
    info->gnuplot = s->gnuplot;
    const int root = ps_dist_rank(s->so.dist) == 0; /* under mpirun rank 0 writes and prints */
    if (rc == PS_OK && root) {
        cli_progress_line(&ui.p, "sweep: %d grid points on both splits in %.1fs; writing the report to %s", r.n_points,
                          r.seconds, dir);
        rc = ps_report_write(dir, &r, &sum, info, &err);
    }
    int status = rc == PS_OK ? 0 : cli_error(c, "%s", err.msg);
    if (!status && root)
        status = c->json ? print_json(c, &r, &sum, dir) : (print_summary(&r, &sum, dir), 0);
    ps_sweep_summary_free(&sum);
    ps_sweep_result_free(&r);
    return status;
}

/* ---- the command ---- */

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_SAE_FILE, OPT_LATENTS_FILE, OPT_OUT, OPT_PROBE_CAP };

typedef struct sweep_args {
    const char *model, *sae, *latents, *out;
} sweep_args;

static int parse(int argc, char **argv, cli_common *c, cli_data *d, sweep_args *a, cli_sweep *s)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS, CLI_SWEEP_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"sae", required_argument, 0, OPT_SAE_FILE},
        {"latents", required_argument, 0, OPT_LATENTS_FILE}, {"out", required_argument, 0, OPT_OUT},
        {"probe-cap", required_argument, 0, OPT_PROBE_CAP}, {0, 0, 0, 0}};
    for (int opt; (opt = cli_getopt(c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(c, opt, optarg);
        if (r == 0)
            r = cli_data_option(c, d, opt, optarg);
        if (r == 0)
            r = cli_sweep_option(c, s, opt, optarg);
        long cap = 0;
        if (r == 0 && opt == OPT_PROBE_CAP) { /* ps-direction must see the probe's own synthetic users */
            r = cli_parse_long(c, "probe-cap", optarg, 0, 1L << 40, &cap) < 0 ? -1 : 1;
            if (r > 0)
                s->so.probe_cap = cap;
        }
        if (r == 0) {
            const char **dst[] = {&a->model, &a->sae, &a->latents, &a->out};
            if (opt >= OPT_MODEL && opt <= OPT_OUT)
                *dst[opt - OPT_MODEL] = optarg, r = 1;
        }
        const int status = cli_option_verdict(c, r, argv);
        if (status)
            return status;
    }
    if (c->help)
        return 0;
    if (optind < argc)
        return cli_usage_error(c, "unexpected argument '%s'", argv[optind]);
    if (!a->model || !a->sae || !a->latents || !a->out)
        return cli_usage_error(c, "--model, --sae, --latents and --out are required");
    return 0;
}

static int sweep(const cli_common *c, const cli_data *d, const sweep_args *a, cli_sweep *s, const ps_dataset *ds,
                 double load_seconds)
{
    ps_error err;
    ps_sasrec *m = NULL;
    ps_sae *sae = NULL;
    ps_latent_table t = {0};
    ps_dataset_stats st;
    int rc = ps_sasrec_load(&m, a->model, &err);
    if (rc == PS_OK)
        rc = ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err);
    if (rc == PS_OK && !(sae = ps_sae_load(a->sae, &err)))
        rc = PS_ERR;
    if (rc == PS_OK)
        rc = ps_latents_csv_read(a->latents, sae->cfg.n_latents, &t, &err);
    if (rc == PS_OK)
        rc = ps_dataset_stats_compute(ds, &st, &err);
    int status = rc == PS_OK ? 0 : cli_error(c, "%s", err.msg);
    if (!status) {
        ps_report_stage stages[2] = {{"load data", load_seconds, 0, d->path}, {"sweep (both splits)", 0, 0, NULL}};
        ps_report_info info = {d->path, a->model, a->sae, a->latents, &st, stages, 2, NULL};
        status = cli_sweep_report(c, s, m, sae, &t, ds, a->out, &info, &stages[1]);
    }
    ps_latent_table_free(&t);
    ps_sae_free(sae);
    ps_sasrec_free(m);
    return status;
}

int cmd_sweep(int argc, char **argv)
{
    cli_common c;
    cli_data d;
    sweep_args a = {0};
    cli_sweep s;
    cli_common_init(&c, "sweep");
    cli_data_init(&d);
    cli_sweep_init(&s);
    int rc = parse(argc, argv, &c, &d, &a, &s);
    if (!rc && c.help)
        fputs(HELP, stdout);
    if (rc || c.help) {
        cli_sweep_free(&s);
        return rc;
    }
    cli_apply_threads(&c);
    ps_dist dist;
    if ((rc = cli_dist_init(&c, &dist)) != 0) {
        cli_sweep_free(&s);
        return rc;
    }
    s.so.dist = &dist;
    ps_dataset ds;
    double t0 = ps_now_seconds();
    rc = cli_sweep_preflight(&c, &s);
    if (!rc)
        rc = cli_load_dataset(&c, &d, &ds);
    if (!rc) {
        rc = sweep(&c, &d, &a, &s, &ds, ps_now_seconds() - t0);
        ps_dataset_free(&ds);
    }
    cli_sweep_free(&s);
    if (rc != 0) /* every rank goes, none waits in a collective for this one */
        ps_dist_abort(&dist, rc);
    ps_dist_finalize(&dist);
    return rc;
}
