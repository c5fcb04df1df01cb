/* kcpu.h — CPU reference kernels. The CUDA kernels (kernels/cuda/kcuda.h) mirror these
 * name for name and argument for argument, adding a stream.
 *
 * Conventions:
 *  - outputs first, then inputs, then sizes; gradients are prefixed d;
 *  - forward kernels overwrite their output;
 *  - backward kernels ACCUMULATE (+=) into every gradient they are given, and skip any
 *    gradient pointer that is NULL (so work that was not asked for is not done);
 *  - results are bit-for-bit deterministic for a given thread count: reductions are
 *    done per thread into fixed slots and combined in a fixed order;
 *  - threads come from OpenMP; kernels never allocate: those that need scratch say
 *    how much through a *_scratch_floats() function and take it as an argument.
 */
#ifndef DARTSC_KCPU_H
#define DARTSC_KCPU_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#include "../kdesc.h"

/* Threads the kernels use (omp_get_max_threads(), or 1 without OpenMP). */
int kcpu_num_threads(void);

/* ---- convolution: dense, grouped, depthwise, dilated, asymmetric kernels ---- */
size_t kcpu_conv2d_scratch_floats(const kconv2d_desc *d);
void kcpu_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch);
void kcpu_conv2d_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d, float *scratch);
void kcpu_conv2d_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d, float *scratch);

/* ---- ReLU fused into a convolution's input: y = conv(relu(x)) ----
 * Only where kcpu_conv2d_relu_supported(d) (depthwise with a plane small enough for the
 * vectorised path, or 1x1 / stride 1 / no padding / one group); the runtime then skips
 * the ReLU node and its buffer.
 * backward_data: dx += (x > 0) * conv^T(dy), the gradient of the ReLU's input;
 * backward_filter: dw += correlation of dy with relu(x). Scratch as kcpu_conv2d_scratch_floats. */
int kcpu_conv2d_relu_supported(const kconv2d_desc *d);
void kcpu_conv2d_relu_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch);
void kcpu_conv2d_relu_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                    const kconv2d_desc *d, float *scratch);
void kcpu_conv2d_relu_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                      float *scratch);

/* ---- data gradient overwritten instead of accumulated ----
 * Where kcpu_conv2d_sets_dx(d) (the 1x1 and vectorised depthwise paths):
 * dx = conv^T(dy), or with x_relu (the input of a fused ReLU) dx = (x_relu > 0) * conv^T(dy);
 * every element of dx is written, so dx need not be zeroed first. */
int kcpu_conv2d_sets_dx(const kconv2d_desc *d);
void kcpu_conv2d_backward_data_set(float *dx, const float *dy, const float *w, const float *x_relu,
                                   const kconv2d_desc *d, float *scratch);

/* ---- batch norm ----
 * Training: batch statistics (biased variance for normalising); saves mean and
 * 1/sqrt(var+eps) per channel; updates running stats when given (unbiased variance,
 * r = (1-momentum) r + momentum * batch), as PyTorch does. gamma/beta NULL: no affine. */
void kcpu_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, const float *x, const float *gamma, const float *beta,
                           const kbn_desc *d);
void kcpu_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                           const float *running_mean, const float *running_var, const kbn_desc *d);
/* The forwards without their output, for a consumer that applies it as it reads x (the
 * runtime's lazy batch norm before a mixed op): the same statistics and running-stat
 * updates, and coef[0..3C) = f, s, b per channel such that the output would be
 * y = (x - f) * s + b, computed so (sub, mul, add in float) for the same bits. */
void kcpu_bn_coefs_train(float *coef, float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                         const float *x, const float *gamma, const float *beta, const kbn_desc *d);
/* Training forward (y) or coefficients (coef; the other NULL) that share batch statistics
 * (runtime/plan.c, DARTSC_SHARE_BN_STATS; not sync_bn): stat_out NULL or where the mean [c]
 * and biased variance [C + c] go (2 C doubles); stat_in NULL or such statistics of the same
 * input, used instead of reading x for them: the same bits. */
void kcpu_bn_train_shared(float *y, float *coef, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma, const float *beta, double *stat_out,
                          const double *stat_in, const kbn_desc *d);
void kcpu_bn_coefs_infer(float *coef, const float *gamma, const float *beta, const float *running_mean,
                         const float *running_var, const kbn_desc *d);
/* Backward of the training-mode forward. _set: dx is overwritten, not added to (dgamma and
 * dbeta still accumulate). */
void kcpu_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                      const float *gamma, const float *save_mean, const float *save_invstd,
                      const kbn_desc *d);
void kcpu_bn_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                          const float *gamma, const float *save_mean, const float *save_invstd,
                          const kbn_desc *d);
/* The output gradient read as dy_scale * dy (each product rounded to float, as if stored
 * first: the bits of calling the above on that product), added (accumulate) or written.
 * CPU only: the runtime's pass-through of a mixed op's gradient (backend scales_out_grad). */
void kcpu_bn_backward_scaled(float *dx, float *dgamma, float *dbeta, const float *dy, float dy_scale, const float *x,
                             const float *gamma, const float *save_mean, const float *save_invstd, const kbn_desc *d,
                             int accumulate);

/* ---- pooling (max: first maximum wins ties, as PyTorch; avg: padding excluded) ---- */
void kcpu_maxpool_forward(float *y, const float *x, const kpool_desc *d);
void kcpu_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d);
void kcpu_avgpool_forward(float *y, const float *x, const kpool_desc *d);
void kcpu_avgpool_backward(float *dx, const float *dy, const kpool_desc *d);

/* ---- elementwise; n elements ---- */
void kcpu_relu_forward(float *y, const float *x, int64_t n);
void kcpu_relu_backward(float *dx, const float *dy, const float *y, int64_t n);
/* dx written, not accumulated (the runtime skips zeroing it: sets_grad). */
void kcpu_relu_backward_set(float *dx, const float *dy, const float *y, int64_t n);
void kcpu_tanh_forward(float *y, const float *x, int64_t n);
void kcpu_tanh_backward(float *dx, const float *dy, const float *y, int64_t n);
void kcpu_sigmoid_forward(float *y, const float *x, int64_t n);
void kcpu_sigmoid_backward(float *dx, const float *dy, const float *y, int64_t n);
void kcpu_copy(float *y, const float *x, int64_t n);
/* memset(p, 0, bytes), threaded when large */
void kcpu_zero_bytes(void *p, size_t bytes);
/* y = x0 + x1 + ... (n inputs, added in order) */
void kcpu_add_forward(float *y, const float *const *xs, int n, int64_t len);
void kcpu_fill(float *y, float v, int64_t n);
/* y = s0 x0 + s1 x1 + ... (n inputs, scale[k] NULL: x_k unscaled), each product and each sum
 * rounded to float, in order: a batch norm's summed output gradients (rt_exec_node.nmore) */
void kcpu_scaled_sum(float *y, const float *const *xs, const float *const *scale, int n, int64_t len);
/* y += a * x */
void kcpu_axpy(float *y, float a, const float *x, int64_t n);
/* y = a * x */
void kcpu_scale(float *y, float a, const float *x, int64_t n);
/* y = a * b ; backward: da += dy * b, db += dy * a */
void kcpu_mul_forward(float *y, const float *a, const float *b, int64_t n);
void kcpu_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n);
/* Deterministic dot product and sum of squares (fixed-order per-thread partials, double accumulators). */
double kcpu_dot(const float *a, const float *b, int64_t n);
double kcpu_sumsq(const float *a, int64_t n);
/* The second-order step's finite-difference radius and final scale (REFERENCE.md):
 * eps[0] = R = (float)(r / ||v||) (||v|| = sqrt(kcpu_sumsq) in double; 1e-12 where v = 0),
 * eps[1] = -R, eps[2] = eta / (2R), or eta R / 2 where bug_mul_r (the known bug's form). */
void kcpu_hvp_eps(float eps[3], const float *v, int64_t n, double r, float eta, int bug_mul_r);
/* A norm computed in double as a float guard value for the guarded optimiser steps: the
 * float nearest it, FLT_MAX where it is finite but beyond float's range (a finite norm must
 * stay finite), NaN or infinity as they are. One definition for both backends (the CUDA
 * kernel has the same expression). */
static inline float kcpu_norm_guard(double v) { return v > FLT_MAX && v <= DBL_MAX ? FLT_MAX : (float)v; }
/* Gradient-norm clipping as the host does it (norm = sqrt(kcpu_sumsq) in double, x *=
 * (float)(max_norm / (norm + 1e-6)) where max_norm > 0 and that is below 1), the norm also
 * written to norm[0] (kcpu_norm_guard; computed where max_norm <= 0 too). */
void kcpu_clip_norm_to(float *x, int64_t n, float max_norm, float *norm);
/* FairDARTS' zero-one loss gradient added: grad[i] += (float)(weight * (-2/n) * d * s *
 * (1 - s)), s = sigmoid(alpha[i]) = 1 / (1 + exp(-alpha[i])) and d = s - 1/2 in double
 * (L01 = -(1/n) sum (s - 1/2)^2; search/fairdarts.c's host arithmetic, term for term). */
void kcpu_zero_one_grad(float *grad, const float *alpha, int64_t n, float weight);

/* ---- weighted sum: y = sum_i w[i] * xs[i] over len elements ----
 * backward: dxs[i] += w[i] * dy (dxs NULL or dxs[i] NULL: skipped);
 *           dw[i] += <dy, xs[i]> (dw NULL: skipped). */
void kcpu_wsum_forward(float *y, const float *const *xs, const float *w, int n, int64_t len);
void kcpu_wsum_backward(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                        const float *w, int n, int64_t len);
/* The same, with dxs[i] overwritten (dxs[i] = w[i] * dy) where bit i of set is 1. */
void kcpu_wsum_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                            const float *w, int n, int64_t len, unsigned set);

/* Weighted sum over (planes, HW) planes of C channels (plane p has channel p % C) whose
 * input k, where aff[k] is non-NULL, is a batch norm not applied yet: its value is
 * (xs[k] - aff[k][c]) * aff[k][C + c] + aff[k][2C + c], as kcpu_bn_coefs_* give it; the
 * bits of applying that batch norm first and calling the above. Backward: dxs as above
 * (the gradient of the stored input, i.e. of the batch norm's output), dw[k] += <dy, value k>. */
void kcpu_wsum_affine_forward(float *y, const float *const *xs, const float *const *aff, const float *w, int n,
                              int64_t planes, int C, int HW);
void kcpu_wsum_affine_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs,
                                   const float *const *aff, const float *w, int n, int64_t planes, int C, int HW,
                                   unsigned set);

/* ---- softmax over rows of length K (rows x K) ---- */
void kcpu_softmax_forward(float *y, const float *x, int rows, int K);
/* dx += y * (dy - <dy, y>) per row */
void kcpu_softmax_backward(float *dx, const float *dy, const float *y, int rows, int K);

/* ---- channel concat / slice: x (N, Cx, HW) placed at channel offset c_off of y (N, Cy, HW) ---- */
void kcpu_concat_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off);
void kcpu_concat_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off);
/* dx = dy[:, c_off:c_off+Cx] (overwritten, not added to) */
void kcpu_concat_backward_set(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off);
/* y (N, Cy, HW) = x[:, c_off:c_off+Cy]; x has Cx channels. backward: dx[:, slice] += dy */
void kcpu_slice_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off);
void kcpu_slice_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off);
/* channel shuffle of x (N, C, HW) in G groups: y[:, j*G+g] = x[:, g*(C/G)+j]; backward: dx += the
 * inverse permutation of dy */
void kcpu_channel_shuffle_forward(float *y, const float *x, int N, int C, int HW, int G);
void kcpu_channel_shuffle_backward(float *dx, const float *dy, int N, int C, int HW, int G);

/* ---- pixel shift of FactorizedReduce: y (N,C,H-1,W-1) = x[:, :, 1:, 1:] ---- */
void kcpu_shift_forward(float *y, const float *x, int N, int C, int H, int W);
void kcpu_shift_backward(float *dx, const float *dy, int N, int C, int H, int W);
/* dx written whole: 0 in its first row and column. */
void kcpu_shift_backward_set(float *dx, const float *dy, int N, int C, int H, int W);

/* ---- zero op with stride: y = 0 ---- (use kcpu_fill) */

/* ---- global average pool: y (N,C) = mean over HW ---- */
void kcpu_gap_forward(float *y, const float *x, int N, int C, int HW);
void kcpu_gap_backward(float *dx, const float *dy, int N, int C, int HW);

/* ---- linear: y (N,O) = x (N,I) w^T (O,I) + b (O) (b may be NULL) ---- */
void kcpu_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int I, int O);
void kcpu_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                          int N, int I, int O);

/* ---- embedding: y (N,D) = table[ids[n]]; backward: dtable[ids[n]] += dy[n] ---- */
void kcpu_embedding_forward(float *y, const int32_t *ids, const float *table, int N, int V, int D);
void kcpu_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D);

/* ---- softmax cross-entropy, mean over N rows ----
 * forward writes probs (N,K) for the backward and returns the mean loss; also counts
 * correct top-1 predictions in *correct if not NULL.
 * backward: dlogits += dloss * (probs - onehot(labels)) / N */
float kcpu_softmax_ce_forward(float *probs, const float *logits, const int32_t *labels, int N, int K,
                              int *correct);
void kcpu_softmax_ce_backward(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                              int N, int K);

/* ---- dropout (elementwise) and drop path (per sample): mask holds 0 or 1/(1-p);
 * element (or sample) i is kept iff krng_uniform(seed, i) >= p. ---- */
void kcpu_dropout_forward(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed);
void kcpu_droppath_forward(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                           uint64_t seed);
/* dx += dy * mask (mask per element) */
void kcpu_dropout_backward(float *dx, const float *dy, const float *mask, int64_t n);
/* dx += dy * mask[sample] */
void kcpu_droppath_backward(float *dx, const float *dy, const float *mask, int N, int64_t per_sample);
/* dx = 0 + dy * mask[sample]: written whole, the bits of zeroing dx first */
void kcpu_droppath_backward_set(float *dx, const float *dy, const float *mask, int N, int64_t per_sample);

/* ---- optimisers over one flat parameter vector ---- */
/* PyTorch SGD: g = grad + wd*w; buf = momentum*buf + g (buf = g on the first step is
 * handled by the caller passing a zeroed buf); w -= lr * buf. */
void kcpu_sgd_step(float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd);
/* PyTorch Adam (L2 weight decay added to the gradient), step t >= 1. */
void kcpu_adam_step(float *w, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                    float beta2, float eps, float wd, int t);
/* Adam's per-step scalars, as kcpu_adam_step computes them: sc[0] = lr / (1 - b1^t) and
 * sc[1] = sqrt(1 - b2^t), each in double rounded to float. */
void kcpu_adam_scalars(float lr, float beta1, float beta2, int t, float sc[2]);
/* kcpu_adam_step with those two scalars given (step = sc[0], bc2s = sc[1]). */
void kcpu_adam_step_sc(float *w, float *m, float *v, const float *grad, int64_t n, float step, float bc2s, float beta1,
                       float beta2, float eps, float wd);

#endif
