/* rnn.c — lowering of a recurrent (kind rnn) space to the unrolled language-model graph of
 * the DARTS PTB search and of its derived cell (space.h, REFERENCE.md "Recurrent search
 * space"). The reference is the authors' rnn/model.py and rnn/model_search.py. */
#include "space.h"

#include <stdio.h>
#include <string.h>

#define RNN_INIT_RANGE 0.04f /* _W0, _Ws: U(-0.04, 0.04) */
#define EMB_INIT_RANGE 0.1f  /* encoder.weight: U(-0.1, 0.1) */
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

typedef struct rb {
    ir_graph *g;
    const ir_cell *cell;
    const ir_geno_cell *gc;
    int H;
    int alpha, w0, ws[IR_MAX_NODES], bn_rm, bn_rv;
    int mask_h, mask_x;   /* -1: no dropout */
    int n_bn;
} rb;

static int nm(char *buf, size_t n, const char *fmt, int t, int a, int b) {
    snprintf(buf, n, fmt, t, a, b);
    return 0;
}

/* A variational mask (B, D): DROPOUT over ones, i.e. Bernoulli(1 - p) / (1 - p), drawn once
 * per forward pass and multiplied into every step. */
static int mask_node(ir_graph *g, int ones, float p, const char *name) {
    if (!(p > 0)) return -1;
    return ir_dropout(g, IR_OP_DROPOUT, ones, p, name);
}

static int bn(rb *b, int x, int t, int k) {
    char n[96];
    nm(n, sizeof n, "rnns.0.bn.t%d.%d", t, k, 0);
    b->n_bn++;
    return ir_batchnorm(b->g, x, -1, -1, b->bn_rm, b->bn_rv, 0, BN_EPS, BN_MOMENTUM, n);
}

/* s + c (f - s) for one edge; c, f (B, H) */
static int highway(ir_graph *g, int s, int c, int f, const char *p) {
    char n[192];
    snprintf(n, sizeof n, "%s.sub", p);
    int d = ir_binary(g, IR_OP_SUB, f, s, n);
    snprintf(n, sizeof n, "%s.gate", p);
    d = ir_binary(g, IR_OP_MUL, c, d, n);
    snprintf(n, sizeof n, "%s", p);
    return ir_nary(g, IR_OP_ADD, 2, (int[]){s, d}, n);
}

static ir_op act_op(ir_cand_kind k) {
    switch (k) {
    case IR_CAND_TANH: return IR_OP_TANH;
    case IR_CAND_RELU: return IR_OP_RELU;
    case IR_CAND_SIGMOID: return IR_OP_SIGMOID;
    default: return IR_OP_IDENTITY;
    }
}

/* One cell step: returns h_t (B, H). */
static int cell_step(rb *b, int t, int x, int h_prev) {
    ir_graph *g = b->g;
    int H = b->H;
    char n[192];
    /* s0: [c0, h0] = [x * x_mask, h_prev * h_mask] W0 */
    int xm = x, hm = h_prev;
    if (b->mask_x >= 0) { nm(n, sizeof n, "t%d.x_masked", t, 0, 0); xm = ir_binary(g, IR_OP_MUL, x, b->mask_x, n); }
    if (b->mask_h >= 0) { nm(n, sizeof n, "t%d.h_masked", t, 0, 0); hm = ir_binary(g, IR_OP_MUL, h_prev, b->mask_h, n); }
    nm(n, sizeof n, "t%d.xh", t, 0, 0);
    int xh = ir_nary(g, IR_OP_CONCAT, 2, (int[]){xm, hm}, n);
    nm(n, sizeof n, "t%d.ch0", t, 0, 0);
    int ch0 = ir_linear(g, xh, b->w0, -1, n);
    nm(n, sizeof n, "t%d.c0", t, 0, 0);
    int c0 = ir_unary(g, IR_OP_SIGMOID, ir_slice(g, ch0, 0, H, n), n);
    nm(n, sizeof n, "t%d.h0", t, 0, 0);
    int h0 = ir_unary(g, IR_OP_TANH, ir_slice(g, ch0, H, H, n), n);
    nm(n, sizeof n, "t%d.s0", t, 0, 0);
    int s0 = highway(g, h_prev, c0, h0, n);
    if (!b->gc) s0 = bn(b, s0, t, 0);

    int states[IR_MAX_NODES + 1], masked[IR_MAX_NODES + 1];
    states[0] = s0;
    for (int j = 0; j <= IR_MAX_NODES; j++) masked[j] = -1;
    const ir_cell *cell = b->cell;
    int row = 0, nodes[IR_MAX_NODES];
    for (int i = 0; i < cell->n_nodes; i++) {
        int contrib[IR_MAX_NODES + 1], nc = 0;
        for (int j = 0; j <= i; j++) {
            int kept_op = -1;
            if (b->gc) {
                for (int k = 0; k < b->gc->n_edges[i]; k++)
                    if (b->gc->e[i][k].src == j) kept_op = b->gc->e[i][k].op;
                if (kept_op < 0) continue;
            } else if (!((cell->edges[i] >> j) & 1)) {
                continue;
            }
            int s = states[j];
            if (masked[j] < 0) {
                if (b->mask_h >= 0) {
                    nm(n, sizeof n, "t%d.s%d.masked", t, j, 0);
                    masked[j] = ir_binary(g, IR_OP_MUL, s, b->mask_h, n);
                } else {
                    masked[j] = s;
                }
            }
            char p[96];
            nm(p, sizeof p, "t%d.n%d.e%d", t, i + 1, j);
            snprintf(n, sizeof n, "%s.ch", p);
            int ch = ir_linear(g, masked[j], b->ws[i], -1, n);
            snprintf(n, sizeof n, "%s.c", p);
            int c = ir_unary(g, IR_OP_SIGMOID, ir_slice(g, ch, 0, H, n), n);
            snprintf(n, sizeof n, "%s.h", p);
            int hh = ir_slice(g, ch, H, H, n);
            if (b->gc) {
                const ir_cand *op = &cell->ops[kept_op];
                int f = hh;
                if (op->kind != IR_CAND_IDENTITY) {
                    snprintf(n, sizeof n, "%s.%s", p, op->name);
                    f = ir_unary(g, act_op(op->kind), hh, n);
                }
                contrib[nc++] = highway(g, s, c, f, p);
                continue;
            }
            /* mixed edge: P s + c (m - P s) */
            int fs[IR_MAX_CANDS], cols[IR_MAX_CANDS], ss[IR_MAX_CANDS], nf = 0;
            for (int o = 0; o < cell->n_ops; o++) {
                const ir_cand *op = &cell->ops[o];
                if (op->kind == IR_CAND_NONE) continue;
                int f = hh;
                if (op->kind != IR_CAND_IDENTITY) {
                    snprintf(n, sizeof n, "%s.%s", p, op->name);
                    f = ir_unary(g, act_op(op->kind), hh, n);
                }
                fs[nf] = f;
                ss[nf] = s;
                cols[nf++] = o;
            }
            snprintf(n, sizeof n, "%s.m", p);
            int m = ir_mixed(g, b->alpha, row, nf, fs, cols, n);
            snprintf(n, sizeof n, "%s.Ps", p);
            int ps = ir_mixed(g, b->alpha, row, nf, ss, cols, n);
            contrib[nc++] = highway(g, ps, c, m, p);
            row++;
        }
        nm(n, sizeof n, "t%d.n%d", t, i + 1, 0);
        int node = nc == 1 ? contrib[0] : ir_nary(g, IR_OP_ADD, nc, contrib, n);
        if (nc < 1) {
            ir_graph_set_error(g, "recurrent node %d has no incoming edge", i + 1);
            return -1;
        }
        if (!b->gc) node = bn(b, node, t, i + 1);
        states[i + 1] = node;
        nodes[i] = node;
    }
    nm(n, sizeof n, "t%d.h", t, 0, 0);
    return cell->n_nodes == 1 ? nodes[0] : ir_nary(g, IR_OP_MEAN, cell->n_nodes, nodes, n);
}

void ir_rnn_net_free(ir_rnn_net *net) {
    ir_graph_free(net->graph);
    net->graph = NULL;
}

int ir_space_build_rnn(const ir_space *sp, const ir_geno_cell *gc, const ir_rnn_opts *o, ir_rnn_net *net) {
    memset(net, 0, sizeof *net);
    net->alpha = net->h0 = net->hT = net->loss = net->ce = net->tar_scale = -1;
    if (ir_space_check(sp, net->error, sizeof net->error)) return -1;
    if (sp->kind != IR_SPACE_RNN) {
        snprintf(net->error, sizeof net->error, "space '%s' is not recurrent (kind rnn)", sp->name);
        return -1;
    }
    if (sp->emb != sp->hidden) {
        snprintf(net->error, sizeof net->error, "space '%s': emb %d and hidden %d must be equal (the embedding is tied to "
                 "the decoder)", sp->name, sp->emb, sp->hidden);
        return -1;
    }
    if (o->T < 1 || o->T > IR_RNN_MAX_T || o->batch < 1 || o->ntoken < 2) {
        snprintf(net->error, sizeof net->error, "recurrent network: bptt %d (1..%d), batch %d and vocabulary %d out of range",
                 o->T, IR_RNN_MAX_T, o->batch, o->ntoken);
        return -1;
    }
    const ir_cell *cell = &sp->normal;
    if (cell->n_inputs != 1) {
        snprintf(net->error, sizeof net->error, "recurrent cell must read 1 input (s0), not %d", cell->n_inputs);
        return -1;
    }
    if (gc) {
        for (int i = 0; i < cell->n_nodes; i++)
            for (int k = 0; k < gc->n_edges[i]; k++)
                if (gc->e[i][k].src < 0 || gc->e[i][k].src > i || gc->e[i][k].op < 0 || gc->e[i][k].op >= cell->n_ops ||
                    cell->ops[gc->e[i][k].op].kind == IR_CAND_NONE) {
                    snprintf(net->error, sizeof net->error, "genotype: node %d has an invalid edge", i + 1);
                    return -1;
                }
    }
    int64_t B = o->batch, H = sp->hidden, V = o->ntoken;
    rb b = {.g = ir_graph_new(sp->name), .cell = cell, .gc = gc, .H = (int)H, .alpha = -1, .mask_h = -1, .mask_x = -1};
    if (!b.g) {
        snprintf(net->error, sizeof net->error, "out of memory");
        return -1;
    }
    ir_graph *g = b.g;
    net->graph = g;
    net->T = o->T;
    net->batch = o->batch;
    net->ntoken = o->ntoken;
    net->nhid = (int)H;
    char n[96];
    for (int t = 0; t < o->T; t++) {
        nm(n, sizeof n, "ids.%d", t, 0, 0);
        net->ids[t] = ir_input(g, n, IR_DTYPE_I32, 1, (int64_t[]){B});
        if (o->infer) continue;
        nm(n, sizeof n, "targets.%d", t, 0, 0);
        net->targets[t] = ir_input(g, n, IR_DTYPE_I32, 1, (int64_t[]){B});
    }
    net->h0 = ir_input(g, "hidden", IR_DTYPE_F32, 2, (int64_t[]){B, H});
    if (!gc)
        net->alpha = b.alpha = ir_param(g, "weights", IR_ROLE_ARCH, 2, (int64_t[]){ir_cell_num_edges(cell), cell->n_ops},
                                        ir_init_normal(1e-3f));
    int enc = ir_param(g, "encoder.weight", IR_ROLE_WEIGHT, 2, (int64_t[]){V, H}, ir_init_uniform(EMB_INIT_RANGE));
    int dec_b = ir_param(g, "decoder.bias", IR_ROLE_WEIGHT, 1, (int64_t[]){V}, ir_init_zeros());
    b.w0 = ir_param(g, "rnns.0._W0", IR_ROLE_WEIGHT, 2, (int64_t[]){2 * H, 2 * H}, ir_init_uniform(RNN_INIT_RANGE));
    for (int i = 0; i < cell->n_nodes; i++) {
        nm(n, sizeof n, "rnns.0._Ws.%d", i, 0, 0);
        b.ws[i] = ir_param(g, n, IR_ROLE_WEIGHT, 2, (int64_t[]){2 * H, H}, ir_init_uniform(RNN_INIT_RANGE));
    }
    if (!gc) {
        b.bn_rm = ir_param(g, "rnns.0.bn.running_mean", IR_ROLE_BUFFER, 1, (int64_t[]){H}, ir_init_zeros());
        b.bn_rv = ir_param(g, "rnns.0.bn.running_var", IR_ROLE_BUFFER, 1, (int64_t[]){H}, ir_init_ones());
    }
    int mask_i = -1, mask_o = -1;
    if (o->dropout > 0 || o->dropout_h > 0 || o->dropout_x > 0 || o->dropout_i > 0) {
        int ones = ir_param(g, "dropout.ones", IR_ROLE_BUFFER, 2, (int64_t[]){B, H}, ir_init_ones());
        mask_i = mask_node(g, ones, o->dropout_i, "dropout.mask_i");
        b.mask_x = mask_node(g, ones, o->dropout_x, "dropout.mask_x");
        b.mask_h = mask_node(g, ones, o->dropout_h, "dropout.mask_h");
        mask_o = mask_node(g, ones, o->dropout, "dropout.mask_o");
    }
    int lookup = enc;
    if (o->dropout_e > 0) lookup = ir_dropout(g, IR_OP_DROP_PATH, enc, o->dropout_e, "dropout.embedding");
    int h = net->h0, ces[IR_RNN_MAX_T], hs[IR_RNN_MAX_T];
    for (int t = 0; t < o->T; t++) {
        nm(n, sizeof n, "t%d.emb", t, 0, 0);
        int x = ir_embedding(g, net->ids[t], lookup, n);
        if (mask_i >= 0) { nm(n, sizeof n, "t%d.emb_masked", t, 0, 0); x = ir_binary(g, IR_OP_MUL, x, mask_i, n); }
        h = cell_step(&b, t, x, h);
        if (h < 0) break;
        hs[t] = h;
        int out = h;
        if (mask_o >= 0) { nm(n, sizeof n, "t%d.out_masked", t, 0, 0); out = ir_binary(g, IR_OP_MUL, h, mask_o, n); }
        nm(n, sizeof n, "t%d.decoder", t, 0, 0);
        int logits = net->logits[t] = ir_linear(g, out, enc, dec_b, n);
        if (o->infer) {
            if (logits >= 0) ir_node_set_flags(g, logits, IR_FLAG_OUTPUT);
            continue;
        }
        nm(n, sizeof n, "t%d.loss", t, 0, 0);
        ces[t] = ir_softmax_ce(g, logits, net->targets[t], n);
    }
    net->hT = h;
    if (o->infer) {
        if (!ir_graph_error(g) && h >= 0) ir_node_set_flags(g, h, IR_FLAG_OUTPUT);
        if (ir_graph_error(g) || ir_verify(g) != 0) {
            snprintf(net->error, sizeof net->error, "%s", ir_graph_error(g));
            ir_rnn_net_free(net);
            return -1;
        }
        return 0;
    }
    /* mean of the T per-step means (each over B targets) = mean over all T * B targets;
     * summed in groups because a node takes at most RT_MAX_IN inputs */
    int parts[IR_RNN_MAX_T], np = 0;
    for (int t0 = 0; t0 < o->T && !ir_graph_error(g); t0 += 16) {
        int k = o->T - t0 < 16 ? o->T - t0 : 16;
        nm(n, sizeof n, "loss.sum%d", np, 0, 0);
        parts[np++] = k == 1 ? ces[t0] : ir_nary(g, IR_OP_ADD, k, ces + t0, n);
    }
    int sum = parts[0];
    if (!ir_graph_error(g) && np > 1) sum = ir_nary(g, IR_OP_ADD, np, parts, "loss.sum");
    net->ce = net->loss = ir_scale(g, sum, 1.0f / (float)o->T, "loss.ce");
    if (o->tar > 0 && o->T >= 2 && !ir_graph_error(g)) {
        /* mean over (T-1) x B x H of (h_t - h_t-1)^2 = the mean of the T-1 per-step means */
        int sq[IR_RNN_MAX_T], ns = 0, tparts[IR_RNN_MAX_T], ntp = 0;
        for (int t = 1; t < o->T; t++) {
            nm(n, sizeof n, "t%d.tar", t, 0, 0);
            sq[ns++] = ir_unary(g, IR_OP_SQMEAN, ir_binary(g, IR_OP_SUB, hs[t], hs[t - 1], n), n);
        }
        for (int k0 = 0; k0 < ns; k0 += 16) {
            int k = ns - k0 < 16 ? ns - k0 : 16;
            nm(n, sizeof n, "loss.tar_sum%d", ntp, 0, 0);
            tparts[ntp++] = k == 1 ? sq[k0] : ir_nary(g, IR_OP_ADD, k, sq + k0, n);
        }
        int tsum = ntp == 1 ? tparts[0] : ir_nary(g, IR_OP_ADD, ntp, tparts, "loss.tar_sum");
        net->tar_scale = ir_scale(g, tsum, o->tar / (float)(o->T - 1), "loss.tar");
        net->loss = ir_nary(g, IR_OP_ADD, 2, (int[]){net->ce, net->tar_scale}, "loss");
    }
    if (!ir_graph_error(g)) {
        ir_node_set_flags(g, net->ce, IR_FLAG_OUTPUT);
        ir_node_set_flags(g, net->hT, IR_FLAG_OUTPUT);
        ir_node_set_flags(g, net->loss, IR_FLAG_OUTPUT | IR_FLAG_LOSS);
    }
    if (ir_graph_error(g) || ir_verify(g) != 0) {
        snprintf(net->error, sizeof net->error, "%s", ir_graph_error(g));
        ir_rnn_net_free(net);
        return -1;
    }
    return 0;
}
