/* Shared pieces of the command-line front end: common options (--threads, --seed, --json,
 * --quiet, --help), dataset options, checked number parsing and error printing.
 * The CLI only parses options and calls the library; all work happens in libpopsteer. */
#ifndef POPSTEER_CLI_H
#define POPSTEER_CLI_H

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "popsteer/dataset.h"
#include "popsteer/dist.h"
#include "popsteer/features.h"

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
/* Joins the MPI job when started by mpirun (dist.h; otherwise a single rank) and keeps the other
 * ranks quiet; returns 0 or the error status to exit with. */
int cli_dist_init(cli_common *c, ps_dist *dist);

/* Checked parsing: prints "popsteer CMD: --opt: ..." and returns -1 on a bad value. */
int cli_parse_long(const cli_common *c, const char *opt, const char *arg, long min, long max, long *out);
int cli_parse_double(const cli_common *c, const char *opt, const char *arg, double min, double max, double *out);

/* Prints "popsteer CMD: message" to stderr; returns the exit status 1 (or 2 for usage errors). */
int cli_error(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_error(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Notes on stderr unless --quiet. */
void cli_note(const cli_common *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints o (taken over, may be NULL) as JSON on stdout; 0, or 1 with a message when it could not
 * be formatted (out of memory). */
int cli_print_json(const cli_common *c, cJSON *o);
/* Adds "gemm": the GEMM backends that ran (src/nn/gemm_backend.c), to the JSON of commands
 * that report their time. */
void cli_json_add_gemm(cJSON *o);

/* Loads the dataset named by --data, with a note about dropped users; prints errors. */
int cli_load_dataset(const cli_common *c, const cli_data *d, ps_dataset *ds);

/* Runs getopt_long over argv for a subcommand; unknown options are usage errors. */
int cli_getopt(const cli_common *c, int argc, char **argv, const struct option *opts);
/* What to do with the option getopt just returned, once the command's handlers have seen it
 * (r: 1 = one took it, 0 = none knows it, -1 = a bad value, already reported): 0 to go on, else
 * the exit status (2, with "unknown option" printed when none knew it). */
int cli_option_verdict(const cli_common *c, int r, char **argv);

/* --item-features FILE (eval, sweep, run): the table for ilad_features@k, with a note on how much
 * of the catalogue it covers. 0, or the exit status after printing the error. */
int cli_load_item_features(const cli_common *c, const char *path, const ps_dataset *ds, ps_item_features *f);

/* Subcommands: each returns the process exit status. */
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_sae(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* ---- the sweep options shared by `sweep` and `run` (defined in cmd_sweep.c) ---- */
#include "popsteer/sweep.h"

enum { OPT_ALPHAS = 500, OPT_SWEEP_NEURONS, OPT_METHODS, OPT_CANDIDATES_L, OPT_SWEEP_K, OPT_MAX_DROP, OPT_OBJECTIVE,
       OPT_BASE, OPT_TIGHT_DROP, OPT_GNUPLOT, OPT_BOOTSTRAP, OPT_CI_LEVEL, OPT_SWEEP_ITEM_FEATURES,
       OPT_ABLATIONS };

#define CLI_SWEEP_OPTIONS                                                                                \
    {"alphas", required_argument, 0, OPT_ALPHAS}, {"neurons", required_argument, 0, OPT_SWEEP_NEURONS},  \
    {"methods", required_argument, 0, OPT_METHODS}, {"candidates", required_argument, 0, OPT_CANDIDATES_L}, \
    {"k", required_argument, 0, OPT_SWEEP_K}, {"max-drop", required_argument, 0, OPT_MAX_DROP},           \
    {"objective", required_argument, 0, OPT_OBJECTIVE}, {"base", required_argument, 0, OPT_BASE},         \
    {"tight-drop", required_argument, 0, OPT_TIGHT_DROP}, {"gnuplot", required_argument, 0, OPT_GNUPLOT},   \
    {"bootstrap", required_argument, 0, OPT_BOOTSTRAP}, {"ci-level", required_argument, 0, OPT_CI_LEVEL},    \
    {"item-features", required_argument, 0, OPT_SWEEP_ITEM_FEATURES},                                   \
    {"ablations", required_argument, 0, OPT_ABLATIONS}

#define CLI_SWEEP_HELP                                                                                   \
    "Sweep options:\n"                                                                                   \
    "  --alphas LIST      steering strengths, comma-separated (default 0,0.5,1,1.5,2,3,4,5)\n"           \
    "  --neurons LIST     numbers N of steered latents; 'all' = every latent (default 256,1024,2048,all)\n" \
    "  --methods LIST     re-ranking baselines, each over its default grid (default\n"                  \
    "                     random,penalty,fair,xquad,cp,pmmf,pct; 'none' for none)\n"                     \
    "  --candidates L     re-rankers re-order SASRec's top L (default: each method's own, fair 500,\n"   \
    "                     pct 250, the others 100)\n"                                                    \
    "  --k N              list length (default 10)\n"                                                     \
    "  --max-drop X       selection: largest relative NDCG@k drop allowed (default 0.05, SPEC 7)\n"      \
    "  --objective O      selection: tradeoff (default: max Gini reduction - NDCG drop, relative) or\n"  \
    "                     max-gini (max relative Gini reduction)\n"                                       \
    "  --base B           what PopSteer's changes are measured against when selecting: sasrec (default)\n" \
    "                     or sae (the alpha=0 SAE-reconstructed model); re-rankers always use sasrec\n"  \
    "  --tight-drop X     NDCG@k loss of the report's 'largest Gini reduction' answer (default 0.01)\n"  \
    "  --bootstrap R      resamples of the users for the confidence intervals of every change against\n" \
    "                     plain SASRec (paired bootstrap; default 1000, 0 = no intervals)\n"            \
    "  --ci-level X       their confidence level (default 0.95)\n"                                     \
    "  --item-features FILE  item feature vectors (u.item genre flags, or `item v1 .. vD` rows) for\n"  \
    "                     ilad_features@k next to ilad@k (docs/metrics.md)\n"                          \
    "  --ablations on|off also sweep PopSteer's ablations over its grid (default on): ps-random (random\n" \
    "                     latents, the paper's weights), ps-unweighted (weights all alpha),\n"           \
    "                     ps-conditional (shift only users beyond the other group's mean + 2 sd),\n"     \
    "                     ps-direction (h + alpha * mean |h| * unit(mean h long-tail - mean h popular))\n" \
    "  --gnuplot PROG     the gnuplot program that draws the images (default: gnuplot from PATH)\n"    \
    "This project's rules are swept too (docs/steering.md): popsteer-u (per-user gate, N 1024 and all\n"  \
    "  x the positive alphas) and popsteer-i (item-side probe, decoder rows added to h; N 1024 and all\n" \
    "  x ps-direction's strengths 0.02-0.5)\n"

typedef struct cli_sweep {
    double alphas[PS_SWEEP_MAX_GRID];
    int neurons[PS_SWEEP_MAX_GRID];
    char *methods_buf;                    /* --methods, split in place */
    const char *methods[PS_SWEEP_MAX_GRID];
    ps_sweep_options so;
    ps_select_rule rule;
    ps_sweep_base base;
    double tight_drop;
    const char *gnuplot;
    const char *item_features;            /* --item-features, or NULL */
} cli_sweep;

void cli_sweep_init(cli_sweep *s);
void cli_sweep_free(cli_sweep *s);
int cli_sweep_option(const cli_common *c, cli_sweep *s, int opt, const char *arg);
/* Fails (printing why, returning the exit status) when gnuplot cannot draw the report's images:
 * checked before any long stage runs. */
int cli_sweep_preflight(const cli_common *c, const cli_sweep *s);
/* Runs the sweep (progress on stderr), writes the report into dir and prints its summary on stdout
 * (or JSON with --json). info->stages may end with a "sweep" entry that this fills in. Returns
 * the exit status. */
int cli_sweep_report(const cli_common *c, cli_sweep *s, const ps_sasrec *m, const ps_sae *sae,
                     const ps_latent_table *latents, const ps_dataset *ds, const char *dir, ps_report_info *info,
                     ps_report_stage *sweep_stage);

#endif
