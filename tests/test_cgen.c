/* test_cgen.c — the standalone C emitter (codegen/cgen.c): generated code is compiled
 * with gcc and clang at -std=c99 -Wall -Wextra -pedantic -Werror -O2 into a small driver
 * written here, run as a separate program, and compared with dartsc's own runtime
 * (CPU backend, inference mode) on the same weights and inputs.
 *
 * Graphs: one that covers every supported op and variant (dense/grouped/depthwise/
 * dilated/strided/asymmetric convs, folded and unfolded BN on 4-d and 2-d tensors, ReLU
 * fused into conv reads and into producers' writes, pools, zero ops in ADD/MEAN/CONCAT/
 * MUL/SUB and a materialised one, shift, slice, GAP, linear with and without bias,
 * softmax, dropout/drop path/identity aliases), emitted both with BN folded and unfolded;
 * and a DARTS network hand-built from the DARTS_V2 genotype (sep/dil convs, max pools,
 * skips, FactorizedReduce, cell concat, drop path), C=8, 5 cells, 28x28.
 *
 * Tolerance: max |c - rt| / max(|rt|, 1e-2) <= 1e-4. The generated code folds BN into the
 * conv weights, so it computes (w*s)*x where the runtime computes (w*x)*s (each rounding
 * differently by ~1 ulp), and it sums convolutions tap by tap where the runtime uses
 * im2col + sgemm: different summation orders over at most a few hundred O(1) products
 * give ~1e-6 relative differences; an indexing or fusion error is O(1e-1). The floor of
 * 1e-2 keeps outputs that cancel to near zero from reporting meaningless ratios.
 * The two entry points (static arena, caller's arena) must agree bit for bit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "codegen/cgen.h"
#include "codegen/cgen_q.h"
#include "codegen/onnx.h"
#include "ir/ir.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "testutil.h"

#define TOL 1e-4
#define FLOOR 1e-2
#define MAXB 4

static const char *CFLAGS = "-std=c99 -Wall -Wextra -pedantic -Werror -O2";

/* ---- graph building helpers ------------------------------------------------------------ */

static int prm(ir_graph *g, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d, ir_role role) {
    int64_t sh[4] = {a, b, c, d};
    int64_t fan = ndim > 1 ? sh[1] * (ndim > 2 ? sh[2] * sh[3] : 1) : 1;
    return ir_param(g, name, role, ndim, sh, ir_init_kaiming_uniform(fan));
}

static int nm_i;
static const char *nm(const char *base) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s.%d", base, nm_i++);
    return buf;
}

static int conv(ir_graph *g, int x, int Cin, int Cout, int kh, int kw, int s, int ph, int pw, int d, int groups) {
    int w = prm(g, nm("w"), 4, Cout, Cin / groups, kh, kw, IR_ROLE_WEIGHT);
    return ir_conv2d(g, x, w, s, s, ph, pw, d, d, groups, nm("conv"));
}

static int bn(ir_graph *g, int x, int C, int affine) {
    int ga = affine ? prm(g, nm("bn.w"), 1, C, 1, 1, 1, IR_ROLE_WEIGHT) : -1;
    int be = affine ? prm(g, nm("bn.b"), 1, C, 1, 1, 1, IR_ROLE_WEIGHT) : -1;
    int rm = prm(g, nm("bn.running_mean"), 1, C, 1, 1, 1, IR_ROLE_BUFFER);
    int rv = prm(g, nm("bn.running_var"), 1, C, 1, 1, 1, IR_ROLE_BUFFER);
    return ir_batchnorm(g, x, ga, be, rm, rv, 0, 1e-5f, 0.1f, nm("bn"));
}

static int relu(ir_graph *g, int x) { return ir_unary(g, IR_OP_RELU, x, nm("relu")); }

/* ---- the graph with every op ------------------------------------------------------------- */

typedef struct built {
    ir_graph *g;
    int input, output, logits;
    int labels; /* set to zeros when >= 0 (graphs with a loss) */
} built;

static built build_every_op(void) {
    ir_graph *g = ir_graph_new("every_op");
    built b = {g, -1, -1, -1, -1};
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){MAXB, 3, 12, 12});
    b.input = x;
    int c0 = conv(g, relu(g, x), 3, 8, 3, 3, 1, 1, 1, 1, 1);      /* ReLU fused into a dense 3x3's reads */
    int a0 = relu(g, bn(g, c0, 8, 1));                              /* folded BN; ReLU -> depthwise */
    int dw3 = conv(g, a0, 8, 8, 3, 3, 1, 1, 1, 1, 8);
    int rp = relu(g, bn(g, conv(g, dw3, 8, 8, 1, 1, 1, 0, 0, 1, 1), 8, 0)); /* fused into the 1x1's write */
    int dw5 = conv(g, rp, 8, 8, 5, 5, 1, 4, 4, 2, 8);              /* depthwise 5x5 dilation 2 */
    int mp = ir_pool(g, IR_OP_MAXPOOL, rp, 3, 1, 1, nm("maxpool"));
    int ap = ir_pool(g, IR_OP_AVGPOOL, dw5, 3, 2, 1, nm("avgpool")); /* 6x6 */
    int grp = conv(g, mp, 8, 8, 3, 3, 2, 1, 1, 1, 2);              /* grouped, strided */
    int as1 = conv(g, grp, 8, 8, 1, 3, 1, 0, 1, 1, 1);             /* 1x3 */
    int bnA = bn(g, conv(g, as1, 8, 8, 3, 1, 1, 1, 0, 1, 1), 8, 1); /* 3x1, folded */
    int dd = conv(g, ap, 8, 8, 3, 3, 1, 2, 2, 2, 1);               /* dense dilated */
    int dws = conv(g, relu(g, ap), 8, 8, 3, 3, 2, 1, 1, 1, 8);     /* depthwise strided: 3x3 */
    (void)dws;
    int z = ir_zero(g, dw5, 2, nm("zero"));                         /* 12x12 -> 6x6 zeros */
    int zs = ir_unary(g, IR_OP_SIGMOID, ir_zero(g, dd, 1, nm("zero")), nm("sig0")); /* materialised zero */
    int sum = ir_nary(g, IR_OP_ADD, 5, (int[]){ap, bnA, z, dd, zs}, nm("add"));
    int r = relu(g, bn(g, sum, 8, 1));                              /* unfolded BN, ReLU fused into its write */
    int f1 = conv(g, r, 8, 4, 1, 1, 2, 0, 0, 1, 1);                /* FactorizedReduce */
    int f2 = conv(g, ir_unary(g, IR_OP_SHIFT, r, nm("shift")), 8, 4, 1, 1, 2, 0, 0, 1, 1);
    int cat = ir_nary(g, IR_OP_CONCAT, 3, (int[]){f1, f2, ir_zero(g, f1, 1, nm("zero"))}, nm("cat"));
    int bnF = bn(g, cat, 12, 1);                                    /* unfolded (after concat) */
    int mul = ir_binary(g, IR_OP_MUL, bnF, ir_unary(g, IR_OP_SIGMOID, bnF, nm("sig")), nm("mul"));
    int sub = ir_binary(g, IR_OP_SUB, mul, ir_unary(g, IR_OP_TANH, bnF, nm("tanh")), nm("sub"));
    int sc = ir_scale(g, sub, 0.5f, nm("scale"));
    int zm = ir_binary(g, IR_OP_MUL, ir_zero(g, cat, 1, nm("zero")), sc, nm("mulz"));
    int sub2 = ir_binary(g, IR_OP_SUB, sc, zm, nm("subz"));
    int mean = ir_nary(g, IR_OP_MEAN, 3, (int[]){sub2, bnF, ir_zero(g, cat, 1, nm("zero"))}, nm("mean"));
    int id = ir_unary(g, IR_OP_IDENTITY,
                      ir_dropout(g, IR_OP_DROP_PATH, ir_dropout(g, IR_OP_DROPOUT, mean, 0.3f, nm("drop")), 0.2f, nm("dp")),
                      nm("id"));
    int gp = ir_unary(g, IR_OP_GAP, ir_slice(g, id, 2, 8, nm("slice")), nm("gap"));
    int lin = ir_linear(g, gp, prm(g, "lw", 2, 6, 8, 1, 1, IR_ROLE_WEIGHT), prm(g, "lb", 1, 6, 1, 1, 1, IR_ROLE_WEIGHT), "lin");
    int bn2 = bn(g, lin, 6, 1);                                     /* 2-d BN */
    int lin2 = ir_linear(g, bn2, prm(g, "lw2", 2, 5, 6, 1, 1, IR_ROLE_WEIGHT), -1, "logits");
    b.logits = lin2;
    b.output = ir_unary(g, IR_OP_SOFTMAX, lin2, "probs");
    cr_assert(b.output >= 0 && ir_verify(g) == 0, "%s", ir_graph_error(g));
    return b;
}

/* ---- DARTS_V2 cells, hand-built after REFERENCE.md ---------------------------------------- */

enum { SEP3, SEP5, DIL3, DIL5, MAXP, AVGP, SKIP };

static int fact_reduce(ir_graph *g, int x, int Cin, int Cout) {
    int r = relu(g, x);
    int a = conv(g, r, Cin, Cout / 2, 1, 1, 2, 0, 0, 1, 1);
    int b = conv(g, ir_unary(g, IR_OP_SHIFT, r, nm("shift")), Cin, Cout / 2, 1, 1, 2, 0, 0, 1, 1);
    return bn(g, ir_nary(g, IR_OP_CONCAT, 2, (int[]){a, b}, nm("cat")), Cout, 1);
}

static int relu_conv_bn(ir_graph *g, int x, int Cin, int Cout) {
    return bn(g, conv(g, relu(g, x), Cin, Cout, 1, 1, 1, 0, 0, 1, 1), Cout, 1);
}

static int darts_op(ir_graph *g, int kind, int x, int C, int s) {
    int y;
    switch (kind) {
    case SEP3: case SEP5: {
        int k = kind == SEP3 ? 3 : 5;
        y = conv(g, relu(g, x), C, C, k, k, s, k / 2, k / 2, 1, C);
        y = bn(g, conv(g, y, C, C, 1, 1, 1, 0, 0, 1, 1), C, 1);
        y = conv(g, relu(g, y), C, C, k, k, 1, k / 2, k / 2, 1, C);
        y = bn(g, conv(g, y, C, C, 1, 1, 1, 0, 0, 1, 1), C, 1);
        break;
    }
    case DIL3: case DIL5: {
        int k = kind == DIL3 ? 3 : 5;
        y = conv(g, relu(g, x), C, C, k, k, s, k - 1, k - 1, 2, C);
        y = bn(g, conv(g, y, C, C, 1, 1, 1, 0, 0, 1, 1), C, 1);
        break;
    }
    case MAXP: y = ir_pool(g, IR_OP_MAXPOOL, x, 3, s, 1, nm("maxpool")); break;
    case AVGP: y = ir_pool(g, IR_OP_AVGPOOL, x, 3, s, 1, nm("avgpool")); break;
    default:
        if (s == 1) return ir_unary(g, IR_OP_IDENTITY, x, nm("skip"));
        y = fact_reduce(g, x, C, C);
    }
    return ir_dropout(g, IR_OP_DROP_PATH, y, 0.2f, nm("drop_path"));
}

static const int V2_NORMAL[8][2] = {{SEP3, 0}, {SEP3, 1}, {SEP3, 0}, {SEP3, 1}, {SEP3, 1}, {SKIP, 0}, {SKIP, 0}, {DIL3, 2}};
static const int V2_REDUCE[8][2] = {{MAXP, 0}, {MAXP, 1}, {SKIP, 2}, {MAXP, 1}, {MAXP, 0}, {SKIP, 2}, {SKIP, 2}, {MAXP, 1}};

static built build_darts(int C, int layers, int classes) {
    ir_graph *g = ir_graph_new("darts_v2_small");
    built b = {g, -1, -1, -1, -1};
    b.input = ir_input(g, "images", IR_DTYPE_F32, 4, (int64_t[]){MAXB, 1, 28, 28});
    int stem = bn(g, conv(g, b.input, 1, 3 * C, 3, 3, 1, 1, 1, 1, 1), 3 * C, 1);
    int s0 = stem, s1 = stem, Cpp = 3 * C, Cp = 3 * C, Cc = C, prev_red = 0;
    for (int l = 0; l < layers; l++) {
        int red = l == layers / 3 || l == 2 * layers / 3;
        if (red) Cc *= 2;
        int p0 = prev_red ? fact_reduce(g, s0, Cpp, Cc) : relu_conv_bn(g, s0, Cpp, Cc);
        int p1 = relu_conv_bn(g, s1, Cp, Cc);
        int st[6] = {p0, p1};
        const int(*gt)[2] = red ? V2_REDUCE : V2_NORMAL;
        for (int i = 0; i < 4; i++) {
            int e[2];
            for (int j = 0; j < 2; j++) {
                int src = gt[2 * i + j][1];
                e[j] = darts_op(g, gt[2 * i + j][0], st[src], Cc, red && src < 2 ? 2 : 1);
            }
            st[2 + i] = ir_nary(g, IR_OP_ADD, 2, e, nm("node"));
        }
        int out = ir_nary(g, IR_OP_CONCAT, 4, st + 2, nm("cell"));
        s0 = s1;
        s1 = out;
        Cpp = Cp;
        Cp = 4 * Cc;
        prev_red = red;
    }
    int gp = ir_unary(g, IR_OP_GAP, s1, "global_pooling");
    b.output = b.logits = ir_linear(g, gp, prm(g, "classifier.weight", 2, classes, Cp, 1, 1, IR_ROLE_WEIGHT),
                                    prm(g, "classifier.bias", 1, classes, 1, 1, 1, IR_ROLE_WEIGHT), "logits");
    cr_assert(b.output >= 0 && ir_verify(g) == 0, "%s", ir_graph_error(g));
    return b;
}

/* ---- the runtime reference ------------------------------------------------------------------ */

typedef struct ref {
    rt_backend *be;
    rt_plan *p;
    const float **vals;
    float *x, *y;
    int64_t in_sz, out_sz;
} ref;

/* Random weights (the plan's seeded init), non-trivial BN statistics and affine
 * parameters, a random input; then one inference pass of the runtime. */
static ref run_ref(built *b, int output, uint64_t seed) {
    ref r;
    char err[256];
    const ir_graph *g = b->g;
    ir_node_set_flags(b->g, output, IR_FLAG_OUTPUT);
    r.be = rt_backend_cpu_new();
    r.p = rt_plan_new(g, r.be, &(rt_plan_opts){.seed = seed, .grads = 0}, err, sizeof err);
    cr_assert(r.p, "%s", err);
    int n = ir_graph_num_nodes(g);
    r.vals = calloc((size_t)n, sizeof *r.vals);
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op != IR_OP_PARAM) continue;
        float *v = rt_node_data(r.p, i);
        r.vals[i] = v;
        const char *dot = strrchr(nd->name, '.');
        int64_t k = ir_node_numel(nd);
        if ((dot && !strcmp(dot, ".bias")) || !strcmp(nd->name, "lb")) tu_fill_uniform(v, k, -0.5f, 0.5f, seed + (uint64_t)i);
    }
    for (int i = 0; i < n; i++) { /* BN: gamma, beta, running mean, running var */
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op != IR_OP_BATCHNORM) continue;
        const float lo[5] = {0, 0.5f, -0.5f, -0.5f, 0.5f}, hi[5] = {0, 1.5f, 0.5f, 0.5f, 2.0f};
        for (int j = 1; j < 5; j++)
            if (nd->inputs[j] >= 0)
                tu_fill_uniform(rt_node_data(r.p, nd->inputs[j]), ir_node_numel(ir_graph_node(g, nd->inputs[j])), lo[j], hi[j],
                                seed * 31 + (uint64_t)(i * 5 + j));
    }
    if (b->labels >= 0) {
        int32_t lab[MAXB] = {0};
        cr_assert(rt_set_input(r.p, b->labels, lab, sizeof lab) == 0);
    }
    r.in_sz = ir_node_numel(ir_graph_node(g, b->input)) / MAXB;
    r.out_sz = ir_node_numel(ir_graph_node(g, output)) / MAXB;
    r.x = malloc(sizeof(float) * (size_t)(r.in_sz * MAXB));
    r.y = malloc(sizeof(float) * (size_t)(r.out_sz * MAXB));
    tu_fill_uniform(r.x, r.in_sz * MAXB, -1.f, 1.f, seed * 7 + 3);
    cr_assert(rt_set_input(r.p, b->input, r.x, sizeof(float) * (size_t)(r.in_sz * MAXB)) == 0);
    rt_forward(r.p, 0);
    cr_assert(rt_read(r.p, output, r.y, sizeof(float) * (size_t)(r.out_sz * MAXB)) == 0);
    return r;
}

static void ref_free(ref *r) {
    rt_plan_free(r->p);
    r->be->destroy(r->be);
    free(r->vals);
    free(r->x);
    free(r->y);
}

static void gen(built *b, ref *r, int output, const char *name, int no_fold, const char *dir) {
    char err[512];
    cg_model m = {.g = b->g, .values = r->vals, .input = b->input, .output = output, .name = name,
                  .space_name = "test", .genotype_json = "{\"normal\": [[\"sep_conv_3x3\", 0]], \"note\": \"*/ safe\"}",
                  .in_c = (int)ir_graph_node(b->g, b->input)->shape[1], .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f},
                  .test_accuracy = -1};
    cr_assert(cg_c_write(&m, &(cg_c_opts){.max_batch = MAXB, .no_fold = no_fold}, dir, err, sizeof err) == 0, "%s", err);
}

/* ---- compiling and running generated code ------------------------------------------------- */

static int sh(const char *cmd) {
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* Writes tmpl with every '@' replaced by name. */
static void put_tmpl(FILE *f, const char *tmpl, const char *name) {
    for (; *tmpl; tmpl++)
        if (*tmpl == '@') fputs(name, f);
        else fputc(*tmpl, f);
}

/* A driver for models names[0..n): argv batch, then per model an input and an output file.
 * It also checks the error returns and that the caller's arena gives identical outputs. */
static void write_driver(const char *dir, const char *file, const char *const *names, int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n");
    for (int k = 0; k < n; k++) fprintf(f, "#include \"%s.h\"\n", names[k]);
    for (int k = 0; k < n; k++) {
        const char *N = names[k];
        put_tmpl(f,
                "static float @_in[@_MAX_BATCH * @_INPUT_SIZE], @_out[@_MAX_BATCH * @_OUTPUT_SIZE],\n"
                "    @_out2[@_MAX_BATCH * @_OUTPUT_SIZE], @_ar[@_ARENA_BYTES / sizeof(float) + 1];\n"
                "static int run_@(int batch, const char *in, const char *out) {\n"
                "    size_t ni = (size_t)batch * @_INPUT_SIZE, no = (size_t)batch * @_OUTPUT_SIZE;\n"
                "    FILE *f = fopen(in, \"rb\");\n"
                "    if (!f || fread(@_in, sizeof(float), ni, f) != ni) return 11;\n"
                "    fclose(f);\n"
                "    if (!@_infer(@_in, @_out, 0) || !@_infer(@_in, @_out, @_MAX_BATCH + 1)) return 12;\n"
                "    if (!@_infer_with_arena(@_in, @_out, 1, NULL)) return 12;\n"
                "    if (@_infer(@_in, @_out, batch)) return 13;\n"
                "    memset(@_ar, 0x7f, sizeof @_ar);\n"
                "    if (@_infer_with_arena(@_in, @_out2, batch, @_ar)) return 14;\n"
                "    if (memcmp(@_out, @_out2, no * sizeof(float))) return 15;\n"
                "    f = fopen(out, \"wb\");\n"
                "    if (!f || fwrite(@_out, sizeof(float), no, f) != no) return 16;\n"
                "    fclose(f);\n"
                "    return 0;\n}\n",
                 N);
    }
    fprintf(f, "int main(int argc, char **argv) {\n    int rc, batch;\n    if (argc != %d) return 10;\n    batch = atoi(argv[1]);\n",
            2 + 2 * n);
    for (int k = 0; k < n; k++)
        fprintf(f, "    if ((rc = run_%s(batch, argv[%d], argv[%d])) != 0) return rc;\n", names[k], 2 + 2 * k, 3 + 2 * k);
    fprintf(f, "    return 0;\n}\n");
    fclose(f);
}

static void compile(const char *dir, const char *cc, const char *flags, const char *exe, const char *srcs) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s -o %s %s -lm > %s.log 2>&1", dir, cc, flags, exe, srcs, exe);
    int rc = sh(cmd);
    if (rc) {
        snprintf(cmd, sizeof cmd, "head -c 4000 %s/%s.log", dir, exe);
        sh(cmd);
    }
    cr_assert(rc == 0, "%s %s failed to compile %s (log above)", cc, flags, srcs);
}

static void write_floats(const char *path, const float *x, int64_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(x, sizeof(float), (size_t)n, f) == (size_t)n);
    fclose(f);
}

static void read_floats(const char *path, float *x, int64_t n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(x, sizeof(float), (size_t)n, f) == (size_t)n, "cannot read %s", path);
    fclose(f);
}

/* Runs exe (under the emulator `runner` unless it is "") on the first `batch` samples of
 * each model's input; outputs land in DIR/NAME.out. */
static void run_exe(const char *dir, const char *runner, const char *exe, ref *const *refs, const char *const *names, int n,
                    int batch) {
    char cmd[2048], a[512];
    int len = snprintf(cmd, sizeof cmd, "cd %s && %s ./%s %d", dir, runner, exe, batch);
    for (int k = 0; k < n; k++) {
        snprintf(a, sizeof a, "%s/%s.in", dir, names[k]);
        write_floats(a, refs[k]->x, refs[k]->in_sz * batch);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s.in %s.out", names[k], names[k]);
    }
    int rc = sh(cmd);
    cr_assert(rc == 0, "%s %s at batch %d exited with %d", runner, exe, batch, rc);
}

/* Runs exe on the first `batch` samples of each model and returns the worst error. */
static double run_and_compare(const char *dir, const char *exe, ref *const *refs, const char *const *names, int n, int batch) {
    char o[512];
    run_exe(dir, "", exe, refs, names, n, batch);
    double worst = 0;
    for (int k = 0; k < n; k++) {
        int64_t no = refs[k]->out_sz * batch, wi;
        float *y = malloc(sizeof(float) * (size_t)no);
        snprintf(o, sizeof o, "%s/%s.out", dir, names[k]);
        read_floats(o, y, no);
        double e = tu_max_rel_err(y, refs[k]->y, no, FLOOR, &wi);
        cr_expect(e <= TOL, "%s %s batch %d: max rel err %g at %lld (got %.9g want %.9g)", exe, names[k], batch, e,
                  (long long)wi, (double)y[wi], (double)refs[k]->y[wi]);
        if (e > worst) worst = e;
        free(y);
    }
    return worst;
}

/* gcc and clang at the strict flags, batches 1, 3 and the maximum; then (n_builds 4) the
 * code paths other targets and compilers take, on this machine: the plain C99 loops (what
 * a compiler without GNU vector extensions compiles) and the vector code without runtime
 * dispatch (16-float vectors lowered to the baseline target's 128-bit SSE, as on NEON).
 * The unfolded and eval-network variants take only gcc and clang: the other two paths
 * are the same emitter code, covered by the folded every-op and DARTS_V2 graphs. */
static void check_model(built *b, int output, const char *name, int no_fold, int n_builds) {
    const char *dir = tu_tmpdir();
    ref r = run_ref(b, output, 11);
    gen(b, &r, output, name, no_fold, dir);
    write_driver(dir, "drv.c", &name, 1);
    char srcs[256];
    snprintf(srcs, sizeof srcs, "drv.c %s.c", name);
    const char *ccs[4] = {"gcc", "clang", "gcc", "clang"}, *exes[4] = {"gcc", "clang", "gcc_plain", "clang_nodispatch"};
    const char *defs[4] = {"", "", "_PLAIN_C", "_NO_DISPATCH"};
    ref *rs[1] = {&r};
    double worst = 0;
    for (int c = 0; c < n_builds; c++) {
        char flags[512];
        snprintf(flags, sizeof flags, "%s%s%s%s", CFLAGS, *defs[c] ? " -D" : "", *defs[c] ? name : "", defs[c]);
        compile(dir, ccs[c], flags, exes[c], srcs);
        const int batches[3] = {1, 3, MAXB};
        for (int k = 0; k < 3; k++) {
            double e = run_and_compare(dir, exes[c], rs, &name, 1, batches[k]);
            if (e > worst) worst = e;
        }
    }
    fprintf(stderr, "cgen %s: max rel err vs runtime %.3g (%s; batch 1, 3, %d)\n", name, worst,
            n_builds == 4 ? "gcc, clang, plain C, no dispatch" : "gcc, clang", MAXB);
    ref_free(&r);
    ir_graph_free(b->g);
}

Test(cgen, every_op_with_bn_folded_matches_runtime_under_gcc_and_clang) {
    built b = build_every_op();
    check_model(&b, b.output, "every_op", 0, 4);
}

Test(cgen, every_op_with_bn_unfolded_matches_runtime_logits) {
    built b = build_every_op();
    check_model(&b, b.logits, "every_op_nf", 1, 2);
}

Test(cgen, darts_v2_network_matches_runtime_under_gcc_and_clang) {
    built b = build_darts(8, 5, 10);
    check_model(&b, b.output, "darts_v2", 0, 4);
}

/* The stride-2 gathers of strided 1x1 convs and the stride-2 copies into phase planes on
 * vectors (cgen.c, emit_gather_vec, win_copy_pairs) against the runtime in all four builds
 * (the vector code at -O2 under gcc and clang, dispatched and not, and the plain loops):
 * FactorizedReduce at 32x32 (rows of 16 gathered pixels), 16x16 (rows of 8, two rows per
 * vector) and 8x8 (rows of 4: plain loops only), shifted and not, through the fused ReLU
 * and (a bare strided 1x1) without it; a stride-2 depthwise conv through a ReLU at 32x32
 * (16 column pairs), a dilated one (dilation 2: one column phase of 16, win_copy_phase_vec),
 * a stride-2 max pool at 31x31 (odd: its two column phases, of 15 and 16, one at a time)
 * and one at 16x16 (8 pairs, the extra lanes -INFINITY). With rows15, at
 * 30x30: FactorizedReduce (rows of 15, stored 16 wide, the block's last row by the plain
 * loop), a stride-2 depthwise conv through a ReLU, a max pool (15 pairs) and a dilated
 * depthwise conv (one phase of 15), their outputs concatenated as the model's output, so
 * that every pixel shows. */
static built build_gathers(int rows15) {
    ir_graph *g = ir_graph_new("gathers");
    built b = {g, -1, -1, -1, -1};
    b.input = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){MAXB, 3, 32, 32});
    int s = bn(g, conv(g, b.input, 3, 8, 3, 3, 1, 1, 1, 1, 1), 8, 1);
    if (rows15) {
        int t = conv(g, s, 8, 8, 3, 3, 1, 0, 0, 1, 1); /* 30x30 */
        int parts[4] = {fact_reduce(g, t, 8, 16), conv(g, relu(g, t), 8, 8, 3, 3, 2, 1, 1, 1, 8),
                        ir_pool(g, IR_OP_MAXPOOL, t, 3, 2, 1, nm("maxpool")), conv(g, relu(g, t), 8, 8, 3, 3, 2, 2, 2, 2, 8)};
        b.logits = b.output = ir_nary(g, IR_OP_CONCAT, 4, parts, nm("cat")); /* (40, 15, 15) */
    } else {
        int f1 = fact_reduce(g, s, 8, 8), p1 = conv(g, s, 8, 8, 1, 1, 2, 0, 0, 1, 1);
        int dw = conv(g, relu(g, s), 8, 8, 3, 3, 2, 1, 1, 1, 8), dil = conv(g, relu(g, s), 8, 8, 3, 3, 2, 2, 2, 2, 8);
        int m31 = ir_pool(g, IR_OP_MAXPOOL, conv(g, s, 8, 8, 2, 2, 1, 0, 0, 1, 1), 3, 2, 1, nm("maxpool")); /* 31 -> 16 */
        int a = ir_nary(g, IR_OP_ADD, 5, (int[]){f1, p1, dw, dil, m31}, nm("add"));
        int m = ir_nary(g, IR_OP_ADD, 2, (int[]){ir_pool(g, IR_OP_MAXPOOL, a, 3, 2, 1, nm("maxpool")), fact_reduce(g, a, 8, 8)},
                        nm("add"));
        int gp = ir_unary(g, IR_OP_GAP, fact_reduce(g, m, 8, 16), nm("gap"));
        b.logits = b.output = ir_linear(g, gp, prm(g, "lw", 2, 5, 16, 1, 1, IR_ROLE_WEIGHT), -1, "logits");
    }
    cr_assert(ir_verify(g) == 0, "%s", ir_graph_error(g));
    return b;
}

Test(cgen, strided_gathers_on_vectors_match_runtime_in_every_build) {
    built b = build_gathers(0), b15 = build_gathers(1);
    check_model(&b, b.output, "gathers", 0, 4);
    check_model(&b15, b15.output, "gathers15", 0, 4);
}

/* The evaluation network dartsc builds from the DARTS_V2 genotype (C=8, 6 cells, 32x32),
 * with drop path nodes (identities at inference). sharp: with sharpDARTS's SharpSepConv as
 * the normal cell's convolutions (undilated and dilated) and the reduction cell's
 * max_pool_3x3 (5x5, dilation 2, stride 2), at C = 4 and 3 cells (normal, reduction,
 * reduction), which keeps its four compilations short. */
static void eval_case(const char *name, int sharp) {
    ir_space sp;
    ir_genotype gt;
    ir_net net;
    ir_space_darts_cifar10(&sp);
    if (sharp) {
        sp.normal.ops[4] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 1, .name = "sharp_sep_conv_3x3"};
        sp.normal.ops[6] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 3, .dilation = 2, .name = "dil_sharp_sep_conv_3x3"};
        sp.reduce.ops[1] = (ir_cand){.kind = IR_CAND_SHARP_SEP_CONV, .k = 5, .dilation = 2, .name = "dil_sharp_sep_conv_5x5"};
    }
    ir_genotype_darts_v2(&gt);
    ir_eval_opts eo = {.C = sharp ? 4 : 8, .layers = sharp ? 3 : 6, .batch = MAXB, .drop_path = 1};
    cr_assert(ir_space_build_eval(&sp, &gt, &eo, &net) == 0, "%s", net.error);
    built b = {net.graph, net.images, net.logits, net.logits, net.labels};
    check_model(&b, b.output, name, 0, 2);
    net.graph = NULL;
    ir_net_free(&net);
}
Test(cgen, darts_v2_eval_network_from_space_matches_runtime) { eval_case("darts_eval", 0); }
Test(cgen, sharp_sep_conv_eval_network_matches_runtime) { eval_case("sharp_eval", 1); }

/* Two models in one program (symbols prefixed, no clashes), both correct, built with
 * ASan + UBSan and run clean; also an OpenMP build gives the same answers. */
Test(cgen, two_models_link_together_and_run_clean_under_sanitizers) {
    const char *dir = tu_tmpdir();
    built a = build_every_op(), d = build_darts(4, 3, 10);
    ref ra = run_ref(&a, a.output, 5), rd = run_ref(&d, d.output, 6);
    gen(&a, &ra, a.output, "net_a", 0, dir);
    gen(&d, &rd, d.output, "net_b", 0, dir);
    const char *names[2] = {"net_a", "net_b"};
    ref *rs[2] = {&ra, &rd};
    write_driver(dir, "drv2.c", names, 2);
    compile(dir, "gcc", CFLAGS, "two", "drv2.c net_a.c net_b.c");
    run_and_compare(dir, "two", rs, names, 2, 3);
    compile(dir, "gcc",
            "-std=c99 -Wall -Wextra -pedantic -Werror -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all "
            "-fno-omit-frame-pointer",
            "two_san", "drv2.c net_a.c net_b.c");
    run_and_compare(dir, "two_san", rs, names, 2, 1);
    run_and_compare(dir, "two_san", rs, names, 2, MAXB);
    compile(dir, "gcc", "-std=c99 -Wall -Wextra -pedantic -Werror -O2 -fopenmp -Dnet_a_USE_OPENMP -Dnet_b_USE_OPENMP",
            "two_omp", "drv2.c net_a.c net_b.c");
    run_and_compare(dir, "two_omp", rs, names, 2, MAXB);
    ref_free(&ra);
    ref_free(&rd);
    ir_graph_free(a.g);
    ir_graph_free(d.g);
}

/* The planner reuses buffers: the arena is well below the sum of all activations. */
Test(cgen, arena_is_planned_by_liveness) {
    const char *dir = tu_tmpdir();
    built d = build_darts(8, 5, 10);
    ref rd = run_ref(&d, d.output, 3);
    gen(&d, &rd, d.output, "plan", 0, dir);
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/plan.h", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    long long arena = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "#define plan_ARENA_BYTES %lld", &arena) == 1) break;
    fclose(f);
    int64_t total = 0;
    for (int i = 0; i < ir_graph_num_nodes(d.g); i++) {
        const ir_node *nd = ir_graph_node(d.g, i);
        if (nd->op != IR_OP_PARAM && nd->op != IR_OP_INPUT) total += ir_node_numel(nd) * 4;
    }
    cr_expect(arena > 0 && arena * 4 < total, "arena %lld bytes vs %lld bytes of activations", arena, (long long)total);
    fprintf(stderr, "cgen plan: arena %lld bytes, all activations %lld bytes\n", arena, (long long)total);
    /* the footprint dartsc export prints: the header's arena; the weights are every
     * parameter but the BNs' statistics and affine vectors, which become one bias per
     * channel where folded into a conv and a scale and a shift where not */
    cg_c_footprint fp = {-1, -1};
    char err[512];
    cg_model m = {.g = d.g, .values = rd.vals, .input = d.input, .output = d.output, .name = "plan", .test_accuracy = -1};
    cr_assert(cg_c_write(&m, &(cg_c_opts){.max_batch = MAXB, .footprint = &fp}, dir, err, sizeof err) == 0, "%s", err);
    int64_t want = 0;
    for (int i = 0; i < ir_graph_num_nodes(d.g); i++) {
        const ir_node *nd = ir_graph_node(d.g, i);
        if (nd->op == IR_OP_PARAM) want += ir_node_numel(nd) * 4;
        if (nd->op != IR_OP_BATCHNORM) continue;
        for (int j = 1; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) want -= ir_node_numel(ir_graph_node(d.g, nd->inputs[j])) * 4;
        want += (ir_graph_node(d.g, nd->inputs[0])->op == IR_OP_CONV2D ? 1 : 2) * nd->shape[1] * 4;
    }
    cr_expect(fp.arena_bytes == arena, "footprint arena %lld, header %lld", fp.arena_bytes, arena);
    cr_expect(fp.weight_bytes == want, "footprint weights %lld bytes, expected %lld", fp.weight_bytes, (long long)want);
    ref_free(&rd);
    ir_graph_free(d.g);
}

/* The DARTS lowering fuses every cell node's sum into the write of the conv or pool that
 * produces its later term, and FactorizedReduce's shift into its strided 1x1 conv's
 * gather: no ADD or SHIFT op is left in the schedule; depthwise convs and pools whose
 * input dies there write over it; FactorizedReduce's two strided convs write into their
 * concatenation's halves (its concat copies nothing). (The values are checked by the
 * darts_v2 tests above.) */
Test(cgen, darts_node_sums_and_factorized_reduce_shifts_are_fused) {
    const char *dir = tu_tmpdir();
    built d = build_darts(8, 5, 10);
    ref rd = run_ref(&d, d.output, 5);
    gen(&d, &rd, d.output, "fuse", 0, dir);
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/fuse.c", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    int adds = 0, shifts = 0, fused_adds = 0, fused_shifts = 0, inplace = 0, free_concats = 0, slices = 0;
    while (fgets(line, sizeof line, f)) {
        inplace += strstr(line, "written over its input */") != NULL;
        int sched = strncmp(line, " *   fuse_op", 12) == 0;
        free_concats += sched && strstr(line, " concat '") && strstr(line, "(written by its parts)");
        slices += sched && strstr(line, "(a slice of a concat)") != NULL;
        adds += sched && strstr(line, " add '") != NULL;
        shifts += sched && strstr(line, " shift '") != NULL;
        fused_adds += strstr(line, "(a fused ADD)") && strstr(line, "*/\n") && !sched;
        fused_shifts += strstr(line, "a fused SHIFT") != NULL;
    }
    fclose(f);
    cr_expect(adds == 0 && shifts == 0, "%d ADD and %d SHIFT ops left in the schedule", adds, shifts);
    cr_expect(fused_adds >= 20 && fused_shifts == 2, "%d fused ADDs (5 cells x 4 nodes), %d fused SHIFTs (2 FactorizedReduce)",
              fused_adds, fused_shifts);
    /* the second depthwise conv of every sep_conv reads a 1x1 conv's output that dies there */
    cr_expect(inplace >= 10, "%d planewise ops written over their input", inplace);
    cr_expect(free_concats >= 2 && slices >= 4, "%d concats written by their parts, %d ops writing a concat's slice",
              free_concats, slices);
    fprintf(stderr, "cgen fuse: %d planewise ops written over their input; %d concats written by their parts (%d slices)\n",
            inplace, free_concats, slices);
    ref_free(&rd);
    ir_graph_free(d.g);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static int try_gen(ir_graph *g, int input, int output, const char *name, char *err, size_t errlen) {
    int n = ir_graph_num_nodes(g);
    const float **vals = calloc((size_t)n, sizeof *vals);
    static float zeros[4096];
    for (int i = 0; i < n; i++)
        if (ir_graph_node(g, i)->op == IR_OP_PARAM) vals[i] = zeros;
    cg_model m = {.g = g, .values = vals, .input = input, .output = output, .name = name, .test_accuracy = -1};
    int rc = cg_c_write(&m, NULL, tu_tmpdir(), err, errlen);
    free(vals);
    return rc;
}

Test(cgen, refuses_supernet_ops_losses_embeddings_and_bad_names) {
    char err[512];
    ir_graph *g = ir_graph_new("super");
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){2, 4, 8, 8});
    int alpha = ir_param(g, "alpha", IR_ROLE_ARCH, 2, (int64_t[]){1, 3}, ir_init_zeros());
    int a = ir_pool(g, IR_OP_MAXPOOL, x, 3, 1, 1, "max");
    int mx = ir_mixed(g, alpha, 0, 2, (int[]){x, a}, (int[]){1, 2}, "edge0");
    int out = ir_linear(g, ir_unary(g, IR_OP_GAP, mx, "gap"), prm(g, "lw", 2, 3, 4, 1, 1, IR_ROLE_WEIGHT), -1, "logits");
    cr_assert(out >= 0, "%s", ir_graph_error(g));
    cr_expect(try_gen(g, x, out, "m", err, sizeof err) != 0);
    cr_expect(strstr(err, "edge0") && strstr(err, "export the derived network, not the supernet"), "%s", err);
    ir_graph_free(g);

    g = ir_graph_new("emb");
    int ids = ir_input(g, "ids", IR_DTYPE_I32, 1, (int64_t[]){2});
    int img = ir_input(g, "img", IR_DTYPE_F32, 4, (int64_t[]){2, 1, 4, 4});
    int e = ir_embedding(g, ids, prm(g, "table", 2, 10, 16, 1, 1, IR_ROLE_WEIGHT), "encoder");
    cr_assert(e >= 0, "%s", ir_graph_error(g));
    cr_expect(try_gen(g, img, e, "m", err, sizeof err) != 0);
    cr_expect(strstr(err, "encoder") && strstr(err, "embedding"), "%s", err);
    ir_graph_free(g);

    g = ir_graph_new("ok");
    x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){2, 1, 4, 4});
    out = ir_unary(g, IR_OP_GAP, x, "gap");
    cr_expect(try_gen(g, x, out, "good_name1", err, sizeof err) == 0, "%s", err);
    cr_expect(try_gen(g, x, out, "1bad", err, sizeof err) != 0);
    cr_expect(try_gen(g, x, out, "bad-name", err, sizeof err) != 0);
    cr_expect(try_gen(g, x, out, "_x", err, sizeof err) != 0);
    cr_expect(try_gen(g, x, out, NULL, err, sizeof err) != 0);
    int labels = ir_input(g, "labels", IR_DTYPE_I32, 1, (int64_t[]){2});
    int loss = ir_softmax_ce(g, out, labels, "loss");
    cr_expect(try_gen(g, x, loss, "m", err, sizeof err) != 0);
    cr_expect(strstr(err, "loss"), "%s", err);
    ir_graph_free(g);
}

/* ---- examples/embed ---------------------------------------------------------------------- */

Test(cgen, embed_example_builds_and_classifies_a_pgm) {
    const char *dir = tu_tmpdir();
    built d = build_darts(8, 5, 10);
    ref rd = run_ref(&d, d.output, 9);
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    char err[512];
    cg_model m = {.g = d.g, .values = rd.vals, .input = d.input, .output = d.output, .name = "fmnist",
                  .space_name = "darts_cifar10", .in_c = 1, .mean = {0.2860f}, .std = {0.3530f},
                  .class_names = names, .n_classes = 10, .test_accuracy = -1};
    cr_assert(cg_c_write(&m, NULL, dir, err, sizeof err) == 0, "%s", err);
    /* a PGM: 28x28 8-bit, with a comment line */
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/img.pgm", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fprintf(f, "P5\n# test image\n28 28\n255\n");
    for (int i = 0; i < 28 * 28; i++) fputc((i * 37 + i / 28 * 11) & 255, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "make -s -C %s MODEL=fmnist MODEL_DIR=%s BUILD=%s > %s/make.log 2>&1",
             tu_src_path("examples/embed"), dir, dir, dir);
    int rc = sh(cmd);
    if (rc) {
        snprintf(cmd, sizeof cmd, "cat %s/make.log", dir);
        sh(cmd);
    }
    cr_assert(rc == 0, "make in examples/embed failed");
    snprintf(cmd, sizeof cmd, "%s/classify %s > %s/cls.txt", dir, path, dir);
    cr_assert(sh(cmd) == 0, "classify failed");
    /* the answer must be the runtime's argmax for the same normalised image */
    float x[MAXB * 784];
    unsigned char px[784];
    f = fopen(path, "rb");
    cr_assert(f);
    char hdr[64];
    cr_assert(fgets(hdr, sizeof hdr, f) && fgets(hdr, sizeof hdr, f) && fgets(hdr, sizeof hdr, f) && fgets(hdr, sizeof hdr, f));
    cr_assert(fread(px, 1, 784, f) == 784);
    fclose(f);
    for (int bidx = 0; bidx < MAXB; bidx++)
        for (int i = 0; i < 784; i++) x[bidx * 784 + i] = ((float)px[i] / 255.0f - 0.2860f) / 0.3530f;
    cr_assert(rt_set_input(rd.p, d.input, x, sizeof x) == 0);
    rt_forward(rd.p, 0);
    float y[MAXB * 10];
    cr_assert(rt_read(rd.p, d.output, y, sizeof y) == 0);
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (y[k] > y[best]) best = k;
    snprintf(path, sizeof path, "%s/cls.txt", dir);
    f = fopen(path, "r");
    cr_assert(f);
    char line[256] = {0};
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    char want[256];
    snprintf(want, sizeof want, "%d %s", best, names[best]);
    cr_expect(strstr(line, want), "classify printed '%s', runtime says '%s'", line, want);
    ref_free(&rd);
    ir_graph_free(d.g);
}

/* ---- what the object needs from the C library ---------------------------------------------- */

/* Built freestanding without builtins (as for a microcontroller), the object calls no C
 * library function besides libm's: no fmaf (a * b + c is contracted, not a call), no
 * memcpy/memset/memmove (the file has its own loops; gcc's loop distribution, which
 * would turn them back into calls, is off here as it must be in such a build). The
 * runtime-dispatch resolvers need the compiler runtime's CPU model (__cpu_model,
 * __cpu_indicator_init from libgcc or compiler-rt; gcc's resolvers also name the
 * linker-made _GLOBAL_OFFSET_TABLE_), nothing from libc. */
Test(cgen, freestanding_object_needs_only_libm_and_the_cpu_model) {
    const char *dir = tu_tmpdir();
    built b = build_every_op();
    ref r = run_ref(&b, b.output, 4);
    gen(&b, &r, b.output, "fs", 0, dir);
    static const char *const ok[] = {"expf", "tanhf", "__cpu_model", "__cpu_indicator_init", "_GLOBAL_OFFSET_TABLE_"};
    const char *builds[3][2] = {{"gcc", "-ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns"},
                                {"clang", "-ffreestanding -fno-builtin"},
                                {"gcc", "-ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns -march=native"}};
    for (int k = 0; k < 3; k++) {
        char cmd[1024], path[512], sym[256];
        snprintf(cmd, sizeof cmd, "cd %s && %s %s -O2 %s -c fs.c -o fs%d.o && nm -u fs%d.o > fs%d.syms", dir, builds[k][0],
                 CFLAGS, builds[k][1], k, k, k);
        cr_assert(sh(cmd) == 0, "%s %s failed", builds[k][0], builds[k][1]);
        snprintf(path, sizeof path, "%s/fs%d.syms", dir, k);
        FILE *f = fopen(path, "r");
        cr_assert(f);
        int n = 0;
        while (fscanf(f, " U %255s", sym) == 1) {
            int allowed = 0;
            for (size_t j = 0; j < sizeof ok / sizeof *ok; j++) allowed |= strcmp(sym, ok[j]) == 0;
            cr_expect(allowed, "%s %s: the object needs '%s'", builds[k][0], builds[k][1], sym);
            n++;
        }
        fclose(f);
        fprintf(stderr, "cgen freestanding (%s %s): %d undefined symbols\n", builds[k][0], builds[k][1], n);
    }
    ref_free(&r);
    ir_graph_free(b.g);
}

/* ---- int8 ---------------------------------------------------------------------------------- */

/* Every op the int8 emitter lowers: dense, depthwise (dilated; stride 1 and 2), grouped
 * strided, 1x3 and 1x1 convs, BN folded (affine and not) and unfolded, ReLU read through by
 * convs and standalone (on 4-d and 2-d values), max and avg pools (stride 1 and 2: the
 * vector code's padded and phase planes), 3- and 4-term ADDs, MEAN, a zero,
 * FactorizedReduce's shift, a 7-way concat at different scales, slice, GAP, an
 * intermediate and a final linear layer. The convs without groups give the GEMM tiles
 * (vector and dot-product code) every case: read as they are (with and without a ReLU)
 * and gathered (ReLU, padding, strides, outputs under 64 pixels), 4, 6 and 5 output
 * channels per conv (tiles of 4, 2 and 1 channels), reductions J = C * kh * kw of 27, 8,
 * 24, 6 and 9 (J mod 4 = 3, 0, 2 and 1: the dot products' last group of rows). */
static built build_int8_ops(void) {
    ir_graph *g = ir_graph_new("int8_ops");
    built b = {g, -1, -1, -1, -1};
    int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){MAXB, 3, 12, 12});
    b.input = x;
    int c0 = bn(g, conv(g, x, 3, 8, 3, 3, 1, 1, 1, 1, 1), 8, 1);
    int r0 = relu(g, c0);                                           /* read only by convs */
    int dw = conv(g, r0, 8, 8, 3, 3, 1, 1, 1, 1, 8);
    int pw = bn(g, conv(g, dw, 8, 8, 1, 1, 1, 0, 0, 1, 1), 8, 0);
    int dd = conv(g, r0, 8, 8, 5, 5, 1, 4, 4, 2, 8);
    int grp = conv(g, pw, 8, 8, 3, 3, 2, 1, 1, 1, 2);              /* 6x6 */
    int as = conv(g, relu(g, dd), 8, 8, 1, 3, 1, 0, 1, 1, 1);
    int mp = ir_pool(g, IR_OP_MAXPOOL, pw, 3, 1, 1, nm("maxpool"));
    int ap = ir_pool(g, IR_OP_AVGPOOL, as, 3, 2, 1, nm("avgpool")); /* 6x6 */
    int pr = conv(g, r0, 8, 8, 1, 1, 1, 0, 0, 1, 1);                 /* 1x1 read through a ReLU as it is */
    int sum = ir_nary(g, IR_OP_ADD, 4, (int[]){mp, dd, relu(g, pw), pr}, nm("add"));
    int mean = ir_nary(g, IR_OP_MEAN, 2, (int[]){sum, as}, nm("mean"));
    int r1 = relu(g, bn(g, mean, 8, 1));                            /* unfolded BN; ReLU read by a shift */
    int f1 = conv(g, r1, 8, 4, 1, 1, 2, 0, 0, 1, 1);
    int f2 = conv(g, ir_unary(g, IR_OP_SHIFT, r1, nm("shift")), 8, 4, 1, 1, 2, 0, 0, 1, 1);
    int dw2 = conv(g, r0, 8, 8, 3, 3, 2, 1, 1, 1, 8);               /* 6x6 */
    int mp2 = ir_pool(g, IR_OP_MAXPOOL, pw, 3, 2, 1, nm("maxpool2")); /* 6x6 */
    int j6 = conv(g, x, 3, 8, 2, 1, 2, 0, 0, 1, 1);                  /* 6x6; GEMM rows J = 6 */
    int g2 = ir_nary(g, IR_OP_ADD, 4, (int[]){grp, dw2, mp2, j6}, nm("add2"));
    int k6 = conv(g, x, 3, 6, 3, 3, 2, 1, 1, 1, 1);                  /* 6 channels, J = 27 */
    int k5 = conv(g, x, 3, 5, 1, 3, 2, 0, 1, 1, 1);                  /* 5 channels, J = 9 */
    int cat = ir_nary(g, IR_OP_CONCAT, 7, (int[]){f1, f2, g2, ap, ir_zero(g, f1, 1, nm("zero")), k6, k5}, nm("cat"));
    int gp = ir_unary(g, IR_OP_GAP, ir_slice(g, cat, 2, 20, nm("slice")), nm("gap"));
    int l1 = ir_linear(g, gp, prm(g, "l1w", 2, 12, 20, 1, 1, IR_ROLE_WEIGHT), prm(g, "lb", 1, 12, 1, 1, 1, IR_ROLE_WEIGHT), "l1");
    b.output = b.logits = ir_linear(g, relu(g, l1), prm(g, "l2w", 2, 5, 12, 1, 1, IR_ROLE_WEIGHT), -1, "logits");
    cr_assert(b.output >= 0 && ir_verify(g) == 0, "%s", ir_graph_error(g));
    return b;
}

/* The reference with every value kept; absmax of each node over its MAXB samples (the
 * calibration the driver does on training images). */
static ref run_ref_calibrated(built *b, uint64_t seed, float **absmax) {
    int n = ir_graph_num_nodes(b->g);
    for (int i = 0; i < n; i++) ir_node_set_flags(b->g, i, IR_FLAG_OUTPUT);
    ref r = run_ref(b, b->output, seed);
    float *a = calloc(n > 0 ? (size_t)n : 1, sizeof *a);
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(b->g, i);
        if (nd->op == IR_OP_PARAM || nd->dtype != IR_DTYPE_F32) continue;
        int64_t k = ir_node_numel(nd);
        float *v = malloc(sizeof(float) * (size_t)k);
        cr_assert(rt_read(r.p, i, v, sizeof(float) * (size_t)k) == 0, "node %s", nd->name);
        for (int64_t j = 0; j < k; j++) a[i] = fmaxf(a[i], fabsf(v[j]));
        free(v);
    }
    *absmax = a;
    return r;
}

static cg_model int8_model(built *b, ref *r, const float *absmax, const char *name) {
    return (cg_model){.g = b->g, .values = r->vals, .input = b->input, .output = b->output, .name = name,
                      .in_c = (int)ir_graph_node(b->g, b->input)->shape[1], .mean = {0.5f, 0.5f, 0.5f},
                      .std = {0.25f, 0.25f, 0.25f}, .test_accuracy = -1, .absmax = absmax};
}

/* A driver for an integer-only model: quantises the float input file as the header says,
 * runs NAME_infer_q and writes the int32 logits times NAME_OUTPUT_SCALE as floats: the
 * float entry point's arithmetic, done outside the model. */
static void write_driver_q(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/drv_%s.c", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "#include <stdio.h>\n#include <stdlib.h>\n#include \"%s.h\"\n", name);
    put_tmpl(f,
             "static float xin[@_MAX_BATCH * @_INPUT_SIZE], yout[@_MAX_BATCH * @_OUTPUT_SIZE];\n"
             "static int8_t q[@_MAX_BATCH * @_INPUT_SIZE];\nstatic int32_t o[@_MAX_BATCH * @_OUTPUT_SIZE];\n"
             "int main(int argc, char **argv) {\n"
             "    int batch = argc == 4 ? atoi(argv[1]) : 0, ni, no, i;\n"
             "    FILE *f;\n    if (batch < 1 || batch > @_MAX_BATCH) return 10;\n"
             "    ni = batch * @_INPUT_SIZE;\n    no = batch * @_OUTPUT_SIZE;\n"
             "    f = fopen(argv[2], \"rb\");\n"
             "    if (!f || fread(xin, sizeof(float), (size_t)ni, f) != (size_t)ni) return 11;\n    fclose(f);\n"
             "    for (i = 0; i < ni; i++) {\n"
             "        float v = xin[i] / (float)@_INPUT_SCALE;\n"
             "        v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v;\n"
             "        q[i] = (int8_t)(v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v));\n    }\n"
             "    if (@_infer_q(q, o, batch)) return 13;\n"
             "    for (i = 0; i < no; i++) yout[i] = (float)o[i] * (float)@_OUTPUT_SCALE;\n"
             "    f = fopen(argv[3], \"wb\");\n"
             "    if (!f || fwrite(yout, sizeof(float), (size_t)no, f) != (size_t)no) return 16;\n"
             "    fclose(f);\n    return 0;\n}\n",
             name);
    fclose(f);
}

/* onnxruntime on the QDQ model (checked by onnx.checker and strict shape inference
 * first) over the first `batch` samples of r's input; returns its logits (malloc'd). */
static float *run_qdq(const char *dir, const char *onnx, const built *b, ref *r, int batch, int64_t *n_out) {
    char in_path[512], out_path[512], cmd[4096], err[512];
    snprintf(in_path, sizeof in_path, "%s/qdq_in.dtns", dir);
    snprintf(out_path, sizeof out_path, "%s/qdq_out.dtns", dir);
    const ir_node *xin = ir_graph_node(b->g, b->input);
    int64_t dims[4] = {batch, xin->shape[1], xin->shape[2], xin->shape[3]};
    rt_tf_writer *w = rt_tf_open_write(in_path, err, sizeof err);
    cr_assert(w, "%s", err);
    rt_tf_write(w, "input", RT_TF_F32, 4, dims, r->x);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "%s %s run --check %s %s %s", DARTSC_PYTHON, tu_src_path("tests/ref/onnx_check.py"), onnx,
             in_path, out_path);
    cr_assert_eq(system(cmd), 0, "onnx check/run of the QDQ model failed: %s", cmd);
    rt_tf_file *f = rt_tf_read(out_path, err, sizeof err);
    cr_assert(f, "%s", err);
    const rt_tf_entry *y = rt_tf_find(f, "logits");
    cr_assert(y && y->numel == r->out_sz * batch);
    float *o = malloc(sizeof(float) * (size_t)y->numel);
    memcpy(o, y->data, sizeof(float) * (size_t)y->numel);
    *n_out = y->numel;
    rt_tf_free(f);
    return o;
}

/* The int8 C against onnxruntime on the QDQ model of the same integers, and against the
 * float network, on the graph with every int8 op; gcc and clang; the integer-only
 * variant's object built with -mgeneral-regs-only (gcc then refuses any float
 * arithmetic) gives the float entry point's logits bit for bit.
 * Tolerances, in units of the logits' largest magnitude L over the batch:
 *  - C vs onnxruntime: 0.02 L. Both compute the same quantised network, but each requantises
 *    with its own rounding (fixed-point multiplier and ties away from zero in the C, a
 *    float scale and ties to even in onnxruntime): an int8 value can land one step apart
 *    and the step propagates through the next layers. Measured 5e-7 L here (every int8
 *    value agreed; what is left is onnxruntime's float sums in the last Gemm); dropping
 *    the ReLU read through by convolutions gives 0.10 L, a wrong scale or lowering O(L).
 *  - C vs the float network: 0.1 L. Quantisation error of ~20 int8 roundings in series
 *    (measured 0.012 L here; a wrong scale is O(L)). */
Test(cgen, int8_c_matches_onnxruntime_on_its_qdq_model_and_tracks_the_float_network) {
    const char *dir = tu_tmpdir();
    built b = build_int8_ops();
    float *absmax;
    ref r = run_ref_calibrated(&b, 13, &absmax);
    char err[512], path[512], cmd[1024];
    cg_model m = int8_model(&b, &r, absmax, "q8"), mi = int8_model(&b, &r, absmax, "q8i");
    cr_assert(cg_c_write_int8(&m, &(cg_c_opts){.max_batch = MAXB}, 0, dir, err, sizeof err) == 0, "%s", err);
    cr_assert(cg_c_write_int8(&mi, &(cg_c_opts){.max_batch = MAXB}, 1, dir, err, sizeof err) == 0, "%s", err);
    snprintf(path, sizeof path, "%s/q8.onnx", dir);
    cg_onnx_opts oo = cg_onnx_opts_default();
    oo.int8 = 1;
    cr_assert(cg_onnx_write(&m, &oo, path, err, sizeof err) == 0, "%s", err);
    const char *name = "q8";
    write_driver(dir, "drv_q8full.c", &name, 1);
    write_driver_q(dir, "q8i");
    compile(dir, "gcc", CFLAGS, "q8_gcc", "drv_q8full.c q8.c");
    compile(dir, "clang", CFLAGS, "q8_clang", "drv_q8full.c q8.c");
    char plain[256];
    snprintf(plain, sizeof plain, "%s -Dq8_PLAIN_C", CFLAGS);
    compile(dir, "gcc", plain, "q8_plain", "drv_q8full.c q8.c");
    snprintf(cmd, sizeof cmd, "cd %s && gcc %s -mgeneral-regs-only -c q8i.c -o q8i.o > q8i.log 2>&1", dir, CFLAGS);
    cr_assert(sh(cmd) == 0, "the integer-only C does not build with -mgeneral-regs-only: see %s/q8i.log", dir);
    compile(dir, "gcc", CFLAGS, "q8i_gcc", "drv_q8i.c q8i.o");
    int64_t n_out = r.out_sz * MAXB, n_ort;
    float *ort = run_qdq(dir, path, &b, &r, MAXB, &n_ort);
    cr_assert_eq(n_ort, n_out);
    float *y = malloc(sizeof(float) * (size_t)n_out), *yi = malloc(sizeof(float) * (size_t)n_out);
    float *yp = malloc(sizeof(float) * (size_t)n_out);
    double L = 0;
    for (int64_t i = 0; i < n_out; i++) L = fmax(L, fabs(r.y[i]));
    /* The dot-product tiles (cgen_q.c): the portable builds above hold an AVX-512 VNNI
     * clone and run it where the machine has VNNI; -march=native compiles it in there;
     * -mavxvnni (where the machine has AVX-VNNI) the 32-byte variant; -Dq8_NO_DOT the
     * generic vector tiles. Each is checked to hold vpdpbusd (or not) so that the bit
     * comparisons below cannot pass on a path that was not built. */
    int vnni = sh("grep -qw avx512_vnni /proc/cpuinfo") == 0, avxvnni = sh("grep -qw avx_vnni /proc/cpuinfo") == 0;
    static const struct { const char *cc, *flags, *exe; int dot; } D[] = {
        {"gcc", "", "q8_gcc", 1},
        {"clang", "", "q8_clang", 1},
        {"gcc", "-march=native", "q8_gcc_native", 2},
        {"clang", "-march=native", "q8_clang_native", 2},
        {"gcc", "-march=native -Dq8_NO_DOT", "q8_nodot", 0},
        {"gcc", "-mavx2 -mfma -mavxvnni", "q8_avxvnni", 3},
    };
    const char *exes[sizeof D / sizeof *D];
    int n_exes = 0;
    for (size_t d = 0; d < sizeof D / sizeof *D; d++) {
        if (D[d].dot == 3 && !avxvnni) {
            fprintf(stderr, "cgen int8: no AVX-VNNI on this machine, its build not run\n");
            continue;
        }
        char fl[256];
        snprintf(fl, sizeof fl, "%s %s", CFLAGS, D[d].flags);
        if (d >= 2) compile(dir, D[d].cc, fl, D[d].exe, "drv_q8full.c q8.c");
        snprintf(cmd, sizeof cmd, "objdump -d %s/%s | grep -q vpdpbusd", dir, D[d].exe);
        int has = sh(cmd) == 0, want = D[d].dot == 1 || D[d].dot == 3 || (D[d].dot == 2 && vnni);
        cr_expect(has == want, "%s (%s %s): vpdpbusd %s", D[d].exe, D[d].cc, D[d].flags, has ? "present" : "absent");
        exes[n_exes++] = D[d].exe;
    }
    if (!vnni) fprintf(stderr, "cgen int8: no AVX-512 VNNI on this machine, its clone not run\n");
    ref *rs[1] = {&r};
    const char *qi = "q8i";
    run_exe(dir, "", "q8i_gcc", rs, &qi, 1, MAXB);
    snprintf(path, sizeof path, "%s/q8i.out", dir);
    read_floats(path, yi, n_out);
    run_exe(dir, "", "q8_plain", rs, &name, 1, MAXB); /* the plain C99 loops, not the vector code */
    snprintf(path, sizeof path, "%s/q8.out", dir);
    read_floats(path, yp, n_out);
    for (int e = 0; e < n_exes; e++) {
        run_exe(dir, "", exes[e], rs, &name, 1, MAXB);
        snprintf(path, sizeof path, "%s/q8.out", dir);
        read_floats(path, y, n_out);
        double d_ort = 0, d_float = 0;
        for (int64_t i = 0; i < n_out; i++) {
            d_ort = fmax(d_ort, fabs(y[i] - ort[i]));
            d_float = fmax(d_float, fabs(y[i] - r.y[i]));
        }
        cr_expect(d_ort <= 0.02 * L, "%s: int8 C vs onnxruntime QDQ %g (logits up to %g)", exes[e], d_ort, L);
        cr_expect(d_float <= 0.1 * L, "%s: int8 C vs float network %g (logits up to %g)", exes[e], d_float, L);
        cr_expect(memcmp(y, yi, sizeof(float) * (size_t)n_out) == 0, "%s: integer-only and float entry points differ", exes[e]);
        cr_expect(memcmp(y, yp, sizeof(float) * (size_t)n_out) == 0, "%s: the vector or dot-product code and the plain C differ",
                  exes[e]);
        fprintf(stderr, "cgen int8 (%s): |C - onnxruntime QDQ| <= %.3g L, |C - float| <= %.3g L (L = %.3g)\n", exes[e],
                d_ort / L, d_float / L, L);
    }
    free(y);
    free(yi);
    free(yp);
    free(ort);
    free(absmax);
    ref_free(&r);
    ir_graph_free(b.g);
}

/* Refusals: no calibrated ranges, an op without an int8 lowering, logits not from a
 * linear layer; each names what is wrong. */
Test(cgen, int8_refuses_uncalibrated_models_and_unsupported_ops) {
    built b = build_every_op();
    float *absmax;
    ref r = run_ref_calibrated(&b, 3, &absmax);
    char err[512];
    cg_model m = int8_model(&b, &r, absmax, "q");
    m.output = b.logits;
    cr_expect(cg_c_write_int8(&m, NULL, 0, tu_tmpdir(), err, sizeof err) != 0);
    cr_expect(strstr(err, "sig") && strstr(err, "not supported by the int8 C emitter"), "%s", err);
    ref_free(&r);
    ir_graph_free(b.g);
    free(absmax);
    b = build_int8_ops();
    r = run_ref_calibrated(&b, 3, &absmax);
    m = int8_model(&b, &r, absmax, "q");
    m.absmax = NULL;
    cr_expect(cg_c_write_int8(&m, NULL, 0, tu_tmpdir(), err, sizeof err) != 0);
    cr_expect(strstr(err, "calibrated"), "%s", err);
    m.absmax = absmax;
    m.output = ir_unary(b.g, IR_OP_GAP, b.input, "pooled_input");
    cr_expect(cg_c_write_int8(&m, NULL, 0, tu_tmpdir(), err, sizeof err) != 0);
    cr_expect(strstr(err, "linear layer") && strstr(err, "pooled_input"), "%s", err);
    ref_free(&r);
    ir_graph_free(b.g);
    free(absmax);
}

/* ---- other targets ------------------------------------------------------------------------- */

/* Portable means tested: the float C of the graph with every op and the int8 C of the
 * graph with every int8 op, cross-compiled with Debian's gcc for aarch64 (the GNU C
 * vectors as NEON, the plain C99 loops, and armv8.2-a+dotprod: the int8 C's sdot tiles,
 * run under qemu's -cpu max, which has the dot-product extension), 32-bit ARM (NEON) and riscv64 (vectors
 * lowered to scalar code), statically linked and run under qemu-user, against the x86-64
 * build of the same source on the same inputs. Float: max relative error <= 1e-4 (TOL,
 * FLOOR) against both x86 and dartsc's runtime, for the reasons in the file comment
 * (contraction into FMA differs by target, so bits may differ). int8: bit for bit the
 * x86 output (integer arithmetic; the float entry point's quantisation and scaling are
 * single IEEE operations). Needs scripts/setup's gcc-*-linux-gnu* and qemu-user. */
Test(cgen, cross_compiled_c_runs_alike_on_aarch64_arm_and_riscv64_under_qemu, .timeout = 900) {
    static const char *const tools[] = {"aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "riscv64-linux-gnu-gcc",
                                        "qemu-aarch64", "qemu-arm", "qemu-riscv64", "aarch64-linux-gnu-objdump"};
    char cmd[2048], path[512];
    for (size_t k = 0; k < sizeof tools / sizeof *tools; k++) {
        snprintf(cmd, sizeof cmd, "command -v %s > /dev/null", tools[k]);
        cr_assert(sh(cmd) == 0, "%s is not installed: run scripts/setup", tools[k]);
    }
    const char *dir = tu_tmpdir();
    built f = build_every_op(), q = build_int8_ops(), v = build_gathers(0); /* v: the vector gathers */
    float *absmax;
    ref rf = run_ref(&f, f.output, 21), rq = run_ref_calibrated(&q, 22, &absmax), rv = run_ref(&v, v.output, 23);
    char err[512];
    gen(&f, &rf, f.output, "xf", 0, dir);
    gen(&v, &rv, v.output, "xv", 0, dir);
    cg_model m = int8_model(&q, &rq, absmax, "xq");
    cr_assert(cg_c_write_int8(&m, &(cg_c_opts){.max_batch = MAXB}, 0, dir, err, sizeof err) == 0, "%s", err);
    const char *names[3] = {"xf", "xq", "xv"};
    ref *rs[3] = {&rf, &rq, &rv};
    write_driver(dir, "drvx.c", names, 3);
    compile(dir, "gcc", CFLAGS, "x86", "drvx.c xf.c xq.c xv.c");
    run_exe(dir, "", "x86", rs, names, 3, MAXB);
    int64_t nf = rf.out_sz * MAXB, nq = rq.out_sz * MAXB, nv = rv.out_sz * MAXB;
    float *f86 = malloc(sizeof(float) * (size_t)nf), *q86 = malloc(sizeof(float) * (size_t)nq);
    float *fx = malloc(sizeof(float) * (size_t)nf), *qx = malloc(sizeof(float) * (size_t)nq);
    float *v86 = malloc(sizeof(float) * (size_t)nv), *vx = malloc(sizeof(float) * (size_t)nv);
    snprintf(path, sizeof path, "%s/xf.out", dir);
    read_floats(path, f86, nf);
    snprintf(path, sizeof path, "%s/xq.out", dir);
    read_floats(path, q86, nq);
    snprintf(path, sizeof path, "%s/xv.out", dir);
    read_floats(path, v86, nv);
    static const struct { const char *cc, *flags, *runner, *exe; } T[] = {
        {"aarch64-linux-gnu-gcc", "", "qemu-aarch64", "aarch64"},
        {"aarch64-linux-gnu-gcc", "-Dxf_PLAIN_C -Dxv_PLAIN_C", "qemu-aarch64", "aarch64_plain"},
        {"aarch64-linux-gnu-gcc", "-march=armv8.2-a+dotprod", "qemu-aarch64 -cpu max", "aarch64_dotprod"},
        {"arm-linux-gnueabihf-gcc", "-mfpu=neon", "qemu-arm", "armv7_neon"},
        {"riscv64-linux-gnu-gcc", "", "qemu-riscv64", "riscv64"},
    };
    for (size_t t = 0; t < sizeof T / sizeof *T; t++) {
        char flags[512];
        snprintf(flags, sizeof flags, "%s -static %s", CFLAGS, T[t].flags);
        compile(dir, T[t].cc, flags, T[t].exe, "drvx.c xf.c xq.c xv.c");
        if (strstr(T[t].flags, "dotprod")) { /* the int8 C's sdot tiles are there to compare */
            snprintf(cmd, sizeof cmd, "aarch64-linux-gnu-objdump -d %s/%s | grep -q sdot", dir, T[t].exe);
            cr_expect(sh(cmd) == 0, "%s: no sdot in the dotprod build", T[t].exe);
        }
        run_exe(dir, T[t].runner, T[t].exe, rs, names, 3, MAXB);
        snprintf(path, sizeof path, "%s/xf.out", dir);
        read_floats(path, fx, nf);
        snprintf(path, sizeof path, "%s/xq.out", dir);
        read_floats(path, qx, nq);
        snprintf(path, sizeof path, "%s/xv.out", dir);
        read_floats(path, vx, nv);
        int64_t wi, wj, wk;
        double e86 = tu_max_rel_err(fx, f86, nf, FLOOR, &wi), ert = tu_max_rel_err(fx, rf.y, nf, FLOOR, &wj);
        double ev = tu_max_rel_err(vx, v86, nv, FLOOR, &wk);
        cr_expect(e86 <= TOL, "%s: float C vs x86-64 max rel err %g at %lld", T[t].exe, e86, (long long)wi);
        cr_expect(ert <= TOL, "%s: float C vs runtime max rel err %g at %lld", T[t].exe, ert, (long long)wj);
        cr_expect(ev <= TOL, "%s: gathers' C vs x86-64 max rel err %g at %lld", T[t].exe, ev, (long long)wk);
        cr_expect(memcmp(qx, q86, sizeof(float) * (size_t)nq) == 0, "%s: int8 C differs from x86-64", T[t].exe);
        fprintf(stderr, "cgen %s under %s: float vs x86-64 %.3g, vs runtime %.3g; gathers vs x86-64 %.3g; int8 %s\n", T[t].exe,
                T[t].runner, e86, ert, ev, memcmp(qx, q86, sizeof(float) * (size_t)nq) ? "DIFFERS" : "bit-identical");
    }
    free(v86);
    free(vx);
    ref_free(&rv);
    ir_graph_free(v.g);
    free(f86);
    free(q86);
    free(fx);
    free(qx);
    free(absmax);
    ref_free(&rf);
    ref_free(&rq);
    ir_graph_free(f.g);
    ir_graph_free(q.g);
}

/* ---- stack --------------------------------------------------------------------------------- */

/* Peak stack of the entry points from gcc's -fstack-usage: the generated call graph is
 * entry point -> infer_with_arena (-> run, int8) -> op -> helper, with no recursion, so
 * the sum of the entry chain's frames, the largest op frame and the largest helper frame
 * bounds it. Every frame must be static (no VLA, no alloca). Returns the bound in bytes. */
static long stack_peak(const char *dir, const char *name, const char *cc, const char *flags) {
    char cmd[1024], path[512], line[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s %s -fstack-usage -c %s.c -o %s_su.o > %s_su.log 2>&1", dir, cc, CFLAGS, flags,
             name, name, name);
    cr_assert(sh(cmd) == 0, "%s %s -fstack-usage failed", cc, flags);
    snprintf(path, sizeof path, "%s/%s_su.su", dir, name);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no %s", path);
    long chain = 0, op = 0, helper = 0;
    int n = 0;
    size_t L = strlen(name);
    while (fgets(line, sizeof line, f)) {
        char *t1 = strchr(line, '\t'), *fn;
        cr_assert(t1, "bad line in %s: %s", path, line);
        *t1 = 0;
        fn = strrchr(line, ':');
        fn = fn ? fn + 1 : line;
        long bytes = strtol(t1 + 1, NULL, 10);
        cr_expect(strstr(t1 + 1, "static") && !strstr(t1 + 1, "dynamic"), "%s: %s has a %s", path, fn, t1 + 1);
        const char *rest = !strncmp(fn, name, L) && fn[L] == '_' ? fn + L + 1 : "";
        if (!strncmp(rest, "infer", 5) || !strncmp(rest, "run", 3)) chain += bytes; /* clones included: an upper bound */
        else if (!strncmp(rest, "op", 2)) op = bytes > op ? bytes : op;
        else helper = bytes > helper ? bytes : helper;
        n++;
    }
    fclose(f);
    cr_assert(n > 0, "%s is empty", path);
    return chain + op + helper;
}

/* The float and the int8 C of a small DARTS network (C=4, 3 cells): stack bounded and small, measured
 * by gcc -O2 for x86-64 (with the dispatch clones) and aarch64. Bounds: 16 KiB float (the
 * vector tiles keep up to 16 64-byte accumulators and gcc spills some); int8 8 KiB on
 * x86-64, whose baseline dispatch clone runs the 64-byte vector tiles (8 accumulators) on
 * SSE2 registers and spills them (measured 5,120 bytes), 2 KiB on aarch64 (16-byte NEON
 * tiles); the figures are in docs/BENCHMARKS.md. */
Test(cgen, stack_of_the_inference_functions_is_static_and_bounded) {
    const char *dir = tu_tmpdir();
    built d = build_darts(4, 3, 10);
    float *absmax;
    ref r = run_ref_calibrated(&d, 7, &absmax);
    char err[512];
    gen(&d, &r, d.output, "sf", 0, dir);
    cg_model m = int8_model(&d, &r, absmax, "sq");
    cr_assert(cg_c_write_int8(&m, NULL, 0, dir, err, sizeof err) == 0, "%s", err);
    const char *ccs[2] = {"gcc", "aarch64-linux-gnu-gcc"};
    for (int c = 0; c < 2; c++) {
        long fl = stack_peak(dir, "sf", ccs[c], "-O2"), q8 = stack_peak(dir, "sq", ccs[c], "-O2");
        cr_expect(fl > 0 && fl <= 16384, "%s: float C stack bound %ld bytes", ccs[c], fl);
        cr_expect(q8 > 0 && q8 <= (c == 0 ? 8192 : 2048), "%s: int8 C stack bound %ld bytes", ccs[c], q8);
        fprintf(stderr, "cgen stack (%s -O2, DARTS C=4 3 cells): float <= %ld bytes, int8 <= %ld bytes\n", ccs[c], fl, q8);
    }
    free(absmax);
    ref_free(&r);
    ir_graph_free(d.g);
}

/* int8 end to end on a trained network: tests/golden/int8 holds a small DARTS network
 * (C 8, 3 cells, trained for one epoch on 24,000 Fashion-MNIST images; its README says
 * how it was made). `dartsc export --int8 --calibrate 256` (C and QDQ ONNX) and
 * `--integer-only`, against the float export, on all 10,000 test images
 * (tests/ref/check_int8.py): the int8 C within 1 point of the float C's accuracy (#24),
 * onnxruntime on the QDQ model agreeing with the int8 C on >= 99.5 % of the images (#24;
 * both compute the same integers and differ only in requantisation rounding ties), the
 * integer-only C on every image (same body, the quantisation moved to the caller), and
 * the float C with onnxruntime on the float model on every image (as test_run). */
Test(cgen, int8_export_of_a_trained_network_keeps_its_accuracy, .timeout = 900) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    const char *dir = tu_tmpdir();
    char cmd[4096];
    char gold[512];
    snprintf(gold, sizeof gold, "%s", tu_src_path("tests/golden/int8")); /* tu_src_path's buffer is static */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/run && cp %s/space.dartsc %s/genotype.json %s/model.dtns %s/run/", dir, gold, gold,
             gold, dir);
    cr_assert(sh(cmd) == 0, "%s", cmd);
    const char *exports[3] = {"--c %s/f --onnx %s/f.onnx", "--int8 --calibrate 256 --c %s/q --onnx %s/q.onnx",
                              "--int8 --integer-only --calibrate 256 --c %s/i --onnx %s/i.onnx"};
    for (int k = 0; k < 3; k++) {
        char args[1024];
        snprintf(args, sizeof args, exports[k], dir, dir);
        snprintf(cmd, sizeof cmd, "%s export %s/run %s > %s/export%d.log 2>&1", bin, dir, args, dir, k);
        cr_assert(sh(cmd) == 0, "dartsc export %s failed: see %s/export%d.log", args, dir, k);
    }
    const char *drivers[3] = {"cgen_predict.c", "cgen_predict.c", "cgen_predict_q.c"}, *sub[3] = {"f", "q", "i"};
    for (int k = 0; k < 3; k++) {
        char srcs[1024], flags[1024], exe[64], rel[128];
        snprintf(rel, sizeof rel, "tests/ref/%s", drivers[k]);
        snprintf(srcs, sizeof srcs, "%s %s/model.c", tu_src_path(rel), sub[k]);
        snprintf(flags, sizeof flags, "%s -march=native -I%s/%s", CFLAGS, dir, sub[k]); /* int8 C: 2x faster */
        snprintf(exe, sizeof exe, "%s/predict", sub[k]);
        compile(dir, "gcc", flags, exe, srcs);
    }
    snprintf(cmd, sizeof cmd, "%s %s %s 10000 > %s/res.json", DARTSC_PYTHON, tu_src_path("tests/ref/check_int8.py"), dir, dir);
    cr_assert(sh(cmd) == 0, "check_int8.py failed: %s", cmd);
    char path[512];
    snprintf(path, sizeof path, "%s/res.json", dir);
    json_error_t je;
    json_t *res = json_load_file(path, 0, &je);
    cr_assert(res, "%s: %s", path, je.text);
    double acc_f = json_number_value(json_object_get(res, "acc_c_float")), acc_q = json_number_value(json_object_get(res, "acc_c_int8"));
    double agree_ort = json_number_value(json_object_get(res, "agree_c_int8_ort_qdq"));
    double agree_io = json_number_value(json_object_get(res, "agree_c_int8_integer_only"));
    double agree_f = json_number_value(json_object_get(res, "agree_c_float_ort_float"));
    cr_expect(acc_f > 0.6, "the fixture's float accuracy %.4f: not a trained network", acc_f);
    cr_expect(acc_q >= acc_f - 0.01, "int8 C accuracy %.4f vs float %.4f: more than 1 point lost", acc_q, acc_f);
    cr_expect(agree_ort >= 0.995, "int8 C and onnxruntime QDQ agree on %.4f of the images", agree_ort);
    cr_expect(agree_io == 1.0, "integer-only and float-entry int8 C agree on %.4f of the images", agree_io);
    cr_expect(agree_f == 1.0, "float C and onnxruntime agree on %.4f of the images", agree_f);
    fprintf(stderr, "cgen int8 end to end (10,000 test images): float C %.4f, int8 C %.4f, QDQ onnxruntime %.4f; int8 C = "
                    "QDQ on %.4f, = integer-only on %.4f\n",
            acc_f, acc_q, json_number_value(json_object_get(res, "acc_ort_qdq")), agree_ort, agree_io);
    json_decref(res);
}
