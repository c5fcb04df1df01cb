/* test_enas.c — ENAS (search/enas.c): a child set on the supernet by one-hot alpha rows
 * computes exactly the child (the weights of every op it does not use get a zero gradient
 * and can change without changing one bit of the loss; the ones it uses get gradients),
 * and an ENAS search stopped mid-epoch resumes to the uninterrupted run's checkpoint and
 * genotype, byte for byte. Fashion-MNIST, the tiny network of test_baselines.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "pipeline/pipeline.h"
#include "search/search.h"
#include "testutil.h"

/* A child: node i takes inputs (i, i+1) with ops sep_conv_3x3, dil_conv_3x3 (normal) and
 * max_pool_3x3, sep_conv_5x5 (reduce). */
static void child(ir_genotype *g) {
    memset(g, 0, sizeof *g);
    ir_geno_cell *c[2] = {&g->normal, &g->reduce};
    const int ops[2][2] = {{4, 6}, {1, 5}};
    for (int t = 0; t < 2; t++) {
        c[t]->n_nodes = 3;
        for (int i = 0; i < 3; i++) {
            c[t]->n_edges[i] = 2;
            c[t]->e[i][0] = (ir_geno_edge){.src = i, .op = ops[t][0]};
            c[t]->e[i][1] = (ir_geno_edge){.src = i + 1, .op = ops[t][1]};
        }
    }
}

Test(enas, a_child_on_the_supernet_depends_on_its_own_ops_only) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    sp.search.epochs = 2;
    ir_net net;
    char err[1024];
    cr_assert_eq(ir_space_build_supernet(&sp, 8, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 3, .grads = RT_GRAD_W}, err, sizeof err);
    cr_assert(p, "%s", err);
    float x[8 * 28 * 28];
    int32_t y[8];
    tu_fill_uniform(x, 8 * 28 * 28, -1, 1, 5);
    for (int i = 0; i < 8; i++) y[i] = i;
    rt_set_input(p, net.images, x, sizeof x);
    rt_set_input(p, net.labels, y, sizeof y);
    ir_genotype g;
    child(&g);
    sr_enas_child_alpha(&sp, &g, rt_node_data(p, net.alpha[0]), rt_node_data(p, net.alpha[1]));
    float l0 = rt_forward(p, 1);
    cr_assert_eq(rt_backward(p, RT_GRAD_W), 0);
    /* every weight of cells.C._ops.E._ops.O: used iff O is the child's op on edge E */
    int used_nonzero = 0, unused = 0;
    for (int id = 0; id < ir_graph_num_nodes(net.graph); id++) {
        const ir_node *n = ir_graph_node(net.graph, id);
        int ci, e, o;
        if (n->op != IR_OP_PARAM || n->role != IR_ROLE_WEIGHT || sscanf(n->name, "cells.%d._ops.%d._ops.%d", &ci, &e, &o) != 3)
            continue;
        const ir_cell *cell = ci == 1 ? &sp.reduce : &sp.normal;
        const ir_geno_cell *gc = ci == 1 ? &g.reduce : &g.normal;
        int node, src, want = -1;
        ir_cell_edge(cell, e, &node, &src);
        for (int k = 0; k < gc->n_edges[node]; k++)
            if (gc->e[node][k].src == src) want = gc->e[node][k].op;
        const float *gr = rt_node_grad(p, id);
        float *w = rt_node_data(p, id);
        double s = 0;
        for (int64_t i = 0; i < ir_node_numel(n); i++) s += fabs(gr[i]);
        if (o == want) {
            used_nonzero += s > 0;
        } else {
            cr_assert_eq(s, 0.0, "%s: an op the child does not use has a gradient", n->name);
            for (int64_t i = 0; i < ir_node_numel(n); i++) w[i] += 0.5f; /* change it */
            unused++;
        }
    }
    cr_assert_gt(unused, 20);
    cr_assert_gt(used_nonzero, 10, "the child's own ops got %d gradients", used_nonzero);
    float l1 = rt_forward(p, 1);
    cr_assert_eq(memcmp(&l0, &l1, sizeof l0), 0, "changing unused ops changed the loss: %.9g -> %.9g", l0, l1);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

static int search(const ir_space *sp, const char *dir, int resume, int64_t stop_after, sr_result *r, char *err,
                  size_t errlen) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.device = "cpu";
    o.strategy = SR_ENAS;
    o.resume = resume;
    o.stop_after_steps = stop_after;
    o.checkpoint_seconds = 0;
    return sr_search(sp, &o, r, err, errlen);
}

Test(enas, a_stopped_search_resumes_bit_identically, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    sp.search.epochs = 2;
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    cr_assert_eq(search(&sp, a, 0, 0, &ra, err, sizeof err), 0, "%s", err);
    cr_assert_eq(search(&sp, b, 0, 5, &rb, err, sizeof err), 0, "%s", err); /* inside epoch 2 */
    cr_assert(rb.stopped);
    cr_assert_eq(search(&sp, b, 1, 0, &rb, err, sizeof err), 0, "%s", err);
    cr_assert(!rb.stopped);
    cr_expect(tu_same_file(a, b, "checkpoint.dtns"), "checkpoint.dtns differs after the resume");
    cr_expect(tu_same_file(a, b, "genotype.json"), "genotype.json differs after the resume");
    cr_expect(memcmp(&ra.genotype, &rb.genotype, sizeof ra.genotype) == 0);
    cr_expect_eq(ir_genotype_check(&sp, &ra.genotype, err, sizeof err), 0, "%s", err);
    /* one controller step per weight step: 2 epochs of 4 */
    char path[600];
    snprintf(path, sizeof path, "%s/checkpoint.dtns", a);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    const rt_tf_entry *st = rt_tf_find(f, "controller/state");
    cr_assert(st && st->numel == 6);
    cr_expect_eq(((const int32_t *)st->data)[0], 8);
    rt_tf_free(f);
}
