/* backend_cuda.cu — the CUDA backend: device memory, one stream with the cuDNN and
 * cuBLAS handles bound to it, and one switch from IR ops to kernels/cuda. It mirrors
 * runtime/backend_cpu.c case for case; where the CPU backend reads a scalar on the host
 * (the CE loss and correct count, dloss, MIXED's softmax weights) this one keeps it on
 * the device, so a forward or backward step never synchronises with the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/kcuda_internal.cuh"
/* backend.h and ir.h are C headers without C++ guards; their functions have C linkage. */
extern "C" {
#include "runtime/backend.h"
#include "runtime/exec_desc.h"
}
#include "runtime/cuda/backend_cuda.h"

static_assert(RT_MAX_IN <= KCUDA_MAX_NARY, "an ADD or CONCAT node's inputs must fit one n-ary launch");

typedef struct cu_block {
    void *p;
    size_t bytes;
} cu_block;

/* A lane beyond the first: its own stream, handles and cuBLAS workspace (a recorded pass
 * issues independent ops on several lanes, so they run concurrently on the device). */
typedef struct cu_lane {
    cudaStream_t s;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    void *blas_ws;
    cudaEvent_t join; /* recorded at the end of a capture, for lane 0 to wait on */
} cu_lane;

/* Uploads of up to CU_STAGE_BYTES / 4 go through a pinned staging ring of CU_STAGE_BYTES
 * (cu_upload); at most CU_STAGE_PENDING of its regions are in flight at once. */
#define CU_STAGE_BYTES ((size_t)32 << 20)
#define CU_STAGE_PENDING 64

typedef struct cuda_backend {
    rt_backend be; /* first: rt_backend * and cuda_backend * are the same pointer */
    cudaStream_t s; /* lane 0's stream, where everything but a recording's other lanes runs */
    cu_lane lane[KCUDA_MAX_LANES]; /* [0] unused: lane 0 is s, dnn, blas */
    int nlanes;     /* lanes made (1 until cu_lanes is first asked) */
    int want_lanes; /* DARTSC_CUDA_LANES, default CU_DEFAULT_LANES; 1: one stream */
    int cur;        /* the lane work is issued on now */
    cudaEvent_t fork; /* recorded on lane 0 when a capture begins; the other lanes wait on it */
    cudaEvent_t *points; /* lane_signal / lane_wait's points, by number */
    int npoints;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    void *blas_ws; /* cuBLAS's workspace, set once: a GEMM recorded into a graph must not allocate */
    cudaEvent_t *events; /* marks: a pool reused after marks_reset */
    int nevents, nused;
    cu_block *blocks; /* live allocations, for the byte count (a plan makes a few dozen) */
    int nblocks, cap;
    size_t live, peak;
    /* the upload staging ring (cu_upload): pinned host memory, the next free offset, and
     * the regions whose device copies may still be queued, oldest first */
    unsigned char *stage;
    size_t stage_head;
    struct { size_t off, bytes; cudaEvent_t ev; } pend[CU_STAGE_PENDING];
    int npend;
    cudaEvent_t spare[CU_STAGE_PENDING]; /* events of retired regions, for reuse */
    int nspare;
    int batch; /* DARTSC_CUDA_BATCH set (not "0"): independent same-shaped convolutions, batch
                  norms and pools of a recorded pass in one launch per kernel (cu_batches; not yet
                  measured) */
    /* the variants (cu_variants): the configured batch and one-launch settings, and which
       of the two a variant may change (the switch unset in the environment) */
    int batch0, one_launch0, free_batch, free_one_launch;
} cuda_backend;

static int g_live; /* backends alive: the kernels' library state is per process */

static cudaStream_t S(rt_backend *be) {
    cuda_backend *cb = (cuda_backend *)be;
    return cb->cur ? cb->lane[cb->cur].s : cb->s;
}

extern "C" const char *rt_cuda_last_error(void) { return kcuda_last_error(); }

static void *cu_alloc(rt_backend *be, size_t bytes) {
    cuda_backend *cb = (cuda_backend *)be;
    if (cb->nblocks == cb->cap) {
        int cap = cb->cap ? 2 * cb->cap : 64;
        cu_block *nb = (cu_block *)realloc(cb->blocks, (size_t)cap * sizeof *nb);
        if (!nb) KCUDA_FAIL_("cu_alloc", "out of host memory", return NULL);
        cb->blocks = nb;
        cb->cap = cap;
    }
    void *p = NULL;
    if (!bytes) bytes = 64;
    const cudaError_t e = cudaMalloc(&p, bytes); /* 256-byte aligned */
    if (e == cudaErrorMemoryAllocation) {
        /* not an error of the backend's: the caller says what did not fit (rt_plan_new's
           message, with cu_mem_info's figures); the backend stays usable */
        (void)cudaGetLastError(); /* not sticky: clear it, or the next launch check reports it */
        return NULL;
    }
    cudaCheckR(e, NULL);
    cb->blocks[cb->nblocks++] = (cu_block){p, bytes};
    cb->live += bytes;
    if (cb->live > cb->peak) cb->peak = cb->live;
    return p;
}
static void cu_free(rt_backend *be, void *p) {
    cuda_backend *cb = (cuda_backend *)be;
    if (!p) return;
    for (int i = cb->nblocks - 1; i >= 0; i--)
        if (cb->blocks[i].p == p) {
            cb->live -= cb->blocks[i].bytes;
            cb->blocks[i] = cb->blocks[--cb->nblocks];
            break;
        }
    cudaCheck(cudaFree(p));
}
static size_t cu_peak_bytes(rt_backend *be) { return ((cuda_backend *)be)->peak; }
static int cu_mem_info(rt_backend *be, size_t *free_bytes, size_t *total_bytes) {
    (void)be;
    if (cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}

/* Marks are events of the pool, handed out as index + 1 (the pool may move when it grows). */
static void *cu_mark(rt_backend *be) {
    cuda_backend *cb = (cuda_backend *)be;
    if (cb->nused == cb->nevents) {
        int n = cb->nevents ? 2 * cb->nevents : 1024;
        cudaEvent_t *ev = (cudaEvent_t *)realloc(cb->events, (size_t)n * sizeof *ev);
        if (!ev) KCUDA_FAIL_("cu_mark", "out of host memory", return NULL);
        cb->events = ev;
        for (int i = cb->nevents; i < n; i++) cudaCheckR(cudaEventCreate(&ev[cb->nevents++]), NULL);
    }
    cudaCheckR(cudaEventRecord(cb->events[cb->nused], cb->s), NULL);
    return (void *)(intptr_t)(++cb->nused);
}
static double cu_mark_elapsed(rt_backend *be, void *a, void *b) {
    cuda_backend *cb = (cuda_backend *)be;
    intptr_t i = (intptr_t)a - 1, j = (intptr_t)b - 1;
    if (i < 0 || j < 0 || i >= cb->nused || j >= cb->nused) return 0.0;
    float ms = 0.0f;
    cudaCheckR(cudaEventElapsedTime(&ms, cb->events[i], cb->events[j]), 0.0);
    return ms / 1000.0;
}
static void cu_marks_reset(rt_backend *be) { ((cuda_backend *)be)->nused = 0; }
/* Waits for the in-flight staging regions up to and including the newest one that
 * overlaps [off, off + bytes) (a stream completes its copies in order, so the older ones
 * are done too) and retires them. */
static int stage_reclaim(cuda_backend *cb, size_t off, size_t bytes) {
    int last = -1;
    for (int i = 0; i < cb->npend; i++)
        if (cb->pend[i].off < off + bytes && off < cb->pend[i].off + cb->pend[i].bytes) last = i;
    if (cb->npend == CU_STAGE_PENDING && last < 0) last = 0; /* no free record: the oldest */
    if (last < 0) return 0;
    cudaCheckR(cudaEventSynchronize(cb->pend[last].ev), -1);
    for (int i = 0; i <= last; i++) cb->spare[cb->nspare++] = cb->pend[i].ev;
    memmove(cb->pend, cb->pend + last + 1, (size_t)(cb->npend - last - 1) * sizeof cb->pend[0]);
    cb->npend -= last + 1;
    return 0;
}

/* The host buffer may be reused or freed as soon as this returns (whatever kind of host
 * memory the caller passed), but the copy does not wait for the device: small uploads (the
 * batches rt_set_input sends before each pass) are copied into a pinned staging ring and
 * queued behind the work already issued, so the host goes on issuing while the device
 * computes; a region of the ring is written again only after its earlier copy completed
 * (its event). Larger uploads, and any where the ring cannot be had, are synchronous. */
static void cu_upload(rt_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_backend *cb = (cuda_backend *)be;
    if (!bytes) return;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaCheck(cudaStreamIsCapturing(S(be), &cs));
    if (cs != cudaStreamCaptureStatusNone)
        KCUDA_FAIL_("cu_upload", "an upload inside a recording would replay stale host data", return);
    if (bytes <= CU_STAGE_BYTES / 4 && !cb->stage && !getenv("DARTSC_CUDA_SYNC_UPLOADS") &&
        cudaHostAlloc((void **)&cb->stage, CU_STAGE_BYTES, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError(); /* no pinned memory: synchronous uploads from now on */
        cb->stage = NULL;
    }
    if (bytes <= CU_STAGE_BYTES / 4 && cb->stage) {
        size_t off = (cb->stage_head + 255) & ~(size_t)255;
        if (off + bytes > CU_STAGE_BYTES) off = 0; /* wrap */
        if (stage_reclaim(cb, off, bytes) == 0) {
            cudaEvent_t ev = NULL;
            if (cb->nspare) ev = cb->spare[--cb->nspare];
            else if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) ev = NULL;
            if (ev) {
                memcpy(cb->stage + off, src, bytes);
                cudaCheck(cudaMemcpyAsync(dst, cb->stage + off, bytes, cudaMemcpyHostToDevice, S(be)));
                cudaCheck(cudaEventRecord(ev, S(be)));
                cb->pend[cb->npend].off = off;
                cb->pend[cb->npend].bytes = bytes;
                cb->pend[cb->npend].ev = ev;
                cb->npend++;
                cb->stage_head = off + bytes;
                return;
            }
            (void)cudaGetLastError();
        }
    }
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, S(be)));
    cudaCheck(cudaStreamSynchronize(S(be)));
}
static void cu_download(rt_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, S(be)));
    cudaCheck(cudaStreamSynchronize(S(be)));
}
static void cu_memset0(rt_backend *be, void *p, size_t bytes) {
    if (!bytes) return;
    cudaCheck(cudaMemsetAsync(p, 0, bytes, S(be)));
}
/* SQMEAN (temporal activation regularisation of recurrent search) has no CUDA kernel yet;
 * train/rnn.c leaves it out of the graph on backends without it. */
static int cu_supports(rt_backend *be, ir_op op) { (void)be; return (unsigned)op < IR_OP_COUNT && op != IR_OP_SQMEAN; }

#define F(t) ((float *)(t).data)
#define I32(t) ((const int32_t *)(t).data)

/* The mixed op's inputs that are batch norms left unapplied (rt_tref.affine), and the
 * (C, HW) of its output they are read over; 0 where there are none. */
static int mixed_affine(const rt_exec_node *n, const float **aff, int *C, int *HW) {
    int lazy = 0;
    for (int i = 1; i < n->n_in; i++) {
        aff[i - 1] = n->in[i].affine;
        lazy |= aff[i - 1] != NULL;
    }
    if (lazy && n->out.ndim >= 2 && n->out.shape[0] * n->out.shape[1] > 0) {
        *C = (int)n->out.shape[1];
        *HW = (int)(n->out.numel / (n->out.shape[0] * n->out.shape[1]));
    }
    return lazy;
}

/* A pool's forward that also writes its output's batch statistics (runtime/plan.c,
 * DARTSC_POOL_BN_STATS; kcuda_pool_forward_stats). */
static int pool_stats(const rt_exec_node *n) { return n->stats_out && (n->training || n->stats_always); }

/* What kcuda_pool_forward_stats writes for the deferred batch norms a pool runs (takers):
 * the pointers of their forwards with stats_in (cu_forward's BATCHNORM case). */
static_assert(RT_POOL_TAKERS <= KCUDA_POOL_TAKERS, "a pool's batch norms beyond the kernel's");
static void pool_takers(const rt_exec_node *n, kbn_taker *tk) {
    for (int k = 0; k < n->ntakers; k++) {
        const rt_exec_node *t = n->takers[k];
        const kbn_desc d = bn_desc(t);
        tk[k] = (kbn_taker){t->aux + 2 * d.C, t->aux, t->aux + d.C, F(t->in[3]), F(t->in[4]), F(t->in[1]), F(t->in[2]),
                            d.eps, d.momentum};
    }
}

static void cu_forward(rt_backend *be, const rt_exec_node *n) {
    cudaStream_t s = S(be);
    float *y = F(n->out);
    const float *x = F(n->in[0]);
    int64_t len = n->out.numel;
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_PARAM: case IR_OP_SQMEAN: case IR_OP_COUNT:
        break;
    case IR_OP_CONV2D: {
        kconv2d_desc d = conv_desc(n);
        if (n->relu_in && n->in[0].affine) /* x: a deferred batch norm's input */
            kcuda_conv2d_relu_affine_forward(y, x, n->in[0].affine, F(n->in[1]), &d, s);
        else if (n->relu_in) kcuda_conv2d_relu_forward(y, x, F(n->in[1]), &d, n->scratch, s);
        else kcuda_conv2d_forward(y, x, F(n->in[1]), &d, n->scratch, s);
        break;
    }
    case IR_OP_BATCHNORM: {
        kbn_desc d = bn_desc(n);
        if ((n->stats_in || n->stats_out) && (n->training || n->iattr[IR_A_BN_BATCH_STATS])) { /* shared statistics */
            float *o = n->defer_out ? n->aux + 2 * d.C : y, *sm = n->aux, *si = n->aux + d.C, *rm = F(n->in[3]),
                  *rv = F(n->in[4]);
            const float *g = F(n->in[1]), *b = F(n->in[2]);
            double *so = n->stats_out;
            const double *st = n->stats_in;
            kcuda_bn_train_shared(1, n->defer_out ? NULL : &o, n->defer_out ? &o : NULL, &sm, &si, &rm, &rv, &x, &g, &b,
                                  &so, st ? &st : NULL, &d, s);
        } else if (n->defer_out && (n->training || n->iattr[IR_A_BN_BATCH_STATS]))
            kcuda_bn_coefs_train(n->aux + 2 * d.C, n->aux, n->aux + d.C, F(n->in[3]), F(n->in[4]), x, F(n->in[1]),
                                 F(n->in[2]), &d, s);
        else if (n->defer_out)
            kcuda_bn_coefs_infer(n->aux + 2 * d.C, F(n->in[1]), F(n->in[2]), F(n->in[3]), F(n->in[4]), &d, s);
        else if (n->training || n->iattr[IR_A_BN_BATCH_STATS])
            kcuda_bn_forward_train(y, n->aux, n->aux + d.C, F(n->in[3]), F(n->in[4]), x, F(n->in[1]), F(n->in[2]), &d, s);
        else
            kcuda_bn_forward_infer(y, x, F(n->in[1]), F(n->in[2]), F(n->in[3]), F(n->in[4]), &d, s);
        break;
    }
    case IR_OP_RELU: kcuda_relu_forward(y, x, len, s); break;
    case IR_OP_TANH: kcuda_tanh_forward(y, x, len, s); break;
    case IR_OP_SIGMOID: kcuda_sigmoid_forward(y, x, len, s); break;
    case IR_OP_IDENTITY: kcuda_copy(y, x, len, s); break;
    case IR_OP_ZERO: kcuda_fill(y, 0.f, len, s); break;
    case IR_OP_MAXPOOL:
    case IR_OP_AVGPOOL: {
        kpool_desc d = pool_desc(n);
        kbn_taker tk[RT_POOL_TAKERS];
        if (pool_stats(n)) {
            pool_takers(n, tk);
            kcuda_pool_forward_stats(1, n->op == IR_OP_MAXPOOL, &y, &x, &n->stats_out, n->ntakers, tk, &d, s);
        } else if (n->op == IR_OP_MAXPOOL) kcuda_maxpool_forward(y, x, &d, s);
        else kcuda_avgpool_forward(y, x, &d, s);
        break;
    }
    case IR_OP_ADD:
    case IR_OP_MEAN:
    case IR_OP_SUB: { /* one launch: x0 + x1 + ... (- x1), then / n for MEAN */
        const float *xs[RT_MAX_IN] = {0};
        float coef[RT_MAX_IN];
        for (int i = 0; i < n->n_in; i++) xs[i] = F(n->in[i]), coef[i] = n->op == IR_OP_SUB ? -1.f : 1.f;
        kcuda_sum_forward(y, xs, coef, n->n_in, 1.f / (float)n->n_in, n->op == IR_OP_MEAN, len, s);
        break;
    }
    case IR_OP_MUL: kcuda_mul_forward(y, x, F(n->in[1]), len, s); break;
    case IR_OP_SCALE: kcuda_scale(y, n->fattr[IR_F_P], x, len, s); break;
    case IR_OP_WSUM: {
        const float *xs[RT_MAX_IN] = {0};
        for (int i = 1; i < n->n_in; i++) xs[i - 1] = F(n->in[i]);
        kcuda_wsum_forward(y, xs, x, n->n_in - 1, len, s);
        break;
    }
    case IR_OP_MIXED: {
        /* softmax(alpha[row]) into aux and the weighted sum, both on the device */
        const float *xs[RT_MAX_IN] = {0}, *aff[RT_MAX_IN] = {0};
        int O = (int)n->in[0].shape[1], C = 1, HW = 1;
        for (int i = 1; i < n->n_in; i++) xs[i - 1] = F(n->in[i]);
        mixed_affine(n, aff, &C, &HW);
        kcuda_mixed_forward(y, n->aux, x + n->iattr[IR_A_MIXED_ROW] * O, xs, n->iattr + IR_A_MIXED_COL0, n->n_in - 1, O,
                            len, aff, C, HW, s);
        break;
    }
    case IR_OP_SOFTMAX: {
        int K = (int)n->out.shape[n->out.ndim - 1];
        kcuda_softmax_forward(y, x, (int)(len / K), K, s);
        break;
    }
    case IR_OP_WMIXED: {
        const float *xs[RT_MAX_IN] = {0};
        for (int i = 1; i < n->n_in; i++) xs[i - 1] = F(n->in[i]);
        kcuda_wmixed_forward(y, x + n->iattr[IR_A_MIXED_ROW] * n->in[0].shape[1], xs, n->iattr + IR_A_MIXED_COL0,
                             n->n_in - 1, len, s);
        break;
    }
    case IR_OP_SHUFFLE:
        kcuda_channel_shuffle_forward(y, x, (int)n->out.shape[0], (int)n->out.shape[1], plane(&n->out),
                                      (int)n->iattr[IR_A_SHUFFLE_GROUPS], s);
        break;
    case IR_OP_CONCAT: {
        const float *xs[RT_MAX_IN] = {0};
        int Cx[RT_MAX_IN];
        for (int i = 0; i < n->n_in; i++) xs[i] = F(n->in[i]), Cx[i] = (int)n->in[i].shape[1];
        kcuda_concat_forward(y, xs, Cx, n->n_in, (int)n->out.shape[0], (int)n->out.shape[1], plane(&n->out), s);
        break;
    }
    case IR_OP_SLICE:
        kcuda_slice_forward(y, x, (int)n->out.shape[0], (int)n->in[0].shape[1], plane(&n->out), (int)n->out.shape[1],
                            (int)n->iattr[IR_A_SLICE_START], s);
        break;
    case IR_OP_SHIFT:
        kcuda_shift_forward(y, x, (int)n->in[0].shape[0], (int)n->in[0].shape[1], (int)n->in[0].shape[2],
                            (int)n->in[0].shape[3], s);
        break;
    case IR_OP_GAP:
        kcuda_gap_forward(y, x, (int)n->in[0].shape[0], (int)n->in[0].shape[1], plane(&n->in[0]), s);
        break;
    case IR_OP_LINEAR:
        kcuda_linear_forward(y, x, F(n->in[1]), n->in[2].data ? F(n->in[2]) : NULL, (int)n->in[0].shape[0],
                             (int)n->in[0].shape[1], (int)n->out.shape[1], s);
        break;
    case IR_OP_EMBEDDING:
        kcuda_embedding_forward(y, I32(n->in[0]), F(n->in[1]), (int)n->in[0].shape[0], (int)n->in[1].shape[0],
                                (int)n->in[1].shape[1], s);
        break;
    case IR_OP_SOFTMAX_CE: {
        /* loss into y[0], probs into aux, the correct count into aux[N*K] (rt_forward reads it) */
        int N = (int)n->in[0].shape[0], K = (int)n->in[0].shape[1];
        kcuda_softmax_ce_forward(y, n->aux, x, I32(n->in[1]), N, K, n->aux + (int64_t)N * K, s);
        break;
    }
    case IR_OP_DROPOUT:
        if (n->training && n->fattr[IR_F_P] > 0)
            kcuda_dropout_forward_dev(y, n->aux, x, len, n->fattr[IR_F_P], n->seed, n->seed_dev, s);
        else { kcuda_copy(y, x, len, s); kcuda_fill(n->aux, 1.f, len, s); }
        break;
    case IR_OP_DROP_PATH: {
        int N = (int)n->in[0].shape[0];
        if (n->training && n->fattr[IR_F_P] > 0)
            kcuda_droppath_forward_dev(y, n->aux, x, N, len / N, n->fattr[IR_F_P], n->seed, n->seed_dev, s);
        else { kcuda_copy(y, x, len, s); kcuda_fill(n->aux, 1.f, N, s); }
        break;
    }
    }
}

/* A batch norm's further output gradients (rt_exec_node.nmore) as the kernels take them. */
static_assert(RT_MORE_GRADS == KCUDA_BN_MORE, "one count of further gradients");
static kbn_more more_of(const rt_exec_node *n) {
    kbn_more m;
    memset(&m, 0, sizeof m);
    m.n = n->nmore;
    for (int k = 0; k < n->nmore && k < KCUDA_BN_MORE; k++) {
        m.dy[k] = n->more_grad[k];
        m.dys[k] = n->more_scale[k];
    }
    return m;
}

static void cu_backward(rt_backend *be, const rt_exec_node *n) {
    cudaStream_t s = S(be);
    const float *dy = n->out.grad;
    const float *x = F(n->in[0]);
    float *dx = n->in[0].grad;
    int64_t len = n->out.numel;
    switch (n->op) {
    case IR_OP_INPUT: case IR_OP_PARAM: case IR_OP_ZERO: case IR_OP_SQMEAN: case IR_OP_COUNT:
        break;
    case IR_OP_CONV2D: {
        kconv2d_desc d = conv_desc(n);
        if (n->relu_in && n->in[0].affine) { /* x: a deferred batch norm's input; dx: the gradient
                                                of its output */
            if (dx) kcuda_conv2d_relu_affine_backward_data(dx, dy, F(n->in[1]), x, n->in[0].affine, &d,
                                                           (int)(n->grad_set & 1u), s);
            if (n->in[1].grad) kcuda_conv2d_relu_affine_backward_filter(n->in[1].grad, dy, x, n->in[0].affine, &d, s);
            break;
        }
        if (dx && (n->grad_set & 1u)) {
            kcuda_conv2d_backward_data_set(dx, dy, F(n->in[1]), n->relu_in ? x : NULL, &d, n->scratch, s);
            dx = NULL;
        }
        if (n->relu_in) { /* x is the fused ReLU's input, dx its gradient */
            if (dx) kcuda_conv2d_relu_backward_data(dx, dy, F(n->in[1]), x, &d, n->scratch, s);
            if (n->in[1].grad) kcuda_conv2d_relu_backward_filter(n->in[1].grad, dy, x, &d, n->scratch, s);
            break;
        }
        if (dx) kcuda_conv2d_backward_data(dx, dy, F(n->in[1]), &d, n->scratch, s);
        if (n->in[1].grad) kcuda_conv2d_backward_filter(n->in[1].grad, dy, x, &d, n->scratch, s);
        break;
    }
    case IR_OP_BATCHNORM: {
        kbn_desc d = bn_desc(n);
        /* dy read scaled (out_grad_scale), summed with the further output gradients of the
           batch norms whose backwards this one runs (nmore), written or added: one entry */
        const kbn_more mo = more_of(n);
        kcuda_bn_backward_sum(dx, n->in[1].grad, n->in[2].grad, dy, n->out_grad_scale, &mo, x,
                              n->in[1].data ? F(n->in[1]) : NULL, n->aux, n->aux + d.C, &d, !(n->grad_set & 1u), s);
        break;
    }
    case IR_OP_RELU:
        if (dx) (n->grad_set & 1u ? kcuda_relu_backward_set : kcuda_relu_backward)(dx, dy, F(n->out), len, s);
        break;
    case IR_OP_TANH: if (dx) kcuda_tanh_backward(dx, dy, F(n->out), len, s); break;
    case IR_OP_SIGMOID: if (dx) kcuda_sigmoid_backward(dx, dy, F(n->out), len, s); break;
    case IR_OP_IDENTITY: if (dx) kcuda_axpy(dx, 1.f, dy, len, s); break;
    case IR_OP_MAXPOOL: { kpool_desc d = pool_desc(n); if (dx) kcuda_maxpool_backward(dx, dy, x, &d, s); break; }
    case IR_OP_AVGPOOL: { kpool_desc d = pool_desc(n); if (dx) kcuda_avgpool_backward(dx, dy, &d, s); break; }
    case IR_OP_ADD:
    case IR_OP_MEAN:
    case IR_OP_SUB: { /* every input's gradient in one launch: set (sets_grad) or added */
        float *gs[RT_MAX_IN] = {0}, coef[RT_MAX_IN];
        const float sc = n->op == IR_OP_MEAN ? 1.f / (float)n->n_in : 1.f;
        for (int i = 0; i < n->n_in; i++) gs[i] = n->in[i].grad, coef[i] = n->op == IR_OP_SUB && i ? -1.f : sc;
        kcuda_sum_backward(gs, coef, n->n_in, n->grad_set, dy, len, s); /* SUB: never set (sets_grad) */
        break;
    }
    case IR_OP_MUL: kcuda_mul_backward(dx, n->in[1].grad, dy, x, F(n->in[1]), len, s); break;
    case IR_OP_SCALE: if (dx) kcuda_axpy(dx, n->fattr[IR_F_P], dy, len, s); break;
    case IR_OP_WSUM: {
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        for (int i = 1; i < n->n_in; i++) { xs[i - 1] = F(n->in[i]); dxs[i - 1] = n->in[i].grad; }
        kcuda_wsum_backward_set(dxs, dx, dy, xs, x, n->n_in - 1, len, n->grad_set >> 1, s);
        break;
    }
    case IR_OP_MIXED: {
        /* dxs from the saved softmax; d alpha[row] through the softmax, all on the device */
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        int O = (int)n->in[0].shape[1], nc = n->n_in - 1;
        for (int i = 0; i < nc; i++) { xs[i] = F(n->in[i + 1]); dxs[i] = n->in[i + 1].grad; }
        const float *aff[RT_MAX_IN] = {0};
        int C = 1, HW = 1;
        mixed_affine(n, aff, &C, &HW);
        kcuda_mixed_backward(dxs, dx ? dx + n->iattr[IR_A_MIXED_ROW] * O : NULL, dy, xs, n->aux,
                             n->iattr + IR_A_MIXED_COL0, nc, O, len, n->grad_set >> 1, aff, C, HW, s);
        break;
    }
    case IR_OP_SOFTMAX: {
        int K = (int)n->out.shape[n->out.ndim - 1];
        if (dx) kcuda_softmax_backward(dx, dy, F(n->out), (int)(len / K), K, s);
        break;
    }
    case IR_OP_WMIXED: {
        const float *xs[RT_MAX_IN] = {0};
        float *dxs[RT_MAX_IN] = {0};
        const int64_t O = n->in[0].shape[1], off = n->iattr[IR_A_MIXED_ROW] * O;
        int nc = n->n_in - 1;
        for (int i = 0; i < nc; i++) { xs[i] = F(n->in[i + 1]); dxs[i] = n->in[i + 1].grad; }
        kcuda_wmixed_backward(dxs, dx ? dx + off : NULL, dy, xs, x + off, n->iattr + IR_A_MIXED_COL0, nc, len,
                              n->grad_set >> 1, s);
        break;
    }
    case IR_OP_SHUFFLE:
        if (dx) kcuda_channel_shuffle_backward(dx, dy, (int)n->out.shape[0], (int)n->out.shape[1], plane(&n->out),
                                               (int)n->iattr[IR_A_SHUFFLE_GROUPS], s);
        break;
    case IR_OP_CONCAT: {
        float *gs[RT_MAX_IN] = {0};
        int Cx[RT_MAX_IN];
        for (int i = 0; i < n->n_in; i++) gs[i] = n->in[i].grad, Cx[i] = (int)n->in[i].shape[1];
        kcuda_concat_backward(gs, n->grad_set, Cx, n->n_in, dy, (int)n->out.shape[0], (int)n->out.shape[1],
                              plane(&n->out), s);
        break;
    }
    case IR_OP_SLICE:
        if (dx) kcuda_slice_backward(dx, dy, (int)n->out.shape[0], (int)n->in[0].shape[1], plane(&n->out),
                                     (int)n->out.shape[1], (int)n->iattr[IR_A_SLICE_START], s);
        break;
    case IR_OP_SHIFT:
        if (dx)
            (n->grad_set & 1u ? kcuda_shift_backward_set : kcuda_shift_backward)(
                dx, dy, (int)n->in[0].shape[0], (int)n->in[0].shape[1], (int)n->in[0].shape[2], (int)n->in[0].shape[3], s);
        break;
    case IR_OP_GAP:
        if (dx) kcuda_gap_backward(dx, dy, (int)n->in[0].shape[0], (int)n->in[0].shape[1], plane(&n->in[0]), s);
        break;
    case IR_OP_LINEAR:
        kcuda_linear_backward(dx, n->in[1].grad, n->in[2].grad, dy, x, F(n->in[1]), (int)n->in[0].shape[0],
                              (int)n->in[0].shape[1], (int)n->out.shape[1], s);
        break;
    case IR_OP_EMBEDDING:
        if (n->in[1].grad)
            kcuda_embedding_backward(n->in[1].grad, dy, I32(n->in[0]), (int)n->in[0].shape[0], (int)n->in[1].shape[0],
                                     (int)n->in[1].shape[1], s);
        break;
    case IR_OP_SOFTMAX_CE:
        /* dloss stays on the device: the kernel reads dy[0] */
        if (dx) kcuda_softmax_ce_backward(dx, dy, n->aux, I32(n->in[1]), (int)n->in[0].shape[0], (int)n->in[0].shape[1], s);
        break;
    case IR_OP_DROPOUT: if (dx) kcuda_dropout_backward(dx, dy, n->aux, len, s); break;
    case IR_OP_DROP_PATH: {
        int N = (int)n->in[0].shape[0];
        if (dx) (n->grad_set & 1u ? kcuda_droppath_backward_set : kcuda_droppath_backward)(dx, dy, n->aux, N, len / N, s);
        break;
    }
    }
}

/* A ReLU folds into the depthwise and small 1x1 convolutions that have fused kernels
 * (runtime/plan.c folds it only where the convolution is its one consumer). */
static int cu_fuses_relu_in(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op != IR_OP_CONV2D) return 0;
    kconv2d_desc d = conv_desc(n);
    return kcuda_conv2d_relu_supported(&d);
}

/* The backward passes that can write an input's whole gradient instead of adding to it
 * (the runtime then skips zeroing it: one memset node fewer per gradient buffer, and a
 * write instead of a read-modify-write). As the CPU backend's, with the device's own
 * convolution paths. */
static int cu_sets_grad(rt_backend *be, const rt_exec_node *n, int k) {
    (void)be;
    switch (n->op) {
    case IR_OP_CONV2D: {
        if (k != 0) return 0;
        kconv2d_desc d = conv_desc(n);
        return kcuda_conv2d_sets_dx(&d);
    }
    case IR_OP_BATCHNORM: case IR_OP_SHIFT: case IR_OP_RELU: case IR_OP_DROP_PATH: return k == 0;
    case IR_OP_ADD: case IR_OP_MEAN: case IR_OP_CONCAT: return k < 32;
    case IR_OP_WSUM: case IR_OP_MIXED: case IR_OP_WMIXED: return k >= 1 && k < 17;
    default: return 0;
    }
}

/* Batch norm's backward reads its output gradient scaled (a mixed op's dy times a weight,
 * a device scalar: the mixed op's softmax in its aux). */
static int cu_scales_out_grad(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    return n->op == IR_OP_BATCHNORM;
}

/* A batch norm over (N, C, ...) left unapplied for the mixed op it feeds (as the CPU), or
 * for the depthwise convolution its ReLU is fused into (the conv reads it through its
 * coefficients before the ReLU: kcuda_conv2d_relu_affine_*; not the CPU). */
static int cu_defers_output(rt_backend *be, const rt_exec_node *n, const rt_exec_node *c) {
    (void)be;
    if (n->op != IR_OP_BATCHNORM || n->in[0].ndim < 2) return 0;
    if (c->op == IR_OP_CONV2D && c->relu_in && !getenv("DARTSC_NO_BN_INTO_CONV")) {
        if (c->in[0].ndim != 4 || n->in[0].ndim != 4 || n->in[0].numel != c->in[0].numel ||
            n->in[0].shape[1] != c->in[0].shape[1])
            return 0;
        kconv2d_desc d = conv_desc(c);
        return kcuda_conv2d_affine_supported(&d);
    }
    return c->op == IR_OP_MIXED && c->out.ndim >= 2 && n->in[0].shape[1] == c->out.shape[1] &&
           n->in[0].numel == c->out.numel;
}

/* A batch norm's backward on the sum of several output gradients, read and summed in its
 * two kernels (kcuda_bn_backward_sum: no pass of its own, no buffer). */
static int cu_sums_out_grads(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op != IR_OP_BATCHNORM || n->in[0].ndim < 2 || n->bn_sync || n->nmore < 1 || n->nmore > KCUDA_BN_MORE)
        return 0;
    kbn_desc d = bn_desc(n);
    return (int64_t)d.N * d.HW < ((int64_t)1 << 31);
}

/* Batch norms with batch statistics write them for, or take them from, the batch norms of
 * the same input (kcuda_bn_train_shared; runtime/plan.c, DARTSC_SHARE_BN_STATS); pools
 * write their outputs' as they write them (DARTSC_POOL_BN_STATS). */
static int cu_shares_stats(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op == IR_OP_MAXPOOL || n->op == IR_OP_AVGPOOL) { /* pools write their outputs' (kcuda_pool_forward_stats) */
        if (n->in[0].ndim != 4 || n->out.ndim != 4) return 0;
        kpool_desc d = pool_desc(n);
        return kcuda_pool_stats_ok(&d);
    }
    if (n->op != IR_OP_BATCHNORM || n->in[0].ndim < 2 || n->bn_sync) return 0;
    kbn_desc d = bn_desc(n);
    return (int64_t)d.N * d.HW < ((int64_t)1 << 31);
}

/* ---- batches (runtime/schedule.c groups; kernels/cuda/kcuda.h "batched launches") ---- */

static int same_tref(const rt_tref *x, const rt_tref *y) {
    if (x->ndim != y->ndim || x->numel != y->numel || (x->data == NULL) != (y->data == NULL) ||
        (x->grad == NULL) != (y->grad == NULL) || (x->affine == NULL) != (y->affine == NULL))
        return 0;
    for (int k = 0; k < x->ndim; k++)
        if (x->shape[k] != y->shape[k]) return 0;
    return 1;
}

/* The same op over the same shapes, attributes and modes, with a batched kernel path:
 * convolutions on the depthwise plane kernels or the own 1x1 kernels, batch norms with
 * batch statistics (not sync_bn), pooling, mixed ops (MIXED, WMIXED) of up to
 * KCUDA_MIXED_BATCH_INPUTS candidates (any alpha or weight rows; the same columns, set bits
 * and deferred inputs). None uses the lane's scratch. */
static int cu_batches(rt_backend *be, int bwd, const rt_exec_node *a, const rt_exec_node *b) {
    if (!((cuda_backend *)be)->batch) return 0;
    if (a->op != b->op || a->n_in != b->n_in || a->training != b->training || a->relu_in != b->relu_in ||
        a->grad_set != b->grad_set || a->defer_out != b->defer_out ||
        (a->out_grad_scale == NULL) != (b->out_grad_scale == NULL) || a->bn_sync || b->bn_sync ||
        (bwd && (a->nmore > 0) != (b->nmore > 0)) ||
        ((a->seed_dev || b->seed_dev) && a->op != IR_OP_DROP_PATH))
        return 0;
    /* a mixed op's alpha (weight) row is its own */
    const int ia0 = a->op == IR_OP_MIXED || a->op == IR_OP_WMIXED ? IR_A_MIXED_COL0 : 0;
    if (memcmp(a->iattr + ia0, b->iattr + ia0, (IR_MAX_IATTR - ia0) * sizeof *a->iattr) != 0 ||
        memcmp(a->fattr, b->fattr, IR_MAX_FATTR * sizeof *a->fattr) != 0)
        return 0;
    if (!same_tref(&a->out, &b->out)) return 0;
    for (int i = 0; i < a->n_in; i++)
        if (!same_tref(&a->in[i], &b->in[i])) return 0;
    switch (a->op) {
    case IR_OP_CONV2D: {
        kconv2d_desc d = conv_desc(a);
        return kcuda_conv2d_batch_ok(&d, a->relu_in);
    }
    case IR_OP_BATCHNORM: {
        if (!bwd && !(a->training || a->iattr[IR_A_BN_BATCH_STATS])) return 0;
        if (!bwd && (a->stats_in == NULL) != (b->stats_in == NULL)) return 0; /* takers of shared statistics together */
        kbn_desc d = bn_desc(a);
        return kcuda_bn_batch_ok(&d);
    }
    case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: /* all or none write statistics, for as many batch norms each */
        return bwd || (pool_stats(a) == pool_stats(b) && (!pool_stats(a) || a->ntakers == b->ntakers));
    /* drop paths that draw their masks from seeds on the device (a recorded pass), and any
       drop path's backward (its mask saved) */
    case IR_OP_DROP_PATH:
        return a->in[0].ndim >= 1 && a->in[0].shape[0] > 0 && a->in[0].numel > 0 &&
               (bwd || (a->training && a->fattr[IR_F_P] > 0 && a->seed_dev && b->seed_dev));
    case IR_OP_MIXED: return kcuda_mixed_batch_ok(a->n_in - 1, (int)a->in[0].shape[1], a->out.numel);
    case IR_OP_WMIXED: return kcuda_wmixed_batch_ok(a->n_in - 1, a->out.numel);
    default: return 0;
    }
}

static void cu_run_batch(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int count) {
    cudaStream_t s = S(be);
    const rt_exec_node *a = nodes[0];
    for (int i0 = 0; i0 < count; i0 += KCUDA_MAX_BATCH) {
        const int m = count - i0 < KCUDA_MAX_BATCH ? count - i0 : KCUDA_MAX_BATCH;
        const rt_exec_node *const *nd = nodes + i0;
        float *p[12][KCUDA_MAX_BATCH];
        /* p[k][i]: pointer k of node i; arr(k) the array, or NULL where node 0's is NULL */
#define COL(k, field) for (int i = 0; i < m; i++) p[k][i] = (float *)(nd[i]->field)
#define ARR(k, field) (a->field ? (float *const *)p[k] : NULL)
        switch (a->op) {
        case IR_OP_CONV2D: {
            kconv2d_desc d = conv_desc(a);
            COL(0, in[0].data);
            COL(1, in[1].data);
            const float *const *af = NULL; /* deferred batch norms (same_tref: all or none) */
            if (a->in[0].affine) {
                COL(6, in[0].affine);
                af = (const float *const *)p[6];
            }
            if (!bwd) {
                COL(2, out.data);
                if (af)
                    kcuda_conv2d_relu_affine_forward_batch(m, p[2], (const float *const *)p[0], af,
                                                           (const float *const *)p[1], &d, s);
                else
                    kcuda_conv2d_forward_batch(m, p[2], (const float *const *)p[0], (const float *const *)p[1], &d,
                                               a->relu_in, s);
                break;
            }
            COL(3, out.grad);
            COL(4, in[0].grad);
            COL(5, in[1].grad);
            if (af) {
                if (a->in[0].grad)
                    kcuda_conv2d_relu_affine_backward_data_batch(m, p[4], (const float *const *)p[3],
                                                                 (const float *const *)p[1], (const float *const *)p[0],
                                                                 af, &d, (int)(a->grad_set & 1u), s);
                if (a->in[1].grad)
                    kcuda_conv2d_relu_affine_backward_filter_batch(m, p[5], (const float *const *)p[3],
                                                                   (const float *const *)p[0], af, &d, s);
                break;
            }
            if (a->in[0].grad)
                kcuda_conv2d_backward_data_batch(m, p[4], (const float *const *)p[3], (const float *const *)p[1],
                                                 a->relu_in ? (const float *const *)p[0] : NULL, &d,
                                                 (int)(a->grad_set & 1u), s);
            if (a->in[1].grad)
                kcuda_conv2d_backward_filter_batch(m, p[5], (const float *const *)p[3], (const float *const *)p[0],
                                                   &d, a->relu_in, s);
            break;
        }
        case IR_OP_BATCHNORM: {
            kbn_desc d = bn_desc(a);
            const int C = d.C;
            COL(0, in[0].data);
            COL(1, in[1].data);
            COL(2, in[2].data);
            COL(3, in[3].data);
            COL(4, in[4].data);
            for (int i = 0; i < m; i++) p[5][i] = nd[i]->aux, p[6][i] = nd[i]->aux + C;
            const float *const *x = (const float *const *)p[0];
            const float *const *gamma = (const float *const *)ARR(1, in[1].data);
            const float *const *beta = (const float *const *)ARR(2, in[2].data);
            float *const *rmean = ARR(3, in[3].data), *const *rvar = ARR(4, in[4].data);
            if (!bwd) {
                /* the statistics written for the batch norms of the same input, or (cu_batches:
                   all or none) taken from them; every pointer NULL where none shares */
                double *so[KCUDA_MAX_BATCH];
                const double *si[KCUDA_MAX_BATCH];
                for (int i = 0; i < m; i++) so[i] = nd[i]->stats_out, si[i] = nd[i]->stats_in;
                if (a->defer_out) {
                    for (int i = 0; i < m; i++) p[7][i] = nd[i]->aux + 2 * C;
                } else {
                    COL(7, out.data);
                }
                kcuda_bn_train_shared(m, a->defer_out ? NULL : p[7], a->defer_out ? p[7] : NULL, p[5], p[6], rmean, rvar,
                                      x, gamma, beta, so, a->stats_in ? si : NULL, &d, s);
                break;
            }
            COL(7, out.grad);
            COL(8, in[0].grad);
            COL(9, out_grad_scale);
            COL(10, in[1].grad);
            COL(11, in[2].grad);
            kbn_more mo[KCUDA_MAX_BATCH]; /* cu_batches: all of the batch sum further gradients or none */
            for (int i = 0; i < m; i++) mo[i] = more_of(nd[i]);
            kcuda_bn_backward_sum_batch(m, ARR(8, in[0].grad), ARR(10, in[1].grad), ARR(11, in[2].grad),
                                        (const float *const *)p[7], (const float *const *)ARR(9, out_grad_scale),
                                        a->nmore ? mo : NULL, x, gamma, (const float *const *)p[5],
                                        (const float *const *)p[6], &d, (int)(a->grad_set & 1u), s);
            break;
        }
        case IR_OP_MAXPOOL: case IR_OP_AVGPOOL: {
            kpool_desc d = pool_desc(a);
            const bool mx = a->op == IR_OP_MAXPOOL;
            COL(0, in[0].data);
            if (!bwd) {
                COL(1, out.data);
                if (pool_stats(a)) { /* cu_batches: every node of the batch, each with ntakers */
                    double *so[KCUDA_MAX_BATCH];
                    kbn_taker tk[KCUDA_MAX_BATCH * RT_POOL_TAKERS];
                    for (int i = 0; i < m; i++) so[i] = nd[i]->stats_out, pool_takers(nd[i], tk + i * a->ntakers);
                    kcuda_pool_forward_stats(m, mx, p[1], (const float *const *)p[0], so, a->ntakers, tk, &d, s);
                    break;
                }
                (mx ? kcuda_maxpool_forward_batch : kcuda_avgpool_forward_batch)(m, p[1], (const float *const *)p[0],
                                                                                 &d, s);
                break;
            }
            if (!a->in[0].grad) break;
            COL(1, in[0].grad);
            COL(2, out.grad);
            if (mx) kcuda_maxpool_backward_batch(m, p[1], (const float *const *)p[2], (const float *const *)p[0], &d, s);
            else kcuda_avgpool_backward_batch(m, p[1], (const float *const *)p[2], &d, s);
            break;
        }
        case IR_OP_DROP_PATH: {
            const int N = (int)a->in[0].shape[0];
            const int64_t per = a->in[0].numel / N;
            for (int i = 0; i < m; i++) p[2][i] = nd[i]->aux; /* the masks */
            if (!bwd) {
                const uint64_t *seeds[KCUDA_MAX_BATCH];
                for (int i = 0; i < m; i++) seeds[i] = nd[i]->seed_dev;
                COL(0, in[0].data);
                COL(1, out.data);
                kcuda_droppath_forward_batch(m, p[1], p[2], (const float *const *)p[0], N, per, a->fattr[IR_F_P], seeds,
                                             s);
                break;
            }
            if (!a->in[0].grad) break;
            COL(0, in[0].grad);
            COL(1, out.grad);
            kcuda_droppath_backward_batch(m, p[0], (const float *const *)p[1], (const float *const *)p[2], N, per,
                                          (int)(a->grad_set & 1u), s);
            break;
        }
        case IR_OP_MIXED: { /* rows of alpha (and of its gradient) per node; candidates i * nc + k */
            const int O = (int)a->in[0].shape[1], nc = a->n_in - 1;
            int C = 1, HW = 1;
            const float *xs[KCUDA_MAX_BATCH * KCUDA_MIXED_BATCH_INPUTS], *aff[KCUDA_MAX_BATCH * KCUDA_MIXED_BATCH_INPUTS];
            float *dxs[KCUDA_MAX_BATCH * KCUDA_MIXED_BATCH_INPUTS];
            for (int i = 0; i < m; i++) {
                const rt_exec_node *n = nd[i];
                const int64_t row = n->iattr[IR_A_MIXED_ROW] * O;
                mixed_affine(n, aff + i * nc, &C, &HW);
                for (int k = 0; k < nc; k++) {
                    xs[i * nc + k] = F(n->in[k + 1]);
                    dxs[i * nc + k] = n->in[k + 1].grad;
                }
                p[0][i] = n->aux; /* the softmax */
                p[1][i] = bwd ? n->out.grad : F(n->in[0]) + row;
                p[2][i] = bwd ? (n->in[0].grad ? n->in[0].grad + row : NULL) : F(n->out);
            }
            if (!bwd)
                kcuda_mixed_forward_batch(m, p[2], p[0], (const float *const *)p[1], xs, a->iattr + IR_A_MIXED_COL0, nc, O,
                                          a->out.numel, aff, C, HW, s);
            else
                kcuda_mixed_backward_batch(m, dxs, a->in[0].grad ? p[2] : NULL, (const float *const *)p[1], xs,
                                           (const float *const *)p[0], a->iattr + IR_A_MIXED_COL0, nc, O,
                                           a->out.numel, a->grad_set >> 1, aff, C, HW, s);
            break;
        }
        case IR_OP_WMIXED: { /* rows of the weights (and of their gradient) per node; candidates i * nc + k */
            const int64_t O = a->in[0].shape[1];
            const int nc = a->n_in - 1;
            const float *xs[KCUDA_MAX_BATCH * KCUDA_MIXED_BATCH_INPUTS];
            float *dxs[KCUDA_MAX_BATCH * KCUDA_MIXED_BATCH_INPUTS];
            for (int i = 0; i < m; i++) {
                const rt_exec_node *n = nd[i];
                const int64_t row = n->iattr[IR_A_MIXED_ROW] * O;
                for (int k = 0; k < nc; k++) {
                    xs[i * nc + k] = F(n->in[k + 1]);
                    dxs[i * nc + k] = n->in[k + 1].grad;
                }
                p[0][i] = F(n->in[0]) + row; /* the weight row */
                p[1][i] = bwd ? n->out.grad : F(n->out);
                p[2][i] = n->in[0].grad ? n->in[0].grad + row : NULL;
            }
            if (!bwd)
                kcuda_wmixed_forward_batch(m, p[1], (const float *const *)p[0], xs, a->iattr + IR_A_MIXED_COL0, nc,
                                           a->out.numel, s);
            else
                kcuda_wmixed_backward_batch(m, dxs, a->in[0].grad ? p[2] : NULL, (const float *const *)p[1], xs,
                                            (const float *const *)p[0], a->iattr + IR_A_MIXED_COL0, nc, a->out.numel,
                                            a->grad_set >> 1, s);
            break;
        }
        default: /* cu_batches accepts no other op */
            for (int i = 0; i < m; i++) (bwd ? cu_backward : cu_forward)(be, nd[i]);
            break;
        }
#undef COL
#undef ARR
    }
}

/* ---- variants (backend.h; rt_step_run's autotuning) ----
 * Batched launches on or off and one-launch reductions on or off give the same bits
 * (cuda_batch*, cuda_one_launch*, cuda_net/batched*), so whichever of the two switches the
 * environment leaves unset is a variant: up to 4, variant 0 the configured one, bit 0 of
 * k batching flipped, bit 1 the one-launch reductions (of the free switches, in turn). */
static int cu_variants(rt_backend *be) {
    const cuda_backend *cb = (const cuda_backend *)be;
    return 1 << (cb->free_batch + cb->free_one_launch);
}
static void cu_variant_of(const cuda_backend *cb, int k, int *batch, int *one_launch) {
    int bit = 0;
    *batch = cb->batch0;
    *one_launch = cb->one_launch0;
    if (cb->free_batch) *batch ^= k >> bit++ & 1;
    if (cb->free_one_launch) *one_launch ^= k >> bit & 1;
}
static void cu_set_variant(rt_backend *be, int k) {
    cuda_backend *cb = (cuda_backend *)be;
    int b, ol;
    cu_variant_of(cb, k, &b, &ol);
    cb->batch = b;
    kcuda_set_one_launch(ol);
}
static const char *cu_variant_name(rt_backend *be, int k) {
    int b, ol;
    cu_variant_of((const cuda_backend *)be, k, &b, &ol);
    static const char *const names[4] = {"unbatched", "batched", "unbatched one-launch", "batched one-launch"};
    return names[b + 2 * ol];
}

static size_t cu_scratch(rt_backend *be, const rt_exec_node *n) {
    (void)be;
    if (n->op != IR_OP_CONV2D) return 0;
    kconv2d_desc d = conv_desc(n);
    return kcuda_conv2d_scratch_floats(&d);
}

static void cu_axpy(rt_backend *be, float *y, float a, const float *x, int64_t n) { kcuda_axpy(y, a, x, n, S(be)); }
static void cu_copy(rt_backend *be, float *y, const float *x, int64_t n) { kcuda_copy(y, x, n, S(be)); }
static void cu_scale(rt_backend *be, float *y, float a, int64_t n) { kcuda_scale(y, a, y, n, S(be)); }
static double cu_sumsq(rt_backend *be, const float *x, int64_t n) { return kcuda_sumsq(x, n, S(be)); }
static void cu_clip_norm(rt_backend *be, float *x, int64_t n, float max_norm) { kcuda_clip_norm(x, n, max_norm, S(be)); }
static void cu_zero_one_grad(rt_backend *be, float *grad, const float *alpha, int64_t n, float weight) {
    kcuda_zero_one_grad(grad, alpha, n, weight, S(be));
}
static void cu_clip_norm_to(rt_backend *be, float *x, int64_t n, float max_norm, float *norm) {
    kcuda_clip_norm_to(x, n, max_norm, norm, S(be));
}
/* the radius by kcuda_hvp_eps (its scale for eta 1 is overwritten), then the scale for eta
   in device memory by the same expression */
static void cu_hvp_eps(rt_backend *be, float *eps, const float *v, int64_t n, double r, const float *eta, int bug_mul_r) {
    kcuda_hvp_eps(eps, v, n, r, 1.0f, bug_mul_r, S(be));
    kcuda_hvp_scale_dev(eps, eta, bug_mul_r, S(be));
}
static void cu_axpy_dev(rt_backend *be, float *y, const float *a, const float *x, int64_t n) {
    kcuda_axpy_dev(y, a, x, n, S(be));
}
static void cu_scale_dev(rt_backend *be, float *y, const float *a, int64_t n) { kcuda_scale_dev(y, a, n, S(be)); }
static void cu_sgd(rt_backend *be, float *w, float *buf, const float *g, int64_t n, float lr, float mom, float wd) {
    kcuda_sgd_step(w, buf, g, n, lr, mom, wd, S(be));
}
static void cu_adam(rt_backend *be, float *w, float *m, float *v, const float *g, int64_t n, float lr, float b1, float b2,
                    float eps, float wd, int t) {
    kcuda_adam_step(w, m, v, g, n, lr, b1, b2, eps, wd, t, S(be));
}
static void cu_sgd_dev(rt_backend *be, float *w, float *buf, const float *g, int64_t n, const float *lr, float mom,
                       float wd, const float *guard, int nguard) {
    kcuda_sgd_step_dev(w, buf, g, n, lr, mom, wd, guard, nguard, S(be));
}
static void cu_adam_dev(rt_backend *be, float *w, float *m, float *v, const float *g, int64_t n, const float *sc,
                        float b1, float b2, float eps, float wd, const float *guard, int nguard) {
    kcuda_adam_step_dev(w, m, v, g, n, sc, b1, b2, eps, wd, guard, nguard, S(be));
}
static void cu_sync(rt_backend *be) { cudaCheck(cudaStreamSynchronize(S(be))); }
static void cu_fill_seeds(rt_backend *be, uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes) {
    kcuda_fill_seeds(seeds, base, step, nodes, S(be));
}

/* ---- lanes ----
 * Made on first request: a non-blocking stream, cuDNN and cuBLAS handles bound to it,
 * its own 32 MiB cuBLAS workspace, and the kernels' partials buffers (kcuda_add_lane).
 * Lanes run concurrently only inside a recording: capture_begin forks every lane from
 * lane 0 (they wait on an event recorded there, which also pulls them into the capture),
 * capture_end joins them back, so the recorded graph has the cross-lane edges the
 * runtime asked for by lane_signal / lane_wait and nothing runs on a lane outside it. */
#define CU_DEFAULT_LANES 8
static int cu_add_lane(cuda_backend *cb) {
    cu_lane *l = &cb->lane[cb->nlanes];
    cudaCheckR(cudaStreamCreateWithFlags(&l->s, cudaStreamNonBlocking), -1);
    cudaCheckR(cudaEventCreateWithFlags(&l->join, cudaEventDisableTiming), -1);
    cudnnCheckR(cudnnCreate(&l->dnn), -1);
    cudnnCheckR(cudnnSetStream(l->dnn, l->s), -1);
    cublasCheckR(cublasCreate(&l->blas), -1);
    cublasCheckR(cublasSetStream(l->blas, l->s), -1);
    cublasCheckR(cublasSetMathMode(l->blas, CUBLAS_DEFAULT_MATH), -1);
    cudaCheckR(cudaMalloc(&l->blas_ws, (size_t)32 << 20), -1);
    cublasCheckR(cublasSetWorkspace(l->blas, l->blas_ws, (size_t)32 << 20), -1);
    if (kcuda_add_lane(l->dnn, l->blas) != cb->nlanes) return -1;
    /* A handle's first call may set itself up (allocate, load), which a capture cannot
     * record: one small cuDNN convolution and one cuBLAS 1x1 on the new lane, eagerly. */
    float *buf = NULL;
    kconv2d_desc d = {1, 1, 3, 3, 1, 3, 3, 0, 0, 1, 1, 1, 1, 1, 1, 1};
    kconv2d_desc_finish(&d);
    kconv2d_desc p = {1, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1};
    kconv2d_desc_finish(&p);
    size_t ws = kcuda_conv2d_scratch_floats(&d), wp = kcuda_conv2d_scratch_floats(&p);
    size_t nf = 64 + (ws > wp ? ws : wp);
    cudaCheckR(cudaMalloc((void **)&buf, nf * sizeof(float)), -1);
    cudaCheckR(cudaMemsetAsync(buf, 0, nf * sizeof(float), l->s), -1);
    kcuda_set_lane(cb->nlanes);
    kcuda_conv2d_forward(buf + 16, buf, buf + 32, &d, buf + 64, l->s);
    kcuda_conv2d_forward(buf + 16, buf, buf + 32, &p, buf + 64, l->s);
    kcuda_set_lane(cb->cur);
    cudaError_t e = cudaStreamSynchronize(l->s);
    cudaFree(buf);
    cudaCheckR(e, -1);
    if (kcuda_last_error()) return -1;
    cb->nlanes++;
    return 0;
}
static int cu_lanes(rt_backend *be) {
    cuda_backend *cb = (cuda_backend *)be;
    if (cb->nlanes < cb->want_lanes) {
        if (!cb->fork) cudaCheckR(cudaEventCreateWithFlags(&cb->fork, cudaEventDisableTiming), 1);
        while (cb->nlanes < cb->want_lanes)
            if (cu_add_lane(cb) != 0) { /* keep the lanes made; record no more */
                cb->want_lanes = cb->nlanes;
                break;
            }
    }
    return cb->nlanes;
}
static void cu_set_lane(rt_backend *be, int k) {
    cuda_backend *cb = (cuda_backend *)be;
    if (k < 0 || k >= cb->nlanes) k = 0;
    cb->cur = k;
    kcuda_set_lane(k);
}
static int cu_point(cuda_backend *cb, int id) {
    if (id < 0) return -1;
    if (id >= cb->npoints) {
        int n = cb->npoints ? cb->npoints : 1024;
        while (n <= id) n *= 2;
        cudaEvent_t *ev = (cudaEvent_t *)realloc(cb->points, (size_t)n * sizeof *ev);
        if (!ev) KCUDA_FAIL_("cu_point", "out of host memory", return -1);
        cb->points = ev;
        for (; cb->npoints < n; cb->npoints++)
            cudaCheckR(cudaEventCreateWithFlags(&ev[cb->npoints], cudaEventDisableTiming), -1);
    }
    return 0;
}
static void cu_lane_signal(rt_backend *be, int id) {
    cuda_backend *cb = (cuda_backend *)be;
    if (cu_point(cb, id) == 0) cudaCheck(cudaEventRecord(cb->points[id], S(be)));
}
static void cu_lane_wait(rt_backend *be, int id) {
    cuda_backend *cb = (cuda_backend *)be;
    if (id >= 0 && id < cb->npoints) cudaCheck(cudaStreamWaitEvent(S(be), cb->points[id], 0));
}

/* CUDA graphs by stream capture: every kernel, cuBLAS/cuDNN call and memset of a pass
 * becomes one node of one graph, launched with one call. Thread-local mode: only this
 * thread's unsafe calls (a synchronisation, an allocation) invalidate the capture. */
typedef struct cu_graph {
    cudaGraphExec_t x;
    void *ptr_tables; /* the batched cuBLAS calls' pointer arrays it reads (kcuda_record_end) */
} cu_graph;
static int cu_capture_begin(rt_backend *be) {
    cuda_backend *cb = (cuda_backend *)be;
    cu_set_lane(be, 0);
    const cudaError_t e = cudaStreamBeginCapture(cb->s, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) KCUDA_FAIL_("cudaStreamBeginCapture", cudaGetErrorString(e), return -1);
    kcuda_record_begin();
    cudaError_t ef = cudaSuccess;
    if (cb->nlanes > 1) {
        ef = cudaEventRecord(cb->fork, cb->s);
        for (int k = 1; k < cb->nlanes && ef == cudaSuccess; k++) ef = cudaStreamWaitEvent(cb->lane[k].s, cb->fork, 0);
    }
    if (ef != cudaSuccess) { /* no recording: the stream leaves capture mode */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(cb->s, &g) == cudaSuccess && g) cudaGraphDestroy(g);
        void *none = NULL;
        kcuda_record_end(0, cb->s, &none);
        KCUDA_FAIL_("cu_capture_begin: forking the lanes", cudaGetErrorString(ef), return -1);
    }
    return 0;
}
static void *cu_capture_end(rt_backend *be) {
    cuda_backend *cb = (cuda_backend *)be;
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    cu_set_lane(be, 0);
    cudaError_t ej = cudaSuccess;
    for (int k = 1; k < cb->nlanes && ej == cudaSuccess; k++) { /* join: a capture must end with every forked
                                                                    stream rejoined */
        ej = cudaEventRecord(cb->lane[k].join, cb->lane[k].s);
        if (ej == cudaSuccess) ej = cudaStreamWaitEvent(cb->s, cb->lane[k].join, 0);
    }
    cudaError_t ee = cudaStreamEndCapture(cb->s, &g); /* ends it in any case */
    if (ej != cudaSuccess && ee == cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        ee = ej;
    }
    void *tabs = NULL; /* the capture is over either way */
    const int et = kcuda_record_end(ee == cudaSuccess, cb->s, &tabs);
    if (ee != cudaSuccess) KCUDA_FAIL_("cu_capture_end", cudaGetErrorString(ee), return NULL);
    if (et != 0) { /* its GEMMs would read tables that are not there */
        cudaGraphDestroy(g);
        return NULL;
    }
    cudaError_t e = cudaGraphInstantiateWithFlags(&x, g, 0);
    cudaGraphDestroy(g); /* the executable graph keeps what it needs */
    cu_graph *r = e == cudaSuccess ? (cu_graph *)malloc(sizeof *r) : NULL;
    if (!r) {
        if (e == cudaSuccess) cudaGraphExecDestroy(x);
        kcuda_record_free(tabs);
        KCUDA_FAIL_("cudaGraphInstantiateWithFlags", e != cudaSuccess ? cudaGetErrorString(e) : "out of host memory",
                    return NULL);
    }
    r->x = x;
    r->ptr_tables = tabs;
    return r;
}
static void cu_replay(rt_backend *be, void *graph) {
    cudaCheck(cudaGraphLaunch(((cu_graph *)graph)->x, ((cuda_backend *)be)->s));
}
static void cu_graph_free(rt_backend *be, void *graph) {
    cu_graph *r = (cu_graph *)graph;
    if (!r) return;
    cudaGraphExecDestroy(r->x); /* teardown: nothing to do about a failure */
    if (r->ptr_tables) { /* a replay still running may read them: it ends before they go */
        cudaStreamSynchronize(((cuda_backend *)be)->s);
        kcuda_record_free(r->ptr_tables);
    }
    free(r);
}

/* Teardown: errors are ignored (nothing left to do about them). */
static void cu_release(cuda_backend *cb) {
    if (cb->s) cudaStreamSynchronize(cb->s);
    for (int k = 1; k < cb->nlanes; k++)
        if (cb->lane[k].s) cudaStreamSynchronize(cb->lane[k].s);
    kcuda_shutdown();
    for (int k = 1; k < KCUDA_MAX_LANES; k++) {
        cu_lane *l = &cb->lane[k];
        if (l->blas) cublasDestroy(l->blas);
        if (l->blas_ws) cudaFree(l->blas_ws);
        if (l->dnn) cudnnDestroy(l->dnn);
        if (l->join) cudaEventDestroy(l->join);
        if (l->s) cudaStreamDestroy(l->s);
    }
    if (cb->fork) cudaEventDestroy(cb->fork);
    for (int i = 0; i < cb->npoints; i++) cudaEventDestroy(cb->points[i]);
    free(cb->points);
    if (cb->blas) cublasDestroy(cb->blas);
    if (cb->blas_ws) cudaFree(cb->blas_ws);
    if (cb->dnn) cudnnDestroy(cb->dnn);
    if (cb->s) cudaStreamDestroy(cb->s);
    for (int i = 0; i < cb->nevents; i++) cudaEventDestroy(cb->events[i]);
    free(cb->events);
    for (int i = 0; i < cb->npend; i++) cudaEventDestroy(cb->pend[i].ev);
    for (int i = 0; i < cb->nspare; i++) cudaEventDestroy(cb->spare[i]);
    if (cb->stage) cudaFreeHost(cb->stage);
    free(cb->blocks);
    free(cb);
}
static void cu_destroy(rt_backend *be) {
    cu_release((cuda_backend *)be);
    g_live = 0;
}

static int g_device_index; /* rt_cuda_set_device_index */

/* Builds the backend or returns NULL with err set; err may be NULL. */
static cuda_backend *cu_create(char *err, size_t errlen) {
#define CU_NEW_FAIL(...) do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); if (cb) cu_release(cb); return NULL; } while (0)
    cuda_backend *cb = NULL;
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess) CU_NEW_FAIL("no usable CUDA device: cudaGetDeviceCount: %s", cudaGetErrorString(e));
    if (ndev <= 0) CU_NEW_FAIL("no usable CUDA device: cudaGetDeviceCount found 0 devices");
    if (g_live) CU_NEW_FAIL("a CUDA backend already exists in this process (destroy it first)");
    cb = (cuda_backend *)calloc(1, sizeof *cb);
    if (!cb) CU_NEW_FAIL("out of memory");
    /* data-parallel runs: each process of a host takes the GPU of its local rank (docs/SCALING.md) */
    const int dev = g_device_index % ndev;
    if ((e = cudaSetDevice(dev)) != cudaSuccess) CU_NEW_FAIL("cudaSetDevice(%d): %s", dev, cudaGetErrorString(e));
    if ((e = cudaStreamCreateWithFlags(&cb->s, cudaStreamNonBlocking)) != cudaSuccess)
        CU_NEW_FAIL("cudaStreamCreate: %s", cudaGetErrorString(e));
    cudnnStatus_t ds = cudnnCreate(&cb->dnn);
    if (ds != CUDNN_STATUS_SUCCESS) { cb->dnn = NULL; CU_NEW_FAIL("cudnnCreate: %s", cudnnGetErrorString(ds)); }
    if ((ds = cudnnSetStream(cb->dnn, cb->s)) != CUDNN_STATUS_SUCCESS) CU_NEW_FAIL("cudnnSetStream: %s", cudnnGetErrorString(ds));
    cublasStatus_t bs = cublasCreate(&cb->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) { cb->blas = NULL; CU_NEW_FAIL("cublasCreate: %s", cublasGetStatusString(bs)); }
    if ((bs = cublasSetStream(cb->blas, cb->s)) != CUBLAS_STATUS_SUCCESS)
        CU_NEW_FAIL("cublasSetStream: %s", cublasGetStatusString(bs));
    /* plain FP32 GEMMs: no TF32 tensor-op math (it would cost ~1e-3 relative accuracy) */
    if ((bs = cublasSetMathMode(cb->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        CU_NEW_FAIL("cublasSetMathMode: %s", cublasGetStatusString(bs));
    /* 32 MiB: what cuBLAS's documentation recommends for Hopper */
    if ((e = cudaMalloc(&cb->blas_ws, (size_t)32 << 20)) != cudaSuccess)
        CU_NEW_FAIL("cudaMalloc (cuBLAS workspace): %s", cudaGetErrorString(e));
    if ((bs = cublasSetWorkspace(cb->blas, cb->blas_ws, (size_t)32 << 20)) != CUBLAS_STATUS_SUCCESS)
        CU_NEW_FAIL("cublasSetWorkspace: %s", cublasGetStatusString(bs));
    if (kcuda_init(cb->s, cb->dnn, cb->blas) != 0) CU_NEW_FAIL("kcuda_init: %s", kcuda_last_error());
    cb->nlanes = 1;
    cb->want_lanes = CU_DEFAULT_LANES;
    if (const char *v = getenv("DARTSC_CUDA_LANES")) {
        char *end;
        long k = strtol(v, &end, 10);
        if (*v && !*end && k >= 1 && k <= KCUDA_MAX_LANES) cb->want_lanes = (int)k;
        else CU_NEW_FAIL("DARTSC_CUDA_LANES=%s: want a whole number of lanes from 1 to %d", v, KCUDA_MAX_LANES);
    }
    const char *bt = getenv("DARTSC_CUDA_BATCH");
    cb->batch = bt && *bt && strcmp(bt, "0") != 0;
    cb->batch0 = cb->batch;
    cb->one_launch0 = kcuda_one_launch();
    /* batching changes bits where the cuBLAS 1x1s batch: not a variant then */
    cb->free_batch = !bt && !kcuda_batch_cublas();
    cb->free_one_launch = !getenv("DARTSC_CUDA_ONE_LAUNCH");
    return cb;
#undef CU_NEW_FAIL
}

extern "C" void rt_cuda_set_device_index(int index) { g_device_index = index > 0 ? index : 0; }

extern "C" rt_backend *rt_backend_cuda_new(char *err, size_t errlen) {
    cuda_backend *cb = cu_create(err, errlen);
    if (!cb) return NULL;
    g_live = 1;
    rt_backend *be = &cb->be;
    be->name = "cuda";
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->memset0 = cu_memset0;
    be->supports_op = cu_supports;
    be->scratch_floats = cu_scratch;
    be->forward = cu_forward;
    be->backward = cu_backward;
    be->axpy = cu_axpy;
    be->copy = cu_copy;
    be->scale = cu_scale;
    be->sumsq = cu_sumsq;
    be->hvp_eps = cu_hvp_eps;
    be->axpy_dev = cu_axpy_dev;
    be->scale_dev = cu_scale_dev;
    be->clip_norm = cu_clip_norm;
    be->clip_norm_to = cu_clip_norm_to;
    be->zero_one_grad = cu_zero_one_grad;
    be->sgd_step = cu_sgd;
    be->adam_step = cu_adam;
    be->sgd_step_dev = cu_sgd_dev;
    be->adam_step_dev = cu_adam_dev;
    be->synchronize = cu_sync;
    be->destroy = cu_destroy;
    be->peak_bytes = cu_peak_bytes;
    be->mem_info = cu_mem_info;
    be->mark = cu_mark;
    be->mark_elapsed = cu_mark_elapsed;
    be->marks_reset = cu_marks_reset;
    be->fuses_relu_in = cu_fuses_relu_in;
    be->sets_grad = cu_sets_grad;
    /* the batch norms before a mixed op deferred into it, their gradients read through its
     * (DARTSC_NO_FUSION=1 turns both off), and passes that draw dropout / drop-path masks
     * recorded with their seeds read on the device: on since test_cuda_backend passed with
     * them on the H200 (docs/BENCHMARKS.md) */
    be->scales_out_grad = cu_scales_out_grad;
    be->defers_output = cu_defers_output;
    be->shares_stats = cu_shares_stats;
    be->sums_out_grads = cu_sums_out_grads;
    be->fill_seeds = cu_fill_seeds;
    be->capture_begin = cu_capture_begin;
    be->capture_end = cu_capture_end;
    be->replay = cu_replay;
    be->graph_free = cu_graph_free;
    be->lanes = cu_lanes;
    be->set_lane = cu_set_lane;
    be->lane_signal = cu_lane_signal;
    be->lane_wait = cu_lane_wait;
    be->batches = cu_batches;
    be->run_batch = cu_run_batch;
    be->variants = cu_variants;
    be->set_variant = cu_set_variant;
    be->variant_name = cu_variant_name;
    return be;
}
