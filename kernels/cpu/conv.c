/* conv.c — CPU 2-D convolution (forward, backward data, backward filter).
 * Paths: 1x1/stride-1/pad-0/dense through our own small-GEMM kernels (pointwise.c);
 * depthwise (groups == C == K)
 * through padded per-plane buffers and vector loops (the "depthwise fast path" below,
 * also the ReLU-fused entry points), or, for planes too large for its stack buffer
 * (48 KiB per thread, twice that in the filter gradient; no scratch), direct loops
 * parallel over planes; everything else
 * through im2col per sample and one GEMM per group. GEMMs are never called inside an OpenMP region; samples are looped
 * serially around them so batch accumulation is in a fixed order. */
#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/kvec.h"
#include "kernels/cpu/dwc8.h"
#include "kernels/cpu/pointwise.h"

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

/* ---- strided or padded 1x1 convolutions (FactorizedReduce's stride-2 pair, 18 of them
 * per DARTS CIFAR-10 forward): the input's sampled pixels gathered for a chunk of
 * samples (im2col of a 1x1 kernel), then the 1x1 kernels (pointwise.c) on them, both
 * threaded; they ran im2col + OpenBLAS one sample at a time on one thread. Chunks keep
 * the gathered buffer near 4 MiB. (Dense convolutions with larger kernels, the stem, stay
 * on OpenBLAS: see docs/BENCHMARKS.md, session 6.) ---- */
#define SAMPLED_CHUNK_FLOATS (1 << 20)
static int is_sampled_1x1(const kconv2d_desc *d) { return d->groups == 1 && d->R == 1 && d->S == 1 && !is_pointwise(d); }
static int sampled_chunk(const kconv2d_desc *d) {
    const int64_t per = (int64_t)d->C * d->P * d->Q;
    int64_t b = per > 0 ? SAMPLED_CHUNK_FLOATS / per : 1;
    if (b < 1) b = 1;
    return (int)(b < d->N ? b : d->N);
}

size_t kcpu_conv2d_scratch_floats(const kconv2d_desc *d) {
    if (is_pointwise(d)) return kpw_filter_scratch_floats(d->K, d->C);
    if (is_depthwise(d)) return 0;
    const size_t col = (size_t)d->C * d->R * d->S * (size_t)d->P * d->Q;
    if (is_sampled_1x1(d))
        return ((col * (size_t)sampled_chunk(d) + 15) & ~(size_t)15) + kpw_filter_scratch_floats(d->K, d->C);
    return col;
}

/* ---- im2col / col2im for one sample: col is (C*R*S) x (P*Q) ----
 * Serial: around sgemm calls OpenMP workers spinning after a parallel region would starve
 * OpenBLAS's threads (measured 15x slower dense 3x3 at 2 cores); the strided 1x1 path runs
 * them one sample per thread. */
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

/* The sampled pixels (im2col of a 1x1 kernel) of samples n0 .. n0 + nb - 1, one after
 * another, a sample per thread. */
static void sampled_gather(float *col, const float *x, const kconv2d_desc *d, int n0, int nb) {
    const int64_t HW = (int64_t)d->H * d->W, per = (int64_t)d->C * d->P * d->Q;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < nb; i++) im2col(col + i * per, x + (int64_t)(n0 + i) * d->C * HW, d);
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

/* ---- depthwise fast path ----
 * One plane at a time, per thread: the input plane is copied once into a zero-padded
 * buffer (on the stack) split into `stride` column phases, buf[phase][row][j] =
 * xpad[row][j*stride + phase], so every tap of every output row reads a contiguous run
 * and the inner loops are branch-free vector FMAs (AVX-512, AVX2+FMA, or a portable
 * 8-lane loop). The copy can apply ReLU (the fused ReLU -> depthwise conv of the
 * separable and dilated convolutions). Backward data is the same correlation on dy with
 * the kernel flipped (other strides: on dy with zeros inserted; a phase-buffer scatter
 * only where that does not fit). The filter gradient loads each dy vector once and
 * multiplies it into one register accumulator per tap, summed per plane into double in
 * a fixed order, so results never depend on the thread count. Row tails are masked
 * loads/stores (AVX2, AVX-512) or scalar loops (portable). */
/* Largest padded plane (floats, all phases) the fast path keeps on the stack. */
#define DW_BUF_MAX 12288
/* Largest kernel area the fast path handles. */
#define DW_TAPS_MAX 49

/* Geometry of one correlation out (Po x Qo) = sum_{r,s} w[r,s] in[p*sh - pt + r*dh][q*sw - pl + s*dw]. */
typedef struct dw_geom {
    int Po, Qo, Hi, Wi, R, S, sh, sw, pt, pl, dh, dw;
    int Hp, Lw, Qv; /* buffer rows per phase, row length, Qo rounded up to DWV */
    int64_t toff[DW_TAPS_MAX]; /* tap (r, s): its offset into the buffer */
} dw_geom;

static int dw_geom_init(dw_geom *g, int Po, int Qo, int Hi, int Wi, int R, int S, int sh, int sw, int pt, int pl,
                        int dh, int dwl) {
    g->Po = Po; g->Qo = Qo; g->Hi = Hi; g->Wi = Wi; g->R = R; g->S = S;
    g->sh = sh; g->sw = sw; g->pt = pt; g->pl = pl; g->dh = dh; g->dw = dwl;
    if (Po <= 0 || Qo <= 0 || R * S > DW_TAPS_MAX || sh < 1 || sw < 1 || pt < 0 || pl < 0) return 0;
    g->Qv = (Qo + DWV - 1) / DWV * DWV;
    g->Hp = (Po - 1) * sh + (R - 1) * dh + 1;
    g->Lw = g->Qv + ((S - 1) * dwl) / sw + 1;
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++)
            g->toff[r * S + s] = ((int64_t)((s * dwl) % sw) * g->Hp + r * dh) * g->Lw + (s * dwl) / sw;
    return (int64_t)sw * g->Hp * g->Lw <= DW_BUF_MAX;
}

/* buf[0 .. n) = 0 in vectors. */
static void dw_zero(float *buf, int64_t n) {
    int64_t i = 0;
    for (; i + DWV <= n; i += DWV) dwv_store(buf + i, dwv_zero());
    for (; i < n; i++) buf[i] = 0.0f;
}

/* Stride-1 fill without a library call per row (they dominated on 7x7 and 14x14
 * planes): the whole buffer zeroed in vectors, then each input row copied in. */
static void dw_fill1(float *buf, const float *in, const dw_geom *g, int relu) {
    const int64_t total = (int64_t)g->Hp * g->Lw;
    const float *end = buf + total;
    dw_zero(buf, total);
    int j0, j1;
    valid_range(-g->pl, 1, g->Wi, g->Lw, &j0, &j1);
    if (j1 <= j0) return;
    for (int ih = 0; ih < g->Hi && ih + g->pt < g->Hp; ih++)
        kvec_copy_row(buf + (int64_t)(ih + g->pt) * g->Lw + j0, in + (int64_t)ih * g->Wi + j0 - g->pl, j1 - j0,
                      relu, 0.0f, end);
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
/* Stride-2 fill (the reductions' strided convolutions; the scalar gather below was a
 * third of the depthwise forward time): the buffer zeroed in vectors, then each input
 * row split into its even and odd columns, 8 + 8 at a time by shuffles, each half
 * stored into its column phase; input column iw = 2m + t lands in phase (t + pl) % 2
 * at j = m + (t + pl) / 2. */
static void dw_fill2(float *buf, const float *in, const dw_geom *g, int relu) {
    dw_zero(buf, 2 * (int64_t)g->Hp * g->Lw);
    const int pl = g->pl, Wi = g->Wi, Lw = g->Lw;
    const int ph0 = pl % 2, ph1 = (1 + pl) % 2, o0 = pl / 2, o1 = (1 + pl) / 2;
    /* columns kept: j < Lw in their phase */
    for (int ih = 0; ih < g->Hi && ih + g->pt < g->Hp; ih++) {
        const float *xr = in + (int64_t)ih * Wi;
        float *b0 = buf + ((int64_t)ph0 * g->Hp + ih + g->pt) * Lw + o0; /* even input columns */
        float *b1 = buf + ((int64_t)ph1 * g->Hp + ih + g->pt) * Lw + o1; /* odd input columns */
        const int ne = (Wi + 1) / 2 < Lw - o0 ? (Wi + 1) / 2 : Lw - o0;
        const int no = Wi / 2 < Lw - o1 ? Wi / 2 : Lw - o1;
        int m = 0;
        for (; m + 8 <= ne && m + 8 <= no; m += 8) {
            const __m256 a = _mm256_loadu_ps(xr + 2 * m), c = _mm256_loadu_ps(xr + 2 * m + 8);
            __m256 e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, c, 0x88)), 0xD8));
            __m256 o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, c, 0xDD)), 0xD8));
            if (relu) {
                e = dwv_where_pos(e, e);
                o = dwv_where_pos(o, o);
            }
            _mm256_storeu_ps(b0 + m, e);
            _mm256_storeu_ps(b1 + m, o);
        }
        for (int k = m; k < ne; k++) {
            const float v = xr[2 * k];
            b0[k] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
        for (int k = m; k < no; k++) {
            const float v = xr[2 * k + 1];
            b1[k] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}
#endif

/* buf[phase][i][j] = (relu?) in[i - pt][j*sw + phase - pl], 0 outside the plane. */
static void dw_fill(float *buf, const float *in, const dw_geom *g, int relu) {
    if (g->sw == 1) {
        dw_fill1(buf, in, g, relu);
        return;
    }
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    if (g->sw == 2) {
        dw_fill2(buf, in, g, relu);
        return;
    }
#endif
    for (int ph = 0; ph < g->sw; ph++) {
        /* j valid iff 0 <= j*sw + ph - pl < Wi */
        int j0, j1;
        valid_range(ph - g->pl, g->sw, g->Wi, g->Lw, &j0, &j1);
        for (int i = 0; i < g->Hp; i++) {
            float *b = buf + ((int64_t)ph * g->Hp + i) * g->Lw;
            const int ih = i - g->pt;
            if (ih < 0 || ih >= g->Hi) {
                memset(b, 0, sizeof(float) * (size_t)g->Lw);
                continue;
            }
            const float *xr = in + (int64_t)ih * g->Wi + ph - g->pl;
            for (int j = 0; j < j0; j++) b[j] = 0.0f;
            if (g->sw == 1) {
                if (relu) {
                    int j = j0;
                    for (; j + DWV <= j1; j += DWV) {
                        const dwv v = dwv_load(xr + j);
                        dwv_store(b + j, dwv_where_pos(v, v));
                    }
                    for (; j < j1; j++) b[j] = xr[j] > 0.0f ? xr[j] : 0.0f;
                } else
                    memcpy(b + j0, xr + j0, sizeof(float) * (size_t)(j1 - j0));
            } else {
                for (int j = j0; j < j1; j++) {
                    float v = xr[(int64_t)j * g->sw];
                    b[j] = relu ? (v > 0.0f ? v : 0.0f) : v;
                }
            }
            for (int j = j1; j < g->Lw; j++) b[j] = 0.0f;
        }
    }
}

/* One output vector o[0 .. min(nq, DWV)) = (or +=) acc, or (m given) acc where m > 0, else 0. */
static inline __attribute__((always_inline)) void dw_corr_put(float *o, const float *m, dwv acc, int nq,
                                                              int accumulate) {
    if (nq >= DWV) { /* whole vector: vector stores, same arithmetic as the tail */
        if (m) acc = dwv_where_pos(dwv_load(m), acc);
        if (accumulate) acc = dwv_add(dwv_load(o), acc);
        dwv_store(o, acc);
        return;
    }
#if defined(__AVX512F__) /* masked loads and stores of the first nq lanes, same arithmetic */
    const __mmask16 k = (__mmask16)((1u << nq) - 1u);
    if (m) acc = dwv_where_pos(_mm512_maskz_loadu_ps(k, m), acc);
    if (accumulate) acc = dwv_add(_mm512_maskz_loadu_ps(k, o), acc);
    _mm512_mask_storeu_ps(o, k, acc);
#elif defined(__AVX2__) && defined(__FMA__)
    const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(nq), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (m) acc = dwv_where_pos(_mm256_maskload_ps(m, k), acc);
    if (accumulate) acc = dwv_add(_mm256_maskload_ps(o, k), acc);
    _mm256_maskstore_ps(o, k, acc);
#else
    float tmp[DWV];
    dwv_store(tmp, acc);
    if (m) {
        for (int i = 0; i < nq; i++) {
            const float v = m[i] > 0.0f ? tmp[i] : 0.0f;
            o[i] = accumulate ? o[i] + v : v;
        }
    } else if (accumulate) {
        for (int i = 0; i < nq; i++) o[i] += tmp[i];
    } else {
        for (int i = 0; i < nq; i++) o[i] = tmp[i];
    }
#endif
}

/* NB (1 or 2) consecutive output vectors of one row from q0: taps outer, so each tap's offset is
 * read once and the NB sums are independent chains. */
static inline __attribute__((always_inline)) void dw_corr_block(float *orow, const float *mrow, const float *bp,
                                                                const dwv *wv, const int64_t *toff, const int RS,
                                                                int q0, int Qo, const int NB, int accumulate) {
    dwv acc[2];
    for (int i = 0; i < NB; i++) acc[i] = dwv_zero();
    /* multiply then add, taps in (r, s) order: bit-identical to the scalar loops
     * (padding adds +0), which the parity tests were tuned on */
#pragma GCC unroll 25
    for (int t = 0; t < RS; t++) {
        const float *b = bp + toff[t] + q0;
        for (int i = 0; i < NB; i++) acc[i] = dwv_add(acc[i], dwv_mul(wv[t], dwv_load(b + i * DWV)));
    }
    for (int i = 0; i < NB; i++)
        dw_corr_put(orow + q0 + i * DWV, mrow ? mrow + q0 + i * DWV : NULL, acc[i], Qo - q0 - i * DWV, accumulate);
}

/* out (Po x Qo) = (or +=) correlation of the filled buffer with w; when mask is given
 * (Po x Qo), only positions with mask > 0 receive their value (the ReLU backward). R and
 * S are compile-time constants in the specialised instances, so the tap loops unroll. */
static inline __attribute__((always_inline)) void dw_corr_body(float *out, const float *buf, const float *w,
                                                               const dw_geom *g, const int R, const int S,
                                                               int accumulate, const float *mask) {
    const int Qo = g->Qo, Lw = g->Lw, sh = g->sh;
    dwv wv[DW_TAPS_MAX];
    const int64_t *toff = g->toff;
    for (int t = 0; t < R * S; t++) wv[t] = dwv_set1(w[t]);
    for (int p = 0; p < g->Po; p++) {
        const float *bp = buf + (int64_t)p * sh * Lw;
        float *orow = out + (int64_t)p * Qo;
        const float *mrow = mask ? mask + (int64_t)p * Qo : NULL;
        int q0 = 0;
        for (; q0 + DWV < Qo; q0 += 2 * DWV) dw_corr_block(orow, mrow, bp, wv, toff, R * S, q0, Qo, 2, accumulate);
        if (q0 < Qo) dw_corr_block(orow, mrow, bp, wv, toff, R * S, q0, Qo, 1, accumulate);
    }
}

static void dw_corr(float *out, const float *buf, const float *w, const dw_geom *g, int accumulate,
                    const float *mask) {
    if (g->R == 3 && g->S == 3) dw_corr_body(out, buf, w, g, 3, 3, accumulate, mask);
    else if (g->R == 5 && g->S == 5) dw_corr_body(out, buf, w, g, 5, 5, accumulate, mask);
    else dw_corr_body(out, buf, w, g, g->R, g->S, accumulate, mask);
}

static int dw_fast_ok(const kconv2d_desc *d) {
    dw_geom g;
    return dw_geom_init(&g, d->P, d->Q, d->H, d->W, d->R, d->S, d->stride_h, d->stride_w, d->pad_h, d->pad_w,
                        d->dil_h, d->dil_w);
}

static void dw_forward_fast(float *y, const float *x, const float *w, const kconv2d_desc *d, int relu) {
    const int C = d->C;
    const int64_t planes = (int64_t)d->N * C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (kdw8_forward_ok(d)) {
        kdw8_forward(y, x, w, d, relu);
        return;
    }
    dw_geom g;
    dw_geom_init(&g, d->P, d->Q, d->H, d->W, d->R, d->S, d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->dil_h,
                 d->dil_w);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float buf[DW_BUF_MAX] __attribute__((aligned(64)));
        dw_fill(buf, x + pl * HW, &g, relu);
        dw_corr(y + pl * PQ, buf, w + (pl % C) * d->R * d->S, &g, 0, NULL);
    }
}

/* Stride 1: dx[i][j] += sum w[R-1-r'][S-1-s'] dy[i - pt' + r'*dh][j - pl' + s'*dw] with
 * pt' = (R-1)*dh - pad_h. Usable when both pads are >= 0 and the buffer fits. */
static int dw_bwd_data_corr_ok(const kconv2d_desc *d, dw_geom *g) {
    if (d->stride_h != 1 || d->stride_w != 1) return 0;
    return dw_geom_init(g, d->H, d->W, d->P, d->Q, d->R, d->S, 1, 1, (d->R - 1) * d->dil_h - d->pad_h,
                        (d->S - 1) * d->dil_w - d->pad_w, d->dil_h, d->dil_w);
}

/* Other strides: the same correlation on dy with zeros inserted, U[p*sh][q*sw] = dy[p][q]
 * (U is (P-1)*sh+1 x (Q-1)*sw+1): a quarter of its products are nonzero at stride 2, but
 * they are whole vectors, with no per-row bookkeeping. */
static int dw_bwd_data_up_ok(const kconv2d_desc *d, dw_geom *g) {
    return dw_geom_init(g, d->H, d->W, (d->P - 1) * d->stride_h + 1, (d->Q - 1) * d->stride_w + 1, d->R, d->S, 1, 1,
                        (d->R - 1) * d->dil_h - d->pad_h, (d->S - 1) * d->dil_w - d->pad_w, d->dil_h, d->dil_w);
}

/* buf[i][j] = U[i - pt][j - pl] for the geometry of dw_bwd_data_up_ok; dy is P x Q. */
static void dw_fill_up(float *buf, const float *dy, const dw_geom *g, int Q, int uh, int uw) {
    memset(buf, 0, sizeof(float) * (size_t)g->Hp * g->Lw);
    for (int p = 0; p * uh < g->Hi; p++) {
        const int i = p * uh + g->pt;
        if (i >= g->Hp) break;
        float *b = buf + (int64_t)i * g->Lw + g->pl;
        const float *yr = dy + (int64_t)p * Q;
        for (int q = 0; q < Q && q * uw + g->pl < g->Lw; q++) b[q * uw] = yr[q];
    }
}

/* Fallback (pads past the kernel extent, or a zero-inserted dy too large for the buffer):
 * scatter dy into a phase buffer laid out as the forward's input buffer. Slow: its
 * read-modify-writes of overlapping vectors stall on store forwarding. */
static void dw_bwd_data_scatter(float *dxp, const float *dyp, const float *w, const float *mask, const dw_geom *g,
                                float *buf) {
    const int R = g->R, S = g->S, Qo = g->Qo, Hp = g->Hp, Lw = g->Lw, sw = g->sw;
    memset(buf, 0, sizeof(float) * (size_t)sw * Hp * Lw);
    for (int p = 0; p < g->Po; p++) {
        for (int q0 = 0; q0 < Qo; q0 += DWV) {
            float tmp[DWV];
            const int nq = Qo - q0 < DWV ? Qo - q0 : DWV;
            for (int i = 0; i < DWV; i++) tmp[i] = i < nq ? dyp[(int64_t)p * Qo + q0 + i] : 0.0f;
            const dwv gv = dwv_load(tmp);
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    float *b = buf + ((int64_t)((s * g->dw) % sw) * Hp + p * g->sh + r * g->dh) * Lw +
                               (s * g->dw) / sw + q0;
                    dwv_store(b, dwv_fma(dwv_set1(w[r * S + s]), gv, dwv_load(b)));
                }
        }
    }
    for (int ih = 0; ih < g->Hi; ih++) {
        const int i = ih + g->pt;
        if (i >= Hp) break;
        float *xr = dxp + (int64_t)ih * g->Wi;
        const float *mr = mask ? mask + (int64_t)ih * g->Wi : NULL;
        for (int iw = 0; iw < g->Wi; iw++) {
            const int c = iw + g->pl, j = c / sw;
            if (j >= Lw) break;
            const float v = buf[((int64_t)(c % sw) * Hp + i) * Lw + j];
            if (!mr || mr[iw] > 0.0f) xr[iw] += v;
        }
    }
}

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
/* Stride-2 data gradient by output phases. dx[ih][iw] gets w[r][s] dy[p][q] exactly when
 * 2p - pad_h + r*dil_h = ih and 2q - pad_w + s*dil_w = iw, so an output row of parity a
 * takes only the taps r with a + pad_h - r*dil_h even, at dy row i + (a + pad_h - r*dil_h)/2
 * (ih = 2i + a); likewise columns. Each output row is computed as its even and odd
 * columns (two vectors, each over its own taps, read from dy padded once per plane) and
 * interleaved into 16 consecutive floats: a quarter of the taps of the correlation over
 * zero-inserted dy, and none at all for the rows and columns a dilation-2 convolution
 * never reaches. Taps in the flipped order of that correlation, multiply then add, so
 * results are bit-identical to it. */
typedef struct dw_s2 {
    int na[2], nb[2];                  /* taps per row / column parity */
    int rr[2][DW_TAPS_MAX], dr[2][DW_TAPS_MAX]; /* tap row r and its dy row offset */
    int ss[2][DW_TAPS_MAX], ds[2][DW_TAPS_MAX]; /* tap column s and its dy column offset */
    int rmin, cmin, Bh, Bw, Wh;        /* buffer: dy row rmin + k at row k, column cmin + k at column k */
    int off[2][2][DW_TAPS_MAX];        /* phase (a, b), tap u * nb[b] + v: its offset into the buffer */
} dw_s2;

static int dw_s2_init(dw_s2 *t, const kconv2d_desc *d) {
    if (d->stride_h != 2 || d->stride_w != 2 || d->R * d->S > DW_TAPS_MAX) return 0;
    int rmin = 1 << 20, rmax = -(1 << 20), cmin = 1 << 20, cmax = -(1 << 20);
    for (int a = 0; a < 2; a++) {
        t->na[a] = kdw_s2_taps(a, d->pad_h, d->R, d->dil_h, t->rr[a], t->dr[a], &rmin, &rmax);
        t->nb[a] = kdw_s2_taps(a, d->pad_w, d->S, d->dil_w, t->ss[a], t->ds[a], &cmin, &cmax);
    }
    if (rmin > rmax || cmin > cmax) return 0;
    const int Hh = (d->H + 1) / 2;
    t->Wh = (d->W + 1) / 2;
    t->rmin = rmin;
    t->cmin = cmin;
    t->Bh = Hh + rmax - rmin;
    t->Bw = (t->Wh + DWV - 1) / DWV * DWV + cmax - cmin;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int u = 0; u < t->na[a]; u++)
                for (int v = 0; v < t->nb[b]; v++)
                    t->off[a][b][u * t->nb[b] + v] = (t->dr[a][u] - rmin) * t->Bw + (t->ds[b][v] - cmin);
    return (int64_t)t->Bh * t->Bw <= DW_BUF_MAX;
}

static void dw_bwd_data_s2(float *dxp, const float *dyp, const float *w, const float *mask, const kconv2d_desc *d,
                           const dw_s2 *t, int accumulate, float *buf) {
    const int S = d->S, W = d->W, Bw = t->Bw;
    const int64_t total = (int64_t)t->Bh * Bw;
    dw_zero(buf, total);
    for (int k = 0; k < t->Bh; k++) {
        const int pr = k + t->rmin;
        if (pr < 0 || pr >= d->P) continue;
        const int c0 = t->cmin > 0 ? t->cmin : 0, c1 = d->Q < Bw + t->cmin ? d->Q : Bw + t->cmin;
        if (c1 > c0) kvec_copy_row(buf + (int64_t)k * Bw + c0 - t->cmin, dyp + (int64_t)pr * d->Q + c0, c1 - c0, 0, 0.0f,
                                   buf + total);
    }
    dwv wv[2][2][DW_TAPS_MAX];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int u = 0; u < t->na[a]; u++)
                for (int v = 0; v < t->nb[b]; v++) wv[a][b][u * t->nb[b] + v] = dwv_set1(w[t->rr[a][u] * S + t->ss[b][v]]);
    for (int ih = 0; ih < d->H; ih++) {
        const int a = ih & 1, i = ih >> 1;
        float *orow = dxp + (int64_t)ih * W;
        const float *mrow = mask ? mask + (int64_t)ih * W : NULL;
        if (t->na[a] == 0) {
            if (!accumulate) memset(orow, 0, sizeof(float) * (size_t)W);
            continue;
        }
        const float *brow = buf + (int64_t)i * Bw;
        const int n0 = t->na[a] * t->nb[0], n1 = t->na[a] * t->nb[1];
        for (int j0 = 0; j0 < t->Wh; j0 += DWV) {
            dwv e = dwv_zero(), o = dwv_zero();
            for (int k = 0; k < n0; k++) e = dwv_add(e, dwv_mul(wv[a][0][k], dwv_load(brow + t->off[a][0][k] + j0)));
            for (int k = 0; k < n1; k++) o = dwv_add(o, dwv_mul(wv[a][1][k], dwv_load(brow + t->off[a][1][k] + j0)));
            const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
            dwv v[2] = {_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31)};
            const int q = 2 * j0, nq = W - q < 2 * DWV ? W - q : 2 * DWV;
            if (nq == 2 * DWV) {
                for (int h = 0; h < 2; h++) {
                    dwv x = v[h];
                    if (mrow) x = dwv_where_pos(dwv_load(mrow + q + h * DWV), x);
                    if (accumulate) x = dwv_add(dwv_load(orow + q + h * DWV), x);
                    dwv_store(orow + q + h * DWV, x);
                }
            } else {
                float tmp[2 * DWV];
                dwv_store(tmp, v[0]);
                dwv_store(tmp + DWV, v[1]);
                for (int h = 0; h < nq; h++) {
                    const float x = mrow && !(mrow[q + h] > 0.0f) ? 0.0f : tmp[h];
                    orow[q + h] = accumulate ? orow[q + h] + x : x;
                }
            }
        }
    }
}
#endif

static void dw_backward_data_fast(float *dx, const float *dy, const float *w, const float *xmask,
                                  const kconv2d_desc *d, int accumulate) {
    if (kdw8_backward_data_ok(d)) {
        kdw8_backward_data(dx, dy, w, xmask, d, accumulate);
        return;
    }
    const int C = d->C, R = d->R, S = d->S;
    const int64_t planes = (int64_t)d->N * C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    dw_geom gc, gf;
    const int corr = dw_bwd_data_corr_ok(d, &gc);
    dw_geom_init(&gf, d->P, d->Q, d->H, d->W, R, S, d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->dil_h,
                 d->dil_w);
    const int up = !corr && dw_bwd_data_up_ok(d, &gc);
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    dw_s2 t2;
    const int s2 = !corr && dw_s2_init(&t2, d);
#endif
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float buf[DW_BUF_MAX] __attribute__((aligned(64)));
        const float *wc = w + (pl % C) * R * S;
        const float *mask = xmask ? xmask + pl * HW : NULL;
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
        if (s2) {
            dw_bwd_data_s2(dx + pl * HW, dy + pl * PQ, wc, mask, d, &t2, accumulate, buf);
            continue;
        }
#endif
        if (corr) {
            float wf[DW_TAPS_MAX];
            for (int t = 0; t < R * S; t++) wf[t] = wc[R * S - 1 - t];
            dw_fill(buf, dy + pl * PQ, &gc, 0);
            dw_corr(dx + pl * HW, buf, wf, &gc, accumulate, mask);
        } else if (up) {
            float wf[DW_TAPS_MAX];
            for (int t = 0; t < R * S; t++) wf[t] = wc[R * S - 1 - t];
            dw_fill_up(buf, dy + pl * PQ, &gc, d->Q, d->stride_h, d->stride_w);
            dw_corr(dx + pl * HW, buf, wf, &gc, accumulate, mask);
        } else {
            if (!accumulate) memset(dx + pl * HW, 0, sizeof(float) * (size_t)HW);
            dw_bwd_data_scatter(dx + pl * HW, dy + pl * PQ, wc, mask, &gf, buf);
        }
    }
}

/* Filter gradient over one plane for the tap rows r0 .. r0+RB-1 (RB and S compile-time
 * constants in the specialised instances, so the tap loop unrolls and its accumulators
 * stay in registers): each dy vector (gpad: P x Qv, zero past Q) is loaded once and
 * multiplied into one accumulator per tap, each tap reading buf at its offset; per plane
 * each accumulator is summed across lanes in float and added to acc in double. */
static inline __attribute__((always_inline)) void dw_bwf_rows(double *acc, const float *buf, const float *gpad,
                                                              const dw_geom *g, const int r0, const int RB,
                                                              const int S) {
    const int Qv = g->Qv;
    const int64_t rstep = (int64_t)g->sh * g->Lw, *toff = g->toff + r0 * S;
    dwv a[DW_TAPS_MAX];
    for (int t = 0; t < RB * S; t++) a[t] = dwv_zero();
    const float *bp = buf, *gr = gpad;
    for (int p = 0; p < g->Po; p++, bp += rstep, gr += Qv)
        for (int q0 = 0; q0 < Qv; q0 += DWV) {
            const dwv gv = dwv_load(gr + q0);
#pragma GCC unroll 25
            for (int t = 0; t < RB * S; t++) a[t] = dwv_fma(gv, dwv_load(bp + toff[t] + q0), a[t]);
        }
    for (int t = 0; t < RB * S; t++) acc[r0 * S + t] += (double)dwv_hsum(a[t]);
}

/* Tap rows per pass: as many accumulators as the vector registers hold (16 with AVX2,
 * 32 with AVX-512, less the dy vector and a load). */
static void dw_bwf_plane(double *acc, const float *buf, const float *gpad, const dw_geom *g) {
    if (g->R == 3 && g->S == 3) {
        dw_bwf_rows(acc, buf, gpad, g, 0, 3, 3);
    } else if (g->R == 5 && g->S == 5) {
#if DWV == 16
        dw_bwf_rows(acc, buf, gpad, g, 0, 5, 5);
#else
        dw_bwf_rows(acc, buf, gpad, g, 0, 2, 5);
        dw_bwf_rows(acc, buf, gpad, g, 2, 2, 5);
        dw_bwf_rows(acc, buf, gpad, g, 4, 1, 5);
#endif
    } else {
        for (int r = 0; r < g->R; r++) dw_bwf_rows(acc, buf, gpad, g, r, 1, g->S);
    }
}

static void dw_backward_filter_fast(float *dw, const float *dy, const float *x, const kconv2d_desc *d, int relu) {
    if (kdw8_backward_filter_ok(d)) {
        kdw8_backward_filter(dw, dy, x, d, relu);
        return;
    }
    const int C = d->C, R = d->R, S = d->S, P = d->P, Q = d->Q;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)P * Q;
    dw_geom g;
    dw_geom_init(&g, P, Q, d->H, d->W, R, S, d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->dil_h, d->dil_w);
    const int Qv = (Q + DWV - 1) / DWV * DWV; /* g.Qv */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float buf[DW_BUF_MAX] __attribute__((aligned(64)));
        /* dy plane, rows zero-padded to Qv (P * Qv <= Hp * Lw: fits) */
        float gpad[DW_BUF_MAX] __attribute__((aligned(64)));
        double acc[DW_TAPS_MAX];
        for (int t = 0; t < R * S; t++) acc[t] = 0.0;
        for (int n = 0; n < d->N; n++) {
            const int64_t pl = (int64_t)n * C + c;
            dw_fill(buf, x + pl * HW, &g, relu);
            const float *gp = dy + pl * PQ;
            for (int p = 0; p < P; p++) {
                float *gr = gpad + (int64_t)p * Qv;
                kvec_copy_row(gr, gp + (int64_t)p * Q, Q, 0, 0.0f, gr + Qv); /* a vector tail is zero-padded */
#if !defined(__AVX512F__) && !(defined(__AVX2__) && defined(__FMA__))
                for (int q = Q; q < Qv; q++) gr[q] = 0.0f;
#endif
            }
            dw_bwf_plane(acc, buf, gpad, &g);
        }
        for (int t = 0; t < R * S; t++) dw[(int64_t)c * R * S + t] += (float)acc[t];
    }
}

/* ---- public entry points ---- */
void kcpu_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch) {
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    if (is_depthwise(d)) {
        if (dw_fast_ok(d)) dw_forward_fast(y, x, w, d, 0);
        else dw_forward(y, x, w, d);
        return;
    }
    if (is_pointwise(d)) {
        kpw_forward(y, x, w, d->N, d->K, d->C, HW, 0);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    if (is_sampled_1x1(d)) {
        const int B = sampled_chunk(d);
        for (int n0 = 0; n0 < d->N; n0 += B) {
            const int nb = d->N - n0 < B ? d->N - n0 : B;
            sampled_gather(scratch, x, d, n0, nb);
            kpw_forward(y + (int64_t)n0 * d->K * PQ, scratch, w, nb, d->K, d->C, PQ, 0);
        }
        return;
    }
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
        if (dw_fast_ok(d)) dw_backward_data_fast(dx, dy, w, NULL, d, 1);
        else dw_backward_data(dx, dy, w, d);
        return;
    }
    if (is_pointwise(d)) {
        kpw_backward_data(dx, dy, w, NULL, d->N, d->K, d->C, HW, 1);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    if (is_sampled_1x1(d)) {
        const int B = sampled_chunk(d);
        for (int n0 = 0; n0 < d->N; n0 += B) {
            const int nb = d->N - n0 < B ? d->N - n0 : B;
            kpw_backward_data(scratch, dy + (int64_t)n0 * d->K * PQ, w, NULL, nb, d->K, d->C, PQ, 0);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nb; i++)
                col2im_add(dx + (int64_t)(n0 + i) * d->C * HW, scratch + (int64_t)i * d->C * PQ, d);
        }
        return;
    }
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
        if (dw_fast_ok(d)) dw_backward_filter_fast(dw, dy, x, d, 0);
        else dw_backward_filter(dw, dy, x, d);
        return;
    }
    if (is_pointwise(d)) {
        kpw_backward_filter(dw, dy, x, d->N, d->K, d->C, HW, 0, scratch);
        return;
    }
    const int G = d->groups, Kg = d->K / G, CgRS = d->C / G * d->R * d->S;
    if (is_sampled_1x1(d)) {
        const int B = sampled_chunk(d);
        float *fs = scratch + (((size_t)d->C * (size_t)PQ * (size_t)B + 15) & ~(size_t)15);
        for (int n0 = 0; n0 < d->N; n0 += B) {
            const int nb = d->N - n0 < B ? d->N - n0 : B;
            sampled_gather(scratch, x, d, n0, nb);
            kpw_backward_filter(dw, dy + (int64_t)n0 * d->K * PQ, scratch, nb, d->K, d->C, PQ, 0, fs);
        }
        return;
    }
    for (int n = 0; n < d->N; n++) {
        im2col(scratch, x + (int64_t)n * d->C * HW, d);
        for (int g = 0; g < G; g++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Kg, CgRS, (int)PQ, 1.0f,
                        dy + ((int64_t)n * d->K + (int64_t)g * Kg) * PQ, (int)PQ,
                        scratch + (int64_t)g * CgRS * PQ, (int)PQ, 1.0f, dw + (int64_t)g * Kg * CgRS,
                        CgRS);
    }
}

/* ---- ReLU fused into a depthwise or 1x1 convolution's input ---- */
int kcpu_conv2d_relu_supported(const kconv2d_desc *d) {
    return (is_depthwise(d) && dw_fast_ok(d)) || is_pointwise(d);
}

void kcpu_conv2d_relu_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch) {
    (void)scratch;
    if (is_pointwise(d)) kpw_forward(y, x, w, d->N, d->K, d->C, (int64_t)d->H * d->W, 1);
    else dw_forward_fast(y, x, w, d, 1);
}

void kcpu_conv2d_relu_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                    const kconv2d_desc *d, float *scratch) {
    (void)scratch;
    if (!dx) return;
    if (is_pointwise(d)) kpw_backward_data(dx, dy, w, x, d->N, d->K, d->C, (int64_t)d->H * d->W, 1);
    else dw_backward_data_fast(dx, dy, w, x, d, 1);
}

/* ---- data gradient written, not added (the runtime then skips zeroing dx) ---- */
int kcpu_conv2d_sets_dx(const kconv2d_desc *d) { return is_pointwise(d) || (is_depthwise(d) && dw_fast_ok(d)); }

void kcpu_conv2d_backward_data_set(float *dx, const float *dy, const float *w, const float *x_relu,
                                   const kconv2d_desc *d, float *scratch) {
    (void)scratch;
    if (!dx) return;
    if (is_pointwise(d)) kpw_backward_data(dx, dy, w, x_relu, d->N, d->K, d->C, (int64_t)d->H * d->W, 0);
    else dw_backward_data_fast(dx, dy, w, x_relu, d, 0);
}

void kcpu_conv2d_relu_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                      float *scratch) {
    if (!dw) return;
    if (is_pointwise(d)) kpw_backward_filter(dw, dy, x, d->N, d->K, d->C, (int64_t)d->H * d->W, 1, scratch);
    else dw_backward_filter_fast(dw, dy, x, d, 1);
}
