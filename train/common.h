/* common.h — pieces every loop shares (the searches of search/, the retraining and
 * recurrent runs of train/): progress reports, loader settings from a space, data sets by
 * split, int64 metadata in tensor files, file helpers and the clock. It sits in train/,
 * the lower of the two layers, so that search/ uses it without train/ using search/. */
#ifndef DARTSC_SR_COMMON_H
#define DARTSC_SR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "ir/space.h"
#include "runtime/data.h"
#include "runtime/tensorfile.h"

/* One progress report of a loop, to the caller's callback (o->progress). */
typedef struct sr_progress {
    int epoch, epochs;
    int64_t step, steps_per_epoch; /* step within the epoch, 0-based */
    double train_loss, train_acc, val_loss, val_acc;
    double lr, images_per_s, eta_s;
    int epoch_end; /* 1: epoch summary (val_* over the whole architecture split) */
    int candidate_end; /* baselines: candidate `epoch` of `epochs` scored val_* (step = its parent, -1: none) */
    const char *warning; /* non-NULL: a warning for the user (printed by the caller), e.g. an exploding loss */
} sr_progress;

/* A loss above this (mean cross-entropy per sample or token) is recorded and warned about
 * as a numerical explosion; a non-finite loss stops the loop (sr_diverged). */
#define SR_LOSS_WARN 100.0

/* The space's data set: the training split (train = 1) or the test split, checked against
 * the space's input and classes. With sr_data_keep on, a view (owns = 0) of the split as
 * first read in this process. */
int sr_data_load(const ir_space *sp, int train, rt_dataset *out, char *err, size_t errlen);
/* on = 1: every split sr_data_load reads from now on is kept, decoded, for the rest of the
 * process, and later loads of it (same source, directory, input and classes) are views of
 * it: one `dartsc run` decodes each split once for its search, retraining and evaluation,
 * and a baseline search once for all its candidates. Each first read prints one line to
 * stderr (split, directory, images, seconds). on = 0 frees the kept splits (views handed
 * out must be dropped before). Off by default, so library callers that change a data
 * directory between loads see the change; the driver turns it on. */
void sr_data_keep(int on);
/* Reads (and so checks) the training split (train set) and the test split (test set) of
 * sp's data: for the commands to call before they write anything, so that bad data leaves
 * no trace. With sr_data_keep on, these reads are the ones the stages use. Recurrent
 * spaces: nothing to do (their corpus is read as the run opens, before its directory). */
int sr_data_prepare(const ir_space *sp, int train, int test, char *err, size_t errlen);
/* sr_data_load at the evaluation network's input size: resized where compound scaling
 * (ir_space_compound_scale) changed it (train/scale.c; the kept split is read, the resized
 * copy is this call's own). For retraining and evaluation. */
int sr_data_load_eval(const ir_space *sp, int train, rt_dataset *out, char *err, size_t errlen);
/* Loader settings: the space's normalisation (or the data set's), augmentation of tc when
 * augment is set, drop_last and shuffling for training. */
rt_loader_cfg sr_loader_cfg(const ir_space *sp, const ir_train_config *tc, int augment);
/* Next full batch, wrapping into the loader's next epoch. */
void sr_next_batch(rt_loader *l, float *x, int32_t *y);
/* int64 values stored as pairs of int32 (lo, hi) in a tensor file. */
int sr_put_i64s(rt_tf_writer *w, const char *name, const int64_t *v, int n);
int sr_get_i64s(const rt_tf_file *f, const char *name, int64_t *v, int n, const char *path, char *err, size_t errlen);
/* Writes a message (printf format) into err and returns -1: the search layer's error return. */
int sr_fail(char *err, size_t errlen, const char *fmt, ...);
int sr_mkdir_p(const char *dir, char *err, size_t errlen);
long sr_file_size(const char *path);
double sr_now(void);
struct rt_plan;
/* The weight learning rate of an epoch: cosine from w_lr down to w_lr_min over tc->epochs. */
float sr_cosine_lr(const ir_train_config *tc, int epoch);
/* clip_grad_norm_ as PyTorch over the plan's weight gradients: scale by max/(norm + 1e-6)
 * when that is below 1 (max <= 0: no clipping). Returns the norm before clipping where it
 * was computed on the host path, or 0 where the backend clipped on the device (no host
 * synchronisation: the caller checks the loss instead). */
double sr_clip_weight_grads(struct rt_plan *p, float max_norm);
/* The per-pass path's pass: the batch (x, y: host, bx and by bytes) into the plan's inputs,
 * forward and backward for mask (rt_pass), the gradients summed over the processes of a
 * data-parallel run, and the global loss and top-1 count read back (a synchronisation). */
void sr_pass_read(struct rt_plan *p, int images, int labels, const float *x, const int32_t *y, size_t bx, size_t by,
                  unsigned mask, float *loss, double *correct);

/* ---- whole steps (rt_step_run, runtime/runtime.h) ----
 * A loop whose step needs the host nowhere inside it issues the step through these: the
 * step's batches are uploaded into fixed backend buffers and its per-step scalars into a
 * small backend block before it (queued, in order before the step), the step reads them
 * there, writes its losses and top-1 counts into backend memory, and the loop reads them
 * once after it (one synchronisation) and checks them. On a backend that records graphs
 * the step is one replay from its third call on; on the CPU it runs as it is issued, the
 * same arithmetic as the loops' per-pass path (the same bits). Only where
 * sr_step_usable: a data-parallel run needs the host between passes (gradient sums,
 * sync_bn statistics). */
typedef struct sr_step {
    struct rt_plan *p;
    int images, labels; /* the plan's input nodes */
    size_t bx, by;      /* bytes of one batch's images and labels */
    float *dev;         /* the one backend allocation holding the rest */
    float *x[2];        /* backend memory: batch 0 (training), batch 1 (validation, in a search) */
    int32_t *y[2];
    float *sc;          /* backend memory, SR_STEP_SC floats: [0] the weight learning rate, then the
                           loop's own (a search: Adam's two scalars, rt_adam_scalars) */
    float *res;         /* backend memory, SR_STEP_RES floats (SR_RES_*): the losses, the weight
                           gradient norm, the top-1 counts */
} sr_step;
enum { SR_STEP_SC = 4 };
/* The step's results in res: the validation loss (a search's architecture batch), the
 * training loss, the weight gradient norm before clipping (clip_norm_to: the weight step's
 * guard with the losses before it, so these three are adjacent), then the two losses' top-1
 * counts. */
enum { SR_RES_VAL, SR_RES_TRAIN, SR_RES_GNORM, SR_RES_VAL_CORRECT, SR_RES_TRAIN_CORRECT, SR_STEP_RES };
/* Whether a loop with these settings may record its steps whole (one process, no sync_bn). */
int sr_step_usable(const ir_train_config *tc);
/* nbatch: 1 (training: x[1], y[1] NULL) or 2 (a search). Returns 0, or -1 out of backend memory. */
int sr_step_init(sr_step *s, struct rt_plan *p, int images, int labels, int nbatch);
void sr_step_free(sr_step *s);
/* Uploads batch k (host memory) into its fixed buffer, and scalars[0..SR_STEP_SC) into sc.
 * Queued in order after the work issued before (runtime/backend.h's upload): a loop may put
 * the next step's batch while this step computes (it lands after this step has read its
 * own), and the host buffers are free again on return. */
void sr_step_put(sr_step *s, int k, const float *x, const int32_t *y);
void sr_step_put_scalars(sr_step *s, const float *scalars);
/* Issue-time helpers of a step: batch k into the plan's inputs (a copy on the backend), and
 * the last forward's loss and top-1 count into res[slot] and its count (slot: SR_RES_VAL or
 * SR_RES_TRAIN). */
void sr_step_use_batch(sr_step *s, int k);
void sr_step_keep_loss(sr_step *s, int slot);
/* The weight update that ends a step: clips the weight gradient with its norm kept in
 * res[SR_RES_GNORM] (clip_norm_to), then SGD with momentum buf and the learning rate sc[0],
 * skipped on the backend where the norm or one of the step's nloss losses (1: the training
 * loss; 2: the validation loss too) is not finite. */
void sr_step_weights(sr_step *s, float *buf, const ir_train_config *tc, int nloss);
/* Reads the step's results (one synchronisation: the step has finished). */
void sr_step_read(sr_step *s, float res[SR_STEP_RES]);
/* The retraining step (train/cnn.c, bench/retrain_step.c): batch (x, y), forward and backward,
 * the loss and top-1 count kept, sr_step_weights at learning rate lr; *loss and *correct read
 * after it. -1: the pass could not run. sr_train_step is sr_step_put + sr_train_step_launch +
 * sr_step_read; a loop that prepares the next batch while a step computes calls them apart. */
int sr_train_step(sr_step *s, float *buf, const float *x, const int32_t *y, float lr, const ir_train_config *tc,
                  float *loss, float *correct);
/* Issues the retraining step on the batch already put (sr_step_put, k = 0); reads nothing back. */
int sr_train_step_launch(sr_step *s, float *buf, float lr, const ir_train_config *tc);
/* Where a loop's host time goes between steps (DARTSC_HOST_TIMING=1: reported on stderr
 * at the loop's end; measured always, a few clock reads a step). Seconds summed over n
 * steps of the whole-step path: drawing and putting batches (ahead: drawn while a step
 * computes, or between steps), the metrics line, the progress report, and the whole time
 * from reading a step's results to launching the next (on a device, time it waits unless
 * work is queued). */
typedef struct sr_host_timing {
    double batch_ahead, batch_between, line, progress, gap;
    int64_t n, gaps;
    double since; /* sr_now() when the last step's results were read; 0: none */
} sr_host_timing;
/* Prints the means per step to stderr where DARTSC_HOST_TIMING is set; what names the loop. */
void sr_host_timing_report(const sr_host_timing *h, const char *what);
/* Prints to stderr which variant autotuning kept for p's steps and every variant's median
 * (DARTSC_AUTOTUNE; nothing where p did not tune); what names the loop. */
void sr_tune_report(const struct rt_plan *p, const char *what);
/* Whether loops prefetch: prepare and upload the next step's batch while a step computes
 * (default on; DARTSC_NO_PREFETCH=1 turns it off, for A/B measurements). The same batches in
 * the same order either way: the bits of a run do not depend on it. */
int sr_prefetch_on(void);

/* Periodic checkpoints between epoch ends: due after every `every_steps` steps of the run
 * (global_step, counted after the step) or when `every_s` seconds have passed since *last
 * (sr_now(); updated when due). 0 turns either off. In a data-parallel run rank 0's clock
 * decides for every process (a collective: every process calls it at the same steps). */
int sr_checkpoint_due(int64_t every_steps, double every_s, int64_t global_step, double *last);
#define SR_CHECKPOINT_SECONDS_DEFAULT 600.0 /* every 10 minutes */
/* The sum of squares of the plan's parameter group of a role (IR_ROLE_*): not finite when
 * any value is not (one reduction on the backend, one synchronisation: for epoch ends and
 * checkpoints). */
double sr_group_sumsq(struct rt_plan *p, int role);
/* The error of a loop that met a non-finite value: names the step, the value and the
 * likely cause (the learning rate), and whether a checkpoint (ckpt_path) is kept.
 * what: "the training loss", "the weight gradient norm", ... Returns -1. */
int sr_diverged(char *err, size_t errlen, const char *what, double value, int epoch, int64_t step, int64_t global_step,
                double lr, const char *ckpt_path);
/* A number for a JSON document: printf's fmt (e.g. "%.6g") for a finite value, "null"
 * otherwise (JSON has no NaN or infinity). Returns buf (32 bytes at least). */
const char *sr_json_num(char *buf, size_t n, const char *fmt, double v);
/* FNV-1a over the names and shapes of a graph's parameters: identifies a network's layout
 * in checkpoints. */
uint64_t sr_param_hash(const ir_graph *g);

/* ---- data-parallel runs (runtime/dist.h, docs/SCALING.md) ----
 * Every process computes its part of each global batch (the space's batch split evenly);
 * the loops call these around their passes. Alone, every one of them changes nothing. */
/* The samples this process computes of a global batch: batch / processes; -1 and a
 * message where the processes do not divide the batch. */
int sr_dist_local_batch(int batch, char *err, size_t errlen);
/* cfg's shard: this process's part of each batch (rt_loader_cfg.shards). */
void sr_dist_shard(rt_loader_cfg *cfg);
/* After a backward: the gradient groups of mask (RT_GRAD_W, RT_GRAD_ARCH) summed over the
 * processes (rank order) and divided by their number: the gradient of the global batch's
 * mean loss. */
void sr_dist_grads(struct rt_plan *p, unsigned mask);
/* A mean loss over this process's part and a count (correct predictions, NULL: none) made
 * global: the mean over the processes (equal parts: the global batch's mean) and the sum. */
void sr_dist_loss(float *loss, double *count);
/* Rank 0's return code and message, on every process: after work that only rank 0 does
 * (the run directory's files). Returns that code. */
int sr_dist_root_rc(int rc, char *err, size_t errlen);
/* 1 on the process that writes the run directory, logs and progress (rank 0). */
int sr_dist_writer(void);

#endif
