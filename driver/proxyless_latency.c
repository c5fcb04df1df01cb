/* proxyless_latency.c — ProxylessNAS's latency table (search/proxyless.h): the latency of one
 * candidate op alone at one shape (C, H, W, stride) of the supernet, measured on this machine
 * as driver/latency.c measures a network: the op lowered as the evaluation network lowers it
 * (ir_space_build_op), emitted as C (codegen/cgen.c), compiled with the system's cc and timed
 * at batch 1 on one thread (median thread CPU time, dartsc_time_c).
 *
 * The table is cached in CACHE/latency-table.tsv (CACHE: --latency-cache, else the run
 * directory), one measurement a line:
 *     op-key <TAB> C <TAB> H <TAB> W <TAB> stride <TAB> compiler <TAB> flags <TAB> ms
 * with op-key NAME/kind/k/dilation and compiler the first line of `cc --version`; a search
 * reads the lines that match its compiler and flags and measures (and appends) only what is
 * missing, so a second search, or a resumed one, does not measure again. The measuring
 * files go to CACHE/latency-ops/ (the last op's C, its timer, cc's log). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cgen.h"
#include "driver.h"
#include "runtime/runtime.h"
#include "train/common.h"

typedef struct lat_cache {
    const char *dir;       /* --latency-cache, or NULL */
    const sr_options *o;   /* its out_dir when dir is NULL */
    char cc[256];          /* the compiler's identity (empty: not asked yet) */
} lat_cache;

static lat_cache the_cache;

void dartsc_op_latency_use(sr_options *o, const char *cache_dir) {
    memset(&the_cache, 0, sizeof the_cache);
    the_cache.dir = cache_dir;
    the_cache.o = o;
    o->op_latency = dartsc_op_latency_ms;
    o->op_latency_ctx = &the_cache;
}

static void op_key(const ir_cand *op, char *buf, size_t n) {
    snprintf(buf, n, "%s/%d/%d/%d", op->name, (int)op->kind, op->k, op->dilation);
}

/* The cached value, or 0 when the table has no line for it (a bad line is an error). */
static int lookup(const char *path, const char *key, int C, int H, int W, int stride, const char *cc, double *ms,
                  int *found, char *err, size_t errlen) {
    *found = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : sr_fail(err, errlen, "%s: %s", path, strerror(errno));
    char line[1024];
    int ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (line[0] == '#' || line[0] == '\n') continue;
        char *field[8], *save = NULL;
        int nf = 0;
        line[strcspn(line, "\n")] = 0;
        for (char *t = strtok_r(line, "\t", &save); t && nf < 8; t = strtok_r(NULL, "\t", &save)) field[nf++] = t;
        char *end = NULL;
        double v = nf == 8 ? strtod(field[7], &end) : 0;
        if (nf != 8 || end == field[7] || *end || !(v >= 0)) {
            fclose(f);
            return sr_fail(err, errlen, "%s:%d: not a latency-table line (op, C, H, W, stride, compiler, flags, ms "
                           "separated by tabs); delete the file to measure again", path, ln);
        }
        if (!strcmp(field[0], key) && atoi(field[1]) == C && atoi(field[2]) == H && atoi(field[3]) == W &&
            atoi(field[4]) == stride && !strcmp(field[5], cc) && !strcmp(field[6], DARTSC_LAT_CFLAGS)) {
            *ms = v;
            *found = 1; /* the last matching line wins */
        }
    }
    fclose(f);
    return 0;
}

/* Times op alone at (C, H, W, stride) in dir. */
static int measure(const ir_cand *op, int C, int H, int W, int stride, const char *dir, double *ms, char *err,
                   size_t errlen) {
    ir_net net;
    if (ir_space_build_op(op, C, H, W, stride, &net)) return sr_fail(err, errlen, "latency table: %s", net.error);
    rt_backend *be = rt_backend_open("cpu", err, errlen);
    rt_plan *p = be ? rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1}, err, errlen) : NULL;
    int rc = -1, n = ir_graph_num_nodes(net.graph);
    const float **vals = p ? calloc((size_t)n, sizeof *vals) : NULL;
    if (p && !vals) sr_fail(err, errlen, "out of memory");
    if (vals) {
        for (int i = 0; i < n; i++)
            if (ir_graph_node(net.graph, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(p, i);
        cg_model m = {.g = net.graph, .values = vals, .input = net.images, .output = net.logits, .name = "model",
                      .in_c = C, .test_accuracy = -1};
        for (int c = 0; c < 4; c++) m.std[c] = 1.f;
        rc = dartsc_time_c(&m, dir, ms, err, errlen);
    }
    free(vals);
    if (p) rt_plan_free(p);
    if (be) be->destroy(be);
    ir_net_free(&net);
    return rc;
}

int dartsc_op_latency_ms(void *ctx, const ir_space *sp, const ir_cand *op, int C, int H, int W, int stride, double *ms,
                         char *err, size_t errlen) {
    (void)sp;
    lat_cache *c = ctx;
    const char *dir = c->dir ? c->dir : c->o->out_dir;
    char path[4200], odir[4200], key[128];
    if (sr_mkdir_p(dir, err, errlen)) return -1;
    if (!c->cc[0] && dartsc_cc_identity(dir, c->cc, sizeof c->cc, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/latency-table.tsv", dir);
    op_key(op, key, sizeof key);
    int found;
    if (lookup(path, key, C, H, W, stride, c->cc, ms, &found, err, errlen)) return -1;
    if (found) return 0;
    snprintf(odir, sizeof odir, "%s/latency-ops", dir);
    if (measure(op, C, H, W, stride, odir, ms, err, errlen)) return -1;
    FILE *f = fopen(path, "a");
    if (!f) return sr_fail(err, errlen, "%s: %s", path, strerror(errno));
    fprintf(f, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%.9g\n", key, C, H, W, stride, c->cc, DARTSC_LAT_CFLAGS, *ms);
    if (fclose(f)) return sr_fail(err, errlen, "%s: %s", path, strerror(errno));
    return 0;
}
