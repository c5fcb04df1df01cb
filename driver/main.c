/* main.c — the dartsc command-line driver: parses flags, calls the library, prints
 * diagnostics and exits. Only this file exits; the library returns errors. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity */
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "runtime/backend.h"
#include "runtime/dist.h"
#include "train/common.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dartsc <command> [options]\n"
            "\n"
            "commands:\n"
            "  check SPACE [--dump-ir] [--dot FILE]   validate a search space and print a summary\n"
            "  inspect FILE.onnx                      validate an ONNX model and print a summary\n"
            "  search SPACE [--out DIR] ...           run the DARTS search and derive a genotype\n"
            "  train SPACE --genotype FILE ...        retrain a derived architecture from scratch\n"
            "  eval RUN_DIR                           test accuracy of a trained run directory\n"
            "  export RUN_DIR --onnx FILE --c DIR     export the trained network to ONNX and C\n"
            "  run SPACE [--out DIR]                  search, retrain, evaluate, export and report\n"
            "  bench SPACE [--batch N] [--order 1|2]  time search steps of the space's supernet\n"
            "  version                                print the version and build configuration\n"
            "\n"
            "Run 'dartsc <command> --help' for a command's options.\n");
}

static int stoppable(int argc, char **argv) {
    return argc >= 2 && (!strcmp(argv[1], "search") || !strcmp(argv[1], "train") || !strcmp(argv[1], "run"));
}

/* A stop request of search, train or run is honoured from the start: the handlers go in
 * from the executable's preinit array, which the dynamic loader runs before the shared
 * libraries' initialisers (cuDNN's, cuBLAS's and OpenBLAS's take 0.1-0.4 s, a window in
 * which SIGINT/SIGTERM used to kill the process without a word). Only sigaction here. */
static void early_signals(int argc, char **argv, char **envp) {
    (void)envp;
    if (stoppable(argc, argv)) dartsc_install_signals();
}
__attribute__((used, section(".preinit_array"))) static void (*const dartsc_preinit)(int, char **, char **) =
    early_signals;

static int dispatch(int argc, char **argv);

/* Under mpirun or srun (docs/SCALING.md) every process runs the same command on its part of
 * each batch; rank 0 alone writes the run directory and prints (the others' standard output
 * goes nowhere; their errors still reach stderr). A command that fails on some process
 * stops the whole job. */
int main(int argc, char **argv) {
    if (stoppable(argc, argv)) {
        dartsc_install_signals(); /* again: harmless where the preinit array already did it */
        sr_data_keep(1); /* each data split decoded once for every stage and candidate (freed at exit) */
    }
    char err[512];
    if (rt_dist_init(&argc, &argv, err, sizeof err)) {
        fprintf(stderr, "dartsc: %s\n", err);
        return 1;
    }
    int n = rt_dist_size();
    if (n > 1 && argc >= 2 && strcmp(argv[1], "search") && strcmp(argv[1], "train") && strcmp(argv[1], "run")) {
        if (rt_dist_rank() == 0)
            fprintf(stderr, "dartsc %s: runs as one process; start it without mpirun (search, train and run "
                            "run data-parallel; docs/SCALING.md)\n", argv[1]);
        rt_dist_finalize();
        return 2;
    }
    if (n > 1 && rt_dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) return 1;
    /* processes the launcher did not bind (mpirun --bind-to none) share the host's CPUs: pinning
       each one's threads to the first CPUs of that set would put them all on the same cores */
    cpu_set_t set;
    if (n > 1 && sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= sysconf(_SC_NPROCESSORS_ONLN))
        setenv("DARTSC_NO_PIN", "1", 0);
    int rc = dispatch(argc, argv);
    if (n > 1 && rc != 0 && rc != 130) rt_dist_abort(rc);
    rt_dist_finalize();
    return rc;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return dartsc_cmd_version(argc - 1, argv + 1);
    /* the commands that run the CPU kernels keep each OpenMP thread on one CPU */
    if (!strcmp(cmd, "search") || !strcmp(cmd, "train") || !strcmp(cmd, "eval") || !strcmp(cmd, "run") ||
        !strcmp(cmd, "bench"))
        (void)rt_cpu_pin_threads();
    if (!strcmp(cmd, "check")) return dartsc_cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return dartsc_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return dartsc_cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return dartsc_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return dartsc_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return dartsc_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return dartsc_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return dartsc_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "dartsc: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
