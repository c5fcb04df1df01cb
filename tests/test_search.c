/* test_search.c — the DARTS search: the second-order architecture gradient against a
 * finite-difference gradient of the unrolled objective, derivation, and the search loop's
 * determinism, checkpoints and bit-identical resume on real Fashion-MNIST images. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/kdesc.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "pipeline/pipeline.h"
#include "search/genotype.h"
#include "search/search.h"
#include "search/successors.h"
#include "testutil.h"

/* ---- second order ---------------------------------------------------------------------- */

typedef struct unrolled {
    ir_net net;
    rt_backend *be;
    rt_plan *p;
    float *xt, *xv, *buf;
    int32_t *yt, *yv;
    float eta, momentum, wd;
} unrolled;

/* F(alpha) = L_val(w - eta (momentum buf + grad_w L_train(w, alpha) + wd w), alpha). */
static double F(unrolled *u) {
    rt_group w = rt_plan_group(u->p, IR_ROLE_WEIGHT);
    float *w0 = malloc((size_t)w.n * 4);
    memcpy(w0, w.data, (size_t)w.n * 4);
    size_t bi = (size_t)ir_node_numel(ir_graph_node(u->net.graph, u->net.images)) * 4;
    size_t bl = (size_t)ir_node_numel(ir_graph_node(u->net.graph, u->net.labels)) * 4;
    rt_set_input(u->p, u->net.images, u->xt, bi);
    rt_set_input(u->p, u->net.labels, u->yt, bl);
    rt_forward(u->p, 1);
    rt_backward(u->p, RT_GRAD_W);
    for (int64_t i = 0; i < w.n; i++) w.data[i] = w0[i] - u->eta * (u->momentum * u->buf[i] + w.grad[i] + u->wd * w0[i]);
    rt_set_input(u->p, u->net.images, u->xv, bi);
    rt_set_input(u->p, u->net.labels, u->yv, bl);
    double l = rt_forward(u->p, 1);
    memcpy(w.data, w0, (size_t)w.n * 4);
    free(w0);
    return l;
}

/* A small smooth supernet: mixed edges over conv+BN+tanh, conv1x1+sigmoid, avg pool,
 * identity and 'none'. The DARTS supernet's ReLUs and max pools make the unrolled
 * objective F discontinuous in alpha (grad_w L_train jumps where a ReLU mask flips), so
 * finite differences of F there measure jumps, not the gradient; the second-order code
 * under test is the same for any graph. */
static int build_smooth(ir_graph *g, int B, int *images, int *labels) {
    *images = ir_input(g, "images", IR_DTYPE_F32, 4, (int64_t[]){B, 1, 8, 8});
    *labels = ir_input(g, "labels", IR_DTYPE_I32, 1, (int64_t[]){B});
    int sw = ir_param(g, "stem.w", IR_ROLE_WEIGHT, 4, (int64_t[]){4, 1, 3, 3}, ir_init_kaiming_uniform(9));
    int x = ir_conv2d(g, *images, sw, 1, 1, 1, 1, 1, 1, 1, "stem");
    int gm = ir_param(g, "stem.bn.w", IR_ROLE_WEIGHT, 1, (int64_t[]){4}, ir_init_ones());
    int bt = ir_param(g, "stem.bn.b", IR_ROLE_WEIGHT, 1, (int64_t[]){4}, ir_init_zeros());
    int rm = ir_param(g, "stem.bn.rm", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_zeros());
    int rv = ir_param(g, "stem.bn.rv", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_ones());
    x = ir_batchnorm(g, x, gm, bt, rm, rv, 1, 1e-5f, 0.1f, "stem.bn");
    x = ir_unary(g, IR_OP_TANH, x, "stem.tanh");
    int alpha = ir_param(g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){3, 5}, ir_init_normal(1e-3f));
    int states[3] = {x, -1, -1};
    int srcs[3] = {0, 0, 1}, row_node[3] = {1, 2, 2};
    int terms[3] = {-1, -1, -1};
    for (int e = 0; e < 3; e++) {
        char n[64];
        int in = states[srcs[e]];
        snprintf(n, sizeof n, "e%d.conv.w", e);
        int cw = ir_param(g, n, IR_ROLE_WEIGHT, 4, (int64_t[]){4, 4, 3, 3}, ir_init_kaiming_uniform(36));
        snprintf(n, sizeof n, "e%d.conv", e);
        int c = ir_conv2d(g, in, cw, 1, 1, 1, 1, 1, 1, 1, n);
        snprintf(n, sizeof n, "e%d.bn.rm", e);
        int m1 = ir_param(g, n, IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_zeros());
        snprintf(n, sizeof n, "e%d.bn.rv", e);
        int v1 = ir_param(g, n, IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_ones());
        snprintf(n, sizeof n, "e%d.bn", e);
        c = ir_batchnorm(g, c, -1, -1, m1, v1, 1, 1e-5f, 0.1f, n);
        snprintf(n, sizeof n, "e%d.tanh", e);
        c = ir_unary(g, IR_OP_TANH, c, n);
        snprintf(n, sizeof n, "e%d.pw.w", e);
        int pw = ir_param(g, n, IR_ROLE_WEIGHT, 4, (int64_t[]){4, 4, 1, 1}, ir_init_kaiming_uniform(4));
        snprintf(n, sizeof n, "e%d.pw", e);
        int q = ir_conv2d(g, in, pw, 1, 1, 0, 0, 1, 1, 1, n);
        snprintf(n, sizeof n, "e%d.sig", e);
        q = ir_unary(g, IR_OP_SIGMOID, q, n);
        snprintf(n, sizeof n, "e%d.avg", e);
        int ap = ir_pool(g, IR_OP_AVGPOOL, in, 3, 1, 1, n);
        snprintf(n, sizeof n, "e%d", e);
        int t = ir_mixed(g, alpha, e, 4, (int[]){c, q, ap, in}, (int[]){1, 2, 3, 4}, n);
        if (row_node[e] == 1) states[1] = t;
        else terms[e] = t;
    }
    states[2] = ir_nary(g, IR_OP_ADD, 2, (int[]){terms[1], terms[2]}, "node2");
    int cat = ir_nary(g, IR_OP_CONCAT, 2, (int[]){states[1], states[2]}, "cat");
    int gp = ir_unary(g, IR_OP_GAP, cat, "gap");
    int lw = ir_param(g, "fc.w", IR_ROLE_WEIGHT, 2, (int64_t[]){4, 8}, ir_init_kaiming_uniform(8));
    int lb = ir_param(g, "fc.b", IR_ROLE_WEIGHT, 1, (int64_t[]){4}, ir_init_kaiming_uniform(8));
    int lg = ir_linear(g, gp, lw, lb, "fc");
    int loss = ir_softmax_ce(g, lg, *labels, "loss");
    ir_node_set_flags(g, loss, IR_FLAG_LOSS | IR_FLAG_OUTPUT);
    return ir_verify(g);
}

/* be: the backend the plan runs on (taken over: unrolled_free destroys it) */
static void unrolled_init_on(unrolled *u, rt_backend *be) {
    int B = 8;
    memset(&u->net, 0, sizeof u->net);
    u->net.graph = ir_graph_new("smooth");
    cr_assert_eq(build_smooth(u->net.graph, B, &u->net.images, &u->net.labels), 0, "%s", ir_graph_error(u->net.graph));
    u->be = be;
    char err[256];
    u->p = rt_plan_new(u->net.graph, u->be, &(rt_plan_opts){.seed = 3, .grads = 3}, err, sizeof err);
    cr_assert(u->p, "%s", err);
    u->xt = malloc(B * 64 * 4);
    u->xv = malloc(B * 64 * 4);
    u->yt = malloc(B * 4);
    u->yv = malloc(B * 4);
    tu_fill_uniform(u->xt, B * 64, -1.f, 1.f, 1);
    tu_fill_uniform(u->xv, B * 64, -1.f, 1.f, 2);
    for (int i = 0; i < B; i++) {
        u->yt[i] = i % 4;
        u->yv[i] = (i * 3 + 1) % 4;
    }
    rt_group w = rt_plan_group(u->p, IR_ROLE_WEIGHT), a = rt_plan_group(u->p, IR_ROLE_ARCH);
    u->buf = malloc((size_t)w.n * 4);
    tu_fill_uniform(u->buf, w.n, -0.05f, 0.05f, 4);
    tu_fill_uniform(a.data, a.n, -0.5f, 0.5f, 5);
    /* eta = 1 (not the paper's 0.025) so that the implicit term is a large part of the
     * gradient: a step that drops or mis-scales it is then far from the truth. */
    u->eta = 1.0f;
    u->momentum = 0.9f;
    u->wd = 3e-4f;
}

static void unrolled_init(unrolled *u) { unrolled_init_on(u, rt_backend_cpu_new()); }

static void unrolled_free(unrolled *u) {
    rt_plan_free(u->p);
    u->be->destroy(u->be);
    ir_net_free(&u->net);
    free(u->xt); free(u->xv); free(u->yt); free(u->yv); free(u->buf);
}

/* The second-order gradient equals the finite-difference gradient of the unrolled
 * objective F. Tolerance: 5e-2 relative in the norm. The Hessian-vector product is
 * itself a central difference with R = 0.01/||v|| (REFERENCE.md), whose truncation error
 * at eta = 1 is 2.2e-2 here (measured; float32 rounding of F adds ~1e-3). The first-order
 * gradient, which lacks the implicit term, is off by 0.91.
 * The known bug (g+ - g-) / 2 * R multiplies where it must divide: it scales the implicit
 * term by R^2 and so degenerates towards first order (measured 0.36 off); the test
 * computes it with bug_mul_r = 1 and requires it to FAIL the same tolerance. */
Test(second_order, matches_finite_difference_of_unrolled_objective, .timeout = 300) {
    unrolled u;
    unrolled_init(&u);
    rt_group w = rt_plan_group(u.p, IR_ROLE_WEIGHT), a = rt_plan_group(u.p, IR_ROLE_ARCH);
    sr_unroll ws;
    cr_assert_eq(sr_unroll_init(&ws, u.p), 0);
    float *w_before = malloc((size_t)w.n * 4);
    memcpy(w_before, w.data, (size_t)w.n * 4);
    float vl;
    float *g2 = malloc((size_t)a.n * 4), *gbug = malloc((size_t)a.n * 4), *g1 = malloc((size_t)a.n * 4);
    float *fd = malloc((size_t)a.n * 4);
    cr_assert_eq(sr_arch_grad_second_order(u.p, &ws, u.net.images, u.net.labels, u.xt, u.yt, u.xv, u.yv, u.buf, u.eta,
                                           u.momentum, u.wd, 0, &vl), 0);
    memcpy(g2, a.grad, (size_t)a.n * 4);
    cr_assert_arr_eq(w_before, w.data, (size_t)w.n * 4, "weights not restored bit for bit");
    sr_arch_grad_second_order(u.p, &ws, u.net.images, u.net.labels, u.xt, u.yt, u.xv, u.yv, u.buf, u.eta, u.momentum,
                              u.wd, 1, &vl);
    memcpy(gbug, a.grad, (size_t)a.n * 4);
    /* first order: grad_alpha L_val(w, alpha) */
    size_t bi = (size_t)8 * 64 * 4; /* B = 8 images of 1x8x8 */
    rt_set_input(u.p, u.net.images, u.xv, bi);
    rt_set_input(u.p, u.net.labels, u.yv, 8 * 4);
    rt_forward(u.p, 1);
    rt_backward(u.p, RT_GRAD_ARCH);
    memcpy(g1, a.grad, (size_t)a.n * 4);
    float h = 1e-3f;
    for (int64_t i = 0; i < a.n; i++) {
        float a0 = a.data[i];
        a.data[i] = a0 + h;
        double fp = F(&u);
        a.data[i] = a0 - h;
        double fm = F(&u);
        a.data[i] = a0;
        fd[i] = (float)((fp - fm) / (2.0 * h));
    }
    double e2 = tu_norm_rel_err(g2, fd, a.n), e1 = tu_norm_rel_err(g1, fd, a.n), eb = tu_norm_rel_err(gbug, fd, a.n);
    cr_log_info("second order %.3g, first order %.3g, (g+-g-)/2*R bug %.3g relative to finite differences", e2, e1, eb);
    cr_expect(e2 <= 5e-2, "second-order gradient off by %g", e2);
    cr_expect(e1 > 5e-2, "the test cannot tell first from second order (%g)", e1);
    cr_expect(eb > 5e-2, "the /2*R bug would pass (%g)", eb);
    sr_unroll_free(&ws, u.p);
    free(w_before); free(g2); free(gbug); free(g1); free(fd);
    unrolled_free(&u);
}

/* ---- derivation ------------------------------------------------------------------------------ */

Test(derive, top_k_edges_by_strongest_non_none_op) {
    ir_cell c;
    ir_cell_darts_default(&c);
    int E = ir_cell_num_edges(&c);
    float *alpha = calloc((size_t)E * 8, 4);
    /* node 0 (rows 0,1): row 1 strongest via sep_conv_5x5; 'none' huge on row 0 must not count */
    alpha[0 * 8 + 0] = 10.f; alpha[0 * 8 + 2] = 1.f;
    alpha[1 * 8 + 5] = 3.f;
    /* node 1 (rows 2,3,4): rows 4 and 2 win, row 3 loses */
    alpha[2 * 8 + 6] = 2.f;
    alpha[3 * 8 + 1] = 0.5f;
    alpha[4 * 8 + 3] = 4.f;
    ir_geno_cell g;
    sr_derive(&c, alpha, &g);
    cr_expect_eq(g.n_edges[0], 2);
    cr_expect(g.e[0][0].src == 1 && g.e[0][0].op == 5, "strongest edge first");
    cr_expect(g.e[0][1].src == 0 && g.e[0][1].op == 2, "none never chosen: avg_pool on row 0");
    cr_expect(g.e[1][0].src == 2 && g.e[1][0].op == 3);
    cr_expect(g.e[1][1].src == 0 && g.e[1][1].op == 6);
    /* uniform alpha: ties go to the lower edge and the first non-none op */
    memset(alpha, 0, (size_t)E * 8 * 4);
    sr_derive(&c, alpha, &g);
    for (int i = 0; i < 4; i++) {
        cr_expect(g.e[i][0].src == 0 && g.e[i][1].src == 1);
        cr_expect(g.e[i][0].op == 1);
    }
    free(alpha);
}

Test(derive, genotype_json_roundtrip_and_errors) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    ir_genotype gt;
    int E = ir_cell_num_edges(&sp.normal);
    float *an = malloc((size_t)E * 8 * 4), *ar = malloc((size_t)E * 8 * 4);
    tu_fill_uniform(an, E * 8, -1.f, 1.f, 1);
    tu_fill_uniform(ar, E * 8, -1.f, 1.f, 2);
    sr_derive(&sp.normal, an, &gt.normal);
    sr_derive(&sp.reduce, ar, &gt.reduce);
    const char *dir = tu_tmpdir();
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/g.json", dir);
    cr_assert_eq(sr_genotype_write_json(&sp, &gt, an, ar, path, err, sizeof err), 0, "%s", err);
    ir_genotype back;
    cr_assert_eq(sr_genotype_read_json(&sp, path, &back, err, sizeof err), 0, "%s", err);
    cr_expect_eq(memcmp(&gt, &back, sizeof gt), 0);
    FILE *f = fopen(path, "w");
    fputs("{\"normal\": [[\"sep_conv_3x3\", 0]], \"reduce\": []}", f);
    fclose(f);
    cr_expect_eq(sr_genotype_read_json(&sp, path, &back, err, sizeof err), -1);
    cr_expect(strstr(err, "g.json") && strstr(err, "normal"), "%s", err);
    f = fopen(path, "w");
    fputs("{\"normal\": [[\"none\", 0]", f);
    fclose(f);
    cr_expect_eq(sr_genotype_read_json(&sp, path, &back, err, sizeof err), -1);
    cr_expect(strstr(err, "g.json:"), "%s", err);
    free(an);
    free(ar);
}

/* ---- the search loop -------------------------------------------------------------------------- */

#define demo_space tu_demo_search_space


/* metrics.jsonl without the timing field (images_per_s differs from run to run) */
static char *metrics_without_timing(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *s = tu_slurp(path, NULL);
    cr_assert(s, "no metrics in %s", dir);
    char *out = malloc(strlen(s) + 1), *o = out;
    for (char *p = s; *p;) {
        char *t = strstr(p, ",\"images_per_s\"");
        char *nl = strchr(p, '\n');
        if (t && nl && t < nl) {
            memcpy(o, p, (size_t)(t - p));
            o += t - p;
            *o++ = '}';
            *o++ = '\n';
            p = nl + 1;
        } else {
            size_t l = strlen(p);
            memcpy(o, p, l);
            o += l;
            p += l;
        }
    }
    *o = 0;
    free(s);
    return out;
}

#define run_search tu_run_search

#define expect_same_file tu_expect_same_file
#define expect_same_state tu_expect_same_state

Test(search_loop, resume_is_bit_identical_and_runs_are_deterministic, .timeout = 600) {
    ir_space sp;
    demo_space(&sp);
    char a[300], b[300], c[300];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    snprintf(c, sizeof c, "%s", tu_tmpdir());
    sr_result ra, rb, rc;
    run_search(&sp, a, 0, 0, SR_DARTS, &ra);
    cr_assert(!ra.stopped);
    cr_expect_eq(ra.steps, 8);
    /* the same seed again: same genotype, alpha and metrics */
    run_search(&sp, c, 0, 0, SR_DARTS, &rc);
    expect_same_file(a, c, "genotype.json");
    expect_same_file(a, c, "alpha.jsonl");
    char *ma = metrics_without_timing(a), *mc = metrics_without_timing(c);
    cr_expect_str_eq(ma, mc);
    /* interrupted mid-epoch (step 6 of 8), then resumed */
    run_search(&sp, b, 0, 6, SR_DARTS, &rb);
    cr_assert(rb.stopped);
    cr_expect_eq(rb.steps, 6);
    run_search(&sp, b, 1, 0, SR_DARTS, &rb);
    cr_assert(!rb.stopped);
    expect_same_file(a, b, "genotype.json");
    expect_same_file(a, b, "alpha.jsonl");
    expect_same_state(a, b);
    char *mb = metrics_without_timing(b);
    cr_expect_str_eq(ma, mb);
    free(ma); free(mb); free(mc);
}

Test(search_loop, refuses_corrupt_and_mismatched_checkpoints_without_touching_them, .timeout = 300) {
    ir_space sp;
    demo_space(&sp);
    sp.search.epochs = 1;
    char d[300], path[600], err[1024];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    sr_result r;
    run_search(&sp, d, 0, 2, SR_DARTS, &r);
    cr_assert(r.stopped);
    snprintf(path, sizeof path, "%s/checkpoint.dtns", d);
    size_t n;
    char *orig = tu_slurp(path, &n);
    /* a fresh search must not overwrite an existing one */
    sr_options o = sr_options_default();
    o.out_dir = d;
    cr_expect_eq(sr_search(&sp, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "--resume"), "%s", err);
    /* flipped bit: refused by the CRC */
    char *bad = malloc(n);
    memcpy(bad, orig, n);
    bad[n / 2] ^= 4;
    FILE *f = fopen(path, "wb");
    fwrite(bad, 1, n, f);
    fclose(f);
    o.resume = 1;
    cr_expect_eq(sr_search(&sp, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "checkpoint.dtns"), "%s", err);
    size_t n2;
    char *after = tu_slurp(path, &n2);
    cr_expect(n2 == n && memcmp(after, bad, n) == 0, "a refused checkpoint must not be overwritten");
    free(after);
    /* truncated */
    f = fopen(path, "wb");
    fwrite(orig, 1, n - 10, f);
    fclose(f);
    cr_expect_eq(sr_search(&sp, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "truncated"), "%s", err);
    /* a different space */
    f = fopen(path, "wb");
    fwrite(orig, 1, n, f);
    fclose(f);
    ir_space other = sp;
    other.C = 6;
    cr_expect_eq(sr_search(&other, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "different space"), "%s", err);
    free(bad);
    free(orig);
}

Test(search_loop, second_order_and_ablations_run, .timeout = 600) {
    ir_space sp;
    demo_space(&sp);
    sp.search.epochs = 1;
    sr_strategy st[3] = {SR_DARTS, SR_JOINT, SR_COORD};
    for (int i = 0; i < 3; i++) {
        char d[300];
        snprintf(d, sizeof d, "%s", tu_tmpdir());
        sp.search.order = i == 0 ? 2 : 1;
        sr_result r;
        run_search(&sp, d, 0, 0, st[i], &r);
        cr_expect(!r.stopped);
        cr_expect(r.val_acc > 0.0 && r.val_acc <= 1.0, "strategy %d: accuracy %g", i, r.val_acc);
        char err[512];
        cr_expect_eq(ir_genotype_check(&sp, &r.genotype, err, sizeof err), 0, "%s", err);
    }
}

/* ---- periodic checkpoints ------------------------------------------------------------------- */

typedef struct snap {
    const char *from, *to;
    int64_t at; /* the step (of the run, 0-based) whose progress report takes the snapshot */
    int done;
} snap;

/* A progress callback that copies the run directory's checkpoint and logs as they are at
 * one step: what a crash (kill -9) at that moment would leave. */
static void snapshot_cb(void *ctx, const sr_progress *p) {
    snap *s = ctx;
    if (s->done || p->epoch_end || (int64_t)p->epoch * p->steps_per_epoch + p->step != s->at) return;
    const char *files[] = {"checkpoint.dtns", "metrics.jsonl", "alpha.jsonl"};
    for (int i = 0; i < 3; i++) tu_copy_file(s->from, s->to, files[i]);
    s->done = 1;
}

/* Fails before periodic checkpoints: a crash in the middle of an epoch left only the last
 * epoch's checkpoint (step 4 here, not step 6). */
Test(search_loop, periodic_checkpoints_lose_at_most_n_steps_and_resume_bit_identically, .timeout = 600) {
    ir_space sp;
    demo_space(&sp);
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    snap s = {.from = a, .to = b, .at = 6};
    sr_options o = sr_options_default();
    o.out_dir = a;
    o.checkpoint_steps = 3;   /* after steps 3 and 6 of 8; the epoch ends at 4 and 8 */
    o.checkpoint_seconds = 0; /* steps only: deterministic */
    o.progress = snapshot_cb;
    o.progress_ctx = &s;
    sr_result r;
    cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert(s.done);
    /* the checkpoint a crash during step 7 would leave: after 6 steps (epoch 2, step 3) */
    char path[700];
    snprintf(path, sizeof path, "%s/checkpoint.dtns", b);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    int64_t meta[12];
    cr_assert_eq(sr_get_i64s(f, "meta/state", meta, 12, path, err, sizeof err), 0, "%s", err);
    rt_tf_free(f);
    cr_expect_eq(meta[2], 1, "epoch");
    cr_expect_eq(meta[3], 2, "step within the epoch");
    cr_expect_eq(meta[4], 6, "steps of the run");
    /* resumed from it, the search ends exactly as the uninterrupted one */
    sr_options ob = sr_options_default();
    ob.out_dir = b;
    ob.resume = 1;
    ob.checkpoint_steps = 3;
    ob.checkpoint_seconds = 0;
    cr_assert_eq(sr_search(&sp, &ob, &r, err, sizeof err), 0, "%s", err);
    expect_same_file(a, b, "checkpoint.dtns");
    expect_same_file(a, b, "genotype.json");
    expect_same_file(a, b, "alpha.jsonl");
    char *ma = metrics_without_timing(a), *mb = metrics_without_timing(b);
    cr_expect_str_eq(ma, mb);
    free(ma);
    free(mb);
}

/* ---- whole steps (search/step.c, train/common.c's sr_step) ------------------------------ */

/* The optimiser hooks that read their per-step scalars from backend memory (a recorded
 * step's) give the host-scalar hooks' bits on the CPU backend, over steps whose learning
 * rate and Adam step change; a guard that is not finite (NaN, +inf, -inf, in either slot)
 * leaves the parameters and every optimiser state untouched. Exact comparisons: the same
 * arithmetic on the same values. */
Test(step, device_scalar_optimisers_equal_host_scalar_ones) {
    rt_backend *be = rt_backend_cpu_new();
    cr_assert(be->sgd_step_dev && be->adam_step_dev);
    const int64_t n = 40000; /* over the kernels' OpenMP threshold */
    size_t bytes = (size_t)n * 4;
    float *w1 = malloc(bytes), *w2 = malloc(bytes), *b1 = malloc(bytes), *b2 = malloc(bytes), *m1 = malloc(bytes),
          *m2 = malloc(bytes), *v1 = malloc(bytes), *v2 = malloc(bytes), *g = malloc(bytes);
    tu_fill_uniform(w1, n, -1.f, 1.f, 21);
    memcpy(w2, w1, bytes);
    memset(b1, 0, bytes);
    memset(b2, 0, bytes);
    memset(m1, 0, bytes);
    memset(m2, 0, bytes);
    memset(v1, 0, bytes);
    memset(v2, 0, bytes);
    const float guard[2] = {2.3f, 0.7f};
    for (int t = 1; t <= 4; t++) {
        tu_fill_uniform(g, n, -0.5f, 0.5f, 30 + (uint64_t)t);
        const float lr = 0.025f / (float)t, sc[3] = {lr};
        float asc[2];
        rt_adam_scalars(3e-4f * (float)t, 0.5f, 0.999f, t, asc);
        be->sgd_step(be, w1, b1, g, n, lr, 0.9f, 3e-4f);
        be->sgd_step_dev(be, w2, b2, g, n, sc, 0.9f, 3e-4f, guard, 2);
        be->adam_step(be, w1, m1, v1, g, n, 3e-4f * (float)t, 0.5f, 0.999f, 1e-8f, 1e-3f, t);
        be->adam_step_dev(be, w2, m2, v2, g, n, asc, 0.5f, 0.999f, 1e-8f, 1e-3f, guard, 2);
        cr_assert_arr_eq(w1, w2, bytes, "step %d: weights differ", t);
        cr_assert_arr_eq(b1, b2, bytes, "step %d: momentum differs", t);
        cr_assert_arr_eq(m1, m2, bytes, "step %d: Adam m differs", t);
        cr_assert_arr_eq(v1, v2, bytes, "step %d: Adam v differs", t);
    }
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 6; k++) {
        float gd[2] = {1.f, 1.f}, sc[2] = {0.1f, 1.f};
        gd[k & 1] = bad[k >> 1];
        be->sgd_step_dev(be, w2, b2, g, n, sc, 0.9f, 3e-4f, gd, 2);
        be->adam_step_dev(be, w2, m2, v2, g, n, sc, 0.5f, 0.999f, 1e-8f, 1e-3f, gd, 2);
        cr_assert_arr_eq(w1, w2, bytes, "guard %g in slot %d: the weights moved", gd[k & 1], k & 1);
        cr_assert_arr_eq(b1, b2, bytes, "guard %g in slot %d: the momentum moved", gd[k & 1], k & 1);
        cr_assert_arr_eq(m1, m2, bytes, "guard %g in slot %d: Adam m moved", gd[k & 1], k & 1);
        cr_assert_arr_eq(v1, v2, bytes, "guard %g in slot %d: Adam v moved", gd[k & 1], k & 1);
    }
    free(w1); free(w2); free(b1); free(b2); free(m1); free(m2); free(v1); free(v2); free(g);
    be->destroy(be);
}

/* One search run's state for the step comparison: a plan of the smooth supernet and its
 * optimiser state. */
typedef struct steprun {
    unrolled u;
    sr_unroll ws;
    float *buf, *m, *v;
} steprun;

static void steprun_init_on(steprun *s, rt_backend *be) {
    unrolled_init_on(&s->u, be);
    rt_group w = rt_plan_group(s->u.p, IR_ROLE_WEIGHT), a = rt_plan_group(s->u.p, IR_ROLE_ARCH);
    cr_assert_eq(sr_unroll_init(&s->ws, s->u.p), 0);
    s->buf = calloc((size_t)w.n, 4);
    s->m = calloc((size_t)a.n, 4);
    s->v = calloc((size_t)a.n, 4);
}

static void steprun_init(steprun *s) { steprun_init_on(s, rt_backend_cpu_new()); }

static void steprun_free(steprun *s) {
    sr_unroll_free(&s->ws, s->u.p);
    free(s->buf); free(s->m); free(s->v);
    unrolled_free(&s->u);
}

/* buffers: compare the BN running statistics too (not after a NaN batch: its forward updates
 * them before any loss exists, on every path, and the loop stops without saving them) */
static void step_same_state(steprun *a, steprun *b, const char *what, int buffers) {
    rt_group wa = rt_plan_group(a->u.p, IR_ROLE_WEIGHT), wb = rt_plan_group(b->u.p, IR_ROLE_WEIGHT);
    rt_group aa = rt_plan_group(a->u.p, IR_ROLE_ARCH), ab = rt_plan_group(b->u.p, IR_ROLE_ARCH);
    rt_group ba = rt_plan_group(a->u.p, IR_ROLE_BUFFER), bb = rt_plan_group(b->u.p, IR_ROLE_BUFFER);
    cr_assert_arr_eq(wa.data, wb.data, (size_t)wa.n * 4, "%s: weights differ", what);
    cr_assert_arr_eq(aa.data, ab.data, (size_t)aa.n * 4, "%s: alpha differs", what);
    if (buffers) cr_assert_arr_eq(ba.data, bb.data, (size_t)ba.n * 4, "%s: BN buffers differ", what);
    cr_assert_arr_eq(a->buf, b->buf, (size_t)wa.n * 4, "%s: SGD momentum differs", what);
    cr_assert_arr_eq(a->m, b->m, (size_t)aa.n * 4, "%s: Adam m differs", what);
    cr_assert_arr_eq(a->v, b->v, (size_t)aa.n * 4, "%s: Adam v differs", what);
}

/* The DARTS step issued whole (sr_darts_step_run: fixed step buffers, device scalars,
 * losses kept in backend memory, guarded optimisers) equals the search loop's per-pass
 * sequence (uploads before each pass, losses read between the passes, host-scalar Adam
 * and SGD) bit for bit: weights, alpha, BN buffers, momentum, Adam's m and v and the four
 * losses and counts, over 4 steps whose learning rate changes, first and second order
 * (the first step without the momentum term, as the loop). A NaN in the validation batch
 * then leaves the parameters and the optimiser state untouched and reports the non-finite
 * loss. Then the same with FairDARTS' zero-one term (w01 = 10): the step adds it on the
 * backend (zero_one_grad), the loop on the host (sr_fair_add_zero_one's download, add,
 * upload), the same bits. */
Test(step, darts_step_equals_the_per_pass_sequence, .timeout = 300) {
    for (int variant = 0; variant < 4; variant++) {
        const int order = 1 + variant % 2, fair = variant >= 2;
        steprun a, b;
        steprun_init(&a);
        steprun_init(&b);
        ir_train_config tc = {.order = order, .a_lr = 3e-3f, .a_beta1 = 0.5f, .a_beta2 = 0.999f, .a_wd = 1e-3f,
                              .w_momentum = 0.9f, .w_wd = 3e-4f, .w_clip = 0.05f}; /* small: the clip scales */
        sr_darts_step ds;
        cr_assert_eq(sr_darts_step_init(&ds, a.u.p, a.u.net.images, a.u.net.labels, &tc, &a.ws, a.buf, a.m, a.v), 0);
        if (fair) ds.w01 = SR_FAIR_W01;
        rt_plan *p = b.u.p;
        rt_backend *be = b.u.be;
        rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT), ga = rt_plan_group(p, IR_ROLE_ARCH);
        size_t bi = 8 * 64 * 4, bl = 8 * 4;
        for (int s = 0; s < 4; s++) {
            const float lr = 0.1f / (float)(s + 1);
            tu_fill_uniform(a.u.xt, 8 * 64, -1.f, 1.f, 100 + (uint64_t)s);
            tu_fill_uniform(a.u.xv, 8 * 64, -1.f, 1.f, 200 + (uint64_t)s);
            memcpy(b.u.xt, a.u.xt, bi);
            memcpy(b.u.xv, a.u.xv, bi);
            float got[4];
            double gnorm;
            cr_assert_eq(sr_darts_step_run(&ds, a.u.xt, a.u.yt, a.u.xv, a.u.yv, lr, s + 1, s > 0, got, &gnorm), 0);
            /* the loop's per-pass sequence */
            float vl, tl;
            double vc;
            if (order == 2) {
                cr_assert_eq(sr_arch_grad_second_order(p, &b.ws, b.u.net.images, b.u.net.labels, b.u.xt, b.u.yt, b.u.xv,
                                                       b.u.yv, s > 0 ? b.buf : NULL, lr, tc.w_momentum, tc.w_wd, 0, &vl),
                             0);
            } else {
                rt_set_input(p, b.u.net.images, b.u.xv, bi);
                rt_set_input(p, b.u.net.labels, b.u.yv, bl);
                rt_pass(p, 1, RT_GRAD_ARCH);
                vl = rt_loss(p);
            }
            vc = rt_last_correct(p);
            double l01;
            if (fair) cr_assert_eq(sr_fair_add_zero_one(p, SR_FAIR_W01, &l01), 0); /* l01 asked: the host's arithmetic */
            be->adam_step(be, ga.data, b.m, b.v, ga.grad, ga.n, tc.a_lr, tc.a_beta1, tc.a_beta2, SR_ADAM_EPS, tc.a_wd,
                          s + 1);
            rt_set_input(p, b.u.net.images, b.u.xt, bi);
            rt_set_input(p, b.u.net.labels, b.u.yt, bl);
            rt_pass(p, 1, RT_GRAD_W);
            tl = rt_loss(p);
            double tcorr = rt_last_correct(p), gn = sr_clip_weight_grads(p, tc.w_clip);
            be->sgd_step(be, gw.data, b.buf, gw.grad, gw.n, lr, tc.w_momentum, tc.w_wd);
            char what[64];
            snprintf(what, sizeof what, "order %d%s step %d", order, fair ? " (FairDARTS' term)" : "", s);
            cr_assert(gn > tc.w_clip, "%s: the clip did not scale (norm %g)", what, gn);
            cr_assert_eq(gnorm, (float)gn, "%s: gradient norm %.9g, per pass %.9g", what, gnorm, gn); /* a float guard */
            cr_assert(got[0] == vl && got[1] == tl, "%s: losses %g %g, per pass %g %g", what, got[0], got[1], vl, tl);
            cr_assert(got[2] == (float)vc && got[3] == (float)tcorr, "%s: counts %g %g, per pass %g %g", what, got[2],
                      got[3], vc, tcorr);
            step_same_state(&a, &b, what, 1);
        }
        /* a non-finite validation loss: the step changes nothing and says so */
        for (int i = 0; i < 8 * 64; i++) b.u.xv[i] = NAN;
        float got[4];
        double gnorm;
        cr_assert_eq(sr_darts_step_run(&ds, a.u.xt, a.u.yt, b.u.xv, a.u.yv, 0.1f, 5, 1, got, &gnorm), 0);
        cr_assert(!isfinite(got[0]) && isfinite(got[1]), "order %d: losses %g %g", order, got[0], got[1]);
        step_same_state(&a, &b, order == 1 ? "order 1 after a NaN batch" : "order 2 after a NaN batch", 0);
        sr_darts_step_free(&ds);
        steprun_free(&a);
        steprun_free(&b);
    }
}

/* The retraining step issued whole (sr_train_step) equals train/cnn.c's per-pass sequence
 * bit for bit over 3 steps with a changing learning rate; a NaN batch leaves the weights and
 * the momentum untouched. */
Test(step, train_step_equals_the_per_pass_sequence) {
    steprun a, b;
    steprun_init(&a);
    steprun_init(&b);
    ir_train_config tc = {.w_momentum = 0.9f, .w_wd = 3e-4f, .w_clip = 5.f};
    sr_step st;
    cr_assert_eq(sr_step_init(&st, a.u.p, a.u.net.images, a.u.net.labels, 1), 0);
    rt_plan *p = b.u.p;
    rt_backend *be = b.u.be;
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT);
    for (int s = 0; s < 3; s++) {
        const float lr = 0.05f / (float)(s + 1);
        tu_fill_uniform(a.u.xt, 8 * 64, -1.f, 1.f, 300 + (uint64_t)s);
        float loss, correct;
        cr_assert_eq(sr_train_step(&st, a.buf, a.u.xt, a.u.yt, lr, &tc, &loss, &correct), 0);
        rt_set_input(p, b.u.net.images, a.u.xt, 8 * 64 * 4);
        rt_set_input(p, b.u.net.labels, a.u.yt, 8 * 4);
        rt_pass(p, 1, RT_GRAD_W);
        float want = rt_loss(p);
        float wc = (float)rt_last_correct(p);
        sr_clip_weight_grads(p, tc.w_clip);
        be->sgd_step(be, gw.data, b.buf, gw.grad, gw.n, lr, tc.w_momentum, tc.w_wd);
        cr_assert(loss == want && correct == wc, "step %d: loss %g count %g, per pass %g %g", s, loss, correct, want, wc);
        step_same_state(&a, &b, "retraining", 1);
    }
    for (int i = 0; i < 8 * 64; i++) a.u.xt[i] = NAN;
    float loss, correct;
    cr_assert_eq(sr_train_step(&st, a.buf, a.u.xt, a.u.yt, 0.05f, &tc, &loss, &correct), 0);
    cr_assert(!isfinite(loss));
    step_same_state(&a, &b, "retraining after a NaN batch", 0);
    sr_step_free(&st);
    steprun_free(&a);
    steprun_free(&b);
}

/* ---- the step recording's logic on the CPU: a recording backend ------------------------------
 * rt_step_run records and replays only where a backend records graphs (CUDA). To exercise
 * its sequencing in CI (eager first run, recording on the second, replays after, a seeds
 * slot per pass, invalidation by drop path, no host value baked into a step), this
 * backend is the CPU backend plus recording: between capture_begin and capture_end it
 * stores each call (with its pointers, as a CUDA graph stores a kernel's arguments) instead
 * of running it, and a replay runs the stored calls again, reading whatever the memory
 * holds then; forwards read their mask seeds from seed_dev where the runtime gave one, as
 * the CUDA kernels do. clip_norm is the documented device clipping (norm, factor, scale on
 * the backend); clip_norm_to is recorded and replays the CPU backend's (its norm written to
 * backend memory). A host read or upload while recording spoils the recording, as it spoils a
 * stream capture. */
typedef enum { MC_FWD, MC_BWD, MC_ZERO, MC_COPY, MC_AXPY, MC_SCALE, MC_CLIP, MC_CLIPTO, MC_HVP, MC_AXPYD, MC_SCALED,
               MC_SGDD, MC_ADAMD, MC_ZO } mc_kind;
typedef struct mc_call {
    mc_kind k;
    rt_exec_node e;
    float *y, *b, *c;
    const float *x, *a, *g;
    int64_t n;
    float f[5];
    double r;
    int i;
} mc_call;
typedef struct mc_graph {
    mc_call *calls;
    int n;
    int variant; /* the mock's variant when it was recorded */
} mc_graph;
typedef struct mock {
    rt_backend be; /* first: the runtime's pointer is the mock's */
    rt_backend *cpu;
    mc_graph *rec; /* recording into this */
    int spoiled, captures, replays, frees;
    int variant;   /* set_variant's */
    /* the variants test's clock: a replay of variant v advances it by 3 - v; mark records it */
    double clock, marks[64];
    int nmarks;
} mock;

static void mc_push(rt_backend *be, mc_call c) {
    mock *m = (mock *)be;
    mc_graph *g = m->rec;
    g->calls = realloc(g->calls, (size_t)(g->n + 1) * sizeof *g->calls);
    cr_assert(g->calls);
    g->calls[g->n++] = c;
}
static void mc_run(mock *m, const mc_call *c) {
    rt_backend *cpu = m->cpu;
    switch (c->k) {
    case MC_FWD: {
        rt_exec_node e = c->e;
        if (e.seed_dev) e.seed = *e.seed_dev;
        cpu->forward(cpu, &e);
        break;
    }
    case MC_BWD: cpu->backward(cpu, &c->e); break;
    case MC_ZERO: cpu->memset0(cpu, c->y, (size_t)c->n); break;
    case MC_COPY: cpu->copy(cpu, c->y, c->x, c->n); break;
    case MC_AXPY: cpu->axpy(cpu, c->y, c->f[0], c->x, c->n); break;
    case MC_SCALE: cpu->scale(cpu, c->y, c->f[0], c->n); break;
    case MC_CLIP: {
        double norm = sqrt(cpu->sumsq(cpu, c->y, c->n)), coef = c->f[0] / (norm + 1e-6);
        if (c->f[0] > 0 && coef < 1.0) cpu->scale(cpu, c->y, (float)coef, c->n);
        break;
    }
    case MC_CLIPTO: cpu->clip_norm_to(cpu, c->y, c->n, c->f[0], c->b); break;
    case MC_HVP: cpu->hvp_eps(cpu, c->y, c->x, c->n, c->r, c->a, c->i); break;
    case MC_AXPYD: cpu->axpy_dev(cpu, c->y, c->a, c->x, c->n); break;
    case MC_SCALED: cpu->scale_dev(cpu, c->y, c->a, c->n); break;
    case MC_SGDD: cpu->sgd_step_dev(cpu, c->y, c->b, c->g, c->n, c->a, c->f[0], c->f[1], c->x, c->i); break;
    case MC_ADAMD:
        cpu->adam_step_dev(cpu, c->y, c->b, c->c, c->g, c->n, c->a, c->f[0], c->f[1], c->f[2], c->f[3], c->x, c->i);
        break;
    case MC_ZO: cpu->zero_one_grad(cpu, c->y, c->x, c->n, c->f[0]); break;
    }
}
#define MC_DO(be, call)                                                                                             \
    do {                                                                                                            \
        mc_call c_ = call;                                                                                          \
        if (((mock *)(be))->rec) mc_push(be, c_);                                                                   \
        else mc_run((mock *)(be), &c_);                                                                             \
    } while (0)
static void mc_forward(rt_backend *be, const rt_exec_node *n) { MC_DO(be, ((mc_call){.k = MC_FWD, .e = *n})); }
static void mc_backward(rt_backend *be, const rt_exec_node *n) { MC_DO(be, ((mc_call){.k = MC_BWD, .e = *n})); }
static void mc_memset0(rt_backend *be, void *p, size_t bytes) {
    MC_DO(be, ((mc_call){.k = MC_ZERO, .y = p, .n = (int64_t)bytes}));
}
static void mc_copy(rt_backend *be, float *y, const float *x, int64_t n) {
    MC_DO(be, ((mc_call){.k = MC_COPY, .y = y, .x = x, .n = n}));
}
static void mc_axpy(rt_backend *be, float *y, float a, const float *x, int64_t n) {
    MC_DO(be, ((mc_call){.k = MC_AXPY, .y = y, .x = x, .n = n, .f = {a}}));
}
static void mc_scale(rt_backend *be, float *y, float a, int64_t n) {
    MC_DO(be, ((mc_call){.k = MC_SCALE, .y = y, .n = n, .f = {a}}));
}
static void mc_clip(rt_backend *be, float *x, int64_t n, float max_norm) {
    MC_DO(be, ((mc_call){.k = MC_CLIP, .y = x, .n = n, .f = {max_norm}}));
}
static void mc_clipto(rt_backend *be, float *x, int64_t n, float max_norm, float *norm) {
    MC_DO(be, ((mc_call){.k = MC_CLIPTO, .y = x, .n = n, .f = {max_norm}, .b = norm}));
}
static void mc_hvp(rt_backend *be, float *eps, const float *v, int64_t n, double r, const float *eta, int bug) {
    MC_DO(be, ((mc_call){.k = MC_HVP, .y = eps, .x = v, .n = n, .r = r, .a = eta, .i = bug}));
}
static void mc_axpyd(rt_backend *be, float *y, const float *a, const float *x, int64_t n) {
    MC_DO(be, ((mc_call){.k = MC_AXPYD, .y = y, .a = a, .x = x, .n = n}));
}
static void mc_scaled(rt_backend *be, float *y, const float *a, int64_t n) {
    MC_DO(be, ((mc_call){.k = MC_SCALED, .y = y, .a = a, .n = n}));
}
static void mc_sgdd(rt_backend *be, float *w, float *buf, const float *g, int64_t n, const float *lr, float mom, float wd,
                    const float *guard, int ng) {
    MC_DO(be, ((mc_call){.k = MC_SGDD, .y = w, .b = buf, .g = g, .n = n, .a = lr, .f = {mom, wd}, .x = guard, .i = ng}));
}
static void mc_adamd(rt_backend *be, float *w, float *m, float *v, const float *g, int64_t n, const float *sc, float b1,
                     float b2, float eps, float wd, const float *guard, int ng) {
    MC_DO(be, ((mc_call){.k = MC_ADAMD, .y = w, .b = m, .c = v, .g = g, .n = n, .a = sc, .f = {b1, b2, eps, wd},
                         .x = guard, .i = ng}));
}
static void mc_zo(rt_backend *be, float *grad, const float *alpha, int64_t n, float weight) {
    MC_DO(be, ((mc_call){.k = MC_ZO, .y = grad, .x = alpha, .n = n, .f = {weight}}));
}
/* host traffic: fine outside a recording, spoils one */
static void mc_upload(rt_backend *be, void *dst, const void *src, size_t bytes) {
    mock *m = (mock *)be;
    if (m->rec) m->spoiled = 1;
    else m->cpu->upload(m->cpu, dst, src, bytes);
}
static void mc_download(rt_backend *be, void *dst, const void *src, size_t bytes) {
    mock *m = (mock *)be;
    if (m->rec) m->spoiled = 1;
    else m->cpu->download(m->cpu, dst, src, bytes);
}
static double mc_sumsq(rt_backend *be, const float *x, int64_t n) {
    mock *m = (mock *)be;
    if (m->rec) m->spoiled = 1;
    return m->cpu->sumsq(m->cpu, x, n);
}
static int mc_capture_begin(rt_backend *be) {
    mock *m = (mock *)be;
    cr_assert(!m->rec, "nested capture");
    m->rec = calloc(1, sizeof *m->rec);
    m->rec->variant = m->variant;
    m->spoiled = 0;
    return 0;
}
static void *mc_capture_end(rt_backend *be) {
    mock *m = (mock *)be;
    mc_graph *g = m->rec;
    m->rec = NULL;
    m->captures++;
    if (m->spoiled) {
        free(g->calls);
        free(g);
        return NULL;
    }
    return g;
}
static void mc_replay(rt_backend *be, void *graph) {
    mock *m = (mock *)be;
    cr_assert(!m->rec, "replay inside a capture");
    mc_graph *g = graph;
    m->replays++;
    for (int i = 0; i < g->n; i++) mc_run(m, &g->calls[i]);
    m->clock += 3 - g->variant;
}
static void mc_graph_free(rt_backend *be, void *graph) {
    ((mock *)be)->frees++;
    mc_graph *g = graph;
    free(g->calls);
    free(g);
}
static void mc_fill_seeds(rt_backend *be, uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes) {
    cr_assert(!((mock *)be)->rec, "seeds filled inside a capture");
    for (int64_t i = 0; i < nodes; i++) seeds[i] = krng_hash(base, step * (uint64_t)nodes + (uint64_t)i);
}
static void mc_destroy(rt_backend *be) {
    mock *m = (mock *)be;
    m->cpu->destroy(m->cpu);
    free(m);
}
static mock *mock_new(void) {
    mock *m = calloc(1, sizeof *m);
    m->cpu = rt_backend_cpu_new();
    m->be = *m->cpu;
    m->be.name = "cpu-recording";
    m->be.forward = mc_forward;
    m->be.backward = mc_backward;
    m->be.memset0 = mc_memset0;
    m->be.copy = mc_copy;
    m->be.axpy = mc_axpy;
    m->be.scale = mc_scale;
    m->be.clip_norm = mc_clip;
    m->be.clip_norm_to = mc_clipto;
    m->be.hvp_eps = mc_hvp;
    m->be.axpy_dev = mc_axpyd;
    m->be.scale_dev = mc_scaled;
    m->be.sgd_step_dev = mc_sgdd;
    m->be.adam_step_dev = mc_adamd;
    m->be.zero_one_grad = mc_zo;
    m->be.upload = mc_upload;
    m->be.download = mc_download;
    m->be.sumsq = mc_sumsq;
    m->be.capture_begin = mc_capture_begin;
    m->be.capture_end = mc_capture_end;
    m->be.replay = mc_replay;
    m->be.graph_free = mc_graph_free;
    m->be.fill_seeds = mc_fill_seeds;
    m->be.destroy = mc_destroy;
    return m;
}

/* DARTS steps of config tc on two runs (a: the recording backend, b: as issued). */
static void pair_init(sr_darts_step ds[2], steprun *a, steprun *b, const ir_train_config *tc) {
    steprun *r[2] = {a, b};
    for (int k = 0; k < 2; k++)
        cr_assert_eq(sr_darts_step_init(&ds[k], r[k]->u.p, r[k]->u.net.images, r[k]->u.net.labels, tc, &r[k]->ws,
                                        r[k]->buf, r[k]->m, r[k]->v),
                     0);
}
/* Step s of both on the same new batches (seeds base + s, base + 100 + s; a's buffers) and
 * learning rate 0.1 / (s + 1); their losses and counts in got. */
static void pair_step(sr_darts_step ds[2], steprun *a, int s, uint64_t base, float got[2][4]) {
    tu_fill_uniform(a->u.xt, 8 * 64, -1.f, 1.f, base + (uint64_t)s);
    tu_fill_uniform(a->u.xv, 8 * 64, -1.f, 1.f, base + 100 + (uint64_t)s);
    const float lr = 0.1f / (float)(s + 1);
    double gn[2];
    for (int k = 0; k < 2; k++)
        cr_assert_eq(sr_darts_step_run(&ds[k], a->u.xt, a->u.yt, a->u.xv, a->u.yv, lr, s + 1, s > 0, got[k], &gn[k]), 0);
}

/* The DARTS step recorded and replayed (the recording CPU backend) against the same step run
 * as issued (the CPU backend): 6 steps, first and second order, a new learning rate and
 * batches every step; weights, alpha, BN buffers, momentum, Adam's state and the losses the
 * same bits after every step, the step recorded on its key's second call and replayed after
 * (so every per-step value reached it through backend memory, none baked in). */
Test(step_record, darts_steps_replayed_equal_steps_run_as_issued, .timeout = 300) {
    for (int order = 1; order <= 2; order++) {
        mock *mk = mock_new();
        steprun a, b;
        steprun_init_on(&a, &mk->be);
        steprun_init(&b);
        ir_train_config tc = {.order = order, .a_lr = 3e-3f, .a_beta1 = 0.5f, .a_beta2 = 0.999f, .a_wd = 1e-3f,
                              .w_momentum = 0.9f, .w_wd = 3e-4f, .w_clip = 0.05f};
        sr_darts_step ds[2];
        pair_init(ds, &a, &b, &tc);
        const int key = order * 2 + 1;
        for (int s = 0; s < 6; s++) {
            float got[2][4];
            pair_step(ds, &a, s, 400, got);
            char what[64];
            snprintf(what, sizeof what, "order %d step %d", order, s);
            cr_assert_eq(rt_step_recorded(a.u.p, key), s >= 2, "%s: recorded %d", what, rt_step_recorded(a.u.p, key));
            cr_assert(memcmp(got[0], got[1], sizeof got[0]) == 0, "%s: losses %g %g vs as issued %g %g", what, got[0][0],
                      got[0][1], got[1][0], got[1][1]);
            cr_assert_eq(rt_plan_step(a.u.p), rt_plan_step(b.u.p), "%s: plan steps differ", what);
            step_same_state(&a, &b, what, 1);
        }
        cr_assert(mk->replays >= 4, "%d replays", mk->replays);
        for (int k = 0; k < 2; k++) sr_darts_step_free(&ds[k]);
        steprun_free(&a);
        steprun_free(&b);
    }
}

/* Autotuning (DARTSC_AUTOTUNE=1) on the recording backend given three variants and a
 * clock its marks read, which a replay of variant v advances by 3 - v (deterministic, as
 * a timing by the host's clock would not be): the key's second, third and fourth steps
 * record one variant each, then each is replayed until timed 3 times (9 steps), variant
 * 2 is kept (median 1 against 2 and 3) and left set, the two others freed; every step the
 * bits of the step run as issued. */
static int mc_variants(rt_backend *be) { (void)be; return 3; }
static void *mc_mark(rt_backend *be) {
    mock *m = (mock *)be;
    cr_assert(m->nmarks < 64, "more than 64 marks");
    m->marks[m->nmarks++] = m->clock;
    return (void *)(intptr_t)m->nmarks;
}
static double mc_mark_elapsed(rt_backend *be, void *a, void *b) {
    mock *m = (mock *)be;
    return m->marks[(intptr_t)b - 1] - m->marks[(intptr_t)a - 1];
}
static void mc_set_variant(rt_backend *be, int k) { ((mock *)be)->variant = k; }
static const char *mc_variant_name(rt_backend *be, int k) {
    (void)be;
    static const char *const names[3] = {"slow", "medium", "fast"};
    return names[k];
}
Test(step_record, autotuning_keeps_the_fastest_variant_with_the_same_bits, .timeout = 300) {
    mock *mk = mock_new();
    mk->be.variants = mc_variants;
    mk->be.set_variant = mc_set_variant;
    mk->be.variant_name = mc_variant_name;
    mk->be.mark = mc_mark;
    mk->be.mark_elapsed = mc_mark_elapsed;
    steprun a, b;
    setenv("DARTSC_AUTOTUNE", "1", 1);
    steprun_init_on(&a, &mk->be);
    unsetenv("DARTSC_AUTOTUNE");
    steprun_init(&b);
    cr_assert_eq(rt_plan_tune_steps(a.u.p), 9);
    cr_assert_eq(rt_plan_tune_steps(b.u.p), 0, "the CPU backend has no variants");
    ir_train_config tc = {.order = 1, .a_lr = 3e-3f, .a_beta1 = 0.5f, .a_beta2 = 0.999f, .a_wd = 1e-3f,
                          .w_momentum = 0.9f, .w_wd = 3e-4f, .w_clip = 0.05f};
    sr_darts_step ds[2];
    pair_init(ds, &a, &b, &tc);
    rt_tune_report tr;
    for (int s = 0; s < 13; s++) { /* 0, 1: eager; 2..10: tuning; 11, 12: the kept graph */
        float got[2][4];
        pair_step(ds, &a, s, 600, got);
        char what[64];
        snprintf(what, sizeof what, "step %d", s);
        cr_assert_eq(rt_step_tuning(a.u.p, &tr), s >= 10 ? 1 : 0, "%s: tuning state", what);
        cr_assert_eq(rt_step_recorded(a.u.p, 3), s >= 10, "%s: recorded %d", what, rt_step_recorded(a.u.p, 3));
        cr_assert(memcmp(got[0], got[1], sizeof got[0]) == 0, "%s: losses %g %g vs as issued %g %g", what, got[0][0],
                  got[0][1], got[1][0], got[1][1]);
        cr_assert_eq(rt_plan_step(a.u.p), rt_plan_step(b.u.p), "%s: plan steps differ", what);
        step_same_state(&a, &b, what, 1);
    }
    cr_expect(tr.variants == 3 && tr.trials == 3 && tr.chosen == 2, "%d variants, %d trials, chose %d", tr.variants,
              tr.trials, tr.chosen);
    cr_expect(!strcmp(tr.names[2], "fast") && tr.times[0] == 3 && tr.times[1] == 2 && tr.times[2] == 1,
              "medians %s %g, %s %g, %s %g", tr.names[0], tr.times[0], tr.names[1], tr.times[1], tr.names[2], tr.times[2]);
    cr_expect_eq(mk->nmarks, 18, "%d marks, want 2 per timed replay", mk->nmarks);
    cr_expect_eq(mk->variant, 2, "the backend was left on variant %d", mk->variant);
    cr_expect_eq(mk->frees, 2, "%d recordings freed after tuning, want the 2 slower ones", mk->frees);
    cr_expect(rt_step_tuning(b.u.p, &tr) == -1, "the CPU backend tuned");
    for (int k = 0; k < 2; k++) sr_darts_step_free(&ds[k]);
    steprun_free(&a);
    steprun_free(&b);
}

/* The retraining step with drop path (0.2, then 0.3 from step 3: the change drops the
 * recording, the next call runs eagerly and the one after records again): each replay's
 * masks are the ones the step would draw as issued (its seeds written before it, per
 * pass), so the weights, BN buffers, momentum and losses match bit for bit. */
Test(step_record, retraining_steps_with_drop_path_replayed_equal_steps_run_as_issued, .timeout = 300) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    sp.in_c = 2; sp.in_h = 8; sp.in_w = 8; sp.classes = 5;
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    ir_eval_opts eo = {.C = 4, .layers = 3, .batch = 8, .drop_path = 1};
    ir_net net;
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &eo, &net), 0, "%s", net.error);
    mock *mk = mock_new();
    rt_backend *be[2] = {&mk->be, rt_backend_cpu_new()};
    rt_plan *p[2];
    sr_step st[2];
    float *buf[2];
    char err[256];
    ir_train_config tc = sp.train;
    for (int k = 0; k < 2; k++) {
        p[k] = rt_plan_new(net.graph, be[k], &(rt_plan_opts){.seed = 9, .grads = RT_GRAD_W}, err, sizeof err);
        cr_assert(p[k], "%s", err);
        rt_plan_set_drop_path(p[k], 0.2f);
        buf[k] = calloc((size_t)rt_plan_group(p[k], IR_ROLE_WEIGHT).n, 4);
        cr_assert_eq(sr_step_init(&st[k], p[k], net.images, net.labels, 1), 0);
    }
    const int64_t ni = 8 * 2 * 8 * 8;
    float *x = malloc((size_t)ni * 4);
    int32_t y[8];
    for (int i = 0; i < 8; i++) y[i] = (i * 3) % 5;
    for (int s = 0; s < 7; s++) {
        if (s == 3)
            for (int k = 0; k < 2; k++) rt_plan_set_drop_path(p[k], 0.3f);
        tu_fill_uniform(x, ni, -1.f, 1.f, 600 + (uint64_t)s);
        float loss[2], corr[2];
        for (int k = 0; k < 2; k++)
            cr_assert_eq(sr_train_step(&st[k], buf[k], x, y, 0.05f / (float)(s + 1), &tc, &loss[k], &corr[k]), 0);
        cr_assert_eq(rt_step_recorded(p[0], 0), s != 0 && s != 3, "step %d: recorded %d", s, rt_step_recorded(p[0], 0));
        cr_assert(memcmp(loss, loss + 1, 4) == 0 && corr[0] == corr[1], "step %d: loss %.9g vs as issued %.9g", s,
                  loss[0], loss[1]);
        const ir_role roles[2] = {IR_ROLE_WEIGHT, IR_ROLE_BUFFER};
        for (int i = 0; i < 2; i++) {
            rt_group ga = rt_plan_group(p[0], roles[i]), gb = rt_plan_group(p[1], roles[i]);
            cr_assert_arr_eq(ga.data, gb.data, (size_t)ga.n * 4, "step %d: %s differ", s, ir_role_name(roles[i]));
        }
        cr_assert_arr_eq(buf[0], buf[1], (size_t)rt_plan_group(p[0], IR_ROLE_WEIGHT).n * 4, "step %d: momentum", s);
    }
    for (int k = 0; k < 2; k++) {
        sr_step_free(&st[k]);
        rt_plan_free(p[k]);
        free(buf[k]);
        be[k]->destroy(be[k]);
    }
    free(x);
    ir_net_free(&net);
}

/* A step that uploads while it is being recorded cannot be recorded: rt_step_run runs it
 * eagerly instead (the same results) and records no step from then on. */
typedef struct upload_ctx {
    rt_plan *p;
    int images, labels;
    const float *x;
    const int32_t *y;
} upload_ctx;
static int upload_step(void *ctx) {
    upload_ctx *c = ctx;
    rt_set_input(c->p, c->images, c->x, 8 * 64 * 4);
    rt_set_input(c->p, c->labels, c->y, 8 * 4);
    return rt_pass(c->p, 1, RT_GRAD_W);
}
Test(step_record, a_step_that_uploads_runs_eagerly) {
    mock *mk = mock_new();
    unrolled a, b;
    unrolled_init_on(&a, &mk->be);
    unrolled_init(&b);
    for (int s = 0; s < 4; s++) {
        tu_fill_uniform(a.xt, 8 * 64, -1.f, 1.f, 800 + (uint64_t)s);
        upload_ctx ca = {a.p, a.net.images, a.net.labels, a.xt, a.yt}, cb = {b.p, b.net.images, b.net.labels, a.xt, a.yt};
        cr_assert_eq(rt_step_run(a.p, 5, upload_step, &ca), 0);
        cr_assert_eq(upload_step(&cb), 0);
        float la = rt_loss(a.p), lb = rt_loss(b.p);
        cr_assert(memcmp(&la, &lb, 4) == 0, "step %d: loss %.9g vs %.9g", s, la, lb);
        rt_group wa = rt_plan_group(a.p, IR_ROLE_WEIGHT), wb = rt_plan_group(b.p, IR_ROLE_WEIGHT);
        cr_assert_arr_eq(wa.grad, wb.grad, (size_t)wa.n * 4, "step %d: gradients differ", s);
        cr_assert(!rt_step_recorded(a.p, 5), "step %d: a step that uploads was recorded", s);
    }
    unrolled_free(&a);
    unrolled_free(&b);
}

/* ---- the weight gradient norm as the weight step's guard, and prefetch (#19) ------------------
 * clip_norm_to clips as the host does and keeps the norm in backend memory, where the SGD
 * step of a whole step reads it as a guard beside the losses; the loops read it after the
 * step and stop with "the weight gradient norm" (test_train: the whole loop). */

/* The CPU backend's clip_norm_to against the host clipping (sumsq + scale): the same bits,
 * for a bound that clips, one that does not and none (0: the norm only); the norm is the
 * host's double rounded to float, FLT_MAX where it is finite beyond float's range, NaN and
 * infinity as they are, 0 for no values. Exact: the same arithmetic on the same values. */
Test(guard, clip_norm_to_keeps_the_norm_and_clips_as_the_host) {
    rt_backend *be = rt_backend_cpu_new();
    cr_assert(be->clip_norm_to);
    const int64_t n = 70001;
    size_t bytes = (size_t)n * 4;
    float *x = malloc(bytes), *a = malloc(bytes), *b = malloc(bytes);
    tu_fill_uniform(x, n, -1.f, 1.f, 9);
    const float bounds[3] = {5.0f, 1e6f, 0.f}; /* ||x|| ~ 153: clips, does not, no clipping */
    for (int k = 0; k < 3; k++) {
        memcpy(a, x, bytes);
        memcpy(b, x, bytes);
        double norm = sqrt(be->sumsq(be, a, n)), c = bounds[k] / (norm + 1e-6);
        if (bounds[k] > 0 && c < 1.0) be->scale(be, a, (float)c, n);
        float got = -1.f;
        be->clip_norm_to(be, b, n, bounds[k], &got);
        cr_assert_arr_eq(a, b, bytes, "bound %g: clip_norm_to differs from the host clipping", bounds[k]);
        cr_assert(got == (float)norm, "bound %g: norm %.9g, host %.17g", bounds[k], got, norm);
        if (k) cr_assert_arr_eq(b, x, bytes, "bound %g changed x", bounds[k]);
    }
    float big[2] = {3e38f, 3e38f}, nv; /* norm 4.2e38: finite in double, beyond float */
    be->clip_norm_to(be, big, 2, 0.f, &nv);
    cr_assert(nv == FLT_MAX && big[0] == 3e38f, "norm %g", nv);
    be->clip_norm_to(be, big, 2, 1.f, &nv);
    cr_assert(nv == FLT_MAX && isfinite(big[0]) && fabsf(big[0] - 0.70710678f) < 1e-6f, "clipped to %g", big[0]);
    /* a NaN norm clips nothing (the factor is NaN); an infinite one scales by 0, as the host
       clipping does; either way the guard then skips the weight step */
    float bad[2][2] = {{1.f, NAN}, {1.f, INFINITY}}, host[2][2];
    memcpy(host, bad, sizeof bad);
    for (int k = 0; k < 2; k++) {
        double norm = sqrt(be->sumsq(be, host[k], 2)), c = 5.0 / (norm + 1e-6);
        if (c < 1.0) be->scale(be, host[k], (float)c, 2);
        be->clip_norm_to(be, bad[k], 2, 5.f, &nv);
        cr_assert(k ? (isinf(nv) && nv > 0) : isnan(nv), "case %d: norm %g", k, nv);
        cr_assert_arr_eq(bad[k], host[k], sizeof bad[k], "case %d: differs from the host clipping", k);
    }
    cr_assert(bad[0][0] == 1.f, "a NaN norm scaled x");
    nv = -1.f;
    be->clip_norm_to(be, x, 0, 5.f, &nv);
    cr_assert(nv == 0.f, "no values: norm %g", nv);
    free(x); free(a); free(b);
    be->destroy(be);
}

/* The CPU backend with one gradient value replaced by poison (NaN or infinity) just before
 * it is clipped: a non-finite gradient while every loss stays finite. */
typedef struct poisoner {
    rt_backend be; /* first */
    rt_backend *cpu;
    float poison; /* 0: none */
} poisoner;
static void poison_clip(rt_backend *be, float *x, int64_t n, float max_norm, float *norm) {
    poisoner *q = (poisoner *)be;
    if (q->poison != 0.f && n > 0) x[n / 2] = q->poison;
    q->cpu->clip_norm_to(q->cpu, x, n, max_norm, norm);
}
static void poison_destroy(rt_backend *be) {
    poisoner *q = (poisoner *)be;
    q->cpu->destroy(q->cpu);
    free(q);
}
static poisoner *poisoner_new(void) {
    poisoner *q = calloc(1, sizeof *q);
    q->cpu = rt_backend_cpu_new();
    q->be = *q->cpu;
    q->be.clip_norm_to = poison_clip;
    q->be.destroy = poison_destroy;
    return q;
}

/* A whole DARTS step (first and second order) and a retraining step whose weight gradient
 * is NaN or infinite while the losses are finite: the losses come back finite, the norm
 * not, and the weights and the SGD momentum are exactly as before the step (the guard);
 * the next clean step moves them again. */
Test(guard, a_non_finite_gradient_with_finite_losses_skips_the_weight_step, .timeout = 300) {
    const float poisons[2] = {NAN, INFINITY};
    for (int order = 1; order <= 2; order++)
        for (int k = 0; k < 2; k++) {
            poisoner *q = poisoner_new();
            steprun a;
            steprun_init_on(&a, &q->be);
            ir_train_config tc = {.order = order, .a_lr = 3e-3f, .a_beta1 = 0.5f, .a_beta2 = 0.999f, .a_wd = 1e-3f,
                                  .w_momentum = 0.9f, .w_wd = 3e-4f, .w_clip = 5.f};
            sr_darts_step ds;
            cr_assert_eq(sr_darts_step_init(&ds, a.u.p, a.u.net.images, a.u.net.labels, &tc, &a.ws, a.buf, a.m, a.v), 0);
            rt_group gw = rt_plan_group(a.u.p, IR_ROLE_WEIGHT);
            size_t wb = (size_t)gw.n * 4;
            float *w0 = malloc(wb), *b0 = malloc(wb), got[4];
            double gnorm;
            for (int s = 0; s < 3; s++) {
                tu_fill_uniform(a.u.xt, 8 * 64, -1.f, 1.f, 900 + (uint64_t)s);
                tu_fill_uniform(a.u.xv, 8 * 64, -1.f, 1.f, 950 + (uint64_t)s);
                memcpy(w0, gw.data, wb);
                memcpy(b0, a.buf, wb);
                q->poison = s == 1 ? poisons[k] : 0.f;
                cr_assert_eq(sr_darts_step_run(&ds, a.u.xt, a.u.yt, a.u.xv, a.u.yv, 0.05f, s + 1, s > 0, got, &gnorm), 0);
                cr_assert(isfinite(got[0]) && isfinite(got[1]), "order %d step %d: losses %g %g", order, s, got[0],
                          got[1]);
                if (s == 1) {
                    cr_assert(k ? isinf(gnorm) : isnan(gnorm), "order %d: norm %g", order, gnorm);
                    cr_assert_arr_eq(gw.data, w0, wb, "order %d, poison %g: the weights moved", order, poisons[k]);
                    cr_assert_arr_eq(a.buf, b0, wb, "order %d, poison %g: the momentum moved", order, poisons[k]);
                } else {
                    cr_assert(isfinite(gnorm) && gnorm > 0, "order %d step %d: norm %g", order, s, gnorm);
                    cr_assert(memcmp(gw.data, w0, wb) != 0, "order %d step %d: a clean step left the weights", order, s);
                }
            }
            sr_darts_step_free(&ds);
            /* the retraining step on the same plan */
            sr_step st;
            cr_assert_eq(sr_step_init(&st, a.u.p, a.u.net.images, a.u.net.labels, 1), 0);
            memcpy(w0, gw.data, wb);
            memcpy(b0, a.buf, wb);
            q->poison = poisons[k];
            float loss, correct, r[SR_STEP_RES];
            cr_assert_eq(sr_train_step(&st, a.buf, a.u.xt, a.u.yt, 0.05f, &tc, &loss, &correct), 0);
            sr_step_read(&st, r);
            cr_assert(isfinite(loss) && (k ? isinf(r[SR_RES_GNORM]) : isnan(r[SR_RES_GNORM])), "retraining: loss %g norm %g",
                      loss, r[SR_RES_GNORM]);
            cr_assert_arr_eq(gw.data, w0, wb, "retraining, poison %g: the weights moved", poisons[k]);
            cr_assert_arr_eq(a.buf, b0, wb, "retraining, poison %g: the momentum moved", poisons[k]);
            sr_step_free(&st);
            free(w0);
            free(b0);
            steprun_free(&a);
        }
}

/* The search with prefetch (the next step's batches drawn and put while a step computes,
 * the default) and without (DARTSC_NO_PREFETCH=1) gives the same files byte for byte: whole
 * runs, a run stopped in the middle of an epoch (a batch drawn ahead: the checkpoint holds
 * the loaders' positions of the batches consumed, so it equals the one written without
 * prefetch) and its resume, with a periodic checkpoint between (also with a batch ahead). */
Test(prefetch, search_bits_and_resume_do_not_depend_on_it, .timeout = 600) {
    ir_space sp;
    tu_demo_search_space(&sp); /* 2 epochs of 4 steps */
    char dir[4][300];
    for (int i = 0; i < 4; i++) snprintf(dir[i], sizeof dir[i], "%s", tu_tmpdir());
    sr_result r;
    char err[1024];
    for (int i = 0; i < 4; i++) { /* 0, 1: whole runs off / on; 2, 3: stopped after 3 steps, off / on */
        if (i % 2) unsetenv("DARTSC_NO_PREFETCH");
        else setenv("DARTSC_NO_PREFETCH", "1", 1);
        sr_options o = sr_options_default();
        o.out_dir = dir[i];
        o.checkpoint_steps = 2;
        o.checkpoint_seconds = 0;
        o.stop_after_steps = i >= 2 ? 3 : 0;
        cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), 0, "%s", err);
        cr_assert_eq(r.stopped, i >= 2);
    }
    unsetenv("DARTSC_NO_PREFETCH");
    const char *files[3] = {"checkpoint.dtns", "genotype.json", "alpha.jsonl"};
    for (int f = 0; f < 3; f++) tu_expect_same_file(dir[0], dir[1], files[f]);
    tu_expect_same_file(dir[2], dir[3], "checkpoint.dtns"); /* stopped with a batch ahead */
    tu_expect_same_file(dir[2], dir[3], "alpha.jsonl");
    /* the run stopped with prefetch resumes (with prefetch) to the uninterrupted run's files */
    sr_options o = sr_options_default();
    o.out_dir = dir[3];
    o.resume = 1;
    o.checkpoint_steps = 2;
    o.checkpoint_seconds = 0;
    cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), 0, "%s", err);
    for (int f = 0; f < 3; f++) tu_expect_same_file(dir[0], dir[3], files[f]);
    const int cmp[2][2] = {{0, 1}, {0, 3}};
    for (int k = 0; k < 2; k++) {
        char *ma = metrics_without_timing(dir[cmp[k][0]]), *mb = metrics_without_timing(dir[cmp[k][1]]);
        cr_expect_str_eq(ma, mb, "metrics.jsonl of %s and %s", dir[cmp[k][0]], dir[cmp[k][1]]);
        free(ma);
        free(mb);
    }
}

/* The architecture split's evaluation at each epoch's end: its batches as passes whose
 * losses and counts stay in backend memory, read once (the default), or each read back as
 * its batch ends (DARTSC_EVAL_SYNC=1, as before): the same losses and accuracies bit for
 * bit, and the same run (checkpoint, alpha, metrics). */
typedef struct evals {
    double loss[4], acc[4];
    int n;
} evals;
static void evals_cb(void *ctx, const sr_progress *p) {
    evals *e = ctx;
    if (p->epoch_end && e->n < 4) {
        e->loss[e->n] = p->val_loss;
        e->acc[e->n++] = p->val_acc;
    }
}
Test(search_loop, the_epoch_evaluation_read_once_equals_reading_each_batch, .timeout = 600) {
    ir_space sp;
    tu_demo_search_space(&sp); /* 2 epochs */
    char dir[2][300], err[1024];
    evals ev[2];
    memset(ev, 0, sizeof ev);
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof dir[i], "%s", tu_tmpdir());
        if (i) unsetenv("DARTSC_EVAL_SYNC");
        else setenv("DARTSC_EVAL_SYNC", "1", 1);
        sr_options o = sr_options_default();
        o.out_dir = dir[i];
        o.progress = evals_cb;
        o.progress_ctx = &ev[i];
        sr_result r;
        cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), 0, "%s", err);
    }
    unsetenv("DARTSC_EVAL_SYNC");
    cr_assert_eq(ev[0].n, 2);
    cr_assert_eq(ev[1].n, 2);
    for (int k = 0; k < 2; k++) {
        cr_expect(isfinite(ev[0].loss[k]) && ev[0].acc[k] > 0.0, "epoch %d: loss %g, accuracy %g", k, ev[0].loss[k],
                  ev[0].acc[k]);
        cr_expect(memcmp(&ev[0].loss[k], &ev[1].loss[k], sizeof(double)) == 0 && ev[0].acc[k] == ev[1].acc[k],
                  "epoch %d: loss %.17g / %.17g, accuracy %.17g / %.17g", k, ev[0].loss[k], ev[1].loss[k], ev[0].acc[k],
                  ev[1].acc[k]);
    }
    const char *files[3] = {"checkpoint.dtns", "genotype.json", "alpha.jsonl"};
    for (int f = 0; f < 3; f++) tu_expect_same_file(dir[0], dir[1], files[f]);
    char *ma = metrics_without_timing(dir[0]), *mb = metrics_without_timing(dir[1]);
    cr_expect_str_eq(ma, mb);
    free(ma);
    free(mb);
}

/* The search loop on a weight gradient that is not finite while every loss is: the stem's
 * convolution weight made NaN in a checkpoint. The stem reaches the cells only through their
 * preprocessing ReLUs, which map NaN to 0, so both losses and alpha's gradient stay finite,
 * but the stem's batch-norm backward (and so its weights' gradient) is NaN. The resumed
 * search's first step skips SGD (the norm guards it) and the loop stops naming "the weight
 * gradient norm", the checkpoint kept as it was. */
Test(guard, the_search_stops_on_a_nan_gradient_with_finite_losses, .timeout = 300) {
    ir_space sp;
    tu_demo_search_space(&sp);
    char dir[300], err[1024], path[600];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    sr_result r;
    tu_run_search(&sp, dir, 0, 2, SR_DARTS, &r);
    /* the stem weight's offset in the weight group of the loop's supernet */
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, sp.search.batch, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    cr_assert(p, "%s", err);
    int64_t off = -1;
    for (int i = 0; i < ir_graph_num_nodes(net.graph) && off < 0; i++)
        if (!strcmp(ir_graph_node(net.graph, i)->name, "stem.0.weight"))
            off = (float *)rt_node_data(p, i) - rt_plan_group(p, IR_ROLE_WEIGHT).data;
    cr_assert(off >= 0, "no stem.0.weight");
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    snprintf(path, sizeof path, "%s/checkpoint.dtns", dir);
    tu_tf_set_nan(path, "group/weights", off);
    size_t n0, n1;
    char *before = tu_slurp(path, &n0);
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.resume = 1;
    err[0] = 0;
    cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), -1, "the search went on");
    cr_expect(strstr(err, "step 3 of the run") && strstr(err, "the weight gradient norm is not a number (NaN)") &&
                  strstr(err, "the last good checkpoint is kept"),
              "%s", err);
    char *after = tu_slurp(path, &n1);
    cr_expect(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "the checkpoint changed");
    free(before);
    free(after);
}
