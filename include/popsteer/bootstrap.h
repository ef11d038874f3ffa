/* Paired bootstrap over users: confidence intervals for the metric changes the sweep compares
 * (issue 11 §3).
 *
 * Every evaluated user contributes one value per method (an NDCG, a top-k list), so two methods
 * evaluated on the same users are compared *paired*: a resample draws n users with replacement
 * (multiplicity w_ru = how often user u is drawn in resample r) and both methods are measured on
 * that same resample. The standard deviation of the R resampled changes is the standard error
 * of the measured change, and the interval is the normal bootstrap interval around the measured
 * change: estimate ± z · SE (Efron & Tibshirani 1993, §13.3). One ps_bootstrap holds the
 * multiplicities, so every method and every metric is measured on the same R resamples.
 *
 * Why not the percentile interval: Gini@k is not a mean. A resample holds only ~63 % distinct
 * users, some of them several times, so more items get no exposure and every resampled Gini is
 * higher than the measured one — and the resampled *changes* shrink towards 0. On Last.fm
 * (1,362 users) PopSteer's measured test ΔGini@10 of −14.8 % had a percentile interval of
 * [−14.5, −11.0] %, which does not even contain the measurement. The spread of the resamples is
 * still a sound standard error; the interval is centred where the measurement is.
 *
 * Determinism: resample r's draws come from a splitmix64 stream seeded by (seed, r) alone, so the
 * multiplicities — and every interval — are the same whatever the number of threads.
 *
 * Usage:
 *     ps_bootstrap b;
 *     ps_bootstrap_init(&b, n_users, 1000, seed, &err);
 *     ps_bootstrap_means(&b, ndcg_method, m);      // m[r], r = 0..R-1
 *     ps_bootstrap_means(&b, ndcg_base, m0);
 *     ps_interval ci;
 *     ps_bootstrap_interval(m, m0, b.resamples, 1, 0.95, &ci, &err);  // relative change
 *     ps_bootstrap_free(&b);
 */
#ifndef POPSTEER_BOOTSTRAP_H
#define POPSTEER_BOOTSTRAP_H

#include <stdint.h>

#include "popsteer/error.h"

#define PS_BOOTSTRAP_DEFAULT_RESAMPLES 1000

typedef struct ps_bootstrap {
    int resamples;    /* R */
    int64_t n;        /* users */
    uint64_t seed;
    uint16_t *weight; /* [R][n]: w_ru; Σ_u w_ru = n for every r */
} ps_bootstrap;

/* A confidence interval of a change (lo <= hi); NaN bounds when it could not be computed. */
typedef struct ps_interval {
    double lo, hi;
} ps_interval;

/* Draws the R resamples of n users. n must be in 1..2^31-1 and R >= 1. A multiplicity above
 * 65535 cannot happen for n <= 65535 and has probability far below 1e-100 beyond; init fails
 * (instead of wrapping) if one ever occurs. Memory: 2·R·n bytes. */
int ps_bootstrap_init(ps_bootstrap *b, int64_t n, int resamples, uint64_t seed, ps_error *err);
void ps_bootstrap_free(ps_bootstrap *b);

/* out[r] = (1/n) Σ_u w_ru x[u]: the mean of a per-user value on every resample. */
void ps_bootstrap_means(const ps_bootstrap *b, const float *x, double *out);

/* out[r] = Gini@k of item exposure on resample r: c_i = Σ_u w_ru [i in lists[u·k .. u·k + k)],
 * over the n_items real items 1..n_items, zero-exposure items included — the ps_metrics Gini
 * (SPEC §6) of the resampled users. Ids outside 1..n_items (padding 0) are ignored; a list must
 * not repeat an id (top-k and re-ranked lists never do). Computed exactly in integers from the
 * histogram of the counts (no sort): O(n·k + n_items) per resample. */
int ps_bootstrap_gini(const ps_bootstrap *b, const int32_t *lists, int k, int32_t n_items, double *out,
                      ps_error *err);

/* The normal bootstrap interval at `level` (e.g. 0.95) of a change measured as `estimate`:
 * estimate ± z · s, z the standard normal quantile at (1 + level) / 2 and s the standard
 * deviation (divisor R − 1) of the R resampled changes
 * v_r = relative ? x[r] / base[r] − 1 : x[r] − base[r].
 * Resamples with a non-positive base are skipped for a relative change; with fewer than two
 * left, or a non-finite estimate, the bounds are NaN. */
int ps_bootstrap_interval(const double *x, const double *base, int resamples, int relative, double estimate,
                          double level, ps_interval *out, ps_error *err);

/* The standard normal quantile: Φ⁻¹(p) for 0 < p < 1 (to ~1e-12, by bisection on erfc). */
double ps_normal_quantile(double p);

/* Whether 0 lies inside the interval (the change is within noise at that level). */
int ps_interval_contains_zero(const ps_interval *ci);

#endif
