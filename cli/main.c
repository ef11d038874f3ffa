/* popsteer: git-style dispatcher over the subcommands in cli/cmd_*.c. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"data", cmd_data, "inspect (stats) or generate (synth) interaction data"},
    {"train", cmd_train, "train SASRec (window or prefix layout, early stopping, resumable)"},
    {"eval", cmd_eval, "full-ranking evaluation: accuracy and popularity-bias metrics"},
    {"recommend", cmd_recommend, "top-k items for one user, with scores and titles"},
    {"explain", cmd_explain, "one user's SAE latents and an item's score split by latent, steered or not"},
    {"sae", cmd_sae, "train the TopK sparse autoencoder on SASRec user vectors"},
    {"probe", cmd_probe, "score every SAE latent by Cohen's d between popular and long-tail users"},
    {"sweep", cmd_sweep, "PopSteer's alpha x N grid against re-ranking baselines, with the report"},
    {"tune", cmd_tune, "the alpha (and N) that meets a Gini target or an NDCG loss budget on validation"},
    {"serve", cmd_serve, "HTTP server: live recommendations, the alpha knob, explanations and a page"},
    {"run", cmd_run, "the whole pipeline end to end: stats, SASRec, SAE, probe, sweep, report"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: popsteer <command> [options]\n\n"
                "PopSteer: see and control the popularity bias of a sequential recommender by steering\n"
                "the neurons of a sparse autoencoder.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(fp, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(fp, "\nRun 'popsteer <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("popsteer 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name))
            return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "popsteer: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
