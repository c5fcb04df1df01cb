/* c8.h — the channel-blocked plane layout shared by the depthwise (dwc8.c) and pooling
 * (pool.c) kernels, AVX2 only: 8 NCHW planes of one sample (channels 8cb .. 8cb+7) held as
 * pixels of 8 floats, one 32-byte vector per pixel, in a per-thread buffer of Hb x Wb
 * pixels whose border is set once per call. Internal to kernels/cpu. */
#ifndef DARTSC_KCPU_C8_H
#define DARTSC_KCPU_C8_H

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

/* 8 x 8 transpose: on return v[k] holds element k of each of the 8 input vectors. */
static inline __attribute__((always_inline)) void c8_tr(__m256 v[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    v[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    v[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    v[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    v[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    v[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    v[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    v[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    v[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* lanes 0 .. n-1 set */
static inline __m256i c8_lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* v where v > 0, else +0 (NaN to 0: the per-plane kernels' ReLU) */
static inline __m256 c8_relu(__m256 v) { return _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ), v); }

/* buf[0 .. n) = v, n a multiple of 8, buf 32-byte aligned */
static inline void c8_set(float *buf, int64_t n, float v) {
    const __m256 f = _mm256_set1_ps(v);
    for (int64_t i = 0; i < n; i += 8) _mm256_store_ps(buf + i, f);
}

/* The 8 planes' row of n floats from src (plane stride cs) as pixel vectors v[0 .. n),
 * n <= 8; lanes past n read nothing. */
static inline __attribute__((always_inline)) void c8_load_row(__m256 v[8], const float *src, int64_t cs, int n) {
    if (n == 8) {
        for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_ps(src + c * cs);
    } else {
        const __m256i k = c8_lanes_below(n);
        for (int c = 0; c < 8; c++) v[c] = _mm256_maskload_ps(src + c * cs, k);
    }
    c8_tr(v);
}

/* Buffer pixels (pt + i, pl + j) = planes (i, j) for i < rows, j < cols (planes Hi x Wi,
 * row length Wi, plane stride cs), ReLU applied when asked. With check, returns nonzero
 * when a copied value is NaN or -inf. */
static inline int c8_fill(float *buf, int Wb, int pt, int pl, int rows, int cols, const float *in, int Wi, int64_t cs,
                          int relu, int check) {
    __m256 bad = _mm256_setzero_ps();
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int ih = 0; ih < rows; ih++) {
        float *b = buf + ((int64_t)(ih + pt) * Wb + pl) * 8;
        for (int j = 0; j < cols; j += 8) {
            const int nj = cols - j < 8 ? cols - j : 8;
            __m256 v[8];
            c8_load_row(v, in + (int64_t)ih * Wi + j, cs, nj);
            for (int k = 0; k < nj; k++) {
                if (relu) v[k] = c8_relu(v[k]);
                if (check) bad = _mm256_or_ps(bad, _mm256_cmp_ps(v[k], ninf, _CMP_NGT_UQ)); /* NaN or -inf */
                _mm256_store_ps(b + (int64_t)(j + k) * 8, v[k]);
            }
        }
    }
    return check && _mm256_movemask_ps(bad) != 0;
}

/* n pixel vectors from px back to the 8 planes' row at dst (plane stride cs): written, or
 * added to what is there. */
static inline __attribute__((always_inline)) void c8_store_row(float *dst, int64_t cs, const float *px, int n,
                                                               int accumulate) {
    __m256 v[8];
    for (int k = 0; k < 8; k++) v[k] = k < n ? _mm256_load_ps(px + k * 8) : _mm256_setzero_ps();
    c8_tr(v);
    if (n == 8) {
        for (int c = 0; c < 8; c++)
            _mm256_storeu_ps(dst + c * cs, accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst + c * cs), v[c]) : v[c]);
        return;
    }
    const __m256i k = c8_lanes_below(n);
    for (int c = 0; c < 8; c++)
        _mm256_maskstore_ps(dst + c * cs, k,
                            accumulate ? _mm256_add_ps(_mm256_maskload_ps(dst + c * cs, k), v[c]) : v[c]);
}

/* 8 planes of n contiguous floats (plane stride cs) as n pixel vectors at px. */
static inline void c8_pixels(float *px, const float *src, int64_t cs, int64_t n) {
    for (int64_t j = 0; j < n; j += 8) {
        const int nj = n - j < 8 ? (int)(n - j) : 8;
        __m256 v[8];
        c8_load_row(v, src + j, cs, nj);
        for (int k = 0; k < nj; k++) _mm256_store_ps(px + (j + k) * 8, v[k]);
    }
}

#endif
#endif
