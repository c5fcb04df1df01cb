/* conv.cu — CUDA 2-D convolution, the twin of kernels/cpu/conv.c, with the same three
 * paths: depthwise (groups == C == K, the hot op of DARTS' separable and dilated
 * convolutions) by our own kernels; 1x1 / pad 0 / dense (any stride) by cuBLAS; all the
 * rest (dense kxk, grouped, asymmetric) by cuDNN's legacy convolution API
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

/* ---- the problems of a launch ----
 * Every own kernel below (the depthwise plane and blocked kernels, the own 1x1 kernels)
 * serves n problems of one descriptor in one launch: their pointers travel in a kb_ptrs<B>
 * by value, and blockIdx.z, which none of them uses otherwise, picks problem z. The single
 * entry points launch B = 1 (a 32-byte table, z = 0), the batched ones
 * (kcuda_conv2d_*_batch) B = KB_MAX: the same device code either way, so each problem gets
 * the bits of a single call. o: the output (y, dx or dw); a, b: the inputs in the kernel's
 * order (x, w / dy, w / dy, x); r: a fused ReLU's input (the data gradients), or NULL;
 * f: a deferred batch norm's coefficients (f, s, b of C channels each) that the input x
 * (the ReLU's input) is read through before the ReLU, or NULL (the depthwise kernels). */
#define KB_MAX KCUDA_MAX_BATCH
template <int B> struct kb_ptrs {
    float *o[B];
    const float *a[B], *b[B], *r[B], *f[B];
};
template <int B> __device__ static inline int kb_z() { return B == 1 ? 0 : (int)blockIdx.z; }
/* Problems [i0, i0 + m) of P as the first m of a table. */
template <int B> static kb_ptrs<B> kb_slice(const kb_ptrs<B> &P, int i0, int m) {
    kb_ptrs<B> q;
    memset(&q, 0, sizeof q);
    for (int i = 0; i < m; i++) {
        q.o[i] = P.o[i0 + i];
        q.a[i] = P.a[i0 + i];
        q.b[i] = P.b[i0 + i];
        q.r[i] = P.r[i0 + i];
        q.f[i] = P.f[i0 + i];
    }
    return q;
}
/* Problems per launch when each needs `per` doubles of the lane's partials and, with
 * counters, `counters` of them: as many as fit (at least 1: a single call fits). */
static int kb_fit(int64_t per, unsigned *cnt, int64_t counters) {
    int64_t f = per > 0 ? KCUDA_RED_CAP / per : KB_MAX;
    if (cnt && counters > 0 && f > KCUDA_COUNT_CAP / counters) f = KCUDA_COUNT_CAP / counters;
    if (f > KB_MAX) f = KB_MAX;
    return f < 1 ? 1 : (int)f;
}

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

/* ---- depthwise, one plane per block (kernel sizes known at compile time) ----
 * The general kernels above index global memory with 64-bit divisions per element and
 * test every tap's bounds. These stage one (sample, channel) plane in shared memory
 * (the input zero-padded for the forward; dy as is for the data gradient), keep the
 * channel's R*S weights in registers, and give each thread a few outputs. The arithmetic
 * is the general kernels': forward taps in (r, s) order from 0 (a padded tap adds w*0,
 * which leaves the sum as it was), data gradient onto the running dx with r descending
 * and s ascending. Planes whose stage exceeds DW_PLANE_MAX_FLOATS use the general kernels. */
#define DW_PLANE_MAX_FLOATS 12288 /* 48 KB: the static shared-memory limit */

static unsigned dw_plane_threads(int64_t outs) {
    int64_t t = (outs + 31) / 32 * 32;
    return (unsigned)(t < 64 ? 64 : t > KCUDA_THREADS ? KCUDA_THREADS : t);
}

/* tile[i] = value i of the padded plane (Hp x Wp; 0 in the padding, through the ReLU
 * where RELU), DW_U values per thread at a time, all loaded before any is stored (a load
 * from inside the plane for every lane, the padding's from xp[0], then selected): DW_U
 * loads in flight per thread where the old loop waited for each before the next (the
 * same values, so the same bits). */
#define DW_U 4
/* af: x read through a deferred batch norm's coefficients of channel c first (padding
 * stays 0: it pads the convolution's input, the ReLU's output). */
template <bool RELU>
__device__ static inline void dw_stage_plane(float *tile, const float *xp, const kconv2d_desc &d, int Hp, int Wp,
                                             const float *af, int c) {
    const int n = Hp * Wp;
    for (int i0 = threadIdx.x; i0 < n; i0 += DW_U * blockDim.x) {
        float v[DW_U];
        bool in[DW_U];
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x;
            const int ih = i / Wp - d.pad_h, iw = i % Wp - d.pad_w;
            in[u] = i < n && ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
            v[u] = xp[in[u] ? ih * d.W + iw : 0];
        }
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x;
            float t = in[u] ? (af ? kcuda_affine_c(v[u], af, d.C, c) : v[u]) : 0.0f;
            if (RELU) t = t > 0.0f ? t : 0.0f; /* kcuda_relu_forward's expression */
            if (i < n) tile[i] = t;
        }
    }
}
/* tile[i] = a[i], i < n, DW_U at a time as above. */
__device__ static inline void dw_stage(float *tile, const float *a, int n) {
    for (int i0 = threadIdx.x; i0 < n; i0 += DW_U * blockDim.x) {
        float v[DW_U];
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x;
            v[u] = a[i < n ? i : 0];
        }
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x;
            if (i < n) tile[i] = v[u];
        }
    }
}

template <int R, int S, bool RELU, int B>
__global__ static void dw_fwd_plane_k(kb_ptrs<B> P, kconv2d_desc d) {
    extern __shared__ float tile[];
    const int z = kb_z<B>();
    float *y = P.o[z];
    const float *x = P.a[z], *w = P.b[z];
    const int64_t plane = blockIdx.x;
    const int c = (int)(plane % d.C);
    const int Hp = d.H + 2 * d.pad_h, Wp = d.W + 2 * d.pad_w;
    const float *xp = x + plane * d.H * d.W;
    dw_stage_plane<RELU>(tile, xp, d, Hp, Wp, P.f[z], c);
    float wr[R * S];
#pragma unroll
    for (int t = 0; t < R * S; t++) wr[t] = w[c * R * S + t];
    __syncthreads();
    const int PQ = d.P * d.Q;
    float *yp = y + plane * PQ;
    for (int o = threadIdx.x; o < PQ; o += blockDim.x) {
        const int p = o / d.Q, q = o - p * d.Q;
        const float *tp = tile + p * d.stride_h * Wp + q * d.stride_w;
        float acc = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int s_ = 0; s_ < S; s_++) acc += wr[r * S + s_] * tp[r * d.dil_h * Wp + s_ * d.dil_w];
        yp[o] = acc;
    }
}

/* RELU: xr is the fused ReLU's input; the correlation is summed from 0 (as into the
 * ReLU's zeroed output gradient) and added to dx where xr > 0, as kcuda_relu_backward. */
template <int R, int S, bool STRIDED, bool RELU, int B>
__global__ static void dw_bwd_data_plane_k(kb_ptrs<B> P, kconv2d_desc d, int set) {
    extern __shared__ float tile[];
    const int z = kb_z<B>();
    float *dx = P.o[z];
    const float *dy = P.a[z], *w = P.b[z], *xr = P.r[z], *af = P.f[z];
    const int64_t plane = blockIdx.x;
    const int c = (int)(plane % d.C);
    const int PQ = d.P * d.Q, HW = d.H * d.W;
    const float *gp = dy + plane * PQ;
    dw_stage(tile, gp, PQ);
    float wr[R * S];
#pragma unroll
    for (int t = 0; t < R * S; t++) wr[t] = w[c * R * S + t];
    __syncthreads();
    float *xp = dx + plane * HW;
    /* DW_U of the thread's outputs at a time: their global reads (dx where added to, the
     * ReLU's input) issued together first (an output past the plane rereads the first),
     * then each output as before (the same bits) */
    for (int i0 = threadIdx.x; i0 < HW; i0 += DW_U * blockDim.x) {
        float ov[DW_U], rv[DW_U];
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x, q = i < HW ? i : i0;
            ov[u] = set ? 0.0f : xp[q];
            rv[u] = RELU ? xr[plane * HW + q] : 0.0f;
            if (RELU && af) rv[u] = kcuda_affine_c(rv[u], af, d.C, c); /* the ReLU's input */
        }
#pragma unroll
        for (int u = 0; u < DW_U; u++) {
            const int i = i0 + u * (int)blockDim.x;
            if (i >= HW) break;
            const int h = i / d.W, wi = i - h * d.W;
            float v = RELU || set ? 0.0f : ov[u];
#pragma unroll
            for (int r = R - 1; r >= 0; r--) {
                int p = h + d.pad_h - r * d.dil_h;
                if (p < 0) continue;
                if (STRIDED) {
                    if (p % d.stride_h) continue;
                    p /= d.stride_h;
                }
                if (p >= d.P) continue;
#pragma unroll
                for (int s_ = 0; s_ < S; s_++) {
                    int q = wi + d.pad_w - s_ * d.dil_w;
                    if (q < 0) continue;
                    if (STRIDED) {
                        if (q % d.stride_w) continue;
                        q /= d.stride_w;
                    }
                    if (q >= d.Q) continue;
                    v += wr[r * S + s_] * tile[p * d.Q + q];
                }
            }
            if (RELU) {
                const float g = rv[u] > 0.0f ? v : 0.0f;
                xp[i] = set ? g : ov[u] + g;
            } else {
                xp[i] = v;
            }
        }
    }
}

/* Whether the plane kernels take d (forward and data gradient). */
static int dw_plane_ok(const kconv2d_desc *d) {
    const int64_t fwd = (int64_t)(d->H + 2 * d->pad_h) * (d->W + 2 * d->pad_w), bwd = (int64_t)d->P * d->Q,
                  planes = (int64_t)d->N * d->C;
    return fwd <= DW_PLANE_MAX_FLOATS && bwd <= DW_PLANE_MAX_FLOATS && planes > 0 && planes <= 0x7fffffff &&
           d->R == d->S && (d->R == 3 || d->R == 5 || d->R == 7);
}

/* dw_fwd_plane_run / dw_bwd_data_plane_run: the first n problems of P (grid z); 1 when a
 * plane kernel ran (d depthwise). relu: the forward reads x through a ReLU; the data
 * gradient's r entries are the ReLU's inputs. */
template <int B>
static int dw_fwd_plane_run(const kb_ptrs<B> &P, int n, const kconv2d_desc *d, int relu, cudaStream_t s) {
    const int64_t tile = (int64_t)(d->H + 2 * d->pad_h) * (d->W + 2 * d->pad_w), planes = (int64_t)d->N * d->C;
    if (!dw_plane_ok(d)) return 0;
    const unsigned th = dw_plane_threads((int64_t)d->P * d->Q);
    const size_t sh = (size_t)tile * sizeof(float);
    const dim3 grid((unsigned)planes, 1, (unsigned)n);
#define DW_FWD_CASE(r, s_)                                                                 \
    if (d->R == r && d->S == s_) {                                                       \
        if (relu) dw_fwd_plane_k<r, s_, true, B><<<grid, th, sh, s>>>(P, *d);           \
        else dw_fwd_plane_k<r, s_, false, B><<<grid, th, sh, s>>>(P, *d);               \
    } else
    DW_FWD_CASE(3, 3) DW_FWD_CASE(5, 5) DW_FWD_CASE(7, 7) return 0;
#undef DW_FWD_CASE
    launchCheckR(1);
    return 1;
}
static int dw_fwd_plane(float *y, const float *x, const float *w, const kconv2d_desc *d, int relu, const float *af,
                        cudaStream_t s) {
    const kb_ptrs<1> P = {{y}, {x}, {w}, {NULL}, {af}};
    return dw_fwd_plane_run(P, 1, d, relu, s);
}

template <int B>
static int dw_bwd_data_plane_run(const kb_ptrs<B> &P, int n, const kconv2d_desc *d, int relu, int set,
                                 cudaStream_t s) {
    const int64_t tile = (int64_t)d->P * d->Q, planes = (int64_t)d->N * d->C;
    if (!dw_plane_ok(d)) return 0;
    const unsigned th = dw_plane_threads((int64_t)d->H * d->W);
    const size_t sh = (size_t)tile * sizeof(float);
    const bool strided = d->stride_h != 1 || d->stride_w != 1;
    const dim3 grid((unsigned)planes, 1, (unsigned)n);
#define DW_BWD_LAUNCH(r, s_, st, rl) dw_bwd_data_plane_k<r, s_, st, rl, B><<<grid, th, sh, s>>>(P, *d, set)
#define DW_BWD_CASE(r, s_)                                                                         \
    if (d->R == r && d->S == s_) {                                                               \
        if (strided) {                                                                           \
            if (relu) DW_BWD_LAUNCH(r, s_, true, true); else DW_BWD_LAUNCH(r, s_, true, false);    \
        } else {                                                                                 \
            if (relu) DW_BWD_LAUNCH(r, s_, false, true); else DW_BWD_LAUNCH(r, s_, false, false);  \
        }                                                                                        \
    } else
    DW_BWD_CASE(3, 3) DW_BWD_CASE(5, 5) DW_BWD_CASE(7, 7) return 0;
#undef DW_BWD_CASE
#undef DW_BWD_LAUNCH
    launchCheckR(1);
    return 1;
}
static int dw_bwd_data_plane(float *dx, const float *dy, const float *w, const float *xr, const float *af,
                             const kconv2d_desc *d, int set, cudaStream_t s) {
    const kb_ptrs<1> P = {{dx}, {dy}, {w}, {xr}, {af}};
    return dw_bwd_data_plane_run(P, 1, d, xr != NULL, set, s);
}

/* One block per tap (c, r, s): threads take (n, p, q) in a fixed grid-stride pattern
 * and sum dy * x in double; a fixed tree combines them. Deterministic, no atomics. The
 * general path, for kernel sizes without an instance of dw_bwd_filter_part_k below. */
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

/* A block's RS tap sums acc (one set per thread) into out[0..RS): fixed warp trees, then
 * the warps in order (deterministic). sh: RS x KCUDA_THREADS/32 doubles of shared memory. */
template <int RS>
__device__ static void dw_filter_block_partials(double *out, const double *acc, double (*sh)[KCUDA_THREADS / 32]) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int t = 0; t < RS; t++) {
        const double v = kcuda_warp_sum(acc[t]);
        if (lane == 0) sh[t][warp] = v;
    }
    __syncthreads();
    for (int t = threadIdx.x; t < RS; t += blockDim.x) {
        double v = 0.0;
        for (int w = 0; w < KCUDA_THREADS / 32; w++) v += sh[t][w];
        out[t] = v;
    }
}

/* Tap t of channel c: its G partials in range order (the partials through L2: see
 * kcuda_last_block). */
__device__ static inline double dw_tap_total(const double *part, int64_t c, int64_t t, int RS, int G) {
    double v = 0.0;
#pragma unroll 4
    for (int g = 0; g < G; g++) v += __ldcg(part + (c * G + g) * RS + t);
    return v;
}

/* One-launch mode (cnt not NULL; DARTSC_CUDA_ONE_LAUNCH): after block (g, c) wrote its
 * partials, the last of channel c's G blocks adds them to dw as dw_filter_finish_k does
 * (the same function, the same bits). Call from every thread. */
__device__ static inline void dw_filter_last(float *dw, const double *part, unsigned *cnt, int c, int RS, int G) {
    if (!cnt || !kcuda_last_block(cnt + c, (unsigned)G)) return;
    for (int t = threadIdx.x; t < RS; t += blockDim.x) dw[(int64_t)c * RS + t] += (float)dw_tap_total(part, c, t, RS, G);
}

/* The filter gradient for an R x S kernel known at compile time: block (g, c) takes
 * range g of channel c's N*P*Q outputs and sums all R*S taps at once (each dy read once,
 * the taps' products in registers, in double), then writes one partial per tap to
 * part[(c*G + g)*RS + tap] by fixed warp trees and the warps in order;
 * dw_filter_finish_k adds a tap's G partials in range order. Deterministic. Grid
 * C x G instead of one block per tap: DARTS' 16-channel 3x3 layers had 144 blocks, each
 * walking all N*P*Q outputs with 64-bit divisions. */
template <int R, int S, bool RELU, int B, int U>
__global__ static void dw_bwd_filter_part_k(double *part, kb_ptrs<B> P, kconv2d_desc d, int G, unsigned *cnt) {
    constexpr int RS = R * S;
    __shared__ double sh[RS][KCUDA_THREADS / 32];
    const int z = kb_z<B>();
    float *dw = P.o[z];
    const float *dy = P.a[z], *x = P.b[z], *af = P.f[z];
    part += (int64_t)z * d.C * G * RS; /* problem z's partials and counters */
    if (cnt) cnt += (int64_t)z * d.C;
    const int c = blockIdx.y;
    const unsigned Q = (unsigned)d.Q, PQ = (unsigned)d.P * Q, total = (unsigned)d.N * PQ;
    const unsigned chunk = (total + G - 1) / G, j0 = blockIdx.x * chunk;
    const unsigned j1 = j0 + chunk < total ? j0 + chunk : total;
    double acc[RS];
#pragma unroll
    for (int t = 0; t < RS; t++) acc[t] = 0.0;
    /* U of the thread's outputs at a time, in order: the gradient and the R x S input
     * taps of each loaded first (a tap outside the plane, or an output past the range,
     * loads a valid element and is skipped), then added tap by tap as before (the same
     * sums; the old loop waited for each output's loads before the next output's). U =
     * dw_filter_u(R): DW_U up to 3x3; 2 for 5x5 and 1 for 7x7, whose 4 x R x S taps
     * beside the RS double sums spilled (sm_90 ptxas at 255 registers: 5x5 44-76 bytes,
     * 7x7 ~1 KB of local memory a thread); 1 with DARTSC_CUDA_DW_FILTER_U1. Any U gives
     * the same sums: a tap's products are added in the order of the thread's outputs
     * whatever their grouping. */
    for (unsigned j0t = j0 + threadIdx.x; j0t < j1; j0t += U * blockDim.x) {
        float gv[U], xv[U][RS];
        bool ok[U][RS];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const unsigned j = j0t + u * blockDim.x, jj = j < j1 ? j : j0t;
            const unsigned n = jj / PQ, pq = jj - n * PQ, p = pq / Q, q = pq - p * Q;
            const int64_t pl = (int64_t)n * d.C + c;
            gv[u] = dy[pl * PQ + pq];
            const float *xp = x + pl * d.H * d.W;
            const int ih0 = (int)p * d.stride_h - d.pad_h, iw0 = (int)q * d.stride_w - d.pad_w;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int ih = ih0 + r * d.dil_h;
#pragma unroll
                for (int s = 0; s < S; s++) {
                    const int iw = iw0 + s * d.dil_w;
                    const bool in = j < j1 && ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
                    ok[u][r * S + s] = in;
                    xv[u][r * S + s] = xp[in ? ih * d.W + iw : 0];
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const double g = gv[u];
#pragma unroll
            for (int t = 0; t < RS; t++)
                if (ok[u][t]) {
                    float v = xv[u][t];
                    if (af) v = kcuda_affine_c(v, af, d.C, c);
                    if (RELU) v = v > 0.0f ? v : 0.0f;
                    acc[t] += g * (double)v;
                }
        }
    }
    dw_filter_block_partials<RS>(part + ((int64_t)c * G + blockIdx.x) * RS, acc, sh);
    dw_filter_last(dw, part, cnt, c, RS, G);
}

/* dw[c*RS + t] += the G partials of (c, t) in range order; one thread per tap. */
template <int B>
__global__ static void dw_filter_finish_k(kb_ptrs<B> P, const double *part, int C, int RS, int G) {
    const int z = kb_z<B>();
    float *dw = P.o[z];
    part += (int64_t)z * C * G * RS;
    KCUDA_GRID_STRIDE(i, (int64_t)C * RS) {
        const int64_t c = i / RS, t = i % RS;
        dw[i] += (float)dw_tap_total(part, c, t, RS, G);
    }
}

/* The lane's counters where the filter gradient of C channels runs in one launch, else
 * NULL (two launches: off, or more channels than counters). */
static unsigned *dw_filter_one_launch(int C) {
    return kcuda_g.one_launch && kcuda_g.count && C <= KCUDA_COUNT_CAP ? kcuda_g.count : NULL;
}

/* dw_bwd_filter_part_k's outputs a thread at a time for an R x R kernel (see there). */
constexpr int dw_filter_u(int R) { return R * R <= 9 ? DW_U : R * R <= 25 ? 2 : 1; }

/* Output ranges per channel for dw_bwd_filter_part_k: about KCUDA_TARGET_BLOCKS blocks,
 * no range under 256 outputs (one per thread), the partials within kcuda_g.red; 0 when
 * the outputs do not fit 32-bit indices (then the general kernel runs). */
static int dw_filter_groups(const kconv2d_desc *d) {
    const int64_t total = (int64_t)d->N * d->P * d->Q, RS = (int64_t)d->R * d->S;
    if (total >= ((int64_t)1 << 31) || (int64_t)d->H * d->W >= ((int64_t)1 << 31)) return 0;
    int64_t g = (KCUDA_TARGET_BLOCKS + d->C - 1) / d->C;
    const int64_t by_size = (total + KCUDA_THREADS - 1) / KCUDA_THREADS;
    if (g > by_size) g = by_size;
    if (g > 1024) g = 1024;
    while (g > 1 && (int64_t)d->C * g * RS > KCUDA_RED_CAP) g /= 2;
    if ((int64_t)d->C * g * RS > KCUDA_RED_CAP) return 0;
    return g < 1 ? 1 : (int)g;
}

/* The filter gradient by planes (opt-in: DARTSC_CUDA_DW_FILTER_PLANES=1, until measured
 * against dw_bwd_filter_part_k on a device; bench/cuda_kernels times both): block (g, c)
 * takes channel c of samples [g*spg, (g+1)*spg); per sample it stages the zero-padded x
 * plane in shared memory (as dw_fwd_plane_k, through the fused ReLU), and each thread
 * takes outputs o, reads dy once and adds dy * x at all R*S taps from the tile: no bounds
 * tests, no 64-bit index arithmetic, x read from global memory once. Per sample, the
 * float sums of a thread (at most ceil(P*Q / threads) products per tap) are added to
 * double ones; the block's totals go to part[(c*G + g)*RS + tap] by warp trees and the
 * warps in order, as dw_bwd_filter_part_k's, and dw_filter_finish_k adds them up. */
template <int R, int S, bool RELU, int B>
__global__ static void dw_bwd_filter_plane_k(double *part, kb_ptrs<B> P, kconv2d_desc d, int G, int spg,
                                             unsigned *cnt) {
    constexpr int RS = R * S;
    extern __shared__ float tile[];
    __shared__ double red_sh[RS][KCUDA_THREADS / 32];
    const int z = kb_z<B>();
    float *dw = P.o[z];
    const float *dy = P.a[z], *x = P.b[z];
    part += (int64_t)z * d.C * G * RS; /* problem z's partials and counters */
    if (cnt) cnt += (int64_t)z * d.C;
    const int c = blockIdx.y;
    const int Hp = d.H + 2 * d.pad_h, Wp = d.W + 2 * d.pad_w, PQ = d.P * d.Q;
    const int n0 = blockIdx.x * spg, n1 = n0 + spg < d.N ? n0 + spg : d.N;
    double accd[RS];
#pragma unroll
    for (int t = 0; t < RS; t++) accd[t] = 0.0;
    for (int n = n0; n < n1; n++) {
        const int64_t plane = (int64_t)n * d.C + c;
        const float *xp = x + plane * d.H * d.W;
        __syncthreads(); /* the previous sample's tile is read */
        dw_stage_plane<RELU>(tile, xp, d, Hp, Wp, P.f[z], c);
        __syncthreads();
        float accf[RS];
#pragma unroll
        for (int t = 0; t < RS; t++) accf[t] = 0.0f;
        const float *gp = dy + plane * PQ;
        for (int o = threadIdx.x; o < PQ; o += blockDim.x) {
            const int p = o / d.Q, q = o - p * d.Q;
            const float g = gp[o];
            const float *tp = tile + p * d.stride_h * Wp + q * d.stride_w;
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int s_ = 0; s_ < S; s_++) accf[r * S + s_] += g * tp[r * d.dil_h * Wp + s_ * d.dil_w];
        }
#pragma unroll
        for (int t = 0; t < RS; t++) accd[t] += accf[t];
    }
    dw_filter_block_partials<RS>(part + ((int64_t)c * G + blockIdx.x) * RS, accd, red_sh);
    dw_filter_last(dw, part, cnt, c, RS, G);
}

/* How the depthwise filter gradient of d runs: by planes (dw_bwd_filter_plane_k: opted
 * in, a padded plane that fits the tile; G sample groups of spg samples) or blocked
 * (dw_bwd_filter_part_k: G output ranges per channel). 0 when neither takes d (then the
 * general kernel runs). */
typedef struct dw_filter_plan {
    int planes, G, spg;
} dw_filter_plan;
static int dw_filter_plan_of(const kconv2d_desc *d, dw_filter_plan *pl) {
    if (!kcuda_g.red) return 0;
    const int64_t RS = (int64_t)d->R * d->S;
    if (kcuda_g.dw_filter_planes && dw_plane_ok(d)) {
        const size_t tile_bytes = (size_t)(d->H + 2 * d->pad_h) * (d->W + 2 * d->pad_w) * sizeof(float);
        int64_t G = (KCUDA_TARGET_BLOCKS + d->C - 1) / d->C;
        if (G > d->N) G = d->N;
        while (G > 1 && (int64_t)d->C * G * RS > KCUDA_RED_CAP) G /= 2;
        /* the tile, the kernel's static red_sh and kcuda_last_block's flag (16 bytes with
         * alignment) within 48 KB; the partials within kcuda_g.red */
        if (tile_bytes + (size_t)RS * (KCUDA_THREADS / 32) * sizeof(double) + 16 <= 48 * 1024 &&
            (int64_t)d->C * G * RS <= KCUDA_RED_CAP && G >= 1) {
            const int spg = (int)((d->N + G - 1) / G);
            *pl = (dw_filter_plan){1, (int)((d->N + spg - 1) / spg) /* no empty group */, spg};
            return 1;
        }
    }
    const int G = dw_filter_groups(d);
    if (G <= 0 || d->R != d->S || (d->R != 1 && d->R != 3 && d->R != 5 && d->R != 7)) return 0;
    *pl = (dw_filter_plan){0, G, 0};
    return 1;
}

/* The filter gradients of the first n problems of P by plan pl: the first kernel, then
 * (two-launch mode) dw_filter_finish_k, each once for as many problems as the lane's
 * partials (C*G*RS doubles a problem) and counters (C a problem) hold. */
template <int B>
static void dw_filter_run(const kb_ptrs<B> &P, int n, const kconv2d_desc *d, const dw_filter_plan *pl, int relu,
                          cudaStream_t s) {
    const int RS = d->R * d->S, G = pl->G;
    unsigned *cnt = dw_filter_one_launch(d->C);
    const int fit = kb_fit((int64_t)d->C * G * RS, cnt, d->C);
    const size_t sh = pl->planes ? (size_t)(d->H + 2 * d->pad_h) * (d->W + 2 * d->pad_w) * sizeof(float) : 0;
    for (int i0 = 0; i0 < n; i0 += fit) {
        const int m = n - i0 < fit ? n - i0 : fit;
        const kb_ptrs<B> Q = kb_slice(P, i0, m);
        const dim3 grid((unsigned)G, (unsigned)d->C, (unsigned)m);
#define DW_FPLANE(r, s_, rl) \
    dw_bwd_filter_plane_k<r, s_, rl, B><<<grid, KCUDA_THREADS, sh, s>>>(kcuda_g.red, Q, *d, G, pl->spg, cnt)
#define DW_FPART_U(r, s_, rl, u) \
    dw_bwd_filter_part_k<r, s_, rl, B, u><<<grid, KCUDA_THREADS, 0, s>>>(kcuda_g.red, Q, *d, G, cnt)
#define DW_FPART(r, s_, rl)                                                           \
    do {                                                                              \
        if (kcuda_g.dw_filter_u1) DW_FPART_U(r, s_, rl, 1);                           \
        else DW_FPART_U(r, s_, rl, dw_filter_u(r));                                   \
    } while (0)
#define DW_FILTER_CASE(r, s_)                                                         \
    if (d->R == r && d->S == s_) {                                                    \
        if (pl->planes) {                                                             \
            if (relu) DW_FPLANE(r, s_, true); else DW_FPLANE(r, s_, false);           \
        } else {                                                                      \
            if (relu) DW_FPART(r, s_, true); else DW_FPART(r, s_, false);             \
        }                                                                             \
    } else
        DW_FILTER_CASE(3, 3) DW_FILTER_CASE(5, 5) DW_FILTER_CASE(7, 7) if (d->R == 1 && d->S == 1 && !pl->planes) {
            if (relu) DW_FPART(1, 1, true); else DW_FPART(1, 1, false);
        } else KCUDA_FAIL_("dw_filter_run", "no filter-gradient kernel for this kernel size", return);
#undef DW_FILTER_CASE
#undef DW_FPART
#undef DW_FPART_U
#undef DW_FPLANE
        launchCheck();
        if (cnt) continue; /* the last blocks added the partials */
        dw_filter_finish_k<B><<<dim3(kcuda_blocks((int64_t)d->C * RS), 1, (unsigned)m), KCUDA_THREADS, 0, s>>>(
            Q, kcuda_g.red, d->C, RS, G);
        launchCheck();
    }
}

/* 1 when an instance of dw_bwd_filter_part_k (or, opted in, dw_bwd_filter_plane_k) ran. */
static int dw_filter_blocked(float *dw, const float *dy, const float *x, const float *af, const kconv2d_desc *d,
                             int relu, cudaStream_t s) {
    dw_filter_plan pl;
    if (!dw_filter_plan_of(d, &pl)) return 0;
    const kb_ptrs<1> P = {{dw}, {dy}, {x}, {NULL}, {af}};
    dw_filter_run(P, 1, d, &pl, relu, s);
    return 1;
}

/* ---- 1x1 convolutions (groups 1, no padding) by cuBLAS ----
 * Stride 1: x_n (C,HW) is already the GEMM operand. Other strides (FactorizedReduce's
 * stride 2): the strided pixels are gathered into the scratch as a dense (N,C,P,Q) and
 * the stride-1 path runs on that; the data gradient is computed dense into the scratch and
 * added back at the strided pixels. (cuDNN's deterministic FP32 algorithms took ~270 us
 * per backward at DARTS' shapes.)
 *
 * Filter gradient: dw (K,C) += sum_n dy_n (K,PQ) xs_n^T (PQ,C). One strided-batched GEMM
 * writes a chunk of samples' products (K*C floats each) into the scratch, and
 * pw_filter_sum_k adds them to dw in sample order (in double): one cuBLAS call and one
 * kernel per chunk instead of one GEMM per sample (64 calls per layer at batch 64:
 * 83,000 per DARTS step), and still no race on dw and the same bits run to run. */
#define PW_SCRATCH_CAP ((int64_t)1 << 22) /* floats of sample products per chunk: 16 MB */
static int is_pointwise_strided(const kconv2d_desc *d) {
    return d->R == 1 && d->S == 1 && d->pad_h == 0 && d->pad_w == 0 && d->groups == 1 && !is_pointwise(d);
}
static int pw_chunk(const kconv2d_desc *d) {
    const int64_t kc = (int64_t)d->K * d->C;
    int64_t g = kc > 0 ? PW_SCRATCH_CAP / kc : d->N;
    if (g > d->N) g = d->N;
    return g < 1 ? 1 : (int)g;
}
/* Floats of the strided path's dense copy of x (or of dx) at the front of the scratch. */
static int64_t pw_gather_floats(const kconv2d_desc *d) {
    return is_pointwise_strided(d) ? (int64_t)d->N * (d->C > d->K ? d->C : d->K) * d->P * d->Q : 0;
}

/* dw_z += the sum of ns products of kc floats, problem z's at prod + z ns kc (P.o: dw). */
template <int B> __global__ static void pw_filter_sum_k(kb_ptrs<B> P, const float *prod, int ns, int64_t kc) {
    const int z = kb_z<B>();
    float *dw = P.o[z];
    const float *pz = prod + (int64_t)z * ns * kc;
    KCUDA_GRID_STRIDE(i, kc) {
        double v = 0.0;
        for (int n = 0; n < ns; n++) v += pz[(int64_t)n * kc + i];
        dw[i] += (float)v;
    }
}

/* The strided 1x1's gather and scatters; problem z (kb_ptrs: the batched path) writes
 * P.o[z] from P.a[z]. */
/* xs (N,C,P,Q) = x (N,C,H,W) at rows p*stride_h, columns q*stride_w. */
template <int B> __global__ static void pw_gather_k(kb_ptrs<B> P, kconv2d_desc d) {
    const int z = kb_z<B>();
    float *xs = P.o[z];
    const float *x = P.a[z];
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / PQ;
        const int o = (int)(i - pl * PQ), p = o / d.Q, q = o - p * d.Q;
        xs[i] = x[(pl * d.H + (int64_t)p * d.stride_h) * d.W + (int64_t)q * d.stride_w];
    }
}
/* dx (N,C,H,W) at the strided pixels += dxs (N,C,P,Q). */
template <int B> __global__ static void pw_scatter_add_k(kb_ptrs<B> P, kconv2d_desc d) {
    const int z = kb_z<B>();
    float *dx = P.o[z];
    const float *dxs = P.a[z];
    const int64_t PQ = (int64_t)d.P * d.Q, total = (int64_t)d.N * d.C * PQ;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / PQ;
        const int o = (int)(i - pl * PQ), p = o / d.Q, q = o - p * d.Q;
        dx[(pl * d.H + (int64_t)p * d.stride_h) * d.W + (int64_t)q * d.stride_w] += dxs[i];
    }
}

/* dx (N,C,H,W) = dxs (N,C,P,Q) at the strided pixels, 0 elsewhere: the scatter writing the
 * whole gradient (the runtime then zeroes nothing before it; 0 + v = v, but for a zero's sign). */
template <int B> __global__ static void pw_scatter_set_k(kb_ptrs<B> P, kconv2d_desc d) {
    const int z = kb_z<B>();
    float *dx = P.o[z];
    const float *dxs = P.a[z];
    const int64_t HW = (int64_t)d.H * d.W, total = (int64_t)d.N * d.C * HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int64_t pl = i / HW;
        const int o = (int)(i - pl * HW), h = o / d.W, w = o - h * d.W;
        const int p = h / d.stride_h, q = w / d.stride_w;
        const bool on = h == p * d.stride_h && w == q * d.stride_w && p < d.P && q < d.Q;
        dx[i] = on ? dxs[(pl * d.P + p) * d.Q + q] : 0.0f;
    }
}

/* ---- small 1x1 convolutions by our own kernels (opt-in: DARTSC_CUDA_OWN_1X1=1) ----
 * At DARTS' shapes (C, K <= 64, thousands of pixels per sample) a 1x1 convolution is a
 * pass over memory with little arithmetic (K*C multiply-adds per pixel): what decides its
 * time is how many bytes each multiprocessor has in flight. The forward and data gradient
 * give a thread 4 adjacent pixels (1 where they cannot be loaded as one 16-byte access)
 * and a register block of 16 output channels, weights in shared memory; the filter
 * gradient gives a thread a 4 x 4 tile of (k, c) outputs and a lane of pixel groups; the
 * blocks' partial sums are added in a fixed order (deterministic); with them a ReLU folds
 * into a 1x1 too. Measured on the H200 before session 16 (docs/BENCHMARKS.md,
 * 2026-12-04): forward 12.5 and data gradient 11.1 us per call, about cuBLAS's, but the
 * filter gradient 50 us against cuBLAS's ~19, and a whole first-order step 0.151 s against
 * 0.117 s with cuBLAS: latency-bound kernels (about four 4-byte loads in flight per
 * thread; the filter gradient one block per multiprocessor with a barrier per 32-pixel
 * tile and a one-block finish adding 132 partials per output in series). Session 16 rewrote
 * all three for loads in flight (below; bench/cuda_kernels times them against cuBLAS, and
 * bench/gpu.sh's DARTSC_CUDA_OWN_1X1 rows a step); cuBLAS stays the default until a
 * device has measured them. */
#define PW_SMALL_MAX_W 4096 /* K*C: the filter gradient's outputs, 16 per thread of a block */
#define PW_KB 16            /* output channels per register block */

/* out[n, o, p] (+)= sum_i M(o, i) in[n, i, p], o < Ko, i < Ci, over HW pixels per sample;
 * M(o, i) = w[o*Ci + i] (forward: Ko = K, Ci = C), or w[i*Ko + o] (TRANS, data gradient:
 * Ko = C, Ci = K, w (K,C)). Block (b, y) takes output channels [y*PW_KB, y*PW_KB + PW_KB)
 * (its weights staged in shared memory) of a grid-stride set of pixel groups, V
 * consecutive pixels of one sample per thread (V = 4: one 16-byte load per input channel,
 * where HW % 4 == 0 and every tensor is 16-byte aligned; else V = 1). Each output's sum
 * runs over i in order from 0, one fused multiply-add per term, then is added to out
 * (ACC): the same bits for V = 1 and 4 and for any grid. The input channels go in runs of
 * PW_IRUN whose loads are all issued before the run's multiply-adds (the old loop had
 * about four loads of 4 bytes in flight per thread: latency-bound, 12.5 us a call on the
 * H200 for 4 MB in and out); a weight read from shared memory serves V pixels. */
#define PW_THREADS 128
#define PW_IRUN 8
/* RELU_IN: in is a fused ReLU's input, read as max(0, in). RELU_OUT: out is the gradient
 * of a fused ReLU's input xr: the sum counts where xr > 0 (added with ACC, as
 * kcuda_relu_backward adds the ReLU's output gradient; written without). */
template <int V> __device__ static inline void pw_ldv(float *v, const float *p) {
    if (V == 4) {
        const float4 q = kcuda_ld4(p);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
        v[0] = *p;
    }
}
template <int V> __device__ static inline void pw_stv(float *p, const float *v) {
    if (V == 4) *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    else *p = v[0];
}
template <bool TRANS, bool ACC, bool RELU_IN, bool RELU_OUT, int V, int B>
__global__ static void __launch_bounds__(PW_THREADS) pw_small_k(kb_ptrs<B> P, int N, int Ci, int Ko, int HW) {
    extern __shared__ float ws[]; /* ws[j * Ci + i] = M(o0 + j, i) */
    const int z = kb_z<B>();
    float *out = P.o[z];
    const float *in = P.a[z], *w = P.b[z], *xr = P.r[z];
    const int o0 = blockIdx.y * PW_KB, nk = Ko - o0 < PW_KB ? Ko - o0 : PW_KB;
    for (int e = threadIdx.x; e < nk * Ci; e += blockDim.x) {
        const int j = e / Ci, i = e - j * Ci, o = o0 + j;
        ws[e] = TRANS ? w[i * Ko + o] : w[o * Ci + i];
    }
    __syncthreads();
    const int64_t groups = (int64_t)N * HW / V; /* V divides HW */
    KCUDA_GRID_STRIDE(g, groups) {
        const int64_t t = g * V, n = t / HW;
        const int p = (int)(t - n * HW);
        const float *ip = in + n * Ci * HW + p;
        float acc[PW_KB][V];
#pragma unroll
        for (int j = 0; j < PW_KB; j++)
#pragma unroll
            for (int e = 0; e < V; e++) acc[j][e] = 0.0f;
        for (int i0 = 0; i0 < Ci; i0 += PW_IRUN) {
            float xv[PW_IRUN][V];
#pragma unroll
            for (int r = 0; r < PW_IRUN; r++) /* the run's loads first */
                if (i0 + r < Ci) pw_ldv<V>(xv[r], ip + (int64_t)(i0 + r) * HW);
#pragma unroll
            for (int r = 0; r < PW_IRUN; r++) {
                if (i0 + r >= Ci) break;
                if (RELU_IN)
#pragma unroll
                    for (int e = 0; e < V; e++) xv[r][e] = xv[r][e] > 0.0f ? xv[r][e] : 0.0f;
                const float *wr = ws + i0 + r;
                if (nk == PW_KB) { /* a full register block: no test per channel */
#pragma unroll
                    for (int j = 0; j < PW_KB; j++) {
                        const float m = wr[j * Ci];
#pragma unroll
                        for (int e = 0; e < V; e++) acc[j][e] = __fmaf_rn(m, xv[r][e], acc[j][e]);
                    }
                } else {
#pragma unroll
                    for (int j = 0; j < PW_KB; j++)
                        if (j < nk) {
                            const float m = wr[j * Ci];
#pragma unroll
                            for (int e = 0; e < V; e++) acc[j][e] = __fmaf_rn(m, xv[r][e], acc[j][e]);
                        }
                }
            }
        }
        float *op = out + (n * Ko + o0) * HW + p;
        const float *rp = RELU_OUT ? xr + (n * Ko + o0) * HW + p : NULL;
#pragma unroll
        for (int j = 0; j < PW_KB; j++)
            if (j < nk) {
                float *q = op + (int64_t)j * HW;
                float g4[V], r4[V], o4[V];
#pragma unroll
                for (int e = 0; e < V; e++) g4[e] = acc[j][e];
                if (RELU_OUT) {
                    pw_ldv<V>(r4, rp + (int64_t)j * HW);
#pragma unroll
                    for (int e = 0; e < V; e++) g4[e] = r4[e] > 0.0f ? g4[e] : 0.0f;
                }
                if (ACC) {
                    pw_ldv<V>(o4, q);
#pragma unroll
                    for (int e = 0; e < V; e++) g4[e] = o4[e] + g4[e];
                }
                pw_stv<V>(q, g4);
            }
    }
}

/* Every tensor of the first n problems (o, a, and r where given) 16-byte aligned. */
template <int B> static bool kb_io_aligned16(const kb_ptrs<B> &P, int n) {
    for (int i = 0; i < n; i++)
        if (((uintptr_t)P.o[i] | (uintptr_t)P.a[i] | (uintptr_t)P.r[i]) & 15) return false;
    return true;
}

/* Launch of pw_small_k for the first n problems of P: grid (pixel-group blocks,
 * output-channel blocks, problems). */
template <bool TRANS, bool ACC, bool RELU_IN, bool RELU_OUT, int B>
static void pw_small_launch(const kb_ptrs<B> &P, int n, int N, int Ci, int Ko, int64_t HW, cudaStream_t s) {
    const int64_t px = (int64_t)N * HW;
    if (px <= 0 || Ko <= 0) return;
    const int V = HW % 4 == 0 && kb_io_aligned16(P, n) ? 4 : 1;
    int64_t bx = (px / V + PW_THREADS - 1) / PW_THREADS;
    if (bx > 65535LL * 32) bx = 65535LL * 32;
    const dim3 grid((unsigned)bx, (unsigned)((Ko + PW_KB - 1) / PW_KB), (unsigned)n);
    const size_t sh = (size_t)PW_KB * Ci * sizeof(float);
    if (V == 4) pw_small_k<TRANS, ACC, RELU_IN, RELU_OUT, 4, B><<<grid, PW_THREADS, sh, s>>>(P, N, Ci, Ko, (int)HW);
    else pw_small_k<TRANS, ACC, RELU_IN, RELU_OUT, 1, B><<<grid, PW_THREADS, sh, s>>>(P, N, Ci, Ko, (int)HW);
    launchCheck();
}
/* The own kernels' forward (y (K,HW) = w (K,C) relu?(x)) and data gradient (dx (C,HW)
 * (+)= w^T dy, through the fused ReLU where relu: r holds its inputs) of n problems. */
template <int B>
static void pw_small_forward(const kb_ptrs<B> &P, int n, int N, int C, int K, int64_t HW, int relu, cudaStream_t s) {
    if (relu) pw_small_launch<false, false, true, false>(P, n, N, C, K, HW, s);
    else pw_small_launch<false, false, false, false>(P, n, N, C, K, HW, s);
}
template <int B>
static void pw_small_data(const kb_ptrs<B> &P, int n, int N, int C, int K, int64_t HW, int relu, int set,
                          cudaStream_t s) {
    if (relu && !set) pw_small_launch<true, true, false, true>(P, n, N, K, C, HW, s);
    else if (relu) pw_small_launch<true, false, false, true>(P, n, N, K, C, HW, s);
    else if (!set) pw_small_launch<true, true, false, false>(P, n, N, K, C, HW, s);
    else pw_small_launch<true, false, false, false>(P, n, N, K, C, HW, s);
}

/* ---- the own 1x1 filter gradient, register-tiled (issue #19) ----
 * dw[k, c] += sum over the N*HW pixels t of dy[n, k, p] x[n, c, p] (x through the fused
 * ReLU). The old kernel gave each of a block's 256 threads one (k, c) output and staged
 * 32-pixel tiles of dy and x in shared memory: two shared loads per multiply-add, one
 * block per multiprocessor, one tile of loads in flight between barriers (50 us a call
 * on the H200 against cuBLAS's ~19). Here a thread owns a 4 x 4 tile of outputs (rows k0..
 * k0+3 of dy, c0..c0+3 of x) and one "lane" of the block's pixels: groups of 4
 * consecutive pixels q = l, l + L, l + 2L, ... of the block's range, L = 256 / tiles
 * lanes (16 at K = C = 16). Per group it loads its 4 + 4 rows' 4 pixels (one 16-byte load
 * each where HW % 4 == 0 and the tensors are 16-byte aligned, else four scalars: the same
 * values in the same order either way) straight into registers and does 64 multiply-adds:
 * 8 loads of 16 bytes in flight per thread, no barrier in the loop, lanes adjacent in a
 * warp reading adjacent pixels. At the end the block adds its lanes' sums for each output
 * in lane order (in double) into one partial per block and output; the partials of the G
 * blocks are added in a fixed order by the finish (below). Every sum has a fixed order
 * that depends only on the shape and the device's multiprocessor count: the same bits
 * run to run. */
#define PW_FTHREADS KCUDA_THREADS /* threads of a filter-gradient block (pw_filter_last's too) */
#define PW_FMIN_GROUPS 8          /* pixel groups a lane gets at least (sizes the grid) */

/* 4 x 4 output tiles of a (K, C) filter gradient. */
static int pw_ftiles(int K, int C) { return ((K + 3) / 4) * ((C + 3) / 4); }

/* Our kernels' shapes: the forward's and data gradient's register block of weights
 * (PW_KB rows of up to 768) in the 48 KB of shared memory a launch gets without an opt-in,
 * and the filter gradient's 4 x 4 tiles one per thread of a block at most. */
static int pw_small(int K, int C) {
    return (int64_t)K * C <= PW_SMALL_MAX_W && K > 0 && C > 0 && K <= 768 && C <= 768 &&
           pw_ftiles(K, C) <= PW_FTHREADS && kcuda_g.own_1x1;
}

/* The 4 values at offsets off[0..3] (past row `row` of a (N, rows, HW) tensor's sample
 * start): one 16-byte load (VEC: the four are adjacent and 16-byte aligned), or each by
 * itself, 0 where ok[e] is false; 0 for a row >= rows. */
template <bool VEC>
__device__ static inline void pw_fload(float v[4], const float *a, int rows, int row, int HW, const int64_t off[4],
                                       const bool ok[4]) {
    if (row >= rows) {
        v[0] = v[1] = v[2] = v[3] = 0.0f;
    } else if (VEC) {
        const float4 q = kcuda_ld4(a + off[0] + (int64_t)row * HW);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
#pragma unroll
        for (int e = 0; e < 4; e++) v[e] = ok[e] ? a[off[e] + (int64_t)row * HW] : 0.0f;
    }
}

/* Block g's partials over pixels [g*chunk, (g+1)*chunk) (chunk % 4 == 0):
 * part[g*KC + o] = its lanes' sums of output o = k*C + c, added in lane order. */
__device__ static void pw_filter_last(float *dw, const double *part, int KC, int G);
template <bool RELU, bool VEC, int B>
__global__ static void __launch_bounds__(PW_FTHREADS)
    pw_filter_part_k(double *part, kb_ptrs<B> P, int N, int C, int K, int HW, int64_t chunk, unsigned *cnt) {
    extern __shared__ float lsum[]; /* [(tile * L + lane) * 17 + j]: each lane's 16 sums (17: no bank conflicts) */
    const int z = kb_z<B>();
    float *dw = P.o[z];
    const float *dy = P.a[z], *x = P.b[z];
    const int KC = K * C;
    part += (int64_t)z * gridDim.x * KC; /* problem z's partials and counter */
    if (cnt) cnt += z;
    const int ncb = (C + 3) / 4, nt = ((K + 3) / 4) * ncb, L = PW_FTHREADS / nt;
    const int l = (int)threadIdx.x % L, ti = (int)threadIdx.x / L; /* lanes adjacent in a warp */
    const int64_t total = (int64_t)N * HW, t0 = blockIdx.x * chunk;
    const int64_t t1 = t0 + chunk < total ? t0 + chunk : total;
    float acc[16];
#pragma unroll
    for (int j = 0; j < 16; j++) acc[j] = 0.0f;
    if (ti < nt) {
        const int k0 = ti / ncb * 4, c0 = ti % ncb * 4;
        int64_t t = t0 + 4 * (int64_t)l, n = t / HW; /* the group's sample and pixel, kept */
        int p = (int)(t - n * HW);                    /* up to date without a 64-bit division */
        for (; t < t1; t += 4 * (int64_t)L) {
            int64_t oy[4], ox[4];
            bool ok[4];
#pragma unroll
            for (int e = 0; e < 4; e++) { /* VEC: HW % 4 == 0, so the group is one sample's */
                int pe = p + e;
                int64_t ne = n;
                if (!VEC && pe >= HW) ne += pe / HW, pe %= HW;
                ok[e] = VEC || t + e < t1;
                oy[e] = ne * K * HW + pe;
                ox[e] = ne * C * HW + pe;
            }
            float a[4][4], b[4][4];
#pragma unroll
            for (int r = 0; r < 4; r++) pw_fload<VEC>(a[r], dy, K, k0 + r, HW, oy, ok);
#pragma unroll
            for (int r = 0; r < 4; r++) {
                pw_fload<VEC>(b[r], x, C, c0 + r, HW, ox, ok);
                if (RELU)
#pragma unroll
                    for (int e = 0; e < 4; e++) b[r][e] = b[r][e] > 0.0f ? b[r][e] : 0.0f;
            }
            p += 4 * L;
            if (p >= HW) n += p / HW, p %= HW;
#pragma unroll
            for (int e = 0; e < 4; e++)
#pragma unroll
                for (int r = 0; r < 4; r++)
#pragma unroll
                    for (int s = 0; s < 4; s++) acc[r * 4 + s] = __fmaf_rn(a[r][e], b[s][e], acc[r * 4 + s]);
        }
#pragma unroll
        for (int j = 0; j < 16; j++) lsum[((int64_t)ti * L + l) * 17 + j] = acc[j];
    }
    __syncthreads();
    for (int o = (int)threadIdx.x; o < KC; o += blockDim.x) {
        const int k = o / C, c = o - k * C;
        const float *q = lsum + ((int64_t)(k / 4 * ncb + c / 4) * L) * 17 + (k % 4) * 4 + c % 4;
        double v = 0.0;
        for (int i = 0; i < L; i++) v += (double)q[i * 17];
        part[(int64_t)blockIdx.x * KC + o] = v;
    }
    if (cnt && kcuda_last_block(cnt, gridDim.x)) pw_filter_last(dw, part, KC, (int)gridDim.x);
}

/* Output o's G partials part[g*KC + o] added by one warp: lane i takes g = i, i + 32, ...
 * in order, then the fixed shuffle tree; lane 0 gets the sum. CG: through L2 (written by
 * other blocks of this launch; see kcuda_last_block). One fixed order, so the finish
 * kernel (a warp per output across the chip) and the last block (its 8 warps over the
 * outputs) give the same bits. */
template <bool CG>
__device__ static inline double pw_filter_total_w(const double *part, int o, int KC, int G) {
    double v = 0.0;
    const int i = (int)threadIdx.x & 31;
#pragma unroll 4
    for (int g = i; g < G; g += 32) v += CG ? __ldcg(part + (int64_t)g * KC + o) : part[(int64_t)g * KC + o];
    return kcuda_warp_sum(v);
}

/* dw[o] += output o's partials: warp w of block b takes o = 8b + w. */
template <int B>
__global__ static void pw_filter_finish_k(kb_ptrs<B> P, const double *part, int KC, int G) {
    const int z = kb_z<B>();
    float *dw = P.o[z];
    part += (int64_t)z * G * KC;
    const int o = (int)(blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32);
    if (o >= KC) return; /* whole warps */
    const double v = pw_filter_total_w<false>(part, o, KC, G);
    if ((threadIdx.x & 31) == 0) dw[o] += (float)v;
}

/* One-launch mode: pw_filter_part_k's last block does pw_filter_finish_k's work, warp w
 * taking outputs w, w + 8, ... by the same function (the same bits). */
__device__ static void pw_filter_last(float *dw, const double *part, int KC, int G) {
    for (int o = (int)threadIdx.x / 32; o < KC; o += PW_FTHREADS / 32) {
        const double v = pw_filter_total_w<true>(part, o, KC, G);
        if ((threadIdx.x & 31) == 0) dw[o] += (float)v;
    }
}

/* The last block reads all G*KC partials on one multiprocessor: up to this many doubles
 * (512 KB) one launch, above it the second kernel's KC warps across the chip (an
 * estimate, to be measured). */
#define PW_ONE_LAUNCH_MAX ((int64_t)1 << 16)

/* Blocks of the filter gradient and pixels per block (a multiple of 4): about two blocks
 * per multiprocessor (a block of 256 threads with 8 loads of 16 bytes in flight each:
 * 64 KB in flight per multiprocessor), at least PW_FMIN_GROUPS groups of 4 pixels per
 * lane, the partials within kcuda_g.red. Depends on the shape and the device only (not on
 * the one-launch switch: both modes give the same bits). */
static int pw_filter_blocks(int64_t pixels, int K, int C, int64_t *chunk) {
    const int64_t KC = (int64_t)K * C, L = PW_FTHREADS / pw_ftiles(K, C);
    int64_t g = 2 * (int64_t)(kcuda_g.sms > 0 ? kcuda_g.sms : 132);
    const int64_t by_size = (pixels + 4 * L * PW_FMIN_GROUPS - 1) / (4 * L * PW_FMIN_GROUPS);
    if (g > by_size) g = by_size;
    while (g > 1 && g * KC > KCUDA_RED_CAP) g /= 2;
    if (g < 1) g = 1;
    int64_t c = (pixels + g - 1) / g;
    c = (c + 3) / 4 * 4;
    *chunk = c;
    return (int)((pixels + c - 1) / c);
}

/* Every dy and x of the first n problems 16-byte aligned. */
template <int B> static bool kb_aligned16(const kb_ptrs<B> &P, int n) {
    for (int i = 0; i < n; i++)
        if (((uintptr_t)P.a[i] | (uintptr_t)P.b[i]) & 15) return false;
    return true;
}

/* The own filter gradients of the first n problems of P (o: dw, a: dy, b: x; HW pixels a
 * sample): pw_filter_part_k, then (two-launch mode) pw_filter_finish_k, each once for as
 * many problems as the lane's partials (G*K*C doubles a problem) hold. */
template <int B>
static void pw_filter_run(const kb_ptrs<B> &P, int n, const kconv2d_desc *d, int64_t HW, int relu, cudaStream_t s) {
    const int64_t kc = (int64_t)d->K * d->C, px = (int64_t)d->N * HW;
    if (px <= 0) return;
    int64_t chunk;
    const int G = pw_filter_blocks(px, d->K, d->C, &chunk);
    const int L = PW_FTHREADS / pw_ftiles(d->K, d->C);
    const size_t sh = (size_t)pw_ftiles(d->K, d->C) * L * 17 * sizeof(float);
    const bool vec = HW % 4 == 0 && kb_aligned16(P, n);
    unsigned *cnt = kcuda_g.one_launch && kcuda_g.count && (int64_t)G * kc <= PW_ONE_LAUNCH_MAX ? kcuda_g.count : NULL;
    const int fit = kb_fit((int64_t)G * kc, cnt, 1);
    for (int i0 = 0; i0 < n; i0 += fit) {
        const int m = n - i0 < fit ? n - i0 : fit;
        const kb_ptrs<B> Q = kb_slice(P, i0, m);
        const dim3 grid((unsigned)G, 1, (unsigned)m);
        double *red = kcuda_g.red;
        const int N = d->N, C = d->C, K = d->K;
        if (relu && vec) pw_filter_part_k<true, true, B><<<grid, PW_FTHREADS, sh, s>>>(red, Q, N, C, K, (int)HW, chunk, cnt);
        else if (relu) pw_filter_part_k<true, false, B><<<grid, PW_FTHREADS, sh, s>>>(red, Q, N, C, K, (int)HW, chunk, cnt);
        else if (vec) pw_filter_part_k<false, true, B><<<grid, PW_FTHREADS, sh, s>>>(red, Q, N, C, K, (int)HW, chunk, cnt);
        else pw_filter_part_k<false, false, B><<<grid, PW_FTHREADS, sh, s>>>(red, Q, N, C, K, (int)HW, chunk, cnt);
        launchCheck();
        if (cnt) continue; /* the last blocks added the partials */
        const unsigned fb = (unsigned)((kc + PW_FTHREADS / 32 - 1) / (PW_FTHREADS / 32));
        pw_filter_finish_k<B><<<dim3(fb, 1, (unsigned)m), PW_FTHREADS, 0, s>>>(Q, red, (int)kc, G);
        launchCheck();
    }
}

/* y_n (K,HW) = w (K,C) x_n (C,HW); column-major: y_n^T (HW,K) = x_n^T (HW,C) w^T (C,K). */
/* relu: only where pw_small (kcuda_conv2d_relu_supported says so). */
static void pw_forward(float *y, const float *x, const float *w, int N, int C, int K, int64_t HW, int relu,
                       cudaStream_t s) {
    if (pw_small(K, C) && HW < ((int64_t)1 << 31)) {
        const kb_ptrs<1> P = {{y}, {x}, {w}, {NULL}, {NULL}};
        pw_small_forward(P, 1, N, C, K, HW, relu, s);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    cublasCheck(cublasSetStream(kcuda_g.blas, s));
    cublasCheck(cublasSgemmStridedBatched(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)HW, K, C, &one, x, (int)HW,
                                          (long long)C * HW, w, C, 0, &zero, y, (int)HW, (long long)K * HW, N));
}
/* dx_n (C,HW) = beta dx_n + w^T (C,K) dy_n (K,HW); column-major: dx_n^T (HW,C) = dy_n^T (HW,K) w (K,C). */
/* xr: the fused ReLU's input (pw_small only), else NULL; beta 0 or 1 (0: dx written). */
static void pw_backward_data(float *dx, const float *dy, const float *w, const float *xr, int N, int C, int K,
                             int64_t HW, float beta, cudaStream_t s) {
    if (pw_small(K, C) && HW < ((int64_t)1 << 31) && (beta == 0.0f || beta == 1.0f)) {
        const kb_ptrs<1> P = {{dx}, {dy}, {w}, {xr}, {NULL}};
        pw_small_data(P, 1, N, C, K, HW, xr != NULL, beta == 0.0f, s);
        return;
    }
    const float one = 1.0f;
    cublasCheck(cublasSetStream(kcuda_g.blas, s));
    cublasCheck(cublasSgemmStridedBatched(kcuda_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)HW, C, K, &one, dy, (int)HW,
                                          (long long)K * HW, w, C, 0, &beta, dx, (int)HW, (long long)C * HW, N));
}
/* dw (K,C) += sum_n dy_n x_n^T, per sample column-major prod_n^T (C,K) = x_n (C,HW) dy_n^T (HW,K). */
static void pw_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, int64_t HW,
                               float *prod, int relu, cudaStream_t s) {
    const int64_t kc = (int64_t)d->K * d->C;
    if (pw_small(d->K, d->C) && kcuda_g.red) {
        const kb_ptrs<1> P = {{dw}, {dy}, {x}, {NULL}, {NULL}};
        pw_filter_run(P, 1, d, HW, relu, s);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    cublasCheck(cublasSetStream(kcuda_g.blas, s));
    const int G = pw_chunk(d);
    for (int n0 = 0; n0 < d->N; n0 += G) {
        const int ns = d->N - n0 < G ? d->N - n0 : G;
        cublasCheck(cublasSgemmStridedBatched(kcuda_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, d->C, d->K, (int)HW, &one,
                                              x + (int64_t)n0 * d->C * HW, (int)HW, (long long)d->C * HW,
                                              dy + (int64_t)n0 * d->K * HW, (int)HW, (long long)d->K * HW, &zero, prod,
                                              d->C, (long long)kc, ns));
        const kb_ptrs<1> P = {{dw}, {NULL}, {NULL}, {NULL}, {NULL}};
        pw_filter_sum_k<1><<<kcuda_blocks(kc), KCUDA_THREADS, 0, s>>>(P, prod, ns, kc);
        launchCheck();
    }
}

/* ---- batched 1x1 convolutions by cuBLAS (DARTSC_CUDA_BATCH_CUBLAS; kcuda.h "batched
 * launches") ----
 * The GEMMs the single path issues per problem, strided over the N samples, as one
 * cublasSgemmBatched call over problems x samples: pw_ptrs_k first writes the call's three
 * pointer arrays into the lane's table (kcuda_g.ptrs; the next batched call on the lane
 * rewrites it only after this one's GEMMs, stream order). Inside a recording the host
 * writes them instead, into the recording's own table (kcuda_rec_ptrs, uploaded once when
 * the recording ends): a replay launches the GEMMs alone. The filter gradient keeps the single path's chunks of samples (pw_chunk) and
 * their products go to the lane's reduction buffer, as many problems at a time as it
 * holds, summed by the same pw_filter_sum_k in the same sample order. On the emulator
 * (one GEMM arithmetic) each problem gets its single call's bits; on a GPU cuBLAS may pick
 * another kernel for another batch count, so the products may differ from the single
 * call's in rounding (same bits run to run). */
/* Entry e's three pointers (C, A, B) into c[0], a[0], b[0]: the kernel's and the host's. */
template <int B>
__host__ __device__ static inline void pw_ptrs_at(const kb_ptrs<B> &P, int per, int64_t e, int64_t so, int64_t sa,
                                                  int64_t sb, float **c, float **a, float **b) {
    const int i = (int)(e / per);
    const int64_t t = e - (int64_t)i * per;
    *c = P.o[i] + t * so;
    *a = (float *)P.a[i] + t * sa;
    *b = (float *)P.b[i] + t * sb;
}
template <int B> __global__ static void pw_ptrs_k(float **tab, kb_ptrs<B> P, int per, int64_t e0, int cnt,
                                                  int64_t so, int64_t sa, int64_t sb) {
    KCUDA_GRID_STRIDE(j, cnt)
        pw_ptrs_at(P, per, e0 + j, so, sa, sb, tab + j, tab + KCUDA_PTR_CAP + j, tab + 2 * KCUDA_PTR_CAP + j);
}
/* For m problems of `per` GEMMs each, GEMM t of problem i: C = P.o[i] + t so, A = P.a[i] +
 * t sa, B = P.b[i] + t sb; C = op(A) op(B) + beta C (column-major, cuBLAS's arguments). */
static void pw_blas_batched(const kb_ptrs<KB_MAX> &P, int m, int per, int64_t so, int64_t sa, int64_t sb,
                            cublasOperation_t ta, cublasOperation_t tb, int M, int Nc, int K, int lda, int ldb,
                            float beta, int ldc, cudaStream_t s) {
    const float one = 1.0f;
    const int64_t total = (int64_t)m * per;
    cublasCheck(cublasSetStream(kcuda_g.blas, s));
    for (int64_t e0 = 0; e0 < total; e0 += KCUDA_PTR_CAP) { /* the same calls recording or not */
        const int cnt = (int)(total - e0 < KCUDA_PTR_CAP ? total - e0 : KCUDA_PTR_CAP);
        float **host = NULL, **tc, **ta_, **tb_;
        float **dev = kcuda_rec_ptrs(3 * (int64_t)cnt, &host);
        if (dev) { /* recording: the host writes pw_ptrs_k's arrays into the recording's table */
            for (int j = 0; j < cnt; j++)
                pw_ptrs_at(P, per, e0 + j, so, sa, sb, host + j, host + cnt + j, host + 2 * cnt + j);
            tc = dev, ta_ = dev + cnt, tb_ = dev + 2 * cnt;
        } else {
            float **tab = kcuda_g.ptrs;
            pw_ptrs_k<KB_MAX><<<kcuda_blocks(cnt), KCUDA_THREADS, 0, s>>>(tab, P, per, e0, cnt, so, sa, sb);
            launchCheck();
            kcuda_g.ptr_fills++;
            tc = tab, ta_ = tab + KCUDA_PTR_CAP, tb_ = tab + 2 * KCUDA_PTR_CAP;
        }
        cublasCheck(cublasSgemmBatched(kcuda_g.blas, ta, tb, M, Nc, K, &one, (const float *const *)ta_, lda,
                                       (const float *const *)tb_, ldb, &beta, tc, ldc, cnt));
    }
}
/* Whether a 1x1 convolution batches on the cuBLAS path: not on the own kernels, and a
 * problem's share of the lane's reduction buffer (as floats) fits it: a chunk of its filter
 * products, and for the strided 1x1 (FactorizedReduce) its dense copy of x (or of dx) too,
 * which the single path keeps in the caller's scratch (pw_strided_floats). */
static int64_t pw_strided_floats(const kconv2d_desc *d) {
    return is_pointwise_strided(d) ? (int64_t)d->N * d->C * d->P * d->Q : 0;
}
static int pw_blas_batch_ok(const kconv2d_desc *d) {
    return kcuda_g.batch_cublas && kcuda_g.ptrs && kcuda_g.red && (is_pointwise(d) || is_pointwise_strided(d)) &&
           !pw_small(d->K, d->C) && (int64_t)d->H * d->W < ((int64_t)1 << 31) && d->K > 0 && d->C > 0 &&
           pw_strided_floats(d) + (int64_t)pw_chunk(d) * d->K * d->C <= 2 * KCUDA_RED_CAP;
}
/* P: o y, a x, b w; HW the pixels of a sample (P*Q on the strided path's dense copies). */
static void pw_blas_forward_batch(const kb_ptrs<KB_MAX> &P, int m, const kconv2d_desc *d, int64_t HW, cudaStream_t s) {
    pw_blas_batched(P, m, d->N, (int64_t)d->K * HW, (int64_t)d->C * HW, 0, CUBLAS_OP_N, CUBLAS_OP_N, (int)HW, d->K,
                    d->C, (int)HW, d->C, 0.0f, (int)HW, s);
}
/* P: o dx, a dy, b w. */
static void pw_blas_data_batch(const kb_ptrs<KB_MAX> &P, int m, const kconv2d_desc *d, int64_t HW, int set,
                               cudaStream_t s) {
    pw_blas_batched(P, m, d->N, (int64_t)d->C * HW, (int64_t)d->K * HW, 0, CUBLAS_OP_N, CUBLAS_OP_T, (int)HW, d->C,
                    d->K, (int)HW, d->C, set ? 0.0f : 1.0f, (int)HW, s);
}
/* P: o dw, a dy, b x (kb_gather's order); the products in prod, cap floats. */
static void pw_blas_filter_batch(const kb_ptrs<KB_MAX> &P, int m, const kconv2d_desc *d, int64_t HW, float *prod,
                                 int64_t cap, cudaStream_t s) {
    const int64_t kc = (int64_t)d->K * d->C;
    const int G = pw_chunk(d);
    for (int n0 = 0; n0 < d->N; n0 += G) {
        const int ns = d->N - n0 < G ? d->N - n0 : G;
        int64_t q = cap / ((int64_t)ns * kc); /* problems whose products fit (>= 1: pw_blas_batch_ok) */
        if (q > m) q = m;
        for (int i0 = 0; i0 < m; i0 += (int)q) {
            const int mq = m - i0 < q ? m - i0 : (int)q;
            kb_ptrs<KB_MAX> Q; /* GEMM operands: A x, B dy, C the products */
            memset(&Q, 0, sizeof Q);
            for (int i = 0; i < mq; i++) {
                Q.o[i] = prod + (int64_t)i * ns * kc;
                Q.a[i] = P.b[i0 + i] + (int64_t)n0 * d->C * HW;
                Q.b[i] = P.a[i0 + i] + (int64_t)n0 * d->K * HW;
            }
            pw_blas_batched(Q, mq, ns, kc, (int64_t)d->C * HW, (int64_t)d->K * HW, CUBLAS_OP_T, CUBLAS_OP_N, d->C,
                            d->K, (int)HW, (int)HW, (int)HW, 0.0f, d->C, s);
            const kb_ptrs<KB_MAX> D = kb_slice(P, i0, mq);
            pw_filter_sum_k<KB_MAX><<<dim3(kcuda_blocks(kc), 1, (unsigned)mq), KCUDA_THREADS, 0, s>>>(D, prod, ns, kc);
            launchCheck();
        }
    }
}
/* The strided 1x1 batched (FactorizedReduce's): as many problems at a time as the lane's
 * reduction buffer holds their dense copies (and, for the filter gradient, a chunk of
 * products after them): one gather launch for all of them, the batched GEMMs on the dense
 * copies, one scatter launch (the single path's kernels and GEMM shapes, problem by
 * problem). op 0 forward (P: y, x, w), 1 data gradient (dx, dy, w; set: written), 2 filter
 * gradient (dw, dy, x). */
static void pw_blas_strided_batch(const kb_ptrs<KB_MAX> &P, int m, const kconv2d_desc *d, int op, int set,
                                  cudaStream_t s) {
    const int64_t PQ = (int64_t)d->P * d->Q, dense = pw_strided_floats(d), cap = 2 * KCUDA_RED_CAP;
    if (dense <= 0) return;
    const int64_t per = dense + (op == 2 ? (int64_t)pw_chunk(d) * d->K * d->C : 0);
    const int q = (int)(cap / per < m ? cap / per : m);
    float *buf = (float *)kcuda_g.red;
    for (int i0 = 0; i0 < m; i0 += q) {
        const int mq = m - i0 < q ? m - i0 : q;
        kb_ptrs<KB_MAX> Q = kb_slice(P, i0, mq), X; /* X: the dense copies and what they pair with */
        memset(&X, 0, sizeof X);
        for (int i = 0; i < mq; i++) X.o[i] = buf + (int64_t)i * dense;
        const dim3 grid(kcuda_blocks(dense), 1, (unsigned)mq);
        if (op != 1) { /* x gathered: X.o[i] = x at the strided pixels */
            for (int i = 0; i < mq; i++) X.a[i] = op == 0 ? Q.a[i] : Q.b[i];
            pw_gather_k<KB_MAX><<<grid, KCUDA_THREADS, 0, s>>>(X, *d);
            launchCheck();
        }
        if (op == 0) {
            for (int i = 0; i < mq; i++) Q.a[i] = X.o[i];
            pw_blas_forward_batch(Q, mq, d, PQ, s);
        } else if (op == 2) {
            for (int i = 0; i < mq; i++) Q.b[i] = X.o[i];
            pw_blas_filter_batch(Q, mq, d, PQ, buf + (int64_t)mq * dense, cap - (int64_t)mq * dense, s);
        } else { /* dxs into the dense copies, then scattered into dx */
            kb_ptrs<KB_MAX> D = Q;
            for (int i = 0; i < mq; i++) D.o[i] = X.o[i];
            pw_blas_data_batch(D, mq, d, PQ, 1, s);
            for (int i = 0; i < mq; i++) X.o[i] = Q.o[i], X.a[i] = D.o[i];
            if (set) {
                const dim3 g2(kcuda_blocks((int64_t)d->N * d->C * d->H * d->W), 1, (unsigned)mq);
                pw_scatter_set_k<KB_MAX><<<g2, KCUDA_THREADS, 0, s>>>(X, *d);
            } else {
                pw_scatter_add_k<KB_MAX><<<grid, KCUDA_THREADS, 0, s>>>(X, *d);
            }
            launchCheck();
        }
    }
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
 * TF32) and fits the cap; failing that, the first deterministic success; -1 if none.
 * The results come from cuDNN's Find calls, which time every algorithm on this device
 * once per shape (as PyTorch's cudnn.benchmark does) and sort them fastest first: the
 * heuristics' first deterministic choice for the CIFAR-10 stem (3 -> 48 channels, 3x3,
 * batch 64) took 400 us a call on the H200. */
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
    cudnnCheckR(cudnnFindConvolutionForwardAlgorithm(kcuda_g.dnn, e->xd, e->wd, e->cd, e->yd,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp), NULL);
    if ((k = pick_algo(fp, got)) < 0) KCUDA_FAIL_("cudnnFindConvolutionForwardAlgorithm", "no deterministic algorithm", return NULL);
    e->fwd = fp[k].algo;
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnCheckR(cudnnFindConvolutionBackwardDataAlgorithm(kcuda_g.dnn, e->wd, e->yd, e->cd, e->xd,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, dp), NULL);
    if ((k = pick_algo(dp, got)) < 0) KCUDA_FAIL_("cudnnFindConvolutionBackwardDataAlgorithm", "no deterministic algorithm", return NULL);
    e->bwd_data = dp[k].algo;
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnnCheckR(cudnnFindConvolutionBackwardFilterAlgorithm(kcuda_g.dnn, e->xd, e->yd, e->cd, e->wd,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, wp), NULL);
    if ((k = pick_algo(wp, got)) < 0) KCUDA_FAIL_("cudnnFindConvolutionBackwardFilterAlgorithm", "no deterministic algorithm", return NULL);
    e->bwd_filter = wp[k].algo;
    /* Ask for the exact workspace sizes of the chosen algorithms. */
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
    if (is_depthwise(d)) return 0;
    if (is_pointwise(d) || is_pointwise_strided(d)) /* [dense copy of x or dx] [the filter gradient's products] */
        return (size_t)pw_gather_floats(d) + (size_t)pw_chunk(d) * (size_t)d->K * (size_t)d->C;
    conv_entry *e = conv_lookup(d);
    return e ? (e->ws_bytes + sizeof(float) - 1) / sizeof(float) : 0;
}

#define PW_NEEDS_SCRATCH(what)                                                                  \
    if (!scratch) KCUDA_FAIL_(what, "1x1 convolution without the scratch it asked for", return)

/* ---- entry points ----
 * The three passes take xr: NULL, or the input of a ReLU fused into the convolution (then
 * x is that input too, read through the ReLU), only where kcuda_conv2d_relu_supported. */
/* af: x read through a deferred batch norm's coefficients (the depthwise plane and
 * blocked kernels only: kcuda_conv2d_affine_supported), else NULL. */
static void conv_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch, int relu,
                         cudaStream_t s, const float *af = NULL) {
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        const int64_t total = (int64_t)d->N * d->C * PQ;
        if (total <= 0) return;
        if (dw_fwd_plane(y, x, w, d, relu, af, s)) return;
        if (af) KCUDA_FAIL_("kcuda_conv2d_forward", "a deferred batch norm on the general depthwise kernel", return);
        dw_fwd_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(y, x, w, *d);
        launchCheck();
        return;
    }
    if (is_pointwise(d)) {
        pw_forward(y, x, w, d->N, d->C, d->K, HW, relu, s);
        return;
    }
    if (is_pointwise_strided(d)) {
        PW_NEEDS_SCRATCH("kcuda_conv2d_forward");
        const int64_t n = (int64_t)d->N * d->C * PQ;
        if (n <= 0) return;
        const kb_ptrs<1> G = {{scratch}, {x}, {NULL}, {NULL}, {NULL}};
        pw_gather_k<1><<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(G, *d);
        launchCheck();
        pw_forward(y, scratch, w, d->N, d->C, d->K, PQ, 0, s);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionForward(kcuda_g.dnn, &one, e->xd, x, e->wd, w, e->cd, e->fwd, scratch, e->ws_bytes, &zero,
                                       e->yd, y));
}

static void conv_backward_data(float *dx, const float *dy, const float *w, const float *xr, const kconv2d_desc *d,
                               float *scratch, int set, cudaStream_t s, const float *af = NULL) {
    if (!dx) return;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        const int64_t total = (int64_t)d->N * d->C * HW;
        if (total <= 0) return;
        if (dw_bwd_data_plane(dx, dy, w, xr, af, d, set, s)) return;
        if (af) KCUDA_FAIL_("kcuda_conv2d_backward_data", "a deferred batch norm on the general depthwise kernel", return);
        dw_bwd_data_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(dx, dy, w, *d);
        launchCheck();
        return;
    }
    if (is_pointwise(d)) {
        pw_backward_data(dx, dy, w, xr, d->N, d->C, d->K, HW, set ? 0.0f : 1.0f, s);
        return;
    }
    if (is_pointwise_strided(d)) {
        PW_NEEDS_SCRATCH("kcuda_conv2d_backward_data");
        const int64_t n = (int64_t)d->N * d->C * PQ;
        if (n <= 0) return;
        pw_backward_data(scratch, dy, w, NULL, d->N, d->C, d->K, PQ, 0.0f, s);
        const kb_ptrs<1> P = {{dx}, {scratch}, {NULL}, {NULL}, {NULL}};
        if (set) pw_scatter_set_k<1><<<kcuda_blocks((int64_t)d->N * d->C * HW), KCUDA_THREADS, 0, s>>>(P, *d);
        else pw_scatter_add_k<1><<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(P, *d);
        launchCheck();
        return;
    }
    const float one = 1.0f, beta = set ? 0.0f : 1.0f;
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionBackwardData(kcuda_g.dnn, &one, e->wd, w, e->yd, dy, e->cd, e->bwd_data, scratch,
                                            e->ws_bytes, &beta, e->xd, dx));
}

static void conv_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, float *scratch,
                                 int relu, cudaStream_t s, const float *af = NULL) {
    if (!dw) return;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        const int taps = d->C * d->R * d->S;
        if (taps <= 0) return;
        if (dw_filter_blocked(dw, dy, x, af, d, relu, s)) return;
        if (af) KCUDA_FAIL_("kcuda_conv2d_backward_filter", "a deferred batch norm on the general depthwise kernel", return);
        dw_bwd_filter_k<<<(unsigned)taps, KCUDA_THREADS, 0, s>>>(dw, dy, x, *d);
        launchCheck();
        return;
    }
    if (is_pointwise(d) || is_pointwise_strided(d)) {
        PW_NEEDS_SCRATCH("kcuda_conv2d_backward_filter");
        if ((int64_t)d->K * d->C <= 0 || d->N <= 0) return;
        const float *xs = x;
        if (is_pointwise_strided(d)) {
            const int64_t n = (int64_t)d->N * d->C * PQ;
            const kb_ptrs<1> G = {{scratch}, {x}, {NULL}, {NULL}, {NULL}};
            pw_gather_k<1><<<kcuda_blocks(n), KCUDA_THREADS, 0, s>>>(G, *d);
            launchCheck();
            xs = scratch;
        }
        pw_backward_filter(dw, dy, xs, d, is_pointwise(d) ? HW : PQ, scratch + pw_gather_floats(d), relu, s);
        return;
    }
    const float one = 1.0f;
    conv_entry *e = conv_lookup(d);
    if (!e) return;
    cudnnCheck(cudnnSetStream(kcuda_g.dnn, s));
    cudnnCheck(cudnnConvolutionBackwardFilter(kcuda_g.dnn, &one, e->xd, x, e->yd, dy, e->cd, e->bwd_filter, scratch,
                                              e->ws_bytes, &one, e->wd, dw));
}

extern "C" void kcuda_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch,
                                     cudaStream_t s) {
    conv_forward(y, x, w, d, scratch, 0, s);
}
extern "C" void kcuda_conv2d_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d,
                                           float *scratch, cudaStream_t s) {
    conv_backward_data(dx, dy, w, NULL, d, scratch, 0, s);
}
extern "C" void kcuda_conv2d_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                             float *scratch, cudaStream_t s) {
    conv_backward_filter(dw, dy, x, d, scratch, 0, s);
}

/* ---- ReLU fused into the input (the plane/blocked depthwise kernels, the own 1x1 kernels) ---- */
extern "C" int kcuda_conv2d_relu_supported(const kconv2d_desc *d) {
    if (is_depthwise(d)) return dw_plane_ok(d) && dw_filter_groups(d) > 0;
    return is_pointwise(d) && pw_small(d->K, d->C) && (int64_t)d->H * d->W < ((int64_t)1 << 31);
}
#define RELU_SUPPORTED_OR_FAIL(what)                                                            \
    if (!kcuda_conv2d_relu_supported(d)) KCUDA_FAIL_(what, "no fused-ReLU kernel for this shape", return)
extern "C" void kcuda_conv2d_relu_forward(float *y, const float *x, const float *w, const kconv2d_desc *d,
                                          float *scratch, cudaStream_t s) {
    RELU_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_forward");
    conv_forward(y, x, w, d, scratch, 1, s);
}
extern "C" void kcuda_conv2d_relu_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                                const kconv2d_desc *d, float *scratch, cudaStream_t s) {
    RELU_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_backward_data");
    conv_backward_data(dx, dy, w, x, d, scratch, 0, s);
}

/* ---- the data gradient written instead of accumulated ----
 * Every path but the generic depthwise kernels and the strided 1x1 (which touches only
 * the strided pixels): the plane kernels start from 0, the 1x1 kernels and cuBLAS/cuDNN
 * run with beta 0. */
extern "C" int kcuda_conv2d_sets_dx(const kconv2d_desc *d) {
    return is_depthwise(d) ? dw_plane_ok(d) : 1; /* the strided 1x1: pw_scatter_set_k */
}
extern "C" void kcuda_conv2d_backward_data_set(float *dx, const float *dy, const float *w, const float *x_relu,
                                               const kconv2d_desc *d, float *scratch, cudaStream_t s) {
    if (!kcuda_conv2d_sets_dx(d)) KCUDA_FAIL_("kcuda_conv2d_backward_data_set", "no overwriting path for this shape", return);
    if (x_relu) RELU_SUPPORTED_OR_FAIL("kcuda_conv2d_backward_data_set");
    conv_backward_data(dx, dy, w, x_relu, d, scratch, 1, s);
}
extern "C" void kcuda_conv2d_relu_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                                  float *scratch, cudaStream_t s) {
    RELU_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_backward_filter");
    conv_backward_filter(dw, dy, x, d, scratch, 1, s);
}

/* ---- a deferred batch norm before the fused ReLU (kcuda.h) ---- */
extern "C" int kcuda_conv2d_affine_supported(const kconv2d_desc *d) {
    return is_depthwise(d) && kcuda_conv2d_relu_supported(d);
}
#define AFFINE_SUPPORTED_OR_FAIL(what)                                                          \
    if (!kcuda_conv2d_affine_supported(d)) KCUDA_FAIL_(what, "no kernel reading a deferred batch norm for this shape", return); \
    if (!af) KCUDA_FAIL_(what, "no coefficients", return)
extern "C" void kcuda_conv2d_relu_affine_forward(float *y, const float *x, const float *af, const float *w,
                                                 const kconv2d_desc *d, cudaStream_t s) {
    AFFINE_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_affine_forward");
    conv_forward(y, x, w, d, NULL, 1, s, af);
}
extern "C" void kcuda_conv2d_relu_affine_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                                       const float *af, const kconv2d_desc *d, int set,
                                                       cudaStream_t s) {
    AFFINE_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_affine_backward_data");
    conv_backward_data(dx, dy, w, x, d, NULL, set, s, af);
}
extern "C" void kcuda_conv2d_relu_affine_backward_filter(float *dw, const float *dy, const float *x, const float *af,
                                                         const kconv2d_desc *d, cudaStream_t s) {
    AFFINE_SUPPORTED_OR_FAIL("kcuda_conv2d_relu_affine_backward_filter");
    conv_backward_filter(dw, dy, x, d, NULL, 1, s, af);
}
#undef AFFINE_SUPPORTED_OR_FAIL

/* ---- batched launches (kcuda.h "batched launches") ----
 * n problems of one descriptor through the kernels the single entry points launch, each
 * kernel once for all n (grid z: the problem; see kb_ptrs), the reductions' partials and
 * one-launch counters in one region per problem, launched for as many problems at a time
 * as the lane's buffers hold. The depthwise plane/blocked kernels, the own 1x1 kernels,
 * and with DARTSC_CUDA_BATCH_CUBLAS the 1x1s on cuBLAS (pointer-array GEMMs, above; the
 * strided ones with their dense copies in the lane's reduction buffer); the general
 * depthwise kernels, the strided 1x1 on the own kernels and cuDNN have no batched path. */
extern "C" int kcuda_conv2d_batch_ok(const kconv2d_desc *d, int relu) {
    if (kcuda_g.red && kcuda_conv2d_relu_supported(d)) return 1; /* with or without the fused ReLU */
    return !relu && pw_blas_batch_ok(d);
}

/* The batched calls' checks: n in 1..KB_MAX, a batched path for d, the inputs a and b
 * given, r's entries all NULL or all set (*relu: set). *P gets the problems whose output
 * is not NULL (a single call skips a NULL gradient), *m their count. 0 when nothing is to
 * be issued (an error recorded where the call is wrong). */
static int kb_gather(const char *what, int n, const kconv2d_desc *d, int relu, float *const *o, const float *const *a,
                     const float *const *b, const float *const *r, kb_ptrs<KB_MAX> *P, int *m, int *rl,
                     const float *const *f = NULL) {
    if (n < 1 || n > KB_MAX) KCUDA_FAIL_(what, "problem count outside 1..KCUDA_MAX_BATCH", return 0);
    int nr = 0, nf = 0;
    for (int i = 0; r && i < n; i++) nr += r[i] != NULL;
    for (int i = 0; f && i < n; i++) nf += f[i] != NULL;
    if (nr != 0 && nr != n) KCUDA_FAIL_(what, "x_relu given for some problems only", return 0);
    if (nf != 0 && nf != n) KCUDA_FAIL_(what, "deferred batch norms for some problems only", return 0);
    *rl = relu || nr;
    if (!kcuda_conv2d_batch_ok(d, *rl)) KCUDA_FAIL_(what, "no batched path for this shape or mode", return 0);
    if (nf && !(*rl && kcuda_conv2d_affine_supported(d)))
        KCUDA_FAIL_(what, "no kernel reading a deferred batch norm for this shape", return 0);
    if (!a || !b) KCUDA_FAIL_(what, "an input pointer array is NULL", return 0);
    memset(P, 0, sizeof *P);
    *m = 0;
    for (int i = 0; o && i < n; i++) {
        if (!o[i]) continue;
        P->o[*m] = o[i];
        P->a[*m] = a[i];
        P->b[*m] = b[i];
        P->r[*m] = r ? r[i] : NULL;
        P->f[*m] = f ? f[i] : NULL;
        ++*m;
    }
    return *m > 0;
}

/* The batched entry points; af: the deferred batch norms' coefficients (the affine
 * ones), else NULL. */
static void conv_forward_batch(int n, float *const *y, const float *const *x, const float *const *w,
                               const kconv2d_desc *d, int relu, cudaStream_t s, const float *const *af) {
    kb_ptrs<KB_MAX> P;
    int m, rl;
    if (!kb_gather("kcuda_conv2d_forward_batch", n, d, relu, y, x, w, NULL, &P, &m, &rl, af)) return;
    if (is_depthwise(d)) {
        if ((int64_t)d->N * d->C * d->P * d->Q <= 0) return;
        dw_fwd_plane_run(P, m, d, rl, s);
        return;
    }
    if (is_pointwise_strided(d)) {
        pw_blas_strided_batch(P, m, d, 0, 0, s);
        return;
    }
    if (!pw_small(d->K, d->C)) {
        if ((int64_t)d->N * d->K * d->H * d->W > 0) pw_blas_forward_batch(P, m, d, (int64_t)d->H * d->W, s);
        return;
    }
    pw_small_forward(P, m, d->N, d->C, d->K, (int64_t)d->H * d->W, rl, s);
}

static void conv_backward_data_batch(int n, float *const *dx, const float *const *dy, const float *const *w,
                                     const float *const *x_relu, const kconv2d_desc *d, int set, cudaStream_t s,
                                     const float *const *af) {
    kb_ptrs<KB_MAX> P;
    int m, rl;
    if (!kb_gather("kcuda_conv2d_backward_data_batch", n, d, 0, dx, dy, w, x_relu, &P, &m, &rl, af)) return;
    if (is_depthwise(d)) {
        if ((int64_t)d->N * d->C * d->H * d->W <= 0) return;
        dw_bwd_data_plane_run(P, m, d, rl, set, s);
        return;
    }
    if (is_pointwise_strided(d)) {
        pw_blas_strided_batch(P, m, d, 1, set, s);
        return;
    }
    if (!pw_small(d->K, d->C)) {
        if ((int64_t)d->N * d->C * d->H * d->W > 0) pw_blas_data_batch(P, m, d, (int64_t)d->H * d->W, set, s);
        return;
    }
    pw_small_data(P, m, d->N, d->C, d->K, (int64_t)d->H * d->W, rl, set, s);
}

static void conv_backward_filter_batch(int n, float *const *dw, const float *const *dy, const float *const *x,
                                       const kconv2d_desc *d, int relu, cudaStream_t s, const float *const *af) {
    kb_ptrs<KB_MAX> P;
    int m, rl;
    if (!kb_gather("kcuda_conv2d_backward_filter_batch", n, d, relu, dw, dy, x, NULL, &P, &m, &rl, af)) return;
    if (is_depthwise(d)) {
        dw_filter_plan pl;
        if (d->C * d->R * d->S <= 0 || !dw_filter_plan_of(d, &pl)) return; /* batch_ok: a plan exists */
        dw_filter_run(P, m, d, &pl, rl, s);
        return;
    }
    if ((int64_t)d->K * d->C <= 0 || d->N <= 0) return;
    if (is_pointwise_strided(d)) {
        pw_blas_strided_batch(P, m, d, 2, 0, s);
        return;
    }
    if (!pw_small(d->K, d->C)) {
        pw_blas_filter_batch(P, m, d, (int64_t)d->H * d->W, (float *)kcuda_g.red, 2 * KCUDA_RED_CAP, s);
        return;
    }
    pw_filter_run(P, m, d, (int64_t)d->H * d->W, rl, s);
}

extern "C" void kcuda_conv2d_forward_batch(int n, float *const *y, const float *const *x, const float *const *w,
                                           const kconv2d_desc *d, int relu, cudaStream_t s) {
    conv_forward_batch(n, y, x, w, d, relu, s, NULL);
}
extern "C" void kcuda_conv2d_backward_data_batch(int n, float *const *dx, const float *const *dy,
                                                 const float *const *w, const float *const *x_relu,
                                                 const kconv2d_desc *d, int set, cudaStream_t s) {
    conv_backward_data_batch(n, dx, dy, w, x_relu, d, set, s, NULL);
}
extern "C" void kcuda_conv2d_backward_filter_batch(int n, float *const *dw, const float *const *dy,
                                                   const float *const *x, const kconv2d_desc *d, int relu,
                                                   cudaStream_t s) {
    conv_backward_filter_batch(n, dw, dy, x, d, relu, s, NULL);
}
extern "C" void kcuda_conv2d_relu_affine_forward_batch(int n, float *const *y, const float *const *x,
                                                       const float *const *af, const float *const *w,
                                                       const kconv2d_desc *d, cudaStream_t s) {
    if (!af) KCUDA_FAIL_("kcuda_conv2d_relu_affine_forward_batch", "no coefficients", return);
    conv_forward_batch(n, y, x, w, d, 1, s, af);
}
extern "C" void kcuda_conv2d_relu_affine_backward_data_batch(int n, float *const *dx, const float *const *dy,
                                                             const float *const *w, const float *const *x,
                                                             const float *const *af, const kconv2d_desc *d, int set,
                                                             cudaStream_t s) {
    if (!af || !x) KCUDA_FAIL_("kcuda_conv2d_relu_affine_backward_data_batch", "no coefficients or inputs", return);
    conv_backward_data_batch(n, dx, dy, w, x, d, set, s, af);
}
extern "C" void kcuda_conv2d_relu_affine_backward_filter_batch(int n, float *const *dw, const float *const *dy,
                                                               const float *const *x, const float *const *af,
                                                               const kconv2d_desc *d, cudaStream_t s) {
    if (!af) KCUDA_FAIL_("kcuda_conv2d_relu_affine_backward_filter_batch", "no coefficients", return);
    conv_backward_filter_batch(n, dw, dy, x, d, 1, s, af);
}
