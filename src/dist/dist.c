/* The MPI layer (see popsteer/dist.h). Compiled with POPSTEER_HAVE_MPI in an MPI build; without
 * it every function is the one-process no-op. */
#include "popsteer/dist.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef POPSTEER_HAVE_MPI
#include <mpi.h>
#endif

int ps_dist_built(void)
{
#ifdef POPSTEER_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

static int launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

#ifdef POPSTEER_HAVE_MPI
static int mpi_fail(int rc, const char *what, ps_error *err)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", rc);
    return ps_fail(err, "%s failed: %s", what, msg);
}
#endif

int ps_dist_init(ps_dist *d, ps_error *err)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (!launched_by_mpirun())
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS)
        return ps_fail(err, "MPI_Init failed (error %d)", rc);
    d->initialised = 1;
    if ((rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
        (rc = MPI_Comm_rank(MPI_COMM_WORLD, &d->rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(MPI_COMM_WORLD, &d->size)) != MPI_SUCCESS)
        return mpi_fail(rc, "setting up MPI_COMM_WORLD", err);
    return PS_OK;
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) > 1)
        return ps_fail(err, "started by mpirun with %s processes, but this popsteer was built without MPI "
                            "(configure with -DPOPSTEER_MPI=ON and libopenmpi-dev installed)", n);
    return PS_OK;
#endif
}

void ps_dist_finalize(ps_dist *d)
{
#ifdef POPSTEER_HAVE_MPI
    if (d->initialised)
        MPI_Finalize();
#endif
    d->initialised = 0;
}

void ps_dist_abort(const ps_dist *d, int code)
{
#ifdef POPSTEER_HAVE_MPI
    if (d && d->initialised && d->size > 1) {
        fprintf(stderr, "popsteer: rank %d of %d failed (message above): ending every rank\n", d->rank, d->size);
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    }
#else
    (void)d;
    (void)code;
#endif
}

#ifdef POPSTEER_HAVE_MPI
/* Collectives in pieces of at most INT_MAX elements (MPI counts are int). */
static int sum_typed(const ps_dist *d, void *buf, size_t n, MPI_Datatype t, size_t elem, const char *what,
                     ps_error *err)
{
    for (size_t off = 0; off < n;) {
        int cnt = n - off > (size_t)INT_MAX ? INT_MAX : (int)(n - off);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, cnt, t, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, what, err);
        off += (size_t)cnt;
    }
    (void)d;
    return PS_OK;
}
#endif

int ps_dist_sum_f32(const ps_dist *d, float *buf, size_t n, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    return sum_typed(d, buf, n, MPI_FLOAT, sizeof(float), "MPI_Allreduce of the gradients", err);
#else
    (void)buf, (void)n;
    return ps_fail(err, "no MPI in this build");
#endif
}

int ps_dist_sum_f64(const ps_dist *d, double *buf, size_t n, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    return sum_typed(d, buf, n, MPI_DOUBLE, sizeof(double), "MPI_Allreduce (double)", err);
#else
    (void)buf, (void)n;
    return ps_fail(err, "no MPI in this build");
#endif
}

int ps_dist_sum_i64(const ps_dist *d, int64_t *buf, size_t n, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    return sum_typed(d, buf, n, MPI_INT64_T, sizeof(int64_t), "MPI_Allreduce (int64)", err);
#else
    (void)buf, (void)n;
    return ps_fail(err, "no MPI in this build");
#endif
}

int ps_dist_bcast(const ps_dist *d, void *buf, size_t bytes, int root, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    for (size_t off = 0; off < bytes;) {
        int cnt = bytes - off > (size_t)INT_MAX ? INT_MAX : (int)(bytes - off);
        int rc = MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Bcast", err);
        off += (size_t)cnt;
    }
    return PS_OK;
#else
    (void)buf, (void)bytes, (void)root;
    return ps_fail(err, "no MPI in this build");
#endif
}

int ps_dist_gather_disjoint(const ps_dist *d, void *buf, size_t bytes, ps_error *err)
{
    if (ps_dist_size(d) <= 1)
        return PS_OK;
#ifdef POPSTEER_HAVE_MPI
    for (size_t off = 0; off < bytes;) {
        int cnt = bytes - off > (size_t)INT_MAX ? INT_MAX : (int)(bytes - off);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off, cnt, MPI_BYTE, MPI_BOR, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "MPI_Allreduce (gathering the ranks' parts)", err);
        off += (size_t)cnt;
    }
    return PS_OK;
#else
    (void)buf, (void)bytes;
    return ps_fail(err, "no MPI in this build");
#endif
}

void ps_dist_share(const ps_dist *d, int64_t n, int64_t *lo, int64_t *hi)
{
    const int64_t P = ps_dist_size(d), r = ps_dist_rank(d);
    *lo = n * r / P;
    *hi = n * (r + 1) / P;
}

void ps_dist_fault_point(const ps_dist *d, int64_t counter)
{
    const char *spec = getenv("POPSTEER_DIST_DIE");
    int r;
    long long s;
    if (!spec || sscanf(spec, "%d:%lld", &r, &s) != 2 || r != ps_dist_rank(d) || counter != s)
        return;
    fprintf(stderr, "popsteer: rank %d: POPSTEER_DIST_DIE: killing myself at step %lld\n", r, s);
    fflush(stderr);
    raise(SIGKILL);
}
