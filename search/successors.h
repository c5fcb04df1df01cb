/* successors.h — three DARTS successors as search strategies over the DARTS loop of
 * search/cnn.c (docs/ARCHITECTURE.md, "DARTS successors"):
 *
 *   pc-darts   (search/pcdarts.c, Xu et al., ICLR 2020): partial channel connections
 *              (1/K of the channels through each mixed op, the rest bypass it, then a
 *              channel shuffle) and edge normalisation (per node softmax(beta) over its
 *              incoming edges, learnt with alpha, multiplied into the derivation);
 *   fair-darts (search/fairdarts.c, Chu et al., ECCV 2020): sigmoid(alpha) per op instead
 *              of the edge's softmax, the zero-one loss on alpha, threshold derivation.
 *
 * The supernet variant comes from ir_space_build_supernet_ex; these functions are what the
 * loop adds to DARTS: the options, the alpha-gradient term, the derivation.
 *
 * Usage (what search/cnn.c does):
 *   ir_supernet_opts so;
 *   sr_succ_supernet_opts(sp, strategy, &so);
 *   ir_space_build_supernet_ex(sp, batch, &so, &net);
 *   ... after the alpha gradient: if (strategy == SR_FAIR_DARTS) sr_fair_zero_one(alpha, n, grad, SR_FAIR_W01);
 */
#ifndef DARTSC_SR_SUCCESSORS_H
#define DARTSC_SR_SUCCESSORS_H

#include <stdint.h>

#include "ir/space.h"
#include "search.h"

#define SR_PC_K_DEFAULT 4        /* PC-DARTS' K on CIFAR-10 */
#define SR_FAIR_W01 10.0f        /* FairDARTS' weight of the zero-one loss */
#define SR_FAIR_THRESHOLD 0.8    /* FairDARTS' derivation: keep an op when sigmoid(alpha) > this */

/* The supernet options of a strategy (all zero for DARTS and the others). */
void sr_succ_supernet_opts(const ir_space *sp, sr_strategy s, ir_supernet_opts *so);
/* 1 for the strategies that take DARTS's bilevel steps (architecture split for alpha). */
int sr_succ_is_bilevel(sr_strategy s);

/* ---- PC-DARTS ---- */
/* Derivation with edge normalisation: op weights softmax(alpha[e]) * softmax(beta_node)[k]
 * for the node's k-th incoming edge e, then DARTS's rule (sr_derive_weights). betas[i]:
 * node i's beta logits (host, popcount(edges[i]) of them); NULL: plain DARTS. */
void sr_pc_derive(const ir_cell *cell, const float *alpha, const float *const *betas, ir_geno_cell *out);

/* ---- FairDARTS ---- */
/* The zero-one loss L01 = -(1/N) sum_i (sigmoid(alpha_i) - 0.5)^2 over the n entries of
 * alpha; adds weight * dL01/dalpha to grad (grad may be NULL) and returns L01. */
double sr_fair_zero_one(const float *alpha, int64_t n, float *grad, float weight);
/* The zero-one term on a plan's whole architecture group (FairDARTS' supernet has alpha
 * only): grad += weight * dL01/dalpha through the host; *l01 (may be NULL) = L01.
 * Returns -1 when out of memory. */
struct rt_plan;
int sr_fair_add_zero_one(struct rt_plan *p, float weight, double *l01);
/* Derivation: per node the (incoming edge, non-none op) pairs with sigmoid(alpha) >
 * threshold, strongest first (ties: lower edge, then lower op), at most the cell's keep;
 * a node where none passes keeps its single strongest pair, so that it has an input. */
void sr_fair_derive(const ir_cell *cell, const float *alpha, double threshold, ir_geno_cell *out);

#endif
