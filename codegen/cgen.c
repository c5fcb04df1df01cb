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

#include "fold.h"

enum { K_NONE, K_EMIT, K_ALIAS, K_ZERO }; /* what a node becomes */

#define ALIGN_FLOATS 16 /* 64-byte buffers */
#define MAX_NAME 40

typedef struct src {
    int node; /* buffer owner; -1: a zero the op handles itself (CONCAT) */
    int relu; /* read through a fused ReLU */
} src;

typedef struct cgs {
    const cg_model *m;
    const ir_graph *g;
    int n, max_batch;
    const char *P; /* symbol prefix: the model name */
    cg_fold fold;
    int *rep;            /* K_ALIAS: the node whose value this is */
    unsigned char *kind; /* K_* */
    unsigned char *need, *live, *mat, *virt, *relu_out, *notconv;
    int *cons;           /* readers among emitted ops */
    int *sched, n_sched;
    int64_t *off;        /* arena offset in floats; -1 none */
    int64_t arena_floats;
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
    if (s->virt[o]) return (src){own(s, ND(s, o)->inputs[0]), 1};
    return (src){o, 0};
}

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
        if (is_zero(s, in) && nd->op == IR_OP_CONCAT) { out[k++] = (src){-1, 0}; continue; }
        out[k++] = resolve(s, in);
    }
    return k;
}

/* ---- analysis ------------------------------------------------------------------------ */

static int check_name(cgs *s, const char *name) {
    if (!name || !*name) return fail(s, "the model needs a name (a C identifier)");
    size_t L = strlen(name);
    if (L > MAX_NAME) return fail(s, "model name '%s' is longer than %d characters", name, MAX_NAME);
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return fail(s, "model name '%s' must start with a letter (it prefixes every C symbol)", name);
    for (size_t i = 0; i < L; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return fail(s, "model name '%s' is not a C identifier (letters, digits, '_')", name);
    }
    return 0;
}

static int analyse(cgs *s) {
    const cg_model *m = s->m;
    int n = s->n;
    if (m->input < 0 || m->input >= n || ND(s, m->input)->op != IR_OP_INPUT)
        return fail(s, "model input %d is not an input node", m->input);
    const ir_node *xin = ND(s, m->input);
    if (xin->ndim != 4 || xin->dtype != IR_DTYPE_F32)
        return fail(s, "input '%s' must be a float (N, C, H, W) tensor", xin->name);
    if (m->in_c > 0 && m->in_c != xin->shape[1])
        return fail(s, "model says %d input channels, input '%s' has %lld", m->in_c, xin->name,
                    (long long)xin->shape[1]);
    if (m->output < 0 || m->output >= n) return fail(s, "model output %d is not a node", m->output);
    const ir_node *xo = ND(s, m->output);
    if (xo->ndim < 2 || xo->dtype != IR_DTYPE_F32 || xo->shape[0] != xin->shape[0])
        return fail(s, "output '%s' must be a float (N, classes) tensor with the input's batch", xo->name);
    if (m->class_names && m->n_classes != xo->shape[1])
        return fail(s, "%d class names for %lld outputs of '%s'", m->n_classes, (long long)xo->shape[1], xo->name);

    /* needed: what the output depends on */
    s->need[m->output] = 1;
    for (int i = n - 1; i >= 0; i--) {
        if (!s->need[i]) continue;
        const ir_node *nd = ND(s, i);
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) s->need[nd->inputs[j]] = 1;
    }
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
            if (ND(s, i)->op != IR_OP_CONV2D) s->notconv[r[j].node] = 1;
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

    /* schedule */
    for (int i = 0; i < n; i++) {
        if (!s->live[i]) continue;
        if ((s->kind[i] == K_EMIT && !s->virt[i]) || (s->kind[i] == K_ZERO && s->mat[i])) s->sched[s->n_sched++] = i;
        if (s->virt[i] || s->relu_out[i] || (s->kind[i] == K_EMIT && ND(s, i)->op == IR_OP_RELU)) s->uses_relu = 1;
    }
    return 0;
}

/* ---- arena planning ------------------------------------------------------------------- */

typedef struct blk { int64_t off, size; } blk;

static int plan(cgs *s) {
    int n = s->n;
    int *last = malloc((size_t)n * sizeof *last);
    blk *fr = malloc((size_t)(s->n_sched + 2) * sizeof *fr);
    if (!last || !fr) { free(last); free(fr); return fail(s, "out of memory"); }
    for (int i = 0; i < n; i++) { last[i] = -1; s->off[i] = -1; }
    for (int t = 0; t < s->n_sched; t++) {
        src r[IR_MAX_IATTR + 8];
        int k = op_srcs(s, s->sched[t], r);
        for (int j = 0; j < k; j++)
            if (r[j].node >= 0) last[r[j].node] = t;
    }
    int nf = 0;
    int64_t top = 0;
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        if (i != s->out_owner) {
            int64_t need = per_sample(ND(s, i)) * s->max_batch;
            need = (need + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
            int best = -1;
            for (int b = 0; b < nf; b++)
                if (fr[b].size >= need && (best < 0 || fr[b].size < fr[best].size)) best = b;
            if (best >= 0) {
                s->off[i] = fr[best].off;
                fr[best].off += need;
                fr[best].size -= need;
                if (!fr[best].size) { memmove(fr + best, fr + best + 1, (size_t)(nf - best - 1) * sizeof *fr); nf--; }
            } else if (nf && fr[nf - 1].off + fr[nf - 1].size == top) { /* grow the block at the top */
                s->off[i] = fr[nf - 1].off;
                top = s->off[i] + need;
                nf--;
            } else {
                s->off[i] = top;
                top += need;
            }
        }
        /* release what t read last (and an output nobody reads) */
        for (int u = 0; u <= t; u++) {
            int j = s->sched[u];
            if (s->off[j] < 0 || (last[j] != t && !(last[j] < 0 && u == t))) continue;
            int64_t size = (per_sample(ND(s, j)) * s->max_batch + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
            int64_t o = s->off[j];
            int b = 0;
            while (b < nf && fr[b].off < o) b++;
            memmove(fr + b + 1, fr + b, (size_t)(nf - b) * sizeof *fr);
            fr[b] = (blk){o, size};
            nf++;
            if (b + 1 < nf && fr[b].off + fr[b].size == fr[b + 1].off) {
                fr[b].size += fr[b + 1].size;
                memmove(fr + b + 1, fr + b + 2, (size_t)(nf - b - 2) * sizeof *fr);
                nf--;
            }
            if (b > 0 && fr[b - 1].off + fr[b - 1].size == fr[b].off) {
                fr[b - 1].size += fr[b].size;
                memmove(fr + b, fr + b + 1, (size_t)(nf - b - 1) * sizeof *fr);
                nf--;
            }
        }
    }
    s->arena_floats = top;
    free(last);
    free(fr);
    return 0;
}

/* ---- writing helpers -------------------------------------------------------------------- */

#define W(...) fprintf(s->f, __VA_ARGS__)

/* Text safe inside a C comment: no comment end, no control characters. */
static void put_comment_text(cgs *s, const char *t, const char *line_prefix) {
    for (; *t; t++) {
        if (t[0] == '*' && t[1] == '/') { W("* /"); t++; continue; }
        if (*t == '\n') { W("\n%s", line_prefix); continue; }
        fputc((unsigned char)*t < 32 || (unsigned char)*t == 127 ? '?' : *t, s->f);
    }
}

static void put_c_string(cgs *s, const char *t) {
    fputc('"', s->f);
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c == '"' || c == '\\') W("\\%c", c);
        else if (c < 32 || c >= 127) W("\\%03o", c);
        else fputc(c, s->f);
    }
    fputc('"', s->f);
}

/* An exact float literal: hex float, or a <math.h> constant. */
static void put_float(cgs *s, float v) {
    if (isnan(v)) W("NAN");
    else if (isinf(v)) W(v > 0 ? "INFINITY" : "-INFINITY");
    else W("%af", (double)v);
}

static void put_array(cgs *s, const char *what, int node, const float *v, int64_t count) {
    W("static const float %s_%s%d[%lld] = {", s->P, what, node, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        W(i % 6 ? " " : "\n    ");
        put_float(s, v[i]);
        W(i + 1 < count ? "," : "\n");
    }
    W("};\n");
}

static const char *rd(int relu) { return relu ? "_relu" : "_id"; }

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
        put_comment_text(s, nd->name, " * ");
        W("': weight (%d, %lld, %lld, %lld)%s */\n", K, (long long)w->shape[1], (long long)w->shape[2],
          (long long)w->shape[3], bn >= 0 ? ", BN folded" : "");
        if (bn < 0) {
            put_array(s, "w", i, V[nd->inputs[1]], ir_node_numel(w));
            return 0;
        }
        const ir_node *b = ND(s, bn);
        float *wo = malloc(sizeof(float) * (size_t)ir_node_numel(w)), *bo = malloc(sizeof(float) * (size_t)K);
        if (!wo || !bo) { free(wo); free(bo); return fail(s, "out of memory"); }
        const int *bi = b->inputs;
        cg_fold_conv_bn(wo, bo, V[nd->inputs[1]], NULL, K, per_k, bi[1] >= 0 ? V[bi[1]] : NULL,
                        bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]], b->fattr[IR_F_BN_EPS]);
        put_array(s, "w", i, wo, ir_node_numel(w));
        put_array(s, "b", i, bo, K);
        free(wo);
        free(bo);
    } else if (nd->op == IR_OP_BATCHNORM) {
        int C = (int)nd->shape[1];
        const int *bi = nd->inputs;
        float *sc = malloc(sizeof(float) * (size_t)C), *sh = malloc(sizeof(float) * (size_t)C);
        if (!sc || !sh) { free(sc); free(sh); return fail(s, "out of memory"); }
        cg_bn_affine(sc, sh, bi[1] >= 0 ? V[bi[1]] : NULL, bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]],
                     nd->fattr[IR_F_BN_EPS], C);
        W("/* batchnorm '");
        put_comment_text(s, nd->name, " * ");
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
        put_comment_text(s, nd->name, " * ");
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
    put_comment_text(s, nd->name, " * ");
    W("' -> (N");
    for (int d = 1; d < nd->ndim; d++) W(", %lld", (long long)nd->shape[d]);
    W(")%s */\nstatic void %s_op%d(float *restrict y", s->relu_out[i] ? ", ReLU fused on output" : "", s->P, i);
    for (int j = 0; j < n_in; j++) W(", const float *restrict x%d", j);
    W(", int batch) {\n");
}

static void emit_conv(cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i), *xn = ND(s, x.node);
    const ir_node *w = ND(s, nd->inputs[1]);
    const char *P = s->P, *R = rd(x.relu), *A = rd(s->relu_out[i]);
    const int64_t *ia = nd->iattr;
    int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3];
    int K = (int)w->shape[0], Cg = (int)w->shape[1], Rk = (int)w->shape[2], Sk = (int)w->shape[3];
    int sh = (int)ia[IR_A_CONV_STRIDE_H], sw = (int)ia[IR_A_CONV_STRIDE_W], ph = (int)ia[IR_A_CONV_PAD_H],
        pw = (int)ia[IR_A_CONV_PAD_W], dh = (int)ia[IR_A_CONV_DIL_H], dw = (int)ia[IR_A_CONV_DIL_W],
        G = (int)ia[IR_A_CONV_GROUPS];
    int Pp = (int)nd->shape[2], Q = (int)nd->shape[3];
    int64_t HW = (int64_t)H * Wd, PQ = (int64_t)Pp * Q;
    int bias = s->fold.conv_bn[i] >= 0;
    char b0[64];
    if (bias) snprintf(b0, sizeof b0, "%s_b%d[k]", P, i);
    else snprintf(b0, sizeof b0, "0.0f");

    if (Rk == 1 && Sk == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && G == 1) {
        /* pointwise: the pixel loop innermost and contiguous */
        W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int k = 0; k < %d; k++) {\n", P, K);
        W("            const float *restrict xn = x0 + (ptrdiff_t)n * %lld;\n", (long long)(C * HW));
        W("            float *restrict yk = y + ((ptrdiff_t)n * %d + k) * %lld;\n", K, (long long)PQ);
        W("            const float *restrict wk = %s_w%d + k * %d;\n", P, i, C);
        W("            for (int i = 0; i < %lld; i++) yk[i] = %s;\n", (long long)PQ, b0);
        W("            for (int c = 0; c < %d; c++) {\n", C);
        W("                const float wv = wk[c];\n");
        W("                const float *restrict xc = xn + c * %lld;\n", (long long)HW);
        W("                for (int i = 0; i < %lld; i++) yk[i] += wv * %s_%s(xc[i]);\n", (long long)PQ, P, R + 1);
        W("            }\n");
        if (s->relu_out[i]) W("            for (int i = 0; i < %lld; i++) yk[i] = %s_relu(yk[i]);\n", (long long)PQ, P);
        W("        }\n}\n");
        return;
    }
    if (G == C && K == C && Cg == 1 && Rk * Sk <= 49) {
        /* depthwise: interior rows/columns need no bounds checks; taps unrolled */
        int P0 = (ph + sh - 1) / sh, P1 = (H - 1 + ph - (Rk - 1) * dh) < 0 ? 0 : (H - 1 + ph - (Rk - 1) * dh) / sh + 1;
        int Q0 = (pw + sw - 1) / sw, Q1 = (Wd - 1 + pw - (Sk - 1) * dw) < 0 ? 0 : (Wd - 1 + pw - (Sk - 1) * dw) / sw + 1;
        if (P1 > Pp) P1 = Pp;
        if (Q1 > Q) Q1 = Q;
        if (P0 > P1) P0 = P1;
        if (Q0 > Q1) Q0 = Q1;
        int interior = P1 > P0 && Q1 > Q0;
        /* border pixel helper: emitted before the op function, see write_op */
        W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int c = 0; c < %d; c++) {\n", P, C);
        W("            const float *restrict xp = x0 + ((ptrdiff_t)n * %d + c) * %lld;\n", C, (long long)HW);
        W("            float *restrict yp = y + ((ptrdiff_t)n * %d + c) * %lld;\n", C, (long long)PQ);
        W("            const float *restrict wc = %s_w%d + c * %d;\n", P, i, Rk * Sk);
        W("            const float b = %s;\n", bias ? (snprintf(b0, sizeof b0, "%s_b%d[c]", P, i), b0) : "0.0f");
        if (interior) {
            W("            const float ");
            for (int t = 0; t < Rk * Sk; t++) W("w%d = wc[%d]%s", t, t, t + 1 < Rk * Sk ? ", " : ";\n");
        }
        /* border rows, interior rows (checked edges, unchecked middle), border rows: three
         * loops rather than a branch so the compiler sees the interior loop as the hot one */
        const int lo[3] = {0, P0, P1}, hi[3] = {interior ? P0 : Pp, P1, Pp};
        for (int part = 0; part < 3; part++) {
            if (hi[part] <= lo[part] || (part > 0 && !interior)) continue;
            W("            for (int p = %d; p < %d; p++) {\n", lo[part], hi[part]);
            W("                float *restrict yr = yp + p * %d;\n", Q);
            if (part != 1) {
                W("                for (int q = 0; q < %d; q++) yr[q] = %s%s(%s_op%d_px(xp, wc, b, p, q));\n", Q, P, A, P, i);
                W("            }\n");
                continue;
            }
            for (int r = 0; r < Rk; r++)
                W("                const float *restrict r%d = xp + (p * %d %c %d) * %d;\n", r, sh, r * dh - ph < 0 ? '-' : '+',
                  abs(r * dh - ph), Wd);
            if (Q0 > 0) W("                for (int q = 0; q < %d; q++) yr[q] = %s%s(%s_op%d_px(xp, wc, b, p, q));\n", Q0, P, A, P, i);
            W("                for (int q = %d; q < %d; q++)\n                    yr[q] = %s%s(b", Q0, Q1, P, A);
            for (int r = 0; r < Rk; r++)
                for (int t = 0; t < Sk; t++) {
                    int o = t * dw - pw;
                    if ((r * Sk + t) % 3 == 0) W("\n                        ");
                    if (sw == 1) W(" + w%d * %s%s(r%d[q %c %d])", r * Sk + t, P, R, r, o < 0 ? '-' : '+', o < 0 ? -o : o);
                    else W(" + w%d * %s%s(r%d[q * %d %c %d])", r * Sk + t, P, R, r, sw, o < 0 ? '-' : '+', o < 0 ? -o : o);
                }
            W(");\n");
            if (Q1 < Q) W("                for (int q = %d; q < %d; q++) yr[q] = %s%s(%s_op%d_px(xp, wc, b, p, q));\n", Q1, Q, P, A, P, i);
            W("            }\n");
        }
        W("        }\n}\n");
        return;
    }
    /* general direct convolution: each tap scattered over the valid output range */
    int Kg = K / G;
    W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int k = 0; k < %d; k++) {\n", P, K);
    if (G == 1) W("            const float *restrict xg = x0 + (ptrdiff_t)n * %lld;\n", (long long)(C * HW));
    else W("            const float *restrict xg = x0 + ((ptrdiff_t)n * %d + (k / %d) * %d) * %lld;\n", C, Kg, Cg, (long long)HW);
    W("            float *restrict yk = y + ((ptrdiff_t)n * %d + k) * %lld;\n", K, (long long)PQ);
    W("            const float *restrict wk = %s_w%d + (ptrdiff_t)k * %d;\n", P, i, Cg * Rk * Sk);
    W("            for (int i = 0; i < %lld; i++) yk[i] = %s;\n", (long long)PQ, b0);
    W("            for (int c = 0; c < %d; c++)\n                for (int r = 0; r < %d; r++) {\n", Cg, Rk);
    W("                    const int oh = r * %d - %d;\n", dh, ph);
    W("                    const int p0 = oh >= 0 ? 0 : (%d - oh) / %d;\n", sh - 1, sh);
    W("                    const int p1r = %d - oh < 0 ? 0 : (%d - oh) / %d + 1;\n", H - 1, H - 1, sh);
    W("                    const int p1 = p1r > %d ? %d : p1r;\n", Pp, Pp);
    W("                    for (int s = 0; s < %d; s++) {\n", Sk);
    W("                        const float wv = wk[(c * %d + r) * %d + s];\n", Rk, Sk);
    W("                        const int ow = s * %d - %d;\n", dw, pw);
    W("                        const int q0 = ow >= 0 ? 0 : (%d - ow) / %d;\n", sw - 1, sw);
    W("                        const int q1r = %d - ow < 0 ? 0 : (%d - ow) / %d + 1;\n", Wd - 1, Wd - 1, sw);
    W("                        const int q1 = q1r > %d ? %d : q1r;\n", Q, Q);
    W("                        for (int p = p0; p < p1; p++) {\n");
    W("                            const float *restrict xr = xg + (c * %d + p * %d + oh) * %d;\n", H, sh, Wd);
    W("                            float *restrict yr = yk + p * %d;\n", Q);
    if (sw == 1) W("                            for (int q = q0; q < q1; q++) yr[q] += wv * %s%s(xr[q + ow]);\n", P, R);
    else W("                            for (int q = q0; q < q1; q++) yr[q] += wv * %s%s(xr[q * %d + ow]);\n", P, R, sw);
    W("                        }\n                    }\n                }\n");
    if (s->relu_out[i]) W("            for (int i = 0; i < %lld; i++) yk[i] = %s_relu(yk[i]);\n", (long long)PQ, P);
    W("        }\n}\n");
}

/* The checked per-pixel sum of a depthwise conv (borders). */
static void emit_dw_pixel(cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i), *xn = ND(s, x.node);
    const ir_node *w = ND(s, nd->inputs[1]);
    const int64_t *ia = nd->iattr;
    int H = (int)xn->shape[2], Wd = (int)xn->shape[3], Rk = (int)w->shape[2], Sk = (int)w->shape[3];
    W("\nstatic float %s_op%d_px(const float *restrict xp, const float *restrict wc, float acc, int p, int q) {\n", s->P, i);
    W("    for (int r = 0; r < %d; r++) {\n", Rk);
    W("        const int ih = p * %d - %d + r * %d;\n", (int)ia[IR_A_CONV_STRIDE_H], (int)ia[IR_A_CONV_PAD_H],
      (int)ia[IR_A_CONV_DIL_H]);
    W("        if (ih < 0 || ih >= %d) continue;\n", H);
    W("        for (int s = 0; s < %d; s++) {\n", Sk);
    W("            const int iw = q * %d - %d + s * %d;\n", (int)ia[IR_A_CONV_STRIDE_W], (int)ia[IR_A_CONV_PAD_W],
      (int)ia[IR_A_CONV_DIL_W]);
    W("            if (iw < 0 || iw >= %d) continue;\n", Wd);
    W("            acc += wc[r * %d + s] * %s%s(xp[ih * %d + iw]);\n", Sk, s->P, rd(x.relu), Wd);
    W("        }\n    }\n    return acc;\n}\n");
}

static int is_depthwise_fast(const cgs *s, int i, src x) {
    const ir_node *nd = ND(s, i), *w = ND(s, nd->inputs[1]);
    int C = (int)ND(s, x.node)->shape[1];
    int Rk = (int)w->shape[2], Sk = (int)w->shape[3];
    int pointwise = Rk == 1 && Sk == 1 && nd->iattr[IR_A_CONV_STRIDE_H] == 1 && nd->iattr[IR_A_CONV_STRIDE_W] == 1 &&
                    nd->iattr[IR_A_CONV_PAD_H] == 0 && nd->iattr[IR_A_CONV_PAD_W] == 0 && nd->iattr[IR_A_CONV_GROUPS] == 1;
    return !pointwise && nd->iattr[IR_A_CONV_GROUPS] == C && w->shape[0] == C && w->shape[1] == 1 && Rk * Sk <= 49;
}

static void emit_pool(cgs *s, int i) {
    const ir_node *nd = ND(s, i), *xn = ND(s, nd->inputs[0]);
    const char *P = s->P;
    int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3], Pp = (int)nd->shape[2], Q = (int)nd->shape[3];
    int k = (int)nd->iattr[IR_A_POOL_K], st = (int)nd->iattr[IR_A_POOL_STRIDE], pad = (int)nd->iattr[IR_A_POOL_PAD];
    int mx = nd->op == IR_OP_MAXPOOL;
    W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int c = 0; c < %d; c++) {\n", P, C);
    W("            const float *restrict xp = x0 + ((ptrdiff_t)n * %d + c) * %d;\n", C, H * Wd);
    W("            float *restrict yp = y + ((ptrdiff_t)n * %d + c) * %d;\n", C, Pp * Q);
    W("            for (int p = 0; p < %d; p++) {\n", Pp);
    W("                const int h0 = p * %d - %d, ha = h0 < 0 ? 0 : h0, hb = h0 + %d > %d ? %d : h0 + %d;\n", st, pad, k, H, H, k);
    W("                for (int q = 0; q < %d; q++) {\n", Q);
    W("                    const int w0 = q * %d - %d, wa = w0 < 0 ? 0 : w0, wb = w0 + %d > %d ? %d : w0 + %d;\n", st, pad, k, Wd, Wd, k);
    if (mx) {
        W("                    float m = xp[ha * %d + wa]; /* padding never wins; the first maximum does */\n", Wd);
        W("                    for (int i = ha; i < hb; i++)\n                        for (int j = wa; j < wb; j++)\n");
        W("                            if (xp[i * %d + j] > m) m = xp[i * %d + j];\n", Wd, Wd);
        W("                    yp[p * %d + q] = m;\n", Q);
    } else {
        W("                    float acc = 0.0f; /* padding excluded from the count */\n");
        W("                    for (int i = ha; i < hb; i++)\n                        for (int j = wa; j < wb; j++) acc += xp[i * %d + j];\n", Wd);
        W("                    yp[p * %d + q] = acc / (float)((hb - ha) * (wb - wa));\n", Q);
    }
    W("                }\n            }\n        }\n}\n");
}

static int write_op(cgs *s, int i) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    src r[IR_MAX_IATTR + 8];
    int k = op_srcs(s, i, r), nin = 0;
    for (int j = 0; j < k; j++) nin += r[j].node >= 0;
    int64_t ps = per_sample(nd);
    if (s->kind[i] == K_ZERO) {
        op_head(s, i, 0);
        W("    memset(y, 0, sizeof(float) * (size_t)batch * %lld);\n}\n", (long long)ps);
        return 0;
    }
    if (nd->op == IR_OP_CONV2D && is_depthwise_fast(s, i, r[0])) emit_dw_pixel(s, i, r[0]);
    op_head(s, i, nin);
    const char *A = rd(s->relu_out[i]);
    switch (nd->op) {
    case IR_OP_CONV2D:
        emit_conv(s, i, r[0]);
        return 0;
    case IR_OP_MAXPOOL: case IR_OP_AVGPOOL:
        emit_pool(s, i);
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
                W("        memset(y + ((ptrdiff_t)n * %lld + %lld) * %lld, 0, sizeof(float) * %lld);\n", (long long)Cy,
                  (long long)off, (long long)HW, (long long)(Cx * HW));
            else
                W("        memcpy(y + ((ptrdiff_t)n * %lld + %lld) * %lld, x%d + (ptrdiff_t)n * %lld, sizeof(float) * %lld);\n",
                  (long long)Cy, (long long)off, (long long)HW, xi++, (long long)(Cx * HW), (long long)(Cx * HW));
            off += Cx;
        }
        W("    }\n}\n");
        return 0;
    }
    case IR_OP_SLICE: {
        int64_t HW = plane_of(nd), Cx = ND(s, nd->inputs[0])->shape[1], L = nd->shape[1];
        W("    for (int n = 0; n < batch; n++)\n");
        W("        memcpy(y + (ptrdiff_t)n * %lld, x0 + ((ptrdiff_t)n * %lld + %lld) * %lld, sizeof(float) * %lld);\n}\n",
          (long long)(L * HW), (long long)Cx, (long long)nd->iattr[IR_A_SLICE_START], (long long)HW, (long long)(L * HW));
        return 0;
    }
    case IR_OP_SHIFT: {
        const ir_node *xn = ND(s, nd->inputs[0]);
        int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3];
        W("    %s_OMP_FOR2\n    for (int n = 0; n < batch; n++)\n        for (int c = 0; c < %d; c++)\n", P, C);
        W("            for (int i = 0; i < %d; i++) /* x[:, :, 1:, 1:] */\n", H - 1);
        W("                memcpy(y + (((ptrdiff_t)n * %d + c) * %d + i) * %d, x0 + (((ptrdiff_t)n * %d + c) * %d + i + 1) * %d + 1,\n"
          "                       sizeof(float) * %d);\n}\n", C, H - 1, Wd - 1, C, H, Wd, Wd - 1);
        return 0;
    }
    case IR_OP_GAP: {
        int C = (int)nd->shape[1];
        int64_t HW = plane_of(ND(s, nd->inputs[0]));
        W("    %s_OMP_FOR\n    for (ptrdiff_t pl = 0; pl < (ptrdiff_t)batch * %d; pl++) {\n", P, C);
        W("        const float *restrict xp = x0 + pl * %lld;\n        double acc = 0.0;\n", (long long)HW);
        W("        for (int i = 0; i < %lld; i++) acc += xp[i];\n", (long long)HW);
        W("        y[pl] = (float)(acc / %lld.0);\n    }\n}\n", (long long)HW);
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
    put_comment_text(s, ir_graph_name(s->g), " *   ");
    if (m->space_name) { W(", derived from search space '"); put_comment_text(s, m->space_name, " *   "); W("'"); }
    W(".\n");
    if (m->genotype_json) { W(" * Genotype:\n *   "); put_comment_text(s, m->genotype_json, " *   "); W("\n"); }
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
    put_comment_text(s, xo->name, " *   ");
    W("'); the class is the index of the largest value.\n");
    W(" *\n * Usage:\n");
    W(" *   static float in[%s_INPUT_SIZE], out[%s_OUTPUT_SIZE];\n", s->P, s->P);
    W(" *   ... fill in with one normalised image ...\n");
    W(" *   if (%s_infer(in, out, 1) != 0) return -1;\n", s->P);
    W(" *   int best = 0;\n *   for (int k = 1; k < %s_NUM_CLASSES; k++) if (out[k] > out[best]) best = k;\n", s->P);
    W(" *   printf(\"%%d %%s\\n\", best, %s_class_names[best]);\n", s->P);
    W(" * Build: cc -std=c99 -O2 -c %s.c, link with -lm. Define %s_USE_OPENMP and pass -fopenmp to\n", s->P, s->P);
    W(" * run the batch/channel loops in parallel.\n");
    W(" *\n * %s_infer uses one static arena and is not reentrant; threads call\n", s->P);
    W(" * %s_infer_with_arena, each with its own %s_ARENA_BYTES of float-aligned memory.\n", s->P, s->P);
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
    W("#define %s_ARENA_BYTES %lld /* activations at %s_MAX_BATCH */\n\n", P, (long long)(s->arena_floats * 4), P);
    W("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    W("int %s_infer(const float *input, float *output, int batch);\n", P);
    W("int %s_infer_with_arena(const float *input, float *output, int batch, void *arena);\n", P);
    W("extern const float %s_mean[%s_IN_C], %s_std[%s_IN_C];\n", P, P, P, P);
    W("extern const char *const %s_class_names[%s_NUM_CLASSES];\n", P, P);
    W("\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    return 0;
}

static const char *buf_expr(cgs *s, int node, char *b, size_t bl) {
    if (node == s->m->input) return "input";
    if (node == s->out_owner) return "output";
    snprintf(b, bl, "A + %lld", (long long)s->off[node]);
    return b;
}

static int write_source(cgs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    const char *P = s->P;
    W("/* %s.c - generated by dartsc from graph '", P);
    put_comment_text(s, ir_graph_name(s->g), " * ");
    W("'; see %s.h. C99, needs only libm.\n *\n * Schedule (%d ops) and arena offsets in floats at batch %d:\n", P, s->n_sched,
      s->max_batch);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        W(" *   %s_op%d %s '", P, i, s->kind[i] == K_ZERO ? "zero" : ir_op_name(ND(s, i)->op));
        put_comment_text(s, ND(s, i)->name, " * ");
        if (i == s->out_owner) W("' -> output\n");
        else W("' -> [%lld, %lld)\n", (long long)s->off[i], (long long)(s->off[i] + per_sample(ND(s, i)) * s->max_batch));
    }
    W(" */\n#include \"%s.h\"\n\n#include <math.h>\n#include <stddef.h>\n#include <string.h>\n\n", P);
    W("#ifdef %s_USE_OPENMP\n#define %s_OMP_FOR _Pragma(\"omp parallel for schedule(static)\")\n", P, P);
    W("#define %s_OMP_FOR2 _Pragma(\"omp parallel for collapse(2) schedule(static)\")\n#else\n", P);
    W("#define %s_OMP_FOR\n#define %s_OMP_FOR2\n#endif\n\n", P, P);
    if (s->uses_relu) W("static float %s_relu(float v) { return v > 0.0f ? v : 0.0f; }\n", P);
    W("static float %s_id(float v) { return v; }\n\n", P);

    W("const float %s_mean[%s_IN_C] = {", P, P);
    for (int c = 0; c < xi->shape[1]; c++) { W(c ? ", " : ""); put_float(s, c < 4 ? m->mean[c] : 0.f); }
    W("};\nconst float %s_std[%s_IN_C] = {", P, P);
    for (int c = 0; c < xi->shape[1]; c++) { W(c ? ", " : ""); put_float(s, c < 4 && m->std[c] > 0 ? m->std[c] : 1.f); }
    W("};\nconst char *const %s_class_names[%s_NUM_CLASSES] = {", P, P);
    for (int c = 0; c < xo->shape[1]; c++) {
        W(c == 0 ? "\n    " : c % 8 ? ", " : ",\n    ");
        if (m->class_names && m->class_names[c]) put_c_string(s, m->class_names[c]);
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
    W("    (void)%s_id;\n    (void)A;\n", P);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        src r[IR_MAX_IATTR + 8];
        char b[64];
        int k = op_srcs(s, i, r);
        W("    %s_op%d(%s", P, i, buf_expr(s, i, b, sizeof b));
        for (int j = 0; j < k; j++)
            if (r[j].node >= 0) W(", %s", buf_expr(s, r[j].node, b, sizeof b));
        W(", batch);\n");
    }
    if (s->out_owner == m->input)
        W("    memcpy(output, input, sizeof(float) * (size_t)batch * %s_OUTPUT_SIZE);\n", P);
    W("    return 0;\n}\n\n");
    W("static float %s_arena[%lld];\n\n", P, (long long)(s->arena_floats > 0 ? s->arena_floats : 1));
    W("int %s_infer(const float *input, float *output, int batch) {\n", P);
    W("    return %s_infer_with_arena(input, output, batch, %s_arena);\n}\n", P, P);
    return 0;
}

static int write_file(cgs *s, const char *path, int (*fn)(cgs *)) {
    s->f = fopen(path, "w");
    if (!s->f) return fail(s, "cannot create '%s'", path);
    int rc = fn(s);
    if (ferror(s->f)) rc = rc ? rc : fail(s, "write error on '%s'", path);
    if (fclose(s->f) && !rc) rc = fail(s, "write error on '%s'", path);
    s->f = NULL;
    return rc;
}

int cg_c_write(const cg_model *m, const cg_c_opts *o, const char *dir, char *err, size_t errlen) {
    cgs st, *s = &st;
    memset(s, 0, sizeof *s);
    char dummy[8];
    s->err = err ? err : dummy;
    s->errlen = err ? errlen : sizeof dummy;
    s->m = m;
    if (!m || !m->g) return fail(s, "no model graph");
    if (check_name(s, m->name)) return -1;
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
    unsigned char *flags = calloc((size_t)n * 8, 1);
    if (!s->rep || !s->cons || !s->sched || !s->off || !flags) { fail(s, "out of memory"); goto done; }
    s->kind = flags;
    s->need = flags + n;
    s->live = flags + 2 * n;
    s->mat = flags + 3 * n;
    s->virt = flags + 4 * n;
    s->relu_out = flags + 5 * n;
    s->notconv = flags + 6 * n;
    if (analyse(s) || plan(s)) goto done;
    char hpath[4096], cpath[4096];
    snprintf(hpath, sizeof hpath, "%s/%s.h", dir, s->P);
    snprintf(cpath, sizeof cpath, "%s/%s.c", dir, s->P);
    if (write_file(s, hpath, write_header) || write_file(s, cpath, write_source)) {
        remove(hpath);
        remove(cpath);
        goto done;
    }
    rc = 0;
done:
    cg_fold_free(&s->fold);
    free(s->rep);
    free(s->cons);
    free(s->sched);
    free(s->off);
    free(flags);
    return rc;
}
