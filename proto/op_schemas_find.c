/* op_schemas_find.c — lookups in the generated operator table (see op_schemas.h). */
#include "op_schemas.h"

#include <string.h>
#include <strings.h>

const pb_op_domain *pb_op_domain_find(const char *domain) {
    if (!domain || !strcmp(domain, "ai.onnx")) domain = "";
    for (size_t i = 0; i < pb_op_domains_n; i++)
        if (!strcmp(pb_op_domains[i].name, domain)) return &pb_op_domains[i];
    return NULL;
}

static int key_cmp(const pb_op_schema *s, const char *domain, const char *op) {
    int c = strcmp(s->domain, domain);
    return c ? c : strcmp(s->name, op);
}

/* Index of the first schema whose (domain, name) is not below (domain, op). */
static size_t lower_bound(const char *domain, const char *op) {
    size_t lo = 0, hi = pb_op_schemas_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(&pb_op_schemas[mid], domain, op) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

const pb_op_schema *pb_op_schema_find(const char *domain, const char *op, int64_t opset) {
    const pb_op_schema *best = NULL;
    for (size_t i = lower_bound(domain, op); i < pb_op_schemas_n && !key_cmp(&pb_op_schemas[i], domain, op); i++)
        if (pb_op_schemas[i].since <= opset) best = &pb_op_schemas[i]; /* ascending since */
    return best;
}

const pb_op_schema *pb_op_schema_any(const char *domain, const char *op, int fold_case) {
    if (!fold_case) {
        size_t i = lower_bound(domain, op);
        return i < pb_op_schemas_n && !key_cmp(&pb_op_schemas[i], domain, op) ? &pb_op_schemas[i] : NULL;
    }
    for (size_t i = 0; i < pb_op_schemas_n; i++)
        if (!strcmp(pb_op_schemas[i].domain, domain) && !strcasecmp(pb_op_schemas[i].name, op)) return &pb_op_schemas[i];
    return NULL;
}

const pb_op_attr *pb_op_schema_attr(const pb_op_schema *s, const char *name) {
    int lo = 0, hi = s->n_attr; /* sorted by name */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(pb_op_attrs[s->attr + mid].name, name);
        if (!c) return &pb_op_attrs[s->attr + mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
