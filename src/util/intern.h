/* String interning: maps byte strings to dense ids 0..n-1 in order of first insertion.
 * Used for raw user and item tokens while parsing, so each distinct token is stored once. */
#ifndef POPSTEER_INTERN_H
#define POPSTEER_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef struct ps_intern {
    char *pool;          /* all strings, each NUL-terminated */
    int64_t pool_len, pool_cap;
    int64_t *off;        /* [n] offset of string i in pool */
    uint32_t *hash;      /* [n] cached hash of string i */
    int32_t n, cap;
    int32_t *slots;      /* open-addressing table of ids, -1 = empty; size is a power of two */
    uint32_t n_slots;
} ps_intern;

int ps_intern_init(ps_intern *t, ps_error *err);
void ps_intern_free(ps_intern *t);
/* Id of the string s[0..len), inserting it if new. Returns -1 (and sets err) on failure. */
int32_t ps_intern_get(ps_intern *t, const char *s, size_t len, ps_error *err);
/* Id of s[0..len) or -1 when absent; never inserts, so many threads may look up at once. */
int32_t ps_intern_find(const ps_intern *t, const char *s, size_t len);
static inline const char *ps_intern_str(const ps_intern *t, int32_t id)
{
    return t->pool + t->off[id];
}

#endif
