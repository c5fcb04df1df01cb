/* checkpoint.h — the one checkpoint module of every loop: the DARTS search
 * (search/cnn.c), retraining (train/cnn.c) and the recurrent runs (train/rnn.c).
 *
 * A checkpoint is a tensor file (runtime/tensorfile.h: names, shapes, CRC, written
 * atomically) holding a list of named entries: int64 counters (stored as int32 pairs,
 * sr_put_i64s), float vectors in backend memory (parameter groups, optimiser state) and
 * host arrays (the recurrent runs' hidden states). Each loop describes its checkpoint as
 * one table of entries and passes the same table to save and to resume, so what is
 * written and what is read back cannot drift apart. The first entry is always the int64
 * state {format version, sr_param_hash of the graph, ...}; resume refuses a file of
 * another version or network before it changes anything.
 *
 * Resume is in steps so that a loop can check its own counters (epoch and step ranges,
 * loader positions, log lengths) between reading and restoring, and nothing is touched
 * when any check fails:
 *
 *   sr_ckpt_entry e[] = {{SR_CKPT_I64, "meta/state", meta, 8}, {SR_CKPT_DEV, "group/weights", gw.data, gw.n}};
 *   sr_ckpt_save(path, be, e, 2, err, sizeof err);
 *   ...
 *   rt_tf_file *f = sr_ckpt_read(path, e, 2, VERSION, graph, err, sizeof err); // fills meta
 *   if (!f) return -1;
 *   if (meta[2] > epochs || sr_ckpt_truncate_log(metrics, meta[7], err, sizeof err)) { rt_tf_free(f); return -1; }
 *   sr_ckpt_restore(f, be, e, 2); // uploads, then frees f
 */
#ifndef DARTSC_SR_CHECKPOINT_H
#define DARTSC_SR_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"
#include "runtime/backend.h"
#include "runtime/tensorfile.h"

typedef enum sr_ckpt_kind {
    SR_CKPT_I64,  /* data: int64_t[n] (at most 32 values) */
    SR_CKPT_DEV,  /* data: float[n] in the backend's memory */
    SR_CKPT_HOST, /* data: float[n] in host memory */
} sr_ckpt_kind;

typedef struct sr_ckpt_entry {
    sr_ckpt_kind kind;
    const char *name;
    void *data;
    int64_t n;
    int optional; /* DEV: left out of the file, and not looked for on resume, when data is NULL
                     or n is 0 (state a run may not have: no momentum buffer, no alpha) */
} sr_ckpt_entry;

/* Writes the entries in table order to path, atomically. */
int sr_ckpt_save(const char *path, rt_backend *be, const sr_ckpt_entry *e, int n, char *err, size_t errlen);

/* Opens path for a resume: reads every I64 entry into its data, checks that the first
 * entry starts with {version, sr_param_hash(g)} and that every float entry is present
 * with its size. Returns the open file (for sr_ckpt_restore), or NULL with a message. */
rt_tf_file *sr_ckpt_read(const char *path, const sr_ckpt_entry *e, int n, int64_t version, const ir_graph *g,
                         char *err, size_t errlen);

/* Copies every float entry of a file from sr_ckpt_read into its data (uploads DEV
 * entries) and frees the file. */
void sr_ckpt_restore(rt_tf_file *f, rt_backend *be, const sr_ckpt_entry *e, int n);

/* Cuts an append-only log back to the length the checkpoint recorded, so that a resumed
 * run's logs end exactly where an uninterrupted run's would. */
int sr_ckpt_truncate_log(const char *path, int64_t bytes, char *err, size_t errlen);

#endif
