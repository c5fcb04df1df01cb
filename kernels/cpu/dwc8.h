/* dwc8.h — depthwise convolutions over channel-blocked planes (AVX2 + FMA), called by
 * conv.c for depthwise layers whose channel count is a multiple of 8. Each sample's 8
 * channels are transposed into one zero-padded buffer of pixels (8 channels per 32-byte
 * vector), so every tap is one vector of 8 channel weights times whole pixel vectors: no
 * lane is wasted on 7- or 14-wide rows, strides and dilations are only address steps,
 * and the results are transposed back to NCHW as they are stored. Conventions as in
 * kcpu.h (forward overwrites; accumulate selects += or =; xmask keeps the data gradient
 * only where the fused ReLU's input is > 0). The forward and data gradient are
 * bit-identical to conv.c's per-plane kernels; the filter gradient sums in another order. */
#ifndef DARTSC_KCPU_DWC8_H
#define DARTSC_KCPU_DWC8_H

#include "../kdesc.h"

/* Nonzero where the blocked path takes this depthwise layer: built with AVX2+FMA,
 * C % 8 == 0, padding buffers within the per-thread limit, and the path enabled. */
int kdw8_forward_ok(const kconv2d_desc *d);
int kdw8_backward_data_ok(const kconv2d_desc *d); /* stride 1, and stride 2 by output phases */
int kdw8_backward_filter_ok(const kconv2d_desc *d);
void kdw8_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, int relu);
void kdw8_backward_data(float *dx, const float *dy, const float *w, const float *xmask, const kconv2d_desc *d,
                        int accumulate);
/* dw += filter gradient (of relu(x) when relu) */
void kdw8_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, int relu);

/* Tests compare both paths: kdw8_set_enabled(0) sends every layer to conv.c's per-plane
 * kernels, and every pooling layer to pool.c's (whose blocked kernels obey it too).
 * Returns the previous setting. */
int kdw8_set_enabled(int on);
int kdw8_enabled(void);

/* Stride-2 data gradient by output phases, one dimension (shared with conv.c's per-plane
 * kernel): for output parity a, the taps k in flipped order (K-1 down to 0) with
 * a + pad - k*dil even, into idx, and their dy offsets (a + pad - k*dil) / 2 into off;
 * widens [*mn, *mx] over the offsets; returns the count. */
int kdw_s2_taps(int a, int pad, int K, int dil, int *idx, int *off, int *mn, int *mx);

#endif
