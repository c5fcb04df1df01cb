/* dartsplus.c — DARTS+ (Liang et al. 2019): early stopping of the DARTS search, at an
 * epoch's end, when (1) the derived normal cell holds two or more skip connections, or
 * (2) the ranking of the learnable ops' architecture weights has been stable for a number
 * of epochs. cnn.c calls sr_dplus_check at each epoch's end of the `darts-plus` strategy,
 * keeps the count in its checkpoint and writes RUN_DIR/stop.json when it stops. */
#include <stdio.h>
#include <string.h>

#include "genotype.h"
#include "search.h"

/* The paper's "learnable operations": the candidates with weights. */
static int learnable(ir_cand_kind k) {
    return k == IR_CAND_SEP_CONV || k == IR_CAND_DIL_CONV || k == IR_CAND_CONV || k == IR_CAND_CONV_1xK_Kx1 ||
           k == IR_CAND_SHARP_SEP_CONV;
}

/* The learnable ops of one edge ordered by alpha, largest first (ties: lower index first). */
static int rank_edge(const ir_cell *c, const float *row, int *order) {
    int n = 0;
    for (int o = 0; o < c->n_ops; o++)
        if (learnable(c->ops[o].kind)) order[n++] = o;
    for (int i = 1; i < n; i++) /* insertion sort: stable, at most 16 ops */
        for (int j = i; j > 0 && row[order[j]] > row[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    return n;
}

static int same_ranking(const ir_cell *c, const float *a, const float *b) {
    int E = ir_cell_num_edges(c);
    for (int e = 0; e < E; e++) {
        int ra[IR_MAX_CANDS], rb[IR_MAX_CANDS];
        int n = rank_edge(c, a + (size_t)e * c->n_ops, ra);
        rank_edge(c, b + (size_t)e * c->n_ops, rb);
        if (memcmp(ra, rb, (size_t)n * sizeof *ra)) return 0;
    }
    return 1;
}

int sr_dplus_check(const ir_space *sp, const float *an, const float *ar, const float *prev_an, const float *prev_ar,
                   int64_t *stable, int64_t *value) {
    const ir_train_config *tc = &sp->search;
    if (tc->stop_skips > 0) {
        ir_geno_cell g;
        sr_derive(&sp->normal, an, &g);
        int skips = 0;
        for (int i = 0; i < g.n_nodes; i++)
            for (int k = 0; k < g.n_edges[i]; k++) skips += sp->normal.ops[g.e[i][k].op].kind == IR_CAND_SKIP;
        if (skips >= tc->stop_skips) {
            *value = skips;
            return SR_DPLUS_SKIPS;
        }
    }
    if (prev_an && prev_ar)
        *stable = same_ranking(&sp->normal, an, prev_an) && same_ranking(&sp->reduce, ar, prev_ar) ? *stable + 1 : 0;
    if (tc->stop_stable > 0 && *stable >= tc->stop_stable) {
        *value = *stable;
        return SR_DPLUS_STABLE;
    }
    return 0;
}

void sr_dplus_reason(const ir_train_config *tc, int64_t code, int64_t value, int64_t epoch, char *buf, size_t n) {
    if (code == SR_DPLUS_SKIPS)
        snprintf(buf, n, "after epoch %lld the derived normal cell has %lld skip connections (stop_skips %d)",
                 (long long)epoch, (long long)value, tc->stop_skips);
    else
        snprintf(buf, n, "after epoch %lld the ranking of the learnable ops' alpha has held for %lld epoch%s (stop_stable %d)",
                 (long long)epoch, (long long)value, value == 1 ? "" : "s", tc->stop_stable);
}
