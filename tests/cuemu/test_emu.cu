/* test_emu.cu — the CUDA emulator's own semantics (tests/cuemu/runtime.cc), on kernels
 * whose results are known exactly: barriers order shared-memory writes before reads across
 * threads, warp shuffles exchange the right lanes (down, xor, broadcast) and only within a
 * warp, dynamic shared memory is per launch, a captured graph runs nothing until launched
 * and then runs what was captured each time, launches a GPU refuses are refused, a block
 * whose threads cannot all meet at a barrier is reported instead of hanging, host
 * synchronisation inside a capture invalidates it (so does an allocation or a free unless
 * the thread is in relaxed capture mode), and copies outside an allocation fail.
 * Built only in the emulator's build (DARTSC_CUDA_EMU); a plain main, exit 0 = pass. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(c, ...)                                                              \
    do {                                                                           \
        if (!(c)) {                                                                \
            failures++;                                                            \
            fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #c);          \
            fprintf(stderr, __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                 \
        }                                                                          \
    } while (0)

/* out[b] = sum over the block of in[b * blockDim + t], by a shared-memory tree that is
 * only right when every write happens before the reads the barrier orders. */
__global__ static void tree_sum(const int *in, int *out) {
    __shared__ int sh[256];
    const int t = threadIdx.x;
    sh[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) sh[t] += sh[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = sh[0];
}

/* Reverses the block's values through shared memory: thread t reads what thread n-1-t
 * wrote, a write that comes after t's own in the fibers' order for t < n/2. */
__global__ static void reverse(int *v) {
    extern __shared__ int buf[];
    const int t = threadIdx.x, n = blockDim.x;
    buf[t] = v[t];
    __syncthreads();
    v[t] = buf[n - 1 - t];
}

__global__ static void shuffles(int *down, int *xr, int *bc, double *wsum) {
    const int t = threadIdx.x, lane = t & 31;
    down[t] = __shfl_down_sync(0xffffffffu, t * 10, 3); /* lane + 3, or its own past the warp's end */
    xr[t] = __shfl_xor_sync(0xffffffffu, t, 5);
    bc[t] = __shfl_sync(0xffffffffu, t * 7, 2); /* lane 2 of the same warp */
    double v = lane + 0.5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) wsum[t >> 5] = v;
}

/* A warp reduction by only the first warp while the others wait at a barrier after it. */
__global__ static void first_warp_only(int *out) {
    __shared__ int r;
    if (threadIdx.x < 32) {
        int v = threadIdx.x;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) r = v;
    }
    __syncthreads();
    out[threadIdx.x] = r;
}

__global__ static void divergent_barrier(int *out) {
    if (threadIdx.x < 16) __syncthreads(); /* the rest wait at the shuffle: never met */
    else out[0] = __shfl_sync(0xffffffffu, 1, 0);
}

__global__ static void early_exit_barrier(int *out) {
    if (threadIdx.x >= 8) return; /* exited threads do not count at a barrier (sm_70 and later) */
    __shared__ int s[8];
    s[threadIdx.x] = (int)threadIdx.x + 1;
    __syncthreads();
    out[threadIdx.x] = s[7 - threadIdx.x];
}

__global__ static void add_one(float *x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += 1.0f;
}

__global__ static void grid_index(int *out) {
    const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

int main(void) {
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "stream");

    { /* barriers */
        int h[512], *d, *o, r[2];
        for (int i = 0; i < 512; i++) h[i] = i * 3 - 100;
        cudaMalloc((void **)&d, sizeof h);
        cudaMalloc((void **)&o, sizeof r);
        cudaMemcpyAsync(d, h, sizeof h, cudaMemcpyHostToDevice, s);
        tree_sum<<<2, 256, 0, s>>>(d, o);
        CHECK(cudaGetLastError() == cudaSuccess, "launch");
        cudaMemcpyAsync(r, o, sizeof r, cudaMemcpyDeviceToHost, s);
        cudaStreamSynchronize(s);
        int want0 = 0, want1 = 0;
        for (int i = 0; i < 256; i++) want0 += h[i], want1 += h[256 + i];
        CHECK(r[0] == want0 && r[1] == want1, "tree sums %d %d, want %d %d", r[0], r[1], want0, want1);

        for (int i = 0; i < 100; i++) h[i] = i;
        cudaMemcpy(d, h, 100 * sizeof(int), cudaMemcpyHostToDevice);
        reverse<<<1, 100, 100 * sizeof(int), s>>>(d);
        cudaMemcpy(h, d, 100 * sizeof(int), cudaMemcpyDeviceToHost);
        int ok = 1;
        for (int i = 0; i < 100; i++) ok &= h[i] == 99 - i;
        CHECK(ok, "reverse through dynamic shared memory");
        cudaFree(d);
        cudaFree(o);
    }
    { /* shuffles, 80 threads: two full warps and one of 16 lanes */
        int *down, *xr, *bc, hd[80], hx[80], hb[80];
        double *ws, hw[3];
        cudaMalloc((void **)&down, sizeof hd);
        cudaMalloc((void **)&xr, sizeof hx);
        cudaMalloc((void **)&bc, sizeof hb);
        cudaMalloc((void **)&ws, sizeof hw);
        shuffles<<<1, 80, 0, s>>>(down, xr, bc, ws);
        CHECK(cudaGetLastError() == cudaSuccess, "launch");
        cudaMemcpy(hd, down, sizeof hd, cudaMemcpyDeviceToHost);
        cudaMemcpy(hx, xr, sizeof hx, cudaMemcpyDeviceToHost);
        cudaMemcpy(hb, bc, sizeof hb, cudaMemcpyDeviceToHost);
        cudaMemcpy(hw, ws, sizeof hw, cudaMemcpyDeviceToHost);
        int ok = 1;
        for (int t = 0; t < 64; t++) {
            const int lane = t & 31, w = t - lane;
            ok &= hd[t] == (lane + 3 < 32 ? (t + 3) * 10 : t * 10);
            ok &= hx[t] == w + (lane ^ 5);
            ok &= hb[t] == (w + 2) * 7;
        }
        CHECK(ok, "shuffles of full warps");
        double want = 0;
        for (int l = 0; l < 32; l++) want += l + 0.5;
        CHECK(hw[0] == want && hw[1] == want, "warp sums %g %g, want %g", hw[0], hw[1], want);
        for (int t = 64; t < 77; t++) ok &= hd[t] == (t + 3) * 10; /* lanes 0..12 of the short warp read 3 on */
        CHECK(ok, "shuffle down within the short warp");
        cudaFree(down), cudaFree(xr), cudaFree(bc), cudaFree(ws);
    }
    { /* one warp reduces while the rest of the block waits at the barrier after it */
        int *o, h[128];
        cudaMalloc((void **)&o, sizeof h);
        first_warp_only<<<1, 128, 0, s>>>(o);
        cudaMemcpy(h, o, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(cudaGetLastError() == cudaSuccess && h[0] == 496 && h[127] == 496, "first warp %d %d", h[0], h[127]);
        early_exit_barrier<<<1, 64, 0, s>>>(o);
        cudaMemcpy(h, o, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(cudaGetLastError() == cudaSuccess && h[0] == 8 && h[7] == 1, "early exit %d %d", h[0], h[7]);
        cudaFree(o);
    }
    { /* grids and blocks in three dimensions */
        int *o, h[2 * 3 * 2 * 4 * 2 * 2];
        cudaMalloc((void **)&o, sizeof h);
        grid_index<<<dim3(2, 3, 2), dim3(4, 2, 2), 0, s>>>(o);
        cudaMemcpy(h, o, sizeof h, cudaMemcpyDeviceToHost);
        int ok = 1;
        for (int b = 0; b < 12; b++)
            for (int t = 0; t < 16; t++) ok &= h[b * 16 + t] == b * 1000 + t;
        CHECK(ok, "3-D indices");
        cudaFree(o);
    }
    { /* errors a GPU reports */
        int *o;
        cudaMalloc((void **)&o, 64);
        CHECK(cudaGetLastError() == cudaSuccess, "clean before");
        add_one<<<1, 2048, 0, s>>>((float *)o, 1);
        CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads a block must be refused");
        CHECK(cudaGetLastError() == cudaSuccess, "the error is cleared once read");
        reverse<<<1, 32, 64 * 1024, s>>>(o);
        CHECK(cudaGetLastError() == cudaErrorInvalidValue, "64 KB of dynamic shared memory must be refused");
        divergent_barrier<<<1, 32, 0, s>>>(o);
        CHECK(cudaGetLastError() == cudaErrorLaunchFailure, "a barrier half the block never reaches is a deadlock");
        float h[4] = {0};
        CHECK(cudaMemcpy(o, h, 128, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "copy past the allocation");
        (void)cudaGetLastError();
        cudaFree(o);
    }
    { /* capture: nothing runs while recording; each launch of the graph runs it all */
        float *x, h[10];
        cudaMalloc((void **)&x, sizeof h);
        cudaMemsetAsync(x, 0, sizeof h, s);
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
        cudaStreamCaptureStatus st;
        cudaStreamIsCapturing(s, &st);
        CHECK(st == cudaStreamCaptureStatusActive, "capturing");
        add_one<<<1, 10, 0, s>>>(x, 10);
        add_one<<<1, 10, 0, s>>>(x, 10);
        CHECK(cudaStreamEndCapture(s, &g) == cudaSuccess, "end");
        cudaMemcpy(h, x, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(h[0] == 0.0f, "a capture runs nothing (%g)", h[0]);
        CHECK(cudaGraphInstantiateWithFlags(&ge, g, 0) == cudaSuccess, "instantiate");
        cudaGraphLaunch(ge, s);
        cudaGraphLaunch(ge, s);
        cudaMemcpy(h, x, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(h[0] == 4.0f && h[9] == 4.0f, "two replays of two launches: %g", h[0]);
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);

        CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
        add_one<<<1, 10, 0, s>>>(x, 10);
        CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported, "a synchronisation while recording");
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && !g, "invalidates the capture");
        (void)cudaGetLastError();

        /* an allocation while recording: refused, and the capture with it, unless the
           thread is in relaxed mode (it then stays out of the graph) */
        float *y = NULL;
        CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
        CHECK(cudaMalloc((void **)&y, 4) == cudaErrorStreamCaptureUnsupported && !y, "cudaMalloc while recording");
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && !g, "invalidates the capture");
        (void)cudaGetLastError();
        CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
        cudaStreamCaptureMode m = cudaStreamCaptureModeRelaxed;
        CHECK(cudaThreadExchangeStreamCaptureMode(&m) == cudaSuccess && m == cudaStreamCaptureModeGlobal, "exchange");
        CHECK(cudaMalloc((void **)&y, 4) == cudaSuccess && y, "cudaMalloc in relaxed mode while recording");
        CHECK(cudaThreadExchangeStreamCaptureMode(&m) == cudaSuccess && m == cudaStreamCaptureModeRelaxed, "restore");
        CHECK(cudaFree(y) == cudaErrorStreamCaptureUnsupported, "cudaFree while recording, not relaxed");
        CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && !g, "invalidates the capture");
        (void)cudaGetLastError();
        CHECK(cudaFree(y) == cudaSuccess, "cudaFree after the capture");
        cudaFree(x);
    }
    { /* fresh device memory reads as NaN, not zeros */
        float *x, h;
        cudaMalloc((void **)&x, sizeof h);
        cudaMemcpy(&h, x, sizeof h, cudaMemcpyDeviceToHost);
        CHECK(h != h, "uninitialised device memory is NaN (%g)", h);
        cudaFree(x);
    }
    cudaStreamDestroy(s);
    if (failures) fprintf(stderr, "test_emu: %d failures\n", failures);
    else printf("test_emu: all passed\n");
    return failures != 0;
}
