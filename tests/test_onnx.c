/* test_onnx.c — the ONNX exporter against onnxruntime, and `dartsc inspect` against
 * broken files.
 *
 * Every graph is exported with and without BN folding, checked by onnx's checker
 * (full_check) and strict shape inference, run by onnxruntime (tests/ref/onnx_check.py)
 * at batch 7 and batch 1, and compared with dartsc's own CPU runtime at inference
 * (training = 0: running-statistics BN, dropout and drop path as identities). The
 * graphs are built at batch 7; the exported model has a symbolic batch, and its batch-1
 * result on sample 3 is compared with row 3 of dartsc's batch-7 result.
 *
 * Tolerance: 1e-4 relative, elementwise, with values below 1% of the tensor's largest
 * magnitude compared against that 1% (so near-zero outputs of cancelling sums do not
 * blow up the ratio). The two sides are not bit-identical because onnxruntime uses other
 * convolution and GEMM algorithms (another summation order) and because folding
 * reassociates (w*x)*s as (w*s)*x; both are float32 rounding effects of order 1e-6. A
 * wrong mapping (pads, groups, count_include_pad, a swapped alpha column) is off by O(1).
 *
 * The supernet is exported for viewing only: its BNs always use batch statistics in
 * dartsc, the export uses running statistics (onnx.h), so it is checked for validity and
 * for batch independence, not against the runtime; MIXED's mapping itself is checked
 * against the runtime on a hand-built graph.
 *
 * If .venv-onnx-new (the newest onnx from PyPI, made by scripts/setup) exists, its
 * checker and strict shape inference run on every folded export too.
 *
 * Under ASan (scripts/test), inspect_survives_truncation_and_bit_flips is the one that
 * matters; DARTSC_FUZZ_ITERS=N runs N bit-flip trials instead of 4000. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/onnx.h"
#include "proto/onnx_pb.h"
#include "ir/space.h"
#include "kernels/kdesc.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "testutil.h"

void ir_genotype_darts_v2(ir_genotype *g); /* ir/space.c */

#define BATCH 7
#define ROW 3 /* the sample run again at batch 1 */
#define TOL 1e-4

/* ---- graph building helpers ---------------------------------------------------------------- */

static int conv(ir_graph *g, int x, const char *name, int64_t cin, int64_t cout, int kh, int kw, int s, int ph, int pw,
                int dil, int groups) {
    char wn[128];
    snprintf(wn, sizeof wn, "%s.weight", name);
    int64_t shape[4] = {cout, cin / groups, kh, kw};
    int w = ir_param(g, wn, IR_ROLE_WEIGHT, 4, shape, ir_init_kaiming_uniform(cin / groups * kh * kw));
    return ir_conv2d(g, x, w, s, s, ph, pw, dil, dil, groups, name);
}

static int bn(ir_graph *g, int x, const char *name, int64_t C, int affine) {
    char b[4][128];
    const char *sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) snprintf(b[i], sizeof b[i], "%s.%s", name, sfx[i]);
    int gm = -1, bt = -1;
    if (affine) {
        gm = ir_param(g, b[0], IR_ROLE_WEIGHT, 1, &C, ir_init_ones());
        bt = ir_param(g, b[1], IR_ROLE_WEIGHT, 1, &C, ir_init_zeros());
    }
    int rm = ir_param(g, b[2], IR_ROLE_BUFFER, 1, &C, ir_init_zeros());
    int rv = ir_param(g, b[3], IR_ROLE_BUFFER, 1, &C, ir_init_ones());
    return ir_batchnorm(g, x, gm, bt, rm, rv, 0, 1e-5f, 0.1f, name);
}

static int relu(ir_graph *g, int x, const char *name) { return ir_unary(g, IR_OP_RELU, x, name); }

/* Case builders: x is (BATCH, C, H, W); each returns the output node. */

static int b_conv_dense(ir_graph *g, int x) { /* C 3, 12x12 */
    int y = conv(g, x, "stem.0", 3, 8, 3, 3, 1, 1, 1, 1, 1);
    y = bn(g, y, "stem.1", 8, 1);
    return relu(g, y, "stem.2");
}

static int b_conv_sep(ir_graph *g, int x) { /* C 8: the sep_conv pattern, non-affine BN */
    int y = relu(g, x, "op.0");
    y = conv(g, y, "op.1", 8, 8, 3, 3, 1, 1, 1, 1, 8);
    y = conv(g, y, "op.2", 8, 8, 1, 1, 1, 0, 0, 1, 1);
    y = bn(g, y, "op.3", 8, 0);
    y = relu(g, y, "op.4");
    y = conv(g, y, "op.5", 8, 8, 5, 5, 2, 2, 2, 1, 8); /* depthwise 5x5 stride 2 */
    y = conv(g, y, "op.6", 8, 6, 1, 1, 1, 0, 0, 1, 1);
    return bn(g, y, "op.7", 6, 1);
}

static int b_conv_dilated(ir_graph *g, int x) { /* C 4 */
    int y = conv(g, x, "dil.0", 4, 4, 3, 3, 1, 2, 2, 2, 4);
    y = bn(g, y, "dil.1", 4, 1);
    y = conv(g, y, "dil.2", 4, 6, 5, 5, 2, 4, 4, 2, 1);
    return bn(g, y, "dil.3", 6, 0);
}

static int b_conv_grouped(ir_graph *g, int x) { /* C 6 */
    int y = conv(g, x, "grp.0", 6, 8, 3, 3, 2, 1, 1, 1, 2);
    y = bn(g, y, "grp.1", 8, 1);
    y = conv(g, y, "grp.2", 8, 4, 3, 3, 1, 0, 0, 1, 2); /* no padding, no BN */
    return y;
}

static int b_conv_1x7(ir_graph *g, int x) { /* C 4: conv_7x1_1x7 */
    int y = relu(g, x, "c17.0");
    y = conv(g, y, "c17.1", 4, 4, 1, 7, 1, 0, 3, 1, 1);
    y = conv(g, y, "c17.2", 4, 4, 7, 1, 1, 3, 0, 1, 1);
    return bn(g, y, "c17.3", 4, 1);
}

/* The output is a conv that also feeds a BN (dead for the output): not folded. */
static int b_conv_output(ir_graph *g, int x) { /* C 3 */
    int y = conv(g, x, "a.0", 3, 5, 3, 3, 1, 1, 1, 1, 1);
    y = bn(g, y, "a.1", 5, 1);
    int z = conv(g, y, "a.2", 5, 5, 3, 3, 2, 0, 0, 1, 1);
    bn(g, z, "a.3_dead", 5, 1);
    return z;
}

static int b_bn_unfolded(ir_graph *g, int x) { /* C 4 */
    int r = relu(g, x, "r");
    int y = bn(g, r, "bn_affine", 4, 1);
    int y2 = bn(g, x, "bn_plain", 4, 0);
    int s = ir_nary(g, IR_OP_ADD, 2, (int[]){y, y2}, "sum");
    int c = conv(g, s, "c", 4, 4, 3, 3, 1, 1, 1, 1, 1);
    int t = ir_nary(g, IR_OP_ADD, 2, (int[]){c, s}, "res"); /* c has two consumers... */
    int t2 = bn(g, c, "bn_after_shared_conv", 4, 1);        /* ...so this BN stays */
    int u = ir_nary(g, IR_OP_ADD, 2, (int[]){t, t2}, "out");
    return bn(g, u, "bn_last", 4, 0);
}

static int b_bn_2d(ir_graph *g, int x) { /* C 4: BN on (N, C) features */
    int p = ir_unary(g, IR_OP_GAP, x, "gap");
    int64_t ws[2] = {6, 4}, bs[1] = {6};
    int w = ir_param(g, "fc.weight", IR_ROLE_WEIGHT, 2, ws, ir_init_kaiming_uniform(4));
    int b = ir_param(g, "fc.bias", IR_ROLE_WEIGHT, 1, bs, ir_init_kaiming_uniform(4));
    int y = ir_linear(g, p, w, b, "fc");
    return bn(g, y, "bn1d", 6, 1);
}

static int b_pools(ir_graph *g, int x) { /* C 4, 11x11 (odd: padding matters) */
    int m1 = ir_pool(g, IR_OP_MAXPOOL, x, 3, 1, 1, "max_s1");
    int a1 = ir_pool(g, IR_OP_AVGPOOL, x, 3, 1, 1, "avg_s1");
    int s1 = ir_nary(g, IR_OP_ADD, 2, (int[]){m1, a1}, "sum_s1");
    int m2 = ir_pool(g, IR_OP_MAXPOOL, s1, 3, 2, 1, "max_s2");
    int a2 = ir_pool(g, IR_OP_AVGPOOL, s1, 3, 2, 1, "avg_s2");
    int a5 = ir_pool(g, IR_OP_AVGPOOL, s1, 5, 2, 2, "avg5_s2");
    int m0 = ir_pool(g, IR_OP_MAXPOOL, s1, 2, 2, 0, "max2_s2");
    int a0 = ir_pool(g, IR_OP_AVGPOOL, s1, 3, 2, 0, "avg_nopad");
    (void)m0; /* 5x5, does not match the others' 6x6: exercised below on its own */
    int c = ir_nary(g, IR_OP_CONCAT, 3, (int[]){m2, a2, a5}, "cat");
    int d = ir_pool(g, IR_OP_MAXPOOL, c, 2, 2, 0, "max2_s2b");
    int e = ir_pool(g, IR_OP_AVGPOOL, a0, 2, 2, 1, "avg2_pad");
    int f = ir_unary(g, IR_OP_GAP, d, "gap_d");
    int h = ir_unary(g, IR_OP_GAP, e, "gap_e");
    int k = ir_unary(g, IR_OP_GAP, m0, "gap_m0");
    return ir_nary(g, IR_OP_CONCAT, 3, (int[]){f, h, k}, "feat");
}

static int b_elementwise(ir_graph *g, int x) { /* C 4 */
    int t = ir_unary(g, IR_OP_TANH, x, "tanh");
    int s = ir_unary(g, IR_OP_SIGMOID, x, "sigmoid");
    int r = relu(g, x, "relu");
    int a = ir_nary(g, IR_OP_ADD, 3, (int[]){t, s, r}, "add3");
    int m = ir_nary(g, IR_OP_MEAN, 3, (int[]){a, s, x}, "mean3");
    int p = ir_binary(g, IR_OP_MUL, m, t, "mul");
    int d = ir_binary(g, IR_OP_SUB, p, r, "sub");
    int k = ir_scale(g, d, -0.75f, "scale");
    int one = ir_nary(g, IR_OP_ADD, 1, &k, "add1");
    return ir_nary(g, IR_OP_MEAN, 1, &one, "mean1");
}

static int b_concat_slice_shift(ir_graph *g, int x) { /* C 6, 10x10: FactorizedReduce and slices */
    int r = relu(g, x, "fr.relu");
    int c1 = conv(g, r, "fr.conv_1", 6, 4, 1, 1, 2, 0, 0, 1, 1);
    int sh = ir_unary(g, IR_OP_SHIFT, r, "fr.shift");
    int c2 = conv(g, sh, "fr.conv_2", 6, 4, 1, 1, 2, 0, 0, 1, 1);
    int cat = ir_nary(g, IR_OP_CONCAT, 2, (int[]){c1, c2}, "fr.cat");
    int y = bn(g, cat, "fr.bn", 8, 1);
    int s1 = ir_slice(g, y, 0, 3, "slice_lo");
    int s2 = ir_slice(g, y, 3, 5, "slice_hi");
    int s3 = ir_slice(g, x, 2, 2, "slice_x");
    int p = ir_pool(g, IR_OP_AVGPOOL, s3, 3, 2, 1, "pool_x");
    return ir_nary(g, IR_OP_CONCAT, 4, (int[]){s2, s1, p, s1}, "out");
}

static int b_zero_alias(ir_graph *g, int x) { /* C 4, 9x9: zero op at stride 1 and 2, aliases */
    int z1 = ir_zero(g, x, 1, "zero_s1");
    int i = ir_unary(g, IR_OP_IDENTITY, x, "skip");
    int dp = ir_dropout(g, IR_OP_DROP_PATH, i, 0.2f, "drop_path");
    int r = relu(g, dp, "relu");
    int a = ir_nary(g, IR_OP_ADD, 3, (int[]){z1, r, i}, "add");
    int z2 = ir_zero(g, a, 2, "zero_s2");
    int z3 = ir_zero(g, a, 3, "zero_s3");
    int m = ir_pool(g, IR_OP_MAXPOOL, a, 3, 2, 1, "max");
    int b = ir_nary(g, IR_OP_ADD, 2, (int[]){m, z2}, "add2");
    int c = ir_pool(g, IR_OP_AVGPOOL, a, 3, 3, 1, "avg_s3");
    int d = ir_nary(g, IR_OP_ADD, 2, (int[]){c, z3}, "add3");
    int e = ir_dropout(g, IR_OP_DROPOUT, b, 0.3f, "dropout");
    int f = ir_unary(g, IR_OP_GAP, e, "gap_b");
    int h = ir_unary(g, IR_OP_GAP, d, "gap_d");
    int cat = ir_nary(g, IR_OP_CONCAT, 2, (int[]){f, h}, "cat");
    /* the output is an alias: Identity(DROP_PATH(...)) */
    int o = ir_dropout(g, IR_OP_DROP_PATH, cat, 0.1f, "out_drop_path");
    return ir_unary(g, IR_OP_IDENTITY, o, "out_identity");
}

static int b_output_is_input(ir_graph *g, int x) { /* C 2, 3x3: the graph is the identity */
    int i = ir_unary(g, IR_OP_IDENTITY, x, "id");
    return ir_dropout(g, IR_OP_DROPOUT, i, 0.5f, "drop");
}

static int b_head(ir_graph *g, int x) { /* C 5: classifier with softmax, and a bias-less linear */
    int p = ir_unary(g, IR_OP_GAP, x, "global_pooling");
    int64_t ws[2] = {7, 5}, bs[1] = {7}, w2s[2] = {3, 7};
    int w = ir_param(g, "classifier.weight", IR_ROLE_WEIGHT, 2, ws, ir_init_kaiming_uniform(5));
    int b = ir_param(g, "classifier.bias", IR_ROLE_WEIGHT, 1, bs, ir_init_kaiming_uniform(5));
    int y = ir_linear(g, p, w, b, "classifier");
    int s = ir_unary(g, IR_OP_SOFTMAX, y, "softmax");
    int w2 = ir_param(g, "proj.weight", IR_ROLE_WEIGHT, 2, w2s, ir_init_kaiming_uniform(7));
    int z = ir_linear(g, s, w2, -1, "proj");
    return ir_unary(g, IR_OP_SOFTMAX, z, "softmax2");
}

static int b_mixed_wsum(ir_graph *g, int x) { /* C 4: a supernet edge with its BNs at running stats */
    int64_t as[2] = {2, 5}, ws[1] = {3};
    int alpha = ir_param(g, "alphas_normal", IR_ROLE_ARCH, 2, as, ir_init_normal(1e-3f));
    int mp = ir_pool(g, IR_OP_MAXPOOL, x, 3, 1, 1, "_ops.1");
    int cv = bn(g, conv(g, relu(g, x, "_ops.2.op.0"), "_ops.2.op.1", 4, 4, 3, 3, 1, 1, 1, 1, 1), "_ops.2.op.2", 4, 0);
    int id = ir_unary(g, IR_OP_IDENTITY, x, "_ops.3");
    /* column 0 (none) and 4 have no input: zero ops inside the softmax */
    int m = ir_mixed(g, alpha, 1, 3, (int[]){mp, cv, id}, (int[]){1, 2, 3}, "edge0");
    int m2 = ir_mixed(g, alpha, 0, 2, (int[]){id, m}, (int[]){4, 0}, "edge1");
    int w = ir_param(g, "wsum.weights", IR_ROLE_ARCH, 1, ws, ir_init_normal(1.f));
    int s = ir_wsum(g, w, 3, (int[]){m, m2, mp}, "wsum");
    /* WSUM with computed weights: softmax of a parameter */
    int w2 = ir_unary(g, IR_OP_SOFTMAX, w, "wsum2.weights");
    return ir_wsum(g, w2, 3, (int[]){s, cv, id}, "wsum2");
}

/* ---- running, exporting and comparing ------------------------------------------------------- */

/* Random weights already come from the plan's seed; give every BN non-trivial running
 * statistics and affine parameters, and every architecture parameter order-1 values. */
static void randomise(rt_plan *p, const ir_graph *g, uint64_t seed) {
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op == IR_OP_PARAM && n->role == IR_ROLE_ARCH)
            tu_fill_uniform(rt_node_data(p, i), ir_node_numel(n), -1.5f, 1.5f, seed + (uint64_t)i);
        if (n->op != IR_OP_BATCHNORM) continue;
        int64_t C = n->shape[1];
        static const float lo[5] = {0, 0.5f, -0.5f, -0.5f, 0.3f}, hi[5] = {0, 1.5f, 0.5f, 0.5f, 2.0f};
        for (int k = 1; k < 5; k++)
            if (n->inputs[k] >= 0) tu_fill_uniform(rt_node_data(p, n->inputs[k]), C, lo[k], hi[k], seed + 97 * (uint64_t)i + (uint64_t)k);
    }
}

static int have_new_onnx(void) {
    return access(tu_src_path(".venv-onnx-new/bin/python"), X_OK) == 0;
}

typedef struct export_result {
    double err_b7, err_b1; /* worst relative errors against dartsc (or batch consistency) */
} export_result;

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double fl = 1e-2 * max_abs(b, n);
    return tu_max_rel_err(a, b, n, fl > 1e-12 ? fl : 1e-12, NULL);
}

/* Exports (g, input, output) with the values in p, checks and runs it in onnxruntime on
 * img (BATCH samples) and on sample ROW alone, and compares with ref (BATCH rows of the
 * output). ref NULL: compare the batch-1 run with row ROW of the batch-7 run only. */
static export_result export_and_run(const char *tag, const ir_graph *g, rt_plan *p, int input, int output,
                                    const float *img, const float *ref, int fold, int new_onnx) {
    int n = ir_graph_num_nodes(g);
    const float **vals = calloc((size_t)n, sizeof *vals);
    for (int i = 0; i < n; i++)
        if (ir_graph_node(g, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(p, i);
    const ir_node *in = ir_graph_node(g, input), *out = ir_graph_node(g, output);
    cg_model m = {.g = g, .values = vals, .input = input, .output = output, .name = tag, .space_name = "test",
                  .genotype_json = "{\"normal\": []}", .in_c = (int)in->shape[1], .mean = {0.5f, 0.25f, 0.125f},
                  .std = {0.2f, 0.3f, 0.4f}, .class_names = (const char *const[]){"a \"quoted\" name", "b"},
                  .n_classes = 2, .test_accuracy = 0.9375};
    const char *dir = tu_tmpdir();
    char path[512], in_path[512], out_path[512], cmd[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s%s.onnx", dir, tag, fold ? "_folded" : "");
    snprintf(in_path, sizeof in_path, "%s/in.dtns", dir);
    snprintf(out_path, sizeof out_path, "%s/out.dtns", dir);
    cg_onnx_opts o = cg_onnx_opts_default();
    o.fold_bn = fold;
    cr_assert_eq(cg_onnx_write(&m, &o, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cg_onnx_inspect(path, NULL, err, sizeof err), 0, "inspect of a fresh export: %s", err);

    int64_t per = ir_node_numel(in) / in->shape[0], per_out = ir_node_numel(out) / out->shape[0];
    int64_t d7[4], d1[4];
    for (int i = 0; i < in->ndim; i++) d7[i] = d1[i] = in->shape[i];
    d1[0] = 1;
    rt_tf_writer *w = rt_tf_open_write(in_path, err, sizeof err);
    cr_assert(w, "%s", err);
    rt_tf_write(w, "input.b7", RT_TF_F32, in->ndim, d7, img);
    rt_tf_write(w, "input.b1", RT_TF_F32, in->ndim, d1, img + ROW * per);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "%s %s run --check %s %s %s", DARTSC_PYTHON, tu_src_path("tests/ref/onnx_check.py"), path,
             in_path, out_path);
    cr_assert_eq(system(cmd), 0, "onnx check/run failed: %s", cmd);
    if (new_onnx && have_new_onnx()) {
        char py[1024];
        snprintf(py, sizeof py, "%s", tu_src_path(".venv-onnx-new/bin/python")); /* static buffer */
        snprintf(cmd, sizeof cmd, "%s %s check %s", py, tu_src_path("tests/ref/onnx_check.py"), path);
        cr_assert_eq(system(cmd), 0, "newest onnx's checker failed: %s", cmd);
    }
    rt_tf_file *f = rt_tf_read(out_path, err, sizeof err);
    cr_assert(f, "%s", err);
    const rt_tf_entry *y7 = rt_tf_find(f, "logits.b7"), *y1 = rt_tf_find(f, "logits.b1");
    cr_assert(y7 && y1);
    cr_assert_eq(y7->numel, BATCH * per_out, "%s: onnxruntime gave %lld values, dartsc %lld", tag,
                 (long long)y7->numel, (long long)(BATCH * per_out));
    cr_assert_eq(y1->numel, per_out);
    for (int i = 0; i < out->ndim; i++)
        cr_assert_eq(y7->dims[i], i ? out->shape[i] : BATCH, "%s: output dim %d", tag, i);
    export_result r;
    const float *o7 = y7->data, *o1 = y1->data;
    for (int64_t i = 0; i < y7->numel; i++) cr_assert(isfinite(o7[i]), "%s: non-finite output", tag);
    if (ref) {
        r.err_b7 = rel_err(o7, ref, BATCH * per_out);
        r.err_b1 = rel_err(o1, ref + ROW * per_out, per_out);
    } else {
        r.err_b7 = 0;
        r.err_b1 = rel_err(o1, o7 + ROW * per_out, per_out);
    }
    cr_log_info("%-22s fold %d: max rel err batch 7 %.2e, batch 1 %.2e (outputs up to %.3g)", tag, fold, r.err_b7,
                r.err_b1, max_abs(o7, y7->numel));
    rt_tf_free(f);
    free(vals);
    return r;
}

/* Runs g at inference in dartsc, exports it with and without folding and compares. */
static void check_graph(const char *tag, const ir_graph *g, int input, int output, int labels, int new_onnx) {
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 1, .grads = 0}, err, sizeof err);
    cr_assert(p, "%s", err);
    randomise(p, g, 1000);
    const ir_node *in = ir_graph_node(g, input), *out = ir_graph_node(g, output);
    cr_assert_eq(in->shape[0], BATCH);
    int64_t nin = ir_node_numel(in), nout = ir_node_numel(out);
    float *img = malloc((size_t)nin * 4), *ref = malloc((size_t)nout * 4);
    tu_fill_uniform(img, nin, -2.f, 2.f, 4242);
    cr_assert_eq(rt_set_input(p, input, img, (size_t)nin * 4), 0);
    if (labels >= 0) {
        int32_t lab[BATCH] = {0};
        cr_assert_eq(rt_set_input(p, labels, lab, sizeof lab), 0);
    }
    rt_forward(p, 0);
    cr_assert_eq(rt_read(p, output, ref, (size_t)nout * 4), 0);
    for (int fold = 1; fold >= 0; fold--) {
        export_result r = export_and_run(tag, g, p, input, output, img, ref, fold, new_onnx && fold);
        cr_expect(r.err_b7 <= TOL, "%s (fold %d): batch 7 differs from dartsc by %.3g relative", tag, fold, r.err_b7);
        cr_expect(r.err_b1 <= TOL, "%s (fold %d): batch 1 differs from dartsc by %.3g relative", tag, fold, r.err_b1);
    }
    free(img);
    free(ref);
    rt_plan_free(p);
    be->destroy(be);
}

typedef int (*case_fn)(ir_graph *g, int x);

static void check_case(const char *tag, int c, int h, int w, case_fn build) {
    ir_graph *g = ir_graph_new(tag);
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){BATCH, c, h, w});
    int y = build(g, x);
    cr_assert(y >= 0 && !ir_graph_error(g), "%s: %s", tag, ir_graph_error(g));
    ir_node_set_flags(g, y, IR_FLAG_OUTPUT);
    cr_assert_eq(ir_verify(g), 0, "%s", ir_graph_error(g));
    check_graph(tag, g, x, y, -1, 1);
    ir_graph_free(g);
}

Test(onnx, conv_dense_with_bn_matches_runtime, .timeout = 120) { check_case("conv_dense", 3, 12, 12, b_conv_dense); }
Test(onnx, conv_depthwise_separable_matches_runtime, .timeout = 120) { check_case("conv_sep", 8, 12, 12, b_conv_sep); }
Test(onnx, conv_dilated_matches_runtime, .timeout = 120) { check_case("conv_dilated", 4, 13, 13, b_conv_dilated); }
Test(onnx, conv_grouped_matches_runtime, .timeout = 120) { check_case("conv_grouped", 6, 10, 10, b_conv_grouped); }
Test(onnx, conv_1x7_7x1_matches_runtime, .timeout = 120) { check_case("conv_1x7_7x1", 4, 9, 11, b_conv_1x7); }
Test(onnx, conv_as_output_keeps_its_bn_unfolded, .timeout = 120) { check_case("conv_output", 3, 9, 9, b_conv_output); }
Test(onnx, unfolded_batchnorm_affine_and_plain_matches_runtime, .timeout = 120) {
    check_case("bn_unfolded", 4, 8, 8, b_bn_unfolded);
}
Test(onnx, batchnorm_on_features_matches_runtime, .timeout = 120) { check_case("bn_2d", 4, 6, 6, b_bn_2d); }
Test(onnx, pools_stride_1_and_2_match_runtime, .timeout = 120) { check_case("pools", 4, 11, 11, b_pools); }
Test(onnx, elementwise_ops_match_runtime, .timeout = 120) { check_case("elementwise", 4, 5, 5, b_elementwise); }
Test(onnx, concat_slice_shift_match_runtime, .timeout = 120) {
    check_case("concat_slice_shift", 6, 10, 10, b_concat_slice_shift);
}
Test(onnx, zero_identity_drop_path_match_runtime, .timeout = 120) { check_case("zero_alias", 4, 9, 9, b_zero_alias); }
Test(onnx, output_that_is_the_input_gets_an_identity, .timeout = 120) {
    check_case("output_is_input", 2, 3, 3, b_output_is_input);
}
Test(onnx, gap_linear_softmax_match_runtime, .timeout = 120) { check_case("head", 5, 4, 4, b_head); }
Test(onnx, mixed_and_wsum_match_runtime, .timeout = 120) { check_case("mixed_wsum", 4, 8, 8, b_mixed_wsum); }

static void small_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    sp->in_c = 3;
    sp->in_h = sp->in_w = 16;
    sp->classes = 10;
    sp->C = 4;
    sp->layers = 5;
    sp->reduce_at[0] = 1;
    sp->reduce_at[1] = 3;
    sp->n_reduce = 2;
}

/* The DARTS_V2 cells with sharpDARTS's SharpSepConv in place of sep_conv_3x3 and
 * dil_conv_3x3 (undilated and dilated, normal cell) and of max_pool_3x3 (5x5 dilated, stride 2
 * in the reduction cell). */
static void sharp_space(ir_space *sp) {
    sp->normal.ops[4] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 1, .name = "sharp_sep_conv_3x3"};
    sp->normal.ops[6] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 2, .name = "dil_sharp_sep_conv_3x3"};
    sp->reduce.ops[1] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 5, .dilation = 2, .name = "dil_sharp_sep_conv_5x5"};
}

/* The paper's DARTS_V2 cells in a small evaluation network, with drop path nodes (sharp:
 * over sharp_space's ops). */
static void v2_case(const char *tag, int sharp) {
    ir_space sp;
    small_space(&sp);
    if (sharp) sharp_space(&sp);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    ir_net net;
    ir_eval_opts eo = {.C = 8, .layers = 5, .batch = BATCH, .drop_path = 1};
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &eo, &net), 0, "%s", net.error);
    check_graph(tag, net.graph, net.images, net.logits, net.labels, 1);
    ir_net_free(&net);
}
Test(onnx, darts_v2_network_matches_runtime, .timeout = 300) { v2_case("darts_v2", 0); }
Test(onnx, sharp_sep_conv_network_matches_runtime, .timeout = 300) { v2_case("sharp", 1); }

/* Node names say where a node sits in the architecture: cell, node, edge, op, part. */
Test(onnx, node_names_read_cell_node_edge_op_and_part, .timeout = 120) {
    ir_space sp;
    small_space(&sp);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    ir_net net;
    ir_eval_opts eo = {.C = 8, .layers = 5, .batch = 1, .drop_path = 1};
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &eo, &net), 0, "%s", net.error);
    int n = ir_graph_num_nodes(net.graph);
    char **labels = ir_eval_labels(&sp, &gt, 5, net.graph);
    cr_assert(labels);
    char err[1024];
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1}, err, sizeof err);
    cr_assert(p, "%s", err);
    const float **vals = calloc((size_t)n, sizeof *vals);
    for (int i = 0; i < n; i++)
        if (ir_graph_node(net.graph, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(p, i);
    cg_model m = {.g = net.graph, .values = vals, .input = net.images, .output = net.logits, .name = "named",
                  .in_c = 3, .mean = {0, 0, 0}, .std = {1, 1, 1}, .test_accuracy = -1,
                  .labels = (const char *const *)labels};
    char path[512];
    snprintf(path, sizeof path, "%s/named.onnx", tu_tmpdir());
    cr_assert_eq(cg_onnx_write(&m, &(cg_onnx_opts){.fold_bn = 1}, path, err, sizeof err), 0, "%s", err);
    size_t len;
    char *bytes = tu_slurp(path, &len);
    cr_assert(bytes);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, (const uint8_t *)bytes);
    cr_assert(mp && mp->graph);
    /* DARTS_V2, 5 cells, reductions at 1 and 3 (REFERENCE.md's genotype) */
    const char *want[] = {"stem/conv", "cell0/preprocess1/conv", "cell0/node0/edge0/sep_conv_3x3/dw1",
                          "cell0/node1/edge1/sep_conv_3x3/pw2", "cell0/node3/edge1/dil_conv_3x3/dw", "cell0/node3/sum",
                          "cell0/concat", "cell1/node0/edge0/max_pool_3x3", "cell2/preprocess0/factorized_reduce/conv_1",
                          "cell4/node2/edge0/sep_conv_3x3/relu2", "global_pool", "classifier"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (size_t i = 0; i < mp->graph->n_node; i++) found |= !strcmp(mp->graph->node[i]->name, want[w]);
        cr_expect(found, "no node named %s", want[w]);
    }
    for (size_t i = 0; i < mp->graph->n_node; i++)
        cr_expect(strncmp(mp->graph->node[i]->name, "cells.", 6), "node %s kept its module name", mp->graph->node[i]->name);
    /* initializers keep the reference's state_dict names */
    int has_key = 0;
    for (size_t i = 0; i < mp->graph->n_initializer; i++)
        has_key |= !strncmp(mp->graph->initializer[i]->name, "cells.0._ops.0.op.1.weight", 26);
    cr_expect(has_key, "initializers renamed");
    onnx__model_proto__free_unpacked(mp, NULL);
    free(bytes);
    free(vals);
    ir_eval_labels_free(labels, n);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* The search supernet, for viewing: valid, runnable, batch-independent. */
Test(onnx, supernet_exports_for_inspection, .timeout = 300) {
    ir_space sp;
    small_space(&sp);
    sp.layers = 3;
    sp.reduce_at[0] = 1;
    sp.reduce_at[1] = 2;
    ir_net net;
    cr_assert_eq(ir_space_build_supernet(&sp, BATCH, &net), 0, "%s", net.error);
    const ir_graph *g = net.graph;
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 3, .grads = 0}, err, sizeof err);
    cr_assert(p, "%s", err);
    randomise(p, g, 77);
    int64_t nin = (int64_t)BATCH * 3 * 16 * 16;
    float *img = malloc((size_t)nin * 4);
    tu_fill_uniform(img, nin, -2.f, 2.f, 99);
    int n_mixed = 0;
    for (int i = 0; i < ir_graph_num_nodes(g); i++) n_mixed += ir_graph_node(g, i)->op == IR_OP_MIXED;
    cr_assert(n_mixed > 10);
    for (int fold = 1; fold >= 0; fold--) {
        export_result r = export_and_run("supernet", g, p, net.images, net.logits, img, NULL, fold, fold);
        cr_expect(r.err_b1 <= TOL, "supernet (fold %d): batch 1 differs from batch 7 by %.3g", fold, r.err_b1);
    }
    free(img);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
}

/* ---- failures, metadata and inspect ------------------------------------------------------- */

Test(onnx, unexportable_graph_is_an_error_and_leaves_no_file) {
    ir_graph *g = ir_graph_new("emb");
    int ids = ir_input(g, "ids", IR_DTYPE_I32, 1, (int64_t[]){4});
    int64_t ts[2] = {10, 3};
    int t = ir_param(g, "table", IR_ROLE_WEIGHT, 2, ts, ir_init_normal(1.f));
    int e = ir_embedding(g, ids, t, "emb");
    float tab[30] = {0};
    const float *vals[3] = {NULL, tab, NULL};
    cg_model m = {.g = g, .values = vals, .input = ids, .output = e, .name = "emb"};
    const char *dir = tu_tmpdir();
    char path[512], tmp[520], err[512];
    snprintf(path, sizeof path, "%s/emb.onnx", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    cr_assert_neq(cg_onnx_write(&m, NULL, path, err, sizeof err), 0);
    cr_expect(strstr(err, "emb.onnx") && strstr(err, "'ids'"), "message: %s", err);
    struct stat st;
    cr_expect(stat(path, &st) == 0 && st.st_size == 3, "the existing file was touched");
    cr_expect(stat(tmp, &st) != 0, "a temporary file was left");
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/m.onnx", dir);
    ir_graph *g2 = ir_graph_new("x");
    int x = ir_input(g2, "x", IR_DTYPE_F32, 4, (int64_t[]){1, 1, 2, 2});
    int r = ir_unary(g2, IR_OP_RELU, x, "r");
    cg_model m2 = {.g = g2, .values = (const float *const[]){NULL, NULL}, .input = x, .output = r, .name = "x"};
    cr_assert_neq(cg_onnx_write(&m2, NULL, path, err, sizeof err), 0);
    cr_expect(strstr(err, "m.onnx.tmp"), "message: %s", err);
    ir_graph_free(g2);
    ir_graph_free(g);
}

/* A CPU plan of g (seed 5: its random weights) and the values of its PARAM nodes, for
 * cg_model.values. */
typedef struct planned {
    rt_backend *be;
    rt_plan *p;
    const float **vals;
} planned;

static planned plan_values(const ir_graph *g) {
    planned pl = {rt_backend_cpu_new(), NULL, NULL};
    char err[512];
    pl.p = rt_plan_new(g, pl.be, &(rt_plan_opts){.seed = 5}, err, sizeof err);
    cr_assert(pl.p, "%s", err);
    int n = ir_graph_num_nodes(g);
    pl.vals = calloc((size_t)n, sizeof *pl.vals);
    for (int i = 0; i < n; i++)
        if (ir_graph_node(g, i)->op == IR_OP_PARAM) pl.vals[i] = rt_node_data(pl.p, i);
    return pl;
}

static void planned_free(planned *pl) {
    free(pl->vals);
    rt_plan_free(pl->p);
    pl->be->destroy(pl->be);
}

/* A small but complete model for the inspect tests: the mixed/wsum case plus a head;
 * BNs folded (fold 1) or kept. */
static char *small_model_fold(const char *dir, size_t *len, int fold) {
    ir_graph *g = ir_graph_new("small");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){1, 4, 6, 6});
    int y = b_mixed_wsum(g, x);
    y = b_head(g, conv(g, y, "c", 4, 5, 3, 3, 2, 1, 1, 1, 1));
    cr_assert(y >= 0, "%s", ir_graph_error(g));
    planned pl = plan_values(g);
    char err[512];
    cg_model m = {.g = g, .values = pl.vals, .input = x, .output = y, .name = "small", .space_name = "darts",
                  .genotype_json = "{\"normal\": [[\"sep_conv_3x3\", 0]]}", .in_c = 4, .test_accuracy = -1};
    static char path[600];
    snprintf(path, sizeof path, "%s/small%s.onnx", dir, fold ? "" : "_bn");
    cg_onnx_opts o = cg_onnx_opts_default();
    o.fold_bn = fold;
    cr_assert_eq(cg_onnx_write(&m, &o, path, err, sizeof err), 0, "%s", err);
    planned_free(&pl);
    ir_graph_free(g);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fclose(f);
    return path;
}

static char *small_model(const char *dir, size_t *len) { return small_model_fold(dir, len, 1); }

static unsigned char *slurp(const char *path, size_t len) {
    unsigned char *b = malloc(len);
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(b, 1, len, f) == len);
    fclose(f);
    return b;
}

Test(onnx, inspect_prints_the_summary) {
    size_t len;
    const char *path = small_model(tu_tmpdir(), &len);
    char out[600], err[512], cmd[8192];
    snprintf(out, sizeof out, "%s.txt", path);
    FILE *f = fopen(out, "w");
    cr_assert_eq(cg_onnx_inspect(path, f, err, sizeof err), 0, "%s", err);
    fclose(f);
    size_t n;
    {
        struct stat st;
        stat(out, &st);
        n = (size_t)st.st_size;
    }
    char *txt = calloc(n + 1, 1);
    unsigned char *raw = slurp(out, n);
    memcpy(txt, raw, n);
    free(raw);
    const char *want[] = {"ir version: 8", "opsets: ai.onnx 13", "producer: dartsc " DARTSC_VERSION,
                          "input  float32 [N, 4, 6, 6]", "logits  float32 [N, 3]", "Conv 2", "Sum 4",
                          "Softmax 3", "Gemm 2", "genotype: {\"normal\": [[\"sep_conv_3x3\", 0]]}", "space: darts",
                          "bn_folded: 1", "initializers: "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(txt, want[i]), "summary lacks '%s':\n%s", want[i], txt);
    cr_log_info("%s", txt);
    /* the command line, on the good file and on a truncated copy */
    const char *bin = getenv("DARTSC_BIN");
    if (bin) {
        snprintf(cmd, sizeof cmd, "%s inspect %s > /dev/null", bin, path);
        cr_expect_eq(system(cmd), 0, "%s", cmd);
        char bad[700];
        snprintf(bad, sizeof bad, "%s.cut.onnx", path);
        snprintf(cmd, sizeof cmd, "head -c %zu %s > %s && %s inspect %s 2> %s.err", len / 2, path, bad, bin, bad, bad);
        int rc = system(cmd);
        cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "truncated file: exit status %d", rc);
        snprintf(cmd, sizeof cmd, "grep -q 'cut.onnx: ' %s.err", bad);
        cr_expect_eq(system(cmd), 0, "the error does not name the file");
    }
    free(txt);
}

/* Truncations at every offset and random bit flips: each must give an error that names
 * the file, or a valid summary; never a crash (run under ASan too: scripts/test). */
Test(onnx, inspect_survives_truncation_and_bit_flips, .timeout = 300) {
    size_t len;
    const char *path = small_model(tu_tmpdir(), &len);
    unsigned char *good = slurp(path, len), *buf = malloc(len);
    FILE *devnull = fopen("/dev/null", "w");
    char err[1024];
    int errors = 0, ok = 0;
    size_t step = len > 20000 ? len / 20000 : 1;
    for (size_t cut = 0; cut < len; cut += step) {
        err[0] = 0;
        int rc = cg_onnx_inspect_buf(good, cut, "cut.onnx", devnull, err, sizeof err);
        if (rc) {
            cr_assert(strncmp(err, "cut.onnx: ", 10) == 0, "error does not name the file: %s", err);
            errors++;
        } else {
            ok++;
        }
    }
    cr_log_info("%zu-byte model, truncated at %zu offsets: %d errors, %d valid prefixes", len, (len + step - 1) / step,
                errors, ok);
    cr_expect(errors > (int)(len / step) * 9 / 10, "most truncations must be errors (%d of %zu)", errors, len / step);
    errors = ok = 0;
    int iters = getenv("DARTSC_FUZZ_ITERS") ? atoi(getenv("DARTSC_FUZZ_ITERS")) : 4000; /* longer runs by hand */
    for (int t = 0; t < iters; t++) {
        memcpy(buf, good, len);
        int flips = 1 + (int)(krng_uniform(11, (uint64_t)t) * 4);
        for (int k = 0; k < flips; k++) {
            uint64_t r = (uint64_t)t * 8 + (uint64_t)k;
            size_t at = (size_t)(krng_uniform(12, r) * (float)len) % len;
            buf[at] ^= (unsigned char)(1u << ((int)(krng_uniform(13, r) * 8) & 7));
        }
        err[0] = 0;
        int rc = cg_onnx_inspect_buf(buf, len, "flip.onnx", devnull, err, sizeof err);
        if (rc) {
            cr_assert(strncmp(err, "flip.onnx: ", 11) == 0, "error does not name the file: %s", err);
            errors++;
        } else {
            ok++;
        }
    }
    cr_log_info("%d bit-flipped copies: %d errors, %d still valid (flips inside weights or names)", iters, errors, ok);
    cr_expect(errors > 0 && ok > 0);
    /* garbage, an empty file and the good one */
    for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(krng_uniform(14, i) * 256);
    cr_expect_neq(cg_onnx_inspect_buf(buf, len, "noise.onnx", devnull, err, sizeof err), 0);
    cr_expect_neq(cg_onnx_inspect_buf(good, 0, "empty.onnx", devnull, err, sizeof err), 0);
    cr_expect(strstr(err, "empty.onnx: empty"), "%s", err);
    cr_expect_eq(cg_onnx_inspect_buf(good, len, "good.onnx", devnull, err, sizeof err), 0, "%s", err);
    cr_expect_neq(cg_onnx_inspect("/nonexistent/x.onnx", devnull, err, sizeof err), 0);
    cr_expect(strstr(err, "/nonexistent/x.onnx"), "%s", err);
    fclose(devnull);
    free(buf);
    free(good);
}

/* ---- inspect against ONNX's operator definitions ---------------------------------------- */

/* Fails before the fix (inspect accepted every invalid file here with exit 0): mutated
 * copies of two exported models (BNs folded and kept), each judged by onnx.checker
 * (tests/ref/onnx_mutate.py: named cases that each break one rule of ONNX's operator
 * definitions, valid variants, and 300 random mutations of op types, attributes and
 * input/output lists per model). inspect must give the checker's verdict on every file,
 * and when it refuses, name the file and, for the named cases, the node and the fault. */
Test(onnx, inspect_agrees_with_onnx_checker_on_mutated_models, .timeout = 300) {
    static const char *const want[][2] = {
        {"unknown_op", "unknown op type 'Conv2D'"},
        {"wrong_case", "did you mean 'Relu'?"},
        {"later_opset", "no 'Trilu' at opset 13 (it exists from opset 14)"},
        {"deprecated", "'Upsample' is deprecated in ai.onnx opset 13"},
        {"unknown_attr", "unknown attribute 'dilation' for Conv-11"},
        {"untyped_attr", "attribute 'group' has no type"},
        {"attr_wrong_type", "attribute 'strides' is of type floats; Conv-11 declares it ints"},
        {"attr_field_mismatch", "attribute 'group' is of type int but holds a float value"},
        {"attr_two_values", "attribute 'axis' is of type ints but holds a floats value"},
        {"missing_required", "the required attribute 'to' (int) of Cast-13 is missing"},
        {"duplicate_attr", "attribute 'group' appears twice"},
        {"too_many_inputs", "2 inputs, which Relu-13 does not allow"},
        {"too_many_outputs", "2 outputs, which Relu-13 does not allow"},
        {"empty_required_input", "input 1 ('B' of Gemm-13) is required but empty"},
        {"bn_two_outputs", "2 outputs, which BatchNormalization-9 does not allow"},
        {"tensor_attr_without_value", "attribute 'value' (tensor) holds no value"},
        {"domain_not_imported", "its domain 'com.example' is not imported"},
        {"ai_onnx_on_a_node", "domain 'ai.onnx' on a node"},
        {"newer_opset", "2 inputs, which ReduceMean-13 does not allow (1 to 1) (the model imports ai.onnx opset 18; "
                        "dartsc's operator table is onnx 1.12.0's, which knows it up to opset 17)"},
        {"ok_vendor_domain", NULL},
        {"ok_internal_attr", NULL},
        {"ok_other_op", NULL},
    };
    enum { N_WANT = sizeof want / sizeof want[0] };
    int seen[N_WANT] = {0};
    const char *dir = tu_tmpdir();
    int files = 0, refused = 0;
    for (int fold = 1; fold >= 0; fold--) {
        size_t len;
        char model[600], mut[700], cmd[4096], err[1024];
        snprintf(model, sizeof model, "%s", small_model_fold(dir, &len, fold));
        snprintf(mut, sizeof mut, "%s/mutated%d", dir, fold);
        snprintf(cmd, sizeof cmd, "%s %s %s %s 300 %d", DARTSC_PYTHON, tu_src_path("tests/ref/onnx_mutate.py"), model, mut,
                 fold + 1);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        snprintf(cmd, sizeof cmd, "%s/manifest.tsv", mut);
        FILE *f = fopen(cmd, "r");
        cr_assert(f, "%s", cmd);
        char line[2048];
        while (fgets(line, sizeof line, f)) {
            char *save = NULL, *file = strtok_r(line, "\t\n", &save), *verdict = strtok_r(NULL, "\t\n", &save);
            char *node = strtok_r(NULL, "\t\n", &save), *what = strtok_r(NULL, "\t\n", &save);
            char *why = strtok_r(NULL, "\t\n", &save);
            cr_assert(file && verdict && node && what, "manifest line: %s", line);
            char path[1000];
            snprintf(path, sizeof path, "%s/%s", mut, file);
            err[0] = 0;
            int ok = cg_onnx_inspect(path, NULL, err, sizeof err) == 0;
            files++;
            refused += !ok;
            cr_expect_eq(ok, atoi(verdict), "%s (%s): onnx.checker %s it%s%s; inspect %s it%s%s", path, what,
                         atoi(verdict) ? "accepts" : "refuses", why ? ": " : "", why ? why : "", ok ? "accepts" : "refuses",
                         ok ? "" : ": ", err);
            if (!ok) cr_expect(strncmp(err, path, strlen(path)) == 0, "the message does not name the file: %s", err);
            for (int k = 0; k < N_WANT; k++) {
                size_t n = strlen(want[k][0]);
                if (strncmp(file, want[k][0], n) || strcmp(file + n, ".onnx")) continue;
                seen[k] = 1;
                if (!want[k][1]) {
                    cr_expect(ok, "%s: %s", file, err);
                    continue;
                }
                cr_expect(!ok && strstr(err, want[k][1]), "%s (%s): want '%s', got '%s'", file, what, want[k][1], err);
                char quoted[300];
                snprintf(quoted, sizeof quoted, "('%s', ", node);
                cr_expect(strstr(err, quoted), "%s: the message does not name node '%s': %s", file, node, err);
            }
        }
        fclose(f);
    }
    for (int k = 0; k < N_WANT; k++) cr_expect(seen[k], "case %s was not made", want[k][0]);
    cr_log_info("%d mutated models, %d refused by both onnx.checker and inspect", files, refused);
    cr_expect(refused > files / 4 && refused < files, "both verdicts must occur (%d of %d refused)", refused, files);
    /* the command line: exit 1 and the message (was exit 0) */
    const char *bin = getenv("DARTSC_BIN");
    if (bin) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "%s inspect %s/mutated1/unknown_attr.onnx 2>&1 | grep -q \"node #2 ('_ops.2.op.1', Conv): "
                 "unknown attribute 'dilation'\" && ! %s inspect %s/mutated1/unknown_attr.onnx > /dev/null 2>&1",
                 bin, dir, bin, dir);
        cr_expect_eq(system(cmd), 0, "%s", cmd);
    }
}

/* Fails before: inspect printed one "parameters" total. A conv, an affine BN and a head:
 * kept, the BN's scale and bias are weights and its running mean and variance buffers;
 * folded, the conv gains a bias and no buffer is left. */
Test(onnx, inspect_reports_weights_buffers_and_constants) {
    ir_graph *g = ir_graph_new("wb");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){1, 3, 6, 6});
    int y = conv(g, x, "stem.0", 3, 5, 3, 3, 1, 1, 1, 1, 1); /* 135 weights */
    y = relu(g, bn(g, y, "stem.1", 5, 1), "stem.2");         /* 5 + 5 weights, 5 + 5 buffers */
    y = b_head(g, y);                                          /* 35 + 7 + 21 weights */
    cr_assert(y >= 0, "%s", ir_graph_error(g));
    planned pl = plan_values(g);
    char err[512];
    cg_model m = {.g = g, .values = pl.vals, .input = x, .output = y, .name = "wb", .in_c = 3, .test_accuracy = -1};
    const char *dir = tu_tmpdir();
    static const char *const expect[2][3] = {
        {"weights   208 in 6 tensors\n", "buffers   10 in 2 tensors (batch-norm running mean and variance)\n",
         "constants 0 in 0 tensors\n"},
        {"weights   203 in 5 tensors\n", "buffers   0 in 0 tensors\n", "constants 0 in 0 tensors\n"}};
    for (int fold = 0; fold < 2; fold++) {
        char path[600], txt_path[700];
        snprintf(path, sizeof path, "%s/wb%d.onnx", dir, fold);
        snprintf(txt_path, sizeof txt_path, "%s.txt", path);
        cg_onnx_opts o = cg_onnx_opts_default();
        o.fold_bn = fold;
        cr_assert_eq(cg_onnx_write(&m, &o, path, err, sizeof err), 0, "%s", err);
        FILE *f = fopen(txt_path, "w");
        cr_assert_eq(cg_onnx_inspect(path, f, err, sizeof err), 0, "%s", err);
        fclose(f);
        char *txt = tu_slurp(txt_path, NULL);
        cr_assert(txt);
        for (int k = 0; k < 3; k++) cr_expect(strstr(txt, expect[fold][k]), "fold %d: lacks '%s':\n%s", fold, expect[fold][k], txt);
        cr_expect(strstr(txt, fold ? "initializers: 5, 203 values" : "initializers: 8, 218 values"), "%s", txt);
        free(txt);
    }
    planned_free(&pl);
    ir_graph_free(g);
}

/* Writes varint v backwards ending at *at (the buffer is filled from its end). */
static void put_varint_back(unsigned char *buf, size_t *at, uint64_t v) {
    unsigned char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    for (int i = n - 1; i >= 0; i--) buf[--*at] = tmp[i];
}

/* A length-delimited field (number f) around the bytes from *at to end. */
static void wrap_back(unsigned char *buf, size_t *at, size_t end, unsigned f) {
    put_varint_back(buf, at, end - *at);
    put_varint_back(buf, at, (uint64_t)f << 3 | 2);
}

/* Fails before (a segmentation fault: protobuf-c's unpacker recurses once per level):
 * 200,000 graphs nested in If attributes, 4 MB, are refused with a message. A model
 * with 20 nested graphs (60 message levels) is still read, and its nodes checked. */
Test(onnx, inspect_refuses_deeply_nested_graphs_without_crashing) {
    for (int k = 0; k < 2; k++) {
        int depth = k ? 200000 : 20;
        size_t cap = (size_t)depth * 40 + 64, end = cap, at = cap;
        unsigned char *buf = malloc(cap);
        cr_assert(buf);
        for (int d = 0; d < depth; d++) { /* graph { node { op_type "If"; attribute { name "a"; type GRAPH; g } } } */
            wrap_back(buf, &at, end, 6);      /* attribute.g: the graph so far (empty at first) */
            put_varint_back(buf, &at, 5);     /* attribute.type = GRAPH */
            put_varint_back(buf, &at, 20 << 3);
            buf[--at] = 'a';
            wrap_back(buf, &at, at + 1, 1);   /* attribute.name "a" */
            wrap_back(buf, &at, end, 5);      /* node.attribute */
            memcpy(buf + (at -= 2), "If", 2);
            wrap_back(buf, &at, at + 2, 4);   /* node.op_type */
            wrap_back(buf, &at, end, 1);      /* graph.node */
        }
        wrap_back(buf, &at, end, 7); /* model.graph */
        size_t opset_end = at;
        put_varint_back(buf, &at, 13);
        put_varint_back(buf, &at, 2 << 3); /* version 13 */
        wrap_back(buf, &at, opset_end, 8); /* model.opset_import */
        put_varint_back(buf, &at, 8);
        put_varint_back(buf, &at, 1 << 3); /* ir_version 8 */
        char err[1024];
        int rc = cg_onnx_inspect_buf(buf + at, end - at, "deep.onnx", NULL, err, sizeof err);
        cr_expect_neq(rc, 0, "depth %d accepted", depth);
        if (k)
            cr_expect(strstr(err, "deep.onnx: messages nested more than 100 deep"), "depth %d: %s", depth, err);
        else /* read, then refused for what the nodes lack (If's outputs), at the first node */
            cr_expect(strstr(err, "deep.onnx: node #0 ('', If) has no output"), "depth %d: %s", depth, err);
        free(buf);
    }
}
