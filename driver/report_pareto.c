/* report_pareto.c — the report's accuracy-latency plot for a search with the mnas
 * objective (candidates.jsonl rows with latency_ms): every candidate as a point, the
 * Pareto front (no other candidate both faster and at least as accurate) joined by a
 * step line, the winner (best reward) ringed. Inline SVG, no scripts. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "driver.h"

typedef struct pt {
    double lat, acc, reward;
    int k, front;
} pt;

static int by_latency(const void *a, const void *b) {
    const pt *x = a, *y = b;
    if (x->lat != y->lat) return x->lat < y->lat ? -1 : 1;
    return x->acc > y->acc ? -1 : x->acc < y->acc;
}

void dartsc_report_pareto(FILE *f, json_t *rows) {
    size_t n = json_array_size(rows), m = 0;
    pt *p = calloc(n ? n : 1, sizeof *p);
    if (!p) return;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rows, i);
        double lat = json_number_value(json_object_get(r, "latency_ms"));
        if (!(lat > 0)) continue;
        p[m] = (pt){lat, json_number_value(json_object_get(r, "val_acc")), json_number_value(json_object_get(r, "reward")),
                    (int)i, 0};
        if (best < 0 || p[m].reward > p[best].reward) best = (int)m;
        m++;
    }
    if (!m) {
        free(p);
        return;
    }
    int winner = p[best].k;
    qsort(p, m, sizeof *p, by_latency);
    double top = -1, lo = p[0].lat, hi = p[m - 1].lat, amin = 1, amax = 0;
    for (size_t i = 0; i < m; i++) { /* by latency: on the front iff more accurate than every faster one */
        if (p[i].acc > top) p[i].front = 1, top = p[i].acc;
        amin = fmin(amin, p[i].acc);
        amax = fmax(amax, p[i].acc);
    }
    if (hi <= lo) hi = lo * 1.1 + 1e-9;
    if (amax <= amin) amax = amin + 0.01;
    const int W = 520, H = 300, L = 60, R = 20, T = 20, B = 40;
#define X(v) (L + ((v) - lo) / (hi - lo) * (W - L - R))
#define Y(v) (H - B - ((v) - amin) / (amax - amin) * (H - T - B))
    fputs("<h2>Accuracy against latency</h2><figure id=\"pareto\"><figcaption>architecture-split accuracy against the "
          "latency of each candidate's generated C (batch 1, one thread); the Pareto front joined, the winner (best "
          "MnasNet reward) ringed</figcaption>",
          f);
    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", W, H, W, H);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>", L, H - B, W - R, H - B);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>", L, T, L, H - B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%.3g ms</text><text x=\"%d\" y=\"%d\" font-size=\"11\" "
               "text-anchor=\"end\">%.3g ms</text>",
            L, H - B + 14, lo, W - R, H - B + 14, hi);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.1f%%</text><text x=\"%d\" y=\"%d\" "
               "font-size=\"11\" text-anchor=\"end\">%.1f%%</text>",
            L - 4, H - B, 100 * amin, L - 4, T + 8, 100 * amax);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">latency (ms)</text>", (L + W - R) / 2, H - 8);
    fputs("<polyline class=\"front\" fill=\"none\" stroke=\"#c33\" points=\"", f);
    double prev = -1;
    for (size_t i = 0; i < m; i++) {
        if (!p[i].front) continue;
        if (prev >= 0) fprintf(f, "%.1f,%.1f ", X(p[i].lat), Y(prev));
        fprintf(f, "%.1f,%.1f ", X(p[i].lat), Y(p[i].acc));
        prev = p[i].acc;
    }
    fputs("\"/>", f);
    for (size_t i = 0; i < m; i++) {
        fprintf(f, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>#%d: %.2f%%, %.4g ms, reward %.4f</title></circle>",
                p[i].front ? "front" : "cand", X(p[i].lat), Y(p[i].acc), p[i].front ? "#c33" : "#888", p[i].k + 1,
                100 * p[i].acc, p[i].lat, p[i].reward);
        if (p[i].k == winner)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" fill=\"none\" stroke=\"#000\"/>", X(p[i].lat), Y(p[i].acc));
    }
#undef X
#undef Y
    fputs("</svg></figure>\n<table id=\"front\"><tr><th>#</th><th>latency ms</th><th>accuracy</th><th>reward</th></tr>", f);
    for (size_t i = 0; i < m; i++)
        if (p[i].front)
            fprintf(f, "<tr><td>%d%s</td><td>%.4g</td><td>%.2f%%</td><td>%.4f</td></tr>", p[i].k + 1,
                    p[i].k == winner ? " (winner)" : "", p[i].lat, 100 * p[i].acc, p[i].reward);
    fputs("</table>\n", f);
    free(p);
}
