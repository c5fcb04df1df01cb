/* space.h — a search space as plain data, and its lowering to IR graphs.
 *
 * The DSL front end fills an ir_space; built-in spaces (ir_space_darts_cifar10, ...)
 * fill the same struct in code. ir_space_build_supernet() lowers it to the search
 * supernet graph, whose parameter names follow the reference PyTorch DARTS code
 * (cells.3._ops.5._ops.4.op.1.weight), so checkpoints and parity tests line up.
 *
 * Usage:
 *   ir_space sp; ir_space_darts_cifar10(&sp);
 *   ir_net net;
 *   if (ir_space_build_supernet(&sp, 64, &net) != 0) puts(net.error);
 *   ... net.graph, net.loss, net.logits, net.images, net.labels, net.alpha[0..1] ...
 *   ir_net_free(&net);
 */
#ifndef DARTSC_IR_SPACE_H
#define DARTSC_IR_SPACE_H

#include "ir.h"

#define IR_MAX_CANDS 16      /* candidate ops per edge */
#define IR_MAX_NODES 12      /* intermediate nodes per cell */
#define IR_MAX_REDUCE 8
#define IR_NAME_MAX 48
#define IR_MAX_STAGES 8      /* P-DARTS search stages */

/* Candidate operations of the op library (DSL.md documents each). */
typedef enum ir_cand_kind {
    IR_CAND_NONE,        /* zero */
    IR_CAND_SKIP,        /* identity, FactorizedReduce at stride 2 */
    IR_CAND_SEP_CONV,    /* k */
    IR_CAND_DIL_CONV,    /* k, dilation */
    IR_CAND_MAX_POOL,    /* k */
    IR_CAND_AVG_POOL,    /* k */
    IR_CAND_CONV,        /* k: ReLU -> conv kxk -> BN */
    IR_CAND_CONV_1xK_Kx1,/* k: ReLU -> conv 1xk -> conv kx1 -> BN */
    IR_CAND_TANH,        /* recurrent */
    IR_CAND_RELU,
    IR_CAND_SIGMOID,
    IR_CAND_IDENTITY,
    IR_CAND_SHARP_SEP_CONV, /* k, dilation (sharpDARTS): ReLU, dw kxk dilation d stride s, 1x1, BN,
                               ReLU, dw kxk (dilation 1), 1x1, BN */
    IR_CAND_COUNT
} ir_cand_kind;

typedef struct ir_cand {
    ir_cand_kind kind;
    int k;        /* kernel size where it applies */
    int dilation; /* DIL_CONV, SHARP_SEP_CONV */
    char name[IR_NAME_MAX]; /* as shown in genotypes: "sep_conv_3x3" */
} ir_cand;

typedef enum ir_combine { IR_COMBINE_CONCAT, IR_COMBINE_MEAN } ir_combine;

typedef struct ir_cell {
    int n_inputs;   /* 1 or 2 previous cell outputs */
    int n_nodes;    /* intermediate nodes */
    int k_keep;     /* incoming edges per node kept at derivation */
    ir_combine combine;
    /* edges[i] bit j set: node i has an edge from state j (states: inputs, then nodes). */
    uint32_t edges[IR_MAX_NODES];
    int n_ops;
    ir_cand ops[IR_MAX_CANDS];
} ir_cell;

typedef enum ir_space_kind { IR_SPACE_CNN, IR_SPACE_RNN } ir_space_kind;

/* docs/DATA.md describes each source; runtime/data.h and runtime/datasets.h read them. */
typedef enum ir_data_source {
    IR_DATA_FASHION_MNIST, IR_DATA_CIFAR10, IR_DATA_TEXT,
    IR_DATA_NPY,      /* DIR/{x,y}_{train,test}.npy, converted to `input` */
    IR_DATA_IMAGES,   /* DIR/{train,test}/<class>/ PNG or JPEG files, resized to `input` */
    IR_DATA_CIFAR100  /* DIR/{train,test}.bin, fine labels */
} ir_data_source;

/* Search and training settings: the DARTS paper's values are the defaults. */
typedef struct ir_train_config {
    int epochs, batch;
    float w_lr, w_lr_min, w_momentum, w_wd, w_clip;
    float a_lr, a_beta1, a_beta2, a_wd;
    int order;          /* 1 or 2 */
    uint64_t seed;
    float train_portion; /* fraction of the training set used for weights; rest for alpha */
    int cutout;         /* 0: off, else length */
    int crop_pad;       /* random crop padding; 0: off */
    int hflip;
    float drop_path;    /* retraining */
    float aux_weight;   /* retraining; 0: no auxiliary head */
    /* Appended by the front end (frontend/, docs/DSL.md); 0 leaves each off. */
    int subset;         /* use only the first N training examples (quick demos); 0: all */
    int test_subset;    /* evaluate on only the first N test examples; 0: all */
    int bptt;           /* recurrent: truncated BPTT length (PTB: 35) */
    float dropout, dropout_h, dropout_x, dropout_i, dropout_e; /* recurrent: output, hidden,
                           x-to-hidden, input, embedding dropout (PTB search: .75 .25 .75 .2 0) */
    float tar;          /* recurrent: temporal activation regularisation beta (PTB: 1e-3) */
    int sync_bn;        /* data-parallel runs (docs/SCALING.md): 1: batch-norm statistics over
                           the global batch of every rank; 0: each rank's own shard */
    /* The search strategy and the DARTS successors' settings (search blocks; docs/DSL.md,
     * search/pcdarts.c, fairdarts.c, pdarts.c, dartsplus.c, sharp.c) */
    char strategy[24];     /* "" (the command line's, default darts) or a --strategy name */
    int partial_channels;  /* pc-darts: K, 1/K of the channels through each mixed op; 0: 4 */
    int edge_norm_off;     /* pc-darts: 1 turns edge normalisation off (the paper's ablation) */
    int n_stages, stages[IR_MAX_STAGES];       /* P-DARTS: cells of each stage; 0: L, L + 6, L + 12 */
    int n_stage_ops, stage_ops[IR_MAX_STAGES]; /* P-DARTS: candidate ops per edge of each stage; 0: all, 5, 3 */
    int n_skip_dropout;
    float skip_dropout[IR_MAX_STAGES];         /* P-DARTS: dropout on skips at each stage's start (0, 0.4, 0.7) */
    int max_skip;       /* P-DARTS: at most this many skips in the derived normal cell (M = 2) */
    int warmup;         /* P-DARTS: epochs per stage that train the weights only (0) */
    int stop_skips;     /* DARTS+: stop when the derived normal cell has this many skips (2; 0: off) */
    int stop_stable;    /* DARTS+: stop when the ranking of the learnable ops' alpha held this many epochs (10; 0: off) */
    float lr_power;     /* sharpDARTS: cosine power annealing's exponent base p (2; 1 is cosine annealing) */
    float latency_weight; /* ProxylessNAS: lambda of loss = CE + lambda * E[latency in ms] (0.1; 0: no latency term) */
} ir_train_config;

typedef struct ir_space {
    char name[IR_NAME_MAX];
    ir_space_kind kind;
    /* data */
    ir_data_source data;
    char data_path[256];
    int in_c, in_h, in_w, classes;
    float mean[4], std[4]; /* per-channel normalisation; std 0: from the data (npy, images) */
    /* network */
    int C;          /* initial channels */
    int layers;     /* cells */
    int stem_mult;  /* stem output = stem_mult * C */
    int growth;     /* channel multiplier at each reduction (2) */
    int n_reduce;
    int reduce_at[IR_MAX_REDUCE];
    ir_cell normal, reduce;
    /* recurrent */
    int emb, hidden;
    /* settings */
    ir_train_config search, train;
    int train_C, train_layers; /* evaluation network size */
    /* compound scaling of the evaluation network (ir_space_compound_scale): phi (0: off)
     * and the input size it gives (0: in_h, in_w; the loaders resize the images to it) */
    float scale_phi;
    int train_in_h, train_in_w;
} ir_space;

/* EfficientNet's compound scaling (Tan & Le 2019) of the evaluation network by
 * sp->scale_phi: depth alpha^phi, width beta^phi, input resolution gamma^phi with
 * alpha = 1.2, beta = 1.1, gamma = 1.15 (alpha * beta^2 * gamma^2 = 1.92, about 2: FLOPs
 * grow about 2^phi). Cells: ceil(train_layers * alpha^phi); C: train_C * beta^phi
 * rounded; input: in_h, in_w * gamma^phi rounded to a multiple of 2^n_reduce
 * (train_in_h, train_in_w). phi 0 leaves the space as it is. */
#define IR_SCALE_ALPHA 1.2
#define IR_SCALE_BETA 1.1
#define IR_SCALE_GAMMA 1.15
void ir_space_compound_scale(ir_space *sp);

/* Built-in spaces exactly as ../shared/REFERENCE.md. */
void ir_space_darts_cifar10(ir_space *sp);
void ir_cell_darts_default(ir_cell *c);
void ir_train_config_default_search(ir_train_config *tc);
/* All-earlier-states edge masks for a cell. */
void ir_cell_all_edges(ir_cell *c);

/* Edges of a cell in alpha row order (node-major, source ascending). */
int ir_cell_num_edges(const ir_cell *c);
/* Row r -> (node, src). Returns 0, or -1 if r is out of range. */
int ir_cell_edge(const ir_cell *c, int r, int *node, int *src);
/* Index of the candidate named kind NONE, or -1. */
int ir_cell_none_index(const ir_cell *c);

/* Checks a space for consistency (ranges, that k_keep edges per node exist, that the
 * channel arithmetic works). Writes a message and returns -1 on the first problem. */
int ir_space_check(const ir_space *sp, char *err, size_t errlen);

/* A lowered network with the handles search and training need. */
typedef struct ir_net {
    ir_graph *graph;
    int images, labels;      /* inputs */
    int logits, loss;        /* outputs */
    int alpha[2];            /* normal, reduce (-1 in derived nets) */
    int aux_logits;          /* -1 unless an auxiliary head */
    char error[512];
    /* PC-DARTS' edge normalisation (ir_supernet_opts.edge_norm): per cell type and node the
     * (1, incoming edges) architecture parameter betas_normal.i / betas_reduce.i; -1 otherwise */
    int beta[2][IR_MAX_NODES];
} ir_net;

int ir_space_build_supernet(const ir_space *sp, int batch, ir_net *net);

/* Supernets of the DARTS successors (search/pcdarts.c, fairdarts.c, pdarts.c); all zero is
 * ir_space_build_supernet's DARTS supernet. */
typedef struct ir_supernet_opts {
    int partial;   /* PC-DARTS' K (> 1): each mixed op runs on the first C/K channels of its input;
                      the other channels bypass it (through a 2x2 max pool of stride 2 on a
                      reduction edge), are concatenated after its output, and the result is
                      channel-shuffled in K groups. C must be a multiple of K in every cell */
    int edge_norm; /* PC-DARTS' edge normalisation: node i = sum_j softmax(beta_i)_j edge_j instead
                      of the plain sum (net->beta) */
    int sigmoid;   /* FairDARTS: an edge is sum_o sigmoid(alpha[e][o]) op_o(x) (WMIXED over one
                      SIGMOID node per cell type) instead of the softmax over the edge's ops */
    /* P-DARTS: cols[t] (t = 0 normal, 1 reduce), when not NULL, holds for each edge e the
     * candidate indices of its alpha columns, cols[t][e * n_cols[t] + j]: the alpha of that
     * cell type is then (edges, n_cols[t]), edge e's mixed op mixes only those candidates
     * (softmax over its n_cols[t] columns), and the others get no node. skip_dropout > 0 puts
     * a DROPOUT node (p = skip_dropout, changed at run time with rt_plan_set_fattr) after
     * every identity skip (stride 1). */
    const int *cols[2];
    int n_cols[2];
    float skip_dropout;
    int gates;     /* ProxylessNAS: an edge is sum_c alpha[e][c] op_c(x) (WMIXED over alpha itself: alpha
                      holds the binary gates); an edge whose columns are all 'none' is a ZERO node */
    int no_share;  /* 1: every edge builds its own pools, FactorizedReduce ReLU and shift, PC-DARTS
                      slices, as PyTorch's DARTS runs them; 0 (default): each is built once per cell
                      and input and the edges read it (the same forward values; see ir/space.c) */
} ir_supernet_opts;
/* o NULL: the DARTS supernet (as all zero). */
int ir_space_build_supernet_ex(const ir_space *sp, int batch, const ir_supernet_opts *o, ir_net *net);
/* One candidate op alone as the evaluation network lowers it (BN with running statistics,
 * affine), on a (1, C, H, W) input "images" at stride 1 or 2; its output is net->logits (no
 * loss). ProxylessNAS's latency table times its generated C (driver/proxyless_latency.c).
 * 'none' and the identity skip compute nothing: an error. */
int ir_space_build_op(const ir_cand *op, int C, int H, int W, int stride, ir_net *net);
void ir_net_free(ir_net *net);

/* ---- genotypes and the derived (evaluation) network ---- */

#define IR_MAX_KEEP 8

typedef struct ir_geno_edge {
    int op;  /* index into the cell's candidate ops (never the 'none' op) */
    int src; /* state index: 0..n_inputs-1 the cell inputs, then the intermediate nodes */
} ir_geno_edge;

typedef struct ir_geno_cell {
    int n_nodes;
    int n_edges[IR_MAX_NODES]; /* edges kept per node: min(k, edges into it) */
    ir_geno_edge e[IR_MAX_NODES][IR_MAX_KEEP];
} ir_geno_cell;

typedef struct ir_genotype {
    ir_geno_cell normal, reduce;
} ir_genotype;

/* Options of the evaluation network (retraining from scratch, REFERENCE.md). */
typedef struct ir_eval_opts {
    int C, layers, batch;
    int aux;          /* auxiliary head after the second reduction cell (training graphs only) */
    float aux_weight; /* its loss weight */
    int drop_path;    /* insert DROP_PATH on every op output except identity; p is set at run time */
} ir_eval_opts;

/* Builds the derived network: affine BN, no BN after pools, the genotype's ops, cell
 * output = combine of all intermediate nodes, optional drop path and auxiliary head.
 * net->loss is CE(logits) (+ aux_weight * CE(aux_logits)). Parameter names follow the
 * reference NetworkCIFAR (cells.3._ops.1.op.1.weight, auxiliary_head.*, classifier.*). */
int ir_space_build_eval(const ir_space *sp, const ir_genotype *gt, const ir_eval_opts *o, ir_net *net);
/* Positions of the reduction cells in an evaluation network of L cells (n_reduce of them;
 * the rule is documented at its definition). 0, or -1 with a message. */
int ir_space_eval_reductions(const ir_space *sp, int L, int *pos, char *err, size_t errlen);
/* Readable names of an evaluation network's nodes for exporters and viewers:
 * labels[i] = "cell3/node1/edge0/sep_conv_3x3/dw1", "cell0/preprocess1/conv", "stem/conv",
 * "classifier", ... (malloc'd; NULL where a node keeps its own name, e.g. parameters).
 * g must come from ir_space_build_eval(sp, gt, o) with the same o->layers (0: the
 * space's). Returns an array of ir_graph_num_nodes(g) entries (free with
 * ir_eval_labels_free), or NULL when out of memory or the layout is unknown. */
char **ir_eval_labels(const ir_space *sp, const ir_genotype *gt, int layers, const ir_graph *g);
void ir_eval_labels_free(char **labels, int n);

/* Checks a genotype against a space (ops exist, are not 'none', sources precede nodes). */
int ir_genotype_check(const ir_space *sp, const ir_genotype *gt, char *err, size_t errlen);
/* The published DARTS_V2 CNN genotype (REFERENCE.md) over the default DARTS op list. */
void ir_genotype_darts_v2(ir_genotype *g);


/* ---- recurrent (kind rnn) networks: ir/rnn.c ----
 * The language model of the DARTS PTB search, unrolled over T time steps into a static
 * graph (REFERENCE.md "Recurrent search space"): embedding (encoder.weight, tied to the
 * decoder) -> one highway cell per step -> decoder = encoder.weight + decoder.bias ->
 * softmax cross-entropy, averaged over the T * batch targets. The hidden state enters as
 * the input h0 and leaves as the output hT, so a trainer carries it across windows
 * (detached: truncated back-propagation through time).
 * Supernet (gc NULL): every edge j -> i is the mixed op over the non-none activations,
 * computed as P s_j + c (m - P s_j) with m = sum_k softmax(alpha)_k f_k(h) and P the total
 * weight of the non-none ops (equal to the reference's sum of per-op highway terms), W_i
 * shared by the predecessors of node i, BN without affine on s0 and on every node.
 * Derived net (gc given): the genotype's edges, no BN. Variational dropout masks (one per
 * window, the same at every step) are DROPOUT nodes over a buffer of ones, multiplied in.
 * Parameter names follow the reference code: encoder.weight, decoder.bias, rnns.0._W0,
 * rnns.0._Ws.<i>, weights (alpha); _W0 and _Ws are stored transposed, (2 nhid, in). */
#define IR_RNN_MAX_T 256

typedef struct ir_rnn_opts {
    int T, batch, ntoken;
    float dropout, dropout_h, dropout_x, dropout_i; /* 0: no mask node */
    float dropout_e; /* embedding dropout: whole rows of the lookup table (DROP_PATH over encoder.weight) */
    float tar;       /* temporal activation regularisation beta: loss += tar * mean((h_t - h_t-1)^2) over
                        the window's raw cell outputs; 0: no term. Its SCALE node is net->tar_scale, so a
                        trainer can switch it off (the reference's alpha step uses the bare cross-entropy) */
    int infer;       /* 1: no targets and no loss; each step's logits are outputs (export) */
} ir_rnn_opts;

typedef struct ir_rnn_net {
    ir_graph *graph;
    int T, batch, ntoken, nhid;
    int ids[IR_RNN_MAX_T], targets[IR_RNN_MAX_T]; /* int32 (batch) inputs per step */
    int h0, hT;                                      /* (batch, nhid) */
    int loss;                                        /* ce (+ tar term) */
    int ce;                                          /* mean CE over the T * batch targets (an output) */
    int tar_scale;                                   /* SCALE node of the tar term; -1 without one */
    int logits[IR_RNN_MAX_T];                        /* (batch, ntoken) per step */
    int alpha;                                       /* (edges, ops); -1 in derived nets */
    char error[512];
} ir_rnn_net;

int ir_space_build_rnn(const ir_space *sp, const ir_geno_cell *gc, const ir_rnn_opts *o, ir_rnn_net *net);
void ir_rnn_net_free(ir_rnn_net *net);

#endif
