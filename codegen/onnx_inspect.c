/* onnx_inspect.c — the validating reader behind `dartsc inspect` (cg_onnx_inspect,
 * onnx.h).
 *
 * The file is never trusted: protobuf-c rejects malformed wire data; everything the
 * summary relies on (sizes, dims, names) is checked before printing; and every node is
 * checked against ONNX's operator definitions at the model's opset (proto/op_schemas.h,
 * a table generated from onnx's own): the op exists in its domain at that opset and is not
 * deprecated there, its input and output counts are allowed, no required input or output
 * is empty, every attribute is declared by the op (or the op accepts undeclared ones),
 * typed, of the declared type and holds one value of it, and every required attribute is
 * present. These are the checks onnx.checker's check_node makes. Nodes of graphs held in
 * attributes (If, Loop, Scan bodies) get the same checks. Nodes of a domain ONNX does not
 * define (a vendor's) cannot be checked; like onnx.checker, inspect accepts them and
 * says how many there were.
 *
 * The summary splits the initializers by what the nodes read them as: buffers (the
 * running mean and variance of BatchNormalization), constants (tensors of integer or
 * other non-float types, and tensors read only where ONNX marks an input
 * non-differentiable: shapes, slice bounds, indices) and weights (the rest). */
#include "onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/onnx_pb.h"
#include "proto/op_schemas.h"
#include "smap.h"

#define IX_MAX_DIMS 16
#define IX_MAX_NUMEL ((int64_t)1 << 40)
#define IX_MAX_DEPTH 32 /* graphs nested in attributes */

/* What nodes read an initializer as (bits; the summary's split). */
enum { IX_USE_WEIGHT = 1, IX_USE_BUFFER = 2, IX_USE_CONST = 4 };

typedef struct ix {
    const char *label;
    char *err;
    size_t errlen;
    const Onnx__ModelProto *mp;
    smap inits;             /* initializer name -> index */
    unsigned char *uses;    /* per initializer: IX_USE_* bits */
    size_t vendor_nodes;    /* nodes of domains without definitions (not checked) */
    const char *vendor;     /* the first such domain */
    int newer_opset;        /* 1: an imported opset is newer than the table's */
} ix;

static int ix_fail(ix *c, const char *fmt, ...) {
    char msg[800];
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

/* ---- operators against ONNX's definitions ------------------------------------------------ */

static const char *attr_type_name(int t) {
    static const char *const names[] = {"undefined", "float",  "int",           "string",         "tensor",
                                        "graph",     "floats", "ints",          "strings",        "tensors",
                                        "graphs",    "sparse_tensor", "sparse_tensors", "type_proto", "type_protos"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

static int is_default_domain(const char *d) { return !d || !*d || !strcmp(d, "ai.onnx"); }

static const char *domain_name(const char *d) { return is_default_domain(d) ? "ai.onnx" : d; }

/* The opset version the model imports for a node's domain; -1 when it imports none. As
 * onnx.checker: a node of the default domain "" finds an import named "" or "ai.onnx";
 * any other name (even "ai.onnx" on a node) only an import of exactly that name. */
static int64_t ix_opset(const Onnx__ModelProto *mp, const char *domain) {
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain;
        if (!*safe(domain) ? is_default_domain(d) : !strcmp(safe(d), domain)) return mp->opset_import[i]->version;
    }
    return -1;
}

/* Checks one attribute's form, as onnx.checker's check_attribute: a name, a type, and at
 * most one value field, which matches the type. */
static int ix_attr_form(ix *c, const char *who, const Onnx__AttributeProto *a) {
    const char *nm = safe(a->name);
    if (!*nm) return ix_fail(c, "%s has an attribute without a name", who);
    if (!a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return ix_fail(c, "%s: attribute '%.60s' has no type (untyped attributes are invalid)", who, nm);
    struct {
        int present, type;
    } fields[] = {
        {a->has_f, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT},
        {a->has_i, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT},
        {a->has_s, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING},
        {a->t != NULL, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR},
        {a->g != NULL, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH},
        {a->sparse_tensor != NULL, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR},
        {a->tp != NULL, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO},
        {a->n_floats > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS},
        {a->n_ints > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS},
        {a->n_strings > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS},
        {a->n_tensors > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS},
        {a->n_graphs > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS},
        {a->n_sparse_tensors > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS},
        {a->n_type_protos > 0, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS},
    };
    int used = 0;
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if (!fields[k].present) continue;
        if (fields[k].type != (int)a->type)
            return ix_fail(c, "%s: attribute '%.60s' is of type %s but holds a %s value", who, nm,
                           attr_type_name((int)a->type), attr_type_name(fields[k].type));
        used++;
    }
    if (used > 1) return ix_fail(c, "%s: attribute '%.60s' holds more than one value", who, nm);
    if (a->ref_attr_name && *a->ref_attr_name)
        return ix_fail(c, "%s: attribute '%.60s' refers to a function's attribute ('%.60s') outside a function", who, nm,
                       a->ref_attr_name);
    return 0;
}

/* The names of s's attributes, comma-separated, into buf (for messages). */
static const char *attr_list(const pb_op_schema *s, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < s->n_attr && o + 1 < len; k++) {
        int n = snprintf(buf + o, len - o, "%s%s", k ? ", " : "", pb_op_attrs[s->attr + k].name);
        if (n < 0) break;
        o += (size_t)n;
    }
    if (o >= len && len > 4) memcpy(buf + len - 4, "...", 4);
    return s->n_attr ? buf : "none";
}

static int count_allowed(int n, int lo, int hi, uint32_t mask) {
    if (n < lo || n > hi) return 0;
    return n >= 32 || ((mask >> n) & 1u);
}

/* The schema a node's op resolves to at the model's opset: NULL with *vendor = 1 for a
 * domain ONNX does not define; otherwise a failure names what is wrong. */
static int ix_schema(ix *c, const char *who, const Onnx__NodeProto *nd, const pb_op_schema **out, int *vendor) {
    *out = NULL;
    *vendor = 0;
    const char *dom = domain_name(nd->domain), *op = nd->op_type;
    if (!strcmp(safe(nd->domain), "ai.onnx")) /* onnx.checker finds no operator there */
        return ix_fail(c, "%s: domain 'ai.onnx' on a node: ONNX's own operators take the empty domain \"\"", who);
    int64_t opset = ix_opset(c->mp, nd->domain);
    if (opset < 0) return ix_fail(c, "%s: its domain '%.60s' is not imported (no opset_import entry)", who, dom);
    const pb_op_domain *d = pb_op_domain_find(nd->domain);
    if (!d) {
        *vendor = 1;
        return 0;
    }
    char newer[160] = "";
    if (opset > d->max_version)
        snprintf(newer, sizeof newer, "; dartsc's operator table is onnx %s's, which knows %s up to opset %d",
                 pb_op_onnx_version, dom, d->max_version);
    const pb_op_schema *s = pb_op_schema_find(d->name, op, opset);
    if (!s) {
        const pb_op_schema *any = pb_op_schema_any(d->name, op, 0);
        if (any)
            return ix_fail(c, "%s: %s has no '%.40s' at opset %" PRId64 " (it exists from opset %d)", who, dom, op,
                           opset, any->since);
        any = pb_op_schema_any(d->name, op, 1);
        if (any)
            return ix_fail(c, "%s: unknown op type '%.40s' in %s (op types are case-sensitive: did you mean '%s'?)", who,
                           op, dom, any->name);
        return ix_fail(c, "%s: unknown op type '%.40s': not an operator of %s opset %" PRId64 "%s", who, op, dom, opset,
                       newer);
    }
    if (s->deprecated)
        return ix_fail(c, "%s: '%s' is deprecated in %s opset %" PRId64 " (since opset %d)", who, op, dom, opset,
                       s->since);
    *out = s;
    return 0;
}

/* A node against its schema s (op-s->since names the definition in messages). */
static int ix_node_against(ix *c, const char *who, const Onnx__NodeProto *nd, const pb_op_schema *s) {
    if (!count_allowed((int)(nd->n_input > 1000000 ? 1000000 : nd->n_input), s->min_in, s->max_in, s->in_counts))
        return ix_fail(c, "%s: %zu inputs, which %s-%d does not allow (%d to %d)", who, nd->n_input, s->name, s->since,
                       s->min_in, s->max_in);
    if (!count_allowed((int)(nd->n_output > 1000000 ? 1000000 : nd->n_output), s->min_out, s->max_out, s->out_counts))
        return ix_fail(c, "%s: %zu outputs, which %s-%d does not allow (%d to %d)", who, nd->n_output, s->name,
                       s->since, s->min_out, s->max_out);
    for (int io = 0; io < 2; io++) {
        size_t n = io ? nd->n_output : nd->n_input;
        char **names = io ? nd->output : nd->input;
        int nf = io ? s->n_out : s->n_in;
        const pb_op_param *f = &pb_op_params[s->param + (io ? s->n_in : 0)];
        for (size_t j = 0; j < n && nf > 0; j++) {
            const pb_op_param *p = &f[j < (size_t)nf ? j : (size_t)nf - 1];
            if (j >= (size_t)nf && p->option != PB_OP_VARIADIC) break; /* counted above */
            if (p->option == PB_OP_SINGLE && !*safe(names[j]))
                return ix_fail(c, "%s: %s %zu ('%s' of %s-%d) is required but empty", who, io ? "output" : "input", j,
                               p->name, s->name, s->since);
        }
    }
    for (size_t k = 0; k < nd->n_attribute; k++) {
        const Onnx__AttributeProto *a = nd->attribute[k];
        const char *nm = safe(a->name);
        const pb_op_attr *want = pb_op_schema_attr(s, nm);
        if (!want) {
            if (s->unchecked_attrs || (nm[0] == '_' && nm[1] == '_')) continue; /* ONNX: "__" names are internal */
            char list[400];
            return ix_fail(c, "%s: unknown attribute '%.60s' for %s-%d (its attributes: %s)", who, nm, s->name, s->since,
                           attr_list(s, list, sizeof list));
        }
        if ((int)a->type != want->type)
            return ix_fail(c, "%s: attribute '%.60s' is of type %s; %s-%d declares it %s", who, nm,
                           attr_type_name((int)a->type), s->name, s->since, attr_type_name(want->type));
        int holds = 1;
        switch (want->type) { /* scalars may be left at their default; these may not */
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: holds = a->t != NULL; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: holds = a->g != NULL; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: holds = a->sparse_tensor != NULL; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: holds = a->tp != NULL; break;
        default: break;
        }
        if (!holds) return ix_fail(c, "%s: attribute '%.60s' (%s) holds no value", who, nm, attr_type_name(want->type));
    }
    for (int k = 0; k < s->n_attr; k++) {
        const pb_op_attr *want = &pb_op_attrs[s->attr + k];
        if (!want->required) continue;
        size_t j = 0;
        while (j < nd->n_attribute && strcmp(safe(nd->attribute[j]->name), want->name)) j++;
        if (j == nd->n_attribute)
            return ix_fail(c, "%s: the required attribute '%s' (%s) of %s-%d is missing", who, want->name,
                           attr_type_name(want->type), s->name, s->since);
    }
    return 0;
}

/* What input j of a node with schema s (NULL: a vendor's op) reads: IX_USE_*. */
static int input_use(const Onnx__NodeProto *nd, const pb_op_schema *s, size_t j) {
    if (!s) return IX_USE_WEIGHT;
    if (!*s->domain && !strcmp(s->name, "BatchNormalization") && (j == 3 || j == 4)) return IX_USE_BUFFER;
    if (!s->n_in) return IX_USE_WEIGHT;
    const pb_op_param *p = &pb_op_params[s->param + (j < (size_t)s->n_in ? j : (size_t)s->n_in - 1)];
    return p->differentiable ? IX_USE_WEIGHT : IX_USE_CONST;
}

static int ix_graph_ops(ix *c, const Onnx__GraphProto *g, const char *where, int depth);

/* Checks node i of a graph (where: "" for the main graph, else which subgraph) against
 * its operator's definition, marks the initializers it reads, and checks the graphs its
 * attributes hold. *schema receives the definition (NULL for a vendor's op). */
static int ix_node(ix *c, const Onnx__NodeProto *nd, size_t i, const char *where, int depth, const pb_op_schema **schema) {
    char who[300];
    snprintf(who, sizeof who, "node #%zu ('%.60s', %.40s)%s", i, safe(nd->name), nd->op_type, where);
    for (size_t k = 0; k < nd->n_attribute; k++) {
        if (ix_attr_form(c, who, nd->attribute[k])) return -1;
        for (size_t j = 0; j < k; j++)
            if (!strcmp(safe(nd->attribute[j]->name), safe(nd->attribute[k]->name)))
                return ix_fail(c, "%s: attribute '%.60s' appears twice", who, safe(nd->attribute[k]->name));
    }
    int vendor;
    if (ix_schema(c, who, nd, schema, &vendor)) return -1;
    if (vendor) {
        if (!c->vendor_nodes++) c->vendor = nd->domain;
    } else if (ix_node_against(c, who, nd, *schema)) {
        const pb_op_domain *d = pb_op_domain_find(nd->domain);
        int64_t opset = ix_opset(c->mp, nd->domain);
        size_t n = strlen(c->err);
        if (d && opset > d->max_version && n + 1 < c->errlen) /* judged by an older definition than the model's */
            snprintf(c->err + n, c->errlen - n, " (the model imports %s opset %" PRId64 "; dartsc's operator table is "
                     "onnx %s's, which knows it up to opset %d)", domain_name(nd->domain), opset, pb_op_onnx_version,
                     d->max_version);
        return -1;
    }
    for (size_t j = 0; j < nd->n_input; j++) {
        const int *k = nd->input[j] && *nd->input[j] ? smap_get(&c->inits, nd->input[j]) : NULL;
        if (k) c->uses[*k] |= (unsigned char)input_use(nd, *schema, j);
    }
    for (size_t k = 0; k < nd->n_attribute; k++) {
        const Onnx__AttributeProto *a = nd->attribute[k];
        size_t ng = a->g ? 1 : a->n_graphs;
        for (size_t j = 0; j < ng; j++) {
            char sub[400];
            snprintf(sub, sizeof sub, " in graph '%.40s' (attribute '%.40s' of node #%zu%s)",
                     safe((a->g ? a->g : a->graphs[j])->name), safe(a->name), i, where);
            if (depth >= IX_MAX_DEPTH) return ix_fail(c, "graphs nested more than %d deep%s", IX_MAX_DEPTH, sub);
            if (ix_graph_ops(c, a->g ? a->g : a->graphs[j], sub, depth + 1)) return -1;
        }
    }
    return 0;
}

/* The operator checks over every node of a graph held in an attribute. */
static int ix_graph_ops(ix *c, const Onnx__GraphProto *g, const char *where, int depth) {
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        const pb_op_schema *s;
        if (!nd->op_type || !*nd->op_type) return ix_fail(c, "node #%zu%s has no op type", i, where);
        if (ix_node(c, nd, i, where, depth, &s)) return -1;
    }
    return 0;
}

/* ---- the model ------------------------------------------------------------------------------ */

/* Initializer totals by kind (the summary's split). */
typedef struct ix_totals {
    int64_t tensors[3], values[3], bytes; /* [0] weights, [1] buffers, [2] constants */
} ix_totals;

static int is_float_type(int dt) {
    return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 || dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

static int ix_opsets(ix *c, const Onnx__ModelProto *mp) {
    if (!mp->n_opset_import) return ix_fail(c, "no operator set imported");
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->has_version || o->version < 1 || o->version > 1000)
            return ix_fail(c, "operator set import #%zu has no plausible version", i);
        for (size_t j = 0; j < i; j++)
            if (is_default_domain(o->domain) ? is_default_domain(mp->opset_import[j]->domain)
                                             : !strcmp(safe(o->domain), safe(mp->opset_import[j]->domain)))
                return ix_fail(c, "operator set '%.60s' is imported twice (versions %" PRId64 " and %" PRId64 ")",
                               domain_name(o->domain), mp->opset_import[j]->version, o->version);
        const pb_op_domain *d = pb_op_domain_find(o->domain);
        if (d && o->version > d->max_version) c->newer_opset = 1;
    }
    return 0;
}

/* Validates the model; fills defined (name -> 1 input, 2 initializer, 3 node output),
 * ops (op type -> count) and the initializer totals. */
static int ix_validate(ix *c, const Onnx__ModelProto *mp, smap *defined, smap *ops, ix_totals *tot) {
    if (!mp->has_ir_version) return ix_fail(c, "no IR version (not an ONNX model?)");
    if (mp->ir_version < 1 || mp->ir_version > 64) return ix_fail(c, "IR version %" PRId64 " is not plausible", mp->ir_version);
    if (ix_opsets(c, mp)) return -1;
    const Onnx__GraphProto *g = mp->graph;
    if (!g) return ix_fail(c, "no graph (truncated?)");
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (!mp->metadata_props[i]->key) return ix_fail(c, "metadata entry #%zu has no key", i);
    /* names defined before the first node: graph inputs and initializers */
    for (size_t i = 0; i < g->n_input; i++) {
        if (ix_value_info(c, g->input[i], "input")) return -1;
        if (!smap_put(defined, g->input[i]->name, 1)) return ix_fail(c, "out of memory");
    }
    c->uses = calloc(g->n_initializer ? g->n_initializer : 1, 1);
    if (!c->uses) return ix_fail(c, "out of memory");
    int64_t *numel = calloc(g->n_initializer ? g->n_initializer : 1, sizeof *numel);
    if (!numel) return ix_fail(c, "out of memory");
    int rc = -1;
    for (size_t i = 0; i < g->n_initializer; i++) {
        if (ix_tensor(c, g->initializer[i], i, &numel[i])) goto out;
        const char *nm = g->initializer[i]->name;
        int *seen = smap_get(defined, nm);
        if (seen && *seen == 2) {
            ix_fail(c, "initializer '%.100s' is defined twice", nm);
            goto out;
        }
        int *v = smap_put(defined, nm, 2);
        if (!v || !smap_put(&c->inits, nm, (int)i)) {
            ix_fail(c, "out of memory");
            goto out;
        }
        *v = 2;
    }
    if (g->n_sparse_initializer) {
        ix_fail(c, "sparse initializers are not supported");
        goto out;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        if (!nd->op_type || !*nd->op_type) {
            ix_fail(c, "node #%zu has no op type", i);
            goto out;
        }
        for (size_t j = 0; j < nd->n_input; j++) {
            const char *in = nd->input[j];
            if (in && *in && !smap_get(defined, in)) {
                ix_fail(c, "node #%zu ('%.60s', %.40s) reads '%.100s', which nothing defines before it", i,
                        safe(nd->name), nd->op_type, in);
                goto out;
            }
        }
        if (!nd->n_output) {
            ix_fail(c, "node #%zu ('%.60s', %.40s) has no output", i, safe(nd->name), nd->op_type);
            goto out;
        }
        for (size_t j = 0; j < nd->n_output; j++) {
            const char *o = nd->output[j];
            if (!o || !*o) continue;
            if (smap_get(defined, o)) {
                ix_fail(c, "node #%zu ('%.60s') redefines '%.100s'", i, safe(nd->name), o);
                goto out;
            }
            if (!smap_put(defined, o, 3)) {
                ix_fail(c, "out of memory");
                goto out;
            }
        }
        const pb_op_schema *s;
        if (ix_node(c, nd, i, "", 0, &s)) goto out;
        int *cnt = smap_put(ops, nd->op_type, 0);
        if (!cnt) {
            ix_fail(c, "out of memory");
            goto out;
        }
        ++*cnt;
    }
    if (!g->n_output) {
        ix_fail(c, "the graph has no outputs");
        goto out;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        if (ix_value_info(c, g->output[i], "output")) goto out;
        if (!smap_get(defined, g->output[i]->name)) {
            ix_fail(c, "graph output '%.100s' is never computed", g->output[i]->name);
            goto out;
        }
    }
    memset(tot, 0, sizeof *tot);
    for (size_t i = 0; i < g->n_initializer; i++) {
        int dt = g->initializer[i]->data_type, u = c->uses[i];
        int kind = u & IX_USE_BUFFER ? 1 : (u & IX_USE_WEIGHT) && is_float_type(dt) ? 0 : 2;
        tot->tensors[kind]++;
        tot->values[kind] += numel[i];
        tot->bytes += numel[i] * (int64_t)dtype_size(dt);
    }
    rc = 0;
out:
    free(numel);
    return rc;
}

static void ix_print(FILE *f, const ix *c, size_t len, const Onnx__ModelProto *mp, const smap *defined,
                     const smap *ops, const ix_totals *t) {
    const char *label = c->label;
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
    fprintf(f, "  initializers: %zu, %" PRId64 " values (%.2f MiB)\n", g->n_initializer,
            t->values[0] + t->values[1] + t->values[2], (double)t->bytes / (1024.0 * 1024.0));
    static const char *const kinds[3] = {"weights", "buffers", "constants"};
    static const char *const what[3] = {"", " (batch-norm running mean and variance)",
                                        " (integer tensors, and tensors read only as shapes, bounds or indices)"};
    for (int k = 0; k < 3; k++)
        fprintf(f, "    %-9s %" PRId64 " in %" PRId64 " tensor%s%s\n", kinds[k], t->values[k], t->tensors[k],
                t->tensors[k] == 1 ? "" : "s", t->tensors[k] ? what[k] : "");
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
    fprintf(f, "  operators: checked against onnx %s's definitions%s\n", pb_op_onnx_version,
            c->newer_opset ? " (an imported opset is newer than they are: checked against the newest they have)" : "");
    if (c->vendor_nodes) {
        fprintf(f, "    %zu node%s of domains without ONNX definitions (the first: ", c->vendor_nodes,
                c->vendor_nodes == 1 ? "" : "s");
        print_safe(f, c->vendor, 60);
        fputs(") not checked\n", f);
    }
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

/* ---- nesting depth, before protobuf-c sees the bytes ---------------------------------------- */

#define IX_MAX_NESTING 100 /* messages inside messages: protobuf's own default recursion limit */

static int wire_varint(const uint8_t *b, size_t end, size_t *pos, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *pos < end; shift += 7) {
        uint8_t x = b[(*pos)++];
        *v |= (uint64_t)(x & 0x7f) << shift;
        if (!(x & 0x80)) return 0;
    }
    return -1;
}

/* The deepest nesting of messages in buf, walked iteratively over the wire format with
 * the ModelProto descriptors (protobuf-c's unpacker recurses once per level, so a file
 * of a million nested graphs would overflow the stack). Stops early, returning the depth
 * so far, where the bytes are malformed: the unpacker refuses those itself. */
static int wire_depth(const uint8_t *b, size_t len, int limit) {
    struct {
        const ProtobufCMessageDescriptor *desc;
        size_t end;
    } st[IX_MAX_NESTING + 2];
    int top = 0, deepest = 0;
    st[0].desc = &onnx__model_proto__descriptor;
    st[0].end = len;
    size_t pos = 0;
    while (top >= 0) {
        if (pos >= st[top].end) {
            if (pos > st[top].end) return deepest; /* a field ran past its message */
            top--;
            continue;
        }
        uint64_t tag, n;
        if (wire_varint(b, st[top].end, &pos, &tag)) return deepest;
        switch (tag & 7) {
        case 0:
            if (wire_varint(b, st[top].end, &pos, &n)) return deepest;
            break;
        case 1: pos += 8; break;
        case 5: pos += 4; break;
        case 2: {
            if (wire_varint(b, st[top].end, &pos, &n) || n > st[top].end - pos) return deepest;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= 0xffffffffu ? protobuf_c_message_descriptor_get_field(st[top].desc, (unsigned)(tag >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (top + 1 > limit) return top + 1;
                top++;
                st[top].desc = f->descriptor;
                st[top].end = pos + (size_t)n;
                if (top > deepest) deepest = top;
            } else {
                pos += (size_t)n;
            }
            break;
        }
        default: return deepest; /* groups (3, 4) and invalid wire types */
        }
    }
    return deepest;
}

int cg_onnx_inspect_buf(const uint8_t *buf, size_t len, const char *label, FILE *out, char *err, size_t errlen) {
    ix c = {.label = label ? label : "(buffer)", .err = err, .errlen = errlen};
    if (len == 0) return ix_fail(&c, "empty file");
    if (len > 0x7fffffffu) return ix_fail(&c, "%zu bytes: over protobuf's 2 GiB limit", len);
    if (wire_depth(buf, len, IX_MAX_NESTING) > IX_MAX_NESTING)
        return ix_fail(&c, "messages nested more than %d deep (graphs inside graphs?): refused", IX_MAX_NESTING);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) return ix_fail(&c, "not a valid ONNX model (protobuf decoding failed: truncated or corrupt)");
    c.mp = mp;
    smap defined = {0}, ops = {0};
    ix_totals tot;
    int rc = ix_validate(&c, mp, &defined, &ops, &tot);
    if (rc == 0 && out) ix_print(out, &c, len, mp, &defined, &ops, &tot);
    smap_free(&defined);
    smap_free(&ops);
    smap_free(&c.inits);
    free(c.uses);
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
