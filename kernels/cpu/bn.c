/* bn.c — CPU batch normalisation over (N, C, HW), PyTorch semantics: biased batch
 * variance to normalise, unbiased variance into the running estimate. Parallel over
 * (sample, channel) planes in sample order; each plane's sums are taken in double over 8
 * independent lanes (kvec.h), and each channel's are added plane by plane in sample
 * order: the same bits for any thread count. */
#include "kernels/cpu/kcpu.h"
#include "kernels/cpu/kvec.h"

#include <math.h>

/* Planes (N*C) up to which the statistics are summed plane by plane, in sample order
 * across threads: each thread reads the samples the convolution or pool before it wrote
 * (those partition by sample too), instead of every sample of some channels, half of them
 * in the other core's cache. The per-plane sums (2 doubles each) live on the stack;
 * beyond this the loop over channels below takes over. Either way each channel's sums
 * are added plane by plane in sample order: the same bits. */
#define BN_PLANES_MAX 8192

static void bn_channel_coefs(float *fm, float *sc, float *sh, double *mean_out, double *var_out, const double *ps,
                             const double *k, const float *gamma, const float *beta, int N, int C, int64_t cnt,
                             float eps) {
    for (int c = 0; c < C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++) {
            s1 += ps[2 * ((int64_t)n * C + c)];
            s2 += ps[2 * ((int64_t)n * C + c) + 1];
        }
        const double m1 = cnt > 0 ? s1 / (double)cnt : 0.0;
        const double mean = k[c] + m1;
        double var = cnt > 0 ? s2 / (double)cnt - m1 * m1 : 0.0;
        if (var < 0.0) var = 0.0;
        const double invstd = 1.0 / sqrt(var + (double)eps);
        const float g = gamma ? gamma[c] : 1.0f;
        fm[c] = (float)mean;
        sc[c] = (float)invstd * g;
        sh[c] = beta ? beta[c] : 0.0f;
        mean_out[c] = mean;
        var_out[c] = var;
    }
}

static void bn_save(float *save_mean, float *save_invstd, float *running_mean, float *running_var, double mean,
                    double var, int64_t cnt, const kbn_desc *d, int c) {
    const double invstd = 1.0 / sqrt(var + (double)d->eps);
    if (save_mean) save_mean[c] = (float)mean;
    if (save_invstd) save_invstd[c] = (float)invstd;
    const double m = d->momentum;
    if (running_mean) running_mean[c] = (float)((1.0 - m) * running_mean[c] + m * mean);
    if (running_var) {
        double unb = cnt > 1 ? var * (double)cnt / (double)(cnt - 1) : var;
        running_var[c] = (float)((1.0 - m) * running_var[c] + m * unb);
    }
}

/* sync_bn (d->sync): the statistics over the shards of every process. Each process takes
 * per channel its count, mean and sum of squared deviations (shifted sums in double, as
 * below), the processes' triples are gathered and merged in process order by Chan et al.'s
 * pairwise update (stable, no cancellation), so every process derives the same mean and
 * variance, the one-process values to rounding. */
static void bn_forward_train_sync(float *y, float *coef, float *save_mean, float *save_invstd, float *running_mean,
                                  float *running_var, const float *x, const float *gamma, const float *beta,
                                  const kbn_desc *d) {
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW;
    double loc[3 * C], mean[C], var[C];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double k = cnt > 0 ? x[(int64_t)c * HW] : 0.0;
        double s1 = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++) kvec_sum_sumsq_f64(x + ((int64_t)n * C + c) * HW, k, HW, &s1, &s2);
        double m2 = cnt > 0 ? s2 - s1 * s1 / (double)cnt : 0.0;
        loc[3 * c] = (double)cnt;
        loc[3 * c + 1] = cnt > 0 ? k + s1 / (double)cnt : 0.0;
        loc[3 * c + 2] = m2 > 0.0 ? m2 : 0.0;
    }
    const double *all = d->sync->gather(d->sync->ctx, loc, 3 * C);
    const int64_t gcnt = kbn_sync_merge(all, d->sync->size, C, mean, var);
    for (int c = 0; c < C; c++) {
        bn_save(save_mean, save_invstd, running_mean, running_var, mean[c], var[c], gcnt, d, c);
        if (coef) {
            coef[c] = (float)mean[c];
            coef[C + c] = (float)(1.0 / sqrt(var[c] + (double)d->eps)) * (gamma ? gamma[c] : 1.0f);
            coef[2 * C + c] = beta ? beta[c] : 0.0f;
        }
    }
    if (!y) return;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < (int64_t)N * C; pl++) {
        const int c = (int)(pl % C);
        const float f = (float)mean[c], sc = (float)(1.0 / sqrt(var[c] + (double)d->eps)) * (gamma ? gamma[c] : 1.0f),
                    b = beta ? beta[c] : 0.0f;
        const float *xp = x + pl * HW;
        float *yp = y + pl * HW;
        for (int i = 0; i < HW; i++) yp[i] = (xp[i] - f) * sc + b;
    }
}

/* The forward from statistics another batch norm of the same input computed (stat: mean
 * [c], biased variance [C + c]): the expressions of both paths below after their sums, so
 * the same bits. */
static void bn_forward_from_stats(float *y, float *coef, float *save_mean, float *save_invstd, float *running_mean,
                                  float *running_var, const float *x, const float *gamma, const float *beta,
                                  const double *stat, const kbn_desc *d) {
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW;
    float fm[C], sc[C], sh[C];
    for (int c = 0; c < C; c++) {
        const double mean = stat[c], var = stat[C + c];
        const double invstd = 1.0 / sqrt(var + (double)d->eps);
        fm[c] = (float)mean;
        sc[c] = (float)invstd * (gamma ? gamma[c] : 1.0f);
        sh[c] = beta ? beta[c] : 0.0f;
        bn_save(save_mean, save_invstd, running_mean, running_var, mean, var, cnt, d, c);
        if (coef) {
            coef[c] = fm[c];
            coef[C + c] = sc[c];
            coef[2 * C + c] = sh[c];
        }
    }
    if (!y) return;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < (int64_t)N * C; pl++) {
        const int c = (int)(pl % C);
        const float *xp = x + pl * HW;
        float *yp = y + pl * HW;
        const float f = fm[c], s = sc[c], b = sh[c];
        for (int i = 0; i < HW; i++) yp[i] = (xp[i] - f) * s + b;
    }
}

/* coef (3 C floats, may be NULL): f, s, b per channel with y = (x - f) * s + b; y NULL: not
 * written. stat_out (2 C doubles, may be NULL): the mean and biased variance, for the batch
 * norms of the same input (kcpu_bn_train_shared). */
static void bn_forward_train(float *y, float *coef, float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, const float *x, const float *gamma, const float *beta,
                             const kbn_desc *d, double *stat_out) {
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW, planes = (int64_t)N * C;
    if (d->sync) {
        bn_forward_train_sync(y, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, d);
        return;
    }
    if (planes > 0 && planes <= BN_PLANES_MAX) {
        double ps[2 * BN_PLANES_MAX], k[C];
        /* shifted sums (shift: the channel's first value, so the variance does not
         * cancel catastrophically when |mean| >> std) */
        for (int c = 0; c < C; c++) k[c] = cnt > 0 ? x[(int64_t)c * HW] : 0.0;
#pragma omp parallel
        {
#pragma omp for schedule(static)
            for (int64_t pl = 0; pl < planes; pl++) {
                double s1 = 0.0, s2 = 0.0;
                kvec_sum_sumsq_f64(x + pl * HW, k[pl % C], HW, &s1, &s2);
                ps[2 * pl] = s1;
                ps[2 * pl + 1] = s2;
            }
            /* every thread derives every channel's coefficients (N*C additions): no
             * second barrier */
            float fm[C], sc[C], sh[C];
            double mean[C], var[C];
            bn_channel_coefs(fm, sc, sh, mean, var, ps, k, gamma, beta, N, C, cnt, d->eps);
#pragma omp master
            for (int c = 0; c < C; c++) {
                bn_save(save_mean, save_invstd, running_mean, running_var, mean[c], var[c], cnt, d, c);
                if (stat_out) {
                    stat_out[c] = mean[c];
                    stat_out[C + c] = var[c];
                }
                if (coef) {
                    coef[c] = fm[c];
                    coef[C + c] = sc[c];
                    coef[2 * C + c] = sh[c];
                }
            }
            if (y) {
#pragma omp for schedule(static) nowait
                for (int64_t pl = 0; pl < planes; pl++) {
                    const int c = (int)(pl % C);
                    const float *xp = x + pl * HW;
                    float *yp = y + pl * HW;
                    const float f = fm[c], s = sc[c], b = sh[c];
                    for (int i = 0; i < HW; i++) yp[i] = (xp[i] - f) * s + b;
                }
            }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
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
        if (coef) {
            coef[c] = fm;
            coef[C + c] = sc;
            coef[2 * C + c] = b;
        }
        for (int n = 0; n < N && y; n++) {
            const float *xp = x + ((int64_t)n * C + c) * HW;
            float *yp = y + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = (xp[i] - fm) * sc + b;
        }
        bn_save(save_mean, save_invstd, running_mean, running_var, mean, var, cnt, d, c);
        if (stat_out) {
            stat_out[c] = mean;
            stat_out[C + c] = var;
        }
    }
}

void kcpu_bn_forward_train(float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, const float *x, const float *gamma, const float *beta,
                           const kbn_desc *d) {
    bn_forward_train(y, NULL, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, d, NULL);
}

void kcpu_bn_coefs_train(float *coef, float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                         const float *x, const float *gamma, const float *beta, const kbn_desc *d) {
    bn_forward_train(NULL, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, d, NULL);
}

void kcpu_bn_train_shared(float *y, float *coef, float *save_mean, float *save_invstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma, const float *beta, double *stat_out,
                          const double *stat_in, const kbn_desc *d) {
    if (stat_in) bn_forward_from_stats(y, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta,
                                       stat_in, d);
    else bn_forward_train(y, coef, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, d, stat_out);
}

/* The inference scale of channel c: 1/sqrt(running_var + eps) times gamma, in float. */
static inline float bn_infer_scale(const float *gamma, const float *running_var, float eps, int c) {
    const float invstd = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
    return invstd * (gamma ? gamma[c] : 1.0f);
}

void kcpu_bn_coefs_infer(float *coef, const float *gamma, const float *beta, const float *running_mean,
                         const float *running_var, const kbn_desc *d) {
    const int C = d->C;
    for (int c = 0; c < C; c++) {
        coef[c] = running_mean[c];
        coef[C + c] = bn_infer_scale(gamma, running_var, d->eps, c);
        coef[2 * C + c] = beta ? beta[c] : 0.0f;
    }
}

void kcpu_bn_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                           const float *running_mean, const float *running_var, const kbn_desc *d) {
    const int N = d->N, C = d->C, HW = d->HW;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < (int64_t)N * C; pl++) {
        int c = (int)(pl % C);
        const float b = beta ? beta[c] : 0.0f, sc = bn_infer_scale(gamma, running_var, d->eps, c), m = running_mean[c];
        const float *xp = x + pl * HW;
        float *yp = y + pl * HW;
        for (int i = 0; i < HW; i++) yp[i] = (xp[i] - m) * sc + b;
    }
}

/* dx (= or +=) g*invstd*(dy - mean(dy) - xhat*mean(dy*xhat)) over one plane; dy read as
 * gs * gp[i] when scaled. */
static inline void bn_dx_plane(float *dp, const float *gp, const float *xp, int HW, float k, float a, float bcoef,
                               float fm, int accumulate, int scaled, float gs) {
    if (scaled) {
        if (accumulate)
            for (int i = 0; i < HW; i++) dp[i] += k * (gs * gp[i] - a - (xp[i] - fm) * bcoef);
        else
            for (int i = 0; i < HW; i++) dp[i] = k * (gs * gp[i] - a - (xp[i] - fm) * bcoef);
        return;
    }
    if (accumulate)
        for (int i = 0; i < HW; i++) dp[i] += k * (gp[i] - a - (xp[i] - fm) * bcoef);
    else
        for (int i = 0; i < HW; i++) dp[i] = k * (gp[i] - a - (xp[i] - fm) * bcoef);
}

/* The plane's two sums, dy read as gs * dy when scaled. */
static inline void bn_dot(const float *gp, const float *xp, double mean, int HW, int scaled, float gs, double *sdy,
                          double *sdyx) {
    if (scaled) kvec_sum_dot_ex(gp, 1, gs, xp, mean, HW, sdy, sdyx);
    else kvec_sum_dot_ex(gp, 0, 1.0f, xp, mean, HW, sdy, sdyx);
}

/* sync_bn: each process's sums of dy and dy * xhat per channel, gathered and added in
 * process order; dx from the sums over every process. dgamma and dbeta keep this
 * process's own sums: the loop's all-reduce of the weight gradients adds them. */
static void bn_backward_sync(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                             const float *x, const float *gamma, const float *save_mean, const float *save_invstd,
                             const kbn_desc *d, int accumulate) {
    const int scaled = dy_scale != NULL;
    const float gs = scaled ? *dy_scale : 1.0f;
    const int N = d->N, C = d->C, HW = d->HW;
    double loc[2 * C];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < N; n++)
            bn_dot(dy + ((int64_t)n * C + c) * HW, x + ((int64_t)n * C + c) * HW, (double)save_mean[c], HW, scaled,
                   gs, &sdy, &sdyx);
        loc[2 * c] = sdy;
        loc[2 * c + 1] = sdyx * save_invstd[c];
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)(sdyx * save_invstd[c]);
    }
    const double *all = d->sync->gather(d->sync->ctx, loc, 2 * C);
    const int64_t gcnt = (int64_t)N * HW * d->sync->size; /* equal shards (the loops check) */
    if (!dx || gcnt == 0) return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int r = 0; r < d->sync->size; r++) {
            sdy += all[(size_t)r * 2 * C + 2 * c];
            sdyx += all[(size_t)r * 2 * C + 2 * c + 1];
        }
        const double invstd = save_invstd[c], g = gamma ? gamma[c] : 1.0;
        const float k = (float)(g * invstd), a = (float)(sdy / (double)gcnt),
                    bcoef = (float)(sdyx / (double)gcnt * invstd), fm = save_mean[c];
        for (int n = 0; n < N; n++)
            bn_dx_plane(dx + ((int64_t)n * C + c) * HW, dy + ((int64_t)n * C + c) * HW, x + ((int64_t)n * C + c) * HW,
                        HW, k, a, bcoef, fm, accumulate, scaled, gs);
    }
}

static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *dy_scale,
                        const float *x, const float *gamma, const float *save_mean, const float *save_invstd,
                        const kbn_desc *d, int accumulate) {
    const int scaled = dy_scale != NULL;
    const float gs = scaled ? *dy_scale : 1.0f;
    const int N = d->N, C = d->C, HW = d->HW;
    const int64_t cnt = (int64_t)N * HW, planes = (int64_t)N * C;
    if (!dx && !dgamma && !dbeta) return;
    if (d->sync) {
        bn_backward_sync(dx, dgamma, dbeta, dy, dy_scale, x, gamma, save_mean, save_invstd, d, accumulate);
        return;
    }
    if (planes > 0 && planes <= BN_PLANES_MAX) { /* plane by plane, as the forward */
        double ps[2 * BN_PLANES_MAX];
#pragma omp parallel
        {
#pragma omp for schedule(static)
            for (int64_t pl = 0; pl < planes; pl++) {
                double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
                bn_dot(dy + pl * HW, x + pl * HW, (double)save_mean[pl % C], HW, scaled, gs, &sdy, &sdyx);
                ps[2 * pl] = sdy;
                ps[2 * pl + 1] = sdyx;
            }
            float kk[C], a[C], bc[C];
            for (int c = 0; c < C; c++) {
                const double invstd = save_invstd[c];
                double sdy = 0.0, sdyx = 0.0;
                for (int n = 0; n < N; n++) {
                    sdy += ps[2 * ((int64_t)n * C + c)];
                    sdyx += ps[2 * ((int64_t)n * C + c) + 1];
                }
                sdyx *= invstd;
#pragma omp master
                {
                    if (dbeta) dbeta[c] += (float)sdy;
                    if (dgamma) dgamma[c] += (float)sdyx;
                }
                const double g = gamma ? gamma[c] : 1.0;
                const double mdy = cnt > 0 ? sdy / (double)cnt : 0.0, mdyx = cnt > 0 ? sdyx / (double)cnt : 0.0;
                kk[c] = (float)(g * invstd);
                a[c] = (float)mdy;
                bc[c] = (float)(mdyx * invstd);
            }
            if (dx && cnt > 0) {
#pragma omp for schedule(static) nowait
                for (int64_t pl = 0; pl < planes; pl++) {
                    const int c = (int)(pl % C);
                    bn_dx_plane(dx + pl * HW, dy + pl * HW, x + pl * HW, HW, kk[c], a[c], bc[c], save_mean[c],
                                accumulate, scaled, gs);
                }
            }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const double mean = save_mean[c], invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy * xhat */
        for (int n = 0; n < N; n++) {
            const float *xp = x + ((int64_t)n * C + c) * HW;
            const float *gp = dy + ((int64_t)n * C + c) * HW;
            bn_dot(gp, xp, mean, HW, scaled, gs, &sdy, &sdyx);
        }
        sdyx *= invstd;
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
        if (!dx || cnt == 0) continue;
        const double g = gamma ? gamma[c] : 1.0;
        const double mdy = sdy / (double)cnt, mdyx = sdyx / (double)cnt;
        const float k = (float)(g * invstd);
        const float a = (float)mdy, bcoef = (float)(mdyx * invstd);
        const float fm = (float)mean;
        for (int n = 0; n < N; n++)
            bn_dx_plane(dx + ((int64_t)n * C + c) * HW, dy + ((int64_t)n * C + c) * HW, x + ((int64_t)n * C + c) * HW,
                        HW, k, a, bcoef, fm, accumulate, scaled, gs);
    }
}

void kcpu_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                      const float *gamma, const float *save_mean, const float *save_invstd,
                      const kbn_desc *d) {
    bn_backward(dx, dgamma, dbeta, dy, NULL, x, gamma, save_mean, save_invstd, d, 1);
}

void kcpu_bn_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                          const float *gamma, const float *save_mean, const float *save_invstd,
                          const kbn_desc *d) {
    bn_backward(dx, dgamma, dbeta, dy, NULL, x, gamma, save_mean, save_invstd, d, 0);
}

void kcpu_bn_backward_scaled(float *dx, float *dgamma, float *dbeta, const float *dy, float dy_scale, const float *x,
                             const float *gamma, const float *save_mean, const float *save_invstd, const kbn_desc *d,
                             int accumulate) {
    bn_backward(dx, dgamma, dbeta, dy, &dy_scale, x, gamma, save_mean, save_invstd, d, accumulate);
}
