/* verify.c — the IR verifier, run after every pass: nodes in topological order,
 * arity and optional inputs, parameters and inputs without inputs, shapes re-inferred
 * and equal to the stored ones, exactly one loss if any is flagged. */
#include "ir.h"
#include "ir_internal.h"

#include <string.h>

int ir_verify(ir_graph *g) {
    if (g->error[0]) return -1;
    int losses = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if ((unsigned)n->op >= IR_OP_COUNT) { ir_graph_set_error(g, "verify: node %d has bad op %d", i, (int)n->op); return -1; }
        if (n->flags & IR_FLAG_LOSS) {
            losses++;
            if (n->op != IR_OP_SOFTMAX_CE && !(n->ndim == 1 && n->shape[0] == 1)) {
                ir_graph_set_error(g, "verify: loss '%s' is not a scalar", n->name);
                return -1;
            }
        }
        if (n->op == IR_OP_INPUT || n->op == IR_OP_PARAM) {
            if (n->n_inputs != 0) { ir_graph_set_error(g, "verify: %s '%s' has inputs", ir_op_name(n->op), n->name); return -1; }
            int want = n->op == IR_OP_INPUT ? (n->role == IR_ROLE_INPUT) :
                (n->role == IR_ROLE_WEIGHT || n->role == IR_ROLE_ARCH || n->role == IR_ROLE_BUFFER);
            if (!want) { ir_graph_set_error(g, "verify: '%s' has role %s", n->name, ir_role_name(n->role)); return -1; }
            continue;
        }
        if (n->role != IR_ROLE_ACTIVATION) { ir_graph_set_error(g, "verify: op node '%s' has role %s", n->name, ir_role_name(n->role)); return -1; }
        for (int j = 0; j < n->n_inputs; j++) {
            if (n->inputs[j] >= i) {
                ir_graph_set_error(g, "verify: node %d '%s' uses node %d, which is not before it", i, n->name, n->inputs[j]);
                return -1;
            }
        }
        int nd = 0;
        int64_t sh[IR_MAX_DIMS] = {0};
        char err[384];
        if (ir_infer_shape(g, n->op, n->n_inputs, n->inputs, n->iattr, n->fattr, &nd, sh, err, sizeof err) != 0) {
            ir_graph_set_error(g, "verify: node %d '%s': %s", i, n->name, err);
            return -1;
        }
        if (nd != n->ndim || memcmp(sh, n->shape, (size_t)nd * sizeof *sh) != 0) {
            ir_graph_set_error(g, "verify: node %d '%s': stored shape differs from inferred shape", i, n->name);
            return -1;
        }
        if (n->op == IR_OP_BATCHNORM) {
            for (int j = 3; j < 5; j++)
                if (g->nodes[n->inputs[j]].op != IR_OP_PARAM || g->nodes[n->inputs[j]].role != IR_ROLE_BUFFER) {
                    ir_graph_set_error(g, "verify: batchnorm '%s': running statistics must be buffers", n->name);
                    return -1;
                }
        }
        if (n->op == IR_OP_MIXED && g->nodes[n->inputs[0]].role != IR_ROLE_ARCH) {
            ir_graph_set_error(g, "verify: mixed '%s': alpha must be an architecture parameter", n->name);
            return -1;
        }
    }
    if (losses > 1) { ir_graph_set_error(g, "verify: %d nodes flagged as loss (at most one)", losses); return -1; }
    return 0;
}
