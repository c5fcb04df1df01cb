/* search_flags.c — the search options `dartsc search` and `dartsc run` share: each flag
 * either overrides a DSL setting of the space or sets an sr_options field. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

const char *dartsc_search_flags_usage =
    "  search options (override the space's `search` settings):\n"
    "    --strategy darts|joint|coord|random|evolution|pc-darts|fair-darts|rl|enas|p-darts|darts-plus|\n"
    "               sharp-darts|proxyless   (default: the search block's `strategy`, else darts)\n"
    "    --partial-channels K  --edge-norm on|off   (pc-darts)\n"
    "    --latency-weight L  --latency-cache DIR   (proxyless: loss = CE + L * E[latency in ms], default 0.1,\n"
    "                                               0 off; the per-op latency table cached in DIR,\n"
    "                                               default the run directory)\n"
    "    --order 1|2  --epochs N  --batch N  --seed N  --subset N  --data PATH\n"
    "    --candidates N  --population N  --sample N  --candidate-epochs N   (random, evolution, rl)\n"
    "    --children N  --controller-hidden N   (rl, enas: children per controller step, LSTM units)\n"
    "    --objective accuracy|mnas  --target-latency MS   (random, evolution, rl: MnasNet's reward\n"
    "                                                   ACC * (LAT / MS)^-0.07, LAT of the candidate's C)\n"
    "    --pretext rotation   (darts, joint, coord, pc-darts, fair-darts, enas: search on predicting a\n"
    "                          0/90/180/270 rotation, no labels; the retraining uses the labels as usual)\n"
    "    --checkpoint-every N  --checkpoint-minutes M   also checkpoint every N steps / M minutes (0: off;\n"
    "                                                   default 10 minutes; epoch ends always)\n";

/* in sr_strategy's order */
static const char *const strategy_names[] = {"darts", "joint", "coord", "random", "evolution", "pc-darts",
                                             "fair-darts", "rl", "enas", "p-darts", "darts-plus", "sharp-darts",
                                             "proxyless"};
_Static_assert(sizeof strategy_names / sizeof strategy_names[0] == SR_PROXYLESS + 1, "a name for every sr_strategy");

static int strategy_from_name(const char *v, sr_strategy *s) {
    for (size_t i = 0; i < sizeof strategy_names / sizeof strategy_names[0]; i++)
        if (!strcmp(v, strategy_names[i])) {
            *s = (sr_strategy)i;
            return 0;
        }
    return -1;
}

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
        {"--partial-channels", 1, 64, offsetof(dartsc_search_overrides, partial_channels), 1},
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
    if (!strcmp(a, "--edge-norm")) {
        if (!v || (strcmp(v, "on") && strcmp(v, "off"))) {
            fprintf(stderr, "dartsc %s: --edge-norm: '%s' is not on or off\n", cmd, v ? v : "");
            return -1;
        }
        ov->edge_norm = strcmp(v, "on") ? 2 : 1;
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
    if (!strcmp(a, "--latency-weight")) { /* lambda per millisecond */
        char *end = NULL;
        double x = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !(x >= 0 && x <= 1e6)) {
            fprintf(stderr, "dartsc %s: %s: '%s' is not a latency weight (a number in [0, 1e6], per millisecond)\n", cmd,
                    a, v ? v : "");
            return -1;
        }
        ov->latency_weight = x;
        return 1;
    }
    if (!strcmp(a, "--latency-cache")) {
        if (!v || !v[0]) {
            fprintf(stderr, "dartsc %s: --latency-cache needs a directory\n", cmd);
            return -1;
        }
        ov->latency_cache = v;
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
        if (strategy_from_name(v, &o->strategy)) {
            fprintf(stderr, "dartsc %s: --strategy: '%s' is not darts, joint, coord, random, evolution, pc-darts, "
                            "fair-darts, rl, enas, p-darts, darts-plus, sharp-darts or proxyless\n", cmd, v);
            return -1;
        }
        ov->strategy_given = 1;
        return 1;
    }
    return 0;
}

int dartsc_search_strategy_from_space(const dartsc_search_overrides *ov, const ir_space *sp, sr_options *o) {
    if (ov->strategy_given || !sp->search.strategy[0]) return 0;
    if (strategy_from_name(sp->search.strategy, &o->strategy)) {
        fprintf(stderr, "dartsc: the space's strategy '%s' is unknown\n", sp->search.strategy);
        return -1;
    }
    return 0;
}

void dartsc_search_overrides_init(dartsc_search_overrides *ov) {
    memset(ov, 0, sizeof *ov);
    ov->seed = -1;
    ov->subset = -1;
    ov->latency_weight = -1;
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
    if (ov->partial_channels) sp->search.partial_channels = (int)ov->partial_channels;
    if (ov->edge_norm) sp->search.edge_norm_off = ov->edge_norm == 2;
    if (ov->latency_weight >= 0) sp->search.latency_weight = (float)ov->latency_weight;
}

const char *dartsc_strategy_name(sr_strategy s) {
    return (unsigned)s < sizeof strategy_names / sizeof strategy_names[0] ? strategy_names[s] : "?";
}
