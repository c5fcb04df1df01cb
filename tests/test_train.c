/* test_train.c — retraining, weights files, test evaluation and the command-line driver
 * (bad input gets a message naming the file and a non-zero exit). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/tensorfile.h"
#include "pipeline/pipeline.h"
#include "train/checkpoint.h"
#include "train/train.h"
#include "testutil.h"

static void tiny_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    snprintf(sp->name, sizeof sp->name, "tiny");
    sp->data = IR_DATA_FASHION_MNIST;
    sp->in_c = 1; sp->in_h = sp->in_w = 28; sp->classes = 10;
    sp->C = 4; sp->layers = 3; sp->stem_mult = 2; sp->n_reduce = 1; sp->reduce_at[0] = 1;
    sp->train_C = 4; sp->train_layers = 3;
    sp->train.epochs = 2;
    sp->train.batch = 16;
    sp->train.subset = 64;
    sp->train.test_subset = 250; /* two passes: 2 x 100 and a remainder of 50 */
    sp->train.cutout = 8;
    sp->train.drop_path = 0.2f;
    sp->train.aux_weight = 0;
}


Test(train, resume_is_bit_identical_and_weights_evaluate, .timeout = 600) {
    ir_space sp;
    tiny_space(&sp);
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_train_opts o = sr_train_opts_default();
    sr_train_result r;
    o.out_dir = a;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert(!r.stopped);
    cr_expect_eq(r.steps, 8);
    o.out_dir = b;
    o.stop_after_steps = 5;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    cr_assert(r.stopped);
    o.stop_after_steps = 0;
    o.resume = 1;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/model.dtns", a);
    snprintf(pb, sizeof pb, "%s/model.dtns", b);
    size_t na, nb;
    char *x = tu_slurp(pa, &na), *y = tu_slurp(pb, &nb);
    cr_assert(x && y);
    cr_expect(na == nb && memcmp(x, y, na) == 0, "resumed training differs from uninterrupted training");
    free(x);
    free(y);
    /* evaluation on 250 test images (full batches and a remainder) */
    sr_eval_result ev;
    cr_assert_eq(sr_evaluate(&sp, &gt, pa, "cpu", &ev, err, sizeof err), 0, "%s", err);
    cr_expect_eq(ev.n, 250);
    cr_expect(ev.acc >= 0 && ev.acc <= 1 && ev.loss > 0, "acc %g loss %g", ev.acc, ev.loss);
    /* weights of another architecture are refused by name */
    ir_space other = sp;
    other.train_C = 6;
    cr_expect_eq(sr_evaluate(&other, &gt, pa, "cpu", &ev, err, sizeof err), -1);
    cr_expect(strstr(err, "model.dtns") && strstr(err, "shape"), "%s", err);
    /* a truncated weights file is refused */
    FILE *f = fopen(pb, "r+b");
    cr_assert(f);
    fclose(f);
    cr_assert_eq(truncate(pb, (off_t)(nb / 2)), 0);
    cr_expect_eq(sr_evaluate(&sp, &gt, pb, "cpu", &ev, err, sizeof err), -1);
    cr_expect(strstr(err, "truncated"), "%s", err);
}

/* ---- the driver ------------------------------------------------------------------------------ */

static int run_cli(const char *args, char *out, size_t outn) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outn - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(cli, bad_input_names_the_file_and_exits_nonzero) {
    char out[8192];
    const char *dir = tu_tmpdir();
    char path[600], args[1400];
    cr_expect_neq(run_cli("search /nonexistent/space.dartsc", out, sizeof out), 0);
    cr_expect(strstr(out, "/nonexistent/space.dartsc"), "%s", out);
    snprintf(path, sizeof path, "%s/bad.dartsc", dir);
    FILE *f = fopen(path, "w");
    fputs("network n { C 16; layrs 8 }\nsearch { epochs -3 }\n", f);
    fclose(f);
    snprintf(args, sizeof args, "check %s", path);
    cr_expect_neq(run_cli(args, out, sizeof out), 0);
    cr_expect(strstr(out, "bad.dartsc:"), "%s", out);
    cr_expect_neq(run_cli("search examples/fashion_mnist.dartsc --epochs zero", out, sizeof out), 0);
    cr_expect(strstr(out, "--epochs"), "%s", out);
    cr_expect_neq(run_cli("frobnicate", out, sizeof out), 0);
    cr_expect(strstr(out, "unknown command"), "%s", out);
    snprintf(args, sizeof args, "eval %s", dir);
    cr_expect_neq(run_cli(args, out, sizeof out), 0);
    cr_expect(strstr(out, "not a run directory"), "%s", out);
    snprintf(path, sizeof path, "%s/garbage.onnx", dir);
    f = fopen(path, "w");
    fputs("definitely not protobuf", f);
    fclose(f);
    snprintf(args, sizeof args, "inspect %s", path);
    cr_expect_neq(run_cli(args, out, sizeof out), 0);
    cr_expect(strstr(out, "garbage.onnx"), "%s", out);
}

/* Fails before the fix: the writer's reason ("write failed: File too large" here, "No space
 * left on device" on a full disk) was dropped for "writing the checkpoint failed". */
Test(train, checkpoint_write_failure_names_the_reason_and_keeps_the_previous) {
    const char *dir = tu_tmpdir();
    char path[600], err[1024];
    snprintf(path, sizeof path, "%s/ck.dtns", dir);
    static float big[1 << 20];
    int64_t meta[2] = {1, 2};
    sr_ckpt_entry e[2] = {{SR_CKPT_I64, "meta/state", meta, 2, 0}, {SR_CKPT_HOST, "big", big, 1 << 20, 0}};
    cr_assert_eq(sr_ckpt_save(path, NULL, e, 1, err, sizeof err), 0, "%s", err); /* the previous checkpoint */
    size_t n0;
    char *before = tu_slurp(path, &n0);
    cr_assert(before);
    /* a file size limit makes the 4 MiB write fail as a full disk would (EFBIG instead of ENOSPC) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 65536, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    cr_expect_eq(sr_ckpt_save(path, NULL, e, 2, err, sizeof err), -1);
    cr_expect(strstr(err, "ck.dtns: writing the checkpoint failed: ") && strstr(err, "ck.dtns.tmp: write failed: File too large"),
              "%s", err);
    size_t n1;
    char *after = tu_slurp(path, &n1);
    cr_expect(after && n1 == n0 && memcmp(before, after, n0) == 0, "the previous checkpoint changed");
    free(before);
    free(after);
}

/* ---- prefetch and the weight gradient norm's guard in the retraining loop (#19) ---------- */

static void train_expect_same(const char *a, const char *b, const char *name) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s", a, name);
    snprintf(pb, sizeof pb, "%s/%s", b, name);
    size_t na = 0, nb = 0;
    char *x = tu_slurp(pa, &na), *y = tu_slurp(pb, &nb);
    cr_assert(x && y, "%s or %s missing", pa, pb);
    if (!strcmp(name, "train_metrics.jsonl")) { /* the throughput is the clock's: its values dropped */
        size_t *len[2] = {&na, &nb};
        char *t[2] = {x, y};
        for (int k = 0; k < 2; k++) {
            char *o = t[k];
            for (const char *c = t[k]; *c;) {
                if (!strncmp(c, "\"images_per_s\":", 15)) {
                    c += 15;
                    while (*c && *c != '}' && *c != ',') c++;
                } else
                    *o++ = *c++;
            }
            *o = 0;
            *len[k] = (size_t)(o - t[k]);
        }
    }
    cr_expect(na == nb && memcmp(x, y, na) == 0, "%s differs between %s and %s", name, a, b);
    free(x);
    free(y);
}

/* Retraining with prefetch (the default: the next step's batch drawn and put while a step
 * computes) and without (DARTSC_NO_PREFETCH=1): the same files byte for byte, whole runs,
 * runs stopped in the middle of an epoch with a periodic checkpoint before (both with a
 * batch drawn ahead: the checkpoint holds the loader position of the batches consumed),
 * and the stopped prefetching run resumed. Drop path and cutout on (their draws too). */
Test(train, prefetch_changes_no_bit_and_resumes, .timeout = 600) {
    ir_space sp;
    tiny_space(&sp); /* 2 epochs of 4 steps */
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    char dir[4][300], err[1024];
    for (int i = 0; i < 4; i++) snprintf(dir[i], sizeof dir[i], "%s", tu_tmpdir());
    sr_train_result r;
    for (int i = 0; i < 4; i++) { /* 0, 1: whole runs off / on; 2, 3: stopped after 3 steps, off / on */
        if (i % 2) unsetenv("DARTSC_NO_PREFETCH");
        else setenv("DARTSC_NO_PREFETCH", "1", 1);
        sr_train_opts o = sr_train_opts_default();
        o.out_dir = dir[i];
        o.checkpoint_steps = 2;
        o.checkpoint_seconds = 0;
        o.stop_after_steps = i >= 2 ? 3 : 0;
        cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
        cr_assert_eq(r.stopped, i >= 2);
    }
    unsetenv("DARTSC_NO_PREFETCH");
    const char *files[3] = {"train_checkpoint.dtns", "model.dtns", "train_metrics.jsonl"};
    for (int f = 0; f < 3; f++) train_expect_same(dir[0], dir[1], files[f]);
    train_expect_same(dir[2], dir[3], "train_checkpoint.dtns");
    train_expect_same(dir[2], dir[3], "train_metrics.jsonl");
    sr_train_opts o = sr_train_opts_default();
    o.out_dir = dir[3];
    o.resume = 1;
    o.checkpoint_steps = 2;
    o.checkpoint_seconds = 0;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    for (int f = 0; f < 3; f++) train_expect_same(dir[0], dir[3], files[f]);
}

/* A weight gradient that is not finite while the loss is: one weight of a convolution in
 * cell 0 made NaN in a checkpoint. The cell's output reaches the loss only through the next
 * cells' ReLUs, which map NaN to 0, so the loss stays finite, but the gradient through that
 * weight (into the stem) is NaN. The resumed run's first step skips SGD on the backend (the
 * norm is the step's guard), and the loop stops with "the weight gradient norm" and the
 * checkpoint kept as it was; no model.dtns is written. */
Test(train, a_nan_gradient_with_a_finite_loss_stops_with_the_norm, .timeout = 300) {
    ir_space sp;
    tiny_space(&sp);
    sp.train.drop_path = 0;
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    char dir[300], err[1024], path[600];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    sr_train_opts o = sr_train_opts_default();
    o.out_dir = dir;
    o.stop_after_steps = 2;
    sr_train_result r;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    /* the offset of a cell-0 convolution weight in the weight group: the loop's network */
    ir_eval_opts eo = {.C = sp.train_C, .layers = sp.train_layers, .batch = sp.train.batch};
    ir_net net;
    cr_assert_eq(ir_space_build_eval(&sp, &gt, &eo, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.grads = RT_GRAD_W}, err, sizeof err);
    cr_assert(p, "%s", err);
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT);
    int64_t off = -1;
    for (int i = 0; i < ir_graph_num_nodes(net.graph) && off < 0; i++) {
        const ir_node *n = ir_graph_node(net.graph, i);
        if (n->op == IR_OP_PARAM && n->role == IR_ROLE_WEIGHT && n->ndim == 4 && !strncmp(n->name, "cells.0._ops.", 13))
            off = (float *)rt_node_data(p, i) - gw.data;
    }
    cr_assert(off >= 0, "no convolution in cell 0");
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    /* the checkpoint rewritten with that weight NaN */
    snprintf(path, sizeof path, "%s/train_checkpoint.dtns", dir);
    tu_tf_set_nan(path, "group/weights", off);
    size_t n0, n1;
    char *before = tu_slurp(path, &n0);
    o.stop_after_steps = 0;
    o.resume = 1;
    err[0] = 0;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), -1, "the run went on");
    cr_expect(strstr(err, "step 3 of the run") && strstr(err, "the weight gradient norm is not a number (NaN)") &&
                  strstr(err, "the last good checkpoint is kept"),
              "%s", err);
    char *after = tu_slurp(path, &n1);
    cr_expect(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "the checkpoint changed");
    free(before);
    free(after);
    snprintf(path, sizeof path, "%s/model.dtns", dir);
    cr_expect(access(path, F_OK) != 0, "a model was written");
}
