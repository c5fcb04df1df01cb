/* cgen_q.h — the int8 C emitter: an inference graph quantised after training (quant.h:
 * per-channel symmetric int8 weights, int8 activations at calibrated per-tensor scales,
 * int32 accumulation, requantisation by fixed-point multipliers) written out as one
 * C99 source file and its header, for small devices.
 *
 * DIR/NAME.h declares, all prefixed with the model name:
 *   int NAME_infer_q(const int8_t *input, int32_t *output, int batch);   integers only
 *   int NAME_infer_q_with_arena(const int8_t *input, int32_t *output, int batch, void *arena);
 *   int NAME_infer(const float *input, float *output, int batch);        not --integer-only
 *   int NAME_infer_with_arena(const float *input, float *output, int batch, void *arena);
 *   NAME_INPUT_SCALE NAME_OUTPUT_SCALE (float: input = q * scale, logit = out * scale),
 *   NAME_MAX_BATCH NAME_IN_C NAME_IN_H NAME_IN_W NAME_INPUT_SIZE NAME_NUM_CLASSES
 *   NAME_OUTPUT_SIZE NAME_ARENA_BYTES, NAME_mean[] NAME_std[] NAME_class_names[] (not
 *   --integer-only; there the normalisation is in the header's comment).
 * The network body is the same in both variants and uses no floating point: integer
 * multiply-adds, shifts and saturation only. The float entry points quantise the input
 * (round(x / NAME_INPUT_SCALE), saturated) and scale the int32 logits back; with
 * integer_only they and every float constant are left out, for cores without an FPU
 * (the caller quantises the input; the class is the argmax of the int32 logits).
 *
 * Lowering: BN folded into the conv that feeds it (cg_fold), other BN per channel;
 * identity, dropout, drop path are aliases; a ReLU read only by convolutions is applied
 * in their reads (exact on symmetric int8); ReLU, max pool, shift, slice keep their
 * input's scale and run on the integers; add, mean, concat, avg pool, GAP, BN requantise
 * to their output's scale; the model output must be a linear layer (the logits), which
 * writes int32 at NAME_OUTPUT_SCALE. Convolutions of every shape (stride, padding,
 * dilation, groups) run one output channel at a time into an int32 accumulator plane in
 * the arena, tap by tap over the valid rows and columns (no border tests inside).
 *
 * Usage:
 *   cg_c_footprint fp;
 *   if (cg_c_write_int8(&m, &(cg_c_opts){.max_batch = 1, .footprint = &fp}, 0, "out", err, sizeof err)) ...
 *   // out/NAME.c: cc -std=c99 -O2 -c out/NAME.c  (no libm)
 */
#ifndef DARTSC_CG_CGEN_Q_H
#define DARTSC_CG_CGEN_Q_H

#include <stddef.h>

#include "cgen.h"

/* m->absmax must hold the calibrated ranges (quant.h). o->no_fold is ignored (BN is
 * always folded). Returns 0, or -1 with a message in err naming the node at fault; no
 * partial files are left behind. */
int cg_c_write_int8(const cg_model *m, const cg_c_opts *o, int integer_only, const char *dir, char *err, size_t errlen);

#endif
