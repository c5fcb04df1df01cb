/* backend_cpu.c — the CPU backend: host memory and one switch from IR ops to the
 * kernels of kernels/cpu. The CUDA backend (runtime/cuda/) mirrors this file case for case. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, pthread_setaffinity_np */
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "exec_desc.h"
#include "kernels/cpu/kcpu.h"

#if defined(__linux__) && defined(_OPENMP)
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#endif

static int cpu_pinned;
int rt_cpu_pinned_threads(void) { return cpu_pinned; }
int rt_cpu_num_threads(void) { return kcpu_num_threads(); }
float rt_rng_uniform(uint64_t seed, uint64_t idx) { return krng_uniform(seed, idx); }

int rt_cpu_pin_threads(void) {
    cpu_pinned = 0;
#if defined(__linux__) && defined(_OPENMP)
    if (getenv("DARTSC_NO_PIN") || getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || getenv("GOMP_CPU_AFFINITY"))
        return 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
    int cpus[CPU_SETSIZE], ncpu = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed)) cpus[ncpu++] = c;
    const int nt = omp_get_max_threads();
    if (nt < 2 || nt > ncpu) return 0;
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(+ : failed)
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[omp_get_thread_num()], &one);
        failed += pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0;
    }
    if (failed) { /* undo: every thread back to the whole allowed set */
#pragma omp parallel num_threads(nt)
        (void)pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed);
        return 0;
    }
    return cpu_pinned = nt;
#else
    return 0;
#endif
}

/* The machine's memory from /proc/meminfo (Linux): available (MemAvailable: free plus
 * what the kernel can reclaim), physical (MemTotal) and free swap; from sysconf where
 * there is no such file (available: the free pages, no swap). 0 on success. */
static int host_memory(size_t *avail, size_t *total, size_t *swap_free) {
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long a = 0, t = 0, sw = 0;
    int got = 0;
    if (f) {
        char line[128];
        unsigned long long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) a = v, got |= 1;
            else if (sscanf(line, "MemTotal: %llu kB", &v) == 1) t = v, got |= 2;
            else if (sscanf(line, "SwapFree: %llu kB", &v) == 1) sw = v;
        }
        fclose(f);
    }
    if (got == 3) {
        *avail = (size_t)a << 10, *total = (size_t)t << 10, *swap_free = (size_t)sw << 10;
        return 0;
    }
    const long pg = sysconf(_SC_PAGESIZE), ph = sysconf(_SC_PHYS_PAGES), av = sysconf(_SC_AVPHYS_PAGES);
    if (pg <= 0 || ph <= 0 || av < 0) return -1;
    *avail = (size_t)av * (size_t)pg, *total = (size_t)ph * (size_t)pg, *swap_free = 0;
    return 0;
}
static int cpu_mem_info(rt_backend *be, size_t *free_bytes, size_t *total_bytes) {
    (void)be;
    size_t sw;
    return host_memory(free_bytes, total_bytes, &sw);
}

static void *cpu_alloc(rt_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    /* Linux grants an allocation larger than the memory there is (overcommit) and kills
     * the process when it touches the pages: refuse one larger than what is available,
     * swap included, so that the plan can say so (checked from 1 GiB up). */
    size_t avail, total, swap_free;
    if (bytes >= ((size_t)1 << 30) && host_memory(&avail, &total, &swap_free) == 0 && bytes > avail + swap_free)
        return NULL;
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64)) return NULL;
    return p;
}
static void cpu_free(rt_backend *be, void *p) { (void)be; free(p); }
static void cpu_copy_bytes(rt_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (dst != src) memcpy(dst, src, bytes);
}
static void cpu_memset0(rt_backend *be, void *p, size_t bytes) { (void)be; kcpu_zero_bytes(p, bytes); }
static int cpu_supports(rt_backend *be, ir_op op) { (void)be; return (unsigned)op < IR_OP_COUNT; }

#define F(t) ((float *)(t).data)
#define I32(t) ((const int32_t *)(t).data)

/* softmax of alpha[row] into sm (double accumulation), the weights of the present
 * candidates into w. Returns the number of alpha columns. */
static int mixed_weights(const rt_exec_node *n, float *sm, float *w) {
    int O = (int)n->in[0].shape[1];
    const float *a = F(n->in[0]) + n->iattr[IR_A_MIXED_ROW] * O;
    kcpu_softmax_forward(sm, a, 1, O);
    for (int i = 1; i < n->n_in; i++) w[i - 1] = sm[n->iattr[IR_A_MIXED_COL0 + i - 1]];
    return O;
}

/* The deferred batch norms among a mixed op's candidates (aff[i] for input i + 1, NULL for
 * the others); returns the (N, C) planes to run the affine weighted sum over, or 0 when
 * there are none (or no planes). */
static int64_t mixed_affine(const rt_exec_node *n, const float **aff) {
    int lazy = 0;
    for (int i = 1; i < n->n_in; i++) {
        aff[i - 1] = n->in[i].affine;
        lazy |= aff[i - 1] != NULL;
    }
    return lazy ? n->out.shape[0] * n->out.shape[1] : 0;
}

static void cpu_forward(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    float *y = F(n->out);
    const float *x = F(n->in[0]);
    int64_t len = n->out.numel;
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_PARAM: case IR_OP_COUNT:
        break;
    case IR_OP_CONV2D: {
        kconv2d_desc d = conv_desc(n);
        if (n->relu_in) kcpu_conv2d_relu_forward(y, x, F(n->in[1]), &d, n->scratch);
        else kcpu_conv2d_forward(y, x, F(n->in[1]), &d, n->scratch);
        break;
    }
    case IR_OP_BATCHNORM: {
        kbn_desc d = bn_desc(n);
        if ((n->stats_in || n->stats_out) && (n->training || n->iattr[IR_A_BN_BATCH_STATS])) /* shared statistics */
            kcpu_bn_train_shared(n->defer_out ? NULL : y, n->defer_out ? n->aux + 2 * d.C : NULL, n->aux, n->aux + d.C,
                                 F(n->in[3]), F(n->in[4]), x, F(n->in[1]), F(n->in[2]), n->stats_out, n->stats_in, &d);
        else if (n->defer_out && (n->training || n->iattr[IR_A_BN_BATCH_STATS]))
            kcpu_bn_coefs_train(n->aux + 2 * d.C, n->aux, n->aux + d.C, F(n->in[3]), F(n->in[4]), x, F(n->in[1]),
                                F(n->in[2]), &d);
        else if (n->defer_out)
            kcpu_bn_coefs_infer(n->aux + 2 * d.C, F(n->in[1]), F(n->in[2]), F(n->in[3]), F(n->in[4]), &d);
        else if (n->training || n->iattr[IR_A_BN_BATCH_STATS])
            kcpu_bn_forward_train(y, n->aux, n->aux + d.C, F(n->in[3]), F(n->in[4]), x, F(n->in[1]), F(n->in[2]), &d);
        else
            kcpu_bn_forward_infer(y, x, F(n->in[1]), F(n->in[2]), F(n->in[3]), F(n->in[4]), &d);
        break;
    }
    case IR_OP_RELU: kcpu_relu_forward(y, x, len); break;
    case IR_OP_TANH: kcpu_tanh_forward(y, x, len); break;
    case IR_OP_SIGMOID: kcpu_sigmoid_forward(y, x, len); break;
    case IR_OP_IDENTITY: kcpu_copy(y, x, len); break;
    case IR_OP_ZERO: kcpu_fill(y, 0.f, len); break;
    case IR_OP_MAXPOOL:
    case IR_OP_AVGPOOL: {
        kpool_desc d = pool_desc(n);
        if (n->op == IR_OP_MAXPOOL) kcpu_maxpool_forward(y, x, &d);
        else kcpu_avgpool_forward(y, x, &d);
        if (n->stats_out && (n->training || n->stats_always)) { /* its batch norms' statistics (runtime/plan.c) */
            const kbn_desc b = {.N = d.N, .C = d.C, .HW = d.P * d.Q, .eps = 1e-5f}; /* eps: unused here */
            kcpu_bn_train_shared(NULL, NULL, NULL, NULL, NULL, NULL, y, NULL, NULL, n->stats_out, NULL, &b);
            for (int k = 0; k < n->ntakers; k++) { /* the deferred batch norms it runs: their forwards' call */
                const rt_exec_node *t = n->takers[k];
                const kbn_desc td = bn_desc(t);
                kcpu_bn_train_shared(NULL, t->aux + 2 * td.C, t->aux, t->aux + td.C, F(t->in[3]), F(t->in[4]), y,
                                     F(t->in[1]), F(t->in[2]), NULL, n->stats_out, &td);
            }
        }
        break;
    }
    case IR_OP_ADD:
    case IR_OP_MEAN: {
        const float *xs[RT_MAX_IN] = {0};
        for (int i = 0; i < n->n_in; i++) xs[i] = F(n->in[i]);
        kcpu_add_forward(y, xs, n->n_in, len);
        if (n->op == IR_OP_MEAN) kcpu_scale(y, 1.f / (float)n->n_in, y, len);
        break;
    }
    case IR_OP_MUL: kcpu_mul_forward(y, x, F(n->in[1]), len); break;
    case IR_OP_SUB:
        kcpu_copy(y, x, len);
        kcpu_axpy(y, -1.f, F(n->in[1]), len);
        break;
    case IR_OP_SCALE: kcpu_scale(y, n->fattr[IR_F_P], x, len); break;
    case IR_OP_WSUM: {
        const float *xs[RT_MAX_IN] = {0};
        for (int i = 1; i < n->n_in; i++) xs[i - 1] = F(n->in[i]);
        kcpu_wsum_forward(y, xs, x, n->n_in - 1, len);
        break;
    }
    case IR_OP_MIXED: {
        const float *xs[RT_MAX_IN] = {0};
        float w[RT_MAX_IN] = {0};
        const float *aff[RT_MAX_IN] = {0};
        mixed_weights(n, n->aux, w);
        for (int i = 1; i < n->n_in; i++) xs[i - 1] = F(n->in[i]);
        const int64_t planes = mixed_affine(n, aff);
        if (planes > 0) {
            kcpu_wsum_affine_forward(y, xs, aff, w, n->n_in - 1, planes, (int)n->out.shape[1], (int)(len / planes));
        } else {
            kcpu_wsum_forward(y, xs, w, n->n_in - 1, len);
        }
        break;
    }
    case IR_OP_WMIXED: {
        /* the weights w[row][cols] as given (no softmax) */
        const float *xs[RT_MAX_IN] = {0};
        float w[RT_MAX_IN] = {0};
        const float *wr = x + n->iattr[IR_A_MIXED_ROW] * n->in[0].shape[1];
        for (int i = 1; i < n->n_in; i++) { xs[i - 1] = F(n->in[i]); w[i - 1] = wr[n->iattr[IR_A_MIXED_COL0 + i - 1]]; }
        kcpu_wsum_forward(y, xs, w, n->n_in - 1, len);
        break;
    }
    case IR_OP_SHUFFLE:
        kcpu_channel_shuffle_forward(y, x, (int)n->out.shape[0], (int)n->out.shape[1], plane(&n->out),
                                     (int)n->iattr[IR_A_SHUFFLE_GROUPS]);
        break;
    case IR_OP_SOFTMAX: {
        int K = (int)n->out.shape[n->out.ndim - 1];
        kcpu_softmax_forward(y, x, (int)(len / K), K);
        break;
    }
    case IR_OP_CONCAT: {
        int N = (int)n->out.shape[0], Cy = (int)n->out.shape[1], HW = plane(&n->out), off = 0;
        for (int i = 0; i < n->n_in; i++) {
            int Cx = (int)n->in[i].shape[1];
            kcpu_concat_forward(y, F(n->in[i]), N, Cx, HW, Cy, off);
            off += Cx;
        }
        break;
    }
    case IR_OP_SLICE:
        kcpu_slice_forward(y, x, (int)n->out.shape[0], (int)n->in[0].shape[1], plane(&n->out), (int)n->out.shape[1],
                           (int)n->iattr[IR_A_SLICE_START]);
        break;
    case IR_OP_SHIFT:
        kcpu_shift_forward(y, x, (int)n->in[0].shape[0], (int)n->in[0].shape[1], (int)n->in[0].shape[2], (int)n->in[0].shape[3]);
        break;
    case IR_OP_GAP:
        kcpu_gap_forward(y, x, (int)n->in[0].shape[0], (int)n->in[0].shape[1], plane(&n->in[0]));
        break;
    case IR_OP_LINEAR:
        kcpu_linear_forward(y, x, F(n->in[1]), n->in[2].data ? F(n->in[2]) : NULL, (int)n->in[0].shape[0],
                            (int)n->in[0].shape[1], (int)n->out.shape[1]);
        break;
    case IR_OP_EMBEDDING:
        kcpu_embedding_forward(y, I32(n->in[0]), F(n->in[1]), (int)n->in[0].shape[0], (int)n->in[1].shape[0],
                               (int)n->in[1].shape[1]);
        break;
    case IR_OP_SOFTMAX_CE: {
        int N = (int)n->in[0].shape[0], K = (int)n->in[0].shape[1], correct = 0;
        y[0] = kcpu_softmax_ce_forward(n->aux, x, I32(n->in[1]), N, K, &correct);
        n->aux[(int64_t)N * K] = (float)correct;
        break;
    }
    case IR_OP_DROPOUT:
        if (n->training && n->fattr[IR_F_P] > 0) kcpu_dropout_forward(y, n->aux, x, len, n->fattr[IR_F_P], n->seed);
        else { kcpu_copy(y, x, len); kcpu_fill(n->aux, 1.f, len); }
        break;
    case IR_OP_DROP_PATH: {
        int N = (int)n->in[0].shape[0];
        if (n->training && n->fattr[IR_F_P] > 0) kcpu_droppath_forward(y, n->aux, x, N, len / N, n->fattr[IR_F_P], n->seed);
        else { kcpu_copy(y, x, len); kcpu_fill(n->aux, 1.f, N); }
        break;
    }
    case IR_OP_SQMEAN: y[0] = (float)(kcpu_sumsq(x, n->in[0].numel) / (double)n->in[0].numel); break;
    }
}

static void cpu_backward(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    const float *dy = n->out.grad;
    const float *x = F(n->in[0]);
    float *dx = n->in[0].grad;
    int64_t len = n->out.numel;
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_PARAM: case IR_OP_ZERO: case IR_OP_COUNT:
        break;
    case IR_OP_CONV2D: {
        kconv2d_desc d = conv_desc(n);
        if (dx && (n->grad_set & 1u)) {
            kcpu_conv2d_backward_data_set(dx, dy, F(n->in[1]), n->relu_in ? x : NULL, &d, n->scratch);
            dx = NULL;
        }
        if (n->relu_in) {
            if (dx) kcpu_conv2d_relu_backward_data(dx, dy, F(n->in[1]), x, &d, n->scratch);
            if (n->in[1].grad) kcpu_conv2d_relu_backward_filter(n->in[1].grad, dy, x, &d, n->scratch);
            break;
        }
        if (dx) kcpu_conv2d_backward_data(dx, dy, F(n->in[1]), &d, n->scratch);
        if (n->in[1].grad) kcpu_conv2d_backward_filter(n->in[1].grad, dy, x, &d, n->scratch);
        break;
    }
    case IR_OP_BATCHNORM: {
        kbn_desc d = bn_desc(n);
        if (n->nmore) { /* the summed output gradients of the batch norms whose backwards this one runs */
            const float *xs[1 + RT_MORE_GRADS] = {dy}, *sc[1 + RT_MORE_GRADS] = {n->out_grad_scale};
            for (int k = 0; k < n->nmore; k++) xs[1 + k] = n->more_grad[k], sc[1 + k] = n->more_scale[k];
            kcpu_scaled_sum(n->scratch, xs, sc, 1 + n->nmore, len);
            (n->grad_set & 1u ? kcpu_bn_backward_set : kcpu_bn_backward)(
                dx, n->in[1].grad, n->in[2].grad, n->scratch, x, n->in[1].data ? F(n->in[1]) : NULL, n->aux,
                n->aux + d.C, &d);
            break;
        }
        if (n->out_grad_scale)
            kcpu_bn_backward_scaled(dx, n->in[1].grad, n->in[2].grad, dy, *n->out_grad_scale, x,
                                    n->in[1].data ? F(n->in[1]) : NULL, n->aux, n->aux + d.C, &d, !(n->grad_set & 1u));
        else
            (n->grad_set & 1u ? kcpu_bn_backward_set : kcpu_bn_backward)(
                dx, n->in[1].grad, n->in[2].grad, dy, x, n->in[1].data ? F(n->in[1]) : NULL, n->aux, n->aux + d.C, &d);
        break;
    }
    case IR_OP_RELU:
        if (dx) (n->grad_set & 1u ? kcpu_relu_backward_set : kcpu_relu_backward)(dx, dy, F(n->out), len);
        break;
    case IR_OP_TANH: if (dx) kcpu_tanh_backward(dx, dy, F(n->out), len); break;
    case IR_OP_SIGMOID: if (dx) kcpu_sigmoid_backward(dx, dy, F(n->out), len); break;
    case IR_OP_IDENTITY: if (dx) kcpu_axpy(dx, 1.f, dy, len); break;
    case IR_OP_MAXPOOL: { kpool_desc d = pool_desc(n); if (dx) kcpu_maxpool_backward(dx, dy, x, &d); break; }
    case IR_OP_AVGPOOL: { kpool_desc d = pool_desc(n); if (dx) kcpu_avgpool_backward(dx, dy, &d); break; }
    case IR_OP_ADD:
    case IR_OP_MEAN: {
        float s = n->op == IR_OP_MEAN ? 1.f / (float)n->n_in : 1.f;
        for (int i = 0; i < n->n_in; i++) {
            if (!n->in[i].grad) continue;
            if (n->grad_set >> i & 1u) kcpu_scale(n->in[i].grad, s, dy, len);
            else kcpu_axpy(n->in[i].grad, s, dy, len);
        }
        break;
    }
    case IR_OP_MUL: kcpu_mul_backward(dx, n->in[1].grad, dy, x, F(n->in[1]), len); break;
    case IR_OP_SUB:
        if (dx) kcpu_axpy(dx, 1.f, dy, len);
        if (n->in[1].grad) kcpu_axpy(n->in[1].grad, -1.f, dy, len);
        break;
    case IR_OP_SCALE: if (dx) kcpu_axpy(dx, n->fattr[IR_F_P], dy, len); break;
    case IR_OP_WSUM: {
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        for (int i = 1; i < n->n_in; i++) { xs[i - 1] = F(n->in[i]); dxs[i - 1] = n->in[i].grad; }
        kcpu_wsum_backward_set(dxs, dx, dy, xs, x, n->n_in - 1, len, n->grad_set >> 1);
        break;
    }
    case IR_OP_MIXED: {
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        float w[RT_MAX_IN] = {0}, dw[RT_MAX_IN] = {0};
        const float *sm = n->aux;
        int O = (int)n->in[0].shape[1], nc = n->n_in - 1;
        const float *aff[RT_MAX_IN] = {0};
        for (int i = 0; i < nc; i++) { xs[i] = F(n->in[i + 1]); dxs[i] = n->in[i + 1].grad; w[i] = sm[n->iattr[IR_A_MIXED_COL0 + i]]; }
        const int64_t planes = mixed_affine(n, aff);
        if (planes > 0) {
            kcpu_wsum_affine_backward_set(dxs, dx ? dw : NULL, dy, xs, aff, w, nc, planes, (int)n->out.shape[1],
                                          (int)(len / planes), n->grad_set >> 1);
        } else {
            kcpu_wsum_backward_set(dxs, dx ? dw : NULL, dy, xs, w, nc, len, n->grad_set >> 1);
        }
        if (dx) {
            /* d alpha[row] through the softmax; absent columns (zero ops) have dw = 0 */
            float dcol[IR_MAX_MIXED_COLS] = {0};
            for (int i = 0; i < nc; i++) dcol[n->iattr[IR_A_MIXED_COL0 + i]] = dw[i];
            kcpu_softmax_backward(dx + n->iattr[IR_A_MIXED_ROW] * O, dcol, sm, 1, O);
        }
        break;
    }
    case IR_OP_WMIXED: {
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        float w[RT_MAX_IN] = {0}, dw[RT_MAX_IN] = {0};
        const int64_t O = n->in[0].shape[1], nc = n->n_in - 1;
        const float *wr = x + n->iattr[IR_A_MIXED_ROW] * O;
        for (int i = 0; i < nc; i++) { xs[i] = F(n->in[i + 1]); dxs[i] = n->in[i + 1].grad; w[i] = wr[n->iattr[IR_A_MIXED_COL0 + i]]; }
        kcpu_wsum_backward_set(dxs, dx ? dw : NULL, dy, xs, w, (int)nc, len, n->grad_set >> 1);
        if (dx)
            for (int i = 0; i < nc; i++) dx[n->iattr[IR_A_MIXED_ROW] * O + n->iattr[IR_A_MIXED_COL0 + i]] += dw[i];
        break;
    }
    case IR_OP_SHUFFLE:
        if (dx) kcpu_channel_shuffle_backward(dx, dy, (int)n->out.shape[0], (int)n->out.shape[1], plane(&n->out),
                                              (int)n->iattr[IR_A_SHUFFLE_GROUPS]);
        break;
    case IR_OP_SOFTMAX: {
        int K = (int)n->out.shape[n->out.ndim - 1];
        if (dx) kcpu_softmax_backward(dx, dy, F(n->out), (int)(len / K), K);
        break;
    }
    case IR_OP_CONCAT: {
        int N = (int)n->out.shape[0], Cy = (int)n->out.shape[1], HW = plane(&n->out), off = 0;
        for (int i = 0; i < n->n_in; i++) {
            int Cx = (int)n->in[i].shape[1];
            if (n->in[i].grad)
                (n->grad_set >> i & 1u ? kcpu_concat_backward_set : kcpu_concat_backward)(n->in[i].grad, dy, N, Cx,
                                                                                          HW, Cy, off);
            off += Cx;
        }
        break;
    }
    case IR_OP_SLICE:
        if (dx) kcpu_slice_backward(dx, dy, (int)n->out.shape[0], (int)n->in[0].shape[1], plane(&n->out),
                                    (int)n->out.shape[1], (int)n->iattr[IR_A_SLICE_START]);
        break;
    case IR_OP_SHIFT:
        if (dx)
            (n->grad_set & 1u ? kcpu_shift_backward_set : kcpu_shift_backward)(
                dx, dy, (int)n->in[0].shape[0], (int)n->in[0].shape[1], (int)n->in[0].shape[2], (int)n->in[0].shape[3]);
        break;
    case IR_OP_GAP:
        if (dx) kcpu_gap_backward(dx, dy, (int)n->in[0].shape[0], (int)n->in[0].shape[1], plane(&n->in[0]));
        break;
    case IR_OP_LINEAR:
        kcpu_linear_backward(dx, n->in[1].grad, n->in[2].grad, dy, x, F(n->in[1]), (int)n->in[0].shape[0],
                             (int)n->in[0].shape[1], (int)n->out.shape[1]);
        break;
    case IR_OP_EMBEDDING:
        if (n->in[1].grad)
            kcpu_embedding_backward(n->in[1].grad, dy, I32(n->in[0]), (int)n->in[0].shape[0], (int)n->in[1].shape[0],
                                    (int)n->in[1].shape[1]);
        break;
    case IR_OP_SOFTMAX_CE:
        if (dx) kcpu_softmax_ce_backward(dx, dy[0], n->aux, I32(n->in[1]), (int)n->in[0].shape[0], (int)n->in[0].shape[1]);
        break;
    case IR_OP_DROPOUT: if (dx) kcpu_dropout_backward(dx, dy, n->aux, len); break;
    case IR_OP_DROP_PATH: {
        int N = (int)n->in[0].shape[0];
        if (dx) (n->grad_set & 1u ? kcpu_droppath_backward_set : kcpu_droppath_backward)(dx, dy, n->aux, N, len / N);
        break;
    }
    case IR_OP_SQMEAN: if (dx) kcpu_axpy(dx, 2.f * dy[0] / (float)n->in[0].numel, x, n->in[0].numel); break;
    }
}

static size_t cpu_scratch(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op == IR_OP_BATCHNORM && n->nmore) return (size_t)n->out.numel; /* the summed output gradient */
    if (n->op != IR_OP_CONV2D) return 0;
    kconv2d_desc d = conv_desc(n);
    return kcpu_conv2d_scratch_floats(&d);
}

/* Batch norm's backward reads its output gradient scaled (a mixed op's dy times a weight). */
static int cpu_scales_out_grad(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    return n->op == IR_OP_BATCHNORM;
}

/* A batch norm (training or inference) left unapplied for the mixed op it feeds, over
 * (N, C, ...) tensors. */
/* Batch norms with batch statistics write them for, or take them from, the batch norms of
 * the same input (kcpu_bn_train_shared; runtime/plan.c, DARTSC_SHARE_BN_STATS); pools write
 * their outputs' (DARTSC_POOL_BN_STATS): the statistics a batch norm of the output computes,
 * by its code, after the pool (no fusion on the CPU: the twin of the CUDA path's bits). */
static int cpu_shares_stats(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op == IR_OP_MAXPOOL || n->op == IR_OP_AVGPOOL) /* the statistics of its output, after it */
        return n->out.ndim == 4 && n->out.numel > 0;
    return n->op == IR_OP_BATCHNORM && n->in[0].ndim >= 2 && !n->bn_sync;
}

/* A batch norm's backward on the sum of several output gradients: summed into the scratch
 * (kcpu_scaled_sum), then the backward of that one. */
static int cpu_sums_out_grads(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    return n->op == IR_OP_BATCHNORM && n->in[0].ndim >= 2 && !n->bn_sync && n->nmore >= 1 && n->nmore <= RT_MORE_GRADS;
}

static int cpu_defers_output(rt_backend *be, const rt_exec_node *n, const rt_exec_node *c) {
    (void)be;
    return n->op == IR_OP_BATCHNORM && c->op == IR_OP_MIXED && n->in[0].ndim >= 2 && c->out.ndim >= 2 &&
           n->in[0].shape[1] == c->out.shape[1] && n->in[0].numel == c->out.numel;
}

/* The backward passes that can write an input's whole gradient instead of adding to it. */
static int cpu_sets_grad(rt_backend *be, const rt_exec_node *n, int k) {
    (void)be;
    switch (n->op) {
    case IR_OP_CONV2D: {
        if (k != 0) return 0;
        kconv2d_desc d = conv_desc(n);
        return kcpu_conv2d_sets_dx(&d);
    }
    case IR_OP_BATCHNORM: case IR_OP_RELU: case IR_OP_SHIFT: case IR_OP_DROP_PATH: return k == 0;
    case IR_OP_ADD: case IR_OP_MEAN: case IR_OP_CONCAT: return k < 32;
    case IR_OP_WSUM: case IR_OP_MIXED: case IR_OP_WMIXED: return k >= 1 && k < 17;
    default: return 0;
    }
}

static int cpu_fuses_relu_in(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op != IR_OP_CONV2D) return 0;
    kconv2d_desc d = conv_desc(n);
    return kcpu_conv2d_relu_supported(&d);
}

static void cpu_axpy(rt_backend *be, float *y, float a, const float *x, int64_t n) { (void)be; kcpu_axpy(y, a, x, n); }
static void cpu_copy(rt_backend *be, float *y, const float *x, int64_t n) { (void)be; kcpu_copy(y, x, n); }
static void cpu_scale(rt_backend *be, float *y, float a, int64_t n) { (void)be; kcpu_scale(y, a, y, n); }
static void cpu_hvp_eps(rt_backend *be, float *eps, const float *v, int64_t n, double r, const float *eta, int bug_mul_r) {
    (void)be;
    kcpu_hvp_eps(eps, v, n, r, eta[0], bug_mul_r);
}
static void cpu_axpy_dev(rt_backend *be, float *y, const float *a, const float *x, int64_t n) {
    (void)be;
    kcpu_axpy(y, a[0], x, n);
}
static void cpu_scale_dev(rt_backend *be, float *y, const float *a, int64_t n) {
    (void)be;
    kcpu_scale(y, a[0], y, n);
}
static double cpu_sumsq(rt_backend *be, const float *x, int64_t n) { (void)be; return kcpu_sumsq(x, n); }
static void cpu_zero_one_grad(rt_backend *be, float *grad, const float *alpha, int64_t n, float weight) {
    (void)be;
    kcpu_zero_one_grad(grad, alpha, n, weight);
}
static void cpu_clip_norm_to(rt_backend *be, float *x, int64_t n, float max_norm, float *norm) {
    (void)be;
    kcpu_clip_norm_to(x, n, max_norm, norm);
}
static void cpu_sgd(rt_backend *be, float *w, float *buf, const float *g, int64_t n, float lr, float mom, float wd) {
    (void)be;
    kcpu_sgd_step(w, buf, g, n, lr, mom, wd);
}
static void cpu_adam(rt_backend *be, float *w, float *m, float *v, const float *g, int64_t n, float lr, float b1, float b2,
                     float eps, float wd, int t) {
    (void)be;
    kcpu_adam_step(w, m, v, g, n, lr, b1, b2, eps, wd, t);
}
/* The guard of the _dev steps: every value finite (a NaN or an infinity fails). */
static int guard_ok(const float *guard, int nguard) {
    for (int k = 0; k < nguard; k++)
        if (!isfinite(guard[k])) return 0;
    return 1;
}
static void cpu_sgd_dev(rt_backend *be, float *w, float *buf, const float *g, int64_t n, const float *lr, float mom,
                        float wd, const float *guard, int nguard) {
    (void)be;
    if (guard_ok(guard, nguard)) kcpu_sgd_step(w, buf, g, n, lr[0], mom, wd);
}
static void cpu_adam_dev(rt_backend *be, float *w, float *m, float *v, const float *g, int64_t n, const float *sc,
                         float b1, float b2, float eps, float wd, const float *guard, int nguard) {
    (void)be;
    if (guard_ok(guard, nguard)) kcpu_adam_step_sc(w, m, v, g, n, sc[0], sc[1], b1, b2, eps, wd);
}
void rt_adam_scalars(float lr, float b1, float b2, int t, float sc[2]) { kcpu_adam_scalars(lr, b1, b2, t, sc); }
static void cpu_sync(rt_backend *be) { (void)be; }
static void cpu_destroy(rt_backend *be) { free(be); }

rt_backend *rt_backend_cpu_new(void) {
    rt_backend *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->name = "cpu";
    be->alloc = cpu_alloc;
    be->mem_info = cpu_mem_info;
    be->free = cpu_free;
    be->upload = cpu_copy_bytes;
    be->download = cpu_copy_bytes;
    be->memset0 = cpu_memset0;
    be->supports_op = cpu_supports;
    be->scratch_floats = cpu_scratch;
    be->forward = cpu_forward;
    be->backward = cpu_backward;
    be->axpy = cpu_axpy;
    be->copy = cpu_copy;
    be->scale = cpu_scale;
    be->hvp_eps = cpu_hvp_eps;
    be->axpy_dev = cpu_axpy_dev;
    be->scale_dev = cpu_scale_dev;
    be->sumsq = cpu_sumsq;
    be->clip_norm_to = cpu_clip_norm_to;
    be->zero_one_grad = cpu_zero_one_grad;
    be->sgd_step = cpu_sgd;
    be->adam_step = cpu_adam;
    be->sgd_step_dev = cpu_sgd_dev;
    be->adam_step_dev = cpu_adam_dev;
    be->fuses_relu_in = cpu_fuses_relu_in;
    be->sets_grad = cpu_sets_grad;
    be->scales_out_grad = cpu_scales_out_grad;
    be->defers_output = cpu_defers_output;
    be->shares_stats = cpu_shares_stats;
    be->sums_out_grads = cpu_sums_out_grads;
    be->synchronize = cpu_sync;
    be->destroy = cpu_destroy;
    return be;
}

#ifndef DARTSC_HAVE_CUDA
rt_backend *rt_backend_cuda_new(char *err, size_t errlen) {
    snprintf(err, errlen, "this dartsc was built without CUDA (nvcc or cuDNN not found at configure time)");
    return NULL;
}
void rt_cuda_set_device_index(int index) { (void)index; }
#endif
