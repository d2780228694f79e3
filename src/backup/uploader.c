/*
 * uploader.c: -auto-backup, rqlite's Uploader.
 *
 * Every interval, on the leader only: when the database has changed since
 * the last upload (its applied index, store_db_index, has moved) a
 * consistent copy is made (store_copy: an unlinked file, writes go on),
 * gzipped into a second unlinked file unless no_compress, and streamed to
 * the destination with the index as its id. The first upload after start
 * is skipped when the destination already holds that id (a restart with
 * nothing new). The counters are rqlite's expvar "uploader" map.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "backup/internal.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/os.h"

enum { U_OK, U_FAIL, U_SKIPPED, U_SKIPPED_ID, U_SUM_GET_FAIL, U_TOTAL_BYTES, U_LAST_BYTES, U_N };
static const char *const u_names[U_N] = {"num_uploads_ok",   "num_uploads_fail",   "num_uploads_skipped",
                                         "num_uploads_skipped_id", "num_sum_get_fail", "total_upload_bytes",
                                         "last_upload_bytes"};

struct backup_uploader {
    backup_config cfg;        /* strings not kept: only the flags */
    backupClient *client;
    store *st;
    char *tmp_dir;
    pthread_t thread;
    pthread_mutex_t mu;       /* guards the fields below */
    pthread_cond_t cv;
    bool stop;
    uint64_t stats[U_N];
    uint64_t last_index;      /* of the last upload; 0: none since start */
    struct timespec last_time; /* wall clock of the last upload, 0: none */
    int64_t last_duration_ns;
};

void backupBytes(uint64_t n, char *out, size_t size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(out, size, "%llu B", (unsigned long long)n);
    else
        snprintf(out, size, "%.1f %s", v, units[u]);
}

int backupTempFile(const char *dir, char **err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* A file system without O_TMPFILE: a named file, unlinked at once. */
    char *p = rq_sprintf("%s/.rqlite-backup-XXXXXX", dir);
    fd = mkostemp(p, O_CLOEXEC);
    int e = errno;
    if (fd >= 0)
        unlink(p);
    else
        *err = rq_sprintf("cannot create a temporary file in %s: %s", dir, strerror(e));
    free(p);
    return fd;
}

int backupGzip(int in, uint64_t size, int out, uint64_t *out_size, const char *label, const bool *cancel,
               char **err)
{
    enum { CHUNK = 256 * 1024 };
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        *err = strdup("cannot start gzip");
        return -1;
    }
    unsigned char *ib = malloc(CHUNK), *ob = malloc(CHUNK);
    uint64_t done = 0, written = 0;
    int64_t t0 = rq_now_ms(), logged = t0;
    int rc = ib && ob ? 0 : -1;
    if (rc != 0)
        *err = strdup("out of memory");
    bool finished = false;
    while (rc == 0 && !finished) {
        if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
            *err = strdup("abandoned: the node is stopping");
            rc = -1;
            break;
        }
        if (z.avail_in == 0 && done < size) {
            size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
            ssize_t n = pread(in, ib, want, (off_t)done);
            if (n <= 0) {
                *err = rq_sprintf("cannot read the copy: %s", n < 0 ? strerror(errno) : "short file");
                rc = -1;
                break;
            }
            done += (uint64_t)n;
            z.next_in = ib;
            z.avail_in = (uInt)n;
        }
        z.next_out = ob;
        z.avail_out = CHUNK;
        int zr = deflate(&z, done == size && z.avail_in == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (zr == Z_STREAM_ERROR) {
            *err = strdup("gzip failed");
            rc = -1;
            break;
        }
        finished = zr == Z_STREAM_END;
        size_t have = CHUNK - z.avail_out;
        if (have && rq_write_all(out, ob, have) != 0) {
            *err = rq_sprintf("cannot write the compressed copy: %s", strerror(errno));
            rc = -1;
            break;
        }
        written += have;
        if (rq_now_ms() - logged >= 5000) {
            logged = rq_now_ms();
            rq_log("uploader", "%s: compressed %llu of %llu bytes (%d%%) in %.1f s", label,
                   (unsigned long long)done, (unsigned long long)size, size ? (int)(done * 100 / size) : 100,
                   (double)(logged - t0) / 1000.0);
        }
    }
    deflateEnd(&z);
    free(ib);
    free(ob);
    *out_size = written;
    return rc;
}

int backupGunzip(int in, int out, uint64_t max_out, uint64_t *out_size, char **err)
{
    enum { CHUNK = 256 * 1024 };
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        *err = strdup("cannot start gunzip");
        return -1;
    }
    unsigned char *ib = malloc(CHUNK), *ob = malloc(CHUNK);
    uint64_t pos = 0, written = 0;
    int rc = ib && ob ? 0 : -1, zr = Z_OK;
    if (rc != 0)
        *err = strdup("out of memory");
    bool eof = false;
    while (rc == 0 && zr != Z_STREAM_END) {
        if (z.avail_in == 0 && !eof) {
            ssize_t n = pread(in, ib, CHUNK, (off_t)pos);
            if (n < 0) {
                *err = rq_sprintf("cannot read the download: %s", strerror(errno));
                rc = -1;
                break;
            }
            eof = n == 0;
            pos += (uint64_t)n;
            z.next_in = ib;
            z.avail_in = (uInt)n;
        }
        z.next_out = ob;
        z.avail_out = CHUNK;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && !eof)) {
            *err = rq_sprintf("failed to decompress data: %s", eof ? "unexpected EOF" : (z.msg ? z.msg : "gzip error"));
            rc = -1;
            break;
        }
        size_t have = CHUNK - z.avail_out;
        if (have && rq_write_all(out, ob, have) != 0) {
            *err = rq_sprintf("cannot write the decompressed file: %s", strerror(errno));
            rc = -1;
            break;
        }
        written += have;
        if (max_out && written > max_out) { /* a gzip bomb, or a database too large to load */
            *err = rq_sprintf("decompressed data exceeds %llu bytes, the largest database a load may carry "
                              "(-raft-max-entry-size)", (unsigned long long)max_out);
            rc = -1;
            break;
        }
    }
    inflateEnd(&z);
    free(ib);
    free(ob);
    *out_size = written;
    return rc;
}

static void count(backup_uploader *u, int which, uint64_t n)
{
    pthread_mutex_lock(&u->mu);
    u->stats[which] += n;
    pthread_mutex_unlock(&u->mu);
}


/* One interval's work (rqlite's upload()). */
static void uploadOnce(backup_uploader *u)
{
    uint64_t li = store_db_index(u->st);
    pthread_mutex_lock(&u->mu);
    uint64_t last = u->last_index;
    pthread_mutex_unlock(&u->mu);
    if (li <= last) {
        count(u, U_SKIPPED, 1);
        return;
    }
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)li);
    char *err = NULL;
    if (last == 0) {
        /* The first upload since start: is that state there already? */
        char *cur = NULL;
        if (u->client->current_id(u->client, &cur, &err) != 0) {
            count(u, U_SUM_GET_FAIL, 1);
            rq_logl(RQ_LOG_WARN, "uploader", "failed to get current ID from %s: %s", u->client->desc, err ? err : "?");
            free(err);
            err = NULL;
        } else if (strcmp(cur, id) == 0) {
            free(cur);
            count(u, U_SKIPPED_ID, 1);
            return;
        }
        free(cur);
    }
    int64_t t0 = rq_now_ms();
    rq_progress cl = {"uploader", "copying the database for upload", 5000, t0, t0};
    uint64_t size = 0, sent = 0;
    int fd = store_copy(u->st, u->cfg.vacuum ? DB_BACKUP_VACUUM : 0, rq_progress_log, &cl, &size, &err), zfd = -1;
    if (fd >= 0 && !u->cfg.no_compress) {
        zfd = backupTempFile(u->tmp_dir, &err);
        if (zfd >= 0 && backupGzip(fd, size, zfd, &sent, "upload", &u->client->cancel, &err) != 0) {
            close(zfd);
            zfd = -1;
        }
        close(fd);
        fd = zfd;
    } else {
        sent = size;
    }
    int64_t t1 = rq_now_ms();
    double s1 = rq_now_sec();
    if (fd < 0 || u->client->upload(u->client, fd, sent, id, &err) != 0) {
        count(u, U_FAIL, 1);
        rq_logl(RQ_LOG_WARN, "uploader", "failed to upload to %s: %s", u->client->desc, err ? err : "?");
        free(err);
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    int64_t took_ns = (int64_t)((rq_now_sec() - s1) * 1e9);
    pthread_mutex_lock(&u->mu);
    u->last_index = li;
    u->stats[U_OK]++;
    u->stats[U_TOTAL_BYTES] += sent;
    u->stats[U_LAST_BYTES] = sent;
    clock_gettime(CLOCK_REALTIME, &u->last_time);
    u->last_duration_ns = took_ns;
    pthread_mutex_unlock(&u->mu);
    char human[32], dur[48];
    backupBytes(sent, human, sizeof human);
    rq_duration_format(took_ns, dur, sizeof dur);
    rq_log("uploader", "completed auto upload of %s to %s in %s (index %s; database %llu bytes, %s%s, "
           "prepared in %lld ms)", human, u->client->desc, dur, id, (unsigned long long)size,
           u->cfg.no_compress ? "not compressed" : "gzipped", u->cfg.vacuum ? ", vacuumed" : "",
           (long long)(t1 - t0));
}

static void *uploadLoop(void *arg)
{
    backup_uploader *u = arg;
    pthread_mutex_lock(&u->mu);
    while (!u->stop) {
        struct timespec until;
        rq_deadline(&until, (uint64_t)(u->cfg.interval_ns / 1000000 > 0 ? u->cfg.interval_ns / 1000000 : 1));
        while (!u->stop && pthread_cond_timedwait(&u->cv, &u->mu, &until) != ETIMEDOUT)
            ;
        if (u->stop)
            break;
        pthread_mutex_unlock(&u->mu);
        if (store_is_leader(u->st))
            uploadOnce(u);
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    rq_log("uploader", "upload service shutting down");
    return NULL;
}

int backup_check_destination(const backup_config *cfg, char **err)
{
    if (cfg->type != BACKUP_TYPE_FILE)
        return 0;
    backupClient *c = backupFileNew(cfg, err);
    if (c == NULL)
        return -1;
    c->free(c);
    return 0;
}

int backup_uploader_start(const backup_config *cfg, store *st, const char *tmp_dir, backup_uploader **out,
                          char **err)
{
    backupClient *client = cfg->type == BACKUP_TYPE_S3 ? backupS3New(cfg, err)
                           : cfg->type == BACKUP_TYPE_FILE ? backupFileNew(cfg, err)
                                                           : NULL;
    if (client == NULL) {
        if (*err == NULL)
            *err = strdup("unsupported storage type");
        return -1;
    }
    backup_uploader *u = calloc(1, sizeof *u);
    u->cfg = *cfg;
    u->cfg.endpoint = u->cfg.region = u->cfg.access_key_id = u->cfg.secret_access_key = NULL;
    u->cfg.bucket = u->cfg.path = u->cfg.dir = u->cfg.name = NULL;
    u->client = client;
    u->st = st;
    u->tmp_dir = strdup(tmp_dir);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    char every[48];
    rq_duration_format(cfg->interval_ns, every, sizeof every);
    rq_log("uploader", "starting upload to %s every %s", client->desc, every);
    if (pthread_create(&u->thread, NULL, uploadLoop, u) != 0) {
        *err = strdup("cannot start the upload thread");
        client->free(client);
        free(u->tmp_dir);
        free(u);
        return -1;
    }
    *out = u;
    return 0;
}

void backup_uploader_stop(backup_uploader *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    __atomic_store_n(&u->client->cancel, true, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    u->client->free(u->client);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u->tmp_dir);
    free(u);
}

json_t *backup_uploader_vars(backup_uploader *u)
{
    json_t *v = json_object();
    if (u)
        pthread_mutex_lock(&u->mu);
    for (int i = 0; i < U_N; i++)
        json_object_set_new(v, u_names[i], json_integer(u ? (json_int_t)u->stats[i] : 0));
    if (u)
        pthread_mutex_unlock(&u->mu);
    return v;
}

/* Go's time.Time.Format(time.RFC3339) of a local time; the zero time
 * (never) as Go prints it. */
static void rfc3339(const struct timespec *t, char *out, size_t size)
{
    if (t->tv_sec == 0) {
        snprintf(out, size, "0001-01-01T00:00:00Z");
        return;
    }
    struct tm tm;
    localtime_r(&t->tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    if (off == 0)
        snprintf(out + n, size - n, "Z");
    else
        snprintf(out + n, size - n, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600, labs(off) % 3600 / 60);
}

json_t *backup_uploader_status(backup_uploader *u)
{
    char every[48], when[64], took[48], last[32];
    rq_duration_format(u->cfg.interval_ns, every, sizeof every);
    pthread_mutex_lock(&u->mu);
    rfc3339(&u->last_time, when, sizeof when);
    rq_duration_format(u->last_duration_ns, took, sizeof took);
    snprintf(last, sizeof last, "%llu", (unsigned long long)u->last_index);
    pthread_mutex_unlock(&u->mu);
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "upload_destination", u->client->desc, "upload_interval", every,
                     "last_upload_time", when, "last_upload_duration", took, "last_index", last);
}
