/* mixed.cu — CUDA twins of kernels/cpu/elementwise.c's weighted sum, row softmax and the
 * fused MIXED / WMIXED ops of DARTS edges (softmax(alpha) or given weights times each
 * candidate's output, summed), forward and backward with the alpha / weight gradient.
 * One thread per output element (grid-stride); the weight gradients are two-pass dot
 * products in a fixed order. Arithmetic follows the CPU line by line. */
#include <math.h>
#include <string.h>

#include "kcuda_internal.cuh"
/* One grid-stride launch (the emulator translates launches in .cu files only, so each
 * file has its own) over n elements on stream s; returns when n <= 0. */
#define LAUNCH1(kern, n, ...)                                                    \
    do {                                                                         \
        if ((n) <= 0) return;                                                    \
        kern<<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(__VA_ARGS__);             \
        launchCheck();                                                           \
    } while (0)

/* ---- weighted sum and MIXED ----
 * Weight k is wbase[widx[k]]: widx = identity for WSUM, the alpha columns for MIXED, so
 * the weights never leave the device. */
typedef struct kwsum_args {
    const float *xs[KCUDA_MAX_WSUM];
    float *dxs[KCUDA_MAX_WSUM];
    int widx[KCUDA_MAX_WSUM];
    int n;
    unsigned set; /* backward: bit k: dxs[k] is written, not accumulated */
    const float *aff[KCUDA_MAX_WSUM]; /* MIXED: NULL, or input k is a batch norm's input read
                                         through its f, s, b (a deferred batch norm) */
    int C, HW;                        /* with aff: element i's channel is i / HW % C */
} kwsum_args;

/* Input k at element i: as stored, or through its deferred batch norm, __fmaf_rn(x - f, s,
 * b): the expression bn.cu writes a batch norm's output with, so the same bits. */
__device__ static inline float wsum_in(const kwsum_args &a, int k, int64_t i) {
    const float v = a.xs[k][i];
    const float *af = a.aff[k];
    if (!af) return v;
    const int64_t c = i / a.HW % a.C;
    return __fmaf_rn(v - af[c], af[a.C + c], af[2 * a.C + c]);
}

__global__ static void wsum_fwd_k(float *y, kwsum_args a, const float *wbase, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        float s = 0.0f;
        for (int k = 0; k < a.n; k++) s += wbase[a.widx[k]] * wsum_in(a, k, i);
        y[i] = s;
    }
}
/* dxs[k] += w_k * dy (= where bit k of a.set), k in order: an input used twice (aliased
 * dxs, never written) sees both adds in the CPU's order, from the one thread that owns
 * element i. */
__global__ static void wsum_bwd_dx_k(kwsum_args a, const float *wbase, const float *dy, int64_t len) {
    KCUDA_GRID_STRIDE(i, len) {
        for (int k = 0; k < a.n; k++)
            if (a.dxs[k]) {
                if (a.set >> k & 1u) a.dxs[k][i] = wbase[a.widx[k]] * dy[i];
                else a.dxs[k][i] += wbase[a.widx[k]] * dy[i];
            }
    }
}
/* WSUM's dw[k] += (float)<dy, xs[k]> from the partials, each in index order. */
__global__ static void wsum_dw_finish_k(float *dw, const double *partials, int n) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int k = 0; k < n; k++) {
        double t = 0.0;
        for (int b = 0; b < KCUDA_RED_BLOCKS; b++) t += partials[k * KCUDA_RED_BLOCKS + b];
        dw[k] += (float)t;
    }
}

static int wsum_args_make(kwsum_args *a, const float *const *xs, float *const *dxs, const int64_t *cols, int n) {
    if (n > KCUDA_MAX_WSUM) KCUDA_FAIL_("kcuda_wsum", "more inputs than KCUDA_MAX_WSUM", return -1);
    memset(a, 0, sizeof *a);
    a->n = n;
    for (int k = 0; k < n; k++) {
        a->xs[k] = xs ? xs[k] : NULL;
        a->dxs[k] = dxs ? dxs[k] : NULL;
        a->widx[k] = cols ? (int)cols[k] : k;
    }
    return 0;
}

extern "C" void kcuda_wsum_forward(float *y, const float *const *xs, const float *w, int n, int64_t len, cudaStream_t s) {
    kwsum_args a;
    if (len <= 0 || wsum_args_make(&a, xs, NULL, NULL, n)) return;
    wsum_fwd_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(y, a, w, len);
    launchCheck();
}

extern "C" void kcuda_wsum_backward(float *const *dxs, float *dw, const float *dy, const float *const *xs, const float *w,
                                    int n, int64_t len, cudaStream_t s) {
    kcuda_wsum_backward_set(dxs, dw, dy, xs, w, n, len, 0u, s);
}
extern "C" void kcuda_wsum_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                                        const float *w, int n, int64_t len, unsigned set, cudaStream_t s) {
    kwsum_args a;
    if (len <= 0 || wsum_args_make(&a, xs, dxs, NULL, n)) return;
    a.set = set;
    if (dxs) {
        wsum_bwd_dx_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(a, w, dy, len);
        launchCheck();
    }
    if (dw && n > 0) {
        kcuda_dot_partials(kcuda_g.partials, xs, dy, n, len, s);
        wsum_dw_finish_k<<<1, 1, 0, s>>>(dw, kcuda_g.partials, n);
        launchCheck();
    }
}

/* softmax of one row of K, by one thread, as kcpu_softmax_forward. */
__device__ static inline void softmax_row(float *yr, const float *xr, int K) {
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
/* softmax of one or more rows, one thread per row. */
__global__ static void softmax_fwd_k(float *y, const float *x, int rows, int K) {
    KCUDA_GRID_STRIDE(r, rows) softmax_row(y + r * K, x + r * K, K);
}
__global__ static void softmax_bwd_k(float *dx, const float *dy, const float *y, int rows, int K) {
    KCUDA_GRID_STRIDE(r, rows) {
        const float *gr = dy + r * K, *yr = y + r * K;
        float *dr = dx + r * K;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += (double)gr[k] * yr[k];
        const float fs = (float)s;
        for (int k = 0; k < K; k++) dr[k] += yr[k] * (gr[k] - fs);
    }
}

extern "C" void kcuda_softmax_forward(float *y, const float *x, int rows, int K, cudaStream_t s) {
    if (rows <= 0 || K <= 0) return;
    LAUNCH1(softmax_fwd_k, rows, y, x, rows, K);
}
extern "C" void kcuda_softmax_backward(float *dx, const float *dy, const float *y, int rows, int K, cudaStream_t s) {
    if (!dx || rows <= 0 || K <= 0) return;
    LAUNCH1(softmax_bwd_k, rows, dx, dy, y, rows, K);
}

/* aff (may be NULL): per input, NULL or a deferred batch norm's f, s, b over C channels of
 * planes of HW. */
static void wsum_args_affine(kwsum_args *a, const float *const *aff, int C, int HW) {
    for (int k = 0; aff && k < a->n; k++) a->aff[k] = aff[k];
    a->C = C > 0 ? C : 1;
    a->HW = HW > 0 ? HW : 1;
}

/* MIXED forward in one launch: each block's thread 0 computes the softmax of the alpha row
 * into shared memory (softmax_row: the bits softmax_fwd_k writes), block 0 also into sm
 * (the backward reads it), then wsum_fwd_k's loop with the weights from shared memory:
 * the same bits as the two launches it replaces (a softmax kernel, then the weighted sum
 * reading sm), one launch fewer per mixed op. O <= 64. */
__global__ static void mixed_fwd_k(float *y, float *sm, const float *alpha_row, int O, kwsum_args a, int64_t len) {
    __shared__ float w[64];
    if (threadIdx.x == 0) {
        softmax_row(w, alpha_row, O);
        if (blockIdx.x == 0)
            for (int k = 0; k < O; k++) sm[k] = w[k];
    }
    __syncthreads();
    KCUDA_GRID_STRIDE(i, len) {
        float s = 0.0f;
        for (int k = 0; k < a.n; k++) s += w[a.widx[k]] * wsum_in(a, k, i);
        y[i] = s;
    }
}

extern "C" void kcuda_mixed_forward(float *y, float *sm, const float *alpha_row, const float *const *xs, const int64_t *cols,
                                    int n, int O, int64_t len, const float *const *aff, int C, int HW, cudaStream_t s) {
    kwsum_args a;
    if (wsum_args_make(&a, xs, NULL, cols, n)) return;
    wsum_args_affine(&a, aff, C, HW);
    if (len <= 0 || O > 64) { /* the softmax alone (no output), or a row beyond the shared weights */
        softmax_fwd_k<<<1, 1, 0, s>>>(sm, alpha_row, 1, O);
        launchCheck();
        if (len <= 0) return;
        wsum_fwd_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(y, a, sm, len);
        launchCheck();
        return;
    }
    mixed_fwd_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(y, sm, alpha_row, O, a, len);
    launchCheck();
}

/* d alpha_row through the softmax, as the CPU backend's MIXED case: dw from the
 * partials, scattered into columns (absent columns 0; a repeated column keeps the last),
 * then kcpu_softmax_backward's arithmetic on the single row. One thread: O <= 64. */
__global__ static void mixed_alpha_finish_k(float *dalpha, const double *partials, const float *sm, kwsum_args a, int O) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    float dcol[64];
    for (int j = 0; j < O; j++) dcol[j] = 0.0f;
    for (int k = 0; k < a.n; k++) {
        double t = 0.0;
        for (int b = 0; b < KCUDA_RED_BLOCKS; b++) t += partials[k * KCUDA_RED_BLOCKS + b];
        dcol[a.widx[k]] = 0.0f + (float)t; /* CPU: dw[k] (zeroed) += (float)dot */
    }
    double s = 0.0;
    for (int j = 0; j < O; j++) s += (double)dcol[j] * sm[j];
    const float fs = (float)s;
    for (int j = 0; j < O; j++) dalpha[j] += sm[j] * (dcol[j] - fs);
}

extern "C" void kcuda_mixed_backward(float *const *dxs, float *dalpha_row, const float *dy, const float *const *xs,
                                     const float *sm, const int64_t *cols, int n, int O, int64_t len, unsigned set,
                                     const float *const *aff, int C, int HW, cudaStream_t s) {
    kwsum_args a;
    if (wsum_args_make(&a, xs, dxs, cols, n)) return;
    wsum_args_affine(&a, aff, C, HW);
    a.set = set;
    if (O > 64) KCUDA_FAIL_("kcuda_mixed_backward", "more than 64 alpha columns", return);
    int any_dx = 0;
    for (int k = 0; k < n; k++) any_dx |= a.dxs[k] != NULL;
    if (len > 0 && any_dx) {
        wsum_bwd_dx_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(a, sm, dy, len);
        launchCheck();
    }
    if (!dalpha_row) return;
    if (n > 0 && len > 0) kcuda_dot_partials_affine(kcuda_g.partials, xs, a.aff, a.C, a.HW, dy, n, len, s);
    else cudaCheck(cudaMemsetAsync(kcuda_g.partials, 0, sizeof(double) * KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS, s));
    mixed_alpha_finish_k<<<1, 1, 0, s>>>(dalpha_row, kcuda_g.partials, sm, a, O);
    launchCheck();
}

/* ---- WMIXED: MIXED with given weights w[row][cols] (FairDARTS: sigmoid(alpha)) ----
 * The weights are read in place (wbase = the row, widx = the columns); dw_row[cols[k]] +=
 * (float)<dy, xs[k]> from the same two-pass partials as WSUM, as kcpu's dw[k] added to
 * the row. */
__global__ static void wmixed_dw_finish_k(float *dw_row, const double *partials, kwsum_args a) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int k = 0; k < a.n; k++) {
        double t = 0.0;
        for (int b = 0; b < KCUDA_RED_BLOCKS; b++) t += partials[k * KCUDA_RED_BLOCKS + b];
        dw_row[a.widx[k]] += 0.0f + (float)t; /* CPU: dw[k] (zeroed) += (float)dot, then added to the row */
    }
}

extern "C" void kcuda_wmixed_forward(float *y, const float *w_row, const float *const *xs, const int64_t *cols, int n,
                                     int64_t len, cudaStream_t s) {
    kwsum_args a;
    if (len <= 0 || wsum_args_make(&a, xs, NULL, cols, n)) return;
    wsum_fwd_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(y, a, w_row, len);
    launchCheck();
}

extern "C" void kcuda_wmixed_backward(float *const *dxs, float *dw_row, const float *dy, const float *const *xs,
                                      const float *w_row, const int64_t *cols, int n, int64_t len, unsigned set,
                                      cudaStream_t s) {
    kwsum_args a;
    if (len <= 0 || wsum_args_make(&a, xs, dxs, cols, n)) return;
    a.set = set;
    if (dxs) {
        wsum_bwd_dx_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(a, w_row, dy, len);
        launchCheck();
    }
    if (dw_row && n > 0) {
        kcuda_dot_partials(kcuda_g.partials, xs, dy, n, len, s);
        wmixed_dw_finish_k<<<1, 1, 0, s>>>(dw_row, kcuda_g.partials, a);
        launchCheck();
    }
}
