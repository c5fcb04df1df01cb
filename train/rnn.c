/* rnn.c — the recurrent (kind rnn) language-model run, its retraining and its perplexity
 * evaluation (rnn.h); the search adds its alpha steps through sr_lm_hooks (search/rnn.c). */
#include "rnn.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "runtime/dist.h"

#define RNN_CKPT_VERSION 1
#define EVAL_BATCH 10 /* the reference's eval_batch_size */


/* ---- one language-model run (search or retraining) ------------------------------------------ */

size_t sr_lm_hbytes(const sr_lm *m) { return (size_t)m->b * m->H * sizeof(float); }

/* Window w of s, (T, B), into xf, yf, and columns [col0, col0 + b) of it into x, y (the
 * same buffers when b = B). */
static void window_cols(const rt_text_stream *s, int64_t w, int T, int B, int b, int col0, int32_t *xf, int32_t *yf,
                        int32_t *x, int32_t *y) {
    rt_text_window(s, w, T, xf, yf);
    if (x == xf) return;
    for (int t = 0; t < T; t++) {
        memcpy(x + (size_t)t * b, xf + (size_t)t * B + col0, (size_t)b * 4);
        memcpy(y + (size_t)t * b, yf + (size_t)t * B + col0, (size_t)b * 4);
    }
}

void sr_lm_set_window(sr_lm *m, const rt_text_stream *s, int64_t w, const float *h) {
    window_cols(s, w, m->T, m->B, m->b, m->col0, m->xf, m->yf, m->x, m->y);
    for (int t = 0; t < m->T; t++) {
        rt_set_input(m->p, m->net.ids[t], m->x + (size_t)t * m->b, (size_t)m->b * 4);
        rt_set_input(m->p, m->net.targets[t], m->y + (size_t)t * m->b, (size_t)m->b * 4);
    }
    rt_set_input(m->p, m->net.h0, h, sr_lm_hbytes(m));
}

/* The reference's architect differentiates the bare cross-entropy. */
void sr_lm_set_tar(sr_lm *m, int on) {
    if (m->net.tar_scale >= 0)
        rt_plan_set_fattr(m->p, m->net.tar_scale, IR_F_P, on ? m->tar / (float)(m->T - 1) : 0.0f);
}

float sr_lm_last_ce(sr_lm *m) {
    float ce = NAN;
    rt_read(m->p, m->net.ce, &ce, sizeof ce);
    sr_dist_loss(&ce, NULL); /* equal shards: the global mean is the mean of the processes' */
    return ce;
}

void sr_lm_sum_grads(sr_lm *m, unsigned mask) { sr_dist_grads(m->p, mask); }

float sr_lm_weight_grad(sr_lm *m, float *clip) {
    sr_lm_set_window(m, &m->tr, m->step, m->h_train);
    sr_lm_set_tar(m, 1);
    rt_forward(m->p, 1);
    float loss = sr_lm_last_ce(m); /* reported: the cross-entropy; the step also descends the tar term */
    rt_read(m->p, m->net.hT, m->h_train, sr_lm_hbytes(m));
    rt_backward(m->p, RT_GRAD_W);
    sr_lm_sum_grads(m, RT_GRAD_W); /* clipped below as one process clips: the global gradient */
    float c = sr_lm_clip(m, m->tc->w_clip);
    if (clip) *clip = c;
    return loss;
}

float sr_lm_clip(sr_lm *m, float max_norm) {
    rt_group w = rt_plan_group(m->p, IR_ROLE_WEIGHT);
    double norm = sqrt(m->be->sumsq(m->be, w.grad, w.n)), c = max_norm / (norm + 1e-6);
    if (max_norm > 0 && c < 1.0) {
        m->be->scale(m->be, w.grad, (float)c, w.n);
        return (float)c;
    }
    return 1.0f;
}

/* Mean cross-entropy per token over every full window of a stream, hidden state carried
 * from zero, in evaluation mode (no dropout, BN running statistics). Data-parallel (m
 * non-NULL, the run's columns and window buffers): each process takes its columns, and the
 * processes' sums are added at the end. A stop request (of any process) ends it early with
 * *stopped set, on every process at the same window. */
static double eval_stream(rt_plan *p, const ir_rnn_net *net, const rt_text_stream *s, const sr_lm *m, int32_t *x,
                          int32_t *y, float *h, int64_t *tokens, volatile sig_atomic_t *stop, int *stopped) {
    int T = net->T, b = net->batch, B = m ? m->B : b, col0 = m ? m->col0 : 0;
    int32_t *xf = m ? m->xf : x, *yf = m ? m->yf : y;
    memset(h, 0, (size_t)b * net->nhid * 4);
    int64_t nw = rt_text_windows(s, T);
    double sum = 0;
    for (int64_t w = 0; w < nw; w++) {
        if (stop && rt_dist_sum_int(*stop != 0)) { /* the caller checkpoints */
            *stopped = 1;
            return NAN;
        }
        window_cols(s, w, T, B, b, col0, xf, yf, x, y);
        for (int t = 0; t < T; t++) {
            rt_set_input(p, net->ids[t], x + (size_t)t * b, (size_t)b * 4);
            rt_set_input(p, net->targets[t], y + (size_t)t * b, (size_t)b * 4);
        }
        rt_set_input(p, net->h0, h, (size_t)b * net->nhid * 4);
        rt_forward(p, 0);
        float ce = NAN;
        rt_read(p, net->ce, &ce, sizeof ce); /* the cross-entropy, without a tar term */
        sum += ce;
        rt_read(p, net->hT, h, (size_t)b * net->nhid * 4);
    }
    if (m) {
        rt_dist_allreduce_f64(&sum, 1);
        sum /= rt_dist_size();
    }
    if (tokens) *tokens = nw * T * B;
    return nw ? sum / (double)nw : NAN;
}

/* The checkpoint's table (train/checkpoint.h): meta {version, param hash, epoch, step,
 * global step, Adam t, plan step, metrics bytes}, the parameter groups and optimiser state
 * the run has (retraining: no alpha, no Adam; momentum 0: no SGD buffer), then both
 * hidden states. */
enum { META_N = 8, CKPT_N = 11 };
static void ckpt_table(sr_lm *m, int64_t *meta, int64_t *settings, int64_t *dist, sr_ckpt_entry *e) {
    rt_group gw = rt_plan_group(m->p, IR_ROLE_WEIGHT), ga = rt_plan_group(m->p, IR_ROLE_ARCH),
             gb = rt_plan_group(m->p, IR_ROLE_BUFFER);
    int64_t hn = (int64_t)m->B * m->H;
    sr_ckpt_entry t[CKPT_N] = {
        {SR_CKPT_I64, "meta/state", meta, META_N, 0},
        {SR_CKPT_DEV, "group/weights", gw.data, gw.n, 1},
        {SR_CKPT_DEV, "group/arch", ga.data, ga.n, 1},
        {SR_CKPT_DEV, "group/buffers", gb.data, gb.n, 1},
        {SR_CKPT_DEV, "opt/sgd_momentum", m->sgd_buf, m->sgd_buf ? gw.n : 0, 1},
        {SR_CKPT_DEV, "opt/adam_m", m->adam_m, m->adam_m ? ga.n : 0, 1},
        {SR_CKPT_DEV, "opt/adam_v", m->adam_v, m->adam_v ? ga.n : 0, 1},
        {SR_CKPT_HOST, "state/hidden_train", m->hf_train, hn, 0},
        {SR_CKPT_HOST, "state/hidden_valid", m->hf_valid, hn, 0},
        {SR_CKPT_I64, "meta/settings", settings, SR_SETTINGS_N, 1}, /* optional: older checkpoints lack it */
        {SR_CKPT_I64, "meta/dist", dist, 2, 1}};
    memcpy(e, t, sizeof t);
}

/* Data-parallel: every process's hidden states, (b, H) each, into the (B, H) ones of the
 * checkpoint (process k's rows are rows [col0, col0 + b)); every process calls it. */
static void gather_hidden(sr_lm *m) {
    if (m->hf_train == m->h_train) return;
    float *h[2] = {m->h_train, m->h_valid}, *hf[2] = {m->hf_train, m->hf_valid};
    const size_t n = (size_t)m->b * m->H;
    double *tmp = malloc(n * sizeof(double));
    if (!tmp) {
        fprintf(stderr, "dartsc: rank %d: out of memory for the hidden states of a checkpoint\n", rt_dist_rank());
        rt_dist_abort(1);
    }
    for (int k = 0; k < 2; k++) { /* floats as doubles: exact */
        for (size_t i = 0; i < n; i++) tmp[i] = h[k][i];
        const double *all = rt_dist_allgather_f64(tmp, (int)n);
        for (size_t i = 0; i < n * (size_t)rt_dist_size(); i++) hf[k][i] = (float)all[i];
    }
    free(tmp);
}

/* Rank 0 writes (every process holds the same weights and optimiser state). */
static int save_ckpt(sr_lm *m, char *err, size_t errlen) {
    gather_hidden(m);
    if (!sr_dist_writer()) return sr_dist_root_rc(0, err, errlen);
    if (m->metrics) fflush(m->metrics);
    int64_t meta[META_N] = {RNN_CKPT_VERSION, (int64_t)sr_param_hash(m->net.graph), m->epoch, m->step, m->global_step,
                            m->adam_t, (int64_t)rt_plan_step(m->p), sr_file_size(m->path_metrics)};
    int64_t settings[SR_SETTINGS_N], dist[2] = {rt_dist_size(), m->tc->sync_bn};
    sr_ckpt_settings(m->tc, m->search ? 0 : -1, 0, 0, settings);
    sr_ckpt_entry e[CKPT_N];
    ckpt_table(m, meta, settings, dist, e);
    return sr_dist_root_rc(sr_ckpt_save(m->path_ckpt, m->be, e, CKPT_N, err, errlen), err, errlen);
}

static int read_ckpt(sr_lm *m, sr_ckpt_entry *e, int64_t *meta, const int64_t *settings, const int64_t *dist,
                     int64_t n_epochs_steps, char *err, size_t errlen);

/* Rank 0 reads, checks and restores; the other processes receive its entries and take
 * their columns of the hidden states. */
static int load_ckpt(sr_lm *m, int64_t n_epochs_steps, char *err, size_t errlen) {
    int64_t meta[META_N] = {0}, settings[SR_SETTINGS_N] = {0}, dist[2] = {0, 0};
    sr_ckpt_entry e[CKPT_N];
    ckpt_table(m, meta, settings, dist, e);
    int rc = sr_dist_writer() ? read_ckpt(m, e, meta, settings, dist, n_epochs_steps, err, errlen) : 0;
    if (sr_dist_root_rc(rc, err, errlen)) return -1;
    sr_ckpt_bcast(m->be, e, CKPT_N);
    if (m->hf_train != m->h_train) {
        memcpy(m->h_train, m->hf_train + (size_t)m->col0 * m->H, sr_lm_hbytes(m));
        memcpy(m->h_valid, m->hf_valid + (size_t)m->col0 * m->H, sr_lm_hbytes(m));
    }
    m->epoch = (int)meta[2];
    m->step = meta[3];
    m->global_step = meta[4];
    m->adam_t = (int)meta[5];
    rt_plan_set_step(m->p, (uint64_t)meta[6]);
    return 0;
}

/* The number of processes is checked before anything else: it also sets the shape of the
 * batch-shaped buffers (the dropout masks' ones, (B/N, H)), which the parameter check
 * would report as another network. */
static int check_dist_first(sr_lm *m, char *err, size_t errlen) {
    char e2[512];
    rt_tf_file *f = rt_tf_read(m->path_ckpt, e2, sizeof e2);
    if (!f) return 0; /* sr_ckpt_read says why */
    int64_t dist[2] = {SR_CKPT_ABSENT, 0};
    int rc = rt_tf_find(f, "meta/dist") ? sr_get_i64s(f, "meta/dist", dist, 2, m->path_ckpt, err, errlen) : 0;
    rt_tf_free(f);
    return rc ? rc : sr_ckpt_check_dist(m->path_ckpt, dist, m->tc->sync_bn, err, errlen);
}

static int read_ckpt(sr_lm *m, sr_ckpt_entry *e, int64_t *meta, const int64_t *settings, const int64_t *dist,
                     int64_t n_epochs_steps, char *err, size_t errlen) {
    int64_t now[SR_SETTINGS_N];
    if (check_dist_first(m, err, errlen)) return -1;
    rt_tf_file *f = sr_ckpt_read(m->path_ckpt, e, CKPT_N, RNN_CKPT_VERSION, m->net.graph, err, errlen);
    if (!f) return -1;
    sr_ckpt_settings(m->tc, m->search ? 0 : -1, 0, 0, now);
    int rc = sr_ckpt_check_settings(m->path_ckpt, settings, now, err, errlen) ||
                     sr_ckpt_check_dist(m->path_ckpt, dist, m->tc->sync_bn, err, errlen)
                 ? -1
                 : 0;
    if (!rc && (meta[2] < 0 || meta[2] > m->tc->epochs || meta[3] < 0 || meta[3] > n_epochs_steps))
        rc = sr_fail(err, errlen, "%s: epoch %lld step %lld do not fit this run", m->path_ckpt, (long long)meta[2], (long long)meta[3]);
    if (!rc) rc = sr_ckpt_truncate_log(m->path_metrics, meta[7], err, errlen);
    if (rc) {
        rt_tf_free(f);
        return rc;
    }
    sr_ckpt_restore(f, m->be, e, CKPT_N);
    return 0;
}

void sr_lm_free(sr_lm *m) {
    if (m->metrics) fclose(m->metrics);
    rt_backend *be = m->be;
    if (be) {
        float *dv[] = {m->sgd_buf, m->adam_m, m->adam_v};
        for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
            if (dv[i]) be->free(be, dv[i]);
    }
    rt_plan_free(m->p);
    ir_rnn_net_free(&m->net);
    if (be) be->destroy(be);
    rt_text_stream_free(&m->tr);
    rt_text_stream_free(&m->va);
    rt_corpus_free(&m->corpus);
    if (m->xf != m->x) free(m->xf);
    if (m->yf != m->y) free(m->yf);
    if (m->hf_train != m->h_train) free(m->hf_train);
    if (m->hf_valid != m->h_valid) free(m->hf_valid);
    free(m->x);
    free(m->y);
    free(m->h_train);
    free(m->h_valid);
}

float *sr_lm_dev_zeros(rt_backend *be, int64_t n) {
    size_t bytes = (size_t)(n ? n : 1) * 4;
    float *p = be->alloc(be, bytes);
    if (p) be->memset0(be, p, bytes);
    return p;
}

int sr_lm_open(sr_lm *m, const ir_space *sp, const ir_train_config *tc, const ir_geno_cell *gc, const char *device,
               const char *out_dir, const char *ckpt_name, const char *metrics_name, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->sp = sp;
    m->tc = tc;
    m->search = gc == NULL;
    m->T = tc->bptt > 0 ? tc->bptt : 35;
    m->B = tc->batch;
    m->H = sp->hidden;
    if ((m->b = sr_dist_local_batch(m->B, err, errlen)) < 0) return -1; /* data-parallel: this process's columns */
    m->col0 = rt_dist_rank() * m->b;
    if (rt_corpus_load(sp->data_path, &m->corpus, err, errlen)) return -1;
    if (rt_text_batchify(m->corpus.ids[RT_SPLIT_TRAIN], m->corpus.n[RT_SPLIT_TRAIN], m->B, &m->tr) ||
        rt_text_batchify(m->corpus.ids[RT_SPLIT_VALID], m->corpus.n[RT_SPLIT_VALID], m->B, &m->va))
        return sr_fail(err, errlen, "%s: the corpus is too small for batch %d", sp->data_path, m->B);
    m->n_tr = rt_text_windows(&m->tr, m->T);
    m->n_va = rt_text_windows(&m->va, m->T);
    if (tc->subset > 0 && tc->subset < m->n_tr) m->n_tr = tc->subset; /* subset: windows per epoch */
    if (m->n_tr < 1 || m->n_va < 1)
        return sr_fail(err, errlen, "%s: fewer tokens than one window of bptt %d x batch %d", sp->data_path, m->T, m->B);
    m->be = rt_backend_open(device, err, errlen);
    if (!m->be) return -1;
    ir_rnn_opts ro = {.T = m->T, .batch = m->b, .ntoken = m->corpus.n_words, .dropout = tc->dropout,
                      .dropout_h = tc->dropout_h, .dropout_x = tc->dropout_x, .dropout_i = tc->dropout_i,
                      .dropout_e = tc->dropout_e, .tar = tc->tar};
    if (ro.tar > 0 && !m->be->supports_op(m->be, IR_OP_SQMEAN)) {
        fprintf(stderr, "dartsc: warning: the %s backend has no temporal activation regularisation yet; tar %g is "
                "left out\n", m->be->name, tc->tar);
        ro.tar = 0;
    }
    m->tar = ro.tar;
    if (ir_space_build_rnn(sp, gc, &ro, &m->net)) return sr_fail(err, errlen, "%s", m->net.error);
    m->p = rt_plan_new(m->net.graph, m->be,
                       &(rt_plan_opts){.seed = tc->seed, .grads = m->search ? RT_GRAD_W | RT_GRAD_ARCH : RT_GRAD_W,
                                       .mask_stream = (uint64_t)rt_dist_rank(),
                                       .bn_sync = tc->sync_bn ? rt_dist_bn_sync() : NULL},
                       err, errlen);
    if (!m->p) return -1;
    rt_group gw = rt_plan_group(m->p, IR_ROLE_WEIGHT), ga = rt_plan_group(m->p, IR_ROLE_ARCH);
    m->x = malloc((size_t)m->T * m->b * 4);
    m->y = malloc((size_t)m->T * m->b * 4);
    m->h_train = calloc((size_t)m->b * m->H, 4);
    m->h_valid = calloc((size_t)m->b * m->H, 4);
    if (!m->x || !m->y || !m->h_train || !m->h_valid) return sr_fail(err, errlen, "out of memory");
    if (m->b == m->B) {
        m->xf = m->x, m->yf = m->y, m->hf_train = m->h_train, m->hf_valid = m->h_valid;
    } else if (!(m->xf = malloc((size_t)m->T * m->B * 4)) || !(m->yf = malloc((size_t)m->T * m->B * 4)) ||
               !(m->hf_train = calloc((size_t)m->B * m->H, 4)) || !(m->hf_valid = calloc((size_t)m->B * m->H, 4)))
        return sr_fail(err, errlen, "out of memory");
    if (tc->w_momentum > 0 && !(m->sgd_buf = sr_lm_dev_zeros(m->be, gw.n))) return sr_fail(err, errlen, "out of memory");
    if (m->search && (!(m->adam_m = sr_lm_dev_zeros(m->be, ga.n)) || !(m->adam_v = sr_lm_dev_zeros(m->be, ga.n))))
        return sr_fail(err, errlen, "out of memory");
    if (sr_dist_root_rc(sr_dist_writer() ? sr_mkdir_p(out_dir, err, errlen) : 0, err, errlen)) return -1;
    snprintf(m->path_ckpt, sizeof m->path_ckpt, "%s/%s", out_dir, ckpt_name);
    snprintf(m->path_metrics, sizeof m->path_metrics, "%s/%s", out_dir, metrics_name);
    return 0;
}

/* progress prints to stderr: the drivers' progress callbacks show accuracy; a language model
 * reports perplexity. */
int sr_lm_loop(sr_lm *m, const sr_lm_hooks *hooks, int resume, volatile sig_atomic_t *stop, int64_t stop_after,
               int progress, double *last_valid_loss, char *err, size_t errlen) {
    const ir_train_config *tc = m->tc;
    if (resume) {
        if (load_ckpt(m, m->n_tr, err, errlen)) return -1;
    } else {
        int rc = 0; /* data-parallel: rank 0's run directory decides */
        if (sr_dist_writer() && access(m->path_ckpt, F_OK) == 0)
            rc = sr_fail(err, errlen, "%s already exists; pass --resume to continue that run or choose another --out",
                         m->path_ckpt);
        else if (sr_dist_writer()) {
            FILE *f = fopen(m->path_metrics, "w");
            if (f) fclose(f);
        }
        if (sr_dist_root_rc(rc, err, errlen)) return -1;
    }
    /* rank 0 writes the log; the others keep no metrics file (m->metrics NULL) */
    int open_rc = 0;
    if (sr_dist_writer() && !(m->metrics = fopen(m->path_metrics, "a")))
        open_rc = sr_fail(err, errlen, "%s: cannot open: %s", m->path_metrics, strerror(errno));
    if (sr_dist_root_rc(open_rc, err, errlen)) return -1;
    rt_backend *be = m->be;
    rt_group gw = rt_plan_group(m->p, IR_ROLE_WEIGHT);
    double t0 = sr_now(), last_ckpt = t0;
    int rc = 0;
    while (m->epoch < tc->epochs) {
        float lr = tc->w_lr_min >= tc->w_lr ? tc->w_lr : sr_cosine_lr(tc, m->epoch);
        if (m->step == 0) { /* a new epoch starts from zero hidden states, as the reference */
            memset(m->h_train, 0, sr_lm_hbytes(m));
            memset(m->h_valid, 0, sr_lm_hbytes(m));
        }
        for (; m->step < m->n_tr; m->step++) {
            double ts = sr_now();
            float val_loss = NAN;
            if (hooks && hooks->arch_step) val_loss = hooks->arch_step(m, lr, hooks->ctx);
            float loss = sr_lm_weight_grad(m, NULL);
            /* a non-finite loss stops the run before it reaches the weights, the log or a checkpoint
               (data-parallel: the losses are the processes' sums, so every process stops alike) */
            if (!isfinite(loss) || (hooks && hooks->arch_step && !isfinite(val_loss))) {
                rc = sr_diverged(err, errlen, isfinite(loss) ? "the validation loss" : "the training loss",
                                 isfinite(loss) ? val_loss : loss, m->epoch, m->step, m->global_step, lr, m->path_ckpt);
                goto out;
            }
            be->sgd_step(be, gw.data, m->sgd_buf, gw.grad, gw.n, lr, m->sgd_buf ? tc->w_momentum : 0.f, tc->w_wd);
            m->global_step++;
            if (m->metrics) {
                fprintf(m->metrics, "{\"epoch\": %d, \"step\": %lld, \"train_loss\": %.6f, \"train_ppl\": %.3f",
                        m->epoch, (long long)m->step, loss, exp(loss));
                if (m->search) fprintf(m->metrics, ", \"val_loss\": %.6f, \"val_ppl\": %.3f", val_loss, exp(val_loss));
                fprintf(m->metrics, ", \"lr\": %g}\n", lr);
            }
            if (progress && (m->step % 10 == 0 || m->step + 1 == m->n_tr)) {
                double dt = sr_now() - ts;
                fprintf(stderr, "%s epoch %d/%d window %lld/%lld loss %.4f ppl %.1f", m->search ? "search" : "train",
                        m->epoch + 1, tc->epochs, (long long)m->step + 1, (long long)m->n_tr, loss, exp(loss));
                if (m->search) fprintf(stderr, " | valid window ppl %.1f", exp(val_loss));
                fprintf(stderr, " | lr %g, %.0f tokens/s\n", lr, dt > 0 ? m->T * m->B / dt : 0); /* global batch */
            }
            /* data-parallel: every process stops at the same step when any was asked to */
            if (rt_dist_sum_int(stop && *stop) || (stop_after > 0 && m->global_step >= stop_after)) {
                m->step++;
                if (save_ckpt(m, err, errlen)) { rc = -1; goto out; }
                rc = 1;
                goto out;
            }
            /* periodic checkpoints between epoch ends (the epoch's end writes its own), of
               finite weights only; they resume at the next window */
            if (m->step + 1 < m->n_tr && sr_checkpoint_due(m->ckpt_steps, m->ckpt_seconds, m->global_step, &last_ckpt)) {
                double ws = sr_group_sumsq(m->p, IR_ROLE_WEIGHT) + sr_group_sumsq(m->p, IR_ROLE_ARCH);
                if (!isfinite(ws)) {
                    rc = sr_diverged(err, errlen, "the sum of squares of the weights and alpha", ws, m->epoch, m->step,
                                     m->global_step - 1, lr, m->path_ckpt);
                    goto out;
                }
                m->step++;
                int bad = save_ckpt(m, err, errlen);
                m->step--;
                if (bad) { rc = -1; goto out; }
            }
        }
        /* end of epoch: validation perplexity in evaluation mode from zero hidden state */
        {
            float *h = malloc(sr_lm_hbytes(m));
            if (!h) { rc = sr_fail(err, errlen, "out of memory"); goto out; }
            uint64_t pstep = rt_plan_step(m->p);
            int stopped = 0;
            double vl = eval_stream(m->p, &m->net, &m->va, m, m->x, m->y, h, NULL, stop, &stopped);
            free(h);
            if (stopped) { /* stopped during validation: resume redoes it (step = n_tr) */
                rt_plan_set_step(m->p, pstep);
                rc = save_ckpt(m, err, errlen) ? -1 : 1;
                goto out;
            }
            double ws = sr_group_sumsq(m->p, IR_ROLE_WEIGHT) + sr_group_sumsq(m->p, IR_ROLE_ARCH);
            if (!isfinite(vl) || !isfinite(ws)) {
                rc = sr_diverged(err, errlen, isfinite(vl) ? "the sum of squares of the weights and alpha" : "the validation loss",
                                 isfinite(vl) ? ws : vl, m->epoch, m->n_tr - 1, m->global_step - 1, lr, m->path_ckpt);
                goto out;
            }
            if (last_valid_loss) *last_valid_loss = vl;
            if (m->metrics)
                fprintf(m->metrics, "{\"epoch\": %d, \"epoch_end\": 1, \"valid_loss\": %.6f, \"valid_ppl\": %.3f",
                        m->epoch, vl, exp(vl));
            if (hooks && hooks->epoch_end && hooks->epoch_end(m, err, errlen, hooks->ctx)) { rc = -1; goto out; }
            if (m->metrics) fprintf(m->metrics, "}\n");
            if (progress)
                fprintf(stderr, "%s epoch %d/%d: validation loss %.4f perplexity %.2f (%.0f s)\n",
                        m->search ? "search" : "train", m->epoch + 1, tc->epochs, vl, exp(vl), sr_now() - t0);
        }
        m->step = 0;
        m->epoch++; /* the checkpoint resumes at the next epoch */
        if (save_ckpt(m, err, errlen)) { rc = -1; goto out; }
    }
out:
    return rc;
}

int sr_rnn_train(const ir_space *sp, const ir_genotype *gt, const sr_train_opts *o, sr_train_result *res, char *err,
                 size_t errlen) {
    memset(res, 0, sizeof *res);
    double t0 = sr_now();
    sr_lm m;
    int rc = sr_lm_open(&m, sp, &sp->train, &gt->normal, o->device, o->out_dir, "train_checkpoint.dtns",
                     "train_metrics.jsonl", err, errlen);
    double vl = NAN;
    m.ckpt_steps = o->checkpoint_steps;
    m.ckpt_seconds = o->checkpoint_seconds;
    if (rc == 0) rc = sr_lm_loop(&m, NULL, o->resume, o->stop, o->stop_after_steps, o->progress != NULL, &vl, err,
                                 errlen);
    if (rc == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/model.dtns", o->out_dir);
        rc = sr_dist_root_rc(sr_dist_writer() ? sr_weights_save(m.p, path, err, errlen) : 0, err, errlen);
        res->train_loss = vl; /* recurrent: last validation loss */
        res->train_acc = exp(vl);
    }
    if (rc >= 0) {
        res->stopped = rc == 1;
        res->steps = m.global_step;
        rc = 0;
    }
    res->seconds = sr_now() - t0;
    sr_lm_free(&m);
    return rc;
}

int sr_rnn_evaluate(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device, sr_rnn_eval *res,
                    char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    rt_corpus c;
    if (rt_corpus_load(sp->data_path, &c, err, errlen)) return -1;
    int T = sp->train.bptt > 0 ? sp->train.bptt : 35, B = EVAL_BATCH, rc = -1;
    ir_rnn_net net = {0};
    rt_backend *be = NULL;
    rt_plan *p = NULL;
    rt_text_stream s[2] = {{0}};
    int32_t *x = malloc((size_t)T * B * 4), *y = malloc((size_t)T * B * 4);
    float *h = malloc((size_t)B * sp->hidden * 4);
    ir_rnn_opts ro = {.T = T, .batch = B, .ntoken = c.n_words};
    if (!x || !y || !h) { sr_fail(err, errlen, "out of memory"); goto out; }
    if (ir_space_build_rnn(sp, &gt->normal, &ro, &net)) { sr_fail(err, errlen, "%s", net.error); goto out; }
    if (!(be = rt_backend_open(device, err, errlen))) goto out;
    if (!(p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = 0}, err, errlen))) goto out;
    if (sr_weights_load(p, weights, err, errlen)) goto out;
    for (int k = 0; k < 2; k++) {
        int split = k ? RT_SPLIT_TEST : RT_SPLIT_VALID;
        if (rt_text_batchify(c.ids[split], c.n[split], B, &s[k]) || rt_text_windows(&s[k], T) < 1) {
            sr_fail(err, errlen, "%s: the %s split is shorter than one window (bptt %d x batch %d)", sp->data_path,
                 k ? "test" : "valid", T, B);
            goto out;
        }
    }
    res->valid_loss = eval_stream(p, &net, &s[0], NULL, x, y, h, &res->valid_tokens, NULL, NULL);
    res->test_loss = eval_stream(p, &net, &s[1], NULL, x, y, h, &res->test_tokens, NULL, NULL);
    res->valid_ppl = exp(res->valid_loss);
    res->test_ppl = exp(res->test_loss);
    rc = 0;
out:
    rt_text_stream_free(&s[0]);
    rt_text_stream_free(&s[1]);
    rt_plan_free(p);
    if (be) be->destroy(be);
    ir_rnn_net_free(&net);
    rt_corpus_free(&c);
    free(x);
    free(y);
    free(h);
    return rc;
}
