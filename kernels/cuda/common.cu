/* common.cu — the state the CUDA kernels share: the first-error slot behind the check
 * macros, the registered cuDNN/cuBLAS handles, the partials buffer of the two-pass
 * reductions, and the deterministic dot / sum of squares built on it. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcuda_internal.cuh"

kcuda_lib kcuda_g;

static char g_err[512];
static int g_has_err;

extern "C" void kcuda_record_error(const char *file, int line, const char *what, const char *msg) {
    fprintf(stderr, "%s:%d: %s: %s\n", file, line, what, msg);
    if (g_has_err) return;
    snprintf(g_err, sizeof g_err, "%s:%d: %s: %s", file, line, what, msg);
    g_has_err = 1;
}

extern "C" const char *kcuda_last_error(void) { return g_has_err ? g_err : NULL; }
extern "C" void kcuda_clear_error(void) { g_has_err = 0; g_err[0] = 0; }

static int lane_buffers(kcuda_lane *l) {
    cudaCheckR(cudaMalloc((void **)&l->partials, sizeof(double) * (KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS + KCUDA_MAX_WSUM)),
               -1);
    cudaCheckR(cudaMalloc((void **)&l->red, sizeof(double) * KCUDA_RED_CAP), -1);
    cudaCheckR(cudaMalloc((void **)&l->count, sizeof(unsigned) * KCUDA_COUNT_CAP), -1);
    cudaCheckR(cudaMalloc((void **)&l->ptrs, sizeof(float *) * 3 * KCUDA_PTR_CAP), -1);
    /* zeroed before any launch uses them: the lanes' streams do not wait for the legacy
       stream (cudaStreamNonBlocking), so wait here */
    cudaCheckR(cudaMemset(l->count, 0, sizeof(unsigned) * KCUDA_COUNT_CAP), -1);
    cudaCheckR(cudaDeviceSynchronize(), -1);
    return 0;
}

/* An on/off switch from the environment: on when set, not empty and not "0". */
static bool env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

extern "C" int kcuda_init(cudaStream_t s, cudnnHandle_t dnn, cublasHandle_t blas) {
    (void)s;
    kcuda_lane *l = &kcuda_g.lane[0];
    l->dnn = dnn;
    l->blas = blas;
    if (!l->partials && lane_buffers(l) != 0) return -1;
    if (kcuda_g.nlanes < 1) kcuda_g.nlanes = 1;
    kcuda_set_lane(0);
    int dev = 0;
    cudaCheckR(cudaGetDevice(&dev), -1);
    cudaCheckR(cudaDeviceGetAttribute(&kcuda_g.sms, cudaDevAttrMultiProcessorCount, dev), -1);
    kcuda_g.own_1x1 = env_on("DARTSC_CUDA_OWN_1X1");
    kcuda_g.dw_filter_planes = env_on("DARTSC_CUDA_DW_FILTER_PLANES");
    kcuda_g.dw_filter_u1 = env_on("DARTSC_CUDA_DW_FILTER_U1");
    kcuda_g.one_launch = env_on("DARTSC_CUDA_ONE_LAUNCH");
    kcuda_g.batch_cublas = env_on("DARTSC_CUDA_BATCH_CUBLAS");
    return 0;
}

extern "C" int kcuda_add_lane(cudnnHandle_t dnn, cublasHandle_t blas) {
    if (kcuda_g.nlanes < 1) KCUDA_FAIL_("kcuda_add_lane", "kcuda_init was not called", return -1);
    if (kcuda_g.nlanes >= KCUDA_MAX_LANES) KCUDA_FAIL_("kcuda_add_lane", "too many lanes", return -1);
    kcuda_lane *l = &kcuda_g.lane[kcuda_g.nlanes];
    l->dnn = dnn;
    l->blas = blas;
    if (lane_buffers(l) != 0) return -1;
    return kcuda_g.nlanes++;
}

extern "C" void kcuda_set_lane(int k) {
    if (k < 0 || k >= kcuda_g.nlanes) return;
    const kcuda_lane *l = &kcuda_g.lane[k];
    kcuda_g.dnn = l->dnn;
    kcuda_g.blas = l->blas;
    kcuda_g.partials = l->partials;
    kcuda_g.red = l->red;
    kcuda_g.count = l->count;
    kcuda_g.ptrs = l->ptrs;
}

extern "C" int kcuda_set_one_launch(int on) {
    const int was = kcuda_g.one_launch;
    kcuda_g.one_launch = on != 0;
    return was;
}
extern "C" int kcuda_one_launch(void) { return kcuda_g.one_launch; }
extern "C" int kcuda_set_dw_filter_u1(int on) {
    const int was = kcuda_g.dw_filter_u1;
    kcuda_g.dw_filter_u1 = on != 0;
    return was;
}
extern "C" int kcuda_batch_cublas(void) { return kcuda_g.batch_cublas; }

/* ---- recordings' pointer tables (kcuda.h) ----
 * Chunks of device memory, each with its host image; a call's three arrays lie in one
 * chunk. A chunk is allocated during the capture, where cudaMalloc is an unsafe call:
 * the thread's capture mode is relaxed around it (the allocation is not part of the
 * graph; the chunk lives until kcuda_record_free). */
#define KCUDA_REC_CHUNK ((int64_t)1 << 16) /* pointers: 512 KB */
struct kcuda_ptr_chunk {
    float **dev, **host;
    int64_t cap, used;
    kcuda_ptr_chunk *next;
};
static void rec_free(kcuda_ptr_chunk *c) { /* teardown and failure paths: nothing to do about an error */
    while (c) {
        kcuda_ptr_chunk *n = c->next;
        if (c->dev) cudaFree(c->dev);
        free(c->host);
        free(c);
        c = n;
    }
}
float **kcuda_rec_ptrs(int64_t n, float ***host) {
    if (!kcuda_g.recording || n <= 0) return NULL;
    kcuda_ptr_chunk *c = kcuda_g.rec;
    if (!c || c->cap - c->used < n) {
        c = (kcuda_ptr_chunk *)calloc(1, sizeof *c);
        if (!c) return NULL;
        c->cap = n > KCUDA_REC_CHUNK ? n : KCUDA_REC_CHUNK;
        c->host = (float **)malloc(sizeof(float *) * (size_t)c->cap);
        cudaStreamCaptureMode m = cudaStreamCaptureModeRelaxed;
        cudaError_t e = cudaThreadExchangeStreamCaptureMode(&m);
        const cudaError_t ea = e == cudaSuccess ? cudaMalloc((void **)&c->dev, sizeof(float *) * (size_t)c->cap) : e;
        if (e == cudaSuccess) cudaThreadExchangeStreamCaptureMode(&m); /* back to the capture's mode */
        if (ea != cudaSuccess || !c->host) {
            (void)cudaGetLastError(); /* not a failure of the work: the kernel writes these */
            c->dev = NULL;
            rec_free(c);
            return NULL;
        }
        c->next = kcuda_g.rec;
        kcuda_g.rec = c;
    }
    *host = c->host + c->used;
    float **d = c->dev + c->used;
    c->used += n;
    return d;
}
extern "C" void kcuda_record_begin(void) {
    rec_free(kcuda_g.rec); /* a recording abandoned without kcuda_record_end */
    kcuda_g.rec = NULL;
    kcuda_g.recording = 1;
}
extern "C" int kcuda_record_end(int ok, cudaStream_t s, void **tables) {
    kcuda_ptr_chunk *c = kcuda_g.rec;
    kcuda_g.rec = NULL;
    kcuda_g.recording = 0;
    *tables = NULL;
    if (!ok || !c) {
        rec_free(c);
        return 0;
    }
    cudaError_t e = cudaSuccess;
    for (kcuda_ptr_chunk *k = c; k && e == cudaSuccess; k = k->next)
        if (k->used) e = cudaMemcpyAsync(k->dev, k->host, sizeof(float *) * (size_t)k->used, cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s); /* the host images may go once uploaded */
    if (e != cudaSuccess) {
        rec_free(c);
        KCUDA_FAIL_("kcuda_record_end: uploading the pointer tables", cudaGetErrorString(e), return -1);
    }
    for (kcuda_ptr_chunk *k = c; k; k = k->next) {
        free(k->host);
        k->host = NULL;
    }
    *tables = c;
    return 0;
}
extern "C" void kcuda_record_free(void *tables) { rec_free((kcuda_ptr_chunk *)tables); }
extern "C" long long kcuda_ptr_fills(void) { return kcuda_g.ptr_fills; }

extern "C" void kcuda_shutdown(void) {
    kcuda_conv_shutdown();
    rec_free(kcuda_g.rec);
    for (int k = 0; k < KCUDA_MAX_LANES; k++) { /* teardown: a failure here changes nothing */
        if (kcuda_g.lane[k].partials) cudaFree(kcuda_g.lane[k].partials);
        if (kcuda_g.lane[k].red) cudaFree(kcuda_g.lane[k].red);
        if (kcuda_g.lane[k].count) cudaFree(kcuda_g.lane[k].count);
        if (kcuda_g.lane[k].ptrs) cudaFree(kcuda_g.lane[k].ptrs);
    }
    memset(&kcuda_g, 0, sizeof kcuda_g);
}

/* ---- two-pass deterministic dot products ---- */
typedef struct kvecs {
    const float *p[KCUDA_MAX_WSUM];
    const float *aff[KCUDA_MAX_WSUM]; /* NULL, or vector k read through a batch norm's f, s, b */
    int C, HW;                        /* the channel of element i: i / HW % C (with aff) */
} kvecs;

/* Pass 1: block (b, k) sums a_k[i] * b[i] (or a_k[i]^2) over a fixed grid-stride set of
 * i in double, then a fixed tree; one partial per block. */
#define DOT_U 8 /* elements a thread loads at once */
__global__ static void dot_partials_kernel(double *partials, kvecs as, const float *b, int64_t n) {
    __shared__ double sh[KCUDA_THREADS];
    const float *a = as.p[blockIdx.y], *af = as.aff[blockIdx.y];
    double acc = 0.0;
    /* the thread's elements in order, DOT_U at a time: their loads issued together first
     * (an element past the end reloads the first), then the old sum in the old order */
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i0 < n; i0 += DOT_U * stride) {
        float av[DOT_U], bv[DOT_U];
#pragma unroll
        for (int u = 0; u < DOT_U; u++) {
            const int64_t i = i0 + u * stride, q = i < n ? i : i0;
            av[u] = a[q];
            bv[u] = b ? b[q] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < DOT_U; u++) {
            const int64_t i = i0 + u * stride;
            if (i >= n) break;
            const double v = kcuda_affine_v(av[u], af, as.C, as.HW, i); /* a deferred batch norm's output */
            acc += v * (b ? (double)bv[u] : v);
        }
    }
    double t = kcuda_block_sum(acc, sh);
    if (threadIdx.x == 0) partials[blockIdx.y * KCUDA_RED_BLOCKS + blockIdx.x] = t;
}

void kcuda_dot_partials(double *partials, const float *const *as, const float *b, int nvec, int64_t n,
                        cudaStream_t s) {
    kcuda_dot_partials_affine(partials, as, NULL, 0, 0, b, nvec, n, s);
}
void kcuda_dot_partials_affine(double *partials, const float *const *as, const float *const *aff, int C, int HW,
                               const float *b, int nvec, int64_t n, cudaStream_t s) {
    kvecs v;
    memset(&v, 0, sizeof v);
    v.C = C;
    v.HW = HW;
    for (int k = 0; aff && k < nvec; k++) v.aff[k] = aff[k];
    for (int k = 0; k < nvec; k++) v.p[k] = as[k];
    dot_partials_kernel<<<dim3(KCUDA_RED_BLOCKS, (unsigned)nvec), KCUDA_THREADS, 0, s>>>(partials, v, b, n);
    launchCheck();
}

/* Pass 2 for one vector: the partials in index order, by one thread. */
__global__ static void sum_partials_kernel(double *out, const double *partials) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0.0;
    for (int i = 0; i < KCUDA_RED_BLOCKS; i++) t += partials[i];
    *out = t;
}

static double dot_host(const float *a, const float *b, int64_t n, cudaStream_t s) {
    if (n <= 0) return 0.0;
    if (!kcuda_g.partials) KCUDA_FAIL_("kcuda_dot", "kcuda_init was not called", return 0.0);
    double *res = kcuda_g.partials + KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS;
    kcuda_dot_partials(kcuda_g.partials, &a, b, 1, n, s);
    sum_partials_kernel<<<1, 1, 0, s>>>(res, kcuda_g.partials);
    launchCheckR(0.0);
    double h = 0.0;
    cudaCheckR(cudaMemcpyAsync(&h, res, sizeof h, cudaMemcpyDeviceToHost, s), 0.0);
    cudaCheckR(cudaStreamSynchronize(s), 0.0);
    return h;
}

extern "C" double kcuda_dot(const float *a, const float *b, int64_t n, cudaStream_t s) { return dot_host(a, b, n, s); }
extern "C" double kcuda_sumsq(const float *a, int64_t n, cudaStream_t s) { return dot_host(a, NULL, n, s); }

/* The clipping factor from the sum-of-squares partials: coef[0] = (float)(max_norm /
 * (sqrt(sum) + 1e-6)), or 1 where clipping does not apply (then the scale is skipped). */
__global__ static void clip_coef_kernel(float *coef, const double *partials, float max_norm) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0.0;
    for (int i = 0; i < KCUDA_RED_BLOCKS; i++) t += partials[i];
    const double c = (double)max_norm / (sqrt(t) + 1e-6);
    coef[0] = max_norm > 0 && c < 1.0 ? (float)c : 1.0f;
}
__global__ static void clip_scale_kernel(float *x, const float *coef, int64_t n) {
    const float c = coef[0];
    if (c == 1.0f) return;
    KCUDA_GRID_STRIDE(i, n) x[i] *= c;
}

/* clip_coef_kernel that also keeps the norm: norm[0] = the norm as kcpu_norm_guard makes
 * it a float (FLT_MAX where finite beyond float's range; NaN and infinity as they are), the
 * guard value of the weight step (kcuda_sgd_step_dev). */
__global__ static void clip_coef_norm_kernel(float *coef, float *norm, const double *partials, float max_norm) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0.0;
    for (int i = 0; i < KCUDA_RED_BLOCKS; i++) t += partials[i];
    const double nv = sqrt(t), c = (double)max_norm / (nv + 1e-6);
    coef[0] = max_norm > 0 && c < 1.0 ? (float)c : 1.0f;
    norm[0] = nv > FLT_MAX && nv <= DBL_MAX ? FLT_MAX : (float)nv;
}

/* kcpu_hvp_eps's arithmetic: the partials summed in index order (as dot_host), then the
 * radius in double rounded to float and the alpha-gradient scale in float. */
__global__ static void hvp_eps_kernel(float *eps, const double *partials, double r, float eta, int bug_mul_r) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0.0;
    for (int i = 0; i < KCUDA_RED_BLOCKS; i++) t += partials[i];
    const double vn = sqrt(t);
    const float R = (float)(r / (vn > 0 ? vn : 1e-12));
    eps[0] = R;
    eps[1] = -R;
    eps[2] = bug_mul_r ? __fdiv_rn(__fmul_rn(eta, R), 2.0f) : __fdiv_rn(eta, __fmul_rn(2.0f, R));
}

extern "C" void kcuda_hvp_eps(float *eps, const float *v, int64_t n, double r, float eta, int bug_mul_r,
                              cudaStream_t s) {
    if (!kcuda_g.partials) KCUDA_FAIL_("kcuda_hvp_eps", "kcuda_init was not called", return);
    if (n > 0) kcuda_dot_partials(kcuda_g.partials, &v, NULL, 1, n, s);
    else cudaCheck(cudaMemsetAsync(kcuda_g.partials, 0, KCUDA_RED_BLOCKS * sizeof(double), s));
    hvp_eps_kernel<<<1, 1, 0, s>>>(eps, kcuda_g.partials, r, eta, bug_mul_r);
    launchCheck();
}

extern "C" void kcuda_clip_norm(float *x, int64_t n, float max_norm, cudaStream_t s) {
    if (n <= 0 || !(max_norm > 0)) return;
    if (!kcuda_g.partials) KCUDA_FAIL_("kcuda_clip_norm", "kcuda_init was not called", return);
    float *coef = (float *)(kcuda_g.partials + KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS + 1); /* a result slot dot_host leaves */
    kcuda_dot_partials(kcuda_g.partials, (const float *const *)&x, NULL, 1, n, s);
    clip_coef_kernel<<<1, 1, 0, s>>>(coef, kcuda_g.partials, max_norm);
    launchCheck();
    clip_scale_kernel<<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(x, coef, n);
    launchCheck();
}

extern "C" void kcuda_clip_norm_to(float *x, int64_t n, float max_norm, float *norm, cudaStream_t s) {
    if (!kcuda_g.partials) KCUDA_FAIL_("kcuda_clip_norm_to", "kcuda_init was not called", return);
    float *coef = (float *)(kcuda_g.partials + KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS + 1); /* as kcuda_clip_norm */
    if (n > 0) kcuda_dot_partials(kcuda_g.partials, (const float *const *)&x, NULL, 1, n, s);
    else cudaCheck(cudaMemsetAsync(kcuda_g.partials, 0, KCUDA_RED_BLOCKS * sizeof(double), s)); /* norm 0 */
    clip_coef_norm_kernel<<<1, 1, 0, s>>>(coef, norm, kcuda_g.partials, max_norm);
    launchCheck();
    if (n <= 0 || !(max_norm > 0)) return; /* the norm only */
    clip_scale_kernel<<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(x, coef, n);
    launchCheck();
}

/* ---- FairDARTS' zero-one loss gradient (kcpu_zero_one_grad's twin) ---- */
__global__ static void zero_one_grad_k(float *grad, const float *alpha, int64_t n, float weight) {
    KCUDA_GRID_STRIDE(i, n) {
        const double s = 1.0 / (1.0 + exp(-(double)alpha[i])), d = s - 0.5;
        grad[i] += (float)(weight * (-2.0 / (double)n) * d * s * (1.0 - s));
    }
}
extern "C" void kcuda_zero_one_grad(float *grad, const float *alpha, int64_t n, float weight, cudaStream_t s) {
    if (n <= 0) return;
    zero_one_grad_k<<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(grad, alpha, n, weight);
    launchCheck();
}
