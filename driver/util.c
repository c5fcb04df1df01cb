/* util.c — what every command shares: strict numeric flags and the checks on the kind of
 * file a path names before a command reads or replaces it (runtime/files.h). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "runtime/files.h"

volatile sig_atomic_t dartsc_stop_flag;

static void on_signal(int sig) {
    (void)sig;
    dartsc_stop_flag = 1;
}

void dartsc_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int dartsc_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out) {
    if (!v) {
        fprintf(stderr, "dartsc %s: %s needs a value\n", cmd, flag);
        return -1;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    int digits = isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1])); /* no spaces, no '+' */
    if (!digits || *end || errno == ERANGE || x < lo || x > hi) {
        fprintf(stderr, "dartsc %s: %s: '%s' is not an integer in %ld..%ld\n", cmd, flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int dartsc_parse_int(const char *cmd, const char *flag, const char *v, int lo, int hi, int *out) {
    long x;
    if (dartsc_parse_long(cmd, flag, v, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

int dartsc_check_input(const char *cmd, const char *path) {
    char err[1200];
    if (rt_file_check_input(path, err, sizeof err) == 0) return 0;
    fprintf(stderr, "dartsc %s: %s\n", cmd, err);
    return -1;
}

int dartsc_check_output(const char *cmd, const char *path) {
    char err[1200];
    if (rt_file_check_output(path, err, sizeof err) == 0) return 0;
    fprintf(stderr, "dartsc %s: %s\n", cmd, err);
    return -1;
}

int dartsc_check_output_dir(const char *cmd, const char *dir) {
    struct stat st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "dartsc %s: %s: cannot create: %s\n", cmd, dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "dartsc %s: %s: is %s, not a directory\n", cmd, dir,
                lstat(dir, &st) == 0 ? rt_file_kind(st.st_mode) : "missing");
        return -1;
    }
    return 0;
}

FILE *dartsc_fopen_out(const char *cmd, const char *path) {
    if (dartsc_check_output(cmd, path)) return NULL;
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "dartsc %s: %s: cannot create: %s\n", cmd, path, strerror(errno));
    return f;
}

void dartsc_out_dir_note(dartsc_out_dir *d, const char *dir) {
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    /* the topmost directory of the path that does not exist yet: everything below it is ours */
    char p[sizeof d->dir];
    snprintf(p, sizeof p, "%s", dir);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    struct stat st;
    while (n > 0 && stat(p, &st) != 0 && errno == ENOENT) {
        snprintf(d->created, sizeof d->created, "%s", p);
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) break;
        *slash = 0;
        n = strlen(p);
    }
}

void dartsc_out_dir_cleanup(const dartsc_out_dir *d) {
    if (!d->created[0]) return; /* it existed before: not ours to remove */
    char p[sizeof d->dir];
    snprintf(p, sizeof p, "%s", d->dir);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    for (;;) { /* rmdir removes only empty directories */
        if (rmdir(p) != 0) return;
        if (!strcmp(p, d->created)) return;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) return;
        *slash = 0;
    }
}
