/* test_scale.c — compound scaling (EfficientNet; `scale PHI` in the train block): the
 * front end scales depth, width and resolution by 1.2^phi, 1.1^phi, 1.15^phi (resolution
 * to a multiple of 2^reductions), bad values are diagnosed, the evaluation network takes
 * the scaled input, and the retraining data are resized to it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/fe.h"
#include "ir/space.h"
#include "runtime/datasets.h"
#include "train/common.h"
#include "train/train.h"
#include "testutil.h"

static const char *base =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 4; keep 2; ops darts }\n"
    "cell reduce : normal { reduction }\n"
    "network f { data fashion_mnist; input 1x28x28; classes 10; C 8; layers 5 }\n"
    "train { C 16; layers 5; aux_weight 0; %s }\n";

static int compile(const char *extra, ir_space *sp, fe_diags *d) {
    char src[2048];
    snprintf(src, sizeof src, base, extra);
    fe_diags_init(d);
    return fe_compile_string("t.dartsc", src, strlen(src), sp, d);
}

Test(scale, phi_scales_depth_width_and_resolution) {
    /* phi: cells ceil(5 * 1.2^phi), C round(16 * 1.1^phi), input 28 * 1.15^phi to a multiple of 4 */
    const struct { const char *src; int layers, C, in; } cases[] = {
        {"", 5, 16, 0}, {"scale 0", 5, 16, 0}, {"scale 1", 6, 18, 32}, {"scale 2", 8, 19, 36}, {"scale 3", 9, 21, 44},
        {"scale 0.5", 6, 17, 32}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ir_space sp;
        fe_diags d;
        cr_assert_eq(compile(cases[i].src, &sp, &d), 0, "'%s' does not compile", cases[i].src);
        fe_diags_free(&d);
        cr_expect_eq(sp.train_layers, cases[i].layers, "'%s': %d cells", cases[i].src, sp.train_layers);
        cr_expect_eq(sp.train_C, cases[i].C, "'%s': C %d", cases[i].src, sp.train_C);
        cr_expect_eq(sp.train_in_h, cases[i].in, "'%s': input %d", cases[i].src, sp.train_in_h);
        cr_expect_eq(sp.train_in_w, cases[i].in);
        cr_expect_eq(sp.in_h, 28, "the search keeps the data's size");
    }
    ir_space sp;
    fe_diags d;
    cr_expect_eq(compile("scale -1", &sp, &d), -1);
    fe_diags_free(&d);
    cr_expect_eq(compile("scale 9", &sp, &d), -1);
    fe_diags_free(&d);
}

Test(scale, the_evaluation_network_and_its_data_take_the_scaled_input) {
    ir_space sp;
    fe_diags d;
    cr_assert_eq(compile("scale 1", &sp, &d), 0);
    fe_diags_free(&d);
    ir_genotype g;
    memset(&g, 0, sizeof g);
    ir_geno_cell *c[2] = {&g.normal, &g.reduce};
    for (int t = 0; t < 2; t++) {
        c[t]->n_nodes = 4;
        for (int i = 0; i < 4; i++) {
            c[t]->n_edges[i] = 2;
            c[t]->e[i][0] = (ir_geno_edge){.src = 0, .op = 4};
            c[t]->e[i][1] = (ir_geno_edge){.src = 1, .op = 3};
        }
    }
    ir_net net;
    cr_assert_eq(ir_space_build_eval(&sp, &g, &(ir_eval_opts){.batch = 2}, &net), 0, "%s", net.error);
    const ir_node *x = ir_graph_node(net.graph, net.images);
    cr_expect(x->shape[2] == 32 && x->shape[3] == 32, "input %lldx%lld", (long long)x->shape[2], (long long)x->shape[3]);
    ir_net_free(&net);
    /* the retraining data: Fashion-MNIST resized to 32x32, each plane as rt_data_resize makes it */
    sp.train.subset = 8;
    rt_dataset raw, scaled;
    char err[1024];
    cr_assert_eq(sr_data_load(&sp, 0, &raw, err, sizeof err), 0, "%s (run scripts/setup)", err);
    cr_assert_eq(sr_data_load_eval(&sp, 0, &scaled, err, sizeof err), 0, "%s", err);
    cr_assert(scaled.n == raw.n && scaled.h == 32 && scaled.w == 32 && scaled.c == 1);
    for (int i = 0; i < 3; i++) {
        uint8_t want[32 * 32];
        cr_assert_eq(rt_data_resize(want, 32, 32, raw.pixels + i * 784, 28, 28), 0);
        cr_expect_arr_eq(scaled.pixels + i * 1024, want, sizeof want, "image %d", i);
        cr_expect_eq(scaled.labels[i], raw.labels[i]);
    }
    rt_dataset_free(&raw);
    rt_dataset_free(&scaled);
    /* a scaled network trains and evaluates on its resized data (one epoch of 2 batches;
       batches sized for 28x28 images once overran the 32x32 ones) */
    sp.train.subset = 32;
    sp.train.test_subset = 32;
    sp.train.epochs = 1;
    sp.train.batch = 16;
    sp.train_C = 4;
    sr_train_opts to = sr_train_opts_default();
    to.out_dir = tu_tmpdir();
    to.device = "cpu";
    sr_train_result tr;
    cr_assert_eq(sr_cnn_train(&sp, &g, &to, &tr, err, sizeof err), 0, "%s", err);
    char model[600];
    snprintf(model, sizeof model, "%s/model.dtns", to.out_dir);
    sr_eval_result ev;
    cr_assert_eq(sr_cnn_evaluate(&sp, &g, model, "cpu", &ev, err, sizeof err), 0, "%s", err);
    cr_expect_eq(ev.n, 32);
    cr_expect(ev.acc >= 0 && ev.acc <= 1 && isfinite(ev.loss), "accuracy %g, loss %g", ev.acc, ev.loss);
}
