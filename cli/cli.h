/* Shared pieces of the command-line front end: common options (--threads, --seed, --json,
 * --quiet, --help), dataset options, checked number parsing and error printing.
 * The CLI only parses options and calls the library; all work happens in libpopsteer. */
#ifndef POPSTEER_CLI_H
#define POPSTEER_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "popsteer/dataset.h"

/* Long-only option codes (above the char range so they never clash with short options). */
enum {
    OPT_THREADS = 256, OPT_SEED, OPT_JSON, OPT_QUIET, OPT_HELP,
    OPT_DATA, OPT_FORMAT, OPT_RATING_THRESHOLD, OPT_KCORE, OPT_HEAD_SHARE, OPT_TAIL_SHARE, OPT_MAX_LEN,
    OPT_USER_COL, OPT_ITEM_COL, OPT_TIME_COL, OPT_RATING_COL,
    OPT_FIRST_COMMAND_OPTION /* commands number their own options from here */
};

#define CLI_COMMON_OPTIONS                                                                               \
    {"threads", required_argument, 0, OPT_THREADS}, {"seed", required_argument, 0, OPT_SEED},           \
    {"json", no_argument, 0, OPT_JSON}, {"quiet", no_argument, 0, OPT_QUIET},                           \
    {"help", no_argument, 0, OPT_HELP}

#define CLI_DATA_OPTIONS                                                                                 \
    {"data", required_argument, 0, OPT_DATA}, {"format", required_argument, 0, OPT_FORMAT},             \
    {"rating-threshold", required_argument, 0, OPT_RATING_THRESHOLD},                                    \
    {"kcore", required_argument, 0, OPT_KCORE}, {"head-share", required_argument, 0, OPT_HEAD_SHARE},   \
    {"tail-share", required_argument, 0, OPT_TAIL_SHARE}, {"max-len", required_argument, 0, OPT_MAX_LEN}, \
    {"user-col", required_argument, 0, OPT_USER_COL}, {"item-col", required_argument, 0, OPT_ITEM_COL}, \
    {"time-col", required_argument, 0, OPT_TIME_COL}, {"rating-col", required_argument, 0, OPT_RATING_COL}

#define CLI_COMMON_HELP                                                                                  \
    "Common options:\n"                                                                                  \
    "  --threads N        worker threads (default: all cores)\n"                                        \
    "  --seed N           random seed (default 42)\n"                                                   \
    "  --json             machine-readable JSON on stdout\n"                                            \
    "  --quiet            no progress or notes on stderr\n"                                             \
    "  --help             this help\n"

#define CLI_DATA_HELP                                                                                    \
    "Dataset options:\n"                                                                                 \
    "  --data PATH        interaction log (RecBole .inter, ratings.dat, u.data, sequence file, CSV/TSV)\n" \
    "  --format F         auto (default), atomic, dat, udata, sequence, csv\n"                          \
    "  --rating-threshold X  keep interactions with rating >= X\n"                                      \
    "  --kcore K          iterative K-core filter on users and items (default off)\n"                   \
    "  --head-share X     cumulative popularity share of head items (default 0.20)\n"                   \
    "  --tail-share X     cumulative popularity share of tail items (default 0.20)\n"                   \
    "  --max-len N        prefix length (default 50)\n"                                                 \
    "  --user-col NAME, --item-col NAME, --time-col NAME, --rating-col NAME  CSV column names\n"

typedef struct cli_common {
    const char *cmd;   /* "data stats", for messages */
    int threads;       /* 0 = library default */
    uint64_t seed;
    int seed_set;      /* --seed was given (else commands keep their own default) */
    int json, quiet, help;
} cli_common;

typedef struct cli_data {
    const char *path;
    ps_load_options load;
} cli_data;

void cli_common_init(cli_common *c, const char *cmd);
void cli_data_init(cli_data *d);
/* Handle an option if it is a common/dataset one: 1 = handled, 0 = not ours, -1 = bad value (printed). */
int cli_common_option(cli_common *c, int opt, const char *arg);
int cli_data_option(const cli_common *c, cli_data *d, int opt, const char *arg);
/* Applies --threads to OpenMP and OpenBLAS. */
void cli_apply_threads(const cli_common *c);

/* Checked parsing: prints "popsteer CMD: --opt: ..." and returns -1 on a bad value. */
int cli_parse_long(const cli_common *c, const char *opt, const char *arg, long min, long max, long *out);
int cli_parse_double(const cli_common *c, const char *opt, const char *arg, double min, double max, double *out);

/* Prints "popsteer CMD: message" to stderr; returns the exit status 1 (or 2 for usage errors). */
int cli_error(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_error(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Notes on stderr unless --quiet. */
void cli_note(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads the dataset named by --data, with a note about dropped users; prints errors. */
int cli_load_dataset(const cli_common *c, const cli_data *d, ps_dataset *ds);

/* Runs getopt_long over argv for a subcommand; unknown options are usage errors. */
int cli_getopt(const cli_common *c, int argc, char **argv, const struct option *opts);

/* Subcommands: each returns the process exit status. */
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_sae(int argc, char **argv);
int cmd_probe(int argc, char **argv);

#endif
