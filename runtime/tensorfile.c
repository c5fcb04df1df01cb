/* tensorfile.c — see tensorfile.h. */
#include "runtime/tensorfile.h"
#include "runtime/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define TF_HEADER 16u
#define TF_MAX_BYTES ((int64_t)1 << 60) /* a sanity cap on numel*4 */

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF) and no NUL. */
static int valid_name(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (len > n - i) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
        if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
        i += len;
    }
    return 1;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- a small open-addressing name set (duplicate detection, lookup) ---------------------- */
typedef struct {
    int *slot; /* index+1, 0 empty */
    size_t cap;
} name_index;

static int ni_reserve(name_index *ix, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    int *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    free(ix->slot);
    ix->slot = s;
    ix->cap = cap;
    return 0;
}
/* Returns the existing index if name is present, else inserts idx and returns -1. */
static int ni_insert(name_index *ix, const char *const *names, const char *name, int idx) {
    size_t m = ix->cap - 1, h = (size_t)fnv1a(name) & m;
    while (ix->slot[h]) {
        int j = ix->slot[h] - 1;
        if (strcmp(names[j], name) == 0) return j;
        h = (h + 1) & m;
    }
    ix->slot[h] = idx + 1;
    return -1;
}
static int ni_find(const name_index *ix, const char *const *names, const char *name) {
    if (!ix->cap) return -1;
    size_t m = ix->cap - 1, h = (size_t)fnv1a(name) & m;
    while (ix->slot[h]) {
        int j = ix->slot[h] - 1;
        if (strcmp(names[j], name) == 0) return j;
        h = (h + 1) & m;
    }
    return -1;
}

/* ======================================= writer ============================================ */
struct rt_tf_writer {
    FILE *fp;
    char *path, *tmp;
    uint32_t count;
    uLong crc_body;   /* crc32 of everything after the header */
    int64_t body_len; /* bytes after the header */
    int failed;
    char err[512];
    char **names;
    int names_cap;
    name_index ix;
};

static void w_fail(rt_tf_writer *w, const char *fmt, ...) {
    if (w->failed) return; /* keep the first error */
    w->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

static int w_put(rt_tf_writer *w, const void *p, size_t n) {
    if (n == 0) return 0;
    if (fwrite(p, 1, n, w->fp) != n) {
        w_fail(w, "%s: write failed: %s", w->tmp, strerror(errno));
        return -1;
    }
    const unsigned char *b = p;
    size_t done = 0;
    while (done < n) { /* crc32 takes a uInt length */
        size_t k = n - done > 0x40000000u ? 0x40000000u : n - done;
        w->crc_body = crc32(w->crc_body, b + done, (uInt)k);
        done += k;
    }
    w->body_len += (int64_t)n;
    return 0;
}

static void w_destroy(rt_tf_writer *w, int remove_tmp) {
    if (!w) return;
    if (w->fp) fclose(w->fp);
    if (remove_tmp && w->tmp) unlink(w->tmp);
    for (uint32_t i = 0; i < w->count; i++) free(w->names[i]);
    free(w->names);
    free(w->ix.slot);
    free(w->path);
    free(w->tmp);
    free(w);
}

rt_tf_writer *rt_tf_open_write(const char *path, char *err, size_t errlen) {
    if (!path || !*path) {
        set_err(err, errlen, "tensorfile: empty path");
        return NULL;
    }
    rt_tf_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path);
    if (w) {
        w->path = malloc(n + 1);
        w->tmp = malloc(n + 5);
    }
    if (!w || !w->path || !w->tmp || ni_reserve(&w->ix, 64) != 0) {
        set_err(err, errlen, "%s: out of memory", path);
        if (w) { free(w->path); free(w->tmp); free(w->ix.slot); free(w); }
        return NULL;
    }
    memcpy(w->path, path, n + 1);
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    if (rt_file_check_output(path, err, errlen) || rt_file_check_output(w->tmp, err, errlen)) {
        w_destroy(w, 0);
        return NULL;
    }
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        set_err(err, errlen, "%s: cannot create %s: %s", path, w->tmp, strerror(errno));
        w_destroy(w, 0);
        return NULL;
    }
    w->crc_body = crc32(0L, Z_NULL, 0);
    unsigned char hdr[TF_HEADER];
    memcpy(hdr, "DTNS", 4);
    put_u32(hdr + 4, 1);
    put_u32(hdr + 8, 0); /* count, patched at close */
    put_u32(hdr + 12, 0);
    if (fwrite(hdr, 1, sizeof hdr, w->fp) != sizeof hdr) {
        set_err(err, errlen, "%s: write failed: %s", w->tmp, strerror(errno));
        w_destroy(w, 1);
        return NULL;
    }
    return w;
}

int rt_tf_write(rt_tf_writer *w, const char *name, int dtype, int ndim, const int64_t *dims,
                const void *data) {
    if (!w) return -1;
    if (w->failed) return -1;
    if (!name) { w_fail(w, "%s: tensor with NULL name", w->path); return -1; }
    size_t nl = strlen(name);
    if (nl == 0 || nl > RT_TF_MAX_NAME || !valid_name((const unsigned char *)name, nl)) {
        w_fail(w, "%s: tensor name '%.64s' (length %zu) is empty, longer than %d bytes or not utf-8",
               w->path, name, nl, RT_TF_MAX_NAME);
        return -1;
    }
    if (dtype != RT_TF_F32 && dtype != RT_TF_I32) {
        w_fail(w, "%s: tensor '%s': unknown dtype %d", w->path, name, dtype);
        return -1;
    }
    if (ndim < 0 || ndim > RT_TF_MAX_NDIM || (ndim > 0 && !dims)) {
        w_fail(w, "%s: tensor '%s': bad ndim %d", w->path, name, ndim);
        return -1;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            w_fail(w, "%s: tensor '%s': negative dim %lld", w->path, name, (long long)dims[i]);
            return -1;
        }
        if (dims[i] != 0 && numel > TF_MAX_BYTES / 4 / dims[i]) {
            w_fail(w, "%s: tensor '%s': dims overflow", w->path, name);
            return -1;
        }
        numel *= dims[i];
    }
    if (numel > 0 && !data) {
        w_fail(w, "%s: tensor '%s': NULL data", w->path, name);
        return -1;
    }
    if ((int64_t)w->count >= (int64_t)INT32_MAX - 1) {
        w_fail(w, "%s: too many tensors", w->path);
        return -1;
    }
    /* duplicate check */
    if ((int)w->count + 1 > w->names_cap) {
        int cap = w->names_cap ? 2 * w->names_cap : 64;
        char **nn = realloc(w->names, (size_t)cap * sizeof *nn);
        if (!nn) { w_fail(w, "%s: out of memory", w->path); return -1; }
        w->names = nn;
        w->names_cap = cap;
    }
    if (2 * ((size_t)w->count + 1) + 2 > w->ix.cap) {
        if (ni_reserve(&w->ix, 2 * ((size_t)w->count + 1)) != 0) {
            w_fail(w, "%s: out of memory", w->path);
            return -1;
        }
        for (uint32_t i = 0; i < w->count; i++)
            ni_insert(&w->ix, (const char *const *)w->names, w->names[i], (int)i);
    }
    char *copy = malloc(nl + 1);
    if (!copy) { w_fail(w, "%s: out of memory", w->path); return -1; }
    memcpy(copy, name, nl + 1);
    w->names[w->count] = copy;
    if (ni_insert(&w->ix, (const char *const *)w->names, copy, (int)w->count) >= 0) {
        free(copy);
        w_fail(w, "%s: duplicate tensor name '%s'", w->path, name);
        return -1;
    }
    w->count++;

    unsigned char head[4 + 4 + 4 + 8 * RT_TF_MAX_NDIM];
    put_u32(head, (uint32_t)nl);
    if (w_put(w, head, 4) || w_put(w, name, nl)) return -1;
    put_u32(head, (uint32_t)dtype);
    put_u32(head + 4, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++) put_u64(head + 8 + 8 * i, (uint64_t)dims[i]);
    if (w_put(w, head, 8 + 8 * (size_t)ndim)) return -1;
    size_t nbytes = (size_t)numel * 4;
    if (host_is_le()) {
        if (w_put(w, data, nbytes)) return -1;
    } else {
        unsigned char buf[4096];
        const unsigned char *src = data;
        for (size_t off = 0; off < nbytes; off += sizeof buf) {
            size_t k = nbytes - off < sizeof buf ? nbytes - off : sizeof buf;
            for (size_t i = 0; i < k; i += 4) {
                uint32_t v;
                memcpy(&v, src + off + i, 4);
                put_u32(buf + i, v);
            }
            if (w_put(w, buf, k)) return -1;
        }
    }
    return 0;
}

void rt_tf_abort_write(rt_tf_writer *w) { w_destroy(w, 1); }

const char *rt_tf_writer_error(const rt_tf_writer *w) { return w && w->failed ? w->err : NULL; }

static void fsync_parent_dir(const char *path) {
    /* Best effort: once the rename is done the file is in place; a failure to sync the
     * directory entry cannot be undone, so it is not reported. */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int rt_tf_close_write(rt_tf_writer *w, char *err, size_t errlen) {
    if (!w) {
        set_err(err, errlen, "tensorfile: NULL writer");
        return -1;
    }
    if (w->failed) {
        set_err(err, errlen, "%s", w->err);
        w_destroy(w, 1);
        return -1;
    }
    unsigned char hdr[TF_HEADER];
    memcpy(hdr, "DTNS", 4);
    put_u32(hdr + 4, 1);
    put_u32(hdr + 8, w->count);
    put_u32(hdr + 12, 0);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), hdr, TF_HEADER);
    crc = crc32_combine(crc, w->crc_body, (z_off_t)w->body_len);
    unsigned char tail[4];
    put_u32(tail, (uint32_t)crc);
    int ok = fwrite(tail, 1, 4, w->fp) == 4 && fseek(w->fp, 8, SEEK_SET) == 0 &&
             fwrite(hdr + 8, 1, 4, w->fp) == 4 && fflush(w->fp) == 0 && fsync(fileno(w->fp)) == 0;
    if (!ok) {
        set_err(err, errlen, "%s: write failed: %s", w->tmp, strerror(errno));
        w_destroy(w, 1);
        return -1;
    }
    int rc = fclose(w->fp);
    w->fp = NULL;
    if (rc != 0) {
        set_err(err, errlen, "%s: close failed: %s", w->tmp, strerror(errno));
        w_destroy(w, 1);
        return -1;
    }
    if (rename(w->tmp, w->path) != 0) {
        set_err(err, errlen, "%s: rename from %s failed: %s", w->path, w->tmp, strerror(errno));
        w_destroy(w, 1);
        return -1;
    }
    fsync_parent_dir(w->path);
    w_destroy(w, 0);
    return 0;
}

/* ======================================= reader ============================================ */
struct rt_tf_file {
    int count;
    rt_tf_entry *e;
    const char **names;
    name_index ix;
    void *arena;
};

int rt_tf_count(const rt_tf_file *f) { return f ? f->count : 0; }

const rt_tf_entry *rt_tf_get(const rt_tf_file *f, int i) {
    if (!f || i < 0 || i >= f->count) return NULL;
    return &f->e[i];
}

const rt_tf_entry *rt_tf_find(const rt_tf_file *f, const char *name) {
    if (!f || !name) return NULL;
    int j = ni_find(&f->ix, f->names, name);
    return j < 0 ? NULL : &f->e[j];
}

void rt_tf_free(rt_tf_file *f) {
    if (!f) return;
    free(f->e);
    free(f->names);
    free(f->ix.slot);
    free(f->arena);
    free(f);
}

/* One parsed tensor record, offsets into the file buffer. */
typedef struct {
    size_t name_off, name_len, data_off;
    int dtype, ndim;
    int64_t dims[4], numel;
} rec;

rt_tf_file *rt_tf_read(const char *path, char *err, size_t errlen) {
    unsigned char *buf = NULL;
    rec *recs = NULL;
    rt_tf_file *f = NULL;
    if (!path) {
        set_err(err, errlen, "tensorfile: NULL path");
        return NULL;
    }
    if (rt_file_check_input(path, err, errlen)) return NULL; /* a FIFO would block fopen */
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        fclose(fp);
        return NULL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)TF_MAX_BYTES ||
        (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        set_err(err, errlen, "%s: file size %lld out of range", path, (long long)st.st_size);
        fclose(fp);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n ? n : 1);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory reading %zu bytes", path, n);
        fclose(fp);
        return NULL;
    }
    size_t got = fread(buf, 1, n, fp);
    int extra = got == n ? fgetc(fp) : EOF;
    fclose(fp);
    if (got != n || extra != EOF) {
        set_err(err, errlen, "%s: read error (file changed while reading?)", path);
        goto fail;
    }

    if (n < TF_HEADER + 4) {
        set_err(err, errlen, "%s: truncated: %zu bytes, smaller than header + CRC (20)", path, n);
        goto fail;
    }
    if (memcmp(buf, "DTNS", 4) != 0) {
        set_err(err, errlen, "%s: bad magic (expected \"DTNS\")", path);
        goto fail;
    }
    uint32_t version = get_u32(buf + 4), count = get_u32(buf + 8), reserved = get_u32(buf + 12);
    if (version != 1) {
        set_err(err, errlen, "%s: unsupported version %u (expected 1)", path, version);
        goto fail;
    }
    if (reserved != 0) {
        set_err(err, errlen, "%s: reserved header field is %u (expected 0)", path, reserved);
        goto fail;
    }
    size_t end = n - 4; /* the CRC trailer starts here */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < end;) {
        size_t k = end - off > 0x40000000u ? 0x40000000u : end - off;
        crc = crc32(crc, buf + off, (uInt)k);
        off += k;
    }
    uint32_t stored = get_u32(buf + end);
    int crc_ok = (uint32_t)crc == stored;
    const char *crc_note = crc_ok ? "" : " (and the CRC does not match: file is corrupt)";

    /* Every record takes at least 12 bytes, which bounds count before allocating. */
    if ((uint64_t)count > (end - TF_HEADER) / 12) {
        set_err(err, errlen, "%s: truncated: header says %u tensors, file has only %zu bytes%s",
                path, count, n, crc_note);
        goto fail;
    }
    recs = calloc(count ? count : 1, sizeof *recs);
    if (!recs) {
        set_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    size_t off = TF_HEADER;
    size_t data_total = 0, names_total = 0;
#define NEED(k, ...)                                                                        \
    do {                                                                                    \
        if ((uint64_t)(k) > (uint64_t)(end - off)) {                                        \
            char what_[160];                                                                \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                     \
            set_err(err, errlen,                                                            \
                    "%s: truncated: %s needs %llu bytes at offset %zu, file has %zu (before " \
                    "the CRC)%s",                                                           \
                    path, what_, (unsigned long long)(k), off, end, crc_note);              \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)
    for (uint32_t t = 0; t < count; t++) {
        rec *r = &recs[t];
        NEED(4, "tensor #%u name length", t);
        uint32_t nl = get_u32(buf + off);
        off += 4;
        if (nl == 0 || nl > RT_TF_MAX_NAME) {
            set_err(err, errlen, "%s: tensor #%u: name length %u out of range 1..%d%s", path, t,
                    nl, RT_TF_MAX_NAME, crc_note);
            goto fail;
        }
        NEED(nl, "tensor #%u name", t);
        if (!valid_name(buf + off, nl)) {
            set_err(err, errlen, "%s: tensor #%u: name is not valid utf-8 or contains NUL%s", path,
                    t, crc_note);
            goto fail;
        }
        r->name_off = off;
        r->name_len = nl;
        off += nl;
        int pn = nl > 100 ? 100 : (int)nl;
        const char *pname = (const char *)buf + r->name_off;
        NEED(8, "tensor '%.*s' dtype and ndim", pn, pname);
        uint32_t dtype = get_u32(buf + off), ndim = get_u32(buf + off + 4);
        off += 8;
        if (dtype > 1) {
            set_err(err, errlen, "%s: tensor '%.*s': unknown dtype %u%s", path, pn, pname, dtype,
                    crc_note);
            goto fail;
        }
        if (ndim > RT_TF_MAX_NDIM) {
            set_err(err, errlen, "%s: tensor '%.*s': ndim %u > %d%s", path, pn, pname, ndim,
                    RT_TF_MAX_NDIM, crc_note);
            goto fail;
        }
        NEED(8 * (size_t)ndim, "tensor '%.*s' dims", pn, pname);
        int64_t numel = 1;
        for (int i = 0; i < 4; i++) r->dims[i] = 1;
        for (uint32_t i = 0; i < ndim; i++) {
            uint64_t d = get_u64(buf + off + 8 * i);
            if (d > (uint64_t)TF_MAX_BYTES || (d != 0 && (uint64_t)numel > (uint64_t)TF_MAX_BYTES / 4 / d)) {
                set_err(err, errlen, "%s: tensor '%.*s': dims overflow (dim %u = %llu)%s", path, pn,
                        pname, i, (unsigned long long)d, crc_note);
                goto fail;
            }
            numel *= (int64_t)d;
            r->dims[i] = (int64_t)d;
        }
        off += 8 * (size_t)ndim;
        NEED((uint64_t)numel * 4, "tensor '%.*s'", pn, pname);
        r->dtype = (int)dtype;
        r->ndim = (int)ndim;
        r->numel = numel;
        r->data_off = off;
        off += (size_t)numel * 4;
        data_total += ((size_t)numel * 4 + 63) & ~(size_t)63;
        names_total += nl + 1;
    }
#undef NEED
    if (off != end) {
        set_err(err, errlen, "%s: trailing garbage: %zu bytes after the last tensor at offset %zu%s",
                path, end - off, off, crc_note);
        goto fail;
    }
    if (!crc_ok) {
        set_err(err, errlen, "%s: bad CRC: stored 0x%08x, computed 0x%08x", path, stored,
                (uint32_t)crc);
        goto fail;
    }

    f = calloc(1, sizeof *f);
    if (!f) goto oom;
    f->count = (int)count;
    f->e = calloc(count ? count : 1, sizeof *f->e);
    f->names = calloc(count ? count : 1, sizeof *f->names);
    /* data first (64-byte aligned blocks), then names */
    f->arena = malloc(data_total + names_total + 64);
    if (!f->e || !f->names || !f->arena || ni_reserve(&f->ix, count) != 0) goto oom;
    {
        unsigned char *dp = f->arena;
        char *np = (char *)f->arena + data_total;
        int le = host_is_le();
        for (uint32_t t = 0; t < count; t++) {
            rec *r = &recs[t];
            rt_tf_entry *e = &f->e[t];
            memcpy(np, buf + r->name_off, r->name_len);
            np[r->name_len] = 0;
            e->name = np;
            f->names[t] = np;
            np += r->name_len + 1;
            e->dtype = r->dtype;
            e->ndim = r->ndim;
            memcpy(e->dims, r->dims, sizeof e->dims);
            e->numel = r->numel;
            size_t nb = (size_t)r->numel * 4;
            if (le) memcpy(dp, buf + r->data_off, nb);
            else
                for (size_t i = 0; i < nb; i += 4) {
                    uint32_t v = get_u32(buf + r->data_off + i);
                    memcpy(dp + i, &v, 4);
                }
            e->data = dp;
            dp += (nb + 63) & ~(size_t)63;
            if (ni_insert(&f->ix, f->names, e->name, (int)t) >= 0) {
                set_err(err, errlen, "%s: duplicate tensor name '%.100s'", path, e->name);
                goto fail;
            }
        }
    }
    free(recs);
    free(buf);
    return f;
oom:
    set_err(err, errlen, "%s: out of memory", path);
fail:
    rt_tf_free(f);
    free(recs);
    free(buf);
    return NULL;
}
