/* rnn.h — search, retraining and evaluation of recurrent (kind rnn) spaces: the DARTS
 * Penn-Treebank language model over a corpus in the PTB layout (runtime/text.h).
 *
 * As the reference rnn/train_search.py: weights on the training split, alpha on the
 * validation split (window i of training pairs with window i mod n of validation), the
 * alpha step first (first order, or second order with the clipped-SGD virtual step),
 * then plain SGD with gradient clipping on the weights; hidden states are carried across
 * windows and detached (truncated BPTT) and reset at each epoch. Perplexity = exp(mean
 * cross-entropy per token). Windows have the fixed length bptt (the paper's random
 * length is not modelled). Checkpoints (each epoch and on a stop request) hold weights,
 * alpha, BN statistics, optimiser state, both hidden states, counters and the metrics
 * log length, so a resumed run is bit-identical to an uninterrupted one on the CPU.
 *
 * Run directory: metrics.jsonl, genotype.json (search), checkpoint.dtns (search) or
 * train_checkpoint.dtns + model.dtns + train_metrics.jsonl (retraining).
 *
 * Usage: sr_search / sr_train / sr_evaluate dispatch here for kind rnn spaces. */
#ifndef DARTSC_SR_RNN_H
#define DARTSC_SR_RNN_H

#include "search.h"
#include "train.h"

int sr_rnn_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen);
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

#endif
