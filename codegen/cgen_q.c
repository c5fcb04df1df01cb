/* cgen_q.c — see cgen_q.h. Three stages as in cgen.c: analyse (aliases, ReLUs read
 * through, the schedule), plan (the byte arena by liveness), write (header, integer
 * constants, one static function per op, the entry points). */
#include "cgen_q.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ctext.h"
#include "fold.h"
#include "quant.h"

#define ALIGN_BYTES 16
#define MAX_SRC (IR_MAX_IATTR + 8)

typedef struct qsrc {
    int node; /* buffer owner */
    int relu; /* read through a ReLU */
} qsrc;

typedef struct qs {
    const cg_model *m;
    const ir_graph *g;
    int n, max_batch, integer_only;
    const char *P;
    cg_fold fold;
    cg_quant q;
    int *rep;                    /* alias -> the node whose value it is */
    unsigned char *need, *emit, *virt;
    int *sched, n_sched;
    int64_t *off, *scratch, *soff; /* bytes */
    int64_t arena, qin_off, qout_off, weight_bytes;
    int out_owner;
    FILE *f;
    char *err;
    size_t errlen;
} qs;

static int fail(qs *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define W(...) fprintf(s->f, __VA_ARGS__)

static const ir_node *ND(const qs *s, int i) { return ir_graph_node(s->g, i); }
static int64_t per_sample(const ir_node *nd) { return ir_node_numel(nd) / nd->shape[0]; }
static int64_t plane_of(const ir_node *nd) {
    int64_t k = 1;
    for (int d = 2; d < nd->ndim; d++) k *= nd->shape[d];
    return k;
}
static int64_t aligned(int64_t b) { return (b + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }
static int is_param(const qs *s, int j) { return ND(s, j)->op == IR_OP_PARAM; }

static int own(const qs *s, int j) {
    while (s->rep[j] != j) j = s->rep[j];
    return j;
}

static qsrc resolve(const qs *s, int j) {
    int o = own(s, j);
    if (s->virt[o]) return (qsrc){own(s, ND(s, o)->inputs[0]), 1};
    return (qsrc){o, 0};
}

/* Activation inputs of op i (parameters are constants). */
static int op_srcs(const qs *s, int i, qsrc *out) {
    const ir_node *nd = ND(s, i);
    int k = 0;
    if (nd->op == IR_OP_ZERO) return 0;
    for (int j = 0; j < nd->n_inputs && k < MAX_SRC; j++)
        if (nd->inputs[j] >= 0 && !is_param(s, nd->inputs[j])) out[k++] = resolve(s, nd->inputs[j]);
    return k;
}

/* ---- analysis --------------------------------------------------------------------------- */

static int analyse(qs *s) {
    const cg_model *m = s->m;
    int n = s->n;
    if (cg_model_check_io(m, s->err, s->errlen)) return -1;
    const ir_node *xo = ND(s, m->output);
    if (xo->ndim != 2) return fail(s, "output '%s' must be a (N, classes) tensor", xo->name);
    cg_mark_needed(s->g, m->output, s->need);
    for (int i = 0; i < n; i++) {
        s->rep[i] = i;
        if (!s->need[i]) continue;
        const ir_node *nd = ND(s, i);
        switch (nd->op) {
        case IR_OP_INPUT:
            if (i != m->input) return fail(s, "the output needs input '%s' besides the image input", nd->name);
            break;
        case IR_OP_PARAM:
            if (!m->values || !m->values[i]) return fail(s, "parameter '%s' has no value", nd->name);
            break;
        case IR_OP_IDENTITY: case IR_OP_DROPOUT: case IR_OP_DROP_PATH:
            s->rep[i] = nd->inputs[0];
            break;
        case IR_OP_BATCHNORM:
            if (nd->iattr[IR_A_BN_BATCH_STATS])
                return fail(s, "batchnorm '%s' always uses batch statistics (a search-time BN); export an evaluation network",
                            nd->name);
            if (s->fold.folded[i]) s->rep[i] = nd->inputs[0];
            else s->emit[i] = 1;
            break;
        case IR_OP_CONV2D: case IR_OP_RELU: case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: case IR_OP_ADD: case IR_OP_MEAN:
        case IR_OP_CONCAT: case IR_OP_GAP: case IR_OP_LINEAR: case IR_OP_ZERO: case IR_OP_SHIFT: case IR_OP_SLICE:
            s->emit[i] = 1;
            break;
        default:
            return fail(s, "node '%s' (%s) is not supported by the int8 C emitter (it takes the ops of a derived CNN)",
                        nd->name, ir_op_name(nd->op));
        }
        if (nd->dtype != IR_DTYPE_F32) return fail(s, "node '%s' is not float", nd->name);
    }
    s->out_owner = own(s, m->output);
    if (ND(s, s->out_owner)->op != IR_OP_LINEAR)
        return fail(s, "int8 export needs logits from a linear layer; output '%s' is computed by %s '%s'", xo->name,
                    ir_op_name(ND(s, s->out_owner)->op), ND(s, s->out_owner)->name);
    /* a ReLU read only by convolutions is applied in their reads */
    for (int i = 0; i < n; i++) {
        if (!s->emit[i] || ND(s, i)->op != IR_OP_RELU) continue;
        int readers = 0, convs = 0;
        for (int j = i + 1; j < n; j++) {
            if (!s->emit[j]) continue;
            const ir_node *c = ND(s, j);
            for (int t = 0; t < c->n_inputs; t++)
                if (c->inputs[t] >= 0 && !is_param(s, c->inputs[t]) && own(s, c->inputs[t]) == i) {
                    readers++;
                    convs += c->op == IR_OP_CONV2D;
                }
        }
        s->virt[i] = readers > 0 && readers == convs;
    }
    for (int i = 0; i < n; i++)
        if (s->emit[i] && !s->virt[i]) s->sched[s->n_sched++] = i;
    return 0;
}

/* How the vector code (NAME_VEC, gcc and clang) runs a conv or pool, and the scratch bytes
 * it needs: VK_GEMM, a convolution without groups as tiles of output channels by NAME_VB
 * pixels over its input rows (emit_conv_gemm); VK_WIN, a depthwise conv or a pool at
 * stride 1 or 2 over phase planes of each channel, padded (emit_win). Everything else
 * (groups, other strides, more than VK_TAPS taps, a gather over VK_IM2COL_MAX bytes) runs
 * the plain loops on every compiler. */
enum { VK_PLAIN, VK_GEMM, VK_WIN };
#define VK_TAPS 64           /* window taps at most (unrolled) */
#define VK_IM2COL_MAX 262144 /* bytes of gathered rows at most; a larger conv stays plain */

/* The geometry of a conv or pool i and its vector code's scratch layout. */
typedef struct vgeom {
    int C, H, Wd, K, Pp, Q, PQ, kh, kw, sh, sw, ph, pw, dh, dw, G, relu;
    int J, RS;             /* GEMM: gathered rows (c, r, t) of RS bytes, RS = max(PQ, 64) */
    int st, Hh, Wh, PW;    /* windows: st * st phase planes of Hh x Wh; PW = Pp * Wh outputs */
    int64_t plane, sums;   /* windows: bytes per phase plane; avg: bytes per int16 sum plane */
} vgeom;

static int vec_kind(const qs *s, int i, vgeom *g, int64_t *bytes) {
    const ir_node *nd = ND(s, i);
    *bytes = 0;
    memset(g, 0, sizeof *g);
    if (nd->op != IR_OP_CONV2D && nd->op != IR_OP_AVGPOOL && nd->op != IR_OP_MAXPOOL) return VK_PLAIN;
    qsrc x;
    op_srcs(s, i, &x);
    const ir_node *xn = ND(s, x.node);
    g->C = (int)xn->shape[1], g->H = (int)xn->shape[2], g->Wd = (int)xn->shape[3], g->K = (int)nd->shape[1];
    g->Pp = (int)nd->shape[2], g->Q = (int)nd->shape[3], g->PQ = g->Pp * g->Q, g->dh = g->dw = g->G = 1, g->relu = x.relu;
    if (nd->op == IR_OP_CONV2D) {
        const ir_node *w = ND(s, nd->inputs[1]);
        const int64_t *ia = nd->iattr;
        g->G = (int)ia[IR_A_CONV_GROUPS], g->kh = (int)w->shape[2], g->kw = (int)w->shape[3];
        g->sh = (int)ia[IR_A_CONV_STRIDE_H], g->sw = (int)ia[IR_A_CONV_STRIDE_W], g->ph = (int)ia[IR_A_CONV_PAD_H];
        g->pw = (int)ia[IR_A_CONV_PAD_W], g->dh = (int)ia[IR_A_CONV_DIL_H], g->dw = (int)ia[IR_A_CONV_DIL_W];
        if (g->G == 1) {
            int flat = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
            g->J = g->C * g->kh * g->kw, g->RS = g->PQ > 64 ? g->PQ : 64;
            if (flat && g->PQ >= 64) return VK_GEMM; /* reads its input as it is */
            *bytes = (int64_t)g->J * g->RS + (g->PQ < 64 ? (int64_t)g->K * g->RS : 0);
            return *bytes <= VK_IM2COL_MAX ? VK_GEMM : (*bytes = 0, VK_PLAIN);
        }
        if (g->G != g->C || g->K != g->C) return VK_PLAIN;
    } else {
        g->kh = g->kw = (int)nd->iattr[IR_A_POOL_K], g->sh = g->sw = (int)nd->iattr[IR_A_POOL_STRIDE];
        g->ph = g->pw = (int)nd->iattr[IR_A_POOL_PAD];
    }
    if (g->sh != g->sw || g->sh < 1 || g->sh > 2 || g->kh * g->kw > VK_TAPS || (nd->op == IR_OP_AVGPOOL && g->kh * g->kw * 128 > 32767)) return VK_PLAIN;
    g->st = g->sh;
    g->Hh = (g->H + 2 * g->ph + g->st - 1) / g->st, g->Wh = (g->Wd + 2 * g->pw + g->st - 1) / g->st, g->PW = g->Pp * g->Wh;
    g->plane = aligned((int64_t)g->Hh * g->Wh + (g->kw - 1) * g->dw + 64);
    g->sums = nd->op == IR_OP_AVGPOOL ? aligned((int64_t)g->PW + 64) : 0;
    /* avg: [int16 sums of even pixels][of odd]; [phase planes][int8 outputs, PW + 64] */
    *bytes = 2 * g->sums + g->st * g->st * g->plane + g->PW + 64;
    return VK_WIN;
}

/* Bytes of arena scratch an op needs while it runs: a conv's or avg pool's int32 plane in
 * the plain loops, or what the vector code needs where that is more (both are planned: the
 * compiler picks the code, the arena is fixed in the header). */
static int64_t scratch_of(const qs *s, int i) {
    const ir_node *nd = ND(s, i);
    int64_t plain = nd->op == IR_OP_CONV2D || nd->op == IR_OP_AVGPOOL ? 4 * plane_of(nd) : 0, v;
    vgeom g;
    vec_kind(s, i, &g, &v);
    return v > plain ? v : plain;
}

/* The buffers of plan() placed again offline (cg_arena_pack: an op's output live from its
 * op to its last reader, a scratch at its op only), kept where that needs less. */
static int plan_by_size(qs *s, const int *last) {
    int ns = s->n_sched, nb = 0;
    cg_life *b = malloc(sizeof *b * (size_t)(2 * ns + 1));
    int *ob = malloc(sizeof *ob * (size_t)(ns + 1)), *sb = malloc(sizeof *sb * (size_t)(ns + 1));
    if (!b || !ob || !sb) { free(b); free(ob); free(sb); return fail(s, "out of memory"); }
    for (int t = 0; t < ns; t++) {
        int i = s->sched[t];
        ob[t] = sb[t] = -1;
        if (i != s->out_owner) { ob[t] = nb; b[nb++] = (cg_life){aligned(per_sample(ND(s, i))), 0, t, last[i] < 0 ? t : last[i]}; }
        if (s->scratch[i] > 0) { sb[t] = nb; b[nb++] = (cg_life){aligned(s->scratch[i]), 0, t, t}; }
    }
    int64_t top = cg_arena_pack(b, nb);
    if (top < 0) { free(b); free(ob); free(sb); return fail(s, "out of memory"); }
    if (top < s->arena) {
        s->arena = top;
        for (int t = 0; t < ns; t++) {
            if (ob[t] >= 0) s->off[s->sched[t]] = b[ob[t]].off;
            if (sb[t] >= 0) s->soff[s->sched[t]] = b[sb[t]].off;
        }
    }
    free(b); free(ob); free(sb);
    return 0;
}

/* The greedy liveness rule of cgen.c, in bytes, or cg_arena_pack's placement where that
 * needs less. */
static int plan(qs *s) {
    int n = s->n;
    int *last = malloc((size_t)n * sizeof *last);
    cg_blk *fr = malloc((size_t)(2 * s->n_sched + 2) * sizeof *fr);
    if (!last || !fr) { free(last); free(fr); return fail(s, "out of memory"); }
    for (int i = 0; i < n; i++) { last[i] = -1; s->off[i] = -1; s->soff[i] = -1; }
    for (int t = 0; t < s->n_sched; t++) {
        qsrc r[MAX_SRC];
        int k = op_srcs(s, s->sched[t], r);
        for (int j = 0; j < k; j++) last[r[j].node] = t;
    }
    int nf = 0;
    int64_t top = 0;
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        s->scratch[i] = scratch_of(s, i);
        if (i != s->out_owner) s->off[i] = cg_arena_take(fr, &nf, &top, aligned(per_sample(ND(s, i))));
        if (s->scratch[i] > 0) {
            s->soff[i] = cg_arena_take(fr, &nf, &top, aligned(s->scratch[i]));
            cg_arena_give(fr, &nf, s->soff[i], aligned(s->scratch[i]));
        }
        for (int u = 0; u <= t; u++) {
            int j = s->sched[u];
            if (s->off[j] < 0 || (last[j] != t && !(last[j] < 0 && u == t))) continue;
            cg_arena_give(fr, &nf, s->off[j], aligned(per_sample(ND(s, j))));
        }
    }
    s->arena = top;
    int rc = plan_by_size(s, last);
    free(last);
    free(fr);
    return rc;
}

/* Schedule order for a smaller arena as in cgen.c (cg_arena_hoist): each op in turn tried right
 * after the last producer of its inputs, kept there where the arena shrinks. With the float
 * entry points, the quantised input and the int32 logits of one sample follow the planned
 * part. */
static int order_srcs(void *ctx, int i, int *out) {
    qsrc r[MAX_SRC];
    int k = op_srcs(ctx, i, r), m = 0;
    for (int j = 0; j < k && m < 64; j++) out[m++] = r[j].node;
    return m;
}
static int64_t order_plan(void *ctx) {
    qs *s = ctx;
    return plan(s) ? -1 : s->arena;
}
static int plan_all(qs *s) {
    if (cg_arena_hoist(s->sched, s->n_sched, s->n, s, order_srcs, order_plan)) return fail(s, "out of memory");
    if (plan(s)) return -1;
    if (!s->integer_only) {
        s->qin_off = aligned(s->arena);
        s->qout_off = s->qin_off + aligned(per_sample(ND(s, s->m->input)));
        s->arena = s->qout_off + aligned(4 * per_sample(ND(s, s->out_owner)));
    }
    return 0;
}

/* ---- writing helpers ------------------------------------------------------------------------ */

/* Integer constant arrays: int8 weights, int32 biases and multipliers, shifts. */
static void put_ints(qs *s, const char *type, int bytes, const char *what, int node, const long long *v, int64_t count) {
    s->weight_bytes += count * bytes;
    W("static const %s %s_%s%d[%lld] = {", type, s->P, what, node, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        W(i % 16 ? " " : "\n    ");
        if (v[i] == INT32_MIN) W("(-2147483647 - 1)"); /* not a negated literal out of int's range */
        else W("%lld", v[i]);
        W(i + 1 < count ? "," : "\n");
    }
    W("};\n");
}

/* Requantisation constants of K channels at multipliers M[k] for accumulators up to acc_max:
 * NAME_m<node>[K] (int32) and NAME_s<node>[K] (shift). */
static int put_mults(qs *s, int node, const double *M, int K, double acc_max) {
    long long *mv = malloc(sizeof *mv * (size_t)K), *sv = malloc(sizeof *sv * (size_t)K);
    if (!mv || !sv) { free(mv); free(sv); return fail(s, "out of memory"); }
    for (int k = 0; k < K; k++) {
        int32_t mm;
        int sh = 1;
        if (cg_q_mult(M[k], acc_max, &mm, &sh)) {
            free(mv);
            free(sv);
            return fail(s, "node '%s': requantisation multiplier %g is out of range (calibration ranges too far apart)",
                        ND(s, node)->name, M[k]);
        }
        mv[k] = mm;
        sv[k] = sh;
    }
    put_ints(s, "int32_t", 4, "m", node, mv, K);
    put_ints(s, "unsigned char", 1, "s", node, sv, K);
    free(mv);
    free(sv);
    return 0;
}

/* One multiplier as (m, shift) literals for an op's body. */
static int mult1(qs *s, int node, double M, double acc_max, long long *m, int *sh) {
    int32_t mm;
    if (cg_q_mult(M, acc_max, &mm, sh))
        return fail(s, "node '%s': requantisation multiplier %g is out of range", ND(s, node)->name, M);
    *m = mm;
    return 0;
}

static float sc(const qs *s, int node) { return s->q.scale[node]; }

/* The x86 dot-product path's accumulator starts for a GEMM conv (see write_dot_prelude):
 * NAME_c<node>[k] = b[k] - 128 * sum_j w[k][j] modulo 2^32, behind NAME_DOT_U. Not counted
 * in the weight bytes: the plain, generic-vector and ARM builds do not hold it. */
static int write_dot_bias(qs *s, int i, const int8_t *wq, const long long *b, int K, int64_t per_k) {
    int64_t vb;
    vgeom g;
    if (ND(s, i)->op != IR_OP_CONV2D || vec_kind(s, i, &g, &vb) == VK_PLAIN) return 0;
    long long *c = malloc(sizeof *c * (size_t)K);
    if (!c) return fail(s, "out of memory");
    for (int k = 0; k < K; k++) {
        long long sum = 0;
        for (int64_t j = 0; j < per_k; j++) sum += wq[(int64_t)k * per_k + j];
        uint32_t u = (uint32_t)(b[k] - 128 * sum); /* modulo 2^32 */
        c[k] = u >= 0x80000000u ? (long long)u - 0x100000000LL : (long long)u;
    }
    int64_t wb = s->weight_bytes;
    W("#if %s_DOT_U\n", s->P);
    put_ints(s, "int32_t", 4, "c", i, c, K);
    W("#endif\n");
    s->weight_bytes = wb;
    free(c);
    return 0;
}

/* ---- constants ---------------------------------------------------------------------------------- */

/* conv (BN folded) and linear: int8 weights per channel, int32 bias at s_x * s_w, multipliers. */
static int write_weights(qs *s, int i) {
    const ir_node *nd = ND(s, i);
    const float *const *V = s->m->values;
    if (nd->op != IR_OP_CONV2D && nd->op != IR_OP_LINEAR && nd->op != IR_OP_BATCHNORM) return 0;
    qsrc x;
    op_srcs(s, i, &x);
    double sx = sc(s, x.node);
    if (nd->op == IR_OP_BATCHNORM) {
        int C = (int)nd->shape[1];
        const int *bi = nd->inputs;
        float *a = malloc(sizeof(float) * (size_t)C), *b = malloc(sizeof(float) * (size_t)C);
        long long *mv = malloc(sizeof *mv * (size_t)C), *bv = malloc(sizeof *bv * (size_t)C);
        if (!a || !b || !mv || !bv) { free(a); free(b); free(mv); free(bv); return fail(s, "out of memory"); }
        cg_bn_affine(a, b, bi[1] >= 0 ? V[bi[1]] : NULL, bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]],
                     nd->fattr[IR_F_BN_EPS], C);
        /* y = x * a + b  ->  q_y = (q_x * m[c] + B[c]) / 2^S, one S for the op */
        double mx = 1e-30, sy = sc(s, i);
        for (int c = 0; c < C; c++) mx = fmax(mx, fabs(a[c] * sx / sy));
        int S = 30 - (int)floor(log2(mx)) - 1;
        if (S > 40) S = 40;
        if (S < 1) { free(a); free(b); free(mv); free(bv); return fail(s, "batchnorm '%s': scale out of range", nd->name); }
        for (int c = 0; c < C; c++) {
            mv[c] = llround(ldexp(a[c] * sx / sy, S));
            double bb = ldexp((double)b[c] / sy, S);
            bv[c] = fabs(bb) < 0x1p61 ? llround(bb) : (bb > 0 ? (1LL << 61) : -(1LL << 61));
        }
        W("/* batchnorm '");
        cg_put_comment_text(s->f, nd->name, " * ");
        W("': q_y = (q_x * m[c] + b[c]) / 2^%d */\n", S);
        put_ints(s, "int32_t", 4, "m", i, mv, C);
        s->weight_bytes += 8LL * C;
        W("static const int64_t %s_b%d[%d] = {", s->P, i, C);
        for (int c = 0; c < C; c++) W("%s INT64_C(%lld)%s", c % 6 ? "" : "\n   ", bv[c], c + 1 < C ? "," : "\n");
        W("};\n#define %s_S%d %d\n", s->P, i, S);
        free(a); free(b); free(mv); free(bv);
        return 0;
    }
    const ir_node *w = ND(s, nd->inputs[1]);
    int K = (int)w->shape[0];
    int64_t per_k = ir_node_numel(w) / K;
    int bn = nd->op == IR_OP_CONV2D ? s->fold.conv_bn[i] : -1;
    float *wf = malloc(sizeof(float) * (size_t)ir_node_numel(w)), *bf = calloc((size_t)K, sizeof(float));
    float *sw = malloc(sizeof(float) * (size_t)K);
    int8_t *wq = malloc((size_t)ir_node_numel(w));
    long long *lv = malloc(sizeof *lv * (size_t)(ir_node_numel(w) > K ? ir_node_numel(w) : K));
    double *M = malloc(sizeof *M * (size_t)K);
    int rc = -1;
    if (!wf || !bf || !sw || !wq || !lv || !M) { fail(s, "out of memory"); goto out; }
    if (bn >= 0) {
        const ir_node *b = ND(s, bn);
        const int *bi = b->inputs;
        cg_fold_conv_bn(wf, bf, V[nd->inputs[1]], NULL, K, per_k, bi[1] >= 0 ? V[bi[1]] : NULL,
                        bi[2] >= 0 ? V[bi[2]] : NULL, V[bi[3]], V[bi[4]], b->fattr[IR_F_BN_EPS]);
    } else {
        memcpy(wf, V[nd->inputs[1]], sizeof(float) * (size_t)ir_node_numel(w));
        if (nd->op == IR_OP_LINEAR && nd->inputs[2] >= 0) memcpy(bf, V[nd->inputs[2]], sizeof(float) * (size_t)K);
    }
    cg_q_weights(wq, sw, wf, K, per_k);
    W("/* %s '", ir_op_name(nd->op));
    cg_put_comment_text(s->f, nd->name, " * ");
    W("': int8 weights (%d, %lld) at per-channel scales%s, int32 bias at s_x * s_w[k] */\n", K, (long long)per_k,
      bn >= 0 ? ", BN folded" : "");
    for (int64_t j = 0; j < ir_node_numel(w); j++) lv[j] = wq[j];
    put_ints(s, "int8_t", 1, "w", i, lv, ir_node_numel(w));
    double bmax = 0;
    for (int k = 0; k < K; k++) {
        lv[k] = cg_q_i32(bf[k], sx * sw[k]);
        bmax = fmax(bmax, fabs((double)lv[k]));
    }
    put_ints(s, "int32_t", 4, "b", i, lv, K);
    if (write_dot_bias(s, i, wq, lv, K, per_k)) goto out;
    double sy = i == s->out_owner ? s->q.logit_scale : sc(s, i);
    for (int k = 0; k < K; k++) M[k] = sx * sw[k] / sy;
    if (put_mults(s, i, M, K, (double)per_k * 127 * 128 + bmax)) goto out;
    rc = 0;
out:
    free(wf); free(bf); free(sw); free(wq); free(lv); free(M);
    return rc;
}

/* ---- ops ---------------------------------------------------------------------------------------- */

static void op_head(qs *s, int i, int n_in) {
    const ir_node *nd = ND(s, i);
    W("\n/* %s '", ir_op_name(nd->op));
    cg_put_comment_text(s->f, nd->name, " * ");
    W("' -> (");
    for (int d = 1; d < nd->ndim; d++) W("%s%lld", d > 1 ? ", " : "", (long long)nd->shape[d]);
    W(") at scale %a */\n", i == s->out_owner ? (double)s->q.logit_scale : (double)sc(s, i));
    W("%s_CLONES static void %s_op%d(%s *restrict y", s->P, s->P, i, i == s->out_owner ? "int32_t" : "int8_t");
    for (int j = 0; j < n_in; j++) W(", const int8_t *restrict x%d", j);
    if (s->scratch[i] > 0) W(", int32_t *restrict acc");
    W(") {\n");
}

static const char *rdx(int relu) { return relu ? "_R" : "_I"; }

static void emit_conv_plain(qs *s, int i, qsrc x) {
    const ir_node *nd = ND(s, i), *xn = ND(s, x.node), *w = ND(s, nd->inputs[1]);
    const int64_t *ia = nd->iattr;
    const char *P = s->P;
    int K = (int)nd->shape[1], Pp = (int)nd->shape[2], Q = (int)nd->shape[3];
    int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3];
    int kh = (int)w->shape[2], kw = (int)w->shape[3], G = (int)ia[IR_A_CONV_GROUPS];
    int sh = (int)ia[IR_A_CONV_STRIDE_H], sw = (int)ia[IR_A_CONV_STRIDE_W], ph = (int)ia[IR_A_CONV_PAD_H];
    int pw = (int)ia[IR_A_CONV_PAD_W], dh = (int)ia[IR_A_CONV_DIL_H], dw = (int)ia[IR_A_CONV_DIL_W];
    int Cg = C / G, Kg = K / G, PQ = Pp * Q;
    int flat = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    W("    for (int k = 0; k < %d; k++) {\n", K);
    if (G > 1) W("        const int8_t *restrict xg = x0 + (k / %d) * %d; /* the group's first channel */\n", Kg, Cg * H * Wd);
    else W("        const int8_t *restrict xg = x0;\n");
    W("        for (int i = 0; i < %d; i++) acc[i] = %s_b%d[k];\n", PQ, P, i);
    W("        for (int c = 0; c < %d; c++) {\n", Cg);
    W("            const int8_t *restrict xc = xg + c * %d;\n", H * Wd);
    W("            const int8_t *restrict wc = %s_w%d + (k * %d + c) * %d;\n", P, i, Cg, kh * kw);
    if (flat) {
        W("            const int32_t wv = wc[0];\n");
        W("            for (int i = 0; i < %d; i++) acc[i] += wv * %s%s(xc[i]);\n", PQ, P, rdx(x.relu));
    } else {
        W("            for (int r = 0; r < %d; r++) {\n", kh);
        W("                const int p0 = %s_lo(%d - r * %d, %d), p1 = %s_hi(%d - r * %d, %d, %d);\n", P, ph, dh, sh, P,
          H - 1 + ph, dh, sh, Pp);
        W("                for (int t = 0; t < %d; t++) {\n", kw);
        W("                    const int32_t wv = wc[r * %d + t];\n", kw);
        W("                    const int q0 = %s_lo(%d - t * %d, %d), q1 = %s_hi(%d - t * %d, %d, %d);\n", P, pw, dw, sw,
          P, Wd - 1 + pw, dw, sw, Q);
        W("                    for (int p = p0; p < p1; p++) {\n");
        W("                        const int8_t *restrict xr = xc + (p * %d - %d + r * %d) * %d;\n", sh, ph, dh, Wd);
        W("                        int32_t *restrict ar = acc + p * %d;\n", Q);
        W("                        for (int q = q0; q < q1; q++) ar[q] += wv * %s%s(xr[q * %d - %d + t * %d]);\n", P,
          rdx(x.relu), sw, pw, dw);
        W("                    }\n                }\n            }\n");
    }
    W("        }\n");
    W("        for (int i = 0; i < %d; i++) y[k * %d + i] = %s_q8(%s_rs((int64_t)acc[i] * %s_m%d[k], %s_s%d[k]));\n", PQ,
      PQ, P, P, P, i, P, i);
    W("    }\n");
}

/* Pools tap by tap, like the convolutions: max straight into the output plane (started
 * at -128), avg into an int32 plane in the scratch, each tap over its valid rows and
 * columns only; avg then requantises by the in-bounds count of each window (padding is
 * not counted), the product of its valid rows and columns. */
static void emit_pool_plain(qs *s, int i, qsrc x) {
    const ir_node *nd = ND(s, i), *xn = ND(s, x.node);
    const char *P = s->P;
    int k = (int)nd->iattr[IR_A_POOL_K], st = (int)nd->iattr[IR_A_POOL_STRIDE], pad = (int)nd->iattr[IR_A_POOL_PAD];
    int C = (int)xn->shape[1], H = (int)xn->shape[2], Wd = (int)xn->shape[3], Pp = (int)nd->shape[2], Q = (int)nd->shape[3];
    int avg = nd->op == IR_OP_AVGPOOL, PQ = Pp * Q;
    if (!avg && s->scratch[i] > 0) W("    (void)acc; /* the vector code's */\n");
    W("    for (int c = 0; c < %d; c++) {\n", C);
    if (avg) W("        int32_t *restrict pl = acc;\n        for (int i = 0; i < %d; i++) pl[i] = 0;\n", PQ);
    else W("        int8_t *restrict pl = y + c * %d;\n        for (int i = 0; i < %d; i++) pl[i] = -128;\n", PQ, PQ);
    W("        for (int r = 0; r < %d; r++) {\n", k);
    W("            const int p0 = %s_lo(%d - r, %d), p1 = %s_hi(%d - r, %d, %d);\n", P, pad, st, P, H - 1 + pad, st, Pp);
    W("            for (int t = 0; t < %d; t++) {\n", k);
    W("                const int q0 = %s_lo(%d - t, %d), q1 = %s_hi(%d - t, %d, %d);\n", P, pad, st, P, Wd - 1 + pad, st, Q);
    W("                for (int p = p0; p < p1; p++) {\n");
    W("                    const int8_t *restrict xr = x0 + (c * %d + p * %d - %d + r) * %d;\n", H, st, pad, Wd);
    W(avg ? "                    int32_t *restrict pr = pl + p * %d;\n" : "                    int8_t *restrict pr = pl + p * %d;\n", Q);
    W("                    for (int q = q0; q < q1; q++) {\n");
    W("                        const int v = %s%s(xr[q * %d - %d + t]);\n", P, rdx(x.relu), st, pad);
    W(avg ? "                        pr[q] += v;\n" : "                        pr[q] = (int8_t)(v > pr[q] ? v : pr[q]);\n");
    W("                    }\n                }\n            }\n        }\n");
    if (avg) {
        W("        for (int p = 0; p < %d; p++) {\n", Pp);
        W("            const int h0 = p * %d - %d, rows = (h0 + %d < %d ? h0 + %d : %d) - (h0 > 0 ? h0 : 0);\n", st, pad, k, H, k, H);
        W("            for (int q = 0; q < %d; q++) {\n", Q);
        W("                const int w0 = q * %d - %d, n = rows * ((w0 + %d < %d ? w0 + %d : %d) - (w0 > 0 ? w0 : 0));\n", st, pad,
          k, Wd, k, Wd);
        W("                y[c * %d + p * %d + q] = %s_q8(%s_rs((int64_t)pl[p * %d + q] * %s_m%d[n], %s_s%d[n]));\n", PQ, Q, P, P,
          Q, P, i, P, i);
        W("            }\n        }\n");
    }
    W("    }\n");
}

/* ---- vector code (gcc and clang) ---------------------------------------------------------------- */

#define VK_KT 2 /* output channels per GEMM tile: 8 accumulators, which SSE2 and NEON hold */

static void acc_decl(qs *s, const char *name, const char *init) {
    W("            %s_vi %s0 = (%s_vi){0} + %s, %s1 = %s0, %s2 = %s0, %s3 = %s0;\n", s->P, name, s->P, init, name, name, name,
      name, name, name);
}

/* The rows X the GEMM tiles read (the input itself, or its rows gathered into the
 * scratch) and where they write Y; returns whether the input is read as it is. */
static int emit_gemm_rows(qs *s, const vgeom *g) {
    const char *P = s->P;
    int RS = g->RS, J = g->J;
    int direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->PQ >= 64;
    if (direct) {
        W("    const int8_t *restrict X = x0;\n    int8_t *restrict Y = y;\n    (void)acc;\n");
        return 1;
    }
    W("    int8_t *restrict X = (int8_t *)acc; /* row (c, r, t) holds every output pixel's tap */\n");
    if (g->PQ < 64) W("    int8_t *restrict Y = X + %lld; /* the outputs, rows of %d */\n", (long long)J * RS, RS);
    else W("    int8_t *restrict Y = y;\n");
    W("    for (int j = 0; j < %d; j++) {\n", J);
    W("        const int c = j / %d, r = j / %d %% %d, t = j %% %d;\n", g->kh * g->kw, g->kw, g->kh, g->kw);
    W("        const int q0 = %s_lo(%d - t * %d, %d), q1 = %s_hi(%d - t * %d, %d, %d); /* the columns inside */\n", P, g->pw, g->dw,
      g->sw, P, g->Wd - 1 + g->pw, g->dw, g->sw, g->Q);
    W("        for (int p = 0; p < %d; p++) {\n", g->Pp);
    W("            int8_t *restrict xr = X + j * %d + p * %d;\n", RS, g->Q);
    W("            const int h = p * %d - %d + r * %d;\n", g->sh, g->ph, g->dh);
    W("            if (h < 0 || h >= %d) {\n                for (int q = 0; q < %d; q++) xr[q] = 0;\n                continue;\n            }\n",
      g->H, g->Q);
    W("            for (int q = 0; q < q0; q++) xr[q] = 0;\n");
    W("            for (int q = q0; q < q1; q++) xr[q] = %s%s(x0[(c * %d + h) * %d + q * %d - %d + t * %d]);\n", P, rdx(g->relu), g->H,
      g->Wd, g->sw, g->pw, g->dw);
    W("            for (int q = q1; q < %d; q++) xr[q] = 0;\n        }\n", g->Q);
    if (RS > g->PQ) W("        for (int k = %d; k < %d; k++) X[j * %d + k] = 0;\n", g->PQ, RS, RS);
    W("    }\n");
    return 0;
}

/* The outputs of a tile written into the scratch (PQ < 64) copied out. */
static void emit_gemm_copy_out(qs *s, const vgeom *g, int direct) {
    if (!direct && g->PQ < 64)
        W("    for (int k = 0; k < %d; k++)\n        for (int i = 0; i < %d; i++) y[k * %d + i] = Y[k * %d + i];\n", g->K, g->PQ, g->PQ,
          g->RS);
}

/* The loops over tiles of KT output channels by NAME_VB pixels of a GEMM conv, each tile's
 * weight rows w0.. and accumulators a0_0.. started at bias[k + u]. */
static void emit_tile_head(qs *s, int i, const vgeom *g, int KT, const char *bias) {
    const char *P = s->P;
    char nm[16], in[64];
    W("    for (int k = 0; k < %d; k += %d)\n", g->K, KT);
    W("        for (int i0 = 0; i0 < %d; i0 += %s_VB) {\n", g->PQ, P);
    W("            const int i = i0 + %s_VB <= %d ? i0 : %d - %s_VB;\n", P, g->RS, g->RS, P);
    for (int u = 0; u < KT; u++) {
        W("            const int8_t *restrict w%d = %s_w%d + (k + %d) * %d;\n", u, P, i, u, g->J);
        snprintf(nm, sizeof nm, "a%d_", u);
        snprintf(in, sizeof in, "%s[k + %d]", bias, u);
        acc_decl(s, nm, in);
    }
}

/* bk: the dot-product accumulators' starts (NAME_c<node> on x86, the bias on ARM) */
static void emit_dot_bias_ptr(qs *s, int i) {
    const char *P = s->P;
    W("#if %s_DOT_U\n    const int32_t *restrict bk = %s_c%d;\n#else\n    const int32_t *restrict bk = %s_b%d;\n#endif\n", P, P, i, P, i);
}

/* A conv without groups: tiles of VK_KT output channels by NAME_VB pixels over its input
 * rows, taken in pairs (NAME_MAC2). A 1x1 stride-1 conv of 64 pixels or more reads its
 * input as it is; any other first gathers its rows (c, r, t) into the scratch, ReLU
 * applied, the padding 0, each row RS = max(PQ, 64) bytes (zero past PQ), and writes its
 * outputs there too when PQ < 64, copying them out after. The last tile of a row starts
 * at RS - NAME_VB and writes some outputs again, with the same values. */
static void emit_conv_gemm(qs *s, int i, const vgeom *g) {
    const char *P = s->P;
    int KT = g->K % VK_KT == 0 ? VK_KT : 1, RS = g->RS, J = g->J;
    int direct = emit_gemm_rows(s, g);
    const char *relu = direct && g->relu ? "_VR" : "_VI";
    char bias[32];
    snprintf(bias, sizeof bias, "%s_b%d", P, i);
    emit_tile_head(s, i, g, KT, bias);
    W("            int j = 0;\n");
    W("            for (; j + 1 < %d; j += 2) {\n", J);
    W("                const %s_vh ra = %s_LD(X + j * %d + i), rb = %s_LD(X + (j + 1) * %d + i);\n", P, P, RS, P, RS);
    W("                const %s_vh ea = %s%s(%s_E(ra)), oa = %s%s(%s_O(ra)), eb = %s%s(%s_E(rb)), ob = %s%s(%s_O(rb));\n", P, P, relu,
      P, P, relu, P, P, relu, P, P, relu, P);
    for (int u = 0; u < KT; u++) W("                %s_MAC2(a%d_, ea, oa, eb, ob, w%d[j], w%d[j + 1]);\n", P, u, u, u);
    W("            }\n");
    if (J % 2) {
        W("            {\n                const %s_vh ra = %s_LD(X + j * %d + i);\n", P, P, RS);
        W("                const %s_vh ea = %s%s(%s_E(ra)), oa = %s%s(%s_O(ra));\n", P, P, relu, P, P, relu, P);
        for (int u = 0; u < KT; u++) W("                %s_MAC2(a%d_, ea, oa, ea, oa, w%d[j], 0);\n", P, u, u);
        W("            }\n");
    }
    for (int u = 0; u < KT; u++)
        W("            %s_RQ4(Y + (k + %d) * %d + i, a%d_, %s_m%d[k + %d], %s_s%d[k + %d]);\n", P, u, RS, u, P, i, u, P, i, u);
    W("        }\n");
    emit_gemm_copy_out(s, g, direct);
}

/* The same conv on dot products (NAME_DOT, see write_dot_prelude): tiles of up to 4 output
 * channels by NAME_VB pixels, the rows taken four at a time, interleaved (NAME_ILV4) and
 * multiplied by the four weights w[k][j..j+3] (NAME_W4) in one instruction per accumulator
 * (NAME_DP); when J is not a multiple of 4 the last group's missing rows are 0 (after the
 * bias: no product) and its weight word holds only the weights there are. Its own static
 * function NAME_op<node>_d, which NAME_op<node> calls where NAME_DOT_ON holds. */
static void emit_win(qs *s, int i, const vgeom *g, int op, int dot);

static void emit_conv_dot(qs *s, int i, const vgeom *g, int kind) {
    const char *P = s->P;
    if (kind == VK_WIN) { /* a depthwise conv: emit_win's planes, the taps on dot products */
        W("\n#if %s_DOT\n%s_DOT_FN static void %s_op%d_d(int8_t *restrict y, const int8_t *restrict x0, int32_t *restrict acc) {\n",
          P, P, P, i);
        emit_win(s, i, g, IR_OP_CONV2D, 1);
        W("}\n#endif\n");
        return;
    }
    int KT = g->K % 4 == 0 ? 4 : g->K % 2 == 0 ? 2 : 1, RS = g->RS, J = g->J, rem = J % 4;
    W("\n#if %s_DOT\n%s_DOT_FN static void %s_op%d_d(int8_t *restrict y, const int8_t *restrict x0, int32_t *restrict acc) {\n", P,
      P, P, i);
    int direct = emit_gemm_rows(s, g);
    const char *relu = direct && g->relu ? "_VRB" : "_VIB";
    emit_dot_bias_ptr(s, i);
    emit_tile_head(s, i, g, KT, "bk");
    W("            int j = 0;\n");
    W("            for (; j + 3 < %d; j += 4) {\n", J);
    W("                const int8_t *restrict xr = X + j * %d + i;\n", RS);
    W("                %s_vi v0, v1, v2, v3;\n", P);
    W("                {\n                    const %s_vb r0 = %s_BIAS(%s%s(%s_LDB(xr))), r1 = %s_BIAS(%s%s(%s_LDB(xr + %d)));\n", P, P, P,
      relu, P, P, P, relu, P, RS);
    W("                    const %s_vb r2 = %s_BIAS(%s%s(%s_LDB(xr + %d))), r3 = %s_BIAS(%s%s(%s_LDB(xr + %d)));\n", P, P, P, relu,
      P, 2 * RS, P, P, relu, P, 3 * RS);
    W("                    %s_ILV4(v0, v1, v2, v3, r0, r1, r2, r3);\n                }\n", P);
    for (int u = 0; u < KT; u++)
        W("                {\n                    const int32_t wv = %s_W4(w%d + j);\n"
          "                    %s_DP(a%d_0, v0, wv); %s_DP(a%d_1, v1, wv); %s_DP(a%d_2, v2, wv); %s_DP(a%d_3, v3, wv);\n"
          "                }\n", P, u, P, u, P, u, P, u, P, u);
    W("            }\n");
    if (rem) {
        W("            {\n                const int8_t *restrict xr = X + j * %d + i;\n", RS);
        W("                %s_vi v0, v1, v2, v3;\n", P);
        W("                {\n                    const %s_vb z = (%s_vb){0}", P, P);
        for (int r = 0; r < 4; r++) {
            if (r < rem) W(", r%d = %s_BIAS(%s%s(%s_LDB(xr + %d)))", r, P, P, relu, P, r * RS);
            else W(", r%d = z", r);
        }
        W(";\n                    %s_ILV4(v0, v1, v2, v3, r0, r1, r2, r3);\n                }\n", P);
        for (int u = 0; u < KT; u++) {
            W("                {\n                    const int32_t wv = (int32_t)((uint32_t)(uint8_t)w%d[j]", u);
            for (int r = 1; r < rem; r++) W(" | (uint32_t)(uint8_t)w%d[j + %d] << %d", u, r, 8 * r);
            W(");\n                    %s_DP(a%d_0, v0, wv); %s_DP(a%d_1, v1, wv); %s_DP(a%d_2, v2, wv); %s_DP(a%d_3, v3, wv);\n"
              "                }\n", P, u, P, u, P, u, P, u);
        }
        W("            }\n");
    }
    for (int u = 0; u < KT; u++)
        W("            %s_RQP(Y + (k + %d) * %d + i, a%d_, %s_m%d[k + %d], %s_s%d[k + %d]);\n", P, u, RS, u, P, i, u, P, i, u);
    W("        }\n");
    emit_gemm_copy_out(s, g, direct);
    W("}\n#endif\n");
}

/* Depthwise convs and pools at stride 1 or 2 (VK_WIN): per channel the input, padded on
 * all sides (ReLU applied; the border 0, or -128 for max pools: below every input, and
 * every window holds an input), split into st * st phase planes (rows and columns by
 * their index mod st), so that each tap (r, t) reads one plane at a constant offset;
 * then NAME_VB outputs at a time over the planes' width Wh, the taps unrolled; the
 * columns past Q are dropped when the rows are copied out. Depthwise taps go in pairs
 * through NAME_MAC2; max pools compare int8 lanes; avg pools sum even and odd pixels in
 * int16 lanes (k * k * 128 < 32,768) into two planes and requantise by each window's
 * in-bounds count as the plain loops do. */
static void emit_win(qs *s, int i, const vgeom *g, int op, int dot) {
    const char *P = s->P;
    int conv = op == IR_OP_CONV2D, avg = op == IR_OP_AVGPOOL, st = g->st, Wh = g->Wh, n = g->kh * g->kw;
    if (avg) W("    int16_t *restrict ae = (int16_t *)acc, *restrict ao = ae + %lld; /* even and odd pixels' sums */\n",
               (long long)g->sums / 2);
    W("    int8_t *restrict xp = (int8_t *)acc + %lld; /* %d phase plane(s) of %lld bytes */\n", (long long)(2 * g->sums),
      st * st, (long long)g->plane);
    W("    int8_t *restrict yp = xp + %lld;\n", (long long)(st * st * g->plane));
    W("    for (int i = 0; i < %lld; i++) xp[i] = %d; /* the border and the overread, once */\n", (long long)(st * st * g->plane),
      op == IR_OP_MAXPOOL ? -128 : 0);
    if (conv && dot) emit_dot_bias_ptr(s, i);
    W("    for (int c = 0; c < %d; c++) {\n", g->C);
    W("        for (int h = 0; h < %d; h++)\n", g->H);
    if (st == 1)
        W("            for (int v = 0; v < %d; v++) xp[(h + %d) * %d + %d + v] = %s%s(x0[(c * %d + h) * %d + v]);\n", g->Wd, g->ph,
          Wh, g->pw, P, rdx(g->relu), g->H, g->Wd);
    else { /* the row's columns of each parity, contiguous in their plane */
        W("        {\n            const int hp = h + %d;\n", g->ph);
        W("            int8_t *restrict r0 = xp + (hp %% 2 * 2) * %lld + hp / 2 * %d, *restrict r1 = r0 + %lld;\n", (long long)g->plane,
          Wh, (long long)g->plane);
        W("            const int8_t *restrict xr = x0 + (c * %d + h) * %d;\n", g->H, g->Wd);
        int e0 = g->pw % 2, e1 = 1 - e0; /* the first column landing in plane 0, in plane 1 */
        W("            for (int u = 0; u < %d; u++) r0[%d + u] = %s%s(xr[%d + 2 * u]);\n", (g->Wd - e0 + 1) / 2, (e0 + g->pw) / 2, P,
          rdx(g->relu), e0);
        W("            for (int u = 0; u < %d; u++) r1[%d + u] = %s%s(xr[%d + 2 * u]);\n        }\n", (g->Wd - e1 + 1) / 2,
          (e1 + g->pw) / 2, P, rdx(g->relu), e1);
    }
    if (conv) W("        const int8_t *restrict wc = %s_w%d + c * %d;\n", P, i, n);
    W("        for (int i = 0; i < %d; i += %s_VB) {\n", g->PW, P);
    int64_t off[VK_TAPS];
    for (int u = 0; u < n; u++) {
        int r = u / g->kw * g->dh, t = u % g->kw * g->dw;
        off[u] = (int64_t)(r % st * st + t % st) * g->plane + r / st * Wh + t / st;
    }
    if (conv && dot) { /* four taps per instruction: their shifted rows interleaved, as the GEMM's */
        acc_decl(s, "a", "bk[c]");
        for (int u = 0; u < n; u += 4) {
            W("            {\n                %s_vi v0, v1, v2, v3;\n                {\n", P);
            W("                    const %s_vb z = (%s_vb){0}", P, P);
            for (int r = 0; r < 4; r++) {
                if (u + r < n) W(", r%d = %s_BIAS(%s_LDB(xp + i + %lld))", r, P, P, (long long)off[u + r]);
                else W(", r%d = z", r);
            }
            W(";\n                    (void)z;\n                    %s_ILV4(v0, v1, v2, v3, r0, r1, r2, r3);\n                }\n", P);
            if (u + 3 < n) W("                {\n                    const int32_t wv = %s_W4(wc + %d);\n", P, u);
            else {
                W("                {\n                    const int32_t wv = (int32_t)((uint32_t)(uint8_t)wc[%d]", u);
                for (int r = 1; u + r < n; r++) W(" | (uint32_t)(uint8_t)wc[%d] << %d", u + r, 8 * r);
                W(");\n");
            }
            W("                    %s_DP(a0, v0, wv); %s_DP(a1, v1, wv); %s_DP(a2, v2, wv); %s_DP(a3, v3, wv);\n"
              "                }\n            }\n", P, P, P, P);
        }
        W("            %s_RQP(yp + i, a, %s_m%d[c], %s_s%d[c]);\n", P, P, i, P, i);
    } else if (conv) {
        char in[64];
        snprintf(in, sizeof in, "%s_b%d[c]", P, i);
        acc_decl(s, "a", in);
        for (int u = 0; u < n; u += 2) {
            int u1 = u + 1 < n ? u + 1 : u;
            W("            {\n                const %s_vh ra = %s_LD(xp + i + %lld), rb = %s_LD(xp + i + %lld);\n", P, P,
              (long long)off[u], P, (long long)off[u1]);
            if (u1 > u) W("                %s_MAC2(a, %s_E(ra), %s_O(ra), %s_E(rb), %s_O(rb), wc[%d], wc[%d]);\n", P, P, P, P, P, u, u1);
            else W("                %s_MAC2(a, %s_E(ra), %s_O(ra), %s_E(rb), %s_O(rb), wc[%d], 0);\n", P, P, P, P, P, u);
            W("            }\n");
        }
        W("            %s_RQ4(yp + i, a, %s_m%d[c], %s_s%d[c]);\n", P, P, i, P, i);
    } else if (avg) {
        W("            %s_vh se = (%s_vh){0}, so = se;\n", P, P);
        for (int u = 0; u < n; u++) {
            W("            {\n                const %s_vh r = %s_LD(xp + i + %lld);\n", P, P, (long long)off[u]);
            W("                se += %s_E(r);\n                so += %s_O(r);\n            }\n", P, P);
        }
        W("            *(%s_vhu *)(ae + i / 2) = se;\n            *(%s_vhu *)(ao + i / 2) = so;\n", P, P);
        W("            {\n                const %s_vi a0 = %s_LO(se), a1 = %s_LO(so), a2 = %s_HI(se), a3 = %s_HI(so);\n", P, P, P, P, P);
        W("                %s_RQ4(yp + i, a, %s_m%d[%d], %s_s%d[%d]); /* right where the window is inside */\n            }\n", P, P, i, n,
          P, i, n);
    } else {
        W("            %s_vb m = %s_LDB(xp + i + %lld), v;\n", P, P, (long long)off[0]);
        for (int u = 1; u < n; u++)
            W("            v = %s_LDB(xp + i + %lld);\n            m ^= (m ^ v) & (%s_vb)(v > m);\n", P, (long long)off[u], P);
        W("            *(%s_vbu *)(yp + i) = m;\n", P);
    }
    W("        }\n");
    if (avg) {
        int k = g->kh, H = g->H, Wd = g->Wd;
        W("        for (int p = 0; p < %d; p++) {\n", g->Pp);
        W("            const int h0 = p * %d - %d, rows = (h0 + %d < %d ? h0 + %d : %d) - (h0 > 0 ? h0 : 0);\n", st, g->ph, k, H, k, H);
        /* columns qa..qb-1 have the whole window inside: in a row that has too, the vector result */
        int qa = (g->pw + st - 1) / st, qb = (Wd - k + g->pw) / st + 1;
        if (qb > g->Q) qb = g->Q;
        if (qb < qa) qb = qa;
        W("            int q0 = 0, q1 = 0;\n");
        W("            if (rows == %d) {\n                q0 = %d, q1 = %d;\n", k, qa, qb);
        W("                for (int q = q0; q < q1; q++) y[c * %d + p * %d + q] = yp[p * %d + q];\n            }\n", g->PQ, g->Q, Wh);
        W("            for (int q = 0; q < %d; q++) {\n", g->Q);
        W("                if (q == q0 && q1 > q0) q = q1;\n                if (q >= %d) break;\n", g->Q);
        W("                {\n                    const int w0 = q * %d - %d, n = rows * ((w0 + %d < %d ? w0 + %d : %d) - (w0 > 0 ? w0 : 0));\n", st,
          g->pw, k, Wd, k, Wd);
        W("                    const int v = p * %d + q, sum = (v & 1 ? ao : ae)[v / 2];\n", Wh);
        W("                    y[c * %d + p * %d + q] = n == %d ? yp[v] : %s_q8(%s_rs((int64_t)sum * %s_m%d[n], %s_s%d[n]));\n", g->PQ,
          g->Q, n, P, P, P, i, P, i);
        W("                }\n            }\n        }\n");
    } else {
        W("        for (int p = 0; p < %d; p++)\n            for (int q = 0; q < %d; q++) y[c * %d + p * %d + q] = yp[p * %d + q];\n",
          g->Pp, g->Q, g->PQ, g->Q, Wh);
    }
    W("    }\n");
}

/* A conv or pool: the vector code where vec_kind has one, behind NAME_VEC, else (and
 * always for other compilers) the plain loops. */
static void emit_window_op(qs *s, int i, qsrc x) {
    int64_t b;
    vgeom g;
    int k = vec_kind(s, i, &g, &b);
    int conv = ND(s, i)->op == IR_OP_CONV2D;
    if (k != VK_PLAIN) {
        W("#if %s_VEC\n", s->P);
        if (k == VK_GEMM) emit_conv_gemm(s, i, &g);
        else emit_win(s, i, &g, ND(s, i)->op, 0);
        W("#else\n");
    }
    if (conv) emit_conv_plain(s, i, x);
    else emit_pool_plain(s, i, x);
    if (k != VK_PLAIN) W("#endif\n");
    W("}\n");
}

/* y[at + i] = q8(rs(sum_j R(x_j[i]) * M_j, S)) for i < N: the plain loop, and for N of
 * 64 or more the vector one behind NAME_VEC (each byte stream of the int32 lanes, NAME_B32,
 * summed in int64 lanes; the last block starts at N - NAME_VB). */
static void emit_scaled_sum(qs *s, int64_t N, int64_t at, const qsrc *r, const int *xi, const long long *M, int k, int S) {
    const char *P = s->P;
    if (N >= 64) {
        W("#if %s_VEC\n", P);
        W("    for (int i0 = 0; i0 < %lld; i0 += %s_VB) {\n", (long long)N, P);
        W("        const int i = i0 + %s_VB <= %lld ? i0 : %lld - %s_VB;\n", P, (long long)N, (long long)N, P);
        W("        %s_vi q[4];\n", P);
        W("        for (int b = 0; b < 4; b++) {\n            %s_vl l = (%s_vl){0}, h = l;\n", P, P);
        for (int j = 0; j < k; j++) {
            W("            {\n                %s_vi v = %s_B32(x%d + i, b);\n", P, P, xi[j]);
            if (r[j].relu) W("                v &= (%s_vi)(v > 0);\n", P);
            W("                l += %s_L64(v) * %lldLL;\n                h += %s_H64(v) * %lldLL;\n            }\n", P, M[j], P, M[j]);
        }
        W("            %s_RND(l, %d);\n            %s_RND(h, %d);\n            q[b] = %s_J64(l, h);\n        }\n", P, S, P, S, P);
        W("        %s_ST4(y + %lld + i, q[0], q[1], q[2], q[3]);\n    }\n#else\n", P, (long long)at);
    }
    W("    for (int i = 0; i < %lld; i++) y[%lld + i] = %s_q8(%s_rs(", (long long)N, (long long)at, P, P);
    for (int j = 0; j < k; j++) W("%s(int64_t)%s%s(x%d[i]) * %lld", j ? " + " : "", P, rdx(r[j].relu), xi[j], M[j]);
    W(", %d));\n", S);
    if (N >= 64) W("#endif\n");
}

/* y = sum_j x_j * M_j (ADD: M_j = s_j / s_y; MEAN: also / n) in one fixed-point sum. */
static int emit_sum(qs *s, int i, const qsrc *r, int k) {
    const ir_node *nd = ND(s, i);
    double M[MAX_SRC], mx = 1e-30;
    for (int j = 0; j < k; j++) {
        M[j] = sc(s, r[j].node) / sc(s, i) / (nd->op == IR_OP_MEAN ? nd->n_inputs : 1);
        mx = fmax(mx, M[j]);
    }
    int S = 30 - (int)floor(log2(mx)) - 1;
    if (S > 48) S = 48;
    if (S < 1) return fail(s, "node '%s': its inputs' scales are too far from its own", nd->name);
    long long Mi[MAX_SRC];
    int xi[MAX_SRC];
    for (int j = 0; j < k; j++) Mi[j] = llround(ldexp(M[j], S)), xi[j] = j;
    emit_scaled_sum(s, per_sample(nd), 0, r, xi, Mi, k, S);
    W("}\n");
    return 0;
}

static int emit_concat(qs *s, int i, const qsrc *r, int k) {
    int64_t at = 0;
    for (int j = 0; j < k; j++) {
        int64_t e = per_sample(ND(s, r[j].node));
        if (sc(s, r[j].node) == sc(s, i) && !r[j].relu) {
            W("    for (int i = 0; i < %lld; i++) y[%lld + i] = x%d[i];\n", (long long)e, (long long)at, j);
        } else {
            long long m = 0;
            int sh = 1;
            if (mult1(s, i, (double)sc(s, r[j].node) / sc(s, i), 128, &m, &sh)) return -1;
            emit_scaled_sum(s, e, at, &r[j], &j, &m, 1, sh);
        }
        at += e;
    }
    W("}\n");
    return 0;
}

static int write_op(qs *s, int i) {
    const ir_node *nd = ND(s, i);
    const char *P = s->P;
    qsrc r[MAX_SRC];
    int k = op_srcs(s, i, r);
    int64_t vb;
    vgeom g;
    int kind = nd->op == IR_OP_CONV2D ? vec_kind(s, i, &g, &vb) : VK_PLAIN, dot = kind != VK_PLAIN;
    if (dot) emit_conv_dot(s, i, &g, kind);
    op_head(s, i, k);
    if (dot) W("#if %s_DOT\n    if (%s_DOT_ON) {\n        %s_op%d_d(y, x0, acc);\n        return;\n    }\n#endif\n", P, P, P, i);
    switch (nd->op) {
    case IR_OP_CONV2D: case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: emit_window_op(s, i, r[0]); return 0;
    case IR_OP_ADD: case IR_OP_MEAN: return emit_sum(s, i, r, k);
    case IR_OP_CONCAT: return emit_concat(s, i, r, k);
    case IR_OP_RELU:
        W("    for (int i = 0; i < %lld; i++) y[i] = %s_R(x0[i]);\n}\n", (long long)per_sample(nd), P);
        return 0;
    case IR_OP_ZERO:
        W("    for (int i = 0; i < %lld; i++) y[i] = 0;\n}\n", (long long)per_sample(nd));
        return 0;
    case IR_OP_SHIFT: {
        const ir_node *xn = ND(s, r[0].node);
        W("    for (int c = 0; c < %lld; c++)\n        for (int p = 0; p < %lld; p++)\n", (long long)nd->shape[1],
          (long long)nd->shape[2]);
        W("            for (int q = 0; q < %lld; q++) y[(c * %lld + p) * %lld + q] = %s%s(x0[(c * %lld + p + 1) * %lld + q + 1]);\n}\n",
          (long long)nd->shape[3], (long long)nd->shape[2], (long long)nd->shape[3], P, rdx(r[0].relu),
          (long long)xn->shape[2], (long long)xn->shape[3]);
        return 0;
    }
    case IR_OP_SLICE: {
        int64_t pl = plane_of(nd);
        W("    for (int i = 0; i < %lld; i++) y[i] = %s%s(x0[%lld + i]);\n}\n", (long long)per_sample(nd), P, rdx(r[0].relu),
          (long long)(nd->iattr[IR_A_SLICE_START] * pl));
        return 0;
    }
    case IR_OP_GAP: {
        const ir_node *xn = ND(s, r[0].node);
        long long m = 0;
        int sh = 1;
        int64_t HW = plane_of(xn);
        if (mult1(s, i, (double)sc(s, r[0].node) / ((double)HW * sc(s, i)), (double)HW * 128, &m, &sh)) return -1;
        W("    for (int c = 0; c < %lld; c++) {\n        int32_t sum = 0;\n", (long long)nd->shape[1]);
        W("        for (int i = 0; i < %lld; i++) sum += %s%s(x0[c * %lld + i]);\n", (long long)HW, P, rdx(r[0].relu),
          (long long)HW);
        W("        y[c] = %s_q8(%s_rs((int64_t)sum * %lld, %d));\n    }\n}\n", P, P, m, sh);
        return 0;
    }
    case IR_OP_BATCHNORM: {
        int64_t pl = plane_of(nd);
        W("    for (int c = 0; c < %lld; c++)\n        for (int i = 0; i < %lld; i++)\n", (long long)nd->shape[1], (long long)pl);
        W("            y[c * %lld + i] = %s_q8(%s_rs((int64_t)%s%s(x0[c * %lld + i]) * %s_m%d[c] + %s_b%d[c], %s_S%d));\n}\n",
          (long long)pl, P, P, P, rdx(r[0].relu), (long long)pl, P, i, P, i, P, i);
        return 0;
    }
    case IR_OP_LINEAR: {
        const ir_node *w = ND(s, nd->inputs[1]);
        int O = (int)w->shape[0], I = (int)w->shape[1];
        W("    for (int o = 0; o < %d; o++) {\n        int32_t a = %s_b%d[o];\n", O, P, i);
        W("        for (int k = 0; k < %d; k++) a += (int32_t)%s_w%d[o * %d + k] * %s%s(x0[k]);\n", I, P, i, I, P, rdx(r[0].relu));
        W("        y[o] = %s_%s(%s_rs((int64_t)a * %s_m%d[o], %s_s%d[o]));\n    }\n}\n", P, i == s->out_owner ? "q32" : "q8", P,
          P, i, P, i);
        return 0;
    }
    default:
        return fail(s, "internal: op %s of '%s' has no int8 lowering", ir_op_name(nd->op), nd->name);
    }
}

/* avg pool: a multiplier per in-bounds count 1..k*k */
static int write_pool_mults(qs *s, int i) {
    const ir_node *nd = ND(s, i);
    if (nd->op != IR_OP_AVGPOOL) return 0;
    qsrc x;
    op_srcs(s, i, &x);
    int kk = (int)(nd->iattr[IR_A_POOL_K] * nd->iattr[IR_A_POOL_K]);
    double M[1 + IR_MAX_GROUPS];
    if (kk > IR_MAX_GROUPS) return fail(s, "avgpool '%s': window too large", nd->name);
    M[0] = 0;
    for (int c = 1; c <= kk; c++) M[c] = (double)sc(s, x.node) / (c * (double)sc(s, i));
    W("/* avgpool '");
    cg_put_comment_text(s->f, nd->name, " * ");
    W("': multipliers by in-bounds count */\n");
    return put_mults(s, i, M, kk + 1, 128.0 * kk);
}

/* ---- files -------------------------------------------------------------------------------------- */

static void write_doc(qs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    W("/* %s.h - int8 model generated by dartsc from graph '", s->P);
    cg_put_comment_text(s->f, ir_graph_name(s->g), " * ");
    W("'\n");
    if (m->space_name) { W(" * Space: "); cg_put_comment_text(s->f, m->space_name, " * "); W("\n"); }
    if (m->test_accuracy >= 0) W(" * Test accuracy of the float model: %.4f\n", m->test_accuracy);
    W(" * Post-training quantisation: int8 weights per output channel, int8 activations at\n"
      " * per-tensor scales calibrated on training images, int32 accumulation, requantisation\n"
      " * by fixed-point multipliers (multiply, shift, round half away from zero, saturate).\n");
    W(" * Input: (batch, %lld, %lld, %lld), normalised per channel: (x - mean[c]) / std[c], mean = {",
      (long long)xi->shape[1], (long long)xi->shape[2], (long long)xi->shape[3]);
    for (int c = 0; c < xi->shape[1]; c++) W("%s%.9g", c ? ", " : "", c < 4 ? (double)m->mean[c] : 0.0);
    W("}, std = {");
    for (int c = 0; c < xi->shape[1]; c++) W("%s%.9g", c ? ", " : "", c < 4 && m->std[c] > 0 ? (double)m->std[c] : 1.0);
    W("},\n * then quantised: q = round(x / %s_INPUT_SCALE) saturated to [-128, 127].\n", s->P);
    W(" * Output: int32 logits (batch, %lld) at %s_OUTPUT_SCALE; the class is the largest.\n", (long long)xo->shape[1], s->P);
    W(" * %s_infer_q takes and gives integers and the network body uses no floating point.\n", s->P);
    if (!s->integer_only)
        W(" * %s_infer takes float input and gives float logits, quantising and scaling itself.\n", s->P);
    W(" * Build: cc -std=c99 -O2 -c %s.c (no libm, no C library call; a portable x86-64 build with\n"
      " * glibc dispatches by the compiler's CPU model, -D%s_NO_DISPATCH turns that off; convolutions\n"
      " * run on dot-product instructions where the build targets them (AVX-512 VNNI, AVX-VNNI, aarch64\n"
      " * +dotprod) or, in that portable build, where the machine has AVX-512 VNNI; -D%s_NO_DOT turns\n"
      " * that off; every build computes the same integers). Not reentrant: threads call\n", s->P, s->P, s->P);
    W(" * the _with_arena entry points, each with its own %s_ARENA_BYTES aligned for int32_t.\n", s->P);
    W(" * They return 0, or -1 for a NULL pointer or a batch outside 1..%s_MAX_BATCH.\n */\n", s->P);
}

static int write_header(qs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    const char *P = s->P;
    write_doc(s);
    W("#ifndef %s_H_INCLUDED\n#define %s_H_INCLUDED\n\n#include <stdint.h>\n\n", P, P);
    W("#define %s_MAX_BATCH %d\n", P, s->max_batch);
    W("#define %s_IN_C %lld\n#define %s_IN_H %lld\n#define %s_IN_W %lld\n", P, (long long)xi->shape[1], P,
      (long long)xi->shape[2], P, (long long)xi->shape[3]);
    W("#define %s_INPUT_SIZE %lld /* values per sample */\n", P, (long long)per_sample(xi));
    W("#define %s_NUM_CLASSES %lld\n", P, (long long)xo->shape[1]);
    W("#define %s_OUTPUT_SIZE %lld /* values per sample */\n", P, (long long)per_sample(xo));
    W("#define %s_ARENA_BYTES %lld /* activations of one sample (samples run one at a time) */\n", P, (long long)s->arena);
    W("#define %s_INPUT_SCALE %a /* float input = int8 input * scale */\n", P, (double)sc(s, m->input));
    W("#define %s_OUTPUT_SCALE %a /* float logit = int32 logit * scale */\n\n", P, (double)s->q.logit_scale);
    W("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    W("int %s_infer_q(const int8_t *input, int32_t *output, int batch);\n", P);
    W("int %s_infer_q_with_arena(const int8_t *input, int32_t *output, int batch, void *arena);\n", P);
    if (!s->integer_only) {
        W("int %s_infer(const float *input, float *output, int batch);\n", P);
        W("int %s_infer_with_arena(const float *input, float *output, int batch, void *arena);\n", P);
        W("extern const float %s_mean[%s_IN_C], %s_std[%s_IN_C];\n", P, P, P, P);
    }
    W("extern const char *const %s_class_names[%s_NUM_CLASSES];\n", P, P);
    W("\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    return 0;
}

/* Text with every '@' written as the model's name. */
static void put_named(qs *s, const char *t) {
    for (; *t; t++)
        if (*t == '@') fputs(s->P, s->f);
        else fputc(*t, s->f);
}

/* The dot-product path (NAME_DOT, inside NAME_VEC): the convolutions run as GEMM tiles
 * (emit_conv_dot) on the instructions that sum four int8 products into each int32 lane:
 * AVX-512 VNNI vpdpbusd (64-byte vectors), AVX-VNNI (32), aarch64's sdot (16); and in a
 * portable x86-64 build, a clone for AVX-512 VNNI chosen at run time. vpdpbusd multiplies
 * unsigned by signed bytes, so on x86 the activations enter biased by 128 (x ^ 0x80) and
 * the accumulators start at b[k] - 128 * sum_j w[k][j] (NAME_c<node>, modulo 2^32: the
 * lanes wrap, so the sum is the plain loops' wherever theirs fits in int32). */
static void write_dot_prelude(qs *s) {
    put_named(s,
      "/* Dot products: @_ILV4 interleaves four rows of @_VB bytes so that int32 lane m of d0..d3 holds\n"
      " * the four rows' bytes of one pixel (per 16-byte block b of the rows: d0 pixels 16b + 0..3, d1\n"
      " * 16b + 4..7, d2 16b + 8..11, d3 16b + 12..15); @_DP adds to each lane the dot product of its four\n"
      " * bytes with those of w; @_PK4 stores four int32 vectors of values in [-128, 127] as @_VB bytes\n"
      " * in the pixel order @_ILV4 took them. */\n"
      "#if !defined(@_NO_DOT) && defined(__AVX512VNNI__) && defined(__AVX512BW__) && @_VB == 64\n"
      "#define @_DOT 1\n#define @_DOT_X512 1\n#define @_DOT_ON 1\n#define @_DOT_FN\n"
      "#elif !defined(@_NO_DOT) && defined(__AVXVNNI__) && defined(__AVX2__) && @_VB == 32\n"
      "#define @_DOT 1\n#define @_DOT_X256 1\n#define @_DOT_ON 1\n#define @_DOT_FN\n"
      "#elif !defined(@_NO_DOT) && defined(__ARM_FEATURE_DOTPROD) && defined(__aarch64__) && @_VB == 16\n"
      "#define @_DOT 1\n#define @_DOT_ON 1\n#define @_DOT_FN\n"
      "#elif !defined(@_NO_DOT) && defined(@_CLONES) && @_VB == 64 && \\\n"
      "    ((defined(__clang__) && __clang_major__ >= 8) || (!defined(__clang__) && __GNUC__ >= 11))\n"
      "#define @_DOT 1\n#define @_DOT_X512 1\n"
      "#define @_DOT_ON (__builtin_cpu_supports(\"avx512vnni\") && __builtin_cpu_supports(\"avx512bw\"))\n"
      "#define @_DOT_FN __attribute__((target(\"avx512f,avx512bw,avx512vnni\")))\n"
      "#endif\n"
      "#if @_DOT && defined(__aarch64__)\n"
      "#include <arm_neon.h>\n"
      "#define @_DOT_U 0 /* sdot: signed by signed */\n"
      "#define @_ILV4(d0, d1, d2, d3, r0, r1, r2, r3) do { \\\n"
      "    const int8x16_t a_ = vzip1q_s8((int8x16_t)(r0), (int8x16_t)(r1)), b_ = vzip2q_s8((int8x16_t)(r0), (int8x16_t)(r1)); \\\n"
      "    const int8x16_t c_ = vzip1q_s8((int8x16_t)(r2), (int8x16_t)(r3)), e_ = vzip2q_s8((int8x16_t)(r2), (int8x16_t)(r3)); \\\n"
      "    d0 = (@_vi)vzip1q_s16(vreinterpretq_s16_s8(a_), vreinterpretq_s16_s8(c_)); \\\n"
      "    d1 = (@_vi)vzip2q_s16(vreinterpretq_s16_s8(a_), vreinterpretq_s16_s8(c_)); \\\n"
      "    d2 = (@_vi)vzip1q_s16(vreinterpretq_s16_s8(b_), vreinterpretq_s16_s8(e_)); \\\n"
      "    d3 = (@_vi)vzip2q_s16(vreinterpretq_s16_s8(b_), vreinterpretq_s16_s8(e_)); \\\n"
      "} while (0)\n"
      "#define @_DP(a, v, w) ((a) = (@_vi)vdotq_s32((int32x4_t)(a), (int8x16_t)(v), vreinterpretq_s8_s32(vdupq_n_s32(w))))\n"
      "#define @_PK4(p, q0, q1, q2, q3) (*(@_vbu *)(p) = (@_vb)vcombine_s8( \\\n"
      "    vqmovn_s16(vcombine_s16(vqmovn_s32((int32x4_t)(q0)), vqmovn_s32((int32x4_t)(q1)))), \\\n"
      "    vqmovn_s16(vcombine_s16(vqmovn_s32((int32x4_t)(q2)), vqmovn_s32((int32x4_t)(q3))))))\n"
      "#elif @_DOT\n"
      "#include <immintrin.h>\n"
      "#define @_DOT_U 1 /* vpdpbusd: unsigned by signed */\n"
      "#if defined(@_DOT_X512)\n"
      "#define @_XV(v) ((__m512i)(v))\n"
      "#define @_ILV4(d0, d1, d2, d3, r0, r1, r2, r3) do { \\\n"
      "    const __m512i a_ = _mm512_unpacklo_epi8(@_XV(r0), @_XV(r1)), b_ = _mm512_unpackhi_epi8(@_XV(r0), @_XV(r1)); \\\n"
      "    const __m512i c_ = _mm512_unpacklo_epi8(@_XV(r2), @_XV(r3)), e_ = _mm512_unpackhi_epi8(@_XV(r2), @_XV(r3)); \\\n"
      "    d0 = (@_vi)_mm512_unpacklo_epi16(a_, c_); d1 = (@_vi)_mm512_unpackhi_epi16(a_, c_); \\\n"
      "    d2 = (@_vi)_mm512_unpacklo_epi16(b_, e_); d3 = (@_vi)_mm512_unpackhi_epi16(b_, e_); \\\n"
      "} while (0)\n"
      "#define @_DP(a, v, w) ((a) = (@_vi)_mm512_dpbusd_epi32(@_XV(a), @_XV(v), _mm512_set1_epi32(w)))\n"
      "#define @_PK4(p, q0, q1, q2, q3) (*(@_vbu *)(p) = (@_vb)_mm512_packs_epi16( \\\n"
      "    _mm512_packs_epi32(@_XV(q0), @_XV(q1)), _mm512_packs_epi32(@_XV(q2), @_XV(q3))))\n"
      "/* @_RQ on AVX-512F: |a| * m as unsigned 32 x 32 -> 64-bit products (even and odd lanes), the\n"
      " * same rounding on the magnitude, clamped to 128 (or 127 for a positive a), the sign put back */\n"
      "#define @_RQX(out, a, m, s) do { \\\n"
      "    const __m512i v_ = @_XV(a), u_ = _mm512_abs_epi32(v_), m_ = _mm512_set1_epi32(m); \\\n"
      "    const __m512i r_ = _mm512_set1_epi64((long long)1 << ((s) - 1)), c_ = _mm512_set1_epi64(128); \\\n"
      "    const __m128i s_ = _mm_cvtsi32_si128(s); \\\n"
      "    const __m512i e_ = _mm512_min_epu64(_mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(u_, m_), r_), s_), c_); \\\n"
      "    const __m512i o_ = _mm512_min_epu64(_mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(u_, 32), m_), r_), s_), c_); \\\n"
      "    const __m512i q_ = _mm512_or_si512(e_, _mm512_slli_epi64(o_, 32)); \\\n"
      "    out = (@_vi)_mm512_mask_sub_epi32(_mm512_min_epu32(q_, _mm512_set1_epi32(127)), \\\n"
      "                                       _mm512_cmplt_epi32_mask(v_, _mm512_setzero_si512()), _mm512_setzero_si512(), q_); \\\n"
      "} while (0)\n"
      "#else\n"
      "#define @_XV(v) ((__m256i)(v))\n"
      "#define @_ILV4(d0, d1, d2, d3, r0, r1, r2, r3) do { \\\n"
      "    const __m256i a_ = _mm256_unpacklo_epi8(@_XV(r0), @_XV(r1)), b_ = _mm256_unpackhi_epi8(@_XV(r0), @_XV(r1)); \\\n"
      "    const __m256i c_ = _mm256_unpacklo_epi8(@_XV(r2), @_XV(r3)), e_ = _mm256_unpackhi_epi8(@_XV(r2), @_XV(r3)); \\\n"
      "    d0 = (@_vi)_mm256_unpacklo_epi16(a_, c_); d1 = (@_vi)_mm256_unpackhi_epi16(a_, c_); \\\n"
      "    d2 = (@_vi)_mm256_unpacklo_epi16(b_, e_); d3 = (@_vi)_mm256_unpackhi_epi16(b_, e_); \\\n"
      "} while (0)\n"
      "#define @_DP(a, v, w) ((a) = (@_vi)_mm256_dpbusd_avx_epi32(@_XV(a), @_XV(v), _mm256_set1_epi32(w)))\n"
      "#define @_PK4(p, q0, q1, q2, q3) (*(@_vbu *)(p) = (@_vb)_mm256_packs_epi16( \\\n"
      "    _mm256_packs_epi32(@_XV(q0), @_XV(q1)), _mm256_packs_epi32(@_XV(q2), @_XV(q3))))\n"
      "#endif\n"
      "#endif\n"
      "#if @_DOT\n"
      "typedef int32_t @_i32u __attribute__((aligned(1), may_alias));\n"
      "#define @_W4(p) (*(const @_i32u *)(p)) /* four weights, little-endian */\n"
      "/* the rows as @_DP takes them: ReLU applied or not (@_VRB, @_VIB), biased to unsigned on x86 */\n"
      "#define @_VRB(v) ((v) & (@_vb)((v) > 0))\n#define @_VIB(v) (v)\n"
      "#define @_BIAS(v) ((v) ^ ((@_vb){0} + (int8_t)(@_DOT_U ? -128 : 0)))\n"
      "/* @_VB int8 outputs at yv from the accumulators A##0..A##3, requantised */\n"
      "#ifndef @_RQX\n#define @_RQX @_RQ\n#endif\n"
      "#define @_RQP(yv, A, m, s) do { \\\n"
      "    @_vi q0_, q1_, q2_, q3_; \\\n"
      "    @_RQX(q0_, A##0, m, s); @_RQX(q1_, A##1, m, s); @_RQX(q2_, A##2, m, s); @_RQX(q3_, A##3, m, s); \\\n"
      "    @_PK4(yv, q0_, q1_, q2_, q3_); \\\n"
      "} while (0)\n"
      "#endif\n");
}

static void write_prelude(qs *s) {
    const char *P = s->P;
    W("/* gcc at -O2 vectorises only loops it needs no runtime check for; the tap loops have\n"
      " * runtime bounds: -O3's cost model here (as in the float C) */\n");
    W("#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC optimize(\"vect-cost-model=dynamic\")\n#endif\n");
    W("/* round(v / 2^s), halves away from zero, s >= 1: on |v| (no right shift of a negative\n"
      " * value), written with selects so that compilers vectorise the requantisation loops */\n");
    W("static int64_t %s_rs(int64_t v, int s) {\n    const int64_t a = v < 0 ? -v : v, r = (a + ((int64_t)1 << (s - 1))) >> s;\n"
      "    return v < 0 ? -r : r;\n}\n", P);
    W("static int8_t %s_q8(int64_t v) { return (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v); }\n", P);
    W("static int32_t %s_q32(int64_t v) { return (int32_t)(v > 2147483647 ? 2147483647 : v < -2147483647 ? -2147483647 : v); }\n", P);
    W("/* the first output row or column whose tap lands at or after the input's start: p * st >= off */\n");
    W("static int %s_lo(int off, int st) { return off <= 0 ? 0 : (off + st - 1) / st; }\n", P);
    W("/* one past the last whose tap lands at or before lim (the input's end), at most n */\n");
    W("static int %s_hi(int lim, int st, int n) {\n    const int h = lim < 0 ? 0 : lim / st + 1;\n    return h < n ? h : n;\n}\n", P);
    W("#define %s_R(v) ((v) > 0 ? (v) : 0) /* ReLU on a symmetric int8 value: exact */\n", P);
    W("\n/* Vectors: gcc and clang (GNU C vector extensions) get the convolutions, depthwise convs\n"
      " * and stride-1 pools on vectors of %s_VB bytes (64 with AVX-512BW, 32 with AVX2, else 16:\n"
      " * SSE2, NEON), the same integers as the plain loops, which any other C99 compiler, or\n"
      " * -D%s_PLAIN_C, gets. Only shifts, masks and same-size casts: int8 pixels come out of\n"
      " * int16 lanes as the even (%s_E) and odd (%s_O) ones, products of two of them summed in\n"
      " * int16 (|x| <= 128, |w| <= 127: at most 32,512, exact) go into int32 lanes as %s_LO\n"
      " * and %s_HI, so accumulator r of four holds pixels 4n + r; %s_ST4 interleaves them back.\n"
      " * (gcc 12 widens with __builtin_convertvector one lane at a time.) */\n", P, P, P, P, P, P, P);
    W("#if ((defined(__GNUC__) && __GNUC__ >= 5) || defined(__clang__)) && !defined(%s_PLAIN_C) && \\\n"
      "    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ /* the lanes' byte order */ && \\\n"
      "    (defined(__SSE2__) || defined(__ARM_NEON) || defined(__riscv_vector) || defined(__VSX__) || defined(__wasm_simd128__))\n"
      "#define %s_VEC 1 /* a target with SIMD: elsewhere (a microcontroller) the plain loops are the faster code */\n", P, P);
    W("/* Runtime dispatch (x86-64 with glibc, gcc >= 11 or clang >= 14), as in the float C: a build\n"
      " * for the baseline target runs every op as AVX-512BW or AVX2 code where the machine has it,\n"
      " * on 64-byte vectors (gcc names AVX-512BW only as arch=x86-64-v4, clang only as a feature).\n"
      " * Off when the build targets AVX2 or better, or with -D%s_NO_DISPATCH. */\n", P);
    W("#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__AVX2__) && !defined(%s_NO_DISPATCH) && defined(__has_attribute)\n"
      "#if __has_attribute(target_clones) && defined(__clang__)\n"
      "#define %s_CLONES __attribute__((target_clones(\"avx512bw\", \"avx2\", \"default\")))\n#define %s_VB 64\n"
      "#elif __has_attribute(target_clones) && __GNUC__ >= 11\n"
      "#define %s_CLONES __attribute__((target_clones(\"arch=x86-64-v4\", \"avx2\", \"default\")))\n#define %s_VB 64\n"
      "#endif\n#endif\n", P, P, P, P, P);
    W("#ifdef %s_VB\n#elif defined(__AVX512BW__)\n#define %s_VB 64\n#elif defined(__AVX2__)\n#define %s_VB 32\n#else\n#define %s_VB 16\n#endif\n", P, P, P, P);
    W("typedef int8_t %s_vb __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef int8_t %s_vbu __attribute__((vector_size(%s_VB), aligned(1), may_alias)); /* unaligned access */\n", P, P);
    W("typedef int16_t %s_vh __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef int16_t %s_vhu __attribute__((vector_size(%s_VB), aligned(2), may_alias));\n", P, P);
    W("typedef uint16_t %s_vuh __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef int32_t %s_vi __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef int32_t %s_viu __attribute__((vector_size(%s_VB), aligned(1), may_alias));\n", P, P);
    W("typedef uint32_t %s_vui __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef int64_t %s_vl __attribute__((vector_size(%s_VB)));\n", P, P);
    W("typedef uint64_t %s_vul __attribute__((vector_size(%s_VB)));\n", P, P);
    W("#define %s_LDB(p) ((%s_vb)(*(const %s_vbu *)(p)))\n#define %s_LD(p) ((%s_vh)%s_LDB(p))\n", P, P, P, P, P, P);
    W("#define %s_E(v) ((%s_vh)((%s_vuh)(v) << 8) >> 8)\n#define %s_O(v) ((v) >> 8)\n", P, P, P, P);
    W("#define %s_LO(v) ((%s_vi)((%s_vui)(v) << 16) >> 16)\n#define %s_HI(v) ((%s_vi)(v) >> 16)\n", P, P, P, P, P);
    W("#define %s_VR(v) ((v) & (%s_vh)((v) > 0)) /* %s_R on int16 lanes */\n#define %s_VI(v) (v)\n", P, P, P, P);
    W("/* accumulators A##0..A##3 += wa * (ea, oa) + wb * (eb, ob) */\n");
    W("#define %s_MAC2(A, ea, oa, eb, ob, wa, wb) do { \\\n"
      "    const %s_vh se_ = (ea) * (int16_t)(wa) + (eb) * (int16_t)(wb), so_ = (oa) * (int16_t)(wa) + (ob) * (int16_t)(wb); \\\n"
      "    A##0 += %s_LO(se_); A##1 += %s_LO(so_); A##2 += %s_HI(se_); A##3 += %s_HI(so_); \\\n"
      "} while (0)\n", P, P, P, P, P, P);
    W("/* v = %s_q8(%s_rs(v * m, s)) on int64 lanes: the same rounding (on |v|, halves away\n"
      " * from zero) and saturation; macros, not functions: a vector argument changes the ABI */\n", P, P);
    W("#define %s_RND(v, s) do { \\\n"
      "    const %s_vl p_ = (v), n_ = (%s_vl)(p_ < 0); \\\n"
      "    %s_vl r_ = (((p_ ^ n_) - n_) + ((int64_t)1 << ((s) - 1))) >> (s); \\\n"
      "    r_ = (r_ ^ n_) - n_; \\\n"
      "    r_ += (127 - r_) & (%s_vl)(r_ > 127); \\\n"
      "    r_ += (-128 - r_) & (%s_vl)(r_ < -128); \\\n"
      "    (v) = r_; \\\n"
      "} while (0)\n", P, P, P, P, P, P);
    W("#define %s_RQ64(v, m, s) do { (v) *= (int64_t)(m); %s_RND(v, s); } while (0)\n", P, P);
    W("/* int32 lanes of a as int64: the even ones, the odd ones; and back */\n");
    W("#define %s_L64(a) ((%s_vl)((%s_vul)(a) << 32) >> 32)\n#define %s_H64(a) ((%s_vl)(a) >> 32)\n", P, P, P, P, P);
    W("#define %s_J64(l, h) ((%s_vi)(((%s_vul)(l) & 0xffffffffu) | ((%s_vul)(h) << 32)))\n", P, P, P, P);
    W("/* byte r of each int32 lane of the %s_VB bytes at p (pixels 4n + r), sign-extended */\n", P);
    W("#define %s_B32(p, r) ((%s_vi)((%s_vui)(*(const %s_viu *)(p)) << (24 - 8 * (r))) >> 24)\n", P, P, P, P);
    W("#define %s_RQ(out, a, m, s) do { \\\n"
      "    %s_vl l_ = %s_L64(a), h_ = %s_H64(a); \\\n"
      "    %s_RQ64(l_, m, s); \\\n    %s_RQ64(h_, m, s); \\\n"
      "    out = %s_J64(l_, h_); \\\n"
      "} while (0)\n", P, P, P, P, P, P, P);
    W("#define %s_ST4(yv, q0, q1, q2, q3) (*(%s_viu *)(yv) = (%s_vi)(((%s_vui)(q0) & 255u) | (((%s_vui)(q1) & 255u) << 8) | \\\n"
      "                                   (((%s_vui)(q2) & 255u) << 16) | ((%s_vui)(q3) << 24)))\n", P, P, P, P, P, P, P);
    W("/* %s_VB int8 outputs at yv from the accumulators A##0..A##3 (pixels 4n + r) */\n", P);
    W("#define %s_RQ4(yv, A, m, s) do { \\\n"
      "    %s_vi q0_, q1_, q2_, q3_; \\\n"
      "    %s_RQ(q0_, A##0, m, s); %s_RQ(q1_, A##1, m, s); %s_RQ(q2_, A##2, m, s); %s_RQ(q3_, A##3, m, s); \\\n"
      "    %s_ST4(yv, q0_, q1_, q2_, q3_); \\\n"
      "} while (0)\n", P, P, P, P, P, P, P);
    write_dot_prelude(s);
    W("#else\n#define %s_VEC 0\n#endif\n#ifndef %s_CLONES\n#define %s_CLONES\n#endif\n", P, P, P);
    W("#ifndef %s_DOT\n#define %s_DOT 0\n#define %s_DOT_U 0\n#endif\n", P, P, P);
    W("#define %s_I(v) (v)\n\n", P);
}

static const char *buf_expr(qs *s, int node, char *b, size_t bl) {
    if (node == s->m->input) return "in";
    if (node == s->out_owner) return "out";
    snprintf(b, bl, "(int8_t *)(A + %lld)", (long long)s->off[node]);
    return b;
}

static int write_source(qs *s) {
    const cg_model *m = s->m;
    const ir_node *xi = ND(s, m->input), *xo = ND(s, m->output);
    const char *P = s->P;
    W("/* %s.c - int8 model generated by dartsc; see %s.h. C99, integers only in the network body.\n", P, P);
    W(" *\n * Schedule (%d ops) and arena offsets in bytes (one sample):\n", s->n_sched);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        W(" *   %s_op%d %s '", P, i, ir_op_name(ND(s, i)->op));
        cg_put_comment_text(s->f, ND(s, i)->name, " * ");
        if (i == s->out_owner) W("' -> output\n");
        else W("' -> [%lld, %lld)\n", (long long)s->off[i], (long long)(s->off[i] + per_sample(ND(s, i))));
    }
    W(" */\n#include \"%s.h\"\n\n#include <stddef.h>\n\n", P);
    write_prelude(s);
    if (!s->integer_only) {
        W("const float %s_mean[%s_IN_C] = {", P, P);
        for (int c = 0; c < xi->shape[1]; c++) W("%s%af", c ? ", " : "", c < 4 ? (double)m->mean[c] : 0.0);
        W("};\nconst float %s_std[%s_IN_C] = {", P, P);
        for (int c = 0; c < xi->shape[1]; c++) W("%s%af", c ? ", " : "", c < 4 && m->std[c] > 0 ? (double)m->std[c] : 1.0);
        W("};\n");
    }
    W("const char *const %s_class_names[%s_NUM_CLASSES] = {", P, P);
    for (int c = 0; c < xo->shape[1]; c++) {
        W(c == 0 ? "\n    " : c % 8 ? ", " : ",\n    ");
        if (m->class_names && m->class_names[c]) cg_put_c_string(s->f, m->class_names[c]);
        else W("\"%d\"", c);
    }
    W("\n};\n\n");
    for (int t = 0; t < s->n_sched; t++)
        if (write_weights(s, s->sched[t]) || write_pool_mults(s, s->sched[t])) return -1;
    for (int t = 0; t < s->n_sched; t++)
        if (write_op(s, s->sched[t])) return -1;

    W("\n/* one sample through the whole schedule */\n");
    W("static void %s_run(const int8_t *in, int32_t *out, unsigned char *A) {\n", P);
    W("    (void)%s_lo;\n    (void)%s_hi;\n    (void)%s_q32;\n", P, P, P);
    for (int t = 0; t < s->n_sched; t++) {
        int i = s->sched[t];
        qsrc r[MAX_SRC];
        char b[64];
        int k = op_srcs(s, i, r);
        W("    %s_op%d(%s", P, i, buf_expr(s, i, b, sizeof b));
        for (int j = 0; j < k; j++) W(", %s", buf_expr(s, r[j].node, b, sizeof b));
        if (s->scratch[i] > 0) W(", (int32_t *)(A + %lld)", (long long)s->soff[i]);
        W(");\n");
    }
    W("}\n\n");
    W("int %s_infer_q_with_arena(const int8_t *input, int32_t *output, int batch, void *arena) {\n", P);
    W("    if (!input || !output || !arena || batch < 1 || batch > %s_MAX_BATCH) return -1;\n", P);
    W("    for (int n = 0; n < batch; n++)\n");
    W("        %s_run(input + (ptrdiff_t)n * %s_INPUT_SIZE, output + (ptrdiff_t)n * %s_OUTPUT_SIZE, (unsigned char *)arena);\n",
      P, P, P);
    W("    return 0;\n}\n\n");
    /* int32_t: aligned for the accumulators; 64 bytes under GNU C, as the float C's arena
       (a vector of the widest tiles never straddles two cache lines) */
    W("#if defined(__GNUC__)\nstatic int32_t %s_arena[%lld] __attribute__((aligned(64)));\n#else\n", P,
      (long long)(s->arena / 4 + 1));
    W("static int32_t %s_arena[%lld];\n#endif\n\n", P, (long long)(s->arena / 4 + 1));
    W("int %s_infer_q(const int8_t *input, int32_t *output, int batch) {\n", P);
    W("    return %s_infer_q_with_arena(input, output, batch, %s_arena);\n}\n", P, P);
    if (!s->integer_only) {
        W("\nint %s_infer_with_arena(const float *input, float *output, int batch, void *arena) {\n", P);
        W("    unsigned char *A = (unsigned char *)arena;\n");
        W("    if (!input || !output || !arena || batch < 1 || batch > %s_MAX_BATCH) return -1;\n", P);
        W("    for (int n = 0; n < batch; n++) {\n");
        W("        int8_t *q = (int8_t *)(A + %lld);\n        int32_t *o = (int32_t *)(A + %lld);\n",
          (long long)s->qin_off, (long long)s->qout_off);
        W("        for (int i = 0; i < %s_INPUT_SIZE; i++) {\n", P);
        W("            float v = input[(ptrdiff_t)n * %s_INPUT_SIZE + i] / (float)%s_INPUT_SCALE;\n", P, P);
        W("            v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v == v ? v : 0.0f;\n");
        W("            q[i] = (int8_t)(v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v));\n        }\n");
        W("        %s_run(q, o, A);\n", P);
        W("        for (int k = 0; k < %s_OUTPUT_SIZE; k++) output[(ptrdiff_t)n * %s_OUTPUT_SIZE + k] = (float)o[k] * (float)%s_OUTPUT_SCALE;\n",
          P, P, P);
        W("    }\n    return 0;\n}\n\n");
        W("int %s_infer(const float *input, float *output, int batch) {\n", P);
        W("    return %s_infer_with_arena(input, output, batch, %s_arena);\n}\n", P, P);
    }
    return 0;
}

/* cg_write_c_pair's writers */
static int header_cb(void *s) { return write_header(s); }
static int source_cb(void *s) { return write_source(s); }

int cg_c_write_int8(const cg_model *m, const cg_c_opts *o, int integer_only, const char *dir, char *err, size_t errlen) {
    qs st, *s = &st;
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
    s->integer_only = integer_only;
    s->max_batch = o && o->max_batch > 0 ? o->max_batch : 1;
    if (s->max_batch > (1 << 20)) return fail(s, "max_batch %d is too large", s->max_batch);
    int n = s->n > 0 ? s->n : 1, rc = -1;
    if (cg_fold_init(&s->fold, s->g, 1)) return fail(s, "out of memory");
    s->rep = calloc((size_t)n, sizeof *s->rep);
    s->sched = calloc((size_t)n, sizeof *s->sched);
    s->off = calloc((size_t)n, sizeof *s->off);
    s->scratch = calloc((size_t)n, sizeof *s->scratch);
    s->soff = calloc((size_t)n, sizeof *s->soff);
    unsigned char *flags = calloc((size_t)n * 3, 1);
    if (!s->rep || !s->sched || !s->off || !s->scratch || !s->soff || !flags) { fail(s, "out of memory"); goto done; }
    s->need = flags;
    s->emit = flags + n;
    s->virt = flags + 2 * n;
    if (analyse(s)) goto done;
    if (cg_quant_init(&s->q, m, &s->fold, s->err, s->errlen)) goto done;
    if (plan_all(s)) goto done;
    if (cg_write_c_pair(dir, s->P, &s->f, header_cb, source_cb, s, s->err, s->errlen)) goto done;
    if (o && o->footprint) {
        o->footprint->weight_bytes = s->weight_bytes;
        o->footprint->arena_bytes = s->arena;
    }
    rc = 0;
done:
    cg_quant_free(&s->q);
    cg_fold_free(&s->fold);
    free(s->rep);
    free(s->sched);
    free(s->off);
    free(s->scratch);
    free(s->soff);
    free(flags);
    return rc;
}
