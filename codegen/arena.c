/* arena.c — see arena.h. */
#include "arena.h"

#include <string.h>

int64_t cg_arena_take(cg_blk *fr, int *nf, int64_t *top, int64_t need) {
    int best = -1;
    int64_t off;
    for (int b = 0; b < *nf; b++)
        if (fr[b].size >= need && (best < 0 || fr[b].size < fr[best].size)) best = b;
    if (best >= 0) {
        off = fr[best].off;
        fr[best].off += need;
        fr[best].size -= need;
        if (!fr[best].size) { memmove(fr + best, fr + best + 1, (size_t)(*nf - best - 1) * sizeof *fr); (*nf)--; }
    } else if (*nf && fr[*nf - 1].off + fr[*nf - 1].size == *top) { /* grow the block at the top */
        off = fr[*nf - 1].off;
        *top = off + need;
        (*nf)--;
    } else {
        off = *top;
        *top += need;
    }
    return off;
}

void cg_arena_give(cg_blk *fr, int *nf, int64_t o, int64_t size) {
    int b = 0;
    while (b < *nf && fr[b].off < o) b++;
    memmove(fr + b + 1, fr + b, (size_t)(*nf - b) * sizeof *fr);
    fr[b] = (cg_blk){o, size};
    (*nf)++;
    if (b + 1 < *nf && fr[b].off + fr[b].size == fr[b + 1].off) {
        fr[b].size += fr[b + 1].size;
        memmove(fr + b + 1, fr + b + 2, (size_t)(*nf - b - 2) * sizeof *fr);
        (*nf)--;
    }
    if (b > 0 && fr[b - 1].off + fr[b - 1].size == fr[b].off) {
        fr[b - 1].size += fr[b].size;
        memmove(fr + b, fr + b + 1, (size_t)(*nf - b - 1) * sizeof *fr);
        (*nf)--;
    }
}
