/* test_run.c — `dartsc run` end to end on a tiny space (search, retraining, evaluation
 * on all 10,000 Fashion-MNIST test images, export, report):
 *  - onnxruntime on RUN_DIR/model.onnx and the generated C (RUN_DIR/c, compiled here)
 *    predict the same class as dartsc on every one of the 10,000 test images
 *    (scripts/check-export);
 *  - RUN_DIR/report.html opened in headless Chromium (Debian's chromium, installed by
 *    scripts/setup): the DOM Chromium builds holds every section the report promises, and
 *    its screenshot shows rendered content.
 * A DARTS run (alpha heat maps) and an evolution run (candidates table) are checked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/tensorfile.h"
#include "testutil.h"

static const char *tiny_space =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 2; keep 2; ops darts }\n"
    "cell reduce : normal { reduction }\n"
    "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
    "settings s { batch 16; lr 0.025; momentum 0.9; weight_decay 3e-4; clip 5; seed 1 }\n"
    "search : s { epochs 2; order 1; subset 128 }\n"
    "train : s { C 4; layers 3; epochs 1; subset 256; test_subset %d; drop_path 0; aux_weight 0 }\n";

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Runs dartsc, then Chromium on the report; returns the DOM Chromium serialised. */
static char *run_and_render(const char *dir, const char *flags, int test_images, double *ink, int *colours) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin, "DARTSC_BIN not set (ctest sets it)");
    cr_assert_eq(sh("command -v chromium >/dev/null"), 0, "chromium is not installed: run scripts/setup");
    char cmd[4096], path[600];
    snprintf(path, sizeof path, "%s/tiny.dartsc", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, tiny_space, test_images);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s run %s --out %s/run %s > %s/run.log 2>&1", bin, path, dir, flags, dir);
    cr_assert_eq(sh(cmd), 0, "dartsc run failed: see %s/run.log", dir);
    const char *chrome = "chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=%s/profile";
    char base[1024];
    snprintf(base, sizeof base, chrome, dir);
    snprintf(cmd, sizeof cmd, "%s --dump-dom file://%s/run/report.html > %s/dom.html 2>%s/chromium.log", base, dir, dir, dir);
    cr_assert_eq(sh(cmd), 0, "chromium --dump-dom failed: see %s/chromium.log", dir);
    snprintf(cmd, sizeof cmd, "%s --window-size=1200,2400 --screenshot=%s/shot.png file://%s/run/report.html 2>>%s/chromium.log",
             base, dir, dir, dir);
    cr_assert_eq(sh(cmd), 0, "chromium --screenshot failed: see %s/chromium.log", dir);
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/png_stats.py %s/shot.png", DARTSC_PYTHON, DARTSC_SOURCE_DIR, dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[512] = {0};
    cr_assert(fgets(line, sizeof line, p), "png_stats printed nothing");
    pclose(p);
    const char *i = strstr(line, "\"ink\": "), *c = strstr(line, "\"colours\": ");
    cr_assert(i && c, "png_stats: %s", line);
    *ink = atof(i + 7);
    *colours = atoi(c + 11);
    snprintf(path, sizeof path, "%s/dom.html", dir);
    char *dom = tu_slurp(path, NULL);
    cr_assert(dom && *dom, "Chromium serialised no DOM");
    return dom;
}

static void expect_common(const char *dom, const char *dir) {
    /* Chromium's parser adds <tbody> to every table: the DOM came out of a browser */
    cr_expect(strstr(dom, "<tbody>"), "%s/dom.html does not look like Chromium's DOM", dir);
    cr_expect(strstr(dom, "<h1>dartsc run: tiny</h1>"));
    const char *acc = strstr(dom, "id=\"test-accuracy\">");
    cr_assert(acc, "no test accuracy");
    double a = atof(acc + strlen("id=\"test-accuracy\">"));
    cr_expect(a > 0 && a <= 100, "test accuracy %g", a);
    cr_expect(strstr(dom, "id=\"params\">"));
    cr_expect(strstr(dom, "id=\"versions\">dartsc "));
    cr_expect(strstr(dom, "retraining time"));
    cr_expect(strstr(dom, "export time"));
    const char *g = strstr(dom, "id=\"genotype\">");
    cr_expect(g && strstr(g, "normal = ") && strstr(g, "reduce = "), "no genotype");
    /* the two cell pictures (Graphviz) and four curves, inline */
    const char *cells = strstr(dom, "id=\"cells\"");
    cr_assert(cells);
    cr_expect(strstr(cells, "<svg") && strstr(strstr(cells, "<svg") + 4, "<svg"), "cell pictures missing");
    cr_expect(!strstr(cells, "not rendered"), "Graphviz did not render the cells");
    cr_expect_eq(count(dom, "class=\"chart\""), 4, "loss and accuracy curves of search and retraining");
    /* self-contained: nothing fetched from elsewhere (xmlns URIs are names, not fetches) */
    const char *fetches[] = {"src=\"", "href=\"http", "<link", "@import", "url(http"};
    for (int k = 0; k < 5; k++) cr_expect(!strstr(dom, fetches[k]), "the report loads something: %s", fetches[k]);
}

Test(run, darts_run_exports_agree_on_all_test_images_and_the_report_renders, .timeout = 900) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    double ink;
    int colours;
    char *dom = run_and_render(dir, "", 0, &ink, &colours);
    /* the exported ONNX and C against dartsc on every test image */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && DARTSC=%s PYTHON=%s scripts/check-export %s/run > %s/check.log 2>&1",
             DARTSC_SOURCE_DIR, getenv("DARTSC_BIN"), DARTSC_PYTHON, dir, dir);
    cr_expect_eq(sh(cmd), 0, "the exports disagree with dartsc: see %s/check.log", dir);
    snprintf(cmd, sizeof cmd, "%s/check.log", dir);
    char *log = tu_slurp(cmd, NULL);
    cr_expect(log && strstr(log, "onnxruntime agrees with dartsc on 10000 of 10000 test images") &&
                  strstr(log, "generated C agrees with dartsc on 10000 of 10000 test images"),
              "%s", log ? log : "no log");
    free(log);
    expect_common(dom, dir);
    /* alpha heat maps: normal and reduce for each of the 2 search epochs */
    cr_expect_eq(count(dom, "class=\"heat\""), 4, "alpha heat maps");
    cr_expect(strstr(dom, "epoch 2 reduce"));
    cr_expect(!strstr(dom, "id=\"candidates\""));
    /* measured on a good render: ~5 % ink, >1000 colours (anti-aliased text, shades);
       a blank or error page has almost no ink and a handful of colours */
    cr_expect(ink > 0.01, "screenshot ink %.4f: nothing rendered?", ink);
    cr_expect(colours > 64, "screenshot has %d colours", colours);
    free(dom);
}

Test(run, evolution_run_report_shows_its_candidates, .timeout = 600) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    double ink;
    int colours;
    char *dom = run_and_render(dir, "--strategy evolution --candidates 3 --population 2 --sample 1 --candidate-epochs 1", 100, &ink,
                               &colours);
    expect_common(dom, dir);
    const char *t = strstr(dom, "id=\"candidates\"");
    cr_assert(t, "no candidates table");
    cr_expect_eq(count(t, "<tr>"), 4, "a header and 3 candidates");
    cr_expect(strstr(t, "mutation of #"), "the third candidate is a mutant");
    cr_expect_eq(count(dom, "class=\"heat\""), 0, "no alpha in evolution");
    cr_expect(ink > 0.01, "screenshot ink %.4f", ink);
    free(dom);
}

/* ---- divergence ------------------------------------------------------------------------------ */

/* Every line of a jsonl file (or the whole of a .json file) is valid JSON: no nan/-nan/inf
 * tokens. Returns the number of documents. */
static int expect_valid_json_lines(const char *dir, const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        cr_expect(j, "%s line %d is not JSON (%s): %s", path, n + 1, e.text, line);
        json_decref(j);
        n++;
    }
    fclose(f);
    return n;
}

static int file_exists(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Fails before the divergence fix: training ran on to NaN with exit 0, wrote -nan into
 * train_metrics.jsonl and results.json, and exported the NaN model. */
Test(run, divergence_stops_naming_the_step_keeps_the_checkpoint_and_exports_nothing, .timeout = 300) {
    const char *bin = getenv("DARTSC_BIN");
    cr_assert(bin);
    char dir[300], path[600], cmd[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(path, sizeof path, "%s/hot.dartsc", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    /* learning rate 300 without clipping: the retraining goes to NaN in epoch 2 (its epoch-1
       checkpoint is good); the search's loss explodes to hundreds but stays finite. Where in
       epoch 2 depends on every rounding of the exploding search before it (step 3, the weight
       gradient, until the supernet shared its pools; step 4, the loss, since), so the step is
       read from the message and the logged lines checked against it */
    fputs("ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
          "cell normal { nodes 2; keep 2; ops darts }\ncell reduce : normal { reduction }\n"
          "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
          "settings s { batch 16; lr 300; momentum 0.9; weight_decay 3e-4; clip 0; seed 1 }\n"
          "search : s { epochs 3; order 1; subset 128 }\n"
          "train : s { C 4; layers 3; epochs 2; subset 64; test_subset 100; drop_path 0; aux_weight 0 }\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s run %s --out %s/run > %s/run.log 2>&1", bin, path, dir, dir);
    int rc = sh(cmd);
    snprintf(path, sizeof path, "%s/run.log", dir);
    char *log = tu_slurp(path, NULL);
    cr_assert(log);
    cr_expect_eq(rc, 1, "exit %d: %s", rc, log);
    const char *dv = strstr(log, "train: diverged at epoch 2 step ");
    int dstep = 0, drun = 0;
    cr_assert(dv && sscanf(dv, "train: diverged at epoch 2 step %d (step %d of the run)", &dstep, &drun) == 2, "%s", log);
    cr_expect(dstep >= 1 && dstep <= 4 && drun == 4 + dstep, "epoch 2 step %d is step %d of the run: %s", dstep, drun, log);
    cr_expect(strstr(dv, "is not a number (NaN)"), "%s", log);
    cr_expect(strstr(log, "learning rate (150) is probably too high"), "%s", log);
    cr_expect(strstr(log, "the last good checkpoint is kept: ") && strstr(log, "run/train_checkpoint.dtns"), "%s", log);
    /* the exploding but finite search: warned about, recorded, not stopped */
    cr_expect(strstr(log, "warning: the search loss reached"), "%s", log);
    free(log);
    char run[400];
    snprintf(run, sizeof run, "%s/run", dir);
    cr_expect(file_exists(run, "train_checkpoint.dtns"));
    const char *absent[] = {"model.dtns", "model.onnx", "c", "results.json", "report.html"};
    for (int i = 0; i < 5; i++) cr_expect(!file_exists(run, absent[i]), "%s written after divergence", absent[i]);
    cr_expect_eq(expect_valid_json_lines(run, "metrics.jsonl"), 12);
    cr_expect_eq(expect_valid_json_lines(run, "alpha.jsonl"), 3);
    cr_expect_eq(expect_valid_json_lines(run, "train_metrics.jsonl"), 4 + dstep - 1, "the NaN step is not logged");
    /* resuming meets the same NaN and stops the same way, from the kept checkpoint */
    snprintf(cmd, sizeof cmd, "%s run %s/hot.dartsc --out %s/run > %s/run2.log 2>&1", bin, dir, dir, dir);
    cr_expect_eq(sh(cmd), 1);
    snprintf(path, sizeof path, "%s/run2.log", dir);
    log = tu_slurp(path, NULL);
    char again[64];
    snprintf(again, sizeof again, "diverged at epoch 2 step %d", dstep);
    cr_expect(log && strstr(log, "== retrain (resuming)") && strstr(log, again), "%s", log);
    free(log);
    cr_expect_eq(expect_valid_json_lines(run, "train_metrics.jsonl"), 4 + dstep - 1);
}

/* ---- resume and checkpoints ------------------------------------------------------------------ */

static const char *small_space =
    "ops darts = { none, max_pool(3), avg_pool(3), skip, sep_conv(3), sep_conv(5), dil_conv(3, 2), dil_conv(5, 2) }\n"
    "cell normal { nodes 2; keep 2; ops darts }\ncell reduce : normal { reduction }\n"
    "network tiny { data fashion_mnist; input 1x28x28; classes 10; C 4; layers 3 }\n"
    "settings s { batch 16; lr 0.025; momentum 0.9; weight_decay 3e-4; clip 5; seed 1 }\n"
    "search : s { epochs 1; order 1; subset 64 }\n"
    "train : s { C 4; layers 3; epochs 1; subset 64; test_subset 200; drop_path 0; aux_weight 0 }\n";

/* Runs `dartsc ARGS`, output into out; returns the exit status. */
static int dartsc_out(const char *args, char *out, size_t outn) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", getenv("DARTSC_BIN"), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outn - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* Fails before the fix: every one of these resumes was accepted and gave another result. */
Test(run, resume_refuses_changed_settings_and_lists_them, .timeout = 300) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char sp[600], args[2048], out[8192];
    snprintf(sp, sizeof sp, "%s/s.dartsc", dir);
    write_file(sp, small_space);
    snprintf(args, sizeof args, "search %s --out %s/s", sp, dir);
    cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    const char *changed[][2] = {{"--batch 8", "batch 16 (now 8)"}, {"--seed 2", "seed 1 (now 2)"},
                                {"--order 2", "order 1 (now 2)"}, {"--strategy joint", "strategy darts (now joint)"},
                                {"--subset 96", "subset 64 (now 96)"}, {"--epochs 2", "epochs 1 (now 2)"}};
    for (int i = 0; i < 6; i++) {
        snprintf(args, sizeof args, "search %s --out %s/s --resume %s", sp, dir, changed[i][0]);
        cr_expect_eq(dartsc_out(args, out, sizeof out), 1, "%s: %s", changed[i][0], out);
        cr_expect(strstr(out, "was written with other settings") && strstr(out, changed[i][1]), "%s: %s", changed[i][0], out);
    }
    snprintf(args, sizeof args, "search %s --out %s/s --resume --seed 3 --batch 32", sp, dir);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 1);
    cr_expect(strstr(out, "batch 16 (now 32), seed 1 (now 3)"), "every difference listed: %s", out);
    cr_expect(strstr(out, "--epochs 2") == NULL);
    snprintf(args, sizeof args, "search %s --out %s/s --resume --epochs 2", sp, dir);
    dartsc_out(args, out, sizeof out);
    cr_expect(strstr(out, "lr_min equal to lr"), "says when a longer --epochs is accepted: %s", out);
    /* another kind of search on a DARTS run: refused (was: a random search ran into it) */
    const char *other[] = {"--resume --strategy random", "--resume --strategy evolution", "--strategy random"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "search %s --out %s/s %s --candidates 2 --candidate-epochs 1", sp, dir, other[i]);
        cr_expect_eq(dartsc_out(args, out, sizeof out), 1, "%s: %s", other[i], out);
        cr_expect(strstr(out, "holds a DARTS search (checkpoint.dtns), not a random search, evolution or rl search"), "%s: %s",
                  other[i], out);
    }
    snprintf(args, sizeof args, "%s/s/candidates.jsonl", dir);
    cr_expect_neq(access(args, F_OK), 0, "a baseline wrote into the DARTS run");
    /* the same settings resume */
    snprintf(args, sizeof args, "search %s --out %s/s --resume", sp, dir);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    /* retraining likewise (its own settings: the train block) */
    snprintf(args, sizeof args, "train %s --genotype %s/s/genotype.json --out %s/t", sp, dir, dir);
    cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "train %s --genotype %s/s/genotype.json --out %s/t --resume --subset 32", sp, dir, dir);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "train_checkpoint.dtns was written with other settings: subset 64 (now 32)"), "%s", out);
    /* a constant learning rate makes a longer --epochs well defined: accepted */
    char sp2[600], text[2048];
    snprintf(sp2, sizeof sp2, "%s/const.dartsc", dir);
    snprintf(text, sizeof text, "%s", small_space);
    char *lr = strstr(text, "lr 0.025;");
    cr_assert(lr);
    memmove(lr + 22, lr + 9, strlen(lr + 9) + 1);
    memcpy(lr, "lr 0.01; lr_min 0.01; ", 22);
    write_file(sp2, text);
    snprintf(args, sizeof args, "search %s --out %s/c", sp2, dir);
    cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "search %s --out %s/c --resume --epochs 2", sp2, dir);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "epoch 2/2"), "%s", out);
}

/* Fails before the fix: the checkpoint held metrics.jsonl's byte length, which varies with
 * the printed images/s. */
Test(run, identical_runs_write_identical_checkpoints_and_models, .timeout = 300) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char sp[600], args[2048], out[8192];
    snprintf(sp, sizeof sp, "%s/s.dartsc", dir);
    write_file(sp, small_space);
    const char *files[] = {"checkpoint.dtns", "train_checkpoint.dtns", "model.dtns"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "search %s --out %s/s%d --epochs 2", sp, dir, k);
        cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
        snprintf(args, sizeof args, "train %s --genotype %s/s0/genotype.json --out %s/s%d --epochs 2", sp, dir, dir, k);
        cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    }
    for (int i = 0; i < 3; i++) {
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/s0/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/s1/%s", dir, files[i]);
        size_t na, nb;
        char *x = tu_slurp(a, &na), *y = tu_slurp(b, &nb);
        cr_assert(x && y, "%s", files[i]);
        cr_expect(na == nb && memcmp(x, y, na) == 0, "%s differs between two identical runs", files[i]);
        free(x);
        free(y);
    }
    /* stopped and resumed from a checkpoint whose metrics are counted in lines: the logs
       end where an uninterrupted run's do */
    snprintf(args, sizeof args, "%s/s0/metrics.jsonl", dir);
    size_t n0;
    char *m0 = tu_slurp(args, &n0);
    cr_assert(m0);
    int lines0 = count(m0, "\n");
    free(m0);
    cr_expect_eq(lines0, 4);
}

/* A checkpoint written before settings were recorded (no meta/settings, metrics by bytes)
 * still resumes, unchecked (docs/CLI.md). */
Test(run, old_checkpoint_without_settings_resumes, .timeout = 300) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char sp[600], args[2048], out[8192], ck[700], met[700], err[512];
    snprintf(sp, sizeof sp, "%s/s.dartsc", dir);
    write_file(sp, small_space);
    snprintf(args, sizeof args, "search %s --out %s/s --epochs 2", sp, dir);
    cr_assert_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    snprintf(ck, sizeof ck, "%s/s/checkpoint.dtns", dir);
    snprintf(met, sizeof met, "%s/s/metrics.jsonl", dir);
    /* rewrite it as the old format: without the optional entries, metrics.jsonl's bytes in meta */
    rt_tf_file *f = rt_tf_read(ck, err, sizeof err);
    cr_assert(f, "%s", err);
    cr_assert(rt_tf_find(f, "meta/settings") && rt_tf_find(f, "meta/log_lines"));
    char old[700];
    snprintf(old, sizeof old, "%s/s/old.dtns", dir);
    rt_tf_writer *w = rt_tf_open_write(old, err, sizeof err);
    cr_assert(w, "%s", err);
    FILE *mf = fopen(met, "rb");
    cr_assert(mf);
    fseek(mf, 0, SEEK_END);
    long bytes = ftell(mf);
    fclose(mf);
    for (int i = 0; i < rt_tf_count(f); i++) {
        const rt_tf_entry *e = rt_tf_get(f, i);
        if (!strcmp(e->name, "meta/settings") || !strcmp(e->name, "meta/log_lines")) continue;
        if (!strcmp(e->name, "meta/state")) {
            int32_t v[24];
            memcpy(v, e->data, sizeof v);
            v[22] = (int32_t)bytes; /* meta[11], low word */
            v[23] = 0;
            cr_assert_eq(rt_tf_write(w, e->name, e->dtype, e->ndim, e->dims, v), 0);
        } else
            cr_assert_eq(rt_tf_write(w, e->name, e->dtype, e->ndim, e->dims, e->data), 0);
    }
    cr_assert_eq(rt_tf_close_write(w, err, sizeof err), 0, "%s", err);
    rt_tf_free(f);
    cr_assert_eq(rename(old, ck), 0);
    snprintf(args, sizeof args, "search %s --out %s/s --resume --epochs 2 --seed 7", sp, dir);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 0, "an old checkpoint resumes: %s", out);
}

/* ---- special files ----------------------------------------------------------------------------- */

/* Runs `timeout 30 dartsc ARGS` in dir; a hang shows as exit 124. */
static int dartsc_in(const char *dir, const char *args, char *out, size_t outn) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && timeout 30 %s %s 2>&1", dir, getenv("DARTSC_BIN"), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, outn - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Fails before the fix: inspect and check hung on a FIFO (exit 124 here), export renamed
 * its output over a FIFO, a device node and a symbolic link and said "wrote". */
Test(run, special_files_are_refused_before_they_are_opened_or_replaced, .timeout = 400) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char args[2048], out[8192], path[700];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    cr_assert_eq(dartsc_in(dir, "run s.dartsc --out run", out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "cd %s && mkfifo fifo && mkdir d dir.onnx && mkfifo d/train-labels-idx1-ubyte.gz && "
             "mkdir -p e/train-labels-idx1-ubyte.gz && ln -s target.onnx link.onnx && mkdir c && mkfifo c/model.c && "
             "mkdir r && cp s.dartsc r/space.dartsc && mkfifo r/checkpoint.dtns", dir);
    cr_assert_eq(sh(args), 0);
    /* inputs: must be regular files, checked before they are opened */
    const char *inputs[][2] = {
        {"inspect fifo", "dartsc inspect: fifo: is a FIFO (named pipe), not a regular file"},
        {"check fifo", "fifo: error: is a FIFO (named pipe), not a regular file"},
        {"check d", "d: error: is a directory, not a regular file"},
        {"train s.dartsc --genotype fifo --out t", "fifo: is a FIFO (named pipe), not a regular file"},
        {"search s.dartsc --data d --out x", "d/train-labels-idx1-ubyte.gz: is a FIFO (named pipe), not a regular file"},
        {"search s.dartsc --data e --out y", "e/train-labels-idx1-ubyte.gz: is a directory, not a regular file"},
        {"search s.dartsc --out r --resume", "r/checkpoint.dtns: is a FIFO (named pipe), not a regular file"},
    };
    for (int i = 0; i < 7; i++) {
        int rc = dartsc_in(dir, inputs[i][0], out, sizeof out);
        cr_expect_eq(rc, 1, "%s: exit %d (124: hung): %s", inputs[i][0], rc, out);
        cr_expect(strstr(out, inputs[i][1]), "%s: %s", inputs[i][0], out);
    }
    /* outputs: only a regular file is replaced */
    const char *outputs[][2] = {
        {"export run --onnx fifo", "fifo: is a FIFO (named pipe), not a regular file; refusing to replace it"},
        /* a character device of our own (never /dev/null: a regression would replace it) */
        {"export run --onnx chr", "chr: is a character device, not a regular file; refusing to replace it"},
        {"export run --onnx link.onnx", "link.onnx: is a symbolic link, not a regular file; refusing to replace it"},
        {"export run --onnx dir.onnx", "dir.onnx: is a directory, not a regular file; refusing to replace it"},
        {"export run --c fifo", "fifo: is a FIFO (named pipe), not a directory"},
        {"export run --c c", "c/model.c: is a FIFO (named pipe), not a regular file; refusing to replace it"},
        {"eval run --predictions fifo", "fifo: is a FIFO (named pipe), not a regular file; refusing to replace it"},
        {"check s.dartsc --dot fifo", "fifo: is a FIFO (named pipe), not a regular file; refusing to replace it"},
    };
    snprintf(args, sizeof args, "cd %s && mknod chr c 1 3 2>/dev/null", dir);
    int have_chr = sh(args) == 0; /* needs root; otherwise that case is left out */
    for (int i = 0; i < 8; i++) {
        if (!have_chr && !strcmp(outputs[i][0], "export run --onnx chr")) continue;
        int rc = dartsc_in(dir, outputs[i][0], out, sizeof out);
        cr_expect_eq(rc, 1, "%s: exit %d (124: hung): %s", outputs[i][0], rc, out);
        cr_expect(strstr(out, outputs[i][1]), "%s: %s", outputs[i][0], out);
        cr_expect(!strstr(out, "wrote"), "%s: %s", outputs[i][0], out);
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/fifo", dir);
    cr_expect(lstat(path, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");
    snprintf(path, sizeof path, "%s/chr", dir);
    cr_expect(!have_chr || (lstat(path, &st) == 0 && S_ISCHR(st.st_mode)), "the device node was replaced");
    snprintf(path, sizeof path, "%s/link.onnx", dir);
    cr_expect(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the symbolic link was replaced");
    snprintf(path, sizeof path, "%s/target.onnx", dir);
    cr_expect(access(path, F_OK) != 0, "written through the symbolic link");
    /* a regular file is replaced as before */
    cr_expect_eq(dartsc_in(dir, "export run --onnx m.onnx --c cc", out, sizeof out), 0, "%s", out);
}

/* ---- numeric flags ----------------------------------------------------------------------------- */

/* Fails before the fix: `train --epochs 0|abc|3x` and bench's and export's numeric flags
 * went through atoi/atol and were ignored or misread with exit 0. */
Test(run, numeric_flags_are_parsed_strictly_by_every_command, .timeout = 120) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], args[2048], out[8192], want[256];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    struct { const char *cmd, *pre, *flag; long lo; } flags[] = {
        {"search", "search s.dartsc --out o", "--epochs", 1},  {"search", "search s.dartsc --out o", "--batch", 1},
        {"search", "search s.dartsc --out o", "--seed", 0},    {"run", "run s.dartsc --out o", "--epochs", 1},
        {"run", "run s.dartsc --out o", "--candidates", 1},    {"train", "train s.dartsc --genotype g --out o", "--epochs", 1},
        {"train", "train s.dartsc --genotype g --out o", "--subset", 0},
        {"export", "export o --onnx m.onnx", "--max-batch", 1}, {"bench", "bench s.dartsc", "--steps", 1},
        {"bench", "bench s.dartsc", "--batch", 1},             {"bench", "bench s.dartsc", "--order", 1},
        {"bench", "bench s.dartsc", "--warmup", 0},            {"check", "check s.dartsc", "--batch", 1},
    };
    const char *bad[] = {"0", "abc", "3x", "99999999999999999999", "-1", "\" 3\"", "+3", "\"\""};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        for (int k = 0; k < 8; k++) {
            if (k == 0 && flags[i].lo == 0) continue; /* 0 is in range */
            snprintf(args, sizeof args, "%s %s %s", flags[i].pre, flags[i].flag, bad[k]);
            int rc = dartsc_in(dir, args, out, sizeof out);
            cr_expect_eq(rc, 2, "%s: exit %d: %s", args, rc, out);
            snprintf(want, sizeof want, "dartsc %s: %s: '", flags[i].cmd, flags[i].flag);
            cr_expect(strstr(out, want) && strstr(out, "' is not an integer in "), "%s: %s", args, out);
        }
    /* a missing value names the flag too */
    cr_expect_eq(dartsc_in(dir, "train s.dartsc --genotype g --epochs", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--epochs needs a value"), "%s", out);
    cr_expect_eq(dartsc_in(dir, "check s.dartsc --batch", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--batch needs a value"), "%s", out);
    /* bench's supernet names one of three */
    cr_expect_eq(dartsc_in(dir, "bench s.dartsc --supernet enas", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "dartsc bench: --supernet: 'enas' is not darts, pc-darts or fair-darts"), "%s", out);
}

/* Fails before the fix: the message was "out of device memory (arena 3806136371200 bytes)"
 * on the CPU too, with nothing to compare it with; and a plan a little larger than the
 * memory there is was granted (Linux overcommits) and the process killed on touching it. */
Test(run, a_batch_larger_than_the_memory_says_how_much_it_needs_and_has, .timeout = 120) {
    cr_assert(getenv("DARTSC_BIN"));
    char args[1024], out[4096];
    /* the CIFAR-10 supernet at batch 60000: ~3.5 TiB of activations, more than any test machine has */
    snprintf(args, sizeof args, "bench %s/examples/darts_cifar10.dartsc --batch 60000 --steps 1 --warmup 0", DARTSC_SOURCE_DIR);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "dartsc bench: out of memory on the cpu backend: the activations (the plan's arena and scratch) need "),
              "%s", out);
    cr_expect(strstr(out, " GiB; ") && strstr(out, " GiB are free") && strstr(out, "a smaller batch needs proportionally less"), "%s", out);
}

/* ---- messages and leftovers ------------------------------------------------------------------- */

/* Fails before the fix: a missing genotype was reported at "nope.json:-1:-1:", and a search
 * or training that failed before writing anything left an empty output directory. */
Test(run, missing_genotype_is_named_and_failed_runs_leave_no_empty_directory, .timeout = 120) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], out[8192], text[2048], d[700];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    cr_expect_eq(dartsc_in(dir, "train s.dartsc --genotype nope.json --out t", out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "nope.json: cannot open: No such file or directory") && !strstr(out, ":-1:"), "%s", out);
    /* a space whose data directory does not exist: the search fails before writing anything */
    snprintf(text, sizeof text, "%s", small_space);
    char *net = strstr(text, "data fashion_mnist;");
    cr_assert(net);
    memmove(net + 33, net + 19, strlen(net + 19) + 1);
    memcpy(net, "data fashion_mnist \"/nonexist/x\";", 33);
    snprintf(path, sizeof path, "%s/nodata.dartsc", dir);
    write_file(path, text);
    const char *cmds[] = {"search nodata.dartsc --out o1/deep/er", "run nodata.dartsc --out o2",
                          "train nodata.dartsc --genotype g.json --out o3"};
    snprintf(path, sizeof path, "%s/g.json", dir);
    for (int i = 0; i < 3; i++) {
        if (i == 2) { /* a genotype to train: from a search of the working space */
            cr_assert_eq(dartsc_in(dir, "search s.dartsc --out gs", out, sizeof out), 0, "%s", out);
            snprintf(d, sizeof d, "cp %s/gs/genotype.json %s", dir, path);
            cr_assert_eq(sh(d), 0);
        }
        cr_expect_eq(dartsc_in(dir, cmds[i], out, sizeof out), 1, "%s: %s", cmds[i], out);
        cr_expect(strstr(out, "/nonexist/x/"), "%s: %s", cmds[i], out);
    }
    const char *gone[] = {"o1", "o2", "o3"};
    for (int i = 0; i < 3; i++) {
        snprintf(d, sizeof d, "%s/%s", dir, gone[i]);
        cr_expect(access(d, F_OK) != 0, "%s left behind", d);
    }
    /* a directory that existed before is never removed */
    snprintf(d, sizeof d, "%s/mine", dir);
    cr_assert_eq(mkdir(d, 0755), 0);
    cr_expect_eq(dartsc_in(dir, "search nodata.dartsc --out mine", out, sizeof out), 1, "%s", out);
    cr_expect(access(d, F_OK) == 0, "a directory the user made was removed");
}

/* ---- signals ------------------------------------------------------------------------------------ */

/* Fails before the fix: run ignored SIGINT/SIGTERM during evaluation, export and report and
 * finished with exit 0. DARTSC_TEST_STOP_AT raises SIGINT inside dartsc as the stage begins
 * (a real signal through the real handler, at a moment a test can choose). */
Test(run, a_stop_during_evaluation_export_or_report_exits_130_and_resumes, .timeout = 300) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], out[8192], args[1024];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    const char *stages[] = {"evaluation", "export", "report"};
    const char *absent[] = {"model.onnx", "c", "report.html"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "DARTSC_TEST_STOP_AT=%s %s run s.dartsc --out r", stages[i], getenv("DARTSC_BIN"));
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cd %s && %s > stop%d.log 2>&1", dir, args, i);
        cr_expect_eq(sh(cmd), 130, "stop at the %s", stages[i]);
        snprintf(cmd, sizeof cmd, "%s/stop%d.log", dir, i);
        char *log = tu_slurp(cmd, NULL);
        snprintf(out, sizeof out, "dartsc run: stopped before the %s; rerun the same command to resume", stages[i]);
        cr_expect(log && strstr(log, out), "%s", log ? log : "");
        free(log);
        snprintf(cmd, sizeof cmd, "%s/r", dir);
        cr_expect(!file_exists(cmd, "report.html"), "the report was written after a stop at the %s", stages[i]);
        if (i < 2) cr_expect(!file_exists(cmd, absent[0]), "model.onnx written after a stop at the %s", stages[i]);
    }
    cr_expect_eq(dartsc_in(dir, "run s.dartsc --out r", out, sizeof out), 0, "%s", out);
    snprintf(path, sizeof path, "%s/r", dir);
    for (int i = 0; i < 3; i++) cr_expect(file_exists(path, absent[i]), "%s after the resumed run", absent[i]);
    /* a real SIGTERM during the search: checkpointed, exit 130, resumable */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && (%s run s.dartsc --out t --epochs 40 > term.log 2>&1 & pid=$!; sleep 2; kill -TERM $pid; wait $pid)",
             dir, getenv("DARTSC_BIN"));
    cr_expect_eq(sh(cmd), 130);
    snprintf(path, sizeof path, "%s/term.log", dir);
    char *log = tu_slurp(path, NULL);
    cr_expect(log && strstr(log, "stopped during the search"), "%s", log ? log : "");
    free(log);
    snprintf(path, sizeof path, "%s/t", dir);
    cr_expect(file_exists(path, "checkpoint.dtns"));
}

/* Fails before the fix (exit 143, killed without a word): a SIGTERM while the shared
 * libraries initialise, before main runs (cuDNN's, cuBLAS's and OpenBLAS's initialisers
 * take 0.1-0.4 s). A preloaded library's initialiser sends it, deterministically: the
 * dynamic loader runs dartsc's preinit array (which installs the handlers) before any
 * shared library's initialiser. */
Test(run, a_signal_while_the_libraries_initialise_stops_cleanly, .timeout = 300) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], cmd[4096];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    snprintf(path, sizeof path, "%s/early.c", dir);
    write_file(path, "#include <signal.h>\n#include <unistd.h>\n"
                     "__attribute__((constructor)) static void early(void) { kill(getpid(), SIGTERM); }\n");
    snprintf(cmd, sizeof cmd, "cd %s && cc -shared -fPIC -o early.so early.c", dir);
    cr_assert_eq(sh(cmd), 0, "%s", cmd);
    const char *runs[][2] = {{"run s.dartsc --out r", "dartsc run: stopped during the search"},
                             {"search s.dartsc --out s", "dartsc search: stopped after 0 steps"}};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "cd %s && LD_PRELOAD=%s/early.so %s %s > early%d.log 2>&1", dir, dir, getenv("DARTSC_BIN"),
                 runs[i][0], i);
        cr_expect_eq(sh(cmd), 130, "%s", runs[i][0]);
        snprintf(path, sizeof path, "%s/early%d.log", dir, i);
        char *log = tu_slurp(path, NULL);
        cr_expect(log && strstr(log, runs[i][1]), "%s: %s", runs[i][0], log ? log : "");
        free(log);
    }
    /* and the stopped run resumes to the end */
    char out[8192];
    cr_expect_eq(dartsc_in(dir, "run s.dartsc --out r", out, sizeof out), 0, "%s", out);
}

/* ---- check ------------------------------------------------------------------------------------- */

/* Fails before: check printed only the supernet's size (--genotype was an unknown option).
 * DARTS_V2 at C 36, 20 cells has the reference's 3,349,342 weights (README). */
Test(run, check_prints_the_retraining_networks_size_for_a_genotype, .timeout = 60) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], args[1400], out[16384];
    snprintf(path, sizeof path, "%s/v2.json", dir);
    write_file(path, "{\"normal\": [[\"sep_conv_3x3\", 0], [\"sep_conv_3x3\", 1], [\"sep_conv_3x3\", 0], [\"sep_conv_3x3\", 1], "
                     "[\"sep_conv_3x3\", 1], [\"skip_connect\", 0], [\"skip_connect\", 0], [\"dil_conv_3x3\", 2]], "
                     "\"normal_concat\": [2, 3, 4, 5], \"reduce\": [[\"max_pool_3x3\", 0], [\"max_pool_3x3\", 1], "
                     "[\"skip_connect\", 2], [\"max_pool_3x3\", 1], [\"max_pool_3x3\", 0], [\"skip_connect\", 2], "
                     "[\"skip_connect\", 2], [\"max_pool_3x3\", 1]], \"reduce_concat\": [2, 3, 4, 5]}\n");
    snprintf(args, sizeof args, "check %s/examples/darts_cifar10.dartsc --genotype %s", DARTSC_SOURCE_DIR, path);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "supernet: 6536 nodes, 1930618 weight parameters"), "%s", out);
    cr_expect(strstr(out, "retraining network (C 36, 20 cells, ") && strstr(out, "): 3349342 weight parameters, "), "%s", out);
    snprintf(args, sizeof args, "check %s/examples/darts_cifar10.dartsc", DARTSC_SOURCE_DIR);
    cr_expect_eq(dartsc_out(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "retraining network (C 36, 20 cells): pass --genotype FILE for its size"), "%s", out);
}

/* Fails before: a baseline (random search, evolution) resumed with another --batch, --seed
 * or --candidate-epochs continued silently with mixed settings. */
Test(run, baseline_resume_refuses_changed_settings, .timeout = 200) {
    cr_assert(getenv("DARTSC_BIN"));
    const char *dir = tu_tmpdir();
    char path[600], out[8192];
    snprintf(path, sizeof path, "%s/s.dartsc", dir);
    write_file(path, small_space);
    const char *base = "search s.dartsc --out b --strategy random --candidates 2 --candidate-epochs 1";
    cr_assert_eq(dartsc_in(dir, base, out, sizeof out), 0, "%s", out);
    const char *changed[][2] = {{"--batch 8", "batch 16 (now 8)"}, {"--seed 3", "seed 1 (now 3)"},
                                {"--candidate-epochs 2", "--candidate-epochs 1 (now 2)"}};
    char args[1024];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s --resume %s", base, changed[i][0]);
        cr_expect_eq(dartsc_in(dir, args, out, sizeof out), 1, "%s: %s", changed[i][0], out);
        cr_expect(strstr(out, "baseline_settings.dtns was written with other settings: ") && strstr(out, changed[i][1]),
                  "%s: %s", changed[i][0], out);
    }
    /* the DARTS loop on a baseline's directory, resumed or not: refused (was "checkpoint.dtns does not exist") */
    const char *darts[] = {"search s.dartsc --out b --resume", "search s.dartsc --out b"};
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(dartsc_in(dir, darts[i], out, sizeof out), 1, "%s: %s", darts[i], out);
        cr_expect(strstr(out, "b holds a random search, evolution or rl search (candidates.jsonl), not a DARTS search"), "%s: %s",
                  darts[i], out);
    }
    /* more candidates continue the same sequence: accepted */
    snprintf(args, sizeof args, "search s.dartsc --out b --strategy random --candidates 3 --candidate-epochs 1 --resume");
    cr_expect_eq(dartsc_in(dir, args, out, sizeof out), 0, "%s", out);
}
