/* cnn.c — the DARTS search loop over a convolutional space's supernet (see search.h): data split and loaders, the alpha
 * and weight steps of every strategy, the second-order step, metrics, checkpoints and
 * resume. Everything runs through the backend interface, so the same loop drives the
 * CPU and CUDA backends; nothing is allocated inside a step. */
#include "search.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "genotype.h"
#include "proxyless.h"
#include "successors.h"
#include "runtime/data.h"
#include "runtime/dist.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "train/checkpoint.h"
#include "train/common.h"

#define CKPT_VERSION 1
#define ADAM_EPS 1e-8f
#define HVP_R 0.01

sr_options sr_options_default(void) {
    sr_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = "runs/search";
    o.device = "auto";
    o.strategy = SR_DARTS;
    o.checkpoint_seconds = SR_CHECKPOINT_SECONDS_DEFAULT;
    return o;
}


/* ---- the second-order step ------------------------------------------------------------ */

int sr_unroll_init(sr_unroll *u, rt_plan *p) {
    rt_backend *be = rt_plan_backend(p);
    rt_group w = rt_plan_group(p, IR_ROLE_WEIGHT), a = rt_plan_group(p, IR_ROLE_ARCH);
    u->nw = w.n;
    u->na = a.n;
    u->w_backup = be->alloc(be, (size_t)w.n * 4);
    u->v = be->alloc(be, (size_t)w.n * 4);
    u->dalpha = be->alloc(be, (size_t)a.n * 4);
    u->gplus = be->alloc(be, (size_t)a.n * 4);
    u->eps = be->alloc(be, SR_UNROLL_SCALARS * sizeof(float));
    if (u->eps) be->memset0(be, u->eps, SR_UNROLL_SCALARS * sizeof(float));
    return u->w_backup && u->v && u->dalpha && u->gplus && u->eps ? 0 : -1;
}

void sr_unroll_free(sr_unroll *u, rt_plan *p) {
    rt_backend *be = rt_plan_backend(p);
    float *bufs[5] = {u->w_backup, u->v, u->dalpha, u->gplus, u->eps};
    for (int i = 0; i < 5; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    memset(u, 0, sizeof *u);
}

void sr_unroll_set_eta(sr_unroll *u, rt_plan *p, float eta, float momentum, float wd) {
    rt_backend *be = rt_plan_backend(p);
    /* the virtual step's coefficients, the float products the host-scalar axpys took */
    const float c[4] = {-eta * (1.0f + 0.0f), -eta * wd, -eta * momentum, eta};
    be->upload(be, u->eps + 3, c, sizeof c);
}

static size_t input_bytes(rt_plan *p, int node) {
    return (size_t)ir_node_numel(ir_graph_node(rt_plan_graph(p), node)) * 4;
}

/* The plan's images and labels from a batch: host memory (an upload), or backend memory
 * (dev: a copy on the backend, for a recorded step). */
static void put_batch(rt_plan *p, int images, int labels, const void *x, const void *y, int dev) {
    size_t bi = input_bytes(p, images), bl = input_bytes(p, labels);
    if (dev) {
        rt_set_input_dev(p, images, x, bi);
        rt_set_input_dev(p, labels, y, bl);
    } else {
        rt_set_input(p, images, x, bi);
        rt_set_input(p, labels, y, bl);
    }
}

/* The second-order step with eta's coefficients in u->eps + 3 (sr_unroll_set_eta): the
 * batches from host or backend memory (dev); the validation loss to *val_loss (host: a
 * synchronisation) or to loss_dev / correct_dev (backend memory). */
static int second_order(rt_plan *p, sr_unroll *u, int images, int labels, const void *xt, const void *yt,
                        const void *xv, const void *yv, int dev, const float *buf, int bug_mul_r, float *val_loss,
                        float *loss_dev, float *correct_dev) {
    rt_backend *be = rt_plan_backend(p);
    rt_group w = rt_plan_group(p, IR_ROLE_WEIGHT), a = rt_plan_group(p, IR_ROLE_ARCH);
    /* 1. virtual step on the training batch: w' = w - eta (momentum buf + g + wd w) */
    be->copy(be, u->w_backup, w.data, w.n);
    put_batch(p, images, labels, xt, yt, dev);
    if (rt_pass(p, 1, RT_GRAD_W)) return -1;
    sr_dist_grads(p, RT_GRAD_W);
    be->axpy_dev(be, w.data, u->eps + 3, w.grad, w.n);
    be->axpy_dev(be, w.data, u->eps + 4, u->w_backup, w.n);
    if (buf) be->axpy_dev(be, w.data, u->eps + 5, buf, w.n);
    /* 2. at w': dalpha and v on the validation batch */
    put_batch(p, images, labels, xv, yv, dev);
    if (rt_pass(p, 1, RT_GRAD_W | RT_GRAD_ARCH)) return -1;
    sr_dist_grads(p, RT_GRAD_W | RT_GRAD_ARCH);
    if (val_loss) {
        *val_loss = rt_loss(p);
        sr_dist_loss(val_loss, NULL);
    }
    if (loss_dev) rt_loss_to(p, loss_dev, correct_dev);
    be->copy(be, u->dalpha, a.grad, a.n);
    be->copy(be, u->v, w.grad, w.n);
    /* 3. central difference of grad_alpha L_train at w +- R v, R = 0.01 / ||v||, computed
          where v is (the device: no host round trip inside the step) */
    be->hvp_eps(be, u->eps, u->v, w.n, HVP_R, u->eps + 6, bug_mul_r);
    put_batch(p, images, labels, xt, yt, dev);
    be->copy(be, w.data, u->w_backup, w.n);
    be->axpy_dev(be, w.data, u->eps, u->v, w.n);
    if (rt_pass(p, 1, RT_GRAD_ARCH)) return -1;
    sr_dist_grads(p, RT_GRAD_ARCH);
    be->copy(be, u->gplus, a.grad, a.n);
    be->copy(be, w.data, u->w_backup, w.n);
    be->axpy_dev(be, w.data, u->eps + 1, u->v, w.n);
    if (rt_pass(p, 1, RT_GRAD_ARCH)) return -1; /* a.grad = g- */
    sr_dist_grads(p, RT_GRAD_ARCH);
    be->copy(be, w.data, u->w_backup, w.n);      /* restore w exactly */
    /* 4. grad alpha = dalpha - eta (g+ - g-) / (2R) */
    be->axpy(be, a.grad, -1.0f, u->gplus, a.n);    /* g- - g+ */
    be->scale_dev(be, a.grad, u->eps + 2, a.n);    /* -eta (g+ - g-) / 2R */
    be->axpy(be, a.grad, 1.0f, u->dalpha, a.n);
    return 0;
}

int sr_arch_grad_second_order(rt_plan *p, sr_unroll *u, int images, int labels, const float *xt, const int32_t *yt,
                              const float *xv, const int32_t *yv, const float *buf, float eta, float momentum,
                              float wd, int bug_mul_r, float *val_loss) {
    sr_unroll_set_eta(u, p, eta, momentum, wd);
    return second_order(p, u, images, labels, xt, yt, xv, yv, 0, buf, bug_mul_r, val_loss, NULL, NULL);
}

int sr_arch_grad_second_order_dev(rt_plan *p, sr_unroll *u, int images, int labels, const float *xt,
                                  const int32_t *yt, const float *xv, const int32_t *yv, const float *buf,
                                  int bug_mul_r, float *loss_dev, float *correct_dev) {
    return second_order(p, u, images, labels, xt, yt, xv, yv, 1, buf, bug_mul_r, NULL, loss_dev, correct_dev);
}

/* ---- run state ------------------------------------------------------------------------------ */

typedef struct run {
    const ir_space *sp;
    const sr_options *o;
    const sr_arch_hooks *h; /* NULL, or the strategy's own architecture step (ENAS) */
    rt_backend *be;
    ir_net net;
    rt_plan *p;
    rt_dataset full, wpart, apart;
    rt_loader lw, la;
    float *xt, *xv;       /* host batches */
    float *rot;           /* --pretext rotation: one image */
    int lbatch;           /* this process's part of a batch (data-parallel runs; else the batch) */
    int32_t *yt, *yv;
    float *sgd_buf, *adam_m, *adam_v;
    float *eval_dev;      /* evaluate_split's per-batch loss and count (backend memory, 2 floats a batch) */
    int64_t eval_cap;     /* its batches */
    sr_unroll u;
    int64_t nw, na, nb;
    int adam_t;
    int epoch;            /* current epoch */
    int64_t step;         /* step within the epoch */
    int64_t global_step;
    int64_t steps_per_epoch;
    char path_ckpt[4096], path_metrics[4096], path_alpha[4096];
    /* DARTS+: the previous epoch's alpha (backend memory) and {stable epochs, stopped, stop
       epoch, reason, its value}, both in the checkpoint */
    float *prev_alpha;
    int64_t dplus[5];
    int64_t succ[6]; /* the successors' settings in the checkpoint (succ_settings) */
    sr_px *px;       /* ProxylessNAS: the step plans' state (search/proxyless.c) */
    sr_darts_step ds; /* the plain DARTS step, issued whole (search/step.c); ds.s.p NULL: per pass */
    /* prefetch (sr_prefetch_on): the next step's batches drawn and put while this step
       computes; ahead: they are in ds's buffers, and at[] holds both loaders' positions
       before them (what a checkpoint saves: the batches consumed, not the one drawn ahead) */
    int prefetch, ahead;
    int64_t at[4];
    sr_host_timing ht; /* the host's time between whole steps (DARTSC_HOST_TIMING) */
    int64_t pxs[1];  /* ProxylessNAS: latency_weight's bits, in the checkpoint */
} run;



static int load_data(run *r, char *err, size_t errlen) {
    const ir_space *sp = r->sp;
    if (sr_data_load(sp, 1, &r->full, err, errlen)) return -1;
    int n = r->full.n;
    if (sp->search.subset > 0 && sp->search.subset < n) n = sp->search.subset;
    int batch = sp->search.batch;
    if (sr_succ_is_bilevel(r->o->strategy) || r->h) {
        int nw = (int)floor((double)n * sp->search.train_portion);
        if (nw < batch || n - nw < batch)
            return sr_fail(err, errlen, "the %d training images split %d/%d cannot fill batches of %d", n, nw, n - nw, batch);
        rt_data_subset(&r->full, 0, nw, &r->wpart);
        rt_data_subset(&r->full, nw, n - nw, &r->apart);
    } else {
        if (n < batch) return sr_fail(err, errlen, "%d training images cannot fill a batch of %d", n, batch);
        rt_data_subset(&r->full, 0, n, &r->wpart);
        rt_data_subset(&r->full, 0, n, &r->apart);
    }
    /* both halves get the training augmentation, as in the reference; no cutout in search */
    ir_train_config tc = sp->search;
    tc.cutout = 0;
    rt_loader_cfg cfg = sr_loader_cfg(sp, &tc, 1);
    sr_dist_shard(&cfg); /* data-parallel: this process's part of each batch */
    cfg.seed = sp->search.seed * 2 + 1;
    if (rt_loader_init(&r->lw, &r->wpart, &cfg, err, errlen)) return -1;
    cfg.seed = sp->search.seed * 2 + 2;
    if (rt_loader_init(&r->la, &r->apart, &cfg, err, errlen)) return -1;
    r->steps_per_epoch = rt_loader_batches_per_epoch(&r->lw);
    return 0;
}



/* ---- checkpoints ------------------------------------------------------------------------------ */





/* The checkpoint's table (train/checkpoint.h): meta {version, param hash, epoch, step,
 * global step, Adam t, plan step, both loaders' positions, metrics bytes (-1: see
 * meta/log_lines)}, alpha.jsonl's bytes, then the parameter groups and the optimisers'
 * state, then (optional: older checkpoints lack them) the settings and metrics.jsonl's
 * lines. */
enum { META_N = 12, CKPT_N = 11, CKPT_MAX = CKPT_N + SR_ARCH_HOOK_CKPT_MAX + 3, SUCC_N = 6 };
static void ckpt_table(run *r, int64_t *meta, int64_t *alpha_bytes, int64_t *settings, int64_t *log_lines,
                       int64_t *dist, sr_ckpt_entry *e) {
    rt_group gw = rt_plan_group(r->p, IR_ROLE_WEIGHT), ga = rt_plan_group(r->p, IR_ROLE_ARCH),
             gb = rt_plan_group(r->p, IR_ROLE_BUFFER);
    sr_ckpt_entry t[CKPT_N] = {
        {SR_CKPT_I64, "meta/state", meta, META_N, 0},
        {SR_CKPT_I64, "meta/alpha_bytes", alpha_bytes, 1, 0},
        {SR_CKPT_DEV, "group/weights", gw.data, gw.n, 0},
        {SR_CKPT_DEV, "group/arch", ga.data, ga.n, 0},
        {SR_CKPT_DEV, "group/buffers", gb.data, gb.n, 0},
        {SR_CKPT_DEV, "opt/sgd_momentum", r->sgd_buf, gw.n, 0},
        {SR_CKPT_DEV, "opt/adam_m", r->adam_m, ga.n, 0},
        {SR_CKPT_DEV, "opt/adam_v", r->adam_v, ga.n, 0},
        {SR_CKPT_I64, "meta/settings", settings, SR_SETTINGS_N, 1},
        {SR_CKPT_I64, "meta/log_lines", log_lines, 1, 1},
        {SR_CKPT_I64, "meta/dist", dist, 2, 1}};
    memcpy(e, t, sizeof t);
    for (int i = 0; r->h && i < r->h->n_ckpt; i++) e[CKPT_N + i] = r->h->ckpt[i];
}

static int ckpt_n(const run *r) { return CKPT_N + (r->h ? r->h->n_ckpt : 0); }

/* The successors' settings that decide the result and that the shared settings record
 * (train/checkpoint.h) has no room for: a resume must keep them too. */
static const char *const succ_names[SUCC_N] = {"lr_power", "stop_skips", "stop_stable", "warmup", "skip_dropout",
                                               "max_skip"};
static void succ_settings(const run *r, int64_t *v) {
    const ir_train_config *tc = &r->sp->search;
    double lp = tc->lr_power, sd = r->o->supernet ? r->o->supernet->skip_dropout : 0;
    memcpy(&v[0], &lp, 8);
    v[1] = tc->stop_skips;
    v[2] = tc->stop_stable;
    v[3] = tc->warmup;
    memcpy(&v[4], &sd, 8);
    v[5] = tc->max_skip;
}

static int px_settings(const run *r) {
    double lw = r->sp->search.latency_weight;
    int64_t v;
    memcpy(&v, &lw, 8);
    return v == r->pxs[0];
}

static int check_succ_settings(const run *r, char *err, size_t errlen) {
    if (r->o->strategy == SR_PROXYLESS) {
        double a;
        memcpy(&a, &r->pxs[0], 8);
        if (px_settings(r)) return 0;
        return sr_fail(err, errlen, "cannot resume: %s was written with other settings: latency_weight %g (now %g); these "
                       "change the result, so resume with the checkpoint's settings or start a new run in another --out",
                       r->path_ckpt, a, (double)r->sp->search.latency_weight);
    }
    int64_t now[SUCC_N];
    succ_settings(r, now);
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < SUCC_N; i++) {
        if (now[i] == r->succ[i]) continue;
        double a, b;
        memcpy(&a, &r->succ[i], 8);
        memcpy(&b, &now[i], 8);
        int w = i == 0 || i == 4 ? snprintf(list + used, sizeof list - used, "%s%s %g (now %g)", used ? ", " : "", succ_names[i], a, b)
                                 : snprintf(list + used, sizeof list - used, "%s%s %lld (now %lld)", used ? ", " : "",
                                            succ_names[i], (long long)r->succ[i], (long long)now[i]);
        if (w > 0 && (size_t)w < sizeof list - used) used += (size_t)w;
    }
    if (!used) return 0;
    return sr_fail(err, errlen, "cannot resume: %s was written with other settings: %s; these change the result, so resume "
                   "with the checkpoint's settings or start a new run in another --out", r->path_ckpt, list);
}

/* The successors add their settings, and DARTS+ its state, to the table (other strategies'
 * checkpoints stay as they were). */
static int ckpt_extra(run *r, sr_ckpt_entry *e) {
    sr_strategy st = r->o->strategy;
    if (st == SR_PROXYLESS) {
        e[CKPT_N] = (sr_ckpt_entry){SR_CKPT_I64, "proxyless/settings", r->pxs, 1, 0};
        return CKPT_N + 1;
    }
    if (st != SR_PDARTS && st != SR_DARTS_PLUS && st != SR_SHARP_DARTS) return CKPT_N;
    int n = CKPT_N;
    e[n++] = (sr_ckpt_entry){SR_CKPT_I64, "succ/settings", r->succ, SUCC_N, 0};
    if (st != SR_DARTS_PLUS) return n;
    e[n++] = (sr_ckpt_entry){SR_CKPT_I64, "dplus/state", r->dplus, 5, 0};
    e[n++] = (sr_ckpt_entry){SR_CKPT_DEV, "dplus/prev_alpha", r->prev_alpha, r->na, 0};
    return n;
}

/* The entries of the checkpoint: a hooked strategy's (ENAS's controller) or the successors' after the
 * common ones. */
static int ckpt_count(run *r, sr_ckpt_entry *e) { return r->h ? ckpt_n(r) : ckpt_extra(r, e); }

/* Written by rank 0 alone (data-parallel runs: every process holds the same parameters,
 * and a hooked strategy's state: ENAS's controller is the same on every rank). */
static int save_checkpoint(run *r, char *err, size_t errlen) {
    if (!sr_dist_writer()) return sr_dist_root_rc(0, err, errlen);
    int64_t le, lp, ae, ap;
    rt_loader_state(&r->lw, &le, &lp);
    rt_loader_state(&r->la, &ae, &ap);
    if (r->ahead) { /* the batches drawn ahead are the next step's: a resume draws them again */
        le = r->at[0];
        lp = r->at[1];
        ae = r->at[2];
        ap = r->at[3];
    }
    int64_t meta[META_N] = {CKPT_VERSION, (int64_t)sr_param_hash(r->net.graph), r->epoch, r->step, r->global_step,
                            r->adam_t, (int64_t)rt_plan_step(r->p), le, lp, ae, ap, -1};
    int64_t alpha_bytes = sr_file_size(r->path_alpha), settings[SR_SETTINGS_N], lines = sr_log_lines(r->path_metrics);
    int64_t dist[2] = {rt_dist_size(), r->sp->search.sync_bn};
    sr_ckpt_settings(&r->sp->search, (int)r->o->strategy, 0, 0, settings);
    succ_settings(r, r->succ);
    double lw = r->sp->search.latency_weight;
    memcpy(&r->pxs[0], &lw, 8);
    sr_ckpt_entry e[CKPT_MAX];
    ckpt_table(r, meta, &alpha_bytes, settings, &lines, dist, e);
    return sr_dist_root_rc(sr_ckpt_save(r->path_ckpt, r->be, e, ckpt_count(r, e), err, errlen), err, errlen);
}

/* Rank 0 reads, checks and restores the checkpoint; the other processes of a data-parallel
 * run then receive its entries (sr_ckpt_bcast) and take the same counters. */
static int read_checkpoint(run *r, sr_ckpt_entry *e, int ne, int64_t *meta, const int64_t *settings,
                           const int64_t *lines, const int64_t *alpha_bytes, const int64_t *dist, char *err,
                           size_t errlen);
static int load_checkpoint(run *r, char *err, size_t errlen) {
    int64_t meta[META_N] = {0}, alpha_bytes = 0, settings[SR_SETTINGS_N] = {0}, lines = 0, dist[2] = {0, 0};
    sr_ckpt_entry e[CKPT_MAX];
    ckpt_table(r, meta, &alpha_bytes, settings, &lines, dist, e);
    int ne = ckpt_count(r, e);
    int rc = sr_dist_writer() ? read_checkpoint(r, e, ne, meta, settings, &lines, &alpha_bytes, dist, err, errlen) : 0;
    if (sr_dist_root_rc(rc, err, errlen)) return -1;
    sr_ckpt_bcast(r->be, e, ne);
    if (r->h && r->h->restored) r->h->restored(r->h->ctx); /* every rank, after the broadcast */
    if (rt_loader_seek(&r->lw, meta[7], meta[8]) || rt_loader_seek(&r->la, meta[9], meta[10]))
        return sr_fail(err, errlen, "%s: data loader positions out of range (the data changed?)", r->path_ckpt);
    r->epoch = (int)meta[2];
    r->step = meta[3];
    r->global_step = meta[4];
    r->adam_t = (int)meta[5];
    rt_plan_set_step(r->p, (uint64_t)meta[6]);
    return 0;
}

static int read_checkpoint(run *r, sr_ckpt_entry *e, int ne, int64_t *meta, const int64_t *settings,
                           const int64_t *lines_p, const int64_t *alpha_bytes_p, const int64_t *dist, char *err,
                           size_t errlen) {
    int64_t now[SR_SETTINGS_N];
    rt_tf_file *f = sr_ckpt_read(r->path_ckpt, e, ne, CKPT_VERSION, r->net.graph, err, errlen);
    if (!f) return -1;
    int rc = -1;
    int64_t lines = *lines_p, alpha_bytes = *alpha_bytes_p;
    sr_ckpt_settings(&r->sp->search, (int)r->o->strategy, 0, 0, now);
    if (sr_ckpt_check_settings(r->path_ckpt, settings, now, err, errlen) ||
        sr_ckpt_check_dist(r->path_ckpt, dist, r->sp->search.sync_bn, err, errlen) ||
        (!r->h && ne > CKPT_N && check_succ_settings(r, err, errlen)))
        goto out;
    if (meta[2] < 0 || meta[2] > r->sp->search.epochs || meta[3] < 0 || meta[3] > r->steps_per_epoch) {
        sr_fail(err, errlen, "%s: epoch %lld step %lld do not fit this search (%d epochs of %lld steps)", r->path_ckpt,
             (long long)meta[2], (long long)meta[3], r->sp->search.epochs, (long long)r->steps_per_epoch);
        goto out;
    }
    if (rt_loader_seek(&r->lw, meta[7], meta[8]) || rt_loader_seek(&r->la, meta[9], meta[10])) {
        sr_fail(err, errlen, "%s: data loader positions out of range (the data changed?)", r->path_ckpt);
        goto out;
    }
    if ((meta[11] >= 0 ? sr_ckpt_truncate_log(r->path_metrics, meta[11], err, errlen)
                       : sr_ckpt_truncate_log_lines(r->path_metrics, lines, err, errlen)) ||
        sr_ckpt_truncate_log(r->path_alpha, alpha_bytes, err, errlen))
        goto out;
    sr_ckpt_restore(f, r->be, e, ne);
    f = NULL;
    rc = 0;
out:
    rt_tf_free(f);
    return rc;
}

/* ---- logging ---------------------------------------------------------------------------------- */

static void append_line(const char *path, const char *line) {
    if (!sr_dist_writer()) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fputs(line, f);
    fclose(f);
}

static void softmax_rows_json(FILE *f, const float *a, int rows, int cols) {
    fputc('[', f);
    for (int r = 0; r < rows; r++) {
        double m = a[r * cols], s = 0;
        for (int c = 1; c < cols; c++) m = fmax(m, a[r * cols + c]);
        for (int c = 0; c < cols; c++) s += exp(a[r * cols + c] - m);
        fprintf(f, "%s[", r ? "," : "");
        for (int c = 0; c < cols; c++) fprintf(f, "%s%.6g", c ? "," : "", exp(a[r * cols + c] - m) / s);
        fputc(']', f);
    }
    fputc(']', f);
}

/* Both alphas on the host in the space's layout (edges, n_ops); a P-DARTS stage's pruned
 * candidates read SR_ALPHA_PRUNED. Returns the one allocation to free, which starts with the
 * arch group in the plan's own layout (a stage's (edges, n_cols)). */
int sr_no_share(void) {
    const char *v = getenv("DARTSC_NO_SHARE");
    return v && v[0] == '1' && !v[1];
}

static float *alphas_host(run *r, float **an, float **ar) {
    rt_group ga = rt_plan_group(r->p, IR_ROLE_ARCH);
    const ir_cell *cells[2] = {&r->sp->normal, &r->sp->reduce};
    int64_t full = (int64_t)ir_cell_num_edges(cells[0]) * cells[0]->n_ops + (int64_t)ir_cell_num_edges(cells[1]) * cells[1]->n_ops;
    float *h = malloc((size_t)(ga.n + full) * 4);
    if (!h) return NULL;
    r->be->download(r->be, h, ga.data, (size_t)ga.n * 4);
    float *out[2], *f = h + ga.n;
    for (int t = 0; t < 2; t++) {
        const float *a = h + ((float *)rt_node_data(r->p, r->net.alpha[t]) - ga.data);
        const ir_supernet_opts *so = r->o->supernet;
        sr_alpha_expand(cells[t], so ? so->cols[t] : NULL, so ? so->n_cols[t] : cells[t]->n_ops, a, f);
        out[t] = f;
        f += (int64_t)ir_cell_num_edges(cells[t]) * cells[t]->n_ops;
    }
    *an = out[0];
    *ar = out[1];
    return h;
}

/* PC-DARTS: node i's beta logits of cell type t in the host copy h of the arch group; NULL
 * without edge normalisation. */
static const float *beta_host(run *r, const float *h, int t, int i) {
    if (r->net.beta[t][i] < 0) return NULL;
    return h + ((float *)rt_node_data(r->p, r->net.beta[t][i]) - rt_plan_group(r->p, IR_ROLE_ARCH).data);
}

/* FairDARTS: sigmoid(alpha) per entry, the weights its supernet uses. */
static void sigmoid_rows_json(FILE *f, const float *a, int rows, int cols) {
    fputc('[', f);
    for (int q = 0; q < rows; q++) {
        fprintf(f, "%s[", q ? "," : "");
        for (int c = 0; c < cols; c++) fprintf(f, "%s%.6g", c ? "," : "", 1.0 / (1.0 + exp(-(double)a[q * cols + c])));
        fputc(']', f);
    }
    fputc(']', f);
}

static void write_alpha_epoch(run *r) {
    if (!sr_dist_writer()) return;
    float *an, *ar, *h = alphas_host(r, &an, &ar);
    if (!h) return;
    int fair = r->o->strategy == SR_FAIR_DARTS;
    void (*rows_json)(FILE *, const float *, int, int) = fair ? sigmoid_rows_json : softmax_rows_json;
    FILE *f = fopen(r->path_alpha, "a");
    if (f) {
        fprintf(f, "{\"epoch\":%d,%s\"normal\":", r->epoch, fair ? "\"weights\":\"sigmoid\"," : "");
        rows_json(f, an, ir_cell_num_edges(&r->sp->normal), r->sp->normal.n_ops);
        fprintf(f, ",\"reduce\":");
        rows_json(f, ar, ir_cell_num_edges(&r->sp->reduce), r->sp->reduce.n_ops);
        /* PC-DARTS: softmax(beta) per node, the edge weights of its edge normalisation */
        const ir_cell *cells[2] = {&r->sp->normal, &r->sp->reduce};
        for (int t = 0; t < 2 && r->net.beta[t][0] >= 0; t++) {
            fprintf(f, ",\"%s\":[", t ? "betas_reduce" : "betas_normal");
            for (int i = 0; i < cells[t]->n_nodes; i++) {
                fputs(i ? "," : "", f);
                softmax_rows_json(f, beta_host(r, h, t, i), 1, __builtin_popcount(cells[t]->edges[i]));
            }
            fputc(']', f);
        }
        fprintf(f, "}\n");
        fclose(f);
    }
    free(h);
}

/* The strategy's derivation: DARTS's, PC-DARTS' with beta, FairDARTS' threshold rule. h: the
 * host copy of the arch group (alphas_host), an, ar: the alphas in the space's layout. */
static void derive(run *r, const float *h, const float *an, const float *ar, ir_genotype *gt) {
    const ir_cell *cells[2] = {&r->sp->normal, &r->sp->reduce};
    const float *as[2] = {an, ar};
    ir_geno_cell *out[2] = {&gt->normal, &gt->reduce};
    for (int t = 0; t < 2; t++) {
        if (r->o->strategy == SR_FAIR_DARTS) {
            sr_fair_derive(cells[t], as[t], SR_FAIR_THRESHOLD, out[t]);
        } else if (r->net.beta[t][0] >= 0) {
            const float *betas[IR_MAX_NODES];
            for (int i = 0; i < cells[t]->n_nodes; i++) betas[i] = beta_host(r, h, t, i);
            sr_pc_derive(cells[t], as[t], betas, out[t]);
        } else {
            sr_derive(cells[t], as[t], out[t]);
        }
    }
}

static int write_genotype(run *r, ir_genotype *gt, char *err, size_t errlen) {
    float *an, *ar, *h = alphas_host(r, &an, &ar);
    if (!h) return sr_dist_root_rc(sr_fail(err, errlen, "out of memory"), err, errlen);
    int rc = 0;
    if (r->h) rc = r->h->derive(r->h->ctx, r->p, &r->net, gt, err, errlen); /* no alpha to write beside it */
    else derive(r, h, an, ar, gt);
    if (!rc && sr_dist_writer())
        rc = sr_genotype_write_files(r->sp, gt, r->h ? NULL : an, r->h ? NULL : ar, r->o->out_dir, err, errlen);
    free(h);
    return sr_dist_root_rc(rc, err, errlen);
}

/* The next batch; with a pretext task (UnNAS), its images transformed and the labels
 * replaced by the task's targets. tag: which batch (a function of the step). */
static void next_batch(run *r, rt_loader *l, float *x, int32_t *y, uint64_t tag) {
    sr_next_batch(l, x, y);
    if (r->o->pretext == SR_PRETEXT_ROTATION) /* data-parallel: this process's part, at its place in the batch */
        sr_pretext_rotate(x, y, r->lbatch, rt_dist_rank() * r->lbatch, r->sp->in_c, r->sp->in_h, r->sp->search.seed, tag,
                          r->rot);
}

/* Backend memory for the per-batch results of an evaluation of nb batches (r->eval_dev),
 * or NULL: then each batch's are read back as it ends. DARTSC_EVAL_SYNC=1 reads them back
 * batch by batch (the same numbers; for A/B timing and the tests). */
static float *eval_slots(run *r, int64_t nb) {
    if (nb <= 0 || getenv("DARTSC_EVAL_SYNC")) return NULL;
    if (nb > r->eval_cap) {
        if (r->eval_dev) r->be->free(r->be, r->eval_dev);
        r->eval_cap = 0;
        if (!(r->eval_dev = r->be->alloc(r->be, (size_t)nb * 2 * sizeof(float)))) return NULL;
        r->eval_cap = nb;
    }
    return r->eval_dev;
}

/* Adds the n batches' results in slots to *sl and *sc in batch order (as read one by one). */
static void eval_read(run *r, const float *slots, int64_t n, double *sl, double *sc) {
    if (n <= 0) return;
    float *h = malloc((size_t)n * 2 * sizeof(float));
    if (!h) {
        *sl = *sc = NAN;
        return;
    }
    r->be->download(r->be, h, slots, (size_t)n * 2 * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        *sl += h[2 * i];
        *sc += (int)h[2 * i + 1]; /* rt_last_correct's conversion */
    }
    free(h);
}

/* Accuracy and loss over the architecture split (forward only). Each batch is one pass
 * (rt_pass: recorded and replayed where the backend records) whose loss and top-1 count go
 * to backend memory, read back once at the end and added up in batch order: one host
 * synchronisation per evaluation instead of one per batch, the same numbers. */
static void evaluate_split(run *r, double *loss, double *acc) {
    rt_loader l = r->la;
    rt_loader_seek(&l, 0, 0); /* a private copy's position: shares perm memory, so restore below */
    int64_t ae, ap;
    rt_loader_state(&r->la, &ae, &ap);
    double sl = 0, sc = 0;
    int64_t nb = 0, b = 0;
    int got;
    size_t bi = input_bytes(r->p, r->net.images), bl = input_bytes(r->p, r->net.labels);
    /* ProxylessNAS: the most probable path (the largest alpha on every edge) is scored */
    if (r->px && sr_px_score_begin(r->px)) {
        *loss = *acc = NAN;
        return;
    }
    const int64_t bs = l.cfg.batch_size > 0 ? l.cfg.batch_size : 1;
    float *slots = r->px ? NULL : eval_slots(r, (l.end - l.pos + bs - 1) / bs);
    for (;;) {
        /* data-parallel: this process's part of the batch starts at first (runtime/data.h's shards) */
        int64_t whole = l.end - l.pos < l.cfg.batch_size ? l.end - l.pos : l.cfg.batch_size;
        int first = l.cfg.shards > 1 ? (int)(whole * l.cfg.shard / l.cfg.shards) : 0;
        if (!rt_loader_next(&l, r->xv, r->yv, &got)) break;
        if (r->o->pretext == SR_PRETEXT_ROTATION) /* tags past any step's: the same rotations each epoch */
            sr_pretext_rotate(r->xv, r->yv, got, first, r->sp->in_c, r->sp->in_h, r->sp->search.seed,
                              (1ull << 62) + (uint64_t)nb, r->rot);
        if (r->px) {
            double pl, pc;
            sr_px_score_batch(r->px, r->xv, r->yv, &pl, &pc);
            sl += pl;
            sc += pc;
        } else {
            rt_set_input(r->p, r->net.images, r->xv, bi);
            rt_set_input(r->p, r->net.labels, r->yv, bl);
            if (slots && nb < r->eval_cap && rt_pass(r->p, 1, 0) == 0 &&
                rt_loss_to(r->p, slots + 2 * nb, slots + 2 * nb + 1) == 0) {
                /* read at the end */
            } else { /* this batch read back now; the slots read so far stand */
                if (slots) {
                    eval_read(r, slots, nb, &sl, &sc);
                    slots = NULL;
                }
                sl += rt_forward(r->p, 1);
                sc += rt_last_correct(r->p);
            }
        }
        nb++;
        b = got;
    }
    if (slots) eval_read(r, slots, nb, &sl, &sc);
    rt_loader_seek(&r->la, ae, ap);
    if (r->px) sr_px_score_end(r->px);
    /* data-parallel: every process scored its part of each batch */
    double v[2] = {sl / rt_dist_size(), sc};
    rt_dist_allreduce_f64(v, 2);
    sl = v[0];
    sc = v[1];
    b *= rt_dist_size();
    *loss = nb ? sl / (double)nb : NAN;
    *acc = nb ? sc / (double)(nb * b) : NAN;
}

/* Weights and alpha finite before they go into a checkpoint, alpha.jsonl or a genotype. */
static int check_finite(run *r, float lr, char *err, size_t errlen) {
    double w = sr_group_sumsq(r->p, IR_ROLE_WEIGHT), a = sr_group_sumsq(r->p, IR_ROLE_ARCH);
    if (isfinite(w) && isfinite(a)) return 0;
    int64_t s = r->step > 0 ? r->step - 1 : 0, g = r->global_step > 0 ? r->global_step - 1 : 0;
    return sr_diverged(err, errlen, isfinite(w) ? "the sum of squares of alpha" : "the sum of squares of the weights",
                       isfinite(w) ? a : w, r->epoch - (r->step == 0 && r->epoch > 0),
                       r->step > 0 ? s : r->steps_per_epoch - 1, g, lr, r->path_ckpt);
}

/* P-DARTS: p of every skip's DROPOUT node (none outside P-DARTS). */
static void set_skip_dropout(run *r, float p) {
    const ir_graph *g = rt_plan_graph(r->p);
    for (int i = 0; i < ir_graph_num_nodes(g); i++)
        if (ir_graph_node(g, i)->op == IR_OP_DROPOUT) rt_plan_set_fattr(r->p, i, IR_F_P, p);
}

/* DARTS+ at an epoch's end: the stopping rule on this epoch's alpha against the previous
 * one's; a stop is recorded in the state (so the checkpoint keeps it) and in stop.json. */
static int dplus_epoch_end(run *r, char *err, size_t errlen) {
    rt_group ga = rt_plan_group(r->p, IR_ROLE_ARCH);
    float *an, *ar, *h = alphas_host(r, &an, &ar), *prev = malloc((size_t)r->na * 4);
    if (!h || !prev) {
        free(h);
        free(prev);
        return sr_fail(err, errlen, "out of memory");
    }
    r->be->download(r->be, prev, r->prev_alpha, (size_t)r->na * 4);
    int64_t value = 0;
    const float *pn = prev + ((float *)rt_node_data(r->p, r->net.alpha[0]) - ga.data),
                *pr = prev + ((float *)rt_node_data(r->p, r->net.alpha[1]) - ga.data);
    int code = sr_dplus_check(r->sp, an, ar, r->epoch > 0 ? pn : NULL, r->epoch > 0 ? pr : NULL, &r->dplus[0], &value);
    free(h);
    free(prev);
    r->be->copy(r->be, r->prev_alpha, ga.data, r->na);
    if (!code) return 0;
    r->dplus[1] = 1;
    r->dplus[2] = r->epoch + 1;
    r->dplus[3] = code;
    r->dplus[4] = value;
    char reason[192], json[512], path[4200];
    sr_dplus_reason(&r->sp->search, code, value, r->epoch + 1, reason, sizeof reason);
    snprintf(json, sizeof json, "{\"epoch\":%d,\"epochs\":%d,\"criterion\":\"%s\",\"value\":%lld,\"reason\":\"%s\"}\n",
             r->epoch + 1, r->sp->search.epochs, code == SR_DPLUS_SKIPS ? "skips" : "stable", (long long)value, reason);
    snprintf(path, sizeof path, "%s/stop.json", r->o->out_dir);
    /* data-parallel: every process reaches the same decision (alpha is the same on all); rank 0 writes */
    int rc = sr_dist_writer() ? sr_write_file_atomic(path, json, strlen(json), err, errlen) : 0;
    return sr_dist_root_rc(rc, err, errlen);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

static void free_run(run *r) {
    sr_host_timing_report(&r->ht, "search");
    sr_tune_report(r->p, "search");
    sr_px_free(r->px);
    if (r->p) {
        sr_darts_step_free(&r->ds);
        sr_unroll_free(&r->u, r->p);
        float *bufs[5] = {r->sgd_buf, r->adam_m, r->adam_v, r->prev_alpha, r->eval_dev};
        for (int i = 0; i < 5; i++)
            if (bufs[i]) r->be->free(r->be, bufs[i]);
        rt_plan_free(r->p);
    }
    if (r->be) r->be->destroy(r->be);
    ir_net_free(&r->net);
    rt_loader_free(&r->lw);
    rt_loader_free(&r->la);
    rt_dataset_free(&r->full);
    free(r->xt);
    free(r->xv);
    free(r->rot);
    free(r->yt);
    free(r->yv);
}

int sr_cnn_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen) {
    return sr_cnn_search_hooked(sp, o, NULL, res, err, errlen);
}

int sr_cnn_search_hooked(const ir_space *sp, const sr_options *o, const sr_arch_hooks *h, sr_result *res, char *err,
                         size_t errlen) {
    run r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    r.h = h;
    r.sp = sp;
    r.o = o;
    const ir_train_config *tc = &sp->search;
    int rc = -1;
    double t0 = sr_now();
    if (tc->order != 1 && tc->order != 2) return sr_fail(err, errlen, "order must be 1 or 2, not %d", tc->order);
    if (tc->epochs < 1 || tc->batch < 1) return sr_fail(err, errlen, "epochs and batch must be positive");
    if (o->strategy == SR_PROXYLESS && tc->order != 1)
        return sr_fail(err, errlen, "proxyless learns alpha by its own gradient estimator (first order); order %d is not "
                       "defined for it", tc->order);
    if (o->strategy == SR_PROXYLESS && !(tc->latency_weight >= 0 && isfinite(tc->latency_weight)))
        return sr_fail(err, errlen, "proxyless: latency_weight must be a number >= 0, not %g", (double)tc->latency_weight);
    int lbatch = sr_dist_local_batch(tc->batch, err, errlen); /* this process's part of a batch */
    if (lbatch < 0) return -1;
    r.lbatch = lbatch;
    if (sr_dist_root_rc(sr_dist_writer() ? sr_mkdir_p(o->out_dir, err, errlen) : 0, err, errlen)) return -1;
    snprintf(r.path_ckpt, sizeof r.path_ckpt, "%s/checkpoint.dtns", o->out_dir);
    snprintf(r.path_metrics, sizeof r.path_metrics, "%s/metrics.jsonl", o->out_dir);
    snprintf(r.path_alpha, sizeof r.path_alpha, "%s/alpha.jsonl", o->out_dir);
    rc = 0; /* rank 0 looks at the run directory */
    if (sr_dist_writer() && !o->resume && access(r.path_ckpt, F_OK) == 0)
        rc = sr_fail(err, errlen, "%s already holds a search (checkpoint.dtns); pass --resume to continue it or choose another --out",
                    o->out_dir);
    if (sr_dist_writer() && o->resume && access(r.path_ckpt, F_OK) != 0)
        rc = sr_fail(err, errlen, "--resume: %s does not exist", r.path_ckpt);
    if (sr_dist_root_rc(rc, err, errlen)) return -1;
    rc = -1;

    if (load_data(&r, err, errlen)) goto out;
    ir_space pretext_sp; /* UnNAS: the supernet classifies the pretext task's targets */
    if (o->pretext == SR_PRETEXT_ROTATION) {
        if (sp->in_h != sp->in_w) {
            sr_fail(err, errlen, "--pretext rotation needs square images (input %dx%d)", sp->in_h, sp->in_w);
            goto out;
        }
        pretext_sp = *sp;
        pretext_sp.classes = SR_PRETEXT_ROTATION_CLASSES;
        if (!(r.rot = malloc((size_t)sp->in_c * (size_t)sp->in_h * (size_t)sp->in_w * sizeof *r.rot))) {
            sr_fail(err, errlen, "out of memory");
            goto out;
        }
    }
    ir_supernet_opts so;
    if (o->supernet) so = *o->supernet; /* a P-DARTS stage's */
    else sr_succ_supernet_opts(sp, o->strategy, &so);
    so.no_share = sr_no_share();
    /* ProxylessNAS: the loop's supernet only holds the shared parameters (the steps run their
       own plans of one or two paths per edge), so it is planned at batch 1 */
    const int mbatch = o->strategy == SR_PROXYLESS ? 1 : lbatch;
    const ir_space *nsp = o->pretext == SR_PRETEXT_ROTATION ? &pretext_sp : sp;
    if (ir_space_build_supernet_ex(nsp, mbatch, &so, &r.net)) {
        sr_fail(err, errlen, "%s", r.net.error);
        goto out;
    }
    if (!(r.be = rt_backend_open(o->device, err, errlen))) goto out;
    r.p = rt_plan_new(r.net.graph, r.be,
                      &(rt_plan_opts){.seed = tc->seed, .grads = RT_GRAD_W | RT_GRAD_ARCH,
                                      .bn_sync = tc->sync_bn ? rt_dist_bn_sync() : NULL},
                      err, errlen);
    if (!r.p) goto out;
    rt_group gw = rt_plan_group(r.p, IR_ROLE_WEIGHT), ga = rt_plan_group(r.p, IR_ROLE_ARCH);
    r.nw = gw.n;
    r.na = ga.n;
    size_t bi = input_bytes(r.p, r.net.images) / (size_t)mbatch * (size_t)lbatch,
           bl = input_bytes(r.p, r.net.labels) / (size_t)mbatch * (size_t)lbatch;
    r.xt = malloc(bi);
    r.xv = malloc(bi);
    r.yt = malloc(bl);
    r.yv = malloc(bl);
    r.sgd_buf = r.be->alloc(r.be, (size_t)r.nw * 4);
    r.adam_m = r.be->alloc(r.be, (size_t)r.na * 4);
    r.adam_v = r.be->alloc(r.be, (size_t)r.na * 4);
    if (o->strategy == SR_DARTS_PLUS && (r.prev_alpha = r.be->alloc(r.be, (size_t)r.na * 4)))
        r.be->memset0(r.be, r.prev_alpha, (size_t)r.na * 4);
    if ((o->strategy == SR_DARTS_PLUS && !r.prev_alpha) || !r.xt || !r.xv || !r.yt || !r.yv || !r.sgd_buf || !r.adam_m || !r.adam_v ||
        (tc->order == 2 && sr_unroll_init(&r.u, r.p))) {
        sr_fail(err, errlen, "out of memory on the %s backend for the batches and the optimisers' buffers (%.1f MiB)",
                r.be->name,
                ((tc->order == 2 ? 3.0 : 1.0) * (double)r.nw +
                 (2.0 + (tc->order == 2 ? 2.0 : 0.0) + (o->strategy == SR_DARTS_PLUS)) * (double)r.na) * 4 / 1048576.0);
        goto out;
    }
    if (o->strategy == SR_PROXYLESS &&
        !(r.px = sr_px_new(nsp, o, r.p, &r.net, lbatch, tc->sync_bn ? rt_dist_bn_sync() : NULL, err, errlen)))
        goto out;
    /* DARTS in one process, and the successors whose step is DARTS' (PC-DARTS: another
       supernet; SHARP-DARTS: another learning rate; DARTS+: a check between epochs;
       P-DARTS: its epochs with the architecture on; FairDARTS: its zero-one term added on
       the backend): each step issued whole (a recorded graph on CUDA); ProxylessNAS,
       hooked strategies and data-parallel runs need the host inside a step */
    const int whole = o->strategy == SR_DARTS || o->strategy == SR_PC_DARTS || o->strategy == SR_SHARP_DARTS ||
                      o->strategy == SR_DARTS_PLUS || o->strategy == SR_PDARTS ||
                      (o->strategy == SR_FAIR_DARTS && r.be->zero_one_grad);
    if (whole && !h && sr_step_usable(tc) &&
        sr_darts_step_init(&r.ds, r.p, r.net.images, r.net.labels, tc, &r.u, r.sgd_buf, r.adam_m, r.adam_v)) {
        sr_fail(err, errlen, "out of memory");
        goto out;
    }
    if (r.ds.s.p && o->strategy == SR_FAIR_DARTS) r.ds.w01 = SR_FAIR_W01; /* its zero-one term inside the step */
    r.prefetch = r.ds.s.p && sr_prefetch_on();
    r.be->memset0(r.be, r.sgd_buf, (size_t)r.nw * 4);
    r.be->memset0(r.be, r.adam_m, (size_t)r.na * 4);
    r.be->memset0(r.be, r.adam_v, (size_t)r.na * 4);
    if (o->resume) {
        if (load_checkpoint(&r, err, errlen)) goto out;
    } else if (sr_dist_writer()) {
        FILE *f = fopen(r.path_metrics, "w");
        if (f) fclose(f);
        f = fopen(r.path_alpha, "w");
        if (f) fclose(f);
        if (o->space_src) {
            char path[4200];
            snprintf(path, sizeof path, "%s/space.dartsc", o->out_dir);
            if (sr_dist_root_rc(sr_write_file_atomic(path, o->space_src, o->space_src_len, err, errlen), err, errlen))
                goto out;
        } else if (sr_dist_root_rc(0, err, errlen))
            goto out;
    } else if (sr_dist_root_rc(0, err, errlen))
        goto out;

    double tstep = sr_now(), last_ckpt = tstep;
    int64_t steps_done = 0;
    int momentum_live = r.global_step > 0;
    while (r.epoch < tc->epochs && !r.dplus[1]) {
        float lr = o->strategy == SR_SHARP_DARTS ? sr_cosine_power_lr(tc, r.epoch) : sr_cosine_lr(tc, r.epoch);
        /* P-DARTS: the skips' dropout decays linearly over the stage; warm-up epochs train weights only */
        float skip_p = o->supernet ? o->supernet->skip_dropout * (1.0f - (float)r.epoch / (float)tc->epochs) : 0.f;
        set_skip_dropout(&r, skip_p);
        int arch_on = !(o->strategy == SR_PDARTS && r.epoch < tc->warmup);
        while (r.step < r.steps_per_epoch) {
            /* data-parallel: every process stops at the same step when any was asked to */
            if (rt_dist_sum_int(o->stop && *o->stop) || (o->stop_after_steps > 0 && r.global_step >= o->stop_after_steps)) {
                if (check_finite(&r, lr, err, errlen) || save_checkpoint(&r, err, errlen)) goto out;
                res->stopped = 1;
                res->steps = r.global_step;
                res->seconds = sr_now() - t0;
                rc = 0;
                goto out;
            }
            float val_loss = NAN, val_acc = NAN;
            int have_val = 0;
            float train_loss;
            double correct, gnorm;
            const int whole_step = r.ds.s.p && arch_on; /* P-DARTS' warm-up epochs: per pass */
            if (whole_step) { /* the DARTS step, issued whole; its losses read after it */
                double th = sr_now();
                if (!r.ahead) {
                    next_batch(&r, &r.lw, r.xt, r.yt, 2 * (uint64_t)r.global_step);
                    next_batch(&r, &r.la, r.xv, r.yv, 2 * (uint64_t)r.global_step + 1);
                    sr_darts_step_put(&r.ds, r.xt, r.yt, r.xv, r.yv);
                    r.ht.batch_between += sr_now() - th;
                }
                r.ahead = 0;
                if (r.ht.since > 0) {
                    r.ht.gap += sr_now() - r.ht.since;
                    r.ht.gaps++;
                }
                if (sr_darts_step_launch(&r.ds, lr, r.adam_t + 1, momentum_live)) {
                    sr_fail(err, errlen, "the search step failed");
                    goto out;
                }
                /* while it computes: the next step's batches, when it is in this epoch (an
                   epoch's end scores the architecture split and checkpoints first) */
                if (r.prefetch && r.step + 1 < r.steps_per_epoch) {
                    th = sr_now();
                    rt_loader_state(&r.lw, &r.at[0], &r.at[1]);
                    rt_loader_state(&r.la, &r.at[2], &r.at[3]);
                    next_batch(&r, &r.lw, r.xt, r.yt, 2 * (uint64_t)(r.global_step + 1));
                    next_batch(&r, &r.la, r.xv, r.yv, 2 * (uint64_t)(r.global_step + 1) + 1);
                    sr_darts_step_put(&r.ds, r.xt, r.yt, r.xv, r.yv); /* queued behind this step */
                    r.ahead = 1;
                    r.ht.batch_ahead += sr_now() - th;
                }
                float got[4];
                sr_darts_step_read(&r.ds, got, &gnorm);
                r.ht.since = sr_now();
                r.ht.n++;
                r.adam_t++;
                val_loss = got[0];
                val_acc = tc->order == 2 ? NAN : got[2] / tc->batch; /* second order: L_val is at w' (as per pass) */
                have_val = 1;
                if (!isfinite(val_loss)) { /* alpha and the weights are untouched (the optimisers' guards) */
                    sr_diverged(err, errlen, "the architecture-split loss", val_loss, r.epoch, r.step, r.global_step, lr,
                                r.path_ckpt);
                    goto out;
                }
                train_loss = got[1];
                correct = got[3];
            } else {
                next_batch(&r, &r.lw, r.xt, r.yt, 2 * (uint64_t)r.global_step);
                /* the alpha step (a hooked strategy: its own architecture step) */
                if (r.h) {
                    next_batch(&r, &r.la, r.xv, r.yv, 2 * (uint64_t)r.global_step + 1);
                    if (r.h->arch_step(r.h->ctx, r.p, &r.net, r.xv, r.yv, r.global_step, &val_loss, &val_acc, err, errlen))
                        goto out;
                    have_val = 1;
                    if (r.h->before_weight_step(r.h->ctx, r.p, &r.net, r.global_step, err, errlen)) goto out;
                } else if ((sr_succ_is_bilevel(o->strategy) && arch_on) || o->strategy == SR_COORD) {
                    /* DARTS: a batch of the architecture split; coordinate descent: another batch of all data */
                    next_batch(&r, &r.la, r.xv, r.yv, 2 * (uint64_t)r.global_step + 1);
                    if (o->strategy == SR_PROXYLESS) {
                        /* the sampled pairs' gate gradients through the estimator, + lambda dE[latency] */
                        double vc = 0;
                        if (sr_px_alpha_grad(r.px, r.xv, r.yv, r.global_step, &val_loss, &vc, err, errlen)) goto out;
                        sr_dist_loss(&val_loss, &vc);
                        val_acc = vc / tc->batch;
                    } else if (o->strategy != SR_COORD && tc->order == 2) {
                        if (sr_arch_grad_second_order(r.p, &r.u, r.net.images, r.net.labels, r.xt, r.yt, r.xv, r.yv,
                                                      momentum_live ? r.sgd_buf : NULL, lr, tc->w_momentum, tc->w_wd, 0,
                                                      &val_loss)) {
                            sr_fail(err, errlen, "second-order step failed");
                            goto out;
                        }
                    } else {
                        double vc;
                        sr_pass_read(r.p, r.net.images, r.net.labels, r.xv, r.yv, bi, bl, RT_GRAD_ARCH, &val_loss, &vc);
                        val_acc = vc / tc->batch;
                    }
                    have_val = 1;
                    if (!isfinite(val_loss)) {
                        sr_diverged(err, errlen, "the architecture-split loss", val_loss, r.epoch, r.step, r.global_step, lr,
                                    r.path_ckpt);
                        goto out;
                    }
                    /* FairDARTS: + w01 * dL01/dalpha (the zero-one loss pushes sigmoid(alpha) to 0 or 1) */
                    if (o->strategy == SR_FAIR_DARTS && sr_fair_add_zero_one(r.p, SR_FAIR_W01, NULL)) {
                        sr_fail(err, errlen, "out of memory");
                        goto out;
                    }
                    r.adam_t++;
                    r.be->adam_step(r.be, ga.data, r.adam_m, r.adam_v, ga.grad, r.na, tc->a_lr, tc->a_beta1, tc->a_beta2,
                                    ADAM_EPS, tc->a_wd, r.adam_t);
                    if (o->strategy == SR_PROXYLESS) sr_px_after_alpha_step(r.px); /* the unsampled keep their probability */
                }
                /* the weight step (joint: weights and alpha from one backward) */
                rt_set_input(r.p, r.net.images, r.xt, bi);
                rt_set_input(r.p, r.net.labels, r.yt, bl);
                unsigned wmask = o->strategy == SR_JOINT ? (RT_GRAD_W | RT_GRAD_ARCH) : RT_GRAD_W;
                if (o->strategy == SR_PROXYLESS) { /* one sampled path per edge */
                    if (sr_px_weight_pass(r.px, r.xt, r.yt, r.global_step, &train_loss, &correct, err, errlen)) goto out;
                } else {
                    rt_pass(r.p, 1, wmask);
                    train_loss = rt_loss(r.p);
                    correct = rt_last_correct(r.p);
                }
                sr_dist_grads(r.p, wmask);
                sr_dist_loss(&train_loss, &correct);
                gnorm = isfinite(train_loss) ? sr_clip_weight_grads(r.p, tc->w_clip) : 0;
            }
            double train_acc = correct / tc->batch;
            /* a non-finite loss or gradient stops the search before it reaches the weights,
               the logs or a checkpoint (the whole step: the weight step's guard skipped SGD;
               the per-pass path on CUDA clips on the device: the loss only) */
            if (!isfinite(train_loss) || !isfinite(gnorm)) {
                sr_diverged(err, errlen, isfinite(train_loss) ? "the weight gradient norm" : "the training loss",
                            isfinite(train_loss) ? gnorm : train_loss, r.epoch, r.step, r.global_step, lr, r.path_ckpt);
                goto out;
            }
            const char *warning = NULL;
            double peak = fmax(train_loss, have_val ? val_loss : 0);
            if (peak > res->loss_peak) {
                if (peak > SR_LOSS_WARN && res->loss_peak <= SR_LOSS_WARN)
                    warning = "the loss exceeds 100: the search is exploding numerically (learning rate too high?)";
                res->loss_peak = peak;
                res->loss_peak_step = r.global_step;
            }
            if (!whole_step) r.be->sgd_step(r.be, gw.data, r.sgd_buf, gw.grad, r.nw, lr, tc->w_momentum, tc->w_wd);
            momentum_live = 1;
            if (o->strategy == SR_JOINT) {
                r.adam_t++;
                r.be->adam_step(r.be, ga.data, r.adam_m, r.adam_v, ga.grad, r.na, tc->a_lr, tc->a_beta1, tc->a_beta2,
                                ADAM_EPS, tc->a_wd, r.adam_t);
            }
            r.be->synchronize(r.be);
            steps_done++;
            double tnow = sr_now();
            double ips = (double)steps_done * tc->batch / (tnow - tstep);
            int64_t left = (int64_t)(tc->epochs - r.epoch) * r.steps_per_epoch - r.step - 1;
            char line[512], n1[32];
            snprintf(line, sizeof line,
                     "{\"epoch\":%d,\"step\":%lld,\"global_step\":%lld,\"train_loss\":%.6g,\"train_acc\":%.6g,"
                     "\"val_loss\":%.6g,\"val_acc\":%.6g,\"lr\":%.6g,\"alpha_lr\":%.6g,\"images_per_s\":%s}\n",
                     r.epoch, (long long)r.step, (long long)r.global_step, train_loss, train_acc,
                     have_val ? val_loss : -1.0, have_val && isfinite(val_acc) ? val_acc : -1.0, lr,
                     tc->a_lr, sr_json_num(n1, sizeof n1, "%.4g", ips));
            if (r.px) { /* ProxylessNAS: E[latency] under the new alpha */
                char n2[32];
                size_t ll = strlen(line);
                snprintf(line + ll - 2, sizeof line - ll + 2, ",\"expected_latency_ms\":%s}\n",
                         sr_json_num(n2, sizeof n2, "%.6g", sr_px_current_latency(r.px)));
            }
            append_line(r.path_metrics, line);
            double tp = sr_now();
            if (whole_step) r.ht.line += tp - tnow;
            if (o->progress && sr_dist_writer()) {
                sr_progress pr = {.epoch = r.epoch, .epochs = tc->epochs, .step = r.step, .steps_per_epoch = r.steps_per_epoch,
                                  .train_loss = train_loss, .train_acc = train_acc, .val_loss = val_loss, .val_acc = val_acc,
                                  .lr = lr, .images_per_s = ips, .eta_s = (double)left * tc->batch / (ips > 0 ? ips : 1),
                                  .warning = warning};
                o->progress(o->progress_ctx, &pr);
            }
            if (whole_step) r.ht.progress += sr_now() - tp;
            r.step++;
            r.global_step++;
            /* periodic checkpoints between epoch ends (the epoch's end writes its own) */
            if (r.step < r.steps_per_epoch &&
                sr_checkpoint_due(o->checkpoint_steps, o->checkpoint_seconds, r.global_step, &last_ckpt) &&
                (check_finite(&r, lr, err, errlen) || save_checkpoint(&r, err, errlen)))
                goto out;
        }
        /* end of epoch: alpha snapshot, accuracy on the architecture split, genotype, checkpoint */
        r.ht.since = 0; /* the epoch's end is no gap between steps */
        if (check_finite(&r, lr, err, errlen)) goto out;
        if (r.h && r.h->derive(r.h->ctx, r.p, &r.net, &res->genotype, err, errlen)) goto out; /* scores the derived child */
        double vl, va;
        set_skip_dropout(&r, 0.f); /* the architecture split is scored without dropout */
        evaluate_split(&r, &vl, &va);
        if (!isfinite(vl)) {
            sr_diverged(err, errlen, "the architecture-split loss at the epoch's end", vl, r.epoch, r.steps_per_epoch - 1,
                        r.global_step - 1, lr, r.path_ckpt);
            goto out;
        }
        write_alpha_epoch(&r);
        res->val_acc = va;
        if (o->progress && sr_dist_writer()) {
            sr_progress pr = {.epoch = r.epoch, .epochs = tc->epochs, .step = r.steps_per_epoch, .steps_per_epoch = r.steps_per_epoch,
                              .val_loss = vl, .val_acc = va, .lr = lr, .epoch_end = 1};
            o->progress(o->progress_ctx, &pr);
        }
        if (o->strategy == SR_DARTS_PLUS && dplus_epoch_end(&r, err, errlen)) goto out;
        r.epoch++;
        r.step = 0;
        if (write_genotype(&r, &res->genotype, err, errlen)) goto out;
        if (save_checkpoint(&r, err, errlen)) goto out;
    }
    if (write_genotype(&r, &res->genotype, err, errlen)) goto out;
    if (o->final_alpha) {
        float *an, *ar, *hb = alphas_host(&r, &an, &ar);
        if (!hb) {
            sr_fail(err, errlen, "out of memory");
            goto out;
        }
        rt_group ga2 = rt_plan_group(r.p, IR_ROLE_ARCH);
        o->final_alpha(o->final_alpha_ctx, hb + ((float *)rt_node_data(r.p, r.net.alpha[0]) - ga2.data),
                       hb + ((float *)rt_node_data(r.p, r.net.alpha[1]) - ga2.data));
        free(hb);
    }
    if (r.dplus[1]) {
        res->stop_epoch = (int)r.dplus[2];
        sr_dplus_reason(tc, r.dplus[3], r.dplus[4], r.dplus[2], res->stop_reason, sizeof res->stop_reason);
    }
    res->steps = r.global_step;
    res->seconds = sr_now() - t0;
    rc = 0;
out:
    free_run(&r);
    return rc;
}
