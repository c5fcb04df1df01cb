/* test_successors.c — the DARTS successors of issue 21 (search/successors.h, pdarts.c,
 * dartsplus.c, sharp.c) on the property that defines each: PC-DARTS' planned memory falls
 * with the channel fraction of the mixed ops, its K = 1 step without edge normalisation is
 * DARTS's, beta moves the derivation; FairDARTS' zero-one loss and gradient against finite
 * differences and its threshold derivation; sharpDARTS's cosine power annealing against its
 * formula; DARTS+'s stopping rule on crafted alpha trajectories and in a real search;
 * P-DARTS's pruned candidate sets, the alpha that carries one stage into the next, and the
 * skip cap; and a bit-identical resume of each strategy after an interruption (real
 * Fashion-MNIST images, as test_search.c). (The supernets' alpha, beta, sigmoid and weight
 * gradients against finite differences: tests/test_ops_grad.c, grad/pc_darts_*, fair_darts_*.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "pipeline/pipeline.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "search/genotype.h"
#include "search/search.h"
#include "search/successors.h"
#include "testutil.h"

/* The search tests' small space (testutil.h; C 8 where PC-DARTS' K = 4 needs it): 4 steps an
 * epoch on real Fashion-MNIST images. */
#define demo_space tu_demo_search_space
#define run_search tu_run_search

#define expect_same_file tu_expect_same_file
#define expect_same_state tu_expect_same_state

/* ---- PC-DARTS ---------------------------------------------------------------------------- */

static size_t planned_arena(const ir_space *sp, ir_supernet_opts so) {
    ir_net net;
    cr_assert_eq(ir_space_build_supernet_ex(sp, 32, &so, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    char err[256];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 1, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    cr_assert(p, "%s", err);
    size_t b = rt_plan_arena_bytes(p);
    rt_plan_free(p);
    be->destroy(be);
    ir_net_free(&net);
    return b;
}

/* What `dartsc check --strategy pc-darts` prints: the planned memory of a search step falls
 * by the fraction of channels taken out of the mixed ops. If the mixed ops' share of the
 * arena is M, K takes (1 - 1/K) M out: the saving at K = 4 is 1.5 times the saving at K = 2
 * (0.75 M / 0.5 M), up to what the slices, bypasses, concatenations and shuffles add and the
 * arena's packing (measured on this space: see the message). Tolerance 1.5 +- 0.15. */
Test(pc_darts, planned_memory_falls_with_the_channel_fraction) {
    ir_space sp;
    demo_space(&sp);
    sp.C = 8;
    size_t darts = planned_arena(&sp, (ir_supernet_opts){0});
    size_t k1 = planned_arena(&sp, (ir_supernet_opts){.partial = 1, .edge_norm = 1});
    size_t k2 = planned_arena(&sp, (ir_supernet_opts){.partial = 2, .edge_norm = 1});
    size_t k4 = planned_arena(&sp, (ir_supernet_opts){.partial = 4, .edge_norm = 1});
    double ratio = (double)(darts - k4) / (double)(darts - k2);
    cr_log_info("planned arena: darts %zu, K=1 %zu, K=2 %zu, K=4 %zu; saving ratio %.3f; K=4 / darts %.3f", darts, k1,
                k2, k4, ratio, (double)k4 / darts);
    cr_expect(k4 < k2 && k2 < darts, "darts %zu, K=2 %zu, K=4 %zu", darts, k2, k4);
    cr_expect(fabs(ratio - 1.5) <= 0.15, "saving at K=4 / saving at K=2 = %.3f (darts %zu, K=2 %zu, K=4 %zu)", ratio,
              darts, k2, k4);
    /* K = 1 with edge normalisation: the beta mixes add one node per intermediate node, no more */
    cr_expect(k1 >= darts && k1 < darts + darts / 10, "K=1 %zu vs darts %zu", k1, darts);
}

/* K = 1 and no edge normalisation: the pc-darts strategy lowers DARTS's supernet and takes
 * DARTS's steps: after 3 steps its weights, alpha and optimiser states equal DARTS's bit for
 * bit. */
Test(pc_darts, k1_without_edge_norm_steps_exactly_as_darts, .timeout = 300) {
    ir_space sp;
    demo_space(&sp);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    run_search(&sp, a, 0, 3, SR_DARTS, &ra);
    sp.search.partial_channels = 1;
    sp.search.edge_norm_off = 1;
    run_search(&sp, b, 0, 3, SR_PC_DARTS, &rb);
    cr_assert(ra.stopped && rb.stopped);
    expect_same_state(a, b);
}

/* Edge normalisation enters the derivation: with alpha alone node 0 would keep edges 0 and
 * 1 (sep_conv_3x3 strongest), but beta weights them down below edge 2's op. */
Test(pc_darts, beta_reorders_the_derived_edges) {
    ir_cell c;
    ir_cell_darts_default(&c); /* 4 nodes, 14 edges, 8 ops */
    float alpha[14 * 8];
    for (int i = 0; i < 14 * 8; i++) alpha[i] = 0.f;
    /* node 1 (edges 2, 3, 4 from states 0, 1, 2): alpha prefers edges 2 and 3 */
    alpha[2 * 8 + 4] = 2.f;  /* sep_conv_3x3 on edge 2 */
    alpha[3 * 8 + 5] = 1.5f; /* sep_conv_5x5 on edge 3 */
    alpha[4 * 8 + 3] = 1.f;  /* skip_connect on edge 4 */
    float b0[2] = {0, 0}, b1[3] = {-3.f, 0.f, 1.f}, b2[4] = {0}, b3[5] = {0};
    const float *betas[4] = {b0, b1, b2, b3};
    ir_geno_cell plain, pc;
    sr_derive(&c, alpha, &plain);
    sr_pc_derive(&c, alpha, betas, &pc);
    cr_expect(plain.e[1][0].src == 0 && plain.e[1][0].op == 4 && plain.e[1][1].src == 1 && plain.e[1][1].op == 5);
    /* with beta: edge 4 (weight softmax(b1)[2] = 0.71) then edge 3 (0.26); edge 2 (0.013) drops */
    cr_expect(pc.e[1][0].src == 2 && pc.e[1][0].op == 3, "got %d(%d)", pc.e[1][0].op, pc.e[1][0].src);
    cr_expect(pc.e[1][1].src == 1 && pc.e[1][1].op == 5, "got %d(%d)", pc.e[1][1].op, pc.e[1][1].src);
    /* uniform beta: DARTS's ranking within each node (the beta factor is the same for every edge) */
    const float *none[4] = {b0, b2, b2, b3};
    sr_pc_derive(&c, alpha, none, &pc);
    cr_expect_eq(memcmp(&pc, &plain, sizeof pc), 0);
}

/* An uninterrupted search and one stopped after `stop` steps and resumed end identically:
 * genotype.json, alpha.jsonl and the checkpoint's state; alpha.jsonl then holds `key`. */
static void resume_case(const ir_space *sp, sr_strategy st, int64_t stop, const char *key) {
    char a[300], b[300];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    run_search(sp, a, 0, 0, st, &ra);
    cr_assert(!ra.stopped);
    cr_expect_eq(ra.steps, 8);
    run_search(sp, b, 0, stop, st, &rb);
    cr_assert(rb.stopped);
    cr_expect_eq(rb.steps, stop);
    run_search(sp, b, 1, 0, st, &rb);
    cr_assert(!rb.stopped);
    expect_same_file(a, b, "genotype.json");
    expect_same_file(a, b, "alpha.jsonl");
    expect_same_state(a, b);
    char p[600];
    snprintf(p, sizeof p, "%s/alpha.jsonl", a);
    char *s = tu_slurp(p, NULL);
    cr_assert(s);
    cr_expect(strstr(s, key), "no %s in %.300s", key, s);
    free(s);
}

/* alpha.jsonl carries softmax(beta) per node */
Test(pc_darts, resume_is_bit_identical, .timeout = 600) {
    ir_space sp;
    demo_space(&sp);
    sp.C = 8;
    sp.search.partial_channels = 4;
    resume_case(&sp, SR_PC_DARTS, 5, "\"betas_reduce\":[[[");
}

/* ---- FairDARTS ------------------------------------------------------------------------------ */

static double l01(const float *a, int n) { return sr_fair_zero_one(a, n, NULL, 0.f); }

/* L01 = -(1/N) sum (sigmoid(a) - 1/2)^2 at known points, and weight * dL01/da against
 * central differences (step 1e-3 on float alpha, L01 in double: truncation ~1e-7 relative,
 * rounding ~1e-13; tolerance 1e-4 relative to the largest entry). */
Test(fair_darts, zero_one_loss_and_gradient_match_finite_differences) {
    float z[4] = {0, 0, 0, 0}, big[2] = {30.f, -30.f};
    cr_expect(fabs(l01(z, 4)) < 1e-15, "L01 at sigmoid = 1/2 is 0, got %g", l01(z, 4));
    cr_expect(fabs(l01(big, 2) + 0.25) < 1e-9, "L01 at sigmoid = 0 or 1 is -1/4, got %g", l01(big, 2));
    float a[40], g[40] = {0};
    tu_fill_uniform(a, 40, -3.f, 3.f, 7);
    const float w = SR_FAIR_W01;
    sr_fair_zero_one(a, 40, g, w);
    double gmax = 0;
    for (int i = 0; i < 40; i++) gmax = fmax(gmax, fabs(g[i]));
    cr_assert(gmax > 1e-3, "gradient all but zero");
    for (int i = 0; i < 40; i++) {
        const float a0 = a[i], h = 1e-3f;
        a[i] = a0 + h;
        double lp = l01(a, 40);
        a[i] = a0 - h;
        double lm = l01(a, 40);
        a[i] = a0;
        double fd = w * (lp - lm) / (2.0 * (double)h);
        cr_expect(fabs(fd - g[i]) <= 1e-4 * gmax, "entry %d: fd %g vs analytic %g", i, fd, g[i]);
    }
}

/* The threshold rule: per node the (edge, op) pairs with sigmoid(alpha) > 0.8, strongest
 * first, at most keep (2); `none` never; a node where none passes keeps its strongest pair. */
Test(fair_darts, derivation_keeps_ops_above_the_threshold_up_to_keep) {
    ir_cell c;
    ir_cell_darts_default(&c); /* none 0, max 1, avg 2, skip 3, sep3 4, sep5 5, dil3 6, dil5 7 */
    float a[14 * 8];
    for (int i = 0; i < 14 * 8; i++) a[i] = -5.f; /* sigmoid 0.0067 */
    /* node 0 (edges 0, 1): three pairs pass; the two strongest are kept */
    a[0 * 8 + 4] = 3.f;   /* 0.953 sep3(0) */
    a[1 * 8 + 3] = 2.f;   /* 0.881 skip(1) */
    a[1 * 8 + 1] = 1.5f;  /* 0.818 max(1): passes, but keep is 2 */
    a[0 * 8 + 0] = 9.f;   /* none: never kept */
    /* node 1 (edges 2-4): none passes; the strongest (0.731 avg(2), edge 4) is kept alone */
    a[4 * 8 + 2] = 1.f;
    a[3 * 8 + 6] = 0.5f;
    /* node 2 (edges 5-8): one passes */
    a[7 * 8 + 7] = 1.6f;  /* 0.832 dil5(2) */
    a[8 * 8 + 7] = 1.3f;  /* 0.786: below */
    /* node 3 (edges 9-13): two ops of one edge pass; both kept */
    a[12 * 8 + 4] = 2.2f; /* 0.900 sep3(3) */
    a[12 * 8 + 5] = 1.8f; /* 0.858 sep5(3) */
    ir_geno_cell g;
    sr_fair_derive(&c, a, SR_FAIR_THRESHOLD, &g);
    cr_expect_eq(g.n_edges[0], 2);
    cr_expect(g.e[0][0].op == 4 && g.e[0][0].src == 0 && g.e[0][1].op == 3 && g.e[0][1].src == 1);
    cr_expect_eq(g.n_edges[1], 1);
    cr_expect(g.e[1][0].op == 2 && g.e[1][0].src == 2, "got %d(%d)", g.e[1][0].op, g.e[1][0].src);
    cr_expect_eq(g.n_edges[2], 1);
    cr_expect(g.e[2][0].op == 7 && g.e[2][0].src == 2);
    cr_expect_eq(g.n_edges[3], 2);
    cr_expect(g.e[3][0].op == 4 && g.e[3][0].src == 3 && g.e[3][1].op == 5 && g.e[3][1].src == 3);
    /* the derived genotype is valid for its space (two ops on one edge included) */
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    ir_genotype gt = {.normal = g, .reduce = g};
    char err[256];
    cr_expect_eq(ir_genotype_check(&sp, &gt, err, sizeof err), 0, "%s", err);
}

Test(fair_darts, resume_is_bit_identical_and_logs_sigmoid_weights, .timeout = 600) {
    ir_space sp;
    demo_space(&sp);
    resume_case(&sp, SR_FAIR_DARTS, 6, "\"weights\":\"sigmoid\"");
}

/* ---- the command line ------------------------------------------------------------------------ */

/* `dartsc check --strategy NAME` on the table space at batch 32: the planned MiB of one
 * search step. */
static double check_mib(const char *flags) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "%s check %s/examples/fashion_mnist_table.dartsc %s 2>&1", bin, DARTSC_SOURCE_DIR, flags);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    double mib = -1;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "one search step at batch 32: ");
        if (s) mib = atof(s + strlen("one search step at batch 32: "));
    }
    cr_expect_eq(pclose(p), 0, "%s failed", cmd);
    cr_assert(mib > 0, "no planned memory in the output of %s", cmd);
    return mib;
}

Test(pc_darts, dartsc_check_plans_less_memory_for_partial_channels, .timeout = 120) {
    double darts = check_mib("--strategy darts"), k4 = check_mib("--strategy pc-darts"),
           k2 = check_mib("--strategy pc-darts --partial-channels 2");
    cr_log_info("dartsc check: darts %.1f MiB, pc-darts K=2 %.1f MiB, K=4 %.1f MiB", darts, k2, k4);
    cr_expect(k4 < 0.5 * darts && k2 < 0.75 * darts && k4 < k2, "darts %.1f, K=2 %.1f, K=4 %.1f MiB", darts, k2, k4);
    /* a K that does not divide the channels is an error naming it, exit 1 */
    const char *bin = getenv("DARTSC_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s check %s/examples/fashion_mnist_table.dartsc --strategy pc-darts --partial-channels 3 2>&1",
             bin, DARTSC_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    cr_expect_neq(pclose(p), 0);
    cr_expect(strstr(out, "K = 3 does not divide the 8 channels of cell 0"), "%s", out);
}

/* The space's search block: strategy (the --strategy names, '_' for '-'), partial_channels,
 * edge_norm; an unknown strategy is an error at its place with a suggestion. */
Test(dsl, search_block_selects_the_strategy_and_its_settings) {
    const char *ok = "ops o = { none, skip, sep_conv(3) }\n"
                     "cell normal { nodes 2; keep 2; ops o }\n"
                     "cell reduce : normal { reduction }\n"
                     "network n { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 3 }\n"
                     "search { strategy pc_darts; partial_channels 2; edge_norm off }\n";
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_string("t.dartsc", ok, strlen(ok), &sp, &d), 0);
    cr_expect_str_eq(sp.search.strategy, "pc-darts");
    cr_expect_eq(sp.search.partial_channels, 2);
    cr_expect_eq(sp.search.edge_norm_off, 1);
    fe_diags_free(&d);
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", ok);
    memcpy(strstr(bad, "pc_darts"), "fairdart", 8); /* strategy fairdart */
    fe_diags_init(&d);
    cr_expect_neq(fe_compile_string("t.dartsc", bad, strlen(bad), &sp, &d), 0);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    fe_diags_render(&d, m, 0);
    fclose(m);
    cr_expect(strstr(buf, "t.dartsc:5:19: error: 'strategy' expects") && strstr(buf, "did you mean 'fair_darts'"), "%s", buf);
    free(buf);
    fe_diags_free(&d);
}

/* ==== P-DARTS, DARTS+, sharpDARTS ==== */

/* ---- sharpDARTS ------------------------------------------------------------------------------ */

/* The paper's equation written out independently: lr_min + (lr - lr_min) * (p^(c_t + 1) - p) /
 * (p^(c_1 + 1) - p), c_t = (1 + cos(pi t / T)) / 2, t = epoch + 1 (c_T = 0, so p^(c_T+1) = p). */
static double cpa(double lr, double lr_min, double p, int T, int epoch) {
    double ct = (1 + cos(M_PI * (epoch + 1) / T)) / 2, c1 = (1 + cos(M_PI / T)) / 2;
    if (p == 1) return lr_min + (lr - lr_min) * ct / c1;
    return lr_min + (lr - lr_min) * (pow(p, ct + 1) - p) / (pow(p, c1 + 1) - p);
}

Test(sharp_darts, cosine_power_annealing_matches_its_formula_at_chosen_epochs) {
    ir_train_config tc;
    ir_train_config_default_search(&tc);
    tc.w_lr = 0.025f;
    tc.w_lr_min = 1e-4f;
    tc.epochs = 50;
    const float ps[3] = {1.f, 2.f, 10.f};
    const int es[6] = {0, 1, 12, 25, 37, 49};
    for (int i = 0; i < 3; i++) {
        tc.lr_power = ps[i];
        for (int k = 0; k < 6; k++) {
            double want = cpa(0.025, 1e-4, ps[i], 50, es[k]), got = sr_cosine_power_lr(&tc, es[k]);
            /* float result of a double computation: 2 float ulps */
            cr_expect(fabs(got - want) <= 2.5e-7 * fabs(want), "p %g epoch %d: %.9g, formula %.9g", ps[i], es[k], got, want);
        }
        /* the first epoch runs at lr, the last at lr_min, and it only decreases */
        cr_expect_float_eq(sr_cosine_power_lr(&tc, 0), 0.025f, 1e-9);
        cr_expect_float_eq(sr_cosine_power_lr(&tc, 49), 1e-4f, 1e-9);
        for (int e = 1; e < 50; e++) cr_expect(sr_cosine_power_lr(&tc, e) < sr_cosine_power_lr(&tc, e - 1));
    }
    /* a larger p decays faster: below cosine annealing in mid-schedule */
    tc.lr_power = 10.f;
    float p10 = sr_cosine_power_lr(&tc, 24);
    tc.lr_power = 1.f;
    cr_expect(p10 < 0.6f * sr_cosine_power_lr(&tc, 24));
    tc.epochs = 1;
    cr_expect_float_eq(sr_cosine_power_lr(&tc, 0), 0.025f, 0);
}

/* ---- DARTS+ ----------------------------------------------------------------------------------- */

enum { NONE = 0, MAXP = 1, AVGP = 2, SKIP = 3, SEP3 = 4, SEP5 = 5, DIL3 = 6, DIL5 = 7 };
#define E 14
#define O 8

/* sep_conv_3x3 the strongest op on every edge of both cells, learnable ops ranked SEP3 > SEP5 >
 * DIL3 > DIL5, scaled by s (a growing s keeps the ranking). */
static void ranked(float *a, float s) {
    for (int e = 0; e < E; e++)
        for (int o = 0; o < O; o++) a[e * O + o] = 0;
    for (int e = 0; e < E; e++) {
        a[e * O + SEP3] = 4 * s;
        a[e * O + SEP5] = 3 * s;
        a[e * O + DIL3] = 2 * s;
        a[e * O + DIL5] = 1 * s;
    }
}

Test(darts_plus, stops_when_the_normal_cell_derives_two_skips_and_not_with_one) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    float an[E * O], ar[E * O];
    ranked(an, 0.1f);
    ranked(ar, 0.1f);
    int64_t stable = 0, value = 0;
    /* one skip: node 0's edge from state 0 prefers skip */
    an[0 * O + SKIP] = 5;
    cr_expect_eq(sr_dplus_check(&sp, an, ar, NULL, NULL, &stable, &value), 0);
    /* a second one (node 1's edge from state 2): stop, criterion 1 */
    an[4 * O + SKIP] = 5;
    cr_expect_eq(sr_dplus_check(&sp, an, ar, NULL, NULL, &stable, &value), SR_DPLUS_SKIPS);
    cr_expect_eq(value, 2);
    /* skips in the reduction cell do not count */
    an[0 * O + SKIP] = an[4 * O + SKIP] = 0;
    ar[0 * O + SKIP] = ar[4 * O + SKIP] = ar[9 * O + SKIP] = 5;
    cr_expect_eq(sr_dplus_check(&sp, an, ar, NULL, NULL, &stable, &value), 0);
    /* stop_skips 0 turns the criterion off */
    an[0 * O + SKIP] = an[4 * O + SKIP] = 5;
    sp.search.stop_skips = 0;
    cr_expect_eq(sr_dplus_check(&sp, an, ar, NULL, NULL, &stable, &value), 0);
}

/* A trajectory of n epochs; swap: the epochs at which the learnable ranking changes (SEP5
 * overtakes SEP3 on edge 5 of the reduction cell, then falls back). Returns the epoch (1-based)
 * the rule stops at, 0 if it never does. */
static int trajectory(int stop_stable, int n, const int *swap, int nswap, int64_t *value) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    sp.search.stop_stable = stop_stable;
    float an[E * O], ar[E * O], pn[E * O], pr[E * O];
    int64_t stable = 0;
    int flipped = 0;
    for (int ep = 0; ep < n; ep++) {
        ranked(an, 0.1f * (float)(ep + 1)); /* alpha grows each epoch, the ranking stays */
        ranked(ar, 0.1f * (float)(ep + 1));
        for (int k = 0; k < nswap; k++) flipped ^= swap[k] == ep;
        if (flipped) ar[5 * O + SEP5] = ar[5 * O + SEP3] + 0.05f;
        int code = sr_dplus_check(&sp, an, ar, ep ? pn : NULL, ep ? pr : NULL, &stable, value);
        if (code) {
            cr_expect_eq(code, SR_DPLUS_STABLE);
            return ep + 1;
        }
        memcpy(pn, an, sizeof an);
        memcpy(pr, ar, sizeof ar);
    }
    return 0;
}

Test(darts_plus, stops_when_the_ranking_held_for_stop_stable_epochs) {
    int64_t value = 0;
    /* held from epoch 1 on: after epoch 4 it has held for 3 epochs */
    cr_expect_eq(trajectory(3, 10, NULL, 0, &value), 4);
    cr_expect_eq(value, 3);
    /* stable but too short: 3 epochs hold it for 2 */
    cr_expect_eq(trajectory(3, 3, NULL, 0, &value), 0);
    /* a change at epoch 3 (0-based 2) restarts the count: 3, 4, 5 hold it after 6 */
    const int sw[1] = {2};
    cr_expect_eq(trajectory(3, 10, sw, 1, &value), 6);
    /* changing every other epoch: never */
    const int alt[5] = {1, 3, 5, 7, 9};
    cr_expect_eq(trajectory(3, 11, alt, 5, &value), 0);
    /* stop_stable 0: off */
    cr_expect_eq(trajectory(0, 10, NULL, 0, &value), 0);
}

/* ---- P-DARTS's derivation and skip cap --------------------------------------------------------- */

static int count_skips(const ir_cell *c, const ir_geno_cell *g) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->n_edges[i]; k++) n += c->ops[g->e[i][k].op].kind == IR_CAND_SKIP;
    return n;
}

Test(p_darts, the_final_normal_cell_keeps_at_most_max_skip_skips) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    /* the last stage's 3 candidates per edge: skip, sep_conv_3x3, dil_conv_3x3; skip the
       strongest everywhere, by a different margin on each edge */
    int cols[E * 3];
    float a[E * 3];
    for (int e = 0; e < E; e++) {
        cols[e * 3] = SKIP, cols[e * 3 + 1] = SEP3, cols[e * 3 + 2] = DIL3;
        a[e * 3] = 1.0f + 0.05f * (float)((e * 5) % E), a[e * 3 + 1] = 0.5f, a[e * 3 + 2] = 0.0f;
    }
    const int *cs[2] = {cols, cols};
    const int nc[2] = {3, 3};
    const float *as[2] = {a, a};
    for (int M = 0; M <= 9; M += 1) {
        sp.search.max_skip = M;
        ir_genotype gt;
        int removed = sr_pdarts_derive(&sp, cs, nc, as, &gt);
        int skips = count_skips(&sp.normal, &gt.normal);
        cr_expect_eq(skips, M < 8 ? M : 8, "max_skip %d: %d skips", M, skips);
        cr_expect(M < 8 ? removed >= 8 - M : removed == 0);
        /* the reduction cell is not capped: all 8 edges skip */
        cr_expect_eq(count_skips(&sp.reduce, &gt.reduce), 8);
        /* every op comes from the edge's kept candidates */
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 2; k++) {
                int op = gt.normal.e[i][k].op;
                cr_expect(op == SKIP || op == SEP3 || op == DIL3);
            }
    }
    /* the survivors at M = 2 are skips the derivation chose over the capped ones: with the
       cap lifted they are among the strongest skip weights of their nodes */
    sp.search.max_skip = 2;
    ir_genotype gt;
    sr_pdarts_derive(&sp, cs, nc, as, &gt);
    int rows[4] = {0, 2, 5, 9};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++) {
            if (gt.normal.e[i][k].op != SKIP) continue;
            int e = rows[i] + gt.normal.e[i][k].src;
            int stronger = 0; /* skip edges of the whole cell stronger than this one */
            for (int f = 0; f < E; f++) stronger += a[f * 3] > a[e * 3];
            cr_expect(stronger < 8, "a capped-away skip was kept (edge %d)", e);
        }
}

/* ---- real searches --------------------------------------------------------------------------- */

#define tiny_space tu_demo_search_space

#define same_file tu_expect_same_file

/* The tensors of two checkpoints or stage files are identical (all of them: names, sizes, bits). */
static void same_tensors(const char *a, const char *b, const char *name) {
    char pa[600], pb[600], err[512];
    snprintf(pa, sizeof pa, "%s/%s", a, name);
    snprintf(pb, sizeof pb, "%s/%s", b, name);
    rt_tf_file *x = rt_tf_read(pa, err, sizeof err), *y = rt_tf_read(pb, err, sizeof err);
    cr_assert(x && y, "%s", err);
    cr_assert_eq(rt_tf_count(x), rt_tf_count(y));
    for (int i = 0; i < rt_tf_count(x); i++) {
        const rt_tf_entry *ea = rt_tf_get(x, i), *eb = rt_tf_find(y, rt_tf_get(x, i)->name);
        cr_assert(eb && ea->numel == eb->numel, "%s: %s", name, ea->name);
        cr_expect_eq(memcmp(ea->data, eb->data, (size_t)ea->numel * 4), 0, "%s: %s differs", name, ea->name);
    }
    rt_tf_free(x);
    rt_tf_free(y);
}

/* P-DARTS over two stages (2 then 3 cells; 8 then 3 candidates per edge): the second stage's
 * candidates are the 3 largest of the first stage's final alpha on every edge, its supernet
 * holds nothing of the others, the final genotype uses only kept candidates with at most 2
 * skips, and a run interrupted in its first stage ends bit-identical to an uninterrupted one. */
Test(p_darts, stages_prune_by_alpha_carry_it_across_and_resume_bit_identically, .timeout = 600) {
    ir_space sp;
    tiny_space(&sp);
    sp.search.epochs = 1;
    sp.search.n_stages = 2;
    sp.search.stages[0] = 2, sp.search.stages[1] = 3;
    sp.search.n_stage_ops = 2;
    sp.search.stage_ops[0] = 8, sp.search.stage_ops[1] = 3;
    sp.search.n_skip_dropout = 2;
    sp.search.skip_dropout[0] = 0.0f, sp.search.skip_dropout[1] = 0.5f;
    char a[300], b[300], s1[400], s2[400];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    run_search(&sp, a, 0, 0, SR_PDARTS, &ra);
    cr_assert(!ra.stopped);
    cr_expect_eq(ra.steps, 8); /* 4 steps in each stage */
    snprintf(s1, sizeof s1, "%s/stage1/stage.dtns", a);
    snprintf(s2, sizeof s2, "%s/stage2/stage.dtns", a);
    char err[512];
    rt_tf_file *f1 = rt_tf_read(s1, err, sizeof err), *f2 = rt_tf_read(s2, err, sizeof err);
    cr_assert(f1 && f2, "%s", err);
    const char *an[2] = {"alpha_normal", "alpha_reduce"}, *cn[2] = {"cols_normal", "cols_reduce"};
    int Es = ir_cell_num_edges(&sp.normal); /* 5 edges in each cell type */
    int kept[2][5 * 3];
    for (int t = 0; t < 2; t++) {
        const rt_tf_entry *a1 = rt_tf_find(f1, an[t]), *c2 = rt_tf_find(f2, cn[t]);
        cr_assert(a1 && c2 && a1->numel == Es * 8 && c2->numel == Es * 3);
        const float *al = a1->data;
        const int32_t *cols = c2->data;
        for (int e = 0; e < Es; e++) {
            /* stage 2's candidates: the top 3 of stage 1's alpha (ties to the lower op), in op order */
            int top[8] = {0};
            for (int k = 0; k < 3; k++) {
                int bst = -1;
                for (int o = 0; o < 8; o++)
                    if (!top[o] && (bst < 0 || al[e * 8 + o] > al[e * 8 + bst])) bst = o;
                top[bst] = 1;
            }
            int m = 0;
            for (int o = 0; o < 8; o++)
                if (top[o]) {
                    cr_expect_eq(cols[e * 3 + m], o, "cell %d edge %d column %d", t, e, m);
                    kept[t][e * 3 + m++] = o;
                }
        }
    }
    rt_tf_free(f1);
    rt_tf_free(f2);
    /* stage 2's supernet: 3 cells, alpha (5, 3), no node of a pruned candidate; skip dropout */
    ir_space s = sp;
    s.layers = 3;
    ir_supernet_opts so = {.cols = {kept[0], kept[1]}, .n_cols = {3, 3}, .skip_dropout = 0.5f};
    ir_net net;
    cr_assert_eq(ir_space_build_supernet_ex(&s, 16, &so, &net), 0, "%s", net.error);
    const ir_node *al = ir_graph_node(net.graph, net.alpha[0]);
    cr_expect(al->shape[0] == 5 && al->shape[1] == 3);
    for (int e = 0; e < Es; e++)
        for (int o = 1; o < 8; o++) { /* 0 is none: never a node */
            int k = kept[0][e * 3] == o || kept[0][e * 3 + 1] == o || kept[0][e * 3 + 2] == o;
            char name[128];
            /* a pool's node is shared by the edges leaving one state (ir/space.c), its batch
               norm is the edge's own */
            snprintf(name, sizeof name, "cells.0._ops.%d._ops.%d%s", e, o,
                     o == SKIP ? "" : o == MAXP || o == AVGP ? ".1" : ".op.0");
            if (o == SKIP) continue; /* an identity skip is its input's node */
            cr_expect_eq(ir_graph_find(net.graph, name) >= 0, k, "edge %d op %d kept %d", e, o, k);
        }
    int dropouts = 0;
    for (int i = 0; i < ir_graph_num_nodes(net.graph); i++) dropouts += ir_graph_node(net.graph, i)->op == IR_OP_DROPOUT;
    int skips_kept = 0;
    for (int e = 0; e < Es; e++)
        for (int j = 0; j < 3; j++) skips_kept += kept[0][e * 3 + j] == SKIP;
    cr_expect(dropouts >= skips_kept, "%d dropout nodes for %d kept normal skips", dropouts, skips_kept);
    ir_net_free(&net);
    /* the final genotype: kept candidates only, at most max_skip skips */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < ra.genotype.normal.n_edges[i]; k++) {
            const ir_geno_edge *ge = &ra.genotype.normal.e[i][k];
            int e = (i == 0 ? 0 : 2) + ge->src;
            cr_expect(kept[0][e * 3] == ge->op || kept[0][e * 3 + 1] == ge->op || kept[0][e * 3 + 2] == ge->op);
        }
    cr_expect_leq(count_skips(&sp.normal, &ra.genotype.normal), 2);
    /* interrupted after 2 steps of stage 1, then resumed */
    run_search(&sp, b, 0, 2, SR_PDARTS, &rb);
    cr_assert(rb.stopped);
    run_search(&sp, b, 1, 0, SR_PDARTS, &rb);
    cr_assert(!rb.stopped);
    same_file(a, b, "genotype.json");
    same_file(a, b, "alpha.jsonl");
    same_tensors(a, b, "stage1/stage.dtns");
    same_tensors(a, b, "stage2/stage.dtns");
    same_tensors(a, b, "stage2/checkpoint.dtns");
}

/* DARTS+ in a real search: with alpha frozen (alpha_lr 0) the ranking holds from the first
 * epoch, so stop_stable 1 stops the 3-epoch search after epoch 2 (stop.json says so); an
 * interrupted and resumed run stops at the same place with the same state, and resuming a
 * stopped search runs no further step. */
Test(darts_plus, a_search_stops_early_and_resumes_bit_identically, .timeout = 600) {
    ir_space sp;
    tiny_space(&sp);
    sp.search.epochs = 3;
    sp.search.a_lr = 0;
    sp.search.stop_skips = 0;
    sp.search.stop_stable = 1;
    char a[300], b[300], p[400];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    run_search(&sp, a, 0, 0, SR_DARTS_PLUS, &ra);
    cr_expect_eq(ra.stop_epoch, 2);
    cr_expect_eq(ra.steps, 8);
    cr_expect(strstr(ra.stop_reason, "ranking"), "%s", ra.stop_reason);
    snprintf(p, sizeof p, "%s/stop.json", a);
    char *stop = tu_slurp(p, NULL);
    cr_assert(stop);
    cr_expect(strstr(stop, "\"epoch\":2") && strstr(stop, "\"criterion\":\"stable\""), "%s", stop);
    free(stop);
    run_search(&sp, b, 0, 6, SR_DARTS_PLUS, &rb);
    cr_assert(rb.stopped);
    run_search(&sp, b, 1, 0, SR_DARTS_PLUS, &rb);
    cr_expect_eq(rb.stop_epoch, 2);
    same_file(a, b, "genotype.json");
    same_file(a, b, "alpha.jsonl");
    same_file(a, b, "stop.json");
    same_tensors(a, b, "checkpoint.dtns");
    run_search(&sp, b, 1, 0, SR_DARTS_PLUS, &rb); /* already stopped: nothing more */
    cr_expect_eq(rb.steps, 8);
    cr_expect_eq(rb.stop_epoch, 2);
    /* without the condition (stop_stable 0) it runs all 3 epochs */
    sp.search.stop_stable = 0;
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    run_search(&sp, a, 0, 0, SR_DARTS_PLUS, &ra);
    cr_expect_eq(ra.stop_epoch, 0);
    cr_expect_eq(ra.steps, 12);
}

/* sharpDARTS: the weight learning rate of each step follows the schedule, and an interrupted
 * search resumes bit-identically. */
Test(sharp_darts, search_uses_the_schedule_and_resumes_bit_identically, .timeout = 600) {
    ir_space sp;
    tiny_space(&sp);
    sp.search.lr_power = 10;
    char a[300], b[300], p[400];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    run_search(&sp, a, 0, 0, SR_SHARP_DARTS, &ra);
    snprintf(p, sizeof p, "%s/metrics.jsonl", a);
    char *m = tu_slurp(p, NULL);
    cr_assert(m);
    int lines = 0;
    for (char *l = m; (l = strstr(l, "\"epoch\":")); l++, lines++) {
        int ep = atoi(l + 8);
        char *lr = strstr(l, "\"lr\":");
        cr_assert(lr);
        double want = sr_cosine_power_lr(&sp.search, ep);
        cr_expect(fabs(atof(lr + 5) - want) <= 1e-5 * want, "epoch %d lr %s, schedule %g", ep, lr + 5, want);
    }
    cr_expect_eq(lines, 8);
    free(m);
    run_search(&sp, b, 0, 6, SR_SHARP_DARTS, &rb);
    cr_assert(rb.stopped);
    run_search(&sp, b, 1, 0, SR_SHARP_DARTS, &rb);
    same_file(a, b, "genotype.json");
    same_file(a, b, "alpha.jsonl");
    same_tensors(a, b, "checkpoint.dtns");
    /* a resume with another exponent is refused, naming it, and changes nothing */
    sp.search.lr_power = 2;
    sr_options o = sr_options_default();
    o.out_dir = b;
    o.device = "cpu";
    o.resume = 1;
    o.strategy = SR_SHARP_DARTS;
    char err[1024];
    cr_expect_eq(sr_search(&sp, &o, &rb, err, sizeof err), -1);
    cr_expect(strstr(err, "lr_power 10 (now 2)"), "%s", err);
    same_tensors(a, b, "checkpoint.dtns");
}

/* ---- the DSL ----------------------------------------------------------------------------------- */

#include "frontend/fe.h"

Test(dsl, search_block_selects_a_successor_and_sets_its_stages_and_sharp_sep_conv_is_an_op) {
    const char *src = "ops s = { none, skip, sharp_sep_conv(3), sharp_sep_conv(5, 2), dil_sharp_sep_conv_3x3 }\n"
                      "cell normal { ops s }\ncell reduce : normal { reduction }\n"
                      "network n { data fashion_mnist; input 1x28x28; C 8; layers 5 }\n"
                      "search { strategy p_darts; stages [5, 8, 11]; stage_ops [5, 4, 3]; skip_dropout [0, 0.3, 0.6]\n"
                      "         max_skip 1; warmup 2; stop_skips 3; stop_stable 4; lr_power 10 }\n";
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_string("t.dartsc", src, strlen(src), &sp, &d), 0);
    cr_expect_eq(d.n, 0, "unexpected diagnostics");
    cr_expect_str_eq(sp.search.strategy, "p-darts");
    cr_expect(sp.search.n_stages == 3 && sp.search.stages[1] == 8 && sp.search.stages[2] == 11);
    cr_expect(sp.search.n_stage_ops == 3 && sp.search.stage_ops[0] == 5 && sp.search.stage_ops[2] == 3);
    cr_expect(sp.search.n_skip_dropout == 3 && fabsf(sp.search.skip_dropout[2] - 0.6f) < 1e-7f);
    cr_expect(sp.search.max_skip == 1 && sp.search.warmup == 2 && sp.search.stop_skips == 3 && sp.search.stop_stable == 4);
    cr_expect_float_eq(sp.search.lr_power, 10.f, 0);
    cr_expect_str_eq(sp.normal.ops[2].name, "sharp_sep_conv_3x3");
    cr_expect_str_eq(sp.normal.ops[3].name, "dil_sharp_sep_conv_5x5");
    cr_expect_str_eq(sp.normal.ops[4].name, "dil_sharp_sep_conv_3x3");
    cr_expect(sp.normal.ops[3].kind == IR_CAND_SHARP_SEP_CONV && sp.normal.ops[3].dilation == 2 && sp.normal.ops[3].k == 5);
    fe_diags_free(&d);
    /* a quoted name works too; an unknown one is an error with a suggestion */
    const char *q = "network n { }\nsearch { strategy \"darts-plus\" }\n";
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_string("q.dartsc", q, strlen(q), &sp, &d), 0);
    cr_expect_str_eq(sp.search.strategy, "darts-plus");
    fe_diags_free(&d);
    const char *bad = "network n { }\nsearch { strategy sharp_dart; stages [0] }\n";
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_string("b.dartsc", bad, strlen(bad), &sp, &d), -1);
    cr_expect_eq(fe_diags_errors(&d), 2);
    cr_expect(strstr(d.items[0].msg, "'strategy' expects") && strstr(d.items[0].msg, "not 'sharp_dart'"), "%s", d.items[0].msg);
    cr_expect(d.items[0].hint && strstr(d.items[0].hint, "sharp_darts"), "%s", d.items[0].hint ? d.items[0].hint : "");
    fe_diags_free(&d);
}
