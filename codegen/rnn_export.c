/* rnn_export.c — ONNX and C export of a recurrent language model's step (rnn_export.h).
 * Both walk the step graph node by node; every IR op the recurrent lowering emits at
 * inference has one ONNX op and one C loop. */
#include "rnn_export.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "proto/onnx_pb.h"

static int xfail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int cg_rnn_step_net(const ir_space *sp, const ir_geno_cell *gc, int ntoken, int batch, ir_rnn_net *net) {
    ir_rnn_opts o = {.T = 1, .batch = batch, .ntoken = ntoken, .infer = 1};
    return ir_space_build_rnn(sp, gc, &o, net);
}

/* ---- ONNX --------------------------------------------------------------------------------- */

/* Every allocation of one export, freed together. */
typedef struct xo {
    void **ptrs;
    size_t n, cap;
    int oom;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
} xo;

static void *xo_alloc(xo *x, size_t bytes) {
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        void **p = realloc(x->ptrs, cap * sizeof *p);
        if (!p) { x->oom = 1; return NULL; }
        x->ptrs = p;
        x->cap = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) { x->oom = 1; return NULL; }
    x->ptrs[x->n++] = p;
    return p;
}

static char *xo_str(xo *x, const char *s) {
    char *d = xo_alloc(x, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static int push(void ***arr, size_t *n, size_t *cap, void *v) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void **p = realloc(*arr, c * sizeof *p);
        if (!p) return -1;
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static Onnx__TensorProto *xo_tensor(xo *x, const char *name, int dtype, int ndim, const int64_t *dims, const void *data,
                                    size_t elem) {
    Onnx__TensorProto *t = xo_alloc(x, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = xo_str(x, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    t->dims = xo_alloc(x, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    size_t numel = 1;
    for (int i = 0; i < ndim && t->dims; i++) {
        t->dims[i] = dims[i];
        numel *= (size_t)dims[i];
    }
    t->has_raw_data = 1;
    t->raw_data.len = numel * elem;
    t->raw_data.data = xo_alloc(x, t->raw_data.len);
    if (t->raw_data.data) memcpy(t->raw_data.data, data, t->raw_data.len); /* x86-64: little-endian as ONNX */
    if (!x->oom && push((void ***)&x->inits, &x->n_inits, &x->cap_inits, t)) x->oom = 1;
    return t;
}

static Onnx__NodeProto *xo_node(xo *x, const char *op, const char *name, int n_in, const char **in, const char *out) {
    Onnx__NodeProto *nd = xo_alloc(x, sizeof *nd);
    if (!nd) return NULL;
    onnx__node_proto__init(nd);
    nd->op_type = xo_str(x, op);
    nd->name = xo_str(x, name);
    nd->n_input = (size_t)n_in;
    nd->input = xo_alloc(x, sizeof(char *) * (size_t)(n_in ? n_in : 1));
    for (int i = 0; i < n_in && nd->input; i++) nd->input[i] = xo_str(x, in[i]);
    nd->n_output = 1;
    nd->output = xo_alloc(x, sizeof(char *));
    if (nd->output) nd->output[0] = xo_str(x, out);
    if (!x->oom && push((void ***)&x->nodes, &x->n_nodes, &x->cap_nodes, nd)) x->oom = 1;
    return nd;
}

static void xo_attr_i(xo *x, Onnx__NodeProto *nd, const char *name, int64_t v) {
    if (!nd) return;
    Onnx__AttributeProto *a = xo_alloc(x, sizeof *a);
    Onnx__AttributeProto **arr = xo_alloc(x, sizeof *arr * (nd->n_attribute + 1));
    if (!a || !arr) return;
    onnx__attribute_proto__init(a);
    a->name = xo_str(x, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    for (size_t i = 0; i < nd->n_attribute; i++) arr[i] = nd->attribute[i];
    arr[nd->n_attribute++] = a;
    nd->attribute = arr;
}

static Onnx__ValueInfoProto *xo_value(xo *x, const char *name, int dtype, int64_t cols) {
    Onnx__ValueInfoProto *v = xo_alloc(x, sizeof *v);
    Onnx__TypeProto *tp = xo_alloc(x, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = xo_alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = xo_alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension *d0 = xo_alloc(x, sizeof *d0), *d1 = xo_alloc(x, sizeof *d1);
    Onnx__TensorShapeProto__Dimension **dims = xo_alloc(x, 2 * sizeof *dims);
    if (!v || !tp || !tt || !sh || !d0 || !d1 || !dims) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    onnx__tensor_shape_proto__dimension__init(d0);
    onnx__tensor_shape_proto__dimension__init(d1);
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0->dim_param = xo_str(x, "N");
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1->dim_value = cols;
    dims[0] = d0;
    dims[1] = d1;
    sh->n_dim = cols > 0 ? 2 : 1;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = xo_str(x, name);
    v->type = tp;
    return v;
}

static void xo_free(xo *x) {
    for (size_t i = 0; i < x->n; i++) free(x->ptrs[i]);
    free(x->ptrs);
    free(x->nodes);
    free(x->inits);
}

/* ONNX value name of node i: the interface names, else the IR name. */
static const char *vname(const ir_rnn_net *net, int i, char *buf, size_t n) {
    const ir_node *nd = ir_graph_node(net->graph, i);
    if (i == net->ids[0]) return "ids";
    if (i == net->h0) return "hidden";
    if (i == net->logits[0]) return "logits";
    if (i == net->hT) return "hidden_out";
    if (nd->op == IR_OP_PARAM) snprintf(buf, n, "%s", nd->name);
    else snprintf(buf, n, "%s:%d", nd->name, i); /* IR names need not be unique; ONNX values must */
    return buf;
}

int cg_rnn_onnx_write(const ir_rnn_net *net, const float *const *values, const char *path, char *err, size_t errlen) {
    const ir_graph *g = net->graph;
    if (net->T != 1) return xfail(err, errlen, "recurrent export takes the one-step graph (T = 1), not T = %d", net->T);
    xo x = {0};
    int rc = -1;
    char b0[256], b1[256], b2[256], b3[256];
    for (int i = 0; i < ir_graph_num_nodes(g) && !x.oom; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        const char *out = vname(net, i, b0, sizeof b0);
        const char *in[IR_MAX_IATTR];
        for (int j = 0; j < nd->n_inputs && j < 3; j++) in[j] = nd->inputs[j] >= 0 ? vname(net, nd->inputs[j], j == 0 ? b1 : j == 1 ? b2 : b3, 256) : "";
        switch (nd->op) {
        case IR_OP_INPUT: break;
        case IR_OP_PARAM:
            if (nd->role == IR_ROLE_ARCH) break;
            if (!values || !values[i]) { xfail(err, errlen, "no value for parameter '%s'", nd->name); goto out; }
            xo_tensor(&x, nd->name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, nd->ndim, nd->shape, values[i], 4);
            break;
        case IR_OP_EMBEDDING: {
            const char *gi[2] = {in[1], in[0]};
            xo_attr_i(&x, xo_node(&x, "Gather", out, 2, gi, out), "axis", 0);
            break;
        }
        case IR_OP_CONCAT: {
            const char *ci[IR_MAX_IATTR];
            char (*bufs)[256] = xo_alloc(&x, sizeof(*bufs) * (size_t)nd->n_inputs);
            if (!bufs) break;
            for (int j = 0; j < nd->n_inputs; j++) ci[j] = vname(net, nd->inputs[j], bufs[j], 256);
            xo_attr_i(&x, xo_node(&x, "Concat", out, nd->n_inputs, ci, out), "axis", 1);
            break;
        }
        case IR_OP_LINEAR:
            xo_attr_i(&x, xo_node(&x, "Gemm", out, nd->inputs[2] >= 0 ? 3 : 2, in, out), "transB", 1);
            break;
        case IR_OP_SLICE: {
            char s[300], e[300], a[300];
            snprintf(s, sizeof s, "%s.starts", out);
            snprintf(e, sizeof e, "%s.ends", out);
            snprintf(a, sizeof a, "%s.axes", out);
            int64_t one = 1, st = nd->iattr[IR_A_SLICE_START], en = st + nd->iattr[IR_A_SLICE_LEN], ax = 1;
            xo_tensor(&x, s, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &one, &st, 8);
            xo_tensor(&x, e, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &one, &en, 8);
            xo_tensor(&x, a, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &one, &ax, 8);
            const char *si[4] = {in[0], s, e, a};
            xo_node(&x, "Slice", out, 4, si, out);
            break;
        }
        case IR_OP_SIGMOID: xo_node(&x, "Sigmoid", out, 1, in, out); break;
        case IR_OP_TANH: xo_node(&x, "Tanh", out, 1, in, out); break;
        case IR_OP_RELU: xo_node(&x, "Relu", out, 1, in, out); break;
        case IR_OP_IDENTITY: xo_node(&x, "Identity", out, 1, in, out); break;
        case IR_OP_SUB: xo_node(&x, "Sub", out, 2, in, out); break;
        case IR_OP_MUL: xo_node(&x, "Mul", out, 2, in, out); break;
        case IR_OP_ADD: case IR_OP_MEAN: {
            const char *ci[IR_MAX_IATTR];
            char (*bufs)[256] = xo_alloc(&x, sizeof(*bufs) * (size_t)nd->n_inputs);
            if (!bufs) break;
            for (int j = 0; j < nd->n_inputs; j++) ci[j] = vname(net, nd->inputs[j], bufs[j], 256);
            xo_node(&x, nd->op == IR_OP_MEAN ? "Mean" : nd->n_inputs == 2 ? "Add" : "Sum", out, nd->n_inputs, ci, out);
            break;
        }
        default:
            xfail(err, errlen, "node '%s': op %s is not exported in a recurrent step (only derived cells export)", nd->name,
                  ir_op_name(nd->op));
            goto out;
        }
    }
    if (x.oom) { xfail(err, errlen, "out of memory"); goto out; }
    {
        Onnx__GraphProto gr;
        onnx__graph_proto__init(&gr);
        gr.name = "dartsc_rnn_step";
        gr.n_node = x.n_nodes;
        gr.node = x.nodes;
        gr.n_initializer = x.n_inits;
        gr.initializer = x.inits;
        Onnx__ValueInfoProto *ins[2] = {xo_value(&x, "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 0),
                                        xo_value(&x, "hidden", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, net->nhid)};
        Onnx__ValueInfoProto *outs[2] = {xo_value(&x, "logits", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, net->ntoken),
                                         xo_value(&x, "hidden_out", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, net->nhid)};
        if (x.oom || !ins[0] || !ins[1] || !outs[0] || !outs[1]) { xfail(err, errlen, "out of memory"); goto out; }
        gr.n_input = 2;
        gr.input = ins;
        gr.n_output = 2;
        gr.output = outs;
        Onnx__OperatorSetIdProto ops;
        onnx__operator_set_id_proto__init(&ops);
        ops.domain = "";
        ops.has_version = 1;
        ops.version = CG_ONNX_OPSET;
        Onnx__OperatorSetIdProto *opsp = &ops;
        Onnx__ModelProto m;
        onnx__model_proto__init(&m);
        m.has_ir_version = 1;
        m.ir_version = CG_ONNX_IR_VERSION;
        m.producer_name = "dartsc";
        m.n_opset_import = 1;
        m.opset_import = &opsp;
        m.graph = &gr;
        size_t len = onnx__model_proto__get_packed_size(&m);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) { xfail(err, errlen, "out of memory"); goto out; }
        onnx__model_proto__pack(&m, buf);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            xfail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
            free(buf);
            goto out;
        }
        free(buf);
    }
    rc = 0;
out:
    xo_free(&x);
    return rc;
}

/* ---- C ------------------------------------------------------------------------------------ */

static int64_t cols_of(const ir_node *nd) { return nd->ndim >= 2 ? ir_node_numel(nd) / nd->shape[0] : 1; }

/* C expression naming node i's buffer. */
static const char *cref(const ir_rnn_net *net, const char *P, int i, char *buf, size_t n) {
    const ir_node *nd = ir_graph_node(net->graph, i);
    if (i == net->ids[0]) snprintf(buf, n, "ids");
    else if (i == net->h0) snprintf(buf, n, "hidden");
    else if (i == net->logits[0]) snprintf(buf, n, "logits");
    else if (i == net->hT) snprintf(buf, n, "hidden_out");
    else if (nd->op == IR_OP_PARAM) snprintf(buf, n, "%s_w%d", P, i);
    else snprintf(buf, n, "%s_v%d", P, i);
    return buf;
}

int cg_rnn_c_write(const ir_rnn_net *net, const float *const *values, const char *dir, const char *name, int max_batch,
                   char *err, size_t errlen) {
    const ir_graph *g = net->graph;
    if (net->T != 1) return xfail(err, errlen, "recurrent export takes the one-step graph (T = 1), not T = %d", net->T);
    if (max_batch < 1) return xfail(err, errlen, "max batch must be positive");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.h", dir, name);
    FILE *h = fopen(path, "w");
    if (!h) return xfail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    fprintf(h, "/* %s.h — generated by dartsc: one step of a recurrent language model (embedding, cell, tied\n"
               " * decoder). Feed hidden_out back as hidden for the next token; start from zeros. */\n"
               "#ifndef %s_H\n#define %s_H\n#include <stdint.h>\n\n", name, name, name);
    fprintf(h, "#define %s_MAX_BATCH %d\n#define %s_NTOKEN %d\n#define %s_NHID %d\n\n", name, max_batch, name, net->ntoken,
            name, net->nhid);
    fprintf(h, "/* n <= %s_MAX_BATCH rows: ids (n), hidden (n, %d) -> logits (n, %d), hidden_out (n, %d).\n"
               " * Uses static buffers: not reentrant. */\n"
               "void %s_step(int n, const int32_t *ids, const float *hidden, float *logits, float *hidden_out);\n\n"
               "#endif\n", name, net->nhid, net->ntoken, net->nhid, name);
    if (fclose(h) != 0) return xfail(err, errlen, "%s: write failed", path);
    snprintf(path, sizeof path, "%s/%s.c", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return xfail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "/* %s.c — generated by dartsc (see %s.h). */\n#include <math.h>\n#include <stddef.h>\n#include \"%s.h\"\n\n",
            name, name, name);
    const char *P = name;
    char a[300], b[300], c[300], y[300], y2[300];
    int rc = 0;
    /* weights and buffers */
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op == IR_OP_PARAM) {
            if (nd->role == IR_ROLE_ARCH) continue;
            if (!values || !values[i]) { rc = xfail(err, errlen, "no value for parameter '%s'", nd->name); break; }
            int64_t k = ir_node_numel(nd);
            fprintf(f, "static const float %s_w%d[%lld] = { /* %s */\n", P, i, (long long)k, nd->name);
            for (int64_t e = 0; e < k; e++) fprintf(f, "%a,%s", (double)values[i][e], e % 8 == 7 ? "\n" : " ");
            fprintf(f, "\n};\n");
        } else if (nd->op != IR_OP_INPUT && i != net->logits[0] && i != net->hT) {
            fprintf(f, "static float %s_v%d[%lld]; /* %s */\n", P, i, (long long)(max_batch * cols_of(nd)), nd->name);
        }
    }
    fprintf(f, "\nvoid %s_step(int n, const int32_t *ids, const float *hidden, float *logits, float *hidden_out) {\n", P);
    for (int i = 0; i < ir_graph_num_nodes(g) && !rc; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op == IR_OP_INPUT || nd->op == IR_OP_PARAM) continue;
        int64_t C = cols_of(nd);
        cref(net, P, i, y, sizeof y);
        const char *x0 = cref(net, P, nd->inputs[0], a, sizeof a);
        fprintf(f, "    /* %s */\n", nd->name);
        switch (nd->op) {
        case IR_OP_EMBEDDING: {
            const ir_node *t = ir_graph_node(g, nd->inputs[1]);
            fprintf(f, "    for (int r = 0; r < n; r++) {\n        int id = %s[r] < 0 || %s[r] >= %lld ? 0 : %s[r];\n"
                       "        for (int k = 0; k < %lld; k++) %s[r * %lld + k] = %s[(ptrdiff_t)id * %lld + k];\n    }\n",
                    x0, x0, (long long)t->shape[0], x0, (long long)C, y, (long long)C, cref(net, P, nd->inputs[1], b, sizeof b),
                    (long long)C);
            break;
        }
        case IR_OP_CONCAT: {
            int64_t off = 0;
            for (int j = 0; j < nd->n_inputs; j++) {
                int64_t cj = cols_of(ir_graph_node(g, nd->inputs[j]));
                fprintf(f, "    for (int r = 0; r < n; r++) for (int k = 0; k < %lld; k++) %s[r * %lld + %lld + k] = %s[r * %lld + k];\n",
                        (long long)cj, y, (long long)C, (long long)off, cref(net, P, nd->inputs[j], b, sizeof b), (long long)cj);
                off += cj;
            }
            break;
        }
        case IR_OP_LINEAR: {
            int64_t I = cols_of(ir_graph_node(g, nd->inputs[0]));
            fprintf(f, "    for (int r = 0; r < n; r++)\n        for (int o = 0; o < %lld; o++) {\n"
                       "            const float *w = %s + (ptrdiff_t)o * %lld, *xr = %s + (ptrdiff_t)r * %lld;\n"
                       "            double s = %s;\n            for (int k = 0; k < %lld; k++) s += (double)w[k] * xr[k];\n"
                       "            %s[(ptrdiff_t)r * %lld + o] = (float)s;\n        }\n",
                    (long long)C, cref(net, P, nd->inputs[1], b, sizeof b), (long long)I, x0, (long long)I,
                    nd->inputs[2] >= 0 ? (snprintf(c, sizeof c, "%s[o]", cref(net, P, nd->inputs[2], y2, sizeof y2)), c) : "0.0",
                    (long long)I, y, (long long)C);
            break;
        }
        case IR_OP_SLICE: {
            int64_t Ci = cols_of(ir_graph_node(g, nd->inputs[0]));
            fprintf(f, "    for (int r = 0; r < n; r++) for (int k = 0; k < %lld; k++) %s[r * %lld + k] = %s[r * %lld + %lld + k];\n",
                    (long long)C, y, (long long)C, x0, (long long)Ci, (long long)nd->iattr[IR_A_SLICE_START]);
            break;
        }
        case IR_OP_SIGMOID: case IR_OP_TANH: case IR_OP_RELU: case IR_OP_IDENTITY: {
            const char *e = nd->op == IR_OP_SIGMOID ? "1.0f / (1.0f + expf(-v))" : nd->op == IR_OP_TANH ? "tanhf(v)"
                            : nd->op == IR_OP_RELU ? "(v > 0.0f ? v : 0.0f)" : "v";
            fprintf(f, "    for (int i = 0; i < n * %lld; i++) { float v = %s[i]; %s[i] = %s; }\n", (long long)C, x0, y, e);
            break;
        }
        case IR_OP_SUB: case IR_OP_MUL:
            fprintf(f, "    for (int i = 0; i < n * %lld; i++) %s[i] = %s[i] %c %s[i];\n", (long long)C, y, x0,
                    nd->op == IR_OP_SUB ? '-' : '*', cref(net, P, nd->inputs[1], b, sizeof b));
            break;
        case IR_OP_ADD: case IR_OP_MEAN:
            fprintf(f, "    for (int i = 0; i < n * %lld; i++) %s[i] = ", (long long)C, y);
            if (nd->op == IR_OP_MEAN) fputc('(', f);
            for (int j = 0; j < nd->n_inputs; j++)
                fprintf(f, "%s%s[i]", j ? " + " : "", cref(net, P, nd->inputs[j], b, sizeof b));
            if (nd->op == IR_OP_MEAN) fprintf(f, ") * %af", 1.0 / nd->n_inputs);
            fprintf(f, ";\n");
            break;
        default:
            rc = xfail(err, errlen, "node '%s': op %s is not exported in a recurrent step", nd->name, ir_op_name(nd->op));
        }
    }
    fprintf(f, "}\n");
    if (fclose(f) != 0 && !rc) rc = xfail(err, errlen, "%s: write failed", path);
    return rc;
}
