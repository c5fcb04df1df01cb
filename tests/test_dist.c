/* test_dist.c — data-parallel runs (runtime/dist.h, docs/SCALING.md) as jobs of 2
 * processes under Open MPI's mpirun against one process, on a tiny space:
 *  - sync_bn on: step 0's losses and every gradient (α first and second order, with the
 *    second-order step's extra passes; the weights) of 2 processes equal one process's at
 *    the same global batch to float rounding;
 *  - per-process batch norm (the default): a search (first and second order) gives the same
 *    bits in two runs, and a retraining completes;
 *  - kill -9 of the whole job, then --resume: the run ends with the uninterrupted run's
 *    checkpoint bytes and log; a resume with another number of processes, or another
 *    sync_bn, is refused;
 *  - a rank killed, or stopped (hung), ends the job within a bounded time with a message
 *    naming it;
 *  - random search trains its candidates on different ranks and scores exactly as one
 *    process does; so does the RL search when its rounds are its controller steps;
 *  - ENAS (with the rotation pretext): every rank's controller takes the whole batch's
 *    rewards, as one process's does;
 *  - time-based checkpoints fall on the same step on every process;
 *  - `dartsc run` as a job; commands that run as one process refuse a job.
 * Skipped (77) where the build has no MPI or mpirun is missing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/dist.h"
#include "runtime/tensorfile.h"
#include "dist_testutil.h"
#include "testutil.h"


static const char *space_fmt =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 2; keep 2; ops darts }\n"
    "cell reduce : normal { reduction }\n"
    "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
    "settings s { batch 16; lr 0.025; momentum 0.9; weight_decay 3e-4; clip 5; seed 1 }\n"
    "search : s { epochs %d; order %d; subset %d; sync_bn %s }\n"
    "train : s { C 4; layers 3; epochs 1; subset 64; test_subset 64; drop_path 0.2; aux_weight 0 }\n";


static const char *write_space(const char *dir, const char *name, int epochs, int order, int subset, int sync) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, space_fmt, epochs, order, subset, sync ? "on" : "off");
    fclose(f);
    return path;
}




/* sync_bn on: 2 processes against 1 at the same global batch. The two differ only in
 * rounding: the batch-norm statistics are merged from per-process (count, mean, M2) in
 * double instead of summed at once, and each gradient is the float sum of two halves
 * scaled by 1/2 instead of one sum. Measured: losses within 1.1e-7 relative, every
 * gradient vector within 3.1e-7 (norm of the difference over the norm). Tolerance 1e-5:
 * 30x the rounding seen, while per-process statistics (sync_bn off) are 0.39 away and a
 * shard or a sum gone wrong is O(1).
 * Except the second-order architecture gradient: its Hessian term is a finite difference,
 * (grad at w + R v - grad at w - R v) / 2R with R = 0.01 / ||v||, and a rounding-sized
 * change of an activation can flip a max pool's argmax (two window entries within 1e-7 of
 * each other: a few among ~10^6 windows) or a ReLU near 0, moving one gradient entry by
 * O(dy), which the 1/2R multiplies. Measured at seeds 1-5, with the supernet's shared ops
 * and without (DARTSC_NO_SHARE=1): 3e-7 where nothing flips, else 5.4e-4 to 8.9e-3 (the
 * weight gradient and the losses stay within 3e-7 throughout); tolerance 2e-2 for it: 2x
 * the worst seen, still far below the O(1) of a shard, a sum or statistics gone wrong
 * (sync_bn off: 0.39). */
static void sync_case(int order) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 1, order, 128, 1);
    const char *bin = getenv("DARTSC_DIST_STEP");
    cr_assert(bin, "DARTSC_DIST_STEP not set (ctest sets it)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s %s/one.dtns --order %d > %s/one.log 2>&1", bin, space, dir,
             order, dir);
    cr_assert_eq(sh(cmd), 0, "one process failed: %s/one.log", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s %s %s/two.dtns --order %d > %s/two.log 2>&1", bin, space, dir, order, dir);
    cr_assert_eq(sh(cmd), 0, "2 processes failed: %s/two.log", dir);
    step0_match(dir, order, 1e-5, order == 2 ? 2e-2 : 1e-5);
}

Test(dist, sync_bn_first_order_matches_one_process) { sync_case(1); }
Test(dist, sync_bn_second_order_matches_one_process) { sync_case(2); }

/* metrics.jsonl without its wall-clock field */
static char *metrics_sans_time(const char *path) {
    char *s = tu_slurp(path, NULL);
    cr_assert(s, "cannot read %s", path);
    for (char *p = s; (p = strstr(p, ",\"images_per_s\":"));) {
        char *e = strchr(p, '}');
        memmove(p, e, strlen(e) + 1);
    }
    return s;
}

static void same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
    cr_assert(x && y, "cannot read %s or %s", a, b);
    cr_expect(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

static void same_run(const char *a, const char *b) {
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/checkpoint.dtns", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.dtns", b);
    same_file(pa, pb);
    snprintf(pa, sizeof pa, "%s/alpha.jsonl", a);
    snprintf(pb, sizeof pb, "%s/alpha.jsonl", b);
    same_file(pa, pb);
    snprintf(pa, sizeof pa, "%s/metrics.jsonl", a);
    snprintf(pb, sizeof pb, "%s/metrics.jsonl", b);
    char *x = metrics_sans_time(pa), *y = metrics_sans_time(pb);
    cr_expect_str_eq(x, y, "metrics of %s and %s differ", a, b);
    free(x);
    free(y);
}

/* Per-process statistics (the default): two runs of 2 processes give the same bits. */
static void deterministic_case(int order) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 2, order, 128, 0);
    char cmd[2048];
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s/r%d --device cpu > %s/r%d.log 2>&1",
                 getenv("DARTSC_BIN"), space, dir, k, dir, k);
        cr_assert_eq(sh(cmd), 0, "search of 2 processes failed: see %s/r%d.log", dir, k);
    }
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/r0", dir);
    snprintf(b, sizeof b, "%s/r1", dir);
    same_run(a, b);
    /* and the run's meaning: 2 processes of 8 samples each are not 1 process of 16 with
       per-process statistics, but they log the global batch's mean loss: 8 steps */
    snprintf(a, sizeof a, "%s/r0/metrics.jsonl", dir);
    int lines = count_lines(a);
    cr_expect_eq(lines, 8, "2 epochs of 4 steps of the global batch of 16, not %d lines", lines);
}

Test(dist, per_process_bn_search_is_deterministic_first_order) { deterministic_case(1); }
Test(dist, per_process_bn_search_is_deterministic_second_order) { deterministic_case(2); }

/* Retraining as a job (drop path, per-process statistics): completes, and
 * rank 0 writes the model. */
Test(dist, retraining_completes) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 1, 1, 128, 0);
    char cmd[2048], geno[700];
    snprintf(geno, sizeof geno, "%s/g.json", dir);
    FILE *f = fopen(geno, "w");
    cr_assert(f);
    fputs("{\"normal\": [[\"sep_conv_3x3\", 0], [\"skip_connect\", 1], [\"max_pool_3x3\", 0], [\"dil_conv_3x3\", 2]],"
          " \"normal_concat\": [2, 3], \"reduce\": [[\"max_pool_3x3\", 0], [\"avg_pool_3x3\", 1], [\"skip_connect\", 2],"
          " [\"sep_conv_5x5\", 0]], \"reduce_concat\": [2, 3]}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s train %s --genotype %s --out %s/t --device cpu > %s/t.log 2>&1",
             getenv("DARTSC_BIN"), space, geno, dir, dir);
    cr_assert_eq(sh(cmd), 0, "retraining of 2 processes failed: see %s/t.log", dir);
    char p[700];
    snprintf(p, sizeof p, "%s/t/model.dtns", dir);
    cr_expect_eq(access(p, F_OK), 0, "no model.dtns");
    snprintf(p, sizeof p, "%s/t/train_metrics.jsonl", dir);
    int lines = count_lines(p);
    cr_expect_eq(lines, 4, "64 images in batches of 16: 4 steps, not %d", lines);
}


/* Waits for pid up to limit seconds; returns its exit status, or -1 on timeout. */
static int wait_for(pid_t pid, double limit, double *took) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (took) *took = (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) > limit) return -1;
        usleep(20000);
    }
}



Test(dist, resume_after_kill_9_of_the_job) {
    const char *dir = tu_tmpdir();
    char space[700]; /* write_space's buffer is reused below */
    snprintf(space, sizeof space, "%s", write_space(dir, "s.dartsc", 2, 1, 256, 0));
    const char *bin = getenv("DARTSC_BIN");
    char cmd[8192], ref[700], run[700];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    /* the job, killed (every process, SIGKILL) once a few steps are logged */
    cr_assert_lt(search_then_kill_9(space, dir), 16, "the run had finished before it was killed");
    /* another number of processes is refused, naming both */
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s search %s --out %s --device cpu --resume --checkpoint-every 1",
             bin, space, run);
    refused(cmd, dir, "was written by a run of 2 processes; this run has 1");
    /* so is another sync_bn with several processes (the run's batch-norm statistics) */
    const char *space_sync = write_space(dir, "sync.dartsc", 2, 1, 256, 1);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --resume --checkpoint-every 1", bin,
             space_sync, run);
    refused(cmd, dir, "sync_bn off (now on)");
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --resume --checkpoint-every 1 > %s/resume.log 2>&1",
             bin, space, run, dir);
    cr_assert_eq(sh(cmd), 0, "resume failed: %s/resume.log", dir);
    same_run(ref, run);
}

/* The pid of the process of rank r among mpirun's children (their environment says). */
static pid_t rank_pid(pid_t mpirun, int r) {
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", r);
    for (int tries = 0; tries < 500; tries++) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            pid_t pid = (pid_t)atoi(e->d_name);
            if (pid <= 0) continue;
            char p[64], buf[8192];
            snprintf(p, sizeof p, "/proc/%d/stat", pid);
            FILE *f = fopen(p, "r");
            if (!f) continue;
            int ppid = 0;
            if (fscanf(f, "%*d %*s %*c %d", &ppid) != 1) ppid = 0;
            fclose(f);
            if (ppid != mpirun) continue;
            snprintf(p, sizeof p, "/proc/%d/environ", pid);
            f = fopen(p, "r");
            if (!f) continue;
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
                buf[n] = 0;
                if (!strcmp(buf + i, want)) {
                    closedir(d);
                    return pid;
                }
            }
        }
        if (d) closedir(d);
        usleep(10000);
    }
    return -1;
}

static void dead_rank_case(int sig) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 50, 1, 256, 0);
    char cmd[2048], out[700], metrics[760];
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(cmd, sizeof cmd, "DARTSC_DIST_TIMEOUT=5 " EXEC_MPIRUN "2 %s search %s --out %s --device cpu > %s.log 2>&1",
             getenv("DARTSC_BIN"), space, out, out);
    pid_t job = start_job(cmd);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    wait_lines(metrics, 2, job);
    pid_t r1 = rank_pid(job, 1);
    cr_assert_gt(r1, 0, "rank 1 not found among mpirun's children");
    kill(r1, sig);
    double took = 0;
    int st = wait_for(job, 60, &took);
    if (st == -1) kill(-job, SIGKILL);
    kill(r1, SIGKILL);
    cr_assert_neq(st, -1, "the job still runs 60 s after rank 1 was %s", sig == SIGKILL ? "killed" : "stopped");
    cr_expect_neq(st, 0);
    snprintf(cmd, sizeof cmd, "%s.log", out);
    char *log = tu_slurp(cmd, NULL);
    cr_assert(log);
    if (sig == SIGKILL) /* Open MPI's launcher names the rank that died */
        cr_expect(strstr(log, "rank 1"), "no message naming rank 1: %s", log);
    else /* ours: the collective's deadline (DARTSC_DIST_TIMEOUT=5) */
        cr_expect(strstr(log, "rank 1 did not take part in the"), "no message naming rank 1: %s", log);
    cr_log_info("job ended %.1f s after rank 1 got signal %d", took, sig);
    free(log);
}

Test(dist, a_killed_rank_ends_the_job) { dead_rank_case(SIGKILL); }
Test(dist, a_hung_rank_ends_the_job_at_the_deadline) { dead_rank_case(SIGSTOP); }

/* The search of SPACE with FLAGS as one process and as 2 under mpirun, into DIR/one and
 * DIR/two. */
static void search_one_and_two(const char *dir, const char *space, const char *flags) {
    const char *bin = getenv("DARTSC_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s search %s --out %s/one %s > %s/one.log 2>&1", bin, space, dir, flags, dir);
    cr_assert_eq(sh(cmd), 0, "one process failed: %s/one.log", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s/two %s > %s/two.log 2>&1", bin, space, dir, flags, dir);
    cr_assert_eq(sh(cmd), 0, "2 processes failed: %s/two.log", dir);
}

/* A baseline search (FLAGS) as one process and as 2: candidates.jsonl (without its
 * wall-clock field) and genotype.json are the same. */
static void baseline_one_and_two(const char *dir, const char *flags) {
    search_one_and_two(dir, write_space(dir, "s.dartsc", 1, 1, 128, 0), flags);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/one/candidates.jsonl", dir);
    snprintf(b, sizeof b, "%s/two/candidates.jsonl", dir);
    char *x = tu_slurp(a, NULL), *y = tu_slurp(b, NULL);
    cr_assert(x && y);
    for (char *s2[2] = {x, y}, **q = s2; q < s2 + 2; q++) /* drop "seconds":T, */
        for (char *p = *q; (p = strstr(p, "\"seconds\":"));) {
            char *e = strchr(p, ',');
            memmove(p, e + 1, strlen(e + 1) + 1);
        }
    cr_expect_str_eq(x, y, "candidates.jsonl of 2 processes differs from one process's");
    free(x);
    free(y);
    snprintf(a, sizeof a, "%s/one/genotype.json", dir);
    snprintf(b, sizeof b, "%s/two/genotype.json", dir);
    same_file(a, b);
}

/* Random search: candidates 0, 2 on rank 0 and 1 on rank 1, each trained by one process:
 * the same scores and genotypes as one process (the log without its wall-clock field). */
Test(dist, random_search_trains_candidates_on_different_ranks) {
    baseline_one_and_two(tu_tmpdir(), "--device cpu --strategy random --candidates 3 --candidate-epochs 1");
}

/* The RL search in rounds of 2: with 2 children a controller step, each round is one step,
 * so 2 processes draw every candidate from the controller the sequential run draws it
 * from; the controllers of both ranks take the round's rewards (gathered at full
 * precision): the same candidates, scores, genotype and controller state, bit for bit. */
Test(dist, rl_search_in_rounds_of_children_is_the_sequential_search) {
    const char *dir = tu_tmpdir();
    baseline_one_and_two(dir, "--device cpu --strategy rl --candidates 4 --candidate-epochs 1 --children 2");
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/one/controller.dtns", dir);
    snprintf(b, sizeof b, "%s/two/controller.dtns", dir);
    same_file(a, b);
}

/* The number KEY of line LINE (0-based) of a metrics.jsonl. */
static double metric(const char *path, int line, const char *key) {
    char *s = tu_slurp(path, NULL);
    cr_assert(s, "cannot read %s", path);
    char *p = s;
    for (int i = 0; i < line && p; i++)
        if ((p = strchr(p, '\n'))) p++;
    cr_assert(p && *p, "%s: no line %d", path, line);
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    char *q = strstr(p, k), *nl = strchr(p, '\n');
    cr_assert(q && (!nl || q < nl), "%s: line %d has no %s", path, line, key);
    double v = strtod(q + strlen(k), NULL);
    free(s);
    return v;
}

/* ENAS with the rotation pretext and sync_bn on, 2 processes against 1 at the same global
 * batch: step 0's controller step scores the same children (the same seeds) on the whole
 * batch (each process's correct counts and losses summed over the ranks), each image
 * rotated as one process rotates it (its place in the whole batch). The children's mean
 * accuracy on the architecture batch is a count over 16 images: equal; the losses differ
 * by rounding only (test above: 1.1e-7 relative), read from the log's 6 significant
 * digits (a last-digit step: up to 1e-5 relative); tolerance 2e-5, while a process's own
 * half of the batch, or its images rotated as a batch of their own, moves the loss by
 * O(1e-2). */
Test(dist, enas_pretext_rewards_are_the_whole_batchs) {
    const char *dir = tu_tmpdir();
    search_one_and_two(dir, write_space(dir, "s.dartsc", 1, 1, 64, 1), "--device cpu --strategy enas --pretext rotation");
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/one/metrics.jsonl", dir);
    snprintf(b, sizeof b, "%s/two/metrics.jsonl", dir);
    cr_expect_eq(count_lines(a), 2, "32 + 32 images in batches of 16: 2 steps");
    cr_expect_eq(count_lines(b), 2, "2 processes: the same 2 steps of the global batch");
    double va1 = metric(a, 0, "val_acc"), va2 = metric(b, 0, "val_acc");
    cr_expect_eq(va1, va2, "step 0's children's accuracy: one process %g, 2 processes %g", va1, va2);
    const char *keys[2] = {"val_loss", "train_loss"};
    for (int i = 0; i < 2; i++) {
        double x = metric(a, 0, keys[i]), y = metric(b, 0, keys[i]);
        cr_expect(fabs(x - y) <= 2e-5 * fabs(x), "step 0's %s: one process %.9g, 2 processes %.9g", keys[i], x, y);
    }
    snprintf(a, sizeof a, "%s/two/checkpoint.dtns", dir);
    char err[512];
    rt_tf_file *f = rt_tf_read(a, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_expect(rt_tf_find(f, "controller/weights"), "rank 0's checkpoint holds the controller");
    rt_tf_free(f);
}

/* Time-based checkpoints (--checkpoint-minutes) are decided by rank 0's clock for every
 * process: with the clocks skewed by a sleep, 2 processes still decide every checkpoint at
 * the same step (without the shared decision they parted within 3 to 6 steps, measured).
 * A process that saved where the other did not would wait in another collective. */
Test(dist, time_based_checkpoints_fall_on_the_same_step) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 1, 1, 64, 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s %s %s/x.dtns --due 0.02 > %s/due.log 2>&1", getenv("DARTSC_DIST_STEP"),
             space, dir, dir);
    cr_assert_eq(sh(cmd), 0, "the processes decided different checkpoints: %s/due.log", dir);
}

/* `dartsc run` as a job: search and retraining on both processes, then evaluation, export
 * and the report on rank 0 alone; the job ends (no process left waiting) with everything
 * written. */
Test(dist, run_end_to_end) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 1, 1, 64, 0);
    char cmd[2048], p[700];
    snprintf(cmd, sizeof cmd, MPI_ENV "timeout 300 mpirun --oversubscribe -n 2 %s run %s --out %s/r --device cpu > %s/r.log 2>&1",
             getenv("DARTSC_BIN"), space, dir, dir);
    cr_assert_eq(sh(cmd), 0, "run of 2 processes failed: see %s/r.log", dir);
    const char *files[] = {"genotype.json", "model.dtns", "model.onnx", "results.json", "report.html"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/r/%s", dir, files[i]);
        cr_expect_eq(access(p, F_OK), 0, "no %s", files[i]);
    }
}

/* The successors that keep state beyond DARTS's as data-parallel jobs: P-DARTS (its stages'
 * directories, stage files and stages.jsonl, written by rank 0, read back and broadcast on a
 * resume) and DARTS+ (its state and previous alpha in the checkpoint). A 2-process job
 * killed (SIGKILL) once a few steps are logged and resumed ends with the same files, bit for
 * bit, as one never interrupted. */
static void successor_case(const char *strategy, const char *settings, const char *watch, const char *const *files,
                           int n_files) {
    const char *dir = tu_tmpdir();
    char space[700], ref[700], run[700], metrics[760], cmd[8192];
    snprintf(space, sizeof space, "%s/succ.dartsc", dir);
    FILE *f = fopen(space, "w");
    cr_assert(f);
    fprintf(f,
            "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
            "cell normal { nodes 2; keep 2; ops darts }\n"
            "cell reduce : normal { reduction }\n"
            "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
            "settings s { batch 16; lr 0.025; momentum 0.9; weight_decay 3e-4; clip 5; seed 1 }\n"
            "search : s { epochs 2; order 1; subset 128; strategy %s; %s }\n",
            strategy, settings);
    fclose(f);
    const char *bin = getenv("DARTSC_BIN");
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1", bin,
             space, ref, ref);
    cr_assert_eq(sh(cmd), 0, "uninterrupted %s job failed: %s.log", strategy, ref);
    snprintf(cmd, sizeof cmd, EXEC_MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1",
             bin, space, run, run);
    pid_t job = start_job(cmd);
    snprintf(metrics, sizeof metrics, "%s/%s", run, watch);
    wait_lines(metrics, 3, job);
    kill(-job, SIGKILL);
    cr_assert_neq(wait_for(job, 30, NULL), -1);
    /* P-DARTS writes the run's genotype.json at its end; a DARTS loop logs 2 epochs of 4 steps */
    char done[760];
    snprintf(done, sizeof done, "%s/genotype.json", run);
    cr_assert(strcmp(strategy, "p_darts") ? count_lines(metrics) < 8 : access(done, F_OK) != 0,
              "the %s job had finished before it was killed", strategy);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --resume --checkpoint-every 1 > %s/resume.log 2>&1",
             bin, space, run, dir);
    cr_assert_eq(sh(cmd), 0, "%s resume failed: %s/resume.log", strategy, dir);
    for (int i = 0; i < n_files; i++) {
        char a[760], b[760];
        snprintf(a, sizeof a, "%s/%s", ref, files[i]);
        snprintf(b, sizeof b, "%s/%s", run, files[i]);
        same_file(a, b);
    }
}

Test(dist, p_darts_stages_resume_as_a_data_parallel_job, .timeout = 600) {
    /* the stages' stage.dtns hold their final alpha exactly; stages.jsonl's seconds differ by design */
    const char *files[] = {"stage1/stage.dtns", "stage2/stage.dtns", "stage2/checkpoint.dtns", "genotype.json", "alpha.jsonl"};
    successor_case("p_darts", "stages [3, 5]; stage_ops [8, 4]; skip_dropout [0, 0.3]", "stage1/metrics.jsonl", files, 5);
}

Test(dist, darts_plus_resumes_as_a_data_parallel_job, .timeout = 600) {
    const char *files[] = {"checkpoint.dtns", "genotype.json", "alpha.jsonl"};
    successor_case("darts_plus", "stop_stable 1", "metrics.jsonl", files, 3);
}

/* ProxylessNAS: the sampled paths are the same on every rank and the gates' gradients summed
 * before the estimator, so the job is one search (the latency term off here: measuring the
 * table costs half a minute; rank 0 measures it and broadcasts it, search/proxyless.c) */
Test(dist, proxyless_resumes_as_a_data_parallel_job, .timeout = 600) {
    const char *files[] = {"checkpoint.dtns", "genotype.json", "alpha.jsonl"};
    successor_case("proxyless", "latency_weight 0", "metrics.jsonl", files, 3);
}

/* What runs as one process says so under a launcher of 2 (status 2, a message). */
Test(dist, one_process_commands_refuse_a_job) {
    const char *dir = tu_tmpdir();
    const char *space = write_space(dir, "s.dartsc", 1, 1, 64, 0);
    char cmd[2048], log[700];
    snprintf(log, sizeof log, "%s/check.log", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s check %s > %s 2>&1", getenv("DARTSC_BIN"), space, log);
    cr_expect_neq(sh(cmd), 0);
    char *t = tu_slurp(log, NULL);
    cr_expect(t && strstr(t, "dartsc check: runs as one process"), "unexpected: %s", t);
    free(t);
}

int main(int argc, char *argv[]) { return dist_test_main(argc, argv); }
