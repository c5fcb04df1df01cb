/* kdesc.h — problem descriptors shared by the CPU and CUDA kernels, and the
 * counter-based random numbers both use, so that masks drawn on either device agree.
 * Kernels know nothing of the IR: they see pointers, sizes and these descriptors.
 * Layout is NCHW, float32, contiguous. */
#ifndef DARTSC_KDESC_H
#define DARTSC_KDESC_H

#include <stdint.h>

#ifdef __CUDACC__
#define KHOSTDEV __host__ __device__
#else
#define KHOSTDEV
#endif

/* y (N,K,P,Q) = conv(x (N,C,H,W), w (K, C/groups, R, S)). */
typedef struct kconv2d_desc {
    int N, C, H, W;   /* input */
    int K, R, S;      /* output channels, kernel height, width */
    int P, Q;         /* output height, width */
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
} kconv2d_desc;

/* Fills P and Q from the others. */
static inline void kconv2d_desc_finish(kconv2d_desc *d) {
    d->P = (d->H + 2 * d->pad_h - d->dil_h * (d->R - 1) - 1) / d->stride_h + 1;
    d->Q = (d->W + 2 * d->pad_w - d->dil_w * (d->S - 1) - 1) / d->stride_w + 1;
}

/* Batch-norm statistics over the shards of a data-parallel batch (sync_bn,
 * runtime/dist.h): gather(ctx, in, n) returns every process's n doubles, process by
 * process (size * n), valid until the next call. */
typedef struct kbn_sync {
    int size;
    const double *(*gather)(void *ctx, const double *in, int n);
    void *ctx;
} kbn_sync;

/* The forward's merge, the same on the CPU and the CUDA path (their local statistics
 * differ in rounding; the merge does not): all holds every process's (count, mean, M2)
 * per channel, 3 C doubles a process; they are merged in process order by Chan et al.'s
 * pairwise update (stable, no cancellation) into mean[c] and the biased var[c]; returns
 * the global count per channel. */
static inline int64_t kbn_sync_merge(const double *all, int size, int C, double *mean, double *var) {
    int64_t gcnt = 0;
    for (int c = 0; c < C; c++) {
        double n = 0.0, m = 0.0, m2 = 0.0;
        for (int r = 0; r < size; r++) {
            const double *t = all + (int64_t)r * 3 * C + 3 * c;
            if (t[0] <= 0.0) continue;
            const double nt = n + t[0], delta = t[1] - m;
            m += delta * t[0] / nt;
            m2 += t[2] + delta * delta * n * t[0] / nt;
            n = nt;
        }
        mean[c] = m;
        var[c] = n > 0.0 ? m2 / n : 0.0;
        gcnt = (int64_t)n;
    }
    return gcnt;
}

/* Batch norm over (N, C, HW): statistics per channel over N*HW values (sync non-NULL: over
 * the N*HW values of every process; the CUDA kernels stage the per-channel sums through
 * the host for the gather). */
typedef struct kbn_desc {
    int N, C, HW;
    float eps, momentum;
    const kbn_sync *sync;
} kbn_desc;

/* Square pooling window k, stride, pad; y is (N,C,P,Q). */
typedef struct kpool_desc {
    int N, C, H, W, P, Q;
    int k, stride, pad;
} kpool_desc;

/* splitmix64 finaliser: a stateless hash giving element idx of stream seed. */
KHOSTDEV static inline uint64_t krng_hash(uint64_t seed, uint64_t idx) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (idx + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [0, 1) with 24 random bits. */
KHOSTDEV static inline float krng_uniform(uint64_t seed, uint64_t idx) {
    return (float)(krng_hash(seed, idx) >> 40) * (1.0f / 16777216.0f);
}

#endif
