/* files.h — what kind of file a path names, checked before dartsc opens it.
 *
 * Inputs (spaces, genotypes, data files, checkpoints, weights, ONNX models) must be
 * regular files: opening a FIFO for reading blocks until a writer comes, a directory or a
 * device gives misleading errors. Outputs may replace only a regular file: every writer
 * writes a temporary file and renames it over the path, which would silently replace a
 * FIFO, a device node, a symbolic link or (for some) a directory.
 *
 * Usage:
 *   if (rt_file_check_input(path, err, sizeof err)) return -1;   // then fopen(path, "rb")
 *   if (rt_file_check_output(path, err, sizeof err)) return -1;  // then write path.tmp, rename
 */
#ifndef DARTSC_RT_FILES_H
#define DARTSC_RT_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* "a directory", "a FIFO (named pipe)", "a character device", ... for a st_mode. */
const char *rt_file_kind(mode_t mode);
/* 0 when path exists and is a regular file (symbolic links followed); otherwise -1 and
 * "PATH: cannot open: No such file or directory" or "PATH: is a FIFO (named pipe), not a
 * regular file" in err. */
int rt_file_check_input(const char *path, char *err, size_t errlen);
/* The same, and the file's size in bytes into *size (may be NULL). */
int rt_file_input_size(const char *path, int64_t *size, char *err, size_t errlen);
/* 0 when path does not exist or is a regular file (not a symbolic link); otherwise -1 and
 * "PATH: is a character device, not a regular file; refusing to replace it" in err. */
int rt_file_check_output(const char *path, char *err, size_t errlen);

#endif
