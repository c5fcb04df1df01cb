/* exec_desc.h — kernel descriptors from an rt_exec_node, shared by the CPU and CUDA
 * backends so that both read shapes and attributes the same way. */
#ifndef DARTSC_RT_EXEC_DESC_H
#define DARTSC_RT_EXEC_DESC_H

#include "backend.h"
#include "kernels/kdesc.h"

static inline kconv2d_desc conv_desc(const rt_exec_node *n) {
    kconv2d_desc d;
    d.N = (int)n->in[0].shape[0]; d.C = (int)n->in[0].shape[1];
    d.H = (int)n->in[0].shape[2]; d.W = (int)n->in[0].shape[3];
    d.K = (int)n->in[1].shape[0]; d.R = (int)n->in[1].shape[2]; d.S = (int)n->in[1].shape[3];
    d.stride_h = (int)n->iattr[IR_A_CONV_STRIDE_H]; d.stride_w = (int)n->iattr[IR_A_CONV_STRIDE_W];
    d.pad_h = (int)n->iattr[IR_A_CONV_PAD_H]; d.pad_w = (int)n->iattr[IR_A_CONV_PAD_W];
    d.dil_h = (int)n->iattr[IR_A_CONV_DIL_H]; d.dil_w = (int)n->iattr[IR_A_CONV_DIL_W];
    d.groups = (int)n->iattr[IR_A_CONV_GROUPS];
    d.P = (int)n->out.shape[2]; d.Q = (int)n->out.shape[3];
    return d;
}

static inline kpool_desc pool_desc(const rt_exec_node *n) {
    kpool_desc d;
    d.N = (int)n->in[0].shape[0]; d.C = (int)n->in[0].shape[1];
    d.H = (int)n->in[0].shape[2]; d.W = (int)n->in[0].shape[3];
    d.P = (int)n->out.shape[2]; d.Q = (int)n->out.shape[3];
    d.k = (int)n->iattr[IR_A_POOL_K]; d.stride = (int)n->iattr[IR_A_POOL_STRIDE]; d.pad = (int)n->iattr[IR_A_POOL_PAD];
    return d;
}

static inline kbn_desc bn_desc(const rt_exec_node *n) {
    kbn_desc d;
    d.N = (int)n->in[0].shape[0];
    d.C = (int)n->in[0].shape[1];
    d.HW = (int)(n->in[0].numel / ((int64_t)d.N * d.C));
    d.eps = n->fattr[IR_F_BN_EPS];
    d.momentum = n->fattr[IR_F_BN_MOMENTUM];
    d.sync = n->training || n->iattr[IR_A_BN_BATCH_STATS] ? n->bn_sync : NULL;
    return d;
}

/* Elements per (sample, channel) plane: product of dims from 2 on. */
static inline int plane(const rt_tref *t) {
    int64_t k = 1;
    for (int i = 2; i < t->ndim; i++) k *= t->shape[i];
    return (int)k;
}

#endif
