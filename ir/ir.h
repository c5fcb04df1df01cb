/* ir.h — dartsc's graph IR.
 *
 * A graph is a list of nodes in topological order; every node produces one tensor
 * (ggml style), so "node" and "tensor" are the same thing and are named by an int id.
 * Parameters (weights, architecture parameters, buffers such as BN running statistics)
 * are PARAM nodes whose role says which parameter group they belong to.
 *
 * The IR knows nothing of the runtime, kernels or search. The graph type is opaque;
 * nodes are read through ir_graph_node() as const structs.
 *
 * Usage:
 *   ir_graph *g = ir_graph_new("tiny");
 *   int x = ir_input(g, "x", IR_DTYPE_F32, 4, (int64_t[]){8, 3, 32, 32});
 *   int w = ir_param(g, "conv.weight", IR_ROLE_WEIGHT, 4, (int64_t[]){16, 3, 3, 3},
 *                    ir_init_kaiming_uniform(27));
 *   int y = ir_conv2d(g, x, w, 1, 1, 1, 1, 1, 1, 1, "conv");
 *   if (y < 0) fprintf(stderr, "%s\n", ir_graph_error(g));
 *   ir_graph_free(g);
 *
 * Builders return the new node id, or -1 after recording the first error in the graph
 * (ir_graph_error); every later builder call on a failed graph also returns -1, so
 * callers may check once at the end.
 */
#ifndef DARTSC_IR_H
#define DARTSC_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IR_MAX_DIMS 4
#define IR_MAX_IATTR 24
#define IR_MAX_FATTR 4
#define IR_MAX_GROUPS 4096 /* conv2d: the largest stride, padding, dilation or group count (so depthwise channels) */

typedef enum ir_op {
#define IR_OP(e, n, a) IR_OP_##e,
#include "ops.def"
#undef IR_OP
    IR_OP_COUNT
} ir_op;

typedef enum ir_role {
    IR_ROLE_ACTIVATION, /* computed by an op */
    IR_ROLE_INPUT,      /* fed by the caller (images, labels, token ids) */
    IR_ROLE_WEIGHT,     /* trainable network weight: parameter group "w" */
    IR_ROLE_ARCH,       /* architecture parameter: parameter group "alpha" */
    IR_ROLE_BUFFER,     /* state that is not trained by gradients (BN running stats) */
    IR_ROLE_COUNT
} ir_role;

typedef enum ir_dtype { IR_DTYPE_F32, IR_DTYPE_I32, IR_DTYPE_COUNT } ir_dtype;

/* How a parameter is initialised; the runtime materialises it from a seed. */
typedef enum ir_init_kind {
    IR_INIT_ZEROS,
    IR_INIT_ONES,
    IR_INIT_UNIFORM, /* U(-a, a), a = value */
    IR_INIT_NORMAL,  /* N(0, value^2) */
    IR_INIT_COUNT
} ir_init_kind;

typedef struct ir_init {
    ir_init_kind kind;
    float value;
} ir_init;

/* PyTorch's default for Conv2d/Linear weights and biases: U(-1/sqrt(fan_in), +). */
ir_init ir_init_kaiming_uniform(int64_t fan_in);
static inline ir_init ir_init_zeros(void) { return (ir_init){IR_INIT_ZEROS, 0.f}; }
static inline ir_init ir_init_ones(void) { return (ir_init){IR_INIT_ONES, 0.f}; }
static inline ir_init ir_init_normal(float std) { return (ir_init){IR_INIT_NORMAL, std}; }
static inline ir_init ir_init_uniform(float a) { return (ir_init){IR_INIT_UNIFORM, a}; }

/* Where a node came from: a DSL source position, or file 0 for code-built graphs. */
typedef struct ir_loc {
    const char *file;
    int line, col;
} ir_loc;

enum {
    IR_FLAG_OUTPUT = 1u << 0, /* kept after the forward pass (loss, logits) */
    IR_FLAG_LOSS = 1u << 1,   /* the scalar that backward differentiates */
};

/* Attribute indices (iattr unless noted). */
enum {
    /* CONV2D */
    IR_A_CONV_STRIDE_H = 0, IR_A_CONV_STRIDE_W, IR_A_CONV_PAD_H, IR_A_CONV_PAD_W,
    IR_A_CONV_DIL_H, IR_A_CONV_DIL_W, IR_A_CONV_GROUPS,
    /* BATCHNORM; fattr[IR_F_BN_EPS], fattr[IR_F_BN_MOMENTUM] */
    IR_A_BN_AFFINE = 0,
    IR_A_BN_BATCH_STATS, /* 1: always use batch statistics (search), 0: follow training flag */
    /* MAXPOOL, AVGPOOL */
    IR_A_POOL_K = 0, IR_A_POOL_STRIDE, IR_A_POOL_PAD,
    /* ZERO */
    IR_A_ZERO_STRIDE = 0,
    /* MIXED: row of alpha, then the alpha column of each candidate input */
    IR_A_MIXED_ROW = 0, IR_A_MIXED_COL0,
    /* SLICE */
    IR_A_SLICE_START = 0, IR_A_SLICE_LEN,
    /* WMIXED: IR_A_MIXED_ROW, IR_A_MIXED_COL0 as MIXED; SHUFFLE: */
    IR_A_SHUFFLE_GROUPS = 0,
};
enum { IR_F_BN_EPS = 0, IR_F_BN_MOMENTUM = 1, IR_F_P = 0 /* SCALE factor, dropout p */ };

#define IR_MAX_MIXED_INPUTS (IR_MAX_IATTR - IR_A_MIXED_COL0)
#define IR_MAX_MIXED_COLS 64 /* alpha columns (candidate ops) */

typedef struct ir_node {
    ir_op op;
    ir_role role;
    ir_dtype dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    int n_inputs;
    const int *inputs;            /* -1 marks an absent optional input */
    int64_t iattr[IR_MAX_IATTR];
    float fattr[IR_MAX_FATTR];
    ir_init init;                 /* PARAM only */
    unsigned flags;
    const char *name;
    ir_loc loc;
    int seq; /* its id had every node reused by ir_graph_reuse been built anew (the id itself
                where none was): what a parameter's initial values are drawn from, so they do
                not change when a builder shares ops (ir/space.c) */
} ir_node;

typedef struct ir_graph ir_graph;

ir_graph *ir_graph_new(const char *name);
void ir_graph_free(ir_graph *g);
const char *ir_graph_name(const ir_graph *g);
int ir_graph_num_nodes(const ir_graph *g);
const ir_node *ir_graph_node(const ir_graph *g, int id);
/* First error recorded by a builder or the verifier, or NULL. */
const char *ir_graph_error(const ir_graph *g);
void ir_graph_set_error(ir_graph *g, const char *fmt, ...);
/* Location stamped on nodes created from now on. */
void ir_graph_set_loc(ir_graph *g, ir_loc loc);
/* Find a node by exact name; -1 if none. */
int ir_graph_find(const ir_graph *g, const char *name);
void ir_node_set_flags(ir_graph *g, int id, unsigned flags);
/* A builder reused an existing node where it would have built a new one: the nodes built
 * from now on get seq one higher (see ir_node.seq). */
void ir_graph_reuse(ir_graph *g);
/* Used by passes: change a node's scalar attribute in place. */
void ir_node_set_fattr(ir_graph *g, int id, int idx, float v);

const char *ir_op_name(ir_op op);
int ir_op_arity(ir_op op);
const char *ir_role_name(ir_role role);
int64_t ir_node_numel(const ir_node *n);

/* Builders. Shapes are NCHW; names are copied. */
int ir_input(ir_graph *g, const char *name, ir_dtype dt, int ndim, const int64_t *shape);
int ir_param(ir_graph *g, const char *name, ir_role role, int ndim, const int64_t *shape, ir_init init);
int ir_conv2d(ir_graph *g, int x, int w, int stride_h, int stride_w, int pad_h, int pad_w,
              int dil_h, int dil_w, int groups, const char *name);
/* gamma, beta: both -1 for no affine parameters. */
int ir_batchnorm(ir_graph *g, int x, int gamma, int beta, int running_mean, int running_var,
                 int batch_stats_always, float eps, float momentum, const char *name);
int ir_unary(ir_graph *g, ir_op op, int x, const char *name); /* RELU TANH SIGMOID IDENTITY SOFTMAX GAP SHIFT SQMEAN */
int ir_zero(ir_graph *g, int x, int stride, const char *name);
int ir_pool(ir_graph *g, ir_op op, int x, int k, int stride, int pad, const char *name);
int ir_nary(ir_graph *g, ir_op op, int n, const int *xs, const char *name); /* ADD MEAN CONCAT */
int ir_binary(ir_graph *g, ir_op op, int a, int b, const char *name);    /* MUL SUB */
int ir_scale(ir_graph *g, int x, float s, const char *name);
int ir_wsum(ir_graph *g, int w, int n, const int *xs, const char *name);
/* cols[i]: alpha column of xs[i]; alpha columns with no input are zero ops. */
int ir_mixed(ir_graph *g, int alpha, int row, int n, const int *xs, const int *cols, const char *name);
int ir_slice(ir_graph *g, int x, int start, int len, const char *name);
/* MIXED with the weights given as a tensor w (E, O) instead of softmax(alpha): sum_i
 * w[row][cols[i]] xs[i] (FairDARTS: w = sigmoid(alpha)); its gradient reaches w. */
int ir_wmixed(ir_graph *g, int w, int row, int n, const int *xs, const int *cols, const char *name);
/* Channel shuffle of x (N, C, ...) in `groups` groups of C/groups channels (ShuffleNet's,
 * as PC-DARTS uses it): output channel j*groups + g is input channel g*(C/groups) + j. */
int ir_channel_shuffle(ir_graph *g, int x, int groups, const char *name);
int ir_linear(ir_graph *g, int x, int w, int b, const char *name);
int ir_embedding(ir_graph *g, int ids, int table, const char *name);
int ir_softmax_ce(ir_graph *g, int logits, int labels, const char *name);
int ir_dropout(ir_graph *g, ir_op op, int x, float p, const char *name); /* DROPOUT DROP_PATH */

/* Verifier: topological order, arity, input kinds, shapes re-inferred and compared,
 * attributes in range. Returns 0, or -1 with ir_graph_error set. Run after every pass. */
int ir_verify(ir_graph *g);

/* Dumps. */
void ir_dump_text(const ir_graph *g, FILE *f);
void ir_dump_dot(const ir_graph *g, FILE *f);

/* Statistics. */
typedef struct ir_stats {
    int64_t n_nodes;
    int64_t weight_params, arch_params, buffer_elems;
    int64_t macs_per_sample; /* multiply-adds of one forward pass, per sample */
} ir_stats;
void ir_graph_stats(const ir_graph *g, ir_stats *st);

#endif
