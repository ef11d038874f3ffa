/* A generator of realistic sequential interaction logs, for the built-in demo, tests and
 * benchmarks: power-law item popularity, users with latent tastes, Markov-like sequential
 * structure a sequential model can learn, and popularity bias a recommender amplifies. */
#ifndef POPSTEER_SYNTH_H
#define POPSTEER_SYNTH_H

#include <stdint.h>

#include "popsteer/error.h"

typedef struct ps_synth_options {
    int32_t n_users;        /* default 2000 */
    int32_t n_items;        /* default 1500 */
    int64_t n_interactions; /* target total rows; default 80000 */
    int min_len;            /* shortest user sequence; default 5 */
    int n_topics;           /* latent taste clusters; default 20 */
    double zipf;            /* exponent of the item popularity power law; default 1.0 */
    double markov;          /* probability the next item follows the previous one's transition; 0.5 */
    uint64_t seed;          /* default 42 */
} ps_synth_options;

void ps_synth_options_init(ps_synth_options *o);
/* The ML-1M-sized preset: 6,040 users, 3,416 items, ~1M interactions. */
void ps_synth_options_ml1m(ps_synth_options *o);
/* The ML-20M-sized preset (docs/distributed.md): 138,493 users, 26,744 items, 20,000,263 rows,
 * otherwise as ml1m. */
void ps_synth_options_ml20m(ps_synth_options *o);

/* Writes a RecBole atomic file (user_id:token, item_id:token, timestamp:float) to path,
 * atomically. Identical output for identical options. */
int ps_synth_write(const ps_synth_options *o, const char *path, ps_error *err);

#endif
