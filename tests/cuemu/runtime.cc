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
 * capture records invalidates the capture as it does on a GPU, and so does a cudaMalloc or
 * cudaFree unless the capture or the calling thread is in relaxed capture mode
 * (cudaThreadExchangeStreamCaptureMode). Built with AddressSanitizer
 * (DARTSC_SANITIZE), every kernel's out-of-bounds access to device memory is reported like
 * compute-sanitizer's memcheck would. */
#include <dlfcn.h>
#include <pthread.h>
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
struct CUgraphNode_st {
    cudaGraphNodeType kind; /* kernel (launches, cuBLAS and cuDNN calls), memcpy or memset */
    std::function<void()> fn;
};
struct CUgraph_st {
    std::vector<CUgraphNode_st> ops;
};
struct CUgraphExec_st {
    std::vector<CUgraphNode_st> ops;
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

/* The emulated device's memory: CUEMU_DEVICE_MB (default 81559, an H100's 79.6 GiB), of
 * which cudaMalloc hands out at most that much at once (cudaErrorMemoryAllocation past it,
 * as a GPU's out-of-memory; nothing is reserved on the host until it is allocated) and
 * cudaMemGetInfo reports what is left. */
static size_t g_live = 0; /* bytes cudaMalloc holds */
static size_t device_bytes() {
    const char *v = getenv("CUEMU_DEVICE_MB");
    const unsigned long long mb = v && *v ? strtoull(v, NULL, 10) : 81559ull;
    return (size_t)mb << 20;
}

static int fill_byte() {
    const char *v = getenv("CUEMU_FILL");
    return v && *v ? (int)strtol(v, NULL, 0) & 0xff : 0xff;
}

/* ---- streams and capture ---- */
static CUgraph_st *g_cap;      /* the graph a capture records into, or NULL */
static cudaStream_t g_cap_origin;
static bool g_cap_broken;      /* a host synchronisation happened while recording */
static cudaStreamCaptureMode g_cap_mode;               /* the capture's (cudaStreamBeginCapture) */
static thread_local cudaStreamCaptureMode t_cap_mode; /* the thread's (cudaThreadExchangeStreamCaptureMode) */

static void enqueue_node(cudaStream_t s, std::function<void()> fn, cudaGraphNodeType kind) {
    (void)s;
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (g_cap) g_cap->ops.push_back(CUgraphNode_st{kind, std::move(fn)});
    else fn();
}
void enqueue(cudaStream_t s, std::function<void()> fn) { enqueue_node(s, std::move(fn), cudaGraphNodeTypeKernel); }

/* A call that waits for the device: legal only when nothing records. */
static cudaError_t host_sync(const char *what) {
    if (!g_cap) return cudaSuccess;
    g_cap_broken = true;
    std::string m = std::string(what) + " while a stream capture records";
    set_error(cudaErrorStreamCaptureUnsupported, m.c_str());
    return cudaErrorStreamCaptureUnsupported;
}

/* A potentially unsafe call (an allocation or a free, not ordered with the captured work):
 * as CUDA, it invalidates a capture unless the capture or the calling thread is relaxed. */
static cudaError_t unsafe_call(const char *what) {
    if (!g_cap || g_cap_mode == cudaStreamCaptureModeRelaxed || t_cap_mode == cudaStreamCaptureModeRelaxed)
        return cudaSuccess;
    g_cap_broken = true;
    std::string m = std::string(what) + " while a stream capture records (not in relaxed capture mode)";
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

/* The running block. Threads run in rounds: the scheduler switches to the first fiber of
 * g_ready, and each fiber, when it waits or ends, switches straight to the next one (one
 * stack switch per thread and barrier, not two); the last switches back to the scheduler,
 * which then releases the barrier. Counters kept as threads change state replace scans:
 * a warp whose live lanes all wait at a shuffle is released (appended to this round) by
 * the lane that completes it, arriving or exiting. */
static std::vector<fiber> g_f;           /* the block's threads */
static std::vector<int> g_ready;         /* this round's threads, in order */
static size_t g_pos;                     /* the next of g_ready to run */
static int g_alive, g_at_bar;            /* threads not done; threads waiting at __syncthreads */
static std::vector<int> g_wlive, g_wwait; /* per warp: lanes not done; lanes waiting at a shuffle */
static std::vector<char *> g_stacks;     /* free stacks (usable part, above the guard page) */
static char *g_dead;                     /* the stack of a thread that just ended: freed once left */
static const std::function<void()> *g_body;
static fiber *g_run;
static std::vector<unsigned char> g_dyn; /* dynamic shared memory */
static std::vector<uint64_t> g_xch;      /* shuffle buffers: [2][warps][32] */
static size_t g_warps;
static void *g_sched_sp;
#if !defined(__x86_64__)
static ucontext_t g_sched_uc;
#endif
#ifdef CUEMU_ASAN
static const void *g_sched_bottom; /* the scheduler's stack (the thread's own) */
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

/* Gives a new thread its stack and first frame. */
static void prepare(fiber &f) {
    f.stack = get_stack();
#if defined(__x86_64__)
    /* the tops of the stacks staggered over 4 KB: stacks a fixed 132 KB apart would all map
       their hot top lines to the same cache sets */
    static unsigned stagger;
    uintptr_t top = ((uintptr_t)f.stack + STACK_BYTES - (stagger++ % 64) * 64) & ~(uintptr_t)15;
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

/* After landing on a stack: the stack of a thread that ended just before goes back to the pool. */
#ifdef CUEMU_ASAN
static char *g_dead_lo; /* the deepest frame the ended thread left live (still poisoned) */
#endif
static void landed() {
    if (g_dead) {
#ifdef CUEMU_ASAN
        /* the frames it never returned from (fiber_main, yield, switch_next) keep their
           redzones poisoned; the next thread on this stack would trip over them */
        if (g_dead_lo >= g_dead && g_dead_lo < g_dead + STACK_BYTES)
            __asan_unpoison_memory_region(g_dead_lo, (size_t)(g_dead + STACK_BYTES - g_dead_lo));
        else __asan_unpoison_memory_region(g_dead, STACK_BYTES);
#endif
        g_stacks.push_back(g_dead);
        g_dead = NULL;
    }
}

/* Leaves the current context (a fiber, or the scheduler when from is NULL) for the next
 * thread of this round, or for the scheduler when the round is over; returns when the
 * context is resumed. A fiber that ended (state F_DONE) is never resumed. */
static void switch_next(fiber *from) {
    fiber *to = NULL;
    if (g_pos < g_ready.size()) {
        to = &g_f[(size_t)g_ready[g_pos++]];
        if (to->state == F_NEW) prepare(*to);
        to->state = F_READY;
    }
    void *dummy;
    void **save = from ? (from->state == F_DONE ? &dummy : &from->sp) : &g_sched_sp;
    void *target = to ? to->sp : g_sched_sp;
#ifdef CUEMU_ASAN
    void **fake = from && from->state != F_DONE ? &from->fake : NULL;
    void *sched_fake = NULL;
    if (!from) fake = &sched_fake;
    if (to) __sanitizer_start_switch_fiber(fake, to->stack, STACK_BYTES);
    else __sanitizer_start_switch_fiber(fake, g_sched_bottom, g_sched_size);
#endif
    g_run = to;
    cur = to ? &to->ctx : NULL;
#if defined(__x86_64__)
    cuemu_swap(save, target);
    (void)dummy;
#else
    (void)save, (void)target, (void)dummy;
    ucontext_t dead_uc;
    ucontext_t *from_uc = from ? (from->state == F_DONE ? &dead_uc : &from->uc) : &g_sched_uc;
    swapcontext(from_uc, to ? &to->uc : &g_sched_uc);
#endif
    /* resumed: g_run and cur were set by whoever switched here */
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(from ? from->fake : sched_fake, NULL, NULL);
#endif
    landed();
}

static void release_warp(size_t w) {
    const size_t lo = w * 32, hi = std::min(g_f.size(), lo + 32);
    for (size_t i = lo; i < hi; i++) {
        if (g_f[i].state == F_WARP) g_ready.push_back((int)i);
    }
    g_wwait[w] = 0;
}

/* The running thread waits (F_BAR, F_WARP) or ends (F_DONE). */
static void yield(int st) {
    fiber *f = g_run;
    const size_t i = (size_t)(f - g_f.data()), w = i / 32;
    f->state = st;
    if (st == F_BAR) {
        g_at_bar++;
    } else if (st == F_WARP) {
        if (++g_wwait[w] == g_wlive[w]) release_warp(w);
    } else {
        g_alive--;
        g_wlive[w]--;
        /* an exited lane's shuffle slots read as NaN bytes */
        memset(&g_xch[(0 * g_warps + w) * 32 + i % 32], 0xff, sizeof g_xch[0]);
        memset(&g_xch[(1 * g_warps + w) * 32 + i % 32], 0xff, sizeof g_xch[0]);
        if (g_wwait[w] && g_wwait[w] == g_wlive[w]) release_warp(w);
        g_dead = f->stack; /* still under our feet: freed by whoever runs next */
#ifdef CUEMU_ASAN
        g_dead_lo = (char *)__builtin_frame_address(0) - 4096;
#endif
        f->stack = NULL;
    }
    switch_next(f);
}

static void fiber_main() {
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    landed();
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
    uint64_t mine = 0;
    if (bytes == 8) memcpy(&mine, v, 8); /* fixed sizes: inlined moves, not library calls */
    else memcpy(&mine, v, 4);
    buf[lane] = mine;
    f->gen++;
    yield(F_WARP);
    const size_t src = w * 32 + (size_t)(src_lane & 31);
    const uint64_t got = src < g_f.size() && src_lane >= 0 && src_lane < 32 ? buf[src & 31] : mine;
    if (bytes == 8) memcpy(out, &got, 8);
    else memcpy(out, &got, 4);
}

/* Runs one block to its end; false on a deadlock (the message names it). */
static bool run_block(const char **why) {
    const size_t n = g_f.size();
    g_ready.resize(n);
    for (size_t i = 0; i < n; i++) g_ready[i] = (int)i;
    g_alive = (int)n;
    g_at_bar = 0;
    for (size_t w = 0; w < g_warps; w++) {
        g_wlive[w] = (int)std::min<size_t>(32, n - w * 32);
        g_wwait[w] = 0;
    }
    for (;;) {
        g_pos = 0;
        switch_next(NULL); /* the round: every ready thread, and warps released during it */
        g_ready.clear();
        if (!g_alive) return true;
        if (g_at_bar == g_alive) {
            for (size_t i = 0; i < n; i++)
                if (g_f[i].state == F_BAR) g_ready.push_back((int)i);
            g_at_bar = 0;
            continue;
        }
        *why = g_at_bar ? "__syncthreads not reached by every live thread of a block (some wait at a warp shuffle)"
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
    g_wlive.assign(g_warps, 0);
    g_wwait.assign(g_warps, 0);
    g_dyn.resize(c.shared ? c.shared : 1); /* filled with 0xff for each block below */
#ifdef CUEMU_ASAN
    if (!g_sched_bottom) { /* this thread's own stack, where the scheduler runs */
        pthread_attr_t a;
        void *lo = NULL;
        size_t sz = 0;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            pthread_attr_getstack(&a, &lo, &sz);
            pthread_attr_destroy(&a);
        }
        g_sched_bottom = lo;
        g_sched_size = sz;
    }
#endif
    g_f.resize(nt);
    for (unsigned bz = 0; bz < c.grid.z; bz++)
        for (unsigned by = 0; by < c.grid.y; by++)
            for (unsigned bx = 0; bx < c.grid.x; bx++) {
                block_idx = uint3{bx, by, bz};
                size_t i = 0;
                for (unsigned tz = 0; tz < c.block.z; tz++)
                    for (unsigned ty = 0; ty < c.block.y; ty++)
                        for (unsigned tx = 0; tx < c.block.x; tx++, i++) {
                            g_f[i].ctx.idx = uint3{tx, ty, tz};
                            g_f[i].state = F_NEW;
                            g_f[i].gen = 0;
                            g_f[i].stack = NULL;
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

/* ---- CUEMU_STATS=file: what ran, written at exit ----
 * One line per kernel: `kernel MODULE OFFSET LAUNCHES BLOCKS THREADS` (OFFSET: the kernel's
 * address less its module's load address, hex, for nm; tests/cuemu/stats.py names them),
 * and one per library call, copy and memset: `call NAME COUNT`. Counted when the work runs (a graph's
 * kernels at each replay), not when it is queued or recorded. */
struct kstat {
    unsigned long long launches, blocks, threads;
};
static std::map<const void *, kstat> g_kstats;
static std::map<std::string, unsigned long long> g_cstats;
static int g_stats = -1; /* -1: CUEMU_STATS not read yet */

static void stats_write() {
    const char *path = getenv("CUEMU_STATS");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) {
        fprintf(stderr, "cuemu: CUEMU_STATS=%s: cannot write\n", path ? path : "");
        return;
    }
    for (const auto &e : g_kstats) {
        Dl_info di;
        const char *mod = "?";
        uintptr_t off = (uintptr_t)e.first;
        char *full = NULL;
        if (dladdr(e.first, &di) && di.dli_fname) {
            full = realpath(di.dli_fname, NULL); /* the report may be read from elsewhere */
            mod = full ? full : di.dli_fname;
            off -= (uintptr_t)di.dli_fbase;
        }
        fprintf(f, "kernel %s %lx %llu %llu %llu\n", mod, (unsigned long)off, e.second.launches, e.second.blocks,
                e.second.threads);
        free(full);
    }
    for (const auto &e : g_cstats) fprintf(f, "call %s %llu\n", e.first.c_str(), e.second);
    fclose(f);
}
static bool stats_on() {
    if (g_stats < 0) {
        const char *v = getenv("CUEMU_STATS");
        g_stats = v && *v;
        if (g_stats) atexit(stats_write);
    }
    return g_stats > 0;
}
void stat_call(const char *name) {
    if (stats_on()) g_cstats[name]++;
}

void launch(const launch_cfg &c, std::function<void()> body, const void *kernel) {
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
    enqueue(c.stream, [c, body, kernel]() {
        if (stats_on()) {
            kstat &k = g_kstats[kernel];
            const unsigned long long blocks = (unsigned long long)c.grid.x * c.grid.y * c.grid.z;
            k.launches++;
            k.blocks += blocks;
            k.threads += blocks * c.block.x * c.block.y * c.block.z;
        }
        run_grid(c, body);
    });
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
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (!p || dev != 0) return cudaErrorInvalidValue;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuemu (the CPU, as a %d-SM device)", 132);
    p->multiProcessorCount = 132;
    p->maxThreadsPerBlock = 1024;
    p->sharedMemPerBlock = 48 * 1024;
    p->warpSize = 32;
    p->major = 9;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return host_sync("cudaDeviceSynchronize"); }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    *p = NULL;
    if (cudaError_t e = unsafe_call("cudaMalloc")) return e;
    if (bytes > device_bytes() - std::min(g_live, device_bytes())) {
        if (g_last == cudaSuccess) g_last = cudaErrorMemoryAllocation; /* not sticky: as on a GPU */
        return cudaErrorMemoryAllocation;
    }
    /* 256-byte aligned, as cudaMalloc guarantees (cuBLAS requires it of a workspace) */
    void *m = aligned_alloc(256, (bytes + 255) / 256 * 256 + (bytes ? 0 : 256));
    if (!m) return cudaErrorMemoryAllocation;
    memset(m, fill_byte(), bytes);
    g_allocs[(uintptr_t)m] = bytes;
    g_live += bytes;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (!p) return cudaSuccess;
    if (cudaError_t e = unsafe_call("cudaFree")) return e;
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) {
        set_error(cudaErrorInvalidDevicePointer, "cudaFree of a pointer cudaMalloc did not return");
        return cudaErrorInvalidDevicePointer;
    }
    g_live -= it->second;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    const size_t total = device_bytes();
    *free_bytes = total - std::min(g_live, total);
    *total_bytes = total;
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
    enqueue_node(s, [dst, src, bytes]() {
        stat_call("cudaMemcpyAsync");
        memmove(dst, src, bytes);
    }, cudaGraphNodeTypeMemcpy);
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
    enqueue_node(s, [=]() {
        stat_call("cudaMemcpy2DAsync");
        for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    }, cudaGraphNodeTypeMemcpy);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s) {
    cudaError_t e = check_range(p, bytes, true, "cudaMemsetAsync");
    if (e != cudaSuccess) return e;
    enqueue_node(s, [p, v, bytes]() {
        stat_call("cudaMemsetAsync");
        memset(p, v, bytes);
    }, cudaGraphNodeTypeMemset);
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
    g_cap_mode = mode;
    return cudaSuccess;
}
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode *mode) {
    if (!mode || (unsigned)*mode > (unsigned)cudaStreamCaptureModeRelaxed) return cudaErrorInvalidValue;
    const cudaStreamCaptureMode was = t_cap_mode;
    t_cap_mode = *mode;
    *mode = was;
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
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (!g_cap) e->t = now_s(); /* inside a capture an event only orders streams: no node */
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

cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t *nodes, size_t *n) {
    if (!g || !n) return cudaErrorInvalidValue;
    if (nodes) {
        const size_t k = std::min(*n, g->ops.size());
        for (size_t i = 0; i < k; i++) nodes[i] = &g->ops[i];
        *n = k;
    } else {
        *n = g->ops.size();
    }
    return cudaSuccess;
}
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType *t) {
    if (!node || !t) return cudaErrorInvalidValue;
    *t = node->kind;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags) {
    return cudaGraphInstantiateWithFlags(x, g, flags);
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
    for (auto &op : x->ops) op.fn();
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
