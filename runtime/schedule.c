/* schedule.c — a recorded pass issued on several lanes (see schedule.h).
 *
 * Units: a run of zeroing / copy ops and the node op that follows them (the plan zeroes a
 * gradient right before the backward that first adds to it) go to one lane together.
 * Dependences: every unit's device address ranges, read or written (rt_op_ranges), are
 * checked against the live records of earlier accesses: a read depends on the last
 * writes it overlaps, a write on every overlapping access since (write after read, write
 * after write). A write retires the records it covers; records are indexed by 1 MiB page
 * so a unit looks only at accesses near its own.
 * Lanes: a unit continues the lane whose last unit it depends on (a chain of candidate
 * ops stays on one lane); one that depends on no lane's last unit starts on the lane
 * idle longest, so independent chains (the candidates of a mixed edge, the edges of a
 * cell from its two inputs) run side by side. A dependence on another lane becomes one
 * wait on that lane's latest unit needed, skipped where this lane has already waited
 * for it or a later one. */
#include "schedule.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void rt_oplist_push(rt_oplist *l, const rt_op *o) {
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1024;
        rt_op *p = realloc(l->ops, (size_t)cap * sizeof *p);
        if (!p) {
            l->oom = 1;
            return;
        }
        l->ops = p;
        l->cap = cap;
    }
    l->ops[l->n++] = *o;
}

void rt_oplist_free(rt_oplist *l) {
    free(l->ops);
    memset(l, 0, sizeof *l);
}

static void issue_one(rt_backend *be, const rt_op *o, float *scratch) {
    switch (o->kind) {
    case RT_OP_FWD:
    case RT_OP_BWD: {
        rt_exec_node e = o->e;
        if (scratch) e.scratch = scratch;
        (o->kind == RT_OP_FWD ? be->forward : be->backward)(be, &e);
        break;
    }
    case RT_OP_ZERO: be->memset0(be, o->dst, o->n); break;
    case RT_OP_COPY: be->copy(be, o->dst, o->src, (int64_t)o->n); break;
    }
}

void rt_issue_in_order(rt_backend *be, const rt_oplist *l) {
    for (int i = 0; i < l->n; i++) issue_one(be, &l->ops[i], NULL);
}

/* ---- what an op reads and writes ---- */

typedef rt_range range;
#define MAX_RANGES RT_OP_MAX_RANGES

static int put(range *r, int k, const void *p, size_t bytes, int w) {
    if (p && bytes) r[k++] = (range){(uintptr_t)p, (uintptr_t)p + bytes, w};
    return k;
}

/* Every device range op o touches, conservatively: a node reads all its inputs (and the
 * deferred batch norms' coefficients, the dropout seeds), its forward writes its output
 * and saved state (and a batch norm's running statistics), its backward reads the
 * output gradient (and the scalar scaling it), the saved output and state, and writes
 * every input gradient it was handed (written or added to: both are writes here). A
 * mixed op's alpha (WMIXED: weight) gradient is the one row it writes. Scratch is the
 * lane's own. */
int rt_op_ranges(const rt_op *o, range *r) {
    int k = 0;
    if (o->kind == RT_OP_ZERO) return put(r, 0, o->dst, o->n, 1);
    if (o->kind == RT_OP_COPY) {
        k = put(r, 0, o->src, o->n * sizeof(float), 0);
        return put(r, k, o->dst, o->n * sizeof(float), 1);
    }
    const rt_exec_node *e = &o->e;
    const int bwd = o->kind == RT_OP_BWD;
    for (int i = 0; i < e->n_in && i < RT_MAX_IN; i++) {
        const rt_tref *t = &e->in[i];
        const int stats = !bwd && e->op == IR_OP_BATCHNORM && (i == 3 || i == 4);
        k = put(r, k, t->data, (size_t)t->numel * 4, stats);
        if (t->affine && t->ndim >= 2) k = put(r, k, t->affine, 3 * (size_t)t->shape[1] * sizeof(float), 0);
        if (!bwd || !t->grad) continue;
        if ((e->op == IR_OP_MIXED || e->op == IR_OP_WMIXED) && i == 0 && t->ndim == 2) {
            const int64_t O = t->shape[1];
            k = put(r, k, t->grad + e->iattr[IR_A_MIXED_ROW] * O, (size_t)O * sizeof(float), 1);
        } else {
            k = put(r, k, t->grad, (size_t)t->numel * sizeof(float), 1);
        }
    }
    const size_t aux = e->aux ? rt_aux_floats(e) * sizeof(float) : 0;
    if (!bwd) {
        k = put(r, k, e->seed_dev, sizeof *e->seed_dev, 0);
        k = put(r, k, e->out.data, (size_t)e->out.numel * 4, 1);
        k = put(r, k, e->aux, aux, 1);
        if ((e->stats_in || e->stats_out) && e->n_in > 0 && e->in[0].ndim >= 2) { /* shared batch statistics (batch norms, pools) */
            const size_t st = 2 * (size_t)e->in[0].shape[1] * sizeof(double);
            k = put(r, k, e->stats_in, e->stats_in ? st : 0, 0);
            k = put(r, k, e->stats_out, e->stats_out ? st : 0, 1);
        }
        for (int q = 0; q < e->ntakers; q++) { /* the batch norms whose forwards a pool runs */
            const rt_exec_node *t = e->takers[q];
            const size_t c = (size_t)t->in[0].shape[1] * sizeof(float);
            k = put(r, k, t->aux, rt_aux_floats(t) * sizeof(float), 1);
            for (int i = 1; i < t->n_in && i < 5; i++) k = put(r, k, t->in[i].data, c, i >= 3); /* gamma, beta; running */
        }
    } else {
        k = put(r, k, e->out.grad, (size_t)e->out.numel * sizeof(float), 0);
        k = put(r, k, e->out_grad_scale, sizeof(float), 0);
        for (int q = 0; q < e->nmore && q < RT_MORE_GRADS; q++) { /* summed batch norms' output gradients */
            k = put(r, k, e->more_grad[q], (size_t)e->out.numel * sizeof(float), 0);
            k = put(r, k, e->more_scale[q], sizeof(float), 0);
        }
        k = put(r, k, e->out.data, (size_t)e->out.numel * 4, 0);
        k = put(r, k, e->aux, aux, 0);
    }
    return k;
}

/* ---- live access records, indexed by page ---- */

#define PAGE_SHIFT 20

typedef struct rec {
    uintptr_t lo, hi;
    int unit, w, alive;
} rec;

typedef struct bucket {
    uintptr_t page; /* key + 1; 0: empty slot */
    int *ids, n, cap;
} bucket;

typedef struct tracker {
    rec *recs;
    int nrec, caprec;
    bucket *tab;
    size_t ntab, used;
    int oom;
} tracker;

static size_t hash_page(uintptr_t pg, size_t mask) { return (size_t)((pg * 0x9E3779B97F4A7C15ull) >> 17) & mask; }

static bucket *find(tracker *t, uintptr_t pg, int make) {
    if (make && 2 * (t->used + 1) > t->ntab) {
        size_t n = t->ntab ? 2 * t->ntab : 4096;
        bucket *nt = calloc(n, sizeof *nt);
        if (!nt) {
            t->oom = 1;
            return NULL;
        }
        for (size_t i = 0; i < t->ntab; i++) {
            if (!t->tab[i].page) continue;
            size_t h = hash_page(t->tab[i].page - 1, n - 1);
            while (nt[h].page) h = (h + 1) & (n - 1);
            nt[h] = t->tab[i];
        }
        free(t->tab);
        t->tab = nt;
        t->ntab = n;
    }
    if (!t->ntab) return NULL;
    size_t h = hash_page(pg, t->ntab - 1);
    while (t->tab[h].page) {
        if (t->tab[h].page == pg + 1) return &t->tab[h];
        h = (h + 1) & (t->ntab - 1);
    }
    if (!make) return NULL;
    t->tab[h].page = pg + 1;
    t->used++;
    return &t->tab[h];
}

static void add_rec(tracker *t, const range *r, int unit) {
    if (t->nrec == t->caprec) {
        int cap = t->caprec ? 2 * t->caprec : 4096;
        rec *nr = realloc(t->recs, (size_t)cap * sizeof *nr);
        if (!nr) {
            t->oom = 1;
            return;
        }
        t->recs = nr;
        t->caprec = cap;
    }
    const int id = t->nrec++;
    t->recs[id] = (rec){r->lo, r->hi, unit, r->w, 1};
    for (uintptr_t pg = r->lo >> PAGE_SHIFT; pg <= (r->hi - 1) >> PAGE_SHIFT; pg++) {
        bucket *b = find(t, pg, 1);
        if (!b) return;
        if (b->n == b->cap) {
            int cap = b->cap ? 2 * b->cap : 8;
            int *ni = realloc(b->ids, (size_t)cap * sizeof *ni);
            if (!ni) {
                t->oom = 1;
                return;
            }
            b->ids = ni;
            b->cap = cap;
        }
        b->ids[b->n++] = id;
    }
}

/* Calls back for every live record overlapping r (each bucket compacted of dead ones). */
#define FOR_OVERLAPS(t, r, body)                                                                 \
    for (uintptr_t pg_ = (r)->lo >> PAGE_SHIFT; pg_ <= ((r)->hi - 1) >> PAGE_SHIFT; pg_++) {     \
        bucket *b_ = find((t), pg_, 0);                                                          \
        if (!b_) continue;                                                                       \
        int m_ = 0;                                                                              \
        for (int j_ = 0; j_ < b_->n; j_++) {                                                     \
            rec *x = &(t)->recs[b_->ids[j_]];                                                    \
            if (!x->alive) continue;                                                             \
            b_->ids[m_++] = b_->ids[j_];                                                         \
            if (x->lo < (r)->hi && (r)->lo < x->hi) { body; }                                    \
        }                                                                                        \
        b_->n = m_;                                                                              \
    }

static void tracker_free(tracker *t) {
    for (size_t i = 0; i < t->ntab; i++) free(t->tab[i].ids);
    free(t->tab);
    free(t->recs);
}

/* ---- lanes ---- */

/* A growable int array (the dependence lists). */
typedef struct ivec {
    int *v;
    size_t n, cap;
} ivec;
static int ivec_push(ivec *a, int x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4096;
        int *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* The node op closing unit u (its last op), or NULL where the unit is only zeroing/copies. */
static const rt_op *unit_node(const rt_oplist *l, const int *ustart, int u) {
    const rt_op *o = &l->ops[ustart[u + 1] - 1];
    return o->kind == RT_OP_FWD || o->kind == RT_OP_BWD ? o : NULL;
}

int rt_issue_lanes(rt_backend *be, const rt_oplist *l, int nlanes, float *scratch, size_t scratch_stride,
                   rt_lane_stats *st) {
    int *order_out = st ? st->issue_order : NULL;
    if (st) memset(st, 0, sizeof *st);
    if (st) st->issue_order = order_out;
    const int n = l->n;
    if (nlanes < 1 || !be->set_lane || !be->lane_signal || !be->lane_wait || l->oom) return -1;
    const int batching = be->batches && be->run_batch && !getenv("DARTSC_NO_BATCH");
    /* units: [ustart[u], ustart[u + 1]) */
    int *ustart = malloc(((size_t)n + 1) * sizeof *ustart);
    int *lane = malloc(((size_t)n + 1) * sizeof *lane), *stamp = malloc(((size_t)n + 1) * sizeof *stamp);
    int *depth = calloc((size_t)n + 1, sizeof *depth), *point = malloc(((size_t)n + 1) * sizeof *point);
    int *deps = malloc(((size_t)n + 1) * sizeof *deps), *dstart = malloc(((size_t)n + 2) * sizeof *dstart);
    int *seq = malloc(((size_t)n + 1) * sizeof *seq), *pos = malloc(((size_t)n + 1) * sizeof *pos);
    int *lead = malloc(((size_t)n + 1) * sizeof *lead), *gnext = malloc(((size_t)n + 1) * sizeof *gnext);
    int *gsize = malloc(((size_t)n + 1) * sizeof *gsize), *cnt = NULL, *leaders = NULL;
    int *waits = malloc(((size_t)n * nlanes + 1) * sizeof *waits), *nwait = calloc((size_t)n + 1, sizeof *nwait);
    int *tail = malloc((size_t)nlanes * sizeof *tail), *synced = malloc((size_t)nlanes * nlanes * sizeof *synced);
    int *latest = malloc((size_t)nlanes * sizeof *latest);
    const rt_exec_node **members = NULL;
    rt_exec_node *copies = NULL; /* a batch's node ops, with the lane's scratch */
    ivec dl = {0};
    tracker t = {0};
    int rc = -1, nu = 0, maxdepth = 0;
    if (!ustart || !lane || !stamp || !depth || !point || !deps || !dstart || !seq || !pos || !lead || !gnext ||
        !gsize || !waits || !nwait || !tail || !synced || !latest)
        goto out;
    for (int i = 0; i < n;) {
        ustart[nu++] = i;
        while (i < n && (l->ops[i].kind == RT_OP_ZERO || l->ops[i].kind == RT_OP_COPY)) i++;
        if (i < n) i++; /* the node op closing the unit */
    }
    ustart[nu] = n;
    for (int u = 0; u < nu; u++) stamp[u] = point[u] = -1;
    /* 1. every unit's dependences on earlier units (in list order: read after write, write
     * after read, write after write) and its depth (1 + the deepest it depends on) */
    range r[MAX_RANGES];
    for (int u = 0; u < nu; u++) {
        dstart[u] = (int)dl.n;
        for (int i = ustart[u]; i < ustart[u + 1]; i++) {
            const int nr = rt_op_ranges(&l->ops[i], r);
            for (int a = 0; a < nr; a++)
                FOR_OVERLAPS(&t, &r[a], {
                    if ((r[a].w || x->w) && x->unit != u && stamp[x->unit] != u) {
                        stamp[x->unit] = u;
                        if (ivec_push(&dl, x->unit)) t.oom = 1;
                    }
                });
            for (int a = 0; a < nr; a++) /* a write retires what it covers */
                if (r[a].w) FOR_OVERLAPS(&t, &r[a], { if (x->lo >= r[a].lo && x->hi <= r[a].hi) x->alive = 0; });
            for (int a = 0; a < nr; a++) add_rec(&t, &r[a], u);
        }
        if (t.oom) goto out;
        depth[u] = 1;
        for (size_t j = (size_t)dstart[u]; j < dl.n; j++)
            if (depth[dl.v[j]] + 1 > depth[u]) depth[u] = depth[dl.v[j]] + 1;
        if (depth[u] > maxdepth) maxdepth = depth[u];
    }
    dstart[nu] = (int)dl.n;
    /* 2. the issue order (seq) and the batches: without batching, list order, each unit
     * alone. With it, units by depth (list order within a depth: every dependence points to
     * a smaller depth, so this order keeps each conflicting pair's order), and the node ops
     * of one depth that the backend can run as one (be->batches with the batch's first)
     * grouped behind that first unit, at most RT_MAX_BATCH each. Units of one depth
     * depend on none of each other, directly or not, so a batch needs no order inside. */
    for (int u = 0; u < nu; u++) lead[u] = u, gnext[u] = -1, gsize[u] = 1;
    int ns = 0;
    if (!batching) {
        for (int u = 0; u < nu; u++) seq[ns++] = u;
    } else {
        cnt = calloc((size_t)maxdepth + 2, sizeof *cnt);
        leaders = malloc(((size_t)nu + 1) * sizeof *leaders);
        if (!cnt || !leaders) goto out;
        for (int u = 0; u < nu; u++) cnt[depth[u] + 1]++;
        for (int dd = 1; dd <= maxdepth + 1; dd++) cnt[dd] += cnt[dd - 1];
        int *by = pos; /* units sorted by depth, stable */
        for (int u = 0; u < nu; u++) by[cnt[depth[u]]++] = u;
        int *gtail = stamp; /* last member of each batch (stamp is free now) */
        for (int a = 0; a < nu;) {
            int b = a;
            while (b < nu && depth[by[b]] == depth[by[a]]) b++;
            int nl = 0; /* the batches opened at this depth */
            for (int k = a; k < b; k++) {
                const int u = by[k];
                const rt_op *o = unit_node(l, ustart, u);
                int g = -1;
                for (int j = 0; o && j < nl && g < 0; j++) {
                    const rt_op *q = unit_node(l, ustart, leaders[j]);
                    if (q && q->kind == o->kind && gsize[leaders[j]] < RT_MAX_BATCH &&
                        be->batches(be, o->kind == RT_OP_BWD, &q->e, &o->e))
                        g = leaders[j];
                }
                if (g < 0) {
                    leaders[nl++] = u;
                    gtail[u] = u;
                    seq[ns++] = u;
                    continue;
                }
                lead[u] = g;
                gnext[gtail[g]] = u;
                gtail[g] = u;
                gsize[g]++;
            }
            a = b;
        }
        members = malloc(RT_MAX_BATCH * sizeof *members);
        copies = malloc(RT_MAX_BATCH * sizeof *copies);
        if (!members || !copies) goto out;
    }
    for (int i = 0; i < ns; i++) pos[seq[i]] = i; /* pos: a batch's place in seq (by its first unit) */
    for (int u = 0; u < nu; u++) pos[u] = pos[lead[u]];
    /* 3. lanes, over seq: a batch depends on what any of its units depends on */
    for (int k = 0; k < nlanes; k++) tail[k] = -1;
    for (int k = 0; k < nlanes * nlanes; k++) synced[k] = -1;
    for (int i = 0; i < ns; i++) stamp[i] = -1;
    int npoints = 0, used = 0, nbatch = 0, inbatch = 0;
    for (int i = 0; i < ns; i++) {
        const int g = seq[i];
        int nd = 0;
        for (int u = g; u >= 0; u = gnext[u])
            for (int j = dstart[u]; j < dstart[u + 1]; j++) {
                const int d = pos[dl.v[j]];
                if (d == i || stamp[d] == i) continue;
                stamp[d] = i;
                deps[nd++] = d;
            }
        if (gsize[g] > 1) nbatch++, inbatch += gsize[g];
        /* the lane: continue a chain, else the lane idle longest */
        int L = -1;
        for (int j = 0; j < nd; j++) {
            const int d = deps[j];
            if (tail[lane[d]] == d && (L < 0 || d > tail[L])) L = lane[d];
        }
        if (L < 0) {
            L = 0;
            for (int k = 1; k < nlanes; k++)
                if (tail[k] < tail[L]) L = k;
        }
        lane[i] = L;
        /* one wait per other lane: its latest entry this one needs, unless already waited for */
        for (int k = 0; k < nlanes; k++) latest[k] = -1;
        for (int j = 0; j < nd; j++)
            if (deps[j] > latest[lane[deps[j]]]) latest[lane[deps[j]]] = deps[j];
        for (int k = 0; k < nlanes; k++) {
            if (k == L || latest[k] < 0 || latest[k] <= synced[L * nlanes + k]) continue;
            synced[L * nlanes + k] = latest[k];
            if (point[latest[k]] < 0) point[latest[k]] = npoints++;
            waits[(size_t)i * nlanes + nwait[i]++] = latest[k];
        }
        if (tail[L] < 0) used++;
        tail[L] = i;
    }
    /* 4. issue: each batch's zeroing and copies, then its node ops in one call */
    int cur = -1, at = 0;
    for (int i = 0; i < ns; i++) {
        const int g = seq[i];
        if (lane[i] != cur) be->set_lane(be, cur = lane[i]);
        for (int w = 0; w < nwait[i]; w++) be->lane_wait(be, point[waits[(size_t)i * nlanes + w]]);
        float *sc = scratch + (size_t)cur * scratch_stride;
        if (gsize[g] == 1) {
            for (int k = ustart[g]; k < ustart[g + 1]; k++) {
                issue_one(be, &l->ops[k], sc);
                if (order_out) order_out[at++] = k;
            }
        } else {
            int m = 0;
            for (int u = g; u >= 0; u = gnext[u])
                for (int k = ustart[u]; k < ustart[u + 1] - 1; k++) {
                    issue_one(be, &l->ops[k], sc);
                    if (order_out) order_out[at++] = k;
                }
            for (int u = g; u >= 0; u = gnext[u]) {
                const int k = ustart[u + 1] - 1;
                copies[m] = l->ops[k].e;
                if (sc) copies[m].scratch = sc;
                members[m] = &copies[m];
                m++;
                if (order_out) order_out[at++] = k;
            }
            be->run_batch(be, l->ops[ustart[g + 1] - 1].kind == RT_OP_BWD, members, m);
        }
        if (point[i] >= 0) be->lane_signal(be, point[i]);
    }
    be->set_lane(be, 0);
    if (st) {
        st->ops = n;
        st->lanes_used = used;
        st->longest_chain = maxdepth;
        st->batches = nbatch;
        st->batched_ops = inbatch;
        st->issued = ns;
        for (int i = 0; i < ns; i++) st->waits += nwait[i];
    }
    rc = 0;
out:
    tracker_free(&t);
    free(dl.v);
    free(ustart);
    free(lane);
    free(stamp);
    free(depth);
    free(point);
    free(deps);
    free(dstart);
    free(seq);
    free(pos);
    free(lead);
    free(gnext);
    free(gsize);
    free(cnt);
    free(leaders);
    free(members);
    free(copies);
    free(waits);
    free(nwait);
    free(tail);
    free(synced);
    free(latest);
    return rc;
}
