/*
 * file.c: the "file" storage type, a local directory, as rqlite's
 * auto/file: the upload is written to a temporary file in the directory,
 * synced and renamed into place, and METADATA.json beside it records
 * {"id","timestamp","name"} (the id, Unix milliseconds, the file's full
 * path), renamed into place after it. Not a restore source (rqlite has
 * none of this type).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/internal.h"
#include "util/log.h"
#include "util/os.h"

typedef struct fileClient {
    backupClient base;
    char *dir, *name, *meta;
    bool timestamp;
} fileClient;

/* Copy size bytes of in (from 0) to out, logging progress now and then. */
static int copyAll(int in, uint64_t size, int out, const char *to, const bool *cancel, char **err)
{
    enum { CHUNK = 1 << 20 };
    char *b = malloc(CHUNK);
    if (b == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    uint64_t done = 0;
    int64_t logged = rq_now_ms();
    int rc = 0;
    while (done < size && rc == 0) {
        size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
        ssize_t n = pread(in, b, want, (off_t)done);
        if (__atomic_load_n(cancel, __ATOMIC_RELAXED)) {
            *err = strdup("abandoned: the node is stopping");
            rc = -1;
        } else if (n <= 0) {
            *err = rq_sprintf("cannot read the backup: %s", n < 0 ? strerror(errno) : "short file");
            rc = -1;
        } else if (rq_write_all(out, b, (size_t)n) != 0) {
            *err = rq_sprintf("failed to write to temporary file in %s: %s", to, strerror(errno));
            rc = -1;
        } else {
            done += (uint64_t)n;
        }
        if (rc == 0 && rq_now_ms() - logged >= 5000) {
            logged = rq_now_ms();
            rq_log("uploader", "writing to %s: %llu of %llu bytes (%d%%)", to, (unsigned long long)done,
                   (unsigned long long)size, (int)(done * 100 / size));
        }
    }
    free(b);
    return rc;
}

static int fileUpload(backupClient *bc, int fd, uint64_t size, const char *id, char **err)
{
    fileClient *c = (fileClient *)bc;
    char *name = c->timestamp ? backup_timestamped(c->name, time(NULL)) : strdup(c->name);
    char *final = rq_sprintf("%s/%s", c->dir, name);
    char *tmp = rq_sprintf("%s/.upload-XXXXXX", c->dir);
    char *tmeta = rq_sprintf("%s.tmp", c->meta);
    free(name);
    int rc = -1;
    int out = mkstemp(tmp);
    if (out < 0) {
        *err = rq_sprintf("failed to create temporary file in %s: %s", c->dir, strerror(errno));
        goto done;
    }
    fchmod(out, 0644);
    if (copyAll(fd, size, out, c->dir, &bc->cancel, err) != 0)
        goto done;
    if (fsync(out) != 0) {
        *err = rq_sprintf("failed to sync temporary file %s: %s", tmp, strerror(errno));
        goto done;
    }
    /* Go's json.Marshal of rqlite's Metadata, fields in its order. */
    json_t *md = json_pack("{s:s,s:I,s:s}", "id", id, "timestamp", (json_int_t)rq_wall_ms(), "name", final);
    char *text = md ? json_dumps(md, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(md);
    FILE *mf = text ? fopen(tmeta, "w") : NULL;
    bool wrote = mf && fputs(text, mf) >= 0;
    if (mf && fclose(mf) != 0)
        wrote = false;
    free(text);
    if (!wrote) {
        *err = rq_sprintf("failed to write temporary metadata file %s: %s", tmeta, strerror(errno));
        goto done;
    }
    if (rename(tmp, final) != 0) {
        *err = rq_sprintf("failed to rename temporary file %s to %s: %s", tmp, final, strerror(errno));
        goto done;
    }
    if (rename(tmeta, c->meta) != 0) {
        *err = rq_sprintf("failed to rename temporary metadata file %s to %s: %s", tmeta, c->meta,
                          strerror(errno));
        unlink(final);
        goto done;
    }
    rc = 0;
done:
    if (out >= 0)
        close(out);
    if (rc != 0) {
        unlink(tmp);
        unlink(tmeta);
    }
    free(tmp);
    free(tmeta);
    free(final);
    return rc;
}

/* METADATA.json's id; none yet is "" (rqlite's). */
static int fileCurrentId(backupClient *bc, char **id, char **err)
{
    fileClient *c = (fileClient *)bc;
    *id = NULL;
    struct stat sb;
    if (stat(c->meta, &sb) != 0) {
        *id = strdup("");
        return 0;
    }
    json_error_t jerr;
    json_t *md = json_load_file(c->meta, 0, &jerr);
    if (md == NULL) {
        *err = rq_sprintf("failed to read metadata from file %s: %s", c->meta, jerr.text);
        return -1;
    }
    json_t *v = json_object_get(md, "id");
    *id = strdup(json_is_string(v) ? json_string_value(v) : "");
    json_decref(md);
    return 0;
}

static void fileFree(backupClient *bc)
{
    fileClient *c = (fileClient *)bc;
    free(c->dir);
    free(c->name);
    free(c->meta);
    free(c);
}

backupClient *backupFileNew(const backup_config *cfg, char **err)
{
    if (rq_mkdir_all(cfg->dir) != 0) {
        *err = rq_sprintf("failed to create directory %s: %s", cfg->dir, strerror(errno));
        return NULL;
    }
    char *touch = rq_sprintf("%s/.touch", cfg->dir);
    int fd = open(touch, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(touch);
    }
    free(touch);
    if (fd < 0) {
        *err = rq_sprintf("failed to test writing to directory %s: %s", cfg->dir, strerror(e));
        return NULL;
    }
    fileClient *c = calloc(1, sizeof *c);
    c->dir = strdup(cfg->dir);
    c->name = strdup(cfg->name);
    c->meta = rq_sprintf("%s/METADATA.json", cfg->dir);
    c->timestamp = cfg->timestamp;
    c->base.upload = fileUpload;
    c->base.current_id = fileCurrentId;
    c->base.free = fileFree;
    snprintf(c->base.desc, sizeof c->base.desc, "dir:%s, file:%s", c->dir, c->name);
    return &c->base;
}
