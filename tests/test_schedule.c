/* test_schedule.c — a recorded pass issued on several lanes (runtime/schedule.c), checked
 * on the CPU where CI runs it:
 *  - every pair of ops that touch overlapping memory, one of them writing, is ordered by
 *    the lanes' happens-before relation (issue order within a lane, plus the waits), for
 *    the passes of a small DARTS supernet (weights, alphas, both; and forward only);
 *  - executing the ops in random orders that respect that relation gives the loss and
 *    every weight and alpha gradient of the in-order issue bit for bit (the CPU backend
 *    fills the same node contract as the CUDA one, whose concurrent replays are tested
 *    against eager passes in test_cuda_backend on a GPU);
 *  - the lanes are used: independent chains land on different lanes and the longest
 *    dependence chain is well below the op count. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/schedule.h"
#include "testutil.h"

/* ---- a backend that only logs what rt_issue_lanes asks of it ---- */
typedef struct fake {
    rt_backend be;
    int n, cur, nlanes;
    int *lane_last;   /* per lane, the last op issued there */
    int *point_op;    /* per point, the op before it on its lane */
    int npoints;
    int **pending;    /* per lane, ops its next op waits for */
    int *npending;
    int **pred;       /* per op, the ops it directly follows */
    int *npred;
    int issued;
    int *batch_of;    /* per issued op, the batch it came in (run_batch calls), -1 alone */
    int nbatch;
} fake;

static void f_set_lane(rt_backend *be, int k) { ((fake *)be)->cur = k; }
static void f_signal(rt_backend *be, int id) {
    fake *f = (fake *)be;
    cr_assert(id >= 0 && id < f->npoints, "point %d out of range", id);
    f->point_op[id] = f->lane_last[f->cur];
}
static void f_wait(rt_backend *be, int id) {
    fake *f = (fake *)be;
    cr_assert(id >= 0 && id < f->npoints && f->point_op[id] >= 0, "wait on point %d never signalled", id);
    f->pending[f->cur][f->npending[f->cur]++] = f->point_op[id];
}
static void f_op(fake *f) {
    const int i = f->issued++, L = f->cur;
    cr_assert(i < f->n);
    f->pred[i] = malloc(((size_t)f->npending[L] + 1) * sizeof(int));
    f->npred[i] = 0;
    if (f->lane_last[L] >= 0) f->pred[i][f->npred[i]++] = f->lane_last[L];
    for (int k = 0; k < f->npending[L]; k++) f->pred[i][f->npred[i]++] = f->pending[L][k];
    f->npending[L] = 0;
    f->lane_last[L] = i;
}
static void f_node(rt_backend *be, const rt_exec_node *n) { (void)n; f_op((fake *)be); }
/* Batching as a backend would: the same op over the same shapes. */
static int f_batches(rt_backend *be, int bwd, const rt_exec_node *a, const rt_exec_node *b) {
    (void)be;
    (void)bwd;
    if (a->op != b->op || a->n_in != b->n_in || a->out.numel != b->out.numel || a->relu_in != b->relu_in) return 0;
    for (int i = 0; i < a->n_in; i++)
        if (a->in[i].numel != b->in[i].numel) return 0;
    return 1;
}
static void f_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n) {
    fake *f = (fake *)be;
    (void)bwd;
    (void)nodes;
    cr_assert(n >= 2 && n <= RT_MAX_BATCH, "a batch of %d", n);
    for (int i = 0; i < n; i++) {
        f->batch_of[f->issued] = f->nbatch;
        f_op(f);
    }
    f->nbatch++;
}
static void f_zero(rt_backend *be, void *p, size_t b) { (void)p; (void)b; f_op((fake *)be); }
static void f_copy(rt_backend *be, float *y, const float *x, int64_t n) { (void)y; (void)x; (void)n; f_op((fake *)be); }

static void fake_init(fake *f, int n, int nlanes) {
    memset(f, 0, sizeof *f);
    f->be.name = "fake";
    f->be.set_lane = f_set_lane;
    f->be.lane_signal = f_signal;
    f->be.lane_wait = f_wait;
    f->be.forward = f_node;
    f->be.backward = f_node;
    f->be.memset0 = f_zero;
    f->be.copy = f_copy;
    f->n = n;
    f->nlanes = nlanes;
    f->npoints = n + 1;
    f->lane_last = malloc((size_t)nlanes * sizeof(int));
    f->point_op = malloc((size_t)f->npoints * sizeof(int));
    f->pending = malloc((size_t)nlanes * sizeof(int *));
    f->npending = calloc((size_t)nlanes, sizeof(int));
    for (int k = 0; k < nlanes; k++) {
        f->lane_last[k] = -1;
        f->pending[k] = malloc((size_t)(n + 1) * sizeof(int));
    }
    for (int k = 0; k < f->npoints; k++) f->point_op[k] = -1;
    f->pred = calloc((size_t)n, sizeof(int *));
    f->npred = calloc((size_t)n, sizeof(int));
    f->batch_of = malloc(((size_t)n + 1) * sizeof(int));
    for (int i = 0; i <= n; i++) f->batch_of[i] = -1;
}
static void fake_free(fake *f) {
    for (int k = 0; k < f->nlanes; k++) free(f->pending[k]);
    for (int i = 0; i < f->n; i++) free(f->pred[i]);
    free(f->pending);
    free(f->npending);
    free(f->lane_last);
    free(f->point_op);
    free(f->pred);
    free(f->npred);
    free(f->batch_of);
}

/* reach[i * words ..]: the ops ordered before op i (issue order in a lane, waits). */
static uint64_t *happens_before(const fake *f) {
    const int n = f->n;
    const size_t words = ((size_t)n + 63) / 64;
    uint64_t *reach = calloc((size_t)n * words, sizeof *reach);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < f->npred[i]; k++) {
            const int p = f->pred[i][k];
            cr_assert(p >= 0 && p < i, "op %d follows op %d, issued later", i, p);
            for (size_t w = 0; w < words; w++) reach[(size_t)i * words + w] |= reach[(size_t)p * words + w];
            reach[(size_t)i * words + (size_t)p / 64] |= 1ull << (p % 64);
        }
    return reach;
}
static int before(const uint64_t *reach, int n, int a, int b) {
    const size_t words = ((size_t)n + 63) / 64;
    return (int)(reach[(size_t)b * words + (size_t)a / 64] >> (a % 64) & 1u);
}

static int overlap_conflict(const rt_op *a, const rt_op *b) {
    rt_range ra[RT_OP_MAX_RANGES], rb[RT_OP_MAX_RANGES];
    int na = rt_op_ranges(a, ra), nb = rt_op_ranges(b, rb);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if ((ra[i].w || rb[j].w) && ra[i].lo < rb[j].hi && rb[j].lo < ra[i].hi) return 1;
    return 0;
}

/* ---- the supernet on the CPU ---- */
typedef struct net {
    ir_space sp;
    ir_net net;
    rt_backend *cpu;
    rt_plan *p;
    int batch;
} net;

static void net_make(net *h) {
    memset(h, 0, sizeof *h);
    ir_space_darts_cifar10(&h->sp);
    h->sp.in_c = 2; h->sp.in_h = 8; h->sp.in_w = 8; h->sp.classes = 5;
    h->sp.C = 4; h->sp.layers = 3; h->sp.stem_mult = 2;
    h->sp.n_reduce = 1; h->sp.reduce_at[0] = 1;
    h->batch = 4;
    cr_assert_eq(ir_space_build_supernet(&h->sp, h->batch, &h->net), 0, "%s", h->net.error);
    h->cpu = rt_backend_cpu_new();
    char err[256];
    /* memory kept past its last use as on a backend with lanes (the CPU backend has none) */
    setenv("DARTSC_LANE_SLACK", "256", 1);
    h->p = rt_plan_new(h->net.graph, h->cpu, &(rt_plan_opts){.seed = 7, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err,
                       sizeof err);
    cr_assert(h->p, "%s", err);
    const int64_t ni = (int64_t)h->batch * h->sp.in_c * h->sp.in_h * h->sp.in_w;
    float *img = malloc((size_t)ni * sizeof *img);
    tu_fill_uniform(img, ni, -1.f, 1.f, 5);
    cr_assert_eq(rt_set_input(h->p, h->net.images, img, (size_t)ni * 4), 0);
    free(img);
    int32_t lab[4] = {0, 3, 1, 4};
    cr_assert_eq(rt_set_input(h->p, h->net.labels, lab, sizeof lab), 0);
    rt_group ga = rt_plan_group(h->p, IR_ROLE_ARCH);
    tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 3); /* alphas far from uniform */
}
static void net_free(net *h) {
    rt_plan_free(h->p);
    h->cpu->destroy(h->cpu);
    ir_net_free(&h->net);
}

/* The loss and the gradients of the groups in mask after issuing ops (on the CPU). */
static float *results(net *h, unsigned mask, int64_t *len) {
    rt_group w = rt_plan_group(h->p, IR_ROLE_WEIGHT), a = rt_plan_group(h->p, IR_ROLE_ARCH);
    *len = 1 + ((mask & RT_GRAD_W) ? w.n : 0) + ((mask & RT_GRAD_ARCH) ? a.n : 0);
    float *r = malloc((size_t)*len * sizeof *r), *q = r + 1;
    r[0] = rt_loss(h->p);
    if (mask & RT_GRAD_W) { memcpy(q, w.grad, (size_t)w.n * 4); q += w.n; }
    if (mask & RT_GRAD_ARCH) memcpy(q, a.grad, (size_t)a.n * 4);
    return r;
}

static void lanes_case(unsigned mask, int nlanes, int batch) {
    net h;
    net_make(&h);
    rt_oplist ops = {0};
    cr_assert_eq(rt_plan_collect(h.p, 1, mask, &ops), 0);
    const int n = ops.n;
    cr_assert(n > 100, "only %d ops", n);
    /* the reference: the ops in order */
    rt_issue_in_order(h.cpu, &ops);
    int64_t len;
    float *ref = results(&h, mask, &len);
    cr_assert(ref[0] == ref[0] && ref[0] > 0, "reference loss %g", ref[0]);

    /* the lanes' decisions, logged */
    fake f;
    fake_init(&f, n, nlanes);
    if (batch) {
        f.be.batches = f_batches;
        f.be.run_batch = f_run_batch;
    }
    float scratch[64];
    int *order = malloc((size_t)n * sizeof *order), *at = malloc((size_t)n * sizeof *at);
    rt_lane_stats st = {.issue_order = order};
    cr_assert_eq(rt_issue_lanes(&f.be, &ops, nlanes, scratch, 0, &st), 0);
    cr_assert_eq(f.issued, n, "issued %d of %d ops", f.issued, n);
    /* at[i]: where list op i was issued (a permutation) */
    for (int i = 0; i < n; i++) at[i] = -1;
    for (int k = 0; k < n; k++) {
        cr_assert(order[k] >= 0 && order[k] < n && at[order[k]] < 0, "issue order is not a permutation");
        at[order[k]] = k;
    }
    if (batch) {
        cr_expect(st.batches > 0 && st.batched_ops > 2 * st.batches, "%d batches of %d ops", st.batches,
                  st.batched_ops);
        cr_expect_eq(f.nbatch, st.batches);
        cr_expect(st.issued < n * 3 / 4, "%d of %d ops issued alone or in batches: little batched", st.issued, n);
        cr_log_info("%d ops: %d batches of %d ops, %d issue entries", n, st.batches, st.batched_ops, st.issued);
        /* the ops of one batch run together: no two of them may conflict */
        int same = 0;
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n && f.batch_of[b] == f.batch_of[a] && f.batch_of[a] >= 0; b++) {
                same++;
                cr_expect(!overlap_conflict(&ops.ops[order[a]], &ops.ops[order[b]]),
                          "ops %d and %d conflict but came in one batch", order[a], order[b]);
            }
        cr_expect(same > 0);
    } else {
        cr_expect_eq(st.batches, 0);
        for (int k = 0; k < n; k++) cr_assert_eq(order[k], k, "without batching the ops go in list order");
    }
    cr_expect_eq(st.ops, n);
    cr_expect_eq(st.lanes_used, nlanes, "%d of %d lanes used", st.lanes_used, nlanes);
    cr_expect(st.waits > 0);
    cr_log_info("%d ops on %d lanes: %d waits, critical path %d units", n, st.lanes_used, st.waits, st.longest_chain);
    cr_expect(st.longest_chain < n / 2, "critical path %d of %d ops: nothing runs side by side", st.longest_chain, n);

    uint64_t *reach = happens_before(&f);
    int conflicts = 0, unordered = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < j; i++) {
            if (!overlap_conflict(&ops.ops[i], &ops.ops[j])) continue;
            conflicts++;
            if (!before(reach, n, at[i], at[j])) {
                if (unordered++ < 5) cr_log_error("ops %d and %d conflict but are not ordered", i, j);
            }
        }
    cr_expect(conflicts > n, "only %d conflicting pairs", conflicts);
    cr_expect_eq(unordered, 0, "%d of %d conflicting pairs unordered", unordered, conflicts);

    /* random orders allowed by the lanes, executed: the bits of the in-order issue */
    int *left = malloc((size_t)n * sizeof *left), *ready = malloc((size_t)n * sizeof *ready);
    int **succ = calloc((size_t)n, sizeof *succ), *nsucc = calloc((size_t)n, sizeof *nsucc);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < f.npred[i]; k++) nsucc[f.pred[i][k]]++;
    for (int i = 0; i < n; i++) succ[i] = malloc(((size_t)nsucc[i] + 1) * sizeof(int)), nsucc[i] = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < f.npred[i]; k++) succ[f.pred[i][k]][nsucc[f.pred[i][k]]++] = i;
    rt_oplist shuffled = {0};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 3; round++) {
        int nr = 0, moved = 0;
        shuffled.n = 0;
        for (int i = 0; i < n; i++) {
            left[i] = f.npred[i];
            if (!left[i]) ready[nr++] = i;
        }
        for (int done = 0; done < n; done++) {
            cr_assert(nr > 0, "the lanes' order has a cycle");
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            const int pick = (int)(rng % (uint64_t)nr), i = ready[pick];
            ready[pick] = ready[--nr];
            moved += i != done;
            rt_oplist_push(&shuffled, &ops.ops[order[i]]); /* issued op i is list op order[i] */
            for (int k = 0; k < nsucc[i]; k++)
                if (--left[succ[i][k]] == 0) ready[nr++] = succ[i][k];
        }
        cr_assert(moved > n / 4, "round %d: only %d ops moved", round, moved);
        rt_issue_in_order(h.cpu, &shuffled);
        int64_t l2;
        float *got = results(&h, mask, &l2);
        cr_assert_eq(l2, len);
        cr_expect_eq(memcmp(got, ref, 4), 0, "round %d: loss %.9g vs in order %.9g", round, got[0], ref[0]);
        cr_expect_arr_eq(got, ref, (size_t)len * 4, "round %d: gradients differ from the in-order issue", round);
        free(got);
    }
    for (int i = 0; i < n; i++) free(succ[i]);
    free(succ);
    free(nsucc);
    free(left);
    free(ready);
    rt_oplist_free(&shuffled);
    free(reach);
    free(order);
    free(at);
    fake_free(&f);
    free(ref);
    rt_oplist_free(&ops);
    net_free(&h);
}

Test(schedule, weight_pass_on_4_lanes) { lanes_case(RT_GRAD_W, 4, 0); }
Test(schedule, alpha_pass_on_8_lanes) { lanes_case(RT_GRAD_ARCH, 8, 0); }
Test(schedule, both_groups_on_3_lanes) { lanes_case(RT_GRAD_W | RT_GRAD_ARCH, 3, 0); }
Test(schedule, forward_only_on_8_lanes) { lanes_case(0, 8, 0); }
/* Batches (rt_backend.batches): the ops issued by depth, same-shaped node ops of one depth
 * in one run_batch: still every conflicting pair in order, never two conflicting ops in
 * one batch, and the same bits in random orders the lanes allow. */
Test(schedule, batched_weight_pass_on_4_lanes) { lanes_case(RT_GRAD_W, 4, 1); }
Test(schedule, batched_both_groups_on_8_lanes) { lanes_case(RT_GRAD_W | RT_GRAD_ARCH, 8, 1); }
Test(schedule, batched_forward_only_on_2_lanes) { lanes_case(0, 2, 1); }

/* Memory the plan reuses: an op writing bytes an earlier op read (no data edge between
 * them) is ordered after it; ops on disjoint memory are not ordered; a chain stays on its
 * lane and an independent op starts another. Hand-made identity nodes over one buffer. */
static rt_op ident(float *x, float *y) {
    rt_op o = {.kind = RT_OP_FWD};
    o.e.op = IR_OP_IDENTITY;
    o.e.n_in = 1;
    o.e.in[0] = (rt_tref){.data = x, .ndim = 1, .shape = {8}, .numel = 8};
    o.e.out = (rt_tref){.data = y, .ndim = 1, .shape = {8}, .numel = 8};
    return o;
}
Test(schedule, reused_memory_orders_and_disjoint_memory_does_not) {
    float m[8][8];
    rt_oplist l = {0};
    rt_oplist_push(&l, &(rt_op){.kind = RT_OP_ZERO, .dst = m[0], .n = sizeof m[0]}); /* 0 zero a */
    rt_op o[5] = {ident(m[0], m[1]),  /* 1: a -> b */
                  ident(m[1], m[2]),  /* 2: b -> c: after 1 (read after write), same lane */
                  ident(m[3], m[4]),  /* 3: d -> e: independent, another lane */
                  ident(m[5], m[0]),  /* 4: x -> a: after 1 (write after read), not after 3 */
                  ident(m[4], m[6])}; /* 5: e -> f: after 3 only */
    for (int i = 0; i < 5; i++) rt_oplist_push(&l, &o[i]);
    fake f;
    fake_init(&f, l.n, 4);
    rt_lane_stats st;
    cr_assert_eq(rt_issue_lanes(&f.be, &l, 4, m[7], 0, &st), 0);
    uint64_t *r = happens_before(&f);
    const int n = l.n;
    cr_expect(before(r, n, 0, 1) && before(r, n, 1, 2) && before(r, n, 1, 4) && before(r, n, 3, 5));
    cr_expect(!before(r, n, 1, 3) && !before(r, n, 3, 4) && !before(r, n, 2, 5) && !before(r, n, 4, 5),
              "independent ops ordered: the lanes serialise more than the memory asks");
    cr_expect(st.lanes_used >= 2, "%d lanes used", st.lanes_used);
    cr_expect_eq(st.longest_chain, 2, "critical path %d units (zero + 1, then 2 or 4)", st.longest_chain);
    free(r);
    fake_free(&f);
    rt_oplist_free(&l);
}
