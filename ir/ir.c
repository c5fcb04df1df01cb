/* ir.c — graph storage, builders with shape inference, and the op tables.
 * The verifier lives in verify.c and the dumps in dump.c; all three share
 * ir_infer_shape() so a builder and the verifier can never disagree. */
#include "ir.h"
#include "ir_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define IR_OP(e, n, a) n,
#include "ops.def"
#undef IR_OP
};
static const int op_arity[] = {
#define IR_OP(e, n, a) a,
#include "ops.def"
#undef IR_OP
};
_Static_assert(sizeof op_names / sizeof op_names[0] == IR_OP_COUNT, "op name table out of step with ops.def");
_Static_assert(sizeof op_arity / sizeof op_arity[0] == IR_OP_COUNT, "op arity table out of step with ops.def");

static const char *const role_names[] = {"activation", "input", "weight", "arch", "buffer"};
_Static_assert(sizeof role_names / sizeof role_names[0] == IR_ROLE_COUNT, "role names out of step");

const char *ir_op_name(ir_op op) { return (unsigned)op < IR_OP_COUNT ? op_names[op] : "?"; }
int ir_op_arity(ir_op op) { return (unsigned)op < IR_OP_COUNT ? op_arity[op] : 0; }
const char *ir_role_name(ir_role r) { return (unsigned)r < IR_ROLE_COUNT ? role_names[r] : "?"; }

ir_init ir_init_kaiming_uniform(int64_t fan_in) {
    return (ir_init){IR_INIT_UNIFORM, 1.0f / sqrtf((float)(fan_in > 0 ? fan_in : 1))};
}

int64_t ir_node_numel(const ir_node *n) {
    int64_t k = 1;
    for (int i = 0; i < n->ndim; i++) k *= n->shape[i];
    return k;
}

/* ---- storage --------------------------------------------------------------------- */

static void *arena_alloc(ir_graph *g, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (!g->chunk || g->chunk_used + bytes > g->chunk_cap) {
        size_t cap = bytes > 65536 ? bytes : 65536;
        ir_chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = g->chunk;
        g->chunk = c;
        g->chunk_used = 0;
        g->chunk_cap = cap;
    }
    void *p = g->chunk->data + g->chunk_used;
    g->chunk_used += bytes;
    return p;
}

static const char *arena_strdup(ir_graph *g, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(g, n);
    if (p) memcpy(p, s, n);
    return p;
}

ir_graph *ir_graph_new(const char *name) {
    ir_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = arena_strdup(g, name);
    return g;
}

void ir_graph_free(ir_graph *g) {
    if (!g) return;
    for (ir_chunk *c = g->chunk; c;) {
        ir_chunk *n = c->next;
        free(c);
        c = n;
    }
    free(g->nodes);
    free(g);
}

const char *ir_graph_name(const ir_graph *g) { return g->name; }
int ir_graph_num_nodes(const ir_graph *g) { return g->n_nodes; }
void ir_graph_reuse(ir_graph *g) { g->reused++; }
const ir_node *ir_graph_node(const ir_graph *g, int id) {
    return (id >= 0 && id < g->n_nodes) ? &g->nodes[id] : NULL;
}
const char *ir_graph_error(const ir_graph *g) { return g->error[0] ? g->error : NULL; }

void ir_graph_set_error(ir_graph *g, const char *fmt, ...) {
    if (g->error[0]) return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->error, sizeof g->error, fmt, ap);
    va_end(ap);
}

void ir_graph_set_loc(ir_graph *g, ir_loc loc) { g->loc = loc; }

int ir_graph_find(const ir_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

void ir_node_set_flags(ir_graph *g, int id, unsigned flags) {
    if (id >= 0 && id < g->n_nodes) g->nodes[id].flags |= flags;
}

void ir_node_set_fattr(ir_graph *g, int id, int idx, float v) {
    if (id >= 0 && id < g->n_nodes && idx >= 0 && idx < IR_MAX_FATTR) g->nodes[id].fattr[idx] = v;
}

/* ---- shape inference ---------------------------------------------------------------- */

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int same_shape(const ir_node *a, const ir_node *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int need_f32_4d(const ir_node *x, const char *what, char *err, size_t errlen) {
    if (x->ndim != 4 || x->dtype != IR_DTYPE_F32)
        FAIL("%s: input '%s' must be a 4-d float tensor (N,C,H,W), has %d dims", what, x->name, x->ndim);
    return 0;
}

int ir_infer_shape(const ir_graph *g, ir_op op, int n_in, const int *in, const int64_t *ia, const float *fa,
                   int *ndim, int64_t *shape, char *err, size_t errlen) {
    const char *opn = ir_op_name(op);
    int ar = ir_op_arity(op);
    if (ar >= 0 && n_in != ar) FAIL("%s: expects %d inputs, got %d", opn, ar, n_in);
    if (ar < 0 && n_in < 1) FAIL("%s: expects at least one input", opn);
    for (int i = 0; i < n_in; i++) {
        if (in[i] == -1) continue;
        if (in[i] < 0 || in[i] >= g->n_nodes) FAIL("%s: input %d refers to node %d, which does not exist", opn, i, in[i]);
    }
    const ir_node *x = n_in > 0 && in[0] >= 0 ? &g->nodes[in[0]] : NULL;
    for (int i = 0; i < n_in; i++) {
        int optional = (op == IR_OP_BATCHNORM && (i == 1 || i == 2)) || (op == IR_OP_LINEAR && i == 2);
        if (in[i] == -1 && !optional) FAIL("%s: input %d is required", opn, i);
    }
    switch (op) {
    case IR_OP_INPUT:
    case IR_OP_PARAM:
        FAIL("%s: has no inputs to infer from", opn);
    case IR_OP_CONV2D: {
        const ir_node *w = &g->nodes[in[1]];
        if (need_f32_4d(x, opn, err, errlen)) return -1;
        if (w->ndim != 4) FAIL("conv2d: weight '%s' must be 4-d (K, C/groups, R, S)", w->name);
        int64_t groups = ia[IR_A_CONV_GROUPS];
        for (int i = IR_A_CONV_STRIDE_H; i <= IR_A_CONV_GROUPS; i++) {
            int lo = (i == IR_A_CONV_PAD_H || i == IR_A_CONV_PAD_W) ? 0 : 1;
            static const char *names[] = {"stride", "stride", "padding", "padding", "dilation", "dilation", "groups"};
            if (ia[i] < lo || ia[i] > IR_MAX_GROUPS)
                FAIL("conv2d: %s %lld out of range (%d..%d)", names[i - IR_A_CONV_STRIDE_H], (long long)ia[i], lo, IR_MAX_GROUPS);
        }
        if (x->shape[1] % groups || w->shape[0] % groups)
            FAIL("conv2d: channels %lld and %lld not divisible by groups %lld", (long long)x->shape[1],
                 (long long)w->shape[0], (long long)groups);
        if (w->shape[1] * groups != x->shape[1])
            FAIL("conv2d: weight '%s' expects %lld input channels, input '%s' has %lld",
                 w->name, (long long)(w->shape[1] * groups), x->name, (long long)x->shape[1]);
        int64_t P = (x->shape[2] + 2 * ia[IR_A_CONV_PAD_H] - ia[IR_A_CONV_DIL_H] * (w->shape[2] - 1) - 1) / ia[IR_A_CONV_STRIDE_H] + 1;
        int64_t Q = (x->shape[3] + 2 * ia[IR_A_CONV_PAD_W] - ia[IR_A_CONV_DIL_W] * (w->shape[3] - 1) - 1) / ia[IR_A_CONV_STRIDE_W] + 1;
        if (P < 1 || Q < 1) FAIL("conv2d: output of '%s' would be empty (%lldx%lld)", x->name, (long long)P, (long long)Q);
        *ndim = 4;
        shape[0] = x->shape[0]; shape[1] = w->shape[0]; shape[2] = P; shape[3] = Q;
        return 0;
    }
    case IR_OP_BATCHNORM: {
        if (x->ndim != 4 && x->ndim != 2) FAIL("batchnorm: input '%s' must be (N,C,H,W) or (N,C)", x->name);
        if ((in[1] < 0) != (in[2] < 0)) FAIL("batchnorm: gamma and beta must both be present or both absent");
        for (int i = 1; i < 5; i++) {
            if (in[i] < 0) continue;
            const ir_node *p = &g->nodes[in[i]];
            if (p->ndim != 1 || p->shape[0] != x->shape[1])
                FAIL("batchnorm: parameter '%s' must have shape (%lld)", p->name, (long long)x->shape[1]);
        }
        if (!(fa[IR_F_BN_EPS] > 0)) FAIL("batchnorm: eps must be positive");
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    }
    case IR_OP_RELU: case IR_OP_TANH: case IR_OP_SIGMOID: case IR_OP_IDENTITY:
    case IR_OP_DROPOUT: case IR_OP_SCALE:
        if (x->dtype != IR_DTYPE_F32) FAIL("%s: input '%s' must be float", opn, x->name);
        if ((op == IR_OP_DROPOUT) && !(fa[IR_F_P] >= 0 && fa[IR_F_P] < 1)) FAIL("%s: p must be in [0, 1)", opn);
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    case IR_OP_DROP_PATH:
        if (x->dtype != IR_DTYPE_F32 || x->ndim < 2) FAIL("drop_path: input '%s' must be a float batch", x->name);
        if (!(fa[IR_F_P] >= 0 && fa[IR_F_P] < 1)) FAIL("drop_path: p must be in [0, 1)");
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    case IR_OP_ZERO: {
        if (need_f32_4d(x, opn, err, errlen)) return -1;
        int64_t s = ia[IR_A_ZERO_STRIDE];
        if (s < 1 || s > 64) FAIL("zero: stride %lld out of range", (long long)s);
        *ndim = 4;
        shape[0] = x->shape[0]; shape[1] = x->shape[1];
        shape[2] = (x->shape[2] + s - 1) / s; shape[3] = (x->shape[3] + s - 1) / s;
        return 0;
    }
    case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: {
        if (need_f32_4d(x, opn, err, errlen)) return -1;
        int64_t k = ia[IR_A_POOL_K], s = ia[IR_A_POOL_STRIDE], p = ia[IR_A_POOL_PAD];
        if (k < 1 || k > 64 || s < 1 || s > 64 || p < 0 || 2 * p > k)
            FAIL("%s: bad window k=%lld stride=%lld pad=%lld (pad must be at most k/2)", opn, (long long)k, (long long)s, (long long)p);
        int64_t P = (x->shape[2] + 2 * p - k) / s + 1, Q = (x->shape[3] + 2 * p - k) / s + 1;
        if (P < 1 || Q < 1) FAIL("%s: input '%s' is smaller than the window", opn, x->name);
        *ndim = 4;
        shape[0] = x->shape[0]; shape[1] = x->shape[1]; shape[2] = P; shape[3] = Q;
        return 0;
    }
    case IR_OP_ADD: case IR_OP_MEAN: case IR_OP_MUL: case IR_OP_SUB:
        for (int i = 1; i < n_in; i++)
            if (!same_shape(x, &g->nodes[in[i]]))
                FAIL("%s: inputs '%s' and '%s' differ in shape", opn, x->name, g->nodes[in[i]].name);
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    case IR_OP_WSUM: {
        if (n_in < 2) FAIL("wsum: needs weights and at least one tensor");
        if (x->ndim != 1 || x->shape[0] != n_in - 1) FAIL("wsum: weights '%s' must have shape (%d)", x->name, n_in - 1);
        const ir_node *a = &g->nodes[in[1]];
        for (int i = 2; i < n_in; i++)
            if (!same_shape(a, &g->nodes[in[i]])) FAIL("wsum: inputs '%s' and '%s' differ in shape", a->name, g->nodes[in[i]].name);
        *ndim = a->ndim;
        memcpy(shape, a->shape, sizeof a->shape);
        return 0;
    }
    case IR_OP_WMIXED:
        if (x->dtype != IR_DTYPE_F32) FAIL("wmixed: weights '%s' must be float", x->name);
        __attribute__((fallthrough)); /* the same checks and shape as MIXED */
    case IR_OP_MIXED: {
        if (n_in < 2) FAIL("mixed: needs alpha and at least one candidate");
        if (n_in - 1 > IR_MAX_MIXED_INPUTS) FAIL("mixed: at most %d candidates", IR_MAX_MIXED_INPUTS);
        if (x->ndim != 2 || x->shape[1] > IR_MAX_MIXED_COLS) FAIL("mixed: alpha '%s' must be 2-d (edges, ops <= %d)", x->name, IR_MAX_MIXED_COLS);
        if (ia[IR_A_MIXED_ROW] < 0 || ia[IR_A_MIXED_ROW] >= x->shape[0]) FAIL("mixed: row %lld out of range", (long long)ia[IR_A_MIXED_ROW]);
        for (int i = 1; i < n_in; i++) {
            int64_t c = ia[IR_A_MIXED_COL0 + i - 1];
            if (c < 0 || c >= x->shape[1]) FAIL("mixed: column %lld out of range", (long long)c);
            for (int j = 1; j < i; j++)
                if (ia[IR_A_MIXED_COL0 + j - 1] == c) FAIL("mixed: column %lld used twice", (long long)c);
        }
        const ir_node *a = &g->nodes[in[1]];
        for (int i = 2; i < n_in; i++)
            if (!same_shape(a, &g->nodes[in[i]])) FAIL("mixed: candidates '%s' and '%s' differ in shape", a->name, g->nodes[in[i]].name);
        *ndim = a->ndim;
        memcpy(shape, a->shape, sizeof a->shape);
        return 0;
    }
    case IR_OP_SOFTMAX:
        if (x->dtype != IR_DTYPE_F32 || x->ndim < 1) FAIL("softmax: input must be float");
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    case IR_OP_CONCAT: {
        int64_t c = 0;
        for (int i = 0; i < n_in; i++) {
            const ir_node *t = &g->nodes[in[i]];
            if (t->ndim != x->ndim || t->ndim < 2) FAIL("concat: inputs must have equal rank >= 2");
            for (int d = 0; d < t->ndim; d++)
                if (d != 1 && t->shape[d] != x->shape[d])
                    FAIL("concat: '%s' and '%s' differ in dimension %d", x->name, t->name, d);
            c += t->shape[1];
        }
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        shape[1] = c;
        return 0;
    }
    case IR_OP_SLICE: {
        int64_t s = ia[IR_A_SLICE_START], l = ia[IR_A_SLICE_LEN];
        if (x->ndim < 2 || s < 0 || l < 1 || s + l > x->shape[1]) FAIL("slice: [%lld, %lld) outside '%s'", (long long)s, (long long)(s + l), x->name);
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        shape[1] = l;
        return 0;
    }
    case IR_OP_SHUFFLE: {
        int64_t G = ia[IR_A_SHUFFLE_GROUPS];
        if (x->dtype != IR_DTYPE_F32 || x->ndim < 2) FAIL("channel_shuffle: input '%s' must be float, (N, C, ...)", x->name);
        if (G < 1 || x->shape[1] % G) FAIL("channel_shuffle: %lld groups do not divide the %lld channels of '%s'", (long long)G, (long long)x->shape[1], x->name);
        *ndim = x->ndim;
        memcpy(shape, x->shape, sizeof x->shape);
        return 0;
    }
    case IR_OP_SHIFT:
        if (need_f32_4d(x, opn, err, errlen)) return -1;
        if (x->shape[2] < 2 || x->shape[3] < 2) FAIL("shift: input '%s' must be at least 2x2", x->name);
        *ndim = 4;
        memcpy(shape, x->shape, sizeof x->shape);
        shape[2] -= 1; shape[3] -= 1;
        return 0;
    case IR_OP_GAP:
        if (need_f32_4d(x, opn, err, errlen)) return -1;
        *ndim = 2;
        shape[0] = x->shape[0]; shape[1] = x->shape[1];
        return 0;
    case IR_OP_LINEAR: {
        const ir_node *w = &g->nodes[in[1]];
        if (x->ndim != 2) FAIL("linear: input '%s' must be 2-d (N, features)", x->name);
        if (w->ndim != 2 || w->shape[1] != x->shape[1])
            FAIL("linear: weight '%s' must be (out, %lld)", w->name, (long long)x->shape[1]);
        if (in[2] >= 0 && (g->nodes[in[2]].ndim != 1 || g->nodes[in[2]].shape[0] != w->shape[0]))
            FAIL("linear: bias must have shape (%lld)", (long long)w->shape[0]);
        *ndim = 2;
        shape[0] = x->shape[0]; shape[1] = w->shape[0];
        return 0;
    }
    case IR_OP_EMBEDDING: {
        const ir_node *t = &g->nodes[in[1]];
        if (x->dtype != IR_DTYPE_I32 || x->ndim != 1) FAIL("embedding: ids '%s' must be 1-d int32", x->name);
        if (t->ndim != 2) FAIL("embedding: table '%s' must be 2-d", t->name);
        *ndim = 2;
        shape[0] = x->shape[0]; shape[1] = t->shape[1];
        return 0;
    }
    case IR_OP_SQMEAN:
        if (x->dtype != IR_DTYPE_F32) FAIL("sqmean: input '%s' must be float", x->name);
        *ndim = 1;
        shape[0] = 1;
        return 0;
    case IR_OP_SOFTMAX_CE: {
        const ir_node *l = &g->nodes[in[1]];
        if (x->ndim != 2 || x->dtype != IR_DTYPE_F32) FAIL("softmax_ce: logits '%s' must be (N, classes)", x->name);
        if (l->ndim != 1 || l->dtype != IR_DTYPE_I32 || l->shape[0] != x->shape[0])
            FAIL("softmax_ce: labels '%s' must be int32 of shape (%lld)", l->name, (long long)x->shape[0]);
        *ndim = 1;
        shape[0] = 1;
        return 0;
    }
    case IR_OP_COUNT:
        break;
    }
    FAIL("unknown op %d", (int)op);
}

/* ---- builders --------------------------------------------------------------------------- */

static int push_node(ir_graph *g, ir_node *n, const int *in, int n_in, const char *name) {
    if (g->n_nodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        ir_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) { ir_graph_set_error(g, "out of memory"); return -1; }
        g->nodes = nn;
        g->cap = cap;
    }
    int *ins = NULL;
    if (n_in > 0) {
        ins = arena_alloc(g, (size_t)n_in * sizeof *ins);
        if (!ins) { ir_graph_set_error(g, "out of memory"); return -1; }
        memcpy(ins, in, (size_t)n_in * sizeof *ins);
    }
    n->inputs = ins;
    n->n_inputs = n_in;
    n->name = arena_strdup(g, name);
    n->loc = g->loc;
    n->seq = g->n_nodes + g->reused;
    g->nodes[g->n_nodes] = *n;
    return g->n_nodes++;
}

static int add_op(ir_graph *g, ir_op op, int n_in, const int *in, const int64_t *ia, const float *fa, const char *name) {
    if (g->error[0]) return -1;
    ir_node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.role = IR_ROLE_ACTIVATION;
    n.dtype = IR_DTYPE_F32;
    if (ia) memcpy(n.iattr, ia, sizeof n.iattr);
    if (fa) memcpy(n.fattr, fa, sizeof n.fattr);
    char err[384];
    if (ir_infer_shape(g, op, n_in, in, n.iattr, n.fattr, &n.ndim, n.shape, err, sizeof err) != 0) {
        ir_graph_set_error(g, "%s: %s", name ? name : ir_op_name(op), err);
        return -1;
    }
    return push_node(g, &n, in, n_in, name ? name : ir_op_name(op));
}

static int check_shape(ir_graph *g, const char *name, int ndim, const int64_t *shape) {
    if (g->error[0]) return -1;
    if (ndim < 0 || ndim > IR_MAX_DIMS) { ir_graph_set_error(g, "%s: %d dimensions (at most %d)", name, ndim, IR_MAX_DIMS); return -1; }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1 || shape[i] > ((int64_t)1 << 31)) {
            ir_graph_set_error(g, "%s: dimension %d is %lld", name, i, (long long)shape[i]);
            return -1;
        }
    return 0;
}

int ir_input(ir_graph *g, const char *name, ir_dtype dt, int ndim, const int64_t *shape) {
    if (check_shape(g, name, ndim, shape)) return -1;
    ir_node n;
    memset(&n, 0, sizeof n);
    n.op = IR_OP_INPUT;
    n.role = IR_ROLE_INPUT;
    n.dtype = dt;
    n.ndim = ndim;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    return push_node(g, &n, NULL, 0, name);
}

int ir_param(ir_graph *g, const char *name, ir_role role, int ndim, const int64_t *shape, ir_init init) {
    if (check_shape(g, name, ndim, shape)) return -1;
    if (role != IR_ROLE_WEIGHT && role != IR_ROLE_ARCH && role != IR_ROLE_BUFFER) {
        ir_graph_set_error(g, "%s: a parameter's role must be weight, arch or buffer", name);
        return -1;
    }
    ir_node n;
    memset(&n, 0, sizeof n);
    n.op = IR_OP_PARAM;
    n.role = role;
    n.dtype = IR_DTYPE_F32;
    n.ndim = ndim;
    n.init = init;
    memcpy(n.shape, shape, (size_t)ndim * sizeof *shape);
    return push_node(g, &n, NULL, 0, name);
}

int ir_conv2d(ir_graph *g, int x, int w, int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w,
              int groups, const char *name) {
    int64_t ia[IR_MAX_IATTR] = {0};
    ia[IR_A_CONV_STRIDE_H] = stride_h; ia[IR_A_CONV_STRIDE_W] = stride_w;
    ia[IR_A_CONV_PAD_H] = pad_h; ia[IR_A_CONV_PAD_W] = pad_w;
    ia[IR_A_CONV_DIL_H] = dil_h; ia[IR_A_CONV_DIL_W] = dil_w;
    ia[IR_A_CONV_GROUPS] = groups;
    return add_op(g, IR_OP_CONV2D, 2, (int[]){x, w}, ia, NULL, name);
}

int ir_batchnorm(ir_graph *g, int x, int gamma, int beta, int running_mean, int running_var, int batch_stats_always,
                 float eps, float momentum, const char *name) {
    int64_t ia[IR_MAX_IATTR] = {0};
    float fa[IR_MAX_FATTR] = {0};
    ia[IR_A_BN_AFFINE] = gamma >= 0;
    ia[IR_A_BN_BATCH_STATS] = batch_stats_always;
    fa[IR_F_BN_EPS] = eps;
    fa[IR_F_BN_MOMENTUM] = momentum;
    return add_op(g, IR_OP_BATCHNORM, 5, (int[]){x, gamma, beta, running_mean, running_var}, ia, fa, name);
}

int ir_unary(ir_graph *g, ir_op op, int x, const char *name) {
    switch (op) {
    case IR_OP_RELU: case IR_OP_TANH: case IR_OP_SIGMOID: case IR_OP_IDENTITY:
    case IR_OP_SOFTMAX: case IR_OP_GAP: case IR_OP_SHIFT: case IR_OP_SQMEAN:
        return add_op(g, op, 1, &x, NULL, NULL, name);
    default:
        ir_graph_set_error(g, "%s: %s is not a unary op", name, ir_op_name(op));
        return -1;
    }
}

int ir_zero(ir_graph *g, int x, int stride, const char *name) {
    int64_t ia[IR_MAX_IATTR] = {0};
    ia[IR_A_ZERO_STRIDE] = stride;
    return add_op(g, IR_OP_ZERO, 1, &x, ia, NULL, name);
}

int ir_pool(ir_graph *g, ir_op op, int x, int k, int stride, int pad, const char *name) {
    if (op != IR_OP_MAXPOOL && op != IR_OP_AVGPOOL) {
        ir_graph_set_error(g, "%s: %s is not a pool", name, ir_op_name(op));
        return -1;
    }
    int64_t ia[IR_MAX_IATTR] = {0};
    ia[IR_A_POOL_K] = k; ia[IR_A_POOL_STRIDE] = stride; ia[IR_A_POOL_PAD] = pad;
    return add_op(g, op, 1, &x, ia, NULL, name);
}

int ir_nary(ir_graph *g, ir_op op, int n, const int *xs, const char *name) {
    if (op != IR_OP_ADD && op != IR_OP_MEAN && op != IR_OP_CONCAT) {
        ir_graph_set_error(g, "%s: %s is not n-ary", name, ir_op_name(op));
        return -1;
    }
    return add_op(g, op, n, xs, NULL, NULL, name);
}

int ir_binary(ir_graph *g, ir_op op, int a, int b, const char *name) {
    if (op != IR_OP_MUL && op != IR_OP_SUB) {
        ir_graph_set_error(g, "%s: %s is not binary", name, ir_op_name(op));
        return -1;
    }
    return add_op(g, op, 2, (int[]){a, b}, NULL, NULL, name);
}

int ir_scale(ir_graph *g, int x, float s, const char *name) {
    float fa[IR_MAX_FATTR] = {0};
    fa[IR_F_P] = s;
    return add_op(g, IR_OP_SCALE, 1, &x, NULL, fa, name);
}

int ir_wsum(ir_graph *g, int w, int n, const int *xs, const char *name) {
    int in[IR_MAX_IATTR + 1];
    if (n < 1 || n > IR_MAX_IATTR) { ir_graph_set_error(g, "%s: wsum of %d tensors", name, n); return -1; }
    in[0] = w;
    memcpy(in + 1, xs, (size_t)n * sizeof *xs);
    return add_op(g, IR_OP_WSUM, n + 1, in, NULL, NULL, name);
}

int ir_mixed(ir_graph *g, int alpha, int row, int n, const int *xs, const int *cols, const char *name) {
    if (n < 1 || n > IR_MAX_MIXED_INPUTS) { ir_graph_set_error(g, "%s: mixed op of %d candidates (1..%d)", name, n, IR_MAX_MIXED_INPUTS); return -1; }
    int in[IR_MAX_MIXED_INPUTS + 1];
    int64_t ia[IR_MAX_IATTR] = {0};
    in[0] = alpha;
    ia[IR_A_MIXED_ROW] = row;
    for (int i = 0; i < n; i++) { in[i + 1] = xs[i]; ia[IR_A_MIXED_COL0 + i] = cols[i]; }
    return add_op(g, IR_OP_MIXED, n + 1, in, ia, NULL, name);
}

int ir_wmixed(ir_graph *g, int w, int row, int n, const int *xs, const int *cols, const char *name) {
    int id = ir_mixed(g, w, row, n, xs, cols, name);
    if (id >= 0) g->nodes[id].op = IR_OP_WMIXED; /* the same inputs, attributes and shape */
    return id;
}

int ir_channel_shuffle(ir_graph *g, int x, int groups, const char *name) {
    int64_t ia[IR_MAX_IATTR] = {0};
    ia[IR_A_SHUFFLE_GROUPS] = groups;
    return add_op(g, IR_OP_SHUFFLE, 1, &x, ia, NULL, name);
}

int ir_slice(ir_graph *g, int x, int start, int len, const char *name) {
    int64_t ia[IR_MAX_IATTR] = {0};
    ia[IR_A_SLICE_START] = start; ia[IR_A_SLICE_LEN] = len;
    return add_op(g, IR_OP_SLICE, 1, &x, ia, NULL, name);
}

int ir_linear(ir_graph *g, int x, int w, int b, const char *name) {
    return add_op(g, IR_OP_LINEAR, 3, (int[]){x, w, b}, NULL, NULL, name);
}

int ir_embedding(ir_graph *g, int ids, int table, const char *name) {
    return add_op(g, IR_OP_EMBEDDING, 2, (int[]){ids, table}, NULL, NULL, name);
}

int ir_softmax_ce(ir_graph *g, int logits, int labels, const char *name) {
    return add_op(g, IR_OP_SOFTMAX_CE, 2, (int[]){logits, labels}, NULL, NULL, name);
}

int ir_dropout(ir_graph *g, ir_op op, int x, float p, const char *name) {
    if (op != IR_OP_DROPOUT && op != IR_OP_DROP_PATH) {
        ir_graph_set_error(g, "%s: %s is not a dropout", name, ir_op_name(op));
        return -1;
    }
    float fa[IR_MAX_FATTR] = {0};
    fa[IR_F_P] = p;
    return add_op(g, op, 1, &x, NULL, fa, name);
}

/* ---- statistics ------------------------------------------------------------------------- */

void ir_graph_stats(const ir_graph *g, ir_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_nodes = g->n_nodes;
    int64_t batch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->op == IR_OP_INPUT && n->ndim >= 1 && !batch) batch = n->shape[0];
        if (n->op == IR_OP_PARAM) {
            int64_t k = ir_node_numel(n);
            if (n->role == IR_ROLE_WEIGHT) st->weight_params += k;
            else if (n->role == IR_ROLE_ARCH) st->arch_params += k;
            else st->buffer_elems += k;
        } else if (n->op == IR_OP_CONV2D) {
            const ir_node *w = &g->nodes[n->inputs[1]];
            st->macs_per_sample += ir_node_numel(n) / n->shape[0] * w->shape[1] * w->shape[2] * w->shape[3];
        } else if (n->op == IR_OP_LINEAR) {
            st->macs_per_sample += g->nodes[n->inputs[1]].shape[0] * g->nodes[n->inputs[1]].shape[1];
        }
    }
    (void)batch;
}
