/* labels.c — readable node names of an evaluation network (see ir_eval_labels in
 * space.h). The builder names nodes after the reference PyTorch modules
 * ("cells.3._ops.2.op.5") so that parameters match state_dict keys; model viewers and
 * ONNX users want the architecture instead: cell, node, edge, op and the op's part
 * ("cell3/node1/edge0/sep_conv_3x3/dw2"). This maps the first naming onto the second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "space.h"

/* Parts of a candidate op in the builder's order (".op.N" suffixes). */
static const char *part_name(ir_cand_kind kind, int idx) {
    static const char *sep[] = {"relu1", "dw1", "pw1", "bn1", "relu2", "dw2", "pw2", "bn2"};
    static const char *dil[] = {"relu", "dw", "pw", "bn"};
    static const char *conv[] = {"relu", "conv", "bn"};
    static const char *conv1k[] = {"relu", "conv_1xk", "conv_kx1", "bn"};
    switch (kind) {
    case IR_CAND_SEP_CONV:
    case IR_CAND_SHARP_SEP_CONV: return idx >= 0 && idx < 8 ? sep[idx] : NULL;
    case IR_CAND_DIL_CONV: return idx >= 0 && idx < 4 ? dil[idx] : NULL;
    case IR_CAND_CONV: return idx >= 0 && idx < 3 ? conv[idx] : NULL;
    case IR_CAND_CONV_1xK_Kx1: return idx >= 0 && idx < 4 ? conv1k[idx] : NULL;
    default: return NULL;
    }
}

static char *dup_printf(const char *fmt, const char *a, const char *b) {
    size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b ? b : "");
    return s;
}

/* The label of one node name, or NULL to keep the name. */
static char *label_of(const ir_space *sp, const ir_genotype *gt, const int *is_reduce, int layers, const char *name,
                      ir_op op) {
    char head[96], buf[320];
    int ci, x, y, used = 0;
    if (sscanf(name, "stem.%d%n", &x, &used) == 1 && !name[used])
        return dup_printf("stem/%s", x == 0 ? "conv" : "bn", NULL);
    if (sscanf(name, "cells.%d.%n", &ci, &used) != 1 || ci < 0 || ci >= layers) {
        if (!strcmp(name, "classifier")) return dup_printf("classifier", "", NULL);
        if (!strcmp(name, "global_pooling")) return dup_printf("global_pool", "", NULL);
        if (!strncmp(name, "auxiliary_head.", 15)) {
            snprintf(buf, sizeof buf, "%s", name + 15);
            for (char *q = buf; *q; q++)
                if (*q == '.') *q = '/';
            return dup_printf("aux_head/%s", buf, NULL);
        }
        return NULL;
    }
    const char *rest = name + used;
    snprintf(head, sizeof head, "cell%d", ci);
    const ir_cell *cell = is_reduce[ci] ? &sp->reduce : &sp->normal;
    const ir_geno_cell *gc = is_reduce[ci] ? &gt->reduce : &gt->normal;
    if (sscanf(rest, "preprocess%d.op.%d%n", &x, &y, &used) == 2 && !rest[used]) {
        snprintf(buf, sizeof buf, "%s/preprocess%d/%s", head, x, y == 0 ? "relu" : y == 1 ? "conv" : "bn");
        return dup_printf("%s", buf, NULL);
    }
    if (sscanf(rest, "preprocess%d.%n", &x, &used) == 1) {
        snprintf(buf, sizeof buf, "%s/preprocess%d/factorized_reduce/%s", head, x, rest + used);
        return dup_printf("%s", buf, NULL);
    }
    if (sscanf(rest, "node%d%n", &x, &used) == 1 && !rest[used]) {
        snprintf(buf, sizeof buf, "%s/node%d/sum", head, x);
        return dup_printf("%s", buf, NULL);
    }
    if (!strcmp(rest, "out")) {
        snprintf(buf, sizeof buf, "%s/%s", head, op == IR_OP_MEAN ? "mean" : "concat");
        return dup_printf("%s", buf, NULL);
    }
    int e;
    if (sscanf(rest, "_ops.%d%n", &e, &used) != 1) return NULL;
    const char *sub = rest + used;
    /* edge e in genotype order -> node i, slot k */
    int i = 0, k = e;
    while (i < gc->n_nodes && k >= gc->n_edges[i]) k -= gc->n_edges[i++];
    if (i >= gc->n_nodes) return NULL;
    const ir_cand *cand = &cell->ops[gc->e[i][k].op];
    int n = snprintf(buf, sizeof buf, "%s/node%d/edge%d/%s", head, i, k, cand->name);
    if (!*sub) return dup_printf("%s", buf, NULL);
    int part;
    if (sscanf(sub, ".op.%d%n", &part, &used) == 1 && !sub[used] && part_name(cand->kind, part))
        snprintf(buf + n, sizeof buf - (size_t)n, "/%s", part_name(cand->kind, part));
    else if (cand->kind == IR_CAND_SKIP && sub[0] == '.') /* FactorizedReduce at stride 2 */
        snprintf(buf + n, sizeof buf - (size_t)n, "/factorized_reduce/%s", sub + 1);
    else if (sub[0] == '.')
        snprintf(buf + n, sizeof buf - (size_t)n, "/%s", sub + 1);
    else
        return NULL;
    return dup_printf("%s", buf, NULL);
}

char **ir_eval_labels(const ir_space *sp, const ir_genotype *gt, int layers, const ir_graph *g) {
    if (layers <= 0) layers = sp->train_layers;
    int pos[IR_MAX_REDUCE], *is_reduce = calloc((size_t)layers, sizeof *is_reduce);
    char err[256];
    if (!is_reduce || ir_space_eval_reductions(sp, layers, pos, err, sizeof err)) {
        free(is_reduce);
        return NULL;
    }
    for (int r = 0; r < sp->n_reduce; r++) is_reduce[pos[r]] = 1;
    int n = ir_graph_num_nodes(g);
    char **labels = calloc((size_t)n, sizeof *labels);
    for (int i = 0; labels && i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op == IR_OP_PARAM || nd->op == IR_OP_INPUT) continue;
        labels[i] = label_of(sp, gt, is_reduce, layers, nd->name, nd->op);
    }
    free(is_reduce);
    return labels;
}

void ir_eval_labels_free(char **labels, int n) {
    if (!labels) return;
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
}
