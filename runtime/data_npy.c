/* data_npy.c — NumPy .npy arrays as a data set (datasets.h). The format
 * (numpy.lib.format): the magic "\x93NUMPY", a major and minor version byte, the header
 * length (2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), then an ASCII
 * (version 3: UTF-8) Python dict literal {'descr': '<f4', 'fortran_order': False,
 * 'shape': (N, H, W), } padded with spaces and a newline, then the raw data. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/datasets.h"
#include "runtime/files.h"

#define NPY_MAX_DIMS 8
#define NPY_MAX_HEADER (1 << 20)
#define NPY_MAX_SAMPLES (1 << 24)

#define seterr rt_data_seterr

typedef struct npy_array {
    char kind;     /* 'u', 'i', 'f', 'b' */
    int size;      /* bytes per element */
    int big;       /* 1: big-endian data */
    char descr[16];
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t count; /* elements */
    unsigned char *data;
} npy_array;

/* Skips spaces; returns the next character pointer. */
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The value after 'key': in the dict text [h, end); NULL when the key is missing. */
static const char *dict_value(const char *h, const char *end, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = h; p + kl + 2 <= end; p++) {
        if ((*p == '\'' || *p == '"') && p[kl + 1] == *p && memcmp(p + 1, key, kl) == 0) {
            const char *q = skip_ws(p + kl + 2, end);
            if (q < end && *q == ':') return skip_ws(q + 1, end);
            return NULL;
        }
    }
    return NULL;
}

static int parse_header(const char *path, const char *h, size_t hl, npy_array *a, char *err, size_t errlen) {
    const char *end = h + hl;
    const char *p = skip_ws(h, end);
    if (p >= end || *p != '{') {
        seterr(err, errlen, "%s: the .npy header is not a dict ('%.40s')", path, h);
        return -1;
    }
    /* descr: '<f4', '|u1', '>i8', ... */
    const char *d = dict_value(h, end, "descr");
    if (!d || d >= end || (*d != '\'' && *d != '"')) {
        seterr(err, errlen, "%s: the .npy header has no 'descr' string (structured arrays are not supported)", path);
        return -1;
    }
    char q = *d++;
    size_t n = 0;
    while (d + n < end && d[n] != q && n < sizeof a->descr - 1) n++;
    if (d + n >= end || d[n] != q) {
        seterr(err, errlen, "%s: unterminated or overlong 'descr' in the .npy header", path);
        return -1;
    }
    memcpy(a->descr, d, n);
    a->descr[n] = 0;
    if (n < 3 || (a->descr[0] != '<' && a->descr[0] != '>' && a->descr[0] != '|' && a->descr[0] != '=') ||
        !strchr("uifb", a->descr[1])) {
        seterr(err, errlen, "%s: unsupported dtype '%s' (expected uint8 '|u1', float32 '<f4', or integer labels)", path,
               a->descr);
        return -1;
    }
    char *num_end;
    long sz = strtol(a->descr + 2, &num_end, 10);
    if (*num_end || !(sz == 1 || sz == 2 || sz == 4 || sz == 8)) {
        seterr(err, errlen, "%s: unsupported dtype '%s'", path, a->descr);
        return -1;
    }
    a->kind = a->descr[1];
    a->size = (int)sz;
    a->big = a->descr[0] == '>';
    /* fortran_order */
    const char *f = dict_value(h, end, "fortran_order");
    if (!f) {
        seterr(err, errlen, "%s: the .npy header has no 'fortran_order'", path);
        return -1;
    }
    if (end - f >= 4 && memcmp(f, "True", 4) == 0) {
        seterr(err, errlen, "%s: fortran_order is True; only C order is supported (save np.ascontiguousarray(x))",
               path);
        return -1;
    }
    if (!(end - f >= 5 && memcmp(f, "False", 5) == 0)) {
        seterr(err, errlen, "%s: 'fortran_order' is neither True nor False", path);
        return -1;
    }
    /* shape: (N, H, W) or (N,) */
    const char *s = dict_value(h, end, "shape");
    if (!s || *s != '(') {
        seterr(err, errlen, "%s: the .npy header has no 'shape' tuple", path);
        return -1;
    }
    s++;
    a->ndim = 0;
    a->count = 1;
    for (;;) {
        s = skip_ws(s, end);
        if (s < end && *s == ')') break;
        if (s >= end || *s < '0' || *s > '9') {
            seterr(err, errlen, "%s: malformed 'shape' in the .npy header", path);
            return -1;
        }
        if (a->ndim == NPY_MAX_DIMS) {
            seterr(err, errlen, "%s: more than %d dimensions", path, NPY_MAX_DIMS);
            return -1;
        }
        errno = 0;
        long long v = strtoll(s, &num_end, 10);
        if (errno || v > ((int64_t)1 << 40)) {
            seterr(err, errlen, "%s: implausible dimension in 'shape'", path);
            return -1;
        }
        s = skip_ws(num_end, end);
        a->shape[a->ndim++] = v;
        a->count *= v;
        if (a->count > ((int64_t)1 << 40)) {
            seterr(err, errlen, "%s: implausibly large array", path);
            return -1;
        }
        if (s < end && *s == ',') s++;
        else if (s < end && *s == ')') break;
        else {
            seterr(err, errlen, "%s: malformed 'shape' in the .npy header", path);
            return -1;
        }
    }
    return 0;
}

/* Reads a whole .npy file: header checked, data exactly count * size bytes. */
static int npy_read(const char *path, npy_array *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    int64_t fsize = 0;
    if (rt_file_input_size(path, &fsize, err, errlen)) return -1;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, fp);
    char *h = NULL;
    if (got < 6 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        seterr(err, errlen, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto fail;
    }
    if (got < 10) {
        seterr(err, errlen, "%s: truncated .npy header", path);
        goto fail;
    }
    int major = pre[6];
    uint32_t hl;
    long data_at;
    if (major == 1) {
        hl = pre[8] | (uint32_t)pre[9] << 8;
        data_at = 10 + (long)hl;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            seterr(err, errlen, "%s: truncated .npy header", path);
            goto fail;
        }
        hl = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        data_at = 12 + (long)hl;
    } else {
        seterr(err, errlen, "%s: unsupported .npy format version %d.%d", path, major, pre[7]);
        goto fail;
    }
    if (hl == 0 || hl > NPY_MAX_HEADER) {
        seterr(err, errlen, "%s: implausible .npy header length %u", path, hl);
        goto fail;
    }
    h = malloc(hl + 1);
    if (!h) {
        seterr(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (fread(h, 1, hl, fp) != hl) {
        seterr(err, errlen, "%s: truncated .npy header (%u bytes announced)", path, hl);
        goto fail;
    }
    h[hl] = 0;
    if (parse_header(path, h, hl, a, err, errlen)) goto fail;
    int64_t bytes = a->count * a->size;
    int64_t have = fsize - data_at;
    if (have < bytes) {
        seterr(err, errlen, "%s: truncated: the header announces %lld bytes of data (%s, shape of %lld elements), the file holds %lld",
               path, (long long)bytes, a->descr, (long long)a->count, (long long)(have < 0 ? 0 : have));
        goto fail;
    }
    if (have > bytes) {
        seterr(err, errlen, "%s: %lld bytes of trailing data after the array", path, (long long)(have - bytes));
        goto fail;
    }
    a->data = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (!a->data) {
        seterr(err, errlen, "%s: out of memory for %lld bytes", path, (long long)bytes);
        goto fail;
    }
    if (fread(a->data, 1, (size_t)bytes, fp) != (size_t)bytes) {
        seterr(err, errlen, "%s: read error: %s", path, ferror(fp) ? strerror(errno) : "short read");
        goto fail;
    }
    free(h);
    fclose(fp);
    return 0;
fail:
    free(h);
    free(a->data);
    a->data = NULL;
    fclose(fp);
    return -1;
}

static uint64_t load_uint(const unsigned char *p, int size, int big) {
    uint64_t v = 0;
    for (int k = 0; k < size; k++) v |= (uint64_t)p[big ? size - 1 - k : k] << (8 * k);
    return v;
}

static float load_f32(const unsigned char *p, int big) {
    uint32_t u = (uint32_t)load_uint(p, 4, big);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Labels: any integer dtype, (N) or (N, 1), each in [0, classes). */
static int npy_labels(const char *path, const npy_array *a, int classes, int32_t **out, int64_t *n, char *err,
                      size_t errlen) {
    if (a->kind != 'i' && a->kind != 'u' && a->kind != 'b') {
        seterr(err, errlen, "%s: labels must have an integer dtype, not '%s'", path, a->descr);
        return -1;
    }
    if (!(a->ndim == 1 || (a->ndim == 2 && a->shape[1] == 1))) {
        seterr(err, errlen, "%s: labels must have shape (N,) or (N, 1), not %d-dimensional", path, a->ndim);
        return -1;
    }
    if (a->shape[0] < 1 || a->shape[0] > NPY_MAX_SAMPLES) {
        seterr(err, errlen, "%s: implausible label count %lld (expected 1..%d)", path, (long long)a->shape[0],
               NPY_MAX_SAMPLES);
        return -1;
    }
    *n = a->shape[0];
    int32_t *lab = malloc((size_t)*n * sizeof *lab);
    if (!lab) {
        seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int64_t i = 0; i < *n; i++) {
        uint64_t u = load_uint(a->data + i * a->size, a->size, a->big);
        int64_t v;
        if (a->kind == 'i' && a->size < 8 && (u >> (8 * a->size - 1)) & 1) v = (int64_t)(u | (~(uint64_t)0 << (8 * a->size)));
        else v = (int64_t)u;
        if ((a->kind == 'u' && u >= (uint64_t)classes) || v < 0 || v >= classes) {
            if (a->kind == 'u')
                seterr(err, errlen, "%s: label %llu at index %lld out of range (expected 0..%d)", path,
                       (unsigned long long)u, (long long)i, classes - 1);
            else
                seterr(err, errlen, "%s: label %lld at index %lld out of range (expected 0..%d)", path, (long long)v,
                       (long long)i, classes - 1);
            free(lab);
            return -1;
        }
        lab[i] = (int32_t)v;
    }
    *out = lab;
    return 0;
}

/* Images: decides the layout, checks the dtype and values, converts to want's NCHW. */
static int npy_images(const char *path, const npy_array *a, const rt_data_want *want, uint8_t **out, char *err,
                      size_t errlen) {
    int fl = a->kind == 'f' && a->size == 4, u8 = a->kind == 'u' && a->size == 1;
    if (!fl && !u8) {
        seterr(err, errlen, "%s: images must be uint8 or float32, not '%s' (convert with x.astype(np.uint8) or "
                            "x.astype(np.float32))",
               path, a->descr);
        return -1;
    }
    const int64_t H = want->h, W = want->w;
    int64_t n = a->shape[0];
    int sc = 0, last = 0; /* source channels; 1: channels last */
    char shape[160];
    int k = snprintf(shape, sizeof shape, "(");
    for (int i = 0; i < a->ndim && k < (int)sizeof shape - 24; i++)
        k += snprintf(shape + k, sizeof shape - k, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    snprintf(shape + k, sizeof shape - k, ")");
    if (a->ndim == 3) {
        if (a->shape[1] != H || a->shape[2] != W) {
            seterr(err, errlen, "%s: images of shape %s are not N x %lld x %lld as 'input' asks (dartsc does not resize "
                                "arrays)",
                   path, shape, (long long)H, (long long)W);
            return -1;
        }
        sc = 1;
    } else if (a->ndim == 4) {
        int cl = (a->shape[3] == 1 || a->shape[3] == 3) && a->shape[1] == H && a->shape[2] == W;
        int cf = (a->shape[1] == 1 || a->shape[1] == 3) && a->shape[2] == H && a->shape[3] == W;
        if (cl && cf) { /* only (N, k, k, k) with input k x k x k, k = 1 or 3: both readings have k channels */
            seterr(err, errlen, "%s: images of shape %s are ambiguous: both N x H x W x C and N x C x H x W fit input "
                                "%dx%dx%d (transpose them to one layout with a different size, or resize)",
                   path, shape, want->c, want->h, want->w);
            return -1;
        }
        if (!cl && !cf) {
            seterr(err, errlen, "%s: images of shape %s fit neither N x %lld x %lld x C nor N x C x %lld x %lld with C 1 "
                                "or 3 (input %dx%dx%d; dartsc does not resize arrays)",
                   path, shape, (long long)H, (long long)W, (long long)H, (long long)W, want->c, want->h, want->w);
            return -1;
        }
        last = cl;
        sc = (int)(cl ? a->shape[3] : a->shape[1]);
    } else {
        seterr(err, errlen, "%s: images must be N x H x W, N x H x W x C or N x C x H x W, not shape %s", path, shape);
        return -1;
    }
    if (n < 1 || n > NPY_MAX_SAMPLES) {
        seterr(err, errlen, "%s: implausible image count %lld (expected 1..%d)", path, (long long)n, NPY_MAX_SAMPLES);
        return -1;
    }
    const size_t hw = (size_t)H * W, dc = (size_t)want->c;
    uint8_t *pix = malloc((size_t)n * dc * hw);
    uint8_t *tmp = malloc((size_t)sc * hw);
    if (!pix || !tmp) {
        free(pix);
        free(tmp);
        seterr(err, errlen, "%s: out of memory for %lld images", path, (long long)n);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *src = a->data + (size_t)i * sc * hw * a->size;
        /* tmp = image i planar (C, H, W) in 8 bits */
        for (size_t p = 0; p < hw; p++) {
            for (int c = 0; c < sc; c++) {
                size_t e = last ? p * sc + c : (size_t)c * hw + p;
                uint8_t v;
                if (u8) v = src[e];
                else {
                    float x = load_f32(src + e * 4, a->big);
                    if (!(x >= 0.0f && x <= 1.0f)) {
                        seterr(err, errlen, "%s: float32 value %g at image %lld is outside [0, 1] (write uint8 pixels, or "
                                            "float32 scaled to [0, 1] before any normalisation)",
                               path, (double)x, (long long)i);
                        free(pix);
                        free(tmp);
                        return -1;
                    }
                    v = (uint8_t)lrintf(x * 255.0f);
                }
                tmp[(size_t)c * hw + p] = v;
            }
        }
        if (rt_data_convert_channels(pix + (size_t)i * dc * hw, want->c, tmp, sc, hw)) {
            seterr(err, errlen, "%s: cannot convert %d-channel images to the %d channels 'input' asks for", path, sc,
                   want->c);
            free(pix);
            free(tmp);
            return -1;
        }
    }
    free(tmp);
    *out = pix;
    return 0;
}

int rt_data_load_npy(const char *dir, int train, const rt_data_want *want, rt_dataset *out, char *err, size_t errlen) {
    if (!out) {
        seterr(err, errlen, "npy: no output dataset");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) {
        seterr(err, errlen, "npy: no directory given (data npy \"DIR\" with x_train.npy, y_train.npy, x_test.npy, "
                            "y_test.npy)");
        return -1;
    }
    if (!want || want->c < 1 || want->c > RT_DATA_MAX_C || want->h < 1 || want->w < 1 || want->classes < 1) {
        seterr(err, errlen, "npy: bad input shape or class count");
        return -1;
    }
    const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
    char xp[4200], yp[4200];
    snprintf(xp, sizeof xp, "%s%sx_%s.npy", dir, sep, train ? "train" : "test");
    snprintf(yp, sizeof yp, "%s%sy_%s.npy", dir, sep, train ? "train" : "test");
    npy_array x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    int32_t *labels = NULL;
    uint8_t *pix = NULL;
    int64_t nl = 0;
    if (npy_read(yp, &y, err, errlen)) goto fail;
    if (npy_labels(yp, &y, want->classes, &labels, &nl, err, errlen)) goto fail;
    free(y.data);
    y.data = NULL;
    if (npy_read(xp, &x, err, errlen)) goto fail;
    if (x.ndim >= 1 && x.shape[0] != nl) {
        seterr(err, errlen, "%s: count mismatch: %lld images but %s has %lld labels", xp, (long long)x.shape[0], yp,
               (long long)nl);
        goto fail;
    }
    if (npy_images(xp, &x, want, &pix, err, errlen)) goto fail;
    free(x.data);
    rt_dataset_own(out, nl, want->c, want->h, want->w, want->classes, pix, labels);
    return 0;
fail:
    free(x.data);
    free(y.data);
    free(labels);
    free(pix);
    memset(out, 0, sizeof *out);
    return -1;
}
