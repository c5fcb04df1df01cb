/* pool.cu — CUDA max and average pooling, the twin of kernels/cpu/pool.c. Max: padding
 * never chosen, first maximum in row-major window order wins ties, backward recomputes
 * the argmax from x. Avg: divides by the in-bounds count (count_include_pad=False).
 * Forward: one thread per output. Backward: one thread per input element gathers the
 * windows that contain it in the CPU's (p, q) order, so no two threads write one
 * element and the sums come out in the CPU's order. */
#include <math.h>

#include "kcuda_internal.cuh"
#include "pool_window.cuh"

/* Windows containing row h: p in [*lo, *hi). */
__device__ static void windows_of(int h, int k, int stride, int pad, int P, int *lo, int *hi) {
    int a = h + pad - k + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = (h + pad) / stride + 1;
    *hi = b < P ? b : P;
}

/* The up to 3 x 3 windows [p0, p1) x [q0, q1) in (p, q) order (the backwards' order):
 * ok[t] whether window t exists, o[t] its index in the plane (0 where it does not: a
 * valid place to load from, so that every load can be issued before any is used). */
__device__ static inline void windows9(int p0, int p1, int q0, int q1, int Q, bool ok[9], int64_t o[9]) {
#pragma unroll
    for (int t = 0; t < 9; t++) {
        const int p = p0 + t / 3, q = q0 + t % 3;
        ok[t] = p < p1 && q < q1;
        o[t] = ok[t] ? (int64_t)p * Q + q : 0;
    }
}

/* The problems of one launch (kcuda_*pool_*_batch: B of them, blockIdx.y picks one; a
 * single call is B = 1): output, input(s) and argmax buffer of each. */
template <int B> struct pool_ptrs {
    float *out[B];
    const float *a[B], *b[B];
    int *am[B];
};

template <int B> __global__ static void maxpool_fwd_k(pool_ptrs<B> t, kpool_desc d) {
    float *y = t.out[blockIdx.y];
    const float *x = t.a[blockIdx.y];
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const float *xp = x + i / PQ * d.H * d.W;
        y[i] = pool_max_out(xp, d, (int)(i % PQ / d.Q), (int)(i % d.Q));
    }
}

/* The backward, one thread per input gathering dy over the windows whose argmax it is, in
 * the CPU's (p, q) order. AM: the windows' argmax indices come from am (maxpool_argmax_k,
 * one pass over the windows); else each window's argmax is recomputed here (k*k windows
 * around every input, 81 reads per input for 3x3: the fallback where am does not fit). */
template <bool AM, int B> __global__ static void maxpool_bwd_k(pool_ptrs<B> t, kpool_desc d) {
    float *dx = t.out[blockIdx.y];
    const float *dy = t.a[blockIdx.y], *x = t.b[blockIdx.y];
    const int *am = t.am[blockIdx.y];
    const int64_t HW = (int64_t)d.H * d.W, PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / HW, me = i % HW;
        const int h = (int)(me / d.W), w = (int)(me % d.W);
        const float *xp = x + pl * HW;
        const float *gp = dy + pl * PQ;
        int p0, p1, q0, q1;
        windows_of(h, d.k, d.stride, d.pad, d.P, &p0, &p1);
        windows_of(w, d.k, d.stride, d.pad, d.Q, &q0, &q1);
        float v = dx[i];
        if (AM && PQ > 0 && p1 - p0 <= 3 && q1 - q0 <= 3) {
            /* up to 3 x 3 windows (a 3x3 pool): their argmaxes and gradients loaded at once
             * (a window outside [p0, p1) x [q0, q1) loads window 0 and is skipped), then
             * added in the loop's (p, q) order: the same sum, 18 loads in flight instead
             * of one window's at a time */
            int a[9];
            float g[9];
            bool ok[9];
            int64_t o[9];
            windows9(p0, p1, q0, q1, d.Q, ok, o);
#pragma unroll
            for (int t = 0; t < 9; t++) {
                a[t] = am[pl * PQ + o[t]];
                g[t] = gp[o[t]];
            }
#pragma unroll
            for (int t = 0; t < 9; t++)
                if (ok[t] && a[t] == me) v += g[t];
        } else {
            for (int p = p0; p < p1; p++)
                for (int q = q0; q < q1; q++) {
                    const int64_t o = (int64_t)p * d.Q + q;
                    if ((AM ? (int64_t)am[pl * PQ + o] : argmax_window(xp, d, p, q)) == me) v += gp[o];
                }
        }
        dx[i] = v;
    }
}

/* Each window's argmax index within its plane (-1: an empty window). */
template <int B> __global__ static void maxpool_argmax_k(pool_ptrs<B> t, kpool_desc d) {
    int *am = t.am[blockIdx.y];
    const float *x = t.b[blockIdx.y];
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const float *xp = x + i / PQ * d.H * d.W;
        am[i] = (int)argmax_window(xp, d, (int)(i % PQ / d.Q), (int)(i % d.Q));
    }
}

template <int B> __global__ static void avgpool_fwd_k(pool_ptrs<B> t, kpool_desc d) {
    float *y = t.out[blockIdx.y];
    const float *x = t.a[blockIdx.y];
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const float *xp = x + i / PQ * d.H * d.W;
        y[i] = pool_avg_out(xp, d, (int)(i % PQ / d.Q), (int)(i % d.Q));
    }
}

template <int B> __global__ static void avgpool_bwd_k(pool_ptrs<B> t, kpool_desc d) {
    float *dx = t.out[blockIdx.y];
    const float *dy = t.a[blockIdx.y];
    const int64_t HW = (int64_t)d.H * d.W, total = (int64_t)d.N * d.C * HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / HW, me = i % HW;
        const int h = (int)(me / d.W), w = (int)(me % d.W);
        const float *gp = dy + pl * d.P * d.Q;
        int p0, p1, q0, q1;
        windows_of(h, d.k, d.stride, d.pad, d.P, &p0, &p1);
        windows_of(w, d.k, d.stride, d.pad, d.Q, &q0, &q1);
        float v = dx[i];
        if ((int64_t)d.P * d.Q > 0 && p1 - p0 <= 3 && q1 - q0 <= 3) { /* as the max pool's: loads first */
            float g[9];
            bool ok[9];
            int64_t o[9];
            windows9(p0, p1, q0, q1, d.Q, ok, o);
#pragma unroll
            for (int t = 0; t < 9; t++) g[t] = gp[o[t]];
#pragma unroll
            for (int t = 0; t < 9; t++) {
                if (!ok[t]) continue;
                int h0, h1, w0, w1;
                avg_bounds(d, p0 + t / 3, q0 + t % 3, &h0, &h1, &w0, &w1);
                int cnt = (h1 - h0) * (w1 - w0);
                if (cnt <= 0) continue;
                v += g[t] / (float)cnt;
            }
        } else {
            for (int p = p0; p < p1; p++)
                for (int q = q0; q < q1; q++) {
                    int h0, h1, w0, w1;
                    avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
                    int cnt = (h1 - h0) * (w1 - w0);
                    if (cnt <= 0) continue;
                    v += gp[(int64_t)p * d.Q + q] / (float)cnt;
                }
        }
        dx[i] = v;
    }
}

/* Every entry point, single or batched: n problems, out/a/b host arrays (b NULL where the
 * kernel has no second input), one launch per kernel with blockIdx.y = the problem. */
enum pool_kind { POOL_MAX_FWD, POOL_MAX_BWD, POOL_AVG_FWD, POOL_AVG_BWD };

template <int B>
static void pool_launch(pool_kind kind, int n, float *const *out, const float *const *a, const float *const *b,
                        const kpool_desc *d, cudaStream_t s) {
    const int64_t outs = (int64_t)d->N * d->C * d->P * d->Q, ins = (int64_t)d->N * d->C * d->H * d->W;
    const int64_t total = kind == POOL_MAX_FWD || kind == POOL_AVG_FWD ? outs : ins;
    if (total <= 0 || n <= 0) return;
    /* the argmax indices of the max-pool backward: each problem its own outs ints of the
     * lane's partials buffer (as many problems per launch as fit; none fit: recomputed) */
    const bool am = kind == POOL_MAX_BWD && kcuda_g.red && outs <= 2 * KCUDA_RED_CAP &&
                    (int64_t)d->H * d->W < ((int64_t)1 << 31);
    const int per = am ? (int)(2 * KCUDA_RED_CAP / outs < B ? 2 * KCUDA_RED_CAP / outs : B) : B;
    for (int i0 = 0; i0 < n; i0 += per) {
        const int m = n - i0 < per ? n - i0 : per;
        pool_ptrs<B> t = {};
        for (int i = 0; i < m; i++) {
            t.out[i] = out[i0 + i];
            t.a[i] = a[i0 + i];
            t.b[i] = b ? b[i0 + i] : NULL;
            t.am[i] = am ? (int *)kcuda_g.red + (int64_t)i * outs : NULL;
        }
        const dim3 grid(kcuda_blocks(total), (unsigned)m);
        switch (kind) {
        case POOL_MAX_FWD: maxpool_fwd_k<B><<<grid, KCUDA_THREADS, 0, s>>>(t, *d); break;
        case POOL_AVG_FWD: avgpool_fwd_k<B><<<grid, KCUDA_THREADS, 0, s>>>(t, *d); break;
        case POOL_AVG_BWD: avgpool_bwd_k<B><<<grid, KCUDA_THREADS, 0, s>>>(t, *d); break;
        case POOL_MAX_BWD:
            if (am) {
                maxpool_argmax_k<B><<<dim3(kcuda_blocks(outs), (unsigned)m), KCUDA_THREADS, 0, s>>>(t, *d);
                launchCheck();
                maxpool_bwd_k<true, B><<<grid, KCUDA_THREADS, 0, s>>>(t, *d);
            } else {
                maxpool_bwd_k<false, B><<<grid, KCUDA_THREADS, 0, s>>>(t, *d);
            }
            break;
        }
        launchCheck();
    }
}

static void pool_run(pool_kind kind, int n, float *const *out, const float *const *a, const float *const *b,
                     const kpool_desc *d, cudaStream_t s) {
    if (n == 1) pool_launch<1>(kind, 1, out, a, b, d, s);
    else pool_launch<KCUDA_MAX_BATCH>(kind, n, out, a, b, d, s);
}

extern "C" void kcuda_maxpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s) {
    pool_run(POOL_MAX_FWD, 1, &y, &x, NULL, d, s);
}
extern "C" void kcuda_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d, cudaStream_t s) {
    if (!dx) return;
    pool_run(POOL_MAX_BWD, 1, &dx, &dy, &x, d, s);
}
extern "C" void kcuda_avgpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s) {
    pool_run(POOL_AVG_FWD, 1, &y, &x, NULL, d, s);
}
extern "C" void kcuda_avgpool_backward(float *dx, const float *dy, const kpool_desc *d, cudaStream_t s) {
    if (!dx) return;
    pool_run(POOL_AVG_BWD, 1, &dx, &dy, NULL, d, s);
}

#define POOL_BATCH_CHECK(what)                                                                  \
    if (n < 1 || n > KCUDA_MAX_BATCH) KCUDA_FAIL_(what, "batch of problems out of range", return)
extern "C" void kcuda_maxpool_forward_batch(int n, float *const *y, const float *const *x, const kpool_desc *d,
                                            cudaStream_t s) {
    POOL_BATCH_CHECK("kcuda_maxpool_forward_batch");
    pool_run(POOL_MAX_FWD, n, y, x, NULL, d, s);
}
extern "C" void kcuda_maxpool_backward_batch(int n, float *const *dx, const float *const *dy, const float *const *x,
                                             const kpool_desc *d, cudaStream_t s) {
    POOL_BATCH_CHECK("kcuda_maxpool_backward_batch");
    pool_run(POOL_MAX_BWD, n, dx, dy, x, d, s);
}
extern "C" void kcuda_avgpool_forward_batch(int n, float *const *y, const float *const *x, const kpool_desc *d,
                                            cudaStream_t s) {
    POOL_BATCH_CHECK("kcuda_avgpool_forward_batch");
    pool_run(POOL_AVG_FWD, n, y, x, NULL, d, s);
}
extern "C" void kcuda_avgpool_backward_batch(int n, float *const *dx, const float *const *dy, const kpool_desc *d,
                                             cudaStream_t s) {
    POOL_BATCH_CHECK("kcuda_avgpool_backward_batch");
    pool_run(POOL_AVG_BWD, n, dx, dy, NULL, d, s);
}
