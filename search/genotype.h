/* genotype.h — deriving a discrete architecture from alpha, and its files.
 *
 * Derivation (REFERENCE.md): for each intermediate node, rank its incoming edges by the
 * largest softmax weight among non-'none' ops (stable: the lower edge wins ties), keep
 * the top min(k, edges) and take on each the strongest non-'none' op. The genotype JSON
 * uses the DARTS layout ({"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [...]})
 * plus per-node edge counts and softmax(alpha) per edge.
 *
 * Usage:
 *   ir_genotype gt;
 *   sr_derive(&sp.normal, alpha_normal, &gt.normal);
 *   sr_derive(&sp.reduce, alpha_reduce, &gt.reduce);
 *   sr_genotype_write_json(&sp, &gt, an, ar, "run/genotype.json", err, sizeof err);
 */
#ifndef DARTSC_SR_GENOTYPE_H
#define DARTSC_SR_GENOTYPE_H

#include <stddef.h>
#include <stdio.h>

#include "ir/space.h"

/* alpha: (edges x n_ops) row-major logits of one cell type. */
void sr_derive(const ir_cell *cell, const float *alpha, ir_geno_cell *out);
/* The same rule over given op weights w (edges x n_ops, row-major); sr_derive is this over
 * softmax(alpha). PC-DARTS passes softmax(alpha) times the edge's softmax(beta); P-DARTS
 * derives from weights with some ops removed (a removed op's weight below every other's,
 * e.g. -1). */
void sr_derive_weights(const ir_cell *cell, const double *w, ir_geno_cell *out);

/* JSON text of a genotype (caller frees). alpha_* may be NULL (then no softmax table). */
char *sr_genotype_to_json(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                          const float *alpha_reduce);
/* Atomic write (temporary file, fsync, rename). */
int sr_genotype_write_json(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                           const float *alpha_reduce, const char *path, char *err, size_t errlen);
/* genotype.json (as sr_genotype_write_json) and the cell pictures normal.dot, reduce.dot in dir. */
int sr_genotype_write_files(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                            const float *alpha_reduce, const char *dir, char *err, size_t errlen);
/* Reads a genotype for space sp; op names must be ops of the cell, sources must precede
 * their node. Errors name the file and the entry. */
int sr_genotype_read_json(const ir_space *sp, const char *path, ir_genotype *gt, char *err, size_t errlen);
/* One line: "normal = sep_conv_3x3(0) sep_conv_3x3(1) | ... ; reduce = ..." */
void sr_genotype_print(const ir_space *sp, const ir_genotype *gt, FILE *f);
/* Graphviz picture of one derived cell (inputs c_{k-2}, c_{k-1}, nodes, output). */
void sr_genotype_dot(const ir_cell *cell, const ir_geno_cell *gc, const char *title, FILE *f);

#endif
