/* File input/output shared by every stage: whole-file reads and atomic writes.
 *
 * Every file popsteer writes appears atomically: data goes to a temporary file in the
 * destination directory, is flushed and fsync'ed, and is renamed over the final path
 * only when complete. A crash or an error leaves either the old file or nothing. */
#ifndef POPSTEER_IO_H
#define POPSTEER_IO_H

#include <stdio.h>
#include <stddef.h>

#include "popsteer/error.h"

typedef struct ps_atomic_file {
    FILE *fp;          /* write here */
    char *path;        /* final destination */
    char *tmp_path;    /* "<path>.tmp.<pid>.<n>" in the same directory */
} ps_atomic_file;

/* Opens a temporary file next to path for writing. */
int ps_atomic_open(ps_atomic_file *af, const char *path, ps_error *err);
/* Flushes, fsyncs, closes and renames the temporary file over path; fsyncs the directory. */
int ps_atomic_commit(ps_atomic_file *af, ps_error *err);
/* Closes and removes the temporary file; path is left untouched. Safe to call twice. */
void ps_atomic_abort(ps_atomic_file *af);

/* Writes len bytes to path atomically. */
int ps_write_file_atomic(const char *path, const void *data, size_t len, ps_error *err);

/* Reads a whole regular file into a NUL-terminated malloc'ed buffer. Refuses files larger
 * than max_bytes (0 = no limit) with a message instead of trying to allocate them. */
int ps_read_file(const char *path, size_t max_bytes, char **data, size_t *len, ps_error *err);

/* "dir/name", malloc'ed; NULL (err set) when out of memory. */
char *ps_path_join(const char *dir, const char *name, ps_error *err);

#endif
