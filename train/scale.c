/* scale.c — the data of a compound-scaled evaluation network (ir_space_compound_scale):
 * the data set loaded as usual, then every image plane resized to the scaled input
 * (rt_data_resize: bilinear, antialiased where it shrinks), so the retraining, the
 * evaluation and the exported model all see train_in_h x train_in_w. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "runtime/datasets.h"
#include "train.h"

int sr_data_load_eval(const ir_space *sp, int train, rt_dataset *out, char *err, size_t errlen) {
    rt_dataset d;
    if (sr_data_load(sp, train, &d, err, errlen)) return -1;
    int h = sp->train_in_h > 0 ? sp->train_in_h : sp->in_h, w = sp->train_in_w > 0 ? sp->train_in_w : sp->in_w;
    if (h == d.h && w == d.w) {
        *out = d;
        return 0;
    }
    const int64_t planes = (int64_t)d.n * d.c;
    uint8_t *px = malloc((size_t)planes * (size_t)h * (size_t)w);
    int32_t *lab = malloc((size_t)d.n * sizeof *lab);
    int bad = !px || !lab;
    for (int64_t p = 0; p < planes && !bad; p++)
        bad = rt_data_resize(px + p * h * w, h, w, d.pixels + p * d.h * d.w, d.h, d.w) != 0;
    if (bad) {
        free(px);
        free(lab);
        rt_dataset_free(&d);
        return sr_fail(err, errlen, "out of memory resizing the data to %dx%d", h, w);
    }
    memcpy(lab, d.labels, (size_t)d.n * sizeof *lab);
    rt_dataset_own(out, d.n, d.c, h, w, d.classes, px, lab);
    rt_dataset_free(&d);
    return 0;
}
