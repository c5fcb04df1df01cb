/* cgen.c — see cgen.h. Three stages: analyse (which nodes are aliases, zeros, fused
 * ReLUs, and which ops are emitted), plan (the arena by liveness over the schedule), and
 * write (header, weights, one static function per op, the entry points). */
#include "cgen.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ctext.h"
#include "fold.h"

enum { K_NONE, K_EMIT, K_ALIAS, K_ZERO }; /* what a node becomes */

#define ALIGN_FLOATS 16 /* 64-byte buffers */

typedef struct src {
    int node;  /* buffer owner; -1: a zero the op handles itself (CONCAT) */
    int relu;  /* read through a fused ReLU */
    int shift; /* read through a fused SHIFT (x[:, :, 1:, 1:]) */
} src;

typedef struct cgs {
    const cg_model *m;
    const ir_graph *g;
    int n, max_batch;
    const char *P; /* symbol prefix: the model name */
    cg_fold fold;
    int *rep;            /* K_ALIAS: the node whose value this is */
    unsigned char *kind; /* K_* */
    unsigned char *need, *live, *mat, *virt, *relu_out, *notconv, *vshift;
    unsigned char *inplace; /* a planewise op writing over its dying input (plan) */
    unsigned char *cfuse;   /* an op to write its output in the slice of the concat that reads it (plan) */
    int *cpart;          /* the concat whose slice an op writes its output into, or -1 (plan) */
    int64_t *cpoff;      /* that slice's offset in the concat, in floats */
    int *cons;           /* readers among emitted ops */
    int *addin;          /* per emitted op: a value its output write adds (a fused ADD), or -1 */
    int *sched, n_sched;
    int64_t *off;        /* arena offset in floats; -1 none */
    int64_t *scratch;    /* floats of arena scratch an op needs while it runs (0: none) */
    int64_t *soff;       /* its offset */
    int64_t arena_floats;
    int64_t weight_floats; /* floats of the constant arrays written so far */
    int out_owner;
    int uses_relu;
    FILE *f;
    char *err;
    size_t errlen;
} cgs;

static int fail(cgs *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const ir_node *ND(const cgs *s, int i) { return ir_graph_node(s->g, i); }
static int64_t per_sample(const ir_node *nd) { return ir_node_numel(nd) / nd->shape[0]; }
static int64_t plane_of(const ir_node *nd) {
    int64_t k = 1;
    for (int d = 2; d < nd->ndim; d++) k *= nd->shape[d];
    return k;
}

static int own(const cgs *s, int j) {
    while (s->kind[j] == K_ALIAS) j = s->rep[j];
    return j;
}
static int is_zero(const cgs *s, int j) { return s->kind[own(s, j)] == K_ZERO; }
static int is_param(const cgs *s, int j) { return ND(s, j)->op == IR_OP_PARAM; }

static src resolve(const cgs *s, int j) {
    int o = own(s, j);
    if (s->virt[o]) return (src){own(s, ND(s, o)->inputs[0]), 1, 0};
    if (s->vshift[o]) {
        src r = resolve(s, ND(s, o)->inputs[0]);
        r.shift = 1;
        return r;
    }
    return (src){o, 0, 0};
}

static int is_pointwise(const cgs *s, int i);

/* Activation inputs an op reads (PARAM inputs are compile-time constants). ADD and MEAN
 * drop zero terms; CONCAT keeps them as node -1 (filled with memset). */
static int op_srcs(const cgs *s, int i, src *out) {
    const ir_node *nd = ND(s, i);
    int k = 0;
    if (s->kind[i] == K_ZERO) return 0; /* a materialised zero reads nothing */
    for (int j = 0; j < nd->n_inputs; j++) {
        int in = nd->inputs[j];
        if (in < 0 || is_param(s, in)) continue;
        if (is_zero(s, in) && (nd->op == IR_OP_ADD || nd->op == IR_OP_MEAN)) continue;
        if (is_zero(s, in) && nd->op == IR_OP_CONCAT) { out[k++] = (src){-1, 0, 0}; continue; }
        out[k++] = resolve(s, in);
    }
    if (s->addin[i] >= 0) out[k++] = (src){s->addin[i], 0, 0};
    return k;
}

/* ---- analysis ------------------------------------------------------------------------ */

static int analyse(cgs *s) {
    const cg_model *m = s->m;
    int n = s->n;
    if (cg_model_check_io(m, s->err, s->errlen)) return -1;
    const ir_node *xo = ND(s, m->output);
    cg_mark_needed(s->g, m->output, s->need); /* what the output depends on */
    for (int pass = 0; pass < 2; pass++) /* ops first: they say more than a stray input */
    for (int i = 0; i < n; i++) {
        if (!s->need[i]) continue;
        const ir_node *nd = ND(s, i);
        if ((nd->op == IR_OP_INPUT || nd->op == IR_OP_PARAM) != pass) continue;
        switch (nd->op) {
        case IR_OP_MIXED: case IR_OP_WSUM:
            return fail(s, "node '%s' (%s) belongs to a search supernet: export the derived network, not the supernet",
                        nd->name, ir_op_name(nd->op));
        case IR_OP_SOFTMAX_CE:
            return fail(s, "node '%s' is a loss; pass the logits node as the model output", nd->name);
        case IR_OP_EMBEDDING:
            return fail(s, "node '%s': embedding (recurrent models) is not supported by the C emitter yet", nd->name);
        case IR_OP_INPUT:
            if (i != m->input) return fail(s, "the output needs input '%s' besides the image input", nd->name);
            break;
        case IR_OP_PARAM:
            if (!m->values || !m->values[i]) return fail(s, "parameter '%s' has no value", nd->name);
            break;
        case IR_OP_BATCHNORM:
            if (nd->iattr[IR_A_BN_BATCH_STATS])
                return fail(s, "batchnorm '%s' always uses batch statistics (a search-time BN); export an evaluation network",
                            nd->name);
            break;
        default:
            break;
        }
        if (nd->dtype != IR_DTYPE_F32) return fail(s, "node '%s' is not float", nd->name);
    }


    /* kinds: aliases and zeros, in topological order */
    for (int i = 0; i < n; i++) {
        s->rep[i] = i;
        if (!s->need[i]) continue;
        const ir_node *nd = ND(s, i);
        const int *in = nd->inputs;
        int z0 = nd->n_inputs > 0 && in[0] >= 0 && !is_param(s, in[0]) && is_zero(s, in[0]);
        unsigned char k = K_EMIT;
        switch (nd->op) {
        case IR_OP_INPUT: case IR_OP_PARAM: k = K_NONE; break;
        case IR_OP_IDENTITY: case IR_OP_DROPOUT: case IR_OP_DROP_PATH: k = K_ALIAS; s->rep[i] = in[0]; break;
        case IR_OP_ZERO: k = K_ZERO; break;
        case IR_OP_BATCHNORM:
            if (s->fold.folded[i]) { k = K_ALIAS; s->rep[i] = in[0]; }
            break;
        case IR_OP_CONV2D: if (z0 && s->fold.conv_bn[i] < 0) k = K_ZERO; break;
        case IR_OP_ADD: case IR_OP_MEAN: case IR_OP_CONCAT: {
            int nz = 0, last = -1;
            for (int j = 0; j < nd->n_inputs; j++)
                if (!is_zero(s, in[j])) { nz++; last = in[j]; }
            if (nz == 0) k = K_ZERO;
            else if (nz == 1 && nd->op == IR_OP_ADD) { k = K_ALIAS; s->rep[i] = last; }
            break;
        }
        case IR_OP_MUL: if (z0 || is_zero(s, in[1])) k = K_ZERO; break;
        case IR_OP_SUB:
            if (is_zero(s, in[1])) {
                if (z0) k = K_ZERO;
                else { k = K_ALIAS; s->rep[i] = in[0]; }
            }
            break;
        case IR_OP_RELU: case IR_OP_TANH: case IR_OP_SCALE: case IR_OP_SLICE: case IR_OP_SHIFT: case IR_OP_GAP:
        case IR_OP_MAXPOOL: case IR_OP_AVGPOOL:
            if (z0) k = K_ZERO;
            break;
        case IR_OP_LINEAR: if (z0 && in[2] < 0) k = K_ZERO; break;
        default: break;
        }
        s->kind[i] = k;
    }

    /* live: what the emitted ops read, back from the output's owner */
    s->out_owner = own(s, m->output);
    if (ND(s, s->out_owner)->op == IR_OP_PARAM) return fail(s, "output '%s' is a parameter", xo->name);
    s->live[s->out_owner] = 1;
    if (s->kind[s->out_owner] == K_ZERO) s->mat[s->out_owner] = 1;
    for (int i = n - 1; i >= 0; i--) {
        if (!s->live[i] || s->kind[i] != K_EMIT) continue;
        const ir_node *nd = ND(s, i);
        for (int j = 0; j < nd->n_inputs; j++) {
            int in = nd->inputs[j];
            if (in < 0 || is_param(s, in)) continue;
            int o = own(s, in);
            if (s->kind[o] == K_ZERO) {
                if (nd->op == IR_OP_ADD || nd->op == IR_OP_MEAN || nd->op == IR_OP_CONCAT) continue;
                s->mat[o] = 1;
            }
            s->live[o] = 1;
        }
    }

    /* readers, then ReLU fusion */
    s->notconv[s->out_owner] = 1;
    for (int i = 0; i < n; i++) {
        if (!s->live[i] || s->kind[i] != K_EMIT) continue;
        src r[IR_MAX_IATTR + 8];
        int k = op_srcs(s, i, r);
        for (int j = 0; j < k; j++) {
            if (r[j].node < 0) continue;
            s->cons[r[j].node]++;
            if (ND(s, i)->op != IR_OP_CONV2D && ND(s, i)->op != IR_OP_SHIFT) s->notconv[r[j].node] = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ND(s, i);
        if (!s->live[i] || s->kind[i] != K_EMIT || nd->op != IR_OP_RELU || i == s->out_owner) continue;
        if (s->cons[i] > 0 && !s->notconv[i]) { /* read only by convs: fuse into their reads */
            s->virt[i] = 1;
            continue;
        }
        int p = own(s, nd->inputs[0]);
        const ir_node *pn = ND(s, p);
        if (s->kind[p] == K_EMIT && !s->virt[p] && s->cons[p] == 1 && p != s->out_owner &&
            (pn->op == IR_OP_CONV2D || pn->op == IR_OP_BATCHNORM)) { /* fuse into the producer's write */
            s->relu_out[p] = 1;
            s->kind[i] = K_ALIAS;
            s->rep[i] = p;
        }
    }

    /* SHIFT fusion: a SHIFT read only by strided 1x1 convs (FactorizedReduce) is read by
     * their gathers at an offset of one row and column instead of being copied */
    for (int i = 0; i < n; i++) {
        if (!s->live[i] || s->kind[i] != K_EMIT || ND(s, i)->op != IR_OP_SHIFT || i == s->out_owner || s->virt[i])
            continue;
        int ok = s->cons[i] > 0;
        for (int j = 0; j < n && ok; j++) {
            if (!s->live[j] || s->kind[j] != K_EMIT || s->virt[j]) continue;
            src r[IR_MAX_IATTR + 8];
            int k = op_srcs(s, j, r);
            for (int t = 0; t < k; t++)
                if (r[t].node == i) {
                    const ir_node *c = ND(s, j);
                    ok &= c->op == IR_OP_CONV2D && is_pointwise(s, j) && t == 0 &&
                          (c->iattr[IR_A_CONV_STRIDE_H] != 1 || c->iattr[IR_A_CONV_STRIDE_W] != 1);
                }
        }
        s->vshift[i] = (unsigned char)ok;
    }

    /* ADD fusion: a two-term ADD one of whose terms is a conv or pool read by nothing
     * else (and scheduled after the other term) becomes that op's output write, y = op + other */
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ND(s, i);
        if (!s->live[i] || s->kind[i] != K_EMIT || nd->op != IR_OP_ADD || i == s->out_owner) continue;
        src r[IR_MAX_IATTR + 8];
        if (op_srcs(s, i, r) != 2 || r[0].node < 0 || r[1].node < 0 || r[0].relu || r[1].relu) continue;
        for (int t = r[0].node > r[1].node ? 0 : 1, tries = 0; tries < 2; tries++, t = 1 - t) {
            int o = r[t].node, other = r[1 - t].node;
            int op = ND(s, o)->op;
            if (s->kind[o] != K_EMIT || s->virt[o] || s->relu_out[o] || s->cons[o] != 1 || o == s->out_owner ||
                s->addin[o] >= 0 || other >= o || !(op == IR_OP_CONV2D || op == IR_OP_MAXPOOL || op == IR_OP_AVGPOOL))
                continue;
            s->addin[o] = other;
            s->kind[i] = K_ALIAS;
            s->rep[i] = o;
            break;
        }
    }

    /* schedule */
    for (int i = 0; i < n; i++) {
        if (!s->live[i]) continue;
        if ((s->kind[i] == K_EMIT && !s->virt[i] && !s->vshift[i]) || (s->kind[i] == K_ZERO && s->mat[i]))
            s->sched[s->n_sched++] = i;
        if (s->virt[i] || s->relu_out[i] || (s->kind[i] == K_EMIT && ND(s, i)->op == IR_OP_RELU)) s->uses_relu = 1;
    }
    return 0;
}

/* ---- arena planning ------------------------------------------------------------------- */

static int64_t aligned(int64_t floats) { return (floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static int is_planewise(const cgs *s, int i);

/* A planewise op (depthwise conv, pool: emit_planewise) may write its output over its
 * first input when that input dies at it: by the time output channel c is written,
 * input channels <= c + 2 are in the scratch's phase planes, and output channel c ends
 * at (c + 1) * P * Q <= (c + 1) * H * W, before input channel c + 1 starts. Not when the
 * fused ADD's other term is that same input (it is read while the output is written). */
static int inplace_src(const cgs *s, int i, const int *last, int t) {
    if (s->kind[i] != K_EMIT || i == s->out_owner || !is_planewise(s, i)) return -1;
    src r[IR_MAX_IATTR + 8];
    op_srcs(s, i, r);
    int x = r[0].node;
    if (x < 0 || s->off[x] < 0 || last[x] != t || s->addin[i] == x || s->cpart[x] >= 0) return -1;
    return aligned(per_sample(ND(s, i))) <= aligned(per_sample(ND(s, x))) ? x : -1;
}

/* Whether input j of concat c (of its k sources r) can be written straight into its slice:
 * not through a fused ReLU or shift, owned by an emitted op other than a concat, not the
 * output, read once by c, and not already a part of another concat. */
static int concat_part(const cgs *s, int c, int j, const src *r, int k) {
    if (r[j].node < 0 || r[j].relu || r[j].shift) return 0;
    int p = r[j].node;
    if (s->kind[p] != K_EMIT || ND(s, p)->op == IR_OP_CONCAT || p == s->out_owner) return 0;
    for (int u = 0; u < k; u++)
        if (u != j && r[u].node == p) return 0;
    return s->cpart[p] < 0 || s->cpart[p] == c;
}

/* Assigns the ops marked in cfuse to the slices of the concats that read them (cpart, cpoff). */
static void mark_concat_parts(cgs *s) {
    for (int i = 0; i < s->n; i++) s->cpart[i] = -1;
    for (int t = 0; t < s->n_sched; t++) {
        int c = s->sched[t];
        if (s->kind[c] != K_EMIT || ND(s, c)->op != IR_OP_CONCAT || c == s->out_owner) continue;
        const ir_node *nd = ND(s, c);
        src r[IR_MAX_IATTR + 8];
        int k = op_srcs(s, c, r);
        int64_t off = 0, HW = plane_of(nd);
        for (int j = 0; j < k; j++) { /* op_srcs keeps CONCAT's inputs one for one */
            if (s->cfuse[r[j].node] && concat_part(s, c, j, r, k)) {
                s->cpart[r[j].node] = c;
                s->cpoff[r[j].node] = off * HW;
            }
            off += ND(s, nd->inputs[j])->shape[1];
        }
    }
}

/* The same buffers placed again offline (cg_arena_pack), kept where that needs less than
 * the online plan. Blocks: an op's output (with the outputs written over it in place, and a concat with
 * the parts written in its slices), live from its first writer to its last reader; a
 * scratch, live at its op only. Uses the in-place and slice decisions of the online plan. */
static int plan_by_size(cgs *s, const int *last) {
    int n = s->n, ns = s->n_sched, nb = 0;
    cg_life *b = malloc(sizeof *b * (size_t)(2 * ns + 1));
    int *blk = malloc(sizeof *blk * (size_t)n);
    int64_t *moff = calloc((size_t)n, sizeof *moff), *sblk = malloc(sizeof *sblk * (size_t)n);
    if (!b || !blk || !moff || !sblk) {
        free(b); free(blk); free(moff); free(sblk);
        return fail(s, "out of memory");
    }
    for (int i = 0; i < n; i++) { blk[i] = -1; sblk[i] = -1; }
    for (int t = 0; t < ns; t++) {
        int i = s->sched[t], end = last[i] < 0 ? t : last[i];
        if (s->cpart[i] >= 0) {
            int c = s->cpart[i];
            if (blk[c] < 0) { blk[c] = nb; b[nb++] = (cg_life){aligned(per_sample(ND(s, c))), 0, t, t}; }
            blk[i] = blk[c];
            moff[i] = s->cpoff[i];
        } else if (blk[i] >= 0) { /* a concat placed with its first part */
        } else if (s->inplace[i]) {
            src r[IR_MAX_IATTR + 8];
            op_srcs(s, i, r);
            blk[i] = blk[r[0].node];
            moff[i] = moff[r[0].node];
        } else if (i != s->out_owner) {
            blk[i] = nb;
            b[nb++] = (cg_life){aligned(per_sample(ND(s, i))), 0, t, t};
        }
        if (blk[i] >= 0 && b[blk[i]].end < end) b[blk[i]].end = end;
        if (s->scratch[i] > 0) { sblk[i] = nb; b[nb++] = (cg_life){aligned(s->scratch[i]), 0, t, t}; }
    }
    int64_t top = cg_arena_pack(b, nb);
    if (top < 0) { free(b); free(blk); free(moff); free(sblk); return fail(s, "out of memory"); }
    if (top < s->arena_floats) {
        s->arena_floats = top;
        for (int i = 0; i < n; i++) {
            if (blk[i] >= 0) s->off[i] = b[blk[i]].off + moff[i];
            if (sblk[i] >= 0) s->soff[i] = b[sblk[i]].off;
        }
    }
    free(b); free(blk); free(moff); free(sblk);
    return 0;
}

/* The greedy liveness rule: each op's output takes the best-fitting free block, and what
 * an op read last is given back after it. A planewise op may take over its dying input's
 * block (inplace_src); the parts of a fused concat (cfuse) are written in its slices, its
 * block taken when the first part runs and kept until the last reader of it or of a part. */
static int plan(cgs *s) {
    int n = s->n;
    int *last = malloc((size_t)n * sizeof *last);
    cg_blk *fr = malloc((size_t)(2 * s->n_sched + 2) * sizeof *fr);
    unsigned char *moved = calloc((size_t)n, 1);
    if (!last || !fr || !moved) { free(last); free(fr); free(moved); return fail(s, "out of memory"); }
    mark_concat_parts(s);
    for (int i = 0; i < n; i++) { last[i] = -1; s->off[i] = -1; s->soff[i] = -1; s->inplace[i] = 0; }
    for (int t = 0; t < s->n_sched; t++) {
        src r[IR_MAX_IATTR + 8];
        int k = op_srcs(s, s->sched[t], r);
        for (int j = 0; j < k; j++)
            if (r[j].node >= 0) last[r[j].node] = t;
    }
    for (int i = 0; i < n; i++)
        if (s->cpart[i] >= 0 && last[i] > last[s->cpart[i]]) last[s->cpart[i]] = last[i];
    int nf = 0;
    int64_t top = 0;
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t], x = s->cpart[i] >= 0 ? -1 : inplace_src(s, i, last, t);
        int64_t tail = 0; /* a smaller output in its input's block gives the rest back after the op */
        if (s->cpart[i] >= 0) { /* into its concat's slice: the concat's block from its first part on */
            int c = s->cpart[i];
            if (s->off[c] < 0) s->off[c] = cg_arena_take(fr, &nf, &top, aligned(per_sample(ND(s, c))));
            s->off[i] = s->off[c] + s->cpoff[i];
            moved[i] = 1;
        } else if (s->off[i] >= 0) { /* a fused concat: placed with its first part */
        } else if (x >= 0) { /* the output takes over its input's block */
            tail = aligned(per_sample(ND(s, x))) - aligned(per_sample(ND(s, i)));
            s->off[i] = s->off[x];
            s->inplace[i] = 1;
            moved[x] = 1;
        } else if (i != s->out_owner) {
            s->off[i] = cg_arena_take(fr, &nf, &top, aligned(per_sample(ND(s, i))));
        }
        if (s->scratch[i] > 0) { /* placed while the inputs and the output are live, freed right away */
            s->soff[i] = cg_arena_take(fr, &nf, &top, aligned(s->scratch[i]));
            cg_arena_give(fr, &nf, s->soff[i], aligned(s->scratch[i]));
        }
        if (tail > 0) cg_arena_give(fr, &nf, s->off[i] + aligned(per_sample(ND(s, i))), tail);
        /* release what t read last (and an output nobody reads) */
        for (int u = 0; u <= t; u++) {
            int j = s->sched[u];
            if (s->off[j] < 0 || moved[j] || (last[j] != t && !(last[j] < 0 && u == t))) continue;
            cg_arena_give(fr, &nf, s->off[j], aligned(per_sample(ND(s, j))));
        }
    }
    s->arena_floats = top;
    int rc = plan_by_size(s, last);
    free(moved);
    free(last);
    free(fr);
    return rc;
}

/* Schedule order for a smaller arena: each op in turn is tried as early as its inputs
 * allow (right after the last of their producers), kept there where the arena shrinks.
 * An op that reads a large tensor late keeps that tensor live over everything in between
 * (in a DARTS network the stem's output, read by the second cell's preprocessing, is live
 * over the whole first cell); run early, the tensor dies early. */
static int order_srcs(void *ctx, int i, int *out) {
    const cgs *s = ctx;
    src r[IR_MAX_IATTR + 8];
    int k = op_srcs(s, i, r), m = 0;
    for (int j = 0; j < k && m < 64; j++)
        if (r[j].node >= 0) out[m++] = r[j].node;
    return m;
}
static int64_t order_plan(void *ctx) {
    cgs *s = ctx;
    return plan(s) ? -1 : s->arena_floats;
}
static int plan_order(cgs *s) {
    return cg_arena_hoist(s->sched, s->n_sched, s->n, s, order_srcs, order_plan) ? fail(s, "out of memory") : 0;
}

/* Which concat parts are written in their slices, concat by concat in schedule order: of
 * its parts, the m computed last for the m (0 to all) that plans the smallest arena (ties:
 * the most). A part computed long before its concat holds the whole concat's block from
 * then on, which can cost more than the copy saves; and one part alone can cost more than
 * all of them together (its slice is live beside the other parts' own buffers). */
static int plan_concats(cgs *s) {
    int *pos = malloc(sizeof *pos * (size_t)(s->n > 0 ? s->n : 1));
    if (!pos) return fail(s, "out of memory");
    for (int t = 0; t < s->n_sched; t++) pos[s->sched[t]] = t;
    if (plan(s)) { free(pos); return -1; }
    int64_t best = s->arena_floats;
    for (int t = 0; t < s->n_sched; t++) {
        int c = s->sched[t];
        if (s->kind[c] != K_EMIT || ND(s, c)->op != IR_OP_CONCAT || c == s->out_owner) continue;
        src r[IR_MAX_IATTR + 8];
        int part[IR_MAX_IATTR + 8], np = 0, k = op_srcs(s, c, r);
        for (int j = 0; j < k; j++) {
            if (!concat_part(s, c, j, r, k) || s->cfuse[r[j].node]) continue;
            int u = np++; /* latest first */
            while (u > 0 && pos[part[u - 1]] < pos[r[j].node]) { part[u] = part[u - 1]; u--; }
            part[u] = r[j].node;
        }
        int best_m = 0;
        for (int m = 1; m <= np; m++) {
            s->cfuse[part[m - 1]] = 1;
            if (plan(s)) { free(pos); return -1; }
            if (s->arena_floats <= best) { best = s->arena_floats; best_m = m; }
        }
        for (int m = best_m; m < np; m++) s->cfuse[part[m]] = 0;
    }
    free(pos);
    return plan(s);
}

/* Whether every input of concat c is written in its slice by its producer (nothing to copy). */
static int concat_free(const cgs *s, int c) {
    if (s->kind[c] != K_EMIT || ND(s, c)->op != IR_OP_CONCAT) return 0;
    src r[IR_MAX_IATTR + 8];
    int k = op_srcs(s, c, r);
    for (int j = 0; j < k; j++)
        if (r[j].node < 0 || s->cpart[r[j].node] != c) return 0;
    return 1;
}

/* ---- writing helpers -------------------------------------------------------------------- */

#define W(...) fprintf(s->f, __VA_ARGS__)

/* An exact float literal: hex float, or a <math.h> constant. */
static void put_float(cgs *s, float v) {
    if (isnan(v)) W("NAN");
    else if (isinf(v)) W(v > 0 ? "INFINITY" : "-INFINITY");
    else W("%af", (double)v);
}

static void put_array(cgs *s, const char *what, int node, const float *v, int64_t count) {
    s->weight_floats += count;
    W("static const float %s_%s%d[%lld] = {", s->P, what, node, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        W(i % 6 ? " " : "\n    ");
        put_float(s, v[i]);
        W(i + 1 < count ? "," : "\n");
    }
    W("};\n");
}

static const char *rd(int relu) { return relu ? "_relu" : "_id"; }

/* ---- kernel shapes ------------------------------------------------------------------------ */

/* A 1x1 convolution without padding or groups (any stride): emitted as a blocked GEMM. */
static int is_pointwise(const cgs *s, int i) {
    const ir_node *nd = ND(s, i), *w = ND(s, nd->inputs[1]);
    const int64_t *ia = nd->iattr;
    return w->shape[2] == 1 && w->shape[3] == 1 && ia[IR_A_CONV_PAD_H] == 0 && ia[IR_A_CONV_PAD_W] == 0 &&
           ia[IR_A_CONV_GROUPS] == 1;
}

/* The flat loops' length is a multiple of this (one 512-bit vector); the phase planes
 * and the output plane get WIN_V floats of slack so the extra reads and writes stay in
 * the scratch (their results are never copied out). */
#define WIN_V 16

/* A sliding-window op (a convolution that is not pointwise, a pool) lowered onto phase
 * planes (emit_planewise, emit_dense, emit_direct). Stride s splits the padded input
 * plane (Hp, Wp) into sh * sw phase planes of (Hs, Ws): phase (a, b) holds padded pixels
 * (h * sh + a, w * sw + b). A tap at padded offset (R, T) from an output's window origin
 * is then phase (R % sh, T % sw) at (p + R / sh, q + T / sw): every tap of every stride
 * and dilation is a unit-stride read, and output (p, q) is flat position i = p * Ws + q
 * of each phase plane. */
typedef struct win {
    int C, H, Wd, P, Q;            /* input channels and plane, output plane */
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int Hs, Ws;                    /* one phase plane */
    int64_t plane;                 /* floats of one input channel's phase planes */
    int L;                         /* flat outputs per plane: (P - 1) * Ws + Q, rounded up to
                                      WIN_V so no vector loop has a scalar remainder */
} win;

static win win_make(const ir_node *xn, const ir_node *yn, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    win w = {(int)xn->shape[1], (int)xn->shape[2], (int)xn->shape[3], (int)yn->shape[2], (int)yn->shape[3],
             kh, kw, sh, sw, ph, pw, dh, dw, 0, 0, 0, 0};
    w.Hs = (w.H + 2 * ph + sh - 1) / sh;
    w.Ws = (w.Wd + 2 * pw + sw - 1) / sw;
    w.plane = (int64_t)sh * sw * w.Hs * w.Ws;
    w.L = ((w.P - 1) * w.Ws + w.Q + WIN_V - 1) / WIN_V * WIN_V;
    return w;
}

static win win_of(const cgs *s, int i) {
    const ir_node *nd = ND(s, i), *xn = ND(s, nd->inputs[0]);
    const int64_t *ia = nd->iattr;
    if (nd->op == IR_OP_CONV2D) {
        const ir_node *w = ND(s, nd->inputs[1]);
        return win_make(xn, nd, (int)w->shape[2], (int)w->shape[3], (int)ia[IR_A_CONV_STRIDE_H], (int)ia[IR_A_CONV_STRIDE_W],
                        (int)ia[IR_A_CONV_PAD_H], (int)ia[IR_A_CONV_PAD_W], (int)ia[IR_A_CONV_DIL_H],
                        (int)ia[IR_A_CONV_DIL_W]);
    }
    int k = (int)ia[IR_A_POOL_K], st = (int)ia[IR_A_POOL_STRIDE], pad = (int)ia[IR_A_POOL_PAD];
    return win_make(xn, nd, k, k, st, st, pad, pad, 1, 1);
}

/* Offset of tap (r, t) in the phase planes, relative to flat output position i. */
static long long win_tap(const win *w, int r, int t) {
    int R = r * w->dh, T = t * w->dw;
    return (long long)((R % w->sh) * w->sw + T % w->sw) * w->Hs * w->Ws + (long long)(R / w->sh) * w->Ws + T / w->sw;
}

/* Input channels a windowed op holds in the scratch at once (a conv group's; 1 for a pool). */
static int win_channels(const cgs *s, int i) {
    const ir_node *nd = ND(s, i);
    return nd->op == IR_OP_CONV2D ? (int)ND(s, nd->inputs[1])->shape[1] : 1;
}

/* One input and one output channel per group (any stride and dilation): emit_planewise. */
static int is_depthwise(const cgs *s, int i) {
    const ir_node *nd = ND(s, i), *w = ND(s, nd->inputs[1]);
    return !is_pointwise(s, i) && nd->iattr[IR_A_CONV_GROUPS] == nd->shape[1] && w->shape[0] == nd->shape[1] &&
           w->shape[1] == 1;
}

/* Depthwise convolutions and pools: emit_planewise. */
static int is_planewise(const cgs *s, int i) {
    const ir_node *nd = ND(s, i);
    return (nd->op == IR_OP_CONV2D && is_depthwise(s, i)) || nd->op == IR_OP_MAXPOOL || nd->op == IR_OP_AVGPOOL;
}

/* Arena scratch of the ops that need it while they run: a windowed op's phase planes and
 * one output plane at the phase width; a strided pointwise conv's gathered input. */
static void size_scratch(cgs *s) {
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        const ir_node *nd = ND(s, i);
        if (s->kind[i] != K_EMIT) continue;
        if (nd->op == IR_OP_CONV2D && is_pointwise(s, i)) {
            if (nd->iattr[IR_A_CONV_STRIDE_H] != 1 || nd->iattr[IR_A_CONV_STRIDE_W] != 1)
                s->scratch[i] = ND(s, nd->inputs[0])->shape[1] * plane_of(nd); /* the gathered input */
            continue;
        }
        if (nd->op != IR_OP_CONV2D && nd->op != IR_OP_MAXPOOL && nd->op != IR_OP_AVGPOOL) continue;
        win w = win_of(s, i);
        if (nd->op != IR_OP_CONV2D || is_depthwise(s, i)) /* two of each, see emit_planewise */
            s->scratch[i] = 2 * aligned(w.plane + WIN_V) + 2 * aligned((int64_t)w.P * w.Ws + WIN_V);
        else if (nd->op == IR_OP_CONV2D && nd->iattr[IR_A_CONV_GROUPS] == 1) /* emit_dense: planes, columns */
            s->scratch[i] = aligned(w.C * w.plane + WIN_V) + (int64_t)w.C * w.kh * w.kw * w.P * w.Q;
        else
            s->scratch[i] = aligned(win_channels(s, i) * w.plane + WIN_V) + (int64_t)w.P * w.Ws + WIN_V;
    }
}

/* Output channels per pointwise tile: the largest of 8, 4, 2, 1 dividing K. */
static int pw_kb(int K) { return K % 8 == 0 ? 8 : K % 4 == 0 ? 4 : K % 2 == 0 ? 2 : 1; }

/* Positions per pointwise tile, as two halves of 16 (a 512-bit vector each): two input
 * vectors per KB broadcast weights (with one vector, the loads bound the FMAs). */
#define PW_V 32

/* ---- weights ---------------------------------------------------------------------------- */

static int write_weights(cgs *s, int i) {
    const ir_node *nd = ND(s, i);
    const float *const *V = s->m->values;
    if (s->kind[i] != K_EMIT) return 0;
    if (nd->op == IR_OP_CONV2D) {
        const ir_node *w = ND(s, nd->inputs[1]);
        int K = (int)w->shape[0];
        int64_t per_k = ir_node_numel(w) / K;
        int bn = s->fold.conv_bn[i];
        W("/* conv2d '");
        cg_put_comment_text(s->f, nd->name, " * ");
        W("': weight (%d, %lld, %lld, %lld)%s */\n", K, (long long)w->shape[1], (long long)w->shape[2],
          (long long)w->shape[3], bn >= 0 ? ", BN folded" : "");
        float *wo = malloc(sizeof(float) * (size_t)ir_node_numel(w)), *bo = malloc(sizeof(float) * (size_t)K);
        float *wp = malloc(sizeof(float) * (size_t)ir_node_numel(w));
        if (!wo || !bo || !wp) { free(wo); free(bo); free(wp); return fail(s, "out of memory"); }
        if (bn >= 0) {
            const ir_node *b = ND(s, bn);
            const int *bi = b->inputs;
            cg_fold_conv_bn(wo, bo, V[nd->inputs[1]], NULL, K, per_k, bi[1] >= 0 ? V[bi[1]] : NULL,
                            bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]], b->fattr[IR_F_BN_EPS]);
        } else {
            memcpy(wo, V[nd->inputs[1]], sizeof(float) * (size_t)ir_node_numel(w));
        }
        if (is_pointwise(s, i) || (!is_depthwise(s, i) && nd->iattr[IR_A_CONV_GROUPS] == 1)) {
            /* packed (K / KB, C, KB) (C: input channels x taps): a tile's KB weights per channel adjacent */
            int KB = pw_kb(K), C = (int)per_k;
            for (int k = 0; k < K; k++)
                for (int c = 0; c < C; c++) wp[((size_t)(k / KB) * C + c) * KB + k % KB] = wo[(size_t)k * C + c];
            W("/*   packed as (%d / %d, %d, %d) for the pointwise tiles */\n", K, KB, C, KB);
            put_array(s, "w", i, wp, ir_node_numel(w));
        } else {
            put_array(s, "w", i, wo, ir_node_numel(w));
        }
        if (bn >= 0) put_array(s, "b", i, bo, K);
        free(wo);
        free(bo);
        free(wp);
    } else if (nd->op == IR_OP_BATCHNORM) {
        int C = (int)nd->shape[1];
        const int *bi = nd->inputs;
        float *sc = malloc(sizeof(float) * (size_t)C), *sh = malloc(sizeof(float) * (size_t)C);
        if (!sc || !sh) { free(sc); free(sh); return fail(s, "out of memory"); }
        cg_bn_affine(sc, sh, bi[1] >= 0 ? V[bi[1]] : NULL, bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]],
                     nd->fattr[IR_F_BN_EPS], C);
        W("/* batchnorm '");
        cg_put_comment_text(s->f, nd->name, " * ");
        W("' as y = x * s[c] + t[c] */\n");
        put_array(s, "s", i, sc, C);
        put_array(s, "t", i, sh, C);
        free(sc);
        free(sh);
    } else if (nd->op == IR_OP_LINEAR) {
        const ir_node *w = ND(s, nd->inputs[1]);
        int O = (int)w->shape[0], I = (int)w->shape[1];
        const float *wv = V[nd->inputs[1]];
        float *wt = malloc(sizeof(float) * (size_t)O * (size_t)I);
        if (!wt) return fail(s, "out of memory");
        for (int o = 0; o < O; o++)
            for (int k = 0; k < I; k++) wt[(size_t)k * O + o] = wv[(size_t)o * I + k];
        W("/* linear '");
        cg_put_comment_text(s->f, nd->name, " * ");
        W("': weight transposed to (%d in, %d out) so the inner loop runs over outputs */\n", I, O);
        put_array(s, "w", i, wt, (int64_t)O * I);
        free(wt);
        if (nd->inputs[2] >= 0) put_array(s, "b", i, V[nd->inputs[2]], O);
    }
    return 0;
}

/* ---- ops -------------------------------------------------------------------------------- */

static void op_head(cgs *s, int i, int n_in) {
    const ir_node *nd = ND(s, i);
    W("\n/* %s '", s->kind[i] == K_ZERO ? "zero" : ir_op_name(nd->op));
    cg_put_comment_text(s->f, nd->name, " * ");
    W("' -> (N");
    for (int d = 1; d < nd->ndim; d++) W(", %lld", (long long)nd->shape[d]);
    W(")%s%s%s */\n%s_CLONES static void %s_op%d(float *%sy", s->relu_out[i] ? ", ReLU fused on output" : "",
      s->addin[i] >= 0 ? ", plus the last input (a fused ADD)" : "", s->inplace[i] ? ", written over its input" : "", s->P,
      s->P, i, s->inplace[i] ? "" : "restrict ");
    for (int j = 0; j < n_in; j++) W(", const float *%sx%d", s->inplace[i] && j == 0 ? "" : "restrict ", j);
    if (s->scratch[i] > 0) W(", float *restrict ws");
    W(", int batch) {\n");
}

/* One pointwise tile: KB output channels x NH * V positions (NH = 1 or 2 halves of V
 * consecutive positions, V <= 16) accumulated in the local arrays a0..a{KB-1} (first
 * half) and b0..b{KB-1} (second half) while the channel loop streams the input once.
 * xo/yo: the tile's first input/output offset within a channel plane (expressions).
 * HW: the input's channel stride. One named array per output channel and half (not
 * acc[KB][V]): gcc then vectorises the v loop into one 512-bit FMA per array and keeps
 * every accumulator in a register; with a 2-d array or one 32-wide loop gcc transposes or
 * spills (and clang 14 spills either way: hence emit_pw_tile_vec). */
static void emit_pw_tile_plain(cgs *s, int i, int relu_in, int C, long long HW, int KB, int NH, int V, const char *xo,
                               const char *yo, const char *ind);

/* The same tile on 16-float vectors (V == 16; the GNU C branch): one vector per output
 * channel and half, the KB weights broadcast by vector-times-scalar. Written out so that
 * gcc and clang emit the same loop: 2 unaligned loads, KB * NH fused multiply-adds per
 * input channel, accumulators in registers, one store each. */
static void emit_pw_tile_vec(cgs *s, int i, int relu_in, int C, long long HW, int KB, int NH, const char *xo,
                             const char *yo, const char *ind) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P, *R = relu_in ? "_vrelu" : "_vid", *A = s->relu_out[i] ? "_vrelu" : "_vid";
    long long PQ = (long long)nd->shape[2] * nd->shape[3];
    int bias = s->fold.conv_bn[i] >= 0;
    W("%s{\n%s    %s_v16 ", ind, ind, P);
    for (int h = 0; h < NH; h++)
        for (int j = 0; j < KB; j++) W("%c%d%s", "ab"[h], j, h + 1 < NH || j + 1 < KB ? ", " : ";\n");
    for (int j = 0; j < KB; j++) {
        char b0[64];
        if (bias) snprintf(b0, sizeof b0, "%s_b%d[kb + %d]", P, i, j);
        else snprintf(b0, sizeof b0, "0.0f");
        for (int h = 0; h < NH; h++) {
            if (s->addin[i] >= 0) /* the fused ADD's other term starts the sum */
                W("%s    %c%d = %s_LD(rk + %lld + %s + %d) + %s;\n", ind, "ab"[h], j, P, j * PQ, yo, 16 * h, b0);
            else
                W("%s    %c%d = (%s_v16){0.0f} + %s;\n", ind, "ab"[h], j, P, b0);
        }
    }
    W("%s    for (int c = 0; c < %d; c++) {\n", ind, C);
    W("%s        const float *restrict xc = xn + c * %lld + %s;\n", ind, HW, xo);
    W("%s        const float *restrict wc = wb + c * %d;\n", ind, KB);
    W("%s        const %s_v16 xa = %s%s(%s_LD(xc))", ind, P, P, R, P);
    if (NH == 2) W(", xb = %s%s(%s_LD(xc + 16))", P, R, P);
    W(";\n");
    for (int j = 0; j < KB; j++) {
        W("%s        a%d = %s_FMA(xa, wc[%d], a%d);\n", ind, j, P, j, j);
        if (NH == 2) W("%s        b%d = %s_FMA(xb, wc[%d], b%d);\n", ind, j, P, j, j);
    }
    W("%s    }\n", ind);
    for (int j = 0; j < KB; j++)
        for (int h = 0; h < NH; h++)
            W("%s    %s_ST(yk + %lld + %s + %d, %s%s(%c%d));\n", ind, P, j * PQ, yo, 16 * h, P, A, "ab"[h], j);
    W("%s}\n", ind);
}

/* A tile of 16 positions per half in both forms, behind #if NAME_VEC; a narrower tail
 * tile (the last positions of a plane) in the plain form only. */
static void emit_pw_tile(cgs *s, int i, int relu_in, int C, long long HW, int KB, int NH, int V, const char *xo,
                         const char *yo, const char *ind) {
    if (V != 16) {
        emit_pw_tile_plain(s, i, relu_in, C, HW, KB, NH, V, xo, yo, ind);
        return;
    }
    W("#if %s_VEC\n", s->P);
    emit_pw_tile_vec(s, i, relu_in, C, HW, KB, NH, xo, yo, ind);
    W("#else\n");
    emit_pw_tile_plain(s, i, relu_in, C, HW, KB, NH, V, xo, yo, ind);
    W("#endif\n");
}

static void emit_pw_tile_plain(cgs *s, int i, int relu_in, int C, long long HW, int KB, int NH, int V, const char *xo,
                               const char *yo, const char *ind) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P, *R = rd(relu_in), *A = rd(s->relu_out[i]);
    long long PQ = (long long)nd->shape[2] * nd->shape[3];
    int bias = s->fold.conv_bn[i] >= 0;
    W("%s{\n%s    float ", ind, ind);
    for (int h = 0; h < NH; h++)
        for (int j = 0; j < KB; j++) W("%c%d[%d]%s", "ab"[h], j, V, h + 1 < NH || j + 1 < KB ? ", " : ";\n");
    W("%s    for (int v = 0; v < %d; v++) {\n", ind, V);
    for (int j = 0; j < KB; j++) {
        char b0[64];
        if (bias) snprintf(b0, sizeof b0, "%s_b%d[kb + %d]", P, i, j);
        else snprintf(b0, sizeof b0, "0.0f");
        if (s->addin[i] >= 0) { /* the fused ADD's other term starts the sum */
            W("%s        a%d[v] = %s + rk[%lld + %s + v];\n", ind, j, b0, j * PQ, yo);
            if (NH == 2) W("%s        b%d[v] = %s + rk[%lld + %s + %d + v];\n", ind, j, b0, j * PQ, yo, V);
        } else if (NH == 2) {
            W("%s        a%d[v] = b%d[v] = %s;\n", ind, j, j, b0);
        } else {
            W("%s        a%d[v] = %s;\n", ind, j, b0);
        }
    }
    W("%s    }\n", ind);
    W("%s    for (int c = 0; c < %d; c++) {\n", ind, C);
    W("%s        const float *restrict xc = xn + c * %lld + %s;\n", ind, HW, xo);
    W("%s        const float *restrict wc = wb + c * %d;\n", ind, KB);
    W("%s        for (int v = 0; v < %d; v++) {\n", ind, V);
    if (NH == 2) W("%s            const float xa = %s%s(xc[v]), xb = %s%s(xc[%d + v]);\n", ind, P, R, P, R, V);
    else W("%s            const float xa = %s%s(xc[v]);\n", ind, P, R);
    for (int j = 0; j < KB; j++) {
        W("%s            a%d[v] = %s_FMA(wc[%d], xa, a%d[v]);\n", ind, j, P, j, j);
        if (NH == 2) W("%s            b%d[v] = %s_FMA(wc[%d], xb, b%d[v]);\n", ind, j, P, j, j);
    }
    W("%s        }\n", ind);
    W("%s    }\n", ind);
    W("%s    for (int v = 0; v < %d; v++) {\n", ind, V);
    for (int j = 0; j < KB; j++) {
        W("%s        yk[%lld + %s + v] = %s%s(a%d[v]);\n", ind, j * PQ, yo, P, A, j);
        if (NH == 2) W("%s        yk[%lld + %s + %d + v] = %s%s(b%d[v]);\n", ind, j * PQ, yo, V, P, A, j);
    }
    W("%s    }\n", ind);
    W("%s}\n", ind);
}

static void emit_pw_kloop(cgs *s, int i, int relu_in, int C, long long HW);

/* The gather of a stride-2 1x1 conv (FactorizedReduce, x[:, :, ::2, ::2] or, shifted,
 * x[:, :, 1::2, 1::2]) on 16-float vectors: two loads of 16 consecutive input floats, the
 * even (or, shifted, the odd) ones picked by one two-vector shuffle, the fused ReLU, one
 * store of 16 gathered pixels. Rows of Q % 16 == 0 outputs one after the other; rows of 8
 * two at a time (input rows p and p + 1 of the output, picked from one vector each);
 * rows of 9 to 15 one at a time, 16 stored from the row's start (the next row's store
 * overwrites the extra; the last row of the block is gathered by the plain loop). The
 * loads stay inside the input row when 2 Q <= W; for 9 to 15 they may read up to 31 - W
 * floats into the next input row, which exists for every row but the block's last (its
 * gathered pixels reach 4 Q - 3 >= 33 floats past the row's start). clang 14 compiled the plain loop's
 * stride-2 reads one float at a time (DARTS_V2: 10.5 against gcc's 2.3 us per inference,
 * docs/BENCHMARKS.md, session 9). Writes the #if branch and the #else; returns whether it
 * did (the caller writes the plain loops and the #endif). */
static int emit_gather_vec(cgs *s, src x, int C, int H, int Wd, int Pp, int Q, int sh, int sw) {
    const char *P = s->P;
    int mid = Q > 8 && Q < 16;
    if (sw != 2 || (!mid && 2 * Q > Wd) || !(Q % 16 == 0 || (Q == 8 && Pp % 2 == 0) || mid)) return 0;
    const char *pick = x.shift ? "ODD" : "EVEN", *R = x.relu ? "_vrelu" : "_vid";
    if (mid) { /* 16 stored per row of Q: the next row's store overwrites the 16 - Q extra */
        W("#if %s_VEC\n        for (int cp = 0; cp < %d; cp++) {\n", P, C * Pp - 1);
        W("            const float *restrict r = xg + (cp / %d * %d + cp %% %d * %d + %d) * %d;\n", Pp, H, Pp, sh, x.shift, Wd);
        W("            const %s_v16 u = %s_LD(r), v = %s_LD(r + 16), e = %s_%s(u, v);\n", P, P, P, P, pick);
        W("            %s_ST(xn + cp * %d, %s%s(e));\n        }\n", P, Q, P, R);
        W("        for (int q = 0; q < %d; q++) xn[%d + q] = %s%s(xg[%lld + q * 2]);\n", Q, (C * Pp - 1) * Q, P, rd(x.relu),
          ((long long)(C - 1) * H + (long long)(Pp - 1) * sh + x.shift) * Wd + x.shift);
        W("#else\n");
        return 1;
    }
    W("#if %s_VEC\n        for (int c = 0; c < %d; c++)\n", P, C);
    if (Q == 8) {
        W("            for (int p = 0; p < %d; p += 2) {\n", Pp);
        W("                const float *restrict r = xg + (c * %d + p * %d + %d) * %d;\n", H, sh, x.shift, Wd);
        W("                const %s_v16 u = %s_LD(r), v = %s_LD(r + %d), e = %s_%s(u, v);\n", P, P, P, sh * Wd, P, pick);
        W("                %s_ST(xn + (c * %d + p) * 8, %s%s(e));\n            }\n", P, Pp, P, R);
    } else {
        W("            for (int p = 0; p < %d; p++)\n                for (int q = 0; q < %d; q += 16) {\n", Pp, Q);
        W("                    const float *restrict r = xg + (c * %d + p * %d + %d) * %d + 2 * q;\n", H, sh, x.shift, Wd);
        W("                    const %s_v16 u = %s_LD(r), v = %s_LD(r + 16), e = %s_%s(u, v);\n", P, P, P, P, pick);
        W("                    %s_ST(xn + (c * %d + p) * %d + q, %s%s(e));\n                }\n", P, Pp, Q, P, R);
    }
    W("#else\n");
    return 1;
}

/* Pointwise (1x1) convolution as a register-blocked GEMM, y[k][i] = b[k] + sum_c w[k][c] x[c][i]:
 * tiles of KB output channels x PW_V positions, each summed over all input channels in
 * locals before one store, so the input is read K / KB times instead of K times and the
 * output once. The weights are packed at codegen time as (K / KB, C, KB). A plane not a
 * multiple of PW_V ends with narrower tiles (16, then the rest). A strided 1x1 conv
 * (FactorizedReduce) first gathers its input pixels into the scratch as a dense
 * (C, P, Q) block (fused ReLU applied there), then runs the same tiles. */
static void emit_pointwise(cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i), *xn = ND(s, x.node);
    const char *P = s->P;
    int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3];
    int Pp = (int)nd->shape[2], Q = (int)nd->shape[3];
    int sh = (int)nd->iattr[IR_A_CONV_STRIDE_H], sw = (int)nd->iattr[IR_A_CONV_STRIDE_W];
    int gather = sh != 1 || sw != 1;
    long long PQ = (long long)Pp * Q, HW = gather ? PQ : (long long)H * Wd;
    W("    for (int n = 0; n < batch; n++) {\n");
    if (gather) {
        W("        const float *restrict xg = x0 + (ptrdiff_t)n * %lld;\n", (long long)C * H * Wd);
        W("        float *restrict xn = ws; /* (%d, %d, %d): the pixels the stride reads%s */\n", C, Pp, Q,
          x.shift ? " (of x[:, :, 1:, 1:], a fused SHIFT)" : "");
        int vg = emit_gather_vec(s, x, C, H, Wd, Pp, Q, sh, sw);
        W("        for (int c = 0; c < %d; c++)\n            %s_ROWS for (int p = 0; p < %d; p++)\n", C, P, Pp);
        W("                for (int q = 0; q < %d; q++) xn[(c * %d + p) * %d + q] = %s%s(xg[(c * %d + p * %d + %d) * %d + q * %d + %d]);\n",
          Q, Pp, Q, P, rd(x.relu), H, sh, x.shift, Wd, sw, x.shift);
        if (vg) W("#endif\n");
    } else {
        W("        const float *restrict xn = x0 + (ptrdiff_t)n * %lld;\n", (long long)C * H * Wd);
    }
    emit_pw_kloop(s, i, gather ? 0 : x.relu, C, HW);
    W("    }\n}\n");
}

/* The output-channel loop of a pointwise conv (or a dense one on its im2col columns) over
 * the input xn: C input channels HW floats apart; per sample n. */
static void emit_pw_kloop(cgs *s, int i, int relu_in, int C, long long HW) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    int K = (int)nd->shape[1], KB = pw_kb(K);
    long long PQ = (long long)nd->shape[2] * nd->shape[3];
    W("        %s_OMP_FOR\n        for (int kb = 0; kb < %d; kb += %d) {\n", P, K, KB);
    W("            float *restrict yk = y + ((ptrdiff_t)n * %d + kb) * %lld;\n", K, PQ);
    if (s->addin[i] >= 0) W("            const float *restrict rk = x1 + ((ptrdiff_t)n * %d + kb) * %lld;\n", K, PQ);
    W("            const float *restrict wb = %s_w%d + kb * %d;\n", P, i, C);
    long long main_ = PQ / PW_V * PW_V, at = main_;
    char o[32];
    if (main_ > 0) {
        W("            for (int i0 = 0; i0 < %lld; i0 += %d)\n", main_, PW_V);
        emit_pw_tile(s, i, relu_in, C, HW, KB, 2, PW_V / 2, "i0", "i0", "                ");
    }
    while (at < PQ) {
        int v = PQ - at >= PW_V / 2 ? PW_V / 2 : (int)(PQ - at);
        snprintf(o, sizeof o, "%lld", at);
        emit_pw_tile(s, i, relu_in, C, HW, KB, 1, v, o, o, "            ");
        at += v;
    }
    W("        }\n");
}

/* Copies input plane xp (one channel) into its phase planes at xd, through the read
 * function rf (a fused ReLU). Only the valid pixels are written; the padding around them
 * is filled once per call by the caller. */
/* Whether phase (a, b) holds any tap (a dilation that is a multiple of the stride skips phases). */
static int win_phase_used(const win *w, int a, int b) {
    for (int r = 0; r < w->kh; r++)
        for (int t = 0; t < w->kw; t++)
            if ((r * w->dh) % w->sh == a && (t * w->dw) % w->sw == b) return 1;
    return 0;
}

/* The plain loop of win_copy_pairs, over phase rows [h0, h1). */
static void win_pairs_plain(cgs *s, const win *w, int a, int h0, int h1, const char *xd, const char *rf, const char *ind) {
    int ro = a - w->ph;
    W("%s%s_ROWS for (int h = %d; h < %d; h++)\n%s    for (int j = 0; j < %d; j++) {\n", ind, s->P, h0, h1, ind, w->Wd / 2);
    for (int e = 0; e < 2; e++) { /* input column 2j + e is phase b = (e + pw) % 2, column j + (e + pw) / 2 */
        int b = (e + w->pw) % 2, dj = (e + w->pw) / 2;
        long long po = (long long)(a * w->sw + b) * w->Hs * w->Ws;
        W("%s        %s[%lld + h * %d + j + %d] = %s(xp[(h * %d %c %d) * %d + 2 * j + %d]);\n", ind, xd, po, w->Ws, dj, rf, w->sh,
          ro < 0 ? '-' : '+', abs(ro), w->Wd, e);
    }
    W("%s    }\n", ind);
}

/* Stride 2 across: both column phases of a phase row in one loop over the input row's
 * column pairs (2j, 2j + 1), so every input element is read once, in order: an
 * interleaved pair that gcc and clang vectorise with permutes (clang left the separate
 * stride-2 reads scalar: 384 single-float moves per channel on a 32x32 plane, measured
 * 15-20 % of DARTS_V2's reduction cells). Needs both phases used and an even width.
 * For gcc and clang also on 16-float vectors (behind #if NAME_VEC) when the row has J =
 * W / 2 pairs with J a multiple of 16 (two loads, the even and the odd elements picked by
 * shuffles, two stores) or 8 <= J < 16: then one load pair per row, 16 stored per phase
 * row with the lanes past J set to the padding value pad, so the extra store lands on
 * the row's padding and the next phase row, written after it; the last phase row by the
 * plain loop (its loads could read past the input plane, its stores past its phase
 * plane). Loads of the other rows end inside the next input row (31 < 2 W), which exists. clang 14 compiled the plain loop at J = 14 (the demo network's reduction
 * cells) about 2.5x slower than gcc. */
static int win_copy_pairs(cgs *s, const win *w, int a, int h0, int h1, const char *xd, const char *rf, int relu,
                          const char *pad, const char *ind) {
    if (w->sw != 2 || w->Wd % 2 || !win_phase_used(w, a, 0) || !win_phase_used(w, a, 1)) return 0;
    const char *P = s->P;
    int J = w->Wd / 2, ro = a - w->ph, spill = J % 16 != 0;
    int vec = (J % 16 == 0 || (J >= 8 && (w->pw + 1) / 2 + 16 <= 2 * w->Ws)) && (!spill || h1 - h0 >= 2);
    if (!vec) {
        win_pairs_plain(s, w, a, h0, h1, xd, rf, ind);
        return 1;
    }
    W("#if %s_VEC\n%s{\n", P, ind);
    if (spill) {
        W("%s    const %s_v16i m = {", ind, P);
        for (int k = 0; k < 16; k++) W("%s%d", k ? ", " : "", k < J ? -1 : 0);
        W("};\n%s    const %s_v16 pv = (%s_v16){0.0f} + %s;\n", ind, P, P, pad);
    }
    W("%s    for (int h = %d; h < %d; h++)\n%s        for (int j = 0; j < %d; j += 16) {\n", ind, h0, spill ? h1 - 1 : h1, ind, J);
    W("%s            const float *restrict r = xp + (h * %d %c %d) * %d + 2 * j;\n", ind, w->sh, ro < 0 ? '-' : '+', abs(ro), w->Wd);
    W("%s            const %s_v16 u = %s_LD(r), v = %s_LD(r + 16);\n", ind, P, P, P);
    for (int e = 0; e < 2; e++) {
        int b = (e + w->pw) % 2, dj = (e + w->pw) / 2;
        long long po = (long long)(a * w->sw + b) * w->Hs * w->Ws;
        W("%s            %s_v16 e%d = %s%s(%s_%s(u, v));\n", ind, P, e, P, relu ? "_vrelu" : "_vid", P, e ? "ODD" : "EVEN");
        if (spill) W("%s            e%d = (%s_v16)(((%s_v16i)e%d & m) | ((%s_v16i)pv & ~m));\n", ind, e, P, P, e, P);
        W("%s            %s_ST(%s + %lld + h * %d + j + %d, e%d);\n", ind, P, xd, po, w->Ws, dj, e);
    }
    W("%s        }\n", ind);
    if (spill) win_pairs_plain(s, w, a, h1 - 1, h1, xd, rf, ind);
    W("%s}\n#else\n", ind);
    win_pairs_plain(s, w, a, h0, h1, xd, rf, ind);
    W("#endif\n");
    return 1;
}

/* One stride-2 column phase (a, b) of the copy on 16-float vectors (behind #if NAME_VEC):
 * per phase row, 32 input floats from the first column read, every other one picked by a
 * shuffle (the phase's n = w1 - w0 <= 16 columns, 8 or more), the lanes past n set to the
 * padding value, 16 stored; as in win_copy_pairs, the extra store lands on the row's
 * padding and the next phase row (written after it), and the last phase row is copied by
 * the plain loop. A single used phase is what a dilated stride-2 window reads (dil_conv:
 * clang 14 copied it one float at a time). Writes the #if branch and the #else; returns
 * whether it did (the caller writes the plain loop and the #endif). */
static int win_copy_phase_vec(cgs *s, const win *w, int a, int b, int h0, int h1, int w0, int w1, const char *xd, const char *rf,
                              int relu, const char *pad, const char *ind) {
    const char *P = s->P;
    int n = w1 - w0, ro = a - w->ph, c0 = w0 * 2 + b - w->pw;
    if (w->sw != 2 || n < 8 || n > 16 || h1 - h0 < 2 || w0 + 16 > 2 * w->Ws || c0 + 32 > (w->sh + 1) * w->Wd) return 0;
    long long po = (long long)(a * w->sw + b) * w->Hs * w->Ws;
    W("#if %s_VEC\n%s{\n%s    const %s_v16i m = {", P, ind, ind, P);
    for (int k = 0; k < 16; k++) W("%s%d", k ? ", " : "", k < n ? -1 : 0);
    W("};\n%s    const %s_v16 pv = (%s_v16){0.0f} + %s;\n", ind, P, P, pad);
    W("%s    for (int h = %d; h < %d; h++) {\n", ind, h0, h1 - 1);
    W("%s        const float *restrict r = xp + (h * %d %c %d) * %d + %d;\n", ind, w->sh, ro < 0 ? '-' : '+', abs(ro), w->Wd, c0);
    W("%s        %s_v16 e = %s%s(%s_EVEN(%s_LD(r), %s_LD(r + 16)));\n", ind, P, P, relu ? "_vrelu" : "_vid", P, P, P);
    W("%s        e = (%s_v16)(((%s_v16i)e & m) | ((%s_v16i)pv & ~m));\n", ind, P, P, P);
    W("%s        %s_ST(%s + %lld + h * %d + %d, e);\n%s    }\n", ind, P, xd, po, w->Ws, w0, ind);
    W("%s    for (int w = %d; w < %d; w++) %s[%lld + %d + w] = %s(xp[%d + w * 2 %c %d]);\n", ind, w0, w1, xd, po,
      (h1 - 1) * w->Ws, rf, ((h1 - 1) * w->sh + ro) * w->Wd, b - w->pw < 0 ? '-' : '+', abs(b - w->pw));
    W("%s}\n#else\n", ind);
    return 1;
}

/* Copies an input plane (xp) into its phase planes at xd through rf (relu: a fused ReLU);
 * pad: the padding's value (the vector pair copy sets its extra lanes to it). */
static void emit_win_copy(cgs *s, const win *w, const char *xd, const char *rf, int relu, const char *pad, const char *ind) {
    for (int a = 0; a < w->sh; a++) {
        /* phase row h holds input row h * sh + a - ph: valid for h in [h0, h1) */
        int h0 = (w->ph - a + w->sh - 1) / w->sh, h1 = (w->H - 1 + w->ph - a) / w->sh + 1;
        if (h0 < 0) h0 = 0;
        if (h1 <= h0) continue;
        if (win_copy_pairs(s, w, a, h0, h1, xd, rf, relu, pad, ind)) continue;
        for (int b = 0; b < w->sw; b++) {
            if (!win_phase_used(w, a, b)) continue;
            int w0 = (w->pw - b + w->sw - 1) / w->sw, w1 = (w->Wd - 1 + w->pw - b) / w->sw + 1;
            if (w0 < 0) w0 = 0;
            if (w1 <= w0) continue;
            long long po = (long long)(a * w->sw + b) * w->Hs * w->Ws;
            int ro = a - w->ph, co = b - w->pw;
            int vec = win_copy_phase_vec(s, w, a, b, h0, h1, w0, w1, xd, rf, relu, pad, ind);
            W("%s%s_ROWS for (int h = %d; h < %d; h++)\n", ind, s->P, h0, h1);
            if (w->sw == 1)
                W("%s    for (int w = %d; w < %d; w++) %s[%lld + h * %d + w] = %s(xp[(h * %d %c %d) * %d + w %c %d]);\n", ind, w0,
                  w1, xd, po, w->Ws, rf, w->sh, ro < 0 ? '-' : '+', abs(ro), w->Wd, co < 0 ? '-' : '+', abs(co));
            else
                W("%s    for (int w = %d; w < %d; w++) %s[%lld + h * %d + w] = %s(xp[(h * %d %c %d) * %d + w * %d %c %d]);\n", ind,
                  w0, w1, xd, po, w->Ws, rf, w->sh, ro < 0 ? '-' : '+', abs(ro), w->Wd, w->sw, co < 0 ? '-' : '+', abs(co));
            if (vec) W("#endif\n");
        }
    }
}

/* Grouped convolution (neither 1x1, dense nor depthwise: what DARTS never emits, kept
 * general) on phase planes: per sample and group, the group's input channels are copied
 * into the scratch as phase planes (fused input ReLU applied once, padding zero), then
 * for each output channel the kh*kw taps, unrolled with their weights in registers, are
 * summed over one flat unit-stride loop per input channel (i = p * Ws + q; columns q >= Q
 * are computed and dropped), with no border cases; the valid columns are then copied out
 * (output ReLU fused). Not parallelised with OpenMP: the scratch is shared. */
static void emit_direct(cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    win w = win_of(s, i);
    int K = (int)nd->shape[1], G = (int)nd->iattr[IR_A_CONV_GROUPS], Cg = w.C / G, Kg = K / G, T = w.kh * w.kw;
    long long ys_off = aligned(Cg * w.plane + WIN_V);
    char rf[64], add[64] = "";
    snprintf(rf, sizeof rf, "%s%s", P, rd(x.relu));
    if (s->addin[i] >= 0) snprintf(add, sizeof add, " + rp[p * %d + q]", w.Q);
    W("    float *restrict xs = ws, *restrict ys = ws + %lld; /* %d x %d phase planes (%d, %d) per channel; output rows %d wide */\n",
      ys_off, w.sh, w.sw, w.Hs, w.Ws, w.Ws);
    W("    %s_fill(xs, 0.0f, %lld); /* the padding stays zero */\n", P, (long long)(Cg * w.plane + WIN_V));
    W("    for (int n = 0; n < batch; n++)\n        for (int g = 0; g < %d; g++) {\n", G);
    W("            for (int c = 0; c < %d; c++) {\n", Cg);
    W("                const float *restrict xp = x0 + ((ptrdiff_t)n * %d + g * %d + c) * %d;\n", w.C, Cg, w.H * w.Wd);
    W("                float *restrict xd = xs + c * %lld;\n", (long long)w.plane);
    emit_win_copy(s, &w, "xd", rf, x.relu, "0.0f", "                ");
    W("            }\n");
    W("            for (int kk = 0; kk < %d; kk++) {\n                const int k = g * %d + kk;\n", Kg, Kg);
    if (s->fold.conv_bn[i] >= 0) W("                const float b = %s_b%d[k];\n", P, i);
    else W("                const float b = 0.0f;\n");
    W("                float *restrict yp = y + ((ptrdiff_t)n * %d + k) * %d;\n", K, w.P * w.Q);
    W("                for (int i = 0; i < %d; i++) ys[i] = b;\n", w.L);
    W("                for (int c = 0; c < %d; c++) {\n", Cg);
    W("                    const float *restrict xc = xs + c * %lld, *restrict wc = %s_w%d + (k * %d + c) * %d;\n",
      (long long)w.plane, P, i, Cg, T);
    W("                    for (int i = 0; i < %d; i++) {\n                        float a = ys[i];\n", w.L);
    for (int r = 0; r < w.kh; r++)
        for (int t = 0; t < w.kw; t++)
            W("                        a = %s_FMA(wc[%d], xc[i + %lld], a);\n", P, r * w.kw + t, win_tap(&w, r, t));
    W("                        ys[i] = a;\n                    }\n                }\n");
    if (s->addin[i] >= 0) W("                const float *restrict rp = x1 + ((ptrdiff_t)n * %d + k) * %d;\n", K, w.P * w.Q);
    W("                %s_ROWS for (int p = 0; p < %d; p++)\n", P, w.P);
    W("                    for (int q = 0; q < %d; q++) yp[p * %d + q] = %s%s(ys[p * %d + q])%s;\n", w.Q, w.Q, P,
      rd(s->relu_out[i]), w.Ws, add);
    W("            }\n        }\n}\n");
}

/* Depthwise convolutions and pools: one input and one output plane per channel. The
 * steps of emit_direct (phase planes in, flat taps, valid columns out) as three helpers (_in copies plane k into phase planes, _taps
 * takes the window over the flat output plane at the phase width, _out copies the valid
 * columns out), software-pipelined over the channels: step c copies plane c in, takes
 * the window of plane c - 1 and copies plane c - 2 out, with two phase-plane and two
 * output buffers used alternately, so no helper reads a buffer the helper just before it
 * has stored to (on small planes the partial store-to-load forwards of the plain
 * sequence stall more than the arithmetic takes). Convolution: the taps unrolled with
 * their weights in registers, padding zero. Max pool: padding -INFINITY, which never
 * wins, the max a ternary, which compiles to vmaxps. Average pool: padding zero, the sum
 * divided by the window's count of real pixels (padding excluded), a product of two
 * small constant tables. */
static void emit_planewise(cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    win w = win_of(s, i);
    int C = w.C, T = w.kh * w.kw, add = s->addin[i] >= 0, PQ = w.P * w.Q;
    int conv = nd->op == IR_OP_CONV2D, mx = nd->op == IR_OP_MAXPOOL;
    long long XB = aligned(w.plane + WIN_V), YB = aligned((int64_t)w.P * w.Ws + WIN_V);
    char rf[64];
    snprintf(rf, sizeof rf, "%s%s", P, rd(x.relu));
    W("\nstatic %s_INLINE void %s_op%d_in(float *restrict xs, const float *restrict xn, int k) {\n", P, P, i);
    W("    const float *restrict xp = xn + k * %d;\n    float *restrict xd = xs + (k & 1) * %lld;\n", w.H * w.Wd, XB);
    emit_win_copy(s, &w, "xd", rf, x.relu, mx ? "-INFINITY" : "0.0f", "    ");
    W("}\n\nstatic %s_INLINE void %s_op%d_taps(float *restrict ys, const float *restrict xs, int k) {\n", P, P, i);
    W("    const float *restrict xc = xs + (k & 1) * %lld;\n    float *restrict yc = ys + (k & 1) * %lld;\n", XB, YB);
    if (conv) {
        W("    const float *restrict wc = %s_w%d + k * %d;\n", P, i, T);
        if (s->fold.conv_bn[i] >= 0) W("    const float b = %s_b%d[k];\n", P, i);
        else W("    const float b = 0.0f;\n");
    } else {
        W("    (void)k;\n");
    }
    /* L is a multiple of 16: the vector loop has no remainder. Explicit vectors because
     * clang 14 leaves this loop scalar after inlining (and gcc vectorises it). The max
     * as a mask select with the scalar ternary's semantics (x > a ? x : a). */
    W("#if %s_VEC\n    for (int i = 0; i < %d; i += 16) {\n", P, w.L);
    for (int r = 0; r < w.kh; r++)
        for (int t = 0; t < w.kw; t++) {
            long long o = win_tap(&w, r, t);
            if (conv && r + t == 0)
                W("        %s_v16 a = %s_FMA(%s_LD(xc + i + %lld), wc[0], (%s_v16){0.0f} + b);\n", P, P, P, o, P);
            else if (conv) W("        a = %s_FMA(%s_LD(xc + i + %lld), wc[%d], a);\n", P, P, o, r * w.kw + t);
            else if (r + t == 0) W("        %s_v16 a = %s_LD(xc + i + %lld);\n", P, P, o);
            else if (mx)
                W("        {\n            const %s_v16 x = %s_LD(xc + i + %lld);\n            const %s_v16i m = x > a;\n"
                  "            a = (%s_v16)(((%s_v16i)x & m) | ((%s_v16i)a & ~m));\n        }\n", P, P, o, P, P, P, P);
            else W("        a += %s_LD(xc + i + %lld);\n", P, o);
        }
    W("        %s_ST(yc + i, a);\n    }\n#else\n", P);
    W("    for (int i = 0; i < %d; i++) {\n", w.L);
    for (int r = 0; r < w.kh; r++)
        for (int t = 0; t < w.kw; t++) {
            long long o = win_tap(&w, r, t);
            if (conv) W("        %sa = %s_FMA(wc[%d], xc[i + %lld], %s);\n", r + t ? "" : "float ", P, r * w.kw + t, o, r + t ? "a" : "b");
            else if (r + t == 0) W("        float a = xc[i + %lld];\n", o);
            else if (mx) W("        a = xc[i + %lld] > a ? xc[i + %lld] : a;\n", o, o);
            else W("        a += xc[i + %lld];\n", o);
        }
    W("        yc[i] = a;\n    }\n#endif\n}\n\n");
    W("static %s_INLINE void %s_op%d_out(float *restrict yn, const float *restrict ys, %sint k) {\n", P, P, i,
      add ? "const float *restrict rn, " : "");
    if (!conv && !mx) { /* real pixels per window row / column */
        W("    static const float hn[%d] = {", w.P);
        for (int p = 0; p < w.P; p++) {
            int h0 = p * w.sh - w.ph, a = h0 < 0 ? 0 : h0, b = h0 + w.kh > w.H ? w.H : h0 + w.kh;
            W("%s%d", p ? ", " : "", b - a);
        }
        W("}, wn[%d] = {", w.Q);
        for (int q = 0; q < w.Q; q++) {
            int w0 = q * w.sw - w.pw, a = w0 < 0 ? 0 : w0, b = w0 + w.kw > w.Wd ? w.Wd : w0 + w.kw;
            W("%s%d", q ? ", " : "", b - a);
        }
        W("};\n");
    }
    W("    const float *restrict yc = ys + (k & 1) * %lld;\n    float *restrict yp = yn + k * %d;\n", YB, PQ);
    if (add) W("    const float *restrict rp = rn + k * %d;\n", PQ);
    char a[64] = "";
    if (add) snprintf(a, sizeof a, " + rp[p * %d + q]", w.Q);
    W("    %s_ROWS for (int p = 0; p < %d; p++)\n", P, w.P);
    if (conv)
        W("        for (int q = 0; q < %d; q++) yp[p * %d + q] = %s%s(yc[p * %d + q])%s;\n}\n", w.Q, w.Q, P,
          rd(s->relu_out[i]), w.Ws, a);
    else
        W("        for (int q = 0; q < %d; q++) yp[p * %d + q] = yc[p * %d + q]%s%s;\n}\n", w.Q, w.Q, w.Ws,
          mx ? "" : " / (hn[p] * wn[q])", a);
    op_head(s, i, add ? 2 : 1);
    W("    float *restrict xs = ws, *restrict ys = ws + %lld; /* 2 x (%d x %d phase planes (%d, %d)), 2 x output rows %d wide */\n",
      2 * XB, w.sh, w.sw, w.Hs, w.Ws, w.Ws);
    if (mx) W("    %s_fill(xs, -INFINITY, %lld); /* the padding stays -INFINITY */\n", P, 2 * XB);
    else W("    %s_fill(xs, 0.0f, %lld); /* the padding stays zero */\n", P, 2 * XB);
    W("    for (int n = 0; n < batch; n++) {\n");
    const char *rs = s->inplace[i] ? "" : "restrict "; /* written over its input: the two alias */
    W("        const float *%sxn = x0 + (ptrdiff_t)n * %d;\n", rs, C * w.H * w.Wd);
    W("        float *%syn = y + (ptrdiff_t)n * %d;\n", rs, C * PQ);
    if (add) W("        const float *restrict rn = x1 + (ptrdiff_t)n * %d;\n", C * PQ);
    const char *R = add ? "rn, " : "";
    if (C == 1) {
        W("        %s_op%d_in(xs, xn, 0);\n        %s_op%d_taps(ys, xs, 0);\n        %s_op%d_out(yn, ys, %s0);\n", P, i, P, i,
          P, i, R);
    } else {
        W("        %s_op%d_in(xs, xn, 0);\n        %s_op%d_in(xs, xn, 1);\n        %s_op%d_taps(ys, xs, 0);\n", P, i, P, i, P, i);
        W("        for (int c = 2; c < %d; c++) {\n            %s_op%d_in(xs, xn, c);\n", C, P, i);
        W("            %s_op%d_taps(ys, xs, c - 1);\n            %s_op%d_out(yn, ys, %sc - 2);\n        }\n", P, i, P, i, R);
        W("        %s_op%d_taps(ys, xs, %d);\n        %s_op%d_out(yn, ys, %s%d);\n", P, i, C - 1, P, i, R, C - 2);
        W("        %s_op%d_out(yn, ys, %s%d);\n", P, i, R, C - 1);
    }
    W("    }\n}\n");
}

/* Dense convolution (one group, not 1x1): the input planes are copied into the scratch
 * as phase planes (as emit_direct), every tap of every channel is then copied out as a
 * dense (P, Q) row of an im2col block (Cg * kh * kw, P, Q), and the pointwise GEMM tiles
 * run on that block with the weights packed as a pointwise conv of Cg * kh * kw input
 * channels. The stem (3 input channels, 3x3) is the one in DARTS. */
static void emit_dense(cgs *s, int i, src x) {
    const char *P = s->P;
    win w = win_of(s, i);
    int T = w.kh * w.kw;
    long long PQ = (long long)w.P * w.Q, col_off = aligned(w.C * w.plane + WIN_V);
    char rf[64];
    snprintf(rf, sizeof rf, "%s%s", P, rd(x.relu));
    W("    float *restrict xs = ws, *restrict col = ws + %lld; /* %d x %d phase planes (%d, %d) per channel; (%d, %d, %d) columns */\n",
      col_off, w.sh, w.sw, w.Hs, w.Ws, w.C * T, w.P, w.Q);
    W("    %s_fill(xs, 0.0f, %lld); /* the padding stays zero */\n", P, (long long)(w.C * w.plane + WIN_V));
    W("    for (int n = 0; n < batch; n++) {\n");
    W("        for (int c = 0; c < %d; c++) {\n", w.C);
    W("            const float *restrict xp = x0 + ((ptrdiff_t)n * %d + c) * %d;\n", w.C, w.H * w.Wd);
    W("            float *restrict xd = xs + c * %lld;\n", (long long)w.plane);
    emit_win_copy(s, &w, "xd", rf, x.relu, "0.0f", "            ");
    W("            float *restrict cc = col + c * %lld;\n", T * PQ);
    for (int r = 0; r < w.kh; r++)
        for (int t = 0; t < w.kw; t++) {
            W("            %s_ROWS for (int p = 0; p < %d; p++)\n", P, w.P);
            W("                for (int q = 0; q < %d; q++) cc[%lld + p * %d + q] = xd[%lld + p * %d + q];\n", w.Q,
              (r * w.kw + t) * PQ, w.Q, win_tap(&w, r, t), w.Ws);
        }
    W("        }\n        const float *restrict xn = col;\n");
    emit_pw_kloop(s, i, 0, w.C * T, PQ);
    W("    }\n}\n");
}

static void emit_conv(cgs *s, int i, src x) {
    if (is_pointwise(s, i)) emit_pointwise(s, i, x);
    else if (ND(s, i)->iattr[IR_A_CONV_GROUPS] == 1) emit_dense(s, i, x);
    else emit_direct(s, i, x);
}

static int write_op(cgs *s, int i) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    src r[IR_MAX_IATTR + 8];
    int k = op_srcs(s, i, r), nin = 0;
    for (int j = 0; j < k; j++) nin += r[j].node >= 0 && s->cpart[r[j].node] != i; /* a concat's slices: not passed */
    int64_t ps = per_sample(nd);
    if (concat_free(s, i)) return 0; /* every part written in its slice: nothing to do */
    if (s->kind[i] == K_ZERO) {
        op_head(s, i, 0);
        W("    %s_fill(y, 0.0f, (ptrdiff_t)batch * %lld);\n}\n", P, (long long)ps);
        return 0;
    }
    if (is_planewise(s, i)) {
        emit_planewise(s, i, r[0]); /* helpers first, then its own head */
        return 0;
    }
    op_head(s, i, nin);
    const char *A = rd(s->relu_out[i]);
    switch (nd->op) {
    case IR_OP_CONV2D:
        emit_conv(s, i, r[0]);
        return 0;
    case IR_OP_BATCHNORM: {
        int C = (int)nd->shape[1];
        int64_t HW = plane_of(nd);
        W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int c = 0; c < %d; c++) {\n", P, C);
        W("            const float *restrict xp = x0 + ((ptrdiff_t)n * %d + c) * %lld;\n", C, (long long)HW);
        W("            float *restrict yp = y + ((ptrdiff_t)n * %d + c) * %lld;\n", C, (long long)HW);
        W("            const float sc = %s_s%d[c], sh = %s_t%d[c];\n", P, i, P, i);
        W("            for (int i = 0; i < %lld; i++) yp[i] = %s%s(xp[i] * sc + sh);\n", (long long)HW, P, A);
        W("        }\n}\n");
        return 0;
    }
    case IR_OP_RELU: case IR_OP_TANH: case IR_OP_SIGMOID: case IR_OP_SCALE: case IR_OP_MUL: case IR_OP_SUB:
    case IR_OP_ADD: case IR_OP_MEAN: {
        W("    %s_OMP_FOR\n    for (ptrdiff_t i = 0; i < (ptrdiff_t)batch * %lld; i++) ", P, (long long)ps);
        switch (nd->op) {
        case IR_OP_RELU: W("y[i] = %s_relu(x0[i]);\n", P); break;
        case IR_OP_TANH: W("y[i] = tanhf(x0[i]);\n"); break;
        case IR_OP_SIGMOID: W("y[i] = 1.0f / (1.0f + expf(-x0[i]));\n"); break;
        case IR_OP_SCALE: W("y[i] = x0[i] * "); put_float(s, nd->fattr[IR_F_P]); W(";\n"); break;
        case IR_OP_MUL: W("y[i] = x0[i] * x1[i];\n"); break;
        case IR_OP_SUB: W("y[i] = x0[i] - x1[i];\n"); break;
        default:
            W("y[i] = %s", nd->op == IR_OP_MEAN && nin > 1 ? "(" : "");
            for (int j = 0; j < nin; j++) W("%sx%d[i]", j ? " + " : "", j);
            if (nd->op == IR_OP_MEAN) { W("%s * ", nin > 1 ? ")" : ""); put_float(s, 1.f / (float)nd->n_inputs); }
            W(";\n");
        }
        W("}\n");
        return 0;
    }
    case IR_OP_CONCAT: {
        int64_t HW = plane_of(nd), Cy = nd->shape[1], off = 0;
        W("    %s_OMP_FOR\n    for (int n = 0; n < batch; n++) {\n", P);
        for (int j = 0, xi = 0; j < k; j++) {
            int64_t Cx = ND(s, nd->inputs[j])->shape[1];
            if (r[j].node < 0)
                W("        %s_fill(y + ((ptrdiff_t)n * %lld + %lld) * %lld, 0.0f, %lld);\n", P, (long long)Cy,
                  (long long)off, (long long)HW, (long long)(Cx * HW));
            else if (s->cpart[r[j].node] == i) /* written there by its producer */
                W("        /* channels [%lld, %lld): written there by %s_op%d */\n", (long long)off, (long long)(off + Cx), P,
                  r[j].node);
            else
                W("        %s_copy(y + ((ptrdiff_t)n * %lld + %lld) * %lld, x%d + (ptrdiff_t)n * %lld, %lld);\n", P,
                  (long long)Cy, (long long)off, (long long)HW, xi++, (long long)(Cx * HW), (long long)(Cx * HW));
            off += Cx;
        }
        W("    }\n}\n");
        return 0;
    }
    case IR_OP_SLICE: {
        int64_t HW = plane_of(nd), Cx = ND(s, nd->inputs[0])->shape[1], L = nd->shape[1];
        W("    for (int n = 0; n < batch; n++)\n");
        W("        %s_copy(y + (ptrdiff_t)n * %lld, x0 + ((ptrdiff_t)n * %lld + %lld) * %lld, %lld);\n}\n", P,
          (long long)(L * HW), (long long)Cx, (long long)nd->iattr[IR_A_SLICE_START], (long long)HW, (long long)(L * HW));
        return 0;
    }
    case IR_OP_SHIFT: {
        const ir_node *xn = ND(s, nd->inputs[0]);
        int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3];
        W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int c = 0; c < %d; c++)\n", P, C);
        W("            for (int i = 0; i < %d; i++) /* x[:, :, 1:, 1:] */\n", H - 1);
        if (r[0].relu) /* the FactorizedReduce ReLU, fused into the shift as into its convs' reads */
            W("                for (int j = 0; j < %d; j++)\n                    y[(((ptrdiff_t)n * %d + c) * %d + i) * %d + j] = "
              "%s_relu(x0[(((ptrdiff_t)n * %d + c) * %d + i + 1) * %d + 1 + j]);\n}\n", Wd - 1, C, H - 1, Wd - 1, P, C, H, Wd);
        else
            W("                %s_copy(y + (((ptrdiff_t)n * %d + c) * %d + i) * %d, x0 + (((ptrdiff_t)n * %d + c) * %d + i + 1) * %d + 1,\n"
              "                       %d);\n}\n", P, C, H - 1, Wd - 1, C, H, Wd, Wd - 1);
        return 0;
    }
    case IR_OP_GAP: {
        int C = (int)nd->shape[1];
        int64_t HW = plane_of(ND(s, nd->inputs[0]));
        long long main_ = HW / 16 * 16;
        /* 16 partial sums, one vector: a single running sum is a chain of dependent adds */
        W("    %s_OMP_FOR\n    for (ptrdiff_t pl = 0; pl < (ptrdiff_t)batch * %d; pl++) {\n", P, C);
        W("        const float *restrict xp = x0 + pl * %lld;\n        float acc[16] = {0.0f}, sum = 0.0f;\n", (long long)HW);
        if (main_ > 0)
            W("        for (int i0 = 0; i0 < %lld; i0 += 16)\n            for (int v = 0; v < 16; v++) acc[v] += xp[i0 + v];\n", main_);
        if (HW > main_) W("        for (int v = 0; v < %lld; v++) acc[v] += xp[%lld + v];\n", HW - main_, main_);
        W("        for (int v = 0; v < 16; v++) sum += acc[v];\n");
        W("        y[pl] = sum / %lld.0f;\n    }\n}\n", (long long)HW);
        return 0;
    }
    case IR_OP_LINEAR: {
        int O = (int)nd->shape[1], I = (int)ND(s, nd->inputs[0])->shape[1];
        W("    %s_OMP_FOR\n    for (int n = 0; n < batch; n++) {\n", P);
        W("        const float *restrict xn = x0 + (ptrdiff_t)n * %d;\n", I);
        W("        float *restrict yn = y + (ptrdiff_t)n * %d;\n", O);
        if (nd->inputs[2] >= 0) W("        for (int o = 0; o < %d; o++) yn[o] = %s_b%d[o];\n", O, P, i);
        else W("        for (int o = 0; o < %d; o++) yn[o] = 0.0f;\n", O);
        W("        for (int i = 0; i < %d; i++) {\n", I);
        W("            const float xv = xn[i];\n            const float *restrict wi = %s_w%d + (ptrdiff_t)i * %d;\n", P, i, O);
        W("            for (int o = 0; o < %d; o++) yn[o] += wi[o] * xv;\n        }\n    }\n}\n", O);
        return 0;
    }
    case IR_OP_SOFTMAX: {
        int K = (int)nd->shape[nd->ndim - 1];
        W("    %s_OMP_FOR\n    for (ptrdiff_t r = 0; r < (ptrdiff_t)batch * %lld; r++) {\n", P, (long long)(ps / K));
        W("        const float *restrict xr = x0 + r * %d;\n        float *restrict yr = y + r * %d;\n", K, K);
        W("        float m = xr[0];\n        double acc = 0.0;\n        float inv;\n");
        W("        for (int k = 1; k < %d; k++) m = xr[k] > m ? xr[k] : m;\n", K);
        W("        for (int k = 0; k < %d; k++) {\n            yr[k] = expf(xr[k] - m);\n            acc += yr[k];\n        }\n", K);
        W("        inv = (float)(1.0 / acc);\n        for (int k = 0; k < %d; k++) yr[k] *= inv;\n    }\n}\n", K);
        return 0;
    }
    default:
        return fail(s, "node '%s': op %s is not supported by the C emitter", nd->name, ir_op_name(nd->op));
    }
}

/* ---- files ------------------------------------------------------------------------------ */

static void write_doc(cgs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    int C = (int)xi->shape[1];
    W("/* %s.h - standalone inference for a dartsc network", s->P);
#ifdef DARTSC_VERSION
    W(" (generated by dartsc " DARTSC_VERSION "; do not edit)");
#endif
    W(".\n *\n * Network: ");
    cg_put_comment_text(s->f, ir_graph_name(s->g), " *   ");
    if (m->space_name) { W(", derived from search space '"); cg_put_comment_text(s->f, m->space_name, " *   "); W("'"); }
    W(".\n");
    if (m->genotype_json) { W(" * Genotype:\n *   "); cg_put_comment_text(s->f, m->genotype_json, " *   "); W("\n"); }
    if (m->test_accuracy > 0) W(" * Test accuracy: %.2f %%\n", m->test_accuracy * (m->test_accuracy <= 1 ? 100 : 1));
    else W(" * Test accuracy: unknown\n");
    W(" *\n * Input: float32, NCHW, (batch, %d, %lld, %lld), batch 1..%d. Each pixel v in [0, 1] must be\n", C,
      (long long)xi->shape[2], (long long)xi->shape[3], s->max_batch);
    W(" * normalised per channel as (v - mean[c]) / std[c] with\n *   mean = {");
    for (int c = 0; c < C; c++) W("%s%.9g", c ? ", " : "", c < 4 ? (double)m->mean[c] : 0.0);
    W("}, std = {");
    for (int c = 0; c < C; c++) W("%s%.9g", c ? ", " : "", c < 4 && m->std[c] > 0 ? (double)m->std[c] : 1.0);
    W("}\n *   (also as %s_mean and %s_std).\n", s->P, s->P);
    W(" * Output: float32, (batch, %lld) ('", (long long)xo->shape[1]);
    cg_put_comment_text(s->f, xo->name, " *   ");
    W("'); the class is the index of the largest value.\n");
    W(" *\n * Usage:\n");
    W(" *   static float in[%s_INPUT_SIZE], out[%s_OUTPUT_SIZE];\n", s->P, s->P);
    W(" *   ... fill in with one normalised image ...\n");
    W(" *   if (%s_infer(in, out, 1) != 0) return -1;\n", s->P);
    W(" *   int best = 0;\n *   for (int k = 1; k < %s_NUM_CLASSES; k++) if (out[k] > out[best]) best = k;\n", s->P);
    W(" *   printf(\"%%d %%s\\n\", best, %s_class_names[best]);\n", s->P);
    W(" * Build: cc -std=c99 -O2 -c %s.c, link with -lm; any C99 compiler. Define %s_USE_OPENMP\n", s->P, s->P);
    W(" * and pass -fopenmp to run the channel loops of the 1x1 convolutions and elementwise ops\n");
    W(" * in parallel. With gcc and clang the hot loops are GNU C vector code, and on x86-64\n");
    W(" * with glibc a portable build picks AVX-512, AVX+FMA or baseline code when the program\n");
    W(" * loads (-D%s_NO_DISPATCH: no dispatch; -D%s_PLAIN_C: plain C loops only).\n", s->P, s->P);
    W(" * What the object needs: libm's expf/tanhf where the network uses them; the source calls\n");
    W(" * no memcpy, memset, memmove or fmaf, but compilers may turn its copy loops back into\n");
    W(" * memcpy/memset calls (gcc requires them even -ffreestanding; -fno-builtin for clang,\n");
    W(" * -fno-tree-loop-distribute-patterns for gcc avoid it); the dispatch needs the compiler\n");
    W(" * runtime's __cpu_model (libgcc or compiler-rt, linked by default).\n");
    W(" *\n * %s_infer uses one static arena and is not reentrant; threads call\n", s->P);
    W(" * %s_infer_with_arena, each with its own %s_ARENA_BYTES of float-aligned memory\n", s->P, s->P);
    W(" * (64-byte aligned runs fastest: the vector code's accesses are at multiples of 64 bytes\n");
    W(" * from its start; e.g. aligned_alloc(64, ...)).\n");
    W(" * Both return 0, or -1 for a NULL pointer or a batch outside 1..%s_MAX_BATCH.\n", s->P);
    W(" * input and output must not overlap.\n */\n");
}

static int write_header(cgs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    const char *P = s->P;
    write_doc(s);
    W("#ifndef %s_H_INCLUDED\n#define %s_H_INCLUDED\n\n", P, P);
    W("#define %s_MAX_BATCH %d\n", P, s->max_batch);
    W("#define %s_IN_C %lld\n#define %s_IN_H %lld\n#define %s_IN_W %lld\n", P, (long long)xi->shape[1], P,
      (long long)xi->shape[2], P, (long long)xi->shape[3]);
    W("#define %s_INPUT_SIZE %lld /* floats per sample */\n", P, (long long)per_sample(xi));
    W("#define %s_NUM_CLASSES %lld\n", P, (long long)xo->shape[1]);
    W("#define %s_OUTPUT_SIZE %lld /* floats per sample */\n", P, (long long)per_sample(xo));
    W("#define %s_ARENA_BYTES %lld /* activations of one sample (samples run one at a time) */\n\n", P,
      (long long)(s->arena_floats * 4));
    W("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    W("int %s_infer(const float *input, float *output, int batch);\n", P);
    W("int %s_infer_with_arena(const float *input, float *output, int batch, void *arena);\n", P);
    W("extern const float %s_mean[%s_IN_C], %s_std[%s_IN_C];\n", P, P, P, P);
    W("extern const char *const %s_class_names[%s_NUM_CLASSES];\n", P, P);
    W("\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    return 0;
}

/* The macros every op is written with. The comments are emitted too: they are what a
 * reader of the generated file needs to know about building it. */
static void write_prelude(cgs *s) {
    const char *P = s->P;
    W("#ifdef %s_USE_OPENMP\n#define %s_OMP_FOR _Pragma(\"omp parallel for schedule(static)\")\n", P, P);
    W("#define %s_OMP_FOR2 _Pragma(\"omp parallel for collapse(2) schedule(static)\")\n#else\n", P);
    W("#define %s_OMP_FOR\n#define %s_OMP_FOR2\n#endif\n\n", P, P);
    W("/* Vectors: gcc and clang (GNU C vector extensions) get the pointwise convolutions' tiles\n"
      " * and the window ops' taps written on 16-float vectors, which each compiler lowers to the\n"
      " * target's registers (one 512-bit, two 256-bit, four 128-bit SSE or NEON registers), so\n"
      " * both compile them alike instead of each vectorising (or not) in its own way: clang 14\n"
      " * leaves the plain taps scalar. Any other C99 compiler, or -D%s_PLAIN_C, gets the same\n"
      " * loops in plain C; so does gcc when it targets AVX-512 directly (-march=native on an\n"
      " * AVX-512 machine), where it vectorises the plain loops itself and, as gcc 12 tunes a\n"
      " * Zen 5 (as znver3), spills the vector tile's inputs (measured 5-30 %% slower). */\n", P);
    W("#if ((defined(__GNUC__) && __GNUC__ >= 5) || defined(__clang__)) && !defined(%s_PLAIN_C) && \\\n"
      "    (defined(__clang__) || !defined(__AVX512F__))\n", P);
    W("#define %s_VEC 1\n", P);
    W("typedef float %s_v16 __attribute__((vector_size(64)));\n", P);
    W("typedef float %s_v16u __attribute__((vector_size(64), aligned(4), may_alias)); /* unaligned access */\n", P);
    W("typedef int %s_v16i __attribute__((vector_size(64)));\n", P);
    W("#define %s_LD(p) (*(const %s_v16u *)(p))\n#define %s_ST(p, v) (*(%s_v16u *)(p) = (v))\n", P, P, P, P);
    W("#define %s_INLINE __attribute__((always_inline)) inline\n", P);
    W("#else\n#define %s_VEC 0\n#define %s_INLINE\n#endif\n\n", P, P);
    W("/* a * b + c: in the vector code contracted into a fused multiply-add wherever the target\n"
      " * has one (gcc does not contract under -std=c99 unless told, hence the pragma; clang\n"
      " * does within an expression); otherwise gcc's and clang's __builtin_fmaf where the target\n"
      " * has a fast one, fmaf where C99's FP_FAST_FMAF says so. Never a call to fmaf() where\n"
      " * the compiler can avoid it: under -ffreestanding or -fno-builtin fmaf() stays a call. */\n");
    W("#if %s_VEC\n#if !defined(__clang__)\n#pragma GCC optimize(\"fp-contract=fast\")\n#endif\n", P);
    W("#define %s_FMA(a, b, c) ((a) * (b) + (c))\n", P);
    W("#elif defined(__GNUC__) && defined(__FP_FAST_FMAF)\n#define %s_FMA(a, b, c) __builtin_fmaf(a, b, c)\n", P);
    W("#elif defined(FP_FAST_FMAF)\n#define %s_FMA(a, b, c) fmaf(a, b, c)\n", P);
    W("#else\n#define %s_FMA(a, b, c) ((a) * (b) + (c))\n#endif\n\n", P);
    W("/* gcc at -O2 vectorises only loops it needs no remainder or alias check for (its\n"
      " * \"very cheap\" cost model); the plane copies and the plain loops need them: -O3's\n"
      " * model here (measured 10-15 %% faster at -O2 on the demo network). */\n");
    W("#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC optimize(\"vect-cost-model=dynamic\")\n#endif\n\n");
    W("/* Runtime dispatch (x86-64 with glibc, gcc >= 6 or clang >= 14): a build for the baseline\n"
      " * target still runs every op in AVX-512 or AVX+FMA code where the machine has it (one\n"
      " * clone per target, chosen when the program loads; features, not arch= names, which\n"
      " * clang 14 matches as CPU models). Off when the build already targets AVX-512, or with\n"
      " * -D%s_NO_DISPATCH. */\n", P);
    W("#if %s_VEC && defined(__x86_64__) && defined(__GLIBC__) && !defined(__AVX512F__) && !defined(%s_NO_DISPATCH) && \\\n"
      "    defined(__has_attribute)\n", P, P);
    W("#if __has_attribute(target_clones)\n");
    W("#define %s_CLONES __attribute__((target_clones(\"avx512f\", \"fma\", \"default\")))\n", P);
    W("#endif\n#endif\n#ifndef %s_CLONES\n#define %s_CLONES\n#endif\n\n", P, P);
    W("/* Before the row loop of a copy between planes of different widths: clang 14 unrolls\n"
      " * the short rows and vectorises across them with gathers and scatters, 2-3x slower than\n"
      " * the rows' own loops on the machine measured (docs/BENCHMARKS.md). */\n");
    W("#if defined(__clang__)\n#define %s_ROWS _Pragma(\"clang loop vectorize(disable)\")\n#else\n#define %s_ROWS\n#endif\n\n",
      P, P);
    if (s->uses_relu) W("static float %s_relu(float v) { return v > 0.0f ? v : 0.0f; }\n", P);
    W("static float %s_id(float v) { return v; }\n", P);
    W("#if %s_VEC /* macros, not functions: a vector argument would change the ABI between clones */\n", P);
    W("#define %s_vrelu(v) ((%s_v16)((%s_v16i)(v) & ((v) > (%s_v16){0.0f}))) /* v > 0 ? v : +0, as %s_relu */\n", P, P, P, P, P);
    W("#define %s_vid(v) (v)\n", P);
    W("/* the even and the odd elements of the 32 in u then v (a stride-2 gather) */\n");
    W("#if defined(__clang__)\n#define %s_EVEN(u, v) __builtin_shufflevector(u, v", P);
    for (int k = 0; k < 16; k++) W(", %d", 2 * k);
    W(")\n#define %s_ODD(u, v) __builtin_shufflevector(u, v", P);
    for (int k = 0; k < 16; k++) W(", %d", 2 * k + 1);
    W(")\n#else\n#define %s_EVEN(u, v) __builtin_shuffle(u, v, (%s_v16i){", P, P);
    for (int k = 0; k < 16; k++) W("%s%d", k ? ", " : "", 2 * k);
    W("})\n#define %s_ODD(u, v) __builtin_shuffle(u, v, (%s_v16i){", P, P);
    for (int k = 0; k < 16; k++) W("%s%d", k ? ", " : "", 2 * k + 1);
    W("})\n#endif\n#endif\n");
    W("/* copies and fills as loops: the file calls no C library function besides libm's */\n");
    W("static void %s_copy(float *restrict y, const float *restrict x, ptrdiff_t n) {\n"
      "    for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i];\n}\n", P);
    W("static void %s_fill(float *restrict y, float v, ptrdiff_t n) {\n"
      "    for (ptrdiff_t i = 0; i < n; i++) y[i] = v;\n}\n\n", P);
}

static const char *buf_expr(cgs *s, int node, char *b, size_t bl) {
    if (node == s->m->input) return "in";
    if (node == s->out_owner) return "out";
    snprintf(b, bl, "A + %lld", (long long)s->off[node]);
    return b;
}

static int write_source(cgs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    const char *P = s->P;
    W("/* %s.c - generated by dartsc from graph '", P);
    cg_put_comment_text(s->f, ir_graph_name(s->g), " * ");
    W("'; see %s.h. C99 (GNU C vectors where the compiler has them).\n *\n * Schedule (%d ops) and arena offsets in floats (one sample):\n", P, s->n_sched);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        W(" *   %s_op%d %s '", P, i, s->kind[i] == K_ZERO ? "zero" : ir_op_name(ND(s, i)->op));
        cg_put_comment_text(s->f, ND(s, i)->name, " * ");
        if (i == s->out_owner) W("' -> output\n");
        else W("' -> [%lld, %lld)%s\n", (long long)s->off[i], (long long)(s->off[i] + per_sample(ND(s, i))),
               s->cpart[i] >= 0 ? " (a slice of a concat)" : concat_free(s, i) ? " (written by its parts)" : "");
    }
    W(" */\n#include \"%s.h\"\n\n#include <math.h>\n#include <stddef.h>\n\n", P);
    write_prelude(s);

    W("const float %s_mean[%s_IN_C] = {", P, P);
    for (int c = 0; c < xi->shape[1]; c++) { W(c ? ", " : ""); put_float(s, c < 4 ? m->mean[c] : 0.f); }
    W("};\nconst float %s_std[%s_IN_C] = {", P, P);
    for (int c = 0; c < xi->shape[1]; c++) { W(c ? ", " : ""); put_float(s, c < 4 && m->std[c] > 0 ? m->std[c] : 1.f); }
    W("};\nconst char *const %s_class_names[%s_NUM_CLASSES] = {", P, P);
    for (int c = 0; c < xo->shape[1]; c++) {
        W(c == 0 ? "\n    " : c % 8 ? ", " : ",\n    ");
        if (m->class_names && m->class_names[c]) cg_put_c_string(s->f, m->class_names[c]);
        else W("\"%d\"", c);
    }
    W("\n};\n\n");

    for (int t = 0; t < s->n_sched; t++)
        if (write_weights(s, s->sched[t])) return -1;
    for (int t = 0; t < s->n_sched; t++)
        if (write_op(s, s->sched[t])) return -1;

    W("\nint %s_infer_with_arena(const float *input, float *output, int batch, void *arena) {\n", P);
    W("    float *A = (float *)arena;\n");
    W("    if (!input || !output || !arena || batch < 1 || batch > %s_MAX_BATCH) return -1;\n", P);
    W("    (void)%s_id;\n    (void)%s_copy;\n    (void)%s_fill;\n    (void)A;\n", P, P, P);
    W("    /* one sample at a time through the whole schedule: its activations stay in cache */\n");
    W("    for (int n = 0; n < batch; n++) {\n");
    W("        const float *in = input + (ptrdiff_t)n * %s_INPUT_SIZE;\n", P);
    W("        float *out = output + (ptrdiff_t)n * %s_OUTPUT_SIZE;\n        (void)in;\n        (void)out;\n", P);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        src r[IR_MAX_IATTR + 8];
        char b[64];
        int k = op_srcs(s, i, r);
        if (concat_free(s, i)) continue;
        W("        %s_op%d(%s", P, i, buf_expr(s, i, b, sizeof b));
        for (int j = 0; j < k; j++)
            if (r[j].node >= 0 && s->cpart[r[j].node] != i) W(", %s", buf_expr(s, r[j].node, b, sizeof b));
        if (s->scratch[i] > 0) W(", A + %lld", (long long)s->soff[i]);
        W(", 1);\n");
    }
    W("    }\n");
    if (s->out_owner == m->input)
        W("    %s_copy(output, input, (ptrdiff_t)batch * %s_OUTPUT_SIZE);\n", P, P);
    W("    return 0;\n}\n\n");
    /* 64-byte aligned (every buffer offset in it is a multiple of 64 bytes): a 16-float vector
     * access then never spans two cache lines. Left to itself clang 14 aligned this array to
     * 32 bytes, and DARTS_V2 ran 12 % slower than in gcc's build (docs/BENCHMARKS.md, session 10). */
    W("#if defined(__GNUC__)\nstatic float %s_arena[%lld] __attribute__((aligned(64)));\n#else\n", P,
      (long long)(s->arena_floats > 0 ? s->arena_floats : 1));
    W("static float %s_arena[%lld];\n#endif\n\n", P, (long long)(s->arena_floats > 0 ? s->arena_floats : 1));
    W("int %s_infer(const float *input, float *output, int batch) {\n", P);
    W("    return %s_infer_with_arena(input, output, batch, %s_arena);\n}\n", P, P);
    return 0;
}

/* cg_write_c_pair's writers */
static int header_cb(void *s) { return write_header(s); }
static int source_cb(void *s) { return write_source(s); }

int cg_c_write(const cg_model *m, const cg_c_opts *o, const char *dir, char *err, size_t errlen) {
    cgs st, *s = &st;
    memset(s, 0, sizeof *s);
    char dummy[8];
    s->err = err ? err : dummy;
    s->errlen = err ? errlen : sizeof dummy;
    s->m = m;
    if (!m || !m->g) return fail(s, "no model graph");
    if (cg_c_name_check(m->name, s->err, s->errlen)) return -1;
    s->g = m->g;
    s->P = m->name;
    s->n = ir_graph_num_nodes(m->g);
    s->max_batch = o && o->max_batch > 0 ? o->max_batch : 1;
    if (s->max_batch > (1 << 20)) return fail(s, "max_batch %d is too large", s->max_batch);
    int n = s->n > 0 ? s->n : 1, rc = -1;
    if (cg_fold_init(&s->fold, s->g, !(o && o->no_fold))) return fail(s, "out of memory");
    s->rep = calloc((size_t)n, sizeof *s->rep);
    s->cons = calloc((size_t)n, sizeof *s->cons);
    s->sched = calloc((size_t)n, sizeof *s->sched);
    s->off = calloc((size_t)n, sizeof *s->off);
    s->scratch = calloc((size_t)n, sizeof *s->scratch);
    s->addin = malloc((size_t)n * sizeof *s->addin);
    s->soff = calloc((size_t)n, sizeof *s->soff);
    s->cpart = malloc((size_t)n * sizeof *s->cpart);
    s->cpoff = calloc((size_t)n, sizeof *s->cpoff);
    unsigned char *flags = calloc((size_t)n * 10, 1);
    if (!s->rep || !s->cons || !s->sched || !s->off || !s->scratch || !s->soff || !s->addin || !s->cpart || !s->cpoff ||
        !flags) { fail(s, "out of memory"); goto done; }
    for (int i = 0; i < n; i++) s->addin[i] = -1;
    s->kind = flags;
    s->need = flags + n;
    s->live = flags + 2 * n;
    s->mat = flags + 3 * n;
    s->virt = flags + 4 * n;
    s->relu_out = flags + 5 * n;
    s->notconv = flags + 6 * n;
    s->vshift = flags + 7 * n;
    s->inplace = flags + 8 * n;
    s->cfuse = flags + 9 * n;
    if (analyse(s)) goto done;
    size_scratch(s);
    if (plan_order(s) || plan_concats(s)) goto done;
    if (cg_write_c_pair(dir, s->P, &s->f, header_cb, source_cb, s, s->err, s->errlen)) goto done;
    if (o && o->footprint) {
        o->footprint->weight_bytes = s->weight_floats * 4;
        o->footprint->arena_bytes = s->arena_floats * 4;
    }
    rc = 0;
done:
    cg_fold_free(&s->fold);
    free(s->rep);
    free(s->cons);
    free(s->sched);
    free(s->off);
    free(s->scratch);
    free(s->soff);
    free(s->addin);
    free(s->cpart);
    free(s->cpoff);
    free(flags);
    return rc;
}
