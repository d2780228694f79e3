/*
 * archive.c: zip and tar.gz files of extensions, read with libarchive.
 *
 * libarchive only reads: every entry's name is checked here and the file
 * written by extCreate, under the extension directory and nowhere else. A
 * name is a bare file name or the whole archive is refused, so a path
 * that would leave the directory ("../x", "/etc/x", "a/../../x") never
 * gets as far as a file; links and devices are refused too (a link
 * extracted now could point a later write, or a load, anywhere).
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ext/internal.h"
#include "util/os.h"

/* libarchive's message for a, never NULL. */
static const char *why(struct archive *a)
{
    const char *s = archive_error_string(a);
    return s ? s : "unknown error";
}

/* Does name have ".." as one of its parts ('/' or '\' separated)? */
static bool climbs(const char *name)
{
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n;
        if (*p)
            p++;
    }
    return false;
}

/* Why entry e of a kind ("zip", "tar.gz") file may not be extracted (a
 * new string), or NULL when it is a regular file at the top level. */
static char *refusal(struct archive_entry *e, const char *kind)
{
    const char *name = archive_entry_pathname(e);
    if (name == NULL || *name == '\0')
        return rq_sprintf("an entry has no usable name");
    if (name[0] == '/' || name[0] == '\\')
        return rq_sprintf("entry %s has an absolute path", name);
    if (climbs(name))
        return rq_sprintf("entry %s would be written outside the extraction directory", name);
    if (strcmp(name, ".") == 0 || archive_entry_filetype(e) == AE_IFDIR || strpbrk(name, "/\\"))
        return rq_sprintf("%s file contains subdirectories (entry %s)", kind, name);
    if (archive_entry_hardlink(e) != NULL || archive_entry_symlink(e) != NULL)
        return rq_sprintf("entry %s is a link", name);
    if (archive_entry_filetype(e) != AE_IFREG)
        return rq_sprintf("entry %s is not a regular file", name);
    return NULL;
}

/* The archive being extracted, and its path (for messages). */
typedef struct archiveSource {
    struct archive *a;
    const char *src;
} archiveSource;

static long readEntry(void *ctx, char *buf, unsigned long n, char **err)
{
    archiveSource *as = ctx;
    la_ssize_t r = archive_read_data(as->a, buf, n);
    if (r < 0)
        *err = rq_sprintf("%s is corrupt: %s", as->src, why(as->a));
    return r < 0 ? -1 : (long)r;
}

/* The current entry's data into a new dir/name. */
static int extractEntry(struct archive *a, const char *src, const char *dir, const char *name, char **err)
{
    archiveSource as = {a, src};
    return extWrite(dir, name, readEntry, &as, err);
}

/* Does the whole gzip stream on fd decompress, with the right CRC and
 * length? libarchive does not check the gzip trailer (and its tar reader
 * stops at the archive's end marker anyway), so corrupted data could pass
 * as an extension: zlib reads it all through first, and checks. */
static int gzipIntact(int fd, const char *src, char **err)
{
    int copy = dup(fd);
    gzFile gz = copy >= 0 && lseek(fd, 0, SEEK_SET) == 0 ? gzdopen(copy, "rb") : NULL;
    if (gz == NULL) {
        if (copy >= 0)
            close(copy);
        *err = rq_sprintf("cannot read %s: %s", src, strerror(errno));
        return -1;
    }
    char buf[65536];
    int n;
    while ((n = gzread(gz, buf, sizeof buf)) > 0)
        ;
    if (n < 0) {
        int code;
        const char *msg = gzerror(gz, &code);
        const char *colon = msg ? strstr(msg, ": ") : NULL; /* "<fd:N>: " first */
        *err = rq_sprintf("%s is not a valid tar.gz file: %s", src, colon ? colon + 2 : "read error");
    }
    gzclose(gz);
    return n == 0 && lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

int extExtract(int fd, const char *src, bool zip, const char *dir, char **err)
{
    const char *kind = zip ? "zip" : "tar.gz";
    if (!zip && gzipIntact(fd, src, err) != 0)
        return -1;
    struct archive *a = archive_read_new();
    if (a == NULL) {
        *err = rq_sprintf("%s: out of memory", src);
        return -1;
    }
    /* Only the format the first bytes promised: a gzip file holding
     * anything but a tar archive is refused. The zip reader goes by the
     * central directory, as Go's does. */
    if (zip) {
        archive_read_support_format_zip_seekable(a);
    } else {
        archive_read_support_filter_gzip(a);
        archive_read_support_format_tar(a);
    }
    int rc = 0;
    if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
        *err = rq_sprintf("%s is not a valid %s file: %s", src, kind, why(a));
        rc = -1;
    }
    struct archive_entry *e;
    int r, entries = 0;
    /* Anything but a clean entry (a warning too) fails the whole archive. */
    while (rc == 0 && (r = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
        entries++;
        char *no = r == ARCHIVE_OK ? refusal(e, kind) : NULL;
        if (r != ARCHIVE_OK) {
            *err = rq_sprintf("%s is corrupt: %s", src, why(a));
            rc = -1;
        } else if (no) {
            *err = rq_sprintf("%s: %s", src, no);
            free(no);
            rc = -1;
        } else if (archive_entry_pathname(e)[0] != '.') { /* hidden: never loaded, as in a directory */
            rc = extractEntry(a, src, dir, archive_entry_pathname(e), err);
        }
    }
    /* A file that starts with a zip entry's header has an entry: a central
     * directory that lists none is damaged (what it lost would not load). */
    if (rc == 0 && zip && entries == 0) {
        *err = rq_sprintf("%s is not a valid zip file: its directory lists no entries", src);
        rc = -1;
    }
    archive_read_free(a);
    return rc;
}
