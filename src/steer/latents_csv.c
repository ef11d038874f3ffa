/* The per-latent probe table (SPEC §4): atomic CSV writer, validating reader, summary. */
#include "popsteer/probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"

/* Numeric columns, in file order after "latent". */
#define N_NUMERIC 6
#define N_COLUMNS 8
static const char *const numeric_names[N_NUMERIC] = {"cohens_d",   "mean_pop",  "std_pop",
                                                      "mean_unpop", "std_unpop", "fire_rate"};

/* The table's columns as an array, so that writing and reading are one loop. */
static void table_columns(const ps_latent_table *t, double *cols[N_NUMERIC])
{
    cols[0] = t->d;
    cols[1] = t->mean_pop;
    cols[2] = t->std_pop;
    cols[3] = t->mean_unpop;
    cols[4] = t->std_unpop;
    cols[5] = t->fire_rate;
}

int ps_latent_table_alloc(ps_latent_table *t, int m, ps_error *err)
{
    memset(t, 0, sizeof *t);
    if (m < 1)
        return ps_fail(err, "a latent table needs at least one latent (got m = %d)", m);
    double **fields[N_NUMERIC] = {&t->d, &t->mean_pop, &t->std_pop, &t->mean_unpop, &t->std_unpop, &t->fire_rate};
    for (int c = 0; c < N_NUMERIC; c++) {
        *fields[c] = ps_calloc((size_t)m, sizeof(double), "latent table column", err);
        if (!*fields[c]) {
            ps_latent_table_free(t);
            return PS_ERR;
        }
    }
    t->m = m;
    return PS_OK;
}

void ps_latent_table_free(ps_latent_table *t)
{
    free(t->d);
    free(t->mean_pop);
    free(t->std_pop);
    free(t->mean_unpop);
    free(t->std_unpop);
    free(t->fire_rate);
    memset(t, 0, sizeof *t);
}

/* ---- writing ----------------------------------------------------------------------------- */

/* The same rules the reader enforces, checked before anything is written, so that a table
 * the reader would reject never reaches the disk. */
static int check_value(int j, int c, double v, const char *path, ps_error *err)
{
    if (!isfinite(v))
        return ps_fail(err, "%s: latent %d: %s is %g; refusing to write a non-finite value", path, j,
                       numeric_names[c], v);
    if ((c == 2 || c == 4) && v < 0)
        return ps_fail(err, "%s: latent %d: %s is negative (%g)", path, j, numeric_names[c], v);
    if (c == 5 && v > 1)
        return ps_fail(err, "%s: latent %d: fire_rate %g is above 1", path, j, v);
    if (c == 5 && v < 0)
        return ps_fail(err, "%s: latent %d: fire_rate %g is negative", path, j, v);
    return PS_OK;
}

static int check_items(const char *path, int m, const ps_latent_items *items, ps_error *err)
{
    if (!items || !items->top)
        return PS_OK;
    if (!items->tokens)
        return ps_fail(err, "%s: top items were given without item tokens", path);
    if (items->n_top < 0)
        return ps_fail(err, "%s: negative number of top items (%d)", path, items->n_top);
    for (int j = 0; j < m; j++)
        for (int s = 0; s < items->n_top; s++) {
            int32_t id = items->top[(size_t)j * (size_t)items->n_top + (size_t)s];
            if (id < 0 || id >= items->tokens->n)
                return ps_fail(err, "%s: latent %d: top item %d is %d, outside 1..%d", path, j, s, id,
                               items->tokens->n - 1);
        }
    return PS_OK;
}

static int check_table(const char *path, const ps_latent_table *t, const ps_latent_items *items, ps_error *err)
{
    if (t->m < 1)
        return ps_fail(err, "%s: the latent table is empty (m = %d)", path, t->m);
    double *cols[N_NUMERIC];
    table_columns(t, cols);
    for (int c = 0; c < N_NUMERIC; c++)
        if (!cols[c])
            return ps_fail(err, "%s: the latent table has no %s column", path, numeric_names[c]);
    for (int j = 0; j < t->m; j++)
        for (int c = 0; c < N_NUMERIC; c++)
            if (check_value(j, c, cols[c][j], path, err) != PS_OK)
                return PS_ERR;
    return check_items(path, t->m, items, err);
}

/* Text inside a quoted CSV field: '"' doubled; CR and LF become spaces so that each record
 * stays on one line (the reader, and `grep`, work line by line). */
static void put_escaped(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '"')
            fputs("\"\"", fp);
        else if (*s == '\r' || *s == '\n')
            fputc(' ', fp);
        else
            fputc(*s, fp);
    }
}

static void put_top_items(FILE *fp, int j, const ps_latent_items *items)
{
    fputc('"', fp);
    if (items && items->top) {
        int n = items->n_top < PS_LATENTS_CSV_TOP_ITEMS ? items->n_top : PS_LATENTS_CSV_TOP_ITEMS;
        const int32_t *top = items->top + (size_t)j * (size_t)items->n_top;
        for (int s = 0; s < n && top[s] != 0; s++) {
            if (s > 0)
                fputc('|', fp);
            put_escaped(fp, ps_strings_get(items->tokens, top[s]));
            const char *title = items->titles ? items->titles[top[s]] : NULL;
            if (title && *title) {
                fputc(':', fp);
                put_escaped(fp, title);
            }
        }
    }
    fputc('"', fp);
}

int ps_latents_csv_write(const char *path, const ps_latent_table *t, const ps_latent_items *items, ps_error *err)
{
    if (check_table(path, t, items, err) != PS_OK)
        return PS_ERR;
    ps_atomic_file af;
    if (ps_atomic_open(&af, path, err) != PS_OK)
        return PS_ERR;
    double *cols[N_NUMERIC];
    table_columns(t, cols);
    fputs(PS_LATENTS_CSV_HEADER "\n", af.fp);
    for (int j = 0; j < t->m; j++) {
        fprintf(af.fp, "%d", j);
        for (int c = 0; c < N_NUMERIC; c++)
            fprintf(af.fp, ",%.9g", cols[c][j]);
        fputc(',', af.fp);
        put_top_items(af.fp, j, items);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        int e = errno;
        ps_atomic_abort(&af);
        return ps_fail(err, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return ps_atomic_commit(&af, err);
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Lines are read in place, one after the other: no index of line pointers, which for a hostile
 * file of newlines would cost 8 bytes per input byte (8 GB for the 1 GB size limit). */

/* Cuts the line at *p off in place: NUL-terminates it without its "\n" or "\r\n" and moves *p
 * past it. buf has a NUL at end, so a last line without "\n" is handled too. */
static char *cut_line(char **p, char *end)
{
    char *line = *p;
    char *nl = memchr(line, '\n', (size_t)(end - line));
    char *stop = nl ? nl : end;
    if (stop > line && stop[-1] == '\r')
        stop[-1] = '\0';
    *stop = '\0';
    *p = nl ? nl + 1 : end;
    return line;
}

/* The shape of the text before anything is cut: the number of lines once trailing empty lines
 * are dropped (a final newline does not start another line), and the first empty line after the
 * header among those (0 if none). */
static void count_lines(const char *buf, size_t len, int64_t *n_lines, int64_t *first_empty)
{
    int64_t n = 0, last_nonempty = 0, empty = 0;
    for (const char *p = buf, *end = buf + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t l = (size_t)(stop - p);
        if (l && p[l - 1] == '\r')
            l--;
        n++;
        if (l && p[0] != '\0') /* a line starting with NUL reads as "" once cut */
            last_nonempty = n;
        else if (n > 1 && !empty)
            empty = n;
        p = nl ? nl + 1 : end;
    }
    *n_lines = last_nonempty;
    *first_empty = empty && empty < last_nonempty ? empty : 0;
}

/* Cuts the next comma-separated field off *s (NUL-terminating it); NULL when there is none. */
static char *next_field(char **s)
{
    if (!*s)
        return NULL;
    char *field = *s;
    char *comma = strchr(field, ',');
    if (comma) {
        *comma = '\0';
        *s = comma + 1;
    } else {
        *s = NULL;
    }
    return field;
}

static int parse_number(const char *path, int64_t line, int c, const char *field, double *out, ps_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(field, &end);
    if (end == field || *end != '\0')
        return ps_fail(err, "%s:%lld: %s '%.40s' is not a number", path, (long long)line, numeric_names[c], field);
    if (!isfinite(v))
        return ps_fail(err, "%s:%lld: %s is %s; the probe table must hold finite numbers", path, (long long)line,
                       numeric_names[c], field);
    /* values too small for a double underflow harmlessly; only the validity rules remain */
    if ((c == 2 || c == 4) && v < 0)
        return ps_fail(err, "%s:%lld: %s is negative (%s)", path, (long long)line, numeric_names[c], field);
    if (c == 5 && (v < 0 || v > 1))
        return ps_fail(err, "%s:%lld: fire_rate %s is outside 0..1", path, (long long)line, field);
    *out = v;
    return PS_OK;
}

static int parse_latent_index(const char *path, int64_t line, const char *field, int expected, ps_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(field, &end, 10);
    if (end == field || *end != '\0' || errno == ERANGE)
        return ps_fail(err, "%s:%lld: latent '%.40s' is not an integer", path, (long long)line, field);
    if (v != expected)
        return ps_fail(err, "%s:%lld: expected latent %d, found %ld (rows must list latents 0, 1, 2, ... in order)",
                       path, (long long)line, expected, v);
    return PS_OK;
}

static int parse_row(const char *path, int64_t line, char *text, int j, double *cols[N_NUMERIC], ps_error *err)
{
    char *rest = text;
    char *fields[N_COLUMNS - 1];
    for (int c = 0; c < N_COLUMNS - 1; c++) {
        fields[c] = next_field(&rest);
        /* the last column (top_items) must be present but is not interpreted: it may be
         * quoted and hold commas, so everything after the 7th comma belongs to it */
        if (!fields[c] || (c == N_COLUMNS - 2 && !rest))
            return ps_fail(err, "%s:%lld: expected %d columns (%s), found %d", path, (long long)line, N_COLUMNS,
                           PS_LATENTS_CSV_HEADER, fields[c] ? c + 1 : c);
    }
    if (parse_latent_index(path, line, fields[0], j, err) != PS_OK)
        return PS_ERR;
    for (int c = 0; c < N_NUMERIC; c++)
        if (parse_number(path, line, c, fields[c + 1], &cols[c][j], err) != PS_OK)
            return PS_ERR;
    return PS_OK;
}

/* Checks the header and the shape: returns the number of data rows in *rows. Trailing
 * empty lines are ignored; an empty line between rows is an error. header is the first line. */
static int check_shape(const char *path, const char *header, int64_t n_lines, int64_t first_empty, int expected_m,
                       int64_t *rows, ps_error *err)
{
    if (n_lines == 0)
        return ps_fail(err, "%s: the file is empty; expected the header '%s'", path, PS_LATENTS_CSV_HEADER);
    if (strncmp(header, "\xEF\xBB\xBF", 3) == 0)
        header += 3; /* UTF-8 BOM from a spreadsheet round trip */
    if (strcmp(header, PS_LATENTS_CSV_HEADER) != 0)
        return ps_fail(err, "%s:1: header is '%.200s', expected '%s'", path, header, PS_LATENTS_CSV_HEADER);
    if (first_empty)
        return ps_fail(err, "%s:%lld: empty line inside the table", path, (long long)first_empty);
    *rows = n_lines - 1;
    if (*rows == 0)
        return ps_fail(err, "%s: has a header but no rows", path);
    if (expected_m > 0 && *rows != expected_m)
        return ps_fail(err, "%s: has %lld rows but the SAE has %d latents", path, (long long)*rows, expected_m);
    if (*rows > 1000000000)
        return ps_fail(err, "%s: has %lld rows, more than any SAE this program builds", path, (long long)*rows);
    return PS_OK;
}

static int parse_table(const char *path, char *buf, size_t len, int expected_m, ps_latent_table *t, ps_error *err)
{
    int64_t n_lines, first_empty, rows = 0;
    count_lines(buf, len, &n_lines, &first_empty);
    char *p = buf, *end = buf + len;
    const char *header = n_lines ? cut_line(&p, end) : "";
    if (check_shape(path, header, n_lines, first_empty, expected_m, &rows, err) != PS_OK)
        return PS_ERR;
    if (ps_latent_table_alloc(t, (int)rows, err) != PS_OK)
        return PS_ERR;
    double *cols[N_NUMERIC];
    table_columns(t, cols);
    for (int j = 0; j < t->m; j++)
        if (parse_row(path, j + 2, cut_line(&p, end), j, cols, err) != PS_OK) {
            ps_latent_table_free(t);
            return PS_ERR;
        }
    return PS_OK;
}

/* The table of a 65,536-latent SAE with long titles is a few tens of MB at most. */
#define MAX_TABLE_BYTES ((size_t)1 << 30)

int ps_latents_csv_read(const char *path, int expected_m, ps_latent_table *t, ps_error *err)
{
    memset(t, 0, sizeof *t);
    char *buf;
    size_t len;
    if (ps_read_file(path, MAX_TABLE_BYTES, &buf, &len, err) != PS_OK)
        return PS_ERR;
    int rc = parse_table(path, buf, len, expected_m, t, err);
    free(buf);
    return rc;
}

/* ---- summary -------------------------------------------------------------------------------- */

/* Inserts latent j into list (kept strongest first, at most cap long) if it belongs there.
 * "Stronger" is larger |d|, then smaller index; insertion sort is fine for cap <= 32. */
static void insert_strongest(int32_t *list, int *n, int cap, const double *d, int32_t j)
{
    if (cap == 0)
        return;
    int pos = *n;
    while (pos > 0 && fabs(d[list[pos - 1]]) < fabs(d[j]))
        pos--; /* equal |d| keeps the earlier (smaller) index first */
    if (pos >= cap)
        return;
    int last = *n < cap ? *n : cap - 1;
    memmove(list + pos + 1, list + pos, (size_t)(last - pos) * sizeof *list);
    list[pos] = j;
    if (*n < cap)
        (*n)++;
}

int ps_latents_summary_make(const double *d, int m, int top, ps_latents_summary *s, ps_error *err)
{
    memset(s, 0, sizeof *s);
    if (m < 1)
        return ps_fail(err, "latent summary: no latents (m = %d)", m);
    if (top < 0 || top > PS_LATENTS_SUMMARY_MAX_TOP)
        return ps_fail(err, "latent summary: top = %d is outside 0..%d", top, PS_LATENTS_SUMMARY_MAX_TOP);
    static const double thresholds[3] = {PS_EFFECT_SMALL, PS_EFFECT_MEDIUM, PS_EFFECT_LARGE};
    s->m = m;
    for (int j = 0; j < m; j++) {
        if (isnan(d[j])) {
            memset(s, 0, sizeof *s);
            return ps_fail(err, "latent summary: latent %d has Cohen's d = NaN", j);
        }
        s->n_pos += d[j] > 0;
        s->n_neg += d[j] < 0;
        s->n_zero += d[j] == 0;
        for (int k = 0; k < 3; k++) {
            s->n_abs_gt[k] += fabs(d[j]) > thresholds[k];
            s->n_pos_gt[k] += d[j] > thresholds[k];
            s->n_neg_gt[k] += d[j] < -thresholds[k];
        }
        if (d[j] > 0)
            insert_strongest(s->top_pos, &s->n_top_pos, top, d, j);
        else if (d[j] < 0)
            insert_strongest(s->top_neg, &s->n_top_neg, top, d, j);
    }
    return PS_OK;
}
