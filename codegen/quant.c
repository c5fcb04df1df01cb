/* quant.c — see quant.h. */
#include "quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctext.h"

static int qfail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A zero range (a tensor that was 0 on every calibration image) still needs a scale. */
static float scale_of(float absmax, float levels) { return (absmax > 1e-30f ? absmax : 1.0f) / levels; }

int cg_quant_init(cg_quant *q, const cg_model *m, const cg_fold *f, char *err, size_t errlen) {
    const ir_graph *g = m->g;
    int n = ir_graph_num_nodes(g);
    q->scale = calloc((size_t)(n > 0 ? n : 1), sizeof *q->scale);
    unsigned char *need = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!q->scale || !need) {
        free(need);
        cg_quant_free(q);
        return qfail(err, errlen, "out of memory");
    }
    if (!m->absmax) {
        free(need);
        cg_quant_free(q);
        return qfail(err, errlen, "int8 export needs calibrated activation ranges");
    }
    cg_mark_needed(g, m->output, need);
    for (int i = 0; i < n; i++) {
        const ir_node *nd = ir_graph_node(g, i);
        if (!need[i] || nd->op == IR_OP_PARAM) continue;
        int in0 = nd->n_inputs > 0 ? nd->inputs[0] : -1;
        switch (nd->op) {
        case IR_OP_RELU: case IR_OP_MAXPOOL: case IR_OP_SHIFT: case IR_OP_SLICE:
        case IR_OP_IDENTITY: case IR_OP_DROPOUT: case IR_OP_DROP_PATH:
            q->scale[i] = q->scale[in0];
            continue;
        case IR_OP_BATCHNORM:
            if (f->folded[i]) { q->scale[i] = q->scale[in0]; continue; }
            break;
        case IR_OP_ZERO:
            q->scale[i] = 1.0f / 127;
            continue;
        default:
            break;
        }
        int src = nd->op == IR_OP_CONV2D && f->conv_bn[i] >= 0 ? f->conv_bn[i] : i;
        float a = m->absmax[src];
        if (!(a >= 0) || isinf(a)) {
            free(need);
            cg_quant_free(q);
            return qfail(err, errlen, "node '%s' has no calibrated range (%g)", ir_graph_node(g, src)->name, (double)a);
        }
        q->scale[i] = scale_of(a, 127.0f);
    }
    q->logit_scale = scale_of(m->absmax[m->output], (float)(1 << CG_Q_LOGIT_BITS));
    free(need);
    return 0;
}

void cg_quant_free(cg_quant *q) {
    free(q->scale);
    q->scale = NULL;
}

void cg_q_weights(int8_t *q, float *s, const float *w, int K, int64_t per_k) {
    for (int k = 0; k < K; k++) {
        const float *wk = w + (size_t)k * (size_t)per_k;
        float a = 0;
        for (int64_t j = 0; j < per_k; j++) a = fmaxf(a, fabsf(wk[j]));
        s[k] = scale_of(a, 127.0f);
        for (int64_t j = 0; j < per_k; j++) {
            double v = nearbyint((double)wk[j] / (double)s[k]);
            q[(size_t)k * (size_t)per_k + (size_t)j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

int32_t cg_q_i32(double v, double s) {
    double r = nearbyint(v / s);
    return r > 2147483647.0 ? INT32_MAX : r < -2147483647.0 ? -INT32_MAX : (int32_t)r;
}

int cg_q_mult(double M, double acc_max, int32_t *m, int *shift) {
    if (!(M >= 0) || M >= (double)(1 << 29)) return -1;
    if (M == 0) { *m = 0; *shift = 1; return 0; }
    int bits = 31; /* m in [2^(bits-1), 2^bits) */
    double room = 62 - ceil(log2(acc_max > 1 ? acc_max : 1));
    if (room < bits) bits = (int)room;
    if (bits < 8) return -1;
    int e;
    double fr = frexp(M, &e); /* M = fr * 2^e, fr in [0.5, 1) */
    long long mm = llround(ldexp(fr, bits));
    int sh = bits - e;
    if (mm == (1LL << bits)) { mm >>= 1; sh--; }
    if (sh > 62) { /* below one unit of the largest shift: keep what bits fit */
        mm = llround(ldexp(M, 62));
        sh = 62;
    }
    if (sh < 1) return -1;
    *m = (int32_t)mm;
    *shift = sh;
    return 0;
}
