/* kvec.h — the few SIMD operations the CPU kernels use, over one vector type dwv of
 * DWV floats: AVX-512 when the compiler targets it, AVX2+FMA (the default build,
 * -march=x86-64-v3), else a portable 8-lane loop that needs nothing from the target.
 * Internal to kernels/cpu. Also the fixed-order double-lane sums of batch norm. */
#ifndef DARTSC_KVEC_H
#define DARTSC_KVEC_H

#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define DWV 16
typedef __m512 dwv;
static inline dwv dwv_zero(void) { return _mm512_setzero_ps(); }
static inline dwv dwv_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void dwv_store(float *p, dwv a) { _mm512_storeu_ps(p, a); }
static inline dwv dwv_set1(float a) { return _mm512_set1_ps(a); }
static inline dwv dwv_fma(dwv a, dwv b, dwv c) { return _mm512_fmadd_ps(a, b, c); }
static inline dwv dwv_add(dwv a, dwv b) { return _mm512_add_ps(a, b); }
static inline dwv dwv_sub(dwv a, dwv b) { return _mm512_sub_ps(a, b); }
static inline dwv dwv_mul(dwv a, dwv b) { return _mm512_mul_ps(a, b); }
/* v where m > 0, else +0 */
static inline dwv dwv_where_pos(dwv m, dwv v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), v); }
static inline dwv dwv_max(dwv a, dwv b) { return _mm512_max_ps(a, b); }
static inline dwv dwv_div(dwv a, dwv b) { return _mm512_div_ps(a, b); }
/* lane masks: a mask of lanes, its bitwise ops, and v in the set lanes else +0 */
typedef __mmask16 dwm;
static inline dwm dwm_none(void) { return 0; }
static inline dwm dwm_eq(dwv a, dwv b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline dwm dwm_or(dwm a, dwm b) { return (dwm)(a | b); }
static inline dwm dwm_andnot(dwm a, dwm b) { return (dwm)(~a & b); } /* b and not a */
static inline dwv dwv_masked(dwm m, dwv v) { return _mm512_maskz_mov_ps(m, v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DWV 8
typedef __m256 dwv;
static inline dwv dwv_zero(void) { return _mm256_setzero_ps(); }
static inline dwv dwv_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void dwv_store(float *p, dwv a) { _mm256_storeu_ps(p, a); }
static inline dwv dwv_set1(float a) { return _mm256_set1_ps(a); }
static inline dwv dwv_fma(dwv a, dwv b, dwv c) { return _mm256_fmadd_ps(a, b, c); }
static inline dwv dwv_add(dwv a, dwv b) { return _mm256_add_ps(a, b); }
static inline dwv dwv_sub(dwv a, dwv b) { return _mm256_sub_ps(a, b); }
static inline dwv dwv_mul(dwv a, dwv b) { return _mm256_mul_ps(a, b); }
static inline dwv dwv_where_pos(dwv m, dwv v) { return _mm256_and_ps(_mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ), v); }
static inline dwv dwv_max(dwv a, dwv b) { return _mm256_max_ps(a, b); }
static inline dwv dwv_div(dwv a, dwv b) { return _mm256_div_ps(a, b); }
typedef __m256 dwm;
static inline dwm dwm_none(void) { return _mm256_setzero_ps(); }
static inline dwm dwm_eq(dwv a, dwv b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline dwm dwm_or(dwm a, dwm b) { return _mm256_or_ps(a, b); }
static inline dwm dwm_andnot(dwm a, dwm b) { return _mm256_andnot_ps(a, b); }
static inline dwv dwv_masked(dwm m, dwv v) { return _mm256_and_ps(m, v); }
#else
#define DWV 8
typedef struct { float v[DWV]; } dwv;
static inline dwv dwv_zero(void) { dwv r; for (int i = 0; i < DWV; i++) r.v[i] = 0.0f; return r; }
static inline dwv dwv_load(const float *p) { dwv r; for (int i = 0; i < DWV; i++) r.v[i] = p[i]; return r; }
static inline void dwv_store(float *p, dwv a) { for (int i = 0; i < DWV; i++) p[i] = a.v[i]; }
static inline dwv dwv_set1(float a) { dwv r; for (int i = 0; i < DWV; i++) r.v[i] = a; return r; }
static inline dwv dwv_fma(dwv a, dwv b, dwv c) { for (int i = 0; i < DWV; i++) c.v[i] += a.v[i] * b.v[i]; return c; }
static inline dwv dwv_add(dwv a, dwv b) { for (int i = 0; i < DWV; i++) a.v[i] += b.v[i]; return a; }
static inline dwv dwv_sub(dwv a, dwv b) { for (int i = 0; i < DWV; i++) a.v[i] -= b.v[i]; return a; }
static inline dwv dwv_mul(dwv a, dwv b) { for (int i = 0; i < DWV; i++) a.v[i] *= b.v[i]; return a; }
static inline dwv dwv_where_pos(dwv m, dwv v) { for (int i = 0; i < DWV; i++) v.v[i] = m.v[i] > 0.0f ? v.v[i] : 0.0f; return v; }
static inline dwv dwv_max(dwv a, dwv b) { for (int i = 0; i < DWV; i++) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return a; }
static inline dwv dwv_div(dwv a, dwv b) { for (int i = 0; i < DWV; i++) a.v[i] /= b.v[i]; return a; }
typedef struct { unsigned char m[DWV]; } dwm;
static inline dwm dwm_none(void) { dwm r; for (int i = 0; i < DWV; i++) r.m[i] = 0; return r; }
static inline dwm dwm_eq(dwv a, dwv b) { dwm r; for (int i = 0; i < DWV; i++) r.m[i] = a.v[i] == b.v[i]; return r; }
static inline dwm dwm_or(dwm a, dwm b) { for (int i = 0; i < DWV; i++) a.m[i] |= b.m[i]; return a; }
static inline dwm dwm_andnot(dwm a, dwm b) { for (int i = 0; i < DWV; i++) b.m[i] = b.m[i] && !a.m[i]; return b; }
static inline dwv dwv_masked(dwm m, dwv v) { for (int i = 0; i < DWV; i++) v.v[i] = m.m[i] ? v.v[i] : 0.0f; return v; }
#endif

/* b[0 .. n) = (relu?) x[0 .. n) in vectors. The last, partial vector is loaded masked
 * (nothing read past x + n), its extra lanes set to fill, and stored whole when that stays
 * below end: callers filling padded plane buffers row by row pass the buffer's end, so
 * those lanes land on padding or on a later row not yet copied. */
static inline void kvec_copy_row(float *b, const float *x, int n, int relu, float fill, const float *end) {
    int j = 0;
    for (; j + DWV <= n; j += DWV) {
        dwv v = dwv_load(x + j);
        if (relu) v = dwv_where_pos(v, v);
        dwv_store(b + j, v);
    }
    if (j == n) return;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    if (b + j + DWV <= end) {
#if defined(__AVX512F__)
        dwv v = _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << (n - j)) - 1u), x + j);
#else
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - j), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        dwv v = _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(x + j, k), _mm256_castsi256_ps(k));
#endif
        if (relu) v = dwv_where_pos(v, v);
        dwv_store(b + j, v);
        return;
    }
#else
    (void)fill;
    (void)end;
#endif
    for (; j < n; j++) b[j] = relu ? (x[j] > 0.0f ? x[j] : 0.0f) : x[j];
}

/* Horizontal sum of a vector in a fixed lane order. */
static inline float dwv_hsum(dwv a) {
    float t[DWV];
    dwv_store(t, a);
    float s = 0.0f;
    for (int i = 0; i < DWV; i++) s += t[i];
    return s;
}

/* The two one-pass double sums of batch norm, over 8 double lanes (two 4-wide vectors
 * per sum where AVX2 is there) and a scalar tail, combined in one fixed order whatever the
 * ISA. Double, not float lanes: the sums of gradients cancel, and float lanes lost three
 * digits in the parity tests. The *_lanes helpers fill p[8], q[8] with the lane sums of
 * the first (n / 8) * 8 elements and return how many they took. */
#if defined(__AVX2__) && defined(__FMA__)
/* g[i] read as the float product gs * g[i] when scaled (the bits of that product stored) */
static inline int64_t kvec_dot_lanes_ex(const float *g, int scaled, float gs, const float *x, double mx, int64_t n,
                                        double *p, double *q) {
    __m256d p0 = _mm256_setzero_pd(), p1 = p0, q0 = p0, q1 = p0;
    const __m256d m = _mm256_set1_pd(mx);
    const __m256 sv = _mm256_set1_ps(gs);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        if (scaled) gv = _mm256_mul_ps(sv, gv);
        const __m256 xv = _mm256_loadu_ps(x + i);
        const __m256d g0 = _mm256_cvtps_pd(_mm256_castps256_ps128(gv)), g1 = _mm256_cvtps_pd(_mm256_extractf128_ps(gv, 1));
        const __m256d x0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)), m);
        const __m256d x1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)), m);
        p0 = _mm256_add_pd(p0, g0);
        p1 = _mm256_add_pd(p1, g1);
        q0 = _mm256_fmadd_pd(g0, x0, q0);
        q1 = _mm256_fmadd_pd(g1, x1, q1);
    }
    _mm256_storeu_pd(p, p0);
    _mm256_storeu_pd(p + 4, p1);
    _mm256_storeu_pd(q, q0);
    _mm256_storeu_pd(q + 4, q1);
    return i;
}
static inline int64_t kvec_sumsq_lanes(const float *a, double k, int64_t n, double *p, double *q) {
    __m256d p0 = _mm256_setzero_pd(), p1 = p0, q0 = p0, q1 = p0;
    const __m256d kk = _mm256_set1_pd(k);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 av = _mm256_loadu_ps(a + i);
        const __m256d t0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(av)), kk);
        const __m256d t1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(av, 1)), kk);
        p0 = _mm256_add_pd(p0, t0);
        p1 = _mm256_add_pd(p1, t1);
        q0 = _mm256_fmadd_pd(t0, t0, q0);
        q1 = _mm256_fmadd_pd(t1, t1, q1);
    }
    _mm256_storeu_pd(p, p0);
    _mm256_storeu_pd(p + 4, p1);
    _mm256_storeu_pd(q, q0);
    _mm256_storeu_pd(q + 4, q1);
    return i;
}
#else
static inline int64_t kvec_dot_lanes_ex(const float *g, int scaled, float gs, const float *x, double mx, int64_t n,
                                        double *p, double *q) {
    for (int j = 0; j < 8; j++) p[j] = q[j] = 0.0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            const float gp = scaled ? gs * g[i + j] : g[i + j];
            const double t = (double)gp;
            p[j] += t;
            q[j] += t * ((double)x[i + j] - mx);
        }
    return i;
}
static inline int64_t kvec_sumsq_lanes(const float *a, double k, int64_t n, double *p, double *q) {
    for (int j = 0; j < 8; j++) p[j] = q[j] = 0.0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            const double t = (double)a[i + j] - k;
            p[j] += t;
            q[j] += t * t;
        }
    return i;
}
#endif

static inline double kvec_lanes_total(const double *p) {
    return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
}

/* One pass: *sg += sum g[i], *sgx += sum g[i] * (x[i] - mx) (the batch-norm backward's
 * sums, reading g once); g[i] read as the float product gs * g[i] when scaled (the bits of
 * that product stored and read). */
static inline void kvec_sum_dot_ex(const float *g, int scaled, float gs, const float *x, double mx, int64_t n,
                                   double *sg, double *sgx) {
    double p[8], q[8], tp = 0.0, tq = 0.0;
    for (int64_t i = kvec_dot_lanes_ex(g, scaled, gs, x, mx, n, p, q); i < n; i++) {
        const float gp = scaled ? gs * g[i] : g[i];
        tp += (double)gp;
        tq += (double)gp * ((double)x[i] - mx);
    }
    *sg += kvec_lanes_total(p) + tp;
    *sgx += kvec_lanes_total(q) + tq;
}
static inline void kvec_sum_dot_f64(const float *g, const float *x, double mx, int64_t n, double *sg, double *sgx) {
    kvec_sum_dot_ex(g, 0, 1.0f, x, mx, n, sg, sgx);
}

/* One pass: *s1 += sum (a[i] - k), *s2 += sum (a[i] - k)^2 (the batch-norm statistics). */
static inline void kvec_sum_sumsq_f64(const float *a, double k, int64_t n, double *s1, double *s2) {
    double p[8], q[8], tp = 0.0, tq = 0.0;
    for (int64_t i = kvec_sumsq_lanes(a, k, n, p, q); i < n; i++) {
        const double t = (double)a[i] - k;
        tp += t;
        tq += t * t;
    }
    *s1 += kvec_lanes_total(p) + tp;
    *s2 += kvec_lanes_total(q) + tq;
}

#endif
