/* text.c — Penn-Treebank-layout corpora: vocabulary, token streams, batchify, BPTT windows
 * (text.h). */
#include "text.h"
#include "files.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int terr(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int rt_corpus_find(const rt_corpus *c, const char *word) {
    if (!c->n_slots) return -1;
    for (uint64_t i = fnv(word) & (uint64_t)(c->n_slots - 1);; i = (i + 1) & (uint64_t)(c->n_slots - 1)) {
        int32_t id = c->slots[i];
        if (id < 0) return -1;
        if (!strcmp(c->words[id], word)) return id;
    }
}

/* Adds a word (training file); returns its id or -1 when out of memory. */
static int vocab_add(rt_corpus *c, const char *word) {
    int id = rt_corpus_find(c, word);
    if (id >= 0) return id;
    if ((int64_t)(c->n_words + 1) * 2 > c->n_slots) { /* grow: load factor below 1/2 */
        int64_t ns = c->n_slots ? c->n_slots * 2 : 1024;
        int32_t *slots = malloc((size_t)ns * sizeof *slots);
        char **words = realloc(c->words, (size_t)ns * sizeof *words);
        if (!slots || !words) { free(slots); if (words) c->words = words; return -1; }
        c->words = words;
        for (int64_t i = 0; i < ns; i++) slots[i] = -1;
        for (int w = 0; w < c->n_words; w++) {
            uint64_t i = fnv(c->words[w]) & (uint64_t)(ns - 1);
            while (slots[i] >= 0) i = (i + 1) & (uint64_t)(ns - 1);
            slots[i] = w;
        }
        free(c->slots);
        c->slots = slots;
        c->n_slots = ns;
    }
    char *dup = strdup(word);
    if (!dup) return -1;
    id = c->n_words++;
    c->words[id] = dup;
    uint64_t i = fnv(word) & (uint64_t)(c->n_slots - 1);
    while (c->slots[i] >= 0) i = (i + 1) & (uint64_t)(c->n_slots - 1);
    c->slots[i] = id;
    return id;
}

/* Tokenises one file into c->ids[split]; the training split grows the vocabulary. */
static int read_split(rt_corpus *c, const char *dir, const char *name, int split, char *err, size_t errlen) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return terr(err, errlen, "%s: is %s, not a regular file", path, rt_file_kind(st.st_mode));
    FILE *f = fopen(path, "rb");
    if (!f) return terr(err, errlen, "%s: cannot open: %s (a corpus in the Penn Treebank layout needs train.txt, valid.txt "
                        "and test.txt; scripts/make-corpus makes one)", path, strerror(errno));
    int64_t cap = 1 << 16, n = 0, line_no = 0, words = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = -1;
    if (!ids) { terr(err, errlen, "out of memory"); goto out; }
    while ((len = getline(&line, &lcap, f)) >= 0) {
        line_no++;
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\r\n\v\f", &save);; tok = strtok_r(NULL, " \t\r\n\v\f", &save)) {
            const char *w = tok ? tok : "<eos>";
            int id;
            if (split == RT_SPLIT_TRAIN) {
                id = vocab_add(c, w);
                if (id < 0) { terr(err, errlen, "out of memory"); goto out; }
            } else {
                id = rt_corpus_find(c, w);
                if (id < 0) {
                    if (c->unk < 0) {
                        terr(err, errlen, "%s:%lld: word '%s' is not in the training file's vocabulary, which has no <unk> "
                             "to stand for it", path, (long long)line_no, w);
                        goto out;
                    }
                    id = c->unk;
                    c->n_unk[split]++;
                }
            }
            if (n == cap) {
                int32_t *t = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
                if (!t) { terr(err, errlen, "out of memory"); goto out; }
                ids = t;
            }
            ids[n++] = id;
            if (!tok) break;
            words++;
        }
    }
    if (ferror(f)) { terr(err, errlen, "%s: read error", path); goto out; }
    if (words == 0) {
        terr(err, errlen, "%s:%lld: no words in the file (a corpus split needs at least one sentence)", path,
             (long long)(line_no ? line_no : 1));
        goto out;
    }
    c->ids[split] = ids;
    c->n[split] = n;
    ids = NULL;
    rc = 0;
out:
    free(ids);
    free(line);
    fclose(f);
    return rc;
}

void rt_corpus_free(rt_corpus *c) {
    for (int i = 0; i < c->n_words; i++) free(c->words[i]);
    free(c->words);
    free(c->slots);
    for (int s = 0; s < RT_SPLIT_COUNT; s++) free(c->ids[s]);
    memset(c, 0, sizeof *c);
    c->unk = c->eos = -1;
}

int rt_corpus_load(const char *dir, rt_corpus *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->unk = c->eos = -1;
    static const char *names[RT_SPLIT_COUNT] = {"train.txt", "valid.txt", "test.txt"};
    for (int s = 0; s < RT_SPLIT_COUNT; s++) {
        if (read_split(c, dir, names[s], s, err, errlen)) {
            rt_corpus_free(c);
            return -1;
        }
        if (s == RT_SPLIT_TRAIN) {
            c->unk = rt_corpus_find(c, "<unk>");
            c->eos = rt_corpus_find(c, "<eos>");
        }
    }
    return 0;
}

int rt_text_batchify(const int32_t *ids, int64_t n, int B, rt_text_stream *s) {
    memset(s, 0, sizeof *s);
    if (B < 1) return -1;
    int64_t steps = n / B;
    if (steps < 2) return -1;
    s->data = malloc((size_t)(steps * B) * sizeof *s->data);
    if (!s->data) return -1;
    for (int b = 0; b < B; b++)
        for (int64_t t = 0; t < steps; t++) s->data[t * B + b] = ids[(int64_t)b * steps + t];
    s->steps = steps;
    s->batch = B;
    return 0;
}

void rt_text_stream_free(rt_text_stream *s) {
    free(s->data);
    memset(s, 0, sizeof *s);
}

int64_t rt_text_windows(const rt_text_stream *s, int T) { return T > 0 ? (s->steps - 1) / T : 0; }

void rt_text_window(const rt_text_stream *s, int64_t w, int T, int32_t *x, int32_t *y) {
    int64_t i = w * T, B = s->batch;
    memcpy(x, s->data + i * B, (size_t)(T * B) * sizeof *x);
    memcpy(y, s->data + (i + 1) * B, (size_t)(T * B) * sizeof *y);
}
