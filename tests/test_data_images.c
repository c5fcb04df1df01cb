/* test_data_images.c — image folders: a small data set is written here as PNG (libpng) and
 * JPEG (libjpeg) files from Fashion-MNIST test images and read back through
 * rt_data_load_images: PNG exactly, JPEG within a stated tolerance; grey/RGB conversion;
 * the antialiased resize against PyTorch's interpolate(bilinear, antialias=True); and each
 * bad-data case with its message naming the file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime/datasets.h"
#include "tests/testutil.h"

/* JPEG quality 95, grey, 28x28 Fashion-MNIST images: measured mean |error| 0.6-0.9 and max
 * 9-13 grey levels over the images of this test (libjpeg-turbo 2.1.5, islow DCT). */
#define JPEG_QUALITY 95
#define JPEG_MEAN_TOL 1.5
#define JPEG_MAX_TOL 20

#define write_png tu_write_png
static void write_jpeg(const char *path, int c, int h, int w, const uint8_t *px) { tu_write_jpeg(path, c, h, w, px, JPEG_QUALITY); }

static void mkdirs(const char *root, const char *sub) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", root, sub);
    char *q = p + strlen(root) + 1;
    for (; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0755);
            *q = '/';
        }
    mkdir(p, 0755);
}

/* The images of the data set: Fashion-MNIST test images 0..11 (grey 28x28). */
static rt_dataset fm;
static void load_fm(void) {
    char err[1024];
    cr_assert_eq(rt_data_load_fashion_mnist(NULL, 0, &fm, err, sizeof err), 0, "%s (run scripts/setup)", err);
}
static void free_fm(void) { rt_dataset_free(&fm); }
static const uint8_t *fm_img(int i) { return fm.pixels + (size_t)i * 784; }

/* A colour version of image i: R = p, G = 255 - p, B = p / 2 (interleaved). */
static void colour_of(int i, uint8_t *rgb) {
    const uint8_t *p = fm_img(i);
    for (int k = 0; k < 784; k++) {
        rgb[3 * k] = p[k];
        rgb[3 * k + 1] = (uint8_t)(255 - p[k]);
        rgb[3 * k + 2] = (uint8_t)(p[k] / 2);
    }
}

/* root/<split>/<class>/: classes "trouser", "bag", "coat" (sorted: bag, coat, trouser);
 * each holds 00.png (grey), 01.png (RGB), 02.jpg (grey JPEG), from images 4k .. 4k+2. */
static const char *const class_dirs[3] = {"trouser", "bag", "coat"};
static void write_split(const char *root, const char *split) {
    for (int k = 0; k < 3; k++) {
        char sub[200], p[800];
        snprintf(sub, sizeof sub, "%s/%s", split, class_dirs[k]);
        mkdirs(root, sub);
        snprintf(p, sizeof p, "%s/%s/00.png", root, sub);
        write_png(p, 1, 28, 28, fm_img(4 * k));
        uint8_t rgb[784 * 3];
        colour_of(4 * k + 1, rgb);
        snprintf(p, sizeof p, "%s/%s/01.png", root, sub);
        write_png(p, 3, 28, 28, rgb);
        snprintf(p, sizeof p, "%s/%s/02.jpg", root, sub);
        write_jpeg(p, 1, 28, 28, fm_img(4 * k + 2));
    }
}

Test(data_images, png_exact_jpeg_within_tolerance_labels_from_sorted_folders, .init = load_fm, .fini = free_fm) {
    const char *root = tu_tmpdir();
    write_split(root, "train");
    rt_data_want grey = {1, 28, 28, 3};
    rt_dataset d;
    char err[1024];
    cr_assert_eq(rt_data_load_images(root, 1, &grey, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 9);
    cr_assert_eq(d.classes, 3);
    /* the samples come in a fixed permutation of the files: identify each by its class
       and content (grey PNG exact, RGB PNG as exact luma, else the JPEG) */
    double jmean = 0;
    int jmax = 0, seen[3][3] = {{0}}, first3[3] = {0};
    for (int s = 0; s < 9; s++) {
        int label = d.labels[s], k = label == 2 ? 0 : label == 0 ? 1 : 2; /* sorted_label inverse */
        cr_assert(label >= 0 && label < 3, "label %d", label);
        if (s < 3) first3[label] = 1;
        const uint8_t *px = d.pixels + (size_t)s * 784;
        uint8_t rgb[784 * 3], luma[784];
        colour_of(4 * k + 1, rgb);
        for (int i = 0; i < 784; i++) luma[i] = (uint8_t)((299 * rgb[3 * i] + 587 * rgb[3 * i + 1] + 114 * rgb[3 * i + 2] + 500) / 1000);
        if (memcmp(px, fm_img(4 * k), 784) == 0) seen[k][0]++;
        else if (memcmp(px, luma, 784) == 0) seen[k][1]++;
        else {
            seen[k][2]++;
            for (int i = 0; i < 784; i++) {
                int e = abs((int)px[i] - (int)fm_img(4 * k + 2)[i]);
                jmean += e;
                if (e > jmax) jmax = e;
            }
        }
    }
    for (int k = 0; k < 3; k++)
        cr_expect(seen[k][0] == 1 && seen[k][1] == 1 && seen[k][2] == 1,
                  "class %s: %d exact grey PNGs, %d exact RGB-to-grey PNGs, %d others (expected 1 each)", class_dirs[k],
                  seen[k][0], seen[k][1], seen[k][2]);
    cr_expect(first3[0] + first3[1] + first3[2] >= 2, "the first samples are not mixed over the classes");
    jmean /= 3 * 784;
    cr_log_info("JPEG q%d: mean |error| %.3f, max %d grey levels", JPEG_QUALITY, jmean, jmax);
    cr_expect(jmean <= JPEG_MEAN_TOL && jmax <= JPEG_MAX_TOL, "JPEG decoding error mean %.3f max %d", jmean, jmax);
    /* a JPEG is not its source: the comparison above can fail */
    cr_expect(jmax > 0, "JPEG decoded without any loss: is it compared with the right image?");
    int32_t order[9];
    memcpy(order, d.labels, sizeof order);
    rt_dataset_free(&d);

    /* the same folders as RGB: grey replicated, the colour PNG exact in every channel */
    rt_data_want rgbw = {3, 28, 28, 3};
    cr_assert_eq(rt_data_load_images(root, 1, &rgbw, &d, err, sizeof err), 0, "%s", err);
    cr_expect_eq(memcmp(order, d.labels, sizeof order), 0, "the sample order changed with the channels");
    int found[3][2] = {{0}};
    for (int s = 0; s < 9; s++) {
        int label = d.labels[s], k = label == 2 ? 0 : label == 0 ? 1 : 2;
        const uint8_t *px = d.pixels + (size_t)s * 3 * 784;
        uint8_t rgb[784 * 3];
        colour_of(4 * k + 1, rgb);
        int is_grey = 1, colour = 1;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 784; i++) {
                is_grey &= px[ch * 784 + i] == fm_img(4 * k)[i];
                colour &= px[ch * 784 + i] == rgb[3 * i + ch];
            }
        found[k][0] += is_grey;
        found[k][1] += colour;
    }
    for (int k = 0; k < 3; k++)
        cr_expect(found[k][0] == 1 && found[k][1] == 1, "class %s as RGB: %d replicated grey PNGs, %d exact RGB PNGs",
                  class_dirs[k], found[k][0], found[k][1]);
    rt_dataset_free(&d);

    /* the test split may hold a subset of the classes; labels follow the training folders */
    char sub[300], p[800];
    snprintf(sub, sizeof sub, "test/coat");
    mkdirs(root, sub);
    snprintf(p, sizeof p, "%s/test/coat/x.PNG", root);
    write_png(p, 1, 28, 28, fm_img(11));
    cr_assert_eq(rt_data_load_images(root, 0, &grey, &d, err, sizeof err), 0, "%s", err);
    cr_expect_eq(d.n, 1);
    cr_expect_eq(d.labels[0], 1);
    cr_expect_eq(d.classes, 3);
    cr_expect_eq(memcmp(d.pixels, fm_img(11), 784), 0);
    rt_dataset_free(&d);
    char **names;
    int n;
    cr_assert_eq(rt_data_image_classes(root, &names, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(names[0], "bag");
    cr_expect_str_eq(names[2], "trouser");
    rt_data_names_free(names, n);
}

/* ---- resizing --------------------------------------------------------------------------------- */

Test(data_images, resize_antialiases_when_shrinking) {
    /* a 1-pixel checkerboard shrunk 3x: point-sampled bilinear would give 0 or 255 */
    enum { S = 30 };
    uint8_t src[S * S], dst[10 * 10];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) src[y * S + x] = (uint8_t)(((x + y) & 1) ? 255 : 0);
    cr_assert_eq(rt_data_resize(dst, 10, 10, src, S, S), 0);
    for (int i = 0; i < 100; i++) cr_expect(dst[i] > 96 && dst[i] < 160, "pixel %d = %d", i, dst[i]);
    /* constants stay constant; equal sizes copy */
    memset(src, 77, sizeof src);
    uint8_t up[47 * 61];
    cr_assert_eq(rt_data_resize(up, 47, 61, src, S, S), 0);
    for (int i = 0; i < 47 * 61; i++) cr_assert_eq(up[i], 77);
    uint8_t same[S * S];
    for (int i = 0; i < S * S; i++) src[i] = (uint8_t)(i * 7);
    cr_assert_eq(rt_data_resize(same, S, S, src, S, S), 0);
    cr_expect_eq(memcmp(same, src, sizeof src), 0);
}

Test(data_images, resize_matches_torch_antialiased_bilinear, .init = load_fm, .fini = free_fm) {
    if (access(DARTSC_PYTHON, X_OK) != 0) cr_skip_test("no %s (scripts/setup makes it)", DARTSC_PYTHON);
    const char *dir = tu_tmpdir();
    static const int sizes[][2] = {{16, 16}, {12, 20}, {9, 9}, {56, 56}, {40, 21}, {28, 7}};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    char src_p[600], out_p[600], cmd[2400];
    snprintf(src_p, sizeof src_p, "%s/src.u8", dir);
    FILE *f = fopen(src_p, "wb");
    fwrite(fm_img(0), 1, 784, f);
    fclose(f);
    snprintf(out_p, sizeof out_p, "%s/ref.u8", dir);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import sys, torch, torch.nn.functional as F\n"
             "x = torch.frombuffer(bytearray(open('%s','rb').read()), dtype=torch.uint8).float().reshape(1, 1, 28, 28)\n"
             "o = open('%s', 'wb')\n"
             "for h, w in %s:\n"
             "    y = F.interpolate(x, size=(h, w), mode='bilinear', antialias=True, align_corners=False)\n"
             "    o.write(y.round().clamp(0, 255).to(torch.uint8).numpy().tobytes())\n\" 2>&1",
             DARTSC_PYTHON, src_p, out_p, "[(16,16),(12,20),(9,9),(56,56),(40,21),(28,7)]");
    cr_assert_eq(system(cmd), 0, "torch reference failed: %s", cmd);
    size_t len;
    char *ref = tu_slurp(out_p, &len);
    cr_assert(ref);
    size_t off = 0;
    for (int s = 0; s < NS; s++) {
        int h = sizes[s][0], w = sizes[s][1];
        uint8_t *got = malloc((size_t)h * w);
        cr_assert_eq(rt_data_resize(got, h, w, fm_img(0), 28, 28), 0);
        int worst = 0;
        for (int i = 0; i < h * w; i++) {
            int e = abs((int)got[i] - (int)(uint8_t)ref[off + i]);
            if (e > worst) worst = e;
        }
        /* float rounding of values at .5 may differ by one level, nothing more */
        cr_expect(worst <= 1, "28x28 -> %dx%d: differs from torch by %d levels", h, w, worst);
        off += (size_t)h * w;
        free(got);
    }
    cr_assert_eq(off, len);
    free(ref);
}

/* ---- bad data ----------------------------------------------------------------------------------- */

/* Loads root's split with input 1x28x28 and 3 classes; it must fail with both needles. */
static void expect_refusal(const char *root, int train, int classes, const char *n1, const char *n2) {
    rt_data_want want = {1, 28, 28, classes};
    rt_dataset d;
    char err[1024] = "";
    cr_assert_neq(rt_data_load_images(root, train, &want, &d, err, sizeof err), 0, "loaded; expected '%s'", n2);
    cr_expect(strstr(err, n1), "'%s' lacks '%s'", err, n1);
    cr_expect(strstr(err, n2), "'%s' lacks '%s'", err, n2);
    cr_expect_eq(d.n, 0);
    cr_expect_null(d.pixels);
}

static void put(const char *root, const char *rel, const void *data, size_t len) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "wb");
    cr_assert(f, "%s", p);
    fwrite(data, 1, len, f);
    fclose(f);
}

static char *grab(const char *root, const char *rel, size_t *len) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return tu_slurp(p, len);
}

Test(data_images, bad_data_is_refused_naming_the_file, .init = load_fm, .fini = free_fm) {
    size_t plen, jlen;
    char *png, *jpg;
    {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        png = grab(root, "train/bag/00.png", &plen);
        jpg = grab(root, "train/bag/02.jpg", &jlen);
        cr_assert(png && jpg);
        rt_data_want want = {1, 28, 28, 3};
        rt_dataset d;
        char err[1024];
        cr_assert_eq(rt_data_load_images(root, 1, &want, &d, err, sizeof err), 0, "%s", err);
        rt_dataset_free(&d);
        /* more class folders than the space's classes */
        expect_refusal(root, 1, 2, "/train", "3 class folders, but the space has classes 2");
        /* no test split */
        expect_refusal(root, 0, 3, "/test", "cannot open");
    }
    struct {
        const char *file, *needle;
        int truncate;     /* bytes kept of the valid file; 0: the text below */
        const char *text; /* content when not a truncated copy */
        int jpeg;
    } cases[] = {
        {"train/coat/01.png", "corrupt", 0, "\x89PNG\r\n\x1a\nthis is no PNG chunk stream", 0},
        {"train/coat/01.png", "PNG (libpng", (int)plen / 2, NULL, 0},
        {"train/coat/02.jpg", "corrupt or truncated JPEG (libjpeg", (int)jlen * 3 / 5, NULL, 1},
        {"train/coat/02.jpg", "corrupt or truncated JPEG", 0, "\xff\xd8\xff\xe0 garbage", 1},
        {"train/coat/03.png", "neither a PNG nor a JPEG", 0, "just text\n", 0},
        {"train/coat/notes.txt", "not an image file", 0, "hello\n", 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        if (cases[k].truncate) put(root, cases[k].file, cases[k].jpeg ? jpg : png, (size_t)cases[k].truncate);
        else put(root, cases[k].file, cases[k].text, strlen(cases[k].text));
        expect_refusal(root, 1, 3, cases[k].file, cases[k].needle);
    }
    /* two bad files: the first in sample order (class bag before coat) is named, whatever the threads */
    {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        put(root, "train/coat/00.png", "xx", 2);
        put(root, "train/bag/01.png", "yy", 2);
        expect_refusal(root, 1, 3, "train/bag/01.png", "neither a PNG nor a JPEG");
    }
    /* an empty class folder; a stray file beside the class folders */
    {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        mkdirs(root, "train/dress");
        expect_refusal(root, 1, 4, "train/dress", "empty class folder");
        rmdir(strcat(strcpy((char[800]){0}, root), "/train/dress"));
        put(root, "train/readme.txt", "x", 1);
        expect_refusal(root, 1, 3, "train/readme.txt", "not a class folder");
    }
    /* a FIFO or a directory named like an image: refused, never opened for reading (a FIFO
       blocked the loader until a signal came, before) */
    {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        char p[800];
        snprintf(p, sizeof p, "%s/train/coat/zz.png", root);
        cr_assert_eq(mkfifo(p, 0644), 0, "%s", p);
        expect_refusal(root, 1, 3, "train/coat/zz.png", "is a FIFO (named pipe), not a regular file");
        unlink(p);
        mkdirs(root, "train/coat/yy.jpg");
        expect_refusal(root, 1, 3, "train/coat/yy.jpg", "is a directory, not a regular file");
    }
    /* a test class the training split does not have */
    {
        const char *root = tu_tmpdir();
        write_split(root, "train");
        write_split(root, "test");
        mkdirs(root, "test/zebra");
        put(root, "test/zebra/0.png", png, plen);
        expect_refusal(root, 0, 3, "test/zebra", "class 'zebra' is not among the 3 training classes");
    }
    free(png);
    free(jpg);
}
