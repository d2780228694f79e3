/*
 * ext.c: the extension directory, <data>/extensions (see ext.h): emptied,
 * then filled from -extensions-path's entries; archives are extracted by
 * archive.c.
 *
 * Sources are opened before they are looked at (fstat on the descriptor),
 * so that what is checked is what is copied, and a FIFO or a device never
 * blocks the start (O_NONBLOCK) nor gets copied.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext/ext.h"
#include "ext/internal.h"
#include "util/os.h"

const char *ext_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int removeEntry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* rqlite's store starts empty at every start: what the flag names now is
 * all that loads. FTW_PHYS: links in it are removed, never followed. */
static int freshDir(const char *dir, char **err)
{
    struct stat sb;
    if (lstat(dir, &sb) == 0 && nftw(dir, removeEntry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        *err = rq_sprintf("cannot empty the extensions directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (mkdir(dir, 0755) != 0) {
        *err = rq_sprintf("cannot create the extensions directory %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int extCreate(const char *dir, const char *name, char **err)
{
    char *path = rq_sprintf("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST)
        *err = rq_sprintf("two extensions are named %s", name);
    else if (fd < 0)
        *err = rq_sprintf("cannot create %s: %s", path, strerror(errno));
    free(path);
    return fd;
}

int extWrite(const char *dir, const char *name, extReader next, void *ctx, char **err)
{
    int out = extCreate(dir, name, err);
    if (out < 0)
        return -1;
    char buf[65536];
    long n;
    int rc = 0;
    while (rc == 0 && (n = next(ctx, buf, sizeof buf, err)) != 0) {
        if (n < 0) {
            rc = -1;
        } else if (rq_write_all(out, buf, (size_t)n) != 0) {
            *err = rq_sprintf("cannot write %s/%s: %s", dir, name, strerror(errno));
            rc = -1;
        }
    }
    if (close(out) != 0 && rc == 0) {
        *err = rq_sprintf("cannot write %s/%s: %s", dir, name, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* A file being copied: its descriptor and path (for messages). */
typedef struct fileSource {
    int fd;
    const char *path;
} fileSource;

static long readFile(void *ctx, char *buf, unsigned long n, char **err)
{
    fileSource *f = ctx;
    for (;;) {
        ssize_t r = read(f->fd, buf, n);
        if (r >= 0)
            return (long)r;
        if (errno != EINTR) {
            *err = rq_sprintf("cannot read %s: %s", f->path, strerror(errno));
            return -1;
        }
    }
}

/* Copy what is open on in (src: its path) to dir/name. */
static int copyTo(int in, const char *src, const char *dir, const char *name, char **err)
{
    fileSource f = {in, src};
    return extWrite(dir, name, readFile, &f, err);
}

/* Open path for reading, whatever it is (a directory too), without
 * blocking on a FIFO: the descriptor and *sb, or -1 with *err. */
static int openSource(const char *path, struct stat *sb, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 && errno == ENOENT)
        *err = rq_sprintf("extension path does not exist: %s", path);
    else if (fd < 0)
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
    else if (fstat(fd, sb) != 0) {
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
    }
    return fd;
}

/* A directory's regular files, not its subdirectories nor files whose name
 * starts with '.' (rqlite's listing); anything else in it is refused. */
static int installDir(int dfd, const char *path, const char *dir, char **err)
{
    DIR *d = fdopendir(dup(dfd));
    if (d == NULL) {
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *src = rq_sprintf("%s/%s", path, e->d_name);
        struct stat sb;
        int fd = openSource(src, &sb, err);
        if (fd < 0) {
            rc = -1;
        } else if (S_ISREG(sb.st_mode)) {
            rc = copyTo(fd, src, dir, e->d_name, err);
        } else if (!S_ISDIR(sb.st_mode)) {
            *err = rq_sprintf("%s is not a regular file", src);
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
        free(src);
    }
    closedir(d);
    return rc;
}

/* A file: a zip or gzip archive by its first bytes (as rqlite tells them),
 * else one extension. */
static int installFile(int fd, const char *path, const char *dir, char **err)
{
    unsigned char magic[4] = {0};
    ssize_t n = pread(fd, magic, sizeof magic, 0);
    if (n < 0) {
        *err = rq_sprintf("cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (n == 4 && memcmp(magic, "PK\x03\x04", 4) == 0)
        return extExtract(fd, path, true, dir, err);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        return extExtract(fd, path, false, dir, err);
    const char *name = ext_name(path);
    if (name[0] == '.' || name[0] == '\0') {
        /* rqlite copies it, then never loads it: refused, not ignored. */
        *err = rq_sprintf("extension file %s: a name starting with '.' is never loaded", path);
        return -1;
    }
    return copyTo(fd, path, dir, name, err);
}

static int installEntry(const char *path, const char *dir, char **err)
{
    struct stat sb;
    int fd = openSource(path, &sb, err);
    if (fd < 0)
        return -1;
    int rc;
    if (S_ISDIR(sb.st_mode))
        rc = installDir(fd, path, dir, err);
    else if (S_ISREG(sb.st_mode))
        rc = installFile(fd, path, dir, err);
    else {
        *err = rq_sprintf("%s is neither a directory nor a regular file", path);
        rc = -1;
    }
    close(fd);
    return rc;
}

static int byName(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What loads: the directory's files, sorted (rqlite's List). */
static int listDir(ext_list *l, char **err)
{
    DIR *d = opendir(l->dir);
    if (d == NULL) {
        *err = rq_sprintf("cannot list %s: %s", l->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char **more = realloc(l->paths, (size_t)(l->n + 1) * sizeof *more);
        if (more == NULL)
            break;
        l->paths = more;
        l->paths[l->n++] = rq_sprintf("%s/%s", l->dir, e->d_name);
    }
    closedir(d);
    if (l->n > 0)
        qsort(l->paths, (size_t)l->n, sizeof *l->paths, byName);
    return 0;
}

/* Is path (an entry of spec) the extension directory or inside it? It
 * would be emptied before it is read: the files lost, nothing loaded. */
static int insideDir(const char *path, const char *dir, char **err)
{
    char *rp = realpath(path, NULL), *rd = realpath(dir, NULL);
    size_t n = rd ? strlen(rd) : 0;
    int in = rp && rd && strncmp(rp, rd, n) == 0 && (rp[n] == '\0' || rp[n] == '/');
    if (in)
        *err = rq_sprintf("%s is in the node's extension directory %s, which is emptied at every start", path,
                          dir);
    free(rp);
    free(rd);
    return in ? -1 : 0;
}

/* Call fn(entry, dir, err) on each comma-separated entry of spec, split as
 * rqlite splits it: nothing trimmed, so an empty entry is a path that does
 * not exist. Stops at the first failure. */
static int eachEntry(const char *spec, const char *dir, int (*fn)(const char *, const char *, char **), char **err)
{
    char *copy = strdup(spec ? spec : "");
    int rc = 0;
    for (char *p = copy, *next; rc == 0 && *copy; p = next + 1) {
        next = strchr(p, ',');
        if (next)
            *next = '\0';
        rc = fn(p, dir, err);
        if (next == NULL)
            break;
    }
    free(copy);
    return rc;
}

int ext_install(const char *data_dir, const char *spec, ext_list *out, char **err)
{
    memset(out, 0, sizeof *out);
    out->dir = rq_sprintf("%s/extensions", data_dir);
    if (eachEntry(spec, out->dir, insideDir, err) != 0 || freshDir(out->dir, err) != 0) {
        ext_list_free(out);
        return -1;
    }
    if (eachEntry(spec, out->dir, installEntry, err) != 0 || listDir(out, err) != 0) {
        ext_list_free(out);
        return -1;
    }
    return 0;
}

void ext_list_free(ext_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    free(l->dir);
    memset(l, 0, sizeof *l);
}
