/* fold.c — see fold.h. Scales are computed in double so the folded weights are the
 * correctly rounded products; the remaining difference from the unfolded network is the
 * reassociation of (w*x)*s versus (w*s)*x, well inside 1e-4 relative. */
#include "fold.h"

#include <math.h>
#include <stdlib.h>

int cg_fold_init(cg_fold *f, const ir_graph *g, int enable) {
    int n = ir_graph_num_nodes(g);
    f->conv_bn = malloc((size_t)(n ? n : 1) * sizeof *f->conv_bn);
    f->folded = calloc((size_t)(n ? n : 1), sizeof *f->folded);
    int *uses = calloc((size_t)(n ? n : 1), sizeof *uses);
    if (!f->conv_bn || !f->folded || !uses) {
        free(uses);
        cg_fold_free(f);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        f->conv_bn[i] = -1;
        const ir_node *nd = ir_graph_node(g, i);
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) uses[nd->inputs[j]]++;
    }
    for (int i = 0; enable && i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op != IR_OP_BATCHNORM) continue;
        int src = nd->inputs[0];
        const ir_node *s = ir_graph_node(g, src);
        if (s->op == IR_OP_CONV2D && uses[src] == 1 && !(s->flags & IR_FLAG_OUTPUT)) {
            f->conv_bn[src] = i;
            f->folded[i] = 1;
        }
    }
    free(uses);
    return 0;
}

void cg_fold_free(cg_fold *f) {
    free(f->conv_bn);
    free(f->folded);
    f->conv_bn = f->folded = NULL;
}

void cg_bn_affine(float *scale, float *shift, const float *gamma, const float *beta, const float *mean,
                  const float *var, float eps, int C) {
    for (int c = 0; c < C; c++) {
        double s = (gamma ? gamma[c] : 1.0) / sqrt((double)var[c] + (double)eps);
        scale[c] = (float)s;
        shift[c] = (float)((beta ? beta[c] : 0.0) - (double)mean[c] * s);
    }
}

void cg_fold_conv_bn(float *w_out, float *b_out, const float *w, const float *conv_bias, int K, int64_t per_k,
                     const float *gamma, const float *beta, const float *mean, const float *var, float eps) {
    for (int k = 0; k < K; k++) {
        double s = (gamma ? gamma[k] : 1.0) / sqrt((double)var[k] + (double)eps);
        for (int64_t i = 0; i < per_k; i++) w_out[k * per_k + i] = (float)(w[k * per_k + i] * s);
        double b = conv_bias ? conv_bias[k] : 0.0;
        b_out[k] = (float)((beta ? beta[k] : 0.0) + (b - (double)mean[k]) * s);
    }
}
