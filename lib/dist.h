/* dist.h — the processes of a data-parallel run and the sums they share (MPI).
 *
 * `mpirun -np N slimtune train ...` starts N ranks; each holds the whole frozen model and adapter,
 * works on its share of every optimizer step's micro-batches, and the ranks add their LoRA gradients
 * and counters together (dist_sum_*) so that every rank makes the same AdamW update. This is the one
 * place that names MPI: built with it when `make` finds mpicc (SLIM_MPI), else every function below is
 * the single-process case (rank 0 of 1, sums are the identity). A GPU build will implement the same
 * calls with NCCL (ncclAllReduce on device buffers) behind this interface.
 *
 * dist_init calls MPI_Init only when a launcher started this process (mpirun / srun set
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK), so a plain `slimtune train` runs exactly as a build
 * without MPI. Every collective call must be made by all ranks in the same order. A rank that fails
 * ends the whole job: dist_finish aborts (MPI_Abort) after the error is printed, so the others never
 * wait for it; a rank that dies is noticed by mpirun, which ends the rest. */
#ifndef SLIM_DIST_H
#define SLIM_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Joins the job when started by an MPI launcher (MPI_Init, MPI_THREAD_FUNNELED: only the main thread
 * communicates, OpenMP threads compute); otherwise, and when called again, does nothing. Returns 0, or
 * -1 with an error when the launcher's environment is there but MPI cannot start (or this build has no
 * MPI and more than one rank was launched). */
int dist_init(void);
/* This process's rank (0 .. dist_size() - 1); 0 without a job. */
int dist_rank(void);
/* The number of ranks; 1 without a job. */
int dist_size(void);
/* Ranks on this host (MPI_COMM_TYPE_SHARED), which share its memory; 1 without a job. */
int dist_local_size(void);
/* In-place sums over all ranks (MPI_Allreduce, MPI_SUM); every rank gets the same values. The time
 * spent in them (waiting for the slowest rank included) adds to dist_comm_seconds. Return 0, or -1 with
 * an error. */
int dist_sum_f32(float *x, size_t n);
int dist_sum_f64(double *x, size_t n);
int dist_sum_i64(int64_t *x, size_t n);
/* In-place maximum over all ranks of x[0..n). Returns 0 or -1 with an error. */
int dist_max_i64(int64_t *x, size_t n);
/* 1 when the n bytes at p are the same on every rank (a 64-bit hash compared by MIN and MAX), 0 when
 * they differ, -1 with an error. */
int dist_same(const void *p, size_t n);
/* Seconds spent in dist_sum_* so far, this rank. */
double dist_comm_seconds(void);
/* Ends this process's part of the job and returns status (an exit status): MPI_Finalize when status is
 * not 2 (the ranks agreed to end: done, or stopped by a signal at the same step), else MPI_Abort(2) so
 * that no other rank waits for this one. Nothing without a job. */
int dist_finish(int status);

#endif
