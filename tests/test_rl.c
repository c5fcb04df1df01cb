/* test_rl.c — the RL search (--strategy rl: search/controller.c driving baselines.c's
 * candidate loop): candidates come from the controller, the controller takes one step per
 * `children` scored candidates, and a search stopped inside a candidate resumes to the
 * uninterrupted run's candidates, genotype and controller state, byte for byte. Runs on
 * Fashion-MNIST with the tiny network of test_baselines.c: 64 + 64 images, 4 steps a
 * candidate. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "runtime/tensorfile.h"
#include "search/genotype.h"
#include "search/search.h"
#include "testutil.h"

static int run(const ir_space *sp, const char *dir, int candidates, int children, int resume, int64_t stop_after,
               sr_result *res, char *err, size_t errlen) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.strategy = SR_RL;
    o.candidates = candidates;
    o.candidate_epochs = 1;
    o.children = children;
    o.controller_lr = 0.05f; /* large, so that two steps visibly move the controller */
    o.resume = resume;
    o.stop_after_steps = stop_after;
    return sr_baseline_search(sp, &o, res, err, errlen);
}

Test(rl, the_controller_draws_the_candidates_and_steps_once_per_children, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char d[300], err[1024];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    sr_result r;
    cr_assert_eq(run(&sp, d, 4, 2, 0, 0, &r, err, sizeof err), 0, "%s", err);
    json_t *log = tu_load_candidates(d);
    cr_assert_eq(json_array_size(log), 4);
    double best = -1;
    for (size_t k = 0; k < 4; k++) {
        json_t *e = json_array_get(log, k);
        cr_expect_str_eq(json_string_value(json_object_get(e, "mutation")), "controller");
        cr_expect_eq(json_integer_value(json_object_get(e, "parent")), -1);
        double acc = json_real_value(json_object_get(e, "val_acc"));
        if (acc > best) best = acc;
        char path[600];
        ir_genotype g;
        snprintf(path, sizeof path, "%s/candidates/%03zu/genotype.json", d, k);
        cr_assert_eq(sr_genotype_read_json(&sp, path, &g, err, sizeof err), 0, "%s", err);
        cr_expect_eq(ir_genotype_check(&sp, &g, err, sizeof err), 0, "candidate %zu: %s", k, err);
    }
    cr_expect_float_eq(r.val_acc, best, 1e-12);
    /* two controller steps: the state says so, and the baseline is the moving average of
     * the two steps' mean scores (decay 0.9, started at the first mean) */
    char path[600];
    snprintf(path, sizeof path, "%s/controller.dtns", d);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    const rt_tf_entry *st = rt_tf_find(f, "controller/state");
    cr_assert(st && st->numel == 6);
    const int32_t *v = st->data;
    cr_expect_eq(v[0], 2, "controller steps %d", v[0]);
    int64_t bits = (int64_t)(((uint64_t)(uint32_t)v[3] << 32) | (uint32_t)v[2]);
    double b;
    memcpy(&b, &bits, sizeof b);
    double acc[4];
    for (size_t k = 0; k < 4; k++) acc[k] = json_real_value(json_object_get(json_array_get(log, k), "val_acc"));
    double m0 = (acc[0] + acc[1]) / 2, m1 = (acc[2] + acc[3]) / 2;
    const double dc = (double)0.9f; /* the decay is a float setting */
    double want = dc * (dc * m0 + (1.0 - dc) * m0) + (1.0 - dc) * m1;
    cr_expect(b == want, "baseline %.17g, expected %.17g", b, want);
    rt_tf_free(f);
    json_decref(log);
}

Test(rl, a_stopped_search_resumes_bit_identically, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    cr_assert_eq(run(&sp, a, 5, 2, 0, 0, &ra, err, sizeof err), 0, "%s", err);
    /* stopped inside candidate 3, drawn after the controller's first step */
    cr_assert_eq(run(&sp, b, 5, 2, 0, 3, &rb, err, sizeof err), 0, "%s", err);
    cr_assert(rb.stopped);
    /* resuming with another number of children is refused, naming the setting */
    cr_expect_eq(run(&sp, b, 5, 3, 1, 0, &rb, err, sizeof err), -1);
    cr_expect(strstr(err, "--children"), "%s", err);
    cr_assert_eq(run(&sp, b, 5, 2, 1, 0, &rb, err, sizeof err), 0, "%s", err);
    cr_assert(!rb.stopped);
    json_t *la = tu_load_candidates(a), *lb = tu_load_candidates(b);
    cr_expect(json_equal(la, lb), "the resumed search scored other candidates");
    cr_expect(tu_same_file(a, b, "genotype.json"), "genotype.json differs after the resume");
    cr_expect(tu_same_file(a, b, "controller.dtns"), "controller.dtns differs after the resume");
    cr_expect(memcmp(&ra.genotype, &rb.genotype, sizeof ra.genotype) == 0);
    json_decref(la);
    json_decref(lb);
}
