/* Item groups for concept probes (issue 14 §3): the probe of SPEC §4 contrasts popular-only with
 * long-tail-only synthetic users; a concept probe contrasts users drawn from any item set S (a
 * genre, the newest items, a list of ids) with users drawn from another set — by default every
 * other item of the dataset.
 *
 * Roles. S takes the long-tail group's place and the contrast set the popular group's, so that
 * everything downstream keeps its meaning unchanged: in the probe's table a latent with d < 0
 * leans towards S, and steering with α > 0 (which always moves towards the d < 0 side) moves
 * recommendations towards S. To move them away from S, probe with not:S (S becomes the
 * contrast set). In the CSV the *_pop columns then describe the contrast set and the *_unpop
 * columns S.
 *
 * Specs (group and versus):
 *   genre:NAME   items flagged NAME in a MovieLens u.item file (the item file; the genre names
 *                come from u.genre in the same folder, matched without regard to case)
 *   new:F        items first seen in the last fraction F (0 < F < 1) of the log's time span
 *                (ds->first_seen; the file order when the log has no timestamps)
 *   head | mid | tail   the popularity labels (tail versus head is the paper's probe)
 *   file:PATH, or any other PATH   raw item tokens, one per line (the first field of a line
 *                split at tabs, commas or blanks; '#' comments and blank lines ignored).
 *                Tokens of raw-log items that filtering removed are skipped and counted; any
 *                other unknown token is an error naming the line.
 *   not:SPEC     the items of the dataset outside SPEC
 * Errors name the spec, and the file and line where one is read. */
#ifndef POPSTEER_GROUP_H
#define POPSTEER_GROUP_H

#include <stdint.h>

#include "popsteer/dataset.h"

/* side values */
#define PS_GROUP_CONCEPT (-1)  /* in S: the long-tail role */
#define PS_GROUP_CONTRAST (+1) /* in the contrast set: the popular role */

typedef struct ps_item_group {
    int8_t *side;          /* [n_items + 1]: PS_GROUP_CONCEPT, PS_GROUP_CONTRAST or 0 (neither); side[0] = 0 */
    int32_t n_items;
    int32_t n_concept, n_contrast;
    int64_t tokens_filtered; /* file specs: tokens of items that filtering removed (skipped) */
    char desc[400];        /* "genre:Horror (89 items) versus the other items (1593 items)"; specs cut at 128 bytes */
} ps_item_group;

/* Builds the group: spec names S, versus the contrast set (NULL = every item of the dataset not
 * in S). item_file is the MovieLens u.item that genre: specs read (NULL: genre: is an error
 * saying so). Fails when S or the contrast set is empty, or when they share items (the message
 * names how many and one of them). On failure *g is empty (safe to free). */
int ps_item_group_make(ps_item_group *g, const ps_dataset *ds, const char *spec, const char *versus,
                       const char *item_file, ps_error *err);
/* Safe on a zeroed or already-freed group. */
void ps_item_group_free(ps_item_group *g);

/* Share of the slots of all top-k lists that hold items of S, from exposure counts c_i (in how
 * many lists item i appears, [n_items + 1], ps_eval_options.exposure_out): Σ_{i∈S} c_i / Σ_i c_i.
 * 0 when the lists are empty. */
double ps_item_group_share(const ps_item_group *g, const int64_t *exposure);

#endif
