/* data_images.c — image folders as a data set (datasets.h): DIR/{train,test}/<class>/ with
 * .png, .jpg and .jpeg files, decoded once with libpng (simplified API) and libjpeg-turbo, in
 * parallel over files (OpenMP), converted to the channels and resized to the size the
 * network's input asks for. Each file's decoding error is kept; the error reported is
 * the first bad file in sample order, so the message does not depend on the threads. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
/* after stdio.h, which jpeglib.h needs */
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kdesc.h"
#include "runtime/datasets.h"
#include "runtime/files.h"

#define IMG_MAX_FILES (1 << 24)
#define IMG_MAX_BYTES (1l << 30)
#define IMG_MAX_SIDE 32768
/* The seed of the fixed sample order ("images"). */
#define IMG_ORDER_SEED 0x696d61676573ull

#define seterr rt_data_seterr

/* ---- names -------------------------------------------------------------------------------- */

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static int names_push(name_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void rt_data_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Entries of dir (hidden ones skipped), sorted. dirs_only: 1 folders, refusing files;
 * 0 anything. */
static int list_dir(const char *dir, int dirs_only, name_list *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        seterr(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    char p[8400];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (dirs_only) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (!is_dir(p)) {
                seterr(err, errlen, "%s: not a class folder (expected %s/<class>/<images>)", p, dir);
                closedir(d);
                rt_data_names_free(out->v, out->n);
                memset(out, 0, sizeof *out);
                return -1;
            }
        }
        if (names_push(out, e->d_name)) {
            seterr(err, errlen, "%s: out of memory", dir);
            closedir(d);
            rt_data_names_free(out->v, out->n);
            memset(out, 0, sizeof *out);
            return -1;
        }
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return 0;
}

static void split_dir(char *buf, size_t len, const char *dir, const char *split) {
    snprintf(buf, len, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", split);
}

int rt_data_image_classes(const char *dir, char ***names, int *n, char *err, size_t errlen) {
    *names = NULL;
    *n = 0;
    if (!dir || !dir[0]) {
        seterr(err, errlen, "images: no directory given (data images \"DIR\" with DIR/train/<class>/*.png)");
        return -1;
    }
    char td[4200];
    split_dir(td, sizeof td, dir, "train");
    name_list l;
    if (list_dir(td, 1, &l, err, errlen)) return -1;
    if (l.n == 0) {
        seterr(err, errlen, "%s: no class folders", td);
        free(l.v);
        return -1;
    }
    *names = l.v;
    *n = l.n;
    return 0;
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    if (n <= e) return 0;
    for (size_t i = 0; i < e; i++)
        if (tolower((unsigned char)name[n - e + i]) != ext[i]) return 0;
    return 1;
}

/* A decoded image: sc planar 8-bit channels of h x w. */
typedef struct img {
    int c, h, w;
    uint8_t *p;
} img;

static int decode_png(const char *path, const unsigned char *buf, size_t len, img *im, char *err, size_t errlen) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&pi, buf, len)) {
        seterr(err, errlen, "%s: corrupt PNG (libpng: %s)", path, pi.message);
        png_image_free(&pi);
        return -1;
    }
    int colour = (pi.format & PNG_FORMAT_FLAG_COLOR) != 0, alpha = (pi.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    /* 8-bit sRGB values as stored (no compositing: alpha, if any, is read and dropped) */
    pi.format = (colour ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY) | (alpha ? PNG_FORMAT_FLAG_ALPHA : 0);
    pi.flags |= PNG_IMAGE_FLAG_16BIT_sRGB; /* 16-bit samples without gAMA/sRGB: scaled, not gamma-encoded */
    if (pi.width < 1 || pi.height < 1 || pi.width > IMG_MAX_SIDE || pi.height > IMG_MAX_SIDE) {
        seterr(err, errlen, "%s: implausible PNG size %ux%u", path, pi.width, pi.height);
        png_image_free(&pi);
        return -1;
    }
    int ic = colour ? 3 : 1, stride = ic + alpha;
    size_t hw = (size_t)pi.width * pi.height;
    unsigned char *inter = malloc(hw * stride);
    im->p = malloc(hw * ic);
    if (!inter || !im->p) {
        free(inter);
        free(im->p);
        im->p = NULL;
        png_image_free(&pi);
        seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (!png_image_finish_read(&pi, NULL, inter, 0, NULL)) {
        seterr(err, errlen, "%s: corrupt or truncated PNG (libpng: %s)", path, pi.message);
        free(inter);
        free(im->p);
        im->p = NULL;
        png_image_free(&pi);
        return -1;
    }
    for (size_t k = 0; k < hw; k++)
        for (int c = 0; c < ic; c++) im->p[(size_t)c * hw + k] = inter[k * stride + c];
    free(inter);
    im->c = ic;
    im->h = (int)pi.height;
    im->w = (int)pi.width;
    png_image_free(&pi);
    return 0;
}

/* libjpeg reports errors through error_exit (longjmp back here) and warnings (among them
 * "Premature end of JPEG file", a truncated file it would fill with grey) through
 * emit_message: both refuse the file. */
typedef struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void jerr_exit(j_common_ptr cinfo) {
    jerr *e = (jerr *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void jerr_emit(j_common_ptr cinfo, int level) {
    if (level < 0) jerr_exit(cinfo); /* a warning: corrupt or truncated data */
}

static int decode_jpeg(const char *path, const unsigned char *buf, size_t len, img *im, char *err, size_t errlen) {
    struct jpeg_decompress_struct ci;
    jerr je;
    /* volatile: assigned between setjmp and a longjmp back, read after it */
    unsigned char *volatile row = NULL;
    im->p = NULL;
    ci.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jerr_exit;
    je.mgr.emit_message = jerr_emit;
    je.msg[0] = 0;
    if (setjmp(je.jb)) {
        seterr(err, errlen, "%s: corrupt or truncated JPEG (libjpeg: %s)", path, je.msg);
        jpeg_destroy_decompress(&ci);
        free(row);
        free(im->p);
        im->p = NULL;
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if (ci.num_components == 1) ci.out_color_space = JCS_GRAYSCALE;
    else if (ci.num_components == 3) ci.out_color_space = JCS_RGB;
    else {
        snprintf(je.msg, sizeof je.msg, "%d colour components (CMYK?) are not supported", ci.num_components);
        longjmp(je.jb, 1);
    }
    jpeg_start_decompress(&ci);
    int ic = ci.output_components;
    if (ci.output_width < 1 || ci.output_height < 1 || ci.output_width > IMG_MAX_SIDE ||
        ci.output_height > IMG_MAX_SIDE) {
        snprintf(je.msg, sizeof je.msg, "implausible size %ux%u", ci.output_width, ci.output_height);
        longjmp(je.jb, 1);
    }
    size_t W = ci.output_width, hw = (size_t)ci.output_width * ci.output_height;
    row = malloc(W * ic);
    im->p = malloc(hw * ic);
    if (!row || !im->p) {
        snprintf(je.msg, sizeof je.msg, "out of memory");
        longjmp(je.jb, 1);
    }
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        JSAMPROW rp = (JSAMPROW)row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            snprintf(je.msg, sizeof je.msg, "no scanline %zu", y);
            longjmp(je.jb, 1);
        }
        for (size_t x = 0; x < W; x++)
            for (int c = 0; c < ic; c++) im->p[(size_t)c * hw + y * W + x] = row[x * ic + c];
    }
    jpeg_finish_decompress(&ci);
    im->c = ic;
    im->h = (int)ci.output_height;
    im->w = (int)ci.output_width;
    jpeg_destroy_decompress(&ci);
    free(row);
    return 0;
}

/* Reads, decodes, converts and resizes one file into dst (want's C x H x W). */
static int load_one(const char *path, const rt_data_want *want, uint8_t *dst, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block the open */
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        seterr(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "%s: is %s, not a regular file", path, rt_file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    if (st.st_size > IMG_MAX_BYTES) {
        seterr(err, errlen, "%s: %lld bytes: larger than any image dartsc reads (%lld)", path, (long long)st.st_size,
               (long long)IMG_MAX_BYTES);
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(len ? len : 1);
    while (buf && got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != len) {
        seterr(err, errlen, "%s: %s", path, buf ? "read error (the file shrank?)" : "out of memory");
        free(buf);
        return -1;
    }
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    img im = {0};
    int rc;
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0) rc = decode_png(path, buf, len, &im, err, errlen);
    else if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) rc = decode_jpeg(path, buf, len, &im, err, errlen);
    else {
        seterr(err, errlen, "%s: neither a PNG nor a JPEG (%zu bytes, no PNG or JPEG signature)", path, len);
        rc = -1;
    }
    free(buf);
    if (rc) return -1;
    const size_t shw = (size_t)im.h * im.w, dhw = (size_t)want->h * want->w;
    uint8_t *conv = malloc((size_t)want->c * shw);
    if (!conv || rt_data_convert_channels(conv, want->c, im.p, im.c, shw)) {
        seterr(err, errlen, "%s: %s", path, conv ? "cannot convert its channels" : "out of memory");
        free(conv);
        free(im.p);
        return -1;
    }
    free(im.p);
    for (int c = 0; c < want->c; c++) {
        if (rt_data_resize(dst + (size_t)c * dhw, want->h, want->w, conv + (size_t)c * shw, im.h, im.w)) {
            seterr(err, errlen, "%s: out of memory while resizing", path);
            free(conv);
            return -1;
        }
    }
    free(conv);
    return 0;
}

/* ---- the data set ------------------------------------------------------------------------- */

int rt_data_load_images(const char *dir, int train, const rt_data_want *want, rt_dataset *out, char *err,
                        size_t errlen) {
    if (!out) {
        seterr(err, errlen, "images: no output dataset");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!want || (want->c != 1 && want->c != 3) || want->h < 1 || want->w < 1 || want->classes < 1) {
        seterr(err, errlen, "images: input must have 1 (grey) or 3 (RGB) channels");
        return -1;
    }
    char **classes = NULL;
    int nclass = 0;
    if (rt_data_image_classes(dir, &classes, &nclass, err, errlen)) return -1;
    char sd[4200];
    split_dir(sd, sizeof sd, dir, train ? "train" : "test");
    name_list paths = {0};
    int32_t *labels = NULL, *sorted_labels = NULL;
    int *pos = NULL;
    uint8_t *pix = NULL;
    name_list sub = {0};
    int cap = 0;
    if (nclass > want->classes) {
        seterr(err, errlen, "%s/train: %d class folders, but the space has classes %d", dir, nclass, want->classes);
        goto fail;
    }
    if (train) {
        sub.v = classes;
        sub.n = nclass;
    } else if (list_dir(sd, 1, &sub, err, errlen)) {
        goto fail;
    } else if (sub.n == 0) {
        seterr(err, errlen, "%s: no class folders", sd);
        goto fail;
    }
    for (int k = 0; k < sub.n; k++) {
        int label = k;
        if (!train) {
            char **hit = bsearch(&sub.v[k], classes, (size_t)nclass, sizeof *classes, cmp_str);
            if (!hit) {
                seterr(err, errlen, "%s/%s: class '%s' is not among the %d training classes of %s/train", sd, sub.v[k],
                       sub.v[k], nclass, dir);
                goto fail;
            }
            label = (int)(hit - classes);
        }
        char cd[8400];
        snprintf(cd, sizeof cd, "%s/%s", sd, sub.v[k]);
        name_list files;
        if (list_dir(cd, 0, &files, err, errlen)) goto fail;
        if (files.n == 0) {
            seterr(err, errlen, "%s: empty class folder (no .png, .jpg or .jpeg files)", cd);
            free(files.v);
            goto fail;
        }
        for (int i = 0; i < files.n; i++) {
            const char *fn = files.v[i];
            char fp[8800];
            snprintf(fp, sizeof fp, "%s/%s", cd, fn);
            int bad = !(has_ext(fn, ".png") || has_ext(fn, ".jpg") || has_ext(fn, ".jpeg"));
            if (bad || paths.n >= IMG_MAX_FILES || names_push(&paths, fp)) {
                if (bad) seterr(err, errlen, "%s: not an image file (expected .png, .jpg or .jpeg)", fp);
                else seterr(err, errlen, "%s: too many files or out of memory", fp);
                rt_data_names_free(files.v, files.n);
                goto fail;
            }
            if (paths.n > cap) {
                int nc = cap ? 2 * cap : 1024;
                int32_t *nl = realloc(labels, (size_t)nc * sizeof *nl);
                if (!nl) {
                    seterr(err, errlen, "%s: out of memory", sd);
                    rt_data_names_free(files.v, files.n);
                    goto fail;
                }
                labels = nl;
                cap = nc;
            }
            labels[paths.n - 1] = label;
        }
        rt_data_names_free(files.v, files.n);
    }
    const size_t chw = (size_t)want->c * want->h * want->w;
    const int n = paths.n;
    pix = malloc((size_t)n * chw);
    pos = malloc((size_t)n * sizeof *pos);
    sorted_labels = labels;
    labels = malloc((size_t)n * sizeof *labels);
    if (!pix || !pos || !labels) {
        seterr(err, errlen, "%s: out of memory for %d images of %dx%dx%d", sd, n, want->c, want->h, want->w);
        goto fail;
    }
    /* File i (in class, then name order) becomes sample pos[i]: a fixed permutation
       (Fisher-Yates over krng_hash), so that the first N samples (subset) and the DARTS
       split of the training set hold every class, the same on every machine. */
    for (int i = 0; i < n; i++) pos[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(krng_hash(IMG_ORDER_SEED, (uint64_t)i) % (uint64_t)(i + 1));
        int t = pos[i];
        pos[i] = pos[j];
        pos[j] = t;
    }
    for (int i = 0; i < n; i++) labels[pos[i]] = sorted_labels[i];
    /* decode in parallel; keep the message of the first bad file in class, name order */
    int first_bad = n;
#pragma omp parallel
    {
        char e[1024];
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < n; i++) {
            if (load_one(paths.v[i], want, pix + (size_t)pos[i] * chw, e, sizeof e)) {
#pragma omp critical(rt_data_images_err)
                {
                    if (i < first_bad) {
                        first_bad = i;
                        seterr(err, errlen, "%s", e);
                    }
                }
            }
        }
    }
    if (first_bad < n) goto fail;
    free(pos);
    free(sorted_labels);
    if (!train) rt_data_names_free(sub.v, sub.n);
    rt_data_names_free(classes, nclass);
    rt_data_names_free(paths.v, paths.n);
    rt_dataset_own(out, n, want->c, want->h, want->w, nclass, pix, labels);
    return 0;
fail:
    if (!train) rt_data_names_free(sub.v, sub.n);
    rt_data_names_free(classes, nclass);
    rt_data_names_free(paths.v, paths.n);
    free(labels);
    free(sorted_labels);
    free(pos);
    free(pix);
    memset(out, 0, sizeof *out);
    return -1;
}
