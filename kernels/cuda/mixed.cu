/* mixed.cu — CUDA twins of kernels/cpu/elementwise.c's weighted sum, row softmax and the
 * fused MIXED / WMIXED ops of DARTS edges (softmax(alpha) or given weights times each
 * candidate's output, summed), forward and backward with the alpha / weight gradient.
 * One thread per output element (grid-stride); the weight gradients are two-pass dot
 * products in a fixed order. Arithmetic follows the CPU line by line. */
#include <math.h>
#include <string.h>

#include "kcuda_internal.cuh"

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

/* Input k at element i: as stored, or through its deferred batch norm. */
__device__ static inline float wsum_in(const kwsum_args &a, int k, int64_t i) {
    return kcuda_affine_at(a.xs[k], a.aff[k], a.C, a.HW, i);
}
/* dx[i] = w * g where set, else dx[i] += w * g (the weighted sums' and MIXED's dxs). */
#define MIXED_U 4 /* elements a thread loads at once in mixed_dot_k */

__device__ static inline void wsum_dx_at(float *dx, bool set, float w, float g, int64_t i) {
    if (set) dx[i] = w * g;
    else dx[i] += w * g;
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
            if (a.dxs[k]) wsum_dx_at(a.dxs[k], a.set >> k & 1u, wbase[a.widx[k]], dy[i], i);
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
    softmax_fwd_k<<<kcuda_blocks(rows), KCUDA_THREADS, 0, s>>>(y, x, rows, K);
    launchCheck();
}
extern "C" void kcuda_softmax_backward(float *dx, const float *dy, const float *y, int rows, int K, cudaStream_t s) {
    if (!dx || rows <= 0 || K <= 0) return;
    softmax_bwd_k<<<kcuda_blocks(rows), KCUDA_THREADS, 0, s>>>(dx, dy, y, rows, K);
    launchCheck();
}

/* aff (may be NULL): per input, NULL or a deferred batch norm's f, s, b over C channels of
 * planes of HW. */
static void wsum_args_affine(kwsum_args *a, const float *const *aff, int C, int HW) {
    for (int k = 0; aff && k < a->n; k++) a->aff[k] = aff[k];
    a->C = C > 0 ? C : 1;
    a->HW = HW > 0 ? HW : 1;
}

/* ---- MIXED and WMIXED: single calls and batches through the same kernels ----
 * Each kernel takes its problems as one parameter, mixed_tab<P, B, K>: B problems' pointers
 * (P: mixed_fwd_p or mixed_bwd_p, K candidates each) and what every problem shares (the
 * candidates' weight columns, n, O, len, C, HW, the set bits), read in place
 * (__grid_constant__). A single call launches B = 1 (K = MIXED_BK candidates, or
 * KCUDA_MAX_WSUM beyond that), a batch B = MIXED_BB problems of at most MIXED_BK candidates:
 * a problem picks its entry from a grid dimension the single kernel leaves at 1, and runs
 * the single kernel's code, so it gets the single call's bits by construction.
 * G (a template flag) says whose weights: false, MIXED's softmax of an alpha row; true,
 * WMIXED's given weight row (FairDARTS' sigmoid(alpha), read in place: no softmax, and the
 * row's gradient is the dot products added into its columns instead of the softmax's
 * backward). Everything else is the same code.
 * The backward: without the row gradient, one elementwise launch for the dxs (mixed_dx_k);
 * with it, one launch of mixed_dot_k, whose block (b, k) adds x_k * dy over the grid-stride
 * set of block b of kcuda_dot_partials (the same elements, order and block tree, so the
 * same partials) and writes dxs[k] over the same elements (one thread per element and
 * candidate, so not where two dxs of a problem alias: an input used twice adds both
 * products from one thread, in mixed_dx_k as before), then the row gradient from the
 * partials by one thread (mixed_finish_k), or in one-launch mode (kcuda_g.one_launch) by
 * the last of the problem's blocks (kcuda_last_block on its own counter). Partials:
 * problem z of a launch at kcuda_g.red + z * n * KCUDA_RED_BLOCKS. */
#ifndef __grid_constant__ /* the CUDA emulator (tests/cuemu): a plain C++ parameter */
#define __grid_constant__
#endif
#define MIXED_BK KCUDA_MIXED_BATCH_INPUTS
/* Problems per batched launch: the backward table of 16 problems of 8 candidates is
 * 3.5 KB, within the 4 KB of kernel parameters every CUDA version and GPU allows. */
#define MIXED_BB 16

template <int K> struct mixed_fwd_p {
    float *y, *sm;          /* the output; MIXED: the softmax of the alpha row (written by block 0) */
    const float *alpha;     /* MIXED: the alpha row (O); WMIXED: the weight row */
    const float *xs[K], *aff[K];
};
template <int K> struct mixed_bwd_p {
    float *dalpha;          /* the alpha (WMIXED: weight) row's gradient (NULL: none asked) */
    const float *sm, *dy;   /* the forward's softmax (WMIXED: the weight row); the output gradient */
    const float *xs[K];
    float *dxs[K];
    const float *aff[K];
};
template <typename P, int B, int K> struct mixed_tab {
    P p[B];
    int widx[K];      /* candidate k's alpha (weight) column */
    int n, O, C, HW;  /* candidates, alpha columns; with aff, element i's channel is i / HW % C */
    unsigned set;     /* backward: bit k: dxs[k] written, not accumulated */
    int dx_in_dot;    /* backward: mixed_dot_k writes the dxs */
    int64_t len;
    double *part;     /* backward: problem z's partials at part + z * n * KCUDA_RED_BLOCKS */
    unsigned *cnt;    /* one-launch: problem z's counter cnt + z; NULL: mixed_finish_k finishes */
};
static_assert(sizeof(mixed_tab<mixed_bwd_p<MIXED_BK>, MIXED_BB, MIXED_BK>) <= 4000, "kernel parameters over 4 KB");
static_assert((int64_t)MIXED_BB * MIXED_BK * KCUDA_RED_BLOCKS <= KCUDA_RED_CAP &&
                  (int64_t)KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS <= KCUDA_RED_CAP && MIXED_BB <= KCUDA_COUNT_CAP,
              "a launch's partials and counters fit the lane's");

/* The forward in one launch. MIXED: each block's thread 0 computes the softmax of the
 * alpha row into shared memory (softmax_row: the bits softmax_fwd_k writes), block 0 also
 * into sm (the backward reads it), then wsum_fwd_k's loop with the weights from shared
 * memory: the same bits as a softmax kernel and then the weighted sum reading sm. O <= 64.
 * WMIXED (G): wsum_fwd_k's loop on the given row. Problem: blockIdx.y. */
template <int B, int K, bool G>
__global__ static void mixed_fwd_k(const __grid_constant__ mixed_tab<mixed_fwd_p<K>, B, K> T) {
    const mixed_fwd_p<K> &p = T.p[B == 1 ? 0 : blockIdx.y];
    __shared__ float sw[G ? 1 : 64];
    if (!G) {
        if (threadIdx.x == 0) {
            softmax_row(sw, p.alpha, T.O);
            if (blockIdx.x == 0)
                for (int k = 0; k < T.O; k++) p.sm[k] = sw[k];
        }
        __syncthreads();
    }
    const float *const w = G ? p.alpha : sw;
    KCUDA_GRID_STRIDE(i, T.len) {
        /* every candidate's value loaded before the first is used (K at most, k < n), then
         * the old sum in the old order */
        const int64_t c = kcuda_channel(i, T.C, T.HW);
        float v[K];
#pragma unroll
        for (int k = 0; k < K; k++)
            if (k < T.n) v[k] = p.xs[k][i];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < K; k++)
            if (k < T.n) s += w[T.widx[k]] * (p.aff[k] ? kcuda_affine_c(v[k], p.aff[k], T.C, c) : v[k]);
        p.y[i] = s;
    }
}

/* dxs[k] += sm[col k] * dy (= where set), k in order by the thread that owns element i: an
 * input used twice (aliased dxs, never written) sees both adds in the CPU's order.
 * Problem: blockIdx.y. */
template <int B, int K>
__global__ static void mixed_dx_k(const __grid_constant__ mixed_tab<mixed_bwd_p<K>, B, K> T) {
    const mixed_bwd_p<K> &p = T.p[B == 1 ? 0 : blockIdx.y];
    KCUDA_GRID_STRIDE(i, T.len) {
        for (int k = 0; k < T.n; k++)
            if (p.dxs[k]) wsum_dx_at(p.dxs[k], T.set >> k & 1u, p.sm[T.widx[k]], p.dy[i], i);
    }
}

/* The row gradient from the partials (part NULL: all 0, no element), each candidate's in
 * index order. MIXED: d alpha_row through the softmax, as the CPU backend's MIXED case: the
 * dot products scattered into columns (absent columns 0; a repeated column keeps the
 * last), then kcpu_softmax_backward's arithmetic on the single row (O <= 64). WMIXED (G):
 * dw_row[col k] += (float)dot, k in order, as kcpu's dw[k] (zeroed) added to the row. One
 * thread. CG: the partials were written by other blocks of this launch (read through L2,
 * see kcuda_last_block); the same values and order either way. */
template <bool CG, bool G>
__device__ static void mixed_finish(float *dalpha, const double *part, const float *sm, const int *widx, int n,
                                    int O) {
    float dcol[G ? 1 : 64];
    for (int j = 0; !G && j < O; j++) dcol[j] = 0.0f;
    for (int k = 0; k < n; k++) {
        double t = 0.0;
        for (int b = 0; part && b < KCUDA_RED_BLOCKS; b++)
            t += CG ? __ldcg(part + k * KCUDA_RED_BLOCKS + b) : part[k * KCUDA_RED_BLOCKS + b];
        if (G) dalpha[widx[k]] += 0.0f + (float)t; /* CPU: dw[k] (zeroed) += (float)dot, then added to the row */
        else dcol[widx[k]] = 0.0f + (float)t;      /* CPU: dw[k] (zeroed) += (float)dot */
    }
    if (G) return;
    double s = 0.0;
    for (int j = 0; j < O; j++) s += (double)dcol[j] * sm[j];
    const float fs = (float)s;
    for (int j = 0; j < O; j++) dalpha[j] += sm[j] * (dcol[j] - fs);
}

/* The row gradient of problem blockIdx.x, by its thread 0. */
template <int B, int K, bool G>
__global__ static void mixed_finish_k(const __grid_constant__ mixed_tab<mixed_bwd_p<K>, B, K> T) {
    if (threadIdx.x != 0) return;
    const int z = B == 1 ? 0 : blockIdx.x;
    const mixed_bwd_p<K> &p = T.p[z];
    mixed_finish<false, G>(p.dalpha, T.part ? T.part + (int64_t)z * T.n * KCUDA_RED_BLOCKS : NULL, p.sm, T.widx, T.n,
                           T.O);
}

/* Block (b, k) of problem blockIdx.z: kcuda_dot_partials' block (b, k) on x_k (through its
 * deferred batch norm) and dy, and with dx_in_dot dxs[k] over the same elements; one-launch,
 * the problem's last block finishes the row gradient. Grid (KCUDA_RED_BLOCKS, n, problems). */
template <int B, int K, bool G>
__global__ static void mixed_dot_k(const __grid_constant__ mixed_tab<mixed_bwd_p<K>, B, K> T) {
    __shared__ double sh[KCUDA_THREADS];
    const int z = B == 1 ? 0 : blockIdx.z, k = blockIdx.y;
    const mixed_bwd_p<K> &p = T.p[z];
    const float *const x = p.xs[k], *const af = p.aff[k];
    float *const dx = T.dx_in_dot ? p.dxs[k] : NULL;
    const bool set = T.set >> k & 1u;
    double acc = 0.0;
    /* The thread's elements i, i + stride, ... in order, MIXED_U at a time: their loads (dy,
     * x, and dx where added to) all issued before the first is used (unconditionally: an
     * element past the end reloads the first), then the old arithmetic in the old order
     * (the same bits; the old loop waited for each element's loads before the next's). */
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const float wk = dx ? p.sm[T.widx[k]] : 0.0f;
    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i0 < T.len; i0 += MIXED_U * stride) {
        float g[MIXED_U], xv[MIXED_U], dv[MIXED_U];
#pragma unroll
        for (int u = 0; u < MIXED_U; u++) {
            const int64_t i = i0 + u * stride, q = i < T.len ? i : i0;
            g[u] = p.dy[q];
            xv[u] = x[q];
            dv[u] = dx && !set ? dx[q] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < MIXED_U; u++) {
            const int64_t i = i0 + u * stride;
            if (i >= T.len) break;
            const double av = kcuda_affine_v(xv[u], af, T.C, T.HW, i);
            acc += av * (double)g[u];
            if (dx) dx[i] = set ? wk * g[u] : dv[u] + wk * g[u];
        }
    }
    const double t = kcuda_block_sum(acc, sh);
    double *const part = T.part + (int64_t)z * T.n * KCUDA_RED_BLOCKS;
    if (threadIdx.x == 0) part[k * KCUDA_RED_BLOCKS + blockIdx.x] = t;
    if (!T.cnt || !kcuda_last_block(T.cnt + z, gridDim.x * gridDim.y)) return;
    if (threadIdx.x == 0) mixed_finish<true, G>(p.dalpha, part, p.sm, T.widx, T.n, T.O);
}

/* A call's problems: HOST arrays, problem i's candidate k at index i * n + k. out: the
 * forward's y or the backward's dalpha (dw) rows (may be NULL: none); in: the alpha
 * (weight) rows or the output gradients; sm: MIXED's softmaxes, WMIXED's backward the
 * weight rows (its forward: NULL); aff, dxs may be NULL (every one NULL). */
typedef struct mixed_args {
    int n, O, C, HW;
    int64_t len;
    unsigned set;
    const int64_t *cols;
    float *const *out, *const *sm, *const *dxs;
    const float *const *in, *const *xs, *const *aff;
} mixed_args;

template <typename P, int B, int K> static void mixed_tab_common(mixed_tab<P, B, K> *T, const mixed_args *a) {
    T->n = a->n;
    T->O = a->O;
    T->C = a->C > 0 ? a->C : 1;
    T->HW = a->HW > 0 ? a->HW : 1;
    T->set = a->set;
    T->len = a->len;
    for (int k = 0; k < a->n; k++) T->widx[k] = a->cols ? (int)a->cols[k] : k;
}

/* Problems i0 .. i0 + m - 1 (m <= B) in one launch. len > 0; MIXED O <= 64. */
template <int B, int K, bool G> static void mixed_fwd_launch(const mixed_args *a, int i0, int m, cudaStream_t s) {
    mixed_tab<mixed_fwd_p<K>, B, K> T = {};
    mixed_tab_common(&T, a);
    for (int j = 0; j < m; j++) {
        const int i = i0 + j;
        mixed_fwd_p<K> &p = T.p[j];
        p.y = a->out[i];
        p.sm = a->sm ? a->sm[i] : NULL;
        p.alpha = a->in[i];
        for (int k = 0; k < a->n; k++) {
            p.xs[k] = a->xs[i * a->n + k];
            p.aff[k] = a->aff ? a->aff[i * a->n + k] : NULL;
        }
    }
    mixed_fwd_k<B, K, G><<<dim3(kcuda_blocks(a->len), (unsigned)m), KCUDA_THREADS, 0, s>>>(T);
    launchCheck();
}

/* Problems i0 .. i0 + m - 1 (m <= B; all asking for the row gradient or none) in one
 * launch per kernel. MIXED O <= 64. */
template <int B, int K, bool G> static void mixed_bwd_launch(const mixed_args *a, int i0, int m, cudaStream_t s) {
    mixed_tab<mixed_bwd_p<K>, B, K> T = {};
    mixed_tab_common(&T, a);
    int any_dx = 0, alias = 0;
    for (int j = 0; j < m; j++) {
        const int i = i0 + j;
        mixed_bwd_p<K> &p = T.p[j];
        p.dalpha = a->out ? a->out[i] : NULL;
        p.sm = a->sm[i];
        p.dy = a->in[i];
        for (int k = 0; k < a->n; k++) {
            p.xs[k] = a->xs[i * a->n + k];
            p.dxs[k] = a->dxs ? a->dxs[i * a->n + k] : NULL;
            p.aff[k] = a->aff ? a->aff[i * a->n + k] : NULL;
            any_dx |= p.dxs[k] != NULL;
            for (int q = 0; q < k; q++) alias |= p.dxs[k] && p.dxs[k] == p.dxs[q];
        }
    }
    const bool dalpha = T.p[0].dalpha != NULL;
    if (a->len > 0 && any_dx && (!dalpha || alias)) { /* the dxs alone, or before the dot products */
        mixed_dx_k<B, K><<<dim3(kcuda_blocks(a->len), (unsigned)m), KCUDA_THREADS, 0, s>>>(T);
        launchCheck();
    }
    if (!dalpha) return;
    if (a->len > 0 && a->n > 0) {
        T.dx_in_dot = any_dx && !alias;
        T.part = kcuda_g.red;
        T.cnt = kcuda_g.one_launch ? kcuda_g.count : NULL;
        mixed_dot_k<B, K, G><<<dim3(KCUDA_RED_BLOCKS, (unsigned)a->n, (unsigned)m), KCUDA_THREADS, 0, s>>>(T);
        launchCheck();
        if (T.cnt) return;
    }
    mixed_finish_k<B, K, G><<<(unsigned)m, 1, 0, s>>>(T);
    launchCheck();
}

/* A single problem through the B = 1 instances (K: its candidates, MIXED_BK or
 * KCUDA_MAX_WSUM; G: WMIXED). */
#define MIXED_SINGLE(launch, a, G, s)                                          \
    do {                                                                       \
        if ((a)->n <= MIXED_BK) launch<1, MIXED_BK, G>((a), 0, 1, (s));        \
        else launch<1, KCUDA_MAX_WSUM, G>((a), 0, 1, (s));                     \
    } while (0)
/* m problems, MIXED_BB at a time (a lone one through B = 1). */
#define MIXED_EACH(launch, a, G, m, s)                                         \
    for (int i0_ = 0; i0_ < (m); i0_ += MIXED_BB) {                            \
        const int m_ = (m) - i0_ < MIXED_BB ? (m) - i0_ : MIXED_BB;            \
        if (m_ == 1) launch<1, MIXED_BK, G>((a), i0_, 1, (s));                 \
        else launch<MIXED_BB, MIXED_BK, G>((a), i0_, m_, (s));                 \
    }

extern "C" void kcuda_mixed_forward(float *y, float *sm, const float *alpha_row, const float *const *xs, const int64_t *cols,
                                    int n, int O, int64_t len, const float *const *aff, int C, int HW, cudaStream_t s) {
    kwsum_args w;
    if (wsum_args_make(&w, xs, NULL, cols, n)) return;
    if (len <= 0 || O > 64) { /* the softmax alone (no output), or a row beyond the shared weights */
        wsum_args_affine(&w, aff, C, HW);
        softmax_fwd_k<<<1, 1, 0, s>>>(sm, alpha_row, 1, O);
        launchCheck();
        if (len <= 0) return;
        wsum_fwd_k<<<kcuda_blocks(len), KCUDA_THREADS, 0, s>>>(y, w, sm, len);
        launchCheck();
        return;
    }
    const mixed_args a = {n, O, C, HW, len, 0u, cols, &y, &sm, NULL, &alpha_row, w.xs, aff};
    MIXED_SINGLE(mixed_fwd_launch, &a, false, s);
}

extern "C" void kcuda_mixed_backward(float *const *dxs, float *dalpha_row, const float *dy, const float *const *xs,
                                     const float *sm, const int64_t *cols, int n, int O, int64_t len, unsigned set,
                                     const float *const *aff, int C, int HW, cudaStream_t s) {
    kwsum_args w;
    if (wsum_args_make(&w, xs, dxs, cols, n)) return;
    if (O > 64) KCUDA_FAIL_("kcuda_mixed_backward", "more than 64 alpha columns", return);
    if (dalpha_row && !kcuda_g.red) KCUDA_FAIL_("kcuda_mixed_backward", "kcuda_init was not called", return);
    const mixed_args a = {n, O, C, HW, len, set, cols, &dalpha_row, (float *const *)&sm, w.dxs, &dy, w.xs, aff};
    MIXED_SINGLE(mixed_bwd_launch, &a, false, s);
}

extern "C" int kcuda_mixed_batch_ok(int n, int O, int64_t len) {
    return n >= 1 && n <= MIXED_BK && O >= 1 && O <= 64 && len > 0;
}
extern "C" int kcuda_wmixed_batch_ok(int n, int64_t len) { return n >= 1 && n <= MIXED_BK && len > 0; }

/* Whether a batched call must be refused (then with an error recorded): m problems outside
 * 1..KCUDA_MAX_BATCH, a shape without a batched path (ok 0), or the backward's row
 * gradients (rows: NULL, or m pointers) for some problems only. *with: they are asked for. */
static int mixed_batch_refused(const char *what, int m, int ok, float *const *rows, int *with) {
    if (m < 1 || m > KCUDA_MAX_BATCH) KCUDA_FAIL_(what, "the number of problems is outside 1..KCUDA_MAX_BATCH", return 1);
    if (!ok) KCUDA_FAIL_(what, "no batched path for this shape (kcuda_mixed_batch_ok, kcuda_wmixed_batch_ok)", return 1);
    int k = 0;
    for (int i = 0; rows && i < m; i++) k += rows[i] != NULL;
    if (k != 0 && k != m) KCUDA_FAIL_(what, "a row gradient for some problems only", return 1);
    if (k && !kcuda_g.red) KCUDA_FAIL_(what, "kcuda_init was not called", return 1);
    *with = k != 0;
    return 0;
}

extern "C" void kcuda_mixed_forward_batch(int m, float *const *y, float *const *sm, const float *const *alpha_row,
                                          const float *const *xs, const int64_t *cols, int n, int O, int64_t len,
                                          const float *const *aff, int C, int HW, cudaStream_t s) {
    int with;
    if (mixed_batch_refused("kcuda_mixed_forward_batch", m, kcuda_mixed_batch_ok(n, O, len), NULL, &with)) return;
    const mixed_args a = {n, O, C, HW, len, 0u, cols, y, sm, NULL, alpha_row, xs, aff};
    MIXED_EACH(mixed_fwd_launch, &a, false, m, s);
}

extern "C" void kcuda_mixed_backward_batch(int m, float *const *dxs, float *const *dalpha_row, const float *const *dy,
                                           const float *const *xs, const float *const *sm, const int64_t *cols, int n,
                                           int O, int64_t len, unsigned set, const float *const *aff, int C, int HW,
                                           cudaStream_t s) {
    int with;
    if (mixed_batch_refused("kcuda_mixed_backward_batch", m, kcuda_mixed_batch_ok(n, O, len), dalpha_row, &with))
        return;
    const mixed_args a = {n, O, C, HW, len, set, cols, with ? dalpha_row : NULL, (float *const *)sm, dxs, dy, xs, aff};
    MIXED_EACH(mixed_bwd_launch, &a, false, m, s);
}

/* ---- WMIXED: MIXED with given weights w[row][cols] (FairDARTS: sigmoid(alpha)) ----
 * The weights are read in place (the row, widx = the columns); dw_row[cols[k]] +=
 * (float)<dy, xs[k]> from the same two-pass partials as WSUM, as kcpu's dw[k] added to
 * the row. The MIXED kernels above with G = true: the forward one launch, the backward as
 * MIXED's (with dw_row the dxs and dot products in one launch, then the one-thread finish
 * unless one-launch mode leaves it to the last block). */
extern "C" void kcuda_wmixed_forward(float *y, const float *w_row, const float *const *xs, const int64_t *cols, int n,
                                     int64_t len, cudaStream_t s) {
    kwsum_args w;
    if (len <= 0 || wsum_args_make(&w, xs, NULL, cols, n)) return;
    const mixed_args a = {n, 0, 1, 1, len, 0u, cols, &y, NULL, NULL, &w_row, w.xs, NULL};
    MIXED_SINGLE(mixed_fwd_launch, &a, true, s);
}

extern "C" void kcuda_wmixed_backward(float *const *dxs, float *dw_row, const float *dy, const float *const *xs,
                                      const float *w_row, const int64_t *cols, int n, int64_t len, unsigned set,
                                      cudaStream_t s) {
    kwsum_args w;
    if (len <= 0 || wsum_args_make(&w, xs, dxs, cols, n)) return;
    float *const dw = n > 0 ? dw_row : NULL; /* no candidate: no dot product, dw_row as it was */
    if (dw && !kcuda_g.red) KCUDA_FAIL_("kcuda_wmixed_backward", "kcuda_init was not called", return);
    const mixed_args a = {n, 0, 1, 1, len, set, cols, &dw, (float *const *)&w_row, w.dxs, &dy, w.xs, NULL};
    MIXED_SINGLE(mixed_bwd_launch, &a, true, s);
}

extern "C" void kcuda_wmixed_forward_batch(int m, float *const *y, const float *const *w_row, const float *const *xs,
                                           const int64_t *cols, int n, int64_t len, cudaStream_t s) {
    int with;
    if (mixed_batch_refused("kcuda_wmixed_forward_batch", m, kcuda_wmixed_batch_ok(n, len), NULL, &with)) return;
    const mixed_args a = {n, 0, 1, 1, len, 0u, cols, y, NULL, NULL, w_row, xs, NULL};
    MIXED_EACH(mixed_fwd_launch, &a, true, m, s);
}

extern "C" void kcuda_wmixed_backward_batch(int m, float *const *dxs, float *const *dw_row, const float *const *dy,
                                            const float *const *xs, const float *const *w_row, const int64_t *cols,
                                            int n, int64_t len, unsigned set, cudaStream_t s) {
    int with;
    if (mixed_batch_refused("kcuda_wmixed_backward_batch", m, kcuda_wmixed_batch_ok(n, len), dw_row, &with)) return;
    const mixed_args a = {n, 0, 1, 1, len, set, cols, with ? dw_row : NULL, (float *const *)w_row, dxs, dy, xs, NULL};
    MIXED_EACH(mixed_bwd_launch, &a, true, m, s);
}
