/* test_eval_net.c — the derived (evaluation) network: parameter count of the paper's
 * DARTS_V2 network, parity with an independent PyTorch NetworkCIFAR (tests/ref/darts_ref.py
 * eval) in training and inference mode, drop path, genotype checks, and a genotype over a
 * custom op set run through the runtime.
 *
 * Oracle and tolerance as tests/test_parity_torch.c: the reference runs in float64 (the
 * truth) and float32 on the same float32 inputs; dartsc's error ||x - x64|| / ||x64|| must
 * be at most 1e-4, or within TU_PARITY_FACTOR (testutil.h) of PyTorch float32's own error where float32 cannot
 * reach 1e-4. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "kernels/kdesc.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "testutil.h"

/* The genotype as the reference's JSON (DARTS Genotype layout). */
static void geno_json(const ir_space *sp, const ir_genotype *gt, char *buf, size_t len) {
    size_t o = 0;
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gc[2] = {&gt->normal, &gt->reduce};
    const char *names[2] = {"normal", "reduce"};
    o += (size_t)snprintf(buf + o, len - o, "{");
    for (int t = 0; t < 2; t++) {
        o += (size_t)snprintf(buf + o, len - o, "%s\"%s\": [", t ? ", " : "", names[t]);
        int first = 1;
        for (int i = 0; i < gc[t]->n_nodes; i++)
            for (int k = 0; k < gc[t]->n_edges[i]; k++) {
                o += (size_t)snprintf(buf + o, len - o, "%s[\"%s\", %d]", first ? "" : ", ",
                                      cells[t]->ops[gc[t]->e[i][k].op].name, gc[t]->e[i][k].src);
                first = 0;
            }
        o += (size_t)snprintf(buf + o, len - o, "], \"%s_concat\": [", names[t]);
        for (int i = 0; i < gc[t]->n_nodes; i++)
            o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? ", " : "", cells[t]->n_inputs + i);
        o += (size_t)snprintf(buf + o, len - o, "]");
    }
    snprintf(buf + o, len - o, "}");
}

static int64_t weight_count(const ir_graph *g, int with_aux) {
    int64_t n = 0;
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op == IR_OP_PARAM && nd->role == IR_ROLE_WEIGHT &&
            (with_aux || strncmp(nd->name, "auxiliary_head.", 15) != 0))
            n += ir_node_numel(nd);
    }
    return n;
}

static int32_t ref_i32(const rt_tf_file *f, const char *name) {
    const rt_tf_entry *e = rt_tf_find(f, name);
    cr_assert(e, "reference lacks %s", name);
    return ((const int32_t *)e->data)[0];
}

static void space_small(ir_space *sp, int in_c, int hw, int C, int layers, int classes) {
    ir_space_darts_cifar10(sp);
    sp->in_c = in_c;
    sp->in_h = sp->in_w = hw;
    sp->classes = classes;
    sp->C = C;
    (void)layers;
}

/* ---- (1) the paper's network ----------------------------------------------------------------- */

Test(eval_net, darts_v2_paper_size_weight_count, .timeout = 300) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    char json[4096], cmd[8192], err[512];
    geno_json(&sp, &gt, json, sizeof json);
    const char *dir = tu_tmpdir();
    for (int aux = 0; aux < 2; aux++) {
        ir_net net;
        ir_eval_opts o = {.C = 36, .layers = 20, .batch = 2, .aux = aux, .aux_weight = 0.4f, .drop_path = 1};
        cr_assert_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
        /* reductions at cells 6 and 13 of 20 (floor(L/3), floor(2L/3)) */
        cr_expect_geq(ir_graph_find(net.graph, "cells.6.preprocess1.op.1.weight"), 0);
        cr_expect_geq(ir_graph_find(net.graph, "cells.7.preprocess0.conv_1.weight"), 0);
        cr_expect_geq(ir_graph_find(net.graph, "cells.14.preprocess0.conv_2.weight"), 0);
        cr_expect_geq(ir_graph_find(net.graph, "cells.13._ops.0"), 0); /* max pool on s0, stride 2 */
        cr_expect_geq(ir_graph_find(net.graph, "cells.0._ops.7.op.1.weight"), 0); /* dil_conv_3x3 */
        cr_expect_eq(ir_graph_find(net.graph, "cells.0._ops.5.conv_1.weight"), -1); /* skip at stride 1: identity */
        ir_stats st;
        ir_graph_stats(net.graph, &st);
        int64_t n = weight_count(net.graph, 1);
        cr_expect_eq(st.weight_params, n);
        char out[600];
        snprintf(out, sizeof out, "%s/count%d.dtns", dir, aux);
        snprintf(cmd, sizeof cmd, "%s %s eval-count --out %s --C 36 --layers 20 --classes 10 --hw 32 --genotype '%s'%s >/dev/null",
                 DARTSC_PYTHON, tu_src_path("tests/ref/darts_ref.py"), out, json, aux ? " --auxiliary" : "");
        cr_assert_eq(system(cmd), 0, "reference failed: %s", cmd);
        rt_tf_file *ref = rt_tf_read(out, err, sizeof err);
        cr_assert(ref, "%s", err);
        cr_expect_eq(n, ref_i32(ref, "count/weights"), "weights (aux %d): dartsc %lld, PyTorch %d", aux, (long long)n,
                     ref_i32(ref, "count/weights"));
        cr_expect_eq(weight_count(net.graph, 0), ref_i32(ref, "count/weights_no_aux"));
        /* the DARTS repository's "param size = 3.349342MB" (the paper's 3.3M) excludes the head */
        cr_expect_eq(weight_count(net.graph, 0), 3349342);
        cr_expect_eq(n, aux ? 3825768 : 3349342, "weights (aux %d) %lld", aux, (long long)n);
        cr_expect_eq(net.aux_logits >= 0, aux);
        rt_tf_free(ref);
        ir_net_free(&net);
    }
}

/* ---- (2) parity with PyTorch ----------------------------------------------------------------- */

static void compare(tu_parity *t, const char *what, const float *got, const rt_tf_entry *r64, const rt_tf_entry *r32,
                    int64_t n) {
    cr_assert(r64 && r32, "reference lacks %s", what);
    cr_assert_eq(r64->numel, n, "%s: %lld elements vs reference %lld", what, (long long)n, (long long)r64->numel);
    tu_parity_compare(t, what, got, r64->data, r32->data, n);
}

static void write_node(rt_tf_writer *w, const ir_node *n, const char *name, const void *data) {
    int64_t dims[4];
    for (int i = 0; i < n->ndim; i++) dims[i] = n->shape[i];
    cr_assert_eq(rt_tf_write(w, name, n->dtype == IR_DTYPE_I32 ? RT_TF_I32 : RT_TF_F32, n->ndim, dims, data), 0);
}

typedef struct eval_cfg {
    int in_c, hw, C, layers, classes, batch, aux, train;
    int no_drop_path; /* build without DROP_PATH nodes (else they are there with p = 0) */
    int max_fallback;
} eval_cfg;

static void run_eval_parity(const eval_cfg *c) {
    ir_space sp;
    space_small(&sp, c->in_c, c->hw, c->C, c->layers, c->classes);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    ir_net net;
    ir_eval_opts o = {.C = c->C, .layers = c->layers, .batch = c->batch, .aux = c->aux, .aux_weight = 0.4f,
                      .drop_path = !c->no_drop_path};
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
    const ir_graph *g = net.graph;
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 42, .grads = RT_GRAD_W}, err, sizeof err);
    cr_assert(p, "%s", err);
    rt_plan_set_drop_path(p, 0.f); /* parity: p = 0 (the nodes are present) */
    int64_t nimg = (int64_t)c->batch * c->in_c * c->hw * c->hw;
    float *img = malloc((size_t)nimg * 4);
    tu_fill_uniform(img, nimg, -2.f, 2.f, 1234);
    int32_t *lab = malloc((size_t)c->batch * 4);
    for (int i = 0; i < c->batch; i++) lab[i] = (7 * i + 3) % c->classes;
    rt_set_input(p, net.images, img, (size_t)nimg * 4);
    rt_set_input(p, net.labels, lab, (size_t)c->batch * 4);
    /* BN running statistics and affine parameters away from their defaults */
    rt_group gb = rt_plan_group(p, IR_ROLE_BUFFER);
    for (int64_t i = 0; i < gb.n; i++) gb.data[i] = 0.5f + 0.25f * krng_uniform(5, (uint64_t)i);
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op == IR_OP_PARAM && n->role == IR_ROLE_WEIGHT && n->ndim == 1 && strstr(n->name, "classifier") == NULL) {
            float *d = rt_node_data(p, i);
            int beta = strstr(n->name, ".bias") != NULL;
            uint64_t h = 1469598103934665603ull; /* by name, so graphs with and without drop path agree */
            for (const char *q = n->name; *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ull;
            for (int64_t k = 0; k < n->shape[0]; k++) d[k] = (beta ? 0.f : 1.f) + 0.2f * (krng_uniform(h, (uint64_t)k) - 0.5f);
        }
    }

    const char *dir = tu_tmpdir();
    char in_path[512], out32[512], out64[512], json[4096], cmd[8192];
    snprintf(in_path, sizeof in_path, "%s/in.dtns", dir);
    snprintf(out32, sizeof out32, "%s/out.dtns", dir);
    snprintf(out64, sizeof out64, "%s/out64.dtns", dir);
    rt_tf_writer *w = rt_tf_open_write(in_path, err, sizeof err);
    cr_assert(w, "%s", err);
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op == IR_OP_PARAM) write_node(w, n, n->name, rt_node_data(p, i));
    }
    write_node(w, ir_graph_node(g, net.images), "images", img);
    write_node(w, ir_graph_node(g, net.labels), "labels", lab);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);

    float loss = rt_forward(p, c->train);
    if (c->train) cr_assert_eq(rt_backward(p, RT_GRAD_W), 0);

    geno_json(&sp, &gt, json, sizeof json);
    for (int dbl = 0; dbl < 2; dbl++) {
        snprintf(cmd, sizeof cmd,
                 "%s %s eval --in %s --out %s --in-c %d --C %d --classes %d --layers %d --threads 2 --genotype '%s'%s%s%s",
                 DARTSC_PYTHON, tu_src_path("tests/ref/darts_ref.py"), in_path, dbl ? out64 : out32, c->in_c, c->C,
                 c->classes, c->layers, json, c->aux ? " --auxiliary" : "", c->train ? " --train" : "",
                 dbl ? " --double" : "");
        cr_assert_eq(system(cmd), 0, "reference failed: %s", cmd);
    }
    rt_tf_file *ref = rt_tf_read(out32, err, sizeof err);
    cr_assert(ref, "%s", err);
    rt_tf_file *ref64 = rt_tf_read(out64, err, sizeof err);
    cr_assert(ref64, "%s", err);
    cr_expect_eq(weight_count(g, 1), ref_i32(ref, "count/weights"), "weights: dartsc %lld, PyTorch %d",
                 (long long)weight_count(g, 1), ref_i32(ref, "count/weights"));

    tu_parity t = {0};
    int64_t nl = (int64_t)c->batch * c->classes;
    float *logits = malloc((size_t)nl * 4);
    rt_read(p, net.logits, logits, (size_t)nl * 4);
    compare(&t, "logits", logits, rt_tf_find(ref64, "logits"), rt_tf_find(ref, "logits"), nl);
    if (c->train) {
        compare(&t, "loss", &loss, rt_tf_find(ref64, "loss"), rt_tf_find(ref, "loss"), 1);
        if (c->aux) {
            rt_read(p, net.aux_logits, logits, (size_t)nl * 4);
            compare(&t, "aux_logits", logits, rt_tf_find(ref64, "aux_logits"), rt_tf_find(ref, "aux_logits"), nl);
        }
        tu_parity_compare_params(&t, p, ref64, ref);
        cr_expect(t.tensors > 100);
    }
    cr_log_info("eval net C=%d layers=%d %dx%d aux=%d %s: %d tensors compared; %d above 1e-4; worst %.3g at %s", c->C,
                c->layers, c->hw, c->hw, c->aux, c->train ? "training" : "inference", t.tensors, t.fallback, t.worst,
                t.worst_name);
    cr_expect(t.fallback <= c->max_fallback, "%d of %d tensors above 1e-4", t.fallback, t.tensors);
    free(logits);
    rt_tf_free(ref64);
    rt_tf_free(ref);
    free(img);
    free(lab);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* Batch 3 at 8x8 maps makes the batch-statistics BN of the deep cells ill-conditioned in
 * float32: 47 of 500 gradient tensors (all in cells 0-4) end above 1e-4 against float64,
 * as PyTorch float32's do (within TU_PARITY_FACTOR); at most 10% may. */
Test(eval_net, training_matches_pytorch, .timeout = 600) {
    eval_cfg c = {.in_c = 3, .hw = 32, .C = 8, .layers = 8, .classes = 10, .batch = 3, .aux = 1, .train = 1,
                  .max_fallback = 50};
    run_eval_parity(&c);
}

Test(eval_net, inference_matches_pytorch, .timeout = 600) {
    eval_cfg c = {.in_c = 3, .hw = 32, .C = 8, .layers = 8, .classes = 10, .batch = 3, .aux = 1, .train = 0};
    run_eval_parity(&c);
}

/* 28x28 inputs: the auxiliary head sees 7x7, pools to 1x1 and uses a 1x1 second conv. */
Test(eval_net, small_input_aux_matches_pytorch, .timeout = 600) {
    eval_cfg c = {.in_c = 1, .hw = 28, .C = 4, .layers = 5, .classes = 10, .batch = 8, .aux = 1, .train = 1};
    run_eval_parity(&c);
}

/* ---- (3) drop path ------------------------------------------------------------------------ */

static int is_identity_edge(const ir_space *sp, const ir_genotype *gt, int reduction, int j) {
    const ir_cell *cell = reduction ? &sp->reduce : &sp->normal;
    const ir_geno_cell *gc = reduction ? &gt->reduce : &gt->normal;
    int e = 0;
    for (int i = 0; i < gc->n_nodes; i++)
        for (int k = 0; k < gc->n_edges[i]; k++, e++)
            if (e == j) {
                int stride = reduction && gc->e[i][k].src < cell->n_inputs ? 2 : 1;
                return cell->ops[gc->e[i][k].op].kind == IR_CAND_SKIP && stride == 1;
            }
    return -1;
}

Test(eval_net, drop_path, .timeout = 300) {
    ir_space sp;
    space_small(&sp, 1, 8, 4, 3, 5);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    const int B = 16, L = 3;
    ir_net net;
    ir_eval_opts o = {.C = 4, .layers = L, .batch = B, .aux = 0, .drop_path = 1};
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
    ir_graph *g = net.graph;
    /* a DROP_PATH node exactly on the edges that are not identity skips (reductions at 1, 2) */
    int n_dp = 0;
    for (int ci = 0; ci < L; ci++)
        for (int j = 0; j < 8; j++) {
            char name[128];
            snprintf(name, sizeof name, "cells.%d._ops.%d.drop_path", ci, j);
            int id = ir_graph_find(g, name);
            int ident = is_identity_edge(&sp, &gt, ci >= 1, j);
            cr_expect_eq(id < 0, ident == 1, "%s: %s", name, ident ? "identity edge has a DROP_PATH" : "missing");
            n_dp += id >= 0;
        }
    int total = 0;
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op != IR_OP_DROP_PATH) continue;
        total++;
        const ir_node *x = ir_graph_node(g, n->inputs[0]);
        cr_expect(!(x->op == IR_OP_BATCHNORM && strstr(x->name, "preprocess")), "%s follows a cell input", n->name);
        /* keep input and output for the mask check below */
        ir_node_set_flags(g, i, IR_FLAG_OUTPUT);
        ir_node_set_flags(g, n->inputs[0], x->flags | IR_FLAG_OUTPUT);
    }
    cr_expect_eq(total, n_dp);
    /* DARTS_V2: 2 identity skips in the normal cell, 3 (skip from node 0) in the reduction cell */
    cr_expect_eq(n_dp, 6 + 5 + 5, "DARTS_V2 over cells N R R: %d dropped edges", n_dp);

    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 3, .grads = RT_GRAD_W}, err, sizeof err);
    cr_assert(p, "%s", err);
    int64_t nimg = (int64_t)B * 8 * 8;
    float *img = malloc((size_t)nimg * 4);
    tu_fill_uniform(img, nimg, -2.f, 2.f, 99);
    int32_t lab[16];
    for (int i = 0; i < B; i++) lab[i] = i % 5;
    rt_set_input(p, net.images, img, (size_t)nimg * 4);
    rt_set_input(p, net.labels, lab, sizeof lab);
    float l0[16 * 5], l1[16 * 5], le[16 * 5], le0[16 * 5];
    rt_group gb = rt_plan_group(p, IR_ROLE_BUFFER);
    float *buf0 = malloc((size_t)gb.n * 4);
    memcpy(buf0, gb.data, (size_t)gb.n * 4);
    rt_forward(p, 1);
    rt_read(p, net.logits, l0, sizeof l0);
    const float prob = 0.3f;
    rt_plan_set_drop_path(p, prob);
    memcpy(gb.data, buf0, (size_t)gb.n * 4);
    rt_forward(p, 1);
    rt_read(p, net.logits, l1, sizeof l1);
    cr_expect_gt(tu_norm_rel_err(l1, l0, 16 * 5), 1e-3, "drop path p=0.3 left the outputs unchanged");
    /* per-sample masks: y = x * m, m in {0, 1/(1-p)} */
    int dropped = 0, kept = 0;
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op != IR_OP_DROP_PATH) continue;
        int64_t len = ir_node_numel(n), per = len / B;
        float *x = malloc((size_t)len * 4), *y = malloc((size_t)len * 4);
        rt_read(p, n->inputs[0], x, (size_t)len * 4);
        rt_read(p, i, y, (size_t)len * 4);
        for (int s = 0; s < B; s++) {
            double num = 0, den = 0;
            for (int64_t k = 0; k < per; k++) {
                num += (double)y[s * per + k] * x[s * per + k];
                den += (double)x[s * per + k] * x[s * per + k];
            }
            cr_assert_gt(den, 0);
            double m = num / den;
            int zero = fabs(m) < 1e-6, keep = fabs(m - 1.0 / (1.0 - prob)) < 1e-5;
            cr_expect(zero || keep, "%s sample %d: mask %.7g is neither 0 nor 1/(1-p)", n->name, s, m);
            /* and exactly that multiple, element by element */
            for (int64_t k = 0; k < per; k++)
                if (fabsf(y[s * per + k] - (float)m * x[s * per + k]) > 1e-5f * (1 + fabsf(x[s * per + k]))) {
                    cr_expect(0, "%s sample %d element %lld is not masked uniformly", n->name, s, (long long)k);
                    break;
                }
            dropped += zero;
            kept += keep;
        }
        free(x);
        free(y);
    }
    double frac = (double)dropped / (dropped + kept);
    cr_log_info("drop path p=%.2f: %d of %d per-sample masks dropped (%.3f)", prob, dropped, dropped + kept, frac);
    cr_expect(frac > 0.15 && frac < 0.45, "dropped fraction %.3f for p = %.2f", frac, prob);
    /* gradients pass the mask */
    cr_expect_eq(rt_backward(p, RT_GRAD_W), 0);
    /* inference ignores drop path */
    memcpy(gb.data, buf0, (size_t)gb.n * 4);
    rt_forward(p, 0);
    rt_read(p, net.logits, le, sizeof le);
    rt_plan_set_drop_path(p, 0.f);
    rt_forward(p, 0);
    rt_read(p, net.logits, le0, sizeof le0);
    cr_expect_eq(memcmp(le, le0, sizeof le), 0, "inference depends on drop path");
    free(buf0);
    free(img);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);

    /* without drop path: no DROP_PATH nodes at all */
    o.drop_path = 0;
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
    for (int i = 0; i < ir_graph_num_nodes(net.graph); i++)
        cr_expect_neq(ir_graph_node(net.graph, i)->op, IR_OP_DROP_PATH);
    ir_net_free(&net);
}

/* ---- (4) genotype checks -------------------------------------------------------------------- */

static void expect_bad(const ir_space *sp, const ir_genotype *gt, const char *const *needles) {
    char err[512] = "";
    cr_expect_eq(ir_genotype_check(sp, gt, err, sizeof err), -1, "accepted a bad genotype");
    for (int i = 0; needles[i]; i++) cr_expect(strstr(err, needles[i]) != NULL, "message '%s' lacks '%s'", err, needles[i]);
    ir_net net;
    ir_eval_opts o = {.C = 4, .layers = 3, .batch = 2};
    cr_expect_eq(ir_space_build_eval(sp, gt, &o, &net), -1);
    cr_expect_eq(net.graph, NULL);
    cr_expect_str_eq(net.error, err);
}

Test(eval_net, genotype_check) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    ir_genotype gt;
    char err[512];
    ir_genotype_darts_v2(&gt);
    cr_expect_eq(ir_genotype_check(&sp, &gt, err, sizeof err), 0, "%s", err);

    ir_genotype_darts_v2(&gt);
    gt.reduce.e[2][1].op = 0;
    expect_bad(&sp, &gt, (const char *[]){"reduction cell", "node 2", "edge 1", "'none'", NULL});
    ir_genotype_darts_v2(&gt);
    gt.normal.e[1][0].op = 8;
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "node 1", "edge 0", "op index 8", "0..7", NULL});
    ir_genotype_darts_v2(&gt);
    gt.normal.e[0][1].op = -1;
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "node 0", "edge 1", NULL});
    ir_genotype_darts_v2(&gt);
    gt.normal.e[1][1].src = 3; /* node 1 sees states 0..2 */
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "node 1", "edge 1", "source state 3", "0..2", NULL});
    ir_genotype_darts_v2(&gt);
    gt.reduce.e[3][0].src = -1;
    expect_bad(&sp, &gt, (const char *[]){"reduction cell", "node 3", "edge 0", NULL});
    ir_genotype_darts_v2(&gt);
    gt.normal.n_edges[3] = 0;
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "node 3", "has 0", NULL});
    ir_genotype_darts_v2(&gt);
    gt.reduce.n_edges[0] = IR_MAX_KEEP + 1;
    expect_bad(&sp, &gt, (const char *[]){"reduction cell", "node 0", NULL});
    ir_genotype_darts_v2(&gt);
    gt.normal.n_nodes = 3;
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "3 nodes", "has 4", NULL});
    /* an edge the space does not have */
    ir_genotype_darts_v2(&gt);
    sp.normal.edges[3] &= ~(1u << 2);
    expect_bad(&sp, &gt, (const char *[]){"normal cell", "node 3", "edge 1", "no edge from state 2", NULL});
    ir_space_darts_cifar10(&sp);
    /* one edge per node and more than two are fine */
    ir_genotype_darts_v2(&gt);
    gt.normal.n_edges[0] = 1;
    gt.normal.n_edges[3] = 3;
    gt.normal.e[3][2] = (ir_geno_edge){.op = 5, .src = 4};
    cr_expect_eq(ir_genotype_check(&sp, &gt, err, sizeof err), 0, "%s", err);
    ir_net net;
    ir_eval_opts o = {.C = 4, .layers = 3, .batch = 2};
    cr_expect_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
    cr_expect_geq(ir_graph_find(net.graph, "cells.0._ops.7.op.7.weight"), 0); /* the third edge of node 3 */
    ir_net_free(&net);
}

/* ---- (5) a custom op set through the runtime -------------------------------------------------- */

Test(eval_net, custom_ops_forward_backward, .timeout = 300) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    sp.in_c = 1;
    sp.in_h = sp.in_w = 28;
    for (int t = 0; t < 2; t++) {
        ir_cell *c = t ? &sp.reduce : &sp.normal;
        c->n_ops = 6;
        memset(c->ops, 0, sizeof c->ops);
        c->ops[0] = (ir_cand){IR_CAND_NONE, 0, 0, "none"};
        c->ops[1] = (ir_cand){IR_CAND_CONV, 3, 0, "conv_3x3"};
        c->ops[2] = (ir_cand){IR_CAND_CONV_1xK_Kx1, 7, 0, "conv_1x7_7x1"};
        c->ops[3] = (ir_cand){IR_CAND_AVG_POOL, 3, 0, "avg_pool_3x3"};
        c->ops[4] = (ir_cand){IR_CAND_SKIP, 0, 0, "skip_connect"};
        c->ops[5] = (ir_cand){IR_CAND_SEP_CONV, 5, 0, "sep_conv_5x5"};
    }
    char err[512];
    cr_assert_eq(ir_space_check(&sp, err, sizeof err), 0, "%s", err);
    static const int nrm[8][2] = {{2, 0}, {1, 1}, {4, 0}, {3, 2}, {1, 3}, {4, 1}, {5, 2}, {2, 4}};
    static const int red[8][2] = {{2, 0}, {4, 1}, {1, 2}, {3, 0}, {4, 3}, {5, 1}, {1, 4}, {2, 0}};
    ir_genotype gt;
    memset(&gt, 0, sizeof gt);
    for (int t = 0; t < 2; t++) {
        ir_geno_cell *gc = t ? &gt.reduce : &gt.normal;
        const int(*tab)[2] = t ? red : nrm;
        gc->n_nodes = 4;
        for (int i = 0; i < 4; i++) {
            gc->n_edges[i] = 2;
            for (int k = 0; k < 2; k++) gc->e[i][k] = (ir_geno_edge){.op = tab[2 * i + k][0], .src = tab[2 * i + k][1]};
        }
    }
    ir_net net;
    ir_eval_opts o = {.C = 6, .layers = 5, .batch = 4, .aux = 1, .aux_weight = 0.4f, .drop_path = 1};
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &o, &net), 0, "%s", net.error);
    const ir_graph *g = net.graph;
    cr_expect_geq(ir_graph_find(g, "cells.1._ops.0.op.2.weight"), 0); /* conv_1x7_7x1 at stride 2 */
    cr_expect_geq(ir_graph_find(g, "cells.0._ops.1.op.1.weight"), 0); /* conv_3x3 */
    cr_expect_geq(ir_graph_find(g, "auxiliary_head.features.5.weight"), 0);
    /* 28x28: the head sees 7x7 after cell 3, pools to 1x1 and uses a 1x1 conv */
    const ir_node *a5 = ir_graph_node(g, ir_graph_find(g, "auxiliary_head.features.5.weight"));
    cr_expect_eq(a5->shape[2], 1);
    cr_expect_eq(a5->shape[3], 1);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 11, .grads = RT_GRAD_W}, err, sizeof err);
    cr_assert(p, "%s", err);
    int64_t nimg = 4 * 28 * 28;
    float *img = malloc((size_t)nimg * 4);
    tu_fill_uniform(img, nimg, -1.f, 1.f, 5);
    int32_t lab[4] = {0, 3, 7, 9};
    rt_set_input(p, net.images, img, (size_t)nimg * 4);
    rt_set_input(p, net.labels, lab, sizeof lab);
    rt_plan_set_drop_path(p, 0.2f);
    float loss = rt_forward(p, 1);
    cr_expect(isfinite(loss) && loss > 0, "loss %g", loss);
    int correct = rt_last_correct(p);
    cr_expect(correct >= 0 && correct <= 4);
    cr_assert_eq(rt_backward(p, RT_GRAD_W), 0);
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT);
    double s = 0;
    for (int64_t i = 0; i < gw.n; i++) {
        cr_assert(isfinite(gw.grad[i]), "gradient %lld is not finite", (long long)i);
        s += fabs(gw.grad[i]);
    }
    cr_expect_gt(s, 0);
    /* the auxiliary head and a 1x7/7x1 conv got gradient */
    const char *names[] = {"auxiliary_head.classifier.weight", "cells.1._ops.0.op.1.weight", "stem.0.weight"};
    for (int k = 0; k < 3; k++) {
        int id = ir_graph_find(g, names[k]);
        cr_assert_geq(id, 0, "%s", names[k]);
        const float *gr = rt_node_grad(p, id);
        double a = 0;
        for (int64_t i = 0; i < ir_node_numel(ir_graph_node(g, id)); i++) a += fabs(gr[i]);
        cr_expect_gt(a, 0, "%s has a zero gradient", names[k]);
    }
    cr_expect(isfinite(rt_forward(p, 0)));
    free(img);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}
