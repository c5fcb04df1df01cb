/* text.h — word-level text corpora in the Penn Treebank layout, batched for truncated BPTT.
 *
 * A corpus directory holds train.txt, valid.txt and test.txt: one sentence per line,
 * tokens separated by white space. As the reference DARTS/AWD-LSTM `data.Corpus`, every
 * line gets an "<eos>" token appended and word ids are given in first-seen order, but the
 * vocabulary comes from the training file only: a word of valid/test that training never
 * saw becomes "<unk>" (an error, naming file:line, when training has no "<unk>").
 *
 * Batching is the reference's `batchify`: a token stream of n ids is cut into B columns
 * of n / B tokens (the remainder is dropped); step t of column b is stream[b * (n/B) + t].
 * A BPTT window starting at step i has inputs steps i..i+T-1 and targets i+1..i+T.
 * dartsc's graphs are static, so every window has the fixed length T (the paper's random
 * window length is not modelled) and a stream yields (steps - 1) / T windows; the tokens
 * after the last full window are not used.
 *
 * Usage:
 *   rt_corpus c;
 *   if (rt_corpus_load("data/fortunes", &c, err, sizeof err)) puts(err);
 *   rt_text_stream s;
 *   rt_text_batchify(c.ids[RT_SPLIT_TRAIN], c.n[RT_SPLIT_TRAIN], 64, &s);
 *   for (int64_t w = 0; w < rt_text_windows(&s, 35); w++) rt_text_window(&s, w, 35, x, y);
 *   rt_text_stream_free(&s); rt_corpus_free(&c);
 */
#ifndef DARTSC_RUNTIME_TEXT_H
#define DARTSC_RUNTIME_TEXT_H

#include <stddef.h>
#include <stdint.h>

enum { RT_SPLIT_TRAIN, RT_SPLIT_VALID, RT_SPLIT_TEST, RT_SPLIT_COUNT };

typedef struct rt_corpus {
    char **words;                    /* vocabulary, by id */
    int n_words;
    int unk, eos;                    /* ids of "<unk>" (-1 if training has none) and "<eos>" */
    int32_t *ids[RT_SPLIT_COUNT];    /* token streams of train, valid, test */
    int64_t n[RT_SPLIT_COUNT];
    int64_t n_unk[RT_SPLIT_COUNT];   /* valid/test words mapped to <unk> because training lacks them */
    /* private: hash table of the vocabulary */
    int32_t *slots;
    int64_t n_slots;
} rt_corpus;

/* Reads dir/{train,valid,test}.txt. On error the corpus is left empty (free is safe). */
int rt_corpus_load(const char *dir, rt_corpus *c, char *err, size_t errlen);
void rt_corpus_free(rt_corpus *c);
/* Id of a word, or -1. */
int rt_corpus_find(const rt_corpus *c, const char *word);

typedef struct rt_text_stream {
    int32_t *data;   /* (steps, B) row-major: data[t * B + b] */
    int64_t steps;
    int batch;
} rt_text_stream;

/* Returns -1 when the stream has fewer than 2 steps of B columns. */
int rt_text_batchify(const int32_t *ids, int64_t n, int B, rt_text_stream *s);
void rt_text_stream_free(rt_text_stream *s);
/* Full windows of length T. */
int64_t rt_text_windows(const rt_text_stream *s, int T);
/* Window w: x (T, B) inputs, y (T, B) targets, time-major. */
void rt_text_window(const rt_text_stream *s, int64_t w, int T, int32_t *x, int32_t *y);

#endif
