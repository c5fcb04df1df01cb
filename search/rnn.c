/* rnn.c — the DARTS search of a recurrent (kind rnn) space: the alpha steps and the
 * genotype files that a search adds to the language-model run of train/rnn.h.
 * Data-parallel (docs/SCALING.md): every backward's gradient, the second-order step's
 * extra passes included, is summed over the processes before it is used (clipped, scaled,
 * stepped), and the validation loss is the global batch's; rank 0 writes the files.
 *
 * As the reference rnn/train_search.py: weights on the training split, alpha on the
 * validation split (window i of training pairs with window i mod n of validation), the
 * alpha step first (first order, or second order with the clipped-SGD virtual step), then
 * the run's own weight step. At each epoch's end the genotype (k = keep, 1 for the PTB
 * cell) goes into the metrics line, genotype.json and normal.dot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genotype.h"
#include "rnn.h"
#include "search.h"
#include "train/common.h"
#include "train/rnn.h"

#define ADAM_EPS 1e-8f
#define HVP_R 0.01

typedef struct rnn_search {
    sr_lm m;
    const char *out_dir;
    sr_rnn_arch ra;    /* second order's buffers */
    float *alpha_host; /* (edges, ops) */
} rnn_search;

int sr_rnn_arch_init(sr_rnn_arch *ra, sr_lm *m) {
    memset(ra, 0, sizeof *ra);
    if (m->tc->order != 2) return 0;
    rt_group gw = rt_plan_group(m->p, IR_ROLE_WEIGHT), ga = rt_plan_group(m->p, IR_ROLE_ARCH);
    return (ra->w_backup = sr_lm_dev_zeros(m->be, gw.n)) && (ra->v = sr_lm_dev_zeros(m->be, gw.n)) &&
                   (ra->dalpha = sr_lm_dev_zeros(m->be, ga.n)) && (ra->gplus = sr_lm_dev_zeros(m->be, ga.n)) &&
                   (ra->eps = sr_lm_dev_zeros(m->be, 4))
               ? 0
               : -1;
}

void sr_rnn_arch_free(sr_rnn_arch *ra, sr_lm *m) {
    float *dv[] = {ra->w_backup, ra->v, ra->dalpha, ra->gplus, ra->eps};
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
        if (dv[i] && m->be) m->be->free(m->be, dv[i]);
    memset(ra, 0, sizeof *ra);
}

/* The reference's second-order step for the recurrent cell (architect.py): virtual
 * clipped-SGD step on the training window, dalpha and v at w' on the validation window
 * (v clipped as well), R = 0.01 / ||v||, dalpha - eta * clip * (g+ - g-) / (2R).
 * On return h_valid holds the validation window's final hidden state at w'. */
static float arch_grad_second_order(sr_rnn_arch *rs, sr_lm *m, int64_t tw, int64_t vw, float eta) {
    rt_backend *be = m->be;
    const ir_train_config *tc = m->tc;
    rt_group w = rt_plan_group(m->p, IR_ROLE_WEIGHT), a = rt_plan_group(m->p, IR_ROLE_ARCH);
    be->copy(be, rs->w_backup, w.data, w.n);
    sr_lm_set_window(m, &m->tr, tw, m->h_train);
    sr_lm_set_tar(m, 0); /* the reference's unrolled model differentiates the bare model loss */
    rt_forward(m->p, 1);
    rt_backward(m->p, RT_GRAD_W);
    sr_lm_sum_grads(m, RT_GRAD_W);
    float cc = sr_lm_clip(m, tc->w_clip);
    be->axpy(be, w.data, -eta, w.grad, w.n);
    be->axpy(be, w.data, -eta * tc->w_wd, rs->w_backup, w.n);
    if (m->sgd_buf && tc->w_momentum > 0) be->axpy(be, w.data, -eta * tc->w_momentum, m->sgd_buf, w.n);
    sr_lm_set_window(m, &m->va, vw, m->h_valid);
    float lv = rt_forward(m->p, 1);
    lv = sr_lm_last_ce(m);
    rt_read(m->p, m->net.hT, m->h_valid, sr_lm_hbytes(m));
    rt_backward(m->p, RT_GRAD_W | RT_GRAD_ARCH);
    sr_lm_sum_grads(m, RT_GRAD_W | RT_GRAD_ARCH);
    sr_lm_clip(m, tc->w_clip);
    be->copy(be, rs->dalpha, a.grad, a.n);
    be->copy(be, rs->v, w.grad, w.n);
    /* R = 0.01 / ||v|| and the final scale eta cc / 2R where v is (search/cnn.c's way: no
       host round trip for them) */
    const float etacc = eta * cc;
    be->upload(be, rs->eps + 3, &etacc, sizeof etacc);
    be->hvp_eps(be, rs->eps, rs->v, w.n, HVP_R, rs->eps + 3, 0);
    sr_lm_set_window(m, &m->tr, tw, m->h_train);
    be->copy(be, w.data, rs->w_backup, w.n);
    be->axpy_dev(be, w.data, rs->eps, rs->v, w.n);
    rt_forward(m->p, 1);
    rt_backward(m->p, RT_GRAD_ARCH);
    sr_lm_sum_grads(m, RT_GRAD_ARCH);
    be->copy(be, rs->gplus, a.grad, a.n);
    be->copy(be, w.data, rs->w_backup, w.n);
    be->axpy_dev(be, w.data, rs->eps + 1, rs->v, w.n);
    rt_forward(m->p, 1);
    rt_backward(m->p, RT_GRAD_ARCH);
    sr_lm_sum_grads(m, RT_GRAD_ARCH);
    be->copy(be, w.data, rs->w_backup, w.n);
    be->axpy(be, a.grad, -1.0f, rs->gplus, a.n);
    be->scale_dev(be, a.grad, rs->eps + 2, a.n); /* (eta cc) / (2R): the same float expression */
    be->axpy(be, a.grad, 1.0f, rs->dalpha, a.n);
    return lv;
}

/* Genotype from the current alpha. */
static void derive(sr_lm *m, ir_genotype *gt, float *alpha_host) {
    rt_read(m->p, m->net.alpha, alpha_host, (size_t)ir_cell_num_edges(&m->sp->normal) * m->sp->normal.n_ops * 4);
    sr_derive(&m->sp->normal, alpha_host, &gt->normal);
    gt->reduce = gt->normal;
}

float sr_rnn_arch_grad(sr_lm *m, sr_rnn_arch *ra, float lr) {
    const ir_train_config *tc = m->tc;
    int64_t vw = m->step % m->n_va;
    if (tc->order == 2) return arch_grad_second_order(ra, m, m->step, vw, lr);
    sr_lm_set_window(m, &m->va, vw, m->h_valid);
    sr_lm_set_tar(m, 0);
    rt_forward(m->p, 1);
    float val_loss = sr_lm_last_ce(m);
    rt_read(m->p, m->net.hT, m->h_valid, sr_lm_hbytes(m));
    rt_backward(m->p, RT_GRAD_ARCH);
    sr_lm_sum_grads(m, RT_GRAD_ARCH);
    return val_loss;
}

/* sr_lm_hooks.arch_step: alpha on validation window step mod n_va, then Adam. */
static float arch_step(sr_lm *m, float lr, void *ctx) {
    rnn_search *rs = ctx;
    const ir_train_config *tc = m->tc;
    rt_backend *be = m->be;
    rt_group ga = rt_plan_group(m->p, IR_ROLE_ARCH);
    float val_loss = sr_rnn_arch_grad(m, &rs->ra, lr);
    m->adam_t++;
    be->adam_step(be, ga.data, m->adam_m, m->adam_v, ga.grad, ga.n, tc->a_lr, tc->a_beta1, tc->a_beta2, ADAM_EPS,
                  tc->a_wd, m->adam_t);
    return val_loss;
}

/* sr_lm_hooks.epoch_end: the genotype into the metrics line, genotype.json and normal.dot. */
static int epoch_end(sr_lm *m, char *err, size_t errlen, void *ctx) {
    rnn_search *rs = ctx;
    ir_genotype gt;
    if (!sr_dist_writer()) return 0; /* data-parallel: rank 0 writes (every process holds the same alpha) */
    derive(m, &gt, rs->alpha_host);
    char *gj = sr_genotype_to_json(m->sp, &gt, NULL, NULL);
    fprintf(m->metrics, ", \"genotype\": %s", gj ? gj : "null");
    free(gj);
    char path[1100];
    snprintf(path, sizeof path, "%s/genotype.json", rs->out_dir);
    if (sr_genotype_write_json(m->sp, &gt, rs->alpha_host, NULL, path, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/normal.dot", rs->out_dir); /* the recurrent cell */
    FILE *df = fopen(path, "w");
    if (df) {
        sr_genotype_dot(&m->sp->normal, &gt.normal, "recurrent", df);
        fclose(df);
    }
    return 0;
}

int sr_rnn_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    if (o->strategy != SR_DARTS) return sr_fail(err, errlen, "recurrent spaces support the darts strategy only");
    double t0 = sr_now();
    rnn_search rs;
    memset(&rs, 0, sizeof rs);
    rs.out_dir = o->out_dir;
    sr_lm *m = &rs.m;
    int rc = sr_lm_open(m, sp, &sp->search, NULL, o->device, o->out_dir, "checkpoint.dtns", "metrics.jsonl", err, errlen);
    if (rc == 0) {
        rs.alpha_host = malloc((size_t)ir_cell_num_edges(&sp->normal) * sp->normal.n_ops * 4);
        if (!rs.alpha_host || sr_rnn_arch_init(&rs.ra, m)) rc = sr_fail(err, errlen, "out of memory");
    }
    if (rc == 0 && o->space_src && !o->resume) {
        char path[1100];
        snprintf(path, sizeof path, "%s/space.dartsc", o->out_dir);
        rc = sr_dist_root_rc(sr_dist_writer() ? sr_write_file_atomic(path, o->space_src, o->space_src_len, err, errlen) : 0,
                             err, errlen);
    }
    double vl = NAN;
    m->ckpt_steps = o->checkpoint_steps; /* periodic checkpoints as the convolutional search's */
    m->ckpt_seconds = o->checkpoint_seconds;
    sr_lm_hooks hooks = {.arch_step = arch_step, .epoch_end = epoch_end, .ctx = &rs};
    if (rc == 0)
        rc = sr_lm_loop(m, &hooks, o->resume, o->stop, o->stop_after_steps, o->progress != NULL, &vl, err, errlen);
    if (rc >= 0) {
        derive(m, &res->genotype, rs.alpha_host);
        res->stopped = rc == 1;
        res->steps = m->global_step;
        res->val_acc = exp(vl); /* recurrent: validation perplexity */
        rc = 0;
    }
    res->seconds = sr_now() - t0;
    sr_rnn_arch_free(&rs.ra, m);
    free(rs.alpha_host);
    sr_lm_free(m);
    return rc;
}
