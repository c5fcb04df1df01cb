/* data_load.c — bench/data_load.sh's helper: writes Fashion-MNIST (60,000 + 10,000
 * images) as an image folder or as NumPy arrays, and times dartsc's loaders on them.
 *   data_load make-images DIR png|jpg   DIR/{train,test}/<class>/<index>.<ext>
 *   data_load make-npy DIR              DIR/{x,y}_{train,test}.npy (uint8, N x 28 x 28 x 1; int64)
 *   data_load load images|npy DIR CxHxW prints seconds and images/s per split (JSON lines) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
/* after stdio.h, which jpeglib.h needs */
#include <jpeglib.h>
#include <png.h>

#include "runtime/datasets.h"

static const char *const class_names[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                            "sandal",  "shirt",   "sneaker",  "bag",   "ankle-boot"};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int write_jpeg(const char *path, const uint8_t *px) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jm;
    ci.err = jpeg_std_error(&jm);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = 28;
    ci.image_height = 28;
    ci.input_components = 1;
    ci.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 90, TRUE);
    jpeg_start_compress(&ci, TRUE);
    for (int y = 0; y < 28; y++) {
        JSAMPROW row = (JSAMPROW)(px + y * 28);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f);
}

static int make_images(const char *dir, const char *ext) {
    mkdir(dir, 0755);
    for (int split = 0; split < 2; split++) {
        rt_dataset d;
        char err[1024], p[4200];
        if (rt_data_load_fashion_mnist(NULL, !split, &d, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        const char *sn = split ? "test" : "train";
        snprintf(p, sizeof p, "%s/%s", dir, sn);
        mkdir(p, 0755);
        for (int k = 0; k < 10; k++) {
            snprintf(p, sizeof p, "%s/%s/%s", dir, sn, class_names[k]);
            mkdir(p, 0755);
        }
        for (int i = 0; i < d.n; i++) {
            snprintf(p, sizeof p, "%s/%s/%s/%05d.%s", dir, sn, class_names[d.labels[i]], i, ext);
            int bad;
            if (!strcmp(ext, "png")) {
                png_image pi;
                memset(&pi, 0, sizeof pi);
                pi.version = PNG_IMAGE_VERSION;
                pi.width = pi.height = 28;
                pi.format = PNG_FORMAT_GRAY;
                bad = !png_image_write_to_file(&pi, p, 0, d.pixels + (size_t)i * 784, 0, NULL);
            } else {
                bad = write_jpeg(p, d.pixels + (size_t)i * 784) != 0;
            }
            if (bad) {
                fprintf(stderr, "%s: cannot write\n", p);
                return 1;
            }
        }
        rt_dataset_free(&d);
    }
    return 0;
}

static int write_npy(const char *path, const char *descr, const char *shape, const void *data, size_t bytes) {
    char dict[256];
    int n = snprintf(dict, 200, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    while ((10 + n + 1) % 64) dict[n++] = ' ';
    dict[n++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char v[4] = {1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    fwrite("\x93NUMPY", 1, 6, f);
    fwrite(v, 1, 4, f);
    fwrite(dict, 1, (size_t)n, f);
    fwrite(data, 1, bytes, f);
    return fclose(f);
}

static int make_npy(const char *dir) {
    mkdir(dir, 0755);
    for (int split = 0; split < 2; split++) {
        rt_dataset d;
        char err[1024], p[4200], shape[64];
        if (rt_data_load_fashion_mnist(NULL, !split, &d, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int64_t *y = malloc((size_t)d.n * 8);
        for (int i = 0; i < d.n; i++) y[i] = d.labels[i];
        const char *sn = split ? "test" : "train";
        snprintf(shape, sizeof shape, "(%d, 28, 28, 1)", d.n);
        snprintf(p, sizeof p, "%s/x_%s.npy", dir, sn);
        int bad = write_npy(p, "|u1", shape, d.pixels, (size_t)d.n * 784);
        snprintf(shape, sizeof shape, "(%d,)", d.n);
        snprintf(p, sizeof p, "%s/y_%s.npy", dir, sn);
        bad |= write_npy(p, "<i8", shape, y, (size_t)d.n * 8);
        free(y);
        rt_dataset_free(&d);
        if (bad) {
            fprintf(stderr, "%s: cannot write\n", dir);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "make-images")) return make_images(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "make-npy")) return make_npy(argv[2]);
    rt_data_want want = {.classes = 10};
    if (argc != 5 || strcmp(argv[1], "load") || sscanf(argv[4], "%dx%dx%d", &want.c, &want.h, &want.w) != 3) {
        fprintf(stderr, "usage: data_load make-images DIR png|jpg | make-npy DIR | load images|npy DIR CxHxW\n");
        return 2;
    }
    int images = !strcmp(argv[2], "images");
    for (int split = 1; split >= 0; split--) {
        rt_dataset d;
        char err[1024];
        double t0 = now();
        int rc = images ? rt_data_load_images(argv[3], split, &want, &d, err, sizeof err)
                        : rt_data_load_npy(argv[3], split, &want, &d, err, sizeof err);
        double t = now() - t0;
        if (rc) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("{\"source\": \"%s\", \"split\": \"%s\", \"input\": \"%s\", \"images\": %d, \"seconds\": %.3f, "
               "\"images_per_s\": %.0f}\n",
               argv[2], split ? "train" : "test", argv[4], d.n, t, d.n / t);
        rt_dataset_free(&d);
    }
    return 0;
}
