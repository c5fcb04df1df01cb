/* report.c — RUN_DIR/report.html: one self-contained page (inline SVG, no network) with
 * the genotype and cell pictures, alpha heat maps over epochs, loss and accuracy curves,
 * test accuracy, parameters and multiply-adds, time per stage, the command and versions. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "search/genotype.h"

char *openblas_get_config(void); /* OpenBLAS's version and build string */

static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* Reads a JSON Lines file into an array of objects. */
static json_t *read_jsonl(const char *dir, const char *name) {
    char p[4200], line[1 << 16];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    json_t *arr = json_array();
    struct stat st;
    FILE *f = stat(p, &st) == 0 && S_ISREG(st.st_mode) ? fopen(p, "r") : NULL; /* never block on a FIFO */
    if (!f) return arr;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) json_array_append_new(arr, o);
    }
    fclose(f);
    return arr;
}

/* A line chart of up to 3 series from rows[key] against the row index. */
static void chart(FILE *f, json_t *rows, const char *title, const char *const *keys, const char *const *colors, int nk) {
    size_t n = json_array_size(rows);
    const int W = 560, H = 220, L = 50, B = 30;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < nk; k++) {
            json_t *v = json_object_get(json_array_get(rows, i), keys[k]);
            double x = json_number_value(v);
            if (json_is_number(v) && x >= 0) {
                lo = fmin(lo, x);
                hi = fmax(hi, x);
            }
        }
    fprintf(f, "<figure><figcaption>%s</figcaption><svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", title, W, H, W, H);
    fprintf(f, "<rect x=\"%d\" y=\"5\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#ccc\"/>", L, W - L - 5, H - B - 5);
    if (n < 2 || !(hi > lo)) {
        fprintf(f, "<text x=\"%d\" y=\"%d\">no data</text></svg></figure>\n", L + 10, H / 2);
        return;
    }
    fprintf(f, "<text x=\"2\" y=\"15\" font-size=\"11\">%.3g</text><text x=\"2\" y=\"%d\" font-size=\"11\">%.3g</text>", hi, H - B, lo);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">step</text>", W / 2, H - 8);
    for (int k = 0; k < nk; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[k]);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_object_get(json_array_get(rows, i), keys[k]);
            if (!json_is_number(v) || json_number_value(v) < 0) continue;
            double x = L + (double)(W - L - 5) * (double)i / (double)(n - 1);
            double y = 5 + (double)(H - B - 5) * (hi - json_number_value(v)) / (hi - lo);
            fprintf(f, "%.1f,%.1f ", x, y);
        }
        fprintf(f, "\"/><text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"%s\">%s</text>", L + 10 + 120 * k, H - B - 10,
                colors[k], keys[k]);
    }
    fputs("</svg></figure>\n", f);
}

/* The successors' own curves over the epochs of alpha.jsonl: PC-DARTS' softmax(beta) per node
 * of each cell type (one line per incoming edge); FairDARTS' share of sigmoid(alpha) above
 * 0.8 (what its derivation keeps) and the mean |sigmoid(alpha) - 1/2|, which its zero-one
 * loss drives up. */
static void successor_curves(FILE *f, json_t *alpha, int sig) {
    static const char *const cols[5] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
    static const char *const ek[5] = {"edge 0", "edge 1", "edge 2", "edge 3", "edge 4"};
    const char *types[2] = {"betas_normal", "betas_reduce"};
    size_t ne = json_array_size(alpha);
    for (int t = 0; t < 2 && ne > 0; t++) {
        json_t *b0 = json_object_get(json_array_get(alpha, 0), types[t]);
        for (size_t i = 0; i < json_array_size(b0); i++) {
            json_t *rows = json_array();
            int nk = 0;
            for (size_t e = 0; e < ne; e++) {
                json_t *r = json_array_get(json_array_get(json_object_get(json_array_get(alpha, e), types[t]), i), 0);
                json_t *o = json_object();
                for (size_t k = 0; k < json_array_size(r) && k < 5; k++) json_object_set(o, ek[k], json_array_get(r, k));
                nk = (int)(json_array_size(r) < 5 ? json_array_size(r) : 5);
                json_array_append_new(rows, o);
            }
            char title[96];
            snprintf(title, sizeof title, "PC-DARTS: softmax(&beta;) of %s node %zu over epochs", t ? "reduce" : "normal", i);
            chart(f, rows, title, ek, cols, nk);
            json_decref(rows);
        }
    }
    if (!sig) return;
    json_t *rows = json_array();
    const char *keys[4] = {"normal > 0.8", "normal |s-1/2|", "reduce > 0.8", "reduce |s-1/2|"};
    for (size_t e = 0; e < ne; e++) {
        json_t *o = json_object();
        for (int t = 0; t < 2; t++) {
            json_t *m = json_object_get(json_array_get(alpha, e), t ? "reduce" : "normal");
            double hi = 0, dev = 0, n = 0;
            for (size_t r = 0; r < json_array_size(m); r++)
                for (size_t c = 0; c < json_array_size(json_array_get(m, r)); c++) {
                    double v = json_number_value(json_array_get(json_array_get(m, r), c));
                    hi += v > 0.8;
                    dev += fabs(v - 0.5);
                    n++;
                }
            json_object_set_new(o, keys[2 * t], json_real(n > 0 ? hi / n : 0));
            json_object_set_new(o, keys[2 * t + 1], json_real(n > 0 ? dev / n : 0));
        }
        json_array_append_new(rows, o);
    }
    chart(f, rows, "FairDARTS: share of &sigma;(&alpha;) above 0.8, and mean |&sigma;(&alpha;) &minus; &frac12;|, over epochs", keys, cols, 4);
    json_decref(rows);
}

/* Heat map of softmax(alpha): rows are edges, columns ops, shaded from the map's smallest
 * to its largest weight (after a short search all weights sit near 1/ops, and an absolute
 * scale would show one flat colour); the range is printed under the map. */
static void heatmap(FILE *f, json_t *rows, const ir_cell *c, const char *title) {
    size_t E = json_array_size(rows);
    const int cw = 14, ch = 10, L = 8, top = 16, labels = 84;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t e = 0; e < E; e++)
        for (size_t o = 0; o < json_array_size(json_array_get(rows, e)); o++) {
            double v = json_number_value(json_array_get(json_array_get(rows, e), o));
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    double span = hi > lo ? hi - lo : 1;
    int W = L + cw * c->n_ops + 4, H = top + ch * (int)E + 18 + labels;
    fprintf(f, "<svg class=\"heat\" width=\"%d\" height=\"%d\"><text x=\"2\" y=\"11\" font-size=\"10\">%s</text>", W < 120 ? 120 : W,
            H, title);
    for (size_t e = 0; e < E; e++) {
        json_t *r = json_array_get(rows, e);
        for (int o = 0; o < c->n_ops && o < (int)json_array_size(r); o++) {
            double v = json_number_value(json_array_get(r, (size_t)o));
            int shade = (int)(235 - 200 * (v - lo) / span);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\"><title>edge %zu %s %.3f</title></rect>",
                    L + cw * o, top + ch * (int)e, cw - 1, ch - 1, shade, shade, e, c->ops[o].name, v);
        }
    }
    int y = top + ch * (int)E;
    fprintf(f, "<text x=\"2\" y=\"%d\" font-size=\"9\">%.4g to %.4g</text>", y + 12, lo, hi);
    for (int o = 0; o < c->n_ops; o++)
        fprintf(f, "<text font-size=\"9\" transform=\"translate(%d,%d) rotate(90)\">%s</text>", L + cw * o + 3, y + 18,
                c->ops[o].name);
    fputs("</svg>", f);
}

/* The baselines' candidates (candidates.jsonl): score, origin and genotype of each. */
static void candidates_table(FILE *f, const char *dir) {
    json_t *rows = read_jsonl(dir, "candidates.jsonl");
    size_t n = json_array_size(rows);
    if (n) {
        fputs("<h2>Candidates</h2><table id=\"candidates\"><tr><th>#</th><th>origin</th><th>architecture split accuracy</th>"
              "<th>seconds</th></tr>", f);
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(rows, i);
            int parent = (int)json_integer_value(json_object_get(r, "parent"));
            fprintf(f, "<tr><td>%zu</td><td>", i + 1);
            if (parent >= 0) fprintf(f, "%s mutation of #%d", json_string_value(json_object_get(r, "mutation")), parent + 1);
            else { /* random, controller */
                const char *how = json_string_value(json_object_get(r, "mutation"));
                fputs(how ? how : "random", f);
            }
            fprintf(f, "</td><td>%.2f%%</td><td>%.1f</td></tr>", 100 * json_number_value(json_object_get(r, "val_acc")),
                    json_number_value(json_object_get(r, "seconds")));
        }
        fputs("</table>\n", f);
        dartsc_report_pareto(f, rows); /* --objective mnas */
    }
    json_decref(rows);
}

/* P-DARTS's stages (stages.jsonl): depth, candidates per edge, skip dropout, accuracy, and
 * each edge's kept candidates; DARTS+'s early stop (stop.json). */
static void successor_sections(FILE *f, const char *dir) {
    json_t *rows = read_jsonl(dir, "stages.jsonl");
    size_t n = json_array_size(rows);
    if (n) {
        fputs("<h2>P-DARTS stages</h2><table id=\"stages\"><tr><th>stage</th><th>cells</th><th>epochs</th>"
              "<th>ops per edge (normal, reduce)</th><th>skip dropout</th><th>architecture split accuracy</th>"
              "<th>normal cell: candidates per edge</th></tr>", f);
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(rows, i), *ops = json_object_get(r, "ops_per_edge"), *nc = json_object_get(r, "normal");
            fprintf(f, "<tr><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld, %lld</td><td>%.2f</td><td>%.2f%%</td><td>",
                    (long long)json_integer_value(json_object_get(r, "stage")),
                    (long long)json_integer_value(json_object_get(r, "layers")),
                    (long long)json_integer_value(json_object_get(r, "epochs")),
                    (long long)json_integer_value(json_array_get(ops, 0)), (long long)json_integer_value(json_array_get(ops, 1)),
                    json_number_value(json_object_get(r, "skip_dropout")),
                    100 * json_number_value(json_object_get(r, "val_acc")));
            for (size_t e = 0; e < json_array_size(nc); e++) {
                json_t *edge = json_array_get(nc, e);
                fprintf(f, "%s%zu: ", e ? "<br>" : "", e);
                for (size_t k = 0; k < json_array_size(edge); k++) {
                    if (k) fputs(", ", f);
                    esc(f, json_string_value(json_array_get(edge, k)) ? json_string_value(json_array_get(edge, k)) : "?");
                }
            }
            fputs("</td></tr>", f);
        }
        fputs("</table><p>The heat maps below run through the stages one after another; a pruned candidate "
              "shows at weight 0.</p>\n", f);
    }
    json_decref(rows);
    char p[4200];
    snprintf(p, sizeof p, "%s/stop.json", dir);
    struct stat st;
    json_t *stop = stat(p, &st) == 0 && S_ISREG(st.st_mode) ? json_load_file(p, 0, NULL) : NULL;
    if (stop) {
        const char *why = json_string_value(json_object_get(stop, "reason"));
        fprintf(f, "<h2>DARTS+ early stop</h2><p id=\"stop\">The search stopped after epoch %lld of %lld: ",
                (long long)json_integer_value(json_object_get(stop, "epoch")),
                (long long)json_integer_value(json_object_get(stop, "epochs")));
        esc(f, why ? why : "?");
        fputs(".</p>\n", f);
        json_decref(stop);
    }
}

static void inline_svg(FILE *f, const char *dir, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s.svg", dir, name);
    struct stat st;
    FILE *s = stat(p, &st) == 0 && S_ISREG(st.st_mode) ? fopen(p, "r") : NULL;
    if (!s) {
        fprintf(f, "<p>(%s.svg not rendered: Graphviz's dot is not installed; see %s.dot)</p>", name, name);
        return;
    }
    char line[4096];
    int started = 0;
    while (fgets(line, sizeof line, s)) {
        if (!started && strstr(line, "<svg")) started = 1;
        if (started) fputs(line, f);
    }
    fclose(s);
}

void dartsc_render_cells(const char *dir) {
    if (system("command -v dot >/dev/null 2>&1") != 0) return;
    const char *names[2] = {"normal", "reduce"};
    for (int t = 0; t < 2; t++) {
        char cmd[8400];
        snprintf(cmd, sizeof cmd, "%s/%s.dot", dir, names[t]);
        if (access(cmd, R_OK) != 0) continue; /* a recurrent run has only normal.dot */
        snprintf(cmd, sizeof cmd, "dot -Tsvg '%s/%s.dot' -o '%s/%s.svg' 2>/dev/null", dir, names[t], dir, names[t]);
        if (system(cmd) != 0) fprintf(stderr, "dartsc: warning: dot could not render %s/%s.dot\n", dir, names[t]);
    }
}

int dartsc_write_report(const char *dir, const ir_space *sp, const ir_genotype *gt, double test_acc, int argc,
                        char **argv) {
    char p[4200];
    snprintf(p, sizeof p, "%s/report.html", dir);
    FILE *f = dartsc_fopen_out("run", p);
    if (!f) return -1;
    ir_stats st = {0};
    ir_net net;
    ir_eval_opts eo = {.C = sp->train_C, .layers = sp->train_layers, .batch = 1};
    if (ir_space_build_eval(sp, gt, &eo, &net) == 0) {
        ir_graph_stats(net.graph, &st);
        ir_net_free(&net);
    }
    json_t *res = NULL;
    snprintf(p, sizeof p, "%s/results.json", dir);
    res = json_load_file(p, 0, NULL);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dartsc run report</title>\n"
          "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
          "figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:bold}"
          ".heat{margin-right:6px}pre{background:#f4f4f4;padding:8px;overflow:auto}</style></head><body>\n", f);
    fprintf(f, "<h1>dartsc run: %s</h1>\n", sp->name);
    fputs("<table id=\"summary\">", f);
    fprintf(f, "<tr><th>test accuracy</th><td id=\"test-accuracy\">%.2f%%</td></tr>", 100 * test_acc);
    fprintf(f, "<tr><th>parameters</th><td id=\"params\">%lld</td></tr>", (long long)st.weight_params);
    fprintf(f, "<tr><th>multiply-adds per image</th><td>%.1f M</td></tr>", (double)st.macs_per_sample / 1e6);
    fprintf(f, "<tr><th>evaluation network</th><td>C = %d, %d cells</td></tr>", sp->train_C, sp->train_layers);
    if (res) {
        fprintf(f, "<tr><th>search time</th><td>%.1f s</td></tr>", json_number_value(json_object_get(res, "search_seconds")));
        fprintf(f, "<tr><th>retraining time</th><td>%.1f s</td></tr>", json_number_value(json_object_get(res, "train_seconds")));
        fprintf(f, "<tr><th>evaluation time</th><td>%.1f s</td></tr>", json_number_value(json_object_get(res, "eval_seconds")));
        fprintf(f, "<tr><th>export time</th><td>%.1f s</td></tr>", json_number_value(json_object_get(res, "export_seconds")));
        fprintf(f, "<tr><th>test images</th><td>%lld</td></tr>", (long long)json_integer_value(json_object_get(res, "test_images")));
    }
    fputs("<tr><th>command</th><td><code>dartsc", f);
    for (int i = 0; i < argc; i++) {
        fputc(' ', f);
        esc(f, argv[i]);
    }
    fprintf(f, "</code></td></tr><tr><th>versions</th><td id=\"versions\">dartsc %s, built by %s %s; %s</td></tr>"
               "<tr><th>date</th><td>%s</td></tr></table>\n",
            DARTSC_VERSION,
#if defined(__clang__)
            "clang",
#elif defined(__GNUC__)
            "gcc",
#else
            "cc",
#endif
            __VERSION__, openblas_get_config(), date);
    fputs("<h2>Genotype</h2><pre id=\"genotype\">", f);
    char *gl = NULL;
    size_t gn = 0;
    FILE *mem = open_memstream(&gl, &gn);
    sr_genotype_print(sp, gt, mem);
    fclose(mem);
    esc(f, gl);
    free(gl);
    fputs("</pre>\n<h2>Cells</h2><div id=\"cells\">", f);
    inline_svg(f, dir, "normal");
    inline_svg(f, dir, "reduce");
    fputs("</div>\n", f);
    candidates_table(f, dir);
    successor_sections(f, dir);
    json_t *alpha = read_jsonl(dir, "alpha.jsonl");
    int sig = json_array_size(alpha) > 0 && json_object_get(json_array_get(alpha, 0), "weights");
    fprintf(f, "<h2>Architecture weights %s per epoch</h2><div id=\"alpha\">", sig ? "&sigma;(&alpha;) (FairDARTS)" : "softmax(&alpha;)");
    size_t ne = json_array_size(alpha);
    for (size_t e = 0; e < ne; e++) {
        json_t *row = json_array_get(alpha, e);
        char t[64];
        snprintf(t, sizeof t, "epoch %zu normal", e + 1);
        heatmap(f, json_object_get(row, "normal"), &sp->normal, t);
        snprintf(t, sizeof t, "epoch %zu reduce", e + 1);
        heatmap(f, json_object_get(row, "reduce"), &sp->reduce, t);
        fputs("<br>", f);
    }
    fputs("</div>\n<h2>Curves</h2><div id=\"curves\">", f);
    successor_curves(f, alpha, sig);
    json_decref(alpha);
    json_t *sm = read_jsonl(dir, "metrics.jsonl"), *tm = read_jsonl(dir, "train_metrics.jsonl");
    const char *lk[2] = {"train_loss", "val_loss"}, *ak[2] = {"train_acc", "val_acc"}, *cols[2] = {"#1f77b4", "#d62728"};
    chart(f, sm, "search: loss", lk, cols, 2);
    chart(f, sm, "search: accuracy", ak, cols, 2);
    if (json_array_size(sm) > 0 && json_is_number(json_object_get(json_array_get(sm, 0), "expected_latency_ms"))) {
        const char *xk[1] = {"expected_latency_ms"}; /* ProxylessNAS: E[latency] under alpha after each step */
        chart(f, sm, "ProxylessNAS: expected latency E[latency] (ms, the per-op table) over the search", xk, cols, 1);
    }
    chart(f, tm, "retraining: loss", lk, cols, 1);
    chart(f, tm, "retraining: accuracy", ak, cols, 1);
    json_decref(sm);
    json_decref(tm);
    if (res) json_decref(res);
    fputs("</div></body></html>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
