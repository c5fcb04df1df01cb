/* dist_nccl_check.c — the GPU all-reduce of data-parallel runs (runtime/dist_nccl.c)
 * against the MPI path (runtime/dist.c) on the same buffers: they must agree bit for bit
 * (both add the ranks' copies of each chunk in rank order in float). Exits 77 (skipped)
 * where the build has no NCCL or no GPU is usable. On one GPU (ctest, or run alone):
 *
 *   build/dist_nccl_check
 *
 * On a host with G GPUs (one process per GPU; mpirun as in docs/SCALING.md):
 *
 *   mpirun -n G build/dist_nccl_check
 *
 * Buffers of several lengths (1 float, fewer floats than ranks, a length no number of
 * ranks divides, a few million) filled per rank from the counter-based generator with
 * magnitudes spread over 2^-20..2^20, so that the order of additions shows in the bits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/dist.h"
#include "runtime/dist_nccl.h"

int main(int argc, char **argv) {
    char err[512];
    if (rt_dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "dist_nccl_check: %s\n", err);
        return 1;
    }
    const int rank = rt_dist_rank(), size = rt_dist_size();
    if (!rt_dist_have_nccl()) {
        if (rank == 0) fprintf(stderr, "dist_nccl_check: this build has no NCCL: skipped\n");
        rt_dist_finalize();
        return 77;
    }
    rt_cuda_set_device_index(rt_dist_local_rank());
    rt_backend *be = rt_backend_cuda_new(err, sizeof err);
    int ok = be != NULL;
    if (rt_dist_sum_int(ok) != size) {
        if (rank == 0) fprintf(stderr, "dist_nccl_check: no usable GPU on some rank (%s): skipped\n", be ? "" : err);
        if (be) be->destroy(be);
        rt_dist_finalize();
        return 77;
    }
    dist_nccl *nc = dist_nccl_new(rank, size);
    if (!nc) {
        fprintf(stderr, "dist_nccl_check: rank %d: NCCL could not start\n", rank);
        rt_dist_abort(1);
    }
    const int64_t lens[] = {1, size > 1 ? size - 1 : 1, 1000003, 4 << 20};
    int bad = 0;
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        const int64_t n = lens[k];
        float *host = malloc((size_t)n * 4), *got = malloc((size_t)n * 4), *orig = malloc((size_t)n * 4);
        float *dev = be->alloc(be, (size_t)n * 4);
        if (!host || !got || !orig || !dev) {
            fprintf(stderr, "dist_nccl_check: out of memory\n");
            rt_dist_abort(1);
        }
        for (int64_t i = 0; i < n; i++) {
            float u = rt_rng_uniform(1000 + (uint64_t)rank, (uint64_t)i), e = rt_rng_uniform(77, (uint64_t)i);
            host[i] = (2 * u - 1) * ldexpf(1.0f, (int)(40 * e) - 20);
        }
        memcpy(orig, host, (size_t)n * 4);
        be->upload(be, dev, host, (size_t)n * 4);
        rt_dist_allreduce_f32(host, n);                /* MPI: the reference */
        dist_nccl_allreduce(nc, be, dev, n, 120.0);    /* NCCL */
        be->download(be, got, dev, (size_t)n * 4);
        int64_t diff = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&got[i], &host[i], 4)) {
                if (first < 0) first = i;
                diff++;
            }
        if (size == 1 && memcmp(host, orig, (size_t)n * 4)) diff++; /* one rank: the sum is the buffer */
        if (diff) {
            fprintf(stderr, "dist_nccl_check: rank %d: %lld floats: %lld differ from the MPI all-reduce (first at %lld: %a vs %a)\n",
                    rank, (long long)n, (long long)diff, (long long)first, first >= 0 ? got[first] : 0.0f,
                    first >= 0 ? host[first] : 0.0f);
            bad = 1;
        } else if (rank == 0)
            printf("dist_nccl_check: %d rank%s, %lld floats: NCCL equals the MPI all-reduce bit for bit\n", size,
                   size == 1 ? "" : "s", (long long)n);
        be->free(be, dev);
        free(host);
        free(got);
        free(orig);
    }
    dist_nccl_free(nc);
    be->destroy(be);
    bad = rt_dist_sum_int(bad);
    rt_dist_finalize();
    return bad ? 1 : 0;
}
