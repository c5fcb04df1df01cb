/* objective.c — see objective.h. */
#include "objective.h"

#include <math.h>

double sr_mnas_reward(double acc, double lat_ms, double target_ms) {
    if (!(lat_ms > 0) || !(target_ms > 0)) return NAN;
    return acc * pow(lat_ms / target_ms, SR_MNAS_W);
}
