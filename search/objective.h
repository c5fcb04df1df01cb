/* objective.h — what the candidate searches (random, evolution, rl) maximise.
 *
 *   SR_OBJ_ACCURACY  the candidate's accuracy on the architecture split (the default);
 *   SR_OBJ_MNAS      MnasNet's (Tan et al. 2019) soft latency constraint:
 *                    ACC * (LAT / T)^w with w = -0.07, LAT the candidate's latency in
 *                    milliseconds and T the target (--objective mnas --target-latency T).
 *
 * The search layer does not measure latency itself: the caller passes a function
 * (sr_options.latency) that times a trained candidate. The driver's times the network's
 * generated C, compiled on this machine, single thread, batch 1 (driver/latency.c). */
#ifndef DARTSC_SR_OBJECTIVE_H
#define DARTSC_SR_OBJECTIVE_H

typedef enum sr_objective { SR_OBJ_ACCURACY, SR_OBJ_MNAS } sr_objective;

#define SR_MNAS_W (-0.07) /* MnasNet's exponent: alpha = beta = -0.07 (soft constraint) */

/* acc * (lat_ms / target_ms)^SR_MNAS_W; NAN where lat_ms or target_ms is not positive. */
double sr_mnas_reward(double acc, double lat_ms, double target_ms);

#endif
