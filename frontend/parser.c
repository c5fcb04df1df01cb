/* parser.c — recursive descent over the token array, building the syntax tree (fe_program).
 *
 * The parser knows the shape of the language only; what a setting means, and whether it
 * exists, is sema's business (sema.c), so an unknown setting is a warning there, not a
 * syntax error here. Errors recover at the statement level (skip to ';', a new line or the
 * closing brace) and at the declaration level (skip to the next declaration keyword that
 * starts a line), so one run reports several errors. Nesting inside a value is capped at
 * FE_MAX_DEPTH; skipping is iterative, so no input makes the parser recurse unboundedly. */
#include <string.h>

#include "fe_int.h"

typedef struct parser {
    fe_ctx *cx;
    fe_tok *t; /* current */
    fe_tok *end;
} parser;

static const char *decl_kw[] = {"ops", "cell", "network", "search", "train", "settings"};

static int is_punct(const fe_tok *t, const char *s) { return t->kind == FE_TK_PUNCT && strcmp(t->str, s) == 0; }
static int at_eof(parser *P) { return P->t->kind == FE_TK_EOF; }
static void next(parser *P) {
    if (!at_eof(P)) P->t++;
}

static const char *describe(const fe_tok *t) {
    switch (t->kind) {
    case FE_TK_IDENT: return "a name";
    case FE_TK_INT: return "an integer";
    case FE_TK_FLOAT: return "a number";
    case FE_TK_STRING: return "a string";
    case FE_TK_SHAPE: return "a shape";
    case FE_TK_EOF: return "the end of the file";
    case FE_TK_BAD: return "an invalid character";
    default: return NULL;
    }
}

static void expected(parser *P, const char *what, const char *hint) {
    if (P->t->kind == FE_TK_BAD) return; /* the lexer has reported it */
    const char *d = describe(P->t);
    if (d) fe_error(P->cx, P->t, hint, "expected %s, found %s", what, d);
    else fe_error(P->cx, P->t, hint, "expected %s, found '%s'", what, P->t->str);
}

/* top: skipping at the top level, where any "ops" that starts a line starts a declaration */
static int is_decl_start(parser *P, int top) {
    const fe_tok *t = P->t;
    if (t->kind != FE_TK_IDENT || !t->bol) return 0;
    if (strcmp(t->str, "ops") == 0) /* "ops NAME =" declares; "ops NAME" inside a cell is a setting */
        return top || (t + 2 < P->end && t[1].kind == FE_TK_IDENT && is_punct(&t[2], "="));
    for (size_t i = 1; i < sizeof decl_kw / sizeof *decl_kw; i++)
        if (strcmp(t->str, decl_kw[i]) == 0) return 1;
    return 0;
}

/* Skips the rest of a statement: to ';' (consumed), or before '}' or a token that starts a
 * line, at bracket depth 0. Always makes progress unless at '}' or EOF. */
static void skip_stmt(parser *P) {
    long depth = 0;
    int first = 1;
    while (!at_eof(P)) {
        fe_tok *t = P->t;
        if (depth == 0 && !first) {
            if (is_punct(t, "}") || t->bol) return;
        }
        if (depth == 0 && is_punct(t, ";")) {
            next(P);
            return;
        }
        if (depth == 0 && is_punct(t, "}")) return;
        if (is_punct(t, "{") || is_punct(t, "[") || is_punct(t, "(")) depth++;
        else if ((is_punct(t, "}") || is_punct(t, "]") || is_punct(t, ")")) && depth > 0) depth--;
        first = 0;
        next(P);
    }
}

/* Skips to the next declaration keyword that starts a line, at brace depth 0. */
static void skip_decl(parser *P) {
    long depth = 0;
    next(P);
    while (!at_eof(P)) {
        fe_tok *t = P->t;
        if (depth == 0 && is_decl_start(P, 1)) return;
        if (is_punct(t, "{") || is_punct(t, "[") || is_punct(t, "(")) depth++;
        else if ((is_punct(t, "}") || is_punct(t, "]") || is_punct(t, ")")) && depth > 0) depth--;
        next(P);
    }
}

static fe_value *new_value(parser *P, fe_vkind k, const fe_tok *t) {
    fe_value *v = fe_alloc(&P->cx->arena, sizeof *v);
    v->kind = k;
    v->tok = t;
    return v;
}

static fe_value *parse_value(parser *P, int depth);

/* items = [value ("," value)* [","]] close */
static int parse_items(parser *P, fe_value *v, const char *close, int depth) {
    int cap = 0;
    const fe_tok *open = P->t;
    next(P);
    while (!is_punct(P->t, close)) {
        if (at_eof(P)) {
            fe_error(P->cx, P->t, NULL, "expected '%s' to close '%s'", close, open->str);
            fe_note(P->cx, open, "'%s' opened here", open->str);
            return -1;
        }
        fe_value *it = parse_value(P, depth + 1);
        if (!it) return -1;
        v->items = fe_grow(&P->cx->arena, v->items, v->n_items, &cap, v->n_items + 1, sizeof *v->items);
        v->items[v->n_items++] = it;
        if (is_punct(P->t, ",")) {
            next(P);
            continue;
        }
        if (!is_punct(P->t, close)) {
            char what[32];
            snprintf(what, sizeof what, "',' or '%s'", close);
            expected(P, what, NULL);
            if (!at_eof(P)) fe_note(P->cx, open, "to match this '%s'", open->str);
            return -1;
        }
    }
    next(P);
    return 0;
}

/* value = "-"? (INT | FLOAT)
 *       | STRING | SHAPE
 *       | IDENT ["(" items ")"]        a name, or an op with parameters: dil_conv(3, 2)
 *       | "[" items "]"                a list
 *       | "{" items "}"                an op set */
static fe_value *parse_value(parser *P, int depth) {
    fe_tok *t = P->t;
    if (depth > FE_MAX_DEPTH) {
        fe_error(P->cx, t, NULL, "values nest deeper than %d levels", FE_MAX_DEPTH);
        return NULL;
    }
    if (is_punct(t, "-")) {
        fe_tok *n = t + 1;
        if (n->kind != FE_TK_INT && n->kind != FE_TK_FLOAT) {
            next(P);
            expected(P, "a number after '-'", NULL);
            return NULL;
        }
        next(P);
        fe_value *v = parse_value(P, depth);
        if (v) {
            v->i = -v->i;
            v->f = -v->f;
            v->tok = t;
        }
        return v;
    }
    switch (t->kind) {
    case FE_TK_INT: {
        fe_value *v = new_value(P, FE_V_INT, t);
        v->i = t->ival;
        v->f = t->fval;
        next(P);
        return v;
    }
    case FE_TK_FLOAT: {
        fe_value *v = new_value(P, FE_V_FLOAT, t);
        v->f = t->fval;
        next(P);
        return v;
    }
    case FE_TK_STRING: {
        fe_value *v = new_value(P, FE_V_STRING, t);
        v->s = t->str;
        next(P);
        return v;
    }
    case FE_TK_SHAPE: {
        fe_value *v = new_value(P, FE_V_SHAPE, t);
        next(P);
        return v;
    }
    case FE_TK_BAD: {
        fe_value *v = new_value(P, FE_V_IDENT, t);
        v->s = "";
        next(P);
        return v;
    }
    case FE_TK_IDENT: {
        fe_value *v = new_value(P, FE_V_IDENT, t);
        v->s = t->str;
        next(P);
        if (is_punct(P->t, "(") && !P->t->bol) {
            v->kind = FE_V_CALL;
            if (parse_items(P, v, ")", depth) != 0) return NULL;
        }
        return v;
    }
    default: break;
    }
    if (is_punct(t, "[")) {
        fe_value *v = new_value(P, FE_V_LIST, t);
        return parse_items(P, v, "]", depth) == 0 ? v : NULL;
    }
    if (is_punct(t, "{")) {
        fe_value *v = new_value(P, FE_V_SET, t);
        return parse_items(P, v, "}", depth) == 0 ? v : NULL;
    }
    expected(P, "a value", NULL);
    return NULL;
}

static int at_stmt_end(parser *P) {
    return at_eof(P) || P->t->bol || is_punct(P->t, ";") || is_punct(P->t, "}");
}

/* stmt = IDENT value* (";" | NEWLINE | before "}") */
static fe_stmt *parse_stmt(parser *P) {
    fe_stmt *s = fe_alloc(&P->cx->arena, sizeof *s);
    s->key = P->t;
    next(P);
    int cap = 0;
    while (!at_stmt_end(P)) {
        fe_value *v = parse_value(P, 0);
        if (!v) {
            skip_stmt(P);
            return NULL;
        }
        s->vals = fe_grow(&P->cx->arena, s->vals, s->n_vals, &cap, s->n_vals + 1, sizeof *s->vals);
        s->vals[s->n_vals++] = v;
    }
    if (is_punct(P->t, ";")) next(P);
    return s;
}

/* block = "{" stmt* "}" */
static void parse_block(parser *P, fe_decl *d) {
    if (!is_punct(P->t, "{")) {
        expected(P, "'{'", NULL);
        skip_decl(P);
        return;
    }
    const fe_tok *open = P->t;
    next(P);
    int cap = 0;
    while (!P->cx->stop) {
        if (is_punct(P->t, "}")) {
            d->end = P->t;
            next(P);
            return;
        }
        if (at_eof(P) || is_decl_start(P, 0)) {
            if (at_eof(P)) fe_error(P->cx, P->t, NULL, "expected '}' to close the %s block", decl_kw[d->kind]);
            else fe_error(P->cx, P->t, NULL, "expected '}' before this declaration");
            fe_note(P->cx, open, "the block opened here");
            d->end = P->t;
            return;
        }
        if (is_punct(P->t, ";")) {
            next(P);
            continue;
        }
        if (P->t->kind != FE_TK_IDENT) {
            expected(P, "a setting name", NULL);
            skip_stmt(P);
            continue;
        }
        fe_stmt *s = parse_stmt(P);
        if (!s) continue;
        d->stmts = fe_grow(&P->cx->arena, d->stmts, d->n_stmts, &cap, d->n_stmts + 1, sizeof *d->stmts);
        d->stmts[d->n_stmts++] = s;
    }
}

/* decl = "ops" IDENT "=" value
 *      | "cell" IDENT [":" IDENT] block
 *      | "settings" IDENT [":" IDENT] block
 *      | "network" [IDENT] [":" IDENT] block
 *      | ("search" | "train") [":" IDENT] block */
static fe_decl *parse_decl(parser *P) {
    fe_tok *kw = P->t;
    int k = -1;
    if (kw->kind == FE_TK_IDENT)
        for (int i = 0; i < FE_D_COUNT; i++)
            if (strcmp(kw->str, decl_kw[i]) == 0) k = i;
    if (k < 0) {
        const char *hint = kw->kind == FE_TK_IDENT ? fe_suggest(P->cx, kw->str, decl_kw, FE_D_COUNT) : NULL;
        if (!hint)
            hint = "a file holds declarations: ops, cell, network, search, train, settings";
        expected(P, "a declaration", hint);
        skip_decl(P);
        return NULL;
    }
    fe_decl *d = fe_alloc(&P->cx->arena, sizeof *d);
    d->kind = (fe_dkind)k;
    d->kw = kw;
    next(P);
    int named = k == FE_D_OPS || k == FE_D_CELL || k == FE_D_SETTINGS;
    if (P->t->kind == FE_TK_IDENT && (named || k == FE_D_NETWORK)) {
        d->name = P->t;
        next(P);
    } else if (named) {
        char what[48];
        snprintf(what, sizeof what, "a name for the %s", k == FE_D_OPS ? "op set" : kw->str);
        expected(P, what, NULL);
        skip_decl(P);
        return NULL;
    }
    if (k == FE_D_OPS) {
        if (!is_punct(P->t, "=")) {
            expected(P, "'='", "an op set is declared like: ops mine = { none, skip, sep_conv(3) }");
            skip_decl(P);
            return NULL;
        }
        next(P);
        d->set = parse_value(P, 0);
        if (!d->set) {
            skip_decl(P);
            return NULL;
        }
        d->end = P->t - 1;
        if (!at_eof(P) && !P->t->bol && !is_punct(P->t, ";")) {
            expected(P, "the end of the op set declaration", "put each declaration on its own line");
            skip_decl(P);
        } else if (is_punct(P->t, ";")) {
            next(P);
        }
        return d;
    }
    if (is_punct(P->t, ":")) {
        next(P);
        if (P->t->kind != FE_TK_IDENT) {
            expected(P, "the name of a block to extend", NULL);
            skip_decl(P);
            return NULL;
        }
        d->base = P->t;
        next(P);
    }
    parse_block(P, d);
    return d;
}

/* program = decl* */
void fe_parse(fe_ctx *cx, fe_tok *toks, int n, fe_program *prog) {
    parser P = {.cx = cx, .t = toks, .end = toks + n};
    int cap = 0;
    memset(prog, 0, sizeof *prog);
    while (!at_eof(&P) && !cx->stop) {
        if (is_punct(P.t, ";")) {
            next(&P);
            continue;
        }
        fe_decl *d = parse_decl(&P);
        if (!d) continue;
        prog->decls = fe_grow(&cx->arena, prog->decls, prog->n_decls, &cap, prog->n_decls + 1, sizeof *prog->decls);
        prog->decls[prog->n_decls++] = d;
    }
    prog->eof = &toks[n - 1];
}
