/* pretext.c — see pretext.h. */
#include "pretext.h"

#include <string.h>

#include "runtime/backend.h"

void sr_pretext_rotate(float *x, int32_t *y, int n, int first, int c, int h, uint64_t seed, uint64_t tag, float *scratch) {
    const int64_t plane = (int64_t)h * h;
    for (int i = 0; i < n; i++) {
        /* the same counter-based stream as parameter initialisation and dropout */
        int r = (int)(rt_rng_uniform(seed * 0x9e3779b97f4a7c15ull + tag, (uint64_t)(first + i)) * 4.0f) & 3;
        y[i] = r;
        if (!r) continue;
        float *img = x + (int64_t)i * c * plane;
        memcpy(scratch, img, (size_t)(c * plane) * sizeof *img);
        for (int ch = 0; ch < c; ch++) {
            const float *s = scratch + ch * plane;
            float *d = img + ch * plane;
            /* out[u][v] = in[...]: 90 ccw: in[v][h-1-u]; 180: in[h-1-u][h-1-v]; 270 ccw: in[h-1-v][u] */
            for (int u = 0; u < h; u++)
                for (int v = 0; v < h; v++) {
                    int su = r == 1 ? v : r == 2 ? h - 1 - u : h - 1 - v;
                    int sv = r == 1 ? h - 1 - u : r == 2 ? h - 1 - v : u;
                    d[u * h + v] = s[su * h + sv];
                }
        }
    }
}
