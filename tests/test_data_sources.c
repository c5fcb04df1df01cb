/* test_data_sources.c — NumPy arrays (.npy written here byte by byte, as numpy.save
 * writes them), CIFAR-100 binaries and the per-channel statistics: decoding against the
 * values written, the layouts and conversions, and each bad-data case with its message
 * naming the file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/datasets.h"
#include "tests/testutil.h"

#define write_npy_v tu_write_npy

static void write_npy(const char *dir, const char *name, const char *descr, const char *shape, const void *data,
                      size_t bytes) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_npy_v(p, 1, descr, "False", shape, data, bytes);
}

static uint8_t pix(int i, int c, int y, int x) { return (uint8_t)((i * 37 + c * 101 + y * 13 + x * 7) & 0xff); }

enum { N = 6, H = 5, W = 4 };

/* A valid pair of uint8 channels-last RGB images and int64 labels. */
static void write_valid(const char *dir, const char *split) {
    static uint8_t x[N * H * W * 3];
    int64_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        for (int yy = 0; yy < H; yy++)
            for (int xx = 0; xx < W; xx++)
                for (int c = 0; c < 3; c++) x[((i * H + yy) * W + xx) * 3 + c] = pix(i, c, yy, xx);
    }
    char name[64];
    snprintf(name, sizeof name, "x_%s.npy", split);
    write_npy(dir, name, "|u1", "(6, 5, 4, 3)", x, sizeof x);
    snprintf(name, sizeof name, "y_%s.npy", split);
    write_npy(dir, name, "<i8", "(6,)", y, sizeof y);
}

static void expect_rgb(const rt_dataset *d) {
    cr_assert_eq(d->n, N);
    cr_assert_eq(d->c, 3);
    cr_assert_eq(d->h, H);
    cr_assert_eq(d->w, W);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(d->labels[i], i % 3);
        for (int c = 0; c < 3; c++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++)
                    cr_assert_eq(d->pixels[((i * 3 + c) * H + yy) * W + xx], pix(i, c, yy, xx), "i %d c %d y %d x %d", i,
                                 c, yy, xx);
    }
}

Test(data_npy, channels_last_uint8_and_int64_labels_exact) {
    const char *dir = tu_tmpdir();
    write_valid(dir, "train");
    rt_data_want want = {3, H, W, 3};
    rt_dataset d;
    char err[1024];
    cr_assert_eq(rt_data_load_npy(dir, 1, &want, &d, err, sizeof err), 0, "%s", err);
    expect_rgb(&d);
    rt_dataset_free(&d);
}

Test(data_npy, channels_first_float32_both_byte_orders_and_label_dtypes) {
    const char *dir = tu_tmpdir();
    static float xf[N * 3 * H * W];
    static uint32_t xb[N * 3 * H * W];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 3; c++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++) {
                    size_t k = ((size_t)(i * 3 + c) * H + yy) * W + xx;
                    xf[k] = pix(i, c, yy, xx) / 255.0f; /* as ToTensor() makes them */
                    uint32_t u;
                    memcpy(&u, &xf[k], 4);
                    xb[k] = __builtin_bswap32(u);
                }
    rt_data_want want = {3, H, W, 3};
    rt_dataset d;
    char err[1024];
    /* little-endian float32, uint8 labels of shape (N, 1) */
    uint8_t y8[N];
    for (int i = 0; i < N; i++) y8[i] = (uint8_t)(i % 3);
    write_npy(dir, "x_test.npy", "<f4", "(6, 3, 5, 4)", xf, sizeof xf);
    write_npy(dir, "y_test.npy", "|u1", "(6, 1)", y8, sizeof y8);
    cr_assert_eq(rt_data_load_npy(dir, 0, &want, &d, err, sizeof err), 0, "%s", err);
    expect_rgb(&d);
    rt_dataset_free(&d);
    /* big-endian float32 and big-endian int32 labels, in a version 2.0 file */
    uint32_t yb[N];
    for (int i = 0; i < N; i++) yb[i] = __builtin_bswap32((uint32_t)(i % 3));
    char p[600];
    snprintf(p, sizeof p, "%s/x_test.npy", dir);
    write_npy_v(p, 2, ">f4", "False", "(6, 3, 5, 4)", xb, sizeof xb);
    write_npy(dir, "y_test.npy", ">i4", "(6,)", yb, sizeof yb);
    cr_assert_eq(rt_data_load_npy(dir, 0, &want, &d, err, sizeof err), 0, "%s", err);
    expect_rgb(&d);
    rt_dataset_free(&d);
}

Test(data_npy, grey_arrays_and_channel_conversion) {
    const char *dir = tu_tmpdir();
    uint8_t x[N * H * W];
    int16_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = (int16_t)(9 - i);
        for (int k = 0; k < H * W; k++) x[i * H * W + k] = pix(i, 0, k / W, k % W);
    }
    write_npy(dir, "x_train.npy", "|u1", "(6, 5, 4)", x, sizeof x);
    write_npy(dir, "y_train.npy", "<i2", "(6,)", y, sizeof y);
    rt_dataset d;
    char err[1024];
    /* N x H x W into RGB: replicated */
    rt_data_want rgb = {3, H, W, 10};
    cr_assert_eq(rt_data_load_npy(dir, 1, &rgb, &d, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(d.labels[i], 9 - i);
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < H * W; k++) cr_assert_eq(d.pixels[(i * 3 + c) * H * W + k], x[i * H * W + k]);
    }
    rt_dataset_free(&d);
    /* RGB into grey: BT.601 luma, rounded */
    write_valid(dir, "test");
    rt_data_want grey = {1, H, W, 3};
    cr_assert_eq(rt_data_load_npy(dir, 0, &grey, &d, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < N; i++)
        for (int yy = 0; yy < H; yy++)
            for (int xx = 0; xx < W; xx++) {
                int r = pix(i, 0, yy, xx), g = pix(i, 1, yy, xx), b = pix(i, 2, yy, xx);
                int want_v = (299 * r + 587 * g + 114 * b + 500) / 1000;
                cr_assert_eq(d.pixels[(i * H + yy) * W + xx], want_v);
            }
    rt_dataset_free(&d);
}

/* Loading dir's train split fails, and the message holds every needle. */
static void expect_refusal(const char *dir, const rt_data_want *want, const char *n1, const char *n2) {
    rt_dataset d;
    char err[1024] = "";
    cr_assert_neq(rt_data_load_npy(dir, 1, want, &d, err, sizeof err), 0, "loaded, expected '%s'", n2);
    cr_expect(strstr(err, n1), "'%s' lacks '%s'", err, n1);
    cr_expect(strstr(err, n2), "'%s' lacks '%s'", err, n2);
    cr_expect_eq(d.n, 0);
    cr_expect_null(d.pixels);
}

Test(data_npy, bad_arrays_are_refused_naming_the_file) {
    const char *dir = tu_tmpdir();
    rt_data_want want = {3, H, W, 3};
    enum { XB = N * H * W * 3 };
    static uint8_t x[XB + 16]; /* room for the trailing-data case */
    int64_t y[N] = {0, 1, 2, 0, 1, 2};
    double xd[N * H * W];
    float xf[N * H * W];
    for (int i = 0; i < N * H * W; i++) xd[i] = xf[i] = 0.5f;
    /* images: wrong dtype, wrong shape, fortran order, floats outside [0, 1], ambiguous */
    write_valid(dir, "train");
    write_npy(dir, "x_train.npy", "<f8", "(6, 5, 4)", xd, sizeof xd);
    expect_refusal(dir, &want, "x_train.npy", "must be uint8 or float32, not '<f8'");
    write_npy(dir, "x_train.npy", "|u1", "(6, 4, 5, 3)", x, XB);
    expect_refusal(dir, &want, "x_train.npy", "(6, 4, 5, 3) fit neither");
    write_npy(dir, "x_train.npy", "|u1", "(6, 60)", x, 360);
    expect_refusal(dir, &want, "x_train.npy", "not shape (6, 60)");
    char p[600];
    snprintf(p, sizeof p, "%s/x_train.npy", dir);
    write_npy_v(p, 1, "|u1", "True", "(6, 5, 4, 3)", x, XB);
    expect_refusal(dir, &want, "x_train.npy", "fortran_order is True");
    xf[7] = 1.5f;
    write_npy(dir, "x_train.npy", "<f4", "(6, 5, 4)", xf, sizeof xf);
    expect_refusal(dir, &want, "x_train.npy", "1.5 at image 0 is outside [0, 1]");
    rt_data_want cube = {3, 3, 3, 3};
    write_npy(dir, "x_train.npy", "|u1", "(6, 3, 3, 3)", x, 6 * 27);
    expect_refusal(dir, &cube, "x_train.npy", "ambiguous");
    /* N x 3 x 3 x 1 for input 1x3x3 has one reading */
    rt_data_want cube1 = {1, 3, 3, 3};
    write_npy(dir, "x_train.npy", "|u1", "(6, 3, 3, 1)", x, 6 * 9);
    rt_dataset d;
    char err[1024];
    cr_expect_eq(rt_data_load_npy(dir, 1, &cube1, &d, err, sizeof err), 0, "%s", err);
    rt_dataset_free(&d);
    /* truncated, trailing data, not .npy, length mismatch */
    write_valid(dir, "train");
    write_npy(dir, "x_train.npy", "|u1", "(6, 5, 4, 3)", x, XB - 10);
    expect_refusal(dir, &want, "x_train.npy", "truncated: the header announces 360 bytes");
    write_npy(dir, "x_train.npy", "|u1", "(6, 5, 4, 3)", x, XB + 1);
    expect_refusal(dir, &want, "x_train.npy", "1 bytes of trailing data");
    FILE *f = fopen(p, "wb");
    fputs("x,y\n1,2\n", f);
    fclose(f);
    expect_refusal(dir, &want, "x_train.npy", "not a .npy file");
    f = fopen(p, "wb");
    fwrite("\x93NUMPY\x01\x00\x40", 1, 9, f);
    fclose(f);
    expect_refusal(dir, &want, "x_train.npy", "truncated .npy header");
    write_npy(dir, "x_train.npy", "|u1", "(5, 5, 4, 3)", x, 5 * 60);
    expect_refusal(dir, &want, "x_train.npy", "count mismatch: 5 images but");
    /* labels: out of range (both ends), not integers, wrong shape */
    write_valid(dir, "train");
    y[4] = 3;
    write_npy(dir, "y_train.npy", "<i8", "(6,)", y, sizeof y);
    expect_refusal(dir, &want, "y_train.npy", "label 3 at index 4 out of range (expected 0..2)");
    y[4] = -1;
    write_npy(dir, "y_train.npy", "<i8", "(6,)", y, sizeof y);
    expect_refusal(dir, &want, "y_train.npy", "label -1 at index 4 out of range");
    write_npy(dir, "y_train.npy", "<f4", "(6,)", xf, 24);
    expect_refusal(dir, &want, "y_train.npy", "integer dtype, not '<f4'");
    write_npy(dir, "y_train.npy", "|u1", "(3, 2)", x, 6);
    expect_refusal(dir, &want, "y_train.npy", "(N,) or (N, 1)");
    snprintf(p, sizeof p, "%s/y_train.npy", dir);
    remove(p);
    expect_refusal(dir, &want, "y_train.npy", "cannot open");
    rt_data_load_npy(NULL, 1, &want, &d, err, sizeof err);
    cr_expect(strstr(err, "no directory given"), "%s", err);
}

/* ---- CIFAR-100 ------------------------------------------------------------------------------ */

static void write_c100(const char *path, int n, int bad_at) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    for (int r = 0; r < n; r++) {
        unsigned char rec[3074];
        rec[0] = (unsigned char)(r % 20);
        rec[1] = (unsigned char)(r == bad_at ? 100 : (r * 7) % 100);
        for (int k = 0; k < 3072; k++) rec[2 + k] = (unsigned char)(r + k);
        fwrite(rec, 1, sizeof rec, f);
    }
    fclose(f);
}

Test(data_cifar100, fine_labels_and_pixels_and_errors) {
    const char *dir = tu_tmpdir();
    char p[600];
    snprintf(p, sizeof p, "%s/train.bin", dir);
    write_c100(p, 30, -1);
    rt_dataset d;
    char err[1024];
    cr_assert_eq(rt_data_load_cifar100(dir, 1, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 30);
    cr_assert_eq(d.c, 3);
    cr_assert_eq(d.classes, 100);
    for (int r = 0; r < 30; r++) {
        cr_expect_eq(d.labels[r], (r * 7) % 100);
        cr_expect_eq(d.pixels[(size_t)r * 3072 + 1500], (uint8_t)(r + 1500));
    }
    rt_dataset_free(&d);
    write_c100(p, 30, 17);
    cr_assert_neq(rt_data_load_cifar100(dir, 1, &d, err, sizeof err), 0);
    cr_expect(strstr(err, "train.bin: record 17") && strstr(err, "fine label 100"), "%s", err);
    FILE *f = fopen(p, "ab");
    fputc(0, f);
    fclose(f);
    cr_assert_neq(rt_data_load_cifar100(dir, 1, &d, err, sizeof err), 0);
    cr_expect(strstr(err, "train.bin: bad size 92221 bytes"), "%s", err);
    cr_assert_neq(rt_data_load_cifar100(dir, 0, &d, err, sizeof err), 0);
    cr_expect(strstr(err, "test.bin: cannot open"), "%s", err);
}

/* ---- statistics ------------------------------------------------------------------------------ */

Test(data_stats, channel_mean_and_std_match_a_direct_sum) {
    enum { n = 7, c = 3, hw = 11 };
    uint8_t px[n * c * hw];
    int32_t lab[n] = {0};
    for (int i = 0; i < n * c * hw; i++) px[i] = (uint8_t)((i * 97 + 13) % 256);
    rt_dataset d = {.n = n, .c = c, .h = 1, .w = hw, .classes = 1, .pixels = px, .labels = lab, .owns = 0};
    float mean[4], std[4];
    rt_data_channel_stats(&d, mean, std);
    for (int ch = 0; ch < c; ch++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) s += px[(i * c + ch) * hw + k] / 255.0;
        double m = s / (n * hw);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                double v = px[(i * c + ch) * hw + k] / 255.0 - m;
                s2 += v * v;
            }
        cr_expect(fabs(mean[ch] - m) < 1e-6, "channel %d mean %g vs %g", ch, mean[ch], m);
        cr_expect(fabs(std[ch] - sqrt(s2 / (n * hw))) < 1e-6, "channel %d std %g", ch, std[ch]);
    }
}
