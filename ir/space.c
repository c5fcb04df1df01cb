/* space.c — built-in spaces, consistency checks, and lowering of a space to the search
 * supernet graph. Candidate ops expand exactly as ../shared/REFERENCE.md says, and
 * parameters are named as in the reference PyTorch code so that weights exchange by name. */
#include "space.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

void ir_train_config_default_search(ir_train_config *tc) {
    memset(tc, 0, sizeof *tc);
    tc->epochs = 50;
    tc->batch = 64;
    tc->w_lr = 0.025f;
    tc->w_lr_min = 0.001f;
    tc->w_momentum = 0.9f;
    tc->w_wd = 3e-4f;
    tc->w_clip = 5.0f;
    tc->a_lr = 3e-4f;
    tc->a_beta1 = 0.5f;
    tc->a_beta2 = 0.999f;
    tc->a_wd = 1e-3f;
    tc->order = 1; /* the reference code's default (--unrolled off); the paper's best run is order 2 */
    tc->seed = 2;
    tc->train_portion = 0.5f;
    tc->crop_pad = 4;
    tc->hflip = 1;
    tc->max_skip = 2;     /* P-DARTS's M */
    tc->stop_skips = 2;   /* DARTS+'s criteria */
    tc->stop_stable = 10;
    tc->lr_power = 2.0f;  /* sharpDARTS's search default */
    tc->latency_weight = 0.1f; /* ProxylessNAS: lambda per millisecond (search/proxyless.c) */
}

static void train_config_default_retrain(ir_train_config *tc) {
    ir_train_config_default_search(tc);
    tc->epochs = 600;
    tc->batch = 96;
    tc->w_lr_min = 0.0f;
    tc->train_portion = 1.0f;
    tc->cutout = 16;
    tc->drop_path = 0.2f;
    tc->aux_weight = 0.4f;
}

void ir_cell_all_edges(ir_cell *c) {
    for (int i = 0; i < IR_MAX_NODES; i++)
        c->edges[i] = i < c->n_nodes ? (uint32_t)((1ull << (c->n_inputs + i)) - 1) : 0;
}

static void set_cand(ir_cand *o, ir_cand_kind kind, int k, int dil, const char *name) {
    o->kind = kind;
    o->k = k;
    o->dilation = dil;
    snprintf(o->name, sizeof o->name, "%s", name);
}

void ir_cell_darts_default(ir_cell *c) {
    memset(c, 0, sizeof *c);
    c->n_inputs = 2;
    c->n_nodes = 4;
    c->k_keep = 2;
    c->combine = IR_COMBINE_CONCAT;
    ir_cell_all_edges(c);
    c->n_ops = 8;
    set_cand(&c->ops[0], IR_CAND_NONE, 0, 0, "none");
    set_cand(&c->ops[1], IR_CAND_MAX_POOL, 3, 0, "max_pool_3x3");
    set_cand(&c->ops[2], IR_CAND_AVG_POOL, 3, 0, "avg_pool_3x3");
    set_cand(&c->ops[3], IR_CAND_SKIP, 0, 0, "skip_connect");
    set_cand(&c->ops[4], IR_CAND_SEP_CONV, 3, 0, "sep_conv_3x3");
    set_cand(&c->ops[5], IR_CAND_SEP_CONV, 5, 0, "sep_conv_5x5");
    set_cand(&c->ops[6], IR_CAND_DIL_CONV, 3, 2, "dil_conv_3x3");
    set_cand(&c->ops[7], IR_CAND_DIL_CONV, 5, 2, "dil_conv_5x5");
}

void ir_space_darts_cifar10(ir_space *sp) {
    memset(sp, 0, sizeof *sp);
    snprintf(sp->name, sizeof sp->name, "darts_cifar10");
    sp->kind = IR_SPACE_CNN;
    sp->data = IR_DATA_CIFAR10;
    sp->in_c = 3; sp->in_h = 32; sp->in_w = 32; sp->classes = 10;
    const float mean[3] = {0.49139968f, 0.48215827f, 0.44653124f};
    const float std[3] = {0.24703233f, 0.24348505f, 0.26158768f};
    memcpy(sp->mean, mean, sizeof mean);
    memcpy(sp->std, std, sizeof std);
    sp->C = 16;
    sp->layers = 8;
    sp->stem_mult = 3;
    sp->growth = 2;
    sp->n_reduce = 2;
    sp->reduce_at[0] = sp->layers / 3;
    sp->reduce_at[1] = 2 * sp->layers / 3;
    ir_cell_darts_default(&sp->normal);
    ir_cell_darts_default(&sp->reduce);
    ir_train_config_default_search(&sp->search);
    train_config_default_retrain(&sp->train);
    sp->train_C = 36;
    sp->train_layers = 20;
}

int ir_cell_num_edges(const ir_cell *c) {
    int e = 0;
    for (int i = 0; i < c->n_nodes && i < IR_MAX_NODES; i++)
        for (int j = 0; j < c->n_inputs + i; j++) e += (c->edges[i] >> j) & 1;
    return e;
}

int ir_cell_edge(const ir_cell *c, int r, int *node, int *src) {
    int e = 0;
    for (int i = 0; i < c->n_nodes && i < IR_MAX_NODES; i++)
        for (int j = 0; j < c->n_inputs + i; j++) {
            if (!((c->edges[i] >> j) & 1)) continue;
            if (e == r) { *node = i; *src = j; return 0; }
            e++;
        }
    return -1;
}

int ir_cell_none_index(const ir_cell *c) {
    for (int o = 0; o < c->n_ops; o++)
        if (c->ops[o].kind == IR_CAND_NONE) return o;
    return -1;
}

/* ---- checks ------------------------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_recurrent(ir_cand_kind k) {
    return k == IR_CAND_TANH || k == IR_CAND_RELU || k == IR_CAND_SIGMOID || k == IR_CAND_IDENTITY;
}

static int check_cell(const ir_cell *c, const char *what, ir_space_kind kind, char *err, size_t errlen) {
    if (c->n_inputs < 1 || c->n_inputs > 2) return fail(err, errlen, "%s cell: inputs must be 1 or 2, not %d", what, c->n_inputs);
    if (c->n_nodes < 1 || c->n_nodes > IR_MAX_NODES)
        return fail(err, errlen, "%s cell: nodes must be between 1 and %d, not %d", what, IR_MAX_NODES, c->n_nodes);
    if (c->n_ops < 1 || c->n_ops > IR_MAX_CANDS)
        return fail(err, errlen, "%s cell: needs between 1 and %d candidate ops, has %d", what, IR_MAX_CANDS, c->n_ops);
    int real = 0;
    for (int o = 0; o < c->n_ops; o++) {
        const ir_cand *op = &c->ops[o];
        if ((unsigned)op->kind >= IR_CAND_COUNT) return fail(err, errlen, "%s cell: op %d has an unknown kind", what, o);
        if (op->kind != IR_CAND_NONE) real++;
        if (kind == IR_SPACE_CNN && is_recurrent(op->kind))
            return fail(err, errlen, "%s cell: op '%s' is a recurrent op in a convolutional space", what, op->name);
        if (kind == IR_SPACE_RNN && !is_recurrent(op->kind) && op->kind != IR_CAND_NONE)
            return fail(err, errlen, "%s cell: op '%s' is a convolutional op in a recurrent space", what, op->name);
        int needs_k = op->kind == IR_CAND_SEP_CONV || op->kind == IR_CAND_DIL_CONV || op->kind == IR_CAND_MAX_POOL ||
                      op->kind == IR_CAND_AVG_POOL || op->kind == IR_CAND_CONV || op->kind == IR_CAND_CONV_1xK_Kx1 ||
                      op->kind == IR_CAND_SHARP_SEP_CONV;
        if (needs_k && (op->k < 1 || op->k > 15 || op->k % 2 == 0))
            return fail(err, errlen, "%s cell: op '%s' needs an odd kernel size between 1 and 15, not %d", what, op->name, op->k);
        if ((op->kind == IR_CAND_DIL_CONV || op->kind == IR_CAND_SHARP_SEP_CONV) && (op->dilation < 1 || op->dilation > 8))
            return fail(err, errlen, "%s cell: op '%s' needs a dilation between 1 and 8, not %d", what, op->name, op->dilation);
        for (int p = 0; p < o; p++)
            if (strcmp(c->ops[p].name, op->name) == 0)
                return fail(err, errlen, "%s cell: op '%s' appears twice", what, op->name);
    }
    if (!real) return fail(err, errlen, "%s cell: every candidate op is 'none'; nothing can be derived", what);
    if (c->k_keep < 1) return fail(err, errlen, "%s cell: keep must be at least 1, not %d", what, c->k_keep);
    for (int i = 0; i < c->n_nodes; i++) {
        uint32_t allowed = (uint32_t)((1ull << (c->n_inputs + i)) - 1);
        if (c->edges[i] & ~allowed)
            return fail(err, errlen, "%s cell: node %d has an edge from a state that does not precede it", what, i);
        /* a node keeps min(k, states before it): node 0 of a 2-input cell keeps at most 2 */
        int n = __builtin_popcount(c->edges[i]), avail = c->n_inputs + i;
        if (n < (c->k_keep < avail ? c->k_keep : avail))
            return fail(err, errlen, "%s cell: node %d has %d incoming edge%s but keep is %d; a derived cell needs %d",
                        what, i, n, n == 1 ? "" : "s", c->k_keep, c->k_keep);
    }
    return 0;
}

int ir_space_check(const ir_space *sp, char *err, size_t errlen) {
    if (sp->in_c < 1 || sp->in_c > 4) return fail(err, errlen, "input channels must be between 1 and 4, not %d", sp->in_c);
    if (sp->classes < 2) return fail(err, errlen, "classes must be at least 2, not %d", sp->classes);
    if (check_cell(&sp->normal, "normal", sp->kind, err, errlen)) return -1;
    if (check_cell(&sp->reduce, "reduction", sp->kind, err, errlen)) return -1;
    if (sp->kind == IR_SPACE_RNN) {
        if (sp->emb < 1 || sp->hidden < 1) return fail(err, errlen, "recurrent space needs positive embedding and hidden sizes");
        return 0;
    }
    if (sp->in_h < 2 || sp->in_w < 2 || sp->in_h > 4096 || sp->in_w > 4096)
        return fail(err, errlen, "input size %dx%d is out of range", sp->in_h, sp->in_w);
    if (sp->C < 1 || sp->C > 4096) return fail(err, errlen, "C must be between 1 and 4096, not %d", sp->C);
    if (sp->layers < 1 || sp->layers > 256) return fail(err, errlen, "layers must be between 1 and 256, not %d", sp->layers);
    if (sp->stem_mult < 1 || sp->stem_mult > 16) return fail(err, errlen, "stem multiplier must be between 1 and 16");
    if (sp->growth < 1 || sp->growth > 8) return fail(err, errlen, "growth must be between 1 and 8");
    if (sp->n_reduce < 0 || sp->n_reduce > IR_MAX_REDUCE) return fail(err, errlen, "at most %d reduction cells", IR_MAX_REDUCE);
    int h = sp->in_h, w = sp->in_w;
    int64_t c = sp->C;
    for (int r = 0; r < sp->n_reduce; r++) {
        if (sp->reduce_at[r] < 0 || sp->reduce_at[r] >= sp->layers)
            return fail(err, errlen, "reduction at cell %d is outside 0..%d", sp->reduce_at[r], sp->layers - 1);
        if (r && sp->reduce_at[r] <= sp->reduce_at[r - 1])
            return fail(err, errlen, "reduction positions must increase (%d after %d)", sp->reduce_at[r], sp->reduce_at[r - 1]);
        if (h % 2 || w % 2)
            return fail(err, errlen, "reduction %d at cell %d halves a %dx%d feature map; it must be even (FactorizedReduce)",
                        r + 1, sp->reduce_at[r], h, w);
        h /= 2;
        w /= 2;
        c *= sp->growth;
        if (c % 2) return fail(err, errlen, "reduction cells need an even channel count (FactorizedReduce), have %lld", (long long)c);
        if (c > 65536) return fail(err, errlen, "channel count grows to %lld", (long long)c);
    }
    if (sp->n_reduce > 0 && sp->C % 2 && sp->growth % 2)
        return fail(err, errlen, "C must be even (FactorizedReduce), not %d", sp->C);
    return 0;
}

/* ---- lowering --------------------------------------------------------------------------------- */

typedef struct builder {
    ir_graph *g;
    int bn_batch_stats; /* 1 in search: batch statistics always */
    int affine;         /* affine BN inside cells */
    const ir_supernet_opts *so; /* search supernets: the successors' variants (never NULL there) */
    int weights[2];     /* per cell type: what the mixed ops read (alpha, or sigmoid(alpha)) */
    int share;          /* search supernets: parameter-free ops of one state built once (b_memo_*) */
    int nmemo;          /* b_memo_*'s table, emptied at each cell */
    struct b_memo {
        int op, x, a0, a1, a2, y;
    } memo[64];
} builder;

/* Parameter-free ops of one input shared by a search cell's edges. Every edge from a state
 * computes the same max and average pools of it (and on a reduction edge FactorizedReduce's
 * ReLU and pixel shift; PC-DARTS' channel slices and the bypass's pool): PyTorch's DARTS
 * runs each edge's own copy; the supernet builds each once, named after the first edge
 * that asks for it, and the others read it (their gradients meet in its gradient before
 * its one backward). The same values forward; backward the edges' gradients are summed
 * before the op instead of after it. Not the ReLUs of the convolutions: those fold into
 * their convolution (runtime/plan.c), which a shared one could not. b_memo_find returns
 * the node or -1; b_memo_put records y (a full table builds further copies: still right).
 * Each reuse is counted (ir_graph_reuse), so every parameter draws the initial values it
 * gets without sharing (runtime/plan.c seeds them by ir_node.seq). */
static int b_memo_find(builder *b, int op, int x, int a0, int a1, int a2) {
    for (int i = 0; b->share && i < b->nmemo; i++) {
        const struct b_memo *m = &b->memo[i];
        if (m->op != op || m->x != x || m->a0 != a0 || m->a1 != a1 || m->a2 != a2) continue;
        ir_graph_reuse(b->g); /* the parameters after it keep the values one copy per edge gives them */
        return m->y;
    }
    return -1;
}
static int b_memo_put(builder *b, int op, int x, int a0, int a1, int a2, int y) {
    if (b->share && y >= 0 && b->nmemo < (int)(sizeof b->memo / sizeof *b->memo))
        b->memo[b->nmemo++] = (struct b_memo){op, x, a0, a1, a2, y};
    return y;
}
static int b_pool(builder *b, ir_op op, int x, int k, int stride, int pad, const char *name) {
    int y = b_memo_find(b, op, x, k, stride, pad);
    return y >= 0 ? y : b_memo_put(b, op, x, k, stride, pad, ir_pool(b->g, op, x, k, stride, pad, name));
}
static int b_slice(builder *b, int x, int start, int len, const char *name) {
    int y = b_memo_find(b, IR_OP_SLICE, x, start, len, 0);
    return y >= 0 ? y : b_memo_put(b, IR_OP_SLICE, x, start, len, 0, ir_slice(b->g, x, start, len, name));
}
/* A unary op of one input (only FactorizedReduce's ReLU and shift come through here, so a
 * convolution's ReLU, built by b_relu, is never merged with them). */
static int b_unary_shared(builder *b, ir_op op, int x, const char *name) {
    int y = b_memo_find(b, op, x, 0, 0, 0);
    return y >= 0 ? y : b_memo_put(b, op, x, 0, 0, 0, ir_unary(b->g, op, x, name));
}

static int b_conv(builder *b, int x, const char *prefix, int64_t cin, int64_t cout, int kh, int kw, int sh, int sw,
                  int ph, int pw, int dil, int groups) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    int64_t shape[4] = {cout, cin / groups, kh, kw};
    int w = ir_param(b->g, name, IR_ROLE_WEIGHT, 4, shape, ir_init_kaiming_uniform(cin / groups * kh * kw));
    return ir_conv2d(b->g, x, w, sh, sw, ph, pw, dil, dil, groups, prefix);
}

static int b_bn(builder *b, int x, const char *prefix, int64_t c, int affine) {
    char name[256];
    int gamma = -1, beta = -1;
    int64_t shape[1] = {c};
    if (affine) {
        snprintf(name, sizeof name, "%s.weight", prefix);
        gamma = ir_param(b->g, name, IR_ROLE_WEIGHT, 1, shape, ir_init_ones());
        snprintf(name, sizeof name, "%s.bias", prefix);
        beta = ir_param(b->g, name, IR_ROLE_WEIGHT, 1, shape, ir_init_zeros());
    }
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    int rm = ir_param(b->g, name, IR_ROLE_BUFFER, 1, shape, ir_init_zeros());
    snprintf(name, sizeof name, "%s.running_var", prefix);
    int rv = ir_param(b->g, name, IR_ROLE_BUFFER, 1, shape, ir_init_ones());
    return ir_batchnorm(b->g, x, gamma, beta, rm, rv, b->bn_batch_stats, BN_EPS, BN_MOMENTUM, prefix);
}

static int b_relu(builder *b, int x, const char *name) { return ir_unary(b->g, IR_OP_RELU, x, name); }

/* ReLU -> conv k x k -> BN, PyTorch ReLUConvBN: prefix.op.{0,1,2} */
static int b_relu_conv_bn(builder *b, int x, const char *p, int64_t cin, int64_t cout, int k, int stride, int pad) {
    char n[256];
    snprintf(n, sizeof n, "%s.op.0", p);
    x = b_relu(b, x, n);
    snprintf(n, sizeof n, "%s.op.1", p);
    x = b_conv(b, x, n, cin, cout, k, k, stride, stride, pad, pad, 1, 1);
    snprintf(n, sizeof n, "%s.op.2", p);
    return b_bn(b, x, n, cout, b->affine);
}

/* FactorizedReduce: ReLU; conv_1(x) and conv_2(x[:, :, 1:, 1:]), 1x1 stride 2, concat; BN. */
static int b_factorized_reduce(builder *b, int x, const char *p, int64_t cin, int64_t cout) {
    char n[256];
    snprintf(n, sizeof n, "%s.relu", p);
    x = b_unary_shared(b, IR_OP_RELU, x, n);
    snprintf(n, sizeof n, "%s.conv_1", p);
    int a = b_conv(b, x, n, cin, cout / 2, 1, 1, 2, 2, 0, 0, 1, 1);
    snprintf(n, sizeof n, "%s.shift", p);
    int s = b_unary_shared(b, IR_OP_SHIFT, x, n);
    snprintf(n, sizeof n, "%s.conv_2", p);
    int c = b_conv(b, s, n, cin, cout / 2, 1, 1, 2, 2, 0, 0, 1, 1);
    snprintf(n, sizeof n, "%s.concat", p);
    int y = ir_nary(b->g, IR_OP_CONCAT, 2, (int[]){a, c}, n);
    snprintf(n, sizeof n, "%s.bn", p);
    return b_bn(b, y, n, cout, b->affine);
}

/* One candidate op on an edge; returns its output node, or -2 for 'none' (no node). */
static int b_cand(builder *b, const ir_cand *op, int x, const char *p, int64_t C, int stride, int search) {
    char n[256];
    int k = op->k;
    switch (op->kind) {
    case IR_CAND_NONE:
        return -2;
    case IR_CAND_SKIP:
        return stride == 1 ? x : b_factorized_reduce(b, x, p, C, C);
    case IR_CAND_MAX_POOL:
    case IR_CAND_AVG_POOL: {
        ir_op pop = op->kind == IR_CAND_MAX_POOL ? IR_OP_MAXPOOL : IR_OP_AVGPOOL;
        snprintf(n, sizeof n, search ? "%s.0" : "%s", p);
        int y = b_pool(b, pop, x, k, stride, k / 2, n);
        if (!search) return y;
        snprintf(n, sizeof n, "%s.1", p);
        return b_bn(b, y, n, C, 0);
    }
    case IR_CAND_SEP_CONV: {
        int y = x;
        for (int half = 0; half < 2; half++) {
            int base = 4 * half, s = half ? 1 : stride;
            snprintf(n, sizeof n, "%s.op.%d", p, base);
            y = b_relu(b, y, n);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 1);
            y = b_conv(b, y, n, C, C, k, k, s, s, k / 2, k / 2, 1, (int)C);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 2);
            y = b_conv(b, y, n, C, C, 1, 1, 1, 1, 0, 0, 1, 1);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 3);
            y = b_bn(b, y, n, C, b->affine);
        }
        return y;
    }
    case IR_CAND_SHARP_SEP_CONV: {
        /* sharpDARTS's SharpSepConv (C_mid = C): only the first depthwise convolution is
           strided and dilated; the second is k x k, stride 1, dilation 1 */
        int d = op->dilation, y = x;
        for (int half = 0; half < 2; half++) {
            int base = 4 * half, s = half ? 1 : stride, dd = half ? 1 : d, pad = dd * (k - 1) / 2;
            snprintf(n, sizeof n, "%s.op.%d", p, base);
            y = b_relu(b, y, n);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 1);
            y = b_conv(b, y, n, C, C, k, k, s, s, pad, pad, dd, (int)C);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 2);
            y = b_conv(b, y, n, C, C, 1, 1, 1, 1, 0, 0, 1, 1);
            snprintf(n, sizeof n, "%s.op.%d", p, base + 3);
            y = b_bn(b, y, n, C, b->affine);
        }
        return y;
    }
    case IR_CAND_DIL_CONV: {
        int d = op->dilation, pad = d * (k - 1) / 2;
        snprintf(n, sizeof n, "%s.op.0", p);
        int y = b_relu(b, x, n);
        snprintf(n, sizeof n, "%s.op.1", p);
        y = b_conv(b, y, n, C, C, k, k, stride, stride, pad, pad, d, (int)C);
        snprintf(n, sizeof n, "%s.op.2", p);
        y = b_conv(b, y, n, C, C, 1, 1, 1, 1, 0, 0, 1, 1);
        snprintf(n, sizeof n, "%s.op.3", p);
        return b_bn(b, y, n, C, b->affine);
    }
    case IR_CAND_CONV:
        return b_relu_conv_bn(b, x, p, C, C, k, stride, k / 2);
    case IR_CAND_CONV_1xK_Kx1: {
        snprintf(n, sizeof n, "%s.op.0", p);
        int y = b_relu(b, x, n);
        snprintf(n, sizeof n, "%s.op.1", p);
        y = b_conv(b, y, n, C, C, 1, k, 1, stride, 0, k / 2, 1, 1);
        snprintf(n, sizeof n, "%s.op.2", p);
        y = b_conv(b, y, n, C, C, k, 1, stride, 1, k / 2, 0, 1, 1);
        snprintf(n, sizeof n, "%s.op.3", p);
        return b_bn(b, y, n, C, b->affine);
    }
    default:
        ir_graph_set_error(b->g, "%s: op '%s' cannot appear in a convolutional cell", p, op->name);
        return -1;
    }
}

/* A cell's input states: s0 through FactorizedReduce after a reduction cell, else
 * ReLUConvBN; s1 through ReLUConvBN. Returns the number of states written. */
static int b_cell_inputs(builder *b, const ir_cell *cell, int ci, int s0, int s1, int64_t c_pp, int64_t c_p, int64_t C,
                         int reduction_prev, int *states) {
    char p[128];
    int ns = 0;
    if (cell->n_inputs == 2) {
        snprintf(p, sizeof p, "cells.%d.preprocess0", ci);
        states[ns++] = reduction_prev ? b_factorized_reduce(b, s0, p, c_pp, C) : b_relu_conv_bn(b, s0, p, c_pp, C, 1, 1, 0);
    }
    snprintf(p, sizeof p, "cells.%d.preprocess1", ci);
    states[ns++] = b_relu_conv_bn(b, s1, p, c_p, C, 1, 1, 0);
    return ns;
}

/* One search cell: preprocessing, mixed edges, combine. betas: PC-DARTS' per-node edge
 * weights (NULL: plain sums). */
static int b_search_cell(builder *b, const ir_cell *cell, int ci, int alpha, int s0, int s1, int64_t c_pp,
                         int64_t c_p, int64_t C, int reduction, int reduction_prev, const int *betas,
                         const int *cols, int n_cols, float skip_dropout) {
    char n[256], p[128];
    int states[2 + IR_MAX_NODES];
    b->nmemo = 0; /* ops are shared within a cell */
    int ns = b_cell_inputs(b, cell, ci, s0, s1, c_pp, c_p, C, reduction_prev, states);
    int e = 0, K = b->so->partial > 1 ? b->so->partial : 1;
    int64_t Cm = C / K; /* channels through the mixed op */
    for (int i = 0; i < cell->n_nodes; i++) {
        int terms[IR_MAX_NODES + 2], tcols[IR_MAX_NODES + 2], nt = 0;
        for (int j = 0; j < cell->n_inputs + i; j++) {
            if (!((cell->edges[i] >> j) & 1)) continue;
            int stride = reduction && j < cell->n_inputs ? 2 : 1;
            int xs[IR_MAX_CANDS], xcols[IR_MAX_CANDS], nx = 0, xin = states[j];
            if (K > 1) {
                snprintf(n, sizeof n, "cells.%d._ops.%d.partial", ci, e);
                xin = b_slice(b, states[j], 0, (int)Cm, n);
            }
            for (int c = 0; c < (cols ? n_cols : cell->n_ops); c++) {
                int o = cols ? cols[e * n_cols + c] : c;
                snprintf(p, sizeof p, "cells.%d._ops.%d._ops.%d", ci, e, o);
                int y = b_cand(b, &cell->ops[o], xin, p, Cm, stride, 1);
                if (y == -2) continue;
                if (skip_dropout > 0 && cell->ops[o].kind == IR_CAND_SKIP && stride == 1) {
                    snprintf(n, sizeof n, "%s.dropout", p);
                    y = ir_dropout(b->g, IR_OP_DROPOUT, y, skip_dropout, n);
                }
                xs[nx] = y;
                xcols[nx++] = c;
            }
            snprintf(n, sizeof n, "cells.%d._ops.%d", ci, e);
            int m = b->so->gates && nx == 0 ? ir_zero(b->g, xin, stride, n)
                    : b->so->sigmoid || b->so->gates ? ir_wmixed(b->g, alpha, e, nx, xs, xcols, n)
                                                      : ir_mixed(b->g, alpha, e, nx, xs, xcols, n);
            if (K > 1) {
                /* PC-DARTS: the other channels bypass the op (pooled to its size), then a shuffle */
                snprintf(n, sizeof n, "cells.%d._ops.%d.bypass", ci, e);
                int rest = b_slice(b, states[j], (int)Cm, (int)(C - Cm), n);
                if (stride == 2) {
                    snprintf(n, sizeof n, "cells.%d._ops.%d.mp", ci, e);
                    rest = b_pool(b, IR_OP_MAXPOOL, rest, 2, 2, 0, n);
                }
                snprintf(n, sizeof n, "cells.%d._ops.%d.cat", ci, e);
                m = ir_nary(b->g, IR_OP_CONCAT, 2, (int[]){m, rest}, n);
                snprintf(n, sizeof n, "cells.%d._ops.%d.shuffle", ci, e);
                m = ir_channel_shuffle(b->g, m, K, n);
            }
            tcols[nt] = nt;
            terms[nt++] = m;
            e++;
        }
        snprintf(n, sizeof n, "cells.%d.node%d", ci, i);
        if (betas) states[ns++] = ir_mixed(b->g, betas[i], 0, nt, terms, tcols, n);
        else states[ns++] = nt == 1 ? terms[0] : ir_nary(b->g, IR_OP_ADD, nt, terms, n);
    }
    snprintf(n, sizeof n, "cells.%d.out", ci);
    ir_op comb = cell->combine == IR_COMBINE_CONCAT ? IR_OP_CONCAT : IR_OP_MEAN;
    int nn = cell->n_nodes;
    return nn == 1 ? states[ns - 1] : ir_nary(b->g, comb, nn, states + cell->n_inputs, n);
}

void ir_net_free(ir_net *net) {
    ir_graph_free(net->graph);
    net->graph = NULL;
}

int ir_space_build_supernet(const ir_space *sp, int batch, ir_net *net) {
    const ir_supernet_opts darts = {0};
    return ir_space_build_supernet_ex(sp, batch, &darts, net);
}

/* PC-DARTS' K must divide every cell's channel count. */
static int check_partial(const ir_space *sp, int K, char *err, size_t errlen) {
    int64_t C = sp->C;
    for (int i = 0, r = 0; i < sp->layers; i++) {
        if (r < sp->n_reduce && sp->reduce_at[r] == i) {
            C *= sp->growth;
            r++;
        }
        if (C % K) {
            snprintf(err, errlen, "partial channels: K = %d does not divide the %lld channels of cell %d", K, (long long)C, i);
            return -1;
        }
    }
    return 0;
}

int ir_space_build_supernet_ex(const ir_space *sp, int batch, const ir_supernet_opts *so, ir_net *net) {
    static const ir_supernet_opts darts = {0};
    if (!so) so = &darts;
    memset(net, 0, sizeof *net);
    net->alpha[0] = net->alpha[1] = net->aux_logits = -1;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < IR_MAX_NODES; i++) net->beta[t][i] = -1;
    if (ir_space_check(sp, net->error, sizeof net->error)) return -1;
    if (sp->kind != IR_SPACE_CNN) {
        snprintf(net->error, sizeof net->error, "space '%s': recurrent supernets are not lowered yet (issue: recurrent cell search)", sp->name);
        return -1;
    }
    if (batch < 1) {
        snprintf(net->error, sizeof net->error, "batch must be positive, not %d", batch);
        return -1;
    }
    if (so->partial > 1 && check_partial(sp, so->partial, net->error, sizeof net->error)) return -1;
    builder b = {.g = ir_graph_new(sp->name), .bn_batch_stats = 1, .affine = 0, .so = so, .share = !so->no_share};
    if (!b.g) {
        snprintf(net->error, sizeof net->error, "out of memory");
        return -1;
    }
    net->graph = b.g;
    net->images = ir_input(b.g, "images", IR_DTYPE_F32, 4, (int64_t[]){batch, sp->in_c, sp->in_h, sp->in_w});
    net->labels = ir_input(b.g, "labels", IR_DTYPE_I32, 1, (int64_t[]){batch});
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const char *anames[2] = {"alphas_normal", "alphas_reduce"};
    const int *cols[2] = {so->cols[0], so->cols[1]};
    int n_cols[2];
    for (int t = 0; t < 2; t++) {
        n_cols[t] = cols[t] ? so->n_cols[t] : cells[t]->n_ops;
        int bad = n_cols[t] < 1 || n_cols[t] > cells[t]->n_ops;
        for (int e = 0; cols[t] && !bad && e < ir_cell_num_edges(cells[t]) * n_cols[t]; e++)
            bad = cols[t][e] < 0 || cols[t][e] >= cells[t]->n_ops;
        if (bad) {
            snprintf(net->error, sizeof net->error, "%s cell: the alpha columns name no candidate ops of the cell",
                     t ? "reduction" : "normal");
            ir_graph_free(b.g);
            net->graph = NULL;
            return -1;
        }
        net->alpha[t] = ir_param(b.g, anames[t], IR_ROLE_ARCH, 2, (int64_t[]){ir_cell_num_edges(cells[t]), n_cols[t]},
                                 ir_init_normal(1e-3f));
        b.weights[t] = net->alpha[t];
        if (so->sigmoid) b.weights[t] = ir_unary(b.g, IR_OP_SIGMOID, net->alpha[t], t ? "alphas_reduce.sigmoid" : "alphas_normal.sigmoid");
        for (int i = 0; so->edge_norm && i < cells[t]->n_nodes; i++) {
            char bn[64];
            snprintf(bn, sizeof bn, "%s.%d", t ? "betas_reduce" : "betas_normal", i);
            int64_t ne = __builtin_popcount(cells[t]->edges[i]);
            net->beta[t][i] = ir_param(b.g, bn, IR_ROLE_ARCH, 2, (int64_t[]){1, ne}, ir_init_normal(1e-3f));
        }
    }

    int64_t c_stem = (int64_t)sp->stem_mult * sp->C;
    int x = b_conv(&b, net->images, "stem.0", sp->in_c, c_stem, 3, 3, 1, 1, 1, 1, 1, 1);
    x = b_bn(&b, x, "stem.1", c_stem, 1);
    int64_t c_pp = c_stem, c_p = c_stem, C = sp->C;
    int s0 = x, s1 = x, reduction_prev = 0, r = 0;
    for (int i = 0; i < sp->layers; i++) {
        int reduction = r < sp->n_reduce && sp->reduce_at[r] == i;
        if (reduction) {
            C *= sp->growth;
            r++;
        }
        const ir_cell *cell = reduction ? &sp->reduce : &sp->normal;
        int out = b_search_cell(&b, cell, i, b.weights[reduction], s0, s1, c_pp, c_p, C, reduction, reduction_prev,
                                so->edge_norm ? net->beta[reduction] : NULL, cols[reduction], n_cols[reduction],
                                so->skip_dropout);
        int64_t mult = cell->combine == IR_COMBINE_CONCAT ? cell->n_nodes : 1;
        c_pp = c_p;
        c_p = mult * C;
        s0 = s1;
        s1 = out;
        reduction_prev = reduction;
    }
    int pooled = ir_unary(b.g, IR_OP_GAP, s1, "global_pooling");
    int64_t wshape[2] = {sp->classes, c_p}, bshape[1] = {sp->classes};
    int cw = ir_param(b.g, "classifier.weight", IR_ROLE_WEIGHT, 2, wshape, ir_init_kaiming_uniform(c_p));
    int cb = ir_param(b.g, "classifier.bias", IR_ROLE_WEIGHT, 1, bshape, ir_init_kaiming_uniform(c_p));
    net->logits = ir_linear(b.g, pooled, cw, cb, "classifier");
    net->loss = ir_softmax_ce(b.g, net->logits, net->labels, "loss");
    ir_node_set_flags(b.g, net->logits, IR_FLAG_OUTPUT);
    ir_node_set_flags(b.g, net->loss, IR_FLAG_OUTPUT | IR_FLAG_LOSS);
    if (ir_verify(b.g) != 0) {
        snprintf(net->error, sizeof net->error, "%s", ir_graph_error(b.g));
        ir_net_free(net);
        return -1;
    }
    return 0;
}

int ir_space_build_op(const ir_cand *op, int C, int H, int W, int stride, ir_net *net) {
    memset(net, 0, sizeof *net);
    net->alpha[0] = net->alpha[1] = net->aux_logits = net->labels = net->loss = -1;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < IR_MAX_NODES; i++) net->beta[t][i] = -1;
    if (C < 1 || H < 1 || W < 1 || (stride != 1 && stride != 2)) {
        snprintf(net->error, sizeof net->error, "op %s: shape %dx%dx%d stride %d", op->name, C, H, W, stride);
        return -1;
    }
    builder b = {.g = ir_graph_new(op->name), .bn_batch_stats = 0, .affine = 1};
    if (!b.g) {
        snprintf(net->error, sizeof net->error, "out of memory");
        return -1;
    }
    net->graph = b.g;
    net->images = ir_input(b.g, "images", IR_DTYPE_F32, 4, (int64_t[]){1, C, H, W});
    int y = b_cand(&b, op, net->images, "op", C, stride, 0);
    if (y == -2 || y == net->images) {
        snprintf(net->error, sizeof net->error, "op %s at stride %d computes nothing", op->name, stride);
        ir_net_free(net);
        return -1;
    }
    net->logits = y;
    if (y >= 0) ir_node_set_flags(b.g, y, IR_FLAG_OUTPUT);
    if (y < 0 || ir_verify(b.g) != 0) {
        snprintf(net->error, sizeof net->error, "%s", ir_graph_error(b.g));
        ir_net_free(net);
        return -1;
    }
    return 0;
}

/* ---- genotypes and the derived (evaluation) network ---------------------------------------- */

/* The published DARTS_V2 (second-order) CNN cells, REFERENCE.md, as indices into the
 * default DARTS op list (none 0, max_pool_3x3 1, avg_pool_3x3 2, skip_connect 3,
 * sep_conv_3x3 4, sep_conv_5x5 5, dil_conv_3x3 6, dil_conv_5x5 7). */
void ir_genotype_darts_v2(ir_genotype *g) {
    enum { MAX = 1, SKIP = 3, SEP3 = 4, DIL3 = 6 };
    static const int normal[8][2] = {{SEP3, 0}, {SEP3, 1}, {SEP3, 0}, {SEP3, 1},
                                     {SEP3, 1}, {SKIP, 0}, {SKIP, 0}, {DIL3, 2}};
    static const int reduce[8][2] = {{MAX, 0}, {MAX, 1}, {SKIP, 2}, {MAX, 1},
                                     {MAX, 0}, {SKIP, 2}, {SKIP, 2}, {MAX, 1}};
    memset(g, 0, sizeof *g);
    ir_geno_cell *cells[2] = {&g->normal, &g->reduce};
    const int (*tab[2])[2] = {normal, reduce};
    for (int t = 0; t < 2; t++) {
        cells[t]->n_nodes = 4;
        for (int i = 0; i < 4; i++) {
            cells[t]->n_edges[i] = 2;
            for (int k = 0; k < 2; k++) {
                cells[t]->e[i][k].op = tab[t][2 * i + k][0];
                cells[t]->e[i][k].src = tab[t][2 * i + k][1];
            }
        }
    }
}

static int check_geno_cell(const ir_cell *c, const ir_geno_cell *gc, const char *what, char *err, size_t errlen) {
    if (gc->n_nodes != c->n_nodes)
        return fail(err, errlen, "genotype %s cell: has %d node%s, the space's %s cell has %d", what, gc->n_nodes,
                    gc->n_nodes == 1 ? "" : "s", what, c->n_nodes);
    for (int i = 0; i < gc->n_nodes; i++) {
        int ne = gc->n_edges[i];
        if (ne < 1 || ne > IR_MAX_KEEP)
            return fail(err, errlen, "genotype %s cell, node %d: needs between 1 and %d incoming edges, has %d", what, i,
                        IR_MAX_KEEP, ne);
        for (int k = 0; k < ne; k++) {
            const ir_geno_edge *e = &gc->e[i][k];
            if (e->op < 0 || e->op >= c->n_ops)
                return fail(err, errlen, "genotype %s cell, node %d, edge %d: op index %d is outside 0..%d", what, i, k,
                            e->op, c->n_ops - 1);
            if (c->ops[e->op].kind == IR_CAND_NONE)
                return fail(err, errlen, "genotype %s cell, node %d, edge %d: op %d ('%s') is the zero op; a genotype "
                            "never contains it", what, i, k, e->op, c->ops[e->op].name);
            if (e->src < 0 || e->src >= c->n_inputs + i)
                return fail(err, errlen, "genotype %s cell, node %d, edge %d: source state %d does not precede the node "
                            "(valid: 0..%d; states are the %d cell input%s, then the intermediate nodes)", what, i, k,
                            e->src, c->n_inputs + i - 1, c->n_inputs, c->n_inputs == 1 ? "" : "s");
            if (!((c->edges[i] >> e->src) & 1))
                return fail(err, errlen, "genotype %s cell, node %d, edge %d: the space has no edge from state %d to "
                            "this node", what, i, k, e->src);
        }
    }
    return 0;
}

int ir_genotype_check(const ir_space *sp, const ir_genotype *gt, char *err, size_t errlen) {
    if (check_geno_cell(&sp->normal, &gt->normal, "normal", err, errlen)) return -1;
    /* a space without reduction cells never instantiates the reduction genotype */
    if (sp->kind == IR_SPACE_CNN && sp->n_reduce == 0) return 0;
    return check_geno_cell(&sp->reduce, &gt->reduce, "reduction", err, errlen);
}

/* Reduction positions at the evaluation depth L. Rule:
 *  - if the space's reductions are evenly spaced as in DARTS (reduce_at[r] ==
 *    floor((r+1) * layers / (n_reduce+1)), e.g. cells 2 and 5 of 8), the evaluation network
 *    places them the same way at its own depth, floor((r+1) * L / (n_reduce+1)): cells
 *    floor(L/3), floor(2L/3) for two reductions, exactly as the reference NetworkCIFAR
 *    (cells 6 and 13 of 20);
 *  - otherwise each position scales proportionally, floor(reduce_at[r] * L / layers);
 *  - either way a position that would not exceed its predecessor moves to predecessor + 1,
 *    and a position past the last cell is an error. */
int ir_space_eval_reductions(const ir_space *sp, int L, int *pos, char *err, size_t errlen) {
    int even = 1;
    for (int r = 0; r < sp->n_reduce; r++)
        if (sp->reduce_at[r] != (int)((int64_t)(r + 1) * sp->layers / (sp->n_reduce + 1))) even = 0;
    for (int r = 0; r < sp->n_reduce; r++) {
        pos[r] = even ? (int)((int64_t)(r + 1) * L / (sp->n_reduce + 1)) : (int)((int64_t)sp->reduce_at[r] * L / sp->layers);
        if (r && pos[r] <= pos[r - 1]) pos[r] = pos[r - 1] + 1;
        if (pos[r] >= L)
            return fail(err, errlen, "evaluation network of %d cells is too shallow for %d reduction cells", L,
                        sp->n_reduce);
    }
    return 0;
}

/* One derived cell: preprocessing, the genotype's ops (drop path on every op output that
 * is not an identity), node sums, combine. Edge j (genotype order) is cells.{ci}._ops.{j}. */
static int b_eval_cell(builder *b, const ir_cell *cell, const ir_geno_cell *gc, int ci, int s0, int s1, int64_t c_pp,
                       int64_t c_p, int64_t C, int reduction, int reduction_prev, int drop_path) {
    char n[256], p[128];
    int states[2 + IR_MAX_NODES];
    int ns = b_cell_inputs(b, cell, ci, s0, s1, c_pp, c_p, C, reduction_prev, states);
    int j = 0;
    for (int i = 0; i < gc->n_nodes; i++) {
        int terms[IR_MAX_KEEP], nt = 0;
        for (int k = 0; k < gc->n_edges[i]; k++, j++) {
            const ir_geno_edge *e = &gc->e[i][k];
            int stride = reduction && e->src < cell->n_inputs ? 2 : 1;
            snprintf(p, sizeof p, "cells.%d._ops.%d", ci, j);
            int x = states[e->src];
            int y = b_cand(b, &cell->ops[e->op], x, p, C, stride, 0);
            if (y < 0) {
                if (y == -2) ir_graph_set_error(b->g, "%s: the zero op cannot be in a derived cell", p);
                return -1;
            }
            if (drop_path && y != x) { /* y == x: identity skip, which the reference never drops */
                snprintf(n, sizeof n, "%s.drop_path", p);
                y = ir_dropout(b->g, IR_OP_DROP_PATH, y, 0.f, n);
            }
            terms[nt++] = y;
        }
        snprintf(n, sizeof n, "cells.%d.node%d", ci, i);
        states[ns++] = nt == 1 ? terms[0] : ir_nary(b->g, IR_OP_ADD, nt, terms, n);
    }
    snprintf(n, sizeof n, "cells.%d.out", ci);
    ir_op comb = cell->combine == IR_COMBINE_CONCAT ? IR_OP_CONCAT : IR_OP_MEAN;
    int nn = gc->n_nodes;
    return nn == 1 ? states[ns - 1] : ir_nary(b->g, comb, nn, states + cell->n_inputs, n);
}

/* Auxiliary head of the reference (AuxiliaryHeadCIFAR), on the output x (c channels, h x w)
 * of the second reduction cell: features = Sequential(ReLU, AvgPool(5, 3, 0), Conv 1x1 -> 128,
 * BN, ReLU, Conv 2x2 -> 768, BN, ReLU), classifier = Linear(768, classes).
 * Deviations for input sizes other than CIFAR's 32x32 (8x8 here, pooled to 2x2, conv to
 * 1x1): where the pooled map is smaller than 2 (e.g. 7x7 on 28x28 inputs pools to 1x1) the
 * second conv uses kernel min(2, pooled size), so that it still applies; where the conv
 * leaves more than 1x1 (larger inputs), the map is averaged to 1x1 before the classifier
 * (the reference's Linear(768) would not accept it). On 1x1 maps that average is the
 * reference's flatten. */
static int b_aux_head(builder *b, int x, int64_t c, int h, int w, int classes) {
    int y = b_relu(b, x, "auxiliary_head.features.0");
    y = ir_pool(b->g, IR_OP_AVGPOOL, y, 5, 3, 0, "auxiliary_head.features.1");
    int ph = (h - 5) / 3 + 1, pw = (w - 5) / 3 + 1;
    y = b_conv(b, y, "auxiliary_head.features.2", c, 128, 1, 1, 1, 1, 0, 0, 1, 1);
    y = b_bn(b, y, "auxiliary_head.features.3", 128, 1);
    y = b_relu(b, y, "auxiliary_head.features.4");
    int kh = ph < 2 ? ph : 2, kw = pw < 2 ? pw : 2;
    y = b_conv(b, y, "auxiliary_head.features.5", 128, 768, kh, kw, 1, 1, 0, 0, 1, 1);
    y = b_bn(b, y, "auxiliary_head.features.6", 768, 1);
    y = b_relu(b, y, "auxiliary_head.features.7");
    y = ir_unary(b->g, IR_OP_GAP, y, "auxiliary_head.flatten");
    int64_t wshape[2] = {classes, 768}, bshape[1] = {classes};
    int cw = ir_param(b->g, "auxiliary_head.classifier.weight", IR_ROLE_WEIGHT, 2, wshape, ir_init_kaiming_uniform(768));
    int cb = ir_param(b->g, "auxiliary_head.classifier.bias", IR_ROLE_WEIGHT, 1, bshape, ir_init_kaiming_uniform(768));
    return ir_linear(b->g, y, cw, cb, "auxiliary_head.classifier");
}

int ir_space_build_eval(const ir_space *sp, const ir_genotype *gt, const ir_eval_opts *o, ir_net *net) {
    memset(net, 0, sizeof *net);
    net->alpha[0] = net->alpha[1] = net->aux_logits = -1;
    if (ir_space_check(sp, net->error, sizeof net->error)) return -1;
    if (sp->kind != IR_SPACE_CNN) {
        snprintf(net->error, sizeof net->error, "space '%s': recurrent evaluation networks are not lowered here", sp->name);
        return -1;
    }
    if (ir_genotype_check(sp, gt, net->error, sizeof net->error)) return -1;
    if (o->batch < 1) {
        snprintf(net->error, sizeof net->error, "batch must be positive, not %d", o->batch);
        return -1;
    }
    /* 0 in the options: the space's evaluation size (train_C, train_layers) */
    ir_space e = *sp;
    if (sp->train_in_h > 0) e.in_h = sp->train_in_h; /* compound scaling's resolution */
    if (sp->train_in_w > 0) e.in_w = sp->train_in_w;
    e.C = o->C > 0 ? o->C : sp->train_C;
    e.layers = o->layers > 0 ? o->layers : sp->train_layers;
    if (e.layers < 1 || e.C < 1) {
        snprintf(net->error, sizeof net->error, "evaluation network needs positive C and layers (have %d, %d)", e.C, e.layers);
        return -1;
    }
    if (ir_space_eval_reductions(sp, e.layers, e.reduce_at, net->error, sizeof net->error)) return -1;
    /* channel and spatial arithmetic at the evaluation size */
    if (ir_space_check(&e, net->error, sizeof net->error)) return -1;
    int aux_at = -1;
    if (o->aux) {
        /* after the second reduction cell as the reference (i == 2*layers//3); the last one
         * when the space has a single reduction */
        if (e.n_reduce < 1) {
            snprintf(net->error, sizeof net->error, "auxiliary head: the space has no reduction cell to attach it after");
            return -1;
        }
        aux_at = e.reduce_at[e.n_reduce >= 2 ? 1 : 0];
    }

    builder b = {.g = ir_graph_new(sp->name), .bn_batch_stats = 0, .affine = 1};
    if (!b.g) {
        snprintf(net->error, sizeof net->error, "out of memory");
        return -1;
    }
    net->graph = b.g;
    net->images = ir_input(b.g, "images", IR_DTYPE_F32, 4, (int64_t[]){o->batch, e.in_c, e.in_h, e.in_w});
    net->labels = ir_input(b.g, "labels", IR_DTYPE_I32, 1, (int64_t[]){o->batch});

    int64_t c_stem = (int64_t)e.stem_mult * e.C;
    int x = b_conv(&b, net->images, "stem.0", e.in_c, c_stem, 3, 3, 1, 1, 1, 1, 1, 1);
    x = b_bn(&b, x, "stem.1", c_stem, 1);
    int64_t c_pp = c_stem, c_p = c_stem, C = e.C;
    int s0 = x, s1 = x, reduction_prev = 0, r = 0, h = e.in_h, w = e.in_w;
    for (int i = 0; i < e.layers; i++) {
        int reduction = r < e.n_reduce && e.reduce_at[r] == i;
        if (reduction) {
            C *= e.growth;
            r++;
            h /= 2;
            w /= 2;
        }
        const ir_cell *cell = reduction ? &e.reduce : &e.normal;
        const ir_geno_cell *gc = reduction ? &gt->reduce : &gt->normal;
        int out = b_eval_cell(&b, cell, gc, i, s0, s1, c_pp, c_p, C, reduction, reduction_prev, o->drop_path);
        int64_t mult = cell->combine == IR_COMBINE_CONCAT ? gc->n_nodes : 1;
        c_pp = c_p;
        c_p = mult * C;
        s0 = s1;
        s1 = out;
        reduction_prev = reduction;
        if (i == aux_at) {
            if (h < 5 || w < 5) {
                ir_graph_set_error(b.g, "auxiliary head after cell %d: needs a feature map of at least 5x5 (its 5x5 "
                                   "average pool), has %dx%d", i, h, w);
                break;
            }
            net->aux_logits = b_aux_head(&b, s1, c_p, h, w, e.classes);
        }
    }
    int pooled = ir_unary(b.g, IR_OP_GAP, s1, "global_pooling");
    int64_t wshape[2] = {e.classes, c_p}, bshape[1] = {e.classes};
    int cw = ir_param(b.g, "classifier.weight", IR_ROLE_WEIGHT, 2, wshape, ir_init_kaiming_uniform(c_p));
    int cb = ir_param(b.g, "classifier.bias", IR_ROLE_WEIGHT, 1, bshape, ir_init_kaiming_uniform(c_p));
    net->logits = ir_linear(b.g, pooled, cw, cb, "classifier");
    if (o->aux) {
        /* main CE first: the runtime reports the top-1 count of the loss's first CE input */
        int main_ce = ir_softmax_ce(b.g, net->logits, net->labels, "loss.main");
        int aux_ce = ir_softmax_ce(b.g, net->aux_logits, net->labels, "loss.aux");
        int aux_w = ir_scale(b.g, aux_ce, o->aux_weight, "loss.aux_weighted");
        net->loss = ir_nary(b.g, IR_OP_ADD, 2, (int[]){main_ce, aux_w}, "loss");
        ir_node_set_flags(b.g, net->aux_logits, IR_FLAG_OUTPUT);
    } else {
        net->loss = ir_softmax_ce(b.g, net->logits, net->labels, "loss");
    }
    ir_node_set_flags(b.g, net->logits, IR_FLAG_OUTPUT);
    ir_node_set_flags(b.g, net->loss, IR_FLAG_OUTPUT | IR_FLAG_LOSS);
    if (ir_graph_error(b.g) || ir_verify(b.g) != 0) {
        snprintf(net->error, sizeof net->error, "%s", ir_graph_error(b.g));
        ir_net_free(net);
        return -1;
    }
    return 0;
}
