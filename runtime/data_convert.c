/* data_convert.c — what the user data sources share (datasets.h): channel conversion,
 * antialiased resizing and per-channel statistics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/datasets.h"

int rt_data_convert_channels(uint8_t *dst, int dc, const uint8_t *src, int sc, size_t hw) {
    if (dc == sc) {
        memcpy(dst, src, (size_t)dc * hw);
        return 0;
    }
    if (sc == 1) {
        for (int c = 0; c < dc; c++) memcpy(dst + (size_t)c * hw, src, hw);
        return 0;
    }
    if (dc == 1 && (sc == 3 || sc == 4)) {
        const uint8_t *r = src, *g = src + hw, *b = src + 2 * hw;
        for (size_t i = 0; i < hw; i++) dst[i] = (uint8_t)((299u * r[i] + 587u * g[i] + 114u * b[i] + 500u) / 1000u);
        return 0;
    }
    if (dc == 3 && sc == 4) {
        memcpy(dst, src, 3 * hw);
        return 0;
    }
    if (dc == 1 && sc == 2) {
        memcpy(dst, src, hw);
        return 0;
    }
    return -1;
}

/* The taps of one axis: output i reads in[first[i] .. first[i] + count[i]) with weights
 * w[i * maxk + k], which sum to 1. Triangle of half-width 1 in output units, widened to
 * the scale factor when shrinking (PIL's BILINEAR resampling). */
typedef struct axis_taps {
    int maxk;
    int *first, *count;
    float *w;
} axis_taps;

static void taps_free(axis_taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

static int taps_make(axis_taps *t, int in, int out) {
    double scale = (double)in / out;
    double fs = scale > 1.0 ? scale : 1.0; /* filter scale: widened when shrinking */
    double support = fs;                   /* the triangle's half-width is 1 */
    t->maxk = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out * sizeof *t->first);
    t->count = malloc((size_t)out * sizeof *t->count);
    t->w = malloc((size_t)out * t->maxk * sizeof *t->w);
    if (!t->first || !t->count || !t->w) {
        taps_free(t);
        return -1;
    }
    for (int i = 0; i < out; i++) {
        double centre = (i + 0.5) * scale;
        int lo = (int)floor(centre - support + 0.5), hi = (int)floor(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > t->maxk) hi = lo + t->maxk;
        double sum = 0, ww[64 + 1];
        double *wp = t->maxk <= 65 ? ww : NULL;
        float *wi = t->w + (size_t)i * t->maxk;
        int n = hi - lo;
        for (int k = 0; k < n; k++) {
            double d = fabs((lo + k + 0.5 - centre) / fs);
            double v = d < 1.0 ? 1.0 - d : 0.0;
            if (wp) wp[k] = v;
            wi[k] = (float)v;
            sum += v;
        }
        if (sum <= 0) { /* cannot happen for in >= 1, but keep the output defined */
            lo = (int)floor(centre);
            if (lo >= in) lo = in - 1;
            n = 1;
            wi[0] = 1.0f;
        } else {
            for (int k = 0; k < n; k++) wi[k] = (float)((wp ? wp[k] : (double)wi[k]) / sum);
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    return 0;
}

int rt_data_resize(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw) {
    if (dh == sh && dw == sw) {
        memcpy(dst, src, (size_t)dh * dw);
        return 0;
    }
    axis_taps ty, tx;
    memset(&ty, 0, sizeof ty);
    memset(&tx, 0, sizeof tx);
    float *tmp = malloc((size_t)dh * sw * sizeof *tmp);
    if (!tmp || taps_make(&ty, sh, dh) || taps_make(&tx, sw, dw)) {
        free(tmp);
        taps_free(&ty);
        taps_free(&tx);
        return -1;
    }
    /* rows first (dh x sw), then columns */
    for (int i = 0; i < dh; i++) {
        float *o = tmp + (size_t)i * sw;
        for (int x = 0; x < sw; x++) o[x] = 0.0f;
        const float *w = ty.w + (size_t)i * ty.maxk;
        for (int k = 0; k < ty.count[i]; k++) {
            const uint8_t *s = src + (size_t)(ty.first[i] + k) * sw;
            float wk = w[k];
            for (int x = 0; x < sw; x++) o[x] += wk * (float)s[x];
        }
    }
    for (int i = 0; i < dh; i++) {
        const float *s = tmp + (size_t)i * sw;
        uint8_t *o = dst + (size_t)i * dw;
        for (int j = 0; j < dw; j++) {
            const float *w = tx.w + (size_t)j * tx.maxk;
            float acc = 0.0f;
            for (int k = 0; k < tx.count[j]; k++) acc += w[k] * s[tx.first[j] + k];
            long v = lrintf(acc);
            o[j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(tmp);
    taps_free(&ty);
    taps_free(&tx);
    return 0;
}

void rt_data_channel_stats(const rt_dataset *d, float *mean, float *std) {
    const size_t hw = (size_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        /* exact integer sums: a histogram per channel */
        uint64_t hist[256];
        memset(hist, 0, sizeof hist);
        for (int i = 0; i < d->n; i++) {
            const uint8_t *p = d->pixels + ((size_t)i * d->c + c) * hw;
            for (size_t k = 0; k < hw; k++) hist[p[k]]++;
        }
        double n = 0, s = 0, s2 = 0;
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0;
            n += (double)hist[v];
            s += (double)hist[v] * x;
        }
        double m = n > 0 ? s / n : 0.0;
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0 - m;
            s2 += (double)hist[v] * x * x;
        }
        mean[c] = (float)m;
        std[c] = (float)(n > 0 ? sqrt(s2 / n) : 0.0);
    }
}
