/* smap.h — a string map (name -> int) for the ONNX writer and reader: open addressing,
 * keys not copied (they must outlive the map). Zero-initialise, then smap_put/smap_get,
 * smap_free. */
#ifndef DARTSC_CG_SMAP_H
#define DARTSC_CG_SMAP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct smap {
    const char **keys;
    int *vals;
    size_t cap, n;
} smap;

static inline uint64_t smap_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static inline void smap_free(smap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Slot of key: its own, or the empty one where it would go. */
static inline size_t smap_slot(const smap *m, const char *key) {
    size_t i = (size_t)smap_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

/* Pointer to key's value, or NULL when absent. */
static inline int *smap_get(const smap *m, const char *key) {
    if (!m->cap) return NULL;
    size_t i = smap_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

/* Inserts key (not copied: it must outlive the map) with value v unless present; returns
 * a pointer to its value, NULL on allocation failure. */
static inline int *smap_put(smap *m, const char *key, int v) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        smap t = {calloc(cap, sizeof *t.keys), calloc(cap, sizeof *t.vals), cap, 0};
        if (!t.keys || !t.vals) {
            smap_free(&t);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = smap_slot(&t, m->keys[i]);
                t.keys[j] = m->keys[i];
                t.vals[j] = m->vals[i];
                t.n++;
            }
        smap_free(m);
        *m = t;
    }
    size_t i = smap_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->vals[i] = v;
        m->n++;
    }
    return &m->vals[i];
}

#endif
