/* fuzz_inspect.c — libFuzzer target for `dartsc inspect` (cg_onnx_inspect_buf: protobuf-c
 * decoding, the model checks, the operator checks against ONNX's definitions and the
 * summary printer). Built and run by scripts/fuzz-inspect:
 *   clang -fsanitize=fuzzer,address,undefined -I. codegen/onnx_inspect.c proto/op_schemas_find.c
 *         (the generated onnx.pb-c.c and op_schemas.c) fuzz_inspect.c -lprotobuf-c
 * Invariants checked beyond "no crash, no leak, no undefined behaviour": a refusal names
 * the file and says something, and the same bytes always get the same verdict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    char err[1024] = "", err2[1024] = "";
    int rc = cg_onnx_inspect_buf(data, size, "fuzz.onnx", sink, err, sizeof err);
    if (rc != 0 && (strncmp(err, "fuzz.onnx: ", 11) != 0 || !err[11])) abort();
    int rc2 = cg_onnx_inspect_buf(data, size, "fuzz.onnx", NULL, err2, sizeof err2);
    if (rc != rc2 || strcmp(err, err2) != 0) abort();
    return 0;
}
