/* dist_nccl.c — see dist_nccl.h. */
#include "dist_nccl.h"

#ifdef DARTSC_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist.h"

struct dist_nccl {
    ncclComm_t comm;
    cudaStream_t s;
    int rank, size;
    float *slots, *pad; /* size * chunk floats each, device */
    size_t cap;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int dist_nccl_available(void) { return 1; }

/* Polls until the communicator has no operation in progress and the stream is idle. */
static void wait_done(dist_nccl *nc, double timeout_s, const char *what) {
    double deadline = now_s() + timeout_s;
    for (;;) {
        ncclResult_t r = ncclSuccess;
        ncclCommGetAsyncError(nc->comm, &r);
        if (r != ncclSuccess && r != ncclInProgress) {
            fprintf(stderr, "dartsc: rank %d of %d: NCCL %s failed: %s (%s); stopping the job\n", nc->rank, nc->size,
                    what, ncclGetErrorString(r), ncclGetLastError(nc->comm));
            ncclCommAbort(nc->comm);
            rt_dist_abort(1);
        }
        if (r == ncclSuccess) {
            cudaError_t e = cudaStreamQuery(nc->s);
            if (e == cudaSuccess) return;
            if (e != cudaErrorNotReady) {
                fprintf(stderr, "dartsc: rank %d of %d: NCCL %s: %s; stopping the job\n", nc->rank, nc->size, what,
                        cudaGetErrorString(e));
                rt_dist_abort(1);
            }
        }
        if (now_s() > deadline) {
            /* the ranks still alive meet through MPI: its deadline names the one missing */
            fprintf(stderr,
                    "dartsc: rank %d of %d: the NCCL %s did not finish within %g s (a rank died or hangs; "
                    "DARTSC_DIST_TIMEOUT sets the limit); looking for the rank through MPI\n",
                    nc->rank, nc->size, what, timeout_s);
            ncclCommAbort(nc->comm);
            rt_dist_barrier_within(timeout_s < 30 ? timeout_s : 30);
            fprintf(stderr, "dartsc: rank %d of %d: every rank answered through MPI: NCCL itself stalled; stopping the job\n",
                    nc->rank, nc->size);
            rt_dist_abort(1);
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

dist_nccl *dist_nccl_new(int rank, int size) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int ok = 1;
    if (rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) ok = 0;
    rt_dist_bcast(&id, sizeof id, 0);
    dist_nccl *nc = calloc(1, sizeof *nc);
    if (!nc) ok = 0;
    if (nc) {
        nc->rank = rank;
        nc->size = size;
    }
    if (ok && cudaStreamCreateWithFlags(&nc->s, cudaStreamNonBlocking) != cudaSuccess) ok = 0;
    ncclResult_t r = ncclSuccess;
    if (ok) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        r = ncclCommInitRankConfig(&nc->comm, size, id, rank, &cfg);
        double deadline = now_s() + 120;
        while (r == ncclInProgress && now_s() < deadline) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            ncclCommGetAsyncError(nc->comm, &r);
        }
        if (r != ncclSuccess) {
            fprintf(stderr, "dartsc: rank %d: NCCL could not start (%s); the GPU all-reduce goes through the host\n",
                    rank, ncclGetErrorString(r));
            if (r == ncclInProgress) ncclCommAbort(nc->comm);
            else ncclCommDestroy(nc->comm);
            nc->comm = NULL;
            ok = 0;
        }
    }
    if (rt_dist_sum_int(ok) != rt_dist_size()) ok = 0; /* all ranks or none */
    if (!ok) {
        if (nc && nc->comm) ncclCommDestroy(nc->comm);
        if (nc && nc->s) cudaStreamDestroy(nc->s);
        free(nc);
        return NULL;
    }
    return nc;
}

void dist_nccl_allreduce(dist_nccl *nc, rt_backend *be, float *buf, int64_t n, double timeout_s) {
    const int P = nc->size, me = nc->rank;
    const int64_t c = (n + P - 1) / P;
    if ((size_t)(P * c) > nc->cap) {
        cudaFree(nc->slots);
        cudaFree(nc->pad);
        nc->slots = nc->pad = NULL;
        if (cudaMalloc((void **)&nc->slots, (size_t)(P * c) * 4) != cudaSuccess ||
            cudaMalloc((void **)&nc->pad, (size_t)(P * c) * 4) != cudaSuccess) {
            fprintf(stderr, "dartsc: rank %d: out of device memory for the all-reduce (%lld floats)\n", me,
                    (long long)(2 * P * c));
            rt_dist_abort(1);
        }
        nc->cap = (size_t)(P * c);
    }
    int64_t mlo, mhi;
    rt_dist_chunk(n, me, P, &mlo, &mhi);
    const int64_t mc = mhi - mlo;
    be->synchronize(be); /* the gradients are written */
    /* 1. chunk q of every rank to rank q */
    ncclGroupStart();
    for (int q = 0; q < P; q++) {
        if (q == me) continue;
        int64_t lo, hi;
        rt_dist_chunk(n, q, P, &lo, &hi);
        ncclSend(buf + lo, (size_t)(hi - lo), ncclFloat, q, nc->comm, nc->s);
        ncclRecv(nc->slots + (size_t)q * c, (size_t)mc, ncclFloat, q, nc->comm, nc->s);
    }
    ncclGroupEnd();
    cudaMemcpyAsync(nc->slots + (size_t)me * c, buf + mlo, (size_t)mc * 4, cudaMemcpyDeviceToDevice, nc->s);
    wait_done(nc, timeout_s, "all-reduce");
    /* 2. this rank's chunk, the copies added in rank order (as runtime/dist.c on the host) */
    float *mine = nc->pad + (size_t)me * c;
    be->copy(be, mine, nc->slots, mc);
    for (int q = 1; q < P; q++) be->axpy(be, mine, 1.0f, nc->slots + (size_t)q * c, mc);
    be->synchronize(be);
    /* 3. every chunk to every rank */
    ncclGroupStart();
    ncclAllGather(mine, nc->pad, (size_t)c, ncclFloat, nc->comm, nc->s);
    ncclGroupEnd();
    wait_done(nc, timeout_s, "all-gather");
    cudaMemcpyAsync(buf, nc->pad, (size_t)n * 4, cudaMemcpyDeviceToDevice, nc->s);
    wait_done(nc, timeout_s, "copy");
}

void dist_nccl_free(dist_nccl *nc) {
    if (!nc) return;
    cudaFree(nc->slots);
    cudaFree(nc->pad);
    ncclCommDestroy(nc->comm);
    cudaStreamDestroy(nc->s);
    free(nc);
}

#else

int dist_nccl_available(void) { return 0; }
dist_nccl *dist_nccl_new(int rank, int size) {
    (void)rank;
    (void)size;
    return NULL;
}
void dist_nccl_allreduce(dist_nccl *nc, rt_backend *be, float *buf, int64_t n, double timeout_s) {
    (void)nc;
    (void)be;
    (void)buf;
    (void)n;
    (void)timeout_s;
}
void dist_nccl_free(dist_nccl *nc) { (void)nc; }

#endif
