/* ir_internal.h — the graph's private layout, shared by the files of ir/ only. */
#ifndef DARTSC_IR_INTERNAL_H
#define DARTSC_IR_INTERNAL_H

#include "ir.h"

typedef struct ir_chunk {
    struct ir_chunk *next;
    _Alignas(16) unsigned char data[];
} ir_chunk;

struct ir_graph {
    const char *name;
    ir_node *nodes;
    int n_nodes, cap;
    int reused; /* nodes a builder reused instead of building (ir_graph_reuse): later seqs count them */
    ir_loc loc;
    ir_chunk *chunk; /* arena for names and input lists, freed with the graph */
    size_t chunk_used, chunk_cap;
    char error[512];
};

/* Shape of op applied to inputs; 0, or -1 with a message in err. */
int ir_infer_shape(const ir_graph *g, ir_op op, int n_in, const int *in, const int64_t *ia, const float *fa,
                   int *ndim, int64_t *shape, char *err, size_t errlen);

#endif
