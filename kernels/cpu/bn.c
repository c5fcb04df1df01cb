/* bn.c — CPU batch normalisation over (N, C, HW), PyTorch semantics: biased batch
 * variance to normalise, unbiased variance into the running estimate. Parallel over
 * channels; each channel's statistics are summed in double in a fixed order, over 8
 * independent lanes (kvec.h), not one serial chain of dependent additions. */
#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/kvec.h"

#include <math.h>

void kcpu_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, const float *x, const float *gamma, const float *beta,
                           const kbn_desc *d) {
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        /* one pass of shifted sums (shift: the channel's first value, so the variance
         * does not cancel catastrophically when |mean| >> std) */
        const double k = cnt > 0 ? x[(int64_t)c * HW] : 0.0;
        double s1 = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++) kvec_sum_sumsq_f64(x + ((int64_t)n * C + c) * HW, k, HW, &s1, &s2);
        const double m1 = cnt > 0 ? s1 / (double)cnt : 0.0;
        const double mean = k + m1;
        double var = cnt > 0 ? s2 / (double)cnt - m1 * m1 : 0.0;
        if (var < 0.0) var = 0.0;
        const double invstd = 1.0 / sqrt(var + (double)d->eps);
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        const float sc = (float)invstd * g, fm = (float)mean;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((int64_t)n * C + c) * HW;
            float *yp = y + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = (xp[i] - fm) * sc + b;
        }
        if (save_mean) save_mean[c] = fm;
        if (save_invstd) save_invstd[c] = (float)invstd;
        const double m = d->momentum;
        if (running_mean) running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean);
        if (running_var) {
            double unb = cnt > 1 ? var * (double)cnt / (double)(cnt - 1) : var;
            running_var[c] = (float)((1.0 - m) * running_var[c] + m * unb);
        }
    }
}

void kcpu_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                           const float *running_mean, const float *running_var, const kbn_desc *d) {
    const int N = d->N, C = d->C, HW = d->HW;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < (int64_t)N * C; pl++) {
        int c = (int)(pl % C);
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + (double)d->eps));
        const float g = gamma ? gamma[c] : 1.0f, b = beta ? beta[c] : 0.0f;
        const float sc = invstd * g, m = running_mean[c];
        const float *xp = x + pl * HW;
        float *yp = y + pl * HW;
        for (int i = 0; i < HW; i++) yp[i] = (xp[i] - m) * sc + b;
    }
}

static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *gamma, const float *save_mean, const float *save_invstd,
                        const kbn_desc *d, int accumulate) {
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW;
    if (!dx && !dgamma && !dbeta) return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((int64_t)n * C + c) * HW;
            const float *gp = dy + ((int64_t)n * C + c) * HW;
            kvec_sum_dot_f64(gp, xp, mean, HW, &sdy, &sdyx);
        }
        sdyx *= invstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (!dx || cnt == 0) continue;
        const double g = gamma ? gamma[c] : 1.0;
        /* dx = g*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) */
        const double mdy = sdy / (double)cnt, mdyx = sdyx / (double)cnt;
        const float k = (float)(g * invstd);
        const float a = (float)mdy, bcoef = (float)(mdyx * invstd);
        const float fm = (float)mean;
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((int64_t)n * C + c) * HW;
            const float *gp = dy + ((int64_t)n * C + c) * HW;
            float *dp = dx + ((int64_t)n * C + c) * HW;
            if (accumulate)
                for (int i = 0; i < HW; i++) dp[i] += k * (gp[i] - a - (xp[i] - fm) * bcoef);
            else
                for (int i = 0; i < HW; i++) dp[i] = k * (gp[i] - a - (xp[i] - fm) * bcoef);
        }
    }
}

void kcpu_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                      const float *gamma, const float *save_mean, const float *save_invstd,
                      const kbn_desc *d) {
    bn_backward(dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd, d, 1);
}

void kcpu_bn_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                          const float *gamma, const float *save_mean, const float *save_invstd,
                          const kbn_desc *d) {
    bn_backward(dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd, d, 0);
}
