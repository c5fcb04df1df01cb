/* cmd_search.c — `dartsc search SPACE`: flags override the DSL, signals checkpoint and
 * stop, a progress bar on a terminal (plain log lines otherwise), SVG cell pictures when
 * Graphviz's `dot` is installed. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "search/genotype.h"
#include "pipeline/pipeline.h"
#include "search/search.h"
#include "runtime/dist.h"

#define stop_flag dartsc_stop_flag /* set by the SIGINT/SIGTERM handler main installs first thing */

typedef struct prog {
    int tty;
} prog;

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)s;
    snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

static void show_progress(void *ctx, const sr_progress *p) {
    prog *pg = ctx;
    char eta[32];
    if (p->warning)
        fprintf(stderr, "%sdartsc search: warning: epoch %d step %lld: %s (loss %g)\n", pg->tty ? "\r\033[K" : "",
                p->epoch + 1, (long long)p->step + 1, p->warning, isnan(p->val_loss) ? p->train_loss : fmax(p->train_loss, p->val_loss));
    fmt_eta(p->eta_s, eta, sizeof eta);
    if (p->candidate_end) {
        fprintf(stderr, "%scandidate %d/%d", pg->tty ? "\r\033[K" : "", p->epoch + 1, p->epochs);
        if (p->step >= 0) fprintf(stderr, " (mutant of %lld)", (long long)p->step + 1);
        fprintf(stderr, ": architecture split loss %.4f accuracy %.2f%%\n", p->val_loss, 100 * p->val_acc);
        return;
    }
    if (p->epoch_end) {
        fprintf(stderr, "%sepoch %d/%d: architecture split loss %.4f accuracy %.2f%%\n", pg->tty ? "\r\033[K" : "",
                p->epoch + 1, p->epochs, p->val_loss, 100 * p->val_acc);
        return;
    }
    if (pg->tty) {
        int width = 24, filled = (int)(width * (double)(p->step + 1) / (double)p->steps_per_epoch);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %lld/%lld loss %.4f acc %.1f%% %.0f img/s ETA %s", p->epoch + 1,
                p->epochs, bar, (long long)p->step + 1, (long long)p->steps_per_epoch, p->train_loss, 100 * p->train_acc,
                p->images_per_s, eta);
        fflush(stderr);
    } else if (p->step % 10 == 0 || p->step + 1 == p->steps_per_epoch) {
        fprintf(stderr, "epoch %d/%d step %lld/%lld train loss %.4f acc %.2f%% val loss %.4f lr %.5f %.1f img/s ETA %s\n",
                p->epoch + 1, p->epochs, (long long)p->step + 1, (long long)p->steps_per_epoch, p->train_loss,
                100 * p->train_acc, p->val_loss, p->lr, p->images_per_s, eta);
    }
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}


static void usage(FILE *f) {
    fputs("usage: dartsc search SPACE [--out DIR] [--device auto|cpu|cuda] [--resume] [search options]\n", f);
    fputs(dartsc_search_flags_usage, f);
}

int dartsc_cmd_search(int argc, char **argv) {
    const char *path = NULL;
    sr_options o = sr_options_default();
    dartsc_search_overrides ov;
    dartsc_search_overrides_init(&ov);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = dartsc_search_flag("search", a, v, &o, &ov);
        if (takes < 0) return 2;
        if (takes > 0) {
            i++;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--device")) {
            if (!v) {
                fprintf(stderr, "dartsc search: %s needs a value\n", a);
                return 2;
            }
            if (a[2] == 'o') o.out_dir = v;
            else o.device = v;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "dartsc search: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            if (path) {
                fprintf(stderr, "dartsc search: more than one space given ('%s' and '%s')\n", path, a);
                return 2;
            }
            path = a;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    ir_space sp;
    if (dartsc_load_space(path, &sp)) return 1;
    dartsc_search_overrides_apply(&ov, &sp);
    if (dartsc_search_strategy_from_space(&ov, &sp, &o)) return 2;

    size_t len = 0;
    char *src = slurp(path, &len);
    o.space_src = src;
    o.space_src_len = len;
    o.stop = &stop_flag;
    prog pg = {.tty = isatty(2)};
    o.progress = rt_dist_rank() == 0 ? show_progress : NULL; /* data-parallel: rank 0 reports */
    o.progress_ctx = &pg;
    if (o.strategy == SR_RANDOM || o.strategy == SR_EVOLUTION || o.strategy == SR_RL) {
        sr_baseline_defaults(&o);
        if (rt_dist_rank() == 0) fprintf(stderr, "dartsc search: %s -> %s (%s, %s, %d candidates of %d epochs, batch %d, seed %llu)\n", path,
                o.out_dir, o.device, dartsc_strategy_name(o.strategy), o.candidates, o.candidate_epochs, sp.search.batch,
                (unsigned long long)sp.search.seed);
    } else if (rt_dist_rank() == 0)
        fprintf(stderr, "dartsc search: %s -> %s (%s, %s, %s order, %d epochs, batch %d, seed %llu)\n", path, o.out_dir,
                o.device, dartsc_strategy_name(o.strategy), sp.search.order == 2 ? "second" : "first", sp.search.epochs,
                sp.search.batch, (unsigned long long)sp.search.seed);
    sr_result res;
    char err[1024];
    if (sr_data_prepare(&sp, 1, 0, err, sizeof err)) { /* bad data: nothing written */
        fprintf(stderr, "dartsc search: error: %s\n", err);
        free(src);
        return 1;
    }
    dartsc_op_latency_use(&o, ov.latency_cache); /* proxyless: the per-op latency table */
    dartsc_out_dir od;
    dartsc_out_dir_note(&od, o.out_dir);
    int rc = sr_search(&sp, &o, &res, err, sizeof err);
    free(src);
    if (rc) {
        dartsc_out_dir_cleanup(&od); /* no empty directory left behind */
        fprintf(stderr, "%sdartsc search: error: %s\n", pg.tty ? "\n" : "", err);
        return 1;
    }
    if (res.stopped) {
        if (rt_dist_rank() == 0) /* data-parallel: every process stopped at the same step */
            fprintf(stderr, "\ndartsc search: stopped after %lld steps; checkpoint in %s/checkpoint.dtns (continue with --resume)\n",
                (long long)res.steps, o.out_dir);
        return 130;
    }
    if (rt_dist_rank() != 0) return 0;
    dartsc_warn_loss_peak("search", "search", res.loss_peak, res.loss_peak_step);
    if (res.stop_epoch) fprintf(stderr, "dartsc search: stopped early (darts-plus): %s\n", res.stop_reason);
    dartsc_render_cells(o.out_dir);
    printf("genotype: ");
    sr_genotype_print(&sp, &res.genotype, stdout);
    if (sp.kind == IR_SPACE_RNN) /* search/rnn.c reports validation perplexity in val_acc */
        printf("search took %.1f s; validation perplexity %.2f; results in %s\n", res.seconds, res.val_acc, o.out_dir);
    else
    printf("search took %.1f s; architecture split accuracy %.2f%%; results in %s\n", res.seconds, 100 * res.val_acc,
           o.out_dir);
    return 0;
}
