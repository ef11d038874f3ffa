/* Raw item token index (item_index.h). */
#include "data/item_index.h"

#include <string.h>

static int add_tokens(ps_item_index *x, const ps_strings *s, int32_t first, ps_error *err)
{
    for (int32_t i = first; i < s->n; i++) {
        const char *tok = ps_strings_get(s, i);
        int32_t id = ps_intern_get(&x->t, tok, strlen(tok), err);
        if (id < 0)
            return PS_ERR;
        if (id != x->t.n - 1)
            return ps_fail(err, "item token table is inconsistent (token '%s' twice)", tok);
    }
    return PS_OK;
}

int ps_item_index_init(ps_item_index *x, const ps_dataset *ds, ps_error *err)
{
    memset(x, 0, sizeof *x);
    if (ps_intern_init(&x->t, err) != PS_OK)
        return PS_ERR;
    /* item_tokens[0] is "[PAD]": interned as id 0 so that ids match, and rejected by lookup */
    if (add_tokens(x, &ds->item_tokens, 0, err) != PS_OK ||
        add_tokens(x, &ds->dropped_item_tokens, 1, err) != PS_OK) {
        ps_item_index_free(x);
        return PS_ERR;
    }
    x->n_items = ds->n_items;
    x->n_known = x->t.n;
    return PS_OK;
}

void ps_item_index_free(ps_item_index *x)
{
    ps_intern_free(&x->t);
    memset(x, 0, sizeof *x);
}

int32_t ps_item_index_lookup(ps_item_index *x, const char *s, size_t len, ps_error *err)
{
    int32_t id = ps_intern_get(&x->t, s, len, err);
    if (id < 0)
        return -1;
    return id >= x->n_known ? 0 : id;
}
