/* runtime.h — execution plans: a graph made runnable on a backend.
 *
 * A plan is made once per graph. It materialises parameters (seeded), plans every
 * activation, gradient and saved tensor into one arena by liveness over the schedule
 * forward(0..n-1), backward(n-1..0), and then steps without allocating.
 *
 * Parameters live in flat per-group vectors (weights, architecture, buffers) with a
 * gradient vector beside weights and architecture, so optimisers and the second-order
 * step work on whole groups at once.
 *
 * Usage:
 *   rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
 *   rt_set_input(p, net.images, images, bytes); rt_set_input(p, net.labels, labels, bytes);
 *   float loss = rt_forward(p, 1);
 *   rt_backward(p, RT_GRAD_W);          // fills rt_plan_group(p, IR_ROLE_WEIGHT).grad
 *   rt_pass(p, 1, RT_GRAD_W);           // the same two, no host sync (a CUDA graph after warm-up)
 *   rt_plan_free(p);
 */
#ifndef DARTSC_RUNTIME_H
#define DARTSC_RUNTIME_H

#include "backend.h"
#include "ir/ir.h"

enum { RT_GRAD_W = 1, RT_GRAD_ARCH = 2 };

typedef struct rt_plan_opts {
    uint64_t seed;     /* parameter initialisation and dropout streams */
    unsigned grads;    /* which gradient groups may ever be asked for; 0: inference only */
    uint64_t mask_stream; /* dropout / drop-path masks: 0 the usual stream; a data-parallel
                          process k > 0 passes k, so that its samples draw other masks */
    const struct kbn_sync *bn_sync; /* non-NULL: every batch norm's batch statistics over
                          the processes of a data-parallel run (sync_bn, runtime/dist.h) */
} rt_plan_opts;

typedef struct rt_group {
    float *data, *grad; /* backend pointers; grad NULL for buffers */
    int64_t n;
} rt_group;

typedef struct rt_plan rt_plan;

rt_plan *rt_plan_new(const ir_graph *g, rt_backend *be, const rt_plan_opts *opts, char *err, size_t errlen);
void rt_plan_free(rt_plan *p);

/* Copies host data into an input node (bytes must equal its size). */
int rt_set_input(rt_plan *p, int node, const void *host, size_t bytes);
/* Runs the forward pass; returns the loss (NAN if the graph has none). */
float rt_forward(rt_plan *p, int training);
/* One pass without any host synchronisation: forward, then (mask != 0) backward for the
 * groups in mask, as rt_forward + rt_backward do, but the loss stays on the device (read
 * it with rt_loss). On a backend that records graphs (CUDA), a pass that draws no random
 * masks is recorded on its second call with the same (training, mask) and replayed from
 * then on: the same work in one launch. Parameters, inputs and optimiser state may change
 * between replays (they live at fixed addresses); changing an attribute
 * (rt_plan_set_fattr, rt_plan_set_drop_path) drops the recordings. DARTSC_NO_GRAPHS=1
 * turns recording off. Returns -1 for a mask outside opts.grads (nothing runs). */
int rt_pass(rt_plan *p, int training, unsigned mask);
/* Whole steps as one recording. fn(ctx) issues one step of a loop (passes, vector ops,
 * optimiser steps) exactly the same way every time it is called with the same key, and
 * reads nothing back: its batches come from fixed backend buffers (rt_set_input_dev), its
 * per-step scalars from backend memory (sgd_step_dev, adam_step_dev, hvp_eps), its losses
 * go to backend memory (rt_loss_to), and host state it changes must be the same on every
 * call (counters belong to the caller). rt_step_run runs fn eagerly the first time a key
 * is seen (its passes warm up and record as rt_pass does alone); the second time it
 * records everything fn issues as one graph (the passes' ops on lanes, each pass forked
 * from and joined back to lane 0) and replays it; from then on it replays without calling
 * fn: one launch per step, each pass's mask seeds written before it as rt_pass does. A
 * backend without recording, DARTSC_NO_STEP_GRAPHS=1 or DARTSC_NO_GRAPHS=1 runs fn every
 * time. A step that cannot be recorded (it uploads or reads back, has more than
 * RT_STEP_MAX_PASSES passes, or fn fails while recording) runs eagerly, and so do later
 * steps. What drops the passes' recordings (attributes, drop path) drops the steps' too.
 * The caller uploads the step's batches and scalars before it (ordered before the replay).
 * Returns fn's return code (0 after a replay). */
#define RT_STEP_KEYS 4
#define RT_STEP_MAX_PASSES 8
typedef int (*rt_step_fn)(void *ctx);
int rt_step_run(rt_plan *p, int key, rt_step_fn fn, void *ctx);
/* Whether key's step is recorded now (tests, reports). */
int rt_step_recorded(const rt_plan *p, int key);
/* Autotuning (DARTSC_AUTOTUNE=1, where the backend has variants: backend.h): a key's
 * second step records one graph per variant, on that and the following steps (one
 * variant each); then each variant's graph is replayed until it has been timed
 * DARTSC_AUTOTUNE_TRIALS times (default 3; each timing one real step's replay, by the
 * backend's marks where it has them, else from a synchronisation to the next); the
 * variant of the smallest median is kept (its graph replayed from then on, the backend
 * left on it), the others freed. One tuning per plan: other keys' recordings, and
 * re-recordings after the recordings are dropped, use the chosen variant. The variants
 * give the same bits, so tuning changes no result: every step is a real step of the loop.
 * It takes rt_plan_tune_steps(p) = V * T steps after the key's eager one (V variants).
 * rt_step_tuning reports the plan's tuning (the first key to finish decides for every
 * step): 0 while it runs (or before), 1 once done (*r filled: times[v] variant v's median seconds,
 * chosen the kept one, names from the backend's variant_name), -1 when there is none
 * (off, no variants, steps not recorded). */
#define RT_MAX_VARIANTS 4
#define RT_TUNE_MAX_TRIALS 9
typedef struct rt_tune_report {
    int variants, chosen, trials;
    double times[RT_MAX_VARIANTS];
    const char *names[RT_MAX_VARIANTS];
} rt_tune_report;
int rt_step_tuning(const rt_plan *p, rt_tune_report *r);
/* Steps a key's tuning takes after its eager first step (V * T; 0: no tuning). */
int rt_plan_tune_steps(const rt_plan *p);
/* Copies bytes of backend memory (a fixed buffer) into an input node, in order with other
 * work (no host synchronisation). */
int rt_set_input_dev(rt_plan *p, int node, const void *src, size_t bytes);
/* Copies the last forward's loss to loss[0] and its top-1 count (rt_last_correct's, 0 where
 * there is none) to correct[0] (NULL: not wanted), both backend memory, without waiting. */
int rt_loss_to(rt_plan *p, float *loss, float *correct);
/* The last forward's loss, downloaded (one synchronisation); also sets rt_last_correct. */
float rt_loss(rt_plan *p);
/* Top-1 correct count of the last forward's loss node. */
int rt_last_correct(const rt_plan *p);
/* Backpropagates from the loss: zeroes the gradients of the groups in mask, then fills
 * them. Only work needed for those groups is done. mask must be a subset of opts.grads. */
int rt_backward(rt_plan *p, unsigned mask);

rt_group rt_plan_group(rt_plan *p, ir_role role);
/* Backend pointers of a node's value and (for parameters of a gradient group) gradient. */
void *rt_node_data(rt_plan *p, int node);
float *rt_node_grad(rt_plan *p, int node);
/* Download / upload a node's value to or from host memory. */
int rt_read(rt_plan *p, int node, void *host, size_t bytes);
int rt_write(rt_plan *p, int node, const void *host, size_t bytes);
const ir_graph *rt_plan_graph(const rt_plan *p);
rt_backend *rt_plan_backend(const rt_plan *p);
/* Bytes of the activation arena, and of parameters + their gradients. */
size_t rt_plan_arena_bytes(const rt_plan *p);
size_t rt_plan_param_bytes(const rt_plan *p);
/* How many batch norms take another batch norm's or their pool's batch statistics instead
 * of computing their own (DARTSC_SHARE_BN_STATS=1 or DARTSC_POOL_BN_STATS=1 on a backend
 * that shares them; runtime/plan.c). */
int rt_plan_shared_stats(const rt_plan *p);
/* How many of those batch norms their pool runs the forward of (DARTSC_POOL_BN_STATS=1:
 * deferred, batch statistics in every pass; rt_exec_node.takers). */
int rt_plan_folded_bn(const rt_plan *p);
/* How many batch norms another batch norm of the same tensor runs the backward of, on the
 * sum of their output gradients (DARTSC_SUM_BN_GRADS=1 on a backend that sums them;
 * rt_exec_node.nmore, runtime/plan.c). */
int rt_plan_summed_bn(const rt_plan *p);
/* Checks the plan's memory against a pass (training, gradient mask; collected, not run):
 * every range of the activation arena that an op of the pass writes, or a forward reads
 * (rt_op_ranges), and every output gradient a backward reads (with their scales), must
 * lie in one buffer that is live at the op's schedule time. Returns
 * the number of ranges that do not (0: the liveness covers every access), the first in
 * err; -1 if the pass could not be collected. For tests: a buffer planned to start after
 * its first write, or to end before its last read, shows here even where the packing
 * happened to leave its memory untouched. Advances the plan's step as a pass does
 * (rt_plan_collect). */
int rt_plan_audit(rt_plan *p, int training, unsigned mask, char *err, size_t errlen);
/* Forward passes run so far; dropout masks derive from (seed, step, node), so setting
 * the step replays a pass's masks (finite differences, bit-identical resume). */
uint64_t rt_plan_step(const rt_plan *p);
void rt_plan_set_step(rt_plan *p, uint64_t step);
/* Set scalar attribute idx of one node for the following passes (e.g. the weight of a
 * regularisation term that only some steps use: SCALE's factor is fattr[IR_F_P]). */
void rt_plan_set_fattr(rt_plan *p, int node, int idx, float v);
/* Set p of every DROP_PATH node (the linear ramp of retraining). */
void rt_plan_set_drop_path(rt_plan *p, float prob);

#endif
