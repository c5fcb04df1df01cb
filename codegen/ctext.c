/* ctext.c — see ctext.h. */
#include "ctext.h"

#include <string.h>

int cg_c_name_check(const char *name, char *err, size_t errlen) {
    if (!name || !*name) {
        snprintf(err, errlen, "the model needs a name (a C identifier)");
        return -1;
    }
    size_t L = strlen(name);
    const char *why = NULL;
    if (L > CG_MAX_NAME) {
        snprintf(err, errlen, "model name '%s' is longer than %d characters", name, CG_MAX_NAME);
        return -1;
    }
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        why = "must start with a letter (it prefixes every C symbol)";
    for (size_t i = 0; i < L && !why; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            why = "is not a C identifier (letters, digits, '_')";
    }
    if (why) snprintf(err, errlen, "model name '%s' %s", name, why);
    return why ? -1 : 0;
}

void cg_put_comment_text(FILE *f, const char *t, const char *line_prefix) {
    for (; *t; t++) {
        if (t[0] == '*' && t[1] == '/') {
            fputs("* /", f);
            t++;
            continue;
        }
        if (*t == '\n') {
            fprintf(f, "\n%s", line_prefix);
            continue;
        }
        fputc((unsigned char)*t < 32 || (unsigned char)*t == 127 ? '?' : *t, f);
    }
}

void cg_put_c_string(FILE *f, const char *t) {
    fputc('"', f);
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 32 || c >= 127) fprintf(f, "\\%03o", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int write_one(const char *path, FILE **f, int (*fn)(void *), void *ctx, char *err, size_t errlen) {
    *f = fopen(path, "w");
    if (!*f) {
        snprintf(err, errlen, "cannot create '%s'", path);
        return -1;
    }
    int rc = fn(ctx);
    if (ferror(*f) && !rc) rc = -1, snprintf(err, errlen, "write error on '%s'", path);
    if (fclose(*f) && !rc) rc = -1, snprintf(err, errlen, "write error on '%s'", path);
    *f = NULL;
    return rc;
}

int cg_write_c_pair(const char *dir, const char *name, FILE **f, int (*hdr)(void *), int (*src)(void *), void *ctx,
                    char *err, size_t errlen) {
    char hpath[4096], cpath[4096];
    snprintf(hpath, sizeof hpath, "%s/%s.h", dir, name);
    snprintf(cpath, sizeof cpath, "%s/%s.c", dir, name);
    if (write_one(hpath, f, hdr, ctx, err, errlen) || write_one(cpath, f, src, ctx, err, errlen)) {
        remove(hpath);
        remove(cpath);
        return -1;
    }
    return 0;
}

int cg_model_check_io(const cg_model *m, char *err, size_t errlen) {
    int n = ir_graph_num_nodes(m->g);
    if (m->input < 0 || m->input >= n || ir_graph_node(m->g, m->input)->op != IR_OP_INPUT) {
        snprintf(err, errlen, "model input %d is not an input node", m->input);
        return -1;
    }
    const ir_node *xin = ir_graph_node(m->g, m->input), *xo;
    if (xin->ndim != 4 || xin->dtype != IR_DTYPE_F32) {
        snprintf(err, errlen, "input '%s' must be a float (N, C, H, W) tensor", xin->name);
        return -1;
    }
    if (m->in_c > 0 && m->in_c != xin->shape[1]) {
        snprintf(err, errlen, "model says %d input channels, input '%s' has %lld", m->in_c, xin->name,
                 (long long)xin->shape[1]);
        return -1;
    }
    if (m->output < 0 || m->output >= n) {
        snprintf(err, errlen, "model output %d is not a node", m->output);
        return -1;
    }
    xo = ir_graph_node(m->g, m->output);
    if (xo->ndim < 2 || xo->dtype != IR_DTYPE_F32 || xo->shape[0] != xin->shape[0]) {
        snprintf(err, errlen, "output '%s' must be a float (N, classes) tensor with the input's batch", xo->name);
        return -1;
    }
    if (m->class_names && m->n_classes != xo->shape[1]) {
        snprintf(err, errlen, "%d class names for %lld outputs of '%s'", m->n_classes, (long long)xo->shape[1], xo->name);
        return -1;
    }
    return 0;
}

void cg_mark_needed(const ir_graph *g, int output, unsigned char *need) {
    need[output] = 1;
    for (int i = ir_graph_num_nodes(g) - 1; i >= 0; i--) {
        if (!need[i]) continue;
        const ir_node *nd = ir_graph_node(g, i);
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) need[nd->inputs[j]] = 1;
    }
}
