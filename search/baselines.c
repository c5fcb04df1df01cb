/* baselines.c — the DARTS paper's baselines over the same space and data split as the
 * gradient search: random search and regularised (aging) evolution.
 *
 * A candidate is a discrete genotype of the space (the same shape DARTS derives: per node
 * min(k, edges) distinct inputs, each with a non-'none' op). It is trained from scratch as
 * an evaluation network of the SEARCH size (C and layers of the network, not of `train`)
 * with the search settings (batch, SGD, cosine schedule, clipping, augmentation) for
 * `candidate_epochs` epochs on the weight split, then scored by accuracy on the
 * architecture split — the split DARTS fits alpha on — with batch statistics in BN, as
 * DARTS scores its supernet there (after a few dozen steps the running statistics still
 * lag the weights, and scores with them are close to chance).
 *
 *   random search: candidates genotypes sampled uniformly; the best score wins.
 *   evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
 *     Search", AAAI 2019): the first `population` candidates are random; then each cycle
 *     draws `sample` members of the population uniformly with replacement, mutates the
 *     best of them (one cell, one node, one edge: a different op, or a different input
 *     state) into a child, trains and scores it, appends it and retires the oldest member.
 *     The best candidate ever scored wins, as in the paper.
 *
 * Every random choice of candidate k comes from a generator seeded by (seed, k), and the
 * population is a function of the scored history, so a resumed search replays the history
 * from the candidates' result files and continues exactly where it stopped.
 *
 * Data-parallel jobs (mpirun, docs/SCALING.md): the candidates are trained in rounds of N,
 * candidate k by rank k mod N, each as a run of one process (rt_dist_set_local); after a
 * round every rank receives the round's scores. Random search is the same for every N.
 * Evolution draws candidate k from the history scored before its round (its first k - k
 * mod N candidates), as the paper's asynchronous workers draw from the population as it
 * is when they become free: with N = 1 that is the sequential algorithm; for N > 1 the
 * run depends on N, and is deterministic for a fixed N. The rl controller likewise (its
 * section below). With --objective mnas each candidate's latency is timed by the rank
 * that trained it, while the other ranks train theirs (on one host, a loaded machine). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller.h"
#include "genotype.h"
#include "runtime/dist.h"
#include "search.h"
#include "train/checkpoint.h"
#include "train/common.h"
#include "train/train.h"

#define MAX_CANDIDATES 10000

void sr_baseline_defaults(sr_options *o) {
    /* Sized so that a baseline costs about what a first-order DARTS search of the same
     * space and epochs costs on a CPU (docs/RESULTS.md states the measured seconds). */
    if (o->candidate_epochs <= 0) o->candidate_epochs = 2;
    if (o->candidates <= 0) o->candidates = 6;
    if (o->population <= 0) o->population = 3;
    if (o->sample <= 0) o->sample = 2;
    sr_ctl_opts co = sr_ctl_opts_default();
    if (o->children <= 0) o->children = 2;
    if (o->controller_hidden <= 0) o->controller_hidden = co.hidden;
    if (!(o->controller_lr > 0)) o->controller_lr = co.lr;
    if (!(o->entropy_weight > 0)) o->entropy_weight = co.entropy_weight;
    if (!(o->baseline_decay > 0)) o->baseline_decay = co.baseline_decay;
}

/* ---- random choices ------------------------------------------------------------------------ */

typedef struct brng {
    uint64_t s;
} brng;

static uint64_t brng_next(brng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int brng_below(brng *r, int n) { return (int)(brng_next(r) % (uint64_t)n); }

static brng brng_for(uint64_t seed, int k) {
    brng r = {seed * 0x100000001b3ull ^ (uint64_t)(k + 1) * 0xd6e8feb86659fd93ull};
    brng_next(&r);
    return r;
}

/* Non-'none' op indices of a cell. */
static int real_ops(const ir_cell *c, int *ops) {
    int n = 0;
    for (int o = 0; o < c->n_ops; o++)
        if (c->ops[o].kind != IR_CAND_NONE) ops[n++] = o;
    return n;
}

/* Allowed input states of node i. */
static int node_sources(const ir_cell *c, int i, int *src) {
    int n = 0;
    for (int j = 0; j < c->n_inputs + i; j++)
        if ((c->edges[i] >> j) & 1) src[n++] = j;
    return n;
}

static void sort_edges(ir_geno_cell *g, int i) {
    for (int a = 1; a < g->n_edges[i]; a++)
        for (int b = a; b > 0 && g->e[i][b].src < g->e[i][b - 1].src; b--) {
            ir_geno_edge t = g->e[i][b];
            g->e[i][b] = g->e[i][b - 1];
            g->e[i][b - 1] = t;
        }
}

static void random_cell(const ir_cell *c, brng *r, ir_geno_cell *g) {
    memset(g, 0, sizeof *g);
    g->n_nodes = c->n_nodes;
    int ops[IR_MAX_CANDS], nops = real_ops(c, ops);
    for (int i = 0; i < c->n_nodes; i++) {
        int src[2 + IR_MAX_NODES], ns = node_sources(c, i, src);
        int keep = c->k_keep < ns ? c->k_keep : ns;
        if (keep > IR_MAX_KEEP) keep = IR_MAX_KEEP;
        for (int k = 0; k < keep; k++) { /* partial Fisher-Yates: distinct inputs */
            int pick = k + brng_below(r, ns - k);
            int t = src[k];
            src[k] = src[pick];
            src[pick] = t;
            g->e[i][k].src = src[k];
            g->e[i][k].op = ops[brng_below(r, nops)];
        }
        g->n_edges[i] = keep;
        sort_edges(g, i);
    }
}

/* One mutation of one cell of gt; returns its kind ("op", "input", or "none" when the
 * space leaves nothing to change). */
static const char *mutate(const ir_space *sp, ir_genotype *gt, brng *r) {
    int which = brng_below(r, 2);
    const ir_cell *c = which ? &sp->reduce : &sp->normal;
    ir_geno_cell *g = which ? &gt->reduce : &gt->normal;
    int ops[IR_MAX_CANDS], nops = real_ops(c, ops);
    int want_input = brng_below(r, 2);
    for (int attempt = 0; attempt < 2; attempt++, want_input = !want_input) {
        /* nodes where this kind of mutation can change something */
        int cand_nodes[IR_MAX_NODES], nn = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            int src[2 + IR_MAX_NODES], ns = node_sources(c, i, src);
            if (g->n_edges[i] > 0 && (want_input ? ns > g->n_edges[i] : nops > 1)) cand_nodes[nn++] = i;
        }
        if (!nn) continue;
        int i = cand_nodes[brng_below(r, nn)], k = brng_below(r, g->n_edges[i]);
        if (!want_input) {
            int cur = g->e[i][k].op, o;
            do o = ops[brng_below(r, nops)];
            while (o == cur);
            g->e[i][k].op = o;
            return "op";
        }
        int src[2 + IR_MAX_NODES], ns = node_sources(c, i, src), free_src[2 + IR_MAX_NODES], nf = 0;
        for (int s = 0; s < ns; s++) {
            int used = 0;
            for (int e = 0; e < g->n_edges[i]; e++) used |= g->e[i][e].src == src[s];
            if (!used) free_src[nf++] = src[s];
        }
        g->e[i][k].src = free_src[brng_below(r, nf)];
        sort_edges(g, i);
        return "input";
    }
    return "none";
}

/* ---- candidates ------------------------------------------------------------------------------ */

typedef struct cand {
    ir_genotype gt;
    double val_acc, val_loss, seconds;
    double latency_ms, reward; /* latency: -1 unless measured; reward: the objective (the accuracy by default) */
    int parent;
    char how[16];
} cand;

/* The evaluation network at search size, trained with the search settings. */
static void candidate_space(const ir_space *sp, int epochs, uint64_t seed, ir_space *cs) {
    *cs = *sp;
    cs->train = sp->search;
    cs->train.epochs = epochs;
    cs->train.seed = seed;
    cs->train.cutout = 0;
    cs->train.drop_path = 0;
    cs->train.aux_weight = 0;
    cs->train.subset = 0;
    cs->train.test_subset = 0;
    cs->train_C = sp->C;
    cs->train_layers = sp->layers;
    cs->scale_phi = 0; /* the search's size, not a scaled retraining network */
    cs->train_in_h = cs->train_in_w = 0;
}

static int read_result(const char *path, cand *c, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return sr_fail(err, errlen, "%s:%d: %s", path, je.line, je.text);
    const char *how = NULL;
    int rc = json_unpack_ex(root, &je, 0, "{s:F, s:F, s:F, s:i, s:s}", "val_acc", &c->val_acc, "val_loss", &c->val_loss,
                            "seconds", &c->seconds, "parent", &c->parent, "mutation", &how);
    if (rc) sr_fail(err, errlen, "%s: %s", path, je.text);
    else snprintf(c->how, sizeof c->how, "%s", how);
    /* written since the objectives: absent in older files (accuracy: reward = val_acc) */
    json_t *lat = json_object_get(root, "latency_ms"), *rw = json_object_get(root, "reward");
    c->latency_ms = json_is_number(lat) ? json_number_value(lat) : -1;
    c->reward = json_is_number(rw) ? json_number_value(rw) : c->val_acc;
    json_decref(root);
    return rc ? -1 : 0;
}

static int write_result(const char *path, const cand *c, char *err, size_t errlen) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "{\"val_acc\":%.17g,\"val_loss\":%.9g,\"seconds\":%.3f,\"parent\":%d,\"mutation\":\"%s\","
                     "\"latency_ms\":%.17g,\"reward\":%.17g}\n",
                     c->val_acc, c->val_loss, c->seconds, c->parent, c->how, c->latency_ms, c->reward);
    return sr_write_file_atomic(path, buf, (size_t)n, err, errlen);
}

static int exists(const char *dir, const char *name) {
    char p[4300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Trains (or resumes, or finds finished) candidate k and fills its scores. Returns 1 when
 * stopped by the caller's stop request, 0 when scored, -1 on error. */
static int run_candidate(const ir_space *sp, const sr_options *o, int k, int nw, int nv, cand *c, char *err,
                         size_t errlen) {
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/candidates/%03d", o->out_dir, k);
    snprintf(path, sizeof path, "%s/result.json", dir);
    if (access(path, F_OK) == 0) {
        ir_genotype want = c->gt;
        char gpath[4300];
        snprintf(gpath, sizeof gpath, "%s/genotype.json", dir);
        if (sr_genotype_read_json(sp, gpath, &c->gt, err, errlen) || read_result(path, c, err, errlen)) return -1;
        if (memcmp(&want, &c->gt, sizeof want))
            return sr_fail(err, errlen, "%s: candidate %d differs from the one this search would draw (the space or seed changed?)",
                        dir, k);
        if (o->objective == SR_OBJ_MNAS && !(c->latency_ms > 0))
            return sr_fail(err, errlen, "%s: candidate %d was scored without a latency (another objective?)", dir, k);
        return 0;
    }
    if (sr_mkdir_p(dir, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/genotype.json", dir);
    if (sr_genotype_write_json(sp, &c->gt, NULL, NULL, path, err, errlen)) return -1;
    ir_space cs;
    candidate_space(sp, o->candidate_epochs, sp->search.seed * 1000003ull + (uint64_t)k, &cs);
    double t0 = sr_now();
    char model[4300];
    snprintf(model, sizeof model, "%s/model.dtns", dir);
    if (!exists(dir, "model.dtns")) {
        sr_train_opts to = sr_train_opts_default();
        to.out_dir = dir;
        to.device = o->device;
        to.resume = exists(dir, "train_checkpoint.dtns");
        to.stop = o->stop;
        /* tests: stop candidate number stop_after_steps after its first training step */
        to.stop_after_steps = o->stop_after_steps > 0 && k == o->stop_after_steps ? 1 : 0;
        to.data_begin = 0;
        to.data_count = nw;
        to.progress = o->progress;
        to.progress_ctx = o->progress_ctx;
        sr_train_result tr;
        if (sr_cnn_train(&cs, &c->gt, &to, &tr, err, errlen)) return -1;
        if (tr.stopped) return 1;
    }
    sr_eval_result ev;
    if (sr_evaluate_range(&cs, &c->gt, model, o->device, 1, nw, nv, 1, &ev, err, errlen)) return -1;
    c->val_acc = ev.acc;
    c->val_loss = ev.loss;
    c->latency_ms = -1;
    c->reward = ev.acc;
    if (o->objective == SR_OBJ_MNAS) {
        if (!o->latency) return sr_fail(err, errlen, "the mnas objective needs a latency measurement (sr_options.latency)");
        if (o->latency(o->latency_ctx, &cs, &c->gt, model, dir, &c->latency_ms, err, errlen)) return -1;
        c->reward = sr_mnas_reward(ev.acc, c->latency_ms, o->target_ms);
        if (!isfinite(c->reward))
            return sr_fail(err, errlen, "%s: latency %g ms gives no reward (target %g ms)", dir, c->latency_ms, o->target_ms);
    }
    c->seconds = sr_now() - t0;
    snprintf(path, sizeof path, "%s/result.json", dir);
    return write_result(path, c, err, errlen);
}

static int best_of(const cand *c, const int *idx, int n) {
    int b = idx[0];
    for (int i = 1; i < n; i++)
        if (c[idx[i]].reward > c[b].reward || (c[idx[i]].reward == c[b].reward && idx[i] < b)) b = idx[i];
    return b;
}

/* Draws candidate k's genotype from the history c[0..known) (known = k alone; in a
 * data-parallel job, the candidates scored before k's round). */
static void draw(const ir_space *sp, const sr_options *o, cand *c, int k, int known) {
    brng r = brng_for(sp->search.seed, k);
    cand *n = &c[k];
    memset(n, 0, sizeof *n);
    n->parent = -1;
    if (o->strategy == SR_RANDOM || known < o->population) {
        random_cell(&sp->normal, &r, &n->gt.normal);
        random_cell(&sp->reduce, &r, &n->gt.reduce);
        snprintf(n->how, sizeof n->how, "random");
        return;
    }
    /* aging evolution: the population is the last `population` candidates */
    int pop0 = known - o->population, pick[64] = {0}, ns = o->sample < 64 ? o->sample : 64;
    for (int s = 0; s < ns; s++) pick[s] = pop0 + brng_below(&r, o->population);
    n->parent = best_of(c, pick, ns);
    n->gt = c[n->parent].gt;
    snprintf(n->how, sizeof n->how, "%s", mutate(sp, &n->gt, &r));
}

/* ---- the RL search: candidates drawn by the controller ----------------------------------------
 * Candidate k is sampled with a seed drawn from (seed, k) by the controller as it stands
 * after floor(k / children) steps; each step takes the scores of its `children`
 * candidates. The controller's state is thus a function of the scored history, and a
 * resumed search replays it from the candidates' result files (the rewards are read back
 * at full precision), bit for bit.
 *
 * Data-parallel jobs: every rank holds the same controller and draws a round's N
 * candidates with it as it stands after the steps the earlier rounds completed (as
 * evolution draws from the history scored before the round: the asynchronous workers of
 * Zoph et al. 2018); after the round every rank takes the round's rewards in candidate
 * order, so the replicas stay identical. With N = 1 this is the sequential algorithm; for
 * N > 1 the run depends on N and is deterministic for a fixed N. */
typedef struct rl_state {
    sr_ctl *ctl;
    int T, children;
    int *actions; /* a row of T per candidate (a round may draw past the next step's children) */
    double *rewards;
} rl_state;

static int rl_open(const ir_space *sp, const sr_options *o, rl_state *rl, char *err, size_t errlen) {
    memset(rl, 0, sizeof *rl);
    if (o->strategy != SR_RL) return 0;
    sr_ctl_opts co = sr_ctl_opts_default();
    co.hidden = o->controller_hidden;
    co.lr = o->controller_lr;
    co.entropy_weight = o->entropy_weight;
    co.baseline_decay = o->baseline_decay;
    co.seed = sp->search.seed;
    rl->ctl = sr_ctl_new(sp, &co, err, errlen);
    if (!rl->ctl) return -1;
    rl->T = sr_ctl_num_tokens(rl->ctl);
    rl->children = o->children;
    rl->actions = malloc((size_t)o->candidates * (size_t)rl->T * sizeof *rl->actions);
    rl->rewards = malloc((size_t)o->children * sizeof *rl->rewards);
    if (!rl->actions || !rl->rewards) return sr_fail(err, errlen, "out of memory");
    return 0;
}

static void rl_close(rl_state *rl) {
    sr_ctl_free(rl->ctl);
    free(rl->actions);
    free(rl->rewards);
}

static int rl_draw(const ir_space *sp, rl_state *rl, cand *c, int k, char *err, size_t errlen) {
    brng r = brng_for(sp->search.seed, k);
    uint64_t seed = brng_next(&r);
    memset(c, 0, sizeof *c);
    c->parent = -1;
    snprintf(c->how, sizeof c->how, "controller");
    return sr_ctl_sample(rl->ctl, 1, &seed, 0, rl->actions + (size_t)k * (size_t)rl->T, &c->gt, err, errlen);
}

/* Records candidate k's reward; a controller step after every `children` of them. */
static int rl_observe(rl_state *rl, int k, double reward, char *err, size_t errlen) {
    rl->rewards[k % rl->children] = reward;
    if (k % rl->children != rl->children - 1) return 0;
    const int *acts = rl->actions + (size_t)(k + 1 - rl->children) * (size_t)rl->T; /* its children's rows */
    return sr_ctl_update(rl->ctl, rl->children, acts, rl->rewards, err, errlen);
}

/* OUT/controller.dtns: the controller's state after the last step. */
static int rl_save(const rl_state *rl, const char *out_dir, char *err, size_t errlen) {
    char path[4300];
    snprintf(path, sizeof path, "%s/controller.dtns", out_dir);
    sr_ckpt_entry e[SR_CTL_CKPT_N];
    sr_ctl_ckpt_entries(rl->ctl, e);
    return sr_ckpt_save(path, NULL, e, SR_CTL_CKPT_N, err, errlen);
}

/* The settings that decide a baseline's result (train/checkpoint.h's list, the search's
 * epochs left out: candidates train for candidate_epochs; then population, sample and
 * candidate_epochs), in OUT/baseline_settings.dtns: written on a fresh start (and on the
 * resume of a run made before the file existed), compared on a resume. --candidates may
 * change: more candidates continue the same sequence. */
static int baseline_settings(const ir_space *sp, const sr_options *o, char *err, size_t errlen);

/* The run directory (rank 0's): created, checked, the space and the settings written. */
static int baseline_setup(const ir_space *sp, const sr_options *o, const char *log, char *err, size_t errlen) {
    if (sr_mkdir_p(o->out_dir, err, errlen)) return -1;
    if (!o->resume && access(log, F_OK) == 0)
        return sr_fail(err, errlen, "%s already holds a search (candidates.jsonl); pass --resume to continue it or choose another --out",
                    o->out_dir);
    if (!o->resume && o->space_src) {
        char path[4300];
        snprintf(path, sizeof path, "%s/space.dartsc", o->out_dir);
        if (sr_write_file_atomic(path, o->space_src, o->space_src_len, err, errlen)) return -1;
    }
    return baseline_settings(sp, o, err, errlen);
}

static int baseline_settings(const ir_space *sp, const sr_options *o, char *err, size_t errlen) {
    char path[4300];
    snprintf(path, sizeof path, "%s/baseline_settings.dtns", o->out_dir);
    int evo = o->strategy == SR_EVOLUTION; /* random search reads no population or sample */
    int64_t now[SR_SETTINGS_N], extra[3] = {evo ? o->population : 0, evo ? o->sample : 0, o->candidate_epochs};
    /* rl: children, controller units, lr, entropy weight, baseline decay (floats by their bits) */
    int64_t rl[5] = {0}, rl_saved[5] = {SR_CKPT_ABSENT};
    /* the objective and its target (bits of the double); absent in older files: accuracy */
    int64_t obj[2] = {o->objective, 0}, obj_saved[2] = {SR_OBJ_ACCURACY, 0};
    if (o->objective == SR_OBJ_MNAS) memcpy(&obj[1], &o->target_ms, sizeof obj[1]);
    if (o->strategy == SR_RL) {
        float fs[3] = {o->controller_lr, o->entropy_weight, o->baseline_decay};
        rl[0] = o->children;
        rl[1] = o->controller_hidden;
        for (int i = 0; i < 3; i++) {
            uint32_t b;
            memcpy(&b, &fs[i], sizeof b);
            rl[2 + i] = b;
        }
    }
    sr_ckpt_settings(&sp->search, (int)o->strategy, 0, 0, now);
    now[0] = 0; /* epochs: not read by the baselines */
    if (o->resume && access(path, F_OK) == 0) {
        rt_tf_file *f = rt_tf_read(path, err, errlen);
        if (!f) return -1;
        int64_t saved[SR_SETTINGS_N], sx[3];
        int rc = sr_get_i64s(f, "meta/settings", saved, SR_SETTINGS_N, path, err, errlen);
        if (!rc) rc = sr_get_i64s(f, "meta/baseline", sx, 3, path, err, errlen);
        if (!rc && o->strategy == SR_RL) rc = sr_get_i64s(f, "meta/rl", rl_saved, 5, path, err, errlen);
        if (!rc && rt_tf_find(f, "meta/objective")) rc = sr_get_i64s(f, "meta/objective", obj_saved, 2, path, err, errlen);
        rt_tf_free(f);
        if (!rc) rc = sr_ckpt_check_settings(path, saved, now, err, errlen);
        static const char *names[3] = {"population", "sample", "candidate-epochs"};
        for (int i = 0; i < 3 && !rc; i++)
            if (sx[i] != extra[i])
                rc = sr_fail(err, errlen, "cannot resume: %s was written with other settings: --%s %lld (now %lld); this "
                             "changes the result, so resume with the run's settings or start a new run in another --out",
                             path, names[i], (long long)sx[i], (long long)extra[i]);
        if (!rc && memcmp(obj, obj_saved, sizeof obj))
            rc = sr_fail(err, errlen, "cannot resume: %s was written with another --objective or --target-latency; this changes "
                         "the result, so resume with the run's settings or start a new run in another --out", path);
        if (!rc && o->strategy == SR_RL && memcmp(rl, rl_saved, sizeof rl))
            rc = sr_fail(err, errlen, "cannot resume: %s was written with other controller settings (--children, "
                         "--controller-hidden, its learning rate, entropy weight or baseline decay); this changes the "
                         "result, so resume with the run's settings or start a new run in another --out", path);
        return rc;
    }
    rt_tf_writer *w = rt_tf_open_write(path, err, errlen);
    if (!w) return -1;
    if (sr_put_i64s(w, "meta/settings", now, SR_SETTINGS_N) || sr_put_i64s(w, "meta/baseline", extra, 3) ||
        (o->strategy == SR_RL && sr_put_i64s(w, "meta/rl", rl, 5)) || sr_put_i64s(w, "meta/objective", obj, 2)) {
        const char *why = rt_tf_writer_error(w);
        sr_fail(err, errlen, "%s: writing failed%s%s", path, why ? ": " : "", why ? why : "");
        rt_tf_abort_write(w);
        return -1;
    }
    return rt_tf_close_write(w, err, errlen);
}

/* The winner's genotype.json and cell pictures (rank 0's run directory). */
static int write_best(const ir_space *sp, const sr_options *o, const ir_genotype *gt, char *err, size_t errlen) {
    char path[4300];
    snprintf(path, sizeof path, "%s/genotype.json", o->out_dir);
    if (sr_genotype_write_json(sp, gt, NULL, NULL, path, err, errlen)) return -1;
    const char *names[2] = {"normal", "reduce"};
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gcs[2] = {&gt->normal, &gt->reduce};
    for (int t = 0; t < 2; t++) {
        snprintf(path, sizeof path, "%s/%s.dot", o->out_dir, names[t]);
        FILE *d = fopen(path, "w");
        if (!d) return sr_fail(err, errlen, "%s: %s", path, strerror(errno));
        sr_genotype_dot(cells[t], gcs[t], names[t], d);
        fclose(d);
    }
    return 0;
}

int sr_baseline_search(const ir_space *sp, const sr_options *o_in, sr_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    sr_options o = *o_in;
    sr_baseline_defaults(&o);
    double t0 = sr_now();
    if (sp->kind != IR_SPACE_CNN) return sr_fail(err, errlen, "random search, evolution and rl support convolutional spaces only");
    if (o.candidates > MAX_CANDIDATES) return sr_fail(err, errlen, "at most %d candidates", MAX_CANDIDATES);
    if (o.strategy == SR_EVOLUTION && (o.population < 2 || o.population > o.candidates || o.sample > o.population))
        return sr_fail(err, errlen, "evolution needs 2 <= population (%d) <= candidates (%d) and sample (%d) <= population",
                    o.population, o.candidates, o.sample);
    char log[4200];
    snprintf(log, sizeof log, "%s/candidates.jsonl", o.out_dir);
    if (sr_dist_root_rc(sr_dist_writer() ? baseline_setup(sp, &o, log, err, errlen) : 0, err, errlen)) return -1;
    /* the DARTS split of the search's images: weights on the first part, scores on the rest */
    rt_dataset full;
    if (sr_data_load(sp, 1, &full, err, errlen)) return -1;
    int n = full.n;
    rt_dataset_free(&full);
    if (sp->search.subset > 0 && sp->search.subset < n) n = sp->search.subset;
    int nw = (int)floor((double)n * sp->search.train_portion), nv = n - nw;
    if (nw < sp->search.batch || nv < 1)
        return sr_fail(err, errlen, "the %d training images split %d/%d cannot fill batches of %d", n, nw, nv, sp->search.batch);

    cand *c = calloc((size_t)o.candidates, sizeof *c);
    if (!c) return sr_fail(err, errlen, "out of memory");
    int rc = -1;
    rl_state rl;
    FILE *f = NULL; /* rewritten from the candidates' result files on resume */
    if (rl_open(sp, &o, &rl, err, errlen)) goto out;
    if (sr_dist_writer() && !(f = fopen(log, "w"))) sr_fail(err, errlen, "%s: %s", log, strerror(errno));
    if (sr_dist_root_rc(sr_dist_writer() && !f ? -1 : 0, err, errlen)) goto out;
    const int ranks = rt_dist_size(), me = rt_dist_rank();
    for (int k0 = 0; k0 < o.candidates; k0 += ranks) {
        /* a round: candidate k0 + r on rank r, each trained by one process */
        int kn = k0 + ranks < o.candidates ? k0 + ranks : o.candidates;
        for (int k = k0; k < kn; k++) { /* one process: k0 = k */
            if (!rl.ctl) draw(sp, &o, c, k, k0);
            else if (rl_draw(sp, &rl, &c[k], k, err, errlen)) /* every rank: the same controller, the same draws */
                goto out;
        }
        int st = 0;
        double mine[6] = {0, 0, 0, 0, 0, 0};
        if (k0 + me < kn) {
            cand *m = &c[k0 + me];
            rt_dist_set_local(1);
            st = run_candidate(sp, &o, k0 + me, nw, nv, m, err, errlen);
            rt_dist_set_local(0);
            mine[0] = st, mine[1] = m->val_acc, mine[2] = m->val_loss, mine[3] = m->seconds, mine[4] = m->latency_ms;
            mine[5] = m->reward;
        }
        const double *all = rt_dist_allgather_f64(mine, 6);
        int failed = -1, stopped = 0;
        for (int r = 0; r < ranks && k0 + r < kn; r++) {
            const double *a = all + 6 * r;
            if (a[0] < 0 && failed < 0) failed = r;
            stopped |= a[0] > 0;
            c[k0 + r].val_acc = a[1];
            c[k0 + r].val_loss = a[2];
            c[k0 + r].seconds = a[3];
            c[k0 + r].latency_ms = a[4];
            c[k0 + r].reward = a[5];
        }
        if (failed >= 0) {
            if (st >= 0) sr_fail(err, errlen, "rank %d failed on candidate %d (its message is above)", failed, k0 + failed);
            goto out;
        }
        if (stopped) {
            res->stopped = 1;
            res->steps = k0;
            rc = 0;
            goto out;
        }
        for (int k = k0; k < kn && rl.ctl; k++) /* the controller learns from the round's scores, in order */
            if (rl_observe(&rl, k, c[k].reward, err, errlen)) goto out;
        for (int k = k0; k < kn && sr_dist_writer(); k++) { /* rank 0 logs the round */
            char *gj = sr_genotype_to_json(sp, &c[k].gt, NULL, NULL);
            for (char *q = gj; q && *q; q++)
                if (*q == '\n') *q = ' ';
            fprintf(f, "{\"candidate\":%d,\"parent\":%d,\"mutation\":\"%s\",\"val_acc\":%.6f,\"val_loss\":%.6f,\"latency_ms\":%.6g,"
                    "\"reward\":%.6f,\"seconds\":%.2f,\"genotype\":%s}\n",
                    k, c[k].parent, c[k].how, c[k].val_acc, c[k].val_loss, c[k].latency_ms, c[k].reward, c[k].seconds,
                    gj ? gj : "null");
            fflush(f);
            free(gj);
            if (o.progress) {
                sr_progress pr = {.epoch = k, .epochs = o.candidates, .step = c[k].parent, .val_acc = c[k].val_acc,
                                  .val_loss = c[k].val_loss, .train_loss = NAN, .train_acc = NAN, .candidate_end = 1};
                o.progress(o.progress_ctx, &pr);
            }
        }
    }
    int all[MAX_CANDIDATES] = {0};
    for (int k = 0; k < o.candidates; k++) all[k] = k;
    int b = best_of(c, all, o.candidates);
    res->genotype = c[b].gt;
    res->val_acc = c[b].val_acc;
    res->steps = o.candidates;
    rc = sr_dist_writer() ? write_best(sp, &o, &res->genotype, err, errlen) : 0;
    if (!rc && rl.ctl && sr_dist_writer()) rc = rl_save(&rl, o.out_dir, err, errlen);
    rc = sr_dist_root_rc(rc, err, errlen);
out:
    if (f) fclose(f);
    rl_close(&rl);
    free(c);
    res->seconds = sr_now() - t0;
    return rc;
}
