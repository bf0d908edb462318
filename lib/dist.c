/* dist.c — data-parallel ranks over MPI (see dist.h); the single-process case without SLIM_MPI. */
#include "dist.h"

#include <stdlib.h>

#include "common.h"

#ifdef SLIM_MPI
#include <mpi.h>
#endif

static struct {
    int on;          /* MPI_Init was called */
    int rank, size, local_size;
    double comm_s;   /* seconds in the sums */
} dist = {.size = 1, .local_size = 1};

/* The launcher's environment: the number of ranks it started (0: none, a plain process). */
static long dist_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return strtol(v, NULL, 10);
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

int dist_rank(void) { return dist.rank; }
int dist_size(void) { return dist.size; }
int dist_local_size(void) { return dist.local_size; }
double dist_comm_seconds(void) { return dist.comm_s; }

#ifdef SLIM_MPI

int dist_init(void) {
    if (dist.on || dist_launched() == 0) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return slim_set_error("MPI_Init_thread failed (started by mpirun, but MPI cannot start)");
    dist.on = 1;
    /* errors come back as return codes, reported at the boundary, rather than aborting inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist.size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, dist.rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &dist.local_size);
        MPI_Comm_free(&node);
    }
    return 0;
}

/* MPI_Allreduce in place of n values of type t with op, timed. */
static int dist_allreduce(void *x, size_t n, MPI_Datatype t, MPI_Op op, const char *what) {
    if (dist.size == 1 || n == 0) return 0;
    double t0 = slim_time_sec();
    int rc = 0;
    for (size_t done = 0; done < n && rc == 0;) { /* MPI counts are int */
        int k = n - done > (size_t)1 << 30 ? 1 << 30 : (int)(n - done);
        int size = 0;
        MPI_Type_size(t, &size);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)x + done * (size_t)size, k, t, op, MPI_COMM_WORLD) != MPI_SUCCESS)
            rc = slim_set_error("MPI_Allreduce of %zu %s failed on rank %d of %d", n, what, dist.rank, dist.size);
        done += (size_t)k;
    }
    dist.comm_s += slim_time_sec() - t0;
    return rc;
}

int dist_sum_f32(float *x, size_t n) { return dist_allreduce(x, n, MPI_FLOAT, MPI_SUM, "floats"); }
int dist_sum_f64(double *x, size_t n) { return dist_allreduce(x, n, MPI_DOUBLE, MPI_SUM, "doubles"); }
int dist_sum_i64(int64_t *x, size_t n) { return dist_allreduce(x, n, MPI_INT64_T, MPI_SUM, "integers"); }
int dist_max_i64(int64_t *x, size_t n) { return dist_allreduce(x, n, MPI_INT64_T, MPI_MAX, "integers"); }

int dist_same(const void *p, size_t n) {
    uint64_t h = slim_fnv1a(SLIM_FNV_INIT, p, n), lo = h, hi = h;
    if (dist_allreduce(&lo, 1, MPI_UINT64_T, MPI_MIN, "hashes") || dist_allreduce(&hi, 1, MPI_UINT64_T, MPI_MAX, "hashes"))
        return -1;
    return lo == hi;
}

int dist_finish(int status) {
    if (!dist.on) return status;
    dist.on = 0;
    if (status == 2 && dist.size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
    return status;
}

#else /* no MPI: one process */

int dist_init(void) {
    if (dist_launched() > 1)
        return slim_set_error("this slimtune was built without MPI (make MPI=0, or mpicc was missing) but was "
                              "started as one of %ld ranks: rebuild with Open MPI (libopenmpi-dev) to train on "
                              "several", dist_launched());
    return 0;
}
int dist_sum_f32(float *x, size_t n) { (void)x; (void)n; return 0; }
int dist_sum_f64(double *x, size_t n) { (void)x; (void)n; return 0; }
int dist_sum_i64(int64_t *x, size_t n) { (void)x; (void)n; return 0; }
int dist_max_i64(int64_t *x, size_t n) { (void)x; (void)n; return 0; }
int dist_same(const void *p, size_t n) { (void)p; (void)n; return 1; }
int dist_finish(int status) { return status; }

#endif
