/* ctext.h — text helpers shared by the C emitters (cgen.c, cgen_q.c, rnn_export.c may use
 * them too): the model-name check and C comment and string literal writers.
 *
 * Usage:
 *   if (cg_c_name_check(name, err, sizeof err)) return -1;   // a C identifier prefix
 *   cg_put_comment_text(f, node->name, " * ");                // inside a comment
 *   cg_put_c_string(f, class_name);                           // "..." with escapes
 *   cg_write_c_pair(dir, name, &st.f, write_header, write_source, &st, err, sizeof err);
 */
#ifndef DARTSC_CG_CTEXT_H
#define DARTSC_CG_CTEXT_H

#include <stddef.h>
#include <stdio.h>

#include "codegen.h"

#define CG_MAX_NAME 40 /* longest model name: every symbol of the generated C starts with it */

/* 0 if name is a C identifier starting with a letter, at most CG_MAX_NAME long; else -1
 * with the reason in err. */
int cg_c_name_check(const char *name, char *err, size_t errlen);
/* t as text safe inside a C comment: no comment end, control characters as '?', each
 * newline followed by line_prefix. */
void cg_put_comment_text(FILE *f, const char *t, const char *line_prefix);
/* t as a C string literal (quotes, backslashes and non-ASCII bytes escaped). */
void cg_put_c_string(FILE *f, const char *t);

/* The interface both C emitters need: m->input an (N, C, H, W) float input node (with
 * m->in_c channels if set), m->output a node with the input's batch (at least 2-d), as
 * many class names as outputs. 0, or -1 with err naming the node. */
int cg_model_check_io(const cg_model *m, char *err, size_t errlen);
/* need[i] = 1 for every node the output depends on (need: zeroed, one per node). */
void cg_mark_needed(const ir_graph *g, int output, unsigned char *need);

/* Writes DIR/NAME.h by hdr(ctx) and DIR/NAME.c by src(ctx), each writing to the open file
 * it finds in *f (NULL again afterwards). A writer returns 0, or -1 with err filled; a
 * failed open or write fills err itself. On any failure both files are removed. */
int cg_write_c_pair(const char *dir, const char *name, FILE **f, int (*hdr)(void *), int (*src)(void *), void *ctx,
                    char *err, size_t errlen);

#endif
