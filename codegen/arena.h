/* arena.h — the free list behind the emitters' static arenas (cgen.c, cgen_q.c): blocks
 * of any unit (floats, bytes) taken best-fit and given back with their neighbours merged.
 *
 * Usage (free list of at most 2 * ops + 2 blocks, sorted by offset):
 *   cg_blk fr[64]; int nf = 0; int64_t top = 0;
 *   int64_t o = cg_arena_take(fr, &nf, &top, 256);   // best fit, else at the top
 *   cg_arena_give(fr, &nf, o, 256);                  // top: the arena's size so far
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

#endif
