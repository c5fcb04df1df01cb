/* arena.h — the free list behind the emitters' static arenas (cgen.c, cgen_q.c): blocks
 * of any unit (floats, bytes) taken best-fit and given back with their neighbours merged.
 *
 * Usage (free list of at most 2 * ops + 2 blocks, sorted by offset):
 *   cg_blk fr[64]; int nf = 0; int64_t top = 0;
 *   int64_t o = cg_arena_take(fr, &nf, &top, 256);   // best fit, else at the top
 *   cg_arena_give(fr, &nf, o, 256);                  // top: the arena's size so far
 * or offline, all lifetimes known:
 *   cg_life b[2] = {{.size = 256, .start = 0, .end = 3}, {.size = 64, .start = 4, .end = 5}};
 *   int64_t size = cg_arena_pack(b, 2);              // b[1].off == 0: they never meet
 */
#ifndef DARTSC_CG_ARENA_H
#define DARTSC_CG_ARENA_H

#include <stdint.h>

typedef struct cg_blk { int64_t off, size; } cg_blk;

/* Best fit among the free blocks fr[0..nf) (sorted by offset), else the top of the arena
 * (growing a free block that ends there). Returns the offset. */
int64_t cg_arena_take(cg_blk *fr, int *nf, int64_t *top, int64_t need);
/* Returns [o, o + size) to the free list, merging with its neighbours. */
void cg_arena_give(cg_blk *fr, int *nf, int64_t o, int64_t size);

/* A buffer of the offline planner: its size, the schedule steps it is live over (both
 * included), and its offset (out). */
typedef struct cg_life {
    int64_t size, off;
    int start, end;
} cg_life;

/* Places b[0..nb) offline: largest first (ties: earlier start), each at the lowest offset
 * clear of the placed buffers whose lifetimes overlap its own (the greedy-by-size rule of
 * TFLite's and ONNX Runtime's memory planners). Returns the arena's size, or -1 when out
 * of memory. */
int64_t cg_arena_pack(cg_life *b, int nb);

/* Schedule order for a smaller arena: each op sched[t] in turn (t = 1 ..) is tried as
 * early as its inputs allow (right after the last of their producers in sched), and kept
 * there where plan() returns a smaller arena than before. srcs(ctx, i, out) writes the
 * nodes op i reads (at most 64; nodes not in sched are ignored) and returns their count;
 * plan(ctx) plans sched as it is now and returns the arena's size, or -1 on an error
 * (which stops the search and is returned). n: the number of nodes (indices in sched are
 * below it). Leaves sched in the best order found (not yet planned) and returns 0. */
int cg_arena_hoist(int *sched, int ns, int n, void *ctx, int (*srcs)(void *ctx, int i, int *out), int64_t (*plan)(void *ctx));

#endif
