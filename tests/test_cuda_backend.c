/* test_cuda_backend.c — the CUDA backend matches the CPU backend (the reference) on
 * every op and attribute variant of test_ops_grad.c, on whole DARTS search cells and on
 * a full supernet search step, for forward values, BN running statistics, the loss,
 * the correct count, and every weight and alpha gradient; and it is deterministic.
 *
 * Method: one graph, two plans (CPU and CUDA) made with the same seed; the CPU plan's
 * parameter groups (weights, alpha, buffers) are uploaded into the CUDA plan so both
 * start from identical values; same inputs and labels; forward, then backward for
 * weights and alpha; every tensor compared.
 *
 * Comparison (expect_close): over a tensor, ||cuda - cpu||_2 <= tol * ||cpu||_2 and
 * max_i |cuda_i - cpu_i| <= tol * max_i |cpu_i|. The second form judges near-zero
 * entries on the tensor's scale, where a relative error per entry would only measure
 * cancellation. A wrong kernel (missing term, wrong index, wrong scaling) is off by
 * O(1); the tolerances below are what float32 reassociation can explain.
 *
 * Skips (exit 77, which ctest reports as SKIPPED) when CUDA is not compiled in or no
 * device is usable. The probe runs in a child process: Criterion forks once per test,
 * and a CUDA context must not be created before a fork.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir/ir.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/schedule.h"
#include "search/search.h"
#include "train/common.h"
#include "testutil.h"
#ifdef DARTSC_HAVE_CUDA
#include "runtime/cuda/backend_cuda.h"

#include <cuda_runtime.h>

#include "kernels/cpu/kcpu.h"
#include "kernels/cuda/kcuda.h"
#endif

/* ---- tolerances ----
 * SAME_ORDER: kernels that do the CPU's arithmetic in the CPU's order (elementwise ops,
 *   pools, data movement, softmax, gap, embedding, dropout, depthwise convolutions,
 *   wsum / mixed whose dot products are double on both sides). They differ only by
 *   expf/tanhf (<= 2 ulp on the GPU), fused multiply-adds (one rounding fewer), and the
 *   shared loss head (a 5 x F linear: cuBLAS vs OpenBLAS over <= 30 terms): ~1e-7
 *   relative each, so 1e-5 leaves two orders of magnitude.
 * LIBRARY: dense / grouped / 1x1 convolutions by cuDNN or cuBLAS, whose algorithms
 *   reassociate sums of 27..100 products (implicit GEMM tiles, Winograd transforms):
 *   ~1e-6..1e-5 relative, so 1e-4.
 * BN: normalising divides by the batch std of 27..54 values and the backward subtracts
 *   two means of similar size, which amplifies ~1e-7 input differences about tenfold:
 *   1e-4.
 * NET: a DARTS supernet chains ~20 BN layers with batch statistics over tiny batches
 *   and every kind of op above; the per-op differences compound: 1e-3. */
#define TOL_SAME_ORDER 1e-5
#define TOL_LIBRARY 1e-4
#define TOL_BN 1e-4
#define TOL_NET 1e-3

static void expect_close(const char *what, const float *got, const float *ref, int64_t n, double tol) {
    double mx = 0, maxd = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxd)) { maxd = d; wi = i; } /* catches NaN */
    }
    double rel = tu_norm_rel_err(got, ref, n);
    cr_expect(rel <= tol && maxd <= tol * mx,
              "%s: ||cuda-cpu||/||cpu|| = %.3g, max |diff| = %.3g at %lld (cuda %.9g, cpu %.9g; max |cpu| %.3g), "
              "tolerance %.0e",
              what, rel, maxd, (long long)wi, n ? got[wi] : 0.f, n ? ref[wi] : 0.f, mx, tol);
}

#ifdef DARTSC_HAVE_CUDA

typedef struct pair {
    ir_graph *g;
    ir_net net; /* when the graph came from a space (freed with ir_net_free) */
    int from_net;
    int labels, loss, out; /* out: the op's output, kept alive and compared; -1: none */
    rt_backend *cpu, *gpu;
    rt_plan *pc, *pg;
} pair;

static void assert_no_cuda_error(pair *h) {
    h->gpu->synchronize(h->gpu);
    const char *e = rt_cuda_last_error();
    cr_assert(!e, "CUDA error: %s", e);
}

/* Head that turns any 4-d (or 2-d) tensor y into a CE loss mixing every element (as test_ops_grad.c). */
static void add_loss(pair *h, int y) {
    ir_graph *g = h->g;
    h->out = y;
    ir_node_set_flags(g, y, IR_FLAG_OUTPUT);
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

/* Copies every parameter group of the CPU plan into the CUDA plan. */
static void sync_params(pair *h) {
    const ir_role roles[3] = {IR_ROLE_WEIGHT, IR_ROLE_ARCH, IR_ROLE_BUFFER};
    for (int i = 0; i < 3; i++) {
        rt_group c = rt_plan_group(h->pc, roles[i]), g = rt_plan_group(h->pg, roles[i]);
        cr_assert_eq(c.n, g.n, "group %s: %lld vs %lld", ir_role_name(roles[i]), (long long)c.n, (long long)g.n);
        if (c.n) h->gpu->upload(h->gpu, g.data, c.data, (size_t)c.n * sizeof(float));
    }
}

static void set_input_both(pair *h, int node, const void *data, size_t bytes) {
    cr_assert_eq(rt_set_input(h->pc, node, data, bytes), 0);
    cr_assert_eq(rt_set_input(h->pg, node, data, bytes), 0);
}

static void make_plans(pair *h, uint64_t seed) {
    cr_assert_eq(ir_verify(h->g), 0, "verify: %s", ir_graph_error(h->g));
    char err[256];
    h->cpu = rt_backend_cpu_new();
    h->gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(h->gpu, "the probe found a device, yet: %s", err);
    rt_plan_opts o = {.seed = seed, .grads = RT_GRAD_W | RT_GRAD_ARCH};
    h->pc = rt_plan_new(h->g, h->cpu, &o, err, sizeof err);
    cr_assert(h->pc, "cpu plan: %s", err);
    h->pg = rt_plan_new(h->g, h->gpu, &o, err, sizeof err);
    cr_assert(h->pg, "cuda plan: %s", err);
    const ir_node *ln = ir_graph_node(h->g, h->labels);
    int32_t lab[256];
    cr_assert(ln->shape[0] <= 256);
    for (int i = 0; i < ln->shape[0]; i++) lab[i] = (i * 3 + 1) % 5;
    set_input_both(h, h->labels, lab, (size_t)ln->shape[0] * 4);
    sync_params(h);
    assert_no_cuda_error(h);
}

static void free_pair(pair *h) {
    rt_plan_free(h->pg);
    rt_plan_free(h->pc);
    h->gpu->destroy(h->gpu);
    h->cpu->destroy(h->cpu);
    if (h->from_net) ir_net_free(&h->net);
    else ir_graph_free(h->g);
}

/* Downloads n floats of a CUDA pointer into a fresh host buffer. */
static float *fetch(pair *h, const float *dev, int64_t n) {
    float *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    cr_assert(b);
    if (n) h->gpu->download(h->gpu, b, dev, (size_t)n * sizeof *b);
    return b;
}

static void compare_group(pair *h, ir_role role, int grads, const char *tag, double tol) {
    rt_group c = rt_plan_group(h->pc, role), g = rt_plan_group(h->pg, role);
    if (!c.n) return;
    char what[128];
    float *v = fetch(h, grads ? g.grad : g.data, g.n);
    snprintf(what, sizeof what, "%s: %s %s", tag, ir_role_name(role), grads ? "gradient" : "values");
    expect_close(what, v, grads ? c.grad : c.data, c.n, tol);
    free(v);
}

/* Forward on both (and backward for weights and alpha when training), then compares
 * the loss, the correct count, the op's output, the buffers (BN running statistics)
 * and both gradient groups. */
static void run_and_compare(pair *h, const char *tag, double tol_fwd, double tol_bwd, int training) {
    float lc = rt_forward(h->pc, training), lg = rt_forward(h->pg, training);
    assert_no_cuda_error(h);
    cr_expect(fabsf(lg - lc) <= tol_bwd * fabsf(lc) + 1e-6f, "%s: loss cuda %.9g vs cpu %.9g", tag, lg, lc);
    cr_expect_eq(rt_last_correct(h->pg), rt_last_correct(h->pc), "%s: correct count", tag);
    if (h->out >= 0) {
        int64_t n = ir_node_numel(ir_graph_node(h->g, h->out));
        float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
        cr_assert_eq(rt_read(h->pc, h->out, a, (size_t)n * 4), 0);
        cr_assert_eq(rt_read(h->pg, h->out, b, (size_t)n * 4), 0);
        char what[128];
        snprintf(what, sizeof what, "%s: forward output", tag);
        expect_close(what, b, a, n, tol_fwd);
        free(a);
        free(b);
    }
    compare_group(h, IR_ROLE_BUFFER, 0, tag, tol_fwd);
    if (!training) return;
    cr_assert_eq(rt_backward(h->pc, RT_GRAD_W | RT_GRAD_ARCH), 0);
    cr_assert_eq(rt_backward(h->pg, RT_GRAD_W | RT_GRAD_ARCH), 0);
    assert_no_cuda_error(h);
    compare_group(h, IR_ROLE_WEIGHT, 1, tag, tol_bwd);
    compare_group(h, IR_ROLE_ARCH, 1, tag, tol_bwd);
}

static int wparam(ir_graph *g, const char *name, int ndim, const int64_t *shape) {
    return ir_param(g, name, IR_ROLE_WEIGHT, ndim, shape, ir_init_uniform(1.f));
}

/* ---- convolutions ---- */
static void conv_case(int N, int C, int H, int W, int K, int R, int S, int stride, int ph, int pw, int dil, int groups,
                      double tol) {
    pair h = {.g = ir_graph_new("conv")};
    int x = wparam(h.g, "x", 4, (int64_t[]){N, C, H, W});
    int w = wparam(h.g, "w", 4, (int64_t[]){K, C / groups, R, S});
    int y = ir_conv2d(h.g, x, w, stride, stride, ph, pw, dil, dil, groups, "conv");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    add_loss(&h, y);
    make_plans(&h, 11);
    run_and_compare(&h, "conv", tol, tol, 1);
    free_pair(&h);
}

/* cuDNN (dense kxk, grouped, asymmetric), our 1x1 kernels or cuBLAS (1x1, any stride): LIBRARY. */
Test(cuda_ops, conv_dense_3x3_pad1) { conv_case(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, TOL_LIBRARY); }
Test(cuda_ops, conv_1x1_stride1) { conv_case(2, 5, 6, 6, 4, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY); }
Test(cuda_ops, conv_1x1_stride2) { conv_case(2, 4, 8, 8, 3, 1, 1, 2, 0, 0, 1, 1, TOL_LIBRARY); }
/* 1x1 shapes that reach every path of the own 1x1 kernels (DARTSC_CUDA_OWN_1X1=1; each
 * test runs in its own process, so the setting stays in it): 20 output channels (a full
 * and a partial register block of 16), 2,584 pixels (filter-gradient blocks of partial
 * tiles of 32), and a 480-weight filter gradient; the same shapes by cuBLAS (the default);
 * and a weight too large for the own kernels, which then use cuBLAS. */
Test(cuda_ops, conv_1x1_blocks_and_tails) { conv_case(8, 24, 17, 19, 20, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY); }
Test(cuda_ops, conv_1x1_stride2_blocks_and_tails) { conv_case(8, 24, 17, 19, 20, 1, 1, 2, 0, 0, 1, 1, TOL_LIBRARY); }
Test(cuda_ops, conv_1x1_own_kernels_blocks_and_tails) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    conv_case(8, 24, 17, 19, 20, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY);
}
Test(cuda_ops, conv_1x1_own_kernels_stride2_blocks_and_tails) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    conv_case(8, 24, 17, 19, 20, 1, 1, 2, 0, 0, 1, 1, TOL_LIBRARY);
}
/* Pixel groups that cross samples (1x1 planes: each group of 4 pixels spans 4 samples,
 * read one at a time) and a ragged last group (7 pixels), with output and input channels
 * not multiples of 4 (3 x 5: one row of two 4 x 4 tiles, partly empty; 128 lanes); and
 * 3x3 planes (9 pixels a sample) over 5 samples with 6 -> 10 channels. */
Test(cuda_ops, conv_1x1_own_kernels_groups_across_samples) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    conv_case(7, 5, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY);
    conv_case(5, 6, 3, 3, 10, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY);
}
Test(cuda_ops, conv_1x1_own_kernels_wide_input_uses_cublas) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    conv_case(2, 80, 5, 5, 64, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY);
}
/* K*C within the own kernels' register budget (8 x 500 = 4,000 weights) but tiles of
 * (K + C) x 33 floats (67 KB) beyond the 48 KB of shared memory a launch gets without an
 * opt-in: such a shape goes to cuBLAS (it failed to launch before). */
Test(cuda_ops, conv_1x1_own_kernels_tall_tiles_use_cublas) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    conv_case(2, 500, 4, 4, 8, 1, 1, 1, 0, 0, 1, 1, TOL_LIBRARY);
}
Test(cuda_ops, conv_grouped) { conv_case(2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2, TOL_LIBRARY); }
Test(cuda_ops, conv_asymmetric_1x7) { conv_case(1, 3, 9, 9, 3, 1, 7, 1, 0, 3, 1, 1, TOL_LIBRARY); }
Test(cuda_ops, conv_asymmetric_7x1) { conv_case(1, 3, 9, 9, 3, 7, 1, 1, 3, 0, 1, 1, TOL_LIBRARY); }
/* Our depthwise kernels: the CPU's order (the filter gradient in double): SAME_ORDER. */
Test(cuda_ops, conv_depthwise_3x3_stride1) { conv_case(2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 1, 4, TOL_SAME_ORDER); }
Test(cuda_ops, conv_depthwise_5x5_stride2) { conv_case(2, 3, 9, 8, 3, 5, 5, 2, 2, 2, 1, 3, TOL_SAME_ORDER); }
Test(cuda_ops, conv_depthwise_dilated_3x3) { conv_case(2, 3, 8, 8, 3, 3, 3, 1, 2, 2, 2, 3, TOL_SAME_ORDER); }
Test(cuda_ops, conv_depthwise_dilated_5x5_stride2) { conv_case(2, 2, 10, 10, 2, 5, 5, 2, 4, 4, 2, 2, TOL_SAME_ORDER); }
/* Larger than one block of threads per tap, to exercise the grid-stride loops. */
Test(cuda_ops, conv_depthwise_3x3_large) { conv_case(4, 8, 20, 20, 8, 3, 3, 1, 1, 1, 1, 8, TOL_SAME_ORDER); }
/* the filter gradient by staged planes (DARTSC_CUDA_DW_FILTER_PLANES=1, opt-in until
 * measured on a device): strides, dilations, 3x3/5x5, more samples than groups */
static void dw_planes_case(int N, int C, int H, int W, int R, int stride, int pad, int dil) {
    setenv("DARTSC_CUDA_DW_FILTER_PLANES", "1", 1);
    conv_case(N, C, H, W, C, R, R, stride, pad, pad, dil, C, TOL_SAME_ORDER);
}
Test(cuda_ops, conv_depthwise_filter_planes_3x3) { dw_planes_case(4, 8, 20, 20, 3, 1, 1, 1); }
Test(cuda_ops, conv_depthwise_filter_planes_5x5_stride2) { dw_planes_case(2, 3, 9, 8, 5, 2, 2, 1); }
Test(cuda_ops, conv_depthwise_filter_planes_dilated_5x5_stride2) { dw_planes_case(6, 2, 10, 10, 5, 2, 4, 2); }

/* ---- batch norm ---- */
static void bn_case(int affine, int four_d, int batch_stats_always, int training) {
    pair h = {.g = ir_graph_new("bn")};
    int64_t sh4[4] = {3, 4, 3, 3}, sh2[2] = {6, 4};
    int x = wparam(h.g, "x", four_d ? 4 : 2, four_d ? sh4 : sh2);
    int gm = -1, bt = -1;
    if (affine) {
        gm = wparam(h.g, "gamma", 1, (int64_t[]){4});
        bt = wparam(h.g, "beta", 1, (int64_t[]){4});
    }
    int rm = ir_param(h.g, "rm", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_zeros());
    int rv = ir_param(h.g, "rv", IR_ROLE_BUFFER, 1, (int64_t[]){4}, ir_init_ones());
    int y = ir_batchnorm(h.g, x, gm, bt, rm, rv, batch_stats_always, 1e-5f, 0.1f, "bn");
    add_loss(&h, y);
    make_plans(&h, 5);
    if (!training) {
        /* non-trivial running statistics (all buffers > 0, so running_var is valid) */
        rt_group b = rt_plan_group(h.pc, IR_ROLE_BUFFER);
        tu_fill_uniform(b.data, b.n, 0.5f, 1.5f, 17);
        sync_params(&h);
    }
    run_and_compare(&h, training ? "bn train" : "bn infer", TOL_BN, TOL_BN, training);
    free_pair(&h);
}
Test(cuda_ops, batchnorm_affine) { bn_case(1, 1, 1, 1); }
Test(cuda_ops, batchnorm_no_affine) { bn_case(0, 1, 1, 1); }
Test(cuda_ops, batchnorm_2d_affine) { bn_case(1, 0, 1, 1); }
Test(cuda_ops, batchnorm_train_flag_updates_running_stats) { bn_case(1, 1, 0, 1); }
Test(cuda_ops, batchnorm_inference_uses_running_stats) { bn_case(1, 1, 0, 0); }

/* ---- unary ops, pools, dropout ---- */
static void unary_case(ir_op op, int pool_k, int stride, int pad) {
    pair h = {.g = ir_graph_new("unary")};
    int x = wparam(h.g, "x", 4, (int64_t[]){2, 3, 7, 6});
    int y;
    if (op == IR_OP_MAXPOOL || op == IR_OP_AVGPOOL) y = ir_pool(h.g, op, x, pool_k, stride, pad, "pool");
    else if (op == IR_OP_SCALE) y = ir_scale(h.g, x, -1.7f, "scale");
    else if (op == IR_OP_DROPOUT || op == IR_OP_DROP_PATH) y = ir_dropout(h.g, op, x, 0.3f, "drop");
    else if (op == IR_OP_SLICE) y = ir_slice(h.g, x, 1, 2, "slice");
    else if (op == IR_OP_ZERO) y = ir_zero(h.g, x, 2, "zero");
    else y = ir_unary(h.g, op, x, "u");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    add_loss(&h, y);
    make_plans(&h, 3);
    run_and_compare(&h, ir_op_name(op), TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    free_pair(&h);
}
/* The smallest case: scripts/device-check runs it under compute-sanitizer. */
Test(cuda_ops, relu) { unary_case(IR_OP_RELU, 0, 0, 0); }
Test(cuda_ops, tanh) { unary_case(IR_OP_TANH, 0, 0, 0); }
Test(cuda_ops, sigmoid) { unary_case(IR_OP_SIGMOID, 0, 0, 0); }
Test(cuda_ops, identity) { unary_case(IR_OP_IDENTITY, 0, 0, 0); }
Test(cuda_ops, softmax) { unary_case(IR_OP_SOFTMAX, 0, 0, 0); }
Test(cuda_ops, shift) { unary_case(IR_OP_SHIFT, 0, 0, 0); }
Test(cuda_ops, scale) { unary_case(IR_OP_SCALE, 0, 0, 0); }
Test(cuda_ops, slice) { unary_case(IR_OP_SLICE, 0, 0, 0); }
Test(cuda_ops, zero_stride2) { unary_case(IR_OP_ZERO, 0, 0, 0); }
Test(cuda_ops, dropout_masks_match_cpu) { unary_case(IR_OP_DROPOUT, 0, 0, 0); }
Test(cuda_ops, drop_path_masks_match_cpu) { unary_case(IR_OP_DROP_PATH, 0, 0, 0); }
Test(cuda_ops, maxpool_3x3_stride1_borders) { unary_case(IR_OP_MAXPOOL, 3, 1, 1); }
Test(cuda_ops, maxpool_3x3_stride2_borders) { unary_case(IR_OP_MAXPOOL, 3, 2, 1); }
Test(cuda_ops, avgpool_3x3_stride1_excludes_padding) { unary_case(IR_OP_AVGPOOL, 3, 1, 1); }
Test(cuda_ops, avgpool_3x3_stride2_excludes_padding) { unary_case(IR_OP_AVGPOOL, 3, 2, 1); }
/* windows other than 3x3 take the kernels' general loops (3x3 ones load their 9 taps at once) */
Test(cuda_ops, maxpool_2x2_stride2_general_loops) { unary_case(IR_OP_MAXPOOL, 2, 2, 0); }
Test(cuda_ops, avgpool_5x5_stride1_general_loops) { unary_case(IR_OP_AVGPOOL, 5, 1, 2); }

/* Max pool ties: the first maximum of the window wins on both devices (x quantised to
 * a few levels, so most windows tie). */
Test(cuda_ops, maxpool_ties_first_maximum_wins) {
    pair h = {.g = ir_graph_new("ties")};
    int x = wparam(h.g, "x", 4, (int64_t[]){2, 3, 7, 6});
    int y = ir_pool(h.g, IR_OP_MAXPOOL, x, 3, 1, 1, "pool");
    add_loss(&h, y);
    make_plans(&h, 3);
    rt_group w = rt_plan_group(h.pc, IR_ROLE_WEIGHT);
    for (int64_t i = 0; i < w.n; i++) w.data[i] = (float)(i * 7 % 3);
    sync_params(&h);
    run_and_compare(&h, "maxpool ties", TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    free_pair(&h);
}

/* ---- n-ary ops ---- */
static void nary_case(ir_op op) {
    pair h = {.g = ir_graph_new("nary")};
    int64_t sh[4] = {2, 3, 4, 5};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int y;
    if (op == IR_OP_MUL || op == IR_OP_SUB) y = ir_binary(h.g, op, a, b, "bin");
    else if (op == IR_OP_WSUM) {
        int w = wparam(h.g, "w", 1, (int64_t[]){3});
        y = ir_wsum(h.g, w, 3, (int[]){a, b, c}, "wsum");
    } else y = ir_nary(h.g, op, 3, (int[]){a, b, c}, "nary");
    /* use 'a' twice so gradient accumulation across consumers is exercised */
    if (op == IR_OP_CONCAT) add_loss(&h, y);
    else {
        ir_node_set_flags(h.g, y, IR_FLAG_OUTPUT);
        add_loss(&h, ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, a}, "plus_a"));
        h.out = y;
    }
    make_plans(&h, 9);
    run_and_compare(&h, ir_op_name(op), TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    free_pair(&h);
}
Test(cuda_ops, add) { nary_case(IR_OP_ADD); }
Test(cuda_ops, mean) { nary_case(IR_OP_MEAN); }
Test(cuda_ops, mul) { nary_case(IR_OP_MUL); }
Test(cuda_ops, sub) { nary_case(IR_OP_SUB); }
Test(cuda_ops, wsum) { nary_case(IR_OP_WSUM); }
Test(cuda_ops, concat) { nary_case(IR_OP_CONCAT); }


Test(cuda_ops, gap_and_linear_without_bias) {
    pair h = {.g = ir_graph_new("gl")};
    int x = wparam(h.g, "x", 4, (int64_t[]){3, 4, 3, 3});
    int z = ir_unary(h.g, IR_OP_GAP, x, "gap");
    int w = wparam(h.g, "w", 2, (int64_t[]){6, 4});
    int y = ir_linear(h.g, z, w, -1, "lin");
    add_loss(&h, y);
    make_plans(&h, 2);
    /* two cuBLAS GEMMs in a row (the op and the head): LIBRARY */
    run_and_compare(&h, "gap+linear", TOL_LIBRARY, TOL_LIBRARY, 1);
    free_pair(&h);
}

Test(cuda_ops, embedding_repeated_ids) {
    pair h = {.g = ir_graph_new("emb")};
    int ids = ir_input(h.g, "ids", IR_DTYPE_I32, 1, (int64_t[]){6});
    int t = wparam(h.g, "table", 2, (int64_t[]){7, 4});
    int y = ir_embedding(h.g, ids, t, "emb");
    add_loss(&h, y);
    make_plans(&h, 2);
    int32_t idv[6] = {0, 3, 3, 6, 1, 3}; /* repeated ids accumulate */
    set_input_both(&h, ids, idv, sizeof idv);
    run_and_compare(&h, "embedding", TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    free_pair(&h);
}

Test(cuda_ops, mixed_op_alpha_and_inputs) {
    pair h = {.g = ir_graph_new("mixed")};
    int64_t sh[4] = {2, 3, 4, 4};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){2, 5}, ir_init_normal(1.f));
    /* columns 0 and 3 are zero ops: no input, yet their alpha entries get gradients */
    int y = ir_mixed(h.g, alpha, 1, 3, (int[]){a, b, c}, (int[]){1, 2, 4}, "mixed");
    add_loss(&h, y);
    make_plans(&h, 4);
    run_and_compare(&h, "mixed", TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    /* row 0 is unused: its gradient must be exactly zero on the device too */
    rt_group ga = rt_plan_group(h.pg, IR_ROLE_ARCH);
    float *g = fetch(&h, ga.grad, ga.n);
    for (int i = 0; i < 5; i++) cr_expect_eq(g[i], 0.f, "alpha row 0 col %d: %g", i, g[i]);
    free(g);
    free_pair(&h);
}

/* FairDARTS' WMIXED (weights sigmoid(alpha), read in place) and PC-DARTS' channel shuffle. */
Test(cuda_ops, wmixed_sigmoid_weights_and_inputs) {
    pair h = {.g = ir_graph_new("wmixed")};
    int64_t sh[4] = {2, 3, 4, 4};
    int a = wparam(h.g, "a", 4, sh), b = wparam(h.g, "b", 4, sh), c = wparam(h.g, "c", 4, sh);
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){2, 5}, ir_init_normal(1.f));
    int w = ir_unary(h.g, IR_OP_SIGMOID, alpha, "sigmoid");
    int y = ir_wmixed(h.g, w, 1, 3, (int[]){a, b, c}, (int[]){1, 2, 4}, "wmixed");
    ir_node_set_flags(h.g, y, IR_FLAG_OUTPUT);
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, a}, "plus_a"));
    h.out = y;
    make_plans(&h, 4);
    run_and_compare(&h, "wmixed", TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    /* columns without an input and the unused row: exactly zero on the device too */
    rt_group ga = rt_plan_group(h.pg, IR_ROLE_ARCH);
    float *g = fetch(&h, ga.grad, ga.n);
    for (int i = 0; i < 5; i++) cr_expect_eq(g[i], 0.f, "alpha row 0 col %d: %g", i, g[i]);
    cr_expect_eq(g[5], 0.f);
    cr_expect_eq(g[8], 0.f);
    free(g);
    free_pair(&h);
}

static void shuffle_case(int groups) {
    pair h = {.g = ir_graph_new("shuffle")};
    int x = wparam(h.g, "x", 4, (int64_t[]){2, 12, 3, 5});
    int y = ir_channel_shuffle(h.g, x, groups, "shuffle");
    ir_node_set_flags(h.g, y, IR_FLAG_OUTPUT);
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 2, (int[]){y, x}, "plus_x"));
    h.out = y;
    make_plans(&h, 5);
    /* a permutation on both sides: forward and gradient are copies and one add */
    run_and_compare(&h, "channel_shuffle", TOL_SAME_ORDER, TOL_SAME_ORDER, 1);
    free_pair(&h);
}
Test(cuda_ops, channel_shuffle_4_groups) { shuffle_case(4); }
Test(cuda_ops, channel_shuffle_3_groups) { shuffle_case(3); }

/* ---- whole DARTS cells and the supernet ---- */
static void tiny_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    sp->in_c = 2; sp->in_h = 8; sp->in_w = 8; sp->classes = 5;
    sp->C = 4; sp->layers = 3; sp->stem_mult = 2;
    sp->n_reduce = 1; sp->reduce_at[0] = 1;
}

static void net_pair_ex(pair *h, const ir_space *sp, int batch, uint64_t seed, const ir_supernet_opts *so) {
    memset(h, 0, sizeof *h);
    cr_assert_eq(ir_space_build_supernet_ex(sp, batch, so, &h->net), 0, "%s", h->net.error);
    h->from_net = 1;
    h->g = h->net.graph;
    h->labels = h->net.labels;
    h->loss = h->net.loss;
    h->out = h->net.logits;
    make_plans(h, seed);
    float *img = malloc((size_t)batch * sp->in_c * sp->in_h * sp->in_w * sizeof *img);
    int64_t ni = (int64_t)batch * sp->in_c * sp->in_h * sp->in_w;
    tu_fill_uniform(img, ni, -1.f, 1.f, 99);
    set_input_both(h, h->net.images, img, (size_t)ni * sizeof *img);
    free(img);
    /* alpha of order 1 so the softmax is far from uniform */
    rt_group ga = rt_plan_group(h->pc, IR_ROLE_ARCH);
    tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3);
    sync_params(h);
}

static void net_pair(pair *h, const ir_space *sp, int batch, uint64_t seed) {
    const ir_supernet_opts darts = {0};
    net_pair_ex(h, sp, batch, seed, &darts);
}

/* env: a switch set while both plans are made (DARTSC_SUM_BN_GRADS: the pool batch norms'
   backwards summed on both backends, the same float sums of their output gradients, then
   each backend's batch-norm backward; 18 of the cell's 28 run by another) */
static void darts_cell_case_env(int reduction, const char *env) {
    ir_space sp;
    tiny_space(&sp);
    sp.layers = 1;
    sp.n_reduce = reduction;
    sp.reduce_at[0] = 0;
    pair h;
    if (env) setenv(env, "1", 1);
    net_pair(&h, &sp, 8, 7);
    if (env) {
        unsetenv(env);
        cr_expect(rt_plan_summed_bn(h.pc) == 18 && rt_plan_summed_bn(h.pg) == 18, "%s: %d (CPU) and %d (CUDA) summed",
                  env, rt_plan_summed_bn(h.pc), rt_plan_summed_bn(h.pg));
    }
    run_and_compare(&h, reduction ? "reduction cell" : "normal cell", TOL_NET, TOL_NET, 1);
    free_pair(&h);
}
static void darts_cell_case(int reduction) { darts_cell_case_env(reduction, NULL); }
Test(cuda_net, darts_normal_cell_weights_and_alpha) { darts_cell_case(0); }
Test(cuda_net, darts_reduction_cell_weights_and_alpha) { darts_cell_case(1); }
Test(cuda_net, darts_normal_cell_summed_batch_norm_backwards_match_cpu) { darts_cell_case_env(0, "DARTSC_SUM_BN_GRADS"); }

/* The DARTS successors' supernets (pc-darts K = 2 with edge normalisation, fair-darts) for
 * a whole search step's loss and gradients, as the DARTS supernet above. */
static void successor_net_case(ir_supernet_opts so, const char *what) {
    ir_space sp;
    tiny_space(&sp);
    pair h;
    net_pair_ex(&h, &sp, 4, 7, &so);
    run_and_compare(&h, what, TOL_NET, TOL_NET, 1);
    free_pair(&h);
}
Test(cuda_net, pc_darts_supernet_matches_cpu) { successor_net_case((ir_supernet_opts){.partial = 2, .edge_norm = 1}, "pc-darts supernet"); }
Test(cuda_net, fair_darts_supernet_matches_cpu) { successor_net_case((ir_supernet_opts){.sigmoid = 1}, "fair-darts supernet"); }

/* A full first-order search step on the supernet: forward, backward for w and alpha,
 * SGD on w and Adam on alpha through the backend's vector ops; weights and alpha after
 * the step match the CPU's. Then a second identical pass on the device must reproduce
 * its gradients bit for bit (no atomics, fixed reductions). */
Test(cuda_net, supernet_search_step_matches_cpu_and_is_deterministic) {
    ir_space sp;
    tiny_space(&sp);
    pair h;
    net_pair(&h, &sp, 4, 7);
    run_and_compare(&h, "supernet", TOL_NET, TOL_NET, 1);

    rt_group wc = rt_plan_group(h.pc, IR_ROLE_WEIGHT), wg = rt_plan_group(h.pg, IR_ROLE_WEIGHT);
    rt_group ac = rt_plan_group(h.pc, IR_ROLE_ARCH), ag = rt_plan_group(h.pg, IR_ROLE_ARCH);
    float *g1w = fetch(&h, wg.grad, wg.n), *g1a = fetch(&h, ag.grad, ag.n);
    /* the same pass again on the device: bitwise equal */
    rt_plan_set_step(h.pg, 0);
    rt_forward(h.pg, 1);
    cr_assert_eq(rt_backward(h.pg, RT_GRAD_W | RT_GRAD_ARCH), 0);
    assert_no_cuda_error(&h);
    float *g2w = fetch(&h, wg.grad, wg.n), *g2a = fetch(&h, ag.grad, ag.n);
    cr_expect_arr_eq(g1w, g2w, (size_t)wg.n * 4, "weight gradients differ between two identical device passes");
    cr_expect_arr_eq(g1a, g2a, (size_t)ag.n * 4, "alpha gradients differ between two identical device passes");

    /* alpha only: the same alpha gradient as the full backward (bitwise), weights untouched */
    rt_plan_set_step(h.pg, 0);
    rt_forward(h.pg, 1);
    cr_assert_eq(rt_backward(h.pg, RT_GRAD_ARCH), 0);
    float *g3a = fetch(&h, ag.grad, ag.n), *g3w = fetch(&h, wg.grad, wg.n);
    cr_expect_arr_eq(g3a, g2a, (size_t)ag.n * 4, "alpha gradient depends on whether weights were asked for");
    cr_expect_arr_eq(g3w, g2w, (size_t)wg.n * 4, "an alpha-only backward touched the weight gradients");
    free(g1w); free(g1a); free(g2w); free(g2a); free(g3a); free(g3w);
    rt_plan_set_step(h.pg, 0);
    rt_forward(h.pg, 1);
    cr_assert_eq(rt_backward(h.pg, RT_GRAD_W | RT_GRAD_ARCH), 0);

    /* the optimiser step on both (gradients as left by the compared backward) */
    float *mom_c = calloc((size_t)wc.n, 4), *m_c = calloc((size_t)ac.n, 4), *v_c = calloc((size_t)ac.n, 4);
    float *mom_g = h.gpu->alloc(h.gpu, (size_t)wg.n * 4), *m_g = h.gpu->alloc(h.gpu, (size_t)ag.n * 4),
          *v_g = h.gpu->alloc(h.gpu, (size_t)ag.n * 4);
    h.gpu->memset0(h.gpu, mom_g, (size_t)wg.n * 4);
    h.gpu->memset0(h.gpu, m_g, (size_t)ag.n * 4);
    h.gpu->memset0(h.gpu, v_g, (size_t)ag.n * 4);
    h.cpu->sgd_step(h.cpu, wc.data, mom_c, wc.grad, wc.n, 0.025f, 0.9f, 3e-4f);
    h.gpu->sgd_step(h.gpu, wg.data, mom_g, wg.grad, wg.n, 0.025f, 0.9f, 3e-4f);
    h.cpu->adam_step(h.cpu, ac.data, m_c, v_c, ac.grad, ac.n, 3e-4f, 0.5f, 0.999f, 1e-8f, 1e-3f, 1);
    h.gpu->adam_step(h.gpu, ag.data, m_g, v_g, ag.grad, ag.n, 3e-4f, 0.5f, 0.999f, 1e-8f, 1e-3f, 1);
    assert_no_cuda_error(&h);
    compare_group(&h, IR_ROLE_WEIGHT, 0, "after SGD", TOL_NET);
    compare_group(&h, IR_ROLE_ARCH, 0, "after Adam", TOL_NET);
    free(mom_c); free(m_c); free(v_c);
    h.gpu->free(h.gpu, mom_g); h.gpu->free(h.gpu, m_g); h.gpu->free(h.gpu, v_g);
    free_pair(&h);
}

/* rt_pass records a CUDA graph on its second call per (training, mask) and replays it
 * after. Every pass, eager, recording or replay, must give the bits of the eager
 * rt_forward + rt_backward on the same inputs and parameters: with new images, new
 * weights (an SGD step) and new alpha between replays (a replay reads them at their
 * fixed addresses), for both masks of a search step, and the loss read after the pass. */
static void grads_of(pair *h, float **gw, float **ga, float *loss) {
    rt_group wg = rt_plan_group(h->pg, IR_ROLE_WEIGHT), ag = rt_plan_group(h->pg, IR_ROLE_ARCH);
    *gw = fetch(h, wg.grad, wg.n);
    *ga = fetch(h, ag.grad, ag.n);
    *loss = rt_loss(h->pg);
}

static void records_case(int batch, double tol, int pw_batched);
Test(cuda_net, pass_records_a_graph_and_replays_it_bit_for_bit) { records_case(0, 0, 0); }
/* Batched launches (DARTSC_CUDA_BATCH=1): the recorded passes issue independent same-shaped
 * depthwise convolutions, batch norms and pools as one launch per kernel (runtime/schedule.c
 * groups them); every replay still gives the eager passes' bits. With the own 1x1 kernels
 * the 1x1 convolutions batch too. */
Test(cuda_net, batched_passes_replay_eager_bits) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    records_case(1, 0, 0); /* the 1x1s on cuBLAS: not batched */
}
Test(cuda_net, batched_passes_replay_eager_bits_own_1x1) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    records_case(1, 0, 1);
}
/* With the cuBLAS 1x1s batched too (DARTSC_CUDA_BATCH_CUBLAS): the eager passes' bits on
 * the emulator; on a GPU, whose batched GEMMs may round differently from the single ones
 * (cuda_batch_conv/cublas_1x1_*), within TOL_NET of them, and a second replay at the same
 * state gives the first's bits. */
Test(cuda_net, batched_passes_with_cublas_1x1_replay_eager_passes) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_CUDA_BATCH_CUBLAS", "1", 1);
#ifdef DARTSC_CUDA_EMU
    records_case(1, 0, 2);
#else
    records_case(1, TOL_NET, 2);
#endif
}
/* A wrapper around the backend's run_batch counts the batches of 1x1 convolutions (the
 * lane stats count every op kind together), stride 1 and strided apart. */
static void (*rc_run_batch0)(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n);
static int rc_pw_batches[2];
static void rc_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n) {
    const rt_exec_node *a = nodes[0];
    if (a->op == IR_OP_CONV2D && a->in[1].ndim == 4 && a->in[1].shape[2] == 1 && a->in[1].shape[3] == 1 &&
        a->in[1].shape[1] == a->in[0].shape[1]) /* 1x1, groups 1 */
        rc_pw_batches[a->out.shape[2] != a->in[0].shape[2]]++;
    rc_run_batch0(be, bwd, nodes, n);
}
/* tol 0: every pass the eager passes' bits; otherwise within tol of them, and a second
 * pass at the same state the first's bits. pw_batched: which 1x1 convolutions the
 * recordings batch: 0 none, 1 the stride-1 ones only (the own kernels), 2 FactorizedReduce's
 * strided ones too (cuBLAS batched). */
static void records_case(int batch, double tol, int pw_batched) {
    ir_space sp;
    tiny_space(&sp);
    pair h;
    net_pair(&h, &sp, 4, 11);
    rc_run_batch0 = h.gpu->run_batch;
    h.gpu->run_batch = rc_run_batch;
    memset(rc_pw_batches, 0, sizeof rc_pw_batches);
    rt_group wg = rt_plan_group(h.pg, IR_ROLE_WEIGHT), ag = rt_plan_group(h.pg, IR_ROLE_ARCH);
    const int64_t ni = (int64_t)4 * sp.in_c * sp.in_h * sp.in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    const unsigned masks[2] = {RT_GRAD_ARCH, RT_GRAD_W};
    for (int it = 0; it < 4; it++) { /* 0: eager, 1: recorded, 2 and 3: replayed */
        for (int m = 0; m < 2; m++) {
            tu_fill_uniform(img, ni, -1.f, 1.f, 100 + 2 * it + m);
            cr_assert_eq(rt_set_input(h.pg, h.net.images, img, (size_t)ni * 4), 0);
            /* the reference: eager forward + backward on the same state */
            const uint64_t step = rt_plan_step(h.pg);
            float le = rt_forward(h.pg, 1);
            cr_assert_eq(rt_backward(h.pg, masks[m]), 0);
            float *ew, *ea, l0;
            grads_of(&h, &ew, &ea, &l0);
            h.gpu->memset0(h.gpu, wg.grad, (size_t)wg.n * 4); /* a replay that skipped work fails */
            h.gpu->memset0(h.gpu, ag.grad, (size_t)ag.n * 4);
            rt_plan_set_step(h.pg, step);
            const long long fills = kcuda_ptr_fills();
            cr_assert_eq(rt_pass(h.pg, 1, masks[m]), 0);
            /* the passes batch only when recorded, and there the host writes the batched GEMMs'
               pointer arrays (with rc_pw_batches > 0 below: no kernel writes them) */
            cr_expect(kcuda_ptr_fills() == fills, "pass %d mask %u: %lld pointer-array kernels", it, masks[m],
                      kcuda_ptr_fills() - fills);
            float *pw, *pa, lp;
            grads_of(&h, &pw, &pa, &lp);
            assert_no_cuda_error(&h);
            cr_expect_eq(rt_plan_step(h.pg), step + 1, "a pass counts one step");
            if (tol == 0) {
                cr_expect(le == lp, "pass %d mask %u: loss %.9g vs eager %.9g", it, masks[m], lp, le);
                if (masks[m] & RT_GRAD_W)
                    cr_expect_arr_eq(pw, ew, (size_t)wg.n * 4, "pass %d: weight gradients differ from eager", it);
                if (masks[m] & RT_GRAD_ARCH)
                    cr_expect_arr_eq(pa, ea, (size_t)ag.n * 4, "pass %d: alpha gradients differ from eager", it);
            } else {
                char what[96];
                cr_expect(fabsf(le - lp) <= tol * fabsf(le), "pass %d mask %u: loss %.9g vs eager %.9g", it, masks[m],
                          lp, le);
                snprintf(what, sizeof what, "pass %d mask %u: weight gradients against eager", it, masks[m]);
                if (masks[m] & RT_GRAD_W) expect_close(what, pw, ew, wg.n, tol);
                snprintf(what, sizeof what, "pass %d mask %u: alpha gradients against eager", it, masks[m]);
                if (masks[m] & RT_GRAD_ARCH) expect_close(what, pa, ea, ag.n, tol);
                h.gpu->memset0(h.gpu, wg.grad, (size_t)wg.n * 4); /* the same pass again: the same bits */
                h.gpu->memset0(h.gpu, ag.grad, (size_t)ag.n * 4);
                rt_plan_set_step(h.pg, step);
                cr_assert_eq(rt_pass(h.pg, 1, masks[m]), 0);
                float *qw, *qa, lq;
                grads_of(&h, &qw, &qa, &lq);
                cr_expect(lq == lp, "pass %d mask %u: loss %.9g, then %.9g", it, masks[m], lp, lq);
                if (masks[m] & RT_GRAD_W)
                    cr_expect_arr_eq(qw, pw, (size_t)wg.n * 4, "pass %d: weight gradients differ run to run", it);
                if (masks[m] & RT_GRAD_ARCH)
                    cr_expect_arr_eq(qa, pa, (size_t)ag.n * 4, "pass %d: alpha gradients differ run to run", it);
                free(qw); free(qa);
            }
            free(ew); free(ea); free(pw); free(pa);
            /* new parameters for the next round */
            if (masks[m] & RT_GRAD_W) h.gpu->axpy(h.gpu, wg.data, -0.05f, wg.grad, wg.n);
            else h.gpu->axpy(h.gpu, ag.data, -0.5f, ag.grad, ag.n);
        }
    }
    /* the recordings ran on lanes (DARTSC_CUDA_LANES unset: 8), side by side */
    rt_lane_stats ls = rt_plan_lane_stats(h.pg);
    cr_expect(rt_plan_lanes(h.pg) > 1, "recordings on %d lane(s)", rt_plan_lanes(h.pg));
    cr_expect(ls.lanes_used > 1 && ls.longest_chain < ls.ops / 2, "%d ops on %d lanes, critical path %d", ls.ops,
              ls.lanes_used, ls.longest_chain);
    if (batch) {
        cr_expect(ls.batches > 0 && ls.batched_ops > 2 * ls.batches, "%d batches of %d node ops", ls.batches,
                  ls.batched_ops);
        cr_log_info("last recording: %d ops issued as %d entries, %d batches of %d node ops; 1x1 batches in the "
                    "recordings: %d of stride 1, %d strided", ls.ops, ls.issued, ls.batches, ls.batched_ops,
                    rc_pw_batches[0], rc_pw_batches[1]);
        if (pw_batched)
            cr_expect(rc_pw_batches[0] > 0 && (rc_pw_batches[1] > 0) == (pw_batched == 2),
                      "1x1 convolutions batched: %d of stride 1, %d strided", rc_pw_batches[0], rc_pw_batches[1]);
        else
            cr_expect(rc_pw_batches[0] == 0 && rc_pw_batches[1] == 0, "1x1 convolutions on cuBLAS batched: %d, %d strided",
                      rc_pw_batches[0], rc_pw_batches[1]);
    } else {
        cr_expect_eq(ls.batches, 0, "batched without DARTSC_CUDA_BATCH");
    }
    /* a bad mask runs nothing */
    cr_expect_eq(rt_pass(h.pg, 1, 4u), -1);
    free(img);
    free_pair(&h);
}

/* Recorded passes on lanes at a size where concurrent kernels overlap for real (C 8,
 * batch 32, 5 cells: each op a few hundred blocks): ten replays of each mask, with new
 * images and parameters between them, give the bits of eager passes on one stream. A
 * missing ordering (an op reading memory another lane has not finished writing) shows up
 * here as differing bits on some replay; compute-sanitizer cannot see such races. */
Test(cuda_net, lanes_replays_equal_eager_passes_on_a_larger_supernet) {
    ir_space sp;
    tiny_space(&sp);
    sp.in_c = 3; sp.in_h = 16; sp.in_w = 16; sp.C = 8; sp.layers = 5;
    sp.n_reduce = 2; sp.reduce_at[0] = 1; sp.reduce_at[1] = 3;
    pair h;
    net_pair(&h, &sp, 32, 21);
    rt_group wg = rt_plan_group(h.pg, IR_ROLE_WEIGHT), ag = rt_plan_group(h.pg, IR_ROLE_ARCH);
    const int64_t ni = (int64_t)32 * sp.in_c * sp.in_h * sp.in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    const unsigned masks[3] = {RT_GRAD_ARCH, RT_GRAD_W, RT_GRAD_W | RT_GRAD_ARCH};
    for (int it = 0; it < 12; it++) {
        const unsigned m = masks[it % 3];
        tu_fill_uniform(img, ni, -1.f, 1.f, 500 + it);
        cr_assert_eq(rt_set_input(h.pg, h.net.images, img, (size_t)ni * 4), 0);
        const uint64_t step = rt_plan_step(h.pg);
        float le = rt_forward(h.pg, 1);
        cr_assert_eq(rt_backward(h.pg, m), 0);
        float *ew, *ea, l0;
        grads_of(&h, &ew, &ea, &l0);
        h.gpu->memset0(h.gpu, wg.grad, (size_t)wg.n * 4);
        h.gpu->memset0(h.gpu, ag.grad, (size_t)ag.n * 4);
        rt_plan_set_step(h.pg, step);
        cr_assert_eq(rt_pass(h.pg, 1, m), 0);
        float *pw, *pa, lp;
        grads_of(&h, &pw, &pa, &lp);
        assert_no_cuda_error(&h);
        cr_expect(le == lp, "pass %d mask %u: loss %.9g vs eager %.9g", it, m, lp, le);
        if (m & RT_GRAD_W) cr_expect_arr_eq(pw, ew, (size_t)wg.n * 4, "pass %d: weight gradients differ from eager", it);
        if (m & RT_GRAD_ARCH) cr_expect_arr_eq(pa, ea, (size_t)ag.n * 4, "pass %d: alpha gradients differ from eager", it);
        free(ew); free(ea); free(pw); free(pa);
        h.gpu->axpy(h.gpu, wg.data, -0.01f, wg.grad, wg.n);
        h.gpu->axpy(h.gpu, ag.data, -0.1f, ag.grad, ag.n);
    }
    rt_lane_stats ls = rt_plan_lane_stats(h.pg);
    cr_expect(ls.lanes_used > 1, "%d ops on %d lanes", ls.ops, ls.lanes_used);
    free(img);
    free_pair(&h);
}

/* ReLUs folded into the depthwise (and 1x1) convolutions they feed, and the batch norms
 * before each mixed op deferred into it with their gradients read through it scaled,
 * change no bit on the device: loss, weight and alpha gradients of the tiny supernet against a plan made with
 * DARTSC_NO_FUSION=1 (same parameters, same batch), and the folded plan has fewer nodes'
 * worth of arena (no ReLU outputs). Strided and dilated depthwise, 1x1 and reduction
 * cells are all in the supernet. */
static void fusion_case(const char *off);
static void relu_fusion_case(void) { fusion_case("DARTSC_NO_FUSION"); }
Test(cuda_net, relu_fusion_changes_no_bit) { relu_fusion_case(); }
/* The sep_convs' middle batch norms (BN -> ReLU -> depthwise) deferred into the depthwise
 * convolutions (kcuda_conv2d_relu_affine_*): against a plan without that one fusion
 * (DARTSC_NO_BN_INTO_CONV=1), the same bits, training and inference, in less arena. */
Test(cuda_net, batch_norms_deferred_into_depthwise_convolutions_change_no_bit) {
    fusion_case("DARTSC_NO_BN_INTO_CONV");
}
/* with the own 1x1 kernels the preprocessing ReLUs fold into their 1x1 convolutions too */
Test(cuda_net, relu_fusion_changes_no_bit_own_1x1) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    relu_fusion_case();
}
/* off: the environment switch that makes the plan without the fusion(s) compared. */
static void fusion_case(const char *off) {
    ir_space sp;
    tiny_space(&sp);
    pair h;
    net_pair(&h, &sp, 4, 13);
    setenv(off, "1", 1);
    char err[256];
    rt_plan *pu = rt_plan_new(h.g, h.gpu, &(rt_plan_opts){.seed = 13, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    unsetenv(off);
    cr_assert(pu, "%s", err);
    cr_expect(rt_plan_arena_bytes(h.pg) < rt_plan_arena_bytes(pu), "%s: fused arena %zu not below unfused %zu", off,
              rt_plan_arena_bytes(h.pg), rt_plan_arena_bytes(pu));
    const ir_role roles[3] = {IR_ROLE_WEIGHT, IR_ROLE_ARCH, IR_ROLE_BUFFER};
    for (int i = 0; i < 3; i++) {
        rt_group a = rt_plan_group(h.pg, roles[i]), b = rt_plan_group(pu, roles[i]);
        if (a.n) h.gpu->copy(h.gpu, b.data, a.data, a.n);
    }
    const int64_t ni = (int64_t)4 * sp.in_c * sp.in_h * sp.in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    tu_fill_uniform(img, ni, -1.f, 1.f, 31);
    cr_assert_eq(rt_set_input(h.pg, h.net.images, img, (size_t)ni * 4), 0);
    cr_assert_eq(rt_set_input(pu, h.net.images, img, (size_t)ni * 4), 0);
    int32_t lab[4] = {0, 3, 1, 4};
    cr_assert_eq(rt_set_input(pu, h.net.labels, lab, sizeof lab), 0);
    cr_assert_eq(rt_set_input(h.pg, h.net.labels, lab, sizeof lab), 0);
    float lf = rt_forward(h.pg, 1), lu = rt_forward(pu, 1);
    cr_assert_eq(rt_backward(h.pg, RT_GRAD_W | RT_GRAD_ARCH), 0);
    cr_assert_eq(rt_backward(pu, RT_GRAD_W | RT_GRAD_ARCH), 0);
    assert_no_cuda_error(&h);
    cr_expect_eq(memcmp(&lf, &lu, 4), 0, "loss %.9g folded vs %.9g unfolded", lf, lu);
    for (int i = 0; i < 2; i++) {
        rt_group a = rt_plan_group(h.pg, roles[i]), b = rt_plan_group(pu, roles[i]);
        float *ga = fetch(&h, a.grad, a.n), *gb = fetch(&h, b.grad, b.n);
        double s = 0;
        for (int64_t k = 0; k < a.n; k++) s += fabs(ga[k]);
        cr_expect(s > 0, "%s gradients all zero", ir_role_name(roles[i]));
        cr_expect_arr_eq(ga, gb, (size_t)a.n * 4, "%s: %s gradients differ with the fusions", off,
                         ir_role_name(roles[i]));
        free(ga);
        free(gb);
    }
    { /* the batch norms' running statistics, then an inference pass on them */
        rt_group a = rt_plan_group(h.pg, IR_ROLE_BUFFER), b = rt_plan_group(pu, IR_ROLE_BUFFER);
        float *ra = fetch(&h, a.data, a.n), *rb = fetch(&h, b.data, b.n);
        cr_expect_arr_eq(ra, rb, (size_t)a.n * 4, "%s: running statistics differ with the fusions", off);
        free(ra);
        free(rb);
        const float ef = rt_forward(h.pg, 0), eu = rt_forward(pu, 0);
        assert_no_cuda_error(&h);
        cr_expect_eq(memcmp(&ef, &eu, 4), 0, "%s: inference loss %.9g fused vs %.9g unfused", off, ef, eu);
    }
    free(img);
    rt_plan_free(pu);
    free_pair(&h);
}

/* Passes that draw masks, recorded with their seeds read on the device: dropout and
 * drop path (p = 0.5) over 16 samples; each of four passes (eager, recorded, replayed
 * twice) must give the loss and gradient bits of an eager pass at the same step, i.e. the
 * same masks, and the masks must change from step to step. */
static void masks_case(ir_op op) {
    pair h = {.g = ir_graph_new("masks")};
    int x = wparam(h.g, "x", 4, (int64_t[]){16, 3, 5, 4});
    int y = ir_dropout(h.g, op, x, 0.5f, "drop");
    cr_assert(y >= 0, "%s", ir_graph_error(h.g));
    add_loss(&h, y);
    make_plans(&h, 5);
    rt_group wg = rt_plan_group(h.pg, IR_ROLE_WEIGHT);
    float *prev = NULL;
    for (int it = 0; it < 4; it++) {
        const uint64_t step = rt_plan_step(h.pg);
        float le = rt_forward(h.pg, 1);
        cr_assert_eq(rt_backward(h.pg, RT_GRAD_W), 0);
        float *ew = fetch(&h, wg.grad, wg.n);
        h.gpu->memset0(h.gpu, wg.grad, (size_t)wg.n * 4);
        rt_plan_set_step(h.pg, step);
        cr_assert_eq(rt_pass(h.pg, 1, RT_GRAD_W), 0);
        float lp = rt_loss(h.pg);
        float *pw = fetch(&h, wg.grad, wg.n);
        assert_no_cuda_error(&h);
        cr_expect(memcmp(&le, &lp, 4) == 0, "pass %d: loss %.9g vs eager %.9g", it, lp, le);
        cr_expect_arr_eq(pw, ew, (size_t)wg.n * 4, "pass %d: gradients (masks) differ from the eager pass", it);
        if (prev) cr_expect(memcmp(prev, pw, (size_t)wg.n * 4) != 0, "pass %d: the masks did not change", it);
        free(prev);
        free(ew);
        prev = pw;
    }
    free(prev);
    free_pair(&h);
}
Test(cuda_net, dropout_pass_recorded_with_device_seeds) { masks_case(IR_OP_DROPOUT); }
Test(cuda_net, drop_path_pass_recorded_with_device_seeds) { masks_case(IR_OP_DROP_PATH); }

/* ---- whole steps recorded as one graph (rt_step_run: search/step.c, train/common.c) ----
 * Two plans of one network on one GPU with the same parameters: one runs its steps through
 * the step recording (eager, recorded, then one replay per step), the other through the
 * per-pass path (DARTSC_NO_STEP_GRAPHS=1 when it was made: each pass its own recording,
 * the optimisers and copies between them). Every step's weights, alpha, BN buffers,
 * optimiser state, losses and top-1 counts must be the same bits: the step graph issues
 * the same kernels in the same order per lane. */
static rt_plan *step_plan(rt_backend *be, const ir_graph *g, unsigned grads, int per_pass) {
    char err[256];
    if (per_pass) setenv("DARTSC_NO_STEP_GRAPHS", "1", 1);
    rt_plan *p = rt_plan_new(g, be, &(rt_plan_opts){.seed = 17, .grads = grads}, err, sizeof err);
    unsetenv("DARTSC_NO_STEP_GRAPHS");
    cr_assert(p, "%s", err);
    return p;
}

static float *dev_zeros(rt_backend *be, int64_t n) {
    float *d = be->alloc(be, (size_t)(n ? n : 1) * 4);
    cr_assert(d);
    be->memset0(be, d, (size_t)(n ? n : 1) * 4);
    return d;
}

/* Makes the plan's loss non-finite whatever the batch: the weights of its last classifier
 * (a linear node) NaN. NaN images would not do it in a DARTS network: every path from the
 * images to the loss passes a ReLU, which maps NaN to 0 on both backends (the emulator in
 * CI showed the loss staying finite), so only the weight gradients turn NaN. */
static void poison_classifier(rt_backend *be, rt_plan *p) {
    const ir_graph *g = rt_plan_graph(p);
    for (int i = ir_graph_num_nodes(g) - 1; i >= 0; i--) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op != IR_OP_LINEAR) continue;
        const int w = nd->inputs[1];
        const int64_t n = ir_node_numel(ir_graph_node(g, w));
        float *h = malloc((size_t)n * 4);
        for (int64_t j = 0; j < n; j++) h[j] = NAN;
        be->upload(be, rt_node_data(p, w), h, (size_t)n * 4);
        free(h);
        return;
    }
    cr_assert_fail("the plan has no classifier to poison");
}

/* Every named vector of both plans (backend memory) the same bits. */
static void expect_same_dev(rt_backend *be, const float *a, const float *b, int64_t n, const char *what, int step) {
    float *ha = malloc((size_t)(n ? n : 1) * 4), *hb = malloc((size_t)(n ? n : 1) * 4);
    be->download(be, ha, a, (size_t)n * 4);
    be->download(be, hb, b, (size_t)n * 4);
    cr_expect_arr_eq(ha, hb, (size_t)n * 4, "step %d: %s differ(s) between the step graph and the per-pass path", step,
                     what);
    free(ha);
    free(hb);
}

static void expect_same_groups(rt_backend *be, rt_plan *pa, rt_plan *pb, int step) {
    const ir_role roles[3] = {IR_ROLE_WEIGHT, IR_ROLE_ARCH, IR_ROLE_BUFFER};
    for (int i = 0; i < 3; i++) {
        rt_group a = rt_plan_group(pa, roles[i]), b = rt_plan_group(pb, roles[i]);
        if (a.n) expect_same_dev(be, a.data, b.data, a.n, ir_role_name(roles[i]), step);
    }
}

/* A CUDA backend, and the tiny space's supernet at batch into net. */
static rt_backend *cuda_tiny_supernet(ir_space *sp, int batch, ir_net *net) {
    char err[256];
    rt_backend *be = rt_backend_cuda_new(err, sizeof err);
    cr_assert(be, "%s", err);
    tiny_space(sp);
    cr_assert_eq(ir_space_build_supernet(sp, batch, net), 0, "%s", net->error);
    return be;
}

/* its training passes of each gradient mask through plans p[0] and p[1] of the tiny
 * supernet at batch 4, the same batches (seeded from seed) and the same parameter updates
 * between: the same loss and gradient bits (and with groups, weights, alpha and buffers). */
static void passes_alike(rt_backend *be, rt_plan *const p[2], const ir_net *net, const ir_space *sp, uint64_t seed,
                         int groups, int its) {
    const int64_t ni = (int64_t)4 * sp->in_c * sp->in_h * sp->in_w;
    float *x = malloc((size_t)ni * 4);
    int32_t y[4] = {0, 1, 2, 3};
    const unsigned masks[2] = {RT_GRAD_ARCH, RT_GRAD_W};
    for (int it = 0; it < its; it++)
        for (int mi = 0; mi < 2; mi++) {
            tu_fill_uniform(x, ni, -1.f, 1.f, seed + 2 * (uint64_t)it + (uint64_t)mi);
            float loss[2];
            for (int k = 0; k < 2; k++) {
                cr_assert_eq(rt_set_input(p[k], net->images, x, (size_t)ni * 4), 0);
                cr_assert_eq(rt_set_input(p[k], net->labels, y, sizeof y), 0);
                cr_assert_eq(rt_pass(p[k], 1, masks[mi]), 0);
                loss[k] = rt_loss(p[k]);
            }
            cr_assert(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
            cr_expect(isfinite(loss[0]) && memcmp(&loss[0], &loss[1], 4) == 0, "pass %d mask %u: loss %.9g vs %.9g", it,
                      masks[mi], loss[0], loss[1]);
            const ir_role role = masks[mi] == RT_GRAD_W ? IR_ROLE_WEIGHT : IR_ROLE_ARCH;
            rt_group g0 = rt_plan_group(p[0], role), g1 = rt_plan_group(p[1], role);
            expect_same_dev(be, g0.grad, g1.grad, g0.n, masks[mi] == RT_GRAD_W ? "weight gradients" : "alpha gradients",
                            it);
            if (groups) expect_same_groups(be, p[0], p[1], it);
            for (int k = 0; k < 2; k++) { /* new parameters for the next pass */
                rt_group g = rt_plan_group(p[k], role);
                be->axpy(be, g.data, -0.05f, g.grad, g.n);
            }
        }
    free(x);
}

/* DARTSC_SCHEDULE_EAGER=1 (what `dartsc bench --profile` times the batched launches by):
 * with graphs off, a pass goes through the runtime's schedule on one lane, its same-shaped
 * independent ops batched (DARTSC_CUDA_BATCH=1), and gives the bits of the pass issued as
 * it is made, for both gradient masks, over three passes with parameter updates between. */
Test(cuda_net, eager_passes_through_the_schedule_batch_with_the_same_bits) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_NO_GRAPHS", "1", 1);
    ir_space sp;
    ir_net net;
    rt_backend *be = cuda_tiny_supernet(&sp, 4, &net);
    setenv("DARTSC_SCHEDULE_EAGER", "1", 1);
    rt_plan *p[2] = {step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 0), NULL};
    unsetenv("DARTSC_SCHEDULE_EAGER");
    p[1] = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 0);
    unsetenv("DARTSC_NO_GRAPHS");
    passes_alike(be, p, &net, &sp, 300, 0, 3);
    const rt_lane_stats ls = rt_plan_lane_stats(p[0]);
    cr_expect(ls.batches > 0 && ls.batched_ops > ls.batches && ls.lanes_used == 1, "%d batches of %d node ops on %d lanes",
              ls.batches, ls.batched_ops, ls.lanes_used);
    cr_expect_eq(rt_plan_lane_stats(p[1]).batches, 0, "batched without DARTSC_SCHEDULE_EAGER");
    for (int k = 0; k < 2; k++) rt_plan_free(p[k]);
    ir_net_free(&net);
    be->destroy(be);
}

/* Batch norms of one tensor taking the first one's batch statistics (DARTSC_SHARE_BN_STATS=1,
 * runtime/plan.c: the supernet's shared pools leave every edge its own batch norm of its
 * state's one max pool and one average pool, 28 batch norms of 10 tensors a cell, so 18 a
 * cell take them), or (pools, DARTSC_POOL_BN_STATS=1) all 28 taking them from their pool:
 * the bits of each computing its own, over two passes of each gradient mask (recorded,
 * then replayed) with parameter updates between (losses, gradients, weights, alpha and
 * the running statistics), then an evaluation pass (the running statistics read). */
static void shared_stats_case(int pools) {
    ir_space sp;
    ir_net net;
    rt_backend *be = cuda_tiny_supernet(&sp, 4, &net);
    setenv(pools ? "DARTSC_POOL_BN_STATS" : "DARTSC_SHARE_BN_STATS", "1", 1);
    rt_plan *p[2] = {step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1), NULL};
    unsetenv("DARTSC_SHARE_BN_STATS");
    unsetenv("DARTSC_POOL_BN_STATS");
    p[1] = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1);
    const int per_cell = pools ? 28 : 18;
    cr_expect_eq(rt_plan_shared_stats(p[0]), per_cell * sp.layers, "%d batch norms take shared statistics, not %d a cell",
                 rt_plan_shared_stats(p[0]), per_cell);
    cr_expect_eq(rt_plan_shared_stats(p[1]), 0, "statistics shared without DARTSC_SHARE_BN_STATS");
    { /* on lanes the schedule orders a taker after the writer by the memory they touch */
        rt_oplist ops = {0};
        cr_assert_eq(rt_plan_collect(p[0], 1, RT_GRAD_W | RT_GRAD_ARCH, &ops), 0);
        int takers = 0;
        for (int t = 0; t < ops.n; t++) {
            const rt_exec_node *e = &ops.ops[t].e;
            if (ops.ops[t].kind != RT_OP_FWD || e->op != IR_OP_BATCHNORM || !e->stats_in) continue;
            rt_range rt[RT_OP_MAX_RANGES], rw[RT_OP_MAX_RANGES];
            const int nt = rt_op_ranges(&ops.ops[t], rt);
            int reads = 0, writer = -1;
            for (int k = 0; k < nt; k++) reads |= !rt[k].w && rt[k].lo == (uintptr_t)e->stats_in;
            for (int w = 0; w < t && writer < 0; w++) {
                if (ops.ops[w].kind != RT_OP_FWD || ops.ops[w].e.stats_out != e->stats_in) continue;
                const int nw = rt_op_ranges(&ops.ops[w], rw);
                for (int k = 0; k < nw; k++)
                    if (rw[k].w && rw[k].lo == (uintptr_t)e->stats_in &&
                        rw[k].hi == rw[k].lo + 2 * (uintptr_t)e->in[0].shape[1] * sizeof(double))
                        writer = w;
            }
            cr_expect(reads && writer >= 0, "op %d takes statistics %s, %s", t, reads ? "read" : "not read as a range",
                      writer >= 0 ? "written before" : "that no earlier op writes as a range");
            takers++;
        }
        /* with the pools' statistics the pools run those batch norms' forwards: none is
           issued, and each pool's ranges write every taker's saved state and running
           statistics, which its mixed op's forward then reads after it */
        int folded = 0;
        for (int t = 0; pools && t < ops.n; t++) {
            const rt_exec_node *e = &ops.ops[t].e;
            if (ops.ops[t].kind != RT_OP_FWD || !e->ntakers) continue;
            rt_range rw[RT_OP_MAX_RANGES];
            const int nw = rt_op_ranges(&ops.ops[t], rw);
            for (int q = 0; q < e->ntakers; q++) {
                const rt_exec_node *tk = e->takers[q];
                int aux = 0, run = 0;
                for (int k = 0; k < nw; k++) {
                    aux |= rw[k].w && rw[k].lo == (uintptr_t)tk->aux && rw[k].hi > rw[k].lo + 4 * 3 * (uintptr_t)tk->in[0].shape[1];
                    run += rw[k].w && (rw[k].lo == (uintptr_t)tk->in[3].data || rw[k].lo == (uintptr_t)tk->in[4].data);
                }
                cr_expect(aux && run == 2, "pool op %d: taker %d's saved state %s, %d running statistics written", t, q,
                          aux ? "written" : "not written", run);
                for (int m = t + 1; m < ops.n; m++) { /* its mixed op reads the coefficients after the pool */
                    const rt_exec_node *me = &ops.ops[m].e;
                    for (int k = 0; ops.ops[m].kind == RT_OP_FWD && k < me->n_in; k++)
                        folded += me->in[k].affine == tk->aux + 2 * tk->in[0].shape[1];
                }
            }
        }
        cr_expect_eq(takers, pools ? 0 : per_cell * sp.layers, "%d takers issued in the pass", takers);
        cr_expect_eq(folded, pools ? per_cell * sp.layers : 0, "%d batch norms run by their pools, read after them",
                     folded);
        cr_expect_eq(rt_plan_folded_bn(p[0]), pools ? per_cell * sp.layers : 0, "%d batch norms run by their pools",
                     rt_plan_folded_bn(p[0]));
        rt_oplist_free(&ops);
        rt_oplist o1 = {0}; /* the other plan's step advanced alike */
        cr_assert_eq(rt_plan_collect(p[1], 1, RT_GRAD_W | RT_GRAD_ARCH, &o1), 0);
        rt_oplist_free(&o1);
        for (int k = 0; k < 2; k++) { /* the lanes' plans' memory against the pass (each collects one more) */
            char err[512] = "";
            const int bad = rt_plan_audit(p[k], 1, RT_GRAD_W | RT_GRAD_ARCH, err, sizeof err);
            cr_expect_eq(bad, 0, "plan %d: %d ranges outside their buffers' lifetimes; the first: %s", k, bad, err);
        }
    }
    passes_alike(be, p, &net, &sp, 900, 1, 2);
    float ev[2];
    for (int k = 0; k < 2; k++) ev[k] = rt_forward(p[k], 0);
    cr_expect(isfinite(ev[0]) && memcmp(&ev[0], &ev[1], 4) == 0, "evaluation loss %.9g vs %.9g", ev[0], ev[1]);
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    for (int k = 0; k < 2; k++) rt_plan_free(p[k]);
    ir_net_free(&net);
    be->destroy(be);
}
Test(cuda_net, batch_norms_of_one_tensor_share_statistics_bit_for_bit) { shared_stats_case(0); }
/* batched launches (the statistics' writers batched with the others, the takers with each
 * other) and one-launch reductions (written by the last block of a channel) */
Test(cuda_net, shared_statistics_batched_and_one_launch_bit_for_bit) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_CUDA_ONE_LAUNCH", "1", 1);
    shared_stats_case(0);
}
/* without the fusions (DARTSC_NO_FUSION=1): the batch norms write their outputs, takers too */
Test(cuda_net, shared_statistics_with_batch_norm_outputs_bit_for_bit) {
    setenv("DARTSC_NO_FUSION", "1", 1);
    shared_stats_case(0);
}
/* the pools writing them (kcuda_pool_forward_stats), batched: the max pools of one depth
 * in one launch, the average pools in another, their takers batched */
Test(cuda_net, batch_norm_statistics_from_their_pools_batched_bit_for_bit) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    shared_stats_case(1);
}

/* The pool batch norms running one backward on the sum of their output gradients
 * (DARTSC_SUM_BN_GRADS=1, runtime/plan.c: 8 of a DARTS cell's 28 run the backwards of 18
 * others, kcuda_bn_backward_sum; 10 backwards where there were 28): recorded on lanes (batched too, with DARTSC_CUDA_BATCH),
 * the bits of the same plan's passes issued eagerly on one stream, over two passes of each
 * gradient mask with parameter updates between (the schedule orders each lead after
 * every write of the gradients it sums: its ranges read them); against the default plan
 * (each batch norm's own backward) the same loss and, from the same parameters, gradients
 * equal to rounding (2e-5 of the group's largest, as on the CPU: tests/test_ops_grad.c). */
static void summed_bn_case(void) {
    ir_space sp;
    ir_net net;
    rt_backend *be = cuda_tiny_supernet(&sp, 4, &net);
    setenv("DARTSC_SUM_BN_GRADS", "1", 1);
    rt_plan *p[2] = {step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1), NULL};
    setenv("DARTSC_NO_GRAPHS", "1", 1);
    p[1] = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1);
    unsetenv("DARTSC_NO_GRAPHS");
    unsetenv("DARTSC_SUM_BN_GRADS");
    rt_plan *base = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1);
    for (int k = 0; k < 2; k++)
        cr_expect_eq(rt_plan_summed_bn(p[k]), 18 * sp.layers, "plan %d: %d batch norms summed, not 18 a cell", k,
                     rt_plan_summed_bn(p[k]));
    cr_expect_eq(rt_plan_summed_bn(base), 0, "summed without DARTSC_SUM_BN_GRADS");
    { /* the leads' backwards read every gradient they sum, as ranges the schedule orders by */
        rt_oplist ops = {0};
        cr_assert_eq(rt_plan_collect(p[0], 1, RT_GRAD_W | RT_GRAD_ARCH, &ops), 0);
        int leads = 0, more = 0;
        for (int t = 0; t < ops.n; t++) {
            const rt_exec_node *e = &ops.ops[t].e;
            if (ops.ops[t].kind != RT_OP_BWD || !e->nmore) continue;
            leads++;
            rt_range r[RT_OP_MAX_RANGES];
            const int nr = rt_op_ranges(&ops.ops[t], r);
            for (int q = 0; q < e->nmore; q++) {
                int found = 0;
                for (int k = 0; k < nr; k++)
                    found |= !r[k].w && r[k].lo == (uintptr_t)e->more_grad[q] &&
                             r[k].hi == r[k].lo + (uintptr_t)e->out.numel * sizeof(float);
                cr_expect(found, "op %d: further gradient %d not among its ranges", t, q);
                more++;
            }
        }
        /* per cell and pool kind, the states with 4, 4, 3 and 2 edges: the fifth has one */
        cr_expect_eq(leads, 8 * sp.layers, "%d batch norm backwards sum others', not 8 a cell", leads);
        cr_expect_eq(more, 18 * sp.layers, "%d further gradients summed, not 18 a cell", more);
        rt_oplist_free(&ops);
        rt_oplist o1 = {0}; /* the other plans' steps advanced alike */
        cr_assert_eq(rt_plan_collect(p[1], 1, RT_GRAD_W | RT_GRAD_ARCH, &o1), 0);
        rt_oplist_free(&o1);
        cr_assert_eq(rt_plan_collect(base, 1, RT_GRAD_W | RT_GRAD_ARCH, &o1), 0);
        rt_oplist_free(&o1);
        char err[512] = "";
        const int bad = rt_plan_audit(p[0], 1, RT_GRAD_W | RT_GRAD_ARCH, err, sizeof err);
        cr_expect_eq(bad, 0, "%d ranges outside their buffers' lifetimes; the first: %s", bad, err);
        cr_assert_eq(rt_plan_collect(p[1], 1, RT_GRAD_W | RT_GRAD_ARCH, &o1), 0);
        rt_oplist_free(&o1);
        cr_assert_eq(rt_plan_collect(base, 1, RT_GRAD_W | RT_GRAD_ARCH, &o1), 0);
        rt_oplist_free(&o1);
    }
    { /* against each batch norm's own backward: both masks from the same parameters */
        const int64_t ni = (int64_t)4 * sp.in_c * sp.in_h * sp.in_w;
        float *x = malloc((size_t)ni * 4);
        int32_t y[4] = {0, 1, 2, 3};
        tu_fill_uniform(x, ni, -1.f, 1.f, 77);
        rt_plan *q[2] = {p[0], base};
        float loss[2];
        const unsigned mask = RT_GRAD_W | RT_GRAD_ARCH;
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(rt_set_input(q[k], net.images, x, (size_t)ni * 4), 0);
            cr_assert_eq(rt_set_input(q[k], net.labels, y, sizeof y), 0);
            cr_assert_eq(rt_pass(q[k], 1, mask), 0);
            loss[k] = rt_loss(q[k]);
        }
        cr_expect(isfinite(loss[0]) && memcmp(&loss[0], &loss[1], 4) == 0, "loss %.9g vs %.9g", loss[0], loss[1]);
        for (int role = IR_ROLE_WEIGHT; role <= IR_ROLE_ARCH; role++) {
            rt_group a = rt_plan_group(q[0], (ir_role)role), b = rt_plan_group(q[1], (ir_role)role);
            float *ha = malloc((size_t)a.n * 4), *hb = malloc((size_t)a.n * 4);
            be->download(be, ha, a.grad, (size_t)a.n * 4);
            be->download(be, hb, b.grad, (size_t)a.n * 4);
            double big = 0, worst = 0;
            for (int64_t i = 0; i < a.n; i++) big = fmax(big, fabs(hb[i]));
            for (int64_t i = 0; i < a.n; i++) worst = fmax(worst, fabs((double)ha[i] - hb[i]));
            cr_expect(big > 0 && worst <= 2e-5 * big, "%s gradients: largest difference %.3g of the largest %.3g",
                      ir_role_name((ir_role)role), worst, big);
            cr_log_info("%s gradients summed against their own: %.3g of the largest", ir_role_name((ir_role)role),
                        worst / big);
            free(ha);
            free(hb);
        }
        /* the other summed plan from the same parameters as p[0]: one pass there too */
        cr_assert_eq(rt_set_input(p[1], net.images, x, (size_t)ni * 4), 0);
        cr_assert_eq(rt_set_input(p[1], net.labels, y, sizeof y), 0);
        cr_assert_eq(rt_pass(p[1], 1, mask), 0);
        free(x);
    }
    passes_alike(be, p, &net, &sp, 700, 1, 2);
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    for (int k = 0; k < 2; k++) rt_plan_free(p[k]);
    rt_plan_free(base);
    ir_net_free(&net);
    be->destroy(be);
}
/* (on the device only: CI's emulator run leaves out cuda_net/lanes_*, the batched case
   below covers this one's path there but for the single launches: cuda_bn_sum) */
Test(cuda_net, lanes_summed_batch_norm_backwards_recorded_equal_eager) { summed_bn_case(); }
/* batched (the leads of one depth in one launch each way, kcuda_bn_backward_sum_batch),
 * with the pools' statistics and one-launch reductions: every launch reduction */
Test(cuda_net, summed_batch_norm_backwards_batched_with_every_reduction) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_CUDA_BATCH_CUBLAS", "1", 1);
    setenv("DARTSC_CUDA_ONE_LAUNCH", "1", 1);
    setenv("DARTSC_POOL_BN_STATS", "1", 1);
    summed_bn_case();
}

static void darts_step_graph_case(int order, int tune) {
    ir_space sp;
    ir_net net;
    rt_backend *be = cuda_tiny_supernet(&sp, 8, &net);
    if (tune) setenv("DARTSC_AUTOTUNE", "1", 1);
    rt_plan *p[2] = {step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 0),
                     step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 1)};
    unsetenv("DARTSC_AUTOTUNE");
    /* the step graph stands from the third step (index 2), or after tuning (one step per
       variant and timing after the two eager ones) */
    const int rec_from = tune ? 1 + rt_plan_tune_steps(p[0]) : 2;
    if (tune) cr_assert_eq(rt_plan_tune_steps(p[0]), 4 * tune, "4 variants x %d timings", tune);
    ir_train_config tc = sp.search;
    tc.order = order;
    tc.w_clip = 0.5f;
    sr_unroll u[2];
    sr_darts_step ds[2];
    float *buf[2], *m[2], *v[2];
    for (int k = 0; k < 2; k++) {
        rt_group w = rt_plan_group(p[k], IR_ROLE_WEIGHT), a = rt_plan_group(p[k], IR_ROLE_ARCH);
        buf[k] = dev_zeros(be, w.n);
        m[k] = dev_zeros(be, a.n);
        v[k] = dev_zeros(be, a.n);
        memset(&u[k], 0, sizeof u[k]);
        cr_assert_eq(sr_unroll_init(&u[k], p[k]), 0);
        cr_assert_eq(sr_darts_step_init(&ds[k], p[k], net.images, net.labels, &tc, &u[k], buf[k], m[k], v[k]), 0);
    }
    const int64_t ni = (int64_t)8 * sp.in_c * sp.in_h * sp.in_w;
    float *xt = malloc((size_t)ni * 4), *xv = malloc((size_t)ni * 4);
    int32_t yt[8], yv[8];
    for (int i = 0; i < 8; i++) {
        yt[i] = i % sp.classes;
        yv[i] = (3 * i + 1) % sp.classes;
    }
    const int key = order * 2 + 1; /* the key of every step after the first (momentum live) */
    for (int s = 0; s < rec_from + 2; s++) { /* 0, 1: eager (two keys), then recorded (tuned), then replayed (and
                                              once more below, with NaN losses) */
        tu_fill_uniform(xt, ni, -1.f, 1.f, 700 + 2 * (uint64_t)s);
        tu_fill_uniform(xv, ni, -1.f, 1.f, 701 + 2 * (uint64_t)s);
        const float lr = 0.05f * (1.0f - 0.1f * (float)s); /* a new learning rate every step */
        float got[2][4];
        double gn[2];
        for (int k = 0; k < 2; k++)
            cr_assert_eq(sr_darts_step_run(&ds[k], xt, yt, xv, yv, lr, s + 1, s > 0, got[k], &gn[k]), 0);
        cr_assert(!rt_cuda_last_error(), "step %d: %s", s, rt_cuda_last_error());
        cr_expect_eq(rt_step_recorded(p[0], key), s >= rec_from, "step %d: the step graph %s", s,
                     s >= rec_from ? "was not recorded" : "was recorded too early");
        cr_expect(!rt_step_recorded(p[1], key), "the per-pass plan recorded a step");
        cr_expect(isfinite(got[0][0]) && isfinite(got[0][1]), "step %d: losses %g %g", s, got[0][0], got[0][1]);
        /* the weight gradient norm comes back from the device on replays too (the weight step's guard) */
        cr_expect(isfinite(gn[0]) && gn[0] > 0 && gn[0] == gn[1], "step %d: gradient norm %.9g, per pass %.9g", s, gn[0],
                  gn[1]);
        cr_expect_arr_eq(got[0], got[1], sizeof got[0], "step %d: losses / counts %g %g %g %g vs per pass %g %g %g %g",
                         s, got[0][0], got[0][1], got[0][2], got[0][3], got[1][0], got[1][1], got[1][2], got[1][3]);
        cr_expect_eq(rt_plan_step(p[0]), rt_plan_step(p[1]), "step %d: plan steps differ", s);
        expect_same_groups(be, p[0], p[1], s);
        rt_group w = rt_plan_group(p[0], IR_ROLE_WEIGHT), a = rt_plan_group(p[0], IR_ROLE_ARCH);
        expect_same_dev(be, buf[0], buf[1], w.n, "SGD momentum", s);
        expect_same_dev(be, m[0], m[1], a.n, "Adam m", s);
        expect_same_dev(be, v[0], v[1], a.n, "Adam v", s);
    }
    rt_tune_report tr;
    if (tune) { /* every variant timed, the fastest kept: the bits above were every variant's */
        cr_assert_eq(rt_step_tuning(p[0], &tr), 1, "tuning did not finish");
        cr_expect(tr.variants == 4 && tr.trials == tune && tr.chosen >= 0 && tr.chosen < 4, "%d variants, %d trials, chose %d",
                  tr.variants, tr.trials, tr.chosen);
        for (int j = 0; j < tr.variants; j++) {
            cr_expect(tr.times[j] > 0 && tr.names[j] && *tr.names[j], "variant %d: %g s", j, tr.times[j]);
            cr_expect(tr.times[tr.chosen] <= tr.times[j], "chose %s (%g s) over %s (%g s)", tr.names[tr.chosen],
                      tr.times[tr.chosen], tr.names[j], tr.times[j]);
            for (int i = 0; i < j; i++) cr_expect(strcmp(tr.names[i], tr.names[j]) != 0, "two variants named %s", tr.names[j]);
        }
        cr_log_info("autotuned: %s (%s %.3f s, %s %.3f s, %s %.3f s, %s %.3f s on the emulator)", tr.names[tr.chosen],
                    tr.names[0], tr.times[0], tr.names[1], tr.times[1], tr.names[2], tr.times[2], tr.names[3],
                    tr.times[3]);
    } else {
        cr_expect_eq(rt_step_tuning(p[0], &tr), -1, "tuning without DARTSC_AUTOTUNE");
    }
    /* non-finite losses on a replay: alpha, the weights and every optimiser state stay as
       they were (the guards on the device) */
    poison_classifier(be, p[0]);
    rt_group w = rt_plan_group(p[0], IR_ROLE_WEIGHT), a = rt_plan_group(p[0], IR_ROLE_ARCH);
    float *keep[5] = {dev_zeros(be, w.n), dev_zeros(be, a.n), dev_zeros(be, w.n), dev_zeros(be, a.n),
                      dev_zeros(be, a.n)};
    const float *now[5] = {w.data, a.data, buf[0], m[0], v[0]};
    const int64_t len[5] = {w.n, a.n, w.n, a.n, a.n};
    for (int i = 0; i < 5; i++) be->copy(be, keep[i], now[i], len[i]);
    float got[4];
    double gn;
    cr_assert_eq(sr_darts_step_run(&ds[0], xt, yt, xv, yv, 0.02f, 7, 1, got, &gn), 0);
    cr_expect(rt_step_recorded(p[0], key), "the NaN step was not a replay");
    cr_expect(!isfinite(got[0]), "validation loss %g from a NaN classifier", got[0]);
    const char *names[5] = {"weights", "alpha", "SGD momentum", "Adam m", "Adam v"};
    for (int i = 0; i < 5; i++) {
        float *h0 = malloc((size_t)len[i] * 4), *h1 = malloc((size_t)len[i] * 4);
        be->download(be, h0, keep[i], (size_t)len[i] * 4);
        be->download(be, h1, now[i], (size_t)len[i] * 4);
        cr_expect_arr_eq(h0, h1, (size_t)len[i] * 4, "order %d: NaN losses changed the %s", order, names[i]);
        free(h0);
        free(h1);
        be->free(be, keep[i]);
    }
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    for (int k = 0; k < 2; k++) {
        sr_darts_step_free(&ds[k]);
        sr_unroll_free(&u[k], p[k]);
        be->free(be, buf[k]);
        be->free(be, m[k]);
        be->free(be, v[k]);
        rt_plan_free(p[k]);
    }
    free(xt);
    free(xv);
    ir_net_free(&net);
    be->destroy(be);
}

/* The optimiser kernels reading their scalars from device memory give the host-scalar
 * kernels' bits (the same element update) over steps with a changing learning rate and
 * Adam step, also when recorded into a graph and replayed with new scalars; a guard value
 * that is not finite leaves the weights and all state untouched. */
Test(cuda_step, device_scalar_optimisers_equal_host_scalar_ones) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    const int64_t n = 70001;
    const size_t bytes = (size_t)n * 4;
    float *h = malloc(bytes), *a = malloc(bytes), *b = malloc(bytes);
    float *d[8]; /* w, buf, m, v for the host-scalar (0..3) and the device-scalar (4..7) runs */
    tu_fill_uniform(h, n, -1.f, 1.f, 41);
    for (int k = 0; k < 8; k++) {
        d[k] = dev_zeros(gpu, n);
        if (k % 4 == 0) gpu->upload(gpu, d[k], h, bytes);
    }
    float *g = dev_zeros(gpu, n), *sc = dev_zeros(gpu, 4), *guard = dev_zeros(gpu, 2);
    const float ok[2] = {1.5f, 0.25f};
    gpu->upload(gpu, guard, ok, sizeof ok);
    /* the device-scalar steps recorded once, replayed with each step's scalars */
    cr_assert_eq(gpu->capture_begin(gpu), 0);
    gpu->sgd_step_dev(gpu, d[4], d[5], g, n, sc, 0.9f, 3e-4f, guard, 2);
    gpu->adam_step_dev(gpu, d[4], d[6], d[7], g, n, sc + 1, 0.5f, 0.999f, 1e-8f, 1e-3f, guard, 2);
    void *graph = gpu->capture_end(gpu);
    cr_assert(graph, "the optimiser steps could not be recorded: %s", rt_cuda_last_error());
    for (int t = 1; t <= 4; t++) {
        tu_fill_uniform(h, n, -0.5f, 0.5f, 50 + (uint64_t)t);
        gpu->upload(gpu, g, h, bytes);
        const float lr = 0.025f / (float)t, alr = 3e-4f * (float)t;
        float host_sc[3] = {lr};
        rt_adam_scalars(alr, 0.5f, 0.999f, t, host_sc + 1);
        gpu->upload(gpu, sc, host_sc, sizeof host_sc);
        gpu->sgd_step(gpu, d[0], d[1], g, n, lr, 0.9f, 3e-4f);
        gpu->adam_step(gpu, d[0], d[2], d[3], g, n, alr, 0.5f, 0.999f, 1e-8f, 1e-3f, t);
        gpu->replay(gpu, graph);
        for (int k = 0; k < 4; k++) {
            gpu->download(gpu, a, d[k], bytes);
            gpu->download(gpu, b, d[4 + k], bytes);
            cr_expect_arr_eq(a, b, bytes, "step %d: vector %d (w, buf, m, v) differs", t, k);
        }
    }
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 6; k++) {
        float gd[2] = {1.f, 1.f};
        gd[k & 1] = bad[k >> 1];
        gpu->upload(gpu, guard, gd, sizeof gd);
        gpu->replay(gpu, graph);
        for (int j = 0; j < 4; j++) {
            gpu->download(gpu, a, d[j], bytes);
            gpu->download(gpu, b, d[4 + j], bytes);
            cr_expect_arr_eq(a, b, bytes, "guard %g in slot %d: vector %d (w, buf, m, v) moved", gd[k & 1], k & 1, j);
        }
    }
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    gpu->graph_free(gpu, graph);
    for (int k = 0; k < 8; k++) gpu->free(gpu, d[k]);
    gpu->free(gpu, g);
    gpu->free(gpu, sc);
    gpu->free(gpu, guard);
    free(h);
    free(a);
    free(b);
    gpu->destroy(gpu);
}

Test(cuda_step, first_order_step_graph_equals_per_pass_steps) { darts_step_graph_case(1, 0); }
Test(cuda_step, second_order_step_graph_equals_per_pass_steps) { darts_step_graph_case(2, 0); }
/* Autotuning (DARTSC_AUTOTUNE=1, one timing per variant): the four variants (batched
 * launches and one-launch reductions, each on or off) recorded and timed on real steps,
 * every step the per-pass plan's bits (the per-pass plan runs on the same backend, under
 * whichever variant the tuning left set), then the fastest variant's graph replayed. */
Test(cuda_step, autotuned_first_order_steps_equal_per_pass_steps) {
    setenv("DARTSC_AUTOTUNE_TRIALS", "1", 1);
    darts_step_graph_case(1, 1);
}
/* with batched launches (DARTSC_CUDA_BATCH=1) in the step's passes and in the per-pass recordings */
Test(cuda_step, first_order_step_graph_batched_equals_per_pass_steps) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    darts_step_graph_case(1, 0);
}
/* and with the cuBLAS 1x1s batched: the step's graph issues the same batched GEMMs as the
 * per-pass recordings, so the same bits on a GPU too */
Test(cuda_step, first_order_step_graph_cublas_batched_equals_per_pass_steps) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    setenv("DARTSC_CUDA_BATCH_CUBLAS", "1", 1);
    darts_step_graph_case(1, 0);
}

/* The retraining step with drop path (p 0.2, then 0.3 from the fourth step: the ramp's
 * change drops the recordings, which are made again) and an auxiliary head, as one graph
 * per step: the bits of the per-pass path at every step (the same masks: each replay's
 * seeds are written before it), and NaN losses on a replay leave the weights and the
 * momentum untouched. */
static void retrain_drop_path_case(int batch);
Test(cuda_step, retraining_step_graph_with_drop_path_equals_per_pass_steps) { retrain_drop_path_case(0); }
/* The same with batched launches: only the drop-path ops read their seeds on the device, so
 * the network's other same-shaped ops batch (they did not while every node of a pass with
 * masks was handed a device seed) */
Test(cuda_step, retraining_step_graph_with_drop_path_batched_equals_per_pass_steps) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    retrain_drop_path_case(1);
}
/* counts the batches of drop paths the recordings issue */
static void (*rd_run_batch0)(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n);
static int rd_dp_batches[2];
static void rd_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n) {
    if (nodes[0]->op == IR_OP_DROP_PATH) rd_dp_batches[bwd != 0]++;
    rd_run_batch0(be, bwd, nodes, n);
}
static void retrain_drop_path_case(int batch) {
    char err[256];
    rt_backend *be = rt_backend_cuda_new(err, sizeof err);
    cr_assert(be, "%s", err);
    rd_run_batch0 = be->run_batch;
    be->run_batch = rd_run_batch;
    memset(rd_dp_batches, 0, sizeof rd_dp_batches);
    ir_space sp;
    tiny_space(&sp);
    ir_net net;
    tu_darts_v2_net(&sp, 8, &net);
    rt_plan *p[2] = {step_plan(be, net.graph, RT_GRAD_W, 0), step_plan(be, net.graph, RT_GRAD_W, 1)};
    ir_train_config tc = sp.train;
    tc.w_clip = 0.5f;
    sr_step st[2];
    float *buf[2];
    for (int k = 0; k < 2; k++) {
        rt_plan_set_drop_path(p[k], 0.2f);
        buf[k] = dev_zeros(be, rt_plan_group(p[k], IR_ROLE_WEIGHT).n);
        cr_assert_eq(sr_step_init(&st[k], p[k], net.images, net.labels, 1), 0);
    }
    const int64_t ni = (int64_t)8 * sp.in_c * sp.in_h * sp.in_w;
    float *x = malloc((size_t)ni * 4);
    int32_t y[8];
    for (int i = 0; i < 8; i++) y[i] = (i * 7) % sp.classes;
    for (int s = 0; s < 7; s++) {
        if (s == 3)
            for (int k = 0; k < 2; k++) rt_plan_set_drop_path(p[k], 0.3f);
        tu_fill_uniform(x, ni, -1.f, 1.f, 900 + (uint64_t)s);
        const float lr = 0.03f / (float)(s + 1);
        float loss[2], corr[2];
        for (int k = 0; k < 2; k++) cr_assert_eq(sr_train_step(&st[k], buf[k], x, y, lr, &tc, &loss[k], &corr[k]), 0);
        cr_assert(!rt_cuda_last_error(), "step %d: %s", s, rt_cuda_last_error());
        /* eager at 0 and at 3 (the drop path change dropped the recording), recorded at 1
           and 4, replayed after each */
        cr_expect_eq(rt_step_recorded(p[0], 0), s != 0 && s != 3, "step %d: step graph state", s);
        cr_expect(isfinite(loss[0]), "step %d: loss %g", s, loss[0]);
        cr_expect(memcmp(loss, loss + 1, 4) == 0 && corr[0] == corr[1], "step %d: loss %.9g count %g vs per pass %.9g %g",
                  s, loss[0], corr[0], loss[1], corr[1]);
        cr_expect_eq(rt_plan_step(p[0]), rt_plan_step(p[1]), "step %d: plan steps differ", s);
        expect_same_groups(be, p[0], p[1], s);
        expect_same_dev(be, buf[0], buf[1], rt_plan_group(p[0], IR_ROLE_WEIGHT).n, "SGD momentum", s);
    }
    for (int k = 0; k < 2; k++) {
        const rt_lane_stats ls = rt_plan_lane_stats(p[k]);
        if (batch)
            cr_expect(ls.batches > 0 && ls.batched_ops > ls.batches, "plan %d: %d batches of %d node ops", k,
                      ls.batches, ls.batched_ops);
        else
            cr_expect_eq(ls.batches, 0, "plan %d: batched without DARTSC_CUDA_BATCH", k);
    }
    if (batch) /* drop paths too, their seeds on the device */
        cr_expect(rd_dp_batches[0] > 0 && rd_dp_batches[1] > 0, "drop-path batches: %d forward, %d backward",
                  rd_dp_batches[0], rd_dp_batches[1]);
    poison_classifier(be, p[0]);
    rt_group w = rt_plan_group(p[0], IR_ROLE_WEIGHT);
    float *keep[2] = {dev_zeros(be, w.n), dev_zeros(be, w.n)};
    be->copy(be, keep[0], w.data, w.n);
    be->copy(be, keep[1], buf[0], w.n);
    float loss, corr;
    cr_assert_eq(sr_train_step(&st[0], buf[0], x, y, 0.01f, &tc, &loss, &corr), 0);
    cr_expect(rt_step_recorded(p[0], 0) && !isfinite(loss), "loss %g (replayed: %d)", loss, rt_step_recorded(p[0], 0));
    expect_same_dev(be, keep[0], w.data, w.n, "weights after NaN losses", 7);
    expect_same_dev(be, keep[1], buf[0], w.n, "SGD momentum after NaN losses", 7);
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    for (int k = 0; k < 2; k++) {
        be->free(be, keep[k]);
        sr_step_free(&st[k]);
        be->free(be, buf[k]);
        rt_plan_free(p[k]);
    }
    free(x);
    ir_net_free(&net);
    be->destroy(be);
}

/* ---- the backend's vector ops on their own ---- */
/* Gradient clipping on the device gives the bits of the host's sumsq + scale on the same
 * backend (the same two-pass sum, the same factor), with a bound that clips and one that
 * does not (then x is unchanged), and never synchronises (it is recorded in a graph). */
Test(cuda_vec, clip_norm_on_device_equals_host_clipping) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    cr_assert(gpu->clip_norm);
    const int64_t n = 70001;
    size_t bytes = (size_t)n * 4;
    float *x = malloc(bytes), *a = malloc(bytes), *b = malloc(bytes);
    tu_fill_uniform(x, n, -1.f, 1.f, 9);
    float *d1 = gpu->alloc(gpu, bytes), *d2 = gpu->alloc(gpu, bytes);
    const float bounds[2] = {5.0f, 1e6f}; /* ||x|| ~ 153: clips, then does not */
    for (int k = 0; k < 2; k++) {
        gpu->upload(gpu, d1, x, bytes);
        gpu->upload(gpu, d2, x, bytes);
        double norm = sqrt(gpu->sumsq(gpu, d1, n)), c = bounds[k] / (norm + 1e-6);
        if (c < 1.0) gpu->scale(gpu, d1, (float)c, n);
        cr_assert_eq(gpu->capture_begin(gpu), 0);
        gpu->clip_norm(gpu, d2, n, bounds[k]);
        void *g = gpu->capture_end(gpu);
        cr_assert(g, "clip_norm could not be recorded: %s", rt_cuda_last_error());
        gpu->replay(gpu, g);
        gpu->graph_free(gpu, g);
        gpu->download(gpu, a, d1, bytes);
        gpu->download(gpu, b, d2, bytes);
        cr_expect_arr_eq(a, b, bytes, "bound %g: device clipping differs from the host's", bounds[k]);
        if (k == 1) cr_expect_arr_eq(b, x, bytes, "a bound above the norm changed x");
    }
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    gpu->free(gpu, d1);
    gpu->free(gpu, d2);
    free(x); free(a); free(b);
    gpu->destroy(gpu);
}

/* clip_norm_to (#19: the weight step's guard) on the device, recorded in a graph: its x is
 * the bits of the GPU's own host clipping (sumsq + scale: the same two-pass sum) and its
 * norm the float of that sum's root, for a bound that clips, one that does not and none
 * (the norm only); against the CPU twin (kcpu_clip_norm_to: the same values summed in
 * another order, both in double) the norm and x agree to 2^-22 relative (the double sums
 * differ by ~1e-16 relative, so the float norm and the float factor differ by at most one
 * rounding, and x by at most one more). Special values: a norm finite beyond float's range
 * is FLT_MAX, NaN and infinity stay what they are, no values give 0 — as on the CPU. */
/* FairDARTS' zero-one gradient (backend zero_one_grad) against the CPU twin, which is the
 * host's arithmetic (test_search's step test): each element one double expression rounded
 * to float and added, exp the only function; CUDA's double exp is within 1 ulp of glibc's,
 * so an element may differ by its last bit at most: tolerance 2^-22 relative to the
 * largest element (a wrong factor or sign is O(1)). Alphas over [-6, 6] (sigmoid from
 * 0.0025 to 0.9975) and a recorded, replayed call (the search step records it). */
Test(cuda_vec, zero_one_grad_matches_its_cpu_twin) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err), *cpu = rt_backend_cpu_new();
    cr_assert(gpu, "%s", err);
    cr_assert(gpu->zero_one_grad && cpu->zero_one_grad);
    const int64_t n = 1000;
    const size_t bytes = (size_t)n * 4;
    float *al = malloc(bytes), *g0 = malloc(bytes), *gc = malloc(bytes), *gg = malloc(bytes);
    tu_fill_uniform(al, n, -6.f, 6.f, 23);
    tu_fill_uniform(g0, n, -1e-3f, 1e-3f, 29);
    float *da = gpu->alloc(gpu, bytes), *dg = gpu->alloc(gpu, bytes);
    gpu->upload(gpu, da, al, bytes);
    gpu->upload(gpu, dg, g0, bytes);
    cr_assert_eq(gpu->capture_begin(gpu), 0);
    gpu->zero_one_grad(gpu, dg, da, n, 10.0f);
    void *g = gpu->capture_end(gpu);
    cr_assert(g, "zero_one_grad could not be recorded: %s", rt_cuda_last_error());
    gpu->replay(gpu, g);
    gpu->replay(gpu, g); /* added twice */
    gpu->graph_free(gpu, g);
    gpu->download(gpu, gg, dg, bytes);
    memcpy(gc, g0, bytes);
    cpu->zero_one_grad(cpu, gc, al, n, 10.0f);
    cpu->zero_one_grad(cpu, gc, al, n, 10.0f);
    int64_t worst = 0;
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(gc[i]));
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)gg[i] - gc[i]) / mx;
        if (!(d <= e)) e = d, worst = i;
    }
    cr_expect(e <= 0x1p-22, "zero-one gradient differs from the CPU twin by %g of the largest (at %lld: %.9g vs %.9g)",
              e, (long long)worst, gg[worst], gc[worst]);
    cr_expect(mx > 1e-3, "the term changed nothing (largest %g)", mx);
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    gpu->free(gpu, da);
    gpu->free(gpu, dg);
    free(al); free(g0); free(gc); free(gg);
    cpu->destroy(cpu);
    gpu->destroy(gpu);
}

Test(cuda_vec, clip_norm_to_equals_host_clipping_and_its_cpu_twin) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err), *cpu = rt_backend_cpu_new();
    cr_assert(gpu, "%s", err);
    cr_assert(gpu->clip_norm_to && cpu->clip_norm_to);
    const int64_t n = 70001;
    size_t bytes = (size_t)n * 4;
    float *x = malloc(bytes), *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    tu_fill_uniform(x, n, -1.f, 1.f, 19);
    float *d1 = gpu->alloc(gpu, bytes), *d2 = gpu->alloc(gpu, bytes), *dn = gpu->alloc(gpu, 4);
    const float bounds[3] = {5.0f, 1e6f, 0.f}; /* ||x|| ~ 153: clips, does not, no clipping */
    for (int k = 0; k < 3; k++) {
        gpu->upload(gpu, d1, x, bytes);
        gpu->upload(gpu, d2, x, bytes);
        double norm = sqrt(gpu->sumsq(gpu, d1, n)), f = bounds[k] / (norm + 1e-6);
        if (bounds[k] > 0 && f < 1.0) gpu->scale(gpu, d1, (float)f, n);
        cr_assert_eq(gpu->capture_begin(gpu), 0);
        gpu->clip_norm_to(gpu, d2, n, bounds[k], dn);
        void *g = gpu->capture_end(gpu);
        cr_assert(g, "clip_norm_to could not be recorded: %s", rt_cuda_last_error());
        gpu->replay(gpu, g);
        gpu->graph_free(gpu, g);
        float gn, cn;
        gpu->download(gpu, a, d1, bytes);
        gpu->download(gpu, b, d2, bytes);
        gpu->download(gpu, &gn, dn, 4);
        cr_expect_arr_eq(a, b, bytes, "bound %g: clip_norm_to differs from the GPU's host clipping", bounds[k]);
        cr_expect(gn == (float)norm, "bound %g: norm %.9g, host %.17g", bounds[k], gn, norm);
        memcpy(c, x, bytes);
        cpu->clip_norm_to(cpu, c, n, bounds[k], &cn);
        cr_expect(fabs((double)gn - cn) <= 0x1p-22 * cn, "bound %g: norm %.9g, CPU twin %.9g", bounds[k], gn, cn);
        int64_t worst = 0;
        double e = tu_max_rel_err(b, c, n, 1e-30, &worst);
        cr_expect(e <= 0x1p-22, "bound %g: x differs from the CPU twin by %g (at %lld)", bounds[k], e, (long long)worst);
    }
    const float special[4][2] = {{3e38f, 3e38f}, {1.f, NAN}, {1.f, INFINITY}, {0.f, 0.f}};
    for (int k = 0; k < 4; k++) {
        const int64_t m = k == 3 ? 0 : 2;
        float gn = -1.f, cn = -2.f, h[2];
        memcpy(h, special[k], sizeof h);
        gpu->upload(gpu, d2, special[k], sizeof special[k]);
        gpu->clip_norm_to(gpu, d2, m, 0.f, dn);
        gpu->download(gpu, &gn, dn, 4);
        cpu->clip_norm_to(cpu, h, m, 0.f, &cn);
        cr_expect(memcmp(&gn, &cn, 4) == 0 || (isnan(gn) && isnan(cn)), "case %d: norm %g, CPU twin %g", k, gn, cn);
        cr_expect(k ? 1 : gn == FLT_MAX, "a norm beyond float's range: %g", gn);
    }
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    gpu->free(gpu, d1);
    gpu->free(gpu, d2);
    gpu->free(gpu, dn);
    free(x); free(a); free(b); free(c);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
}

/* The second-order step's radius on the device (hvp_eps) gives the bits the host computes
 * from the same backend's sumsq (R = (float)(0.01 / ||v||), the scale eta / 2R and the
 * bug's eta R / 2), v = 0 included; axpy_dev / scale_dev give axpy / scale's bits; all of
 * it records into a graph (no host round trip). */
Test(cuda_vec, hvp_eps_on_device_equals_host) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    cr_assert(gpu->hvp_eps && gpu->axpy_dev && gpu->scale_dev);
    const int64_t n = 70001;
    size_t bytes = (size_t)n * 4;
    float *v = malloc(bytes), *y = malloc(bytes), *a = malloc(bytes), *b = malloc(bytes);
    tu_fill_uniform(v, n, -1.f, 1.f, 11);
    tu_fill_uniform(y, n, -1.f, 1.f, 12);
    float *dv = gpu->alloc(gpu, bytes), *d1 = gpu->alloc(gpu, bytes), *d2 = gpu->alloc(gpu, bytes);
    float *eps = gpu->alloc(gpu, 4 * sizeof(float)); /* eps[3]: eta, read on the device */
    const float eta = 0.025f;
    gpu->upload(gpu, eps + 3, &eta, sizeof eta);
    for (int k = 0; k < 3; k++) { /* v, v with the bug's form, v = 0 */
        const int bug = k == 1;
        if (k == 2) memset(v, 0, bytes);
        gpu->upload(gpu, dv, v, bytes);
        double vn = sqrt(gpu->sumsq(gpu, dv, n));
        float R = (float)(0.01 / (vn > 0 ? vn : 1e-12));
        float want[3] = {R, -R, bug ? eta * R / 2.0f : eta / (2.0f * R)}, got[3];
        cr_assert_eq(gpu->capture_begin(gpu), 0);
        gpu->hvp_eps(gpu, eps, dv, n, 0.01, eps + 3, bug);
        void *g = gpu->capture_end(gpu);
        cr_assert(g, "hvp_eps could not be recorded: %s", rt_cuda_last_error());
        gpu->replay(gpu, g);
        gpu->graph_free(gpu, g);
        gpu->download(gpu, got, eps, sizeof got);
        cr_expect_arr_eq(got, want, sizeof got, "case %d: R %.9g/%.9g, scale %.9g/%.9g", k, got[0], want[0], got[2],
                         want[2]);
        /* y + R v and y * scale, by the device scalar and by the host's */
        gpu->upload(gpu, d1, y, bytes);
        gpu->upload(gpu, d2, y, bytes);
        gpu->axpy(gpu, d1, want[1], dv, n);
        gpu->axpy_dev(gpu, d2, eps + 1, dv, n);
        gpu->scale(gpu, d1, want[2], n);
        gpu->scale_dev(gpu, d2, eps + 2, n);
        gpu->download(gpu, a, d1, bytes);
        gpu->download(gpu, b, d2, bytes);
        cr_expect_arr_eq(a, b, bytes, "case %d: axpy_dev / scale_dev differ from axpy / scale", k);
    }
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    gpu->free(gpu, dv); gpu->free(gpu, d1); gpu->free(gpu, d2); gpu->free(gpu, eps);
    free(v); free(y); free(a); free(b);
    gpu->destroy(gpu);
}

/* Uploads return before the device copies (staged through pinned memory): the host buffer
 * is rewritten right after each upload, uploads are queued behind device work, the staging
 * ring wraps many times (more than 64 regions in flight, more than its 32 MiB in all), and
 * a large upload takes the synchronous path; every device buffer must hold what the host
 * buffer held at its upload. */
Test(cuda_vec, staged_uploads_keep_each_uploads_data) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    enum { NB = 150 };
    const int64_t n = 200003; /* 0.8 MB: 150 of them are 120 MB through the 32 MiB ring */
    size_t bytes = (size_t)n * 4;
    float *h = malloc(bytes), *got = malloc(bytes);
    float *big = gpu->alloc(gpu, bytes * 16), *d[NB];
    for (int i = 0; i < NB; i++) cr_assert((d[i] = gpu->alloc(gpu, bytes)));
    for (int i = 0; i < NB; i++) {
        if (i % 10 == 0) /* device work ahead of the copies, so they are queued */
            for (int r = 0; r < 8; r++) gpu->scale(gpu, big, 1.0f, n * 16);
        for (int64_t k = 0; k < n; k++) h[k] = (float)(i * 7 + (k % 1000));
        gpu->upload(gpu, d[i], h, bytes);
    }
    float *hb = malloc(bytes * 16);
    for (int64_t k = 0; k < n * 16; k++) hb[k] = (float)(k % 977);
    gpu->upload(gpu, big, hb, bytes * 16); /* 12.8 MB: above the staged size */
    for (int64_t k = 0; k < n * 16; k++) hb[k] = -1.0f;
    for (int i = 0; i < NB; i++) {
        gpu->download(gpu, got, d[i], bytes);
        int bad = 0;
        for (int64_t k = 0; k < n && !bad; k++) bad = got[k] != (float)(i * 7 + (k % 1000));
        cr_expect(!bad, "upload %d does not hold its data", i);
    }
    gpu->download(gpu, hb, big, bytes * 16);
    int bad = 0;
    for (int64_t k = 0; k < n * 16 && !bad; k++) bad = hb[k] != (float)(k % 977);
    cr_expect(!bad, "the large upload does not hold its data");
    cr_expect(!rt_cuda_last_error(), "%s", rt_cuda_last_error());
    for (int i = 0; i < NB; i++) gpu->free(gpu, d[i]);
    gpu->free(gpu, big);
    free(h); free(got); free(hb);
    gpu->destroy(gpu);
}

Test(cuda_vec, axpy_copy_scale_sumsq_sgd_adam_match_cpu) {
    char err[256];
    rt_backend *cpu = rt_backend_cpu_new(), *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    const int64_t n = 100003; /* not a multiple of any block size */
    size_t bytes = (size_t)n * 4;
    float *x = malloc(bytes), *y = malloc(bytes), *b = malloc(bytes), *m = malloc(bytes), *v = malloc(bytes);
    float *got = malloc(bytes);
    tu_fill_uniform(x, n, -1.f, 1.f, 1);
    tu_fill_uniform(y, n, -1.f, 1.f, 2);
    tu_fill_uniform(b, n, -0.1f, 0.1f, 3);
    tu_fill_uniform(m, n, -0.1f, 0.1f, 4);
    tu_fill_uniform(v, n, 0.f, 0.01f, 5);
    float *dx = gpu->alloc(gpu, bytes), *dy = gpu->alloc(gpu, bytes), *db = gpu->alloc(gpu, bytes);
    float *dm = gpu->alloc(gpu, bytes), *dv = gpu->alloc(gpu, bytes);
    gpu->upload(gpu, dx, x, bytes);
    gpu->upload(gpu, dy, y, bytes);
    gpu->upload(gpu, db, b, bytes);
    gpu->upload(gpu, dm, m, bytes);
    gpu->upload(gpu, dv, v, bytes);
    /* sumsq: double on both sides, different association: ~1e-15 relative */
    double sc = cpu->sumsq(cpu, x, n), sg = gpu->sumsq(gpu, dx, n);
    cr_expect(fabs(sg - sc) <= 1e-10 * sc, "sumsq cuda %.17g cpu %.17g", sg, sc);
    /* elementwise: identical arithmetic up to fused multiply-add: 1e-6 */
    cpu->axpy(cpu, y, -0.3f, x, n);
    gpu->axpy(gpu, dy, -0.3f, dx, n);
    gpu->download(gpu, got, dy, bytes);
    expect_close("axpy", got, y, n, 1e-6);
    cpu->scale(cpu, y, 1.7f, n);
    gpu->scale(gpu, dy, 1.7f, n);
    gpu->download(gpu, got, dy, bytes);
    expect_close("scale", got, y, n, 1e-6);
    cpu->sgd_step(cpu, y, b, x, n, 0.1f, 0.9f, 1e-3f);
    gpu->sgd_step(gpu, dy, db, dx, n, 0.1f, 0.9f, 1e-3f);
    gpu->download(gpu, got, dy, bytes);
    expect_close("sgd w", got, y, n, 1e-6);
    gpu->download(gpu, got, db, bytes);
    expect_close("sgd momentum", got, b, n, 1e-6);
    cpu->adam_step(cpu, y, m, v, x, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, 3);
    gpu->adam_step(gpu, dy, dm, dv, dx, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, 3);
    gpu->download(gpu, got, dy, bytes);
    expect_close("adam w", got, y, n, 1e-6);
    gpu->download(gpu, got, dv, bytes);
    expect_close("adam v", got, v, n, 1e-6);
    cpu->copy(cpu, y, x, n);
    gpu->copy(gpu, dy, dx, n);
    gpu->download(gpu, got, dy, bytes);
    cr_expect_arr_eq(got, y, bytes, "copy");
    gpu->synchronize(gpu);
    cr_expect(!rt_cuda_last_error(), "CUDA error: %s", rt_cuda_last_error());
    gpu->free(gpu, dx); gpu->free(gpu, dy); gpu->free(gpu, db); gpu->free(gpu, dm); gpu->free(gpu, dv);
    free(x); free(y); free(b); free(m); free(v); free(got);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
}

/* ---- one-launch reductions (DARTSC_CUDA_ONE_LAUNCH; kcuda_set_one_launch) ----
 * The depthwise filter gradient (blocked and staged-plane kernels, with and without a
 * fused ReLU), the own 1x1 filter gradient and the batch norms (training forward, the
 * deferred batch norm's coefficients, backward with and without dx, scaled and written)
 * with their reductions finished by the last block must give the bits of the two-launch
 * path: three eager launches in a row (a counter not put back to 0 leaves no block last
 * in the next launch, and the outputs unfinished) and four replays of one recorded graph;
 * where the second launch is gone the recording has one kernel node instead of two. The
 * two-launch results are compared with the CPU twin (kernels/cpu) at this file's
 * tolerances (SAME_ORDER for the depthwise gradient, LIBRARY for the own 1x1, BN for the
 * batch norms). Shapes: one range per channel (600 channels: G = 1), the largest group
 * count (one channel: 528 ranges), value counts that are no multiple of the range size.
 * The kernels are called through kcuda directly on a stream of the test's own (the
 * backend made the library state and lane 0). */

/* Batched pooling (kcuda_*pool_*_batch): 3 problems with their own inputs, output
 * gradients and pre-filled input gradients (the backwards add), one launch per kernel:
 * each problem's output the bits of its own single call. Max 3x3 stride 1 and 2, avg the
 * same; the max backward's argmax buffers per problem. */
static void pool_batch_case(int avg, int stride) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    kpool_desc d = {.N = 2, .C = 3, .H = 9, .W = 7, .k = 3, .stride = stride, .pad = 1};
    d.P = (d.H + 2 * d.pad - d.k) / d.stride + 1;
    d.Q = (d.W + 2 * d.pad - d.k) / d.stride + 1;
    const int64_t ni = (int64_t)d.N * d.C * d.H * d.W, no = (int64_t)d.N * d.C * d.P * d.Q;
    enum { NB = 3 };
    float *x[NB], *dy[NB], *y1[NB], *y2[NB], *dx1[NB], *dx2[NB];
    float *h = malloc((size_t)ni * 4), *h2 = malloc((size_t)ni * 4);
    for (int i = 0; i < NB; i++) {
        float **bufs[6] = {&x[i], &dx1[i], &dx2[i], &dy[i], &y1[i], &y2[i]};
        for (int b = 0; b < 6; b++) *bufs[b] = gpu->alloc(gpu, (size_t)(b < 3 ? ni : no) * 4);
        tu_fill_uniform(h, ni, -1.f, 1.f, 70 + 3 * (unsigned)i);
        if (i == 1) h[5] = h[6]; /* a tie */
        gpu->upload(gpu, x[i], h, (size_t)ni * 4);
        tu_fill_uniform(h, ni, -1.f, 1.f, 71 + 3 * (unsigned)i);
        gpu->upload(gpu, dx1[i], h, (size_t)ni * 4);
        gpu->upload(gpu, dx2[i], h, (size_t)ni * 4);
        tu_fill_uniform(h, no, -1.f, 1.f, 72 + 3 * (unsigned)i);
        gpu->upload(gpu, dy[i], h, (size_t)no * 4);
    }
    gpu->synchronize(gpu); /* the uploads (the backend's stream) before the kernels (the test's) */
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    for (int i = 0; i < NB; i++) {
        if (avg) {
            kcuda_avgpool_forward(y1[i], x[i], &d, s);
            kcuda_avgpool_backward(dx1[i], dy[i], &d, s);
        } else {
            kcuda_maxpool_forward(y1[i], x[i], &d, s);
            kcuda_maxpool_backward(dx1[i], dy[i], x[i], &d, s);
        }
    }
    if (avg) {
        kcuda_avgpool_forward_batch(NB, y2, (const float *const *)x, &d, s);
        kcuda_avgpool_backward_batch(NB, dx2, (const float *const *)dy, &d, s);
    } else {
        kcuda_maxpool_forward_batch(NB, y2, (const float *const *)x, &d, s);
        kcuda_maxpool_backward_batch(NB, dx2, (const float *const *)dy, (const float *const *)x, &d, s);
    }
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    for (int i = 0; i < NB; i++) {
        gpu->download(gpu, h, y1[i], (size_t)no * 4);
        gpu->download(gpu, h2, y2[i], (size_t)no * 4);
        cr_expect_arr_eq(h, h2, (size_t)no * 4, "%s pool stride %d: problem %d's output differs batched", avg ? "avg" : "max",
                         stride, i);
        gpu->download(gpu, h, dx1[i], (size_t)ni * 4);
        gpu->download(gpu, h2, dx2[i], (size_t)ni * 4);
        cr_expect_arr_eq(h, h2, (size_t)ni * 4, "%s pool stride %d: problem %d's input gradient differs batched",
                         avg ? "avg" : "max", stride, i);
    }
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    for (int i = 0; i < NB; i++) {
        float *bufs[6] = {x[i], dx1[i], dx2[i], dy[i], y1[i], y2[i]};
        for (int b = 0; b < 6; b++) gpu->free(gpu, bufs[b]);
    }
    free(h);
    free(h2);
    gpu->destroy(gpu);
}
Test(cuda_batch_pool, max_3x3_stride1) { pool_batch_case(0, 1); }
Test(cuda_batch_pool, max_3x3_stride2) { pool_batch_case(0, 2); }
Test(cuda_batch_pool, avg_3x3_stride1) { pool_batch_case(1, 1); }
Test(cuda_batch_pool, avg_3x3_stride2) { pool_batch_case(1, 2); }

/* A pool that writes its output's batch statistics as it writes the output
 * (kcuda_pool_forward_stats; runtime/plan.c, DARTSC_POOL_BN_STATS): for 3 problems, alone
 * and batched in one launch, the output has the bits of the pool's own kernel and the
 * statistics (mean [c], biased variance [C + c] in double) the bits a batch norm of that
 * output writes for the batch norms of the same input (kcuda_bn_train_shared's stat_out),
 * the same in the two-launch and the one-launch batch norm; the statistics also against
 * the host's double sums of the output (relative 1e-12: double sums of 10^3 to 10^4 floats
 * in another order agree to ~1e-15), so that two equal wrong answers cannot pass. And two
 * batch norms of each output whose forwards the pool runs (takers: one affine-free, one
 * affine with its own eps and momentum): their coefficients, saved and running statistics
 * the bits of their own forwards taking the statistics (kcuda_bn_train_shared with
 * stat_in). Shapes of several ragged ranges per channel (G 5 and 2), a tie for the max
 * pool, and a 5x5 window (the general loops). */
static void pool_stats_case(int avg, int k, int stride, int H) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    kpool_desc d = {.N = 4, .C = 3, .H = H, .W = H - 2, .k = k, .stride = stride, .pad = k / 2};
    d.P = (d.H + 2 * d.pad - d.k) / d.stride + 1;
    d.Q = (d.W + 2 * d.pad - d.k) / d.stride + 1;
    const kbn_desc bd = {.N = d.N, .C = d.C, .HW = d.P * d.Q, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t ni = (int64_t)d.N * d.C * d.H * d.W, no = (int64_t)d.N * d.C * d.P * d.Q, C = d.C;
    cr_assert(kcuda_pool_stats_ok(&d), "a plain pool refused");
    enum { NB = 3 };
    float *x[NB], *y1[NB], *y2[NB], *y3[NB], *coef[NB];
    double *st[4][NB]; /* batch norm two launches, one launch; pool alone, batched */
    float *h = malloc((size_t)ni * 4), *h2 = malloc((size_t)ni * 4);
    for (int i = 0; i < NB; i++) {
        x[i] = gpu->alloc(gpu, (size_t)ni * 4);
        y1[i] = gpu->alloc(gpu, (size_t)no * 4);
        y2[i] = gpu->alloc(gpu, (size_t)no * 4);
        y3[i] = gpu->alloc(gpu, (size_t)no * 4);
        coef[i] = gpu->alloc(gpu, (size_t)3 * C * 4);
        for (int v = 0; v < 4; v++) st[v][i] = gpu->alloc(gpu, (size_t)2 * C * sizeof(double));
        tu_fill_uniform(h, ni, -1.f, 1.f, 170 + 3 * (unsigned)i);
        for (int64_t j = 0; j < ni; j += 5) h[j] += 3.0f; /* a mean far from 0 */
        if (i == 1) h[5] = h[6];                       /* a tie */
        gpu->upload(gpu, x[i], h, (size_t)ni * 4);
    }
    /* takers: per problem, taker and set (0 their own forwards, 1 run by the pool alone, 2
       by the batched pools) 7 C floats: coefficients, saved mean and inverse std, running
       mean and variance (these from the same start in every set) */
    enum { NT = 2 };
    float *tb[NB][NT][3], *gb[2];
    kbn_taker tk[3][NB * NT];
    const kbn_desc tdesc[NT] = {bd, {.N = d.N, .C = d.C, .HW = d.P * d.Q, .eps = 1e-3f, .momentum = 0.3f}};
    for (int q = 0; q < 2; q++) {
        gb[q] = gpu->alloc(gpu, (size_t)C * 4);
        tu_fill_uniform(h, C, 0.5f, 1.5f, 190 + (unsigned)q);
        gpu->upload(gpu, gb[q], h, (size_t)C * 4);
    }
    for (int i = 0; i < NB; i++)
        for (int t = 0; t < NT; t++) {
            tu_fill_uniform(h, 7 * C, -1.f, 1.f, 200 + 2 * (unsigned)i + (unsigned)t);
            for (int c = 0; c < C; c++) h[6 * C + c] = 0.5f + fabsf(h[6 * C + c]); /* a variance */
            for (int v = 0; v < 3; v++) {
                float *b = tb[i][t][v] = gpu->alloc(gpu, (size_t)7 * C * 4);
                gpu->upload(gpu, b, h, (size_t)7 * C * 4);
                tk[v][i * NT + t] = (kbn_taker){b, b + 3 * C, b + 4 * C, b + 5 * C, b + 6 * C, t ? gb[0] : NULL,
                                                t ? gb[1] : NULL, tdesc[t].eps, tdesc[t].momentum};
            }
        }
    gpu->synchronize(gpu);
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    for (int i = 0; i < NB; i++) {
        if (avg) kcuda_avgpool_forward(y1[i], x[i], &d, s);
        else kcuda_maxpool_forward(y1[i], x[i], &d, s);
        for (int one = 0; one < 2; one++) {
            kcuda_set_one_launch(one);
            kcuda_bn_train_shared(1, NULL, &coef[i], NULL, NULL, NULL, NULL, (const float *const *)&y1[i], NULL, NULL,
                                  &st[one][i], NULL, &bd, s);
        }
        kcuda_set_one_launch(0);
        for (int t = 0; t < NT; t++) { /* the takers' own forwards from the batch norm's statistics */
            const kbn_taker *o = &tk[0][i * NT + t];
            kcuda_bn_train_shared(1, NULL, &o->coef, &o->save_mean, &o->save_invstd, &o->running_mean, &o->running_var,
                                  (const float *const *)&y1[i], &o->gamma, &o->beta, NULL,
                                  (const double *const *)&st[0][i], &tdesc[t], s);
        }
        kcuda_pool_forward_stats(1, !avg, &y2[i], (const float *const *)&x[i], &st[2][i], NT, &tk[1][i * NT], &d, s);
    }
    kcuda_pool_forward_stats(NB, !avg, y3, (const float *const *)x, st[3], NT, tk[2], &d, s);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    const char *name = avg ? "avg" : "max";
    for (int i = 0; i < NB; i++) {
        gpu->download(gpu, h, y1[i], (size_t)no * 4);
        for (int b = 0; b < 2; b++) {
            gpu->download(gpu, h2, b ? y3[i] : y2[i], (size_t)no * 4);
            cr_expect_arr_eq(h, h2, (size_t)no * 4, "%s pool %dx%d stride %d: problem %d's output differs (%s)", name, k,
                             k, stride, i, b ? "batched" : "alone");
        }
        double ref[4][2 * 3], host[2 * 3];
        for (int v = 0; v < 4; v++) gpu->download(gpu, ref[v], st[v][i], (size_t)2 * C * sizeof(double));
        for (int c = 0; c < C; c++) { /* the host's statistics of the output, two passes in double */
            double sum = 0, ss = 0;
            for (int n = 0; n < d.N; n++)
                for (int j = 0; j < bd.HW; j++) sum += h[((int64_t)n * C + c) * bd.HW + j];
            const double mean = sum / ((double)d.N * bd.HW);
            for (int n = 0; n < d.N; n++)
                for (int j = 0; j < bd.HW; j++) {
                    const double t = h[((int64_t)n * C + c) * bd.HW + j] - mean;
                    ss += t * t;
                }
            host[c] = mean;
            host[C + c] = ss / ((double)d.N * bd.HW);
        }
        for (int c = 0; c < 2 * C; c++)
            cr_expect(fabs(ref[0][c] - host[c]) <= 1e-12 * fmax(1.0, fabs(host[c])) && host[C + c % C] > 0,
                      "%s pool: problem %d statistic %d: %.17g, host %.17g", name, i, c, ref[0][c], host[c]);
        static const char *what[4] = {"the two-launch batch norm", "the one-launch batch norm", "the pool alone",
                                      "the batched pools"};
        for (int v = 1; v < 4; v++)
            cr_expect_arr_eq(ref[0], ref[v], (size_t)2 * C * sizeof(double),
                             "%s pool %dx%d stride %d: problem %d's statistics from %s differ from %s's", name, k, k,
                             stride, i, what[v], what[0]);
        for (int t = 0; t < NT; t++) {
            gpu->download(gpu, h, tb[i][t][0], (size_t)7 * C * 4);
            for (int c = 0; c < 3 * C; c++) /* the coefficients: the mean, the scale, the shift */
                cr_expect(isfinite(h[c]) && (c < C || c >= 2 * C || h[c] > 0), "taker %d coefficient %d: %g", t, c, h[c]);
            for (int v = 1; v < 3; v++) {
                gpu->download(gpu, h2, tb[i][t][v], (size_t)7 * C * 4);
                cr_expect_arr_eq(h, h2, (size_t)7 * C * 4,
                                 "%s pool %dx%d stride %d: problem %d taker %d: what the pool%s wrote differs from its "
                                 "own forward's",
                                 name, k, k, stride, i, t, v == 2 ? "s batched" : "");
            }
        }
    }
    kpool_desc wide = {.N = 1, .C = 16385 /* KCUDA_COUNT_CAP + 1 */, .H = 1, .W = 1, .P = 1, .Q = 1, .k = 1, .stride = 1};
    cr_expect(!kcuda_pool_stats_ok(&wide), "more channels than the lane's counters accepted");
    for (int i = 0; i < NB; i++) {
        float *bufs[5] = {x[i], y1[i], y2[i], y3[i], coef[i]};
        for (int b = 0; b < 5; b++) gpu->free(gpu, bufs[b]);
        for (int v = 0; v < 4; v++) gpu->free(gpu, st[v][i]);
        for (int t = 0; t < NT; t++)
            for (int v = 0; v < 3; v++) gpu->free(gpu, tb[i][t][v]);
    }
    for (int q = 0; q < 2; q++) gpu->free(gpu, gb[q]);
    free(h);
    free(h2);
    gpu->destroy(gpu);
}
Test(cuda_pool_stats, max_3x3_stride1_gives_the_bits_of_pool_then_batch_norm) { pool_stats_case(0, 3, 1, 33); }
Test(cuda_pool_stats, max_3x3_stride2_gives_the_bits_of_pool_then_batch_norm) { pool_stats_case(0, 3, 2, 33); }
Test(cuda_pool_stats, avg_3x3_stride1_gives_the_bits_of_pool_then_batch_norm) { pool_stats_case(1, 3, 1, 33); }
Test(cuda_pool_stats, avg_5x5_stride2_gives_the_bits_of_pool_then_batch_norm) { pool_stats_case(1, 5, 2, 21); }

/* A batch norm's backward on the sum of its own and up to KCUDA_BN_MORE further output
 * gradients, each scaled by a device scalar or not (kcuda_bn_backward_sum: the runtime's
 * summed batch norms, DARTSC_SUM_BN_GRADS): the bits of the plain backward on a buffer
 * holding that sum computed on the host in the same order (float products and sums, no
 * FMA: this file is compiled with -ffp-contract=off), dx written and added to, with and
 * without affine parameters (dgamma, dbeta: the same bits too), alone and NB problems
 * batched (each with its own count of further gradients, one without any), in two
 * launches and in one (kcuda_set_one_launch); and more than KCUDA_BN_MORE refused. */
static void bn_sum_case(int N, int C, int HW, int affine) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    const kbn_desc bd = {.N = N, .C = C, .HW = HW, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t nv = (int64_t)N * C * HW;
    enum { NB = 4, NG = 1 + KCUDA_BN_MORE };
    /* per problem: x, dy[NG], the host's sum, dx (ref, alone, batched) x 2 modes; mean,
       invstd, gamma; dgamma/dbeta (ref, alone, batched) */
    float *x[NB], *dy[NB][NG], *gsum[NB], *dx[NB][3], *mean[NB], *inv[NB], *gam[NB], *dgb[NB][3], *sc[NB][NG];
    float *h = malloc((size_t)nv * 4), *hs = malloc((size_t)nv * 4), *h2 = malloc((size_t)nv * 4), *hd = malloc((size_t)nv * 4);
    cr_assert(h && hs && h2 && hd);
    int nmore[NB];
    kbn_more mo[NB];
    for (int i = 0; i < NB; i++) {
        nmore[i] = i == 1 ? 0 : 1 + (i + 2) % KCUDA_BN_MORE; /* 3, none, 2, 3 */
        x[i] = gpu->alloc(gpu, (size_t)nv * 4);
        gsum[i] = gpu->alloc(gpu, (size_t)nv * 4);
        tu_fill_uniform(h, nv, -2.f, 2.f, 300 + (unsigned)i);
        gpu->upload(gpu, x[i], h, (size_t)nv * 4);
        float hc[3 * 64];
        cr_assert(C <= 64);
        tu_fill_uniform(hc, C, -0.2f, 0.2f, 310 + (unsigned)i);
        tu_fill_uniform(hc + C, C, 0.5f, 2.0f, 320 + (unsigned)i);
        tu_fill_uniform(hc + 2 * C, C, 0.5f, 1.5f, 330 + (unsigned)i);
        mean[i] = gpu->alloc(gpu, (size_t)C * 4);
        inv[i] = gpu->alloc(gpu, (size_t)C * 4);
        gam[i] = gpu->alloc(gpu, (size_t)C * 4);
        gpu->upload(gpu, mean[i], hc, (size_t)C * 4);
        gpu->upload(gpu, inv[i], hc + C, (size_t)C * 4);
        gpu->upload(gpu, gam[i], hc + 2 * C, (size_t)C * 4);
        for (int v = 0; v < 3; v++) {
            dx[i][v] = gpu->alloc(gpu, (size_t)nv * 4);
            dgb[i][v] = gpu->alloc(gpu, (size_t)2 * C * 4);
        }
        /* the sum on the host: term 0, then each further term added, in order */
        for (int k = 0; k < NG; k++) {
            dy[i][k] = gpu->alloc(gpu, (size_t)nv * 4);
            sc[i][k] = gpu->alloc(gpu, 4);
            tu_fill_uniform(h2, nv, -1.f, 1.f, 340 + 8 * (unsigned)i + (unsigned)k);
            gpu->upload(gpu, dy[i][k], h2, (size_t)nv * 4);
            const float w = 0.3f + 0.17f * (float)k + 0.05f * (float)i;
            gpu->upload(gpu, sc[i][k], &w, 4);
            const int scaled = (k + i) % 2 == 0; /* some terms unscaled (an ADD's gradient) */
            if (k > nmore[i]) continue;
            for (int64_t j = 0; j < nv; j++) {
                const float t = scaled ? w * h2[j] : h2[j];
                hs[j] = k == 0 ? t : hs[j] + t;
            }
            if (k > 0) {
                mo[i].dy[k - 1] = dy[i][k];
                mo[i].dys[k - 1] = scaled ? sc[i][k] : NULL;
            }
        }
        mo[i].n = nmore[i];
        gpu->upload(gpu, gsum[i], hs, (size_t)nv * 4);
    }
    const float *dys0[NB];
    for (int i = 0; i < NB; i++) dys0[i] = i % 2 == 0 ? sc[i][0] : NULL;
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    tu_fill_uniform(hd, nv, -1.f, 1.f, 399); /* what dx holds before an accumulating backward */
    for (int one = 0; one < 2; one++)
        for (int acc = 0; acc < 2; acc++) {
            kcuda_set_one_launch(one);
            for (int i = 0; i < NB; i++)
                for (int v = 0; v < 3; v++) {
                    gpu->upload(gpu, dx[i][v], hd, (size_t)nv * 4);
                    gpu->memset0(gpu, dgb[i][v], (size_t)2 * C * 4);
                }
            float *ddx[3][NB], *dg[3][NB], *db[3][NB];
            for (int i = 0; i < NB; i++)
                for (int v = 0; v < 3; v++) {
                    ddx[v][i] = dx[i][v];
                    dg[v][i] = affine ? dgb[i][v] : NULL;
                    db[v][i] = affine ? dgb[i][v] + C : NULL;
                }
            for (int i = 0; i < NB; i++) {
                (acc ? kcuda_bn_backward : kcuda_bn_backward_set)(ddx[0][i], dg[0][i], db[0][i], gsum[i], x[i],
                                                                   affine ? gam[i] : NULL, mean[i], inv[i], &bd, s);
                kcuda_bn_backward_sum(ddx[1][i], dg[1][i], db[1][i], dy[i][0], dys0[i], &mo[i], x[i],
                                      affine ? gam[i] : NULL, mean[i], inv[i], &bd, acc, s);
            }
            const float *dyb[NB], *xb[NB], *gb[NB], *mb[NB], *ib[NB];
            for (int i = 0; i < NB; i++) dyb[i] = dy[i][0], xb[i] = x[i], gb[i] = gam[i], mb[i] = mean[i], ib[i] = inv[i];
            kcuda_bn_backward_sum_batch(NB, ddx[2], affine ? dg[2] : NULL, affine ? db[2] : NULL, dyb, dys0, mo, xb,
                                        affine ? gb : NULL, mb, ib, &bd, !acc, s);
            cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
            cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
            for (int i = 0; i < NB; i++) {
                gpu->download(gpu, h, dx[i][0], (size_t)nv * 4);
                double big = 0;
                for (int64_t j = 0; j < nv; j++) big = fmax(big, fabs(h[j]));
                cr_expect(big > 0 && isfinite(big), "problem %d: dx %g", i, big);
                float hg[2][2 * 64];
                gpu->download(gpu, hg[0], dgb[i][0], (size_t)2 * C * 4);
                for (int v = 1; v < 3; v++) {
                    gpu->download(gpu, h2, dx[i][v], (size_t)nv * 4);
                    cr_expect_arr_eq(h, h2, (size_t)nv * 4,
                                     "(%d, %d, %d)%s, problem %d (%d further): dx %s differs from the backward of the "
                                     "summed buffer (%s, %s)",
                                     N, C, HW, affine ? " affine" : "", i, nmore[i], v == 1 ? "alone" : "batched",
                                     one ? "one launch" : "two launches", acc ? "added" : "written");
                    gpu->download(gpu, hg[1], dgb[i][v], (size_t)2 * C * 4);
                    cr_expect_arr_eq(hg[0], hg[1], (size_t)2 * C * 4, "problem %d: dgamma, dbeta %s differ", i,
                                     v == 1 ? "alone" : "batched");
                }
            }
        }
    kcuda_set_one_launch(0);
    kbn_more bad = mo[0];
    bad.n = KCUDA_BN_MORE + 1;
    kcuda_bn_backward_sum(dx[0][1], NULL, NULL, dy[0][0], NULL, &bad, x[0], NULL, mean[0], inv[0], &bd, 1, s);
    cr_expect(kcuda_last_error() && strstr(kcuda_last_error(), "KCUDA_BN_MORE"), "more than KCUDA_BN_MORE accepted: %s",
              kcuda_last_error() ? kcuda_last_error() : "no error");
    kcuda_clear_error();
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    for (int i = 0; i < NB; i++) {
        float *bufs[6] = {x[i], gsum[i], mean[i], inv[i], gam[i], NULL};
        for (int b = 0; bufs[b]; b++) gpu->free(gpu, bufs[b]);
        for (int v = 0; v < 3; v++) gpu->free(gpu, dx[i][v]), gpu->free(gpu, dgb[i][v]);
        for (int k = 0; k < NG; k++) gpu->free(gpu, dy[i][k]), gpu->free(gpu, sc[i][k]);
    }
    free(h);
    free(hs);
    free(h2);
    free(hd);
    gpu->destroy(gpu);
}
Test(cuda_bn_sum, backward_of_summed_gradients_gives_the_bits_of_the_summed_buffer) { bn_sum_case(4, 3, 64, 0); }
/* large enough for several blocks a channel (the partials' combine), odd sizes, affine */
Test(cuda_bn_sum, backward_of_summed_gradients_several_blocks_a_channel_affine) { bn_sum_case(8, 5, 1089, 1); }

/* ---- sums of n tensors and concat in one launch (kcuda_sum_*, kcuda_concat_*): the
 * bits of the launches they replaced (a copy, axpys and a scale; a 2-D copy or an add per
 * concatenated input), compared with memcmp: the same expressions element by element. ---- */
static float *nx_up(rt_backend *g, const float *h, int64_t n) {
    float *d = g->alloc(g, (size_t)n * 4);
    cr_assert(d);
    g->upload(g, d, h, (size_t)n * 4);
    return d;
}
static void nx_expect_same(rt_backend *g, const float *a, const float *b, int64_t n, const char *what, int k) {
    float *ha = malloc((size_t)n * 4), *hb = malloc((size_t)n * 4);
    g->download(g, ha, a, (size_t)n * 4);
    g->download(g, hb, b, (size_t)n * 4);
    cr_expect_arr_eq(ha, hb, (size_t)n * 4, "%s (%d): the one launch differs from the launches it replaced", what, k);
    free(ha);
    free(hb);
}

/* The backend (for its allocations and library handles) and a stream of the test's own. */
static rt_backend *nx_begin(cudaStream_t *s) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    cr_assert_eq(cudaStreamCreate(s), cudaSuccess);
    return gpu;
}
static void nx_end(rt_backend *gpu, cudaStream_t s) {
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    gpu->destroy(gpu);
}

Test(cuda_nary, sums_equal_copy_axpy_scale) {
    cudaStream_t s;
    rt_backend *gpu = nx_begin(&s);
    enum { NX = 5 };
    const int64_t len = 997;
    float *h = malloc((size_t)len * 4), *xs[NX], *g1[NX], *g2[NX];
    for (int k = 0; k < NX; k++) {
        tu_fill_uniform(h, len, -2.f, 2.f, 300 + (unsigned)k);
        xs[k] = nx_up(gpu, h, len);
        tu_fill_uniform(h, len, -1.f, 1.f, 310 + (unsigned)k);
        g1[k] = nx_up(gpu, h, len);
        g2[k] = nx_up(gpu, h, len);
    }
    tu_fill_uniform(h, len, -1.f, 1.f, 320);
    float *dy = nx_up(gpu, h, len), *y1 = nx_up(gpu, h, len), *y2 = nx_up(gpu, h, len);
    gpu->synchronize(gpu);
    /* forward: ADD and MEAN of 1..5 inputs, SUB of 2 */
    for (int op = 0; op < 3; op++)
        for (int n = op == 2 ? 2 : 1; n <= (op == 2 ? 2 : NX); n++) {
            const float c = op == 2 ? -1.f : 1.f, post = 1.f / (float)n;
            float coef[NX];
            for (int k = 0; k < NX; k++) coef[k] = c;
            kcuda_copy(y1, xs[0], len, s);
            for (int k = 1; k < n; k++) kcuda_axpy(y1, c, xs[k], len, s);
            if (op == 1) kcuda_scale(y1, post, y1, len, s);
            kcuda_sum_forward(y2, (const float *const *)xs, coef, n, post, op == 1, len, s);
            cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
            nx_expect_same(gpu, y1, y2, len, op == 0 ? "add" : op == 1 ? "mean" : "sub", n);
        }
    /* backward: coefficients 1/5 (MEAN) and -1 (SUB's second), some set, one NULL, one
     * buffer twice (an input used twice: added twice, in order) */
    float coef[NX] = {0.2f, -1.f, 0.2f, 0.2f, 0.2f};
    const unsigned set = 0x9u; /* inputs 0 and 3 written */
    float *gs1[NX] = {g1[0], NULL, g1[2], g1[3], g1[2]}, *gs2[NX] = {g2[0], NULL, g2[2], g2[3], g2[2]};
    for (int k = 0; k < NX; k++) {
        if (!gs1[k]) continue;
        if (set >> k & 1u) kcuda_scale(gs1[k], coef[k], dy, len, s);
        else kcuda_axpy(gs1[k], coef[k], dy, len, s);
    }
    kcuda_sum_backward(gs2, coef, NX, set, dy, len, s);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    for (int k = 0; k < NX; k++) nx_expect_same(gpu, g1[k], g2[k], len, "sum backward, gradient", k);
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    /* more inputs than one launch takes, or none: an error, nothing written */
    const float *many[KCUDA_MAX_NARY + 1];
    float cm[KCUDA_MAX_NARY + 1];
    for (int k = 0; k <= KCUDA_MAX_NARY; k++) many[k] = xs[k % NX], cm[k] = 1.f;
    kcuda_copy(y1, y2, len, s);
    kcuda_sum_forward(y2, many, cm, KCUDA_MAX_NARY + 1, 1.f, 0, len, s);
    cr_expect(kcuda_last_error() != NULL, "a sum of KCUDA_MAX_NARY + 1 inputs recorded no error");
    kcuda_clear_error();
    kcuda_sum_forward(y2, many, cm, 0, 1.f, 0, len, s);
    cr_expect(kcuda_last_error() != NULL, "a sum of no inputs recorded no error");
    kcuda_clear_error();
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    nx_expect_same(gpu, y1, y2, len, "a refused sum left its output", 0);
    for (int k = 0; k < NX; k++) gpu->free(gpu, xs[k]), gpu->free(gpu, g1[k]), gpu->free(gpu, g2[k]);
    gpu->free(gpu, dy);
    gpu->free(gpu, y1);
    gpu->free(gpu, y2);
    free(h);
    nx_end(gpu, s);
}

/* The backwards that now write their input's whole gradient (sets_grad: ReLU, the pixel
 * shift, the strided 1x1 convolution of FactorizedReduce), so that the runtime zeroes
 * nothing before them: their bits equal the adding path's on a zeroed gradient (dy has no
 * zeros here, so not even a zero's sign differs). The set path starts from garbage. */
Test(cuda_nary, set_backwards_equal_zero_then_add) {
    cudaStream_t s;
    rt_backend *gpu = nx_begin(&s);
    const int N = 2, C = 3, H = 7, W = 6, K = 4;
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = K, .R = 1, .S = 1, .stride_h = 2, .stride_w = 2,
                      .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&d);
    const int64_t nx = (int64_t)N * C * H * W; /* dy of any of the three fits in as many floats */
    float *h = malloc((size_t)nx * 4), *ha = malloc((size_t)nx * 4), *hb = malloc((size_t)nx * 4);
    tu_fill_uniform(h, nx, -1.f, 1.f, 360);
    float *y = nx_up(gpu, h, nx); /* the ReLU's output: about half of it <= 0 in effect */
    tu_fill_uniform(h, nx, 0.1f, 1.f, 361);
    float *dy = nx_up(gpu, h, nx); /* no zeros */
    tu_fill_uniform(h, K * C, -1.f, 1.f, 362);
    float *w = nx_up(gpu, h, K * C);
    tu_fill_uniform(h, nx, -9.f, 9.f, 363);
    float *a = nx_up(gpu, h, nx), *b = nx_up(gpu, h, nx), *scratch = NULL;
    const size_t sf = kcuda_conv2d_scratch_floats(&d);
    cr_assert_eq(cudaMalloc((void **)&scratch, (sf ? sf : 1) * sizeof(float)), cudaSuccess);
    gpu->synchronize(gpu);
    cr_expect(kcuda_conv2d_sets_dx(&d), "the strided 1x1 convolution has no overwriting data gradient");
    for (int which = 0; which < 3; which++) {
        cr_assert_eq(cudaMemsetAsync(a, 0, (size_t)nx * 4, s), cudaSuccess);
        cr_assert_eq(cudaMemcpyAsync(b, dy, (size_t)nx * 4, cudaMemcpyDeviceToDevice, s), cudaSuccess); /* garbage */
        const char *what = which == 0 ? "relu" : which == 1 ? "shift" : "strided 1x1 convolution";
        if (which == 0) {
            kcuda_relu_backward(a, dy, y, nx, s);
            kcuda_relu_backward_set(b, dy, y, nx, s);
        } else if (which == 1) {
            kcuda_shift_backward(a, dy, N, C, H, W, s);
            kcuda_shift_backward_set(b, dy, N, C, H, W, s);
        } else {
            kcuda_conv2d_backward_data(a, dy, w, &d, scratch, s);
            kcuda_conv2d_backward_data_set(b, dy, w, NULL, &d, scratch, s);
        }
        cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
        gpu->download(gpu, ha, a, (size_t)nx * 4);
        gpu->download(gpu, hb, b, (size_t)nx * 4);
        cr_expect_arr_eq(ha, hb, (size_t)nx * 4, "%s: the written gradient differs from zero-then-add", what);
    }
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    cudaFree(scratch);
    float *bufs[] = {y, dy, w, a, b};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) gpu->free(gpu, bufs[k]);
    free(h);
    free(ha);
    free(hb);
    nx_end(gpu, s);
}

Test(cuda_nary, concat_forward_and_backward_match_the_host) {
    cudaStream_t s;
    rt_backend *gpu = nx_begin(&s);
    enum { NX = 3 };
    const int N = 3, HW = 5, Cx[NX] = {2, 1, 3}, Cy = 6;
    const int64_t ny = (int64_t)N * Cy * HW;
    float *hx[NX], *hg[NX], *x[NX], *g[NX];
    for (int k = 0; k < NX; k++) {
        const int64_t nk = (int64_t)N * Cx[k] * HW;
        hx[k] = malloc((size_t)nk * 4);
        hg[k] = malloc((size_t)nk * 4);
        tu_fill_uniform(hx[k], nk, -1.f, 1.f, 330 + (unsigned)k);
        tu_fill_uniform(hg[k], nk, -1.f, 1.f, 340 + (unsigned)k);
        x[k] = nx_up(gpu, hx[k], nk);
        g[k] = nx_up(gpu, hg[k], nk);
    }
    float *hdy = malloc((size_t)ny * 4), *hy = malloc((size_t)ny * 4), *want = malloc((size_t)ny * 4);
    tu_fill_uniform(hdy, ny, -1.f, 1.f, 350);
    float *dy = nx_up(gpu, hdy, ny), *y = nx_up(gpu, hdy, ny);
    gpu->synchronize(gpu);
    kcuda_concat_forward(y, (const float *const *)x, Cx, NX, N, Cy, HW, s);
    const unsigned set = 0x1u; /* input 0 written, input 1 none, input 2 added */
    float *gs[NX] = {g[0], NULL, g[2]};
    kcuda_concat_backward(gs, set, Cx, NX, dy, N, Cy, HW, s);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    for (int m = 0, off = 0; m < N; m++, off = 0)
        for (int k = 0; k < NX; off += Cx[k], k++)
            for (int c = 0; c < Cx[k]; c++)
                for (int p = 0; p < HW; p++) {
                    const int64_t yi = ((int64_t)m * Cy + off + c) * HW + p, xi = ((int64_t)m * Cx[k] + c) * HW + p;
                    want[yi] = hx[k][xi];
                    if (k == 0) hg[k][xi] = hdy[yi];
                    if (k == 2) hg[k][xi] += hdy[yi];
                }
    gpu->download(gpu, hy, y, (size_t)ny * 4);
    cr_expect_arr_eq(hy, want, (size_t)ny * 4, "concat forward: not the inputs' channels in order");
    for (int k = 0; k < NX; k++) {
        const int64_t nk = (int64_t)N * Cx[k] * HW;
        float *got = malloc((size_t)nk * 4);
        gpu->download(gpu, got, g[k], (size_t)nk * 4);
        cr_expect_arr_eq(got, hg[k], (size_t)nk * 4, "concat backward: input %d's gradient (%s)", k,
                         k == 0 ? "written" : k == 1 ? "none: untouched" : "added");
        free(got);
    }
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    /* channels that do not add up: an error, nothing written */
    const int bad[NX] = {2, 1, 2};
    kcuda_concat_forward(y, (const float *const *)x, bad, NX, N, Cy, HW, s);
    cr_expect(kcuda_last_error() != NULL, "a concat whose channels do not sum to the output's recorded no error");
    kcuda_clear_error();
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    gpu->download(gpu, hy, y, (size_t)ny * 4);
    cr_expect_arr_eq(hy, want, (size_t)ny * 4, "a refused concat wrote its output");
    for (int k = 0; k < NX; k++) gpu->free(gpu, x[k]), gpu->free(gpu, g[k]), free(hx[k]), free(hg[k]);
    gpu->free(gpu, dy);
    gpu->free(gpu, y);
    free(hdy);
    free(hy);
    free(want);
    nx_end(gpu, s);
}

#define OL_MAXBUF 10
typedef struct ol_case {
    cudaStream_t s;
    int nb;
    float *d[OL_MAXBUF], *d0[OL_MAXBUF]; /* each buffer and its initial contents, on the device */
    float *h[OL_MAXBUF];                 /* the initial contents on the host */
    int64_t n[OL_MAXBUF];
    int op;                              /* OL_* */
    kbn_desc bd;
    kconv2d_desc cd;
    float *scratch;
} ol_case;
enum { OL_BN_FWD, OL_BN_COEFS, OL_BN_BWD, OL_BN_BWD_NODX, OL_BN_BWD_SCALED_SET, OL_CONV_DW, OL_CONV_DW_RELU };

static void ol_ck(cudaError_t e, const char *what) { cr_assert(e == cudaSuccess, "%s: %s", what, cudaGetErrorString(e)); }
#define OL_CK(call) ol_ck((call), #call)

/* ---- device buffers with their initial contents (the ol_* and bm_* cases): buffer k is
 * d[k] (the one calls work on), d0[k] (its initial contents, on the device: reset copies
 * them back) and h[k] (on the host), of cnt[k] floats; *nb of at most cap in use ---- */
static int tb_add(int *nb, int cap, float **d, float **d0, float **h, int64_t *cnt, int64_t n, float lo, float hi,
                  uint64_t seed) {
    const int k = (*nb)++;
    cr_assert(k < cap);
    const size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
    cnt[k] = n;
    h[k] = malloc(bytes);
    cr_assert(h[k]);
    tu_fill_uniform(h[k], n, lo, hi, seed);
    OL_CK(cudaMalloc((void **)&d[k], bytes));
    OL_CK(cudaMalloc((void **)&d0[k], bytes));
    OL_CK(cudaMemcpy(d0[k], h[k], bytes, cudaMemcpyHostToDevice));
    OL_CK(cudaMemcpy(d[k], h[k], bytes, cudaMemcpyHostToDevice));
    return k;
}
static void tb_free(int *nb, float **d, float **d0, float **h) {
    for (int k = 0; k < *nb; k++) {
        cudaFree(d[k]);
        cudaFree(d0[k]);
        free(h[k]);
    }
    *nb = 0;
}
static void tb_reset(int nb, float *const *d, float *const *d0, const int64_t *cnt, cudaStream_t s) {
    for (int k = 0; k < nb; k++)
        OL_CK(cudaMemcpyAsync(d[k], d0[k], (size_t)cnt[k] * sizeof(float), cudaMemcpyDeviceToDevice, s));
}
/* Every buffer's contents after the stream's work (host copies; entries from nb to cap NULL). */
static float **tb_snap(int nb, int cap, float *const *d, const int64_t *cnt, cudaStream_t s) {
    OL_CK(cudaStreamSynchronize(s));
    float **o = calloc((size_t)cap + 1, sizeof *o);
    for (int k = 0; k < nb; k++) {
        o[k] = malloc((size_t)(cnt[k] ? cnt[k] : 1) * sizeof(float));
        OL_CK(cudaMemcpy(o[k], d[k], (size_t)cnt[k] * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return o;
}
static void tb_snap_free(float **o) {
    for (int k = 0; o[k]; k++) free(o[k]);
    free(o);
}

/* The kernel nodes of a recorded graph. */
static int graph_kernels(cudaGraph_t g) {
    size_t n = 0;
    OL_CK(cudaGraphGetNodes(g, NULL, &n));
    cudaGraphNode_t *nodes = malloc((n ? n : 1) * sizeof *nodes);
    cr_assert(nodes);
    OL_CK(cudaGraphGetNodes(g, nodes, &n));
    int kernels = 0;
    for (size_t i = 0; i < n; i++) {
        enum cudaGraphNodeType t;
        OL_CK(cudaGraphNodeGetType(nodes[i], &t));
        kernels += t == cudaGraphNodeTypeKernel;
    }
    free(nodes);
    return kernels;
}

/* A buffer of n floats, uniform in [lo, hi) (seed); its index. */
static int ol_buf(ol_case *c, int64_t n, float lo, float hi, uint64_t seed) {
    return tb_add(&c->nb, OL_MAXBUF, c->d, c->d0, c->h, c->n, n, lo, hi, seed);
}

static void ol_free(ol_case *c) {
    tb_free(&c->nb, c->d, c->d0, c->h);
    if (c->scratch) cudaFree(c->scratch);
}

/* Buffers in ol_new_* order: batch norm y|coef|dx, save_mean, save_invstd, running_mean,
 * running_var | dgamma, dbeta, then x, gamma, beta | dy, dys; convolution dw, dy, x. */
static void ol_issue(ol_case *c) {
    float **b = c->d;
    const kbn_desc *bd = &c->bd;
    switch (c->op) {
    case OL_BN_FWD: kcuda_bn_forward_train(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], bd, c->s); break;
    case OL_BN_COEFS: kcuda_bn_coefs_train(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], bd, c->s); break;
    /* backward: dx, dgamma, dbeta, dy, x, gamma, save_mean, save_invstd, dys */
    case OL_BN_BWD: kcuda_bn_backward(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], bd, c->s); break;
    case OL_BN_BWD_NODX: kcuda_bn_backward(NULL, b[1], b[2], b[3], b[4], b[5], b[6], b[7], bd, c->s); break;
    case OL_BN_BWD_SCALED_SET:
        kcuda_bn_backward_scaled(b[0], b[1], b[2], b[3], b[8], b[4], b[5], b[6], b[7], bd, 0, c->s);
        break;
    case OL_CONV_DW: kcuda_conv2d_backward_filter(b[0], b[1], b[2], &c->cd, c->scratch, c->s); break;
    case OL_CONV_DW_RELU: kcuda_conv2d_relu_backward_filter(b[0], b[1], b[2], &c->cd, c->scratch, c->s); break;
    }
}

/* The same op by the CPU twin on the initial contents; returns the outputs (as ol_snap). */
static float **ol_cpu(const ol_case *c) {
    float **o = calloc(OL_MAXBUF + 1, sizeof *o); /* NULL-terminated, as tb_snap's */
    for (int k = 0; k < c->nb; k++) {
        o[k] = malloc((size_t)(c->n[k] ? c->n[k] : 1) * sizeof(float));
        memcpy(o[k], c->h[k], (size_t)c->n[k] * sizeof(float));
    }
    const kbn_desc *bd = &c->bd;
    switch (c->op) {
    case OL_BN_FWD: kcpu_bn_forward_train(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], bd); break;
    case OL_BN_COEFS: kcpu_bn_coefs_train(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], bd); break;
    case OL_BN_BWD: kcpu_bn_backward(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], bd); break;
    case OL_BN_BWD_NODX: kcpu_bn_backward(NULL, o[1], o[2], o[3], o[4], o[5], o[6], o[7], bd); break;
    case OL_BN_BWD_SCALED_SET: kcpu_bn_backward_scaled(o[0], o[1], o[2], o[3], o[8][0], o[4], o[5], o[6], o[7], bd, 0); break;
    case OL_CONV_DW:
    case OL_CONV_DW_RELU: {
        float *scr = malloc((kcpu_conv2d_scratch_floats(&c->cd) + 1) * sizeof(float));
        if (c->op == OL_CONV_DW) kcpu_conv2d_backward_filter(o[0], o[1], o[2], &c->cd, scr);
        else kcpu_conv2d_relu_backward_filter(o[0], o[1], o[2], &c->cd, scr);
        free(scr);
        break;
    }
    }
    return o;
}

static void ol_reset(ol_case *c) { tb_reset(c->nb, c->d, c->d0, c->n, c->s); }
static float **ol_snap(ol_case *c) { return tb_snap(c->nb, OL_MAXBUF, c->d, c->n, c->s); }
static void ol_snap_free(float **o) { tb_snap_free(o); }

static float **ol_run(ol_case *c) {
    ol_reset(c);
    ol_issue(c);
    return ol_snap(c);
}

static void ol_same(const ol_case *c, float **got, float **want, const char *tag, const char *when) {
    for (int k = 0; k < c->nb; k++)
        cr_expect(memcmp(got[k], want[k], (size_t)c->n[k] * sizeof(float)) == 0,
                  "%s: buffer %d differs from the two-launch path %s", tag, k, when);
}

/* The recording of reset + op; its kernel nodes in *kernels. */
static cudaGraphExec_t ol_record(ol_case *c, int *kernels) {
    cudaGraph_t g;
    OL_CK(cudaStreamBeginCapture(c->s, cudaStreamCaptureModeThreadLocal));
    ol_reset(c);
    ol_issue(c);
    OL_CK(cudaStreamEndCapture(c->s, &g));
    *kernels = graph_kernels(g);
    cudaGraphExec_t e;
    OL_CK(cudaGraphInstantiate(&e, g, 0));
    OL_CK(cudaGraphDestroy(g));
    return e;
}

/* c's op: two-launch (the reference, also replayed once from a recording of kernels_two
 * kernel nodes), then one-launch three times eagerly and four replays of a recording of
 * kernels_one kernel nodes, each the reference's bits; then the reference against the
 * CPU twin at tol. */
static void ol_check(ol_case *c, const char *tag, int kernels_one, int kernels_two, double tol) {
    int kn;
    kcuda_set_one_launch(0);
    float **ref = ol_run(c);
    cudaGraphExec_t e = ol_record(c, &kn);
    cr_expect_eq(kn, kernels_two, "%s: two-launch recording has %d kernel nodes", tag, kn);
    OL_CK(cudaGraphLaunch(e, c->s));
    float **got = ol_snap(c);
    ol_same(c, got, ref, tag, "(two-launch replay)");
    ol_snap_free(got);
    OL_CK(cudaGraphExecDestroy(e));
    kcuda_set_one_launch(1);
    for (int r = 0; r < 3; r++) {
        got = ol_run(c);
        char when[64];
        snprintf(when, sizeof when, "(eager launch %d)", r);
        ol_same(c, got, ref, tag, when);
        ol_snap_free(got);
    }
    e = ol_record(c, &kn);
    cr_expect_eq(kn, kernels_one, "%s: one-launch recording has %d kernel nodes, want %d", tag, kn, kernels_one);
    for (int r = 0; r < 4; r++) {
        OL_CK(cudaGraphLaunch(e, c->s));
        got = ol_snap(c);
        char when[64];
        snprintf(when, sizeof when, "(replay %d)", r);
        ol_same(c, got, ref, tag, when);
        ol_snap_free(got);
    }
    OL_CK(cudaGraphExecDestroy(e));
    kcuda_set_one_launch(0);
    cr_expect(!kcuda_last_error(), "%s: %s", tag, kcuda_last_error());
    float **cpu = ol_cpu(c);
    for (int k = 0; k < c->nb; k++) {
        char what[160];
        snprintf(what, sizeof what, "%s: buffer %d against the CPU twin", tag, k);
        expect_close(what, ref[k], cpu[k], c->n[k], tol);
    }
    ol_snap_free(cpu);
    ol_snap_free(ref);
}

/* A batch norm case over (N, C, HW) of op (OL_BN_*), on stream s. */
static void ol_new_bn(ol_case *c, int op, int N, int C, int HW, cudaStream_t s) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->op = op;
    c->bd = (kbn_desc){.N = N, .C = C, .HW = HW, .eps = 1e-5f, .momentum = 0.1f};
    const int64_t n = (int64_t)N * C * HW;
    if (op == OL_BN_FWD || op == OL_BN_COEFS) {
        ol_buf(c, op == OL_BN_FWD ? n : 3 * (int64_t)C, -1.f, 1.f, 1); /* y | coef */
        ol_buf(c, C, -1.f, 1.f, 2);                                   /* save_mean */
        ol_buf(c, C, -1.f, 1.f, 3);                                   /* save_invstd */
        ol_buf(c, C, -0.5f, 0.5f, 4);                                 /* running_mean */
        ol_buf(c, C, 0.5f, 1.5f, 5);                                  /* running_var */
        ol_buf(c, n, -2.f, 3.f, 6);                                   /* x: mean 0.5 */
        ol_buf(c, C, 0.5f, 1.5f, 7);                                  /* gamma */
        ol_buf(c, C, -0.5f, 0.5f, 8);                                 /* beta */
    } else {
        ol_buf(c, n, -1.f, 1.f, 11);    /* dx (added to) */
        ol_buf(c, C, -1.f, 1.f, 12);    /* dgamma */
        ol_buf(c, C, -1.f, 1.f, 13);    /* dbeta */
        ol_buf(c, n, -1.f, 1.f, 14);    /* dy */
        ol_buf(c, n, -2.f, 3.f, 15);    /* x */
        ol_buf(c, C, 0.5f, 1.5f, 16);   /* gamma */
        ol_buf(c, C, 0.f, 1.f, 17);     /* save_mean */
        ol_buf(c, C, 0.4f, 0.6f, 18);   /* save_invstd (x's spread ~1.44) */
        ol_buf(c, 1, 0.5f, 1.0f, 19);   /* dys */
    }
}

/* A depthwise (K = C = groups) filter gradient case; dw is added to. */
static void ol_new_dw(ol_case *c, int relu, int N, int C, int H, int W, int R, int stride, int pad, int dil,
                      cudaStream_t s) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->op = relu ? OL_CONV_DW_RELU : OL_CONV_DW;
    c->cd = (kconv2d_desc){.N = N, .C = C, .H = H, .W = W, .K = C, .R = R, .S = R, .stride_h = stride,
                           .stride_w = stride, .pad_h = pad, .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = C};
    kconv2d_desc_finish(&c->cd);
    ol_buf(c, (int64_t)C * R * R, -1.f, 1.f, 21);
    ol_buf(c, (int64_t)N * C * c->cd.P * c->cd.Q, -1.f, 1.f, 22);
    ol_buf(c, (int64_t)N * C * H * W, -1.f, 1.f, 23);
}

/* A 1x1 (stride 1) filter gradient case, K outputs; dw is added to. */
static void ol_new_pw(ol_case *c, int relu, int N, int C, int H, int W, int K, cudaStream_t s) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->op = relu ? OL_CONV_DW_RELU : OL_CONV_DW; /* the same entry points */
    c->cd = (kconv2d_desc){.N = N, .C = C, .H = H, .W = W, .K = K, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                           .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&c->cd);
    ol_buf(c, (int64_t)K * C, -1.f, 1.f, 31);
    ol_buf(c, (int64_t)N * K * H * W, -1.f, 1.f, 32);
    ol_buf(c, (int64_t)N * C * H * W, -1.f, 1.f, 33);
    OL_CK(cudaMalloc((void **)&c->scratch, (kcuda_conv2d_scratch_floats(&c->cd) + 1) * sizeof(float)));
}

/* The backend for the library state (lane 0, the switches read from the environment)
 * and a stream of the test's own. */
static rt_backend *ol_begin(cudaStream_t *s) {
    char err[256];
    rt_backend *gpu = rt_backend_cuda_new(err, sizeof err);
    cr_assert(gpu, "%s", err);
    OL_CK(cudaStreamCreate(s));
    return gpu;
}
static void ol_end(rt_backend *gpu, cudaStream_t s) {
    OL_CK(cudaStreamDestroy(s));
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    gpu->destroy(gpu);
}

/* Drop path: the forward in one launch (each element draws its sample's mask) gives the
 * CPU twin's output and masks bit for bit; the backward written whole (grad_set: the
 * runtime does not zero dx first) gives the bits of zeroing and adding, on both backends,
 * a -0 product included (dropped samples with negative gradients: 0 + -0 is +0). N 7
 * samples of 13 values (no multiple of a block), p 0.5. */
Test(cuda_vec, drop_path_one_launch_forward_and_written_backward_match_the_cpu) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int N = 7;
    const int64_t per = 13, n = N * per;
    const size_t b = (size_t)n * 4;
    float *x = malloc(b), *dy = malloc(b), *y = malloc(b), *yc = malloc(b), *dx = malloc(b), *dxc = malloc(b),
          *dxa = malloc(b), m[7], mc[7];
    tu_fill_uniform(x, n, -1.f, 1.f, 41);
    tu_fill_uniform(dy, n, -1.f, 1.f, 43);
    float *dxd, *dyd, *yd, *md, *xd;
    OL_CK(cudaMalloc((void **)&xd, b));
    OL_CK(cudaMalloc((void **)&yd, b));
    OL_CK(cudaMalloc((void **)&dyd, b));
    OL_CK(cudaMalloc((void **)&dxd, b));
    OL_CK(cudaMalloc((void **)&md, sizeof m));
    OL_CK(cudaMemcpy(xd, x, b, cudaMemcpyHostToDevice));
    OL_CK(cudaMemcpy(dyd, dy, b, cudaMemcpyHostToDevice));
    kcuda_droppath_forward(yd, md, xd, N, per, 0.5f, 1234, s);
    kcpu_droppath_forward(yc, mc, x, N, per, 0.5f, 1234);
    OL_CK(cudaMemcpyAsync(y, yd, b, cudaMemcpyDeviceToHost, s));
    OL_CK(cudaMemcpyAsync(m, md, sizeof m, cudaMemcpyDeviceToHost, s));
    OL_CK(cudaStreamSynchronize(s));
    cr_expect_arr_eq(m, mc, sizeof m, "drop-path masks differ from the CPU twin");
    cr_expect_arr_eq(y, yc, b, "drop-path outputs differ from the CPU twin");
    int dropped = 0, negzero = 0;
    for (int k = 0; k < N; k++) dropped += mc[k] == 0.0f;
    for (int64_t i = 0; i < n; i++) negzero += mc[i / per] == 0.0f && dy[i] < 0.0f;
    cr_assert(dropped > 0 && dropped < N && negzero > 0, "%d of %d samples dropped, %d -0 products", dropped, N, negzero);
    /* written whole over garbage, against zeroed then added, on the device and the host */
    OL_CK(cudaMemsetAsync(dxd, 0x7f, b, s));
    kcuda_droppath_backward_set(dxd, dyd, md, N, per, s);
    OL_CK(cudaMemcpyAsync(dx, dxd, b, cudaMemcpyDeviceToHost, s));
    OL_CK(cudaMemsetAsync(dxd, 0, b, s));
    kcuda_droppath_backward(dxd, dyd, md, N, per, s);
    OL_CK(cudaMemcpyAsync(dxa, dxd, b, cudaMemcpyDeviceToHost, s));
    OL_CK(cudaStreamSynchronize(s));
    for (int64_t i = 0; i < n; i++) dxc[i] = 12345.0f;
    kcpu_droppath_backward_set(dxc, dy, mc, N, per);
    cr_expect_arr_eq(dx, dxa, b, "written drop-path gradient differs from zeroed + added");
    cr_expect_arr_eq(dx, dxc, b, "written drop-path gradient differs from the CPU twin");
    int minus0 = 0;
    for (int64_t i = 0; i < n; i++) minus0 += mc[i / per] == 0.0f && signbit(dx[i]);
    cr_expect_eq(minus0, 0, "%d elements of dropped samples are -0", minus0);
    memset(dxc, 0, b);
    kcpu_droppath_backward(dxc, dy, mc, N, per);
    float *dxs = malloc(b);
    for (int64_t i = 0; i < n; i++) dxs[i] = -7.0f;
    kcpu_droppath_backward_set(dxs, dy, mc, N, per);
    cr_expect_arr_eq(dxs, dxc, b, "the CPU's written drop-path gradient differs from zeroed + added");
    free(dxs);
    cudaFree(xd); cudaFree(yd); cudaFree(dyd); cudaFree(dxd); cudaFree(md);
    free(x); free(dy); free(y); free(yc); free(dx); free(dxc); free(dxa);
    ol_end(gpu, s);
}

/* Batched drop paths (3 problems, each its own seed on the device): the forward in one
 * launch gives each problem its single call's masks and outputs, the backward (added and
 * written) its single call's gradient, bit for bit. */
Test(cuda_batch_vec, drop_paths_batched_equal_single_calls) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    enum { M = 3, N = 5 };
    const int64_t per = 37, n = N * per;
    const size_t b = (size_t)n * 4;
    float *x[M], *y[M], *mk[M], *dy[M], *dx[M];
    uint64_t *sd[M];
    float *h = malloc(b);
    for (int i = 0; i < M; i++) {
        OL_CK(cudaMalloc((void **)&x[i], b));
        OL_CK(cudaMalloc((void **)&y[i], b));
        OL_CK(cudaMalloc((void **)&dy[i], b));
        OL_CK(cudaMalloc((void **)&dx[i], b));
        OL_CK(cudaMalloc((void **)&mk[i], N * 4));
        OL_CK(cudaMalloc((void **)&sd[i], 8));
        const uint64_t seed = 77 + 1000 * (uint64_t)i;
        OL_CK(cudaMemcpy(sd[i], &seed, 8, cudaMemcpyHostToDevice));
        tu_fill_uniform(h, n, -1.f, 1.f, 50 + (uint64_t)i);
        OL_CK(cudaMemcpy(x[i], h, b, cudaMemcpyHostToDevice));
        tu_fill_uniform(h, n, -1.f, 1.f, 60 + (uint64_t)i);
        OL_CK(cudaMemcpy(dy[i], h, b, cudaMemcpyHostToDevice));
    }
    float want_y[M][N * 37], want_m[M][N], want_dx[2][M][N * 37];
    for (int i = 0; i < M; i++) { /* single calls */
        kcuda_droppath_forward_dev(y[i], mk[i], x[i], N, per, 0.4f, 0, sd[i], s);
        OL_CK(cudaMemcpyAsync(want_y[i], y[i], b, cudaMemcpyDeviceToHost, s));
        OL_CK(cudaMemcpyAsync(want_m[i], mk[i], N * 4, cudaMemcpyDeviceToHost, s));
        for (int set = 0; set < 2; set++) {
            OL_CK(cudaMemsetAsync(dx[i], 0, b, s)); /* the added one onto zeros, the written one over them */
            (set ? kcuda_droppath_backward_set : kcuda_droppath_backward)(dx[i], dy[i], mk[i], N, per, s);
            OL_CK(cudaMemcpyAsync(want_dx[set][i], dx[i], b, cudaMemcpyDeviceToHost, s));
        }
    }
    OL_CK(cudaStreamSynchronize(s));
    int dropped = 0;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < N; k++) dropped += want_m[i][k] == 0.0f;
    cr_assert(dropped > 0 && dropped < M * N, "%d of %d samples dropped", dropped, M * N);
    for (int i = 0; i < M; i++) { /* poison what the batch writes */
        OL_CK(cudaMemsetAsync(y[i], 0x7f, b, s));
        OL_CK(cudaMemsetAsync(mk[i], 0x7f, N * 4, s));
    }
    kcuda_droppath_forward_batch(M, y, mk, (const float *const *)x, N, per, 0.4f, (const uint64_t *const *)sd, s);
    for (int i = 0; i < M; i++) {
        float got_m[N];
        OL_CK(cudaMemcpyAsync(h, y[i], b, cudaMemcpyDeviceToHost, s));
        OL_CK(cudaMemcpyAsync(got_m, mk[i], N * 4, cudaMemcpyDeviceToHost, s));
        OL_CK(cudaStreamSynchronize(s));
        cr_expect_arr_eq(h, want_y[i], b, "problem %d: batched drop-path output differs from its single call", i);
        cr_expect_arr_eq(got_m, want_m[i], N * 4, "problem %d: batched drop-path mask differs", i);
    }
    for (int set = 0; set < 2; set++) {
        for (int i = 0; i < M; i++) OL_CK(cudaMemsetAsync(dx[i], set ? 0x7f : 0, b, s));
        kcuda_droppath_backward_batch(M, dx, (const float *const *)dy, (const float *const *)mk, N, per, set, s);
        for (int i = 0; i < M; i++) {
            OL_CK(cudaMemcpyAsync(h, dx[i], b, cudaMemcpyDeviceToHost, s));
            OL_CK(cudaStreamSynchronize(s));
            cr_expect_arr_eq(h, want_dx[set][i], b, "problem %d: batched drop-path gradient (%s) differs", i,
                             set ? "written" : "added");
        }
    }
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    for (int i = 0; i < M; i++) {
        cudaFree(x[i]); cudaFree(y[i]); cudaFree(dy[i]); cudaFree(dx[i]); cudaFree(mk[i]); cudaFree(sd[i]);
    }
    free(h);
    ol_end(gpu, s);
}

Test(cuda_one_launch, batch_norms_match_two_launches_bit_for_bit) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    /* (N, C, HW): G = 1 (600 channels), the most ranges (528 of one channel, 1061 values
     * each but the last's 861), 14 ranges (13 of 1001, the last of 994), 3 of 1001 */
    const int shapes[4][3] = {{2, 600, 700}, {8, 1, 70001}, {7, 16, 2001}, {3, 5, 1001}};
    const int ops[5] = {OL_BN_FWD, OL_BN_COEFS, OL_BN_BWD, OL_BN_BWD_NODX, OL_BN_BWD_SCALED_SET};
    /* kernel nodes one-launch / two-launch: the coefficients and a backward without dx
     * lose their second launch; forward and backward with dx keep it (grid-wide) */
    const int one[5] = {2, 1, 2, 1, 2};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 5; k++) {
            ol_case c;
            ol_new_bn(&c, ops[k], shapes[i][0], shapes[i][1], shapes[i][2], s);
            char tag[96];
            snprintf(tag, sizeof tag, "batch norm op %d, N %d C %d HW %d", ops[k], shapes[i][0], shapes[i][1],
                     shapes[i][2]);
            ol_check(&c, tag, one[k], 2, TOL_BN);
            ol_free(&c);
        }
    ol_end(gpu, s);
}

/* (N, C, H, W, R, stride, pad, dil) of depthwise filter gradients */
static void ol_dw_cases(const int (*sh)[8], int n, const char *what) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    for (int i = 0; i < n; i++)
        for (int relu = 0; relu < 2; relu++) {
            ol_case c;
            ol_new_dw(&c, relu, sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], sh[i][5], sh[i][6], sh[i][7], s);
            if (relu && !(kcuda_conv2d_relu_supported(&c.cd) && kcpu_conv2d_relu_supported(&c.cd))) {
                ol_free(&c);
                continue;
            }
            char tag[128];
            snprintf(tag, sizeof tag, "%s%s, N %d C %d %dx%d, %dx%d stride %d dil %d", what, relu ? " (ReLU)" : "",
                     sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], sh[i][4], sh[i][5], sh[i][7]);
            ol_check(&c, tag, 1, 2, TOL_SAME_ORDER);
            ol_free(&c);
        }
    ol_end(gpu, s);
}

Test(cuda_one_launch, depthwise_filter_gradient_matches_two_launches_bit_for_bit) {
    /* ranges per channel: 8; 2 (last shorter); 528 (one channel, last shorter); 1 (600
     * channels); a dilated 7x7; a 1x1 */
    const int sh[6][8] = {{8, 16, 16, 16, 3, 1, 1, 1}, {7, 16, 13, 13, 5, 2, 2, 1}, {64, 1, 47, 47, 3, 1, 1, 1},
                          {2, 600, 7, 7, 3, 1, 1, 1},  {4, 8, 12, 12, 7, 1, 6, 2},  {4, 8, 9, 9, 1, 1, 0, 1}};
    ol_dw_cases(sh, 6, "depthwise filter gradient");
}

/* The blocked depthwise filter gradient one output a thread at a time
 * (DARTSC_CUDA_DW_FILTER_U1: the A/B of the registers its loads in flight take) gives the
 * bits of the default's 4 (3x3, 1x1) or 2 (5x5) at a time, with the ReLU fused and not,
 * in two launches and in one: ranges of 8 per channel, 2 (the last shorter), 528 of one
 * channel (tails that are no multiple of U x 256 outputs), a dilated 5x5, a 1x1. */
Test(cuda_ops, depthwise_filter_gradient_one_output_a_thread_changes_no_bit) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[5][8] = {{8, 16, 16, 16, 3, 1, 1, 1}, {7, 16, 13, 13, 5, 2, 2, 1}, {64, 1, 47, 47, 3, 1, 1, 1},
                          {4, 8, 12, 12, 5, 1, 4, 2},  {4, 8, 9, 9, 1, 1, 0, 1}};
    for (int i = 0; i < 5; i++)
        for (int relu = 0; relu < 2; relu++)
            for (int one = 0; one < 2; one++) {
                ol_case c;
                ol_new_dw(&c, relu, sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], sh[i][5], sh[i][6], sh[i][7], s);
                if (relu && !kcuda_conv2d_relu_supported(&c.cd)) {
                    ol_free(&c);
                    continue;
                }
                kcuda_set_one_launch(one);
                cr_assert_eq(kcuda_set_dw_filter_u1(0), 0);
                float **ref = ol_run(&c);
                kcuda_set_dw_filter_u1(1);
                float **got = ol_run(&c);
                kcuda_set_dw_filter_u1(0);
                kcuda_set_one_launch(0);
                char tag[128];
                snprintf(tag, sizeof tag, "depthwise filter gradient%s, N %d C %d %dx%d, %dx%d stride %d dil %d%s",
                         relu ? " (ReLU)" : "", sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], sh[i][4], sh[i][5],
                         sh[i][7], one ? ", one launch" : "");
                ol_same(&c, got, ref, tag, "(one output a thread against the default's several)");
                ol_snap_free(got);
                ol_snap_free(ref);
                ol_free(&c);
            }
    ol_end(gpu, s);
}

Test(cuda_one_launch, depthwise_filter_gradient_by_planes_matches_two_launches_bit_for_bit) {
    setenv("DARTSC_CUDA_DW_FILTER_PLANES", "1", 1);
    /* sample groups: 64; 528 (one channel); 1 (600 channels); 10, strided */
    const int sh[4][8] = {{64, 4, 8, 8, 3, 1, 1, 1}, {528, 1, 6, 6, 3, 1, 1, 1}, {3, 600, 7, 7, 5, 2, 2, 1},
                          {10, 16, 9, 9, 3, 2, 1, 1}};
    ol_dw_cases(sh, 4, "depthwise filter gradient by planes");
}

Test(cuda_one_launch, own_1x1_filter_gradient_matches_two_launches_bit_for_bit) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    /* (N, C, H, W, K, relu, kernel nodes one-launch), blocks by pw_filter_blocks (at least
     * 8 groups of 4 pixels per lane, at most 2 per multiprocessor: 264 on the emulator's
     * H200): 11 blocks of 480 outputs in 30 tiles (8 lanes), pixels one at a time (17x19);
     * 128 blocks of 256 outputs (16 lanes, 32,768 partials, within PW_ONE_LAUNCH_MAX),
     * 16-byte loads; 4 blocks of 4,096 outputs (one lane); 16 blocks of 4,096 (65,536
     * partials: the limit itself); 60 blocks of 4,096 (245,760) and 256 blocks of 4,096
     * (1,048,576): above it, so two launches stay */
    const int sh[7][7] = {{8, 24, 17, 19, 20, 0, 1}, {8, 24, 17, 19, 20, 1, 1}, {64, 16, 32, 32, 16, 0, 1},
                          {1, 64, 10, 10, 64, 0, 1}, {2, 64, 16, 16, 64, 1, 1}, {2, 64, 25, 38, 64, 1, 2},
                          {8, 64, 32, 32, 64, 0, 2}};
    for (int i = 0; i < 7; i++) {
        ol_case c;
        ol_new_pw(&c, sh[i][5], sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], s);
        const int one = sh[i][6];
        char tag[128];
        snprintf(tag, sizeof tag, "own 1x1 filter gradient%s, N %d C %d %dx%d K %d", sh[i][5] ? " (ReLU)" : "",
                 sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4]);
        ol_check(&c, tag, one, 2, TOL_LIBRARY);
        ol_free(&c);
    }
    ol_end(gpu, s);
}

/* The own 1x1 kernels read 4 pixels in one 16-byte load where HW % 4 == 0 and every
 * tensor is 16-byte aligned, else one pixel at a time; the sums are the same either way
 * (the filter gradient's lanes take the same groups of 4 pixels, the forward and data
 * gradient sum over channels in the same order). Each pass, with and without the fused
 * ReLU, on 16-byte aligned buffers and on the same values one float further on (every
 * pointer misaligned: the scalar loads), must give the same bits; on the emulator a
 * 16-byte load from a misaligned address stops the test, so the second run also shows
 * the choice of loads follows the pointers. Shapes: 3 x 12 x 8x8 -> 20 (a partial
 * register block of 16 output channels; 15 filter tiles of 4 x 4, 17 lanes), 2 x 64 x
 * 4x4 -> 64 (4,096 weights: one lane), 5 x 8 x 6x6 -> 8 (4 tiles, 64 lanes). */
static kconv2d_desc bc_pw_desc(int N, int C, int H, int W, int K);
Test(cuda_ops, own_1x1_vector_loads_change_no_bit) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[3][5] = {{3, 12, 8, 8, 20}, {2, 64, 4, 4, 64}, {5, 8, 6, 6, 8}};
    for (int i = 0; i < 3; i++) {
        const kconv2d_desc d = bc_pw_desc(sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4]);
        cr_assert(kcuda_conv2d_relu_supported(&d), "shape %d: not the own kernels' shape", i);
        const int64_t nx = (int64_t)d.N * d.C * d.H * d.W, ny = (int64_t)d.N * d.K * d.H * d.W,
                      nw = (int64_t)d.K * d.C;
        const int64_t n[5] = {nx, nw, ny, nx, nw}; /* x, w, dy, dx (initial), dw (initial) */
        float *h[5], *dev[5], *out[2][3][2], *scr;
        OL_CK(cudaMalloc((void **)&scr, (kcuda_conv2d_scratch_floats(&d) + 1) * sizeof(float)));
        for (int k = 0; k < 5; k++) {
            h[k] = malloc((size_t)n[k] * sizeof(float));
            tu_fill_uniform(h[k], n[k], -1.0f, 1.0f, 7100 + 10 * i + k);
            OL_CK(cudaMalloc((void **)&dev[k], (size_t)(n[k] + 4) * sizeof(float)));
        }
        for (int a = 0; a < 2; a++) { /* a = 0: 16-byte aligned (cudaMalloc's); 1: one float on */
            float *b[5];
            for (int k = 0; k < 5; k++) b[k] = dev[k] + a;
            for (int r = 0; r < 2; r++) { /* r: the ReLU fused or not */
                for (int k = 0; k < 5; k++)
                    OL_CK(cudaMemcpy(b[k], h[k], (size_t)n[k] * sizeof(float), cudaMemcpyHostToDevice));
                float *y;
                OL_CK(cudaMalloc((void **)&y, (size_t)(ny + 4) * sizeof(float)));
                if (r) {
                    kcuda_conv2d_relu_forward(y + a, b[0], b[1], &d, scr, s);
                    kcuda_conv2d_relu_backward_data(b[3], b[2], b[1], b[0], &d, scr, s);
                    kcuda_conv2d_relu_backward_filter(b[4], b[2], b[0], &d, scr, s);
                } else {
                    kcuda_conv2d_forward(y + a, b[0], b[1], &d, scr, s);
                    kcuda_conv2d_backward_data(b[3], b[2], b[1], &d, scr, s);
                    kcuda_conv2d_backward_filter(b[4], b[2], b[0], &d, scr, s);
                }
                OL_CK(cudaStreamSynchronize(s));
                cr_assert(!kcuda_last_error(), "%s", kcuda_last_error());
                const float *src[3] = {y + a, b[3], b[4]};
                const int64_t cnt[3] = {ny, nx, nw};
                for (int o = 0; o < 3; o++) {
                    out[a][o][r] = malloc((size_t)cnt[o] * sizeof(float));
                    OL_CK(cudaMemcpy(out[a][o][r], src[o], (size_t)cnt[o] * sizeof(float), cudaMemcpyDeviceToHost));
                }
                cudaFree(y);
            }
        }
        static const char *what[3] = {"forward", "data gradient", "filter gradient"};
        const int64_t cnt[3] = {ny, nx, nw};
        for (int o = 0; o < 3; o++)
            for (int r = 0; r < 2; r++) {
                cr_expect(memcmp(out[0][o][r], out[1][o][r], (size_t)cnt[o] * sizeof(float)) == 0,
                          "own 1x1 %s%s, N %d C %d %dx%d K %d: misaligned tensors give other bits", what[o],
                          r ? " (ReLU)" : "", d.N, d.C, d.H, d.W, d.K);
                free(out[0][o][r]);
                free(out[1][o][r]);
            }
        for (int k = 0; k < 5; k++) {
            free(h[k]);
            cudaFree(dev[k]);
        }
        cudaFree(scr);
    }
    ol_end(gpu, s);
}

/* A depthwise convolution reading a batch norm's input through its coefficients
 * (kcuda_conv2d_relu_affine_*: the deferred batch norm) gives the bits of applying the
 * batch norm first (y = fma(x - f, s, b), the batch norm's expression) and then the
 * fused-ReLU passes on y: forward, data gradient written and added, filter gradient; and
 * 3 problems batched give the single calls' bits. Shapes: 3x3 stride 1 pad 1, 5x5 stride 2
 * pad 2, 3x3 dilation 2 pad 2 (the sep, reduction and dil_conv candidates), on planes of
 * 9x7 over 3 samples of 5 channels. */
static kconv2d_desc bc_dw_desc(int N, int C, int H, int W, int R, int stride, int pad, int dil);
Test(cuda_ops, depthwise_reading_a_deferred_batch_norm_equals_applying_it_first) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[3][4] = {{3, 1, 1, 1}, {5, 2, 2, 1}, {3, 1, 2, 2}}; /* R, stride, pad, dil */
    for (int t = 0; t < 3; t++) {
        const kconv2d_desc d = bc_dw_desc(3, 5, 9, 7, sh[t][0], sh[t][1], sh[t][2], sh[t][3]);
        cr_assert(kcuda_conv2d_affine_supported(&d), "shape %d", t);
        const int NP = 3; /* problems of the batched calls */
        const int64_t nx = (int64_t)d.N * d.C * d.H * d.W, ny = (int64_t)d.N * d.K * d.P * d.Q,
                      nw = (int64_t)d.C * d.R * d.S;
        /* per problem: x, af (3C), w, dy; the applied y = fma(x - f, s, b) on the host */
        float *h[NP][5], *dv[NP][5];
        const int64_t n[5] = {nx, 3 * d.C, nw, ny, nx};
        for (int i = 0; i < NP; i++) {
            for (int k = 0; k < 4; k++) {
                h[i][k] = malloc((size_t)n[k] * sizeof(float));
                tu_fill_uniform(h[i][k], n[k], -1.f, 1.f, 8100 + 10 * t + 100 * i + k);
            }
            for (int c = 0; c < d.C; c++) h[i][1][d.C + c] = 0.5f + fabsf(h[i][1][d.C + c]); /* s > 0 */
            h[i][4] = malloc((size_t)nx * sizeof(float));
            for (int64_t e = 0; e < nx; e++) {
                const int c = (int)(e / (d.H * d.W) % d.C);
                h[i][4][e] = fmaf(h[i][0][e] - h[i][1][c], h[i][1][d.C + c], h[i][1][2 * d.C + c]);
            }
            for (int k = 0; k < 5; k++) {
                OL_CK(cudaMalloc((void **)&dv[i][k], (size_t)n[k] * sizeof(float)));
                OL_CK(cudaMemcpy(dv[i][k], h[i][k], (size_t)n[k] * sizeof(float), cudaMemcpyHostToDevice));
            }
        }
        /* outputs: [way][problem] y, dx set, dx added (from 0.25), dw (from 0.5); way 0:
         * applied + fused ReLU, 1: affine single, 2: affine batched */
        float *out[3][NP][4];
        const int64_t no[4] = {ny, nx, nx, nw};
        for (int way = 0; way < 3; way++)
            for (int i = 0; i < NP; i++)
                for (int o = 0; o < 4; o++) {
                    OL_CK(cudaMalloc((void **)&out[way][i][o], (size_t)no[o] * sizeof(float)));
                    float *init = malloc((size_t)no[o] * sizeof(float));
                    for (int64_t e = 0; e < no[o]; e++) init[e] = o == 2 ? 0.25f : o == 3 ? 0.5f : 7.0f;
                    OL_CK(cudaMemcpy(out[way][i][o], init, (size_t)no[o] * sizeof(float), cudaMemcpyHostToDevice));
                    free(init);
                }
        for (int i = 0; i < NP; i++) {
            kcuda_conv2d_relu_forward(out[0][i][0], dv[i][4], dv[i][2], &d, NULL, s);
            kcuda_conv2d_backward_data_set(out[0][i][1], dv[i][3], dv[i][2], dv[i][4], &d, NULL, s);
            kcuda_conv2d_relu_backward_data(out[0][i][2], dv[i][3], dv[i][2], dv[i][4], &d, NULL, s);
            kcuda_conv2d_relu_backward_filter(out[0][i][3], dv[i][3], dv[i][4], &d, NULL, s);
            kcuda_conv2d_relu_affine_forward(out[1][i][0], dv[i][0], dv[i][1], dv[i][2], &d, s);
            kcuda_conv2d_relu_affine_backward_data(out[1][i][1], dv[i][3], dv[i][2], dv[i][0], dv[i][1], &d, 1, s);
            kcuda_conv2d_relu_affine_backward_data(out[1][i][2], dv[i][3], dv[i][2], dv[i][0], dv[i][1], &d, 0, s);
            kcuda_conv2d_relu_affine_backward_filter(out[1][i][3], dv[i][3], dv[i][0], dv[i][1], &d, s);
        }
        float *o2[4][NP];
        const float *x[NP], *af[NP], *w[NP], *dy[NP];
        for (int i = 0; i < NP; i++) {
            x[i] = dv[i][0], af[i] = dv[i][1], w[i] = dv[i][2], dy[i] = dv[i][3];
            for (int o = 0; o < 4; o++) o2[o][i] = out[2][i][o];
        }
        kcuda_conv2d_relu_affine_forward_batch(NP, o2[0], x, af, w, &d, s);
        kcuda_conv2d_relu_affine_backward_data_batch(NP, o2[1], dy, w, x, af, &d, 1, s);
        kcuda_conv2d_relu_affine_backward_data_batch(NP, o2[2], dy, w, x, af, &d, 0, s);
        kcuda_conv2d_relu_affine_backward_filter_batch(NP, o2[3], dy, x, af, &d, s);
        OL_CK(cudaStreamSynchronize(s));
        cr_assert(!kcuda_last_error(), "%s", kcuda_last_error());
        static const char *what[4] = {"forward", "data gradient (set)", "data gradient (added)", "filter gradient"};
        for (int i = 0; i < NP; i++)
            for (int o = 0; o < 4; o++) {
                float *r[3];
                for (int way = 0; way < 3; way++) {
                    r[way] = malloc((size_t)no[o] * sizeof(float));
                    OL_CK(cudaMemcpy(r[way], out[way][i][o], (size_t)no[o] * sizeof(float), cudaMemcpyDeviceToHost));
                }
                cr_expect(memcmp(r[0], r[1], (size_t)no[o] * sizeof(float)) == 0,
                          "shape %d problem %d %s: reading the batch norm's input differs from applying it first", t,
                          i, what[o]);
                cr_expect(memcmp(r[1], r[2], (size_t)no[o] * sizeof(float)) == 0,
                          "shape %d problem %d %s: batched differs from the single call", t, i, what[o]);
                for (int way = 0; way < 3; way++) free(r[way]);
            }
        for (int way = 0; way < 3; way++)
            for (int i = 0; i < NP; i++)
                for (int o = 0; o < 4; o++) cudaFree(out[way][i][o]);
        for (int i = 0; i < NP; i++)
            for (int k = 0; k < 5; k++) {
                free(h[i][k]);
                cudaFree(dv[i][k]);
            }
    }
    ol_end(gpu, s);
}

/* Lanes run side by side, each with its own counters: a depthwise filter gradient on lane
 * 0 and the deferred batch norm's coefficients on lane 1 (both one channel of 528
 * ranges: the same counter index), issued together on two streams 16 times, give the
 * two-launch bits every time. With one counter for both, their blocks would count
 * together and neither launch would finish right. */
Test(cuda_one_launch, lanes_count_on_their_own_counters) {
    cudaStream_t s0, s1;
    rt_backend *gpu = ol_begin(&s0);
    OL_CK(cudaStreamCreate(&s1));
    const int l1 = kcuda_add_lane(NULL, NULL); /* these kernels use no handle */
    cr_assert(l1 >= 1, "%s", kcuda_last_error());
    ol_case a, b;
    ol_new_dw(&a, 0, 64, 1, 47, 47, 3, 1, 1, 1, s0);
    ol_new_bn(&b, OL_BN_COEFS, 8, 1, 70001, s1);
    kcuda_set_one_launch(0);
    kcuda_set_lane(0);
    float **ra = ol_run(&a);
    kcuda_set_lane(l1);
    float **rb = ol_run(&b);
    kcuda_set_one_launch(1);
    for (int it = 0; it < 16; it++) {
        kcuda_set_lane(0);
        ol_reset(&a);
        ol_reset(&b);
        ol_issue(&a);
        kcuda_set_lane(l1);
        ol_issue(&b);
        float **ga = ol_snap(&a), **gb = ol_snap(&b);
        char when[64];
        snprintf(when, sizeof when, "(round %d, beside another lane)", it);
        ol_same(&a, ga, ra, "depthwise filter gradient on lane 0", when);
        ol_same(&b, gb, rb, "batch norm coefficients on lane 1", when);
        ol_snap_free(ga);
        ol_snap_free(gb);
    }
    kcuda_set_one_launch(0);
    kcuda_set_lane(0);
    ol_snap_free(ra);
    ol_snap_free(rb);
    ol_free(&a);
    ol_free(&b);
    OL_CK(cudaStreamDestroy(s1));
    ol_end(gpu, s0);
}

/* ---- batched batch norms (kcuda_bn_*_batch; suite cuda_batch_bn) ----
 * n problems of one descriptor issued as one call give every problem exactly the bits of
 * its own single call (memcmp, every buffer of every problem: outputs, accumulated
 * gradients, and the inputs left as they were), eagerly and from a recording, with the
 * single path's kernel count for all n (one launch per kernel, unless the problems do not
 * fit the lane's counters at once), with one-launch mode off and on. */
enum { BB_FWD, BB_COEFS, BB_BWD, BB_BWD_SET, BB_BWD_SCALED, BB_BWD_SCALED_SET, BB_BWD_NODX, BB_BWD_HOLES, BB_NOPS };
static const char *const bb_name[BB_NOPS] = {"forward",         "coefficients",      "backward",
                                             "backward (set)",  "backward (scaled)", "backward (scaled, set)",
                                             "backward, no dx", "backward, dx for even problems only"};
#define BB_MAXN 5
typedef struct bb_case {
    int n, op, affine;
    ol_case p[BB_MAXN];
} bb_case;

static int bb_has_dx(const bb_case *b, int i) {
    return b->op != BB_BWD_NODX && (b->op != BB_BWD_HOLES || i % 2 == 0);
}

/* n problems over (N, C, HW): ol_new_bn's buffers, each permuted by a shuffle of its own
 * seed (the same value ranges, different inputs per problem), dy scaled by 0.5 + 0.125 i. */
static void bb_new(bb_case *b, int op, int affine, int n, int N, int C, int HW, cudaStream_t s) {
    cr_assert(n <= BB_MAXN);
    b->n = n;
    b->op = op;
    b->affine = affine;
    for (int i = 0; i < n; i++) {
        ol_case *c = &b->p[i];
        ol_new_bn(c, op == BB_FWD ? OL_BN_FWD : op == BB_COEFS ? OL_BN_COEFS : OL_BN_BWD, N, C, HW, s);
        for (int k = 0; k < c->nb; k++) {
            float *h = c->h[k], *u = malloc((size_t)c->n[k] * sizeof *u);
            cr_assert(u);
            tu_fill_uniform(u, c->n[k], 0.f, 1.f, 1000 + 16 * (uint64_t)i + (uint64_t)k);
            for (int64_t j = c->n[k] - 1; j > 0; j--) {
                int64_t r = (int64_t)(u[j] * (float)(j + 1));
                if (r > j) r = j;
                const float t = h[j];
                h[j] = h[r];
                h[r] = t;
            }
            free(u);
            if (op >= BB_BWD && k == 8) h[0] = 0.5f + 0.125f * (float)i; /* dys */
            OL_CK(cudaMemcpy(c->d0[k], h, (size_t)c->n[k] * sizeof(float), cudaMemcpyHostToDevice));
        }
    }
}

static void bb_free(bb_case *b) {
    for (int i = 0; i < b->n; i++) ol_free(&b->p[i]);
}

/* Problem i by its single entry point (buffers as ol_issue's). */
static void bb_single(bb_case *b, int i) {
    float **d = b->p[i].d;
    const kbn_desc *bd = &b->p[i].bd;
    const cudaStream_t s = b->p[i].s;
    float *g = b->affine ? d[6] : NULL, *be = b->affine ? d[7] : NULL;
    switch (b->op) {
    case BB_FWD: kcuda_bn_forward_train(d[0], d[1], d[2], d[3], d[4], d[5], g, be, bd, s); return;
    case BB_COEFS: kcuda_bn_coefs_train(d[0], d[1], d[2], d[3], d[4], d[5], g, be, bd, s); return;
    }
    float *dx = bb_has_dx(b, i) ? d[0] : NULL;
    float *dg = b->affine ? d[1] : NULL, *db = b->affine ? d[2] : NULL, *gm = b->affine ? d[5] : NULL;
    switch (b->op) {
    case BB_BWD_SET: kcuda_bn_backward_set(dx, dg, db, d[3], d[4], gm, d[6], d[7], bd, s); break;
    case BB_BWD_SCALED: kcuda_bn_backward_scaled(dx, dg, db, d[3], d[8], d[4], gm, d[6], d[7], bd, 1, s); break;
    case BB_BWD_SCALED_SET: kcuda_bn_backward_scaled(dx, dg, db, d[3], d[8], d[4], gm, d[6], d[7], bd, 0, s); break;
    default: kcuda_bn_backward(dx, dg, db, d[3], d[4], gm, d[6], d[7], bd, s);
    }
}

/* Every problem in one batched call: host arrays of the problems' buffers, NULL arrays
 * where every problem passes NULL (affine = 0: no gamma, beta, dgamma, dbeta). */
static void bb_batch(bb_case *b) {
    const int m = b->n < BB_MAXN ? b->n : BB_MAXN; /* b->n out of 1..KCUDA_MAX_BATCH: refused unread */
    float *a[9][BB_MAXN] = {{0}};
    for (int k = 0; k < 9; k++)
        for (int i = 0; i < m; i++) a[k][i] = k < b->p[i].nb ? b->p[i].d[k] : NULL;
    const kbn_desc *bd = &b->p[0].bd;
    const cudaStream_t s = b->p[0].s;
    float *const *aff6 = b->affine ? a[6] : NULL, *const *aff7 = b->affine ? a[7] : NULL;
    switch (b->op) {
    case BB_FWD:
        kcuda_bn_forward_train_batch(b->n, a[0], a[1], a[2], a[3], a[4], (const float *const *)a[5],
                                     (const float *const *)aff6, (const float *const *)aff7, bd, s);
        return;
    case BB_COEFS:
        kcuda_bn_coefs_train_batch(b->n, a[0], a[1], a[2], a[3], a[4], (const float *const *)a[5],
                                   (const float *const *)aff6, (const float *const *)aff7, bd, s);
        return;
    }
    float *dx[BB_MAXN] = {0};
    for (int i = 0; i < m; i++) dx[i] = bb_has_dx(b, i) ? a[0][i] : NULL;
    const int scaled = b->op == BB_BWD_SCALED || b->op == BB_BWD_SCALED_SET;
    const int set = b->op == BB_BWD_SET || b->op == BB_BWD_SCALED_SET;
    kcuda_bn_backward_batch(b->n, b->op == BB_BWD_NODX ? NULL : dx, b->affine ? a[1] : NULL,
                            b->affine ? a[2] : NULL, (const float *const *)a[3],
                            scaled ? (const float *const *)a[8] : NULL, (const float *const *)a[4],
                            b->affine ? (const float *const *)a[5] : NULL, (const float *const *)a[6],
                            (const float *const *)a[7], bd, set, s);
}

static void bb_reset(bb_case *b) {
    for (int i = 0; i < b->n; i++) ol_reset(&b->p[i]);
}

/* Every problem's buffers bit for bit want's. */
static void bb_same(bb_case *b, float **want[], const char *tag, const char *when) {
    for (int i = 0; i < b->n; i++) {
        float **got = ol_snap(&b->p[i]);
        for (int k = 0; k < b->p[i].nb; k++)
            cr_expect(memcmp(got[k], want[i][k], (size_t)b->p[i].n[k] * sizeof(float)) == 0,
                      "%s: problem %d of %d, buffer %d %s", tag, i, b->n, k, when);
        ol_snap_free(got);
    }
}

/* The kernels the single path launches for one problem (one-launch mode: the deferred
 * coefficients' and a backward without dx's second launch is gone; nothing asked,
 * nothing launched). */
static int bb_kernels(const bb_case *b, int one) {
    if (b->op == BB_FWD) return 2;
    if (b->op == BB_COEFS) return one ? 1 : 2;
    if (!b->affine && b->op == BB_BWD_NODX) return 0;
    return one && b->op == BB_BWD_NODX ? 1 : 2;
}

/* b's batched call against its n single calls, eagerly and replayed from a recording of
 * launches[one] * bb_kernels kernel nodes (launches: 1 where every problem fits at once),
 * with one-launch mode off (one = 0) and on; launches[one] 0: not in that mode. */
static void bb_check(bb_case *b, const char *shape, const int launches[2]) {
    for (int one = 0; one < 2; one++) {
        if (!launches[one]) continue;
        kcuda_set_one_launch(one);
        char tag[192];
        snprintf(tag, sizeof tag, "%s%s, %s, %s", bb_name[b->op], b->affine ? "" : " (no affine)", shape,
                 one ? "one-launch" : "two launches");
        float **ref[BB_MAXN];
        for (int i = 0; i < b->n; i++) {
            ol_reset(&b->p[i]);
            bb_single(b, i);
            ref[i] = ol_snap(&b->p[i]);
        }
        bb_reset(b);
        bb_batch(b);
        bb_same(b, ref, tag, "is not its single call's (batched, eager)");
        const cudaStream_t s = b->p[0].s;
        cudaGraph_t g;
        OL_CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        bb_reset(b);
        bb_batch(b);
        OL_CK(cudaStreamEndCapture(s, &g));
        const int kn = graph_kernels(g);
        cr_expect_eq(kn, launches[one] * bb_kernels(b, one), "%s: the batched call recorded %d kernels, want %d", tag,
                     kn, launches[one] * bb_kernels(b, one));
        cudaGraphExec_t e;
        OL_CK(cudaGraphInstantiate(&e, g, 0));
        OL_CK(cudaGraphDestroy(g));
        for (int r = 0; r < 2; r++) {
            OL_CK(cudaGraphLaunch(e, s));
            bb_same(b, ref, tag, r ? "is not its single call's (batched, replay 2)"
                                   : "is not its single call's (batched, replay 1)");
        }
        OL_CK(cudaGraphExecDestroy(e));
        for (int i = 0; i < b->n; i++) ol_snap_free(ref[i]);
        cr_expect(!kcuda_last_error(), "%s: %s", tag, kcuda_last_error());
    }
    kcuda_set_one_launch(0);
}

/* Every entry point and mode, affine and not, on (n, N, C, HW): one range per channel
 * (G = 1: 18 values); 3 ranges of 1,000 values (bn_groups: 3,000 values, no range under
 * 1,024 -> 3); 3 ranges of 734, 734 and 732 (2,200 values: the last range shorter). */
static void bb_shapes(const int *ops, int nops) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[3][4] = {{3, 2, 4, 9}, {4, 3, 4, 1000}, {5, 2, 3, 1100}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < nops; k++)
            for (int affine = 0; affine < 2; affine++) {
                bb_case b;
                bb_new(&b, ops[k], affine, sh[i][0], sh[i][1], sh[i][2], sh[i][3], s);
                char shape[64];
                snprintf(shape, sizeof shape, "n %d, N %d C %d HW %d", sh[i][0], sh[i][1], sh[i][2], sh[i][3]);
                bb_check(&b, shape, (const int[2]){1, 1});
                bb_free(&b);
            }
    ol_end(gpu, s);
}

Test(cuda_batch_bn, forwards_equal_single_calls_bit_for_bit) {
    const int ops[2] = {BB_FWD, BB_COEFS};
    bb_shapes(ops, 2);
}

Test(cuda_batch_bn, backwards_equal_single_calls_bit_for_bit) {
    const int ops[6] = {BB_BWD, BB_BWD_SET, BB_BWD_SCALED, BB_BWD_SCALED_SET, BB_BWD_NODX, BB_BWD_HOLES};
    bb_shapes(ops, 6);
}

/* 8,192 channels of 2 values: one-launch mode counts on 8,192 of the lane's
 * KCUDA_COUNT_CAP (16,384) counters per problem, so 3 problems go 2 + 1 (twice the
 * kernels), each with its own counters and partials within its launch. (Two-launch mode
 * takes 2 C G = 16,384 of KCUDA_RED_CAP's 2^20 partials per problem: all 3 at once, as
 * above. Running out of partials first would take C G > 2^15 per problem, and running
 * out of counters already takes 24,576 blocks per launch, ~9 s on the emulator: so the
 * deferred coefficients only, whose one kernel is where forward and backward share the
 * code that splits the problems and places each one's partials and counters.) */
Test(cuda_batch_bn, problems_beyond_the_lanes_counters_go_in_turns) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bb_case b;
    bb_new(&b, BB_COEFS, 1, 3, 2, 8192, 1, s);
    bb_check(&b, "n 3, N 2 C 8192 HW 1", (const int[2]){0, 2});
    bb_free(&b);
    ol_end(gpu, s);
}

/* sync_bn has no batched path: kcuda_bn_batch_ok says 0, and each batched call records an
 * error and leaves every buffer as it was; so does a number of problems outside
 * 1..KCUDA_MAX_BATCH. */
Test(cuda_batch_bn, sync_bn_and_bad_counts_are_refused_untouched) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const kbn_sync sync = {.size = 1};
    const int ops[3] = {BB_FWD, BB_COEFS, BB_BWD};
    for (int k = 0; k < 3; k++) {
        bb_case b;
        bb_new(&b, ops[k], 1, 3, 2, 4, 9, s);
        float **init[BB_MAXN];
        for (int i = 0; i < b.n; i++) {
            init[i] = calloc(OL_MAXBUF, sizeof *init[i]);
            for (int j = 0; j < b.p[i].nb; j++) init[i][j] = b.p[i].h[j];
        }
        bb_reset(&b);
        OL_CK(cudaStreamSynchronize(s));
        cr_expect(kcuda_bn_batch_ok(&b.p[0].bd), "a plain batch norm has a batched path");
        const kbn_desc plain = b.p[0].bd;
        const int bad_n[3] = {0, KCUDA_MAX_BATCH + 1, 3};
        for (int r = 0; r < 3; r++) {
            const int n = b.n;
            b.p[0].bd = plain;
            if (r == 2) b.p[0].bd.sync = &sync;
            else b.n = bad_n[r];
            cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
            if (r == 2) cr_expect(!kcuda_bn_batch_ok(&b.p[0].bd), "sync_bn has no batched path");
            bb_batch(&b);
            b.n = n;
            cr_expect(kcuda_last_error() != NULL, "%s, %s: no error recorded", bb_name[b.op],
                      r == 2 ? "sync_bn" : "a bad number of problems");
            kcuda_clear_error();
            OL_CK(cudaStreamSynchronize(s));
            bb_same(&b, init, bb_name[b.op], "was changed by a refused call");
        }
        for (int i = 0; i < b.n; i++) free(init[i]);
        bb_free(&b);
    }
    ol_end(gpu, s);
}

/* Probes for a usable device in a child process (see the top of the file). Returns 1
 * when usable; else 0 with the reason in why. */
static int probe_device(char *why, size_t n) {
    int fd[2];
    if (pipe(fd) != 0) { snprintf(why, n, "pipe failed"); return 0; }
    pid_t pid = fork();
    if (pid < 0) { snprintf(why, n, "fork failed"); return 0; }
    if (pid == 0) {
        char err[512] = "ok";
        close(fd[0]);
        rt_backend *be = rt_backend_cuda_new(err, sizeof err);
        if (be) { be->destroy(be); snprintf(err, sizeof err, "ok"); }
        ssize_t w = write(fd[1], err, strlen(err) + 1);
        _exit(w > 0 && be ? 0 : 1);
    }
    close(fd[1]);
    char buf[512] = {0};
    ssize_t got = 0, r;
    while (got < (ssize_t)sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
    if (WIFSIGNALED(st)) snprintf(why, n, "CRASH: the device probe died of signal %d", WTERMSIG(st));
    else snprintf(why, n, "%s", buf[0] ? buf : "the device probe failed");
    return 0;
}

int main(int argc, char *argv[]) {
    char why[512];
    if (!probe_device(why, sizeof why)) {
        if (!strncmp(why, "CRASH", 5)) { fprintf(stderr, "%s\n", why); return 1; }
        printf("SKIP: %s\n", why);
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}

#else /* !DARTSC_HAVE_CUDA */

int main(void) {
    char err[256];
    rt_backend *be = rt_backend_cuda_new(err, sizeof err);
    if (be) be->destroy(be); /* cannot happen: the fallback always says no */
    printf("SKIP: %s\n", err);
    (void)expect_close;
    return 77;
}

#endif

/* ---- batched convolutions (kcuda_conv2d_*_batch; kcuda.h "batched launches") ----
 * n = 3..5 problems of one descriptor, each with its own random inputs and pre-filled
 * outputs (so a data or filter gradient is added onto different values, and a written
 * one must overwrite them), issued by one batched call must give every problem the bits
 * of a single call (memcmp), with one-launch reductions off and on. The recording of the
 * batched call has the single call's kernel nodes (each kernel launched once for all the
 * problems), times the launches where the problems' partials do not fit the lane's
 * buffer at once, and its replay gives the same bits again. Each problem's single-call
 * result is also compared with the CPU twin (SAME_ORDER for the depthwise kernels,
 * LIBRARY for the own 1x1; see the tolerances at the top). The kernels are called through
 * kcuda directly on a stream of the test's own (ol_begin). */
#ifdef DARTSC_HAVE_CUDA

#define BC_MAX 5
enum { BC_X, BC_W, BC_DY, BC_Y, BC_DX, BC_DW, BC_NBUF }; /* inputs, then the outputs of the three passes */
enum { BC_FWD, BC_DATA, BC_FILTER };
typedef struct bc_case {
    cudaStream_t s;
    kconv2d_desc d;
    int n;
    int64_t len[BC_NBUF];        /* floats per problem */
    float *h[BC_NBUF][BC_MAX];   /* host: the inputs and the outputs' initial contents */
    float *dev[BC_NBUF][BC_MAX]; /* device */
    float *scratch;
} bc_case;

/* n problems of d, seeded from seed. */
static void bc_new(bc_case *c, const kconv2d_desc *d, int n, uint64_t seed, cudaStream_t s) {
    memset(c, 0, sizeof *c);
    cr_assert(n >= 1 && n <= BC_MAX);
    c->s = s;
    c->d = *d;
    c->n = n;
    const int64_t nx = (int64_t)d->N * d->C * d->H * d->W, ny = (int64_t)d->N * d->K * d->P * d->Q,
                  nw = (int64_t)d->K * (d->C / d->groups) * d->R * d->S;
    const int64_t len[BC_NBUF] = {nx, nw, ny, ny, nx, nw};
    for (int k = 0; k < BC_NBUF; k++) {
        c->len[k] = len[k];
        for (int i = 0; i < n; i++) {
            const size_t bytes = (size_t)len[k] * sizeof(float);
            c->h[k][i] = malloc(bytes);
            cr_assert(c->h[k][i]);
            tu_fill_uniform(c->h[k][i], len[k], -1.f, 1.f, seed + 16 * (uint64_t)i + (uint64_t)k);
            OL_CK(cudaMalloc((void **)&c->dev[k][i], bytes));
            OL_CK(cudaMemcpy(c->dev[k][i], c->h[k][i], bytes, cudaMemcpyHostToDevice));
        }
    }
    OL_CK(cudaMalloc((void **)&c->scratch, (kcuda_conv2d_scratch_floats(d) + 1) * sizeof(float)));
}

static void bc_free(bc_case *c) {
    for (int k = 0; k < BC_NBUF; k++)
        for (int i = 0; i < c->n; i++) {
            cudaFree(c->dev[k][i]);
            free(c->h[k][i]);
        }
    cudaFree(c->scratch);
}

/* Output buffer k of every problem back to its initial contents. */
static void bc_reset(bc_case *c, int k) {
    OL_CK(cudaStreamSynchronize(c->s));
    for (int i = 0; i < c->n; i++)
        OL_CK(cudaMemcpy(c->dev[k][i], c->h[k][i], (size_t)c->len[k] * sizeof(float), cudaMemcpyHostToDevice));
}

/* Host copies of output buffer k of every problem (freed by bc_snap_free). */
static float **bc_snap(bc_case *c, int k) {
    OL_CK(cudaStreamSynchronize(c->s));
    float **o = calloc(BC_MAX, sizeof *o);
    for (int i = 0; i < c->n; i++) {
        o[i] = malloc((size_t)c->len[k] * sizeof(float));
        OL_CK(cudaMemcpy(o[i], c->dev[k][i], (size_t)c->len[k] * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return o;
}
static void bc_snap_free(float **o) {
    for (int i = 0; i < BC_MAX; i++) free(o[i]);
    free(o);
}

static int bc_out(int op) { return op == BC_FWD ? BC_Y : op == BC_DATA ? BC_DX : BC_DW; }

/* Problem i by the single entry point of op (relu: the fused ReLU; set: dx written). */
static void bc_single(bc_case *c, int op, int relu, int set, int i) {
    float *const *b[BC_NBUF] = {c->dev[0], c->dev[1], c->dev[2], c->dev[3], c->dev[4], c->dev[5]};
    const kconv2d_desc *d = &c->d;
    float *x = b[BC_X][i], *w = b[BC_W][i], *dy = b[BC_DY][i];
    switch (op) {
    case BC_FWD:
        if (relu) kcuda_conv2d_relu_forward(b[BC_Y][i], x, w, d, c->scratch, c->s);
        else kcuda_conv2d_forward(b[BC_Y][i], x, w, d, c->scratch, c->s);
        break;
    case BC_DATA:
        if (set) kcuda_conv2d_backward_data_set(b[BC_DX][i], dy, w, relu ? x : NULL, d, c->scratch, c->s);
        else if (relu) kcuda_conv2d_relu_backward_data(b[BC_DX][i], dy, w, x, d, c->scratch, c->s);
        else kcuda_conv2d_backward_data(b[BC_DX][i], dy, w, d, c->scratch, c->s);
        break;
    default:
        if (relu) kcuda_conv2d_relu_backward_filter(b[BC_DW][i], dy, x, d, c->scratch, c->s);
        else kcuda_conv2d_backward_filter(b[BC_DW][i], dy, x, d, c->scratch, c->s);
    }
}

/* All problems by one batched call; out: the output pointers (NULL: the case's). */
static void bc_batch(bc_case *c, int op, int relu, int set, float *const *out) {
    const float *x[BC_MAX], *w[BC_MAX], *dy[BC_MAX];
    for (int i = 0; i < c->n; i++) {
        x[i] = c->dev[BC_X][i];
        w[i] = c->dev[BC_W][i];
        dy[i] = c->dev[BC_DY][i];
    }
    if (!out) out = c->dev[bc_out(op)];
    switch (op) {
    case BC_FWD: kcuda_conv2d_forward_batch(c->n, out, x, w, &c->d, relu, c->s); break;
    case BC_DATA: kcuda_conv2d_backward_data_batch(c->n, out, dy, w, relu ? x : NULL, &c->d, set, c->s); break;
    default: kcuda_conv2d_backward_filter_batch(c->n, out, dy, x, &c->d, relu, c->s);
    }
}

/* Problem i by the CPU twin on the initial contents (caller frees). */
static float *bc_cpu(const bc_case *c, int op, int relu, int set, int i) {
    const int k = bc_out(op);
    float *o = malloc((size_t)c->len[k] * sizeof(float));
    memcpy(o, c->h[k][i], (size_t)c->len[k] * sizeof(float));
    float *scr = malloc((kcpu_conv2d_scratch_floats(&c->d) + 1) * sizeof(float));
    const float *x = c->h[BC_X][i], *w = c->h[BC_W][i], *dy = c->h[BC_DY][i];
    const kconv2d_desc *d = &c->d;
    switch (op) {
    case BC_FWD:
        if (relu) kcpu_conv2d_relu_forward(o, x, w, d, scr);
        else kcpu_conv2d_forward(o, x, w, d, scr);
        break;
    case BC_DATA:
        if (set && !kcpu_conv2d_sets_dx(d)) { /* the CPU writes dx on some paths only: zeroed, then added */
            memset(o, 0, (size_t)c->len[k] * sizeof(float));
            if (relu) kcpu_conv2d_relu_backward_data(o, dy, w, x, d, scr);
            else kcpu_conv2d_backward_data(o, dy, w, d, scr);
        } else if (set) kcpu_conv2d_backward_data_set(o, dy, w, relu ? x : NULL, d, scr);
        else if (relu) kcpu_conv2d_relu_backward_data(o, dy, w, x, d, scr);
        else kcpu_conv2d_backward_data(o, dy, w, d, scr);
        break;
    default:
        if (relu) kcpu_conv2d_relu_backward_filter(o, dy, x, d, scr);
        else kcpu_conv2d_backward_filter(o, dy, x, d, scr);
    }
    free(scr);
    return o;
}

/* Kernel nodes in a recording of the batched call (i < 0) or of problem i's single call;
 * the instantiated recording in *e when e is not NULL. */
/* tabs: NULL, or a recording as the backend makes one (kcuda_record_begin / _end): the
 * batched cuBLAS calls' pointer arrays written by the host into *tabs (to free). */
static int bc_record_ex(bc_case *c, int op, int relu, int set, int i, cudaGraphExec_t *e, void **tabs) {
    cudaGraph_t g;
    OL_CK(cudaStreamSynchronize(c->s));
    OL_CK(cudaStreamBeginCapture(c->s, cudaStreamCaptureModeThreadLocal));
    if (tabs) kcuda_record_begin();
    if (i < 0) bc_batch(c, op, relu, set, NULL);
    else bc_single(c, op, relu, set, i);
    OL_CK(cudaStreamEndCapture(c->s, &g));
    if (tabs) cr_assert_eq(kcuda_record_end(1, c->s, tabs), 0, "%s", kcuda_last_error());
    const int kernels = graph_kernels(g);
    if (e) OL_CK(cudaGraphInstantiate(e, g, 0));
    OL_CK(cudaGraphDestroy(g));
    return kernels;
}
static int bc_record(bc_case *c, int op, int relu, int set, int i, cudaGraphExec_t *e) {
    return bc_record_ex(c, op, relu, set, i, e, NULL);
}

static void bc_same(const bc_case *c, int k, float **got, float **want, const char *tag, const char *when) {
    for (int i = 0; i < c->n; i++)
        cr_expect(memcmp(got[i], want[i], (size_t)c->len[k] * sizeof(float)) == 0,
                  "%s: problem %d of %d differs from its single call %s", tag, i, c->n, when);
}

/* op in mode (relu, set) on c: batched against single calls, eager and (replay) replayed,
 * with one-launch reductions off and on (launches[1] > 0) or only on (launches[0] == 0);
 * the recording has launches[ol] times the single call's kernel nodes; the single calls
 * against the CPU twin at tol. */
static void bc_check_ex(bc_case *c, int op, int relu, int set, const int launches[2], int replay, double tol,
                        const char *shape) {
    static const char *const names[3] = {"forward", "data gradient", "filter gradient"};
    const int k = bc_out(op);
    char tag[256];
    snprintf(tag, sizeof tag, "%s: %s%s%s, n %d", shape, names[op], relu ? " (ReLU)" : "",
             op == BC_DATA ? (set ? " written" : " added") : "", c->n);
    cr_assert(kcuda_conv2d_batch_ok(&c->d, relu), "%s: no batched path", tag);
    float **ref = NULL;
    for (int ol = 0; ol < 2; ol++) {
        if (!launches[ol]) continue;
        kcuda_set_one_launch(ol);
        const char *mode = ol ? "(one-launch)" : "(two launches)";
        bc_reset(c, k);
        for (int i = 0; i < c->n; i++) bc_single(c, op, relu, set, i);
        float **single = bc_snap(c, k);
        if (ref) bc_same(c, k, single, ref, tag, "(single calls, one-launch against two launches)");
        bc_reset(c, k);
        bc_batch(c, op, relu, set, NULL);
        float **got = bc_snap(c, k);
        bc_same(c, k, got, single, tag, mode);
        bc_snap_free(got);
        cudaGraphExec_t e;
        const int nb = bc_record(c, op, relu, set, -1, &e), n1 = bc_record(c, op, relu, set, 0, NULL);
        cr_expect(n1 >= 1 && nb == launches[ol] * n1,
                  "%s %s: the batched recording has %d kernel nodes, the single %d, want %d x", tag, mode, nb, n1,
                  launches[ol]);
        if (replay) {
            bc_reset(c, k);
            OL_CK(cudaGraphLaunch(e, c->s));
            got = bc_snap(c, k);
            bc_same(c, k, got, single, tag, ol ? "(replayed, one-launch)" : "(replayed, two launches)");
            bc_snap_free(got);
        }
        OL_CK(cudaGraphExecDestroy(e));
        if (!ref) ref = single;
        else bc_snap_free(single);
    }
    kcuda_set_one_launch(0);
    cr_expect(!kcuda_last_error(), "%s: %s", tag, kcuda_last_error());
    for (int i = 0; i < c->n; i++) {
        float *cpu = bc_cpu(c, op, relu, set, i);
        char what[300];
        snprintf(what, sizeof what, "%s: problem %d against the CPU twin", tag, i);
        expect_close(what, ref[i], cpu, c->len[k], tol);
        free(cpu);
    }
    bc_snap_free(ref);
}
static void bc_check(bc_case *c, int op, int relu, int set, double tol, const char *shape) {
    bc_check_ex(c, op, relu, set, (const int[2]){1, 1}, 1, tol, shape);
}

/* Every pass and mode of c: forward and filter gradient with and without the ReLU, the
 * data gradient added and written, with and without it. */
static void bc_all_modes(bc_case *c, double tol, const char *shape) {
    for (int relu = 0; relu < 2; relu++) {
        bc_check(c, BC_FWD, relu, 0, tol, shape);
        bc_check(c, BC_DATA, relu, 0, tol, shape);
        bc_check(c, BC_DATA, relu, 1, tol, shape);
        bc_check(c, BC_FILTER, relu, 0, tol, shape);
    }
}

static kconv2d_desc bc_dw_desc(int N, int C, int H, int W, int R, int stride, int pad, int dil) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = C, .R = R, .S = R, .stride_h = stride, .stride_w = stride,
                      .pad_h = pad, .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = C};
    kconv2d_desc_finish(&d);
    return d;
}
static kconv2d_desc bc_pw_desc(int N, int C, int H, int W, int K) {
    kconv2d_desc d = {.N = N, .C = C, .H = H, .W = W, .K = K, .R = 1, .S = 1, .stride_h = 1, .stride_w = 1,
                      .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&d);
    return d;
}

/* DARTS' depthwise candidates in miniature (N 2, C 4, 8x8): sep_conv 3x3 / 5x5 (pad 1 / 2),
 * dil_conv 3x3 / 5x5 (dilation 2, pad 2 / 4), at stride 1 (normal cells) and 2 (reduction
 * cells); and a 3x3 over 3 samples of 20x20 (5 output ranges a channel in the blocked
 * filter gradient, 3 sample groups by planes). n = 3, 4, 5 in turn. */
static void bc_dw_candidates(const char *what) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[9][8] = {{2, 4, 8, 8, 3, 1, 1, 1}, {2, 4, 8, 8, 5, 1, 2, 1}, {2, 4, 8, 8, 3, 1, 2, 2},
                          {2, 4, 8, 8, 5, 1, 4, 2}, {2, 4, 8, 8, 3, 2, 1, 1}, {2, 4, 8, 8, 5, 2, 2, 1},
                          {2, 4, 8, 8, 3, 2, 2, 2}, {2, 4, 8, 8, 5, 2, 4, 2}, {3, 2, 20, 20, 3, 1, 1, 1}};
    for (int j = 0; j < 9; j++) {
        const int *v = sh[j];
        const kconv2d_desc d = bc_dw_desc(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        bc_case c;
        bc_new(&c, &d, 3 + j % 3, 100 + 100 * (uint64_t)j, s);
        char shape[128];
        snprintf(shape, sizeof shape, "%s N %d C %d %dx%d, %dx%d stride %d pad %d dil %d", what, v[0], v[1], v[2], v[3],
                 v[4], v[4], v[5], v[6], v[7]);
        bc_all_modes(&c, TOL_SAME_ORDER, shape);
        bc_free(&c);
    }
    ol_end(gpu, s);
}

Test(cuda_batch_conv, depthwise_darts_candidates_equal_single_calls) { bc_dw_candidates("depthwise"); }

Test(cuda_batch_conv, depthwise_filter_by_planes_equal_single_calls) {
    setenv("DARTSC_CUDA_DW_FILTER_PLANES", "1", 1);
    bc_dw_candidates("depthwise (filter gradient by planes)");
}

/* The own 1x1 kernels (DARTSC_CUDA_OWN_1X1): K = C = 8; K = 20 (a full and a partial
 * register block of 16); K 5 < C 12; K = C = 8 over 4 samples of 17x19 (11 filter-gradient
 * blocks, partial tiles of 32 pixels). */
Test(cuda_batch_conv, own_1x1_equal_single_calls) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const int sh[4][5] = {{2, 8, 6, 6, 8}, {3, 8, 5, 7, 20}, {2, 12, 6, 6, 5}, {4, 8, 17, 19, 8}};
    for (int j = 0; j < 4; j++) {
        const int *v = sh[j];
        const kconv2d_desc d = bc_pw_desc(v[0], v[1], v[2], v[3], v[4]);
        bc_case c;
        bc_new(&c, &d, 3 + j % 3, 2000 + 100 * (uint64_t)j, s);
        char shape[128];
        snprintf(shape, sizeof shape, "own 1x1 N %d C %d %dx%d K %d", v[0], v[1], v[2], v[3], v[4]);
        bc_all_modes(&c, TOL_LIBRARY, shape);
        bc_free(&c);
    }
    ol_end(gpu, s);
}

/* The stride-1 1x1s on cuBLAS batched (DARTSC_CUDA_BATCH_CUBLAS: one cublasSgemmBatched
 * over problems x samples, its pointer arrays written by a kernel into the lane's table).
 * Each problem against its single call: bit for bit on the emulator (one GEMM arithmetic
 * for both entry points); on a GPU within TOL_LIBRARY, since cuBLAS may pick another
 * kernel, another summation order, for another batch count (sums of <= 323 products here,
 * reassociated: ~1e-6 relative). Either way, two replays of a recording of the batched call
 * give the eager batched call's bits (deterministic), and the single calls are within
 * TOL_LIBRARY of the CPU twin. Shapes: K = C = 8; K 20 > C 8 on 5x7; K 5 < C 12; 1,500
 * samples of 1x1 (4,500 GEMMs: the pointer arrays in two calls of 4,096 and 404); K = C =
 * 64 over 200 samples (3 problems' filter products, 3.2 MB each, do not fit the lane's
 * 8 MB reduction buffer together: 2 problems, then 1). */
static void bcb_check(bc_case *c, int op, int set, const char *shape) {
    static const char *const names[3] = {"forward", "data gradient", "filter gradient"};
    const int k = bc_out(op);
    char tag[256];
    snprintf(tag, sizeof tag, "%s: %s%s, n %d", shape, names[op], op == BC_DATA ? (set ? " written" : " added") : "",
             c->n);
    cr_assert(kcuda_conv2d_batch_ok(&c->d, 0) && !kcuda_conv2d_batch_ok(&c->d, 1), "%s: batch_ok", tag);
    bc_reset(c, k);
    for (int i = 0; i < c->n; i++) bc_single(c, op, 0, set, i);
    float **single = bc_snap(c, k);
    bc_reset(c, k);
    bc_batch(c, op, 0, set, NULL);
    float **got = bc_snap(c, k);
    cr_expect(!kcuda_last_error(), "%s: %s", tag, kcuda_last_error());
#ifdef DARTSC_CUDA_EMU
    bc_same(c, k, got, single, tag, "(eager)");
#else
    for (int i = 0; i < c->n; i++) {
        char what[320];
        snprintf(what, sizeof what, "%s: problem %d batched against its single call", tag, i);
        expect_close(what, got[i], single[i], c->len[k], TOL_LIBRARY);
    }
#endif
    /* recorded twice: as captured (a kernel writes each call's pointer arrays) and as the
       backend records (the host writes them into the recording's table: no such kernel) */
    cudaGraphExec_t e[2];
    void *tabs = NULL;
    const long long f0 = kcuda_ptr_fills();
    const int kn0 = bc_record(c, op, 0, set, -1, &e[0]);
    const long long f1 = kcuda_ptr_fills();
    const int kn1 = bc_record_ex(c, op, 0, set, -1, &e[1], &tabs);
    cr_expect(f1 > f0 && kcuda_ptr_fills() == f1, "%s: pointer-array kernels %lld captured, %lld with the table", tag,
              f1 - f0, kcuda_ptr_fills() - f1);
    cr_expect(tabs && kn1 == kn0 - (int)(f1 - f0), "%s: %d kernel nodes with the table, %d without, %lld fills", tag,
              kn1, kn0, f1 - f0);
    for (int v = 0; v < 2; v++)
        for (int r = 0; r < 2; r++) {
            bc_reset(c, k);
            OL_CK(cudaGraphLaunch(e[v], c->s));
            float **rep = bc_snap(c, k);
            bc_same(c, k, rep, got, tag, v ? (r ? "(second replay with the recording's table)"
                                                : "(replay with the recording's table)")
                                           : (r ? "(second replay against the eager batched call)"
                                                : "(replay against the eager batched call)"));
            bc_snap_free(rep);
        }
    OL_CK(cudaGraphExecDestroy(e[0]));
    OL_CK(cudaGraphExecDestroy(e[1]));
    OL_CK(cudaStreamSynchronize(c->s));
    kcuda_record_free(tabs);
    for (int i = 0; i < c->n; i++) {
        float *cpu = bc_cpu(c, op, 0, set, i);
        char what[300];
        snprintf(what, sizeof what, "%s: problem %d against the CPU twin", tag, i);
        expect_close(what, single[i], cpu, c->len[k], TOL_LIBRARY);
        free(cpu);
    }
    bc_snap_free(got);
    bc_snap_free(single);
}

/* Every pass and mode of n problems of each shape {N, C, H, W, K, n}, at stride 1 or 2. */
static void bcb_shapes(const int (*sh)[6], int count, int stride, uint64_t seed) {
    setenv("DARTSC_CUDA_BATCH_CUBLAS", "1", 1);
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    for (int j = 0; j < count; j++) {
        const int *v = sh[j];
        kconv2d_desc d = bc_pw_desc(v[0], v[1], v[2], v[3], v[4]);
        d.stride_h = d.stride_w = stride;
        kconv2d_desc_finish(&d);
        bc_case c;
        bc_new(&c, &d, v[5], seed + 100 * (uint64_t)j, s);
        char shape[128];
        snprintf(shape, sizeof shape, "1x1 stride %d by cuBLAS N %d C %d %dx%d K %d", stride, v[0], v[1], v[2], v[3],
                 v[4]);
        bcb_check(&c, BC_FWD, 0, shape);
        bcb_check(&c, BC_DATA, 0, shape);
        bcb_check(&c, BC_DATA, 1, shape);
        bcb_check(&c, BC_FILTER, 0, shape);
        bc_free(&c);
    }
    ol_end(gpu, s);
}

Test(cuda_batch_conv, cublas_1x1_batched_gemms_equal_single_calls) {
    /* 8192 x 5 GEMMs: 10 calls of 4096, whose pointer arrays take two chunks of a recording's table */
    const int sh[6][6] = {{2, 8, 6, 6, 8, 3},    {3, 8, 5, 7, 20, 4},    {2, 12, 6, 6, 5, 5},
                          {1500, 2, 1, 1, 2, 3}, {200, 64, 1, 1, 64, 3}, {8192, 2, 1, 1, 2, 5}};
    bcb_shapes(sh, 6, 1, 7000);
}

/* FactorizedReduce's strided 1x1 on cuBLAS batched (DARTSC_CUDA_BATCH_CUBLAS): the dense
 * copies the single path gathers into the caller's scratch go to the lane's reduction
 * buffer, one gather and one scatter launch for the problems that fit (bcb_check's
 * comparisons). Stride 2 on 8x8 (K = C = 8) and on odd 9x7 (K 5 < C 12; the last row and
 * column never sampled); 5 problems of 4 x 512 channels of 32x32 (dense copies of 2 MB:
 * 4 fit the 8 MB buffer, then 1). */
Test(cuda_batch_conv, cublas_strided_1x1_batched_equal_single_calls) {
    const int sh[3][6] = {{2, 8, 8, 8, 8, 3}, {3, 12, 9, 7, 5, 4}, {4, 512, 32, 32, 4, 5}};
    bcb_shapes(sh, 3, 2, 7600);
}

/* Five problems whose partials or counters do not all fit the lane's buffers at once:
 * - an own 1x1 K = C = 64 over 2 samples of 32x32: 64 blocks of 4,096 partials, 262,144
 *   a problem, 4 fit KCUDA_RED_CAP = 2^20 doubles (above the one-launch limit, so two
 *   kernels either way): two launches of each kernel;
 * - one-launch, a depthwise 3x3 over 3,300 channels of one 1x1 sample: 3,300 counters a
 *   problem, 4 fit the lane's 16,384: two launches of its one kernel. (Its partials,
 *   29,700 doubles a problem, fit: a depthwise split by partials needs more than 2^20 / 49
 *   = 21,400 blocks in all, minutes on the emulator; the 1x1 splits by partials through
 *   the same kb_fit. Two-launch mode and the replay of this shape: the other tests.) */
Test(cuda_batch_conv, problems_beyond_the_lane_buffers_split_into_launches) {
    setenv("DARTSC_CUDA_OWN_1X1", "1", 1);
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bc_case c;
    const kconv2d_desc pw = bc_pw_desc(2, 64, 32, 32, 64);
    bc_new(&c, &pw, 5, 3000, s);
    bc_check_ex(&c, BC_FILTER, 0, 0, (const int[2]){2, 2}, 1, TOL_LIBRARY, "own 1x1 N 2 C 64 32x32 K 64");
    bc_free(&c);
    const kconv2d_desc dw = bc_dw_desc(1, 3300, 1, 1, 3, 1, 1, 1);
    bc_new(&c, &dw, 5, 3100, s);
    bc_check_ex(&c, BC_FILTER, 1, 0, (const int[2]){0, 2}, 0, TOL_SAME_ORDER, "depthwise N 1 C 3300 1x1, 3x3");
    bc_free(&c);
    ol_end(gpu, s);
}

/* A NULL output skips its problem, as a single call skips a NULL gradient: the others get
 * their single calls' bits, the skipped buffer keeps its contents; all NULL issues nothing. */
Test(cuda_batch_conv, null_outputs_skip_their_problems) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bc_case c;
    const kconv2d_desc d = bc_dw_desc(2, 4, 8, 8, 3, 1, 1, 1);
    bc_new(&c, &d, 4, 4000, s);
    for (int op = BC_DATA; op <= BC_FILTER; op++) {
        const int k = bc_out(op);
        bc_reset(&c, k);
        for (int i = 0; i < c.n; i++)
            if (i != 1) bc_single(&c, op, 0, 0, i);
        float **want = bc_snap(&c, k);
        bc_reset(&c, k);
        float *out[BC_MAX];
        for (int i = 0; i < c.n; i++) out[i] = i == 1 ? NULL : c.dev[k][i];
        bc_batch(&c, op, 0, 0, out);
        float **got = bc_snap(&c, k);
        bc_same(&c, k, got, want, "depthwise 3x3, problem 1 without output", op == BC_DATA ? "(data)" : "(filter)");
        cr_expect(memcmp(got[1], c.h[k][1], (size_t)c.len[k] * sizeof(float)) == 0, "the skipped output changed");
        bc_snap_free(got);
        bc_snap_free(want);
        bc_reset(&c, k);
        bc_batch(&c, op, 0, 0, (float *[BC_MAX]){NULL}); /* every output NULL */
        got = bc_snap(&c, k);
        for (int i = 0; i < c.n; i++)
            cr_expect(memcmp(got[i], c.h[k][i], (size_t)c.len[k] * sizeof(float)) == 0, "all-NULL call wrote");
        bc_snap_free(got);
    }
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    bc_free(&c);
    ol_end(gpu, s);
}

/* Shapes and calls without a batched path: *_batch_ok says 0, and the batched call records
 * an error and leaves every output as it was. The own 1x1 kernels are off here (the
 * default), so a 1x1 goes to cuBLAS. */
static void bc_expect_refused(bc_case *c, int op, int relu, int set, int n, const char *what) {
    const int k = bc_out(op), keep = c->n;
    kcuda_clear_error();
    bc_reset(c, k);
    c->n = n;
    bc_batch(c, op, relu, set, NULL);
    c->n = keep;
    OL_CK(cudaStreamSynchronize(c->s));
    cr_expect(kcuda_last_error() != NULL, "%s: the batched call recorded no error", what);
    kcuda_clear_error();
    float **got = bc_snap(c, k);
    for (int i = 0; i < c->n; i++)
        cr_expect(memcmp(got[i], c->h[k][i], (size_t)c->len[k] * sizeof(float)) == 0, "%s: output %d changed", what, i);
    bc_snap_free(got);
}

Test(cuda_batch_conv, shapes_without_batched_path_are_refused) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    kconv2d_desc dense = {.N = 2, .C = 3, .H = 6, .W = 6, .K = 4, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1,
                          .pad_h = 1, .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 1};
    kconv2d_desc_finish(&dense);
    kconv2d_desc strided = bc_pw_desc(2, 4, 8, 8, 3);
    strided.stride_h = strided.stride_w = 2;
    kconv2d_desc_finish(&strided);
    const kconv2d_desc none[5] = {
        dense,                             /* cuDNN */
        bc_pw_desc(2, 8, 6, 6, 8),         /* 1x1 by cuBLAS (own kernels off) */
        strided,                           /* strided 1x1: gather through the scratch */
        bc_dw_desc(2, 4, 8, 8, 1, 1, 0, 1), /* depthwise 1x1: the general kernels */
        bc_dw_desc(1, 2, 120, 120, 3, 1, 1, 1), /* a padded plane beyond the plane kernels' tile */
    };
    const char *names[5] = {"dense 3x3", "1x1 by cuBLAS", "strided 1x1", "depthwise 1x1", "depthwise 120x120"};
    for (int j = 0; j < 5; j++) {
        cr_expect(!kcuda_conv2d_batch_ok(&none[j], 0) && !kcuda_conv2d_batch_ok(&none[j], 1), "%s: batch_ok", names[j]);
        bc_case c;
        bc_new(&c, &none[j], 3, 5000 + 100 * (uint64_t)j, s);
        for (int op = BC_FWD; op <= BC_FILTER; op++) bc_expect_refused(&c, op, 0, 0, 3, names[j]);
        bc_free(&c);
    }
    /* a shape with a batched path, called wrongly: no problem, too many, x_relu for some only */
    const kconv2d_desc ok = bc_dw_desc(2, 4, 8, 8, 3, 1, 1, 1);
    cr_expect(kcuda_conv2d_batch_ok(&ok, 0) && kcuda_conv2d_batch_ok(&ok, 1));
    bc_case c;
    bc_new(&c, &ok, 3, 6000, s);
    bc_expect_refused(&c, BC_FWD, 0, 0, 0, "n = 0");
    float *many[KCUDA_MAX_BATCH + 1];
    const float *in[KCUDA_MAX_BATCH + 1];
    for (int i = 0; i <= KCUDA_MAX_BATCH; i++) {
        many[i] = c.dev[BC_Y][i % c.n];
        in[i] = c.dev[BC_X][i % c.n];
    }
    kcuda_clear_error();
    kcuda_conv2d_forward_batch(KCUDA_MAX_BATCH + 1, many, in, in, &ok, 0, s);
    cr_expect(kcuda_last_error() != NULL, "n = KCUDA_MAX_BATCH + 1 recorded no error");
    kcuda_clear_error();
    const float *xr[3] = {c.dev[BC_X][0], NULL, c.dev[BC_X][2]};
    const float *dy[3] = {c.dev[BC_DY][0], c.dev[BC_DY][1], c.dev[BC_DY][2]};
    const float *w[3] = {c.dev[BC_W][0], c.dev[BC_W][1], c.dev[BC_W][2]};
    bc_reset(&c, BC_DX);
    kcuda_conv2d_backward_data_batch(3, c.dev[BC_DX], dy, w, xr, &ok, 0, s);
    cr_expect(kcuda_last_error() != NULL, "x_relu for some problems only recorded no error");
    kcuda_clear_error();
    float **got = bc_snap(&c, BC_DX);
    for (int i = 0; i < 3; i++)
        cr_expect(memcmp(got[i], c.h[BC_DX][i], (size_t)c.len[BC_DX] * sizeof(float)) == 0, "x_relu mixed: dx %d changed", i);
    bc_snap_free(got);
    bc_free(&c);
    ol_end(gpu, s);
}

/* ---- batched MIXED ops (kcuda_mixed_*_batch; suite cuda_batch_mixed) ----
 * m mixed ops of one shape issued as one call give each exactly the bits of its own single
 * call: every buffer (outputs, softmaxes, the accumulated input and alpha gradients, the
 * alpha matrix's unused row, the inputs) memcmp-equal, eagerly and in two replays of a
 * recording whose kernel count is one single call's per launch of up to 16 problems,
 * one-launch mode off and on. The single calls themselves against the launch sequence
 * they replaced (a softmax and a weighted sum; the dxs, the dot products, and the alpha
 * gradient through the softmax in three launches), composed from kcuda_softmax_*,
 * kcuda_wsum_* and host gathers. And the runtime batching mixed ops of a recorded pass. */
#define BM_MAXM 17
#define BM_MAXN 9
#define BM_MAXBUF (3 + BM_MAXM * (4 + 3 * BM_MAXN))
enum { BM_FWD, BM_BWD, BM_BWD_NO_ALPHA };
static const char *const bm_name[3] = {"forward", "backward", "backward without d alpha"};
typedef struct bm_case {
    cudaStream_t s;
    int m, n, O, C, HW, aff_on, alias;
    int64_t len;
    int64_t cols[BM_MAXN];
    unsigned set;
    int nb;
    float *d[BM_MAXBUF], *d0[BM_MAXBUF], *h[BM_MAXBUF];
    int64_t cnt[BM_MAXBUF];
    int alpha, dalpha; /* buffers of (m + 1) x O: problem i uses row m - 1 - i, row m none */
    int y[BM_MAXM], sm[BM_MAXM], dy[BM_MAXM];
    int xs[BM_MAXM][BM_MAXN], dxs[BM_MAXM][BM_MAXN], aff[BM_MAXM][BM_MAXN]; /* -1: NULL */
    /* the call's host arrays (bm_ptrs): problem i's candidate k at i * n + k */
    float *Y[BM_MAXM], *SM[BM_MAXM], *DA[BM_MAXM], *DX[BM_MAXM * BM_MAXN];
    const float *A[BM_MAXM], *DY[BM_MAXM], *XS[BM_MAXM * BM_MAXN], *AF[BM_MAXM * BM_MAXN];
    /* another op family's single and batched calls on these buffers (NULL: MIXED's) */
    void (*single)(struct bm_case *c, int op, int i);
    void (*batch)(struct bm_case *c, int op, int m);
} bm_case;

static int bm_buf(bm_case *c, int64_t n, float lo, float hi, uint64_t seed) {
    return tb_add(&c->nb, BM_MAXBUF, c->d, c->d0, c->h, c->cnt, n, lo, hi, seed);
}

static void bm_ptrs(bm_case *c) {
    for (int i = 0; i < c->m; i++) {
        const int row = c->m - 1 - i;
        c->Y[i] = c->d[c->y[i]];
        c->SM[i] = c->d[c->sm[i]];
        c->DY[i] = c->d[c->dy[i]];
        c->A[i] = c->d[c->alpha] + row * c->O;
        c->DA[i] = c->d[c->dalpha] + row * c->O;
        for (int k = 0; k < c->n; k++) {
            const int j = i * c->n + k;
            c->XS[j] = c->d[c->xs[i][k]];
            c->DX[j] = c->dxs[i][k] < 0 ? NULL : c->d[c->dxs[i][k]];
            c->AF[j] = c->aff[i][k] < 0 ? NULL : c->d[c->aff[i][k]];
        }
    }
}

/* m problems of n candidates over (N, C, HW) with O alpha columns; cols 1, 2, 4, 5, ...
 * (so columns 0 and 3 absent), candidate k's dx NULL where (k + i) % 3 == 2, written (set)
 * for k = 0 and 3; aff_on: every even candidate read through a deferred batch norm's
 * coefficients; alias: candidates 0 and 2 the same input with one gradient (never set). */
static void bm_new(bm_case *c, int m, int n, int O, int N, int C, int HW, int aff_on, int alias, uint64_t seed,
                   cudaStream_t s) {
    static const int64_t cols[BM_MAXN] = {1, 2, 4, 5, 6, 7, 0, 3, 8};
    cr_assert(m <= BM_MAXM && n <= BM_MAXN);
    memset(c, 0, sizeof *c);
    c->s = s;
    c->m = m, c->n = n, c->O = O, c->C = C, c->HW = HW, c->aff_on = aff_on, c->alias = alias;
    c->len = (int64_t)N * C * HW;
    for (int k = 0; k < n; k++) c->cols[k] = cols[k] % O;
    c->set = alias ? 0x8u : 0x9u;
    c->alpha = bm_buf(c, (int64_t)(m + 1) * O, -1.5f, 1.5f, seed);
    c->dalpha = bm_buf(c, (int64_t)(m + 1) * O, -0.5f, 0.5f, seed + 1);
    for (int i = 0; i < m; i++) {
        const uint64_t q = seed + 100 * (uint64_t)(i + 1);
        c->y[i] = bm_buf(c, c->len, -1.f, 1.f, q);
        c->sm[i] = bm_buf(c, O, 0.02f, 0.3f, q + 1);
        c->dy[i] = bm_buf(c, c->len, -1.f, 1.f, q + 2);
        for (int k = 0; k < n; k++) {
            const int twin = alias && k == 2;
            c->xs[i][k] = twin ? c->xs[i][0] : bm_buf(c, c->len, -2.f, 2.f, q + 10 + 3 * (uint64_t)k);
            c->dxs[i][k] = twin ? c->dxs[i][0]
                           : (k + i) % 3 == 2 && !(alias && k == 0)
                               ? -1
                               : bm_buf(c, c->len, -0.5f, 0.5f, q + 11 + 3 * (uint64_t)k);
            c->aff[i][k] = aff_on && k % 2 == 0 ? bm_buf(c, 3 * (int64_t)C, 0.25f, 1.5f, q + 12 + 3 * (uint64_t)k) : -1;
        }
    }
    bm_ptrs(c);
}

static void bm_free(bm_case *c) { tb_free(&c->nb, c->d, c->d0, c->h); }
static void bm_reset(bm_case *c) { tb_reset(c->nb, c->d, c->d0, c->cnt, c->s); }

static float **bm_snap(bm_case *c) { return tb_snap(c->nb, BM_MAXBUF, c->d, c->cnt, c->s); }
static void bm_snap_free(float **o) { tb_snap_free(o); }

static void bm_same(bm_case *c, float **want, const char *tag, const char *when) {
    float **got = bm_snap(c);
    for (int k = 0; k < c->nb; k++)
        cr_expect(memcmp(got[k], want[k], (size_t)c->cnt[k] * sizeof(float)) == 0, "%s: buffer %d %s", tag, k, when);
    bm_snap_free(got);
}

static void bm_single(bm_case *c, int op, int i) {
    if (c->single) {
        c->single(c, op, i);
        return;
    }
    const float *const *af = c->aff_on ? c->AF + i * c->n : NULL;
    if (op == BM_FWD)
        kcuda_mixed_forward(c->Y[i], c->SM[i], c->A[i], c->XS + i * c->n, c->cols, c->n, c->O, c->len, af, c->C, c->HW,
                            c->s);
    else
        kcuda_mixed_backward(c->DX + i * c->n, op == BM_BWD ? c->DA[i] : NULL, c->DY[i], c->XS + i * c->n, c->SM[i],
                             c->cols, c->n, c->O, c->len, c->set, af, c->C, c->HW, c->s);
}

static void bm_batch(bm_case *c, int op, int m) {
    if (c->batch) {
        c->batch(c, op, m);
        return;
    }
    const float *const *af = c->aff_on ? c->AF : NULL;
    if (op == BM_FWD)
        kcuda_mixed_forward_batch(m, c->Y, c->SM, c->A, c->XS, c->cols, c->n, c->O, c->len, af, c->C, c->HW, c->s);
    else
        kcuda_mixed_backward_batch(m, c->DX, op == BM_BWD ? c->DA : NULL, c->DY, c->XS, (const float *const *)c->SM,
                                   c->cols, c->n, c->O, c->len, c->set, af, c->C, c->HW, c->s);
}

/* The kernel nodes of a recording of what issue(c, op) launches (after a reset). */
static int bm_kernels(bm_case *c, int op, void (*issue)(bm_case *, int), cudaGraphExec_t *e) {
    cudaGraph_t g;
    OL_CK(cudaStreamBeginCapture(c->s, cudaStreamCaptureModeThreadLocal));
    bm_reset(c);
    issue(c, op);
    OL_CK(cudaStreamEndCapture(c->s, &g));
    const int kn = graph_kernels(g);
    if (e) OL_CK(cudaGraphInstantiate(e, g, 0));
    OL_CK(cudaGraphDestroy(g));
    return kn;
}
static void bm_issue_batch(bm_case *c, int op) { bm_batch(c, op, c->m); }
static void bm_issue_single0(bm_case *c, int op) { bm_single(c, op, 0); }

/* The kernels one single call launches: the forward one; the backward without d alpha one
 * (the dxs), with it the dxs and dot products in one, the alpha gradient in a second
 * (one-launch: none), the dxs apart first where two alias. */
static int bm_single_kernels(const bm_case *c, int op, int one) {
    if (op != BM_BWD) return 1;
    return (one ? 1 : 2) + c->alias;
}

/* For every op and one-launch mode: the buffers after ref(c, op) (from a reset) are what
 * got(c, op) must leave, memcmp-equal, eagerly and in `replays` replays of a recording of
 * got, which has `launches` times a single call's kernels. what names the case, differs
 * the failure. */
static void bm_modes(bm_case *c, const char *what, void (*ref)(bm_case *, int), void (*got)(bm_case *, int),
                     int launches, int replays, const char *differs) {
    for (int op = BM_FWD; op <= BM_BWD_NO_ALPHA; op++)
        for (int one = 0; one < 2; one++) {
            kcuda_set_one_launch(one);
            char tag[224];
            snprintf(tag, sizeof tag, "%s, %s, %s", bm_name[op], what, one ? "one-launch" : "two launches");
            bm_reset(c);
            ref(c, op);
            float **want = bm_snap(c);
            bm_reset(c);
            got(c, op);
            bm_same(c, want, tag, differs);
            cudaGraphExec_t e;
            const int kn = bm_kernels(c, op, got, replays ? &e : NULL), wk = launches * bm_single_kernels(c, op, one);
            cr_expect_eq(kn, wk, "%s: the recording has %d kernels, want %d", tag, kn, wk);
            for (int r = 0; r < replays; r++) {
                OL_CK(cudaGraphLaunch(e, c->s));
                bm_same(c, want, tag, r ? "differs in replay 2" : "differs in replay 1");
            }
            if (replays) OL_CK(cudaGraphExecDestroy(e));
            bm_snap_free(want);
            cr_expect(!kcuda_last_error(), "%s: %s", tag, kcuda_last_error());
        }
    kcuda_set_one_launch(0);
}

static void bm_issue_singles(bm_case *c, int op) {
    for (int i = 0; i < c->m; i++) bm_single(c, op, i);
}
/* The batched call against the single calls (16 problems a launch). */
static void bm_check(bm_case *c, const char *shape) {
    char what[192];
    snprintf(what, sizeof what, "%s%s%s", shape, c->aff_on ? ", deferred batch norms" : "",
             c->alias ? ", an aliased input" : "");
    bm_modes(c, what, bm_issue_singles, bm_issue_batch, (c->m + 15) / 16, 2, "is not the single calls' (batched)");
}

/* Shapes: 3 problems of 3 candidates over 2x3x5x5 (150 values: under one block of the
 * reductions' 120 x 256 threads), plain and with deferred batch norms; 4 of 4 with an
 * input used twice; 5 of 8 over 2x2x160 with deferred batch norms (640 values); 2 of 1;
 * 3 of 3 over 2x4x5000 (40,000 values: every block of the dot products has a partial, and
 * the first 9,280 threads a second element). */
Test(cuda_batch_mixed, batched_equal_single_calls_bit_for_bit) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const struct { int m, n, O, N, C, HW, aff, alias; } sh[6] = {
        {3, 3, 5, 2, 3, 25, 0, 0}, {3, 3, 5, 2, 3, 25, 1, 0}, {4, 4, 8, 2, 3, 9, 1, 1},
        {5, 8, 8, 2, 2, 160, 1, 0}, {2, 1, 3, 1, 2, 7, 0, 0}, {3, 3, 8, 2, 4, 5000, 1, 0}};
    for (int j = 0; j < 6; j++) {
        bm_case c;
        bm_new(&c, sh[j].m, sh[j].n, sh[j].O, sh[j].N, sh[j].C, sh[j].HW, sh[j].aff, sh[j].alias, 700 + 50 * (uint64_t)j,
               s);
        char shape[96];
        snprintf(shape, sizeof shape, "m %d, n %d, O %d, N %d C %d HW %d", sh[j].m, sh[j].n, sh[j].O, sh[j].N, sh[j].C,
                 sh[j].HW);
        cr_expect(kcuda_mixed_batch_ok(c.n, c.O, c.len), "%s: no batched path", shape);
        bm_check(&c, shape);
        bm_free(&c);
    }
    ol_end(gpu, s);
}

/* 17 problems: 16 in one launch and the 17th alone (the kernel parameter table holds 16),
 * each problem's partials and counter its own within its launch. */
Test(cuda_batch_mixed, seventeen_problems_go_in_two_launches) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bm_case c;
    bm_new(&c, 17, 2, 4, 1, 2, 5, 1, 0, 900, s);
    bm_check(&c, "m 17, n 2, O 4, N 1 C 2 HW 5");
    bm_free(&c);
    ol_end(gpu, s);
}

/* The launch sequence the single calls replaced, from other kcuda entry points: the inputs
 * through their deferred batch norms on the host (fmaf: bn.cu's __fmaf_rn), the softmax
 * gathered into per-candidate weights on the host; forward kcuda_softmax_forward +
 * kcuda_wsum_forward; backward the dxs by kcuda_wsum_backward_set, the dot products by
 * kcuda_wsum_backward into a zeroed dw (dw[k] = 0 + (float)<dy, x_k>, the partials in the
 * same order), scattered into the columns on the host (a repeated column keeps the last),
 * and kcuda_softmax_backward on the row. */
static void bm_old(bm_case *c, int op, int i) {
    const int n = c->n;
    const float *xm[BM_MAXN];
    float *tmp[BM_MAXN + 2] = {0};
    for (int k = 0; k < n; k++) {
        const int xi = c->xs[i][k], ai = c->aff[i][k];
        if (ai < 0) {
            xm[k] = c->d[xi];
            continue;
        }
        const float *x = c->h[xi], *af = c->h[ai];
        float *v = malloc((size_t)c->len * sizeof *v);
        for (int64_t e = 0; e < c->len; e++) {
            const int64_t ch = e / c->HW % c->C;
            v[e] = fmaf(x[e] - af[ch], af[c->C + ch], af[2 * c->C + ch]);
        }
        OL_CK(cudaMalloc((void **)&tmp[k], (size_t)c->len * sizeof(float)));
        OL_CK(cudaMemcpy(tmp[k], v, (size_t)c->len * sizeof(float), cudaMemcpyHostToDevice));
        free(v);
        xm[k] = tmp[k];
    }
    float sm[64], w[BM_MAXN];
    OL_CK(cudaMalloc((void **)&tmp[n], 64 * sizeof(float)));
    OL_CK(cudaMalloc((void **)&tmp[n + 1], 64 * sizeof(float)));
    if (op == BM_FWD) kcuda_softmax_forward(c->SM[i], c->A[i], 1, c->O, c->s);
    OL_CK(cudaStreamSynchronize(c->s));
    OL_CK(cudaMemcpy(sm, c->SM[i], (size_t)c->O * sizeof(float), cudaMemcpyDeviceToHost));
    for (int k = 0; k < n; k++) w[k] = sm[c->cols[k]];
    OL_CK(cudaMemcpy(tmp[n], w, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    if (op == BM_FWD) {
        kcuda_wsum_forward(c->Y[i], xm, tmp[n], n, c->len, c->s);
    } else {
        kcuda_wsum_backward_set(c->DX + i * n, NULL, c->DY[i], xm, tmp[n], n, c->len, c->set, c->s);
        if (op == BM_BWD) {
            float dw[BM_MAXN], dcol[64] = {0};
            OL_CK(cudaMemsetAsync(tmp[n + 1], 0, (size_t)n * sizeof(float), c->s));
            kcuda_wsum_backward(NULL, tmp[n + 1], c->DY[i], xm, tmp[n], n, c->len, c->s);
            OL_CK(cudaStreamSynchronize(c->s));
            OL_CK(cudaMemcpy(dw, tmp[n + 1], (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
            for (int k = 0; k < n; k++) dcol[c->cols[k]] = dw[k];
            OL_CK(cudaMemcpy(tmp[n + 1], dcol, (size_t)c->O * sizeof(float), cudaMemcpyHostToDevice));
            kcuda_softmax_backward(c->DA[i], tmp[n + 1], c->SM[i], 1, c->O, c->s);
        }
    }
    OL_CK(cudaStreamSynchronize(c->s));
    for (int k = 0; k < n + 2; k++) cudaFree(tmp[k]);
}

/* Problem 0's single call against old(c, op, 0), the launch sequence it replaced: for every
 * op, one-launch mode off and on, every buffer memcmp-equal, and the call's kernel count. */
static void (*bm_old_fn)(bm_case *c, int op, int i);
static void bm_issue_old0(bm_case *c, int op) { bm_old_fn(c, op, 0); }
static void bm_check_old(bm_case *c, void (*old)(bm_case *c, int op, int i), const char *what) {
    bm_old_fn = old;
    bm_modes(c, what, bm_issue_old0, bm_issue_single0, 1, 0, "differs from the replaced launches");
}

/* Every buffer after the single calls memcmp-equal to the replaced sequence's, with
 * one-launch mode off and on; and the calls' kernel counts (the backward with d alpha 2,
 * one-launch 1, where it was 3). Columns 1, 4, 2, 4 (column 4 twice: the last one's dot
 * product counts, as before), the shapes above, and 40,000 values with an aliased input. */
Test(cuda_batch_mixed, single_calls_equal_the_launches_they_replaced) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const struct { int n, O, N, C, HW, aff, alias, rep; } sh[5] = {
        {3, 5, 2, 3, 25, 1, 0, 0}, {4, 8, 2, 3, 9, 1, 1, 0}, {4, 6, 2, 2, 40, 0, 0, 1}, {8, 8, 1, 2, 300, 1, 0, 0},
        {3, 8, 2, 4, 5000, 1, 1, 0}};
    for (int j = 0; j < 5; j++) {
        bm_case c;
        bm_new(&c, 1, sh[j].n, sh[j].O, sh[j].N, sh[j].C, sh[j].HW, sh[j].aff, sh[j].alias, 1300 + 50 * (uint64_t)j, s);
        if (sh[j].rep) {
            const int64_t rep[4] = {1, 4, 2, 4};
            memcpy(c.cols, rep, sizeof rep);
        }
        char what[32];
        snprintf(what, sizeof what, "shape %d", j);
        bm_check_old(&c, bm_old, what);
        bm_free(&c);
    }
    ol_end(gpu, s);
}

/* A batched call that must be refused: op on m problems of n candidates, O columns and len
 * elements (problem 1's row gradient NULL where some): an error recorded, and every buffer
 * as it was (c's buffers never written before). */
static void bm_refused(bm_case *c, int op, int m, int n, int O, int64_t len, int some, const char *what) {
    const int n0 = c->n, O0 = c->O;
    c->n = n, c->O = O, c->len = len;
    bm_ptrs(c); /* problem i's candidates at i * n + k */
    float *da1 = c->DA[1];
    if (some) c->DA[1] = NULL;
    cr_expect(!kcuda_last_error(), "%s", kcuda_last_error());
    bm_batch(c, op, m);
    cr_expect(kcuda_last_error() != NULL, "%s, %s: no error recorded", bm_name[op], what);
    kcuda_clear_error();
    c->DA[1] = da1;
    c->n = n0, c->O = O0, c->len = c->cnt[c->y[0]];
    float **init = calloc(BM_MAXBUF, sizeof *init);
    for (int k = 0; k < c->nb; k++) init[k] = c->h[k];
    bm_same(c, init, what, "was changed by a refused call");
    free(init);
}

/* No batched path: more candidates than KCUDA_MIXED_BATCH_INPUTS, more than 64 alpha
 * columns, no element; and bad calls: no problem, more than KCUDA_MAX_BATCH, d alpha for
 * some problems only. batch_ok says 0 where it is the shape; each call records an error
 * and leaves every buffer as it was. */
Test(cuda_batch_mixed, shapes_without_batched_path_are_refused_untouched) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bm_case c;
    bm_new(&c, 3, 9, 10, 1, 2, 6, 1, 0, 1700, s);
    OL_CK(cudaStreamSynchronize(s));
    cr_expect(!kcuda_mixed_batch_ok(9, 10, c.len) && !kcuda_mixed_batch_ok(3, 65, c.len) &&
              !kcuda_mixed_batch_ok(3, 10, 0) && kcuda_mixed_batch_ok(8, 64, 1));
    const struct { int m, n, O; int64_t len; int some_dalpha; const char *what; } bad[6] = {
        {3, 9, 10, c.len, 0, "9 candidates"}, {3, 3, 65, c.len, 0, "65 alpha columns"}, {3, 3, 10, 0, 0, "no element"},
        {0, 3, 10, c.len, 0, "no problem"}, {KCUDA_MAX_BATCH + 1, 3, 10, c.len, 0, "33 problems"},
        {3, 3, 10, c.len, 1, "d alpha for some problems only"}};
    for (int j = 0; j < 6; j++)
        for (int op = bad[j].some_dalpha ? BM_BWD : BM_FWD; op <= BM_BWD; op++)
            bm_refused(&c, op, bad[j].m, bad[j].n, bad[j].O, bad[j].len, bad[j].some_dalpha, bad[j].what);
    bm_free(&c);
    ol_end(gpu, s);
}

/* Eager, recorded and replayed passes (three of each mask of a search step, alpha then
 * weights, a step on the asked parameters after each): every pass's loss and gradients the
 * bits of the eager rt_forward + rt_backward before it. */
static void bm_passes(pair *h) {
    rt_group wg = rt_plan_group(h->pg, IR_ROLE_WEIGHT), ag = rt_plan_group(h->pg, IR_ROLE_ARCH);
    const unsigned masks[2] = {RT_GRAD_ARCH, RT_GRAD_W};
    for (int it = 0; it < 3; it++) /* 0: eager, 1: recorded, 2: replayed */
        for (int m = 0; m < 2; m++) {
            const uint64_t step = rt_plan_step(h->pg);
            float le = rt_forward(h->pg, 1);
            cr_assert_eq(rt_backward(h->pg, masks[m]), 0);
            float *ew, *ea, l0;
            grads_of(h, &ew, &ea, &l0);
            h->gpu->memset0(h->gpu, wg.grad, (size_t)wg.n * 4);
            h->gpu->memset0(h->gpu, ag.grad, (size_t)ag.n * 4);
            rt_plan_set_step(h->pg, step);
            cr_assert_eq(rt_pass(h->pg, 1, masks[m]), 0);
            float *pw, *pa, lp;
            grads_of(h, &pw, &pa, &lp);
            assert_no_cuda_error(h);
            cr_expect(le == lp, "pass %d mask %u: loss %.9g vs eager %.9g", it, masks[m], lp, le);
            if (masks[m] & RT_GRAD_W)
                cr_expect_arr_eq(pw, ew, (size_t)wg.n * 4, "pass %d: weight gradients differ from eager", it);
            else
                cr_expect_arr_eq(pa, ea, (size_t)ag.n * 4, "pass %d: alpha gradients differ from eager", it);
            free(ew); free(ea); free(pw); free(pa);
            if (masks[m] & RT_GRAD_W) h->gpu->axpy(h->gpu, wg.data, -0.05f, wg.grad, wg.n);
            else h->gpu->axpy(h->gpu, ag.data, -0.5f, ag.grad, ag.n);
        }
}

/* Edge j's three candidate outputs for the runtime cases: weights x<j>_<k> of 2x3x4x4. */
static void bm_edge_inputs(ir_graph *g, int j, int *in) {
    for (int k = 0; k < 3; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "x%d_%d", j, k);
        in[k] = wparam(g, nm, 4, (int64_t[]){2, 3, 4, 4});
    }
}

/* The runtime: four mixed ops of one supernet-like node (rows 0..3 of one alpha, each over
 * its own three candidates, the first a batch norm deferred into it in the second case)
 * whose sum feeds the loss: recorded and replayed passes with DARTSC_CUDA_BATCH=1 give the
 * eager passes' bits, and the recording batched them (without the batch norms only the
 * mixed ops can batch: at least their forwards and backwards, 8 node ops in 2 batches). */
static void bm_runtime_case(int with_bn) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    pair h = {.g = ir_graph_new("mixed_batch")};
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){4, 5}, ir_init_normal(1.f));
    int outs[4];
    for (int j = 0; j < 4; j++) {
        char nm[32];
        int in[3];
        bm_edge_inputs(h.g, j, in);
        if (with_bn) {
            snprintf(nm, sizeof nm, "rm%d", j);
            int rm = ir_param(h.g, nm, IR_ROLE_BUFFER, 1, (int64_t[]){3}, ir_init_zeros());
            snprintf(nm, sizeof nm, "rv%d", j);
            int rv = ir_param(h.g, nm, IR_ROLE_BUFFER, 1, (int64_t[]){3}, ir_init_ones());
            snprintf(nm, sizeof nm, "bn%d", j);
            in[0] = ir_batchnorm(h.g, in[0], -1, -1, rm, rv, 1, 1e-5f, 0.1f, nm);
        }
        snprintf(nm, sizeof nm, "mixed%d", j);
        outs[j] = ir_mixed(h.g, alpha, j, 3, in, (int[]){1, 2, 4}, nm);
    }
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 4, outs, "sum"));
    make_plans(&h, 21);
    bm_passes(&h);
    rt_lane_stats ls = rt_plan_lane_stats(h.pg);
    cr_log_info("mixed ops%s: %d ops issued as %d entries, %d batches of %d node ops", with_bn ? " (batch norms)" : "",
                ls.ops, ls.issued, ls.batches, ls.batched_ops);
    cr_expect(ls.batches >= (with_bn ? 4 : 2) && ls.batched_ops >= (with_bn ? 16 : 8),
              "%d batches of %d node ops", ls.batches, ls.batched_ops);
    free_pair(&h);
}
Test(cuda_batch_mixed, runtime_batches_mixed_ops_with_eager_bits) { bm_runtime_case(0); }
Test(cuda_batch_mixed, runtime_batches_mixed_ops_over_deferred_batch_norms) { bm_runtime_case(1); }

/* ---- batched WMIXED ops (kcuda_wmixed_*_batch; suite cuda_batch_wmixed) ----
 * FairDARTS' mixed op over given weights (sigmoid(alpha)) runs MIXED's kernels without the
 * softmax. On the cuda_batch_mixed block's buffers (bm_case, its single and batch hooks
 * set): the weight matrix in alpha's place ((m + 1) x O, problem i on row m - 1 - i, row m
 * on none), its gradient in dalpha's, no deferred batch norm (WMIXED reads none), the
 * softmax buffers unused (compared with every other buffer, so checked untouched). m ops of
 * one shape issued as one call give each exactly its own single call's bits, eagerly and
 * in two graph replays whose kernel count is one single call's per launch of up to 16, with
 * one-launch mode off and on; the single calls give the bits of the launches they replaced;
 * refusals leave everything untouched; and the runtime batches the WMIXED ops of a recorded
 * pass, alone and in a FairDARTS supernet, with the eager passes' bits. */
static void bw_single(bm_case *c, int op, int i) {
    if (op == BM_FWD)
        kcuda_wmixed_forward(c->Y[i], c->A[i], c->XS + i * c->n, c->cols, c->n, c->len, c->s);
    else
        kcuda_wmixed_backward(c->DX + i * c->n, op == BM_BWD ? c->DA[i] : NULL, c->DY[i], c->XS + i * c->n, c->A[i],
                              c->cols, c->n, c->len, c->set, c->s);
}
static void bw_batch(bm_case *c, int op, int m) {
    if (op == BM_FWD)
        kcuda_wmixed_forward_batch(m, c->Y, c->A, c->XS, c->cols, c->n, c->len, c->s);
    else
        kcuda_wmixed_backward_batch(m, c->DX, op == BM_BWD ? c->DA : NULL, c->DY, c->XS, c->A, c->cols, c->n, c->len,
                                    c->set, c->s);
}
/* bm_new's problems (cols 1, 2, 4, 5, ... mod O; NULL and set dxs; alias: candidates 0 and
 * 2 one input with one gradient) through the WMIXED calls. */
static void bw_new(bm_case *c, int m, int n, int O, int N, int C, int HW, int alias, uint64_t seed, cudaStream_t s) {
    bm_new(c, m, n, O, N, C, HW, 0, alias, seed, s);
    c->single = bw_single;
    c->batch = bw_batch;
}

/* Shapes: 3 problems of 3 candidates over 2x3x5x5 (150 values: under one block of the
 * reductions' 120 x 256 threads); 4 of 4 with an input used twice; 5 of 8 (the most a
 * batch takes) over 2x2x160; 2 of 1; 3 of 3 over 2x4x5000 (40,000 values: every block of
 * the dot products has a partial, the first 9,280 threads a second element); 17 of 2: 16
 * in one launch and the 17th alone, each problem's partials and counter its own. */
Test(cuda_batch_wmixed, batched_equal_single_calls_bit_for_bit) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const struct { int m, n, O, N, C, HW, alias; } sh[6] = {{3, 3, 5, 2, 3, 25, 0}, {4, 4, 8, 2, 3, 9, 1},
                                                           {5, 8, 8, 2, 2, 160, 0}, {2, 1, 3, 1, 2, 7, 0},
                                                           {3, 3, 8, 2, 4, 5000, 0}, {17, 2, 4, 1, 2, 5, 0}};
    for (int j = 0; j < 6; j++) {
        bm_case c;
        bw_new(&c, sh[j].m, sh[j].n, sh[j].O, sh[j].N, sh[j].C, sh[j].HW, sh[j].alias, 2100 + 50 * (uint64_t)j, s);
        char shape[96];
        snprintf(shape, sizeof shape, "wmixed m %d, n %d, O %d, N %d C %d HW %d", sh[j].m, sh[j].n, sh[j].O, sh[j].N,
                 sh[j].C, sh[j].HW);
        cr_expect(kcuda_wmixed_batch_ok(c.n, c.len), "%s: no batched path", shape);
        bm_check(&c, shape);
        bm_free(&c);
    }
    ol_end(gpu, s);
}

/* The launches the single calls replaced (the forward wsum_fwd_k on the row in place; the
 * backward the dxs, kcuda_dot_partials, and a one-thread finish adding each dot product
 * into its column: three launches), from other kcuda entry points: the row's weights
 * gathered on the host (the weighted sums read the same floats); forward
 * kcuda_wsum_forward; backward the dxs by kcuda_wsum_backward_set, the dot products by
 * kcuda_wsum_backward into a zeroed dw (dw[k] = 0 + (float)<dy, x_k>, the partials in the
 * same order), added into the row's columns on the host in candidate order (one float add
 * each, as the finish did: a repeated column gets both). */
static void bw_old(bm_case *c, int op, int i) {
    const int n = c->n;
    const size_t rb = (size_t)c->O * sizeof(float);
    const float *const *xs = c->XS + i * n;
    float row[64], w[BM_MAXN], *w_d, *dw_d;
    OL_CK(cudaStreamSynchronize(c->s));
    OL_CK(cudaMemcpy(row, c->A[i], rb, cudaMemcpyDeviceToHost));
    for (int k = 0; k < n; k++) w[k] = row[c->cols[k]];
    OL_CK(cudaMalloc((void **)&w_d, BM_MAXN * sizeof(float)));
    OL_CK(cudaMalloc((void **)&dw_d, BM_MAXN * sizeof(float)));
    OL_CK(cudaMemcpy(w_d, w, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    if (op == BM_FWD) {
        kcuda_wsum_forward(c->Y[i], xs, w_d, n, c->len, c->s);
    } else {
        kcuda_wsum_backward_set(c->DX + i * n, NULL, c->DY[i], xs, w_d, n, c->len, c->set, c->s);
        if (op == BM_BWD) {
            float dw[BM_MAXN], drow[64];
            OL_CK(cudaMemsetAsync(dw_d, 0, (size_t)n * sizeof(float), c->s));
            kcuda_wsum_backward(NULL, dw_d, c->DY[i], xs, w_d, n, c->len, c->s);
            OL_CK(cudaStreamSynchronize(c->s));
            OL_CK(cudaMemcpy(dw, dw_d, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
            OL_CK(cudaMemcpy(drow, c->DA[i], rb, cudaMemcpyDeviceToHost));
            for (int k = 0; k < n; k++) drow[c->cols[k]] += dw[k];
            OL_CK(cudaMemcpy(c->DA[i], drow, rb, cudaMemcpyHostToDevice));
        }
    }
    OL_CK(cudaStreamSynchronize(c->s));
    cudaFree(w_d);
    cudaFree(dw_d);
}

/* Every buffer after the single calls memcmp-equal to the replaced sequence's, one-launch
 * mode off and on, and the calls' kernel counts (the backward with the weight gradient 2,
 * one-launch 1, where it was 3). Columns 1, 4, 2, 4 (column 4 gets both its dot products,
 * in order), 9 candidates (the single calls' 32-candidate instances), the shapes above. */
Test(cuda_batch_wmixed, single_calls_equal_the_launches_they_replaced) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    const struct { int n, O, N, C, HW, alias, rep; } sh[5] = {
        {3, 5, 2, 3, 25, 0, 0}, {4, 8, 2, 3, 9, 1, 0}, {4, 6, 2, 2, 40, 0, 1}, {9, 10, 1, 2, 30, 0, 0},
        {3, 8, 2, 4, 5000, 1, 0}};
    for (int j = 0; j < 5; j++) {
        bm_case c;
        bw_new(&c, 1, sh[j].n, sh[j].O, sh[j].N, sh[j].C, sh[j].HW, sh[j].alias, 2500 + 50 * (uint64_t)j, s);
        if (sh[j].rep) memcpy(c.cols, (int64_t[4]){1, 4, 2, 4}, 4 * sizeof(int64_t));
        char what[32];
        snprintf(what, sizeof what, "wmixed shape %d", j);
        bm_check_old(&c, bw_old, what);
        bm_free(&c);
    }
    ol_end(gpu, s);
}

/* No batched path: more candidates than KCUDA_MIXED_BATCH_INPUTS, none, no element; and bad
 * calls: no problem, more than KCUDA_MAX_BATCH, a weight row gradient for some problems
 * only. batch_ok says 0 where it is the shape; each call records an error and leaves every
 * buffer as it was. */
Test(cuda_batch_wmixed, shapes_without_batched_path_are_refused_untouched) {
    cudaStream_t s;
    rt_backend *gpu = ol_begin(&s);
    bm_case c;
    bw_new(&c, 3, 9, 10, 1, 2, 6, 0, 2900, s);
    OL_CK(cudaStreamSynchronize(s));
    cr_expect(!kcuda_wmixed_batch_ok(9, c.len) && !kcuda_wmixed_batch_ok(0, c.len) && !kcuda_wmixed_batch_ok(3, 0) &&
              kcuda_wmixed_batch_ok(8, 1) && kcuda_wmixed_batch_ok(1, 1));
    const struct { int m, n; int64_t len; int some_dw; const char *what; } bad[6] = {
        {3, 9, c.len, 0, "9 candidates"}, {3, 0, c.len, 0, "no candidate"}, {3, 3, 0, 0, "no element"},
        {0, 3, c.len, 0, "no problem"}, {KCUDA_MAX_BATCH + 1, 3, c.len, 0, "33 problems"},
        {3, 3, c.len, 1, "a weight row gradient for some problems only"}};
    for (int j = 0; j < 6; j++)
        for (int op = bad[j].some_dw ? BM_BWD : BM_FWD; op <= BM_BWD; op++)
            bm_refused(&c, op, bad[j].m, bad[j].n, c.O, bad[j].len, bad[j].some_dw, bad[j].what);
    bm_free(&c);
    ol_end(gpu, s);
}

/* The runtime. A wrapper around the backend's run_batch counts the batches whose node ops
 * are WMIXED, forwards and backwards apart (the lane stats count every op kind together). */
static void (*bw_run_batch0)(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n);
static int bw_batches[2], bw_batched[2];
static void bw_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n) {
    if (nodes[0]->op == IR_OP_WMIXED) bw_batches[bwd != 0]++, bw_batched[bwd != 0] += n;
    bw_run_batch0(be, bwd, nodes, n);
}
static void bw_count_batches(pair *h) {
    bw_run_batch0 = h->gpu->run_batch;
    h->gpu->run_batch = bw_run_batch;
    memset(bw_batches, 0, sizeof bw_batches);
    memset(bw_batched, 0, sizeof bw_batched);
}
/* The recordings (one per mask) batched WMIXED ops: at least `least` batches each way, of
 * fops forward and bops backward node ops or more. */
static void bw_expect_batches(pair *h, const char *what, int least, int fops, int bops) {
    rt_lane_stats ls = rt_plan_lane_stats(h->pg);
    cr_log_info("%s: last recording %d ops issued as %d entries, %d batches of %d node ops; WMIXED batches in the "
                "recordings: %d forward of %d ops, %d backward of %d ops",
                what, ls.ops, ls.issued, ls.batches, ls.batched_ops, bw_batches[0], bw_batched[0], bw_batches[1],
                bw_batched[1]);
    cr_expect(ls.batches >= 2, "%s: %d batches in the last recording", what, ls.batches);
    for (int b = 0; b < 2; b++)
        cr_expect(bw_batches[b] >= least && bw_batched[b] >= (b ? bops : fops), "%s: %d WMIXED %s batches of %d node ops",
                  what, bw_batches[b], b ? "backward" : "forward", bw_batched[b]);
}

/* Four WMIXED ops (rows 0..3 of sigmoid(alpha), each over its own three candidates, columns
 * 1, 2, 4) whose sum feeds the loss, one-launch off and on: recorded and replayed passes
 * with DARTSC_CUDA_BATCH=1 give the eager passes' bits, and each recording (alpha: the
 * weight gradients, no dx; weights: the dxs, no weight gradient) issued the four forwards
 * as one batch and the backwards as one of at least three (in the alpha mask's the first
 * backward also zeroes the weight gradient, an arena buffer, and may come a depth later). */
static void bw_runtime_case(int one) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    if (one) setenv("DARTSC_CUDA_ONE_LAUNCH", "1", 1);
    pair h = {.g = ir_graph_new("wmixed_batch")};
    int alpha = ir_param(h.g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){4, 5}, ir_init_normal(1.f));
    int w = ir_unary(h.g, IR_OP_SIGMOID, alpha, "alpha.sigmoid"), outs[4];
    for (int j = 0; j < 4; j++) {
        char nm[32];
        int in[3];
        bm_edge_inputs(h.g, j, in);
        snprintf(nm, sizeof nm, "wmixed%d", j);
        outs[j] = ir_wmixed(h.g, w, j, 3, in, (int[]){1, 2, 4}, nm);
    }
    add_loss(&h, ir_nary(h.g, IR_OP_ADD, 4, outs, "sum"));
    make_plans(&h, 23);
    bw_count_batches(&h);
    bm_passes(&h);
    bw_expect_batches(&h, one ? "wmixed ops, one-launch" : "wmixed ops", 2, 8, 6);
    free_pair(&h);
}
Test(cuda_batch_wmixed, runtime_batches_wmixed_ops_with_eager_bits) { bw_runtime_case(0); }
Test(cuda_batch_wmixed, runtime_batches_wmixed_ops_one_launch_with_eager_bits) { bw_runtime_case(1); }

/* A FairDARTS supernet (ir_supernet_opts.sigmoid, as search/ builds it for --method fair)
 * of one normal cell over the tiny space: its 8 edges from the two cell inputs are WMIXED
 * ops of one depth and shape, so each recording batched WMIXED forwards and backwards, and
 * every pass gives the eager passes' bits. */
Test(cuda_batch_wmixed, runtime_fair_darts_supernet_with_eager_bits) {
    setenv("DARTSC_CUDA_BATCH", "1", 1);
    ir_space sp;
    tiny_space(&sp);
    sp.layers = 1;
    sp.n_reduce = 0;
    pair h;
    net_pair_ex(&h, &sp, 4, 13, &(ir_supernet_opts){.sigmoid = 1});
    bw_count_batches(&h);
    bm_passes(&h);
    bw_expect_batches(&h, "fair-darts supernet", 2, 4, 4);
    free_pair(&h);
}

/* ---- device memory ---------------------------------------------------------------------------- */

/* One pass's loss of plan p (images x of `batch`, labels 0, 1, ...). */
static float mem_case_loss(rt_plan *p, const ir_net *net, const float *x, int64_t ni, int batch) {
    int32_t y[4] = {0, 1, 2, 3};
    cr_assert(batch <= 4);
    cr_assert_eq(rt_set_input(p, net->images, x, (size_t)ni * 4), 0);
    cr_assert_eq(rt_set_input(p, net->labels, y, (size_t)batch * 4), 0);
    cr_assert_eq(rt_pass(p, 1, RT_GRAD_ARCH), 0);
    return rt_loss(p);
}

/* Fails before the fix: the message was "out of device memory (arena N bytes)", and the
 * failed cudaMalloc left kcuda's sticky error behind, so the backend refused the work that
 * followed. Now a plan whose activations exceed the device's memory fails with what they
 * need and what the device has, and the backend goes on: a plan made before still
 * computes the same loss, and a new one that fits builds and computes it too. The same on
 * a GPU and on the emulator (a device of CUEMU_DEVICE_MB, an H100's 79.6 GiB by default):
 * the refused allocation reserves nothing. */
Test(cuda_memory, a_plan_larger_than_the_device_says_so_and_the_backend_goes_on, .timeout = 300) {
    ir_space sp;
    ir_net net, big;
    rt_backend *be = cuda_tiny_supernet(&sp, 2, &net);
    cr_assert(be->mem_info);
    size_t fr = 0, tot = 0;
    cr_assert_eq(be->mem_info(be, &fr, &tot), 0);
    cr_assert(fr > 0 && fr <= tot, "free %zu of %zu", fr, tot);
    rt_plan *p = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 0);
    const int64_t ni = (int64_t)2 * sp.in_c * sp.in_h * sp.in_w;
    float *x = malloc((size_t)ni * 4);
    tu_fill_uniform(x, ni, -1.f, 1.f, 77);
    const float l0 = mem_case_loss(p, &net, x, ni, 2);
    cr_assert(isfinite(l0));
    /* a batch whose activations alone need about twice the device's memory */
    const size_t per_sample = rt_plan_arena_bytes(p) / 2;
    const int64_t batch = (int64_t)(2 * (tot / per_sample)) + 1;
    cr_assert(batch < INT32_MAX, "%lld", (long long)batch);
    cr_assert_eq(ir_space_build_supernet(&sp, (int)batch, &big), 0, "%s", big.error);
    char err[512] = "";
    rt_plan *q = rt_plan_new(big.graph, be, &(rt_plan_opts){.seed = 17, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    cr_expect_null(q);
    if (q) rt_plan_free(q);
    cr_expect(strstr(err, "out of memory on the cuda backend: the activations (the plan's arena and scratch) need ") &&
                  strstr(err, " GiB; ") && strstr(err, " GiB are free") &&
                  strstr(err, "(the activations grow with the batch: a smaller batch needs proportionally less)"),
              "%s", err);
    cr_expect_null(rt_cuda_last_error(), "%s", rt_cuda_last_error());
    ir_net_free(&big);
    /* the backend goes on */
    const float l1 = mem_case_loss(p, &net, x, ni, 2);
    cr_expect(memcmp(&l0, &l1, 4) == 0, "loss %.9g, after the failed plan %.9g", l0, l1);
    rt_plan *r = step_plan(be, net.graph, RT_GRAD_W | RT_GRAD_ARCH, 0);
    const float l2 = mem_case_loss(r, &net, x, ni, 2);
    cr_expect(memcmp(&l0, &l2, 4) == 0, "loss %.9g, of a new plan after the failed one %.9g", l0, l2);
    cr_expect_null(rt_cuda_last_error(), "%s", rt_cuda_last_error());
    rt_plan_free(r);
    rt_plan_free(p);
    free(x);
    ir_net_free(&net);
    be->destroy(be);
}

#endif /* DARTSC_HAVE_CUDA */
