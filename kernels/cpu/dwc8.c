/* dwc8.c — depthwise convolutions over channel-blocked planes; see dwc8.h.
 *
 * Layout: for one sample n and channel block cb (channels 8cb .. 8cb+7) the buffer holds
 * Hb x Wb pixels of 8 floats, pixel (i, j) = channels of input (i - pt, j - pl), zero
 * outside the plane. Output pixel (p, q) of channel block cb is
 *     sum over taps (r, s) of wt[r][s] * buf[p*sh + r*dh][q*sw + s*dw]
 * with wt[r][s] the 8 channels' weights of tap (r, s): one multiply and one add per tap
 * and 8 outputs, taps in (r, s) order from +0, as conv.c's per-plane kernels do, so the
 * forward and data gradient are bit-identical to them. (FMA would be no faster where
 * multiplies and adds issue on separate pipes, as on this machine's Zen 5, and its other
 * rounding put 60 weight gradients of one cell of the CIFAR-10 parity test, among its
 * ill-conditioned ones, 5-10x further from float64 than PyTorch float32.)
 * Outputs are computed 8 pixels at a time (8 accumulators), transposed in registers into
 * 8 channel rows and stored to the NCHW planes. The buffer's border is zeroed once per
 * thread and call; each block only rewrites the interior. The data gradient at stride 1
 * is the same correlation over dy with the taps flipped; the filter gradient multiplies
 * dy's transposed pixels into one accumulator per tap. */
#include "kernels/cpu/dwc8.h"
#include "kernels/cpu/c8.h"

#include <stdint.h>
#include <string.h>

static int dw8_enabled = 1;

int kdw8_set_enabled(int on) {
    int old = dw8_enabled;
    dw8_enabled = on != 0;
    return old;
}

int kdw8_enabled(void) { return dw8_enabled; }

int kdw_s2_taps(int a, int pad, int K, int dil, int *idx, int *off, int *mn, int *mx) {
    int n = 0;
    for (int k = K - 1; k >= 0; k--) {
        const int v = a + pad - k * dil;
        if (v % 2) continue;
        idx[n] = k;
        off[n++] = v / 2;
        *mn = v / 2 < *mn ? v / 2 : *mn;
        *mx = v / 2 > *mx ? v / 2 : *mx;
    }
    return n;
}

#if defined(__AVX2__) && defined(__FMA__)

#define D8_BUF_FLOATS 16384 /* per thread: a 40 x 40 padded plane of 8 channels (64 KiB) */
#define D8_TAPS_MAX 49
#define D8_S2_ROW 256 /* pixels of one stride-2 data-gradient output row, rounded to 16 */

/* One correlation: out (Po x Qo per channel) from a buffer of Hb x Wb pixels. */
typedef struct d8_geom {
    int Po, Qo, Hi, Wi, R, S, sh, sw, dh, dw, pt, pl;
    int Hb, Wb, Qv; /* buffer rows and columns (pixels); Qo rounded up to 8 */
} d8_geom;

static int d8_init(d8_geom *g, int Po, int Qo, int Hi, int Wi, int R, int S, int sh, int sw, int dh, int dw, int pt,
                   int pl) {
    *g = (d8_geom){Po, Qo, Hi, Wi, R, S, sh, sw, dh, dw, pt, pl, 0, 0, 0};
    if (Po <= 0 || Qo <= 0 || Hi <= 0 || Wi <= 0 || R < 1 || S < 1 || R * S > D8_TAPS_MAX || sh < 1 || sw < 1 ||
        dh < 1 || dw < 1 || pt < 0 || pl < 0)
        return 0;
    g->Qv = (Qo + 7) / 8 * 8;
    g->Hb = (Po - 1) * sh + (R - 1) * dh + 1;
    g->Wb = (g->Qv - 1) * sw + (S - 1) * dw + 1;
    return (int64_t)g->Hb * g->Wb * 8 <= D8_BUF_FLOATS;
}

/* Geometry of the forward correlation; also what the filter gradient reads. */
static int d8_fwd_geom(d8_geom *g, const kconv2d_desc *d) {
    if (!dw8_enabled || d->groups != d->C || d->K != d->C || d->C % 8 != 0) return 0;
    return d8_init(g, d->P, d->Q, d->H, d->W, d->R, d->S, d->stride_h, d->stride_w, d->dil_h, d->dil_w, d->pad_h,
                   d->pad_w);
}

/* Stride 1 data gradient: dx[i][j] = sum w[r][s] dy[i + pad_h - r*dh][j + pad_w - s*dw], a
 * correlation over dy padded by (R-1)*dh - pad_h with the taps flipped. */
static int d8_bwd_geom(d8_geom *g, const kconv2d_desc *d) {
    if (!dw8_enabled || d->groups != d->C || d->K != d->C || d->C % 8 != 0 || d->stride_h != 1 || d->stride_w != 1)
        return 0;
    return d8_init(g, d->H, d->W, d->P, d->Q, d->R, d->S, 1, 1, d->dil_h, d->dil_w, (d->R - 1) * d->dil_h - d->pad_h,
                   (d->S - 1) * d->dil_w - d->pad_w);
}

int kdw8_forward_ok(const kconv2d_desc *d) {
    d8_geom g;
    return d8_fwd_geom(&g, d);
}
typedef struct d8_s2 d8_s2;
static int d8_s2_init(d8_s2 *t, const kconv2d_desc *d);

int kdw8_backward_data_ok(const kconv2d_desc *d) {
    d8_geom g;
    return d8_bwd_geom(&g, d) || d8_s2_init(NULL, d);
}
int kdw8_backward_filter_ok(const kconv2d_desc *d) {
    d8_geom g;
    return d8_fwd_geom(&g, d) && (int64_t)d->P * d->Q * 8 <= D8_BUF_FLOATS;
}

/* The interior of the buffer from 8 planes of Hi x Wi (plane stride cs); the border
 * stays as set. */
static void d8_fill(float *buf, const float *in, int64_t cs, const d8_geom *g, int relu) {
    const int rows = g->Hi < g->Hb - g->pt ? g->Hi : g->Hb - g->pt;
    const int cols = g->Wi < g->Wb - g->pl ? g->Wi : g->Wb - g->pl;
    c8_fill(buf, g->Wb, g->pt, g->pl, rows, cols, in, g->Wi, cs, relu, 0);
}

/* wt[t][c] = w[channel 8cb + c][tap t], or tap RS-1-t when flipped. */
static void d8_weights(float *wt, const float *w, int cb, int RS, int flip) {
    for (int t = 0; t < RS; t++)
        for (int c = 0; c < 8; c++) wt[t * 8 + c] = w[(int64_t)(cb * 8 + c) * RS + (flip ? RS - 1 - t : t)];
}

/* Transposes acc (8 pixels of 8 channels) and stores channel c's 8 outputs at
 * out + c*cs (nq of them), masked by m (same layout) and added to what is there when asked. */
static inline __attribute__((always_inline)) void d8_put(float *out, const float *m, int64_t cs, __m256 acc[8],
                                                         int nq, int accumulate) {
    c8_tr(acc);
    if (nq == 8) {
        for (int c = 0; c < 8; c++) {
            __m256 v = acc[c];
            if (m) v = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(m + c * cs), _mm256_setzero_ps(), _CMP_GT_OQ), v);
            if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(out + c * cs), v);
            _mm256_storeu_ps(out + c * cs, v);
        }
        return;
    }
    const __m256i k = c8_lanes_below(nq);
    for (int c = 0; c < 8; c++) {
        __m256 v = acc[c];
        if (m) v = _mm256_and_ps(_mm256_cmp_ps(_mm256_maskload_ps(m + c * cs, k), _mm256_setzero_ps(), _CMP_GT_OQ), v);
        if (accumulate) v = _mm256_add_ps(_mm256_maskload_ps(out + c * cs, k), v);
        _mm256_maskstore_ps(out + c * cs, k, v);
    }
}

/* One tap row r of 8 output pixels starting at row pointer b (buffer pixel of output
 * (p, q0) shifted by r*dh rows). Stride 1: each input pixel vector is loaded once and
 * multiplied into every output it reaches (S weights held in registers); otherwise
 * one load per product. For each output the taps still arrive in s order. */
static inline __attribute__((always_inline)) void d8_tap_row(__m256 acc[8], const float *b, const float *wr,
                                                             const int S, const int sw, const int dw) {
    if (sw == 1) {
        __m256 wv[D8_TAPS_MAX];
        for (int s = 0; s < S; s++) wv[s] = _mm256_load_ps(wr + s * 8);
#pragma GCC unroll 64
        for (int j = 0; j < 8 + (S - 1) * dw; j++) {
            const __m256 v = _mm256_load_ps(b + j * 8);
#pragma GCC unroll 16
            for (int s = 0; s < S; s++) {
                const int k = j - s * dw;
                if (k >= 0 && k < 8) acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(wv[s], v));
            }
        }
    } else {
#pragma GCC unroll 16
        for (int s = 0; s < S; s++) {
            const __m256 wv = _mm256_load_ps(wr + s * 8);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(wv, _mm256_load_ps(b + (k * sw + s * dw) * 8)));
        }
    }
}

/* out planes (plane stride cs, Po x Qo each) from the filled buffer. */
static inline __attribute__((always_inline)) void d8_corr_body(float *out, const float *m, int64_t cs,
                                                               const float *buf, const float *wt, const d8_geom *g,
                                                               const int R, const int S, const int sh, const int sw,
                                                               const int dh, const int dw, int accumulate) {
    const int Wb = g->Wb, Qo = g->Qo;
    for (int p = 0; p < g->Po; p++) {
        const float *bp = buf + (int64_t)p * sh * Wb * 8;
        for (int q0 = 0; q0 < Qo; q0 += 8) {
            __m256 acc[8];
            for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
            for (int r = 0; r < R; r++) d8_tap_row(acc, bp + ((int64_t)r * dh * Wb + (int64_t)q0 * sw) * 8, wt + r * S * 8, S, sw, dw);
            const int64_t o = (int64_t)p * Qo + q0;
            d8_put(out + o, m ? m + o : NULL, cs, acc, Qo - q0 < 8 ? Qo - q0 : 8, accumulate);
        }
    }
}

/* Instances with the tap loops unrolled for the DARTS kernels (3x3, 5x5; dilation 1, 2;
 * stride 1, 2), and one for any other shape. */
static void d8_corr(float *out, const float *m, int64_t cs, const float *buf, const float *wt, const d8_geom *g,
                    int accumulate) {
#define D8_CASE(R_, S_, SH, SW, DH, DW)                                                                        \
    if (g->R == R_ && g->S == S_ && g->sh == SH && g->sw == SW && g->dh == DH && g->dw == DW) {                 \
        d8_corr_body(out, m, cs, buf, wt, g, R_, S_, SH, SW, DH, DW, accumulate);                               \
        return;                                                                                                \
    }
    D8_CASE(3, 3, 1, 1, 1, 1) D8_CASE(3, 3, 2, 2, 1, 1) D8_CASE(3, 3, 1, 1, 2, 2) D8_CASE(3, 3, 2, 2, 2, 2)
    D8_CASE(5, 5, 1, 1, 1, 1) D8_CASE(5, 5, 2, 2, 1, 1) D8_CASE(5, 5, 1, 1, 2, 2) D8_CASE(5, 5, 2, 2, 2, 2)
#undef D8_CASE
    d8_corr_body(out, m, cs, buf, wt, g, g->R, g->S, g->sh, g->sw, g->dh, g->dw, accumulate);
}

/* Every block (sample n, channels 8cb..8cb+7): in's planes (plane size ins) filled into
 * the buffer, correlated with the (flipped) taps into out's planes (plane size outs),
 * masked by mask's planes when given. The forward and the stride-1 data gradient. */
static void d8_corr_blocks(float *out, const float *mask, int64_t outs, const float *in, int64_t ins, const float *w,
                           int flip, int relu, int accumulate, const d8_geom *g, const kconv2d_desc *d) {
    const int C = d->C, CB = C / 8, RS = d->R * d->S;
    const int64_t blocks = (int64_t)d->N * CB;
#pragma omp parallel
    {
        float buf[D8_BUF_FLOATS] __attribute__((aligned(32)));
        float wt[D8_TAPS_MAX * 8] __attribute__((aligned(32)));
        c8_set(buf, (int64_t)g->Hb * g->Wb * 8, 0.0f);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t pl = (b / CB) * C + (b % CB) * 8; /* first plane of the block */
            d8_weights(wt, w, (int)(b % CB), RS, flip);
            d8_fill(buf, in + pl * ins, ins, g, relu);
            d8_corr(out + pl * outs, mask ? mask + pl * outs : NULL, outs, buf, wt, g, accumulate);
        }
    }
}

void kdw8_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, int relu) {
    d8_geom g;
    if (!d8_fwd_geom(&g, d)) return;
    d8_corr_blocks(y, NULL, (int64_t)d->P * d->Q, x, (int64_t)d->H * d->W, w, 0, relu, 0, &g, d);
}

/* ---- stride-2 data gradient by output phases ----
 * dx[ih][iw] gets w[r][s] dy[p][q] exactly when 2p - pad_h + r*dil_h = ih and
 * 2q - pad_w + s*dil_w = iw: an output row of parity a takes only the taps r with
 * a + pad_h - r*dil_h even, at dy row ih/2 + (a + pad_h - r*dil_h)/2; likewise columns.
 * Each output row is computed as its even and its odd columns, 8 pixels at a time over
 * their own taps, from dy's pixels padded once per block, then transposed out: a quarter
 * of the products of a correlation over zero-inserted dy. Taps in that correlation's
 * (flipped) order, multiply then add: the bits of conv.c's per-plane phase kernel. */
struct d8_s2 {
    int na[2], nb[2];                            /* taps per row / column parity */
    int rr[2][D8_TAPS_MAX], dr[2][D8_TAPS_MAX];  /* tap row r, its dy row offset */
    int ss[2][D8_TAPS_MAX], ds[2][D8_TAPS_MAX];  /* tap column s, its dy column offset */
    int rmin, cmin, Bh, Bw, Wh;                  /* buffer row k = dy row rmin + k; column likewise */
};

/* t may be NULL (only asks whether the path applies). */
static int d8_s2_init(d8_s2 *t, const kconv2d_desc *d) {
    d8_s2 tmp;
    if (!t) t = &tmp;
    if (!dw8_enabled || d->groups != d->C || d->K != d->C || d->C % 8 != 0 || d->stride_h != 2 ||
        d->stride_w != 2 || d->R * d->S > D8_TAPS_MAX || d->H <= 0 || d->W <= 0 || d->P <= 0 || d->Q <= 0)
        return 0;
    int rmin = 1 << 20, rmax = -(1 << 20), cmin = 1 << 20, cmax = -(1 << 20);
    for (int a = 0; a < 2; a++) {
        t->na[a] = kdw_s2_taps(a, d->pad_h, d->R, d->dil_h, t->rr[a], t->dr[a], &rmin, &rmax);
        t->nb[a] = kdw_s2_taps(a, d->pad_w, d->S, d->dil_w, t->ss[a], t->ds[a], &cmin, &cmax);
    }
    if (rmin > rmax || cmin > cmax) return 0;
    t->Wh = (d->W + 1) / 2;
    t->rmin = rmin;
    t->cmin = cmin;
    t->Bh = (d->H + 1) / 2 + rmax - rmin;
    t->Bw = (t->Wh + 7) / 8 * 8 + cmax - cmin;
    return (int64_t)t->Bh * t->Bw * 8 <= D8_BUF_FLOATS && (int64_t)(t->Wh + 7) / 8 * 16 <= D8_S2_ROW;
}

static void d8_s2_block(float *dx, const float *dy, const float *w, const float *mask, const kconv2d_desc *d,
                        const d8_s2 *t, int cb, int accumulate, float *buf, float *wt, float *row) {
    const int W = d->W, Bw = t->Bw, S = d->S, RS = d->R * d->S;
    const int64_t HW = (int64_t)d->H * W, PQ = (int64_t)d->P * d->Q;
    /* dy rows rmin + k, columns cmin + j at buffer (k, j); the rest stays zero */
    const int r0 = t->rmin > 0 ? t->rmin : 0, c0 = t->cmin > 0 ? t->cmin : 0;
    const int r1 = d->P < t->Bh + t->rmin ? d->P : t->Bh + t->rmin, c1 = d->Q < Bw + t->cmin ? d->Q : Bw + t->cmin;
    if (r1 > r0 && c1 > c0)
        c8_fill(buf, Bw, r0 - t->rmin, c0 - t->cmin, r1 - r0, c1 - c0, dy + (int64_t)r0 * d->Q + c0, d->Q, PQ, 0, 0);
    /* weight vectors per phase and tap, in tap order */
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int u = 0; u < t->na[a]; u++)
                for (int v = 0; v < t->nb[b]; v++) {
                    float *o = wt + (((a * 2 + b) * D8_TAPS_MAX) + u * t->nb[b] + v) * 8;
                    for (int c = 0; c < 8; c++) o[c] = w[(int64_t)(cb * 8 + c) * RS + t->rr[a][u] * S + t->ss[b][v]];
                }
    for (int ih = 0; ih < d->H; ih++) {
        const int a = ih & 1;
        const float *brow = buf + (int64_t)(ih >> 1) * Bw * 8;
        for (int b = 0; b < 2; b++) {
            const int nb = t->nb[b], mb = (W - b + 1) / 2; /* columns iw = 2m + b < W */
            for (int m0 = 0; m0 < mb; m0 += 8) {
                __m256 acc[8];
                for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
                for (int u = 0; u < t->na[a]; u++) {
                    const float *bu = brow + ((int64_t)(t->dr[a][u] - t->rmin) * Bw + m0 - t->cmin) * 8;
                    for (int v = 0; v < nb; v++) {
                        const __m256 wv = _mm256_load_ps(wt + (((a * 2 + b) * D8_TAPS_MAX) + u * nb + v) * 8);
                        const float *bv = bu + (int64_t)t->ds[b][v] * 8;
                        for (int k = 0; k < 8; k++)
                            acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(wv, _mm256_load_ps(bv + k * 8)));
                    }
                }
                for (int k = 0; k < 8 && m0 + k < mb; k++) _mm256_store_ps(row + (int64_t)(2 * (m0 + k) + b) * 8, acc[k]);
            }
        }
        for (int j = 0; j < W; j += 8) {
            __m256 v[8];
            for (int k = 0; k < 8; k++) v[k] = j + k < W ? _mm256_load_ps(row + (int64_t)(j + k) * 8) : _mm256_setzero_ps();
            const int64_t o = (int64_t)ih * W + j;
            d8_put(dx + o, mask ? mask + o : NULL, HW, v, W - j < 8 ? W - j : 8, accumulate);
        }
    }
}

void kdw8_backward_data(float *dx, const float *dy, const float *w, const float *xmask, const kconv2d_desc *d,
                        int accumulate) {
    d8_geom g;
    d8_s2 t;
    if (dx && d8_s2_init(&t, d)) {
        const int C = d->C, CB = C / 8;
        const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q, blocks = (int64_t)d->N * CB;
#pragma omp parallel
        {
            float buf[D8_BUF_FLOATS] __attribute__((aligned(32)));
            float wt[4 * D8_TAPS_MAX * 8] __attribute__((aligned(32)));
            float row[D8_S2_ROW * 8] __attribute__((aligned(32)));
            c8_set(buf, (int64_t)t.Bh * t.Bw * 8, 0.0f);
#pragma omp for schedule(static)
            for (int64_t b = 0; b < blocks; b++) {
                const int64_t n = b / CB;
                const int cb = (int)(b % CB);
                const int64_t o = (n * C + cb * 8) * HW;
                d8_s2_block(dx + o, dy + (n * C + cb * 8) * PQ, w, xmask ? xmask + o : NULL, d, &t, cb, accumulate,
                            buf, wt, row);
            }
        }
        return;
    }
    if (!dx || !d8_bwd_geom(&g, d)) return;
    d8_corr_blocks(dx, xmask, (int64_t)d->H * d->W, dy, (int64_t)d->P * d->Q, w, 1, 0, accumulate, &g, d);
}

/* ---- filter gradient ---- */

/* acc[(r0+rr)*S + s] += sum over the plane of g[p][q] * buf[p*sh + (r0+rr)*dh][q*sw + s*dw]
 * for the RB tap rows from r0: each dy pixel is loaded once for RB*S products, and the
 * RB*S accumulators are independent chains (3 of them, one tap row, would wait on the FMA
 * latency). A lane is one channel, so a float chain would run over the whole plane: the
 * sums go to double every 64 or more products. */
static inline __attribute__((always_inline)) void d8_bwf_rows(double *acc, const float *buf, const float *gb,
                                                              const d8_geom *g, const int r0, const int RB,
                                                              const int S, const int sh, const int sw, const int dh,
                                                              const int dw) {
    const int Wb = g->Wb, Qo = g->Qo, rows = (64 + Qo - 1) / Qo;
    for (int p0 = 0; p0 < g->Po; p0 += rows) {
        const int p1 = p0 + rows < g->Po ? p0 + rows : g->Po;
        __m256 a[D8_TAPS_MAX];
        for (int t = 0; t < RB * S; t++) a[t] = _mm256_setzero_ps();
        for (int p = p0; p < p1; p++) {
            const float *b = buf + (int64_t)(p * sh + r0 * dh) * Wb * 8;
            const float *gr = gb + (int64_t)p * Qo * 8;
            for (int q = 0; q < Qo; q++) {
                const __m256 gv = _mm256_load_ps(gr + q * 8);
#pragma GCC unroll 16
                for (int rr = 0; rr < RB; rr++)
#pragma GCC unroll 16
                    for (int s = 0; s < S; s++)
                        a[rr * S + s] = _mm256_fmadd_ps(
                            gv, _mm256_load_ps(b + ((int64_t)rr * dh * Wb + q * sw + s * dw) * 8), a[rr * S + s]);
            }
        }
        for (int t = 0; t < RB * S; t++) {
            double *o = acc + (r0 * S + t) * 8;
            _mm256_storeu_pd(o, _mm256_add_pd(_mm256_loadu_pd(o), _mm256_cvtps_pd(_mm256_castps256_ps128(a[t]))));
            _mm256_storeu_pd(o + 4, _mm256_add_pd(_mm256_loadu_pd(o + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(a[t], 1))));
        }
    }
}

/* Tap rows per pass: as many accumulators as 16 registers hold beside dy and a load. */
static inline __attribute__((always_inline)) void d8_bwf_body(double *acc, const float *buf, const float *gb,
                                                              const d8_geom *g, const int R, const int S, const int sh,
                                                              const int sw, const int dh, const int dw) {
    const int RB = 12 / S < 1 ? 1 : 12 / S < R ? 12 / S : R;
    int r = 0;
    for (; r + RB <= R; r += RB) d8_bwf_rows(acc, buf, gb, g, r, RB, S, sh, sw, dh, dw);
    for (; r < R; r++) d8_bwf_rows(acc, buf, gb, g, r, 1, S, sh, sw, dh, dw);
}

/* acc[t][c] += this sample's filter gradient of tap t, channel c. */
static void d8_bwf(double *acc, const float *buf, const float *gb, const d8_geom *g) {
#define D8_CASE(R_, S_, SH, SW, DH, DW)                                                                        \
    if (g->R == R_ && g->S == S_ && g->sh == SH && g->sw == SW && g->dh == DH && g->dw == DW) {                 \
        d8_bwf_body(acc, buf, gb, g, R_, S_, SH, SW, DH, DW);                                                  \
        return;                                                                                                \
    }
    D8_CASE(3, 3, 1, 1, 1, 1) D8_CASE(3, 3, 2, 2, 1, 1) D8_CASE(3, 3, 1, 1, 2, 2) D8_CASE(3, 3, 2, 2, 2, 2)
    D8_CASE(5, 5, 1, 1, 1, 1) D8_CASE(5, 5, 2, 2, 1, 1) D8_CASE(5, 5, 1, 1, 2, 2) D8_CASE(5, 5, 2, 2, 2, 2)
#undef D8_CASE
    d8_bwf_body(acc, buf, gb, g, g->R, g->S, g->sh, g->sw, g->dh, g->dw);
}

/* Samples are split into a fixed number of chunks per channel block (independent of the
 * thread count); each chunk sums in double, and the chunks are added in order: the same
 * result for any number of threads. Units run chunk-major, so each thread reads the
 * samples that the layers around it, partitioned by sample, left in its own cache. */
#define D8_CHUNKS 8

void kdw8_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, int relu) {
    d8_geom g;
    if (!dw || !kdw8_backward_filter_ok(d)) return;
    d8_fwd_geom(&g, d);
    const int C = d->C, CB = C / 8, RS = d->R * d->S, N = d->N;
    const int chunks = N < D8_CHUNKS ? N : D8_CHUNKS;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q, units = (int64_t)CB * chunks;
    double acc[units > 0 ? units * RS * 8 : 1];
#pragma omp parallel
    {
        float buf[D8_BUF_FLOATS] __attribute__((aligned(32)));
        float gb[D8_BUF_FLOATS] __attribute__((aligned(32)));
        c8_set(buf, (int64_t)g.Hb * g.Wb * 8, 0.0f);
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            const int ch = (int)(u / CB), cb = (int)(u % CB); /* chunk-major: a thread's samples */
            const int n0 = (int)((int64_t)N * ch / chunks), n1 = (int)((int64_t)N * (ch + 1) / chunks);
            double *au = acc + u * RS * 8;
            for (int i = 0; i < RS * 8; i++) au[i] = 0.0;
            for (int n = n0; n < n1; n++) {
                d8_fill(buf, x + ((int64_t)n * C + cb * 8) * HW, HW, &g, relu);
                c8_pixels(gb, dy + ((int64_t)n * C + cb * 8) * PQ, PQ, PQ);
                d8_bwf(au, buf, gb, &g);
            }
        }
    }
    for (int cb = 0; cb < CB; cb++)
        for (int t = 0; t < RS; t++)
            for (int c = 0; c < 8; c++) {
                double s = 0.0;
                for (int ch = 0; ch < chunks; ch++) s += acc[((int64_t)(ch * CB + cb) * RS + t) * 8 + c];
                dw[(int64_t)(cb * 8 + c) * RS + t] += (float)s;
            }
}

#else /* no AVX2: conv.c's per-plane kernels take every layer */

int kdw8_forward_ok(const kconv2d_desc *d) { (void)d; return 0; }
int kdw8_backward_data_ok(const kconv2d_desc *d) { (void)d; return 0; }
int kdw8_backward_filter_ok(const kconv2d_desc *d) { (void)d; return 0; }
void kdw8_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, int relu) {
    (void)y; (void)x; (void)w; (void)d; (void)relu;
}
void kdw8_backward_data(float *dx, const float *dy, const float *w, const float *xmask, const kconv2d_desc *d,
                        int accumulate) {
    (void)dx; (void)dy; (void)w; (void)xmask; (void)d; (void)accumulate;
}
void kdw8_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, int relu) {
    (void)dw; (void)dy; (void)x; (void)d; (void)relu;
}

#endif
