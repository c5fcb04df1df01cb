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

/* Batch norm over (N, C, HW): statistics per channel over N*HW values (sync non-NULL: over
 * the N*HW values of every process, the CPU kernels only). */
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
