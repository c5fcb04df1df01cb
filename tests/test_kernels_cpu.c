/* test_kernels_cpu.c — the CPU reference kernels against naive double-precision
 * references written here, and every backward against central finite differences of
 * L = sum(y * r) for a fixed random r (computed in double from the kernel's own float
 * forward). Also: backward kernels accumulate (two calls give twice the gradient),
 * NULL gradients are skipped, and results are bit-identical across runs at 2 threads.
 *
 * Tolerances (and why):
 *  - forward / analytic backward vs the double reference: tu_max_rel_err with floor 1
 *    (absolute error below |ref| = 1) <= 2e-5. The kernels accumulate in float sums of
 *    at most a few hundred products of O(1) values: typical error ~1e-6; any indexing
 *    error is O(0.1) or more.
 *  - finite differences: eps 1e-2 for functions linear in the perturbed input (conv,
 *    linear, avg pool, wsum: the difference is exact up to rounding, ~1e-4 absolute here),
 *    1e-3 for smooth nonlinear ones; pass when |fd - an| <= 1e-2 * max(|an|, floor),
 *    floor stated per test. Loss noise from float outputs is ~1e-6 relative, i.e. well
 *    below that after dividing by 2*eps.
 *  - exact data movers (concat, slice, shift, embedding, dropout masks, max pool
 *    selection) are compared bit for bit. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/dwc8.h"
#include "kernels/cpu/pointwise.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------ */
/* helpers                                                                               */

static float *rnd(int64_t n, float lo, float hi, uint64_t seed) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tu_fill_uniform(p, n, lo, hi, seed);
    return p;
}
static float *zerosf(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
static double *zerosd(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }
static float *tof(const double *a, int64_t n, double scale) {
    float *p = zerosf(n);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(a[i] * scale);
    return p;
}
static double dotd(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}
static int fd_ok(double fd, double an, double floor_) {
    double s = fabs(an) > floor_ ? fabs(an) : floor_;
    return fabs(fd - an) <= 1e-2 * s;
}

#define TOL_REF 2e-5

#define EXPECT_CLOSE(a, ref, n, tol, what)                                                        \
    do {                                                                                          \
        int64_t _w;                                                                               \
        double _e = tu_max_rel_err((a), (ref), (n), 1.0, &_w);                                    \
        cr_expect(_e <= (tol), "%s: max rel err %g at %lld (got %g want %g)", (what), _e,         \
                  (long long)_w, (double)(a)[_w], (double)(ref)[_w]);                             \
    } while (0)

/* ------------------------------------------------------------------------------------ */
/* convolution                                                                           */

/* Direct double reference: any of y / dx / dw may be NULL. */
static void ref_conv(double *y, double *dx, double *dwt, const float *x, const float *w, const float *dy,
                     const kconv2d_desc *d) {
    const int G = d->groups, Cg = d->C / G, Kg = d->K / G;
    for (int n = 0; n < d->N; n++)
        for (int k = 0; k < d->K; k++) {
            int g = k / Kg;
            for (int p = 0; p < d->P; p++)
                for (int q = 0; q < d->Q; q++) {
                    int64_t yi = (((int64_t)n * d->K + k) * d->P + p) * d->Q + q;
                    double acc = 0;
                    for (int cg = 0; cg < Cg; cg++) {
                        int c = g * Cg + cg;
                        for (int r = 0; r < d->R; r++)
                            for (int s = 0; s < d->S; s++) {
                                int ih = p * d->stride_h - d->pad_h + r * d->dil_h;
                                int iw = q * d->stride_w - d->pad_w + s * d->dil_w;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                                int64_t xi = (((int64_t)n * d->C + c) * d->H + ih) * d->W + iw;
                                int64_t wi = (((int64_t)k * Cg + cg) * d->R + r) * d->S + s;
                                acc += (double)w[wi] * x[xi];
                                if (dx) dx[xi] += (double)w[wi] * dy[yi];
                                if (dwt) dwt[wi] += (double)dy[yi] * x[xi];
                            }
                    }
                    if (y) y[yi] = acc;
                }
        }
}

static double conv_loss(const float *x, const float *w, const float *r, const kconv2d_desc *d, float *y,
                        float *scr) {
    kcpu_conv2d_forward(y, x, w, d, scr);
    return dotd(y, r, (int64_t)d->N * d->K * d->P * d->Q);
}

static void check_conv(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph, int pw,
                       int dh, int dwl, int groups) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = K, .R = R, .S = S, .stride_h = sh,
                      .stride_w = sw, .pad_h = ph, .pad_w = pw, .dil_h = dh, .dil_w = dwl, .groups = groups};
    kconv2d_desc_finish(&d);
    cr_assert(d.P > 0 && d.Q > 0);
    const int64_t nx = (int64_t)N * C * H * W, nw = (int64_t)K * (C / groups) * R * S,
                  ny = (int64_t)N * K * d.P * d.Q;
    float *x = rnd(nx, -1, 1, 11), *w = rnd(nw, -1, 1, 12), *r = rnd(ny, -1, 1, 13);
    size_t ns = kcpu_conv2d_scratch_floats(&d);
    float *scr = malloc(sizeof(float) * (ns > 0 ? ns : 1));
    for (size_t i = 0; i < ns; i++) scr[i] = NAN; /* scratch contents must not matter */
    double *yr = zerosd(ny), *dxr = zerosd(nx), *dwr = zerosd(nw);
    ref_conv(yr, dxr, dwr, x, w, r, &d);

    /* forward overwrites */
    float *y = rnd(ny, 100, 200, 5);
    kcpu_conv2d_forward(y, x, w, &d, scr);
    float *yrf = tof(yr, ny, 1);
    EXPECT_CLOSE(y, yrf, ny, TOL_REF, "forward");

    /* backward data / filter, then again: accumulation doubles */
    float *dx = zerosf(nx), *dwk = zerosf(nw);
    float *dxr1 = tof(dxr, nx, 1), *dxr2 = tof(dxr, nx, 2), *dwr1 = tof(dwr, nw, 1), *dwr2 = tof(dwr, nw, 2);
    kcpu_conv2d_backward_data(dx, r, w, &d, scr);
    EXPECT_CLOSE(dx, dxr1, nx, TOL_REF, "backward_data");
    kcpu_conv2d_backward_data(dx, r, w, &d, scr);
    EXPECT_CLOSE(dx, dxr2, nx, TOL_REF, "backward_data accumulates");
    kcpu_conv2d_backward_filter(dwk, r, x, &d, scr);
    EXPECT_CLOSE(dwk, dwr1, nw, TOL_REF, "backward_filter");
    kcpu_conv2d_backward_filter(dwk, r, x, &d, scr);
    EXPECT_CLOSE(dwk, dwr2, nw, TOL_REF, "backward_filter accumulates");
    /* NULL gradients are skipped */
    kcpu_conv2d_backward_data(NULL, r, w, &d, scr);
    kcpu_conv2d_backward_filter(NULL, r, x, &d, scr);

    /* finite differences (linear in x and in w: eps 1e-2, floor 0.1) on a spread of indices */
    const double eps = 1e-2;
    for (int t = 0; t < 24; t++) {
        int64_t i = (int64_t)t * nx / 24 + t % 3;
        if (i >= nx) i = nx - 1;
        float o = x[i];
        x[i] = o + (float)eps;
        double lp = conv_loss(x, w, r, &d, y, scr);
        x[i] = o - (float)eps;
        double lm = conv_loss(x, w, r, &d, y, scr);
        x[i] = o;
        double fd = (lp - lm) / (2 * eps);
        cr_expect(fd_ok(fd, dxr1[i], 0.1), "dx fd at %lld: fd %g an %g", (long long)i, fd, (double)dxr1[i]);
    }
    for (int t = 0; t < 24; t++) {
        int64_t i = (int64_t)t * nw / 24 + t % 2;
        if (i >= nw) i = nw - 1;
        float o = w[i];
        w[i] = o + (float)eps;
        double lp = conv_loss(x, w, r, &d, y, scr);
        w[i] = o - (float)eps;
        double lm = conv_loss(x, w, r, &d, y, scr);
        w[i] = o;
        double fd = (lp - lm) / (2 * eps);
        cr_expect(fd_ok(fd, dwr1[i], 0.1), "dw fd at %lld: fd %g an %g", (long long)i, fd, (double)dwr1[i]);
    }
    free(x); free(w); free(r); free(scr); free(yr); free(dxr); free(dwr); free(y); free(yrf);
    free(dx); free(dwk); free(dxr1); free(dxr2); free(dwr1); free(dwr2);
}

/*                                                      N  C  H  W  K  R  S sh sw ph pw dh dw g */
Test(conv, dense_3x3_pad1_matches_reference_and_finite_difference) { check_conv(2, 4, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1); }
Test(conv, dense_3x3_stride2_dilated_matches_reference_and_finite_difference) { check_conv(2, 3, 9, 8, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1); }
Test(conv, pointwise_1x1_stride1_gemm_path_matches_reference_and_finite_difference) { check_conv(2, 6, 5, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1); }
Test(conv, pointwise_1x1_stride2_matches_reference_and_finite_difference) { check_conv(2, 4, 7, 7, 6, 1, 1, 2, 2, 0, 0, 1, 1, 1); }
/* FactorizedReduce's pair: 1x1 stride 2 on a 32x32 map and on its 31x31 shift (gathered
 * pixels + the 1x1 kernels); a padded 1x1; and an input large enough (256 channels of
 * 128x128) that the gathered buffer holds one sample at a time, so two chunks run. */
Test(conv, strided_1x1_factorized_reduce_shapes_match_reference_and_finite_difference) {
    check_conv(5, 32, 32, 32, 8, 1, 1, 2, 2, 0, 0, 1, 1, 1);
    check_conv(5, 32, 31, 31, 8, 1, 1, 2, 2, 0, 0, 1, 1, 1);
    check_conv(3, 6, 9, 9, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1);
}
Test(conv, strided_1x1_in_sample_chunks_matches_reference_and_finite_difference, .timeout = 120) {
    check_conv(2, 256, 128, 128, 4, 1, 1, 2, 2, 0, 0, 1, 1, 1);
}
Test(conv, depthwise_3x3_stride1_matches_reference_and_finite_difference) { check_conv(2, 3, 9, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3); }
Test(conv, depthwise_3x3_stride2_matches_reference_and_finite_difference) { check_conv(3, 3, 9, 8, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3); }
Test(conv, depthwise_5x5_stride1_matches_reference_and_finite_difference) { check_conv(2, 3, 9, 11, 3, 5, 5, 1, 1, 2, 2, 1, 1, 3); }
Test(conv, depthwise_5x5_stride2_matches_reference_and_finite_difference) { check_conv(2, 3, 9, 11, 3, 5, 5, 2, 2, 2, 2, 1, 1, 3); }
Test(conv, depthwise_dil2_3x3_pad2_stride1_and_2_match_reference_and_finite_difference) {
    check_conv(2, 3, 9, 8, 3, 3, 3, 1, 1, 2, 2, 2, 2, 3);
    check_conv(2, 3, 9, 8, 3, 3, 3, 2, 2, 2, 2, 2, 2, 3);
}
Test(conv, depthwise_dil2_5x5_pad4_stride1_and_2_match_reference_and_finite_difference) {
    check_conv(2, 3, 11, 9, 3, 5, 5, 1, 1, 4, 4, 2, 2, 3);
    check_conv(2, 3, 11, 9, 3, 5, 5, 2, 2, 4, 4, 2, 2, 3);
}
Test(conv, depthwise_wide_rows_vectorised_path_matches_reference) { check_conv(1, 2, 5, 37, 2, 3, 3, 1, 1, 1, 1, 1, 1, 2); }
Test(conv, grouped_2_groups_3x3_matches_reference_and_finite_difference) { check_conv(2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2); }
Test(conv, asymmetric_1x7_and_7x1_with_pads_match_reference_and_finite_difference) {
    check_conv(2, 4, 9, 9, 4, 1, 7, 1, 1, 0, 3, 1, 1, 1);
    check_conv(2, 4, 9, 9, 4, 7, 1, 1, 1, 3, 0, 1, 1, 1);
    check_conv(2, 4, 9, 9, 4, 1, 7, 1, 2, 0, 3, 1, 1, 1); /* as DARTS conv_7x1_1x7 at stride 2 */
    check_conv(2, 4, 9, 5, 4, 7, 1, 2, 1, 3, 0, 1, 1, 1);
}

/* The vectorised depthwise path (kernels/cpu/conv.c, padded phase buffers) on the
 * shapes of the DARTS supernets and on awkward ones: planes narrower and wider than a
 * vector, odd sizes, stride 2, dilation 2, 3x3 / 5x5 / 7x7 and asymmetric kernels; then
 * the same with a ReLU fused into the input (kcpu_conv2d_relu_*) against ReLU followed
 * by the double reference, its input gradient masked by x > 0. */
static void check_dw_relu(int N, int C, int H, int W, int R, int S, int sh, int sw, int ph, int pw, int dh,
                          int dwl) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = C, .R = R, .S = S, .stride_h = sh, .stride_w = sw,
                      .pad_h = ph, .pad_w = pw, .dil_h = dh, .dil_w = dwl, .groups = C};
    kconv2d_desc_finish(&d);
    cr_assert(d.P > 0 && d.Q > 0);
    cr_assert(kcpu_conv2d_relu_supported(&d), "fast path expected for %dx%d %dx%d", H, W, R, S);
    const int64_t nx = (int64_t)N * C * H * W, nw = (int64_t)C * R * S, ny = (int64_t)N * C * d.P * d.Q;
    float *x = rnd(nx, -1, 1, 21), *w = rnd(nw, -1, 1, 22), *r = rnd(ny, -1, 1, 23), *xr = zerosf(nx);
    for (int64_t i = 0; i < nx; i++) xr[i] = x[i] > 0.0f ? x[i] : 0.0f;
    double *yr = zerosd(ny), *dxr = zerosd(nx), *dwr = zerosd(nw);
    ref_conv(yr, dxr, dwr, xr, w, r, &d);
    for (int64_t i = 0; i < nx; i++)
        if (!(x[i] > 0.0f)) dxr[i] = 0.0;
    float *yrf = tof(yr, ny, 1), *dxr1 = tof(dxr, nx, 1), *dxr2 = tof(dxr, nx, 2), *dwr1 = tof(dwr, nw, 1);
    float *y = rnd(ny, 100, 200, 5), *dx = zerosf(nx), *dwk = zerosf(nw);
    /* plain depthwise on relu(x) (the fast path without fusion) */
    kcpu_conv2d_forward(y, xr, w, &d, NULL);
    EXPECT_CLOSE(y, yrf, ny, TOL_REF, "dw forward");
    kcpu_conv2d_backward_filter(dwk, r, xr, &d, NULL);
    EXPECT_CLOSE(dwk, dwr1, nw, TOL_REF, "dw backward_filter");
    /* fused */
    for (int64_t i = 0; i < ny; i++) y[i] = 1e9f;
    kcpu_conv2d_relu_forward(y, x, w, &d, NULL);
    EXPECT_CLOSE(y, yrf, ny, TOL_REF, "relu+dw forward");
    kcpu_conv2d_relu_backward_data(dx, r, w, x, &d, NULL);
    EXPECT_CLOSE(dx, dxr1, nx, TOL_REF, "relu+dw backward_data");
    kcpu_conv2d_relu_backward_data(dx, r, w, x, &d, NULL);
    EXPECT_CLOSE(dx, dxr2, nx, TOL_REF, "relu+dw backward_data accumulates");
    for (int64_t i = 0; i < nw; i++) dwk[i] = 0.0f;
    kcpu_conv2d_relu_backward_filter(dwk, r, x, &d, NULL);
    EXPECT_CLOSE(dwk, dwr1, nw, TOL_REF, "relu+dw backward_filter");
    /* overwritten, not accumulated (dx NaN before): fused and plain on relu(x), whose
     * gradient is the unmasked one, dxr_plain */
    cr_assert(kcpu_conv2d_sets_dx(&d));
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    kcpu_conv2d_backward_data_set(dx, r, w, x, &d, NULL);
    EXPECT_CLOSE(dx, dxr1, nx, TOL_REF, "relu+dw backward_data_set");
    double *dxp = zerosd(nx);
    ref_conv(NULL, dxp, NULL, xr, w, r, &d);
    float *dxp1 = tof(dxp, nx, 1);
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    kcpu_conv2d_backward_data_set(dx, r, w, NULL, &d, NULL);
    EXPECT_CLOSE(dx, dxp1, nx, TOL_REF, "dw backward_data_set");
    free(dxp); free(dxp1);
    kcpu_conv2d_relu_backward_data(NULL, r, w, x, &d, NULL);
    kcpu_conv2d_relu_backward_filter(NULL, r, x, &d, NULL);
    free(x); free(w); free(r); free(xr); free(yr); free(dxr); free(dwr); free(yrf); free(dxr1); free(dxr2);
    free(dwr1); free(y); free(dx); free(dwk);
}

/*                                                              N  C  H  W  R  S sh sw ph pw dh dw */
Test(conv, depthwise_fast_3x3_darts_shapes_stride1_and_2) {
    check_dw_relu(2, 3, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw_relu(2, 3, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1);
    check_dw_relu(2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw_relu(2, 3, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw_relu(2, 3, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1);
}
Test(conv, depthwise_fast_5x5_and_dilated_darts_shapes) {
    check_dw_relu(2, 3, 14, 14, 5, 5, 1, 1, 2, 2, 1, 1);
    check_dw_relu(2, 3, 14, 14, 5, 5, 2, 2, 2, 2, 1, 1);
    check_dw_relu(2, 3, 16, 16, 3, 3, 1, 1, 2, 2, 2, 2);
    check_dw_relu(2, 3, 16, 16, 3, 3, 2, 2, 2, 2, 2, 2);
    check_dw_relu(2, 3, 8, 8, 5, 5, 1, 1, 4, 4, 2, 2);
    check_dw_relu(2, 3, 8, 8, 5, 5, 2, 2, 4, 4, 2, 2);
    check_dw_relu(1, 2, 4, 4, 5, 5, 1, 1, 4, 4, 2, 2); /* taps reaching past the whole plane */
}
Test(conv, depthwise_fast_odd_sizes_wide_rows_and_other_kernels) {
    check_dw_relu(1, 2, 5, 37, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw_relu(1, 2, 9, 33, 3, 3, 2, 2, 1, 1, 1, 1);
    check_dw_relu(1, 2, 11, 19, 5, 5, 2, 1, 2, 2, 2, 1);
    check_dw_relu(1, 2, 13, 10, 7, 7, 1, 1, 3, 3, 1, 1);
    check_dw_relu(1, 2, 9, 9, 1, 7, 1, 2, 0, 3, 1, 1);
    check_dw_relu(2, 2, 6, 9, 3, 3, 1, 1, 0, 0, 1, 1); /* no padding: stride-1 data gradient via scatter */
    check_dw_relu(1, 1, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1);
}

/* The channel-blocked depthwise path (kernels/cpu/dwc8.c, C a multiple of 8, AVX2 builds)
 * on the same shapes, through the same checks: DARTS planes 32/28/14/8/7 at stride 1 and
 * 2, dilation 2, taps past the plane, odd sizes, 7x7 and 1x7 kernels (the generic
 * instance), more and fewer samples than the filter gradient's 8 chunks. TOL_REF as above:
 * FMA sums of at most 49 products per output, float sums of one plane per filter tap
 * added in double. */
static void check_dw8(int N, int C, int H, int W, int R, int S, int sh, int sw, int ph, int pw, int dh, int dwl) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = C, .R = R, .S = S, .stride_h = sh, .stride_w = sw,
                      .pad_h = ph, .pad_w = pw, .dil_h = dh, .dil_w = dwl, .groups = C};
    kconv2d_desc_finish(&d);
#if defined(__AVX2__) && defined(__FMA__)
    cr_assert(kdw8_forward_ok(&d) && kdw8_backward_filter_ok(&d), "blocked path expected for C%d %dx%d %dx%d", C, H,
              W, R, S);
    cr_assert_eq(kdw8_backward_data_ok(&d), (sh == 1 && sw == 1) || (sh == 2 && sw == 2));
#else
    cr_assert(!kdw8_forward_ok(&d));
#endif
    check_dw_relu(N, C, H, W, R, S, sh, sw, ph, pw, dh, dwl);
}

/*                                                                    N  C   H   W  R  S sh sw ph pw dh dw */
Test(conv, depthwise_blocked_c8_darts_shapes) {
    check_dw8(3, 8, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw8(3, 8, 28, 28, 5, 5, 2, 2, 2, 2, 1, 1);
    check_dw8(2, 16, 32, 32, 5, 5, 1, 1, 4, 4, 2, 2);
    check_dw8(2, 16, 32, 32, 3, 3, 2, 2, 2, 2, 2, 2);
    check_dw8(9, 16, 14, 14, 5, 5, 1, 1, 2, 2, 1, 1);
    check_dw8(9, 8, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw8(2, 8, 7, 7, 5, 5, 2, 2, 4, 4, 2, 2);
    check_dw8(2, 24, 8, 8, 5, 5, 1, 1, 4, 4, 2, 2);
    check_dw8(1, 8, 4, 4, 5, 5, 1, 1, 4, 4, 2, 2); /* taps reaching past the whole plane */
}
Test(conv, depthwise_blocked_c8_odd_sizes_and_other_kernels) {
    check_dw8(2, 8, 13, 10, 7, 7, 1, 1, 3, 3, 1, 1);
    check_dw8(2, 8, 9, 9, 1, 7, 1, 2, 0, 3, 1, 1);
    check_dw8(2, 8, 11, 19, 5, 5, 2, 1, 2, 2, 2, 1);
    check_dw8(2, 8, 5, 37, 3, 3, 1, 1, 1, 1, 1, 1);
    check_dw8(1, 8, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1);
}

/* The blocked forward and data gradient (plain, ReLU-fused, accumulated) give the per-plane
 * kernels' bits: same products, same order. */
static void check_dw8_same_bits(int N, int C, int H, int R, int sh, int dh) {
    const int pad = dh * (R - 1) / 2;
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = H, .K = C, .R = R, .S = R, .stride_h = sh, .stride_w = sh,
                      .pad_h = pad, .pad_w = pad, .dil_h = dh, .dil_w = dh, .groups = C};
    kconv2d_desc_finish(&d);
    const int64_t nx = (int64_t)N * C * H * H, ny = (int64_t)N * C * d.P * d.Q, nw = (int64_t)C * R * R;
    float *x = rnd(nx, -1, 1, 41), *w = rnd(nw, -1, 1, 42), *r = rnd(ny, -1, 1, 43);
    float *y[2], *dx[2];
    for (int on = 0; on < 2; on++) {
        kdw8_set_enabled(on);
        y[on] = zerosf(ny);
        dx[on] = rnd(nx, -1, 1, 44);
        kcpu_conv2d_relu_forward(y[on], x, w, &d, NULL);
        kcpu_conv2d_relu_backward_data(dx[on], r, w, x, &d, NULL);
    }
    kdw8_set_enabled(1);
    cr_expect_eq(memcmp(y[0], y[1], sizeof(float) * (size_t)ny), 0, "forward C%d H%d R%d s%d d%d", C, H, R, sh, dh);
    cr_expect_eq(memcmp(dx[0], dx[1], sizeof(float) * (size_t)nx), 0, "data C%d H%d R%d s%d d%d", C, H, R, sh, dh);
    free(x); free(w); free(r);
    for (int i = 0; i < 2; i++) { free(y[i]); free(dx[i]); }
}
Test(conv, depthwise_blocked_c8_forward_and_data_gradient_bits_equal_per_plane_kernels) {
    check_dw8_same_bits(3, 8, 28, 3, 1, 1);
    check_dw8_same_bits(3, 8, 28, 5, 2, 1);
    check_dw8_same_bits(2, 16, 14, 5, 1, 2);
    check_dw8_same_bits(2, 16, 16, 3, 2, 2);
    check_dw8_same_bits(5, 32, 7, 5, 1, 1);
    check_dw8_same_bits(5, 8, 7, 3, 2, 1);
}

/* Same bits for any thread count: the filter gradient's chunks do not depend on it. */
Test(conv, depthwise_blocked_c8_filter_gradient_same_bits_with_1_and_2_threads) {
    kconv2d_desc d = {.N = 11, .C = 16, .H = 14, .W = 14, .K = 16, .R = 5, .S = 5, .stride_h = 1, .stride_w = 1,
                      .pad_h = 4, .pad_w = 4, .dil_h = 2, .dil_w = 2, .groups = 16};
    kconv2d_desc_finish(&d);
    const int64_t nx = (int64_t)d.N * d.C * d.H * d.W, ny = (int64_t)d.N * d.C * d.P * d.Q, nw = (int64_t)d.C * 25;
    float *x = rnd(nx, -1, 1, 31), *r = rnd(ny, -1, 1, 32), *a = zerosf(nw), *b = zerosf(nw);
    const int th = omp_get_max_threads();
    omp_set_num_threads(1);
    kcpu_conv2d_relu_backward_filter(a, r, x, &d, NULL);
    omp_set_num_threads(2);
    kcpu_conv2d_relu_backward_filter(b, r, x, &d, NULL);
    omp_set_num_threads(th);
    cr_expect_eq(memcmp(a, b, sizeof(float) * (size_t)nw), 0);
    free(x); free(r); free(a); free(b);
}

Test(conv, scratch_pointwise_is_a_double_slot_per_thread_depthwise_needs_none) {
    kconv2d_desc a = {.N = 2, .C = 8, .H = 5, .W = 5, .K = 4, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                      .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&a);
    cr_expect_geq(kcpu_conv2d_scratch_floats(&a), (size_t)kcpu_num_threads() * 4 * 8 * 2);
    kconv2d_desc b = {.N = 2, .C = 8, .H = 5, .W = 5, .K = 8, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1,
                      .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 8};
    kconv2d_desc_finish(&b);
    cr_expect_eq(kcpu_conv2d_scratch_floats(&b), 0);
}

/* The 1x1 kernels (kernels/cpu/pointwise.c): every remainder of the 6-row register block
 * (K and C from 1 to 13), pixel counts that end on a double vector, a single vector and
 * a scalar tail at both vector widths (1, 7, 49, 196, 257, 784, 1024), more samples than
 * threads and fewer; plain and with a ReLU fused into the input, against the double
 * reference (TOL_REF, relative above 1: float sums of at most 1024 / 8 products per
 * lane, added in double across samples). Scratch is NaN-filled: its
 * contents must not matter. */
static void check_pw(int N, int C, int H, int W, int K) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = K, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                      .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&d);
    cr_assert(kcpu_conv2d_relu_supported(&d));
    const int64_t nx = (int64_t)N * C * H * W, nw = (int64_t)K * C, ny = (int64_t)N * K * H * W;
    float *x = rnd(nx, -1, 1, 31), *w = rnd(nw, -1, 1, 32), *r = rnd(ny, -1, 1, 33), *xr = zerosf(nx);
    for (int64_t i = 0; i < nx; i++) xr[i] = x[i] > 0.0f ? x[i] : 0.0f;
    size_t ns = kcpu_conv2d_scratch_floats(&d);
    float *scr = malloc(sizeof(float) * ns);
    for (size_t i = 0; i < ns; i++) scr[i] = NAN;
    for (int relu = 0; relu < 2; relu++) {
        double *yr = zerosd(ny), *dxr = zerosd(nx), *dwr = zerosd(nw);
        ref_conv(yr, dxr, dwr, relu ? xr : x, w, r, &d);
        if (relu)
            for (int64_t i = 0; i < nx; i++)
                if (!(x[i] > 0.0f)) dxr[i] = 0.0;
        float *yrf = tof(yr, ny, 1), *dxr1 = tof(dxr, nx, 1), *dxr2 = tof(dxr, nx, 2), *dwr1 = tof(dwr, nw, 1),
              *dwr2 = tof(dwr, nw, 2);
        float *y = rnd(ny, 100, 200, 5), *dx = zerosf(nx), *dwk = zerosf(nw);
        if (relu) kcpu_conv2d_relu_forward(y, x, w, &d, scr);
        else kcpu_conv2d_forward(y, x, w, &d, scr);
        EXPECT_CLOSE(y, yrf, ny, TOL_REF, relu ? "relu+1x1 forward" : "1x1 forward");
        for (int rep = 0; rep < 2; rep++) {
            if (relu) {
                kcpu_conv2d_relu_backward_data(dx, r, w, x, &d, scr);
                kcpu_conv2d_relu_backward_filter(dwk, r, x, &d, scr);
            } else {
                kcpu_conv2d_backward_data(dx, r, w, &d, scr);
                kcpu_conv2d_backward_filter(dwk, r, x, &d, scr);
            }
            EXPECT_CLOSE(dx, rep ? dxr2 : dxr1, nx, TOL_REF, rep ? "1x1 backward_data accumulates" : "1x1 backward_data");
            /* the filter gradient sums N*HW products (1024 per sample at 32x32) in float
             * lanes: about u * sum|dy x| = 6e-8 * 256 = 1.5e-5 per sum without FMA (the
             * portable build), twice that after accumulating twice; hence 1e-4 */
            EXPECT_CLOSE(dwk, rep ? dwr2 : dwr1, nw, 1e-4,
                         rep ? "1x1 backward_filter accumulates" : "1x1 backward_filter");
        }
        /* overwritten, not accumulated: dx NaN before */
        cr_assert(kcpu_conv2d_sets_dx(&d));
        for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
        kcpu_conv2d_backward_data_set(dx, r, w, relu ? x : NULL, &d, scr);
        EXPECT_CLOSE(dx, dxr1, nx, TOL_REF, relu ? "relu+1x1 backward_data_set" : "1x1 backward_data_set");
        kcpu_conv2d_relu_backward_data(NULL, r, w, x, &d, scr);
        kcpu_conv2d_relu_backward_filter(NULL, r, x, &d, scr);
        free(yr); free(dxr); free(dwr); free(yrf); free(dxr1); free(dxr2); free(dwr1); free(dwr2);
        free(y); free(dx); free(dwk);
    }
    free(x); free(w); free(r); free(xr); free(scr);
}

/* Both instances: the build's target and, where the CPU has it, AVX-512. */
Test(conv, pointwise_kernels_all_row_remainders_and_pixel_tails) {
    for (int isa = 0; isa < 2; isa++) {
        if (kpw_set_avx512(isa) != 0) {
            cr_log_info("pointwise: no AVX-512 instance on this machine or build");
            continue;
        }
        for (int K = 1; K <= 13; K++) check_pw(2, 14 - K, 7, 7, K); /* K and C through every remainder */
        check_pw(3, 5, 1, 1, 7);                                     /* one pixel: scalar tail only */
        check_pw(1, 3, 1, 7, 2);                                     /* narrower than a vector */
        check_pw(5, 16, 14, 14, 16);                                 /* 196: vectors + 4 */
        check_pw(2, 8, 28, 28, 12);                                  /* 784: 4 column blocks, last partial */
        check_pw(2, 6, 1, 257, 5);                                   /* 257: a 1-pixel last block */
        check_pw(1, 64, 32, 32, 64);                                 /* CIFAR plane, one sample */
        check_pw(9, 32, 7, 7, 48);                                   /* more samples than threads */
        check_pw(40, 12, 5, 5, 10);                                  /* 25 pixels: 40 samples per group */
    }
    kpw_set_avx512(1);
}

/* ------------------------------------------------------------------------------------ */
/* batch norm                                                                            */

static void ref_bn_stats(double *mean, double *var, const float *x, const kbn_desc *d) {
    const int64_t m = (int64_t)d->N * d->HW;
    for (int c = 0; c < d->C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < d->N; n++)
            for (int i = 0; i < d->HW; i++) s += x[((int64_t)n * d->C + c) * d->HW + i];
        mean[c] = s / m;
        for (int n = 0; n < d->N; n++)
            for (int i = 0; i < d->HW; i++) {
                double t = x[((int64_t)n * d->C + c) * d->HW + i] - mean[c];
                ss += t * t;
            }
        var[c] = ss / m;
    }
}

/* Unfused textbook backward (different from the kernel's fused form). */
static void ref_bn_backward(double *dx, double *dg, double *db, const float *dy, const float *x,
                            const float *gamma, const kbn_desc *d) {
    double mean[16], var[16];
    ref_bn_stats(mean, var, x, d);
    const double m = (double)d->N * d->HW;
    for (int c = 0; c < d->C; c++) {
        double is = 1.0 / sqrt(var[c] + d->eps), g = gamma ? gamma[c] : 1.0;
        double dvar = 0, dmu = 0, sxm = 0;
        dg[c] = db[c] = 0;
        for (int n = 0; n < d->N; n++)
            for (int i = 0; i < d->HW; i++) {
                int64_t j = ((int64_t)n * d->C + c) * d->HW + i;
                double xm = x[j] - mean[c], dxh = dy[j] * g;
                dvar += dxh * xm * -0.5 * pow(var[c] + d->eps, -1.5);
                dmu += -dxh * is;
                sxm += -2.0 * xm;
                dg[c] += dy[j] * xm * is;
                db[c] += dy[j];
            }
        dmu += dvar * sxm / m;
        for (int n = 0; n < d->N; n++)
            for (int i = 0; i < d->HW; i++) {
                int64_t j = ((int64_t)n * d->C + c) * d->HW + i;
                dx[j] = dy[j] * g * is + dvar * 2.0 * (x[j] - mean[c]) / m + dmu / m;
            }
    }
}

static double bn_loss(const float *x, const float *g, const float *b, const float *r, const kbn_desc *d,
                      float *y) {
    kcpu_bn_forward_train(y, NULL, NULL, NULL, NULL, x, g, b, d);
    return dotd(y, r, (int64_t)d->N * d->C * d->HW);
}

static void check_bn_train(int affine) {
    kbn_desc d = {.N = 3, .C = 4, .HW = 7, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t n = (int64_t)d.N * d.C * d.HW;
    float *x = rnd(n, -2, 3, 21), *r = rnd(n, -1, 1, 22);
    float *g = affine ? rnd(d.C, 0.5f, 1.5f, 23) : NULL, *b = affine ? rnd(d.C, -1, 1, 24) : NULL;
    float *rm = rnd(d.C, -1, 1, 25), *rv = rnd(d.C, 0.5f, 2, 26);
    float rm0[4], rv0[4];
    memcpy(rm0, rm, sizeof rm0);
    memcpy(rv0, rv, sizeof rv0);
    float *y = rnd(n, 50, 60, 1), sm[4], si[4];
    kcpu_bn_forward_train(y, sm, si, rm, rv, x, g, b, &d);
    double mean[4], var[4];
    ref_bn_stats(mean, var, x, &d);
    const double m = (double)d.N * d.HW;
    for (int c = 0; c < d.C; c++) {
        double is = 1.0 / sqrt(var[c] + d.eps);
        cr_expect(fabs(sm[c] - mean[c]) <= 1e-6 * (1 + fabs(mean[c])), "save_mean[%d]", c);
        cr_expect(fabs(si[c] - is) <= 1e-6 * is, "save_invstd[%d]", c);
        /* running stats: unbiased variance, momentum 0.1 */
        double erm = 0.9 * rm0[c] + 0.1 * mean[c], erv = 0.9 * rv0[c] + 0.1 * var[c] * m / (m - 1);
        cr_expect(fabs(rm[c] - erm) <= 1e-6 * (1 + fabs(erm)), "running_mean[%d] %g vs %g", c, rm[c], erm);
        cr_expect(fabs(rv[c] - erv) <= 1e-6 * (1 + fabs(erv)), "running_var[%d] %g vs %g", c, rv[c], erv);
        for (int nn = 0; nn < d.N; nn++)
            for (int i = 0; i < d.HW; i++) {
                int64_t j = ((int64_t)nn * d.C + c) * d.HW + i;
                double e = (x[j] - mean[c]) * is * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
                cr_expect(fabs(y[j] - e) <= TOL_REF * (1 + fabs(e)), "y[%lld] %g vs %g", (long long)j, y[j], e);
            }
    }
    /* backward vs unfused reference; twice to check accumulation; dx, dgamma, dbeta */
    double *dxr = zerosd(n), dgr[4], dbr[4];
    ref_bn_backward(dxr, dgr, dbr, r, x, g, &d);
    float *dx = zerosf(n), dg[4] = {0}, db[4] = {0};
    float *dxr1 = tof(dxr, n, 1), *dxr2 = tof(dxr, n, 2), *dgr1 = tof(dgr, 4, 1), *dbr1 = tof(dbr, 4, 1);
    float *dgr2 = tof(dgr, 4, 2), *dbr2 = tof(dbr, 4, 2);
    kcpu_bn_backward(dx, affine ? dg : NULL, affine ? db : NULL, r, x, g, sm, si, &d);
    /* dx sums of ~20 terms of O(1): 1e-4 relative with floor 1 */
    EXPECT_CLOSE(dx, dxr1, n, 1e-4, "bn dx");
    if (affine) {
        EXPECT_CLOSE(dg, dgr1, 4, 1e-4, "bn dgamma");
        EXPECT_CLOSE(db, dbr1, 4, 1e-4, "bn dbeta");
    }
    kcpu_bn_backward(dx, affine ? dg : NULL, affine ? db : NULL, r, x, g, sm, si, &d);
    EXPECT_CLOSE(dx, dxr2, n, 1e-4, "bn dx accumulates");
    if (affine) {
        EXPECT_CLOSE(dg, dgr2, 4, 1e-4, "bn dgamma accumulates");
        EXPECT_CLOSE(db, dbr2, 4, 1e-4, "bn dbeta accumulates");
    }
    /* _set overwrites dx (NaN before) and still accumulates dgamma, dbeta */
    for (int64_t i = 0; i < n; i++) dx[i] = NAN;
    kcpu_bn_backward_set(dx, affine ? dg : NULL, affine ? db : NULL, r, x, g, sm, si, &d);
    EXPECT_CLOSE(dx, dxr1, n, 1e-4, "bn dx set");
    if (affine) {
        float *dgr3 = tof(dgr, 4, 3);
        EXPECT_CLOSE(dg, dgr3, 4, 1e-4, "bn dgamma accumulates under _set");
        free(dgr3);
    }
    /* NULL dx: only parameter grads */
    if (affine) {
        float dg2[4] = {0}, db2[4] = {0};
        kcpu_bn_backward(NULL, dg2, db2, r, x, g, sm, si, &d);
        EXPECT_CLOSE(dg2, dgr1, 4, 1e-4, "bn dgamma with dx NULL");
        EXPECT_CLOSE(db2, dbr1, 4, 1e-4, "bn dbeta with dx NULL");
    }
    /* finite differences (smooth, eps 1e-2, floor 0.1) on every x */
    const double eps = 1e-2;
    for (int64_t i = 0; i < n; i++) {
        float o = x[i];
        x[i] = o + (float)eps;
        double lp = bn_loss(x, g, b, r, &d, y);
        x[i] = o - (float)eps;
        double lm = bn_loss(x, g, b, r, &d, y);
        x[i] = o;
        double fd = (lp - lm) / (2 * eps);
        cr_expect(fd_ok(fd, dxr[i], 0.1), "bn dx fd at %lld: %g vs %g", (long long)i, fd, dxr[i]);
    }
    if (affine)
        for (int c = 0; c < d.C; c++) {
            for (int which = 0; which < 2; which++) {
                float *p = which ? b : g;
                float o = p[c];
                p[c] = o + (float)eps;
                double lp = bn_loss(x, g, b, r, &d, y);
                p[c] = o - (float)eps;
                double lm = bn_loss(x, g, b, r, &d, y);
                p[c] = o;
                double fd = (lp - lm) / (2 * eps), an = which ? dbr[c] : dgr[c];
                cr_expect(fd_ok(fd, an, 0.1), "bn d%s fd[%d]: %g vs %g", which ? "beta" : "gamma", c, fd, an);
            }
        }
    free(x); free(r); free(g); free(b); free(rm); free(rv); free(y); free(dxr); free(dx);
    free(dxr1); free(dxr2); free(dgr1); free(dbr1); free(dgr2); free(dbr2);
}

Test(bn, train_affine_forward_stats_running_update_and_backward_match_reference_and_fd) { check_bn_train(1); }
Test(bn, train_non_affine_forward_stats_running_update_and_backward_match_reference_and_fd) { check_bn_train(0); }

/* The two schedules of kernels/cpu/bn.c give the same bits: planes (N*C) up to 8192 are
 * split across threads by sample, more by channel. A channel's results depend only on its
 * own planes, so channels 0..99 of a 3 x 2800-channel batch (by channel) must equal a
 * 3 x 100-channel batch of the same values (by plane), with 1 and with 2 threads. */
Test(bn, plane_and_channel_schedules_and_thread_counts_give_the_same_bits) {
    const int N = 3, CB = 2800, CS = 100, HW = 9;
    kbn_desc db = {.N = N, .C = CB, .HW = HW, .eps = 1e-5f, .momentum = 0.1f}, ds = db;
    ds.C = CS;
    const int64_t nb = (int64_t)N * CB * HW, ns = (int64_t)N * CS * HW;
    float *xb = rnd(nb, -2, 3, 51), *gb = rnd(nb, -1, 1, 52), *xs = zerosf(ns), *gs = zerosf(ns);
    for (int n = 0; n < N; n++) {
        memcpy(xs + (int64_t)n * CS * HW, xb + (int64_t)n * CB * HW, sizeof(float) * (size_t)CS * HW);
        memcpy(gs + (int64_t)n * CS * HW, gb + (int64_t)n * CB * HW, sizeof(float) * (size_t)CS * HW);
    }
    float *yb = zerosf(nb), *dxb = zerosf(nb), *mb = zerosf(CB), *ib = zerosf(CB);
    kcpu_bn_forward_train(yb, mb, ib, NULL, NULL, xb, NULL, NULL, &db);
    kcpu_bn_backward_set(dxb, NULL, NULL, gb, xb, NULL, mb, ib, &db);
    const int th = omp_get_max_threads();
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        float *ys = zerosf(ns), *dxs = zerosf(ns), ms[100], is[100];
        kcpu_bn_forward_train(ys, ms, is, NULL, NULL, xs, NULL, NULL, &ds);
        kcpu_bn_backward_set(dxs, NULL, NULL, gs, xs, NULL, ms, is, &ds);
        cr_expect_eq(memcmp(ms, mb, sizeof ms), 0, "mean, %d threads", t);
        cr_expect_eq(memcmp(is, ib, sizeof is), 0, "invstd, %d threads", t);
        for (int n = 0; n < N; n++) {
            cr_expect_eq(memcmp(ys + (int64_t)n * CS * HW, yb + (int64_t)n * CB * HW, sizeof(float) * (size_t)CS * HW),
                         0, "y, sample %d, %d threads", n, t);
            cr_expect_eq(memcmp(dxs + (int64_t)n * CS * HW, dxb + (int64_t)n * CB * HW,
                                sizeof(float) * (size_t)CS * HW),
                         0, "dx, sample %d, %d threads", n, t);
        }
        free(ys); free(dxs);
    }
    omp_set_num_threads(th);
    free(xb); free(gb); free(xs); free(gs); free(yb); free(dxb); free(mb); free(ib);
}

/* Shared batch statistics (kcpu_bn_train_shared; runtime/plan.c, DARTSC_SHARE_BN_STATS): a
 * forward that writes its statistics gives the bits of the plain one, and a forward that
 * takes them gives the same output (or coefficients), saved and running statistics without
 * reading x for them, with and without gamma and beta, in both schedules (4 x 3 planes;
 * 3 x 2800 planes). */
static void check_bn_shared(int N, int C, int HW, int affine) {
    kbn_desc d = {.N = N, .C = C, .HW = HW, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t n = (int64_t)N * C * HW;
    float *x = rnd(n, -2, 3, 91), *g = affine ? rnd(C, 0.5f, 1.5f, 92) : NULL, *b = affine ? rnd(C, -1, 1, 93) : NULL;
    double *st = malloc(sizeof(double) * 2 * (size_t)C);
    for (int coefs = 0; coefs < 2; coefs++) {
        float *out[3], *m[3], *is[3], *rm[3], *rv[3];
        const int64_t no = coefs ? 3 * (int64_t)C : n;
        for (int k = 0; k < 3; k++) {
            out[k] = zerosf(no), m[k] = zerosf(C), is[k] = zerosf(C);
            rm[k] = rnd(C, -1, 1, 94), rv[k] = rnd(C, 0.5f, 2, 95);
        }
        if (coefs) kcpu_bn_coefs_train(out[0], m[0], is[0], rm[0], rv[0], x, g, b, &d);
        else kcpu_bn_forward_train(out[0], m[0], is[0], rm[0], rv[0], x, g, b, &d);
        kcpu_bn_train_shared(coefs ? NULL : out[1], coefs ? out[1] : NULL, m[1], is[1], rm[1], rv[1], x, g, b, st, NULL,
                             &d);
        /* the taker: x poisoned, so that a read of it for the statistics shows */
        float *xp = malloc(sizeof(float) * (size_t)n);
        memcpy(xp, x, sizeof(float) * (size_t)n);
        xp[0] = NAN;
        kcpu_bn_train_shared(coefs ? NULL : out[2], coefs ? out[2] : NULL, m[2], is[2], rm[2], rv[2], coefs ? xp : x, g,
                             b, NULL, st, &d);
        for (int k = 1; k < 3; k++) {
            cr_expect_eq(memcmp(out[k], out[0], sizeof(float) * (size_t)no), 0, "%s, %s, %d planes",
                         coefs ? "coefficients" : "y", k == 1 ? "writer" : "taker", N * C);
            cr_expect_eq(memcmp(m[k], m[0], sizeof(float) * (size_t)C), 0, "saved mean");
            cr_expect_eq(memcmp(is[k], is[0], sizeof(float) * (size_t)C), 0, "saved invstd");
            cr_expect_eq(memcmp(rm[k], rm[0], sizeof(float) * (size_t)C), 0, "running mean");
            cr_expect_eq(memcmp(rv[k], rv[0], sizeof(float) * (size_t)C), 0, "running var");
        }
        free(xp);
        for (int k = 0; k < 3; k++) {
            free(out[k]); free(m[k]); free(is[k]); free(rm[k]); free(rv[k]);
        }
    }
    free(x); free(g); free(b); free(st);
}
Test(bn, shared_statistics_give_the_bits_of_computing_them) {
    for (int affine = 0; affine < 2; affine++) {
        check_bn_shared(4, 3, 50, affine);
        check_bn_shared(3, 2800, 9, affine);
    }
}

/* The scaled backward (dy read as s * dy) gives the bits of the plain backward on the
 * stored products, accumulated and written, with and without gamma, in both schedules
 * (4 x 3 planes; 3 x 2800 planes). */
static void check_bn_scaled(int N, int C, int HW, int affine) {
    kbn_desc d = {.N = N, .C = C, .HW = HW, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t n = (int64_t)N * C * HW;
    const float s = 0.3719f;
    float *x = rnd(n, -2, 3, 81), *dy = rnd(n, -1, 1, 82), *sdy = zerosf(n), *y = zerosf(n);
    float *g = affine ? rnd(C, 0.5f, 1.5f, 83) : NULL, *m = zerosf(C), *is = zerosf(C);
    for (int64_t i = 0; i < n; i++) sdy[i] = s * dy[i];
    kcpu_bn_forward_train(y, m, is, NULL, NULL, x, g, NULL, &d);
    for (int acc = 0; acc < 2; acc++) {
        float *a = rnd(n, -1, 1, 84), *b = rnd(n, -1, 1, 84), *ga = zerosf(C), *gb = zerosf(C), *ba = zerosf(C),
              *bb = zerosf(C);
        (acc ? kcpu_bn_backward : kcpu_bn_backward_set)(a, affine ? ga : NULL, affine ? ba : NULL, sdy, x, g, m, is, &d);
        kcpu_bn_backward_scaled(b, affine ? gb : NULL, affine ? bb : NULL, dy, s, x, g, m, is, &d, acc);
        cr_expect_eq(memcmp(a, b, sizeof(float) * (size_t)n), 0, "dx, accumulate %d, %d planes", acc, N * C);
        cr_expect_eq(memcmp(ga, gb, sizeof(float) * (size_t)C), 0, "dgamma");
        cr_expect_eq(memcmp(ba, bb, sizeof(float) * (size_t)C), 0, "dbeta");
        free(a); free(b); free(ga); free(gb); free(ba); free(bb);
    }
    free(x); free(dy); free(sdy); free(y); free(g); free(m); free(is);
}
Test(bn, scaled_output_gradient_gives_the_bits_of_the_stored_product) {
    check_bn_scaled(4, 3, 37, 1);
    check_bn_scaled(4, 3, 37, 0);
    check_bn_scaled(3, 2800, 9, 1);
}

Test(bn, inference_affine_and_non_affine_use_running_stats) {
    kbn_desc d = {.N = 2, .C = 3, .HW = 5, .eps = 1e-3f, .momentum = 0.1f};
    const int64_t n = 30;
    float *x = rnd(n, -2, 2, 31), g[3] = {0.5f, 1.5f, -1}, b[3] = {0.1f, -0.2f, 0.3f};
    float rm[3] = {0.2f, -0.4f, 1}, rv[3] = {0.5f, 2, 0.01f}, y[30];
    for (int affine = 0; affine < 2; affine++) {
        kcpu_bn_forward_infer(y, x, affine ? g : NULL, affine ? b : NULL, rm, rv, &d);
        for (int64_t j = 0; j < n; j++) {
            int c = (int)(j / d.HW % d.C);
            double e = (x[j] - rm[c]) / sqrt((double)rv[c] + d.eps) * (affine ? g[c] : 1) + (affine ? b[c] : 0);
            cr_expect(fabs(y[j] - e) <= 1e-5 * (1 + fabs(e)), "infer y[%lld] %g vs %g", (long long)j, y[j], e);
        }
    }
    free(x);
}

/* ------------------------------------------------------------------------------------ */
/* pooling                                                                               */

static kpool_desc pool_desc(int N, int C, int H, int W, int k, int s, int p) {
    kpool_desc d = {.N = N, .C = C, .H = H, .W = W, .k = k, .stride = s, .pad = p};
    d.P = (H + 2 * p - k) / s + 1;
    d.Q = (W + 2 * p - k) / s + 1;
    return d;
}

static void check_maxpool_shape(int N, int C, int H, int W, int s) {
    kpool_desc d = pool_desc(N, C, H, W, 3, s, 1);
    const int64_t nx = (int64_t)d.N * d.C * d.H * d.W, ny = (int64_t)d.N * d.C * d.P * d.Q;
    /* distinct values 0.01 apart (a permutation), all negative so padding (as 0) would win */
    float *x = zerosf(nx);
    for (int64_t i = 0; i < nx; i++) x[i] = -1.0f - 0.01f * (float)((i * 37) % nx);
    float *r = rnd(ny, -1, 1, 41), *y = zerosf(ny), *dx = zerosf(nx);
    double *dxr = zerosd(nx);
    kcpu_maxpool_forward(y, x, &d);
    for (int64_t pl = 0; pl < (int64_t)d.N * d.C; pl++)
        for (int p = 0; p < d.P; p++)
            for (int q = 0; q < d.Q; q++) {
                float best = -INFINITY;
                int64_t bi = -1;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        int ih = p * s - 1 + i, iw = q * s - 1 + j;
                        if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                        int64_t xi = (pl * d.H + ih) * d.W + iw;
                        if (x[xi] > best) { best = x[xi]; bi = xi; }
                    }
                int64_t yi = (pl * d.P + p) * d.Q + q;
                cr_expect(y[yi] == best && best < 0, "maxpool y[%lld] %g vs %g", (long long)yi, y[yi], best);
                dxr[bi] += r[yi];
            }
    kcpu_maxpool_backward(dx, r, x, &d);
    float *dxr1 = tof(dxr, nx, 1), *dxr2 = tof(dxr, nx, 2);
    EXPECT_CLOSE(dx, dxr1, nx, 1e-6, "maxpool dx");
    kcpu_maxpool_backward(dx, r, x, &d);
    EXPECT_CLOSE(dx, dxr2, nx, 1e-6, "maxpool dx accumulates");
    kcpu_maxpool_backward(NULL, r, x, &d);
    /* finite differences: eps 1e-3 < half the 0.01 spacing, so the argmax never moves */
    const double eps = 1e-3;
    for (int64_t i = 0; i < nx; i++) {
        float o = x[i];
        x[i] = o + (float)eps;
        kcpu_maxpool_forward(y, x, &d);
        double lp = dotd(y, r, ny);
        x[i] = o - (float)eps;
        kcpu_maxpool_forward(y, x, &d);
        double lm = dotd(y, r, ny);
        x[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * eps), dxr[i], 0.1), "maxpool fd at %lld", (long long)i);
    }
    free(x); free(r); free(y); free(dx); free(dxr); free(dxr1); free(dxr2);
}

static void check_maxpool(int s) { check_maxpool_shape(2, 3, 7, 6, s); }

Test(pool, max_3x3_stride1_pad1_matches_reference_padding_never_chosen_and_fd) { check_maxpool(1); }
Test(pool, max_3x3_stride2_pad1_matches_reference_padding_never_chosen_and_fd) { check_maxpool(2); }

Test(pool, max_ties_route_gradient_to_first_maximum_in_window_order) {
    /* constant input: every window ties; first in-bounds cell (top-left) must win. */
    kpool_desc d = pool_desc(1, 1, 5, 4, 3, 1, 1);
    float x[20], dx[20] = {0}, dy[20], want[20] = {0};
    for (int i = 0; i < 20; i++) x[i] = 0.5f;
    for (int i = 0; i < d.P * d.Q; i++) dy[i] = 1.0f + (float)i;
    kcpu_maxpool_backward(dx, dy, x, &d);
    for (int p = 0; p < d.P; p++)
        for (int q = 0; q < d.Q; q++) {
            int ih = p - 1 < 0 ? 0 : p - 1, iw = q - 1 < 0 ? 0 : q - 1;
            want[ih * 4 + iw] += dy[p * d.Q + q];
        }
    for (int i = 0; i < 20; i++) cr_expect(dx[i] == want[i], "tie dx[%d] %g vs %g", i, dx[i], want[i]);
}

static void check_avgpool_nc(int N, int C, int s, int H, int W) {
    kpool_desc d = pool_desc(N, C, H, W, 3, s, 1);
    const int64_t nx = (int64_t)d.N * d.C * d.H * d.W, ny = (int64_t)d.N * d.C * d.P * d.Q;
    float *x = rnd(nx, -1, 1, 51), *r = rnd(ny, -1, 1, 52), *y = zerosf(ny), *dx = zerosf(nx);
    double *yr = zerosd(ny), *dxr = zerosd(nx);
    for (int64_t pl = 0; pl < (int64_t)d.N * d.C; pl++)
        for (int p = 0; p < d.P; p++)
            for (int q = 0; q < d.Q; q++) {
                double sum = 0;
                int cnt = 0;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        int ih = p * s - 1 + i, iw = q * s - 1 + j;
                        if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                        sum += x[(pl * d.H + ih) * d.W + iw];
                        cnt++;
                    }
                int64_t yi = (pl * d.P + p) * d.Q + q;
                yr[yi] = sum / cnt;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        int ih = p * s - 1 + i, iw = q * s - 1 + j;
                        if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                        dxr[(pl * d.H + ih) * d.W + iw] += r[yi] / cnt;
                    }
            }
    kcpu_avgpool_forward(y, x, &d);
    float *yrf = tof(yr, ny, 1), *dxr1 = tof(dxr, nx, 1), *dxr2 = tof(dxr, nx, 2);
    EXPECT_CLOSE(y, yrf, ny, TOL_REF, "avgpool y");
    /* corner: the window holds 4 in-bounds cells, padding excluded from the count */
    double corner = (x[0] + x[1] + x[W] + x[W + 1]) / 4.0;
    cr_expect(fabs(y[0] - corner) <= 1e-6, "avgpool corner %g vs %g", y[0], corner);
    kcpu_avgpool_backward(dx, r, &d);
    EXPECT_CLOSE(dx, dxr1, nx, TOL_REF, "avgpool dx");
    kcpu_avgpool_backward(dx, r, &d);
    EXPECT_CLOSE(dx, dxr2, nx, TOL_REF, "avgpool dx accumulates");
    kcpu_avgpool_backward(NULL, r, &d);
    const double eps = 1e-2; /* linear */
    for (int64_t i = 0; i < nx; i += 3) {
        float o = x[i];
        x[i] = o + (float)eps;
        kcpu_avgpool_forward(y, x, &d);
        double lp = dotd(y, r, ny);
        x[i] = o - (float)eps;
        kcpu_avgpool_forward(y, x, &d);
        double lm = dotd(y, r, ny);
        x[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * eps), dxr[i], 0.1), "avgpool fd at %lld", (long long)i);
    }
    free(x); free(r); free(y); free(dx); free(yr); free(dxr); free(yrf); free(dxr1); free(dxr2);
}

static void check_avgpool(int s, int H, int W) { check_avgpool_nc(2, 3, s, H, W); }

Test(pool, avg_3x3_stride1_pad1_excludes_padding_matches_reference_and_fd) { check_avgpool(1, 7, 6); }

/* The plane sizes of the DARTS spaces (CIFAR 32/16/8, Fashion-MNIST 28/14/7) and a row
 * wider than two vectors with a partial tail, at both strides: the vectorised paths
 * (padded phase buffers, masked first-maximum routing) against the scalar reference. */
Test(pool, vector_paths_match_reference_at_darts_plane_sizes_both_strides) {
    const int sizes[][2] = {{32, 32}, {16, 16}, {8, 8}, {28, 28}, {14, 14}, {7, 7}, {5, 37}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int s = 1; s <= 2; s++) {
            check_maxpool_shape(1, 2, sizes[i][0], sizes[i][1], s);
            check_avgpool_nc(1, 2, s, sizes[i][0], sizes[i][1]);
        }
}

/* The channel-blocked pooling kernels (pool.c, C a multiple of 8, AVX2 builds): against
 * the scalar reference at the DARTS plane sizes, both strides; then bit for bit against
 * the per-plane vector path (same operations in the same order), dx accumulated onto
 * random values; a block with a NaN in one plane goes to the scalar path. */
static void check_pool8_same_bits(int N, int C, int H, int W, int s) {
    kpool_desc d = pool_desc(N, C, H, W, 3, s, 1);
    const int64_t nx = (int64_t)N * C * H * W, ny = (int64_t)N * C * d.P * d.Q;
    float *x = rnd(nx, -1, 1, 61), *dy = rnd(ny, -1, 1, 62);
    x[nx / 2] = x[nx / 2 + 1]; /* a tie */
    float *out[2][4];
    for (int on = 0; on < 2; on++) {
        kdw8_set_enabled(on);
        for (int k = 0; k < 4; k++) out[on][k] = k % 2 ? rnd(nx, -1, 1, 63) : zerosf(ny);
        kcpu_maxpool_forward(out[on][0], x, &d);
        kcpu_maxpool_backward(out[on][1], dy, x, &d);
        kcpu_avgpool_forward(out[on][2], x, &d);
        kcpu_avgpool_backward(out[on][3], dy, &d);
    }
    kdw8_set_enabled(1);
    const char *what[4] = {"max forward", "max backward", "avg forward", "avg backward"};
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(memcmp(out[0][k], out[1][k], sizeof(float) * (size_t)(k % 2 ? nx : ny)), 0, "%s C%d %dx%d s%d",
                     what[k], C, H, W, s);
        free(out[0][k]);
        free(out[1][k]);
    }
    free(x); free(dy);
}

Test(pool, blocked_c8_paths_match_reference_and_per_plane_bits) {
    const int sizes[][2] = {{32, 32}, {16, 16}, {8, 8}, {28, 28}, {14, 14}, {7, 7}, {5, 37}, {13, 10}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int s = 1; s <= 2; s++) {
            if (sizes[i][0] <= 16) {
                check_maxpool_shape(2, 8, sizes[i][0], sizes[i][1], s);
                check_avgpool_nc(2, 16, s, sizes[i][0], sizes[i][1]);
            }
            check_pool8_same_bits(3, 16, sizes[i][0], sizes[i][1], s);
        }
}

Test(pool, blocked_c8_block_with_a_nan_takes_the_scalar_path) {
    kpool_desc d = pool_desc(2, 8, 9, 9, 3, 1, 1);
    const int64_t n = 2 * 8 * 81;
    float *x = zerosf(n), *y = zerosf(n), *dx = zerosf(n), *dy = zerosf(n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(i % 81);
        dy[i] = 1.0f;
    }
    x[3 * 81 + 40] = NAN; /* sample 0, plane 3, centre */
    kcpu_maxpool_forward(y, x, &d);
    kcpu_maxpool_backward(dx, dy, x, &d);
    for (int64_t pl = 0; pl < 16; pl++)
        for (int p = 0; p < 9; p++)
            for (int q = 0; q < 9; q++) {
                const int near = pl == 3 && p >= 3 && p <= 5 && q >= 3 && q <= 5;
                const float want = (float)((p + 1 < 9 ? p + 1 : 8) * 9 + (q + 1 < 9 ? q + 1 : 8));
                const float got = y[pl * 81 + p * 9 + q];
                if (near) cr_expect(isnan(got), "NaN window (%d,%d) gives %g", p, q, got);
                else cr_expect(got == want, "plane %lld max (%d,%d) = %g, want %g", (long long)pl, p, q, got, want);
            }
    cr_expect(dx[3 * 81 + 40] == 9.0f, "the NaN takes its 9 windows' gradient: %g", dx[3 * 81 + 40]);
    cr_expect(dx[4 * 81 + 80] == 4.0f, "bottom-right cell of a clean plane: %g", dx[4 * 81 + 80]);
    free(x); free(y); free(dx); free(dy);
}

/* A NaN anywhere in a window makes its maximum NaN (as PyTorch) and takes the gradient;
 * a plane of -inf routes each window's gradient to its first in-bounds cell, never to
 * the padding. Both leave the vector path for the scalar one. */
Test(pool, max_nan_propagates_and_minus_inf_planes_route_to_first_in_bounds_cell) {
    kpool_desc d = pool_desc(1, 2, 9, 9, 3, 1, 1);
    float x[162], y[162], dx[162] = {0}, dy[162], want[162] = {0};
    for (int i = 0; i < 81; i++) x[i] = (float)i;       /* plane 0: increasing, one NaN */
    for (int i = 81; i < 162; i++) x[i] = -INFINITY;    /* plane 1: all -inf */
    x[40] = NAN;                                         /* centre of plane 0 */
    for (int i = 0; i < 162; i++) dy[i] = 1.0f;
    kcpu_maxpool_forward(y, x, &d);
    kcpu_maxpool_backward(dx, dy, x, &d);
    for (int p = 0; p < 9; p++)
        for (int q = 0; q < 9; q++) {
            const int near = p >= 3 && p <= 5 && q >= 3 && q <= 5; /* window holds (4, 4) */
            if (near) cr_expect(isnan(y[p * 9 + q]), "NaN window (%d,%d) gives %g", p, q, y[p * 9 + q]);
            else cr_expect(y[p * 9 + q] == (float)((p + 1 < 9 ? p + 1 : 8) * 9 + (q + 1 < 9 ? q + 1 : 8)),
                           "max (%d,%d) = %g", p, q, y[p * 9 + q]);
            cr_expect(y[81 + p * 9 + q] == -INFINITY, "-inf plane max (%d,%d)", p, q);
            want[near ? 40 : (p + 1 < 9 ? p + 1 : 8) * 9 + (q + 1 < 9 ? q + 1 : 8)] += 1.0f;
            want[81 + (p > 0 ? p - 1 : 0) * 9 + (q > 0 ? q - 1 : 0)] += 1.0f;
        }
    for (int i = 0; i < 162; i++) cr_expect(dx[i] == want[i], "dx[%d] %g vs %g", i, dx[i], want[i]);
}
Test(pool, avg_3x3_stride2_pad1_excludes_padding_matches_reference_and_fd) {
    check_avgpool(2, 7, 6);
    check_avgpool(2, 8, 5);
}

/* ------------------------------------------------------------------------------------ */
/* elementwise                                                                           */

typedef void (*act_fwd)(float *, const float *, int64_t);
typedef void (*act_bwd)(float *, const float *, const float *, int64_t);

static double relu_d(double v) { return v > 0 ? v : 0; }
static double sig_d(double v) { return 1 / (1 + exp(-v)); }

static void check_act(act_fwd f, act_bwd b, double (*ref)(double), const char *name) {
    const int64_t n = 1001;
    float *x = rnd(n, -4, 4, 61), *r = rnd(n, -1, 1, 62), *y = zerosf(n), *dx = zerosf(n);
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 0.01f) x[i] = 0.5f; /* keep relu's kink away from the FD step */
    f(y, x, n);
    for (int64_t i = 0; i < n; i++)
        cr_expect(fabs(y[i] - ref(x[i])) <= 1e-6 * (1 + fabs(ref(x[i]))), "%s y[%lld]", name, (long long)i);
    b(dx, r, y, n);
    b(dx, r, y, n); /* accumulates: dx = 2 * grad */
    b(NULL, r, y, n);
    const double eps = 1e-3;
    for (int64_t i = 0; i < n; i++) {
        double fd = (ref((double)x[i] + eps) - ref((double)x[i] - eps)) / (2 * eps) * r[i];
        cr_expect(fabs(dx[i] / 2 - fd) <= 1e-3 * (1 + fabs(fd)), "%s dx[%lld] %g vs %g", name, (long long)i,
                  dx[i] / 2, fd);
    }
    free(x); free(r); free(y); free(dx);
}

Test(elementwise, relu_forward_and_backward_match_derivative_and_accumulate) {
    check_act(kcpu_relu_forward, kcpu_relu_backward, relu_d, "relu");
}
Test(elementwise, tanh_forward_and_backward_match_derivative_and_accumulate) {
    check_act(kcpu_tanh_forward, kcpu_tanh_backward, tanh, "tanh");
}
Test(elementwise, sigmoid_forward_and_backward_match_derivative_and_accumulate) {
    check_act(kcpu_sigmoid_forward, kcpu_sigmoid_backward, sig_d, "sigmoid");
}

Test(elementwise, copy_fill_axpy_scale_mul_are_exact) {
    const int64_t n = 100;
    float *a = rnd(n, -1, 1, 71), *b = rnd(n, -1, 1, 72), *y = zerosf(n), *da = zerosf(n), *db = zerosf(n);
    kcpu_copy(y, a, n);
    cr_expect(memcmp(y, a, sizeof(float) * n) == 0);
    kcpu_fill(y, 2.5f, n);
    for (int i = 0; i < n; i++) cr_expect(y[i] == 2.5f);
    kcpu_axpy(y, 3.0f, a, n);
    for (int i = 0; i < n; i++) cr_expect(y[i] == 2.5f + 3.0f * a[i]);
    kcpu_scale(y, -2.0f, a, n);
    for (int i = 0; i < n; i++) cr_expect(y[i] == -2.0f * a[i]);
    kcpu_mul_forward(y, a, b, n);
    for (int i = 0; i < n; i++) cr_expect(y[i] == a[i] * b[i]);
    kcpu_mul_backward(da, NULL, y, a, b, n);
    kcpu_mul_backward(da, db, y, a, b, n);
    for (int i = 0; i < n; i++) {
        cr_expect(da[i] == y[i] * b[i] + y[i] * b[i], "mul da accumulates");
        cr_expect(db[i] == y[i] * a[i], "mul db, skipped when NULL");
    }
    free(a); free(b); free(y); free(da); free(db);
}

Test(elementwise, dot_and_sumsq_match_double_reference_and_are_repeatable) {
    const int64_t n = 100003;
    float *a = rnd(n, -1, 1, 81), *b = rnd(n, -1, 1, 82);
    double rd = 0, rs = 0;
    for (int64_t i = 0; i < n; i++) {
        rd += (double)a[i] * b[i];
        rs += (double)a[i] * a[i];
    }
    double d1 = kcpu_dot(a, b, n), s1 = kcpu_sumsq(a, n);
    cr_expect(fabs(d1 - rd) <= 1e-9 * fabs(rs), "dot %.17g vs %.17g", d1, rd);
    cr_expect(fabs(s1 - rs) <= 1e-12 * rs, "sumsq %.17g vs %.17g", s1, rs);
    cr_expect(kcpu_dot(a, b, n) == d1 && kcpu_sumsq(a, n) == s1, "bit-identical on repeat");
    cr_expect(kcpu_dot(a, b, 0) == 0.0);
    free(a); free(b);
}

/* The vectorised weighted sum keeps the scalar order (0 + w0 x0 + w1 x1 + ..., multiply
 * then add) bit for bit: 1 to 9 inputs, lengths with and without a vector tail, both
 * above and below the threading threshold. */
Test(elementwise, wsum_forward_bits_equal_the_scalar_order) {
    const int64_t lens[] = {5, 203, 40001};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int n = 1; n <= 9; n++) {
            const int64_t len = lens[li];
            float *xs[9], w[9], *y = zerosf(len), *e = zerosf(len);
            for (int k = 0; k < n; k++) {
                xs[k] = rnd(len, -3, 3, 70 + k);
                w[k] = 0.1f + 0.37f * (float)k;
            }
            kcpu_wsum_forward(y, (const float *const *)xs, w, n, len);
            for (int64_t i = 0; i < len; i++) {
                float acc = 0.0f;
                for (int k = 0; k < n; k++) {
                    const float prod = w[k] * xs[k][i];
                    acc = acc + prod;
                }
                e[i] = acc;
            }
            cr_expect_eq(memcmp(y, e, sizeof(float) * (size_t)len), 0, "n %d len %lld", n, (long long)len);
            for (int k = 0; k < n; k++) free(xs[k]);
            free(y);
            free(e);
        }
}

/* A weighted sum whose inputs are batch norms left unapplied (the runtime's deferred batch
 * norm before a mixed op) gives the bits of applying them first: forward y and the weight
 * gradients dw against kcpu_bn_forward_* then kcpu_wsum_*. Planes of 49 and 14x14 pixels
 * (vectors straddle planes; 16 channels x batch 3 and 5), a plain input beside them, batch
 * norms with and without affine (a nonzero shift b), training and inference coefficients,
 * and one and two threads (the backward's chunks cut planes at arbitrary points). */
static void wsum_affine_case(int HW, int N, int C, int affine, int training, int threads) {
    const int n = 4; /* inputs 0, 2: deferred batch norms; 1: plain; 3: deferred */
    const int64_t len = (int64_t)N * C * HW;
    kbn_desc d = {.N = N, .C = C, .HW = HW, .eps = 1e-5f, .momentum = 0.1f};
    float *x[4], *ybn[4], *coef[4], *g = rnd(C, 0.5f, 1.5f, 7), *b = rnd(C, -0.5f, 0.5f, 8);
    float *rm = rnd(C, -0.2f, 0.2f, 9), *rv = rnd(C, 0.5f, 2.0f, 10);
    const float w[4] = {0.31f, -0.7f, 1.3f, 0.05f};
    omp_set_num_threads(threads);
    for (int k = 0; k < n; k++) {
        x[k] = rnd(len, -2.0f + (float)k, 3.0f + (float)k, 200 + (uint64_t)k);
        ybn[k] = zerosf(len);
        coef[k] = zerosf(3 * C);
        if (k == 1) {
            memcpy(ybn[k], x[k], sizeof(float) * (size_t)len);
            continue;
        }
        float m1[64], i1[64], m2[64], i2[64], r1[64], r2[64], v1[64], v2[64];
        memcpy(r1, rm, sizeof(float) * (size_t)C); memcpy(r2, rm, sizeof(float) * (size_t)C);
        memcpy(v1, rv, sizeof(float) * (size_t)C); memcpy(v2, rv, sizeof(float) * (size_t)C);
        if (training) {
            kcpu_bn_forward_train(ybn[k], m1, i1, r1, v1, x[k], affine ? g : NULL, affine ? b : NULL, &d);
            kcpu_bn_coefs_train(coef[k], m2, i2, r2, v2, x[k], affine ? g : NULL, affine ? b : NULL, &d);
            cr_expect_eq(memcmp(m1, m2, sizeof(float) * (size_t)C), 0, "saved mean");
            cr_expect_eq(memcmp(i1, i2, sizeof(float) * (size_t)C), 0, "saved invstd");
            cr_expect_eq(memcmp(r1, r2, sizeof(float) * (size_t)C), 0, "running mean");
            cr_expect_eq(memcmp(v1, v2, sizeof(float) * (size_t)C), 0, "running var");
        } else {
            kcpu_bn_forward_infer(ybn[k], x[k], affine ? g : NULL, affine ? b : NULL, rm, rv, &d);
            kcpu_bn_coefs_infer(coef[k], affine ? g : NULL, affine ? b : NULL, rm, rv, &d);
        }
    }
    const float *aff[4] = {coef[0], NULL, coef[2], coef[3]}, *xv[4] = {x[0], x[1], x[2], x[3]};
    float *y0 = zerosf(len), *y1 = zerosf(len), *dy = rnd(len, -1, 1, 300);
    kcpu_wsum_forward(y0, (const float *const *)ybn, w, n, len);
    kcpu_wsum_affine_forward(y1, xv, aff, w, n, (int64_t)N * C, C, HW);
    cr_expect_eq(memcmp(y0, y1, sizeof(float) * (size_t)len), 0, "forward, HW %d affine %d training %d threads %d", HW,
                 affine, training, threads);
    /* backward: dw bits; the plain input's dx written (set bit 1), the others skipped */
    float dw0[4] = {0}, dw1[4] = {0}, *dx0 = zerosf(len), *dx1 = zerosf(len);
    float *dxs0[4] = {NULL, dx0, NULL, NULL}, *dxs1[4] = {NULL, dx1, NULL, NULL};
    kcpu_wsum_backward_set(dxs0, dw0, dy, (const float *const *)ybn, w, n, len, 2u);
    kcpu_wsum_affine_backward_set(dxs1, dw1, dy, xv, aff, w, n, (int64_t)N * C, C, HW, 2u);
    cr_expect_eq(memcmp(dw0, dw1, sizeof dw0), 0, "dw, HW %d affine %d training %d threads %d: %g %g %g %g vs %g %g %g %g",
                 HW, affine, training, threads, dw0[0], dw0[1], dw0[2], dw0[3], dw1[0], dw1[1], dw1[2], dw1[3]);
    cr_expect_eq(memcmp(dx0, dx1, sizeof(float) * (size_t)len), 0, "dx of the plain input");
    cr_expect(dw0[0] != 0.0f && dw0[2] != 0.0f, "weight gradients are not trivially zero");
    for (int k = 0; k < n; k++) { free(x[k]); free(ybn[k]); free(coef[k]); }
    free(g); free(b); free(rm); free(rv); free(y0); free(y1); free(dy); free(dx0); free(dx1);
}

Test(elementwise, wsum_over_deferred_batch_norms_has_the_bits_of_applying_them_first) {
    const int th = omp_get_max_threads();
    for (int t = 1; t <= 2; t++)
        for (int affine = 0; affine < 2; affine++)
            for (int training = 0; training < 2; training++) {
                wsum_affine_case(49, 5, 16, affine, training, t);
                wsum_affine_case(196, 3, 16, affine, training, t);
            }
    omp_set_num_threads(th);
}

/* The threaded movers: kcpu_add_forward has the bits of copy-then-add-each (the order the
 * runtime used before), kcpu_copy copies large non-overlapping and overlapping ranges
 * exactly (memmove semantics), kcpu_zero_bytes clears every byte; sizes below and above
 * the threading threshold (256 KiB), odd lengths, one and two threads. */
Test(elementwise, threaded_add_copy_and_zero_are_exact) {
    const int th = omp_get_max_threads();
    const int64_t lens[] = {1001, 300007};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (size_t li = 0; li < 2; li++) {
            const int64_t len = lens[li];
            float *x[3], *y = zerosf(len), *e = zerosf(len);
            for (int k = 0; k < 3; k++) x[k] = rnd(len, -5, 5, 400 + (uint64_t)k);
            for (int n = 1; n <= 3; n++) {
                kcpu_add_forward(y, (const float *const *)x, n, len);
                memcpy(e, x[0], sizeof(float) * (size_t)len);
                for (int k = 1; k < n; k++)
                    for (int64_t i = 0; i < len; i++) e[i] += 1.0f * x[k][i];
                cr_expect_eq(memcmp(y, e, sizeof(float) * (size_t)len), 0, "add of %d, len %lld, %d threads", n,
                             (long long)len, t);
            }
            kcpu_copy(y, x[2], len);
            cr_expect_eq(memcmp(y, x[2], sizeof(float) * (size_t)len), 0, "copy");
            /* overlapping: shift x[1] up by 3 floats in place */
            memcpy(e, x[1], sizeof(float) * (size_t)len);
            kcpu_copy(x[1] + 3, x[1], len - 3);
            cr_expect_eq(memcmp(x[1] + 3, e, sizeof(float) * (size_t)(len - 3)), 0, "overlapping copy");
            kcpu_zero_bytes(y, sizeof(float) * (size_t)len - 2);
            for (int64_t i = 0; i < len - 1; i++) cr_expect_eq(y[i], 0.0f, "zeroed [%lld]", (long long)i);
            cr_expect_neq(y[len - 1], 0.0f, "the last float's upper bytes are left");
            for (int k = 0; k < 3; k++) free(x[k]);
            free(y);
            free(e);
        }
    }
    omp_set_num_threads(th);
}

Test(elementwise, wsum_forward_and_backward_with_null_skipping) {
    const int k = 3;
    const int64_t len = 257;
    float *xs[3], *dxs[3], w[3] = {0.3f, -1.2f, 2.0f};
    for (int i = 0; i < k; i++) {
        xs[i] = rnd(len, -1, 1, 90 + i);
        dxs[i] = zerosf(len);
    }
    float *dy = rnd(len, -1, 1, 99), *y = zerosf(len);
    kcpu_wsum_forward(y, (const float *const *)xs, w, k, len);
    for (int64_t j = 0; j < len; j++) {
        double e = 0;
        for (int i = 0; i < k; i++) e += (double)w[i] * xs[i][j];
        cr_expect(fabs(y[j] - e) <= 1e-6, "wsum y[%lld]", (long long)j);
    }
    float *dxs_partial[3] = {dxs[0], NULL, dxs[2]};
    float dw[3] = {0};
    kcpu_wsum_backward(dxs_partial, dw, dy, (const float *const *)xs, w, k, len);
    kcpu_wsum_backward(dxs_partial, NULL, dy, (const float *const *)xs, w, k, len); /* dw skipped */
    kcpu_wsum_backward(NULL, dw, dy, (const float *const *)xs, w, k, len);          /* dxs skipped */
    for (int i = 0; i < k; i++) {
        double e = 2 * dotd(dy, xs[i], len);
        cr_expect(fabs(dw[i] - e) <= 1e-5 * (1 + fabs(e)), "wsum dw[%d] %g vs %g", i, dw[i], e);
        for (int64_t j = 0; j < len; j++) {
            float want = i == 1 ? 0.0f : 2 * w[i] * dy[j];
            cr_expect(fabs(dxs[i][j] - want) <= 1e-6, "wsum dxs[%d][%lld]", i, (long long)j);
        }
    }
    /* _set: bits 0 and 2 overwrite (NaN before), dxs[1] still accumulates */
    for (int64_t j = 0; j < len; j++) dxs[0][j] = dxs[2][j] = NAN;
    kcpu_wsum_backward_set(dxs, NULL, dy, (const float *const *)xs, w, k, len, 5u);
    for (int i = 0; i < k; i++)
        for (int64_t j = 0; j < len; j++) {
            float want = w[i] * dy[j];
            cr_expect(fabs(dxs[i][j] - want) <= 1e-6, "wsum_set dxs[%d][%lld]: %g vs %g", i, (long long)j, dxs[i][j],
                      want);
        }
    /* finite difference on w (linear: eps 1e-2) */
    for (int i = 0; i < k; i++) {
        float o = w[i];
        w[i] = o + 0.01f;
        kcpu_wsum_forward(y, (const float *const *)xs, w, k, len);
        double lp = dotd(y, dy, len);
        w[i] = o - 0.01f;
        kcpu_wsum_forward(y, (const float *const *)xs, w, k, len);
        double lm = dotd(y, dy, len);
        w[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * (double)0.01f), dw[i] / 2, 0.1), "wsum dw fd[%d]", i);
    }
    for (int i = 0; i < k; i++) { free(xs[i]); free(dxs[i]); }
    free(dy); free(y);
}

Test(elementwise, softmax_rows_match_reference_are_stable_and_backward_matches_fd) {
    const int rows = 5, K = 7, n = rows * K;
    float *x = rnd(n, -3, 3, 101), *r = rnd(n, -1, 1, 102), y[35], dx[35] = {0};
    for (int i = 0; i < K; i++) x[i] += 1000.0f; /* row 0: large logits must not overflow */
    kcpu_softmax_forward(y, x, rows, K);
    for (int rr = 0; rr < rows; rr++) {
        double m = -INFINITY, s = 0;
        for (int k = 0; k < K; k++) m = fmax(m, x[rr * K + k]);
        for (int k = 0; k < K; k++) s += exp(x[rr * K + k] - m);
        for (int k = 0; k < K; k++) {
            double e = exp(x[rr * K + k] - m) / s;
            cr_expect(fabs(y[rr * K + k] - e) <= 1e-6, "softmax y[%d,%d] %g vs %g", rr, k, y[rr * K + k], e);
        }
    }
    kcpu_softmax_backward(dx, r, y, rows, K);
    kcpu_softmax_backward(dx, r, y, rows, K);
    kcpu_softmax_backward(NULL, r, y, rows, K);
    const double eps = 1e-3;
    float yy[35];
    for (int i = K; i < n; i++) { /* rows 1.. (row 0's 1000 offset leaves too few float bits for FD) */
        float o = x[i];
        x[i] = o + (float)eps;
        kcpu_softmax_forward(yy, x, rows, K);
        double lp = dotd(yy, r, n);
        x[i] = o - (float)eps;
        kcpu_softmax_forward(yy, x, rows, K);
        double lm = dotd(yy, r, n);
        x[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * eps), dx[i] / 2, 0.05), "softmax fd at %d: %g vs %g", i,
                  (lp - lm) / (2 * eps), dx[i] / 2);
    }
    free(x); free(r);
}

Test(elementwise, concat_and_slice_place_exactly_and_backward_accumulates) {
    const int N = 2, Cx = 3, HW = 5, Cy = 7, off = 2;
    float *x = rnd(N * Cx * HW, -1, 1, 111), *y = rnd(N * Cy * HW, 5, 6, 112), back[30];
    float *y0 = malloc(sizeof(float) * N * Cy * HW);
    memcpy(y0, y, sizeof(float) * N * Cy * HW);
    kcpu_concat_forward(y, x, N, Cx, HW, Cy, off);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Cy; c++)
            for (int i = 0; i < HW; i++) {
                int yi = (n * Cy + c) * HW + i;
                float want = (c >= off && c < off + Cx) ? x[(n * Cx + c - off) * HW + i] : y0[yi];
                cr_expect(y[yi] == want, "concat y[%d]", yi);
            }
    kcpu_slice_forward(back, y, N, Cy, HW, Cx, off);
    cr_expect(memcmp(back, x, sizeof back) == 0, "slice(concat(x)) == x");
    float *dx = zerosf(N * Cx * HW), *dyb = zerosf(N * Cy * HW);
    kcpu_concat_backward(dx, y, N, Cx, HW, Cy, off);
    kcpu_concat_backward(dx, y, N, Cx, HW, Cy, off);
    kcpu_concat_backward(NULL, y, N, Cx, HW, Cy, off);
    for (int i = 0; i < N * Cx * HW; i++) cr_expect(dx[i] == 2 * x[i], "concat dx accumulates");
    for (int i = 0; i < N * Cx * HW; i++) dx[i] = NAN;
    kcpu_concat_backward_set(dx, y, N, Cx, HW, Cy, off);
    for (int i = 0; i < N * Cx * HW; i++) cr_expect(dx[i] == x[i], "concat dx set");
    kcpu_slice_backward(dyb, x, N, Cy, HW, Cx, off);
    kcpu_slice_backward(dyb, x, N, Cy, HW, Cx, off);
    kcpu_slice_backward(NULL, x, N, Cy, HW, Cx, off);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Cy; c++)
            for (int i = 0; i < HW; i++) {
                float want = (c >= off && c < off + Cx) ? 2 * x[(n * Cx + c - off) * HW + i] : 0.0f;
                cr_expect(dyb[(n * Cy + c) * HW + i] == want, "slice dx");
            }
    free(x); free(y); free(y0); free(dx); free(dyb);
}

Test(elementwise, shift_drops_first_row_and_column_and_backward_accumulates) {
    const int N = 2, C = 2, H = 5, W = 4;
    float *x = rnd(N * C * H * W, -1, 1, 121), y[2 * 2 * 4 * 3], dx[80] = {0};
    kcpu_shift_forward(y, x, N, C, H, W);
    for (int pl = 0; pl < N * C; pl++)
        for (int i = 0; i < H - 1; i++)
            for (int j = 0; j < W - 1; j++)
                cr_expect(y[(pl * (H - 1) + i) * (W - 1) + j] == x[(pl * H + i + 1) * W + j + 1]);
    kcpu_shift_backward(dx, y, N, C, H, W);
    kcpu_shift_backward(dx, y, N, C, H, W);
    kcpu_shift_backward(NULL, y, N, C, H, W);
    for (int pl = 0; pl < N * C; pl++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float want = (i > 0 && j > 0) ? 2 * x[(pl * H + i) * W + j] : 0.0f;
                cr_expect(dx[(pl * H + i) * W + j] == want, "shift dx");
            }
    free(x);
}

Test(elementwise, gap_is_mean_over_hw_and_backward_spreads_dy_over_hw) {
    const int N = 2, C = 3, HW = 13;
    float *x = rnd(N * C * HW, -1, 1, 131), y[6], dy[6] = {1, -2, 3, 0.5f, 0.25f, -1}, *dx = zerosf(N * C * HW);
    kcpu_gap_forward(y, x, N, C, HW);
    for (int pl = 0; pl < N * C; pl++) {
        double s = 0;
        for (int i = 0; i < HW; i++) s += x[pl * HW + i];
        cr_expect(fabs(y[pl] - s / HW) <= 1e-6);
    }
    kcpu_gap_backward(dx, dy, N, C, HW);
    kcpu_gap_backward(dx, dy, N, C, HW);
    kcpu_gap_backward(NULL, dy, N, C, HW);
    for (int pl = 0; pl < N * C; pl++)
        for (int i = 0; i < HW; i++) cr_expect(fabs(dx[pl * HW + i] - 2.0 * dy[pl] / HW) <= 1e-6);
    free(x); free(dx);
}

Test(elementwise, dropout_mask_statistics_exact_scaling_and_seed_determinism) {
    const int64_t n = 200000;
    const float p = 0.3f, keep = 1.0f / (1.0f - p);
    float *x = rnd(n, -1, 1, 141), *y = zerosf(n), *m = zerosf(n), *m2 = zerosf(n), *y2 = zerosf(n);
    kcpu_dropout_forward(y, m, x, n, p, 1234);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int k = krng_uniform(1234, (uint64_t)i) >= p;
        cr_expect(m[i] == (k ? keep : 0.0f), "mask[%lld] is 0 or exactly 1/(1-p), from the seed", (long long)i);
        cr_expect(y[i] == x[i] * m[i]);
        kept += k;
    }
    /* binomial sd of the kept fraction is sqrt(.21/2e5) = 0.001: allow 5 sd */
    cr_expect(fabs((double)kept / n - 0.7) < 0.005, "kept fraction %g", (double)kept / n);
    kcpu_dropout_forward(y2, m2, x, n, p, 1234);
    cr_expect(memcmp(m, m2, sizeof(float) * n) == 0, "same seed, same mask");
    kcpu_dropout_forward(y2, m2, x, n, p, 4321);
    cr_expect(memcmp(m, m2, sizeof(float) * n) != 0, "other seed, other mask");
    kcpu_dropout_forward(y2, m2, x, n, 0.0f, 4321);
    for (int64_t i = 0; i < n; i++) cr_expect(m2[i] == 1.0f && y2[i] == x[i], "p=0 is identity");
    float *dx = zerosf(n);
    kcpu_dropout_backward(dx, x, m, n);
    kcpu_dropout_backward(dx, x, m, n);
    kcpu_dropout_backward(NULL, x, m, n);
    for (int64_t i = 0; i < n; i++) cr_expect(dx[i] == x[i] * m[i] + x[i] * m[i]);
    free(x); free(y); free(m); free(m2); free(y2); free(dx);
}

Test(elementwise, droppath_per_sample_mask_statistics_scaling_and_backward) {
    const int N = 20000;
    const int64_t per = 3;
    const float p = 0.2f, keep = 1.0f / (1.0f - p);
    float *x = rnd(N * per, -1, 1, 151), *y = zerosf(N * per), *m = zerosf(N), *dx = zerosf(N * per);
    kcpu_droppath_forward(y, m, x, N, per, p, 77);
    int kept = 0;
    for (int n = 0; n < N; n++) {
        int k = krng_uniform(77, (uint64_t)n) >= p;
        cr_expect(m[n] == (k ? keep : 0.0f));
        kept += k;
        for (int64_t i = 0; i < per; i++) cr_expect(y[n * per + i] == x[n * per + i] * m[n]);
    }
    /* sd sqrt(.16/2e4) = 0.0028: allow ~5 sd */
    cr_expect(fabs((double)kept / N - 0.8) < 0.015, "kept fraction %g", (double)kept / N);
    kcpu_droppath_backward(dx, x, m, N, per);
    kcpu_droppath_backward(dx, x, m, N, per);
    kcpu_droppath_backward(NULL, x, m, N, per);
    for (int n = 0; n < N; n++)
        for (int64_t i = 0; i < per; i++) cr_expect(dx[n * per + i] == x[n * per + i] * m[n] * 2);
    kcpu_droppath_forward(y, m, x, N, per, 0.0f, 77);
    for (int n = 0; n < N; n++) cr_expect(m[n] == 1.0f);
    cr_expect(memcmp(y, x, sizeof(float) * N * per) == 0);
    free(x); free(y); free(m); free(dx);
}

/* ------------------------------------------------------------------------------------ */
/* linear, embedding, softmax cross-entropy                                             */

static void check_linear(int with_bias) {
    const int N = 5, I = 9, O = 4;
    float *x = rnd(N * I, -1, 1, 161), *w = rnd(O * I, -1, 1, 162), *b = with_bias ? rnd(O, -1, 1, 163) : NULL;
    float *r = rnd(N * O, -1, 1, 164), y[20], dx[45] = {0}, dw[36] = {0}, db[4] = {0};
    double yr[20], dxr[45] = {0}, dwr[36] = {0}, dbr[4] = {0};
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < I; i++) {
                s += (double)x[n * I + i] * w[o * I + i];
                dxr[n * I + i] += (double)r[n * O + o] * w[o * I + i];
                dwr[o * I + i] += (double)r[n * O + o] * x[n * I + i];
            }
            yr[n * O + o] = s;
            dbr[o] += r[n * O + o];
        }
    kcpu_linear_forward(y, x, w, b, N, I, O);
    float *yrf = tof(yr, 20, 1), *dxr2 = tof(dxr, 45, 2), *dwr2 = tof(dwr, 36, 2), *dbr2 = tof(dbr, 4, 2);
    float *dwr1 = tof(dwr, 36, 1);
    EXPECT_CLOSE(y, yrf, 20, TOL_REF, "linear y");
    kcpu_linear_backward(dx, dw, with_bias ? db : NULL, r, x, w, N, I, O);
    kcpu_linear_backward(dx, NULL, with_bias ? db : NULL, r, x, w, N, I, O); /* dw skipped */
    kcpu_linear_backward(NULL, dw, NULL, r, x, w, N, I, O);                   /* dx, db skipped */
    EXPECT_CLOSE(dx, dxr2, 45, TOL_REF, "linear dx accumulates");
    EXPECT_CLOSE(dw, dwr2, 36, TOL_REF, "linear dw accumulates");
    if (with_bias) EXPECT_CLOSE(db, dbr2, 4, TOL_REF, "linear db accumulates");
    /* finite differences (linear in x and w: eps 1e-2, floor 0.1) */
    const double eps = 1e-2;
    for (int i = 0; i < O * I; i++) {
        float o = w[i];
        w[i] = o + (float)eps;
        kcpu_linear_forward(y, x, w, b, N, I, O);
        double lp = dotd(y, r, 20);
        w[i] = o - (float)eps;
        kcpu_linear_forward(y, x, w, b, N, I, O);
        double lm = dotd(y, r, 20);
        w[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * eps), dwr[i], 0.1), "linear dw fd[%d]", i);
    }
    for (int i = 0; i < N * I; i++) {
        float o = x[i];
        x[i] = o + (float)eps;
        kcpu_linear_forward(y, x, w, b, N, I, O);
        double lp = dotd(y, r, 20);
        x[i] = o - (float)eps;
        kcpu_linear_forward(y, x, w, b, N, I, O);
        double lm = dotd(y, r, 20);
        x[i] = o;
        cr_expect(fd_ok((lp - lm) / (2 * eps), dxr[i], 0.1), "linear dx fd[%d]", i);
    }
    free(x); free(w); free(b); free(r); free(yrf); free(dxr2); free(dwr2); free(dbr2); free(dwr1);
}

Test(linear, with_bias_matches_reference_fd_accumulates_and_skips_null) { check_linear(1); }
Test(linear, without_bias_matches_reference_fd_accumulates_and_skips_null) { check_linear(0); }

Test(linear, embedding_gathers_rows_and_backward_sums_repeated_ids) {
    const int N = 6, V = 5, D = 4;
    int32_t ids[6] = {3, 0, 3, 4, 1, 3};
    float *t = rnd(V * D, -1, 1, 171), *dy = rnd(N * D, -1, 1, 172), y[24], dt[20] = {0};
    kcpu_embedding_forward(y, ids, t, N, V, D);
    for (int n = 0; n < N; n++) cr_expect(memcmp(y + n * D, t + ids[n] * D, sizeof(float) * D) == 0);
    kcpu_embedding_backward(dt, dy, ids, N, V, D);
    kcpu_embedding_backward(NULL, dy, ids, N, V, D);
    for (int v = 0; v < V; v++)
        for (int j = 0; j < D; j++) {
            float want = 0;
            for (int n = 0; n < N; n++)
                if (ids[n] == v) want += dy[n * D + j];
            cr_expect(fabsf(dt[v * D + j] - want) <= 1e-6f, "dtable[%d][%d]", v, j);
        }
    cr_expect(dt[2 * D] == 0 && dt[2 * D + 3] == 0, "unused row untouched");
    free(t); free(dy);
}

Test(linear, softmax_ce_loss_probs_grad_and_fd_match_reference) {
    const int N = 6, K = 5;
    float *x = rnd(N * K, -3, 3, 181), probs[30], dl[30] = {0};
    int32_t lab[6] = {0, 4, 2, 2, 1, 3};
    int corr = -1;
    float loss = kcpu_softmax_ce_forward(probs, x, lab, N, K, &corr);
    double ref = 0;
    int rc = 0;
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0;
        int am = 0;
        for (int k = 0; k < K; k++)
            if (x[n * K + k] > m) { m = x[n * K + k]; am = k; }
        for (int k = 0; k < K; k++) s += exp(x[n * K + k] - m);
        ref += (m + log(s) - x[n * K + lab[n]]) / N;
        rc += am == lab[n];
        for (int k = 0; k < K; k++)
            cr_expect(fabs(probs[n * K + k] - exp(x[n * K + k] - m) / s) <= 1e-6, "probs[%d,%d]", n, k);
    }
    cr_expect(fabs(loss - ref) <= 1e-6 * (1 + fabs(ref)), "loss %g vs %g", loss, ref);
    cr_expect_eq(corr, rc);
    /* gradient with dloss = 0.5, twice: 2 * 0.5 * (p - onehot) / N */
    kcpu_softmax_ce_backward(dl, 0.5f, probs, lab, N, K);
    kcpu_softmax_ce_backward(dl, 0.5f, probs, lab, N, K);
    kcpu_softmax_ce_backward(NULL, 0.5f, probs, lab, N, K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double e = (probs[n * K + k] - (k == lab[n])) / N;
            cr_expect(fabs(dl[n * K + k] - e) <= 1e-6, "dlogits[%d,%d]", n, k);
        }
    /* finite difference of the returned loss (smooth: eps 1e-3, floor 0.01) */
    float pp[30];
    for (int i = 0; i < N * K; i++) {
        float o = x[i];
        x[i] = o + 1e-3f;
        double lp = kcpu_softmax_ce_forward(pp, x, lab, N, K, NULL);
        x[i] = o - 1e-3f;
        double lm = kcpu_softmax_ce_forward(pp, x, lab, N, K, NULL);
        x[i] = o;
        double fd = (lp - lm) / (2 * (double)1e-3f);
        cr_expect(fd_ok(fd, dl[i], 0.05), "ce fd[%d] %g vs %g", i, fd, dl[i]);
    }
    free(x);
}

Test(linear, softmax_ce_correct_counts_first_maximum_on_ties) {
    float x[12] = {1, 2, 3, /* label 2: right */ 5, 5, 1, /* label 0: tie, first wins: right */
                   5, 5, 1, /* label 1: tie goes to 0: wrong */ 0, 0, 0 /* label 0: right */};
    int32_t lab[4] = {2, 0, 1, 0};
    float probs[12];
    int corr = -1;
    float loss = kcpu_softmax_ce_forward(probs, x, lab, 4, 3, &corr);
    cr_expect_eq(corr, 3);
    cr_expect(isfinite(loss));
    /* large logits stay finite */
    float big[3] = {1000, -1000, 0};
    int32_t l0 = 1;
    loss = kcpu_softmax_ce_forward(probs, big, &l0, 1, 3, NULL);
    cr_expect(fabs(loss - 2000.0f) <= 1e-3f, "stable loss %g", loss);
}

/* ------------------------------------------------------------------------------------ */
/* optimisers: two steps against values computed by hand from the PyTorch update rules */

Test(optim, sgd_momentum_weight_decay_two_steps_match_hand_computation) {
    /* w=1, grad 0.5 both steps, lr .1, momentum .9, wd .01:
     * step 1: g = .5 + .01*1 = .51; buf = .51; w = 1 - .051 = .949
     * step 2: g = .5 + .01*.949 = .50949; buf = .9*.51 + .50949 = .96849; w = .949 - .096849 = .852151
     * second element, no momentum / wd: w=-.5, grads .2 then -.4, lr .05: -.51 then -.49 */
    float w[2] = {1.0f, -0.5f}, buf[2] = {0, 0}, g1[2] = {0.5f, 0.2f}, g2[2] = {0.5f, -0.4f};
    kcpu_sgd_step(w, buf, g1, 1, 0.1f, 0.9f, 0.01f);
    cr_expect(fabsf(w[0] - 0.949f) <= 1e-6f && fabsf(buf[0] - 0.51f) <= 1e-6f);
    kcpu_sgd_step(w, buf, g2, 1, 0.1f, 0.9f, 0.01f);
    cr_expect(fabsf(w[0] - 0.852151f) <= 1e-6f && fabsf(buf[0] - 0.96849f) <= 1e-6f, "w %.9g buf %.9g", w[0],
              buf[0]);
    kcpu_sgd_step(w + 1, buf + 1, g1 + 1, 1, 0.05f, 0.0f, 0.0f);
    cr_expect(fabsf(w[1] + 0.51f) <= 1e-6f);
    kcpu_sgd_step(w + 1, buf + 1, g2 + 1, 1, 0.05f, 0.0f, 0.0f);
    cr_expect(fabsf(w[1] + 0.49f) <= 1e-6f, "w %.9g", w[1]);
}

Test(optim, adam_two_steps_with_and_without_weight_decay_match_hand_computation) {
    /* (a) w=1, grads .5 then -.25, lr .01, b1 .9, b2 .999, eps 1e-8, wd 0:
     *  step 1: m=.05 v=.00025; mhat=.5 vhat=.25; w = 1 - .01*.5/(.5+1e-8) = .99000000
     *  step 2: m=.045-.025=.02; v=.00024975+.0000625=.00031225; bc1=.19 bc2=.001999;
     *          w = .99 - .01*(.02/.19)/(sqrt(.00031225/.001999)+1e-8) = .98733663
     * (b) w=-2, grads .1 then .3, lr .001, b1 .8, b2 .99, eps 1e-3, wd .1:
     *  step 1: g=.1-.2=-.1; m=-.02 v=1e-4; mhat=-.1 vhat=.01; w = -2 + .001*.1/(.1+.001) = -1.99900990
     *  step 2: g=.3-.199900990=.100099010; m=-.016+.020019802=.004019802;
     *          v=.000099+.0000010020=.000100002 (approx.); w = -1.99912040 */
    float w[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    float ga1 = 0.5f, ga2 = -0.25f, gb1 = 0.1f, gb2 = 0.3f;
    kcpu_adam_step(w, m, v, &ga1, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
    /* v is checked to 1e-4 relative: beta2 arrives as a float, and 1 - 0.999f differs from
     * 0.001 by 1.3e-5 relative (PyTorch forms 1 - beta2 from a Python double). */
    cr_expect(fabsf(w[0] - 0.99f) <= 1e-6f, "adam a step 1 w %.9g", w[0]);
    cr_expect(fabsf(m[0] - 0.05f) <= 1e-7f, "adam a step 1 m %.9g", m[0]);
    cr_expect(fabs(v[0] - 0.00025) <= 1e-4 * 0.00025, "adam a step 1 v %.9g", v[0]);
    kcpu_adam_step(w, m, v, &ga2, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 2);
    cr_expect(fabs(w[0] - 0.9873366298707846) <= 1e-6, "adam a w %.9g", w[0]);
    cr_expect(fabs(m[0] - 0.02) <= 1e-7, "adam a m %.9g", m[0]);
    cr_expect(fabs(v[0] - 0.00031225) <= 1e-4 * 0.00031225, "adam a v %.9g", v[0]);
    kcpu_adam_step(w + 1, m + 1, v + 1, &gb1, 1, 0.001f, 0.8f, 0.99f, 1e-3f, 0.1f, 1);
    cr_expect(fabs(w[1] - -1.999009900990099) <= 1e-6, "adam b step 1 w %.9g", w[1]);
    kcpu_adam_step(w + 1, m + 1, v + 1, &gb2, 1, 0.001f, 0.8f, 0.99f, 1e-3f, 0.1f, 2);
    cr_expect(fabs(w[1] - -1.999120402152619) <= 1e-6, "adam b step 2 w %.9g", w[1]);
    cr_expect(fabs(m[1] - 0.004019801980198013) <= 1e-7, "adam b m %g", m[1]);
}

/* ------------------------------------------------------------------------------------ */
/* determinism at 2 threads                                                              */

Test(determinism, two_runs_are_bit_identical_with_two_threads) {
    omp_set_num_threads(2);
    /* depthwise 5x5 dil 2 and dense 3x3 backward filter over a batch; bn; dot; softmax_ce */
    kconv2d_desc dd[2] = {
        {.N = 8, .C = 16, .H = 16, .W = 16, .K = 16, .R = 5, .S = 5, .stride_h = 1, .stride_w = 1, .pad_h = 4,
         .pad_w = 4, .dil_h = 2, .dil_w = 2, .groups = 16},
        {.N = 8, .C = 16, .H = 16, .W = 16, .K = 16, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1,
         .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1}};
    for (int t = 0; t < 2; t++) {
        kconv2d_desc *d = &dd[t];
        kconv2d_desc_finish(d);
        int64_t nx = (int64_t)d->N * d->C * d->H * d->W, ny = (int64_t)d->N * d->K * d->P * d->Q,
                nw = (int64_t)d->K * d->C / d->groups * d->R * d->S;
        size_t ns = kcpu_conv2d_scratch_floats(d);
        float *x = rnd(nx, -1, 1, 191), *dy = rnd(ny, -1, 1, 192), *scr = zerosf((int64_t)ns);
        float *a = zerosf(nw), *b = zerosf(nw), *dxa = zerosf(nx), *dxb = zerosf(nx);
        kcpu_conv2d_backward_filter(a, dy, x, d, scr);
        kcpu_conv2d_backward_filter(b, dy, x, d, scr);
        cr_expect(memcmp(a, b, sizeof(float) * nw) == 0, "conv %d backward_filter repeatable", t);
        kcpu_conv2d_backward_data(dxa, dy, a, d, scr);
        kcpu_conv2d_backward_data(dxb, dy, a, d, scr);
        cr_expect(memcmp(dxa, dxb, sizeof(float) * nx) == 0, "conv %d backward_data repeatable", t);
        free(x); free(dy); free(scr); free(a); free(b); free(dxa); free(dxb);
    }
    kbn_desc bd = {.N = 8, .C = 4, .HW = 1000, .eps = 1e-5f, .momentum = 0.1f};
    int64_t n = 32000;
    float *x = rnd(n, -1, 1, 193), *dy = rnd(n, -1, 1, 194), *y1 = zerosf(n), *y2 = zerosf(n);
    float *dx1 = zerosf(n), *dx2 = zerosf(n), sm[4], si[4], g1[4] = {0}, g2[4] = {0};
    kcpu_bn_forward_train(y1, sm, si, NULL, NULL, x, NULL, NULL, &bd);
    kcpu_bn_forward_train(y2, sm, si, NULL, NULL, x, NULL, NULL, &bd);
    kcpu_bn_backward(dx1, g1, NULL, dy, x, NULL, sm, si, &bd);
    kcpu_bn_backward(dx2, g2, NULL, dy, x, NULL, sm, si, &bd);
    cr_expect(memcmp(y1, y2, sizeof(float) * n) == 0 && memcmp(dx1, dx2, sizeof(float) * n) == 0 &&
              memcmp(g1, g2, sizeof g1) == 0, "bn repeatable");
    cr_expect(kcpu_dot(x, dy, n) == kcpu_dot(x, dy, n), "dot repeatable");
    int32_t *lab = malloc(sizeof(int32_t) * 3200);
    for (int i = 0; i < 3200; i++) lab[i] = i % 10;
    int c1, c2;
    float l1 = kcpu_softmax_ce_forward(y1, x, lab, 3200, 10, &c1);
    float l2 = kcpu_softmax_ce_forward(y2, x, lab, 3200, 10, &c2);
    cr_expect(l1 == l2 && c1 == c2, "softmax_ce repeatable");
    free(x); free(dy); free(y1); free(y2); free(dx1); free(dx2); free(lab);
}
