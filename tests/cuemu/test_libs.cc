/* test_libs.cc — tests cuemu's cuBLAS (blas.cc) and cuDNN (dnn.cc) against straightforward
 * references in double on random data, on their own: this file defines the four cuemu
 * hooks (cuemu.h) itself, so it needs none of the emulator's runtime. enqueue runs the work
 * at once, or holds it back while `deferred` is set (as a graph capture would) to show that
 * a call captured its arguments; device_extent knows the buffers made by dev_alloc.
 *
 * Tolerance: every result is a float sum of t products (t: k for GEMM; the taps, or the
 * positions, that meet one output for convolutions) scaled by alpha, plus beta times the old
 * value: at most t + 3 roundings, so |got - exact| <= gamma(t + 3) (|alpha| sum |products| +
 * |beta old|), gamma(n) = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability of
 * Numerical Algorithms, ch. 3). The bound is rigorous, so it never fails by chance, and an
 * indexing slip changes a result by the size of a whole term, far above it.
 *
 * Also checked: beta == 0 never reads the output (NaN there stays out), entries outside the
 * output (ld padding, gaps between batches) are left alone, arguments are refused as the
 * libraries document, with nothing queued, and memory outside the allocations is reported
 * as cudaErrorIllegalAddress instead of being touched.
 *
 * Build (from the repository root): g++ -std=c++17 -O2 -Wall -Wextra -Itests/cuemu
 *   -Itests/cuemu/include tests/cuemu/test_libs.cc tests/cuemu/blas.cc tests/cuemu/dnn.cc */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cublas_v2.h"
#include "cudnn.h"
#include "cuemu.h"

/* ---- the cuemu hooks, stubbed ---- */
namespace {
struct Alloc {
    const char *p;
    size_t bytes;
};
std::vector<Alloc> g_allocs;
std::vector<std::function<void()>> g_held;
bool g_deferred = false;
int g_enqueued = 0;
cudaStream_t g_last_stream = nullptr;
cudaError_t g_err = cudaSuccess;
std::string g_err_what;
} // namespace

namespace cuemu {
void enqueue(cudaStream_t s, std::function<void()> fn) {
    g_enqueued++;
    g_last_stream = s;
    if (g_deferred)
        g_held.push_back(std::move(fn));
    else
        fn();
}
void set_error(cudaError_t err, const char *what) {
    g_err = err;
    g_err_what = what;
}
void stat_call(const char *name) { (void)name; } /* CUEMU_STATS: the runtime's report only */
size_t device_extent(const void *p, size_t bytes) {
    const char *c = (const char *)p;
    for (const Alloc &a : g_allocs)
        if (c >= a.p && c <= a.p + a.bytes && bytes <= (size_t)(a.p + a.bytes - c)) return a.bytes;
    return 0;
}
} // namespace cuemu

namespace {

int g_failures = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            g_failures++;                                                                                              \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                              \
            std::fprintf(stderr, __VA_ARGS__);                                                                         \
            std::fputc('\n', stderr);                                                                                  \
        }                                                                                                              \
    } while (0)

/* "Device" memory: 256-byte aligned like cudaMalloc, known to device_extent. */
float *dev_alloc(size_t n) {
    const size_t bytes = (n * sizeof(float) + 255) / 256 * 256;
    float *p = (float *)std::aligned_alloc(256, bytes ? bytes : 256);
    g_allocs.push_back({(const char *)p, n * sizeof(float)});
    return p;
}
void dev_free_all() {
    for (const Alloc &a : g_allocs) std::free((void *)a.p);
    g_allocs.clear();
}

uint64_t g_rng = 0x9e3779b97f4a7c15ull;
float uniform() { /* in [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}
void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = uniform();
}
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kSentinel = 12345.0f; /* marks entries a call must not write */

double gamma_(long long n) {
    const double u = std::ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}

/* |got - exact| within the bound for t products (see the top of the file) */
bool close(float got, double exact, double abs_terms, double beta_old, long long t) {
    return std::isfinite(got) && std::fabs(got - exact) <= gamma_(t + 3) * (abs_terms + beta_old) + 1e-30;
}

/* ---------------------------------------------------------------- cuBLAS ---- */
struct GemmCase {
    cublasOperation_t ta, tb;
    int m, n, k;
    int lda_pad, ldb_pad, ldc_pad;
    float alpha, beta;
    int batch;
    long long sa_extra, sb_extra, sc_extra; /* added to the dense stride; sb_extra -1: strideB 0 */
};

void check_gemm(cublasHandle_t h, const GemmCase &t, bool batched) {
    const bool ta = t.ta != CUBLAS_OP_N, tb = t.tb != CUBLAS_OP_N;
    const int ra = ta ? t.k : t.m, ca = ta ? t.m : t.k, rb = tb ? t.n : t.k, cb = tb ? t.k : t.n;
    const int lda = ra + t.lda_pad, ldb = rb + t.ldb_pad, ldc = t.m + t.ldc_pad;
    const long long sa = (long long)lda * ca + t.sa_extra, sb = t.sb_extra < 0 ? 0 : (long long)ldb * cb + t.sb_extra,
                    sc = (long long)ldc * t.n + t.sc_extra;
    const size_t na = (size_t)(sa * (t.batch - 1) + (long long)lda * ca),
                 nb = (size_t)(sb * (t.batch - 1) + (long long)ldb * cb),
                 nc = (size_t)(sc * (t.batch - 1) + (long long)ldc * t.n);
    float *A = dev_alloc(na), *B = dev_alloc(nb), *C = dev_alloc(nc);
    fill(A, na), fill(B, nb), fill(C, nc);
    /* every entry of C outside the matrices is a sentinel; with beta 0 the matrices hold NaN */
    std::vector<char> inside(nc, 0);
    for (int b = 0; b < t.batch; b++)
        for (int j = 0; j < t.n; j++)
            for (int i = 0; i < t.m; i++) inside[(size_t)(b * sc + (long long)j * ldc + i)] = 1;
    for (size_t i = 0; i < nc; i++)
        if (!inside[i])
            C[i] = kSentinel;
        else if (t.beta == 0.0f)
            C[i] = kNaN;
    const std::vector<float> C0(C, C + nc);
    const int before = g_enqueued;
    const cublasStatus_t st =
        batched ? cublasSgemmStridedBatched(h, t.ta, t.tb, t.m, t.n, t.k, &t.alpha, A, lda, sa, B, ldb, sb, &t.beta, C,
                                            ldc, sc, t.batch)
                : cublasSgemm(h, t.ta, t.tb, t.m, t.n, t.k, &t.alpha, A, lda, B, ldb, &t.beta, C, ldc);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "gemm %dx%dx%d: %s", t.m, t.n, t.k, cublasGetStatusString(st));
    CHECK(g_enqueued == before + 1, "gemm %dx%dx%d queued %d calls", t.m, t.n, t.k, g_enqueued - before);
    CHECK(g_err == cudaSuccess, "gemm %dx%dx%d: %s", t.m, t.n, t.k, g_err_what.c_str());
    int bad = 0;
    for (int b = 0; b < t.batch; b++)
        for (int j = 0; j < t.n; j++)
            for (int i = 0; i < t.m; i++) {
                double exact = 0.0, abs_terms = 0.0;
                for (int l = 0; l < t.k; l++) {
                    const double a = ta ? A[b * sa + (long long)i * lda + l] : A[b * sa + (long long)l * lda + i];
                    const double bv = tb ? B[b * sb + (long long)l * ldb + j] : B[b * sb + (long long)j * ldb + l];
                    exact += a * bv, abs_terms += std::fabs(a * bv);
                }
                const size_t ci = (size_t)(b * sc + (long long)j * ldc + i);
                const double old = t.beta == 0.0f ? 0.0 : C0[ci];
                exact = t.alpha * exact + t.beta * old;
                if (!close(C[ci], exact, std::fabs(t.alpha) * abs_terms, std::fabs(t.beta * old), t.k) && bad++ < 3)
                    CHECK(false, "gemm %c%c %dx%dx%d batch %d C(%d,%d) = %.9g, exact %.9g", "NTC"[t.ta], "NTC"[t.tb],
                          t.m, t.n, t.k, b, i, j, C[ci], exact);
            }
    for (size_t i = 0; i < nc; i++)
        if (!inside[i] && C[i] != kSentinel && bad++ < 3) CHECK(false, "gemm wrote C[%zu] outside the matrices", i);
}

void test_gemm_values(cublasHandle_t h) {
    const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T, Cj = CUBLAS_OP_C;
    const GemmCase plain[] = {
        {N, N, 5, 7, 3, 0, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0},
        {T, N, 4, 6, 9, 3, 0, 0, -1.5f, 0.5f, 1, 0, 0, 0}, /* linear forward's shape, lda > rows */
        {N, T, 8, 3, 5, 0, 2, 4, 1.0f, 1.0f, 1, 0, 0, 0},  /* linear dw += x^T dy */
        {T, T, 3, 3, 17, 1, 2, 1, 2.0f, -0.25f, 1, 0, 0, 0},
        {Cj, N, 6, 2, 4, 0, 1, 0, 0.75f, 0.0f, 1, 0, 0, 0}, /* OP_C is OP_T for real data */
        {N, N, 1, 1, 1, 0, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0},
        {N, N, 33, 29, 70, 5, 0, 3, 1.0f, 0.0f, 1, 0, 0, 0},
    };
    for (const GemmCase &t : plain) check_gemm(h, t, false);
    const GemmCase batched[] = {
        {N, N, 7, 4, 3, 0, 0, 0, 1.0f, 0.0f, 3, 0, 0, 0},  /* dense strides */
        {N, N, 9, 5, 4, 0, 0, 0, 1.0f, 0.0f, 4, 2, -1, 5}, /* pw_forward: B shared (stride 0), gaps */
        {N, T, 9, 4, 5, 0, 1, 0, 1.0f, 1.0f, 3, 0, -1, 0}, /* pw_backward_data, beta 1 */
        {T, N, 4, 5, 11, 0, 0, 2, 1.0f, 0.0f, 2, 7, 3, 9}, /* pw_backward_filter */
        {T, T, 3, 6, 2, 2, 1, 1, -0.5f, 2.0f, 5, 1, 1, 1},
    };
    for (const GemmCase &t : batched) check_gemm(h, t, true);
}

void test_gemm_edges(cublasHandle_t h) {
    const float one = 1.0f, zero = 0.0f, half = 0.5f;
    float *C = dev_alloc(12);
    /* k == 0: C = beta C, A and B never touched (NULL here) */
    fill(C, 12);
    std::vector<float> C0(C, C + 12);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 4, 0, &one, nullptr, 3, nullptr, 1, &half, C, 3) ==
              CUBLAS_STATUS_SUCCESS,
          "k 0");
    for (int i = 0; i < 12; i++) CHECK(C[i] == 0.5f * C0[i], "k 0: C[%d] = %g, want %g", i, C[i], 0.5f * C0[i]);
    /* alpha == 0, beta == 0: C = 0 whatever it held, A and B never touched */
    for (int i = 0; i < 12; i++) C[i] = kNaN;
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 3, 4, 5, &zero, nullptr, 5, nullptr, 5, &zero, C, 3) ==
              CUBLAS_STATUS_SUCCESS,
          "alpha 0");
    for (int i = 0; i < 12; i++) CHECK(C[i] == 0.0f, "alpha 0 beta 0: C[%d] = %g", i, C[i]);
    CHECK(g_err == cudaSuccess, "edges: %s", g_err_what.c_str());
    /* m, n or batchCount 0: nothing queued */
    const int before = g_enqueued;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 0, 4, 2, &one, nullptr, 1, nullptr, 2, &zero, nullptr, 1) ==
              CUBLAS_STATUS_SUCCESS,
          "m 0");
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, nullptr, 2, 4, nullptr, 2, 4, &zero,
                                    nullptr, 2, 4, 0) == CUBLAS_STATUS_SUCCESS,
          "batch 0");
    CHECK(g_enqueued == before, "empty GEMMs queued work");
}

void test_gemm_rejects(cublasHandle_t h) {
    const float one = 1.0f, zero = 0.0f;
    float *A = dev_alloc(64), *B = dev_alloc(64), *C = dev_alloc(64);
    for (int i = 0; i < 64; i++) C[i] = kSentinel;
    const int before = g_enqueued;
    struct Bad {
        cublasOperation_t ta, tb;
        int m, n, k, lda, ldb, ldc;
        const char *why;
    } bad[] = {
        {CUBLAS_OP_N, CUBLAS_OP_N, -1, 2, 2, 2, 2, 2, "m < 0"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 2, -1, 2, 2, 2, 2, "n < 0"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, -3, 2, 2, 2, "k < 0"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, 3, 3, 4, "lda < m (A not transposed)"},
        {CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 5, 4, 5, 2, "lda < k (A transposed)"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 5, 2, 4, 2, "ldb < k (B not transposed)"},
        {CUBLAS_OP_N, CUBLAS_OP_T, 2, 6, 1, 2, 5, 2, "ldb < n (B transposed)"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 3, 2, 2, 3, 2, 2, "ldc < m"},
        {CUBLAS_OP_N, CUBLAS_OP_N, 0, 2, 2, 0, 2, 1, "lda 0 < 1"},
        {CUBLAS_OP_CONJG, CUBLAS_OP_N, 2, 2, 2, 2, 2, 2, "transa CONJG"},
        {CUBLAS_OP_N, CUBLAS_OP_CONJG, 2, 2, 2, 2, 2, 2, "transb CONJG"},
    };
    for (const Bad &b : bad) {
        const cublasStatus_t s1 = cublasSgemm(h, b.ta, b.tb, b.m, b.n, b.k, &one, A, b.lda, B, b.ldb, &zero, C, b.ldc);
        const cublasStatus_t s2 = cublasSgemmStridedBatched(h, b.ta, b.tb, b.m, b.n, b.k, &one, A, b.lda, 0, B, b.ldb,
                                                            0, &zero, C, b.ldc, 0, 1);
        CHECK(s1 == CUBLAS_STATUS_INVALID_VALUE && s2 == CUBLAS_STATUS_INVALID_VALUE, "%s: %s / %s", b.why,
              cublasGetStatusString(s1), cublasGetStatusString(s2));
    }
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, 4, B, 2, 4, &zero, C, 2, 4, -1) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "batchCount < 0");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, nullptr, A, 2, B, 2, &zero, C, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "alpha NULL");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, B, 2, nullptr, C, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "beta NULL");
    CHECK(cublasSgemm(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2) ==
              CUBLAS_STATUS_NOT_INITIALIZED,
          "NULL handle");
    CHECK(g_enqueued == before, "refused calls queued %d", g_enqueued - before);
    for (int i = 0; i < 64; i++) CHECK(C[i] == kSentinel, "refused call wrote C[%d]", i);

    /* memory outside the allocations: an illegal address, C untouched */
    float host[16];
    fill(host, 16);
    g_err = cudaSuccess;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, host, 2, B, 2, &zero, C, 2) == CUBLAS_STATUS_SUCCESS,
          "host A is only found when the GEMM runs");
    CHECK(g_err == cudaErrorIllegalAddress, "host A: error %d", (int)g_err);
    g_err = cudaSuccess;
    /* batch 3 of 2x2 at stride 30 ends at 64: fits; at stride 31 it runs past the 64 floats of B */
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, 30, B, 2, 30, &zero, C, 2, 30,
                                    3) == CUBLAS_STATUS_SUCCESS,
          "batch fits");
    CHECK(g_err == cudaSuccess, "batch that fits: %s", g_err_what.c_str());
    for (int i = 0; i < 64; i++) C[i] = kSentinel;
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, 0, B, 2, 31, &zero, C, 2, 0, 3) ==
              CUBLAS_STATUS_SUCCESS,
          "batch past B");
    CHECK(g_err == cudaErrorIllegalAddress, "B batch past its allocation: error %d", (int)g_err);
    for (int i = 0; i < 64; i++) CHECK(C[i] == kSentinel, "faulting GEMM wrote C[%d]", i);
    g_err = cudaSuccess;
}

/* cublasSgemmBatched: the pointer arrays are device memory read when the GEMMs run. Each
 * GEMM of the array call gives the bits of the same GEMM in a strided-batched call (one
 * arithmetic), whatever order the arrays list the matrices in; arrays rewritten after the
 * call but before it runs are the ones used; a host array or a matrix outside the
 * allocations faults with the outputs untouched; the arguments are checked as the strided
 * call's. */
void test_gemm_ptrs(cublasHandle_t h) {
    const float one = 1.0f, zero = 0.0f, beta1 = 1.0f;
    const int m = 9, n = 4, k = 5, nb = 6; /* pw_backward_data's shape: N T, beta 1 */
    const long long sa = (long long)m * n + 3, sb = 0, sc = (long long)m * k + 2;
    float *A = dev_alloc((size_t)(sa * nb)), *B = dev_alloc((size_t)(n * k)), *C1 = dev_alloc((size_t)(sc * nb)),
          *C2 = dev_alloc((size_t)(sc * nb));
    fill(A, (size_t)(sa * nb)), fill(B, (size_t)(n * k)), fill(C1, (size_t)(sc * nb));
    std::memcpy(C2, C1, (size_t)(sc * nb) * sizeof(float));
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, A, m, sa, B, k, sb, &beta1, C1, m, sc,
                                    nb) == CUBLAS_STATUS_SUCCESS,
          "strided reference");
    const float **pa = (const float **)dev_alloc(2 * nb), **pb = (const float **)dev_alloc(2 * nb);
    float **pc = (float **)dev_alloc(2 * nb);
    for (int i = 0; i < nb; i++) { /* listed backwards */
        const int b = nb - 1 - i;
        pa[i] = A + b * sa, pb[i] = B, pc[i] = C2 + b * sc;
    }
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m, pb, k, &beta1, pc, m, nb) ==
              CUBLAS_STATUS_SUCCESS,
          "pointer arrays");
    CHECK(g_err == cudaSuccess, "pointer arrays: %s", g_err_what.c_str());
    CHECK(std::memcmp(C1, C2, (size_t)(sc * nb) * sizeof(float)) == 0, "pointer-array GEMMs differ from strided ones");

    /* read when run: C2's matrices written from arrays rewritten after the call */
    for (int i = 0; i < sc * nb; i++) C2[i] = kSentinel;
    const int before = g_enqueued;
    g_deferred = true;
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m, pb, k, &zero, pc, m, 1) ==
              CUBLAS_STATUS_SUCCESS,
          "deferred");
    pc[0] = C2; /* was C2 + (nb - 1) sc */
    pa[0] = A;
    g_deferred = false;
    for (auto &fn : g_held) fn();
    g_held.clear();
    CHECK(g_enqueued == before + 1, "one call queued %d", g_enqueued - before);
    std::vector<float> ref((size_t)sc);
    for (int i = 0; i < sc; i++) ref[(size_t)i] = kSentinel;
    float *R = dev_alloc((size_t)sc);
    std::memcpy(R, ref.data(), (size_t)sc * sizeof(float));
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, A, m, B, k, &zero, R, m) == CUBLAS_STATUS_SUCCESS,
          "single reference");
    CHECK(std::memcmp(R, C2, (size_t)sc * sizeof(float)) == 0, "the arrays were not read when the GEMM ran");
    for (long long i = sc; i < sc * nb; i++)
        if (C2[i] != kSentinel) {
            CHECK(false, "deferred call wrote C2[%lld] through the array it was given", i);
            break;
        }

    /* a host pointer array, or a matrix outside the allocations: a fault, nothing written */
    const float *host_pa[1] = {A};
    for (int i = 0; i < sc * nb; i++) C2[i] = kSentinel;
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, host_pa, m, pb, k, &zero, pc, m, 1) ==
              CUBLAS_STATUS_SUCCESS,
          "host array found when run");
    CHECK(g_err == cudaErrorIllegalAddress, "host pointer array: error %d", (int)g_err);
    g_err = cudaSuccess;
    float host[64];
    pa[0] = host;
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m, pb, k, &zero, pc, m, 1) ==
              CUBLAS_STATUS_SUCCESS,
          "host matrix found when run");
    CHECK(g_err == cudaErrorIllegalAddress, "host matrix: error %d", (int)g_err);
    g_err = cudaSuccess;
    for (int i = 0; i < sc * nb; i++)
        if (C2[i] != kSentinel) {
            CHECK(false, "faulting call wrote C2[%d]", i);
            break;
        }
    /* refused as the strided call: nothing queued */
    const int before2 = g_enqueued;
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m - 1, pb, k, &zero, pc, m, 1) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "lda < m");
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m, pb, k, &zero, pc, m, -1) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "batchCount < 0");
    CHECK(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, m, k, n, &one, pa, m, pb, k, &zero, pc, m, 0) ==
              CUBLAS_STATUS_SUCCESS,
          "batchCount 0");
    CHECK(g_enqueued == before2, "refused or empty calls queued %d", g_enqueued - before2);
}

void test_blas_handle() {
    cublasHandle_t h = nullptr;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS && h, "cublasCreate");
    CHECK(cublasCreate(nullptr) == CUBLAS_STATUS_INVALID_VALUE, "cublasCreate(NULL)");
    CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS, "default math");
    CHECK(cublasSetMathMode(
              h, (cublasMath_t)(CUBLAS_TF32_TENSOR_OP_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) ==
              CUBLAS_STATUS_SUCCESS,
          "TF32 | disallow reduced precision");
    CHECK(cublasSetMathMode(h, (cublasMath_t)5) == CUBLAS_STATUS_INVALID_VALUE, "math mode 5");
    float *ws = dev_alloc(1024);
    CHECK(cublasSetWorkspace(h, ws, 4096) == CUBLAS_STATUS_SUCCESS, "workspace");
    CHECK(cublasSetWorkspace(h, ws + 1, 1024) == CUBLAS_STATUS_INVALID_VALUE, "misaligned workspace");
    CHECK(cublasSetWorkspace(h, ws, 8192) == CUBLAS_STATUS_INVALID_VALUE, "workspace larger than its allocation");
    CHECK(cublasSetWorkspace(h, nullptr, 0) == CUBLAS_STATUS_SUCCESS, "no workspace");
    /* the GEMM runs on the handle's stream */
    cudaStream_t s = reinterpret_cast<cudaStream_t>((uintptr_t)0x5100);
    CHECK(cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS, "set stream");
    const float one = 1.0f, zero = 0.0f;
    float *A = dev_alloc(4), *B = dev_alloc(4), *C = dev_alloc(4);
    fill(A, 4), fill(B, 4);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2) == CUBLAS_STATUS_SUCCESS,
          "setup call");
    CHECK(g_last_stream == s, "GEMM queued on %p, not the handle's stream %p", (void *)g_last_stream, (void *)s);
    /* alpha and beta are read at the call: changing them before the queued work runs changes nothing */
    g_deferred = true;
    float alpha = 2.0f, beta = 0.0f;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, A, 2, B, 2, &beta, C, 2) == CUBLAS_STATUS_SUCCESS,
          "setup call");
    alpha = 100.0f, beta = kNaN;
    g_deferred = false;
    for (auto &fn : g_held) fn();
    g_held.clear();
    const double c00 = 2.0 * ((double)A[0] * B[0] + (double)A[2] * B[1]);
    CHECK(std::fabs(C[0] - c00) <= 1e-6, "deferred GEMM C(0,0) = %g, want %g (alpha taken at the call)", C[0], c00);
    CHECK(cublasSetStream(nullptr, s) == CUBLAS_STATUS_NOT_INITIALIZED, "set stream on NULL");
    CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "destroy");
    CHECK(cublasDestroy(nullptr) == CUBLAS_STATUS_NOT_INITIALIZED, "destroy NULL");
    CHECK(std::strcmp(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0, "name");
}

/* ---------------------------------------------------------------- cuDNN ---- */
struct ConvCase {
    int N, C, H, W, K, G, R, S, ph, pw, sh, sw, dh, dw;
};

int out_dim(int in, int pad, int f, int dil, int stride) { return (in + 2 * pad - ((f - 1) * dil + 1)) / stride + 1; }

struct Descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
};

Descs make_descs(const ConvCase &t, int P, int Q) {
    Descs d{};
    CHECK(cudnnCreateTensorDescriptor(&d.x) == CUDNN_STATUS_SUCCESS, "x desc");
    CHECK(cudnnCreateTensorDescriptor(&d.y) == CUDNN_STATUS_SUCCESS, "y desc");
    CHECK(cudnnCreateFilterDescriptor(&d.w) == CUDNN_STATUS_SUCCESS, "w desc");
    CHECK(cudnnCreateConvolutionDescriptor(&d.c) == CUDNN_STATUS_SUCCESS, "conv desc");
    CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, t.N, t.C, t.H, t.W) ==
              CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, t.N, t.K, P, Q) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnSetFilter4dDescriptor(d.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, t.K, t.C / t.G, t.R, t.S) ==
              CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnSetConvolution2dDescriptor(d.c, t.ph, t.pw, t.sh, t.sw, t.dh, t.dw, CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnSetConvolutionGroupCount(d.c, t.G) == CUDNN_STATUS_SUCCESS, "setup call");
    CHECK(cudnnSetConvolutionMathType(d.c, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS, "setup call");
    return d;
}
void free_descs(const Descs &d) {
    cudnnDestroyTensorDescriptor(d.x);
    cudnnDestroyTensorDescriptor(d.y);
    cudnnDestroyFilterDescriptor(d.w);
    cudnnDestroyConvolutionDescriptor(d.c);
}

/* What a Find call must return for kernels/cuda/conv.cu's pick_algo to take its result */
template <typename Perf> bool usable(const Perf &p) {
    return p.status == CUDNN_STATUS_SUCCESS && p.determinism == CUDNN_DETERMINISTIC && p.mathType == CUDNN_FMA_MATH &&
           p.memory == 0 && p.time == 0.0f;
}

/* Find and the workspace queries, as conv.cu calls them */
void check_find(cudnnHandle_t h, const Descs &d) {
    int got = -1;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnStatus_t st =
        cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp);
    CHECK(st == CUDNN_STATUS_SUCCESS && got == 1 && usable(fp[0]), "find forward: %s, %d results",
          cudnnGetErrorString(st), got);
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    st = cudnnFindConvolutionBackwardDataAlgorithm(h, d.w, d.y, d.c, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
                                                   dp);
    CHECK(st == CUDNN_STATUS_SUCCESS && got == 1 && usable(dp[0]), "find backward data: %s, %d results",
          cudnnGetErrorString(st), got);
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    st = cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.c, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                     &got, wp);
    CHECK(st == CUDNN_STATUS_SUCCESS && got == 1 && usable(wp[0]), "find backward filter: %s, %d results",
          cudnnGetErrorString(st), got);
    size_t a = 1, b = 1, c = 1;
    st = cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, fp[0].algo, &a);
    CHECK(st == CUDNN_STATUS_SUCCESS && a == 0, "forward workspace: %s, %zu bytes", cudnnGetErrorString(st), a);
    st = cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.c, d.x, dp[0].algo, &b);
    CHECK(st == CUDNN_STATUS_SUCCESS && b == 0, "backward data workspace: %s, %zu bytes", cudnnGetErrorString(st), b);
    st = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.c, d.w, wp[0].algo, &c);
    CHECK(st == CUDNN_STATUS_SUCCESS && c == 0, "backward filter workspace: %s, %zu bytes", cudnnGetErrorString(st),
          c);
}

/* x index of (n, channel, ih, iw), or -1 where (ih, iw) is padding */
long long x_at(const ConvCase &t, int n, int ci, long long ih, long long iw) {
    if (ih < 0 || ih >= t.H || iw < 0 || iw >= t.W) return -1;
    return (((long long)n * t.C + ci) * t.H + ih) * t.W + iw;
}

void check_conv(cudnnHandle_t h, const ConvCase &t) {
    const int P = out_dim(t.H, t.ph, t.R, t.dh, t.sh), Q = out_dim(t.W, t.pw, t.S, t.dw, t.sw);
    const int Cg = t.C / t.G, Kg = t.K / t.G;
    const size_t nx = (size_t)t.N * t.C * t.H * t.W, nw = (size_t)t.K * Cg * t.R * t.S, ny = (size_t)t.N * t.K * P * Q;
    float *x = dev_alloc(nx), *w = dev_alloc(nw), *y = dev_alloc(ny), *dy = dev_alloc(ny), *dx = dev_alloc(nx),
          *dw = dev_alloc(nw);
    fill(x, nx), fill(w, nw), fill(dy, ny);
    Descs d = make_descs(t, P, Q);
    check_find(h, d);
    char name[160];
    std::snprintf(name, sizeof name, "conv N%d C%d %dx%d K%d G%d %dx%d pad %d,%d stride %d,%d dil %d,%d", t.N, t.C, t.H,
                  t.W, t.K, t.G, t.R, t.S, t.ph, t.pw, t.sh, t.sw, t.dh, t.dw);
    const float ab[2][2] = {{1.0f, 0.0f}, {-0.75f, 1.5f}}; /* (alpha, beta): the backend's, then general */
    for (int v = 0; v < 2; v++) {
        const float alpha = ab[v][0], beta = ab[v][1];
        /* forward */
        if (beta == 0.0f)
            for (size_t i = 0; i < ny; i++) y[i] = kNaN;
        else
            fill(y, ny);
        std::vector<float> old(y, y + ny);
        cudnnStatus_t st = cudnnConvolutionForward(h, &alpha, d.x, x, d.w, w, d.c,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &beta, d.y, y);
        CHECK(st == CUDNN_STATUS_SUCCESS, "%s forward: %s", name, cudnnGetErrorString(st));
        int bad = 0;
        for (int n = 0; n < t.N; n++)
            for (int k = 0; k < t.K; k++)
                for (int p = 0; p < P; p++)
                    for (int q = 0; q < Q; q++) {
                        double e = 0.0, abs_terms = 0.0;
                        for (int c = 0; c < Cg; c++)
                            for (int r = 0; r < t.R; r++)
                                for (int s = 0; s < t.S; s++) {
                                    const long long xi =
                                        x_at(t, n, (k / Kg) * Cg + c, (long long)p * t.sh - t.ph + r * t.dh,
                                             (long long)q * t.sw - t.pw + s * t.dw);
                                    if (xi < 0) continue;
                                    const double term =
                                        (double)x[xi] * w[(((long long)k * Cg + c) * t.R + r) * t.S + s];
                                    e += term, abs_terms += std::fabs(term);
                                }
                        const size_t yi = (((size_t)n * t.K + k) * P + p) * Q + q;
                        const double o = beta == 0.0f ? 0.0 : old[yi];
                        e = alpha * e + beta * o;
                        if (!close(y[yi], e, std::fabs(alpha) * abs_terms, std::fabs(beta * o),
                                   (long long)Cg * t.R * t.S) &&
                            bad++ < 3)
                            CHECK(false, "%s forward alpha %g beta %g: y[%d,%d,%d,%d] = %.9g, exact %.9g", name, alpha,
                                  beta, n, k, p, q, y[yi], e);
                    }
        /* backward data: dx[n,ci,ih,iw] sums dy[n,k,p,q] w[k,c,r,s] over ih = p sh - ph + r dh, likewise iw */
        if (beta == 0.0f)
            for (size_t i = 0; i < nx; i++) dx[i] = kNaN;
        else
            fill(dx, nx);
        old.assign(dx, dx + nx);
        st = cudnnConvolutionBackwardData(h, &alpha, d.w, w, d.y, dy, d.c, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, nullptr,
                                          0, &beta, d.x, dx);
        CHECK(st == CUDNN_STATUS_SUCCESS, "%s backward data: %s", name, cudnnGetErrorString(st));
        for (int n = 0; n < t.N; n++)
            for (int ci = 0; ci < t.C; ci++)
                for (int ih = 0; ih < t.H; ih++)
                    for (int iw = 0; iw < t.W; iw++) {
                        double e = 0.0, abs_terms = 0.0;
                        long long terms = 0;
                        const int g = ci / Cg, c = ci % Cg;
                        for (int k = g * Kg; k < (g + 1) * Kg; k++)
                            for (int r = 0; r < t.R; r++)
                                for (int s = 0; s < t.S; s++) {
                                    const int ph = ih + t.ph - r * t.dh, pw = iw + t.pw - s * t.dw;
                                    if (ph < 0 || pw < 0 || ph % t.sh || pw % t.sw) continue;
                                    const int p = ph / t.sh, q = pw / t.sw;
                                    if (p >= P || q >= Q) continue;
                                    const double term = (double)dy[(((long long)n * t.K + k) * P + p) * Q + q] *
                                                        w[(((long long)k * Cg + c) * t.R + r) * t.S + s];
                                    e += term, abs_terms += std::fabs(term), terms++;
                                }
                        const size_t xi = (size_t)x_at(t, n, ci, ih, iw);
                        const double o = beta == 0.0f ? 0.0 : old[xi];
                        e = alpha * e + beta * o;
                        if (!close(dx[xi], e, std::fabs(alpha) * abs_terms, std::fabs(beta * o), terms) && bad++ < 3)
                            CHECK(false, "%s backward data alpha %g beta %g: dx[%d,%d,%d,%d] = %.9g, exact %.9g", name,
                                  alpha, beta, n, ci, ih, iw, dx[xi], e);
                    }
        /* backward filter */
        if (beta == 0.0f)
            for (size_t i = 0; i < nw; i++) dw[i] = kNaN;
        else
            fill(dw, nw);
        old.assign(dw, dw + nw);
        st = cudnnConvolutionBackwardFilter(h, &alpha, d.x, x, d.y, dy, d.c, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                            nullptr, 0, &beta, d.w, dw);
        CHECK(st == CUDNN_STATUS_SUCCESS, "%s backward filter: %s", name, cudnnGetErrorString(st));
        for (int k = 0; k < t.K; k++)
            for (int c = 0; c < Cg; c++)
                for (int r = 0; r < t.R; r++)
                    for (int s = 0; s < t.S; s++) {
                        double e = 0.0, abs_terms = 0.0;
                        for (int n = 0; n < t.N; n++)
                            for (int p = 0; p < P; p++)
                                for (int q = 0; q < Q; q++) {
                                    const long long xi =
                                        x_at(t, n, (k / Kg) * Cg + c, (long long)p * t.sh - t.ph + r * t.dh,
                                             (long long)q * t.sw - t.pw + s * t.dw);
                                    if (xi < 0) continue;
                                    const double term = (double)x[xi] * dy[(((long long)n * t.K + k) * P + p) * Q + q];
                                    e += term, abs_terms += std::fabs(term);
                                }
                        const size_t wi = (((size_t)k * Cg + c) * t.R + r) * t.S + s;
                        const double o = beta == 0.0f ? 0.0 : old[wi];
                        e = alpha * e + beta * o;
                        if (!close(dw[wi], e, std::fabs(alpha) * abs_terms, std::fabs(beta * o),
                                   (long long)t.N * P * Q) &&
                            bad++ < 3)
                            CHECK(false, "%s backward filter alpha %g beta %g: dw[%d,%d,%d,%d] = %.9g, exact %.9g",
                                  name, alpha, beta, k, c, r, s, dw[wi], e);
                    }
    }
    CHECK(g_err == cudaSuccess, "%s: %s", name, g_err_what.c_str());
    free_descs(d);
}

void test_conv_values(cudnnHandle_t h) {
    const ConvCase cases[] = {
        /* N  C  H   W   K  G  R  S  ph pw sh sw dh dw */
        {2, 3, 7, 6, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1},    /* plain 3x3, same padding */
        {2, 4, 9, 8, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2},    /* depthwise (groups = C), stride 2, dilation 2 */
        {1, 6, 8, 9, 4, 2, 1, 7, 0, 3, 1, 1, 1, 1},    /* groups 2, asymmetric 1x7 */
        {2, 4, 8, 9, 6, 2, 7, 1, 3, 0, 1, 1, 1, 1},    /* 7x1 */
        {2, 4, 10, 7, 6, 2, 5, 3, 2, 1, 2, 1, 1, 2},   /* mixed strides and dilations */
        {3, 2, 5, 5, 3, 1, 2, 2, 0, 0, 2, 2, 1, 1},    /* stride leaves the last row and column unread */
        {1, 3, 11, 11, 2, 1, 3, 3, 3, 3, 3, 3, 1, 1},  /* padding wider than a tap: whole taps in the pad */
        {2, 5, 6, 6, 7, 1, 1, 1, 0, 0, 1, 1, 1, 1},    /* 1x1 */
        {1, 8, 12, 12, 16, 1, 5, 5, 4, 4, 1, 1, 2, 2}, /* dilated 5x5 (a DARTS dil_conv_5x5 is depthwise + 1x1) */
    };
    for (const ConvCase &t : cases) check_conv(h, t);
}

void test_conv_rejects(cudnnHandle_t h) {
    const ConvCase t{2, 4, 8, 8, 6, 2, 3, 3, 1, 1, 2, 2, 1, 1};
    const int P = out_dim(t.H, t.ph, t.R, t.dh, t.sh), Q = out_dim(t.W, t.pw, t.S, t.dw, t.sw);
    Descs d = make_descs(t, P, Q);
    float *x = dev_alloc(2 * 4 * 64), *w = dev_alloc(6 * 2 * 9), *y = dev_alloc(2 * 6 * P * Q);
    const float one = 1.0f, zero = 0.0f;
    const int before = g_enqueued;
    size_t ws = 0;
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[1];
    /* a y descriptor one row short */
    cudnnTensorDescriptor_t ybad;
    cudnnCreateTensorDescriptor(&ybad);
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 6, P - 1, Q) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &zero, ybad, y) == CUDNN_STATUS_BAD_PARAM,
          "forward with the wrong y size");
    CHECK(cudnnConvolutionBackwardData(h, &one, d.w, w, ybad, y, d.c, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, nullptr, 0,
                                       &zero, d.x, x) == CUDNN_STATUS_BAD_PARAM,
          "backward data with the wrong dy size");
    CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x, x, ybad, y, d.c, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, nullptr, 0,
                                         &one, d.w, w) == CUDNN_STATUS_BAD_PARAM,
          "backward filter with the wrong dy size");
    CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.c, ybad, 1, &got, fp) == CUDNN_STATUS_BAD_PARAM, "find");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, ybad, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &ws) == CUDNN_STATUS_BAD_PARAM,
          "workspace size");
    /* y with the wrong channel count, the wrong batch */
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 5, P, Q) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &zero, ybad, y) == CUDNN_STATUS_BAD_PARAM,
          "y channels != K");
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 6, P, Q) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &zero, ybad, y) == CUDNN_STATUS_BAD_PARAM,
          "y batch != x batch");
    /* channels that do not split into the groups; filters that do not */
    cudnnFilterDescriptor_t wbad;
    cudnnCreateFilterDescriptor(&wbad);
    CHECK(cudnnSetFilter4dDescriptor(wbad, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, 3, 3, 3) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, wbad, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &ws) == CUDNN_STATUS_BAD_PARAM,
          "C != groups x filter channels");
    CHECK(cudnnSetFilter4dDescriptor(wbad, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 5, 2, 3, 3) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, wbad, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &ws) == CUDNN_STATUS_BAD_PARAM,
          "K not divisible by groups");
    /* a filter larger than the padded input */
    CHECK(cudnnSetFilter4dDescriptor(wbad, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, 2, 11, 3) == CUDNN_STATUS_SUCCESS,
          "setup call");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, wbad, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &ws) == CUDNN_STATUS_BAD_PARAM,
          "filter does not fit");
    /* a descriptor created but never set */
    cudnnConvolutionDescriptor_t cbad;
    cudnnCreateConvolutionDescriptor(&cbad);
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, cbad, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  &ws) == CUDNN_STATUS_BAD_PARAM,
          "unset convolution descriptor");
    /* bad settings */
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 0, 6, P, Q) == CUDNN_STATUS_BAD_PARAM,
          "n 0");
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 2, 6, P, Q) ==
              CUDNN_STATUS_NOT_SUPPORTED,
          "NHWC");
    CHECK(cudnnSetTensor4dDescriptor(ybad, CUDNN_TENSOR_NCHW, CUDNN_DATA_HALF, 2, 6, P, Q) ==
              CUDNN_STATUS_NOT_SUPPORTED,
          "half");
    CHECK(cudnnSetFilter4dDescriptor(wbad, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 6, -2, 3, 3) == CUDNN_STATUS_BAD_PARAM,
          "negative filter size");
    CHECK(cudnnSetConvolution2dDescriptor(cbad, 1, 1, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_BAD_PARAM,
          "stride 0");
    CHECK(cudnnSetConvolution2dDescriptor(cbad, -1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_BAD_PARAM,
          "negative padding");
    CHECK(cudnnSetConvolution2dDescriptor(cbad, 1, 1, 1, 1, 1, 0, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_BAD_PARAM,
          "dilation 0");
    CHECK(cudnnSetConvolution2dDescriptor(cbad, 1, 1, 1, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) ==
              CUDNN_STATUS_NOT_SUPPORTED,
          "true convolution");
    CHECK(cudnnSetConvolutionGroupCount(d.c, 0) == CUDNN_STATUS_BAD_PARAM, "group count 0");
    /* bad call arguments */
    CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, nullptr, 0, &zero,
                                  d.y, y) == CUDNN_STATUS_BAD_PARAM,
          "algorithm out of range");
    CHECK(cudnnConvolutionForward(h, nullptr, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &zero, d.y, y) == CUDNN_STATUS_BAD_PARAM,
          "alpha NULL");
    CHECK(cudnnConvolutionForward(h, &one, d.x, nullptr, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                  0, &zero, d.y, y) == CUDNN_STATUS_BAD_PARAM,
          "x NULL");
    CHECK(cudnnConvolutionForward(nullptr, &one, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr,
                                  0, &zero, d.y, y) == CUDNN_STATUS_BAD_PARAM,
          "NULL handle");
    CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.c, d.y, 0, &got, fp) == CUDNN_STATUS_BAD_PARAM,
          "find asking for 0 results");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                                  nullptr) == CUDNN_STATUS_BAD_PARAM,
          "size NULL");
    CHECK(g_enqueued == before, "refused convolutions queued %d", g_enqueued - before);

    /* memory outside the allocations: x one float short */
    g_err = cudaSuccess;
    for (int i = 0; i < 2 * 6 * P * Q; i++) y[i] = kSentinel;
    float *xs = dev_alloc(2 * 4 * 64 - 1);
    CHECK(cudnnConvolutionForward(h, &one, d.x, xs, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &zero, d.y, y) == CUDNN_STATUS_SUCCESS,
          "short x is only found when the pass runs");
    CHECK(g_err == cudaErrorIllegalAddress, "x short of its extent: error %d", (int)g_err);
    for (int i = 0; i < 2 * 6 * P * Q; i++) CHECK(y[i] == kSentinel, "faulting convolution wrote y[%d]", i);
    g_err = cudaSuccess;
    float host_dw[6 * 2 * 9];
    CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x, x, d.y, y, d.c, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, nullptr, 0,
                                         &zero, d.w, host_dw) == CUDNN_STATUS_SUCCESS,
          "host dw");
    CHECK(g_err == cudaErrorIllegalAddress, "host dw: error %d", (int)g_err);
    g_err = cudaSuccess;
    cudnnDestroyTensorDescriptor(ybad);
    cudnnDestroyFilterDescriptor(wbad);
    cudnnDestroyConvolutionDescriptor(cbad);
    free_descs(d);
}

/* The handle's stream, and a pass queued while deferred that outlives its descriptors and
 * its alpha and beta. */
void test_dnn_handle() {
    cudnnHandle_t h = nullptr;
    CHECK(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS && h, "cudnnCreate");
    cudaStream_t s = reinterpret_cast<cudaStream_t>((uintptr_t)0x7700);
    CHECK(cudnnSetStream(h, s) == CUDNN_STATUS_SUCCESS, "set stream");
    const ConvCase t{1, 2, 5, 5, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1};
    Descs d = make_descs(t, 5, 5);
    float *x = dev_alloc(50), *w = dev_alloc(36), *y = dev_alloc(50);
    fill(x, 50), fill(w, 36);
    float alpha = 1.0f, beta = 0.0f;
    g_deferred = true;
    CHECK(cudnnConvolutionForward(h, &alpha, d.x, x, d.w, w, d.c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0,
                                  &beta, d.y, y) == CUDNN_STATUS_SUCCESS,
          "deferred forward");
    CHECK(g_last_stream == s, "convolution queued on %p, not the handle's stream %p", (void *)g_last_stream, (void *)s);
    free_descs(d);
    alpha = 3.0f, beta = kNaN;
    for (int i = 0; i < 50; i++) y[i] = kNaN;
    g_deferred = false;
    for (auto &fn : g_held) fn();
    g_held.clear();
    /* y[0, 0, 2, 2]: the centre, all nine taps of both channels inside */
    double e = 0.0;
    for (int c = 0; c < 2; c++)
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < 3; q++) e += (double)x[c * 25 + (1 + r) * 5 + 1 + q] * w[c * 9 + r * 3 + q];
    CHECK(std::fabs(y[12] - e) <= 1e-5, "deferred forward y centre %g, want %g", y[12], e);
    CHECK(cudnnDestroy(h) == CUDNN_STATUS_SUCCESS, "destroy");
    CHECK(std::strcmp(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM") == 0, "name");
}

} // namespace

int main() {
    test_blas_handle();
    cublasHandle_t blas;
    cublasCreate(&blas);
    test_gemm_values(blas);
    test_gemm_edges(blas);
    test_gemm_rejects(blas);
    test_gemm_ptrs(blas);
    cublasDestroy(blas);

    test_dnn_handle();
    cudnnHandle_t dnn;
    cudnnCreate(&dnn);
    test_conv_values(dnn);
    test_conv_rejects(dnn);
    cudnnDestroy(dnn);
    dev_free_all();
    if (g_failures)
        std::fprintf(stderr, "test_libs: %d checks failed\n", g_failures);
    else
        std::printf("test_libs: all checks passed\n");
    return g_failures != 0;
}
