/* blas.cc — cuemu's cuBLAS (tests/cuemu/include/cublas_v2.h) on the CPU.
 *
 * A call checks its arguments as cuBLAS documents (a bad one returns
 * CUBLAS_STATUS_INVALID_VALUE and prints why to stderr, which cuBLAS does not; nothing is
 * queued), reads alpha and beta (pointer mode host), and queues the GEMM on the handle's
 * stream with cuemu::enqueue, everything captured by value, so a captured graph replays it.
 * When the GEMM runs, every matrix it touches must lie inside one cudaMalloc allocation;
 * otherwise it runs nothing and records cudaErrorIllegalAddress, as a GPU would fault.
 *
 * Arithmetic: each element of op(A) op(B) is summed in float, k ascending from 0, then
 * C = alpha * sum + beta * C (beta == 0: C = alpha * sum, C never read). */
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cublas_v2.h"
#include "cuemu.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    void *workspace = nullptr; /* kept for the record: the CPU GEMM needs none */
    size_t workspace_bytes = 0;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

cublasStatus_t invalid(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cuemu::vreport(fn, fmt, ap);
    va_end(ap);
    return CUBLAS_STATUS_INVALID_VALUE;
}

/* One (strided batched) GEMM, as queued. */
struct Gemm {
    const char *fn;
    bool ta, tb; /* op(A) = A^T, op(B) = B^T */
    int m, n, k;
    float alpha, beta;
    const float *A;
    int lda;
    long long sa;
    const float *B;
    int ldb;
    long long sb;
    float *C;
    int ldc;
    long long sc;
    int batch;
};

/* Whether batch matrices of rows x cols (column-major, leading dimension ld, matrix i at
 * p + i stride) lie inside one allocation. */
bool on_device(const float *p, int rows, int cols, int ld, long long stride, int batch) {
    const long long last = (long long)(batch - 1) * stride;
    const long long lo = last < 0 ? last : 0, hi = (last > 0 ? last : 0) + (long long)(cols - 1) * ld + rows;
    const uintptr_t start = (uintptr_t)p + (uintptr_t)(lo * (long long)sizeof(float));
    return cuemu::device_extent((const void *)start, (size_t)(hi - lo) * sizeof(float)) != 0;
}

void run(const Gemm &g) {
    const bool reads_ab = g.alpha != 0.0f && g.k > 0;
    const char *bad = nullptr;
    if (reads_ab && !on_device(g.A, g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda, g.sa, g.batch))
        bad = "A";
    else if (reads_ab && !on_device(g.B, g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb, g.sb, g.batch))
        bad = "B";
    else if (!on_device(g.C, g.m, g.n, g.ldc, g.sc, g.batch))
        bad = "C";
    if (bad) {
        char what[160];
        std::snprintf(what, sizeof what, "%s: matrix %s is not inside one cudaMalloc allocation", g.fn, bad);
        cuemu::set_error(cudaErrorIllegalAddress, what);
        return;
    }
    std::vector<float> acc((size_t)g.m);
    for (int b = 0; b < g.batch; b++) {
        const float *A = g.A + (long long)b * g.sa, *B = g.B + (long long)b * g.sb;
        float *C = g.C + (long long)b * g.sc;
        for (int j = 0; j < g.n; j++) {
            for (int i = 0; i < g.m; i++) acc[(size_t)i] = 0.0f;
            if (reads_ab && !g.ta) { /* columns of A are contiguous: acc += A(:,l) B(l,j) */
                for (int l = 0; l < g.k; l++) {
                    const float bl = g.tb ? B[j + (long long)l * g.ldb] : B[l + (long long)j * g.ldb];
                    const float *a = A + (long long)l * g.lda;
                    for (int i = 0; i < g.m; i++) acc[(size_t)i] += a[i] * bl;
                }
            } else if (reads_ab) { /* rows of op(A) are contiguous: a dot product per element */
                for (int i = 0; i < g.m; i++) {
                    const float *a = A + (long long)i * g.lda;
                    float s = 0.0f;
                    for (int l = 0; l < g.k; l++)
                        s += a[l] * (g.tb ? B[j + (long long)l * g.ldb] : B[l + (long long)j * g.ldb]);
                    acc[(size_t)i] = s;
                }
            }
            float *c = C + (long long)j * g.ldc;
            for (int i = 0; i < g.m; i++)
                c[i] = g.beta == 0.0f ? g.alpha * acc[(size_t)i] : g.alpha * acc[(size_t)i] + g.beta * c[i];
        }
    }
}

bool op_ok(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }
int max1(int v) { return v > 1 ? v : 1; }

/* The argument checks every GEMM entry point shares (CUBLAS_STATUS_SUCCESS: valid). */
cublasStatus_t gemm_args(const char *fn, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                         int n, int k, int lda, int ldb, int ldc, const float *alpha, const float *beta, int batch) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_ok(transa) || !op_ok(transb)) return invalid(fn, "transa %d / transb %d is not N, T or C", transa, transb);
    if (m < 0 || n < 0 || k < 0) return invalid(fn, "negative size m %d n %d k %d", m, n, k);
    if (batch < 0) return invalid(fn, "negative batchCount %d", batch);
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if (lda < max1(ta ? k : m)) return invalid(fn, "lda %d < %d (the rows of A)", lda, max1(ta ? k : m));
    if (ldb < max1(tb ? n : k)) return invalid(fn, "ldb %d < %d (the rows of B)", ldb, max1(tb ? n : k));
    if (ldc < max1(m)) return invalid(fn, "ldc %d < %d (the rows of C)", ldc, max1(m));
    if (!alpha || !beta) return invalid(fn, "alpha or beta is NULL");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t gemm(const char *fn, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                    int k, const float *alpha, const float *A, int lda, long long sa, const float *B, int ldb,
                    long long sb, const float *beta, float *C, int ldc, long long sc, int batch) {
    const cublasStatus_t st = gemm_args(fn, h, transa, transb, m, n, k, lda, ldb, ldc, alpha, beta, batch);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS; /* nothing to compute */
    const Gemm g{fn, ta, tb, m, n, k, *alpha, *beta, A, lda, sa, B, ldb, sb, C, ldc, sc, batch};
    cuemu::enqueue(h->stream, [g] {
        cuemu::stat_call(g.fn);
        run(g);
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* batchCount GEMMs whose matrices' addresses the DEVICE arrays Aarray, Barray, Carray hold,
 * read when the call runs (as cuBLAS reads them on the device): each array must lie inside
 * one cudaMalloc allocation, each matrix too; then each GEMM is run() as a single one. */
cublasStatus_t gemm_ptrs(const char *fn, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                         int n, int k, const float *alpha, const float *const *Aarray, int lda,
                         const float *const *Barray, int ldb, const float *beta, float *const *Carray, int ldc,
                         int batch) {
    const cublasStatus_t st = gemm_args(fn, h, transa, transb, m, n, k, lda, ldb, ldc, alpha, beta, batch);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS; /* nothing to compute */
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const Gemm g{fn, ta, tb, m, n, k, *alpha, *beta, nullptr, lda, 0, nullptr, ldb, 0, nullptr, ldc, 0, 1};
    cuemu::enqueue(h->stream, [g, Aarray, Barray, Carray, batch] {
        cuemu::stat_call(g.fn);
        const size_t bytes = (size_t)batch * sizeof(void *);
        const bool reads_ab = g.alpha != 0.0f && g.k > 0;
        if ((reads_ab && (!cuemu::device_extent(Aarray, bytes) || !cuemu::device_extent(Barray, bytes))) ||
            !cuemu::device_extent(Carray, bytes)) {
            char what[160];
            std::snprintf(what, sizeof what, "%s: a pointer array is not inside one cudaMalloc allocation", g.fn);
            cuemu::set_error(cudaErrorIllegalAddress, what);
            return;
        }
        for (int b = 0; b < batch; b++) {
            Gemm one = g;
            one.A = reads_ab ? Aarray[b] : nullptr;
            one.B = reads_ab ? Barray[b] : nullptr;
            one.C = Carray[b];
            run(one);
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return invalid("cublasCreate", "handle is NULL");
    *handle = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    handle->workspace = nullptr;
    handle->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base < CUBLAS_DEFAULT_MATH ||
        (base > CUBLAS_FP32_EMULATED_BF16X9_MATH && base != CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH))
        return invalid("cublasSetMathMode", "unknown math mode %d", (int)mode);
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((uintptr_t)workspace % 256 != 0)
        return invalid("cublasSetWorkspace", "workspace %p is not 256-byte aligned", workspace);
    /* cuBLAS does not check this one; a GPU would fault on first use instead */
    if (workspaceSizeInBytes > 0 && cuemu::device_extent(workspace, workspaceSizeInBytes) == 0)
        return invalid("cublasSetWorkspace", "workspace %p (%zu bytes) is not inside one cudaMalloc allocation",
                       workspace, workspaceSizeInBytes);
    handle->workspace = workspace;
    handle->workspace_bytes = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
    return gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC, int batchCount) {
    return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB,
                beta, C, ldc, strideC, batchCount);
}

cublasStatus_t cublasSgemmBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                  int n, int k, const float *alpha, const float *const Aarray[], int lda,
                                  const float *const Barray[], int ldb, const float *beta, float *const Carray[],
                                  int ldc, int batchCount) {
    return gemm_ptrs("cublasSgemmBatched", handle, transa, transb, m, n, k, alpha, Aarray, lda, Barray, ldb, beta,
                     Carray, ldc, batchCount);
}

} // extern "C"
