/* sharp.c — sharpDARTS (Hundt et al. 2019): the cosine power annealing schedule of the
 * weight learning rate (search.h documents the formula). The strategy `sharp-darts` is the
 * DARTS loop of cnn.c with this schedule in place of cosine annealing; SharpSepConv, the
 * paper's other part, is a candidate op of every strategy (ir/space.c, `sharp_sep_conv`). */
#include <math.h>

#include "search.h"

/* The paper's code normalises p^(c+1) over the epochs it schedules (1..T), so the first
 * epoch gets the largest rate and the last the smallest; p = 1 is plain cosine annealing. */
static double power_curve(double p, double c) { return p == 1.0 ? c : pow(p, c + 1.0); }

float sr_cosine_power_lr(const ir_train_config *tc, int epoch) {
    int T = tc->epochs;
    if (T <= 1) return tc->w_lr;
    double p = tc->lr_power;
    double c = (1.0 + cos(M_PI * (double)(epoch + 1) / (double)T)) / 2.0;
    double c1 = (1.0 + cos(M_PI / (double)T)) / 2.0, cT = 0.0; /* t = 1 and t = T */
    double hi = power_curve(p, c1), lo = power_curve(p, cT);
    double prop = (power_curve(p, c) - lo) / (hi - lo);
    return (float)((double)tc->w_lr_min + ((double)tc->w_lr - (double)tc->w_lr_min) * prop);
}
