/*
 * fifo.c: the CDC queue on disk (rqlite: a BoltDB file, cdc/fifo.go).
 *
 * A SQLite file of its own with its own connection (never the node's
 * database): events(idx, ts, data), one row per Raft entry that changed
 * rows, and meta rows "enqueued" (the highest index ever queued) and
 * "hwm". Reading does not remove; prune does, once the cluster delivered.
 *
 * One connection, used under a mutex, in exclusive locking mode: no file
 * lock calls per transaction. Durability: WAL with synchronous=OFF, so that an enqueue on the Raft
 * thread costs a write() and no fsync: a killed process loses nothing the
 * kernel has. cdc_fifo_sync makes it durable against a power loss too
 * (fsync of the file and its WAL), before a snapshot lets the Raft log go.
 * An index at or below "enqueued" is ignored: the entry is being applied
 * again after a crash between its enqueue and its commit, and replay
 * regenerates identical events.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc/cdc.h"
#include "util/log.h"
#include "util/os.h"

struct cdc_fifo {
    pthread_mutex_t mu;
    sqlite3 *c;
    char *path;
    sqlite3_stmt *ins, *meta, *read, *del;
    uint64_t highest, hwm;
    long long len;
};

static int exec(sqlite3 *c, const char *sql)
{
    return sqlite3_exec(c, sql, NULL, NULL, NULL);
}

static uint64_t metaGet(sqlite3 *c, const char *k)
{
    sqlite3_stmt *st;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(c, "SELECT v FROM meta WHERE k = ?1", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int metaSet(cdc_fifo *f, const char *k, uint64_t v)
{
    sqlite3_reset(f->meta);
    sqlite3_bind_text(f->meta, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_int64(f->meta, 2, (sqlite3_int64)v);
    return sqlite3_step(f->meta) == SQLITE_DONE ? 0 : -1;
}

int cdc_fifo_open(const char *path, cdc_fifo **out, char **err)
{
    cdc_fifo *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->path = strdup(path);
    if (sqlite3_open_v2(path, &f->c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        exec(f->c, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                   "CREATE TABLE IF NOT EXISTS events(idx INTEGER PRIMARY KEY, ts INTEGER NOT NULL, data BLOB NOT NULL);"
                   "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)") != SQLITE_OK ||
        sqlite3_prepare_v2(f->c, "INSERT INTO events(idx, ts, data) VALUES(?1, ?2, ?3)", -1, &f->ins, NULL) ||
        sqlite3_prepare_v2(f->c, "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)", -1, &f->meta, NULL) ||
        sqlite3_prepare_v2(f->c, "SELECT idx, ts, data FROM events WHERE idx > ?1 ORDER BY idx LIMIT ?2", -1,
                           &f->read, NULL) ||
        sqlite3_prepare_v2(f->c, "DELETE FROM events WHERE idx <= ?1", -1, &f->del, NULL)) {
        *err = rq_sprintf("cannot open the CDC queue %s: %s", path, f->c ? sqlite3_errmsg(f->c) : "out of memory");
        cdc_fifo_close(f);
        return -1;
    }
    f->highest = metaGet(f->c, "enqueued");
    f->hwm = metaGet(f->c, "hwm");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(f->c, "SELECT count(*), max(idx) FROM events", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            f->len = sqlite3_column_int64(st, 0);
            uint64_t top = (uint64_t)sqlite3_column_int64(st, 1);
            if (top > f->highest)
                f->highest = top;
        }
        sqlite3_finalize(st);
    }
    *out = f;
    return 0;
}

void cdc_fifo_close(cdc_fifo *f)
{
    if (f == NULL)
        return;
    sqlite3_finalize(f->ins);
    sqlite3_finalize(f->meta);
    sqlite3_finalize(f->read);
    sqlite3_finalize(f->del);
    sqlite3_close(f->c);
    pthread_mutex_destroy(&f->mu);
    free(f->path);
    free(f);
}

int cdc_fifo_enqueue(cdc_fifo *f, uint64_t index, int64_t ts_ms, const char *events, size_t len)
{
    pthread_mutex_lock(&f->mu);
    if (index <= f->highest) {
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    int rc = exec(f->c, "BEGIN");
    if (rc == SQLITE_OK) {
        sqlite3_reset(f->ins);
        sqlite3_bind_int64(f->ins, 1, (sqlite3_int64)index);
        sqlite3_bind_int64(f->ins, 2, ts_ms);
        sqlite3_bind_blob64(f->ins, 3, events, len, SQLITE_STATIC);
        rc = sqlite3_step(f->ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(f->ins);
        sqlite3_clear_bindings(f->ins);
    }
    if (rc == SQLITE_OK && metaSet(f, "enqueued", index) != 0)
        rc = SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = exec(f->c, "COMMIT");
    if (rc != SQLITE_OK) {
        rq_logl(RQ_LOG_WARN, "cdc", "cannot queue the events of index %llu in %s: %s", (unsigned long long)index,
                f->path, sqlite3_errmsg(f->c));
        exec(f->c, "ROLLBACK");
        pthread_mutex_unlock(&f->mu);
        return -1;
    }
    f->highest = index;
    f->len++;
    pthread_mutex_unlock(&f->mu);
    return 1;
}

int cdc_fifo_read(cdc_fifo *f, uint64_t after, int max, cdc_entry **out)
{
    pthread_mutex_lock(&f->mu);
    cdc_entry *v = calloc((size_t)max, sizeof *v);
    int n = 0, rc;
    sqlite3_reset(f->read);
    sqlite3_bind_int64(f->read, 1, (sqlite3_int64)after);
    sqlite3_bind_int(f->read, 2, max);
    while (n < max && (rc = sqlite3_step(f->read)) == SQLITE_ROW) {
        v[n].index = (uint64_t)sqlite3_column_int64(f->read, 0);
        v[n].ts_ms = sqlite3_column_int64(f->read, 1);
        v[n].len = (size_t)sqlite3_column_bytes(f->read, 2);
        v[n].events = malloc(v[n].len + 1);
        memcpy(v[n].events, sqlite3_column_blob(f->read, 2), v[n].len);
        v[n].events[v[n].len] = '\0';
        n++;
    }
    sqlite3_reset(f->read);
    pthread_mutex_unlock(&f->mu);
    *out = v;
    return n;
}

void cdc_entries_free(cdc_entry *e, int n)
{
    for (int i = 0; i < n; i++)
        free(e[i].events);
    free(e);
}

int cdc_fifo_prune(cdc_fifo *f, uint64_t upto)
{
    pthread_mutex_lock(&f->mu);
    int rc = exec(f->c, "BEGIN");
    if (rc == SQLITE_OK) {
        sqlite3_reset(f->del);
        sqlite3_bind_int64(f->del, 1, (sqlite3_int64)upto);
        rc = sqlite3_step(f->del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(f->del);
    }
    long long gone = rc == SQLITE_OK ? sqlite3_changes(f->c) : 0;
    if (rc == SQLITE_OK && upto > f->hwm && metaSet(f, "hwm", upto) != 0)
        rc = SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = exec(f->c, "COMMIT");
    if (rc != SQLITE_OK) {
        rq_logl(RQ_LOG_WARN, "cdc", "cannot prune the CDC queue %s up to %llu: %s", f->path, (unsigned long long)upto,
                sqlite3_errmsg(f->c));
        exec(f->c, "ROLLBACK");
        pthread_mutex_unlock(&f->mu);
        return -1;
    }
    f->len -= gone;
    if (upto > f->hwm)
        f->hwm = upto;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

#define LOCKED_GET(type, field)                                                                                 \
    type v;                                                                                                     \
    pthread_mutex_lock(&f->mu);                                                                                 \
    v = f->field;                                                                                               \
    pthread_mutex_unlock(&f->mu);                                                                               \
    return v;

uint64_t cdc_fifo_hwm(cdc_fifo *f) { LOCKED_GET(uint64_t, hwm) }
uint64_t cdc_fifo_highest(cdc_fifo *f) { LOCKED_GET(uint64_t, highest) }
long long cdc_fifo_len(cdc_fifo *f) { LOCKED_GET(long long, len) }

static int syncPath(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cdc_fifo_sync(cdc_fifo *f)
{
    /* Under the lock: no commit or checkpoint moves data between the WAL
     * and the file meanwhile. Both synced, each commit is whole in one. */
    pthread_mutex_lock(&f->mu);
    char *wal = rq_sprintf("%s-wal", f->path);
    int rc = syncPath(wal) | syncPath(f->path);
    free(wal);
    char *dir = strdup(f->path), *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rc |= syncPath(dir);
    }
    free(dir);
    pthread_mutex_unlock(&f->mu);
    if (rc != 0)
        rq_logl(RQ_LOG_WARN, "cdc", "cannot sync the CDC queue %s: %s", f->path, strerror(errno));
    return rc ? -1 : 0;
}
