/* bn.cu — CUDA batch normalisation over (N, C, HW), the twin of kernels/cpu/bn.c:
 * biased batch variance to normalise, unbiased variance into the running estimate, as
 * PyTorch.
 *
 * Each channel's N*HW values are split into G fixed, contiguous ranges (bn_groups), one
 * block per (range, channel), so that even a layer of 16 channels fills the chip (one
 * block per channel left 116 of an H200's 132 multiprocessors idle and ran 65,536 values
 * per block at DARTS' first cells). Every statistic is summed in double: per thread over
 * a fixed strided subset of its range, per block by a fixed warp tree
 * (kcuda_block_sum0), into kcuda_g.red; the next kernel adds a channel's G partials in
 * range order. Nothing depends on scheduling, so results repeat bit for bit.
 *
 * Forward (training): two launches.
 *   bn_stats_k   per block, the mean m_g of its range and the sum of squared deviations
 *                from it, M2_g (two passes over the range, the second from cache)
 *                                                      -> red[2*(c*G + g)], [+1]
 *   bn_apply_k   combines a channel's ranges in range order (Chan et al.'s pairwise
 *                update: mean = sum n_g m_g / n, M2 = sum M2_g + n_g (m_g - mean)^2,
 *                exact in exact arithmetic, and in double no less accurate than the CPU's
 *                two passes over all of x), then y = (x - mean) * invstd*gamma + beta;
 *                block g = 0 also writes the saved and the running statistics.
 * Backward: two launches: partial sums of dy and dy * xhat, then dgamma/dbeta (block 0)
 * and dx (added, or written by kcuda_bn_backward_set).
 *
 * One launch fewer (DARTSC_CUDA_ONE_LAUNCH, kcuda_g.one_launch; kcuda_last_block): the
 * last block of a channel's G ranges in bn_stats_k combines them (the same device
 * functions as the second kernel, so the same bits); for the deferred batch norm's
 * coefficients (kcuda_bn_coefs_train) it writes them, the saved and the running
 * statistics, and the second launch is gone; for a full forward it writes the channel's
 * mean and variance after the partials, which bn_apply_k then reads instead of every one
 * of its G x C blocks combining the ranges again. Backward the same: bn_bwd_sums_k's last
 * block per channel adds the sums, dgamma and dbeta, and bn_bwd_apply_k only reads them
 * (and does not run where no dx is asked). Not with sync_bn (a host round trip sits
 * between the launches).
 *
 * sync_bn (d->sync, data-parallel runs; the twin of kernels/cpu/bn.c's): between the two
 * launches, bn_local_k combines each channel's ranges into this process's (count, mean,
 * M2) (backward: its sums of dy and dy * xhat), those 3 C (2 C) doubles are copied to
 * the host (the stream synchronised), d->sync->gather returns every process's, they are
 * merged in process order on the host (kbn_sync_merge, the CPU path's code; backward: added
 * in process order) and the merged values copied back, where the second launch reads them
 * instead of combining the ranges itself. dgamma and dbeta keep this process's own sums, as
 * on the CPU (the loops' all-reduce of the weight gradients adds them). A host round trip
 * per batch norm: the plan records no CUDA graph when sync_bn is on (runtime/plan.c).
 *
 * Batched (kcuda_bn_*_batch, kcuda.h): n <= KCUDA_MAX_BATCH batch norms of one descriptor
 * through the same kernels, each launched once for all: the grids keep (G, C) in x and y
 * and take the problem from z (bn_batch, BN_IO); the single entry points are the n = 1
 * case (the B = 1 instances, no table carried). Problem k of a launch owns red + k per
 * (its partials, and in one-launch mode its 2 C combined values after them) and, one-
 * launch, counters count + k C; bn_plan_of decides one-launch mode as for one problem and
 * how many problems fit a launch. No batched path with sync_bn. */
#include <math.h>
#include <stdlib.h>

#include "kcuda_internal.cuh"
#include "pool_window.cuh"

/* Ranges per channel: about KCUDA_TARGET_BLOCKS blocks in all, no range under 1,024
 * values, and 2*C*G partials within kcuda_g.red. */
static int bn_groups(const kbn_desc *d) {
    const int64_t cnt = (int64_t)d->N * d->HW;
    int64_t g = (KCUDA_TARGET_BLOCKS + d->C - 1) / d->C;
    const int64_t by_size = (cnt + 1023) / 1024;
    if (g > by_size) g = by_size;
    if (g > 1024) g = 1024;
    const int64_t sync = d->sync ? 3 * (int64_t)d->C : 0; /* sync_bn's per-channel values after the partials */
    while (g > 1 && 2 * (int64_t)d->C * g + sync > KCUDA_RED_CAP) g /= 2;
    return g < 1 ? 1 : (int)g;
}

/* Indices within a channel are 32-bit (the entry points refuse N*HW >= 2^31): a 64-bit
 * division per value costs more than the memory access it indexes. */
static int bn_too_big(const kbn_desc *d, const char *what) {
    if ((int64_t)d->N * d->HW < ((int64_t)1 << 31)) return 0;
    KCUDA_FAIL_(what, "more than 2^31 values per channel", return 1);
}

/* This block's range [j0, j1) of its channel's cnt values (G ranges of equal size). */
#define BN_RANGE(cnt, G)                                                       \
    const unsigned chunk_ = ((cnt) + (G) - 1) / (G);                           \
    const unsigned j0 = blockIdx.x * chunk_;                                   \
    const unsigned j1 = j0 + chunk_ < (cnt) ? j0 + chunk_ : (cnt)

/* A thread's values of a channel's range: j = j0 + threadIdx.x, + blockDim.x, ... < j1,
 * in that order, as offsets into the (N, C, HW) tensor. The loops below take BN_U offsets
 * at a time, load all BN_U values, then use them in order: the same arithmetic in the same
 * order as one value at a time, with BN_U loads in flight per thread instead of one (the
 * old loops issued a load, waited for it and added it: about 4 bytes in flight per thread,
 * latency-bound, 10-25 us a batch norm on the H200 for 1-8 MB). The sample and pixel of j
 * are kept up to date by additions (a division only where a step crosses a sample) instead
 * of a division and a remainder per value. */
#define BN_U 8
struct bn_walk {
    unsigned j, j1, n, p, hw, step, C, c;
    __device__ bn_walk(unsigned j0, unsigned j1_, unsigned HW, unsigned C_, unsigned c_)
        : j(j0 + threadIdx.x), j1(j1_), hw(HW), step(blockDim.x), C(C_), c(c_) {
        n = hw ? j / hw : 0; /* hw 0: no value (j >= j1 = 0) */
        p = j - n * hw;
    }
    __device__ bool more() const { return j < j1; }
    /* The next value's offset, or -1 past the range. */
    __device__ int64_t next() {
        if (j >= j1) return -1;
        const int64_t o = ((int64_t)n * C + c) * hw + p;
        j += step;
        p += step;
        if (p >= hw) n += p / hw, p %= hw;
        return o;
    }
};

/* f(offset, v) for each of the thread's values of its range in order, v[k] the value of
 * array a[k] there (0 where a[k] is NULL): BN_U offsets at a time, all their loads issued
 * before the first f (unconditionally: a value past the range reloads the first, so the
 * compiler issues them together instead of interleaving predicated loads with the
 * arithmetic that waits on them). */
template <int NA, typename F>
__device__ static inline void bn_each(bn_walk w, const float *const (&a)[NA], F f) {
    while (w.more()) {
        int64_t o[BN_U];
        float v[BN_U][NA];
#pragma unroll
        for (int u = 0; u < BN_U; u++) o[u] = w.next();
#pragma unroll
        for (int u = 0; u < BN_U; u++) {
            const int64_t q = o[u] >= 0 ? o[u] : o[0]; /* o[0] >= 0 while more() */
#pragma unroll
            for (int k = 0; k < NA; k++) v[u][k] = a[k] ? a[k][q] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < BN_U; u++)
            if (o[u] >= 0) f(o[u], v[u]);
    }
}

/* n problems per launch (the batched entry points; a single call is n = 1): each kernel
 * takes its problems' pointers as one kernel parameter, bn_batch<IO, B>, B = 1 for a
 * single call (no table carried) or KCUDA_MAX_BATCH for a batch, and serves problem
 * blockIdx.z (gridDim.z: the problems of the launch; no kernel here uses z otherwise),
 * reading that problem's entry where the parameter lies (__grid_constant__: no per-thread
 * copy of the table). Everything else is the single kernel's code. */
template <typename IO, int B> struct bn_batch {
    IO p[B];
};
#define BN_IO(P) (P).p[B == 1 ? 0 : blockIdx.z]

/* Sum over a channel's G partials part[g * stride] by warp 0 (lane l takes g = l, l + 32,
 * ... in order, then a fixed shuffle tree): a fixed order, and G/32 dependent adds of
 * latency instead of G. Call from every thread of warp 0; lane 0 gets the total. */
/* CG: the partials were written by other blocks of this launch (one-launch mode): read
 * them through L2 (__ldcg; see kcuda_last_block). The same values and order either way. */
template <bool CG> __device__ static inline double bn_ld(const double *p) { return CG ? __ldcg(p) : *p; }

template <bool CG> __device__ static inline double bn_total_w(const double *part, int G, int stride) {
    double t = 0.0;
    for (int g = (int)threadIdx.x; g < G; g += 32) t += bn_ld<CG>(part + (int64_t)g * stride);
    return kcuda_warp_sum(t);
}

/* What the last block of a channel writes in one-launch mode (cnt not NULL): stat (the
 * mean at [c], the biased variance at [C + c], for bn_apply_k), or, with coef, what
 * bn_apply_k's block 0 writes for kcuda_bn_coefs_train. cnt NULL: nothing (two launches). */
typedef struct bn_fin {
    unsigned *cnt;
    double *stat, *stat_out; /* stat_out: the statistics for the batch norms of the same input */
    float *coef, *save_mean, *save_invstd, *running_mean, *running_var;
    const float *gamma, *beta;
} bn_fin;

__device__ __noinline__ static void bn_finish_stats(const double *red, const bn_fin *f, kbn_desc d, int c, int G);

/* A problem of bn_stats_k: its partials (red), its input, what its last blocks write. */
typedef struct bn_stats_io {
    double *red;
    const float *x;
    bn_fin fin;
} bn_stats_io;

/* bn_stats_k's work after its first pass (s: the thread's sum of its values of the range
 * [j0, j1) of channel c, in bn_walk's order), shared with pool_stats_k so that both give
 * the same bits for the same values: the block's mean, the second pass over x (the values
 * again, from cache) for the squared deviations, the partials into red, and where fin
 * asks, the last block's finish. sh and mean_sh: the kernel's shared memory. */
__device__ static inline bool bn_stats_rest(double s, const float *x, double *red, const bn_fin &fin, kbn_desc d, int c,
                                            int G, unsigned j0, unsigned j1, double *sh, double *mean_sh) {
    s = kcuda_block_sum0(s, sh);
    if (threadIdx.x == 0) *mean_sh = j1 > j0 ? s / (double)(j1 - j0) : 0.0;
    __syncthreads();
    const double m = *mean_sh;
    double ss = 0.0;
    const float *const xs[1] = {x};
    bn_each(bn_walk(j0, j1, (unsigned)d.HW, d.C, c), xs, [&](int64_t, const float *v) {
        const double t = v[0] - m;
        ss += t * t;
    });
    ss = kcuda_block_sum0(ss, sh);
    if (threadIdx.x == 0) {
        red[2 * ((int64_t)c * G + blockIdx.x)] = m;
        red[2 * ((int64_t)c * G + blockIdx.x) + 1] = ss;
    }
    if (!fin.cnt || !kcuda_last_block(fin.cnt + c, (unsigned)G)) return false;
    bn_finish_stats(red, &fin, d, c, G);
    return true;
}

template <int B>
__global__ static void bn_stats_k(const __grid_constant__ bn_batch<bn_stats_io, B> P, kbn_desc d, int G) {
    const bn_stats_io &io = BN_IO(P);
    const float *const x = io.x;
    __shared__ double sh[KCUDA_THREADS / 32];
    __shared__ double mean_sh;
    const int c = blockIdx.y, C = d.C;
    const unsigned HW = (unsigned)d.HW, cnt = (unsigned)d.N * HW;
    BN_RANGE(cnt, G);
    double s = 0.0;
    const float *const xs[1] = {x};
    bn_each(bn_walk(j0, j1, HW, C, c), xs, [&](int64_t, const float *v) { s += v[0]; });
    bn_stats_rest(s, x, io.red, io.fin, d, c, G, j0, j1, sh, &mean_sh);
}

/* A pool whose output's batch statistics are taken as it is written (kcuda_pool_forward_
 * stats): bn_stats_k over the pool's output y with the first pass computing each value
 * (pool_window.cuh, pool.cu's expressions) instead of loading it, and storing it; the
 * second pass reads back what this thread wrote. The same values in the same order as
 * bn_stats_k reading y afterwards, so the same partials, and the last block of a channel
 * writes its mean and biased variance (fin.stat_out), as a batch norm's would. */
typedef struct pool_stats_io {
    double *red;
    float *y;
    const float *x;
    bn_fin fin;
    int ntk; /* batch norms of y whose forwards the last blocks finish too (kbn_taker) */
    kbn_taker tk[KCUDA_POOL_TAKERS];
} pool_stats_io;

template <int B, bool MAX>
__global__ static void pool_stats_k(const __grid_constant__ bn_batch<pool_stats_io, B> P, kpool_desc pd, kbn_desc d,
                                    int G) {
    const pool_stats_io &io = BN_IO(P);
    float *const y = io.y;
    __shared__ double sh[KCUDA_THREADS / 32];
    __shared__ double mean_sh;
    const int c = blockIdx.y, C = d.C;
    const unsigned HW = (unsigned)d.HW, cnt = (unsigned)d.N * HW, Q = (unsigned)pd.Q;
    const int64_t in_plane = (int64_t)pd.H * pd.W;
    BN_RANGE(cnt, G);
    double s = 0.0;
    for (bn_walk w(j0, j1, HW, C, c); w.more();) {
        const unsigned n = w.n, p = w.p; /* the sample and output pixel of the offset next() returns */
        const int64_t o = w.next();
        const float *const xp = io.x + ((int64_t)n * C + c) * in_plane;
        const int pp = (int)(p / Q), qq = (int)(p - (unsigned)pp * Q);
        const float v = MAX ? pool_max_out(xp, pd, pp, qq) : pool_avg_out(xp, pd, pp, qq);
        y[o] = v;
        s += v;
    }
    if (!bn_stats_rest(s, y, io.red, io.fin, d, c, G, j0, j1, sh, &mean_sh)) return;
    /* the last block of the channel: each taker's coefficients, saved and running
       statistics from the same ranges, by the code of a batch norm's own last block (the
       values bn_apply_k writes from the statistics, kcuda_bn_train_shared's takers); not
       unrolled: one copy of the finish, not four, in the kernel's registers */
#pragma unroll 1
    for (int k = 0; k < io.ntk; k++) {
        const kbn_taker &t = io.tk[k];
        bn_fin f = {};
        f.coef = t.coef;
        f.save_mean = t.save_mean;
        f.save_invstd = t.save_invstd;
        f.running_mean = t.running_mean;
        f.running_var = t.running_var;
        f.gamma = t.gamma;
        f.beta = t.beta;
        kbn_desc dk = d;
        dk.eps = t.eps;
        dk.momentum = t.momentum;
        bn_finish_stats(io.red, &f, dk, c, G);
    }
}

/* The ranges of bn_stats_k of channel c, combined in a fixed order by warp 0 (call from
 * every thread of warp 0): lane 0 gets the channel's mean and M2 (sum of squared
 * deviations from it). */
/* The products and sums are written as explicit round-to-nearest intrinsics (the fused
 * multiply-adds nvcc chose for the plain expressions, mean += n_g m_g and M2 +=
 * (n_g dm) dm + M2_g): no contraction is left to the compiler, so bn_apply_k and
 * bn_stats_k's last block (one-launch mode) compute the same bits wherever this is
 * inlined. */
template <bool CG>
__device__ static inline void bn_combine_w(const double *red, int c, unsigned cnt, int G, double *mean_out,
                                           double *m2_out) {
    const unsigned chunk = (cnt + G - 1) / G;
    const double *st = red + 2 * (int64_t)c * G;
    double mean = 0.0, m2 = 0.0;
    for (int g = (int)threadIdx.x; g < G; g += 32) {
        const unsigned a = (unsigned)g * chunk, b = a + chunk < cnt ? a + chunk : cnt;
        if (b > a) mean = __fma_rn((double)(b - a), bn_ld<CG>(st + 2 * g), mean);
    }
    mean = kcuda_warp_sum(mean);
    mean = __shfl_sync(0xffffffffu, mean, 0);
    mean = cnt > 0 ? mean / (double)cnt : 0.0;
    for (int g = (int)threadIdx.x; g < G; g += 32) {
        const unsigned a = (unsigned)g * chunk, b = a + chunk < cnt ? a + chunk : cnt;
        if (b <= a) continue;
        const double dm = __dsub_rn(bn_ld<CG>(st + 2 * g), mean);
        m2 = __dadd_rn(m2, __fma_rn(dm, __dmul_rn((double)(b - a), dm), bn_ld<CG>(st + 2 * g + 1)));
    }
    *mean_out = mean;
    *m2_out = kcuda_warp_sum(m2);
}

/* sync_bn: this process's (count, mean, M2) of channel c = blockIdx.x into loc[3c..3c+2]
 * (one warp per channel). */
__global__ static void bn_local_k(double *loc, const double *red, kbn_desc d, int G) {
    const int c = blockIdx.x;
    const unsigned cnt = (unsigned)d.N * (unsigned)d.HW;
    double mean, m2;
    bn_combine_w<false>(red, c, cnt, G, &mean, &m2);
    if (threadIdx.x == 0) {
        loc[3 * c] = (double)cnt;
        loc[3 * c + 1] = mean;
        loc[3 * c + 2] = m2;
    }
}

/* Channel c's coefficients y = (x - fm) * sc + b from its mean and biased variance. */
__device__ static inline void bn_scale_of(double mean, double var, float eps, const float *gamma, const float *beta,
                                          int c, double *invstd, float *fm, float *sc, float *b) {
    *invstd = 1.0 / sqrt(var + (double)eps);
    const float g = gamma ? gamma[c] : 1.0f;
    *b = beta ? beta[c] : 0.0f;
    *sc = (float)*invstd * g;
    *fm = (float)mean;
}

/* What one thread writes per channel: the coefficients (coef not NULL), the saved
 * statistics and the running ones from n values (bn_apply_k and, one-launch,
 * bn_finish_stats). The running averages as explicit intrinsics (nvcc's contraction of
 * (1 - m) r + m v, fixed), for the reason of bn_combine_w. */
__device__ static inline void bn_channel_out(float *coef, float *save_mean, float *save_invstd,
                                                   float *running_mean, float *running_var, int c, int C, double mean,
                                                   double var, double invstd, float fm, float sc, float b, double n,
                                                   float momentum) {
    if (coef) {
        coef[c] = fm;
        coef[C + c] = sc;
        coef[2 * C + c] = b;
    }
    if (save_mean) save_mean[c] = fm;
    if (save_invstd) save_invstd[c] = (float)invstd;
    const double m = momentum; /* (double)(cnt - 1) == n - 1: exact */
    if (running_mean) running_mean[c] = (float)__fma_rn(m, mean, __dmul_rn(1.0 - m, (double)running_mean[c]));
    if (running_var) {
        const double unb = n > 1 ? __ddiv_rn(__dmul_rn(var, n), n - 1) : var;
        running_var[c] = (float)__fma_rn(m, unb, __dmul_rn(1.0 - m, (double)running_var[c]));
    }
}

/* bn_stats_k's last block of channel c (every thread calls): warp 0 combines the ranges
 * as bn_apply_k does, thread 0 writes what fin asks. */
__device__ __noinline__ static void bn_finish_stats(const double *red, const bn_fin *f, kbn_desc d, int c, int G) {
    if (threadIdx.x >= 32) return;
    const unsigned cnt = (unsigned)d.N * (unsigned)d.HW;
    double mean, m2;
    bn_combine_w<true>(red, c, cnt, G, &mean, &m2);
    if (threadIdx.x != 0) return;
    const double var = cnt > 0 ? m2 / (double)cnt : 0.0;
    if (f->stat) {
        f->stat[c] = mean;
        f->stat[d.C + c] = var;
    }
    if (f->stat_out) {
        f->stat_out[c] = mean;
        f->stat_out[d.C + c] = var;
    }
    if (!f->coef) return;
    double invstd;
    float fm, sc, b;
    bn_scale_of(mean, var, d.eps, f->gamma, f->beta, c, &invstd, &fm, &sc, &b);
    bn_channel_out(f->coef, f->save_mean, f->save_invstd, f->running_mean, f->running_var, c, d.C, mean, var, invstd,
                   fm, sc, b, (double)cnt, d.momentum);
}

/* y NULL: only the statistics and, with coef, the coefficients f, s, b of the output
 * y = (x - f) * s + b (coef[c], coef[C + c], coef[2C + c]) for a consumer that applies
 * them as it reads x (kcuda_bn_coefs_train; one block per channel suffices). The output
 * is written as __fmaf_rn(x - f, s, b), the expression such a consumer uses: the same
 * bits either way.
 * stat NULL: the statistics from the ranges in red; else (sync_bn) the mean and biased
 * variance of every process's values, stat[c] and stat[C + c], over gcnt values (or, one-
 * launch mode, this process's, which bn_stats_k's last blocks wrote there). */
typedef struct bn_apply_io {
    float *y, *coef, *save_mean, *save_invstd, *running_mean, *running_var;
    double *stat_out; /* NULL, or where block 0 writes the channel's mean and variance (stats_out) */
    const double *red, *stat;
    const float *x, *gamma, *beta;
} bn_apply_io;

template <int B>
__global__ static void bn_apply_k(const __grid_constant__ bn_batch<bn_apply_io, B> P, double gcnt, kbn_desc d, int G) {
    const bn_apply_io &io = BN_IO(P);
    float *const y = io.y;
    const double *const red = io.red, *const stat = io.stat;
    const float *const x = io.x, *const gamma = io.gamma, *const beta = io.beta;
    __shared__ double stat_sh[2];
    const int c = blockIdx.y, C = d.C;
    const unsigned HW = (unsigned)d.HW, cnt = (unsigned)d.N * HW;
    if (stat) {
        if (threadIdx.x == 0) {
            stat_sh[0] = stat[c];
            stat_sh[1] = stat[C + c];
        }
    } else if (threadIdx.x < 32) {
        double mean, m2;
        bn_combine_w<false>(red, c, cnt, G, &mean, &m2);
        if (threadIdx.x == 0) {
            stat_sh[0] = mean;
            stat_sh[1] = cnt > 0 ? m2 / (double)cnt : 0.0;
        }
    }
    __syncthreads();
    const double mean = stat_sh[0], var = stat_sh[1];
    double invstd;
    float fm, sc, b;
    bn_scale_of(mean, var, d.eps, gamma, beta, c, &invstd, &fm, &sc, &b);
    if (y) {
        BN_RANGE(cnt, G);
        const float *const xs[1] = {x};
        bn_each(bn_walk(j0, j1, HW, C, c), xs, [&](int64_t o, const float *v) { y[o] = __fmaf_rn(v[0] - fm, sc, b); });
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        bn_channel_out(io.coef, io.save_mean, io.save_invstd, io.running_mean, io.running_var, c, C, mean, var, invstd,
                       fm, sc, b, stat ? gcnt : (double)cnt, d.momentum);
        if (io.stat_out) {
            io.stat_out[c] = mean;
            io.stat_out[C + c] = var;
        }
    }
}

__global__ static void bn_fwd_infer_k(float *y, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, kbn_desc d) {
    const int64_t total = (int64_t)d.N * d.C * d.HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int c = (int)(i / d.HW % d.C);
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + (double)d.eps));
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        const float sc = invstd * g, m = running_mean[c];
        y[i] = __fmaf_rn(x[i] - m, sc, b);
    }
}

/* The coefficients of kcuda_bn_forward_infer's output, f = running mean, s, b as it
 * computes them, for a consumer that applies them as it reads x. */
__global__ static void bn_coefs_infer_k(float *coef, const float *gamma, const float *beta, const float *running_mean,
                                        const float *running_var, kbn_desc d) {
    KCUDA_GRID_STRIDE(c, (int64_t)d.C) {
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + (double)d.eps));
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        coef[c] = running_mean[c];
        coef[d.C + c] = invstd * g;
        coef[2 * d.C + c] = b;
    }
}

/* Partial sums of dy and dy * xhat over this block's range. */
/* dys: NULL, or a device scalar by which dy is read: each product rounded to float (an
 * explicit __fmul_rn: never fused into what follows), the bits of reading a buffer that
 * held dys * dy (the runtime's pass-through of a mixed op's output gradient). */

/* One-launch mode (cnt not NULL): the last block of channel c adds its G sums in
 * bn_bwd_apply_k's order (bn_total_w), adds them to dbeta and dgamma as its block 0 does,
 * and leaves them at tot[2c], tot[2c + 1] (tot NULL: not needed, no dx). */
typedef struct bn_bfin {
    unsigned *cnt;
    double *tot;
    float *dgamma, *dbeta;
} bn_bfin;

/* The further output gradients a problem sums (NM of them at most, n of them here: the
 * runtime's summed batch norms, kcuda_bn_backward_sum); an empty base where NM is 0, so
 * that the plain backward's problems keep their size. */
template <int NM> struct bn_more_io {
    int n;
    const float *dy[NM], *dys[NM];
};
template <> struct bn_more_io<0> {};

/* A problem's output gradient at one offset, v[0] its dy there and v[at + k] the k-th
 * further one's: dy times its scale where it has one, then each further one (times its
 * scale) added, each product and sum rounded to float in that order (kcpu_scaled_sum's
 * expression; never fused into an FMA). The scales are read once, at construction. */
template <int NM> struct bn_gsum {
    float s0, s[NM > 0 ? NM : 1];
    bool has0, has[NM > 0 ? NM : 1];
    int n;
    __device__ bn_gsum(const float *dys, const bn_more_io<NM> &m) : s0(dys ? *dys : 1.0f), has0(dys != NULL), n(0) {
        if constexpr (NM > 0) {
            n = m.n;
#pragma unroll
            for (int k = 0; k < NM; k++) {
                has[k] = k < m.n && m.dys[k];
                s[k] = has[k] ? *m.dys[k] : 1.0f;
            }
        }
    }
    __device__ float operator()(const float *v, int at) const {
        float g = has0 ? __fmul_rn(s0, v[0]) : v[0];
        if constexpr (NM > 0) {
#pragma unroll
            for (int k = 0; k < NM; k++)
                if (k < n) g = __fadd_rn(g, has[k] ? __fmul_rn(s[k], v[at + k]) : v[at + k]);
        }
        return g;
    }
};

/* The arrays bn_each reads: first (the kernel's own, dy first), then the further gradients
 * (NULL past n: read as 0, unused). */
template <int NF, int NM>
__device__ static inline void bn_inputs(const float *(&a)[NF + NM], const float *const (&first)[NF],
                                        const bn_more_io<NM> &m) {
#pragma unroll
    for (int k = 0; k < NF; k++) a[k] = first[k];
    if constexpr (NM > 0) {
#pragma unroll
        for (int k = 0; k < NM; k++) a[NF + k] = k < m.n ? m.dy[k] : NULL;
    }
}

/* A problem of bn_bwd_sums_k: its partials (red), inputs, and what its last blocks write. */
template <int NM> struct bn_bsums_io : bn_more_io<NM> {
    double *red;
    const float *dy, *dys, *x, *save_mean, *save_invstd;
    bn_bfin fin;
};

template <int B, int NM>
__global__ static void bn_bwd_sums_k(const __grid_constant__ bn_batch<bn_bsums_io<NM>, B> P, kbn_desc d, int G) {
    const bn_bsums_io<NM> &io = BN_IO(P);
    double *const red = io.red;
    const float *const x = io.x;
    const bn_bfin &fin = io.fin;
    __shared__ double sh[KCUDA_THREADS / 32];
    const int c = blockIdx.y, C = d.C;
    const unsigned HW = (unsigned)d.HW, cnt = (unsigned)d.N * HW;
    const double mean = io.save_mean[c], invstd = io.save_invstd[c];
    BN_RANGE(cnt, G);
    double sdy = 0.0, sdyx = 0.0;
    const float *const first[2] = {io.dy, x};
    const float *in[2 + NM];
    bn_inputs<2, NM>(in, first, io);
    const bn_gsum<NM> gs(io.dys, io);
    bn_each(bn_walk(j0, j1, HW, C, c), in, [&](int64_t, const float *v) {
        const float g = gs(v, 2);
        sdy += g;
        sdyx += (double)g * ((v[1] - mean) * invstd);
    });
    sdy = kcuda_block_sum0(sdy, sh);
    sdyx = kcuda_block_sum0(sdyx, sh);
    if (threadIdx.x == 0) {
        red[(int64_t)c * G + blockIdx.x] = sdy;
        red[(int64_t)C * G + (int64_t)c * G + blockIdx.x] = sdyx;
    }
    if (!fin.cnt || !kcuda_last_block(fin.cnt + c, (unsigned)G) || threadIdx.x >= 32) return;
    const double a = bn_total_w<true>(red + (int64_t)c * G, G, 1);
    const double b = bn_total_w<true>(red + (int64_t)C * G + (int64_t)c * G, G, 1);
    if (threadIdx.x != 0) return;
    if (fin.dbeta) fin.dbeta[c] += (float)a;
    if (fin.dgamma) fin.dgamma[c] += (float)b;
    if (fin.tot) {
        fin.tot[2 * c] = a;
        fin.tot[2 * c + 1] = b;
    }
}

/* sync_bn: this process's sums of dy and dy * xhat of channel c = blockIdx.x into
 * loc[2c], loc[2c + 1] (one warp per channel; bn_bwd_apply_k's order). */
__global__ static void bn_bwd_local_k(double *loc, const double *red, kbn_desc d, int G) {
    const int c = blockIdx.x, C = d.C;
    const double a = bn_total_w<false>(red + (int64_t)c * G, G, 1);
    const double b = bn_total_w<false>(red + (int64_t)C * G + (int64_t)c * G, G, 1);
    if (threadIdx.x == 0) {
        loc[2 * c] = a;
        loc[2 * c + 1] = b;
    }
}

/* tot NULL: dx from this process's sums; else (sync_bn) from every process's, tot[2c] and
 * tot[2c + 1], over gcnt values (dgamma and dbeta keep this process's own), or (one-launch
 * mode: red, dgamma and dbeta NULL, bn_bwd_sums_k's last blocks did them) this process's. */
template <int NM> struct bn_bapply_io : bn_more_io<NM> {
    float *dx, *dgamma, *dbeta;
    const double *red, *tot;
    const float *dy, *dys, *x, *gamma, *save_mean, *save_invstd;
};

template <int B, int NM>
__global__ static void bn_bwd_apply_k(const __grid_constant__ bn_batch<bn_bapply_io<NM>, B> P, double gcnt,
                                      kbn_desc d, int G, int set) {
    const bn_bapply_io<NM> &io = BN_IO(P);
    float *const dx = io.dx;
    const double *const red = io.red, *const tot = io.tot;
    const float *const dy = io.dy, *const x = io.x;
    __shared__ double sum_sh[2];
    const int c = blockIdx.y, C = d.C;
    const unsigned HW = (unsigned)d.HW, cnt = (unsigned)d.N * HW;
    if (threadIdx.x < 32 && red) { /* red NULL (one-launch): nothing reads sum_sh */
        const double a = bn_total_w<false>(red + (int64_t)c * G, G, 1);
        const double b = bn_total_w<false>(red + (int64_t)C * G + (int64_t)c * G, G, 1);
        if (threadIdx.x == 0) {
            sum_sh[0] = a;
            sum_sh[1] = b;
        }
    }
    __syncthreads();
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        if (io.dbeta) io.dbeta[c] += (float)sum_sh[0];
        if (io.dgamma) io.dgamma[c] += (float)sum_sh[1];
    }
    if (!dx || cnt == 0) return;
    const double sdy = tot ? tot[2 * c] : sum_sh[0], sdyx = tot ? tot[2 * c + 1] : sum_sh[1];
    const double n = tot ? gcnt : (double)cnt;
    const double mean = io.save_mean[c], invstd = io.save_invstd[c];
    const double g = io.gamma ? io.gamma[c] : 1.0;
    /* dx = g*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) */
    const double mdy = sdy / n, mdyx = sdyx / n;
    const float k = (float)(g * invstd);
    const float a = (float)mdy, bcoef = (float)(mdyx * invstd);
    const float fm = (float)mean;
    BN_RANGE(cnt, G);
    const float *const first[3] = {dy, x, set ? NULL : dx};
    const float *in[3 + NM];
    bn_inputs<3, NM>(in, first, io);
    const bn_gsum<NM> gs(io.dys, io); /* the scales read once: the stores to dx cannot change them */
    if (set)
        bn_each(bn_walk(j0, j1, HW, C, c), in, [&](int64_t o, const float *v) {
            dx[o] = k * (gs(v, 3) - a - (v[1] - fm) * bcoef);
        });
    else
        bn_each(bn_walk(j0, j1, HW, C, c), in, [&](int64_t o, const float *v) {
            dx[o] = v[2] + k * (gs(v, 3) - a - (v[1] - fm) * bcoef);
        });
}
#undef BN_RANGE
#undef BN_IO

/* ---- sync_bn: the host round trip --------------------------------------------------------- */

static double *bn_host; /* 5 C doubles: this process's 3 C values, then the merged 2 C */
static size_t bn_host_n;

static double *bn_host_buf(size_t n) {
    if (n <= bn_host_n) return bn_host;
    double *p = (double *)realloc(bn_host, n * sizeof(double));
    if (!p) return NULL;
    bn_host = p;
    bn_host_n = n;
    return p;
}

/* The device room after the partials (loc, 3 C doubles) and the host buffer (5 C), or NULL
 * (reported). The same on every process (C and G are), so all fail alike. */
static double *bn_sync_room(const kbn_desc *d, int G, double **loc) {
    const int C = d->C;
    if (2 * (int64_t)C * G + 3 * (int64_t)C > KCUDA_RED_CAP)
        KCUDA_FAIL_("sync_bn", "too many channels for the reduction buffer", return NULL);
    double *h = bn_host_buf((size_t)5 * C);
    if (!h) KCUDA_FAIL_("sync_bn", "out of host memory", return NULL);
    *loc = kcuda_g.red + 2 * (int64_t)C * G;
    return h;
}

/* The n doubles at dev (this process's) to the host, every process's from d->sync->gather;
 * NULL on a CUDA error (reported). */
static const double *bn_exchange(const kbn_desc *d, const double *dev, int n, double *host, cudaStream_t s) {
    launchCheckR(NULL); /* the kernel that wrote dev */
    cudaCheckR(cudaMemcpyAsync(host, dev, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost, s), NULL);
    cudaCheckR(cudaStreamSynchronize(s), NULL);
    return d->sync->gather(d->sync->ctx, host, n);
}

/* After bn_stats_k: the mean and variance over every process's values, merged on the host
 * as the CPU path merges them, on the device at the returned address (C means, then C
 * variances), and their count in *gcnt. NULL on failure (reported). */
static const double *bn_sync_stats(const kbn_desc *d, int G, double *gcnt, cudaStream_t s) {
    const int C = d->C;
    double *loc, *h = bn_sync_room(d, G, &loc);
    if (!h) return NULL;
    bn_local_k<<<(unsigned)C, 32, 0, s>>>(loc, kcuda_g.red, *d, G);
    const double *all = bn_exchange(d, loc, 3 * C, h, s);
    if (!all) return NULL;
    *gcnt = (double)kbn_sync_merge(all, d->sync->size, C, h + 3 * C, h + 4 * C);
    cudaCheckR(cudaMemcpyAsync(loc, h + 3 * C, (size_t)2 * C * sizeof(double), cudaMemcpyHostToDevice, s), NULL);
    return loc;
}

/* After bn_bwd_sums_k: the sums of dy and dy * xhat over every process's values, added in
 * process order as on the CPU, on the device at the returned address (2 C). */
static const double *bn_sync_sums(const kbn_desc *d, int G, cudaStream_t s) {
    const int C = d->C;
    double *loc, *h = bn_sync_room(d, G, &loc);
    if (!h) return NULL;
    bn_bwd_local_k<<<(unsigned)C, 32, 0, s>>>(loc, kcuda_g.red, *d, G);
    const double *all = bn_exchange(d, loc, 2 * C, h, s);
    if (!all) return NULL;
    double *tot = h + 2 * C;
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int r = 0; r < d->sync->size; r++) {
            sdy += all[(size_t)r * 2 * C + 2 * c];
            sdyx += all[(size_t)r * 2 * C + 2 * c + 1];
        }
        tot[2 * c] = sdy;
        tot[2 * c + 1] = sdyx;
    }
    cudaCheckR(cudaMemcpyAsync(loc, tot, (size_t)2 * C * sizeof(double), cudaMemcpyHostToDevice, s), NULL);
    return loc;
}

/* One-launch mode for a batch norm of G ranges per channel: the lane's counters, with
 * room for 2 C doubles (stat, tot) after the 2 C G partials; NULL where it is off, with
 * sync_bn, or where the channels do not fit (then two launches, as by default). */
static unsigned *bn_one_launch(const kbn_desc *d, int G) {
    if (!kcuda_g.one_launch || d->sync || !kcuda_g.count || d->C > KCUDA_COUNT_CAP) return NULL;
    if (2 * (int64_t)d->C * G + 2 * (int64_t)d->C > KCUDA_RED_CAP) return NULL;
    return kcuda_g.count;
}

/* How problems of d use the lane: G ranges per channel; one, the counters where one-launch
 * mode is on (bn_one_launch: the single call's decision, so every problem of a batch takes
 * the path its single call would); per, the doubles of kcuda_g.red a problem's partials
 * (and, one-launch, its 2 C combined values) take; fit, the problems one launch can serve
 * (each its own region of red, problem k of a launch at red + k per, and, one-launch, its
 * own C counters at count + k C). */
typedef struct bn_plan {
    int G, fit;
    unsigned *one;
    int64_t per;
} bn_plan;

static bn_plan bn_plan_of(const kbn_desc *d) {
    bn_plan p;
    p.G = bn_groups(d);
    p.one = bn_one_launch(d, p.G);
    p.per = 2 * (int64_t)d->C * p.G + (p.one ? 2 * (int64_t)d->C : 0);
    int64_t fit = KCUDA_RED_CAP / p.per;
    if (p.one && KCUDA_COUNT_CAP / d->C < fit) fit = KCUDA_COUNT_CAP / d->C;
    p.fit = fit < 1 ? 1 : fit > KCUDA_MAX_BATCH ? KCUDA_MAX_BATCH : (int)fit;
    return p;
}

/* Problem i's pointer of a host array of device pointers, which may be NULL (every
 * problem's NULL). */
template <typename T> static inline T *bn_at(T *const *a, int i) { return a ? a[i] : NULL; }

/* The training forwards' problems (HOST arrays; coefs: kcuda_bn_coefs_train's output
 * coef, y NULL; else kcuda_bn_forward_train's y). */
typedef struct bn_fwd_args {
    float *const *y, *const *coef, *const *save_mean, *const *save_invstd, *const *running_mean, *const *running_var;
    const float *const *x, *const *gamma, *const *beta;
    int coefs;
    double *const *stat_out; /* NULL, or per problem NULL or where its statistics go (kcuda_bn_train_shared) */
} bn_fwd_args;

/* bn_apply_k's problem for problem i of a: its partials red, or the statistics stat. */
static bn_apply_io bn_apply_of(const bn_fwd_args *a, int i, const double *red, const double *stat) {
    bn_apply_io u = {};
    u.y = bn_at(a->y, i);
    u.coef = bn_at(a->coef, i);
    u.save_mean = bn_at(a->save_mean, i);
    u.save_invstd = bn_at(a->save_invstd, i);
    u.running_mean = bn_at(a->running_mean, i);
    u.running_var = bn_at(a->running_var, i);
    u.stat_out = bn_at(a->stat_out, i);
    u.red = red;
    u.stat = stat;
    u.x = a->x[i];
    u.gamma = bn_at(a->gamma, i);
    u.beta = bn_at(a->beta, i);
    return u;
}

/* The problems idx[0..m) (m <= B, m <= pl->fit) in one launch per kernel. */
template <int B>
static void bn_train_launch(const int *idx, int m, const bn_fwd_args *a, const kbn_desc *d, const bn_plan *pl,
                            cudaStream_t s) {
    const int C = d->C, G = pl->G;
    bn_batch<bn_stats_io, B> st = {};
    bn_batch<bn_apply_io, B> ap = {};
    for (int k = 0; k < m; k++) {
        const int i = idx[k];
        double *const red = kcuda_g.red + k * pl->per;
        bn_stats_io &t = st.p[k];
        t.red = red;
        t.x = a->x[i];
        if (pl->one) {
            t.fin.cnt = pl->one + (int64_t)k * C;
            if (a->coefs) { /* the last blocks write what bn_apply_k's one row of blocks would */
                t.fin.coef = bn_at(a->coef, i);
                t.fin.save_mean = bn_at(a->save_mean, i);
                t.fin.save_invstd = bn_at(a->save_invstd, i);
                t.fin.running_mean = bn_at(a->running_mean, i);
                t.fin.running_var = bn_at(a->running_var, i);
                t.fin.gamma = bn_at(a->gamma, i);
                t.fin.beta = bn_at(a->beta, i);
                t.fin.stat_out = bn_at(a->stat_out, i);
            } else {
                t.fin.stat = red + 2 * (int64_t)C * G; /* the mean and variance per channel */
            }
        }
        ap.p[k] = bn_apply_of(a, i, red, t.fin.stat);
    }
    bn_stats_k<B><<<dim3((unsigned)G, (unsigned)C, (unsigned)m), KCUDA_THREADS, 0, s>>>(st, *d, G);
    launchCheck();
    if (pl->one && a->coefs) return;
    double gcnt = pl->one ? (double)d->N * d->HW : 0; /* == bn_apply_k's (double)cnt */
    if (d->sync) { /* m == 1: kcuda_bn_batch_ok refuses sync_bn */
        ap.p[0].stat = bn_sync_stats(d, G, &gcnt, s);
        if (!ap.p[0].stat) return;
    }
    bn_apply_k<B><<<dim3(a->coefs ? 1 : (unsigned)G, (unsigned)C, (unsigned)m), KCUDA_THREADS, 0, s>>>(ap, gcnt, *d, G);
    launchCheck();
}

/* Runs launch for the n problems idx[0..n), pl->fit at a time (a single problem through
 * the kernels' B = 1 instances). */
#define BN_EACH_FIT(n, idx, pl, launch, ...)                                           \
    for (int i0_ = 0; i0_ < (n); i0_ += (pl)->fit) {                                    \
        const int m_ = (n) - i0_ < (pl)->fit ? (n) - i0_ : (pl)->fit;                   \
        if (m_ == 1) launch<1>((idx) + i0_, 1, __VA_ARGS__);                            \
        else launch<KCUDA_MAX_BATCH>((idx) + i0_, m_, __VA_ARGS__);                     \
    }

static void bn_train(int n, const bn_fwd_args *a, const kbn_desc *d, cudaStream_t s, const char *what) {
    if (d->C <= 0) return;
    if (!kcuda_g.red) KCUDA_FAIL_(what, "kcuda_init was not called", return);
    if (bn_too_big(d, what)) return;
    const bn_plan pl = bn_plan_of(d);
    int idx[KCUDA_MAX_BATCH];
    for (int i = 0; i < n; i++) idx[i] = i;
    BN_EACH_FIT(n, idx, &pl, bn_train_launch, a, d, &pl, s);
}

extern "C" void kcuda_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                                       float *running_var, const float *x, const float *gamma, const float *beta,
                                       const kbn_desc *d, cudaStream_t s) {
    const bn_fwd_args a = {&y, NULL, &save_mean, &save_invstd, &running_mean, &running_var, &x, &gamma, &beta, 0, NULL};
    bn_train(1, &a, d, s, "kcuda_bn_forward_train");
}

extern "C" void kcuda_bn_coefs_train(float *coef, float *save_mean, float *save_invstd, float *running_mean,
                                     float *running_var, const float *x, const float *gamma, const float *beta,
                                     const kbn_desc *d, cudaStream_t s) {
    const bn_fwd_args a = {NULL, &coef, &save_mean, &save_invstd, &running_mean, &running_var, &x, &gamma, &beta, 1, NULL};
    bn_train(1, &a, d, s, "kcuda_bn_coefs_train");
}

/* Training forwards from statistics other batch norms of the same inputs wrote (stat[i]:
 * mean [c], biased variance [C + c]): bn_apply_k's second launch alone for n problems (1..
 * KCUDA_MAX_BATCH), reading them as it reads sync_bn's merged ones, so the same bits as
 * computing them. */
template <int B>
static void bn_from_stats(int n, const bn_fwd_args *a, const double *const *stat, const kbn_desc *d, cudaStream_t s) {
    const int G = bn_groups(d);
    bn_batch<bn_apply_io, B> ap = {};
    for (int i = 0; i < n; i++) ap.p[i] = bn_apply_of(a, i, NULL, stat[i]);
    const double cnt = (double)d->N * d->HW; /* == bn_apply_k's (double)cnt */
    bn_apply_k<B><<<dim3(a->coefs ? 1 : (unsigned)G, (unsigned)d->C, (unsigned)n), KCUDA_THREADS, 0, s>>>(ap, cnt, *d, G);
    launchCheck();
}

extern "C" void kcuda_bn_coefs_infer(float *coef, const float *gamma, const float *beta, const float *running_mean,
                                     const float *running_var, const kbn_desc *d, cudaStream_t s) {
    if (d->C <= 0) return;
    bn_coefs_infer_k<<<kcuda_blocks(d->C), KCUDA_THREADS, 0, s>>>(coef, gamma, beta, running_mean, running_var, *d);
    launchCheck();
}

extern "C" void kcuda_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var, const kbn_desc *d,
                                       cudaStream_t s) {
    const int64_t total = (int64_t)d->N * d->C * d->HW;
    if (total <= 0) return;
    bn_fwd_infer_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(y, x, gamma, beta, running_mean, running_var, *d);
    launchCheck();
}


/* The backwards' problems (HOST arrays); set: dx written, else added to; more: NULL, or
 * each problem's further output gradients (kcuda_bn_backward_sum). */
typedef struct bn_bwd_args {
    float *const *dx, *const *dgamma, *const *dbeta;
    const float *const *dy, *const *dys, *const *x, *const *gamma, *const *save_mean, *const *save_invstd;
    int set;
    const kbn_more *more;
} bn_bwd_args;

/* Problem i's further gradients into an io (NM > 0). */
template <int NM> static void bn_more_of(bn_more_io<NM> &io, const bn_bwd_args *a, int i) {
    if constexpr (NM > 0) {
        io.n = a->more ? a->more[i].n : 0;
        for (int k = 0; k < NM; k++) {
            io.dy[k] = k < io.n ? a->more[i].dy[k] : NULL;
            io.dys[k] = k < io.n ? a->more[i].dys[k] : NULL;
        }
    }
}

/* Problems a launch with further gradients serves: its parameter (~140 bytes a problem)
 * stays within the 4 KB every CUDA version passes. */
#define BN_MORE_BATCH 16

template <int B, int NM>
static void bn_bwd_launch(const int *idx, int m, const bn_bwd_args *a, const kbn_desc *d, const bn_plan *pl,
                          cudaStream_t s) {
    const int C = d->C, G = pl->G;
    bn_batch<bn_bsums_io<NM>, B> su = {};
    bn_batch<bn_bapply_io<NM>, B> ap = {};
    int q = 0; /* the problems of the second launch */
    for (int k = 0; k < m; k++) {
        const int i = idx[k];
        double *const red = kcuda_g.red + k * pl->per;
        float *const dx = bn_at(a->dx, i);
        bn_bsums_io<NM> &t = su.p[k];
        bn_more_of<NM>(t, a, i);
        t.red = red;
        t.dy = a->dy[i];
        t.dys = bn_at(a->dys, i);
        t.x = a->x[i];
        t.save_mean = a->save_mean[i];
        t.save_invstd = a->save_invstd[i];
        if (pl->one) { /* the last blocks do the sums, dgamma and dbeta; dx (if asked) from tot */
            t.fin.cnt = pl->one + (int64_t)k * C;
            t.fin.tot = dx ? red + 2 * (int64_t)C * G : NULL;
            t.fin.dgamma = bn_at(a->dgamma, i);
            t.fin.dbeta = bn_at(a->dbeta, i);
            if (!dx) continue;
        }
        bn_bapply_io<NM> &u = ap.p[q++];
        bn_more_of<NM>(u, a, i);
        u.dx = dx;
        u.dgamma = pl->one ? NULL : bn_at(a->dgamma, i);
        u.dbeta = pl->one ? NULL : bn_at(a->dbeta, i);
        u.red = pl->one ? NULL : red;
        u.tot = t.fin.tot;
        u.dy = t.dy;
        u.dys = t.dys;
        u.x = t.x;
        u.gamma = bn_at(a->gamma, i);
        u.save_mean = t.save_mean;
        u.save_invstd = t.save_invstd;
    }
    bn_bwd_sums_k<B, NM><<<dim3((unsigned)G, (unsigned)C, (unsigned)m), KCUDA_THREADS, 0, s>>>(su, *d, G);
    launchCheck();
    if (!q) return; /* one-launch mode, no dx asked */
    /* one-launch: over this process's values; sync_bn: every process's (equal shards, the
     * loops check); else bn_bwd_apply_k's own count */
    double gcnt = pl->one ? (double)d->N * d->HW : 0;
    if (d->sync) { /* m == 1: kcuda_bn_batch_ok refuses sync_bn */
        ap.p[0].tot = bn_sync_sums(d, G, s);
        if (!ap.p[0].tot) return;
        gcnt = (double)d->N * d->HW * d->sync->size;
    }
    bn_bwd_apply_k<B, NM><<<dim3((unsigned)G, (unsigned)C, (unsigned)q), KCUDA_THREADS, 0, s>>>(ap, gcnt, *d, G, a->set);
    launchCheck();
}

static void bn_backward(int n, const bn_bwd_args *a, const kbn_desc *d, cudaStream_t s) {
    int idx[KCUDA_MAX_BATCH], m = 0; /* the problems that ask for anything */
    for (int i = 0; i < n; i++)
        if (bn_at(a->dx, i) || bn_at(a->dgamma, i) || bn_at(a->dbeta, i)) idx[m++] = i;
    if (!m) return;
    if (d->C <= 0) return;
    if (!kcuda_g.red) KCUDA_FAIL_("kcuda_bn_backward", "kcuda_init was not called", return);
    if (bn_too_big(d, "kcuda_bn_backward")) return;
    const bn_plan pl = bn_plan_of(d);
    int more = 0;
    for (int k = 0; a->more && k < m; k++) {
        const kbn_more *mo = &a->more[idx[k]];
        if (mo->n < 0 || mo->n > KCUDA_BN_MORE) KCUDA_FAIL_("kcuda_bn_backward_sum", "more than KCUDA_BN_MORE further gradients", return);
        for (int j = 0; j < mo->n; j++)
            if (!mo->dy[j]) KCUDA_FAIL_("kcuda_bn_backward_sum", "a NULL further output gradient", return);
        more |= mo->n > 0;
    }
    const int fit = !more || pl.fit < BN_MORE_BATCH ? pl.fit : BN_MORE_BATCH;
    for (int i0 = 0; i0 < m; i0 += fit) {
        const int mm = m - i0 < fit ? m - i0 : fit;
        if (!more && mm == 1) bn_bwd_launch<1, 0>(idx + i0, 1, a, d, &pl, s);
        else if (!more) bn_bwd_launch<KCUDA_MAX_BATCH, 0>(idx + i0, mm, a, d, &pl, s);
        else if (mm == 1) bn_bwd_launch<1, KCUDA_BN_MORE>(idx + i0, 1, a, d, &pl, s);
        else bn_bwd_launch<BN_MORE_BATCH, KCUDA_BN_MORE>(idx + i0, mm, a, d, &pl, s);
    }
}

extern "C" void kcuda_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                  const float *gamma, const float *save_mean, const float *save_invstd,
                                  const kbn_desc *d, cudaStream_t s) {
    const bn_bwd_args a = {&dx, &dgamma, &dbeta, &dy, NULL, &x, &gamma, &save_mean, &save_invstd, 0, NULL};
    bn_backward(1, &a, d, s);
}
extern "C" void kcuda_bn_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                      const float *gamma, const float *save_mean, const float *save_invstd,
                                      const kbn_desc *d, cudaStream_t s) {
    const bn_bwd_args a = {&dx, &dgamma, &dbeta, &dy, NULL, &x, &gamma, &save_mean, &save_invstd, 1, NULL};
    bn_backward(1, &a, d, s);
}

extern "C" void kcuda_bn_backward_scaled(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                                         const float *x, const float *gamma, const float *save_mean,
                                         const float *save_invstd, const kbn_desc *d, int accumulate, cudaStream_t s) {
    const bn_bwd_args a = {&dx, &dgamma, &dbeta, &dy, &dy_scale, &x, &gamma, &save_mean, &save_invstd, !accumulate, NULL};
    bn_backward(1, &a, d, s);
}

extern "C" void kcuda_bn_backward_sum(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                                      const kbn_more *more, const float *x, const float *gamma, const float *save_mean,
                                      const float *save_invstd, const kbn_desc *d, int accumulate, cudaStream_t s) {
    if (more && more->n > 0 && d->sync) KCUDA_FAIL_("kcuda_bn_backward_sum", "no summed gradients with sync_bn", return);
    const bn_bwd_args a = {&dx, &dgamma, &dbeta, &dy, &dy_scale, &x, &gamma, &save_mean, &save_invstd, !accumulate, more};
    bn_backward(1, &a, d, s);
}

/* ---- batched entry points (kcuda.h) -------------------------------------------------------- */

/* Every shape but sync_bn's (a host round trip per problem between the launches) and those
 * the single calls refuse; C <= 0: nothing to do, as for the single calls. */
extern "C" int kcuda_bn_batch_ok(const kbn_desc *d) {
    if (d->sync) return 0;
    if (d->C <= 0) return 1;
    return (int64_t)d->N * d->HW < ((int64_t)1 << 31) && 2 * (int64_t)d->C * bn_groups(d) <= KCUDA_RED_CAP;
}

/* 1 where n problems of d may be issued batched; else the error recorded. */
static int bn_batch_check(int n, const kbn_desc *d, const char *what) {
    if (n < 1 || n > KCUDA_MAX_BATCH)
        KCUDA_FAIL_(what, "the number of problems is not in 1..KCUDA_MAX_BATCH", return 0);
    if (!kcuda_bn_batch_ok(d))
        KCUDA_FAIL_(what, "no batched path for this batch norm (sync_bn or too large)", return 0);
    return 1;
}

extern "C" void kcuda_bn_coefs_train_batch(int n, float *const *coef, float *const *save_mean,
                                           float *const *save_invstd, float *const *running_mean,
                                           float *const *running_var, const float *const *x,
                                           const float *const *gamma, const float *const *beta, const kbn_desc *d,
                                           cudaStream_t s) {
    if (!bn_batch_check(n, d, "kcuda_bn_coefs_train_batch")) return;
    const bn_fwd_args a = {NULL, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, 1, NULL};
    bn_train(n, &a, d, s, "kcuda_bn_coefs_train_batch");
}

extern "C" void kcuda_bn_forward_train_batch(int n, float *const *y, float *const *save_mean,
                                             float *const *save_invstd, float *const *running_mean,
                                             float *const *running_var, const float *const *x,
                                             const float *const *gamma, const float *const *beta, const kbn_desc *d,
                                             cudaStream_t s) {
    if (!bn_batch_check(n, d, "kcuda_bn_forward_train_batch")) return;
    const bn_fwd_args a = {y, NULL, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, 0, NULL};
    bn_train(n, &a, d, s, "kcuda_bn_forward_train_batch");
}

extern "C" void kcuda_bn_train_shared(int n, float *const *y, float *const *coef, float *const *save_mean,
                                      float *const *save_invstd, float *const *running_mean,
                                      float *const *running_var, const float *const *x, const float *const *gamma,
                                      const float *const *beta, double *const *stat_out,
                                      const double *const *stat_in, const kbn_desc *d, cudaStream_t s) {
    const char *what = "kcuda_bn_train_shared";
    if ((y == NULL) == (coef == NULL)) KCUDA_FAIL_(what, "exactly one of y and coef", return);
    if (d->sync) KCUDA_FAIL_(what, "no shared statistics with sync_bn", return);
    if (n < 1 || n > KCUDA_MAX_BATCH) KCUDA_FAIL_(what, "the number of problems is not in 1..KCUDA_MAX_BATCH", return);
    const bn_fwd_args a = {y, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, coef != NULL,
                           stat_out};
    if (d->C <= 0 || bn_too_big(d, what)) return;
    for (int i = 0; stat_in && i < n; i++)
        if (!stat_in[i]) KCUDA_FAIL_(what, "a problem without statistics among problems with them", return);
    if (stat_in && n == 1) bn_from_stats<1>(1, &a, stat_in, d, s);
    else if (stat_in) bn_from_stats<KCUDA_MAX_BATCH>(n, &a, stat_in, d, s);
    else if (n == 1 || bn_batch_check(n, d, what)) bn_train(n, &a, d, s, what);
}

extern "C" void kcuda_bn_backward_batch(int n, float *const *dx, float *const *dgamma, float *const *dbeta,
                                        const float *const *dy, const float *const *dy_scale,
                                        const float *const *x, const float *const *gamma,
                                        const float *const *save_mean, const float *const *save_invstd,
                                        const kbn_desc *d, int set, cudaStream_t s) {
    if (!bn_batch_check(n, d, "kcuda_bn_backward_batch")) return;
    const bn_bwd_args a = {dx, dgamma, dbeta, dy, dy_scale, x, gamma, save_mean, save_invstd, set, NULL};
    bn_backward(n, &a, d, s);
}

extern "C" void kcuda_bn_backward_sum_batch(int n, float *const *dx, float *const *dgamma, float *const *dbeta,
                                            const float *const *dy, const float *const *dy_scale, const kbn_more *more,
                                            const float *const *x, const float *const *gamma,
                                            const float *const *save_mean, const float *const *save_invstd,
                                            const kbn_desc *d, int set, cudaStream_t s) {
    if (!bn_batch_check(n, d, "kcuda_bn_backward_sum_batch")) return;
    const bn_bwd_args a = {dx, dgamma, dbeta, dy, dy_scale, x, gamma, save_mean, save_invstd, set, more};
    bn_backward(n, &a, d, s);
}
#undef BN_EACH_FIT

/* ---- a pool that takes its output's batch statistics (pool_stats_k) ---------------------- */

/* The batch-norm view of a pool's output: (N, C, P Q), no sync_bn (eps and momentum unused:
 * only the mean and biased variance are written). */
static kbn_desc pool_bn_desc(const kpool_desc *pd) {
    kbn_desc d = {};
    d.N = pd->N;
    d.C = pd->C;
    d.HW = pd->P * pd->Q;
    return d;
}

/* The shapes pool_stats_k serves: a non-empty output of fewer than 2^31 values a channel,
 * a counter per channel and the partials of a channel's ranges within the lane's buffers. */
extern "C" int kcuda_pool_stats_ok(const kpool_desc *pd) {
    if (pd->N <= 0 || pd->C <= 0 || pd->P <= 0 || pd->Q <= 0 || pd->C > KCUDA_COUNT_CAP) return 0;
    if ((int64_t)pd->N * pd->P * pd->Q >= ((int64_t)1 << 31)) return 0;
    const kbn_desc d = pool_bn_desc(pd);
    return 2 * (int64_t)d.C * bn_groups(&d) <= KCUDA_RED_CAP;
}

/* Problems a launch of pool_stats_k serves: its parameter (the problems' pointers and
 * takers, ~370 bytes each) stays within the 4 KB every CUDA version passes. */
#define POOL_STATS_BATCH 8

template <int B>
static void pool_stats_launch(int m, int max, float *const *y, const float *const *x, double *const *stat_out, int ntk,
                              const kbn_taker *tk, const kpool_desc *pd, const kbn_desc *d, int G, int64_t per,
                              cudaStream_t s) {
    bn_batch<pool_stats_io, B> P = {};
    for (int k = 0; k < m; k++) {
        pool_stats_io &t = P.p[k];
        t.red = kcuda_g.red + k * per;
        t.y = y[k];
        t.x = x[k];
        t.fin.cnt = kcuda_g.count + (int64_t)k * d->C;
        t.fin.stat_out = stat_out[k];
        t.ntk = ntk;
        for (int q = 0; q < ntk; q++) t.tk[q] = tk[(int64_t)k * ntk + q];
    }
    const dim3 grid((unsigned)G, (unsigned)d->C, (unsigned)m);
    if (max) pool_stats_k<B, true><<<grid, KCUDA_THREADS, 0, s>>>(P, *pd, *d, G);
    else pool_stats_k<B, false><<<grid, KCUDA_THREADS, 0, s>>>(P, *pd, *d, G);
    launchCheck();
}

extern "C" void kcuda_pool_forward_stats(int n, int max, float *const *y, const float *const *x,
                                         double *const *stat_out, int ntk, const kbn_taker *tk, const kpool_desc *pd,
                                         cudaStream_t s) {
    const char *what = "kcuda_pool_forward_stats";
    if (n < 1 || n > KCUDA_MAX_BATCH) KCUDA_FAIL_(what, "the number of problems is not in 1..KCUDA_MAX_BATCH", return);
    if (ntk < 0 || ntk > KCUDA_POOL_TAKERS || (ntk && !tk))
        KCUDA_FAIL_(what, "the number of batch norms taking the statistics is not in 0..KCUDA_POOL_TAKERS", return);
    if (!kcuda_g.red || !kcuda_g.count) KCUDA_FAIL_(what, "kcuda_init was not called", return);
    if (!kcuda_pool_stats_ok(pd)) KCUDA_FAIL_(what, "a shape kcuda_pool_stats_ok refuses", return);
    for (int i = 0; i < n; i++)
        if (!y[i] || !x[i] || !stat_out[i]) KCUDA_FAIL_(what, "a NULL output, input or statistics", return);
    const kbn_desc d = pool_bn_desc(pd);
    const int G = bn_groups(&d);
    /* each problem of a launch: its partials (2 C G doubles) and its C counters */
    const int64_t per = 2 * (int64_t)d.C * G;
    int64_t fit = KCUDA_RED_CAP / per;
    if (KCUDA_COUNT_CAP / d.C < fit) fit = KCUDA_COUNT_CAP / d.C;
    if (fit > POOL_STATS_BATCH) fit = POOL_STATS_BATCH;
    for (int i0 = 0; i0 < n; i0 += (int)fit) {
        const int m = n - i0 < fit ? n - i0 : (int)fit;
        const kbn_taker *t = ntk ? tk + (int64_t)i0 * ntk : NULL;
        if (m == 1) pool_stats_launch<1>(1, max, y + i0, x + i0, stat_out + i0, ntk, t, pd, &d, G, per, s);
        else pool_stats_launch<POOL_STATS_BATCH>(m, max, y + i0, x + i0, stat_out + i0, ntk, t, pd, &d, G, per, s);
    }
}
