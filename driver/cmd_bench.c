/* cmd_bench.c — `dartsc bench SPACE`: times whole search steps (first and second order)
 * of the space's supernet on random images drawn through the search's loaders, on this machine: median of N steps after
 * warm-up, images/s, achieved GFLOP/s from the counted multiply-adds, peak resident
 * memory. bench/run.sh puts these beside PyTorch's numbers for the same supernet. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "driver.h"
#include "runtime/runtime.h"
#include "search/search.h"
#include "search/successors.h"
#include "train/common.h"

/* --profile: the backend's forward and backward wrapped with timers, summed per op
 * (convolutions split into depthwise, 1x1 and other; on a device the data and filter
 * gradients apart), printed after the run. On the CPU the timers are the host clock. On
 * a device with marks (CUDA events) each op is bracketed by two marks in the work queue
 * and timed by the device after the step: the device's own time for the op, launches
 * queued ahead as in an unprofiled step (no synchronisation inside it; graphs off, each
 * op launched on its own), and the step's time not inside any op is printed too. With
 * DARTSC_SCHEDULE_EAGER=1 the passes go through the runtime's schedule on one lane, so a
 * batching backend's batches (DARTSC_CUDA_BATCH=1) are timed as the calls they are: each
 * row says how many nodes ran in how many launches (calls of the backend). */
enum { PROF_DW = IR_OP_COUNT, PROF_PW, PROF_PW2, PROF_DW_F, PROF_PW_F, PROF_PW2_F, PROF_CONV_F, PROF_KINDS };
static double prof_t[2][PROF_KINDS];
static long prof_n[2][PROF_KINDS], prof_e[2][PROF_KINDS]; /* nodes, and the calls that ran them */
static void (*prof_fwd)(rt_backend *, const rt_exec_node *);
static void (*prof_bwd)(rt_backend *, const rt_exec_node *);
static void (*prof_batch)(rt_backend *, int, const rt_exec_node *const *, int);
static int prof_dev; /* timing by device marks */
typedef struct prof_mark {
    void *a, *b;
    int dir, kind, nodes;
} prof_mark;
static prof_mark *prof_marks;
static int prof_nmarks, prof_cap;
static double prof_step_dev; /* device time of the profiled steps (first mark to last) */

static int prof_kind(const rt_exec_node *n) {
    if (n->op != IR_OP_CONV2D) return (int)n->op;
    if (n->iattr[IR_A_CONV_GROUPS] > 1 && n->iattr[IR_A_CONV_GROUPS] == n->in[0].shape[1]) return PROF_DW;
    if (n->in[1].shape[2] == 1 && n->in[1].shape[3] == 1)
        return n->iattr[IR_A_CONV_STRIDE_H] == 1 && n->iattr[IR_A_CONV_STRIDE_W] == 1 ? PROF_PW : PROF_PW2;
    return IR_OP_CONV2D;
}
/* One call timed: node n alone (batch NULL), or the nb nodes of batch as one run_batch. */
static void prof_call(rt_backend *be, const rt_exec_node *n, const rt_exec_node *const *batch, int nb, int dir, int k) {
    void (*f)(rt_backend *, const rt_exec_node *) = dir ? prof_bwd : prof_fwd;
    const int nodes = batch ? nb : 1;
    if (prof_dev) {
        if (prof_nmarks == prof_cap) {
            prof_cap = prof_cap ? 2 * prof_cap : 4096;
            prof_marks = realloc(prof_marks, (size_t)prof_cap * sizeof *prof_marks);
            if (!prof_marks) abort(); /* a benchmark's own bookkeeping: nothing to recover */
        }
        prof_mark *m = &prof_marks[prof_nmarks++];
        m->dir = dir;
        m->kind = k;
        m->nodes = nodes;
        m->a = be->mark(be);
        if (batch) prof_batch(be, dir, batch, nb);
        else f(be, n);
        m->b = be->mark(be);
        return;
    }
    double t0 = sr_now();
    if (batch) prof_batch(be, dir, batch, nb);
    else f(be, n);
    prof_t[dir][k] += sr_now() - t0;
    prof_n[dir][k] += nodes;
    prof_e[dir][k]++;
}
static void prof_run(rt_backend *be, const rt_exec_node *n, int dir, int k) { prof_call(be, n, NULL, 0, dir, k); }
/* After a step's synchronisation: the device's times of its marked ops. */
static void prof_collect(rt_backend *be) {
    if (!prof_dev || !prof_nmarks) return;
    for (int i = 0; i < prof_nmarks; i++) {
        prof_mark *m = &prof_marks[i];
        prof_t[m->dir][m->kind] += be->mark_elapsed(be, m->a, m->b);
        prof_n[m->dir][m->kind] += m->nodes;
        prof_e[m->dir][m->kind]++;
    }
    prof_step_dev += be->mark_elapsed(be, prof_marks[0].a, prof_marks[prof_nmarks - 1].b);
    prof_nmarks = 0;
    be->marks_reset(be);
}
/* Without --profile, on a backend with marks and recorded passes: each replayed pass
 * bracketed by two marks, to split a step's device time into time inside the passes and
 * time between them (uploads, optimiser and vector ops, gaps while the host issues). */
static void (*pass_replay)(rt_backend *be, void *graph);
static void *pass_marks[2][64];
static int pass_n, pass_over;
static void *step_mark0;
static void pass_timed_replay(rt_backend *be, void *graph) {
    if (pass_n == 64) {
        pass_over = 1;
        pass_replay(be, graph);
        return;
    }
    pass_marks[0][pass_n] = be->mark(be);
    pass_replay(be, graph);
    pass_marks[1][pass_n++] = be->mark(be);
}
/* After a step's synchronisation: its device seconds in passes and from its start mark to now. */
static void pass_collect(rt_backend *be, double *in_passes, double *span) {
    void *end = be->mark(be);
    be->synchronize(be);
    *in_passes = 0;
    for (int i = 0; i < pass_n; i++) *in_passes += be->mark_elapsed(be, pass_marks[0][i], pass_marks[1][i]);
    *span = step_mark0 && end ? be->mark_elapsed(be, step_mark0, end) : 0;
    if (pass_over) *in_passes = NAN;
    pass_n = pass_over = 0;
    be->marks_reset(be);
}
static void prof_forward(rt_backend *be, const rt_exec_node *n) { prof_run(be, n, 0, prof_kind(n)); }
static void prof_backward(rt_backend *be, const rt_exec_node *n) {
    int k = prof_kind(n);
    if (prof_dev && n->op == IR_OP_CONV2D && n->in[0].grad && n->in[1].grad) {
        /* on the device, the data and the filter gradient timed apart (two calls that do
         * what one would: the data call keeps grad_set, the filter call has no dx) */
        rt_exec_node d = *n, f = *n;
        d.in[1].grad = NULL;
        f.in[0].grad = NULL;
        f.grad_set = 0;
        prof_run(be, &d, 1, k);
        prof_run(be, &f, 1, k == PROF_DW ? PROF_DW_F : k == PROF_PW ? PROF_PW_F : k == PROF_PW2 ? PROF_PW2_F : PROF_CONV_F);
        return;
    }
    prof_run(be, n, 1, k);
}
/* A batch of nodes (DARTSC_SCHEDULE_EAGER with the backend's batches): one call, timed as
 * one; on the device a convolution batch's data and filter gradients apart, as above. */
static void prof_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n) {
    const int k = prof_kind(nodes[0]);
    const rt_exec_node *a = nodes[0];
    if (prof_dev && bwd && a->op == IR_OP_CONV2D && a->in[0].grad && a->in[1].grad && n <= 64) {
        rt_exec_node d[64], f[64];
        const rt_exec_node *pd[64], *pf[64];
        for (int i = 0; i < n; i++) {
            d[i] = *nodes[i];
            f[i] = *nodes[i];
            d[i].in[1].grad = NULL;
            f[i].in[0].grad = NULL;
            f[i].grad_set = 0;
            pd[i] = &d[i];
            pf[i] = &f[i];
        }
        prof_call(be, NULL, pd, n, 1, k);
        prof_call(be, NULL, pf, n, 1,
                  k == PROF_DW ? PROF_DW_F : k == PROF_PW ? PROF_PW_F : k == PROF_PW2 ? PROF_PW2_F : PROF_CONV_F);
        return;
    }
    prof_call(be, NULL, nodes, n, bwd != 0, k);
}
static void prof_print(int steps) {
    double total = 0;
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < PROF_KINDS; k++) total += prof_t[d][k];
    fprintf(stderr, "per-op %s time, mean per step (%d steps incl. warm-up); total in ops %.4f s\n",
            prof_dev ? "device" : "wall", steps, total / steps);
    if (prof_dev)
        fprintf(stderr, "  device time per step from the first op to the last %.4f s (%.4f s between ops: launch gaps, "
                        "optimiser, input copies)\n",
                prof_step_dev / steps, (prof_step_dev - total) / steps);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < PROF_KINDS; k++) {
            if (!prof_n[d][k]) continue;
            const char *nm = k == PROF_DW      ? "conv2d-depthwise"
                             : k == PROF_PW     ? "conv2d-1x1"
                             : k == PROF_PW2    ? "conv2d-1x1-strided"
                             : k == PROF_DW_F   ? "conv2d-depthwise dw"
                             : k == PROF_PW_F   ? "conv2d-1x1 dw"
                             : k == PROF_PW2_F  ? "conv2d-1x1-strided dw"
                             : k == PROF_CONV_F ? "conv2d dw"
                                                : ir_op_name((ir_op)k);
            fprintf(stderr, "  %-8s %-21s %8.5f s %5.1f %%  %6ld nodes %6ld launches %8.1f us/launch\n",
                    d ? "backward" : "forward", nm, prof_t[d][k] / steps, 100.0 * prof_t[d][k] / total,
                    prof_n[d][k] / steps, prof_e[d][k] / steps, 1e6 * prof_t[d][k] / (double)prof_e[d][k]);
        }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int dartsc_cmd_bench(int argc, char **argv) {
    const char *path = NULL, *device = "cpu", *supernet = "darts";
    int batch = 0, order = 1, steps = 5, warmup = 1, json = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (a[0] == '-' && !v) {
            fprintf(stderr, "dartsc bench: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--batch")) {
            if (dartsc_parse_int("bench", a, argv[++i], 1, 65536, &batch)) return 2;
        } else if (!strcmp(a, "--order")) {
            if (dartsc_parse_int("bench", a, argv[++i], 1, 2, &order)) return 2;
        } else if (!strcmp(a, "--steps")) {
            if (dartsc_parse_int("bench", a, argv[++i], 1, 1000, &steps)) return 2;
        } else if (!strcmp(a, "--warmup")) {
            if (dartsc_parse_int("bench", a, argv[++i], 0, 1000, &warmup)) return 2;
        } else if (!strcmp(a, "--device")) device = argv[++i];
        else if (!strcmp(a, "--supernet")) supernet = argv[++i];
        else if (a[0] == '-') {
            fprintf(stderr, "usage: dartsc bench SPACE [--batch N] [--order 1|2] [--steps N] [--warmup N] [--device cpu|cuda|auto] [--supernet darts|pc-darts|fair-darts] [--json] [--profile]\n");
            return 2;
        } else path = a;
    }
    if (!path || (order != 1 && order != 2) || steps < 1 || steps > 1000 || warmup < 0 || batch < 0) {
        fprintf(stderr, "usage: dartsc bench SPACE [--batch N] [--order 1|2] [--steps N] [--warmup N] [--device cpu|cuda|auto] [--supernet darts|pc-darts|fair-darts] [--json] [--profile]\n");
        return 2;
    }
    ir_space sp;
    if (dartsc_load_space(path, &sp)) return 1;
    if (!batch) batch = sp.search.batch;
    /* the supernet a successor searches, under its search's step: DARTS' (FairDARTS' with
       its zero-one term added to alpha's gradient) */
    sr_strategy strat;
    if (!strcmp(supernet, "darts")) strat = SR_DARTS;
    else if (!strcmp(supernet, "pc-darts")) strat = SR_PC_DARTS;
    else if (!strcmp(supernet, "fair-darts")) strat = SR_FAIR_DARTS;
    else {
        fprintf(stderr, "dartsc bench: --supernet: '%s' is not darts, pc-darts or fair-darts\n", supernet);
        return 2;
    }
    ir_supernet_opts so;
    sr_succ_supernet_opts(&sp, strat, &so);
    so.no_share = sr_no_share();
    ir_net net;
    if (ir_space_build_supernet_ex(&sp, batch, &so, &net)) {
        fprintf(stderr, "dartsc bench: %s\n", net.error);
        return 1;
    }
    char err[512];
    /* a benchmark measures the device it names: "cpu" unless told otherwise */
    rt_backend *be = rt_backend_open(device, err, sizeof err);
    if (!be) {
        fprintf(stderr, "dartsc bench: %s\n", err);
        ir_net_free(&net);
        return 1;
    }
    if (profile) {
        prof_fwd = be->forward;
        prof_bwd = be->backward;
        be->forward = prof_forward;
        be->backward = prof_backward;
        if (be->run_batch) { /* batches: issued only with DARTSC_SCHEDULE_EAGER=1 once graphs are off */
            prof_batch = be->run_batch;
            be->run_batch = prof_run_batch;
        }
        prof_dev = be->mark && be->mark_elapsed && be->marks_reset;
        /* per-op timing needs each op launched on its own */
        if (prof_dev) setenv("DARTSC_NO_GRAPHS", "1", 1);
    }
    const int pass_timing = !profile && be->mark && be->mark_elapsed && be->marks_reset && be->replay;
    if (pass_timing) {
        pass_replay = be->replay;
        be->replay = pass_timed_replay;
    }
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    if (!p) {
        fprintf(stderr, "dartsc bench: %s\n", err);
        return 1;
    }
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT), ga = rt_plan_group(p, IR_ROLE_ARCH);
    int64_t ni = (int64_t)batch * sp.in_c * sp.in_h * sp.in_w;
    float *xt = malloc((size_t)ni * 4), *xv = malloc((size_t)ni * 4);
    int32_t *yt = malloc((size_t)batch * 4), *yv = malloc((size_t)batch * 4);
    /* the batches come from loaders as in the search (random 8-bit images, 4 batches per
       split, the search's shuffling, crop and flip, normalisation): the host's work between
       steps is measured with the step; with prefetch (sr_prefetch_on, the search's default)
       the next step's batches are drawn and put while a step computes */
    rt_dataset dsets[2];
    rt_loader ld[2];
    for (int k = 0; k < 2; k++) {
        const int n = 4 * batch;
        const size_t px = (size_t)n * (size_t)sp.in_c * (size_t)sp.in_h * (size_t)sp.in_w;
        dsets[k] = (rt_dataset){.n = n, .c = sp.in_c, .h = sp.in_h, .w = sp.in_w, .classes = sp.classes,
                                .pixels = malloc(px), .labels = malloc((size_t)n * 4), .owns = 1};
        if (!dsets[k].pixels || !dsets[k].labels) {
            fprintf(stderr, "dartsc bench: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < px; i++) dsets[k].pixels[i] = (uint8_t)(256.0f * rt_rng_uniform(3 + (uint64_t)k, i));
        for (int i = 0; i < n; i++) dsets[k].labels[i] = (i * (k ? 7 : 1)) % sp.classes;
        ir_train_config lc = sp.search;
        lc.batch = batch;
        lc.cutout = 0; /* as the search's loaders */
        rt_loader_cfg cfg = sr_loader_cfg(&sp, &lc, 1);
        cfg.seed = 2 * (uint64_t)k + 1;
        if (rt_loader_init(&ld[k], &dsets[k], &cfg, err, sizeof err)) {
            fprintf(stderr, "dartsc bench: %s\n", err);
            return 1;
        }
    }
    const int prefetch = sr_prefetch_on();
    float *buf = be->alloc(be, (size_t)gw.n * 4), *m = be->alloc(be, (size_t)ga.n * 4), *v = be->alloc(be, (size_t)ga.n * 4);
    sr_unroll u;
    memset(&u, 0, sizeof u);
    if (!buf || !m || !v || (order == 2 && sr_unroll_init(&u, p))) {
        fprintf(stderr, "dartsc bench: out of memory on the %s backend for the optimisers' and the second-order step's "
                        "buffers (%.1f MiB)\n", be->name, (double)((gw.n + ga.n) * (order == 2 ? 3 : 1) + ga.n) * 4 / 1048576.0);
        return 1;
    }
    be->memset0(be, buf, (size_t)gw.n * 4);
    be->memset0(be, m, (size_t)ga.n * 4);
    be->memset0(be, v, (size_t)ga.n * 4);
    /* the search's own step (search/step.c: one recorded graph per step on CUDA), with the
       space's search settings at the first epoch's learning rate */
    ir_train_config tc = sp.search;
    tc.order = order;
    sr_darts_step ds;
    if (sr_darts_step_init(&ds, p, net.images, net.labels, &tc, &u, buf, m, v)) {
        fprintf(stderr, "dartsc bench: out of memory on the %s backend for the step's buffers\n", be->name);
        return 1;
    }
    if (strat == SR_FAIR_DARTS) ds.w01 = SR_FAIR_W01; /* its zero-one term, as its search's step adds it */
    const float lr = sr_cosine_lr(&tc, 0);
    /* autotuning (DARTSC_AUTOTUNE): its steps are warm-up too */
    warmup += rt_plan_tune_steps(p);
    double *times = malloc((size_t)steps * sizeof *times);
    double *tpass = calloc((size_t)steps, sizeof *tpass), *tspan = calloc((size_t)steps, sizeof *tspan);
    double *thost = calloc((size_t)(warmup + steps), sizeof *thost);
    int ahead = 0;
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = sr_now();
        if (!ahead) { /* this step's batches, drawn now (the first step, or no prefetch) */
            sr_next_batch(&ld[0], xt, yt);
            sr_next_batch(&ld[1], xv, yv);
            thost[s] = sr_now() - t0;
            sr_darts_step_put(&ds, xt, yt, xv, yv);
        }
        ahead = 0;
        if (pass_timing) step_mark0 = be->mark(be);
        float got[4];
        double gnorm;
        if (sr_darts_step_launch(&ds, lr, s + 1, s > 0)) {
            fprintf(stderr, "dartsc bench: the step failed\n");
            return 1;
        }
        if (prefetch && s + 1 < warmup + steps) { /* the next step's, while this one computes */
            double th = sr_now();
            sr_next_batch(&ld[0], xt, yt);
            sr_next_batch(&ld[1], xv, yv);
            thost[s + 1] = sr_now() - th;
            sr_darts_step_put(&ds, xt, yt, xv, yv);
            ahead = 1;
        }
        sr_darts_step_read(&ds, got, &gnorm);
        if (s >= warmup) times[s - warmup] = sr_now() - t0;
        if (profile) prof_collect(be);
        if (pass_timing) {
            double a, b;
            pass_collect(be, &a, &b);
            if (s >= warmup) {
                tpass[s - warmup] = a;
                tspan[s - warmup] = b;
            }
        }
    }
    for (int k = 0; k < 2; k++) {
        rt_loader_free(&ld[k]);
        rt_dataset_free(&dsets[k]);
    }
    qsort(thost + warmup, (size_t)steps, sizeof *thost, cmp_double);
    /* host seconds drawing one step's two batches (median of the measured steps') */
    const double med_host = steps % 2 ? thost[warmup + steps / 2]
                                      : 0.5 * (thost[warmup + steps / 2 - 1] + thost[warmup + steps / 2]);
    free(thost);
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    qsort(tpass, (size_t)steps, sizeof *tpass, cmp_double);
    qsort(tspan, (size_t)steps, sizeof *tspan, cmp_double);
    double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    /* device seconds per step inside the recorded passes and from the step's start to its
       end (medians; -1 where the backend has no marks or passes are not recorded) */
    double med_pass = pass_timing ? (steps % 2 ? tpass[steps / 2] : 0.5 * (tpass[steps / 2 - 1] + tpass[steps / 2])) : -1;
    double med_span = pass_timing ? (steps % 2 ? tspan[steps / 2] : 0.5 * (tspan[steps / 2 - 1] + tspan[steps / 2])) : -1;
    if (!(med_pass > 0)) med_pass = med_span = -1; /* nothing replayed (DARTSC_NO_GRAPHS, drop path) */
    ir_stats st;
    ir_graph_stats(net.graph, &st);
    /* forward + backward (2x) for each pass; first order: 2 passes (alpha, weights);
     * second order: 6 (virtual step, at w', two Hessian passes, weights) */
    double passes = order == 1 ? 2 : 5;
    double gflop = 2.0 * (double)st.macs_per_sample * batch * 3.0 * passes / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    /* the backend's own allocations at most at once (plan arena, parameters, optimiser
     * state, scratch); -1 where the backend does not count them (CPU: see peak RSS) */
    double dev_mb = be->peak_bytes ? (double)be->peak_bytes(be) / 1048576.0 : -1.0;
    /* the autotuned variant and every variant's median step (seconds) while tuning */
    rt_tune_report tr;
    char tune[256] = "";
    if (rt_step_tuning(p, &tr) == 1) {
        size_t o = (size_t)snprintf(tune, sizeof tune, json ? ",\"variant\":\"%s\",\"variant_medians\":\"" : "; autotuned: %s (",
                                    tr.names[tr.chosen]);
        for (int k = 0; k < tr.variants && o < sizeof tune; k++)
            o += (size_t)snprintf(tune + o, sizeof tune - o, "%s%s %.4f", k ? ", " : "", tr.names[k], tr.times[k]);
        if (o < sizeof tune) snprintf(tune + o, sizeof tune - o, json ? "\"" : " s/step, %d timed steps each)", tr.trials);
    }
    if (json)
        printf("{\"impl\":\"dartsc\",\"space\":\"%s\",\"device\":\"%s\",\"batch\":%d,\"order\":%d,\"threads\":%d,"
               "\"median_s\":%.4f,\"min_s\":%.4f,\"images_per_s\":%.2f,\"gflop_per_step\":%.2f,\"gflops\":%.2f,"
               "\"peak_rss_mb\":%.1f,\"peak_device_alloc_mb\":%.1f,\"pinned_threads\":%d,"
               "\"device_in_passes_s\":%.5f,\"device_step_s\":%.5f,\"host_batch_s\":%.5f,\"prefetch\":%d,"
               "\"supernet\":\"%s\"%s}\n",
               sp.name, be->name, batch, order, rt_cpu_num_threads(), med, times[0], batch / med, gflop, gflop / med,
               rss_mb, dev_mb, rt_cpu_pinned_threads(), med_pass, med_span, med_host, prefetch, supernet, tune);
    else {
        printf("%s (%s supernet) batch %d order %d on %s: median %.3f s/step (min %.3f, %d steps), %.1f images/s, "
               "%.1f GFLOP/step, %.1f GFLOP/s, peak RSS %.0f MiB, %d threads%s",
               sp.name, supernet, batch, order, be->name, med, times[0], steps, batch / med, gflop, gflop / med, rss_mb,
               rt_cpu_num_threads(), rt_cpu_pinned_threads() ? " (pinned)" : "");
        if (dev_mb >= 0) printf(", peak device allocations %.0f MiB", dev_mb);
        if (med_pass > 0)
            printf("; device time per step %.4f s, %.4f s of it inside the recorded passes", med_span, med_pass);
        printf("; %.4f s per step on the host drawing its batches (%s)%s\n", med_host,
               prefetch ? "while the step before computes" : "between steps: DARTSC_NO_PREFETCH", tune);
    }
    if (profile) prof_print(warmup + steps);
    sr_darts_step_free(&ds);
    if (order == 2) sr_unroll_free(&u, p);
    be->free(be, buf);
    be->free(be, m);
    be->free(be, v);
    free(times);
    free(tpass);
    free(tspan);
    free(xt);
    free(xv);
    free(yt);
    free(yv);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    return 0;
}
