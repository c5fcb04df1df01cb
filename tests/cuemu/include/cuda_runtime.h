/* cuda_runtime.h — the CUDA emulator's stand-in for the CUDA runtime API and the device
 * built-ins, for the CUDA backend's sources compiled by the host's C++ compiler (C++17);
 * see docs/ARCHITECTURE.md "CUDA on the CPU" and tests/cuemu/runtime.cc.
 *
 * Only what dartsc's CUDA sources use is here, with the real API's names, types and
 * semantics as far as one CPU thread can give them: every call runs as it is issued
 * (stream order is issue order; no two kernels overlap), or, while a stream capture
 * records, is appended to the graph and runs when the graph is launched. A kernel runs
 * block by block; the threads of a block are fibers switched at __syncthreads and at warp
 * shuffles, so barriers and shuffles keep their meaning. The generator (gen.cmake)
 * rewrites `k<<<cfg>>>(args)` as `k | cuemu::cfg(cfg) | cuemu::args(args)` and
 * `extern __shared__ T s[];` as a pointer to the launch's dynamic shared memory. */
#ifndef DARTSC_CUEMU_CUDA_RUNTIME_H
#define DARTSC_CUEMU_CUDA_RUNTIME_H

#ifdef __cplusplus
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#define CUEMU_DV(v) = v
#else
#include <stddef.h>
#include <stdint.h>
#define CUEMU_DV(v)
#endif

/* ---- language ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static /* blocks run one at a time: one copy serves each block in turn */
#define __constant__ static
#define CUDART_VERSION 13000

#ifdef __cplusplus
extern "C" {
#endif

typedef struct uint3 {
    unsigned x, y, z;
} uint3;
/* CUDA's 16-byte vector (vector_types.h), loaded in one access where the address is
 * 16-byte aligned; here a plain struct with that alignment. */
typedef struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
} float4;
#ifdef __cplusplus
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
#endif
#ifdef __cplusplus
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
#endif

/* ---- errors ---- */
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901
} cudaError_t;

/* ---- opaque handles ---- */
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphNode_st *cudaGraphNode_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2
} cudaStreamCaptureStatus;
typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2
} cudaStreamCaptureMode;
typedef enum cudaGraphNodeType {
    cudaGraphNodeTypeKernel = 0,
    cudaGraphNodeTypeMemcpy = 1,
    cudaGraphNodeTypeMemset = 2,
    cudaGraphNodeTypeHost = 3,
    cudaGraphNodeTypeGraph = 4,
    cudaGraphNodeTypeEmpty = 5,
    cudaGraphNodeTypeWaitEvent = 6,
    cudaGraphNodeTypeEventRecord = 7
} cudaGraphNodeType;
typedef enum cudaDeviceAttr { cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaEventDefault 0x0
#define cudaEventDisableTiming 0x2
#define cudaHostAllocDefault 0x0
#define cudaGraphInstantiateFlagAutoFreeOnLaunch 0x1

typedef struct cudaDeviceProp {
    char name[256];
    int multiProcessorCount;
    int maxThreadsPerBlock;
    size_t sharedMemPerBlock;
    int warpSize;
    int major, minor;
} cudaDeviceProp;

/* ---- host API ---- */
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s CUEMU_DV(0));
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s CUEMU_DV(0));
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s CUEMU_DV(0));

cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags CUEMU_DV(0));
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode *mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st);

cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s CUEMU_DV(0));
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t *nodes, size_t *n);
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType *t);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags CUEMU_DV(0));
cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags CUEMU_DV(0));
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x);
cudaError_t cudaGraphDestroy(cudaGraph_t g);

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
/* cuda_runtime.h's typed overload */
template <class T> inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
/* ---- device built-ins ---- */
namespace cuemu {

struct thread_ctx {
    uint3 idx;
};
extern thread_ctx *cur;             /* the running thread of the running block */
extern uint3 block_idx;             /* the running block */
extern dim3 block_dim, grid_dim;    /* the running launch */
void syncthreads();                 /* yields until every live thread of the block is here */
void warp_exchange(const void *v, void *out, size_t bytes, int src_lane); /* a shuffle */
void *dyn_shared();                 /* the launch's dynamic shared memory */

} // namespace cuemu

#define threadIdx (cuemu::cur->idx)
#define blockIdx (cuemu::block_idx)
#define blockDim (cuemu::block_dim)
#define gridDim (cuemu::grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { cuemu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) {}
inline void __threadfence() {}
inline void __threadfence_block() {}
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline T __ldg(const T *p) { return *p; }
inline unsigned atomicAdd(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
inline unsigned atomicExch(unsigned *p, unsigned v) { unsigned o = *p; *p = v; return o; }
inline int atomicExch(int *p, int v) { int o = *p; *p = v; return o; }
/* the shuffles of a full warp (mask 0xffffffff: every lane of the block's warp that exists) */
template <class T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "shuffles of 4- and 8-byte values");
    T out;
    const int lane = (int)(threadIdx.x & 31u);
    cuemu::warp_exchange(&v, &out, sizeof v, (lane & ~(width - 1)) + (src & (width - 1)));
    return out;
}
template <class T> inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "shuffles of 4- and 8-byte values");
    T out;
    const int lane = (int)(threadIdx.x & 31u), in = lane & (width - 1);
    cuemu::warp_exchange(&v, &out, sizeof v, in + (int)delta < width ? lane + (int)delta : lane);
    return out;
}
template <class T> inline T __shfl_xor_sync(unsigned, T v, int m, int width = 32) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "shuffles of 4- and 8-byte values");
    T out;
    const int lane = (int)(threadIdx.x & 31u);
    cuemu::warp_exchange(&v, &out, sizeof v, (lane ^ m) < ((lane & ~(width - 1)) + width) ? lane ^ m : lane);
    return out;
}
/* IEEE round-to-nearest operations, never contracted (the emulator's sources are built
 * with -ffp-contract=off) */
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::max;
using std::min;

/* ---- kernel launches: k | cuemu::cfg(grid, block, shared, stream) | cuemu::args(...) ---- */
namespace cuemu {

struct launch_cfg {
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;
};
inline launch_cfg cfg(dim3 g, dim3 b, size_t shared = 0, cudaStream_t s = 0) { return launch_cfg{g, b, shared, s}; }

/* Runs body once per thread of every block of c, on stream c.stream (cuemu::enqueue);
 * kernel: the kernel's address, for the CUEMU_STATS report. */
void launch(const launch_cfg &c, std::function<void()> body, const void *kernel = nullptr);

template <class... P> struct bound_kernel {
    void (*k)(P...);
    launch_cfg c;
};
template <class... A> inline std::tuple<std::decay_t<A>...> args(A &&...a) {
    return std::tuple<std::decay_t<A>...>(std::forward<A>(a)...);
}
/* An argument converted to its parameter's type as a call would; an integer given for a
 * pointer is NULL (0 or NULL, which the launch's argument tuple turned into an integer). */
template <class P, class A> inline P convert_arg(const A &a) {
    if constexpr (std::is_pointer_v<P> && std::is_integral_v<A>) {
        return reinterpret_cast<P>(static_cast<intptr_t>(a));
    } else {
        P p = a;
        return p;
    }
}
template <class... P, class... A, size_t... I>
inline void launch_bound(const bound_kernel<P...> &b, std::tuple<A...> &t, std::index_sequence<I...>) {
    /* the arguments converted to the kernel's parameter types now, copied into the launch */
    std::tuple<std::decay_t<P>...> pt(convert_arg<std::decay_t<P>>(std::get<I>(t))...);
    void (*k)(P...) = b.k;
    launch(b.c, [k, pt]() { std::apply(k, pt); }, reinterpret_cast<const void *>(k));
}

} // namespace cuemu

template <class... P> inline cuemu::bound_kernel<P...> operator|(void (*k)(P...), cuemu::launch_cfg c) {
    return cuemu::bound_kernel<P...>{k, c};
}
template <class... P, class... A> inline void operator|(cuemu::bound_kernel<P...> b, std::tuple<A...> t) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    cuemu::launch_bound(b, t, std::index_sequence_for<A...>{});
}

#endif /* __cplusplus */

#endif
