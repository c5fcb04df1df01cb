/* rnn_export.h — export of a recurrent (kind rnn) language model's step function:
 * embedding lookup + one cell step + tied decoder, as an ONNX model and as C.
 *
 * The graph is ir_space_build_rnn's inference graph with T = 1 (opts.infer): inputs
 * "ids" (N) int32 and "hidden" (N, nhid); outputs "logits" (N, ntoken) and "hidden_out"
 * (N, nhid). A caller runs it once per token, feeding hidden_out back as hidden.
 * ONNX: IR 8 / opset 13, symbolic batch N, weights as initializers (Gather, Concat,
 * Gemm, Slice, Sigmoid, Tanh, Relu, Identity, Add, Sub, Mul, Sum, Mean).
 * C: NAME.h / NAME.c, C99 + libm, weights as hex-float literals, static buffers for up to
 * max_batch rows (not reentrant):
 *   void NAME_step(int n, const int32_t *ids, const float *hidden, float *logits, float *hidden_out);
 *
 * Usage:
 *   ir_rnn_net net; cg_rnn_step_net(&sp, &gt.normal, ntoken, 1, &net);
 *   ... values[node] for every PARAM node (from a plan with the trained weights) ...
 *   cg_rnn_onnx_write(&net, values, "step.onnx", err, sizeof err);
 *   cg_rnn_c_write(&net, values, "out/", "ptb", 64, err, sizeof err);
 */
#ifndef DARTSC_CG_RNN_EXPORT_H
#define DARTSC_CG_RNN_EXPORT_H

#include <stddef.h>

#include "ir/space.h"

/* The step graph at a batch size (the exported models take any batch). */
int cg_rnn_step_net(const ir_space *sp, const ir_geno_cell *gc, int ntoken, int batch, ir_rnn_net *net);
int cg_rnn_onnx_write(const ir_rnn_net *net, const float *const *values, const char *path, char *err, size_t errlen);
int cg_rnn_c_write(const ir_rnn_net *net, const float *const *values, const char *dir, const char *name, int max_batch,
                   char *err, size_t errlen);

#endif
