/* Parsers for the supported interaction formats (SPEC §1) and format detection.
 * Every error names the file and line and says what was expected. */
#include "data/log.h"
#include "data/lines.h"
#include "popsteer/io.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Files above this size are refused up front instead of failing deep inside malloc. */
#define MAX_INPUT_BYTES ((size_t)16 << 30)

enum { COL_NONE = -1 };

/* Where the fields of one row live, and how the row is split. */
typedef struct row_layout {
    int sep, quotes;
    int user, item, time, rating; /* field indices or COL_NONE */
    int min_fields;               /* a row with fewer fields is an error */
    int header;                   /* the first line is a header */
} row_layout;

const char *ps_format_name(ps_format f)
{
    switch (f) {
    case PS_FORMAT_ATOMIC: return "atomic";
    case PS_FORMAT_DAT: return "dat";
    case PS_FORMAT_UDATA: return "udata";
    case PS_FORMAT_SEQUENCE: return "sequence";
    case PS_FORMAT_CSV: return "csv";
    default: return "auto";
    }
}

int ps_format_parse(const char *name)
{
    static const char *names[] = {"auto", "atomic", "dat", "udata", "sequence", "csv"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* ---------- building the log ---------- */

static int log_reserve(ps_log *log, int with_time, int with_rating, ps_error *err)
{
    if (log->n < log->cap)
        return PS_OK;
    /* A small start: doubling reaches a million rows in a few cheap steps, while every small
     * file (tests, fuzzing: thousands of loads a second) avoids a 1.3 MB allocation. */
    int64_t cap = log->cap ? log->cap * 2 : 1024;
    int32_t *u = ps_realloc(log->user, (size_t)cap, sizeof *u, "interaction rows", err);
    if (!u)
        return PS_ERR;
    log->user = u;
    int32_t *it = ps_realloc(log->item, (size_t)cap, sizeof *it, "interaction rows", err);
    if (!it)
        return PS_ERR;
    log->item = it;
    if (with_time) {
        double *t = ps_realloc(log->time, (size_t)cap, sizeof *t, "timestamps", err);
        if (!t)
            return PS_ERR;
        log->time = t;
    }
    if (with_rating) {
        float *r = ps_realloc(log->rating, (size_t)cap, sizeof *r, "ratings", err);
        if (!r)
            return PS_ERR;
        log->rating = r;
    }
    log->cap = cap;
    return PS_OK;
}

static int add_row(ps_log *log, ps_field user, ps_field item, const double *time, const float *rating, ps_error *err)
{
    if (log_reserve(log, time != NULL, rating != NULL, err) != PS_OK)
        return PS_ERR;
    int32_t u = ps_intern_get(&log->users, user.s, user.len, err);
    int32_t i = u < 0 ? -1 : ps_intern_get(&log->items, item.s, item.len, err);
    if (i < 0)
        return PS_ERR;
    log->user[log->n] = u;
    log->item[log->n] = i;
    if (time)
        log->time[log->n] = *time;
    if (rating)
        log->rating[log->n] = *rating;
    log->n++;
    return PS_OK;
}

/* ---------- headers ---------- */

static int name_is(ps_field f, const char *const *names)
{
    /* RecBole atomic names carry ":type"; compare only the name part, case-insensitively. */
    size_t len = f.len;
    const char *colon = memchr(f.s, ':', f.len);
    if (colon)
        len = (size_t)(colon - f.s);
    for (; *names; names++)
        if (strlen(*names) == len && strncasecmp(f.s, *names, len) == 0)
            return 1;
    return 0;
}

static int find_column(const ps_fields *h, const char *wanted, const char *const *guesses)
{
    const char *one[] = {wanted, NULL};
    const char *const *names = wanted ? one : guesses;
    for (int i = 0; i < h->n; i++)
        if (name_is(h->f[i], names))
            return i;
    return COL_NONE;
}

static const char *const USER_NAMES[] = {"user_id", "userid", "user", "uid", "reviewerid", "customer_id", "visitorid", NULL};
static const char *const ITEM_NAMES[] = {"item_id", "itemid", "item", "iid", "movieid", "movie_id", "artistid",
                                         "artist_id", "product_id", "productid", "asin", "business_id", "track_id", NULL};
static const char *const TIME_NAMES[] = {"timestamp", "time", "ts", "unix_timestamp", "datetime", NULL};
static const char *const RATING_NAMES[] = {"rating", "ratings", "score", "stars", NULL};

static void describe_header(const ps_fields *h, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < h->n && used + 8 < size; i++) {
        int w = snprintf(buf + used, size - used, "%s'%.*s'", i ? ", " : "", (int)(h->f[i].len > 40 ? 40 : h->f[i].len), h->f[i].s);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static int layout_from_header(row_layout *lay, const ps_fields *h, const ps_load_options *opt, const char *path,
                              ps_error *err)
{
    char cols[400];
    describe_header(h, cols, sizeof cols);
    lay->user = find_column(h, opt->user_col, USER_NAMES);
    lay->item = find_column(h, opt->item_col, ITEM_NAMES);
    if (lay->user == COL_NONE || lay->item == COL_NONE)
        return ps_fail(err, "%s:1: header has no %s column (columns: %s); name it with --user-col/--item-col",
                       path, lay->user == COL_NONE ? "user" : "item", cols);
    lay->time = find_column(h, opt->time_col, TIME_NAMES);
    if (opt->time_col && lay->time == COL_NONE)
        return ps_fail(err, "%s:1: header has no column '%s' (columns: %s)", path, opt->time_col, cols);
    lay->rating = find_column(h, opt->rating_col, RATING_NAMES);
    if (opt->rating_col && lay->rating == COL_NONE)
        return ps_fail(err, "%s:1: header has no column '%s' (columns: %s)", path, opt->rating_col, cols);
    int max = lay->user;
    if (lay->item > max) max = lay->item;
    if (lay->time > max) max = lay->time;
    if (lay->rating > max) max = lay->rating;
    lay->min_fields = max + 1;
    lay->header = 1;
    return PS_OK;
}

/* ---------- detection ---------- */

static int field_is_number(ps_field f)
{
    double v;
    return ps_field_double(f, &v) == PS_OK;
}

static int all_numeric(const ps_fields *f)
{
    for (int i = 0; i < f->n; i++)
        if (!field_is_number(f->f[i]))
            return 0;
    return 1;
}

static int contains(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, needle, n) == 0)
            return 1;
    return 0;
}

static int header_separator(const char *line, size_t len)
{
    if (memchr(line, '\t', len)) return '\t';
    if (memchr(line, ',', len)) return ',';
    if (memchr(line, ';', len)) return ';';
    if (memchr(line, '|', len)) return '|';
    return PS_SEP_BLANKS;
}

static int detect_format(const char *line, size_t len, ps_fields *tmp, const char *path, ps_format *out, ps_error *err)
{
    if (contains(line, len, ":token") || contains(line, len, ":float")) {
        *out = PS_FORMAT_ATOMIC;
        return PS_OK;
    }
    if (contains(line, len, "::")) {
        *out = PS_FORMAT_DAT;
        return PS_OK;
    }
    int sep = header_separator(line, len);
    if (ps_split(tmp, line, len, sep, 1, err) != PS_OK)
        return PS_ERR;
    if (!all_numeric(tmp) && (find_column(tmp, NULL, USER_NAMES) != COL_NONE || sep != PS_SEP_BLANKS)) {
        *out = PS_FORMAT_CSV;
        return PS_OK;
    }
    if (sep == '\t' && (tmp->n == 3 || tmp->n == 4) && all_numeric(tmp)) {
        *out = PS_FORMAT_UDATA;
        return PS_OK;
    }
    if (sep == PS_SEP_BLANKS && tmp->n >= 2) {
        *out = PS_FORMAT_SEQUENCE;
        return PS_OK;
    }
    return ps_fail(err, "%s:1: cannot tell the format from the first line '%.*s' (expected a RecBole .inter header, "
                        "UserID::MovieID::Rating::Timestamp, user<TAB>item<TAB>rating<TAB>timestamp, 'user item1 item2 ...', "
                        "or a CSV header); name it with --format",
                   path, (int)(len > 80 ? 80 : len), line);
}

/* ---------- per-format layouts ---------- */

static int layout_for(ps_format fmt, row_layout *lay, ps_lines *lines, const char *line, size_t len, ps_fields *tmp,
                      const ps_load_options *opt, const char *path, ps_error *err)
{
    memset(lay, 0, sizeof *lay);
    lay->time = lay->rating = COL_NONE;
    switch (fmt) {
    case PS_FORMAT_ATOMIC:
        if (!memchr(line, '\t', len) && (memchr(line, ',', len) || memchr(line, ';', len)))
            return ps_fail(err, "%s:1: a RecBole atomic header must be tab-separated, but this one uses another "
                                "separator (wrong separator? use --format csv)", path);
        lay->sep = '\t';
        if (ps_split(tmp, line, len, '\t', 0, err) != PS_OK)
            return PS_ERR;
        return layout_from_header(lay, tmp, opt, path, err);
    case PS_FORMAT_CSV:
        lay->sep = header_separator(line, len);
        lay->quotes = 1;
        if (ps_split(tmp, line, len, lay->sep, 1, err) != PS_OK)
            return PS_ERR;
        return layout_from_header(lay, tmp, opt, path, err);
    case PS_FORMAT_DAT:
        *lay = (row_layout){PS_SEP_DOUBLE_COLON, 0, 0, 1, 3, 2, 4, 0};
        break;
    case PS_FORMAT_UDATA:
        *lay = (row_layout){PS_SEP_BLANKS, 0, 0, 1, 3, 2, 4, 0};
        break;
    case PS_FORMAT_SEQUENCE:
        *lay = (row_layout){PS_SEP_BLANKS, 0, 0, 1, COL_NONE, COL_NONE, 2, 0};
        break;
    default:
        return ps_fail(err, "%s: unknown format", path);
    }
    (void)lines;
    return PS_OK;
}

static const char *sep_name(int sep)
{
    switch (sep) {
    case '\t': return "tab-separated";
    case ',': return "comma-separated";
    case ';': return "semicolon-separated";
    case '|': return "'|'-separated";
    case PS_SEP_DOUBLE_COLON: return "'::'-separated";
    default: return "blank-separated";
    }
}

static int parse_number(ps_field f, const char *what, ps_lines *lines, double *out, ps_error *err)
{
    if (f.len == 0)
        return ps_fail(err, "%s:%lld: missing %s", lines->path, (long long)lines->lineno, what);
    if (ps_field_double(f, out) != PS_OK)
        return ps_fail(err, "%s:%lld: %s '%.*s' is not a number", lines->path, (long long)lines->lineno, what,
                       (int)(f.len > 40 ? 40 : f.len), f.s);
    return PS_OK;
}

static int parse_row(ps_log *log, const row_layout *lay, const ps_fields *f, ps_lines *lines, ps_error *err)
{
    if (f->n < lay->min_fields)
        return ps_fail(err, "%s:%lld: expected at least %d %s fields, found %d (truncated line or wrong separator?)",
                       lines->path, (long long)lines->lineno, lay->min_fields, sep_name(lay->sep), f->n);
    ps_field user = f->f[lay->user], item = f->f[lay->item];
    if (user.len == 0 || item.len == 0)
        return ps_fail(err, "%s:%lld: empty %s id", lines->path, (long long)lines->lineno, user.len ? "item" : "user");
    double t = 0, r = 0;
    if (lay->time != COL_NONE && parse_number(f->f[lay->time], "timestamp", lines, &t, err) != PS_OK)
        return PS_ERR;
    if (lay->rating != COL_NONE && parse_number(f->f[lay->rating], "rating", lines, &r, err) != PS_OK)
        return PS_ERR;
    float rf = (float)r;
    return add_row(log, user, item, lay->time != COL_NONE ? &t : NULL, lay->rating != COL_NONE ? &rf : NULL, err);
}

/* A sequence line is one user followed by their items in order; time = file order. */
static int parse_sequence_line(ps_log *log, const ps_fields *f, ps_lines *lines, ps_error *err)
{
    if (f->n < 2)
        return ps_fail(err, "%s:%lld: expected 'user item1 item2 ...', found a single field '%.*s' (wrong separator?)",
                       lines->path, (long long)lines->lineno, (int)(f->f[0].len > 40 ? 40 : f->f[0].len), f->f[0].s);
    for (int i = 1; i < f->n; i++)
        if (add_row(log, f->f[0], f->f[i], NULL, NULL, err) != PS_OK)
            return PS_ERR;
    return PS_OK;
}

static int parse_lines(ps_log *log, ps_lines *lines, const ps_load_options *opt, const char *path, ps_error *err)
{
    const char *line;
    size_t len;
    ps_fields fields = {0};
    int rc = ps_lines_next(lines, &line, &len, err);
    if (rc == 0)
        rc = ps_fail(err, "%s: empty file (no header and no interactions)", path);
    if (rc < 0)
        return PS_ERR;
    ps_format fmt = opt->format;
    row_layout lay;
    if ((fmt == PS_FORMAT_AUTO && detect_format(line, len, &fields, path, &fmt, err) != PS_OK) ||
        layout_for(fmt, &lay, lines, line, len, &fields, opt, path, err) != PS_OK) {
        ps_fields_free(&fields);
        return PS_ERR;
    }
    log->format = fmt;
    if (opt->has_rating_threshold && lay.rating == COL_NONE) {
        ps_fields_free(&fields);
        return ps_fail(err, "%s: --rating-threshold given but the file has no rating column", path);
    }
    int have_line = !lay.header;
    for (;;) {
        if (!have_line) {
            rc = ps_lines_next(lines, &line, &len, err);
            if (rc <= 0)
                break;
        }
        have_line = 0;
        if (ps_split(&fields, line, len, lay.sep, lay.quotes, err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        rc = fmt == PS_FORMAT_SEQUENCE ? parse_sequence_line(log, &fields, lines, err)
                                       : parse_row(log, &lay, &fields, lines, err);
        if (rc != PS_OK)
            break;
    }
    ps_fields_free(&fields);
    if (rc < 0)
        return PS_ERR;
    if (log->n == 0)
        return ps_fail(err, "%s: no interactions after the header", path);
    return PS_OK;
}

int ps_log_read(ps_log *log, const char *path, const ps_load_options *opt, ps_error *err)
{
    memset(log, 0, sizeof *log);
    char *data;
    size_t len;
    if (ps_read_file(path, MAX_INPUT_BYTES, &data, &len, err) != PS_OK)
        return PS_ERR;
    if (ps_intern_init(&log->users, err) != PS_OK || ps_intern_init(&log->items, err) != PS_OK) {
        free(data);
        ps_log_free(log);
        return PS_ERR;
    }
    ps_lines lines;
    ps_lines_init(&lines, path, data, len, opt->max_line_bytes);
    int rc = parse_lines(log, &lines, opt, path, err);
    log->saw_crlf = lines.saw_crlf;
    log->saw_bom = lines.saw_bom;
    free(data);
    if (rc != PS_OK)
        ps_log_free(log);
    return rc;
}

void ps_log_free(ps_log *log)
{
    free(log->user);
    free(log->item);
    free(log->time);
    free(log->rating);
    ps_intern_free(&log->users);
    ps_intern_free(&log->items);
    memset(log, 0, sizeof *log);
}
