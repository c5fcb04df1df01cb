/* test_data.c — datasets (Fashion-MNIST from the Debian package, CIFAR-10 binary) and the
 * minibatch loader. The Fashion-MNIST facts below were checked independently with Python's
 * gzip module on /usr/share/datasets/fashion-mnist. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/data.h"
#include "tests/testutil.h"

#define FMNIST_DIR RT_DATA_FMNIST_DEFAULT_DIR

/* Removes the files of a flat temporary directory, then the directory. */
static void rm_flat_dir(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dp)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(dp);
    rmdir(dir);
}

static int have_fmnist(void) {
    return access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) == 0;
}

/* ---- real Fashion-MNIST ------------------------------------------------------------------ */

Test(data_fmnist, train_set_facts) {
    if (!have_fmnist()) cr_skip_test("Fashion-MNIST not installed (dataset-fashion-mnist)");
    rt_dataset d;
    char err[512] = "";
    cr_assert_eq(rt_data_load_fashion_mnist(FMNIST_DIR, 1, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 60000);
    cr_assert_eq(d.c, 1);
    cr_assert_eq(d.h, 28);
    cr_assert_eq(d.w, 28);
    cr_assert_eq(d.classes, 10);
    cr_assert_eq(d.owns, 1);
    /* First labels: 9 0 0 3 0 2 7 2 5 5 (9 = ankle boot). */
    const int first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++) cr_assert_eq(d.labels[i], first[i], "label %d", i);
    int counts[10] = {0};
    for (int i = 0; i < d.n; i++) {
        cr_assert(d.labels[i] >= 0 && d.labels[i] < 10);
        counts[d.labels[i]]++;
    }
    for (int k = 0; k < 10; k++) cr_assert_eq(counts[k], 6000, "class %d", k);
    uint64_t sum = 0, first_sum = 0;
    for (int64_t i = 0; i < (int64_t)d.n * 784; i++) sum += d.pixels[i];
    for (int i = 0; i < 784; i++) first_sum += d.pixels[i];
    cr_assert_eq(sum, 3431114169ull);
    cr_assert_eq(first_sum, 76247ull);
    double mean = (double)sum / ((double)d.n * 784.0) / 255.0;
    cr_assert(fabs(mean - 0.2860406) < 1e-6, "mean %f", mean);

    /* The DARTS split: first half for weights, second half for alpha, no shuffle. */
    rt_dataset a, b;
    cr_assert_eq(rt_data_subset(&d, 0, 30000, &a), 0);
    cr_assert_eq(rt_data_subset(&d, 30000, 30000, &b), 0);
    cr_assert_eq(a.n, 30000);
    cr_assert_eq(b.n, 30000);
    cr_assert_eq(a.owns, 0);
    cr_assert_eq(a.pixels, d.pixels);
    cr_assert_eq(b.pixels, d.pixels + (size_t)30000 * 784);
    cr_assert_eq(b.labels, d.labels + 30000);
    rt_dataset_free(&a); /* a view: must not free the parent's memory */
    cr_assert_null(a.pixels);
    cr_assert_eq(d.labels[0], 9);
    rt_dataset_free(&d);
    cr_assert_null(d.pixels);
    cr_assert_null(d.labels);
}

Test(data_fmnist, test_set_facts_default_dir) {
    if (!have_fmnist()) cr_skip_test("Fashion-MNIST not installed (dataset-fashion-mnist)");
    rt_dataset d;
    char err[512] = "";
    cr_assert_eq(rt_data_load_fashion_mnist(NULL, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.c, 1);
    cr_assert_eq(d.h, 28);
    cr_assert_eq(d.w, 28);
    const int first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) cr_assert_eq(d.labels[i], first[i], "label %d", i);
    int counts[10] = {0};
    for (int i = 0; i < d.n; i++) counts[d.labels[i]]++;
    for (int k = 0; k < 10; k++) cr_assert_eq(counts[k], 1000, "class %d", k);
    uint64_t sum = 0, first_sum = 0;
    for (int64_t i = 0; i < (int64_t)d.n * 784; i++) sum += d.pixels[i];
    for (int i = 0; i < 784; i++) first_sum += d.pixels[i];
    cr_assert_eq(sum, 573469082ull);
    cr_assert_eq(first_sum, 33456ull);
    rt_dataset_free(&d);
    /* Empty string means the default too. */
    cr_assert_eq(rt_data_load_fashion_mnist("", 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 10000);
    rt_dataset_free(&d);
}

/* ---- synthetic IDX files and their corruptions -------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g, "gzopen %s", path);
    if (len) cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(g), Z_OK);
}

static void write_raw(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    if (len) cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static unsigned char *read_raw(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

#define SYN_N 20

/* Writes a valid IDX pair t10k-* of SYN_N images into dir; label i = i % 10, pixel
 * values (i*7 + j) & 255. Optional overrides: label file bytes. */
static void write_idx_labels(const char *dir, uint32_t magic, uint32_t count, int nwrite,
                             int bad_label_at, int extra) {
    char path[4096];
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    size_t len = 8 + (size_t)nwrite + (size_t)extra;
    unsigned char *b = calloc(1, len);
    put_be32(b, magic);
    put_be32(b + 4, count);
    for (int i = 0; i < nwrite; i++) b[8 + i] = (unsigned char)(i % 10);
    if (bad_label_at >= 0) b[8 + bad_label_at] = 10;
    write_gz(path, b, len);
    free(b);
}

static void write_idx_images(const char *dir, uint32_t magic, uint32_t count, uint32_t rows,
                             uint32_t cols, int nwrite) {
    char path[4096];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    size_t len = 16 + (size_t)nwrite * rows * cols;
    unsigned char *b = calloc(1, len);
    put_be32(b, magic);
    put_be32(b + 4, count);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t j = 0; j < (size_t)nwrite * rows * cols; j++) b[16 + j] = (unsigned char)(j * 7);
    write_gz(path, b, len);
    free(b);
}

static void write_valid(const char *dir) {
    write_idx_labels(dir, 0x801, SYN_N, SYN_N, -1, 0);
    write_idx_images(dir, 0x803, SYN_N, 28, 28, SYN_N);
}

/* Loads the test split of dir, expects failure, and checks the message has each needle. */
static void expect_fail(const char *dir, const char *n1, const char *n2) {
    rt_dataset d;
    memset(&d, 0x5a, sizeof d);
    char err[1024] = "";
    int rc = rt_data_load_fashion_mnist(dir, 0, &d, err, sizeof err);
    cr_assert_neq(rc, 0, "expected failure (%s, %s)", n1, n2);
    cr_assert_null(d.pixels);
    cr_assert_null(d.labels);
    cr_assert_eq(d.n, 0);
    cr_assert_not_null(strstr(err, n1), "'%s' not in: %s", n1, err);
    if (n2) cr_assert_not_null(strstr(err, n2), "'%s' not in: %s", n2, err);
    rt_dataset_free(&d);
}

Test(data_fmnist, synthetic_valid_and_trailing_slash) {
    const char *tmp = tu_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/", tmp);
    write_valid(tmp);
    rt_dataset d;
    char err[512] = "";
    cr_assert_eq(rt_data_load_fashion_mnist(dir, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, SYN_N);
    for (int i = 0; i < SYN_N; i++) cr_assert_eq(d.labels[i], i % 10);
    for (int j = 0; j < SYN_N * 784; j++) cr_assert_eq(d.pixels[j], (unsigned char)(j * 7));
    rt_dataset_free(&d);
    rm_flat_dir(tmp);
}

Test(data_fmnist, errors_name_the_file) {
    const char *dir = tu_tmpdir();
    char lpath[4096], ipath[4096];
    snprintf(lpath, sizeof lpath, "%s/t10k-labels-idx1-ubyte.gz", dir);
    snprintf(ipath, sizeof ipath, "%s/t10k-images-idx3-ubyte.gz", dir);

    /* Missing files. */
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz", "cannot open");
    write_idx_labels(dir, 0x801, SYN_N, SYN_N, -1, 0);
    expect_fail(dir, "t10k-images-idx3-ubyte.gz", "No such file");

    /* Labels: wrong magic. */
    write_valid(dir);
    write_idx_labels(dir, 0x803, SYN_N, SYN_N, -1, 0);
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz: bad magic 0x00000803",
                "expected IDX1 labels 0x00000801");
    /* Labels: label 10. */
    write_idx_labels(dir, 0x801, SYN_N, SYN_N, 13, 0);
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz: label 10 at index 13", NULL);
    /* Labels: fewer than the header says (a valid gzip of a short file). */
    write_idx_labels(dir, 0x801, SYN_N, 12, -1, 0);
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz: truncated: expected 20 labels, got 12", NULL);
    /* Labels: trailing bytes. */
    write_idx_labels(dir, 0x801, SYN_N, SYN_N, -1, 3);
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz", "trailing data");
    /* Labels: truncated header. */
    {
        unsigned char h[6] = {0, 0, 8, 1, 0, 0};
        write_gz(lpath, h, sizeof h);
        expect_fail(dir, "t10k-labels-idx1-ubyte.gz: truncated", "header");
    }
    /* Labels: not gzip (raw IDX). */
    {
        unsigned char raw[8 + SYN_N] = {0};
        put_be32(raw, 0x801);
        put_be32(raw + 4, SYN_N);
        write_raw(lpath, raw, sizeof raw);
        expect_fail(dir, "t10k-labels-idx1-ubyte.gz: not gzip", NULL);
        write_raw(lpath, "", 0); /* empty file */
        expect_fail(dir, "t10k-labels-idx1-ubyte.gz: not gzip", NULL);
    }
    /* Labels: a truncated gzip stream (the compressed file cut in half). */
    {
        write_idx_labels(dir, 0x801, SYN_N, SYN_N, -1, 0);
        size_t len;
        unsigned char *b = read_raw(lpath, &len);
        write_raw(lpath, b, len / 2);
        free(b);
        expect_fail(dir, "t10k-labels-idx1-ubyte.gz: truncated gzip stream",
                    "expected 20 labels, got ");
        /* zlib's text follows, without the path repeated. */
        rt_dataset d;
        char err[1024] = "";
        cr_assert_neq(rt_data_load_fashion_mnist(dir, 0, &d, err, sizeof err), 0);
        const char *z = strstr(err, "(zlib: ");
        cr_assert_not_null(z, "%s", err);
        cr_assert_null(strstr(z, "t10k"), "%s", err);
    }
    /* Labels: corrupt gzip data (damaged CRC trailer). */
    {
        write_idx_labels(dir, 0x801, SYN_N, SYN_N, -1, 0);
        size_t len;
        unsigned char *b = read_raw(lpath, &len);
        b[len - 6] ^= 0xff;
        write_raw(lpath, b, len);
        free(b);
        expect_fail(dir, "t10k-labels-idx1-ubyte.gz", "corrupt gzip");
    }

    /* Images. */
    write_valid(dir);
    write_idx_images(dir, 0x801, SYN_N, 28, 28, SYN_N);
    expect_fail(dir, "t10k-images-idx3-ubyte.gz: bad magic 0x00000801",
                "expected IDX3 images 0x00000803");
    write_idx_images(dir, 0x803, SYN_N, 27, 28, SYN_N);
    expect_fail(dir, "t10k-images-idx3-ubyte.gz: bad image size 27x28", "expected 28x28");
    write_idx_images(dir, 0x803, SYN_N + 1, 28, 28, SYN_N + 1);
    expect_fail(dir, "t10k-images-idx3-ubyte.gz: count mismatch: 21 images",
                "t10k-labels-idx1-ubyte.gz has 20 labels");
    write_idx_images(dir, 0x803, SYN_N, 28, 28, 7);
    expect_fail(dir, "t10k-images-idx3-ubyte.gz: truncated: expected 20 images, got 7", NULL);
    {
        write_idx_images(dir, 0x803, SYN_N, 28, 28, SYN_N);
        size_t len;
        unsigned char *b = read_raw(ipath, &len);
        write_raw(ipath, b, len - 40);
        free(b);
        expect_fail(dir, "t10k-images-idx3-ubyte.gz: truncated gzip stream",
                    "expected 20 images, got ");
    }
    {
        unsigned char junk[100];
        for (int i = 0; i < 100; i++) junk[i] = (unsigned char)(i * 37 + 1);
        write_raw(ipath, junk, sizeof junk);
        expect_fail(dir, "t10k-images-idx3-ubyte.gz: not gzip", NULL);
    }
    /* Label count 0. */
    write_valid(dir);
    write_idx_labels(dir, 0x801, 0, 0, -1, 0);
    expect_fail(dir, "t10k-labels-idx1-ubyte.gz", "label count 0");

    /* And back to a valid pair: loads. */
    write_valid(dir);
    rt_dataset d;
    char err[512];
    cr_assert_eq(rt_data_load_fashion_mnist(dir, 0, &d, err, sizeof err), 0, "%s", err);
    rt_dataset_free(&d);
    rm_flat_dir(dir);
}

/* ---- CIFAR-10 ---------------------------------------------------------------------------- */

/* Record r of a file fi: label (fi*3 + r) % 10, pixel j = (fi*101 + r*13 + j) & 255. */
static void write_cifar_file(const char *path, int fi, int nrec, int bad_label_at) {
    unsigned char *b = malloc((size_t)nrec * 3073);
    for (int r = 0; r < nrec; r++) {
        unsigned char *p = b + (size_t)r * 3073;
        p[0] = (unsigned char)((fi * 3 + r) % 10);
        if (r == bad_label_at) p[0] = 10;
        for (int j = 0; j < 3072; j++) p[1 + j] = (unsigned char)(fi * 101 + r * 13 + j);
    }
    write_raw(path, b, (size_t)nrec * 3073);
    free(b);
}

Test(data_cifar, synthetic_directory) {
    const char *dir = tu_tmpdir();
    char path[4096];
    const int nrec[6] = {3, 4, 5, 6, 7, 9};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, i + 1);
        write_cifar_file(path, i, nrec[i], -1);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar_file(path, 5, nrec[5], -1);

    rt_dataset d;
    char err[512] = "";
    cr_assert_eq(rt_data_load_cifar10(dir, 1, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 25);
    cr_assert_eq(d.c, 3);
    cr_assert_eq(d.h, 32);
    cr_assert_eq(d.w, 32);
    cr_assert_eq(d.classes, 10);
    int k = 0;
    for (int fi = 0; fi < 5; fi++)
        for (int r = 0; r < nrec[fi]; r++, k++) {
            cr_assert_eq(d.labels[k], (fi * 3 + r) % 10);
            for (int j = 0; j < 3072; j++)
                cr_assert_eq(d.pixels[(size_t)k * 3072 + j],
                             (unsigned char)(fi * 101 + r * 13 + j));
        }
    rt_dataset_free(&d);

    cr_assert_eq(rt_data_load_cifar10(dir, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 9);
    cr_assert_eq(d.labels[0], 5);
    cr_assert_eq(d.pixels[0], (unsigned char)(5 * 101));
    /* Channel planes: R at 0..1023, G at 1024.. (pixel index j runs over the record). */
    cr_assert_eq(d.pixels[1024], (unsigned char)(5 * 101 + 1024));
    rt_dataset_free(&d);
    rm_flat_dir(dir);
}

Test(data_cifar, errors_name_the_file) {
    const char *dir = tu_tmpdir();
    char path[4096], err[1024];
    rt_dataset d;
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, i + 1);
        write_cifar_file(path, i, 2, -1);
    }
    /* Missing test batch. */
    cr_assert_neq(rt_data_load_cifar10(dir, 0, &d, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "test_batch.bin: cannot open"), "%s", err);
    cr_assert_null(d.pixels);
    /* Wrong size. */
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir);
    {
        unsigned char b[3073 + 100] = {0};
        write_raw(path, b, sizeof b);
    }
    cr_assert_neq(rt_data_load_cifar10(dir, 1, &d, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "data_batch_3.bin: bad size 3173 bytes"), "%s", err);
    cr_assert_not_null(strstr(err, "3073"), "%s", err);
    cr_assert_null(d.pixels);
    /* Empty file. */
    write_raw(path, "", 0);
    cr_assert_neq(rt_data_load_cifar10(dir, 1, &d, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "data_batch_3.bin: bad size 0 bytes"), "%s", err);
    /* Bad label. */
    write_cifar_file(path, 2, 4, 2);
    cr_assert_neq(rt_data_load_cifar10(dir, 1, &d, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "data_batch_3.bin: label 10 at record 2"), "%s", err);
    cr_assert_null(d.pixels);
    /* No directory. */
    cr_assert_neq(rt_data_load_cifar10(NULL, 1, &d, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "cifar10"), "%s", err);
    /* Fixed: loads. */
    write_cifar_file(path, 2, 4, -1);
    cr_assert_eq(rt_data_load_cifar10(dir, 1, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 12);
    rt_dataset_free(&d);
    rm_flat_dir(dir);
}

/* ---- subset ------------------------------------------------------------------------------ */

/* A synthetic dataset: n samples of (c,h,w); label = index; pixel = f(index, c, y, x). */
typedef uint8_t (*pix_fn)(int i, int c, int y, int x);

static uint8_t pix_index(int i, int c, int y, int x) {
    return (uint8_t)(i * 31 + c * 7 + y * 3 + x);
}
/* Unique, nonzero pattern within an image (h*w*c <= 255). */
static uint8_t pix_pattern(int i, int c, int y, int x) {
    return (uint8_t)(1 + c * 64 + y * 8 + x);
}

static rt_dataset make_syn(int n, int c, int h, int w, pix_fn f) {
    rt_dataset d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.c = c;
    d.h = h;
    d.w = w;
    d.classes = 10;
    d.pixels = malloc((size_t)n * c * h * w);
    d.labels = malloc((size_t)n * sizeof(int32_t));
    d.owns = 1;
    for (int i = 0; i < n; i++) {
        d.labels[i] = i;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    d.pixels[(((size_t)i * c + ch) * h + y) * w + x] = f(i, ch, y, x);
    }
    return d;
}

Test(data_subset, views_and_bounds) {
    rt_dataset d = make_syn(10, 2, 3, 3, pix_index), v;
    cr_assert_eq(rt_data_subset(&d, 4, 6, &v), 0);
    cr_assert_eq(v.n, 6);
    cr_assert_eq(v.c, 2);
    cr_assert_eq(v.labels[0], 4);
    cr_assert_eq(v.pixels, d.pixels + 4 * 18);
    cr_assert_eq(v.owns, 0);
    cr_assert_eq(rt_data_subset(&d, 10, 0, &v), 0);
    cr_assert_eq(v.n, 0);
    cr_assert_neq(rt_data_subset(&d, 5, 6, &v), 0);
    cr_assert_null(v.pixels);
    cr_assert_neq(rt_data_subset(&d, -1, 2, &v), 0);
    cr_assert_neq(rt_data_subset(&d, 0, -1, &v), 0);
    cr_assert_neq(rt_data_subset(&d, 11, 0, &v), 0);
    /* A view of a view. */
    rt_dataset v1, v2;
    cr_assert_eq(rt_data_subset(&d, 2, 8, &v1), 0);
    cr_assert_eq(rt_data_subset(&v1, 3, 2, &v2), 0);
    cr_assert_eq(v2.labels[0], 5);
    rt_dataset_free(&d);
}

/* ---- loader ------------------------------------------------------------------------------ */

static rt_loader_cfg plain_cfg(int B) {
    rt_loader_cfg c = rt_loader_cfg_default();
    c.batch_size = B;
    c.seed = 1234;
    return c;
}

/* Runs one epoch; writes the label order into order (n entries) and returns the count. */
static int run_epoch(rt_loader *l, float *img, int32_t *lab, int32_t *order, int *nbatches) {
    int got = 0, nb = 0, b;
    while (rt_loader_next(l, img, lab, &b)) {
        for (int i = 0; i < b; i++) order[got + i] = lab[i];
        got += b;
        nb++;
    }
    cr_assert_eq(b, 0);
    if (nbatches) *nbatches = nb;
    return got;
}

Test(data_loader, epoch_covers_each_sample_once) {
    const int n = 103, B = 10;
    rt_dataset d = make_syn(n, 1, 4, 4, pix_index);
    rt_loader l;
    char err[256];
    rt_loader_cfg cfg = plain_cfg(B);
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rt_loader_batches_per_epoch(&l), 11);
    float *img = malloc(sizeof(float) * B * 16);
    int32_t lab[10], order[103];
    int sizes[11], nb = 0, b;
    int got = 0;
    while (rt_loader_next(&l, img, lab, &b)) {
        cr_assert(nb < 11);
        sizes[nb++] = b;
        for (int i = 0; i < b; i++) {
            order[got + i] = lab[i];
            /* The image is the sample's own (no augmentation). */
            for (int j = 0; j < 16; j++)
                cr_assert_eq(img[i * 16 + j], (float)pix_index(lab[i], 0, j / 4, j % 4) / 255.0f);
        }
        got += b;
    }
    cr_assert_eq(nb, 11);
    for (int i = 0; i < 10; i++) cr_assert_eq(sizes[i], 10);
    cr_assert_eq(sizes[10], 3);
    cr_assert_eq(got, n);
    int seen[103] = {0};
    for (int i = 0; i < n; i++) seen[order[i]]++;
    for (int i = 0; i < n; i++) cr_assert_eq(seen[i], 1, "sample %d seen %d times", i, seen[i]);
    int64_t e, p;
    rt_loader_state(&l, &e, &p);
    cr_assert_eq(e, 1);
    cr_assert_eq(p, 0);
    rt_loader_free(&l);

    /* drop_last: 10 full batches, the 3 leftovers dropped, each served at most once. */
    cfg.drop_last = 1;
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rt_loader_batches_per_epoch(&l), 10);
    nb = 0;
    got = run_epoch(&l, img, lab, order, &nb);
    cr_assert_eq(nb, 10);
    cr_assert_eq(got, 100);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < got; i++) cr_assert_eq(seen[order[i]]++, 0);
    rt_loader_free(&l);
    free(img);
    rt_dataset_free(&d);
}

Test(data_loader, shuffles_per_epoch_and_seed) {
    const int n = 200, B = 32;
    rt_dataset d = make_syn(n, 1, 2, 2, pix_index);
    rt_loader a, b, c;
    char err[256];
    rt_loader_cfg cfg = plain_cfg(B);
    cr_assert_eq(rt_loader_init(&a, &d, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rt_loader_init(&b, &d, &cfg, err, sizeof err), 0, "%s", err);
    cfg.seed = 99;
    cr_assert_eq(rt_loader_init(&c, &d, &cfg, err, sizeof err), 0, "%s", err);
    float img[32 * 4];
    int32_t lab[32];
    int32_t a0[200], a1[200], b0[200], b1[200], c0[200];
    cr_assert_eq(run_epoch(&a, img, lab, a0, NULL), n);
    cr_assert_eq(run_epoch(&a, img, lab, a1, NULL), n);
    cr_assert_eq(run_epoch(&b, img, lab, b0, NULL), n);
    cr_assert_eq(run_epoch(&b, img, lab, b1, NULL), n);
    cr_assert_eq(run_epoch(&c, img, lab, c0, NULL), n);
    cr_assert_eq(memcmp(a0, b0, sizeof a0), 0, "same seed, same epoch 0");
    cr_assert_eq(memcmp(a1, b1, sizeof a1), 0, "same seed, same epoch 1");
    cr_assert_neq(memcmp(a0, a1, sizeof a0), 0, "epochs must differ");
    cr_assert_neq(memcmp(a0, c0, sizeof a0), 0, "seeds must differ");
    int identity = 1;
    for (int i = 0; i < n; i++) identity &= a0[i] == i;
    cr_assert(!identity, "shuffled epoch equals dataset order");
    /* Each epoch is a permutation. */
    int seen[200] = {0};
    for (int i = 0; i < n; i++) seen[a1[i]]++;
    for (int i = 0; i < n; i++) cr_assert_eq(seen[i], 1);
    rt_loader_free(&a);
    rt_loader_free(&b);
    rt_loader_free(&c);

    /* shuffle off: dataset order, every epoch. */
    cfg.shuffle = 0;
    cr_assert_eq(rt_loader_init(&a, &d, &cfg, err, sizeof err), 0, "%s", err);
    for (int ep = 0; ep < 2; ep++) {
        cr_assert_eq(run_epoch(&a, img, lab, a0, NULL), n);
        for (int i = 0; i < n; i++) cr_assert_eq(a0[i], i);
    }
    rt_loader_free(&a);
    rt_dataset_free(&d);
}

Test(data_loader, seek_reproduces_bit_identical) {
    const int n = 77, B = 8, C = 3, H = 8, W = 8;
    rt_dataset d = make_syn(n, C, H, W, pix_index);
    rt_loader_cfg cfg = plain_cfg(B);
    cfg.normalize = 1;
    const float mean[3] = RT_DATA_CIFAR10_MEAN, std[3] = RT_DATA_CIFAR10_STD;
    memcpy(cfg.mean, mean, sizeof mean);
    memcpy(cfg.std, std, sizeof std);
    cfg.crop_pad = 2;
    cfg.flip = 1;
    cfg.cutout = 3;
    char err[256];
    rt_loader a;
    cr_assert_eq(rt_loader_init(&a, &d, &cfg, err, sizeof err), 0, "%s", err);
    const size_t bsz = (size_t)B * C * H * W;
    /* Record every batch of 3 epochs with the state before it. */
    enum { MAXB = 40 };
    float *rec = malloc(sizeof(float) * bsz * MAXB);
    int32_t rlab[MAXB][8];
    int rb[MAXB];
    int64_t re[MAXB], rp[MAXB];
    int nrec = 0;
    for (int ep = 0; ep < 3; ep++) {
        int b;
        for (;;) {
            cr_assert(nrec < MAXB);
            rt_loader_state(&a, &re[nrec], &rp[nrec]);
            if (!rt_loader_next(&a, rec + bsz * nrec, rlab[nrec], &b)) break;
            rb[nrec++] = b;
        }
    }
    cr_assert_eq(nrec, 30);
    float *img = malloc(sizeof(float) * bsz);
    int32_t lab[8];
    /* Every recorded state, restored in a fresh loader, and in one loader in random order
     * (backwards across epochs), gives the same next batch, bit for bit. */
    rt_loader s;
    cr_assert_eq(rt_loader_init(&s, &d, &cfg, err, sizeof err), 0, "%s", err);
    for (int k = nrec - 1; k >= 0; k--) {
        int b;
        rt_loader f;
        cr_assert_eq(rt_loader_init(&f, &d, &cfg, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rt_loader_seek(&f, re[k], rp[k]), 0);
        cr_assert_eq(rt_loader_next(&f, img, lab, &b), 1);
        cr_assert_eq(b, rb[k]);
        cr_assert_eq(memcmp(img, rec + bsz * k, sizeof(float) * (size_t)b * C * H * W), 0,
                     "batch %d differs after seek", k);
        cr_assert_eq(memcmp(lab, rlab[k], sizeof(int32_t) * (size_t)b), 0);
        rt_loader_free(&f);

        int kk = (k * 17) % nrec;
        cr_assert_eq(rt_loader_seek(&s, re[kk], rp[kk]), 0);
        cr_assert_eq(rt_loader_next(&s, img, lab, &b), 1);
        cr_assert_eq(memcmp(img, rec + bsz * kk, sizeof(float) * (size_t)b * C * H * W), 0);
    }
    /* End-of-epoch state: the next call ends the epoch and continues as the original. */
    cr_assert_eq(rt_loader_seek(&s, 1, n), 0);
    int b;
    cr_assert_eq(rt_loader_next(&s, img, lab, &b), 0);
    int64_t e, p;
    rt_loader_state(&s, &e, &p);
    cr_assert_eq(e, 2);
    cr_assert_eq(p, 0);
    cr_assert_eq(rt_loader_next(&s, img, lab, &b), 1);
    cr_assert_eq(memcmp(img, rec + bsz * 20, sizeof(float) * bsz), 0);
    /* Out of range. */
    cr_assert_neq(rt_loader_seek(&s, -1, 0), 0);
    cr_assert_neq(rt_loader_seek(&s, 0, n + 1), 0);
    cr_assert_neq(rt_loader_seek(&s, 0, -1), 0);
    rt_loader_free(&s);
    rt_loader_free(&a);
    free(rec);
    free(img);
    rt_dataset_free(&d);
}

Test(data_loader, normalisation_exact) {
    const int n = 5, C = 3, H = 4, W = 4;
    rt_dataset d = make_syn(n, C, H, W, pix_index);
    rt_loader_cfg cfg = plain_cfg(n);
    cfg.shuffle = 0;
    cfg.normalize = 1;
    const float mean[3] = RT_DATA_CIFAR10_MEAN, std[3] = RT_DATA_CIFAR10_STD;
    memcpy(cfg.mean, mean, sizeof mean);
    memcpy(cfg.std, std, sizeof std);
    rt_loader l;
    char err[256];
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    float img[5 * 48];
    int32_t lab[5];
    int b;
    cr_assert_eq(rt_loader_next(&l, img, lab, &b), 1);
    cr_assert_eq(b, n);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < H * W; j++) {
                uint8_t p = pix_index(i, c, j / W, j % W);
                float want = ((float)p / 255.0f - mean[c]) / std[c];
                float got = img[(i * C + c) * H * W + j];
                cr_assert_eq(memcmp(&got, &want, sizeof got), 0, "i %d c %d j %d: %.9g vs %.9g",
                             i, c, j, (double)got, (double)want);
            }
    /* Pixel 0 and 255 of channel 0, by value. */
    cr_assert_float_eq(l.lut[0][0], -0.49139968f / 0.24703233f, 1e-6);
    cr_assert_float_eq(l.lut[0][255], (1.0f - 0.49139968f) / 0.24703233f, 1e-6);
    rt_loader_free(&l);
    rt_dataset_free(&d);
}

/* Fetches one sample per position for a whole epoch of a loader with batch size 1. */
static void one(rt_loader *l, float *img, int32_t *lab) {
    int b;
    if (!rt_loader_next(l, img, lab, &b)) cr_assert_eq(rt_loader_next(l, img, lab, &b), 1);
    cr_assert_eq(b, 1);
}

Test(data_loader, crop_with_padding_shifts_content) {
    const int C = 2, H = 6, W = 8, P = 2;
    rt_dataset d = make_syn(1, C, H, W, pix_pattern);
    rt_loader_cfg cfg = plain_cfg(1);
    cfg.crop_pad = P;
    rt_loader l;
    char err[256];
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    float img[2 * 6 * 8];
    int32_t lab;
    int seen[5][5] = {{0}};
    for (int t = 0; t < 400; t++) {
        one(&l, img, &lab);
        /* Find the shift: the output pixel (y,x) is input (y+dy, x+dx) or 0 (padding). */
        int found = 0;
        for (int dy = -P; dy <= P && !found; dy++)
            for (int dx = -P; dx <= P && !found; dx++) {
                int ok = 1;
                for (int c = 0; c < C && ok; c++)
                    for (int y = 0; y < H && ok; y++)
                        for (int x = 0; x < W && ok; x++) {
                            int sy = y + dy, sx = x + dx;
                            float want = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                             ? (float)pix_pattern(0, c, sy, sx) / 255.0f
                                             : 0.0f;
                            ok = img[(c * H + y) * W + x] == want;
                        }
                if (ok) {
                    found = 1;
                    seen[dy + P][dx + P]++;
                }
            }
        cr_assert(found, "sample %d is not a padded shift of the input", t);
    }
    /* Every one of the 25 offsets occurs, the unshifted one included. */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) cr_assert(seen[i][j] > 0, "offset %d,%d never drawn", i - P, j - P);
    rt_loader_free(&l);

    /* With normalisation the padding is pixel value 0 normalised: -mean/std. */
    cfg.normalize = 1;
    cfg.mean[0] = 0.5f;
    cfg.std[0] = 0.25f;
    cfg.mean[1] = 0.25f;
    cfg.std[1] = 0.5f;
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    int padded = 0;
    for (int t = 0; t < 50; t++) {
        one(&l, img, &lab);
        for (int c = 0; c < C; c++) {
            float pad = (0.0f - cfg.mean[c]) / cfg.std[c];
            for (int j = 0; j < H * W; j++) padded += img[c * H * W + j] == pad;
        }
    }
    cr_assert(padded > 0);
    rt_loader_free(&l);
    rt_dataset_free(&d);
}

Test(data_loader, flip_mirrors) {
    const int C = 3, H = 4, W = 5;
    rt_dataset d = make_syn(1, C, H, W, pix_pattern);
    rt_loader_cfg cfg = plain_cfg(1);
    cfg.flip = 1;
    rt_loader l;
    char err[256];
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    float img[3 * 4 * 5];
    int32_t lab;
    int flips = 0, plains = 0;
    const int T = 1000;
    for (int t = 0; t < T; t++) {
        one(&l, img, &lab);
        int same = 1, mirrored = 1;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float v = img[(c * H + y) * W + x];
                    same &= v == (float)pix_pattern(0, c, y, x) / 255.0f;
                    mirrored &= v == (float)pix_pattern(0, c, y, W - 1 - x) / 255.0f;
                }
        cr_assert(same != mirrored, "sample %d is neither the image nor its mirror", t);
        flips += mirrored;
        plains += same;
    }
    cr_assert(flips > 400 && flips < 600, "flips %d of %d", flips, T);
    cr_assert_eq(flips + plains, T);
    rt_loader_free(&l);
    rt_dataset_free(&d);
}

Test(data_loader, cutout_zeros_clipped_square) {
    const int C = 2, H = 7, W = 9, L = 4;
    rt_dataset d = make_syn(1, C, H, W, pix_pattern);
    rt_loader_cfg cfg = plain_cfg(1);
    cfg.cutout = L;
    cfg.normalize = 1;
    cfg.mean[0] = cfg.mean[1] = 0.0f; /* every pixel >= 1, so only cutout makes zeros */
    cfg.std[0] = 0.5f;
    cfg.std[1] = 2.0f;
    rt_loader l;
    char err[256];
    cr_assert_eq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0, "%s", err);
    float img[2 * 7 * 9];
    int32_t lab;
    int full = 0, clipped = 0;
    for (int t = 0; t < 500; t++) {
        one(&l, img, &lab);
        int y1 = H, y2 = -1, x1 = W, x2 = -1, nz = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (img[y * W + x] == 0.0f) {
                    nz++;
                    if (y < y1) y1 = y;
                    if (y > y2) y2 = y;
                    if (x < x1) x1 = x;
                    if (x > x2) x2 = x;
                }
        cr_assert(nz > 0, "no cutout");
        int hh = y2 - y1 + 1, ww = x2 - x1 + 1;
        cr_assert_eq(nz, hh * ww, "zeros do not form a rectangle");
        cr_assert(hh <= L && ww <= L);
        /* Smaller than L only where clipped at a border. */
        if (hh < L) cr_assert(y1 == 0 || y2 == H - 1);
        if (ww < L) cr_assert(x1 == 0 || x2 == W - 1);
        if (hh == L && ww == L)
            full++;
        else
            clipped++;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float v = img[(c * H + y) * W + x];
                    int in = y >= y1 && y <= y2 && x >= x1 && x <= x2;
                    float want = in ? 0.0f : ((float)pix_pattern(0, c, y, x) / 255.0f) / cfg.std[c];
                    cr_assert_eq(v, want, "c %d y %d x %d", c, y, x);
                }
    }
    cr_assert(full > 0 && clipped > 0, "full %d clipped %d", full, clipped);
    rt_loader_free(&l);
    rt_dataset_free(&d);
}

Test(data_loader, init_errors) {
    rt_dataset d = make_syn(10, 5, 2, 2, pix_index);
    rt_loader l;
    char err[256];
    rt_loader_cfg cfg = plain_cfg(0);
    cr_assert_neq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "batch size"), "%s", err);
    cfg.batch_size = 16;
    cfg.drop_last = 1;
    cr_assert_neq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "drop_last"), "%s", err);
    cfg.drop_last = 0;
    cfg.normalize = 1;
    cr_assert_neq(rt_loader_init(&l, &d, &cfg, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "channels"), "%s", err);
    rt_dataset v;
    cr_assert_eq(rt_data_subset(&d, 0, 10, &v), 0);
    v.c = 1;
    v.n = 2; /* reinterpret as a 1-channel set */
    cfg.std[0] = 0.0f;
    cr_assert_neq(rt_loader_init(&l, &v, &cfg, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "std"), "%s", err);
    cfg.normalize = 0;
    cfg.cutout = -1;
    cr_assert_neq(rt_loader_init(&l, &v, &cfg, err, sizeof err), 0);
    cfg.cutout = 0;
    cfg.crop_pad = -1;
    cr_assert_neq(rt_loader_init(&l, &v, &cfg, err, sizeof err), 0);
    cfg.crop_pad = 0;
    cr_assert_eq(rt_data_subset(&d, 3, 0, &v), 0);
    cr_assert_neq(rt_loader_init(&l, &v, &cfg, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "empty"), "%s", err);
    rt_loader_free(&l); /* zeroed by the failed init: safe */
    rt_dataset_free(&d);
}

Test(data_loader, fmnist_darts_split_loader) {
    if (!have_fmnist()) cr_skip_test("Fashion-MNIST not installed (dataset-fashion-mnist)");
    rt_dataset d, wtrain, atrain;
    char err[512] = "";
    cr_assert_eq(rt_data_load_fashion_mnist(FMNIST_DIR, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rt_data_subset(&d, 0, d.n / 2, &wtrain), 0);
    cr_assert_eq(rt_data_subset(&d, d.n / 2, d.n - d.n / 2, &atrain), 0);
    rt_loader_cfg cfg = plain_cfg(64);
    cfg.normalize = 1;
    const float m[1] = RT_DATA_FMNIST_MEAN, s[1] = RT_DATA_FMNIST_STD;
    cfg.mean[0] = m[0];
    cfg.std[0] = s[0];
    cfg.crop_pad = 4;
    cfg.flip = 1;
    rt_loader lw, la;
    cr_assert_eq(rt_loader_init(&lw, &wtrain, &cfg, err, sizeof err), 0, "%s", err);
    cfg.seed++;
    cr_assert_eq(rt_loader_init(&la, &atrain, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rt_loader_batches_per_epoch(&lw), 79); /* ceil(5000/64) */
    float *img = malloc(sizeof(float) * 64 * 784);
    int32_t lab[64];
    int b, counts[10] = {0}, total = 0;
    double sum = 0;
    while (rt_loader_next(&la, img, lab, &b)) {
        for (int i = 0; i < b; i++) counts[lab[i]]++;
        for (int i = 0; i < b * 784; i++) sum += img[i];
        total += b;
    }
    cr_assert_eq(total, 5000);
    int ref[10] = {0};
    for (int i = 5000; i < 10000; i++) ref[d.labels[i]]++;
    for (int k = 0; k < 10; k++) cr_assert_eq(counts[k], ref[k]);
    /* Roughly standardised (padding shifts the mean a little below 0). */
    double mean = sum / (5000.0 * 784.0);
    cr_assert(fabs(mean) < 0.2, "mean %f", mean);
    cr_assert_eq(rt_loader_next(&lw, img, lab, &b), 1);
    cr_assert_eq(b, 64);
    for (int i = 0; i < 64; i++) cr_assert(lab[i] >= 0 && lab[i] < 10);
    rt_loader_free(&lw);
    rt_loader_free(&la);
    free(img);
    rt_dataset_free(&d);
}
