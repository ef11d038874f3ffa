/* Item-title files: RecBole .item (typed header), MovieLens u.item ('|') and movies.dat ('::'),
 * CSV/TSV with a header. Only display depends on this, so unknown tokens are skipped. */
#include "popsteer/items.h"
#include "data/lines.h"
#include "popsteer/io.h"
#include "data/item_index.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int item_separator(const char *line, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (line[i] == ':' && line[i + 1] == ':')
            return PS_SEP_DOUBLE_COLON;
    if (memchr(line, '\t', len)) return '\t';
    if (memchr(line, '|', len)) return '|';
    return ',';
}

static int field_named(ps_field f, const char *name)
{
    size_t n = f.len;
    const char *colon = memchr(f.s, ':', f.len);
    if (colon)
        n = (size_t)(colon - f.s);
    return strlen(name) == n && strncasecmp(f.s, name, n) == 0;
}

/* Column of the title in a header row, or -1 if the row is not a header. */
static int title_column(const ps_fields *h)
{
    static const char *names[] = {"name", "title", "movie_title", "item_name", "artist", "product_title", NULL};
    int is_header = h->n > 0 && (field_named(h->f[0], "item_id") || field_named(h->f[0], "itemid") ||
                                 field_named(h->f[0], "id") || field_named(h->f[0], "movieid") ||
                                 field_named(h->f[0], "item"));
    if (!is_header)
        return -1;
    for (const char **n = names; *n; n++)
        for (int i = 1; i < h->n; i++)
            if (field_named(h->f[i], *n))
                return i;
    return h->n > 1 ? 1 : -1;
}

/* Item id of a token: 1..n_items, 0 when it is not an item of the dataset (unknown, or removed
 * by filtering: only display depends on titles, so such rows are skipped), -1 when out of memory. */
static int32_t lookup(ps_item_index *idx, ps_field f, ps_error *err)
{
    int32_t id = ps_item_index_lookup(idx, f.s, f.len, err);
    return id > idx->n_items ? 0 : id;
}

static int parse(ps_item_titles *t, ps_lines *lines, ps_item_index *idx, ps_error *err)
{
    const char *line;
    size_t len;
    ps_fields f = {0};
    int rc, col = 1, first = 1;
    while ((rc = ps_lines_next(lines, &line, &len, err)) == 1) {
        int sep = item_separator(line, len);
        if (ps_split(&f, line, len, sep, sep == ',', err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        if (first) {
            first = 0;
            int c = title_column(&f);
            if (c >= 0) {
                col = c;
                continue;
            }
        }
        if (f.n <= col)
            continue;
        int32_t id = lookup(idx, f.f[0], err);
        if (id < 0) {
            rc = PS_ERR;
            break;
        }
        if (id == 0 || t->title[id])
            continue;
        t->title[id] = strndup(f.f[col].s, f.f[col].len);
        if (!t->title[id]) {
            rc = ps_fail(err, "out of memory reading titles");
            break;
        }
        t->found++;
    }
    ps_fields_free(&f);
    return rc < 0 ? PS_ERR : PS_OK;
}

int ps_item_titles_load(ps_item_titles *t, const ps_dataset *ds, const char *path, ps_error *err)
{
    memset(t, 0, sizeof *t);
    char *data;
    size_t len;
    if (ps_read_file(path, (size_t)1 << 32, &data, &len, err) != PS_OK)
        return PS_ERR;
    t->n = ds->n_items + 1;
    t->title = ps_calloc((size_t)t->n, sizeof *t->title, "titles", err);
    ps_item_index idx;
    memset(&idx, 0, sizeof idx);
    int rc = t->title ? ps_item_index_init(&idx, ds, err) : PS_ERR;
    if (rc == PS_OK) {
        ps_lines lines;
        ps_lines_init(&lines, path, data, len, (size_t)1 << 20);
        rc = parse(t, &lines, &idx, err);
    }
    ps_item_index_free(&idx);
    free(data);
    if (rc != PS_OK)
        ps_item_titles_free(t);
    return rc;
}

void ps_item_titles_free(ps_item_titles *t)
{
    for (int32_t i = 0; t->title && i < t->n; i++)
        free(t->title[i]);
    free(t->title);
    memset(t, 0, sizeof *t);
}
