/* test_train.c — retraining, weights files, test evaluation and the command-line driver
 * (bad input gets a message naming the file and a non-zero exit). */
#include <criterion/criterion.h>
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
