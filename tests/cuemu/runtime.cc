/* runtime.cc — the CUDA emulator's runtime: device memory, streams, events, stream capture
 * and graphs, and kernel launches run block by block with each thread on a fiber.
 *
 * Execution model (tests/cuemu/include/cuda_runtime.h): one host thread does everything,
 * as it is issued. A launch runs its blocks in order (x fastest, then y, then z); within a
 * block every thread is a fiber run until it finishes or waits: at __syncthreads (released
 * when every live thread of the block waits there) or at a warp shuffle (released when
 * every live lane of its warp waits at one; the values go through a double buffer, so a
 * lane that runs ahead to the next shuffle cannot overwrite what a slower lane still has
 * to read). A block whose threads wait at barriers that can never all be reached (a
 * __syncthreads some live threads skip, a shuffle beside a barrier) is a deadlock on a
 * GPU; here it stops the launch and records cudaErrorLaunchFailure naming the kernel's
 * launch, as does a configuration a GPU would refuse (more than 1024 threads a block,
 * more than 48 KB of dynamic shared memory, an empty or oversized grid).
 *
 * Checks a GPU would not make but that find the bugs it would hide: device memory from
 * cudaMalloc and dynamic shared memory come filled with 0xff bytes (NaN as floats), so a
 * read of memory nothing wrote shows in the results; copies and memsets must lie inside
 * one allocation; a host synchronisation (cudaStreamSynchronize, cudaMemcpy, ...) while a
 * capture records invalidates the capture as it does on a GPU. Built with AddressSanitizer
 * (DARTSC_SANITIZE), every kernel's out-of-bounds access to device memory is reported like
 * compute-sanitizer's memcheck would. */
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuemu.h"

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif
#ifdef CUEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    double t; /* host seconds at the last record outside a capture */
};
struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};

namespace cuemu {

/* ---- errors ---- */
static cudaError_t g_last = cudaSuccess; /* cudaGetLastError's */
static std::recursive_mutex g_mu;

void set_error(cudaError_t err, const char *what) {
    fprintf(stderr, "cuemu: %s (%s)\n", what, cudaGetErrorString(err));
    if (g_last == cudaSuccess) g_last = err;
}

/* ---- device memory ---- */
static std::map<uintptr_t, size_t> g_allocs; /* device allocations: start -> bytes */

size_t device_extent(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return 0;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second ? it->second : 0;
}

static int fill_byte() {
    const char *v = getenv("CUEMU_FILL");
    return v && *v ? (int)strtol(v, NULL, 0) & 0xff : 0xff;
}

/* ---- streams and capture ---- */
static CUgraph_st *g_cap;      /* the graph a capture records into, or NULL */
static cudaStream_t g_cap_origin;
static bool g_cap_broken;      /* a host synchronisation happened while recording */

void enqueue(cudaStream_t s, std::function<void()> fn) {
    (void)s;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (g_cap) g_cap->ops.push_back(std::move(fn));
    else fn();
}

/* A call that waits for the device: legal only when nothing records. */
static cudaError_t host_sync(const char *what) {
    if (!g_cap) return cudaSuccess;
    g_cap_broken = true;
    std::string m = std::string(what) + " while a stream capture records";
    set_error(cudaErrorStreamCaptureUnsupported, m.c_str());
    return cudaErrorStreamCaptureUnsupported;
}

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* ---- fibers ---- */
thread_ctx *cur;
uint3 block_idx;
dim3 block_dim, grid_dim;

enum { F_NEW, F_READY, F_BAR, F_WARP, F_DONE };
struct fiber {
    thread_ctx ctx;
    int state;
    unsigned gen;  /* shuffles done */
    char *stack;
    void *sp;      /* saved stack pointer (x86-64) */
#if !defined(__x86_64__)
    ucontext_t uc;
#endif
#ifdef CUEMU_ASAN
    void *fake;
#endif
};

#ifdef CUEMU_ASAN
static const size_t STACK_BYTES = (size_t)512 << 10;
#else
static const size_t STACK_BYTES = (size_t)128 << 10;
#endif
static const size_t GUARD_BYTES = 4096;

static std::vector<fiber> g_f;           /* the running block's threads */
static std::vector<char *> g_stacks;     /* free stacks (usable part, above the guard page) */
static const std::function<void()> *g_body;
static fiber *g_run;
static std::vector<unsigned char> g_dyn; /* dynamic shared memory */
static std::vector<uint64_t> g_xch;      /* shuffle buffers: [2][warps][32] */
static size_t g_warps;
#if defined(__x86_64__)
static void *g_sched_sp;
#else
static ucontext_t g_sched_uc;
#endif
#ifdef CUEMU_ASAN
static const void *g_sched_bottom;
static size_t g_sched_size;
#endif

void *dyn_shared() { return g_dyn.data(); }

static char *get_stack() {
    if (!g_stacks.empty()) {
        char *s = g_stacks.back();
        g_stacks.pop_back();
        return s;
    }
    void *m = mmap(NULL, STACK_BYTES + GUARD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "cuemu: out of memory for thread stacks\n");
        abort();
    }
    mprotect(m, GUARD_BYTES, PROT_NONE); /* a stack overflow faults instead of corrupting */
    return (char *)m + GUARD_BYTES;
}

#if defined(__x86_64__)
/* cuemu_swap(save, to): saves the callee-saved registers on this stack and its pointer in
 * *save, then continues on the stack `to` (System V x86-64). */
extern "C" void cuemu_swap(void **save, void *to);
asm(".text\n"
    ".globl cuemu_swap\n"
    ".type cuemu_swap,@function\n"
    "cuemu_swap:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size cuemu_swap,.-cuemu_swap\n"
    ".section .note.GNU-stack,\"\",@progbits\n"
    ".text\n");
#endif

static void fiber_main();

/* From the scheduler into fiber f, until it waits or finishes. */
static void resume(fiber &f) {
    g_run = &f;
    cur = &f.ctx;
    if (f.state == F_NEW) {
        f.stack = get_stack();
#if defined(__x86_64__)
        uintptr_t top = ((uintptr_t)f.stack + STACK_BYTES) & ~(uintptr_t)15;
        void **sp = (void **)top;
        *--sp = NULL;                    /* fiber_main's return address: never used */
        *--sp = (void *)&fiber_main;     /* where cuemu_swap's ret lands */
        for (int i = 0; i < 6; i++) *--sp = NULL; /* rbp rbx r12..r15 */
        f.sp = sp;
#else
        getcontext(&f.uc);
        f.uc.uc_stack.ss_sp = f.stack;
        f.uc.uc_stack.ss_size = STACK_BYTES;
        f.uc.uc_link = NULL;
        makecontext(&f.uc, fiber_main, 0);
#endif
    }
#ifdef CUEMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f.stack, STACK_BYTES);
#endif
#if defined(__x86_64__)
    cuemu_swap(&g_sched_sp, f.sp);
#else
    swapcontext(&g_sched_uc, &f.uc);
#endif
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    cur = NULL;
    g_run = NULL;
    if (f.state == F_DONE) {
        g_stacks.push_back(f.stack);
        f.stack = NULL;
    }
}

/* From the running fiber back to the scheduler, in state st (F_DONE: for good). */
static void yield(int st) {
    fiber *f = g_run;
    f->state = st;
#ifdef CUEMU_ASAN
    __sanitizer_start_switch_fiber(st == F_DONE ? NULL : &f->fake, g_sched_bottom, g_sched_size);
#endif
#if defined(__x86_64__)
    cuemu_swap(&f->sp, g_sched_sp);
#else
    swapcontext(&f->uc, &g_sched_uc);
#endif
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake, &g_sched_bottom, &g_sched_size);
#endif
    g_run = f;
    cur = &f->ctx;
}

static void fiber_main() {
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &g_sched_bottom, &g_sched_size);
#endif
    (*g_body)();
    yield(F_DONE);
    abort(); /* a finished fiber is never resumed */
}

void syncthreads() {
    if (!g_run) return; /* outside a kernel */
    yield(F_BAR);
}

void warp_exchange(const void *v, void *out, size_t bytes, int src_lane) {
    fiber *f = g_run;
    const size_t lin = (size_t)(f - g_f.data()), w = lin / 32, lane = lin % 32;
    uint64_t *buf = &g_xch[((f->gen & 1) * g_warps + w) * 32];
    memcpy(&buf[lane], v, bytes);
    f->gen++;
    yield(F_WARP);
    const size_t src = w * 32 + (size_t)(src_lane & 31);
    if (src < g_f.size() && src_lane >= 0 && src_lane < 32) memcpy(out, &buf[src & 31], bytes);
    else memcpy(out, v, bytes);
}

/* Runs one block to its end; false on a deadlock (the message names it). */
static bool run_block(const char **why) {
    const size_t n = g_f.size();
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (g_f[i].state == F_NEW || g_f[i].state == F_READY) resume(g_f[i]);
        /* every thread now waits or is done: release what can go on */
        bool released = false;
        size_t alive = 0, at_bar = 0;
        for (size_t w = 0; w < g_warps; w++) {
            size_t lo = w * 32, hi = std::min(n, lo + 32), live = 0, waiting = 0;
            for (size_t i = lo; i < hi; i++) {
                if (g_f[i].state == F_DONE) continue;
                live++;
                if (g_f[i].state == F_WARP) waiting++;
            }
            if (live && waiting == live) {
                for (size_t i = lo; i < hi; i++) {
                    if (g_f[i].state == F_DONE) { /* an exited lane's slot reads as NaN bytes */
                        uint64_t *b = &g_xch[((size_t)((g_f[lo].gen - 1) & 1) * g_warps + w) * 32];
                        memset(&b[i - lo], 0xff, sizeof b[0]);
                    } else {
                        g_f[i].state = F_READY;
                    }
                }
                released = true;
            }
        }
        if (released) continue;
        for (size_t i = 0; i < n; i++) {
            if (g_f[i].state == F_DONE) continue;
            alive++;
            if (g_f[i].state == F_BAR) at_bar++;
        }
        if (!alive) return true;
        if (at_bar == alive) {
            for (size_t i = 0; i < n; i++)
                if (g_f[i].state == F_BAR) g_f[i].state = F_READY;
            continue;
        }
        *why = at_bar ? "__syncthreads not reached by every live thread of a block (some wait at a warp shuffle)"
                      : "a warp shuffle not reached by every live lane of its warp";
        return false;
    }
}

static void abandon_block() {
    for (auto &f : g_f) {
        if (!f.stack) continue;
#ifdef CUEMU_ASAN
        __asan_unpoison_memory_region(f.stack, STACK_BYTES);
#endif
        g_stacks.push_back(f.stack);
        f.stack = NULL;
    }
}

static void run_grid(const launch_cfg &c, const std::function<void()> &body) {
    const size_t nt = (size_t)c.block.x * c.block.y * c.block.z;
    grid_dim = c.grid;
    block_dim = c.block;
    g_body = &body;
    g_warps = (nt + 31) / 32;
    g_xch.assign(2 * g_warps * 32, 0);
    g_dyn.assign(c.shared ? c.shared : 1, (unsigned char)0xff);
    for (unsigned bz = 0; bz < c.grid.z; bz++)
        for (unsigned by = 0; by < c.grid.y; by++)
            for (unsigned bx = 0; bx < c.grid.x; bx++) {
                block_idx = uint3{bx, by, bz};
                g_f.assign(nt, fiber());
                size_t i = 0;
                for (unsigned tz = 0; tz < c.block.z; tz++)
                    for (unsigned ty = 0; ty < c.block.y; ty++)
                        for (unsigned tx = 0; tx < c.block.x; tx++, i++) {
                            g_f[i].ctx.idx = uint3{tx, ty, tz};
                            g_f[i].state = F_NEW;
                        }
                if (c.shared) std::fill(g_dyn.begin(), g_dyn.end(), (unsigned char)0xff);
                const char *why = NULL;
                if (!run_block(&why)) {
                    abandon_block();
                    char m[256];
                    snprintf(m, sizeof m, "kernel deadlock in block (%u,%u,%u) of grid (%u,%u,%u) x block (%u,%u,%u): %s",
                             bx, by, bz, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, why);
                    set_error(cudaErrorLaunchFailure, m);
                    g_body = NULL;
                    return;
                }
            }
    g_body = NULL;
}

void launch(const launch_cfg &c, std::function<void()> body) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    const unsigned long long nt = (unsigned long long)c.block.x * c.block.y * c.block.z;
    char m[200];
    if (!nt || nt > 1024 || c.block.z > 64 || !c.grid.x || !c.grid.y || !c.grid.z || c.grid.x > 0x7fffffffu ||
        c.grid.y > 65535 || c.grid.z > 65535) {
        snprintf(m, sizeof m, "launch of grid (%u,%u,%u) x block (%u,%u,%u) refused", c.grid.x, c.grid.y, c.grid.z,
                 c.block.x, c.block.y, c.block.z);
        set_error(cudaErrorInvalidConfiguration, m);
        return;
    }
    if (c.shared > 48 * 1024) {
        snprintf(m, sizeof m, "launch asking for %zu bytes of dynamic shared memory (over 48 KB) refused", c.shared);
        set_error(cudaErrorInvalidValue, m);
        return;
    }
    enqueue(c.stream, [c, body]() { run_grid(c, body); });
}

} // namespace cuemu

using namespace cuemu;

/* ---- the API ---- */
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    }
    return "unknown error";
}
const char *cudaGetErrorName(cudaError_t e) { return cudaGetErrorString(e); }
cudaError_t cudaGetLastError(void) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev) {
    if (dev != 0) return cudaErrorInvalidValue;
    switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = 132; return cudaSuccess; /* an H200's */
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    }
    return cudaErrorInvalidValue;
}
cudaError_t cudaDeviceSynchronize(void) { return host_sync("cudaDeviceSynchronize"); }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    *p = NULL;
    void *m = malloc(bytes ? bytes : 1);
    if (!m) return cudaErrorMemoryAllocation;
    memset(m, fill_byte(), bytes);
    g_allocs[(uintptr_t)m] = bytes;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) {
        set_error(cudaErrorInvalidDevicePointer, "cudaFree of a pointer cudaMalloc did not return");
        return cudaErrorInvalidDevicePointer;
    }
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    (void)flags;
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, fill_byte(), bytes);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

/* The device side of a copy must lie inside one allocation. */
static cudaError_t check_range(const void *p, size_t bytes, bool device, const char *what) {
    if (!device || !bytes || device_extent(p, bytes)) return cudaSuccess;
    std::string m = std::string(what) + ": a device range outside every cudaMalloc allocation";
    set_error(cudaErrorInvalidValue, m.c_str());
    return cudaErrorInvalidValue;
}
static cudaError_t copy_checks(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, const char *what) {
    const bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    const bool sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    cudaError_t e = check_range(dst, bytes, dd, what);
    return e != cudaSuccess ? e : check_range(src, bytes, sd, what);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, cudaStream_t s) {
    cudaError_t e = copy_checks(dst, src, bytes, k, "cudaMemcpyAsync");
    if (e != cudaSuccess) return e;
    enqueue(s, [dst, src, bytes]() { memmove(dst, src, bytes); });
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k) {
    cudaError_t e = host_sync("cudaMemcpy");
    if (e != cudaSuccess) return e;
    return cudaMemcpyAsync(dst, src, bytes, k, 0);
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s) {
    if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
    if (height) {
        cudaError_t e = copy_checks(dst, src, 0, k, "cudaMemcpy2DAsync");
        const bool dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
        const bool sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
        if (e == cudaSuccess) e = check_range(dst, dpitch * (height - 1) + width, dd, "cudaMemcpy2DAsync");
        if (e == cudaSuccess) e = check_range(src, spitch * (height - 1) + width, sd, "cudaMemcpy2DAsync");
        if (e != cudaSuccess) return e;
    }
    enqueue(s, [=]() {
        for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
    cudaError_t e = check_range(p, bytes, true, "cudaMemsetAsync");
    if (e != cudaSuccess) return e;
    enqueue(s, [p, v, bytes]() { memset(p, v, bytes); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    cudaError_t e = host_sync("cudaMemset");
    return e != cudaSuccess ? e : cudaMemsetAsync(p, v, bytes, 0);
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new CUstream_st{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    return host_sync("cudaStreamSynchronize");
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)s, (void)flags;
    return e ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    (void)mode;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (!s) return cudaErrorStreamCaptureUnsupported; /* the legacy stream cannot be captured */
    if (g_cap) return cudaErrorStreamCaptureUnsupported;
    g_cap = new CUgraph_st;
    g_cap_origin = s;
    g_cap_broken = false;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    *g = NULL;
    if (!g_cap || s != g_cap_origin) return cudaErrorInvalidValue;
    CUgraph_st *c = g_cap;
    g_cap = NULL;
    if (g_cap_broken) {
        delete c;
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = c;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
    (void)s;
    *st = g_cap ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    *e = new CUevent_st{0.0};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return cudaErrorInvalidResourceHandle;
    enqueue(s, [e]() { e->t = now_s(); });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return cudaErrorInvalidResourceHandle;
    return host_sync("cudaEventSynchronize");
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b) return cudaErrorInvalidResourceHandle;
    *ms = (float)((b->t - a->t) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags) {
    (void)flags;
    if (!g) return cudaErrorInvalidValue;
    *x = new CUgraphExec_st{g->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s) {
    if (!x) return cudaErrorInvalidValue;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (g_cap) { /* a graph launched into a capture becomes part of it */
        for (auto &op : x->ops) g_cap->ops.push_back(op);
        return cudaSuccess;
    }
    (void)s;
    for (auto &op : x->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
    delete x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
