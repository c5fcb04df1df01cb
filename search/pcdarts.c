/* pcdarts.c — PC-DARTS (Xu et al., ICLR 2020) over the DARTS loop: the supernet options
 * (partial channels, edge normalisation; lowered by ir/space.c) and the derivation with
 * beta. See successors.h. */
#include "successors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "genotype.h"

int sr_succ_is_bilevel(sr_strategy s) {
    return s == SR_DARTS || s == SR_PC_DARTS || s == SR_FAIR_DARTS || s == SR_PDARTS || s == SR_DARTS_PLUS ||
           s == SR_SHARP_DARTS || s == SR_PROXYLESS;
}

void sr_succ_supernet_opts(const ir_space *sp, sr_strategy s, ir_supernet_opts *so) {
    memset(so, 0, sizeof *so);
    if (s == SR_PC_DARTS) {
        so->partial = sp->search.partial_channels > 0 ? sp->search.partial_channels : SR_PC_K_DEFAULT;
        so->edge_norm = !sp->search.edge_norm_off;
    } else if (s == SR_FAIR_DARTS) {
        so->sigmoid = 1;
    }
}

void sr_pc_derive(const ir_cell *cell, const float *alpha, const float *const *betas, ir_geno_cell *out) {
    const int E = ir_cell_num_edges(cell), O = cell->n_ops;
    double *w = malloc(sizeof *w * (size_t)(E > 0 ? E : 1) * (size_t)O);
    if (!w) {
        memset(out, 0, sizeof *out);
        return;
    }
    int row = 0;
    for (int i = 0; i < cell->n_nodes; i++) {
        const int ne = __builtin_popcount(cell->edges[i]);
        double bs[2 + IR_MAX_NODES], bmax = -INFINITY, bsum = 0;
        for (int k = 0; k < ne; k++) {
            bs[k] = betas ? betas[i][k] : 0.0;
            bmax = bs[k] > bmax ? bs[k] : bmax;
        }
        for (int k = 0; k < ne; k++) bsum += bs[k] = exp(bs[k] - bmax);
        for (int k = 0; k < ne; k++, row++) {
            const float *a = alpha + (size_t)row * O;
            double m = a[0], s = 0;
            for (int o = 1; o < O; o++) m = a[o] > m ? a[o] : m;
            for (int o = 0; o < O; o++) s += w[(size_t)row * O + o] = exp((double)a[o] - m);
            for (int o = 0; o < O; o++) w[(size_t)row * O + o] *= bs[k] / bsum / s;
        }
    }
    sr_derive_weights(cell, w, out);
    free(w);
}
