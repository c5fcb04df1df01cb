/* cuda_kernels.cu — the CUDA kernels one at a time at the shapes of the DARTS CIFAR-10
 * supernet's search step (batch 64, C = 16: planes of 32x32, 16x16 and 8x8 with 16, 32
 * and 64 channels), each checked against its CPU twin on the same random inputs and
 * timed by CUDA events: median of REPS runs after warm-up, with the bytes it must move at
 * least (inputs read once, outputs written once) and the bandwidth that implies. A row per
 * (kernel, shape, variant); variants are the switches kcuda_init reads
 * (DARTSC_CUDA_OWN_1X1, DARTSC_CUDA_DW_FILTER_PLANES, DARTSC_CUDA_ONE_LAUNCH,
 * DARTSC_CUDA_DW_FILTER_U1: variant dwu1, the depthwise rows), and the
 * batched launches (kcuda_*_batch: 8 problems in one call against 8 single calls; with
 * DARTSC_CUDA_BATCH_CUBLAS, variant cublasb, the cuBLAS 1x1s too, strided included). For the device session: which kernel is how far from the bytes
 * it moves, before and after a change, in one short run (bench/gpu.sh runs it).
 *
 *   bench/cuda_kernels [REPS]        (exit 77 where no GPU is usable)
 *
 * Check: ||gpu - cpu|| / ||cpu|| per output, printed; a row is marked BAD above 1e-4 (the
 * LIBRARY tolerance of tests/test_cuda_backend.c: these kernels reassociate sums). */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

extern "C" {
#include "kernels/cpu/kcpu.h"
}
#include "kernels/cuda/kcuda.h"

#define CK(call)                                                                                        \
    do {                                                                                                \
        cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));      \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

static cudaStream_t g_s;
static int g_reps = 50;

/* A host buffer and its device copy. */
struct buf {
    std::vector<float> h;
    float *d = nullptr;
    explicit buf(size_t n, float lo = -1.f, float hi = 1.f, uint64_t seed = 1) : h(n) {
        for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * krng_uniform(seed, i);
        CK(cudaMalloc(&d, (n ? n : 1) * sizeof(float)));
        up();
    }
    ~buf() { cudaFree(d); }
    void up() { CK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice)); }
    std::vector<float> down() const {
        std::vector<float> r(h.size());
        CK(cudaMemcpy(r.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
        return r;
    }
    size_t n() const { return h.size(); }
};

static double rel_err(const std::vector<float> &g, const std::vector<float> &c) {
    double num = 0, den = 0;
    for (size_t i = 0; i < g.size(); i++) {
        double d = (double)g[i] - c[i];
        num += d * d;
        den += (double)c[i] * c[i];
        if (std::isnan(g[i]) != std::isnan(c[i])) return INFINITY;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Median device time of f over g_reps runs, after 3 warm-up runs. reset runs before each
 * (untimed): outputs that accumulate are restored so every run does the same work. */
template <typename F, typename R> static double time_us(F f, R reset) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    std::vector<float> t;
    for (int i = 0; i < 3 + g_reps; i++) {
        reset();
        CK(cudaEventRecord(a, g_s));
        f();
        CK(cudaEventRecord(b, g_s));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        if (i >= 3) t.push_back(ms);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return 1000.0 * t[t.size() / 2];
}

static void row(const char *kernel, const char *shape, const char *variant, double us, double bytes, double err) {
    if (const char *e = kcuda_last_error()) {
        fprintf(stderr, "%s %s: CUDA error: %s\n", kernel, shape, e);
        exit(1);
    }
    printf("%-22s %-26s %-8s %9.1f us %8.1f MB %8.0f GB/s  err %.1e%s\n", kernel, shape, variant, us, bytes / 1e6,
           bytes / (us * 1e-6) / 1e9, err, err > 1e-4 ? "  BAD" : "");
    fflush(stdout);
}

/* ---- convolutions ---- */
static void conv_rows(const char *variant, int N, int C, int H, int K, int R, int stride, int pad, int dil, int groups) {
    kconv2d_desc d = {N, C, H, H, K, R, R, 0, 0, stride, stride, pad, pad, dil, dil, groups};
    kconv2d_desc_finish(&d);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d k%d s%d d%d%s", N, C, H, H, R, stride, dil,
             groups == C ? " dw" : "");
    const int64_t nx = (int64_t)N * C * H * H, ny = (int64_t)N * K * d.P * d.Q, nw = (int64_t)K * (C / groups) * R * R;
    buf x(nx, -1, 1, 11), w(nw, -0.5f, 0.5f, 12), dy(ny, -1, 1, 13), y(ny), dx(nx), dw(nw);
    size_t sc = kcuda_conv2d_scratch_floats(&d), scc = kcpu_conv2d_scratch_floats(&d);
    float *scratch = nullptr;
    CK(cudaMalloc(&scratch, (sc ? sc : 1) * sizeof(float)));
    std::vector<float> cs(scc ? scc : 1);
    const char *kind = groups == C ? "dw" : R == 1 ? "1x1" : "conv";
    char name[32];
    /* forward */
    std::vector<float> ref(ny);
    kcpu_conv2d_forward(ref.data(), x.h.data(), w.h.data(), &d, cs.data());
    double us = time_us([&] { kcuda_conv2d_forward(y.d, x.d, w.d, &d, scratch, g_s); }, [] {});
    snprintf(name, sizeof name, "%s forward", kind);
    row(name, shape, variant, us, 4.0 * (nx + ny + nw), rel_err(y.down(), ref));
    /* data gradient (overwriting, as the runtime asks where it can) */
    ref.assign(nx, 0.f);
    kcpu_conv2d_backward_data(ref.data(), dy.h.data(), w.h.data(), &d, cs.data());
    if (kcuda_conv2d_sets_dx(&d)) {
        us = time_us([&] { kcuda_conv2d_backward_data_set(dx.d, dy.d, w.d, NULL, &d, scratch, g_s); }, [] {});
    } else {
        us = time_us([&] { kcuda_conv2d_backward_data(dx.d, dy.d, w.d, &d, scratch, g_s); },
                     [&] { CK(cudaMemsetAsync(dx.d, 0, nx * sizeof(float), g_s)); });
    }
    snprintf(name, sizeof name, "%s data grad", kind);
    row(name, shape, variant, us, 4.0 * (nx + ny + nw), rel_err(dx.down(), ref));
    /* filter gradient (accumulates: zeroed before each run) */
    ref.assign(nw, 0.f);
    kcpu_conv2d_backward_filter(ref.data(), dy.h.data(), x.h.data(), &d, cs.data());
    us = time_us([&] { kcuda_conv2d_backward_filter(dw.d, dy.d, x.d, &d, scratch, g_s); },
                 [&] { CK(cudaMemsetAsync(dw.d, 0, nw * sizeof(float), g_s)); });
    snprintf(name, sizeof name, "%s filter grad", kind);
    row(name, shape, variant, us, 4.0 * (nx + ny + nw), rel_err(dw.down(), ref));
    cudaFree(scratch);
}

/* ---- batch norm (affine, training) ---- */
static void bn_rows(const char *variant, int N, int C, int HW) {
    kbn_desc d = {N, C, HW, 1e-5f, 0.1f};
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d", N, C, HW);
    const int64_t n = (int64_t)N * C * HW;
    buf x(n, -1, 3, 21), dy(n, -1, 1, 22), g(C, 0.5f, 1.5f, 23), b(C, -0.5f, 0.5f, 24), y(n), dx(n);
    buf sm(C), si(C), rm(C, 0, 0), rv(C, 1, 1), dg(C), db(C);
    std::vector<float> ry(n), rsm(C), rsi(C), rrm(C, 0.f), rrv(C, 1.f);
    kcpu_bn_forward_train(ry.data(), rsm.data(), rsi.data(), rrm.data(), rrv.data(), x.h.data(), g.h.data(), b.h.data(),
                          &d);
    double us = time_us([&] { kcuda_bn_forward_train(y.d, sm.d, si.d, NULL, NULL, x.d, g.d, b.d, &d, g_s); }, [] {});
    row("bn forward", shape, variant, us, 8.0 * n, rel_err(y.down(), ry));
    /* the deferred batch norm's coefficients (statistics only: x read once) */
    std::vector<float> rcoef(3 * (size_t)C);
    buf coef(3 * (size_t)C);
    kcpu_bn_coefs_train(rcoef.data(), NULL, NULL, NULL, NULL, x.h.data(), g.h.data(), b.h.data(), &d);
    us = time_us([&] { kcuda_bn_coefs_train(coef.d, NULL, NULL, NULL, NULL, x.d, g.d, b.d, &d, g_s); }, [] {});
    row("bn coefficients", shape, variant, us, 4.0 * n, rel_err(coef.down(), rcoef));
    std::vector<float> rdx(n), rdg(C, 0.f), rdb(C, 0.f);
    kcpu_bn_backward_set(rdx.data(), rdg.data(), rdb.data(), dy.h.data(), x.h.data(), g.h.data(), rsm.data(),
                         rsi.data(), &d);
    us = time_us([&] { kcuda_bn_backward_set(dx.d, dg.d, db.d, dy.d, x.d, g.d, sm.d, si.d, &d, g_s); },
                 [&] {
                     CK(cudaMemsetAsync(dg.d, 0, C * sizeof(float), g_s));
                     CK(cudaMemsetAsync(db.d, 0, C * sizeof(float), g_s));
                 });
    row("bn backward", shape, variant, us, 12.0 * n, std::max(rel_err(dx.down(), rdx), rel_err(dg.down(), rdg)));
    /* four affine-free batch norms of one tensor (a supernet state's pool, four edges),
       each output gradient read scaled: four backwards adding into one dx (the default)
       against one backward on their sum (kcuda_bn_backward_sum, DARTSC_SUM_BN_GRADS) */
    buf dy1(n, -1, 1, 25), dy2(n, -1, 1, 26), dy3(n, -1, 1, 27), w(4, 0.1f, 0.4f, 28);
    const float *dys[4] = {dy.h.data(), dy1.h.data(), dy2.h.data(), dy3.h.data()};
    float wv[4];
    const float *wp[4];
    for (int k = 0; k < 4; k++) wv[k] = w.h[k], wp[k] = &wv[k];
    std::vector<float> gsum(n);
    kcpu_scaled_sum(gsum.data(), dys, wp, 4, n);
    kcpu_bn_backward_set(rdx.data(), NULL, NULL, gsum.data(), x.h.data(), NULL, rsm.data(), rsi.data(), &d);
    const float *dyd[4] = {dy.d, dy1.d, dy2.d, dy3.d};
    us = time_us([&] {
        for (int k = 0; k < 4; k++)
            kcuda_bn_backward_scaled(dx.d, NULL, NULL, dyd[k], w.d + k, x.d, NULL, sm.d, si.d, &d, k > 0, g_s);
    }, [] {});
    row("bn backward x4", shape, variant, us, 4 * 12.0 * n, rel_err(dx.down(), rdx));
    const kbn_more mo = {3, {dy1.d, dy2.d, dy3.d}, {w.d + 1, w.d + 2, w.d + 3}};
    us = time_us([&] { kcuda_bn_backward_sum(dx.d, NULL, NULL, dy.d, w.d, &mo, x.d, NULL, sm.d, si.d, &d, 0, g_s); },
                 [] {});
    row("bn backward sum of 4", shape, variant, us, 4.0 * 6 * n, rel_err(dx.down(), rdx));
}

/* ---- pooling 3x3 (max and average), stride 1 or 2 ---- */
static void pool_rows(int N, int C, int H, int stride) {
    kpool_desc d = {N, C, H, H, (H + 2 - 3) / stride + 1, (H + 2 - 3) / stride + 1, 3, stride, 1};
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d s%d", N, C, H, H, stride);
    const int64_t nx = (int64_t)N * C * H * H, ny = (int64_t)N * C * d.P * d.Q;
    buf x(nx, -1, 1, 31), dy(ny, -1, 1, 32), y(ny), dx(nx);
    std::vector<float> ry(ny), rdx(nx);
    kcpu_maxpool_forward(ry.data(), x.h.data(), &d);
    double us = time_us([&] { kcuda_maxpool_forward(y.d, x.d, &d, g_s); }, [] {});
    row("maxpool forward", shape, "", us, 4.0 * (nx + ny), rel_err(y.down(), ry));
    std::fill(rdx.begin(), rdx.end(), 0.f);
    kcpu_maxpool_backward(rdx.data(), dy.h.data(), x.h.data(), &d);
    us = time_us([&] { kcuda_maxpool_backward(dx.d, dy.d, x.d, &d, g_s); },
                 [&] { CK(cudaMemsetAsync(dx.d, 0, nx * sizeof(float), g_s)); });
    row("maxpool backward", shape, "", us, 4.0 * (2 * nx + ny), rel_err(dx.down(), rdx));
    kcpu_avgpool_forward(ry.data(), x.h.data(), &d);
    us = time_us([&] { kcuda_avgpool_forward(y.d, x.d, &d, g_s); }, [] {});
    row("avgpool forward", shape, "", us, 4.0 * (nx + ny), rel_err(y.down(), ry));
    /* a pool and the deferred (affine-free) batch norm of its output, as the supernet's
       edges have them: the pool, then the batch norm's statistics and coefficients
       (default), against the pool writing the statistics (kcuda_pool_forward_stats,
       DARTSC_POOL_BN_STATS) and the batch norm taking them; err: the coefficients */
    const kbn_desc bd = {N, d.C, d.P * d.Q, 1e-5f, 0.1f};
    buf coef(3 * (size_t)C);
    double *st = nullptr;
    CK(cudaMalloc(&st, 2 * (size_t)C * sizeof(double)));
    std::vector<float> rcoef(3 * (size_t)C);
    for (int mx = 1; mx >= 0; mx--) {
        if (mx) kcpu_maxpool_forward(ry.data(), x.h.data(), &d);
        else kcpu_avgpool_forward(ry.data(), x.h.data(), &d);
        kcpu_bn_coefs_train(rcoef.data(), NULL, NULL, NULL, NULL, ry.data(), NULL, NULL, &bd);
        float *cp = coef.d;
        const float *yp = y.d, *xp = x.d;
        us = time_us([&] {
            if (mx) kcuda_maxpool_forward(y.d, x.d, &d, g_s);
            else kcuda_avgpool_forward(y.d, x.d, &d, g_s);
            kcuda_bn_coefs_train(coef.d, NULL, NULL, NULL, NULL, y.d, NULL, NULL, &bd, g_s);
        }, [] {});
        row(mx ? "maxpool+bn coefs" : "avgpool+bn coefs", shape, "", us, 4.0 * (nx + 2 * ny), rel_err(coef.down(), rcoef));
        us = time_us([&] {
            kcuda_pool_forward_stats(1, mx, &y.d, &xp, &st, 0, NULL, &d, g_s);
            kcuda_bn_train_shared(1, NULL, &cp, NULL, NULL, NULL, NULL, &yp, NULL, NULL, NULL, &st, &bd, g_s);
        }, [] {});
        row(mx ? "maxpool+stats, coefs" : "avgpool+stats, coefs", shape, "poolbn", us, 4.0 * (nx + 2 * ny),
            rel_err(coef.down(), rcoef));
        /* the pool running the batch norm's forward too (rt_exec_node.takers): one launch */
        const kbn_taker tk = {coef.d, NULL, NULL, NULL, NULL, NULL, NULL, bd.eps, bd.momentum};
        us = time_us([&] { kcuda_pool_forward_stats(1, mx, &y.d, &xp, &st, 1, &tk, &d, g_s); }, [] {});
        row(mx ? "maxpool+stats+coefs" : "avgpool+stats+coefs", shape, "poolbn", us, 4.0 * (nx + ny),
            rel_err(coef.down(), rcoef));
    }
    cudaFree(st);
}

/* ---- the mixed op: 7 candidates of one edge ---- */
static void mixed_rows(int N, int C, int H) {
    const int n = 7, O = 8;
    const int64_t len = (int64_t)N * C * H * H;
    char shape[64];
    snprintf(shape, sizeof shape, "7 x %dx%dx%dx%d", N, C, H, H);
    std::vector<buf *> xs, dxs;
    const float *xd[n];
    float *dxd[n];
    for (int i = 0; i < n; i++) {
        xs.push_back(new buf(len, -1, 1, 40 + i));
        dxs.push_back(new buf(len));
        xd[i] = xs[i]->d;
        dxd[i] = dxs[i]->d;
    }
    buf alpha(O, -1, 1, 50), sm(O), y(len), dy(len, -1, 1, 51), da(O);
    const int64_t cols[n] = {1, 2, 3, 4, 5, 6, 7};
    double us = time_us([&] { kcuda_mixed_forward(y.d, sm.d, alpha.d, xd, cols, n, O, len, NULL, 0, 0, g_s); }, [] {});
    row("mixed forward", shape, "", us, 4.0 * (n + 1) * len, 0.0);
    us = time_us([&] { kcuda_mixed_backward(dxd, da.d, dy.d, xd, sm.d, cols, n, O, len, (1u << n) - 1, NULL, 0, 0, g_s); },
                 [&] { CK(cudaMemsetAsync(da.d, 0, O * sizeof(float), g_s)); });
    row("mixed backward", shape, "", us, 4.0 * (2 * n + 1) * len, 0.0);
    for (int i = 0; i < n; i++) {
        delete xs[i];
        delete dxs[i];
    }
}

/* ---- batched launches (kcuda_*_batch): NB problems of one shape, the NB single calls one
 * after another against the one batched call, both timed as a whole (the time of NB
 * problems), the batched results checked against the single ones (err: relative, 0 when
 * the bits agree, which they must). The depthwise rows at the sep_conv_3x3 / dil_conv_5x5
 * shapes, the own 1x1 (variant own1x1), the deferred batch norm's coefficients and its
 * scaled backward (what a mixed edge's candidates run), the pools, the mixed ops. ---- */
#define NB 8
struct many {
    std::vector<buf *> b;
    std::vector<float *> p;
    many(int n, size_t len, float lo, float hi, uint64_t seed) {
        for (int i = 0; i < n; i++) {
            b.push_back(new buf(len, lo, hi, seed + 17 * (uint64_t)i));
            p.push_back(b.back()->d);
        }
    }
    ~many() {
        for (buf *x : b) delete x;
    }
    float *const *w() { return p.data(); }
    const float *const *r() { return (const float *const *)p.data(); }
    double err_vs(const many &o) const {
        double e = 0;
        for (size_t i = 0; i < b.size(); i++) e = std::max(e, rel_err(b[i]->down(), o.b[i]->down()));
        return e;
    }
};

/* exact: the batched results must be the single ones' bits; else (the cuBLAS 1x1s batched:
 * another GEMM call, another kernel choice) within 1e-5 relative */
static void batch_pair(const char *name, const char *shape, const char *variant, double us1, double usb, double err,
                       bool exact = true) {
    char n1[40], nb[40];
    snprintf(n1, sizeof n1, "%s x%d single", name, NB);
    snprintf(nb, sizeof nb, "%s x%d batch", name, NB);
    if (const char *e = kcuda_last_error()) {
        fprintf(stderr, "%s %s: CUDA error: %s\n", name, shape, e);
        exit(1);
    }
    printf("%-30s %-22s %-8s %9.1f us\n", n1, shape, variant, us1);
    printf("%-30s %-22s %-8s %9.1f us  %.2fx  err %.1e%s\n", nb, shape, variant, usb, us1 / usb, err,
           exact && err != 0 ? "  BAD (the bits must agree)" : !exact && !(err <= 1e-5) ? "  BAD (beyond 1e-5)" : "");
    fflush(stdout);
}

static void batch_rows(const char *variant, int C, int H) {
    char shape[64];
    snprintf(shape, sizeof shape, "64x%dx%dx%d", C, H, H);
    const int64_t n = (int64_t)64 * C * H * H;
    /* depthwise 3x3 and dilated 5x5 (ReLU fused, as in the supernet) */
    const int dws[2][3] = {{3, 1, 1}, {5, 4, 2}}; /* R, pad, dil */
    const bool only_1x1 = kcuda_batch_cublas(); /* variant cublasb: only the 1x1 rows change */
    for (const auto &k : dws) {
        if (only_1x1) break;
        kconv2d_desc d = {64, C, H, H, C, k[0], k[0], 0, 0, 1, 1, k[1], k[1], k[2], k[2], C};
        kconv2d_desc_finish(&d);
        if (!kcuda_conv2d_batch_ok(&d, 1)) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "dw%d fwd", k[0]);
        many x(NB, n, -1, 1, 100), w(NB, (size_t)C * k[0] * k[0], -.5f, .5f, 200), y1(NB, n, 0, 0, 0), y2(NB, n, 0, 0, 0);
        double u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_relu_forward(y1.p[i], x.p[i], w.p[i], &d, NULL, g_s); }, [] {});
        double ub = time_us([&] { kcuda_conv2d_forward_batch(NB, y2.w(), x.r(), w.r(), &d, 1, g_s); }, [] {});
        batch_pair(nm, shape, variant, u1, ub, y2.err_vs(y1));
        snprintf(nm, sizeof nm, "dw%d data grad", k[0]);
        many dy(NB, n, -1, 1, 300), dx1(NB, n, 0, 0, 0), dx2(NB, n, 0, 0, 0);
        u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_backward_data_set(dx1.p[i], dy.p[i], w.p[i], x.p[i], &d, NULL, g_s); }, [] {});
        ub = time_us([&] { kcuda_conv2d_backward_data_batch(NB, dx2.w(), dy.r(), w.r(), x.r(), &d, 1, g_s); }, [] {});
        batch_pair(nm, shape, variant, u1, ub, dx2.err_vs(dx1));
        snprintf(nm, sizeof nm, "dw%d filter grad", k[0]);
        many dw1(NB, (size_t)C * k[0] * k[0], 0, 0, 0), dw2(NB, (size_t)C * k[0] * k[0], 0, 0, 0);
        auto z = [&](many &m) { for (buf *b : m.b) CK(cudaMemsetAsync(b->d, 0, b->n() * sizeof(float), g_s)); };
        u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_relu_backward_filter(dw1.p[i], dy.p[i], x.p[i], &d, NULL, g_s); }, [&] { z(dw1); });
        ub = time_us([&] { kcuda_conv2d_backward_filter_batch(NB, dw2.w(), dy.r(), x.r(), &d, 1, g_s); }, [&] { z(dw2); });
        batch_pair(nm, shape, variant, u1, ub, dw2.err_vs(dw1));
    }
    /* 1x1 C -> C (the own kernels, or cuBLAS with DARTSC_CUDA_BATCH_CUBLAS: all three
       passes), and FactorizedReduce's strided C -> C/2 (cuBLAS batched only) */
    for (int strided = 0; strided < 2; strided++) {
        const int K = strided ? C / 2 : C, st = strided ? 2 : 1;
        kconv2d_desc d = {64, C, H, H, K, 1, 1, 0, 0, st, st, 0, 0, 1, 1, 1};
        kconv2d_desc_finish(&d);
        if (!kcuda_conv2d_batch_ok(&d, 0)) continue;
        const bool exact = !kcuda_batch_cublas();
        const int64_t ny = (int64_t)64 * K * d.P * d.Q;
        buf scr((size_t)kcuda_conv2d_scratch_floats(&d) + 1, 0, 0, 0);
        many x(NB, n, -1, 1, 400), w(NB, (size_t)C * K, -.5f, .5f, 500), y1(NB, ny, 0, 0, 0), y2(NB, ny, 0, 0, 0);
        double u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_forward(y1.p[i], x.p[i], w.p[i], &d, scr.d, g_s); }, [] {});
        double ub = time_us([&] { kcuda_conv2d_forward_batch(NB, y2.w(), x.r(), w.r(), &d, 0, g_s); }, [] {});
        batch_pair(strided ? "1x1/2 fwd" : "1x1 fwd", shape, variant, u1, ub, y2.err_vs(y1), exact);
        if (exact) continue; /* the own kernels' backwards: the supernet rows */
        many dy(NB, ny, -1, 1, 600), dx1(NB, n, 0, 0, 0), dx2(NB, n, 0, 0, 0);
        u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_backward_data_set(dx1.p[i], dy.p[i], w.p[i], NULL, &d, scr.d, g_s); }, [] {});
        ub = time_us([&] { kcuda_conv2d_backward_data_batch(NB, dx2.w(), dy.r(), w.r(), NULL, &d, 1, g_s); }, [] {});
        batch_pair(strided ? "1x1/2 data grad" : "1x1 data grad", shape, variant, u1, ub, dx2.err_vs(dx1), exact);
        many dw1(NB, (size_t)C * K, 0, 0, 0), dw2(NB, (size_t)C * K, 0, 0, 0);
        auto z = [&](many &m) { for (buf *b : m.b) CK(cudaMemsetAsync(b->d, 0, b->n() * sizeof(float), g_s)); };
        u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_conv2d_backward_filter(dw1.p[i], dy.p[i], x.p[i], &d, scr.d, g_s); }, [&] { z(dw1); });
        ub = time_us([&] { kcuda_conv2d_backward_filter_batch(NB, dw2.w(), dy.r(), x.r(), &d, 0, g_s); }, [&] { z(dw2); });
        batch_pair(strided ? "1x1/2 filter grad" : "1x1 filter grad", shape, variant, u1, ub, dw2.err_vs(dw1), exact);
    }
    if (only_1x1) return;
    /* batch norm: the deferred coefficients and the scaled backward (no affine, as DARTS') */
    {
        kbn_desc d = {64, C, H * H, 1e-5f, 0.1f};
        if (kcuda_bn_batch_ok(&d)) {
            many x(NB, n, -1, 3, 600), c1(NB, 3 * (size_t)C, 0, 0, 0), c2(NB, 3 * (size_t)C, 0, 0, 0);
            many sm(NB, C, 0, 0, 0), si(NB, C, 0, 0, 0);
            double u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_bn_coefs_train(c1.p[i], sm.p[i], si.p[i], NULL, NULL, x.p[i], NULL, NULL, &d, g_s); }, [] {});
            double ub = time_us([&] { kcuda_bn_coefs_train_batch(NB, c2.w(), sm.w(), si.w(), NULL, NULL, x.r(), NULL, NULL, &d, g_s); }, [] {});
            batch_pair("bn coefs", shape, variant, u1, ub, c2.err_vs(c1));
            many dy(NB, n, -1, 1, 700), sc(NB, 1, .1f, .9f, 800), dx1(NB, n, 0, 0, 0), dx2(NB, n, 0, 0, 0);
            u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_bn_backward_scaled(dx1.p[i], NULL, NULL, dy.p[i], sc.p[i], x.p[i], NULL, sm.p[i], si.p[i], &d, 0, g_s); }, [] {});
            ub = time_us([&] { kcuda_bn_backward_batch(NB, dx2.w(), NULL, NULL, dy.r(), sc.r(), x.r(), NULL, sm.r(), si.r(), &d, 1, g_s); }, [] {});
            batch_pair("bn bwd scaled", shape, variant, u1, ub, dx2.err_vs(dx1));
        }
    }
    /* max pool 3x3 stride 1 */
    {
        kpool_desc d = {64, C, H, H, H, H, 3, 1, 1};
        many x(NB, n, -1, 1, 900), y1(NB, n, 0, 0, 0), y2(NB, n, 0, 0, 0);
        double u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_maxpool_forward(y1.p[i], x.p[i], &d, g_s); }, [] {});
        double ub = time_us([&] { kcuda_maxpool_forward_batch(NB, y2.w(), x.r(), &d, g_s); }, [] {});
        batch_pair("maxpool fwd", shape, variant, u1, ub, y2.err_vs(y1));
    }
    /* mixed ops of 7 candidates (an edge's), forward, and backward with the alpha gradient */
    {
        const int nc = 7, O = 8;
        const int64_t cols[nc] = {1, 2, 3, 4, 5, 6, 7};
        if (kcuda_mixed_batch_ok(nc, O, n)) {
            many xs(NB * nc, n, -1, 1, 1000), alpha(NB, O, -1, 1, 1100), sm1(NB, O, 0, 0, 0), sm2(NB, O, 0, 0, 0);
            many y1(NB, n, 0, 0, 0), y2(NB, n, 0, 0, 0);
            double u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_mixed_forward(y1.p[i], sm1.p[i], alpha.p[i], xs.r() + i * nc, cols, nc, O, n, NULL, 0, 0, g_s); }, [] {});
            double ub = time_us([&] { kcuda_mixed_forward_batch(NB, y2.w(), sm2.w(), alpha.r(), xs.r(), cols, nc, O, n, NULL, 0, 0, g_s); }, [] {});
            batch_pair("mixed fwd", shape, variant, u1, ub, std::max(y2.err_vs(y1), sm2.err_vs(sm1)));
            many dy(NB, n, -1, 1, 1200), dx1(NB * nc, n, 0, 0, 0), dx2(NB * nc, n, 0, 0, 0), da1(NB, O, 0, 0, 0), da2(NB, O, 0, 0, 0);
            auto z = [&](many &m) { for (buf *b : m.b) CK(cudaMemsetAsync(b->d, 0, b->n() * sizeof(float), g_s)); };
            const unsigned set = (1u << nc) - 1;
            u1 = time_us([&] { for (int i = 0; i < NB; i++) kcuda_mixed_backward(dx1.w() + i * nc, da1.p[i], dy.p[i], xs.r() + i * nc, sm1.p[i], cols, nc, O, n, set, NULL, 0, 0, g_s); }, [&] { z(da1); });
            ub = time_us([&] { kcuda_mixed_backward_batch(NB, dx2.w(), da2.w(), dy.r(), xs.r(), sm2.r(), cols, nc, O, n, set, NULL, 0, 0, g_s); }, [&] { z(da2); });
            batch_pair("mixed bwd", shape, variant, u1, ub, std::max(dx2.err_vs(dx1), da2.err_vs(da1)));
        }
    }
}

/* only: 0 every kernel, 1 the 1x1 convolutions, 2 the depthwise ones, 3 the depthwise
 * ones and the batch norms */
static void all_rows(const char *variant, int only) {
    static const int planes[3][3] = {{16, 32, 0}, {32, 16, 0}, {64, 8, 0}}; /* C, H */
    for (int i = 0; i < 3; i++) {
        const int C = planes[i][0], H = planes[i][1];
        if (only != 2) {
            conv_rows(variant, 64, C, H, C, 1, 1, 0, 1, 1);     /* 1x1 inside sep/dil convs */
            conv_rows(variant, 64, 4 * C, H, C, 1, 1, 0, 1, 1); /* preprocessing 4C -> C */
        }
        if (only == 1) continue;
        if (only == 3) bn_rows(variant, 64, C, H * H);
        conv_rows(variant, 64, C, H, C, 3, 1, 1, 1, C);         /* sep_conv_3x3 */
        conv_rows(variant, 64, C, H, C, 5, 1, 2, 1, C);         /* sep_conv_5x5 */
        conv_rows(variant, 64, C, H, C, 3, 1, 2, 2, C);         /* dil_conv_3x3 */
        conv_rows(variant, 64, C, H, C, 5, 1, 4, 2, C);         /* dil_conv_5x5 */
        conv_rows(variant, 64, C, H, C, 3, 2, 1, 1, C);         /* reduction: stride 2 */
        if (only >= 2) continue;
        bn_rows(variant, 64, C, H * H);
        pool_rows(64, C, H, 1);
        pool_rows(64, C, H, 2);
        mixed_rows(64, C, H);
    }
    if (!only) conv_rows(variant, 64, 32, 32, 16, 1, 2, 0, 1, 1); /* FactorizedReduce's strided 1x1 */
}

int main(int argc, char **argv) {
    if (argc > 1) g_reps = atoi(argv[1]) > 0 ? atoi(argv[1]) : g_reps;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        puts("SKIP: no usable CUDA device");
        return 77;
    }
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    CK(cudaStreamCreateWithFlags(&g_s, cudaStreamNonBlocking));
    if (cudnnCreate(&dnn) != CUDNN_STATUS_SUCCESS || cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return 1;
    cudnnSetStream(dnn, g_s);
    cublasSetStream(blas, g_s);
    cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("# %s, %d SMs; median of %d runs each\n", prop.name, prop.multiProcessorCount, g_reps);
    /* each variant: which of the switches kcuda_init reads it sets, and the rows they change */
    static const char *const sw[5] = {"DARTSC_CUDA_OWN_1X1", "DARTSC_CUDA_DW_FILTER_PLANES", "DARTSC_CUDA_ONE_LAUNCH",
                                      "DARTSC_CUDA_BATCH_CUBLAS", "DARTSC_CUDA_DW_FILTER_U1"};
    /* only -1: no single-call rows (the switch changes only the batched calls) */
    static const struct { const char *name; unsigned on; int only; } variants[] = {
        {"default", 0, 0}, {"own1x1", 1, 1}, {"dwplanes", 2, 2}, {"1launch", 4, 3}, {"1l-own", 4 | 1, 1},
        {"cublasb", 8, -1}, {"dwu1", 16, 2}};
    for (const auto &v : variants) {
        for (int k = 0; k < 5; k++) {
            if (v.on >> k & 1) setenv(sw[k], "1", 1);
            else unsetenv(sw[k]);
        }
        if (kcuda_init(g_s, dnn, blas)) return 1;
        if (v.only >= 0) all_rows(v.name, v.only);
        if (v.on == 0 || v.on == 1 || v.on == 8) /* batched launches: the default, the own 1x1s, cuBLAS batched */
            for (int i = 0; i < 3; i++) batch_rows(v.name, 16 << i, 32 >> i);
        kcuda_shutdown();
    }
    for (int k = 0; k < 5; k++) unsetenv(sw[k]);
    cublasDestroy(blas);
    cudnnDestroy(dnn);
    cudaStreamDestroy(g_s);
    return 0;
}
