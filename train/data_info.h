/* data_info.h — what a user data source (npy, image folders) leaves to the data itself:
 * the per-channel normalisation, computed once from the training split when the space
 * gives no 'mean'/'std', and the class names (image folders: the folder names). Both are
 * kept in RUN_DIR/data.json, so that evaluation and export of a run agree with its
 * training without reading the training data again:
 *   {"source": "images", "dir": "...", "train_images": 60000, "channels": 1,
 *    "normalisation": "training split", "mean": [0.286], "std": [0.353],
 *    "classes": ["bag", "coat", ...]}
 *
 * Usage (pipeline/ before a search or retraining, train/cnn.c before an evaluation):
 *   ir_space s = *sp;
 *   if (sr_data_norm(&s, o->out_dir, 1, err, sizeof err)) return -1;   // s.mean, s.std set
 */
#ifndef DARTSC_SR_DATA_INFO_H
#define DARTSC_SR_DATA_INFO_H

#include <stddef.h>

#include "ir/space.h"

/* For npy and image sources. When the space gives no normalisation (std[0] == 0), sets
 * sp->mean/std from run_dir/data.json when it exists (run_dir may be NULL), else from the
 * training split (rt_data_channel_stats over all its images; printed to stderr). With
 * write set and no data.json yet, the training split is read (and so checked) even when
 * the space gives mean/std, and run_dir/data.json is written (with the directory) only
 * after it was read: bad data leaves the run directory untouched. Other sources, and
 * spaces with 'mean'/'std' when write is 0: nothing. 0, or -1 with err. */
int sr_data_norm(ir_space *sp, const char *run_dir, int write, char *err, size_t errlen);

/* The directory part of a path ("runs/x/model.dtns" -> "runs/x", "model.dtns" -> "."). */
void sr_dir_of(const char *path, char *dir, size_t len);

/* Class names of an image-folder space, from run_dir/data.json or the folders; *names is
 * NULL (and *n 0) for other sources. Free with sr_data_names_free. 0, or -1 with err. */
int sr_data_class_names(const ir_space *sp, const char *run_dir, char ***names, int *n, char *err, size_t errlen);
void sr_data_names_free(char **names, int n);

#endif
