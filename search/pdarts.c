/* pdarts.c — P-DARTS (Chen et al., ICCV 2019): the search in stages of growing depth. Stage s
 * is a DARTS search (cnn.c) of its own supernet — stages[s] cells, each edge mixing only the
 * candidates kept so far (alpha (edges, stage_ops[s])), a dropout on every identity skip that
 * starts at skip_dropout[s] and decays linearly over the stage, the first `warmup` epochs
 * training weights only — in out_dir/stageN/ with its own checkpoint. Between stages each
 * edge keeps its stage_ops[s+1] candidates of largest softmax weight. After the last stage
 * the genotype is derived from its weights and the normal cell's skips are capped at
 * max_skip: while it has more, the kept skip of smallest weight is removed from its edge and
 * the cell derived again (the paper's code). A finished stage leaves stageN/stage.dtns (its
 * final alpha, exactly), so a resumed search rebuilds the next stage's candidates bit for bit.
 * out_dir gets stages.jsonl (one line per finished stage), the stages' metrics.jsonl and
 * alpha.jsonl (the space's layout, a pruned candidate at weight 0) one after another, and
 * the final genotype.json, normal.dot, reduce.dot. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genotype.h"
#include "runtime/dist.h"
#include "runtime/tensorfile.h"
#include "search.h"
#include "train/common.h"

typedef struct plan {
    int n;                             /* stages */
    int layers[IR_MAX_STAGES];
    int ops[2][IR_MAX_STAGES];         /* candidates per edge, per cell type */
    float drop[IR_MAX_STAGES];
} plan;

static int make_plan(const ir_space *sp, plan *pl, char *err, size_t errlen) {
    const ir_train_config *tc = &sp->search;
    memset(pl, 0, sizeof *pl);
    pl->n = tc->n_stages ? tc->n_stages : 3;
    if (tc->n_stage_ops && tc->n_stage_ops != pl->n)
        return sr_fail(err, errlen, "p-darts: stage_ops lists %d stages, stages %d", tc->n_stage_ops, pl->n);
    if (tc->n_skip_dropout && tc->n_skip_dropout != pl->n)
        return sr_fail(err, errlen, "p-darts: skip_dropout lists %d stages, stages %d", tc->n_skip_dropout, pl->n);
    static const int paper_ops[3] = {IR_MAX_CANDS, 5, 3};  /* 8 -> 5 -> 3 in the DARTS space */
    static const float paper_drop[3] = {0.0f, 0.4f, 0.7f}; /* the paper's CIFAR-10 rates */
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    for (int s = 0; s < pl->n; s++) {
        pl->layers[s] = tc->n_stages ? tc->stages[s] : sp->layers + 6 * s;
        if (pl->layers[s] < 1 || pl->layers[s] > 256)
            return sr_fail(err, errlen, "p-darts: stage %d has %d cells (1..256)", s + 1, pl->layers[s]);
        pl->drop[s] = tc->n_skip_dropout ? tc->skip_dropout[s] : pl->n == 3 ? paper_drop[s] : 0.f;
        int want = tc->n_stage_ops ? tc->stage_ops[s] : s < 3 ? paper_ops[s] : 3;
        for (int t = 0; t < 2; t++) {
            int k = want < cells[t]->n_ops ? want : cells[t]->n_ops;
            if (s == 0 && k != cells[t]->n_ops)
                return sr_fail(err, errlen, "p-darts: the first stage searches all %d candidate ops of the %s cell; "
                               "stage_ops starts with %d", cells[t]->n_ops, t ? "reduction" : "normal", want);
            if (s > 0 && k > pl->ops[t][s - 1])
                return sr_fail(err, errlen, "p-darts: stage_ops must not grow (stage %d: %d after %d)", s + 1, k,
                               pl->ops[t][s - 1]);
            pl->ops[t][s] = k;
        }
    }
    return 0;
}

/* The candidates of the next stage: per edge the k columns of largest softmax weight of this
 * stage's alpha a (edges, n); ties keep the lower column; 'none' is dropped when k = 1 (the
 * edge then keeps an op). The kept columns stay in the space's order. */
static void prune(const ir_cell *c, const int *cols, int n, const float *a, int k, int *next) {
    int E = ir_cell_num_edges(c), none = ir_cell_none_index(c);
    for (int e = 0; e < E; e++) {
        const float *row = a + (size_t)e * n;
        int keep[IR_MAX_CANDS] = {0};
        for (int taken = 0; taken < k; taken++) {
            int b = -1;
            for (int j = 0; j < n; j++) {
                if (keep[j] || (k == 1 && cols[e * n + j] == none)) continue;
                if (b < 0 || row[j] > row[b]) b = j; /* softmax is monotone: compare alpha */
            }
            keep[b] = 1;
        }
        int m = 0;
        for (int j = 0; j < n; j++)
            if (keep[j]) next[e * k + m++] = cols[e * n + j];
    }
}

void sr_alpha_expand(const ir_cell *c, const int *cols, int n_cols, const float *a, float *full) {
    int E = ir_cell_num_edges(c), O = c->n_ops;
    for (int e = 0; e < E; e++)
        for (int o = 0; o < O; o++) full[e * O + o] = cols ? SR_ALPHA_PRUNED : a[e * O + o];
    if (!cols) return;
    for (int e = 0; e < E; e++)
        for (int j = 0; j < n_cols; j++) full[e * O + cols[e * n_cols + j]] = a[e * n_cols + j];
}

/* Derives the final genotype of the last stage: weights softmax(alpha) over the kept
 * candidates (removed ones -1), then the skip cap on the normal cell. Exposed to the tests
 * through sr_pdarts_derive. */
int sr_pdarts_derive(const ir_space *sp, const int *const cols[2], const int n_cols[2], const float *const alpha[2],
                     ir_genotype *gt) {
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    ir_geno_cell *out[2] = {&gt->normal, &gt->reduce};
    int removed = 0;
    for (int t = 0; t < 2; t++) {
        const ir_cell *c = cells[t];
        int E = ir_cell_num_edges(c), O = c->n_ops, n = n_cols[t];
        double *w = malloc((size_t)E * O * sizeof *w);
        if (!w) return -1;
        for (int i = 0; i < E * O; i++) w[i] = -1.0;
        for (int e = 0; e < E; e++) {
            const float *row = alpha[t] + (size_t)e * n;
            double m = row[0], s = 0;
            for (int j = 1; j < n; j++) m = fmax(m, row[j]);
            for (int j = 0; j < n; j++) s += exp((double)row[j] - m);
            for (int j = 0; j < n; j++) w[e * O + cols[t][e * n + j]] = exp((double)row[j] - m) / s;
        }
        sr_derive_weights(c, w, out[t]);
        for (;;) { /* the cap (normal cell only, as the paper) */
            if (t == 1 || sp->search.max_skip < 0) break;
            int skips = 0, be = -1, bo = -1;
            double bw = INFINITY;
            int row_of[IR_MAX_NODES][2 + IR_MAX_NODES], r = 0;
            for (int i = 0; i < c->n_nodes; i++)
                for (int j = 0; j < c->n_inputs + i; j++) row_of[i][j] = (c->edges[i] >> j) & 1 ? r++ : -1;
            for (int i = 0; i < out[t]->n_nodes; i++)
                for (int k = 0; k < out[t]->n_edges[i]; k++) {
                    const ir_geno_edge *ge = &out[t]->e[i][k];
                    if (c->ops[ge->op].kind != IR_CAND_SKIP) continue;
                    skips++;
                    int e = row_of[i][ge->src];
                    if (w[e * O + ge->op] < bw) { /* the first of equal weights, in node order */
                        bw = w[e * O + ge->op];
                        be = e;
                        bo = ge->op;
                    }
                }
            if (skips <= sp->search.max_skip) break;
            w[be * O + bo] = -1.0;
            removed++;
            sr_derive_weights(c, w, out[t]);
        }
        free(w);
    }
    return removed;
}

/* ---- stage files --------------------------------------------------------------------------- */

typedef struct capture {
    float *a[2];
    int64_t n[2];
    int got;
    float val_acc; /* the stage's final architecture-split accuracy */
    double seconds; /* its search time in this invocation (not in the file: files are deterministic) */
} capture;

static void on_final_alpha(void *ctx, const float *an, const float *ar) {
    capture *c = ctx;
    memcpy(c->a[0], an, (size_t)c->n[0] * 4);
    memcpy(c->a[1], ar, (size_t)c->n[1] * 4);
    c->got = 1;
}

static int write_stage_file(const char *path, const capture *c, const int *const cols[2], char *err, size_t errlen) {
    rt_tf_writer *w = rt_tf_open_write(path, err, errlen);
    if (!w) return -1;
    rt_tf_write(w, "alpha_normal", RT_TF_F32, 1, &c->n[0], c->a[0]);
    rt_tf_write(w, "alpha_reduce", RT_TF_F32, 1, &c->n[1], c->a[1]);
    rt_tf_write(w, "cols_normal", RT_TF_I32, 1, &c->n[0], cols[0]);
    rt_tf_write(w, "cols_reduce", RT_TF_I32, 1, &c->n[1], cols[1]);
    rt_tf_write(w, "val_acc", RT_TF_F32, 1, (int64_t[]){1}, &c->val_acc);
    return rt_tf_close_write(w, err, errlen);
}

/* A finished stage's alpha; its recorded columns must be the ones this run gave it. */
static int read_stage_file(const char *path, capture *c, const int *const cols[2], char *err, size_t errlen) {
    rt_tf_file *f = rt_tf_read(path, err, errlen);
    if (!f) return -1;
    const char *an[2] = {"alpha_normal", "alpha_reduce"}, *cn[2] = {"cols_normal", "cols_reduce"};
    int rc = 0;
    for (int t = 0; t < 2 && !rc; t++) {
        const rt_tf_entry *a = rt_tf_find(f, an[t]), *k = rt_tf_find(f, cn[t]);
        if (!a || !k || a->dtype != RT_TF_F32 || k->dtype != RT_TF_I32 || a->numel != c->n[t] || k->numel != c->n[t] ||
            memcmp(k->data, cols[t], (size_t)c->n[t] * 4)) {
            rc = sr_fail(err, errlen, "%s: does not hold this stage's alpha (another space or stage settings?)", path);
            break;
        }
        memcpy(c->a[t], a->data, (size_t)c->n[t] * 4);
    }
    const rt_tf_entry *info = rt_tf_find(f, "val_acc");
    if (!rc && (!info || info->dtype != RT_TF_F32 || info->numel != 1))
        rc = sr_fail(err, errlen, "%s: has no val_acc entry", path);
    if (!rc) memcpy(&c->val_acc, info->data, 4);
    c->seconds = NAN;
    rt_tf_free(f);
    return rc;
}

/* out_dir/NAME = the stages' NAME files one after another (stages 1..n). */
static int concat_logs(const char *dir, int n, const char *name, char *err, size_t errlen) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) return sr_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    for (int s = 0; s < n; s++) {
        char in[4200], buf[1 << 14];
        snprintf(in, sizeof in, "%s/stage%d/%s", dir, s + 1, name);
        FILE *f = fopen(in, "r");
        if (!f) continue;
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, got, o);
        fclose(f);
    }
    if (fclose(o) || rename(tmp, path)) return sr_fail(err, errlen, "%s: %s", path, strerror(errno));
    return 0;
}

static int exists(const char *dir, const char *name) {
    char p[8400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* One stages.jsonl line: the stage's depth, candidates per edge (names), dropout, accuracy. */
static void stage_line(FILE *f, const ir_space *sp, const plan *pl, int s, const int *const cols[2], double val_acc,
                       double seconds) {
    char acc[32], secs[32];
    fprintf(f, "{\"stage\":%d,\"layers\":%d,\"epochs\":%d,\"ops_per_edge\":[%d,%d],\"skip_dropout\":%.6g,\"warmup\":%d,"
               "\"val_acc\":%s,\"seconds\":%s",
            s + 1, pl->layers[s], sp->search.epochs, pl->ops[0][s], pl->ops[1][s], pl->drop[s], sp->search.warmup,
            sr_json_num(acc, sizeof acc, "%.6g", val_acc), sr_json_num(secs, sizeof secs, "%.1f", seconds));
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const char *names[2] = {"normal", "reduce"};
    for (int t = 0; t < 2; t++) {
        fprintf(f, ",\"%s\":[", names[t]);
        for (int e = 0; e < ir_cell_num_edges(cells[t]); e++) {
            fprintf(f, "%s[", e ? "," : "");
            for (int j = 0; j < pl->ops[t][s]; j++)
                fprintf(f, "%s\"%s\"", j ? "," : "", cells[t]->ops[cols[t][e * pl->ops[t][s] + j]].name);
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

int sr_pdarts_search(const ir_space *sp, const sr_options *o, sr_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    double t0 = sr_now();
    plan pl;
    if (make_plan(sp, &pl, err, errlen)) return -1;
    /* data-parallel runs: rank 0 alone looks at and writes the run directory; the others
       take its decisions (sr_dist_root_rc, rt_dist_sum_int) and its stage files' contents */
    const int writer = sr_dist_writer();
    int wrc = writer ? sr_mkdir_p(o->out_dir, err, errlen) : 0;
    char dir1[4200];
    snprintf(dir1, sizeof dir1, "%s/stage1", o->out_dir);
    if (writer && !wrc && !o->resume && exists(dir1, "checkpoint.dtns"))
        wrc = sr_fail(err, errlen, "%s already holds a search (stage1/checkpoint.dtns); pass --resume to continue it or "
                      "choose another --out", o->out_dir);
    if (writer && !wrc && o->resume && !exists(dir1, "checkpoint.dtns"))
        wrc = sr_fail(err, errlen, "--resume: %s/checkpoint.dtns does not exist", dir1);
    if (writer && !wrc && !o->resume && o->space_src) {
        char path[4200];
        snprintf(path, sizeof path, "%s/space.dartsc", o->out_dir);
        wrc = sr_write_file_atomic(path, o->space_src, o->space_src_len, err, errlen);
    }
    if (sr_dist_root_rc(wrc, err, errlen)) return -1;
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    int E[2] = {ir_cell_num_edges(cells[0]), ir_cell_num_edges(cells[1])};
    int *cols[2], *next[2];
    capture cap = {0};
    int rc = -1;
    for (int t = 0; t < 2; t++) {
        cols[t] = malloc((size_t)E[t] * IR_MAX_CANDS * sizeof(int));
        next[t] = malloc((size_t)E[t] * IR_MAX_CANDS * sizeof(int));
        cap.a[t] = malloc((size_t)E[t] * IR_MAX_CANDS * 4);
        if (!cols[t] || !next[t] || !cap.a[t]) {
            sr_fail(err, errlen, "out of memory");
            goto out;
        }
        for (int e = 0; e < E[t]; e++)
            for (int j = 0; j < cells[t]->n_ops; j++) cols[t][e * cells[t]->n_ops + j] = j;
    }
    char lines_path[4200];
    snprintf(lines_path, sizeof lines_path, "%s/stages.jsonl", o->out_dir);
    FILE *lines = writer ? fopen(lines_path, "w") : NULL; /* rebuilt from the finished stages on every invocation */
    if (sr_dist_root_rc(writer && !lines ? sr_fail(err, errlen, "%s: %s", lines_path, strerror(errno)) : 0, err, errlen))
        goto out;
    for (int s = 0; s < pl.n; s++) {
        char sdir[4200], sfile[4300];
        snprintf(sdir, sizeof sdir, "%s/stage%d", o->out_dir, s + 1);
        snprintf(sfile, sizeof sfile, "%s/stage.dtns", sdir);
        const int *ccols[2] = {cols[0], cols[1]};
        for (int t = 0; t < 2; t++) cap.n[t] = (int64_t)E[t] * pl.ops[t][s];
        cap.got = 0;
        if (rt_dist_sum_int(writer && access(sfile, F_OK) == 0)) {
            if (sr_dist_root_rc(writer ? read_stage_file(sfile, &cap, ccols, err, errlen) : 0, err, errlen)) goto out_lines;
            for (int t = 0; t < 2; t++) rt_dist_bcast(cap.a[t], (size_t)cap.n[t] * 4, 0);
            rt_dist_bcast(&cap.val_acc, sizeof cap.val_acc, 0);
        } else {
            ir_space ssp = *sp;
            ssp.layers = pl.layers[s];
            if (ir_space_eval_reductions(sp, pl.layers[s], ssp.reduce_at, err, errlen)) goto out_lines;
            ssp.search.seed = sp->search.seed + (uint64_t)s; /* each stage its own weights and data order */
            ir_supernet_opts so = {.cols = {cols[0], cols[1]}, .n_cols = {pl.ops[0][s], pl.ops[1][s]},
                                   .skip_dropout = pl.drop[s]};
            sr_options so2 = *o;
            so2.out_dir = sdir;
            so2.resume = rt_dist_sum_int(writer && exists(sdir, "checkpoint.dtns")) > 0;
            so2.supernet = &so;
            so2.final_alpha = on_final_alpha;
            so2.final_alpha_ctx = &cap;
            sr_result r2;
            if (sr_cnn_search(&ssp, &so2, &r2, err, errlen)) goto out_lines;
            res->steps += r2.steps;
            if (r2.loss_peak > res->loss_peak) {
                res->loss_peak = r2.loss_peak;
                res->loss_peak_step = r2.loss_peak_step;
            }
            if (r2.stopped) {
                res->stopped = 1;
                res->seconds = sr_now() - t0;
                rc = 0;
                goto out_lines;
            }
            if (!cap.got) {
                sr_fail(err, errlen, "p-darts: stage %d ended without its alpha", s + 1);
                goto out_lines;
            }
            cap.val_acc = (float)r2.val_acc;
            cap.seconds = r2.seconds;
            if (sr_dist_root_rc(writer ? write_stage_file(sfile, &cap, ccols, err, errlen) : 0, err, errlen)) goto out_lines;
        }
        res->val_acc = cap.val_acc;
        if (lines) {
            stage_line(lines, sp, &pl, s, ccols, cap.val_acc, cap.seconds);
            fflush(lines);
        }
        if (s + 1 < pl.n) {
            for (int t = 0; t < 2; t++) {
                prune(cells[t], cols[t], pl.ops[t][s], cap.a[t], pl.ops[t][s + 1], next[t]);
                memcpy(cols[t], next[t], (size_t)E[t] * pl.ops[t][s + 1] * sizeof(int));
            }
        }
    }
    /* the final genotype: the last stage's weights, skips capped */
    int last = pl.n - 1;
    const int *fc[2] = {cols[0], cols[1]};
    const int nc[2] = {pl.ops[0][last], pl.ops[1][last]};
    const float *fa[2] = {cap.a[0], cap.a[1]};
    if (sr_pdarts_derive(sp, fc, nc, fa, &res->genotype) < 0) {
        sr_fail(err, errlen, "out of memory");
        goto out_lines;
    }
    float *full[2] = {malloc((size_t)E[0] * cells[0]->n_ops * 4), malloc((size_t)E[1] * cells[1]->n_ops * 4)};
    if (full[0] && full[1]) {
        for (int t = 0; t < 2; t++) sr_alpha_expand(cells[t], cols[t], nc[t], cap.a[t], full[t]);
        rc = writer ? sr_genotype_write_files(sp, &res->genotype, full[0], full[1], o->out_dir, err, errlen) : 0;
    } else
        sr_fail(err, errlen, "out of memory");
    free(full[0]);
    free(full[1]);
    if (!rc && writer)
        rc = concat_logs(o->out_dir, pl.n, "metrics.jsonl", err, errlen) ||
                     concat_logs(o->out_dir, pl.n, "alpha.jsonl", err, errlen)
                 ? -1
                 : 0;
    rc = sr_dist_root_rc(rc, err, errlen);
    res->seconds = sr_now() - t0;
out_lines:
    if (lines) fclose(lines);
out:
    for (int t = 0; t < 2; t++) {
        free(cols[t]);
        free(next[t]);
        free(cap.a[t]);
    }
    return rc;
}
