/* step.c — the plain DARTS search step as one unit (search.h's sr_darts_step): everything
 * one step issues, from fixed backend buffers and per-step scalars in backend memory, so
 * that the runtime can record it whole (rt_step_run) and replay it with one launch; the
 * search loop (search/cnn.c) and `dartsc bench` run their steps through it.
 *
 * The arithmetic is the per-pass loop's, operation for operation: the same passes in the
 * same order, Adam and SGD by the device-scalar hooks (the host-scalar ones' bits), the
 * second-order step's coefficients from backend memory (sr_unroll_set_eta). What moved is
 * where values are read: the losses go to backend memory during the step and the loop
 * reads them after it; the divergence checks that stood between the passes became guards
 * on the optimiser steps (a non-finite validation loss: no Adam and no SGD; a non-finite
 * training loss or weight gradient norm: no SGD), so a diverged step still never reaches
 * the parameters. The step is issued in three calls (put, launch, read) so that the loop
 * can prepare and upload the next batches between launching a step and reading its
 * results (search/cnn.c's prefetch). */
#include <math.h>
#include <string.h>

#include "runtime/runtime.h"
#include "search.h"

int sr_darts_step_init(sr_darts_step *d, rt_plan *p, int images, int labels, const ir_train_config *tc,
                       sr_unroll *u, float *sgd_buf, float *adam_m, float *adam_v) {
    memset(d, 0, sizeof *d);
    if (sr_step_init(&d->s, p, images, labels, 2)) return -1;
    d->u = u;
    d->sgd_buf = sgd_buf;
    d->adam_m = adam_m;
    d->adam_v = adam_v;
    d->tc = tc;
    d->order = tc->order;
    return 0;
}

void sr_darts_step_free(sr_darts_step *d) {
    if (d->s.p) sr_step_free(&d->s);
    memset(d, 0, sizeof *d);
}

/* Everything one step issues (rt_step_fn): reads only backend memory, reads nothing back. */
static int darts_issue(void *ctx) {
    sr_darts_step *d = ctx;
    sr_step *s = &d->s;
    rt_plan *p = s->p;
    rt_backend *be = rt_plan_backend(p);
    const ir_train_config *tc = d->tc;
    rt_group ga = rt_plan_group(p, IR_ROLE_ARCH);
    /* the alpha gradient on the validation batch; its loss and count to res */
    if (d->order == 2) {
        if (sr_arch_grad_second_order_dev(p, d->u, s->images, s->labels, s->x[0], s->y[0], s->x[1], s->y[1],
                                          d->momentum ? d->sgd_buf : NULL, 0, s->res + SR_RES_VAL,
                                          s->res + SR_RES_VAL_CORRECT))
            return -1;
    } else {
        sr_step_use_batch(s, 1);
        if (rt_pass(p, 1, RT_GRAD_ARCH)) return -1;
        sr_step_keep_loss(s, SR_RES_VAL);
    }
    if (d->w01 != 0.0f) { /* FairDARTS: + w01 dL01/dalpha, where the per-pass loop adds it */
        if (!be->zero_one_grad) return -1;
        be->zero_one_grad(be, ga.grad, ga.data, ga.n, d->w01);
    }
    be->adam_step_dev(be, ga.data, d->adam_m, d->adam_v, ga.grad, ga.n, s->sc + 1, tc->a_beta1, tc->a_beta2,
                      SR_ADAM_EPS, tc->a_wd, s->res + SR_RES_VAL, 1);
    /* the weight step on the training batch; its loss and count to res, the gradient norm too */
    sr_step_use_batch(s, 0);
    if (rt_pass(p, 1, RT_GRAD_W)) return -1;
    sr_step_keep_loss(s, SR_RES_TRAIN);
    sr_step_weights(s, d->sgd_buf, tc, 2);
    return 0;
}

void sr_darts_step_put(sr_darts_step *d, const float *xt, const int32_t *yt, const float *xv, const int32_t *yv) {
    sr_step_put(&d->s, 0, xt, yt);
    sr_step_put(&d->s, 1, xv, yv);
}

int sr_darts_step_launch(sr_darts_step *d, float lr, int adam_t, int momentum_live) {
    sr_step *s = &d->s;
    const ir_train_config *tc = d->tc;
    float sc[SR_STEP_SC] = {lr, 0.f, 0.f, 0.f};
    rt_adam_scalars(tc->a_lr, tc->a_beta1, tc->a_beta2, adam_t, sc + 1);
    sr_step_put_scalars(s, sc);
    if (d->order == 2) sr_unroll_set_eta(d->u, s->p, lr, tc->w_momentum, tc->w_wd);
    d->momentum = momentum_live != 0;
    /* one recording per order and momentum (the first step has no momentum term) */
    return rt_step_run(s->p, d->order * 2 + d->momentum, darts_issue, d);
}

void sr_darts_step_read(sr_darts_step *d, float out[4], double *gnorm) {
    float r[SR_STEP_RES];
    sr_step_read(&d->s, r);
    out[0] = r[SR_RES_VAL];
    out[1] = r[SR_RES_TRAIN];
    out[2] = r[SR_RES_VAL_CORRECT];
    out[3] = r[SR_RES_TRAIN_CORRECT];
    *gnorm = r[SR_RES_GNORM];
}

int sr_darts_step_run(sr_darts_step *d, const float *xt, const int32_t *yt, const float *xv, const int32_t *yv,
                      float lr, int adam_t, int momentum_live, float out[4], double *gnorm) {
    sr_darts_step_put(d, xt, yt, xv, yv);
    if (sr_darts_step_launch(d, lr, adam_t, momentum_live)) return -1;
    sr_darts_step_read(d, out, gnorm);
    return 0;
}
