/* onnx.c — ONNX export of an inference graph (see onnx.h for the op mapping; the reader
 * behind `dartsc inspect` is onnx_inspect.c).
 *
 * Export builds the protobuf-c message tree in an arena owned by one exporter state,
 * packs it into one buffer and writes that atomically. Every value name is unique: IR
 * names are kept where they are unique, and "input"/"logits" are reserved for the graph's
 * interface. */
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
#include "smap.h"
#include "proto/onnx_pb.h"
#include "quant.h"

#ifndef DARTSC_VERSION
#define DARTSC_VERSION "unknown"
#endif

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
    cg_quant q;           /* int8 (QDQ) export: the scales; q.scale NULL otherwise */
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

/* int8 and int32 initializers (raw_data little-endian). */
static const char *ox_init_i8(ox *x, const char *base, int ndim, const int64_t *dims, const int8_t *v) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    Onnx__TensorProto *t = ox_tensor(x, base, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, ndim, dims, (size_t)n);
    if (!t) return NULL;
    if (n) memcpy(t->raw_data.data, v, (size_t)n);
    return t->name;
}

static const char *ox_init_i32(ox *x, const char *base, int ndim, const int64_t *dims, const int32_t *v) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    Onnx__TensorProto *t = ox_tensor(x, base, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, ndim, dims, (size_t)n * 4);
    if (!t) return NULL;
    put_le32(t->raw_data.data, v, (size_t)n);
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

/* The conv's weights with its BN folded in: wf (K x per_k), bf (K). */
static int ox_folded(ox *x, int id, float *wf, float *bf) {
    const ir_node *n = ir_graph_node(x->g, id), *w = ir_graph_node(x->g, n->inputs[1]);
    const ir_node *bn = ir_graph_node(x->g, x->fold.conv_bn[id]);
    const float *const *v = x->m->values;
    int K = (int)w->shape[0];
    const float *wv = v[n->inputs[1]], *mean = v[bn->inputs[3]], *var = v[bn->inputs[4]];
    const float *gamma = bn->inputs[1] >= 0 ? v[bn->inputs[1]] : NULL;
    const float *beta = bn->inputs[2] >= 0 ? v[bn->inputs[2]] : NULL;
    if (!wv || !mean || !var || (bn->inputs[1] >= 0 && (!gamma || !beta)))
        return ox_fail(x, "convolution '%s' or batch norm '%s' lacks parameter values", n->name, bn->name);
    cg_fold_conv_bn(wf, bf, wv, NULL, K, ir_node_numel(w) / K, gamma, beta, mean, var, bn->fattr[IR_F_BN_EPS]);
    return 0;
}

/* int8 export: weights wf (K rows, per output channel) as int8 + DequantizeLinear (axis 0),
 * and bf (if not NULL) as int32 at scale s_x * s_w[k] + DequantizeLinear: the float
 * values the QDQ graph computes with, in *wv and *bv. The integers are those of the int8
 * C (cg_q_weights, cg_q_i32). */
static int ox_qweights(ox *x, const char *base, const ir_node *w, const float *wf, const float *bf, float sx,
                       const char **wv, const char **bv) {
    int K = (int)w->shape[0];
    int64_t numel = ir_node_numel(w), kd[1] = {K};
    int8_t *wq = malloc((size_t)numel), *z8 = calloc((size_t)K, 1);
    float *sw = malloc(sizeof *sw * (size_t)K), *bs = malloc(sizeof *bs * (size_t)K);
    int32_t *bq = malloc(sizeof *bq * (size_t)K), *z32 = calloc((size_t)K, sizeof *z32);
    int rc = -1;
    if (!wq || !z8 || !sw || !bs || !bq || !z32) {
        ox_fail(x, "out of memory");
        goto out;
    }
    cg_q_weights(wq, sw, wf, K, numel / K);
    const char *ins[3] = {ox_init_i8(x, ox_printf(x, "%s.weight_int8", base), w->ndim, w->shape, wq),
                          ox_init_f32(x, ox_printf(x, "%s.weight_scale", base), 1, kd, sw),
                          ox_init_i8(x, ox_printf(x, "%s.weight_zero_point", base), 1, kd, z8)};
    *wv = ox_unique(x, &x->names, ox_printf(x, "%s.weight_dequantized", base));
    if (x->failed || ox_node(x, "DequantizeLinear", ox_printf(x, "%s/weight_dequantize", base), 3, ins, *wv,
                             attr_i(x, "axis", 0), END))
        goto out;
    if (bf) {
        for (int k = 0; k < K; k++) {
            bq[k] = cg_q_i32(bf[k], (double)sx * sw[k]);
            bs[k] = (float)((double)sx * sw[k]);
        }
        const char *bi[3] = {ox_init_i32(x, ox_printf(x, "%s.bias_int32", base), 1, kd, bq),
                             ox_init_f32(x, ox_printf(x, "%s.bias_scale", base), 1, kd, bs),
                             ox_init_i32(x, ox_printf(x, "%s.bias_zero_point", base), 1, kd, z32)};
        *bv = ox_unique(x, &x->names, ox_printf(x, "%s.bias_dequantized", base));
        if (x->failed || ox_node(x, "DequantizeLinear", ox_printf(x, "%s/bias_dequantize", base), 3, bi, *bv,
                                 attr_i(x, "axis", 0), END))
            goto out;
    }
    rc = 0;
out:
    free(wq); free(z8); free(sw); free(bs); free(bq); free(z32);
    return rc;
}

/* int8 export: src -> QuantizeLinear -> DequantizeLinear -> dst at one scale, zero point 0. */
static int ox_qdq(ox *x, const char *base, const char *src, float scale, const char *dst) {
    int8_t z = 0;
    const char *sc = ox_scalar_f32(x, ox_printf(x, "%s.scale", base), scale);
    const char *zp = ox_init_i8(x, ox_printf(x, "%s.zero_point", base), 0, NULL, &z);
    const char *qv = ox_unique(x, &x->names, ox_printf(x, "%s/int8", base));
    const char *qn = ox_printf(x, "%s/quantize", base), *dn = ox_printf(x, "%s/dequantize", base);
    if (x->failed || !qn || !dn) return -1;
    if (ox_node(x, "QuantizeLinear", qn, 3, (const char *[]){src, sc, zp}, qv, END)) return -1;
    return ox_node(x, "DequantizeLinear", dn, 3, (const char *[]){qv, sc, zp}, dst, END);
}

static int ox_conv(ox *x, int id, const char *out) {
    const ir_node *n = ir_graph_node(x->g, id);
    const ir_node *w = ir_graph_node(x->g, n->inputs[1]);
    const int64_t *a = n->iattr;
    const char *in[3] = {ox_in(x, n->inputs[0]), NULL, NULL};
    int n_in = 2;
    int bn_id = x->fold.conv_bn[id], K = (int)w->shape[0];
    if (bn_id >= 0 || x->q.scale) {
        float *wf = malloc((size_t)ir_node_numel(w) * sizeof *wf), *bf = calloc((size_t)K, sizeof *bf);
        int rc = !wf || !bf ? ox_fail(x, "out of memory") : 0;
        if (!rc && bn_id >= 0) rc = ox_folded(x, id, wf, bf);
        else if (!rc && !x->m->values[n->inputs[1]]) rc = ox_fail(x, "convolution '%s' lacks its weights", n->name);
        else if (!rc) memcpy(wf, x->m->values[n->inputs[1]], (size_t)ir_node_numel(w) * sizeof *wf);
        if (!rc && x->q.scale) {
            rc = ox_qweights(x, n->name, w, wf, bf, x->q.scale[n->inputs[0]], &in[1], &in[2]);
        } else if (!rc) {
            char *wn = ox_printf(x, "%s.weight_bn_folded", n->name), *bname = ox_printf(x, "%s.bias_bn_folded", n->name);
            in[1] = wn ? ox_init_f32(x, wn, w->ndim, w->shape, wf) : NULL;
            in[2] = bname ? ox_init_f32(x, bname, 1, (int64_t[]){K}, bf) : NULL;
        }
        free(wf);
        free(bf);
        if (rc) return -1;
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
        if (x->q.scale) { /* int8 weights per output, the bias (zeros without one) in int32 */
            const ir_node *w = ir_graph_node(x->g, n->inputs[1]);
            int O = (int)w->shape[0];
            float *bz = calloc((size_t)O, sizeof *bz);
            const float *wv = x->m->values[n->inputs[1]], *bv = n->inputs[2] >= 0 ? x->m->values[n->inputs[2]] : bz;
            int rc = !bz || !wv || !bv ? ox_fail(x, "linear '%s' lacks its parameters (or out of memory)", n->name)
                                       : ox_qweights(x, n->name, w, wv, bv, x->q.scale[n->inputs[0]], &ins[1], &ins[2]);
            free(bz);
            if (rc) return -1;
            return ox_node(x, "Gemm", n->name, 3, ins, out, attr_i(x, "transB", 1), END);
        }
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
    cg_quant_free(&x->q);
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
    if (o->int8) {
        if (!o->fold_bn) return ox_fail(x, "int8 export folds every batch norm (fold_bn must be set)");
        char qe[256];
        if (cg_quant_init(&x->q, m, &x->fold, qe, sizeof qe)) return ox_fail(x, "%s", qe);
    }
    /* the interface names first, so no IR name can take them */
    if (!smap_put(&x->names, "input", 1) || !smap_put(&x->names, "logits", 1)) return ox_fail(x, "out of memory");
    x->val[m->input] = "input";
    if (o->int8) { /* the input quantised like the int8 C's */
        x->val[m->input] = ox_unique(x, &x->names, "input_dequantized");
        if (ox_qdq(x, "input", "input", x->q.scale[m->input], x->val[m->input])) return -1;
    }
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
        /* int8: every value but the logits is computed in float, then quantised at its scale */
        const char *fo = o->int8 && i != res ? ox_tmp(x, nd, "float") : out;
        int rc = ox_op(x, i, fo);
        if (!rc && fo != out) rc = ox_qdq(x, nd->name, fo, x->q.scale[i], out);
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
    Onnx__StringStringEntryProto **props = ox_alloc(x, sizeof *props * 16);
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
    if (o->int8) ox_meta(x, props, &np, "quantization", "int8 QDQ: per-channel symmetric weights, per-tensor symmetric activations");
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
