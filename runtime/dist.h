/* dist.h — data-parallel runs across processes (docs/SCALING.md): the process group, and
 * the few collectives the search and training loops need, over MPI between processes
 * and hosts and NCCL between GPUs.
 *
 * The group is one per process, like MPI's world: rt_dist_init joins it when a launcher
 * (mpirun, srun) started the process and the build has MPI (DARTSC_HAVE_MPI), and is
 * otherwise a group of one, where every collective returns at once and changes nothing.
 *
 * Deterministic: MPI_SUM's order of additions is not promised, so the sums here are our
 * own: the buffer is cut into size chunks; every rank sends chunk q to rank q (point to
 * point), rank q adds the size copies of its chunk in rank order, ((x_0 + x_1) + x_2) ...
 * in float, and sends the sum back to every rank. The same bits on every rank and in
 * every run with the same number of ranks; the NCCL path moves the same chunks with
 * ncclSend/ncclRecv, adds them on the device in the same order (be->axpy) and gathers
 * them with ncclAllGather, so it gives the MPI path's bits.
 *
 * Never a silent hang: every wait polls with a deadline (DARTSC_DIST_TIMEOUT seconds,
 * default 300). A rank whose part does not arrive in time is named — "rank 1 did not
 * take part in the all-reduce within 300 s (it died or hangs)" — and the job is stopped
 * with MPI_Abort. A failed collective cannot be returned from consistently (the other
 * ranks wait in it), so this is the one place in the library that ends the process. */
#ifndef DARTSC_RT_DIST_H
#define DARTSC_RT_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kernels/kdesc.h"

/* Joins the group. Call once, first thing in main (argc/argv may be NULL). Returns 0, or
 * -1 with err filled (MPI could not start). */
int rt_dist_init(int *argc, char ***argv, char *err, size_t errlen);
/* Leaves the group (MPI_Finalize); the process then exits as usual. */
void rt_dist_finalize(void);
/* Stops every process of the job with exit status code (MPI_Abort); a group of one:
 * exit(code). */
void rt_dist_abort(int code);

int rt_dist_rank(void);
int rt_dist_size(void);
/* The rank among the processes of this host (the GPU a rank takes: local rank modulo
 * the host's devices). */
int rt_dist_local_rank(void);
/* 1 where the build has MPI (docs: `dartsc version`), 1 where it has NCCL. */
int rt_dist_have_mpi(void);
int rt_dist_have_nccl(void);

/* Runs the following collectives on this process alone (on = 1) or on the whole group
 * again (on = 0): the baselines train different candidates on different ranks, each as
 * a run of one process. */
void rt_dist_set_local(int on);

/* Collectives over host memory. Every rank must call the same ones in the same order. */
void rt_dist_allreduce_f32(float *buf, int64_t n);  /* sum, in rank order */
void rt_dist_allreduce_f64(double *buf, int64_t n); /* sum, in rank order */
void rt_dist_bcast(void *buf, size_t bytes, int root);
void rt_dist_barrier(void);
/* A barrier with its own deadline: after a GPU collective timed out, the ranks that are
 * still alive meet here, and the wait names the one that does not come. */
void rt_dist_barrier_within(double seconds);
/* Every rank's n doubles, rank by rank (size * n), in memory the group owns, valid until
 * the next call. */
const double *rt_dist_allgather_f64(const double *in, int n);
/* Sum over ranks of an int (a flag: any rank asked to stop). */
int rt_dist_sum_int(int v);

/* Collectives over a backend's memory: the CPU backend's is host memory; the CUDA
 * backend's goes through NCCL where the build has it and each rank has its own GPU, else
 * through the host. */
void rt_dist_allreduce_be(rt_backend *be, float *buf, int64_t n);
void rt_dist_bcast_be(rt_backend *be, float *buf, int64_t n, int root);

/* The all-reduce's chunk r of n floats among size ranks, [*lo, *hi) (the MPI and NCCL
 * paths cut alike, so that they add the same floats in the same order). */
void rt_dist_chunk(int64_t n, int r, int size, int64_t *lo, int64_t *hi);

/* Batch-norm statistics over every rank (sync_bn): NULL in a group of one. */
const kbn_sync *rt_dist_bn_sync(void);

/* Seconds spent in collectives since the process began (bench: communication time). */
double rt_dist_comm_seconds(void);

#endif
