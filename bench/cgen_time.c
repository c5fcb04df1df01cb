/* cgen_time.c - latency of a generated model: NAME_infer at a batch size, single thread,
 * median over runs (after 3 warm-up runs) of the wall time and of the thread's CPU time
 * (the latter robust to other jobs on a shared machine), plus the peak resident memory.
 * Built by bench/infer.sh against the generated model.c.   cgen_time BATCH RUNS */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "model.h"

static double now(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 1, runs = argc > 2 ? atoi(argv[2]) : 50;
    if (batch < 1 || batch > model_MAX_BATCH || runs < 1) return 2;
    float *in = malloc(sizeof(float) * (size_t)model_INPUT_SIZE * batch);
    float *out = malloc(sizeof(float) * (size_t)model_OUTPUT_SIZE * batch);
    double *t = malloc(sizeof(double) * (size_t)runs), *c = malloc(sizeof(double) * (size_t)runs);
    for (long i = 0; i < (long)model_INPUT_SIZE * batch; i++) in[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    for (int w = 0; w < 3; w++) model_infer(in, out, batch);
    for (int r = 0; r < runs; r++) {
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        if (model_infer(in, out, batch)) return 1;
        t[r] = now(CLOCK_MONOTONIC) - t0;
        c[r] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    qsort(c, (size_t)runs, sizeof *c, cmp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\":\"dartsc-c\",\"batch\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"cpu_median_ms\":%.3f,"
           "\"arena_bytes\":%ld,\"maxrss_kb\":%ld}\n",
           batch, 1e3 * t[runs / 2], 1e3 * t[0], 1e3 * c[runs / 2], (long)model_ARENA_BYTES, ru.ru_maxrss);
    return 0;
}
