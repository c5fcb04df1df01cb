/* plan.c — execution plans: parameter materialisation, reverse-mode autodiff schedule,
 * liveness memory planning into one arena, and the forward/backward steppers.
 *
 * Autodiff is a reverse sweep over the node list: node j's backward runs iff its output
 * gradient is needed for some requested parameter group and j reaches the loss; it is
 * handed gradient pointers only for inputs that need them, so a first-order alpha step
 * computes no weight gradients and a weight step computes no alpha gradients.
 *
 * Fusion: a ReLU whose one consumer is a node the backend can feed through a ReLU
 * (fuses_relu_in: the CPU's depthwise and 1x1 convolutions) is folded into it: the ReLU never
 * runs and has no buffers; the consumer reads the ReLU's input (src0) with relu_in set.
 * Every use of a node's inputs below goes through input_of(), which applies this.
 * Gradients are accumulated, so each is zeroed before its first contribution, unless the
 * node making that contribution can write all of it (sets_grad: the CPU's 1x1 and
 * depthwise data gradients, batch norm, add, concat, mixed): then it is handed over
 * unzeroed with grad_set, and the zeroing pass and the read of zeros are saved.
 * A node whose one consumer is a mixed op, and whose backward can scale its output
 * gradient as it reads it (scales_out_grad: the CPU's batch norm, the last op of every
 * DARTS candidate but skip_connect), gets no gradient buffer of its own: the mixed op's
 * backward skips writing w_k * dy for it (gskip), and the node reads the mixed op's dy
 * with the weight w_k (gsrc, gscale) — the same float products, one write and one read
 * fewer per candidate; the mixed op's gradient then lives until that node's backward.
 * Such a node's forward output can be deferred the same way (defers_output: the CPU's
 * batch norm, training or inference): it computes its statistics and per-channel
 * coefficients only (defer_out), has no value buffer, and the mixed op reads the batch
 * norm's input through those coefficients (rt_tref.affine) in its forward and backward —
 * the same float expression, so the same bits, one write and one read fewer per candidate,
 * and the candidates' outputs no longer live from the forward to the mixed op's backward
 * (the batch norm's input lives that long anyway, its backward reads it); that input then
 * lives until the mixed op's last use, the coefficients (aux) too.
 * A batch norm whose one consumer is a ReLU folded into a convolution (a sep_conv's middle
 * batch norm: BN -> ReLU -> depthwise) is deferred the same way where the backend says so
 * for that convolution (the CUDA backend's depthwise kernels, kcuda_conv2d_relu_affine_*:
 * they read the batch norm's input through its coefficients, then the ReLU; the CPU
 * backend says no): no value buffer, no pass writing it, the same bits.
 * A node whose one consumer is an ADD reads the ADD's output gradient as its own, unscaled (the
 * ADD's backward wrote a copy of it before: 1.0f * dy is dy), and the ADD skips it (gskip).
 * DARTSC_NO_FUSION=1 in the environment turns all of them off (to measure what they gain). */
#include "runtime.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kdesc.h"
#include "schedule.h"

#define ALIGN_BYTES 64

/* A buffer of the arena: size, offset, and the schedule times it is live. */
typedef struct buf {
    size_t bytes, off;
    int start, end;  /* inclusive schedule times */
    void **slot;     /* where to store the resolved pointer */
} buf;

struct rt_plan {
    const ir_graph *g;
    rt_backend *be;
    int n;
    int loss;
    int ce; /* SOFTMAX_CE whose top-1 count rt_last_correct reports: the loss, or its first CE input; -1 none */
    unsigned grads_max;
    uint64_t seed, step;
    rt_exec_node *ex;                 /* per node, resolved pointers and shapes */
    float (*fattr)[IR_MAX_FATTR];     /* per node copies (drop path ramps) */
    void **data;                      /* per node value */
    float **grad;                     /* per node gradient (arena or group vector), NULL if never needed */
    uint8_t *ng[4];                   /* per mask: node needs a gradient */
    int *src0;                        /* per node: input 0 rewired to a fused ReLU's input, or -1 */
    uint8_t *fused;                   /* per node: a ReLU folded into its consumer, never run */
    int *gsrc;                        /* per node: reads this mixed op's output gradient, scaled, or
                                         this ADD's as it is; or -1 */
    int *gscale;                      /* per node with gsrc: index of its weight in that op's aux
                                         (-1: an ADD's, unscaled) */
    unsigned *gskip;                  /* per mixed op or ADD: input slots whose gradient it does not write */
    int *lazyc;                       /* per node: its output is deferred to this consumer (a mixed op or a convolution), or -1 */
    int *stsrc;                       /* per batch norm: the batch norm of the same input whose statistics it takes, or -1 */
    uint8_t *fold;                    /* per batch norm: 1: its pool (stsrc) runs its forward (rt_exec_node.takers) */
    int *glead;                       /* per batch norm: the batch norm whose backward runs its own (summed
                                         output gradients, rt_exec_node.nmore), or -1 */
    int (*gmore)[RT_MORE_GRADS];      /* per such lead: those batch norms, in order (nmore of them) */
    int **zero_at;                    /* per node j: gradient buffers zeroed before backward step j (-1 ended) */
    int set_grads;                    /* the backend's sets_grad is used (see the top of the file) */
    void *arena;
    size_t arena_bytes;
    float *pdata[3], *pgrad[3];       /* groups: 0 weights, 1 arch, 2 buffers */
    int64_t pn[3];
    float *scratch;
    float *one;                       /* device scalar 1.0, seed of backprop */
    int last_correct;
    /* rt_pass's recordings, by key training * 4 + mask: NULL until recorded; seen: the
     * key ran once eagerly (the first run warms library state: algorithm choices,
     * handles; the second records) */
    void *graph[8];
    uint8_t seen[8];
    int graphs;                       /* the backend records graphs and DARTSC_NO_GRAPHS is unset */
    int sched_eager;                  /* DARTSC_SCHEDULE_EAGER: eager passes through the schedule */
    uint64_t mask_seed;               /* base of the dropout / drop-path seeds */
    uint64_t *seeds_dev;              /* per node, the seeds of a recorded pass (backend fill_seeds;
                                         NULL where there are no masks to draw or no hook) */
    int recording;                    /* forward_issue hands nodes seed_dev */
    int lanes;                        /* lanes a recording issues on (backend lanes; 1: in order) */
    int issue_t;                      /* the schedule time of what is issued now (rt_op.t) */
    buf *bufs;                        /* the arena's buffers and their lifetimes (rt_plan_audit) */
    int nbufs;
    size_t scratch_stride;            /* floats of scratch per lane */
    rt_oplist *collect;               /* recording on lanes: ops collected here, issued after */
    rt_lane_stats lane_stats;         /* of the last recording issued on lanes */
    /* rt_step_run's recordings of whole steps, by the caller's key: seen: the key ran once
     * eagerly; npass: passes (forwards) the recording issues; seeded: bit j: pass j reads
     * its mask seeds from seeds_dev + j * n, filled before each replay */
    struct {
        int key, seen, npass;
        unsigned seeded;
        void *graph;
        /* autotuning (rt_step_tuning): vg[v] variant v's recording while it runs (the
         * chosen one becomes graph), nrec recorded so far, vt[v][t] their timings, ntimed
         * timings in all */
        void *vg[RT_MAX_VARIANTS];
        double vt[RT_MAX_VARIANTS][RT_TUNE_MAX_TRIALS];
        int nrec, ntimed;
    } stepg[RT_STEP_KEYS];
    int tune_variants;                /* variants to tune steps over (1: no tuning) */
    int tune_trials;                  /* timings per variant */
    int tuned;                        /* a key's tuning finished: later recordings (other keys,
                                         re-recordings after drop_graphs) use its variant */
    rt_tune_report tune_rep;          /* that tuning's report */
    int step_graphs;                  /* graphs and DARTSC_NO_STEP_GRAPHS is unset */
    int step_rec;                     /* a step is being recorded: rt_pass issues into its capture */
    int step_pass;                    /* passes issued so far into that recording */
    unsigned step_seeded;
    int step_bad;                     /* that recording cannot stand (too many passes, masks without seeds) */
    int seed_slot;                    /* the seeds slot forward_issue hands out while recording */
};

/* Everything a pass issues goes through these four: to the backend, or, while a recording
 * is collected for the lanes, into p->collect (runtime/schedule.c issues it after). */
static void issue_node(rt_plan *p, rt_op_kind kind, const rt_exec_node *e) {
    if (p->collect) {
        rt_op o = {.kind = kind, .e = *e, .t = p->issue_t};
        rt_oplist_push(p->collect, &o);
    } else if (kind == RT_OP_FWD) {
        p->be->forward(p->be, e);
    } else {
        p->be->backward(p->be, e);
    }
}
static void issue_zero(rt_plan *p, void *dst, size_t bytes) {
    if (p->collect) rt_oplist_push(p->collect, &(rt_op){.kind = RT_OP_ZERO, .dst = dst, .n = bytes, .t = p->issue_t});
    else p->be->memset0(p->be, dst, bytes);
}
static void issue_copy(rt_plan *p, float *dst, const float *src, size_t n) {
    if (p->collect)
        rt_oplist_push(p->collect, &(rt_op){.kind = RT_OP_COPY, .dst = dst, .src = src, .n = n, .t = p->issue_t});
    else p->be->copy(p->be, dst, src, (int64_t)n);
}

/* Input k of node i as the plan executes it (a fused ReLU bypassed). */
static int input_of(const rt_plan *p, int i, int k) {
    return k == 0 && p->src0[i] >= 0 ? p->src0[i] : ir_graph_node(p->g, i)->inputs[k];
}

/* The node whose value buffer input k of node i reads: input_of, or a deferred batch
 * norm's own input. */
static int value_of(const rt_plan *p, int i, int k) {
    const int s = input_of(p, i, k);
    return s >= 0 && p->lazyc[s] >= 0 ? input_of(p, s, 0) : s;
}

/* The gradient buffer node i's backward reads as its output gradient: its own, or that of
 * the node it reads through (gsrc), followed to the one that has a buffer (a batch norm
 * reads its mixed op's, which may be the ADD's after it). */
static float *grad_of(const rt_plan *p, int i) {
    while (p->gsrc[i] >= 0) i = p->gsrc[i];
    return p->grad[i];
}
/* The device scalar by which node i's backward reads its output gradient, or NULL. */
static const float *grad_scale_of(const rt_plan *p, int i) {
    return p->gsrc[i] >= 0 && p->gscale[i] >= 0 ? p->ex[p->gsrc[i]].aux + p->gscale[i] : NULL;
}
/* Whether node r's backward reads node i's gradient buffer through gsrc. */
static int reads_grad_of(const rt_plan *p, int r, int i) {
    for (int q = r; p->gsrc[q] >= 0; q = p->gsrc[q])
        if (p->gsrc[q] == i) return 1;
    return 0;
}

static int group_of(ir_role r) {
    return r == IR_ROLE_WEIGHT ? 0 : r == IR_ROLE_ARCH ? 1 : r == IR_ROLE_BUFFER ? 2 : -1;
}

static int perr(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* bytes as "12.3 MiB" or "4.5 GiB" into b. */
static const char *mem_str(char *b, size_t n, size_t bytes) {
    if (bytes >= ((size_t)1 << 30)) snprintf(b, n, "%.1f GiB", bytes / 1073741824.0);
    else snprintf(b, n, "%.1f MiB", bytes / 1048576.0);
    return b;
}

/* The error of an allocation of the backend's that failed: what needed how many bytes,
 * and the memory the backend has (where it can say). */
static int oom(char *err, size_t errlen, rt_backend *be, const char *what, size_t bytes, const char *hint) {
    size_t fr = 0, tot = 0;
    char have[96] = "", a[32], b[32], c[32];
    if (be->mem_info && be->mem_info(be, &fr, &tot) == 0)
        snprintf(have, sizeof have, "; %s of its %s are free", mem_str(a, sizeof a, fr), mem_str(b, sizeof b, tot));
    return perr(err, errlen, "out of memory on the %s backend: %s need %s%s%s", be->name, what,
                mem_str(c, sizeof c, bytes), have, hint);
}

/* Backward needs these forward values (see the kernels' backward signatures). */
static int saves_inputs(ir_op op) {
    switch (op) {
    case IR_OP_CONV2D: case IR_OP_BATCHNORM: case IR_OP_MAXPOOL: case IR_OP_MUL: case IR_OP_WSUM:
    case IR_OP_MIXED: case IR_OP_LINEAR: case IR_OP_EMBEDDING: case IR_OP_SOFTMAX_CE: case IR_OP_SQMEAN:
    case IR_OP_WMIXED:
        return 1;
    default:
        return 0;
    }
}
static int saves_output(ir_op op) {
    return op == IR_OP_RELU || op == IR_OP_TANH || op == IR_OP_SIGMOID || op == IR_OP_SOFTMAX;
}

size_t rt_aux_floats(const rt_exec_node *n) {
    switch (n->op) {
    case IR_OP_BATCHNORM: return (n->defer_out ? 5 : 2) * (size_t)n->in[0].shape[1]; /* mean, invstd (f, s, b) */
    case IR_OP_DROPOUT: return (size_t)n->in[0].numel;
    case IR_OP_DROP_PATH: return (size_t)n->in[0].shape[0];
    case IR_OP_SOFTMAX_CE: return (size_t)n->in[0].numel + 1;
    case IR_OP_MIXED: return (size_t)n->in[0].shape[1]; /* softmax(alpha[row]) */
    default: return 0;
    }
}

/* ---- memory planning ------------------------------------------------------------------ */

static int cmp_size_desc(const void *a, const void *b) {
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->start - y->start;
}
static int cmp_off(const void *a, const void *b) {
    const buf *x = *(const buf *const *)a, *y = *(const buf *const *)b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Greedy by size: each buffer goes to the lowest offset not overlapping any placed
 * buffer whose lifetime intersects its own. Returns the arena size. */
static size_t assign_offsets(buf *bufs, int nb) {
    buf **order = malloc((size_t)nb * sizeof *order), **live = malloc((size_t)nb * sizeof *live);
    for (int i = 0; i < nb; i++) order[i] = &bufs[i];
    qsort(order, (size_t)nb, sizeof *order, cmp_size_desc);
    size_t total = 0;
    for (int i = 0; i < nb; i++) {
        buf *b = order[i];
        int nl = 0;
        for (int j = 0; j < i; j++) {
            buf *o = order[j];
            if (o->start <= b->end && b->start <= o->end) live[nl++] = o;
        }
        qsort(live, (size_t)nl, sizeof *live, cmp_off);
        size_t off = 0;
        for (int j = 0; j < nl; j++) {
            if (live[j]->off >= off + b->bytes) break;
            size_t e = live[j]->off + live[j]->bytes;
            if (e > off) off = e;
        }
        b->off = off;
        if (off + b->bytes > total) total = off + b->bytes;
    }
    free(order);
    free(live);
    return total;
}

/* ---- parameter initialisation ------------------------------------------------------------- */

static void init_param(float *dst, const ir_node *nd, uint64_t seed) {
    int64_t k = ir_node_numel(nd);
    for (int64_t i = 0; i < k; i++) {
        switch (nd->init.kind) {
        case IR_INIT_ZEROS: dst[i] = 0.f; break;
        case IR_INIT_ONES: dst[i] = 1.f; break;
        case IR_INIT_UNIFORM: dst[i] = (2.f * krng_uniform(seed, (uint64_t)i) - 1.f) * nd->init.value; break;
        case IR_INIT_NORMAL: {
            /* Box-Muller on two independent uniforms; u1 in (0, 1]. */
            double u1 = 1.0 - krng_uniform(seed, 2 * (uint64_t)i), u2 = krng_uniform(seed, 2 * (uint64_t)i + 1);
            dst[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)) * nd->init.value;
            break;
        }
        default: dst[i] = 0.f; break;
        }
    }
}

/* ---- plan construction ---------------------------------------------------------------------- */

static void drop_graphs(rt_plan *p) {
    for (int k = 0; k < 8; k++) {
        if (p->graph[k]) p->be->graph_free(p->be, p->graph[k]);
        p->graph[k] = NULL;
        p->seen[k] = 0;
    }
    for (int k = 0; k < RT_STEP_KEYS; k++) { /* a step's recording holds its passes' work */
        for (int v = 0; v < RT_MAX_VARIANTS; v++) /* a tuning cut short */
            if (p->stepg[k].vg[v]) p->be->graph_free(p->be, p->stepg[k].vg[v]);
        if (p->stepg[k].graph) p->be->graph_free(p->be, p->stepg[k].graph);
        memset(&p->stepg[k], 0, sizeof p->stepg[k]);
    }
}

void rt_plan_free(rt_plan *p) {
    if (!p) return;
    rt_backend *be = p->be;
    drop_graphs(p);
    if (p->seeds_dev) be->free(be, p->seeds_dev);
    if (p->arena) be->free(be, p->arena);
    free(p->bufs);
    for (int gi = 0; gi < 3; gi++) {
        if (p->pdata[gi]) be->free(be, p->pdata[gi]);
        if (p->pgrad[gi]) be->free(be, p->pgrad[gi]);
    }
    if (p->scratch) be->free(be, p->scratch);
    if (p->one) be->free(be, p->one);
    if (p->zero_at)
        for (int i = 0; i < p->n; i++) free(p->zero_at[i]);
    free(p->zero_at);
    for (int m = 0; m < 4; m++) free(p->ng[m]);
    free(p->src0);
    free(p->fused);
    free(p->gsrc);
    free(p->gscale);
    free(p->gskip);
    free(p->lazyc);
    free(p->stsrc);
    free(p->fold);
    free(p->glead);
    free(p->gmore);
    free(p->ex);
    free(p->fattr);
    free(p->data);
    free(p->grad);
    free(p);
}

/* Shapes, op and attributes of node i into e (no pointers). */
static void fill_exec_shapes(const ir_graph *g, int i, rt_exec_node *e) {
    const ir_node *nd = ir_graph_node(g, i);
    e->op = nd->op;
    e->iattr = nd->iattr;
    e->fattr = nd->fattr; /* the graph's; rt_plan_new gives each node its own copy after */
    e->n_in = nd->n_inputs;
    e->out.ndim = nd->ndim;
    memcpy(e->out.shape, nd->shape, sizeof nd->shape);
    e->out.numel = ir_node_numel(nd);
    for (int j = 0; j < nd->n_inputs && j < RT_MAX_IN; j++) {
        if (nd->inputs[j] < 0) continue;
        const ir_node *x = ir_graph_node(g, nd->inputs[j]);
        e->in[j].ndim = x->ndim;
        memcpy(e->in[j].shape, x->shape, sizeof x->shape);
        e->in[j].numel = ir_node_numel(x);
    }
}

/* Marks the ReLUs to fold into their one consumer (see the top of the file). */
static void plan_fusions(rt_plan *p, int *ncons) {
    const ir_graph *g = p->g;
    for (int i = 0; i < p->n; i++) p->src0[i] = -1;
    if (!p->be->fuses_relu_in || getenv("DARTSC_NO_FUSION")) return;
    for (int i = 0; i < p->n; i++) ncons[i] = 0;
    for (int i = 0; i < p->n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) ncons[nd->inputs[j]]++;
    }
    for (int c = 0; c < p->n; c++) {
        const ir_node *cn = ir_graph_node(g, c);
        if (cn->n_inputs < 1 || cn->n_inputs > RT_MAX_IN || cn->inputs[0] < 0) continue;
        const int r = cn->inputs[0];
        const ir_node *rn = ir_graph_node(g, r);
        if (rn->op != IR_OP_RELU || ncons[r] != 1 || rn->inputs[0] < 0 ||
            (rn->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS)))
            continue;
        rt_exec_node e;
        memset(&e, 0, sizeof e);
        fill_exec_shapes(g, c, &e);
        if (!p->be->fuses_relu_in(p->be, &e)) continue;
        p->src0[c] = rn->inputs[0];
        p->fused[r] = 1;
    }
}

/* Marks the inputs of mixed ops (their one consumer, fused ReLUs bypassed) whose output
 * gradient the backend reads scaled through the mixed op's (gsrc, gscale, gskip), and the
 * batch norms among them whose output the mixed op applies as it reads (lazyc); see the
 * top of the file. */
static void plan_mixed_inputs(rt_plan *p) {
    const ir_graph *g = p->g;
    for (int i = 0; i < p->n; i++) p->gsrc[i] = p->lazyc[i] = -1;
    if ((!p->be->scales_out_grad && !p->be->defers_output) || getenv("DARTSC_NO_FUSION")) return;
    int *ncons = calloc((size_t)p->n, sizeof *ncons);
    if (!ncons) return;
    for (int i = 0; i < p->n; i++) {
        if (p->fused[i]) continue;
        const ir_node *nd = ir_graph_node(g, i);
        for (int k = 0; k < nd->n_inputs; k++)
            if (input_of(p, i, k) >= 0) ncons[input_of(p, i, k)]++;
    }
    for (int j = 0; j < p->n; j++) {
        const ir_node *mn = ir_graph_node(g, j);
        if (mn->op != IR_OP_MIXED || p->fused[j] || mn->n_inputs > RT_MAX_IN) continue;
        rt_exec_node ec;
        memset(&ec, 0, sizeof ec);
        fill_exec_shapes(g, j, &ec);
        for (int k = 1; k < mn->n_inputs; k++) {
            const int b = input_of(p, j, k);
            if (b < 0 || ncons[b] != 1 || p->fused[b]) continue;
            const ir_node *bn = ir_graph_node(g, b);
            if (bn->op == IR_OP_INPUT || bn->op == IR_OP_PARAM || (bn->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS))) continue;
            rt_exec_node e;
            memset(&e, 0, sizeof e);
            fill_exec_shapes(g, b, &e);
            if (k < 32 && p->be->scales_out_grad && p->be->scales_out_grad(p->be, &e)) {
                p->gsrc[b] = j;
                p->gscale[b] = (int)mn->iattr[IR_A_MIXED_COL0 + k - 1];
                p->gskip[j] |= 1u << k;
            }
            if (p->be->defers_output && bn->op == IR_OP_BATCHNORM && bn->inputs[0] >= 0 && p->src0[b] < 0 &&
                p->be->defers_output(p->be, &e, &ec))
                p->lazyc[b] = j;
        }
    }
    /* A batch norm whose one consumer is a convolution's folded ReLU (input 0 of the
     * convolution reads the batch norm through src0): deferred into the convolution where
     * the backend takes it (the convolution told it has the ReLU). */
    for (int j = 0; p->be->defers_output && j < p->n; j++) {
        const ir_node *cn = ir_graph_node(g, j);
        const int b = p->src0[j];
        if (cn->op != IR_OP_CONV2D || p->fused[j] || b < 0 || ncons[b] != 1 || p->fused[b] || p->lazyc[b] >= 0)
            continue;
        const ir_node *bn = ir_graph_node(g, b);
        if (bn->op != IR_OP_BATCHNORM || bn->inputs[0] < 0 || p->src0[b] >= 0 ||
            (bn->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS)))
            continue;
        rt_exec_node e, ec;
        memset(&e, 0, sizeof e);
        memset(&ec, 0, sizeof ec);
        fill_exec_shapes(g, b, &e);
        fill_exec_shapes(g, j, &ec);
        ec.relu_in = 1;
        if (p->be->defers_output(p->be, &e, &ec)) p->lazyc[b] = j;
    }
    /* A sum's inputs: the gradient of an ADD's input is its output gradient, bit for bit
     * (the backward wrote 1.0f * dy into each input's own buffer), so an input whose one
     * consumer is the ADD reads the ADD's gradient as its own (gsrc, gscale -1: unscaled)
     * and the ADD writes nothing for it (gskip): every DARTS node is such a sum of its
     * edges' mixed ops, so one copy per edge and its buffer go. Not where the ADD itself
     * reads another's gradient (it then has none of its own). */
    for (int j = 0; j < p->n; j++) {
        const ir_node *an = ir_graph_node(g, j);
        if (an->op != IR_OP_ADD || p->fused[j] || p->gsrc[j] >= 0 || an->n_inputs > 32) continue;
        for (int k = 0; k < an->n_inputs; k++) {
            const int b = input_of(p, j, k);
            if (b < 0 || ncons[b] != 1 || p->fused[b] || p->gsrc[b] >= 0) continue;
            const ir_node *bn = ir_graph_node(g, b);
            if (bn->op == IR_OP_INPUT || bn->op == IR_OP_PARAM || (bn->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS))) continue;
            p->gsrc[b] = j;
            p->gscale[b] = -1;
            p->gskip[j] |= 1u << k;
        }
    }
    free(ncons);
}

/* An environment switch: set, not empty and not "0". */
static int env_set(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* With DARTSC_POOL_BN_STATS=1 (which shares them too; opt-in until a device times it), a
 * batch norm of a pool's output takes its statistics from the pool itself where the
 * backend's pool can write them as it writes the output (shares_stats of the pool): every
 * batch norm of the tensor takes (28 a DARTS cell), none reads the tensor for them, and
 * the statistics cost no launch and no read of their own (kernels/cuda/bn.cu,
 * pool_stats_k). The same bits again. */
static int pool_writes_stats(const rt_plan *p, int i) {
    const ir_node *nd = ir_graph_node(p->g, i);
    if ((nd->op != IR_OP_MAXPOOL && nd->op != IR_OP_AVGPOOL) || p->fused[i]) return 0;
    rt_exec_node e;
    memset(&e, 0, sizeof e);
    fill_exec_shapes(p->g, i, &e);
    return p->be->shares_stats(p->be, &e);
}

/* Batch norms of one tensor compute the same batch statistics: the supernet's shared pools
 * (ir/space.c) leave every edge from a state its own affine-free batch norm of the state's
 * one max pool and one average pool, so a DARTS cell's 28 pool batch norms read 10 tensors.
 * Where the backend says so (shares_stats) and DARTSC_SHARE_BN_STATS=1 (opt-in until a
 * device times it), the first batch norm of a tensor also writes its statistics in double
 * (stats_out) and the later ones of that tensor with the same attributes take them
 * (stats_in, stsrc) instead of reading the tensor again: the same doubles, so the same bits;
 * each still writes its own coefficients and saved and running statistics, and its backward
 * is its own. Not with sync_bn (statistics merged through a host round trip). The statistics
 * live in the arena from the first one's forward to the last taker's (rt_plan_new). */
static void plan_shared_stats(rt_plan *p, const rt_plan_opts *opts) {
    const ir_graph *g = p->g;
    for (int i = 0; i < p->n; i++) p->stsrc[i] = -1;
    const int pools = env_set("DARTSC_POOL_BN_STATS");
    if (!p->be->shares_stats || opts->bn_sync || !(pools || env_set("DARTSC_SHARE_BN_STATS"))) return;
    int *nfold = calloc((size_t)p->n, sizeof *nfold); /* per pool: the batch norms folded into it so far */
    if (!nfold) return;                               /* (out of memory: no sharing, the same bits) */
    for (int j = 0; j < p->n; j++) {
        const ir_node *bj = ir_graph_node(g, j);
        if (bj->op != IR_OP_BATCHNORM || p->fused[j] || bj->inputs[0] < 0 || (bj->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS)))
            continue;
        rt_exec_node ej;
        memset(&ej, 0, sizeof ej);
        fill_exec_shapes(g, j, &ej);
        if (!p->be->shares_stats(p->be, &ej)) continue;
        if (pools && pool_writes_stats(p, bj->inputs[0])) {
            const int i = bj->inputs[0];
            p->stsrc[j] = i;
            /* a deferred batch norm that uses batch statistics in every pass: its forward
               writes only what the pool's last blocks can (coefficients, saved and running
               statistics), so the pool runs it, up to RT_POOL_TAKERS of them a pool */
            p->fold[j] = p->lazyc[j] >= 0 && bj->iattr[IR_A_BN_BATCH_STATS] && nfold[i] < RT_POOL_TAKERS;
            nfold[i] += p->fold[j];
            continue;
        }
        for (int i = 0; i < j; i++) { /* the first of the tensor's batch norms that computes its own */
            const ir_node *bi = ir_graph_node(g, i);
            if (bi->op != IR_OP_BATCHNORM || p->fused[i] || p->stsrc[i] >= 0 || bi->inputs[0] != bj->inputs[0] ||
                bi->iattr[IR_A_BN_BATCH_STATS] != bj->iattr[IR_A_BN_BATCH_STATS] ||
                bi->fattr[IR_F_BN_EPS] != bj->fattr[IR_F_BN_EPS] || (bi->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS)))
                continue;
            rt_exec_node ei;
            memset(&ei, 0, sizeof ei);
            fill_exec_shapes(g, i, &ei);
            if (!p->be->shares_stats(p->be, &ei)) continue;
            p->stsrc[j] = i;
            break;
        }
    }
    free(nfold);
}

/* A batch norm whose backward may be summed with others' (plan_summed_grads): no affine
 * parameters, batch statistics in every pass, its own statistics or shared ones. */
static int summable_bn(const rt_plan *p, int j) {
    const ir_node *b = ir_graph_node(p->g, j);
    return b->op == IR_OP_BATCHNORM && !p->fused[j] && b->inputs[0] >= 0 && input_of(p, j, 0) >= 0 &&
           (b->n_inputs < 2 || b->inputs[1] < 0) && (b->n_inputs < 3 || b->inputs[2] < 0) &&
           b->iattr[IR_A_BN_BATCH_STATS] && !(b->flags & (IR_FLAG_OUTPUT | IR_FLAG_LOSS));
}

/* The node whose backward runs node r's (r itself, or the lead of its summed batch norms). */
static int bwd_at(const rt_plan *p, int r) { return p->glead[r] >= 0 ? p->glead[r] : r; }

/* With DARTSC_SUM_BN_GRADS=1 (opt-in: it changes the rounding of the gradients, below, and
 * no device has timed it), the batch norms of one tensor that have the same eps, no affine
 * parameters and batch statistics in every pass normalise it alike (the same statistics:
 * the same deterministic sums, or shared ones), so their backwards are one linear map of
 * their output gradients: the sum over k of BNback(dy_k) is BNback(the sum of the dy_k).
 * The supernet's shared pools feed every edge from their state its own such batch norm (28
 * a DARTS cell, of 10 tensors). The first of a tensor's in node order, whose backward runs
 * last, when every other one's output gradient is complete, runs the backwards of up to
 * RT_MORE_GRADS more (glead, gmore; rt_exec_node.nmore) on the float sum of their output
 * gradients, each read scaled by its mixed op's weight as before; theirs run not at all:
 * one backward, one read of the tensor and one write of its gradient where there were up
 * to four (18 backwards fewer a DARTS cell and pass). Not bit for bit: the backward's sums
 * over the batch are taken of the summed gradient instead of each one, and the tensor's
 * gradient is one term instead of a sum of several (float rounding; tests/test_ops_grad.c
 * states the tolerance). Every mask must run all of a group or none. Their output
 * gradients, and the weights that scale them, then live until the lead's backward, and
 * the tensor's gradient starts there (rt_plan_new). Not with sync_bn. */
static void plan_summed_grads(rt_plan *p, const rt_plan_opts *opts) {
    for (int i = 0; i < p->n; i++) p->glead[i] = -1;
    if (!p->be->sums_out_grads || !p->grads_max || opts->bn_sync || !env_set("DARTSC_SUM_BN_GRADS")) return;
    for (int j = 0; j < p->n; j++) {
        if (p->glead[j] >= 0 || !summable_bn(p, j)) continue;
        const ir_node *bj = ir_graph_node(p->g, j);
        int k = 0;
        for (int m = j + 1; m < p->n && k < RT_MORE_GRADS; m++) {
            if (p->glead[m] >= 0 || !summable_bn(p, m) || input_of(p, m, 0) != input_of(p, j, 0) ||
                ir_graph_node(p->g, m)->fattr[IR_F_BN_EPS] != bj->fattr[IR_F_BN_EPS])
                continue;
            int alike = 1;
            for (unsigned mk = 1; mk < 4; mk++)
                if ((mk & p->grads_max) == mk && p->ng[mk][m] != p->ng[mk][j]) alike = 0;
            if (!alike) continue;
            p->gmore[j][k++] = m;
        }
        if (!k) continue;
        rt_exec_node e;
        memset(&e, 0, sizeof e);
        fill_exec_shapes(p->g, j, &e);
        e.nmore = k;
        if (!p->be->sums_out_grads(p->be, &e)) continue;
        p->ex[j].nmore = k;
        for (int q = 0; q < k; q++) p->glead[p->gmore[j][q]] = j;
    }
}

int rt_plan_summed_bn(const rt_plan *p) {
    int k = 0;
    for (int i = 0; i < p->n; i++) k += p->glead[i] >= 0;
    return k;
}

int rt_plan_shared_stats(const rt_plan *p) {
    int k = 0;
    for (int i = 0; i < p->n; i++) k += p->stsrc[i] >= 0;
    return k;
}

int rt_plan_folded_bn(const rt_plan *p) {
    int k = 0;
    for (int i = 0; i < p->n; i++) k += p->fold[i];
    return k;
}

/* Schedule steps a buffer outlives its last use (see rt_plan_new): DARTSC_LANE_SLACK, else
 * RT_LANE_SLACK for a training plan on lanes (or issued through the schedule eagerly) and 0
 * otherwise. */
#define RT_LANE_SLACK 256
static int lane_slack(const rt_plan *p) {
    const char *v = getenv("DARTSC_LANE_SLACK");
    if (v && *v) {
        char *end;
        long k = strtol(v, &end, 10);
        if (!*end && k >= 0 && k <= 1 << 20) return (int)k;
    }
    /* plans without gradients (evaluation) run eagerly in practice: rt_forward, not
     * rt_pass; their values are freed right after their last use as before */
    /* DARTSC_SCHEDULE_EAGER plans as if on lanes: their passes then batch as recordings do */
    return (p->lanes > 1 || p->sched_eager) && p->grads_max ? RT_LANE_SLACK : 0;
}

static void compute_needs_grad(rt_plan *p, unsigned mask, const uint8_t *reach, uint8_t *ng) {
    for (int i = 0; i < p->n; i++) {
        const ir_node *nd = ir_graph_node(p->g, i);
        uint8_t v = 0;
        if (nd->op == IR_OP_PARAM)
            v = (nd->role == IR_ROLE_WEIGHT && (mask & RT_GRAD_W)) || (nd->role == IR_ROLE_ARCH && (mask & RT_GRAD_ARCH));
        else if (nd->op != IR_OP_INPUT)
            for (int j = 0; j < nd->n_inputs; j++)
                if (input_of(p, i, j) >= 0 && ng[input_of(p, i, j)]) v = 1;
        ng[i] = v && reach[i];
    }
}

rt_plan *rt_plan_new(const ir_graph *g, rt_backend *be, const rt_plan_opts *opts, char *err, size_t errlen) {
    rt_plan *p = calloc(1, sizeof *p);
    if (!p) { perr(err, errlen, "out of memory"); return NULL; }
    int n = ir_graph_num_nodes(g);
    p->g = g;
    p->be = be;
    p->n = n;
    p->loss = -1;
    p->seed = opts->seed;
    /* dropout and drop-path masks: a stream of their own per data-parallel process (0: the
       one-process stream), so that processes draw different masks for their samples */
    p->mask_seed = opts->mask_stream ? krng_hash(opts->seed ^ 0x5eed, ~opts->mask_stream) : opts->seed ^ 0x5eed;
    p->grads_max = opts->grads;
    p->set_grads = be->sets_grad && !getenv("DARTSC_NO_FUSION");
    /* sync_bn: the batch norms exchange statistics through the host during a pass, which
       a recorded graph would not repeat */
    p->graphs = be->capture_begin && be->capture_end && be->replay && be->graph_free && !opts->bn_sync &&
                !getenv("DARTSC_NO_GRAPHS");
    p->step_graphs = p->graphs && !getenv("DARTSC_NO_STEP_GRAPHS");
    /* eager passes issued through runtime/schedule.c on one lane (in depth order, the
       backend's batches as in a recording): what `dartsc bench --profile` times of the
       batched launches, which recordings alone issue otherwise */
    p->sched_eager = !p->graphs && be->batches && be->run_batch && getenv("DARTSC_SCHEDULE_EAGER");
    const char *at = getenv("DARTSC_AUTOTUNE"), *tt = getenv("DARTSC_AUTOTUNE_TRIALS");
    p->tune_variants = 1;
    if (p->step_graphs && at && *at && strcmp(at, "0") != 0 && be->variants && be->set_variant && be->synchronize) {
        p->tune_variants = be->variants(be);
        if (p->tune_variants > RT_MAX_VARIANTS) p->tune_variants = RT_MAX_VARIANTS;
        if (p->tune_variants < 1) p->tune_variants = 1;
    }
    p->tune_trials = tt && atoi(tt) >= 1 ? atoi(tt) : 3;
    if (p->tune_trials > RT_TUNE_MAX_TRIALS) p->tune_trials = RT_TUNE_MAX_TRIALS;
    /* recordings may issue on several lanes, each with its own scratch (runtime/schedule.c) */
    p->lanes = p->graphs && be->lanes && be->set_lane && be->lane_signal && be->lane_wait ? be->lanes(be) : 1;
    if (p->lanes < 1) p->lanes = 1;
    p->ex = calloc((size_t)n, sizeof *p->ex);
    p->fattr = calloc((size_t)n, sizeof *p->fattr);
    p->data = calloc((size_t)n, sizeof *p->data);
    p->grad = calloc((size_t)n, sizeof *p->grad);
    p->zero_at = calloc((size_t)n, sizeof *p->zero_at);
    p->src0 = calloc((size_t)n, sizeof *p->src0);
    p->fused = calloc((size_t)n, 1);
    p->gsrc = calloc((size_t)n, sizeof *p->gsrc);
    p->gscale = calloc((size_t)n, sizeof *p->gscale);
    p->gskip = calloc((size_t)n, sizeof *p->gskip);
    p->lazyc = calloc((size_t)n, sizeof *p->lazyc);
    p->stsrc = calloc((size_t)n, sizeof *p->stsrc);
    p->fold = calloc((size_t)n, 1);
    p->glead = malloc((size_t)n * sizeof *p->glead);
    p->gmore = calloc((size_t)n, sizeof *p->gmore);
    uint8_t *reach = calloc((size_t)n, 1);
    int *maxcons = malloc(2 * (size_t)n * sizeof *maxcons);
    buf *bufs = calloc(4 * (size_t)n + 1, sizeof *bufs); /* per node: value, gradient, aux, statistics */
    for (int m = 0; m < 4; m++) p->ng[m] = calloc((size_t)n, 1);
    if (!p->ex || !p->fattr || !p->data || !p->grad || !p->zero_at || !reach || !maxcons || !bufs || !p->ng[3] ||
        !p->src0 || !p->fused || !p->gsrc || !p->gscale || !p->gskip || !p->lazyc || !p->stsrc || !p->fold ||
        !p->glead || !p->gmore) {
        perr(err, errlen, "out of memory");
        goto fail;
    }
    plan_fusions(p, maxcons);
    plan_mixed_inputs(p);
    plan_shared_stats(p, opts);

    /* Nodes, consumers, the loss. */
    for (int i = 0; i < n; i++) maxcons[i] = -1;
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (!be->supports_op(be, nd->op)) {
            perr(err, errlen, "backend %s does not support op %s (node '%s')", be->name, ir_op_name(nd->op), nd->name);
            goto fail;
        }
        if (nd->flags & IR_FLAG_LOSS) p->loss = i;
        if (p->fused[i]) continue;
        for (int j = 0; j < nd->n_inputs; j++) {
            if (input_of(p, i, j) >= 0 && maxcons[input_of(p, i, j)] < i) maxcons[input_of(p, i, j)] = i;
            if (value_of(p, i, j) >= 0 && maxcons[value_of(p, i, j)] < i) maxcons[value_of(p, i, j)] = i;
        }
    }
    p->ce = -1;
    if (p->loss >= 0) { /* a combined loss (main CE + weighted auxiliary CE) reports its first CE */
        const ir_node *ln = ir_graph_node(g, p->loss);
        if (ln->op == IR_OP_SOFTMAX_CE) p->ce = p->loss;
        for (int j = 0; p->ce < 0 && j < ln->n_inputs; j++)
            if (ln->inputs[j] >= 0 && ir_graph_node(g, ln->inputs[j])->op == IR_OP_SOFTMAX_CE) p->ce = ln->inputs[j];
    }
    if (p->grads_max && p->loss < 0) {
        perr(err, errlen, "graph '%s' has no loss to differentiate", ir_graph_name(g));
        goto fail;
    }
    /* reach: contributes to the loss; maxrc: last consumer that does (where a gradient starts) */
    int *maxrc = maxcons + n;
    for (int i = 0; i < n; i++) maxrc[i] = -1;
    if (p->loss >= 0) {
        reach[p->loss] = 1;
        for (int i = p->loss; i >= 0; i--) {
            if (!reach[i]) continue;
            const ir_node *nd = ir_graph_node(g, i);
            for (int j = 0; j < nd->n_inputs; j++) {
                const int s = input_of(p, i, j);
                if (s < 0) continue;
                reach[s] = 1;
                if (maxrc[s] < i) maxrc[s] = i;
            }
        }
    }
    for (unsigned m = 1; m < 4; m++)
        if ((m & p->grads_max) == m) compute_needs_grad(p, m, reach, p->ng[m]);
    plan_summed_grads(p, opts);
    if (rt_plan_summed_bn(p)) { /* a summed batch norm's backward is its lead's: no contribution of its own */
        for (int i = 0; i < n; i++) maxrc[i] = -1;
        for (int i = p->loss; i >= 0; i--) {
            if (!reach[i] || p->glead[i] >= 0) continue;
            const ir_node *nd = ir_graph_node(g, i);
            for (int j = 0; j < nd->n_inputs; j++) {
                const int s = input_of(p, i, j);
                if (s >= 0 && maxrc[s] < i) maxrc[s] = i;
            }
        }
    }
    const uint8_t *ngu = p->ng[p->grads_max & 3];

    /* Parameter groups. */
    int64_t off[3] = {0, 0, 0};
    int64_t *poff = calloc((size_t)n, sizeof *poff);
    if (!poff) { perr(err, errlen, "out of memory"); goto fail; }
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        int gi = nd->op == IR_OP_PARAM ? group_of(nd->role) : -1;
        if (gi < 0) continue;
        poff[i] = off[gi];
        off[gi] += (ir_node_numel(nd) + 15) & ~(int64_t)15; /* 64-byte aligned tensors */
    }
    for (int gi = 0; gi < 3; gi++) {
        p->pn[gi] = off[gi];
        size_t bytes = (size_t)(off[gi] ? off[gi] : 16) * sizeof(float);
        p->pdata[gi] = be->alloc(be, bytes);
        if (gi < 2) p->pgrad[gi] = be->alloc(be, bytes);
        if (!p->pdata[gi] || (gi < 2 && !p->pgrad[gi])) {
            free(poff);
            oom(err, errlen, be, gi < 2 ? "the parameters and their gradients" : "the buffers (running statistics)",
                (gi < 2 ? 2 : 1) * bytes, "");
            goto fail;
        }
        be->memset0(be, p->pdata[gi], bytes);
        if (gi < 2) be->memset0(be, p->pgrad[gi], bytes);
    }
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        int gi = nd->op == IR_OP_PARAM ? group_of(nd->role) : -1;
        if (gi < 0) continue;
        p->data[i] = p->pdata[gi] + poff[i];
        if (gi < 2) p->grad[i] = p->pgrad[gi] + poff[i];
        int64_t k = ir_node_numel(nd);
        float *host = malloc((size_t)k * sizeof *host);
        if (!host) { free(poff); perr(err, errlen, "out of memory"); goto fail; }
        init_param(host, nd, krng_hash(p->seed, (uint64_t)nd->seq)); /* seq: i unless a builder shared ops */
        be->upload(be, p->data[i], host, (size_t)k * sizeof *host);
        free(host);
    }
    free(poff);

    /* Buffers and their lifetimes over t = 0..2n-1 (forward i at t=i, backward i at t=2n-1-i). */
    int nb = 0, T = 2 * n;
    float **auxslot = calloc((size_t)n, sizeof *auxslot);
    double **statslot = calloc((size_t)n, sizeof *statslot);
    if (!auxslot || !statslot) { free(auxslot); free(statslot); perr(err, errlen, "out of memory"); goto fail; }
    size_t scratch_max = 0;
    const int nshared = rt_plan_shared_stats(p);
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        rt_exec_node *e = &p->ex[i];
        if (nd->n_inputs > RT_MAX_IN) {
            free(auxslot);
            free(statslot);
            perr(err, errlen, "node '%s' has too many inputs", nd->name);
            goto fail;
        }
        fill_exec_shapes(g, i, e);
        memcpy(p->fattr[i], nd->fattr, sizeof p->fattr[i]);
        e->fattr = p->fattr[i];
        e->relu_in = p->src0[i] >= 0;
        e->defer_out = p->lazyc[i] >= 0;
        if (nd->op == IR_OP_BATCHNORM) e->bn_sync = opts->bn_sync;
        if (nd->op == IR_OP_PARAM || p->fused[i]) continue;
        int runs = ngu[i] && nd->op != IR_OP_INPUT;
        /* the value (none where deferred) */
        buf unused, *b = e->defer_out ? &unused : &bufs[nb++];
        b->bytes = ((size_t)e->out.numel * 4 + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
        b->slot = &p->data[i];
        b->start = nd->op == IR_OP_INPUT ? 0 : i;
        int end = maxcons[i] > i ? maxcons[i] : i;
        for (int c = i + 1; c < n && c <= maxcons[i] && p->grads_max; c++) {
            const ir_node *cn = ir_graph_node(g, c);
            if (!ngu[c] || !saves_inputs(cn->op)) continue;
            for (int j = 0; j < cn->n_inputs; j++)
                if ((input_of(p, c, j) == i || value_of(p, c, j) == i) && T - 1 - c > end) end = T - 1 - c;
        }
        if (runs && saves_output(nd->op) && T - 1 - i > end) end = T - 1 - i;
        if (nd->op == IR_OP_INPUT || (nd->flags & IR_FLAG_OUTPUT)) end = T;
        b->end = end;
        /* its gradient (none where it reads a mixed op's, scaled, or an ADD's; that one then
         * lives until the last such reader's backward, readers through readers included) */
        if (ngu[i] && nd->op != IR_OP_INPUT && p->gsrc[i] < 0) {
            b = &bufs[nb++];
            b->bytes = ((size_t)e->out.numel * 4 + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
            b->slot = (void **)&p->grad[i];
            int first = i == p->loss ? i : maxrc[i];
            b->start = T - 1 - first;
            b->end = T - 1 - bwd_at(p, i); /* a summed batch norm's: read by its lead's backward */
            for (int r = 0; r < i && p->gskip[i]; r++)
                if (reads_grad_of(p, r, i) && T - 1 - bwd_at(p, r) > b->end) b->end = T - 1 - bwd_at(p, r);
            if (i != p->loss) {
                /* zero it just before the backward of its last consumer */
                int *z = p->zero_at[first];
                int k = 0;
                while (z && z[k] >= 0) k++;
                z = realloc(z, (size_t)(k + 2) * sizeof *z);
                if (!z) {
                    free(auxslot);
                    free(statslot);
                    perr(err, errlen, "out of memory");
                    goto fail;
                }
                z[k] = i;
                z[k + 1] = -1;
                p->zero_at[first] = z;
            }
        }
        /* saved state */
        size_t aux = rt_aux_floats(e);
        if (aux) {
            b = &bufs[nb++];
            b->bytes = (aux * 4 + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
            b->slot = (void **)&auxslot[i];
            b->start = p->fold[i] ? p->stsrc[i] : i; /* a folded batch norm's: written by its pool's forward */
            b->end = runs ? T - 1 - i : i;
            for (int r = 0; r < i && runs && p->gskip[i]; r++) /* its weights scale those readers' dy */
                if (p->gsrc[r] == i && T - 1 - bwd_at(p, r) > b->end) b->end = T - 1 - bwd_at(p, r);
            if (nd->op == IR_OP_SOFTMAX_CE) b->end = T; /* correct count read after forward */
            if (e->defer_out) { /* the coefficients, read by the mixed op's forward and backward */
                const int j = p->lazyc[i];
                if (j > b->end) b->end = j;
                if (ngu[j] && T - 1 - j > b->end) b->end = T - 1 - j;
            }
        }
        /* the batch statistics the later batch norms of its input take (plan_shared_stats) */
        int taker = -1, takers = 0;
        for (int j = i + 1; nshared && (nd->op == IR_OP_BATCHNORM || nd->op == IR_OP_MAXPOOL || nd->op == IR_OP_AVGPOOL) && j < n; j++)
            if (p->stsrc[j] == i) {
                takers++;
                if (!p->fold[j]) taker = j;
            }
        if (takers) {
            b = &bufs[nb++];
            b->bytes = (2 * (size_t)e->in[0].shape[1] * sizeof(double) + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
            b->slot = (void **)&statslot[i];
            b->start = i;
            /* read by the takers' forwards; a folded one's runs in its pool's (rt_exec_node.takers) */
            b->end = taker >= 0 ? taker : i;
        }
        size_t s = be->scratch_floats(be, e);
        if (s > scratch_max) scratch_max = s;
    }
    /* On lanes, memory freed by one op and reused by a later one orders the two (runtime/
     * schedule.c), so reuse right away would chain independent ops: the backward of a mixed
     * edge's candidates would run one after another in the same few gradient buffers.
     * Each buffer is kept `slack` schedule steps past its last use instead, so the ops of
     * neighbouring chains get memory of their own (docs/ARCHITECTURE.md, "Lanes"). */
    const int slack = lane_slack(p);
    for (int k = 0; slack && k < nb; k++) bufs[k].end += slack;
    p->arena_bytes = assign_offsets(bufs, nb);
    p->arena = be->alloc(be, p->arena_bytes ? p->arena_bytes : ALIGN_BYTES);
    p->scratch_stride = ((scratch_max ? scratch_max : 16) + 15) & ~(size_t)15;
    p->scratch = be->alloc(be, p->scratch_stride * (size_t)p->lanes * sizeof(float));
    p->one = be->alloc(be, sizeof(float));
    if (!p->arena || !p->scratch || !p->one) {
        free(auxslot);
        free(statslot);
        oom(err, errlen, be, "the activations (the plan's arena and scratch)",
            p->arena_bytes + p->scratch_stride * (size_t)p->lanes * sizeof(float),
            " (the activations grow with the batch: a smaller batch needs proportionally less)");
        goto fail;
    }
    float one = 1.0f;
    be->upload(be, p->one, &one, sizeof one);
    for (int k = 0; k < nb; k++) *bufs[k].slot = (char *)p->arena + bufs[k].off;
    for (int i = 0; i < n; i++) {
        rt_exec_node *e = &p->ex[i];
        e->aux = auxslot[i];
        e->stats_out = statslot[i];
        e->stats_in = p->stsrc[i] >= 0 ? statslot[p->stsrc[i]] : NULL;
        e->stats_always = 0;
        e->ntakers = 0;
        e->scratch = p->scratch;
        e->out.data = p->data[i];
        const ir_node *nd = ir_graph_node(g, i);
        for (int j = 0; j < nd->n_inputs; j++) {
            const int s = input_of(p, i, j);
            e->in[j].data = s >= 0 ? p->data[value_of(p, i, j)] : NULL;
            e->in[j].affine = s >= 0 && p->lazyc[s] >= 0 ? p->ex[s].aux + 2 * p->ex[s].in[0].shape[1] : NULL;
        }
    }
    for (int j = 0; nshared && j < n; j++) { /* a pool writes its statistics in every pass where a taker always uses them */
        if (p->stsrc[j] < 0 || ir_graph_node(g, p->stsrc[j])->op == IR_OP_BATCHNORM) continue;
        rt_exec_node *pe = &p->ex[p->stsrc[j]];
        if (ir_graph_node(g, j)->iattr[IR_A_BN_BATCH_STATS]) pe->stats_always = 1;
        if (p->fold[j]) pe->takers[pe->ntakers++] = &p->ex[j]; /* and runs its forward (plan_shared_stats) */
    }
    if (p->graphs && be->fill_seeds) { /* recorded passes read their seeds on the device */
        int masks = 0;
        for (int i = 0; i < p->n; i++) masks |= p->ex[i].op == IR_OP_DROPOUT || p->ex[i].op == IR_OP_DROP_PATH;
        /* one slot of seeds per pass of a recorded step (rt_step_run); a pass alone uses slot 0 */
        if (masks && !(p->seeds_dev = be->alloc(be, (size_t)p->n * RT_STEP_MAX_PASSES * sizeof(uint64_t)))) {
            oom(err, errlen, be, "the recorded passes' seeds", (size_t)p->n * RT_STEP_MAX_PASSES * sizeof(uint64_t), "");
            free(auxslot);
            free(statslot);
            goto fail;
        }
    }
    free(auxslot);
    free(statslot);
    free(reach);
    free(maxcons);
    p->bufs = bufs; /* kept for rt_plan_audit */
    p->nbufs = nb;
    return p;
fail:
    free(reach);
    free(maxcons);
    free(bufs);
    rt_plan_free(p);
    return NULL;
}

/* ---- stepping ------------------------------------------------------------------------------- */

int rt_set_input(rt_plan *p, int node, const void *host, size_t bytes) {
    const ir_node *nd = ir_graph_node(p->g, node);
    if (!nd || nd->op != IR_OP_INPUT || (size_t)ir_node_numel(nd) * 4 != bytes) return -1;
    if (p->step_rec) { /* an upload inside a step's recording would replay stale data: the step runs eagerly */
        p->step_bad = 1;
        return 0;
    }
    p->be->upload(p->be, p->data[node], host, bytes);
    return 0;
}

/* Issues the forward pass; reads nothing back. */
static void forward_issue(rt_plan *p, int training) {
    p->step++;
    for (int i = 0; i < p->n; i++) {
        rt_exec_node *e = &p->ex[i];
        if (e->op == IR_OP_INPUT || e->op == IR_OP_PARAM || p->fused[i]) continue;
        e->training = training;
        if (p->fold[i]) continue; /* its pool's forward runs it */
        p->issue_t = i;
        e->seed = krng_hash(p->mask_seed, p->step * (uint64_t)p->n + (uint64_t)i);
        /* only the ops that draw masks read a seed: the others stay free to batch (the CUDA
           backend never batches a node that reads its seed on the device) */
        e->seed_dev = p->recording && p->seeds_dev && (e->op == IR_OP_DROPOUT || e->op == IR_OP_DROP_PATH)
                          ? p->seeds_dev + (size_t)p->seed_slot * (size_t)p->n + i
                          : NULL;
        issue_node(p, RT_OP_FWD, e);
    }
}

float rt_forward(rt_plan *p, int training) {
    forward_issue(p, training);
    return rt_loss(p);
}

float rt_loss(rt_plan *p) {
    rt_backend *be = p->be;
    if (p->loss < 0) return NAN;
    if (p->step_rec) { /* nothing to read inside a step's recording: the step runs eagerly */
        p->step_bad = 1;
        return NAN;
    }
    float host[1];
    be->download(be, host, p->data[p->loss], sizeof host);
    p->last_correct = 0;
    if (p->ce >= 0) {
        const rt_exec_node *le = &p->ex[p->ce];
        float corr;
        be->download(be, &corr, le->aux + le->in[0].numel, sizeof corr);
        p->last_correct = (int)corr;
    }
    return host[0];
}

int rt_last_correct(const rt_plan *p) { return p->last_correct; }

/* A recording would replay the masks of the step it was recorded at, so passes that draw
 * random masks (dropout, drop path with p > 0 in training) run eagerly, unless the backend
 * reads the seeds on the device (fill_seeds): then rt_pass writes each pass's seeds
 * there before replaying it, the ones an eager pass at that step would draw. */
static int draws_masks(const rt_plan *p, int training) {
    if (!training || p->seeds_dev) return 0;
    for (int i = 0; i < p->n; i++)
        if ((p->ex[i].op == IR_OP_DROPOUT || p->ex[i].op == IR_OP_DROP_PATH) && p->fattr[i][IR_F_P] > 0) return 1;
    return 0;
}

/* Issues one pass collected for the lanes (or in order on one lane), as a recording does. */
static void issue_recorded(rt_plan *p, int training, unsigned mask) {
    rt_backend *be = p->be;
    rt_oplist ops = {0};
    p->recording = 1;
    p->collect = p->lanes > 1 ? &ops : NULL;
    forward_issue(p, training);
    if (mask) rt_backward(p, mask);
    p->collect = NULL;
    p->recording = 0;
    if (p->lanes > 1 && rt_issue_lanes(be, &ops, p->lanes, p->scratch, p->scratch_stride, &p->lane_stats) != 0)
        rt_issue_in_order(be, &ops); /* out of memory planning the lanes: in order, one lane */
    rt_oplist_free(&ops);
}

/* Inside a step's recording, a pass on lanes starts after everything lane 0 issued before it
 * (the optimiser and copies between passes: every lane waits on point 0 recorded there) and
 * lane 0 goes on after every lane's last op (point k of lane k). A recorded pass alone needs
 * neither: capture_begin forks the lanes and capture_end joins them. rt_issue_lanes numbers
 * its own points from 0 again; each wait here is issued after its record and before any
 * re-record, which is all a stream capture's event wait needs. */
static void lanes_fork(rt_plan *p) {
    rt_backend *be = p->be;
    be->set_lane(be, 0);
    be->lane_signal(be, 0);
    for (int k = 1; k < p->lanes; k++) {
        be->set_lane(be, k);
        be->lane_wait(be, 0);
    }
    be->set_lane(be, 0);
}
static void lanes_join(rt_plan *p) {
    rt_backend *be = p->be;
    for (int k = 1; k < p->lanes; k++) {
        be->set_lane(be, k);
        be->lane_signal(be, k);
    }
    be->set_lane(be, 0);
    for (int k = 1; k < p->lanes; k++) be->lane_wait(be, k);
}

/* A pass of a step being recorded (rt_step_run): issued into the step's capture, its mask
 * seeds read from its own slot, which rt_step_run fills before each replay. */
static int step_pass(rt_plan *p, int training, unsigned mask) {
    const int j = p->step_pass++;
    if (j >= RT_STEP_MAX_PASSES || (training && !p->seeds_dev && draws_masks(p, 1))) {
        p->step_bad = 1; /* the step runs eagerly instead (rt_step_run); nothing to issue */
        return 0;
    }
    if (training && p->seeds_dev) p->step_seeded |= 1u << j;
    p->seed_slot = j;
    if (p->lanes > 1) lanes_fork(p);
    issue_recorded(p, training, mask);
    if (p->lanes > 1) lanes_join(p);
    p->seed_slot = 0;
    return 0;
}

int rt_pass(rt_plan *p, int training, unsigned mask) {
    if (mask & ~3u || (mask && ((mask & p->grads_max) != mask || p->loss < 0))) return -1;
    training = training != 0;
    const int key = training * 4 + (int)mask;
    rt_backend *be = p->be;
    if (p->step_rec) return step_pass(p, training, mask);
    if (p->graphs && !draws_masks(p, training)) {
        /* this pass's seeds, where a recording reads them on the device */
        if (training && p->seeds_dev && (p->graph[key] || p->seen[key]))
            be->fill_seeds(be, p->seeds_dev, p->mask_seed, p->step + 1, p->n);
        if (p->graph[key]) {
            p->step++; /* as the eager pass would count it */
            be->replay(be, p->graph[key]);
            return 0;
        }
        if (p->seen[key] && be->capture_begin(be) == 0) {
            const uint64_t step = p->step;
            issue_recorded(p, training, mask);
            p->graph[key] = be->capture_end(be);
            p->step = step; /* recording ran nothing */
            if (p->graph[key]) {
                p->step++;
                be->replay(be, p->graph[key]);
                return 0;
            }
            p->graphs = 0; /* the backend could not record this plan's passes: eager from now on */
        }
        p->seen[key] = 1;
    }
    if (p->sched_eager) {
        const uint64_t step = p->step;
        rt_oplist ops = {0};
        p->collect = &ops;
        forward_issue(p, training);
        int rc = mask ? rt_backward(p, mask) : 0;
        p->collect = NULL;
        if (!ops.oom && rt_issue_lanes(be, &ops, 1, p->scratch, p->scratch_stride, &p->lane_stats) == 0) {
            rt_oplist_free(&ops);
            return rc;
        }
        rt_oplist_free(&ops); /* out of memory: the pass issued as it is made */
        p->step = step;
    }
    forward_issue(p, training);
    return mask ? rt_backward(p, mask) : 0;
}

/* ---- whole steps ---------------------------------------------------------------------------- */

/* Replays graph g, a recording of step key k: each pass's seeds (the ones its eager run
 * would draw at this step), then the one launch; the plan's step advances as the passes
 * would advance it. */
static void step_replay_graph(rt_plan *p, int k, void *g) {
    rt_backend *be = p->be;
    for (int j = 0; j < p->stepg[k].npass; j++)
        if (p->stepg[k].seeded >> j & 1u)
            be->fill_seeds(be, p->seeds_dev + (size_t)j * (size_t)p->n, p->mask_seed, p->step + (uint64_t)j + 1,
                           p->n);
    p->step += (uint64_t)p->stepg[k].npass;
    be->replay(be, g);
}
static void step_replay(rt_plan *p, int k) { step_replay_graph(p, k, p->stepg[k].graph); }

/* Records one step of fn as a graph (NULL: it cannot be recorded; nothing ran). */
static void *step_record(rt_plan *p, rt_step_fn fn, void *ctx) {
    rt_backend *be = p->be;
    if (be->capture_begin(be) != 0) return NULL;
    const uint64_t step = p->step;
    p->step_rec = 1;
    p->step_pass = 0;
    p->step_seeded = 0;
    p->step_bad = 0;
    const int rc = fn(ctx);
    p->step_rec = 0;
    void *g = be->capture_end(be);
    p->step = step; /* recording ran nothing */
    if (rc || !g || p->step_bad) {
        if (g) be->graph_free(be, g);
        return NULL;
    }
    return g;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median_of(const double *v, int n) {
    double s[RT_TUNE_MAX_TRIALS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* One step of key k's autotuning (rt_step_tuning): record the next variant's graph, or
 * replay the variant with the fewest timings; each replay timed from a synchronisation to
 * the next. After the last timing the fastest median's graph stays. A recording that
 * fails ends tuning and step graphs (eager from now on, as rt_step_run without tuning). */
static int step_tune(rt_plan *p, int k, rt_step_fn fn, void *ctx) {
    rt_backend *be = p->be;
    const int V = p->tune_variants, T = p->tune_trials;
    int v;
    if (p->stepg[k].nrec < V) {
        v = p->stepg[k].nrec;
        be->set_variant(be, v);
        void *g = step_record(p, fn, ctx);
        if (!g) {
            for (int i = 0; i < v; i++) be->graph_free(be, p->stepg[k].vg[i]), p->stepg[k].vg[i] = NULL;
            p->stepg[k].nrec = 0;
            be->set_variant(be, 0);
            p->step_graphs = 0;
            return fn(ctx);
        }
        p->stepg[k].vg[v] = g;
        p->stepg[k].nrec++;
        p->stepg[k].npass = p->step_pass; /* the same fn: the same passes under every variant */
        p->stepg[k].seeded = p->step_seeded;
    } else {
        v = p->stepg[k].ntimed % V;
    }
    /* device time between two marks where the backend has them (CUDA: events around the
       graph on lane 0, whose end joins every lane), else host time; both after a
       synchronisation, so that no earlier work counts (the marks are not reset: a caller's
       own marks stay valid) */
    be->synchronize(be);
    const int marks = be->mark && be->mark_elapsed;
    void *m0 = marks ? be->mark(be) : NULL;
    const double t0 = now_s();
    step_replay_graph(p, k, p->stepg[k].vg[v]);
    void *m1 = marks ? be->mark(be) : NULL;
    be->synchronize(be);
    p->stepg[k].vt[v][p->stepg[k].ntimed / V] = marks ? be->mark_elapsed(be, m0, m1) : now_s() - t0;
    p->stepg[k].ntimed++;
    if (p->stepg[k].ntimed < V * T) return 0;
    int best = 0;
    for (int i = 1; i < V; i++)
        if (median_of(p->stepg[k].vt[i], T) < median_of(p->stepg[k].vt[best], T)) best = i;
    p->stepg[k].graph = p->stepg[k].vg[best];
    p->stepg[k].vg[best] = NULL;
    for (int i = 0; i < V; i++)
        if (p->stepg[k].vg[i]) be->graph_free(be, p->stepg[k].vg[i]), p->stepg[k].vg[i] = NULL;
    be->set_variant(be, best);
    rt_tune_report *r = &p->tune_rep;
    r->variants = V;
    r->trials = T;
    r->chosen = best;
    for (int i = 0; i < V; i++) {
        r->times[i] = median_of(p->stepg[k].vt[i], T);
        r->names[i] = be->variant_name ? be->variant_name(be, i) : "";
    }
    p->tuned = 1;
    return 0;
}

int rt_step_run(rt_plan *p, int key, rt_step_fn fn, void *ctx) {
    if (!p->step_graphs || p->step_rec) return fn(ctx);
    int k = -1;
    for (int i = 0; i < RT_STEP_KEYS && k < 0; i++)
        if (p->stepg[i].seen && p->stepg[i].key == key) k = i;
    if (k >= 0 && p->stepg[k].graph) {
        step_replay(p, k);
        return 0;
    }
    if (k < 0) { /* first run of this key: eagerly (warms the library state a capture cannot make) */
        for (int i = 0; i < RT_STEP_KEYS && k < 0; i++)
            if (!p->stepg[i].seen) k = i;
        if (k >= 0) {
            p->stepg[k].seen = 1;
            p->stepg[k].key = key;
        }
        return fn(ctx);
    }
    if (p->tune_variants > 1 && !p->tuned) return step_tune(p, k, fn, ctx);
    void *g = step_record(p, fn, ctx);
    if (!g) { /* not recordable (or the step failed): eager from now on, and this step eagerly */
        p->step_graphs = 0;
        return fn(ctx);
    }
    p->stepg[k].graph = g;
    p->stepg[k].npass = p->step_pass;
    p->stepg[k].seeded = p->step_seeded;
    step_replay(p, k);
    return 0;
}

int rt_step_recorded(const rt_plan *p, int key) {
    for (int i = 0; i < RT_STEP_KEYS; i++)
        if (p->stepg[i].seen && p->stepg[i].key == key) return p->stepg[i].graph != NULL;
    return 0;
}

int rt_plan_tune_steps(const rt_plan *p) {
    return p->step_graphs && p->tune_variants > 1 ? p->tune_variants * p->tune_trials : 0;
}

int rt_step_tuning(const rt_plan *p, rt_tune_report *r) {
    memset(r, 0, sizeof *r);
    if (p->tune_variants < 2) return -1;
    if (p->tuned) {
        *r = p->tune_rep;
        return 1;
    }
    return p->step_graphs ? 0 : -1;
}

int rt_set_input_dev(rt_plan *p, int node, const void *src, size_t bytes) {
    const ir_node *nd = ir_graph_node(p->g, node);
    if (!nd || nd->op != IR_OP_INPUT || (size_t)ir_node_numel(nd) * 4 != bytes) return -1;
    p->be->copy(p->be, p->data[node], (const float *)src, (int64_t)(bytes / 4)); /* int32 labels too: a copy of bytes */
    return 0;
}

int rt_loss_to(rt_plan *p, float *loss, float *correct) {
    rt_backend *be = p->be;
    if (p->loss < 0) return -1;
    be->copy(be, loss, p->data[p->loss], 1);
    if (!correct) return 0;
    if (p->ce >= 0) be->copy(be, correct, p->ex[p->ce].aux + p->ex[p->ce].in[0].numel, 1);
    else be->memset0(be, correct, sizeof *correct);
    return 0;
}

int rt_plan_collect(rt_plan *p, int training, unsigned mask, rt_oplist *ops) {
    if (mask & ~3u || (mask && ((mask & p->grads_max) != mask || p->loss < 0))) return -1;
    p->collect = ops;
    forward_issue(p, training != 0);
    const int rc = mask ? rt_backward(p, mask) : 0;
    p->collect = NULL;
    return ops->oom ? -1 : rc;
}

int rt_plan_audit(rt_plan *p, int training, unsigned mask, char *err, size_t errlen) {
    rt_oplist ops = {0};
    if (rt_plan_collect(p, training, mask, &ops) != 0) {
        rt_oplist_free(&ops);
        perr(err, errlen, "rt_plan_audit: the pass could not be collected");
        return -1;
    }
    const uintptr_t a0 = (uintptr_t)p->arena, a1 = a0 + p->arena_bytes;
    static const char *const kind[] = {"forward", "backward", "zeroing", "copy"};
    int bad = 0;
    for (int k = 0; k < ops.n; k++) {
        const rt_op *o = &ops.ops[k];
        rt_range r[RT_OP_MAX_RANGES + 2 + 2 * RT_MORE_GRADS];
        int nr = rt_op_ranges(o, r);
        if (o->kind == RT_OP_BWD) { /* what a backward reads for certain: its output gradients and their scales */
            const size_t gb = (size_t)o->e.out.numel * sizeof(float);
            const float *rd[2 + 2 * RT_MORE_GRADS] = {o->e.out.grad, o->e.out_grad_scale};
            size_t rb[2 + 2 * RT_MORE_GRADS] = {gb, sizeof(float)};
            for (int q = 0; q < o->e.nmore && q < RT_MORE_GRADS; q++) {
                rd[2 + 2 * q] = o->e.more_grad[q], rb[2 + 2 * q] = gb;
                rd[3 + 2 * q] = o->e.more_scale[q], rb[3 + 2 * q] = sizeof(float);
            }
            for (int q = 0; q < 2 + 2 * RT_MORE_GRADS; q++)
                if (rd[q]) r[nr++] = (rt_range){(uintptr_t)rd[q], (uintptr_t)rd[q] + rb[q], 2};
        }
        for (int q = 0; q < nr; q++) {
            if (r[q].hi <= a0 || r[q].lo >= a1) continue; /* parameters, scratch: not the arena's */
            /* a backward's reads are listed conservatively (w 0), but for those above (w 2) */
            if (o->kind != RT_OP_FWD && !r[q].w) continue;
            const size_t lo = r[q].lo - a0, hi = r[q].hi - a0;
            int ok = 0;
            for (int b = 0; b < p->nbufs && !ok; b++) {
                const buf *B = &p->bufs[b];
                ok = B->off <= lo && hi <= B->off + B->bytes && B->start <= o->t && o->t <= B->end;
            }
            if (ok) continue;
            if (!bad)
                perr(err, errlen, "%s op %d (%s, schedule time %d) %s arena bytes [%zu, %zu) of no buffer live then",
                     o->kind <= RT_OP_COPY ? kind[o->kind] : "?", k,
                     o->kind == RT_OP_FWD || o->kind == RT_OP_BWD ? ir_op_name(o->e.op) : "-", o->t,
                     r[q].w == 1 ? "writes" : "reads", lo, hi);
            bad++;
        }
    }
    rt_oplist_free(&ops);
    return bad;
}

rt_lane_stats rt_plan_lane_stats(const rt_plan *p) { return p->lane_stats; }
int rt_plan_lanes(const rt_plan *p) { return p->lanes; }

int rt_backward(rt_plan *p, unsigned mask) {
    mask &= 3;
    if (!mask || (mask & p->grads_max) != mask || p->loss < 0) return -1;
    rt_backend *be = p->be;
    const uint8_t *ng = p->ng[mask];
    p->issue_t = 2 * p->n - 1 - p->loss;
    if (mask & RT_GRAD_W) issue_zero(p, p->pgrad[0], (size_t)p->pn[0] * sizeof(float));
    if (mask & RT_GRAD_ARCH) issue_zero(p, p->pgrad[1], (size_t)p->pn[1] * sizeof(float));
    issue_copy(p, p->grad[p->loss], p->one, 1);
    for (int j = p->loss; j >= 0; j--) {
        p->issue_t = 2 * p->n - 1 - j;
        rt_exec_node e = p->ex[j];
        /* a summed batch norm's backward is its lead's (plan_summed_grads) */
        const int runs = ng[j] && e.op != IR_OP_INPUT && e.op != IR_OP_PARAM && p->glead[j] < 0;
        if (runs) {
            e.out.grad = grad_of(p, j);
            e.out_grad_scale = grad_scale_of(p, j);
            for (int q = 0; q < e.nmore; q++) {
                e.more_grad[q] = grad_of(p, p->gmore[j][q]);
                e.more_scale[q] = grad_scale_of(p, p->gmore[j][q]);
            }
            for (int k = 0; k < e.n_in; k++) {
                int s = input_of(p, j, k);
                e.in[k].grad = s >= 0 && ng[s] && !(k < 32 && (p->gskip[j] >> k & 1u)) ? p->grad[s] : NULL;
            }
        }
        /* Gradients whose first contribution is node j's: zeroed now, or, where the backend
         * writes the whole of it (sets_grad), handed over uninitialised with grad_set. */
        e.grad_set = 0;
        for (const int *z = p->zero_at[j]; z && *z >= 0; z++) {
            if (!ng[*z]) continue;
            int slot = -1, uses = 0;
            for (int k = 0; runs && k < e.n_in; k++)
                if (input_of(p, j, k) == *z) {
                    slot = k;
                    uses++;
                }
            if (p->set_grads && uses == 1 && slot < 32 && be->sets_grad(be, &e, slot)) e.grad_set |= 1u << slot;
            else issue_zero(p, p->grad[*z], (size_t)ir_node_numel(ir_graph_node(p->g, *z)) * sizeof(float));
        }
        if (runs) issue_node(p, RT_OP_BWD, &e);
    }
    return 0;
}

rt_group rt_plan_group(rt_plan *p, ir_role role) {
    int gi = group_of(role);
    rt_group gr = {0};
    if (gi < 0) return gr;
    gr.data = p->pdata[gi];
    gr.grad = gi < 2 ? p->pgrad[gi] : NULL;
    gr.n = p->pn[gi];
    return gr;
}

void *rt_node_data(rt_plan *p, int node) { return node >= 0 && node < p->n ? p->data[node] : NULL; }
float *rt_node_grad(rt_plan *p, int node) { return node >= 0 && node < p->n ? p->grad[node] : NULL; }

int rt_read(rt_plan *p, int node, void *host, size_t bytes) {
    const ir_node *nd = ir_graph_node(p->g, node);
    if (!nd || (size_t)ir_node_numel(nd) * 4 != bytes || !p->data[node]) return -1;
    if (p->step_rec) {
        p->step_bad = 1;
        return -1;
    }
    p->be->download(p->be, host, p->data[node], bytes);
    return 0;
}

int rt_write(rt_plan *p, int node, const void *host, size_t bytes) {
    const ir_node *nd = ir_graph_node(p->g, node);
    if (!nd || (size_t)ir_node_numel(nd) * 4 != bytes || !p->data[node]) return -1;
    p->be->upload(p->be, p->data[node], host, bytes);
    return 0;
}

const ir_graph *rt_plan_graph(const rt_plan *p) { return p->g; }
rt_backend *rt_plan_backend(const rt_plan *p) { return p->be; }
size_t rt_plan_arena_bytes(const rt_plan *p) { return p->arena_bytes; }
size_t rt_plan_param_bytes(const rt_plan *p) {
    return (size_t)(2 * p->pn[0] + 2 * p->pn[1] + p->pn[2]) * sizeof(float);
}

/* Attributes are baked into recordings: a change drops them (re-recorded on the second
 * pass after). Setting the value a node already has keeps them. */
void rt_plan_set_fattr(rt_plan *p, int node, int idx, float v) {
    if (node >= 0 && node < p->n && idx >= 0 && idx < IR_MAX_FATTR && p->fattr[node][idx] != v) {
        p->fattr[node][idx] = v;
        drop_graphs(p);
    }
}

void rt_plan_set_drop_path(rt_plan *p, float prob) {
    for (int i = 0; i < p->n; i++)
        if (p->ex[i].op == IR_OP_DROP_PATH && p->fattr[i][IR_F_P] != prob) {
            p->fattr[i][IR_F_P] = prob;
            drop_graphs(p);
        }
}

uint64_t rt_plan_step(const rt_plan *p) { return p->step; }
void rt_plan_set_step(rt_plan *p, uint64_t step) { p->step = step; }
