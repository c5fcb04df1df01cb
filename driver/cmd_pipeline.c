/* cmd_pipeline.c — `dartsc train`, `eval`, `export` and `run` (search -> retrain ->
 * evaluate -> export -> report in one run directory, resumable at any stage). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codegen/cgen.h"
#include "codegen/cgen_q.h"
#include "codegen/codegen.h"
#include "codegen/onnx.h"
#include "codegen/rnn_export.h"
#include "driver.h"
#include "frontend/fe.h"
#include "pipeline/pipeline.h"
#include "runtime/dist.h"
#include "runtime/tensorfile.h"
#include "search/genotype.h"
#include "search/search.h"
#include "train/common.h"
#include "train/data_info.h"
#include "train/rnn.h"
#include "train/train.h"

#define stop_flag dartsc_stop_flag /* set by the SIGINT/SIGTERM handler main installs first thing */

/* `run` between its stages: a stop request ends the run with exit 130; every stage after
 * the retraining is redone by the next run (its outputs are written at its end).
 * DARTSC_TEST_STOP_AT=STAGE raises SIGINT as that stage begins (tests/test_run.c). */
static int run_stopped(const char *stage, int begins) {
    const char *t = getenv("DARTSC_TEST_STOP_AT");
    if (begins && t && !strcmp(t, stage)) raise(SIGINT);
    if (!stop_flag) return 0;
    fprintf(stderr, "dartsc run: stopped %s the %s; rerun the same command to resume\n", begins ? "before" : "during",
            stage);
    return 1;
}

static int exists(const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int e = access(p, F_OK) == 0;
    rt_dist_bcast(&e, sizeof e, 0); /* data-parallel: rank 0's run directory decides */
    return e;
}

int dartsc_load_space(const char *path, ir_space *sp) {
    fe_diags d;
    fe_diags_init(&d);
    int rc = fe_compile_file(path, sp, &d);
    fe_diags_render(&d, stderr, isatty(2));
    fe_diags_free(&d);
    return rc;
}

static void progress_lines(void *ctx, const sr_progress *p) {
    const char *what = ctx;
    int tty = isatty(2);
    if (p->warning)
        fprintf(stderr, "%sdartsc %s: warning: epoch %d step %lld: %s (loss %g)\n", tty ? "\r\033[K" : "", what,
                p->epoch + 1, (long long)p->step + 1, p->warning, isnan(p->val_loss) ? p->train_loss : fmax(p->train_loss, p->val_loss));
    if (p->candidate_end) {
        fprintf(stderr, "%scandidate %d/%d: architecture split loss %.4f accuracy %.2f%%\n", tty ? "\r\033[K" : "",
                p->epoch + 1, p->epochs, p->val_loss, 100 * p->val_acc);
        return;
    }
    if (p->epoch_end) {
        fprintf(stderr, "%s%s epoch %d/%d: loss %.4f accuracy %.2f%%\n", tty ? "\r\033[K" : "", what, p->epoch + 1,
                p->epochs, p->val_loss, 100 * p->val_acc);
        return;
    }
    int last = p->step + 1 == p->steps_per_epoch;
    if (tty) {
        int eta = (int)(p->eta_s >= 0 && p->eta_s < 1e6 ? p->eta_s : 0);
        fprintf(stderr, "\r\033[K%s epoch %d/%d step %lld/%lld loss %.4f acc %.1f%% %.0f img/s ETA %d:%02d:%02d%s", what,
                p->epoch + 1, p->epochs, (long long)p->step + 1, (long long)p->steps_per_epoch, p->train_loss,
                100 * p->train_acc, p->images_per_s, eta / 3600, eta / 60 % 60, eta % 60, last ? "\n" : "");
    } else if (p->step % 20 == 0 || last) {
        fprintf(stderr, "%s epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% lr %.5f %.1f img/s\n", what, p->epoch + 1,
                p->epochs, (long long)p->step + 1, (long long)p->steps_per_epoch, p->train_loss, 100 * p->train_acc, p->lr,
                p->images_per_s);
    }
}

void dartsc_warn_loss_peak(const char *cmd, const char *what, double peak, int64_t step) {
    if (peak > SR_LOSS_WARN)
        fprintf(stderr, "dartsc %s: warning: the %s loss reached %g (step %lld): it exploded numerically although it "
                "stayed finite; the result is doubtful (lower the learning rate?)\n", cmd, what, peak, (long long)step + 1);
}
#define warn_peak dartsc_warn_loss_peak

/* ---- export ---------------------------------------------------------------------------------- */

/* Every file an export writes may replace only a regular file (the ONNX file and its .tmp
 * are renamed into place; NAME.h and NAME.c are written in place): checked, with the C
 * directory created, before anything is written. */
static int check_export_paths(const char *onnx_path, const char *c_dir, const char *name) {
    char p[4200];
    if (onnx_path) {
        snprintf(p, sizeof p, "%s.tmp", onnx_path);
        if (dartsc_check_output("export", onnx_path) || dartsc_check_output("export", p)) return -1;
    }
    if (c_dir) {
        if (dartsc_check_output_dir("export", c_dir)) return -1;
        snprintf(p, sizeof p, "%s/%s.h", c_dir, name);
        if (dartsc_check_output("export", p)) return -1;
        snprintf(p, sizeof p, "%s/%s.c", c_dir, name);
        if (dartsc_check_output("export", p)) return -1;
    }
    return 0;
}

/* int8 export: the largest |value| of every node of the inference network over the first
 * n training images (no augmentation), into absmax[0 .. the network's node count). Runs
 * in batches of up to 32; a short last batch reads only its own samples. */
static int calibrate(const ir_space *sp, const ir_genotype *gt, const char *weights, int n, float *absmax, int n_nodes,
                     char *err, size_t errlen) {
    int B = n < 32 ? n : 32;
    ir_eval_opts eo = {.C = sp->train_C, .layers = sp->train_layers, .batch = B, .aux = 0, .drop_path = 0};
    ir_net net;
    if (ir_space_build_eval(sp, gt, &eo, &net)) {
        snprintf(err, errlen, "%s", net.error);
        return -1;
    }
    int rc = -1, nn = ir_graph_num_nodes(net.graph), got;
    rt_backend *be = NULL;
    rt_plan *p = NULL;
    rt_dataset ds = {0}, view;
    rt_loader l;
    int loader = 0;
    int64_t biggest = 1, in_sz = (int64_t)sp->in_c * sp->in_h * sp->in_w;
    for (int i = 0; i < nn; i++) {
        ir_node_set_flags(net.graph, i, IR_FLAG_OUTPUT); /* every value kept after the pass */
        if (ir_node_numel(ir_graph_node(net.graph, i)) > biggest) biggest = ir_node_numel(ir_graph_node(net.graph, i));
    }
    float *v = malloc((size_t)biggest * sizeof *v), *x = malloc((size_t)B * (size_t)in_sz * sizeof *x);
    int32_t *y = calloc((size_t)B, sizeof *y);
    if (nn != n_nodes) {
        snprintf(err, errlen, "internal: calibration network has %d nodes, export network %d", nn, n_nodes);
        goto out;
    }
    if (!v || !x || !y) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    be = rt_backend_cpu_new();
    p = be ? rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 0, .grads = 0}, err, errlen) : NULL;
    if (!p || sr_weights_load(p, weights, err, errlen) || sr_data_load(sp, 1, &ds, err, errlen)) goto out;
    if (n > ds.n) n = ds.n;
    ir_train_config tc = sp->train;
    tc.batch = B;
    rt_loader_cfg cfg = sr_loader_cfg(sp, &tc, 0);
    if (rt_data_subset(&ds, 0, n, &view) || rt_loader_init(&l, &view, &cfg, err, errlen)) goto out;
    loader = 1;
    for (int i = 0; i < nn; i++) absmax[i] = 0;
    while (rt_loader_next(&l, x, y, &got)) {
        rt_set_input(p, net.images, x, (size_t)B * (size_t)in_sz * sizeof *x);
        rt_set_input(p, net.labels, y, (size_t)B * sizeof *y);
        rt_forward(p, 0);
        for (int i = 0; i < nn; i++) {
            const ir_node *nd = ir_graph_node(net.graph, i);
            int64_t k = ir_node_numel(nd);
            if (nd->op == IR_OP_PARAM || nd->dtype != IR_DTYPE_F32 || rt_read(p, i, v, (size_t)k * sizeof *v)) continue;
            if (nd->ndim > 0 && nd->shape[0] == B) k = k / B * got; /* batch-major: the loaded samples only */
            for (int64_t j = 0; j < k; j++) absmax[i] = fmaxf(absmax[i], fabsf(v[j]));
        }
    }
    rc = 0;
out:
    if (loader) rt_loader_free(&l);
    rt_dataset_free(&ds);
    rt_plan_free(p);
    if (be) be->destroy(be);
    ir_net_free(&net);
    free(v);
    free(x);
    free(y);
    return rc;
}

/* int8: 0 float export; 1 int8 (C and QDQ ONNX, calibrated on `calib` training images);
 * 2 the same with an integer-only C. */
static int do_export(const ir_space *sp_in, const ir_genotype *gt, const char *weights, const char *onnx_path,
                     const char *c_dir, const char *name, int max_batch, int fold, double test_acc, int int8,
                     int calib) {
    char err[1024];
    /* npy, images: the normalisation and class names of the run (RUN_DIR/data.json) */
    ir_space s = *sp_in, *sp = &s;
    char run_dir[4200], **names = NULL;
    int n_names = 0;
    sr_dir_of(weights, run_dir, sizeof run_dir);
    if (sr_data_norm(sp, run_dir, 0, err, sizeof err)) {
        fprintf(stderr, "dartsc export: %s\n", err);
        return 1;
    }
    if (sr_data_class_names(sp, run_dir, &names, &n_names, err, sizeof err))
        fprintf(stderr, "dartsc export: warning: no class names in the metadata: %s\n", err);
    sr_infer in;
    if (sr_infer_open(&in, sp, gt, 1, weights, "cpu", err, sizeof err)) {
        fprintf(stderr, "dartsc export: %s\n", err);
        sr_data_names_free(names, n_names);
        return 1;
    }
    int n = ir_graph_num_nodes(in.net.graph);
    const float **vals = calloc((size_t)n, sizeof *vals);
    for (int i = 0; i < n; i++)
        if (ir_graph_node(in.net.graph, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(in.p, i);
    char *gj = sr_genotype_to_json(sp, gt, NULL, NULL);
    char **labels = ir_eval_labels(sp, gt, 0, in.net.graph); /* NULL: ONNX nodes keep the IR names */
    cg_model m = {.g = in.net.graph, .values = vals, .input = in.net.images, .output = in.net.logits, .name = name,
                  .space_name = sp->name, .genotype_json = gj, .in_c = sp->in_c, .n_classes = sp->classes,
                  .test_accuracy = test_acc, .labels = (const char *const *)labels};
    rt_loader_cfg cfg = sr_loader_cfg(sp, &sp->train, 0);
    for (int c = 0; c < sp->in_c && c < 4; c++) {
        m.mean[c] = cfg.mean[c];
        m.std[c] = cfg.std[c];
    }
    static const char *const fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    static const char *const cifar[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                          "dog", "frog", "horse", "ship", "truck"};
    if (sp->classes == 10 && sp->data == IR_DATA_CIFAR10) m.class_names = cifar;
    if (sp->classes == 10 && sp->data == IR_DATA_FASHION_MNIST) m.class_names = fashion;
    if (names && n_names == sp->classes) m.class_names = (const char *const *)names;
    int rc = 0;
    float *absmax = NULL;
    if (check_export_paths(onnx_path, c_dir, name)) rc = 1;
    if (int8 && !rc) {
        absmax = malloc((size_t)n * sizeof *absmax);
        if (!absmax || calibrate(sp, gt, weights, calib, absmax, n, err, sizeof err)) {
            fprintf(stderr, "dartsc export: calibration: %s\n", absmax ? err : "out of memory");
            rc = 1;
        } else {
            fprintf(stderr, "calibrated int8 scales on %d training images\n", calib);
        }
        m.absmax = absmax;
    }
    if (onnx_path && !rc) {
        cg_onnx_opts oo = cg_onnx_opts_default();
        oo.fold_bn = fold;
        oo.int8 = int8 > 0;
        if (cg_onnx_write(&m, &oo, onnx_path, err, sizeof err)) {
            fprintf(stderr, "dartsc export: %s\n", err);
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s\n", onnx_path);
        }
    }
    if (c_dir && !rc) {
        cg_c_footprint fp = {0, 0};
        cg_c_opts co = {.max_batch = max_batch, .no_fold = !fold, .footprint = &fp};
        if (int8 ? cg_c_write_int8(&m, &co, int8 == 2, c_dir, err, sizeof err) : cg_c_write(&m, &co, c_dir, err, sizeof err)) {
            fprintf(stderr, "dartsc export: %s\n", err);
            rc = 1;
        } else {
            fprintf(stderr, "wrote %s/%s.h and %s/%s.c (%s; weights %lld bytes, activation arena %lld bytes)\n", c_dir,
                    name, c_dir, name, int8 == 2 ? "int8, integer-only" : int8 ? "int8" : "float", fp.weight_bytes,
                    fp.arena_bytes);
        }
    }
    free(absmax);
    free(gj);
    free(vals);
    ir_eval_labels_free(labels, n);
    sr_infer_close(&in);
    sr_data_names_free(names, n_names);
    return rc;
}

/* A recurrent run's step function (embedding + one cell step + decoder) as ONNX and C
 * (codegen/rnn_export.h); the vocabulary size comes from the weights file. */
static int rnn_export(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *onnx_path,
                      const char *c_dir, const char *name, int max_batch) {
    char err[1024];
    rt_tf_file *wf = rt_tf_read(weights, err, sizeof err);
    if (!wf) {
        fprintf(stderr, "dartsc export: %s\n", err);
        return 1;
    }
    const rt_tf_entry *enc = rt_tf_find(wf, "encoder.weight");
    int V = enc && enc->ndim == 2 ? (int)enc->dims[0] : 0;
    rt_tf_free(wf);
    if (V < 2) {
        fprintf(stderr, "dartsc export: %s: no encoder.weight (not a recurrent model)\n", weights);
        return 1;
    }
    ir_rnn_net net;
    if (cg_rnn_step_net(sp, &gt->normal, V, 1, &net)) {
        fprintf(stderr, "dartsc export: %s\n", net.error);
        return 1;
    }
    if (check_export_paths(onnx_path, c_dir, name)) {
        ir_rnn_net_free(&net);
        return 1;
    }
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = be ? rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = 0}, err, sizeof err) : NULL;
    int n = ir_graph_num_nodes(net.graph), rc = 1;
    const float **vals = calloc((size_t)n, sizeof *vals);
    if (!p || !vals || sr_weights_load(p, weights, err, sizeof err)) {
        fprintf(stderr, "dartsc export: %s\n", vals ? err : "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (ir_graph_node(net.graph, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(p, i);
    if (onnx_path) {
        if (cg_rnn_onnx_write(&net, vals, onnx_path, err, sizeof err)) {
            fprintf(stderr, "dartsc export: %s\n", err);
            goto out;
        }
        fprintf(stderr, "wrote %s (one step: ids, hidden -> logits, hidden_out)\n", onnx_path);
    }
    if (c_dir) {
        if (cg_rnn_c_write(&net, vals, c_dir, name, max_batch, err, sizeof err)) {
            fprintf(stderr, "dartsc export: %s\n", err);
            goto out;
        }
        fprintf(stderr, "wrote %s/%s.h and %s/%s.c (%s_step)\n", c_dir, name, c_dir, name, name);
    }
    rc = 0;
out:
    free(vals);
    rt_plan_free(p);
    if (be) be->destroy(be);
    ir_rnn_net_free(&net);
    return rc;
}

/* Reads RUN_DIR's space, genotype and (optionally) the weights path. */
static int open_run_dir(const char *dir, ir_space *sp, ir_genotype *gt, char *weights, size_t wn) {
    char p[4200], err[1024];
    snprintf(p, sizeof p, "%s/space.dartsc", dir);
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "dartsc: %s: not a run directory (no space.dartsc)\n", dir);
        return -1;
    }
    if (dartsc_load_space(p, sp)) return -1;
    snprintf(p, sizeof p, "%s/genotype.json", dir);
    if (sr_genotype_read_json(sp, p, gt, err, sizeof err)) {
        fprintf(stderr, "dartsc: %s\n", err);
        return -1;
    }
    snprintf(weights, wn, "%s/model.dtns", dir);
    return 0;
}

int dartsc_cmd_export(int argc, char **argv) {
    const char *dir = NULL, *onnx = NULL, *cdir = NULL, *name = "model";
    int max_batch = 1, fold = 1, int8 = 0, integer_only = 0, calib = 256, calib_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-fold")) fold = 0;
        else if (!strcmp(a, "--int8")) int8 = 1;
        else if (!strcmp(a, "--integer-only")) integer_only = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: dartsc export RUN_DIR [--onnx FILE] [--c DIR] [--name NAME] [--max-batch N] [--no-fold] [--int8 [--calibrate N] [--integer-only]]\n");
            return 0;
        } else if (a[0] == '-' && !v) {
            fprintf(stderr, "dartsc export: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--onnx")) onnx = argv[++i];
        else if (!strcmp(a, "--c")) cdir = argv[++i];
        else if (!strcmp(a, "--name")) name = argv[++i];
        else if (!strcmp(a, "--max-batch")) {
            if (dartsc_parse_int("export", a, argv[++i], 1, 65536, &max_batch)) return 2;
        } else if (!strcmp(a, "--calibrate")) {
            if (dartsc_parse_int("export", a, argv[++i], 1, 1000000, &calib)) return 2;
            calib_set = 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "dartsc export: unknown option '%s'\n", a);
            return 2;
        } else dir = a;
    }
    if (!dir || (!onnx && !cdir)) {
        fprintf(stderr, "usage: dartsc export RUN_DIR [--onnx FILE] [--c DIR] [--name NAME] [--max-batch N] [--no-fold] [--int8 [--calibrate N] [--integer-only]]\n");
        return 2;
    }
    if ((calib_set || integer_only) && !int8) {
        fprintf(stderr, "dartsc export: %s needs --int8\n", calib_set ? "--calibrate" : "--integer-only");
        return 2;
    }
    if (int8 && !fold) {
        fprintf(stderr, "dartsc export: --int8 folds every batch norm; it cannot be combined with --no-fold\n");
        return 2;
    }
    ir_space sp;
    ir_genotype gt;
    char weights[4200];
    if (open_run_dir(dir, &sp, &gt, weights, sizeof weights)) return 1;
    if (sp.kind == IR_SPACE_RNN) {
        if (int8) {
            fprintf(stderr, "dartsc export: --int8 is for convolutional networks; %s is a recurrent run\n", dir);
            return 2;
        }
        return rnn_export(&sp, &gt, weights, onnx, cdir, name, max_batch);
    }
    return do_export(&sp, &gt, weights, onnx, cdir, name, max_batch, fold, -1.0, int8 ? 1 + integer_only : 0, calib);
}

/* ---- train and eval ---------------------------------------------------------------------------- */

/* Copies the file src to dir/name (atomically; a no-op when they are the same file). */
static int copy_into(const char *src, const char *dir, const char *name, char *err, size_t errlen) {
    char dst[4200];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    struct stat a, b;
    if (stat(src, &a) == 0 && stat(dst, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return 0;
    FILE *f = fopen(src, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read it again to copy it into %.900s", src, dir);
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, k;
    char chunk[65536];
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + k > cap) {
            cap = 2 * (len + k);
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", src);
                return -1;
            }
            buf = nb;
        }
        memcpy(buf + len, chunk, k);
        len += k;
    }
    fclose(f);
    int rc = sr_write_file_atomic(dst, buf ? buf : "", len, err, errlen);
    free(buf);
    return rc;
}

int dartsc_cmd_train(int argc, char **argv) {
    const char *path = NULL, *geno = NULL;
    sr_train_opts o = sr_train_opts_default();
    long epochs = 0, subset = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: dartsc train SPACE --genotype FILE [--out DIR] [--epochs N] [--subset N] [--device auto|cpu|cuda] [--resume] [--checkpoint-every N] [--checkpoint-minutes M]\n");
            return 0;
        } else if (a[0] == '-' && !v) {
            fprintf(stderr, "dartsc train: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--genotype")) geno = argv[++i];
        else if (!strcmp(a, "--out")) o.out_dir = argv[++i];
        else if (!strcmp(a, "--device")) o.device = argv[++i];
        else if (!strcmp(a, "--checkpoint-every") || !strcmp(a, "--checkpoint-minutes")) {
            long x;
            if (dartsc_parse_long("train", a, argv[++i], 0, 1000000000, &x)) return 2;
            if (a[13] == 'e') o.checkpoint_steps = x;
            else o.checkpoint_seconds = 60.0 * (double)x;
        } else if (!strcmp(a, "--epochs")) {
            if (dartsc_parse_long("train", a, argv[++i], 1, 100000, &epochs)) return 2;
        } else if (!strcmp(a, "--subset")) {
            if (dartsc_parse_long("train", a, argv[++i], 0, 100000000, &subset)) return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "dartsc train: unknown option '%s'\n", a);
            return 2;
        } else path = a;
    }
    if (!path || !geno) {
        fprintf(stderr, "usage: dartsc train SPACE --genotype FILE [--out DIR] [--epochs N] [--subset N] [--device auto|cpu|cuda] [--resume] [--checkpoint-every N] [--checkpoint-minutes M]\n");
        return 2;
    }
    ir_space sp;
    if (dartsc_load_space(path, &sp)) return 1;
    if (epochs > 0) sp.train.epochs = (int)epochs;
    if (subset >= 0) sp.train.subset = (int)subset;
    ir_genotype gt;
    char err[1024];
    if (sr_genotype_read_json(&sp, geno, &gt, err, sizeof err)) {
        fprintf(stderr, "dartsc train: %s\n", err);
        return 1;
    }
    o.stop = &stop_flag;
    o.progress = rt_dist_rank() == 0 ? progress_lines : NULL;
    o.progress_ctx = "train";
    /* both splits read before anything is written: bad data leaves no directory, and the
       directory is one that eval can use */
    if (sr_data_prepare(&sp, 1, 1, err, sizeof err)) {
        fprintf(stderr, "dartsc train: error: %s\n", err);
        return 1;
    }
    sr_train_result r;
    dartsc_out_dir od;
    dartsc_out_dir_note(&od, o.out_dir);
    if (sr_train(&sp, &gt, &o, &r, err, sizeof err)) {
        fprintf(stderr, "\ndartsc train: error: %s\n", err);
        dartsc_out_dir_cleanup(&od); /* no empty directory left behind */
        return 1;
    }
    /* the space and genotype beside the weights: OUT is then a run directory that eval
       and export accept */
    if (rt_dist_rank() == 0 &&
        (copy_into(path, o.out_dir, "space.dartsc", err, sizeof err) || copy_into(geno, o.out_dir, "genotype.json", err, sizeof err))) {
        fprintf(stderr, "dartsc train: %s\n", err);
        return 1;
    }
    if (r.stopped) {
        if (rt_dist_rank() == 0) fprintf(stderr, "dartsc train: stopped; continue with --resume\n");
        return 130;
    }
    warn_peak("train", "training", r.loss_peak, r.loss_peak_step);
    if (sp.kind == IR_SPACE_RNN) { /* train/rnn.c: train_acc holds the last validation perplexity */
        printf("trained in %.1f s; last epoch validation perplexity %.2f; weights in %s/model.dtns\n", r.seconds,
               r.train_acc, o.out_dir);
        return 0;
    }
    printf("trained in %.1f s; last epoch train accuracy %.2f%%; weights in %s/model.dtns\n", r.seconds, 100 * r.train_acc,
           o.out_dir);
    return 0;
}

/* Validation and test perplexity of a recurrent run (train/rnn.c); results.json when
 * results is set. */
static int rnn_eval_print(const ir_space *sp, const ir_genotype *gt, const char *weights, const char *device,
                          const char *results, const double *times) {
    sr_rnn_eval ev;
    char err[1024];
    double t0 = sr_now();
    if (sr_rnn_evaluate(sp, gt, weights, device, &ev, err, sizeof err)) {
        fprintf(stderr, "dartsc eval: %s\n", err);
        return 1;
    }
    printf("validation perplexity %.2f (%lld tokens), test perplexity %.2f (%lld tokens)\n", ev.valid_ppl,
           (long long)ev.valid_tokens, ev.test_ppl, (long long)ev.test_tokens);
    FILE *f = results ? dartsc_fopen_out("run", results) : NULL;
    if (f) {
        char n[4][32];
        fprintf(f, "{\"valid_perplexity\":%s,\"test_perplexity\":%s,\"valid_loss\":%s,\"test_loss\":%s,"
                   "\"search_seconds\":%.1f,\"train_seconds\":%.1f,\"eval_seconds\":%.1f}\n",
                sr_json_num(n[0], 32, "%.4f", ev.valid_ppl), sr_json_num(n[1], 32, "%.4f", ev.test_ppl),
                sr_json_num(n[2], 32, "%.6f", ev.valid_loss), sr_json_num(n[3], 32, "%.6f", ev.test_loss),
                times ? times[0] : 0, times ? times[1] : 0, sr_now() - t0);
        fclose(f);
    }
    return 0;
}

int dartsc_cmd_eval(int argc, char **argv) {
    const char *dir = NULL, *device = "auto", *pred_path = NULL;
    const char *usage = "usage: dartsc eval RUN_DIR [--device auto|cpu|cuda] [--predictions FILE.dtns]\n";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--predictions") && i + 1 < argc) pred_path = argv[++i];
        else if (argv[i][0] == '-') {
            fputs(usage, stderr);
            return 2;
        } else dir = argv[i];
    }
    if (!dir) {
        fputs(usage, stderr);
        return 2;
    }
    ir_space sp;
    ir_genotype gt;
    char weights[4200], err[1024];
    if (open_run_dir(dir, &sp, &gt, weights, sizeof weights)) return 1;
    if (sp.kind == IR_SPACE_RNN) return rnn_eval_print(&sp, &gt, weights, device, NULL, 0);
    sr_eval_result ev;
    enum { MAX_PRED = 1 << 20 };
    int32_t *pred = pred_path ? calloc(MAX_PRED, sizeof *pred) : NULL;
    if (sr_evaluate_predict(&sp, &gt, weights, device, pred, pred ? MAX_PRED : 0, &ev, err, sizeof err)) {
        fprintf(stderr, "dartsc eval: %s\n", err);
        free(pred);
        return 1;
    }
    printf("test accuracy %.2f%% (%d images), loss %.4f\n", 100 * ev.acc, ev.n, ev.loss);
    int rc = 0;
    if (pred) {
        err[0] = 0;
        rt_tf_writer *w = rt_tf_open_write(pred_path, err, sizeof err);
        if (!w) rc = 1;
        else if (rt_tf_write(w, "predictions", RT_TF_I32, 1, (int64_t[]){ev.n}, pred)) {
            if (rt_tf_writer_error(w)) snprintf(err, sizeof err, "%s", rt_tf_writer_error(w));
            rt_tf_abort_write(w);
            rc = 1;
        } else if (rt_tf_close_write(w, err, sizeof err)) rc = 1;
        if (rc) fprintf(stderr, "dartsc eval: %s\n", err[0] ? err : "writing predictions failed");
    }
    free(pred);
    return rc;
}

/* ---- run ---------------------------------------------------------------------------------------- */

static void run_usage(FILE *f) {
    fputs("usage: dartsc run SPACE [--out DIR] [--device auto|cpu|cuda] [search options]\n"
          "  search -> derive -> retrain -> evaluate -> export (ONNX, C) -> report; rerun to resume.\n"
          "  --seed N seeds the search and the retraining.\n", f);
    fputs(dartsc_search_flags_usage, f);
}

int dartsc_cmd_run(int argc, char **argv) {
    const char *path = NULL, *out = "runs/demo", *device = "auto";
    sr_options so = sr_options_default();
    dartsc_search_overrides ov;
    dartsc_search_overrides_init(&ov);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = dartsc_search_flag("run", a, v, &so, &ov);
        if (takes < 0) return 2;
        if (takes > 0) {
            i++;
            continue;
        }
        if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            run_usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "dartsc run: unknown option '%s'\n", a);
            run_usage(stderr);
            return 2;
        } else path = a;
    }
    if (!path) {
        run_usage(stderr);
        return 2;
    }
    ir_space sp;
    if (dartsc_load_space(path, &sp)) return 1;
    dartsc_search_overrides_apply(&ov, &sp);
    if (dartsc_search_strategy_from_space(&ov, &sp, &so)) return 2;
    char err[1024], p[4200];
    double times[4] = {0}, search_rss_mb = -1;
    /* one device for every stage: "auto" resolved once, said in the log and results.json */
    const char *asked = device;
    device = rt_device_resolve(device);
    if (rt_dist_rank() == 0) fprintf(stderr, "== device: %s%s\n", device, strcmp(asked, device) ? " (auto)" : "");
    /* 0. the data, before anything is written: the training split where a search or the
       retraining is left to do, the test split always (kept: the stages read it from memory) */
    if (sr_data_prepare(&sp, !exists(out, "search.done") || !exists(out, "model.dtns"), 1, err, sizeof err)) {
        fprintf(stderr, "dartsc run: %s\n", err);
        return 1;
    }
    /* 1. search (resumes from its checkpoint; done when search.done exists) */
    if (!exists(out, "search.done")) {
        FILE *f = fopen(path, "rb");
        char *src = NULL;
        size_t len = 0;
        if (f) {
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            src = malloc((size_t)n + 1);
            len = fread(src, 1, (size_t)n, f);
            fclose(f);
        }
        sr_options o = so;
        o.out_dir = out;
        o.device = device;
        o.resume = exists(out, "checkpoint.dtns") || exists(out, "candidates.jsonl") || exists(out, "stage1/checkpoint.dtns");
        o.space_src = src;
        o.space_src_len = len;
        o.stop = &stop_flag;
        o.progress = rt_dist_rank() == 0 ? progress_lines : NULL;
        o.progress_ctx = "search";
        dartsc_op_latency_use(&o, ov.latency_cache); /* proxyless: the per-op latency table */
        sr_result r;
        if (rt_dist_rank() == 0) fprintf(stderr, "== search (%s)\n", o.resume ? "resuming" : "from scratch");
        dartsc_out_dir od;
        dartsc_out_dir_note(&od, out);
        int rc = sr_search(&sp, &o, &r, err, sizeof err);
        free(src);
        if (rc) {
            fprintf(stderr, "\ndartsc run: search: %s\n", err);
            dartsc_out_dir_cleanup(&od); /* no empty directory left behind */
            return 1;
        }
        if (r.stopped) {
            if (rt_dist_rank() == 0) fprintf(stderr, "dartsc run: stopped during the search; rerun the same command to resume\n");
            return 130;
        }
        warn_peak("run", "search", r.loss_peak, r.loss_peak_step);
        if (r.stop_epoch) fprintf(stderr, "== search stopped early (darts-plus): %s\n", r.stop_reason);
        times[0] = r.seconds;
        /* the process's peak resident memory so far: the search's (it ran first; on the CPU
           that is its activations, gradients and data; on CUDA the device's are not in it) */
        struct rusage ru;
        search_rss_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : -1;
        snprintf(p, sizeof p, "%s/search.done", out);
        f = rt_dist_rank() == 0 ? dartsc_fopen_out("run", p) : NULL;
        if (f) {
            fprintf(f, "%.3f %.1f\n", r.seconds, search_rss_mb);
            fclose(f);
        }
    }
    if (run_stopped("retraining", 1)) return 130;
    ir_genotype gt;
    snprintf(p, sizeof p, "%s/genotype.json", out);
    int grc = 0; /* data-parallel: rank 0 reads the genotype, every process retrains it */
    if (rt_dist_rank() == 0) {
        dartsc_render_cells(out);
        grc = sr_genotype_read_json(&sp, p, &gt, err, sizeof err);
    }
    rt_dist_bcast(&grc, sizeof grc, 0);
    rt_dist_bcast(&gt, sizeof gt, 0);
    if (grc) {
        if (rt_dist_rank() == 0) fprintf(stderr, "dartsc run: %s\n", err);
        return 1;
    }
    printf("genotype: ");
    sr_genotype_print(&sp, &gt, stdout);
    /* 2. retrain */
    if (!exists(out, "model.dtns")) {
        sr_train_opts o = sr_train_opts_default();
        o.out_dir = out;
        o.device = device;
        o.checkpoint_steps = so.checkpoint_steps; /* --checkpoint-every / --checkpoint-minutes apply to both */
        o.checkpoint_seconds = so.checkpoint_seconds;
        o.resume = exists(out, "train_checkpoint.dtns");
        o.stop = &stop_flag;
        o.progress = rt_dist_rank() == 0 ? progress_lines : NULL;
        o.progress_ctx = "train";
        sr_train_result r;
        if (rt_dist_rank() == 0) fprintf(stderr, "== retrain (%s)\n", o.resume ? "resuming" : "from scratch");
        if (sr_train(&sp, &gt, &o, &r, err, sizeof err)) {
            fprintf(stderr, "\ndartsc run: train: %s\n", err);
            return 1;
        }
        if (r.stopped) {
            if (rt_dist_rank() == 0) fprintf(stderr, "dartsc run: stopped during retraining; rerun the same command to resume\n");
            return 130;
        }
        warn_peak("run", "retraining", r.loss_peak, r.loss_peak_step);
        times[1] = r.seconds;
        snprintf(p, sizeof p, "%s/train.done", out);
        FILE *f = rt_dist_rank() == 0 ? dartsc_fopen_out("run", p) : NULL;
        if (f) {
            fprintf(f, "%.3f\n", r.seconds);
            fclose(f);
        }
    }
    /* data-parallel: evaluation, export and the report are rank 0's alone */
    if (rt_dist_rank() != 0) return 0;
    /* stage times of earlier invocations (resumed runs) */
    const char *done[2] = {"search.done", "train.done"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", out, done[k]);
        FILE *f = access(p, F_OK) == 0 && dartsc_check_input("run", p) == 0 ? fopen(p, "r") : NULL;
        if (f) {
            if (fscanf(f, "%lf", &times[k]) != 1) times[k] = 0;
            if (k == 0 && fscanf(f, "%lf", &search_rss_mb) != 1) search_rss_mb = -1; /* older runs: seconds only */
            fclose(f);
        }
    }
    /* 3. evaluate */
    snprintf(p, sizeof p, "%s/model.dtns", out);
    if (run_stopped("evaluation", 1)) return 130;
    fprintf(stderr, "== evaluate\n");
    if (sp.kind == IR_SPACE_RNN) { /* export and report of recurrent cells are not implemented */
        char rp[4200];
        snprintf(rp, sizeof rp, "%s/results.json", out);
        if (rnn_eval_print(&sp, &gt, p, device, rp, times)) return 1;
        if (run_stopped("evaluation", 0) || run_stopped("export", 1)) return 130;
        fprintf(stderr, "== export\n");
        char onnx_p[4200], cdir_p[4200];
        snprintf(onnx_p, sizeof onnx_p, "%s/model.onnx", out);
        snprintf(cdir_p, sizeof cdir_p, "%s/c", out);
        return rnn_export(&sp, &gt, p, onnx_p, cdir_p, "model", 64);
    }
    double t0 = sr_now();
    sr_eval_result ev;
    if (sr_evaluate(&sp, &gt, p, device, &ev, err, sizeof err)) {
        fprintf(stderr, "dartsc run: eval: %s\n", err);
        return 1;
    }
    times[2] = sr_now() - t0;
    if (run_stopped("evaluation", 0)) return 130;
    printf("test accuracy %.2f%% on %d images (loss %.4f)\n", 100 * ev.acc, ev.n, ev.loss);
    /* 4. export */
    if (run_stopped("export", 1)) return 130;
    fprintf(stderr, "== export\n");
    char onnx[4200], cdir[4200];
    snprintf(onnx, sizeof onnx, "%s/model.onnx", out);
    snprintf(cdir, sizeof cdir, "%s/c", out);
    t0 = sr_now();
    if (do_export(&sp, &gt, p, onnx, cdir, "model", 1, 1, ev.acc, 0, 0)) return 1;
    times[3] = sr_now() - t0;
    if (run_stopped("export", 0)) return 130;
    char rp[4200];
    snprintf(rp, sizeof rp, "%s/results.json", out);
    /* the retrained network's weights (the eval network's parameter count; -1 if it cannot be built) */
    long long params = -1;
    {
        ir_eval_opts eo = {.C = sp.train_C, .layers = sp.train_layers, .batch = 1};
        ir_net en;
        if (ir_space_build_eval(&sp, &gt, &eo, &en) == 0) {
            ir_stats st;
            ir_graph_stats(en.graph, &st);
            params = (long long)st.weight_params;
            ir_net_free(&en);
        }
    }
    FILE *f = dartsc_fopen_out("run", rp);
    if (f) {
        char n[2][32];
        fprintf(f, "{\"test_accuracy\":%s,\"test_loss\":%s,\"test_images\":%d,\"search_seconds\":%.1f,\"train_seconds\":%.1f,"
                   "\"eval_seconds\":%.1f,\"export_seconds\":%.1f,\"strategy\":\"%s\",\"device\":\"%s\","
                   "\"search_peak_rss_mb\":%.1f,\"parameters\":%lld}\n",
                sr_json_num(n[0], 32, "%.6f", ev.acc), sr_json_num(n[1], 32, "%.6f", ev.loss), ev.n, times[0], times[1],
                times[2], times[3], dartsc_strategy_name(so.strategy), device, search_rss_mb, params);
        fclose(f);
    }
    /* 5. report */
    if (run_stopped("report", 1)) return 130;
    if (dartsc_write_report(out, &sp, &gt, ev.acc, argc, argv) == 0) fprintf(stderr, "wrote %s/report.html\n", out);
    if (run_stopped("report", 0)) return 130;
    return 0;
}
