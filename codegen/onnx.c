/* onnx.c — ONNX export of an inference graph and the validating reader behind
 * `dartsc inspect` (see onnx.h for the op mapping).
 *
 * Export builds the protobuf-c message tree in an arena owned by one exporter state,
 * packs it into one buffer and writes that atomically. Every value name is unique: IR
 * names are kept where they are unique, and "input"/"logits" are reserved for the graph's
 * interface. The reader never trusts the file: protobuf-c rejects malformed wire data,
 * and everything the summary relies on (sizes, dims, names) is checked before printing. */
#include "onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fold.h"
#include "proto/onnx_pb.h"

#ifndef DARTSC_VERSION
#define DARTSC_VERSION "unknown"
#endif

/* ---- a string map (names -> int), shared by exporter and reader ------------------------ */

typedef struct smap {
    const char **keys;
    int *vals;
    size_t cap, n;
} smap;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void smap_free(smap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Slot of key: its own, or the empty one where it would go. */
static size_t smap_slot(const smap *m, const char *key) {
    size_t i = (size_t)str_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

/* Pointer to key's value, or NULL when absent. */
static int *smap_get(const smap *m, const char *key) {
    if (!m->cap) return NULL;
    size_t i = smap_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

/* Inserts key (not copied: it must outlive the map) with value v unless present; returns
 * a pointer to its value, NULL on allocation failure. */
static int *smap_put(smap *m, const char *key, int v) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        smap t = {calloc(cap, sizeof *t.keys), calloc(cap, sizeof *t.vals), cap, 0};
        if (!t.keys || !t.vals) {
            smap_free(&t);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = smap_slot(&t, m->keys[i]);
                t.keys[j] = m->keys[i];
                t.vals[j] = m->vals[i];
                t.n++;
            }
        smap_free(m);
        *m = t;
    }
    size_t i = smap_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->vals[i] = v;
        m->n++;
    }
    return &m->vals[i];
}

static int host_is_le(void) {
    uint16_t v = 1;
    unsigned char c;
    memcpy(&c, &v, 1);
    return c == 1;
}

/* ================================ export ================================================ */

typedef struct ox_blk {
    struct ox_blk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} ox_blk;

typedef struct ox {
    const cg_model *m;
    const ir_graph *g;
    cg_fold fold;
    ox_blk *blk;
    const char **val;     /* per IR node: its ONNX value name once emitted */
    unsigned char *live;  /* per IR node: needed for the output */
    int cur;              /* IR node being exported (-1: none): its label renames its ONNX nodes */
    smap names, node_names;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    /* shared constants, made on first use */
    const char *c_zero;                 /* scalar 0 */
    const char *c_hw_start[2];          /* Slice starts {0,0} (ZERO) and {1,1} (SHIFT) */
    const char *c_hw_end, *c_hw_axes;   /* Slice ends {max,max}, axes {2,3} */
    const char *c_hw_steps[65];         /* Slice steps {s,s} of ZERO by stride */
    int failed;
    char *err;
    size_t errlen;
} ox;

static int ox_fail(ox *x, const char *fmt, ...) {
    if (!x->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, x->errlen, fmt, ap);
        va_end(ap);
    }
    x->failed = 1;
    return -1;
}

/* Zeroed arena memory; NULL (and x->failed) on allocation failure. */
static void *ox_alloc(ox *x, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (!bytes) bytes = 16;
    if (!x->blk || x->blk->used + bytes > x->blk->cap) {
        size_t cap = bytes > 65536 ? bytes : 65536;
        ox_blk *b = malloc(sizeof *b + cap);
        if (!b) {
            ox_fail(x, "out of memory");
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        if (bytes > 65536 && x->blk) { /* big block: keep the current one for small things */
            b->next = x->blk->next;
            x->blk->next = b;
            b->used = bytes;
            memset(b->data, 0, bytes);
            return b->data;
        }
        b->next = x->blk;
        x->blk = b;
    }
    void *p = x->blk->data + x->blk->used;
    x->blk->used += bytes;
    memset(p, 0, bytes);
    return p;
}

static char *ox_strdup(ox *x, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ox_alloc(x, n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *ox_printf(ox *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = ox_alloc(x, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* A unique name in set from base: base, else base_1, base_2, ... */
static const char *ox_unique(ox *x, smap *set, const char *base) {
    if (!base || !*base) base = "v";
    const char *s = ox_strdup(x, base);
    for (int k = 1; s && smap_get(set, s); k++) s = ox_printf(x, "%s_%d", base, k);
    if (!s) return NULL;
    if (!smap_put(set, s, 1)) {
        ox_fail(x, "out of memory");
        return NULL;
    }
    return s;
}

static int ox_push(ox *x, void ***arr, size_t *n, size_t *cap, void *item) {
    if (!item) return -1;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a) return ox_fail(x, "out of memory");
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = item;
    return 0;
}

/* ---- initializers ---------------------------------------------------------------------- */

static Onnx__TensorProto *ox_tensor(ox *x, const char *base, int dtype, int ndim, const int64_t *dims, size_t bytes) {
    Onnx__TensorProto *t = ox_alloc(x, sizeof *t);
    int64_t *d = ox_alloc(x, sizeof *d * (size_t)(ndim ? ndim : 1));
    uint8_t *raw = ox_alloc(x, bytes);
    const char *name = ox_unique(x, &x->names, base);
    if (!t || !d || !raw || !name) return NULL;
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    t->dims = d;
    for (int i = 0; i < ndim; i++) d[i] = dims[i];
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = raw;
    if (ox_push(x, (void ***)&x->inits, &x->n_inits, &x->cap_inits, t)) return NULL;
    return t;
}

/* raw_data is little-endian whatever the host. */
static void put_le32(uint8_t *dst, const void *src, size_t n4) {
    if (host_is_le()) {
        memcpy(dst, src, n4 * 4);
        return;
    }
    const uint8_t *s = src;
    for (size_t i = 0; i < n4; i++)
        for (int b = 0; b < 4; b++) dst[4 * i + (size_t)b] = s[4 * i + 3 - (size_t)b];
}

static const char *ox_init_f32(ox *x, const char *base, int ndim, const int64_t *dims, const float *data) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    Onnx__TensorProto *t = ox_tensor(x, base, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, (size_t)n * 4);
    if (!t) return NULL;
    put_le32(t->raw_data.data, data, (size_t)n);
    return t->name;
}

static const char *ox_scalar_f32(ox *x, const char *base, float v) { return ox_init_f32(x, base, 0, NULL, &v); }

static const char *ox_init_i64(ox *x, const char *base, int n, const int64_t *v) {
    int64_t dims[1] = {n};
    Onnx__TensorProto *t = ox_tensor(x, base, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, dims, (size_t)n * 8);
    if (!t) return NULL;
    for (int i = 0; i < n; i++) {
        uint64_t u = (uint64_t)v[i];
        for (int b = 0; b < 8; b++) t->raw_data.data[8 * i + b] = (uint8_t)(u >> (8 * b));
    }
    return t->name;
}

/* The value of a PARAM node as an initializer named for it (made once). */
static const char *ox_param(ox *x, int id) {
    if (x->val[id]) return x->val[id];
    const ir_node *n = ir_graph_node(x->g, id);
    const float *v = x->m->values ? x->m->values[id] : NULL;
    if (!v) {
        ox_fail(x, "parameter '%s' has no value", n->name);
        return NULL;
    }
    if (n->dtype != IR_DTYPE_F32) {
        ox_fail(x, "parameter '%s' is not float32", n->name);
        return NULL;
    }
    x->val[id] = ox_init_f32(x, n->name, n->ndim, n->shape, v);
    return x->val[id];
}

/* Value name of an op's input. */
static const char *ox_in(ox *x, int id) {
    const ir_node *n = ir_graph_node(x->g, id);
    if (n->op == IR_OP_PARAM) return ox_param(x, id);
    if (!x->val[id]) ox_fail(x, "internal: node '%s' used before it was exported", n->name);
    return x->val[id];
}

/* ---- nodes and attributes --------------------------------------------------------------- */

static Onnx__AttributeProto *ox_attr(ox *x, const char *name, Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = ox_alloc(x, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_i(ox *x, const char *name, int64_t v) {
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_f(ox *x, const char *name, float v) {
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_is(ox *x, const char *name, int n, const int64_t *v) {
    Onnx__AttributeProto *a = ox_attr(x, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = ox_alloc(x, sizeof *d * (size_t)n);
    if (!a || !d) return NULL;
    memcpy(d, v, sizeof *d * (size_t)n);
    a->n_ints = (size_t)n;
    a->ints = d;
    return a;
}

/* Appends node op_type(in...) -> out with the given attributes (NULL-terminated list).
 * name: the node's name (made unique). Returns 0, or -1 with x->failed. */
static int ox_node(ox *x, const char *op_type, const char *name, int n_in, const char *const *in, const char *out,
                   ...) {
    if (x->failed) return -1;
    Onnx__NodeProto *nd = ox_alloc(x, sizeof *nd);
    char **ins = ox_alloc(x, sizeof *ins * (size_t)(n_in ? n_in : 1));
    char **outs = ox_alloc(x, sizeof *outs);
    Onnx__AttributeProto **attrs = ox_alloc(x, sizeof *attrs * 8);
    /* the readable label of the IR node replaces its name as the prefix of node names */
    const char *lab = x->cur >= 0 && x->m->labels ? x->m->labels[x->cur] : NULL;
    const char *irn = x->cur >= 0 ? ir_graph_node(x->g, x->cur)->name : NULL;
    size_t irl = irn ? strlen(irn) : 0;
    if (lab && irl && !strncmp(name, irn, irl) && (name[irl] == 0 || name[irl] == '/')) {
        char *ren = ox_printf(x, "%s%s", lab, name + irl);
        if (ren) name = ren;
    }
    const char *nm = ox_unique(x, &x->node_names, name);
    if (!nd || !ins || !outs || !attrs || !nm) return -1;
    onnx__node_proto__init(nd);
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) return ox_fail(x, "internal: node '%s' input %d missing", name, i);
        ins[i] = (char *)in[i];
    }
    if (!out) return -1;
    outs[0] = (char *)out;
    nd->n_input = (size_t)n_in;
    nd->input = ins;
    nd->n_output = 1;
    nd->output = outs;
    nd->name = (char *)nm;
    nd->op_type = (char *)op_type;
    va_list ap;
    va_start(ap, out);
    Onnx__AttributeProto *a;
    size_t na = 0;
    while ((a = va_arg(ap, Onnx__AttributeProto *)) != NULL && na < 8) attrs[na++] = a;
    va_end(ap);
    nd->n_attribute = na;
    nd->attribute = attrs;
    return x->failed ? -1 : ox_push(x, (void ***)&x->nodes, &x->n_nodes, &x->cap_nodes, nd);
}

/* attribute lists end with this; a failed attribute allocation makes the node fail */
#define END ((Onnx__AttributeProto *)NULL)

/* ---- the op mapping ---------------------------------------------------------------------- */

static const char *ox_tmp(ox *x, const ir_node *n, const char *suffix) {
    char *b = ox_printf(x, "%s/%s", n->name, suffix);
    return b ? ox_unique(x, &x->names, b) : NULL;
}

static int ox_conv(ox *x, int id, const char *out) {
    const ir_node *n = ir_graph_node(x->g, id);
    const ir_node *w = ir_graph_node(x->g, n->inputs[1]);
    const int64_t *a = n->iattr;
    const char *in[3] = {ox_in(x, n->inputs[0]), NULL, NULL};
    int n_in = 2;
    int bn_id = x->fold.conv_bn[id];
    if (bn_id >= 0) {
        const ir_node *bn = ir_graph_node(x->g, bn_id);
        const float *const *v = x->m->values;
        int K = (int)w->shape[0];
        int64_t per_k = ir_node_numel(w) / K;
        const float *wv = v[n->inputs[1]], *mean = v[bn->inputs[3]], *var = v[bn->inputs[4]];
        const float *gamma = bn->inputs[1] >= 0 ? v[bn->inputs[1]] : NULL;
        const float *beta = bn->inputs[2] >= 0 ? v[bn->inputs[2]] : NULL;
        if (!wv || !mean || !var || (bn->inputs[1] >= 0 && (!gamma || !beta)))
            return ox_fail(x, "convolution '%s' or batch norm '%s' lacks parameter values", n->name, bn->name);
        float *wf = malloc((size_t)ir_node_numel(w) * sizeof *wf), *bf = malloc((size_t)K * sizeof *bf);
        if (!wf || !bf) {
            free(wf);
            free(bf);
            return ox_fail(x, "out of memory");
        }
        cg_fold_conv_bn(wf, bf, wv, NULL, K, per_k, gamma, beta, mean, var, bn->fattr[IR_F_BN_EPS]);
        char *wn = ox_printf(x, "%s.weight_bn_folded", n->name), *bname = ox_printf(x, "%s.bias_bn_folded", n->name);
        in[1] = wn ? ox_init_f32(x, wn, w->ndim, w->shape, wf) : NULL;
        in[2] = bname ? ox_init_f32(x, bname, 1, (int64_t[]){K}, bf) : NULL;
        free(wf);
        free(bf);
        n_in = 3;
    } else {
        in[1] = ox_in(x, n->inputs[1]);
    }
    int64_t ks[2] = {w->shape[2], w->shape[3]}, st[2] = {a[IR_A_CONV_STRIDE_H], a[IR_A_CONV_STRIDE_W]};
    int64_t pads[4] = {a[IR_A_CONV_PAD_H], a[IR_A_CONV_PAD_W], a[IR_A_CONV_PAD_H], a[IR_A_CONV_PAD_W]};
    int64_t dil[2] = {a[IR_A_CONV_DIL_H], a[IR_A_CONV_DIL_W]};
    return ox_node(x, "Conv", n->name, n_in, in, out, attr_is(x, "kernel_shape", 2, ks), attr_is(x, "strides", 2, st),
                   attr_is(x, "pads", 4, pads), attr_is(x, "dilations", 2, dil), attr_i(x, "group", a[IR_A_CONV_GROUPS]),
                   END);
}

static int ox_batchnorm(ox *x, int id, const char *out) {
    const ir_node *n = ir_graph_node(x->g, id);
    int64_t C = n->shape[1];
    const char *in[5] = {ox_in(x, n->inputs[0]), NULL, NULL, ox_in(x, n->inputs[3]), ox_in(x, n->inputs[4])};
    if (n->inputs[1] >= 0) {
        in[1] = ox_in(x, n->inputs[1]);
        in[2] = ox_in(x, n->inputs[2]);
    } else { /* no affine parameters: gamma = 1, beta = 0 */
        float *one = malloc((size_t)C * sizeof *one), *zero = calloc((size_t)C, sizeof *zero);
        if (!one || !zero) {
            free(one);
            free(zero);
            return ox_fail(x, "out of memory");
        }
        for (int64_t c = 0; c < C; c++) one[c] = 1.f;
        char *gn = ox_printf(x, "%s.weight_ones", n->name), *bname = ox_printf(x, "%s.bias_zeros", n->name);
        in[1] = gn ? ox_init_f32(x, gn, 1, &C, one) : NULL;
        in[2] = bname ? ox_init_f32(x, bname, 1, &C, zero) : NULL;
        free(one);
        free(zero);
    }
    return ox_node(x, "BatchNormalization", n->name, 5, in, out, attr_f(x, "epsilon", n->fattr[IR_F_BN_EPS]), END);
}

static int ox_pool(ox *x, const ir_node *n, const char *out) {
    int64_t k = n->iattr[IR_A_POOL_K], s = n->iattr[IR_A_POOL_STRIDE], p = n->iattr[IR_A_POOL_PAD];
    int64_t ks[2] = {k, k}, st[2] = {s, s}, pads[4] = {p, p, p, p};
    const char *in[1] = {ox_in(x, n->inputs[0])};
    if (n->op == IR_OP_MAXPOOL)
        return ox_node(x, "MaxPool", n->name, 1, in, out, attr_is(x, "kernel_shape", 2, ks),
                       attr_is(x, "strides", 2, st), attr_is(x, "pads", 4, pads), END);
    return ox_node(x, "AveragePool", n->name, 1, in, out, attr_is(x, "kernel_shape", 2, ks),
                   attr_is(x, "strides", 2, st), attr_is(x, "pads", 4, pads), attr_i(x, "count_include_pad", 0), END);
}

static const char *ox_zero_scalar(ox *x) {
    if (!x->c_zero) x->c_zero = ox_scalar_f32(x, "const.zero", 0.f);
    return x->c_zero;
}

/* The constants of Slices over H and W; start 0 ({0,0}, ZERO) or 1 ({1,1}, SHIFT). */
static int ox_hw_consts(ox *x, int start) {
    if (!x->c_hw_start[start])
        x->c_hw_start[start] = ox_init_i64(x, start ? "const.slice_hw.starts1" : "const.slice_hw.starts0", 2,
                                           (int64_t[]){start, start});
    if (!x->c_hw_end) x->c_hw_end = ox_init_i64(x, "const.slice_hw.ends", 2, (int64_t[]){INT64_MAX, INT64_MAX});
    if (!x->c_hw_axes) x->c_hw_axes = ox_init_i64(x, "const.slice_hw.axes", 2, (int64_t[]){2, 3});
    return x->failed ? -1 : 0;
}

/* ZERO: Mul(Slice(x, steps = stride), 0) keeps the batch symbolic; the shape is
 * ceil(H / s) x ceil(W / s) as the IR's. */
static int ox_zero(ox *x, const ir_node *n, const char *out) {
    int64_t s = n->iattr[IR_A_ZERO_STRIDE];
    const char *src = ox_in(x, n->inputs[0]);
    if (s > 1) {
        if (ox_hw_consts(x, 0)) return -1;
        if (!x->c_hw_steps[s]) {
            char *nm = ox_printf(x, "const.slice_hw.steps%" PRId64, s);
            x->c_hw_steps[s] = nm ? ox_init_i64(x, nm, 2, (int64_t[]){s, s}) : NULL;
        }
        const char *sl = ox_tmp(x, n, "subsample");
        const char *in[5] = {src, x->c_hw_start[0], x->c_hw_end, x->c_hw_axes, x->c_hw_steps[s]};
        char *nm = ox_printf(x, "%s/subsample", n->name);
        if (!nm || ox_node(x, "Slice", nm, 5, in, sl, END)) return -1;
        src = sl;
    }
    return ox_node(x, "Mul", n->name, 2, (const char *[]){src, ox_zero_scalar(x)}, out, END);
}

static int ox_shift(ox *x, const ir_node *n, const char *out) {
    if (ox_hw_consts(x, 1)) return -1;
    const char *in[4] = {ox_in(x, n->inputs[0]), x->c_hw_start[1], x->c_hw_end, x->c_hw_axes};
    return ox_node(x, "Slice", n->name, 4, in, out, END);
}

static int ox_slice(ox *x, const ir_node *n, const char *out) {
    int64_t s = n->iattr[IR_A_SLICE_START], l = n->iattr[IR_A_SLICE_LEN];
    char *b = ox_printf(x, "%s.starts", n->name), *e = ox_printf(x, "%s.ends", n->name);
    char *ax = ox_printf(x, "%s.axes", n->name);
    if (!b || !e || !ax) return -1;
    const char *in[4] = {ox_in(x, n->inputs[0]), ox_init_i64(x, b, 1, &s), ox_init_i64(x, e, 1, (int64_t[]){s + l}),
                         ox_init_i64(x, ax, 1, (int64_t[]){1})};
    return ox_node(x, "Slice", n->name, 4, in, out, END);
}

/* sum_i w_i x_i with constant weights: Mul each candidate by its scalar, then Sum. */
static int ox_weighted_sum(ox *x, const ir_node *n, int n_x, const int *xs, const double *w, const char *out) {
    const char *terms[IR_MAX_IATTR + 1];
    for (int i = 0; i < n_x; i++) {
        char *wn = ox_printf(x, "%s.weight%d", n->name, i), *tn = ox_printf(x, "%s/term%d", n->name, i);
        if (!wn || !tn) return -1;
        const char *wc = ox_scalar_f32(x, wn, (float)w[i]);
        terms[i] = ox_unique(x, &x->names, tn);
        if (ox_node(x, "Mul", tn, 2, (const char *[]){ox_in(x, xs[i]), wc}, terms[i], END)) return -1;
    }
    return ox_node(x, "Sum", n->name, n_x, terms, out, END);
}

static int ox_mixed(ox *x, const ir_node *n, const char *out) {
    const ir_node *al = ir_graph_node(x->g, n->inputs[0]);
    const float *av = al->op == IR_OP_PARAM && x->m->values ? x->m->values[n->inputs[0]] : NULL;
    if (!av) return ox_fail(x, "mixed op '%s': alpha '%s' must be a parameter with a value", n->name, al->name);
    int O = (int)al->shape[1], nx = n->n_inputs - 1;
    const float *row = av + n->iattr[IR_A_MIXED_ROW] * O;
    double mx = row[0], sum = 0, sm[IR_MAX_MIXED_COLS], w[IR_MAX_IATTR];
    for (int o = 1; o < O; o++) mx = row[o] > mx ? row[o] : mx;
    for (int o = 0; o < O; o++) sum += sm[o] = exp((double)row[o] - mx);
    for (int i = 0; i < nx; i++) w[i] = sm[n->iattr[IR_A_MIXED_COL0 + i]] / sum;
    return ox_weighted_sum(x, n, nx, n->inputs + 1, w, out);
}

static int ox_wsum(ox *x, const ir_node *n, const char *out) {
    int nx = n->n_inputs - 1;
    const ir_node *wn = ir_graph_node(x->g, n->inputs[0]);
    const float *wv = wn->op == IR_OP_PARAM && x->m->values ? x->m->values[n->inputs[0]] : NULL;
    if (wv) {
        double w[IR_MAX_IATTR + 1];
        for (int i = 0; i < nx; i++) w[i] = wv[i];
        return ox_weighted_sum(x, n, nx, n->inputs + 1, w, out);
    }
    /* computed weights: Slice w[i:i+1] (shape (1), broadcast) times x_i */
    const char *terms[IR_MAX_IATTR + 1], *wsrc = ox_in(x, n->inputs[0]);
    const char *axes = ox_init_i64(x, "const.axis0", 1, (int64_t[]){0});
    for (int i = 0; i < nx; i++) {
        char *b = ox_printf(x, "%s.w%d.start", n->name, i), *e = ox_printf(x, "%s.w%d.end", n->name, i);
        char *sn = ox_printf(x, "%s/w%d", n->name, i), *tn = ox_printf(x, "%s/term%d", n->name, i);
        if (!b || !e || !sn || !tn) return -1;
        const char *wi = ox_unique(x, &x->names, sn);
        const char *sin[4] = {wsrc, ox_init_i64(x, b, 1, (int64_t[]){i}), ox_init_i64(x, e, 1, (int64_t[]){i + 1}), axes};
        if (ox_node(x, "Slice", sn, 4, sin, wi, END)) return -1;
        terms[i] = ox_unique(x, &x->names, tn);
        if (ox_node(x, "Mul", tn, 2, (const char *[]){ox_in(x, n->inputs[i + 1]), wi}, terms[i], END)) return -1;
    }
    return ox_node(x, "Sum", n->name, nx, terms, out, END);
}

static int ox_op(ox *x, int id, const char *out) {
    const ir_node *n = ir_graph_node(x->g, id);
    /* MIXED and WSUM read their first input (the weights) as constants themselves */
    int own_first = n->op == IR_OP_MIXED || n->op == IR_OP_WSUM;
    const char *in0 = !own_first && n->n_inputs > 0 && n->inputs[0] >= 0 ? ox_in(x, n->inputs[0]) : NULL;
    const char *ins[3];
    switch (n->op) {
    case IR_OP_CONV2D: return ox_conv(x, id, out);
    case IR_OP_BATCHNORM: return ox_batchnorm(x, id, out);
    case IR_OP_RELU: return ox_node(x, "Relu", n->name, 1, &in0, out, END);
    case IR_OP_TANH: return ox_node(x, "Tanh", n->name, 1, &in0, out, END);
    case IR_OP_SIGMOID: return ox_node(x, "Sigmoid", n->name, 1, &in0, out, END);
    case IR_OP_SOFTMAX: return ox_node(x, "Softmax", n->name, 1, &in0, out, attr_i(x, "axis", -1), END);
    case IR_OP_ZERO: return ox_zero(x, n, out);
    case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: return ox_pool(x, n, out);
    case IR_OP_ADD: case IR_OP_MEAN: case IR_OP_CONCAT: {
        const char **xs = ox_alloc(x, sizeof *xs * (size_t)n->n_inputs);
        if (!xs) return -1;
        for (int i = 0; i < n->n_inputs; i++) xs[i] = ox_in(x, n->inputs[i]);
        if (n->op == IR_OP_CONCAT) return ox_node(x, "Concat", n->name, n->n_inputs, xs, out, attr_i(x, "axis", 1), END);
        return ox_node(x, n->op == IR_OP_ADD ? "Sum" : "Mean", n->name, n->n_inputs, xs, out, END);
    }
    case IR_OP_MUL: case IR_OP_SUB:
        ins[0] = in0;
        ins[1] = ox_in(x, n->inputs[1]);
        return ox_node(x, n->op == IR_OP_MUL ? "Mul" : "Sub", n->name, 2, ins, out, END);
    case IR_OP_SCALE: {
        char *cn = ox_printf(x, "%s.factor", n->name);
        ins[0] = in0;
        ins[1] = cn ? ox_scalar_f32(x, cn, n->fattr[IR_F_P]) : NULL;
        return ox_node(x, "Mul", n->name, 2, ins, out, END);
    }
    case IR_OP_SLICE: return ox_slice(x, n, out);
    case IR_OP_SHIFT: return ox_shift(x, n, out);
    case IR_OP_GAP: {
        const char *p = ox_tmp(x, n, "pool");
        char *nm = ox_printf(x, "%s/pool", n->name);
        if (!nm || ox_node(x, "GlobalAveragePool", nm, 1, &in0, p, END)) return -1;
        return ox_node(x, "Flatten", n->name, 1, &p, out, attr_i(x, "axis", 1), END);
    }
    case IR_OP_LINEAR:
        ins[0] = in0;
        ins[1] = ox_in(x, n->inputs[1]);
        if (n->inputs[2] >= 0) ins[2] = ox_in(x, n->inputs[2]);
        return ox_node(x, "Gemm", n->name, n->inputs[2] >= 0 ? 3 : 2, ins, out, attr_i(x, "transB", 1), END);
    case IR_OP_MIXED: return ox_mixed(x, n, out);
    case IR_OP_WSUM: return ox_wsum(x, n, out);
    case IR_OP_EMBEDDING: case IR_OP_SOFTMAX_CE: case IR_OP_INPUT: case IR_OP_PARAM:
    case IR_OP_IDENTITY: case IR_OP_DROPOUT: case IR_OP_DROP_PATH: case IR_OP_SQMEAN: case IR_OP_COUNT:
    case IR_OP_WMIXED: case IR_OP_SHUFFLE: /* search supernets of pc-darts / fair-darts only; never in a derived network */
        break;
    }
    return ox_fail(x, "node '%s': op %s cannot be exported to ONNX", n->name, ir_op_name(n->op));
}

static int is_alias(const ox *x, int id) {
    const ir_node *n = ir_graph_node(x->g, id);
    return n->op == IR_OP_IDENTITY || n->op == IR_OP_DROPOUT || n->op == IR_OP_DROP_PATH ||
           (n->op == IR_OP_BATCHNORM && x->fold.folded[id]);
}

/* ---- graph interface and metadata --------------------------------------------------------- */

static Onnx__ValueInfoProto *ox_value_info(ox *x, const char *name, const ir_node *n) {
    Onnx__ValueInfoProto *vi = ox_alloc(x, sizeof *vi);
    Onnx__TypeProto *tp = ox_alloc(x, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ox_alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ox_alloc(x, sizeof *dims * IR_MAX_DIMS);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < n->ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = ox_alloc(x, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = n->shape[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)n->ndim;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

/* JSON string literal of s (quotes included). */
static char *ox_json_str(ox *x, const char *s) {
    size_t n = strlen(s);
    char *o = ox_alloc(x, 6 * n + 3), *p = o;
    if (!o) return NULL;
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) {
            p += sprintf(p, "\\u%04x", *c);
        } else {
            *p++ = (char)*c;
        }
    }
    *p++ = '"';
    *p = 0;
    return o;
}

static char *ox_json_floats(ox *x, int n, const float *v) {
    char *s = ox_alloc(x, (size_t)n * 24 + 3), *p = s;
    if (!s) return NULL;
    *p++ = '[';
    for (int i = 0; i < n; i++) { /* the shortest text that reads back as the same float */
        char t[32];
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, (double)v[i]);
            if (strtof(t, NULL) == v[i]) break;
        }
        p += sprintf(p, "%s%s", i ? ", " : "", t);
    }
    *p++ = ']';
    *p = 0;
    return s;
}

static int ox_meta(ox *x, Onnx__StringStringEntryProto **props, size_t *n, const char *key, const char *value) {
    if (!value) return x->failed ? -1 : 0;
    Onnx__StringStringEntryProto *e = ox_alloc(x, sizeof *e);
    if (!e) return -1;
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)key;
    e->value = (char *)value;
    props[(*n)++] = e;
    return 0;
}

/* ---- atomic write ------------------------------------------------------------------------- */

static int write_atomic(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: write failed: %s", tmp, w < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    free(tmp);
    /* the directory entry too, so the rename survives a crash */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
        int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

/* ---- the exporter --------------------------------------------------------------------------- */

static void ox_free(ox *x) {
    for (ox_blk *b = x->blk; b;) {
        ox_blk *nb = b->next;
        free(b);
        b = nb;
    }
    free(x->val);
    free(x->live);
    free(x->nodes);
    free(x->inits);
    smap_free(&x->names);
    smap_free(&x->node_names);
    cg_fold_free(&x->fold);
}

static int ox_build(ox *x, const cg_onnx_opts *o, Onnx__ModelProto *model) {
    const ir_graph *g = x->g;
    const cg_model *m = x->m;
    int n = ir_graph_num_nodes(g);
    if (m->input < 0 || m->input >= n || ir_graph_node(g, m->input)->op != IR_OP_INPUT)
        return ox_fail(x, "the model's input (node %d) is not an input node", m->input);
    if (m->output < 0 || m->output >= n) return ox_fail(x, "the model's output (node %d) does not exist", m->output);
    const ir_node *in_n = ir_graph_node(g, m->input), *out_n = ir_graph_node(g, m->output);
    if (in_n->dtype != IR_DTYPE_F32 || in_n->ndim < 1) return ox_fail(x, "input '%s' must be a float batch", in_n->name);
    if (out_n->dtype != IR_DTYPE_F32 || out_n->ndim < 1)
        return ox_fail(x, "output '%s' must be a float batch", out_n->name);
    if (cg_fold_init(&x->fold, g, o->fold_bn)) return ox_fail(x, "out of memory");
    x->val = calloc((size_t)n, sizeof *x->val);
    x->live = calloc((size_t)n, 1);
    if (!x->val || !x->live) return ox_fail(x, "out of memory");
    x->live[m->output] = 1;
    for (int i = n - 1; i >= 0; i--) {
        if (!x->live[i]) continue;
        const ir_node *nd = ir_graph_node(g, i);
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] >= 0) x->live[nd->inputs[j]] = 1;
    }
    /* a conv that is the output itself keeps its BN (which is then not live) unfolded */
    for (int i = 0; i < n; i++)
        if (x->fold.conv_bn[i] >= 0 && !x->live[x->fold.conv_bn[i]]) {
            x->fold.folded[x->fold.conv_bn[i]] = 0;
            x->fold.conv_bn[i] = -1;
        }
    /* the interface names first, so no IR name can take them */
    if (!smap_put(&x->names, "input", 1) || !smap_put(&x->names, "logits", 1)) return ox_fail(x, "out of memory");
    x->val[m->input] = "input";
    int res = m->output; /* the node that really computes the output */
    while (is_alias(x, res)) res = ir_graph_node(g, res)->inputs[0];
    int need_identity = ir_graph_node(g, res)->op == IR_OP_INPUT || ir_graph_node(g, res)->op == IR_OP_PARAM;

    for (int i = 0; i < n && !x->failed; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (!x->live[i] || nd->op == IR_OP_PARAM) continue;
        if (nd->op == IR_OP_INPUT) {
            if (i != m->input)
                return ox_fail(x, "the output depends on input '%s', which is not the model's input", nd->name);
            continue;
        }
        if (is_alias(x, i)) {
            x->val[i] = ox_in(x, nd->inputs[0]);
            continue;
        }
        const char *out = i == res ? "logits" : ox_unique(x, &x->names, nd->name);
        if (!out) return -1;
        x->val[i] = out;
        x->cur = i;
        int rc = ox_op(x, i, out);
        x->cur = -1;
        if (rc) return -1;
    }
    if (x->failed) return -1;
    if (need_identity) {
        const char *src = ox_in(x, res);
        if (ox_node(x, "Identity", "output", 1, &src, "logits", END)) return -1;
    }

    Onnx__GraphProto *gp = ox_alloc(x, sizeof *gp);
    Onnx__ValueInfoProto **gin = ox_alloc(x, sizeof *gin), **gout = ox_alloc(x, sizeof *gout);
    Onnx__OperatorSetIdProto *ops = ox_alloc(x, sizeof *ops), **opsv = ox_alloc(x, sizeof *opsv);
    Onnx__StringStringEntryProto **props = ox_alloc(x, sizeof *props * 12);
    if (!gp || !gin || !gout || !ops || !opsv || !props) return -1;
    onnx__graph_proto__init(gp);
    gin[0] = ox_value_info(x, "input", in_n);
    gout[0] = ox_value_info(x, "logits", out_n);
    if (!gin[0] || !gout[0]) return -1;
    gp->name = ox_strdup(x, m->name ? m->name : ir_graph_name(g));
    gp->doc_string = (char *)(o->doc ? o->doc
                                     : "exported by dartsc; input: float32 (N, C, H, W) normalised per channel "
                                       "as (x - input_mean) / input_std; output: logits (N, classes)");
    gp->n_input = 1;
    gp->input = gin;
    gp->n_output = 1;
    gp->output = gout;
    gp->n_node = x->n_nodes;
    gp->node = x->nodes;
    gp->n_initializer = x->n_inits;
    gp->initializer = x->inits;

    onnx__operator_set_id_proto__init(ops);
    ops->domain = "";
    ops->has_version = 1;
    ops->version = CG_ONNX_OPSET;
    opsv[0] = ops;

    size_t np = 0;
    int in_c = m->in_c > 0 && m->in_c <= 4 ? m->in_c : (in_n->ndim > 1 && in_n->shape[1] <= 4 ? (int)in_n->shape[1] : 0);
    char *classes = NULL;
    if (m->class_names && m->n_classes > 0) {
        size_t len = 3;
        for (int i = 0; i < m->n_classes; i++) len += 6 * strlen(m->class_names[i] ? m->class_names[i] : "") + 4;
        classes = ox_alloc(x, len);
        if (!classes) return -1;
        char *p = classes;
        *p++ = '[';
        for (int i = 0; i < m->n_classes; i++) {
            char *q = ox_json_str(x, m->class_names[i] ? m->class_names[i] : "");
            if (!q) return -1;
            p += sprintf(p, "%s%s", i ? ", " : "", q);
        }
        *p++ = ']';
        *p = 0;
    }
    ox_meta(x, props, &np, "name", m->name);
    ox_meta(x, props, &np, "space", m->space_name);
    ox_meta(x, props, &np, "genotype", m->genotype_json);
    if (in_c && m->std[0] > 0) { /* std 0: the caller gave no normalisation */
        ox_meta(x, props, &np, "input_mean", ox_json_floats(x, in_c, m->mean));
        ox_meta(x, props, &np, "input_std", ox_json_floats(x, in_c, m->std));
    }
    ox_meta(x, props, &np, "class_names", classes);
    if (m->test_accuracy >= 0) ox_meta(x, props, &np, "test_accuracy", ox_printf(x, "%.6g", m->test_accuracy));
    ox_meta(x, props, &np, "bn_folded", o->fold_bn ? "1" : "0");
    if (x->failed) return -1;

    onnx__model_proto__init(model);
    model->has_ir_version = 1;
    model->ir_version = CG_ONNX_IR_VERSION;
    model->n_opset_import = 1;
    model->opset_import = opsv;
    model->producer_name = "dartsc";
    model->producer_version = DARTSC_VERSION;
    model->has_model_version = 1;
    model->model_version = 1;
    model->graph = gp;
    model->n_metadata_props = np;
    model->metadata_props = props;
    return 0;
}

int cg_onnx_write(const cg_model *m, const cg_onnx_opts *o, const char *path, char *err, size_t errlen) {
    cg_onnx_opts def = cg_onnx_opts_default();
    if (!o) o = &def;
    if (!m || !m->g) {
        snprintf(err, errlen, "%s: no model to export", path);
        return -1;
    }
    char msg[512] = "";
    ox x = {.m = m, .g = m->g, .cur = -1, .err = msg, .errlen = sizeof msg};
    Onnx__ModelProto model;
    int rc = -1;
    uint8_t *buf = NULL;
    if (ox_build(&x, o, &model) == 0) {
        size_t len = protobuf_c_message_get_packed_size(&model.base);
        if (len > 0x7fffffffu) {
            snprintf(err, errlen, "%s: the model is %zu bytes, over protobuf's 2 GiB limit", path, len);
        } else if (!(buf = malloc(len ? len : 1))) {
            snprintf(err, errlen, "%s: out of memory", path);
        } else if (protobuf_c_message_pack(&model.base, buf) != len) {
            snprintf(err, errlen, "%s: internal: protobuf packing size mismatch", path);
        } else {
            rc = write_atomic(path, buf, len, err, errlen);
        }
    } else {
        snprintf(err, errlen, "%s: cannot export '%s': %s", path, m->name ? m->name : ir_graph_name(m->g), msg);
    }
    free(buf);
    ox_free(&x);
    return rc;
}

/* ================================ inspect =============================================== */

#define IX_MAX_DIMS 16
#define IX_MAX_NUMEL ((int64_t)1 << 40)

typedef struct ix {
    const char *label;
    char *err;
    size_t errlen;
} ix;

static int ix_fail(ix *c, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", c->label, msg);
    return -1;
}

/* Bytes per element (0: no fixed width: strings, undefined or unknown). */
static int dtype_size(int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128: return 16;
    default: return 0;
    }
}

static const char *dtype_name(int dt) {
    static const char *const names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16", "int32",
                                        "int64", "string", "bool", "float16", "float64", "uint32", "uint64",
                                        "complex64", "complex128", "bfloat16"};
    return dt >= 0 && dt < (int)(sizeof names / sizeof names[0]) ? names[dt] : "unknown";
}

static const char *safe(const char *s) { return s ? s : ""; }

/* Checks an initializer; *numel receives its element count. */
static int ix_tensor(ix *c, const Onnx__TensorProto *t, size_t idx, int64_t *numel) {
    const char *nm = safe(t->name);
    if (!*nm) return ix_fail(c, "initializer #%zu has no name", idx);
    if (!t->has_data_type || t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED)
        return ix_fail(c, "initializer '%.100s' has no data type", nm);
    if (t->n_dims > IX_MAX_DIMS) return ix_fail(c, "initializer '%.100s' has %zu dims (at most %d)", nm, t->n_dims, IX_MAX_DIMS);
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        int64_t d = t->dims[i];
        if (d < 0 || d > IX_MAX_NUMEL) return ix_fail(c, "initializer '%.100s': dimension %zu is %" PRId64, nm, i, d);
        if (d && n > IX_MAX_NUMEL / d) return ix_fail(c, "initializer '%.100s': too many elements", nm);
        n *= d;
    }
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ix_fail(c, "initializer '%.100s' keeps its data in an external file (not supported)", nm);
    if (t->segment) return ix_fail(c, "initializer '%.100s' is segmented (not supported)", nm);
    int es = dtype_size(t->data_type);
    int cplx = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64 ||
               t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128;
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__STRING) {
        if (t->has_raw_data) return ix_fail(c, "initializer '%.100s': string tensors cannot use raw_data", nm);
        if ((int64_t)t->n_string_data != n)
            return ix_fail(c, "initializer '%.100s': %zu strings for %" PRId64 " elements", nm, t->n_string_data, n);
    } else if (!es) {
        return ix_fail(c, "initializer '%.100s': unknown data type %d", nm, (int)t->data_type);
    } else if (t->has_raw_data) {
        if ((uint64_t)t->raw_data.len != (uint64_t)n * (uint64_t)es)
            return ix_fail(c, "initializer '%.100s': raw_data has %zu bytes, its dims %s need %" PRId64, nm,
                           t->raw_data.len, dtype_name(t->data_type), n * es);
    } else {
        size_t have;
        switch (t->data_type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
            have = t->n_float_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
            have = t->n_double_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
            have = t->n_uint64_data; break;
        default: have = t->n_int32_data; break;
        }
        if ((uint64_t)have != (uint64_t)n * (cplx ? 2u : 1u))
            return ix_fail(c, "initializer '%.100s': %zu values stored for %" PRId64 " elements", nm, have, n);
    }
    *numel = n;
    return 0;
}

static int ix_value_info(ix *c, const Onnx__ValueInfoProto *v, const char *what) {
    if (!v || !v->name || !*v->name) return ix_fail(c, "a graph %s has no name", what);
    const Onnx__TypeProto *tp = v->type;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type && tp->tensor_type->shape) {
        const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
        if (sh->n_dim > IX_MAX_DIMS) return ix_fail(c, "%s '%.100s' has %zu dims (at most %d)", what, v->name, sh->n_dim, IX_MAX_DIMS);
        for (size_t i = 0; i < sh->n_dim; i++) {
            const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
            if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value < 0)
                return ix_fail(c, "%s '%.100s': dimension %zu is %" PRId64, what, v->name, i, d->dim_value);
        }
    }
    return 0;
}

/* Prints s with control and non-ASCII bytes escaped, at most max bytes of it. */
static void print_safe(FILE *f, const char *s, size_t max) {
    size_t i = 0;
    for (; s && s[i] && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f) fputc(ch, f);
        else if (ch == '\n') fputs("\\n", f);
        else fprintf(f, "\\x%02x", ch);
    }
    if (s && s[i]) fprintf(f, "... (%zu bytes)", strlen(s));
}

static void print_value_info(FILE *f, const char *what, const Onnx__ValueInfoProto *v) {
    fprintf(f, "  %-7s ", what);
    print_safe(f, v->name, 80);
    const Onnx__TypeProto *tp = v->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        fprintf(f, "  (not a tensor)\n");
        return;
    }
    fprintf(f, "  %s", tp->tensor_type->has_elem_type ? dtype_name(tp->tensor_type->elem_type) : "?");
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    if (!sh) {
        fprintf(f, " (shape unknown)\n");
        return;
    }
    fputs(" [", f);
    for (size_t i = 0; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (i) fputs(", ", f);
        if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) fprintf(f, "%" PRId64, d->dim_value);
        else if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) print_safe(f, d->dim_param, 32);
        else fputc('?', f);
    }
    fputs("]\n", f);
}

typedef struct op_count {
    const char *op;
    int n;
} op_count;

static int cmp_op_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? 1 : -1;
    return strcmp(x->op, y->op);
}

/* Validates the model; fills defined (name -> 1 input, 2 initializer, 3 node output),
 * ops (op type -> count) and the initializer totals. */
static int ix_validate(ix *c, const Onnx__ModelProto *mp, smap *defined, smap *ops, int64_t *params, int64_t *bytes) {
    if (!mp->has_ir_version) return ix_fail(c, "no IR version (not an ONNX model?)");
    if (mp->ir_version < 1 || mp->ir_version > 64) return ix_fail(c, "IR version %" PRId64 " is not plausible", mp->ir_version);
    if (!mp->n_opset_import) return ix_fail(c, "no operator set imported");
    for (size_t i = 0; i < mp->n_opset_import; i++)
        if (!mp->opset_import[i]->has_version || mp->opset_import[i]->version < 1 || mp->opset_import[i]->version > 1000)
            return ix_fail(c, "operator set import #%zu has no plausible version", i);
    const Onnx__GraphProto *g = mp->graph;
    if (!g) return ix_fail(c, "no graph (truncated?)");
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (!mp->metadata_props[i]->key) return ix_fail(c, "metadata entry #%zu has no key", i);
    /* names defined before the first node: graph inputs and initializers */
    for (size_t i = 0; i < g->n_input; i++) {
        if (ix_value_info(c, g->input[i], "input")) return -1;
        if (!smap_put(defined, g->input[i]->name, 1)) return ix_fail(c, "out of memory");
    }
    *params = *bytes = 0;
    for (size_t i = 0; i < g->n_initializer; i++) {
        int64_t n = 0;
        if (ix_tensor(c, g->initializer[i], i, &n)) return -1;
        const char *nm = g->initializer[i]->name;
        int *seen = smap_get(defined, nm);
        if (seen && *seen == 2) return ix_fail(c, "initializer '%.100s' is defined twice", nm);
        int *v = smap_put(defined, nm, 2);
        if (!v) return ix_fail(c, "out of memory");
        *v = 2;
        *params += n;
        *bytes += n * (int64_t)dtype_size(g->initializer[i]->data_type);
    }
    if (g->n_sparse_initializer) return ix_fail(c, "sparse initializers are not supported");
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        if (!nd->op_type || !*nd->op_type) return ix_fail(c, "node #%zu has no op type", i);
        for (size_t j = 0; j < nd->n_input; j++) {
            const char *in = nd->input[j];
            if (in && *in && !smap_get(defined, in))
                return ix_fail(c, "node #%zu ('%.60s', %.40s) reads '%.100s', which nothing defines before it", i,
                               safe(nd->name), nd->op_type, in);
        }
        if (!nd->n_output) return ix_fail(c, "node #%zu ('%.60s', %.40s) has no output", i, safe(nd->name), nd->op_type);
        for (size_t j = 0; j < nd->n_output; j++) {
            const char *o = nd->output[j];
            if (!o || !*o) continue;
            if (smap_get(defined, o))
                return ix_fail(c, "node #%zu ('%.60s') redefines '%.100s'", i, safe(nd->name), o);
            if (!smap_put(defined, o, 3)) return ix_fail(c, "out of memory");
        }
        int *cnt = smap_put(ops, nd->op_type, 0);
        if (!cnt) return ix_fail(c, "out of memory");
        ++*cnt;
    }
    if (!g->n_output) return ix_fail(c, "the graph has no outputs");
    for (size_t i = 0; i < g->n_output; i++) {
        if (ix_value_info(c, g->output[i], "output")) return -1;
        if (!smap_get(defined, g->output[i]->name))
            return ix_fail(c, "graph output '%.100s' is never computed", g->output[i]->name);
    }
    return 0;
}

static void ix_print(FILE *f, const char *label, size_t len, const Onnx__ModelProto *mp, const smap *defined,
                     const smap *ops, int64_t params, int64_t bytes) {
    const Onnx__GraphProto *g = mp->graph;
    fprintf(f, "%s: ONNX model, %zu bytes\n", label, len);
    fprintf(f, "  ir version: %" PRId64 "\n  opsets:", mp->ir_version);
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = safe(mp->opset_import[i]->domain);
        fputc(' ', f);
        print_safe(f, *d ? d : "ai.onnx", 60);
        fprintf(f, " %" PRId64, mp->opset_import[i]->version);
    }
    fputs("\n  producer: ", f);
    print_safe(f, mp->producer_name ? mp->producer_name : "(none)", 80);
    fputc(' ', f);
    print_safe(f, safe(mp->producer_version), 40);
    fputs("\n  graph: ", f);
    print_safe(f, g->name ? g->name : "(unnamed)", 80);
    fprintf(f, ", %zu nodes\n", g->n_node);
    size_t n_real_inputs = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const int *kind = smap_get(defined, g->input[i]->name);
        if (kind && *kind == 2) continue; /* old-style models list weights as inputs too */
        print_value_info(f, "input", g->input[i]);
        n_real_inputs++;
        if (n_real_inputs >= 32) {
            fprintf(f, "  ... (%zu inputs)\n", g->n_input);
            break;
        }
    }
    for (size_t i = 0; i < g->n_output && i < 32; i++) print_value_info(f, "output", g->output[i]);
    fprintf(f, "  initializers: %zu, %" PRId64 " parameters (%.2f MiB)\n", g->n_initializer, params,
            (double)bytes / (1024.0 * 1024.0));
    op_count *hist = malloc((ops->n ? ops->n : 1) * sizeof *hist);
    size_t nh = 0;
    for (size_t i = 0; hist && i < ops->cap; i++)
        if (ops->keys[i]) hist[nh++] = (op_count){ops->keys[i], ops->vals[i]};
    fprintf(f, "  ops (%zu kinds):", nh);
    if (hist) {
        qsort(hist, nh, sizeof *hist, cmp_op_count);
        for (size_t i = 0; i < nh; i++) {
            fputs(i % 6 ? ", " : "\n    ", f);
            print_safe(f, hist[i].op, 40);
            fprintf(f, " %d", hist[i].n);
        }
    }
    free(hist);
    fputc('\n', f);
    if (mp->n_metadata_props) {
        fputs("  metadata:\n", f);
        for (size_t i = 0; i < mp->n_metadata_props; i++) {
            fputs("    ", f);
            print_safe(f, mp->metadata_props[i]->key, 60);
            fputs(": ", f);
            print_safe(f, safe(mp->metadata_props[i]->value), 400);
            fputc('\n', f);
        }
    }
}

int cg_onnx_inspect_buf(const uint8_t *buf, size_t len, const char *label, FILE *out, char *err, size_t errlen) {
    ix c = {label ? label : "(buffer)", err, errlen};
    if (len == 0) return ix_fail(&c, "empty file");
    if (len > 0x7fffffffu) return ix_fail(&c, "%zu bytes: over protobuf's 2 GiB limit", len);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) return ix_fail(&c, "not a valid ONNX model (protobuf decoding failed: truncated or corrupt)");
    smap defined = {0}, ops = {0};
    int64_t params = 0, bytes = 0;
    int rc = ix_validate(&c, mp, &defined, &ops, &params, &bytes);
    if (rc == 0 && out) ix_print(out, c.label, len, mp, &defined, &ops, params, bytes);
    smap_free(&defined);
    smap_free(&ops);
    onnx__model_proto__free_unpacked(mp, NULL);
    return rc;
}

int cg_onnx_inspect(const char *path, FILE *out, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > 0x7fffffffu) {
        snprintf(err, errlen, "%s: %lld bytes: over protobuf's 2 GiB limit", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size, off = 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    while (off < len) {
        ssize_t r = read(fd, buf + off, len - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        off += (size_t)r;
    }
    close(fd);
    int rc = off != len ? (snprintf(err, errlen, "%s: read failed", path), -1)
                        : cg_onnx_inspect_buf(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}
