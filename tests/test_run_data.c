/* test_run_data.c — the dartsc binary end to end on the user data sources (tiny budgets):
 *  - `dartsc run` on NumPy arrays, on an image folder (PNG and JPEG made from
 *    Fashion-MNIST test images, resized by the loader) and on CIFAR-100 binaries; the
 *    normalisation computed from the training split is stored in RUN_DIR/data.json and
 *    reaches the ONNX metadata with the class names (checked with the onnx package);
 *  - `dartsc train SPACE --genotype G --out DIR` makes a directory that `dartsc eval` and
 *    `dartsc export` accept, and eval there gives run's accuracy (same seeds, same data);
 *  - `dartsc run` decodes each split once (the search, retraining and evaluation share it),
 *    both before the search starts; sr_data_keep serves views of the first read;
 *  - bad data (training or test split, an image folder or Fashion-MNIST files) stops
 *    `dartsc run` and `dartsc train` with the file named and nothing written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend/fe.h"
#include "runtime/data.h"
#include "train/common.h"
#include "tests/testutil.h"

static const char *space_fmt =
    "ops small = { none, max_pool(3), skip, sep_conv(3) }\n"
    "cell normal { nodes 2; keep 2; ops small }\n"
    "cell reduce : normal { reduction }\n"
    "network tiny { data %s \"%s\"; input %s; classes %d; C 4; layers 3%s }\n"
    "settings s { batch 16; seed 1 }\n"
    "search : s { epochs 1; order 1; subset 96 }\n"
    "train : s { C 4; layers 3; epochs 1; drop_path 0; aux_weight 0 }\n";

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *bin(void) {
    const char *b = getenv("DARTSC_BIN");
    cr_assert(b, "DARTSC_BIN not set (ctest sets it)");
    return b;
}

static void write_space_x(const char *path, const char *source, const char *data_dir, const char *input, int classes,
                          const char *extra) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fprintf(f, space_fmt, source, data_dir, input, classes, extra);
    fclose(f);
}

static void write_space(const char *path, const char *source, const char *data_dir, const char *input, int classes) {
    write_space_x(path, source, data_dir, input, classes, "");
}

/* `dartsc run` into dir/run; returns the log. */
static char *run_ok(const char *dir, const char *space) {
    char cmd[2048], log[600];
    snprintf(log, sizeof log, "%s/run.log", dir);
    snprintf(cmd, sizeof cmd, "%s run %s --out %s/run --device cpu > %s 2>&1", bin(), space, dir, log);
    int rc = sh(cmd);
    char *text = tu_slurp(log, NULL);
    cr_assert_eq(rc, 0, "dartsc run failed:\n%s", text ? text : "");
    char p[600];
    snprintf(p, sizeof p, "%s/run/results.json", dir);
    cr_expect_eq(access(p, R_OK), 0, "no %s", p);
    /* results.json's parameters are the exported network's, as `dartsc check --genotype`
       counts them, and the search's peak resident memory is there (the process's, > 0) */
    char *res = tu_slurp(p, NULL);
    cr_assert(res, "%s", p);
    const char *pp = strstr(res, "\"parameters\":"), *pm = strstr(res, "\"search_peak_rss_mb\":");
    cr_assert(pp && pm, "%s", res);
    long long params = atoll(pp + strlen("\"parameters\":"));
    double rss = atof(pm + strlen("\"search_peak_rss_mb\":"));
    cr_expect(rss > 1.0, "search_peak_rss_mb %g", rss);
    snprintf(cmd, sizeof cmd, "%s check %s --genotype %s/run/genotype.json > %s/check.log 2>&1", bin(), space, dir, dir);
    cr_assert_eq(sh(cmd), 0);
    snprintf(log, sizeof log, "%s/check.log", dir);
    char *chk = tu_slurp(log, NULL), *at = chk ? strstr(chk, "retraining network (") : NULL;
    at = at ? strstr(at, "): ") : NULL;
    cr_assert(at, "%s", chk ? chk : "");
    cr_expect_eq(params, atoll(at + 3), "results.json parameters %lld, dartsc check %lld", params, atoll(at + 3));
    free(chk);
    free(res);
    return text;
}

static rt_dataset fm_train, fm_test;
static void load_fm(void) {
    char err[1024];
    cr_assert_eq(rt_data_load_fashion_mnist(NULL, 1, &fm_train, err, sizeof err), 0, "%s (run scripts/setup)", err);
    cr_assert_eq(rt_data_load_fashion_mnist(NULL, 0, &fm_test, err, sizeof err), 0, "%s", err);
}
static void free_fm(void) {
    rt_dataset_free(&fm_train);
    rt_dataset_free(&fm_test);
}

Test(run_data, npy_arrays_end_to_end, .init = load_fm, .fini = free_fm, .timeout = 300) {
    const char *dir = tu_tmpdir();
    char d[600], p[700], space[700];
    snprintf(d, sizeof d, "%s/arrays", dir);
    mkdir(d, 0755);
    /* train: uint8 N x H x W x 1 with int64 labels; test: float32 N x 1 x H x W in [0, 1] with uint8 labels */
    enum { NTR = 256, NTE = 64 };
    int64_t ytr[NTR];
    uint8_t yte[NTE];
    static float xte[NTE * 784];
    for (int i = 0; i < NTR; i++) ytr[i] = fm_train.labels[i];
    for (int i = 0; i < NTE; i++) {
        yte[i] = (uint8_t)fm_test.labels[i];
        for (int k = 0; k < 784; k++) xte[i * 784 + k] = fm_test.pixels[i * 784 + k] / 255.0f;
    }
    snprintf(p, sizeof p, "%s/x_train.npy", d);
    tu_write_npy(p, 1, "|u1", "False", "(256, 28, 28, 1)", fm_train.pixels, NTR * 784);
    snprintf(p, sizeof p, "%s/y_train.npy", d);
    tu_write_npy(p, 1, "<i8", "False", "(256,)", ytr, sizeof ytr);
    snprintf(p, sizeof p, "%s/x_test.npy", d);
    tu_write_npy(p, 1, "<f4", "False", "(64, 1, 28, 28)", xte, sizeof xte);
    snprintf(p, sizeof p, "%s/y_test.npy", d);
    tu_write_npy(p, 1, "|u1", "False", "(64,)", yte, sizeof yte);
    snprintf(space, sizeof space, "%s/npy.dartsc", dir);
    write_space(space, "npy", d, "1x28x28", 10);
    char *log = run_ok(dir, space);
    cr_expect(strstr(log, "data: 256 training images; per-channel mean ["), "%s", log);
    cr_expect(strstr(log, "test accuracy") && strstr(log, "on 64 images"), "%s", log);
    free(log);
    /* the stored mean is the training images' own */
    double s = 0;
    for (int i = 0; i < NTR * 784; i++) s += fm_train.pixels[i] / 255.0;
    snprintf(p, sizeof p, "%s/run/data.json", dir);
    char *js = tu_slurp(p, NULL);
    cr_assert(js, "no %s", p);
    const char *m = strstr(js, "\"mean\"");
    cr_assert(m, "%s", js);
    m = strchr(m, '[');
    cr_assert(m);
    double got = atof(m + 1);
    cr_expect(got > 0 && fabs(got - s / (NTR * 784)) < 1e-6, "data.json mean %.8f vs %.8f", got, s / (NTR * 784));
    free(js);
}

/* The image folder: classes "tshirt" (label 0), "trouser" (1), "bag" (8) of Fashion-MNIST,
 * 40 training and 12 test images each, even ones as PNG, odd ones as JPEG; input 1x16x16,
 * so the loader shrinks every image. */
static void write_image_folder(const char *root) {
    static const char *const names[3] = {"tshirt", "trouser", "bag"};
    static const int labels[3] = {0, 1, 8};
    for (int split = 0; split < 2; split++) {
        const rt_dataset *src = split ? &fm_test : &fm_train;
        int want = split ? 12 : 40;
        char p[800];
        snprintf(p, sizeof p, "%s/%s", root, split ? "test" : "train");
        mkdir(root, 0755);
        mkdir(p, 0755);
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%s/%s/%s", root, split ? "test" : "train", names[k]);
            mkdir(p, 0755);
            int got = 0;
            for (int i = 0; i < src->n && got < want; i++) {
                if (src->labels[i] != labels[k]) continue;
                snprintf(p, sizeof p, "%s/%s/%s/%05d.%s", root, split ? "test" : "train", names[k], i,
                         got % 2 ? "jpg" : "png");
                if (got % 2) tu_write_jpeg(p, 1, 28, 28, src->pixels + (size_t)i * 784, 90);
                else tu_write_png(p, 1, 28, 28, src->pixels + (size_t)i * 784);
                got++;
            }
        }
    }
}

static char *first_line_with(const char *text, const char *needle, char *buf, size_t len) {
    const char *s = strstr(text, needle);
    if (!s) return NULL;
    size_t n = strcspn(s, "\n");
    snprintf(buf, len, "%.*s", (int)n, s);
    return buf;
}

Test(run_data, image_folder_end_to_end_then_train_eval_export, .init = load_fm, .fini = free_fm, .timeout = 300) {
    const char *dir = tu_tmpdir();
    char root[600], space[700], cmd[3000], p[800];
    snprintf(root, sizeof root, "%s/images", dir);
    write_image_folder(root);
    snprintf(space, sizeof space, "%s/images.dartsc", dir);
    write_space(space, "images", root, "1x16x16", 3);
    char *log = run_ok(dir, space);
    cr_expect(strstr(log, "data: 120 training images; per-channel mean ["), "%s", log);
    /* each split decoded once for the search, the retraining and the evaluation, and both
       before the search began */
    int reads[2] = {0, 0};
    for (const char *q = log; (q = strstr(q, "data: read the ")); q++) reads[!strncmp(q + 15, "test", 4)]++;
    cr_expect(reads[0] == 1 && reads[1] == 1, "training split read %d times, test split %d times:\n%s", reads[0],
              reads[1], log);
    const char *tr = strstr(log, "data: read the test split"), *se = strstr(log, "== search");
    cr_expect(tr && se && tr < se, "the test split was not read before the search:\n%s", log);
    char acc_run[200] = "";
    cr_expect(first_line_with(log, "test accuracy ", acc_run, sizeof acc_run), "%s", log);
    cr_expect(strstr(acc_run, "on 36 images"), "%s", acc_run);
    free(log);
    /* ONNX metadata: the folder names in label order and data.json's mean */
    snprintf(cmd, sizeof cmd,
             "%s -c \"import onnx, json, sys\n"
             "m = {p.key: p.value for p in onnx.load('%s/run/model.onnx').metadata_props}\n"
             "d = json.load(open('%s/run/data.json'))\n"
             "assert json.loads(m['class_names']) == ['bag', 'trouser', 'tshirt'], m['class_names']\n"
             "assert d['classes'] == ['bag', 'trouser', 'tshirt'], d\n"
             "mean = json.loads(m['input_mean'])\n"
             "assert abs(mean[0] - d['mean'][0]) < 1e-6 and 0.1 < mean[0] < 0.6, (mean, d)\n"
             "\" > %s/onnx.log 2>&1",
             DARTSC_PYTHON, dir, dir, dir);
    snprintf(p, sizeof p, "%s/onnx.log", dir);
    int rc = sh(cmd);
    char *olog = tu_slurp(p, NULL);
    cr_expect_eq(rc, 0, "ONNX metadata check failed:\n%s", olog ? olog : "");
    free(olog);

    /* train into a fresh directory, then eval and export accept it */
    snprintf(cmd, sizeof cmd, "%s train %s --genotype %s/run/genotype.json --out %s/trained --device cpu > %s/train.log 2>&1",
             bin(), space, dir, dir, dir);
    cr_assert_eq(sh(cmd), 0, "dartsc train failed: see %s/train.log", dir);
    snprintf(cmd, sizeof cmd, "%s eval %s/trained --device cpu > %s/eval.log 2>&1", bin(), dir, dir);
    cr_assert_eq(sh(cmd), 0, "dartsc eval on a train directory failed: see %s/eval.log", dir);
    snprintf(p, sizeof p, "%s/eval.log", dir);
    char *elog = tu_slurp(p, NULL);
    cr_assert(elog);
    /* run printed "test accuracy X% on 36 images", eval "test accuracy X% (36 images)" */
    char want[64];
    snprintf(want, sizeof want, "%.*s", (int)(strchr(acc_run + 14, '%') - acc_run + 1), acc_run);
    cr_expect(strstr(elog, want), "eval says '%s', run said '%s'", elog, acc_run);
    free(elog);
    snprintf(cmd, sizeof cmd, "%s export %s/trained --onnx %s/trained/m.onnx --c %s/trained/c > %s/export.log 2>&1", bin(),
             dir, dir, dir, dir);
    cr_expect_eq(sh(cmd), 0, "dartsc export on a train directory failed: see %s/export.log", dir);
}

Test(run_data, cifar100_binaries_end_to_end, .timeout = 300) {
    const char *dir = tu_tmpdir();
    char d[600], p[700], space[700];
    snprintf(d, sizeof d, "%s/c100", dir);
    mkdir(d, 0755);
    for (int split = 0; split < 2; split++) {
        snprintf(p, sizeof p, "%s/%s", d, split ? "test.bin" : "train.bin");
        FILE *f = fopen(p, "wb");
        cr_assert(f);
        int n = split ? 40 : 128;
        uint64_t s = 12345 + split;
        for (int r = 0; r < n; r++) {
            unsigned char rec[3074];
            rec[0] = (unsigned char)(r % 20);
            rec[1] = (unsigned char)((r * 37) % 100);
            for (int k = 0; k < 3072; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                rec[2 + k] = (unsigned char)(s >> 56);
            }
            fwrite(rec, 1, sizeof rec, f);
        }
        fclose(f);
    }
    snprintf(space, sizeof space, "%s/c100.dartsc", dir);
    write_space(space, "cifar100", d, "3x32x32", 100);
    char *log = run_ok(dir, space);
    cr_expect(strstr(log, "on 40 images"), "%s", log);
    free(log);
}

/* The second file of a class (a JPEG) of a split, cut short to its first 200 bytes;
 * returns its path. */
static const char *truncate_second_file(const char *root, const char *split, const char *cls) {
    static char p[1200];
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls %s/%s/%s | sed -n 2p", root, split, cls);
    FILE *ls = popen(cmd, "r");
    char second[256] = "";
    cr_assert(ls && fgets(second, sizeof second, ls));
    pclose(ls);
    second[strcspn(second, "\n")] = 0;
    snprintf(p, sizeof p, "%s/%s/%s/%s", root, split, cls, second);
    cr_assert_eq(truncate(p, 200), 0, "%s", p);
    return p;
}

/* Runs dartsc (args), expects exit 1, the file and the fault in its output and no DIR. */
static void expect_refused(const char *dir, const char *args, const char *file, const char *fault, const char *out_dir) {
    char cmd[3000], log[700];
    snprintf(log, sizeof log, "%s/refused.log", dir);
    snprintf(cmd, sizeof cmd, "%s %s > %s 2>&1", bin(), args, log);
    cr_expect_eq(sh(cmd), 1, "dartsc %s should refuse %s", args, file);
    char *text = tu_slurp(log, NULL);
    cr_assert(text);
    cr_expect(strstr(text, file) && strstr(text, fault), "dartsc %s:\n%s", args, text);
    free(text);
    cr_expect_neq(access(out_dir, F_OK), 0, "dartsc %s created %s although the data could not be read", args, out_dir);
}

/* Fails before for the test split and the built-in source: run made its directory (and
 * searched) before the test split or the Fashion-MNIST files were read. */
Test(run_data, bad_data_stops_run_naming_the_file_before_writing, .init = load_fm, .fini = free_fm, .timeout = 120) {
    const char *dir = tu_tmpdir();
    char root[600], space[700], args[4000], rd[700];
    snprintf(root, sizeof root, "%s/images", dir);
    snprintf(rd, sizeof rd, "%s/run", dir);
    write_image_folder(root);
    const char *p = truncate_second_file(root, "train", "trouser");
    /* with the space's own normalisation too (then nothing needs computing) */
    for (int given = 0; given < 2; given++) {
        snprintf(space, sizeof space, "%s/images.dartsc", dir);
        write_space_x(space, "images", root, "1x16x16", 3, given ? "; mean [0.5]; std [0.25]" : "");
        snprintf(args, sizeof args, "run %s --out %s --device cpu", space, rd);
        expect_refused(dir, args, p, "corrupt or truncated JPEG", rd);
    }
    /* the test split: run and train read it before writing too (eval would need it) */
    char aside[700];
    snprintf(aside, sizeof aside, "%s/cut.jpg", dir); /* out of the folder: the training split is whole again */
    cr_assert_eq(rename(p, aside), 0);
    p = truncate_second_file(root, "test", "bag");
    snprintf(args, sizeof args, "run %s --out %s --device cpu", space, rd);
    expect_refused(dir, args, p, "corrupt or truncated JPEG", rd);
    char g[700];
    snprintf(g, sizeof g, "%s/g.json", dir);
    FILE *f = fopen(g, "w");
    cr_assert(f);
    fputs("{\"normal\": [[\"sep_conv_3x3\", 0], [\"skip_connect\", 1], [\"max_pool_3x3\", 0], [\"sep_conv_3x3\", 2]], "
          "\"normal_concat\": [2, 3], \"reduce\": [[\"max_pool_3x3\", 0], [\"max_pool_3x3\", 1], [\"skip_connect\", 2], "
          "[\"max_pool_3x3\", 0]], \"reduce_concat\": [2, 3]}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "train %s --genotype %s --out %s --device cpu", space, g, rd);
    expect_refused(dir, args, p, "corrupt or truncated JPEG", rd);
    /* a built-in source: Fashion-MNIST files cut short */
    char fm[700], cmd[4000];
    snprintf(fm, sizeof fm, "%s/fm", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/*.gz %s/ && truncate -s 1000 %s/t10k-images-idx3-ubyte.gz", fm,
             RT_DATA_FMNIST_DEFAULT_DIR, fm, fm);
    cr_assert_eq(sh(cmd), 0, "%s", cmd);
    snprintf(space, sizeof space, "%s/fm.dartsc", dir);
    write_space(space, "fashion_mnist", fm, "1x28x28", 10);
    snprintf(args, sizeof args, "run %s --out %s --device cpu", space, rd);
    expect_refused(dir, args, "t10k-images-idx3-ubyte.gz", "", rd);
}

/* sr_data_keep: the second and third loads of a split are views of the first (same pixels,
 * not owned), even once the folder is gone, so nothing is decoded again; turned off, the
 * kept sets are freed and the folder is read (and found missing) again. */
Test(run_data, kept_splits_are_decoded_once, .init = load_fm, .fini = free_fm, .timeout = 60) {
    const char *dir = tu_tmpdir();
    char root[600], src[1400], err[1024];
    snprintf(root, sizeof root, "%s/images", dir);
    write_image_folder(root);
    snprintf(src, sizeof src, space_fmt, "images", root, "1x16x16", 3, "");
    ir_space sp;
    fe_diags dg;
    fe_diags_init(&dg);
    cr_assert_eq(fe_compile_string("kept.dartsc", src, strlen(src), &sp, &dg), 0);
    fe_diags_free(&dg);
    sr_data_keep(1);
    rt_dataset a, b, c;
    cr_assert_eq(sr_data_load(&sp, 1, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(sr_data_load(&sp, 1, &b, err, sizeof err), 0, "%s", err);
    cr_expect(a.n == 120 && b.n == 120 && a.pixels == b.pixels && !a.owns && !b.owns, "n %d %d, owns %d %d", a.n, b.n,
              a.owns, b.owns);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -r %s", root);
    cr_assert_eq(sh(cmd), 0);
    cr_assert_eq(sr_data_load(&sp, 1, &c, err, sizeof err), 0, "the kept split was read again: %s", err);
    cr_expect(c.pixels == a.pixels);
    cr_expect_neq(sr_data_load(&sp, 0, &c, err, sizeof err), 0, "the test split was never read: it cannot be kept");
    rt_dataset_free(&a);
    rt_dataset_free(&b);
    sr_data_keep(0);
    cr_expect_neq(sr_data_load(&sp, 1, &c, err, sizeof err), 0, "read after sr_data_keep(0) although the folder is gone");
    cr_expect(strstr(err, root), "%s", err);
}
