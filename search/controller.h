/* controller.h — the recurrent controller of the reinforcement-learning searches (NAS, Zoph
 * & Le 2017; NASNet, Zoph et al. 2018; ENAS, Pham et al. 2018): an LSTM, built as an IR
 * graph and differentiated by the runtime's autodiff, that emits a genotype of a
 * convolutional space token by token and is trained by REINFORCE.
 *
 * Tokens, cell by cell (normal, then reduce), node by node: the node's inputs (one token
 * over the C(n, k) sets of k distinct allowed input states, k = min(k_keep, n)), then one
 * op (a non-'none' candidate) per chosen input in ascending input order. A decision with
 * one possible value emits no token. The LSTM's input at token t is the embedding of token
 * t-1's value (each token position has its own rows of the embedding, and its own
 * softmax classifier on the LSTM's output); token 0 reads a start row.
 *
 * The graph computes, for a whole token sequence a_0..a_{T-1} fed as inputs,
 *   loss = c0 * sum_t -log pi(a_t) - c1 * sum_t H(pi_t)       (pi_t: token t's softmax)
 * with c0, c1 set per pass, so one graph gives the log-probability, the entropy and the
 * REINFORCE gradient (adv * grad(-log pi) - beta * grad(H)). Sampling runs the same graph
 * forward once per token, reading token t's logits after a_0..a_{t-1} are set.
 *
 * The controller runs on the CPU backend (about 52,000 weights for the DARTS space at 64
 * units; bit-identical for a given thread count).
 *
 * Usage:
 *   sr_ctl *c = sr_ctl_new(&space, &(sr_ctl_opts){.hidden = 64, .lr = 0.0035f, ...}, err, sizeof err);
 *   int a[SR_CTL_MAX_TOKENS]; ir_genotype g;
 *   sr_ctl_sample(c, 1, &seed, 0, a, &g, err, sizeof err);   // a genotype and its tokens
 *   sr_ctl_update(c, 1, a, &reward, err, sizeof err);   // baseline, advantage, one Adam step
 *   sr_ctl_free(c);
 */
#ifndef DARTSC_SR_CONTROLLER_H
#define DARTSC_SR_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "ir/space.h"

#define SR_CTL_MAX_TOKENS (2 * IR_MAX_NODES * (1 + IR_MAX_KEEP))

typedef struct sr_ctl_opts {
    int hidden;           /* LSTM units (also the embedding width) */
    float lr;             /* Adam learning rate */
    float beta1, beta2;   /* Adam's betas */
    float entropy_weight; /* beta of the entropy bonus */
    float baseline_decay; /* b <- decay * b + (1 - decay) * mean reward of the step */
    float init;           /* weights drawn from U(-init, init) */
    uint64_t seed;        /* weight initialisation */
} sr_ctl_opts;

/* The defaults (docs/CLI.md: --controller-*). */
sr_ctl_opts sr_ctl_opts_default(void);

typedef struct sr_ctl sr_ctl;

sr_ctl *sr_ctl_new(const ir_space *sp, const sr_ctl_opts *o, char *err, size_t errlen);
void sr_ctl_free(sr_ctl *c);
int sr_ctl_num_tokens(const sr_ctl *c);
/* Number of values token t can take. */
int sr_ctl_token_choices(const sr_ctl *c, int t);

/* Samples n token sequences (greedy: the most probable value of each token instead),
 * sequence i with the uniforms rt_rng_uniform(seeds[i], t), so that a sequence depends on
 * its seed and the weights only; fills actions (n rows of T) and, when gt is not NULL,
 * gt[0..n). Up to 16 sequences run as the lanes of one batch. */
int sr_ctl_sample(sr_ctl *c, int n, const uint64_t *seeds, int greedy, int *actions, ir_genotype *gt, char *err,
                  size_t errlen);
/* The genotype of a token sequence. */
void sr_ctl_genotype(const sr_ctl *c, const int *actions, ir_genotype *gt);
/* The token sequence of a genotype of the space's shape; -1 if it is not one the
 * controller can emit (inputs not allowed, a 'none' op, another edge count). */
int sr_ctl_actions(const sr_ctl *c, const ir_genotype *gt, int *actions);

/* One pass of the graph for a token sequence: returns sum_t -log pi(a_t) in *neg_logp and
 * sum_t H(pi_t) in *entropy; with grad, also the gradient of
 * c_lp * sum -log pi - c_ent * sum H into the weights' gradient (sr_ctl_grad). */
int sr_ctl_eval(sr_ctl *c, const int *actions, int grad, float c_lp, float c_ent, double *neg_logp, double *entropy,
                char *err, size_t errlen);
/* The controller's weights and their gradient (host memory: the CPU backend). */
float *sr_ctl_weights(sr_ctl *c, int64_t *n);
const float *sr_ctl_grad(sr_ctl *c);

/* One REINFORCE step on n sampled sequences (actions: n rows of T) with their rewards:
 * the gradient of (1/n) sum_i [(r_i - b) * sum_t -log pi(a_it) - beta * sum_t H(pi_it)]
 * takes one Adam step, b being the exponential moving average of the earlier steps' mean
 * rewards (Zoph & Le; the first step takes its own mean as b); then b moves to
 * decay * b + (1 - decay) * mean(rewards). */
int sr_ctl_update(sr_ctl *c, int n, const int *actions, const double *rewards, char *err, size_t errlen);
double sr_ctl_baseline(const sr_ctl *c);
int64_t sr_ctl_steps(const sr_ctl *c);

/* The whole state as checkpoint entries (train/checkpoint.h), for a loop's table: the
 * weights and Adam moments (host memory) and the int64 entry "controller/state" {steps,
 * baseline's bits, whether it is set}; writes SR_CTL_CKPT_N entries into e. A loop
 * passes them to sr_ckpt_save / sr_ckpt_read / sr_ckpt_restore with its own; after a
 * restore, sr_ctl_ckpt_restored takes the state back from the int64 entry. */
#define SR_CTL_CKPT_N 4
struct sr_ckpt_entry;
void sr_ctl_ckpt_entries(sr_ctl *c, struct sr_ckpt_entry *e);
void sr_ctl_ckpt_restored(sr_ctl *c);

#endif
