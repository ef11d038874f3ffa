/* What the paper's steering plan (steer.c) and PopSteer-U (steer_rule.c) compute alike, once, so
 * that at the paper's parameters the two give the same latents and the same weights, bit for bit. */
#ifndef POPSTEER_STEER_INTERNAL_H
#define POPSTEER_STEER_INTERNAL_H

#include <stdint.h>

#include "popsteer/error.h"
#include "popsteer/probe.h"

#include <stddef.h>

/* The latents j with eligible[j] != 0 (eligible NULL: all m), ordered by |d| descending, ties by
 * the smaller index, into order[0 .. *n). order has room for m. */
int ps_steer_order(const double *d, const uint8_t *eligible, int m, int32_t *order, int *n, ps_error *err);

/* min |d| over every latent with d != 0; 0 when all are 0 (the weights' lower normaliser). */
double ps_steer_min_nonzero_abs(const double *d, int m);

/* w = α · (|d| − lo) / (hi − lo), or α / 2 when hi == lo (SPEC §5, step 2). */
double ps_steer_weight(double abs_d, double lo, double hi, double alpha);

/* Steps 2 and 3 of ps_steer_plan_make for inputs it has validated (or that were validated once):
 * the plan of the first N latents of order (ps_steer_order over all m latents) with min_abs_d =
 * ps_steer_min_nonzero_abs(d, m), written into plan's arrays, which have room for N. No sort and
 * no allocation, so a server can make a plan per request with the same arithmetic. */
struct ps_steer_plan;
void ps_steer_plan_fill(const double *d, const double *sd_pop, const double *sd_unpop, int m, const int32_t *order,
                        int N, double alpha, double min_abs_d, struct ps_steer_plan *plan);

/* ps_latent_stats_add for the latents [j0, j1) of a batch of B rows only, read from
 * a[r * lda + (j − j0)], with the same sums per latent; for a caller that computes a batch a block
 * of latents at a time and folds each block in while it is in cache (the probe). Blocks with
 * disjoint latents may be added by different threads at once. Once every latent of the batch is
 * in, ps_latent_stats_count(s, B) closes the batch (until then s->n counts the earlier ones). */
void ps_latent_stats_add_columns(ps_latent_stats *s, const float *a, ptrdiff_t lda, int64_t B, int j0, int j1);
void ps_latent_stats_count(ps_latent_stats *s, int64_t B);

#endif
