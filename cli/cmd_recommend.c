/* popsteer recommend: the next items for one user, from their whole history. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/items.h"
#include "popsteer/metrics.h"
#include "popsteer/train.h"
#include "steer_opts.h"

static const char HELP[] =
    "usage: popsteer recommend --data PATH --model MODEL.safetensors --user RAW_ID [options]\n\n"
    "Scores every item for one user, using the most recent items of their whole history, and\n"
    "prints the top k with scores and popularity labels.\n\n"
    "Options:\n"
    "  --user ID          the user's id as written in the data file\n"
    "  --k N              how many items (default 10)\n"
    "  --items FILE       item titles (RecBole .item, MovieLens u.item/movies.dat, CSV)\n"
    "  --mask-seen        leave out items the user already interacted with\n"
    "\n" CLI_STEER_HELP "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_USER, OPT_K, OPT_ITEMS, OPT_MASK_SEEN };

typedef struct rec_args {
    const char *model, *user, *items;
    int k, mask_seen;
    cli_steer steer; /* --sae, --latents, --alpha, ...: the steered recommender, as in eval */
} rec_args;

static const char *label_name(int8_t l)
{
    return l > 0 ? "head" : l < 0 ? "tail" : "mid";
}

static int print_list(const cli_common *c, const ps_dataset *ds, const ps_item_titles *titles, const rec_args *a,
                      const int32_t *list, const float *scores)
{
    if (c->json) {
        cJSON *arr = cJSON_CreateArray();
        for (int j = 0; j < a->k && list[j]; j++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "rank", j + 1);
            cJSON_AddStringToObject(o, "item", ps_strings_get(&ds->item_tokens, list[j]));
            cJSON_AddNumberToObject(o, "score", scores[list[j]]);
            cJSON_AddStringToObject(o, "popularity", label_name(ds->label[list[j]]));
            const char *t = ps_item_title(titles, list[j]);
            if (t)
                cJSON_AddStringToObject(o, "title", t);
            cJSON_AddItemToArray(arr, o);
        }
        return cli_print_json(c, arr);
    }
    printf("%4s  %-12s %9s  %-4s  %s\n", "rank", "item", "score", "pop", titles ? "title" : "");
    for (int j = 0; j < a->k && list[j]; j++) {
        const char *t = ps_item_title(titles, list[j]);
        printf("%4d  %-12s %9.4f  %-4s  %s\n", j + 1, ps_strings_get(&ds->item_tokens, list[j]), scores[list[j]],
               label_name(ds->label[list[j]]), t ? t : "");
    }
    return 0;
}

static int recommend(const cli_common *c, rec_args *a, const ps_dataset *ds, const ps_item_titles *titles)
{
    int32_t u = ps_dataset_find_user(ds, a->user);
    if (!u)
        return cli_error(c, "user '%s' is not in the dataset (after filtering)", a->user);
    ps_error err;
    ps_sasrec *m = NULL;
    if (ps_sasrec_load(&m, a->model, &err) != PS_OK ||
        ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err) != PS_OK) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    int L = m->cfg.max_len, V = ds->n_items + 1;
    int32_t *seq = calloc((size_t)L, sizeof *seq), *list = calloc((size_t)a->k, sizeof *list);
    float *scores = calloc((size_t)V, sizeof *scores);
    uint8_t *exclude = a->mask_seen ? calloc((size_t)V, 1) : NULL;
    ps_scorer sc;
    int rc = (!seq || !list || !scores || (a->mask_seen && !exclude)) ? ps_fail(&err, "out of memory") : PS_OK;
    int status = 0;
    if (rc == PS_OK && (status = cli_steer_scorer(c, &a->steer, m, 1, &sc)) != 0)
        rc = PS_ERR;
    if (rc == PS_OK) {
        /* the whole history is the prefix of a "next" item: sample position = sequence length */
        ps_sample next = {u, (int32_t)ps_user_len(ds, u)};
        int32_t len;
        ps_batch_prefixes(ds, &next, 1, L, seq, &len);
        rc = sc.score(sc.ctx, seq, &len, 1, scores, &err);
        for (int64_t j = ds->user_off[u]; exclude && j < ds->user_off[u + 1]; j++)
            exclude[ds->seq[j]] = 1;
    }
    if (rc == PS_OK) {
        ps_topk(scores, ds->n_items, a->k, exclude, list);
        status = print_list(c, ds, titles, a, list, scores);
    }
    cli_steer_free(&a->steer);
    ps_sasrec_free(m);
    free(seq);
    free(list);
    free(scores);
    free(exclude);
    return status ? status : rc == PS_OK ? 0 : cli_error(c, "%s", err.msg);
}

int cmd_recommend(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"user", required_argument, 0, OPT_USER},
        {"k", required_argument, 0, OPT_K}, {"items", required_argument, 0, OPT_ITEMS},
        {"mask-seen", no_argument, 0, OPT_MASK_SEEN}, CLI_STEER_OPTIONS, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    rec_args a = {0};
    a.k = 10;
    cli_steer_init(&a.steer);
    cli_common_init(&c, "recommend");
    cli_data_init(&d);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        long v;
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
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
            default: r = cli_steer_option(&c, &a.steer, opt, optarg);
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
        rc = recommend(&c, &a, &ds, a.items ? &titles : NULL);
    ps_item_titles_free(&titles);
    ps_dataset_free(&ds);
    return rc;
}
