/* dist_testutil.h — what the data-parallel tests (tests/test_dist.c, test_dist_rnn.c)
 * share: the mpirun command line for CI's 2 cores, jobs started and killed as a whole,
 * the comparison of dist_step's step-0 files, and a main that skips (77) without MPI. */
#ifndef DARTSC_DIST_TESTUTIL_H
#define DARTSC_DIST_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/dist.h"
#include "runtime/tensorfile.h"
#include "testutil.h"

/* mpirun on 2 cores as root: oversubscribe, allow root (CI runs as root) */
#define MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
#define MPIRUN MPI_ENV "mpirun --oversubscribe -n "
#define EXEC_MPIRUN MPI_ENV "exec mpirun --oversubscribe -n " /* the shell becomes mpirun */

static inline int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static inline int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static inline const float *entry(const rt_tf_file *f, const char *name, int64_t *n) {
    const rt_tf_entry *e = rt_tf_find(f, name);
    cr_assert(e, "no %s", name);
    *n = e->numel;
    return e->data;
}

/* A job started in its own session, so that all of it can be killed. */
static inline pid_t start_job(const char *cmd) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static inline void wait_lines(const char *path, int n, pid_t job) {
    for (int i = 0; i < 3000 && count_lines(path) < n; i++) {
        int st;
        cr_assert_neq(waitpid(job, &st, WNOHANG), job, "the job ended before %s had %d lines", path, n);
        usleep(10000);
    }
    cr_assert_geq(count_lines(path), n, "%s never reached %d lines", path, n);
}

/* cmd fails with status 1 and says `says` */
static inline void refused(const char *cmd, const char *dir, const char *says) {
    char full[8400], path[700];
    snprintf(path, sizeof path, "%s/refused.log", dir);
    snprintf(full, sizeof full, "%s > %s 2>&1", cmd, path);
    cr_assert_eq(sh(full), 1, "not refused: %s", cmd);
    char *log = tu_slurp(path, NULL);
    cr_expect(log && strstr(log, says), "no '%s' in: %s", says, log);
    free(log);
}

/* A 2-process search of space with checkpoints every step, run through into DIR/ref, then
 * again into DIR/run, killed (every process, SIGKILL) once its log has 5 lines. Returns the
 * lines the killed run had logged. */
static inline int search_then_kill_9(const char *space, const char *dir) {
    const char *bin = getenv("DARTSC_BIN");
    char cmd[4096], ref[700], run[700], metrics[760];
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cmd, sizeof cmd, MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1", bin,
             space, ref, ref);
    cr_assert_eq(sh(cmd), 0, "uninterrupted run failed: %s.log", ref);
    snprintf(cmd, sizeof cmd, EXEC_MPIRUN "2 %s search %s --out %s --device cpu --checkpoint-every 1 > %s.log 2>&1",
             bin, space, run, run);
    pid_t job = start_job(cmd);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    wait_lines(metrics, 5, job);
    kill(-job, SIGKILL);
    int st;
    cr_assert_eq(waitpid(job, &st, 0), job);
    return count_lines(metrics);
}

/* dist_step's step-0 files of one process (DIR/one.dtns) and 2 (DIR/two.dtns): the losses
 * and the weight gradient agree within tol, the architecture gradient within arch_tol
 * (norm of the difference over the norm, which must be finite and non-zero: a zero
 * reference would pass anything). */
static inline void step0_match(const char *dir, int order, double tol, double arch_tol) {
    char p1[700], p2[700], err[512];
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
        const double t = i == 2 ? arch_tol : tol;
        cr_expect(e <= t, "order %d, %s: 2 processes vs 1: relative error %.3g > %g", order, names[i], e, t);
    }
    rt_tf_free(a);
    rt_tf_free(b);
}

/* The tests' main: 77 (skipped) where the build has no MPI or mpirun is missing. */
static inline int dist_test_main(int argc, char *argv[]) {
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

#endif
