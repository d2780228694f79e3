/*
 * restore.c: -auto-restore, rqlite's downloader and the store's one-shot
 * restore on first leadership.
 *
 * The download lands in an unlinked temporary file (gunzipped into a
 * second one when it starts with gzip's magic), so nothing is left behind
 * whatever happens. The load goes through the log as one entry
 * (store_load), like /db/load: the image is mapped from the file, and the
 * entry holds a copy of it, so it is bounded by -raft-max-entry-size as a
 * load is (rqlite reads the whole file into memory too).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/internal.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/os.h"

struct backup_restore {
    int fd;                   /* the database to load, -1: none */
    uint64_t size;
    char desc[1024];          /* where it came from, for the log */
    store *st;
    pthread_t thread;
    bool started;
    bool stop;                /* atomically */
    /* rqlite's counters: downloader map, then the store map's */
    uint64_t downloads_ok, downloads_fail, download_bytes;
    uint64_t restores, restores_skipped, restores_failed; /* atomically */
};

static bool isGzip(int fd)
{
    unsigned char m[3];
    return pread(fd, m, 3, 0) == 3 && m[0] == 0x1f && m[1] == 0x8b && m[2] == 0x08;
}

static bool isSqlite(int fd)
{
    char h[16];
    return pread(fd, h, 16, 0) == 16 && memcmp(h, "SQLite format 3", 16) == 0;
}

/* Download and unpack into r->fd; 0, or -1 with *err. */
static int fetch(backup_restore *r, backupClient *c, const backup_config *cfg, const char *tmp_dir, uint64_t max_bytes,
                 char **err)
{
    int raw = backupTempFile(tmp_dir, err);
    if (raw < 0)
        return -1;
    uint64_t got = 0;
    if (c->download(c, raw, (uint64_t)(cfg->timeout_ns / 1000000), &got, err) != 0) {
        close(raw);
        return -1;
    }
    r->download_bytes = got;
    if (!isGzip(raw)) {
        r->fd = raw;
        r->size = got;
        return 0;
    }
    int plain = backupTempFile(tmp_dir, err);
    if (plain < 0 || backupGunzip(raw, plain, max_bytes, &r->size, err) != 0) {
        close(raw);
        if (plain >= 0)
            close(plain);
        return -1;
    }
    close(raw);
    r->fd = plain;
    rq_log("downloader", "decompressed %llu bytes downloaded into %llu", (unsigned long long)got,
           (unsigned long long)r->size);
    return 0;
}

int backup_restore_download(const backup_config *cfg, const char *tmp_dir, uint64_t max_bytes, backup_restore **out,
                            char **err)
{
    backupClient *c = cfg->type == BACKUP_TYPE_S3 ? backupS3New(cfg, err) : NULL;
    if (c == NULL) {
        if (*err == NULL)
            *err = strdup("unsupported storage type");
        return -1;
    }
    backup_restore *r = calloc(1, sizeof *r);
    r->fd = -1;
    snprintf(r->desc, sizeof r->desc, "%s", c->desc);
    rq_log("rqlited", "auto-restore requested, initiating download from %s", c->desc);
    int64_t t0 = rq_now_ms();
    char *derr = NULL;
    int rc = fetch(r, c, cfg, tmp_dir, max_bytes, &derr);
    c->free(c);
    if (rc != 0) {
        r->downloads_fail++;
        if (!cfg->continue_on_failure) {
            *err = rq_sprintf("failed to download auto-restore file: %s", derr ? derr : "?");
            free(derr);
            free(r);
            return -1;
        }
        rq_logl(RQ_LOG_WARN, "rqlited", "failed to download auto-restore file: %s, continuing with node startup anyway",
                derr ? derr : "?");
        free(derr);
        *out = r;
        return 0;
    }
    r->downloads_ok++;
    if (!isSqlite(r->fd)) {
        *err = rq_sprintf("failed to preload auto-restore data: the file downloaded from %s is not a valid "
                          "SQLite file", r->desc);
        close(r->fd);
        free(r);
        return -1;
    }
    char took[48];
    rq_duration_format((rq_now_ms() - t0) * 1000000, took, sizeof took);
    rq_log("rqlited", "auto-restore file downloaded in %s (%llu bytes)", took, (unsigned long long)r->size);
    *out = r;
    return 0;
}

/* The load, on this node as leader. */
static void load(backup_restore *r)
{
    rq_log("store", "this node is now leader, auto-restoring from %s", r->desc);
    void *p = r->size ? mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, r->fd, 0) : NULL;
    char *err = NULL;
    int rc = p == MAP_FAILED ? STORE_ERROR : store_load(r->st, p, r->size, false, &err);
    if (p == MAP_FAILED)
        err = rq_sprintf("cannot map the downloaded file: %s", strerror(errno));
    else if (p)
        munmap(p, r->size);
    if (rc != STORE_OK) {
        rq_logl(RQ_LOG_WARN, "store", "failed to auto-restore from %s: %s", r->desc,
                rc == STORE_NOT_LEADER ? "no longer the leader" : err ? err : "?");
        __atomic_add_fetch(&r->restores_failed, 1, __ATOMIC_RELAXED);
    } else {
        rq_log("store", "node auto-restored successfully from %s (%llu bytes)", r->desc,
               (unsigned long long)r->size);
        __atomic_add_fetch(&r->restores, 1, __ATOMIC_RELAXED);
    }
    free(err);
}

/* Waits for the first leader: us, and the file is loaded; another node,
 * and the restore is skipped. Either way the store is then released. */
static void *restoreWatch(void *arg)
{
    backup_restore *r = arg;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        if (store_is_leader(r->st)) {
            load(r);
            break;
        }
        store_node l;
        if (store_leader(r->st, &l) && strcmp(l.id, store_node_id(r->st)) != 0) {
            rq_log("store", "different node became leader, not performing auto-restore");
            __atomic_add_fetch(&r->restores_skipped, 1, __ATOMIC_RELAXED);
            break;
        }
        nanosleep(&tick, NULL);
    }
    close(r->fd);
    r->fd = -1;
    store_hold_ready(r->st, false);
    return NULL;
}

void backup_restore_start(backup_restore *r, store *st)
{
    if (r == NULL || r->fd < 0)
        return;
    r->st = st;
    store_hold_ready(st, true);
    if (pthread_create(&r->thread, NULL, restoreWatch, r) != 0) {
        rq_logl(RQ_LOG_WARN, "store", "cannot start the auto-restore thread: not restoring");
        store_hold_ready(st, false);
        return;
    }
    r->started = true;
}

void backup_restore_stop(backup_restore *r)
{
    if (r == NULL)
        return;
    __atomic_store_n(&r->stop, true, __ATOMIC_RELAXED);
    if (r->started)
        pthread_join(r->thread, NULL);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

json_t *backup_downloader_vars(backup_restore *r)
{
    return json_pack("{s:I,s:I,s:I}", "num_downloads_ok", (json_int_t)(r ? r->downloads_ok : 0),
                     "num_downloads_fail", (json_int_t)(r ? r->downloads_fail : 0), "download_bytes",
                     (json_int_t)(r ? r->download_bytes : 0));
}

json_t *backup_restore_store_vars(backup_restore *r)
{
    return json_pack("{s:I,s:I,s:I}", "num_auto_restores",
                     (json_int_t)(r ? __atomic_load_n(&r->restores, __ATOMIC_RELAXED) : 0),
                     "num_auto_restores_skipped",
                     (json_int_t)(r ? __atomic_load_n(&r->restores_skipped, __ATOMIC_RELAXED) : 0),
                     "num_auto_restores_failed",
                     (json_int_t)(r ? __atomic_load_n(&r->restores_failed, __ATOMIC_RELAXED) : 0));
}
