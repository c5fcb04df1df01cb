/* test_pretext.c — label-free search (UnNAS, --pretext rotation; search/pretext.c): the
 * rotations are numpy.rot90's, their targets uniform, and a DARTS search with the pretext
 * never reads a label: two searches over the same images with different labels end in
 * byte-identical checkpoints (and, as a control that the comparison can fail, two
 * labelled searches over them do not). A process's part of a batch is rotated as the
 * whole batch rotates it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ir/space.h"
#include "pipeline/pipeline.h"
#include "runtime/data.h"
#include "search/pretext.h"
#include "search/search.h"
#include "testutil.h"

Test(pretext, rotations_are_rot90_and_their_targets_uniform) {
    enum { N = 4000, C = 2, H = 5 };
    static float x[N * C * H * H], x0[C * H * H];
    static int32_t y[N];
    float scratch[C * H * H];
    for (int k = 0; k < C * H * H; k++) x0[k] = (float)k;
    for (int i = 0; i < N; i++) memcpy(x + i * C * H * H, x0, sizeof x0);
    sr_pretext_rotate(x, y, N, 0, C, H, 7, 3, scratch);
    int count[4] = {0};
    for (int i = 0; i < N; i++) {
        cr_assert(y[i] >= 0 && y[i] < 4);
        count[y[i]]++;
        /* numpy.rot90(m, r) (counter-clockwise) of each channel, r times by the 90-degree rule
         * rot90(m)[u][v] = m[v][H-1-u] */
        float want[C * H * H], cur[C * H * H];
        memcpy(cur, x0, sizeof cur);
        for (int t = 0; t < y[i]; t++) {
            for (int c = 0; c < C; c++)
                for (int u = 0; u < H; u++)
                    for (int v = 0; v < H; v++) want[c * H * H + u * H + v] = cur[c * H * H + v * H + (H - 1 - u)];
            memcpy(cur, want, sizeof cur);
        }
        cr_assert_arr_eq(x + i * C * H * H, cur, sizeof cur, "image %d, rotation %d", i, y[i]);
    }
    /* 4,000 draws of 4 values: each count 1,000 +- 27 (sd); 5 sd */
    for (int r = 0; r < 4; r++) cr_expect(count[r] > 863 && count[r] < 1137, "rotation %d drawn %d times", r, count[r]);
    /* another tag draws other rotations */
    int32_t y2[N];
    sr_pretext_rotate(x, y2, N, 0, C, H, 7, 4, scratch);
    cr_expect(memcmp(y, y2, sizeof y2), "two tags drew the same rotations");
}

/* A data-parallel process's part of a batch, rotated with its place in the batch (first),
 * gets the rotations and targets the whole batch gets (docs/SCALING.md); without it, the
 * part's targets would be the batch's first images'. */
Test(pretext, a_part_of_a_batch_rotates_as_in_the_whole_batch) {
    enum { N = 64, C = 1, H = 4, P = C * H * H };
    static float whole[N * P], part[N * P];
    int32_t yw[N], yp[N];
    float scratch[P];
    tu_fill_uniform(whole, N * P, -1, 1, 11);
    memcpy(part, whole, sizeof part);
    sr_pretext_rotate(whole, yw, N, 0, C, H, 5, 9, scratch);
    for (int r = 0; r < 2; r++) /* two processes, 32 images each */
        sr_pretext_rotate(part + r * (N / 2) * P, yp + r * (N / 2), N / 2, r * (N / 2), C, H, 5, 9, scratch);
    cr_expect_arr_eq(yw, yp, sizeof yw, "the targets of the parts differ from the whole batch's");
    cr_expect_arr_eq(whole, part, sizeof whole, "the rotated images of the parts differ from the whole batch's");
    cr_expect(memcmp(yw, yw + N / 2, sizeof yw / 2), "control: the two halves' targets differ");
}

/* 128 Fashion-MNIST training images as .npy with the given labels (and a test split). */
static void write_npy_dir(const char *d, const rt_dataset *fm, const int64_t *labels) {
    char p[700];
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/x_train.npy", d);
    tu_write_npy(p, 1, "|u1", "False", "(128, 28, 28, 1)", fm->pixels, 128 * 784);
    snprintf(p, sizeof p, "%s/y_train.npy", d);
    tu_write_npy(p, 1, "<i8", "False", "(128,)", labels, 128 * sizeof *labels);
    snprintf(p, sizeof p, "%s/x_test.npy", d);
    tu_write_npy(p, 1, "|u1", "False", "(16, 28, 28, 1)", fm->pixels, 16 * 784);
    snprintf(p, sizeof p, "%s/y_test.npy", d);
    tu_write_npy(p, 1, "<i8", "False", "(16,)", labels, 16 * sizeof *labels);
}

/* The tiny space on the .npy copy, 2 nodes a cell, one first-order epoch over all 128 images. */
static void tiny_space(ir_space *sp, const char *data_dir) {
    tu_tiny_fmnist_space(sp);
    sp->data = IR_DATA_NPY;
    snprintf(sp->data_path, sizeof sp->data_path, "%s", data_dir);
    sp->normal.n_nodes = sp->reduce.n_nodes = 2;
    ir_cell_all_edges(&sp->normal);
    ir_cell_all_edges(&sp->reduce);
    sp->search.subset = 0;
    sp->search.epochs = 1;
    sp->search.order = 1;
}

static char *search_ckpt(const char *data_dir, const char *out, sr_pretext pt, size_t *n) {
    ir_space sp;
    tiny_space(&sp, data_dir);
    sr_options o = sr_options_default();
    o.out_dir = out;
    o.device = "cpu";
    o.pretext = pt;
    o.checkpoint_seconds = 0;
    sr_result r;
    char err[1024], path[700];
    cr_assert_eq(sr_search(&sp, &o, &r, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/checkpoint.dtns", out);
    char *s = tu_slurp(path, n);
    cr_assert(s, "no %s", path);
    return s;
}

Test(pretext, a_rotation_search_reads_no_label, .timeout = 600) {
    rt_dataset fm;
    char err[1024];
    cr_assert_eq(rt_data_load_fashion_mnist(NULL, 1, &fm, err, sizeof err), 0, "%s (run scripts/setup)", err);
    int64_t la[128], lb[128];
    for (int i = 0; i < 128; i++) {
        la[i] = fm.labels[i];
        lb[i] = (fm.labels[i] + 1 + i % 7) % 10; /* every label changed */
    }
    const char *dir = tu_tmpdir();
    char da[600], db[600], o[600];
    snprintf(da, sizeof da, "%s/a", dir);
    snprintf(db, sizeof db, "%s/b", dir);
    write_npy_dir(da, &fm, la);
    write_npy_dir(db, &fm, lb);
    rt_dataset_free(&fm);
    size_t na, nb;
    snprintf(o, sizeof o, "%s/ra", dir);
    char *a = search_ckpt(da, o, SR_PRETEXT_ROTATION, &na);
    snprintf(o, sizeof o, "%s/rb", dir);
    char *b = search_ckpt(db, o, SR_PRETEXT_ROTATION, &nb);
    cr_expect(na == nb && !memcmp(a, b, na), "the rotation search depends on the labels");
    free(a);
    free(b);
    snprintf(o, sizeof o, "%s/la", dir);
    a = search_ckpt(da, o, SR_PRETEXT_NONE, &na);
    snprintf(o, sizeof o, "%s/lb", dir);
    b = search_ckpt(db, o, SR_PRETEXT_NONE, &nb);
    cr_expect(na != nb || memcmp(a, b, na), "the control: labelled searches should differ with the labels");
    free(a);
    free(b);
}
