/* test_tensorfile.c — the DTNS tensor file format (runtime/tensorfile.c): roundtrip,
 * atomic overwrite, refusal of truncated / corrupted / malicious files, and interchange
 * with the Python side (tests/ref/tensorfile.py). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/tensorfile.h"
#include "tests/testutil.h"

#ifndef DARTSC_PYTHON
#define DARTSC_PYTHON "python3"
#endif

static char g_path[512];

static const char *tmp_file(const char *name) {
    static const char *dir;
    if (!dir) {
        static char keep[256];
        snprintf(keep, sizeof keep, "%s", tu_tmpdir());
        dir = keep;
    }
    snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
    return g_path;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static void fix_crc(unsigned char *b, size_t n) {
    uint32_t c = (uint32_t)crc32(0L, b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* A small file with all dtypes and ndim 0..4 (used by several tests). */
static void write_sample(const char *path) {
    char err[512] = "";
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    cr_assert(w, "%s", err);
    float s = 2.5f;
    cr_assert_eq(rt_tf_write(w, "s", RT_TF_F32, 0, NULL, &s), 0);
    int32_t iv[3] = {-1, 7, 123456};
    int64_t d1[1] = {3};
    cr_assert_eq(rt_tf_write(w, "ints", RT_TF_I32, 1, d1, iv), 0);
    float m[6] = {1, 2, 3, 4, 5, 6};
    int64_t d2[2] = {2, 3};
    cr_assert_eq(rt_tf_write(w, "grad/m", RT_TF_F32, 2, d2, m), 0);
    float c[8];
    for (int i = 0; i < 8; i++) c[i] = -0.25f * (float)i;
    int64_t d3[3] = {2, 2, 2};
    cr_assert_eq(rt_tf_write(w, "c3", RT_TF_F32, 3, d3, c), 0);
    float q[4] = {9, 8, 7, 6};
    int64_t d4[4] = {1, 2, 1, 2};
    cr_assert_eq(rt_tf_write(w, "q4", RT_TF_F32, 4, d4, q), 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
}

Test(tensorfile, roundtrip) {
    const char *p = tmp_file("rt.dtns");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    /* bigger random tensors too */
    char err[512] = "";
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    cr_assert(w, "%s", err);
    float s = -3.0f;
    cr_assert_eq(rt_tf_write(w, "scalar", RT_TF_F32, 0, NULL, &s), 0);
    int32_t lab[5] = {0, 9, 3, -2, 2147483647};
    int64_t dl[1] = {5};
    cr_assert_eq(rt_tf_write(w, "labels", RT_TF_I32, 1, dl, lab), 0);
    static float big[2 * 3 * 17 * 19];
    tu_fill_uniform(big, 2 * 3 * 17 * 19, -1, 1, 42);
    int64_t db[4] = {2, 3, 17, 19};
    cr_assert_eq(rt_tf_write(w, "cells.0._ops.3._ops.4.op.1.weight", RT_TF_F32, 4, db, big), 0);
    float m[12];
    tu_fill_uniform(m, 12, -5, 5, 7);
    int64_t d2[2] = {3, 4};
    cr_assert_eq(rt_tf_write(w, "m", RT_TF_F32, 2, d2, m), 0);
    int64_t d3[3] = {2, 1, 6};
    cr_assert_eq(rt_tf_write(w, "m3", RT_TF_F32, 3, d3, m), 0);
    int64_t dz[2] = {0, 3};
    cr_assert_eq(rt_tf_write(w, "empty", RT_TF_F32, 2, dz, NULL), 0);
    int32_t ic[1] = {1930618};
    int64_t d11[1] = {1};
    cr_assert_eq(rt_tf_write(w, "count/weights", RT_TF_I32, 1, d11, ic), 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert(!file_exists(tmp), "temp file left behind");

    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert_eq(rt_tf_count(f), 7);
    const char *order[7] = {"scalar", "labels", "cells.0._ops.3._ops.4.op.1.weight", "m", "m3",
                            "empty", "count/weights"};
    for (int i = 0; i < 7; i++) cr_assert_str_eq(rt_tf_get(f, i)->name, order[i]);
    cr_assert_null(rt_tf_get(f, 7));
    cr_assert_null(rt_tf_get(f, -1));
    cr_assert_null(rt_tf_find(f, "nope"));

    const rt_tf_entry *e = rt_tf_find(f, "scalar");
    cr_assert(e && e->ndim == 0 && e->numel == 1 && e->dtype == RT_TF_F32);
    cr_assert_eq(*(const float *)e->data, -3.0f);
    e = rt_tf_find(f, "labels");
    cr_assert(e && e->ndim == 1 && e->dims[0] == 5 && e->dtype == RT_TF_I32);
    cr_assert_eq(memcmp(e->data, lab, sizeof lab), 0);
    e = rt_tf_find(f, "cells.0._ops.3._ops.4.op.1.weight");
    cr_assert(e && e->ndim == 4 && e->dims[0] == 2 && e->dims[1] == 3 && e->dims[2] == 17 &&
              e->dims[3] == 19 && e->numel == 2 * 3 * 17 * 19);
    cr_assert_eq(memcmp(e->data, big, sizeof big), 0);
    e = rt_tf_find(f, "m");
    cr_assert(e && e->ndim == 2 && e->dims[0] == 3 && e->dims[1] == 4 && e->dims[2] == 1);
    cr_assert_eq(memcmp(e->data, m, sizeof m), 0);
    e = rt_tf_find(f, "m3");
    cr_assert(e && e->ndim == 3 && e->dims[2] == 6 && e->numel == 12);
    cr_assert_eq(memcmp(e->data, m, sizeof m), 0);
    e = rt_tf_find(f, "empty");
    cr_assert(e && e->numel == 0 && e->dims[0] == 0 && e->dims[1] == 3);
    e = rt_tf_find(f, "count/weights");
    cr_assert(e && e->dtype == RT_TF_I32 && ((const int32_t *)e->data)[0] == 1930618);
    rt_tf_free(f);

    /* an empty file (0 tensors) is valid */
    w = rt_tf_open_write(path, err, sizeof err);
    cr_assert(w);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert_eq(rt_tf_count(f), 0);
    rt_tf_free(f);
}

Test(tensorfile, writer_rejects_bad_input) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_file("bad.dtns"));
    char err[512] = "";
    float x = 1;
    int64_t dneg[1] = {-1};
    struct {
        const char *name;
        int dtype, ndim;
        const int64_t *dims;
    } cases[] = {{"", RT_TF_F32, 0, NULL},   {"a", 7, 0, NULL}, {"a", RT_TF_F32, 5, dneg},
                 {"a", RT_TF_F32, 1, dneg}, {"a\xff", RT_TF_F32, 0, NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
        cr_assert(w);
        cr_assert_eq(rt_tf_write(w, cases[i].name, cases[i].dtype, cases[i].ndim, cases[i].dims, &x),
                     -1, "case %zu accepted", i);
        err[0] = 0;
        cr_assert_eq(rt_tf_close_write(w, err, sizeof err), -1);
        cr_assert(strstr(err, "bad.dtns"), "error does not name the file: %s", err);
        cr_assert(!file_exists(path));
    }
    /* duplicate names */
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    cr_assert_eq(rt_tf_write(w, "a", RT_TF_F32, 0, NULL, &x), 0);
    cr_assert_eq(rt_tf_write(w, "a", RT_TF_F32, 0, NULL, &x), -1);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), -1);
    cr_assert(strstr(err, "duplicate"), "%s", err);
    cr_assert(!file_exists(path));
    /* a too-long name */
    char *longname = malloc(RT_TF_MAX_NAME + 2);
    memset(longname, 'n', RT_TF_MAX_NAME + 1);
    longname[RT_TF_MAX_NAME + 1] = 0;
    w = rt_tf_open_write(path, err, sizeof err);
    cr_assert_eq(rt_tf_write(w, longname, RT_TF_F32, 0, NULL, &x), -1);
    rt_tf_abort_write(w);
    longname[RT_TF_MAX_NAME] = 0; /* exactly the limit is fine */
    w = rt_tf_open_write(path, err, sizeof err);
    cr_assert_eq(rt_tf_write(w, longname, RT_TF_F32, 0, NULL, &x), 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert(rt_tf_find(f, longname));
    rt_tf_free(f);
    free(longname);
}

Test(tensorfile, atomic_overwrite_keeps_old_file) {
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s", tmp_file("atomic.dtns"));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_sample(path);
    size_t n0;
    unsigned char *before = slurp(path, &n0);
    char err[512] = "";

    /* 1. the writer fails mid-way (bad tensor): the old file stays, the temp goes */
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    cr_assert(w, "%s", err);
    float big[64] = {0};
    int64_t d[1] = {64};
    cr_assert_eq(rt_tf_write(w, "x", RT_TF_F32, 1, d, big), 0);
    cr_assert(file_exists(tmp), "writer should use path.tmp");
    cr_assert_eq(rt_tf_write(w, "y", 42, 1, d, big), -1);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), -1);
    cr_assert(strlen(err) > 0);
    cr_assert(!file_exists(tmp), "temp file left behind");
    size_t n1;
    unsigned char *after = slurp(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "old file was modified");
    free(after);

    /* 2. aborted writer: same */
    w = rt_tf_open_write(path, err, sizeof err);
    cr_assert_eq(rt_tf_write(w, "x", RT_TF_F32, 1, d, big), 0);
    rt_tf_abort_write(w);
    cr_assert(!file_exists(tmp));
    after = slurp(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "old file was modified");
    free(after);

    /* 3. destination directory does not exist: error naming the path, no file */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.dtns", tu_tmpdir());
    err[0] = 0;
    w = rt_tf_open_write(nodir, err, sizeof err);
    cr_assert_null(w);
    cr_assert(strstr(err, "x.dtns"), "%s", err);
    cr_assert(!file_exists(nodir));

    /* 4. directory not writable (only meaningful when not root) */
    if (geteuid() != 0) {
        char rodir[600], rofile[700];
        snprintf(rodir, sizeof rodir, "%s", tu_tmpdir());
        snprintf(rofile, sizeof rofile, "%s/ro.dtns", rodir);
        write_sample(rofile);
        size_t m0;
        unsigned char *b0 = slurp(rofile, &m0);
        cr_assert_eq(chmod(rodir, 0555), 0);
        w = rt_tf_open_write(rofile, err, sizeof err);
        if (w) {
            rt_tf_write(w, "x", RT_TF_F32, 1, d, big);
            cr_assert_eq(rt_tf_close_write(w, err, sizeof err), -1);
        }
        chmod(rodir, 0755);
        size_t m1;
        unsigned char *b1 = slurp(rofile, &m1);
        cr_assert(m0 == m1 && memcmp(b0, b1, m0) == 0);
        free(b0);
        free(b1);
    }

    /* 5. a successful overwrite replaces the content */
    w = rt_tf_open_write(path, err, sizeof err);
    cr_assert_eq(rt_tf_write(w, "only", RT_TF_F32, 1, d, big), 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert_eq(rt_tf_count(f), 1);
    cr_assert_str_eq(rt_tf_get(f, 0)->name, "only");
    rt_tf_free(f);
    free(before);
}

Test(tensorfile, truncated_at_every_offset) {
    char path[512], cut[600];
    snprintf(path, sizeof path, "%s", tmp_file("trunc.dtns"));
    snprintf(cut, sizeof cut, "%s.cut", path);
    write_sample(path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    char err[512];
    for (size_t k = 0; k < n; k++) {
        spit(cut, b, k);
        err[0] = 0;
        rt_tf_file *f = rt_tf_read(cut, err, sizeof err);
        cr_assert_null(f, "prefix of %zu/%zu bytes accepted", k, n);
        cr_assert(strstr(err, "trunc.dtns.cut"), "error does not name the file: %s", err);
    }
    /* and with trailing garbage */
    unsigned char *g = malloc(n + 3);
    memcpy(g, b, n);
    memset(g + n, 0, 3);
    spit(cut, g, n + 3);
    cr_assert_null(rt_tf_read(cut, err, sizeof err));
    /* garbage with a valid CRC: the structure check must catch it */
    memcpy(g, b, n - 4);
    memset(g + n - 4, 0xAB, 3);
    fix_crc(g, n + 3);
    spit(cut, g, n + 3);
    cr_assert_null(rt_tf_read(cut, err, sizeof err));
    cr_assert(strstr(err, "trailing"), "%s", err);
    /* a prefix that ends mid-tensor but carries a valid CRC gets a "truncated" message */
    memcpy(g, b, n - 12);
    fix_crc(g, n - 8);
    spit(cut, g, n - 8);
    cr_assert_null(rt_tf_read(cut, err, sizeof err));
    cr_assert(strstr(err, "truncated") && strstr(err, "'q4'"), "%s", err);
    free(g);
    free(b);
    cr_assert_null(rt_tf_read(tmp_file("does-not-exist.dtns"), err, sizeof err));
    cr_assert(strstr(err, "does-not-exist.dtns"), "%s", err);
}

Test(tensorfile, flipped_bit_anywhere) {
    char path[512], bad[600];
    snprintf(path, sizeof path, "%s", tmp_file("flip.dtns"));
    snprintf(bad, sizeof bad, "%s.bad", path);
    write_sample(path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    char err[512];
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            spit(bad, b, n);
            err[0] = 0;
            rt_tf_file *f = rt_tf_read(bad, err, sizeof err);
            cr_assert_null(f, "bit %d of byte %zu flipped, file accepted", bit, i);
            cr_assert(strlen(err) > 0);
            b[i] ^= (unsigned char)(1u << bit);
        }
    /* a data byte flip is reported as a CRC failure */
    b[n - 8] ^= 1;
    spit(bad, b, n);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));
    cr_assert(strstr(err, "bad CRC"), "%s", err);
    free(b);
}

Test(tensorfile, wrong_magic_and_version) {
    char path[512], bad[600];
    snprintf(path, sizeof path, "%s", tmp_file("magic.dtns"));
    snprintf(bad, sizeof bad, "%s.bad", path);
    write_sample(path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    char err[512];
    unsigned char *c = malloc(n);

    memcpy(c, b, n);
    memcpy(c, "DTNT", 4);
    fix_crc(c, n);
    spit(bad, c, n);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));
    cr_assert(strstr(err, "magic"), "%s", err);

    memcpy(c, b, n);
    c[4] = 2;
    fix_crc(c, n);
    spit(bad, c, n);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));
    cr_assert(strstr(err, "version"), "%s", err);

    memcpy(c, b, n);
    c[12] = 1; /* reserved */
    fix_crc(c, n);
    spit(bad, c, n);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));

    spit(bad, "GARBAGE-GARBAGE-GARBAGE", 23);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));
    cr_assert(strstr(err, "magic"), "%s", err);
    free(c);
    free(b);
}

/* Malicious headers with a valid CRC: huge counts, name lengths, ndim, dims that overflow. */
Test(tensorfile, malicious_fields_with_valid_crc) {
    char path[512], bad[600];
    snprintf(path, sizeof path, "%s", tmp_file("mal.dtns"));
    snprintf(bad, sizeof bad, "%s.bad", path);
    write_sample(path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    unsigned char *c = malloc(n);
    char err[512];
    /* layout of the first record: at 16 name_len=1, 20 's', 21 dtype, 25 ndim, 29 data */
    struct {
        size_t off;
        uint32_t val;
        const char *expect;
    } cases[] = {
        {8, 0xFFFFFFFFu, "tensors"},  /* count */
        {8, 6, "truncated"},          /* one too many */
        {8, 4, "trailing"},           /* one too few */
        {16, 0, "name length"},       /* name_len 0 */
        {16, 4097, "name length"},    /* name_len > limit */
        {16, 0x7FFFFFFFu, "name length"},
        {16, 4000, "truncated"},      /* name past the end */
        {21, 2, "dtype"},
        {25, 5, "ndim"},
        {25, 0xFFFFFFFFu, "ndim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, n);
        for (int k = 0; k < 4; k++) c[cases[i].off + k] = (unsigned char)(cases[i].val >> (8 * k));
        fix_crc(c, n);
        spit(bad, c, n);
        err[0] = 0;
        cr_assert_null(rt_tf_read(bad, err, sizeof err), "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].expect), "case %zu: '%s' lacks '%s'", i, err,
                  cases[i].expect);
    }
    /* dims overflow: record 'ints' starts at 33: name_len 4 @33, name @37, dtype @41,
     * ndim @45, dim0 @49 (u64) */
    const uint64_t dvals[] = {0xFFFFFFFFFFFFFFFFull, 1ull << 62, 1ull << 40, 4};
    for (size_t i = 0; i < sizeof dvals / sizeof dvals[0]; i++) {
        memcpy(c, b, n);
        for (int k = 0; k < 8; k++) c[49 + k] = (unsigned char)(dvals[i] >> (8 * k));
        fix_crc(c, n);
        spit(bad, c, n);
        cr_assert_null(rt_tf_read(bad, err, sizeof err), "dim %llu accepted",
                       (unsigned long long)dvals[i]);
    }
    /* a NUL inside a name */
    memcpy(c, b, n);
    c[20] = 0;
    fix_crc(c, n);
    spit(bad, c, n);
    cr_assert_null(rt_tf_read(bad, err, sizeof err));
    rt_tf_file *f;

    /* random structural mutations with a fixed CRC never crash */
    uint64_t s = 12345;
    for (int it = 0; it < 20000; it++) {
        memcpy(c, b, n);
        int nm = 1 + (int)(s % 4);
        for (int k = 0; k < nm; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % (n - 4);
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c[pos] = (unsigned char)(s >> 56);
        }
        size_t len = n;
        if (it % 3 == 0) len = 20 + (size_t)(s >> 40) % (n - 20);
        fix_crc(c, len);
        spit(bad, c, len);
        f = rt_tf_read(bad, err, sizeof err);
        if (f) {
            for (int i = 0; i < rt_tf_count(f); i++) {
                const rt_tf_entry *e = rt_tf_get(f, i);
                cr_assert(e->numel >= 0 && e->ndim >= 0 && e->ndim <= 4);
                volatile unsigned char sink = 0;
                for (int64_t j = 0; j < e->numel * 4; j++) sink ^= ((const unsigned char *)e->data)[j];
                (void)sink;
            }
            rt_tf_free(f);
        }
    }
    free(c);
    free(b);
}

Test(tensorfile, duplicate_names_refused_by_reader) {
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_file("dup.dtns"));
    /* hand-build: two scalars named "a" */
    unsigned char b[16 + 2 * (4 + 1 + 8 + 4) + 4];
    size_t o = 0;
    memcpy(b, "DTNS", 4);
    uint32_t hdr[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) b[4 + 4 * i + k] = (unsigned char)(hdr[i] >> (8 * k));
    o = 16;
    for (int t = 0; t < 2; t++) {
        const unsigned char rec[17] = {1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f};
        memcpy(b + o, rec, sizeof rec);
        o += sizeof rec;
    }
    fix_crc(b, o + 4);
    spit(path, b, o + 4);
    char err[512];
    cr_assert_null(rt_tf_read(path, err, sizeof err));
    cr_assert(strstr(err, "duplicate"), "%s", err);
    /* and the same with distinct names reads back 1.0 */
    b[16 + 17 + 4] = 'b';
    fix_crc(b, o + 4);
    spit(path, b, o + 4);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert_eq(*(const float *)rt_tf_find(f, "b")->data, 1.0f);
    rt_tf_free(f);
}

static void check_f32(const rt_tf_file *f, const char *name, int ndim, const int64_t *dims,
                      const float *want) {
    const rt_tf_entry *e = rt_tf_find(f, name);
    cr_assert(e, "tensor '%s' missing", name);
    cr_assert_eq(e->dtype, RT_TF_F32, "%s dtype", name);
    cr_assert_eq(e->ndim, ndim, "%s ndim", name);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        cr_assert_eq(e->dims[i], dims[i], "%s dim %d", name, i);
        numel *= dims[i];
    }
    cr_assert_eq(e->numel, numel);
    for (int64_t i = 0; i < numel; i++)
        cr_assert_eq(((const float *)e->data)[i], want[i], "%s[%lld]", name, (long long)i);
}

Test(tensorfile, python_written_file_reads_in_c, .timeout = 120) {
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s", tmp_file("py.dtns"));
    snprintf(cmd, sizeof cmd, "'%s' '%s' --selftest-write '%s'", DARTSC_PYTHON,
             tu_src_path("tests/ref/tensorfile.py"), path);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
    char err[512];
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert_eq(rt_tf_count(f), 6);
    const char *order[6] = {"scalar", "vec_i32", "mat", "grad/cube", "four", "empty"};
    for (int i = 0; i < 6; i++) cr_assert_str_eq(rt_tf_get(f, i)->name, order[i]);

    float sc = 3.5f;
    check_f32(f, "scalar", 0, NULL, &sc);
    const rt_tf_entry *e = rt_tf_find(f, "vec_i32");
    cr_assert(e && e->dtype == RT_TF_I32 && e->ndim == 1 && e->dims[0] == 4);
    const int32_t wi[4] = {-7, 0, 1, 2147483647};
    cr_assert_eq(memcmp(e->data, wi, sizeof wi), 0);
    const float wm[6] = {-1, -0.5f, 0, 0.5f, 1, 1.5f};
    check_f32(f, "mat", 2, (const int64_t[]){2, 3}, wm);
    float wc[24];
    for (int i = 0; i < 24; i++) wc[i] = (float)i;
    check_f32(f, "grad/cube", 3, (const int64_t[]){2, 3, 4}, wc);
    const float w4[4] = {-2.25f, -2.25f, -2.25f, -2.25f};
    check_f32(f, "four", 4, (const int64_t[]){1, 2, 1, 2}, w4);
    check_f32(f, "empty", 2, (const int64_t[]){0, 3}, NULL);
    rt_tf_free(f);

    /* and the other way: a C-written file is read and verified by Python */
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s", tmp_file("c.dtns"));
    write_sample(cpath);
    snprintf(cmd, sizeof cmd,
             "'%s' -c \"import sys; sys.path.insert(0, '%s'); import tensorfile as t, numpy as np; "
             "d = t.read('%s'); assert list(d) == ['s','ints','grad/m','c3','q4'], list(d); "
             "assert d['s'].shape == () and d['s'] == 2.5; "
             "assert d['ints'].dtype == np.int32 and list(d['ints']) == [-1, 7, 123456]; "
             "assert d['grad/m'].shape == (2, 3) and d['grad/m'][1, 2] == 6; "
             "assert d['c3'].shape == (2, 2, 2) and d['c3'][1, 1, 1] == -1.75; "
             "assert d['q4'].shape == (1, 2, 1, 2) and d['q4'][0, 1, 0, 1] == 6\"",
             DARTSC_PYTHON, tu_src_path("tests/ref"), cpath);
    rc = system(cmd);
    cr_assert_eq(rc, 0, "python could not read the C-written file: %s", cmd);
}
