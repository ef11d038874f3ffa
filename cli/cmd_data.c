/* popsteer data stats | synth */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/sweep.h"
#include "popsteer/synth.h"

static const char STATS_HELP[] =
    "usage: popsteer data stats --data PATH [options]\n\n"
    "Loads an interaction log, applies the SPEC §1 pipeline (ids, time order, leave-one-out split,\n"
    "head/mid/tail labels) and prints its statistics.\n\n" CLI_DATA_HELP "\n" CLI_COMMON_HELP;

static const char SYNTH_HELP[] =
    "usage: popsteer data synth --out FILE [options]\n\n"
    "Writes a generated sequential interaction log (RecBole atomic format) with power-law item\n"
    "popularity, latent user tastes and Markov-like sequential structure. Deterministic by --seed.\n\n"
    "Options:\n"
    "  --out FILE         where to write the .inter file (required)\n"
    "  --preset NAME      'demo' (default: 2,000 users, 1,500 items, 80,000 rows), 'ml1m'\n"
    "                     (6,040 users, 3,416 items, ~1M rows, for benchmarks) or 'ml20m'\n"
    "                     (138,493 users, 26,744 items, 20M rows, ~420 MB: docs/distributed.md)\n"
    "  --users N, --items N, --interactions N, --topics N, --min-len N\n"
    "  --zipf X           item popularity exponent (default 1.0)\n"
    "  --markov X         probability of following the previous item's successors (default 0.5)\n"
    "\n" CLI_COMMON_HELP;

static const char DATA_HELP[] = "usage: popsteer data <stats|synth> [options]\n\n"
                                "  stats   load a dataset and print its statistics\n"
                                "  synth   generate a realistic sequential dataset\n";

static void stats_print(const char *path, const ps_dataset *ds, const ps_dataset_stats *st)
{
    const ps_load_report *r = &ds->report;
    printf("dataset        %s (%s, %lld rows read%s)\n", path, ps_format_name(r->format), (long long)r->rows_read,
           r->has_time ? "" : ", no timestamps: file order is time order");
    printf("users          %d\n", st->users);
    printf("items          %d\n", st->items);
    printf("interactions   %lld (density %.4f)\n", (long long)st->interactions, st->density);
    printf("samples        %lld train / %lld valid / %lld test\n", (long long)st->train_samples,
           (long long)st->valid_samples, (long long)st->test_samples);
    printf("labels         %d head / %d mid / %d tail\n", st->head_items, st->mid_items, st->tail_items);
    printf("popularity     the top 20%% of items hold %.1f%% of interactions\n", 100.0 * st->top20_share);
    printf("seq length     min %.0f, q25 %.1f, median %.1f, q75 %.1f, q90 %.1f, max %.0f, mean %.1f\n", st->len_min,
           st->len_q25, st->len_median, st->len_q75, st->len_q90, st->len_max, st->len_mean);
    printf("filtered       %lld rows below the rating threshold, %lld by k-core, %lld users (%lld rows) "
           "with fewer than 3 interactions\n",
           (long long)r->rows_below_rating, (long long)r->rows_kcore, (long long)r->users_too_short,
           (long long)r->rows_too_short);
}

static int data_stats(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, CLI_DATA_OPTIONS, {0, 0, 0, 0}};
    cli_common c;
    cli_data d;
    cli_common_init(&c, "data stats");
    cli_data_init(&d);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = cli_data_option(&c, &d, opt, optarg);
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(STATS_HELP, stdout), 0;
    if (optind < argc)
        return cli_usage_error(&c, "unexpected argument '%s'", argv[optind]);
    cli_apply_threads(&c);
    ps_dataset ds;
    int rc = cli_load_dataset(&c, &d, &ds);
    if (rc)
        return rc;
    ps_dataset_stats st;
    ps_error err;
    if (ps_dataset_stats_compute(&ds, &st, &err) != PS_OK) {
        ps_dataset_free(&ds);
        return cli_error(&c, "%s", err.msg);
    }
    if (c.json)
        rc = cli_print_json(&c, ps_dataset_report_json(&ds, &st));
    else
        stats_print(d.path, &ds, &st);
    ps_dataset_free(&ds);
    return rc;
}

enum { OPT_OUT = OPT_FIRST_COMMAND_OPTION, OPT_PRESET, OPT_USERS, OPT_ITEMS, OPT_INTER, OPT_TOPICS, OPT_MINLEN,
       OPT_ZIPF, OPT_MARKOV };

static int synth_option(const cli_common *c, ps_synth_options *o, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_USERS:
        if (cli_parse_long(c, "users", arg, 1, 100000000, &v) < 0) return -1;
        o->n_users = (int32_t)v;
        return 1;
    case OPT_ITEMS:
        if (cli_parse_long(c, "items", arg, 2, 100000000, &v) < 0) return -1;
        o->n_items = (int32_t)v;
        return 1;
    case OPT_INTER:
        if (cli_parse_long(c, "interactions", arg, 1, 2000000000L, &v) < 0) return -1;
        o->n_interactions = v;
        return 1;
    case OPT_TOPICS:
        if (cli_parse_long(c, "topics", arg, 1, 1000000, &v) < 0) return -1;
        o->n_topics = (int)v;
        return 1;
    case OPT_MINLEN:
        if (cli_parse_long(c, "min-len", arg, 3, 1000000, &v) < 0) return -1;
        o->min_len = (int)v;
        return 1;
    case OPT_ZIPF: return cli_parse_double(c, "zipf", arg, 0.01, 10, &o->zipf) < 0 ? -1 : 1;
    case OPT_MARKOV: return cli_parse_double(c, "markov", arg, 0, 1, &o->markov) < 0 ? -1 : 1;
    default: return 0;
    }
}

static int data_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"out", required_argument, 0, OPT_OUT}, {"preset", required_argument, 0, OPT_PRESET},
        {"users", required_argument, 0, OPT_USERS}, {"items", required_argument, 0, OPT_ITEMS},
        {"interactions", required_argument, 0, OPT_INTER}, {"topics", required_argument, 0, OPT_TOPICS},
        {"min-len", required_argument, 0, OPT_MINLEN}, {"zipf", required_argument, 0, OPT_ZIPF},
        {"markov", required_argument, 0, OPT_MARKOV}, {0, 0, 0, 0}};
    cli_common c;
    cli_common_init(&c, "data synth");
    ps_synth_options so;
    ps_synth_options_init(&so);
    const char *out = NULL;
    /* The preset sets the base; explicit size options given anywhere override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset") && !strcmp(argv[i + 1], "ml1m"))
            ps_synth_options_ml1m(&so);
        else if (!strcmp(argv[i], "--preset") && !strcmp(argv[i + 1], "ml20m"))
            ps_synth_options_ml20m(&so);
    for (int opt; (opt = cli_getopt(&c, argc, argv, opts)) != -1;) {
        int r = cli_common_option(&c, opt, optarg);
        if (r == 0)
            r = synth_option(&c, &so, opt, optarg);
        if (r == 0 && opt == OPT_OUT)
            out = optarg, r = 1;
        if (r == 0 && opt == OPT_PRESET) {
            if (strcmp(optarg, "demo") && strcmp(optarg, "ml1m") && strcmp(optarg, "ml20m"))
                return cli_usage_error(&c, "--preset: expected 'demo', 'ml1m' or 'ml20m', got '%s'", optarg);
            r = 1;
        }
        const int status = cli_option_verdict(&c, r, argv);
        if (status)
            return status;
    }
    if (c.help)
        return fputs(SYNTH_HELP, stdout), 0;
    if (!out)
        return cli_usage_error(&c, "--out FILE is required");
    if (c.seed_set)
        so.seed = c.seed;
    ps_error err;
    if (ps_synth_write(&so, out, &err) != PS_OK)
        return cli_error(&c, "%s", err.msg);
    cli_note(&c, "wrote %s (%d users, %d items, ~%lld interactions, seed %llu)", out, so.n_users, so.n_items,
             (long long)so.n_interactions, (unsigned long long)so.seed);
    return 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(DATA_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "stats"))
        return data_stats(argc - 1, argv + 1);
    if (!strcmp(argv[1], "synth"))
        return data_synth(argc - 1, argv + 1);
    fprintf(stderr, "popsteer data: unknown subcommand '%s'\n%s", argv[1], DATA_HELP);
    return 2;
}
