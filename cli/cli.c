#include "cli.h"

#include "nn/nn.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* What cli_getopt returns after it has printed why an option word is wrong: every command hands
 * it to cli_common_option first, which answers "bad value, already printed" (-1, exit status 2). */
#define OPT_ALREADY_REPORTED (-2)

void cli_common_init(cli_common *c, const char *cmd)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->seed = 42;
}

void cli_data_init(cli_data *d)
{
    memset(d, 0, sizeof *d);
    ps_load_options_init(&d->load);
}

static void vprint(const cli_common *c, const char *fmt, va_list ap)
{
    fprintf(stderr, "popsteer %s: ", c->cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_error(const cli_common *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(c, fmt, ap);
    va_end(ap);
    return 1;
}

int cli_usage_error(const cli_common *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(c, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'popsteer %s --help'.\n", c->cmd);
    return 2;
}

void cli_json_add_gemm(cJSON *o)
{
    cJSON *g = o ? cJSON_AddObjectToObject(o, "gemm") : NULL;
    if (!g)
        return; /* out of memory: cli_print_json reports it */
    cJSON_AddStringToObject(g, "own_isa", ps_nn_gemm_isa());
    cJSON_AddStringToObject(g, "backends", ps_nn_gemm_backends());
    cJSON_AddStringToObject(g, "openblas", ps_nn_gemm_library(PS_GEMM_OPENBLAS));
    cJSON_AddStringToObject(g, "blis", ps_nn_gemm_library(PS_GEMM_BLIS));
    cJSON_AddStringToObject(g, "notes", ps_nn_gemm_notes());
}

int cli_print_json(const cli_common *c, cJSON *o)
{
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return cli_error(c, "out of memory formatting JSON");
    puts(text);
    free(text);
    return 0;
}

int cli_option_verdict(const cli_common *c, int r, char **argv)
{
    if (r < 0)
        return 2;
    if (r == 0)
        return cli_usage_error(c, "unknown option '%s'", argv[optind - 1]);
    return 0;
}

void cli_note(const cli_common *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_parse_long(const cli_common *c, const char *opt, const char *arg, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end != '\0' || v < min || v > max) {
        cli_usage_error(c, "--%s: expected a whole number from %ld to %ld, got '%s'", opt, min, max, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const cli_common *c, const char *opt, const char *arg, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end != '\0' || !isfinite(v) || v < min || v > max) {
        cli_usage_error(c, "--%s: expected a number from %g to %g, got '%s'", opt, min, max, arg);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_common_option(cli_common *c, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_THREADS:
        if (cli_parse_long(c, "threads", arg, 1, 1024, &v) < 0)
            return -1;
        c->threads = (int)v;
        return 1;
    case OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(arg, &end, 10);
        if (errno || end == arg || *end != '\0' || arg[0] == '-') {
            cli_usage_error(c, "--seed: expected a non-negative whole number, got '%s'", arg);
            return -1;
        }
        c->seed = (uint64_t)s;
        c->seed_set = 1;
        return 1;
    }
    case OPT_JSON: c->json = 1; return 1;
    case OPT_QUIET: c->quiet = 1; return 1;
    case OPT_HELP: c->help = 1; return 1;
    case OPT_ALREADY_REPORTED: return -1;
    default: return 0;
    }
}

int cli_data_option(const cli_common *c, cli_data *d, int opt, const char *arg)
{
    long v;
    ps_load_options *o = &d->load;
    switch (opt) {
    case OPT_DATA: d->path = arg; return 1;
    case OPT_FORMAT: {
        int f = ps_format_parse(arg);
        if (f < 0) {
            cli_usage_error(c, "--format: unknown format '%s' (auto, atomic, dat, udata, sequence, csv)", arg);
            return -1;
        }
        o->format = (ps_format)f;
        return 1;
    }
    case OPT_RATING_THRESHOLD:
        o->has_rating_threshold = 1;
        return cli_parse_double(c, "rating-threshold", arg, -1e300, 1e300, &o->rating_threshold) < 0 ? -1 : 1;
    case OPT_KCORE:
        if (cli_parse_long(c, "kcore", arg, 0, 1000000, &v) < 0)
            return -1;
        o->kcore = (int)v;
        return 1;
    case OPT_HEAD_SHARE: return cli_parse_double(c, "head-share", arg, 0, 1, &o->head_share) < 0 ? -1 : 1;
    case OPT_TAIL_SHARE: return cli_parse_double(c, "tail-share", arg, 0, 1, &o->tail_share) < 0 ? -1 : 1;
    case OPT_MAX_LEN:
        if (cli_parse_long(c, "max-len", arg, 1, 4096, &v) < 0)
            return -1;
        o->max_seq_len = (int)v;
        return 1;
    case OPT_USER_COL: o->user_col = arg; return 1;
    case OPT_ITEM_COL: o->item_col = arg; return 1;
    case OPT_TIME_COL: o->time_col = arg; return 1;
    case OPT_RATING_COL: o->rating_col = arg; return 1;
    default: return 0;
    }
}

int cli_dist_init(cli_common *c, ps_dist *dist)
{
    ps_error err;
    if (ps_dist_init(dist, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    if (dist->rank != 0) /* one rank speaks for the job */
        c->quiet = 1;
    return 0;
}

void cli_apply_threads(const cli_common *c)
{
    if (c->threads > 0) {
        omp_set_num_threads(c->threads);
    }
}

int cli_load_dataset(const cli_common *c, const cli_data *d, ps_dataset *ds)
{
    if (!d->path)
        return cli_usage_error(c, "--data PATH is required");
    ps_error err;
    if (ps_dataset_load(ds, d->path, &d->load, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    const ps_load_report *r = &ds->report;
    if (r->users_too_short)
        cli_note(c, "note: dropped %lld users with fewer than 3 interactions (%lld rows): too short for a "
                    "train/validation/test split",
                 (long long)r->users_too_short, (long long)r->rows_too_short);
    return 0;
}

/* The option of opts whose code is val, for its full name in messages. */
static const struct option *option_by_val(const struct option *opts, int val)
{
    for (; opts->name; opts++)
        if (opts->val == val)
            return opts;
    return NULL;
}

/* getopt_long reports every problem as '?' (or ':' with a leading ':' in the short options),
 * and the option word is not always argv[optind - 1]: say precisely what is wrong. */
static void report_bad_option(const cli_common *c, int argc, char **argv, const struct option *opts, int opt)
{
    const char *word = optind - 1 >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";
    const struct option *o = optopt >= 256 ? option_by_val(opts, optopt) : NULL;
    if (opt == ':' && o) {
        cli_usage_error(c, "option '--%s' needs a value", o->name);
        return;
    }
    if (o) { /* a value given to an option that takes none: --json=3 */
        cli_usage_error(c, "option '--%s' takes no value (got '%s')", o->name, word);
        return;
    }
    if (optopt != 0 && optopt < 256) {
        /* a short option: in "-xy", argv[optind - 1] is the word before (or the command), and
         * glibc stores a byte above 127 as a negative optopt (a fuzzing finding: that case once
         * fell through to the long-option code with no word to look at) */
        unsigned char ch = (unsigned char)optopt;
        if (ch > 32 && ch < 127)
            cli_usage_error(c, "unknown option '-%c' (options are long: --NAME)", ch);
        else
            cli_usage_error(c, "unknown option: byte 0x%02x after '-' (options are long: --NAME)", ch);
        return;
    }
    if (strncmp(word, "--", 2) != 0) {
        cli_usage_error(c, "unknown option '%s'", word);
        return;
    }
    /* a long option that is unknown or an ambiguous abbreviation (glibc reports both alike) */
    size_t n = strcspn(word + 2, "=");
    char list[512] = "";
    int matches = 0;
    if (n > 0)
        for (const struct option *p = opts; p->name; p++)
            if (strncmp(p->name, word + 2, n) == 0 && strlen(list) + strlen(p->name) + 8 < sizeof list) {
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s--%s", matches ? ", " : "", p->name);
                matches++;
            }
    if (matches > 1)
        cli_usage_error(c, "option '%.*s' is ambiguous: %s", (int)(n + 2), word, list);
    else
        cli_usage_error(c, "unknown option '%s'", word);
}

int cli_getopt(const cli_common *c, int argc, char **argv, const struct option *opts)
{
    opterr = 0;
    int opt = getopt_long(argc, argv, ":", opts, NULL);
    if (opt != '?' && opt != ':')
        return opt;
    report_bad_option(c, argc, argv, opts, opt);
    return OPT_ALREADY_REPORTED;
}

/* --item-features: the table, and a note on how much of the catalogue it covers. */
int cli_load_item_features(const cli_common *c, const char *path, const ps_dataset *ds, ps_item_features *f)
{
    ps_error err;
    if (ps_item_features_load(f, path, ds, &err) != PS_OK)
        return cli_error(c, "%s", err.msg);
    cli_note(c, "item features: %d values per item from %s; %d of %d items have no row (zero vectors: "
                "cosine 0 with every item); %lld rows for items removed by filtering skipped",
             f->dim, path, (int)(ds->n_items - f->items_with_row), (int)ds->n_items, (long long)f->rows_filtered);
    return 0;
}
