/* data.h — datasets and the minibatch loader.
 *
 * Datasets
 *   Fashion-MNIST from gzip IDX files (Debian's dataset-fashion-mnist installs them in
 *   RT_DATA_FMNIST_DEFAULT_DIR), CIFAR-10 from the binary batches of a user directory.
 *   Everything read is validated; every error names the file and what is wrong, and on
 *   error the output dataset is left empty (all zero), so rt_dataset_free is always safe.
 *   Pixels are uint8 in NCHW order, labels int32 in [0, classes).
 *
 * Views
 *   rt_data_subset makes a view of a contiguous range of samples (no copy). The DARTS
 *   search splits the training set into its first train_portion for the weights and the
 *   rest for α, without shuffling before the split.
 *
 * Loader
 *   Batches of float images (B,C,H,W) and int32 labels over a dataset (or view), with
 *   optional shuffling, per-channel normalisation and the DARTS augmentations, in
 *   torchvision's order: random crop with zero padding (the padding is pixel value 0,
 *   so it normalises to -mean/std, as in torchvision), horizontal flip with p 0.5,
 *   normalisation, then cutout (an LxL square set to 0.0 after normalisation, clipped at
 *   the borders; the same square in every channel).
 *
 *   Every random draw is a stateless hash of (seed, epoch, position in the epoch), via
 *   krng_hash from kernels/kdesc.h: the permutation of an epoch is a Fisher-Yates shuffle
 *   whose randomness is krng_hash(seed', i), and the augmentation draws of the sample at
 *   position p are krng_hash(seed'', p*8 + k). So a loader's whole state is (epoch, pos):
 *   rt_loader_state reads it, rt_loader_seek restores it, and the batches that follow
 *   are bit-identical to those of the uninterrupted loader.
 *
 *   The loader allocates once, in rt_loader_init; rt_loader_next does not allocate. */
#ifndef DARTSC_RUNTIME_DATA_H
#define DARTSC_RUNTIME_DATA_H

#include <stddef.h>
#include <stdint.h>

#define RT_DATA_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define RT_DATA_MAX_C 4

/* Per-channel statistics of the training sets (pixel/255). CIFAR-10: the values of the
 * DARTS reference code. Fashion-MNIST: computed over the 60000 Debian training images. */
#define RT_DATA_CIFAR10_MEAN {0.49139968f, 0.48215827f, 0.44653124f}
#define RT_DATA_CIFAR10_STD {0.24703233f, 0.24348505f, 0.26158768f}
#define RT_DATA_FMNIST_MEAN {0.28604060f}
#define RT_DATA_FMNIST_STD {0.35302424f}

typedef struct rt_dataset {
    int n, c, h, w, classes;
    uint8_t *pixels;  /* n*c*h*w, NCHW */
    int32_t *labels;  /* n */
    int owns;         /* 1: pixels/labels belong to this struct (freed by rt_dataset_free);
                         0: a view */
} rt_dataset;

/* Fashion-MNIST: train (60000) or test (10000) split from dir (NULL or "" means
 * RT_DATA_FMNIST_DEFAULT_DIR). Files: {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
 * Returns 0, or -1 with err filled ("<path>: <what is wrong>"). */
int rt_data_load_fashion_mnist(const char *dir, int train, rt_dataset *out, char *err,
                               size_t errlen);

/* CIFAR-10 binary version: train = data_batch_1.bin .. data_batch_5.bin, test =
 * test_batch.bin, each a sequence of records (1 label byte, 3072 pixel bytes: 1024 R,
 * 1024 G, 1024 B, row-major 32x32). The official files hold 10000 records each; any
 * file whose size is a positive multiple of 3073 bytes is accepted (so that small
 * synthetic copies work), anything else is refused, as is a label >= 10.
 * Returns 0, or -1 with err filled. */
int rt_data_load_cifar10(const char *dir, int train, rt_dataset *out, char *err,
                         size_t errlen);

/* Frees an owning dataset (a view: just cleared) and zeroes *d. NULL is fine. */
void rt_dataset_free(rt_dataset *d);

/* view = samples [start, start+count) of d, sharing its memory (view->owns = 0; d must
 * outlive the view). Returns 0, or -1 when the range is out of bounds (view zeroed). */
int rt_data_subset(const rt_dataset *d, int start, int count, rt_dataset *view);

typedef struct rt_loader_cfg {
    int batch_size;            /* > 0 */
    uint64_t seed;
    int shuffle;               /* 1: a fresh permutation each epoch; 0: dataset order */
    int drop_last;             /* 1: drop the final short batch */
    int normalize;             /* 1: (p/255 - mean[c]) / std[c]; 0: p/255 */
    float mean[RT_DATA_MAX_C];
    float std[RT_DATA_MAX_C];  /* > 0 when normalize */
    int crop_pad;              /* P > 0: pad by P (pixel 0), crop HxW at a random offset */
    int flip;                  /* 1: horizontal flip with probability 0.5 */
    int cutout;                /* L > 0: zero an LxL square at a random centre (clipped) */
    int shards, shard;         /* shards > 1: a data-parallel process's part of each batch:
                                  rt_loader_next serves the whole batch (the same positions,
                                  draws and state as without shards) but fills only its
                                  samples [b*shard/shards, b*(shard+1)/shards) */
} rt_loader_cfg;

typedef struct rt_loader {
    rt_dataset d;              /* a copy of the view: the pixels are not owned */
    rt_loader_cfg cfg;
    int32_t *perm;             /* n: dataset index of each position in this epoch */
    float lut[RT_DATA_MAX_C][256]; /* normalised value of each pixel value, per channel */
    int64_t epoch, pos;        /* pos: position in the epoch of the next sample */
    int64_t end;               /* positions served per epoch (n, or n rounded down) */
} rt_loader;

/* Zero-initialised config with batch_size 64, shuffle 1, everything else off. */
rt_loader_cfg rt_loader_cfg_default(void);

/* Returns 0, or -1 with err filled (bad config, empty dataset, no batch per epoch, more
 * than RT_DATA_MAX_C channels with normalisation, out of memory). Starts at epoch 0. */
int rt_loader_init(rt_loader *l, const rt_dataset *d, const rt_loader_cfg *cfg, char *err,
                   size_t errlen);

/* Fills images (batch_size*C*H*W floats) and labels (batch_size) with the next batch and
 * returns 1 with *batch_out its size (the last batch may be short without drop_last); with
 * shards, this process's part of it and the part's size.
 * At the end of an epoch returns 0 (*batch_out = 0) and moves to the next epoch, whose
 * permutation differs. */
int rt_loader_next(rt_loader *l, float *images, int32_t *labels, int *batch_out);

int64_t rt_loader_batches_per_epoch(const rt_loader *l);

/* The loader's whole state. pos counts samples served in this epoch. */
void rt_loader_state(const rt_loader *l, int64_t *epoch, int64_t *pos);

/* Restores a state saved with rt_loader_state (epoch >= 0, 0 <= pos <= samples per
 * epoch). Returns 0, or -1 when out of range (the loader is unchanged). */
int rt_loader_seek(rt_loader *l, int64_t epoch, int64_t pos);

void rt_loader_free(rt_loader *l);

#endif
