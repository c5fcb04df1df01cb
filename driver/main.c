/* main.c — the dartsc command-line driver: parses flags, calls the library, prints
 * diagnostics and exits. Only this file exits; the library returns errors. */
#include <stdio.h>
#include <string.h>

#include "driver.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dartsc <command> [options]\n"
            "\n"
            "commands:\n"
            "  check SPACE [--dump-ir] [--dot FILE]   validate a search space and print a summary\n"
            "  inspect FILE.onnx                      validate an ONNX model and print a summary\n"
            "  search SPACE [--out DIR] ...           run the DARTS search and derive a genotype\n"
            "  version                                print the version and build configuration\n"
            "\n"
            "Run 'dartsc <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return dartsc_cmd_version(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return dartsc_cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return dartsc_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return dartsc_cmd_search(argc - 1, argv + 1);
    fprintf(stderr, "dartsc: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
