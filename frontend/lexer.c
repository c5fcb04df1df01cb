/* lexer.c — turns DSL source bytes into tokens.
 *
 *   token   = IDENT | INT | FLOAT | STRING | SHAPE | punct
 *   IDENT   = [A-Za-z_][A-Za-z0-9_]*
 *   INT     = [0-9]+
 *   FLOAT   = [0-9]+ ("." [0-9]+)? ([eE] [+-]? [0-9]+)?      (with a "." or an exponent)
 *   SHAPE   = [0-9]+ ("x" [0-9]+)+                           e.g. 3x32x32
 *   STRING  = '"' (char | '\"' | '\\' | '\n' | '\t')* '"'  on one line
 *   punct   = { } [ ] ( ) , ; : = -
 *   comment = "#" to the end of the line
 *
 * Newlines are not tokens; each token records whether it starts a line (bol), which the
 * parser uses to end a statement. Bad bytes (NUL, invalid UTF-8, stray characters) are
 * reported once per run and skipped, so lexing always completes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe_int.h"

static int is_ident0(int c) { return isalpha(c) || c == '_'; }
static int is_ident1(int c) { return isalnum(c) || c == '_'; }

int fe_tok_is(const fe_tok *t, const char *s) {
    return (t->kind == FE_TK_PUNCT || t->kind == FE_TK_IDENT) && strcmp(t->str, s) == 0;
}

/* Valid UTF-8 sequence length at p, or 0 (duplicated from diag.c to keep stages apart). */
static int utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Can a token start with this byte? (used to group runs of bad bytes into one error) */
static int starts_token(int c) {
    return is_ident0(c) || isdigit(c) || c == '"' || c == '#' || strchr("{}[](),;:=-", c) != NULL || c == ' ' ||
           c == '\t' || c == '\n' || c == '\r';
}

typedef struct lexer {
    fe_ctx *cx;
    const unsigned char *s;
    size_t n, p;
    int bol;
    fe_tok *toks;
    int nt, cap;
} lexer;

static fe_tok *push(lexer *L, fe_tkind k, size_t start, size_t end) {
    L->toks = fe_grow(&L->cx->arena, L->toks, L->nt, &L->cap, L->nt + 1, sizeof(fe_tok));
    fe_tok *t = &L->toks[L->nt++];
    memset(t, 0, sizeof *t);
    t->kind = k;
    t->loc = (const char *)L->s + start;
    t->len = (int)(end - start > 1u << 30 ? 1u << 30 : end - start);
    t->bol = L->bol;
    L->bol = 0;
    return t;
}

/* Parses digits [a, b) into *v; returns -1 on overflow past max. */
static int parse_digits(const unsigned char *s, size_t a, size_t b, int64_t max, int64_t *v) {
    int64_t x = 0;
    for (size_t i = a; i < b; i++) {
        int d = s[i] - '0';
        if (x > (max - d) / 10) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static void lex_number(lexer *L) {
    const unsigned char *s = L->s;
    size_t st = L->p, p = L->p, n = L->n;
    while (p < n && isdigit(s[p])) p++;
    /* shape: 3x32x32 */
    if (p + 1 < n && s[p] == 'x' && isdigit(s[p + 1])) {
        int dims[FE_MAX_SHAPE + 1], nd = 0, bad = 0;
        size_t a = st;
        for (;;) {
            size_t b = a;
            while (b < n && isdigit(s[b])) b++;
            int64_t v;
            if (parse_digits(s, a, b, 1000000000, &v) != 0) bad = 1, v = 0;
            if (nd <= FE_MAX_SHAPE) dims[nd] = (int)v;
            nd++;
            if (b + 1 < n && s[b] == 'x' && isdigit(s[b + 1])) a = b + 1;
            else {
                p = b;
                break;
            }
        }
        if (p < n && is_ident1(s[p])) {
            while (p < n && is_ident1(s[p])) p++;
            fe_tok *t = push(L, FE_TK_SHAPE, st, p);
            t->bad = 1;
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, "a shape is written like 3x32x32", "malformed shape '%.*s'",
                       t->len > 40 ? 40 : t->len, t->loc);
            L->p = p;
            return;
        }
        fe_tok *t = push(L, FE_TK_SHAPE, st, p);
        if (nd > FE_MAX_SHAPE) {
            t->bad = 1;
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, NULL, "a shape has at most %d dimensions, this one has %d",
                       FE_MAX_SHAPE, nd);
        } else if (bad) {
            t->bad = 1;
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, NULL, "shape dimension too large in '%.*s'",
                       t->len > 40 ? 40 : t->len, t->loc);
        } else {
            memcpy(t->dims, dims, sizeof(int) * (size_t)nd);
            t->ndims = nd;
        }
        t->str = fe_strndup(&L->cx->arena, t->loc, (size_t)t->len);
        L->p = p;
        return;
    }
    int is_float = 0;
    if (p + 1 < n && s[p] == '.' && isdigit(s[p + 1])) {
        is_float = 1;
        p++;
        while (p < n && isdigit(s[p])) p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        size_t q = p + 1;
        if (q < n && (s[q] == '+' || s[q] == '-')) q++;
        if (q < n && isdigit(s[q])) {
            is_float = 1;
            p = q;
            while (p < n && isdigit(s[p])) p++;
        }
    }
    if (p < n && (is_ident1(s[p]) || s[p] == '.')) {
        while (p < n && (is_ident1(s[p]) || s[p] == '.')) p++;
        fe_tok *t = push(L, FE_TK_INT, st, p);
        t->bad = 1;
        t->str = fe_strndup(&L->cx->arena, t->loc, (size_t)t->len);
        fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, NULL, "malformed number '%.*s'", t->len > 40 ? 40 : t->len,
                   t->loc);
        L->p = p;
        return;
    }
    fe_tok *t = push(L, is_float ? FE_TK_FLOAT : FE_TK_INT, st, p);
    t->str = fe_strndup(&L->cx->arena, t->loc, (size_t)t->len);
    if (is_float) {
        errno = 0;
        double v = strtod(t->str, NULL);
        if (errno == ERANGE && isinf(v)) {
            t->bad = 1;
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, NULL, "number '%.*s' is too large",
                       t->len > 40 ? 40 : t->len, t->loc);
            v = 0;
        }
        t->fval = v;
    } else {
        int64_t v;
        if (parse_digits(s, st, p, INT64_MAX, &v) != 0) {
            t->bad = 1;
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, t->len, NULL, "integer '%.*s' is too large",
                       t->len > 40 ? 40 : t->len, t->loc);
            v = 0;
        }
        t->ival = v;
        t->fval = (double)v;
    }
    L->p = p;
}

static void lex_string(lexer *L) {
    const unsigned char *s = L->s;
    size_t st = L->p, p = L->p + 1, n = L->n;
    char *buf = fe_alloc(&L->cx->arena, 1);
    size_t bl = 0, bc = 1;
    int bad = 0;
    for (;;) {
        if (p >= n || s[p] == '\n') {
            fe_tok *t = push(L, FE_TK_STRING, st, p);
            t->bad = 1;
            t->str = "";
            fe_diag_at(L->cx, FE_SEV_ERROR, t->loc, 1, "strings end on the line they start", "unterminated string");
            L->p = p;
            return;
        }
        unsigned c = s[p];
        if (c == '"') {
            p++;
            break;
        }
        char out[4];
        int k = 1;
        if (c == '\\' && p + 1 < n && strchr("\"\\nt", s[p + 1])) {
            int e = s[p + 1];
            out[0] = e == 'n' ? '\n' : e == 't' ? '\t' : (char)e;
            p += 2;
        } else {
            k = utf8_len(s + p, n - p);
            if (k == 0 || c < 0x20 || c == 0x7F) {
                if (!bad)
                    fe_diag_at(L->cx, FE_SEV_ERROR, (const char *)s + p, 1, NULL,
                               c == 0 ? "NUL byte in a string" : k == 0 ? "invalid UTF-8 byte 0x%02X in a string"
                                                                        : "control character 0x%02X in a string",
                               c);
                bad = 1;
                p++;
                continue;
            }
            memcpy(out, s + p, (size_t)k);
            p += (size_t)k;
        }
        if (bl + (size_t)k + 1 > bc) {
            size_t nc = bc * 2 + (size_t)k + 1;
            char *nb = fe_alloc(&L->cx->arena, nc);
            memcpy(nb, buf, bl);
            buf = nb;
            bc = nc;
        }
        memcpy(buf + bl, out, (size_t)k);
        bl += (size_t)k;
    }
    buf[bl] = 0;
    fe_tok *t = push(L, FE_TK_STRING, st, p);
    t->str = buf;
    t->ival = (int64_t)bl;
    t->bad = bad;
    L->p = p;
}

static void lex_comment(lexer *L) {
    const unsigned char *s = L->s;
    size_t p = L->p, n = L->n;
    int bad = 0;
    while (p < n && s[p] != '\n') {
        int k = utf8_len(s + p, n - p);
        if (k == 0 || s[p] == 0) {
            if (!bad)
                fe_diag_at(L->cx, FE_SEV_ERROR, (const char *)s + p, 1, "save the file as UTF-8",
                           s[p] == 0 ? "NUL byte in a comment" : "invalid UTF-8 byte 0x%02X in a comment", s[p]);
            bad = 1;
            p++;
        } else {
            p += (size_t)k;
        }
    }
    L->p = p;
}

static void lex_bad(lexer *L) {
    const unsigned char *s = L->s;
    size_t p = L->p, n = L->n;
    unsigned c = s[p];
    int k = utf8_len(s + p, n - p);
    const char *pos = (const char *)s + p;
    if (c == 0)
        fe_diag_at(L->cx, FE_SEV_ERROR, pos, 1, "a .dartsc file is text", "NUL byte in source");
    else if (k == 0)
        fe_diag_at(L->cx, FE_SEV_ERROR, pos, 1, "save the file as UTF-8", "invalid UTF-8 byte 0x%02X", c);
    else if (c >= 0x80)
        fe_diag_at(L->cx, FE_SEV_ERROR, pos, k, "names use only ASCII letters, digits and '_'",
                   "unexpected character '%.*s'", k, pos);
    else if (c < 0x20 || c == 0x7F)
        fe_diag_at(L->cx, FE_SEV_ERROR, pos, 1, NULL, "unexpected control character 0x%02X", c);
    else
        fe_diag_at(L->cx, FE_SEV_ERROR, pos, 1, c == '.' ? "numbers need a digit before the '.': 0.5" : NULL,
                   "unexpected character '%c'", (char)c);
    /* skip the whole run of bytes that cannot start a token */
    size_t st = L->p;
    p += k ? (size_t)k : 1;
    while (p < n && !starts_token(s[p])) p++;
    fe_tok *t = push(L, FE_TK_BAD, st, p);
    t->bad = 1;
    t->str = "";
    L->p = p;
}

fe_tok *fe_lex(fe_ctx *cx, int *n_out) {
    lexer L = {.cx = cx, .s = (const unsigned char *)cx->src, .n = cx->len, .bol = 1};
    if (L.n >= 3 && memcmp(L.s, "\xEF\xBB\xBF", 3) == 0) L.p = 3; /* UTF-8 byte order mark */
    while (L.p < L.n && !cx->stop) {
        unsigned c = L.s[L.p];
        if (c == '\n') {
            L.bol = 1;
            L.p++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            L.p++;
        } else if (c == '#') {
            lex_comment(&L);
        } else if (is_ident0((int)c)) {
            size_t st = L.p;
            while (L.p < L.n && is_ident1(L.s[L.p])) L.p++;
            fe_tok *t = push(&L, FE_TK_IDENT, st, L.p);
            t->str = fe_strndup(&cx->arena, t->loc, (size_t)t->len);
        } else if (isdigit((int)c)) {
            lex_number(&L);
        } else if (c == '"') {
            lex_string(&L);
        } else if (strchr("{}[](),;:=-", (int)c) && c) {
            fe_tok *t = push(&L, FE_TK_PUNCT, L.p, L.p + 1);
            t->str = fe_strndup(&cx->arena, t->loc, 1);
            L.p++;
        } else {
            lex_bad(&L);
        }
    }
    fe_tok *e = push(&L, FE_TK_EOF, L.n, L.n);
    e->str = "end of file";
    *n_out = L.nt;
    return L.toks;
}
