/* Item feature files (features.h): MovieLens u.item genre flags or a generic table of numbers,
 * one row per raw item token, checked strictly because a silently misread row would change a
 * metric without any sign. */
#include "popsteer/features.h"
#include "data/lines.h"
#include "popsteer/io.h"
#include "data/item_index.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* u.item: id, title, release date, video release date, URL, then the flags. */
#define UITEM_META_FIELDS 5
/* Item tokens quoted in messages are cut to this many bytes. */
#define TOKEN_SHOWN 64

/* The token index, and the line of each known token's row (0 = none yet) to name repeats. */
typedef struct token_index {
    ps_item_index x;
    int64_t *first_line; /* [x.n_known] */
} token_index;

static int index_init(token_index *x, const ps_dataset *ds, ps_error *err)
{
    x->first_line = NULL;
    if (ps_item_index_init(&x->x, ds, err) != PS_OK)
        return PS_ERR;
    x->first_line = ps_calloc((size_t)x->x.n_known, sizeof *x->first_line, "feature row index", err);
    return x->first_line ? PS_OK : PS_ERR;
}

static void index_free(token_index *x)
{
    ps_item_index_free(&x->x);
    free(x->first_line);
    x->first_line = NULL;
}

/* Index of a token: 1..n_known - 1, 0 if unknown (or the padding token), -1 when out of memory. */
static int32_t index_lookup(token_index *x, ps_field f, ps_error *err)
{
    return ps_item_index_lookup(&x->x, f.s, f.len, err);
}

static ps_field trim(ps_field f)
{
    while (f.len && (f.s[0] == ' ' || f.s[0] == '\t'))
        f.s++, f.len--;
    while (f.len && (f.s[f.len - 1] == ' ' || f.s[f.len - 1] == '\t'))
        f.len--;
    return f;
}

static int shown(ps_field f)
{
    return f.len > TOKEN_SHOWN ? TOKEN_SHOWN : (int)f.len;
}

/* ---------------------------------------------------------------- one file */

typedef struct reader {
    const char *path;
    ps_lines lines;
    ps_fields fields;
    token_index idx;
    ps_item_features *out;
    int values_from;     /* first value field: 1 (generic) or UITEM_META_FIELDS (u.item) */
    int64_t first_row_line;
} reader;

/* Splits a line of the file's format; the id field and the values come back trimmed. */
static int split_line(reader *r, const char *line, size_t len, ps_error *err)
{
    if (r->out->format == PS_FEATURES_UITEM)
        return ps_split(&r->fields, line, len, '|', 0, err);
    if (memchr(line, ',', len)) {
        if (ps_split(&r->fields, line, len, ',', 0, err) != PS_OK)
            return PS_ERR;
        for (int i = 0; i < r->fields.n; i++)
            r->fields.f[i] = trim(r->fields.f[i]);
        return PS_OK;
    }
    return ps_split(&r->fields, line, len, PS_SEP_BLANKS, 0, err);
}

static int all_values_numbers(const reader *r)
{
    double v;
    for (int i = r->values_from; i < r->fields.n; i++)
        if (ps_field_double(r->fields.f[i], &v) != PS_OK)
            return 0;
    return 1;
}

/* The first line's format, and whether it is a header (features.h). */
static int first_line(reader *r, const char *line, size_t len, int *is_header, ps_error *err)
{
    int uitem = memchr(line, '|', len) != NULL;
    r->out->format = uitem ? PS_FEATURES_UITEM : PS_FEATURES_GENERIC;
    r->values_from = uitem ? UITEM_META_FIELDS : 1;
    if (split_line(r, line, len, err) != PS_OK)
        return PS_ERR;
    int32_t id = r->fields.n ? index_lookup(&r->idx, r->fields.f[0], err) : 0;
    if (id < 0)
        return PS_ERR;
    *is_header = id == 0 && !all_values_numbers(r);
    return PS_OK;
}

/* The values of the current row: count checked against the first row, each a finite float. */
static int row_values(reader *r, float *dst, ps_error *err)
{
    int n = r->fields.n - r->values_from;
    if (n != r->out->dim)
        return ps_fail(err, "%s:%lld: %d values, but the first row (line %lld) has %d", r->path,
                       (long long)r->lines.lineno, n < 0 ? 0 : n, (long long)r->first_row_line, r->out->dim);
    for (int i = 0; i < n; i++) {
        ps_field f = r->fields.f[r->values_from + i];
        double v;
        if (ps_field_double(f, &v) != PS_OK || !(v >= -FLT_MAX && v <= FLT_MAX))
            return ps_fail(err, "%s:%lld: value %d ('%.*s') is not a finite number", r->path,
                           (long long)r->lines.lineno, i + 1, shown(f), f.s);
        if (dst)
            dst[i] = (float)v;
    }
    return PS_OK;
}

/* The first data row fixes the width and so the table's size. */
static int start_table(reader *r, ps_error *err)
{
    ps_item_features *o = r->out;
    int n = r->fields.n - r->values_from;
    if (o->format == PS_FEATURES_UITEM && n < 1)
        return ps_fail(err, "%s:%lld: expected at least %d '|'-separated fields (id|title|release date|video "
                            "release date|URL|flags...), got %d", r->path, (long long)r->lines.lineno,
                       UITEM_META_FIELDS + 1, r->fields.n);
    if (n < 1)
        return ps_fail(err, "%s:%lld: an item id but no values", r->path, (long long)r->lines.lineno);
    if (n > PS_FEATURES_MAX_DIM)
        return ps_fail(err, "%s:%lld: %d values, more than the limit of %d", r->path, (long long)r->lines.lineno,
                       n, PS_FEATURES_MAX_DIM);
    o->dim = n;
    r->first_row_line = r->lines.lineno;
    o->v = ps_calloc((size_t)o->n_items + 1, (size_t)n * sizeof *o->v, "item features", err);
    return o->v ? PS_OK : PS_ERR;
}

static int data_row(reader *r, ps_error *err)
{
    ps_item_features *o = r->out;
    long long line = (long long)r->lines.lineno;
    if (r->fields.n == 0)
        return PS_OK;
    if (!o->v && start_table(r, err) != PS_OK)
        return PS_ERR;
    ps_field tok = r->fields.f[0];
    int32_t id = index_lookup(&r->idx, tok, err);
    if (id < 0)
        return PS_ERR;
    if (id == 0)
        return ps_fail(err, "%s:%lld: item '%.*s' is not in the interaction log", r->path, line, shown(tok), tok.s);
    if (r->idx.first_line[id])
        return ps_fail(err, "%s:%lld: item '%.*s' is repeated (first on line %lld)", r->path, line, shown(tok),
                       tok.s, (long long)r->idx.first_line[id]);
    r->idx.first_line[id] = r->lines.lineno;
    o->rows++;
    int kept = id <= r->idx.x.n_items;
    if (row_values(r, kept ? o->v + (size_t)id * (size_t)o->dim : NULL, err) != PS_OK)
        return PS_ERR;
    o->items_with_row += kept;
    o->rows_filtered += !kept;
    return PS_OK;
}

static int read_rows(reader *r, ps_error *err)
{
    const char *line;
    size_t len;
    int rc, first = 1;
    while ((rc = ps_lines_next(&r->lines, &line, &len, err)) == 1) {
        if (line[0] == '#')
            continue;
        if (first) {
            int header;
            first = 0;
            if (first_line(r, line, len, &header, err) != PS_OK)
                return PS_ERR;
            if (header)
                continue;
        } else if (split_line(r, line, len, err) != PS_OK) {
            return PS_ERR;
        }
        if (data_row(r, err) != PS_OK)
            return PS_ERR;
    }
    if (rc < 0)
        return PS_ERR;
    if (r->out->rows == 0)
        return ps_fail(err, "%s: no item rows (the file is empty or has only comments and a header)", r->path);
    return PS_OK;
}

int ps_item_features_load(ps_item_features *f, const char *path, const ps_dataset *ds, ps_error *err)
{
    memset(f, 0, sizeof *f);
    f->n_items = ds->n_items;
    reader r;
    memset(&r, 0, sizeof r);
    r.path = path;
    r.out = f;
    char *data = NULL;
    size_t len = 0;
    int rc = ps_read_file(path, (size_t)1 << 32, &data, &len, err);
    if (rc == PS_OK)
        rc = index_init(&r.idx, ds, err);
    if (rc == PS_OK) {
        ps_lines_init(&r.lines, path, data, len, (size_t)1 << 20);
        rc = read_rows(&r, err);
    }
    index_free(&r.idx);
    ps_fields_free(&r.fields);
    free(data);
    if (rc != PS_OK)
        ps_item_features_free(f);
    return rc;
}

void ps_item_features_free(ps_item_features *f)
{
    free(f->v);
    memset(f, 0, sizeof *f);
}
