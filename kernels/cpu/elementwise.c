/* elementwise.c — CPU elementwise kernels and small data movers: activations, copy /
 * fill / axpy / scale / mul, deterministic dot and sum of squares, weighted sum,
 * row softmax, channel concat / slice, pixel shift, global average pool, dropout and
 * drop path, and the SGD / Adam optimiser steps. Reductions go into fixed per-chunk
 * slots combined in a fixed order. */
#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/kvec.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int kcpu_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
/* Inside a parallel region: its thread count and this thread's number. */
static inline int kcpu_num_threads_here(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}
static inline int kcpu_thread_here(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- deterministic reductions: the range is cut into nchunks = min(threads, MAXCH)
 * pieces that depend only on the thread count; each piece is summed in double into its
 * own slot and the slots are added in order. ---- */
#define KCPU_MAXCH 256

static int nchunks_for(int64_t n) {
    int nt = kcpu_num_threads();
    if (nt > KCPU_MAXCH) nt = KCPU_MAXCH;
    if (nt < 1) nt = 1;
    if (n < 4096) nt = 1;
    return nt;
}

/* Products (exact in double) summed into 8 independent double accumulators combined in
 * a fixed order: the same accuracy as one double chain, without its add latency.
 * dot8_acc takes whole groups of 8 (n8 a multiple of 8) and can be called piece by piece
 * over a range, the tail going into t: the same sums as one dot_blocks over it. */
static inline void dot8_acc(double *restrict acc, const float *a, const float *b, int64_t n8) {
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = acc[j];
    for (int64_t i = 0; i < n8; i += 8)
        for (int j = 0; j < 8; j++) r[j] += (double)a[i + j] * (double)b[i + j];
    for (int j = 0; j < 8; j++) acc[j] = r[j];
}
static inline double dot8_finish(const double acc[8], double t) {
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t;
}
static double dot_blocks(const float *a, const float *b, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t n8 = n & ~(int64_t)7;
    dot8_acc(acc, a, b, n8);
    double t = 0.0;
    for (int64_t i = n8; i < n; i++) t += (double)a[i] * (double)b[i];
    return dot8_finish(acc, t);
}

double kcpu_dot(const float *a, const float *b, int64_t n) {
    double part[KCPU_MAXCH];
    const int nc = nchunks_for(n);
#pragma omp parallel for schedule(static) num_threads(nc)
    for (int c = 0; c < nc; c++) {
        int64_t lo = n * c / nc, hi = n * (c + 1) / nc;
        part[c] = dot_blocks(a + lo, b + lo, hi - lo);
    }
    double s = 0.0;
    for (int c = 0; c < nc; c++) s += part[c];
    return s;
}

double kcpu_sumsq(const float *a, int64_t n) {
    double part[KCPU_MAXCH];
    const int nc = nchunks_for(n);
#pragma omp parallel for schedule(static) num_threads(nc)
    for (int c = 0; c < nc; c++) {
        int64_t lo = n * c / nc, hi = n * (c + 1) / nc;
        part[c] = dot_blocks(a + lo, a + lo, hi - lo);
    }
    double s = 0.0;
    for (int c = 0; c < nc; c++) s += part[c];
    return s;
}

void kcpu_hvp_eps(float eps[3], const float *v, int64_t n, double r, float eta, int bug_mul_r) {
    const double vn = sqrt(kcpu_sumsq(v, n));
    const float R = (float)(r / (vn > 0 ? vn : 1e-12));
    eps[0] = R;
    eps[1] = -R;
    eps[2] = bug_mul_r ? eta * R / 2.0f : eta / (2.0f * R);
}

/* Gradient-norm clipping that keeps the norm (twin of kcuda_clip_norm_to): norm[0] = the
 * norm sqrt(kcpu_sumsq) as a float guard value (kcpu_norm_guard); x *= (float)(max_norm /
 * (norm + 1e-6)) where max_norm > 0 and that factor is below 1: the host clipping's bits. */
void kcpu_clip_norm_to(float *x, int64_t n, float max_norm, float *norm) {
    const double nv = sqrt(kcpu_sumsq(x, n)), c = max_norm / (nv + 1e-6);
    if (max_norm > 0 && c < 1.0) kcpu_scale(x, (float)c, x, n);
    norm[0] = kcpu_norm_guard(nv);
}

void kcpu_zero_one_grad(float *grad, const float *alpha, int64_t n, float weight) {
    for (int64_t i = 0; i < n; i++) {
        const double s = 1.0 / (1.0 + exp(-(double)alpha[i])), d = s - 0.5;
        grad[i] += (float)(weight * (-2.0 / (double)n) * d * s * (1.0 - s));
    }
}

/* ---- activations ---- */
void kcpu_relu_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
void kcpu_relu_backward(float *dx, const float *dy, const float *y, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}
void kcpu_relu_backward_set(float *dx, const float *dy, const float *y, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
void kcpu_tanh_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 8192)
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}
void kcpu_tanh_backward(float *dx, const float *dy, const float *y, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}
void kcpu_sigmoid_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 8192)
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}
void kcpu_sigmoid_backward(float *dx, const float *dy, const float *y, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- simple movers ---- */
/* Large copies and zeroing go in one contiguous share per thread, as the layers around them
 * partition by sample: each thread's half stays in its own core's cache (a one-thread
 * memmove also left the other thread waiting). */
#define KCPU_PAR_BYTES (256 * 1024)
void kcpu_copy(float *y, const float *x, int64_t n) {
    if (n <= 0 || y == x) return;
    const size_t bytes = sizeof(float) * (size_t)n;
    if (bytes < KCPU_PAR_BYTES || (y < x + n && x < y + n)) { /* small, or overlapping: memmove's order */
        memmove(y, x, bytes);
        return;
    }
#pragma omp parallel
    {
        const int nt = kcpu_num_threads_here(), t = kcpu_thread_here();
        const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        memcpy(y + lo, x + lo, sizeof(float) * (size_t)(hi - lo));
    }
}
void kcpu_zero_bytes(void *p, size_t bytes) {
    if (bytes < KCPU_PAR_BYTES) {
        memset(p, 0, bytes);
        return;
    }
#pragma omp parallel
    {
        const int nt = kcpu_num_threads_here(), t = kcpu_thread_here();
        const size_t lo = bytes / (size_t)nt * (size_t)t, hi = t == nt - 1 ? bytes : bytes / (size_t)nt * (size_t)(t + 1);
        memset((char *)p + lo, 0, hi - lo);
    }
}
/* y = ((x0 + x1) + x2) + ...: the bits of copying x0 and adding 1 * x_k (exact) in turn. */
void kcpu_add_forward(float *y, const float *const *xs, int n, int64_t len) {
    if (n == 1) {
        kcpu_copy(y, xs[0], len);
        return;
    }
#pragma omp parallel for schedule(static) if (len > 32768)
    for (int64_t i = 0; i < len; i++) {
        float s = xs[0][i] + xs[1][i];
        for (int k = 2; k < n; k++) s += xs[k][i];
        y[i] = s;
    }
}
void kcpu_fill(float *y, float v, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] = v;
}
void kcpu_scaled_sum(float *y, const float *const *xs, const float *const *scale, int n, int64_t len) {
    float sc[8];
    for (int k = 0; k < n && k < 8; k++) sc[k] = scale[k] ? *scale[k] : 1.0f;
#pragma omp parallel for schedule(static) if (len > 32768)
    for (int64_t i = 0; i < len; i++) {
        float s = scale[0] ? sc[0] * xs[0][i] : xs[0][i];
        for (int k = 1; k < n && k < 8; k++) {
            const float t = scale[k] ? sc[k] * xs[k][i] : xs[k][i];
            s = s + t;
        }
        y[i] = s;
    }
}
void kcpu_axpy(float *y, float a, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}
void kcpu_scale(float *y, float a, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
}
void kcpu_mul_forward(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
void kcpu_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n) {
    if (da) {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++) da[i] += dy[i] * b[i];
    }
    if (db) {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++) db[i] += dy[i] * a[i];
    }
}

/* ---- weighted sum ---- */
/* y[i] = ((0 + w0 x0[i]) + w1 x1[i]) + ..., multiply then add, vectorised over i (with
 * the loop over inputs innermost, GCC vectorised that loop instead: gathers, then scalar
 * adds, 4x slower). Contiguous halves per thread, as the layers around it. */
void kcpu_wsum_forward(float *y, const float *const *xs, const float *w, int n, int64_t len) {
    const int64_t nv = len / DWV;
#pragma omp parallel for schedule(static) if (len > 16384)
    for (int64_t b = 0; b < nv; b++) {
        const int64_t i = b * DWV;
        dwv s = dwv_zero();
        for (int k = 0; k < n; k++) s = dwv_add(s, dwv_mul(dwv_set1(w[k]), dwv_load(xs[k] + i)));
        dwv_store(y + i, s);
    }
    for (int64_t i = nv * DWV; i < len; i++) {
        float s = 0.0f;
        for (int k = 0; k < n; k++) s += w[k] * xs[k][i];
        y[i] = s;
    }
}

/* Input k of an affine weighted sum at channel c: (x - f) * s + b, the expression and
 * rounding of kcpu_bn_forward_*'s output (sub, mul, add; no contraction in this build).
 * Where b is zero (batch norm without affine, every DARTS candidate) the add is left out:
 * it changes at most the sign of a zero value, and a signed zero changes neither sum it
 * goes into (each starts at +0, and a sum is -0 only if both addends are). */
static inline float aff_val(float x, float f, float s, float b) { return (x - f) * s + b; }

void kcpu_wsum_affine_forward(float *y, const float *const *xs, const float *const *aff, const float *w, int n,
                              int64_t planes, int C, int HW) {
    if (n < 1 || planes < 1) {
        if (planes > 0) kcpu_fill(y, 0.0f, planes * HW);
        return;
    }
#pragma omp parallel for schedule(static) if (planes * HW > 16384)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int c = (int)(pl % C);
        const int64_t o = pl * HW;
        float f[n], sc[n], b[n];
        for (int k = 0; k < n; k++) {
            f[k] = aff[k] ? aff[k][c] : 0.0f;
            sc[k] = aff[k] ? aff[k][C + c] : 1.0f;
            b[k] = aff[k] ? aff[k][2 * C + c] : 0.0f;
        }
        int i = 0;
        for (; i + DWV <= HW; i += DWV) {
            dwv s = dwv_zero();
            for (int k = 0; k < n; k++) {
                dwv v = dwv_load(xs[k] + o + i);
                if (aff[k]) {
                    v = dwv_mul(dwv_sub(v, dwv_set1(f[k])), dwv_set1(sc[k]));
                    if (b[k] != 0.0f) v = dwv_add(v, dwv_set1(b[k]));
                }
                s = dwv_add(s, dwv_mul(dwv_set1(w[k]), v));
            }
            dwv_store(y + o + i, s);
        }
        for (; i < HW; i++) {
            float s = 0.0f;
            for (int k = 0; k < n; k++) {
                const float x = xs[k][o + i];
                s += w[k] * (aff[k] ? aff_val(x, f[k], sc[k], b[k]) : x);
            }
            y[o + i] = s;
        }
    }
}

/* v[0 .. m) = the affine input's values at flat indices e0 .. e0 + m of (planes, HW). */
static void aff_fill(float *restrict v, const float *restrict x, const float *a, int64_t e0, int64_t m, int C, int HW) {
    while (m > 0) {
        const int64_t pl = e0 / HW;
        const int i0 = (int)(e0 - pl * HW);
        const int64_t seg = HW - i0 < m ? HW - i0 : m;
        const int c = (int)(pl % C);
        const float f = a[c], s = a[C + c], b = a[2 * C + c];
        const float *restrict xp = x + e0;
        if (b != 0.0f)
            for (int64_t i = 0; i < seg; i++) v[i] = aff_val(xp[i], f, s, b);
        else
            for (int64_t i = 0; i < seg; i++) v[i] = (xp[i] - f) * s;
        v += seg;
        e0 += seg;
        m -= seg;
    }
}

/* One parallel region: each chunk of the range adds w[k] * dy into every dxs[k] and
 * takes its partial dots for dw, combined in chunk order (the chunks of kcpu_dot, so
 * dw is the same as n kcpu_dot calls). Each chunk goes in pieces of WS_PIECE elements, all
 * inputs per piece, so dy is read from memory once, not once per input; an affine input's
 * values are made per piece in a small buffer. */
#define WS_PIECE 4096
static void wsum_backward(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                          const float *const *aff, int C, int HW, const float *w, int n, int64_t len, unsigned set) {
    if ((!dxs && !dw) || n < 1) return;
    const int nc = nchunks_for(len);
    double part[nc][n];
#pragma omp parallel for schedule(static) num_threads(nc)
    for (int c = 0; c < nc; c++) {
        const int64_t lo = len * c / nc, hi = len * (c + 1) / nc;
        double acc[n][8], tail[n];
        float vb[WS_PIECE];
        for (int k = 0; k < n; k++) {
            for (int j = 0; j < 8; j++) acc[k][j] = 0.0;
            tail[k] = 0.0;
        }
        for (int64_t p0 = lo; p0 < hi; p0 += WS_PIECE) {
            const int64_t m = hi - p0 < WS_PIECE ? hi - p0 : WS_PIECE, m8 = m & ~(int64_t)7;
            const float *g = dy + p0;
            for (int k = 0; k < n; k++) {
                if (dxs && dxs[k]) {
                    float *d = dxs[k] + p0;
                    const float a = w[k];
                    if (k < 32 && (set >> k & 1u))
                        for (int64_t i = 0; i < m; i++) d[i] = a * g[i];
                    else
                        for (int64_t i = 0; i < m; i++) d[i] += a * g[i];
                }
                if (!dw) continue;
                const float *v = xs[k] + p0;
                if (aff && aff[k]) {
                    aff_fill(vb, xs[k], aff[k], p0, m, C, HW);
                    v = vb;
                }
                dot8_acc(acc[k], g, v, m8);
                for (int64_t i = m8; i < m; i++) tail[k] += (double)g[i] * (double)v[i]; /* last piece only */
            }
        }
        if (dw)
            for (int k = 0; k < n; k++) part[c][k] = dot8_finish(acc[k], tail[k]);
    }
    if (dw)
        for (int k = 0; k < n; k++) {
            double s = 0.0;
            for (int c = 0; c < nc; c++) s += part[c][k];
            dw[k] += (float)s;
        }
}

void kcpu_wsum_backward(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                        const float *w, int n, int64_t len) {
    wsum_backward(dxs, dw, dy, xs, NULL, 1, 1, w, n, len, 0u);
}

void kcpu_wsum_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                            const float *w, int n, int64_t len, unsigned set) {
    wsum_backward(dxs, dw, dy, xs, NULL, 1, 1, w, n, len, set);
}

void kcpu_wsum_affine_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                                   const float *const *aff, const float *w, int n, int64_t planes, int C, int HW,
                                   unsigned set) {
    wsum_backward(dxs, dw, dy, xs, aff, C, HW, w, n, planes * HW, set);
}

/* ---- row softmax ---- */
void kcpu_softmax_forward(float *y, const float *x, int rows, int K) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * K > 16384)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (int64_t)r * K;
        float *yr = y + (int64_t)r * K;
        float m = -INFINITY;
        for (int k = 0; k < K; k++) m = xr[k] > m ? xr[k] : m;
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            yr[k] = expf(xr[k] - m);
            s += yr[k];
        }
        const float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) yr[k] *= inv;
    }
}

void kcpu_softmax_backward(float *dx, const float *dy, const float *y, int rows, int K) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if ((int64_t)rows * K > 16384)
    for (int r = 0; r < rows; r++) {
        const float *gr = dy + (int64_t)r * K, *yr = y + (int64_t)r * K;
        float *dr = dx + (int64_t)r * K;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += (double)gr[k] * yr[k];
        const float fs = (float)s;
        for (int k = 0; k < K; k++) dr[k] += yr[k] * (gr[k] - fs);
    }
}

/* ---- concat / slice ---- */
void kcpu_concat_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off) {
    const int64_t blk = (int64_t)Cx * HW;
#pragma omp parallel for schedule(static) if ((int64_t)N * blk > 32768)
    for (int n = 0; n < N; n++)
        memcpy(y + ((int64_t)n * Cy + c_off) * HW, x + n * blk, sizeof(float) * (size_t)blk);
}
static void concat_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off, int accumulate) {
    if (!dx) return;
    const int64_t blk = (int64_t)Cx * HW;
#pragma omp parallel for schedule(static) if ((int64_t)N * blk > 32768)
    for (int n = 0; n < N; n++) {
        float *d = dx + n * blk;
        const float *g = dy + ((int64_t)n * Cy + c_off) * HW;
        if (accumulate)
            for (int64_t i = 0; i < blk; i++) d[i] += g[i];
        else
            memcpy(d, g, sizeof(float) * (size_t)blk);
    }
}
void kcpu_concat_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off) {
    concat_backward(dx, dy, N, Cx, HW, Cy, c_off, 1);
}
void kcpu_concat_backward_set(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off) {
    concat_backward(dx, dy, N, Cx, HW, Cy, c_off, 0);
}
void kcpu_slice_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off) {
    const int64_t blk = (int64_t)Cy * HW;
    for (int n = 0; n < N; n++)
        memcpy(y + n * blk, x + ((int64_t)n * Cx + c_off) * HW, sizeof(float) * (size_t)blk);
}
void kcpu_slice_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off) {
    if (!dx) return;
    const int64_t blk = (int64_t)Cy * HW;
    for (int n = 0; n < N; n++) kcpu_axpy(dx + ((int64_t)n * Cx + c_off) * HW, 1.0f, dy + n * blk, blk);
}

/* ---- channel shuffle: y[:, j*G+g] = x[:, g*(C/G)+j], whole planes ---- */
static int64_t shuffle_src(int o, int C, int G) { return (int64_t)(o % G) * (C / G) + o / G; }
void kcpu_channel_shuffle_forward(float *y, const float *x, int N, int C, int HW, int G) {
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static) if (planes * HW > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int64_t n = pl / C;
        memcpy(y + pl * HW, x + (n * C + shuffle_src((int)(pl % C), C, G)) * HW, sizeof(float) * (size_t)HW);
    }
}
void kcpu_channel_shuffle_backward(float *dx, const float *dy, int N, int C, int HW, int G) {
    if (!dx) return;
    const int64_t planes = (int64_t)N * C;
    /* a permutation: each dx plane receives exactly one dy plane, so planes run in parallel */
#pragma omp parallel for schedule(static) if (planes * HW > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int64_t n = pl / C;
        float *d = dx + (n * C + shuffle_src((int)(pl % C), C, G)) * HW;
        const float *g = dy + pl * HW;
        for (int i = 0; i < HW; i++) d[i] += g[i];
    }
}

/* ---- pixel shift: y (N,C,H-1,W-1) = x[:, :, 1:, 1:] ---- */
void kcpu_shift_forward(float *y, const float *x, int N, int C, int H, int W) {
    const int64_t planes = (int64_t)N * C;
    const int Ho = H - 1, Wo = W - 1;
    if (Ho <= 0 || Wo <= 0) return;
#pragma omp parallel for schedule(static) if (planes * H * W > 32768)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int i = 0; i < Ho; i++)
            memcpy(y + (pl * Ho + i) * Wo, x + (pl * H + i + 1) * W + 1, sizeof(float) * (size_t)Wo);
}
/* dx += dy at the shifted pixels, or (set) dx written whole: 0 in its first row and column. */
static void shift_backward(float *dx, const float *dy, int N, int C, int H, int W, int set) {
    if (!dx) return;
    const int64_t planes = (int64_t)N * C;
    const int Ho = H - 1, Wo = W - 1;
    if (Ho <= 0 || Wo <= 0) return;
#pragma omp parallel for schedule(static) if (planes * H * W > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        if (set) memset(dx + pl * H * W, 0, (size_t)W * sizeof *dx); /* row 0 */
        for (int i = 0; i < Ho; i++) {
            float *d = dx + (pl * H + i + 1) * W + 1;
            const float *g = dy + (pl * Ho + i) * Wo;
            if (set) {
                d[-1] = 0.0f; /* column 0 */
                for (int j = 0; j < Wo; j++) d[j] = g[j];
            } else {
                for (int j = 0; j < Wo; j++) d[j] += g[j];
            }
        }
    }
}
void kcpu_shift_backward(float *dx, const float *dy, int N, int C, int H, int W) { shift_backward(dx, dy, N, C, H, W, 0); }
void kcpu_shift_backward_set(float *dx, const float *dy, int N, int C, int H, int W) {
    shift_backward(dx, dy, N, C, H, W, 1);
}

/* ---- global average pool ---- */
void kcpu_gap_forward(float *y, const float *x, int N, int C, int HW) {
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static) if (planes * HW > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * HW;
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += xp[i];
        y[pl] = HW > 0 ? (float)(s / HW) : 0.0f;
    }
}
void kcpu_gap_backward(float *dx, const float *dy, int N, int C, int HW) {
    if (!dx || HW <= 0) return;
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static) if (planes * HW > 32768)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float g = dy[pl] / (float)HW;
        float *dp = dx + pl * HW;
        for (int i = 0; i < HW; i++) dp[i] += g;
    }
}

/* ---- dropout / drop path ---- */
void kcpu_dropout_forward(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        float m = (p <= 0.0f) ? 1.0f : (krng_uniform(seed, (uint64_t)i) >= p ? scale : 0.0f);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

void kcpu_droppath_forward(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                           uint64_t seed) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int n = 0; n < N; n++)
        mask[n] = (p <= 0.0f) ? 1.0f : (krng_uniform(seed, (uint64_t)n) >= p ? scale : 0.0f);
#pragma omp parallel for schedule(static) if ((int64_t)N * per_sample > 32768)
    for (int n = 0; n < N; n++) {
        const float m = mask[n];
        const float *xp = x + (int64_t)n * per_sample;
        float *yp = y + (int64_t)n * per_sample;
        for (int64_t i = 0; i < per_sample; i++) yp[i] = xp[i] * m;
    }
}

void kcpu_dropout_backward(float *dx, const float *dy, const float *mask, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}

/* set: dx = 0 + dy * mask, the bits of adding to a zeroed dx (a -0 product becomes +0) */
static void droppath_backward(float *dx, const float *dy, const float *mask, int N, int64_t per_sample, int set) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if ((int64_t)N * per_sample > 32768)
    for (int n = 0; n < N; n++) {
        const float m = mask[n];
        const float *gp = dy + (int64_t)n * per_sample;
        float *dp = dx + (int64_t)n * per_sample;
        if (set)
            for (int64_t i = 0; i < per_sample; i++) dp[i] = 0.0f + gp[i] * m;
        else
            for (int64_t i = 0; i < per_sample; i++) dp[i] += gp[i] * m;
    }
}
void kcpu_droppath_backward(float *dx, const float *dy, const float *mask, int N, int64_t per_sample) {
    droppath_backward(dx, dy, mask, N, per_sample, 0);
}
void kcpu_droppath_backward_set(float *dx, const float *dy, const float *mask, int N, int64_t per_sample) {
    droppath_backward(dx, dy, mask, N, per_sample, 1);
}

/* ---- optimisers (PyTorch single-tensor algorithms, float arithmetic) ---- */
void kcpu_sgd_step(float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f) g += wd * w[i];
        if (buf) {
            buf[i] = momentum * buf[i] + g;
            g = buf[i];
        }
        w[i] -= lr * g;
    }
}

void kcpu_adam_scalars(float lr, float beta1, float beta2, int t, float sc[2]) {
    /* Bias corrections are computed in double as Python does, then used as floats. */
    const double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    sc[0] = (float)((double)lr / bc1);
    sc[1] = (float)sqrt(bc2);
}

void kcpu_adam_step_sc(float *w, float *m, float *v, const float *grad, int64_t n, float step, float bc2s, float beta1,
                       float beta2, float eps, float wd) {
    const float omb1 = 1.0f - beta1, omb2 = 1.0f - beta2;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (wd != 0.0f) g += wd * w[i];
        m[i] = m[i] + omb1 * (g - m[i]);
        v[i] = v[i] * beta2 + omb2 * g * g;
        const float denom = sqrtf(v[i]) / bc2s + eps;
        w[i] += -step * (m[i] / denom);
    }
}

void kcpu_adam_step(float *w, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                    float beta2, float eps, float wd, int t) {
    /* As torch.optim.Adam (foreach=False): m.lerp_(g, 1-b1); v = b2 v + (1-b2) g^2;
     * step = lr / (1 - b1^t); denom = sqrt(v) / sqrt(1 - b2^t) + eps; w -= step * m / denom. */
    float sc[2];
    kcpu_adam_scalars(lr, beta1, beta2, t, sc);
    kcpu_adam_step_sc(w, m, v, grad, n, sc[0], sc[1], beta1, beta2, eps, wd);
}
