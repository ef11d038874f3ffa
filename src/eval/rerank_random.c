/* random: a uniform random permutation of the user's real candidates, first k kept.
 * The generator is a SplitMix64 stream seeded from (ctx.seed, user) only, so a user's list
 * depends on nothing else (thread, order of users, other users). */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias (rejection of the short low range). */
static uint64_t uniform_below(uint64_t *state, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
    for (;;) {
        uint64_t x = splitmix64(state);
        if (x >= threshold)
            return x % bound;
    }
}

static int random_apply(ps_reranker *r, const ps_rerank_input *in, int32_t *out, ps_error *err)
{
    (void)err;
    /* Two mixing steps decorrelate neighbouring seeds and users. */
    uint64_t st = r->ctx.seed;
    uint64_t a = splitmix64(&st);
    st = a ^ ((uint64_t)(uint32_t)in->user * 0xD1B54A32D192ED03ull);
    (void)splitmix64(&st);
    int *perm = in->iwork;
    for (int j = 0; j < in->n; j++)
        perm[j] = j;
    int take = in->n < r->ctx.k ? in->n : r->ctx.k;
    /* Forward Fisher–Yates: after step i, position i holds its final value. */
    for (int i = 0; i < take; i++) {
        int j = i + (int)uniform_below(&st, (uint64_t)(in->n - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = in->id[perm[i]];
    }
    return PS_OK;
}

static const ps_rerank_setting random_grid[] = { { 0, { NULL } } };

const ps_rerank_method_impl ps_rerank_random_impl = {
    .info = { .name = "random",
              .doc = "uniform random permutation of the top-L candidates (seeded per user), first k",
              .params_doc = "",
              .sequential = 0 },
    .params = NULL,
    .n_params = 0,
    .grid = random_grid,
    .n_grid = 1,
    .init = NULL,
    .apply = random_apply,
};
