/* checkpoint.c — see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
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
        rt_tf_abort_write(w);
        return sr_fail(err, errlen, "%s: writing the checkpoint failed", path);
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
    for (int i = 0; i < n && !rc; i++)
        if (e[i].kind == SR_CKPT_I64) rc = sr_get_i64s(f, e[i].name, e[i].data, (int)e[i].n, path, err, errlen);
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
