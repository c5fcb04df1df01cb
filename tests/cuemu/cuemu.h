/* cuemu.h — what the CUDA emulator's parts share (C++; see docs/ARCHITECTURE.md "CUDA on
 * the CPU"). The emulator runs the CUDA backend's sources, compiled by the host's C++
 * compiler against tests/cuemu/include, on the CPU: every kernel launch, copy, cuBLAS and
 * cuDNN call runs as it is issued (stream order is issue order), or, while a stream capture
 * records, is appended to the captured graph and runs when the graph is launched. */
#ifndef DARTSC_CUEMU_H
#define DARTSC_CUEMU_H

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <functional>

#include "cuda_runtime.h"

namespace cuemu {

/* Runs fn in the order of stream s (NULL: the legacy default stream): now, or, while a
 * capture records, appended to the graph being captured (fn then runs at each launch of
 * that graph; it must capture its arguments by value). */
void enqueue(cudaStream_t s, std::function<void()> fn);

/* Counts one executed library call named name (a cuBLAS GEMM, a cuDNN pass) for the
 * CUEMU_STATS report (runtime.cc). Call from the queued function, when it runs. */
void stat_call(const char *name);

/* Records err as the error the next cudaGetLastError / cudaStreamEndCapture returns
 * (a failed launch, a bad argument to an emulated library call). */
void set_error(cudaError_t err, const char *what);

/* The bytes of the cudaMalloc allocation that contains [p, p + bytes), or 0 where that
 * range is not inside one live allocation (for the library calls' argument checks). */
size_t device_extent(const void *p, size_t bytes);

/* Prints "cuemu: fn: <message>" to stderr: why an emulated library call refused its
 * arguments (the real libraries say nothing; the status alone is hard to trace). */
inline void vreport(const char *fn, const char *fmt, va_list ap) {
    std::fprintf(stderr, "cuemu: %s: ", fn);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
}

} // namespace cuemu

#endif
