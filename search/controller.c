/* controller.c — the LSTM controller of the reinforcement-learning searches (controller.h).
 *
 * The graph is one LSTM unrolled over the T tokens, batch 1. The loss is built from the
 * ops the IR has: -log pi(a_t) = softmax_ce(z_t, a_t); the entropy through
 *   H(pi_t) = logsumexp(z_t) - sum_j pi_tj z_tj = ce(z_t, 0) + (z_t0 - sum_j pi_tj z_tj),
 * the sum over j a linear layer against a row of ones (an input). The bracket is a (1, 1)
 * tensor; the verifier wants a loss of shape (1), so its sum u over the tokens is brought
 * to shape (1) by u = softplus(u) - softplus(-u) = ce([u, 0], 1) - ce([u, 0], 0) (exact in
 * arithmetic, its gradient exactly 1; rounded to float like any other term). The loss is
 * wsum(coef, [sum -log pi, sum ce(z, 0), u]) with coef = (c_lp, -c_ent, -c_ent) an input.
 */
#include "controller.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "runtime/runtime.h"
#include "train/checkpoint.h"
#include "train/common.h"

#define MAX_COMBOS 4096
#define SUM_GROUP 16 /* terms per n-ary add */
#define SAMPLE_LANES 16 /* sequences sampled together */

enum { TOK_INPUTS, TOK_OP };

typedef struct tok {
    int kind, cell, node, edge; /* edge: the op token's position among the node's inputs */
    int k;                      /* values */
    int base;                   /* embedding row of value 0 */
} tok;

/* One unrolled graph, its plan and its nodes. */
typedef struct cgraph {
    ir_graph *g;
    rt_plan *p;
    int batch;
    int ids[SR_CTL_MAX_TOKENS], labels[SR_CTL_MAX_TOKENS], logits[SR_CTL_MAX_TOKENS];
    int zero, one, zero11, coef, h0, c0, ones_in[MAX_COMBOS + 1];
    int s_lp, s_lse, s_d;
} cgraph;

struct sr_ctl {
    sr_ctl_opts o;
    ir_cell cell[2];
    int ops[2][IR_MAX_CANDS], nops[2];              /* non-'none' candidates */
    int keep[2][IR_MAX_NODES], ncomb[2][IR_MAX_NODES];
    int *comb[2][IR_MAX_NODES];                     /* ncomb rows of keep sources, ascending */
    int T;
    tok t[SR_CTL_MAX_TOKENS];
    rt_backend *be;
    cgraph tr, sm; /* batch 1 with the loss (training, log-probabilities); SAMPLE_LANES lanes (sampling) */
    float *w, *gw, *m, *v, *acc;
    int64_t nw;
    int64_t steps, meta[3];
    double baseline;
    int have_baseline;
};

sr_ctl_opts sr_ctl_opts_default(void) {
    /* ENAS's CIFAR-10 controller: 64 units, Adam at 0.0035, U(-0.1, 0.1); Adam's beta1 as
     * PyTorch's default (ENAS uses 0) */
    return (sr_ctl_opts){.hidden = 64, .lr = 0.0035f, .beta1 = 0.9f, .beta2 = 0.999f, .entropy_weight = 1e-4f,
                         .baseline_decay = 0.9f, .init = 0.1f, .seed = 0};
}

int sr_ctl_num_tokens(const sr_ctl *c) { return c->T; }
int sr_ctl_token_choices(const sr_ctl *c, int t) { return t >= 0 && t < c->T ? c->t[t].k : 0; }
double sr_ctl_baseline(const sr_ctl *c) { return c->have_baseline ? c->baseline : NAN; }
int64_t sr_ctl_steps(const sr_ctl *c) { return c->steps; }

float *sr_ctl_weights(sr_ctl *c, int64_t *n) {
    *n = c->nw;
    return c->w;
}
const float *sr_ctl_grad(sr_ctl *c) { return c->gw; }

/* ---- the token layout ---------------------------------------------------------------------- */

static int64_t binom(int n, int k) {
    int64_t r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

/* All k-subsets of src[0..n) in lexicographic order. */
static int *combinations(const int *src, int n, int k, int count) {
    int *out = malloc((size_t)count * (size_t)k * sizeof *out), idx[IR_MAX_KEEP];
    if (!out) return NULL;
    for (int i = 0; i < k; i++) idx[i] = i;
    for (int r = 0; r < count; r++) {
        for (int i = 0; i < k; i++) out[r * k + i] = src[idx[i]];
        int i = k - 1;
        while (i >= 0 && idx[i] == n - k + i) i--;
        if (i < 0) break;
        idx[i]++;
        for (int j = i + 1; j < k; j++) idx[j] = idx[j - 1] + 1;
    }
    return out;
}

static int layout(sr_ctl *c, char *err, size_t errlen) {
    int row = 1; /* row 0: the start token */
    for (int ci = 0; ci < 2; ci++) {
        const ir_cell *cl = &c->cell[ci];
        for (int o = 0; o < cl->n_ops; o++)
            if (cl->ops[o].kind != IR_CAND_NONE) c->ops[ci][c->nops[ci]++] = o;
        if (!c->nops[ci]) return sr_fail(err, errlen, "controller: the %s cell has no candidate op but 'none'", ci ? "reduce" : "normal");
        for (int i = 0; i < cl->n_nodes; i++) {
            int src[2 + IR_MAX_NODES], ns = 0;
            for (int j = 0; j < cl->n_inputs + i; j++)
                if ((cl->edges[i] >> j) & 1) src[ns++] = j;
            int keep = cl->k_keep < ns ? cl->k_keep : ns;
            if (keep > IR_MAX_KEEP) keep = IR_MAX_KEEP;
            int64_t nc = binom(ns, keep);
            if (nc > MAX_COMBOS)
                return sr_fail(err, errlen, "controller: node %d of the %s cell has %lld input sets (at most %d)", i,
                               ci ? "reduce" : "normal", (long long)nc, MAX_COMBOS);
            c->keep[ci][i] = keep;
            c->ncomb[ci][i] = (int)nc;
            c->comb[ci][i] = combinations(src, ns, keep, (int)nc);
            if (!c->comb[ci][i]) return sr_fail(err, errlen, "out of memory");
            if (nc > 1) {
                c->t[c->T] = (tok){TOK_INPUTS, ci, i, 0, (int)nc, row};
                row += (int)nc;
                c->T++;
            }
            for (int e = 0; e < keep && c->nops[ci] > 1; e++) {
                c->t[c->T] = (tok){TOK_OP, ci, i, e, c->nops[ci], row};
                row += c->nops[ci];
                c->T++;
            }
        }
    }
    if (!c->T) return sr_fail(err, errlen, "controller: the space leaves nothing to choose");
    return row;
}

/* ---- the graph ------------------------------------------------------------------------------ */

static int sum_terms(ir_graph *g, int *xs, int n, const char *name) {
    char nm[64];
    for (int level = 0; n > 1; level++) {
        int m = 0;
        for (int i = 0; i < n; i += SUM_GROUP, m++) {
            int k = n - i < SUM_GROUP ? n - i : SUM_GROUP;
            snprintf(nm, sizeof nm, "%s.%d.%d", name, level, m);
            xs[m] = k == 1 ? xs[i] : ir_nary(g, IR_OP_ADD, k, xs + i, nm);
        }
        n = m;
    }
    return xs[0];
}

/* The unrolled LSTM for `batch` sequences; with the loss where batch is 1. The weights
 * are made in the same order at any batch, so both graphs share one weight layout. */
static int build(const sr_ctl *c, cgraph *cg, int rows, int batch) {
    ir_graph *g = cg->g = ir_graph_new("controller");
    cg->batch = batch;
    if (!g) return -1;
    const int64_t H = c->o.hidden;
    const ir_init u = ir_init_uniform(c->o.init);
    char nm[96];
    int emb = ir_param(g, "controller.embedding", IR_ROLE_WEIGHT, 2, (int64_t[]){rows, H}, u);
    int wih = ir_param(g, "controller.lstm.weight_ih", IR_ROLE_WEIGHT, 2, (int64_t[]){4 * H, H}, u);
    int whh = ir_param(g, "controller.lstm.weight_hh", IR_ROLE_WEIGHT, 2, (int64_t[]){4 * H, H}, u);
    int b = ir_param(g, "controller.lstm.bias", IR_ROLE_WEIGHT, 1, (int64_t[]){4 * H}, u);
    cg->h0 = ir_input(g, "h0", IR_DTYPE_F32, 2, (int64_t[]){batch, H});
    cg->c0 = ir_input(g, "c0", IR_DTYPE_F32, 2, (int64_t[]){batch, H});
    cg->zero = ir_input(g, "label0", IR_DTYPE_I32, 1, (int64_t[]){batch});
    cg->one = ir_input(g, "label1", IR_DTYPE_I32, 1, (int64_t[]){batch});
    cg->zero11 = ir_input(g, "zero11", IR_DTYPE_F32, 2, (int64_t[]){1, 1});
    cg->coef = ir_input(g, "coef", IR_DTYPE_F32, 1, (int64_t[]){3});
    for (int k = 0; k <= MAX_COMBOS; k++) cg->ones_in[k] = -1;
    int h = cg->h0, cs = cg->c0;
    int *lp = malloc(3 * (size_t)c->T * sizeof *lp), *lse = lp + c->T, *d = lse + c->T;
    if (!lp) return -1;
    for (int t = 0; t < c->T; t++) {
        const tok *k = &c->t[t];
        snprintf(nm, sizeof nm, "id%d", t);
        cg->ids[t] = ir_input(g, nm, IR_DTYPE_I32, 1, (int64_t[]){batch});
        snprintf(nm, sizeof nm, "t%d.x", t);
        int x = ir_embedding(g, cg->ids[t], emb, nm);
        snprintf(nm, sizeof nm, "t%d.gih", t);
        int gi = ir_linear(g, x, wih, b, nm);
        snprintf(nm, sizeof nm, "t%d.ghh", t);
        int gh = ir_linear(g, h, whh, -1, nm);
        snprintf(nm, sizeof nm, "t%d.gates", t);
        int gates = ir_nary(g, IR_OP_ADD, 2, (int[]){gi, gh}, nm);
        int gate[4];
        static const char *gn[4] = {"i", "f", "g", "o"};
        for (int q = 0; q < 4; q++) { /* PyTorch's LSTM gate order */
            snprintf(nm, sizeof nm, "t%d.%s_pre", t, gn[q]);
            int s = ir_slice(g, gates, (int)(q * H), (int)H, nm);
            snprintf(nm, sizeof nm, "t%d.%s", t, gn[q]);
            gate[q] = ir_unary(g, q == 2 ? IR_OP_TANH : IR_OP_SIGMOID, s, nm);
        }
        snprintf(nm, sizeof nm, "t%d.fc", t);
        int fc = ir_binary(g, IR_OP_MUL, gate[1], cs, nm);
        snprintf(nm, sizeof nm, "t%d.ig", t);
        int ig = ir_binary(g, IR_OP_MUL, gate[0], gate[2], nm);
        snprintf(nm, sizeof nm, "t%d.c", t);
        cs = ir_nary(g, IR_OP_ADD, 2, (int[]){fc, ig}, nm);
        snprintf(nm, sizeof nm, "t%d.tanh_c", t);
        int tc = ir_unary(g, IR_OP_TANH, cs, nm);
        snprintf(nm, sizeof nm, "t%d.h", t);
        h = ir_binary(g, IR_OP_MUL, gate[3], tc, nm);
        snprintf(nm, sizeof nm, "controller.decoder%d.weight", t);
        int dw = ir_param(g, nm, IR_ROLE_WEIGHT, 2, (int64_t[]){k->k, H}, u);
        snprintf(nm, sizeof nm, "controller.decoder%d.bias", t);
        int db = ir_param(g, nm, IR_ROLE_WEIGHT, 1, (int64_t[]){k->k}, u);
        snprintf(nm, sizeof nm, "t%d.logits", t);
        int z = cg->logits[t] = ir_linear(g, h, dw, db, nm);
        if (z >= 0) ir_node_set_flags(g, z, IR_FLAG_OUTPUT);
        if (batch > 1) continue;
        snprintf(nm, sizeof nm, "label%d", t);
        cg->labels[t] = ir_input(g, nm, IR_DTYPE_I32, 1, (int64_t[]){batch});
        snprintf(nm, sizeof nm, "t%d.neg_logp", t);
        lp[t] = ir_softmax_ce(g, z, cg->labels[t], nm);
        snprintf(nm, sizeof nm, "t%d.ce0", t);
        lse[t] = ir_softmax_ce(g, z, cg->zero, nm);
        if (cg->ones_in[k->k] < 0) {
            snprintf(nm, sizeof nm, "ones%d", k->k);
            cg->ones_in[k->k] = ir_input(g, nm, IR_DTYPE_F32, 2, (int64_t[]){batch, k->k});
        }
        snprintf(nm, sizeof nm, "t%d.p", t);
        int pr = ir_unary(g, IR_OP_SOFTMAX, z, nm);
        snprintf(nm, sizeof nm, "t%d.pz", t);
        int pz = ir_binary(g, IR_OP_MUL, pr, z, nm);
        snprintf(nm, sizeof nm, "t%d.sum_pz", t);
        int spz = ir_linear(g, pz, cg->ones_in[k->k], -1, nm);
        snprintf(nm, sizeof nm, "t%d.z0", t);
        int z0 = ir_slice(g, z, 0, 1, nm);
        snprintf(nm, sizeof nm, "t%d.d", t);
        d[t] = ir_binary(g, IR_OP_SUB, z0, spz, nm);
    }
    if (batch > 1) {
        free(lp);
        return ir_verify(g);
    }
    cg->s_lp = sum_terms(g, lp, c->T, "sum_neg_logp");
    cg->s_lse = sum_terms(g, lse, c->T, "sum_ce0");
    cg->s_d = sum_terms(g, d, c->T, "sum_d");
    free(lp);
    int ud = ir_nary(g, IR_OP_CONCAT, 2, (int[]){cg->s_d, cg->zero11}, "sum_d_0");
    int sp1 = ir_softmax_ce(g, ud, cg->one, "softplus_d");
    int sp0 = ir_softmax_ce(g, ud, cg->zero, "softplus_minus_d");
    int d1 = ir_binary(g, IR_OP_SUB, sp1, sp0, "sum_d1");
    int loss = ir_wsum(g, cg->coef, 3, (int[]){cg->s_lp, cg->s_lse, d1}, "loss");
    if (loss < 0) return -1;
    ir_node_set_flags(g, cg->s_lp, IR_FLAG_OUTPUT);
    ir_node_set_flags(g, cg->s_lse, IR_FLAG_OUTPUT);
    ir_node_set_flags(g, d1, IR_FLAG_OUTPUT);
    cg->s_d = d1;
    ir_node_set_flags(g, loss, IR_FLAG_LOSS | IR_FLAG_OUTPUT);
    return ir_verify(g);
}

static void cgraph_free(cgraph *cg) {
    if (cg->p) rt_plan_free(cg->p);
    if (cg->g) ir_graph_free(cg->g);
}

void sr_ctl_free(sr_ctl *c) {
    if (!c) return;
    for (int ci = 0; ci < 2; ci++)
        for (int i = 0; i < IR_MAX_NODES; i++) free(c->comb[ci][i]);
    cgraph_free(&c->tr);
    cgraph_free(&c->sm);
    if (c->be) {
        if (c->m) c->be->free(c->be, c->m);
        if (c->v) c->be->free(c->be, c->v);
        if (c->acc) c->be->free(c->be, c->acc);
        c->be->destroy(c->be);
    }
    free(c);
}

/* Builds and plans one graph and sets its constant inputs. */
static int cgraph_open(sr_ctl *c, cgraph *cg, int rows, int batch, char *err, size_t errlen) {
    if (build(c, cg, rows, batch)) return sr_fail(err, errlen, "controller graph: %s", cg->g ? ir_graph_error(cg->g) : "out of memory");
    cg->p = rt_plan_new(cg->g, c->be, &(rt_plan_opts){.seed = c->o.seed, .grads = batch == 1 ? RT_GRAD_W : 0}, err, errlen);
    if (!cg->p) return -1;
    const size_t n = (size_t)batch * (size_t)(c->o.hidden > MAX_COMBOS ? c->o.hidden : MAX_COMBOS);
    float *zeros = calloc(n, sizeof *zeros), *ones = malloc(n * sizeof *ones);
    int32_t *lab = calloc((size_t)batch, sizeof *lab);
    if (!zeros || !ones || !lab) {
        free(zeros);
        free(ones);
        free(lab);
        return sr_fail(err, errlen, "out of memory");
    }
    for (size_t i = 0; i < n; i++) ones[i] = 1.f;
    const size_t hb = (size_t)batch * (size_t)c->o.hidden * sizeof(float);
    rt_set_input(cg->p, cg->h0, zeros, hb);
    rt_set_input(cg->p, cg->c0, zeros, hb);
    if (batch == 1) {
        int32_t one = 1;
        rt_set_input(cg->p, cg->zero, lab, sizeof *lab);
        rt_set_input(cg->p, cg->one, &one, sizeof one);
        rt_set_input(cg->p, cg->zero11, zeros, sizeof *zeros);
        for (int k = 0; k <= MAX_COMBOS; k++)
            if (cg->ones_in[k] >= 0) rt_set_input(cg->p, cg->ones_in[k], ones, (size_t)k * sizeof(float));
    }
    free(zeros);
    free(ones);
    free(lab);
    return 0;
}

sr_ctl *sr_ctl_new(const ir_space *sp, const sr_ctl_opts *o, char *err, size_t errlen) {
    if (sp->kind != IR_SPACE_CNN) {
        sr_fail(err, errlen, "the controller emits convolutional cells only");
        return NULL;
    }
    if (o->hidden < 1 || o->hidden > 4096 || !(o->lr > 0) || !(o->entropy_weight >= 0) ||
        !(o->baseline_decay >= 0 && o->baseline_decay < 1) || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->init > 0)) {
        sr_fail(err, errlen, "controller: hidden %d, lr %g, entropy weight %g, baseline decay %g out of range", o->hidden,
                (double)o->lr, (double)o->entropy_weight, (double)o->baseline_decay);
        return NULL;
    }
    sr_ctl *c = calloc(1, sizeof *c);
    if (!c) {
        sr_fail(err, errlen, "out of memory");
        return NULL;
    }
    c->o = *o;
    c->cell[0] = sp->normal;
    c->cell[1] = sp->reduce;
    int rows = layout(c, err, errlen);
    if (rows < 0) goto fail;
    c->be = rt_backend_cpu_new();
    if (!c->be) {
        sr_fail(err, errlen, "controller: no CPU backend");
        goto fail;
    }
    if (cgraph_open(c, &c->tr, rows, 1, err, errlen) || cgraph_open(c, &c->sm, rows, SAMPLE_LANES, err, errlen)) goto fail;
    if (sr_param_hash(c->tr.g) != sr_param_hash(c->sm.g)) {
        sr_fail(err, errlen, "controller: the sampling graph's weights differ from the training graph's");
        goto fail;
    }
    rt_group gw = rt_plan_group(c->tr.p, IR_ROLE_WEIGHT);
    c->w = gw.data;
    c->gw = gw.grad;
    c->nw = gw.n;
    size_t bytes = (size_t)c->nw * sizeof(float);
    c->m = c->be->alloc(c->be, bytes);
    c->v = c->be->alloc(c->be, bytes);
    c->acc = c->be->alloc(c->be, bytes);
    if (!c->m || !c->v || !c->acc) {
        sr_fail(err, errlen, "out of memory");
        goto fail;
    }
    c->be->memset0(c->be, c->m, bytes);
    c->be->memset0(c->be, c->v, bytes);
    return c;
fail:
    sr_ctl_free(c);
    return NULL;
}

/* ---- tokens and genotypes -------------------------------------------------------------------- */

void sr_ctl_genotype(const sr_ctl *c, const int *a, ir_genotype *gt) {
    memset(gt, 0, sizeof *gt);
    int t = 0;
    for (int ci = 0; ci < 2; ci++) {
        ir_geno_cell *g = ci ? &gt->reduce : &gt->normal;
        g->n_nodes = c->cell[ci].n_nodes;
        for (int i = 0; i < g->n_nodes; i++) {
            int keep = c->keep[ci][i], r = 0;
            if (c->ncomb[ci][i] > 1) r = a[t++];
            g->n_edges[i] = keep;
            for (int e = 0; e < keep; e++) {
                g->e[i][e].src = c->comb[ci][i][r * keep + e];
                g->e[i][e].op = c->ops[ci][c->nops[ci] > 1 ? a[t++] : 0];
            }
        }
    }
}

int sr_ctl_actions(const sr_ctl *c, const ir_genotype *gt, int *a) {
    int t = 0;
    for (int ci = 0; ci < 2; ci++) {
        const ir_geno_cell *g = ci ? &gt->reduce : &gt->normal;
        if (g->n_nodes != c->cell[ci].n_nodes) return -1;
        for (int i = 0; i < g->n_nodes; i++) {
            int keep = c->keep[ci][i], r = -1;
            if (g->n_edges[i] != keep) return -1;
            for (int q = 0; q < c->ncomb[ci][i] && r < 0; q++) {
                int same = 1;
                for (int e = 0; e < keep; e++) same &= c->comb[ci][i][q * keep + e] == g->e[i][e].src;
                if (same) r = q;
            }
            if (r < 0) return -1;
            if (c->ncomb[ci][i] > 1) a[t++] = r;
            for (int e = 0; e < keep; e++) {
                int o = -1;
                for (int q = 0; q < c->nops[ci]; q++)
                    if (c->ops[ci][q] == g->e[i][e].op) o = q;
                if (o < 0) return -1;
                if (c->nops[ci] > 1) a[t++] = o;
            }
        }
    }
    return 0;
}

/* Feeds lanes of token values a[lane * T + t] for t < n (later ones 0) as the LSTM's
 * inputs and, in the training graph, the labels. */
static void feed(sr_ctl *c, cgraph *cg, const int *a, int n) {
    int32_t id[SAMPLE_LANES], lab[SAMPLE_LANES];
    for (int t = 0; t < c->T; t++) {
        for (int l = 0; l < cg->batch; l++) {
            const int *al = a + (size_t)l * (size_t)c->T;
            id[l] = t == 0 ? 0 : c->t[t - 1].base + (t - 1 < n ? al[t - 1] : 0);
            lab[l] = t < n ? al[t] : 0;
        }
        rt_set_input(cg->p, cg->ids[t], id, (size_t)cg->batch * sizeof *id);
        if (cg->batch == 1) rt_set_input(cg->p, cg->labels[t], lab, sizeof *lab);
    }
}

int sr_ctl_sample(sr_ctl *c, int n, const uint64_t *seeds, int greedy, int *a, ir_genotype *gt, char *err,
                  size_t errlen) {
    cgraph *cg = &c->sm;
    rt_group gs = rt_plan_group(cg->p, IR_ROLE_WEIGHT);
    c->be->copy(c->be, gs.data, c->w, c->nw); /* the sampling graph reads the current weights */
    int *lanes = calloc((size_t)SAMPLE_LANES * (size_t)c->T, sizeof *lanes);
    float *z = malloc((size_t)SAMPLE_LANES * MAX_COMBOS * sizeof *z);
    if (!lanes || !z) {
        free(lanes);
        free(z);
        return sr_fail(err, errlen, "out of memory");
    }
    for (int i0 = 0; i0 < n; i0 += SAMPLE_LANES) {
        int nl = n - i0 < SAMPLE_LANES ? n - i0 : SAMPLE_LANES;
        for (int t = 0; t < c->T; t++) {
            feed(c, cg, lanes, t);
            rt_forward(cg->p, 0);
            int k = c->t[t].k;
            rt_read(cg->p, cg->logits[t], z, (size_t)SAMPLE_LANES * (size_t)k * sizeof *z);
            for (int l = 0; l < nl; l++) {
                const float *zl = z + (size_t)l * (size_t)k;
                double mx = zl[0], s = 0, cum = 0;
                int best = 0;
                for (int j = 1; j < k; j++)
                    if (zl[j] > mx) mx = zl[best = j];
                for (int j = 0; j < k; j++) s += exp((double)zl[j] - mx);
                if (!isfinite(s) || !isfinite(mx)) {
                    free(lanes);
                    free(z);
                    return sr_fail(err, errlen, "controller: the logits are not finite (step %lld)", (long long)c->steps);
                }
                int *v = &lanes[(size_t)l * (size_t)c->T + (size_t)t];
                if (greedy) {
                    *v = best;
                    continue;
                }
                double u = (double)rt_rng_uniform(seeds[i0 + l], (uint64_t)t) * s;
                *v = k - 1;
                for (int j = 0; j < k; j++) {
                    cum += exp((double)zl[j] - mx);
                    if (u < cum) {
                        *v = j;
                        break;
                    }
                }
            }
        }
        memcpy(a + (size_t)i0 * (size_t)c->T, lanes, (size_t)nl * (size_t)c->T * sizeof *lanes);
        if (gt)
            for (int l = 0; l < nl; l++) sr_ctl_genotype(c, lanes + (size_t)l * (size_t)c->T, &gt[i0 + l]);
    }
    free(lanes);
    free(z);
    return 0;
}

int sr_ctl_eval(sr_ctl *c, const int *a, int grad, float c_lp, float c_ent, double *neg_logp, double *entropy,
                char *err, size_t errlen) {
    cgraph *cg = &c->tr;
    for (int t = 0; t < c->T; t++)
        if (a[t] < 0 || a[t] >= c->t[t].k) return sr_fail(err, errlen, "controller: token %d value %d outside [0, %d)", t, a[t], c->t[t].k);
    const float coef[3] = {c_lp, -c_ent, -c_ent};
    rt_set_input(cg->p, cg->coef, coef, sizeof coef);
    feed(c, cg, a, c->T);
    float loss = rt_forward(cg->p, grad);
    float lp, lse, d;
    rt_read(cg->p, cg->s_lp, &lp, sizeof lp);
    rt_read(cg->p, cg->s_lse, &lse, sizeof lse);
    rt_read(cg->p, cg->s_d, &d, sizeof d);
    if (neg_logp) *neg_logp = lp;
    if (entropy) *entropy = (double)lse + (double)d;
    if (!isfinite(loss)) return sr_fail(err, errlen, "controller: the loss is not finite (step %lld)", (long long)c->steps);
    if (grad && rt_backward(cg->p, RT_GRAD_W)) return sr_fail(err, errlen, "controller: backward failed");
    return 0;
}

/* The int64 checkpoint entry, kept current so that a loop's table can be made once. */
static void sync_meta(sr_ctl *c) {
    int64_t bits;
    memcpy(&bits, &c->baseline, sizeof bits);
    c->meta[0] = c->steps;
    c->meta[1] = bits;
    c->meta[2] = c->have_baseline;
}

int sr_ctl_update(sr_ctl *c, int n, const int *a, const double *r, char *err, size_t errlen) {
    if (n < 1) return sr_fail(err, errlen, "controller: an update needs at least one sample");
    double mean = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(r[i])) return sr_fail(err, errlen, "controller: reward %d is not finite", i);
        mean += r[i];
    }
    mean /= n;
    if (!c->have_baseline) {
        c->baseline = mean;
        c->have_baseline = 1;
    }
    c->be->memset0(c->be, c->acc, (size_t)c->nw * sizeof(float));
    for (int i = 0; i < n; i++) {
        float adv = (float)((r[i] - c->baseline) / n);
        if (sr_ctl_eval(c, a + (size_t)i * (size_t)c->T, 1, adv, c->o.entropy_weight / (float)n, NULL, NULL, err, errlen))
            return -1;
        c->be->axpy(c->be, c->acc, 1.f, c->gw, c->nw);
    }
    c->steps++;
    c->be->adam_step(c->be, c->w, c->m, c->v, c->acc, c->nw, c->o.lr, c->o.beta1, c->o.beta2, 1e-8f, 0.f,
                     (int)c->steps);
    c->baseline = c->o.baseline_decay * c->baseline + (1.0 - c->o.baseline_decay) * mean;
    sync_meta(c);
    return 0;
}

/* ---- checkpoints ------------------------------------------------------------------------------- */

void sr_ctl_ckpt_entries(sr_ctl *c, sr_ckpt_entry *e) {
    e[0] = (sr_ckpt_entry){SR_CKPT_I64, "controller/state", c->meta, 3, 0};
    e[1] = (sr_ckpt_entry){SR_CKPT_HOST, "controller/weights", c->w, c->nw, 0};
    e[2] = (sr_ckpt_entry){SR_CKPT_HOST, "controller/adam_m", c->m, c->nw, 0};
    e[3] = (sr_ckpt_entry){SR_CKPT_HOST, "controller/adam_v", c->v, c->nw, 0};
}

void sr_ctl_ckpt_restored(sr_ctl *c) {
    c->steps = c->meta[0];
    memcpy(&c->baseline, &c->meta[1], sizeof c->baseline);
    c->have_baseline = c->meta[2] != 0;
}
