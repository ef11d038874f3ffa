/* Item titles for display (`recommend`, probe tables): read from a RecBole .item file, a
 * MovieLens u.item / movies.dat, or any CSV/TSV whose first column is the item token and which
 * has a name/title column (else the second column). Items without a title get NULL. */
#ifndef POPSTEER_ITEMS_H
#define POPSTEER_ITEMS_H

#include "popsteer/dataset.h"

typedef struct ps_item_titles {
    char **title; /* [n_items + 1], NULL where unknown; index = internal item id */
    int32_t n;    /* n_items + 1 */
    int32_t found;
} ps_item_titles;

int ps_item_titles_load(ps_item_titles *t, const ps_dataset *ds, const char *path, ps_error *err);
void ps_item_titles_free(ps_item_titles *t);
static inline const char *ps_item_title(const ps_item_titles *t, int32_t item)
{
    return (t && t->title && item >= 0 && item < t->n) ? t->title[item] : NULL;
}

#endif
