/* common.c — see common.h. */
#include "common.h"
#include "runtime/datasets.h"
#include "runtime/dist.h"
#include "runtime/runtime.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Reads one split of the space's data (the loaders of runtime/). */
static int data_read(const ir_space *sp, int train, rt_dataset *out, char *err, size_t errlen) {
    const char *path = sp->data_path[0] ? sp->data_path : NULL;
    int rc;
    if (sp->data == IR_DATA_FASHION_MNIST) rc = rt_data_load_fashion_mnist(path, train, out, err, errlen);
    else if (sp->data == IR_DATA_CIFAR10) {
        if (!path) {
            snprintf(err, errlen, "space '%s': CIFAR-10 needs a data directory (data cifar10 \"DIR\" or --data DIR)", sp->name);
            return -1;
        }
        rc = rt_data_load_cifar10(path, train, out, err, errlen);
    } else if (sp->data == IR_DATA_CIFAR100) {
        rc = rt_data_load_cifar100(path, train, out, err, errlen);
    } else if (sp->data == IR_DATA_NPY || sp->data == IR_DATA_IMAGES) { /* converted to the space's input */
        rt_data_want want = {.c = sp->in_c, .h = sp->in_h, .w = sp->in_w, .classes = sp->classes};
        rc = sp->data == IR_DATA_NPY ? rt_data_load_npy(path, train, &want, out, err, errlen)
                                     : rt_data_load_images(path, train, &want, out, err, errlen);
    } else {
        snprintf(err, errlen, "space '%s': text corpora are for recurrent spaces, which cannot be trained yet", sp->name);
        return -1;
    }
    return rc ? -1 : 0;
}

/* ---- decoded splits kept for the process (sr_data_keep) ---------------------------------------- */

enum { DATA_KEPT_MAX = 8 };
typedef struct data_kept {
    int used, source, train, c, h, w, classes; /* the key: what data_read's result depends on */
    char path[sizeof(((ir_space *)0)->data_path)];
    rt_dataset d;
} data_kept;
static data_kept data_kept_sets[DATA_KEPT_MAX];
static int keeping;

void sr_data_keep(int on) {
    if (!on)
        for (int i = 0; i < DATA_KEPT_MAX; i++) {
            rt_dataset_free(&data_kept_sets[i].d);
            memset(&data_kept_sets[i], 0, sizeof data_kept_sets[i]);
        }
    keeping = on;
}

static int kept_matches(const data_kept *k, const ir_space *sp, int train) {
    return k->used && k->source == (int)sp->data && k->train == train && k->c == sp->in_c && k->h == sp->in_h &&
           k->w == sp->in_w && k->classes == sp->classes && !strcmp(k->path, sp->data_path);
}

int sr_data_load(const ir_space *sp, int train, rt_dataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    data_kept *k = NULL;
    for (int i = 0; keeping && i < DATA_KEPT_MAX && !k; i++)
        if (kept_matches(&data_kept_sets[i], sp, train)) k = &data_kept_sets[i];
    if (k) {
        rt_data_subset(&k->d, 0, k->d.n, out); /* a view: the kept set stays */
    } else {
        double t0 = sr_now();
        if (data_read(sp, train, out, err, errlen)) return -1;
        for (int i = 0; keeping && i < DATA_KEPT_MAX && !k; i++)
            if (!data_kept_sets[i].used) k = &data_kept_sets[i];
        if (k) {
            *k = (data_kept){.used = 1, .source = (int)sp->data, .train = train, .c = sp->in_c, .h = sp->in_h,
                             .w = sp->in_w, .classes = sp->classes, .d = *out};
            snprintf(k->path, sizeof k->path, "%s", sp->data_path);
            rt_data_subset(&k->d, 0, k->d.n, out);
            fprintf(stderr, "data: read the %s split of %s: %d images in %.2f s (kept for the later stages)\n",
                    train ? "training" : "test", sp->data_path[0] ? sp->data_path : "the default directory", k->d.n,
                    sr_now() - t0);
        }
    }
    if (out->c != sp->in_c || out->h != sp->in_h || out->w != sp->in_w) {
        snprintf(err, errlen, "space '%s' expects %dx%dx%d inputs but the data set has %dx%dx%d", sp->name, sp->in_c,
                 sp->in_h, sp->in_w, out->c, out->h, out->w);
        rt_dataset_free(out);
        return -1;
    }
    if (out->classes > sp->classes) {
        snprintf(err, errlen, "space '%s' has %d classes but the data set has %d", sp->name, sp->classes, out->classes);
        rt_dataset_free(out);
        return -1;
    }
    return 0;
}

int sr_data_prepare(const ir_space *sp, int train, int test, char *err, size_t errlen) {
    if (sp->kind == IR_SPACE_RNN) return 0; /* the corpus is read as the run opens, before its directory */
    for (int split = 1; split >= 0; split--) {
        if (!(split ? train : test)) continue;
        rt_dataset d;
        if (sr_data_load(sp, split, &d, err, errlen)) return -1;
        rt_dataset_free(&d);
    }
    return 0;
}

rt_loader_cfg sr_loader_cfg(const ir_space *sp, const ir_train_config *tc, int augment) {
    static const float cm[4] = RT_DATA_CIFAR10_MEAN, cs[4] = RT_DATA_CIFAR10_STD;
    static const float fm[4] = RT_DATA_FMNIST_MEAN, fs[4] = RT_DATA_FMNIST_STD;
    rt_loader_cfg cfg = rt_loader_cfg_default();
    cfg.batch_size = tc->batch;
    cfg.normalize = 1;
    int cifar = sp->data == IR_DATA_CIFAR10;
    for (int c = 0; c < sp->in_c && c < RT_DATA_MAX_C; c++) {
        int have = sp->std[c] > 0; /* the space's own normalisation, else the data set's */
        cfg.mean[c] = have ? sp->mean[c] : cifar ? cm[c] : fm[c];
        cfg.std[c] = have ? sp->std[c] : cifar ? cs[c] : fs[c];
    }
    cfg.shuffle = augment;
    cfg.drop_last = augment;
    if (augment) {
        cfg.crop_pad = tc->crop_pad;
        cfg.flip = tc->hflip;
        cfg.cutout = tc->cutout;
    }
    return cfg;
}

void sr_next_batch(rt_loader *l, float *x, int32_t *y) {
    int b = 0;
    if (!rt_loader_next(l, x, y, &b)) rt_loader_next(l, x, y, &b);
}

int sr_put_i64s(rt_tf_writer *w, const char *name, const int64_t *v, int n) {
    int32_t buf[64];
    if (n > 32) return -1;
    for (int i = 0; i < n; i++) {
        buf[2 * i] = (int32_t)(uint32_t)((uint64_t)v[i] & 0xffffffffu);
        buf[2 * i + 1] = (int32_t)(uint32_t)((uint64_t)v[i] >> 32);
    }
    return rt_tf_write(w, name, RT_TF_I32, 1, (int64_t[]){2 * n}, buf);
}

int sr_get_i64s(const rt_tf_file *f, const char *name, int64_t *v, int n, const char *path, char *err, size_t errlen) {
    const rt_tf_entry *e = rt_tf_find(f, name);
    if (!e || e->dtype != RT_TF_I32 || e->numel != 2 * n) {
        snprintf(err, errlen, "%s: not a dartsc file of this kind (no '%s')", path, name);
        return -1;
    }
    const int32_t *d = e->data;
    for (int i = 0; i < n; i++) v[i] = (int64_t)(((uint64_t)(uint32_t)d[2 * i + 1] << 32) | (uint32_t)d[2 * i]);
    return 0;
}

int sr_mkdir_p(const char *dir, char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *q = tmp + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
            return -1;
        }
        *q = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

long sr_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

double sr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t sr_param_hash(const ir_graph *g) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op != IR_OP_PARAM) continue;
        for (const char *c = n->name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
        for (int d = 0; d < n->ndim; d++) h = (h ^ (uint64_t)n->shape[d]) * 1099511628211ull;
    }
    return h;
}

float sr_cosine_lr(const ir_train_config *tc, int epoch) {
    return tc->w_lr_min + 0.5f * (tc->w_lr - tc->w_lr_min) * (1.0f + cosf((float)M_PI * (float)epoch / (float)tc->epochs));
}

double sr_clip_weight_grads(rt_plan *p, float max_norm) {
    rt_backend *be = rt_plan_backend(p);
    rt_group w = rt_plan_group(p, IR_ROLE_WEIGHT);
    if (be->clip_norm) { /* on the device: no host synchronisation */
        be->clip_norm(be, w.grad, w.n, max_norm);
        return 0;
    }
    double norm = sqrt(be->sumsq(be, w.grad, w.n));
    double coef = max_norm / (norm + 1e-6);
    if (max_norm > 0 && coef < 1.0) be->scale(be, w.grad, (float)coef, w.n);
    return norm;
}

void sr_pass_read(rt_plan *p, int images, int labels, const float *x, const int32_t *y, size_t bx, size_t by,
                  unsigned mask, float *loss, double *correct) {
    rt_set_input(p, images, x, bx);
    rt_set_input(p, labels, y, by);
    rt_pass(p, 1, mask);
    sr_dist_grads(p, mask);
    *loss = rt_loss(p);
    *correct = rt_last_correct(p);
    sr_dist_loss(loss, correct);
}

/* ---- whole steps ---- */

int sr_step_usable(const ir_train_config *tc) { return rt_dist_size() == 1 && !tc->sync_bn; }

int sr_step_init(sr_step *s, rt_plan *p, int images, int labels, int nbatch) {
    memset(s, 0, sizeof *s);
    rt_backend *be = rt_plan_backend(p);
    const ir_graph *g = rt_plan_graph(p);
    s->p = p;
    s->images = images;
    s->labels = labels;
    s->bx = (size_t)ir_node_numel(ir_graph_node(g, images)) * 4;
    s->by = (size_t)ir_node_numel(ir_graph_node(g, labels)) * 4;
    const size_t fx = s->bx / 4, fy = s->by / 4, nb = nbatch == 2 ? 2 : 1; /* labels: int32 slots of a float's size */
    const size_t bytes = (nb * (fx + fy) + SR_STEP_SC + SR_STEP_RES) * sizeof(float);
    if (!(s->dev = be->alloc(be, bytes))) return -1;
    be->memset0(be, s->dev, bytes);
    for (size_t k = 0; k < nb; k++) {
        s->x[k] = s->dev + k * fx;
        s->y[k] = (int32_t *)(s->dev + nb * fx + k * fy);
    }
    s->sc = s->dev + nb * (fx + fy);
    s->res = s->sc + SR_STEP_SC;
    return 0;
}

void sr_step_free(sr_step *s) {
    if (s->dev) rt_plan_backend(s->p)->free(rt_plan_backend(s->p), s->dev);
    memset(s, 0, sizeof *s);
}

void sr_step_put(sr_step *s, int k, const float *x, const int32_t *y) {
    rt_backend *be = rt_plan_backend(s->p);
    be->upload(be, s->x[k], x, s->bx);
    be->upload(be, s->y[k], y, s->by);
}

void sr_step_put_scalars(sr_step *s, const float *scalars) {
    rt_backend *be = rt_plan_backend(s->p);
    be->upload(be, s->sc, scalars, SR_STEP_SC * sizeof(float));
}

void sr_step_use_batch(sr_step *s, int k) {
    rt_set_input_dev(s->p, s->images, s->x[k], s->bx);
    rt_set_input_dev(s->p, s->labels, s->y[k], s->by);
}

void sr_step_keep_loss(sr_step *s, int slot) {
    rt_loss_to(s->p, s->res + slot, s->res + slot + SR_RES_VAL_CORRECT);
}

void sr_step_weights(sr_step *s, float *buf, const ir_train_config *tc, int nloss) {
    rt_backend *be = rt_plan_backend(s->p);
    rt_group w = rt_plan_group(s->p, IR_ROLE_WEIGHT);
    be->clip_norm_to(be, w.grad, w.n, tc->w_clip, s->res + SR_RES_GNORM);
    be->sgd_step_dev(be, w.data, buf, w.grad, w.n, s->sc, tc->w_momentum, tc->w_wd, s->res + SR_RES_GNORM - nloss,
                     nloss + 1);
}

void sr_step_read(sr_step *s, float res[SR_STEP_RES]) {
    rt_backend *be = rt_plan_backend(s->p);
    be->download(be, res, s->res, SR_STEP_RES * sizeof(float));
}

typedef struct train_ctx {
    sr_step *s;
    float *buf;
    const ir_train_config *tc;
} train_ctx;

static int train_issue(void *ctx) {
    train_ctx *c = ctx;
    sr_step_use_batch(c->s, 0);
    if (rt_pass(c->s->p, 1, RT_GRAD_W)) return -1;
    sr_step_keep_loss(c->s, SR_RES_TRAIN);
    sr_step_weights(c->s, c->buf, c->tc, 1);
    return 0;
}

int sr_train_step_launch(sr_step *s, float *buf, float lr, const ir_train_config *tc) {
    const float sc[SR_STEP_SC] = {lr};
    sr_step_put_scalars(s, sc);
    train_ctx c = {s, buf, tc};
    return rt_step_run(s->p, 0, train_issue, &c);
}

int sr_train_step(sr_step *s, float *buf, const float *x, const int32_t *y, float lr, const ir_train_config *tc,
                  float *loss, float *correct) {
    sr_step_put(s, 0, x, y);
    if (sr_train_step_launch(s, buf, lr, tc)) return -1;
    float r[SR_STEP_RES];
    sr_step_read(s, r);
    *loss = r[SR_RES_TRAIN];
    *correct = r[SR_RES_TRAIN_CORRECT];
    return 0;
}

void sr_host_timing_report(const sr_host_timing *h, const char *what) {
    if (!getenv("DARTSC_HOST_TIMING") || h->n < 1) return;
    const double ms = 1e3 / (double)h->n;
    fprintf(stderr,
            "host timing (%s, mean of %lld steps): batches %.3f ms drawn while a step computed, %.3f ms between "
            "steps; metrics line %.3f ms; progress %.3f ms; from a step's results to the next launch %.3f ms\n",
            what, (long long)h->n, h->batch_ahead * ms, h->batch_between * ms, h->line * ms, h->progress * ms,
            h->gaps ? 1e3 * h->gap / (double)h->gaps : 0.0);
}

void sr_tune_report(const rt_plan *p, const char *what) {
    rt_tune_report r;
    if (!p || rt_step_tuning(p, &r) != 1) return;
    fprintf(stderr, "autotuned (%s): %s; median step while tuning (%d timed each):", what, r.names[r.chosen], r.trials);
    for (int v = 0; v < r.variants; v++) fprintf(stderr, "%s %s %.4f s", v ? "," : "", r.names[v], r.times[v]);
    fputc('\n', stderr);
}

int sr_prefetch_on(void) { return !getenv("DARTSC_NO_PREFETCH"); }

int sr_checkpoint_due(int64_t every_steps, double every_s, int64_t global_step, double *last) {
    double now = sr_now();
    int due = (every_steps > 0 && global_step % every_steps == 0) || (every_s > 0 && now - *last >= every_s);
    /* data-parallel: the clocks of the processes differ, so rank 0's decides for all (every
       process checkpoints at the same step, or they would wait in different collectives) */
    if (every_s > 0 && rt_dist_size() > 1) {
        int32_t d = due;
        rt_dist_bcast(&d, sizeof d, 0);
        due = d;
    }
    if (due) *last = now;
    return due;
}

double sr_group_sumsq(rt_plan *p, int role) {
    rt_backend *be = rt_plan_backend(p);
    rt_group g = rt_plan_group(p, (ir_role)role);
    return g.n ? be->sumsq(be, g.data, g.n) : 0; /* a NaN or infinity anywhere makes the sum one */
}

int sr_diverged(char *err, size_t errlen, const char *what, double value, int epoch, int64_t step, int64_t global_step,
                double lr, const char *ckpt_path) {
    int kept = ckpt_path && access(ckpt_path, F_OK) == 0;
    char v[32];
    if (isnan(value)) snprintf(v, sizeof v, "not a number (NaN)");
    else if (isinf(value)) snprintf(v, sizeof v, "%sinfinite", value < 0 ? "minus " : "");
    else snprintf(v, sizeof v, "%g", value);
    return sr_fail(err, errlen,
                   "diverged at epoch %d step %lld (step %lld of the run): %s is %s; the learning rate (%g) is probably "
                   "too high (lower lr, or set clip); stopped, %s%s",
                   epoch + 1, (long long)step + 1, (long long)global_step + 1, what, v, lr,
                   kept ? "the last good checkpoint is kept: " : "no checkpoint was written yet",
                   kept ? ckpt_path : "");
}

const char *sr_json_num(char *buf, size_t n, const char *fmt, double v) {
    if (isfinite(v)) snprintf(buf, n, fmt, v);
    else snprintf(buf, n, "null");
    return buf;
}

int sr_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- data-parallel runs ---- */

int sr_dist_local_batch(int batch, char *err, size_t errlen) {
    int n = rt_dist_size();
    if (batch % n)
        return sr_fail(err, errlen, "the batch of %d cannot be split evenly across %d processes (docs/SCALING.md)",
                       batch, n);
    return batch / n;
}

void sr_dist_shard(rt_loader_cfg *cfg) {
    cfg->shards = rt_dist_size();
    cfg->shard = rt_dist_rank();
}

void sr_dist_grads(rt_plan *p, unsigned mask) {
    int n = rt_dist_size();
    if (n == 1) return;
    rt_backend *be = rt_plan_backend(p);
    const int roles[2] = {IR_ROLE_WEIGHT, IR_ROLE_ARCH};
    const unsigned bits[2] = {RT_GRAD_W, RT_GRAD_ARCH};
    for (int i = 0; i < 2; i++) {
        if (!(mask & bits[i])) continue;
        rt_group g = rt_plan_group(p, roles[i]);
        if (!g.grad || g.n == 0) continue;
        rt_dist_allreduce_be(be, g.grad, g.n);
        be->scale(be, g.grad, 1.0f / (float)n, g.n);
    }
}

void sr_dist_loss(float *loss, double *count) {
    int n = rt_dist_size();
    if (n == 1) return;
    double v[2] = {*loss, count ? *count : 0};
    rt_dist_allreduce_f64(v, 2);
    *loss = (float)(v[0] / n);
    if (count) *count = v[1];
}

int sr_dist_root_rc(int rc, char *err, size_t errlen) {
    if (rt_dist_size() == 1) return rc;
    int32_t v = rc;
    rt_dist_bcast(&v, sizeof v, 0);
    if (v) rt_dist_bcast(err, errlen, 0);
    return v;
}

int sr_dist_writer(void) { return rt_dist_rank() == 0; }
