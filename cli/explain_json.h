/* `popsteer explain --json`'s object, built once for the CLI and for `popsteer serve`'s
 * GET /v1/explain (which answers with the same object). */
#ifndef POPSTEER_CLI_EXPLAIN_JSON_H
#define POPSTEER_CLI_EXPLAIN_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cli.h"
#include "popsteer/explain.h"
#include "popsteer/items.h"

/* top items shown per latent: enough to recognise what a latent stands for */
#define N_TOP_ITEMS 5

/* what every printer needs */
typedef struct explain_view {
    const cli_common *c; /* NULL in the server */
    const char *user;
    int k;               /* length of the before/after lists */
    const ps_dataset *ds;
    const ps_item_titles *titles;
    const ps_sasrec *m;
    const ps_sae *sae;
    const ps_explain *e;
    const char *steering;
    int64_t history;
    int prefix_len;
} explain_view;

const char *explain_label_name(int8_t l); /* "head", "mid", "tail" */
/* The object (before/after: score split, latents with top items, contributions, top-k lists
 * before and after[k]); NULL with err set when an item ranking fails or memory runs out. */
cJSON *explain_json(const explain_view *v, const int32_t *before, const int32_t *after, ps_error *err);

#endif
