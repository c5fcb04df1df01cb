/* test_baselines.c — random search and regularised evolution (search/baselines.c): the
 * candidates are valid genotypes of the space, runs are deterministic, evolution's
 * children differ from their parent by exactly one mutation, the winner is the best
 * scored candidate, and a stopped search resumes to the same result. Runs on Fashion-MNIST
 * (Debian's dataset-fashion-mnist) with a tiny network: 64 + 64 images, 4 steps a candidate. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "search/genotype.h"
#include "search/search.h"
#include "testutil.h"

static int run(const ir_space *sp, const char *dir, sr_strategy st, int candidates, int resume, int64_t stop_after,
               sr_result *res, char *err, size_t errlen) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.strategy = st;
    o.candidates = candidates;
    o.candidate_epochs = 1;
    o.population = 3;
    o.sample = 2;
    o.resume = resume;
    o.stop_after_steps = stop_after;
    return sr_baseline_search(sp, &o, res, err, errlen);
}

static void candidate_genotype(const ir_space *sp, const char *dir, int k, ir_genotype *gt) {
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/candidates/%03d/genotype.json", dir, k);
    cr_assert_eq(sr_genotype_read_json(sp, path, gt, err, sizeof err), 0, "%s", err);
}

/* Number of (node, edge slot) positions where two genotypes differ, and what differs. */
static int edge_diffs(const ir_genotype *a, const ir_genotype *b, int *op_diffs, int *src_diffs) {
    const ir_geno_cell *ca[2] = {&a->normal, &a->reduce}, *cb[2] = {&b->normal, &b->reduce};
    int n = 0;
    *op_diffs = *src_diffs = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < ca[t]->n_nodes; i++) {
            /* compare as sets of (src, op): an input mutation re-sorts the node's edges */
            for (int k = 0; k < ca[t]->n_edges[i]; k++) {
                int found = 0, same_src = 0;
                for (int m = 0; m < cb[t]->n_edges[i]; m++) {
                    found |= ca[t]->e[i][k].src == cb[t]->e[i][m].src && ca[t]->e[i][k].op == cb[t]->e[i][m].op;
                    same_src |= ca[t]->e[i][k].src == cb[t]->e[i][m].src;
                }
                if (!found) {
                    n++;
                    if (same_src) (*op_diffs)++;
                    else (*src_diffs)++;
                }
            }
        }
    return n;
}

Test(baselines, random_candidates_are_valid_distinct_deterministic_and_the_best_wins, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    cr_assert_eq(run(&sp, a, SR_RANDOM, 4, 0, 0, &ra, err, sizeof err), 0, "%s", err);
    cr_assert_eq(run(&sp, b, SR_RANDOM, 4, 0, 0, &rb, err, sizeof err), 0, "%s", err);
    json_t *la = tu_load_candidates(a), *lb = tu_load_candidates(b);
    cr_expect(json_equal(la, lb), "two runs with one seed differ");
    cr_assert_eq(json_array_size(la), 4);
    ir_genotype g[4];
    double best = -1;
    int best_k = -1;
    for (int k = 0; k < 4; k++) {
        candidate_genotype(&sp, a, k, &g[k]);
        cr_expect_eq(ir_genotype_check(&sp, &g[k], err, sizeof err), 0, "candidate %d: %s", k, err);
        for (int i = 0; i < sp.normal.n_nodes; i++) {
            cr_expect_eq(g[k].normal.n_edges[i], 2, "two inputs per node, as DARTS derives");
            cr_expect_neq(g[k].normal.e[i][0].src, g[k].normal.e[i][1].src, "distinct inputs");
        }
        double acc = json_real_value(json_object_get(json_array_get(la, (size_t)k), "val_acc"));
        cr_expect(acc > 0 && acc <= 1, "candidate %d scored %g", k, acc);
        if (acc > best) best = acc, best_k = k;
        for (int m = 0; m < k; m++) cr_expect(memcmp(&g[k], &g[m], sizeof g[k]), "candidates %d and %d are equal", m, k);
    }
    cr_expect(memcmp(&ra.genotype, &g[best_k], sizeof ra.genotype) == 0, "the winner is not the best-scored candidate %d", best_k);
    cr_expect_float_eq(ra.val_acc, best, 1e-6);
    ir_genotype written;
    char path[600];
    snprintf(path, sizeof path, "%s/genotype.json", a);
    cr_assert_eq(sr_genotype_read_json(&sp, path, &written, err, sizeof err), 0, "%s", err);
    cr_expect(memcmp(&written, &ra.genotype, sizeof written) == 0);
    /* another seed draws other candidates */
    sp.search.seed += 5;
    char c[300];
    snprintf(c, sizeof c, "%s", tu_tmpdir());
    cr_assert_eq(run(&sp, c, SR_RANDOM, 1, 0, 0, &rb, err, sizeof err), 0, "%s", err);
    ir_genotype g2;
    candidate_genotype(&sp, c, 0, &g2);
    cr_expect(memcmp(&g2, &g[0], sizeof g2), "two seeds drew the same first candidate");
    json_decref(la);
    json_decref(lb);
}

Test(baselines, evolution_children_are_one_mutation_from_a_tournament_winner, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char d[300], err[1024];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    sr_result r;
    cr_assert_eq(run(&sp, d, SR_EVOLUTION, 7, 0, 0, &r, err, sizeof err), 0, "%s", err);
    json_t *log = tu_load_candidates(d);
    cr_assert_eq(json_array_size(log), 7);
    ir_genotype g[7];
    for (int k = 0; k < 7; k++) candidate_genotype(&sp, d, k, &g[k]);
    for (int k = 0; k < 7; k++) {
        json_t *e = json_array_get(log, (size_t)k);
        int parent = (int)json_integer_value(json_object_get(e, "parent"));
        const char *how = json_string_value(json_object_get(e, "mutation"));
        if (k < 3) {
            cr_expect_eq(parent, -1, "the first population is random");
            cr_expect_str_eq(how, "random");
            continue;
        }
        /* aging: the parent comes from the last `population` candidates */
        cr_expect(parent >= k - 3 && parent < k, "candidate %d: parent %d outside the population", k, parent);
        int od, sd;
        int n = edge_diffs(&g[k], &g[parent], &od, &sd);
        cr_expect_eq(n, 1, "candidate %d differs from its parent in %d edges", k, n);
        if (!strcmp(how, "op")) cr_expect(od == 1 && sd == 0, "candidate %d: an op mutation changed an input", k);
        else cr_expect(!strcmp(how, "input") && sd == 1 && od == 0, "candidate %d: mutation '%s'", k, how);
        cr_expect_eq(ir_genotype_check(&sp, &g[k], err, sizeof err), 0, "%s", err);
    }
    json_decref(log);
    /* bad settings are errors, not crashes */
    sr_options o = sr_options_default();
    o.out_dir = tu_tmpdir();
    o.strategy = SR_EVOLUTION;
    o.candidates = 2;
    o.population = 5;
    cr_expect_eq(sr_baseline_search(&sp, &o, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "population"), "%s", err);
}

Test(baselines, a_stopped_search_resumes_to_the_same_result, .timeout = 600) {
    ir_space sp;
    tu_tiny_fmnist_space(&sp);
    char a[300], b[300], err[1024];
    snprintf(a, sizeof a, "%s", tu_tmpdir());
    snprintf(b, sizeof b, "%s", tu_tmpdir());
    sr_result ra, rb;
    cr_assert_eq(run(&sp, a, SR_EVOLUTION, 5, 0, 0, &ra, err, sizeof err), 0, "%s", err);
    /* stopped inside candidate 3 (a mutant) after one training step */
    cr_assert_eq(run(&sp, b, SR_EVOLUTION, 5, 0, 3, &rb, err, sizeof err), 0, "%s", err);
    cr_assert(rb.stopped);
    /* a fresh search into the same directory is refused */
    cr_expect_eq(run(&sp, b, SR_EVOLUTION, 5, 0, 0, &rb, err, sizeof err), -1);
    cr_expect(strstr(err, "--resume"), "%s", err);
    cr_assert_eq(run(&sp, b, SR_EVOLUTION, 5, 1, 0, &rb, err, sizeof err), 0, "%s", err);
    cr_assert(!rb.stopped);
    json_t *la = tu_load_candidates(a), *lb = tu_load_candidates(b);
    cr_expect(json_equal(la, lb), "the resumed search differs from the uninterrupted one");
    cr_expect(memcmp(&ra.genotype, &rb.genotype, sizeof ra.genotype) == 0);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/candidates/003/model.dtns", a);
    snprintf(pb, sizeof pb, "%s/candidates/003/model.dtns", b);
    size_t na, nb;
    char *x = tu_slurp(pa, &na), *y = tu_slurp(pb, &nb);
    cr_assert(x && y);
    cr_expect(na == nb && !memcmp(x, y, na), "the candidate trained across the stop has other weights");
    free(x);
    free(y);
    json_decref(la);
    json_decref(lb);
}
