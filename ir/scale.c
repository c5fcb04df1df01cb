/* scale.c — EfficientNet's compound scaling of the evaluation network (space.h). */
#include <math.h>

#include "space.h"

void ir_space_compound_scale(ir_space *sp) {
    const double phi = sp->scale_phi;
    if (!(phi > 0)) return;
    /* depth rounds up (EfficientNet's round_repeats), width to nearest; the resolution to
     * the nearest multiple of 2^reductions, since every reduction cell halves an even map */
    sp->train_layers = (int)ceil(sp->train_layers * pow(IR_SCALE_ALPHA, phi) - 1e-9);
    sp->train_C = (int)lround(sp->train_C * pow(IR_SCALE_BETA, phi));
    const double m = (double)(1 << (sp->n_reduce < 8 ? sp->n_reduce : 8)), g = pow(IR_SCALE_GAMMA, phi);
    sp->train_in_h = (int)(m * fmax(1.0, round(sp->in_h * g / m)));
    sp->train_in_w = (int)(m * fmax(1.0, round(sp->in_w * g / m)));
}
