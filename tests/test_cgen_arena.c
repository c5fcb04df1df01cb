/* test_cgen_arena.c — the emitters' offline arena placement (codegen/arena.h,
 * cg_arena_pack): never two buffers live at the same step in the same bytes, never less
 * than the most bytes live at one step (no placement can go below that), and that bound
 * reached where it is known to be reachable. The placement inside generated networks is
 * checked by test_cgen, which runs their C against dartsc's runtime. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>

#include "codegen/arena.h"

/* xorshift64*, as the other tests' seeded fills */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* The most bytes live at one step: a lower bound on any placement. */
static int64_t live_bound(const cg_life *b, int nb) {
    int64_t best = 0;
    for (int t = 0; t < 64; t++) {
        int64_t sum = 0;
        for (int a = 0; a < nb; a++)
            if (b[a].start <= t && t <= b[a].end) sum += b[a].size;
        if (sum > best) best = sum;
    }
    return best;
}

Test(cgen_arena, pack_never_overlaps_buffers_live_together) {
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    double worst = 1, total = 0;
    const int cases = 2000;
    for (int c = 0; c < cases; c++) {
        cg_life b[48];
        int nb = 1 + (int)(rnd(&seed) % 48);
        for (int a = 0; a < nb; a++) {
            int s0 = (int)(rnd(&seed) % 40), len = (int)(rnd(&seed) % 8);
            /* sizes as the emitters align them, a few large like a network's early tensors */
            int64_t size = 16 * (int64_t)(1 + rnd(&seed) % (rnd(&seed) % 4 ? 64 : 2048));
            b[a] = (cg_life){.size = size, .off = 0, .start = s0, .end = s0 + len};
        }
        int64_t top = cg_arena_pack(b, nb), end = 0;
        cr_assert(top > 0);
        for (int a = 0; a < nb; a++) {
            cr_assert(b[a].off >= 0, "case %d: buffer %d not placed", c, a);
            if (b[a].off + b[a].size > end) end = b[a].off + b[a].size;
            for (int d = a + 1; d < nb; d++) {
                int together = b[a].start <= b[d].end && b[d].start <= b[a].end;
                int apart = b[a].off + b[a].size <= b[d].off || b[d].off + b[d].size <= b[a].off;
                cr_assert(!together || apart, "case %d: buffers %d [%lld, +%lld) and %d [%lld, +%lld) live together overlap",
                          c, a, (long long)b[a].off, (long long)b[a].size, d, (long long)b[d].off, (long long)b[d].size);
            }
        }
        cr_assert(top == end, "case %d: arena %lld, buffers end at %lld", c, (long long)top, (long long)end);
        int64_t lb = live_bound(b, nb);
        cr_assert(top >= lb, "case %d: arena %lld below the live bound %lld", c, (long long)top, (long long)lb);
        double r = (double)top / (double)lb;
        total += r;
        if (r > worst) worst = r;
    }
    fprintf(stderr, "cgen_arena: %d random plans, arena / live bound: mean %.3f, worst %.3f\n", cases, total / cases, worst);
}

/* Where the bound is reachable: a chain of buffers each live with its neighbours only
 * (the shape of a network without branches) packs into the two largest neighbours; three
 * buffers of which the outer two never meet share their bytes. */
Test(cgen_arena, pack_reaches_the_live_bound_on_chains) {
    cg_life three[3] = {{.size = 100, .start = 0, .end = 1}, {.size = 50, .start = 1, .end = 2}, {.size = 100, .start = 2, .end = 3}};
    cr_expect(cg_arena_pack(three, 3) == 150, "three buffers: %lld", (long long)cg_arena_pack(three, 3));
    cr_expect(three[0].off == three[2].off, "the outer two share their bytes");
    cg_life chain[12];
    int64_t sizes[12] = {64, 512, 128, 256, 1024, 32, 32, 768, 256, 64, 512, 16};
    for (int a = 0; a < 12; a++) chain[a] = (cg_life){.size = sizes[a], .start = a, .end = a + 1};
    int64_t top = cg_arena_pack(chain, 12), lb = live_bound(chain, 12);
    cr_expect(top == lb, "chain: arena %lld, live bound %lld", (long long)top, (long long)lb);
    cr_expect(cg_arena_pack(chain, 0) == 0, "nothing to place");
}
