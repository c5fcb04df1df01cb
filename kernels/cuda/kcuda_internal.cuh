/* kcuda_internal.cuh — what the .cu files of kernels/cuda share: the one error-check
 * macro family, launch geometry, the deterministic block reduction, and the library
 * state (handles and the partials buffer). Not for C callers. */
#ifndef DARTSC_KCUDA_INTERNAL_CUH
#define DARTSC_KCUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kcuda.h"

/* Records "file:line: what: msg" as the first error (later ones are only printed). */
extern "C" void kcuda_record_error(const char *file, int line, const char *what, const char *msg);

/* Every CUDA/cuDNN/cuBLAS call goes through one of these: on failure they print
 * file:line and the error string, record the first error, and return from the calling
 * function (with RET for functions returning a value). Library code never exits. */
#define KCUDA_FAIL_(what, msg, ret_stmt) \
    do { kcuda_record_error(__FILE__, __LINE__, what, msg); ret_stmt; } while (0)
#define cudaCheckR(call, ret) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) KCUDA_FAIL_(#call, cudaGetErrorString(e_), return ret); } while (0)
#define cudnnCheckR(call, ret) do { cudnnStatus_t e_ = (call); if (e_ != CUDNN_STATUS_SUCCESS) KCUDA_FAIL_(#call, cudnnGetErrorString(e_), return ret); } while (0)
#define cublasCheckR(call, ret) do { cublasStatus_t e_ = (call); if (e_ != CUBLAS_STATUS_SUCCESS) KCUDA_FAIL_(#call, cublasGetStatusString(e_), return ret); } while (0)
#define KCUDA_VOID_ /* empty: return; from a void function */
#define cudaCheck(call) cudaCheckR(call, KCUDA_VOID_)
#define cudnnCheck(call) cudnnCheckR(call, KCUDA_VOID_)
#define cublasCheck(call) cublasCheckR(call, KCUDA_VOID_)
/* After every kernel launch: configuration errors show up here, not at the <<< >>>. */
#define launchCheckR(ret) cudaCheckR(cudaGetLastError(), ret)
#define launchCheck() cudaCheck(cudaGetLastError())

/* ---- launch geometry ---- */
#define KCUDA_THREADS 256
static inline unsigned kcuda_blocks(int64_t n) {
    int64_t b = (n + KCUDA_THREADS - 1) / KCUDA_THREADS;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32; /* grid-stride loops cover the rest */
    return (unsigned)b;
}
#define KCUDA_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Element i of x (kcuda_affine_v: the value v of element i), or where af is not NULL (a
 * deferred batch norm's coefficients f, s, b of C channels each) that element through it:
 * __fmaf_rn(x - f[c], s[c], b[c]), c = i / HW % C, the expression bn.cu writes a batch
 * norm's output with, so the same bits. */
/* The channel of element i: a 32-bit division where i fits (a 64-bit one is a call to a
 * software routine). */
__device__ static inline int64_t kcuda_channel(int64_t i, int C, int HW) {
    return (uint64_t)i >> 32 ? i / HW % C : (int64_t)((uint32_t)i / (uint32_t)HW % (uint32_t)C);
}
/* v through the coefficients of channel c (af not NULL). */
__device__ static inline float kcuda_affine_c(float v, const float *af, int C, int64_t c) {
    return __fmaf_rn(v - af[c], af[C + c], af[2 * C + c]);
}
__device__ static inline float kcuda_affine_v(float v, const float *af, int C, int HW, int64_t i) {
    return af ? kcuda_affine_c(v, af, C, kcuda_channel(i, C, HW)) : v;
}
__device__ static inline float kcuda_affine_at(const float *x, const float *af, int C, int HW, int64_t i) {
    return kcuda_affine_v(x[i], af, C, HW, i);
}

/* The 4 floats at p in one 16-byte load. p must be 16-byte aligned: a GPU faults on a
 * misaligned vector load, and the CUDA emulator stops with a message, so a test catches
 * a caller that checked alignment wrongly. */
__device__ static inline float4 kcuda_ld4(const float *p) {
#ifdef DARTSC_CUDA_EMU
    if ((uintptr_t)p & 15) {
        fprintf(stderr, "cuemu: misaligned 16-byte load at %p\n", (const void *)p);
        abort();
    }
#endif
    return *(const float4 *)p;
}

/* Sum of v over a block of KCUDA_THREADS threads in a fixed tree; every thread gets the
 * result. sh must hold KCUDA_THREADS doubles. Deterministic: the tree does not depend on
 * scheduling. */
__device__ static inline double kcuda_block_sum(double v, double *sh) {
    const int t = threadIdx.x;
    __syncthreads(); /* sh may still be read by a previous call */
    sh[t] = v;
    __syncthreads();
    for (int k = KCUDA_THREADS / 2; k > 0; k >>= 1) {
        if (t < k) sh[t] += sh[t + k];
        __syncthreads();
    }
    return sh[0];
}

/* Sum of v over one warp by a fixed shuffle tree; lane 0 gets the total (the other lanes
 * partial sums). Deterministic: the tree depends only on lane numbers. */
__device__ static inline double kcuda_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over a block of KCUDA_THREADS threads: warp trees, then the warps' totals in
 * warp order by thread 0, which alone gets the result. sh must hold KCUDA_THREADS / 32
 * doubles. Deterministic. One barrier instead of kcuda_block_sum's nine. */
__device__ static inline double kcuda_block_sum0(double v, double *sh) {
    v = kcuda_warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < KCUDA_THREADS / 32; w++) t += sh[w];
    return t;
}

/* ---- one-launch reductions ("last block finishes") ----
 * The opt-in alternative (DARTSC_CUDA_ONE_LAUNCH, kcuda_g.one_launch) to a reduction's
 * second kernel: every block writes its partials, then counts itself on an integer
 * counter; the last of the n blocks to count reads all partials and combines them in
 * the second kernel's fixed order (the same device code), so the results are the same
 * bits. Memory ordering: each thread fences its partial writes (__threadfence) before
 * the barrier after which thread 0 counts (release), thread 0 of the last block fences
 * after seeing n - 1 (acquire) and every thread of that block fences again after the
 * barrier that hands it the decision; the partials are then read with __ldcg (L2, not
 * the incoherent L1). No block may leave before counting. The last block puts the
 * counter back to 0, so the next launch on this lane (stream order) and every replay of
 * a recorded graph start from 0; the counters are per lane, because lanes run
 * concurrently. Integer atomics only: no float is added in a scheduling order. (The
 * pattern of CUDA's threadFenceReduction sample, fenced on both sides.) */
#ifndef __grid_constant__ /* the CUDA emulator (tests/cuemu): a plain C++ parameter */
#define __grid_constant__
#endif

/* Entries of each pointer array of a batched cuBLAS call (problems times samples); more
 * go in several calls. 96 KB per lane. */
#define KCUDA_PTR_CAP 4096
#define KCUDA_COUNT_CAP 16384 /* counters per lane (one per channel of a batch norm) */

/* Call from every thread of the block, after its partials are written (by any of its
 * threads). True in every thread of the last of n blocks to arrive at *cnt, which then
 * holds 0 again; false in the others, which must not read other blocks' partials. */
__device__ static inline bool kcuda_last_block(unsigned *cnt, unsigned n) {
    __shared__ bool last;
    __threadfence(); /* this thread's partials are visible device-wide before the count */
    __syncthreads(); /* every thread of the block has fenced before thread 0 counts */
    if (threadIdx.x == 0) {
        __threadfence(); /* release in the counting thread itself (cumulative: the block's
                            partials it synchronised with at the barrier come first) */
        last = atomicAdd(cnt, 1u) == n - 1;
        if (last) {
            __threadfence(); /* acquire: the other blocks' partials, counted before us */
            atomicExch(cnt, 0u); /* every block has counted: reset for the next launch */
        }
    }
    __syncthreads();
    const bool l = last;
    if (l) __threadfence();
    return l;
}

/* ---- library state (kernels/cuda/common.cu) ---- */
#define KCUDA_RED_BLOCKS 120 /* blocks of the first pass of a two-pass reduction */
/* Doubles of the per-block partials buffer that the multi-block reductions (batch norm
 * statistics, depthwise filter gradients) write in their first pass and read, in a
 * fixed order, in their second: 8 MB. */
#define KCUDA_RED_CAP ((int64_t)1 << 20)
/* Blocks a multi-block reduction aims for: a few per multiprocessor of an H100/H200
 * (132), so that a reduction over one tensor fills the chip. */
#define KCUDA_TARGET_BLOCKS 528
typedef struct kcuda_lane {
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    double *partials, *red;
    unsigned *count; /* KCUDA_COUNT_CAP counters of the one-launch reductions, 0 between launches */
    float **ptrs;    /* 3 * KCUDA_PTR_CAP: the batched cuBLAS calls' pointer arrays (conv.cu) */
} kcuda_lane;
typedef struct kcuda_lib {
    /* the current lane's (kcuda_set_lane): */
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    double *partials; /* KCUDA_MAX_WSUM * KCUDA_RED_BLOCKS doubles + KCUDA_MAX_WSUM results */
    double *red;      /* KCUDA_RED_CAP doubles: first-pass partials of the multi-block reductions */
    unsigned *count;  /* KCUDA_COUNT_CAP counters of the one-launch reductions */
    float **ptrs;     /* 3 * KCUDA_PTR_CAP device pointers: A, B and C arrays of cublasSgemmBatched */
    kcuda_lane lane[KCUDA_MAX_LANES]; /* every lane's, lane 0 kcuda_init's */
    int nlanes;
    int sms;          /* multiprocessors of the device */
    int dw_filter_planes; /* DARTSC_CUDA_DW_FILTER_PLANES set (not "0"): depthwise filter gradients by
                             planes staged in shared memory (conv.cu; not yet measured) */
    int dw_filter_u1;     /* DARTSC_CUDA_DW_FILTER_U1 set (not "0"): the blocked depthwise
                             filter gradient one output a thread at a time (conv.cu) */
    int own_1x1;      /* DARTSC_CUDA_OWN_1X1 set (not "0"): small 1x1 convolutions by conv.cu's own kernels
                         (the first ones were slower than cuBLAS on the H200, docs/BENCHMARKS.md;
                         rewritten in session 16, not yet measured) */
    int batch_cublas; /* DARTSC_CUDA_BATCH_CUBLAS set (not "0"): batched 1x1 convolutions on the
                         cuBLAS path as pointer-array GEMMs (conv.cu; not yet measured) */
    int one_launch;   /* DARTSC_CUDA_ONE_LAUNCH set (not "0"): reductions finished by their last
                         block (kcuda_last_block; not yet measured) */
    struct kcuda_ptr_chunk *rec; /* the recording's pointer tables, newest first (kcuda_record_begin) */
    int recording;
    long long ptr_fills; /* pw_ptrs_k launches (kcuda_ptr_fills) */
} kcuda_lib;
extern kcuda_lib kcuda_g;

/* Room for n pointers in the current recording's table: returns their device address and
 * sets *host to where the host writes them before kcuda_record_end uploads them; NULL
 * outside a recording or when no table could be allocated (the caller then fills the
 * lane's table by a kernel). common.cu. */
float **kcuda_rec_ptrs(int64_t n, float ***host);

/* First pass of a deterministic dot: partial[k * KCUDA_RED_BLOCKS + b] for vector k =
 * blockIdx.y; b = blockIdx.x. b NULL: sum of squares of a. Defined in common.cu. */
void kcuda_dot_partials(double *partials, const float *const *as, const float *b, int nvec, int64_t n,
                        cudaStream_t s);
/* The same with vector k read through aff[k] (NULL: as is): (a - f[c]) * s[c] + b[c] for
 * channel c = i / HW % C, aff[k] = f, s, b of C channels each (a deferred batch norm). */
void kcuda_dot_partials_affine(double *partials, const float *const *as, const float *const *aff, int C, int HW,
                               const float *b, int nvec, int64_t n, cudaStream_t s);
void kcuda_conv_shutdown(void);

#endif
