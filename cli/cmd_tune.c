/* popsteer tune: the steering strength α (and the number N of steered latents) for a goal — a
 * Gini@k target or an NDCG@k loss budget — found on the validation split by the search of
 * popsteer/tune.h, then reported on the test split against plain SASRec. */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/evaluate.h"
#include "popsteer/popsteer.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/steer.h"
#include "popsteer/sweep.h"
#include "popsteer/train.h"
#include "popsteer/tune.h"

static const char HELP[] =
    "usage: popsteer tune --data PATH --model MODEL.safetensors --sae SAE.safetensors --latents FILE\n"
    "                     (--target-gini G | --max-ndcg-loss X) [options]\n\n"
    "Finds the steering strength alpha (and the number N of steered latents) for a goal on the\n"
    "validation split, and reports the chosen point on the test split with its changes against\n"
    "plain SASRec. Gini@k(alpha) falls and then may rise again, so for every N the coarse alpha grid\n"
    "is evaluated first, only its prefix up to the lowest Gini (the monotone part) is searched, and\n"
    "alpha is bisected within the grid step where the goal switches from met to unmet. Each\n"
    "evaluation ranks every validation user; they are printed as progress on stderr.\n\n"
    "Goal (one of):\n"
    "  --target-gini G    the smallest alpha whose validation Gini@k <= G. G is absolute (0.45) or,\n"
    "                     with a % suffix, a change relative to plain SASRec's validation Gini@k\n"
    "                     (-10%: Gini@k <= 0.9 x SASRec's). Among N values, the one with the highest\n"
    "                     validation NDCG@k at its alpha.\n"
    "  --max-ndcg-loss X  the largest alpha whose validation NDCG@k drop relative to plain SASRec,\n"
    "                     (SASRec - steered) / SASRec, is <= X (0.01 = 1 %). Among N values, the one\n"
    "                     with the lowest validation Gini@k at its alpha.\n"
    "A goal steering cannot reach on the monotone part is refused (status 1), saying what it reaches.\n\n"
    "Tuning options:\n"
    "  --model FILE       SASRec checkpoint\n"
    "  --sae FILE         the sparse autoencoder (popsteer sae train)\n"
    "  --latents FILE     the probe's per-latent table (popsteer probe)\n"
    "  --neurons N        steer the N latents with the largest |Cohen's d| ('all' = every latent)\n"
    "  --neurons-grid LIST  N values to choose from, comma-separated (default 256,1024,2048,all;\n"
    "                     values >= the SAE's latents mean all of them)\n"
    "  --alphas LIST      the coarse alpha grid, ascending, from 0 (default 0,0.5,1,...,8)\n"
    "  --alpha-tol X      bisection stops when the alpha bracket is this narrow (default 0.01)\n"
    "  --metric-tol X     ... or when the metric is this close to the goal (default 1e-4)\n"
    "  --max-evals N      evaluations per N value, grid included (default 64)\n"
    "  --k N              list length (default 10)\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_SAE_FILE, OPT_LATENTS_FILE, OPT_TARGET_GINI, OPT_MAX_NDCG_LOSS,
       OPT_TUNE_NEURONS, OPT_NEURONS_GRID, OPT_TUNE_ALPHAS, OPT_ALPHA_TOL, OPT_METRIC_TOL, OPT_MAX_EVALS, OPT_TUNE_K };

#define TUNE_MAX_GRID 64

typedef struct tune_args {
    const char *model, *sae, *latents;
    const char *target_gini;   /* as given: "0.45" or "-10%" */
    double max_ndcg_loss;
    int has_loss;
    long neurons[TUNE_MAX_GRID]; /* 0 = all */
    int n_neurons, neurons_set, neurons_grid_set;
    double alphas[TUNE_MAX_GRID];
    int n_alphas;
    ps_tune_options to;
    int k;
} tune_args;

/* Parses a comma-separated list of N values ('all' = 0). */
static int parse_neurons(const cli_common *c, const char *opt, const char *arg, tune_args *a)
{
    a->n_neurons = 0;
    const char *p = arg;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item)
            return cli_usage_error(c, "--%s: bad list '%s' (comma-separated numbers or 'all')", opt, arg), -1;
        if (a->n_neurons == TUNE_MAX_GRID)
            return cli_usage_error(c, "--%s: at most %d values", opt, TUNE_MAX_GRID), -1;
        memcpy(item, p, len);
        item[len] = 0;
        long v = 0;
        if (strcmp(item, "all") && cli_parse_long(c, opt, item, 1, 1 << 30, &v) < 0)
            return -1;
        a->neurons[a->n_neurons++] = v;
        if (!end)
            return 1;
        p = end + 1;
    }
}

static int parse_alphas(const cli_common *c, const char *arg, tune_args *a)
{
    a->n_alphas = 0;
    const char *p = arg;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item)
            return cli_usage_error(c, "--alphas: bad list '%s' (comma-separated numbers)", arg), -1;
        if (a->n_alphas == TUNE_MAX_GRID)
            return cli_usage_error(c, "--alphas: at most %d values", TUNE_MAX_GRID), -1;
        memcpy(item, p, len);
        item[len] = 0;
        double v;
        if (cli_parse_double(c, "alphas", item, 0, 1e6, &v) < 0)
            return -1;
        if (a->n_alphas && !(v > a->alphas[a->n_alphas - 1]))
            return cli_usage_error(c, "--alphas: must be strictly ascending (%g after %g)", v,
                                   a->alphas[a->n_alphas - 1]), -1;
        a->alphas[a->n_alphas++] = v;
        if (!end)
            break;
        p = end + 1;
    }
    if (a->n_alphas < 2)
        return cli_usage_error(c, "--alphas: at least 2 values are needed, got '%s'", arg), -1;
    return 1;
}

static int tune_option(const cli_common *c, tune_args *a, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_MODEL: a->model = arg; return 1;
    case OPT_SAE_FILE: a->sae = arg; return 1;
    case OPT_LATENTS_FILE: a->latents = arg; return 1;
    case OPT_TARGET_GINI: a->target_gini = arg; return 1;
    case OPT_MAX_NDCG_LOSS:
        a->has_loss = 1;
        return cli_parse_double(c, "max-ndcg-loss", arg, 0, 1, &a->max_ndcg_loss) < 0 ? -1 : 1;
    case OPT_TUNE_NEURONS:
        a->neurons_set = 1;
        if (!strchr(arg, ','))
            return parse_neurons(c, "neurons", arg, a);
        return cli_usage_error(c, "--neurons: one value (use --neurons-grid for a list), got '%s'", arg), -1;
    case OPT_NEURONS_GRID: a->neurons_grid_set = 1; return parse_neurons(c, "neurons-grid", arg, a);
    case OPT_TUNE_ALPHAS: return parse_alphas(c, arg, a);
    case OPT_ALPHA_TOL: return cli_parse_double(c, "alpha-tol", arg, 1e-9, 1e3, &a->to.alpha_tol) < 0 ? -1 : 1;
    case OPT_METRIC_TOL: return cli_parse_double(c, "metric-tol", arg, 0, 1, &a->to.metric_tol) < 0 ? -1 : 1;
    case OPT_MAX_EVALS:
        if (cli_parse_long(c, "max-evals", arg, 2, 100000, &v) < 0)
            return -1;
        a->to.max_evals = (int)v;
        return 1;
    case OPT_TUNE_K:
        if (cli_parse_long(c, "k", arg, 1, 100000, &v) < 0)
            return -1;
        a->k = (int)v;
        return 1;
    default: return 0;
    }
}

/* What the metric callback needs: one steered full-ranking evaluation on the validation split. */
typedef struct tune_ctx {
    const cli_common *c;
    const ps_dataset *ds;
    const ps_sasrec *model;
    const ps_sae *sae;
    const ps_latent_table *t;
    int N, k;
    cli_progress *progress;
} tune_ctx;

/* PopSteer (the paper's plan) at (α, N) on one split. */
static int steered_metrics(const tune_ctx *x, double alpha, ps_split split, ps_metrics *met, ps_error *err)
{
    ps_steer_plan plan;
    if (ps_steer_plan_make(x->t->d, x->t->std_pop, x->t->std_unpop, x->t->m, x->N, alpha, &plan, err) != PS_OK)
        return PS_ERR;
    ps_steer_scorer ss;
    memset(&ss, 0, sizeof ss);
    int rc = ps_steer_scorer_init(&ss, x->model, x->sae, &plan, 256, err);
    if (rc == PS_OK) {
        ps_scorer sc = ps_steer_scorer_as_scorer(&ss);
        ps_eval_options eo;
        ps_eval_options_init(&eo);
        eo.split = split;
        eo.k = x->k;
        rc = ps_evaluate(x->ds, &sc, &eo, met, err);
    }
    ps_steer_scorer_free(&ss);
    ps_steer_plan_free(&plan);
    return rc;
}

static int valid_metric(void *ctx, double alpha, double *ndcg, double *gini, ps_error *err)
{
    ps_metrics met;
    if (steered_metrics(ctx, alpha, PS_SPLIT_VALID, &met, err) != PS_OK)
        return PS_ERR;
    *ndcg = met.ndcg;
    *gini = met.gini;
    return PS_OK;
}

static void on_eval(void *ctx, int eval, double alpha, double ndcg, double gini)
{
    const tune_ctx *x = ctx;
    cli_progress_line(x->progress, "tune N=%d eval %d: alpha=%g valid ndcg@%d %.4f gini@%d %.4f", x->N, eval, alpha,
                      x->k, ndcg, x->k, gini);
}

static int plain_metrics(const tune_ctx *x, ps_split split, ps_metrics *met, ps_error *err)
{
    ps_sasrec_scorer ps;
    memset(&ps, 0, sizeof ps);
    int rc = ps_sasrec_scorer_init(&ps, x->model, 256, err);
    if (rc == PS_OK) {
        ps_scorer sc = ps_sasrec_scorer_as_scorer(&ps);
        ps_eval_options eo;
        ps_eval_options_init(&eo);
        eo.split = split;
        eo.k = x->k;
        rc = ps_evaluate(x->ds, &sc, &eo, met, err);
    }
    ps_sasrec_scorer_free(&ps);
    return rc;
}

/* The Gini target: absolute, or relative to SASRec's with a % suffix. */
static int gini_target(const cli_common *c, const char *arg, double base_gini, double *g)
{
    size_t n = strlen(arg);
    if (n && arg[n - 1] == '%') {
        char num[64];
        if (n - 1 >= sizeof num || n == 1)
            return cli_usage_error(c, "--target-gini: bad relative change '%s' (e.g. -10%%)", arg);
        memcpy(num, arg, n - 1);
        num[n - 1] = 0;
        double p;
        if (cli_parse_double(c, "target-gini", num, -99.999, 1e6, &p) < 0)
            return 2;
        *g = base_gini * (1 + p / 100);
        return 0;
    }
    return cli_parse_double(c, "target-gini", arg, 0, 1, g) < 0 ? 2 : 0;
}

/* Relative change x / base − 1 (NaN without a positive base). */
static double rel_change(double base, double x)
{
    return base > 0 ? x / base - 1 : NAN;
}

typedef struct n_outcome {
    int N;
    ps_tune_result r;
} n_outcome;

static cJSON *split_json(const ps_metrics *plain, const ps_metrics *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "sasrec_ndcg", plain->ndcg);
    cJSON_AddNumberToObject(o, "sasrec_gini", plain->gini);
    cJSON_AddNumberToObject(o, "ndcg", st->ndcg);
    cJSON_AddNumberToObject(o, "gini", st->gini);
    cJSON_AddNumberToObject(o, "ndcg_change", rel_change(plain->ndcg, st->ndcg));
    cJSON_AddNumberToObject(o, "gini_change", rel_change(plain->gini, st->gini));
    cJSON_AddNumberToObject(o, "ndcg_drop", ps_rel_reduction(plain->ndcg, st->ndcg));
    return o;
}

static int report(const cli_common *c, const tune_args *a, double target, const n_outcome *out, int n_out,
                  int best, const ps_metrics plain[2], const ps_metrics steered[2], int evals)
{
    const n_outcome *b = &out[best];
    const int k = a->k;
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return cli_print_json(c, NULL);
        cJSON_AddStringToObject(o, "goal", a->has_loss ? "max-ndcg-loss" : "target-gini");
        if (a->has_loss)
            cJSON_AddNumberToObject(o, "max_ndcg_loss", target);
        else {
            cJSON_AddStringToObject(o, "target_gini_arg", a->target_gini);
            cJSON_AddNumberToObject(o, "target_gini", target);
        }
        cJSON_AddNumberToObject(o, "k", k);
        cJSON_AddNumberToObject(o, "alpha", b->r.alpha);
        cJSON_AddNumberToObject(o, "neurons", b->N);
        cJSON_AddNumberToObject(o, "evaluations", evals);
        cJSON_AddItemToObject(o, "valid", split_json(&plain[PS_SPLIT_VALID], &steered[PS_SPLIT_VALID]));
        cJSON_AddItemToObject(o, "test", split_json(&plain[PS_SPLIT_TEST], &steered[PS_SPLIT_TEST]));
        cJSON *arr = cJSON_AddArrayToObject(o, "candidates");
        for (int i = 0; arr && i < n_out; i++) {
            cJSON *e = cJSON_CreateObject();
            if (!e)
                break;
            cJSON_AddNumberToObject(e, "neurons", out[i].N);
            cJSON_AddBoolToObject(e, "found", out[i].r.found);
            if (out[i].r.found) {
                cJSON_AddNumberToObject(e, "alpha", out[i].r.alpha);
                cJSON_AddNumberToObject(e, "valid_ndcg", out[i].r.ndcg);
                cJSON_AddNumberToObject(e, "valid_gini", out[i].r.gini);
            }
            cJSON_AddNumberToObject(e, "turn_alpha", out[i].r.turn_alpha);
            cJSON_AddNumberToObject(e, "evaluations", out[i].r.evals);
            cJSON_AddItemToArray(arr, e);
        }
        return cli_print_json(c, o);
    }
    if (a->has_loss)
        printf("goal           validation NDCG@%d drop against SASRec <= %g\n", k, target);
    else
        printf("goal           validation Gini@%d <= %.4f (%s)\n", k, target, a->target_gini);
    printf("chosen         alpha %g, N %d (%d evaluations)\n", b->r.alpha, b->N, evals);
    for (int i = 0; i < n_out; i++) {
        if (out[i].r.found)
            printf("  N %-10d alpha %-8g valid ndcg@%d %.4f gini@%d %.4f (monotone up to alpha %g)\n", out[i].N,
                   out[i].r.alpha, k, out[i].r.ndcg, k, out[i].r.gini, out[i].r.turn_alpha);
        else
            printf("  N %-10d out of reach\n", out[i].N);
    }
    printf("%-6s %-9s %-9s %-9s %-9s %-9s %-9s\n", "split", "ndcg", "sasrec", "change", "gini", "sasrec", "change");
    for (int s = 0; s < 2; s++)
        printf("%-6s %-9.4f %-9.4f %+-9.4f %-9.4f %-9.4f %+-9.4f\n", s == PS_SPLIT_VALID ? "valid" : "test",
               steered[s].ndcg, plain[s].ndcg, rel_change(plain[s].ndcg, steered[s].ndcg), steered[s].gini,
               plain[s].gini, rel_change(plain[s].gini, steered[s].gini));
    return 0;
}

/* Runs the search for every N and reports; the dataset, model, SAE and table are loaded. */
static int tune(const cli_common *c, tune_args *a, tune_ctx *x)
{
    ps_error err;
    ps_metrics plain[2];
    for (int s = 0; s < 2; s++)
        if (plain_metrics(x, (ps_split)s, &plain[s], &err) != PS_OK)
            return cli_error(c, "%s: %s", a->model, err.msg);
    double target;
    if (a->has_loss) {
        target = a->max_ndcg_loss;
        a->to.goal = PS_TUNE_MAX_NDCG_LOSS;
        a->to.base_ndcg = plain[PS_SPLIT_VALID].ndcg;
        if (!(a->to.base_ndcg > 0))
            return cli_error(c, "plain SASRec's validation NDCG@%d is 0: there is no NDCG to lose", a->k);
    } else {
        int rc = gini_target(c, a->target_gini, plain[PS_SPLIT_VALID].gini, &target);
        if (rc)
            return rc;
        a->to.goal = PS_TUNE_TARGET_GINI;
    }
    a->to.target = target;
    /* N values after capping at m, each once */
    const int m = x->t->m;
    n_outcome out[TUNE_MAX_GRID];
    int n_out = 0;
    for (int i = 0; i < a->n_neurons; i++) {
        int N = a->neurons[i] == 0 || a->neurons[i] >= m ? m : (int)a->neurons[i];
        int dup = 0;
        for (int j = 0; j < n_out; j++)
            dup |= out[j].N == N;
        if (!dup)
            out[n_out++].N = N;
    }
    int best = -1, evals = 0;
    for (int i = 0; i < n_out; i++) {
        x->N = out[i].N;
        a->to.progress_ctx = x;
        int rc = ps_tune_run(valid_metric, x, &a->to, &out[i].r, &err);
        evals += out[i].r.evals;
        if (rc != PS_OK && !out[i].r.out_of_reach)
            return cli_error(c, "N=%d: %s", out[i].N, err.msg);
        if (!out[i].r.found)
            continue;
        /* the NDCG budget: the lowest Gini wins; the Gini target: the highest NDCG (ties: first N) */
        if (best < 0 || (a->has_loss ? out[i].r.gini < out[best].r.gini : out[i].r.ndcg > out[best].r.ndcg))
            best = i;
    }
    if (best < 0) {
        /* what steering does reach, over every N */
        int w = 0;
        for (int i = 1; i < n_out; i++)
            if (a->has_loss ? out[i].r.min_drop < out[w].r.min_drop : out[i].r.turn_gini < out[w].r.turn_gini)
                w = i;
        if (a->has_loss)
            return cli_error(c,
                             "the smallest validation NDCG@%d drop against SASRec steering has is %.4f at alpha=%g "
                             "N=%d; budget %g is below it",
                             a->k, out[w].r.min_drop, out[w].r.min_drop_alpha, out[w].N, target);
        return cli_error(c,
                         "the lowest validation Gini@%d steering reaches is %.4f at alpha=%g N=%d; target %.4g%s%s%s "
                         "is below it",
                         a->k, out[w].r.turn_gini, out[w].r.turn_alpha, out[w].N, target,
                         strchr(a->target_gini, '%') ? " (" : "", strchr(a->target_gini, '%') ? a->target_gini : "",
                         strchr(a->target_gini, '%') ? " of SASRec's)" : "");
    }
    ps_metrics steered[2];
    x->N = out[best].N;
    if (steered_metrics(x, out[best].r.alpha, PS_SPLIT_VALID, &steered[PS_SPLIT_VALID], &err) != PS_OK ||
        steered_metrics(x, out[best].r.alpha, PS_SPLIT_TEST, &steered[PS_SPLIT_TEST], &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    evals += 2;
    return report(c, a, target, out, n_out, best, plain, steered, evals);
}

static int run(const cli_common *c, tune_args *a, const ps_dataset *ds)
{
    ps_error err;
    ps_sasrec *m = NULL;
    if (ps_sasrec_load(&m, a->model, &err) != PS_OK ||
        ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err) != PS_OK) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    ps_sae *sae = ps_sae_load(a->sae, &err);
    if (!sae) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    ps_latent_table t;
    if (ps_latents_csv_read(a->latents, sae->cfg.n_latents, &t, &err) != PS_OK) {
        ps_sae_free(sae);
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    cli_progress p;
    cli_progress_init(&p, c->quiet);
    tune_ctx x = {c, ds, m, sae, &t, 0, a->k, &p};
    a->to.progress = on_eval;
    int rc = tune(c, a, &x);
    cli_progress_done(&p);
    ps_latent_table_free(&t);
    ps_sae_free(sae);
    ps_sasrec_free(m);
    return rc;
}

int cmd_tune(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"sae", required_argument, 0, OPT_SAE_FILE},
        {"latents", required_argument, 0, OPT_LATENTS_FILE}, {"target-gini", required_argument, 0, OPT_TARGET_GINI},
        {"max-ndcg-loss", required_argument, 0, OPT_MAX_NDCG_LOSS},
        {"neurons", required_argument, 0, OPT_TUNE_NEURONS}, {"neurons-grid", required_argument, 0, OPT_NEURONS_GRID},
        {"alphas", required_argument, 0, OPT_TUNE_ALPHAS}, {"alpha-tol", required_argument, 0, OPT_ALPHA_TOL},
        {"metric-tol", required_argument, 0, OPT_METRIC_TOL}, {"max-evals", required_argument, 0, OPT_MAX_EVALS},
        {"k", required_argument, 0, OPT_TUNE_K}, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    tune_args a;
    cli_common_init(&c, "tune");
    cli_data_init(&d);
    memset(&a, 0, sizeof a);
    ps_tune_options_init(&a.to);
    a.k = 10;
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = tune_option(&c, &a, opt, optarg);
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(HELP, stdout), 0;
    if (optind < argc)
        return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
    if (!a.model || !a.sae || !a.latents)
        return cli_usage_error(&c, "--model, --sae and --latents are required");
    if (!a.target_gini == !a.has_loss)
        return cli_usage_error(&c, "give exactly one goal: --target-gini G or --max-ndcg-loss X");
    if (a.neurons_set && a.neurons_grid_set)
        return cli_usage_error(&c, "--neurons and --neurons-grid exclude each other");
    if (!a.n_neurons) {
        static const long DEFAULT_NEURONS[] = {256, 1024, 2048, 0};
        a.n_neurons = 4;
        memcpy(a.neurons, DEFAULT_NEURONS, sizeof DEFAULT_NEURONS);
    }
    if (a.n_alphas) {
        a.to.grid = a.alphas;
        a.to.n_grid = a.n_alphas;
    }
    if (a.to.max_evals < a.to.n_grid)
        return cli_usage_error(&c, "--max-evals (%d) must be at least the grid's %d alphas", a.to.max_evals,
                               a.to.n_grid);
    cli_apply_threads(&c);
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (rc)
        return rc;
    rc = run(&c, &a, &ds);
    ps_dataset_free(&ds);
    return rc;
}
