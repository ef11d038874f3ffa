/* Data parallelism over MPI (Open MPI), behind a small interface that is a no-op in a build
 * without MPI (POPSTEER_MPI off) and in a process not started by mpirun: then size = 1, rank = 0
 * and every collective returns at once with its input unchanged.
 *
 * The context is one struct, made by the command that uses it and passed down (options structs
 * hold a `const ps_dist *`, NULL meaning one process). MPI is initialised only when the process
 * was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in the
 * environment), so a plain `popsteer ...` never touches MPI.
 *
 * Failures. The communicator gets MPI_ERRORS_RETURN, so a failed MPI call comes back here as an
 * error with MPI's message instead of killing the process from inside the library. A rank whose
 * command fails (any error, MPI or not) prints it and calls ps_dist_abort (MPI_Abort on the
 * world communicator): every rank exits, none hangs in a collective waiting for it. A rank that
 * dies without a word (killed, crashed) is noticed by Open MPI's runtime, which kills the others
 * and names the rank and the signal ("mpirun noticed that process rank 1 ... exited on signal
 * 9"). No watchdog thread of our own. */
#ifndef POPSTEER_DIST_H
#define POPSTEER_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "popsteer/error.h"

typedef struct ps_dist {
    int rank, size;
    int initialised; /* MPI_Init was called by ps_dist_init */
} ps_dist;

/* 1 when this build has MPI. */
int ps_dist_built(void);
/* Joins the MPI job if this process was started by mpirun, else a single process. */
int ps_dist_init(ps_dist *d, ps_error *err);
void ps_dist_finalize(ps_dist *d);
/* Ends the whole job with status code (a single process: returns). */
void ps_dist_abort(const ps_dist *d, int code);

static inline int ps_dist_rank(const ps_dist *d) { return d ? d->rank : 0; }
static inline int ps_dist_size(const ps_dist *d) { return d ? d->size : 1; }

/* In-place sums over the ranks; every rank gets the result. */
int ps_dist_sum_f32(const ps_dist *d, float *buf, size_t n, ps_error *err);
int ps_dist_sum_f64(const ps_dist *d, double *buf, size_t n, ps_error *err);
int ps_dist_sum_i64(const ps_dist *d, int64_t *buf, size_t n, ps_error *err);
/* Rank root's bytes to every rank. */
int ps_dist_bcast(const ps_dist *d, void *buf, size_t bytes, int root, ps_error *err);
/* Every rank filled its own part of buf (any parts, disjoint, scattered as they come) and left
 * every other byte zero: afterwards every rank holds all of it, bit for bit. A bitwise OR over
 * the ranks, not a float sum: x | 0 is x for every bit pattern (a sum would turn -0.0 into +0.0),
 * and the parts need not be contiguous, which an allgather would ask. */
int ps_dist_gather_disjoint(const ps_dist *d, void *buf, size_t bytes, ps_error *err);

/* Sums an evaluation's accumulator (metrics.h: integer counters only, so exact) over the ranks. */
struct ps_metrics_acc;
int ps_dist_sum_metrics(const ps_dist *d, struct ps_metrics_acc *a, ps_error *err);

/* Every rank's latent statistics (probe.h) merged in rank order (Chan et al.), on every rank. */
struct ps_latent_stats;
int ps_dist_merge_latent_stats(const ps_dist *d, struct ps_latent_stats *s, ps_error *err);

/* Rank 0's artefact to every rank (a pipeline that reads and writes its files on rank 0 only:
 * popsteer run). On rank 0 the object must be there; on every other rank what it points at
 * (NULL, or the rank's own copy) is freed and replaced by rank 0's configuration and weights
 * (the SAE: also its training record; the table: its numeric columns). A single process: no-op. */
struct ps_sasrec;
struct ps_sae;
struct ps_latent_table;
int ps_dist_bcast_sasrec(const ps_dist *d, struct ps_sasrec **m, ps_error *err);
int ps_dist_bcast_sae(const ps_dist *d, struct ps_sae **sae, ps_error *err);
int ps_dist_bcast_latent_table(const ps_dist *d, struct ps_latent_table *t, ps_error *err);

/* This rank's share [lo, hi) of n items split into size contiguous near-equal parts. */
void ps_dist_share(const ps_dist *d, int64_t n, int64_t *lo, int64_t *hi);

/* Fault injection for the tests: POPSTEER_DIST_DIE=R:S makes rank R raise SIGKILL at its S-th
 * call (1-based) of this function. No effect when unset. */
void ps_dist_fault_point(const ps_dist *d, int64_t counter);

#endif
