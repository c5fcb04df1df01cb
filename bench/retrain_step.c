/* retrain_step.c — times retraining steps of a derived network on random data: the
 * space's evaluation network (its `train` block: C, cells, batch, auxiliary head, drop
 * path) built from a genotype (DARTS_V2 unless --genotype names a genotype.json), one
 * step = forward + backward + gradient clipping + SGD, by `dartsc train`'s own step
 * (sr_train_step: one recorded graph per step on CUDA); median of N steps after warm-up. bench/gpu.sh puts it beside
 * `bench/torch_step.py --retrain` (the reference NetworkCIFAR) on the device.
 *
 *   bench/retrain_step SPACE [--genotype FILE] [--batch N] [--steps N] [--warmup N]
 *                      [--device cpu|cuda|auto] [--drop-path P] [--json]
 *
 * --drop-path overrides the space's p (the ramp's end; a step here uses it throughout);
 * 0 removes the random masks (the CUDA backend records and replays either way: the masks'
 * seeds are written on the device before each replay).
 * Prints one line (JSON with --json): s/step, images/s, peak device allocations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "search/genotype.h"
#include "train/common.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(void) {
    fprintf(stderr, "usage: retrain_step SPACE [--genotype FILE] [--batch N] [--steps N] [--warmup N] "
                    "[--device cpu|cuda|auto] [--drop-path P] [--json]\n");
    return 2;
}

/* A whole number in [lo, hi] or -1. */
static long num(const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= lo && v <= hi ? v : -1;
}

int main(int argc, char **argv) {
    const char *path = NULL, *geno = NULL, *device = "cpu";
    long batch = 0, steps = 10, warmup = 3;
    float drop = -1.0f;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && !v) return usage();
        else if (!strcmp(a, "--genotype")) geno = argv[++i];
        else if (!strcmp(a, "--device")) device = argv[++i];
        else if (!strcmp(a, "--batch")) { if ((batch = num(argv[++i], 1, 65536)) < 0) return usage(); }
        else if (!strcmp(a, "--steps")) { if ((steps = num(argv[++i], 1, 1000)) < 0) return usage(); }
        else if (!strcmp(a, "--warmup")) { if ((warmup = num(argv[++i], 0, 1000)) < 0) return usage(); }
        else if (!strcmp(a, "--drop-path")) {
            char *end;
            drop = strtof(argv[++i], &end);
            if (*end || !(drop >= 0.0f && drop < 1.0f)) return usage();
        } else if (a[0] == '-') return usage();
        else path = a;
    }
    if (!path) return usage();
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    if (fe_compile_file(path, &sp, &d)) {
        fe_diags_render(&d, stderr, 0);
        fe_diags_free(&d);
        return 1;
    }
    fe_diags_free(&d);
    char err[512];
    ir_genotype gt;
    if (geno) {
        if (sr_genotype_read_json(&sp, geno, &gt, err, sizeof err)) {
            fprintf(stderr, "retrain_step: %s\n", err);
            return 1;
        }
    } else {
        ir_genotype_darts_v2(&gt);
    }
    const ir_train_config *tc = &sp.train;
    if (!batch) batch = tc->batch;
    if (drop < 0) drop = tc->drop_path;
    ir_eval_opts eo = {.C = sp.train_C, .layers = sp.train_layers, .batch = (int)batch, .aux = tc->aux_weight > 0,
                       .aux_weight = tc->aux_weight, .drop_path = drop > 0};
    ir_net net;
    if (ir_space_build_eval(&sp, &gt, &eo, &net)) {
        fprintf(stderr, "retrain_step: %s\n", net.error);
        return 1;
    }
    rt_backend *be = rt_backend_open(device, err, sizeof err);
    if (!be) {
        fprintf(stderr, "retrain_step: %s\n", err);
        ir_net_free(&net);
        return 1;
    }
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = RT_GRAD_W}, err, sizeof err);
    if (!p) {
        fprintf(stderr, "retrain_step: %s\n", err);
        be->destroy(be);
        ir_net_free(&net);
        return 1;
    }
    if (drop > 0) rt_plan_set_drop_path(p, drop);
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT);
    const int64_t ni = batch * sp.in_c * sp.in_h * sp.in_w;
    float *x = malloc((size_t)ni * 4);
    int32_t *y = malloc((size_t)batch * 4);
    float *buf = be->alloc(be, (size_t)gw.n * 4);
    double *times = malloc((size_t)steps * sizeof *times);
    if (!x || !y || !buf || !times) {
        fprintf(stderr, "retrain_step: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < ni; i++) x[i] = 2 * rt_rng_uniform(3, (uint64_t)i) - 1;
    for (long i = 0; i < batch; i++) y[i] = (int32_t)(i % sp.classes);
    be->memset0(be, buf, (size_t)gw.n * 4);
    /* train/cnn.c's own step (one recorded graph per step on CUDA, drop path included) */
    sr_step st;
    if (sr_step_init(&st, p, net.images, net.labels, 1)) {
        fprintf(stderr, "retrain_step: out of memory on the %s backend for the step's buffers\n", be->name);
        return 1;
    }
    float loss = NAN, correct;
    warmup += rt_plan_tune_steps(p); /* autotuning's steps (DARTSC_AUTOTUNE) are warm-up too */
    for (long s = 0; s < warmup + steps; s++) {
        double t0 = sr_now();
        if (sr_train_step(&st, buf, x, y, tc->w_lr, tc, &loss, &correct)) {
            fprintf(stderr, "retrain_step: the step failed\n");
            return 1;
        }
        if (s >= warmup) times[s - warmup] = sr_now() - t0;
    }
    sr_step_free(&st);
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double dev_mb = be->peak_bytes ? (double)be->peak_bytes(be) / 1048576.0 : -1.0;
    if (json)
        printf("{\"impl\":\"dartsc\",\"what\":\"retrain\",\"space\":\"%s\",\"device\":\"%s\",\"C\":%d,\"layers\":%d,"
               "\"batch\":%ld,\"drop_path\":%.3g,\"aux\":%d,\"weights\":%lld,\"median_s\":%.4f,\"min_s\":%.4f,"
               "\"images_per_s\":%.1f,\"peak_device_alloc_mb\":%.1f,\"last_loss\":%.4f}\n",
               sp.name, be->name, eo.C, eo.layers, batch, drop, eo.aux, (long long)gw.n, med, times[0], batch / med,
               dev_mb, loss);
    else
        printf("%s retraining on %s (C %d, %d cells, batch %ld, drop path %.3g%s): median %.4f s/step (min %.4f), "
               "%.1f images/s\n",
               sp.name, be->name, eo.C, eo.layers, batch, drop, eo.aux ? ", auxiliary head" : "", med, times[0],
               batch / med);
    free(times);
    free(x);
    free(y);
    be->free(be, buf);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    return 0;
}
