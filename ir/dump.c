/* dump.c — text and Graphviz DOT dumps of a graph (dartsc check --dump-ir / --dot). */
#include "ir.h"
#include "ir_internal.h"

static void print_shape(FILE *f, const ir_node *n) {
    fputc('(', f);
    for (int i = 0; i < n->ndim; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)n->shape[i]);
    fputc(')', f);
}

void ir_dump_text(const ir_graph *g, FILE *f) {
    fprintf(f, "graph %s  # %d nodes\n", g->name, g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        fprintf(f, "%%%d = %s", i, ir_op_name(n->op));
        if (n->op == IR_OP_PARAM || n->op == IR_OP_INPUT) fprintf(f, "[%s]", ir_role_name(n->role));
        fputc('(', f);
        for (int j = 0; j < n->n_inputs; j++) {
            if (n->inputs[j] < 0) fprintf(f, "%s-", j ? ", " : "");
            else fprintf(f, "%s%%%d", j ? ", " : "", n->inputs[j]);
        }
        fputc(')', f);
        switch (n->op) {
        case IR_OP_CONV2D:
            fprintf(f, " stride=%lldx%lld pad=%lldx%lld dil=%lldx%lld groups=%lld",
                    (long long)n->iattr[0], (long long)n->iattr[1], (long long)n->iattr[2], (long long)n->iattr[3],
                    (long long)n->iattr[4], (long long)n->iattr[5], (long long)n->iattr[6]);
            break;
        case IR_OP_BATCHNORM:
            fprintf(f, " affine=%lld batch_stats=%lld eps=%g", (long long)n->iattr[0], (long long)n->iattr[1], n->fattr[0]);
            break;
        case IR_OP_MAXPOOL: case IR_OP_AVGPOOL:
            fprintf(f, " k=%lld stride=%lld pad=%lld", (long long)n->iattr[0], (long long)n->iattr[1], (long long)n->iattr[2]);
            break;
        case IR_OP_ZERO: fprintf(f, " stride=%lld", (long long)n->iattr[0]); break;
        case IR_OP_MIXED: case IR_OP_WMIXED:
            fprintf(f, " row=%lld cols=[", (long long)n->iattr[IR_A_MIXED_ROW]);
            for (int j = 1; j < n->n_inputs; j++) fprintf(f, "%s%lld", j > 1 ? "," : "", (long long)n->iattr[IR_A_MIXED_COL0 + j - 1]);
            fputc(']', f);
            break;
        case IR_OP_SLICE: fprintf(f, " start=%lld len=%lld", (long long)n->iattr[0], (long long)n->iattr[1]); break;
        case IR_OP_SHUFFLE: fprintf(f, " groups=%lld", (long long)n->iattr[IR_A_SHUFFLE_GROUPS]); break;
        case IR_OP_SCALE: case IR_OP_DROPOUT: case IR_OP_DROP_PATH: fprintf(f, " p=%g", n->fattr[0]); break;
        default: break;
        }
        fputs(" : ", f);
        print_shape(f, n);
        fprintf(f, "  # %s", n->name);
        if (n->loc.file) fprintf(f, " @%s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
        fputc('\n', f);
    }
}

static void dot_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

void ir_dump_dot(const ir_graph *g, FILE *f) {
    fputs("digraph \"", f);
    dot_escape(f, g->name);
    fputs("\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n", f);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->op == IR_OP_PARAM) continue; /* parameters clutter the picture; they show in the text dump */
        fprintf(f, "  n%d [label=\"%s\\n", i, ir_op_name(n->op));
        dot_escape(f, n->name);
        fputs("\\n", f);
        for (int d = 0; d < n->ndim; d++) fprintf(f, "%s%lld", d ? "x" : "", (long long)n->shape[d]);
        fputs("\"", f);
        if (n->op == IR_OP_INPUT) fputs(", shape=ellipse", f);
        if (n->op == IR_OP_MIXED) fputs(", style=filled, fillcolor=\"#fde9c9\"", f);
        fputs("];\n", f);
        for (int j = 0; j < n->n_inputs; j++) {
            int s = n->inputs[j];
            if (s < 0 || g->nodes[s].op == IR_OP_PARAM) continue;
            fprintf(f, "  n%d -> n%d;\n", s, i);
        }
    }
    fputs("}\n", f);
}
