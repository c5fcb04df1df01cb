/* proxyless.h — ProxylessNAS (Cai, Zhu, Han, ICLR 2019) over the DARTS loop of search/cnn.c
 * (docs/ARCHITECTURE.md, "ProxylessNAS"):
 *
 *   binarised paths  each weight step samples one candidate per edge from softmax(alpha)
 *                    (the paper's binary gates, Eq. 2) and runs a plan of the supernet with
 *                    only that candidate on each edge (ir_supernet_opts.cols, n_cols 1): the
 *                    step's activations are those of one path; the weights are shared with
 *                    the loop's supernet by parameter name;
 *   alpha            the paper's two-path estimator: per edge two candidates drawn from
 *                    softmax(alpha) without replacement, one of them active (drawn from the
 *                    softmax over the two); a plan with those two per edge, the gates as its
 *                    architecture parameter (ir_supernet_opts.gates: WMIXED over the gates),
 *                    gives dL/dg; dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) over the
 *                    two, p the softmax over the two (Eq. 4 restricted to the sampled pair);
 *                    after the Adam step the pair is shifted so that its total probability
 *                    (and so every other candidate's) is what it was before the step;
 *   latency          loss = CE + lambda * E[latency], E[latency] = sum over the cells, edges and
 *                    candidates of softmax(alpha)_o * lat(o at that edge's shape) in ms, from a
 *                    table the caller measures (sr_options.op_latency; the driver times each
 *                    candidate's generated C, driver/proxyless_latency.c). Its gradient is
 *                    exact (the softmax over all of an edge's candidates).
 *
 * A step plan is built and freed per step (graph, arena), unlike DARTS's loop, which
 * allocates nothing inside a step: that is what keeps one path's activations.
 *
 * Usage (what search/cnn.c does; master: the loop's supernet plan, at batch 1):
 *   sr_px *px = sr_px_new(sp, o, master, &net, batch, NULL, err, sizeof err);
 *   sr_px_alpha_grad(px, xv, yv, step, &loss, &correct, err, sizeof err);   // master's arch grad
 *   ... Adam on the master's arch group ...; sr_px_after_alpha_step(px);
 *   sr_px_weight_pass(px, xt, yt, step, &loss, &correct, err, sizeof err);  // master's weight grad
 *   ... SGD on the master's weight group ...
 *   sr_px_free(px);
 */
#ifndef DARTSC_SR_PROXYLESS_H
#define DARTSC_SR_PROXYLESS_H

#include <stdint.h>

#include "ir/space.h"
#include "search.h"

struct rt_plan;
struct rt_backend;
typedef struct sr_px sr_px;

/* The latency coefficients of a cell type: lat[e * n_ops + o] = the sum, over the supernet's
 * cells of that type, of candidate o's latency at edge e's shape (ms). Asks o->op_latency
 * once per distinct (op, C, H, W, stride); 'none' is 0 and an identity skip (stride 1) is 0
 * without asking (the generated C aliases it). lat[t] must hold edges * n_ops doubles. */
int sr_px_latency_coeffs(const ir_space *sp, const sr_options *o, double *lat[2], char *err, size_t errlen);

/* E[latency] of one cell type under softmax(alpha) per edge; adds weight * dE/dalpha to grad
 * (grad may be NULL). */
double sr_px_expected_latency(const ir_cell *c, const float *alpha, const double *lat, float *grad, float weight);

/* The paper's estimator on one edge: for the n involved candidates idx[0..n) with logits
 * alpha[idx[i]] and gate gradients dg[0..n), grad[idx[i]] += sum_j dg[j] p_j (delta_ij - p_i),
 * p the softmax over the involved logits (n = all candidates: the full Eq. 4). */
void sr_px_estimator(int n, const int *idx, const float *alpha, const double *dg, float *grad);

/* After the alpha step: shifts the involved logits of new_alpha (n of them, idx) by one
 * constant so that their log-sum-exp is that of old_alpha's, keeping every uninvolved
 * candidate's probability what it was. */
void sr_px_rescale(int n, const int *idx, const float *old_alpha, float *new_alpha);

/* The plan of a step: the supernet with the n_cols candidates cols[t][e * n_cols + c] per
 * edge, gates as its architecture parameter (ir_supernet_opts.gates). */
int sr_px_build_step_net(const ir_space *sp, int batch, const int *const cols[2], int n_cols, ir_net *net);

/* The state of a search: made after the loop's plan (its supernet holds the shared weights
 * and alpha). Returns NULL with a message. */
sr_px *sr_px_new(const ir_space *sp, const sr_options *o, struct rt_plan *master, const ir_net *mnet, int batch,
                 const void *bn_sync, char *err, size_t errlen);
void sr_px_free(sr_px *px);
/* The weight step's pass of global step g: one sampled path per edge; the master's weight
 * gradient holds that path's (zero elsewhere) and its buffers the path's batch-norm state.
 * *loss, *correct: this process's. */
int sr_px_weight_pass(sr_px *px, const float *x, const int32_t *y, int64_t g, float *loss, double *correct, char *err,
                      size_t errlen);
/* The alpha step's gradient of global step g on an architecture-split batch: the master's
 * arch gradient holds the estimator's (summed over data-parallel ranks) plus lambda *
 * dE[latency]/dalpha; *loss, *correct: the active paths' (this process's). Keeps alpha before
 * the step for sr_px_after_alpha_step. */
int sr_px_alpha_grad(sr_px *px, const float *x, const int32_t *y, int64_t g, float *loss, double *correct, char *err,
                     size_t errlen);
/* After the optimiser's step on alpha: the two-path rescaling. */
void sr_px_after_alpha_step(sr_px *px);
/* Scoring the most probable path (on every edge the candidate of largest alpha; batch-norm
 * batch statistics, as the supernet is scored): begin plans it (-1: out of memory or a
 * failed plan: the score is then NaN), batch runs one batch forward (this process's loss and
 * correct count), end frees it. */
int sr_px_score_begin(sr_px *px);
void sr_px_score_batch(sr_px *px, const float *x, const int32_t *y, double *loss, double *correct);
void sr_px_score_end(sr_px *px);
/* The last sample (tests): per edge of cell type t, n candidates cols[e * n + k] (n = 1 after
 * a weight step, min(2, ops) after an alpha step) and which of them was active. */
void sr_px_sampled(const sr_px *px, int t, int *n, const int **cols, const int **active);
/* E[latency] (ms) under the master's current alpha; NAN without a table (lambda 0). */
double sr_px_current_latency(sr_px *px);
/* The planned arena bytes of the last weight step's plan and of the last alpha step's. */
void sr_px_arena_bytes(const sr_px *px, size_t *weight_step, size_t *alpha_step);

#endif
