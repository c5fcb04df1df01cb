/* quant.h — post-training int8 quantisation, shared by the int8 C emitter (cgen_q.h) and
 * the QDQ ONNX export (onnx.h, cg_onnx_opts.quant) so both hold the same integers.
 *
 * Scheme (symmetric, zero point 0 everywhere):
 *  - weights of convolutions (BN folded first, cg_fold) and linear layers: per output
 *    channel, s_w[k] = max_j |w[k][j]| / 127, q = round(w / s_w[k]) in [-127, 127];
 *  - biases: int32 at the scale of the accumulator, s_x * s_w[k];
 *  - activations: one scale per tensor, s = absmax / 127, absmax calibrated on training
 *    images (cg_model.absmax, per IR node, from the float network). A conv with a folded
 *    BN takes the BN's range. ReLU, max pool, shift, slice and the aliases (identity,
 *    dropout, drop path, folded BN) keep their input's scale: on symmetric int8 they are
 *    exact (q(relu(x)) = relu(q(x))), so the C computes them on the integers unchanged;
 *  - the logits: int32 at one scale for every class, absmax / 2^20.
 * The C requantises with fixed-point multipliers (cg_q_mult), the ONNX model with
 * QuantizeLinear's float scale: both round to the nearest integer (ties away from zero
 * in the C, to even in onnxruntime), so they differ by at most one step where a product
 * lands within rounding of a tie.
 *
 * Usage:
 *   cg_quant q;
 *   if (cg_quant_init(&q, &m, &fold, err, sizeof err)) ...;   // m.absmax set
 *   float s = q.scale[node];                                 // value = int8 * s
 *   cg_quant_free(&q);
 */
#ifndef DARTSC_CG_QUANT_H
#define DARTSC_CG_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "codegen.h"
#include "fold.h"

#define CG_Q_LOGIT_BITS 20 /* logit scale = absmax / 2^20: int32 logits have 2^11 x headroom */

typedef struct cg_quant {
    float *scale;      /* per IR node: its activation scale (0 for parameters) */
    float logit_scale; /* of the int32 logits */
} cg_quant;

/* Scales for every node m->output needs, from m->absmax and the folding f. Fails (with
 * the node named) where a needed node has no calibrated range. */
int cg_quant_init(cg_quant *q, const cg_model *m, const cg_fold *f, char *err, size_t errlen);
void cg_quant_free(cg_quant *q);

/* Per-channel symmetric weights: K rows of per_k values; q (K * per_k) and s (K) out. */
void cg_q_weights(int8_t *q, float *s, const float *w, int K, int64_t per_k);
/* round(v / s) saturated to int32. */
int32_t cg_q_i32(double v, double s);

/* A real multiplier M > 0 as m * 2^-shift with m < 2^31, shift in [1, 62], with as many
 * bits in m as keep |acc| * m below 2^62 for |acc| <= acc_max. Returns 0, or -1 if M is
 * too large to represent that way (M >= 2^29). M too small for any bit gives m = 0. */
int cg_q_mult(double M, double acc_max, int32_t *m, int *shift);

#endif
