/* train.h — retraining a derived architecture from scratch, evaluating it on the test
 * set, and the weights file that carries a trained network to the exporters.
 *
 * Retraining follows REFERENCE.md's evaluation recipe with the space's `train` settings:
 * SGD with momentum and weight decay, cosine schedule to lr_min, gradient clipping, drop
 * path ramped linearly from 0 to drop_path over the epochs, the auxiliary head with its
 * loss weight, cutout, crop and flip. Checkpoints every epoch and on a stop request;
 * resume is bit-identical on the CPU as for the search.
 *
 * Usage:
 *   sr_train_opts o = sr_train_opts_default(); o.out_dir = "runs/demo";
 *   sr_cnn_train(&space, &genotype, &o, &res, err, sizeof err);     // writes runs/demo/model.dtns
 *   sr_cnn_evaluate(&space, &genotype, "runs/demo/model.dtns", "cpu", &ev, err, sizeof err);
 * (pipeline/pipeline.h: sr_train and sr_evaluate pick this or train/rnn.h by space kind.)
 */
#ifndef DARTSC_SR_TRAIN_H
#define DARTSC_SR_TRAIN_H

#include <signal.h>

#include "ir/space.h"
#include "common.h"
#include "runtime/runtime.h"

typedef struct sr_train_opts {
    const char *out_dir;
    const char *device;
    int resume;
    volatile sig_atomic_t *stop;
    int64_t stop_after_steps; /* tests: behave as if stopped after this many steps */
    int64_t checkpoint_steps; /* > 0: also checkpoint every this many steps (besides epoch ends) */
    double checkpoint_seconds; /* > 0: also checkpoint this long after the last one (default 600) */
    int data_begin, data_count; /* data_count > 0: train on training images [begin, begin + count)
                                   instead of the first `subset` (the baselines' candidates) */
    void (*progress)(void *ctx, const sr_progress *p);
    void *progress_ctx;
} sr_train_opts;

typedef struct sr_train_result {
    int stopped;
    int64_t steps;
    double seconds, train_acc, train_loss;
    double loss_peak;       /* the largest training loss of this invocation (SR_LOSS_WARN) */
    int64_t loss_peak_step;
} sr_train_result;

typedef struct sr_eval_result {
    double acc, loss;
    int n;
} sr_eval_result;

sr_train_opts sr_train_opts_default(void);
/* Trains and writes out_dir/model.dtns (atomically), out_dir/train_metrics.jsonl and
 * out_dir/train_checkpoint.dtns. */
int sr_cnn_train(const ir_space *sp, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
                 size_t errlen);
/* Accuracy and mean loss on the test split (first test_subset images if set, else all),
 * with BN running statistics. */
int sr_cnn_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device,
                    sr_eval_result *res, char *err, size_t errlen);

/* The same, also writing the predicted class of test image i to pred[i] (i < pred_cap). */
int sr_evaluate_predict(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, int32_t *pred,
                        int pred_cap, sr_eval_result *res, char *err, size_t errlen);

/* Accuracy and mean loss on images [begin, begin + count) of the training split (train = 1)
 * or the test split (train = 0), BN with running statistics, or with the statistics of
 * each batch of 100 when batch_stats is set: the baselines score their briefly trained
 * candidates on the search's architecture split that way, as DARTS scores its supernet
 * (running statistics lag far behind the weights after a few dozen steps). */
int sr_evaluate_range(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, int train,
                      int begin, int count, int batch_stats, sr_eval_result *res, char *err, size_t errlen);

/* An inference network of the derived architecture at a batch size, on a backend, with
 * the weights of a weights file loaded by name. */
typedef struct sr_infer {
    ir_net net;
    rt_backend *be;
    rt_plan *p;
} sr_infer;
int sr_infer_open(sr_infer *in, const ir_space *sp, const ir_genotype *gt, int batch, const char *weights,
                  const char *device, char *err, size_t errlen);
void sr_infer_close(sr_infer *in);

/* Weights files: every weight and buffer parameter by name, a format version, CRC. */
int sr_weights_save(rt_plan *p, const char *path, char *err, size_t errlen);
/* Loads every parameter of p that is a weight or buffer; all must be present with
 * matching shapes (entries p lacks, such as an auxiliary head, are ignored). */
int sr_weights_load(rt_plan *p, const char *path, char *err, size_t errlen);

#endif
