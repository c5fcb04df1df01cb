/* pipeline.h — the one place that chooses by space kind and strategy: search, retraining
 * and evaluation of any space, for the driver (and tests) that do not care which kind it
 * is.
 *
 *   sr_search    random search / evolution / rl: search/baselines.c, enas: search/enas.c
 *                (convolutional spaces only);
 *                otherwise kind cnn: the DARTS loop (search/cnn.c), kind rnn: the
 *                recurrent search (search/rnn.c);
 *   sr_train     kind cnn: train/cnn.c, kind rnn: train/rnn.c;
 *   sr_evaluate  kind cnn: test accuracy and loss (train/cnn.c); kind rnn: test
 *                cross-entropy per token in loss and the token count in n (train/rnn.c).
 *
 * The layers below never call back up here: search/ uses train/, train/ uses neither.
 *
 * Usage:
 *   sr_result r;
 *   if (sr_search(&space, &o, &r, err, sizeof err) == 0) sr_train(&space, &r.genotype, &to, &tr, err, sizeof err);
 */
#ifndef DARTSC_PIPELINE_H
#define DARTSC_PIPELINE_H

#include "search/search.h"
#include "train/train.h"

int sr_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
int sr_train(const ir_space *sp, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
             size_t errlen);
int sr_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, sr_eval_result *res,
                char *err, size_t errlen);

#endif
