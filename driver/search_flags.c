/* search_flags.c — the search options `dartsc search` and `dartsc run` share: each flag
 * either overrides a DSL setting of the space or sets an sr_options field. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

const char *dartsc_search_flags_usage =
    "  search options (override the space's `search` settings):\n"
    "    --strategy darts|joint|coord|random|evolution|rl|enas   (default darts)\n"
    "    --order 1|2  --epochs N  --batch N  --seed N  --subset N  --data PATH\n"
    "    --candidates N  --population N  --sample N  --candidate-epochs N   (random, evolution, rl)\n"
    "    --children N  --controller-hidden N   (rl, enas: children per controller step, LSTM units)\n"
    "    --objective accuracy|mnas  --target-latency MS   (random, evolution, rl: MnasNet's reward\n"
    "                                                   ACC * (LAT / MS)^-0.07, LAT of the candidate's C)\n"
    "    --pretext rotation   (darts, joint, coord, enas: search on predicting a 0/90/180/270 rotation,\n"
    "                          no labels; the retraining uses the labels as usual)\n"
    "    --checkpoint-every N  --checkpoint-minutes M   also checkpoint every N steps / M minutes (0: off;\n"
    "                                                   default 10 minutes; epoch ends always)\n";

int dartsc_search_flag(const char *cmd, const char *a, const char *v, sr_options *o, dartsc_search_overrides *ov) {
    static const struct { const char *flag; long lo, hi; size_t off; int in_ov; } ints[] = {
        {"--epochs", 1, 100000, offsetof(dartsc_search_overrides, epochs), 1},
        {"--batch", 1, 65536, offsetof(dartsc_search_overrides, batch), 1},
        {"--order", 1, 2, offsetof(dartsc_search_overrides, order), 1},
        {"--seed", 0, 2147483647, offsetof(dartsc_search_overrides, seed), 1},
        {"--subset", 0, 100000000, offsetof(dartsc_search_overrides, subset), 1},
        {"--candidates", 1, 10000, offsetof(sr_options, candidates), 0},
        {"--population", 2, 10000, offsetof(sr_options, population), 0},
        {"--sample", 1, 10000, offsetof(sr_options, sample), 0},
        {"--candidate-epochs", 1, 100000, offsetof(sr_options, candidate_epochs), 0},
        {"--children", 1, 10000, offsetof(sr_options, children), 0},
        {"--controller-hidden", 1, 4096, offsetof(sr_options, controller_hidden), 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(a, ints[i].flag)) continue;
        long x;
        if (dartsc_parse_long(cmd, a, v, ints[i].lo, ints[i].hi, &x)) return -1;
        if (ints[i].in_ov) *(long *)((char *)ov + ints[i].off) = x;
        else *(int *)((char *)o + ints[i].off) = (int)x;
        return 1;
    }
    if (!strcmp(a, "--checkpoint-every") || !strcmp(a, "--checkpoint-minutes")) {
        long x;
        if (dartsc_parse_long(cmd, a, v, 0, 1000000000, &x)) return -1;
        if (a[13] == 'e') o->checkpoint_steps = x;
        else o->checkpoint_seconds = 60.0 * (double)x;
        return 1;
    }
    if (!strcmp(a, "--target-latency")) { /* milliseconds, a decimal number */
        char *end = NULL;
        double x = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !(x > 0 && x <= 1e6)) {
            fprintf(stderr, "dartsc %s: %s: '%s' is not a latency in milliseconds (a number in (0, 1e6])\n", cmd, a,
                    v ? v : "");
            return -1;
        }
        o->target_ms = x;
        return 1;
    }
    if (!strcmp(a, "--pretext")) {
        if (v && !strcmp(v, "rotation")) o->pretext = SR_PRETEXT_ROTATION;
        else if (v && !strcmp(v, "none")) o->pretext = SR_PRETEXT_NONE;
        else {
            fprintf(stderr, "dartsc %s: --pretext: '%s' is not rotation or none\n", cmd, v ? v : "");
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--objective")) {
        if (v && !strcmp(v, "accuracy")) o->objective = SR_OBJ_ACCURACY;
        else if (v && !strcmp(v, "mnas")) {
            o->objective = SR_OBJ_MNAS;
            o->latency = dartsc_latency_ms;
        } else {
            fprintf(stderr, "dartsc %s: --objective: '%s' is not accuracy or mnas\n", cmd, v ? v : "");
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--data") || !strcmp(a, "--strategy")) {
        if (!v) {
            fprintf(stderr, "dartsc %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (a[2] == 'd') {
            ov->data = v;
            return 1;
        }
        static const struct { const char *name; sr_strategy s; } st[] = {
            {"darts", SR_DARTS}, {"joint", SR_JOINT}, {"coord", SR_COORD}, {"random", SR_RANDOM}, {"evolution", SR_EVOLUTION}, {"rl", SR_RL}, {"enas", SR_ENAS}};
        for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
            if (!strcmp(v, st[i].name)) {
                o->strategy = st[i].s;
                return 1;
            }
        fprintf(stderr, "dartsc %s: --strategy: '%s' is not darts, joint, coord, random, evolution, rl or enas\n", cmd, v);
        return -1;
    }
    return 0;
}

void dartsc_search_overrides_init(dartsc_search_overrides *ov) {
    memset(ov, 0, sizeof *ov);
    ov->seed = -1;
    ov->subset = -1;
}

void dartsc_search_overrides_apply(const dartsc_search_overrides *ov, ir_space *sp) {
    if (ov->epochs) sp->search.epochs = (int)ov->epochs;
    if (ov->batch) sp->search.batch = (int)ov->batch;
    if (ov->order) sp->search.order = (int)ov->order;
    if (ov->seed >= 0) {
        /* one seed for the whole run: the search and the retraining */
        sp->search.seed = (uint64_t)ov->seed;
        sp->train.seed = (uint64_t)ov->seed;
    }
    if (ov->subset >= 0) sp->search.subset = (int)ov->subset;
    if (ov->data) snprintf(sp->data_path, sizeof sp->data_path, "%s", ov->data);
}

const char *dartsc_strategy_name(sr_strategy s) {
    static const char *names[] = {"darts", "joint", "coord", "random", "evolution", "rl", "enas"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}
