/* bn.cu — CUDA batch normalisation over (N, C, HW), the twin of kernels/cpu/bn.c:
 * biased batch variance to normalise, unbiased variance into the running estimate, as
 * PyTorch. One block per channel; the per-channel sums are taken in double, each thread
 * over a fixed strided subset and then a fixed tree (kcuda_block_sum), so results are
 * deterministic. */
#include <math.h>

#include "kcuda_internal.cuh"

__global__ static void bn_fwd_train_k(float *y, float *save_mean, float *save_invstd, float *running_mean,
                                      float *running_var, const float *x, const float *gamma, const float *beta,
                                      kbn_desc d) {
    __shared__ double sh[KCUDA_THREADS];
    const int c = blockIdx.x, C = d.C, HW = d.HW;
    const int64_t cnt = (int64_t)d.N * HW;
#define BN_AT(base, j) (base)[((j) / HW * C + c) * (int64_t)HW + (j) % HW]
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) s += BN_AT(x, j);
    s = kcuda_block_sum(s, sh);
    const double mean = cnt > 0 ? s / (double)cnt : 0.0;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
        double t = BN_AT(x, j) - mean;
        ss += t * t;
    }
    ss = kcuda_block_sum(ss, sh);
    const double var = cnt > 0 ? ss / (double)cnt : 0.0;
    const double invstd = 1.0 / sqrt(var + (double)d.eps);
    const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
    const float sc = (float)invstd * g, fm = (float)mean;
    for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) BN_AT(y, j) = (BN_AT(x, j) - fm) * sc + b;
    if (threadIdx.x == 0) {
        if (save_mean) save_mean[c] = fm;
        if (save_invstd) save_invstd[c] = (float)invstd;
        const double m = d.momentum;
        if (running_mean) running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean);
        if (running_var) {
            double unb = cnt > 1 ? var * (double)cnt / (double)(cnt - 1) : var;
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * unb);
        }
    }
}

__global__ static void bn_fwd_infer_k(float *y, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, kbn_desc d) {
    const int64_t total = (int64_t)d.N * d.C * d.HW;
    KCUDA_GRID_STRIDE(i, total) {
        const int c = (int)(i / d.HW % d.C);
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + (double)d.eps));
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        const float sc = invstd * g, m = running_mean[c];
        y[i] = (x[i] - m) * sc + b;
    }
}

__global__ static void bn_bwd_k(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *gamma, const float *save_mean, const float *save_invstd, kbn_desc d) {
    __shared__ double sh[KCUDA_THREADS];
    const int c = blockIdx.x, C = d.C, HW = d.HW;
    const int64_t cnt = (int64_t)d.N * HW;
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
    for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
        const float gv = BN_AT(dy, j);
        sdy += gv;
        sdyx += (double)gv * ((BN_AT(x, j) - mean) * invstd);
    }
    sdy = kcuda_block_sum(sdy, sh);
    sdyx = kcuda_block_sum(sdyx, sh);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
    if (!dx || cnt == 0) return;
    const double g = gamma ? gamma[c] : 1.0;
    /* dx = g*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) */
    const double mdy = sdy / (double)cnt, mdyx = sdyx / (double)cnt;
    const float k = (float)(g * invstd);
    const float a = (float)mdy, bcoef = (float)(mdyx * invstd);
    const float fm = (float)mean;
    for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x)
        BN_AT(dx, j) += k * (BN_AT(dy, j) - a - (BN_AT(x, j) - fm) * bcoef);
#undef BN_AT
}

extern "C" void kcuda_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                                       float *running_var, const float *x, const float *gamma, const float *beta,
                                       const kbn_desc *d, cudaStream_t s) {
    if (d->C <= 0) return;
    bn_fwd_train_k<<<(unsigned)d->C, KCUDA_THREADS, 0, s>>>(y, save_mean, save_invstd, running_mean, running_var, x,
                                                            gamma, beta, *d);
    launchCheck();
}

extern "C" void kcuda_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var, const kbn_desc *d,
                                       cudaStream_t s) {
    const int64_t total = (int64_t)d->N * d->C * d->HW;
    if (total <= 0) return;
    bn_fwd_infer_k<<<kcuda_blocks(total), KCUDA_THREADS, 0, s>>>(y, x, gamma, beta, running_mean, running_var, *d);
    launchCheck();
}

extern "C" void kcuda_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                  const float *gamma, const float *save_mean, const float *save_invstd,
                                  const kbn_desc *d, cudaStream_t s) {
    if (!dx && !dgamma && !dbeta) return;
    if (d->C <= 0) return;
    bn_bwd_k<<<(unsigned)d->C, KCUDA_THREADS, 0, s>>>(dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd, *d);
    launchCheck();
}
