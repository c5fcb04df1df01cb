/* cgen.h — the standalone C emitter: an inference graph (cg_model) written out as one
 * C99 source file and its header, depending on nothing beyond libm.
 *
 * DIR/NAME.h declares, all prefixed with the model name:
 *   int NAME_infer(const float *input, float *output, int batch);      static arena
 *   int NAME_infer_with_arena(const float *input, float *output, int batch, void *arena);
 *   NAME_MAX_BATCH NAME_IN_C NAME_IN_H NAME_IN_W NAME_INPUT_SIZE NAME_NUM_CLASSES
 *   NAME_OUTPUT_SIZE NAME_ARENA_BYTES, NAME_mean[] NAME_std[] NAME_class_names[]
 * DIR/NAME.c holds the weights as exact hex-float literals (BN folded into the
 * convolutions by cg_fold), one static function per emitted op with every shape a
 * constant, and the activation arena planned by liveness over the emitted schedule.
 *
 * Lowering (what the emitted op sequence is, relative to the graph):
 *  - BN folded into the conv that feeds it (cg_fold); other BN as per-channel scale/shift.
 *  - IDENTITY, DROPOUT, DROP_PATH are aliases of their input (no copy).
 *  - ZERO values are propagated and removed: an ADD/MEAN drops zero terms (an ADD left
 *    with one term aliases it), CONCAT fills a zero input's channels with memset; any
 *    other op that reads a zero gets it materialised by a memset.
 *  - A RELU read only by convolutions is fused into their input reads (the DARTS
 *    ReLU -> depthwise pattern); otherwise a RELU whose input is a conv or unfolded BN
 *    read by nothing else is fused into that op's output write.
 *  - Only what m->output needs is emitted; MIXED/WSUM (supernet), SOFTMAX_CE and
 *    EMBEDDING are refused with the node named.
 *
 * Arena planning, the greedy rule: walk the schedule in order; for op t first place its
 * output (best fit among the free blocks, else at the top of the arena), then release
 * every buffer whose last reader is t. An op's output therefore never overlaps its
 * inputs (the emitted functions take restrict pointers). Buffers are sized for
 * NAME_MAX_BATCH and aligned to 64 bytes. The model input is read in place and the
 * output op writes straight into the caller's output array.
 *
 * Usage:
 *   cg_model m = {.g = net.graph, .values = vals, .input = net.images, .output = net.logits,
 *                 .name = "fmnist", .in_c = 1, .mean = {0.286f}, .std = {0.353f},
 *                 .test_accuracy = -1};
 *   char err[256];
 *   if (cg_c_write(&m, &(cg_c_opts){.max_batch = 8}, "out", err, sizeof err)) puts(err);
 *   // out/fmnist.h, out/fmnist.c:  cc -O2 -c out/fmnist.c
 */
#ifndef DARTSC_CG_CGEN_H
#define DARTSC_CG_CGEN_H

#include <stddef.h>

#include "codegen.h"

typedef struct cg_c_opts {
    int max_batch; /* NAME_MAX_BATCH; <= 0 means 1 */
    int no_fold;   /* 1: keep every BN as scale/shift (tests of the unfolded path) */
} cg_c_opts;

/* Writes DIR/NAME.h and DIR/NAME.c (NAME = m->name, which must be a C identifier not
 * starting with '_'). o may be NULL for the defaults. Returns 0, or -1 with a message in
 * err (the node is named where one is at fault); no partial files are left behind. */
int cg_c_write(const cg_model *m, const cg_c_opts *o, const char *dir, char *err, size_t errlen);

#endif
