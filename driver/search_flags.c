/* search_flags.c — the search options `dartsc search` and `dartsc run` share: each flag
 * either overrides a DSL setting of the space or sets an sr_options field. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

const char *dartsc_search_flags_usage =
    "  search options (override the space's `search` settings):\n"
    "    --strategy darts|joint|coord|random|evolution|p-darts|darts-plus|sharp-darts\n"
    "                          (default: the search block's `strategy`, else darts)\n"
    "    --order 1|2  --epochs N  --batch N  --seed N  --subset N  --data PATH\n"
    "    --candidates N  --population N  --sample N  --candidate-epochs N   (random, evolution)\n"
    "    --checkpoint-every N  --checkpoint-minutes M   also checkpoint every N steps / M minutes (0: off;\n"
    "                                                   default 10 minutes; epoch ends always)\n";

static const struct { const char *name; sr_strategy s; } strategies[] = {
    {"darts", SR_DARTS}, {"joint", SR_JOINT}, {"coord", SR_COORD}, {"random", SR_RANDOM}, {"evolution", SR_EVOLUTION},
    {"p-darts", SR_PDARTS}, {"darts-plus", SR_DARTS_PLUS}, {"sharp-darts", SR_SHARP}};

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
    if (!strcmp(a, "--data") || !strcmp(a, "--strategy")) {
        if (!v) {
            fprintf(stderr, "dartsc %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (a[2] == 'd') {
            ov->data = v;
            return 1;
        }
        for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
            if (!strcmp(v, strategies[i].name)) {
                o->strategy = strategies[i].s;
                ov->strategy = strategies[i].name;
                return 1;
            }
        fprintf(stderr, "dartsc %s: --strategy: '%s' is not darts, joint, coord, random, evolution, p-darts, darts-plus "
                "or sharp-darts\n", cmd, v);
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
    if (ov->strategy) snprintf(sp->search.strategy, sizeof sp->search.strategy, "%s", ov->strategy);
}

void dartsc_search_strategy(const ir_space *sp, sr_options *o) {
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
        if (!strcmp(sp->search.strategy, strategies[i].name)) o->strategy = strategies[i].s;
}

const char *dartsc_strategy_name(sr_strategy s) {
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
        if (strategies[i].s == s) return strategies[i].name;
    return "?";
}
