/* The steering options shared by `eval` and `recommend`: --sae, --latents, --alpha, --neurons.
 * They turn the plain SASRec scorer into the SAE-reconstructed (alpha 0) or steered one. */
#ifndef POPSTEER_CLI_STEER_OPTS_H
#define POPSTEER_CLI_STEER_OPTS_H

#include "cli.h"
#include "popsteer/popsteer.h"
#include "popsteer/train.h"

enum { OPT_SAE = 400, OPT_LATENTS, OPT_ALPHA, OPT_NEURONS };

#define CLI_STEER_OPTIONS                                                                                \
    {"sae", required_argument, 0, OPT_SAE}, {"latents", required_argument, 0, OPT_LATENTS},             \
    {"alpha", required_argument, 0, OPT_ALPHA}, {"neurons", required_argument, 0, OPT_NEURONS}

#define CLI_STEER_HELP                                                                                   \
    "Steering options (PopSteer):\n"                                                                     \
    "  --sae FILE         score through the sparse autoencoder (alone: the SAE-reconstructed model)\n"  \
    "  --latents FILE     the probe's per-latent table (popsteer probe) to steer with\n"                \
    "  --alpha X          steering strength >= 0 (default 0: no shift)\n"                               \
    "  --neurons N        steer the N latents with the largest |Cohen's d| (default: all)\n"

typedef struct cli_steer {
    const char *sae_path, *latents_path;
    double alpha;
    long neurons; /* 0 = all */
    int alpha_set;
    ps_sae *sae;
    ps_steer_plan plan;
    int has_plan;
    ps_sasrec_scorer plain;
    ps_steer_scorer steered;
} cli_steer;

void cli_steer_init(cli_steer *s);
int cli_steer_option(const cli_common *c, cli_steer *s, int opt, const char *arg);
/* Loads the SAE and latents table and builds the scorer for the model; prints errors. */
int cli_steer_scorer(const cli_common *c, cli_steer *s, const ps_sasrec *m, int max_batch, ps_scorer *out);
void cli_steer_free(cli_steer *s);
/* "SASRec", "SAE (alpha 0)" or "PopSteer alpha 1.5, N 4096" */
void cli_steer_describe(const cli_steer *s, char *buf, unsigned size);

#endif
