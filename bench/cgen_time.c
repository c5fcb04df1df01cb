/* cgen_time.c - latency of a generated model: median over runs of NAME_infer at a batch
 * size, single thread. Built by bench/infer.sh against the generated model.c. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 1, runs = argc > 2 ? atoi(argv[2]) : 50;
    float *in = malloc(sizeof(float) * (size_t)model_INPUT_SIZE * batch);
    float *out = malloc(sizeof(float) * (size_t)model_OUTPUT_SIZE * batch);
    double *t = malloc(sizeof(double) * (size_t)runs);
    for (long i = 0; i < (long)model_INPUT_SIZE * batch; i++) in[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (int w = 0; w < 3; w++) model_infer(in, out, batch);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        if (model_infer(in, out, batch)) return 1;
        t[r] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    printf("{\"impl\":\"dartsc-c\",\"batch\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f}\n", batch, 1e3 * t[runs / 2], 1e3 * t[0]);
    return 0;
}
