/* The raw interaction log: one row per line of the input, tokens interned in order of
 * first appearance, before any filtering or id assignment. Internal to src/data. */
#ifndef POPSTEER_LOG_H
#define POPSTEER_LOG_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "util/intern.h"

typedef struct ps_log {
    int64_t n, cap;
    int32_t *user;     /* [n] interned user token */
    int32_t *item;     /* [n] interned item token */
    double *time;      /* [n] or NULL when the format has no timestamps */
    float *rating;     /* [n] or NULL when there is no rating column */
    ps_intern users, items;
    ps_format format;
    int saw_crlf, saw_bom;
} ps_log;

/* Reads and parses a whole file (format auto-detected unless opt->format says). */
int ps_log_read(ps_log *log, const char *path, const ps_load_options *opt, ps_error *err);
void ps_log_free(ps_log *log);

#endif
