/* dist_step.c — search steps of a space's supernet as a data-parallel job (runtime/dist.h),
 * for tests/test_dist.c and bench/dist.sh. Run alone or under mpirun:
 *
 *   dist_step SPACE OUT.dtns [--order 1|2] [--steps K]
 *   dist_step SPACE OUT.dtns --due SECONDS
 *
 * Every process takes its part of each global batch (the space's search batch) from one
 * loader over the first `subset` training images, as the search does. Step 0's losses and
 * gradients (α: first or second order, the latter with its extra passes; weights: the
 * weight pass) summed over the processes are written by rank 0 to OUT.dtns ("loss/val",
 * "loss/train", "grad/arch", "grad/weights"); then K steps with the search's updates (Adam
 * on α, SGD on the weights) are timed, and rank 0 prints one JSON line: ranks, steps,
 * wall seconds per step, seconds per step inside collectives (communication and waiting)
 * and rank 0's CPU seconds per step (its compute plus the collectives' polling).
 *
 * A recurrent (kind rnn) space: the same on its language model: the global batch's columns
 * split across the processes, step 0's α gradient (first or second order, search/rnn.h)
 * and clipped weight gradient of the training window (train/rnn.h), then K steps.
 *
 * --due: 60 steps of sr_checkpoint_due with a time interval, the processes' clocks skewed
 * by a different sleep on each rank (rank r sleeps r * 3 ms a step); after every step the
 * processes compare how many checkpoints they decided. Exit 0 when they always agree (the
 * loops then write every checkpoint at the same step on every process), 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/fe.h"
#include "ir/space.h"
#include "runtime/dist.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "search/rnn.h"
#include "search/search.h"
#include "train/common.h"
#include "train/rnn.h"

static double cpu_s(void) { /* this process's CPU time: robust to other load on the machine */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *msg) {
    fprintf(stderr, "dist_step: rank %d: %s\n", rt_dist_rank(), msg);
    rt_dist_abort(1);
    return 1;
}

static int write_step0(const char *path, float vloss, float tloss, const float *gah, int64_t na, const float *gwh,
                       int64_t nw) {
    char err[512];
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    if (!w) return fail(err);
    rt_tf_write(w, "loss/val", RT_TF_F32, 1, (int64_t[]){1}, &vloss);
    rt_tf_write(w, "loss/train", RT_TF_F32, 1, (int64_t[]){1}, &tloss);
    rt_tf_write(w, "grad/arch", RT_TF_F32, 1, (int64_t[]){na}, gah);
    rt_tf_write(w, "grad/weights", RT_TF_F32, 1, (int64_t[]){nw}, gwh);
    if (rt_tf_close_write(w, err, sizeof err)) return fail(err);
    return 0;
}

static void print_timing(int order, int batch, int steps, double t0, double comm0, double c0) {
    if (steps > 0 && rt_dist_rank() == 0)
        printf("{\"ranks\":%d,\"order\":%d,\"batch\":%d,\"steps\":%d,\"step_s\":%.5f,\"comm_s_per_step\":%.5f,"
               "\"rank0_cpu_s_per_step\":%.5f}\n",
               rt_dist_size(), order, batch, steps, (sr_now() - t0) / steps, (rt_dist_comm_seconds() - comm0) / steps,
               (cpu_s() - c0) / steps);
}

/* The recurrent search's steps (sr_lm: its columns of every window, its hidden states). */
static int rnn_steps(const ir_space *sp, const char *out, int steps) {
    char err[1024], dir[1100];
    snprintf(dir, sizeof dir, "%s.d", out); /* the run's directory (sr_lm_open wants one; nothing is written) */
    sr_lm m;
    sr_rnn_arch ra = {0};
    if (sr_lm_open(&m, sp, &sp->search, NULL, "cpu", dir, "checkpoint.dtns", "metrics.jsonl", err, sizeof err) ||
        sr_rnn_arch_init(&ra, &m)) {
        sr_rnn_arch_free(&ra, &m);
        sr_lm_free(&m);
        return fail(err[0] ? err : "out of memory");
    }
    const ir_train_config *tc = m.tc;
    rt_group gw = rt_plan_group(m.p, IR_ROLE_WEIGHT), ga = rt_plan_group(m.p, IR_ROLE_ARCH);
    float *gwh = malloc((size_t)gw.n * 4), *gah = malloc((size_t)ga.n * 4);
    if (!gwh || !gah) return fail("out of memory");
    double t0 = 0, comm0 = 0, c0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) {
            t0 = sr_now();
            c0 = cpu_s();
            comm0 = rt_dist_comm_seconds();
        }
        m.step = s % m.n_tr;
        float lr = tc->w_lr, vloss = sr_rnn_arch_grad(&m, &ra, lr);
        if (s == 0) memcpy(gah, ga.grad, (size_t)ga.n * 4);
        m.be->adam_step(m.be, ga.data, m.adam_m, m.adam_v, ga.grad, ga.n, tc->a_lr, tc->a_beta1, tc->a_beta2, 1e-8f,
                        tc->a_wd, s + 1);
        float tloss = sr_lm_weight_grad(&m, NULL);
        if (s == 0) memcpy(gwh, gw.grad, (size_t)gw.n * 4);
        m.be->sgd_step(m.be, gw.data, m.sgd_buf, gw.grad, gw.n, lr, m.sgd_buf ? tc->w_momentum : 0.f, tc->w_wd);
        if (s == 0 && rt_dist_rank() == 0 && write_step0(out, vloss, tloss, gah, ga.n, gwh, gw.n)) return 1;
    }
    print_timing(tc->order, tc->batch, steps, t0, comm0, c0);
    free(gwh);
    free(gah);
    sr_rnn_arch_free(&ra, &m);
    sr_lm_free(&m);
    rt_dist_finalize();
    return 0;
}

int main(int argc, char **argv) {
    char err[1024];
    if (rt_dist_init(&argc, &argv, err, sizeof err)) return fail(err);
    if (argc < 3) return fail("usage: dist_step SPACE OUT.dtns [--order 1|2] [--steps K]");
    int order = 0, steps = 0; /* order 0: the space's (recurrent), 1 (convolutional) */
    double due_s = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--order")) order = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--due")) due_s = atof(argv[i + 1]);
        else return fail("unknown option");
    }
    if (due_s > 0) {
        double last = sr_now(), count = 0;
        for (int s = 0; s < 60; s++) {
            struct timespec ts = {0, 3000000L * rt_dist_rank()};
            nanosleep(&ts, NULL);
            count += sr_checkpoint_due(0, due_s, s + 1, &last);
            const double *all = rt_dist_allgather_f64(&count, 1);
            for (int r = 1; r < rt_dist_size(); r++)
                if (all[r] != all[0]) {
                    fprintf(stderr, "dist_step: step %d: rank 0 decided %g checkpoints, rank %d %g\n", s, all[0], r, all[r]);
                    rt_dist_abort(1);
                }
        }
        if (rt_dist_rank() == 0) printf("dist_step: %g checkpoints, at the same steps on every process\n", count);
        rt_dist_finalize();
        return 0;
    }
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    int bad = fe_compile_file(argv[1], &sp, &d);
    fe_diags_free(&d);
    if (bad) return fail("the space does not compile");
    if (sp.kind == IR_SPACE_RNN) {
        if (order) sp.search.order = order;
        return rnn_steps(&sp, argv[2], steps);
    }
    if (!order) order = 1;
    ir_train_config *tc = &sp.search;
    int lb = sr_dist_local_batch(tc->batch, err, sizeof err);
    if (lb < 0) return fail(err);
    rt_dataset full, part;
    if (sr_data_load(&sp, 1, &full, err, sizeof err)) return fail(err);
    int n = tc->subset > 0 && tc->subset < full.n ? tc->subset : full.n;
    rt_data_subset(&full, 0, n, &part);
    rt_loader_cfg cfg = sr_loader_cfg(&sp, tc, 1);
    sr_dist_shard(&cfg);
    cfg.seed = tc->seed * 2 + 1;
    rt_loader l;
    if (rt_loader_init(&l, &part, &cfg, err, sizeof err)) return fail(err);
    ir_net net;
    if (ir_space_build_supernet_ex(&sp, lb, &(ir_supernet_opts){.no_share = sr_no_share()}, &net)) return fail(net.error);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be,
                             &(rt_plan_opts){.seed = tc->seed, .grads = RT_GRAD_W | RT_GRAD_ARCH,
                                             .bn_sync = tc->sync_bn ? rt_dist_bn_sync() : NULL},
                             err, sizeof err);
    if (!p) return fail(err);
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT), ga = rt_plan_group(p, IR_ROLE_ARCH);
    size_t bi = (size_t)lb * sp.in_c * sp.in_h * sp.in_w * 4, bl = (size_t)lb * 4;
    float *xt = malloc(bi), *xv = malloc(bi), *gwh = malloc((size_t)gw.n * 4), *gah = malloc((size_t)ga.n * 4);
    int32_t *yt = malloc(bl), *yv = malloc(bl);
    float *sgd = calloc((size_t)gw.n, 4), *am = calloc((size_t)ga.n, 4), *av = calloc((size_t)ga.n, 4);
    sr_unroll u = {0};
    if (!xt || !xv || !gwh || !gah || !yt || !yv || !sgd || !am || !av || (order == 2 && sr_unroll_init(&u, p)))
        return fail("out of memory");
    double t0 = 0, comm0 = 0, c0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) { /* step 0 is the warm-up */
            t0 = sr_now();
            c0 = cpu_s();
            comm0 = rt_dist_comm_seconds();
        }
        float lr = tc->w_lr, vloss;
        sr_next_batch(&l, xt, yt);
        sr_next_batch(&l, xv, yv);
        if (order == 2) {
            if (sr_arch_grad_second_order(p, &u, net.images, net.labels, xt, yt, xv, yv, s ? sgd : NULL, lr,
                                          tc->w_momentum, tc->w_wd, 0, &vloss))
                return fail("second-order step failed");
        } else {
            rt_set_input(p, net.images, xv, bi);
            rt_set_input(p, net.labels, yv, bl);
            rt_pass(p, 1, RT_GRAD_ARCH);
            sr_dist_grads(p, RT_GRAD_ARCH);
            vloss = rt_loss(p);
            sr_dist_loss(&vloss, NULL);
        }
        if (s == 0) memcpy(gah, ga.grad, (size_t)ga.n * 4);
        be->adam_step(be, ga.data, am, av, ga.grad, ga.n, tc->a_lr, tc->a_beta1, tc->a_beta2, 1e-8f, tc->a_wd, s + 1);
        rt_set_input(p, net.images, xt, bi);
        rt_set_input(p, net.labels, yt, bl);
        rt_pass(p, 1, RT_GRAD_W);
        sr_dist_grads(p, RT_GRAD_W);
        float tloss = rt_loss(p);
        sr_dist_loss(&tloss, NULL);
        if (s == 0) memcpy(gwh, gw.grad, (size_t)gw.n * 4);
        sr_clip_weight_grads(p, tc->w_clip);
        be->sgd_step(be, gw.data, sgd, gw.grad, gw.n, lr, tc->w_momentum, tc->w_wd);
        if (s == 0 && rt_dist_rank() == 0 && write_step0(argv[2], vloss, tloss, gah, ga.n, gwh, gw.n)) return 1;
    }
    print_timing(order, tc->batch, steps, t0, comm0, c0);
    sr_unroll_free(&u, p);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    rt_loader_free(&l);
    rt_dataset_free(&full);
    free(xt), free(xv), free(gwh), free(gah), free(yt), free(yv), free(sgd), free(am), free(av);
    rt_dist_finalize();
    return 0;
}
