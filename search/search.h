/* search.h — bilevel DARTS search over a space, on any backend, with a run directory,
 * checkpoints and bit-identical resume on the CPU.
 *
 * Strategies (REFERENCE.md and the paper's ablations):
 *   SR_DARTS  alpha on the architecture half (first or second order), weights on the
 *             weight half, alternating per minibatch: alpha step first, then weights;
 *   SR_JOINT  alpha and weights trained together by one backward on all training data;
 *   SR_COORD  coordinate descent: alternate first-order alpha and weight steps, both on
 *             batches of all training data.
 *
 *   SR_RANDOM     random search: sample genotypes uniformly from the space, train each
 *                 briefly on the weight split, keep the best on the architecture split;
 *   SR_EVOLUTION  regularised (aging) evolution (Real et al. 2019, AmoebaNet): a population
 *                 of trained genotypes; each cycle samples a few, mutates the best (one op or
 *                 one input of one node) into a child, trains it and retires the oldest.
 *
 * Usage:
 *   sr_options o = sr_options_default();
 *   o.out_dir = "runs/demo";
 *   sr_result r;
 *   if (sr_cnn_search(&space, &o, &r, err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
 * (pipeline/pipeline.h: sr_search picks the strategy's and the space kind's search.)
 */
#ifndef DARTSC_SR_SEARCH_H
#define DARTSC_SR_SEARCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/space.h"
#include "objective.h"
#include "pretext.h"
#include "train/common.h"

/* SR_RANDOM and SR_EVOLUTION are the paper's baselines (search/baselines.c): discrete
 * genotypes trained briefly and scored on the architecture split. */
/* SR_PC_DARTS, SR_FAIR_DARTS, SR_PDARTS, SR_DARTS_PLUS and SR_SHARP_DARTS are DARTS successors
 * (search/successors.h; issue 21): the DARTS loop with the paper's change (docs/ARCHITECTURE.md). */
/* SR_RL (search/controller.c, baselines.c's loop): an LSTM controller samples the candidates
 * and learns from their scores by REINFORCE (Zoph & Le 2017; NASNet). */
/* SR_ENAS (search/enas.c): the same controller, its children sharing the supernet's weights. */
/* The numbers are kept in checkpoints' settings: new strategies are appended. */
typedef enum sr_strategy { SR_DARTS, SR_JOINT, SR_COORD, SR_RANDOM, SR_EVOLUTION,
                           SR_PC_DARTS, SR_FAIR_DARTS, SR_RL, SR_ENAS,
    SR_PDARTS,      /* P-DARTS (search/pdarts.c): stages of growing depth, ops pruned between them */
    SR_DARTS_PLUS,  /* DARTS+ (search/dartsplus.c): early stopping */
    SR_SHARP_DARTS, /* sharpDARTS (search/sharp.c): cosine power annealing of the weight learning rate */
    SR_PROXYLESS,   /* ProxylessNAS (search/proxyless.c): binarised paths, the two-path alpha estimator, latency loss */
} sr_strategy;

typedef struct sr_options {
    const char *out_dir;           /* run directory (created) */
    const char *space_src;         /* the space's source text, copied into the run dir; may be NULL */
    size_t space_src_len;
    const char *device;            /* "auto" (default: CUDA where usable), "cpu" or "cuda" */
    sr_strategy strategy;
    int resume;                    /* continue from out_dir/checkpoint.dtns */
    volatile sig_atomic_t *stop;   /* set (by a signal handler) to checkpoint and stop after this step */
    int64_t stop_after_steps;      /* > 0: behave as if stopped after this many steps in total (tests;
                                      the baselines stop candidate number N after its first step) */
    int64_t checkpoint_steps;      /* > 0: also checkpoint every this many steps (besides epoch ends) */
    double checkpoint_seconds;     /* > 0: also checkpoint when this long has passed since the last one
                                      (default SR_CHECKPOINT_SECONDS_DEFAULT) */
    void (*progress)(void *ctx, const sr_progress *p);
    void *progress_ctx;
    /* baselines (0: the defaults in baselines.c) */
    int candidates;        /* genotypes trained in all (evolution: including the first population) */
    int population;        /* evolution: population size */
    int sample;            /* evolution: tournament size */
    int candidate_epochs;  /* training epochs of each candidate */
    /* rl (0: the defaults of search/controller.c and baselines.c) */
    int children;          /* candidates per controller step */
    int controller_hidden; /* LSTM units */
    float controller_lr, entropy_weight, baseline_decay;
    /* what random, evolution and rl maximise (objective.h) */
    sr_objective objective;
    double target_ms;      /* SR_OBJ_MNAS: the target latency T */
    /* SR_OBJ_MNAS: times the trained candidate (space cs at search size, genotype gt,
     * weights file) in *ms, using dir for its files; the driver's is dartsc_latency_ms */
    int (*latency)(void *ctx, const ir_space *cs, const ir_genotype *gt, const char *weights, const char *dir, double *ms,
                   char *err, size_t errlen);
    void *latency_ctx;
    /* SR_PROXYLESS: the latency in ms of candidate op alone on a (1, C, H, W) input at stride
     * stride (the driver's times its generated C and caches it, driver/proxyless_latency.c);
     * asked once per distinct shape when the search starts (sp->search.latency_weight > 0) */
    int (*op_latency)(void *ctx, const ir_space *sp, const ir_cand *op, int C, int H, int W, int stride, double *ms,
                      char *err, size_t errlen);
    void *op_latency_ctx;
    sr_pretext pretext;    /* the DARTS loop's strategies: a self-supervised task instead of the labels (pretext.h) */
    /* set by search/pdarts.c for one stage: the stage's supernet (alpha columns, skip dropout),
       and a callback that receives the final alpha of both cell types (host, the stage's
       (edges, n_cols) layout) when the search ends */
    const ir_supernet_opts *supernet;
    void (*final_alpha)(void *ctx, const float *alpha_normal, const float *alpha_reduce);
    void *final_alpha_ctx;
} sr_options;

typedef struct sr_result {
    ir_genotype genotype;
    double val_acc;    /* last epoch's accuracy on the architecture split */
    double seconds;
    int stopped;       /* 1: stopped early with a checkpoint (resume to finish) */
    int64_t steps;
    double loss_peak;       /* the largest training or architecture-split loss of this invocation */
    int64_t loss_peak_step; /* its step (0-based, of the whole run); above SR_LOSS_WARN the driver warns */
    int stop_epoch;         /* DARTS+: the epoch (1-based) after which the search stopped early; 0: ran to the end */
    char stop_reason[192];  /* DARTS+: why (also in RUN_DIR/stop.json) */
} sr_result;

sr_options sr_options_default(void);

/* A strategy that brings its own architecture step into the DARTS loop of search/cnn.c
 * (ENAS, search/enas.c): the loop keeps its data split, weight steps, logs and
 * checkpoints, and calls these instead of the alpha step and the derivation. */
struct rt_plan;
struct sr_ckpt_entry;
#define SR_ARCH_HOOK_CKPT_MAX 8
typedef struct sr_arch_hooks {
    void *ctx;
    /* before the weight step of global step g: set the architecture the weights train */
    int (*before_weight_step)(void *ctx, struct rt_plan *p, const ir_net *net, int64_t g, char *err, size_t errlen);
    /* in place of the alpha step, with a batch (x, y) of the architecture split; reports
     * what it measured on it */
    int (*arch_step)(void *ctx, struct rt_plan *p, const ir_net *net, const float *x, const int32_t *y, int64_t g,
                     float *val_loss, float *val_acc, char *err, size_t errlen);
    /* the derived genotype; also sets the plan's architecture to it (the epoch's end
     * scores it on the architecture split) */
    int (*derive)(void *ctx, struct rt_plan *p, const ir_net *net, ir_genotype *gt, char *err, size_t errlen);
    /* extra checkpoint entries (host memory or int64), and a call after they were restored */
    int n_ckpt;
    struct sr_ckpt_entry *ckpt;
    void (*restored)(void *ctx);
} sr_arch_hooks;
/* sr_cnn_search with a strategy's hooks (NULL: none). */
int sr_cnn_search_hooked(const ir_space *sp, const sr_options *o, const sr_arch_hooks *h, sr_result *res, char *err,
                         size_t errlen);
/* ENAS (Pham et al. 2018) over a convolutional space (search/enas.c). */
#define SR_ENAS_OFF (-1e4f) /* alpha of an op a child does not use: softmax gives exactly 0 */
/* The one-hot alpha rows (normal, reduce) that make the supernet compute child gt: per
 * edge, 0 for the chosen op (or 'none' where gt does not use the edge), SR_ENAS_OFF else. */
void sr_enas_child_alpha(const ir_space *sp, const ir_genotype *gt, float *alpha_normal, float *alpha_reduce);
int sr_enas_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
/* The DARTS loop over a convolutional (kind cnn) space's supernet: strategies SR_DARTS,
 * SR_JOINT and SR_COORD (search/cnn.c). */
int sr_cnn_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
/* 1 where DARTSC_NO_SHARE=1: supernets built without shared parameter-free ops
 * (ir_supernet_opts.no_share; the A/B switch of bench/ and the tests). */
int sr_no_share(void);
/* The DARTS search of a recurrent (kind rnn) space (search/rnn.c): SR_DARTS only; val_acc
 * holds the last validation perplexity. */
int sr_rnn_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
/* The baselines and the RL search; sr_search (pipeline/pipeline.h) calls it for SR_RANDOM,
 * SR_EVOLUTION and SR_RL (then also writes out_dir/controller.dtns: the controller's state). Writes
 * out_dir/candidates/NNN/ (each candidate's training run, genotype.json, result.json),
 * out_dir/candidates.jsonl and the best genotype as out_dir/genotype.json; resumes
 * candidate by candidate (a partly trained candidate from its checkpoint). */
int sr_baseline_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
/* The baselines' defaults for a strategy, filled into any zero field of o. */
void sr_baseline_defaults(sr_options *o);

/* ---- the second-order architecture gradient, exposed for tests ----
 * Scratch vectors on the plan's backend, allocated once per search. */
struct rt_plan;
typedef struct sr_unroll {
    float *w_backup, *v, *dalpha, *gplus; /* weights, weights, arch, arch */
    float *eps; /* backend memory, SR_UNROLL_SCALARS floats: R, -R and the final scale
                   (rt_backend.hvp_eps), then -eta, -eta wd, -eta momentum and eta
                   (sr_unroll_set_eta) */
    int64_t nw, na;
} sr_unroll;
#define SR_UNROLL_SCALARS 8
int sr_unroll_init(sr_unroll *u, struct rt_plan *p);
void sr_unroll_free(sr_unroll *u, struct rt_plan *p);
/* Uploads the virtual step's coefficients for learning rate eta into u->eps (queued, in
 * order before what follows: a recorded step reads them from there). */
void sr_unroll_set_eta(sr_unroll *u, struct rt_plan *p, float eta, float momentum, float wd);
/* REFERENCE.md's second-order step. The training batch (xt, yt) and validation batch
 * (xv, yv) are host arrays for the plan's images/labels inputs; buf is the weights' SGD
 * momentum buffer (backend memory, NULL = zero), eta the current weight learning rate.
 * On return the plan's arch gradient holds dalpha - eta (g+ - g-) / (2R), the weights are
 * restored bit for bit, and *val_loss is L_val(w', alpha). bug_mul_r = 1 reproduces the
 * known re-implementation bug (g+ - g-) / 2 * R, for the test that must catch it. */
int sr_arch_grad_second_order(struct rt_plan *p, sr_unroll *u, int images, int labels, const float *xt,
                              const int32_t *yt, const float *xv, const int32_t *yv, const float *buf, float eta,
                              float momentum, float wd, int bug_mul_r, float *val_loss);
/* The same issued without any host synchronisation, for a recorded step: the batches in
 * backend memory (fixed buffers), eta's coefficients already in u (sr_unroll_set_eta), the
 * validation loss and top-1 count copied to loss_dev[0] and correct_dev[0] (backend memory). */
int sr_arch_grad_second_order_dev(struct rt_plan *p, sr_unroll *u, int images, int labels, const float *xt,
                                  const int32_t *yt, const float *xv, const int32_t *yv, const float *buf,
                                  int bug_mul_r, float *loss_dev, float *correct_dev);

/* ---- the DARTS step recorded whole (search/step.c) ----
 * One step of the plain DARTS search (strategy darts, one process, no sync_bn: the loop's
 * sr_step_usable and no hooks): the alpha gradient on the validation batch (first order,
 * or the second-order step with the weights' momentum buffer where momentum_live), Adam on
 * alpha, the weight pass on the training batch, clipping and SGD; issued through
 * rt_step_run, so that on a backend that records graphs it is one replay, and with every
 * per-step value (learning rate, Adam's bias corrections, eta's coefficients) in backend
 * memory. A non-finite validation loss leaves alpha, the weights and every optimiser state
 * untouched; a non-finite training loss or weight gradient norm the weights and the
 * momentum buffer. */
#define SR_ADAM_EPS 1e-8f
typedef struct sr_darts_step {
    sr_step s; /* x[0], y[0] training, x[1], y[1] validation; sc: lr, Adam's two */
    sr_unroll *u;
    float *sgd_buf, *adam_m, *adam_v;
    const ir_train_config *tc;
    int order, momentum;
    float w01; /* FairDARTS: its zero-one term's weight, added to alpha's gradient before Adam
                  (backend zero_one_grad, which must exist); 0: none */
} sr_darts_step;
int sr_darts_step_init(sr_darts_step *d, struct rt_plan *p, int images, int labels, const ir_train_config *tc,
                       sr_unroll *u, float *sgd_buf, float *adam_m, float *adam_v);
void sr_darts_step_free(sr_darts_step *d);
/* Runs one step at weight learning rate lr and Adam step adam_t (>= 1) on host batches
 * (xt, yt) training and (xv, yv) validation; out: validation loss, training loss, their
 * top-1 counts, read after the step; *gnorm: the weight gradient norm before clipping (a
 * float: clip_norm_to's). -1: a pass could not run. sr_darts_step_run is the three calls
 * below in a row: put uploads the batches (queued behind the work issued before: a loop
 * may put step t + 1's batches after launching step t), launch issues the step (reads
 * nothing back), read waits for it and reads its results. */
int sr_darts_step_run(sr_darts_step *d, const float *xt, const int32_t *yt, const float *xv, const int32_t *yv,
                      float lr, int adam_t, int momentum_live, float out[4], double *gnorm);
void sr_darts_step_put(sr_darts_step *d, const float *xt, const int32_t *yt, const float *xv, const int32_t *yv);
int sr_darts_step_launch(sr_darts_step *d, float lr, int adam_t, int momentum_live);
void sr_darts_step_read(sr_darts_step *d, float out[4], double *gnorm);

/* P-DARTS (search/pdarts.c): the stages, each a DARTS search of its own supernet in
 * out_dir/stageN/, the ops pruned by alpha between them, the skip cap on the final genotype;
 * out_dir/stages.jsonl records each finished stage. Resumes stage by stage. */
int sr_pdarts_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);

/* P-DARTS's final derivation from the last stage's alpha (cols, n_cols, alpha per cell type,
 * as a stage's supernet): softmax weights over each edge's kept candidates, DARTS's rule,
 * then at most sp->search.max_skip skips in the normal cell (the kept skip of smallest
 * weight removed from its edge, the cell derived again, until it holds). Returns the number
 * of skips removed, or -1 when out of memory. */
int sr_pdarts_derive(const ir_space *sp, const int *const cols[2], const int n_cols[2], const float *const alpha[2],
                     ir_genotype *gt);

/* A cell type's alpha in the layout of the space's candidate ops: a (edges, n_cols) alpha
 * whose column j of edge e is candidate cols[e * n_cols + j], written into full (edges,
 * n_ops) with SR_ALPHA_PRUNED (softmax weight 0) for the candidates that are not columns. */
#define SR_ALPHA_PRUNED (-1e30f)
void sr_alpha_expand(const ir_cell *c, const int *cols, int n_cols, const float *a, float *full);

/* sharpDARTS's cosine power annealing (search/sharp.c) of the weight learning rate at epoch e
 * (0-based) of tc->epochs, exponent base p = tc->lr_power: with c(t) = (1 + cos(pi t / T)) / 2
 * for t = e + 1 of T = epochs, lr = lr_min + (lr - lr_min) (p^(c(t)+1) - p^(c(T)+1)) /
 * (p^(c(1)+1) - p^(c(T)+1)) (p = 1: the cosine c(t) itself, normalised the same way), so the
 * first epoch runs at lr and the last at lr_min, as the paper's code; T = 1: lr. */
float sr_cosine_power_lr(const ir_train_config *tc, int epoch);

/* DARTS+'s stopping rule (search/dartsplus.c), applied at each epoch's end to alpha (full
 * layout, both cell types): criterion 1, the derived normal cell holds tc->stop_skips or more
 * skip connections; criterion 2, the ranking of the learnable (parametric) ops' alpha on every
 * edge of both cells has not changed for tc->stop_stable epochs. *stable counts the epochs
 * the ranking has held so far (0 at the start; updated); prev_* is the previous epoch's alpha
 * (NULL at the first epoch). Returns 0 (go on), SR_DPLUS_SKIPS or SR_DPLUS_STABLE, with the
 * number of skips or of stable epochs in *value. */
enum { SR_DPLUS_SKIPS = 1, SR_DPLUS_STABLE = 2 };
int sr_dplus_check(const ir_space *sp, const float *an, const float *ar, const float *prev_an, const float *prev_ar,
                   int64_t *stable, int64_t *value);
/* The reason of a stop in words. */
void sr_dplus_reason(const ir_train_config *tc, int64_t code, int64_t value, int64_t epoch, char *buf, size_t n);

/* Writes data to path atomically: temporary file, fsync, rename. */
int sr_write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);

#endif
