/* sema.c — semantic analysis: resolves names (op sets, cells, settings blocks and their
 * ":" bases), checks types and ranges, lowers everything into an ir_space that starts from
 * the DARTS defaults, and checks the cross-cutting facts: k kept edges per node exist, the
 * feature map halves cleanly at each reduction, channels work out (ir_space_check).
 *
 * Warnings: unknown settings (with "did you mean"), settings nobody reads (e.g. drop_path
 * in a search block), declarations nobody uses. Errors: everything that would make the
 * ir_space wrong. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe_int.h"

/* ---- the settings every block kind knows -------------------------------------------------- */
enum { B_NET = 1, B_SEARCH = 2, B_TRAIN = 4, B_CELL = 8 };
enum { K_CNN = 1, K_RNN = 2, K_ANY = 3 };

typedef struct setting_info {
    const char *name;
    int blocks, kinds;
} setting_info;

static const setting_info settings[] = {
    {"kind", B_NET, K_ANY},
    {"data", B_NET, K_ANY},
    {"input", B_NET, K_CNN},
    {"classes", B_NET, K_CNN},
    {"mean", B_NET, K_CNN},
    {"std", B_NET, K_CNN},
    {"C", B_NET | B_TRAIN, K_CNN},
    {"layers", B_NET | B_TRAIN, K_CNN},
    {"stem", B_NET, K_CNN},
    {"growth", B_NET, K_CNN},
    {"reduce_at", B_NET, K_CNN},
    {"normal", B_NET, K_ANY},
    {"reduce", B_NET, K_CNN},
    {"emb", B_NET, K_RNN},
    {"hidden", B_NET, K_RNN},
    {"epochs", B_SEARCH | B_TRAIN, K_ANY},
    {"batch", B_SEARCH | B_TRAIN, K_ANY},
    {"lr", B_SEARCH | B_TRAIN, K_ANY},
    {"lr_min", B_SEARCH | B_TRAIN, K_ANY},
    {"momentum", B_SEARCH | B_TRAIN, K_ANY},
    {"weight_decay", B_SEARCH | B_TRAIN, K_ANY},
    {"clip", B_SEARCH | B_TRAIN, K_ANY},
    {"seed", B_SEARCH | B_TRAIN, K_ANY},
    {"subset", B_SEARCH | B_TRAIN, K_ANY},
    {"test_subset", B_SEARCH | B_TRAIN, K_ANY},
    {"order", B_SEARCH, K_ANY},
    {"alpha_lr", B_SEARCH, K_ANY},
    {"alpha_betas", B_SEARCH, K_ANY},
    {"alpha_weight_decay", B_SEARCH, K_ANY},
    {"split", B_SEARCH, K_CNN},
    {"crop", B_SEARCH | B_TRAIN, K_CNN},
    {"flip", B_SEARCH | B_TRAIN, K_CNN},
    {"cutout", B_SEARCH | B_TRAIN, K_CNN},
    {"sync_bn", B_SEARCH | B_TRAIN, K_ANY},
    {"drop_path", B_TRAIN, K_CNN},
    {"aux_weight", B_TRAIN, K_CNN},
    {"scale", B_TRAIN, K_CNN},
    {"bptt", B_SEARCH | B_TRAIN, K_RNN},
    {"dropout", B_SEARCH | B_TRAIN, K_RNN},
    {"dropout_h", B_SEARCH | B_TRAIN, K_RNN},
    {"dropout_x", B_SEARCH | B_TRAIN, K_RNN},
    {"dropout_i", B_SEARCH | B_TRAIN, K_RNN},
    {"dropout_e", B_SEARCH | B_TRAIN, K_RNN},
    {"tar", B_SEARCH | B_TRAIN, K_RNN},
    {"strategy", B_SEARCH, K_ANY},
    {"partial_channels", B_SEARCH, K_CNN},
    {"edge_norm", B_SEARCH, K_CNN},
    {"stages", B_SEARCH, K_CNN},
    {"stage_ops", B_SEARCH, K_CNN},
    {"skip_dropout", B_SEARCH, K_CNN},
    {"max_skip", B_SEARCH, K_CNN},
    {"warmup", B_SEARCH, K_CNN},
    {"stop_skips", B_SEARCH, K_CNN},
    {"stop_stable", B_SEARCH, K_CNN},
    {"lr_power", B_SEARCH, K_CNN},
    {"latency_weight", B_SEARCH, K_CNN},
    {"inputs", B_CELL, K_ANY},
    {"nodes", B_CELL, K_ANY},
    {"keep", B_CELL, K_ANY},
    {"combine", B_CELL, K_ANY},
    {"ops", B_CELL, K_ANY},
    {"node", B_CELL, K_ANY},
    {"reduction", B_CELL, K_CNN},
};
#define N_SETTINGS ((int)(sizeof settings / sizeof *settings))

/* The reference DARTS code's command-line names, and what they are called here. */
static const char *const synonyms[][2] = {
    {"batch_size", "batch"}, {"learning_rate", "lr"}, {"learning_rate_min", "lr_min"},
    {"init_channels", "C"}, {"grad_clip", "clip"}, {"cutout_length", "cutout"},
    {"drop_path_prob", "drop_path"}, {"train_portion", "split"}, {"unrolled", "order"},
    {"arch_learning_rate", "alpha_lr"}, {"arch_lr", "alpha_lr"}, {"arch_weight_decay", "alpha_weight_decay"},
    {"arch_wdecay", "alpha_weight_decay"}, {"auxiliary_weight", "aux_weight"}, {"wdecay", "weight_decay"},
    {"wd", "weight_decay"}, {"emsize", "emb"}, {"nhid", "hidden"}, {"dropouth", "dropout_h"},
    {"dropoutx", "dropout_x"}, {"dropouti", "dropout_i"}, {"dropoute", "dropout_e"},
    {"stem_multiplier", "stem"}, {"steps", "nodes"}, {"multiplier", "nodes"}, {"cutout_length", "cutout"},
    {"primitives", "ops"}, {"reduction_cells", "reduce_at"}, {"num_classes", "classes"},
};

static const char *const dkind_name[FE_D_COUNT] = {"op set", "cell", "network", "search", "train", "settings"};

static int block_mask(fe_dkind k) {
    switch (k) {
    case FE_D_NETWORK: return B_NET;
    case FE_D_SEARCH: return B_SEARCH;
    case FE_D_TRAIN: return B_TRAIN;
    case FE_D_CELL: return B_CELL;
    case FE_D_SETTINGS: return B_NET | B_SEARCH | B_TRAIN;
    default: return 0;
    }
}

static const setting_info *find_setting(const char *name) {
    for (int i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0) return &settings[i];
    return NULL;
}

/* ---- the op library ------------------------------------------------------------------------ */
typedef struct op_info {
    const char *name;
    ir_cand_kind kind;
    int nparams; /* 0, 1: kernel size, 2: kernel size and dilation (the second optional) */
    const char *usage;
} op_info;

static const op_info ops[] = {
    {"none", IR_CAND_NONE, 0, "none"},
    {"zero", IR_CAND_NONE, 0, "zero"},
    {"skip", IR_CAND_SKIP, 0, "skip"},
    {"skip_connect", IR_CAND_SKIP, 0, "skip_connect"},
    {"sep_conv", IR_CAND_SEP_CONV, 1, "sep_conv(k)"},
    {"dil_conv", IR_CAND_DIL_CONV, 2, "dil_conv(k, dilation)"},
    {"max_pool", IR_CAND_MAX_POOL, 1, "max_pool(k)"},
    {"avg_pool", IR_CAND_AVG_POOL, 1, "avg_pool(k)"},
    {"conv", IR_CAND_CONV, 1, "conv(k)"},
    {"conv_1xk_kx1", IR_CAND_CONV_1xK_Kx1, 1, "conv_1xk_kx1(k)"},
    {"sharp_sep_conv", IR_CAND_SHARP_SEP_CONV, 2, "sharp_sep_conv(k, dilation)"},
    {"tanh", IR_CAND_TANH, 0, "tanh"},
    {"relu", IR_CAND_RELU, 0, "relu"},
    {"sigmoid", IR_CAND_SIGMOID, 0, "sigmoid"},
    {"identity", IR_CAND_IDENTITY, 0, "identity"},
};
#define N_OPS ((int)(sizeof ops / sizeof *ops))

static int is_recurrent(ir_cand_kind k) {
    return k == IR_CAND_TANH || k == IR_CAND_RELU || k == IR_CAND_SIGMOID || k == IR_CAND_IDENTITY;
}

static void cand_name(ir_cand *c) {
    char *n = c->name;
    size_t L = sizeof c->name;
    switch (c->kind) {
    case IR_CAND_NONE: snprintf(n, L, "none"); break;
    case IR_CAND_SKIP: snprintf(n, L, "skip_connect"); break;
    case IR_CAND_SEP_CONV: snprintf(n, L, "sep_conv_%dx%d", c->k, c->k); break;
    case IR_CAND_DIL_CONV:
        if (c->dilation == 2) snprintf(n, L, "dil_conv_%dx%d", c->k, c->k);
        else snprintf(n, L, "dil_conv_%dx%d_d%d", c->k, c->k, c->dilation);
        break;
    case IR_CAND_MAX_POOL: snprintf(n, L, "max_pool_%dx%d", c->k, c->k); break;
    case IR_CAND_AVG_POOL: snprintf(n, L, "avg_pool_%dx%d", c->k, c->k); break;
    case IR_CAND_CONV: snprintf(n, L, "conv_%dx%d", c->k, c->k); break;
    case IR_CAND_CONV_1xK_Kx1: snprintf(n, L, "conv_1x%d_%dx1", c->k, c->k); break;
    case IR_CAND_TANH: snprintf(n, L, "tanh"); break;
    case IR_CAND_RELU: snprintf(n, L, "relu"); break;
    case IR_CAND_SIGMOID: snprintf(n, L, "sigmoid"); break;
    case IR_CAND_IDENTITY: snprintf(n, L, "identity"); break;
    case IR_CAND_SHARP_SEP_CONV: /* sharpDARTS's names: sharp_sep_conv_3x3, dil_sharp_sep_conv_3x3 (d = 2) */
        if (c->dilation == 1) snprintf(n, L, "sharp_sep_conv_%dx%d", c->k, c->k);
        else if (c->dilation == 2) snprintf(n, L, "dil_sharp_sep_conv_%dx%d", c->k, c->k);
        else snprintf(n, L, "sharp_sep_conv_%dx%d_d%d", c->k, c->k, c->dilation);
        break;
    default: snprintf(n, L, "?"); break;
    }
}

/* Genotype-style names as aliases: sep_conv_3x3, dil_conv_5x5, max_pool_3x3, conv_1x7_7x1. */
static int parse_canonical(const char *s, ir_cand *c) {
    static const struct {
        const char *prefix;
        ir_cand_kind kind;
    } pats[] = {{"sep_conv_", IR_CAND_SEP_CONV}, {"dil_conv_", IR_CAND_DIL_CONV}, {"max_pool_", IR_CAND_MAX_POOL},
                {"avg_pool_", IR_CAND_AVG_POOL}, {"conv_", IR_CAND_CONV}, {"sharp_sep_conv_", IR_CAND_SHARP_SEP_CONV},
                {"dil_sharp_sep_conv_", IR_CAND_SHARP_SEP_CONV}};
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        size_t pl = strlen(pats[i].prefix);
        if (strncmp(s, pats[i].prefix, pl) != 0) continue;
        const char *r = s + pl;
        int a, b, c1, d1, n = -1;
        if (strlen(r) > 16) return 0;
        if (sscanf(r, "%3dx%3d%n", &a, &b, &n) == 2 && n == (int)strlen(r) && a == b && r[0] != '+' && r[0] != '-') {
            c->kind = pats[i].kind;
            c->k = a;
            c->dilation = c->kind == IR_CAND_DIL_CONV || pats[i].prefix[0] == 'd' ? 2 : c->kind == IR_CAND_SHARP_SEP_CONV;
            return 1;
        }
        n = -1;
        if (pats[i].kind == IR_CAND_CONV && sscanf(r, "%3dx%3d_%3dx%3d%n", &a, &b, &c1, &d1, &n) == 4 &&
            n == (int)strlen(r) && r[0] != '+' && r[0] != '-') {
            /* conv_1x7_7x1 and conv_7x1_1x7 */
            if ((a == 1 && b == c1 && d1 == 1) || (b == 1 && a == d1 && c1 == 1)) {
                c->kind = IR_CAND_CONV_1xK_Kx1;
                c->k = a == 1 ? b : a;
                return 1;
            }
        }
    }
    return 0;
}

/* ---- analysis state ----------------------------------------------------------------------- */
#define MAX_CHAIN 16

typedef struct sema {
    fe_ctx *cx;
    fe_program *prog;
    ir_space *sp;
    int kind; /* K_CNN or K_RNN */
    fe_decl *network, *search, *train;
} sema;

typedef struct view {
    fe_decl *d[MAX_CHAIN];
    int n;
} view;

static const char *vdesc(const fe_value *v) {
    switch (v->kind) {
    case FE_V_INT: return "an integer";
    case FE_V_FLOAT: return "a number";
    case FE_V_IDENT: return "a name";
    case FE_V_STRING: return "a string";
    case FE_V_SHAPE: return "a shape";
    case FE_V_LIST: return "a list";
    case FE_V_CALL: return "an op with parameters";
    case FE_V_SET: return "an op set";
    }
    return "a value";
}

/* Was this value's literal already reported by the lexer? */
static int vbad(const fe_value *v) { return v->tok->bad || (v->tok->kind == FE_TK_PUNCT && v->tok[1].bad); }

static fe_decl *lookup_decl(sema *S, fe_dkind k, const char *name) {
    for (int i = 0; i < S->prog->n_decls; i++) {
        fe_decl *d = S->prog->decls[i];
        if (d->kind == k && d->name && !d->dup && strcmp(d->name->str, name) == 0) return d;
    }
    return NULL;
}

/* "did you mean" over the names of all declarations of kind k. */
static const char *suggest_decl(sema *S, fe_dkind k, const char *word, const char *const *extra, int n_extra) {
    int n = S->prog->n_decls + n_extra;
    const char **names = fe_alloc(&S->cx->arena, sizeof *names * (size_t)(n + 1));
    int m = 0;
    for (int i = 0; i < n_extra; i++) names[m++] = extra[i];
    for (int i = 0; i < S->prog->n_decls; i++) {
        fe_decl *d = S->prog->decls[i];
        if (d->kind == k && d->name) names[m++] = d->name->str;
    }
    return fe_suggest(S->cx, word, names, m);
}

/* The chain of a block and its ":" bases, child first. Errors on unknown bases and cycles. */
static void build_view(sema *S, fe_decl *d, view *v) {
    v->n = 0;
    fe_dkind bk = d->kind == FE_D_CELL ? FE_D_CELL : FE_D_SETTINGS;
    while (d) {
        for (int i = 0; i < v->n; i++)
            if (v->d[i] == d) {
                if (!v->d[v->n - 1]->chain_err) /* report each cycle once */
                    fe_error(S->cx, v->d[v->n - 1]->base, NULL, "'%s' extends itself through its bases", d->name->str);
                for (int j = i; j < v->n; j++) v->d[j]->chain_err = 1; /* every block of the cycle */
                return;
            }
        if (v->n == MAX_CHAIN) {
            fe_error(S->cx, d->name ? d->name : d->kw, NULL, "more than %d levels of ':' bases", MAX_CHAIN);
            return;
        }
        v->d[v->n++] = d;
        if (!d->base) return;
        fe_decl *b = lookup_decl(S, bk, d->base->str);
        if (!b) {
            if (!d->chain_err) {
                const char *hint = suggest_decl(S, bk, d->base->str, NULL, 0);
                fe_decl *other = NULL;
                for (int k = 0; k < FE_D_COUNT && !other; k++)
                    if (k != (int)bk) other = lookup_decl(S, (fe_dkind)k, d->base->str);
                if (!hint && other)
                    hint = bk == FE_D_CELL ? "a cell extends another cell"
                                           : "a block extends a 'settings NAME { ... }' block";
                fe_error(S->cx, d->base, hint, "unknown %s '%s'", bk == FE_D_CELL ? "cell" : "settings block",
                         d->base->str);
            }
            d->chain_err = 1;
            return;
        }
        d = b;
    }
}

static void mark_used(view *v) {
    for (int i = 0; i < v->n; i++) v->d[i]->used = 1;
}

/* Finds the setting key in a view: the child's wins; the overridden ones count as read. */
static fe_stmt *find(view *v, const char *key) {
    fe_stmt *found = NULL;
    for (int i = 0; i < v->n; i++)
        for (int j = 0; j < v->d[i]->n_stmts; j++) {
            fe_stmt *s = v->d[i]->stmts[j];
            if (strcmp(s->key->str, key) == 0) {
                s->read = 1;
                if (!found) found = s;
            }
        }
    return found;
}

/* The single value of a setting, or NULL after an error. */
static fe_value *one_value(sema *S, fe_stmt *s) {
    for (int i = 0; i < s->n_vals; i++)
        if (vbad(s->vals[i])) return NULL; /* reported by the lexer */
    if (s->n_vals == 1) return s->vals[0];
    if (s->n_vals == 0) fe_error(S->cx, s->key, NULL, "'%s' needs a value", s->key->str);
    else
        fe_error(S->cx, s->vals[1]->tok, "end each setting with ';' or a new line", "'%s' takes one value, not %d",
                 s->key->str, s->n_vals);
    return NULL;
}

static int check_int(sema *S, const fe_value *v, const char *what, int64_t lo, int64_t hi, int64_t *out) {
    if (vbad(v)) return -1;
    if (v->kind != FE_V_INT) {
        fe_error(S->cx, v->tok, NULL, "'%s' expects an integer, found %s", what, vdesc(v));
        return -1;
    }
    if (v->i < lo || v->i > hi) {
        fe_error(S->cx, v->tok, NULL, "'%s' must be between %lld and %lld, not %lld", what, (long long)lo,
                 (long long)hi, (long long)v->i);
        return -1;
    }
    *out = v->i;
    return 0;
}

/* lo_open: the range excludes lo; hi_open: excludes hi. */
static int check_float(sema *S, const fe_value *v, const char *what, double lo, int lo_open, double hi, int hi_open,
                       float *out) {
    if (vbad(v)) return -1;
    if (v->kind != FE_V_INT && v->kind != FE_V_FLOAT) {
        fe_error(S->cx, v->tok, NULL, "'%s' expects a number, found %s", what, vdesc(v));
        return -1;
    }
    double x = v->f;
    if (x < lo || x > hi || (lo_open && x == lo) || (hi_open && x == hi)) {
        fe_error(S->cx, v->tok, NULL, "'%s' must be in %c%g, %g%c, not %g", what, lo_open ? '(' : '[', lo, hi,
                     hi_open ? ')' : ']', x);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static int get_int(sema *S, view *v, const char *key, int64_t lo, int64_t hi, int *out) {
    fe_stmt *s = find(v, key);
    if (!s) return 0;
    fe_value *x = one_value(S, s);
    int64_t i;
    if (!x || check_int(S, x, key, lo, hi, &i)) return -1;
    *out = (int)i;
    return 1;
}

static int get_float(sema *S, view *v, const char *key, double lo, int lo_open, double hi, int hi_open, float *out) {
    fe_stmt *s = find(v, key);
    if (!s) return 0;
    fe_value *x = one_value(S, s);
    if (!x || check_float(S, x, key, lo, lo_open, hi, hi_open, out)) return -1;
    return 1;
}

/* An identifier from a fixed list; returns its index through *out. */
static int get_enum(sema *S, view *v, const char *key, const char *const *names, int n, int *out, fe_stmt **where) {
    fe_stmt *s = find(v, key);
    if (where) *where = s;
    if (!s) return 0;
    fe_value *x = one_value(S, s);
    if (!x) return -1;
    char list[160] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", names[i]);
    }
    if (x->kind != FE_V_IDENT) {
        fe_error(S->cx, x->tok, NULL, "'%s' expects %s, found %s", key, list, vdesc(x));
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(x->s, names[i]) == 0) {
            *out = i;
            return 1;
        }
    fe_error(S->cx, x->tok, fe_suggest(S->cx, x->s, names, n), "'%s' expects %s, not '%s'", key, list, x->s);
    return -1;
}

static int get_bool(sema *S, view *v, const char *key, int *out) {
    static const char *const names[] = {"off", "on", "false", "true", "no", "yes"};
    int i;
    int r = get_enum(S, v, key, names, 6, &i, NULL);
    if (r == 1) *out = i % 2;
    return r;
}

/* ---- op sets ------------------------------------------------------------------------------------ */
typedef struct candlist {
    ir_cand c[IR_MAX_CANDS];
    const fe_tok *tok[IR_MAX_CANDS];
    int n, full;
} candlist;

static void cl_add(sema *S, candlist *cl, const ir_cand *c, const fe_tok *t) {
    for (int i = 0; i < cl->n; i++)
        if (strcmp(cl->c[i].name, c->name) == 0) {
            fe_error(S->cx, t, NULL, "op '%s' appears twice in this op set", c->name);
            fe_note(S->cx, cl->tok[i], "'%s' first appears here", c->name);
            return;
        }
    if (cl->n == IR_MAX_CANDS) {
        if (!cl->full) fe_error(S->cx, t, NULL, "an op set holds at most %d ops", IR_MAX_CANDS);
        cl->full = 1;
        return;
    }
    cl->c[cl->n] = *c;
    cl->tok[cl->n++] = t;
}

static const char *const *op_names(sema *S, int *n) {
    const char **names = fe_alloc(&S->cx->arena, sizeof *names * (size_t)(N_OPS + S->prog->n_decls));
    int m = 0;
    for (int i = 0; i < N_OPS; i++) names[m++] = ops[i].name;
    for (int i = 0; i < S->prog->n_decls; i++)
        if (S->prog->decls[i]->kind == FE_D_OPS) names[m++] = S->prog->decls[i]->name->str;
    *n = m;
    return names;
}

static int resolve_opset(sema *S, fe_decl *d, int depth);

/* An op: IDENT (none, skip, sep_conv_3x3) or CALL (sep_conv(3)). Returns 0 and fills *c. */
static int resolve_op(sema *S, const fe_value *v, ir_cand *c) {
    memset(c, 0, sizeof *c);
    const op_info *oi = NULL;
    for (int i = 0; i < N_OPS; i++)
        if (strcmp(ops[i].name, v->s) == 0) oi = &ops[i];
    if (!oi) {
        if (v->kind == FE_V_IDENT && parse_canonical(v->s, c)) goto check;
        int n;
        const char *const *names = op_names(S, &n);
        fe_error(S->cx, v->tok, fe_suggest(S->cx, v->s, names, n), "unknown op '%s'", v->s);
        return -1;
    }
    c->kind = oi->kind;
    int nargs = v->kind == FE_V_CALL ? v->n_items : 0;
    if (oi->nparams == 0 && nargs > 0) {
        fe_error(S->cx, v->items[0]->tok, NULL, "'%s' takes no parameters", oi->name);
        return -1;
    }
    if (oi->nparams > 0 && nargs == 0) {
        fe_error(S->cx, v->tok, NULL, "'%s' needs a kernel size: %s", oi->name, oi->usage);
        return -1;
    }
    if (nargs > oi->nparams) {
        fe_error(S->cx, v->items[oi->nparams]->tok, NULL, "'%s' takes at most %d parameter%s: %s", oi->name,
                 oi->nparams, oi->nparams == 1 ? "" : "s", oi->usage);
        return -1;
    }
    if (nargs >= 1) {
        const fe_value *a = v->items[0];
        if (vbad(a)) return -1;
        if (a->kind != FE_V_INT) {
            fe_error(S->cx, a->tok, NULL, "the kernel size of '%s' must be an integer, found %s", oi->name, vdesc(a));
            return -1;
        }
        if (a->i < 1 || a->i > 15 || a->i % 2 == 0) {
            fe_error(S->cx, a->tok, "odd sizes keep the feature map's size with padding k/2",
                     "kernel size must be odd and between 1 and 15, not %lld", (long long)a->i);
            return -1;
        }
        c->k = (int)a->i;
    }
    if (c->kind == IR_CAND_DIL_CONV || c->kind == IR_CAND_SHARP_SEP_CONV) {
        c->dilation = c->kind == IR_CAND_DIL_CONV ? 2 : 1;
        if (nargs == 2) {
            const fe_value *a = v->items[1];
            if (vbad(a)) return -1;
            if (a->kind != FE_V_INT) {
                fe_error(S->cx, a->tok, NULL, "the dilation of '%s' must be an integer, found %s", oi->name, vdesc(a));
                return -1;
            }
            if (a->i < 1 || a->i > 8) {
                fe_error(S->cx, a->tok, NULL, "dilation must be between 1 and 8, not %lld", (long long)a->i);
                return -1;
            }
            c->dilation = (int)a->i;
        }
    }
check:
    if (c->k != 0 && (c->k < 1 || c->k > 15 || c->k % 2 == 0)) {
        fe_error(S->cx, v->tok, "odd sizes keep the feature map's size with padding k/2",
                 "kernel size must be odd and between 1 and 15, not %d", c->k);
        return -1;
    }
    cand_name(c);
    return 0;
}

/* Adds the ops a value denotes: a set { ... }, an op, or the name of an op set (spliced). */
static void add_ops(sema *S, const fe_value *v, candlist *cl, int depth) {
    if (S->cx->stop || vbad(v)) return;
    if (v->kind == FE_V_SET) {
        if (v->n_items == 0) fe_error(S->cx, v->tok, NULL, "empty op set");
        for (int i = 0; i < v->n_items; i++) add_ops(S, v->items[i], cl, depth);
        return;
    }
    if (v->kind == FE_V_IDENT) {
        fe_decl *d = lookup_decl(S, FE_D_OPS, v->s);
        if (d) {
            d->used = 1;
            if (resolve_opset(S, d, depth + 1) != 0) return;
            for (int i = 0; i < d->n_cands; i++) cl_add(S, cl, &d->cands[i], d->cand_tok[i]);
            return;
        }
    }
    if (v->kind == FE_V_IDENT || v->kind == FE_V_CALL) {
        ir_cand c;
        if (resolve_op(S, v, &c) == 0) cl_add(S, cl, &c, v->tok);
        return;
    }
    if (!vbad(v)) fe_error(S->cx, v->tok, "ops are written like: { none, skip, sep_conv(3) }", "expected an op, found %s", vdesc(v));
}

/* Resolves an "ops NAME = ..." declaration once. */
static int resolve_opset(sema *S, fe_decl *d, int depth) {
    if (d->state == 2) return d->ok ? 0 : -1;
    if (d->state == 1) {
        fe_error(S->cx, d->name, NULL, "op set '%s' includes itself", d->name->str);
        return -1;
    }
    if (depth > FE_MAX_DEPTH) {
        fe_error(S->cx, d->name, NULL, "op sets include each other more than %d levels deep", FE_MAX_DEPTH);
        return -1;
    }
    d->state = 1;
    candlist cl = {0};
    int before = S->cx->errors_seen;
    add_ops(S, d->set, &cl, depth);
    d->state = 2;
    d->ok = S->cx->errors_seen == before;
    d->n_cands = cl.n;
    memcpy(d->cands, cl.c, sizeof cl.c);
    memcpy(d->cand_tok, cl.tok, sizeof cl.tok);
    return d->ok ? 0 : -1;
}

/* ---- cells ----------------------------------------------------------------------------------------- */
static void rnn_cell_default(ir_cell *c) {
    memset(c, 0, sizeof *c);
    c->n_inputs = 1;
    c->n_nodes = 8;
    c->k_keep = 1;
    c->combine = IR_COMBINE_MEAN;
    ir_cell_all_edges(c);
    static const ir_cand_kind k[] = {IR_CAND_NONE, IR_CAND_TANH, IR_CAND_RELU, IR_CAND_SIGMOID, IR_CAND_IDENTITY};
    c->n_ops = 5;
    for (int i = 0; i < 5; i++) {
        c->ops[i].kind = k[i];
        cand_name(&c->ops[i]);
    }
}

static int cell_is_reduction(sema *S, fe_decl *d) {
    view v;
    build_view(S, d, &v);
    fe_stmt *s = find(&v, "reduction");
    if (s && s->n_vals) {
        if (!s->reported) fe_error(S->cx, s->vals[0]->tok, NULL, "'reduction' takes no value");
        s->reported = 1;
    }
    return s != NULL;
}

/* Lowers a cell declaration (once; the result is kept in d->cell). Returns 0 or -1. */
static int lower_cell(sema *S, fe_decl *d, ir_cell *out, int mark) {
    if (d->state == 2) {
        if (mark) {
            view v;
            build_view(S, d, &v);
            mark_used(&v);
        }
        *out = d->cell;
        return d->ok ? 0 : -1;
    }
    d->state = 2;
    int e0 = S->cx->errors_seen;
    ir_cell *c = &d->cell;
    if (S->kind == K_RNN) rnn_cell_default(c);
    else ir_cell_darts_default(c);
    view v;
    build_view(S, d, &v);
    if (mark) mark_used(&v);
    if (S->kind == K_CNN) find(&v, "reduction"); /* consumed by select_cell */
    int x;
    get_int(S, &v, "inputs", 1, 2, &c->n_inputs);
    get_int(S, &v, "nodes", 1, IR_MAX_NODES, &c->n_nodes);
    fe_stmt *keep = find(&v, "keep");
    if (get_int(S, &v, "keep", 1, 32, &c->k_keep) == 1 && c->k_keep > c->n_inputs + c->n_nodes - 1) {
        fe_value *kv = keep->vals[0];
        fe_error(S->cx, kv->tok, "keep counts incoming edges per node",
                 "keep %d: no node has that many incoming edges (the last node has %d)", c->k_keep,
                 c->n_inputs + c->n_nodes - 1);
    }
    static const char *const combines[] = {"concat", "mean"};
    if (get_enum(S, &v, "combine", combines, 2, &x, NULL) == 1) c->combine = x ? IR_COMBINE_MEAN : IR_COMBINE_CONCAT;
    fe_stmt *os = find(&v, "ops");
    if (os) {
        fe_value *ov = one_value(S, os);
        if (ov) {
            candlist cl = {0};
            int before = S->cx->errors_seen;
            if (ov->kind == FE_V_IDENT && !lookup_decl(S, FE_D_OPS, ov->s)) {
                /* a single op is fine (ops skip), but an unknown name is most likely a set */
                ir_cand tmp;
                int known = 0;
                for (int i = 0; i < N_OPS; i++) known |= strcmp(ops[i].name, ov->s) == 0;
                if (!known && !parse_canonical(ov->s, &tmp)) {
                    int n;
                    const char *const *names = op_names(S, &n);
                    fe_error(S->cx, ov->tok, fe_suggest(S->cx, ov->s, names, n), "unknown op set '%s'", ov->s);
                    goto ops_done;
                }
            }
            add_ops(S, ov, &cl, 0);
            if (S->cx->errors_seen == before) {
                int real = 0;
                for (int i = 0; i < cl.n; i++) {
                    if (cl.c[i].kind != IR_CAND_NONE) real = 1;
                    if (S->kind == K_CNN && is_recurrent(cl.c[i].kind))
                        fe_error(S->cx, cl.tok[i], "recurrent ops need 'kind rnn' in the network block",
                                 "'%s' is a recurrent op; this is a cnn space", cl.c[i].name);
                    else if (S->kind == K_RNN && !is_recurrent(cl.c[i].kind) && cl.c[i].kind != IR_CAND_NONE)
                        fe_error(S->cx, cl.tok[i], "recurrent cells take none, tanh, relu, sigmoid and identity",
                                 "'%s' is a convolutional op; this is an rnn space", cl.c[i].name);
                }
                if (!real && cl.n)
                    fe_error(S->cx, ov->tok, "derivation never picks 'none'",
                             "this op set has no op besides 'none'");
                c->n_ops = cl.n;
                memcpy(c->ops, cl.c, sizeof cl.c);
            }
        }
    }
ops_done:;
    /* edges: all earlier states unless "node S from [...]" restricts them */
    ir_cell_all_edges(c);
    fe_stmt *node_stmt[IR_MAX_NODES] = {0};
    fe_decl *node_decl[IR_MAX_NODES] = {0};
    for (int di = 0; di < v.n; di++)
        for (int j = 0; j < v.d[di]->n_stmts; j++) {
            fe_stmt *s = v.d[di]->stmts[j];
            if (strcmp(s->key->str, "node") != 0) continue;
            s->read = 1;
            int bad = 0;
            for (int k = 0; k < s->n_vals; k++) bad |= vbad(s->vals[k]);
            if (bad) continue;
            /* node S from [a, b] */
            if (s->n_vals != 3 || s->vals[0]->kind != FE_V_INT || s->vals[1]->kind != FE_V_IDENT ||
                strcmp(s->vals[1]->s, "from") != 0 || s->vals[2]->kind != FE_V_LIST) {
                fe_error(S->cx, s->key, "for example: node 3 from [0, 2]", "expected 'node STATE from [STATES]'");
                continue;
            }
            int64_t st = s->vals[0]->i;
            int first = c->n_inputs, last = c->n_inputs + c->n_nodes - 1;
            if (st < first || st > last) {
                fe_error(S->cx, s->vals[0]->tok,
                         "states 0..inputs-1 are the cell's inputs; the nodes follow them",
                         "state %lld is not a node of this cell (its nodes are states %d..%d)", (long long)st, first,
                         last);
                continue;
            }
            int ni = (int)st - c->n_inputs;
            if (node_stmt[ni]) {
                if (node_decl[ni] == v.d[di]) {
                    fe_error(S->cx, s->key, NULL, "the edges of node %lld are given twice", (long long)st);
                    fe_note(S->cx, node_stmt[ni]->key, "first given here");
                }
                continue; /* a derived cell overrides its base */
            }
            node_stmt[ni] = s;
            node_decl[ni] = v.d[di];
            const fe_value *L = s->vals[2];
            uint32_t mask = 0;
            int okn = 1;
            if (L->n_items == 0) {
                fe_error(S->cx, L->tok, NULL, "node %lld needs at least one incoming edge", (long long)st);
                okn = 0;
            }
            for (int k = 0; k < L->n_items; k++) {
                int64_t src;
                if (check_int(S, L->items[k], "from", 0, st - 1, &src)) {
                    okn = 0;
                    continue;
                }
                if (mask & (1u << src)) {
                    fe_error(S->cx, L->items[k]->tok, NULL, "state %lld is listed twice", (long long)src);
                    okn = 0;
                }
                mask |= 1u << src;
            }
            if (okn) c->edges[ni] = mask;
        }
    if (S->cx->errors_seen == e0) {
        for (int i = 0; i < c->n_nodes; i++) {
            int have = __builtin_popcount(c->edges[i]);
            int possible = c->n_inputs + i;
            int need = c->k_keep < possible ? c->k_keep : possible;
            if (have < need) {
                fe_error(S->cx, node_stmt[i] ? node_stmt[i]->vals[2]->tok : d->name,
                         "keep is the number of incoming edges each node keeps in the derived cell",
                         "node %d has %d incoming edge%s but keep is %d", c->n_inputs + i, have, have == 1 ? "" : "s",
                         c->k_keep);
                if (keep) fe_note(S->cx, keep->key, "keep is set here");
                break;
            }
        }
    }
    d->ok = S->cx->errors_seen == e0;
    *out = *c;
    return d->ok ? 0 : -1;
}

/* Picks the normal or reduction cell: named in the network block, or the only candidate. */
static fe_decl *select_cell(sema *S, view *net, const char *key, int want_reduction, int *none_declared) {
    fe_stmt *s = find(net, key);
    *none_declared = 0;
    if (s) {
        fe_value *v = one_value(S, s);
        if (!v) return NULL;
        if (v->kind != FE_V_IDENT) {
            fe_error(S->cx, v->tok, NULL, "'%s' expects the name of a cell, found %s", key, vdesc(v));
            return NULL;
        }
        fe_decl *d = lookup_decl(S, FE_D_CELL, v->s);
        if (!d) fe_error(S->cx, v->tok, suggest_decl(S, FE_D_CELL, v->s, NULL, 0), "unknown cell '%s'", v->s);
        return d;
    }
    fe_decl *found = NULL, *second = NULL;
    int n_cells = 0;
    for (int i = 0; i < S->prog->n_decls; i++) {
        fe_decl *d = S->prog->decls[i];
        if (d->kind != FE_D_CELL || !d->name || d->dup) continue;
        n_cells++;
        int red = S->kind == K_CNN ? cell_is_reduction(S, d) : 0;
        if (red != want_reduction) continue;
        if (!found) found = d;
        else if (!second) second = d;
    }
    if (second) {
        char hint[160];
        snprintf(hint, sizeof hint, "choose one with '%s NAME' in the network block", key);
        fe_error(S->cx, second->name, hint, "several cells could be the %s cell: '%s' and '%s'",
                 want_reduction ? "reduction" : "normal", found->name->str, second->name->str);
        return NULL;
    }
    if (!found) {
        if (n_cells == 0) {
            *none_declared = 1;
            return NULL;
        }
        const fe_decl *net_decl = net->d[0];
        if (want_reduction)
            fe_error(S->cx, net_decl->name ? net_decl->name : net_decl->kw,
                     "declare one, e.g. 'cell reduce : normal { reduction }', or name one with 'reduce NAME'",
                     "no reduction cell, but the network has reductions");
        else
            fe_error(S->cx, net_decl->name ? net_decl->name : net_decl->kw,
                     "a cell without 'reduction' is the normal cell", "no normal cell");
    }
    return found;
}

/* ---- search and train blocks --------------------------------------------------------------- */
static void rnn_search_default(ir_train_config *tc) {
    ir_train_config_default_search(tc);
    tc->batch = 256;
    tc->w_lr = 20.f;
    tc->w_lr_min = 20.f; /* constant: no cosine schedule for PTB */
    tc->w_momentum = 0.f;
    tc->w_wd = 5e-7f;
    tc->w_clip = 0.25f;
    tc->a_lr = 3e-3f;
    tc->a_beta1 = 0.9f; /* torch.optim.Adam's default, as the reference RNN search */
    tc->a_beta2 = 0.999f;
    tc->a_wd = 1e-3f;
    tc->train_portion = 1.f; /* alpha is trained on the validation split of the corpus */
    tc->crop_pad = 0;
    tc->hflip = 0;
    tc->cutout = 0;
    tc->drop_path = 0;
    tc->aux_weight = 0;
    tc->bptt = 35;
    tc->dropout = 0.75f;
    tc->dropout_h = 0.25f;
    tc->dropout_x = 0.75f;
    tc->dropout_i = 0.2f;
    tc->dropout_e = 0.f;
    tc->tar = 1e-3f;
}

/* A list of 1..IR_MAX_STAGES integers (is_float 0) or numbers in [lo, hi]. Returns its length, 0 when
 * the setting is absent, -1 after an error. */
static int get_list(sema *S, view *v, const char *key, int is_float, double lo, double hi, int *ints, float *floats) {
    fe_stmt *s = find(v, key);
    if (!s) return 0;
    fe_value *x = one_value(S, s);
    if (!x) return -1;
    if (x->kind != FE_V_LIST || x->n_items < 1 || x->n_items > IR_MAX_STAGES) {
        fe_error(S->cx, x->tok, NULL, "'%s' expects a list of 1 to %d %s, like %s", key, IR_MAX_STAGES,
                 is_float ? "numbers" : "integers", is_float ? "[0, 0.4, 0.7]" : "[5, 11, 17]");
        return -1;
    }
    for (int i = 0; i < x->n_items; i++) {
        int64_t iv;
        if (is_float ? check_float(S, x->items[i], key, lo, 0, hi, 1, &floats[i])
                     : check_int(S, x->items[i], key, (int64_t)lo, (int64_t)hi, &iv))
            return -1;
        if (!is_float) ints[i] = (int)iv;
    }
    return x->n_items;
}

/* The DARTS successors' settings of a cnn search block (docs/DSL.md): the strategy by name
 * (`strategy p_darts` or `strategy "p-darts"`), P-DARTS's stages, DARTS+'s stopping rule,
 * sharpDARTS's schedule exponent. */
/* The search block's strategy: the --strategy names, '_' for '-' (an identifier) or as written
 * (a string); an unknown one is an error at its place with a suggestion. */
static void lower_strategy(sema *S, view *v, ir_train_config *tc) {
    static const char *const names[] = {"darts", "joint", "coord", "random", "evolution", "pc_darts", "fair_darts",
                                         "rl", "enas", "p_darts", "darts_plus", "sharp_darts", "proxyless"};
    const int n_names = (int)(sizeof names / sizeof *names);
    fe_stmt *st = find(v, "strategy");
    fe_value *x = st ? one_value(S, st) : NULL;
    if (!x) return;
    char list[200] = "";
    for (int i = 0; i < n_names; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? (i == n_names - 1 ? " or " : ", ") : "", names[i]);
    }
    if (x->kind != FE_V_IDENT && x->kind != FE_V_STRING) {
        fe_error(S->cx, x->tok, NULL, "'strategy' expects %s (or its --strategy name as a string), found %s", list,
                 vdesc(x));
        return;
    }
    char name[sizeof tc->strategy];
    snprintf(name, sizeof name, "%s", x->s);
    for (char *c = name; *c; c++)
        if (*c == '-') *c = '_';
    for (int i = 0; i < n_names; i++)
        if (strcmp(name, names[i]) == 0) {
            snprintf(tc->strategy, sizeof tc->strategy, "%s", names[i]);
            for (char *c = tc->strategy; *c; c++) *c = *c == '_' ? '-' : *c;
            return;
        }
    fe_error(S->cx, x->tok, fe_suggest(S->cx, name, names, n_names), "'strategy' expects %s, not '%s'", list, x->s);
}

/* The DARTS successors' settings of a CNN search block (docs/DSL.md). */
static void lower_successors(sema *S, view *v, ir_train_config *tc) {
    get_int(S, v, "partial_channels", 1, 64, &tc->partial_channels);
    int en;
    if (get_bool(S, v, "edge_norm", &en) == 1) tc->edge_norm_off = !en;
    int n = get_list(S, v, "stages", 0, 1, 256, tc->stages, NULL);
    if (n > 0) tc->n_stages = n;
    n = get_list(S, v, "stage_ops", 0, 1, IR_MAX_CANDS, tc->stage_ops, NULL);
    if (n > 0) tc->n_stage_ops = n;
    n = get_list(S, v, "skip_dropout", 1, 0, 1, NULL, tc->skip_dropout);
    if (n > 0) tc->n_skip_dropout = n;
    get_int(S, v, "max_skip", 0, 64, &tc->max_skip);
    get_int(S, v, "warmup", 0, 100000, &tc->warmup);
    get_int(S, v, "stop_skips", 0, 64, &tc->stop_skips);
    get_int(S, v, "stop_stable", 0, 100000, &tc->stop_stable);
    get_float(S, v, "lr_power", 1, 0, 1e6, 0, &tc->lr_power);
    get_float(S, v, "latency_weight", 0, 0, 1e6, 0, &tc->latency_weight);
}

static void lower_train(sema *S, fe_decl *d, ir_train_config *tc, int is_search) {
    view v;
    build_view(S, d, &v);
    mark_used(&v);
    get_int(S, &v, "epochs", 1, 100000, &tc->epochs);
    get_int(S, &v, "batch", 1, 65536, &tc->batch);
    int have_lr = get_float(S, &v, "lr", 0, 1, 1e4, 0, &tc->w_lr);
    fe_stmt *lm = find(&v, "lr_min");
    if (get_float(S, &v, "lr_min", 0, 0, 1e4, 0, &tc->w_lr_min) == 1 && tc->w_lr_min > tc->w_lr && have_lr >= 0)
        fe_error(S->cx, lm->vals[0]->tok, "the cosine schedule anneals lr down to lr_min",
                 "lr_min %g is larger than lr %g", tc->w_lr_min, tc->w_lr);
    get_float(S, &v, "momentum", 0, 0, 1, 1, &tc->w_momentum);
    get_float(S, &v, "weight_decay", 0, 0, 1, 0, &tc->w_wd);
    get_float(S, &v, "clip", 0, 0, 1e6, 0, &tc->w_clip);
    fe_stmt *seed = find(&v, "seed");
    if (seed) {
        fe_value *x = one_value(S, seed);
        int64_t sv;
        if (x && check_int(S, x, "seed", 0, INT64_MAX, &sv) == 0) tc->seed = (uint64_t)sv;
    }
    get_int(S, &v, "subset", 0, 1000000000, &tc->subset);
    get_int(S, &v, "test_subset", 0, 1000000000, &tc->test_subset);
    if (is_search) {
        get_int(S, &v, "order", 1, 2, &tc->order);
        get_float(S, &v, "alpha_lr", 0, 1, 10, 0, &tc->a_lr);
        fe_stmt *b = find(&v, "alpha_betas");
        if (b) {
            fe_value *x = one_value(S, b);
            if (x && (x->kind != FE_V_LIST || x->n_items != 2)) {
                fe_error(S->cx, x->tok, NULL, "'alpha_betas' expects a list of two numbers, like [0.5, 0.999]");
            } else if (x) {
                float b1, b2;
                if (check_float(S, x->items[0], "alpha_betas", 0, 0, 1, 1, &b1) == 0 &&
                    check_float(S, x->items[1], "alpha_betas", 0, 0, 1, 1, &b2) == 0) {
                    tc->a_beta1 = b1;
                    tc->a_beta2 = b2;
                }
            }
        }
        get_float(S, &v, "alpha_weight_decay", 0, 0, 1, 0, &tc->a_wd);
        lower_strategy(S, &v, tc);
        if (S->kind == K_CNN) {
            get_float(S, &v, "split", 0, 1, 1, 1, &tc->train_portion);
            lower_successors(S, &v, tc);
        }
    }
    get_bool(S, &v, "sync_bn", &tc->sync_bn); /* data-parallel runs: batch norms over the global batch */
    if (S->kind == K_CNN) {
        get_int(S, &v, "crop", 0, 64, &tc->crop_pad);
        get_bool(S, &v, "flip", &tc->hflip);
        get_int(S, &v, "cutout", 0, 1024, &tc->cutout);
        if (!is_search) {
            get_float(S, &v, "drop_path", 0, 0, 1, 1, &tc->drop_path);
            get_float(S, &v, "aux_weight", 0, 0, 100, 0, &tc->aux_weight);
            get_int(S, &v, "C", 1, 4096, &S->sp->train_C);
            get_int(S, &v, "layers", 1, 256, &S->sp->train_layers);
            get_float(S, &v, "scale", 0, 0, 8, 0, &S->sp->scale_phi); /* compound scaling's phi */
        }
    } else {
        get_int(S, &v, "bptt", 1, 100000, &tc->bptt);
        get_float(S, &v, "dropout", 0, 0, 1, 1, &tc->dropout);
        get_float(S, &v, "dropout_h", 0, 0, 1, 1, &tc->dropout_h);
        get_float(S, &v, "dropout_x", 0, 0, 1, 1, &tc->dropout_x);
        get_float(S, &v, "dropout_i", 0, 0, 1, 1, &tc->dropout_i);
        get_float(S, &v, "dropout_e", 0, 0, 1, 1, &tc->dropout_e);
        get_float(S, &v, "tar", 0, 0, 100, 0, &tc->tar);
    }
}

/* ---- declarations: duplicates, unknown settings, unused things ------------------------------ */
static void check_decls(sema *S) {
    fe_program *p = S->prog;
    for (int i = 0; i < p->n_decls && !S->cx->stop; i++) {
        fe_decl *d = p->decls[i];
        /* duplicate declarations */
        for (int j = 0; j < i; j++) {
            fe_decl *e = p->decls[j];
            if (e->kind != d->kind) continue;
            int single = d->kind == FE_D_NETWORK || d->kind == FE_D_SEARCH || d->kind == FE_D_TRAIN;
            if (single) {
                fe_error(S->cx, d->kw, NULL, "a second %s block", d->kw->str);
                fe_note(S->cx, e->kw, "the first %s block is here", e->kw->str);
                d->dup = 1;
                break;
            }
            if (d->name && e->name && strcmp(d->name->str, e->name->str) == 0) {
                fe_error(S->cx, d->name, NULL, "%s '%s' is declared twice", dkind_name[d->kind], d->name->str);
                fe_note(S->cx, e->name, "first declared here");
                d->dup = 1;
                break;
            }
        }
        if (d->dup) continue;
        if (d->kind == FE_D_NETWORK && !S->network) S->network = d;
        if (d->kind == FE_D_SEARCH && !S->search) S->search = d;
        if (d->kind == FE_D_TRAIN && !S->train) S->train = d;
        /* settings: unknown keys and duplicates within the block */
        int mask = block_mask(d->kind);
        for (int j = 0; j < d->n_stmts; j++) {
            fe_stmt *s = d->stmts[j];
            const setting_info *si = find_setting(s->key->str);
            if (!si || !(si->blocks & mask)) {
                if (si && (si->blocks & B_CELL) != (mask & B_CELL)) {
                    /* a cell setting in a settings block or vice versa: clearly misplaced */
                    fe_warn(S->cx, s->key, d->kind == FE_D_CELL ? "it belongs in a network, search or train block"
                                                                : "it belongs in a cell block",
                            "setting '%s' does not belong in a %s block", s->key->str, d->kw->str);
                    s->reported = 1;
                    continue;
                }
                if (!si) {
                    const char *names[N_SETTINGS];
                    int n = 0;
                    for (int k = 0; k < N_SETTINGS; k++)
                        if (settings[k].blocks & mask) names[n++] = settings[k].name;
                    const char *hint = NULL;
                    char hbuf[128];
                    for (size_t k = 0; k < sizeof synonyms / sizeof *synonyms && !hint; k++)
                        if (strcmp(synonyms[k][0], s->key->str) == 0 &&
                            (find_setting(synonyms[k][1])->blocks & mask)) {
                            snprintf(hbuf, sizeof hbuf, "'%s' is called '%s' here", synonyms[k][0], synonyms[k][1]);
                            hint = hbuf;
                        }
                    if (!hint) hint = fe_suggest(S->cx, s->key->str, names, n);
                    fe_warn(S->cx, s->key, hint, "unknown setting '%s'", s->key->str);
                    s->reported = 1;
                    continue;
                }
            }
            if (strcmp(s->key->str, "node") == 0) continue; /* keyed by node, checked in lower_cell */
            for (int k = 0; k < j; k++)
                if (strcmp(d->stmts[k]->key->str, s->key->str) == 0) {
                    fe_error(S->cx, s->key, NULL, "'%s' is set twice in this block", s->key->str);
                    fe_note(S->cx, d->stmts[k]->key, "first set here");
                    s->reported = 1;
                    s->read = 1;
                    break;
                }
        }
    }
}

static void where_text(const setting_info *si, char *buf, size_t len) {
    const char *bn[] = {"network", "search", "train", "cell"};
    char b[64] = "";
    int nb = 0, total = 0;
    for (int i = 0; i < 4; i++) total += (si->blocks >> i) & 1;
    for (int i = 0; i < 4; i++)
        if (si->blocks & (1 << i)) {
            size_t l = strlen(b);
            snprintf(b + l, sizeof b - l, "%s%s", nb ? (nb == total - 1 ? " and " : ", ") : "", bn[i]);
            nb++;
        }
    snprintf(buf, len, "'%s' is read in %s blocks%s", si->name, b,
             si->kinds == K_CNN ? " of cnn spaces" : si->kinds == K_RNN ? " of rnn spaces" : "");
}

static void check_unused(sema *S) {
    fe_program *p = S->prog;
    for (int i = 0; i < p->n_decls && !S->cx->stop; i++) {
        fe_decl *d = p->decls[i];
        if (d->dup) continue;
        if (!d->used) {
            const fe_tok *t = d->name ? d->name : d->kw;
            if (d->base && (d->kind == FE_D_CELL || d->kind == FE_D_SETTINGS)) {
                view v; /* an unused block's bases are still checked: a cycle or an unknown base is an error */
                build_view(S, d, &v);
            }
            if (d->kind == FE_D_CELL && S->kind == K_RNN && cell_is_reduction(S, d))
                fe_warn(S->cx, t, "rnn spaces have one cell", "cell '%s' is never used", d->name->str);
            else if (d->name) fe_warn(S->cx, t, NULL, "%s '%s' is never used", dkind_name[d->kind], d->name->str);
            continue;
        }
        for (int j = 0; j < d->n_stmts; j++) {
            fe_stmt *s = d->stmts[j];
            if (s->read || s->reported) continue;
            const setting_info *si = find_setting(s->key->str);
            if (!si) continue;
            char hint[160];
            where_text(si, hint, sizeof hint);
            fe_warn(S->cx, s->key, hint, "setting '%s' is not read here", s->key->str);
        }
    }
}

/* ---- the network ------------------------------------------------------------------------------ */
static void set_name(sema *S, fe_decl *net) {
    ir_space *sp = S->sp;
    if (net->name) {
        if (strlen(net->name->str) >= sizeof sp->name)
            fe_error(S->cx, net->name, NULL, "network name is longer than %d characters", (int)sizeof sp->name - 1);
        snprintf(sp->name, sizeof sp->name, "%s", net->name->str);
        return;
    }
    const char *b = strrchr(S->cx->file, '/');
    b = b ? b + 1 : S->cx->file;
    size_t n = strcspn(b, ".");
    if (n >= sizeof sp->name) n = sizeof sp->name - 1;
    memcpy(sp->name, b, n);
    sp->name[n] = 0;
    if (!sp->name[0]) snprintf(sp->name, sizeof sp->name, "space");
}

static int lower_network(sema *S) {
    ir_space *sp = S->sp;
    fe_decl *nd = S->network;
    view v;
    build_view(S, nd, &v);
    mark_used(&v);
    const fe_tok *at = nd->name ? nd->name : nd->kw;
    static const char *const kinds[] = {"cnn", "rnn"};
    int k = 0;
    fe_stmt *kind_stmt;
    get_enum(S, &v, "kind", kinds, 2, &k, &kind_stmt);
    S->kind = k ? K_RNN : K_CNN;
    ir_space_darts_cifar10(sp);
    set_name(S, nd);
    if (S->kind == K_RNN) {
        sp->kind = IR_SPACE_RNN;
        sp->data = IR_DATA_TEXT;
        snprintf(sp->data_path, sizeof sp->data_path, "data/ptb");
        sp->emb = sp->hidden = 300;
        rnn_search_default(&sp->search);
        rnn_search_default(&sp->train);
        sp->train.epochs = 600; /* evaluation: batch 64, lr 20 then ASGD (not modelled) */
        sp->train.batch = 64;
        sp->train_C = 0;
        sp->train_layers = 0;
    } else {
        snprintf(sp->data_path, sizeof sp->data_path, "data/cifar-10-batches-bin");
    }

    /* data */
    fe_stmt *ds = find(&v, "data");
    /* indexed by ir_data_source */
    static const char *const sources[] = {"fashion_mnist", "cifar10", "text", "npy", "images", "cifar100"};
    enum { N_SOURCES = 6 };
    int src = S->kind == K_RNN ? 2 : 1;
    int ds_bad = 0;
    for (int i = 0; ds && i < ds->n_vals; i++) ds_bad |= vbad(ds->vals[i]);
    if (ds && !ds_bad) {
        int ok = ds->n_vals >= 1 && ds->n_vals <= 2 && ds->vals[0]->kind == FE_V_IDENT &&
                 (ds->n_vals == 1 || ds->vals[1]->kind == FE_V_STRING);
        if (!ok) {
            fe_error(S->cx, ds->key, "for example: data cifar10 \"data/cifar-10-batches-bin\"",
                     "'data' expects a source (fashion_mnist, cifar10, cifar100, npy, images or text) and an optional directory");
        } else {
            int f = -1;
            for (int i = 0; i < N_SOURCES; i++)
                if (strcmp(ds->vals[0]->s, sources[i]) == 0) f = i;
            if (f < 0) {
                fe_error(S->cx, ds->vals[0]->tok, fe_suggest(S->cx, ds->vals[0]->s, sources, N_SOURCES),
                         "unknown data source '%s'", ds->vals[0]->s);
            } else if ((f == 2) != (S->kind == K_RNN)) {
                fe_error(S->cx, ds->vals[0]->tok,
                         f == 2 ? "text data needs 'kind rnn'" : "rnn spaces read text: data text \"dir\"",
                         "data source '%s' does not fit a%s space", sources[f], S->kind == K_RNN ? "n rnn" : " cnn");
            } else {
                src = f;
                if (f == 0) sp->data_path[0] = 0; /* the loader's default: Debian's dataset-fashion-mnist */
                if (f == IR_DATA_CIFAR100) snprintf(sp->data_path, sizeof sp->data_path, "data/cifar-100-binary");
                if ((f == IR_DATA_NPY || f == IR_DATA_IMAGES) && ds->n_vals == 1)
                    fe_error(S->cx, ds->vals[0]->tok, f == IR_DATA_NPY ? "for example: data npy \"data/my_arrays\" (docs/DATA.md)"
                                                                       : "for example: data images \"data/my_images\" (docs/DATA.md)",
                             "'data %s' needs a directory", sources[f]);
                if (ds->n_vals == 2) {
                    if (strlen(ds->vals[1]->s) >= sizeof sp->data_path || !ds->vals[1]->s[0])
                        fe_error(S->cx, ds->vals[1]->tok, NULL, "the data directory must have 1 to %d characters",
                                 (int)sizeof sp->data_path - 1);
                    else snprintf(sp->data_path, sizeof sp->data_path, "%s", ds->vals[1]->s);
                }
            }
        }
    }
    sp->data = (ir_data_source)src;
    /* npy and image folders take their size from 'input' and their normalisation from the
       training split unless 'mean'/'std' say otherwise (std 0: not given) */
    int sized = src == IR_DATA_NPY || src == IR_DATA_IMAGES;
    if (sized) {
        memset(sp->mean, 0, sizeof sp->mean);
        memset(sp->std, 0, sizeof sp->std);
    }
    if (src == IR_DATA_CIFAR100) { /* over the 50,000 training images, pixel/255 */
        static const float m100[3] = {0.50707516f, 0.48654887f, 0.44091785f}, s100[3] = {0.26733429f, 0.25643846f, 0.27615047f};
        sp->classes = 100;
        memcpy(sp->mean, m100, sizeof m100);
        memcpy(sp->std, s100, sizeof s100);
    }
    if (src == 0) {
        sp->in_c = 1;
        sp->in_h = sp->in_w = 28;
        memset(sp->mean, 0, sizeof sp->mean);
        memset(sp->std, 0, sizeof sp->std);
        sp->mean[0] = 0.28604060f;
        sp->std[0] = 0.35302424f;
    }

    if (S->kind == K_CNN) {
        fe_stmt *is = find(&v, "input");
        if (is) {
            fe_value *x = one_value(S, is);
            if (x && !vbad(x)) {
                if (x->kind != FE_V_SHAPE || x->tok->ndims != 3)
                    fe_error(S->cx, x->tok, "for example: input 3x32x32", "'input' expects channels x height x width");
                else if (x->tok->dims[0] < 1 || x->tok->dims[0] > 4)
                    fe_error(S->cx, x->tok, NULL, "input channels must be between 1 and 4, not %d", x->tok->dims[0]);
                else if (x->tok->dims[1] < 2 || x->tok->dims[2] < 2 || x->tok->dims[1] > 4096 || x->tok->dims[2] > 4096)
                    fe_error(S->cx, x->tok, NULL, "input height and width must be between 2 and 4096");
                else if (sized) {
                    if (src == IR_DATA_IMAGES && x->tok->dims[0] != 1 && x->tok->dims[0] != 3)
                        fe_error(S->cx, x->tok, "images are read as grey (1) or RGB (3)",
                                 "image folders give 1 or 3 channels, not %d", x->tok->dims[0]);
                    sp->in_c = x->tok->dims[0];
                    sp->in_h = x->tok->dims[1];
                    sp->in_w = x->tok->dims[2];
                } else if (x->tok->dims[0] != sp->in_c || x->tok->dims[1] != sp->in_h || x->tok->dims[2] != sp->in_w) {
                    fe_error(S->cx, x->tok, "the loader does not resize these; data images and data npy follow 'input'", "%s images are %dx%dx%d, not %s",
                             sources[src], sp->in_c, sp->in_h, sp->in_w, x->tok->str);
                    if (ds) fe_note(S->cx, ds->key, "the data source is set here");
                }
            }
        }
        get_int(S, &v, "classes", 2, 100000, &sp->classes);
        const char *ms[2] = {"mean", "std"};
        float *mv[2] = {sp->mean, sp->std};
        for (int m = 0; m < 2; m++) {
            fe_stmt *s = find(&v, ms[m]);
            if (!s) continue;
            fe_value *x = one_value(S, s);
            if (!x) continue;
            if (x->kind != FE_V_LIST) {
                fe_error(S->cx, x->tok, NULL, "'%s' expects a list with one number per input channel", ms[m]);
                continue;
            }
            if (x->n_items != sp->in_c) {
                fe_error(S->cx, x->tok, NULL, "'%s' needs %d value%s (one per input channel), not %d", ms[m], sp->in_c,
                         sp->in_c == 1 ? "" : "s", x->n_items);
                continue;
            }
            for (int i = 0; i < x->n_items; i++) {
                float f;
                if (check_float(S, x->items[i], ms[m], m ? 0 : -1e6, m, 1e6, 0, &f) == 0) mv[m][i] = f;
            }
        }
        get_int(S, &v, "C", 1, 4096, &sp->C);
        int have_layers = get_int(S, &v, "layers", 1, 256, &sp->layers);
        get_int(S, &v, "stem", 1, 16, &sp->stem_mult);
        get_int(S, &v, "growth", 1, 8, &sp->growth);
        fe_stmt *rs = find(&v, "reduce_at");
        if (rs) {
            fe_value *x = one_value(S, rs);
            if (x && x->kind != FE_V_LIST) {
                fe_error(S->cx, x->tok, "for example: reduce_at [2, 5]", "'reduce_at' expects a list of cell indices");
            } else if (x) {
                if (x->n_items > IR_MAX_REDUCE) {
                    fe_error(S->cx, x->items[IR_MAX_REDUCE]->tok, NULL, "at most %d reductions", IR_MAX_REDUCE);
                } else {
                    int n = 0, ok = 1;
                    for (int i = 0; i < x->n_items; i++) {
                        int64_t r;
                        if (check_int(S, x->items[i], "reduce_at", 0, sp->layers - 1, &r)) {
                            ok = 0;
                            continue;
                        }
                        if (n && r <= sp->reduce_at[n - 1]) {
                            fe_error(S->cx, x->items[i]->tok, NULL, "reduction cells must be listed in increasing order");
                            ok = 0;
                            continue;
                        }
                        sp->reduce_at[n++] = (int)r;
                    }
                    if (ok) sp->n_reduce = n;
                }
            }
        } else if (have_layers == 1) {
            /* the DARTS rule: cells floor(L/3) and floor(2L/3) */
            sp->n_reduce = 0;
            int a = sp->layers / 3, b = 2 * sp->layers / 3;
            sp->reduce_at[sp->n_reduce++] = a;
            if (b != a) sp->reduce_at[sp->n_reduce++] = b;
        }
        /* the feature map must halve cleanly at each reduction (FactorizedReduce) */
        int h = sp->in_h, w = sp->in_w;
        for (int r = 0; r < sp->n_reduce; r++) {
            if (h % 2 || w % 2) {
                fe_stmt *where = find(&v, "reduce_at");
                if (!where) where = find(&v, "layers");
                fe_error(S->cx, where ? where->key : at, "FactorizedReduce halves the feature map with stride-2 convolutions",
                         "reduction %d (cell %d) would halve a %dx%d feature map; it must be even", r + 1,
                         sp->reduce_at[r], h, w);
                break;
            }
            h /= 2;
            w /= 2;
        }
    } else {
        get_int(S, &v, "emb", 1, 65536, &sp->emb);
        fe_stmt *hs = find(&v, "hidden");
        get_int(S, &v, "hidden", 1, 65536, &sp->hidden);
        if (sp->emb != sp->hidden)
            fe_error(S->cx, hs ? hs->key : at, "the embedding is tied to the decoder, so emb must equal hidden",
                     "emb %d and hidden %d differ", sp->emb, sp->hidden);
    }

    /* cells */
    int none;
    fe_decl *nc = select_cell(S, &v, "normal", 0, &none);
    if (nc) {
        nc->used = 1;
        lower_cell(S, nc, &sp->normal, 1);
    } else if (none && S->kind == K_RNN) {
        rnn_cell_default(&sp->normal);
    }
    if (S->kind == K_RNN) {
        if (sp->normal.n_inputs != 1 && nc && nc->ok)
            fe_error(S->cx, nc->name, "the recurrent cell's only input is s0 (from x_t and h_t-1)",
                     "a recurrent cell has 1 input, not %d", sp->normal.n_inputs);
        sp->reduce = sp->normal;
    } else if (sp->n_reduce > 0) {
        fe_decl *rc = select_cell(S, &v, "reduce", 1, &none);
        if (rc) {
            rc->used = 1;
            lower_cell(S, rc, &sp->reduce, 1);
        }
    } else {
        find(&v, "reduce");
        sp->reduce = sp->normal;
    }
    return 0;
}

int fe_sema(fe_ctx *cx, fe_program *prog, ir_space *out) {
    sema S = {.cx = cx, .prog = prog, .sp = out, .kind = K_CNN};
    ir_space_darts_cifar10(out);
    check_decls(&S);
    if (cx->stop) return -1;
    if (!S.network) {
        fe_diag_at(cx, FE_SEV_ERROR, NULL, 0, "add one, e.g. network cifar { input 3x32x32; classes 10 }",
                   "no network block");
        return -1;
    }
    lower_network(&S);
    if (S.search) lower_train(&S, S.search, &out->search, 1);
    if (S.train) lower_train(&S, S.train, &out->train, 0);
    if (S.kind == K_CNN) ir_space_compound_scale(out); /* `scale PHI` (EfficientNet) */
    /* cells and op sets nobody used still deserve their errors */
    for (int i = 0; i < prog->n_decls && !cx->stop; i++) {
        fe_decl *d = prog->decls[i];
        ir_cell scratch;
        if (d->dup) continue;
        if (d->kind == FE_D_CELL && d->name) lower_cell(&S, d, &scratch, 0);
        if (d->kind == FE_D_OPS) {
            int used = d->used;
            resolve_opset(&S, d, 0);
            d->used = used;
        }
    }
    if (S.kind == K_CNN && out->train.aux_weight > 0) {
        /* the auxiliary head pools 5x5 stride 3 then convolves 2x2: it needs an 8x8 map */
        int h = out->in_h / 4, w = out->in_w / 4;
        if (h < 8 || w < 8) {
            view tv = {.n = 0};
            fe_stmt *aw = NULL;
            if (S.train) {
                build_view(&S, S.train, &tv);
                aw = find(&tv, "aux_weight");
            }
            if (aw) fe_error(cx, aw->key, "set aux_weight 0, or use larger images",
                             "the auxiliary head needs an 8x8 feature map after the second reduction, and a %dx%d input gives %dx%d",
                             out->in_h, out->in_w, h, w);
            else out->train.aux_weight = 0; /* the default only applies where it fits */
        }
    }
    int depthwise = 0;
    for (int o = 0; o < out->normal.n_ops; o++)
        depthwise |= out->normal.ops[o].kind == IR_CAND_SEP_CONV || out->normal.ops[o].kind == IR_CAND_DIL_CONV ||
                     out->normal.ops[o].kind == IR_CAND_SHARP_SEP_CONV;
    for (int o = 0; o < out->reduce.n_ops; o++)
        depthwise |= out->reduce.ops[o].kind == IR_CAND_SEP_CONV || out->reduce.ops[o].kind == IR_CAND_DIL_CONV ||
                     out->reduce.ops[o].kind == IR_CAND_SHARP_SEP_CONV;
    if (S.kind == K_CNN && depthwise && cx->errors_seen == 0) {
        /* sep_conv and dil_conv are depthwise: one group per channel, and the IR takes at most
           IR_MAX_GROUPS; the widest cells have C * growth^reductions channels */
        fe_decl *blocks[2] = {S.network, S.train};
        int Cs[2] = {out->C, out->train_C > 0 ? out->train_C : out->C};
        for (int b = 0; b < 2; b++) {
            int64_t ch = Cs[b];
            for (int r = 0; r < out->n_reduce; r++) ch *= out->growth;
            if (ch <= IR_MAX_GROUPS || (b == 1 && Cs[1] == Cs[0])) continue;
            view bv = {.n = 0};
            fe_stmt *cs = NULL;
            if (blocks[b]) {
                build_view(&S, blocks[b], &bv);
                cs = find(&bv, "C");
            }
            if (!cs) { /* the train block inherits the network's C */
                view nv = {.n = 0};
                build_view(&S, S.network, &nv);
                cs = find(&nv, "C");
            }
            const fe_tok *at = cs ? cs->key : S.network->name ? S.network->name : S.network->kw;
            fe_error(cx, at, "lower C (or growth, or the number of reductions)",
                     "%sC %d grows to %lld channels after %d reduction%s (growth %d); depthwise convolutions "
                     "(sep_conv, dil_conv) take at most %d", b ? "the retraining network's " : "", Cs[b], (long long)ch,
                     out->n_reduce, out->n_reduce == 1 ? "" : "s", out->growth, IR_MAX_GROUPS);
        }
    }
    if (!cx->stop && cx->errors_seen == 0) {
        char err[256];
        if (ir_space_check(out, err, sizeof err) != 0) {
            const fe_tok *at = S.network->name ? S.network->name : S.network->kw;
            fe_error(cx, at, NULL, "inconsistent space: %s", err);
        }
    }
    check_unused(&S);
    return cx->errors_seen ? -1 : 0;
}
