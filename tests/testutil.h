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
/* Copies from_dir/name to to_dir/name as it is now (nothing where it does not exist). */
void tu_copy_file(const char *from_dir, const char *to_dir, const char *name);
/* Rewrites the tensor file at path with element i of its float entry name set to NaN (a
 * checkpoint whose state went bad); asserts that it can. */
void tu_tf_set_nan(const char *path, const char *name, int64_t i);
/* A fresh temporary directory (mkdtemp); static buffer. */
const char *tu_tmpdir(void);
/* The search tests' small space: the DARTS space at C 4, 3 cells (one reduction), 2 nodes,
 * on Fashion-MNIST, 2 epochs of batch 16 over 64 + 64 images (4 steps an epoch). */
struct ir_space;
struct sr_result;
void tu_demo_search_space(struct ir_space *sp);
/* sr_search (device auto) into dir (resume, stop after stop_after steps if > 0) with strategy st
 * (an sr_strategy); asserts that it succeeds. */
void tu_run_search(const struct ir_space *sp, const char *dir, int resume, int64_t stop_after, int st,
                   struct sr_result *res);
/* Two run directories hold the same file NAME, byte for byte (a Criterion expectation). */
void tu_expect_same_file(const char *a, const char *b, const char *name);
/* Their checkpoint.dtns hold the same parameter groups and optimiser states, bit for bit
 * (the metrics-file length aside). */
void tu_expect_same_state(const char *a, const char *b);

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

/* ---- searches in tests ----
 * The tiny search space of the baseline and RL tests: the DARTS candidates on Fashion-MNIST
 * (Debian's dataset-fashion-mnist), C 4, 3 cells (one reduction), 3 nodes, batch 16, the
 * first 128 training images (64 + 64 in the DARTS split). */
struct ir_space;
void tu_tiny_fmnist_space(struct ir_space *sp);
/* DARTS_V2's evaluation network of sp (the retraining's) at 32x32 (its auxiliary head pools
 * 5x5 after the second reduction): C 4, 3 cells, batch, the auxiliary head at 0.4 and
 * drop-path nodes; sp's input size is set to it. */
struct ir_net;
void tu_darts_v2_net(struct ir_space *sp, int batch, struct ir_net *net);
/* DIR/candidates.jsonl as a JSON array, each row without its "seconds" (wall time). */
struct json_t;
struct json_t *tu_load_candidates(const char *dir);
/* 1 when DIR_A/NAME and DIR_B/NAME hold the same bytes (the test fails where one is missing). */
int tu_same_file(const char *dir_a, const char *dir_b, const char *name);

#endif
