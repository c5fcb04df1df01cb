/* test_ops_grad.c — gradients through the runtime (IR -> plan -> CPU backend) match
 * central finite differences, for every op and attribute variant and for whole DARTS
 * search cells, for dw and dalpha; and the autodiff does only the work asked for.
 *
 * Each op under test gets its data as WEIGHT parameters (so the runtime returns their
 * gradients), and a loss that mixes every output element: L = CE(linear(gap(y * r))),
 * with r a fixed random tensor and a fixed random linear head.
 *
 * Tolerance: the runtime is float32; central differences with step h = 1e-2 (scaled
 * to 1e-3 for inputs of magnitude ~1) have truncation error O(h^2) ~ 1e-4 relative and
 * rounding error ~ 1e-7 * |L| / h ~ 3e-5 absolute. We require, over the checked entries,
 * ||g_fd - g||_2 <= 2e-2 * ||g||_2 and per entry |g_fd - g| <= 2e-2 * max|g| + 1e-4.
 * A wrong gradient (missing term, wrong stride, wrong scaling) is off by O(1). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "testutil.h"

typedef struct harness {
    ir_graph *g;
    int labels, loss;
    rt_backend *be;
    rt_plan *p;
} harness;

/* Head that turns any 4-d (or 2-d) tensor y into a CE loss mixing every element. */
static void add_loss(harness *h, int y) {
    ir_graph *g = h->g;
    const ir_node *yn = ir_graph_node(g, y);
    int z = y;
    if (yn->ndim == 4) {
        int r = ir_param(g, "r", IR_ROLE_BUFFER, yn->ndim, yn->shape, ir_init_uniform(1.f));
        z = ir_binary(g, IR_OP_MUL, y, r, "y*r");
        z = ir_unary(g, IR_OP_GAP, z, "gap");
    }
    const ir_node *zn = ir_graph_node(g, z);
    int64_t N = zn->shape[0], F = zn->shape[1];
    int w = ir_param(g, "head.w", IR_ROLE_BUFFER, 2, (int64_t[]){5, F}, ir_init_uniform(2.f));
    int b = ir_param(g, "head.b", IR_ROLE_BUFFER, 1, (int64_t[]){5}, ir_init_uniform(0.5f));
    int logits = ir_linear(g, z, w, b, "logits");
    h->labels = ir_input(g, "labels", IR_DTYPE_I32, 1, (int64_t[]){N});
    h->loss = ir_softmax_ce(g, logits, h->labels, "loss");
    ir_node_set_flags(g, h->loss, IR_FLAG_LOSS | IR_FLAG_OUTPUT);
}

static void make_plan(harness *h, uint64_t seed) {
    cr_assert_eq(ir_verify(h->g), 0, "verify: %s", ir_graph_error(h->g));
    char err[256];
    h->be = rt_backend_cpu_new();
    h->p = rt_plan_new(h->g, h->be, &(rt_plan_opts){.seed = seed, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    cr_assert(h->p, "plan: %s", err);
    const ir_node *ln = ir_graph_node(h->g, h->labels);
    int32_t lab[64];
    for (int i = 0; i < ln->shape[0]; i++) lab[i] = (i * 3 + 1) % 5;
    rt_set_input(h->p, h->labels, lab, (size_t)ln->shape[0] * 4);
}

static void free_harness(harness *h) {
    rt_plan_free(h->p);
    h->be->destroy(h->be);
    ir_graph_free(h->g);
}

static float loss_at(harness *h) {
    rt_plan_set_step(h->p, 0); /* same dropout masks every time */
    return rt_forward(h->p, 1);
}

/* The loss with entry i of a group moved by +step (*lp) and -step (*lm). */
static void losses_at(harness *h, float *data, int64_t i, float step, double *lp, double *lm) {
    float w0 = data[i];
    data[i] = w0 + step;
    *lp = loss_at(h);
    data[i] = w0 - step;
    *lm = loss_at(h);
    data[i] = w0;
}

/* Central difference of the loss in entry i of a group with step h. */
static double fd_at(harness *h, float *data, int64_t i, float step) {
    double lp, lm;
    losses_at(h, data, i, step, &lp, &lm);
    return (lp - lm) / (2.0 * step);
}

/* Checks d loss / d group (weights or arch) at up to max_checks entries.
 * kink_guard: in deep nets with ReLU, max pool and batch statistics, a step can cross
 * a kink, which makes that entry's difference quotient meaningless. With the guard on,
 * each entry is also differenced at step/2, and its one-sided quotients at step compared
 * (their difference is step times the second derivative where the loss is smooth, the
 * jump in slope where a kink lies near the entry: a kink inside both central stencils
 * moves both quotients alike and only this sees it); entries where either pair disagrees
 * by more than the tolerance are kinks and are left out (at most 10% of entries may be). */
static void check_group_ex(harness *h, ir_role role, int max_checks, float step, int kink_guard) {
    rt_group gr = rt_plan_group(h->p, role);
    cr_assert(gr.n > 0);
    double l0 = loss_at(h); /* L(w): the same at every entry (the masks are fixed) */
    rt_backward(h->p, role == IR_ROLE_WEIGHT ? RT_GRAD_W : RT_GRAD_ARCH);
    float *an = malloc((size_t)gr.n * sizeof *an), *fd = malloc((size_t)gr.n * sizeof *fd);
    float *sel_an = malloc((size_t)gr.n * sizeof *sel_an);
    memcpy(an, gr.grad, (size_t)gr.n * sizeof *an);
    int64_t stride = gr.n > max_checks ? gr.n / max_checks : 1;
    double gmax = 0;
    for (int64_t i = 0; i < gr.n; i += stride)
        if (fabs(an[i]) > gmax) gmax = fabs(an[i]);
    int64_t m = 0, tried = 0, kinks = 0;
    for (int64_t i = 0; i < gr.n; i += stride) {
        tried++;
        double lp, lm;
        losses_at(h, gr.data, i, step, &lp, &lm);
        double d1 = (lp - lm) / (2.0 * step);
        if (kink_guard) {
            double d2 = fd_at(h, gr.data, i, step / 2);
            /* forward minus backward quotient: (L(w+h) - 2 L(w) + L(w-h)) / h */
            double gap = (lp - 2.0 * l0 + lm) / step;
            if (fabs(d1 - d2) > 1e-2 * gmax + 1e-4 || fabs(gap) > 1e-2 * gmax + 1e-4) {
                kinks++;
                continue;
            }
            if (getenv("FD_VERBOSE") && fabs(d1 - an[i]) > 2e-2 * gmax)
                fprintf(stderr, "entry %lld: fd %g %g an %g\n", (long long)i, d1, d2, an[i]);
        }
        fd[m] = (float)d1;
        sel_an[m] = an[i];
        m++;
    }
    cr_expect(kinks * 10 <= tried, "%lld of %lld entries sit on kinks", (long long)kinks, (long long)tried);
    double rel = tu_norm_rel_err(fd, sel_an, m);
    cr_expect(rel <= 2e-2, "%s gradient off: ||fd-g||/||g|| = %g over %lld entries", ir_role_name(role), rel, (long long)m);
    for (int64_t k = 0; k < m; k++)
        cr_expect(fabs(fd[k] - sel_an[k]) <= 2e-2 * gmax + 1e-4, "entry %lld: fd %g vs analytic %g", (long long)k, fd[k], sel_an[k]);
    cr_expect(gmax > 0, "all-zero gradient cannot be checked");
    free(an);
    free(fd);
    free(sel_an);
}

static void check_group(harness *h, ir_role role, int max_checks, float step) {
    check_group_ex(h, role, max_checks, step, 0);
}

static int wparam(ir_graph *g, const char *name, int ndim, const int64_t *shape) {
    return ir_param(g, name, IR_ROLE_WEIGHT, ndim, shape, ir_init_uniform(1.f));
}

static void conv_case(int N, int C, int H, int W, int K, int R, int S, int stride, int ph, int pw, int dil, int groups) {
    harness h = {.g = ir_graph_new("conv")};
    int x = wparam(h.g, "x", 4, (int64_t[]){N, C, H, W});
    int w = wparam(h.g, "w", 4, (int64_t[]){K, C / groups, R, S});
    int y = ir_conv2d(h.g, x, w, stride, stride, ph, pw, dil, dil, groups, "conv");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    add_loss(&h, y);
    make_plan(&h, 11);
    check_group(&h, IR_ROLE_WEIGHT, 400, 1e-2f);
    free_harness(&h);
}

Test(grad, conv_dense_3x3_pad1) { conv_case(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1); }
Test(grad, conv_1x1_stride1) { conv_case(2, 5, 6, 6, 4, 1, 1, 1, 0, 0, 1, 1); }
Test(grad, conv_1x1_stride2) { conv_case(2, 4, 8, 8, 3, 1, 1, 2, 0, 0, 1, 1); }
Test(grad, conv_depthwise_3x3_stride1) { conv_case(2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, 4); }
Test(grad, conv_depthwise_5x5_stride2) { conv_case(2, 3, 9, 8, 3, 5, 5, 2, 2, 2, 1, 3); }
Test(grad, conv_depthwise_dilated_3x3) { conv_case(2, 3, 8, 8, 3, 3, 3, 1, 2, 2, 2, 3); }
Test(grad, conv_depthwise_dilated_5x5_stride2) { conv_case(2, 2, 10, 10, 2, 5, 5, 2, 4, 4, 2, 2); }
Test(grad, conv_grouped) { conv_case(2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2); }
Test(grad, conv_asymmetric_1x7) { conv_case(1, 3, 9, 9, 3, 1, 7, 1, 0, 3, 1, 1); }
Test(grad, conv_asymmetric_7x1) { conv_case(1, 3, 9, 9, 3, 7, 1, 1, 3, 0, 1, 1); }

static void bn_case(int affine, int four_d) {
    harness h = {.g = ir_graph_new("bn")};
    int64_t sh4[4] = {3, 4, 3, 3}, sh2[2] = {6, 4};
    int x = wparam(h.g, "x", four_d ? 4 : 2, four_d ? sh4 : sh2);
    int gm = -1, bt = -1;
    if (affine) {
        gm = wparam(h.g, "gamma", 1, (int64_t[]){4});
        bt = wparam(h.g, "beta", 1, (int64_t[]){4});
    }
    int rm = ir_param(h.g, "rm", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_zeros());
    int rv = ir_param(h.g, "rv", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_ones());
    int y = ir_batchnorm(h.g, x, gm, bt, rm, rv, 1, 1e-5f, 0.1f, "bn");
    add_loss(&h, y);
    make_plan(&h, 5);
    check_group(&h, IR_ROLE_WEIGHT, 400, 1e-2f);
    free_harness(&h);
}
Test(grad, batchnorm_affine) { bn_case(1, 1); }
Test(grad, batchnorm_no_affine) { bn_case(0, 1); }
Test(grad, batchnorm_2d_affine) { bn_case(1, 0); }

static void unary_case(ir_op op, int pool_k, int stride, int pad) {
    harness h = {.g = ir_graph_new("unary")};
    int x = wparam(h.g, "x", 4, (int64_t[]){2, 3, 7, 6});
    int y;
    if (op == IR_OP_MAXPOOL || op == IR_OP_AVGPOOL) y = ir_pool(h.g, op, x, pool_k, stride, pad, "pool");
    else if (op == IR_OP_SCALE) y = ir_scale(h.g, x, -1.7f, "scale");
    else if (op == IR_OP_DROPOUT || op == IR_OP_DROP_PATH) y = ir_dropout(h.g, op, x, 0.3f, "drop");
    else if (op == IR_OP_SLICE) y = ir_slice(h.g, x, 1, 2, "slice");
    else y = ir_unary(h.g, op, x, "u");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    add_loss(&h, y);
    make_plan(&h, 3);
    check_group(&h, IR_ROLE_WEIGHT, 300, 1e-3f);
    free_harness(&h);
}
Test(grad, relu) { unary_case(IR_OP_RELU, 0, 0, 0); }
Test(grad, tanh) { unary_case(IR_OP_TANH, 0, 0, 0); }
Test(grad, sigmoid) { unary_case(IR_OP_SIGMOID, 0, 0, 0); }
Test(grad, identity) { unary_case(IR_OP_IDENTITY, 0, 0, 0); }
Test(grad, softmax) { unary_case(IR_OP_SOFTMAX, 0, 0, 0); }
Test(grad, shift) { unary_case(IR_OP_SHIFT, 0, 0, 0); }
Test(grad, scale) { unary_case(IR_OP_SCALE, 0, 0, 0); }
Test(grad, slice) { unary_case(IR_OP_SLICE, 0, 0, 0); }
Test(grad, dropout) { unary_case(IR_OP_DROPOUT, 0, 0, 0); }
Test(grad, drop_path) { unary_case(IR_OP_DROP_PATH, 0, 0, 0); }
Test(grad, maxpool_3x3_stride1_borders) { unary_case(IR_OP_MAXPOOL, 3, 1, 1); }
Test(grad, maxpool_3x3_stride2_borders) { unary_case(IR_OP_MAXPOOL, 3, 2, 1); }
Test(grad, avgpool_3x3_stride1_excludes_padding) { unary_case(IR_OP_AVGPOOL, 3, 1, 1); }
Test(grad, avgpool_3x3_stride2_excludes_padding) { unary_case(IR_OP_AVGPOOL, 3, 2, 1); }

static void nary_case(ir_op op) {
    harness h = {.g = ir_graph_new("nary")};
    int64_t sh[4] = {2, 3, 4, 5};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int y;
    if (op == IR_OP_MUL || op == IR_OP_SUB) y = ir_binary(h.g, op, a, b, "bin");
    else if (op == IR_OP_WSUM) {
        int w = wparam(h.g, "w", 1, (int64_t[]){3});
        y = ir_wsum(h.g, w, 3, (int[]){a, b, c}, "wsum");
    } else y = ir_nary(h.g, op, 3, (int[]){a, b, c}, "nary");
    /* use 'a' twice so gradient accumulation across consumers is exercised */
    add_loss(&h, op == IR_OP_CONCAT ? y : ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, a}, "plus_a"));
    make_plan(&h, 9);
    check_group(&h, IR_ROLE_WEIGHT, 400, 1e-3f);
    free_harness(&h);
}
/* The temporal activation regularisation term of recurrent search: loss = 0.7 * mean(x^2). */
Test(grad, sqmean) {
    harness h = {.g = ir_graph_new("sqmean")};
    int x = wparam(h.g, "x", 2, (int64_t[]){4, 6});
    int y = ir_unary(h.g, IR_OP_SQMEAN, x, "tar");
    h.loss = ir_scale(h.g, y, 0.7f, "loss");
    h.labels = ir_input(h.g, "labels", IR_DTYPE_I32, 1, (int64_t[]){2}); /* unused; the harness fills it */
    ir_node_set_flags(h.g, h.loss, IR_FLAG_LOSS | IR_FLAG_OUTPUT);
    make_plan(&h, 5);
    check_group(&h, IR_ROLE_WEIGHT, 100, 1e-2f);
    free_harness(&h);
}
Test(grad, add) { nary_case(IR_OP_ADD); }
Test(grad, mean) { nary_case(IR_OP_MEAN); }
Test(grad, mul) { nary_case(IR_OP_MUL); }
Test(grad, sub) { nary_case(IR_OP_SUB); }
Test(grad, wsum) { nary_case(IR_OP_WSUM); }
Test(grad, concat) { nary_case(IR_OP_CONCAT); }

Test(grad, gap_and_linear_without_bias) {
    harness h = {.g = ir_graph_new("gl")};
    int x = wparam(h.g, "x", 4, (int64_t[]){3, 4, 3, 3});
    int z = ir_unary(h.g, IR_OP_GAP, x, "gap");
    int w = wparam(h.g, "w", 2, (int64_t[]){6, 4});
    int y = ir_linear(h.g, z, w, -1, "lin");
    add_loss(&h, y);
    make_plan(&h, 2);
    check_group(&h, IR_ROLE_WEIGHT, 300, 1e-3f);
    free_harness(&h);
}

Test(grad, embedding) {
    harness h = {.g = ir_graph_new("emb")};
    int ids = ir_input(h.g, "ids", IR_DTYPE_I32, 1, (int64_t[]){6});
    int t = wparam(h.g, "table", 2, (int64_t[]){7, 4});
    int y = ir_embedding(h.g, ids, t, "emb");
    add_loss(&h, y);
    make_plan(&h, 2);
    int32_t idv[6] = {0, 3, 3, 6, 1, 3}; /* repeated ids accumulate */
    rt_set_input(h.p, ids, idv, sizeof idv);
    check_group(&h, IR_ROLE_WEIGHT, 300, 1e-3f);
    free_harness(&h);
}

Test(grad, mixed_op_alpha_and_inputs) {
    harness h = {.g = ir_graph_new("mixed")};
    int64_t sh[4] = {2, 3, 4, 4};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){2, 5}, ir_init_normal(1.f));
    /* columns 0 and 3 are zero ops: no input, yet their alpha entries get gradients */
    int y = ir_mixed(h.g, alpha, 1, 3, (int[]){a, b, c}, (int[]){1, 2, 4}, "mixed");
    add_loss(&h, y);
    make_plan(&h, 4);
    check_group(&h, IR_ROLE_WEIGHT, 300, 1e-3f);
    check_group(&h, IR_ROLE_ARCH, 10, 1e-2f);
    /* row 0 is unused: its gradient must be exactly zero */
    rt_group ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    for (int i = 0; i < 5; i++) cr_expect_eq(ga.grad[i], 0.f);
    free_harness(&h);
}

/* FairDARTS' mixed op: weights given as a tensor (here sigmoid(alpha) through the SIGMOID
 * node, as the fair-darts supernet builds it); gradients reach the inputs and alpha. */
Test(grad, wmixed_sigmoid_weights_and_inputs) {
    harness h = {.g = ir_graph_new("wmixed")};
    int64_t sh[4] = {2, 3, 4, 4};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){2, 5}, ir_init_normal(1.f));
    int w = ir_unary(h.g, IR_OP_SIGMOID, alpha, "sigmoid");
    int y = ir_wmixed(h.g, w, 1, 3, (int[]){a, b, c}, (int[]){1, 2, 4}, "wmixed");
    /* 'a' used twice: accumulation across consumers */
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, a}, "plus_a"));
    make_plan(&h, 4);
    check_group(&h, IR_ROLE_WEIGHT, 300, 1e-3f);
    check_group(&h, IR_ROLE_ARCH, 10, 1e-2f);
    /* columns with no input (0, 3) and the unused row 0 get exactly zero: no softmax couples them */
    rt_group ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    for (int i = 0; i < 5; i++) cr_expect_eq(ga.grad[i], 0.f);
    cr_expect_eq(ga.grad[5 + 0], 0.f);
    cr_expect_eq(ga.grad[5 + 3], 0.f);
    free_harness(&h);
}

/* PC-DARTS' channel shuffle, with C = 12 in 4 and 3 groups. */
static void shuffle_case(int groups) {
    harness h = {.g = ir_graph_new("shuffle")};
    int x = wparam(h.g, "x", 4, (int64_t[]){2, 12, 3, 5});
    int y = ir_channel_shuffle(h.g, x, groups, "shuffle");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    ir_node_set_flags(h.g, y, IR_FLAG_OUTPUT); /* kept after the forward, to be read */
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, x}, "plus_x"));
    make_plan(&h, 5);
    /* the permutation itself: output channel j*G+g is input channel g*(C/G)+j */
    rt_forward(h.p, 1);
    const float *xv = rt_node_data(h.p, x);
    float yv[2 * 12 * 15];
    rt_read(h.p, y, yv, sizeof yv);
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 12; o++)
            for (int i = 0; i < 15; i++)
                cr_expect_eq(yv[(n * 12 + o) * 15 + i], xv[(n * 12 + (o % groups) * (12 / groups) + o / groups) * 15 + i]);
    check_group(&h, IR_ROLE_WEIGHT, 400, 1e-3f);
    free_harness(&h);
}
Test(grad, channel_shuffle_4_groups) { shuffle_case(4); }
Test(grad, channel_shuffle_3_groups) { shuffle_case(3); }

/* A tiny DARTS supernet with every op of REFERENCE.md, normal and reduction cells,
 * FactorizedReduce both as skip at stride 2 and as preprocessing. */
static void tiny_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    sp->in_c = 2; sp->in_h = 8; sp->in_w = 8; sp->classes = 5;
    sp->C = 4; sp->layers = 3; sp->stem_mult = 2;
    sp->n_reduce = 1; sp->reduce_at[0] = 1;
}

/* sp's supernet at this batch, planned on the CPU (seed), its images uniform in [-1, 1)
 * (img_seed). */
static void supernet_harness(harness *h, ir_net *net, const ir_space *sp, int batch, uint64_t seed,
                             uint64_t img_seed) {
    cr_assert_eq(ir_space_build_supernet(sp, batch, net), 0, "%s", net->error);
    *h = (harness){.g = net->graph, .labels = net->labels, .loss = net->loss};
    make_plan(h, seed);
    const int64_t ni = (int64_t)batch * sp->in_c * sp->in_h * sp->in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    cr_assert(img);
    tu_fill_uniform(img, ni, -1.f, 1.f, img_seed);
    cr_assert_eq(rt_set_input(h->p, net->images, img, (size_t)ni * sizeof *img), 0);
    free(img);
}

/* One search cell between the stem and the head, normal or reduction (every op of
 * REFERENCE.md; the reduction cell has FactorizedReduce skips and stride-2 pools/convs).
 * sharp: the candidates are instead sharpDARTS's SharpSepConv (a composition of ReLU,
 * depthwise and 1x1 convolutions and batch norms), undilated and dilated, at stride 1
 * (normal cell) and 2 (reduction cell), beside 'none'; the same tolerances. */
static void darts_cell_case_env(int reduction, int sharp, const char *env);
static void darts_cell_case(int reduction, int sharp) { darts_cell_case_env(reduction, sharp, NULL); }
/* env: a switch set while the plan is made (the summed batch-norm backwards) */
static void darts_cell_case_env(int reduction, int sharp, const char *env) {
    ir_space sp;
    tiny_space(&sp);
    sp.layers = 1;
    sp.n_reduce = reduction;
    sp.reduce_at[0] = 0;
    ir_cell *cells[2] = {&sp.normal, &sp.reduce};
    for (int t = 0; t < 2 && sharp; t++) {
        ir_cell *c = cells[t];
        c->n_ops = 3;
        c->ops[0] = (ir_cand){.kind = IR_CAND_NONE, .name = "none"};
        c->ops[1] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 1, .name = "sharp_sep_conv_3x3"};
        c->ops[2] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 2, .name = "dil_sharp_sep_conv_3x3"};
    }
    ir_net net;
    harness h;
    if (env) setenv(env, "1", 1);
    supernet_harness(&h, &net, &sp, 8, 7, 99);
    if (env) {
        unsetenv(env);
        cr_assert_gt(rt_plan_summed_bn(h.p), 0, "%s: no batch norm summed", env);
    }
    /* alpha of order 1 so the softmax is far from uniform */
    rt_group ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3);
    check_group_ex(&h, IR_ROLE_ARCH, 200, 1e-3f, 1);
    check_group_ex(&h, IR_ROLE_WEIGHT, 300, 1e-3f, 1);
    free_harness(&h);
}
/* The supernet's shared parameter-free ops (ir/space.c: each state's pools, FactorizedReduce
 * ReLU and shift, PC-DARTS' slices built once per cell and read by every edge) against
 * PyTorch DARTS' structure of one copy per edge (ir_supernet_opts.no_share): fewer nodes,
 * the same parameters and initial values, the same loss bit for bit (the same forward
 * values), and gradients equal to rounding: the edges' gradients now meet before a pool's
 * backward instead of after it, a different order of float additions. The tolerance, 2e-5
 * relative to the group's largest gradient, is ~100 float roundings of the largest term;
 * measured: a few 1e-7 (see the message). PC-DARTS (K = 2) too: slices, bypass pools. */
static void shared_ops_case(int partial) {
    ir_space sp;
    tiny_space(&sp);
    ir_net net[2];
    harness h[2];
    int pools[2] = {0, 0}, nodes[2];
    float loss[2];
    for (int v = 0; v < 2; v++) {
        ir_supernet_opts so = {.no_share = v, .partial = partial, .edge_norm = partial > 1};
        cr_assert_eq(ir_space_build_supernet_ex(&sp, 4, &so, &net[v]), 0, "%s", net[v].error);
        h[v] = (harness){.g = net[v].graph, .labels = net[v].labels, .loss = net[v].loss};
        make_plan(&h[v], 5);
        float img[4 * 2 * 8 * 8];
        tu_fill_uniform(img, 4 * 2 * 8 * 8, -1.f, 1.f, 6);
        cr_assert_eq(rt_set_input(h[v].p, net[v].images, img, sizeof img), 0);
        nodes[v] = ir_graph_num_nodes(net[v].graph);
        for (int i = 0; i < nodes[v]; i++) {
            const ir_op op = ir_graph_node(net[v].graph, i)->op;
            pools[v] += op == IR_OP_MAXPOOL || op == IR_OP_AVGPOOL;
        }
        rt_group ga = rt_plan_group(h[v].p, IR_ROLE_ARCH);
        tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3);
        loss[v] = rt_forward(h[v].p, 1);
        cr_assert_eq(rt_backward(h[v].p, RT_GRAD_W | RT_GRAD_ARCH), 0);
    }
    /* 3 cells of 14 edges from 5 states: 5 of each pool per cell, not 14 (PC-DARTS: and the
     * reduction cell's 8 bypass pools of 2 states' slices: 2) */
    cr_expect_lt(nodes[0], nodes[1], "sharing built %d nodes, one copy per edge %d", nodes[0], nodes[1]);
    cr_expect_eq(pools[1] - pools[0], 3 * 2 * (14 - 5) + (partial > 1 ? 8 - 2 : 0), "pools: %d shared, %d per edge",
                 pools[0], pools[1]);
    cr_expect(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0, "loss %.9g shared vs %.9g per edge", loss[0], loss[1]);
    for (int role = IR_ROLE_WEIGHT; role <= IR_ROLE_ARCH; role++) {
        rt_group a = rt_plan_group(h[0].p, (ir_role)role), b = rt_plan_group(h[1].p, (ir_role)role);
        cr_assert_eq(a.n, b.n, "%s: %lld parameters shared, %lld per edge", ir_role_name((ir_role)role),
                     (long long)a.n, (long long)b.n);
        cr_expect(memcmp(a.data, b.data, (size_t)a.n * 4) == 0, "%s: different initial values",
                  ir_role_name((ir_role)role));
        double big = 0, worst = 0;
        for (int64_t i = 0; i < a.n; i++) big = fmax(big, fabs(b.grad[i]));
        for (int64_t i = 0; i < a.n; i++) worst = fmax(worst, fabs((double)a.grad[i] - b.grad[i]));
        cr_expect(big > 0, "%s: no gradient", ir_role_name((ir_role)role));
        cr_expect_leq(worst, 2e-5 * big, "%s gradients: largest difference %.3g, %.3g of the largest gradient %.3g",
                      ir_role_name((ir_role)role), worst, worst / big, big);
        cr_log_info("%s gradients (K = %d): largest difference %.3g of the largest gradient", ir_role_name((ir_role)role),
                    partial, worst / big);
    }
    free_harness(&h[0]);
    free_harness(&h[1]);
}
Test(grad, shared_pools_and_reduce_ops_equal_one_copy_per_edge) { shared_ops_case(0); }
Test(grad, shared_slices_and_pools_pc_darts_equal_one_copy_per_edge) { shared_ops_case(2); }

Test(grad, darts_normal_cell_weights_and_alpha) { darts_cell_case(0, 0); }
Test(grad, darts_reduction_cell_weights_and_alpha) { darts_cell_case(1, 0); }
/* the pools' batch norms running one backward on their summed output gradients */
Test(grad, darts_normal_cell_summed_batch_norm_backwards) { darts_cell_case_env(0, 0, "DARTSC_SUM_BN_GRADS"); }
Test(grad, darts_reduction_cell_summed_batch_norm_backwards) { darts_cell_case_env(1, 0, "DARTSC_SUM_BN_GRADS"); }
Test(grad, sharp_sep_conv_normal_cell_weights_and_alpha) { darts_cell_case(0, 1); }
Test(grad, sharp_sep_conv_reduction_cell_weights_and_alpha) { darts_cell_case(1, 1); }

/* The DARTS successors' supernets (ir_space_build_supernet_ex): PC-DARTS with K = 2 (slices,
 * the bypass with its 2x2 max pool on reduction edges, concat, shuffle) and edge
 * normalisation, whose beta sits in the arch group beside alpha, so every beta entry is
 * differenced (all arch entries are checked); FairDARTS' sigmoid mixed ops.
 * smooth: the cell's ops are none, avg_pool_3x3 and skip_connect only. A beta scales a
 * whole edge, so with every op its difference quotients cross many ReLU and max-pool kinks
 * downstream (measured: a few beta entries per seed off by 3-10 % at steps 1e-2 to 2.5e-3,
 * drifting toward the analytic value as the step shrinks, while every alpha entry agrees to
 * 2e-5); with only linear ops after the beta-weighted sums the quotients are clean. */
static void successor_cell_case(int reduction, ir_supernet_opts so, int smooth, int weights, int arch_checks) {
    ir_space sp;
    tiny_space(&sp);
    sp.layers = 1;
    sp.n_reduce = reduction;
    sp.reduce_at[0] = 0;
    if (smooth) {
        ir_cell *c = reduction ? &sp.reduce : &sp.normal;
        c->ops[1] = c->ops[2]; /* none, avg_pool_3x3, skip_connect */
        c->ops[2] = c->ops[3];
        c->n_ops = 3;
    }
    ir_net net;
    cr_assert_eq(ir_space_build_supernet_ex(&sp, 8, &so, &net), 0, "%s", net.error);
    harness h = {.g = net.graph, .labels = net.labels, .loss = net.loss};
    make_plan(&h, 7);
    const int64_t ni = 8LL * sp.in_c * sp.in_h * sp.in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    tu_fill_uniform(img, ni, -1.f, 1.f, 99);
    rt_set_input(h.p, net.images, img, (size_t)ni * sizeof *img);
    free(img);
    rt_group ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3);
    if (so.edge_norm) cr_assert(net.beta[0][3] >= 0 && net.beta[1][3] >= 0);
    /* Step 1e-2: these arch gradients are ~1e-4 to 1e-3, and a step of 1e-3 resolves the float
       loss only to 6e-5 in a difference quotient */
    check_group_ex(&h, IR_ROLE_ARCH, arch_checks, 1e-2f, 1);
    if (weights) check_group_ex(&h, IR_ROLE_WEIGHT, 300, 1e-3f, 1);
    free_harness(&h);
}
/* (the weight paths of the candidate ops are DARTS's, checked above; the weights are checked
   once here, in the reduction cell, where the partial channels route them through slices, the
   max-pooled bypass and the shuffle) */
/* (every arch entry where the cell is small; every third or so with all eight ops, for CI time) */
Test(grad, pc_darts_normal_cell_alpha_and_beta) { successor_cell_case(0, (ir_supernet_opts){.partial = 2, .edge_norm = 1}, 1, 0, 400); }
Test(grad, pc_darts_reduction_cell_weights_alpha_and_beta) { successor_cell_case(1, (ir_supernet_opts){.partial = 2, .edge_norm = 1}, 1, 1, 400); }
Test(grad, pc_darts_every_op_alpha_without_edge_norm) { successor_cell_case(0, (ir_supernet_opts){.partial = 2}, 0, 0, 80); }
Test(grad, fair_darts_normal_cell_sigmoid_alpha) { successor_cell_case(0, (ir_supernet_opts){.sigmoid = 1}, 0, 0, 80); }
Test(grad, fair_darts_reduction_cell_sigmoid_alpha) { successor_cell_case(1, (ir_supernet_opts){.sigmoid = 1}, 0, 0, 80); }

/* The plan's fusions (ReLU into its consumer, first-contributor overwrites, batch norms
 * reading their mixed op's gradient scaled instead of a buffer of their own, and batch
 * norms deferred into the mixed op they feed) change no bit: the training loss, weight and
 * alpha gradients of the tiny supernet (normal and reduction cells, batch 4) after a full
 * and an alpha-only backward, the inference-mode loss and the running statistics, fused
 * against DARTSC_NO_FUSION=1; on 8x8 images (planes of 64 and 16 pixels) and 14x14 ones (196 and
 * 49: vectors straddle planes). The fused plan's arena is smaller (the deferred batch norms
 * have no output buffers). */
typedef struct fused_run {
    float *w, *a, *a_only, *buf, loss, eval_loss; /* buf: the buffers (running statistics) at the end */
    int64_t nw, na, nb;
    size_t arena;
    int shared; /* batch norms taking shared statistics */
    int folded; /* of those, run by their pools */
    int summed; /* batch norms whose backwards another one runs (DARTSC_SUM_BN_GRADS) */
} fused_run;

/* fused 0: DARTSC_NO_FUSION=1; 1: the default; 2: with DARTSC_SHARE_BN_STATS=1 too; 3: with
 * DARTSC_POOL_BN_STATS=1 (the pools write their batch norms' statistics); 4: the default
 * with DARTSC_SUM_BN_GRADS=1; 5: 3 with it; 6: 0 with it */
static void fused_grads(int fused, int hw, const ir_supernet_opts *so, fused_run *r) {
    if (fused && fused != 6) unsetenv("DARTSC_NO_FUSION");
    else setenv("DARTSC_NO_FUSION", "1", 1);
    if (fused == 2) setenv("DARTSC_SHARE_BN_STATS", "1", 1);
    if (fused == 3 || fused == 5) setenv("DARTSC_POOL_BN_STATS", "1", 1);
    if (fused >= 4) setenv("DARTSC_SUM_BN_GRADS", "1", 1);
    ir_space sp;
    tiny_space(&sp);
    sp.in_h = sp.in_w = hw;
    ir_net net;
    cr_assert_eq(ir_space_build_supernet_ex(&sp, 4, so, &net), 0, "%s", net.error);
    harness h = {.g = net.graph, .labels = net.labels, .loss = net.loss};
    make_plan(&h, 11);
    unsetenv("DARTSC_NO_FUSION");
    unsetenv("DARTSC_SHARE_BN_STATS");
    unsetenv("DARTSC_POOL_BN_STATS");
    unsetenv("DARTSC_SUM_BN_GRADS");
    r->shared = rt_plan_shared_stats(h.p);
    r->folded = rt_plan_folded_bn(h.p);
    r->summed = rt_plan_summed_bn(h.p);
    float img[4 * 2 * 14 * 14];
    tu_fill_uniform(img, 4 * 2 * hw * hw, -1.f, 1.f, 17);
    rt_set_input(h.p, net.images, img, (size_t)(4 * 2 * hw * hw) * 4);
    rt_group gw = rt_plan_group(h.p, IR_ROLE_WEIGHT), ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3);
    r->arena = rt_plan_arena_bytes(h.p);
    r->loss = loss_at(&h);
    cr_assert_eq(rt_backward(h.p, RT_GRAD_W | RT_GRAD_ARCH), 0);
    r->nw = gw.n;
    r->na = ga.n;
    r->w = malloc((size_t)gw.n * 4);
    r->a = malloc((size_t)ga.n * 4);
    r->a_only = malloc((size_t)ga.n * 4);
    memcpy(r->w, gw.grad, (size_t)gw.n * 4);
    memcpy(r->a, ga.grad, (size_t)ga.n * 4);
    loss_at(&h);
    cr_assert_eq(rt_backward(h.p, RT_GRAD_ARCH), 0);
    memcpy(r->a_only, ga.grad, (size_t)ga.n * 4);
    r->eval_loss = rt_forward(h.p, 0); /* running statistics, updated by the steps above */
    rt_group gb = rt_plan_group(h.p, IR_ROLE_BUFFER);
    r->nb = gb.n;
    r->buf = malloc((size_t)(gb.n ? gb.n : 1) * 4);
    memcpy(r->buf, gb.data, (size_t)gb.n * 4);
    free_harness(&h);
}

/* The two runs' losses and gradients, bit for bit; frees them. */
static void expect_runs_alike(fused_run r[2], const char *with) {
    cr_assert_eq(r[0].nw, r[1].nw);
    cr_assert_eq(r[0].na, r[1].na);
    double s = 0;
    for (int64_t i = 0; i < r[0].nw; i++) s += fabs(r[0].w[i]);
    cr_assert(s > 0, "weight gradients all zero");
    cr_expect_eq(memcmp(&r[0].loss, &r[1].loss, 4), 0, "training loss differs with %s: %.9g vs %.9g", with, r[0].loss,
                 r[1].loss);
    cr_expect_eq(memcmp(&r[0].eval_loss, &r[1].eval_loss, 4), 0, "inference loss differs with %s: %.9g vs %.9g", with,
                 r[0].eval_loss, r[1].eval_loss);
    cr_expect_arr_eq(r[0].w, r[1].w, (size_t)r[0].nw * 4, "weight gradients differ with %s", with);
    cr_expect_arr_eq(r[0].a, r[1].a, (size_t)r[0].na * 4, "alpha gradients differ with %s", with);
    cr_expect_arr_eq(r[0].a_only, r[1].a_only, (size_t)r[0].na * 4, "alpha-only gradients differ with %s", with);
    cr_assert(r[0].nb > 0 && r[0].nb == r[1].nb, "%lld and %lld buffers", (long long)r[0].nb, (long long)r[1].nb);
    cr_expect_arr_eq(r[0].buf, r[1].buf, (size_t)r[0].nb * 4, "running statistics differ with %s", with);
    for (int f = 0; f < 2; f++) {
        free(r[f].buf);
        free(r[f].w);
        free(r[f].a);
        free(r[f].a_only);
    }
}

static void fusion_bits_case(int hw, ir_supernet_opts so) {
    fused_run r[2];
    for (int f = 0; f < 2; f++) fused_grads(f, hw, &so, &r[f]);
    cr_expect(r[1].arena < r[0].arena * 9 / 10, "fused arena %zu not below 90 %% of unfused %zu", r[1].arena,
              r[0].arena);
    expect_runs_alike(r, "fusion");
}

Test(autodiff, fusions_change_no_gradient_bit) { fusion_bits_case(8, (ir_supernet_opts){0}); }
Test(autodiff, fusions_change_no_gradient_bit_on_planes_vectors_straddle) { fusion_bits_case(14, (ir_supernet_opts){0}); }
/* the successors' supernets: PC-DARTS' slices, shuffles and beta mixed ops, FairDARTS' WMIXED */
Test(autodiff, fusions_change_no_gradient_bit_pc_darts) { fusion_bits_case(8, (ir_supernet_opts){.partial = 2, .edge_norm = 1}); }
Test(autodiff, fusions_change_no_gradient_bit_fair_darts) { fusion_bits_case(8, (ir_supernet_opts){.sigmoid = 1}); }

/* Batch norms of one tensor taking the first one's batch statistics (DARTSC_SHARE_BN_STATS=1,
 * runtime/plan.c: the supernet's shared pools leave every edge its own batch norm of its
 * state's one max pool and one average pool, 28 batch norms of 10 tensors a cell, so 18 a
 * cell take them) change no bit of the losses, the gradients or the running statistics,
 * on planes of 64 and of 196 pixels (the kernel's paths by size: test_kernels_cpu). */
static void shared_stats_bits_case(int hw, int pools) {
    fused_run r[2];
    for (int f = 0; f < 2; f++) fused_grads(f ? 2 + pools : 1, hw, &(ir_supernet_opts){0}, &r[f]);
    cr_expect_eq(r[0].shared, 0, "%d batch norms take shared statistics by default", r[0].shared);
    cr_expect_eq(r[1].shared, (pools ? 28 : 18) * 3, "%d batch norms take shared statistics, not %d a cell", r[1].shared,
                 pools ? 28 : 18);
    cr_expect_eq(r[1].folded, pools ? 28 * 3 : 0, "%d batch norms run by their pools", r[1].folded);
    expect_runs_alike(r, pools ? "batch-norm statistics from the pools" : "shared batch-norm statistics");
}
Test(autodiff, shared_batch_norm_statistics_change_no_bit) { shared_stats_bits_case(8, 0); }
Test(autodiff, shared_batch_norm_statistics_change_no_bit_on_larger_planes) { shared_stats_bits_case(14, 0); }
/* DARTSC_POOL_BN_STATS=1: every pool batch norm (28 a cell) takes its pool's statistics,
 * and the pool runs its forward (deferred, batch statistics in every pass) */
Test(autodiff, batch_norm_statistics_from_their_pools_change_no_bit) { shared_stats_bits_case(8, 1); }
Test(autodiff, batch_norm_statistics_from_their_pools_change_no_bit_on_larger_planes) { shared_stats_bits_case(14, 1); }

/* The batch norms of one pooled tensor running one backward on the sum of their output
 * gradients (DARTSC_SUM_BN_GRADS=1, runtime/plan.c: of a DARTS cell's 28 pool batch norms,
 * 8 run the backwards of 18 others: 10 backwards where there were 28): the same forward (the losses and the running
 * statistics bit for bit), and gradients equal to rounding: the batch norms' per-channel
 * sums over the batch are taken of the summed output gradient, and a pool's gradient is
 * one term where it was the sum of up to four. The tolerance, as for the shared pools
 * above, 2e-5 relative to the group's largest gradient (~100 float roundings of the
 * largest term); measured: see the message. Against the default (base 1), the pools'
 * statistics (3) and the unfused plan (0, where each batch norm has a gradient buffer of
 * its own instead of reading its mixed op's scaled). */
static void expect_grads_close(const float *a, const float *b, int64_t n, const char *what, int base) {
    double big = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(a[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    cr_expect(big > 0, "%s: no gradient", what);
    cr_expect_leq(worst, 2e-5 * big, "%s gradients (base %d): largest difference %.3g, %.3g of the largest %.3g", what,
                  base, worst, worst / big, big);
    cr_log_info("summed batch-norm gradients, %s (base %d): largest difference %.3g of the largest gradient", what, base,
                worst / big);
}

static void summed_grads_case(int hw, int base) {
    fused_run r[2];
    fused_grads(base, hw, &(ir_supernet_opts){0}, &r[0]);
    fused_grads(base == 0 ? 6 : base == 3 ? 5 : 4, hw, &(ir_supernet_opts){0}, &r[1]);
    cr_expect_eq(r[0].summed, 0, "%d batch norms summed by default", r[0].summed);
    cr_expect_eq(r[1].summed, 18 * 3, "%d batch norms' backwards run by another, not 18 a cell", r[1].summed);
    cr_assert_eq(r[0].nw, r[1].nw);
    cr_assert_eq(r[0].na, r[1].na);
    cr_expect_eq(memcmp(&r[0].loss, &r[1].loss, 4), 0, "training loss differs: %.9g vs %.9g", r[0].loss, r[1].loss);
    cr_expect_eq(memcmp(&r[0].eval_loss, &r[1].eval_loss, 4), 0, "inference loss differs: %.9g vs %.9g", r[0].eval_loss,
                 r[1].eval_loss);
    cr_expect_arr_eq(r[0].buf, r[1].buf, (size_t)r[0].nb * 4, "running statistics differ");
    expect_grads_close(r[0].w, r[1].w, r[0].nw, "weight", base);
    expect_grads_close(r[0].a, r[1].a, r[0].na, "alpha", base);
    expect_grads_close(r[0].a_only, r[1].a_only, r[0].na, "alpha-only", base);
    if (base != 0) cr_expect_leq(r[1].arena, r[0].arena, "summed arena %zu above %zu", r[1].arena, r[0].arena);
    for (int f = 0; f < 2; f++) {
        free(r[f].buf);
        free(r[f].w);
        free(r[f].a);
        free(r[f].a_only);
    }
}
Test(autodiff, summed_batch_norm_gradients_equal_to_rounding) { summed_grads_case(8, 1); }
Test(autodiff, summed_batch_norm_gradients_with_pool_statistics) { summed_grads_case(8, 3); }
Test(autodiff, summed_batch_norm_gradients_unfused) { summed_grads_case(8, 0); }

/* The same for a retraining step: DARTS_V2's evaluation network with drop path (p 0.3:
 * dropped samples, so dy * 0 products, -0 where dy < 0) and the auxiliary head. With the
 * fusions the drop paths' backwards write their input gradients whole (grad_set) instead
 * of adding them to zeroed buffers: the same loss and weight gradients bit for bit. */
static void eval_grads(int fused, float *loss, float **w, int64_t *nw) {
    if (fused) unsetenv("DARTSC_NO_FUSION");
    else setenv("DARTSC_NO_FUSION", "1", 1);
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    tu_darts_v2_net(&sp, 6, &net);
    harness h = {.g = net.graph, .labels = net.labels, .loss = net.loss};
    make_plan(&h, 11);
    unsetenv("DARTSC_NO_FUSION");
    rt_plan_set_drop_path(h.p, 0.3f);
    float img[6 * 2 * 32 * 32];
    const int64_t ni = (int64_t)6 * sp.in_c * 32 * 32;
    cr_assert(ni <= (int64_t)(sizeof img / sizeof img[0]));
    tu_fill_uniform(img, ni, -1.f, 1.f, 19);
    rt_set_input(h.p, net.images, img, (size_t)ni * 4);
    *loss = loss_at(&h);
    cr_assert_eq(rt_backward(h.p, RT_GRAD_W), 0);
    rt_group gw = rt_plan_group(h.p, IR_ROLE_WEIGHT);
    *nw = gw.n;
    *w = malloc((size_t)gw.n * 4);
    memcpy(*w, gw.grad, (size_t)gw.n * 4);
    free_harness(&h);
}
Test(autodiff, fusions_change_no_gradient_bit_in_a_retraining_step_with_drop_path) {
    float loss[2], *w[2];
    int64_t nw[2];
    for (int f = 0; f < 2; f++) eval_grads(f, &loss[f], &w[f], &nw[f]);
    cr_assert_eq(nw[0], nw[1]);
    double s = 0;
    for (int64_t i = 0; i < nw[0]; i++) s += fabs(w[0][i]);
    cr_assert(s > 0 && isfinite(loss[0]), "loss %g, gradients' sum %g", loss[0], s);
    cr_expect_eq(memcmp(&loss[0], &loss[1], 4), 0, "training loss differs with fusion: %.9g vs %.9g", loss[0], loss[1]);
    cr_expect_arr_eq(w[0], w[1], (size_t)nw[0] * 4, "weight gradients differ with fusion");
    free(w[0]);
    free(w[1]);
}

/* rt_pass is rt_forward + rt_backward without the loss read in between (on the CPU, which
 * records no graphs, it runs the same code): the same loss through rt_loss, the same
 * correct count, the same gradient bits, one step counted; and it refuses a mask outside
 * the plan's gradient groups without running. (The CUDA graph replays are compared with
 * eager passes in test_cuda_backend.c.) */
Test(autodiff, pass_equals_forward_then_backward) {
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    harness h;
    supernet_harness(&h, &net, &sp, 4, 5, 23);
    rt_group gw = rt_plan_group(h.p, IR_ROLE_WEIGHT), ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    const unsigned masks[3] = {RT_GRAD_W | RT_GRAD_ARCH, RT_GRAD_ARCH, RT_GRAD_W};
    for (int m = 0; m < 3; m++) {
        const uint64_t step = rt_plan_step(h.p);
        float le = rt_forward(h.p, 1);
        int ce = rt_last_correct(h.p);
        cr_assert_eq(rt_backward(h.p, masks[m]), 0);
        float *w = malloc((size_t)gw.n * 4), *a = malloc((size_t)ga.n * 4);
        memcpy(w, gw.grad, (size_t)gw.n * 4);
        memcpy(a, ga.grad, (size_t)ga.n * 4);
        memset(gw.grad, 0xff, (size_t)gw.n * 4); /* NaN: a pass that skipped the backward fails */
        memset(ga.grad, 0xff, (size_t)ga.n * 4);
        rt_plan_set_step(h.p, step);
        cr_assert_eq(rt_pass(h.p, 1, masks[m]), 0);
        cr_expect_eq(rt_plan_step(h.p), step + 1);
        float lp = rt_loss(h.p);
        cr_expect_eq(memcmp(&le, &lp, 4), 0, "mask %u: loss %.9g vs %.9g", masks[m], lp, le);
        cr_expect_eq(rt_last_correct(h.p), ce);
        if (masks[m] & RT_GRAD_W) cr_expect_arr_eq(w, gw.grad, (size_t)gw.n * 4, "mask %u: weight gradients", masks[m]);
        if (masks[m] & RT_GRAD_ARCH) cr_expect_arr_eq(a, ga.grad, (size_t)ga.n * 4, "mask %u: alpha gradients", masks[m]);
        free(w);
        free(a);
    }
    const uint64_t step = rt_plan_step(h.p);
    cr_expect_eq(rt_pass(h.p, 1, 8u), -1);
    cr_expect_eq(rt_plan_step(h.p), step, "a refused pass ran");
    free_harness(&h);
}

/* Work that is not asked for is not done: an alpha-only backward leaves the weight
 * gradients untouched, and gives the same alpha gradient as a full backward. */
Test(autodiff, alpha_only_backward_skips_weight_gradients) {
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    harness h;
    supernet_harness(&h, &net, &sp, 2, 7, 5);
    rt_group gw = rt_plan_group(h.p, IR_ROLE_WEIGHT), ga = rt_plan_group(h.p, IR_ROLE_ARCH);
    for (int64_t i = 0; i < gw.n; i++) gw.grad[i] = 12345.f;
    loss_at(&h);
    cr_assert_eq(rt_backward(h.p, RT_GRAD_ARCH), 0);
    for (int64_t i = 0; i < gw.n; i++) cr_assert_eq(gw.grad[i], 12345.f, "weight grad %lld touched", (long long)i);
    float *a1 = malloc((size_t)ga.n * 4);
    memcpy(a1, ga.grad, (size_t)ga.n * 4);
    loss_at(&h);
    cr_assert_eq(rt_backward(h.p, RT_GRAD_ARCH | RT_GRAD_W), 0);
    cr_expect_arr_eq(a1, ga.grad, (size_t)ga.n * 4, "alpha gradient depends on whether weights were asked for");
    double s = 0;
    for (int64_t i = 0; i < gw.n; i++) s += fabs(gw.grad[i]);
    cr_expect(s > 0 && s < 1e6);
    free(a1);
    free_harness(&h);
}

/* Liveness planning actually reuses memory: the arena is smaller than the sum of all
 * activations, gradients and saved state. */
Test(plan, arena_smaller_than_naive) {
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, 4, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    char err[256];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = 3}, err, sizeof err);
    cr_assert(p, "%s", err);
    size_t naive = 0;
    for (int i = 0; i < ir_graph_num_nodes(net.graph); i++) {
        const ir_node *n = ir_graph_node(net.graph, i);
        if (n->op != IR_OP_PARAM) naive += 2 * (size_t)ir_node_numel(n) * 4;
    }
    cr_expect(rt_plan_arena_bytes(p) < naive / 2, "arena %zu vs naive %zu", rt_plan_arena_bytes(p), naive);
    rt_plan *inf = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = 0}, err, sizeof err);
    cr_assert(inf, "%s", err);
    cr_expect(rt_plan_arena_bytes(inf) < rt_plan_arena_bytes(p) / 2, "inference arena %zu vs training %zu",
              rt_plan_arena_bytes(inf), rt_plan_arena_bytes(p));
    rt_plan_free(inf);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* Device names: "cpu" is the CPU; "auto" is CUDA where a device is usable, else the CPU,
 * and rt_device_resolve names the same choice; an unknown name is refused with the
 * choices named. */
Test(runtime, device_names_resolve) {
    char err[256] = "";
    rt_backend *be = rt_backend_open("cpu", err, sizeof err);
    cr_assert(be);
    cr_expect_str_eq(be->name, "cpu");
    be->destroy(be);
    be = rt_backend_open("auto", err, sizeof err);
    cr_assert(be, "auto never fails: %s", err);
    char opened[16];
    snprintf(opened, sizeof opened, "%s", be->name);
    be->destroy(be); /* one CUDA backend per process: the probe below makes its own */
    const char *name = rt_device_resolve("auto");
    cr_expect_str_eq(opened, name, "auto opened %s, resolves to %s", opened, name);
    cr_expect_str_eq(rt_device_resolve("cpu"), "cpu");
    cr_expect_null(rt_backend_open("gpu", err, sizeof err));
    cr_expect(strstr(err, "'gpu'") && strstr(err, "auto"), "message: %s", err);
}

/* The plan's memory against what a pass touches (rt_plan_audit): every arena range that
 * an op of a training pass (both gradient masks) or an inference pass reads or writes lies
 * in a buffer live at that op's time, for the supernet by default, without the fusions,
 * with shared batch-norm statistics and with the pools writing them and running their
 * batch norms' forwards (whose saved state the pool writes before the batch norm's own
 * place in the schedule): a lifetime planned too short shows here even where the packing
 * happened to leave its memory alone. */
static void audit_case2(const char *env, const char *env2);
static void audit_case(const char *env) { audit_case2(env, NULL); }
static void audit_case2(const char *env, const char *env2) {
    if (env) setenv(env, "1", 1);
    if (env2) setenv(env2, "1", 1);
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, 4, &net), 0, "%s", net.error);
    harness h = {.g = net.graph, .labels = net.labels, .loss = net.loss};
    make_plan(&h, 11);
    if (env) unsetenv(env);
    if (env2) {
        unsetenv(env2);
        cr_assert_gt(rt_plan_summed_bn(h.p), 0, "%s: no batch norm summed", env2);
    }
    char err[512];
    const unsigned masks[3] = {RT_GRAD_W | RT_GRAD_ARCH, RT_GRAD_W, RT_GRAD_ARCH};
    for (int m = 0; m < 3; m++) {
        err[0] = 0;
        const int bad = rt_plan_audit(h.p, 1, masks[m], err, sizeof err);
        cr_expect_eq(bad, 0, "%s, mask %u: %d ranges outside their buffers' lifetimes; the first: %s",
                     env ? env : "default", masks[m], bad, err);
    }
    err[0] = 0;
    const int bad = rt_plan_audit(h.p, 0, 0, err, sizeof err);
    cr_expect_eq(bad, 0, "%s, inference: %d ranges outside their buffers' lifetimes; the first: %s",
                 env ? env : "default", bad, err);
    free_harness(&h);
}
Test(plan_audit, supernet_passes_touch_only_live_buffers) { audit_case(NULL); }
Test(plan_audit, supernet_passes_touch_only_live_buffers_unfused) { audit_case("DARTSC_NO_FUSION"); }
Test(plan_audit, supernet_passes_touch_only_live_buffers_shared_statistics) { audit_case("DARTSC_SHARE_BN_STATS"); }
Test(plan_audit, supernet_passes_touch_only_live_buffers_pool_statistics) { audit_case("DARTSC_POOL_BN_STATS"); }
/* the summed batch-norm backwards: their output gradients read by the lead's backward */
Test(plan_audit, supernet_passes_touch_only_live_buffers_summed_bn) { audit_case2(NULL, "DARTSC_SUM_BN_GRADS"); }
Test(plan_audit, supernet_passes_touch_only_live_buffers_summed_bn_unfused) {
    audit_case2("DARTSC_NO_FUSION", "DARTSC_SUM_BN_GRADS");
}
Test(plan_audit, supernet_passes_touch_only_live_buffers_summed_bn_pool_statistics) {
    audit_case2("DARTSC_POOL_BN_STATS", "DARTSC_SUM_BN_GRADS");
}
