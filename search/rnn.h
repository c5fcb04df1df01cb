/* rnn.h — the architecture gradient of the recurrent search (search/rnn.c), on its own for
 * tests/dist_step.c, which compares a data-parallel job's first step with one process's.
 *
 *   sr_rnn_arch ra;
 *   sr_rnn_arch_init(&ra, m);               // second order: its buffers
 *   float vl = sr_rnn_arch_grad(m, &ra, lr); // α gradient in the arch group's grad
 *   sr_rnn_arch_free(&ra, m);
 */
#ifndef DARTSC_SR_SEARCH_RNN_H
#define DARTSC_SR_SEARCH_RNN_H

#include "train/rnn.h"

/* The second-order step's backend buffers (all NULL for first order). */
typedef struct sr_rnn_arch {
    float *w_backup, *v, *dalpha, *gplus;
    float *eps; /* 4 floats: R, -R and the final scale (rt_backend.hvp_eps), then its eta * clip */
} sr_rnn_arch;

/* Returns 0, or -1 when out of memory (then sr_rnn_arch_free). */
int sr_rnn_arch_init(sr_rnn_arch *ra, sr_lm *m);
void sr_rnn_arch_free(sr_rnn_arch *ra, sr_lm *m);
/* The α gradient for training window m->step and validation window m->step mod n_va at
 * weight learning rate lr (first order, or the reference's second order), summed over the
 * processes of a data-parallel run; leaves it in the arch group's grad (no step) and
 * returns the validation cross-entropy of the global batch. Moves h_valid on. */
float sr_rnn_arch_grad(sr_lm *m, sr_rnn_arch *ra, float lr);

#endif
