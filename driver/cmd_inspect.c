/* cmd_inspect.c — `dartsc inspect FILE.onnx`: validate an ONNX model and print a summary
 * (IR version, opsets, producer, inputs and outputs with shapes, op histogram,
 * initializers and parameters, metadata). A truncated or corrupt file is an error that
 * names the file; exit status 1. */
#include <stdio.h>
#include <string.h>

#include "codegen/onnx.h"
#include "driver.h"

int dartsc_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: dartsc inspect FILE.onnx\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dartsc inspect: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "dartsc inspect: more than one file given ('%s' and '%s')\n", path, argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: dartsc inspect FILE.onnx\n");
        return 2;
    }
    if (dartsc_check_input("inspect", path)) return 1; /* a FIFO would block the open */
    char err[1024];
    if (cg_onnx_inspect(path, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "dartsc inspect: %s\n", err);
        return 1;
    }
    return 0;
}
