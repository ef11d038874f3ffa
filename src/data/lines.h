/* Line-by-line reading of an in-memory text file, with the checks every parser needs:
 * UTF-8 BOM skipped, CRLF accepted, NUL bytes and over-long lines rejected with the line
 * number, a missing final newline accepted (the row must still be complete). */
#ifndef POPSTEER_LINES_H
#define POPSTEER_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef struct ps_lines {
    const char *path;
    const char *p, *end;
    int64_t lineno;        /* number of the line last returned (1-based) */
    size_t max_line;
    int saw_crlf, saw_bom; /* reported by `data stats` so users know what was normalised */
} ps_lines;

void ps_lines_init(ps_lines *r, const char *path, const char *data, size_t len, size_t max_line);
/* Next non-blank line without its terminator: returns 1 and sets line/len, 0 at the end, PS_ERR on error. */
int ps_lines_next(ps_lines *r, const char **line, size_t *len, ps_error *err);

/* A field of a split line (not NUL-terminated). */
typedef struct ps_field {
    const char *s;
    size_t len;
} ps_field;

typedef struct ps_fields {
    ps_field *f;
    int n, cap;
} ps_fields;

/* Separators: a single character, "::" (MovieLens .dat) or runs of blanks (PS_SEP_BLANKS).
 * With quotes set, double-quoted fields may contain the separator ("" is a literal quote). */
#define PS_SEP_BLANKS 0
#define PS_SEP_DOUBLE_COLON 1
int ps_split(ps_fields *out, const char *line, size_t len, int sep, int quotes, ps_error *err);
void ps_fields_free(ps_fields *f);

/* Strict number parsing of a whole field: no trailing garbage, finite. */
int ps_field_double(ps_field f, double *out);

#endif
