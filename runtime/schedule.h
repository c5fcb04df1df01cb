/* schedule.h — issuing a recorded pass on several lanes (runtime-internal).
 *
 * While a pass is being recorded, runtime/plan.c collects what it would issue (forward
 * and backward nodes, gradient zeroing, copies) into an rt_oplist instead of issuing it;
 * rt_issue_lanes then derives each op's dependences from the memory it reads and writes
 * (read after write, write after read, write after write, over device address ranges:
 * the plan reuses arena memory, so two ops without a data edge can still conflict) and
 * issues the ops on the backend's lanes, with a wait wherever an op depends on an op of
 * another lane. Every op issues exactly the work it would issue alone, on a lane of its
 * own choosing but after everything it depends on: the results are the bits of the
 * one-lane issue, only the order in which independent ops run changes.
 */
#ifndef DARTSC_RT_SCHEDULE_H
#define DARTSC_RT_SCHEDULE_H

#include "backend.h"
#include "runtime.h"

typedef enum { RT_OP_FWD, RT_OP_BWD, RT_OP_ZERO, RT_OP_COPY } rt_op_kind;

typedef struct rt_op {
    rt_op_kind kind;
    rt_exec_node e;  /* FWD, BWD: the node as it would be handed to the backend */
    void *dst;       /* ZERO: bytes at dst; COPY: floats from src to dst */
    const void *src;
    size_t n;
    int t;           /* the plan's schedule time of the op (forward of node i: i; backward,
                        and the zeroing and copy before it: 2n - 1 - i), for rt_plan_audit */
} rt_op;

typedef struct rt_oplist {
    rt_op *ops;
    int n, cap;
    int oom; /* a push failed: the list is incomplete */
} rt_oplist;

void rt_oplist_push(rt_oplist *l, const rt_op *o);
void rt_oplist_free(rt_oplist *l);

/* What rt_issue_lanes decided, for tests and reports. */
typedef struct rt_lane_stats {
    int ops, lanes_used, waits;
    int longest_chain; /* units on the longest dependence path (the pass's critical path) */
    int issued;        /* entries issued: units alone, or batches of units (be->run_batch) */
    int batches, batched_ops; /* batches of 2 or more node ops, and the node ops in them */
    int *issue_order;  /* in: NULL, or room for ops ints; out: the list index of each op in
                          the order rt_issue_lanes issued it (for tests) */
} rt_lane_stats;

/* Issues l's ops on lanes 0..nlanes-1 of be (inside a capture, or on one lane outside
 * one: DARTSC_SCHEDULE_EAGER's profiling), lane k's ops with scratch
 * + k * scratch_stride (floats) as their scratch, and leaves be on lane 0. Where be batches
 * (rt_backend.batches, unless DARTSC_NO_BATCH is set), the ops go in order of their depth
 * in the dependence graph, and node ops of one depth that the backend accepts together go
 * to it as one run_batch. Returns 0, or -1 when out of memory before anything was issued
 * (the caller then issues in order). */
int rt_issue_lanes(rt_backend *be, const rt_oplist *l, int nlanes, float *scratch, size_t scratch_stride,
                   rt_lane_stats *st);

/* Issues l's ops in order on the current lane, exactly as the plan would without lanes. */
void rt_issue_in_order(rt_backend *be, const rt_oplist *l);

/* Every device range op o reads or writes (for tests: rt_issue_lanes orders by these):
 * lo, hi (bytes, hi exclusive), w = 1 for a write. At most RT_OP_MAX_RANGES. */
#define RT_OP_MAX_RANGES (3 * RT_MAX_IN + 8 + 2 * RT_MORE_GRADS)
typedef struct rt_range {
    uintptr_t lo, hi;
    int w;
} rt_range;
int rt_op_ranges(const rt_op *o, rt_range *r);

/* The ops one pass of p would issue (forward, and backward for mask), collected instead of
 * issued; the plan's step advances as the pass would advance it. -1: a bad mask or out of
 * memory. For tests. */
int rt_plan_collect(rt_plan *p, int training, unsigned mask, rt_oplist *ops);
/* How the plan's last recording on lanes went, and how many lanes its recordings use. */
rt_lane_stats rt_plan_lane_stats(const rt_plan *p);
int rt_plan_lanes(const rt_plan *p);

#endif
