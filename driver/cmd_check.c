/* cmd_check.c — `dartsc check SPACE`: compile a search space, lower it to the supernet,
 * and print a summary (cells, edges, candidate ops, parameter counts, multiply-adds,
 * memory of one search step); --dump-ir and --dot show the lowered graph. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/text.h"
#include "search/genotype.h"
#include "search/proxyless.h"
#include "search/search.h"
#include "search/successors.h"

static void human_bytes(double b, char *out, size_t n);

/* The planned arena of a proxyless step plan: every edge's n_cols columns ops[0..n_cols). 0
 * when it cannot be planned. */
static size_t px_arena(const ir_space *sp, int batch, rt_backend *be, const int *ops, int n_cols, unsigned grads) {
    int *cols[2] = {NULL, NULL};
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    size_t bytes = 0;
    for (int t = 0; t < 2; t++) {
        int E = ir_cell_num_edges(cells[t]);
        if (!(cols[t] = malloc(sizeof(int) * (size_t)(E * n_cols + 1)))) goto out;
        for (int e = 0; e < E; e++)
            for (int c = 0; c < n_cols; c++) cols[t][e * n_cols + c] = ops[c] < cells[t]->n_ops ? ops[c] : 0;
    }
    ir_net net;
    if (sr_px_build_step_net(sp, batch, (const int *const *)cols, n_cols, &net)) goto out;
    char err[256];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 0, .grads = grads}, err, sizeof err);
    if (p) bytes = rt_plan_arena_bytes(p);
    if (p) rt_plan_free(p);
    ir_net_free(&net);
out:
    free(cols[0]);
    free(cols[1]);
    return bytes;
}

/* ProxylessNAS: a weight step plans one path per edge, an alpha step two (search/proxyless.h);
 * the most any sample can plan is about every edge on the candidate(s) that plan the most. */
static void proxyless_memory(const ir_space *sp, int batch, rt_backend *be) {
    int O = sp->normal.n_ops > sp->reduce.n_ops ? sp->normal.n_ops : sp->reduce.n_ops, best[2] = {0, 0};
    size_t one[IR_MAX_CANDS] = {0};
    for (int o = 0; o < O; o++) {
        one[o] = px_arena(sp, batch, be, &o, 1, RT_GRAD_W);
        if (one[o] > one[best[0]]) best[0] = o;
    }
    best[1] = best[0] == 0 ? 1 : 0;
    for (int o = 0; o < O; o++)
        if (o != best[0] && one[o] > one[best[1]]) best[1] = o;
    char a[32], b[32];
    human_bytes((double)one[best[0]], a, sizeof a);
    size_t two = O > 1 ? px_arena(sp, batch, be, best, 2, RT_GRAD_ARCH) : one[best[0]];
    human_bytes((double)two, b, sizeof b);
    printf("  strategy proxyless: a weight step plans one sampled path per edge: at most %s (every edge %s); an alpha "
           "step two: at most %s (%s and %s); the supernet's own plan is at batch 1\n", a, sp->normal.ops[best[0]].name, b,
           sp->normal.ops[best[0]].name, sp->normal.ops[best[1]].name);
}

static void print_cell(const char *what, const ir_cell *c) {
    printf("  %s cell: %d input%s, %d nodes, keep %d, combine %s, %d edges\n", what, c->n_inputs,
           c->n_inputs == 1 ? "" : "s", c->n_nodes, c->k_keep, c->combine == IR_COMBINE_CONCAT ? "concat" : "mean",
           ir_cell_num_edges(c));
    printf("    candidate ops per edge (%d):", c->n_ops);
    for (int o = 0; o < c->n_ops; o++) printf(" %s", c->ops[o].name);
    printf("\n    edges (node <- states):");
    for (int i = 0; i < c->n_nodes; i++) {
        printf(" %d<-{", c->n_inputs + i);
        int first = 1;
        for (int j = 0; j < c->n_inputs + i; j++)
            if ((c->edges[i] >> j) & 1) {
                printf(first ? "%d" : ",%d", j);
                first = 0;
            }
        printf("}");
    }
    printf("\n");
}

static void human_bytes(double b, char *out, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    snprintf(out, n, "%.1f %s", b, u[i]);
}

/* A recurrent space: the unrolled search graph (bptt steps) at the corpus's vocabulary
 * (10,000, PTB's, when the corpus is not there). */
static int check_rnn(const ir_space *sp, const char *path, int batch, int dump_ir, const char *dot) {
    rt_corpus c;
    char err[512];
    int V = 10000, have = rt_corpus_load(sp->data_path, &c, err, sizeof err) == 0;
    if (have) {
        V = c.n_words;
        printf("  corpus %s: %d words, %lld / %lld / %lld tokens (train / valid / test)\n", sp->data_path, V,
               (long long)c.n[RT_SPLIT_TRAIN], (long long)c.n[RT_SPLIT_VALID], (long long)c.n[RT_SPLIT_TEST]);
        rt_corpus_free(&c);
    } else {
        printf("  corpus not readable (%s); vocabulary taken as 10000\n", err);
    }
    ir_rnn_opts o = {.T = sp->search.bptt > 0 ? sp->search.bptt : 35, .batch = batch ? batch : sp->search.batch,
                     .ntoken = V, .dropout = sp->search.dropout, .dropout_h = sp->search.dropout_h,
                     .dropout_x = sp->search.dropout_x, .dropout_i = sp->search.dropout_i};
    ir_rnn_net net;
    if (ir_space_build_rnn(sp, NULL, &o, &net)) {
        fprintf(stderr, "%s: error: cannot lower the space: %s\n", path, net.error);
        return 1;
    }
    ir_stats st;
    ir_graph_stats(net.graph, &st);
    printf("search graph (unrolled over bptt %d, batch %d): %lld nodes, %lld weight parameters, %lld architecture "
           "parameters\n", o.T, o.batch, (long long)st.n_nodes, (long long)st.weight_params, (long long)st.arch_params);
    rt_backend *be = rt_backend_cpu_new();
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 0, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    if (p) {
        char a[32], b[32];
        human_bytes((double)rt_plan_arena_bytes(p), a, sizeof a);
        human_bytes((double)rt_plan_param_bytes(p), b, sizeof b);
        printf("  one search step: %s of activations and gradients (planned), %s of parameters and gradients\n", a, b);
        rt_plan_free(p);
    } else {
        printf("  memory estimate unavailable: %s\n", err);
    }
    be->destroy(be);
    if (dump_ir) ir_dump_text(net.graph, stdout);
    int rc = 0;
    if (dot) {
        FILE *f = dartsc_fopen_out("check", dot);
        if (!f) return 1;
        else {
            ir_dump_dot(net.graph, f);
            if (fclose(f) != 0) rc = 1;
        }
        if (rc) perror(dot);
    }
    ir_rnn_net_free(&net);
    return rc;
}

/* The retraining network of a genotype (its size depends on the ops chosen): weights,
 * BN statistics and multiply-adds per image, as trained (no auxiliary head) and exported. */
static int print_eval_net(const ir_space *sp, const char *geno) {
    if (sp->scale_phi > 0) /* EfficientNet's compound scaling (ir_space_compound_scale) */
        printf("compound scaling phi %g: depth x%.3f, width x%.3f, resolution x%.3f -> %d cells, C %d, input %dx%d\n",
               (double)sp->scale_phi, pow(IR_SCALE_ALPHA, sp->scale_phi), pow(IR_SCALE_BETA, sp->scale_phi),
               pow(IR_SCALE_GAMMA, sp->scale_phi), sp->train_layers, sp->train_C, sp->train_in_h, sp->train_in_w);
    if (!geno) {
        printf("retraining network (C %d, %d cells): pass --genotype FILE for its size\n", sp->train_C, sp->train_layers);
        return 0;
    }
    ir_genotype gt;
    char err[1024];
    if (sr_genotype_read_json(sp, geno, &gt, err, sizeof err)) {
        fprintf(stderr, "dartsc check: %s\n", err);
        return 1;
    }
    ir_eval_opts eo = {.C = sp->train_C, .layers = sp->train_layers, .batch = 1};
    ir_net en;
    if (ir_space_build_eval(sp, &gt, &eo, &en)) {
        fprintf(stderr, "dartsc check: cannot lower the retraining network: %s\n", en.error);
        return 1;
    }
    ir_stats st;
    ir_graph_stats(en.graph, &st);
    int64_t buffers = 0;
    for (int i = 0; i < ir_graph_num_nodes(en.graph); i++) {
        const ir_node *n = ir_graph_node(en.graph, i);
        if (n->op == IR_OP_PARAM && n->role == IR_ROLE_BUFFER) buffers += ir_node_numel(n);
    }
    printf("retraining network (C %d, %d cells, %s): %lld weight parameters, %lld batch-norm statistics\n", sp->train_C,
           sp->train_layers, geno, (long long)st.weight_params, (long long)buffers);
    printf("  %.1f M multiply-adds per sample (forward)\n", (double)st.macs_per_sample / 1e6);
    ir_net_free(&en);
    return 0;
}

int dartsc_cmd_check(int argc, char **argv) {
    const char *path = NULL, *dot = NULL, *geno = NULL;
    int dump_ir = 0, batch = 0;
    /* the successors' supernets: --strategy, --partial-channels, --edge-norm (or the space's) */
    sr_options so = sr_options_default();
    dartsc_search_overrides ov;
    dartsc_search_overrides_init(&ov);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--strategy") || !strcmp(argv[i], "--partial-channels") || !strcmp(argv[i], "--edge-norm")) {
            if (dartsc_search_flag("check", argv[i], i + 1 < argc ? argv[i + 1] : NULL, &so, &ov) < 0) return 2;
            i++;
        } else if (!strcmp(argv[i], "--dump-ir")) dump_ir = 1;
        else if (!strcmp(argv[i], "--dot") && i + 1 < argc) dot = argv[++i];
        else if (!strcmp(argv[i], "--genotype") && i + 1 < argc) geno = argv[++i];
        else if (!strcmp(argv[i], "--batch")) {
            if (dartsc_parse_int("check", "--batch", i + 1 < argc ? argv[++i] : NULL, 1, 65536, &batch)) return 2;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: dartsc check SPACE [--batch N] [--genotype FILE] [--dump-ir] [--dot FILE]\n"
                   "                    [--strategy NAME] [--partial-channels K] [--edge-norm on|off]\n");
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "dartsc check: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "dartsc check: more than one space given ('%s' and '%s')\n", path, argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: dartsc check SPACE [--batch N] [--genotype FILE] [--dump-ir] [--dot FILE]\n");
        return 2;
    }
    ir_space sp;
    if (dartsc_load_space(path, &sp)) return 1;
    dartsc_search_overrides_apply(&ov, &sp);
    if (dartsc_search_strategy_from_space(&ov, &sp, &so)) return 2;

    printf("space %s (%s, %s)\n", sp.name, sp.kind == IR_SPACE_CNN ? "convolutional" : "recurrent", path);
    print_cell("normal", &sp.normal);
    print_cell("reduction", &sp.reduce);
    if (sp.kind == IR_SPACE_RNN) {
        printf("  embedding %d, hidden %d\n", sp.emb, sp.hidden);
        return check_rnn(&sp, path, batch, dump_ir, dot);
    }
    printf("  network: input %dx%dx%d, %d classes, C %d, %d cells, stem x%d, reductions at", sp.in_c, sp.in_h,
           sp.in_w, sp.classes, sp.C, sp.layers, sp.stem_mult);
    for (int r = 0; r < sp.n_reduce; r++) printf(" %d", sp.reduce_at[r]);
    printf("\n");
    if (!batch) batch = sp.search.batch;
    ir_net net;
    ir_supernet_opts sno;
    sr_succ_supernet_opts(&sp, so.strategy, &sno);
    sno.no_share = sr_no_share();
    if (sno.sigmoid) printf("  strategy %s: sigmoid(alpha) per op\n", dartsc_strategy_name(so.strategy));
    if (sno.partial > 1 || sno.edge_norm)
        printf("  strategy %s: 1/%d of the channels through each mixed op, edge normalisation %s\n",
               dartsc_strategy_name(so.strategy), sno.partial > 1 ? sno.partial : 1, sno.edge_norm ? "on" : "off");
    if (ir_space_build_supernet_ex(&sp, batch, &sno, &net) != 0) {
        fprintf(stderr, "%s: error: cannot lower the space: %s\n", path, net.error);
        return 1;
    }
    ir_stats st;
    ir_graph_stats(net.graph, &st);
    printf("supernet: %lld nodes, %lld weight parameters, %lld architecture parameters\n", (long long)st.n_nodes,
           (long long)st.weight_params, (long long)st.arch_params);
    printf("  %.1f M multiply-adds per sample (forward)\n", (double)st.macs_per_sample / 1e6);
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 0, .grads = RT_GRAD_W | RT_GRAD_ARCH}, err, sizeof err);
    if (p) {
        char a[32], b[32];
        human_bytes((double)rt_plan_arena_bytes(p), a, sizeof a);
        human_bytes((double)rt_plan_param_bytes(p), b, sizeof b);
        printf("  one search step at batch %d: %s of activations and gradients (planned), %s of parameters and gradients\n",
               batch, a, b);
        rt_plan_free(p);
        if (so.strategy == SR_PROXYLESS) proxyless_memory(&sp, batch, be);
    } else {
        printf("  memory estimate unavailable: %s\n", err);
    }
    be->destroy(be);
    if (print_eval_net(&sp, geno)) {
        ir_net_free(&net);
        return 1;
    }
    if (dump_ir) ir_dump_text(net.graph, stdout);
    if (dot) {
        FILE *f = dartsc_fopen_out("check", dot);
        if (!f) {
            ir_net_free(&net);
            return 1;
        }
        ir_dump_dot(net.graph, f);
        if (fclose(f) != 0) {
            perror(dot);
            ir_net_free(&net);
            return 1;
        }
    }
    ir_net_free(&net);
    return 0;
}
