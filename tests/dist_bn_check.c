/* dist_bn_check.c — synchronised batch norm (sync_bn) on the CUDA backend, on one GPU and
 * in one process (the device machine has no MPI launcher): a data-parallel job of 2
 * processes is simulated and its first step compared with one process at the same global
 * batch, through the whole plan (runtime/plan.c, runtime/cuda/backend_cuda.cu,
 * kernels/cuda/bn.cu's host round trip). Exits 77 (skipped) where the build has no CUDA
 * backend or no GPU is usable; 0 when every check passes, 1 otherwise.
 *
 *   build/dist_bn_check          (the CUDA backend; 77 without one)
 *   build/dist_bn_check --cpu    (the same on the CPU backend's sync_bn: the harness's own
 *                                 check, run by ctest)
 *
 * The tiny supernet of tests/test_dist.c (C 4, 3 cells of 2 nodes, every batch norm in
 * training mode) at local batch 8: plan F holds all 16 images, plans A and B the halves,
 * both with a kbn_sync of size 2 whose gather answers with A's and B's values of the same
 * gather. A's k-th exchange depends only on the exchanges before it, so running A and B in
 * turn, each answered with the other's values from the turn before, reaches a fixed point
 * (no exchanged value changes, bit for bit) in at most as many rounds as the passes have
 * exchanges, after which A and B are the two processes of a real job: then
 *   - the global loss (A + B) / 2 and gradients (A + B) / 2 of the weights and α equal
 *     F's to rounding: relative error (norm of the difference over the norm) <= 1e-5, the
 *     CPU test's tolerance (tests/test_dist.c: measured 3.1e-7 there; the halves' sums
 *     are merged in double, and each gradient is the float sum of two halves);
 *   - without sync the halves differ from F by far more (checked, so that the comparison
 *     can fail: > 1e-3);
 *   - the fixed point itself shows that the kernels and the exchange are deterministic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "ir/space.h"
#include "kernels/kdesc.h"
#include "runtime/backend.h"
#include "runtime/runtime.h"

#define LB 8          /* local batch: 2 x 8 = the global batch of 16 */
#define MAX_EX 4096   /* exchanges per pass */
#define TOL 1e-5

static const char *space_src =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 2; keep 2; ops darts }\n"
    "cell reduce : normal { reduction }\n"
    "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
    "search { batch 16; seed 1 }\n";

/* The exchanges of the simulated job: table[r][k], n[k] doubles, rank r's values of
 * exchange k as last sent. */
typedef struct sim {
    double *table[2][MAX_EX];
    int n[MAX_EX];
    double *out;   /* the answer: both ranks' values */
    size_t out_n;
    int changed, overflow;
} sim;
typedef struct rank_ctx {
    sim *s;
    int rank, k;
    kbn_sync sync;
} rank_ctx;

static const double *sim_gather(void *ctx, const double *in, int n) {
    rank_ctx *r = ctx;
    sim *s = r->s;
    const int k = r->k++;
    if (k == MAX_EX) fprintf(stderr, "dist_bn_check: more than %d exchanges in a pass\n", MAX_EX);
    if (k >= MAX_EX) s->overflow = 1;
    if ((size_t)2 * n > s->out_n) {
        s->out = realloc(s->out, (size_t)2 * n * sizeof(double));
        s->out_n = (size_t)2 * n;
        if (!s->out) {
            fprintf(stderr, "dist_bn_check: out of memory\n");
            exit(1);
        }
    }
    if (k >= MAX_EX) {
        memcpy(s->out, in, (size_t)n * sizeof(double));
        memcpy(s->out + n, in, (size_t)n * sizeof(double));
        return s->out;
    }
    for (int q = 0; q < 2; q++)
        if (!s->table[q][k]) {
            s->table[q][k] = calloc((size_t)n, sizeof(double)); /* the other's unknown yet: zeros (count 0) */
            if (!s->table[q][k]) {
                fprintf(stderr, "dist_bn_check: out of memory\n");
                exit(1);
            }
            s->n[k] = n;
        }
    if (s->n[k] != n) {
        fprintf(stderr, "dist_bn_check: exchange %d: rank %d sends %d values, the other %d\n", k, r->rank, n, s->n[k]);
        exit(1);
    }
    if (memcmp(s->table[r->rank][k], in, (size_t)n * sizeof(double))) {
        memcpy(s->table[r->rank][k], in, (size_t)n * sizeof(double));
        s->changed = 1;
    }
    memcpy(s->out, s->table[0][k], (size_t)n * sizeof(double));
    memcpy(s->out + n, s->table[1][k], (size_t)n * sizeof(double));
    return s->out;
}

typedef struct run {
    rt_plan *p;
    ir_net net;
    float loss, *gw, *ga;
    int64_t nw, na;
} run;

static int open_run(run *r, const ir_space *sp, rt_backend *be, int batch, const kbn_sync *sync) {
    char err[512];
    memset(r, 0, sizeof *r);
    if (ir_space_build_supernet(sp, batch, &r->net)) {
        fprintf(stderr, "dist_bn_check: %s\n", r->net.error);
        return -1;
    }
    r->p = rt_plan_new(r->net.graph, be, &(rt_plan_opts){.seed = 1, .grads = RT_GRAD_W | RT_GRAD_ARCH, .bn_sync = sync},
                       err, sizeof err);
    if (!r->p) {
        fprintf(stderr, "dist_bn_check: %s\n", err);
        return -1;
    }
    rt_group gw = rt_plan_group(r->p, IR_ROLE_WEIGHT), ga = rt_plan_group(r->p, IR_ROLE_ARCH);
    r->nw = gw.n;
    r->na = ga.n;
    r->gw = malloc((size_t)gw.n * 4);
    r->ga = malloc((size_t)ga.n * 4);
    return r->gw && r->ga ? 0 : -1;
}

/* One training pass on images x (batch b) and labels y; the loss and gradients to the host. */
static void pass(run *r, rt_backend *be, const float *x, const int32_t *y, int b) {
    rt_set_input(r->p, r->net.images, x, (size_t)b * 28 * 28 * 4);
    rt_set_input(r->p, r->net.labels, y, (size_t)b * 4);
    rt_pass(r->p, 1, RT_GRAD_W | RT_GRAD_ARCH);
    r->loss = rt_loss(r->p);
    rt_group gw = rt_plan_group(r->p, IR_ROLE_WEIGHT), ga = rt_plan_group(r->p, IR_ROLE_ARCH);
    be->download(be, r->gw, gw.grad, (size_t)gw.n * 4);
    be->download(be, r->ga, ga.grad, (size_t)ga.n * 4);
}

static void close_run(run *r) {
    rt_plan_free(r->p);
    ir_net_free(&r->net);
    free(r->gw);
    free(r->ga);
}

/* |(a + b) / 2 - f| / |f| */
static double err_half_sum(const float *a, const float *b, const float *f, int64_t n) {
    double d = 0, nf = 0;
    for (int64_t i = 0; i < n; i++) {
        const double m = ((double)a[i] + (double)b[i]) / 2, e = m - f[i];
        d += e * e;
        nf += (double)f[i] * f[i];
    }
    return nf > 0 ? sqrt(d / nf) : (d > 0 ? INFINITY : 0);
}

/* The three comparisons of A and B against F; returns the largest error. */
static double compare(const char *what, const run *a, const run *b, const run *f, int print) {
    const float la[1] = {a->loss}, lb[1] = {b->loss}, lf[1] = {f->loss};
    double e[3] = {err_half_sum(la, lb, lf, 1), err_half_sum(a->gw, b->gw, f->gw, f->nw),
                   err_half_sum(a->ga, b->ga, f->ga, f->na)};
    if (print)
        printf("dist_bn_check: %s: loss %.3g, weight gradient %.3g, alpha gradient %.3g (relative, 2 halves vs the "
               "whole batch)\n",
               what, e[0], e[1], e[2]);
    double m = e[0] > e[1] ? e[0] : e[1];
    return m > e[2] ? m : e[2];
}

int main(int argc, char **argv) {
    char err[512] = "";
    const int cpu = argc > 1 && !strcmp(argv[1], "--cpu");
    rt_backend *be = cpu ? rt_backend_cpu_new() : rt_backend_cuda_new(err, sizeof err);
    if (!be) {
        fprintf(stderr, "dist_bn_check: no CUDA backend (%s): skipped\n", err);
        return 77;
    }
    const char *dev = cpu ? "CPU" : "CUDA";
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    int bad = fe_compile_string("dist_bn_check.dartsc", space_src, strlen(space_src), &sp, &d);
    fe_diags_free(&d);
    if (bad) {
        fprintf(stderr, "dist_bn_check: the space does not compile\n");
        return 1;
    }
    float *x = malloc((size_t)2 * LB * 28 * 28 * 4);
    int32_t y[2 * LB];
    if (!x) return 1;
    for (int64_t i = 0; i < (int64_t)2 * LB * 28 * 28; i++) /* not centred, so that the statistics matter */
        x[i] = 0.5f + 2.0f * (rt_rng_uniform(7, (uint64_t)i) - 0.25f);
    for (int i = 0; i < 2 * LB; i++) y[i] = (int32_t)(rt_rng_uniform(8, (uint64_t)i) * 10) % 10;
    sim s = {0};
    rank_ctx rc[2];
    for (int r = 0; r < 2; r++) rc[r] = (rank_ctx){.s = &s, .rank = r, .sync = {.size = 2, .gather = sim_gather}};
    for (int r = 0; r < 2; r++) rc[r].sync.ctx = &rc[r];
    run f, h[2], plain[2];
    if (open_run(&f, &sp, be, 2 * LB, NULL) || open_run(&h[0], &sp, be, LB, &rc[0].sync) ||
        open_run(&h[1], &sp, be, LB, &rc[1].sync) || open_run(&plain[0], &sp, be, LB, NULL) ||
        open_run(&plain[1], &sp, be, LB, NULL))
        return 1;
    pass(&f, be, x, y, 2 * LB);
    /* the rounds: A then B, each answered with the other's last values */
    int rounds = 0, exchanges = 0;
    for (; rounds < MAX_EX + 2; rounds++) {
        s.changed = 0;
        for (int r = 0; r < 2; r++) {
            rc[r].k = 0;
            pass(&h[r], be, x + (size_t)r * LB * 28 * 28, y + r * LB, LB);
        }
        if (s.overflow) return 1;
        if (rc[0].k != rc[1].k) {
            fprintf(stderr, "dist_bn_check: the halves made %d and %d exchanges\n", rc[0].k, rc[1].k);
            return 1;
        }
        exchanges = rc[0].k;
        if (!s.changed && rounds > 0) break;
    }
    int fails = 0;
    if (exchanges == 0) {
        fprintf(stderr, "dist_bn_check: FAIL: the sync_bn plans made no exchange (the batch norms ignore bn_sync)\n");
        fails++;
    }
    if (s.changed) {
        fprintf(stderr, "dist_bn_check: FAIL: no fixed point after %d rounds: the exchanged values do not repeat\n", rounds);
        fails++;
    }
    printf("dist_bn_check: %d exchanges per pass, fixed point after %d rounds\n", exchanges, rounds);
    double e_sync = compare("sync_bn on", &h[0], &h[1], &f, 1);
    if (!(e_sync <= TOL)) {
        fprintf(stderr, "dist_bn_check: FAIL: sync_bn on %s: 2 simulated processes vs 1: %.3g > %g\n", dev, e_sync, TOL);
        fails++;
    }
    for (int r = 0; r < 2; r++) pass(&plain[r], be, x + (size_t)r * LB * 28 * 28, y + r * LB, LB);
    double e_plain = compare("per-process statistics", &plain[0], &plain[1], &f, 1);
    if (!(e_plain > 1e-3)) {
        fprintf(stderr, "dist_bn_check: FAIL: per-process statistics are within %.3g of the whole batch's: the check "
                        "cannot tell sync_bn from its absence\n", e_plain);
        fails++;
    }
    close_run(&f);
    for (int r = 0; r < 2; r++) {
        close_run(&h[r]);
        close_run(&plain[r]);
    }
    for (int q = 0; q < 2; q++)
        for (int k = 0; k < MAX_EX; k++) free(s.table[q][k]);
    free(s.out);
    free(x);
    be->destroy(be);
    printf("dist_bn_check: %s (sync_bn on %s: 2 simulated processes against one process)\n", fails ? "FAIL" : "PASS", dev);
    return fails ? 1 : 0;
}
