/* fairdarts.c — FairDARTS (Chu et al., ECCV 2020) over the DARTS loop: the zero-one loss
 * on alpha and the threshold derivation; the sigmoid supernet is lowered by ir/space.c
 * (WMIXED over sigmoid(alpha)). See successors.h. */
#include "successors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

double sr_fair_zero_one(const float *alpha, int64_t n, float *grad, float weight) {
    /* L01 = -(1/N) sum (s - 1/2)^2, dL01/dalpha = -(2/N) (s - 1/2) s (1 - s) */
    double l = 0;
    for (int64_t i = 0; i < n; i++) {
        const double s = sigmoid(alpha[i]), d = s - 0.5;
        l -= d * d;
        if (grad) grad[i] += (float)(weight * (-2.0 / (double)n) * d * s * (1.0 - s));
    }
    return n > 0 ? l / (double)n : 0.0;
}

int sr_fair_add_zero_one(rt_plan *p, float weight, double *l01) {
    rt_backend *be = rt_plan_backend(p);
    rt_group ga = rt_plan_group(p, IR_ROLE_ARCH);
    if (!l01 && be->zero_one_grad) { /* the same arithmetic on the backend: no round trip */
        be->zero_one_grad(be, ga.grad, ga.data, ga.n, weight);
        return 0;
    }
    float *h = malloc(sizeof *h * (size_t)(2 * ga.n + 1));
    if (!h) return -1;
    be->download(be, h, ga.data, sizeof *h * (size_t)ga.n);
    be->download(be, h + ga.n, ga.grad, sizeof *h * (size_t)ga.n);
    double l = sr_fair_zero_one(h, ga.n, h + ga.n, weight);
    be->upload(be, ga.grad, h + ga.n, sizeof *h * (size_t)ga.n);
    if (l01) *l01 = l;
    free(h);
    return 0;
}

void sr_fair_derive(const ir_cell *cell, const float *alpha, double threshold, ir_geno_cell *out) {
    memset(out, 0, sizeof *out);
    out->n_nodes = cell->n_nodes;
    const int none = ir_cell_none_index(cell), O = cell->n_ops;
    const int keep = cell->k_keep < IR_MAX_KEEP ? cell->k_keep : IR_MAX_KEEP;
    int row = 0;
    for (int i = 0; i < cell->n_nodes; i++) {
        /* the node's (edge, op) pairs, strongest first; a stable insertion keeps equal
           strengths in (edge, op) order */
        double str[(2 + IR_MAX_NODES) * IR_MAX_CANDS];
        ir_geno_edge pr[(2 + IR_MAX_NODES) * IR_MAX_CANDS];
        int n = 0;
        for (int j = 0; j < cell->n_inputs + i; j++) {
            if (!((cell->edges[i] >> j) & 1)) continue;
            for (int o = 0; o < O; o++) {
                if (o == none) continue;
                const double s = sigmoid(alpha[(size_t)row * O + o]);
                int pos = n;
                while (pos > 0 && s > str[pos - 1]) {
                    str[pos] = str[pos - 1];
                    pr[pos] = pr[pos - 1];
                    pos--;
                }
                str[pos] = s;
                pr[pos] = (ir_geno_edge){.op = o, .src = j};
                n++;
            }
            row++;
        }
        int k = 0;
        while (k < keep && k < n && str[k] > threshold) {
            out->e[i][k] = pr[k];
            k++;
        }
        if (k == 0 && n > 0) out->e[i][k++] = pr[0];
        out->n_edges[i] = k;
    }
}
