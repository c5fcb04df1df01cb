/* genotype.c — derivation, genotype JSON (jansson) and DOT pictures; see genotype.h. */
#include "genotype.h"
#include "search.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/files.h"

static void softmax_row(const float *a, int n, double *out) {
    double m = a[0], s = 0;
    for (int i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
    for (int i = 0; i < n; i++) s += out[i] = exp((double)a[i] - m);
    for (int i = 0; i < n; i++) out[i] /= s;
}

void sr_derive(const ir_cell *cell, const float *alpha, ir_geno_cell *out) {
    int E = ir_cell_num_edges(cell), O = cell->n_ops;
    double *w = malloc(sizeof *w * (size_t)(E > 0 ? E : 1) * (size_t)O);
    if (!w) {
        memset(out, 0, sizeof *out);
        return;
    }
    for (int r = 0; r < E; r++) softmax_row(alpha + (size_t)r * O, O, w + (size_t)r * O);
    sr_derive_weights(cell, w, out);
    free(w);
}

void sr_derive_weights(const ir_cell *cell, const double *w, ir_geno_cell *out) {
    memset(out, 0, sizeof *out);
    out->n_nodes = cell->n_nodes;
    int none = ir_cell_none_index(cell), O = cell->n_ops;
    int row = 0;
    for (int i = 0; i < cell->n_nodes; i++) {
        int srcs[2 + IR_MAX_NODES], best_op[2 + IR_MAX_NODES], ne = 0;
        double strength[2 + IR_MAX_NODES];
        for (int j = 0; j < cell->n_inputs + i; j++) {
            if (!((cell->edges[i] >> j) & 1)) continue;
            const double *sm = w + (size_t)row * O;
            int bo = -1;
            for (int o = 0; o < O; o++)
                if (o != none && (bo < 0 || sm[o] > sm[bo])) bo = o;
            srcs[ne] = j;
            best_op[ne] = bo;
            strength[ne] = sm[bo];
            ne++;
            row++;
        }
        /* stable selection of the strongest edges */
        int keep = cell->k_keep < ne ? cell->k_keep : ne;
        if (keep > IR_MAX_KEEP) keep = IR_MAX_KEEP;
        int used[2 + IR_MAX_NODES] = {0};
        for (int k = 0; k < keep; k++) {
            int b = -1;
            for (int e = 0; e < ne; e++)
                if (!used[e] && (b < 0 || strength[e] > strength[b])) b = e;
            used[b] = 1;
            out->e[i][k].op = best_op[b];
            out->e[i][k].src = srcs[b];
        }
        out->n_edges[i] = keep;
    }
}

static json_t *cell_json(const ir_cell *c, const ir_geno_cell *gc) {
    json_t *a = json_array();
    for (int i = 0; i < gc->n_nodes; i++)
        for (int k = 0; k < gc->n_edges[i]; k++)
            json_array_append_new(a, json_pack("[s,i]", c->ops[gc->e[i][k].op].name, gc->e[i][k].src));
    return a;
}

static json_t *softmax_json(const ir_cell *c, const float *alpha) {
    json_t *rows = json_array();
    int E = ir_cell_num_edges(c);
    for (int r = 0; r < E; r++) {
        double sm[IR_MAX_CANDS];
        softmax_row(alpha + (size_t)r * c->n_ops, c->n_ops, sm);
        json_t *row = json_array();
        for (int o = 0; o < c->n_ops; o++) json_array_append_new(row, json_real(sm[o]));
        json_array_append_new(rows, row);
    }
    return rows;
}

char *sr_genotype_to_json(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                          const float *alpha_reduce) {
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gcs[2] = {&gt->normal, &gt->reduce};
    const float *alphas[2] = {alpha_normal, alpha_reduce};
    /* a recurrent space has one cell, written as the reference's Genotype(recurrent=..., concat=...) */
    int rnn = sp->kind == IR_SPACE_RNN;
    const char *keys[2] = {rnn ? "recurrent" : "normal", "reduce"};
    json_t *root = json_object();
    json_object_set_new(root, "space", json_string(sp->name));
    for (int t = 0; t < 2 - rnn; t++) {
        char key[64];
        json_object_set_new(root, keys[t], cell_json(cells[t], gcs[t]));
        json_t *concat = json_array(), *counts = json_array();
        for (int i = 0; i < gcs[t]->n_nodes; i++) {
            json_array_append_new(concat, json_integer(cells[t]->n_inputs + i));
            json_array_append_new(counts, json_integer(gcs[t]->n_edges[i]));
        }
        snprintf(key, sizeof key, "%s_concat", keys[t]);
        json_object_set_new(root, key, concat);
        snprintf(key, sizeof key, "%s_edges_per_node", keys[t]);
        json_object_set_new(root, key, counts);
        if (alphas[t]) {
            snprintf(key, sizeof key, "%s_softmax", keys[t]);
            json_object_set_new(root, key, softmax_json(cells[t], alphas[t]));
        }
    }
    json_t *ops = json_array();
    for (int o = 0; o < sp->normal.n_ops; o++) json_array_append_new(ops, json_string(sp->normal.ops[o].name));
    json_object_set_new(root, "ops", ops);
    /* one compact line when embedded (no alpha table), indented in genotype.json */
    size_t fmt = alpha_normal ? JSON_INDENT(1) : JSON_COMPACT;
    char *s = json_dumps(root, fmt | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    return s;
}

int sr_genotype_write_json(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                           const float *alpha_reduce, const char *path, char *err, size_t errlen) {
    char *s = sr_genotype_to_json(sp, gt, alpha_normal, alpha_reduce);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = strlen(s);
    s = realloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    int rc = sr_write_file_atomic(path, s, n + 1, err, errlen);
    free(s);
    return rc;
}

int sr_write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (rt_file_check_output(path, err, errlen) || rt_file_check_output(tmp, err, errlen)) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            snprintf(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int find_op(const ir_cell *c, const char *name) {
    for (int o = 0; o < c->n_ops; o++)
        if (!strcmp(c->ops[o].name, name)) return o;
    return -1;
}

static int read_cell(const char *path, json_t *root, const char *key, const ir_cell *c, ir_geno_cell *gc, char *err,
                     size_t errlen) {
    json_t *arr = json_object_get(root, key);
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: missing array \"%s\"", path, key);
        return -1;
    }
    char ck[64];
    snprintf(ck, sizeof ck, "%s_edges_per_node", key);
    json_t *counts = json_object_get(root, ck);
    memset(gc, 0, sizeof *gc);
    gc->n_nodes = c->n_nodes;
    size_t idx = 0, n = json_array_size(arr);
    for (int i = 0; i < c->n_nodes; i++) {
        int k = c->k_keep < c->n_inputs + i ? c->k_keep : c->n_inputs + i;
        if (json_is_array(counts)) {
            json_t *v = json_array_get(counts, (size_t)i);
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > IR_MAX_KEEP) {
                snprintf(err, errlen, "%s: \"%s\"[%d] must be an edge count between 1 and %d", path, ck, i, IR_MAX_KEEP);
                return -1;
            }
            k = (int)json_integer_value(v);
        }
        gc->n_edges[i] = k;
        for (int e = 0; e < k; e++, idx++) {
            json_t *pair = json_array_get(arr, idx);
            const char *op = NULL;
            json_int_t src = -1;
            if (!pair || json_unpack(pair, "[sI]", &op, &src) != 0) {
                snprintf(err, errlen, "%s: \"%s\"[%zu] must be [\"op\", source] (node %d needs %d edges)", path, key, idx,
                         c->n_inputs + i, k);
                return -1;
            }
            int o = find_op(c, op);
            if (o < 0 || c->ops[o].kind == IR_CAND_NONE) {
                snprintf(err, errlen, "%s: \"%s\"[%zu]: '%s' is not a candidate op of this cell", path, key, idx, op);
                return -1;
            }
            if (src < 0 || src >= c->n_inputs + i) {
                snprintf(err, errlen, "%s: \"%s\"[%zu]: source %lld does not precede node %d", path, key, idx,
                         (long long)src, c->n_inputs + i);
                return -1;
            }
            gc->e[i][e].op = o;
            gc->e[i][e].src = (int)src;
        }
    }
    if (idx != n) {
        snprintf(err, errlen, "%s: \"%s\" has %zu edges, the cell's nodes take %zu", path, key, n, idx);
        return -1;
    }
    return 0;
}

int sr_genotype_read_json(const ir_space *sp, const char *path, ir_genotype *gt, char *err, size_t errlen) {
    if (rt_file_check_input(path, err, errlen)) return -1; /* missing, a FIFO, a directory, ... */
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (je.line >= 1) snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        else snprintf(err, errlen, "%s: %s", path, je.text); /* no place in the file to name */
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) snprintf(err, errlen, "%s: a genotype is a JSON object", path);
    else if (sp->kind == IR_SPACE_RNN) {
        if (read_cell(path, root, "recurrent", &sp->normal, &gt->normal, err, errlen) == 0) {
            gt->reduce = gt->normal;
            rc = 0;
        }
    } else if (read_cell(path, root, "normal", &sp->normal, &gt->normal, err, errlen) == 0 &&
             read_cell(path, root, "reduce", &sp->reduce, &gt->reduce, err, errlen) == 0)
        rc = 0;
    json_decref(root);
    return rc;
}

void sr_genotype_print(const ir_space *sp, const ir_genotype *gt, FILE *f) {
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gcs[2] = {&gt->normal, &gt->reduce};
    int rnn = sp->kind == IR_SPACE_RNN;
    for (int t = 0; t < 2 - rnn; t++) {
        fprintf(f, "%s%s =", t ? "; " : "", t ? "reduce" : rnn ? "recurrent" : "normal");
        for (int i = 0; i < gcs[t]->n_nodes; i++) {
            if (i) fprintf(f, " |");
            for (int k = 0; k < gcs[t]->n_edges[i]; k++)
                fprintf(f, " %s(%d)", cells[t]->ops[gcs[t]->e[i][k].op].name, gcs[t]->e[i][k].src);
        }
    }
    fputc('\n', f);
}

void sr_genotype_dot(const ir_cell *cell, const ir_geno_cell *gc, const char *title, FILE *f) {
    fprintf(f, "digraph \"%s\" {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", style=filled, shape=box];\n", title);
    fprintf(f, "  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (int j = 0; j < cell->n_inputs; j++)
        fprintf(f, "  s%d [label=\"c_{k-%d}\", fillcolor=darkseagreen2];\n", j, cell->n_inputs - j);
    for (int i = 0; i < gc->n_nodes; i++) fprintf(f, "  s%d [label=\"%d\", fillcolor=lightblue];\n", cell->n_inputs + i, i);
    fprintf(f, "  out [label=\"c_{k}\", fillcolor=palegoldenrod];\n");
    for (int i = 0; i < gc->n_nodes; i++) {
        for (int k = 0; k < gc->n_edges[i]; k++)
            fprintf(f, "  s%d -> s%d [label=\"%s\", fillcolor=gray];\n", gc->e[i][k].src, cell->n_inputs + i,
                    cell->ops[gc->e[i][k].op].name);
        fprintf(f, "  s%d -> out [fillcolor=gray];\n", cell->n_inputs + i);
    }
    fprintf(f, "}\n");
}

int sr_genotype_write_files(const ir_space *sp, const ir_genotype *gt, const float *alpha_normal,
                            const float *alpha_reduce, const char *dir, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/genotype.json", dir);
    if (sr_genotype_write_json(sp, gt, alpha_normal, alpha_reduce, path, err, errlen)) return -1;
    const char *names[2] = {"normal", "reduce"};
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gcs[2] = {&gt->normal, &gt->reduce};
    for (int t = 0; t < 2; t++) {
        snprintf(path, sizeof path, "%s/%s.dot", dir, names[t]);
        FILE *f = fopen(path, "w");
        if (!f) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        sr_genotype_dot(cells[t], gcs[t], names[t], f);
        fclose(f);
    }
    return 0;
}
