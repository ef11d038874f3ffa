/* The steering options of `eval`: --sae, --latents, --alpha, --neurons, and --rule with its
 * parameters. They turn the plain SASRec scorer into the SAE-reconstructed (alpha 0) or steered
 * one: the paper's rule (steer.h, the default), PopSteer-U (steer_rule.h) or PopSteer-I
 * (steer_decoder.h), each a method of its own. */
#ifndef POPSTEER_CLI_STEER_OPTS_H
#define POPSTEER_CLI_STEER_OPTS_H

#include "cli.h"
#include "popsteer/popsteer.h"
#include "popsteer/steer_ablation.h"
#include "popsteer/steer_rule.h"
#include "popsteer/train.h"

enum { OPT_SAE = 400, OPT_LATENTS, OPT_ALPHA, OPT_NEURONS, OPT_RULE, OPT_ALPHA_POP, OPT_ALPHA_UNPOP, OPT_GATE,
       OPT_SKIP_DEAD, OPT_KEEP_ERROR };

enum { CLI_RULE_PAPER = 0, CLI_RULE_PERUSER = 1, CLI_RULE_DECODER = 2 };

#define CLI_STEER_OPTIONS                                                                                \
    {"sae", required_argument, 0, OPT_SAE}, {"latents", required_argument, 0, OPT_LATENTS},             \
    {"alpha", required_argument, 0, OPT_ALPHA}, {"neurons", required_argument, 0, OPT_NEURONS},         \
    {"rule", required_argument, 0, OPT_RULE}, {"alpha-pop", required_argument, 0, OPT_ALPHA_POP},       \
    {"alpha-unpop", required_argument, 0, OPT_ALPHA_UNPOP}, {"gate", required_argument, 0, OPT_GATE},   \
    {"skip-dead", no_argument, 0, OPT_SKIP_DEAD}, {"keep-error", no_argument, 0, OPT_KEEP_ERROR}

#define CLI_STEER_HELP                                                                                   \
    "Steering options (PopSteer):\n"                                                                     \
    "  --sae FILE         score through the sparse autoencoder (alone: the SAE-reconstructed model)\n"  \
    "  --latents FILE     the probe's per-latent table (popsteer probe) to steer with\n"                \
    "  --alpha X          steering strength >= 0 (default 0: no shift)\n"                               \
    "  --neurons N        steer the N latents with the largest |Cohen's d| (default: all)\n"           \
    "  --rule R           paper (default: SPEC §5, one shift per latent for every user) or peruser\n"   \
    "                     (PopSteer-U, docs/steering.md: the same latents and weights, strength per\n" \
    "                     sign, each user's shift scaled by a gate in [0, 1] = where the user lies\n"  \
    "                     between the probe's popular-only and long-tail-only synthetic users)\n"    \
    "                     or decoder (PopSteer-I: h + alpha * nu * v/|v|, v = the N latents'\n"     \
    "                     decoder rows weighted as the paper's, popular ones negated; nu = the\n"    \
    "                     validation users' mean |h|; use a table of probe --side items and alpha\n" \
    "                     around 0.02-0.5)\n"                                                         \
    "  --alpha-pop X      peruser: strength on latents with d > 0 (default: --alpha)\n"               \
    "  --alpha-unpop X    peruser: strength on latents with d < 0 (default: --alpha)\n"               \
    "  --gate G           peruser: user (default) or none (every user the full shift)\n"              \
    "  --skip-dead        peruser: leave latents that never fire on real users out of the N\n"        \
    "  --keep-error       peruser: score h + (steered SAE output - unsteered SAE output): SASRec's\n"  \
    "                     own vector moved by the steering only (no reconstruction cost)\n"

typedef struct cli_steer {
    const char *sae_path, *latents_path;
    double alpha;
    long neurons; /* 0 = all */
    int alpha_set;
    int rule;                          /* CLI_RULE_PAPER or CLI_RULE_PERUSER */
    double alpha_pop, alpha_unpop;     /* peruser; -1 = --alpha */
    int gate, skip_dead, keep_error, rule_opts_set;
    ps_steer_rule srule;
    int has_rule;
    ps_rule_scorer ruled;
    ps_sae *sae;
    ps_steer_plan plan;
    int has_plan;
    ps_sasrec_scorer plain;
    ps_steer_scorer steered;
    float *delta;                      /* decoder: the added vector */
    double nu;                         /* decoder: the validation users' mean |h| */
    int n_steered;                     /* decoder: N */
    ps_ablation_scorer moved;          /* decoder: h + delta */
} cli_steer;

void cli_steer_init(cli_steer *s);
int cli_steer_option(const cli_common *c, cli_steer *s, int opt, const char *arg);
/* The options' combinations (--alpha needs --latents, ...): 0, or the usage error's status. */
int cli_steer_check(const cli_common *c, const cli_steer *s);
/* Checks (cli_steer_check), loads the SAE and latents table and builds the scorer for the model;
 * prints errors. ds: the dataset whose validation users set PopSteer-I's scale ν (--rule decoder). */
int cli_steer_scorer(const cli_common *c, cli_steer *s, const ps_sasrec *m, const ps_dataset *ds, int max_batch,
                     ps_scorer *out);
void cli_steer_free(cli_steer *s);
/* "SASRec", "SAE (alpha 0)", "PopSteer alpha 1.5, N 4096" or PopSteer-U with its parameters and
 * the mean gate over the users scored */
void cli_steer_describe(const cli_steer *s, char *buf, unsigned size);

#endif
