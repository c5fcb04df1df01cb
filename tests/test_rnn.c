/* test_rnn.c — the recurrent (kind rnn) space end to end: the PTB-layout corpus reader,
 * the unrolled language-model graph (gradients through BPTT against finite differences,
 * for the supernet's weights and alpha and the derived cell's weights, with variational
 * dropout masks replayed), parity of one cell step and one BPTT window with a PyTorch
 * float64 implementation of the authors' model (tests/ref/rnn_ref.py), derivation with
 * one edge per node, and search determinism and bit-identical resume.
 *
 * Finite-difference tolerance: the runtime is float32 and the loss is ~log(V) ~ 2; its
 * rounding error is ~1e-6, so central differences with h = 1e-2 carry ~5e-5 absolute
 * rounding error and O(h^2) ~ 1e-4 relative truncation error. ReLU kinks can make a single
 * entry's difference meaningless when a pre-activation lies within h of 0, so we require
 * ||g_fd - g||_2 <= 3e-2 ||g||_2 over each group and per entry
 * |g_fd - g| <= 5e-2 max|g| + 2e-4 for all but at most 2 entries. A missing time step,
 * a wrong gate or an alpha gradient through the wrong softmax row is off by O(1). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/onnx.h"
#include "codegen/rnn_export.h"
#include "frontend/fe.h"
#include "ir/space.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "runtime/text.h"
#include "pipeline/pipeline.h"
#include "search/genotype.h"
#include "search/search.h"
#include "train/common.h"
#include "train/rnn.h"
#include "train/train.h"
#include "testutil.h"

static void write_text(const char *dir, const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

/* A deterministic toy corpus: sentences over a 40-word vocabulary from a fixed LCG. */
static const char *make_corpus(int train_sentences) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    const char *names[3] = {"train.txt", "valid.txt", "test.txt"};
    int counts[3] = {train_sentences, train_sentences / 4, train_sentences / 4};
    uint32_t s = 12345;
    for (int k = 0; k < 3; k++) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        FILE *f = fopen(p, "w");
        cr_assert(f);
        for (int i = 0; i < counts[k]; i++) {
            int len = 3 + (int)((s = s * 1664525u + 1013904223u) >> 29);
            int w = (int)((s >> 8) % 40);
            for (int j = 0; j < len; j++) {
                s = s * 1664525u + 1013904223u;
                w = (w + 1 + (int)((s >> 16) % 3)) % 40; /* a little structure to learn */
                fprintf(f, " w%d", k == 0 || w != 39 ? w : 99); /* valid/test: an unseen word */
            }
            fputs(" \n", f);
        }
        if (k == 0) fputs(" <unk> \n", f);
        fclose(f);
    }
    return dir;
}

static void compile_space(const char *src, ir_space *sp) {
    fe_diags d;
    fe_diags_init(&d);
    int rc = fe_compile_string("test.dartsc", src, strlen(src), sp, &d);
    if (rc) fe_diags_render(&d, stderr, 0);
    fe_diags_free(&d);
    cr_assert_eq(rc, 0, "space does not compile");
}

static void tiny_space(ir_space *sp, const char *data, int nodes, int H, int T, int B, float drop, int epochs,
                       int windows, int order) {
    char src[4096];
    snprintf(src, sizeof src,
             "ops r = { none, tanh, relu, sigmoid, identity }\n"
             "cell c { inputs 1; nodes %d; keep 1; combine mean; ops r }\n"
             "network tiny { kind rnn; data text \"%s\"; emb %d; hidden %d; normal c }\n"
             "search { epochs %d; subset %d; batch %d; bptt %d; order %d; dropout %g; dropout_h %g; dropout_x %g;"
             " dropout_i %g; dropout_e 0; tar 0; seed 5 }\n"
             "train { epochs %d; subset %d; batch %d; bptt %d; lr 20; lr_min 20; dropout %g; dropout_h %g; dropout_x %g; dropout_i %g;"
             " dropout_e 0; tar 0; seed 5 }\n",
             nodes, data, H, H, epochs, windows, B, T, order, drop, drop, drop, drop, epochs, windows, B, T, drop, drop,
             drop, drop);
    compile_space(src, sp);
}

/* ---- corpus reader ---------------------------------------------------------------------------- */

Test(corpus, vocabulary_in_first_seen_order_with_eos_and_unk) {
    const char *dir = tu_tmpdir();
    write_text(dir, "train.txt", " the cat sat \n the <unk> \n");
    write_text(dir, "valid.txt", "the dog\n");
    write_text(dir, "test.txt", "cat\n\n");
    rt_corpus c;
    char err[512];
    cr_assert_eq(rt_corpus_load(dir, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.n_words, 5);
    const char *want[5] = {"the", "cat", "sat", "<eos>", "<unk>"};
    for (int i = 0; i < 5; i++) cr_expect_str_eq(c.words[i], want[i]);
    int32_t tr[] = {0, 1, 2, 3, 0, 4, 3};
    cr_assert_eq(c.n[RT_SPLIT_TRAIN], 7);
    for (int i = 0; i < 7; i++) cr_expect_eq(c.ids[RT_SPLIT_TRAIN][i], tr[i]);
    int32_t va[] = {0, 4, 3}; /* dog -> <unk> */
    cr_assert_eq(c.n[RT_SPLIT_VALID], 3);
    for (int i = 0; i < 3; i++) cr_expect_eq(c.ids[RT_SPLIT_VALID][i], va[i]);
    cr_expect_eq(c.n_unk[RT_SPLIT_VALID], 1);
    cr_expect_eq(c.n[RT_SPLIT_TEST], 3); /* an empty line is one <eos> */
    rt_corpus_free(&c);
}

Test(corpus, batchify_columns_and_windows_as_the_reference) {
    int32_t ids[23];
    for (int i = 0; i < 23; i++) ids[i] = i;
    rt_text_stream s;
    cr_assert_eq(rt_text_batchify(ids, 23, 3, &s), 0);
    cr_assert_eq(s.steps, 7); /* 23 // 3; the last 2 tokens dropped */
    cr_expect_eq(s.data[0 * 3 + 1], 7);
    cr_expect_eq(s.data[2 * 3 + 2], 16);
    cr_assert_eq(rt_text_windows(&s, 2), 3);
    int32_t x[6], y[6];
    rt_text_window(&s, 1, 2, x, y);
    int32_t wx[6] = {2, 9, 16, 3, 10, 17}, wy[6] = {3, 10, 17, 4, 11, 18};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(x[i], wx[i]);
        cr_expect_eq(y[i], wy[i]);
    }
    rt_text_stream_free(&s);
}

Test(corpus, errors_name_the_file) {
    const char *dir = tu_tmpdir();
    rt_corpus c;
    char err[512];
    cr_assert_neq(rt_corpus_load(dir, &c, err, sizeof err), 0);
    cr_expect(strstr(err, "train.txt") && strstr(err, "cannot open"), "%s", err);
    write_text(dir, "train.txt", "a b\n");
    write_text(dir, "valid.txt", "\n\n");
    cr_assert_neq(rt_corpus_load(dir, &c, err, sizeof err), 0);
    cr_expect(strstr(err, "valid.txt") && strstr(err, "no words"), "%s", err);
    write_text(dir, "valid.txt", "a\nb c\n");
    write_text(dir, "test.txt", "a\n");
    cr_assert_neq(rt_corpus_load(dir, &c, err, sizeof err), 0);
    cr_expect(strstr(err, "valid.txt:2") && strstr(err, "'c'"), "%s", err);
    rt_corpus_free(&c); /* safe after a failure */
}

/* The demo's corpus: scripts/make-corpus over Debian's fortunes package (skipped where the
 * package is not installed), read back by the C reader. */
Test(corpus, make_corpus_from_fortunes_is_read_with_a_10000_word_vocabulary, .timeout = 60) {
    if (access("/usr/share/games/fortunes/fortunes", R_OK) != 0) cr_skip_test("the fortunes package is not installed");
    char out[1100], cmd[2400], err[512];
    snprintf(out, sizeof out, "%s/fortunes", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "python3 %s --out %s > /dev/null", tu_src_path("scripts/make-corpus"), out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    rt_corpus c;
    cr_assert_eq(rt_corpus_load(out, &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.n_words, 10000);
    cr_expect(c.unk >= 0 && c.eos >= 0);
    cr_expect(c.n[RT_SPLIT_TRAIN] > 300000 && c.n[RT_SPLIT_VALID] > 30000 && c.n[RT_SPLIT_TEST] > 30000);
    cr_expect_eq(c.n_unk[RT_SPLIT_VALID] + c.n_unk[RT_SPLIT_TEST], 0, "make-corpus maps unseen words to <unk> itself");
    rt_corpus_free(&c);
}

/* ---- gradients through BPTT ---------------------------------------------------------------------- */

typedef struct lmh {
    ir_rnn_net net;
    rt_backend *be;
    rt_plan *p;
} lmh;

static void lm_open_net(lmh *h, const ir_space *sp, const ir_geno_cell *gc, int V, float drop, float tar) {
    ir_rnn_opts o = {.T = sp->search.bptt, .batch = sp->search.batch, .ntoken = V, .dropout = drop, .dropout_h = drop,
                     .dropout_x = drop, .dropout_i = drop, .dropout_e = drop, .tar = tar};
    cr_assert_eq(ir_space_build_rnn(sp, gc, &o, &h->net), 0, "%s", h->net.error);
    h->be = rt_backend_cpu_new();
    char err[256];
    h->p = rt_plan_new(h->net.graph, h->be, &(rt_plan_opts){.seed = 9, .grads = gc ? RT_GRAD_W : RT_GRAD_W | RT_GRAD_ARCH},
                       err, sizeof err);
    cr_assert(h->p, "%s", err);
    int T = h->net.T, B = h->net.batch;
    for (int t = 0; t < T; t++) {
        int32_t ids[64], tg[64];
        for (int b = 0; b < B; b++) {
            ids[b] = (t * 7 + b * 3 + 1) % V;
            tg[b] = (t * 5 + b * 2 + 2) % V;
        }
        rt_set_input(h->p, h->net.ids[t], ids, (size_t)B * 4);
        rt_set_input(h->p, h->net.targets[t], tg, (size_t)B * 4);
    }
    float h0[256];
    tu_fill_uniform(h0, (int64_t)B * h->net.nhid, -0.5f, 0.5f, 77);
    rt_set_input(h->p, h->net.h0, h0, (size_t)B * h->net.nhid * 4);
    /* larger weights than the 0.04 init so that gates and activations are far from linear */
    rt_group gw = rt_plan_group(h->p, IR_ROLE_WEIGHT);
    tu_fill_uniform(gw.data, gw.n, -0.6f, 0.6f, 31);
    rt_group ga = rt_plan_group(h->p, IR_ROLE_ARCH);
    if (ga.n) tu_fill_uniform(ga.data, ga.n, -1.f, 1.f, 32);
}

static void lm_close(lmh *h) {
    rt_plan_free(h->p);
    h->be->destroy(h->be);
    ir_rnn_net_free(&h->net);
}

static void check_group_fd(lmh *h, ir_role role, unsigned mask) {
    rt_group g = rt_plan_group(h->p, role);
    const uint64_t step = 1000;
    rt_plan_set_step(h->p, step);
    rt_forward(h->p, 1);
    cr_assert_eq(rt_backward(h->p, mask), 0);
    float *an = malloc((size_t)g.n * 4), *fd = malloc((size_t)g.n * 4);
    memcpy(an, g.grad, (size_t)g.n * 4);
    const float hstep = 1e-2f;
    double num = 0, den = 0, gmax = 0;
    for (int64_t i = 0; i < g.n; i++) gmax = fmax(gmax, fabs(an[i]));
    int bad = 0;
    for (int64_t i = 0; i < g.n; i++) {
        float keep = g.data[i];
        g.data[i] = keep + hstep;
        rt_plan_set_step(h->p, step);
        double lp = rt_forward(h->p, 1);
        g.data[i] = keep - hstep;
        rt_plan_set_step(h->p, step);
        double lm = rt_forward(h->p, 1);
        g.data[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * hstep));
        num += (fd[i] - an[i]) * (double)(fd[i] - an[i]);
        den += (double)an[i] * an[i];
        if (fabs(fd[i] - an[i]) > 5e-2 * gmax + 2e-4) bad++;
    }
    cr_expect(gmax > 1e-4, "gradient vanished (max %g)", gmax);
    cr_expect(sqrt(num) <= 3e-2 * sqrt(den), "%s: ||fd - g|| / ||g|| = %g", ir_role_name(role), sqrt(num / den));
    cr_expect(bad <= 2, "%s: %d entries off", ir_role_name(role), bad);
    free(an);
    free(fd);
}

Test(bptt, supernet_weights_and_alpha_match_finite_differences, .timeout = 120) {
    ir_space sp;
    tiny_space(&sp, "unused", 3, 4, 4, 4, 0, 1, 1, 1);
    lmh h;
    lm_open_net(&h, &sp, NULL, 7, 0.3f, 0.5f); /* dropout masks replayed by the fixed step; a large tar term */
    check_group_fd(&h, IR_ROLE_WEIGHT, RT_GRAD_W);
    check_group_fd(&h, IR_ROLE_ARCH, RT_GRAD_ARCH);
    lm_close(&h);
}

Test(bptt, derived_cell_weights_match_finite_differences, .timeout = 120) {
    ir_space sp;
    tiny_space(&sp, "unused", 4, 4, 5, 3, 0, 1, 1, 1);
    ir_geno_cell gc = {.n_nodes = 4, .n_edges = {1, 1, 1, 1}};
    int ops[4] = {2, 1, 3, 4}, src[4] = {0, 1, 1, 2}; /* relu(0) tanh(1) sigmoid(1) identity(2) */
    for (int i = 0; i < 4; i++) gc.e[i][0] = (ir_geno_edge){ops[i], src[i]};
    lmh h;
    lm_open_net(&h, &sp, &gc, 6, 0.25f, 0.2f);
    check_group_fd(&h, IR_ROLE_WEIGHT, RT_GRAD_W);
    lm_close(&h);
}

Test(bptt, hidden_state_carries_across_windows) {
    ir_space sp;
    tiny_space(&sp, "unused", 2, 4, 3, 2, 0, 1, 1, 1);
    lmh h;
    lm_open_net(&h, &sp, NULL, 5, 0, 0);
    float l1 = rt_forward(h.p, 0), hT[8];
    rt_read(h.p, h.net.hT, hT, sizeof hT);
    rt_set_input(h.p, h.net.h0, hT, sizeof hT);
    float l2 = rt_forward(h.p, 0);
    cr_expect_neq(l1, l2, "the loss must depend on the incoming hidden state");
    lm_close(&h);
}

/* ---- derivation ---------------------------------------------------------------------------------- */

Test(derive, one_edge_per_node_never_none_and_json_round_trip) {
    ir_space sp;
    tiny_space(&sp, "unused", 8, 4, 3, 2, 0, 1, 1, 1);
    int E = ir_cell_num_edges(&sp.normal);
    cr_assert_eq(E, 36);
    float alpha[36 * 5];
    for (int i = 0; i < 36 * 5; i++) alpha[i] = (i % 5 == 0) ? 5.f : 0.01f * (float)((i * 37) % 11);
    ir_genotype gt;
    sr_derive(&sp.normal, alpha, &gt.normal);
    gt.reduce = gt.normal;
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(gt.normal.n_edges[i], 1);
        cr_expect_neq(gt.normal.e[i][0].op, 0, "none chosen at node %d", i + 1);
        cr_expect(gt.normal.e[i][0].src <= i);
    }
    char path[1100], err[512];
    snprintf(path, sizeof path, "%s/genotype.json", tu_tmpdir());
    cr_assert_eq(sr_genotype_write_json(&sp, &gt, alpha, NULL, path, err, sizeof err), 0, "%s", err);
    char *txt = tu_slurp(path, NULL);
    cr_expect(txt && strstr(txt, "\"recurrent\"") && !strstr(txt, "\"reduce\""), "%s", txt ? txt : "");
    free(txt);
    ir_genotype back;
    cr_assert_eq(sr_genotype_read_json(&sp, path, &back, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(back.normal.e[i][0].op, gt.normal.e[i][0].op);
        cr_expect_eq(back.normal.e[i][0].src, gt.normal.e[i][0].src);
    }
}

/* ---- search: determinism and resume ------------------------------------------------------------ */

static int search_run(const ir_space *sp, const char *out, int resume, int64_t stop_after) {
    sr_options o = sr_options_default();
    o.out_dir = out;
    o.resume = resume;
    o.stop_after_steps = stop_after;
    sr_result r;
    char err[1024];
    int rc = sr_search(sp, &o, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "search: %s", err);
    return r.stopped;
}

static void expect_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
    cr_assert(x && y, "missing %s or %s", a, b);
    cr_expect(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

Test(search, second_order_search_is_deterministic_and_resumes_bit_identically, .timeout = 240) {
    const char *data = make_corpus(300);
    ir_space sp;
    tiny_space(&sp, data, 3, 6, 4, 4, 0.2f, 2, 5, 2);
    char a[1100], b[1100], c[1100], fa[1200], fb[1200];
    snprintf(a, sizeof a, "%s/a", tu_tmpdir());
    snprintf(b, sizeof b, "%s/b", tu_tmpdir());
    snprintf(c, sizeof c, "%s/c", tu_tmpdir());
    search_run(&sp, a, 0, 0);
    search_run(&sp, b, 0, 0);
    cr_assert_eq(search_run(&sp, c, 0, 3), 1, "stop after 3 steps");
    cr_assert_eq(search_run(&sp, c, 1, 0), 0);
    /* a stop after the last window of epoch 1, before its validation pass */
    char d[1100];
    snprintf(d, sizeof d, "%s/d", tu_tmpdir());
    cr_assert_eq(search_run(&sp, d, 0, 5), 1, "stop after 5 steps");
    cr_assert_eq(search_run(&sp, d, 1, 0), 0);
    /* resuming a finished search changes nothing */
    cr_assert_eq(search_run(&sp, b, 1, 0), 0);
    const char *files[3] = {"checkpoint.dtns", "metrics.jsonl", "genotype.json"};
    const char *dirs[3] = {b, c, d};
    for (int i = 0; i < 3; i++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        for (int k = 0; k < 3; k++) {
            snprintf(fb, sizeof fb, "%s/%s", dirs[k], files[i]);
            expect_same_file(fa, fb);
        }
    }
}

/* A derived cell of 3 nodes in a chain, node i on node i - 1 with op 1 + i. */
static ir_genotype chain_genotype(void) {
    ir_genotype gt = {0};
    gt.normal.n_nodes = 3;
    for (int i = 0; i < 3; i++) {
        gt.normal.n_edges[i] = 1;
        gt.normal.e[i][0] = (ir_geno_edge){1 + i, i};
    }
    gt.reduce = gt.normal;
    return gt;
}

Test(train, retraining_and_evaluation_report_perplexity, .timeout = 240) {
    const char *data = make_corpus(300);
    ir_space sp;
    tiny_space(&sp, data, 3, 16, 4, 4, 0.1f, 2, 0, 1);
    ir_genotype gt = chain_genotype();
    sr_train_opts o = sr_train_opts_default();
    char out[1100], w[1200], err[1024];
    snprintf(out, sizeof out, "%s/t", tu_tmpdir());
    o.out_dir = out;
    sr_train_result r;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    snprintf(w, sizeof w, "%s/model.dtns", out);
    sr_rnn_eval ev;
    cr_assert_eq(sr_rnn_evaluate(&sp, &gt, w, "cpu", &ev, err, sizeof err), 0, "%s", err);
    /* 42 words (40, <eos>, <unk>): uniform guessing is 42; training must beat it */
    cr_expect(ev.valid_ppl > 1 && ev.valid_ppl < 30, "valid perplexity %g", ev.valid_ppl);
    cr_expect(ev.test_ppl > 1 && ev.test_ppl < 30, "test perplexity %g", ev.test_ppl);
    cr_expect(ev.test_tokens > 0);
}

/* ---- periodic checkpoints ---------------------------------------------------------------------- */

typedef struct lm_snap {
    const char *from, *to;
    int64_t at; /* windows of the run done when the snapshot is taken */
    int done;
} lm_snap;

/* Called as a window starts (the arch_step hook, which retraining does not use otherwise):
 * copies the checkpoint and the log as they are then, what a crash (kill -9) during that
 * window would leave. Returns a finite "validation loss" so the loop carries on. */
static float snapshot_window(sr_lm *m, float lr, void *ctx) {
    (void)lr;
    lm_snap *s = ctx;
    if (s->done || m->global_step != s->at) return 0.0f;
    tu_copy_file(s->from, s->to, "train_checkpoint.dtns");
    tu_copy_file(s->from, s->to, "train_metrics.jsonl");
    s->done = 1;
    return 0.0f;
}

/* Fails before periodic checkpoints in the recurrent runs: a crash in the middle of an
 * epoch left only the last epoch's checkpoint (5 windows here, not 6). Retraining, 2
 * epochs of 5 windows, a checkpoint every 3 windows; the search with one every 2 windows
 * ends exactly as without (the extra saves change nothing). */
Test(train, periodic_checkpoints_lose_at_most_n_windows_and_resume_bit_identically, .timeout = 240) {
    const char *data = make_corpus(300);
    ir_space sp;
    tiny_space(&sp, data, 3, 8, 4, 4, 0.1f, 2, 5, 1);
    ir_genotype gt = chain_genotype();
    char a[1100], b[1100], err[1024];
    snprintf(a, sizeof a, "%s/a", tu_tmpdir());
    snprintf(b, sizeof b, "%s/b", tu_tmpdir());
    cr_assert_eq(mkdir(b, 0755), 0);
    lm_snap s = {.from = a, .to = b, .at = 7};
    sr_lm m;
    cr_assert_eq(sr_lm_open(&m, &sp, &sp.train, &gt.normal, "cpu", a, "train_checkpoint.dtns", "train_metrics.jsonl", err,
                            sizeof err), 0, "%s", err);
    m.ckpt_steps = 3; /* after windows 3 and 6 of 10; the epochs end at 5 and 10 */
    m.ckpt_seconds = 0;
    sr_lm_hooks hooks = {.arch_step = snapshot_window, .ctx = &s};
    cr_assert_eq(sr_lm_loop(&m, &hooks, 0, NULL, 0, 0, NULL, err, sizeof err), 0, "%s", err);
    sr_lm_free(&m);
    cr_assert(s.done);
    /* the checkpoint a crash during window 8 would leave: after 6 windows (epoch 1, window 1) */
    char path[1200];
    snprintf(path, sizeof path, "%s/train_checkpoint.dtns", b);
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    int64_t meta[8];
    cr_assert_eq(sr_get_i64s(f, "meta/state", meta, 8, path, err, sizeof err), 0, "%s", err);
    rt_tf_free(f);
    cr_expect_eq(meta[2], 1, "epoch %lld", (long long)meta[2]);
    cr_expect_eq(meta[3], 1, "window within the epoch %lld", (long long)meta[3]);
    cr_expect_eq(meta[4], 6, "windows of the run %lld", (long long)meta[4]);
    /* resumed from it through sr_train, the retraining ends exactly as the uninterrupted one */
    sr_train_opts o = sr_train_opts_default();
    o.out_dir = b;
    o.resume = 1;
    o.checkpoint_steps = 3;
    o.checkpoint_seconds = 0;
    sr_train_result r;
    cr_assert_eq(sr_train(&sp, &gt, &o, &r, err, sizeof err), 0, "%s", err);
    const char *files[] = {"train_checkpoint.dtns", "train_metrics.jsonl"};
    for (int i = 0; i < 2; i++) {
        char fa[1200], fb[1200];
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        expect_same_file(fa, fb);
    }
    /* the search: periodic checkpoints (every 2 windows) leave its result unchanged */
    char c[1100], d[1100];
    snprintf(c, sizeof c, "%s/c", tu_tmpdir());
    snprintf(d, sizeof d, "%s/d", tu_tmpdir());
    search_run(&sp, c, 0, 0);
    sr_options so = sr_options_default();
    so.out_dir = d;
    so.checkpoint_steps = 2;
    so.checkpoint_seconds = 0;
    sr_result sr;
    cr_assert_eq(sr_search(&sp, &so, &sr, err, sizeof err), 0, "%s", err);
    const char *sfiles[] = {"checkpoint.dtns", "metrics.jsonl", "genotype.json"};
    for (int i = 0; i < 3; i++) {
        char fc[1200], fd[1200];
        snprintf(fc, sizeof fc, "%s/%s", c, sfiles[i]);
        snprintf(fd, sizeof fd, "%s/%s", d, sfiles[i]);
        expect_same_file(fc, fd);
    }
}

/* ---- parity with the authors' model in PyTorch (tests/ref/rnn_ref.py) ----------------------------
 * Oracle and tolerance as tests/test_parity_torch.c (testutil.h tu_parity_compare): the
 * reference runs in float64 (truth) and float32; every tensor must be within 1e-4 relative
 * of float64 or within TU_PARITY_FACTOR of PyTorch's own float32 error. */

static void write_f32(rt_tf_writer *w, const char *name, int ndim, const int64_t *dims, const void *data, int i32) {
    cr_assert_eq(rt_tf_write(w, name, i32 ? RT_TF_I32 : RT_TF_F32, ndim, dims, data), 0);
}

static void run_rnn_parity(int nodes, int H, int T, int B, int V, float tar, const ir_geno_cell *gc,
                           const char *geno_arg) {
    ir_space sp;
    tiny_space(&sp, "unused", nodes, H, T, B, 0, 1, 1, 1);
    lmh h;
    lm_open_net(&h, &sp, gc, V, 0, tar);
    rt_group gb = rt_plan_group(h.p, IR_ROLE_BUFFER);
    for (int64_t i = 0; i < gb.n; i++) gb.data[i] = 0.5f + 0.25f * (float)(i % 7) / 7.f;
    const ir_graph *g = h.net.graph;
    char err[512], in_path[1100], out[1100], out64[1100], cmd[4096];
    const char *dir = tu_tmpdir();
    snprintf(in_path, sizeof in_path, "%s/in.dtns", dir);
    snprintf(out, sizeof out, "%s/out.dtns", dir);
    snprintf(out64, sizeof out64, "%s/out64.dtns", dir);
    rt_tf_writer *w = rt_tf_open_write(in_path, err, sizeof err);
    cr_assert(w, "%s", err);
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op != IR_OP_PARAM) continue;
        int64_t dims[4];
        for (int d = 0; d < n->ndim; d++) dims[d] = n->shape[d];
        write_f32(w, n->name, n->ndim, dims, rt_node_data(h.p, i), 0);
    }
    int32_t *ids = malloc((size_t)T * B * 4), *tg = malloc((size_t)T * B * 4);
    for (int t = 0; t < T; t++) {
        rt_read(h.p, h.net.ids[t], ids + (size_t)t * B, (size_t)B * 4);
        rt_read(h.p, h.net.targets[t], tg + (size_t)t * B, (size_t)B * 4);
    }
    write_f32(w, "ids", 2, (int64_t[]){T, B}, ids, 1);
    write_f32(w, "targets", 2, (int64_t[]){T, B}, tg, 1);
    write_f32(w, "hidden", 2, (int64_t[]){B, H}, rt_node_data(h.p, h.net.h0), 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);

    float loss = rt_forward(h.p, 1);
    cr_assert_eq(rt_backward(h.p, gc ? RT_GRAD_W : RT_GRAD_W | RT_GRAD_ARCH), 0);
    for (int dbl = 0; dbl < 2; dbl++) {
        snprintf(cmd, sizeof cmd, "%s %s --in %s --out %s --nodes %d --tar %g%s%s%s", DARTSC_PYTHON,
                 tu_src_path("tests/ref/rnn_ref.py"), in_path, dbl ? out64 : out, nodes, tar, geno_arg ? " --genotype " : "",
                 geno_arg ? geno_arg : "", dbl ? " --double" : "");
        cr_assert_eq(system(cmd), 0, "reference failed: %s", cmd);
    }
    rt_tf_file *r32 = rt_tf_read(out, err, sizeof err), *r64 = rt_tf_read(out64, err, sizeof err);
    cr_assert(r32 && r64, "%s", err);
    tu_parity t = {0};
    tu_parity_compare(&t, "loss", &loss, rt_tf_find(r64, "loss")->data, rt_tf_find(r32, "loss")->data, 1);
    float *hT = malloc((size_t)B * H * 4);
    rt_read(h.p, h.net.hT, hT, (size_t)B * H * 4);
    tu_parity_compare(&t, "hidden_out", hT, rt_tf_find(r64, "hidden_out")->data, rt_tf_find(r32, "hidden_out")->data,
                      (int64_t)B * H);
    tu_parity_compare_params(&t, h.p, r64, r32);
    cr_log_info("rnn parity: %d tensors; %d above 1e-4; worst %.3g at %s", t.tensors, t.fallback, t.worst, t.worst_name);
    cr_expect(t.tensors >= 5 + nodes);
    free(hT);
    free(ids);
    free(tg);
    rt_tf_free(r32);
    rt_tf_free(r64);
    lm_close(&h);
}

Test(parity, one_search_cell_step_matches_pytorch, .timeout = 120) { run_rnn_parity(8, 6, 1, 5, 11, 0, NULL, NULL); }

Test(parity, search_bptt_window_matches_pytorch, .timeout = 120) { run_rnn_parity(4, 5, 6, 4, 9, 0.3f, NULL, NULL); }

Test(parity, derived_cell_bptt_window_matches_pytorch, .timeout = 120) {
    /* the published DARTS_V2 recurrent cell (REFERENCE.md) */
    ir_geno_cell gc = {.n_nodes = 8};
    const char *names[5] = {"none", "tanh", "relu", "sigmoid", "identity"};
    int ops[8] = {3, 2, 2, 4, 1, 3, 1, 2}, src[8] = {0, 1, 1, 1, 2, 5, 3, 5};
    char arg[256] = "";
    for (int i = 0; i < 8; i++) {
        gc.n_edges[i] = 1;
        gc.e[i][0] = (ir_geno_edge){ops[i], src[i]};
        snprintf(arg + strlen(arg), sizeof arg - strlen(arg), "%s%s:%d", i ? "," : "", names[ops[i]], src[i]);
    }
    run_rnn_parity(8, 6, 5, 3, 10, 0.3f, &gc, arg);
}

/* ---- export: ONNX and C of embedding + one cell step + decoder, against the runtime ------------
 * Tolerance 1e-4 relative (max over elements, floor 1e-3): the same float32 arithmetic in
 * a different order (onnxruntime's Gemm, the generated C's double-accumulated dots). */

static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(p, 1, n, f) == n);
    fclose(f);
}

Test(export, onnx_and_c_step_match_the_runtime, .timeout = 180) {
    ir_space sp;
    tiny_space(&sp, "unused", 4, 5, 1, 3, 0, 1, 1, 1);
    ir_geno_cell gc = {.n_nodes = 4, .n_edges = {1, 1, 1, 1}};
    int ops[4] = {2, 1, 3, 4}, src[4] = {0, 1, 0, 2};
    for (int i = 0; i < 4; i++) gc.e[i][0] = (ir_geno_edge){ops[i], src[i]};
    const int B = 3, V = 9, H = 5;
    ir_rnn_net net;
    cr_assert_eq(cg_rnn_step_net(&sp, &gc, V, B, &net), 0, "%s", net.error);
    rt_backend *be = rt_backend_cpu_new();
    char err[512];
    rt_plan *p = rt_plan_new(net.graph, be, &(rt_plan_opts){.seed = 4, .grads = 0}, err, sizeof err);
    cr_assert(p, "%s", err);
    rt_group gw = rt_plan_group(p, IR_ROLE_WEIGHT);
    tu_fill_uniform(gw.data, gw.n, -0.7f, 0.7f, 21);
    int32_t ids[3] = {4, 0, 8};
    float hid[15], logits[27], hT[15];
    tu_fill_uniform(hid, 15, -0.8f, 0.8f, 22);
    rt_set_input(p, net.ids[0], ids, sizeof ids);
    rt_set_input(p, net.h0, hid, sizeof hid);
    rt_forward(p, 0);
    rt_read(p, net.logits[0], logits, sizeof logits);
    rt_read(p, net.hT, hT, sizeof hT);
    int nn = ir_graph_num_nodes(net.graph);
    const float **vals = calloc((size_t)nn, sizeof *vals);
    for (int i = 0; i < nn; i++)
        if (ir_graph_node(net.graph, i)->op == IR_OP_PARAM) vals[i] = rt_node_data(p, i);
    const char *dir = tu_tmpdir();
    char onnx_path[1100], in_path[1100], out_path[1100], cmd[9000];
    snprintf(onnx_path, sizeof onnx_path, "%s/step.onnx", dir);
    cr_assert_eq(cg_rnn_onnx_write(&net, vals, onnx_path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cg_onnx_inspect(onnx_path, NULL, err, sizeof err), 0, "inspect of the recurrent export: %s", err);
    snprintf(in_path, sizeof in_path, "%s/in.dtns", dir);
    snprintf(out_path, sizeof out_path, "%s/out.dtns", dir);
    rt_tf_writer *w = rt_tf_open_write(in_path, err, sizeof err);
    cr_assert(w);
    write_f32(w, "ids", 1, (int64_t[]){B}, ids, 1);
    write_f32(w, "hidden", 2, (int64_t[]){B, H}, hid, 0);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "%s %s %s %s %s", DARTSC_PYTHON, tu_src_path("tests/ref/rnn_onnx_run.py"), onnx_path, in_path,
             out_path);
    cr_assert_eq(system(cmd), 0, "onnx check/run failed: %s", cmd);
    rt_tf_file *o = rt_tf_read(out_path, err, sizeof err);
    cr_assert(o, "%s", err);
    cr_expect(tu_max_rel_err(rt_tf_find(o, "logits")->data, logits, 27, 1e-3, NULL) < 1e-4, "onnx logits differ");
    cr_expect(tu_max_rel_err(rt_tf_find(o, "hidden_out")->data, hT, 15, 1e-3, NULL) < 1e-4, "onnx hidden differs");
    rt_tf_free(o);

    /* C: compile with a small driver, run on the same inputs */
    cr_assert_eq(cg_rnn_c_write(&net, vals, dir, "lm", 4, err, sizeof err), 0, "%s", err);
    char main_path[1100], exe[1100], bin[1100];
    snprintf(main_path, sizeof main_path, "%s/main.c", dir);
    snprintf(exe, sizeof exe, "%s/lm", dir);
    FILE *f = fopen(main_path, "w");
    cr_assert(f);
    fprintf(f, "#include <stdio.h>\n#include \"lm.h\"\nint main(int c, char **v) {\n (void)c;\n"
               " int32_t ids[3]; float h[15], lg[27], ho[15];\n FILE *f = fopen(v[1], \"rb\");\n"
               " if (!f || fread(ids, 4, 3, f) != 3 || fread(h, 4, 15, f) != 15) return 1;\n fclose(f);\n"
               " lm_step(3, ids, h, lg, ho);\n f = fopen(v[2], \"wb\");\n"
               " if (!f || fwrite(lg, 4, 27, f) != 27 || fwrite(ho, 4, 15, f) != 15) return 1;\n return fclose(f) != 0;\n}\n");
    fclose(f);
    snprintf(bin, sizeof bin, "%s/in.bin", dir);
    char buf[4 * 42];
    memcpy(buf, ids, 12);
    memcpy(buf + 12, hid, 60);
    write_raw(bin, buf, 72);
    snprintf(cmd, sizeof cmd, "cc -std=c99 -pedantic -Wall -Wextra -Werror -O2 -I%s %s %s/lm.c -o %s -lm && %s %s %s/out.bin",
             dir, main_path, dir, exe, exe, bin, dir);
    cr_assert_eq(system(cmd), 0, "generated C failed: %s", cmd);
    char outbin[1100];
    snprintf(outbin, sizeof outbin, "%s/out.bin", dir);
    size_t n = 0;
    char *res = tu_slurp(outbin, &n);
    cr_assert(res && n == 4 * 42);
    cr_expect(tu_max_rel_err((const float *)res, logits, 27, 1e-3, NULL) < 1e-4, "C logits differ");
    cr_expect(tu_max_rel_err((const float *)res + 27, hT, 15, 1e-3, NULL) < 1e-4, "C hidden differs");
    free(res);
    free(vals);
    rt_plan_free(p);
    be->destroy(be);
    ir_rnn_net_free(&net);
}
