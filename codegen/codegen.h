/* codegen.h — what the emitters (ONNX, standalone C) take: an inference graph and the
 * values of its parameters, plus the facts a deployed model should carry with it.
 *
 * The graph is an evaluation network (ir_space_build_eval) whose BN nodes use running
 * statistics and whose dropout/drop-path nodes are identities at inference. Dimension 0
 * of the input and of every activation is the batch; emitters make it symbolic (ONNX) or
 * a bounded runtime argument (C). Values come from wherever the caller has them: a
 * runtime plan (rt_node_data on the CPU backend) or a weights file.
 *
 * Usage:
 *   cg_model m = {.g = net.graph, .values = vals, .input = net.images, .output = net.logits,
 *                 .name = "fmnist", .in_c = 1, .mean = {0.286f}, .std = {0.353f}};
 *   if (cg_onnx_write(&m, &(cg_onnx_opts){.fold_bn = 1}, "model.onnx", err, sizeof err)) ...
 */
#ifndef DARTSC_CODEGEN_H
#define DARTSC_CODEGEN_H

#include <stddef.h>

#include "ir/ir.h"

typedef struct cg_model {
    const ir_graph *g;
    const float *const *values;     /* values[node] for every PARAM node; NULL elsewhere */
    int input;                      /* image input node (N, C, H, W) */
    int output;                     /* logits node (N, classes) */
    const char *name;               /* model name; the C emitter's symbol prefix */
    const char *space_name;         /* may be NULL */
    const char *genotype_json;      /* may be NULL */
    int in_c;
    float mean[4], std[4];          /* the input normalisation the caller must apply */
    const char *const *class_names; /* n_classes names, or NULL */
    int n_classes;
    double test_accuracy;           /* < 0: unknown */
    const char *const *labels;      /* per IR node: readable ONNX node name (ir_eval_labels), or NULL */
    const float *absmax;            /* per IR node: the largest |value| seen on calibration images (int8
                                       export, codegen/quant.h), or NULL */
} cg_model;

#endif
