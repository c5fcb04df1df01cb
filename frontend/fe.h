/* fe.h — the search-space DSL front end: lexer, parser and semantic analysis that turn a
 * .dartsc file into a plain-data ir_space (ir/space.h). docs/DSL.md is the language reference.
 *
 * Library code never exits on bad input: every problem becomes a diagnostic (severity,
 * file:line:col, message, optional hint) collected in an fe_diags list; the caller renders
 * them. Several errors are collected in one run (the parser recovers at statement level).
 *
 * Usage:
 *   ir_space sp;
 *   fe_diags d;
 *   fe_diags_init(&d);
 *   int rc = fe_compile_file("examples/darts_cifar10.dartsc", &sp, &d);
 *   fe_diags_render(&d, stderr, isatty(2));
 *   if (rc != 0) ... fe_diags_errors(&d) errors; sp is not usable ...
 *   fe_diags_free(&d);
 *
 * Ownership: fe_diags owns every string in it (file names and source lines are copied), so
 * diagnostics outlive the source buffer. A zero-initialised fe_diags is a valid empty list.
 */
#ifndef DARTSC_FE_H
#define DARTSC_FE_H

#include <stddef.h>
#include <stdio.h>

#include "ir/space.h"

typedef enum fe_severity { FE_SEV_NOTE, FE_SEV_WARNING, FE_SEV_ERROR } fe_severity;

typedef struct fe_diag {
    fe_severity severity;
    char *file;      /* as given to fe_compile_*; never NULL */
    int line, col;   /* 1-based; line 0: the diagnostic is about the whole file */
    char *msg;       /* "unknown setting 'epoch'" */
    char *hint;      /* "did you mean 'epochs'?", or NULL */
    /* Rendering: the source line as shown (tabs expanded, bad bytes as '?', long lines
     * windowed), and where the caret goes in it (0-based display column, width >= 1). */
    char *text;
    int caret, caret_len;
    const void *pos; /* internal: identifies the source position while compiling */
} fe_diag;

typedef struct fe_diags {
    fe_diag *items;
    int n, cap;
    int n_errors, n_warnings;
    int suppressed; /* warnings dropped after FE_MAX_WARNINGS */
} fe_diags;

/* Limits: after this many errors the front end stops with a "too many errors" error. */
#define FE_MAX_ERRORS 50
#define FE_MAX_WARNINGS 100
/* Largest input accepted (bytes). */
#define FE_MAX_INPUT (16u << 20)
/* Deepest nesting of lists, calls and op sets inside one value. */
#define FE_MAX_DEPTH 32

void fe_diags_init(fe_diags *d);
void fe_diags_free(fe_diags *d);
int fe_diags_errors(const fe_diags *d);
int fe_diags_warnings(const fe_diags *d);
/* Renders every diagnostic, gcc style:
 *   file:line:col: error: message
 *       3 |   epoch 50
 *         |   ^~~~~
 *         = hint: did you mean 'epochs'?
 * followed by a summary line ("2 errors, 1 warning") when there is anything to report.
 * color: ANSI colours when non-zero. */
void fe_diags_render(const fe_diags *d, FILE *f, int color);

/* Compile a DSL program into *out. Returns 0 on success (warnings allowed), -1 if there
 * were errors; diagnostics are appended to *d either way. On -1, *out holds defaults
 * partly overwritten and must not be used. name is the file name shown in diagnostics;
 * src need not be NUL-terminated and may contain any bytes. */
int fe_compile_string(const char *name, const char *src, size_t len, ir_space *out, fe_diags *d);
int fe_compile_file(const char *path, ir_space *out, fe_diags *d);

#endif
