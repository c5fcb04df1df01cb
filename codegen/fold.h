/* fold.h — inference lowering shared by the emitters: batch norm folded into the
 * convolution that feeds it, and the BN that cannot be folded as a per-channel affine.
 *
 * A BATCHNORM node folds into its input when that input is a CONV2D whose only consumer
 * is this BN. Folded weights: s = gamma / sqrt(var + eps); w'[k] = w[k] * s[k];
 * b'[k] = beta[k] - mean[k] * s[k] (gamma = 1, beta = 0 without affine parameters).
 *
 * Usage:
 *   cg_fold f; cg_fold_init(&f, g);
 *   if (f.conv_bn[conv] >= 0) ... emit conv with folded weights, skip node f.conv_bn[conv] ...
 *   if (f.folded[bn]) ... the BN's value is the conv's output ...
 *   cg_fold_free(&f);
 */
#ifndef DARTSC_CG_FOLD_H
#define DARTSC_CG_FOLD_H

#include <stdint.h>

#include "ir/ir.h"

typedef struct cg_fold {
    int *conv_bn; /* per node: for a CONV2D, the BATCHNORM folded into it, else -1 */
    int *folded;  /* per node: 1 for a BATCHNORM folded into its producer */
} cg_fold;

/* enable = 0 gives an empty folding (keep every BN). Returns 0, -1 on allocation failure. */
int cg_fold_init(cg_fold *f, const ir_graph *g, int enable);
void cg_fold_free(cg_fold *f);

/* w_out (K x per_k) and b_out (K) from conv weights w and the BN's values. gamma/beta
 * NULL: no affine parameters. conv_bias NULL: the conv had none. */
void cg_fold_conv_bn(float *w_out, float *b_out, const float *w, const float *conv_bias, int K, int64_t per_k,
                     const float *gamma, const float *beta, const float *mean, const float *var, float eps);
/* An unfolded inference BN as y = x * scale[c] + shift[c]. */
void cg_bn_affine(float *scale, float *shift, const float *gamma, const float *beta, const float *mean,
                  const float *var, float eps, int C);

#endif
