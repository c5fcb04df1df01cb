/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
/* after stdio.h, which jpeglib.h needs */
#include <jpeglib.h>
#include <png.h>

#include <jansson.h>

#include "ir/space.h"
#include "kernels/kdesc.h"
#include "runtime/runtime.h"
#include "runtime/tensorfile.h"
#include "pipeline/pipeline.h"

void tu_fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * krng_uniform(seed, (uint64_t)i);
}

double tu_max_rel_err(const float *a, const float *b, int64_t n, double floor, int64_t *worst) {
    double m = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        double e = d / (s > floor ? s : floor);
        if (!(e <= m)) { m = e; wi = i; } /* catches NaN */
    }
    if (worst) *worst = wi;
    return m;
}

double tu_norm_rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)a[i] - (double)b[i];
        d += t * t;
        s += (double)b[i] * (double)b[i];
    }
    if (isnan(d)) return INFINITY;
    return sqrt(d) / (s > 1e-30 ? sqrt(s) : 1e-15);
}

const char *tu_src_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", DARTSC_SOURCE_DIR, rel);
    return buf;
}

char *tu_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) len = 0;
    if (b) b[len] = 0;
    fclose(f);
    if (n) *n = b ? (size_t)len : 0;
    return b;
}

void tu_tf_set_nan(const char *path, const char *name, int64_t i) {
    char err[512];
    rt_tf_file *f = rt_tf_read(path, err, sizeof err);
    cr_assert(f, "%s", err);
    rt_tf_writer *w = rt_tf_open_write(path, err, sizeof err);
    cr_assert(w, "%s", err);
    int found = 0;
    for (int k = 0; k < rt_tf_count(f); k++) {
        const rt_tf_entry *e = rt_tf_get(f, k);
        float *d = malloc((size_t)e->numel * 4);
        cr_assert(d);
        memcpy(d, e->data, (size_t)e->numel * 4);
        if (!strcmp(e->name, name)) {
            cr_assert(e->dtype == RT_TF_F32 && i >= 0 && i < e->numel, "%s: no float %lld in %s", path, (long long)i, name);
            d[i] = NAN;
            found = 1;
        }
        cr_assert_eq(rt_tf_write(w, e->name, e->dtype, e->ndim, e->dims, d), 0);
        free(d);
    }
    rt_tf_free(f);
    cr_assert(found, "%s: no entry %s", path, name);
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
}

void tu_copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    size_t n;
    char *x = tu_slurp(a, &n);
    FILE *f = x ? fopen(b, "wb") : NULL;
    if (f) {
        fwrite(x, 1, n, f);
        fclose(f);
    }
    free(x);
}

const char *tu_tmpdir(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/dartsc-test-XXXXXX");
    if (!mkdtemp(buf)) return "/tmp";
    return buf;
}

void tu_parity_compare(tu_parity *t, const char *what, const float *got, const float *r64, const float *r32, int64_t n) {
    double e = tu_norm_rel_err(got, r64, n), e32 = tu_norm_rel_err(r32, r64, n);
    t->tensors++;
    if (e > 1e-4) {
        t->fallback++;
        cr_expect(e <= TU_PARITY_FACTOR * e32 + 1e-6, "%s: dartsc error %.3g vs float64, float32 reference error %.3g",
                  what, e, e32);
    }
    if (e > t->worst) {
        t->worst = e;
        snprintf(t->worst_name, sizeof t->worst_name, "%s", what);
    }
}

void tu_parity_compare_params(tu_parity *t, struct rt_plan *p, const struct rt_tf_file *r64, const struct rt_tf_file *r32) {
    const ir_graph *g = rt_plan_graph(p);
    for (int i = 0; i < ir_graph_num_nodes(g); i++) {
        const ir_node *n = ir_graph_node(g, i);
        if (n->op != IR_OP_PARAM) continue;
        char name[512];
        int buffer = n->role == IR_ROLE_BUFFER;
        snprintf(name, sizeof name, "%s/%s", buffer ? "running" : "grad", n->name);
        const rt_tf_entry *a = rt_tf_find(r64, name), *b = rt_tf_find(r32, name);
        cr_assert(a && b, "reference lacks %s", name);
        cr_assert_eq(a->numel, ir_node_numel(n), "%s: %lld elements vs reference %lld", name, (long long)ir_node_numel(n),
                     (long long)a->numel);
        tu_parity_compare(t, name, buffer ? rt_node_data(p, i) : rt_node_grad(p, i), a->data, b->data, ir_node_numel(n));
    }
}

void tu_write_png(const char *path, int c, int h, int w, const uint8_t *interleaved) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)w;
    pi.height = (png_uint_32)h;
    pi.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    cr_assert(png_image_write_to_file(&pi, path, 0, interleaved, 0, NULL), "%s: %s", path, pi.message);
}

void tu_write_jpeg(const char *path, int c, int h, int w, const uint8_t *interleaved, int quality) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jm;
    ci.err = jpeg_std_error(&jm);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    for (int y = 0; y < h; y++) {
        JSAMPROW row = (JSAMPROW)(interleaved + (size_t)y * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    cr_assert_eq(fclose(f), 0, "%s", path);
}

void tu_write_npy(const char *path, int version, const char *descr, const char *fortran, const char *shape,
                  const void *data, size_t bytes) {
    char dict[600];
    int n = snprintf(dict, 500, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
    int pre = version == 1 ? 10 : 12;
    int pad = (64 - (pre + n + 1) % 64) % 64;
    for (int i = 0; i < pad; i++) dict[n++] = ' ';
    dict[n++] = '\n';
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    fwrite("\x93NUMPY", 1, 6, f);
    unsigned char v[6] = {(unsigned char)version, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8), 0, 0};
    fwrite(v, 1, version == 1 ? 4 : 6, f);
    fwrite(dict, 1, (size_t)n, f);
    if (bytes) fwrite(data, 1, bytes, f);
    cr_assert_eq(fclose(f), 0, "%s", path);
}

void tu_expect_same_file(const char *a, const char *b, const char *name) {
    cr_expect(tu_same_file(a, b, name), "%s differs between %s and %s", name, a, b);
}

void tu_expect_same_state(const char *a, const char *b) {
    char pa[600], pb[600], err[512];
    snprintf(pa, sizeof pa, "%s/checkpoint.dtns", a);
    snprintf(pb, sizeof pb, "%s/checkpoint.dtns", b);
    rt_tf_file *x = rt_tf_read(pa, err, sizeof err), *y = rt_tf_read(pb, err, sizeof err);
    cr_assert(x && y, "%s", err);
    const char *names[] = {"group/weights", "group/arch", "group/buffers", "opt/sgd_momentum", "opt/adam_m", "opt/adam_v"};
    for (int i = 0; i < 6; i++) {
        const rt_tf_entry *ea = rt_tf_find(x, names[i]), *eb = rt_tf_find(y, names[i]);
        cr_assert(ea && eb && ea->numel == eb->numel, "%s: missing or of another size", names[i]);
        cr_expect_eq(memcmp(ea->data, eb->data, (size_t)ea->numel * 4), 0, "%s differs", names[i]);
    }
    rt_tf_free(x);
    rt_tf_free(y);
}

void tu_demo_search_space(ir_space *sp) {
    tu_tiny_fmnist_space(sp); /* with 2 nodes, 2 epochs and crop augmentation */
    sp->normal.n_nodes = sp->reduce.n_nodes = 2;
    ir_cell_all_edges(&sp->normal);
    ir_cell_all_edges(&sp->reduce);
    sp->search.epochs = 2;
    sp->search.crop_pad = 2;
}

void tu_run_search(const ir_space *sp, const char *dir, int resume, int64_t stop_after, int st, sr_result *res) {
    sr_options o = sr_options_default();
    o.out_dir = dir;
    o.resume = resume;
    o.stop_after_steps = stop_after;
    o.strategy = (sr_strategy)st;
    char err[1024];
    cr_assert_eq(sr_search(sp, &o, res, err, sizeof err), 0, "%s", err);
}

/* ---- the tiny Fashion-MNIST search space and run-directory helpers ---- */

void tu_darts_v2_net(ir_space *sp, int batch, ir_net *net) {
    sp->in_h = sp->in_w = 32;
    ir_genotype gt;
    ir_genotype_darts_v2(&gt);
    ir_eval_opts eo = {.C = 4, .layers = 3, .batch = batch, .aux = 1, .aux_weight = 0.4f, .drop_path = 1};
    cr_assert_eq(ir_space_build_eval(sp, &gt, &eo, net), 0, "%s", net->error);
}

void tu_tiny_fmnist_space(ir_space *sp) {
    ir_space_darts_cifar10(sp);
    snprintf(sp->name, sizeof sp->name, "test");
    sp->data = IR_DATA_FASHION_MNIST;
    sp->in_c = 1;
    sp->in_h = sp->in_w = 28;
    sp->classes = 10;
    sp->mean[0] = 0.2860406f;
    sp->std[0] = 0.3530242f;
    sp->C = 4;
    sp->layers = 3;
    sp->stem_mult = 2;
    sp->n_reduce = 1;
    sp->reduce_at[0] = 1;
    sp->normal.n_nodes = sp->reduce.n_nodes = 3;
    ir_cell_all_edges(&sp->normal);
    ir_cell_all_edges(&sp->reduce);
    sp->search.batch = 16;
    sp->search.subset = 128; /* 64 images to train candidates on, 64 to score them */
}

json_t *tu_load_candidates(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/candidates.jsonl", dir);
    char *s = tu_slurp(path, NULL);
    cr_assert(s, "no %s", path);
    json_t *arr = json_array();
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        cr_assert(j, "%s: %s", path, je.text);
        json_object_del(j, "seconds");
        json_array_append_new(arr, j);
    }
    free(s);
    return arr;
}

int tu_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    size_t na, nb;
    char *a = tu_slurp(pa, &na), *b = tu_slurp(pb, &nb);
    cr_assert(a && b, "no %s or %s", pa, pb);
    int same = na == nb && !memcmp(a, b, na);
    free(a);
    free(b);
    return same;
}
