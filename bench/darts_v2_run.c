/* darts_v2_run.c - writes a run directory for bench/infer.sh holding the DARTS_V2 network
 * at search size: the paper's CIFAR-10 space (examples/darts_cifar10.dartsc) with its
 * evaluation network set to 8 cells, C = 16 (32x32 RGB input, 10 classes), the DARTS_V2
 * genotype (ir_genotype_darts_v2), and randomly initialised weights (the runtime's
 * initialisers) with non-trivial BN statistics and affine parameters drawn here, since
 * there is no CIFAR-10 data on the machine to train with. The result is what
 * `dartsc train` would leave (space.dartsc, genotype.json, model.dtns), so
 * `dartsc export DIR` works on it.
 *
 *   bench/darts_v2_run OUT_DIR [SEED]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/fe.h"
#include "ir/space.h"
#include "search/genotype.h"
#include "train/train.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(float lo, float hi) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return lo + (hi - lo) * (float)((rng * 2685821657736338717ull) >> 40) / (float)(1 << 24);
}

/* Replaces the first `from` after `section` in text (NUL-terminated, room for the
 * growth) by `to`. */
static int set_value(char *text, const char *section, const char *from, const char *to) {
    char *sec = strstr(text, section), *at = sec ? strstr(sec, from) : NULL;
    if (!at) return -1;
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: darts_v2_run OUT_DIR [SEED]\n");
        return 2;
    }
    const char *dir = argv[1];
    if (argc > 2) rng ^= strtoull(argv[2], NULL, 10) * 0x100000001B3ull;
    char path[4200], err[1024];

    /* the space, as text: the paper's file with the evaluation network at search size */
    snprintf(path, sizeof path, "%s/examples/darts_cifar10.dartsc", DARTSC_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "darts_v2_run: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 64, f);
    fclose(f);
    text[n] = 0;
    if (set_value(text, "\ntrain", "C 36", "C 16") || set_value(text, "\ntrain", "layers 20", "layers 8")) {
        fprintf(stderr, "darts_v2_run: %s: no 'train { C 36 ... layers 20 }' to resize\n", path);
        return 1;
    }
    ir_space sp;
    fe_diags d;
    n = strlen(text);
    fe_diags_init(&d);
    if (fe_compile_string("darts_cifar10.dartsc", text, n, &sp, &d)) {
        fe_diags_render(&d, stderr, 0);
        return 1;
    }
    fe_diags_free(&d);
    if (sp.train_C != 16 || sp.train_layers != 8 || sp.in_h != 32 || sp.classes != 10) {
        fprintf(stderr, "darts_v2_run: the space is not the search-size CIFAR-10 network\n");
        return 1;
    }
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);

    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "darts_v2_run: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/space.dartsc", dir);
    f = fopen(path, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "darts_v2_run: cannot write %s\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/genotype.json", dir);
    if (sr_genotype_write_json(&sp, &gt, NULL, NULL, path, err, sizeof err)) {
        fprintf(stderr, "darts_v2_run: %s\n", err);
        return 1;
    }

    /* weights: the plan's initialisers; BN statistics and affine parameters drawn here */
    sr_infer in;
    if (sr_infer_open(&in, &sp, &gt, 1, NULL, "cpu", err, sizeof err)) {
        fprintf(stderr, "darts_v2_run: %s\n", err);
        return 1;
    }
    const ir_graph *g = in.net.graph;
    static const float lo[5] = {0, 0.5f, -0.2f, -0.2f, 0.5f}, hi[5] = {0, 1.5f, 0.2f, 0.2f, 2.0f}; /* gamma beta mean var */
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (nd->op != IR_OP_BATCHNORM) continue;
        for (int j = 1; j <= 4; j++) {
            int p = nd->inputs[j];
            if (p < 0) continue;
            int64_t k = ir_node_numel(ir_graph_node(g, p));
            float *v = malloc((size_t)k * sizeof *v);
            for (int64_t e = 0; e < k; e++) v[e] = uniform(lo[j], hi[j]);
            rt_write(in.p, p, v, (size_t)k * sizeof *v);
            free(v);
        }
    }
    snprintf(path, sizeof path, "%s/model.dtns", dir);
    int rc = sr_weights_save(in.p, path, err, sizeof err);
    if (rc) fprintf(stderr, "darts_v2_run: %s\n", err);
    else printf("wrote %s/{space.dartsc,genotype.json,model.dtns}: DARTS_V2, 8 cells, C = 16, 32x32, random weights\n", dir);
    sr_infer_close(&in);
    return rc ? 1 : 0;
}
