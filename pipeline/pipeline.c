/* pipeline.c — see pipeline.h. */
#include "pipeline.h"

#include <string.h>

#include "train/data_info.h"
#include "train/rnn.h"

int sr_search(const ir_space *sp_in, const sr_options *o, sr_result *res, char *err, size_t errlen) {
    ir_space s = *sp_in, *sp = &s; /* npy, images: normalisation from the training split */
    if (sr_data_norm(sp, o->out_dir, 1, err, errlen)) return -1;
    if (o->strategy == SR_RANDOM || o->strategy == SR_EVOLUTION) return sr_baseline_search(sp, o, res, err, errlen);
    if (sp->kind == IR_SPACE_RNN) return sr_rnn_search(sp, o, res, err, errlen);
    if (o->strategy == SR_PDARTS) return sr_pdarts_search(sp, o, res, err, errlen);
    return sr_cnn_search(sp, o, res, err, errlen);
}

int sr_train(const ir_space *sp_in, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
             size_t errlen) {
    ir_space s = *sp_in, *sp = &s;
    if (sr_data_norm(sp, o->out_dir, 1, err, errlen)) return -1;
    if (sp->kind == IR_SPACE_RNN) return sr_rnn_train(sp, gt, o, res, err, errlen);
    return sr_cnn_train(sp, gt, o, res, err, errlen);
}

int sr_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, sr_eval_result *res,
                char *err, size_t errlen) {
    if (sp->kind == IR_SPACE_RNN) { /* loss = test cross-entropy per token, acc unused */
        sr_rnn_eval ev;
        memset(res, 0, sizeof *res);
        if (sr_rnn_evaluate(sp, gt, weights, device, &ev, err, errlen)) return -1;
        res->loss = ev.test_loss;
        res->n = (int)ev.test_tokens;
        return 0;
    }
    return sr_cnn_evaluate(sp, gt, weights, device, res, err, errlen);
}
