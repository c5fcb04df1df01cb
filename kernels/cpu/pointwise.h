/* pointwise.h — the CPU's 1x1 convolution kernels (stride 1, no padding, one group),
 * called by conv.c; layout NCHW, y (N,K,HW) = w (K,C) x (N,C,HW). Conventions as in
 * kcpu.h: forward overwrites, the gradients accumulate. relu / xmask: a ReLU folded into
 * the input (the forward and the filter gradient read max(0, x); the data gradient is
 * kept only where xmask > 0, xmask being the ReLU's input). */
#ifndef DARTSC_KCPU_POINTWISE_H
#define DARTSC_KCPU_POINTWISE_H

#include <stddef.h>
#include <stdint.h>

void kpw_forward(float *y, const float *x, const float *w, int N, int K, int C, int64_t HW, int relu);
/* accumulate 0: dx is overwritten (zero where xmask <= 0), not added to */
void kpw_backward_data(float *dx, const float *dy, const float *w, const float *xmask, int N, int K, int C,
                       int64_t HW, int accumulate);
/* Scratch the filter gradient needs: a slot of K*C doubles per OpenMP thread. */
size_t kpw_filter_scratch_floats(int K, int C);
void kpw_backward_filter(float *dw, const float *dy, const float *x, int N, int K, int C, int64_t HW, int relu,
                         float *scratch);

/* Which instance runs: "avx512" (chosen at run time when the CPU and the compiler have
 * it) or "base" (the build's target). kpw_set_avx512(0) forces the base instance (tests
 * run both); kpw_set_avx512(1) returns -1 where AVX-512 is not available. */
const char *kpw_isa(void);
int kpw_set_avx512(int on);

#endif
