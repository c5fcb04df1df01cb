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
#include "ir/space.h"
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
                     or n is 0 (state a run may not have: no momentum buffer, no alpha);
                     I64: an entry that older checkpoints lack: on resume, when the file has
                     none, data[0] is set to SR_CKPT_ABSENT */
} sr_ckpt_entry;

#define SR_CKPT_ABSENT INT64_MIN

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

/* ---- settings: what a resume must not change ----
 * A loop stores the settings that decide its result (every ir_train_config field that
 * training reads, the strategy, the data range) as the I64 entry "meta/settings"
 * (SR_SETTINGS_N values, floats by their bits, optional for older checkpoints). On resume
 * sr_ckpt_check_settings compares them with the run's settings and refuses any difference,
 * listing them all. A changed number of epochs is accepted only where the schedule does
 * not depend on it (constant learning rate: lr_min equal to lr, and no drop_path ramp): the
 * continued run is then the run that was asked for from the start. A checkpoint written
 * before settings were recorded (no entry) resumes unchecked, as before. */
enum { SR_SETTINGS_N = 30 };
/* strategy: the search's sr_strategy, -1 for retraining; data_begin/data_count: the
 * training image range (sr_train_opts; 0 0: the subset). */
void sr_ckpt_settings(const ir_train_config *tc, int strategy, int data_begin, int data_count,
                      int64_t out[SR_SETTINGS_N]);
int sr_ckpt_check_settings(const char *path, const int64_t *saved, const int64_t *now, char *err, size_t errlen);

/* The number of lines of a log file (0 when it does not exist). Checkpoints record logs by
 * lines, not bytes: a line holds wall-clock fields (images/s) whose printed length varies,
 * and two identical runs must write identical checkpoints. */
int64_t sr_log_lines(const char *path);
/* Cuts a log back to its first `lines` lines (a resume; see sr_ckpt_truncate_log). */
int sr_ckpt_truncate_log_lines(const char *path, int64_t lines, char *err, size_t errlen);

/* Cuts an append-only log back to the length the checkpoint recorded, so that a resumed
 * run's logs end exactly where an uninterrupted run's would. */
int sr_ckpt_truncate_log(const char *path, int64_t bytes, char *err, size_t errlen);

/* ---- data-parallel runs (docs/SCALING.md) ----
 * Rank 0 writes and reads the checkpoint (the run directory need not be shared); after its
 * resume, sr_ckpt_bcast sends every entry's data (counters, parameters, optimiser state)
 * from rank 0 to every process. A loop records its number of processes and sync_bn as the
 * optional I64 entry "meta/dist" {ranks, sync_bn} (absent: {1, 0}); sr_ckpt_check_dist
 * refuses a resume with another number, or another sync_bn with several processes, which
 * would change the run (each process's share of a batch, its batch-norm statistics). */
void sr_ckpt_bcast(rt_backend *be, const sr_ckpt_entry *e, int n);
int sr_ckpt_check_dist(const char *path, const int64_t saved[2], int sync_bn, char *err, size_t errlen);

#endif
