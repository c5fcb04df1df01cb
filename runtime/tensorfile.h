/* tensorfile.h — the "DTNS" tensor file format, shared with tests/ref/tensorfile.py.
 *
 * Layout, all little-endian:
 *   header : "DTNS", u32 version = 1, u32 count, u32 reserved = 0
 *   tensor : u32 name_len (1..4096), name (utf-8, no NUL), u32 dtype (0 f32, 1 i32),
 *            u32 ndim (0..4), u64 dims[ndim], numel*4 bytes of data (row-major)
 *   trailer: u32 zlib crc32 of every byte before it
 *
 * Writing is atomic: the data goes to "path.tmp", which is flushed, fsynced and renamed
 * over path (then the directory is fsynced). On any failure the temporary file is removed
 * and an existing file at path is left untouched.
 *
 * Reading loads the whole file, validates everything (magic, version, CRC, every length,
 * dims overflow, trailing bytes) before returning, and never trusts a length it has not
 * bounds-checked. Error messages name the file and what is wrong. */
#ifndef DARTSC_RUNTIME_TENSORFILE_H
#define DARTSC_RUNTIME_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#define RT_TF_F32 0
#define RT_TF_I32 1
#define RT_TF_MAX_NDIM 4
#define RT_TF_MAX_NAME 4096

typedef struct rt_tf_writer rt_tf_writer;
typedef struct rt_tf_file rt_tf_file;

typedef struct rt_tf_entry {
    const char *name;   /* NUL-terminated copy */
    int dtype;          /* RT_TF_F32 or RT_TF_I32 */
    int ndim;           /* 0..4 */
    int64_t dims[4];    /* unused dims are 1 */
    int64_t numel;      /* product of dims (1 for ndim 0) */
    const void *data;   /* numel elements, 4-byte aligned, host byte order */
} rt_tf_entry;

/* Writer. Returns NULL and fills err on failure. */
rt_tf_writer *rt_tf_open_write(const char *path, char *err, size_t errlen);
/* Appends one tensor; returns 0 on success, -1 on error (the error is remembered and
 * reported by rt_tf_close_write, which then discards the file). dims may be NULL when
 * ndim is 0. */
int rt_tf_write(rt_tf_writer *w, const char *name, int dtype, int ndim, const int64_t *dims,
                const void *data);
/* Finishes the file (count, CRC, fsync, rename) and frees w. Returns 0 on success; on
 * failure -1 with err filled, the temp file removed and any existing path untouched. */
int rt_tf_close_write(rt_tf_writer *w, char *err, size_t errlen);
/* Discards a writer without producing a file. */
void rt_tf_abort_write(rt_tf_writer *w);
/* The first error of a writer whose rt_tf_write failed (path, what and strerror, e.g. "No
 * space left on device"), or NULL; for the message before rt_tf_abort_write. */
const char *rt_tf_writer_error(const rt_tf_writer *w);

/* Reader. Returns NULL and fills err on failure. */
rt_tf_file *rt_tf_read(const char *path, char *err, size_t errlen);
int rt_tf_count(const rt_tf_file *f);
const rt_tf_entry *rt_tf_get(const rt_tf_file *f, int i);            /* NULL if out of range */
const rt_tf_entry *rt_tf_find(const rt_tf_file *f, const char *name); /* NULL if absent */
void rt_tf_free(rt_tf_file *f);

#endif
