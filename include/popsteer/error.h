/* Error reporting shared by every stage of libpopsteer.
 *
 * Library functions never print and never exit: they return PS_OK (0) or PS_ERR (-1)
 * and, on failure, leave a complete human-readable message in a caller-owned ps_error.
 * Messages about input files start with "FILE:LINE: " so a user can go straight to
 * the offending row. The command-line front end prints the message and exits non-zero. */
#ifndef POPSTEER_ERROR_H
#define POPSTEER_ERROR_H

#include <stddef.h>

#define PS_OK 0
#define PS_ERR (-1)

typedef struct ps_error {
    char msg[1024];
} ps_error;

/* Formats msg into err (if non-NULL) and returns PS_ERR, so callers can write
 * `return ps_fail(err, "...", ...);`. */
int ps_fail(ps_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (used to add context on the way up). */
int ps_fail_wrap(ps_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overflow-checked allocation of n elements of size bytes; zeroed. On failure sets
 * err to "out of memory allocating <what> (<bytes>)" and returns NULL. */
void *ps_calloc(size_t n, size_t size, const char *what, ps_error *err);
/* Overflow-checked realloc; the old block stays valid on failure. */
void *ps_realloc(void *ptr, size_t n, size_t size, const char *what, ps_error *err);

#endif
