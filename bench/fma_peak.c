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

/* GFLOP/s of all threads running `chains` FMA chains of `lanes`-wide vectors each. */
#define PEAK_FN(name, vec, set1, fmadd, first, chains, lanes)                                       \
    static double name(void) {                                                                      \
        double t0 = omp_get_wtime();                                                                \
        float sink = 0.0f;                                                                          \
        _Pragma("omp parallel reduction(+ : sink)") {                                               \
            vec a[chains];                                                                          \
            const vec m = set1(0.999999f), c = set1(1e-7f);                                         \
            for (int k = 0; k < chains; k++) a[k] = set1((float)k);                                 \
            for (long i = 0; i < ITERS; i++)                                                        \
                _Pragma("GCC unroll 32") for (int k = 0; k < chains; k++) a[k] = fmadd(a[k], m, c); \
            for (int k = 0; k < chains; k++) sink += first(a[k]);                                   \
        }                                                                                           \
        double t = omp_get_wtime() - t0;                                                            \
        if (sink == 12345.0f) printf("(unlikely)\n");                                               \
        return (double)omp_get_max_threads() * ITERS * chains * 2 * lanes / t / 1e9;                \
    }

PEAK_FN(run_avx2, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32, CHAINS2, 8)
#if defined(__AVX512F__)
PEAK_FN(run_avx512, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_cvtss_f32, CHAINS5, 16)
#endif

int main(void) {
    printf("threads %d\n", omp_get_max_threads());
    printf("fp32 FMA peak, AVX2 (8 lanes):     %.0f GFLOP/s\n", run_avx2());
#if defined(__AVX512F__)
    printf("fp32 FMA peak, AVX-512 (16 lanes): %.0f GFLOP/s\n", run_avx512());
#endif
    return 0;
}
