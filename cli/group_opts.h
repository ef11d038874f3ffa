/* The concept-group options of `probe` and `eval` (group.h): --group SPEC and --versus SPEC;
 * genre: specs read the MovieLens u.item file given with --items. */
#ifndef POPSTEER_CLI_GROUP_OPTS_H
#define POPSTEER_CLI_GROUP_OPTS_H

#include "cli.h"
#include "popsteer/group.h"

enum { OPT_GROUP = 450, OPT_VERSUS };

#define CLI_GROUP_OPTIONS {"group", required_argument, 0, OPT_GROUP}, {"versus", required_argument, 0, OPT_VERSUS}

#define CLI_GROUP_SPECS_HELP                                                                             \
    "                     SPEC: genre:NAME (MovieLens u.item given with --items, names from the\n"     \
    "                     u.genre beside it), new:F (items first seen in the last fraction F of\n"      \
    "                     the log's time), head, mid, tail, a file of raw item ids (one per line),\n"   \
    "                     or not:SPEC (every other item)\n"                                              \
    "  --versus SPEC      the contrast set (default: every item not in the group)\n"

typedef struct cli_group {
    const char *spec, *versus;
} cli_group;

/* 1 when opt was a group option (stored), 0 when not. */
int cli_group_option(cli_group *g, int opt, const char *arg);
/* --versus without --group is a usage error; returns its status, or 0. */
int cli_group_check(const cli_common *c, const cli_group *g);
/* Builds the group (when --group was given) and notes its size; prints errors. */
int cli_group_make(const cli_common *c, const cli_group *g, const ps_dataset *ds, const char *items,
                   ps_item_group *out);

#endif
