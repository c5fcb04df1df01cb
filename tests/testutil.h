/* testutil.h — helpers shared by the Criterion tests: seeded random fills and
 * tolerance checks that report the worst element. */
#ifndef DARTSC_TESTUTIL_H
#define DARTSC_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Deterministic uniform fill in [lo, hi) from a seed. */
void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed);
/* Max over i of |a-b| / max(|b|, floor): the relative error with an absolute floor for
 * values near zero. *worst receives the index of the worst element when not NULL. */
double tu_max_rel_err(const float *a, const float *b, int64_t n, double floor, int64_t *worst);
/* Relative error of whole vectors: ||a-b||_2 / max(||b||_2, tiny). */
double tu_norm_rel_err(const float *a, const float *b, int64_t n);
/* Path helpers: DARTSC_SOURCE_DIR / rel. Returns a static buffer. */
const char *tu_src_path(const char *rel);
/* The whole file, NUL-terminated (caller frees); NULL if it cannot be read. *n gets the
 * length when n is not NULL. */
char *tu_slurp(const char *path, size_t *n);
/* A fresh temporary directory (mkdtemp); static buffer. */
const char *tu_tmpdir(void);
/* Expects dir_a/name and dir_b/name to exist and hold the same bytes. */
void tu_expect_same_file(const char *dir_a, const char *dir_b, const char *name);
/* The searches' test space: DARTS cells of 2 nodes, C 4, 3 cells (one reduction), on
 * Fashion-MNIST (Debian's), 2 epochs of batch 16 over 128 images (4 steps an epoch). */
struct ir_space;
void tu_search_space(struct ir_space *sp);

/* Test data files (the assertions fail the calling test when a write fails):
 * an 8-bit PNG of c = 1, 3 or 4 interleaved channels (libpng), a JPEG of c = 1 or 3 at
 * the given quality (libjpeg), and a .npy file of format version 1 or 2 with the header
 * numpy.save writes ({'descr': .., 'fortran_order': .., 'shape': .., } padded to 64). */
void tu_write_png(const char *path, int c, int h, int w, const uint8_t *interleaved);
void tu_write_jpeg(const char *path, int c, int h, int w, const uint8_t *interleaved, int quality);
void tu_write_npy(const char *path, int version, const char *descr, const char *fortran, const char *shape,
                  const void *data, size_t bytes);


/* ---- parity against a reference run in float64 (truth) and float32 ----
 * A tensor passes when dartsc's error e = ||x - x64|| / ||x64|| is at most 1e-4, or, where
 * float32 cannot reach that, at most TU_PARITY_FACTOR times the float32 reference's own
 * error e32 (plus 1e-6). Both sides are float32 with different reduction orders; through
 * deep stacks of batch-statistics BN their errors differ by small factors (measured up to
 * 3.9x on the evaluation network's first cell, errors ~1e-4 vs ~4e-5), while a wrong
 * gradient is off by O(1). */
#define TU_PARITY_FACTOR 5.0
typedef struct tu_parity {
    int tensors, fallback;
    double worst;
    char worst_name[256];
} tu_parity;
/* got, r64, r32: n floats. Records a Criterion expectation failure naming `what`. */
void tu_parity_compare(tu_parity *t, const char *what, const float *got, const float *r64, const float *r32, int64_t n);

struct rt_plan;
struct rt_tf_file;
/* Compares every parameter gradient ("grad/NAME") and BN buffer ("running/NAME") of the
 * plan's graph with the float64 and float32 reference files. */
void tu_parity_compare_params(tu_parity *t, struct rt_plan *p, const struct rt_tf_file *r64, const struct rt_tf_file *r32);

#endif
