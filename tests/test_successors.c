/* test_successors.c — the DARTS successors of issue 21, each on the property that defines
 * it: sharpDARTS's cosine power annealing against its formula; DARTS+'s stopping rule on
 * crafted alpha trajectories and in a real search; P-DARTS's pruned candidate sets, the
 * alpha that carries one stage into the next, and the skip cap; and a bit-identical resume
 * of each strategy after an interruption (real Fashion-MNIST images, as test_search.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "runtime/tensorfile.h"
#include "search/genotype.h"
#include "search/search.h"
#include "testutil.h"

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

#define tiny_space tu_search_space

static void search(const ir_space *sp, const char *dir, int resume, int64_t stop_after, sr_strategy st, sr_result *res) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.device = "cpu";
    o.resume = resume;
    o.stop_after_steps = stop_after;
    o.strategy = st;
    char err[1024];
    cr_assert_eq(sr_search(sp, &o, res, err, sizeof err), 0, "%s", err);
}

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
    search(&sp, a, 0, 0, SR_PDARTS, &ra);
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
            snprintf(name, sizeof name, "cells.0._ops.%d._ops.%d%s", e, o,
                     o == SKIP ? "" : o == MAXP || o == AVGP ? ".0" : ".op.0");
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
    search(&sp, b, 0, 2, SR_PDARTS, &rb);
    cr_assert(rb.stopped);
    search(&sp, b, 1, 0, SR_PDARTS, &rb);
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
    search(&sp, a, 0, 0, SR_DARTS_PLUS, &ra);
    cr_expect_eq(ra.stop_epoch, 2);
    cr_expect_eq(ra.steps, 8);
    cr_expect(strstr(ra.stop_reason, "ranking"), "%s", ra.stop_reason);
    snprintf(p, sizeof p, "%s/stop.json", a);
    char *stop = tu_slurp(p, NULL);
    cr_assert(stop);
    cr_expect(strstr(stop, "\"epoch\":2") && strstr(stop, "\"criterion\":\"stable\""), "%s", stop);
    free(stop);
    search(&sp, b, 0, 6, SR_DARTS_PLUS, &rb);
    cr_assert(rb.stopped);
    search(&sp, b, 1, 0, SR_DARTS_PLUS, &rb);
    cr_expect_eq(rb.stop_epoch, 2);
    same_file(a, b, "genotype.json");
    same_file(a, b, "alpha.jsonl");
    same_file(a, b, "stop.json");
    same_tensors(a, b, "checkpoint.dtns");
    search(&sp, b, 1, 0, SR_DARTS_PLUS, &rb); /* already stopped: nothing more */
    cr_expect_eq(rb.steps, 8);
    cr_expect_eq(rb.stop_epoch, 2);
    /* without the condition (stop_stable 0) it runs all 3 epochs */
    sp.search.stop_stable = 0;
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    search(&sp, a, 0, 0, SR_DARTS_PLUS, &ra);
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
    search(&sp, a, 0, 0, SR_SHARP, &ra);
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
    search(&sp, b, 0, 6, SR_SHARP, &rb);
    cr_assert(rb.stopped);
    search(&sp, b, 1, 0, SR_SHARP, &rb);
    same_file(a, b, "genotype.json");
    same_file(a, b, "alpha.jsonl");
    same_tensors(a, b, "checkpoint.dtns");
    /* a resume with another exponent is refused, naming it, and changes nothing */
    sp.search.lr_power = 2;
    sr_options o = sr_options_default();
    o.out_dir = b;
    o.device = "cpu";
    o.resume = 1;
    o.strategy = SR_SHARP;
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
    cr_expect(strstr(d.items[0].msg, "unknown strategy 'sharp_dart'"), "%s", d.items[0].msg);
    cr_expect(d.items[0].hint && strstr(d.items[0].hint, "sharp-darts"), "%s", d.items[0].hint ? d.items[0].hint : "");
    fe_diags_free(&d);
}
