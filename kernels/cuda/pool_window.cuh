/* pool_window.cuh — one output of the CUDA max and average pools (pool.cu's forwards, and
 * bn.cu's pool that also takes its output's batch statistics, kcuda_pool_forward_stats):
 * one definition, so both write the same bits. Max: padding never chosen, the first
 * maximum in row-major window order wins ties (NaN wins over a number); avg: divided by
 * the in-bounds count (count_include_pad=False). */
#ifndef DARTSC_KCUDA_POOL_WINDOW_CUH
#define DARTSC_KCUDA_POOL_WINDOW_CUH

#include <math.h>

#include "kcuda_internal.cuh"

/* The index in the plane xp of the maximum of output (p, q)'s window, or -1 (an empty window). */
__device__ static inline int64_t argmax_window(const float *xp, const kpool_desc &d, int p, int q) {
    const int h0 = p * d.stride - d.pad, w0 = q * d.stride - d.pad;
    float best = -INFINITY;
    int64_t bi = -1;
    if (d.k == 3) {
        /* DARTS' 3x3 pools: the 9 values loaded at once (a tap outside the plane loads the
         * plane's first value and is skipped), then the loop's comparisons in its order */
        float v[9];
        bool in[9];
        int64_t at[9];
#pragma unroll
        for (int t = 0; t < 9; t++) {
            const int ih = h0 + t / 3, iw = w0 + t % 3;
            in[t] = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
            at[t] = in[t] ? (int64_t)ih * d.W + iw : 0;
            v[t] = xp[at[t]];
        }
#pragma unroll
        for (int t = 0; t < 9; t++)
            if (in[t] && (bi < 0 || v[t] > best || (isnan(v[t]) && !isnan(best)))) {
                best = v[t];
                bi = at[t];
            }
        return bi;
    }
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

__device__ static inline void avg_bounds(const kpool_desc &d, int p, int q, int *h0, int *h1, int *w0, int *w1) {
    int a = p * d.stride - d.pad, b = q * d.stride - d.pad;
    *h0 = a < 0 ? 0 : a;
    *h1 = a + d.k > d.H ? d.H : a + d.k;
    *w0 = b < 0 ? 0 : b;
    *w1 = b + d.k > d.W ? d.W : b + d.k;
}

/* Output (p, q) of the plane xp. */
__device__ static inline float pool_max_out(const float *xp, const kpool_desc &d, int p, int q) {
    const int64_t a = argmax_window(xp, d, p, q);
    return a >= 0 ? xp[a] : -INFINITY;
}

__device__ static inline float pool_avg_out(const float *xp, const kpool_desc &d, int p, int q) {
    int h0, h1, w0, w1;
    avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
    float s = 0.0f;
    if (d.k == 3) { /* the 9 taps loaded at once, then added in the loop's order */
        float v[9];
        bool in[9];
#pragma unroll
        for (int t = 0; t < 9; t++) {
            const int a = h0 + t / 3, b = w0 + t % 3;
            in[t] = a < h1 && b < w1;
            v[t] = xp[in[t] ? (int64_t)a * d.W + b : 0];
        }
#pragma unroll
        for (int t = 0; t < 9; t++)
            if (in[t]) s += v[t];
    } else {
        for (int a = h0; a < h1; a++)
            for (int b = w0; b < w1; b++) s += xp[(int64_t)a * d.W + b];
    }
    const int cnt = (h1 - h0) * (w1 - w0);
    return cnt > 0 ? s / (float)cnt : 0.0f;
}

#endif
