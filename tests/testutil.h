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
/* A fresh temporary directory (mkdtemp); static buffer. */
const char *tu_tmpdir(void);

#endif
