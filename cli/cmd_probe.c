/* popsteer probe: Cohen's d of every SAE latent between popular-only and long-tail-only users
 * (the paper's probe) or between what its decoder row does to head and tail items (--side items). */
#include "cli.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/dist.h"
#include "popsteer/checkpoint.h"
#include "popsteer/items.h"
#include "popsteer/popsteer.h"
#include "group_opts.h"

static const char HELP[] =
    "usage: popsteer probe --data PATH --model MODEL --sae SAE --out LATENTS.csv [options]\n\n"
    "Makes one popular-only and one long-tail-only synthetic user per training prefix (same length),\n"
    "runs SASRec and the SAE encoder on them, and scores every latent with Cohen's d (SPEC §4).\n"
    "The CSV has one row per latent: d, both groups' mean and std, the TopK firing rate on real\n"
    "users and the items whose embedding activates the latent most.\n\n"
    "Probe options:\n"
    "  --sae FILE         the sparse autoencoder (popsteer sae train)\n"
    "  --out FILE         the per-latent table (required)\n"
    "  --cap N            use N training prefixes, sampled uniformly (default: all)\n"
    "  --items FILE       item titles for the top-items column (and genre: groups)\n"
    "  --top N            strongest latents of each sign to print (default 5)\n"
    "  --min-len L        synthetic users hold at least L items (capped at the model's maximum\n"
    "                     length; default 0: each prefix's own length, as the paper)\n"
    "  --side S           users (default: the paper's synthetic users) or items: the item-side\n"
    "                     probe of PopSteer-I (docs/steering.md): d of the score change each latent's\n"
    "                     decoder row gives head items against tail items (the means and stds\n"
    "                     columns then hold those score changes); no synthetic users, so --cap and\n"
    "                     --min-len do not apply. Steer with its table by eval --rule decoder\n"
    "\n"
    "Concept probe (docs/steering.md, \"Concept steering\"):\n"
    "  --group SPEC       contrast users drawn from the items of SPEC (the concept, in the long-tail\n"
    "                     role: d < 0 leans towards it, and steering with alpha > 0 moves lists\n"
    "                     towards it) with users drawn from the contrast set (the popular role)\n"
    CLI_GROUP_SPECS_HELP
    "\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

enum { OPT_MODEL = OPT_FIRST_COMMAND_OPTION, OPT_SAE_FILE, OPT_OUT, OPT_CAP, OPT_ITEMS, OPT_TOP, OPT_MIN_LEN,
       OPT_SIDE };

typedef struct probe_args {
    const char *model, *sae, *out, *items;
    long cap, top, min_len;
    int item_side;
    cli_group group;
    const ps_item_group *g; /* built from group, or NULL */
} probe_args;

static void on_progress(void *ctx, const char *stage, int64_t done, int64_t total)
{
    cli_progress_live(ctx, done == total, "probe: %s %lld/%lld", stage, (long long)done, (long long)total);
}

static void print_latent(const ps_dataset *ds, const ps_probe_result *r, const ps_item_titles *titles, int j)
{
    printf("  latent %4d  d %+.3f  fires %.3f  top:", j, r->table.d[j], r->table.fire_rate[j]);
    for (int t = 0; t < 3 && t < r->n_top; t++) {
        int32_t item = r->top_items[(size_t)j * r->n_top + t];
        const char *title = ps_item_title(titles, item);
        if (item)
            printf(" %s", title ? title : ps_strings_get(&ds->item_tokens, item));
        if (item && t < 2)
            putchar(';');
    }
    putchar('\n');
}

static int print_summary(const cli_common *c, const probe_args *a, const ps_dataset *ds, const ps_probe_result *r,
                         const ps_latents_summary *s, const ps_item_titles *titles)
{
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "latents", a->out);
        cJSON_AddNumberToObject(o, "n_latents", s->m);
        cJSON_AddStringToObject(o, "side", a->item_side ? "items" : "users");
        cJSON_AddNumberToObject(o, "synthetic_users_per_group", (double)r->n_synthetic);
        if (a->g)
            cJSON_AddStringToObject(o, "group", a->g->desc);
        cJSON_AddNumberToObject(o, "pop_latents", s->n_pos);
        cJSON_AddNumberToObject(o, "unpop_latents", s->n_neg);
        cJSON_AddNumberToObject(o, "zero_latents", s->n_zero);
        const char *names[3] = {"abs_d_gt_0.2", "abs_d_gt_0.5", "abs_d_gt_0.8"};
        for (int i = 0; i < 3; i++)
            cJSON_AddNumberToObject(o, names[i], s->n_abs_gt[i]);
        cli_json_add_gemm(o);
        return cli_print_json(c, o);
    }
    const char *pos = a->g ? "contrast" : "popular", *neg = a->g ? "concept" : "long-tail";
    if (a->item_side)
        printf("latents        %s (%d latents, item-side probe: decoder rows against item embeddings)\n", a->out,
               s->m);
    else
        printf("latents        %s (%d latents, %lld synthetic users per group)\n", a->out, s->m,
               (long long)r->n_synthetic);
    if (a->g)
        printf("concept        %s\n", a->g->desc);
    printf("lean %-9s %d (d > 0): |d| > 0.2: %d, > 0.5: %d, > 0.8: %d\n", pos, s->n_pos, s->n_pos_gt[0],
           s->n_pos_gt[1], s->n_pos_gt[2]);
    printf("lean %-9s %d (d < 0): |d| > 0.2: %d, > 0.5: %d, > 0.8: %d\n", neg, s->n_neg, s->n_neg_gt[0],
           s->n_neg_gt[1], s->n_neg_gt[2]);
    if (s->n_zero)
        printf("no difference  %d\n", s->n_zero);
    printf("strongest %s latents:\n", pos);
    for (int i = 0; i < s->n_top_pos; i++)
        print_latent(ds, r, titles, s->top_pos[i]);
    printf("strongest %s latents:\n", neg);
    for (int i = 0; i < s->n_top_neg; i++)
        print_latent(ds, r, titles, s->top_neg[i]);
    return 0;
}

static int probe(const cli_common *c, const probe_args *a, const ps_dataset *ds, const ps_item_titles *titles,
                 const ps_dist *dist)
{
    ps_error err;
    ps_sasrec *m = NULL;
    ps_sae *sae = NULL;
    ps_probe_result r = {0};
    int rc = ps_sasrec_load(&m, a->model, &err);
    if (rc == PS_OK)
        rc = ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, a->model, &err);
    if (rc == PS_OK && !(sae = ps_sae_load(a->sae, &err)))
        rc = PS_ERR;
    cli_progress p;
    cli_progress_init(&p, c->quiet);
    ps_probe_options o;
    ps_probe_options_init(&o);
    o.cap = a->cap;
    o.min_len = (int)a->min_len;
    o.seed = c->seed;
    o.progress = on_progress;
    o.progress_ctx = &p;
    o.sides = a->g ? a->g->side : NULL;
    o.item_side = a->item_side;
    o.dist = dist;
    if (rc == PS_OK)
        rc = ps_probe_run(m, sae, ds, &o, &r, &err);
    cli_progress_done(&p);
    if (rc == PS_OK && ps_dist_rank(dist) != 0) { /* under mpirun rank 0 writes and prints */
        ps_probe_result_free(&r);
        ps_sae_free(sae);
        ps_sasrec_free(m);
        return 0;
    }
    ps_latents_summary s;
    if (rc == PS_OK) {
        ps_latent_items li = {r.top_items, r.n_top, &ds->item_tokens, titles ? titles->title : NULL};
        rc = ps_latents_csv_write(a->out, &r.table, &li, &err);
    }
    if (rc == PS_OK)
        rc = ps_latents_summary_make(r.table.d, r.table.m, (int)a->top, &s, &err);
    int status = 0;
    if (rc == PS_OK)
        status = print_summary(c, a, ds, &r, &s, titles);
    ps_probe_result_free(&r);
    ps_sae_free(sae);
    ps_sasrec_free(m);
    return rc == PS_OK ? status : cli_error(c, "%s", err.msg);
}

int cmd_probe(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL}, {"sae", required_argument, 0, OPT_SAE_FILE},
        {"out", required_argument, 0, OPT_OUT}, {"cap", required_argument, 0, OPT_CAP},
        {"items", required_argument, 0, OPT_ITEMS}, {"top", required_argument, 0, OPT_TOP},
        {"min-len", required_argument, 0, OPT_MIN_LEN}, {"side", required_argument, 0, OPT_SIDE}, CLI_GROUP_OPTIONS,
        {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    probe_args a = {0};
    a.top = 5;
    cli_common_init(&c, "probe");
    cli_data_init(&d);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        if (r == 0)
            r = cli_group_option(&a.group, opt, optarg);
        if (r == 0) {
            r = 1;
            switch (opt) {
            case OPT_MODEL: a.model = optarg; break;
            case OPT_SAE_FILE: a.sae = optarg; break;
            case OPT_OUT: a.out = optarg; break;
            case OPT_ITEMS: a.items = optarg; break;
            case OPT_CAP: r = cli_parse_long(&c, "cap", optarg, 0, 1L << 40, &a.cap) < 0 ? -1 : 1; break;
            case OPT_MIN_LEN: r = cli_parse_long(&c, "min-len", optarg, 0, 1 << 20, &a.min_len) < 0 ? -1 : 1; break;
            case OPT_TOP: r = cli_parse_long(&c, "top", optarg, 0, PS_LATENTS_SUMMARY_MAX_TOP, &a.top) < 0 ? -1 : 1; break;
            case OPT_SIDE:
                if (strcmp(optarg, "users") && strcmp(optarg, "items"))
                    r = (cli_usage_error(&c, "--side: expected 'users' or 'items', got '%s'", optarg), -1);
                a.item_side = !strcmp(optarg, "items");
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
    if (!a.model || !a.sae || !a.out)
        return cli_usage_error(&c, "--model, --sae and --out are required");
    if (a.item_side && (a.cap || a.min_len))
        return cli_usage_error(&c, "--cap and --min-len shape synthetic users; --side items has none");
    int status = cli_group_check(&c, &a.group);
    if (status)
        return status;
    cli_apply_threads(&c);
    ps_dist dist;
    int dist_status = cli_dist_init(&c, &dist);
    if (dist_status)
        return dist_status;
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (rc) {
        ps_dist_abort(&dist, rc);
        ps_dist_finalize(&dist);
        return rc;
    }
    ps_item_titles titles = {0};
    ps_error err;
    if (a.items && ps_item_titles_load(&titles, &ds, a.items, &err) != PS_OK)
        rc = cli_error(&c, "%s", err.msg);
    ps_item_group group = {0};
    if (!rc && a.group.spec && !(rc = cli_group_make(&c, &a.group, &ds, a.items, &group)))
        a.g = &group;
    if (!rc)
        rc = probe(&c, &a, &ds, a.items ? &titles : NULL, &dist);
    ps_item_group_free(&group);
    ps_item_titles_free(&titles);
    ps_dataset_free(&ds);
    if (rc) /* every rank goes, none waits in a collective for this one */
        ps_dist_abort(&dist, rc);
    ps_dist_finalize(&dist);
    return rc;
}
