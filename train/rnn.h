/* rnn.h — training and evaluating recurrent (kind rnn) spaces: the DARTS Penn-Treebank
 * language model over a corpus in the PTB layout (runtime/text.h).
 *
 * One language-model run (sr_lm) serves both the recurrent search (search/rnn.c) and
 * retraining (sr_rnn_train): weights by plain SGD with gradient clipping on the training
 * stream, hidden states carried across windows and detached (truncated BPTT) and reset at
 * each epoch, validation perplexity at each epoch's end (exp of the mean cross-entropy
 * per token). A search passes hooks: its alpha step before each weight step, and its
 * genotype files at each epoch's end; this file knows nothing of architecture steps.
 * Windows have the fixed length bptt (the paper's random length is not modelled).
 * Checkpoints (each epoch, every ckpt_steps steps and/or ckpt_seconds seconds between
 * epoch ends, and on a stop request) hold weights, alpha, BN statistics,
 * optimiser state, both hidden states, counters and the metrics log length, so a resumed
 * run is bit-identical to an uninterrupted one on the CPU.
 *
 * Data-parallel (docs/SCALING.md): the batch B is the global batch, the columns of the
 * batchified corpus; process k takes columns [k*B/N, (k+1)*B/N) of every window and keeps
 * its own hidden state for them; gradients (every pass's) and losses are summed over the
 * processes before they are used, so every process applies the same update; rank 0 writes
 * the run directory, and a checkpoint holds every process's hidden states (B, H).
 *
 * Run directory: metrics.jsonl, genotype.json (search), checkpoint.dtns (search) or
 * train_checkpoint.dtns + model.dtns + train_metrics.jsonl (retraining).
 *
 * Usage: sr_train / sr_evaluate (pipeline/pipeline.h) call sr_rnn_train / sr_rnn_evaluate
 * for kind rnn spaces; `dartsc eval` calls sr_rnn_evaluate for both perplexities. */
#ifndef DARTSC_SR_RNN_H
#define DARTSC_SR_RNN_H

#include <signal.h>
#include <stdio.h>

#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/text.h"
#include "train.h"

int sr_rnn_train(const ir_space *sp, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
                 size_t errlen);

typedef struct sr_rnn_eval {
    double valid_loss, test_loss; /* mean cross-entropy per token */
    double valid_ppl, test_ppl;
    int64_t valid_tokens, test_tokens;
} sr_rnn_eval;
/* Validation and test perplexity of a trained derived network (weights file). */
int sr_rnn_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device,
                    sr_rnn_eval *res, char *err, size_t errlen);

/* ---- one language-model run, for the recurrent search (search/rnn.c) ---- */

typedef struct sr_lm {
    const ir_space *sp;
    const ir_train_config *tc;
    int search;                  /* 1: the supernet, with alpha and its Adam state */
    rt_backend *be;
    ir_rnn_net net;
    rt_plan *p;
    rt_corpus corpus;
    rt_text_stream tr, va;
    int64_t n_tr, n_va;          /* windows */
    int T, B, H;                 /* B: the global batch (columns of the batchified corpus) */
    int b, col0;                 /* data-parallel: this process's columns [col0, col0 + b); b = B alone */
    int32_t *x, *y;              /* (T, b) host window: this process's columns */
    int32_t *xf, *yf;            /* (T, B) the whole window (aliases x, y in a process alone) */
    float *h_train, *h_valid;    /* (b, H) host hidden states carried across windows */
    float *hf_train, *hf_valid;  /* (B, H) every process's hidden states, for checkpoints (aliases alone) */
    float *sgd_buf, *adam_m, *adam_v; /* backend memory; adam_* for alpha (search only) */
    float tar;                   /* weight of the tar term in weight steps (alpha steps use the bare CE) */
    int epoch, adam_t;
    int64_t step, global_step;
    char path_ckpt[1024], path_metrics[1024];
    FILE *metrics;
    int64_t ckpt_steps;          /* > 0: also checkpoint every this many steps (set after sr_lm_open) */
    double ckpt_seconds;         /* > 0: also checkpoint this long after the last checkpoint */
} sr_lm;

/* What a search adds to the run. */
typedef struct sr_lm_hooks {
    /* Before each weight step: the architecture step for training window m->step at weight
     * learning rate lr (Adam step included); returns the validation cross-entropy. */
    float (*arch_step)(sr_lm *m, float lr, void *ctx);
    /* At an epoch's end, after validation: may append fields to the open metrics line
     * (m->metrics, `, "name": value`) and write files. */
    int (*epoch_end)(sr_lm *m, char *err, size_t errlen, void *ctx);
    void *ctx;
} sr_lm_hooks;

/* Opens corpus, streams, network and plan for a run in out_dir. gc NULL: the supernet
 * (a search). On failure the caller still calls sr_lm_free. */
int sr_lm_open(sr_lm *m, const ir_space *sp, const ir_train_config *tc, const ir_geno_cell *gc, const char *device,
               const char *out_dir, const char *ckpt_name, const char *metrics_name, char *err, size_t errlen);
/* The loop (from the checkpoint when resume is set). Returns 0, 1 when stopped with a
 * checkpoint, -1 on error. progress: a line every 10 windows and per epoch to stderr.
 * hooks NULL: retraining. */
int sr_lm_loop(sr_lm *m, const sr_lm_hooks *hooks, int resume, volatile sig_atomic_t *stop, int64_t stop_after,
               int progress, double *last_valid_loss, char *err, size_t errlen);
void sr_lm_free(sr_lm *m);

/* Loads window w of stream s (this process's columns) and the hidden state h into the
 * plan's inputs. */
void sr_lm_set_window(sr_lm *m, const rt_text_stream *s, int64_t w, const float *h);
/* The tar term is part of the weight steps' loss only (on = 1), as the reference. */
void sr_lm_set_tar(sr_lm *m, int on);
/* Cross-entropy of the last forward pass (the loss without the tar term); data-parallel:
 * the mean over the processes, the global batch's cross-entropy (every process calls it). */
float sr_lm_last_ce(sr_lm *m);
/* One weight gradient on training window m->step (tar term on): forward, the final hidden
 * state into h_train, backward, the gradient summed over the processes (/N), clipped to
 * tc->w_clip. Returns the global batch's cross-entropy, and the clip factor in *clip. The
 * loop's weight step, and tests/dist_step.c's. */
float sr_lm_weight_grad(sr_lm *m, float *clip);
/* Data-parallel: the gradients of the groups in mask (RT_GRAD_W, RT_GRAD_ARCH) summed over
 * the processes in rank order and divided by N (nothing alone). */
void sr_lm_sum_grads(sr_lm *m, unsigned mask);
/* Scales the weight gradient to norm max (PyTorch clip_grad_norm_); returns the factor. */
float sr_lm_clip(sr_lm *m, float max_norm);
/* Bytes of one hidden state of this process (b, H). */
size_t sr_lm_hbytes(const sr_lm *m);
/* n zeroed floats of backend memory (NULL: out of memory). */
float *sr_lm_dev_zeros(rt_backend *be, int64_t n);

#endif
