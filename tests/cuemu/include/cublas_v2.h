/* cublas_v2.h — cuemu's replacement for cuBLAS v2 (see tests/cuemu/cuemu.h): the part of the
 * API that runtime/cuda and kernels/cuda call, with the names, values and signatures of the
 * real header (CUDA 13's cublas_api.h / cublas_v2.h), so those sources compile unchanged
 * with the host C++ compiler. tests/cuemu/blas.cc implements it on the CPU: every call
 * checks its arguments as cuBLAS documents, then queues its work on the handle's stream
 * through cuemu::enqueue. Only single-precision GEMM exists; the pointer mode is always host
 * (alpha and beta are read when the call is made). */
#ifndef DARTSC_CUEMU_CUBLAS_V2_H
#define DARTSC_CUEMU_CUBLAS_V2_H

#include <stddef.h>

#include "cuda_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
    CUBLAS_OP_C = 2, /* for real matrices the same as CUBLAS_OP_T */
    CUBLAS_OP_HERMITAN = 2,
    CUBLAS_OP_CONJG = 3 /* not supported by cuBLAS either */
} cublasOperation_t;

/* Every mode computes the same here: plain float multiply-adds. */
typedef enum {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
    CUBLAS_FP32_EMULATED_BF16X9_MATH = 4,
    CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH = 8,
    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

struct cublasContext;
typedef struct cublasContext *cublasHandle_t;

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle);
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle);
/* Like cuBLAS, setting the stream also drops a workspace set with cublasSetWorkspace. */
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
/* workspace: 256-byte aligned device memory (cuBLAS's rule) of at least the given size. */
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes);
const char *cublasGetStatusString(cublasStatus_t status);

/* C = alpha op(A) op(B) + beta C, column-major; op(A) m x k, op(B) k x n, C m x n. Where
 * beta == 0, C is only written (NaN there does not propagate); where alpha == 0 or k == 0,
 * A and B are not read. */
cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc);
/* batchCount independent GEMMs, matrix i at A + i strideA, B + i strideB, C + i strideC. */
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC, int batchCount);
/* batchCount independent GEMMs, matrix i at Aarray[i], Barray[i], Carray[i]: the three
 * arrays are in DEVICE memory and read when the GEMMs run. */
cublasStatus_t cublasSgemmBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                  int n, int k, const float *alpha, const float *const Aarray[], int lda,
                                  const float *const Barray[], int ldb, const float *beta, float *const Carray[],
                                  int ldc, int batchCount);

#ifdef __cplusplus
}
#endif

#define cublasCreate cublasCreate_v2
#define cublasDestroy cublasDestroy_v2
#define cublasSetStream cublasSetStream_v2
#define cublasSetWorkspace cublasSetWorkspace_v2
#define cublasSgemm cublasSgemm_v2

#endif
