/* popsteer explain: one user's active SAE latents and one item's score split into latent
 * contributions, before and after steering. All the arithmetic is ps_explain_user (explain.h);
 * this file loads the inputs and prints. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/explain.h"
#include "popsteer/items.h"
#include "popsteer/metrics.h"
#include "explain_json.h"
#include "steer_opts.h"

typedef explain_view view;

static const char HELP[] =
    "usage: popsteer explain --data PATH --model MODEL.safetensors --sae SAE.safetensors\n"
    "                        --latents LATENTS.csv --user RAW_ID [--item RAW_ID] [options]\n\n"
    "Explains one user's recommendations through the sparse autoencoder: the user's active\n"
    "latents (TopK codes z of the most recent items of their whole history, as `recommend` uses\n"
    "it) with Cohen's d, fire rate and top items, and an item's score split into latent\n"
    "contributions z_j (W_dec[j] . E[item]) plus the decoder-bias term b_dec . E[item] (SASRec's\n"
    "scores have no output bias), before steering (the SAE-reconstructed model, alpha 0) and after.\n"
    "Without --item the item is the top 1 of the steered list.\n\n"
    "Options:\n"
    "  --user ID          the user's id as written in the data file\n"
    "  --item ID          the item to explain, as written in the data file (default: the steered top 1)\n"
    "  --k N              length of the before/after lists (default 10)\n"
    "  --items FILE       item titles (RecBole .item, MovieLens u.item/movies.dat, CSV)\n"
    "\n" CLI_STEER_HELP "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_USER, OPT_ITEM, OPT_K, OPT_ITEMS };

typedef struct explain_args {
    const char *model, *user, *item, *items;
    int k;
} explain_args;


static const char *label_name(int8_t l)
{
    return explain_label_name(l);
}

static const char *token(const view *v, int32_t item)
{
    return ps_strings_get(&v->ds->item_tokens, item);
}

static int print_json(const view *v, const int32_t *before, const int32_t *after)
{
    ps_error err;
    cJSON *o = explain_json(v, before, after, &err);
    if (!o)
        return cli_error(v->c, "%s", err.msg);
    return cli_print_json(v->c, o);
}

/* ---- text ---- */

static void print_item(const view *v, int32_t item)
{
    const char *t = ps_item_title(v->titles, item);
    printf("%s%s%s%s", token(v, item), t ? " \"" : "", t ? t : "", t ? "\"" : "");
}

static int print_codes(const view *v, const ps_explain_side *s, const char *title, ps_error *err)
{
    printf("\n%s: %d active latents, largest z first\n", title, s->n_codes);
    printf("  %7s %9s %9s %9s  %s\n", "latent", "z", "cohens_d", "fire_rate", "top items");
    for (int i = 0; i < s->n_codes; i++) {
        const ps_explain_code *c = &s->codes[i];
        int32_t top[N_TOP_ITEMS];
        if (ps_explain_latent_top_items(v->m, v->sae, c->latent, N_TOP_ITEMS, top, err) != PS_OK)
            return PS_ERR;
        printf("  %7d %9.4f %+9.4f %9.4f  ", (int)c->latent, c->z, c->d, c->fire_rate);
        for (int t = 0; t < N_TOP_ITEMS && top[t]; t++) {
            fputs(t ? " | " : "", stdout);
            print_item(v, top[t]);
        }
        putchar('\n');
    }
    return PS_OK;
}

static void print_decomposition(const ps_explain_side *s, const char *title)
{
    printf("\n%s: score %.6f = %.6f (latents) %+.6f (b_dec . E)", title, s->score, s->sum - s->bias_term - s->error_term,
           s->bias_term);
    if (s->error_term != 0)
        printf(" %+.6f (SASRec's error, kept)", s->error_term);
    printf("   [sum of the parts %.6f]\n", s->sum);
    printf("  %7s %12s %9s %9s\n", "latent", "contribution", "z", "cohens_d");
    for (int i = 0; i < s->n_codes; i++) {
        const ps_explain_code *c = &s->codes[s->by_contrib[i]];
        printf("  %7d %+12.6f %9.4f %+9.4f\n", (int)c->latent, c->contrib, c->z, c->d);
    }
}

static int print_text(const view *v, const int32_t *before, const int32_t *after)
{
    const ps_explain *e = v->e;
    ps_error err;
    printf("user %s: %lld interactions, the last %d scored\n", v->user, (long long)v->history, v->prefix_len);
    printf("steering: %s", v->steering);
    if (e->gate != 1)
        printf(" (this user's gate %.4f)", e->gate);
    printf("\nbefore = the SAE-reconstructed model without shifts; after = steered\n");
    if (print_codes(v, &e->before, "Active latents before steering", &err) != PS_OK ||
        print_codes(v, &e->after, "Active latents after steering", &err) != PS_OK)
        return cli_error(v->c, "%s", err.msg);
    printf("\nItem ");
    print_item(v, e->item);
    printf(" (%s)%s\n", label_name(v->ds->label[e->item]),
           e->item_was_top1 ? ": the top 1 of the steered list (no --item given)" : "");
    print_decomposition(&e->before, "Before steering");
    print_decomposition(&e->after, "After steering");
    printf("\nTop %d before -> after steering\n", v->k);
    printf("  %4s  %-12s %9s %-4s   %-12s %9s %-4s\n", "rank", "before", "score", "pop", "after", "score", "pop");
    for (int j = 0; j < v->k && (before[j] || after[j]); j++) {
        printf("  %4d  %-12s %9.4f %-4s   %-12s %9.4f %-4s\n", j + 1, before[j] ? token(v, before[j]) : "",
               before[j] ? e->before.scores[before[j]] : NAN, before[j] ? label_name(v->ds->label[before[j]]) : "",
               after[j] ? token(v, after[j]) : "", after[j] ? e->after.scores[after[j]] : NAN,
               after[j] ? label_name(v->ds->label[after[j]]) : "");
    }
    return 0;
}

/* ---- the command ---- */

static int explain(const cli_common *c, const explain_args *a, cli_steer *st, const ps_dataset *ds,
                   const ps_item_titles *titles)
{
    int32_t u = ps_dataset_find_user(ds, a->user);
    if (!u)
        return cli_error(c, "user '%s' is not in the dataset (after filtering)", a->user);
    int32_t item = 0;
    if (a->item && !(item = ps_dataset_find_item(ds, a->item)))
        return cli_error(c, "item '%s' is not in the dataset (after filtering)", a->item);
    ps_error err;
    ps_sasrec *m = NULL;
    if (ps_sasrec_load(&m, a->model, &err) != PS_OK ||
        ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err) != PS_OK) {
        ps_sasrec_free(m);
        return cli_error(c, "%s", err.msg);
    }
    /* steer_opts loads the SAE and builds the plan or rule exactly as `eval` does; its scorer is
     * not used, the explanation recomputes the chain for the one user */
    ps_scorer unused;
    int status = st->rule == CLI_RULE_DECODER
                     ? cli_usage_error(c, "explain decomposes TopK codes: --rule decoder (PopSteer-I) is not "
                                          "supported here; use --rule paper or peruser")
                     : cli_steer_scorer(c, st, m, ds, 1, &unused);
    ps_latent_table table = {0};
    if (!status && ps_latents_csv_read(st->latents_path, st->sae->cfg.n_latents, &table, &err) != PS_OK)
        status = cli_error(c, "%s", err.msg);
    int L = m->cfg.max_len;
    int32_t *seq = calloc((size_t)L, sizeof *seq), *lists = calloc((size_t)a->k * 2, sizeof *lists);
    if (!status && (!seq || !lists))
        status = cli_error(c, "out of memory");
    ps_explain e = {0};
    if (!status) {
        /* the whole history is the prefix of a "next" item, as in `recommend` */
        ps_sample next = {u, (int32_t)ps_user_len(ds, u)};
        int32_t len;
        ps_batch_prefixes(ds, &next, 1, L, seq, &len);
        ps_explain_steering es = {st->has_plan ? &st->plan : NULL, st->has_rule ? &st->srule : NULL};
        if (ps_explain_user(m, st->sae, &es, &table, seq, len, item, &e, &err) != PS_OK)
            status = cli_error(c, "%s", err.msg);
        if (!status) {
            ps_topk(e.before.scores, ds->n_items, a->k, NULL, lists);
            ps_topk(e.after.scores, ds->n_items, a->k, NULL, lists + a->k);
            char desc[256];
            cli_steer_describe(st, desc, sizeof desc);
            view v = {c, a->user, a->k, ds, titles, m, st->sae, &e, desc, ps_user_len(ds, u), len};
            status = c->json ? print_json(&v, lists, lists + a->k) : print_text(&v, lists, lists + a->k);
        }
    }
    ps_explain_free(&e);
    ps_latent_table_free(&table);
    free(seq);
    free(lists);
    ps_sasrec_free(m);
    return status;
}

int cmd_explain(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS, CLI_STEER_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"user", required_argument, 0, OPT_USER},
        {"item", required_argument, 0, OPT_ITEM}, {"k", required_argument, 0, OPT_K},
        {"items", required_argument, 0, OPT_ITEMS}, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    cli_steer st;
    explain_args a = {0};
    a.k = 10;
    cli_common_init(&c, "explain");
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
            case OPT_ITEM: a.item = optarg; break;
            case OPT_ITEMS: a.items = optarg; break;
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
    /* the explanation is in the SAE's latents, so both the SAE and the probe's table are needed */
    if (!a.model || !a.user || !st.sae_path || !st.latents_path)
        return cli_usage_error(&c, "--model, --sae, --latents and --user are required");
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
        rc = explain(&c, &a, &st, &ds, a.items ? &titles : NULL);
    cli_steer_free(&st);
    ps_item_titles_free(&titles);
    ps_dataset_free(&ds);
    return rc;
}
