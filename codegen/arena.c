/* arena.c — see arena.h. */
#include "arena.h"

#include <stdlib.h>
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

typedef struct pkey { int64_t size; int start, i; } pkey;

static int by_size(const void *a, const void *b) {
    const pkey *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int64_t cg_arena_pack(cg_life *b, int nb) {
    pkey *key = malloc(sizeof *key * (size_t)(nb > 0 ? nb : 1));
    int *near = malloc(sizeof *near * (size_t)(nb > 0 ? nb : 1));
    if (!key || !near) { free(key); free(near); return -1; }
    for (int a = 0; a < nb; a++) { key[a] = (pkey){b[a].size, b[a].start, a}; b[a].off = -1; }
    qsort(key, (size_t)nb, sizeof *key, by_size);
    int64_t top = 0;
    for (int a = 0; a < nb; a++) {
        cg_life *x = &b[key[a].i];
        int no = 0;
        for (int c = 0; c < nb; c++) /* the placed buffers live with x, by offset */
            if (b[c].off >= 0 && b[c].start <= x->end && x->start <= b[c].end) {
                int u = no++;
                while (u > 0 && b[near[u - 1]].off > b[c].off) { near[u] = near[u - 1]; u--; }
                near[u] = c;
            }
        int64_t o = 0;
        for (int u = 0; u < no && b[near[u]].off < o + x->size; u++)
            if (b[near[u]].off + b[near[u]].size > o) o = b[near[u]].off + b[near[u]].size;
        x->off = o;
        if (o + x->size > top) top = o + x->size;
    }
    free(key);
    free(near);
    return top;
}

int cg_arena_hoist(int *sched, int ns, int n, void *ctx, int (*srcs)(void *ctx, int i, int *out), int64_t (*plan)(void *ctx)) {
    int *pos = malloc(sizeof *pos * (size_t)(n > 0 ? n : 1));
    if (!pos) return -1;
    int64_t best = plan(ctx);
    for (int t = 1; t < ns && best >= 0; t++) {
        for (int i = 0; i < n; i++) pos[i] = -1;
        for (int u = 0; u < ns; u++) pos[sched[u]] = u;
        int i = sched[t], e = 0, in[64];
        int k = srcs(ctx, i, in);
        for (int j = 0; j < k; j++)
            if (in[j] >= 0 && in[j] < n && pos[in[j]] + 1 > e) e = pos[in[j]] + 1;
        if (e >= t) continue;
        memmove(sched + e + 1, sched + e, sizeof *sched * (size_t)(t - e));
        sched[e] = i;
        int64_t a = plan(ctx);
        if (a < 0) { best = a; break; }
        if (a < best) { best = a; continue; }
        memmove(sched + e, sched + e + 1, sizeof *sched * (size_t)(t - e)); /* back */
        sched[t] = i;
    }
    free(pos);
    return best < 0 ? -1 : 0;
}
