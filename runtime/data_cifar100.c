/* data_cifar100.c — CIFAR-100, binary version (datasets.h): train.bin / test.bin, records
 * of <coarse label byte> <fine label byte> <3072 pixel bytes>; the fine labels are used. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/datasets.h"
#include "runtime/files.h"

#define C100_REC 3074
#define C100_PIX 3072
#define C100_MAX_RECORDS (1 << 24)

#define seterr rt_data_seterr

int rt_data_load_cifar100(const char *dir, int train, rt_dataset *out, char *err, size_t errlen) {
    if (!out) {
        seterr(err, errlen, "cifar100: no output dataset");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) {
        seterr(err, errlen, "cifar100: no directory given (download cifar-100-binary and pass its directory)");
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", train ? "train.bin" : "test.bin");
    int64_t sz = 0;
    if (rt_file_input_size(path, &sz, err, errlen)) return -1;
    if (sz <= 0 || sz % C100_REC != 0) {
        seterr(err, errlen, "%s: bad size %lld bytes: not a positive multiple of the %d-byte record (the official "
                            "files hold %d and %d records)",
               path, (long long)sz, C100_REC, 50000, 10000);
        return -1;
    }
    int64_t n = sz / C100_REC;
    if (n > C100_MAX_RECORDS) {
        seterr(err, errlen, "%s: implausible %lld records", path, (long long)n);
        return -1;
    }
    uint8_t *pix = malloc((size_t)n * C100_PIX);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    FILE *f = fopen(path, "rb");
    if (!pix || !labels || !f) {
        seterr(err, errlen, "%s: %s", path, f ? "out of memory" : strerror(errno));
        goto fail;
    }
    for (int64_t r = 0; r < n; r++) {
        unsigned char lab[2];
        if (fread(lab, 1, 2, f) != 2 || fread(pix + r * C100_PIX, 1, C100_PIX, f) != C100_PIX) {
            seterr(err, errlen, "%s: read error or truncated at record %lld", path, (long long)r);
            goto fail;
        }
        if (lab[0] >= 20 || lab[1] >= 100) {
            seterr(err, errlen, "%s: record %lld: coarse label %d (expected 0..19) or fine label %d (expected 0..99) "
                                "out of range; is this the CIFAR-10 format?",
                   path, (long long)r, lab[0], lab[1]);
            goto fail;
        }
        labels[r] = lab[1];
    }
    fclose(f);
    rt_dataset_own(out, n, 3, 32, 32, 100, pix, labels);
    return 0;
fail:
    if (f) fclose(f);
    free(pix);
    free(labels);
    memset(out, 0, sizeof *out);
    return -1;
}
