/* backend.h — the interface a compute backend fills (CPU now, CUDA beside it).
 *
 * The runtime plans memory and schedules; a backend owns device memory and runs one
 * node at a time, forward or backward, given resolved pointers. Backends see IR op codes
 * and attributes but never the graph. All pointers handed to a backend are its own
 * device pointers (host memory for the CPU backend).
 *
 * Gradient conventions follow the kernels: backward ACCUMULATES into every non-NULL
 * gradient pointer; a NULL gradient means "not asked for", and its work is skipped.
 */
#ifndef DARTSC_RT_BACKEND_H
#define DARTSC_RT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

#define RT_MAX_IN (IR_MAX_MIXED_INPUTS + 1)
#define RT_POOL_TAKERS 4 /* batch norms a pool runs the forwards of (rt_exec_node.takers) */
#define RT_MORE_GRADS 3  /* further output gradients a batch norm's backward sums (rt_exec_node.nmore) */
#define RT_MAX_BATCH 32 /* nodes in one rt_backend.run_batch */

typedef struct rt_tref {
    void *data;  /* float or int32 per dtype; NULL for an absent optional input */
    float *grad; /* NULL: no gradient wanted */
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    int64_t numel;
    const float *affine; /* input of a mixed op, or input 0 of a convolution with a folded
                            ReLU, only: NULL but where the producer's output is
                            deferred (rt_exec_node.defer_out): data is that batch norm's input,
                            and the value read is (data - a[c]) * a[C + c] + a[2C + c] for
                            channel c of (N, C, ...), a = affine (the producer's aux + 2C) */
} rt_tref;

typedef struct rt_exec_node {
    ir_op op;
    const int64_t *iattr;
    const float *fattr;
    int n_in;
    rt_tref in[RT_MAX_IN];
    rt_tref out;
    float *aux;      /* saved for backward: BN mean/invstd, masks, CE probs; see rt_aux_floats */
    float *scratch;  /* shared scratch, backend->scratch_floats() of the largest node */
    uint64_t seed;   /* dropout masks */
    const uint64_t *seed_dev; /* NULL, or where the backend reads the seed on the device instead
                        (a pass being recorded: the runtime fills each pass's seeds before a
                        replay with fill_seeds) */
    int training;    /* BN: batch statistics when training (or when the node says always) */
    int relu_in;     /* 1: a ReLU was fused into this node's input: in[0] is the ReLU's input,
                        the op reads max(0, in[0]) and in[0].grad gets the gradient through
                        the ReLU (only where the backend's fuses_relu_in said yes) */
    unsigned grad_set; /* backward: bit k set: in[k].grad holds garbage and this node's backward
                          must overwrite all of it, not add to it (only where the backend's
                          sets_grad said yes; the runtime then skips zeroing it) */
    const float *out_grad_scale; /* backward: non-NULL: this node's output gradient is
                          (*out_grad_scale) * out.grad, computed as it is read (only where the
                          backend's scales_out_grad said yes; see runtime/plan.c) */
    int defer_out;   /* forward: a batch norm whose one consumer (a mixed op, or a convolution
                        through its folded ReLU) applies it as it reads (backend
                        defers_output said yes): out.data is NULL; write the
                        statistics and the per-channel coefficients f, s, b (aux + 2C, so that
                        y = (x - f) * s + b) instead of y; see runtime/plan.c */
    const struct kbn_sync *bn_sync; /* batch norm: non-NULL: batch statistics over every
                        process of a data-parallel run (rt_plan_opts.bn_sync) */
    double *stats_out;  /* batch norm, forward with batch statistics: non-NULL: also write
                        the per-channel mean [c] and biased variance [C + c] it computed, in
                        double, for the batch norms of the same input (stats_in). A pool
                        (DARTSC_POOL_BN_STATS): the same of its output, for the batch norms
                        that read it, in every forward that is training or stats_always */
    int stats_always;   /* a pool with stats_out: one of its batch norms uses batch statistics
                        in every pass (IR_A_BN_BATCH_STATS), so write them in every pass */
    int ntakers;        /* a pool with stats_out: its deferred batch norms (defer_out, batch
                        statistics in every pass) whose forwards it runs as well, from the
                        statistics: their coefficients, saved and running statistics, what
                        their own forwards with stats_in write (the plan issues none of
                        them); at most RT_POOL_TAKERS */
    const struct rt_exec_node *takers[RT_POOL_TAKERS];
    const double *stats_in; /* batch norm, forward with batch statistics: non-NULL: the
                        statistics another batch norm of the same input wrote (stats_out);
                        use them instead of reading the input (only where the backend's
                        shares_stats said yes; see runtime/plan.c) */
    int nmore;          /* batch norm, backward: 0, or the number of other batch norms of the
                        same input, statistics and eps (affine-free, batch statistics in every
                        pass) whose backwards this one runs (only where the backend's
                        sums_out_grads said yes; DARTSC_SUM_BN_GRADS, runtime/plan.c): its
                        output gradient is then the float sum, in this order, of its own
                        (out.grad, times *out_grad_scale where set) and more_grad[k] (times
                        *more_scale[k] where non-NULL), k = 0..nmore-1, each product and each
                        sum rounded to float; set with the shapes, the pointers in backward */
    const float *more_grad[RT_MORE_GRADS];
    const float *more_scale[RT_MORE_GRADS];
} rt_exec_node;

typedef struct rt_backend rt_backend;
struct rt_backend {
    const char *name;
    void *(*alloc)(rt_backend *be, size_t bytes);
    void (*free)(rt_backend *be, void *p);
    /* src may be reused as soon as upload returns; the copy itself may still be queued (in
     * order with the work issued before and after it), so upload need not wait for the
     * device. download returns with the data on the host (it waits). */
    void (*upload)(rt_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(rt_backend *be, void *dst, const void *src, size_t bytes);
    void (*memset0)(rt_backend *be, void *p, size_t bytes);
    int (*supports_op)(rt_backend *be, ir_op op);
    size_t (*scratch_floats)(rt_backend *be, const rt_exec_node *n);
    void (*forward)(rt_backend *be, const rt_exec_node *n);
    void (*backward)(rt_backend *be, const rt_exec_node *n);
    /* Vector ops for optimisers and the second-order step, over flat parameter groups. */
    void (*axpy)(rt_backend *be, float *y, float a, const float *x, int64_t n);
    void (*copy)(rt_backend *be, float *y, const float *x, int64_t n);
    void (*scale)(rt_backend *be, float *y, float a, int64_t n); /* y *= a */
    double (*sumsq)(rt_backend *be, const float *x, int64_t n);
    /* May be NULL (then sumsq + scale on the host). Gradient-norm clipping without a host
     * round trip: norm = sqrt(sum x^2) in double, c = max_norm / (norm + 1e-6); x *= (float)c
     * where max_norm > 0 and c < 1 (torch.nn.utils.clip_grad_norm_). */
    void (*clip_norm)(rt_backend *be, float *x, int64_t n, float max_norm);
    /* clip_norm that keeps the norm where a guarded step reads it (every backend fills it):
     * the same clipping (the host's bits on the CPU: sumsq + scale), and norm[0] (backend
     * memory) = the norm as a float, computed where max_norm <= 0 too, FLT_MAX where it is
     * finite but beyond float's range (a finite norm stays finite), NaN or infinity as it
     * is: a guard value for sgd_step_dev, so that a non-finite gradient never reaches the
     * weights without a host round trip. */
    void (*clip_norm_to)(rt_backend *be, float *x, int64_t n, float max_norm, float *norm);
    /* The second-order step without a host round trip (every backend fills these three):
     * hvp_eps writes eps[0] = R = (float)(r / ||v||) (the norm in double, 1e-12 where v = 0),
     * eps[1] = -R and eps[2] = eta[0] / (2R) (eta[0] R / 2 where bug_mul_r) into eps, 3 floats
     * of backend memory, eta in backend memory too (a recorded step replays with the current
     * learning rate); axpy_dev: y += a[0] x and scale_dev: y *= a[0], with the scalar a in
     * backend memory (the same arithmetic as axpy and scale). */
    void (*hvp_eps)(rt_backend *be, float *eps, const float *v, int64_t n, double r, const float *eta, int bug_mul_r);
    void (*axpy_dev)(rt_backend *be, float *y, const float *a, const float *x, int64_t n);
    void (*scale_dev)(rt_backend *be, float *y, const float *a, int64_t n);
    void (*sgd_step)(rt_backend *be, float *w, float *buf, const float *grad, int64_t n, float lr, float momentum, float wd);
    void (*adam_step)(rt_backend *be, float *w, float *m, float *v, const float *grad, int64_t n, float lr, float b1,
                      float b2, float eps, float wd, int t);
    /* The optimiser steps with their per-step scalars in backend memory, so that a recorded
     * step (rt_step_run) replays with the current ones (every backend fills both): the
     * arithmetic of sgd_step with lr = lr[0], and of adam_step with sc[0] = lr / (1 - b1^t)
     * and sc[1] = sqrt(1 - b2^t) as rt_adam_scalars computes them. Both leave w and the
     * optimiser state untouched where any of guard[0..nguard-1] (backend memory: the step's
     * losses) is not finite: a diverged step never reaches the weights, and the loop, reading
     * the losses after the step, stops as it would have before it. */
    void (*sgd_step_dev)(rt_backend *be, float *w, float *buf, const float *grad, int64_t n, const float *lr,
                         float momentum, float wd, const float *guard, int nguard);
    void (*adam_step_dev)(rt_backend *be, float *w, float *m, float *v, const float *grad, int64_t n, const float *sc,
                          float b1, float b2, float eps, float wd, const float *guard, int nguard);
    /* May be NULL: no fusion. Whether this node (shapes and attributes filled, no
     * pointers) can take a ReLU on its input 0 (rt_exec_node.relu_in). */
    int (*fuses_relu_in)(rt_backend *be, const rt_exec_node *n);
    /* May be NULL: the runtime zeroes every gradient before its first contribution. Whether
     * this node's backward (pointers filled) can write the whole gradient of input k
     * instead of adding to it (rt_exec_node.grad_set). */
    int (*sets_grad)(rt_backend *be, const rt_exec_node *n, int k);
    /* May be NULL: no pass-through. Whether this node's backward (shapes filled) can read
     * its output gradient as a scalar times another node's (rt_exec_node.out_grad_scale). */
    int (*scales_out_grad)(rt_backend *be, const rt_exec_node *n);
    /* May be NULL: no deferral. Whether node n's forward (shapes filled) can leave its
     * output unapplied (rt_exec_node.defer_out) for its one consumer c, whose forward and
     * backward then read it through rt_tref.affine (c: a mixed op, or a convolution with
     * relu_in set whose folded ReLU reads n). */
    int (*defers_output)(rt_backend *be, const rt_exec_node *n, const rt_exec_node *c);
    /* May be NULL: every batch norm computes its own statistics. Whether batch norm n
     * (shapes filled) can write its batch statistics (stats_out) or take another's
     * (stats_in) instead of computing them: the same values either way; for a pool: whether
     * its forward can write its output's batch statistics (the values a batch norm of it
     * would write) as it writes the output, and run its takers' forwards (ntakers). */
    int (*shares_stats)(rt_backend *be, const rt_exec_node *n);
    /* May be NULL: every batch norm runs its own backward. Whether batch norm n (shapes and
     * nmore filled) can read its output gradient as the sum of 1 + nmore scaled gradients
     * (rt_exec_node.nmore). */
    int (*sums_out_grads)(rt_backend *be, const rt_exec_node *n);
    /* May be NULL (both): no batching. batches: whether the forwards (bwd 0) or backwards
     * (bwd 1) of nodes a and b (pointers filled, scratch not: a batch gets one lane's
     * scratch) can run as one through run_batch — the same work, one launch per kernel
     * instead of one per node. Asked only inside a recording on lanes, of nodes the
     * runtime found independent (rt_issue_lanes: neither reads or writes what the other
     * writes). run_batch issues the forwards or backwards of n (2..RT_MAX_BATCH) nodes that
     * batches accepted with nodes[0], each with the results (the bits) of its own call. */
    int (*batches)(rt_backend *be, int bwd, const rt_exec_node *a, const rt_exec_node *b);
    void (*run_batch)(rt_backend *be, int bwd, const rt_exec_node *const *nodes, int n);
    void (*synchronize)(rt_backend *be);
    void (*destroy)(rt_backend *be);
    /* May be NULL (all four): no recording. capture_begin starts recording the work
     * issued on the backend, which then runs nothing until capture_end returns it as a
     * replayable graph (NULL, with the error recorded, if it could not be recorded);
     * replay runs it once more, in order with other work; graph_free releases it. No
     * host synchronisation (download, sumsq, synchronize) may happen in between. */
    int (*capture_begin)(rt_backend *be);
    void *(*capture_end)(rt_backend *be);
    void (*replay)(rt_backend *be, void *graph);
    void (*graph_free)(rt_backend *be, void *graph);
    /* May be NULL (all four): one queue. Lanes are queues whose work may run concurrently
     * (streams), used only inside a recording (between capture_begin and capture_end,
     * which fork every lane from lane 0 and join them back). lanes makes them on first
     * call and returns how many there are (1: one queue); set_lane sends later work to
     * lane k (each lane has its own library state; the runtime gives each its own
     * scratch); lane_signal records point id (a small number, reusable once waited on)
     * on the current lane; lane_wait makes the current lane's later work wait for the
     * work before point id on its lane. Outside a recording everything runs on lane 0. */
    int (*lanes)(rt_backend *be);
    void (*set_lane)(rt_backend *be, int k);
    void (*lane_signal)(rt_backend *be, int id);
    void (*lane_wait)(rt_backend *be, int id);
    /* May be NULL (all three): no device timing. mark records a point in the backend's
     * work queue and returns its handle; mark_elapsed, after a synchronize, the seconds
     * the device took from mark a to mark b; marks_reset recycles every handle. */
    void *(*mark)(rt_backend *be);
    double (*mark_elapsed)(rt_backend *be, void *a, void *b);
    void (*marks_reset)(rt_backend *be);
    /* May be NULL: passes that draw dropout / drop-path masks are never recorded. Writes a
     * pass's seeds on the device, seeds[i] = krng_hash(base, step * nodes + i), in order
     * with other work (no synchronisation), for forwards that read rt_exec_node.seed_dev. */
    void (*fill_seeds)(rt_backend *be, uint64_t *seeds, uint64_t base, uint64_t step, int64_t nodes);
    /* May be NULL: not tracked. The most bytes this backend's alloc held at once since it
     * was made (device memory for CUDA; library workspaces and the context not counted). */
    size_t (*peak_bytes)(rt_backend *be);
    /* May be NULL: not known. The memory alloc draws on, free now and in all (CUDA: the
     * device's, cudaMemGetInfo; CPU: the machine's available and physical memory), for
     * the messages of a plan that does not fit. 0 on success. */
    int (*mem_info)(rt_backend *be, size_t *free_bytes, size_t *total_bytes);
    /* May be NULL (all three): one way to issue work. Variants are ways of issuing the same
     * work with the same results bit for bit that may differ in speed (CUDA: batched
     * launches on or off, one-launch reductions on or off); variants returns how many there
     * are (1: nothing to choose), set_variant(k) makes work issued from now on, recordings
     * included, use variant k (0: the configured one), variant_name(k) names it for reports.
     * rt_step_run's autotuning times whole steps under each (DARTSC_AUTOTUNE). */
    int (*variants)(rt_backend *be);
    void (*set_variant)(rt_backend *be, int k);
    const char *(*variant_name)(rt_backend *be, int k);
    /* May be NULL (FairDARTS then adds the term on the host, through download and upload):
     * FairDARTS' zero-one loss gradient added to grad in order with other work
     * (kcpu_zero_one_grad's arithmetic: the host's). */
    void (*zero_one_grad)(rt_backend *be, float *grad, const float *alpha, int64_t n, float weight);
};

/* Adam's per-step scalars for adam_step_dev at step t >= 1: sc[0] = lr / (1 - b1^t) and
 * sc[1] = sqrt(1 - b2^t), in double rounded to float, exactly as adam_step computes them. */
void rt_adam_scalars(float lr, float b1, float b2, int t, float sc[2]);

/* Floats of aux state a node keeps from forward to backward (same on every backend). */
size_t rt_aux_floats(const rt_exec_node *n);

rt_backend *rt_backend_cpu_new(void);

/* Pins each OpenMP thread of the CPU kernels to its own CPU of the process's allowed set
 * (thread t to the t-th allowed CPU), as OMP_PROC_BIND=close would: the kernels partition
 * every layer by sample, so a thread that stays on its core finds the activations it
 * wrote in that core's cache (7-8 % per search step on the 2-core test machine; PyTorch
 * gains as much from OMP_PROC_BIND, see docs/BENCHMARKS.md). Leaves threads alone, and
 * returns 0, where the user chose a binding (OMP_PROC_BIND, OMP_PLACES,
 * GOMP_CPU_AFFINITY), set DARTSC_NO_PIN, asked for more threads than allowed CPUs, or
 * runs one thread; returns the number of threads pinned otherwise. For programs (the
 * driver calls it); a library host keeps its own threads' affinity. */
int rt_cpu_pin_threads(void);
/* What the last rt_cpu_pin_threads returned (0 before any call). */
int rt_cpu_pinned_threads(void);
/* How many threads the CPU kernels run on (OpenMP's maximum), for reports: the driver
 * asks the runtime, never kernels/ (docs/ARCHITECTURE.md). */
int rt_cpu_num_threads(void);
/* The counter-based uniform in [0, 1) that parameter initialisation and dropout masks draw
 * from (krng_uniform, the same on CPU and GPU): a pure function of (seed, idx), so a
 * caller can make reproducible inputs from the same stream. */
float rt_rng_uniform(uint64_t seed, uint64_t idx);
/* NULL (and a message) when CUDA is not compiled in or no device is usable. */
rt_backend *rt_backend_cuda_new(char *err, size_t errlen);
/* The GPU the next CUDA backend takes: index modulo the devices (default 0). rt_backend_open
 * sets it to the process's local rank in a data-parallel run (runtime/dist.h). */
void rt_cuda_set_device_index(int index);

/* The backend a device name asks for: "cpu", "cuda" (NULL and a message where no device
 * is usable), or "auto"/NULL: CUDA where usable, else the CPU (never NULL). An unknown
 * name: NULL and a message naming the choices. */
rt_backend *rt_backend_open(const char *device, char *err, size_t errlen);
/* "cpu" or "cuda" for "auto"/NULL (probes the device once); any other name as given. */
const char *rt_device_resolve(const char *device);

#endif
