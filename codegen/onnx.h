/* onnx.h — the ONNX exporter (IR version 8, opset 13; onnx.c) and the reader behind
 * `dartsc inspect` (onnx_inspect.c).
 *
 * Export walks the graph from m->input to m->output (loss, labels and auxiliary heads
 * are left out) and maps each IR op to standard ONNX ops; weights become float32
 * initializers in raw_data. The batch dimension is the symbolic "N"; C, H, W are static.
 * The graph input is "input" (N, C, H, W), the graph output "logits" (N, classes).
 *
 *   conv2d           Conv (with bias B when a BN is folded into it)
 *   batchnorm        BatchNormalization with the running statistics (unfolded BNs;
 *                    gamma = 1, beta = 0 initializers for non-affine BNs)
 *   relu tanh sigm.  Relu Tanh Sigmoid
 *   identity dropout drop_path   nothing (the value is aliased; Identity only where the
 *                    alias would be the graph output)
 *   zero             Mul(Slice(x, steps = stride), 0): keeps N symbolic
 *   maxpool avgpool  MaxPool, AveragePool (count_include_pad = 0)
 *   add mean mul sub Sum Mean Mul Sub;   scale: Mul by a scalar constant
 *   concat slice     Concat axis 1, Slice on axis 1;   shift: Slice [1:, 1:] on H, W
 *   gap              GlobalAveragePool + Flatten;   linear: Gemm (transB = 1)
 *   softmax          Softmax axis -1
 *   mixed wsum       each candidate times its (constant) weight, then Sum; a MIXED node's
 *                    weights are softmax(alpha[row]) computed from the alpha values
 * With int8 set (cg_onnx_opts), the graph is the QDQ form of the int8 C (cgen_q.h).
 *
 * A supernet exports too (inspection in Netron and the like). Its BNs always use batch
 * statistics in dartsc (batch_stats_always); the export uses the running statistics
 * instead, so an exported supernet is for viewing, not for parity with dartsc.
 *
 * The file is written atomically (path.tmp, fsync, rename); on failure no file is left
 * and an existing one at path is untouched.
 *
 * Usage:
 *   cg_onnx_opts o = cg_onnx_opts_default();          // fold_bn = 1
 *   if (cg_onnx_write(&m, &o, "model.onnx", err, sizeof err)) fprintf(stderr, "%s\n", err);
 *   if (cg_onnx_inspect("model.onnx", stdout, err, sizeof err)) fprintf(stderr, "%s\n", err);
 */
#ifndef DARTSC_CG_ONNX_H
#define DARTSC_CG_ONNX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codegen.h"

#define CG_ONNX_IR_VERSION 8
#define CG_ONNX_OPSET 13

typedef struct cg_onnx_opts {
    int fold_bn;     /* fold BNs into the convolutions that feed them (cg_fold) */
    int int8;        /* QDQ model of the int8 C (quant.h; needs fold_bn and m->absmax): every
                        value but the logits goes through QuantizeLinear -> DequantizeLinear at
                        its scale; conv and linear weights are int8 per output channel and
                        their biases int32, each behind a DequantizeLinear */
    const char *doc; /* graph doc_string; NULL: a default naming dartsc */
} cg_onnx_opts;

static inline cg_onnx_opts cg_onnx_opts_default(void) { return (cg_onnx_opts){.fold_bn = 1}; }

/* Exports m to path. o NULL: the defaults. Returns 0, or -1 with err filled. */
int cg_onnx_write(const cg_model *m, const cg_onnx_opts *o, const char *path, char *err, size_t errlen);

/* Reads path (codegen/onnx_inspect.c), validates it (parse, nesting depth, sizes of every
 * initializer against its dims, dims in range, every node input defined before use, graph
 * outputs produced, every node against ONNX's operator definitions at the model's opset:
 * proto/op_schemas.h) and prints a summary to out: IR version, opsets, producer, inputs
 * and outputs with shapes, op histogram, initializers as weights, buffers and constants,
 * metadata. Returns 0, or -1 with err naming the file, the node and the problem (nothing
 * is printed then). Never trusts the file. */
int cg_onnx_inspect(const char *path, FILE *out, char *err, size_t errlen);
/* The same on bytes in memory; label names them in messages. */
int cg_onnx_inspect_buf(const uint8_t *buf, size_t len, const char *label, FILE *out, char *err, size_t errlen);

#endif
