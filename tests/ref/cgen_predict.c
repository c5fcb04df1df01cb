/* cgen_predict.c - reads float32 images (model_INPUT_SIZE floats each) from stdin, runs the
 * generated model one image at a time, writes each predicted class as int32 to stdout.
 * Built by scripts/check-export against RUN_DIR/c/model.c. */
#include <stdint.h>
#include <stdio.h>

#include "model.h"

int main(void) {
    static float in[model_INPUT_SIZE], out[model_OUTPUT_SIZE];
    while (fread(in, sizeof(float), model_INPUT_SIZE, stdin) == model_INPUT_SIZE) {
        if (model_infer(in, out, 1) != 0) return 1;
        int32_t best = 0;
        for (int k = 1; k < model_NUM_CLASSES; k++)
            if (out[k] > out[best]) best = k;
        if (fwrite(&best, sizeof best, 1, stdout) != 1) return 1;
    }
    return 0;
}
