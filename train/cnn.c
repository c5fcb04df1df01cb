/* cnn.c — retraining of a convolutional (kind cnn) network, test evaluation, inference
 * and weights files; see train.h. */
#include "train.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "data_info.h"
#include "runtime/dist.h"
#include "runtime/tensorfile.h"

#define WEIGHTS_VERSION 1
#define TRAIN_CKPT_VERSION 1
#define EVAL_BATCH 100

sr_train_opts sr_train_opts_default(void) {
    sr_train_opts o;
    memset(&o, 0, sizeof o);
    o.out_dir = "runs/train";
    o.device = "auto";
    o.checkpoint_seconds = SR_CHECKPOINT_SECONDS_DEFAULT;
    return o;
}


/* ---- weights files -------------------------------------------------------------------- */

static int is_saved(const ir_node *n) {
    return n->op == IR_OP_PARAM && (n->role == IR_ROLE_WEIGHT || n->role == IR_ROLE_BUFFER);
}

int sr_weights_save(rt_plan *p, const char *path, char *err, size_t errlen) {
    const ir_graph *g = rt_plan_graph(p);
    rt_backend *be = rt_plan_backend(p);
    rt_tf_writer *w = rt_tf_open_write(path, err, errlen);
    if (!w) return -1;
    int64_t meta[1] = {WEIGHTS_VERSION};
    int rc = sr_put_i64s(w, "meta/weights_version", meta, 1);
    for (int i = 0; i < ir_graph_num_nodes(g) && !rc; i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (!is_saved(n)) continue;
        int64_t k = ir_node_numel(n);
        float *h = malloc((size_t)k * 4);
        if (!h) {
            rc = -1;
            break;
        }
        be->download(be, h, rt_node_data(p, i), (size_t)k * 4);
        rc = rt_tf_write(w, n->name, RT_TF_F32, n->ndim, n->shape, h);
        free(h);
    }
    if (rc) {
        const char *why = rt_tf_writer_error(w);
        sr_fail(err, errlen, "%s: writing the weights failed%s%s", path, why ? ": " : "", why ? why : "");
        rt_tf_abort_write(w);
        return -1;
    }
    return rt_tf_close_write(w, err, errlen);
}

int sr_weights_load(rt_plan *p, const char *path, char *err, size_t errlen) {
    rt_tf_file *f = rt_tf_read(path, err, errlen);
    if (!f) return -1;
    int64_t ver = 0;
    int rc = sr_get_i64s(f, "meta/weights_version", &ver, 1, path, err, errlen);
    if (!rc && ver != WEIGHTS_VERSION) rc = sr_fail(err, errlen, "%s: weights format version %lld, this dartsc reads %d", path, (long long)ver, WEIGHTS_VERSION);
    const ir_graph *g = rt_plan_graph(p);
    rt_backend *be = rt_plan_backend(p);
    for (int i = 0; i < ir_graph_num_nodes(g) && !rc; i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (!is_saved(n)) continue;
        const rt_tf_entry *e = rt_tf_find(f, n->name);
        if (!e) {
            rc = sr_fail(err, errlen, "%s: no tensor '%s' (weights of another architecture?)", path, n->name);
            break;
        }
        int same = e->dtype == RT_TF_F32 && e->ndim == n->ndim;
        for (int d = 0; same && d < n->ndim; d++) same = e->dims[d] == n->shape[d];
        if (!same) {
            rc = sr_fail(err, errlen, "%s: tensor '%s' has the wrong type or shape", path, n->name);
            break;
        }
        be->upload(be, rt_node_data(p, i), e->data, (size_t)e->numel * 4);
    }
    rt_tf_free(f);
    return rc;
}

/* ---- inference ----------------------------------------------------------------------------- */

int sr_infer_open(sr_infer *in, const ir_space *sp, const ir_genotype *gt, int batch, const char *weights,
                  const char *device, char *err, size_t errlen) {
    memset(in, 0, sizeof *in);
    ir_eval_opts eo = {.C = sp->train_C, .layers = sp->train_layers, .batch = batch, .aux = 0, .drop_path = 0};
    if (ir_space_build_eval(sp, gt, &eo, &in->net)) return sr_fail(err, errlen, "%s", in->net.error);
    in->be = rt_backend_open(device, err, errlen);
    if (!in->be) {
        ir_net_free(&in->net);
        return -1;
    }
    in->p = rt_plan_new(in->net.graph, in->be, &(rt_plan_opts){.seed = 0, .grads = 0}, err, errlen);
    if (!in->p || (weights && sr_weights_load(in->p, weights, err, errlen))) {
        sr_infer_close(in);
        return -1;
    }
    return 0;
}

void sr_infer_close(sr_infer *in) {
    rt_plan_free(in->p);
    if (in->be) in->be->destroy(in->be);
    ir_net_free(&in->net);
    memset(in, 0, sizeof *in);
}

static int evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, int train,
                    int begin, int count, int batch_stats, int32_t *pred, int pred_cap, sr_eval_result *res, char *err,
                    size_t errlen);

int sr_cnn_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device,
                    sr_eval_result *res, char *err, size_t errlen) {
    return evaluate(sp, gt, weights, device, 0, 0, -1, 0, NULL, 0, res, err, errlen);
}

int sr_evaluate_range(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, int train,
                      int begin, int count, int batch_stats, sr_eval_result *res, char *err, size_t errlen) {
    return evaluate(sp, gt, weights, device, train, begin, count, batch_stats, NULL, 0, res, err, errlen);
}

/* Evaluation over images [begin, begin + count) of a split (count < 0: the test subset), BN
 * with running statistics or, batch_stats set, with each batch's own. */
static int evaluate(const ir_space *sp_in, const ir_genotype *gt, const char *weights, const char *device, int train,
                    int begin, int count, int batch_stats, int32_t *pred, int pred_cap, sr_eval_result *res, char *err,
                    size_t errlen) {
    memset(res, 0, sizeof *res);
    /* npy, images: the normalisation the weights were trained with (data.json beside them) */
    ir_space s = *sp_in, *sp = &s;
    char run_dir[4200];
    sr_dir_of(weights, run_dir, sizeof run_dir);
    if (sr_data_norm(sp, run_dir, 0, err, errlen)) return -1;
    rt_dataset test, view;
    if (sr_data_load_eval(sp, train, &test, err, errlen)) return -1;
    int n = test.n;
    if (count < 0) {
        begin = 0;
        if (sp->train.test_subset > 0 && sp->train.test_subset < n) n = sp->train.test_subset;
    } else if (begin < 0 || count < 1 || begin > n - count) {
        rt_dataset_free(&test);
        return sr_fail(err, errlen, "evaluation images [%d, %d) are outside the %d images of the data set", begin,
                    begin + count, n);
    } else
        n = count;
    rt_data_subset(&test, begin, n, &view);
    int rc = -1;
    double sl = 0, sc = 0;
    int done = 0;
    /* full batches, then one plan for the remainder */
    int sizes[2] = {n >= EVAL_BATCH ? EVAL_BATCH : n, n >= EVAL_BATCH ? n % EVAL_BATCH : 0};
    for (int pass = 0; pass < 2 && done < n; pass++) {
        int B = sizes[pass];
        if (B <= 0) continue;
        sr_infer in;
        if (sr_infer_open(&in, sp, gt, B, weights, device, err, errlen)) goto out;
        ir_train_config tc = sp->train;
        tc.batch = B;
        rt_loader_cfg cfg = sr_loader_cfg(sp, &tc, 0);
        rt_dataset part;
        int np = pass == 0 ? (n / B) * B : n - done;
        rt_data_subset(&view, done, np, &part);
        rt_loader l;
        const size_t xb = (size_t)B * (size_t)view.c * (size_t)view.h * (size_t)view.w * 4; /* compound scaling: the scaled input */
        float *x = malloc(xb);
        float *logits = pred ? malloc((size_t)B * sp->classes * 4) : NULL;
        int32_t *y = malloc((size_t)B * 4);
        if (!x || !y || (pred && !logits) || rt_loader_init(&l, &part, &cfg, err, errlen)) {
            free(x);
            free(y);
            free(logits);
            sr_infer_close(&in);
            if (!err[0]) sr_fail(err, errlen, "out of memory");
            goto out;
        }
        int got;
        while (rt_loader_next(&l, x, y, &got)) {
            rt_set_input(in.p, in.net.images, x, xb);
            rt_set_input(in.p, in.net.labels, y, (size_t)B * 4);
            sl += (double)rt_forward(in.p, batch_stats) * got;
            sc += rt_last_correct(in.p);
            if (pred && logits && rt_read(in.p, in.net.logits, logits, (size_t)B * sp->classes * 4) == 0)
                for (int i = 0; i < got && done + i < pred_cap; i++) {
                    const float *row = logits + (size_t)i * sp->classes;
                    int best = 0;
                    for (int k = 1; k < sp->classes; k++)
                        if (row[k] > row[best]) best = k;
                    pred[done + i] = best;
                }
            done += got;
        }
        rt_loader_free(&l);
        free(x);
        free(y);
        free(logits);
        sr_infer_close(&in);
    }
    res->n = done;
    res->acc = done ? sc / done : 0;
    res->loss = done ? sl / done : 0;
    rc = 0;
out:
    rt_dataset_free(&test);
    return rc;
}

int sr_evaluate_predict(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, int32_t *pred,
                        int pred_cap, sr_eval_result *res, char *err, size_t errlen) {
    return evaluate(sp, gt, weights, device, 0, 0, -1, 0, pred, pred_cap, res, err, errlen);
}

/* ---- training -------------------------------------------------------------------------------- */

typedef struct trun {
    const ir_space *sp;
    const sr_train_opts *o;
    ir_net net;
    rt_backend *be;
    rt_plan *p;
    rt_dataset full, part;
    rt_loader l;
    float *x, *buf;
    int32_t *y;
    int epoch;
    int64_t step, global_step, steps_per_epoch;
    char ckpt[4096], metrics[4096], model[4096];
    sr_step st; /* each step issued whole (train/common.h); st.p NULL: per pass */
    /* prefetch (sr_prefetch_on): the next step's batch drawn and put while this step
       computes; ahead: it is in st's buffer, and at[] the loader's position before it (what
       a checkpoint saves) */
    int prefetch, ahead;
    int64_t at[2];
    sr_host_timing ht; /* the host's time between whole steps (DARTSC_HOST_TIMING) */
} trun;


/* The checkpoint's table (train/checkpoint.h): meta {version, param hash, epoch, step,
 * global step, plan step, loader position (2), metrics bytes (-1: see meta/log_lines)},
 * then weights, BN statistics and the SGD momentum, then (optional: older checkpoints lack
 * them) the settings and train_metrics.jsonl's lines. */
enum { META_N = 9, CKPT_N = 7 };
static void ckpt_table(trun *t, int64_t *meta, int64_t *settings, int64_t *lines, int64_t *dist, sr_ckpt_entry *e) {
    rt_group gw = rt_plan_group(t->p, IR_ROLE_WEIGHT), gb = rt_plan_group(t->p, IR_ROLE_BUFFER);
    sr_ckpt_entry v[CKPT_N] = {{SR_CKPT_I64, "meta/train_state", meta, META_N, 0},
                               {SR_CKPT_DEV, "group/weights", gw.data, gw.n, 0},
                               {SR_CKPT_DEV, "group/buffers", gb.data, gb.n, 0},
                               {SR_CKPT_DEV, "opt/sgd_momentum", t->buf, gw.n, 0},
                               {SR_CKPT_I64, "meta/settings", settings, SR_SETTINGS_N, 1},
                               {SR_CKPT_I64, "meta/log_lines", lines, 1, 1},
                               {SR_CKPT_I64, "meta/dist", dist, 2, 1}};
    memcpy(e, v, sizeof v);
}

/* Rank 0 writes (data-parallel runs: every process holds the same weights). */
static int tsave(trun *t, char *err, size_t errlen) {
    if (!sr_dist_writer()) return sr_dist_root_rc(0, err, errlen);
    int64_t le, lp;
    rt_loader_state(&t->l, &le, &lp);
    if (t->ahead) { /* the batch drawn ahead is the next step's: a resume draws it again */
        le = t->at[0];
        lp = t->at[1];
    }
    int64_t meta[META_N] = {TRAIN_CKPT_VERSION, (int64_t)sr_param_hash(t->net.graph), t->epoch, t->step, t->global_step,
                            (int64_t)rt_plan_step(t->p), le, lp, -1};
    int64_t settings[SR_SETTINGS_N], lines = sr_log_lines(t->metrics), dist[2] = {rt_dist_size(), t->sp->train.sync_bn};
    sr_ckpt_settings(&t->sp->train, -1, t->o->data_begin, t->o->data_count, settings);
    sr_ckpt_entry e[CKPT_N];
    ckpt_table(t, meta, settings, &lines, dist, e);
    return sr_dist_root_rc(sr_ckpt_save(t->ckpt, t->be, e, CKPT_N, err, errlen), err, errlen);
}

/* Rank 0 reads, checks and restores; the other processes receive its entries. */
static int tread(trun *t, sr_ckpt_entry *e, int64_t *m, const int64_t *settings, const int64_t *lines_p,
                 const int64_t *dist, char *err, size_t errlen);
static int tload(trun *t, char *err, size_t errlen) {
    int64_t m[META_N] = {0}, settings[SR_SETTINGS_N] = {0}, lines = 0, dist[2] = {0, 0};
    sr_ckpt_entry e[CKPT_N];
    ckpt_table(t, m, settings, &lines, dist, e);
    int rc = sr_dist_writer() ? tread(t, e, m, settings, &lines, dist, err, errlen) : 0;
    if (sr_dist_root_rc(rc, err, errlen)) return -1;
    sr_ckpt_bcast(t->be, e, CKPT_N);
    if (rt_loader_seek(&t->l, m[6], m[7])) return sr_fail(err, errlen, "%s: data loader position out of range", t->ckpt);
    t->epoch = (int)m[2];
    t->step = m[3];
    t->global_step = m[4];
    rt_plan_set_step(t->p, (uint64_t)m[5]);
    return 0;
}

static int tread(trun *t, sr_ckpt_entry *e, int64_t *m, const int64_t *settings, const int64_t *lines_p,
                 const int64_t *dist, char *err, size_t errlen) {
    int64_t now[SR_SETTINGS_N];
    rt_tf_file *f = sr_ckpt_read(t->ckpt, e, CKPT_N, TRAIN_CKPT_VERSION, t->net.graph, err, errlen);
    if (!f) return -1;
    int64_t lines = *lines_p;
    sr_ckpt_settings(&t->sp->train, -1, t->o->data_begin, t->o->data_count, now);
    int rc = sr_ckpt_check_settings(t->ckpt, settings, now, err, errlen) || sr_ckpt_check_dist(t->ckpt, dist, t->sp->train.sync_bn, err, errlen)
                 ? -1
                 : 0;
    if (rc) {
        rt_tf_free(f);
        return rc;
    }
    if (m[2] < 0 || m[2] > t->sp->train.epochs || m[3] < 0 || m[3] > t->steps_per_epoch)
        rc = sr_fail(err, errlen, "%s: epoch %lld step %lld do not fit this training run", t->ckpt, (long long)m[2], (long long)m[3]);
    if (!rc && rt_loader_seek(&t->l, m[6], m[7])) rc = sr_fail(err, errlen, "%s: data loader position out of range", t->ckpt);
    if (!rc)
        rc = m[8] >= 0 ? sr_ckpt_truncate_log(t->metrics, m[8], err, errlen)
                       : sr_ckpt_truncate_log_lines(t->metrics, lines, err, errlen);
    if (rc) {
        rt_tf_free(f);
        return rc;
    }
    sr_ckpt_restore(f, t->be, e, CKPT_N);
    return 0;
}

/* Weights and BN statistics finite before they go into a checkpoint or model.dtns. */
static int tcheck_finite(trun *t, float lr, char *err, size_t errlen) {
    double w = sr_group_sumsq(t->p, IR_ROLE_WEIGHT), b = sr_group_sumsq(t->p, IR_ROLE_BUFFER);
    if (isfinite(w) && isfinite(b)) return 0;
    return sr_diverged(err, errlen,
                       isfinite(w) ? "the sum of squares of the batch-norm statistics" : "the sum of squares of the weights",
                       isfinite(w) ? b : w, t->epoch, t->step > 0 ? t->step - 1 : 0,
                       t->global_step > 0 ? t->global_step - 1 : 0, lr, t->ckpt);
}

static void tfree(trun *t) {
    sr_host_timing_report(&t->ht, "retraining");
    sr_tune_report(t->p, "retraining");
    if (t->p) {
        if (t->st.p) sr_step_free(&t->st);
        if (t->buf) t->be->free(t->be, t->buf);
        rt_plan_free(t->p);
    }
    if (t->be) t->be->destroy(t->be);
    ir_net_free(&t->net);
    rt_loader_free(&t->l);
    rt_dataset_free(&t->full);
    free(t->x);
    free(t->y);
}

int sr_cnn_train(const ir_space *sp, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
                 size_t errlen) {
    trun t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    t.sp = sp;
    t.o = o;
    const ir_train_config *tc = &sp->train;
    double t0 = sr_now();
    int rc = -1;
    if (tc->epochs < 1 || tc->batch < 1) return sr_fail(err, errlen, "train: epochs and batch must be positive");
    int lbatch = sr_dist_local_batch(tc->batch, err, errlen); /* this process's part of a batch */
    if (lbatch < 0) return -1;
    snprintf(t.ckpt, sizeof t.ckpt, "%s/train_checkpoint.dtns", o->out_dir);
    snprintf(t.metrics, sizeof t.metrics, "%s/train_metrics.jsonl", o->out_dir);
    snprintf(t.model, sizeof t.model, "%s/model.dtns", o->out_dir);
    int drc = 0;
    if (sr_dist_writer()) { /* rank 0 looks at the run directory */
        if (sr_mkdir_p(o->out_dir, err, errlen)) drc = -1;
        else if (!o->resume && access(t.ckpt, F_OK) == 0)
            drc = sr_fail(err, errlen, "%s already holds a training run (train_checkpoint.dtns); pass --resume or choose another --out", o->out_dir);
        else if (o->resume && access(t.ckpt, F_OK) != 0)
            drc = sr_fail(err, errlen, "--resume: %s does not exist", t.ckpt);
    }
    if (sr_dist_root_rc(drc, err, errlen)) return -1;

    if (sr_data_load_eval(sp, 1, &t.full, err, errlen)) goto out;
    int n = t.full.n, begin = 0;
    if (o->data_count > 0) {
        if (o->data_begin < 0 || o->data_begin > n - o->data_count) {
            sr_fail(err, errlen, "training images [%d, %d) are outside the %d images of the data set", o->data_begin,
                 o->data_begin + o->data_count, n);
            goto out;
        }
        begin = o->data_begin;
        n = o->data_count;
    } else if (tc->subset > 0 && tc->subset < n)
        n = tc->subset;
    if (n < tc->batch) {
        sr_fail(err, errlen, "%d training images cannot fill a batch of %d", n, tc->batch);
        goto out;
    }
    rt_data_subset(&t.full, begin, n, &t.part);
    rt_loader_cfg cfg = sr_loader_cfg(sp, tc, 1);
    sr_dist_shard(&cfg);
    cfg.seed = tc->seed * 2 + 7;
    if (rt_loader_init(&t.l, &t.part, &cfg, err, errlen)) goto out;
    t.steps_per_epoch = rt_loader_batches_per_epoch(&t.l);
    ir_eval_opts eo = {.C = sp->train_C, .layers = sp->train_layers, .batch = lbatch, .aux = tc->aux_weight > 0,
                       .aux_weight = tc->aux_weight, .drop_path = tc->drop_path > 0};
    if (ir_space_build_eval(sp, gt, &eo, &t.net)) {
        sr_fail(err, errlen, "%s", t.net.error);
        goto out;
    }
    t.be = rt_backend_open(o->device, err, errlen);
    if (!t.be) goto out;
    t.p = rt_plan_new(t.net.graph, t.be,
                      &(rt_plan_opts){.seed = tc->seed, .grads = RT_GRAD_W, .mask_stream = (uint64_t)rt_dist_rank(),
                                      .bn_sync = tc->sync_bn ? rt_dist_bn_sync() : NULL},
                      err, errlen);
    if (!t.p) goto out;
    rt_group gw = rt_plan_group(t.p, IR_ROLE_WEIGHT);
    /* the data's size: the evaluation network's input (compound scaling may have changed it) */
    size_t bi = (size_t)lbatch * (size_t)t.full.c * (size_t)t.full.h * (size_t)t.full.w * 4, bl = (size_t)lbatch * 4;
    t.x = malloc(bi);
    t.y = malloc(bl);
    t.buf = t.be->alloc(t.be, (size_t)gw.n * 4);
    if (!t.x || !t.y || !t.buf) {
        sr_fail(err, errlen, "out of memory on the %s backend for the batch and the optimiser's buffer (%.1f MiB)",
                t.be->name, (double)gw.n * 4 / 1048576.0);
        goto out;
    }
    t.be->memset0(t.be, t.buf, (size_t)gw.n * 4);
    /* one process: each step issued whole (a recorded graph on CUDA, drop path included) */
    if (sr_step_usable(tc) && sr_step_init(&t.st, t.p, t.net.images, t.net.labels, 1)) {
        sr_fail(err, errlen, "out of memory");
        goto out;
    }
    if (t.st.p && (t.st.bx != bi || t.st.by != bl)) sr_step_free(&t.st); /* batches of another size: per pass */
    t.prefetch = t.st.p && sr_prefetch_on();
    if (o->resume) {
        if (tload(&t, err, errlen)) goto out;
    } else if (sr_dist_writer()) {
        FILE *f = fopen(t.metrics, "w");
        if (f) fclose(f);
    }
    double tstart = sr_now(), last_ckpt = tstart;
    int64_t done = 0;
    double sum_loss = 0, sum_acc = 0;
    int64_t nsum = 0;
    while (t.epoch < tc->epochs) {
        float lr = sr_cosine_lr(tc, t.epoch);
        rt_plan_set_drop_path(t.p, tc->drop_path * (float)t.epoch / (float)tc->epochs);
        sum_loss = sum_acc = 0;
        nsum = 0;
        while (t.step < t.steps_per_epoch) {
            /* data-parallel: every process stops at the same step when any was asked to */
            if (rt_dist_sum_int(o->stop && *o->stop) || (o->stop_after_steps > 0 && t.global_step >= o->stop_after_steps)) {
                if (tcheck_finite(&t, lr, err, errlen) || tsave(&t, err, errlen)) goto out;
                res->stopped = 1;
                res->steps = t.global_step;
                res->seconds = sr_now() - t0;
                rc = 0;
                goto out;
            }
            float loss;
            double correct, gnorm;
            if (t.st.p) { /* the step whole: SGD guarded by the loss and the norm on the device, both read after */
                double th = sr_now();
                if (!t.ahead) {
                    sr_next_batch(&t.l, t.x, t.y);
                    sr_step_put(&t.st, 0, t.x, t.y);
                    t.ht.batch_between += sr_now() - th;
                }
                t.ahead = 0;
                if (t.ht.since > 0) {
                    t.ht.gap += sr_now() - t.ht.since;
                    t.ht.gaps++;
                }
                if (sr_train_step_launch(&t.st, t.buf, lr, tc)) {
                    sr_fail(err, errlen, "the training step failed");
                    goto out;
                }
                /* while it computes: the next step's batch, when it is in this epoch (the drop
                   path changes at an epoch's end, and a checkpoint is written there) */
                if (t.prefetch && t.step + 1 < t.steps_per_epoch) {
                    th = sr_now();
                    rt_loader_state(&t.l, &t.at[0], &t.at[1]);
                    sr_next_batch(&t.l, t.x, t.y);
                    sr_step_put(&t.st, 0, t.x, t.y); /* queued behind this step */
                    t.ahead = 1;
                    t.ht.batch_ahead += sr_now() - th;
                }
                float r[SR_STEP_RES];
                sr_step_read(&t.st, r);
                t.ht.since = sr_now();
                t.ht.n++;
                loss = r[SR_RES_TRAIN];
                correct = r[SR_RES_TRAIN_CORRECT];
                gnorm = r[SR_RES_GNORM];
            } else {
                sr_next_batch(&t.l, t.x, t.y);
                sr_pass_read(t.p, t.net.images, t.net.labels, t.x, t.y, bi, bl, RT_GRAD_W, &loss, &correct);
                gnorm = isfinite(loss) ? sr_clip_weight_grads(t.p, tc->w_clip) : 0;
            }
            double acc = correct / tc->batch;
            /* a non-finite loss or gradient stops before it reaches the weights, the log or a
               checkpoint (the whole step: its guard skipped SGD; the per-pass path on CUDA
               clips on the device: the loss only) */
            if (!isfinite(loss) || !isfinite(gnorm)) {
                sr_diverged(err, errlen, isfinite(loss) ? "the weight gradient norm" : "the training loss",
                            isfinite(loss) ? gnorm : loss, t.epoch, t.step, t.global_step, lr, t.ckpt);
                goto out;
            }
            const char *warning = NULL;
            if (loss > res->loss_peak) {
                if (loss > SR_LOSS_WARN && res->loss_peak <= SR_LOSS_WARN)
                    warning = "the loss exceeds 100: training is exploding numerically (learning rate too high?)";
                res->loss_peak = loss;
                res->loss_peak_step = t.global_step;
            }
            if (!t.st.p) t.be->sgd_step(t.be, gw.data, t.buf, gw.grad, gw.n, lr, tc->w_momentum, tc->w_wd);
            t.be->synchronize(t.be);
            done++;
            sum_loss += loss;
            sum_acc += acc;
            nsum++;
            const double tl = sr_now();
            double ips = (double)done * tc->batch / (tl - tstart);
            char line[384], n1[32];
            snprintf(line, sizeof line,
                     "{\"epoch\":%d,\"step\":%lld,\"global_step\":%lld,\"train_loss\":%.6g,\"train_acc\":%.6g,\"lr\":%.6g,"
                     "\"drop_path\":%.4g,\"images_per_s\":%s}\n",
                     t.epoch, (long long)t.step, (long long)t.global_step, loss, acc, lr,
                     tc->drop_path * (float)t.epoch / (float)tc->epochs, sr_json_num(n1, sizeof n1, "%.4g", ips));
            FILE *f = sr_dist_writer() ? fopen(t.metrics, "a") : NULL;
            if (f) {
                fputs(line, f);
                fclose(f);
            }
            const double tp = sr_now();
            if (t.st.p) t.ht.line += tp - tl;
            if (o->progress && sr_dist_writer()) {
                int64_t left = (int64_t)(tc->epochs - t.epoch) * t.steps_per_epoch - t.step - 1;
                sr_progress pr = {.epoch = t.epoch, .epochs = tc->epochs, .step = t.step, .steps_per_epoch = t.steps_per_epoch,
                                  .train_loss = loss, .train_acc = acc, .val_loss = NAN, .val_acc = NAN, .lr = lr,
                                  .images_per_s = ips, .eta_s = (double)left * tc->batch / (ips > 0 ? ips : 1),
                                  .warning = warning};
                o->progress(o->progress_ctx, &pr);
            }
            if (t.st.p) t.ht.progress += sr_now() - tp;
            t.step++;
            t.global_step++;
            /* periodic checkpoints between epoch ends (the epoch's end writes its own) */
            if (t.step < t.steps_per_epoch &&
                sr_checkpoint_due(o->checkpoint_steps, o->checkpoint_seconds, t.global_step, &last_ckpt) &&
                (tcheck_finite(&t, lr, err, errlen) || tsave(&t, err, errlen)))
                goto out;
        }
        t.ht.since = 0; /* the epoch's end is no gap between steps */
        if (tcheck_finite(&t, lr, err, errlen)) goto out;
        t.epoch++;
        t.step = 0;
        if (tsave(&t, err, errlen)) goto out;
    }
    if (sr_dist_root_rc(sr_dist_writer() ? sr_weights_save(t.p, t.model, err, errlen) : 0, err, errlen)) goto out;
    res->steps = t.global_step;
    res->train_loss = nsum ? sum_loss / nsum : NAN;
    res->train_acc = nsum ? sum_acc / nsum : NAN;
    res->seconds = sr_now() - t0;
    rc = 0;
out:
    tfree(&t);
    return rc;
}
