/* fe_int.h — internals shared by the front end's stages (lexer.c, parser.c, sema.c,
 * diag.c): the per-compilation arena, tokens, the syntax tree and the diagnostic helpers.
 * Not part of the public API (fe.h). */
#ifndef DARTSC_FE_INT_H
#define DARTSC_FE_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "fe.h"

/* ---- arena: everything a compilation allocates, freed at once -------------------------- */
typedef struct fe_arena_block fe_arena_block;
typedef struct fe_arena {
    fe_arena_block *head;
} fe_arena;

void *fe_alloc(fe_arena *a, size_t size); /* zeroed; never NULL (aborts only if malloc fails) */
char *fe_strndup(fe_arena *a, const char *s, size_t n);
void fe_arena_free(fe_arena *a);

/* ---- compilation context ------------------------------------------------------------ */
typedef struct fe_ctx {
    const char *file;
    const char *src; /* the source, len bytes, may contain NULs */
    size_t len;
    int *line_starts; /* byte offset of each line */
    int n_lines;
    fe_arena arena;
    fe_diags *diags;
    int stop; /* too many errors: stages return as soon as they see it */
    int last_dropped; /* the last diagnostic was suppressed: drop its notes too */
    int diag_base, errors_base, warnings_base; /* the list's counts when this compilation began */
    int errors_seen; /* errors raised, counting duplicates that were not recorded again */
} fe_ctx;

/* ---- tokens --------------------------------------------------------------------------- */
typedef enum fe_tkind {
    FE_TK_IDENT,
    FE_TK_INT,    /* 42 */
    FE_TK_FLOAT,  /* 0.025, 3e-4 */
    FE_TK_STRING, /* "data/cifar-10" */
    FE_TK_SHAPE,  /* 3x32x32 */
    FE_TK_PUNCT,  /* { } [ ] ( ) , ; : = - */
    FE_TK_BAD,    /* bytes the lexer already reported; the parser stays quiet about them */
    FE_TK_EOF,
} fe_tkind;

#define FE_MAX_SHAPE 4

typedef struct fe_tok {
    fe_tkind kind;
    const char *loc; /* into the source */
    int len;
    int bol;         /* first token on its line */
    int bad;         /* a literal the lexer already reported (overflow): value is 0 */
    int64_t ival;
    double fval;
    char *str;       /* identifier, string contents or punctuator, NUL-terminated */
    int dims[FE_MAX_SHAPE], ndims;
} fe_tok;

/* Tokenises the whole source; the array ends with an EOF token. */
fe_tok *fe_lex(fe_ctx *cx, int *n_out);
int fe_tok_is(const fe_tok *t, const char *punct_or_ident);

/* ---- syntax tree ----------------------------------------------------------------------- */
typedef enum fe_vkind {
    FE_V_INT, FE_V_FLOAT, FE_V_IDENT, FE_V_STRING, FE_V_SHAPE,
    FE_V_LIST, /* [a, b] */
    FE_V_CALL, /* sep_conv(3) */
    FE_V_SET,  /* { none, skip } */
} fe_vkind;

typedef struct fe_value {
    fe_vkind kind;
    const fe_tok *tok; /* the literal, the name, or the opening bracket */
    int64_t i;         /* INT (sign applied) */
    double f;          /* FLOAT, and INT as double */
    const char *s;     /* IDENT, STRING, CALL name */
    struct fe_value **items; /* LIST, CALL arguments, SET */
    int n_items;
} fe_value;

typedef struct fe_stmt {
    const fe_tok *key;
    fe_value **vals;
    int n_vals;
    int read;     /* some lowering read it (or a derived block overrode it) */
    int reported; /* already warned about */
} fe_stmt;

typedef enum fe_dkind { FE_D_OPS, FE_D_CELL, FE_D_NETWORK, FE_D_SEARCH, FE_D_TRAIN, FE_D_SETTINGS, FE_D_COUNT } fe_dkind;

typedef struct fe_decl {
    fe_dkind kind;
    const fe_tok *kw, *name, *base; /* name, base: NULL when absent */
    fe_stmt **stmts;
    int n_stmts;
    fe_value *set; /* OPS: the right-hand side */
    const fe_tok *end; /* closing brace or last token */
    /* sema scratch */
    int used, state, ok;
    int chain_err; /* a bad ':' base was reported */
    int dup;       /* a second declaration of the same name: ignored */
    struct fe_decl *base_decl;
    int n_cands;
    ir_cand cands[IR_MAX_CANDS];
    const fe_tok *cand_tok[IR_MAX_CANDS];
    ir_cell cell; /* CELL: lowered once */
} fe_decl;

typedef struct fe_program {
    fe_decl **decls;
    int n_decls;
    const fe_tok *eof;
} fe_program;

void fe_parse(fe_ctx *cx, fe_tok *toks, int n, fe_program *prog);
int fe_sema(fe_ctx *cx, fe_program *prog, ir_space *out);

/* Grows an arena array: returns a copy with room for at least need elements. */
void *fe_grow(fe_arena *a, void *p, int n, int *cap, int need, size_t elem);

/* ---- diagnostics ------------------------------------------------------------------------ */
/* At a token (caret spans the token), at a byte position, or for the whole file (pos NULL). */
void fe_error(fe_ctx *cx, const fe_tok *t, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void fe_warn(fe_ctx *cx, const fe_tok *t, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void fe_note(fe_ctx *cx, const fe_tok *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fe_diag_at(fe_ctx *cx, fe_severity sev, const char *pos, int len, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void fe_diag_va(fe_ctx *cx, fe_severity sev, const char *pos, int len, const char *hint, const char *fmt,
                va_list ap);

/* "did you mean 'x'?" for the nearest of n names by edit distance, or NULL. Returns a
 * pointer to a static-lifetime-free buffer in the arena. */
const char *fe_suggest(fe_ctx *cx, const char *word, const char *const *names, int n);
int fe_edit_distance(const char *a, const char *b);

#endif
