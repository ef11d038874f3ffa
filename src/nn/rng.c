/* Seeded random numbers: a splitmix64 stream for weight initialisation (Box-Muller normals) and
 * the mixer the dropout hash is built from. */
#include "nn/nn.h"

#include <math.h>

uint64_t ps_nn_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ps_nn_rng_seed(ps_nn_rng *r, uint64_t seed)
{
    r->state = seed;
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t ps_nn_rng_u64(ps_nn_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return ps_nn_mix64(r->state);
}

double ps_nn_rng_uniform(ps_nn_rng *r)
{
    /* 53 random bits -> (0, 1]: adding 1 before scaling excludes 0 */
    return ((double)(ps_nn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

double ps_nn_rng_normal(ps_nn_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = ps_nn_rng_uniform(r);
    double u2 = ps_nn_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(two_pi * u2);
    r->has_spare = 1;
    return rad * cos(two_pi * u2);
}
