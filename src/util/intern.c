/* Open-addressing hash table over a single string pool (no per-string allocation). */
#include "util/intern.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 1024u
#define MAX_STRINGS INT32_MAX / 2

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: short tokens, good enough spread */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int ps_intern_init(ps_intern *t, ps_error *err)
{
    memset(t, 0, sizeof *t);
    t->n_slots = INITIAL_SLOTS;
    t->slots = ps_calloc(t->n_slots, sizeof *t->slots, "token table", err);
    if (!t->slots)
        return PS_ERR;
    memset(t->slots, 0xff, t->n_slots * sizeof *t->slots);
    return PS_OK;
}

void ps_intern_free(ps_intern *t)
{
    free(t->pool);
    free(t->off);
    free(t->hash);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static int grow_slots(ps_intern *t, ps_error *err)
{
    uint32_t n_slots = t->n_slots * 2;
    int32_t *slots = ps_calloc(n_slots, sizeof *slots, "token table", err);
    if (!slots)
        return PS_ERR;
    memset(slots, 0xff, n_slots * sizeof *slots);
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t s = t->hash[id] & (n_slots - 1);
        while (slots[s] >= 0)
            s = (s + 1) & (n_slots - 1);
        slots[s] = id;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return PS_OK;
}

static int32_t insert(ps_intern *t, const char *s, size_t len, uint32_t h, uint32_t slot, ps_error *err)
{
    if (t->n >= MAX_STRINGS)
        return ps_fail(err, "more than %d distinct tokens", MAX_STRINGS), -1;
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 1024;
        int64_t *off = ps_realloc(t->off, (size_t)cap, sizeof *off, "token offsets", err);
        if (!off)
            return -1;
        t->off = off;
        uint32_t *hs = ps_realloc(t->hash, (size_t)cap, sizeof *hs, "token hashes", err);
        if (!hs)
            return -1;
        t->hash = hs;
        t->cap = cap;
    }
    if (t->pool_len + (int64_t)len + 1 > t->pool_cap) {
        int64_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + (int64_t)len + 1)
            cap *= 2;
        char *pool = ps_realloc(t->pool, (size_t)cap, 1, "token pool", err);
        if (!pool)
            return -1;
        t->pool = pool;
        t->pool_cap = cap;
    }
    int32_t id = t->n++;
    t->off[id] = t->pool_len;
    t->hash[id] = h;
    memcpy(t->pool + t->pool_len, s, len);
    t->pool[t->pool_len + (int64_t)len] = '\0';
    t->pool_len += (int64_t)len + 1;
    t->slots[slot] = id;
    /* keep the load factor under 1/2 so probe sequences stay short */
    if ((uint32_t)t->n * 2 > t->n_slots && grow_slots(t, err) != PS_OK)
        return -1;
    return id;
}

int32_t ps_intern_get(ps_intern *t, const char *s, size_t len, ps_error *err)
{
    uint32_t h = hash_bytes(s, len);
    uint32_t slot = h & (t->n_slots - 1);
    for (;;) {
        int32_t id = t->slots[slot];
        if (id < 0)
            return insert(t, s, len, h, slot, err);
        const char *str = t->pool + t->off[id];
        if (t->hash[id] == h && strncmp(str, s, len) == 0 && str[len] == '\0')
            return id;
        slot = (slot + 1) & (t->n_slots - 1);
    }
}

int32_t ps_intern_find(const ps_intern *t, const char *s, size_t len)
{
    if (!t->slots)
        return -1;
    uint32_t h = hash_bytes(s, len);
    for (uint32_t slot = h & (t->n_slots - 1);; slot = (slot + 1) & (t->n_slots - 1)) {
        int32_t id = t->slots[slot];
        if (id < 0)
            return -1;
        const char *str = t->pool + t->off[id];
        if (t->hash[id] == h && strncmp(str, s, len) == 0 && str[len] == '\0')
            return id;
    }
}
