/* test_ir.c — the graph IR: op tables, builders with shape inference and their errors,
 * the verifier, dumps, statistics, and the DARTS supernet lowering's structure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "ir/space.h"

Test(ir, op_tables_cover_every_op) {
    for (int op = 0; op < IR_OP_COUNT; op++) {
        cr_expect(strcmp(ir_op_name((ir_op)op), "?") != 0, "op %d has no name", op);
        cr_expect(ir_op_arity((ir_op)op) >= -1);
    }
    cr_expect_str_eq(ir_op_name(IR_OP_CONV2D), "conv2d");
    cr_expect_eq(ir_op_arity(IR_OP_BATCHNORM), 5);
    cr_expect_eq(ir_op_arity(IR_OP_CONCAT), -1);
}

Test(ir, conv_shapes_follow_pytorch_formula) {
    ir_graph *g = ir_graph_new("t");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){2, 8, 15, 16});
    int w = ir_param(g, "w", IR_ROLE_WEIGHT, 4, (int64_t[]){8, 1, 5, 5}, ir_init_kaiming_uniform(25));
    int y = ir_conv2d(g, x, w, 2, 2, 4, 4, 2, 2, 8, "dil5_s2"); /* dilated depthwise 5x5, pad 4, stride 2 */
    cr_assert(y >= 0, "%s", ir_graph_error(g));
    const ir_node *n = ir_graph_node(g, y);
    /* floor((15 + 8 - 2*4 - 1)/2) + 1 = 8, floor((16 + 8 - 9)/2) + 1 = 8 */
    cr_expect_eq(n->shape[2], 8);
    cr_expect_eq(n->shape[3], 8);
    int w2 = ir_param(g, "w2", IR_ROLE_WEIGHT, 4, (int64_t[]){4, 8, 1, 7}, ir_init_kaiming_uniform(56));
    int y2 = ir_conv2d(g, x, w2, 1, 1, 0, 3, 1, 1, 1, "1x7");
    cr_assert(y2 >= 0);
    cr_expect_eq(ir_graph_node(g, y2)->shape[2], 15);
    cr_expect_eq(ir_graph_node(g, y2)->shape[3], 16);
    cr_expect_eq(ir_verify(g), 0);
    ir_graph_free(g);
}

Test(ir, builder_errors_name_the_node_and_stick) {
    ir_graph *g = ir_graph_new("t");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){2, 3, 8, 8});
    int w = ir_param(g, "w", IR_ROLE_WEIGHT, 4, (int64_t[]){4, 5, 3, 3}, ir_init_zeros());
    cr_expect_eq(ir_conv2d(g, x, w, 1, 1, 1, 1, 1, 1, 1, "bad_conv"), -1);
    cr_assert(ir_graph_error(g));
    cr_expect(strstr(ir_graph_error(g), "bad_conv") && strstr(ir_graph_error(g), "input channels"), "%s", ir_graph_error(g));
    /* later builders fail too, so one check at the end suffices */
    cr_expect_eq(ir_unary(g, IR_OP_RELU, x, "r"), -1);
    ir_graph_free(g);
}

Test(ir, shape_mismatches_are_errors) {
    ir_graph *g = ir_graph_new("t");
    int a = ir_input(g, "a", IR_DTYPE_F32, 4, (int64_t[]){2, 3, 8, 8});
    int b = ir_input(g, "b", IR_DTYPE_F32, 4, (int64_t[]){2, 3, 4, 4});
    cr_expect_eq(ir_nary(g, IR_OP_ADD, 2, (int[]){a, b}, "add"), -1);
    cr_expect(strstr(ir_graph_error(g), "differ in shape"));
    ir_graph_free(g);

    g = ir_graph_new("t");
    a = ir_input(g, "a", IR_DTYPE_F32, 4, (int64_t[]){2, 3, 8, 8});
    cr_expect_eq(ir_pool(g, IR_OP_MAXPOOL, a, 3, 1, 2, "pool"), -1, "pad above k/2 must be refused");
    ir_graph_free(g);

    g = ir_graph_new("t");
    a = ir_input(g, "a", IR_DTYPE_F32, 2, (int64_t[]){2, 3});
    int l = ir_input(g, "l", IR_DTYPE_F32, 1, (int64_t[]){2});
    cr_expect_eq(ir_softmax_ce(g, a, l, "ce"), -1, "float labels must be refused");
    ir_graph_free(g);
}

Test(ir, mixed_op_checks_columns) {
    ir_graph *g = ir_graph_new("t");
    int a = ir_input(g, "a", IR_DTYPE_F32, 4, (int64_t[]){1, 2, 4, 4});
    int al = ir_param(g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){3, 4}, ir_init_normal(1e-3f));
    cr_expect_eq(ir_mixed(g, al, 0, 2, (int[]){a, a}, (int[]){1, 1}, "dup"), -1);
    ir_graph_free(g);
    g = ir_graph_new("t");
    a = ir_input(g, "a", IR_DTYPE_F32, 4, (int64_t[]){1, 2, 4, 4});
    al = ir_param(g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){3, 4}, ir_init_normal(1e-3f));
    cr_expect_eq(ir_mixed(g, al, 3, 1, (int[]){a}, (int[]){0}, "row"), -1, "row 3 of 3 must be refused");
    ir_graph_free(g);
    g = ir_graph_new("t");
    a = ir_input(g, "a", IR_DTYPE_F32, 4, (int64_t[]){1, 2, 4, 4});
    al = ir_param(g, "alpha", IR_ROLE_WEIGHT, 2, (int64_t[]){3, 4}, ir_init_normal(1e-3f));
    int m = ir_mixed(g, al, 0, 1, (int[]){a}, (int[]){2}, "m");
    cr_assert(m >= 0);
    cr_expect_eq(ir_verify(g), -1, "alpha must be an architecture parameter");
    ir_graph_free(g);
}

Test(ir, dumps_show_ops_and_names) {
    ir_graph *g = ir_graph_new("dumpme");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){1, 2, 4, 4});
    ir_unary(g, IR_OP_RELU, x, "act");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_dump_text(g, f);
    ir_dump_dot(g, f);
    fclose(f);
    cr_expect(strstr(buf, "%1 = relu(%0) : (1,2,4,4)  # act"), "%s", buf);
    cr_expect(strstr(buf, "digraph \"dumpme\""));
    cr_expect(strstr(buf, "n0 -> n1;"));
    free(buf);
    ir_graph_free(g);
}

/* The CIFAR-10 supernet of REFERENCE.md: 14 edges x 8 ops per cell type, 1,930,618
 * weights (the PyTorch reference's count, see test_parity_torch), ~300 M multiply-adds
 * per image (REFERENCE.md: "about 300 M multiply-adds per image"). */
Test(space, darts_cifar10_supernet_structure) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    cr_expect_eq(ir_cell_num_edges(&sp.normal), 14);
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, 2, &net), 0, "%s", net.error);
    ir_stats st;
    ir_graph_stats(net.graph, &st);
    cr_expect_eq(st.weight_params, 1930618);
    cr_expect_eq(st.arch_params, 2 * 14 * 8);
    cr_expect(st.macs_per_sample > 290e6 && st.macs_per_sample < 310e6, "%lld MACs", (long long)st.macs_per_sample);
    int mixed = 0;
    for (int i = 0; i < ir_graph_num_nodes(net.graph); i++) mixed += ir_graph_node(net.graph, i)->op == IR_OP_MIXED;
    cr_expect_eq(mixed, 8 * 14);
    cr_expect(ir_graph_find(net.graph, "cells.2._ops.0._ops.3.conv_1.weight") >= 0, "reduction skip is FactorizedReduce");
    cr_expect(ir_graph_find(net.graph, "cells.3.preprocess0.conv_2.weight") >= 0, "after a reduction s0 is FactorizedReduce");
    cr_expect(ir_graph_find(net.graph, "cells.0._ops.0._ops.1.1.running_mean") >= 0, "search pools carry BN");
    ir_net_free(&net);
}

Test(space, edges_enumerate_node_major) {
    ir_cell c;
    ir_cell_darts_default(&c);
    int node, src;
    cr_assert_eq(ir_cell_edge(&c, 0, &node, &src), 0);
    cr_expect(node == 0 && src == 0);
    cr_assert_eq(ir_cell_edge(&c, 4, &node, &src), 0);
    cr_expect(node == 1 && src == 2);
    cr_assert_eq(ir_cell_edge(&c, 13, &node, &src), 0);
    cr_expect(node == 3 && src == 4);
    cr_expect_eq(ir_cell_edge(&c, 14, &node, &src), -1);
}

Test(space, check_rejects_odd_maps_before_reduction) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    sp.in_h = sp.in_w = 30; /* 30 -> 15 -> reduction of an odd map */
    char err[256];
    cr_expect_eq(ir_space_check(&sp, err, sizeof err), -1);
    cr_expect(strstr(err, "must be even"), "%s", err);
}

#include "frontend/fe.h"

/* The DSL's darts_cifar10 example lowers to the same supernet as the built-in space: the
 * same parameters in the same order with the same shapes, 1,930,618 weights as PyTorch. */
Test(space, dsl_darts_cifar10_lowers_to_the_reference_supernet) {
    ir_space dsl, ref;
    fe_diags d;
    fe_diags_init(&d);
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/darts_cifar10.dartsc", DARTSC_SOURCE_DIR);
    cr_assert_eq(fe_compile_file(path, &dsl, &d), 0);
    fe_diags_free(&d);
    ir_space_darts_cifar10(&ref);
    ir_net a, b;
    cr_assert_eq(ir_space_build_supernet(&dsl, 2, &a), 0, "%s", a.error);
    cr_assert_eq(ir_space_build_supernet(&ref, 2, &b), 0, "%s", b.error);
    cr_assert_eq(ir_graph_num_nodes(a.graph), ir_graph_num_nodes(b.graph));
    for (int i = 0; i < ir_graph_num_nodes(a.graph); i++) {
        const ir_node *x = ir_graph_node(a.graph, i), *y = ir_graph_node(b.graph, i);
        cr_assert(x->op == y->op && !strcmp(x->name, y->name) && x->ndim == y->ndim, "node %d: %s vs %s", i, x->name, y->name);
        for (int k = 0; k < x->ndim; k++) cr_assert_eq(x->shape[k], y->shape[k], "%s", x->name);
    }
    ir_stats st;
    ir_graph_stats(a.graph, &st);
    cr_expect_eq(st.weight_params, 1930618);
    ir_net_free(&a);
    ir_net_free(&b);
}
