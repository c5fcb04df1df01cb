/* cgen.h — the standalone C emitter: an inference graph (cg_model) written out as one
 * C99 source file and its header, calling nothing in the C library beyond libm (see the
 * generated header's Build paragraph for what compilers may add).
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
 *  - A two-term ADD whose later term is a conv or pool read by nothing else becomes
 *    that op's output write (y = op(x) + other), so DARTS node sums cost no pass.
 *  - Only what m->output needs is emitted; MIXED/WSUM (supernet), SOFTMAX_CE and
 *    EMBEDDING are refused with the node named.
 *
 * Kernels (each family has a comment in cgen.c saying its loop structure and why). For gcc
 * and clang the 1x1 tiles and the window taps are written on GNU C 16-float vectors, so
 * both compilers emit the same vector code at any -O level and target, with a plain C99
 * twin for other compilers (NAME_PLAIN_C) and for gcc targeting AVX-512 directly; on
 * x86-64 glibc every op function is cloned for AVX-512, AVX+FMA and the baseline and
 * picked at load time (target_clones; NAME_NO_DISPATCH turns it off):
 *  - 1x1 convolutions as register-blocked GEMM tiles (8 output channels x 32 positions
 *    in named local arrays, weights packed at codegen time); strided ones gather first;
 *    dense k x k convolutions (the stem) run the same tiles on an im2col block.
 *  - Depthwise convolutions and pools on zero- (or -INFINITY-) padded phase planes in the
 *    scratch: every tap of any stride or dilation is a unit-stride read, one flat
 *    branch-free loop per plane, software-pipelined over the channels.
 *  - a * b + c goes through NAME_FMA: contracted to an FMA in the vector code (gcc: a
 *    fp-contract pragma), __builtin_fmaf or fmaf where the target has a fast one, never
 *    a libm call the compiler could avoid (under -fno-builtin fmaf() stays one).
 *  - Copies and fills are the file's own loops (no memcpy/memset/memmove in the source).
 *  - Optional OpenMP: define NAME_USE_OPENMP (and compile with -fopenmp) to run the
 *    channel loops of the GEMM and elementwise ops in parallel; off by default.
 *
 * Arena planning, the greedy rule: walk the schedule in order; for op t first place its
 * output (best fit among the free blocks, else at the top of the arena), then release
 * every buffer whose last reader is t. An op's output therefore never overlaps its
 * inputs (the emitted functions take restrict pointers), except in place: a depthwise
 * conv or pool whose first input dies at it takes over that input's block (it copies
 * each input channel into its scratch before the output channel that could overlap it is
 * written; those two pointers are then not restrict) and gives back the tail of a larger
 * input after it has run. An op that needs scratch while it runs (windowed convolutions
 * and pools: padded phase planes) gets a block placed after its output and freed at once.
 * Then the same buffers (an output with the outputs written over it in place) are packed
 * again offline, largest first, each at the lowest offset clear of the buffers live with
 * it (arena.h, cg_arena_pack), and the smaller of the two plans kept. On top of that rule,
 * two searches, each step kept only where the arena shrinks: ops hoisted to run right
 * after their inputs' producers (a late reader of a large tensor keeps it live: the
 * stem's output in a DARTS network, read by the second cell), then a concat's parts
 * written straight into its channel slices (the m parts computed last, for the best m;
 * a concat with every part there copies nothing and is not called). Buffers are sized
 * for one sample and aligned to 64 bytes: the entry points run the samples of a batch one at a time through the whole
 * schedule, so a sample's activations stay in cache. The model input is read in place
 * and the output op writes straight into the caller's output array.
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

/* What the generated C holds in memory: the constant arrays (weights, folded biases, BN
 * scales) and the static activation arena (NAME_ARENA_BYTES), both in bytes. */
typedef struct cg_c_footprint {
    long long weight_bytes, arena_bytes;
} cg_c_footprint;

typedef struct cg_c_opts {
    int max_batch; /* NAME_MAX_BATCH; <= 0 means 1 */
    int no_fold;   /* 1: keep every BN as scale/shift (tests of the unfolded path) */
    cg_c_footprint *footprint; /* if not NULL, filled in on success */
} cg_c_opts;

/* Writes DIR/NAME.h and DIR/NAME.c (NAME = m->name, which must be a C identifier not
 * starting with '_'). o may be NULL for the defaults. Returns 0, or -1 with a message in
 * err (the node is named where one is at fault); no partial files are left behind. */
int cg_c_write(const cg_model *m, const cg_c_opts *o, const char *dir, char *err, size_t errlen);

#endif
