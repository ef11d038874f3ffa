/* popsteer eval: full-ranking evaluation of a model on the validation or test split. */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/dist.h"
#include "popsteer/evaluate.h"
#include "popsteer/features.h"
#include "popsteer/train.h"
#include "group_opts.h"
#include "steer_opts.h"

static const char HELP[] =
    "usage: popsteer eval --data PATH --model MODEL.safetensors [options]\n\n"
    "Ranks every item for every user of the split (pad masked) and reports accuracy and\n"
    "popularity-bias metrics (SPEC §6).\n\n"
    "Evaluation options:\n"
    "  --model FILE       SASRec checkpoint (safetensors, RecBole names)\n"
    "  --split S          valid or test (default test)\n"
    "  --k N              list length (default 10)\n"
    "  --mask-seen        exclude items the user already interacted with\n"
    "  --item-features F  item feature rows for ilad_features@k: MovieLens u.item (the 19\n"
    "                     genre flags) or 'item v1 v2 ...' separated by tabs, spaces or commas\n"
    "  --group SPEC       also report the share of the top-k lists' slots that hold items of\n"
    "                     SPEC (group_share@k; e.g. after steering with a concept probe's table)\n"
    CLI_GROUP_SPECS_HELP
    "  --items FILE       the MovieLens u.item file that genre: groups read\n"
    "\n"
    "ILAD@k: per user, the mean over the pairs of distinct items of the top-k list of\n"
    "1 - cosine(v_i, v_j), v = the model's item embeddings (ilad@k) or the feature rows\n"
    "(ilad_features@k); then the mean over users with at least 2 items. A zero vector (an item\n"
    "without a feature row) has cosine 0 with every item. Formulas: docs/metrics.md.\n"
    "\n" CLI_STEER_HELP "\n"
    "Re-ranking baselines (on the same scores):\n"
    "  --rerank METHOD    random, penalty, fair, xquad, cp, pmmf or pct\n"
    "  --param NAME=VALUE a parameter of the method (repeatable; see the list below)\n"
    "  --candidates L     re-rank the top L items (default: the method's own count,\n"
    "                     listed below; 100 for the others)\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_SPLIT, OPT_K, OPT_MASK_SEEN, OPT_RERANK, OPT_PARAM,
       OPT_CANDIDATES, OPT_ITEM_FEATURES, OPT_ITEMS };

typedef struct eval_args {
    const char *model;
    ps_eval_options eo;
    cli_steer steer;
    const char *rerank;
    const char *params[PS_RERANK_MAX_PARAMS];
    int n_params;
    long candidates;
    const char *item_features;
    const char *items;
    cli_group group;
} eval_args;

static int eval_option(const cli_common *c, eval_args *a, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_MODEL: a->model = arg; return 1;
    case OPT_SPLIT:
        if (strcmp(arg, "valid") && strcmp(arg, "test"))
            return cli_usage_error(c, "--split: expected 'valid' or 'test', got '%s'", arg), -1;
        a->eo.split = strcmp(arg, "test") ? PS_SPLIT_VALID : PS_SPLIT_TEST;
        return 1;
    case OPT_K:
        if (cli_parse_long(c, "k", arg, 1, 100000, &v) < 0)
            return -1;
        a->eo.k = (int)v;
        return 1;
    case OPT_MASK_SEEN: a->eo.mask_seen = 1; return 1;
    case OPT_ITEM_FEATURES: a->item_features = arg; return 1;
    case OPT_ITEMS: a->items = arg; return 1;
    case OPT_RERANK: a->rerank = arg; return 1;
    case OPT_PARAM:
        if (a->n_params == PS_RERANK_MAX_PARAMS)
            return cli_usage_error(c, "--param: at most %d parameters", PS_RERANK_MAX_PARAMS), -1;
        a->params[a->n_params++] = arg;
        return 1;
    case OPT_CANDIDATES: return cli_parse_long(c, "candidates", arg, 1, 1 << 20, &a->candidates) < 0 ? -1 : 1;
    default: return cli_steer_option(c, &a->steer, opt, arg);
    }
}

static void print_methods(void)
{
    printf("\nRe-ranking methods:\n");
    for (int i = 0; i < ps_rerank_method_count(); i++) {
        const ps_rerank_method_info *mi = ps_rerank_method_at(i);
        printf("  %-8s %s\n           %s\n           default candidates: %d\n", mi->name, mi->doc,
               mi->params_doc, ps_rerank_method_default_L(mi->name));
    }
}

/* Builds the re-ranking filter when --rerank is given. */
static int make_rerank(const cli_common *c, const eval_args *a, const ps_dataset *ds, ps_reranker **r,
                       ps_rerank_filter *f)
{
    ps_error err;
    if (!a->rerank) {
        if (a->n_params)
            return cli_usage_error(c, "--param needs --rerank");
        return 0;
    }
    /* Without --candidates the method picks its own L (fair 500, pct 250; SPEC §7). */
    int L = (int)(a->candidates ? a->candidates : ps_rerank_method_default_L(a->rerank));
    if (L > ds->n_items)
        L = ds->n_items;
    if (L < a->eo.k)
        return cli_usage_error(c, "--candidates (%d) must be at least --k (%d)", L, a->eo.k);
    ps_rerank_ctx ctx = {ds->n_items, ds->label, ds->train_count, a->eo.k, L, c->seed, ds->n_users};
    *r = ps_reranker_create(a->rerank, &ctx, a->params, a->n_params, &err);
    if (!*r)
        return cli_usage_error(c, "%s", err.msg);
    if (ps_rerank_filter_init(f, *r, ds, L, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    return 0;
}

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    cli_progress_live(ctx, done == total, "ranking users %lld/%lld", (long long)done, (long long)total);
}

/* g (may be NULL) with the exposure counts of the lists adds group_share@k. */
static int print_metrics(const cli_common *c, const ps_metrics *m, const char *split, const char *method,
                         const ps_item_group *g, const int64_t *exposure)
{
    double share = g ? ps_item_group_share(g, exposure) : 0.0;
    if (!c->json) {
        printf("method         %s\n", method);
        printf("split          %s\n", split);
        ps_metrics_print(stdout, m);
        if (g)
            printf("group_share@%d  %.4f  (%s; %.4f of the catalogue)\n", m->k, share, g->desc,
                   (double)g->n_concept / (double)g->n_items);
        return 0;
    }
    cJSON *o = ps_metrics_to_json(m);
    if (o && g) {
        char key[32];
        snprintf(key, sizeof key, "group_share@%d", m->k);
        cJSON_AddNumberToObject(o, key, share);
        cJSON_AddStringToObject(o, "group", g->desc);
    }
    return cli_print_json(c, o);
}

static int evaluate(const cli_common *c, eval_args *a, const ps_dataset *ds)
{
    ps_error err;
    ps_sasrec *m = NULL;
    if (ps_sasrec_load(&m, a->model, &err) != PS_OK ||
        ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err) != PS_OK) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    ps_scorer sc;
    ps_reranker *r = NULL;
    ps_rerank_filter f = {0};
    ps_item_features feat = {0};
    ps_item_group group = {0};
    int64_t *exposure = NULL;
    int rc = a->item_features ? cli_load_item_features(c, a->item_features, ds, &feat) : 0;
    if (!rc && a->group.spec && !(rc = cli_group_make(c, &a->group, ds, a->items, &group)) &&
        !(exposure = ps_calloc((size_t)ds->n_items + 1, sizeof *exposure, "exposure counts", &err)))
        rc = cli_error(c, "%s", err.msg);
    a->eo.item_embedding = ps_sasrec_item_embedding(m, &a->eo.item_embedding_dim);
    a->eo.item_features = feat.v;
    a->eo.item_features_dim = feat.dim;
    if (!rc && !a->eo.item_embedding)
        rc = cli_error(c, "%s: no item_embedding.weight of shape [n_items + 1, d]", a->model);
    if (!rc)
        rc = cli_steer_scorer(c, &a->steer, m, ds, 256, &sc);
    if (!rc)
        rc = make_rerank(c, a, ds, &r, &f);
    ps_metrics met;
    if (!rc) {
        cli_progress p;
        cli_progress_init(&p, c->quiet);
        ps_eval_options eo = a->eo;
        eo.progress = on_progress;
        eo.progress_ctx = &p;
        eo.filter = r ? &f.filter : NULL;
        eo.exposure_out = exposure;
        if (ps_evaluate(ds, &sc, &eo, &met, &err) != PS_OK)
            rc = cli_error(c, "%s", err.msg);
        cli_progress_done(&p);
    }
    if (!rc && ps_dist_rank(a->eo.dist) == 0) { /* under mpirun rank 0 prints */
        char method[256];
        cli_steer_describe(&a->steer, method, sizeof method);
        if (r) {
            size_t n = strlen(method);
            snprintf(method + n, sizeof method - n, " + %s", ps_reranker_describe(r));
        }
        rc = print_metrics(c, &met, a->eo.split == PS_SPLIT_TEST ? "test" : "valid", method,
                           a->group.spec ? &group : NULL, exposure);
    }
    free(exposure);
    ps_item_group_free(&group);
    ps_rerank_filter_free(&f);
    ps_reranker_free(r);
    ps_item_features_free(&feat);
    cli_steer_free(&a->steer);
    ps_sasrec_free(m);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"split", required_argument, 0, OPT_SPLIT},
        {"k", required_argument, 0, OPT_K}, {"mask-seen", no_argument, 0, OPT_MASK_SEEN},
        {"rerank", required_argument, 0, OPT_RERANK}, {"param", required_argument, 0, OPT_PARAM},
        {"candidates", required_argument, 0, OPT_CANDIDATES},
        {"item-features", required_argument, 0, OPT_ITEM_FEATURES}, {"items", required_argument, 0, OPT_ITEMS},
        CLI_STEER_OPTIONS, CLI_GROUP_OPTIONS, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    eval_args a;
    cli_common_init(&c, "eval");
    cli_data_init(&d);
    memset(&a, 0, sizeof a);
    ps_eval_options_init(&a.eo);
    cli_steer_init(&a.steer);
    a.eo.split = PS_SPLIT_TEST;
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = eval_option(&c, &a, opt, optarg);
        if (r == 0)
            r = cli_group_option(&a.group, opt, optarg);
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(HELP, stdout), print_methods(), 0;
    if (optind < argc)
        return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
    if (!a.model)
        return cli_usage_error(&c, "--model MODEL.safetensors is required");
    int status = cli_group_check(&c, &a.group);
    if (status)
        return status;
    if (a.items && !a.group.spec)
        return cli_usage_error(&c, "--items is read by genre: groups only: it needs --group");
    cli_apply_threads(&c);
    ps_dist dist;
    int dist_status = cli_dist_init(&c, &dist);
    if (dist_status)
        return dist_status;
    a.eo.dist = &dist;
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (!rc) {
        rc = evaluate(&c, &a, &ds);
        ps_dataset_free(&ds);
    }
    if (rc) /* every rank goes, none waits in a collective for this one */
        ps_dist_abort(&dist, rc);
    ps_dist_finalize(&dist);
    return rc;
}
