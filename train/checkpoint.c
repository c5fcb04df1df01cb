/* checkpoint.c — see checkpoint.h. */
#include "checkpoint.h"
#include "runtime/dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* DEV entries a run does not have are not written (optional ones only). */
static int absent(const sr_ckpt_entry *e) { return e->kind == SR_CKPT_DEV && e->optional && (!e->data || !e->n); }

int sr_ckpt_save(const char *path, rt_backend *be, const sr_ckpt_entry *e, int n, char *err, size_t errlen) {
    rt_tf_writer *w = rt_tf_open_write(path, err, errlen);
    if (!w) return -1;
    /* one host buffer for every backend vector, the size of the largest */
    int64_t maxn = 1;
    for (int i = 0; i < n; i++)
        if (e[i].kind == SR_CKPT_DEV && e[i].n > maxn) maxn = e[i].n;
    float *host = malloc((size_t)maxn * 4);
    if (!host) {
        rt_tf_abort_write(w);
        return sr_fail(err, errlen, "out of memory");
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (absent(&e[i])) continue;
        switch (e[i].kind) {
        case SR_CKPT_I64: rc = sr_put_i64s(w, e[i].name, e[i].data, (int)e[i].n); break;
        case SR_CKPT_DEV:
            be->download(be, host, e[i].data, (size_t)e[i].n * 4);
            rc = rt_tf_write(w, e[i].name, RT_TF_F32, 1, (int64_t[]){e[i].n}, host);
            break;
        case SR_CKPT_HOST: rc = rt_tf_write(w, e[i].name, RT_TF_F32, 1, (int64_t[]){e[i].n}, e[i].data); break;
        }
    }
    free(host);
    if (rc) {
        const char *why = rt_tf_writer_error(w); /* e.g. "PATH.tmp: write failed: No space left on device" */
        sr_fail(err, errlen, "%s: writing the checkpoint failed%s%s (the previous checkpoint is kept)", path,
                why ? ": " : "", why ? why : "");
        rt_tf_abort_write(w);
        return -1;
    }
    return rt_tf_close_write(w, err, errlen);
}

rt_tf_file *sr_ckpt_read(const char *path, const sr_ckpt_entry *e, int n, int64_t version, const ir_graph *g,
                         char *err, size_t errlen) {
    char e2[512];
    rt_tf_file *f = rt_tf_read(path, e2, sizeof e2);
    if (!f) {
        sr_fail(err, errlen, "cannot resume: %s", e2);
        return NULL;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (e[i].kind != SR_CKPT_I64) continue;
        if (e[i].optional && !rt_tf_find(f, e[i].name)) {
            ((int64_t *)e[i].data)[0] = SR_CKPT_ABSENT; /* an older checkpoint */
            continue;
        }
        rc = sr_get_i64s(f, e[i].name, e[i].data, (int)e[i].n, path, err, errlen);
    }
    const int64_t *meta = e[0].data;
    if (!rc && meta[0] != version)
        rc = sr_fail(err, errlen, "%s: checkpoint format version %lld, this dartsc reads version %lld", path,
                     (long long)meta[0], (long long)version);
    if (!rc && (uint64_t)meta[1] != sr_param_hash(g))
        rc = sr_fail(err, errlen, "%s: the checkpoint was written for a different space or network (parameter names/shapes differ)",
                     path);
    for (int i = 0; i < n && !rc; i++) {
        if (e[i].kind == SR_CKPT_I64 || absent(&e[i])) continue;
        const rt_tf_entry *t = rt_tf_find(f, e[i].name);
        if (!t || t->dtype != RT_TF_F32 || t->numel != e[i].n)
            rc = sr_fail(err, errlen, "%s: '%s' missing or of the wrong size (the space changed?)", path, e[i].name);
    }
    if (rc) {
        rt_tf_free(f);
        return NULL;
    }
    return f;
}

void sr_ckpt_restore(rt_tf_file *f, rt_backend *be, const sr_ckpt_entry *e, int n) {
    for (int i = 0; i < n; i++) {
        if (e[i].kind == SR_CKPT_I64 || absent(&e[i])) continue;
        const rt_tf_entry *t = rt_tf_find(f, e[i].name);
        if (e[i].kind == SR_CKPT_DEV) be->upload(be, e[i].data, t->data, (size_t)e[i].n * 4);
        else memcpy(e[i].data, t->data, (size_t)e[i].n * 4);
    }
    rt_tf_free(f);
}

int sr_ckpt_truncate_log(const char *path, int64_t bytes, char *err, size_t errlen) {
    if (sr_file_size(path) < bytes)
        return sr_fail(err, errlen, "%s: shorter than the checkpoint says (%lld bytes)", path, (long long)bytes);
    if (truncate(path, bytes) != 0) return sr_fail(err, errlen, "%s: cannot truncate: %s", path, strerror(errno));
    return 0;
}

/* ---- settings ---------------------------------------------------------------------------- */

/* name, kind (i: integer, f: float), value: one list for the table and the values */
#define SR_SETTINGS(X)                                                                                                \
    X("epochs", 'i', tc->epochs) X("batch", 'i', tc->batch) X("lr", 'f', tc->w_lr) X("lr_min", 'f', tc->w_lr_min)     \
    X("momentum", 'f', tc->w_momentum) X("weight_decay", 'f', tc->w_wd) X("clip", 'f', tc->w_clip)                   \
    X("alpha_lr", 'f', tc->a_lr) X("alpha_betas[0]", 'f', tc->a_beta1) X("alpha_betas[1]", 'f', tc->a_beta2)         \
    X("alpha_weight_decay", 'f', tc->a_wd) X("order", 'i', tc->order) X("seed", 'i', (int64_t)tc->seed)              \
    X("split", 'f', tc->train_portion) X("cutout", 'i', tc->cutout) X("crop", 'i', tc->crop_pad)                     \
    X("flip", 'i', tc->hflip) X("drop_path", 'f', tc->drop_path) X("aux_weight", 'f', tc->aux_weight)                \
    X("subset", 'i', tc->subset) X("bptt", 'i', tc->bptt) X("dropout", 'f', tc->dropout)                             \
    X("dropout_h", 'f', tc->dropout_h) X("dropout_x", 'f', tc->dropout_x) X("dropout_i", 'f', tc->dropout_i)         \
    X("dropout_e", 'f', tc->dropout_e) X("tar", 'f', tc->tar) X("strategy", 's', strategy)                           \
    X("first training image", 'i', data_begin) X("training images", 'i', data_count)

#define SR_SET_NAME(name, kind, value) {name, kind},
static const struct { const char *name; char kind; } settings_table[] = {SR_SETTINGS(SR_SET_NAME)};
_Static_assert(sizeof settings_table / sizeof settings_table[0] == SR_SETTINGS_N, "SR_SETTINGS_N");

static int64_t float_bits(double v) {
    int64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

void sr_ckpt_settings(const ir_train_config *tc, int strategy, int data_begin, int data_count, int64_t out[SR_SETTINGS_N]) {
    int k = 0;
#define SR_SET_VALUE(name, kind, value) out[k++] = (kind) == 'f' ? float_bits((double)(value)) : (int64_t)(value);
    SR_SETTINGS(SR_SET_VALUE)
#undef SR_SET_VALUE
}

static void setting_str(int i, int64_t v, char *buf, size_t n) {
    /* sr_strategy's order */
    static const char *strategies[] = {"darts", "joint", "coord", "random", "evolution", "pc-darts", "fair-darts",
                                       "rl", "enas", "p-darts", "darts-plus", "sharp-darts", "proxyless"};
    double d;
    memcpy(&d, &v, sizeof d);
    if (settings_table[i].kind == 'f') snprintf(buf, n, "%g", d);
    else if (settings_table[i].kind == 's' && v >= 0 && v < (int64_t)(sizeof strategies / sizeof *strategies))
        snprintf(buf, n, "%s", strategies[v]);
    else snprintf(buf, n, "%lld", (long long)v);
}

int sr_ckpt_check_settings(const char *path, const int64_t *saved, const int64_t *now, char *err, size_t errlen) {
    if (saved[0] == SR_CKPT_ABSENT) return 0; /* written before settings were recorded: unchecked */
    double lr, lr_min, drop_path;
    memcpy(&lr, &now[2], sizeof lr);
    memcpy(&lr_min, &now[3], sizeof lr_min);
    memcpy(&drop_path, &now[17], sizeof drop_path);
    int epochs_free = lr_min == lr && drop_path == 0; /* the schedule does not depend on epochs */
    char list[768] = "";
    size_t used = 0;
    int diffs = 0;
    for (int i = 0; i < SR_SETTINGS_N; i++) {
        if (saved[i] == now[i] || (i == 0 && epochs_free)) continue;
        char a[48], b[48];
        setting_str(i, saved[i], a, sizeof a);
        setting_str(i, now[i], b, sizeof b);
        int w = snprintf(list + used, sizeof list - used, "%s%s %s (now %s)", diffs ? ", " : "", settings_table[i].name, a, b);
        if (w > 0 && (size_t)w < sizeof list - used) used += (size_t)w;
        diffs++;
    }
    if (!diffs) return 0;
    return sr_fail(err, errlen,
                   "cannot resume: %s was written with other settings: %s; these change the result, so resume with the "
                   "checkpoint's settings or start a new run in another --out%s",
                   path, list,
                   saved[0] != now[0] && !epochs_free
                       ? " (another --epochs is accepted only with a constant learning rate, lr_min equal to lr, and no drop_path)"
                       : "");
}

/* ---- logs by lines ----------------------------------------------------------------------- */

int64_t sr_log_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int64_t n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

int sr_ckpt_truncate_log_lines(const char *path, int64_t lines, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return lines ? sr_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno)) : 0;
    int64_t n = 0, bytes = 0;
    int c;
    while (n < lines && (c = getc(f)) != EOF) {
        bytes++;
        if (c == '\n') n++;
    }
    fclose(f);
    if (n < lines)
        return sr_fail(err, errlen, "%s: shorter than the checkpoint says (%lld lines, the file has %lld)", path,
                       (long long)lines, (long long)n);
    if (truncate(path, bytes) != 0) return sr_fail(err, errlen, "%s: cannot truncate: %s", path, strerror(errno));
    return 0;
}

void sr_ckpt_bcast(rt_backend *be, const sr_ckpt_entry *e, int n) {
    if (rt_dist_size() == 1) return;
    for (int i = 0; i < n; i++) {
        if (!e[i].data || e[i].n == 0) continue;
        if (e[i].kind == SR_CKPT_I64) rt_dist_bcast(e[i].data, (size_t)e[i].n * sizeof(int64_t), 0);
        else if (e[i].kind == SR_CKPT_DEV) rt_dist_bcast_be(be, e[i].data, e[i].n, 0);
        else rt_dist_bcast(e[i].data, (size_t)e[i].n * sizeof(float), 0);
    }
}

int sr_ckpt_check_dist(const char *path, const int64_t saved[2], int sync_bn, char *err, size_t errlen) {
    int64_t was = saved[0] == SR_CKPT_ABSENT ? 1 : saved[0], now = rt_dist_size();
    int64_t was_sync = saved[0] == SR_CKPT_ABSENT ? 0 : saved[1];
    if (was == now && (now == 1 || was_sync == sync_bn)) return 0;
    if (was == now)
        return sr_fail(err, errlen,
                       "cannot resume: %s was written with other settings: sync_bn %s (now %s); this changes the "
                       "result, so resume with the checkpoint's settings or start a new run in another --out",
                       path, was_sync ? "on" : "off", sync_bn ? "on" : "off");
    return sr_fail(err, errlen,
                   "%s was written by a run of %lld process%s; this run has %lld: resume it with the same number "
                   "(mpirun -n %lld; docs/SCALING.md), since each process's share of a batch and its batch-norm "
                   "statistics depend on it",
                   path, (long long)was, was == 1 ? "" : "es", (long long)now, (long long)was);
}
