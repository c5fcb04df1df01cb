/* data_info.c — see data_info.h. */
#include "data_info.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "runtime/datasets.h"

static int user_source(const ir_space *sp) { return sp->data == IR_DATA_NPY || sp->data == IR_DATA_IMAGES; }

void sr_dir_of(const char *path, char *dir, size_t len) {
    const char *s = strrchr(path, '/');
    if (!s) snprintf(dir, len, ".");
    else if (s == path) snprintf(dir, len, "/");
    else snprintf(dir, len, "%.*s", (int)(s - path), path);
}

static void info_path(char *buf, size_t len, const char *run_dir) { snprintf(buf, len, "%s/data.json", run_dir); }

/* run_dir/data.json, or NULL when it does not exist (*bad set when it exists but cannot
 * be read, with err filled). */
static json_t *info_read(const char *run_dir, int *bad, char *err, size_t errlen) {
    *bad = 0;
    if (!run_dir || !run_dir[0]) return NULL;
    char p[4200];
    info_path(p, sizeof p, run_dir);
    if (access(p, F_OK) != 0) return NULL;
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "%s: not a data description (%s, line %d)", p, j ? "not an object" : je.text, je.line);
        json_decref(j);
        *bad = 1;
        return NULL;
    }
    return j;
}

static int floats_of(json_t *a, float *v, int n) {
    if (!json_is_array(a) || (int)json_array_size(a) != n) return -1;
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(a, (size_t)i);
        if (!json_is_number(x)) return -1;
        v[i] = (float)json_number_value(x);
    }
    return 0;
}

static int info_write(const ir_space *sp, const char *run_dir, int n_train, int given, char *err, size_t errlen) {
    static const char *const src[] = {"fashion_mnist", "cifar10", "text", "npy", "images", "cifar100"};
    json_t *j = json_object(), *m = json_array(), *s = json_array();
    for (int c = 0; c < sp->in_c; c++) {
        json_array_append_new(m, json_real(sp->mean[c]));
        json_array_append_new(s, json_real(sp->std[c]));
    }
    json_object_set_new(j, "source", json_string(src[sp->data]));
    json_object_set_new(j, "dir", json_string(sp->data_path));
    json_object_set_new(j, "train_images", json_integer(n_train));
    json_object_set_new(j, "channels", json_integer(sp->in_c));
    json_object_set_new(j, "normalisation", json_string(given ? "space" : "training split"));
    json_object_set_new(j, "mean", m);
    json_object_set_new(j, "std", s);
    if (sp->data == IR_DATA_IMAGES) {
        char **names;
        int n;
        if (rt_data_image_classes(sp->data_path, &names, &n, err, errlen)) {
            json_decref(j);
            return -1;
        }
        json_t *cl = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(cl, json_string(names[i]));
        rt_data_names_free(names, n);
        json_object_set_new(j, "classes", cl);
    }
    if (sr_mkdir_p(run_dir, err, errlen)) {
        json_decref(j);
        return -1;
    }
    char p[4200], tmp[4300];
    info_path(p, sizeof p, run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (rc != 0 || rename(tmp, p) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", p, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int sr_data_norm(ir_space *sp, const char *run_dir, int write, char *err, size_t errlen) {
    if (!user_source(sp)) return 0;
    int given = sp->std[0] > 0; /* the space's own mean/std */
    if (given && !write) return 0;
    int bad;
    json_t *j = info_read(run_dir, &bad, err, errlen);
    if (bad) return -1;
    if (j) {
        int rc = 0;
        if (!given) {
            rc = floats_of(json_object_get(j, "mean"), sp->mean, sp->in_c) ||
                 floats_of(json_object_get(j, "std"), sp->std, sp->in_c);
            for (int c = 0; !rc && c < sp->in_c; c++)
                if (!(sp->std[c] > 0)) rc = -1;
        }
        json_decref(j);
        if (rc) {
            snprintf(err, errlen, "%s/data.json: no %d-channel 'mean' and positive 'std' (delete the file to compute them "
                                  "again from the training images)",
                     run_dir, sp->in_c);
            return -1;
        }
        return 0;
    }
    /* read (and so check) the training split before anything is written */
    rt_dataset d;
    if (sr_data_load(sp, 1, &d, err, errlen)) return -1;
    int n = d.n;
    if (!given) rt_data_channel_stats(&d, sp->mean, sp->std);
    rt_dataset_free(&d);
    if (!given) {
        for (int c = 0; c < sp->in_c; c++) {
            if (!(sp->std[c] > 0)) {
                snprintf(err, errlen, "%s: channel %d is constant over the %d training images (std 0); give 'mean' and "
                                      "'std' in the space",
                         sp->data_path, c, n);
                return -1;
            }
        }
        fprintf(stderr, "data: %d training images; per-channel mean [", n);
        for (int c = 0; c < sp->in_c; c++) fprintf(stderr, "%s%.6f", c ? ", " : "", (double)sp->mean[c]);
        fprintf(stderr, "], std [");
        for (int c = 0; c < sp->in_c; c++) fprintf(stderr, "%s%.6f", c ? ", " : "", (double)sp->std[c]);
        fprintf(stderr, "] (pixel/255)%s%s%s\n", write && run_dir ? "; stored in " : "", write && run_dir ? run_dir : "",
                write && run_dir ? "/data.json" : "");
    }
    if (write && run_dir && run_dir[0]) return info_write(sp, run_dir, n, given, err, errlen);
    return 0;
}

int sr_data_class_names(const ir_space *sp, const char *run_dir, char ***names, int *n, char *err, size_t errlen) {
    *names = NULL;
    *n = 0;
    if (sp->data != IR_DATA_IMAGES) return 0;
    int bad;
    json_t *j = info_read(run_dir, &bad, err, errlen);
    if (bad) return -1;
    json_t *cl = j ? json_object_get(j, "classes") : NULL;
    if (json_is_array(cl) && json_array_size(cl) > 0) {
        int k = (int)json_array_size(cl);
        char **v = calloc((size_t)k, sizeof *v);
        for (int i = 0; v && i < k; i++) {
            const char *s = json_string_value(json_array_get(cl, (size_t)i));
            v[i] = strdup(s ? s : "");
        }
        json_decref(j);
        if (!v) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *names = v;
        *n = k;
        return 0;
    }
    json_decref(j);
    return rt_data_image_classes(sp->data_path, names, n, err, errlen);
}

void sr_data_names_free(char **names, int n) { rt_data_names_free(names, n); }
