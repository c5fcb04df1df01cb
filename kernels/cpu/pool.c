/* pool.c — CPU max and average pooling with square windows. Max: padding never
 * chosen, first maximum in row-major window order wins ties, backward recomputes the
 * argmax from x. Avg: divides by the in-bounds cell count (count_include_pad=False).
 * Parallel over (n, c) planes, so every write has one owner.
 *
 * The vector path copies each plane once into a padded buffer split into `stride` column
 * phases (as the depthwise convolution does), so every window tap of DWV neighbouring
 * outputs is one contiguous load: max/sum over the k*k taps, branch-free. Backward
 * scatters into a second buffer of the same layout and adds its in-bounds part to dx.
 * Max backward compares each tap with the window maximum in row-major tap order and
 * routes the gradient to the first equal one, which is the scalar rule. Planes holding
 * a NaN or -inf (where padding, held at -inf, could tie) take the scalar path. */
#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/kvec.h"
#include "kernels/cpu/dwc8.h"

#include <math.h>
#include <string.h>

/* Index into the plane of the first maximum of window (p, q), or -1 if empty. */
/* Index (in the plane) of the window's maximum: the first maximum in row-major order,
 * or the first NaN (NaN propagates, as in PyTorch); -1 for a window with no in-bounds cell.
 * The window is clipped once, so the scan has no per-cell bounds checks. */
static inline int64_t argmax_window(const float *xp, const kpool_desc *d, int p, int q) {
    const int h0 = p * d->stride - d->pad, w0 = q * d->stride - d->pad;
    const int i0 = h0 < 0 ? 0 : h0, i1 = h0 + d->k > d->H ? d->H : h0 + d->k;
    const int j0 = w0 < 0 ? 0 : w0, j1 = w0 + d->k > d->W ? d->W : w0 + d->k;
    if (i0 >= i1 || j0 >= j1) return -1;
    int64_t bi = (int64_t)i0 * d->W + j0;
    float best = xp[bi];
    if (isnan(best)) return bi;
    for (int ih = i0; ih < i1; ih++) {
        const float *row = xp + (int64_t)ih * d->W;
        for (int iw = j0; iw < j1; iw++) {
            const float v = row[iw];
            if (v > best) {
                best = v;
                bi = (int64_t)ih * d->W + iw;
            } else if (isnan(v)) {
                return (int64_t)ih * d->W + iw;
            }
        }
    }
    return bi;
}


/* ---- scalar planes (reference semantics; also the fallback) ---- */

static void max_fwd_plane(float *yp, const float *xp, const kpool_desc *d) {
    for (int p = 0; p < d->P; p++)
        for (int q = 0; q < d->Q; q++) {
            int64_t i = argmax_window(xp, d, p, q);
            yp[(int64_t)p * d->Q + q] = i >= 0 ? xp[i] : -INFINITY;
        }
}

static void max_bwd_plane(float *dp, const float *gp, const float *xp, const kpool_desc *d) {
    for (int p = 0; p < d->P; p++)
        for (int q = 0; q < d->Q; q++) {
            int64_t i = argmax_window(xp, d, p, q);
            if (i >= 0) dp[i] += gp[(int64_t)p * d->Q + q];
        }
}

/* In-bounds window bounds [h0,h1) x [w0,w1). */
static void avg_bounds(const kpool_desc *d, int p, int q, int *h0, int *h1, int *w0, int *w1) {
    int a = p * d->stride - d->pad, b = q * d->stride - d->pad;
    *h0 = a < 0 ? 0 : a;
    *h1 = a + d->k > d->H ? d->H : a + d->k;
    *w0 = b < 0 ? 0 : b;
    *w1 = b + d->k > d->W ? d->W : b + d->k;
}

static void avg_fwd_plane(float *yp, const float *xp, const kpool_desc *d) {
    for (int p = 0; p < d->P; p++)
        for (int q = 0; q < d->Q; q++) {
            int h0, h1, w0, w1;
            avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
            float s = 0.0f;
            for (int i = h0; i < h1; i++)
                for (int j = w0; j < w1; j++) s += xp[(int64_t)i * d->W + j];
            int cnt = (h1 - h0) * (w1 - w0);
            yp[(int64_t)p * d->Q + q] = cnt > 0 ? s / (float)cnt : 0.0f;
        }
}

static void avg_bwd_plane(float *dp, const float *gp, const kpool_desc *d) {
    for (int p = 0; p < d->P; p++)
        for (int q = 0; q < d->Q; q++) {
            int h0, h1, w0, w1;
            avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
            int cnt = (h1 - h0) * (w1 - w0);
            if (cnt <= 0) continue;
            float g = gp[(int64_t)p * d->Q + q] / (float)cnt;
            for (int i = h0; i < h1; i++)
                for (int j = w0; j < w1; j++) dp[(int64_t)i * d->W + j] += g;
        }
}

/* ---- vector planes ---- */

#define POOL_BUF_MAX 8192 /* floats per phase buffer: a 64x64 plane at stride 1 fits */
#define POOL_OUT_MAX 4096 /* floats of P x Qv (window counts, padded gradient rows) */

typedef struct pool_geom {
    int k, s, pad, H, W, P, Q;
    int Qv, Hp, Lw; /* Q rounded up to DWV; buffer rows; buffer row length */
} pool_geom;

static int pool_geom_init(pool_geom *g, const kpool_desc *d) {
    g->k = d->k; g->s = d->stride; g->pad = d->pad; g->H = d->H; g->W = d->W; g->P = d->P; g->Q = d->Q;
    if (g->P <= 0 || g->Q <= 0 || g->s < 1 || g->pad < 0 || 2 * g->pad >= g->k + 1 || g->k > 7) return 0;
    g->Qv = (g->Q + DWV - 1) / DWV * DWV;
    g->Hp = (g->P - 1) * g->s + g->k;
    g->Lw = g->Qv + (g->k - 1) / g->s + 1;
    return (int64_t)g->s * g->Hp * g->Lw <= POOL_BUF_MAX && (int64_t)g->P * g->Qv <= POOL_OUT_MAX;
}

/* Offset in the buffer of tap (r, c) of output (0, 0): phase c % s, row r, column c / s. */
static inline int64_t tap_off(const pool_geom *g, int r, int c) {
    return ((int64_t)(c % g->s) * g->Hp + r) * g->Lw + c / g->s;
}

/* buf[ph][i][j] = x[i - pad][j*s + ph - pad], fill outside the plane. Returns nonzero when
 * the plane holds a NaN or -inf (only checked when check is set). */
static int pool_fill(float *buf, const float *xp, const pool_geom *g, float fill, int check) {
    int bad = 0;
    if (g->s == 1) { /* stride 1: vector stores, no per-row loops over the padding */
        const int64_t total = (int64_t)g->Hp * g->Lw;
        const dwv fv = dwv_set1(fill);
        int64_t t = 0;
        for (; t + DWV <= total; t += DWV) dwv_store(buf + t, fv);
        for (; t < total; t++) buf[t] = fill;
        const int j0 = g->pad, j1 = g->W + g->pad < g->Lw ? g->W + g->pad : g->Lw;
        for (int ih = 0; ih < g->H && ih + g->pad < g->Hp && j1 > j0; ih++) {
            float *b = buf + (int64_t)(ih + g->pad) * g->Lw + j0;
            kvec_copy_row(b, xp + (int64_t)ih * g->W, j1 - j0, 0, fill, buf + total);
            if (check) {
                int row_bad = 0;
                for (int j = 0; j < j1 - j0; j++) row_bad |= !(b[j] > -INFINITY); /* NaN or -inf */
                bad |= row_bad;
            }
        }
        return bad;
    }
    for (int ph = 0; ph < g->s; ph++) {
        /* j in [j0, j1) iff 0 <= j*s + ph - pad < W */
        const int off = ph - g->pad;
        int j0 = off >= 0 ? 0 : (-off + g->s - 1) / g->s;
        int j1 = g->W - off <= 0 ? 0 : (g->W - off + g->s - 1) / g->s;
        if (j1 > g->Lw) j1 = g->Lw;
        if (j0 > j1) j0 = j1;
        for (int i = 0; i < g->Hp; i++) {
            float *b = buf + ((int64_t)ph * g->Hp + i) * g->Lw;
            const int ih = i - g->pad;
            if (ih < 0 || ih >= g->H) {
                for (int j = 0; j < g->Lw; j++) b[j] = fill;
                continue;
            }
            const float *xr = xp + (int64_t)ih * g->W + off;
            for (int j = 0; j < j0; j++) b[j] = fill;
            if (g->s == 1) {
                for (int j = j0; j < j1; j++) b[j] = xr[j];
            } else {
                for (int j = j0; j < j1; j++) b[j] = xr[(int64_t)j * g->s];
            }
            if (check) {
                int row_bad = 0;
                for (int j = j0; j < j1; j++) row_bad |= !(b[j] > -INFINITY); /* NaN or -inf */
                bad |= row_bad;
            }
            for (int j = j1; j < g->Lw; j++) b[j] = fill;
        }
    }
    return bad;
}

/* dp[ih][iw] += buf[(iw + pad) % s][ih + pad][(iw + pad) / s] over the plane. */
static void pool_gather_add(float *dp, const float *buf, const pool_geom *g) {
    for (int ih = 0; ih < g->H; ih++) {
        const int i = ih + g->pad;
        if (i >= g->Hp) break;
        float *xr = dp + (int64_t)ih * g->W;
        for (int iw0 = 0; iw0 < g->s && iw0 < g->W; iw0++) {
            const int c0 = iw0 + g->pad;
            const float *b = buf + ((int64_t)(c0 % g->s) * g->Hp + i) * g->Lw + c0 / g->s;
            int n = (g->W - iw0 + g->s - 1) / g->s; /* iw = iw0 + m*s < W */
            if (n > g->Lw - c0 / g->s) n = g->Lw - c0 / g->s;
            if (g->s == 1) {
                for (int m = 0; m < n; m++) xr[m] += b[m];
            } else {
                for (int m = 0; m < n; m++) xr[iw0 + (int64_t)m * g->s] += b[m];
            }
        }
    }
}

/* Max over the window of DWV outputs (p, q0..q0+DWV-1). */
static inline dwv window_max(const float *buf, const int64_t *toff, int taps, int64_t o) {
    dwv m = dwv_load(buf + toff[0] + o);
    for (int t = 1; t < taps; t++) m = dwv_max(m, dwv_load(buf + toff[t] + o));
    return m;
}

static void store_row(float *dst, dwv v, int n) {
    if (n >= DWV) {
        dwv_store(dst, v);
        return;
    }
    float tmp[DWV];
    dwv_store(tmp, v);
    memcpy(dst, tmp, sizeof(float) * (size_t)n);
}

static void taps_init(const pool_geom *g, int64_t *toff) {
    for (int r = 0; r < g->k; r++)
        for (int c = 0; c < g->k; c++) toff[r * g->k + c] = tap_off(g, r, c);
}

static int max_fwd_vec(float *yp, const float *xp, const pool_geom *g, float *buf) {
    if (pool_fill(buf, xp, g, -INFINITY, 1)) return 0;
    int64_t toff[49];
    taps_init(g, toff);
    const int taps = g->k * g->k;
    for (int p = 0; p < g->P; p++)
        for (int q0 = 0; q0 < g->Q; q0 += DWV)
            store_row(yp + (int64_t)p * g->Q + q0, window_max(buf, toff, taps, (int64_t)p * g->s * g->Lw + q0),
                      g->Q - q0);
    return 1;
}

/* Backward scatters tap by tap over the whole plane: consecutive read-modify-writes of
 * one tap touch disjoint vectors, where walking the taps of one output would reload, one
 * float further on, the vector just stored (a store-forwarding stall per tap). */
static void scatter_taps(float *gbuf, const float *gs, const float *widx, const pool_geom *g, const int64_t *toff,
                         int taps) {
    memset(gbuf, 0, sizeof(float) * (size_t)g->s * g->Hp * g->Lw);
    for (int t = 0; t < taps; t++) {
        const dwv tv = dwv_set1((float)t);
        for (int p = 0; p < g->P; p++) {
            float *brow = gbuf + toff[t] + (int64_t)p * g->s * g->Lw;
            const float *grow = gs + (int64_t)p * g->Qv, *wrow = widx ? widx + (int64_t)p * g->Qv : NULL;
            for (int q0 = 0; q0 < g->Q; q0 += DWV) {
                dwv v = dwv_load(grow + q0);
                if (wrow) v = dwv_masked(dwm_eq(dwv_load(wrow + q0), tv), v);
                dwv_store(brow + q0, dwv_add(dwv_load(brow + q0), v));
            }
        }
    }
}

/* gs[p][q] = dy[p][q] (divided by cnt when given), zero for q >= Q. */
static void grad_rows(float *gs, const float *gp, const pool_geom *g, const float *cnt) {
    for (int p = 0; p < g->P; p++) {
        float *row = gs + (int64_t)p * g->Qv;
        memcpy(row, gp + (int64_t)p * g->Q, sizeof(float) * (size_t)g->Q);
        for (int q = g->Q; q < g->Qv; q++) row[q] = 0.0f;
        if (cnt)
            for (int q = 0; q < g->Q; q++) row[q] /= cnt[(int64_t)p * g->Qv + q];
    }
}

static int max_bwd_vec(float *dp, const float *gp, const float *xp, const pool_geom *g, float *buf,
                       float *gbuf) {
    if (pool_fill(buf, xp, g, -INFINITY, 1)) return 0;
    float gs[POOL_OUT_MAX] __attribute__((aligned(64))), widx[POOL_OUT_MAX] __attribute__((aligned(64)));
    int64_t toff[49];
    taps_init(g, toff);
    const int taps = g->k * g->k;
    /* the index of the first tap holding each window's maximum */
    for (int p = 0; p < g->P; p++)
        for (int q0 = 0; q0 < g->Q; q0 += DWV) {
            const int64_t o = (int64_t)p * g->s * g->Lw + q0;
            const dwv m = window_max(buf, toff, taps, o);
            dwm done = dwm_none();
            dwv sel = dwv_zero();
            for (int t = 0; t < taps; t++) {
                const dwm hit = dwm_andnot(done, dwm_eq(dwv_load(buf + toff[t] + o), m));
                sel = dwv_add(sel, dwv_masked(hit, dwv_set1((float)t)));
                done = dwm_or(done, hit);
            }
            dwv_store(widx + (int64_t)p * g->Qv + q0, sel);
        }
    grad_rows(gs, gp, g, NULL);
    scatter_taps(gbuf, gs, widx, g, toff, taps);
    pool_gather_add(dp, gbuf, g);
    return 1;
}

/* cnt[p][q] = in-bounds cells of window (p, q), for q < Qv (1 beyond Q). */
static void avg_counts(float *cnt, const kpool_desc *d, const pool_geom *g) {
    for (int p = 0; p < g->P; p++)
        for (int q = 0; q < g->Qv; q++) {
            int h0, h1, w0, w1;
            avg_bounds(d, p, q < g->Q ? q : 0, &h0, &h1, &w0, &w1);
            const int c = (h1 - h0) * (w1 - w0);
            cnt[(int64_t)p * g->Qv + q] = q < g->Q && c > 0 ? (float)c : 1.0f;
        }
}

/* Sums taps in row-major order with +0 for padding: the scalar loop's sum, bit for bit. */
static void avg_fwd_vec(float *yp, const float *xp, const pool_geom *g, const float *cnt, float *buf) {
    pool_fill(buf, xp, g, 0.0f, 0);
    int64_t toff[49];
    taps_init(g, toff);
    const int taps = g->k * g->k;
    for (int p = 0; p < g->P; p++)
        for (int q0 = 0; q0 < g->Q; q0 += DWV) {
            const int64_t o = (int64_t)p * g->s * g->Lw + q0;
            dwv acc = dwv_load(buf + toff[0] + o);
            for (int t = 1; t < taps; t++) acc = dwv_add(acc, dwv_load(buf + toff[t] + o));
            store_row(yp + (int64_t)p * g->Q + q0, dwv_div(acc, dwv_load(cnt + (int64_t)p * g->Qv + q0)), g->Q - q0);
        }
}

static void avg_bwd_vec(float *dp, const float *gp, const pool_geom *g, const float *cnt, float *gbuf) {
    float gs[POOL_OUT_MAX] __attribute__((aligned(64)));
    int64_t toff[49];
    taps_init(g, toff);
    grad_rows(gs, gp, g, cnt);
    scatter_taps(gbuf, gs, NULL, g, toff, g->k * g->k);
    pool_gather_add(dp, gbuf, g);
}

/* ---- channel-blocked planes (AVX2; C a multiple of 8) ----
 * Eight planes of one sample as pixels of 8 channels (c8.h): every tap of one output is a
 * whole aligned vector, whatever the plane width or stride, and the results are
 * transposed back as they are stored. Same arithmetic in the same order as the vector
 * planes above (max exact; sums tap by tap from +0; the max backward's first-maximum
 * rule; scatter tap by tap into a zeroed buffer, then added to dx): the same bits. A block
 * of planes holding a NaN or -inf goes plane by plane to the scalar path. */
#if defined(__AVX2__) && defined(__FMA__)
#include "kernels/cpu/c8.h"

#define P8_BUF 10240 /* floats per buffer: a 32 x 32 plane at stride 1 with its border */

typedef struct p8_geom {
    int k, s, pad, H, W, P, Q;
    int Hb, Wb, rows, cols; /* buffer pixels; the input rows and columns it holds */
    int64_t toff[49];       /* tap (r, c): pixel offset from the window's first */
} p8_geom;

static int p8_init(p8_geom *g, const kpool_desc *d) {
    g->k = d->k; g->s = d->stride; g->pad = d->pad; g->H = d->H; g->W = d->W; g->P = d->P; g->Q = d->Q;
    if (d->C % 8 != 0 || g->P <= 0 || g->Q <= 0 || g->H <= 0 || g->W <= 0 || g->s < 1 || g->pad < 0 ||
        2 * g->pad >= g->k + 1 || g->k > 7)
        return 0;
    const int Qv = (g->Q + 7) / 8 * 8;
    g->Hb = (g->P - 1) * g->s + g->k;
    g->Wb = (Qv - 1) * g->s + g->k;
    g->rows = g->H < g->Hb - g->pad ? g->H : g->Hb - g->pad;
    g->cols = g->W < g->Wb - g->pad ? g->W : g->Wb - g->pad;
    for (int r = 0; r < g->k; r++)
        for (int c = 0; c < g->k; c++) g->toff[r * g->k + c] = (int64_t)r * g->Wb + c;
    return (int64_t)g->Hb * g->Wb * 8 <= P8_BUF && (int64_t)g->P * g->Q * 8 <= P8_BUF;
}

/* Pixel offset of output (p, q)'s first tap. */
static inline int64_t p8_at(const p8_geom *g, int p, int q) { return (int64_t)p * g->s * g->Wb + (int64_t)q * g->s; }

static inline __m256 p8_window_max(const float *buf, const int64_t *toff, int taps, int64_t o) {
    __m256 m = _mm256_load_ps(buf + (o + toff[0]) * 8);
    for (int t = 1; t < taps; t++) m = _mm256_max_ps(m, _mm256_load_ps(buf + (o + toff[t]) * 8));
    return m;
}

/* Transposes v (8 output pixels of 8 channels) and writes the first n outputs of each
 * channel's row at out (plane stride cs). */
static inline void p8_put(float *out, int64_t cs, __m256 v[8], int n) {
    c8_tr(v);
    if (n == 8) {
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(out + c * cs, v[c]);
        return;
    }
    const __m256i k = c8_lanes_below(n);
    for (int c = 0; c < 8; c++) _mm256_maskstore_ps(out + c * cs, k, v[c]);
}

static int p8_max_fwd(float *y, const float *x, int64_t HW, int64_t PQ, const p8_geom *g, float *buf) {
    if (c8_fill(buf, g->Wb, g->pad, g->pad, g->rows, g->cols, x, g->W, HW, 0, 1)) return 0;
    const int taps = g->k * g->k;
    for (int p = 0; p < g->P; p++)
        for (int q0 = 0; q0 < g->Q; q0 += 8) {
            __m256 m[8];
            for (int j = 0; j < 8; j++) m[j] = p8_window_max(buf, g->toff, taps, p8_at(g, p, q0 + j));
            p8_put(y + (int64_t)p * g->Q + q0, PQ, m, g->Q - q0 < 8 ? g->Q - q0 : 8);
        }
    return 1;
}

/* gbuf (zeroed here) += gs routed tap by tap: output o's vector to pixel o + toff[t]. */
static void p8_scatter(float *gbuf, const float *gs, const p8_geom *g) {
    c8_set(gbuf, (int64_t)g->Hb * g->Wb * 8, 0.0f);
    for (int t = 0; t < g->k * g->k; t++)
        for (int p = 0; p < g->P; p++)
            for (int q = 0; q < g->Q; q++) {
                float *b = gbuf + (p8_at(g, p, q) + g->toff[t]) * 8;
                _mm256_store_ps(b, _mm256_add_ps(_mm256_load_ps(b), _mm256_load_ps(gs + ((int64_t)p * g->Q + q) * 8)));
            }
}

/* dx planes += the buffer's in-plane pixels. */
static void p8_gather_add(float *dx, int64_t HW, const float *gbuf, const p8_geom *g) {
    for (int ih = 0; ih < g->rows; ih++)
        for (int j = 0; j < g->cols; j += 8)
            c8_store_row(dx + (int64_t)ih * g->W + j, HW, gbuf + ((int64_t)(ih + g->pad) * g->Wb + g->pad + j) * 8,
                         g->cols - j < 8 ? g->cols - j : 8, 1);
}

/* Finds each window's first maximum and routes its gradient there in one pass, walking
 * the outputs backwards: a pixel's contributions then arrive in increasing tap order
 * (output o reaches pixel o + toff[t]), the order of the tap-by-tap scatter, and each
 * read-modify-write is of a whole aligned pixel, which store forwarding serves. */
static int p8_max_bwd(float *dx, const float *dy, const float *x, int64_t HW, int64_t PQ, const p8_geom *g,
                      float *buf, float *gbuf, float *gs) {
    if (c8_fill(buf, g->Wb, g->pad, g->pad, g->rows, g->cols, x, g->W, HW, 0, 1)) return 0;
    const int taps = g->k * g->k;
    c8_pixels(gs, dy, PQ, PQ);
    c8_set(gbuf, (int64_t)g->Hb * g->Wb * 8, 0.0f);
    for (int p = g->P - 1; p >= 0; p--)
        for (int q = g->Q - 1; q >= 0; q--) {
            const int64_t o = p8_at(g, p, q);
            const __m256 m = p8_window_max(buf, g->toff, taps, o), gv = _mm256_load_ps(gs + ((int64_t)p * g->Q + q) * 8);
            __m256 done = _mm256_setzero_ps();
            for (int t = 0; t < taps; t++) {
                const __m256 hit = _mm256_andnot_ps(done, _mm256_cmp_ps(_mm256_load_ps(buf + (o + g->toff[t]) * 8), m, _CMP_EQ_OQ));
                float *b = gbuf + (o + g->toff[t]) * 8;
                _mm256_store_ps(b, _mm256_add_ps(_mm256_load_ps(b), _mm256_and_ps(hit, gv)));
                done = _mm256_or_ps(done, hit);
            }
        }
    p8_gather_add(dx, HW, gbuf, g);
    return 1;
}

/* cnt[p*Q + q] = in-bounds cells of window (p, q), 1 where none */
static void p8_counts(float *cnt, const kpool_desc *d) {
    for (int p = 0; p < d->P; p++)
        for (int q = 0; q < d->Q; q++) {
            int h0, h1, w0, w1;
            avg_bounds(d, p, q, &h0, &h1, &w0, &w1);
            const int c = (h1 - h0) * (w1 - w0);
            cnt[(int64_t)p * d->Q + q] = c > 0 ? (float)c : 1.0f;
        }
}

static void p8_avg_fwd(float *y, const float *x, int64_t HW, int64_t PQ, const p8_geom *g, const float *cnt,
                       float *buf) {
    c8_fill(buf, g->Wb, g->pad, g->pad, g->rows, g->cols, x, g->W, HW, 0, 0);
    const int taps = g->k * g->k;
    for (int p = 0; p < g->P; p++)
        for (int q0 = 0; q0 < g->Q; q0 += 8) {
            __m256 a[8];
            for (int j = 0; j < 8; j++) {
                const int64_t o = p8_at(g, p, q0 + j);
                __m256 acc = _mm256_load_ps(buf + (o + g->toff[0]) * 8);
                for (int t = 1; t < taps; t++) acc = _mm256_add_ps(acc, _mm256_load_ps(buf + (o + g->toff[t]) * 8));
                const int q = q0 + j < g->Q ? q0 + j : g->Q - 1;
                a[j] = _mm256_div_ps(acc, _mm256_set1_ps(cnt[(int64_t)p * g->Q + q]));
            }
            p8_put(y + (int64_t)p * g->Q + q0, PQ, a, g->Q - q0 < 8 ? g->Q - q0 : 8);
        }
}

static void p8_avg_bwd(float *dx, const float *dy, int64_t HW, int64_t PQ, const p8_geom *g, const float *cnt,
                       float *gbuf, float *gs) {
    c8_pixels(gs, dy, PQ, PQ);
    for (int64_t i = 0; i < PQ; i++)
        _mm256_store_ps(gs + i * 8, _mm256_div_ps(_mm256_load_ps(gs + i * 8), _mm256_set1_ps(cnt[i])));
    p8_scatter(gbuf, gs, g);
    p8_gather_add(dx, HW, gbuf, g);
}

/* Runs the blocked kernels over every block of 8 planes, sample-major; returns 0 (nothing
 * done) where they do not apply. */
static int pool8(int op, float *out, const float *in, const float *x, const kpool_desc *d) {
    p8_geom g;
    if (!kdw8_enabled() || !p8_init(&g, d)) return 0;
    const int CB = d->C / 8;
    const int64_t HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q, blocks = (int64_t)d->N * CB;
    float cnt[P8_BUF / 8];
    if (op >= 2) p8_counts(cnt, d);
#pragma omp parallel
    {
        float buf[P8_BUF] __attribute__((aligned(32)));
        float gbuf[P8_BUF] __attribute__((aligned(32)));
        float gs[P8_BUF] __attribute__((aligned(32)));
        if (op == 0 || op == 1) c8_set(buf, (int64_t)g.Hb * g.Wb * 8, -INFINITY);
        if (op == 2) c8_set(buf, (int64_t)g.Hb * g.Wb * 8, 0.0f);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            const int64_t po = b * 8; /* first plane of the block */
            switch (op) {
            case 0: /* max forward: out y, in x */
                if (!p8_max_fwd(out + po * PQ, in + po * HW, HW, PQ, &g, buf))
                    for (int c = 0; c < 8; c++) max_fwd_plane(out + (po + c) * PQ, in + (po + c) * HW, d);
                break;
            case 1: /* max backward: out dx, in dy */
                if (!p8_max_bwd(out + po * HW, in + po * PQ, x + po * HW, HW, PQ, &g, buf, gbuf, gs))
                    for (int c = 0; c < 8; c++)
                        max_bwd_plane(out + (po + c) * HW, in + (po + c) * PQ, x + (po + c) * HW, d);
                break;
            case 2: p8_avg_fwd(out + po * PQ, in + po * HW, HW, PQ, &g, cnt, buf); break;
            default: p8_avg_bwd(out + po * HW, in + po * PQ, HW, PQ, &g, cnt, gbuf, gs); break;
            }
        }
    }
    return 1;
}
#else
static int pool8(int op, float *out, const float *in, const float *x, const kpool_desc *d) {
    (void)op; (void)out; (void)in; (void)x; (void)d;
    return 0;
}
#endif

/* ---- entry points ---- */

void kcpu_maxpool_forward(float *y, const float *x, const kpool_desc *d) {
    if (pool8(0, y, x, NULL, d)) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    pool_geom g;
    const int vec = pool_geom_init(&g, d);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float buf[POOL_BUF_MAX] __attribute__((aligned(64)));
        if (!vec || !max_fwd_vec(y + pl * PQ, x + pl * HW, &g, buf)) max_fwd_plane(y + pl * PQ, x + pl * HW, d);
    }
}

void kcpu_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d) {
    if (!dx || pool8(1, dx, dy, x, d)) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    pool_geom g;
    const int vec = pool_geom_init(&g, d);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float buf[POOL_BUF_MAX] __attribute__((aligned(64))), gbuf[POOL_BUF_MAX] __attribute__((aligned(64)));
        if (!vec || !max_bwd_vec(dx + pl * HW, dy + pl * PQ, x + pl * HW, &g, buf, gbuf))
            max_bwd_plane(dx + pl * HW, dy + pl * PQ, x + pl * HW, d);
    }
}

void kcpu_avgpool_forward(float *y, const float *x, const kpool_desc *d) {
    if (pool8(2, y, x, NULL, d)) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    pool_geom g;
    const int vec = pool_geom_init(&g, d);
    float cnt[POOL_OUT_MAX];
    if (vec) avg_counts(cnt, d, &g);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float buf[POOL_BUF_MAX] __attribute__((aligned(64)));
        if (vec) avg_fwd_vec(y + pl * PQ, x + pl * HW, &g, cnt, buf);
        else avg_fwd_plane(y + pl * PQ, x + pl * HW, d);
    }
}

void kcpu_avgpool_backward(float *dx, const float *dy, const kpool_desc *d) {
    if (!dx || pool8(3, dx, dy, NULL, d)) return;
    const int64_t planes = (int64_t)d->N * d->C, HW = (int64_t)d->H * d->W, PQ = (int64_t)d->P * d->Q;
    pool_geom g;
    const int vec = pool_geom_init(&g, d);
    float cnt[POOL_OUT_MAX];
    if (vec) avg_counts(cnt, d, &g);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float gbuf[POOL_BUF_MAX] __attribute__((aligned(64)));
        if (vec) avg_bwd_vec(dx + pl * HW, dy + pl * PQ, &g, cnt, gbuf);
        else avg_bwd_plane(dx + pl * HW, dy + pl * PQ, d);
    }
}
