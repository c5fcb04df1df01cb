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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_testutil.h"


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
    step0_match(dir, order, tol, tol);
}

Test(dist_rnn, first_step_matches_one_process_first_order, .timeout = 120) { match_case(1, 1e-5); }
Test(dist_rnn, first_step_matches_one_process_second_order, .timeout = 120) { match_case(2, 1e-4); }



/* Two search directories hold the same checkpoint (every process's hidden states in it),
 * log and genotype, byte for byte. */
static void same_search(const char *a, const char *b) {
    const char *names[3] = {"checkpoint.dtns", "metrics.jsonl", "genotype.json"};
    for (int i = 0; i < 3; i++) cr_expect(tu_same_file(a, b, names[i]), "%s/%s and %s/%s differ", a, names[i], b, names[i]);
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
    same_search(a, b);
    snprintf(a, sizeof a, "%s/r0/metrics.jsonl", dir);
    cr_expect_eq(count_lines(a), 10, "2 epochs of 4 windows and 2 epoch-end lines, not %d lines", count_lines(a));
}


Test(dist_rnn, resume_after_kill_9_of_the_job, .timeout = 300) {
    const char *dir = tu_tmpdir();
    write_corpus(dir);
    const char *space = write_space(dir, "s.dartsc", 2, 1, 12, 0.2, 0);
    const char *bin = getenv("DARTSC_BIN");
    char cmd[4096], ref[800], run[800];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    int had = search_then_kill_9(space, dir);
    cr_assert(had >= 5 && had < 26, "killed after %d lines: not in the middle of the run", had);
    /* another number of processes is refused, naming both */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s search %s --out %s --device cpu --resume", bin, space, run);
    refused(cmd, dir, "was written by a run of 2 processes; this run has 1");
    snprintf(cmd, sizeof cmd,
             MPIRUN "2 %s search %s --out %s --device cpu --resume --checkpoint-every 1 > %s/resume.log 2>&1", bin,
             space, run, dir);
    cr_assert_eq(sh(cmd), 0, "resume failed: %s/resume.log", dir);
    same_search(ref, run);
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

int main(int argc, char *argv[]) { return dist_test_main(argc, argv); }
