/* elementwise.cu — CUDA twins of kernels/cpu/elementwise.c: activations, copy / fill /
 * axpy / scale / mul, channel concat and slice, pixel shift, global average pool, dropout
 * and drop path, SGD and Adam (the weighted sum, softmax and MIXED ops: mixed.cu).
 * One thread per output element (grid-stride), so every write has one owner; the few
 * reductions (gap) are serial per thread, in a
 * fixed order. Arithmetic follows the CPU line by line (float, with double where the
 * CPU uses double). */
#include <math.h>
#include <string.h>

#include "kcuda_internal.cuh"

/* ---- activations ---- */
__global__ static void relu_fwd_k(float *y, const float *x, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ static void relu_bwd_k(float *dx, const float *dy, const float *y, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}
__global__ static void relu_bwd_set_k(float *dx, const float *dy, const float *y, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
__global__ static void tanh_fwd_k(float *y, const float *x, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) y[i] = tanhf(x[i]);
}
__global__ static void tanh_bwd_k(float *dx, const float *dy, const float *y, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}
__global__ static void sigmoid_fwd_k(float *y, const float *x, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
}
__global__ static void sigmoid_bwd_k(float *dx, const float *dy, const float *y, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}


/* One grid-stride launch over n elements on stream s; returns when n <= 0. */
#define LAUNCH1(kern, n, ...)                                                    \
    do {                                                                         \
        if ((n) <= 0) return;                                                    \
        kern<<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(__VA_ARGS__);             \
        launchCheck();                                                           \
    } while (0)

extern "C" void kcuda_relu_forward(float *y, const float *x, int64_t n, cudaStream_t s) { LAUNCH1(relu_fwd_k, n, y, x, n); }
extern "C" void kcuda_relu_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s) {
    if (!dx) return;
    LAUNCH1(relu_bwd_k, n, dx, dy, y, n);
}
extern "C" void kcuda_relu_backward_set(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s) {
    if (!dx) return;
    LAUNCH1(relu_bwd_set_k, n, dx, dy, y, n);
}
extern "C" void kcuda_tanh_forward(float *y, const float *x, int64_t n, cudaStream_t s) { LAUNCH1(tanh_fwd_k, n, y, x, n); }
extern "C" void kcuda_tanh_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s) {
    if (!dx) return;
    LAUNCH1(tanh_bwd_k, n, dx, dy, y, n);
}
extern "C" void kcuda_sigmoid_forward(float *y, const float *x, int64_t n, cudaStream_t s) { LAUNCH1(sigmoid_fwd_k, n, y, x, n); }
extern "C" void kcuda_sigmoid_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s) {
    if (!dx) return;
    LAUNCH1(sigmoid_bwd_k, n, dx, dy, y, n);
}

/* ---- simple movers ---- */
__global__ static void fill_k(float *y, float v, int64_t n) { KCUDA_GRID_STRIDE(i, n) y[i] = v; }
__global__ static void axpy_k(float *y, float a, const float *x, int64_t n) { KCUDA_GRID_STRIDE(i, n) y[i] += a * x[i]; }
__global__ static void scale_k(float *y, float a, const float *x, int64_t n) { KCUDA_GRID_STRIDE(i, n) y[i] = a * x[i]; }
__global__ static void axpy_dev_k(float *y, const float *a, const float *x, int64_t n) {
    const float av = a[0];
    KCUDA_GRID_STRIDE(i, n) y[i] += av * x[i];
}
__global__ static void scale_dev_k(float *y, const float *a, int64_t n) {
    const float av = a[0];
    KCUDA_GRID_STRIDE(i, n) y[i] = av * y[i];
}
__global__ static void mul_fwd_k(float *y, const float *a, const float *b, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}
__global__ static void mul_bwd_k(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) {
        if (da) da[i] += dy[i] * b[i];
        if (db) db[i] += dy[i] * a[i];
    }
}

extern "C" void kcuda_copy(float *y, const float *x, int64_t n, cudaStream_t s) {
    if (n <= 0 || y == x) return;
    cudaCheck(cudaMemcpyAsync(y, x, sizeof(float) * (size_t)n, cudaMemcpyDeviceToDevice, s));
}
extern "C" void kcuda_fill(float *y, float v, int64_t n, cudaStream_t s) { LAUNCH1(fill_k, n, y, v, n); }
extern "C" void kcuda_axpy(float *y, float a, const float *x, int64_t n, cudaStream_t s) { LAUNCH1(axpy_k, n, y, a, x, n); }
extern "C" void kcuda_scale(float *y, float a, const float *x, int64_t n, cudaStream_t s) { LAUNCH1(scale_k, n, y, a, x, n); }
extern "C" void kcuda_axpy_dev(float *y, const float *a, const float *x, int64_t n, cudaStream_t s) {
    LAUNCH1(axpy_dev_k, n, y, a, x, n);
}
extern "C" void kcuda_scale_dev(float *y, const float *a, int64_t n, cudaStream_t s) { LAUNCH1(scale_dev_k, n, y, a, n); }
extern "C" void kcuda_mul_forward(float *y, const float *a, const float *b, int64_t n, cudaStream_t s) {
    LAUNCH1(mul_fwd_k, n, y, a, b, n);
}
extern "C" void kcuda_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n,
                                   cudaStream_t s) {
    if (!da && !db) return;
    /* da and db are distinct buffers (or one is NULL): the planner gives each input its own gradient */
    LAUNCH1(mul_bwd_k, n, da, db, dy, a, b, n);
}

/* ---- concat / slice: N blocks of blk contiguous floats between two strides ---- */
__global__ static void strided_add_k(float *dst, int64_t dstride, const float *src, int64_t sstride, int64_t blk, int N) {
    KCUDA_GRID_STRIDE(i, blk * N) {
        int64_t n = i / blk, j = i % blk;
        dst[n * dstride + j] += src[n * sstride + j];
    }
}

static void copy_blocks(float *dst, int64_t dstride, const float *src, int64_t sstride, int64_t blk, int N, cudaStream_t s) {
    if (blk <= 0 || N <= 0) return;
    cudaCheck(cudaMemcpy2DAsync(dst, sizeof(float) * (size_t)dstride, src, sizeof(float) * (size_t)sstride,
                                sizeof(float) * (size_t)blk, (size_t)N, cudaMemcpyDeviceToDevice, s));
}
static void add_blocks(float *dst, int64_t dstride, const float *src, int64_t sstride, int64_t blk, int N, cudaStream_t s) {
    if (blk <= 0 || N <= 0) return;
    strided_add_k<<<kcuda_blocks(blk * N), KCUDA_THREADS, 0, s>>>(dst, dstride, src, sstride, blk, N);
    launchCheck();
}

/* ---- sums of k tensors and channel concat, one launch each ----
 * A k-input ADD was a copy and k - 1 axpys, its backward a scale or an axpy per input, a
 * concat a 2-D copy per input (and a copy or an add per input back): one launch each
 * now. Each thread does its element of every input in input order with the expressions of
 * the launches they replace (axpy_k's y += a * x, scale_k's y = a * x), so the same bits
 * (a gradient handed over to be set may differ from 0 + dy only in the sign of a zero). */
typedef struct knary {
    const float *x[KCUDA_MAX_NARY];
    float *g[KCUDA_MAX_NARY];
    float c[KCUDA_MAX_NARY];
    int off[KCUDA_MAX_NARY + 1]; /* concat: input k's channels [off[k], off[k + 1]) */
    int n;
    unsigned set; /* backward: bit k: g[k] is written, not accumulated */
} knary;

__global__ static void sum_fwd_k(float *y, knary a, float post, int scaled, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        float v = a.x[0][i];
        for (int k = 1; k < a.n; k++) v += a.c[k] * a.x[k][i];
        if (scaled) v = post * v;
        y[i] = v;
    }
}
__global__ static void sum_bwd_k(knary a, const float *dy, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        const float d = dy[i];
        for (int k = 0; k < a.n; k++) {
            if (!a.g[k]) continue;
            if (a.set >> k & 1u) a.g[k][i] = a.c[k] * d;
            else a.g[k][i] += a.c[k] * d;
        }
    }
}

extern "C" void kcuda_sum_forward(float *y, const float *const *xs, const float *coef, int n, float post, int scaled,
                                  int64_t len, cudaStream_t s) {
    if (n < 1 || n > KCUDA_MAX_NARY) KCUDA_FAIL_("kcuda_sum_forward", "not 1..KCUDA_MAX_NARY inputs", return);
    knary a;
    memset(&a, 0, sizeof a);
    a.n = n;
    for (int k = 0; k < n; k++) a.x[k] = xs[k], a.c[k] = k ? coef[k] : 1.0f;
    LAUNCH1(sum_fwd_k, len, y, a, post, scaled, len);
}
extern "C" void kcuda_sum_backward(float *const *gs, const float *coef, int n, unsigned set, const float *dy, int64_t len,
                                   cudaStream_t s) {
    if (n < 1 || n > KCUDA_MAX_NARY) KCUDA_FAIL_("kcuda_sum_backward", "not 1..KCUDA_MAX_NARY inputs", return);
    knary a;
    memset(&a, 0, sizeof a);
    a.n = n;
    a.set = set;
    int any = 0;
    for (int k = 0; k < n; k++) a.g[k] = gs[k], a.c[k] = coef[k], any |= gs[k] != NULL;
    if (!any) return;
    LAUNCH1(sum_bwd_k, len, a, dy, len);
}

/* Concat over channels: element i of y (N, Cy, HW) is channel c of sample m, from input k
 * with off[k] <= c < off[k + 1] (a short search: k <= KCUDA_MAX_NARY). */
__device__ static inline int concat_src(const knary &a, int64_t i, int Cy, int HW, int64_t *xi) {
    const int64_t plane = i / HW, m = plane / Cy;
    const int c = (int)(plane % Cy);
    int k = 0;
    while (c >= a.off[k + 1]) k++;
    const int Ck = a.off[k + 1] - a.off[k];
    *xi = (m * Ck + (c - a.off[k])) * HW + i % HW;
    return k;
}
__global__ static void concat_fwd_k(float *y, knary a, int Cy, int HW, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        int64_t xi;
        const int k = concat_src(a, i, Cy, HW, &xi);
        y[i] = a.x[k][xi];
    }
}
__global__ static void concat_bwd_k(knary a, const float *dy, int Cy, int HW, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        int64_t xi;
        const int k = concat_src(a, i, Cy, HW, &xi);
        float *g = a.g[k];
        if (!g) continue;
        if (a.set >> k & 1u) g[xi] = dy[i];
        else g[xi] += dy[i];
    }
}

static int concat_args(knary *a, const int *Cx, int n, int Cy) {
    memset(a, 0, sizeof *a);
    if (n < 1 || n > KCUDA_MAX_NARY) KCUDA_FAIL_("kcuda_concat", "not 1..KCUDA_MAX_NARY inputs", return -1);
    a->n = n;
    for (int k = 0; k < n; k++) a->off[k + 1] = a->off[k] + Cx[k];
    if (a->off[n] != Cy) KCUDA_FAIL_("kcuda_concat", "the inputs' channels do not sum to the output's", return -1);
    return 0;
}
extern "C" void kcuda_concat_forward(float *y, const float *const *xs, const int *Cx, int n, int N, int Cy, int HW,
                                     cudaStream_t s) {
    knary a;
    if (concat_args(&a, Cx, n, Cy)) return;
    for (int k = 0; k < n; k++) a.x[k] = xs[k];
    const int64_t len = (int64_t)N * Cy * HW;
    LAUNCH1(concat_fwd_k, len, y, a, Cy, HW, len);
}
extern "C" void kcuda_concat_backward(float *const *dxs, unsigned set, const int *Cx, int n, const float *dy, int N, int Cy,
                                      int HW, cudaStream_t s) {
    knary a;
    if (concat_args(&a, Cx, n, Cy)) return;
    int any = 0;
    for (int k = 0; k < n; k++) a.g[k] = dxs[k], any |= dxs[k] != NULL;
    a.set = set;
    const int64_t len = (int64_t)N * Cy * HW;
    if (!any) return;
    LAUNCH1(concat_bwd_k, len, a, dy, Cy, HW, len);
}
extern "C" void kcuda_slice_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off, cudaStream_t s) {
    copy_blocks(y, (int64_t)Cy * HW, x + (int64_t)c_off * HW, (int64_t)Cx * HW, (int64_t)Cy * HW, N, s);
}
extern "C" void kcuda_slice_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off, cudaStream_t s) {
    if (!dx) return;
    add_blocks(dx + (int64_t)c_off * HW, (int64_t)Cx * HW, dy, (int64_t)Cy * HW, (int64_t)Cy * HW, N, s);
}

/* ---- pixel shift: y (N,C,H-1,W-1) = x[:, :, 1:, 1:] ---- */
__global__ static void shift_k(float *y, const float *x, int64_t planes, int H, int W, int add) {
    const int Ho = H - 1, Wo = W - 1;
    KCUDA_GRID_STRIDE(i, planes * Ho * Wo) {
        int64_t pl = i / ((int64_t)Ho * Wo);
        int r = (int)(i / Wo % Ho), c = (int)(i % Wo);
        int64_t xi = (pl * H + r + 1) * W + c + 1;
        if (add) y[xi] += x[i]; /* backward: y is dx, x is dy */
        else y[i] = x[xi];
    }
}
extern "C" void kcuda_shift_forward(float *y, const float *x, int N, int C, int H, int W, cudaStream_t s) {
    if (H - 1 <= 0 || W - 1 <= 0) return;
    int64_t planes = (int64_t)N * C;
    LAUNCH1(shift_k, planes * (H - 1) * (W - 1), y, x, planes, H, W, 0);
}
extern "C" void kcuda_shift_backward(float *dx, const float *dy, int N, int C, int H, int W, cudaStream_t s) {
    if (!dx || H - 1 <= 0 || W - 1 <= 0) return;
    int64_t planes = (int64_t)N * C;
    LAUNCH1(shift_k, planes * (H - 1) * (W - 1), dx, dy, planes, H, W, 1);
}
/* dx written whole: dy's pixel where it has one, 0 in the first row and column (one
 * launch instead of a memset and the adding one; 0 + v = v, but for a zero's sign). */
__global__ static void shift_bwd_set_k(float *dx, const float *dy, int64_t planes, int H, int W) {
    const int Ho = H - 1, Wo = W - 1;
    KCUDA_GRID_STRIDE(i, planes * H * W) {
        const int64_t pl = i / ((int64_t)H * W);
        const int r = (int)(i / W % H), c = (int)(i % W);
        dx[i] = r && c ? dy[(pl * Ho + r - 1) * Wo + c - 1] : 0.0f;
    }
}
extern "C" void kcuda_shift_backward_set(float *dx, const float *dy, int N, int C, int H, int W, cudaStream_t s) {
    if (!dx || H - 1 <= 0 || W - 1 <= 0) return;
    int64_t planes = (int64_t)N * C;
    LAUNCH1(shift_bwd_set_k, planes * H * W, dx, dy, planes, H, W);
}

/* ---- global average pool ---- */
__global__ static void gap_fwd_k(float *y, const float *x, int64_t planes, int HW) {
    KCUDA_GRID_STRIDE(pl, planes) {
        const float *xp = x + pl * HW;
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += xp[i];
        y[pl] = HW > 0 ? (float)(s / HW) : 0.0f;
    }
}
__global__ static void gap_bwd_k(float *dx, const float *dy, int64_t planes, int HW) {
    KCUDA_GRID_STRIDE(i, planes * HW) dx[i] += dy[i / HW] / (float)HW;
}
extern "C" void kcuda_gap_forward(float *y, const float *x, int N, int C, int HW, cudaStream_t s) {
    int64_t planes = (int64_t)N * C;
    LAUNCH1(gap_fwd_k, planes, y, x, planes, HW);
}
extern "C" void kcuda_gap_backward(float *dx, const float *dy, int N, int C, int HW, cudaStream_t s) {
    if (!dx || HW <= 0) return;
    int64_t planes = (int64_t)N * C;
    LAUNCH1(gap_bwd_k, planes * HW, dx, dy, planes, HW);
}

/* ---- dropout / drop path ---- */
/* seedp: NULL, or the device address the seed is read from (a recorded pass: the runtime
 * writes each pass's seeds there before replaying it). */
__global__ static void dropout_fwd_k(float *y, float *mask, const float *x, int64_t n, float p, float scale, uint64_t seed,
                                     const uint64_t *seedp) {
    if (seedp) seed = *seedp;
    KCUDA_GRID_STRIDE(i, n) {
        float m = (p <= 0.0f) ? 1.0f : (krng_uniform(seed, (uint64_t)i) >= p ? scale : 0.0f);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}
__global__ static void droppath_mask_k(float *mask, int N, float p, float scale, uint64_t seed, const uint64_t *seedp) {
    if (seedp) seed = *seedp;
    KCUDA_GRID_STRIDE(n, N) mask[n] = (p <= 0.0f) ? 1.0f : (krng_uniform(seed, (uint64_t)n) >= p ? scale : 0.0f);
}
/* add 1: backward, y is dx, x is dy; add 2: the backward written whole, 0 + dy * mask (the
 * bits of adding to a zeroed dx: a -0 product becomes +0). Element i; the single and the
 * batched kernels share it. */
__device__ static inline void droppath_apply_at(float *y, const float *mask, const float *x, int64_t i,
                                                int64_t per_sample, int add) {
    if (add == 1) y[i] += x[i] * mask[i / per_sample];
    else if (add == 2) y[i] = 0.0f + x[i] * mask[i / per_sample];
    else y[i] = x[i] * mask[i / per_sample];
}
__global__ static void droppath_apply_k(float *y, const float *mask, const float *x, int64_t total, int64_t per_sample, int add) {
    KCUDA_GRID_STRIDE(i, total) droppath_apply_at(y, mask, x, i, per_sample, add);
}
/* The forward in one launch: each element draws its sample's mask value as droppath_mask_k
 * does (the same expression, so the same bits) and the sample's first element writes it. */
__device__ static inline void droppath_fwd_at(float *y, float *mask, const float *x, int64_t i, int64_t per_sample,
                                              float p, float scale, uint64_t seed) {
    const int64_t n = i / per_sample;
    const float m = (p <= 0.0f) ? 1.0f : (krng_uniform(seed, (uint64_t)n) >= p ? scale : 0.0f);
    if (i == n * per_sample) mask[n] = m;
    y[i] = x[i] * m;
}
__global__ static void droppath_fwd_k(float *y, float *mask, const float *x, int64_t total, int64_t per_sample,
                                      float p, float scale, uint64_t seed, const uint64_t *seedp) {
    if (seedp) seed = *seedp;
    KCUDA_GRID_STRIDE(i, total) droppath_fwd_at(y, mask, x, i, per_sample, p, scale, seed);
}
/* Batched: problem blockIdx.z (kcuda.h "batched launches"). */
struct dp_batch {
    float *y[KCUDA_MAX_BATCH], *mask[KCUDA_MAX_BATCH];
    const float *x[KCUDA_MAX_BATCH];
    const uint64_t *seed[KCUDA_MAX_BATCH];
};
__global__ static void droppath_fwd_batch_k(const __grid_constant__ dp_batch P, int64_t total, int64_t per_sample,
                                            float p, float scale) {
    const int z = blockIdx.z;
    const uint64_t seed = *P.seed[z];
    KCUDA_GRID_STRIDE(i, total) droppath_fwd_at(P.y[z], P.mask[z], P.x[z], i, per_sample, p, scale, seed);
}
__global__ static void droppath_apply_batch_k(const __grid_constant__ dp_batch P, int64_t total, int64_t per_sample,
                                              int add) {
    const int z = blockIdx.z;
    KCUDA_GRID_STRIDE(i, total) droppath_apply_at(P.y[z], P.mask[z], P.x[z], i, per_sample, add);
}
__global__ static void dropout_bwd_k(float *dx, const float *dy, const float *mask, int64_t n) {
    KCUDA_GRID_STRIDE(i, n) dx[i] += dy[i] * mask[i];
}

extern "C" void kcuda_dropout_forward(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                                      cudaStream_t s) {
    kcuda_dropout_forward_dev(y, mask, x, n, p, seed, NULL, s);
}
extern "C" void kcuda_dropout_forward_dev(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                                          const uint64_t *seed_dev, cudaStream_t s) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    LAUNCH1(dropout_fwd_k, n, y, mask, x, n, p, scale, seed, seed_dev);
}
extern "C" void kcuda_droppath_forward(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                                       uint64_t seed, cudaStream_t s) {
    kcuda_droppath_forward_dev(y, mask, x, N, per_sample, p, seed, NULL, s);
}
extern "C" void kcuda_droppath_forward_dev(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                                           uint64_t seed, const uint64_t *seed_dev, cudaStream_t s) {
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    if (N <= 0) return;
    if (per_sample <= 0) { /* the masks alone */
        droppath_mask_k<<<kcuda_blocks(N), KCUDA_THREADS, 0, s>>>(mask, N, p, scale, seed, seed_dev);
        launchCheck();
        return;
    }
    LAUNCH1(droppath_fwd_k, (int64_t)N * per_sample, y, mask, x, (int64_t)N * per_sample, per_sample, p, scale, seed,
            seed_dev);
}
/* seeds[i] = krng_hash(base, step * nodes + i), i < nodes: a pass's seeds, as the runtime
 * draws them on the host for an eager pass. */
__global__ static void seeds_k(uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes) {
    KCUDA_GRID_STRIDE(i, nodes) seeds[i] = krng_hash(base, step * (uint64_t)nodes + (uint64_t)i);
}
extern "C" void kcuda_fill_seeds(uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes, cudaStream_t s) {
    if (nodes <= 0) return;
    seeds_k<<<kcuda_blocks(nodes), KCUDA_THREADS, 0, s>>>(seeds, base, step, nodes);
    launchCheck();
}

extern "C" void kcuda_dropout_backward(float *dx, const float *dy, const float *mask, int64_t n, cudaStream_t s) {
    if (!dx) return;
    LAUNCH1(dropout_bwd_k, n, dx, dy, mask, n);
}
extern "C" void kcuda_droppath_backward(float *dx, const float *dy, const float *mask, int N, int64_t per_sample,
                                        cudaStream_t s) {
    if (!dx || N <= 0 || per_sample <= 0) return;
    LAUNCH1(droppath_apply_k, (int64_t)N * per_sample, dx, mask, dy, (int64_t)N * per_sample, per_sample, 1);
}
extern "C" void kcuda_droppath_backward_set(float *dx, const float *dy, const float *mask, int N, int64_t per_sample,
                                            cudaStream_t s) {
    if (!dx || N <= 0 || per_sample <= 0) return;
    LAUNCH1(droppath_apply_k, (int64_t)N * per_sample, dx, mask, dy, (int64_t)N * per_sample, per_sample, 2);
}
static int dp_batch_check(int n, int N, int64_t per_sample, const char *what) {
    if (n < 1 || n > KCUDA_MAX_BATCH || N <= 0 || per_sample <= 0)
        KCUDA_FAIL_(what, "problems outside 1..KCUDA_MAX_BATCH or an empty tensor", return -1);
    return 0;
}
extern "C" void kcuda_droppath_forward_batch(int n, float *const *y, float *const *mask, const float *const *x, int N,
                                             int64_t per_sample, float p, const uint64_t *const *seed_dev,
                                             cudaStream_t s) {
    if (dp_batch_check(n, N, per_sample, "kcuda_droppath_forward_batch") || !seed_dev) return;
    dp_batch P;
    memset(&P, 0, sizeof P);
    for (int i = 0; i < n; i++) P.y[i] = y[i], P.mask[i] = mask[i], P.x[i] = x[i], P.seed[i] = seed_dev[i];
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const int64_t total = (int64_t)N * per_sample;
    droppath_fwd_batch_k<<<dim3(kcuda_blocks(total), 1, (unsigned)n), KCUDA_THREADS, 0, s>>>(P, total, per_sample, p,
                                                                                             scale);
    launchCheck();
}
extern "C" void kcuda_droppath_backward_batch(int n, float *const *dx, const float *const *dy, const float *const *mask,
                                              int N, int64_t per_sample, int set, cudaStream_t s) {
    if (dp_batch_check(n, N, per_sample, "kcuda_droppath_backward_batch") || !dx) return;
    dp_batch P;
    memset(&P, 0, sizeof P);
    for (int i = 0; i < n; i++) P.y[i] = dx[i], P.mask[i] = (float *)mask[i], P.x[i] = dy[i];
    const int64_t total = (int64_t)N * per_sample;
    droppath_apply_batch_k<<<dim3(kcuda_blocks(total), 1, (unsigned)n), KCUDA_THREADS, 0, s>>>(P, total, per_sample,
                                                                                               set ? 2 : 1);
    launchCheck();
}

/* ---- optimisers ----
 * One element's update, shared by the host-scalar and the device-scalar kernels (the same
 * expressions, so the same contractions and bits). The _dev kernels read their scalars
 * from device memory (a recorded step replays with the current ones) and change nothing
 * where a guard value (the step's losses) is not finite. */
__device__ static inline void sgd_elem(float *w, float *buf, const float *grad, int64_t i, float lr, float momentum,
                                       float wd) {
    float g = grad[i];
    if (wd != 0.0f) g += wd * w[i];
    if (buf) {
        buf[i] = momentum * buf[i] + g;
        g = buf[i];
    }
    w[i] -= lr * g;
}
__device__ static inline void adam_elem(float *w, float *m, float *v, const float *grad, int64_t i, float step,
                                        float bc2s, float beta2, float omb1, float omb2, float eps, float wd) {
    float g = grad[i];
    if (wd != 0.0f) g += wd * w[i];
    m[i] = m[i] + omb1 * (g - m[i]);
    v[i] = v[i] * beta2 + omb2 * g * g;
    const float denom = sqrtf(v[i]) / bc2s + eps;
    w[i] += -step * (m[i] / denom);
}
__device__ static inline int guard_ok(const float *guard, int nguard) {
    for (int k = 0; k < nguard; k++)
        if (!isfinite(guard[k])) return 0;
    return 1;
}
__global__ static void sgd_k(float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd) {
    KCUDA_GRID_STRIDE(i, n) sgd_elem(w, buf, grad, i, lr, momentum, wd);
}
__global__ static void sgd_dev_k(float *w, float *buf, const float *grad, int64_t n, const float *lr, float momentum,
                                 float wd, const float *guard, int nguard) {
    if (!guard_ok(guard, nguard)) return;
    const float l = lr[0];
    KCUDA_GRID_STRIDE(i, n) sgd_elem(w, buf, grad, i, l, momentum, wd);
}
__global__ static void adam_k(float *w, float *m, float *v, const float *grad, int64_t n, float step, float bc2s,
                              float beta2, float omb1, float omb2, float eps, float wd) {
    KCUDA_GRID_STRIDE(i, n) adam_elem(w, m, v, grad, i, step, bc2s, beta2, omb1, omb2, eps, wd);
}
__global__ static void adam_dev_k(float *w, float *m, float *v, const float *grad, int64_t n, const float *sc,
                                  float beta2, float omb1, float omb2, float eps, float wd, const float *guard,
                                  int nguard) {
    if (!guard_ok(guard, nguard)) return;
    const float step = sc[0], bc2s = sc[1];
    KCUDA_GRID_STRIDE(i, n) adam_elem(w, m, v, grad, i, step, bc2s, beta2, omb1, omb2, eps, wd);
}
extern "C" void kcuda_sgd_step(float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd,
                               cudaStream_t s) {
    LAUNCH1(sgd_k, n, w, buf, grad, n, lr, momentum, wd);
}
extern "C" void kcuda_sgd_step_dev(float *w, float *buf, const float *grad, int64_t n, const float *lr, float momentum,
                                   float wd, const float *guard, int nguard, cudaStream_t s) {
    LAUNCH1(sgd_dev_k, n, w, buf, grad, n, lr, momentum, wd, guard, nguard);
}
extern "C" void kcuda_adam_step(float *w, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                                float beta2, float eps, float wd, int t, cudaStream_t s) {
    /* bias corrections in double on the host, exactly as kcpu_adam_step (kcpu_adam_scalars) */
    const double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    const float step = (float)((double)lr / bc1), bc2s = (float)sqrt(bc2);
    LAUNCH1(adam_k, n, w, m, v, grad, n, step, bc2s, beta2, 1.0f - beta1, 1.0f - beta2, eps, wd);
}
extern "C" void kcuda_adam_step_dev(float *w, float *m, float *v, const float *grad, int64_t n, const float *sc,
                                    float beta1, float beta2, float eps, float wd, const float *guard, int nguard,
                                    cudaStream_t s) {
    LAUNCH1(adam_dev_k, n, w, m, v, grad, n, sc, beta2, 1.0f - beta1, 1.0f - beta2, eps, wd, guard, nguard);
}

/* The second-order step's final scale for an eta in device memory: eps[2] from the radius
 * eps[0] that kcuda_hvp_eps wrote, by hvp_eps_kernel's expression (common.cu). */
__global__ static void hvp_scale_dev_k(float *eps, const float *eta, int bug_mul_r) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    const float R = eps[0], e = eta[0];
    eps[2] = bug_mul_r ? __fdiv_rn(__fmul_rn(e, R), 2.0f) : __fdiv_rn(e, __fmul_rn(2.0f, R));
}
extern "C" void kcuda_hvp_scale_dev(float *eps, const float *eta, int bug_mul_r, cudaStream_t s) {
    hvp_scale_dev_k<<<1, 1, 0, s>>>(eps, eta, bug_mul_r);
    launchCheck();
}

/* ---- channel shuffle (PC-DARTS): y[:, j*G+g] = x[:, g*(C/G)+j], one thread per element ---- */
__device__ static inline int64_t shuffle_src_index(int64_t i, int C, int HW, int G) {
    const int64_t p = i % HW, pl = i / HW, n = pl / C;
    const int o = (int)(pl % C);
    return (n * C + (int64_t)(o % G) * (C / G) + o / G) * HW + p;
}
__global__ static void shuffle_fwd_k(float *y, const float *x, int C, int HW, int G, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) y[i] = x[shuffle_src_index(i, C, HW, G)];
}
/* a permutation: every dx element has exactly one dy element, so no two threads meet */
__global__ static void shuffle_bwd_k(float *dx, const float *dy, int C, int HW, int G, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) dx[shuffle_src_index(i, C, HW, G)] += dy[i];
}
extern "C" void kcuda_channel_shuffle_forward(float *y, const float *x, int N, int C, int HW, int G, cudaStream_t s) {
    const int64_t len = (int64_t)N * C * HW;
    if (len <= 0) return;
    LAUNCH1(shuffle_fwd_k, len, y, x, C, HW, G, len);
}
extern "C" void kcuda_channel_shuffle_backward(float *dx, const float *dy, int N, int C, int HW, int G, cudaStream_t s) {
    const int64_t len = (int64_t)N * C * HW;
    if (!dx || len <= 0) return;
    LAUNCH1(shuffle_bwd_k, len, dx, dy, C, HW, G, len);
}
