/* data.c — see data.h. */
#include "runtime/data.h"
#include "runtime/datasets.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "kernels/kdesc.h"
#include "runtime/files.h"

#define IDX3_MAGIC 0x00000803u
#define IDX1_MAGIC 0x00000801u
#define MAX_SAMPLES (1 << 24)
#define CIFAR_REC 3073
#define CIFAR_PIX 3072
#define CIFAR_OFFICIAL_RECORDS 10000

/* Tags that separate the random streams of the permutation and the augmentation. */
#define PERM_TAG 0x5045524D5045524Dull
#define AUG_TAG 0x4155474D4155474Dull

void rt_data_seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
#define seterr rt_data_seterr

void rt_dataset_own(rt_dataset *out, int64_t n, int c, int h, int w, int classes, uint8_t *pixels, int32_t *labels) {
    out->n = (int)n;
    out->c = c;
    out->h = h;
    out->w = w;
    out->classes = classes;
    out->pixels = pixels;
    out->labels = labels;
    out->owns = 1;
}

static void join_path(char *buf, size_t len, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    if (dl > 0 && dir[dl - 1] == '/')
        snprintf(buf, len, "%s%s", dir, name);
    else
        snprintf(buf, len, "%s/%s", dir, name);
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- gzip IDX ------------------------------------------------------------------------ */

/* Opens path as gzip, refusing a missing file and a file without the gzip magic (zlib
 * would otherwise read it transparently). */
static gzFile gz_open_checked(const char *path, char *err, size_t errlen) {
    if (rt_file_check_input(path, err, errlen)) return NULL; /* a directory, a FIFO, ... */
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char m[2] = {0, 0};
    size_t k = fread(m, 1, 2, f);
    fclose(f);
    if (k < 2 || m[0] != 0x1f || m[1] != 0x8b) {
        seterr(err, errlen, "%s: not gzip (the file does not start with 1f 8b)", path);
        return NULL;
    }
    gzFile g = gzopen(path, "rb");
    if (!g) {
        seterr(err, errlen, "%s: cannot open: %s", path,
               errno ? strerror(errno) : "zlib out of memory");
        return NULL;
    }
    gzbuffer(g, 1u << 17);
    return g;
}

/* zlib's gzerror text starts with the path; drop it (the caller names the file). */
static const char *zlib_msg(gzFile g, int *zerr, const char *path) {
    const char *m = gzerror(g, zerr);
    size_t pl = strlen(path);
    if (m && strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ') m += pl + 2;
    return m ? m : "";
}

/* Reads up to n bytes into buf; *got receives the count read. Returns 0 (complete, or
 * short at a clean end of data), or -1 on a zlib error (truncated stream, corrupt data,
 * bad CRC), with *zerr set to zlib's error number and *zmsg to its message. */
static int gz_read_full(gzFile g, const char *path, void *buf, int64_t n, int64_t *got,
                        int *zerr, const char **zmsg) {
    unsigned char *p = buf;
    *got = 0;
    *zerr = Z_OK;
    *zmsg = "";
    while (*got < n) {
        int64_t want = n - *got;
        if (want > (1 << 30)) want = 1 << 30;
        int r = gzread(g, p + *got, (unsigned)want);
        if (r < 0) {
            *zmsg = zlib_msg(g, zerr, path);
            return -1;
        }
        if (r == 0) {
            /* End of data: a truncated stream shows up as an error in gzerror. */
            int e = Z_OK;
            const char *m = zlib_msg(g, &e, path);
            if (e != Z_OK) {
                *zerr = e;
                *zmsg = m;
                return -1;
            }
            break;
        }
        *got += r;
    }
    return 0;
}

/* Reads exactly expected*unit bytes of `what` (e.g. "labels"), or fails with a message
 * naming the file, what was expected and what was found. */
static int gz_read_exact(gzFile g, const char *path, void *buf, int64_t expected,
                         int64_t unit, const char *what, char *err, size_t errlen) {
    int64_t got;
    int zerr;
    const char *zmsg;
    int rc = gz_read_full(g, path, buf, expected * unit, &got, &zerr, &zmsg);
    if (rc == 0 && got == expected * unit) return 0;
    if (rc == 0) {
        seterr(err, errlen, "%s: truncated: expected %lld %s, got %lld", path,
               (long long)expected, what, (long long)(got / unit));
    } else if (zerr == Z_BUF_ERROR) {
        seterr(err, errlen, "%s: truncated gzip stream: expected %lld %s, got %lld (zlib: %s)",
               path, (long long)expected, what, (long long)(got / unit), zmsg);
    } else {
        seterr(err, errlen, "%s: corrupt gzip data while reading %lld %s (zlib: %s)", path,
               (long long)expected, what, zmsg);
    }
    return -1;
}

/* After the expected payload, the stream must end cleanly (this also checks the CRC). */
static int check_no_trailing(gzFile g, const char *path, int64_t count, const char *what,
                             char *err, size_t errlen) {
    unsigned char extra;
    int64_t got;
    int zerr;
    const char *zmsg;
    if (gz_read_full(g, path, &extra, 1, &got, &zerr, &zmsg) < 0) {
        seterr(err, errlen, "%s: %s gzip stream after %lld %s (zlib: %s)", path,
               zerr == Z_BUF_ERROR ? "truncated" : "corrupt", (long long)count, what, zmsg);
        return -1;
    }
    if (got > 0) {
        seterr(err, errlen, "%s: trailing data after %lld %s", path, (long long)count, what);
        return -1;
    }
    return 0;
}

/* Reads a header of hlen bytes (8 for IDX1, 16 for IDX3) and checks its magic. */
static int idx_header(gzFile g, const char *path, unsigned char *hdr, int hlen,
                      uint32_t magic, const char *magic_name, char *err, size_t errlen) {
    int64_t got;
    int zerr;
    const char *zmsg;
    if (gz_read_full(g, path, hdr, hlen, &got, &zerr, &zmsg) < 0) {
        seterr(err, errlen, "%s: %s gzip stream in the IDX header (zlib: %s)", path,
               zerr == Z_BUF_ERROR ? "truncated" : "corrupt", zmsg);
        return -1;
    }
    if (got >= 4 && be32(hdr) != magic) {
        seterr(err, errlen, "%s: bad magic 0x%08x (expected %s 0x%08x)", path, be32(hdr),
               magic_name, magic);
        return -1;
    }
    if (got < hlen) {
        seterr(err, errlen, "%s: truncated: IDX header is %lld of %d bytes", path,
               (long long)got, hlen);
        return -1;
    }
    return 0;
}

int rt_data_load_fashion_mnist(const char *dir, int train, rt_dataset *out, char *err,
                               size_t errlen) {
    if (!out) {
        seterr(err, errlen, "fashion-mnist: no output dataset");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) dir = RT_DATA_FMNIST_DEFAULT_DIR;
    const char *pre = train ? "train" : "t10k";
    char ipath[4096], lpath[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", pre);
    join_path(ipath, sizeof ipath, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", pre);
    join_path(lpath, sizeof lpath, dir, name);

    uint8_t *lab8 = NULL, *pix = NULL;
    int32_t *labels = NULL;
    gzFile g = NULL;
    unsigned char hdr[16];

    /* Labels. */
    g = gz_open_checked(lpath, err, errlen);
    if (!g) goto fail;
    if (idx_header(g, lpath, hdr, 8, IDX1_MAGIC, "IDX1 labels", err, errlen)) goto fail;
    uint32_t nl = be32(hdr + 4);
    if (nl == 0 || nl > MAX_SAMPLES) {
        seterr(err, errlen, "%s: implausible label count %u (expected 1..%d)", lpath, nl,
               MAX_SAMPLES);
        goto fail;
    }
    lab8 = malloc(nl);
    labels = malloc((size_t)nl * sizeof *labels);
    if (!lab8 || !labels) {
        seterr(err, errlen, "%s: out of memory for %u labels", lpath, nl);
        goto fail;
    }
    if (gz_read_exact(g, lpath, lab8, nl, 1, "labels", err, errlen)) goto fail;
    if (check_no_trailing(g, lpath, nl, "labels", err, errlen)) goto fail;
    gzclose(g);
    g = NULL;
    for (uint32_t i = 0; i < nl; i++) {
        if (lab8[i] >= 10) {
            seterr(err, errlen, "%s: label %d at index %u out of range (expected 0..9)",
                   lpath, lab8[i], i);
            goto fail;
        }
        labels[i] = lab8[i];
    }
    free(lab8);
    lab8 = NULL;

    /* Images. */
    g = gz_open_checked(ipath, err, errlen);
    if (!g) goto fail;
    if (idx_header(g, ipath, hdr, 16, IDX3_MAGIC, "IDX3 images", err, errlen)) goto fail;
    uint32_t ni = be32(hdr + 4), rows = be32(hdr + 8), cols = be32(hdr + 12);
    if (rows != 28 || cols != 28) {
        seterr(err, errlen, "%s: bad image size %ux%u (expected 28x28)", ipath, rows, cols);
        goto fail;
    }
    if (ni != nl) {
        seterr(err, errlen, "%s: count mismatch: %u images but %s has %u labels", ipath, ni,
               lpath, nl);
        goto fail;
    }
    int64_t nbytes = (int64_t)ni * 28 * 28;
    pix = malloc((size_t)nbytes);
    if (!pix) {
        seterr(err, errlen, "%s: out of memory for %u images", ipath, ni);
        goto fail;
    }
    if (gz_read_exact(g, ipath, pix, ni, 28 * 28, "images", err, errlen)) goto fail;
    if (check_no_trailing(g, ipath, ni, "images", err, errlen)) goto fail;
    gzclose(g);
    g = NULL;

    rt_dataset_own(out, ni, 1, 28, 28, 10, pix, labels);
    return 0;

fail:
    if (g) gzclose(g);
    free(lab8);
    free(labels);
    free(pix);
    memset(out, 0, sizeof *out);
    return -1;
}

/* ---- CIFAR-10 ------------------------------------------------------------------------- */

int rt_data_load_cifar10(const char *dir, int train, rt_dataset *out, char *err,
                         size_t errlen) {
    if (!out) {
        seterr(err, errlen, "cifar10: no output dataset");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) {
        seterr(err, errlen, "cifar10: no directory given (the binary batches are not "
                            "packaged; download cifar-10-binary and pass its directory)");
        return -1;
    }
    int nfiles = train ? 5 : 1;
    char paths[5][4096];
    int64_t recs[5];
    int64_t total = 0;
    for (int i = 0; i < nfiles; i++) {
        char name[64];
        if (train)
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        join_path(paths[i], sizeof paths[i], dir, name);
        int64_t sz = 0;
        if (rt_file_input_size(paths[i], &sz, err, errlen)) return -1;
        if (sz <= 0 || sz % CIFAR_REC != 0) {
            seterr(err, errlen,
                   "%s: bad size %lld bytes: not a positive multiple of the %d-byte record "
                   "(the official files are %lld bytes, %d records)",
                   paths[i], (long long)sz, CIFAR_REC,
                   (long long)CIFAR_REC * CIFAR_OFFICIAL_RECORDS, CIFAR_OFFICIAL_RECORDS);
            return -1;
        }
        recs[i] = sz / CIFAR_REC;
        total += recs[i];
    }
    if (total > MAX_SAMPLES) {
        seterr(err, errlen, "%s: implausible total of %lld records", dir, (long long)total);
        return -1;
    }
    uint8_t *pix = malloc((size_t)total * CIFAR_PIX);
    int32_t *labels = malloc((size_t)total * sizeof *labels);
    if (!pix || !labels) {
        seterr(err, errlen, "%s: out of memory for %lld images", dir, (long long)total);
        goto fail;
    }
    int64_t k = 0;
    for (int i = 0; i < nfiles; i++) {
        FILE *f = fopen(paths[i], "rb"); /* each checked a regular file in the loop above */
        if (!f) {
            seterr(err, errlen, "%s: cannot open: %s", paths[i], strerror(errno));
            goto fail;
        }
        for (int64_t r = 0; r < recs[i]; r++, k++) {
            unsigned char lab;
            if (fread(&lab, 1, 1, f) != 1 ||
                fread(pix + k * CIFAR_PIX, 1, CIFAR_PIX, f) != CIFAR_PIX) {
                seterr(err, errlen, "%s: read error or truncated at record %lld", paths[i],
                       (long long)r);
                fclose(f);
                goto fail;
            }
            if (lab >= 10) {
                seterr(err, errlen, "%s: label %d at record %lld out of range (expected 0..9)",
                       paths[i], lab, (long long)r);
                fclose(f);
                goto fail;
            }
            labels[k] = lab;
        }
        fclose(f);
    }
    rt_dataset_own(out, total, 3, 32, 32, 10, pix, labels);
    return 0;

fail:
    free(pix);
    free(labels);
    memset(out, 0, sizeof *out);
    return -1;
}

void rt_dataset_free(rt_dataset *d) {
    if (!d) return;
    if (d->owns) {
        free(d->pixels);
        free(d->labels);
    }
    memset(d, 0, sizeof *d);
}

int rt_data_subset(const rt_dataset *d, int start, int count, rt_dataset *view) {
    if (!view) return -1;
    if (!d || start < 0 || count < 0 || start > d->n || count > d->n - start) {
        memset(view, 0, sizeof *view);
        return -1;
    }
    rt_dataset v = *d;
    size_t chw = (size_t)d->c * d->h * d->w;
    v.n = count;
    v.pixels = d->pixels ? d->pixels + (size_t)start * chw : NULL;
    v.labels = d->labels ? d->labels + start : NULL;
    v.owns = 0;
    *view = v;
    return 0;
}

/* ---- loader --------------------------------------------------------------------------- */

rt_loader_cfg rt_loader_cfg_default(void) {
    rt_loader_cfg c;
    memset(&c, 0, sizeof c);
    c.batch_size = 64;
    c.shuffle = 1;
    for (int i = 0; i < RT_DATA_MAX_C; i++) c.std[i] = 1.0f;
    return c;
}

/* The permutation of the current epoch: Fisher-Yates with krng_hash as randomness. */
static void build_perm(rt_loader *l) {
    int64_t n = l->d.n;
    for (int64_t i = 0; i < n; i++) l->perm[i] = (int32_t)i;
    if (!l->cfg.shuffle) return;
    uint64_t s = krng_hash(l->cfg.seed ^ PERM_TAG, (uint64_t)l->epoch);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(krng_hash(s, (uint64_t)i) % (uint64_t)(i + 1));
        int32_t t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
}

int rt_loader_init(rt_loader *l, const rt_dataset *d, const rt_loader_cfg *cfg, char *err,
                   size_t errlen) {
    if (!l) {
        seterr(err, errlen, "loader: NULL loader");
        return -1;
    }
    memset(l, 0, sizeof *l);
    if (!d || !cfg) {
        seterr(err, errlen, "loader: NULL dataset or config");
        return -1;
    }
    if (d->n <= 0 || !d->pixels || !d->labels) {
        seterr(err, errlen, "loader: empty dataset");
        return -1;
    }
    if (d->c <= 0 || d->h <= 0 || d->w <= 0) {
        seterr(err, errlen, "loader: bad image shape %dx%dx%d", d->c, d->h, d->w);
        return -1;
    }
    if (cfg->batch_size <= 0) {
        seterr(err, errlen, "loader: batch size %d must be positive", cfg->batch_size);
        return -1;
    }
    if (cfg->crop_pad < 0 || cfg->crop_pad > 4096) {
        seterr(err, errlen, "loader: crop padding %d out of range (0..4096)", cfg->crop_pad);
        return -1;
    }
    if (cfg->cutout < 0) {
        seterr(err, errlen, "loader: cutout size %d must be >= 0", cfg->cutout);
        return -1;
    }
    if (cfg->normalize) {
        if (d->c > RT_DATA_MAX_C) {
            seterr(err, errlen, "loader: normalisation supports at most %d channels, got %d",
                   RT_DATA_MAX_C, d->c);
            return -1;
        }
        for (int c = 0; c < d->c; c++) {
            if (!(cfg->std[c] > 0.0f) || !isfinite(cfg->std[c]) || !isfinite(cfg->mean[c])) {
                seterr(err, errlen, "loader: channel %d: std %g must be positive and finite "
                                    "(mean %g)",
                       c, (double)cfg->std[c], (double)cfg->mean[c]);
                return -1;
            }
        }
    }
    int64_t end = cfg->drop_last ? (int64_t)(d->n / cfg->batch_size) * cfg->batch_size : d->n;
    if (end == 0) {
        seterr(err, errlen, "loader: batch size %d with drop_last leaves no batch for %d "
                            "samples",
               cfg->batch_size, d->n);
        return -1;
    }
    l->perm = malloc((size_t)d->n * sizeof *l->perm);
    if (!l->perm) {
        seterr(err, errlen, "loader: out of memory for %d samples", d->n);
        return -1;
    }
    l->d = *d;
    l->d.owns = 0;
    l->cfg = *cfg;
    l->end = end;
    int nlut = cfg->normalize ? d->c : 1;
    for (int c = 0; c < nlut; c++)
        for (int v = 0; v < 256; v++)
            l->lut[c][v] = cfg->normalize ? ((float)v / 255.0f - cfg->mean[c]) / cfg->std[c]
                                          : (float)v / 255.0f;
    l->epoch = 0;
    l->pos = 0;
    build_perm(l);
    return 0;
}

/* One sample (the one at position p of the epoch, dataset index idx) into dst (C,H,W). */
static void fill_sample(const rt_loader *l, uint64_t aug_seed, int64_t p, int32_t idx,
                        float *dst) {
    const int C = l->d.c, H = l->d.h, W = l->d.w;
    const size_t hw = (size_t)H * W;
    const uint8_t *src = l->d.pixels + (size_t)idx * C * hw;
    const uint64_t base = (uint64_t)p * 8;
    int oy = 0, ox = 0, fl = 0;
    const int P = l->cfg.crop_pad;
    if (P > 0) {
        uint64_t r = (uint64_t)(2 * P + 1);
        oy = (int)(krng_hash(aug_seed, base + 0) % r) - P;
        ox = (int)(krng_hash(aug_seed, base + 1) % r) - P;
    }
    if (l->cfg.flip) fl = (int)(krng_hash(aug_seed, base + 2) >> 63);
    for (int c = 0; c < C; c++) {
        const float *lut = l->lut[l->cfg.normalize ? c : 0];
        const uint8_t *s = src + (size_t)c * hw;
        float *o = dst + (size_t)c * hw;
        if (oy == 0 && ox == 0 && !fl) {
            for (size_t i = 0; i < hw; i++) o[i] = lut[s[i]];
            continue;
        }
        for (int y = 0; y < H; y++) {
            int sy = y + oy;
            float *orow = o + (size_t)y * W;
            if (sy < 0 || sy >= H) {
                for (int x = 0; x < W; x++) orow[x] = lut[0];
                continue;
            }
            const uint8_t *srow = s + (size_t)sy * W;
            for (int x = 0; x < W; x++) {
                int sx = (fl ? W - 1 - x : x) + ox;
                orow[x] = (sx >= 0 && sx < W) ? lut[srow[sx]] : lut[0];
            }
        }
    }
    const int L = l->cfg.cutout;
    if (L > 0) {
        int cy = (int)(krng_hash(aug_seed, base + 3) % (uint64_t)H);
        int cx = (int)(krng_hash(aug_seed, base + 4) % (uint64_t)W);
        int y1 = cy - L / 2, x1 = cx - L / 2;
        int y2 = y1 + L, x2 = x1 + L;
        if (y1 < 0) y1 = 0;
        if (x1 < 0) x1 = 0;
        if (y2 > H) y2 = H;
        if (x2 > W) x2 = W;
        for (int c = 0; c < C; c++) {
            float *o = dst + (size_t)c * hw;
            for (int y = y1; y < y2; y++)
                for (int x = x1; x < x2; x++) o[(size_t)y * W + x] = 0.0f;
        }
    }
}

int rt_loader_next(rt_loader *l, float *images, int32_t *labels, int *batch_out) {
    if (l->pos >= l->end) {
        l->epoch++;
        l->pos = 0;
        build_perm(l);
        if (batch_out) *batch_out = 0;
        return 0;
    }
    int64_t b = l->end - l->pos;
    if (b > l->cfg.batch_size) b = l->cfg.batch_size;
    const size_t chw = (size_t)l->d.c * l->d.h * l->d.w;
    const uint64_t aug_seed = krng_hash(l->cfg.seed ^ AUG_TAG, (uint64_t)l->epoch);
    int64_t first = 0, last = b;
    if (l->cfg.shards > 1) {
        first = b * l->cfg.shard / l->cfg.shards;
        last = b * (l->cfg.shard + 1) / l->cfg.shards;
    }
    for (int64_t i = first; i < last; i++) {
        int64_t p = l->pos + i;
        int32_t idx = l->perm[p];
        if (images) fill_sample(l, aug_seed, p, idx, images + (size_t)(i - first) * chw);
        if (labels) labels[i - first] = l->d.labels[idx];
    }
    l->pos += b;
    if (batch_out) *batch_out = (int)(last - first);
    return 1;
}

int64_t rt_loader_batches_per_epoch(const rt_loader *l) {
    int64_t B = l->cfg.batch_size;
    return (l->end + B - 1) / B;
}

void rt_loader_state(const rt_loader *l, int64_t *epoch, int64_t *pos) {
    if (epoch) *epoch = l->epoch;
    if (pos) *pos = l->pos;
}

int rt_loader_seek(rt_loader *l, int64_t epoch, int64_t pos) {
    if (!l || !l->perm || epoch < 0 || pos < 0 || pos > l->end) return -1;
    if (epoch != l->epoch) {
        l->epoch = epoch;
        build_perm(l);
    }
    l->pos = pos;
    return 0;
}

void rt_loader_free(rt_loader *l) {
    if (!l) return;
    free(l->perm);
    memset(l, 0, sizeof *l);
}
