/* popsteer recommend: the next items for one user, from their whole history. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/items.h"
#include "popsteer/recommend.h"
#include "steer_opts.h"

static const char HELP[] =
    "usage: popsteer recommend --data PATH --model MODEL.safetensors --user RAW_ID [options]\n\n"
    "Scores every item for one user, using the most recent items of their whole history, and\n"
    "prints the top k with scores and popularity labels. With --sae the user vector goes through\n"
    "the sparse autoencoder (alone: the SAE-reconstructed model), with --latents and --alpha it is\n"
    "steered by the paper's rule, as `eval` scores it (and `popsteer serve` answers it).\n\n"
    "Options:\n"
    "  --user ID          the user's id as written in the data file\n"
    "  --k N              how many items (default 10)\n"
    "  --items FILE       item titles (RecBole .item, MovieLens u.item/movies.dat, CSV)\n"
    "  --mask-seen        leave out items the user already interacted with\n"
    "  --sae FILE, --latents FILE, --alpha X, --neurons N  steering, as for `eval` (paper's rule)\n"
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_USER, OPT_K, OPT_ITEMS, OPT_MASK_SEEN };

typedef struct rec_args {
    const char *model, *user, *items;
    int k, mask_seen;
} rec_args;

static const char *label_name(int8_t l)
{
    return l > 0 ? "head" : l < 0 ? "tail" : "mid";
}

static int print_list(const cli_common *c, const ps_dataset *ds, const ps_item_titles *titles, const ps_rec_list *l)
{
    if (c->json) {
        cJSON *arr = cJSON_CreateArray();
        for (int j = 0; j < l->n; j++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "rank", j + 1);
            cJSON_AddStringToObject(o, "item", ps_strings_get(&ds->item_tokens, l->items[j]));
            cJSON_AddNumberToObject(o, "score", l->scores[j]);
            cJSON_AddStringToObject(o, "popularity", label_name(ds->label[l->items[j]]));
            const char *t = ps_item_title(titles, l->items[j]);
            if (t)
                cJSON_AddStringToObject(o, "title", t);
            cJSON_AddItemToArray(arr, o);
        }
        return cli_print_json(c, arr);
    }
    printf("%4s  %-12s %9s  %-4s  %s\n", "rank", "item", "score", "pop", titles ? "title" : "");
    for (int j = 0; j < l->n; j++) {
        const char *t = ps_item_title(titles, l->items[j]);
        printf("%4d  %-12s %9.4f  %-4s  %s\n", j + 1, ps_strings_get(&ds->item_tokens, l->items[j]), l->scores[j],
               label_name(ds->label[l->items[j]]), t ? t : "");
    }
    return 0;
}

static int recommend(const cli_common *c, const rec_args *a, const cli_steer *st, const ps_dataset *ds,
                     const ps_item_titles *titles)
{
    int32_t u = ps_dataset_find_user(ds, a->user);
    if (!u)
        return cli_error(c, "user '%s' is not in the dataset (after filtering)", a->user);
    ps_error err;
    ps_recommender *r = NULL;
    ps_rec_ws *w = NULL;
    ps_rec_list list;
    /* the whole history is the prefix of a "next" item */
    ps_rec_query q = {NULL, 0, a->k, st->alpha, (int)st->neurons, a->mask_seen, u};
    int status = 0;
    if (ps_recommender_open(&r, ds, a->model, st->sae_path, st->latents_path, &err) != PS_OK ||
        ps_rec_ws_create(&w, r, &err) != PS_OK || ps_recommend(r, w, &q, &list, &err) != PS_OK)
        status = cli_error(c, "%s", err.msg);
    else
        status = print_list(c, ds, titles, &list);
    ps_rec_ws_free(w);
    ps_recommender_free(r);
    return status;
}

int cmd_recommend(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS, CLI_STEER_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"user", required_argument, 0, OPT_USER},
        {"k", required_argument, 0, OPT_K}, {"items", required_argument, 0, OPT_ITEMS},
        {"mask-seen", no_argument, 0, OPT_MASK_SEEN}, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    cli_steer st;
    rec_args a = {0};
    a.k = 10;
    cli_common_init(&c, "recommend");
    cli_data_init(&d);
    cli_steer_init(&st);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        long v;
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = cli_steer_option(&c, &st, opt, optarg);
        if (r == 0) {
            r = 1;
            switch (opt) {
            case OPT_MODEL: a.model = optarg; break;
            case OPT_USER: a.user = optarg; break;
            case OPT_ITEMS: a.items = optarg; break;
            case OPT_MASK_SEEN: a.mask_seen = 1; break;
            case OPT_K:
                r = cli_parse_long(&c, "k", optarg, 1, 100000, &v) < 0 ? -1 : 1;
                a.k = (int)v;
                break;
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
    if (!a.model || !a.user)
        return cli_usage_error(&c, "--model and --user are required");
    if (st.rule != CLI_RULE_PAPER || st.rule_opts_set)
        return cli_usage_error(&c, "recommend steers with the paper's rule only (no --rule or its options)");
    int status = cli_steer_check(&c, &st);
    if (status)
        return status;
    cli_apply_threads(&c);
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (rc)
        return rc;
    ps_item_titles titles = {0};
    ps_error err;
    if (a.items && ps_item_titles_load(&titles, &ds, a.items, &err) != PS_OK)
        rc = cli_error(&c, "%s", err.msg);
    if (!rc)
        rc = recommend(&c, &a, &st, &ds, a.items ? &titles : NULL);
    ps_item_titles_free(&titles);
    ps_dataset_free(&ds);
    return rc;
}
