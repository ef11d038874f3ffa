/* Raw item token -> internal item id, for the side files that name items by their raw token
 * (item features, titles, concept groups). Internal to src/data. */
#ifndef POPSTEER_ITEM_INDEX_H
#define POPSTEER_ITEM_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/dataset.h"
#include "util/intern.h"

/* Intern ids: 1..n_items are the dataset's items (intern id == item id), n_items + 1 ..
 * n_known − 1 the raw-log tokens that filtering removed; anything interned later is unknown. */
typedef struct ps_item_index {
    ps_intern t;
    int32_t n_items, n_known;
} ps_item_index;

int ps_item_index_init(ps_item_index *x, const ps_dataset *ds, ps_error *err);
/* Safe on a zeroed or already-freed index. */
void ps_item_index_free(ps_item_index *x);
/* 1..n_items: an item of the dataset; n_items + 1 .. n_known − 1: a token filtering removed;
 * 0: unknown (or the padding token "[PAD]"); −1: out of memory (err set). */
int32_t ps_item_index_lookup(ps_item_index *x, const char *s, size_t len, ps_error *err);

#endif
