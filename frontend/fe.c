/* fe.c — the front end's pipeline: read, index lines, lex, parse, analyse.
 *
 *   source --fe_lex--> tokens --fe_parse--> fe_program --fe_sema--> ir_space
 *
 * Every stage appends diagnostics and carries on where it can, so one run reports as
 * many independent problems as possible; the arena is freed at the end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fe_int.h"

int fe_compile_string(const char *name, const char *src, size_t len, ir_space *out, fe_diags *d) {
    fe_ctx cx = {.file = name ? name : "<input>", .src = src ? src : "", .len = src ? len : 0, .diags = d,
                 .diag_base = d->n, .errors_base = d->n_errors, .warnings_base = d->n_warnings};
    int e0 = d->n_errors;
    ir_space_darts_cifar10(out);
    if (cx.len > FE_MAX_INPUT) {
        fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "input is larger than %u bytes", FE_MAX_INPUT);
        return -1;
    }
    /* line index for diagnostics */
    int cap = 64;
    cx.line_starts = fe_alloc(&cx.arena, sizeof(int) * (size_t)cap);
    cx.line_starts[cx.n_lines++] = 0;
    for (size_t i = 0; i < cx.len; i++)
        if (cx.src[i] == '\n') {
            cx.line_starts = fe_grow(&cx.arena, cx.line_starts, cx.n_lines, &cap, cx.n_lines + 1, sizeof(int));
            cx.line_starts[cx.n_lines++] = (int)(i + 1);
        }
    int n;
    fe_tok *toks = fe_lex(&cx, &n);
    fe_program prog;
    fe_parse(&cx, toks, n, &prog);
    if (!cx.stop) fe_sema(&cx, &prog, out);
    fe_arena_free(&cx.arena);
    return d->n_errors > e0 ? -1 : 0;
}

int fe_compile_file(const char *path, ir_space *out, fe_diags *d) {
    fe_ctx cx = {.file = path, .src = "", .diags = d};
    ir_space_darts_cifar10(out);
    struct stat st; /* a FIFO would block fopen; a directory reads as an empty file */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                                                  : "a special file";
        fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "is %s, not a regular file", kind);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "out of memory reading the file");
            return -1;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len > FE_MAX_INPUT) {
            free(buf);
            fclose(f);
            fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "input is larger than %u bytes", FE_MAX_INPUT);
            return -1;
        }
        if (got == 0) break;
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        fe_diag_at(&cx, FE_SEV_ERROR, NULL, 0, NULL, "cannot read: %s", strerror(err));
        return -1;
    }
    int rc = fe_compile_string(path, buf, len, out, d);
    free(buf);
    return rc;
}
