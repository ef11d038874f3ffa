#include "data/lines.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ps_lines_init(ps_lines *r, const char *path, const char *data, size_t len, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->p = data;
    r->end = data + len;
    r->max_line = max_line;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        r->p += 3;
        r->saw_bom = 1;
    }
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

int ps_lines_next(ps_lines *r, const char **line, size_t *len, ps_error *err)
{
    while (r->p < r->end) {
        const char *start = r->p;
        const char *nl = memchr(start, '\n', (size_t)(r->end - start));
        const char *stop = nl ? nl : r->end;
        r->p = nl ? nl + 1 : r->end;
        r->lineno++;
        size_t n = (size_t)(stop - start);
        if (n > 0 && start[n - 1] == '\r') {
            n--;
            r->saw_crlf = 1;
        }
        if (r->max_line && n > r->max_line)
            return ps_fail(err, "%s:%lld: line is %zu bytes long, over the limit of %zu (is this a text file of interactions?)",
                           r->path, (long long)r->lineno, n, r->max_line);
        if (memchr(start, '\0', n))
            return ps_fail(err, "%s:%lld: line contains a NUL byte (binary file?)", r->path, (long long)r->lineno);
        if (is_blank(start, n))
            continue;
        *line = start;
        *len = n;
        return 1;
    }
    return 0;
}

static int push_field(ps_fields *out, const char *s, size_t len, ps_error *err)
{
    if (out->n == out->cap) {
        int cap = out->cap ? out->cap * 2 : 16;
        ps_field *f = ps_realloc(out->f, (size_t)cap, sizeof *f, "fields", err);
        if (!f)
            return PS_ERR;
        out->f = f;
        out->cap = cap;
    }
    out->f[out->n].s = s;
    out->f[out->n].len = len;
    out->n++;
    return PS_OK;
}

static int split_blanks(ps_fields *out, const char *line, size_t len, ps_error *err)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        if (i > start && push_field(out, line + start, i - start, err) != PS_OK)
            return PS_ERR;
    }
    return PS_OK;
}

static int split_double_colon(ps_fields *out, const char *line, size_t len, ps_error *err)
{
    size_t start = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (line[i] == ':' && line[i + 1] == ':') {
            if (push_field(out, line + start, i - start, err) != PS_OK)
                return PS_ERR;
            start = i + 2;
            i++;
        }
    }
    return push_field(out, line + start, len - start, err);
}

/* Quoted fields keep their quotes out of the field but "" stays doubled: tokens and
 * numbers never need unescaping, and titles are only displayed. */
static int split_char(ps_fields *out, const char *line, size_t len, char sep, int quotes, ps_error *err)
{
    size_t i = 0;
    for (;;) {
        size_t start = i, stop;
        if (quotes && i < len && line[i] == '"') {
            start = ++i;
            while (i < len && !(line[i] == '"' && (i + 1 >= len || line[i + 1] != '"')))
                i += (line[i] == '"') ? 2 : 1;
            stop = i < len ? i : len;
            if (i < len)
                i++; /* closing quote */
            while (i < len && line[i] != sep)
                i++;
        } else {
            while (i < len && line[i] != sep)
                i++;
            stop = i;
        }
        if (push_field(out, line + start, stop - start, err) != PS_OK)
            return PS_ERR;
        if (i >= len)
            return PS_OK;
        i++; /* separator */
    }
}

int ps_split(ps_fields *out, const char *line, size_t len, int sep, int quotes, ps_error *err)
{
    out->n = 0;
    if (sep == PS_SEP_BLANKS)
        return split_blanks(out, line, len, err);
    if (sep == PS_SEP_DOUBLE_COLON)
        return split_double_colon(out, line, len, err);
    return split_char(out, line, len, (char)sep, quotes, err);
}

void ps_fields_free(ps_fields *f)
{
    free(f->f);
    memset(f, 0, sizeof *f);
}

int ps_field_double(ps_field f, double *out)
{
    char buf[64];
    /* trim surrounding blanks: "881250949 " in hand-edited files is still a number */
    while (f.len && (f.s[0] == ' ' || f.s[0] == '\t'))
        f.s++, f.len--;
    while (f.len && (f.s[f.len - 1] == ' ' || f.s[f.len - 1] == '\t'))
        f.len--;
    if (f.len == 0 || f.len >= sizeof buf)
        return PS_ERR;
    /* Fast path for the usual field, a timestamp or rating written as up to 15 digits: such an
     * integer is below 2^53, so the double is exact and equal to what strtod returns. */
    if (f.len <= 15) {
        int64_t n = 0;
        size_t i = 0;
        while (i < f.len && f.s[i] >= '0' && f.s[i] <= '9')
            n = n * 10 + (f.s[i++] - '0');
        if (i == f.len) {
            *out = (double)n;
            return PS_OK;
        }
    }
    memcpy(buf, f.s, f.len);
    buf[f.len] = '\0';
    char *endp;
    errno = 0;
    double v = strtod(buf, &endp);
    if (*endp != '\0' || errno == ERANGE || !isfinite(v))
        return PS_ERR;
    *out = v;
    return PS_OK;
}
