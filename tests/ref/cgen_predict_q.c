/* cgen_predict_q.c - the integer-only twin of cgen_predict.c: reads float32 images from
 * stdin, quantises each as the generated header says (round(x / model_INPUT_SCALE),
 * halves away from zero, saturated), runs model_infer_q and writes the argmax of the int32
 * logits as int32 to stdout. */
#include <stdint.h>
#include <stdio.h>

#include "model.h"

int main(void) {
    static float in[model_INPUT_SIZE];
    static int8_t q[model_INPUT_SIZE];
    static int32_t out[model_OUTPUT_SIZE];
    while (fread(in, sizeof(float), model_INPUT_SIZE, stdin) == model_INPUT_SIZE) {
        for (int i = 0; i < model_INPUT_SIZE; i++) {
            float v = in[i] / (float)model_INPUT_SCALE;
            v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v;
            q[i] = (int8_t)(v >= 0.0f ? (int)(v + 0.5f) : -(int)(0.5f - v));
        }
        if (model_infer_q(q, out, 1) != 0) return 1;
        int32_t best = 0;
        for (int k = 1; k < model_NUM_CLASSES; k++)
            if (out[k] > out[best]) best = k;
        if (fwrite(&best, sizeof best, 1, stdout) != 1) return 1;
    }
    return 0;
}
