/* pretext.h — self-supervised search (UnNAS, Liu et al. 2020, "Are Labels Necessary for
 * Neural Architecture Search?"): the DARTS loop learns alpha and weights on a pretext task
 * built from the images alone, and the labels of the search data are never read.
 *
 *   SR_PRETEXT_ROTATION  each image of a batch is rotated by r * 90 degrees, r uniform in
 *                        {0, 1, 2, 3} and drawn from (seed, tag, position), and the target
 *                        is r (Gidaris et al. 2018's rotation prediction); the supernet's
 *                        classifier has 4 outputs. Square images only.
 */
#ifndef DARTSC_SR_PRETEXT_H
#define DARTSC_SR_PRETEXT_H

#include <stdint.h>

typedef enum sr_pretext { SR_PRETEXT_NONE, SR_PRETEXT_ROTATION } sr_pretext;

#define SR_PRETEXT_ROTATION_CLASSES 4

/* Rotates each of the n images x (n, c, h, h) in place counter-clockwise by r_i * 90
 * degrees and overwrites y[i] with r_i, r_i = a function of (seed, tag, first + i): first
 * is x's position in the whole batch (0; a data-parallel process's part of a batch starts
 * at its rank times the local batch, so that every image gets the rotation it gets in a
 * run of one process). scratch holds c * h * h floats. */
void sr_pretext_rotate(float *x, int32_t *y, int n, int first, int c, int h, uint64_t seed, uint64_t tag, float *scratch);

#endif
