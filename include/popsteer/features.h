/* Item feature vectors for ilad_features@k (metrics.h): one row of numbers per item, by raw
 * item token, read into a table indexed by internal item id.
 *
 * Two formats, told apart by the first data line:
 *  - MovieLens 100K u.item: '|'-separated `id|title|release date|video release date|URL|flags...`
 *    (a line containing '|'); the features are the fields after the URL (the 19 genre flags).
 *  - generic: `raw_item_id v1 v2 ... vD`, fields separated by tabs, spaces or commas (a line with
 *    a comma is split at commas, blanks around a value are ignored; otherwise at runs of blanks).
 *    The first line is a header, and skipped, when its first field is not an item token of the
 *    log and some other field is not a number (so a data row with a typo is an error, not a
 *    header).
 * In both, lines starting with '#' and blank lines are ignored; every data row must have as many
 * values as the first one; values are finite numbers.
 *
 * Item tokens: a row for an item of the dataset fills its row of the table. A row for an item
 * that was in the raw log but removed by filtering (k-core, rating threshold, short users) is
 * skipped and counted — ML-100K's u.item lists every movie, the 5-core drops some. Any other
 * token is an error naming the line. Items of the dataset without a row keep a zero vector,
 * which ILAD treats as orthogonal to everything (distance 1 to every item).
 *
 * Errors start with "FILE:LINE: " and say what is wrong: unknown item, wrong number of values,
 * a value that is not a finite number, a repeated item, no data rows. */
#ifndef POPSTEER_FEATURES_H
#define POPSTEER_FEATURES_H

#include <stdint.h>

#include "popsteer/dataset.h"

typedef enum ps_features_format { PS_FEATURES_UITEM = 1, PS_FEATURES_GENERIC = 2 } ps_features_format;

/* Feature rows are capped at this many values (a guard against reading a wrong file). */
#define PS_FEATURES_MAX_DIM 65536

typedef struct ps_item_features {
    float *v;                  /* [n_items + 1][dim] by internal item id; row 0 (pad) and items without a row are 0 */
    int dim;
    int32_t n_items;
    ps_features_format format;
    int64_t rows;              /* data rows in the file */
    int32_t items_with_row;    /* items of the dataset that got a row */
    int64_t rows_filtered;     /* rows for raw-log items removed by filtering (skipped) */
} ps_item_features;

/* Reads path against the dataset's item tokens (ds->item_tokens, ds->dropped_item_tokens). */
int ps_item_features_load(ps_item_features *f, const char *path, const ps_dataset *ds, ps_error *err);
/* Safe on a zeroed or already-freed struct. */
void ps_item_features_free(ps_item_features *f);

#endif
