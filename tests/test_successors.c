/* test_successors.c — the DARTS successors of search/successors.h on the property that
 * defines each: PC-DARTS' planned memory falls with the channel fraction of the mixed ops,
 * its K = 1 step without edge normalisation is DARTS's, beta moves the derivation;
 * FairDARTS' zero-one loss and gradient against finite differences and its threshold
 * derivation; both resume bit-identically. (The supernets' alpha, beta, sigmoid and weight
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
