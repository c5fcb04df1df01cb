/* pool.cu — CUDA max and average pooling, the twin of kernels/cpu/pool.c. Max: padding
 * never chosen, first maximum in row-major window order wins ties, backward recomputes
 * the argmax from x. Avg: divides by the in-bounds count (count_include_pad=False).
 * Forward: one thread per output. Backward: one thread per input element gathers the
 * windows that contain it in the CPU's (p, q) order, so no two threads write one
 * element and the sums come out in the CPU's order. */
#include <math.h>

#include "kcuda_internal.cuh"

__device__ static int64_t argmax_window(const float *xp, const kpool_desc &d, int p, int q) {
    const int h0 = p * d.stride - d.pad, w0 = q * d.stride - d.pad;
    float best = -INFINITY;
    int64_t bi = -1;
    for (int i = 0; i < d.k; i++) {
        int ih = h0 + i;
        if (ih < 0 || ih >= d.H) continue;
        for (int j = 0; j < d.k; j++) {
            int iw = w0 + j;
            if (iw < 0 || iw >= d.W) continue;
            float v = xp[(int64_t)ih * d.W + iw];
            if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                bi = (int64_t)ih * d.W + iw;
            }
        }
    }
    return bi;
}

/* Windows containing row h: p in [*lo, *hi). */
__device__ static void windows_of(int h, int k, int stride, int pad, int P, int *lo, int *hi) {
    int a = h + pad - k + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = (h + pad) / stride + 1;
    *hi = b < P ? b : P;
}

__device__ static void avg_bounds(const kpool_desc &d, int p, int q, int *h0, int *h1, int *w0, int *w1) {
    int a = p * d.stride - d.pad, b = q * d.stride - d.pad;
    *h0 = a < 0 ? 0 : a;
    *h1 = a + d.k > d.H ? d.H : a + d.k;
    *w0 = b < 0 ? 0 : b;
    *w1 = b + d.k > d.W ? d.W : b + d.k;
}

__global__ static void maxpool_fwd_k(float *y, const float *x, kpool_desc d) {
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / PQ;
        const float *xp = x + pl * d.H * d.W;
        int64_t a = argmax_window(xp, d, (int)(i % PQ / d.Q), (int)(i % d.Q));
        y[i] = a >= 0 ? xp[a] : -INFINITY;
    }
}

/* The backward, one thread per input gathering dy over the windows whose argmax it is, in
 * the CPU's (p, q) order. AM: the windows' argmax indices come from am (maxpool_argmax_k,
 * one pass over the windows); else each window's argmax is recomputed here (k*k windows
 * around every input, 81 reads per input for 3x3: the fallback where am does not fit). */
template <bool AM>
__global__ static void maxpool_bwd_k(float *dx, const float *dy, const float *x, const int *am, kpool_desc d) {
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
        for (int p = p0; p < p1; p++)
            for (int q = q0; q < q1; q++) {
                const int64_t o = (int64_t)p * d.Q + q;
                if ((AM ? (int64_t)am[pl * PQ + o] : argmax_window(xp, d, p, q)) == me) v += gp[o];
            }
        dx[i] = v;
    }
}

/* Each window's argmax index within its plane (-1: an empty window). */
__global__ static void maxpool_argmax_k(int *am, const float *x, kpool_desc d) {
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const float *xp = x + i / PQ * d.H * d.W;
        am[i] = (int)argmax_window(xp, d, (int)(i % PQ / d.Q), (int)(i % d.Q));
    }
}

__global__ static void avgpool_fwd_k(float *y, const float *x, kpool_desc d) {
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const float *xp = x + i / PQ * d.H * d.W;
        int h0, h1, w0, w1;
        avg_bounds(d, (int)(i % PQ / d.Q), (int)(i % d.Q), &h0, &h1, &w0, &w1);
        float s = 0.0f;
        for (int a = h0; a < h1; a++)
            for (int b = w0; b < w1; b++) s += xp[(int64_t)a * d.W + b];
        int cnt = (h1 - h0) * (w1 - w0);
        y[i] = cnt > 0 ? s / (float)cnt : 0.0f;
    }
}

__global__ static void avgpool_bwd_k(float *dx, const float *dy, kpool_desc d) {
    const int64_t HW = (int64_t)d.H * d.W, total = (int64_t)d.N * d.C * HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / HW, me = i % HW;
        const int h = (int)(me / d.W), w = (int)(me % d.W);
        const float *gp = dy + pl * d.P * d.Q;
        int p0, p1, q0, q1;
        windows_of(h, d.k, d.stride, d.pad, d.P, &p0, &p1);
        windows_of(w, d.k, d.stride, d.pad, d.Q, &q0, &q1);
        float v = dx[i];
        for (int p = p0; p < p1; p++)
            for (int q = q0; q < q1; q++) {
                int h0, h1, w0, w1;
                avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
                int cnt = (h1 - h0) * (w1 - w0);
                if (cnt <= 0) continue;
                v += gp[(int64_t)p * d.Q + q] / (float)cnt;
            }
        dx[i] = v;
    }
}

#define POOL_LAUNCH(kern, total, ...)                                        \
    do {                                                                     \
        if ((total) <= 0) return;                                            \
        kern<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(__VA_ARGS__);     \
        launchCheck();                                                       \
    } while (0)

extern "C" void kcuda_maxpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s) {
    POOL_LAUNCH(maxpool_fwd_k, (int64_t)d->N * d->C * d->P * d->Q, y, x, *d);
}
extern "C" void kcuda_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d, cudaStream_t s) {
    if (!dx) return;
    const int64_t outs = (int64_t)d->N * d->C * d->P * d->Q;
    if (kcuda_g.red && outs > 0 && outs <= 2 * KCUDA_RED_CAP && (int64_t)d->H * d->W < ((int64_t)1 << 31)) {
        int *am = (int *)kcuda_g.red;
        maxpool_argmax_k<<<kcuda_blocks(outs), KCUDA_THREADS, 0, s>>>(am, x, *d);
        launchCheck();
        POOL_LAUNCH(maxpool_bwd_k<true>, (int64_t)d->N * d->C * d->H * d->W, dx, dy, x, am, *d);
        return;
    }
    POOL_LAUNCH(maxpool_bwd_k<false>, (int64_t)d->N * d->C * d->H * d->W, dx, dy, x, (const int *)NULL, *d);
}
extern "C" void kcuda_avgpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s) {
    POOL_LAUNCH(avgpool_fwd_k, (int64_t)d->N * d->C * d->P * d->Q, y, x, *d);
}
extern "C" void kcuda_avgpool_backward(float *dx, const float *dy, const kpool_desc *d, cudaStream_t s) {
    if (!dx) return;
    POOL_LAUNCH(avgpool_bwd_k, (int64_t)d->N * d->C * d->H * d->W, dx, dy, *d);
}
