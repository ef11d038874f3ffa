/* Item groups for concept probes (group.h): a spec string -> membership of every item. */
#include "popsteer/group.h"
#include "data/item_index.h"
#include "data/lines.h"
#include "popsteer/features.h"
#include "popsteer/io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest genre name, item file path and the like that a message quotes. */
#define SHOWN 64
/* Side files are small; a bigger one is the wrong file. */
#define MAX_FILE_BYTES ((size_t)1 << 30)

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- genre:NAME ------------------------------------------------------------------------ */

/* u.genre next to the u.item file: "name|index" lines. Returns the index of name, or −1 with
 * err set (the message lists the file). */
static int genre_column(const char *item_file, const char *name, ps_error *err)
{
    const char *slash = strrchr(item_file, '/');
    char path[4096];
    int n = slash ? snprintf(path, sizeof path, "%.*s/u.genre", (int)(slash - item_file), item_file)
                  : snprintf(path, sizeof path, "u.genre");
    if (n < 0 || (size_t)n >= sizeof path)
        return ps_fail(err, "genre:%.*s: the item file's folder name is too long", SHOWN, name), -1;
    char *data;
    size_t len;
    if (ps_read_file(path, MAX_FILE_BYTES, &data, &len, err) != PS_OK)
        return ps_fail_wrap(err, "genre:%.*s needs the genre names in u.genre next to the item file %s", SHOWN,
                            name, item_file),
               -1;
    ps_lines lines;
    ps_lines_init(&lines, path, data, len, (size_t)1 << 16);
    ps_fields f = {0};
    const char *line;
    size_t ll;
    int rc, column = -1;
    while (column < 0 && (rc = ps_lines_next(&lines, &line, &ll, err)) == 1) {
        double idx;
        if (ps_split(&f, line, ll, '|', 0, err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        if (f.n != 2 || ps_field_double(f.f[1], &idx) != PS_OK || idx < 0 || idx != floor(idx) || idx > 1e6) {
            rc = ps_fail(err, "%s:%lld: expected 'name|index'", path, (long long)lines.lineno);
            break;
        }
        if (f.f[0].len == strlen(name) && strncasecmp(f.f[0].s, name, f.f[0].len) == 0)
            column = (int)idx;
    }
    ps_fields_free(&f);
    free(data);
    if (rc == PS_ERR)
        return -1;
    if (column < 0)
        return ps_fail(err, "genre:%.*s: no such genre in %s", SHOWN, name, path), -1;
    return column;
}

static int mark_genre(const ps_dataset *ds, const char *name, const char *item_file, uint8_t *in, ps_error *err)
{
    if (!item_file)
        return ps_fail(err, "genre:%.*s needs the MovieLens u.item file (--items FILE)", SHOWN, name);
    int column = genre_column(item_file, name, err);
    if (column < 0)
        return PS_ERR;
    ps_item_features f;
    if (ps_item_features_load(&f, item_file, ds, err) != PS_OK)
        return PS_ERR;
    int rc = PS_OK;
    if (f.format != PS_FEATURES_UITEM)
        rc = ps_fail(err, "genre:%.*s: %s is not a MovieLens u.item file ('id|title|date|video date|URL|flags')",
                     SHOWN, name, item_file);
    else if (column >= f.dim)
        rc = ps_fail(err, "genre:%.*s is column %d of u.genre, but %s has %d genre flags", SHOWN, name, column,
                     item_file, f.dim);
    for (int32_t i = 1; rc == PS_OK && i <= ds->n_items; i++)
        in[i] = f.v[(size_t)i * (size_t)f.dim + (size_t)column] != 0.0f;
    ps_item_features_free(&f);
    return rc;
}

/* ---- new:F, head, mid, tail ------------------------------------------------------------- */

static int mark_new(const ps_dataset *ds, const char *arg, uint8_t *in, ps_error *err)
{
    char *end;
    double frac = strtod(arg, &end);
    if (end == arg || *end || !(frac > 0 && frac < 1))
        return ps_fail(err, "new:%.*s: the fraction of the time span must be a number between 0 and 1, e.g. new:0.1",
                       SHOWN, arg);
    if (!ds->first_seen)
        return ps_fail(err, "new:%g: this dataset has no first-seen times", frac);
    for (int32_t i = 1; i <= ds->n_items; i++)
        in[i] = ds->first_seen[i] >= 1.0 - frac;
    return PS_OK;
}

static void mark_label(const ps_dataset *ds, int label, uint8_t *in)
{
    for (int32_t i = 1; i <= ds->n_items; i++)
        in[i] = ds->label[i] == label;
}

/* ---- a file of item tokens --------------------------------------------------------------- */

static int mark_tokens(const ps_dataset *ds, ps_lines *lines, ps_item_index *idx, uint8_t *in, int64_t *filtered,
                       ps_error *err)
{
    ps_fields f = {0};
    const char *line;
    size_t len;
    int rc;
    while ((rc = ps_lines_next(lines, &line, &len, err)) == 1) {
        if (line[0] == '#')
            continue;
        int sep = memchr(line, '\t', len) ? '\t' : memchr(line, ',', len) ? ',' : PS_SEP_BLANKS;
        if (ps_split(&f, line, len, sep, 0, err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        if (f.n < 1 || f.f[0].len == 0)
            continue;
        int32_t id = ps_item_index_lookup(idx, f.f[0].s, f.f[0].len, err);
        if (id < 0) {
            rc = PS_ERR;
            break;
        }
        if (id == 0) {
            rc = ps_fail(err, "%s:%lld: '%.*s' is not an item of the log", lines->path, (long long)lines->lineno,
                         f.f[0].len > SHOWN ? SHOWN : (int)f.f[0].len, f.f[0].s);
            break;
        }
        if (id > ds->n_items)
            (*filtered)++;
        else
            in[id] = 1;
    }
    ps_fields_free(&f);
    return rc == PS_ERR ? PS_ERR : PS_OK;
}

static int mark_file(const ps_dataset *ds, const char *path, uint8_t *in, int64_t *filtered, ps_error *err)
{
    char *data;
    size_t len;
    if (ps_read_file(path, MAX_FILE_BYTES, &data, &len, err) != PS_OK)
        return PS_ERR;
    ps_item_index idx;
    int rc = ps_item_index_init(&idx, ds, err);
    if (rc == PS_OK) {
        ps_lines lines;
        ps_lines_init(&lines, path, data, len, (size_t)1 << 20);
        rc = mark_tokens(ds, &lines, &idx, in, filtered, err);
    }
    ps_item_index_free(&idx);
    free(data);
    return rc;
}

/* ---- specs ------------------------------------------------------------------------------ */

/* in[1..n_items] = 1 for the items of spec, 0 for the others. */
static int mark_spec(const ps_dataset *ds, const char *spec, const char *item_file, uint8_t *in, int64_t *filtered,
                     ps_error *err)
{
    memset(in, 0, (size_t)ds->n_items + 1);
    if (starts_with(spec, "not:")) {
        if (mark_spec(ds, spec + 4, item_file, in, filtered, err) != PS_OK)
            return PS_ERR;
        for (int32_t i = 1; i <= ds->n_items; i++)
            in[i] = !in[i];
        return PS_OK;
    }
    if (starts_with(spec, "genre:"))
        return mark_genre(ds, spec + 6, item_file, in, err);
    if (starts_with(spec, "new:"))
        return mark_new(ds, spec + 4, in, err);
    if (!strcmp(spec, "head") || !strcmp(spec, "mid") || !strcmp(spec, "tail")) {
        mark_label(ds, spec[0] == 'h' ? 1 : spec[0] == 'm' ? 0 : -1, in);
        return PS_OK;
    }
    if (!*spec)
        return ps_fail(err, "an empty item group: give genre:NAME, new:F, head|mid|tail, not:SPEC or a file of item ids");
    return mark_file(ds, starts_with(spec, "file:") ? spec + 5 : spec, in, filtered, err);
}

static int set_sides(ps_item_group *g, const ps_dataset *ds, const uint8_t *in_s, const uint8_t *in_v,
                     const char *spec, const char *versus, ps_error *err)
{
    int32_t both = 0, example = 0;
    for (int32_t i = 1; i <= ds->n_items; i++) {
        int s = in_s[i], v = in_v ? in_v[i] : !in_s[i];
        if (s && v && !both++)
            example = i;
        g->side[i] = (int8_t)(s ? PS_GROUP_CONCEPT : v ? PS_GROUP_CONTRAST : 0);
        g->n_concept += s;
        g->n_contrast += !s && v;
    }
    if (both)
        return ps_fail(err, "item groups %s and %s share %d items (e.g. '%s'); they must be disjoint", spec, versus,
                       both, ps_strings_get(&ds->item_tokens, example));
    if (g->n_concept == 0)
        return ps_fail(err, "item group %s has no item of the dataset", spec);
    if (g->n_contrast == 0)
        return ps_fail(err, "the contrast set %s has no item of the dataset", versus ? versus : "(every other item)");
    snprintf(g->desc, sizeof g->desc, "%.*s (%d items) versus %.*s (%d items)", SHOWN * 2, spec, g->n_concept,
             SHOWN * 2, versus ? versus : "the other items", g->n_contrast);
    return PS_OK;
}

int ps_item_group_make(ps_item_group *g, const ps_dataset *ds, const char *spec, const char *versus,
                       const char *item_file, ps_error *err)
{
    memset(g, 0, sizeof *g);
    g->n_items = ds->n_items;
    g->side = ps_calloc((size_t)ds->n_items + 1, sizeof *g->side, "item group", err);
    uint8_t *in_s = g->side ? ps_calloc((size_t)ds->n_items + 1, 1, "item group", err) : NULL;
    uint8_t *in_v = in_s && versus ? ps_calloc((size_t)ds->n_items + 1, 1, "item group", err) : NULL;
    int rc = in_s && (in_v || !versus) ? PS_OK : PS_ERR;
    if (rc == PS_OK)
        rc = mark_spec(ds, spec, item_file, in_s, &g->tokens_filtered, err);
    if (rc == PS_OK && versus)
        rc = mark_spec(ds, versus, item_file, in_v, &g->tokens_filtered, err);
    if (rc == PS_OK)
        rc = set_sides(g, ds, in_s, in_v, spec, versus, err);
    free(in_s);
    free(in_v);
    if (rc != PS_OK)
        ps_item_group_free(g);
    return rc;
}

void ps_item_group_free(ps_item_group *g)
{
    free(g->side);
    memset(g, 0, sizeof *g);
}

double ps_item_group_share(const ps_item_group *g, const int64_t *exposure)
{
    int64_t in = 0, all = 0;
    for (int32_t i = 1; i <= g->n_items; i++) {
        all += exposure[i];
        if (g->side[i] == PS_GROUP_CONCEPT)
            in += exposure[i];
    }
    return all ? (double)in / (double)all : 0.0;
}
