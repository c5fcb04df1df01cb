/* pool.c — CPU max and average pooling with square windows. Max: padding never
 * chosen, first maximum in row-major window order wins ties, backward recomputes the
 * argmax from x. Avg: divides by the in-bounds cell count (count_include_pad=False).
 * Parallel over (n, c) planes, so every write has one owner. */
#include "kernels/cpu/kcpu.h"

#include <math.h>

/* Index into the plane of the first maximum of window (p, q), or -1 if empty. */
/* Index (in the plane) of the window's maximum: the first maximum in row-major order,
 * or the first NaN (NaN propagates, as in PyTorch); -1 for a window with no in-bounds cell.
 * The window is clipped once, so the scan has no per-cell bounds checks. */
static inline int64_t argmax_window(const float *xp, const kpool_desc *d, int p, int q) {
    const int h0 = p * d->stride - d->pad, w0 = q * d->stride - d->pad;
    const int i0 = h0 < 0 ? 0 : h0, i1 = h0 + d->k > d->H ? d->H : h0 + d->k;
    const int j0 = w0 < 0 ? 0 : w0, j1 = w0 + d->k > d->W ? d->W : w0 + d->k;
    if (i0 >= i1 || j0 >= j1) return -1;
    int64_t bi = (int64_t)i0 * d->W + j0;
    float best = xp[bi];
    if (isnan(best)) return bi;
    for (int ih = i0; ih < i1; ih++) {
        const float *row = xp + (int64_t)ih * d->W;
        for (int iw = j0; iw < j1; iw++) {
            const float v = row[iw];
            if (v > best) {
                best = v;
                bi = (int64_t)ih * d->W + iw;
            } else if (isnan(v)) {
                return (int64_t)ih * d->W + iw;
            }
        }
    }
    return bi;
}

void kcpu_maxpool_forward(float *y, const float *x, const kpool_desc *d) {
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * HW;
        float *yp = y + pl * PQ;
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                int64_t i = argmax_window(xp, d, p, q);
                yp[(int64_t)p * d->Q + q] = i >= 0 ? xp[i] : -INFINITY;
            }
    }
}

void kcpu_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d) {
    if (!dx) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * HW;
        const float *gp = dy + pl * PQ;
        float *dp = dx + pl * HW;
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                int64_t i = argmax_window(xp, d, p, q);
                if (i >= 0) dp[i] += gp[(int64_t)p * d->Q + q];
            }
    }
}

/* In-bounds window bounds [h0,h1) x [w0,w1). */
static void avg_bounds(const kpool_desc *d, int p, int q, int *h0, int *h1, int *w0, int *w1) {
    int a = p * d->stride - d->pad, b = q * d->stride - d->pad;
    *h0 = a < 0 ? 0 : a;
    *h1 = a + d->k > d->H ? d->H : a + d->k;
    *w0 = b < 0 ? 0 : b;
    *w1 = b + d->k > d->W ? d->W : b + d->k;
}

void kcpu_avgpool_forward(float *y, const float *x, const kpool_desc *d) {
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * HW;
        float *yp = y + pl * PQ;
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                int h0, h1, w0, w1;
                avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
                float s = 0.0f;
                for (int i = h0; i < h1; i++)
                    for (int j = w0; j < w1; j++) s += xp[(int64_t)i * d->W + j];
                int cnt = (h1 - h0) * (w1 - w0);
                yp[(int64_t)p * d->Q + q] = cnt > 0 ? s / (float)cnt : 0.0f;
            }
    }
}

void kcpu_avgpool_backward(float *dx, const float *dy, const kpool_desc *d) {
    if (!dx) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *gp = dy + pl * PQ;
        float *dp = dx + pl * HW;
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                int h0, h1, w0, w1;
                avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
                int cnt = (h1 - h0) * (w1 - w0);
                if (cnt <= 0) continue;
                float g = gp[(int64_t)p * d->Q + q] / (float)cnt;
                for (int i = h0; i < h1; i++)
                    for (int j = w0; j < w1; j++) dp[(int64_t)i * d->W + j] += g;
            }
    }
}
