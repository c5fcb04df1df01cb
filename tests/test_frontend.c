/* test_frontend.c — the DSL front end: every example lowers to the expected ir_space,
 * every diagnostic renders as its golden file says (tests/golden/diag; set
 * DARTSC_UPDATE_GOLDEN=1 to rewrite them), and hostile inputs (empty, invalid UTF-8, NUL
 * bytes, 1 MB, 100k open braces, overflowing numbers) give diagnostics, never a crash. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    *len = got;
    return b;
}

static char *render(const fe_diags *d) {
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    fe_diags_render(d, m, 0);
    fclose(m);
    return buf;
}

/* Compiles an example file; fails the test with the rendered diagnostics on error. */
static void compile_example(const char *rel, ir_space *sp, fe_diags *d) {
    fe_diags_init(d);
    int rc = fe_compile_file(tu_src_path(rel), sp, d);
    char *out = render(d);
    cr_assert_eq(rc, 0, "%s does not compile:\n%s", rel, out);
    free(out);
}

static int compile_str(const char *src, size_t len, ir_space *sp, fe_diags *d) {
    fe_diags_init(d);
    return fe_compile_string("t.dartsc", src, len, sp, d);
}

static int has_diag(const fe_diags *d, fe_severity sev, const char *needle) {
    for (int i = 0; i < d->n; i++)
        if (d->items[i].severity == sev && strstr(d->items[i].msg, needle)) return 1;
    return 0;
}

#define FEQ(a, b) cr_assert(fabsf((a) - (b)) <= 1e-7f * fabsf(b) + 1e-12f, "%s = %g, expected %g", #a, (double)(a), (double)(b))

/* ---- examples ------------------------------------------------------------------------------- */
Test(frontend, test_darts_cifar10_example_matches_reference) {
    ir_space sp;
    fe_diags d;
    compile_example("examples/darts_cifar10.dartsc", &sp, &d);
    cr_assert_eq(d.n_warnings, 0, "warnings in the reference example");
    static const char *order[] = {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                                  "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"};
    const ir_cell *cells[2] = {&sp.normal, &sp.reduce};
    for (int c = 0; c < 2; c++) {
        cr_assert_eq(cells[c]->n_ops, 8);
        for (int i = 0; i < 8; i++) cr_assert_str_eq(cells[c]->ops[i].name, order[i]);
        cr_assert_eq(cells[c]->n_inputs, 2);
        cr_assert_eq(cells[c]->n_nodes, 4);
        cr_assert_eq(cells[c]->k_keep, 2);
        cr_assert_eq(cells[c]->combine, IR_COMBINE_CONCAT);
        cr_assert_eq(ir_cell_num_edges(cells[c]), 14);
    }
    cr_assert_eq(sp.normal.ops[6].kind, IR_CAND_DIL_CONV);
    cr_assert_eq(sp.normal.ops[6].dilation, 2);
    cr_assert_eq(sp.normal.ops[5].k, 5);
    cr_assert_eq(sp.kind, IR_SPACE_CNN);
    cr_assert_eq(sp.data, IR_DATA_CIFAR10);
    cr_assert_eq(sp.in_c, 3);
    cr_assert_eq(sp.in_h, 32);
    cr_assert_eq(sp.classes, 10);
    cr_assert_eq(sp.layers, 8);
    cr_assert_eq(sp.C, 16);
    cr_assert_eq(sp.stem_mult, 3);
    cr_assert_eq(sp.growth, 2);
    cr_assert_eq(sp.n_reduce, 2);
    cr_assert_eq(sp.reduce_at[0], 2);
    cr_assert_eq(sp.reduce_at[1], 5);
    const ir_train_config *s = &sp.search;
    cr_assert_eq(s->epochs, 50);
    cr_assert_eq(s->batch, 64);
    FEQ(s->w_lr, 0.025f);
    FEQ(s->w_lr_min, 0.001f);
    FEQ(s->a_lr, 3e-4f);
    FEQ(s->w_momentum, 0.9f);
    FEQ(s->w_wd, 3e-4f);
    FEQ(s->w_clip, 5.f);
    FEQ(s->a_beta1, 0.5f);
    FEQ(s->a_beta2, 0.999f);
    FEQ(s->a_wd, 1e-3f);
    FEQ(s->train_portion, 0.5f);
    cr_assert_eq(s->order, 2);
    cr_assert_eq(s->crop_pad, 4);
    cr_assert_eq(s->hflip, 1);
    cr_assert_eq(s->cutout, 0);
    const ir_train_config *t = &sp.train;
    cr_assert_eq(sp.train_C, 36);
    cr_assert_eq(sp.train_layers, 20);
    cr_assert_eq(t->epochs, 600);
    cr_assert_eq(t->batch, 96);
    cr_assert_eq(t->cutout, 16);
    FEQ(t->w_lr, 0.025f);
    FEQ(t->w_lr_min, 0.f);
    FEQ(t->drop_path, 0.2f);
    FEQ(t->aux_weight, 0.4f);
    fe_diags_free(&d);
}

Test(frontend, test_minimal_network_is_darts_cifar10) {
    /* every default is the paper's: a bare network block equals the built-in space
     * (except the name, the data path and the order the example sets) */
    ir_space sp, ref;
    fe_diags d;
    const char *src = "network darts_cifar10 { data cifar10 \"data/cifar-10-batches-bin\" }\n";
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), 0);
    cr_assert_eq(d.n, 0);
    ir_space_darts_cifar10(&ref);
    snprintf(ref.data_path, sizeof ref.data_path, "data/cifar-10-batches-bin");
    cr_assert(memcmp(&sp.normal, &ref.normal, sizeof ref.normal) == 0);
    cr_assert(memcmp(&sp.reduce, &ref.reduce, sizeof ref.reduce) == 0);
    cr_assert(memcmp(&sp.search, &ref.search, sizeof ref.search) == 0);
    cr_assert(memcmp(&sp.train, &ref.train, sizeof ref.train) == 0);
    cr_assert_eq(sp.C, ref.C);
    cr_assert_eq(sp.n_reduce, ref.n_reduce);
    fe_diags_free(&d);
}

Test(frontend, test_darts_ptb_example_is_the_recurrent_space) {
    ir_space sp;
    fe_diags d;
    compile_example("examples/darts_ptb.dartsc", &sp, &d);
    cr_assert_eq(d.n_warnings, 0);
    cr_assert_eq(sp.kind, IR_SPACE_RNN);
    cr_assert_eq(sp.data, IR_DATA_TEXT);
    cr_assert_str_eq(sp.data_path, "data/ptb");
    static const char *order[] = {"none", "tanh", "relu", "sigmoid", "identity"};
    cr_assert_eq(sp.normal.n_ops, 5);
    for (int i = 0; i < 5; i++) cr_assert_str_eq(sp.normal.ops[i].name, order[i]);
    cr_assert_eq(sp.normal.n_inputs, 1);
    cr_assert_eq(sp.normal.n_nodes, 8);
    cr_assert_eq(sp.normal.k_keep, 1);
    cr_assert_eq(sp.normal.combine, IR_COMBINE_MEAN);
    cr_assert_eq(ir_cell_num_edges(&sp.normal), 36);
    cr_assert_eq(sp.emb, 300);
    cr_assert_eq(sp.hidden, 300);
    const ir_train_config *s = &sp.search;
    cr_assert_eq(s->epochs, 50);
    cr_assert_eq(s->batch, 256);
    cr_assert_eq(s->bptt, 35);
    FEQ(s->w_lr, 20.f);
    FEQ(s->w_momentum, 0.f);
    FEQ(s->w_wd, 5e-7f);
    FEQ(s->w_clip, 0.25f);
    FEQ(s->a_lr, 3e-3f);
    FEQ(s->a_wd, 1e-3f);
    FEQ(s->dropout, 0.75f);
    FEQ(s->dropout_h, 0.25f);
    FEQ(s->dropout_x, 0.75f);
    FEQ(s->dropout_i, 0.2f);
    FEQ(s->dropout_e, 0.f);
    FEQ(s->tar, 1e-3f);
    fe_diags_free(&d);
}

Test(frontend, test_rnn_defaults_are_the_ptb_settings) {
    ir_space a, b;
    fe_diags d1, d2;
    const char *src = "network ptb { kind rnn; data text \"data/ptb\" }\n";
    cr_assert_eq(compile_str(src, strlen(src), &a, &d1), 0);
    compile_example("examples/darts_ptb.dartsc", &b, &d2);
    cr_assert(memcmp(&a.normal, &b.normal, sizeof a.normal) == 0);
    b.search.seed = a.search.seed;
    b.search.order = a.search.order;
    cr_assert(memcmp(&a.search, &b.search, sizeof a.search) == 0);
    fe_diags_free(&d1);
    fe_diags_free(&d2);
}

Test(frontend, test_fashion_mnist_example_is_small) {
    ir_space sp;
    fe_diags d;
    compile_example("examples/fashion_mnist.dartsc", &sp, &d);
    cr_assert_eq(d.n_warnings, 0);
    cr_assert_eq(sp.data, IR_DATA_FASHION_MNIST);
    cr_assert_str_eq(sp.data_path, "");
    cr_assert_eq(sp.in_c, 1);
    cr_assert_eq(sp.in_h, 28);
    cr_assert_eq(sp.in_w, 28);
    cr_assert_eq(sp.classes, 10);
    FEQ(sp.mean[0], 0.28604060f);
    FEQ(sp.std[0], 0.35302424f);
    cr_assert_eq(sp.C, 8);
    cr_assert_eq(sp.layers, 5);
    cr_assert_eq(sp.n_reduce, 2);
    cr_assert_eq(sp.reduce_at[0], 1);
    cr_assert_eq(sp.reduce_at[1], 3);
    cr_assert_eq(sp.normal.n_ops, 8);
    cr_assert_eq(ir_cell_num_edges(&sp.normal), 14);
    cr_assert_eq(sp.search.order, 1);
    cr_assert(sp.search.epochs <= 5);
    cr_assert(sp.search.subset > 0 && sp.search.subset <= 5000);
    cr_assert(sp.train.subset > 0);
    FEQ(sp.train.aux_weight, 0.f);
    fe_diags_free(&d);
}

/* Issue #19's moonshot configuration: the demo's supernet on the DARTS paper's search
 * schedule (50 epochs, second order, batch 64, the whole training set split in halves)
 * and the long configuration's retraining. */
Test(frontend, test_fashion_mnist_paper_example_is_the_papers_schedule) {
    ir_space sp, demo;
    fe_diags d, dd;
    compile_example("examples/fashion_mnist_paper.dartsc", &sp, &d);
    compile_example("examples/fashion_mnist.dartsc", &demo, &dd);
    cr_assert_eq(d.n_warnings, 0);
    cr_assert_eq(sp.data, IR_DATA_FASHION_MNIST);
    cr_assert(sp.in_c == demo.in_c && sp.in_h == demo.in_h && sp.C == demo.C && sp.layers == demo.layers);
    cr_assert(sp.normal.n_ops == demo.normal.n_ops && sp.normal.n_nodes == demo.normal.n_nodes);
    cr_assert_eq(sp.search.epochs, 50);
    cr_assert_eq(sp.search.order, 2);
    cr_assert_eq(sp.search.batch, 64);
    cr_assert_eq(sp.search.subset, 0);
    FEQ(sp.search.train_portion, 0.5f);
    FEQ(sp.search.w_lr, 0.025f);
    FEQ(sp.search.a_lr, 3e-4f);
    cr_assert(sp.train_C == 16 && sp.train_layers == 5 && sp.train.epochs == 12 && sp.train.subset == 0);
    fe_diags_free(&d);
    fe_diags_free(&dd);
}

Test(frontend, test_custom_5node_example_lowers) {
    ir_space sp;
    fe_diags d;
    compile_example("examples/custom_5node.dartsc", &sp, &d);
    cr_assert_eq(d.n_warnings, 0);
    static const char *order[] = {"none", "max_pool_3x3", "skip_connect", "conv_3x3", "sep_conv_3x3", "conv_1x7_7x1"};
    cr_assert_eq(sp.normal.n_ops, 6);
    for (int i = 0; i < 6; i++) cr_assert_str_eq(sp.normal.ops[i].name, order[i]);
    cr_assert_eq(sp.normal.ops[5].kind, IR_CAND_CONV_1xK_Kx1);
    cr_assert_eq(sp.normal.ops[5].k, 7);
    cr_assert_eq(sp.normal.n_nodes, 5);
    cr_assert_eq(sp.normal.k_keep, 3);
    cr_assert_eq(ir_cell_num_edges(&sp.normal), 2 + 3 + 4 + 5 + 6);
    cr_assert_eq(ir_cell_num_edges(&sp.reduce), 2 + 3 + 4 + 5 + 4);
    cr_assert_eq(sp.reduce.edges[4], 0x3Cu); /* states 2..5 */
    cr_assert_eq(sp.n_reduce, 3);
    cr_assert_eq(sp.reduce_at[2], 7);
    fe_diags_free(&d);
}

/* ---- language features ------------------------------------------------------------------------ */
Test(frontend, test_op_aliases_and_spliced_sets) {
    const char *src = "ops pools = { max_pool_3x3, avg_pool(3) }\n"
                      "ops all = { zero, pools, skip_connect, dil_conv(5), dil_conv(3, 4), conv_7x1_1x7 }\n"
                      "cell normal { ops all }\ncell reduce : normal { reduction }\nnetwork n { }\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), 0, "%s", render(&d));
    static const char *names[] = {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "dil_conv_5x5",
                                  "dil_conv_3x3_d4", "conv_1x7_7x1"};
    cr_assert_eq(sp.normal.n_ops, 7);
    for (int i = 0; i < 7; i++) cr_assert_str_eq(sp.normal.ops[i].name, names[i]);
    cr_assert_eq(sp.normal.ops[4].dilation, 2);
    cr_assert_eq(sp.normal.ops[5].dilation, 4);
    fe_diags_free(&d);
}

Test(frontend, test_default_reductions_follow_layers) {
    const char *src = "network n { layers 14 }\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), 0);
    cr_assert_eq(sp.n_reduce, 2);
    cr_assert_eq(sp.reduce_at[0], 4);
    cr_assert_eq(sp.reduce_at[1], 9);
    fe_diags_free(&d);
}

Test(frontend, test_settings_inherit_and_override) {
    const char *src = "settings base { lr 0.1; momentum 0.5 }\nsettings mid : base { lr 0.2 }\n"
                      "network n { }\nsearch : mid { epochs 7 }\ntrain : base { lr 0.3 }\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), 0);
    cr_assert_eq(d.n, 0, "%s", render(&d));
    FEQ(sp.search.w_lr, 0.2f);
    FEQ(sp.search.w_momentum, 0.5f);
    cr_assert_eq(sp.search.epochs, 7);
    FEQ(sp.train.w_lr, 0.3f);
    FEQ(sp.train.w_momentum, 0.5f);
    fe_diags_free(&d);
}

Test(frontend, test_semicolons_and_newlines_both_end_settings) {
    const char *a = "network n { C 8; layers 5 }\nsearch { epochs 2; batch 4; }\n";
    const char *b = "network n {\n  C 8\n  layers 5\n}\nsearch {\n  epochs 2\n  batch 4\n}\n";
    ir_space sa, sb;
    fe_diags d1, d2;
    cr_assert_eq(compile_str(a, strlen(a), &sa, &d1), 0);
    cr_assert_eq(compile_str(b, strlen(b), &sb, &d2), 0);
    cr_assert(memcmp(&sa, &sb, sizeof sa) == 0);
    fe_diags_free(&d1);
    fe_diags_free(&d2);
}

Test(frontend, test_unknown_setting_suggests_nearest) {
    const char *src = "network n { }\nsearch { epoch 50 }\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), 0); /* a warning, not an error */
    cr_assert_eq(d.n_warnings, 1);
    cr_assert_str_eq(d.items[0].msg, "unknown setting 'epoch'");
    cr_assert_str_eq(d.items[0].hint, "did you mean 'epochs'?");
    cr_assert_eq(d.items[0].line, 2);
    cr_assert_eq(d.items[0].col, 10);
    fe_diags_free(&d);
}

/* ---- hostile inputs ------------------------------------------------------------------------------ */
Test(frontend, test_empty_input_reports_missing_network) {
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str("", 0, &sp, &d), -1);
    cr_assert_eq(d.n_errors, 1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "no network block"));
    cr_assert_eq(fe_compile_string("x", NULL, 0, &sp, &d), -1); /* NULL source is empty */
    fe_diags_free(&d);
}

Test(frontend, test_input_over_the_size_limit_is_refused) {
    size_t n = (size_t)FE_MAX_INPUT + 1;
    char *src = calloc(n, 1);
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, n, &sp, &d), -1);
    cr_assert_eq(d.n, 1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "input is larger than"));
    fe_diags_free(&d);
    free(src);
}

Test(frontend, test_missing_file_is_a_diagnostic) {
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    cr_assert_eq(fe_compile_file("/nonexistent/x.dartsc", &sp, &d), -1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "cannot open"));
    cr_assert_eq(d.items[0].line, 0);
    cr_assert_eq(fe_compile_file("/tmp", &sp, &d), -1); /* a directory: refused before it is opened */
    cr_assert(has_diag(&d, FE_SEV_ERROR, "is a directory, not a regular file"));
    char *out = render(&d);
    cr_assert(strstr(out, "/nonexistent/x.dartsc: error: cannot open: No such file or directory\n") != NULL, "%s", out);
    free(out);
    fe_diags_free(&d);
}

Test(frontend, test_invalid_utf8_and_nul_bytes_are_errors) {
    static const char src[] = "network n {\n C 16 \xff\xfe\n stem \0 3\n}\n# \xc3\x28 comment\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, sizeof src - 1, &sp, &d), -1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "invalid UTF-8 byte 0xFF"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "NUL byte in source"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "invalid UTF-8 byte 0xC3 in a comment"));
    /* every rendered line is printable: bad bytes become '?' */
    char *out = render(&d);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) cr_assert(*p >= 0x20 || *p == '\n');
    free(out);
    fe_diags_free(&d);
}

Test(frontend, test_all_byte_values_never_crash) {
    char src[512];
    for (int i = 0; i < 512; i++) src[i] = (char)(i * 7 + 3);
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, sizeof src, &sp, &d), -1);
    cr_assert_leq(d.n_errors, FE_MAX_ERRORS + 1);
    free(render(&d));
    fe_diags_free(&d);
}

Test(frontend, test_one_megabyte_input_compiles) {
    /* a valid 1 MB file: a network block followed by a long run of comments and settings */
    size_t cap = (1u << 20) + 4096, n = 0;
    char *src = malloc(cap);
    n += (size_t)sprintf(src + n, "network n { }\nsearch {\n");
    while (n < (1u << 20)) n += (size_t)sprintf(src + n, "  # padding padding padding padding padding\n");
    n += (size_t)sprintf(src + n, "  epochs 3\n}\n");
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, n, &sp, &d), 0);
    cr_assert_eq(sp.search.epochs, 3);
    fe_diags_free(&d);
    /* and 1 MB of garbage on one line: bounded diagnostics, windowed source line */
    memset(src, 'x', 1u << 20);
    for (size_t i = 0; i < (1u << 20); i += 97) src[i] = '@';
    cr_assert_eq(compile_str(src, 1u << 20, &sp, &d), -1);
    cr_assert_leq(d.n, FE_MAX_ERRORS + 2);
    for (int i = 0; i < d.n; i++) cr_assert(!d.items[i].text || strlen(d.items[i].text) < 1200);
    fe_diags_free(&d);
    free(src);
}

Test(frontend, test_deep_nesting_is_capped) {
    size_t n = 100000;
    char *src = malloc(3 * n + 64);
    size_t k = (size_t)sprintf(src, "network n { mean ");
    for (size_t i = 0; i < n; i++) src[k++] = '[';
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, k, &sp, &d), -1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "values nest deeper than"));
    fe_diags_free(&d);
    /* 100k open braces at the top level and inside a block */
    memset(src, '{', n);
    cr_assert_eq(compile_str(src, n, &sp, &d), -1);
    cr_assert(d.n_errors <= 3);
    fe_diags_free(&d);
    k = (size_t)sprintf(src, "cell c { ops ");
    for (size_t i = 0; i < n; i++) src[k++] = i % 2 ? '{' : '(';
    cr_assert_eq(compile_str(src, k, &sp, &d), -1);
    fe_diags_free(&d);
    free(src);
}

Test(frontend, test_overflowing_numbers_are_errors) {
    const char *src = "network n { C 99999999999999999999999; classes 4294967298 }\n"
                      "search { lr 1e400; epochs 2147483648; seed 18446744073709551616; momentum 1e-400 }\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), -1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "integer '99999999999999999999999' is too large"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "'classes' must be between"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "number '1e400' is too large"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "'epochs' must be between"));
    cr_assert(has_diag(&d, FE_SEV_ERROR, "integer '18446744073709551616' is too large"));
    fe_diags_free(&d);
}

Test(frontend, test_too_many_errors_stops) {
    size_t cap = 100000, n = 0;
    char *src = malloc(cap);
    n += (size_t)sprintf(src, "network n {\n");
    for (int i = 0; i < 500; i++) n += (size_t)sprintf(src + n, "  stem %d x\n", i);
    n += (size_t)sprintf(src + n, "}\n");
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, n, &sp, &d), -1);
    cr_assert_eq(d.n_errors, FE_MAX_ERRORS + 1);
    cr_assert(has_diag(&d, FE_SEV_ERROR, "too many errors"));
    fe_diags_free(&d);
    free(src);
}

Test(frontend, test_diags_accumulate_and_free) {
    fe_diags d = {0}; /* zero-initialised is valid */
    ir_space sp;
    const char *bad = "network n { C x }\n";
    fe_compile_string("a", bad, strlen(bad), &sp, &d);
    fe_compile_string("b", bad, strlen(bad), &sp, &d);
    cr_assert_eq(fe_diags_errors(&d), 2);
    cr_assert_str_eq(d.items[1].file, "b");
    fe_compile_string("b", bad, strlen(bad), &sp, &d); /* the same file again: reported again */
    cr_assert_eq(fe_diags_errors(&d), 3);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fe_diags_render(&d, m, 1);
    fclose(m);
    cr_assert(strstr(buf, "\033[1;31merror") != NULL);
    free(buf);
    fe_diags_free(&d);
    cr_assert_eq(d.n, 0);
}

/* ---- golden diagnostics ------------------------------------------------------------------------ */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

Test(frontend, test_golden_diagnostics) {
    const char *dir = tu_src_path("tests/golden/diag");
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    DIR *dp = opendir(dirbuf);
    cr_assert(dp, "cannot open %s", dirbuf);
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 512) {
        size_t l = strlen(e->d_name);
        if (l > 7 && strcmp(e->d_name + l - 7, ".dartsc") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    cr_assert_gt(n, 40);
    int update = getenv("DARTSC_UPDATE_GOLDEN") && strcmp(getenv("DARTSC_UPDATE_GOLDEN"), "1") == 0;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[4200], gpath[4200];
        snprintf(path, sizeof path, "%s/%s", dirbuf, names[i]);
        snprintf(gpath, sizeof gpath, "%s/%.*s.txt", dirbuf, (int)strlen(names[i]) - 7, names[i]);
        size_t len;
        char *src = read_all(path, &len);
        cr_assert(src);
        ir_space sp;
        fe_diags d;
        fe_diags_init(&d);
        fe_compile_string(names[i], src, len, &sp, &d);
        char *got = render(&d);
        if (d.n == 0) {
            cr_log_error("%s: produces no diagnostic", names[i]);
            failed++;
        }
        if (update) {
            FILE *f = fopen(gpath, "wb");
            cr_assert(f);
            fputs(got, f);
            fclose(f);
        } else {
            size_t glen;
            char *want = read_all(gpath, &glen);
            if (!want) {
                cr_log_error("%s: missing golden file (run with DARTSC_UPDATE_GOLDEN=1)", gpath);
                failed++;
            } else if (strcmp(want, got) != 0) {
                cr_log_error("%s: diagnostics differ from the golden file\n--- want\n%s--- got\n%s", names[i], want,
                             got);
                failed++;
            }
            free(want);
        }
        free(got);
        free(src);
        fe_diags_free(&d);
        free(names[i]);
    }
    cr_assert_eq(failed, 0, "%d golden case(s) failed", failed);
}

/* ---- messages (issue: unclear or wrong messages) ------------------------------------------------ */

static const char *net_head =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 2; keep 2; ops darts }\ncell reduce : normal { reduction }\n";

/* Fails before the fix: C 4096 is in range, and lowering failed later with "conv2d: attribute
 * 6 out of range (8192)" and no place in the file. */
Test(frontend, test_channels_too_wide_for_depthwise_convolutions_name_C) {
    char src[2048];
    ir_space sp;
    fe_diags d;
    snprintf(src, sizeof src, "%snetwork n { data fashion_mnist; input 1x28x28; classes 10; C 4096; layers 3 }\n", net_head);
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), -1);
    char *out = render(&d);
    cr_expect(strstr(out, "t.dartsc:4:60: error: C 4096 grows to 16384 channels after 2 reductions (growth 2); depthwise "
                          "convolutions (sep_conv, dil_conv) take at most 4096\n"), "%s", out);
    free(out);
    fe_diags_free(&d);
    /* the retraining network's C, at its own place */
    snprintf(src, sizeof src, "%snetwork n { data fashion_mnist; input 1x28x28; classes 10; C 16; layers 3 }\ntrain { C 2048 }\n", net_head);
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), -1);
    out = render(&d);
    cr_expect(strstr(out, "t.dartsc:5:9: error: the retraining network's C 2048 grows to 8192 channels"), "%s", out);
    free(out);
    fe_diags_free(&d);
    /* 1024 x 2 x 2 = 4096 fits; so does any C without depthwise candidates */
    snprintf(src, sizeof src, "%snetwork n { data fashion_mnist; input 1x28x28; classes 10; C 1024; layers 3 }\n", net_head);
    cr_expect_eq(compile_str(src, strlen(src), &sp, &d), 0);
    fe_diags_free(&d);
    const char *pools = "ops p = { max_pool(3), skip }\ncell normal { nodes 2; keep 2; ops p }\ncell reduce : normal { reduction }\n"
                        "network n { data fashion_mnist; input 1x28x28; classes 10; C 4096; layers 3 }\n";
    cr_expect_eq(compile_str(pools, strlen(pools), &sp, &d), 0);
    fe_diags_free(&d);
}

/* Fails before the fix: a cycle between two settings blocks nobody uses was accepted
 * (docs/DSL.md calls cycles errors). */
Test(frontend, test_cycle_between_unused_settings_is_an_error_once) {
    char src[2048];
    ir_space sp;
    fe_diags d;
    snprintf(src, sizeof src, "%snetwork n { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 3 }\n"
             "settings a : b { batch 16 }\nsettings b : a { lr 0.1 }\n", net_head);
    cr_assert_eq(compile_str(src, strlen(src), &sp, &d), -1);
    int cycles = 0;
    for (int i = 0; i < d.n; i++)
        if (d.items[i].severity == FE_SEV_ERROR && strstr(d.items[i].msg, "extends itself through its bases")) cycles++;
    cr_expect_eq(cycles, 1, "one error for the one cycle");
    fe_diags_free(&d);
    /* an unused block with an unknown base is an error too */
    snprintf(src, sizeof src, "%snetwork n { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 3 }\nsettings a : nope { batch 16 }\n",
             net_head);
    cr_expect_eq(compile_str(src, strlen(src), &sp, &d), -1);
    cr_expect(has_diag(&d, FE_SEV_ERROR, "unknown settings block 'nope'"));
    fe_diags_free(&d);
}

/* Fails before the fix: a C1 control (U+009B, a one-byte CSI) or a bidirectional override
 * in the source reached the terminal as it was, inside the message and the source line. */
Test(frontend, test_diagnostics_never_print_control_characters) {
    const char src[] = "ops a = { skip }\nnetwork n { C 4 \xc2\x9b" "31m; lay\xe2\x80\xae" "ers 3 }\n\x1b[2J\x01\x7f\n";
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile_str(src, sizeof src - 1, &sp, &d), -1);
    char *out = render(&d);
    cr_expect(strstr(out, "unexpected character '?'"), "%s", out);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        cr_expect(*p == '\n' || (*p >= 0x20 && *p != 0x7f), "control byte 0x%02x in the output", *p);
        cr_expect(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0), "C1 control in the output");
        cr_expect(!(p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0xae), "right-to-left override in the output");
    }
    free(out);
    fe_diags_free(&d);
}
