/* conv.cu — CUDA 2-D convolution, the twin of kernels/cpu/conv.c, with the same three
 * paths: depthwise (groups == C == K, the hot op of DARTS' separable and dilated
 * convolutions) by our own kernels; 1x1 / stride 1 / pad 0 / dense by cuBLAS; all the
 * rest (dense kxk, grouped, asymmetric, strided 1x1) by cuDNN's legacy convolution API
 * with algorithms chosen once per descriptor and cached, restricted to deterministic
 * FP32-FMA algorithms (no TF32) so results repeat bit for bit and stay close to the CPU.
 *
 * Backward passes accumulate: cuDNN and cuBLAS with beta = 1, our kernels by +=. */
#include <string.h>

#include "kcuda_internal.cuh"

static int is_pointwise(const kconv2d_desc *d) {
    return d->R == 1 && d->S == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0 &&
           d->groups == 1;
}
static int is_depthwise(const kconv2d_desc *d) { return d->groups == d->C && d->K == d->C; }

/* ---- depthwise kernels ---- */

/* One thread per output (plane, p, q); taps summed in the CPU's (r, s) order. */
__global__ static void dw_fwd_k(float *y, const float *x, const float *w, kconv2d_desc d) {
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / PQ;
        const int p = (int)(i % PQ / d.Q), q = (int)(i % d.Q), c = (int)(pl % d.C);
        const float *xp = x + pl * d.H * d.W;
        const float *wc = w + (int64_t)c * d.R * d.S;
        float acc = 0.0f;
        for (int r = 0; r < d.R; r++) {
            const int ih = p * d.stride_h - d.pad_h + r * d.dil_h;
            if (ih < 0 || ih >= d.H) continue;
            for (int s = 0; s < d.S; s++) {
                const int iw = q * d.stride_w - d.pad_w + s * d.dil_w;
                if (iw < 0 || iw >= d.W) continue;
                acc += wc[r * d.S + s] * xp[(int64_t)ih * d.W + iw];
            }
        }
        y[i] = acc;
    }
}

/* One thread per input (plane, h, w) gathers every output that read it, so no two
 * threads write one element. The CPU scatters rows p in increasing order, i.e. taps r
 * in decreasing order, and s increasing within a row; we add in that same order into the
 * running value of dx. */
__global__ static void dw_bwd_data_k(float *dx, const float *dy, const float *w, kconv2d_desc d) {
    const int64_t HW = (int64_t)d.H * d.W, total = (int64_t)d.N * d.C * HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / HW;
        const int h = (int)(i % HW / d.W), wi = (int)(i % d.W), c = (int)(pl % d.C);
        const float *yp = dy + pl * d.P * d.Q;
        const float *wc = w + (int64_t)c * d.R * d.S;
        float v = dx[i];
        for (int r = d.R - 1; r >= 0; r--) {
            const int tp = h + d.pad_h - r * d.dil_h;
            if (tp < 0 || tp % d.stride_h) continue;
            const int p = tp / d.stride_h;
            if (p >= d.P) continue;
            for (int s = 0; s < d.S; s++) {
                const int tq = wi + d.pad_w - s * d.dil_w;
                if (tq < 0 || tq % d.stride_w) continue;
                const int q = tq / d.stride_w;
                if (q >= d.Q) continue;
                v += wc[r * d.S + s] * yp[(int64_t)p * d.Q + q];
            }
        }
        dx[i] = v;
    }
}

/* One block per tap (c, r, s): threads take (n, p, q) in a fixed grid-stride pattern
 * and sum dy * x in double; a fixed tree combines them. Deterministic, no atomics. */
__global__ static void dw_bwd_filter_k(float *dw, const float *dy, const float *x, kconv2d_desc d) {
    __shared__ double sh[KCUDA_THREADS];
    const int t = blockIdx.x;
    const int c = t / (d.R * d.S), r = t / d.S % d.R, s = t % d.S;
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * PQ;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < total; j += blockDim.x) {
        const int n = (int)(j / PQ), p = (int)(j % PQ / d.Q), q = (int)(j % d.Q);
        const int ih = p * d.stride_h - d.pad_h + r * d.dil_h, iw = q * d.stride_w - d.pad_w + s * d.dil_w;
        if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
        const int64_t pl = (int64_t)n * d.C + c;
        acc += (double)dy[pl * PQ + (int64_t)p * d.Q + q] * (double)x[(pl * d.H + ih) * d.W + iw];
    }
    const double tot = kcuda_block_sum(acc, sh);
    if (threadIdx.x == 0) dw[t] += (float)tot;
}

/* ---- cuDNN descriptors and algorithms, cached per kconv2d_desc ---- */
typedef struct conv_entry {
    kconv2d_desc d;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_bytes; /* max over the three */
    int ok;          /* 0: setting it up failed (the error is recorded); never used */
} conv_entry;

#define CONV_CACHE_MAX 256
#define CONV_WS_CAP ((size_t)256 << 20) /* never pick an algorithm needing more workspace */
static conv_entry g_cache[CONV_CACHE_MAX];
static int g_ncache;

void kcuda_conv_shutdown(void) {
    for (int i = 0; i < g_ncache; i++) { /* teardown: failures change nothing */
        cudnnDestroyTensorDescriptor(g_cache[i].xd);
        cudnnDestroyTensorDescriptor(g_cache[i].yd);
        cudnnDestroyFilterDescriptor(g_cache[i].wd);
        cudnnDestroyConvolutionDescriptor(g_cache[i].cd);
    }
    g_ncache = 0;
}

/* Index of the first result that succeeded, is deterministic, uses FMA math (no
 * TF32) and fits the cap; failing that, the first deterministic success; -1 if none. */
template <typename Perf> static int pick_algo(const Perf *perf, int n) {
    for (int i = 0; i < n; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
            perf[i].mathType == CUDNN_FMA_MATH && perf[i].memory <= CONV_WS_CAP)
            return i;
    for (int i = 0; i < n; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC &&
            perf[i].memory <= CONV_WS_CAP)
            return i;
    return -1;
}

static conv_entry *conv_lookup(const kconv2d_desc *d) {
    for (int i = 0; i < g_ncache; i++)
        if (memcmp(&g_cache[i].d, d, sizeof *d) == 0) return g_cache[i].ok ? &g_cache[i] : NULL;
    if (!kcuda_g.dnn) KCUDA_FAIL_("kcuda_conv2d", "kcuda_init was not called", return NULL);
    if (g_ncache == CONV_CACHE_MAX) KCUDA_FAIL_("kcuda_conv2d", "too many distinct convolution shapes", return NULL);
    conv_entry *e = &g_cache[g_ncache];
    memset(e, 0, sizeof *e);
    e->d = *d;
    cudnnCheckR(cudnnCreateTensorDescriptor(&e->xd), NULL);
    cudnnCheckR(cudnnCreateTensorDescriptor(&e->yd), NULL);
    cudnnCheckR(cudnnCreateFilterDescriptor(&e->wd), NULL);
    cudnnCheckR(cudnnCreateConvolutionDescriptor(&e->cd), NULL);
    g_ncache++; /* from here on shutdown destroys the descriptors even if a later step fails */
    cudnnCheckR(cudnnSetTensor4dDescriptor(e->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->N, d->C, d->H, d->W), NULL);
    cudnnCheckR(cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->N, d->K, d->P, d->Q), NULL);
    cudnnCheckR(cudnnSetFilter4dDescriptor(e->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->K, d->C / d->groups, d->R, d->S),
                NULL);
    cudnnCheckR(cudnnSetConvolution2dDescriptor(e->cd, d->pad_h, d->pad_w, d->stride_h, d->stride_w, d->dil_h, d->dil_w,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                NULL);
    cudnnCheckR(cudnnSetConvolutionGroupCount(e->cd, d->groups), NULL);
    cudnnCheckR(cudnnSetConvolutionMathType(e->cd, CUDNN_FMA_MATH), NULL);

    int got = 0, k;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnCheckR(cudnnGetConvolutionForwardAlgorithm_v7(kcuda_g.dnn, e->xd, e->wd, e->cd, e->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp), NULL);
    if ((k = pick_algo(fp, got)) < 0) KCUDA_FAIL_("cudnnGetConvolutionForwardAlgorithm_v7", "no deterministic algorithm", return NULL);
    e->fwd = fp[k].algo;
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnCheckR(cudnnGetConvolutionBackwardDataAlgorithm_v7(kcuda_g.dnn, e->wd, e->yd, e->cd, e->xd,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, dp), NULL);
    if ((k = pick_algo(dp, got)) < 0) KCUDA_FAIL_("cudnnGetConvolutionBackwardDataAlgorithm_v7", "no deterministic algorithm", return NULL);
    e->bwd_data = dp[k].algo;
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnnCheckR(cudnnGetConvolutionBackwardFilterAlgorithm_v7(kcuda_g.dnn, e->xd, e->yd, e->cd, e->wd,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, wp), NULL);
    if ((k = pick_algo(wp, got)) < 0) KCUDA_FAIL_("cudnnGetConvolutionBackwardFilterAlgorithm_v7", "no deterministic algorithm", return NULL);
    e->bwd_filter = wp[k].algo;
    /* The heuristics' memory field is an estimate; ask for the exact sizes. */
    size_t a = 0, b = 0, c = 0;
    cudnnCheckR(cudnnGetConvolutionForwardWorkspaceSize(kcuda_g.dnn, e->xd, e->wd, e->cd, e->yd, e->fwd, &a), NULL);
    cudnnCheckR(cudnnGetConvolutionBackwardDataWorkspaceSize(kcuda_g.dnn, e->wd, e->yd, e->cd, e->xd, e->bwd_data, &b), NULL);
    cudnnCheckR(cudnnGetConvolutionBackwardFilterWorkspaceSize(kcuda_g.dnn, e->xd, e->yd, e->cd, e->wd, e->bwd_filter, &c),
                NULL);
    e->ws_bytes = a > b ? a : b;
    if (c > e->ws_bytes) e->ws_bytes = c;
    e->ok = 1;
    return e;
}

extern "C" size_t kcuda_conv2d_scratch_floats(const kconv2d_desc *d) {
    if (is_pointwise(d) || is_depthwise(d)) return 0;
    conv_entry *e = conv_lookup(d);
    return e ? (e->ws_bytes + sizeof(float) - 1) / sizeof(float) : 0;
}

/* ---- entry points ---- */
extern "C" void kcuda_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch,
                                     cudaStream_t s) {
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        const int64_t total = (int64_t)d->N * d->C * PQ;
        if (total <= 0) return;
        dw_fwd_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(y, x, w, *d);
        launchCheck();
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    if (is_pointwise(d)) {
        /* y_n (K,HW) = w (K,C) x_n (C,HW); column-major: y_n^T (HW,K) = x_n^T (HW,C) w^T (C,K) */
        cublasCheck(cublasSetStream(kcuda_g.blas, s));
        cublasCheck(cublasSgemmStridedBatched(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)HW, d->K, d->C, &one, x, (int)HW,
                                              (long long)d->C * HW, w, d->C, 0, &zero, y, (int)HW, (long long)d->K * HW,
                                              d->N));
        return;
    }
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionForward(kcuda_g.dnn, &one, e->xd, x, e->wd, w, e->cd, e->fwd, scratch, e->ws_bytes, &zero,
                                       e->yd, y));
}

extern "C" void kcuda_conv2d_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d,
                                           float *scratch, cudaStream_t s) {
    if (!dx) return;
    const int64_t HW = (int64_t)d->H * d->W;
    if (is_depthwise(d)) {
        const int64_t total = (int64_t)d->N * d->C * HW;
        if (total <= 0) return;
        dw_bwd_data_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(dx, dy, w, *d);
        launchCheck();
        return;
    }
    const float one = 1.0f;
    if (is_pointwise(d)) {
        /* dx_n (C,HW) += w^T (C,K) dy_n (K,HW); column-major: dx_n^T (HW,C) += dy_n^T (HW,K) w (K,C) */
        cublasCheck(cublasSetStream(kcuda_g.blas, s));
        cublasCheck(cublasSgemmStridedBatched(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)HW, d->C, d->K, &one, dy,
                                              (int)HW, (long long)d->K * HW, w, d->C, 0, &one, dx, (int)HW,
                                              (long long)d->C * HW, d->N));
        return;
    }
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionBackwardData(kcuda_g.dnn, &one, e->wd, w, e->yd, dy, e->cd, e->bwd_data, scratch,
                                            e->ws_bytes, &one, e->xd, dx));
}

extern "C" void kcuda_conv2d_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                             float *scratch, cudaStream_t s) {
    if (!dw) return;
    const int64_t HW = (int64_t)d->H * d->W;
    if (is_depthwise(d)) {
        const int taps = d->C * d->R * d->S;
        if (taps <= 0) return;
        dw_bwd_filter_k<<<(unsigned)taps, KCUDA_THREADS, 0, s>>>(dw, dy, x, *d);
        launchCheck();
        return;
    }
    const float one = 1.0f;
    if (is_pointwise(d)) {
        /* dw (K,C) += sum_n dy_n (K,HW) x_n^T (HW,C); column-major: dw^T (C,K) += x_n (C,HW) dy_n^T (HW,K).
         * Samples one after another (beta = 1), as the CPU: a batched GEMM would race on dw. */
        cublasCheck(cublasSetStream(kcuda_g.blas, s));
        for (int n = 0; n < d->N; n++)
            cublasCheck(cublasSgemm(kcuda_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, d->C, d->K, (int)HW, &one,
                                    x + (int64_t)n * d->C * HW, (int)HW, dy + (int64_t)n * d->K * HW, (int)HW, &one, dw,
                                    d->C));
        return;
    }
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionBackwardFilter(kcuda_g.dnn, &one, e->xd, x, e->yd, dy, e->cd, e->bwd_filter, scratch,
                                              e->ws_bytes, &one, e->wd, dw));
}
