/* pointwise.c — 1x1 convolutions (stride 1, no padding, one group) without BLAS.
 *
 * Per sample a 1x1 convolution is a small GEMM: y (K x HW) = w (K x C) x (C x HW), with
 * K and C from 8 to a few hundred and HW from 49 to 1024 in DARTS networks. Calling
 * threaded OpenBLAS once per sample cost more in thread hand-offs than in arithmetic
 * (and its threads fought the OpenMP workers for the cores), so these kernels are our
 * own: OpenMP over (sample, column block) tiles, and inside a tile a register block of
 * 6 output rows x 2 vectors of pixels, accumulated over the input channels in order.
 * The filter gradient is parallel over samples: each thread sums its fixed range of
 * samples into its own slot of double partials, and the slots are added in thread order
 * (deterministic for a given thread count, like every kernel here).
 *
 * A ReLU on the input can be folded in (relu = 1): the forward and the filter gradient
 * read max(0, x); the data gradient keeps only the entries where x > 0.
 *
 * This file is compiled twice: as itself, for the build's target (AVX2 in the default
 * x86-64-v3 build, portable vectors elsewhere), and through pointwise_avx512.c with
 * AVX-512 enabled; the entry points at the end pick the AVX-512 instance at run time
 * when the CPU has it (2x faster here: these kernels are arithmetic-bound at DARTS
 * sizes, and 16 lanes halve the loads and broadcasts per multiply-add; the depthwise and
 * pooling kernels stay at 8 lanes, which fit 7-, 14- and 28-pixel rows better). */
#include "kernels/cpu/pointwise.h"

#include "kernels/cpu/kvec.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef KPW_ISA
#define KPW_ISA base
#endif
#define KPW_CAT2(a, b) a##_##b
#define KPW_CAT(a, b) KPW_CAT2(a, b)
#define KPW(name) KPW_CAT(name, KPW_ISA)

void KPW(kpw_forward)(float *y, const float *x, const float *w, int N, int K, int C, int64_t HW, int relu);
void KPW(kpw_backward_data)(float *dx, const float *dy, const float *w, const float *xmask, int N, int K, int C,
                            int64_t HW, int accumulate);
void KPW(kpw_backward_filter)(float *dw, const float *dy, const float *x, int N, int K, int C, int64_t HW,
                              int relu, float *scratch);

#define PW_MR 6        /* output rows per register block */
#define PW_NC 256      /* pixel columns per task: a (C x 256) block of the input stays in L1/L2 */
#define PW_GROUP 1024  /* filter gradient: pixels (whole samples) per group between horizontal sums */
/* filter gradient register block: 4 dy rows x PW_FCB x rows (16 accumulators and 8 loads
 * per 16 multiply-adds with AVX-512's 32 registers; 4 x 2 where 16 registers must hold
 * them). The block shape does not change any dot's arithmetic. */
#if defined(__AVX512F__)
#define PW_FCB 4
#else
#define PW_FCB 2
#endif

/* o[r][j] (+)= sum_k a[r*ars + k*acs] * b[k*ldb + j] for r < MR, j < n.
 * RELU: b read as max(0, b). MASK: the sum is kept only where msk[r*ldm + j] > 0. */
static inline __attribute__((always_inline)) void pw_tile(float *o, int64_t ldo, const float *a, int64_t ars,
                                                          int64_t acs, const int MR, int kd, const float *b,
                                                          int64_t ldb, int64_t n, int acc_out, const int RELU,
                                                          const float *msk, int64_t ldm, const int MASK) {
    const dwv z = dwv_zero();
    int64_t j = 0;
    for (; j + 2 * DWV <= n; j += 2 * DWV) {
        dwv c0[PW_MR], c1[PW_MR];
        for (int r = 0; r < MR; r++) c0[r] = c1[r] = z;
        for (int k = 0; k < kd; k++) {
            dwv b0 = dwv_load(b + k * ldb + j), b1 = dwv_load(b + k * ldb + j + DWV);
            if (RELU) {
                b0 = dwv_max(b0, z);
                b1 = dwv_max(b1, z);
            }
            for (int r = 0; r < MR; r++) {
                const dwv av = dwv_set1(a[r * ars + k * acs]);
                c0[r] = dwv_fma(av, b0, c0[r]);
                c1[r] = dwv_fma(av, b1, c1[r]);
            }
        }
        for (int r = 0; r < MR; r++) {
            float *op = o + r * ldo + j;
            if (MASK) {
                c0[r] = dwv_where_pos(dwv_load(msk + r * ldm + j), c0[r]);
                c1[r] = dwv_where_pos(dwv_load(msk + r * ldm + j + DWV), c1[r]);
            }
            if (acc_out) {
                c0[r] = dwv_add(dwv_load(op), c0[r]);
                c1[r] = dwv_add(dwv_load(op + DWV), c1[r]);
            }
            dwv_store(op, c0[r]);
            dwv_store(op + DWV, c1[r]);
        }
    }
    for (; j + DWV <= n; j += DWV) {
        dwv c0[PW_MR];
        for (int r = 0; r < MR; r++) c0[r] = z;
        for (int k = 0; k < kd; k++) {
            dwv b0 = dwv_load(b + k * ldb + j);
            if (RELU) b0 = dwv_max(b0, z);
            for (int r = 0; r < MR; r++) c0[r] = dwv_fma(dwv_set1(a[r * ars + k * acs]), b0, c0[r]);
        }
        for (int r = 0; r < MR; r++) {
            float *op = o + r * ldo + j;
            if (MASK) c0[r] = dwv_where_pos(dwv_load(msk + r * ldm + j), c0[r]);
            if (acc_out) c0[r] = dwv_add(dwv_load(op), c0[r]);
            dwv_store(op, c0[r]);
        }
    }
    for (; j < n; j++)
        for (int r = 0; r < MR; r++) {
            float s = 0.0f;
            for (int k = 0; k < kd; k++) {
                float bv = b[k * ldb + j];
                if (RELU) bv = bv > 0.0f ? bv : 0.0f;
                s += a[r * ars + k * acs] * bv;
            }
            if (MASK && !(msk[r * ldm + j] > 0.0f)) s = 0.0f;
            o[r * ldo + j] = acc_out ? o[r * ldo + j] + s : s;
        }
}

/* All m rows of one column block: full register blocks of PW_MR rows, then the rest. */
static inline __attribute__((always_inline)) void pw_rows(float *o, int64_t ldo, const float *a, int64_t ars,
                                                          int64_t acs, int m, int kd, const float *b, int64_t ldb,
                                                          int64_t n, int acc_out, const int RELU, const float *msk,
                                                          int64_t ldm, const int MASK) {
    int r = 0;
    for (; r + PW_MR <= m; r += PW_MR)
        pw_tile(o + r * ldo, ldo, a + r * ars, ars, acs, PW_MR, kd, b, ldb, n, acc_out, RELU,
                MASK ? msk + r * ldm : NULL, ldm, MASK);
    float *oo = o + r * ldo;
    const float *aa = a + r * ars, *mm = MASK ? msk + r * ldm : NULL;
    switch (m - r) {
    case 5: pw_tile(oo, ldo, aa, ars, acs, 5, kd, b, ldb, n, acc_out, RELU, mm, ldm, MASK); break;
    case 4: pw_tile(oo, ldo, aa, ars, acs, 4, kd, b, ldb, n, acc_out, RELU, mm, ldm, MASK); break;
    case 3: pw_tile(oo, ldo, aa, ars, acs, 3, kd, b, ldb, n, acc_out, RELU, mm, ldm, MASK); break;
    case 2: pw_tile(oo, ldo, aa, ars, acs, 2, kd, b, ldb, n, acc_out, RELU, mm, ldm, MASK); break;
    case 1: pw_tile(oo, ldo, aa, ars, acs, 1, kd, b, ldb, n, acc_out, RELU, mm, ldm, MASK); break;
    default: break;
    }
}

static void pw_rows_plain(float *o, int64_t ldo, const float *a, int64_t ars, int64_t acs, int m, int kd,
                          const float *b, int64_t ldb, int64_t n, int acc_out) {
    pw_rows(o, ldo, a, ars, acs, m, kd, b, ldb, n, acc_out, 0, NULL, 0, 0);
}
static void pw_rows_relu(float *o, int64_t ldo, const float *a, int64_t ars, int64_t acs, int m, int kd,
                         const float *b, int64_t ldb, int64_t n, int acc_out) {
    pw_rows(o, ldo, a, ars, acs, m, kd, b, ldb, n, acc_out, 1, NULL, 0, 0);
}
static void pw_rows_mask(float *o, int64_t ldo, const float *a, int64_t ars, int64_t acs, int m, int kd,
                         const float *b, int64_t ldb, int64_t n, int acc_out, const float *msk, int64_t ldm) {
    pw_rows(o, ldo, a, ars, acs, m, kd, b, ldb, n, acc_out, 0, msk, ldm, 1);
}

void KPW(kpw_forward)(float *y, const float *x, const float *w, int N, int K, int C, int64_t HW, int relu) {
    if (N <= 0 || K <= 0 || HW <= 0) return;
    const int64_t nb = (HW + PW_NC - 1) / PW_NC;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < (int64_t)N * nb; t++) {
        const int64_t n = t / nb, j0 = (t % nb) * PW_NC, nc = HW - j0 < PW_NC ? HW - j0 : PW_NC;
        float *yo = y + n * K * HW + j0;
        if (C <= 0) {
            for (int k = 0; k < K; k++)
                for (int64_t j = 0; j < nc; j++) yo[k * HW + j] = 0.0f;
            continue;
        }
        const float *xb = x + n * C * HW + j0;
        if (relu) pw_rows_relu(yo, HW, w, C, 1, K, C, xb, HW, nc, 0);
        else pw_rows_plain(yo, HW, w, C, 1, K, C, xb, HW, nc, 0);
    }
}

void KPW(kpw_backward_data)(float *dx, const float *dy, const float *w, const float *xmask, int N, int K, int C,
                            int64_t HW, int accumulate) {
    if (!dx || N <= 0 || C <= 0 || HW <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < (int64_t)N * C * HW; i++) dx[i] = 0.0f;
        return;
    }
    const int64_t nb = (HW + PW_NC - 1) / PW_NC;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < (int64_t)N * nb; t++) {
        const int64_t n = t / nb, j0 = (t % nb) * PW_NC, nc = HW - j0 < PW_NC ? HW - j0 : PW_NC;
        float *dxo = dx + n * C * HW + j0;
        const float *g = dy + n * K * HW + j0;
        /* dx (C x HW) += w^T (C x K) dy (K x HW): row c of w^T is column c of w */
        if (xmask) pw_rows_mask(dxo, HW, w, 1, C, C, K, g, HW, nc, accumulate, xmask + n * C * HW + j0, HW);
        else pw_rows_plain(dxo, HW, w, 1, C, C, K, g, HW, nc, accumulate);
    }
}

/* acc[kb*ldc + cb] += sum over G samples of <dy row kb, x row cb> (HW pixels each), for
 * kb < KB, cb < CB: vector lane sums over the group, one horizontal sum at its end (small
 * planes come in groups of samples, so that the horizontal sums do not dominate). */
static inline __attribute__((always_inline)) void pw_dots(double *acc, int64_t ldc, const float *g, int64_t gs,
                                                          const float *x, int64_t xs, int64_t ld, int64_t HW,
                                                          int G, const int KB, const int CB, const int RELU) {
    const dwv z = dwv_zero();
    dwv s[6][PW_FCB];
    float t[6][PW_FCB];
    for (int i = 0; i < KB; i++)
        for (int c = 0; c < CB; c++) {
            s[i][c] = z;
            t[i][c] = 0.0f;
        }
    for (int u = 0; u < G; u++, g += gs, x += xs) {
        int64_t j = 0;
        for (; j + DWV <= HW; j += DWV) {
            dwv xv[PW_FCB];
            for (int c = 0; c < CB; c++) {
                xv[c] = dwv_load(x + c * ld + j);
                if (RELU) xv[c] = dwv_max(xv[c], z);
            }
            for (int i = 0; i < KB; i++) {
                const dwv gv = dwv_load(g + i * ld + j);
                for (int c = 0; c < CB; c++) s[i][c] = dwv_fma(gv, xv[c], s[i][c]);
            }
        }
        for (; j < HW; j++)
            for (int c = 0; c < CB; c++) {
                float xv = x[c * ld + j];
                if (RELU) xv = xv > 0.0f ? xv : 0.0f;
                for (int i = 0; i < KB; i++) t[i][c] += g[i * ld + j] * xv;
            }
    }
    for (int i = 0; i < KB; i++)
        for (int c = 0; c < CB; c++) acc[i * ldc + c] += (double)(dwv_hsum(s[i][c]) + t[i][c]);
}

/* The filter gradient of G consecutive samples, dy rows k .. k+KB-1 against every x row:
 * blocks of PW_FCB x rows, then 2, then 1. */
static inline __attribute__((always_inline)) void pw_filter_rows(double *acc, const float *g, const float *x, int C,
                                                                 int64_t ld, int64_t HW, int G, int64_t gs, int64_t xs,
                                                                 int k, const int KB, const int RELU) {
    int c = 0;
    for (; c + PW_FCB <= C; c += PW_FCB)
        pw_dots(acc + k * C + c, C, g + k * ld, gs, x + c * ld, xs, ld, HW, G, KB, PW_FCB, RELU);
    for (; c + 2 <= C; c += 2) pw_dots(acc + k * C + c, C, g + k * ld, gs, x + c * ld, xs, ld, HW, G, KB, 2, RELU);
    if (c < C) pw_dots(acc + k * C + c, C, g + k * ld, gs, x + c * ld, xs, ld, HW, G, KB, 1, RELU);
}
static inline __attribute__((always_inline)) void pw_filter_group(double *acc, const float *g, const float *x,
                                                                  int K, int C, int64_t ld, int64_t HW, int G,
                                                                  const int RELU) {
    const int64_t gs = (int64_t)K * ld, xs = (int64_t)C * ld;
    int k = 0;
#if defined(__AVX512F__)
    for (; k + 6 <= K; k += 6) pw_filter_rows(acc, g, x, C, ld, HW, G, gs, xs, k, 6, RELU);
#endif
    for (; k + 4 <= K; k += 4) pw_filter_rows(acc, g, x, C, ld, HW, G, gs, xs, k, 4, RELU);
    for (; k < K; k++) pw_filter_rows(acc, g, x, C, ld, HW, G, gs, xs, k, 1, RELU);
}

/* Rows ld floats apart, HW pixels of each. */
static void pw_filter_group_plain(double *acc, const float *g, const float *x, int K, int C, int64_t ld, int64_t HW,
                                  int G) {
    pw_filter_group(acc, g, x, K, C, ld, HW, G, 0);
}
static void pw_filter_group_relu(double *acc, const float *g, const float *x, int K, int C, int64_t ld, int64_t HW,
                                 int G) {
    pw_filter_group(acc, g, x, K, C, ld, HW, G, 1);
}

#ifndef KPW_VARIANT
size_t kpw_filter_scratch_floats(int K, int C) {
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    return (size_t)nt * (size_t)K * (size_t)C * 2 + 16; /* doubles, plus room to align to 64 bytes */
}
#endif

void KPW(kpw_backward_filter)(float *dw, const float *dy, const float *x, int N, int K, int C, int64_t HW, int relu,
                         float *scratch) {
    if (!dw || N <= 0 || K <= 0 || C <= 0) return;
    double *part = (double *)(void *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t KC = (int64_t)K * C;
    int used = 1;
#pragma omp parallel
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
#pragma omp single
        used = nt;
        double *acc = part + t * KC;
        for (int64_t i = 0; i < KC; i++) acc[i] = 0.0;
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        /* samples in groups of about PW_GROUP pixels (whole samples), a group's planes in L2;
         * planes larger than that in pieces of PW_GROUP pixels, so that no float lane sums
         * more than PW_GROUP / lanes products before it goes to double */
        const int gmax = HW >= PW_GROUP ? 1 : (int)(PW_GROUP / HW);
        for (int n = n0; n < n1; n += gmax) {
            const int G = n1 - n < gmax ? n1 - n : gmax;
            const float *g = dy + (int64_t)n * K * HW, *xs = x + (int64_t)n * C * HW;
            for (int64_t j0 = 0; j0 < HW; j0 += PW_GROUP) {
                const int64_t m = HW - j0 < PW_GROUP ? HW - j0 : PW_GROUP;
                if (relu) pw_filter_group_relu(acc, g + j0, xs + j0, K, C, HW, HW > PW_GROUP ? m : HW, G);
                else pw_filter_group_plain(acc, g + j0, xs + j0, K, C, HW, HW > PW_GROUP ? m : HW, G);
                if (HW <= PW_GROUP) break;
            }
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t i = 0; i < KC; i++) {
            double s = 0.0;
            for (int u = 0; u < used; u++) s += part[u * KC + i];
            dw[i] += (float)s;
        }
    }
}

/* ---- run-time choice between the instances ---- */
#ifndef KPW_VARIANT
#if defined(DARTSC_PW_AVX512)
#undef KPW_ISA
#define KPW_ISA avx512
void KPW(kpw_forward)(float *y, const float *x, const float *w, int N, int K, int C, int64_t HW, int relu);
void KPW(kpw_backward_data)(float *dx, const float *dy, const float *w, const float *xmask, int N, int K, int C,
                            int64_t HW, int accumulate);
void KPW(kpw_backward_filter)(float *dw, const float *dy, const float *x, int N, int K, int C, int64_t HW,
                              int relu, float *scratch);
static int pw_isa = -1; /* -1: not decided yet; 0: base; 1: AVX-512 */
static int pw_avx512(void) {
    if (pw_isa < 0) {
        __builtin_cpu_init();
        pw_isa = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    }
    return pw_isa;
}
int kpw_set_avx512(int on) {
    if (on && !pw_avx512()) return -1;
    pw_isa = on ? 1 : 0;
    return 0;
}
const char *kpw_isa(void) { return pw_avx512() ? "avx512" : "base"; }
#else
static int pw_avx512(void) { return 0; }
int kpw_set_avx512(int on) { return on ? -1 : 0; }
const char *kpw_isa(void) { return "base"; }
#define kpw_forward_avx512 kpw_forward_base
#define kpw_backward_data_avx512 kpw_backward_data_base
#define kpw_backward_filter_avx512 kpw_backward_filter_base
#endif

void kpw_forward(float *y, const float *x, const float *w, int N, int K, int C, int64_t HW, int relu) {
    if (pw_avx512()) kpw_forward_avx512(y, x, w, N, K, C, HW, relu);
    else kpw_forward_base(y, x, w, N, K, C, HW, relu);
}
void kpw_backward_data(float *dx, const float *dy, const float *w, const float *xmask, int N, int K, int C,
                       int64_t HW, int accumulate) {
    if (pw_avx512()) kpw_backward_data_avx512(dx, dy, w, xmask, N, K, C, HW, accumulate);
    else kpw_backward_data_base(dx, dy, w, xmask, N, K, C, HW, accumulate);
}
void kpw_backward_filter(float *dw, const float *dy, const float *x, int N, int K, int C, int64_t HW, int relu,
                         float *scratch) {
    if (pw_avx512()) kpw_backward_filter_avx512(dw, dy, x, N, K, C, HW, relu, scratch);
    else kpw_backward_filter_base(dw, dy, x, N, K, C, HW, relu, scratch);
}
#endif
