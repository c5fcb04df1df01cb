/* enas.c — ENAS (Pham et al. 2018, "Efficient Neural Architecture Search via Parameter
 * Sharing") over a convolutional space: the RL search's controller (controller.c), its
 * children sharing the weights of the DARTS supernet.
 *
 * A child is run on the supernet by setting each alpha row to a one-hot choice: the
 * chosen op's entry 0 and the rest SR_ENAS_OFF, so that softmax gives exactly 1 and 0
 * (exp(-10^4) is 0 in float); an edge the child does not use puts its 1 on 'none' (which
 * the space must offer). The mixed ops then compute exactly the child's cell on the
 * shared weights (every candidate still runs: a step costs about a DARTS step).
 *
 * The DARTS loop of cnn.c runs with these hooks: per minibatch, a controller step first
 * (`children` children sampled, each scored by its accuracy on the same batch of the
 * architecture split, one REINFORCE step), then a weight step (SGD, the search settings)
 * on a batch of the weight split for one freshly sampled child. The derived genotype is
 * the controller's most probable one (greedy decoding), scored on the architecture split
 * at each epoch's end. The controller's state goes into the loop's checkpoint; every
 * sample's seed is a function of (seed, global step), so a resumed search is the
 * uninterrupted one.
 *
 * Data-parallel jobs (mpirun, docs/SCALING.md): every rank holds the same controller and
 * samples the same children (the seeds are the same); a child's reward is its accuracy on
 * the whole batch, each process scoring its part and the counts summed over the ranks, so
 * the controller steps stay the same on every rank; the weight step's gradients are
 * averaged by cnn.c's loop as for DARTS. Rank 0 writes the checkpoint with the controller
 * in it; a resume broadcasts it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"
#include "search.h"
#include "runtime/dist.h"
#include "runtime/runtime.h"
#include "train/checkpoint.h"
#include "train/common.h"


typedef struct enas {
    const ir_space *sp;
    sr_ctl *ctl;
    int T, children, none[2];
    int *actions;
    double *rewards;
    ir_genotype *gts;
    float *alpha_host; /* the arch group on the host (made at the first child) */
    int64_t na;
    uint64_t seed;
    sr_ckpt_entry ckpt[SR_CTL_CKPT_N];
} enas;

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sr_enas_child_alpha(const ir_space *sp, const ir_genotype *gt, float *an, float *ar) {
    const ir_cell *cells[2] = {&sp->normal, &sp->reduce};
    const ir_geno_cell *gc[2] = {&gt->normal, &gt->reduce};
    float *out[2] = {an, ar};
    for (int ci = 0; ci < 2; ci++) {
        const ir_cell *c = cells[ci];
        float *a = out[ci];
        int none = ir_cell_none_index(c);
        for (int r = 0; r < ir_cell_num_edges(c); r++) {
            int node, src, op = none;
            ir_cell_edge(c, r, &node, &src);
            for (int k = 0; k < gc[ci]->n_edges[node]; k++)
                if (gc[ci]->e[node][k].src == src) op = gc[ci]->e[node][k].op;
            for (int o = 0; o < c->n_ops; o++) a[(int64_t)r * c->n_ops + o] = o == op ? 0.f : SR_ENAS_OFF;
        }
    }
}

/* Sets the plan's alpha to the one-hot rows of genotype gt. */
static int set_child(enas *e, rt_plan *p, const ir_net *net, const ir_genotype *gt, char *err, size_t errlen) {
    rt_group ga = rt_plan_group(p, IR_ROLE_ARCH);
    if (!e->alpha_host) {
        e->na = ga.n;
        if (!(e->alpha_host = malloc((size_t)e->na * sizeof *e->alpha_host))) return sr_fail(err, errlen, "out of memory");
    }
    for (int64_t i = 0; i < e->na; i++) e->alpha_host[i] = SR_ENAS_OFF;
    sr_enas_child_alpha(e->sp, gt, e->alpha_host + ((float *)rt_node_data(p, net->alpha[0]) - ga.data),
                        e->alpha_host + ((float *)rt_node_data(p, net->alpha[1]) - ga.data));
    rt_backend *be = rt_plan_backend(p);
    be->upload(be, ga.data, e->alpha_host, (size_t)e->na * sizeof(float));
    return 0;
}

static int before_weight_step(void *ctx, rt_plan *p, const ir_net *net, int64_t g, char *err, size_t errlen) {
    enas *e = ctx;
    uint64_t s = mix(e->seed, 2 * (uint64_t)g);
    if (sr_ctl_sample(e->ctl, 1, &s, 0, e->actions, e->gts, err, errlen)) return -1;
    return set_child(e, p, net, &e->gts[0], err, errlen);
}

static int arch_step(void *ctx, rt_plan *p, const ir_net *net, const float *x, const int32_t *y, int64_t g,
                     float *val_loss, float *val_acc, char *err, size_t errlen) {
    enas *e = ctx;
    uint64_t seeds[64];
    for (int m = 0; m < e->children; m++) seeds[m] = mix(e->seed, 2 * (uint64_t)g + 1) + (uint64_t)m;
    if (sr_ctl_sample(e->ctl, e->children, seeds, 0, e->actions, e->gts, err, errlen)) return -1;
    const ir_node *xi = ir_graph_node(rt_plan_graph(p), net->images);
    size_t bi = (size_t)ir_node_numel(xi) * sizeof(float), bl = (size_t)xi->shape[0] * sizeof(int32_t);
    rt_set_input(p, net->images, x, bi);
    rt_set_input(p, net->labels, y, bl);
    double part[2 * 64]; /* per child: this process's loss and correct count */
    for (int m = 0; m < e->children; m++) {
        if (set_child(e, p, net, &e->gts[m], err, errlen)) return -1;
        part[2 * m] = rt_forward(p, 1); /* batch statistics in BN, as the supernet is scored */
        part[2 * m + 1] = (double)rt_last_correct(p);
    }
    /* data-parallel: each process scored its part of the batch; every rank takes the
       whole batch's rewards, so the controllers stay the same */
    const int ranks = rt_dist_size();
    rt_dist_allreduce_f64(part, 2 * e->children);
    double sl = 0, sa = 0;
    for (int m = 0; m < e->children; m++) {
        double loss = part[2 * m] / ranks;
        if (!isfinite(loss)) return sr_fail(err, errlen, "ENAS: child %d's loss on the architecture split is not finite (step %lld)",
                                            m, (long long)g);
        e->rewards[m] = part[2 * m + 1] / ((double)xi->shape[0] * ranks);
        sl += loss;
        sa += e->rewards[m];
    }
    *val_loss = (float)(sl / e->children);
    *val_acc = (float)(sa / e->children);
    return sr_ctl_update(e->ctl, e->children, e->actions, e->rewards, err, errlen);
}

static int derive(void *ctx, rt_plan *p, const ir_net *net, ir_genotype *gt, char *err, size_t errlen) {
    enas *e = ctx;
    if (sr_ctl_sample(e->ctl, 1, NULL, 1, e->actions, gt, err, errlen)) return -1;
    return set_child(e, p, net, gt, err, errlen);
}

static void restored(void *ctx) { sr_ctl_ckpt_restored(((enas *)ctx)->ctl); }

int sr_enas_search(const ir_space *sp, const sr_options *o_in, sr_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    if (sp->kind != IR_SPACE_CNN) return sr_fail(err, errlen, "ENAS searches convolutional spaces only");
    sr_options o = *o_in;
    sr_baseline_defaults(&o); /* the controller's defaults */
    if (o.children > 64) return sr_fail(err, errlen, "ENAS: at most 64 children per controller step (--children %d)", o.children);
    enas e;
    memset(&e, 0, sizeof e);
    e.sp = sp;
    e.children = o.children;
    e.seed = sp->search.seed;
    e.none[0] = ir_cell_none_index(&sp->normal);
    e.none[1] = ir_cell_none_index(&sp->reduce);
    if (e.none[0] < 0 || e.none[1] < 0)
        return sr_fail(err, errlen, "ENAS runs a child on the supernet by giving unused edges the op 'none'; the %s cell has no "
                       "'none' candidate", e.none[0] < 0 ? "normal" : "reduce");
    sr_ctl_opts co = sr_ctl_opts_default();
    co.hidden = o.controller_hidden;
    co.lr = o.controller_lr;
    co.entropy_weight = o.entropy_weight;
    co.baseline_decay = o.baseline_decay;
    co.seed = sp->search.seed;
    int rc = -1;
    e.ctl = sr_ctl_new(sp, &co, err, errlen);
    if (!e.ctl) return -1;
    e.T = sr_ctl_num_tokens(e.ctl);
    e.actions = malloc((size_t)e.children * (size_t)e.T * sizeof *e.actions);
    e.rewards = malloc((size_t)e.children * sizeof *e.rewards);
    e.gts = malloc((size_t)e.children * sizeof *e.gts);
    if (!e.actions || !e.rewards || !e.gts) {
        sr_fail(err, errlen, "out of memory");
        goto out;
    }
    sr_ctl_ckpt_entries(e.ctl, e.ckpt);
    sr_arch_hooks h = {.ctx = &e, .before_weight_step = before_weight_step, .arch_step = arch_step, .derive = derive,
                       .n_ckpt = SR_CTL_CKPT_N, .ckpt = e.ckpt, .restored = restored};
    rc = sr_cnn_search_hooked(sp, &o, &h, res, err, errlen);
out:
    sr_ctl_free(e.ctl);
    free(e.actions);
    free(e.rewards);
    free(e.gts);
    free(e.alpha_host);
    return rc;
}
