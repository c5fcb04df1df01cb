/* datasets.h — the data sources beyond data.h's built-in ones: NumPy arrays, image
 * folders (PNG/JPEG) and CIFAR-100, plus the per-channel statistics and conversions they
 * share. docs/DATA.md is the user's description of each layout.
 *
 * Every loader fills the same rt_dataset as data.h's (uint8 pixels in NCHW order, int32
 * labels in [0, classes)) and follows the same contract: every error names the file and
 * what is wrong, and on error the output dataset is left empty (all zero), so
 * rt_dataset_free is always safe.
 *
 * Usage:
 *   rt_data_want want = {.c = 1, .h = 28, .w = 28, .classes = 10};
 *   rt_dataset d;
 *   char err[1024];
 *   if (rt_data_load_npy("my_arrays", 1, &want, &d, err, sizeof err)) puts(err);
 *   float mean[4], std[4];
 *   rt_data_channel_stats(&d, mean, std);
 *   rt_dataset_free(&d);
 */
#ifndef DARTSC_RUNTIME_DATASETS_H
#define DARTSC_RUNTIME_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/data.h"

/* For the loaders: the message into err (printf-style; nothing where err is NULL), and a
 * dataset taking ownership of its pixels and labels. */
void rt_data_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rt_dataset_own(rt_dataset *out, int64_t n, int c, int h, int w, int classes, uint8_t *pixels, int32_t *labels);

/* What the network's input asks for: channels (1 grey or 3 RGB; npy also 2 and 4 when the
 * arrays have them), height, width, and the number of classes labels must fall in. */
typedef struct rt_data_want {
    int c, h, w, classes;
} rt_data_want;

/* NumPy arrays (runtime/data_npy.c): DIR/x_train.npy + DIR/y_train.npy (train = 1) or
 * DIR/x_test.npy + DIR/y_test.npy. Images: uint8 ('|u1'), or float32 ('<f4'/'>f4') in
 * [0, 1] (stored as round(255 x)), shaped N x H x W (one channel), N x H x W x C
 * (channels last) or N x C x H x W (channels first). H and W must equal want's. The
 * layout of a 4-d array: channels last when the last dimension is 1 or 3 and dims 1, 2
 * are want's H, W; channels first when dim 1 is 1 or 3 and dims 2, 3 are H, W. Both fit
 * only for N x k x k x k with input k x k x k (k = 1 or 3): refused as ambiguous. Grey is replicated to RGB, RGB is turned into grey by ITU-R BT.601 luma
 * (as libjpeg and PIL do). Labels: any integer dtype of either byte order, shape (N) or
 * (N, 1), each in [0, want->classes). C order only (fortran_order True is refused).
 * Returns 0, or -1 with err filled ("<path>: <what is wrong>"). */
int rt_data_load_npy(const char *dir, int train, const rt_data_want *want, rt_dataset *out, char *err,
                     size_t errlen);

/* Image folders (runtime/data_images.c): DIR/train/<class>/<file> (train = 1) or
 * DIR/test/<class>/<file>, files .png, .jpg, .jpeg (case-insensitive; other files and
 * hidden files refused, so nothing is silently skipped). Classes are DIR/train's
 * sub-folder names in byte order (strcmp); label k = the k-th of them, in both splits.
 * Images are decoded with libpng / libjpeg-turbo (OpenMP over files), converted to want->c
 * channels (1 or 3; alpha dropped, palette and 16-bit expanded/reduced), resized to
 * want->h x want->w (rt_data_resize) and kept in memory. The samples are the files (in
 * class, then file-name order) under a fixed pseudo-random permutation (the same for the
 * same file count on every machine), so that a subset or the DARTS split of the first
 * samples holds every class. Refused with the file named: an empty class folder, a test
 * class that train lacks, more classes than want->classes, a file that is not a
 * PNG/JPEG or is corrupt or truncated (the first bad file in class, name order).
 * out->classes is the number of class folders of DIR/train. Returns 0, or -1 with err
 * filled. */
int rt_data_load_images(const char *dir, int train, const rt_data_want *want, rt_dataset *out, char *err,
                        size_t errlen);

/* The class names of an image-folder data set: the sorted sub-folder names of DIR/train.
 * *names is a malloc'd array of *n malloc'd strings (free with rt_data_names_free).
 * Returns 0, or -1 with err filled (no DIR/train, no class folder). */
int rt_data_image_classes(const char *dir, char ***names, int *n, char *err, size_t errlen);
void rt_data_names_free(char **names, int n);

/* CIFAR-100 binary version (runtime/data_cifar100.c): DIR/train.bin (train = 1) or
 * DIR/test.bin, records of 1 coarse label byte, 1 fine label byte, 3072 pixel bytes
 * (1024 R, 1024 G, 1024 B). Labels are the fine ones (100 classes). The official files
 * hold 50000 and 10000 records; any positive multiple of 3074 bytes is accepted.
 * Returns 0, or -1 with err filled. */
int rt_data_load_cifar100(const char *dir, int train, rt_dataset *out, char *err, size_t errlen);

/* Per-channel statistics of a dataset's pixels as the loader sees them (pixel / 255):
 * mean and population standard deviation over every pixel of every image, in double. */
void rt_data_channel_stats(const rt_dataset *d, float *mean, float *std);

/* Resamples one 8-bit plane src (sh x sw) to dst (dh x dw): separable triangle filter
 * (bilinear) at pixel centres, its support widened by the scale factor where an axis
 * shrinks, so that every source pixel contributes (antialiasing, as PIL's BILINEAR);
 * equal sizes copy. Rounds to nearest. Returns 0, or -1 when out of memory. */
int rt_data_resize(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw);

/* Converts one image of sc channels (planar, hw pixels each) to dc channels into dst:
 * equal counts copy; 1 -> dc replicates; 3 or 4 -> 1 is BT.601 luma of the first three
 * ((299 R + 587 G + 114 B + 500) / 1000); 4 -> 3 drops the fourth; 2 -> 1 keeps the first.
 * Returns 0, or -1 when the conversion is not one of these. */
int rt_data_convert_channels(uint8_t *dst, int dc, const uint8_t *src, int sc, size_t hw);

#endif
