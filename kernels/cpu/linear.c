/* linear.c — CPU fully connected layer (through cblas_sgemm), embedding lookup and
 * softmax cross-entropy with mean reduction. Reductions over rows go into fixed
 * per-chunk slots combined in order. */
#include "kernels/cpu/kcpu.h"

#include <cblas.h>
/* OpenBLAS pulls in <complex.h>, whose macro I would clobber the parameter name. */
#undef I
#include <math.h>
#include <string.h>

void kcpu_linear_forward(float *y, const float *x, const float *w, const float *b, int N, int I, int O) {
    if (N <= 0 || O <= 0) return;
    if (I <= 0) {
        for (int64_t i = 0; i < (int64_t)N * O; i++) y[i] = 0.0f;
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, x, I, w, I, 0.0f, y, O);
    }
    if (b) {
#pragma omp parallel for schedule(static) if ((int64_t)N * O > 32768)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) y[(int64_t)n * O + o] += b[o];
    }
}

void kcpu_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                          int N, int I, int O) {
    if (N <= 0 || O <= 0) return;
    if (dx && I > 0) /* dx (N,I) += dy (N,O) w (O,I) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O, 1.0f, dy, O, w, I, 1.0f, dx, I);
    if (dw && I > 0) /* dw (O,I) += dy^T (O,N) x (N,I) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N, 1.0f, dy, O, x, I, 1.0f, dw, I);
    if (db) {
#pragma omp parallel for schedule(static) if ((int64_t)N * O > 32768)
        for (int o = 0; o < O; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += dy[(int64_t)n * O + o];
            db[o] += (float)s;
        }
    }
}

void kcpu_embedding_forward(float *y, const int32_t *ids, const float *table, int N, int V, int D) {
#pragma omp parallel for schedule(static) if ((int64_t)N * D > 32768)
    for (int n = 0; n < N; n++) {
        float *yr = y + (int64_t)n * D;
        int32_t id = ids[n];
        if (id < 0 || id >= V) {
            memset(yr, 0, sizeof(float) * (size_t)D); /* out of range: zeros */
            continue;
        }
        memcpy(yr, table + (int64_t)id * D, sizeof(float) * (size_t)D);
    }
}

void kcpu_embedding_backward(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D) {
    if (!dtable) return;
    /* Repeated ids accumulate into one row: rows in order, serially, so the sum order is fixed. */
    for (int n = 0; n < N; n++) {
        int32_t id = ids[n];
        if (id < 0 || id >= V) continue;
        float *tr = dtable + (int64_t)id * D;
        const float *gr = dy + (int64_t)n * D;
        for (int j = 0; j < D; j++) tr[j] += gr[j];
    }
}

#define KCE_MAXCH 256

float kcpu_softmax_ce_forward(float *probs, const float *logits, const int32_t *labels, int N, int K,
                              int *correct) {
    if (N <= 0) {
        if (correct) *correct = 0;
        return 0.0f;
    }
    double lpart[KCE_MAXCH];
    int cpart[KCE_MAXCH];
    int nc = kcpu_num_threads();
    if (nc > KCE_MAXCH) nc = KCE_MAXCH;
    if (nc > N) nc = N;
    if ((int64_t)N * K < 16384) nc = 1;
#pragma omp parallel for schedule(static) num_threads(nc)
    for (int c = 0; c < nc; c++) {
        const int lo = (int)((int64_t)N * c / nc), hi = (int)((int64_t)N * (c + 1) / nc);
        double ls = 0.0;
        int cc = 0;
        for (int n = lo; n < hi; n++) {
            const float *xr = logits + (int64_t)n * K;
            float *pr = probs + (int64_t)n * K;
            float m = -INFINITY;
            int am = 0;
            for (int k = 0; k < K; k++)
                if (xr[k] > m) {
                    m = xr[k];
                    am = k;
                }
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                pr[k] = expf(xr[k] - m);
                s += pr[k];
            }
            const float inv = (float)(1.0 / s);
            for (int k = 0; k < K; k++) pr[k] *= inv;
            const int32_t lab = labels[n];
            if (lab >= 0 && lab < K) {
                ls += -((double)xr[lab] - (double)m - log(s));
                if (am == lab) cc++;
            }
        }
        lpart[c] = ls;
        cpart[c] = cc;
    }
    double loss = 0.0;
    int corr = 0;
    for (int c = 0; c < nc; c++) {
        loss += lpart[c];
        corr += cpart[c];
    }
    if (correct) *correct = corr;
    return (float)(loss / N);
}

void kcpu_softmax_ce_backward(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                              int N, int K) {
    if (!dlogits || N <= 0) return;
    const float s = dloss / (float)N;
#pragma omp parallel for schedule(static) if ((int64_t)N * K > 16384)
    for (int n = 0; n < N; n++) {
        const float *pr = probs + (int64_t)n * K;
        float *dr = dlogits + (int64_t)n * K;
        const int32_t lab = labels[n];
        for (int k = 0; k < K; k++) dr[k] += s * (pr[k] - (k == lab ? 1.0f : 0.0f));
    }
}
