/* fuzz_frontend.c — libFuzzer target for the DSL front end (lexer, parser, sema and the
 * diagnostic renderer). Built and run by scripts/fuzz-frontend:
 *   clang -fsanitize=fuzzer,address,undefined -I. (the frontend and ir sources) fuzz_frontend.c
 * Invariants checked beyond "no crash": a failed compile reports at least one error, a
 * successful one leaves a space that passes ir_space_check, and the error count is bounded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "frontend/fe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    ir_space sp;
    fe_diags d;
    fe_diags_init(&d);
    int rc = fe_compile_string("fuzz.dartsc", (const char *)data, size, &sp, &d);
    if (rc != 0 && fe_diags_errors(&d) == 0) abort();
    if (rc == 0 && fe_diags_errors(&d) != 0) abort();
    if (fe_diags_errors(&d) > FE_MAX_ERRORS + 1) abort();
    if (rc == 0) {
        char err[256];
        if (ir_space_check(&sp, err, sizeof err) != 0) abort();
    }
    if (sink) fe_diags_render(&d, sink, (int)(size & 1));
    fe_diags_free(&d);
    return 0;
}
