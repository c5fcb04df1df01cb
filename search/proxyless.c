/* proxyless.c — ProxylessNAS over the DARTS loop: path sampling, the step plans that share
 * the loop supernet's weights, the two-path alpha estimator with its rescaling, and the
 * expected latency. See proxyless.h. */
#include "proxyless.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dist.h"
#include "runtime/runtime.h"
#include "train/common.h"

struct sr_px {
    const ir_space *sp;
    rt_plan *m;          /* the loop's plan: the shared weights, buffers and alpha */
    const ir_net *mnet;
    rt_backend *be;
    rt_plan_opts popts;
    int batch, E[2], O[2];
    int64_t aoff[2];     /* offsets of alphas_normal, alphas_reduce in the master's arch group */
    int64_t na;
    double *lat[2];      /* latency coefficients (NULL: lambda 0) */
    float weight;        /* lambda */
    int *cols[2];        /* per edge: the sampled candidates (2 per edge; the weight step uses 1) */
    int n_inv[2];        /* candidates per edge in the alpha step: min(2, n_ops) */
    int *active[2];      /* per edge: which of the involved is the active path */
    float *ah, *aold, *gh; /* host: alpha, alpha before the step, its gradient */
    double *dg;
    uint64_t seed;
    size_t arena_w, arena_a;
    int n_last;          /* candidates per edge of the last sample */
    rt_plan *score;      /* the most probable path's plan while scoring */
    ir_net score_net;
    /* master parameters by name, sorted (the step plans find theirs in it) */
    int n_named;
    int *named;
};

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A uniform number in [0, 1) from a stream position. */
static double uniform(uint64_t *s) {
    *s = mix(*s, 0x5851f42d4c957f2dull);
    return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

static void softmax(const float *a, int n, double *p) {
    double m = a[0], s = 0;
    for (int i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
    for (int i = 0; i < n; i++) s += p[i] = exp((double)a[i] - m);
    for (int i = 0; i < n; i++) p[i] /= s;
}

/* One index from the distribution p (n entries) without the ones in excl (nx). */
static int draw(const double *p, int n, const int *excl, int nx, uint64_t *s) {
    double tot = 0;
    for (int i = 0; i < n; i++) {
        int out = 0;
        for (int k = 0; k < nx; k++) out |= excl[k] == i;
        if (!out) tot += p[i];
    }
    double u = uniform(s) * tot, c = 0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        int out = 0;
        for (int k = 0; k < nx; k++) out |= excl[k] == i;
        if (out) continue;
        last = i;
        c += p[i];
        if (u < c) return i;
    }
    return last; /* rounding at the top end */
}

/* ---- latency ------------------------------------------------------------------------------- */

int sr_px_latency_coeffs(const ir_space *sp, const sr_options *o, double *lat[2], char *err, size_t errlen) {
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    for (int t = 0; t < 2; t++)
        memset(lat[t], 0, sizeof *lat[t] * (size_t)ir_cell_num_edges(cells[t]) * (size_t)cells[t]->n_ops);
    if (!o->op_latency) return sr_fail(err, errlen, "proxyless: no latency table was given (latency_weight %g)",
                                       (double)sp->search.latency_weight);
    int C = sp->C, H = sp->in_h, W = sp->in_w, r = 0;
    for (int i = 0; i < sp->layers; i++) {
        int red = r < sp->n_reduce && sp->reduce_at[r] == i;
        if (red) {
            C *= sp->growth;
            r++;
        }
        const ir_cell *c = cells[red];
        for (int e = 0; e < ir_cell_num_edges(c); e++) {
            int node, src;
            ir_cell_edge(c, e, &node, &src);
            int stride = red && src < c->n_inputs ? 2 : 1;
            /* the edge's input: the cell's resolution, or (reduction, from a node) the halved one */
            int h = red && stride == 1 ? (H + 1) / 2 : H, w = red && stride == 1 ? (W + 1) / 2 : W;
            for (int op = 0; op < c->n_ops; op++) {
                ir_cand_kind k = c->ops[op].kind;
                if (k == IR_CAND_NONE || (k == IR_CAND_SKIP && stride == 1)) continue;
                double ms = 0;
                if (o->op_latency(o->op_latency_ctx, sp, &c->ops[op], C, h, w, stride, &ms, err, errlen)) return -1;
                if (!(ms >= 0) || !isfinite(ms))
                    return sr_fail(err, errlen, "proxyless: the latency of %s at %dx%dx%d stride %d is %g ms", c->ops[op].name,
                                   C, h, w, stride, ms);
                lat[red][(size_t)e * c->n_ops + op] += ms;
            }
        }
        if (red) {
            H = (H + 1) / 2;
            W = (W + 1) / 2;
        }
    }
    return 0;
}

double sr_px_expected_latency(const ir_cell *c, const float *alpha, const double *lat, float *grad, float weight) {
    const int E = ir_cell_num_edges(c), O = c->n_ops;
    double total = 0, p[IR_MAX_CANDS];
    for (int e = 0; e < E; e++) {
        const double *l = lat + (size_t)e * O;
        softmax(alpha + (size_t)e * O, O, p);
        double el = 0;
        for (int o = 0; o < O; o++) el += p[o] * l[o];
        total += el;
        /* d/dalpha_o sum_k p_k l_k = p_o (l_o - E_e) */
        for (int o = 0; grad && o < O; o++) grad[(size_t)e * O + o] += (float)(weight * p[o] * (l[o] - el));
    }
    return total;
}

/* ---- the estimator ------------------------------------------------------------------------- */

void sr_px_estimator(int n, const int *idx, const float *alpha, const double *dg, float *grad) {
    float a[IR_MAX_CANDS] = {0};
    double p[IR_MAX_CANDS];
    for (int i = 0; i < n; i++) a[i] = alpha[idx[i]];
    softmax(a, n, p);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += dg[j] * p[j] * ((i == j) - p[i]);
        grad[idx[i]] += (float)s;
    }
}

static double lse(int n, const int *idx, const float *a) {
    double m = a[idx[0]], s = 0;
    for (int i = 1; i < n; i++) m = a[idx[i]] > m ? a[idx[i]] : m;
    for (int i = 0; i < n; i++) s += exp((double)a[idx[i]] - m);
    return m + log(s);
}

void sr_px_rescale(int n, const int *idx, const float *old_alpha, float *new_alpha) {
    double off = lse(n, idx, new_alpha) - lse(n, idx, old_alpha);
    for (int i = 0; i < n; i++) new_alpha[idx[i]] = (float)((double)new_alpha[idx[i]] - off);
}

/* ---- step plans ------------------------------------------------------------------------------ */

int sr_px_build_step_net(const ir_space *sp, int batch, const int *const cols[2], int n_cols, ir_net *net) {
    ir_supernet_opts so;
    memset(&so, 0, sizeof so);
    so.cols[0] = cols[0];
    so.cols[1] = cols[1];
    so.n_cols[0] = n_cols < sp->normal.n_ops ? n_cols : sp->normal.n_ops;
    so.n_cols[1] = n_cols < sp->reduce.n_ops ? n_cols : sp->reduce.n_ops;
    so.gates = 1;
    so.no_share = sr_no_share();
    return ir_space_build_supernet_ex(sp, batch, &so, net);
}

static const ir_graph *g_sort; /* qsort's context (one search at a time per process) */
static int by_name(const void *a, const void *b) {
    return strcmp(ir_graph_node(g_sort, *(const int *)a)->name, ir_graph_node(g_sort, *(const int *)b)->name);
}

static int master_param(const sr_px *px, const char *name) {
    const ir_graph *g = px->mnet->graph;
    int lo = 0, hi = px->n_named - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(ir_graph_node(g, px->named[mid])->name, name);
        if (!c) return px->named[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Copies the shared weights and buffers between the master and a step plan: to_step 1 the
 * master's into the step plan; 0 the step plan's weight gradients and buffers into the
 * master (its weight gradient zeroed first). */
static int share(sr_px *px, rt_plan *s, int to_step, char *err, size_t errlen) {
    const ir_graph *sg = rt_plan_graph(s);
    if (!to_step) {
        rt_group gw = rt_plan_group(px->m, IR_ROLE_WEIGHT);
        px->be->memset0(px->be, gw.grad, (size_t)gw.n * sizeof(float));
    }
    for (int i = 0; i < ir_graph_num_nodes(sg); i++) {
        const ir_node *n = ir_graph_node(sg, i);
        if (n->op != IR_OP_PARAM || (n->role != IR_ROLE_WEIGHT && n->role != IR_ROLE_BUFFER)) continue;
        int mi = master_param(px, n->name);
        if (mi < 0 || ir_node_numel(ir_graph_node(px->mnet->graph, mi)) != ir_node_numel(n))
            return sr_fail(err, errlen, "proxyless: the step's parameter %s is not the supernet's", n->name);
        int64_t k = ir_node_numel(n);
        float *sd = rt_node_data(s, i), *md = rt_node_data(px->m, mi);
        if (to_step) px->be->copy(px->be, sd, md, k);
        else if (n->role == IR_ROLE_BUFFER) px->be->copy(px->be, md, sd, k);
        else px->be->copy(px->be, rt_node_grad(px->m, mi), rt_node_grad(s, i), k);
    }
    return 0;
}

static void download_alpha(sr_px *px) {
    rt_group ga = rt_plan_group(px->m, IR_ROLE_ARCH);
    px->be->download(px->be, px->ah, ga.data, (size_t)px->na * sizeof(float));
}

sr_px *sr_px_new(const ir_space *sp, const sr_options *o, rt_plan *master, const ir_net *mnet, int batch,
                 const void *bn_sync, char *err, size_t errlen) {
    sr_px *px = calloc(1, sizeof *px);
    if (!px) {
        sr_fail(err, errlen, "out of memory");
        return NULL;
    }
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    px->sp = sp;
    px->m = master;
    px->mnet = mnet;
    px->be = rt_plan_backend(master);
    px->batch = batch;
    px->seed = mix(sp->search.seed, 0x70726f78ull); /* "prox": its own stream */
    px->weight = sp->search.latency_weight;
    px->popts = (rt_plan_opts){.seed = sp->search.seed, .grads = RT_GRAD_W | RT_GRAD_ARCH, .bn_sync = bn_sync};
    rt_group ga = rt_plan_group(master, IR_ROLE_ARCH);
    px->na = ga.n;
    int ok = 1;
    for (int t = 0; t < 2; t++) {
        px->E[t] = ir_cell_num_edges(cells[t]);
        px->O[t] = cells[t]->n_ops;
        px->n_inv[t] = px->O[t] < 2 ? px->O[t] : 2;
        px->aoff[t] = (float *)rt_node_data(master, mnet->alpha[t]) - ga.data;
        ok &= (px->cols[t] = malloc(sizeof(int) * 2 * (size_t)px->E[t])) != NULL;
        ok &= (px->active[t] = malloc(sizeof(int) * (size_t)px->E[t])) != NULL;
        if (px->weight > 0) ok &= (px->lat[t] = malloc(sizeof(double) * (size_t)px->E[t] * (size_t)px->O[t])) != NULL;
    }
    px->ah = malloc(sizeof(float) * (size_t)px->na);
    px->aold = malloc(sizeof(float) * (size_t)px->na);
    px->gh = malloc(sizeof(float) * (size_t)px->na);
    px->dg = malloc(sizeof(double) * (size_t)px->na);
    const ir_graph *g = mnet->graph;
    px->named = malloc(sizeof(int) * (size_t)ir_graph_num_nodes(g));
    if (!ok || !px->ah || !px->aold || !px->gh || !px->dg || !px->named) {
        sr_px_free(px);
        sr_fail(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < ir_graph_num_nodes(g); i++)
        if (ir_graph_node(g, i)->op == IR_OP_PARAM) px->named[px->n_named++] = i;
    g_sort = g;
    qsort(px->named, (size_t)px->n_named, sizeof *px->named, by_name);
    if (px->weight > 0) {
        /* data-parallel: rank 0 measures (or reads the cache), every rank takes its table */
        int rc = sr_dist_writer() ? sr_px_latency_coeffs(sp, o, px->lat, err, errlen) : 0;
        if (sr_dist_root_rc(rc, err, errlen)) {
            sr_px_free(px);
            return NULL;
        }
        for (int t = 0; t < 2; t++) {
            if (!sr_dist_writer()) memset(px->lat[t], 0, sizeof(double) * (size_t)px->E[t] * (size_t)px->O[t]);
            rt_dist_allreduce_f64(px->lat[t], (int64_t)px->E[t] * px->O[t]);
        }
    }
    return px;
}

void sr_px_free(sr_px *px) {
    if (!px) return;
    sr_px_score_end(px);
    for (int t = 0; t < 2; t++) {
        free(px->cols[t]);
        free(px->active[t]);
        free(px->lat[t]);
    }
    free(px->ah);
    free(px->aold);
    free(px->gh);
    free(px->dg);
    free(px->named);
    free(px);
}

/* Samples n_cols (1 or 2) candidates per edge for global step g (the same on every rank). */
static void sample(sr_px *px, int64_t g, int which, int n_cols) {
    uint64_t s = mix(px->seed, 2 * (uint64_t)g + (uint64_t)which);
    px->n_last = n_cols;
    double p[IR_MAX_CANDS];
    for (int t = 0; t < 2; t++) {
        int n = n_cols < px->O[t] ? n_cols : px->O[t];
        for (int e = 0; e < px->E[t]; e++) {
            const float *a = px->ah + px->aoff[t] + (int64_t)e * px->O[t];
            softmax(a, px->O[t], p);
            int *c = px->cols[t] + (size_t)e * n;
            for (int k = 0; k < n; k++) c[k] = draw(p, px->O[t], c, k, &s);
            if (n == 1) {
                px->active[t][e] = 0;
                continue;
            }
            /* the active one of the pair: from the softmax over the pair's logits */
            double pa = 1.0 / (1.0 + exp((double)a[c[1]] - (double)a[c[0]]));
            px->active[t][e] = uniform(&s) < pa ? 0 : 1;
        }
    }
}

/* Builds and plans the step network of the current sample, the gates one-hot on the active
 * paths, the master's weights in it. */
static rt_plan *step_plan(sr_px *px, int n_cols, unsigned grads, ir_net *net, char *err, size_t errlen) {
    const int *cols[2] = {px->cols[0], px->cols[1]};
    if (sr_px_build_step_net(px->sp, px->batch, cols, n_cols, net)) {
        sr_fail(err, errlen, "proxyless: %s", net->error);
        return NULL;
    }
    rt_plan_opts po = px->popts;
    po.grads = grads; /* the weight step needs no gate gradient, the alpha step no weight's, the score none */
    rt_plan *s = rt_plan_new(net->graph, px->be, &po, err, errlen);
    if (!s) {
        ir_net_free(net);
        return NULL;
    }
    rt_group ga = rt_plan_group(s, IR_ROLE_ARCH);
    float *gates = px->gh; /* scratch: the step's arch group is at most the master's */
    memset(gates, 0, sizeof *gates * (size_t)ga.n);
    for (int t = 0; t < 2; t++) {
        int n = n_cols < px->O[t] ? n_cols : px->O[t];
        float *gt = gates + ((float *)rt_node_data(s, net->alpha[t]) - ga.data);
        for (int e = 0; e < px->E[t]; e++) gt[(size_t)e * n + px->active[t][e]] = 1.f;
    }
    px->be->upload(px->be, ga.data, gates, sizeof *gates * (size_t)ga.n);
    if (share(px, s, 1, err, errlen)) {
        rt_plan_free(s);
        ir_net_free(net);
        return NULL;
    }
    return s;
}

static void set_batch(rt_plan *s, const ir_net *net, const float *x, const int32_t *y) {
    const ir_node *xi = ir_graph_node(net->graph, net->images);
    rt_set_input(s, net->images, x, (size_t)ir_node_numel(xi) * sizeof(float));
    rt_set_input(s, net->labels, y, (size_t)xi->shape[0] * sizeof(int32_t));
}

/* Samples step g's paths (which: 0 the weight step, 1 the alpha step), plans them and runs
 * the pass for grads on the batch (x, y); the plan, or NULL with a message. */
static rt_plan *run_step(sr_px *px, int which, unsigned grads, int64_t g, const float *x, const int32_t *y, ir_net *net,
                         float *loss, double *correct, size_t *arena, char *err, size_t errlen) {
    download_alpha(px);
    if (which) memcpy(px->aold, px->ah, sizeof *px->ah * (size_t)px->na);
    sample(px, g, which, which + 1);
    rt_plan *s = step_plan(px, which + 1, grads, net, err, errlen);
    if (!s) return NULL;
    *arena = rt_plan_arena_bytes(s);
    set_batch(s, net, x, y);
    if (rt_pass(s, 1, grads)) {
        rt_plan_free(s);
        ir_net_free(net);
        sr_fail(err, errlen, "proxyless: the %s step's pass failed", which ? "alpha" : "weight");
        return NULL;
    }
    *loss = rt_loss(s);
    *correct = rt_last_correct(s);
    return s;
}

int sr_px_weight_pass(sr_px *px, const float *x, const int32_t *y, int64_t g, float *loss, double *correct, char *err,
                      size_t errlen) {
    ir_net net;
    rt_plan *s = run_step(px, 0, RT_GRAD_W, g, x, y, &net, loss, correct, &px->arena_w, err, errlen);
    if (!s) return -1;
    int rc = share(px, s, 0, err, errlen);
    rt_plan_free(s);
    ir_net_free(&net);
    return rc;
}

int sr_px_alpha_grad(sr_px *px, const float *x, const int32_t *y, int64_t g, float *loss, double *correct, char *err,
                     size_t errlen) {
    ir_net net;
    rt_plan *s = run_step(px, 1, RT_GRAD_ARCH, g, x, y, &net, loss, correct, &px->arena_a, err, errlen);
    if (!s) return -1;
    sr_dist_grads(s, RT_GRAD_ARCH); /* data-parallel: dL/dg over the whole batch */
    rt_group sa = rt_plan_group(s, IR_ROLE_ARCH);
    float *sg = malloc(sizeof *sg * (size_t)sa.n);
    if (!sg) {
        rt_plan_free(s);
        ir_net_free(&net);
        return sr_fail(err, errlen, "out of memory");
    }
    px->be->download(px->be, sg, sa.grad, sizeof *sg * (size_t)sa.n);
    memset(px->gh, 0, sizeof *px->gh * (size_t)px->na);
    const ir_cell *cells[2] = {&px->sp->normal, &px->sp->reduce};
    for (int t = 0; t < 2; t++) {
        const int n = px->n_inv[t], O = px->O[t];
        const float *st = sg + ((float *)rt_node_data(s, net.alpha[t]) - sa.data);
        for (int e = 0; e < px->E[t]; e++) {
            double dg[2];
            for (int k = 0; k < n; k++) dg[k] = st[(size_t)e * n + k]; /* a 'none' column's gate: no reader, 0 */
            sr_px_estimator(n, px->cols[t] + (size_t)e * n, px->ah + px->aoff[t] + (int64_t)e * O, dg,
                            px->gh + px->aoff[t] + (int64_t)e * O);
        }
        if (px->lat[t])
            sr_px_expected_latency(cells[t], px->ah + px->aoff[t], px->lat[t], px->gh + px->aoff[t], px->weight);
    }
    free(sg);
    rt_plan_free(s);
    ir_net_free(&net);
    rt_group ga = rt_plan_group(px->m, IR_ROLE_ARCH);
    px->be->upload(px->be, ga.grad, px->gh, sizeof *px->gh * (size_t)px->na);
    return 0;
}

void sr_px_after_alpha_step(sr_px *px) {
    download_alpha(px);
    for (int t = 0; t < 2; t++)
        for (int e = 0; e < px->E[t]; e++) {
            int64_t row = px->aoff[t] + (int64_t)e * px->O[t];
            sr_px_rescale(px->n_inv[t], px->cols[t] + (size_t)e * px->n_inv[t], px->aold + row, px->ah + row);
        }
    rt_group ga = rt_plan_group(px->m, IR_ROLE_ARCH);
    px->be->upload(px->be, ga.data, px->ah, sizeof *px->ah * (size_t)px->na);
}

double sr_px_current_latency(sr_px *px) {
    if (!px->lat[0]) return NAN;
    download_alpha(px);
    const ir_cell *cells[2] = {&px->sp->normal, &px->sp->reduce};
    double l = 0;
    for (int t = 0; t < 2; t++) l += sr_px_expected_latency(cells[t], px->ah + px->aoff[t], px->lat[t], NULL, 0);
    return l;
}

void sr_px_arena_bytes(const sr_px *px, size_t *weight_step, size_t *alpha_step) {
    *weight_step = px->arena_w;
    *alpha_step = px->arena_a;
}

int sr_px_score_begin(sr_px *px) {
    download_alpha(px);
    for (int t = 0; t < 2; t++)
        for (int e = 0; e < px->E[t]; e++) {
            const float *a = px->ah + px->aoff[t] + (int64_t)e * px->O[t];
            int best = 0;
            for (int o = 1; o < px->O[t]; o++) best = a[o] > a[best] ? o : best;
            px->cols[t][e] = best;
            px->active[t][e] = 0;
        }
    px->n_last = 1;
    char err[256];
    px->score = step_plan(px, 1, 0, &px->score_net, err, sizeof err);
    return px->score ? 0 : -1;
}

void sr_px_score_batch(sr_px *px, const float *x, const int32_t *y, double *loss, double *correct) {
    set_batch(px->score, &px->score_net, x, y);
    *loss = rt_forward(px->score, 1);
    *correct = rt_last_correct(px->score);
}

void sr_px_score_end(sr_px *px) {
    if (!px->score) return;
    rt_plan_free(px->score);
    ir_net_free(&px->score_net);
    px->score = NULL;
}

void sr_px_sampled(const sr_px *px, int t, int *n, const int **cols, const int **active) {
    *n = px->n_last < px->O[t] ? px->n_last : px->O[t];
    *cols = px->cols[t];
    *active = px->active[t];
}
