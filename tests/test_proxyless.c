/* test_proxyless.c — ProxylessNAS (search/proxyless.h, driver/proxyless_latency.c) on the
 * properties that define it: a weight step runs one sampled path per edge (its plan holds one
 * candidate per edge, plans far less memory than DARTS's step, and computes exactly what the
 * supernet computes with that path's one-hot alpha); the gate gradients of the two-path plan
 * against finite differences of the loss in the gates; the estimator against the exact
 * expectation's gradient and its two-path form and rescaling against their formulas; the
 * latency coefficients' shapes and E[latency]'s gradient against finite differences; a real
 * latency-table entry measured on this machine and cached; a bit-identical resume; bad
 * settings refused. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "frontend/fe.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"
#include "search/proxyless.h"
#include "search/search.h"
#include "testutil.h"

/* ---- the step plans ------------------------------------------------------------------------- */

static size_t arena_of(const ir_net *net, unsigned grads) {
    rt_backend *be = rt_backend_cpu_new();
    char err[256];
    rt_plan *p = rt_plan_new(net->graph, be, &(rt_plan_opts){.seed = 1, .grads = grads}, err, sizeof err);
    cr_assert(p, "%s", err);
    size_t b = rt_plan_arena_bytes(p);
    rt_plan_free(p);
    be->destroy(be);
    return b;
}

/* The candidates of edge e of cell ci in a step graph: how many op outputs its mixed node
 * reads (0 for a ZERO node: every column 'none'). */
static int edge_inputs(const ir_graph *g, int ci, int e) {
    char name[64];
    snprintf(name, sizeof name, "cells.%d._ops.%d", ci, e);
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (strcmp(n->name, name)) continue;
        if (n->op == IR_OP_ZERO) return 0;
        cr_assert_eq(n->op, IR_OP_WMIXED, "%s is not a gated mix", name);
        return n->n_inputs - 1;
    }
    cr_assert_fail("no node %s", name);
    return -1;
}

/* A weight step of proxyless on the search tests' space (batch 16, real shapes, synthetic
 * images): its plan holds exactly one candidate per edge and plans less than half of DARTS's
 * step (the mixed ops' activations are most of DARTS's arena: with 7 computing candidates per
 * edge, one path keeps about a fifth to a third of them, depending on which are drawn; bound
 * 0.5 leaves room for the arena's packing and the cells' fixed parts), and never more than the
 * heaviest uniform path (every edge sep_conv_3x3); an alpha step plans two paths, at most the
 * heaviest pair on every edge. The weight step's loss and the master's weight gradient
 * equal the DARTS supernet's at that path's one-hot alpha (exp(-1e4) = 0: the same sums with
 * exact zeros; tolerance 1e-5 relative: the same kernels, but other arena buffers). */
Test(proxyless, a_weight_step_runs_one_path_per_edge_and_is_the_supernet_on_it, .timeout = 120) {
    ir_space sp;
    tu_demo_search_space(&sp);
    sp.search.latency_weight = 0;
    const int B = 16;
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, B, &net), 0, "%s", net.error);
    size_t darts = arena_of(&net, RT_GRAD_W | RT_GRAD_ARCH);
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 3, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    cr_assert(p, "%s", err);
    sr_options o = sr_options_default();
    sr_px *px = sr_px_new(&sp, &o, p, &net, B, NULL, err, sizeof err);
    cr_assert(px, "%s", err);
    float *x = malloc(sizeof *x * B * 28 * 28);
    int32_t y[16];
    tu_fill_uniform(x, B * 28 * 28, -1.f, 1.f, 7);
    for (int i = 0; i < B; i++) y[i] = (i * 7) % 10;
    float loss, loss2_unused;
    double correct;
    cr_assert_eq(sr_px_weight_pass(px, x, y, 5, &loss, &correct, err, sizeof err), 0, "%s", err);
    size_t aw, aa;
    sr_px_arena_bytes(px, &aw, &aa);
    /* the sampled path, and its plan rebuilt: one candidate per edge */
    const int *cols[2], *act[2];
    int n[2];
    sr_px_sampled(px, 0, &n[0], &cols[0], &act[0]);
    sr_px_sampled(px, 1, &n[1], &cols[1], &act[1]);
    cr_assert(n[0] == 1 && n[1] == 1);
    ir_net step;
    cr_assert_eq(sr_px_build_step_net(&sp, B, cols, 1, &step), 0, "%s", step.error);
    const ir_cell *cells[2] = {&sp.normal, &sp.reduce};
    int drawn[IR_MAX_CANDS] = {0};
    for (int ci = 0; ci < sp.layers; ci++) {
        int t = ci == sp.reduce_at[0];
        for (int e = 0; e < ir_cell_num_edges(cells[t]); e++) {
            int none = cells[t]->ops[cols[t][e]].kind == IR_CAND_NONE;
            cr_expect_eq(edge_inputs(step.graph, ci, e), none ? 0 : 1, "cell %d edge %d", ci, e);
            drawn[cols[t][e]]++;
        }
    }
    ir_net_free(&step);
    size_t all_sep;
    {
        int sep = 4; /* sep_conv_3x3 in the DARTS list */
        cr_assert_eq(cells[0]->ops[sep].kind, IR_CAND_SEP_CONV);
        int *c[2] = {malloc(sizeof(int) * 64), malloc(sizeof(int) * 64)};
        for (int i = 0; i < 64; i++) c[0][i] = c[1][i] = sep;
        ir_net worst;
        cr_assert_eq(sr_px_build_step_net(&sp, B, (const int *const *)c, 1, &worst), 0, "%s", worst.error);
        all_sep = arena_of(&worst, RT_GRAD_W);
        ir_net_free(&worst);
        free(c[0]);
        free(c[1]);
    }
    cr_log_info("planned arena: DARTS step %zu, proxyless weight step %zu (%.2f of DARTS), every edge sep_conv %zu", darts,
                aw, (double)aw / darts, all_sep);
    cr_expect(aw > 0 && aw <= all_sep, "weight step %zu, every edge sep_conv %zu", aw, all_sep);
    cr_expect(aw < darts / 2, "weight step %zu vs DARTS %zu", aw, darts);
    cr_expect(all_sep < darts / 2, "every edge sep_conv %zu vs DARTS %zu", all_sep, darts);

    /* an alpha step: two candidates per edge, at most the heaviest pair everywhere
       (sep_conv_3x3 and sep_conv_5x5), less than DARTS's step (bound 0.75: two of seven) */
    int path[2][64];
    for (int t = 0; t < 2; t++) memcpy(path[t], cols[t], sizeof(int) * (size_t)ir_cell_num_edges(cells[t]));
    cr_assert_eq(sr_px_alpha_grad(px, x, y, 5, &loss2_unused, &correct, err, sizeof err), 0, "%s", err);
    sr_px_arena_bytes(px, &aw, &aa);
    int n2;
    const int *pc, *pa;
    sr_px_sampled(px, 0, &n2, &pc, &pa);
    cr_expect_eq(n2, 2);
    for (int e = 0; e < ir_cell_num_edges(cells[0]); e++) cr_expect_neq(pc[2 * e], pc[2 * e + 1], "edge %d drew one op twice", e);
    size_t two_sep;
    {
        int *c[2] = {malloc(sizeof(int) * 128), malloc(sizeof(int) * 128)};
        for (int i = 0; i < 64; i++) c[0][2 * i] = c[1][2 * i] = 4, c[0][2 * i + 1] = c[1][2 * i + 1] = 5;
        ir_net worst;
        cr_assert_eq(sr_px_build_step_net(&sp, B, (const int *const *)c, 2, &worst), 0, "%s", worst.error);
        two_sep = arena_of(&worst, RT_GRAD_ARCH);
        ir_net_free(&worst);
        free(c[0]);
        free(c[1]);
    }
    cr_log_info("planned arena: proxyless alpha step %zu (%.2f of DARTS), every edge sep_conv_3x3 + 5x5 %zu", aa,
                (double)aa / darts, two_sep);
    cr_expect(aa > 0 && aa <= two_sep && aa < darts / 4 * 3, "alpha step %zu, heaviest pair %zu, DARTS %zu", aa, two_sep,
              darts);
    cols[0] = path[0];
    cols[1] = path[1];

    /* the same step on the supernet with the path's one-hot alpha */
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT), ga = rt_plan_group(p, IR_ROLE_ARCH);
    float *g1 = malloc(sizeof *g1 * (size_t)gw.n), *g2 = malloc(sizeof *g2 * (size_t)gw.n);
    float *a = malloc(sizeof *a * (size_t)ga.n);
    be->download(be, g1, gw.grad, sizeof *g1 * (size_t)gw.n);
    for (int t = 0; t < 2; t++) {
        float *at = a + ((float *)rt_node_data(p, net.alpha[t]) - ga.data);
        for (int e = 0; e < ir_cell_num_edges(cells[t]); e++)
            for (int op = 0; op < cells[t]->n_ops; op++) at[e * cells[t]->n_ops + op] = op == cols[t][e] ? 0.f : SR_ENAS_OFF;
    }
    be->upload(be, ga.data, a, sizeof *a * (size_t)ga.n);
    rt_set_input(p, net.images, x, sizeof *x * B * 28 * 28);
    rt_set_input(p, net.labels, y, sizeof y);
    cr_assert_eq(rt_pass(p, 1, RT_GRAD_W), 0);
    float l2 = rt_loss(p);
    be->download(be, g2, gw.grad, sizeof *g2 * (size_t)gw.n);
    cr_expect(fabsf(loss - l2) <= 1e-5f * fabsf(l2), "loss %.9g vs supernet %.9g", loss, l2);
    double md = 0, mg = 0;
    for (int64_t i = 0; i < gw.n; i++) {
        md = fmax(md, fabs((double)g1[i] - g2[i]));
        mg = fmax(mg, fabs((double)g2[i]));
    }
    cr_expect(mg > 0 && md <= 1e-5 * mg, "weight gradients differ by %g (largest %g)", md, mg);
    free(g1);
    free(g2);
    free(a);
    free(x);
    sr_px_free(px);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* The alpha step's plan (two candidates per edge, gates one-hot) gives dL/dg for both
 * candidates, the inactive one included: against central differences of the loss in each
 * gate. On 8x8 inputs at batch 4 (the test space's cells, C 4): the ReLUs and max pools make
 * the loss piecewise smooth, and on 28x28 images a step of 1e-3 crosses enough kinks to move
 * the difference by a few percent; at 8x8 fewer, but a kink within h of the point still spoils
 * a step, and rounding spoils the smallest steps. So each gate is checked at h = 1e-3, 3e-4
 * and 1e-4 and must match at one of them (a wrong gradient: a missing term, a wrong scale or
 * column, matches at none): |fd - g| <= 2e-2 max|g| (tests/test_ops_grad.c's relative part)
 * + 4 eps |L| / 2h (float32 rounding of the two losses). */
Test(proxyless, the_gates_gradient_matches_finite_differences_of_the_loss, .timeout = 120) {
    ir_space sp;
    tu_demo_search_space(&sp);
    sp.in_h = sp.in_w = 8;
    const int B = 4, HW = 8 * 8;
    const ir_cell *cells[2] = {&sp.normal, &sp.reduce};
    int *cols[2];
    for (int t = 0; t < 2; t++) {
        int E = ir_cell_num_edges(cells[t]);
        cols[t] = malloc(sizeof(int) * 2 * (size_t)E);
        for (int e = 0; e < E; e++) { /* computing pairs: sep/dil convs with pools and skip */
            cols[t][2 * e] = 4 + (e % 4);
            cols[t][2 * e + 1] = 1 + ((e + 1) % 3);
        }
    }
    ir_net net;
    cr_assert_eq(sr_px_build_step_net(&sp, B, (const int *const *)cols, 2, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    char err[256];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 11, .grads = RT_GRAD_ARCH}, err, sizeof err);
    cr_assert(p, "%s", err);
    rt_group ga = rt_plan_group(p, IR_ROLE_ARCH);
    float *gates = calloc((size_t)ga.n, sizeof *gates), *grad = malloc(sizeof *grad * (size_t)ga.n);
    int64_t idx[64];
    int ni = 0;
    for (int t = 0; t < 2; t++) { /* per edge one active gate, alternating between the pair */
        int64_t off = (float *)rt_node_data(p, net.alpha[t]) - ga.data;
        for (int e = 0; e < ir_cell_num_edges(cells[t]); e++) {
            gates[off + 2 * e + e % 2] = 1.f;
            idx[ni++] = off + 2 * e;
            idx[ni++] = off + 2 * e + 1;
        }
    }
    float *x = malloc(sizeof *x * B * HW);
    int32_t y[4];
    tu_fill_uniform(x, B * HW, -1.f, 1.f, 3);
    for (int i = 0; i < B; i++) y[i] = 3 * i;
    rt_set_input(p, net.images, x, sizeof *x * B * HW);
    rt_set_input(p, net.labels, y, sizeof y);
    be->upload(be, ga.data, gates, sizeof *gates * (size_t)ga.n);
    rt_forward(p, 1);
    cr_assert_eq(rt_backward(p, RT_GRAD_ARCH), 0);
    be->download(be, grad, ga.grad, sizeof *grad * (size_t)ga.n);
    double gmax = 0;
    for (int k = 0; k < ni; k++) gmax = fmax(gmax, fabs(grad[idx[k]]));
    cr_expect(gmax > 0);
    double L = rt_forward(p, 1);
    for (int k = 0; k < ni; k++) {
        int64_t i = idx[k];
        const float g0 = gates[i], hs[3] = {1e-3f, 3e-4f, 1e-4f};
        double best = INFINITY, fd_best = 0;
        for (int j = 0; j < 3; j++) {
            gates[i] = g0 + hs[j];
            be->upload(be, ga.data, gates, sizeof *gates * (size_t)ga.n);
            double lp = rt_forward(p, 1);
            gates[i] = g0 - hs[j];
            be->upload(be, ga.data, gates, sizeof *gates * (size_t)ga.n);
            double lm = rt_forward(p, 1);
            gates[i] = g0;
            double fd = (lp - lm) / (2 * hs[j]), tol = 2e-2 * gmax + 4 * FLT_EPSILON * fabs(L) / (2 * hs[j]);
            if (fabs(fd - grad[i]) / tol < best) {
                best = fabs(fd - grad[i]) / tol;
                fd_best = fd;
            }
        }
        cr_expect(best <= 1, "gate %d (%s): dL/dg %g, nearest finite difference %g (%.2f of its tolerance)", k,
                  g0 ? "active" : "inactive", grad[i], fd_best, best);
    }
    free(gates);
    free(grad);
    free(x);
    free(cols[0]);
    free(cols[1]);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* ---- the estimator ------------------------------------------------------------------------- */

static double expect_linear(const float *a, const double *c, int n) { /* sum_j softmax(a)_j c_j */
    double m = a[0], s = 0, e = 0;
    for (int i = 1; i < n; i++) m = fmax(m, a[i]);
    for (int i = 0; i < n; i++) s += exp(a[i] - m);
    for (int i = 0; i < n; i++) e += exp(a[i] - m) / s * c[i];
    return e;
}

/* With every candidate involved and a loss linear in the gates (L = sum_j c_j g_j, so dL/dg_j
 * = c_j), Eq. 4 is the exact gradient of E_g[L] = sum_j p_j c_j: against its central
 * differences (h = 1e-3 on float alpha, the expectation in double: truncation ~h^2 = 1e-6
 * times the third derivative, bounded by max|c| = 2; tolerance 1e-5). The two-path form is
 * Eq. 4 on the pair's own softmax and leaves the others' gradient 0; the rescaling after a
 * step keeps every uninvolved candidate's probability (1e-6, float logits). */
Test(proxyless, the_estimator_is_the_exact_gradient_and_its_two_path_form_and_rescaling_hold) {
    const int n = 6;
    float a[6] = {0.3f, -1.2f, 0.8f, 0.05f, -0.4f, 1.1f};
    double c[6] = {1.5, -0.7, 0.2, 2.0, -1.1, 0.4};
    int idx[6] = {0, 1, 2, 3, 4, 5};
    float g[6] = {0};
    sr_px_estimator(n, idx, a, c, g);
    for (int i = 0; i < n; i++) {
        float ap[6], am[6];
        memcpy(ap, a, sizeof a);
        memcpy(am, a, sizeof a);
        ap[i] += 1e-3f;
        am[i] -= 1e-3f;
        double fd = (expect_linear(ap, c, n) - expect_linear(am, c, n)) / ((double)ap[i] - (double)am[i]);
        cr_expect(fabs(fd - g[i]) <= 1e-5, "alpha %d: estimator %g, finite difference %g", i, g[i], fd);
    }
    /* two paths, 3 and 1 */
    float g2[6] = {0};
    int pair[2] = {3, 1};
    double dg[2] = {0.9, -0.35};
    sr_px_estimator(2, pair, a, dg, g2);
    double p0 = 1 / (1 + exp((double)a[1] - a[3])), p1 = 1 - p0;
    double want3 = dg[0] * p0 * (1 - p0) - dg[1] * p1 * p0, want1 = dg[1] * p1 * (1 - p1) - dg[0] * p0 * p1;
    cr_expect(fabs(g2[3] - want3) <= 1e-7 && fabs(g2[1] - want1) <= 1e-7, "pair: %g %g, formula %g %g", g2[3], g2[1], want3,
              want1);
    for (int i = 0; i < n; i++)
        if (i != 3 && i != 1) cr_expect_eq(g2[i], 0.f, "uninvolved alpha %d got %g", i, g2[i]);
    /* a step on the pair (and, as Adam's momentum does, a small move of an uninvolved one's
       logit is not what rescaling is about: only the pair moves here), then the rescaling */
    float b[6];
    memcpy(b, a, sizeof a);
    b[3] += 0.37f;
    b[1] -= 0.21f;
    sr_px_rescale(2, pair, a, b);
    double pa[6], pb[6], sa = 0, sb = 0;
    for (int i = 0; i < n; i++) {
        sa += pa[i] = exp(a[i]);
        sb += pb[i] = exp(b[i]);
    }
    for (int i = 0; i < n; i++)
        if (i != 3 && i != 1) cr_expect(fabs(pa[i] / sa - pb[i] / sb) <= 1e-6, "p_%d %g -> %g", i, pa[i] / sa, pb[i] / sb);
    cr_expect(fabs((b[3] - b[1]) - (a[3] - a[1] + 0.58f)) <= 1e-5, "the pair's difference is the step's");
}

/* ---- latency --------------------------------------------------------------------------------- */

typedef struct syn_lat {
    int calls;
    int seen[64][5]; /* op kind, C, H, W, stride */
} syn_lat;

static double syn_ms(int kind, int C, int H, int W, int stride) {
    return 1e-6 * (kind + 1) * C * H * W / (stride * stride) + 1e-4 * kind;
}

static int syn_latency(void *ctx, const ir_space *sp, const ir_cand *op, int C, int H, int W, int stride, double *ms,
                       char *err, size_t errlen) {
    (void)sp;
    (void)err;
    (void)errlen;
    syn_lat *s = ctx;
    if (s && s->calls < 64) {
        int *v = s->seen[s->calls];
        v[0] = op->kind;
        v[1] = C;
        v[2] = H;
        v[3] = W;
        v[4] = stride;
    }
    if (s) s->calls++;
    *ms = syn_ms(op->kind, C, H, W, stride);
    return 0;
}

/* The coefficients sum each candidate's latency over the cells of its type at each edge's
 * shape: on the test space (C 4, cells: normal 28x28 C 4, reduction C 8 from 28x28, normal
 * 14x14 C 8) the normal cell's edge e, op o is lat(o, 4, 28, 28, 1) + lat(o, 8, 14, 14, 1); a
 * reduction edge from a cell input is lat(o, 8, 28, 28, 2), from a node lat(o, 8, 14, 14, 1);
 * 'none' and the identity skip are 0 and never asked. Then E[latency]'s gradient against
 * central differences (h = 1e-3, double sums: tolerance 1e-7 relative to the largest entry
 * plus 1e-9). */
Test(proxyless, latency_coefficients_follow_the_shapes_and_the_expected_latency_gradient_is_exact) {
    ir_space sp;
    tu_demo_search_space(&sp);
    syn_lat s = {0};
    sr_options o = sr_options_default();
    o.op_latency = syn_latency;
    o.op_latency_ctx = &s;
    const ir_cell *cells[2] = {&sp.normal, &sp.reduce};
    double *lat[2];
    for (int t = 0; t < 2; t++) lat[t] = malloc(sizeof(double) * (size_t)ir_cell_num_edges(cells[t]) * cells[t]->n_ops);
    char err[256];
    cr_assert_eq(sr_px_latency_coeffs(&sp, &o, lat, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < s.calls && i < 64; i++)
        cr_expect(s.seen[i][0] != IR_CAND_NONE && !(s.seen[i][0] == IR_CAND_SKIP && s.seen[i][4] == 1), "asked for a free op");
    const int O = sp.normal.n_ops;
    for (int e = 0; e < ir_cell_num_edges(&sp.normal); e++)
        for (int op = 0; op < O; op++) {
            ir_cand_kind k = sp.normal.ops[op].kind;
            double want = k == IR_CAND_NONE || k == IR_CAND_SKIP ? 0 : syn_ms(k, 4, 28, 28, 1) + syn_ms(k, 8, 14, 14, 1);
            cr_expect(fabs(lat[0][e * O + op] - want) <= 1e-12, "normal edge %d op %d: %g, want %g", e, op, lat[0][e * O + op], want);
        }
    for (int e = 0; e < ir_cell_num_edges(&sp.reduce); e++) {
        int node, src;
        ir_cell_edge(&sp.reduce, e, &node, &src);
        for (int op = 0; op < O; op++) {
            ir_cand_kind k = sp.reduce.ops[op].kind;
            double want = k == IR_CAND_NONE || (k == IR_CAND_SKIP && src >= 2) ? 0
                          : src < 2                                             ? syn_ms(k, 8, 28, 28, 2)
                                                                                : syn_ms(k, 8, 14, 14, 1);
            cr_expect(fabs(lat[1][e * O + op] - want) <= 1e-12, "reduce edge %d op %d: %g, want %g", e, op, lat[1][e * O + op],
                      want);
        }
    }
    /* E[latency] and its gradient */
    const int n = ir_cell_num_edges(&sp.reduce) * O;
    float *a = malloc(sizeof *a * n), *g = calloc((size_t)n, sizeof *g);
    tu_fill_uniform(a, n, -1.f, 1.f, 5);
    sr_px_expected_latency(&sp.reduce, a, lat[1], g, 2.5f);
    double gmax = 0;
    for (int i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    cr_expect(gmax > 0);
    for (int i = 0; i < n; i++) {
        float keep = a[i];
        a[i] = keep + 1e-3f;
        double up = sr_px_expected_latency(&sp.reduce, a, lat[1], NULL, 0), hp = a[i];
        a[i] = keep - 1e-3f;
        double dn = sr_px_expected_latency(&sp.reduce, a, lat[1], NULL, 0), hm = a[i];
        a[i] = keep;
        double fd = 2.5 * (up - dn) / (hp - hm);
        cr_expect(fabs(fd - g[i]) <= 1e-7 * gmax + 1e-9, "alpha %d: %g vs finite difference %g", i, g[i], fd);
    }
    free(a);
    free(g);
    free(lat[0]);
    free(lat[1]);
}

/* ---- the search --------------------------------------------------------------------------------- */

static void px_search(const ir_space *sp, const char *dir, int resume, int64_t stop_after, sr_result *res) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.device = "cpu";
    o.resume = resume;
    o.stop_after_steps = stop_after;
    o.strategy = SR_PROXYLESS;
    o.op_latency = syn_latency;
    char err[1024];
    cr_assert_eq(sr_search(sp, &o, res, err, sizeof err), 0, "%s", err);
}

/* An uninterrupted search and one stopped after 3 steps and resumed end identically (the
 * samples are functions of (seed, step); the latency term on, lambda 50 per ms with the
 * synthetic table, so that it moves alpha); metrics.jsonl carries E[latency]; a resume with
 * another lambda is refused, naming it. */
Test(proxyless, search_resumes_bit_identically_and_logs_the_expected_latency, .timeout = 300) {
    ir_space sp;
    tu_demo_search_space(&sp);
    sp.search.latency_weight = 50;
    char a[300], b[300], path[400];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    px_search(&sp, a, 0, 0, &ra);
    cr_assert(!ra.stopped);
    cr_expect_eq(ra.steps, 8);
    px_search(&sp, b, 0, 3, &rb);
    cr_assert(rb.stopped);
    px_search(&sp, b, 1, 0, &rb);
    tu_expect_same_file(a, b, "genotype.json");
    tu_expect_same_file(a, b, "alpha.jsonl");
    tu_expect_same_state(a, b);
    snprintf(path, sizeof path, "%s/metrics.jsonl", a);
    char *m = tu_slurp(path, NULL);
    cr_assert(m);
    double first = -1, last = -1;
    for (char *l = m; (l = strstr(l, "\"expected_latency_ms\":")); l++) {
        last = atof(l + 22);
        if (first < 0) first = last;
    }
    cr_expect(first > 0 && last > 0, "no expected_latency_ms in %.300s", m);
    cr_log_info("E[latency] %g -> %g ms (synthetic table, lambda 50)", first, last);
    cr_expect(last < first, "the latency term should lower E[latency]: %g -> %g", first, last);
    free(m);
    sr_options o = sr_options_default();
    o.out_dir = b;
    o.device = "cpu";
    o.resume = 1;
    o.strategy = SR_PROXYLESS;
    o.op_latency = syn_latency;
    sp.search.latency_weight = 1;
    char err[1024];
    cr_expect_eq(sr_search(&sp, &o, &rb, err, sizeof err), -1);
    cr_expect(strstr(err, "latency_weight 50 (now 1)"), "%s", err);
    sp.search.latency_weight = 50;
    sp.search.order = 2;
    cr_expect_eq(sr_search(&sp, &o, &rb, err, sizeof err), -1);
    cr_expect(strstr(err, "order 2"), "%s", err);
}

/* ---- the driver: a real table entry, the cache, bad flags ------------------------------------ */

static int sh_out(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One candidate (max_pool 3x3) on a one-cell space: `dartsc search --strategy proxyless`
 * measures it at its one shape (8x28x28, stride 1) on this machine and caches the line
 * (positive ms, keyed by op, shape, compiler and -O2); a second search with the same
 * --latency-cache measures nothing (the table and the measured C are untouched). */
Test(proxyless, dartsc_measures_a_real_table_entry_and_caches_it, .timeout = 300) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    const char *dir = tu_tmpdir();
    char path[600], cmd[3000], out[8192];
    snprintf(path, sizeof path, "%s/one.dartsc", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("ops o = { none, max_pool(3) }\n"
          "cell normal { nodes 1; keep 1; ops o }\n"
          "cell reduce : normal { reduction }\n"
          "network n { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 1; reduce_at [] }\n"
          "search { epochs 1; batch 16; subset 64; strategy proxyless; latency_weight 1 }\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s search %s --device cpu --out %s/r1 --latency-cache %s/cache 2>&1", bin, path, dir, dir);
    cr_assert_eq(sh_out(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    snprintf(path, sizeof path, "%s/cache/latency-table.tsv", dir);
    char *t = tu_slurp(path, NULL);
    cr_assert(t, "no %s", path);
    char key[64], cc[256], flags[32];
    int C, H, W, s;
    double ms;
    cr_assert_eq(sscanf(t, "%63[^\t]\t%d\t%d\t%d\t%d\t%255[^\t]\t%31[^\t]\t%lf", key, &C, &H, &W, &s, cc, flags, &ms), 8, "%s", t);
    cr_expect(strchr(t, '\n') == t + strlen(t) - 1, "one line expected: %s", t);
    cr_expect_str_eq(key, "max_pool_3x3/4/3/0");
    cr_expect(C == 8 && H == 28 && W == 28 && s == 1, "%s", t);
    cr_expect_str_eq(flags, "-O2");
    cr_expect(strlen(cc) > 0);
    cr_expect(ms > 0 && ms < 10, "a 3x3 max pool over 8x28x28 timed at %g ms", ms);
    snprintf(path, sizeof path, "%s/cache/latency-ops/model.c", dir);
    struct stat st1, st2;
    cr_assert_eq(stat(path, &st1), 0);
    snprintf(path, sizeof path, "%s/one.dartsc", dir);
    snprintf(cmd, sizeof cmd, "%s search %s --device cpu --out %s/r2 --latency-cache %s/cache 2>&1", bin, path, dir, dir);
    cr_assert_eq(sh_out(cmd, out, sizeof out), 0, "%s\n%s", cmd, out);
    snprintf(path, sizeof path, "%s/cache/latency-table.tsv", dir);
    char *t2 = tu_slurp(path, NULL);
    cr_expect_str_eq(t2, t, "the second search changed the table");
    snprintf(path, sizeof path, "%s/cache/latency-ops/model.c", dir);
    cr_assert_eq(stat(path, &st2), 0);
    cr_expect(st1.st_mtim.tv_sec == st2.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec,
              "the second search measured again");
    snprintf(path, sizeof path, "%s/r2/metrics.jsonl", dir);
    char *m = tu_slurp(path, NULL);
    cr_expect(m && strstr(m, "\"expected_latency_ms\":"), "%s", m ? m : "(none)");
    free(m);
    free(t);
    free(t2);
    /* bad flags and settings: exit 2 (flags) or 1 (the space, the search), the value named */
    const char *bad[][2] = {{"--latency-weight -1", "--latency-weight: '-1'"},
                            {"--latency-weight fast", "--latency-weight: 'fast'"},
                            {"--latency-cache ''", "--latency-cache needs a directory"},
                            {"--order 2", "order 2 is not defined for it"}};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/one.dartsc", dir);
        snprintf(cmd, sizeof cmd, "%s search %s --device cpu --out %s/bad%d %s 2>&1", bin, path, dir, i, bad[i][0]);
        int rc = sh_out(cmd, out, sizeof out);
        cr_expect(rc == (i < 3 ? 2 : 1), "%s: exit %d\n%s", bad[i][0], rc, out);
        cr_expect(strstr(out, bad[i][1]), "%s: %s", bad[i][0], out);
    }
}

/* The search block's `latency_weight` and `strategy proxyless`; a negative weight is an error
 * at its place. */
Test(dsl, proxyless_strategy_and_latency_weight) {
    const char *ok = "ops o = { none, skip, sep_conv(3) }\n"
                     "cell normal { nodes 2; keep 2; ops o }\n"
                     "cell reduce : normal { reduction }\n"
                     "network n { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 3 }\n"
                     "search { strategy proxyless; latency_weight 0.25 }\n";
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_string("t.dartsc", ok, strlen(ok), &sp, &d), 0);
    cr_expect_str_eq(sp.search.strategy, "proxyless");
    cr_expect_float_eq(sp.search.latency_weight, 0.25f, 1e-7);
    fe_diags_free(&d);
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", ok);
    memcpy(strstr(bad, "0.25"), "-1.0", 4);
    fe_diags_init(&d);
    cr_expect_neq(fe_compile_string("t.dartsc", bad, strlen(bad), &sp, &d), 0);
    cr_assert(d.n_errors >= 1);
    const fe_diag *e = &d.items[0];
    cr_expect(e->line == 5 && strstr(e->msg, "'latency_weight' must be in [0, 1e+06]"), "%d:%d: %s", e->line, e->col,
              e->msg);
    fe_diags_free(&d);
}
