/* fma_peak.c — the machine's fp32 multiply-add peak, measured: every OpenMP thread runs
 * 24 independent chains of vector FMAs (enough to cover the FMA latency on any current
 * x86 core) and the GFLOP/s of all threads together is printed, for the widest vectors
 * the build targets (AVX-512 with -mavx512f, else AVX2+FMA) and for 8-lane AVX2.
 * docs/BENCHMARKS.md sets the search step's GFLOP/s against it.
 *   cc -O2 -fopenmp -mavx2 -mfma [-mavx512f] bench/fma_peak.c -o /tmp/fma_peak
 *   OMP_NUM_THREADS=2 OMP_PROC_BIND=close /tmp/fma_peak */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define CHAINS2 12
#define CHAINS5 24
#define ITERS 20000000L

static double run_avx2(void) {
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
    {
        __m256 a[CHAINS2];
        const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
        for (int k = 0; k < CHAINS2; k++) a[k] = _mm256_set1_ps((float)k);
        for (long i = 0; i < ITERS; i++)
#pragma GCC unroll 32
            for (int k = 0; k < CHAINS2; k++) a[k] = _mm256_fmadd_ps(a[k], m, c);
        for (int k = 0; k < CHAINS2; k++) sink += _mm256_cvtss_f32(a[k]);
    }
    double t = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf("(unlikely)\n");
    return (double)omp_get_max_threads() * ITERS * CHAINS2 * 16 / t / 1e9;
}

#if defined(__AVX512F__)
static double run_avx512(void) {
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 a[CHAINS5];
        const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
        for (int k = 0; k < CHAINS5; k++) a[k] = _mm512_set1_ps((float)k);
        for (long i = 0; i < ITERS; i++)
#pragma GCC unroll 32
            for (int k = 0; k < CHAINS5; k++) a[k] = _mm512_fmadd_ps(a[k], m, c);
        for (int k = 0; k < CHAINS5; k++) sink += _mm512_cvtss_f32(a[k]);
    }
    double t = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf("(unlikely)\n");
    return (double)omp_get_max_threads() * ITERS * CHAINS5 * 32 / t / 1e9;
}
#endif

int main(void) {
    printf("threads %d\n", omp_get_max_threads());
    printf("fp32 FMA peak, AVX2 (8 lanes):     %.0f GFLOP/s\n", run_avx2());
#if defined(__AVX512F__)
    printf("fp32 FMA peak, AVX-512 (16 lanes): %.0f GFLOP/s\n", run_avx512());
#endif
    return 0;
}
