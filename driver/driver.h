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

#include "ir/space.h"
/* Compiles a space file, rendering its diagnostics on stderr; 0, or -1 on errors. */
int dartsc_load_space(const char *path, ir_space *sp);
/* RUN_DIR/{normal,reduce}.svg from the .dot files when Graphviz's dot is installed. */
void dartsc_render_cells(const char *dir);
/* RUN_DIR/report.html; 0 on success. */
int dartsc_write_report(const char *dir, const ir_space *sp, const ir_genotype *gt, double test_acc, int argc, char **argv);

#endif
