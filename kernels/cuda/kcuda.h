/* kcuda.h — CUDA kernels. They mirror kernels/cpu/kcpu.h name for name and argument for
 * argument, adding a trailing stream; every pointer is a device pointer unless the
 * comment says "host". Includable from C11 (the CUDA types it needs are forward
 * declared), so the runtime and the tests can see it.
 *
 * Conventions (the same as the CPU kernels):
 *  - outputs first, then inputs, then sizes; gradients are prefixed d;
 *  - forward kernels overwrite their output; backward kernels ACCUMULATE (+=) into
 *    every gradient they are given and skip NULL gradients;
 *  - deterministic: no float atomics; every reduction is a fixed tree (per block) or a
 *    fixed serial order, so a run repeats bit for bit on the same GPU;
 *  - kernels never allocate: dense/grouped convolutions take the cuDNN workspace as
 *    `scratch` (kcuda_conv2d_scratch_floats() floats), and the few reductions that need
 *    a second pass use a small partials buffer made once by kcuda_init().
 *
 * Where the CPU kernel hands a scalar back to the host (the CE loss and correct count,
 * dloss of the CE backward, dot / sumsq) the CUDA kernel keeps it in device memory so a
 * training step never waits for the host; only kcuda_dot / kcuda_sumsq return a host
 * double, which costs one stream synchronisation.
 *
 * Errors: library code never exits. Every CUDA/cuDNN/cuBLAS call and every launch goes
 * through one check macro (kcuda_internal.cuh) that prints file:line and the error
 * string to stderr and records the first error; kcuda_last_error() returns it (NULL
 * while none), and the runtime exposes it as rt_cuda_last_error().
 *
 * Usage:
 *   cudaStream_t s; cudnnHandle_t dnn; cublasHandle_t blas;   // made by backend_cuda.cu
 *   if (kcuda_init(s, dnn, blas) != 0) puts(kcuda_last_error());
 *   kcuda_relu_forward(y, x, n, s);
 *   kcuda_shutdown();
 */
#ifndef DARTSC_KCUDA_H
#define DARTSC_KCUDA_H

#include <stddef.h>
#include <stdint.h>

#include "../kdesc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The same typedefs as cuda_runtime.h, cudnn.h and cublas_api.h (a repeated identical
 * typedef is valid C11 and C++). */
typedef struct CUstream_st *cudaStream_t;
typedef struct cudnnContext *cudnnHandle_t;
typedef struct cublasContext *cublasHandle_t;

/* ---- library state ----
 * Registers the handles (owned by the caller, bound to s) and allocates the partials
 * buffer of the two-pass reductions. 0 on success, -1 with kcuda_last_error() set. */
int kcuda_init(cudaStream_t s, cudnnHandle_t dnn, cublasHandle_t blas);
/* Frees the partials buffers and the cached cuDNN descriptors; the handles stay the caller's. */
void kcuda_shutdown(void);
/* Lanes: work issued on several streams at once (a recorded pass whose independent ops
 * run concurrently) must not share the handles or the reductions' partials buffers.
 * kcuda_init registers lane 0; kcuda_add_lane registers the handles of one more (owned
 * by the caller, bound to that lane's stream) and allocates its buffers, returning its
 * number or -1 (error recorded); kcuda_set_lane makes every later call use lane k's
 * handles and buffers, until the next kcuda_set_lane. At most KCUDA_MAX_LANES. */
#define KCUDA_MAX_LANES 16
int kcuda_add_lane(cudnnHandle_t dnn, cublasHandle_t blas);
void kcuda_set_lane(int k);
/* One-launch reductions (DARTSC_CUDA_ONE_LAUNCH, read by kcuda_init; off by default until
 * measured): the depthwise and own 1x1 filter gradients and the deferred batch norm's
 * coefficients in one launch instead of two, the batch norms' per-channel combine done
 * once by the first launch's last block; the same bits either way. Sets it for later
 * calls (tests, benchmarks) and returns the previous setting. */
int kcuda_set_one_launch(int on);
/* The current one-launch setting; whether the cuBLAS 1x1s batch (DARTSC_CUDA_BATCH_CUBLAS,
 * read by kcuda_init: batched launches then change bits on a GPU, kcuda_conv2d_batch_ok). */
int kcuda_one_launch(void);
int kcuda_batch_cublas(void);
/* The blocked depthwise filter gradient one output a thread at a time instead of up to 4
 * (DARTSC_CUDA_DW_FILTER_U1, read by kcuda_init; the same bits either way: the A/B of the
 * registers its loads in flight cost, for a device to time). Sets it for later calls and
 * returns the previous setting. */
int kcuda_set_dw_filter_u1(int on);
/* Recordings' pointer tables. A batched cuBLAS call (cublasSgemmBatched) reads its three
 * arrays of matrix pointers from device memory. Outside a recording a one-block kernel
 * writes them into the lane's table before each call; inside one (between
 * kcuda_record_begin, called before the stream capture begins, and kcuda_record_end, after
 * it ended) the host writes them into a table of the recording's own, since the
 * addresses a recorded graph replays are fixed: no kernel per call in the graph.
 * kcuda_record_end(ok, s, &tables) uploads the table on stream s (and waits for it) and
 * sets tables, to be freed by kcuda_record_free with the graph (NULL: the recording needed
 * none; !ok: the capture failed, the table is freed now); -1 (error recorded, nothing to
 * free) if the upload failed: the graph must not run. A table that could not be allocated
 * during the capture (cudaMalloc in relaxed capture mode) leaves those calls to the
 * kernel, as outside. */
void kcuda_record_begin(void);
int kcuda_record_end(int ok, cudaStream_t s, void **tables);
void kcuda_record_free(void *tables);
/* Launches of the pointer-writing kernel so far (tests count them). */
long long kcuda_ptr_fills(void);
/* First error recorded by a check macro ("file:line: call: message"), or NULL. */
const char *kcuda_last_error(void);
/* Forgets the recorded error (tests that provoke one). */
void kcuda_clear_error(void);

/* ---- convolution: depthwise (own kernels), 1x1 (cuBLAS; own kernels opt-in), the rest (cuDNN) ---- */
/* Floats of scratch the three passes of d need: cuDNN's workspace, or for a 1x1 the
 * sample products of its filter gradient (and a strided 1x1's gathered pixels). Picks
 * and caches the algorithms for d on first use. */
size_t kcuda_conv2d_scratch_floats(const kconv2d_desc *d);
void kcuda_conv2d_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch,
                          cudaStream_t s);
void kcuda_conv2d_backward_data(float *dx, const float *dy, const float *w, const kconv2d_desc *d,
                                float *scratch, cudaStream_t s);
void kcuda_conv2d_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                  float *scratch, cudaStream_t s);

/* ---- ReLU fused into a convolution's input: y = conv(relu(x)) (see kcpu.h) ----
 * Only where kcuda_conv2d_relu_supported(d): depthwise 3x3/5x5/7x7 whose planes fit the
 * plane kernels, or 1x1 / stride 1 / no padding / one group with K*C <= 4096 when the own
 * 1x1 kernels are on (DARTSC_CUDA_OWN_1X1=1; cuBLAS, the default, reads x as it is).
 * backward_data: dx += (x > 0) * conv^T(dy); backward_filter: dw += the
 * correlation of dy with relu(x). A shape outside that set records an error. */
int kcuda_conv2d_relu_supported(const kconv2d_desc *d);
void kcuda_conv2d_relu_forward(float *y, const float *x, const float *w, const kconv2d_desc *d, float *scratch,
                               cudaStream_t s);
void kcuda_conv2d_relu_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                     const kconv2d_desc *d, float *scratch, cudaStream_t s);
void kcuda_conv2d_relu_backward_filter(float *dw, const float *dy, const float *x, const kconv2d_desc *d,
                                       float *scratch, cudaStream_t s);

/* ---- data gradient overwritten instead of accumulated (see kcpu.h) ----
 * Where kcuda_conv2d_sets_dx(d): dx = conv^T(dy), or with x_relu (the input of a fused
 * ReLU) dx = (x_relu > 0) * conv^T(dy); every element of dx is written. */
int kcuda_conv2d_sets_dx(const kconv2d_desc *d);
void kcuda_conv2d_backward_data_set(float *dx, const float *dy, const float *w, const float *x_relu,
                                    const kconv2d_desc *d, float *scratch, cudaStream_t s);

/* ---- a deferred batch norm before the fused ReLU (runtime/plan.c "deferred batch norms") ----
 * The fused-ReLU depthwise passes with their input x (the ReLU's input) read through a
 * batch norm's coefficients first: v = __fmaf_rn(x - f[c], s[c], b[c]) (af = f, s, b of C
 * channels each, kcuda_bn_coefs_train's coef), the expression the batch norm writes its
 * output with, so the bits of applying the batch norm and then these passes; the padding
 * stays 0. backward_data: dx (= where set, else +=) (v > 0) * conv^T(dy), the gradient of
 * the batch norm's output; backward_filter: dw += the correlation of dy with relu(v). Only
 * where kcuda_conv2d_affine_supported(d): the depthwise shapes of
 * kcuda_conv2d_relu_supported (plane and blocked kernels; no scratch). */
int kcuda_conv2d_affine_supported(const kconv2d_desc *d);
void kcuda_conv2d_relu_affine_forward(float *y, const float *x, const float *af, const float *w,
                                      const kconv2d_desc *d, cudaStream_t s);
void kcuda_conv2d_relu_affine_backward_data(float *dx, const float *dy, const float *w, const float *x,
                                            const float *af, const kconv2d_desc *d, int set, cudaStream_t s);
void kcuda_conv2d_relu_affine_backward_filter(float *dw, const float *dy, const float *x, const float *af,
                                              const kconv2d_desc *d, cudaStream_t s);

/* ---- batch norm (see kcpu.h: biased variance to normalise, unbiased into running_var) ---- */
void kcuda_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                            float *running_var, const float *x, const float *gamma, const float *beta,
                            const kbn_desc *d, cudaStream_t s);
void kcuda_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                            const float *running_mean, const float *running_var, const kbn_desc *d,
                            cudaStream_t s);
void kcuda_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                       const float *gamma, const float *save_mean, const float *save_invstd,
                       const kbn_desc *d, cudaStream_t s);
/* The same, dx written instead of accumulated. */
void kcuda_bn_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *gamma, const float *save_mean, const float *save_invstd,
                           const kbn_desc *d, cudaStream_t s);
/* The forwards without their output (see kcpu.h), for a mixed op that applies it as it
 * reads x: the same statistics and running-stat updates, and coef[0..3C) = f, s, b with
 * y = (x - f) * s + b, computed as the forwards compute them. */
void kcuda_bn_coefs_train(float *coef, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma, const float *beta,
                          const kbn_desc *d, cudaStream_t s);
void kcuda_bn_coefs_infer(float *coef, const float *gamma, const float *beta, const float *running_mean,
                          const float *running_var, const kbn_desc *d, cudaStream_t s);
/* The backward with the output gradient read as (*dy_scale) * dy, dy_scale a DEVICE scalar
 * (each product rounded to float: the bits of reading a buffer that held them), added
 * (accumulate) or written. */
void kcuda_bn_backward_scaled(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                              const float *x, const float *gamma, const float *save_mean,
                              const float *save_invstd, const kbn_desc *d, int accumulate, cudaStream_t s);
/* The output gradients of other batch norms of the same input, statistics and eps, whose
 * backwards one backward runs (the runtime's summed batch norms, DARTSC_SUM_BN_GRADS): n
 * (0..KCUDA_BN_MORE) DEVICE arrays dy[k] of the output's shape, each read times the DEVICE
 * scalar *dys[k] where dys[k] is not NULL. */
#define KCUDA_BN_MORE 3
typedef struct kbn_more {
    int n;
    const float *dy[KCUDA_BN_MORE], *dys[KCUDA_BN_MORE];
} kbn_more;
/* kcuda_bn_backward_scaled (dy_scale may be NULL: unscaled) on the output gradient
 * g = (*dy_scale) dy + (*more->dys[0]) more->dy[0] + ... (more NULL or n 0: dy alone), each
 * product and each sum rounded to float, in that order (the bits of calling it on a buffer
 * that held g, computed as kcpu_scaled_sum computes it). */
void kcuda_bn_backward_sum(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                           const kbn_more *more, const float *x, const float *gamma, const float *save_mean,
                           const float *save_invstd, const kbn_desc *d, int accumulate, cudaStream_t s);

/* ---- batched launches (DARTSC_CUDA_BATCH; runtime/schedule.c groups independent nodes) ----
 * n (1..KCUDA_MAX_BATCH) problems of one descriptor d issued as one: problem i reads and
 * writes only the pointers at index i of the pointer arrays (HOST arrays of device
 * pointers; an array argument may be NULL where every problem would pass NULL), and gets
 * exactly the bits the single entry point gives it; each kernel the single path launches
 * is launched once for all n problems (the problem picked by the block) instead of n times.
 * The problems must not overlap in what they write. A path that needs a reduction buffer
 * larger than the lane's for n problems launches for as many as fit at a time. Shapes or
 * modes without a batched path: *_batch_ok says 0 beforehand, and the batched call then
 * records an error and issues nothing. */
#define KCUDA_MAX_BATCH 32
/* Depthwise convolutions on the plane kernels (kcuda_conv2d_relu_supported's depthwise
 * shapes), 1x1 convolutions on the own kernels (pw_small: DARTSC_CUDA_OWN_1X1), and with
 * DARTSC_CUDA_BATCH_CUBLAS 1x1 convolutions on cuBLAS, strided too (no fused ReLU; one
 * cublasSgemmBatched call per pass over problems x samples, so on a GPU within rounding of
 * the single calls rather than their bits: cuBLAS may choose another kernel for another
 * batch count; the same bits run to run); relu: the ReLU fused into the input
 * (kcuda_conv2d_relu_* semantics). */
int kcuda_conv2d_batch_ok(const kconv2d_desc *d, int relu);
void kcuda_conv2d_forward_batch(int n, float *const *y, const float *const *x, const float *const *w,
                                const kconv2d_desc *d, int relu, cudaStream_t s);
/* dx += conv^T(dy) (set: dx = ...), through the fused ReLU where x_relu is not NULL
 * (kcuda_conv2d_relu_backward_data / kcuda_conv2d_backward_data_set semantics). */
void kcuda_conv2d_backward_data_batch(int n, float *const *dx, const float *const *dy, const float *const *w,
                                      const float *const *x_relu, const kconv2d_desc *d, int set, cudaStream_t s);
void kcuda_conv2d_backward_filter_batch(int n, float *const *dw, const float *const *dy, const float *const *x,
                                        const kconv2d_desc *d, int relu, cudaStream_t s);
/* The deferred-batch-norm passes above, batched (af: each problem's coefficients). */
void kcuda_conv2d_relu_affine_forward_batch(int n, float *const *y, const float *const *x, const float *const *af,
                                            const float *const *w, const kconv2d_desc *d, cudaStream_t s);
void kcuda_conv2d_relu_affine_backward_data_batch(int n, float *const *dx, const float *const *dy,
                                                  const float *const *w, const float *const *x,
                                                  const float *const *af, const kconv2d_desc *d, int set,
                                                  cudaStream_t s);
void kcuda_conv2d_relu_affine_backward_filter_batch(int n, float *const *dw, const float *const *dy,
                                                    const float *const *x, const float *const *af,
                                                    const kconv2d_desc *d, cudaStream_t s);
/* Batch norms over one (N, C, HW), not sync_bn. */
int kcuda_bn_batch_ok(const kbn_desc *d);
void kcuda_bn_coefs_train_batch(int n, float *const *coef, float *const *save_mean, float *const *save_invstd,
                                float *const *running_mean, float *const *running_var, const float *const *x,
                                const float *const *gamma, const float *const *beta, const kbn_desc *d,
                                cudaStream_t s);
void kcuda_bn_forward_train_batch(int n, float *const *y, float *const *save_mean, float *const *save_invstd,
                                  float *const *running_mean, float *const *running_var, const float *const *x,
                                  const float *const *gamma, const float *const *beta, const kbn_desc *d,
                                  cudaStream_t s);
/* Training forwards that share batch statistics (runtime/plan.c, DARTSC_SHARE_BN_STATS):
 * kcuda_bn_forward_train (y) or kcuda_bn_coefs_train (coef), exactly one of the two arrays
 * given, for n problems (1..KCUDA_MAX_BATCH; not sync_bn); stat_out NULL or per problem NULL
 * or where its mean [c] and biased variance [C + c] go (2 C doubles); stat_in NULL, or per
 * problem such statistics of the same input (every one given), used instead of reading x
 * for them (one launch for all): the same bits. */
void kcuda_bn_train_shared(int n, float *const *y, float *const *coef, float *const *save_mean,
                           float *const *save_invstd, float *const *running_mean, float *const *running_var,
                           const float *const *x, const float *const *gamma, const float *const *beta,
                           double *const *stat_out, const double *const *stat_in, const kbn_desc *d,
                           cudaStream_t s);
/* kcuda_bn_backward (set 0) / kcuda_bn_backward_set (set 1), or with dy_scale not NULL
 * kcuda_bn_backward_scaled (accumulate = !set). */
void kcuda_bn_backward_batch(int n, float *const *dx, float *const *dgamma, float *const *dbeta,
                             const float *const *dy, const float *const *dy_scale, const float *const *x,
                             const float *const *gamma, const float *const *save_mean,
                             const float *const *save_invstd, const kbn_desc *d, int set, cudaStream_t s);
/* The same with more[i] (an array of n, or NULL: none) each problem's summed gradients
 * (kcuda_bn_backward_sum). */
void kcuda_bn_backward_sum_batch(int n, float *const *dx, float *const *dgamma, float *const *dbeta,
                                 const float *const *dy, const float *const *dy_scale, const kbn_more *more,
                                 const float *const *x, const float *const *gamma, const float *const *save_mean,
                                 const float *const *save_invstd, const kbn_desc *d, int set, cudaStream_t s);

/* Pooling (any shape; the backwards accumulate into dx as the single ones). */
void kcuda_maxpool_forward_batch(int n, float *const *y, const float *const *x, const kpool_desc *d, cudaStream_t s);
/* Drop paths of N samples of per_sample values each with probability p > 0, seeds read on
 * the device (seed_dev[i]: a recorded pass's): the forward in one launch (mask[i] and
 * y[i]), the backward (set: written whole, kcuda_droppath_backward_set) in one. */
void kcuda_droppath_forward_batch(int n, float *const *y, float *const *mask, const float *const *x, int N,
                                  int64_t per_sample, float p, const uint64_t *const *seed_dev, cudaStream_t s);
void kcuda_droppath_backward_batch(int n, float *const *dx, const float *const *dy, const float *const *mask, int N,
                                   int64_t per_sample, int set, cudaStream_t s);
void kcuda_maxpool_backward_batch(int n, float *const *dx, const float *const *dy, const float *const *x,
                                  const kpool_desc *d, cudaStream_t s);
void kcuda_avgpool_forward_batch(int n, float *const *y, const float *const *x, const kpool_desc *d, cudaStream_t s);
void kcuda_avgpool_backward_batch(int n, float *const *dx, const float *const *dy, const kpool_desc *d,
                                  cudaStream_t s);

/* ---- pooling (max: first maximum wins ties; avg: padding excluded) ---- */
void kcuda_maxpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s);
void kcuda_maxpool_backward(float *dx, const float *dy, const float *x, const kpool_desc *d, cudaStream_t s);
void kcuda_avgpool_forward(float *y, const float *x, const kpool_desc *d, cudaStream_t s);
void kcuda_avgpool_backward(float *dx, const float *dy, const kpool_desc *d, cudaStream_t s);
/* n (1..KCUDA_MAX_BATCH) max (max 1) or average (0) pools of one shape that also take
 * their outputs' batch statistics as they write them (runtime/plan.c, DARTSC_POOL_BN_STATS):
 * y[i] as kcuda_*pool_forward writes it and stat_out[i] (2 C doubles) the per-channel mean
 * [c] and biased variance [C + c] that a batch norm of y[i] writes (kcuda_bn_train_shared's
 * stat_out), the same bits, in one launch instead of the pool's and the batch norm's first.
 * ntk (0..KCUDA_POOL_TAKERS) batch norms of each output left for their consumers (takers,
 * problem i's at takers[i * ntk ...]) get what kcuda_bn_train_shared writes for them from
 * these statistics (coefficients, saved and running statistics; the same bits), so their
 * own launches are not needed. Only for shapes kcuda_pool_stats_ok accepts. */
#define KCUDA_POOL_TAKERS 4
typedef struct kbn_taker {
    float *coef, *save_mean, *save_invstd, *running_mean, *running_var; /* as kcuda_bn_train_shared's; NULL: not written */
    const float *gamma, *beta;                                           /* NULL: 1 and 0 */
    float eps, momentum;
} kbn_taker;
int kcuda_pool_stats_ok(const kpool_desc *d);
void kcuda_pool_forward_stats(int n, int max, float *const *y, const float *const *x, double *const *stat_out,
                              int ntk, const kbn_taker *takers, const kpool_desc *d, cudaStream_t s);

/* ---- elementwise; n elements ---- */
void kcuda_relu_forward(float *y, const float *x, int64_t n, cudaStream_t s);
void kcuda_relu_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s);
/* dx written, not accumulated: dx = y > 0 ? dy : 0. */
void kcuda_relu_backward_set(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s);
void kcuda_tanh_forward(float *y, const float *x, int64_t n, cudaStream_t s);
void kcuda_tanh_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s);
void kcuda_sigmoid_forward(float *y, const float *x, int64_t n, cudaStream_t s);
void kcuda_sigmoid_backward(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s);
void kcuda_copy(float *y, const float *x, int64_t n, cudaStream_t s);
void kcuda_fill(float *y, float v, int64_t n, cudaStream_t s);
void kcuda_axpy(float *y, float a, const float *x, int64_t n, cudaStream_t s);
void kcuda_scale(float *y, float a, const float *x, int64_t n, cudaStream_t s);
void kcuda_mul_forward(float *y, const float *a, const float *b, int64_t n, cudaStream_t s);
void kcuda_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n,
                        cudaStream_t s);
/* Deterministic two-pass reductions in double; the result comes back to the host (one sync). */
double kcuda_dot(const float *a, const float *b, int64_t n, cudaStream_t s);
double kcuda_sumsq(const float *a, int64_t n, cudaStream_t s);
/* x *= max_norm / (||x|| + 1e-6) where that is < 1 (max_norm > 0), all on the device: the
 * norm from the same two-pass sum as kcuda_sumsq, the factor in double then rounded to
 * float, as the host computes it from kcuda_sumsq. */
void kcuda_clip_norm(float *x, int64_t n, float max_norm, cudaStream_t s);
/* kcuda_clip_norm that also writes the norm to norm[0] (device memory), as kcpu_clip_norm_to
 * does: computed where max_norm <= 0 too (then nothing is scaled), a float guard value
 * (FLT_MAX where finite beyond float's range), 0 for n <= 0. */
void kcuda_clip_norm_to(float *x, int64_t n, float max_norm, float *norm, cudaStream_t s);
/* kcpu_zero_one_grad's expression per element (CUDA's double exp: within 1 ulp of the
 * host's, so the float result is the CPU's but for a rare last-bit difference). */
void kcuda_zero_one_grad(float *grad, const float *alpha, int64_t n, float weight, cudaStream_t s);
/* The second-order step's finite-difference radius without the host (twin of
 * kcpu_hvp_eps): eps[0] = R = (float)(r / ||v||) (||v|| = sqrt of kcuda_sumsq's sum, in
 * double; 1e-12 where v = 0), eps[1] = -R, eps[2] = eta / (2R), or eta R / 2 where bug_mul_r.
 * eps: 3 device floats. */
void kcuda_hvp_eps(float *eps, const float *v, int64_t n, double r, float eta, int bug_mul_r, cudaStream_t s);
/* y += a[0] x and y *= a[0] with the scalar a in device memory (the same arithmetic as
 * kcuda_axpy / kcuda_scale with a host scalar). */
void kcuda_axpy_dev(float *y, const float *a, const float *x, int64_t n, cudaStream_t s);
void kcuda_scale_dev(float *y, const float *a, int64_t n, cudaStream_t s);

/* ---- weighted sum: y = sum_i w[i] * xs[i] ----
 * xs, dxs: HOST arrays of n (<= KCUDA_MAX_WSUM) device pointers; w, dw: device (n).
 * backward: dxs[i] += w[i] * dy; dw[i] += <dy, xs[i]> (two-pass, on the device). */
#define KCUDA_MAX_WSUM 32
void kcuda_wsum_forward(float *y, const float *const *xs, const float *w, int n, int64_t len, cudaStream_t s);
void kcuda_wsum_backward(float *const *dxs, float *dw, const float *dy, const float *const *xs, const float *w,
                         int n, int64_t len, cudaStream_t s);
/* The same, dxs[i] written (= w[i] * dy) instead of accumulated where bit i of set is 1. */
void kcuda_wsum_backward_set(float *const *dxs, float *dw, const float *dy, const float *const *xs, const float *w,
                             int n, int64_t len, unsigned set, cudaStream_t s);

/* ---- the MIXED op of DARTS, fused on the device (the CPU backend composes
 * kcpu_softmax_forward + a gather + kcpu_wsum_*, with the same arithmetic) ----
 * forward: sm (O) = softmax(alpha_row (O)); y = sum_i sm[cols[i]] * xs[i].
 * backward: dxs[i] += sm[cols[i]] * dy (written instead where bit i of set is 1); if
 * dalpha_row: dcol[cols[i]] = <dy, xs[i]> (0 for absent columns) and
 * dalpha_row += sm * (dcol - <dcol, sm>).
 * aff: NULL, or a HOST array of n pointers: NULL, or the device coefficients f, s, b (3C
 * floats, kcuda_bn_coefs_*) of a batch norm not applied yet, whose input xs[i] is: then
 * input i is read as (x - f[c]) * s[c] + b[c], c = element / HW % C (its dxs[i] is still
 * the gradient of that batch norm's output).
 * cols: HOST array of n column indices (< O <= 64). */
void kcuda_mixed_forward(float *y, float *sm, const float *alpha_row, const float *const *xs, const int64_t *cols,
                         int n, int O, int64_t len, const float *const *aff, int C, int HW, cudaStream_t s);
void kcuda_mixed_backward(float *const *dxs, float *dalpha_row, const float *dy, const float *const *xs,
                          const float *sm, const int64_t *cols, int n, int O, int64_t len, unsigned set,
                          const float *const *aff, int C, int HW, cudaStream_t s);
/* The backward's launches: without dalpha_row one (the dxs); with it one that computes the
 * dxs (unless two of them alias) and the dot products together, then one thread's launch
 * for dalpha_row, which one-launch mode (kcuda_set_one_launch) leaves to the first
 * launch's last block; the same bits every way.
 * Batched (the "batched launches" rules above): m problems of n candidates over one
 * (O, len, cols, set, C, HW); problem i's candidate k at index i * n + k of xs, dxs and
 * aff (each may be NULL: every one NULL), its output, softmax, alpha row, output gradient
 * and alpha row gradient at index i of y, sm, alpha_row, dy, dalpha_row (dalpha_row NULL,
 * or not NULL for every problem). Batched path: 1 <= n <= KCUDA_MIXED_BATCH_INPUTS,
 * 1 <= O <= 64, len > 0. The problems' alpha rows may be rows of one matrix, their
 * dalpha_rows distinct rows of one. */
#define KCUDA_MIXED_BATCH_INPUTS 8
int kcuda_mixed_batch_ok(int n, int O, int64_t len);
void kcuda_mixed_forward_batch(int m, float *const *y, float *const *sm, const float *const *alpha_row,
                               const float *const *xs, const int64_t *cols, int n, int O, int64_t len,
                               const float *const *aff, int C, int HW, cudaStream_t s);
void kcuda_mixed_backward_batch(int m, float *const *dxs, float *const *dalpha_row, const float *const *dy,
                                const float *const *xs, const float *const *sm, const int64_t *cols, int n, int O,
                                int64_t len, unsigned set, const float *const *aff, int C, int HW, cudaStream_t s);

/* ---- MIXED with given weights (WMIXED; FairDARTS' sigmoid(alpha)): y = sum_i w_row[cols[i]] * xs[i];
 * backward: dxs as WSUM (set bits written), dw_row[cols[i]] += <dy, xs[i]> (two-pass, on the
 * device; a repeated column gets each of its dot products, in order). w_row, dw_row:
 * device; xs, dxs, cols: HOST arrays of n. MIXED's kernels without the softmax: the
 * backward's launches are MIXED's (with dw_row the dxs and the dot products in one, unless
 * two dxs alias, then one thread's launch for dw_row, which one-launch mode leaves to the
 * first launch's last block); the same bits every way.
 * Batched (the "batched launches" rules above): m problems of n candidates over one
 * (len, cols, set); problem i's candidate k at index i * n + k of xs and dxs (dxs may be
 * NULL: every one NULL), its output, weight row, output gradient and weight row gradient
 * at index i of y, w_row, dy, dw_row (dw_row NULL, or not NULL for every problem).
 * Batched path: 1 <= n <= KCUDA_MIXED_BATCH_INPUTS, len > 0. The problems' weight rows may
 * be rows of one matrix, their dw_rows distinct rows of one. */
void kcuda_wmixed_forward(float *y, const float *w_row, const float *const *xs, const int64_t *cols, int n, int64_t len,
                          cudaStream_t s);
void kcuda_wmixed_backward(float *const *dxs, float *dw_row, const float *dy, const float *const *xs, const float *w_row,
                           const int64_t *cols, int n, int64_t len, unsigned set, cudaStream_t s);
int kcuda_wmixed_batch_ok(int n, int64_t len);
void kcuda_wmixed_forward_batch(int m, float *const *y, const float *const *w_row, const float *const *xs,
                                const int64_t *cols, int n, int64_t len, cudaStream_t s);
void kcuda_wmixed_backward_batch(int m, float *const *dxs, float *const *dw_row, const float *const *dy,
                                 const float *const *xs, const float *const *w_row, const int64_t *cols, int n,
                                 int64_t len, unsigned set, cudaStream_t s);
/* ---- channel shuffle of x (N, C, HW) in G groups (kcpu_channel_shuffle_*); backward accumulates ---- */
void kcuda_channel_shuffle_forward(float *y, const float *x, int N, int C, int HW, int G, cudaStream_t s);
void kcuda_channel_shuffle_backward(float *dx, const float *dy, int N, int C, int HW, int G, cudaStream_t s);

/* ---- softmax over rows of length K ---- */
void kcuda_softmax_forward(float *y, const float *x, int rows, int K, cudaStream_t s);
void kcuda_softmax_backward(float *dx, const float *dy, const float *y, int rows, int K, cudaStream_t s);

/* ---- sums of n tensors and channel concat, one launch each (n <= KCUDA_MAX_NARY) ----
 * sum_forward: y = xs[0] + coef[1] * xs[1] + ... in that order (coef[0] unused), then
 * y = post * y where scaled: the bits of a copy, axpys and a scale. sum_backward: gs[k]
 * (NULL: none) = coef[k] * dy where set bit k, else += coef[k] * dy (scale / axpy's bits).
 * concat over channels: xs[k] (N, Cx[k], HW) into y (N, Cy, HW), Cy = the sum of Cx;
 * backward writes (set bit k) or adds dy's channels into dxs[k] (NULL: none). xs, gs,
 * dxs, coef, Cx: HOST arrays of n. */
#define KCUDA_MAX_NARY 32
void kcuda_sum_forward(float *y, const float *const *xs, const float *coef, int n, float post, int scaled, int64_t len,
                       cudaStream_t s);
void kcuda_sum_backward(float *const *gs, const float *coef, int n, unsigned set, const float *dy, int64_t len,
                        cudaStream_t s);
void kcuda_concat_forward(float *y, const float *const *xs, const int *Cx, int n, int N, int Cy, int HW, cudaStream_t s);
void kcuda_concat_backward(float *const *dxs, unsigned set, const int *Cx, int n, const float *dy, int N, int Cy, int HW,
                           cudaStream_t s);
/* ---- channel slice: y (N, Cy, HW) = channels [c_off, c_off + Cy) of x (N, Cx, HW) ---- */
void kcuda_slice_forward(float *y, const float *x, int N, int Cx, int HW, int Cy, int c_off, cudaStream_t s);
void kcuda_slice_backward(float *dx, const float *dy, int N, int Cx, int HW, int Cy, int c_off, cudaStream_t s);

/* ---- pixel shift, global average pool ---- */
void kcuda_shift_forward(float *y, const float *x, int N, int C, int H, int W, cudaStream_t s);
void kcuda_shift_backward(float *dx, const float *dy, int N, int C, int H, int W, cudaStream_t s);
/* The same, dx written whole (0 where x has no pixel in y). */
void kcuda_shift_backward_set(float *dx, const float *dy, int N, int C, int H, int W, cudaStream_t s);
void kcuda_gap_forward(float *y, const float *x, int N, int C, int HW, cudaStream_t s);
void kcuda_gap_backward(float *dx, const float *dy, int N, int C, int HW, cudaStream_t s);

/* ---- linear (cuBLAS) and embedding ---- */
void kcuda_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int I, int O,
                          cudaStream_t s);
void kcuda_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                           int N, int I, int O, cudaStream_t s);
void kcuda_embedding_forward(float *y, const int32_t *ids, const float *table, int N, int V, int D, cudaStream_t s);
void kcuda_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D,
                              cudaStream_t s);

/* ---- softmax cross-entropy, mean over N rows ----
 * forward: probs (N,K); loss[0] = mean loss; correct[0] = top-1 correct count (as a
 * float; NULL: not wanted). Both stay on the device.
 * backward: dlogits += dloss[0] * (probs - onehot) / N, dloss a DEVICE scalar. */
void kcuda_softmax_ce_forward(float *loss, float *probs, const float *logits, const int32_t *labels, int N, int K,
                              float *correct, cudaStream_t s);
void kcuda_softmax_ce_backward(float *dlogits, const float *dloss, const float *probs, const int32_t *labels,
                               int N, int K, cudaStream_t s);

/* ---- dropout / drop path (masks from krng_uniform: identical to the CPU's) ---- */
void kcuda_dropout_forward(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                           cudaStream_t s);
void kcuda_droppath_forward(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                            uint64_t seed, cudaStream_t s);
void kcuda_dropout_backward(float *dx, const float *dy, const float *mask, int64_t n, cudaStream_t s);
/* The forwards with the seed read on the device from seed_dev when it is not NULL (a
 * pass recorded as a CUDA graph: its seeds change between replays), and the seeds of a
 * pass: seeds[i] = krng_hash(base, step * nodes + i). */
void kcuda_dropout_forward_dev(float *y, float *mask, const float *x, int64_t n, float p, uint64_t seed,
                               const uint64_t *seed_dev, cudaStream_t s);
void kcuda_droppath_forward_dev(float *y, float *mask, const float *x, int N, int64_t per_sample, float p,
                                uint64_t seed, const uint64_t *seed_dev, cudaStream_t s);
void kcuda_fill_seeds(uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes, cudaStream_t s);
void kcuda_droppath_backward(float *dx, const float *dy, const float *mask, int N, int64_t per_sample,
                             cudaStream_t s);
/* dx = 0 + dy * mask[sample]: the backward written whole (the bits of zeroing dx first). */
void kcuda_droppath_backward_set(float *dx, const float *dy, const float *mask, int N, int64_t per_sample,
                                 cudaStream_t s);

/* ---- optimisers over one flat parameter vector (PyTorch semantics, see kcpu.h) ---- */
void kcuda_sgd_step(float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd,
                    cudaStream_t s);
void kcuda_adam_step(float *w, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                     float beta2, float eps, float wd, int t, cudaStream_t s);
/* The same with the per-step scalars in device memory (lr[0]; Adam's sc[0] = lr / (1 - b1^t),
 * sc[1] = sqrt(1 - b2^t), kcpu_adam_scalars); nothing changes where any of guard[0..nguard-1]
 * is not finite (rt_backend.sgd_step_dev / adam_step_dev). */
void kcuda_sgd_step_dev(float *w, float *buf, const float *grad, int64_t n, const float *lr, float momentum, float wd,
                        const float *guard, int nguard, cudaStream_t s);
void kcuda_adam_step_dev(float *w, float *m, float *v, const float *grad, int64_t n, const float *sc, float beta1,
                         float beta2, float eps, float wd, const float *guard, int nguard, cudaStream_t s);
/* eps[2] = eta[0] / (2 eps[0]) (eta[0] eps[0] / 2 where bug_mul_r), eta in device memory: the
 * second-order step's final scale after kcuda_hvp_eps wrote the radius eps[0]. */
void kcuda_hvp_scale_dev(float *eps, const float *eta, int bug_mul_r, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
