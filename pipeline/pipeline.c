/* pipeline.c — see pipeline.h. */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/dist.h"
#include "train/common.h"
#include "train/data_info.h"
#include "train/rnn.h"

static int in_dir(const char *dir, const char *name) {
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* The strategies that score whole candidates in baselines.c's loop (candidates.jsonl). */
static int baseline_kind(sr_strategy s) { return s == SR_RANDOM || s == SR_EVOLUTION || s == SR_RL; }

/* A run directory holds one kind of search: the DARTS loop's (checkpoint.dtns; ENAS's
 * too) or a baseline's (candidates.jsonl, baseline_settings.dtns; rl's too). Another kind
 * there, resumed or not, would mix two searches' files: refused before anything is
 * written. */
static int other_kind_of_search(const sr_options *o, char *err, size_t errlen) {
    if (!o->out_dir || !o->out_dir[0]) return 0;
    int baseline = baseline_kind(o->strategy);
    int has_darts = in_dir(o->out_dir, "checkpoint.dtns");
    int has_base = in_dir(o->out_dir, "candidates.jsonl") || in_dir(o->out_dir, "baseline_settings.dtns");
    if (baseline && has_darts)
        return sr_fail(err, errlen, "%s holds a DARTS search (checkpoint.dtns), not a random search, evolution or rl search: "
                       "%s it with the strategy it was made with, or choose another --out", o->out_dir,
                       o->resume ? "resume" : "continue");
    if (!baseline && has_base)
        return sr_fail(err, errlen, "%s holds a random search, evolution or rl search (candidates.jsonl), not a DARTS search: "
                       "%s it with the strategy it was made with, or choose another --out", o->out_dir,
                       o->resume ? "resume" : "continue");
    return 0;
}

int sr_search(const ir_space *sp_in, const sr_options *o, sr_result *res, char *err, size_t errlen) {
    ir_space s = *sp_in, *sp = &s; /* npy, images: normalisation from the training split */
    if (other_kind_of_search(o, err, errlen)) return -1;
    if (sr_data_norm(sp, o->out_dir, 1, err, errlen)) return -1;
    if (o->objective == SR_OBJ_MNAS && (!(o->target_ms > 0) || !baseline_kind(o->strategy)))
        return sr_fail(err, errlen, "--objective mnas needs --target-latency MS and a strategy that scores whole candidates "
                       "(random, evolution or rl)");
    if (o->pretext != SR_PRETEXT_NONE && (sp->kind != IR_SPACE_CNN || baseline_kind(o->strategy)))
        return sr_fail(err, errlen, "--pretext works with the supernet searches of a convolutional space (darts, joint, "
                       "coord, pc-darts, fair-darts, enas)");
    if (baseline_kind(o->strategy)) return sr_baseline_search(sp, o, res, err, errlen);
    int succ = o->strategy == SR_PC_DARTS || o->strategy == SR_FAIR_DARTS || o->strategy == SR_PDARTS ||
               o->strategy == SR_DARTS_PLUS || o->strategy == SR_SHARP_DARTS || o->strategy == SR_PROXYLESS;
    if (sp->kind == IR_SPACE_RNN && succ) {
        snprintf(err, errlen, "the pc-darts, fair-darts, p-darts, darts-plus, sharp-darts and proxyless strategies search "
                              "convolutional (kind cnn) spaces only");
        return -1;
    }
    if (o->strategy == SR_ENAS) return sr_enas_search(sp, o, res, err, errlen);
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
