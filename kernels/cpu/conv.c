/* conv.c — CPU 2-D convolution (forward, backward data, backward filter).
 * Three paths: 1x1/stride-1/pad-0/dense as one GEMM per sample; depthwise
 * (groups == C == K) as direct loops parallel over planes (stride-1 inner loops are
 * contiguous and vectorise); everything else through im2col per sample and one GEMM
 * per group. GEMMs are never called inside an OpenMP region; samples are looped
 * serially around them so batch accumulation is in a fixed order. */
#include "kernels/cpu/kcpu.h"

#include <cblas.h>
#include <string.h>

static int is_pointwise(const kconv2d_desc *d) {
    return d->R == 1 && d->S == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
           d->pad_w == 0 && d->groups == 1;
}

static int is_depthwise(const kconv2d_desc *d) {
    return d->groups == d->C && d->K == d->C;
}

/* Range [*q0, *q1) of output columns q with 0 <= q*stride + off < W, clamped to [0, Q). */
static void valid_range(int off, int stride, int W, int Q, int *q0, int *q1) {
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / stride + 1;
    if (b > Q) b = Q;
    if (a > b) a = b;
    *q0 = a;
    *q1 = b;
}

size_t kcpu_conv2d_scratch_floats(const kconv2d_desc *d) {
    if (is_pointwise(d) || is_depthwise(d)) return 0;
    return (size_t)d->C * d->R * d->S * (size_t)d->P * d->Q;
}

/* ---- im2col / col2im for one sample: col is (C*R*S) x (P*Q) ----
 * Serial on purpose: they sit between sgemm calls, and OpenMP workers spinning after a
 * parallel region starve OpenBLAS's threads (measured 15x slower dense 3x3 at 2 cores). */
static void im2col(float *col, const float *x, const kconv2d_desc *d) {
    const int C = d->C, H = d->H, W = d->W, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int sh = d->stride_h, sw = d->stride_w;
    const int64_t rows = (int64_t)C * R * S;
    for (int64_t row = 0; row < rows; row++) {
        int c = (int)(row / (R * S)), r = (int)(row / S % R), s = (int)(row % S);
        const float *xc = x + (int64_t)c * H * W;
        float *dst = col + row * (int64_t)P * Q;
        int offw = s * d->dil_w - d->pad_w;
        int q0, q1;
        valid_range(offw, sw, W, Q, &q0, &q1);
        for (int p = 0; p < P; p++) {
            float *drow = dst + (int64_t)p * Q;
            int ih = p * sh - d->pad_h + r * d->dil_h;
            if (ih < 0 || ih >= H) {
                memset(drow, 0, sizeof(float) * (size_t)Q);
                continue;
            }
            const float *xr = xc + (int64_t)ih * W + offw;
            for (int q = 0; q < q0; q++) drow[q] = 0.0f;
            if (sw == 1)
                for (int q = q0; q < q1; q++) drow[q] = xr[q];
            else
                for (int q = q0; q < q1; q++) drow[q] = xr[(int64_t)q * sw];
            for (int q = q1; q < Q; q++) drow[q] = 0.0f;
        }
    }
}

/* dx += col2im(col); channels and rows in a fixed order. */
static void col2im_add(float *dx, const float *col, const kconv2d_desc *d) {
    const int C = d->C, H = d->H, W = d->W, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int sh = d->stride_h, sw = d->stride_w;
    for (int c = 0; c < C; c++) {
        float *xc = dx + (int64_t)c * H * W;
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) {
                const float *src = col + ((int64_t)(c * R + r) * S + s) * P * Q;
                int offw = s * d->dil_w - d->pad_w;
                int q0, q1;
                valid_range(offw, sw, W, Q, &q0, &q1);
                for (int p = 0; p < P; p++) {
                    int ih = p * sh - d->pad_h + r * d->dil_h;
                    if (ih < 0 || ih >= H) continue;
                    float *xr = xc + (int64_t)ih * W + offw;
                    const float *srow = src + (int64_t)p * Q;
                    if (sw == 1)
                        for (int q = q0; q < q1; q++) xr[q] += srow[q];
                    else
                        for (int q = q0; q < q1; q++) xr[(int64_t)q * sw] += srow[q];
                }
            }
    }
}

/* ---- depthwise direct loops ---- */
static void dw_forward(float *y, const float *x, const float *w, const kconv2d_desc *d) {
    const int C = d->C, H = d->H, W = d->W, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int sh = d->stride_h, sw = d->stride_w;
    const int64_t planes = (int64_t)d->N * C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int c = (int)(pl % C);
        const float *xp = x + pl * H * W;
        float *yp = y + pl * P * Q;
        const float *wc = w + (int64_t)c * R * S;
        for (int p = 0; p < P; p++) {
            float *yr = yp + (int64_t)p * Q;
            for (int q = 0; q < Q; q++) yr[q] = 0.0f;
            for (int r = 0; r < R; r++) {
                int ih = p * sh - d->pad_h + r * d->dil_h;
                if (ih < 0 || ih >= H) continue;
                for (int s = 0; s < S; s++) {
                    int offw = s * d->dil_w - d->pad_w;
                    int q0, q1;
                    valid_range(offw, sw, W, Q, &q0, &q1);
                    const float wv = wc[r * S + s];
                    const float *xr = xp + (int64_t)ih * W + offw;
                    if (sw == 1)
                        for (int q = q0; q < q1; q++) yr[q] += wv * xr[q];
                    else
                        for (int q = q0; q < q1; q++) yr[q] += wv * xr[(int64_t)q * sw];
                }
            }
        }
    }
}

static void dw_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d) {
    const int C = d->C, H = d->H, W = d->W, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int sh = d->stride_h, sw = d->stride_w;
    const int64_t planes = (int64_t)d->N * C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        int c = (int)(pl % C);
        float *xp = dx + pl * H * W;
        const float *yp = dy + pl * P * Q;
        const float *wc = w + (int64_t)c * R * S;
        for (int p = 0; p < P; p++) {
            const float *yr = yp + (int64_t)p * Q;
            for (int r = 0; r < R; r++) {
                int ih = p * sh - d->pad_h + r * d->dil_h;
                if (ih < 0 || ih >= H) continue;
                for (int s = 0; s < S; s++) {
                    int offw = s * d->dil_w - d->pad_w;
                    int q0, q1;
                    valid_range(offw, sw, W, Q, &q0, &q1);
                    const float wv = wc[r * S + s];
                    float *xr = xp + (int64_t)ih * W + offw;
                    if (sw == 1)
                        for (int q = q0; q < q1; q++) xr[q] += wv * yr[q];
                    else
                        for (int q = q0; q < q1; q++) xr[(int64_t)q * sw] += wv * yr[q];
                }
            }
        }
    }
}

/* Float dot of n terms with 8 independent lanes (vectorisable, fixed order). */
static float dot_lanes(const float *a, const float *b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float t = 0.0f;
    for (; i < n; i++) t += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + t;
}

static void dw_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d) {
    const int C = d->C, H = d->H, W = d->W, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int sh = d->stride_h, sw = d->stride_w;
    /* Parallel over (channel, tap): each weight is owned by one thread and summed over
     * samples and rows in a fixed order, in double. */
    const int64_t taps = (int64_t)C * R * S;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < taps; t++) {
        int c = (int)(t / (R * S)), r = (int)(t / S % R), s = (int)(t % S);
        int offw = s * d->dil_w - d->pad_w;
        int q0, q1;
        valid_range(offw, sw, W, Q, &q0, &q1);
        double acc = 0.0;
        for (int n = 0; n < d->N; n++) {
            const float *xp = x + ((int64_t)n * C + c) * H * W;
            const float *yp = dy + ((int64_t)n * C + c) * P * Q;
            for (int p = 0; p < P; p++) {
                int ih = p * sh - d->pad_h + r * d->dil_h;
                if (ih < 0 || ih >= H) continue;
                const float *xr = xp + (int64_t)ih * W + offw;
                const float *yr = yp + (int64_t)p * Q;
                if (q1 <= q0) continue;
                if (sw == 1) {
                    acc += dot_lanes(yr + q0, xr + q0, q1 - q0);
                } else {
                    float a = 0.0f;
                    for (int q = q0; q < q1; q++) a += yr[q] * xr[(int64_t)q * sw];
                    acc += a;
                }
            }
        }
        dw[t] += (float)acc;
    }
}

/* ---- public entry points ---- */
void kcpu_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch) {
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        dw_forward(y, x, w, d);
        return;
    }
    if (is_pointwise(d)) {
        for (int n = 0; n < d->N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->K, (int)HW, d->C, 1.0f, w, d->C,
                        x + (int64_t)n * d->C * HW, (int)HW, 0.0f, y + (int64_t)n * d->K * PQ, (int)HW);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    for (int n = 0; n < d->N; n++) {
        im2col(scratch, x + (int64_t)n * d->C * HW, d);
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Kg, (int)PQ, CgRS, 1.0f,
                        w + (int64_t)g * Kg * CgRS, CgRS, scratch + (int64_t)g * CgRS * PQ, (int)PQ, 0.0f,
                        y + ((int64_t)n * d->K + (int64_t)g * Kg) * PQ, (int)PQ);
    }
}

void kcpu_conv2d_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d,
                               float *scratch) {
    if (!dx) return;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        dw_backward_data(dx, dy, w, d);
        return;
    }
    if (is_pointwise(d)) {
        for (int n = 0; n < d->N; n++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d->C, (int)HW, d->K, 1.0f, w, d->C,
                        dy + (int64_t)n * d->K * PQ, (int)PQ, 1.0f, dx + (int64_t)n * d->C * HW, (int)HW);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    for (int n = 0; n < d->N; n++) {
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CgRS, (int)PQ, Kg, 1.0f,
                        w + (int64_t)g * Kg * CgRS, CgRS, dy + ((int64_t)n * d->K + (int64_t)g * Kg) * PQ,
                        (int)PQ, 0.0f, scratch + (int64_t)g * CgRS * PQ, (int)PQ);
        col2im_add(dx + (int64_t)n * d->C * HW, scratch, d);
    }
}

void kcpu_conv2d_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                 float *scratch) {
    if (!dw) return;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        dw_backward_filter(dw, dy, x, d);
        return;
    }
    if (is_pointwise(d)) {
        for (int n = 0; n < d->N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->K, d->C, (int)HW, 1.0f,
                        dy + (int64_t)n * d->K * PQ, (int)PQ, x + (int64_t)n * d->C * HW, (int)HW, 1.0f, dw,
                        d->C);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    for (int n = 0; n < d->N; n++) {
        im2col(scratch, x + (int64_t)n * d->C * HW, d);
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Kg, CgRS, (int)PQ, 1.0f,
                        dy + ((int64_t)n * d->K + (int64_t)g * Kg) * PQ, (int)PQ,
                        scratch + (int64_t)g * CgRS * PQ, (int)PQ, 1.0f, dw + (int64_t)g * Kg * CgRS,
                        CgRS);
    }
}
