/* op_schemas.h — ONNX's operator schemas as a C table, for `dartsc inspect`.
 *
 * The table (pb_op_schemas, pb_op_params, pb_op_attrs, pb_op_domains) is generated at
 * build time by proto/gen_op_schemas.py from the operator definitions of the installed
 * onnx (Debian's python3-onnx: onnx 1.12, default-domain opsets 1..17): every version of
 * every operator of the domains "" (ai.onnx), ai.onnx.ml, ai.onnx.training and
 * ai.onnx.preview.training. op_schemas_find.c looks schemas up the way ONNX's checker
 * does: the newest definition whose since_version is at most the model's opset.
 *
 * Usage:
 *   const pb_op_domain *d = pb_op_domain_find(node->domain);         // NULL: not ONNX's
 *   const pb_op_schema *s = pb_op_schema_find(d->name, "Conv", 13);    // Conv-11
 *   for (int i = 0; s && i < s->n_attr; i++) puts(pb_op_attrs[s->attr + i].name);
 */
#ifndef DARTSC_PROTO_OP_SCHEMAS_H
#define DARTSC_PROTO_OP_SCHEMAS_H

#include <stddef.h>
#include <stdint.h>

enum { PB_OP_SINGLE = 0, PB_OP_OPTIONAL = 1, PB_OP_VARIADIC = 2 };

/* A formal input or output: option is PB_OP_SINGLE/OPTIONAL/VARIADIC; differentiable
 * is ONNX's differentiation category (0: non-differentiable or unknown, e.g. the starts
 * of a Slice or the shape of a Reshape). */
typedef struct pb_op_param {
    const char *name;
    unsigned char option, differentiable;
} pb_op_param;

/* An attribute: type is AttributeProto's (ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__*). */
typedef struct pb_op_attr {
    const char *name;
    unsigned char type, required;
} pb_op_attr;

typedef struct pb_op_schema {
    const char *domain, *name; /* domain "" is ai.onnx */
    int since;                 /* the opset version this definition starts at */
    unsigned char deprecated;
    unsigned char unchecked_attrs; /* 1: attributes it does not declare are accepted */
    int min_in, max_in, min_out, max_out;
    uint32_t in_counts, out_counts; /* bit k: k inputs/outputs allowed (k < 32; above: the range) */
    int n_in, n_out, n_attr;        /* formal inputs, outputs, attributes (sorted by name) */
    int param, attr;                /* first of them: pb_op_params[param ..] inputs then outputs,
                                       pb_op_attrs[attr ..] */
} pb_op_schema;

typedef struct pb_op_domain {
    const char *name;
    int min_version, max_version; /* the opsets this onnx knows */
} pb_op_domain;

extern const char pb_op_onnx_version[]; /* the onnx release the table came from */
extern const pb_op_schema pb_op_schemas[];
extern const size_t pb_op_schemas_n;
extern const pb_op_param *const pb_op_params;
extern const pb_op_attr *const pb_op_attrs;
extern const pb_op_domain pb_op_domains[];
extern const size_t pb_op_domains_n;

/* The table's entry for a model's domain name: "" and "ai.onnx" are the default domain.
 * NULL: a domain ONNX does not define (a vendor's). */
const pb_op_domain *pb_op_domain_find(const char *domain);

/* The definition of op in domain (a pb_op_domain's name) that a model importing opset
 * version `opset` uses: the one with the largest since <= opset. NULL when there is none
 * (the op does not exist in that domain at that opset). */
const pb_op_schema *pb_op_schema_find(const char *domain, const char *op, int64_t opset);

/* The oldest definition of op in domain (any version), NULL when the name is unknown:
 * for messages ("exists from opset 18"). With fold_case, the names compare
 * case-insensitively ("conv" finds Conv). */
const pb_op_schema *pb_op_schema_any(const char *domain, const char *op, int fold_case);

/* The attribute name of schema s, NULL when it declares none of that name. */
const pb_op_attr *pb_op_schema_attr(const pb_op_schema *s, const char *name);

#endif
