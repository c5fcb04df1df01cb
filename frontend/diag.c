/* diag.c — diagnostics: recording them with file:line:col and a copy of the source line,
 * rendering them gcc style (source line and caret), "did you mean" suggestions by edit
 * distance, and the compilation arena. */
#include <stdlib.h>
#include <string.h>

#include "fe_int.h"

/* ---- arena ----------------------------------------------------------------------------- */
struct fe_arena_block {
    fe_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *fe_alloc(fe_arena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    fe_arena_block *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 60000 ? size : 60000;
        b = malloc(sizeof *b + cap);
        if (!b) {
            fputs("dartsc: out of memory\n", stderr);
            abort();
        }
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *fe_strndup(fe_arena *a, const char *s, size_t n) {
    char *p = fe_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void fe_arena_free(fe_arena *a) {
    while (a->head) {
        fe_arena_block *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

void *fe_grow(fe_arena *a, void *p, int n, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap : 4;
    while (nc < need) nc *= 2;
    void *q = fe_alloc(a, (size_t)nc * elem);
    if (n) memcpy(q, p, (size_t)n * elem);
    *cap = nc;
    return q;
}

/* ---- the list ----------------------------------------------------------------------------- */
void fe_diags_init(fe_diags *d) { memset(d, 0, sizeof *d); }

void fe_diags_free(fe_diags *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].msg);
        free(d->items[i].hint);
        free(d->items[i].text);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

int fe_diags_errors(const fe_diags *d) { return d->n_errors; }
int fe_diags_warnings(const fe_diags *d) { return d->n_warnings; }

static char *xstrdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (!p) abort();
    memcpy(p, s, n + 1);
    return p;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if invalid. */
static int utf8_seq(const unsigned char *p, size_t n) {
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

/* 1 for a character that must not reach a terminal as it is: C0 controls and DEL, C1
 * controls (U+0080..U+009F: 0x9B is a one-byte CSI on some terminals) and the bidirectional
 * overrides and isolates (U+202A..U+202E, U+2066..U+2069), which reorder what is shown. */
static int unsafe_char(const unsigned char *p, int k) {
    if (k == 1) return p[0] < 0x20 || p[0] == 0x7F;
    if (k == 2) return p[0] == 0xC2 && p[1] < 0xA0;
    if (k == 3 && p[0] == 0xE2 && p[1] == 0x80) return p[2] >= 0xAA && p[2] <= 0xAE;
    if (k == 3 && p[0] == 0xE2 && p[1] == 0x81) return p[2] >= 0xA6 && p[2] <= 0xA9;
    return 0;
}

/* A message with every byte that is not valid UTF-8, and every unsafe character, shown as
 * '?' (messages quote the source's tokens). In place: never longer. */
static void sanitize_msg(char *m) {
    unsigned char *s = (unsigned char *)m;
    size_t n = strlen(m), i = 0, o = 0;
    while (i < n) {
        int k = utf8_seq(s + i, n - i);
        if (k == 0 || unsafe_char(s + i, k)) {
            s[o++] = '?';
            i += k ? (size_t)k : 1;
        } else {
            memmove(s + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        }
    }
    s[o] = 0;
}

/* Builds the displayed line for [ls, le) with the caret at byte off spanning len bytes. */
static void make_text(const char *src, size_t ls, size_t le, size_t off, int len, fe_diag *dg) {
    const unsigned char *s = (const unsigned char *)src;
    size_t ws = ls, we = le;
    int pre = 0, post = 0;
    if (off > ls + 120) {
        ws = off - 60;
        while (ws < off && (s[ws] & 0xC0) == 0x80) ws++;
        pre = 1;
    }
    if (we > ws + 240) {
        size_t lim = ws + 240 > off + (size_t)len ? ws + 240 : off + (size_t)len;
        if (lim < we) {
            we = lim;
            post = 1;
        }
    }
    size_t cap = (we - ws) * 4 + 16;
    char *t = malloc(cap);
    if (!t) abort();
    size_t o = 0;
    int col = 0;
    if (pre) {
        memcpy(t, "...", 3);
        o = 3;
        col = 3;
    }
    dg->caret = -1;
    int caret_end = -1;
    size_t p = ws;
    while (p < we) {
        if (p == off) dg->caret = col;
        if (dg->caret >= 0 && caret_end < 0 && p >= off + (size_t)len) caret_end = col;
        unsigned c = s[p];
        if (c == '\t') {
            int n = 4 - col % 4;
            for (int i = 0; i < n; i++) t[o++] = ' ';
            col += n;
            p++;
            continue;
        }
        int k = utf8_seq(s + p, we - p);
        if (k == 0 || c < 0x20 || c == 0x7F || unsafe_char(s + p, k)) {
            t[o++] = '?';
            p += k > 1 ? (size_t)k : 1;
        } else {
            memcpy(t + o, s + p, (size_t)k);
            o += (size_t)k;
            p += (size_t)k;
        }
        col++;
    }
    if (dg->caret < 0) dg->caret = col;
    if (caret_end < 0) caret_end = col;
    if (post) {
        memcpy(t + o, "...", 3);
        o += 3;
    }
    t[o] = 0;
    dg->text = t;
    dg->caret_len = caret_end - dg->caret;
    if (dg->caret_len < 1) dg->caret_len = 1;
}

void fe_diag_va(fe_ctx *cx, fe_severity sev, const char *pos, int len, const char *hint, const char *fmt,
                va_list ap) {
    fe_diags *d = cx->diags;
    if (sev == FE_SEV_ERROR) cx->errors_seen++;
    if (cx->stop) return;
    if (sev == FE_SEV_NOTE && cx->last_dropped) return;
    cx->last_dropped = 0;
    if (sev == FE_SEV_WARNING && d->n_warnings - cx->warnings_base >= FE_MAX_WARNINGS) {
        d->suppressed++;
        cx->last_dropped = 1;
        return;
    }
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    sanitize_msg(buf);
    if (pos) {
        /* the same problem reached twice (a base block read by two derived blocks): once */
        for (int i = d->n - 1; i >= cx->diag_base && i >= d->n - 400; i--) {
            const fe_diag *o = &d->items[i];
            if (o->severity == sev && o->pos == pos && strcmp(o->msg, buf) == 0 && strcmp(o->file, cx->file) == 0) {
                cx->last_dropped = 1;
                return;
            }
        }
    }
    if (d->n == d->cap) {
        int nc = d->cap ? d->cap * 2 : 16;
        fe_diag *ni = realloc(d->items, (size_t)nc * sizeof *ni);
        if (!ni) abort();
        d->items = ni;
        d->cap = nc;
    }
    fe_diag *dg = &d->items[d->n++];
    memset(dg, 0, sizeof *dg);
    dg->severity = sev;
    dg->file = xstrdup(cx->file);
    dg->pos = pos;
    dg->msg = xstrdup(buf);
    dg->hint = xstrdup(hint);
    if (sev == FE_SEV_ERROR) d->n_errors++;
    if (sev == FE_SEV_WARNING) d->n_warnings++;
    if (pos) {
        size_t off = (size_t)(pos - cx->src);
        if (off > cx->len) off = cx->len;
        int lo = 0, hi = cx->n_lines - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if ((size_t)cx->line_starts[mid] <= off) lo = mid;
            else hi = mid - 1;
        }
        size_t ls = (size_t)cx->line_starts[lo];
        size_t le = lo + 1 < cx->n_lines ? (size_t)cx->line_starts[lo + 1] - 1 : cx->len;
        if (le > ls && cx->src[le - 1] == '\r') le--;
        if (off > le) off = le;
        dg->line = lo + 1;
        int col = 1;
        const unsigned char *s = (const unsigned char *)cx->src;
        for (size_t p = ls; p < off;) {
            int k = utf8_seq(s + p, off - p);
            p += k ? (size_t)k : 1;
            col++;
        }
        dg->col = col;
        make_text(cx->src, ls, le, off, len, dg);
    }
    if (sev == FE_SEV_ERROR && d->n_errors - cx->errors_base >= FE_MAX_ERRORS) {
        cx->stop = 1;
        if (d->n == d->cap) {
            fe_diag *ni = realloc(d->items, (size_t)(d->cap + 1) * sizeof *ni);
            if (!ni) abort();
            d->items = ni;
            d->cap++;
        }
        fe_diag *st = &d->items[d->n++];
        memset(st, 0, sizeof *st);
        st->severity = FE_SEV_ERROR;
        st->file = xstrdup(cx->file);
        snprintf(buf, sizeof buf, "too many errors (%d); stopping here", FE_MAX_ERRORS);
        st->msg = xstrdup(buf);
        d->n_errors++;
    }
}

void fe_diag_at(fe_ctx *cx, fe_severity sev, const char *pos, int len, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fe_diag_va(cx, sev, pos, len, hint, fmt, ap);
    va_end(ap);
}

void fe_error(fe_ctx *cx, const fe_tok *t, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fe_diag_va(cx, FE_SEV_ERROR, t ? t->loc : NULL, t ? t->len : 0, hint, fmt, ap);
    va_end(ap);
}

void fe_warn(fe_ctx *cx, const fe_tok *t, const char *hint, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fe_diag_va(cx, FE_SEV_WARNING, t ? t->loc : NULL, t ? t->len : 0, hint, fmt, ap);
    va_end(ap);
}

void fe_note(fe_ctx *cx, const fe_tok *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fe_diag_va(cx, FE_SEV_NOTE, t ? t->loc : NULL, t ? t->len : 0, NULL, fmt, ap);
    va_end(ap);
}

/* ---- rendering ------------------------------------------------------------------------------ */
void fe_diags_render(const fe_diags *d, FILE *f, int color) {
    static const char *names[] = {"note", "warning", "error"};
    static const char *colors[] = {"\033[1;36m", "\033[1;35m", "\033[1;31m"};
    const char *bold = color ? "\033[1m" : "", *reset = color ? "\033[0m" : "";
    const char *green = color ? "\033[1;32m" : "", *blue = color ? "\033[1;34m" : "";
    for (int i = 0; i < d->n; i++) {
        const fe_diag *g = &d->items[i];
        const char *sc = color ? colors[g->severity] : "";
        if (g->line > 0)
            fprintf(f, "%s%s:%d:%d:%s %s%s:%s %s%s%s\n", bold, g->file, g->line, g->col, reset, sc,
                    names[g->severity], reset, bold, g->msg, reset);
        else
            fprintf(f, "%s%s:%s %s%s:%s %s%s%s\n", bold, g->file, reset, sc, names[g->severity], reset, bold,
                    g->msg, reset);
        int w = 1;
        for (int l = g->line; l >= 10; l /= 10) w++;
        if (w < 4) w = 4;
        if (g->line > 0 && g->text) {
            fprintf(f, "%s%*d |%s %s\n", blue, w, g->line, reset, g->text);
            fprintf(f, "%s%*s |%s %*s%s^", blue, w, "", reset, g->caret, "", green);
            for (int k = 1; k < g->caret_len; k++) fputc('~', f);
            fprintf(f, "%s\n", reset);
        }
        if (g->hint) fprintf(f, "%*s %s=%s hint: %s\n", w, "", blue, reset, g->hint);
    }
    if (d->suppressed)
        fprintf(f, "%d more warning%s not shown\n", d->suppressed, d->suppressed == 1 ? "" : "s");
    if (d->n_errors || d->n_warnings) {
        if (d->n_errors) fprintf(f, "%d error%s", d->n_errors, d->n_errors == 1 ? "" : "s");
        if (d->n_errors && d->n_warnings) fputs(", ", f);
        if (d->n_warnings) fprintf(f, "%d warning%s", d->n_warnings, d->n_warnings == 1 ? "" : "s");
        fputs(" generated.\n", f);
    }
}

/* ---- suggestions ---------------------------------------------------------------------------- */
/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
int fe_edit_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 64 || m > 64) return 1000;
    int d[65][65];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

const char *fe_suggest(fe_ctx *cx, const char *word, const char *const *names, int n) {
    int best = 1000, bi = -1;
    int lim = (int)strlen(word) / 3;
    if (lim < 1) lim = 1;
    if (lim > 3) lim = 3;
    for (int i = 0; i < n; i++) {
        if (!names[i] || strcmp(names[i], word) == 0) continue;
        int e = fe_edit_distance(word, names[i]);
        if (e < best) best = e, bi = i;
    }
    if (bi < 0 || best > lim) return NULL;
    char buf[128];
    snprintf(buf, sizeof buf, "did you mean '%s'?", names[bi]);
    return fe_strndup(&cx->arena, buf, strlen(buf));
}
