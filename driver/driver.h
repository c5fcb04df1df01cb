/* driver.h — one function per dartsc subcommand; each returns the process exit code. */
#ifndef DARTSC_DRIVER_H
#define DARTSC_DRIVER_H

int dartsc_cmd_version(int argc, char **argv);
int dartsc_cmd_check(int argc, char **argv);
int dartsc_cmd_inspect(int argc, char **argv);
int dartsc_cmd_search(int argc, char **argv);
int dartsc_cmd_train(int argc, char **argv);
int dartsc_cmd_eval(int argc, char **argv);
int dartsc_cmd_export(int argc, char **argv);
int dartsc_cmd_run(int argc, char **argv);
int dartsc_cmd_bench(int argc, char **argv);

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/space.h"
#include "search/search.h"

/* Search flags shared by `search` and `run` (driver/search_flags.c). */
typedef struct dartsc_search_overrides {
    long epochs, batch, order, seed, subset; /* 0 (seed, subset: -1): keep the space's */
    const char *data;
    long partial_channels;  /* --partial-channels (0: the space's) */
    int edge_norm;          /* --edge-norm: 0 the space's, 1 on, 2 off */
    int strategy_given;     /* --strategy was given: it wins over the space's `strategy` */
    double latency_weight;  /* --latency-weight (< 0: the space's) */
    const char *latency_cache; /* --latency-cache DIR (NULL: the run directory) */
} dartsc_search_overrides;
extern const char *dartsc_search_flags_usage;
void dartsc_search_overrides_init(dartsc_search_overrides *ov);
/* 1: a (with its value v) was consumed; 0: not a search flag; -1: bad value (reported). */
int dartsc_search_flag(const char *cmd, const char *a, const char *v, sr_options *o, dartsc_search_overrides *ov);
void dartsc_search_overrides_apply(const dartsc_search_overrides *ov, ir_space *sp);
/* The space's `strategy` setting into o->strategy unless --strategy was given; -1 (reported)
 * for a name this build does not know. */
int dartsc_search_strategy_from_space(const dartsc_search_overrides *ov, const ir_space *sp, sr_options *o);
const char *dartsc_strategy_name(sr_strategy s);
/* The mnas objective's latency (driver/latency.c; sr_options.latency): the candidate's
 * generated C compiled here and timed at batch 1 on one thread, in milliseconds. */
/* The report's accuracy-latency plot with the Pareto front, for candidates.jsonl rows
 * with latency_ms (driver/report_pareto.c); nothing when none has one. */
struct json_t;
void dartsc_report_pareto(FILE *f, struct json_t *rows);
int dartsc_latency_ms(void *ctx, const ir_space *cs, const ir_genotype *gt, const char *weights, const char *dir,
                      double *ms, char *err, size_t errlen);
/* The timing behind it: model m (a batch-1 inference graph with its values) written as C
 * into dir (model.c, model.h, time.c), compiled with `cc DARTSC_LAT_CFLAGS` and timed: the
 * median thread CPU time of one inference in ms. */
#define DARTSC_LAT_CFLAGS "-O2"
struct cg_model;
int dartsc_time_c(const struct cg_model *m, const char *dir, double *ms, char *err, size_t errlen);
/* The first line of `cc --version` (its output file in dir), for keying cached timings. */
int dartsc_cc_identity(const char *dir, char *buf, size_t n, char *err, size_t errlen);
/* ProxylessNAS's latency table (driver/proxyless_latency.c; sr_options.op_latency): each
 * candidate op alone at a shape, its generated C timed as above, cached in
 * CACHE/latency-table.tsv keyed by op, shape, compiler and flags. dartsc_op_latency_use
 * points o at it with the cache directory cache_dir (NULL: o->out_dir, read when the
 * search asks). */
void dartsc_op_latency_use(sr_options *o, const char *cache_dir);
int dartsc_op_latency_ms(void *ctx, const ir_space *sp, const ir_cand *op, int C, int H, int W, int stride, double *ms,
                         char *err, size_t errlen);
/* ---- driver/util.c ----
 * SIGINT and SIGTERM set dartsc_stop_flag (a loop checkpoints and stops; `run` stops
 * between its stages, exit 130). main.c installs the handlers for the commands that honour
 * a stop (search, train, run) from the preinit array, before the shared libraries'
 * initialisers run, so no signal is lost to a late installation. */
extern volatile sig_atomic_t dartsc_stop_flag;
void dartsc_install_signals(void);
/* Numeric flags, strictly: the whole of v an integer in lo..hi, else a message naming the
 * command and the flag on stderr and -1 (v NULL: "needs a value"). */
int dartsc_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out);
int dartsc_parse_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out);
/* Files (runtime/files.h), with the message on stderr: an input must be a regular file; an
 * output may replace only a regular file; an output directory is created and must be a
 * directory. 0 or -1. */
int dartsc_check_input(const char *cmd, const char *path);
int dartsc_check_output(const char *cmd, const char *path);
int dartsc_check_output_dir(const char *cmd, const char *dir);
/* An output directory that a failed search or training leaves empty is removed again:
 * dartsc_out_dir_note before the command creates it remembers which part of the path did
 * not exist; dartsc_out_dir_cleanup after a failure removes those directories where they
 * are empty (never one that existed before, never one with files in it). */
typedef struct dartsc_out_dir {
    char dir[4096], created[4096]; /* created: the topmost missing directory, "" if none */
} dartsc_out_dir;
void dartsc_out_dir_note(dartsc_out_dir *d, const char *dir);
void dartsc_out_dir_cleanup(const dartsc_out_dir *d);
/* fopen(path, "w") after dartsc_check_output; NULL with a message. */
FILE *dartsc_fopen_out(const char *cmd, const char *path);
/* A warning on stderr when a loop's loss went above SR_LOSS_WARN (train/common.h) without
 * becoming non-finite (which stops the loop with an error). */
void dartsc_warn_loss_peak(const char *cmd, const char *what, double peak, int64_t step);
/* Compiles a space file, rendering its diagnostics on stderr; 0, or -1 on errors. */
int dartsc_load_space(const char *path, ir_space *sp);
/* RUN_DIR/{normal,reduce}.svg from the .dot files when Graphviz's dot is installed. */
void dartsc_render_cells(const char *dir);
/* RUN_DIR/report.html; 0 on success. */
int dartsc_write_report(const char *dir, const ir_space *sp, const ir_genotype *gt, double test_acc, int argc, char **argv);

#endif
