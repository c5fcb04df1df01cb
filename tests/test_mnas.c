/* test_mnas.c — the MnasNet objective (search/objective.h, --objective mnas): candidates'
 * rewards are ACC * (LAT / T)^-0.07 with the latency the caller measures, the winner is
 * the best reward (not the best accuracy), the objective is part of the settings a resume
 * keeps, and through the CLI a candidate's generated C is compiled and timed. Fashion-MNIST,
 * the tiny network of test_baselines.c. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "search/genotype.h"
#include "search/search.h"
#include "testutil.h"

/* A stand-in latency: 0.05 ms plus 0.03 ms per convolution (candidates 4-7) of the cells,
 * so that convolution-heavy candidates pay for their accuracy. */
static int fake_latency(void *ctx, const ir_space *cs, const ir_genotype *gt, const char *weights, const char *dir,
                        double *ms, char *err, size_t errlen) {
    (void)cs, (void)weights, (void)dir, (void)err, (void)errlen;
    int *calls = ctx, convs = 0;
    const ir_geno_cell *c[2] = {&gt->normal, &gt->reduce};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < c[t]->n_nodes; i++)
            for (int e = 0; e < c[t]->n_edges[i]; e++) convs += c[t]->e[i][e].op >= 4;
    *ms = 0.05 + 0.03 * convs;
    (*calls)++;
    return 0;
}

static int run(const ir_space *sp, const char *dir, sr_strategy st, double target, int resume, int *calls, sr_result *r,
               char *err, size_t errlen) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.strategy = st;
    o.candidates = 4;
    o.candidate_epochs = 1;
    o.population = 2;
    o.sample = 2;
    o.resume = resume;
    o.objective = SR_OBJ_MNAS;
    o.target_ms = target;
    o.latency = calls ? fake_latency : NULL;
    o.latency_ctx = calls;
    return sr_baseline_search(sp, &o, r, err, errlen);
}

Test(mnas, rewards_follow_mnasnet_and_the_best_reward_wins, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char d[300], err[1024];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    int calls = 0;
    sr_result r;
    const double T = 0.2;
    cr_assert_eq(run(&sp, d, SR_EVOLUTION, T, 0, &calls, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(calls, 4, "one latency measurement per candidate");
    double best = -1, best_acc = -1;
    int best_k = -1;
    for (int k = 0; k < 4; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/candidates/%03d/result.json", d, k);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        cr_assert(j, "%s: %s", path, je.text);
        double acc = json_number_value(json_object_get(j, "val_acc")), lat = json_number_value(json_object_get(j, "latency_ms")),
               rw = json_number_value(json_object_get(j, "reward"));
        /* MnasNet's soft constraint, w = -0.07: computed here independently */
        double want = acc * pow(lat / T, -0.07);
        cr_expect(fabs(rw - want) <= 1e-15 * fabs(want), "candidate %d: reward %.17g, expected %.17g", k, rw, want);
        cr_expect(lat >= 0.05 && lat < 1, "candidate %d: latency %g", k, lat);
        if (rw > best) best = rw, best_k = k;
        if (acc > best_acc) best_acc = acc;
        json_decref(j);
    }
    ir_genotype g;
    char path[600];
    snprintf(path, sizeof path, "%s/candidates/%03d/genotype.json", d, best_k);
    cr_assert_eq(sr_genotype_read_json(&sp, path, &g, err, sizeof err), 0, "%s", err);
    cr_expect(memcmp(&g, &r.genotype, sizeof g) == 0, "the winner is not the best reward (candidate %d)", best_k);
    /* resuming under another target is refused; under the same one it replays (no new measurement) */
    calls = 0;
    cr_expect_eq(run(&sp, d, SR_EVOLUTION, 0.3, 1, &calls, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "--target-latency"), "%s", err);
    cr_assert_eq(run(&sp, d, SR_EVOLUTION, T, 1, &calls, &r, err, sizeof err), 0, "%s", err);
    cr_expect_eq(calls, 0);
    /* without a way to measure latency the objective is an error, not a crash */
    char e2[300];
    snprintf(e2, sizeof e2, "%s", tu_tmpdir());
    cr_expect_eq(run(&sp, e2, SR_RANDOM, T, 0, NULL, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "latency"), "%s", err);
}

static char *sh_out(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    size_t k;
    while ((k = fread(s + n, 1, cap - n - 1, p)) > 0) n += k;
    s[n] = 0;
    *status = pclose(p);
    return s;
}

Test(mnas, the_cli_times_each_candidates_generated_c, .timeout = 900) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    const char *d = tu_tmpdir();
    char cmd[2048];
    int st;
    /* flags are checked before anything runs */
    snprintf(cmd, sizeof cmd, "%s search %s --out %s/bad --strategy random --objective mnas --target-latency 0x 2>&1", bin,
             tu_src_path("examples/fashion_mnist.dartsc"), d);
    char *o = sh_out(cmd, &st);
    cr_expect(st != 0 && strstr(o, "--target-latency"), "%s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s search %s --out %s/darts --strategy darts --objective mnas --target-latency 1 2>&1", bin,
             tu_src_path("examples/fashion_mnist.dartsc"), d);
    o = sh_out(cmd, &st);
    cr_expect(st != 0 && strstr(o, "random, evolution or rl"), "%s", o);
    free(o);
    snprintf(cmd, sizeof cmd,
             "%s search %s --out %s/m --device cpu --strategy random --candidates 1 --candidate-epochs 1 --subset 64 "
             "--batch 16 --objective mnas --target-latency 0.1 2>&1",
             bin, tu_src_path("examples/fashion_mnist.dartsc"), d);
    o = sh_out(cmd, &st);
    cr_assert_eq(st, 0, "%s", o);
    free(o);
    char path[600];
    snprintf(path, sizeof path, "%s/m/candidates/000/result.json", d);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert(j, "%s: %s", path, je.text);
    double lat = json_number_value(json_object_get(j, "latency_ms"));
    /* the demo's search-size network (C = 8, 5 cells) runs in about 0.1 ms on this machine */
    cr_expect(lat > 0.005 && lat < 50, "latency %g ms", lat);
    json_decref(j);
    snprintf(path, sizeof path, "%s/m/candidates/000/latency/model.c", d);
    FILE *f = fopen(path, "r");
    cr_expect(f, "no %s", path);
    if (f) fclose(f);
}
