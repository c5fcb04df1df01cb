/* dnn.cc — cuemu's cuDNN (tests/cuemu/include/cudnn.h) on the CPU: grouped, strided, padded,
 * dilated 2-d cross-correlation over NCHW float tensors, forward and both gradients.
 *
 * Descriptors hold their settings; a pass checks that x, w, the convolution and y agree
 * (y = N x K x P x Q with P = 1 + (H + 2 pad_h - ((R - 1) dil_h + 1)) / stride_h, likewise
 * Q, C = groups x the filter's channels, K divisible by groups) and returns
 * CUDNN_STATUS_BAD_PARAM, with the reason on stderr, where they do not. It then reads alpha
 * and beta (host floats) and queues the pass on the handle's stream with cuemu::enqueue,
 * the shapes captured by value. When it runs, x, w and y must each lie inside one cudaMalloc
 * allocation, else it runs nothing and records cudaErrorIllegalAddress.
 *
 * Arithmetic, in float, in a fixed order (the algorithm asked for changes nothing):
 *   forward          y[n,k,p,q]  sums over (c, r, s) ascending;
 *   backward data    dx[n,c,h,w] sums over (k, r, s, p, q) ascending;
 *   backward filter  dw[k,c,r,s] sums over (n, p, q) ascending;
 * then out = alpha * sum + beta * out, and where beta == 0 out = alpha * sum, out never read. */
#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cudnn.h"
#include "cuemu.h"

struct cudnnContext {
    cudaStream_t stream = nullptr;
};
/* A 4-d NCHW float tensor or filter (a filter's K in n) */
struct cuemuDesc4d {
    bool set = false;
    int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnTensorStruct : cuemuDesc4d {};
struct cudnnFilterStruct : cuemuDesc4d {};
struct cudnnConvolutionStruct {
    bool set = false;
    int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
    int groups = 1;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

cudnnStatus_t fail(cudnnStatus_t st, const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cuemu::vreport(fn, fmt, ap);
    va_end(ap);
    return st;
}

/* Everything one pass needs, checked against each other. */
struct Conv {
    int N, C, H, W;  /* x */
    int K, Cg, R, S; /* w: K x C/groups x R x S */
    int P, Q;        /* y: N x K x P x Q */
    int ph, pw, sh, sw, dh, dw, G;
};

/* The output size along one axis, 0 where the dilated filter does not fit. */
int out_dim(int in, int pad, int filt, int dil, int stride) {
    const long long eff = (long long)(filt - 1) * dil + 1, span = (long long)in + 2LL * pad;
    return eff > span ? 0 : (int)(1 + (span - eff) / stride);
}

cudnnStatus_t describe(const char *fn, cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                       cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t y, Conv *out) {
    if (!h) return fail(CUDNN_STATUS_BAD_PARAM, fn, "handle is NULL");
    if (!x || !w || !cd || !y) return fail(CUDNN_STATUS_BAD_PARAM, fn, "a descriptor is NULL");
    if (!x->set || !w->set || !cd->set || !y->set)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "a descriptor was never set");
    Conv c{};
    c.N = x->n, c.C = x->c, c.H = x->h, c.W = x->w;
    c.K = w->n, c.Cg = w->c, c.R = w->h, c.S = w->w;
    c.ph = cd->pad_h, c.pw = cd->pad_w, c.sh = cd->stride_h, c.sw = cd->stride_w, c.dh = cd->dil_h, c.dw = cd->dil_w;
    c.G = cd->groups;
    if ((long long)c.Cg * c.G != c.C)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "x has %d channels but the filter %d per group x %d groups", c.C, c.Cg,
                    c.G);
    if (c.K % c.G != 0) return fail(CUDNN_STATUS_BAD_PARAM, fn, "%d filters do not split into %d groups", c.K, c.G);
    c.P = out_dim(c.H, c.ph, c.R, c.dh, c.sh);
    c.Q = out_dim(c.W, c.pw, c.S, c.dw, c.sw);
    if (c.P < 1 || c.Q < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "the dilated %dx%d filter does not fit the padded %dx%d input", c.R,
                    c.S, c.H, c.W);
    if (y->n != c.N || y->c != c.K || y->h != c.P || y->w != c.Q)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "y is %dx%dx%dx%d but x, w and the convolution give %dx%dx%dx%d", y->n,
                    y->c, y->h, y->w, c.N, c.K, c.P, c.Q);
    *out = c;
    return CUDNN_STATUS_SUCCESS;
}

/* The indices i in [0, n) with 0 <= i stride + off < len: [*lo, *hi). */
void span(int n, int stride, long long off, int len, int *lo, int *hi) {
    long long a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    long long b = off > len - 1 ? 0 : (len - 1 - off) / stride + 1;
    if (b > n) b = n;
    *lo = (int)a;
    *hi = (int)(b > a ? b : a);
}

void store(float *out, const std::vector<float> &acc, float alpha, float beta) {
    for (size_t i = 0; i < acc.size(); i++) out[i] = beta == 0.0f ? alpha * acc[i] : alpha * acc[i] + beta * out[i];
}

/* y (N,K,P,Q) = conv(x (N,C,H,W), w (K,Cg,R,S)) */
void forward(const Conv &c, float alpha, float beta, const float *x, const float *w, float *y) {
    const int Kg = c.K / c.G;
    const long long HW = (long long)c.H * c.W, PQ = (long long)c.P * c.Q;
    std::vector<float> acc((size_t)PQ);
    for (int n = 0; n < c.N; n++)
        for (int k = 0; k < c.K; k++) {
            const int g = k / Kg;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int ch = 0; ch < c.Cg; ch++) {
                const float *xc = x + ((long long)n * c.C + (long long)g * c.Cg + ch) * HW;
                for (int r = 0; r < c.R; r++) {
                    const long long ih0 = (long long)r * c.dh - c.ph;
                    int p0, p1;
                    span(c.P, c.sh, ih0, c.H, &p0, &p1);
                    for (int s = 0; s < c.S; s++) {
                        const long long iw0 = (long long)s * c.dw - c.pw;
                        int q0, q1;
                        span(c.Q, c.sw, iw0, c.W, &q0, &q1);
                        const float wv = w[(((long long)k * c.Cg + ch) * c.R + r) * c.S + s];
                        for (int p = p0; p < p1; p++) {
                            const long long row = ((long long)p * c.sh + ih0) * c.W + iw0;
                            float *a = acc.data() + (long long)p * c.Q;
                            for (int q = q0; q < q1; q++) a[q] += xc[row + (long long)q * c.sw] * wv;
                        }
                    }
                }
            }
            store(y + ((long long)n * c.K + k) * PQ, acc, alpha, beta);
        }
}

/* dx (N,C,H,W) from dy (N,K,P,Q) and w (K,Cg,R,S) */
void backward_data(const Conv &c, float alpha, float beta, const float *w, const float *dy, float *dx) {
    const int Kg = c.K / c.G;
    const long long HW = (long long)c.H * c.W, PQ = (long long)c.P * c.Q;
    std::vector<float> acc((size_t)HW);
    for (int n = 0; n < c.N; n++)
        for (int ci = 0; ci < c.C; ci++) {
            const int g = ci / c.Cg, ch = ci % c.Cg;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int kk = 0; kk < Kg; kk++) {
                const int k = g * Kg + kk;
                const float *dyk = dy + ((long long)n * c.K + k) * PQ;
                for (int r = 0; r < c.R; r++) {
                    const long long ih0 = (long long)r * c.dh - c.ph;
                    int p0, p1;
                    span(c.P, c.sh, ih0, c.H, &p0, &p1);
                    for (int s = 0; s < c.S; s++) {
                        const long long iw0 = (long long)s * c.dw - c.pw;
                        int q0, q1;
                        span(c.Q, c.sw, iw0, c.W, &q0, &q1);
                        const float wv = w[(((long long)k * c.Cg + ch) * c.R + r) * c.S + s];
                        for (int p = p0; p < p1; p++) {
                            const long long row = ((long long)p * c.sh + ih0) * c.W + iw0;
                            const float *dyrow = dyk + (long long)p * c.Q;
                            for (int q = q0; q < q1; q++) acc[(size_t)(row + (long long)q * c.sw)] += dyrow[q] * wv;
                        }
                    }
                }
            }
            store(dx + ((long long)n * c.C + ci) * HW, acc, alpha, beta);
        }
}

/* dw (K,Cg,R,S) from x (N,C,H,W) and dy (N,K,P,Q) */
void backward_filter(const Conv &c, float alpha, float beta, const float *x, const float *dy, float *dw) {
    const int Kg = c.K / c.G;
    const long long HW = (long long)c.H * c.W, PQ = (long long)c.P * c.Q;
    for (int k = 0; k < c.K; k++) {
        const int g = k / Kg;
        for (int ch = 0; ch < c.Cg; ch++)
            for (int r = 0; r < c.R; r++) {
                const long long ih0 = (long long)r * c.dh - c.ph;
                int p0, p1;
                span(c.P, c.sh, ih0, c.H, &p0, &p1);
                for (int s = 0; s < c.S; s++) {
                    const long long iw0 = (long long)s * c.dw - c.pw;
                    int q0, q1;
                    span(c.Q, c.sw, iw0, c.W, &q0, &q1);
                    float acc = 0.0f;
                    for (int n = 0; n < c.N; n++) {
                        const float *xc = x + ((long long)n * c.C + (long long)g * c.Cg + ch) * HW;
                        const float *dyk = dy + ((long long)n * c.K + k) * PQ;
                        for (int p = p0; p < p1; p++) {
                            const long long row = ((long long)p * c.sh + ih0) * c.W + iw0;
                            const float *dyrow = dyk + (long long)p * c.Q;
                            for (int q = q0; q < q1; q++) acc += dyrow[q] * xc[row + (long long)q * c.sw];
                        }
                    }
                    float *o = dw + (((long long)k * c.Cg + ch) * c.R + r) * c.S + s;
                    *o = beta == 0.0f ? alpha * acc : alpha * acc + beta * *o;
                }
            }
    }
}

enum class Pass { forward, backward_data, backward_filter };

/* Checks the three tensors at run time, then runs the pass. in1/in2/out as the pass's
 * signature orders them: forward (x, w, y), backward data (w, dy, dx), backward filter
 * (x, dy, dw). */
void run(const char *fn, Pass pass, const Conv &c, float alpha, float beta, const float *in1, const float *in2,
         float *out) {
    const long long nx = (long long)c.N * c.C * c.H * c.W, nw = (long long)c.K * c.Cg * c.R * c.S,
                    ny = (long long)c.N * c.K * c.P * c.Q;
    const long long n1 = pass == Pass::backward_data ? nw : nx;
    const long long n2 = pass == Pass::forward ? nw : ny;
    const long long no = pass == Pass::forward ? ny : pass == Pass::backward_data ? nx : nw;
    const char *bad = nullptr;
    if (!cuemu::device_extent(in1, (size_t)n1 * sizeof(float)))
        bad = "the first input";
    else if (!cuemu::device_extent(in2, (size_t)n2 * sizeof(float)))
        bad = "the second input";
    else if (!cuemu::device_extent(out, (size_t)no * sizeof(float)))
        bad = "the output";
    if (bad) {
        char what[160];
        std::snprintf(what, sizeof what, "%s: %s is not inside one cudaMalloc allocation", fn, bad);
        cuemu::set_error(cudaErrorIllegalAddress, what);
        return;
    }
    switch (pass) {
    case Pass::forward: forward(c, alpha, beta, in1, in2, out); break;
    case Pass::backward_data: backward_data(c, alpha, beta, in1, in2, out); break;
    case Pass::backward_filter: backward_filter(c, alpha, beta, in1, in2, out); break;
    }
}

/* A pass's descriptors in describe's order: x, w, the convolution, y (the backward passes:
 * dx, w, the convolution, dy). */
struct Descs {
    cudnnTensorDescriptor_t x;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t cd;
    cudnnTensorDescriptor_t y;
};

cudnnStatus_t launch(const char *fn, Pass pass, cudnnHandle_t h, const Descs &d, int algo, int algo_count,
                     const void *alpha, const void *beta, const void *in1, const void *in2, void *out) {
    Conv c{};
    const cudnnStatus_t st = describe(fn, h, d.x, d.w, d.cd, d.y, &c);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (algo < 0 || algo >= algo_count) return fail(CUDNN_STATUS_BAD_PARAM, fn, "unknown algorithm %d", algo);
    if (!alpha || !beta) return fail(CUDNN_STATUS_BAD_PARAM, fn, "alpha or beta is NULL");
    if (!in1 || !in2 || !out) return fail(CUDNN_STATUS_BAD_PARAM, fn, "a data pointer is NULL");
    const float a = *(const float *)alpha, b = *(const float *)beta;
    const float *i1 = (const float *)in1, *i2 = (const float *)in2;
    float *o = (float *)out;
    cuemu::enqueue(h->stream, [=] {
        cuemu::stat_call(fn);
        run(fn, pass, c, a, b, i1, i2, o);
    });
    return CUDNN_STATUS_SUCCESS;
}

/* The one result a Find call returns: what this emulator computes. */
template <typename Perf, typename Algo>
cudnnStatus_t found(const char *fn, cudnnHandle_t h, const Descs &d, Algo algo, int requested, int *returned,
                    Perf *perf) {
    Conv c{};
    const cudnnStatus_t st = describe(fn, h, d.x, d.w, d.cd, d.y, &c);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (requested < 1) return fail(CUDNN_STATUS_BAD_PARAM, fn, "requestedAlgoCount %d < 1", requested);
    if (!returned || !perf) return fail(CUDNN_STATUS_BAD_PARAM, fn, "returnedAlgoCount or perfResults is NULL");
    Perf p{};
    p.algo = algo;
    p.status = CUDNN_STATUS_SUCCESS;
    p.time = 0.0f;
    p.memory = 0;
    p.determinism = CUDNN_DETERMINISTIC;
    p.mathType = CUDNN_FMA_MATH;
    perf[0] = p;
    *returned = 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t no_workspace(const char *fn, cudnnHandle_t h, const Descs &d, int algo, int algo_count, size_t *size) {
    Conv c{};
    const cudnnStatus_t st = describe(fn, h, d.x, d.w, d.cd, d.y, &c);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    if (algo < 0 || algo >= algo_count) return fail(CUDNN_STATUS_BAD_PARAM, fn, "unknown algorithm %d", algo);
    if (!size) return fail(CUDNN_STATUS_BAD_PARAM, fn, "sizeInBytes is NULL");
    *size = 0;
    return CUDNN_STATUS_SUCCESS;
}

/* cudnnCreate*, cudnnDestroy*: NULL destroys nothing, as in cuDNN */
template <typename T> cudnnStatus_t make(T **out) {
    if (!out) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    *out = new T();
    return CUDNN_STATUS_SUCCESS;
}
template <typename T> cudnnStatus_t drop(T *p) {
    delete p;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t set4d(const char *fn, cuemuDesc4d *d, cudnnTensorFormat_t format, cudnnDataType_t type, int n, int c,
                    int h, int w) {
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, fn, "descriptor is NULL");
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "size %dx%dx%dx%d is not positive", n, c, h, w);
    if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, fn, "only NCHW float data is emulated");
    if ((long long)n * c * h * w > INT32_MAX)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, fn, "%dx%dx%dx%d is over 2^31 elements", n, c, h, w);
    d->set = true;
    d->n = n, d->c = c, d->h = h, d->w = w;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

extern "C" {

const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) { return make(handle); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) { return drop(handle); }
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) { return make(tensorDesc); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) { return drop(tensorDesc); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
    return set4d("cudnnSetTensor4dDescriptor", d, format, dataType, n, c, h, w);
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) { return make(filterDesc); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) { return drop(filterDesc); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
    return set4d("cudnnSetFilter4dDescriptor", d, format, dataType, k, c, h, w);
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) { return make(convDesc); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) { return drop(convDesc); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
    const char *fn = "cudnnSetConvolution2dDescriptor";
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, fn, "descriptor is NULL");
    if (pad_h < 0 || pad_w < 0) return fail(CUDNN_STATUS_BAD_PARAM, fn, "negative padding %d, %d", pad_h, pad_w);
    if (u < 1 || v < 1) return fail(CUDNN_STATUS_BAD_PARAM, fn, "stride %d, %d is not positive", u, v);
    if (dilation_h < 1 || dilation_w < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "dilation %d, %d is not positive", dilation_h, dilation_w);
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
        return fail(CUDNN_STATUS_BAD_PARAM, fn, "unknown mode %d", (int)mode);
    if (mode != CUDNN_CROSS_CORRELATION || computeType != CUDNN_DATA_FLOAT)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, fn, "only float cross-correlation is emulated");
    d->set = true;
    d->pad_h = pad_h, d->pad_w = pad_w, d->stride_h = u, d->stride_w = v, d->dil_h = dilation_h, d->dil_w = dilation_w;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groupCount) {
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionGroupCount", "descriptor is NULL");
    if (groupCount < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionGroupCount", "group count %d is not positive",
                    groupCount);
    d->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t mathType) {
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType", "descriptor is NULL");
    if (mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType", "unknown math type %d", (int)mathType);
    d->math = mathType; /* kept for the record: every type computes plain float multiply-adds here */
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                   const cudnnFilterDescriptor_t wDesc,
                                                   const cudnnConvolutionDescriptor_t convDesc,
                                                   const cudnnTensorDescriptor_t yDesc, const int requestedAlgoCount,
                                                   int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    return found("cudnnFindConvolutionForwardAlgorithm", handle, {xDesc, wDesc, convDesc, yDesc},
                 CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                        const cudnnTensorDescriptor_t dyDesc,
                                                        const cudnnConvolutionDescriptor_t convDesc,
                                                        const cudnnTensorDescriptor_t dxDesc,
                                                        const int requestedAlgoCount, int *returnedAlgoCount,
                                                        cudnnConvolutionBwdDataAlgoPerf_t *perfResults) {
    return found("cudnnFindConvolutionBackwardDataAlgorithm", handle, {dxDesc, wDesc, convDesc, dyDesc},
                 CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                          const cudnnTensorDescriptor_t dyDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnFilterDescriptor_t dwDesc,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t *perfResults) {
    return found("cudnnFindConvolutionBackwardFilterAlgorithm", handle, {xDesc, dwDesc, convDesc, dyDesc},
                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    return no_workspace("cudnnGetConvolutionForwardWorkspaceSize", handle, {xDesc, wDesc, convDesc, yDesc}, algo,
                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *sizeInBytes) {
    return no_workspace("cudnnGetConvolutionBackwardDataWorkspaceSize", handle, {dxDesc, wDesc, convDesc, dyDesc}, algo,
                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                             const cudnnTensorDescriptor_t dyDesc,
                                                             const cudnnConvolutionDescriptor_t convDesc,
                                                             const cudnnFilterDescriptor_t gradDesc,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t *sizeInBytes) {
    return no_workspace("cudnnGetConvolutionBackwardFilterWorkspaceSize", handle, {xDesc, gradDesc, convDesc, dyDesc},
                        algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, sizeInBytes);
}

/* The workspace arguments go unused: no algorithm here needs one. */
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *, size_t, const void *beta, const cudnnTensorDescriptor_t yDesc, void *y) {
    return launch("cudnnConvolutionForward", Pass::forward, handle, {xDesc, wDesc, convDesc, yDesc}, algo,
                  CUDNN_CONVOLUTION_FWD_ALGO_COUNT, alpha, beta, x, w, y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha, const cudnnFilterDescriptor_t wDesc,
                                           const void *w, const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *, size_t, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx) {
    return launch("cudnnConvolutionBackwardData", Pass::backward_data, handle, {dxDesc, wDesc, convDesc, dyDesc}, algo,
                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, alpha, beta, w, dy, dx);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *, size_t, const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw) {
    return launch("cudnnConvolutionBackwardFilter", Pass::backward_filter, handle, {xDesc, dwDesc, convDesc, dyDesc},
                  algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, alpha, beta, x, dy, dw);
}

} // extern "C"
