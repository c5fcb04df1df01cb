/* test_dist_rnn.c — the recurrent (kind rnn) search and retraining as data-parallel jobs of
 * 2 processes under Open MPI's mpirun (train/rnn.h, search/rnn.c, docs/SCALING.md), on a
 * tiny language model over a generated corpus:
 *  - step 0's losses and gradients (α first and second order, with the second-order step's
 *    extra passes; the clipped weight gradient with the tar term) of 2 processes, each
 *    taking half of the batch's columns, equal one process's at the same global batch
 *    (sync_bn on: the search cell's batch norms over the global batch);
 *  - with dropout and per-process batch norm, two 2-process searches give the same bits;
 *  - kill -9 of a 2-process search, then --resume: the run ends with the uninterrupted
 *    run's checkpoint (every process's hidden states in it) and log; a resume with another
 *    number of processes is refused;
 *  - a 2-process retraining logs one process's losses (no batch norm in the derived cell)
 *    and rank 0 writes model.dtns.
 * Skipped (77) where the build has no MPI or mpirun is missing. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/dist.h"
#include "runtime/tensorfile.h"
#include "testutil.h"

#define MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
#define MPIRUN MPI_ENV "mpirun --oversubscribe -n "
#define EXEC_MPIRUN MPI_ENV "exec mpirun --oversubscribe -n "

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A corpus in the PTB layout: sentences of 3..10 words over 30 words from an LCG, with a
 * little structure (each word follows the last by 1..3). */
static void write_corpus(const char *dir) {
    const char *names[3] = {"train.txt", "valid.txt", "test.txt"};
    const int sentences[3] = {260, 70, 70};
    uint32_t s = 777;
    for (int k = 0; k < 3; k++) {
        char p[800];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        FILE *f = fopen(p, "w");
        cr_assert(f, "cannot write %s", p);
        for (int i = 0; i < sentences[k]; i++) {
            s = s * 1103515245u + 12345u;
            int len = 3 + (int)((s >> 16) % 8), w = (int)((s >> 8) % 30);
            for (int j = 0; j < len; j++) {
                s = s * 1103515245u + 12345u;
                w = (w + 1 + (int)((s >> 20) % 3)) % 30;
                fprintf(f, " v%d", w);
            }
            fputs(" \n", f);
        }
        fclose(f);
    }
}

/* The space: batch 8 (4 columns per process), bptt 5, 3 nodes. */
static const char *write_space(const char *dir, const char *name, int epochs, int order, int windows, double drop,
                               int sync) {
    static char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "ops r = { none, tanh, relu, sigmoid, identity }\n"
            "cell c { inputs 1; nodes 3; keep 1; combine mean; ops r }\n"
            "network tiny { kind rnn; data text \"%s\"; emb 8; hidden 8; normal c }\n"
            "search { epochs %d; subset %d; batch 8; bptt 5; order %d; lr 2; clip 0.25; dropout %g; dropout_h %g;"
            " dropout_x %g; dropout_i %g; dropout_e 0; tar 1; sync_bn %s; seed 3 }\n"
            "train { epochs 1; subset %d; batch 8; bptt 5; lr 2; lr_min 2; clip 0.25; dropout %g; dropout_h %g;"
            " dropout_x %g; dropout_i %g; dropout_e 0; tar 1; seed 3 }\n",
            dir, epochs, windows, order, drop, drop, drop, drop, sync ? "on" : "off", windows, drop, drop, drop, drop);
    fclose(f);
    return path;
}

static const float *entry(const rt_tf_file *f, const char *name, int64_t *n) {
    const rt_tf_entry *e = rt_tf_find(f, name);
    cr_assert(e, "no %s", name);
    *n = e->numel;
    return e->data;
}

/* 2 processes against 1 at the same global batch of 8 columns, sync_bn on. They differ in
 * rounding only: the cross-entropy is the mean of two half-batch means instead of one
 * mean, each gradient the float sum of two halves times 1/2, the batch norms' statistics
 * merged from per-process (count, mean, M2) in double; and the second order's R = 0.01/|v|
 * and finite difference (g+ - g-)/2R magnify the gradients' rounding. Measured (norm of
 * the difference over the norm): first order, losses 7.1e-8, α gradient 5.8e-7, weight
 * gradient 7.8e-8; second order, α gradient 5.2e-6, weight gradient 1.3e-7. Tolerance
 * 1e-5 (first order) and 1e-4 (second order's finite difference): 17-20x the rounding
 * seen, while per-process batch norm (sync_bn off) moves the losses by 1.4e-3..4.4e-3 and
 * the gradients by 0.5..1.2, and a column slice or a sum gone wrong is O(1). */
static void match_case(int order, double tol) {
    const char *dir = tu_tmpdir();
    write_corpus(dir);
    const char *space = write_space(dir, "s.dartsc", 1, order, 6, 0, 1);
    const char *bin = getenv("DARTSC_DIST_STEP");
    cr_assert(bin, "DARTSC_DIST_STEP not set (ctest sets it)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s %s/one.dtns > %s/one.log 2>&1", bin, space, dir, dir);
    cr_assert_eq(sh(cmd), 0, "one process failed: %s/one.log", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s %s %s/two.dtns > %s/two.log 2>&1", bin, space, dir, dir);
    cr_assert_eq(sh(cmd), 0, "2 processes failed: %s/two.log", dir);
    char p1[800], p2[800], err[512];
    snprintf(p1, sizeof p1, "%s/one.dtns", dir);
    snprintf(p2, sizeof p2, "%s/two.dtns", dir);
    rt_tf_file *a = rt_tf_read(p1, err, sizeof err), *b = rt_tf_read(p2, err, sizeof err);
    cr_assert(a && b, "%s", err);
    const char *names[4] = {"loss/val", "loss/train", "grad/arch", "grad/weights"};
    for (int i = 0; i < 4; i++) {
        int64_t na, nb;
        const float *x = entry(a, names[i], &na), *y = entry(b, names[i], &nb);
        cr_assert_eq(na, nb);
        double e = tu_norm_rel_err(y, x, na), nx = 0;
        for (int64_t k = 0; k < na; k++) nx += (double)x[k] * x[k];
        cr_assert(nx > 0 && isfinite(nx), "order %d, %s: a zero or non-finite reference", order, names[i]);
        cr_log_info("order %d, %s: 2 processes vs 1: relative error %.3g", order, names[i], e);
        cr_expect(e <= tol, "order %d, %s: 2 processes vs 1: relative error %.3g > %g", order, names[i], e, tol);
    }
    rt_tf_free(a);
    rt_tf_free(b);
}

Test(dist_rnn, first_step_matches_one_process_first_order, .timeout = 120) { match_case(1, 1e-5); }
Test(dist_rnn, first_step_matches_one_process_second_order, .timeout = 120) { match_case(2, 1e-4); }

static void same_file(const char *dir_a, const char *dir_b, const char *name) {
    char a[900], b[900];
    snprintf(a, sizeof a, "%s/%s", dir_a, name);
    snprintf(b, sizeof b, "%s/%s", dir_b, name);
    size_t na, nb;
    char *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
    cr_assert(x && y, "cannot read %s or %s", a, b);
    cr_expect(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* Dropout on (each process draws its own masks) and per-process batch norm: a 2-process
 * search of 2 epochs (second order: the extra passes' sums too) is the same bits twice,
 * and logs one line per step of the global batch. */
Test(dist_rnn, search_is_deterministic_second_order, .timeout = 240) {
    const char *dir = tu_tmpdir();
    write_corpus(dir);
    const char *space = write_space(dir, "s.dartsc", 2, 2, 4, 0.2, 0);
    char cmd[2048], a[800], b[800];
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s/r%d --device cpu > %s/r%d.log 2>&1",
                 getenv("DARTSC_BIN"), space, dir, k, dir, k);
        cr_assert_eq(sh(cmd), 0, "search of 2 processes failed: see %s/r%d.log", dir, k);
    }
    snprintf(a, sizeof a, "%s/r0", dir);
    snprintf(b, sizeof b, "%s/r1", dir);
    same_file(a, b, "checkpoint.dtns");
    same_file(a, b, "metrics.jsonl");
    same_file(a, b, "genotype.json");
    snprintf(a, sizeof a, "%s/r0/metrics.jsonl", dir);
    cr_expect_eq(count_lines(a), 10, "2 epochs of 4 windows and 2 epoch-end lines, not %d lines", count_lines(a));
}

/* A job started in its own session, so that all of it can be killed. */
static pid_t start_job(const char *cmd) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(dist_rnn, resume_after_kill_9_of_the_job, .timeout = 300) {
    const char *dir = tu_tmpdir();
    write_corpus(dir);
    const char *space = write_space(dir, "s.dartsc", 2, 1, 12, 0.2, 0);
    const char *bin = getenv("DARTSC_BIN");
    char cmd[4096], ref[800], run[800], metrics[900];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1", bin,
             space, ref, ref);
    cr_assert_eq(sh(cmd), 0, "uninterrupted run failed: %s.log", ref);
    snprintf(cmd, sizeof cmd, EXEC_MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1",
             bin, space, run, run);
    pid_t job = start_job(cmd);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    for (int i = 0; i < 6000 && count_lines(metrics) < 5; i++) {
        int st;
        cr_assert_neq(waitpid(job, &st, WNOHANG), job, "the job ended before it logged 5 lines");
        usleep(10000);
    }
    kill(-job, SIGKILL);
    int st;
    waitpid(job, &st, 0);
    int had = count_lines(metrics);
    cr_assert(had >= 5 && had < 26, "killed after %d lines: not in the middle of the run", had);
    /* another number of processes is refused, naming both */
    char log[900];
    snprintf(log, sizeof log, "%s/refused.log", dir);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s search %s --out %s --device cpu --resume > %s 2>&1", bin, space,
             run, log);
    cr_expect_eq(sh(cmd), 1, "a resume by 1 process was not refused");
    char *msg = tu_slurp(log, NULL);
    cr_expect(msg && strstr(msg, "was written by a run of 2 processes; this run has 1"), "refusal: %s", msg);
    free(msg);
    snprintf(cmd, sizeof cmd,
             MPIRUN "2 %s search %s --out %s --device cpu --resume --checkpoint-every 1 > %s/resume.log 2>&1", bin,
             space, run, dir);
    cr_assert_eq(sh(cmd), 0, "resume failed: %s/resume.log", dir);
    same_file(ref, run, "checkpoint.dtns");
    same_file(ref, run, "metrics.jsonl");
    same_file(ref, run, "genotype.json");
}

/* The losses of a metrics line (train_loss of each step, valid_loss at epoch ends). */
static int losses(const char *path, double *v, int max) {
    char *s = tu_slurp(path, NULL);
    cr_assert(s, "cannot read %s", path);
    int n = 0;
    for (char *p = s; n < max && (p = strstr(p, "_loss\": ")); p += 8) v[n++] = strtod(p + 8, NULL);
    free(s);
    return n;
}

/* Retraining without dropout: the derived cell has no batch norm, so 2 processes train the
 * one-process model up to rounding. The logged losses (6 steps, 6 decimals) agree within
 * 1e-4 relative: the rounding of sums over half batches is ~1e-7 a step, and 6 SGD steps at
 * lr 2 grow it a few times over; a wrong column split or gradient scale is O(1e-2) or more. */
Test(dist_rnn, retraining_matches_one_process, .timeout = 240) {
    const char *dir = tu_tmpdir();
    write_corpus(dir);
    const char *space = write_space(dir, "s.dartsc", 1, 1, 6, 0, 0);
    const char *bin = getenv("DARTSC_BIN");
    char geno[800], cmd[4096], p[900];
    snprintf(geno, sizeof geno, "%s/g.json", dir);
    FILE *f = fopen(geno, "w");
    cr_assert(f);
    fputs("{\"recurrent\": [[\"tanh\", 0], [\"relu\", 1], [\"sigmoid\", 1]], \"concat\": [1, 2, 3]}\n", f);
    fclose(f);
    for (int k = 1; k <= 2; k++) {
        char launch[200] = "OMP_NUM_THREADS=1";
        if (k > 1) snprintf(launch, sizeof launch, MPIRUN "%d", k);
        snprintf(cmd, sizeof cmd, "%s %s train %s --genotype %s --out %s/t%d --device cpu > %s/t%d.log 2>&1", launch,
                 bin, space, geno, dir, k, dir, k);
        cr_assert_eq(sh(cmd), 0, "retraining of %d process(es) failed: see %s/t%d.log", k, dir, k);
    }
    double a[16], b[16];
    snprintf(p, sizeof p, "%s/t1/train_metrics.jsonl", dir);
    int na = losses(p, a, 16);
    snprintf(p, sizeof p, "%s/t2/train_metrics.jsonl", dir);
    int nb = losses(p, b, 16);
    cr_assert_eq(na, 7, "6 steps and the epoch's validation, not %d losses", na);
    cr_assert_eq(na, nb);
    for (int i = 0; i < na; i++)
        cr_expect(fabs(a[i] - b[i]) <= 1e-4 * fabs(a[i]), "loss %d: 1 process %.6f, 2 processes %.6f", i, a[i], b[i]);
    snprintf(p, sizeof p, "%s/t2/model.dtns", dir);
    cr_expect_eq(access(p, F_OK), 0, "rank 0 wrote no model.dtns");
}

int main(int argc, char *argv[]) {
    if (!rt_dist_have_mpi() || system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("SKIP: this build has no MPI, or mpirun is not installed (scripts/setup installs openmpi-bin)\n");
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
