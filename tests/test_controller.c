/* test_controller.c — the LSTM controller of the reinforcement-learning searches
 * (search/controller.c): its REINFORCE gradient against finite differences of the exact
 * expected reward (every genotype of a tiny space enumerated), its entropy gradient
 * against finite differences, genotype <-> token round trips, and that REINFORCE on a
 * synthetic reward (the share of sep_conv_3x3 ops) reaches the optimum in a bounded
 * number of steps. CPU only, a few seconds. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/space.h"
#include "search/controller.h"

static char err[1024];

/* Two nodes of one kept input and the candidates none, max_pool_3x3, avg_pool_3x3 in both
 * cells: 2 * 2 * 3 * 2 = 24 token sequences a cell, 576 in all. */
static void tiny_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    ir_cell *cs[2] = {&sp->normal, &sp->reduce};
    for (int i = 0; i < 2; i++) {
        cs[i]->n_nodes = 2;
        cs[i]->k_keep = 1;
        cs[i]->n_ops = 3;
        ir_cell_all_edges(cs[i]);
    }
}

/* A fixed reward per token sequence in [0, 1). */
static double reward_of(const int *a, int T) {
    uint64_t h = 1469598103934665603ull;
    for (int t = 0; t < T; t++) h = (h ^ (uint64_t)(a[t] + 1)) * 1099511628211ull;
    return (double)(h >> 11) / 9007199254740992.0;
}

/* Next sequence in mixed radix; 0 after the last. */
static int next_seq(const sr_ctl *c, int *a) {
    for (int t = sr_ctl_num_tokens(c) - 1; t >= 0; t--) {
        if (++a[t] < sr_ctl_token_choices(c, t)) return 1;
        a[t] = 0;
    }
    return 0;
}

/* J = sum over all sequences of pi(a) R(a), in double from the float log-probabilities. */
static double expected_reward(sr_ctl *c, double *total_p) {
    int a[SR_CTL_MAX_TOKENS] = {0};
    double J = 0, P = 0;
    do {
        double nl;
        cr_assert_eq(sr_ctl_eval(c, a, 0, 1, 0, &nl, NULL, err, sizeof err), 0, "%s", err);
        J += exp(-nl) * reward_of(a, sr_ctl_num_tokens(c));
        P += exp(-nl);
    } while (next_seq(c, a));
    if (total_p) *total_p = P;
    return J;
}

static sr_ctl *tiny_controller(void) {
    ir_space sp;
    tiny_space(&sp);
    sr_ctl_opts o = sr_ctl_opts_default();
    o.hidden = 4;
    o.init = 0.6f; /* larger than the default 0.1 so that the policy is far from uniform */
    o.seed = 7;
    sr_ctl *c = sr_ctl_new(&sp, &o, err, sizeof err);
    cr_assert(c, "%s", err);
    cr_assert_eq(sr_ctl_num_tokens(c), 8);
    return c;
}

Test(controller, reinforce_gradient_matches_finite_differences_of_the_exact_expected_reward) {
    sr_ctl *c = tiny_controller();
    int64_t n;
    float *w = sr_ctl_weights(c, &n);
    double P;
    expected_reward(c, &P);
    cr_assert(fabs(P - 1) < 1e-5, "the probabilities of all sequences sum to %.9f", P);
    /* sum_a pi(a) R(a) grad(-log pi(a)) = -grad J: the REINFORCE estimator's expectation,
     * each term the graph's gradient with c_lp = pi(a) R(a) */
    double *an = calloc((size_t)n, sizeof *an);
    int a[SR_CTL_MAX_TOKENS] = {0};
    do {
        double nl;
        cr_assert_eq(sr_ctl_eval(c, a, 0, 1, 0, &nl, NULL, err, sizeof err), 0, "%s", err);
        float coef = (float)(exp(-nl) * reward_of(a, sr_ctl_num_tokens(c)));
        cr_assert_eq(sr_ctl_eval(c, a, 1, coef, 0, NULL, NULL, err, sizeof err), 0, "%s", err);
        const float *g = sr_ctl_grad(c);
        for (int64_t i = 0; i < n; i++) an[i] -= g[i];
    } while (next_seq(c, a));
    /* central differences of J, h = 1e-2. J is summed in double from float log-probabilities
     * (each off by ~1e-7 relative), so the difference quotient carries ~1e-5 of rounding;
     * the truncation error h^2/6 J''' is ~1e-5 for weights of this size. Tolerance
     * 1e-4 + 1e-2 |g|; a wrong sign, a missing term or a wrong token gives errors of the
     * size of the gradient (up to ~0.05 here). */
    const float h = 1e-2f;
    double worst = 0, gmax = 0;
    int checked = 0;
    for (int64_t i = 0; i < n; i += 7, checked++) {
        float w0 = w[i];
        w[i] = w0 + h;
        double jp = expected_reward(c, NULL);
        w[i] = w0 - h;
        double jm = expected_reward(c, NULL);
        w[i] = w0;
        double fd = (jp - jm) / (2.0 * (double)h), e = fabs(fd - an[i]);
        cr_assert(e <= 1e-4 + 1e-2 * fabs(fd), "weight %lld: REINFORCE %.8f, finite differences %.8f", (long long)i, an[i], fd);
        if (e > worst) worst = e;
        if (fabs(fd) > gmax) gmax = fabs(fd);
    }
    cr_assert(gmax > 1e-2, "the gradient is too small to test anything (largest %.3g)", gmax);
    cr_log_info("%d weights of %lld: worst |REINFORCE - FD| %.3g, largest gradient %.3g", checked, (long long)n, worst, gmax);
    free(an);
    sr_ctl_free(c);
}

Test(controller, entropy_gradient_matches_finite_differences) {
    sr_ctl *c = tiny_controller();
    int64_t n;
    float *w = sr_ctl_weights(c, &n);
    int a[SR_CTL_MAX_TOKENS] = {1, 0, 2, 1, 0, 1, 1, 0};
    double e0;
    /* loss = -c_ent * sum H: with c_ent = 1 the gradient is -grad(sum H) */
    cr_assert_eq(sr_ctl_eval(c, a, 1, 0, 1, NULL, &e0, err, sizeof err), 0, "%s", err);
    cr_assert(e0 > 0.5 && e0 < 8 * log(3.0), "entropy %.6f", e0);
    float *g = malloc((size_t)n * sizeof *g);
    memcpy(g, sr_ctl_grad(c), (size_t)n * sizeof *g);
    /* float32 entropies (~4) round at ~5e-7; over 2h = 2e-2 that is ~5e-5; tolerance
     * 2e-4 + 1e-2 |g| */
    const float h = 1e-2f;
    double gmax = 0;
    for (int64_t i = 0; i < n; i += 2) {
        float w0 = w[i];
        double ep, em;
        w[i] = w0 + h;
        cr_assert_eq(sr_ctl_eval(c, a, 0, 0, 1, NULL, &ep, err, sizeof err), 0, "%s", err);
        w[i] = w0 - h;
        cr_assert_eq(sr_ctl_eval(c, a, 0, 0, 1, NULL, &em, err, sizeof err), 0, "%s", err);
        w[i] = w0;
        double fd = (ep - em) / (2.0 * (double)h);
        cr_assert(fabs(fd + g[i]) <= 2e-4 + 1e-2 * fabs(fd), "weight %lld: autodiff %.8f, finite differences %.8f",
                  (long long)i, -g[i], fd);
        if (fabs(fd) > gmax) gmax = fabs(fd);
    }
    cr_assert(gmax > 1e-2, "largest entropy gradient %.3g", gmax);
    free(g);
    sr_ctl_free(c);
}

Test(controller, samples_are_valid_genotypes_and_round_trip_to_tokens) {
    ir_space sp;
    ir_space_darts_cifar10(&sp);
    sr_ctl_opts o = sr_ctl_opts_default();
    sr_ctl *c = sr_ctl_new(&sp, &o, err, sizeof err);
    cr_assert(c, "%s", err);
    /* 4 nodes: inputs token where more than one pair exists (nodes 1-3), two op tokens */
    cr_assert_eq(sr_ctl_num_tokens(c), 2 * (3 + 4 * 2));
    for (uint64_t s = 0; s < 20; s++) {
        int a[SR_CTL_MAX_TOKENS], b[SR_CTL_MAX_TOKENS];
        ir_genotype g;
        cr_assert_eq(sr_ctl_sample(c, 1, &s, 0, a, &g, err, sizeof err), 0, "%s", err);
        const ir_geno_cell *cells[2] = {&g.normal, &g.reduce};
        for (int ci = 0; ci < 2; ci++)
            for (int i = 0; i < 4; i++) {
                cr_assert_eq(cells[ci]->n_edges[i], 2);
                cr_assert_lt(cells[ci]->e[i][0].src, cells[ci]->e[i][1].src);
                cr_assert_lt(cells[ci]->e[i][1].src, 2 + i);
                cr_assert_neq(cells[ci]->e[i][0].op, 0, "a 'none' op was emitted");
            }
        cr_assert_eq(sr_ctl_actions(c, &g, b), 0);
        cr_assert_arr_eq(a, b, (size_t)sr_ctl_num_tokens(c) * sizeof *a);
        ir_genotype g2;
        sr_ctl_genotype(c, b, &g2);
        cr_assert_arr_eq(&g, &g2, sizeof g);
    }
    ir_genotype g;
    int a[SR_CTL_MAX_TOKENS];
    sr_ctl_sample(c, 1, (uint64_t[]){1}, 0, a, &g, err, sizeof err);
    g.normal.e[2][0].op = 0; /* none */
    cr_assert_eq(sr_ctl_actions(c, &g, a), -1);
    sr_ctl_free(c);
}

/* The synthetic reward: the share of sep_conv_3x3 (candidate 4) among all edges. */
static double sep_share(const ir_genotype *g) {
    int k = 0, n = 0;
    const ir_geno_cell *cells[2] = {&g->normal, &g->reduce};
    for (int ci = 0; ci < 2; ci++)
        for (int i = 0; i < cells[ci]->n_nodes; i++)
            for (int e = 0; e < cells[ci]->n_edges[i]; e++, n++) k += cells[ci]->e[i][e].op == 4;
    return (double)k / n;
}

Test(controller, reinforce_reaches_the_optimum_of_a_synthetic_reward) {
    ir_space sp;
    ir_space_darts_cifar10(&sp); /* the DARTS candidates, 2 nodes a cell: 8 edges, 8^8 op choices */
    sp.normal.n_nodes = sp.reduce.n_nodes = 2;
    sr_ctl_opts o = sr_ctl_opts_default();
    o.lr = 0.01f; /* at 0.03 the policy settles on a wrong op for some edges (entropy ~0 after 100 steps) */
    sr_ctl *c = sr_ctl_new(&sp, &o, err, sizeof err);
    cr_assert(c, "%s", err);
    enum { M = 8 };
    const int max_steps = 100; /* measured: 25 steps (seed 0) */
    int a[M * SR_CTL_MAX_TOKENS], reached = -1;
    uint64_t seeds[M];
    double r[M];
    ir_genotype g[M];
    sr_ctl_sample(c, 1, NULL, 1, a, g, err, sizeof err);
    double start = sep_share(&g[0]);
    for (int step = 0; step < max_steps && reached < 0; step++) {
        for (int m = 0; m < M; m++) seeds[m] = (uint64_t)(step * M + m);
        cr_assert_eq(sr_ctl_sample(c, M, seeds, 0, a, g, err, sizeof err), 0, "%s", err);
        double mean = 0;
        for (int m = 0; m < M; m++) mean += (r[m] = sep_share(&g[m])) / M;
        cr_assert_eq(sr_ctl_update(c, M, a, r, err, sizeof err), 0, "%s", err);
        sr_ctl_sample(c, 1, NULL, 1, a, g, err, sizeof err);
        /* the optimum: the most probable genotype is all sep_conv_3x3 and the samples
         * nearly all are (7 of 8 edges on average) */
        if (sep_share(&g[0]) == 1.0 && mean >= 0.875) reached = step + 1;
    }
    cr_assert(reached > 0, "after %d steps of %d samples the greedy genotype has %.0f%% sep_conv_3x3 (from %.0f%%)",
              max_steps, M, 100 * sep_share(&g[0]), 100 * start);
    cr_log_info("optimum after %d controller steps (baseline %.3f)", reached, sr_ctl_baseline(c));
    sr_ctl_free(c);
}

Test(controller, samples_follow_the_policy_the_gradient_is_taken_of) {
    /* the sampling graph (16 lanes) and the training graph (batch 1) share the weights:
     * the frequency of every whole sequence over 4,000 draws against exp(-neg_logp) */
    sr_ctl *c = tiny_controller();
    enum { N = 4000 };
    static int a[N * SR_CTL_MAX_TOKENS];
    static uint64_t seeds[N];
    for (int i = 0; i < N; i++) seeds[i] = 1000 + (uint64_t)i;
    cr_assert_eq(sr_ctl_sample(c, N, seeds, 0, a, NULL, err, sizeof err), 0, "%s", err);
    int T = sr_ctl_num_tokens(c), seq[SR_CTL_MAX_TOKENS] = {0};
    double chi2 = 0;
    int cells = 0;
    do {
        int k = 0;
        for (int i = 0; i < N; i++) k += !memcmp(a + i * T, seq, (size_t)T * sizeof *seq);
        double nl;
        cr_assert_eq(sr_ctl_eval(c, seq, 0, 1, 0, &nl, NULL, err, sizeof err), 0, "%s", err);
        double e = N * exp(-nl);
        chi2 += (k - e) * (k - e) / e;
        cells++;
    } while (next_seq(c, seq));
    /* chi-square with 575 degrees of freedom: mean 575, sd 34; 5 sd above is 745 */
    cr_assert(chi2 < 745, "chi-square %.1f over %d sequences", chi2, cells);
    cr_log_info("chi-square %.1f (%d dof)", chi2, cells - 1);
    sr_ctl_free(c);
}
