/*
 * sqlite.c: the db module's connections and files: opening, the read
 * pool, the Raft index kept in the file, whole-database images, backups,
 * installs and dumps. Statements run in exec.c, results are encoded in
 * encode.c, and policy.c decides what client SQL may do.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/db.h"
#include "db/internal.h"
#include "util/log.h"
#include "util/os.h"

static void roClose(roConn rc);

char *dbErrdup(const char *prefix, const char *msg)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", prefix, msg) < 0)
        return NULL;
    return s;
}

int dbExecSimple(sqlite3 *c, const char *sql, char **err)
{
    char *e = NULL;
    policy_internal(1);
    int rc = sqlite3_exec(c, sql, NULL, NULL, &e);
    policy_internal(0);
    if (rc != SQLITE_OK) {
        if (err)
            *err = dbErrdup("", e ? e : sqlite3_errmsg(c));
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

/* Tests shorten the lock wait (db_options.busy_ms); 5 s otherwise, as rqlite. */
static int busyMs(const db *d) { return d->opts.busy_ms > 0 ? d->opts.busy_ms : BUSY_TIMEOUT_MS; }

/* The text of "PRAGMA name" on c into out ("" if it cannot be read). */
static void pragmaText(sqlite3 *c, const char *name, char *out, size_t size)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA %s", name);
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static void readPragmas(sqlite3 *c, db_pragmas *p)
{
    pragmaText(c, "busy_timeout", p->busy_timeout, sizeof p->busy_timeout);
    pragmaText(c, "foreign_keys", p->foreign_keys, sizeof p->foreign_keys);
    pragmaText(c, "journal_mode", p->journal_mode, sizeof p->journal_mode);
    pragmaText(c, "synchronous", p->synchronous, sizeof p->synchronous);
    pragmaText(c, "wal_autocheckpoint", p->wal_autocheckpoint, sizeof p->wal_autocheckpoint);
}

/* -extensions-path: each file loaded with the C API switch on, then off
 * again; SQL's load_extension() needs a switch of its own that is never
 * on (policy_install turns both off anyway). */
static int loadExtensions(sqlite3 *c, const char *const *paths, int n, char **err)
{
    if (n == 0)
        return 0;
    int rc = sqlite3_db_config(c, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        char *msg = NULL;
        rc = sqlite3_load_extension(c, paths[i], NULL, &msg);
        if (rc != SQLITE_OK && err)
            *err = rq_sprintf("cannot load extension %s: %s", paths[i], msg ? msg : sqlite3_errmsg(c));
        sqlite3_free(msg);
    }
    sqlite3_db_config(c, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    return rc == SQLITE_OK ? 0 : -1;
}

static void dbGlobalInit(void);

int db_extensions_check(const char *const *paths, int n, char **err)
{
    sqlite3 *m = NULL;
    dbGlobalInit(); /* SQLite's process-wide settings precede its first connection */
    if (n == 0)
        return 0;
    int rc = -1;
    if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        *err = strdup("out of memory");
    else
        rc = loadExtensions(m, paths, n, err);
    sqlite3_close(m);
    return rc;
}

/* Every connection reads the same file through the same VFS (a frozen
 * clock on the Raft thread, client SQL kept out of the data directory) and
 * has the same policy (policy.c), installed after our own set-up. */
int dbOpenConn(db *d, bool ro, sqlite3 **out, char **err)
{
    int flags = SQLITE_OPEN_NOMUTEX | (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sqlite3 *c = NULL;
    determinism_own_open(1);
    int rc = sqlite3_open_v2(d->path, &c, flags, determinism_vfs_name());
    determinism_own_open(0);
    if (rc != SQLITE_OK) {
        if (err)
            *err = dbErrdup("open database: ", c ? sqlite3_errmsg(c) : "out of memory");
        sqlite3_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c, busyMs(d));
    sqlite3_extended_result_codes(c, 0);
    /* Extensions first: our own functions (random() on the write
     * connection) then replace any of theirs with the same name. */
    if (loadExtensions(c, d->opts.extensions, d->opts.n_extensions, err) != 0)
        goto fail;
    /* rqlite's settings. The write connection syncs nothing by itself and
     * never checkpoints, not even when it closes: dbCheckpoint does, with
     * the syncs that keep the file whole (read connections never write, so
     * their synchronous changes nothing). */
    if (dbExecSimple(c, ro ? "PRAGMA synchronous=OFF"
                           : "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=0",
                     err) != 0)
        goto fail;
    if (!ro)
        sqlite3_db_config(c, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (!ro && determinism_install(c, &d->rng) != SQLITE_OK) {
        if (err)
            *err = dbErrdup("install functions: ", sqlite3_errmsg(c));
        goto fail;
    }
    if (dbExecSimple(c, d->opts.fk ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", err) != 0)
        goto fail;
    /* A table of our own in the connection's temp schema, so that changes()
     * can be zeroed at the start of each entry (db_execute). */
    if (!ro && dbExecSimple(c, "CREATE TEMP TABLE " DB_NOCHANGE_TABLE "(x)", err) != 0)
        goto fail;
    if (!ro) {
        db_pragmas p;
        readPragmas(c, &p);
        pthread_mutex_lock(&d->mu);
        d->rw_pragmas = p;
        pthread_mutex_unlock(&d->mu);
    }
    if (policy_install(c, !ro, d->opts.max_length) != SQLITE_OK) {
        if (err)
            *err = dbErrdup("install the statement policy: ", sqlite3_errmsg(c));
        goto fail;
    }
    if (!ro)
        dbCaptureInstall(d, c);
    *out = c;
    return 0;
fail:
    sqlite3_close(c);
    return -1;
}

int dbReopenWriter(db *d)
{
    sqlite3 *w = NULL;
    if (dbOpenConn(d, false, &w, NULL) != 0)
        return -1;
    dbCacheClear(&d->cache);
    dbCaptureConnClosing(d);
    sqlite3_close(d->w);
    d->w = w;
    return 0;
}

/* The file records the Raft index of the last entry it holds in its
 * header's application_id (low 32 bits; see db.h), written in the same
 * transaction as the entry's changes. */
static int pragmaRead(sqlite3 *c, const char *sql, sqlite3_int64 *v)
{
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static sqlite3_int64 pragmaInt(sqlite3 *c, const char *sql)
{
    sqlite3_int64 v = 0;
    pragmaRead(c, sql, &v);
    return v;
}

static uint32_t readIndexLow(sqlite3 *c)
{
    return (uint32_t)pragmaInt(c, "PRAGMA application_id");
}

static int writeIndex(sqlite3 *c, uint64_t index)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA application_id=%d", (int32_t)(uint32_t)index);
    return dbExecSimple(c, sql, NULL);
}

/* A database replaced or recovered must not meet an old WAL or shm. */
static void unlinkSidecars(const char *path)
{
    char p[4200];
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* Process-wide SQLite settings, once, before SQLite initialises itself. */
static void sqliteGlobalConfig(void)
{
    /* Memory statistics put a global mutex around every SQLite allocation;
     * nothing reads them. Must precede sqlite3_initialize(). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* Debian builds with URI filenames on: ATTACH 'file:x?vfs=unix' would
     * choose a VFS without our guard. */
    if (sqlite3_config(SQLITE_CONFIG_URI, 0) != SQLITE_OK)
        rq_logl(RQ_LOG_WARN, "db", "cannot turn URI filenames off: SQLite was initialised first");
}

/* Before any connection of ours, whichever comes first. */
static void dbGlobalInit(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqliteGlobalConfig);
}

int db_open(const char *path, const db_options *opts, db **out, char **err)
{
    dbGlobalInit();
    int64_t t0 = rq_now_ms();
    db *d = calloc(1, sizeof *d);
    d->path = strdup(path);
    char *copy = strdup(path);
    d->dir = strdup(dirname(copy));
    free(copy);
    determinism_protect_dir(d->dir);
    if (asprintf(&d->marker, "%s-rqentry", path) < 0)
        d->marker = NULL;
    if (opts)
        d->opts = *opts;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    /* An entry that could not run inside one transaction of ours was cut
     * short: its changes are all in the WAL (checkpointed away before it
     * started), so dropping the WAL returns the file to the entry before,
     * and the Raft log applies it again. */
    if (d->marker && access(d->marker, F_OK) == 0) {
        unlinkSidecars(path);
        unlink(d->marker);
        d->recovered = true;
    }
    if (dbOpenConn(d, false, &d->w, err) != 0) {
        db_close(d);
        return -1;
    }
    /* Only the low 32 bits are stored: db_resolve_index() completes them. */
    __atomic_store_n(&d->index, readIndexLow(d->w), __ATOMIC_RELAXED);
    dbStatSet(d, DBSTAT_OPEN_MS, (uint64_t)(rq_now_ms() - t0));
    *out = d;
    return 0;
}

bool db_recovered(db *d) { return d->recovered; }

void db_close(db *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->n_idle; i++)
        roClose(d->idle[i]);
    d->n_idle = 0;
    /* The WAL into the file before going, so that the next start reads a
     * short one; what readers still hold back waits for the next start. */
    if (d->w)
        dbCheckpoint(d, SQLITE_CHECKPOINT_TRUNCATE, 0);
    free(d->idle);
    free(d->busy);
    dbCacheClear(&d->cache);
    dbCaptureConnClosing(d);
    if (d->w)
        sqlite3_close(d->w);
    dbCaptureFree(d);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    determinism_unprotect_dir(d->dir);
    free(d->dir);
    free(d->path);
    free(d->marker);
    free(d);
}

uint64_t db_index(db *d) { return __atomic_load_n(&d->index, __ATOMIC_RELAXED); }

/* The file keeps 32 bits of the index: the full value nearest to a known one. */
static uint64_t resolveNear(uint32_t low, uint64_t near)
{
    uint64_t base = (near & ~(uint64_t)0xffffffffu) | low;
    uint64_t best = base;
    uint64_t dist = base > near ? base - near : near - base;
    uint64_t alts[2] = {base + ((uint64_t)1 << 32), base >= ((uint64_t)1 << 32) ? base - ((uint64_t)1 << 32) : base};
    for (int i = 0; i < 2; i++) {
        uint64_t a = alts[i];
        uint64_t da = a > near ? a - near : near - a;
        if (da < dist) {
            best = a;
            dist = da;
        }
    }
    return best;
}

void db_resolve_index(db *d, uint64_t near)
{
    __atomic_store_n(&d->index, resolveNear((uint32_t)d->index, near), __ATOMIC_RELAXED);
}

int db_file_index(const char *path, uint64_t near, uint64_t *out)
{
    sqlite3 *c = NULL;
    int rc = -1;
    sqlite3_int64 low = 0;
    if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        pragmaRead(c, "PRAGMA application_id", &low) == 0) {
        *out = resolveNear((uint32_t)low, near);
        rc = 0;
    }
    sqlite3_close(c);
    return rc;
}


/* The first integer of a sqlite_stat1 "stat" (the table's rows), or -1. */
static long long statRows(sqlite3 *c, const char *table)
{
    sqlite3_stmt *st = NULL;
    long long rows = -1;
    if (sqlite3_prepare_v2(c, "SELECT stat FROM sqlite_stat1 WHERE tbl = ?1 LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            rows = strtoll((const char *)sqlite3_column_text(st, 0), NULL, 10);
    }
    sqlite3_finalize(st);
    return rows;
}

int db_optimize_plan(db *d, cmd_batch *out)
{
    sqlite3 *c = dbRoGet(d);
    if (c == NULL)
        return -1;
    dbExecSimple(c, "BEGIN", NULL);
    sqlite3_stmt *st = NULL;
    int n = 0;
    char *err = NULL;
    if (sqlite3_prepare_v2(c, "SELECT name FROM sqlite_master AS m WHERE type = 'table' AND name NOT LIKE "
                              "'sqlite\\_%' ESCAPE '\\' AND EXISTS (SELECT 1 FROM sqlite_master AS i WHERE "
                              "i.type = 'index' AND i.tbl_name = m.name) ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        dbExecSimple(c, "ROLLBACK", NULL);
        dbRoPut(d, c, false);
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
        sqlite3_int64 rows = 0;
        pragmaRead(c, q, &rows);
        sqlite3_free(q);
        long long was = statRows(c, name);
        bool stale = was < 0 || rows > was * 25 || rows * 25 < was;
        if (rows == 0 || !stale)
            continue;
        if (n == 0 && cmd_add_stmt(out, "PRAGMA analysis_limit=400", 25, &err) != 0)
            break;
        char *a = sqlite3_mprintf("ANALYZE \"%w\"", name);
        int rc = cmd_add_stmt(out, a, strlen(a), &err);
        sqlite3_free(a);
        if (rc != 0)
            break;
        n++;
    }
    sqlite3_finalize(st);
    free(err);
    dbExecSimple(c, "ROLLBACK", NULL);
    dbRoPut(d, c, false);
    return n;
}

int db_sql_check(const char *sql, size_t len, char **err)
{
    sqlite3 *m = NULL;
    if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        *err = strdup("out of memory");
        sqlite3_close(m);
        return -1;
    }
    int rc = 0;
    const char *p = sql, *end = sql + len;
    while (p < end) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        if (sqlite3_prepare_v2(m, p, (int)(end - p), &st, &tail) != SQLITE_OK) {
            /* Names are resolved after the whole statement has parsed: an
             * error then is about the (empty) schema, not the grammar. */
            const char *msg = sqlite3_errmsg(m);
            if (strstr(msg, "syntax error") || strstr(msg, "incomplete input") ||
                strstr(msg, "unrecognized token")) {
                *err = strdup(msg);
                rc = -1;
                break;
            }
            break; /* where the next statement starts is not known then */
        }
        sqlite3_finalize(st);
        if (tail == NULL || tail <= p)
            break;
        p = tail;
    }
    sqlite3_close(m);
    return rc;
}

const char *db_path(db *d) { return d->path; }

long long db_file_size(db *d)
{
    struct stat st;
    return stat(d->path, &st) == 0 ? (long long)st.st_size : 0;
}

long long db_wal_size(db *d)
{
    char p[4200];
    snprintf(p, sizeof p, "%s-wal", d->path);
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

int db_get_pragmas(db *d, db_pragmas *ro, db_pragmas *rw)
{
    memset(ro, 0, sizeof *ro);
    pthread_mutex_lock(&d->mu);
    *rw = d->rw_pragmas;
    pthread_mutex_unlock(&d->mu);
    sqlite3 *c = dbRoGet(d);
    if (c == NULL)
        return -1;
    readPragmas(c, ro);
    dbRoPut(d, c, false);
    return 0;
}

/* ---- read pool ----------------------------------------------------------- */

/* Read connections in use, with the file generation they opened. */
static void busyAdd(db *d, roConn rc, unsigned gen)
{
    if (d->n_busy == d->cap_busy) {
        d->cap_busy = d->cap_busy ? d->cap_busy * 2 : 8;
        d->busy = realloc(d->busy, (size_t)d->cap_busy * sizeof *d->busy);
    }
    d->busy[d->n_busy].c = rc.c;
    d->busy[d->n_busy].k = rc.k;
    d->busy[d->n_busy].gen = gen;
    d->n_busy++;
}

void db_pool_stats(db *d, int *open, int *idle, int *max)
{
    pthread_mutex_lock(&d->mu);
    *open = d->n_open;
    *idle = d->n_idle;
    *max = d->opts.max_ro_conns > 0 ? d->opts.max_ro_conns : 0;
    pthread_mutex_unlock(&d->mu);
}

/* Close a read connection with the statements it keeps. */
static void roClose(roConn rc)
{
    if (rc.k) {
        dbCacheClear(rc.k);
        free(rc.k);
    }
    sqlite3_close(rc.c);
}

stmtCache *dbRoCache(db *d, sqlite3 *c)
{
    stmtCache *k = NULL;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->n_busy; i++)
        if (d->busy[i].c == c)
            k = d->busy[i].k;
    pthread_mutex_unlock(&d->mu);
    return k;
}

sqlite3 *dbRoGet(db *d)
{
    pthread_mutex_lock(&d->mu);
    for (;;) {
        if (d->swapping) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        if (d->n_idle > 0) {
            roConn rc = d->idle[--d->n_idle];
            busyAdd(d, rc, d->gen);
            pthread_mutex_unlock(&d->mu);
            return rc.c;
        }
        if (d->opts.max_ro_conns <= 0 || d->n_open < d->opts.max_ro_conns)
            break;
        pthread_cond_wait(&d->cv, &d->mu);
    }
    d->n_open++;
    unsigned gen = d->gen;
    pthread_mutex_unlock(&d->mu);
    sqlite3 *c = NULL;
    if (dbOpenConn(d, true, &c, NULL) != 0) {
        pthread_mutex_lock(&d->mu);
        d->n_open--;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        return NULL;
    }
    roConn rc = {.c = c, .k = calloc(1, sizeof(stmtCache))};
    pthread_mutex_lock(&d->mu);
    busyAdd(d, rc, gen); /* the file it opened: maybe swapped since */
    pthread_mutex_unlock(&d->mu);
    return c;
}

/* Back to the pool, unless the file was swapped while c was in use (c
 * still reads the old file) or the caller discards it: then it is closed. */
void dbRoPut(db *d, sqlite3 *c, bool discard)
{
    pthread_mutex_lock(&d->mu);
    unsigned gen = d->gen;
    roConn rc = {.c = c};
    for (int i = 0; i < d->n_busy; i++) {
        if (d->busy[i].c == c) {
            gen = d->busy[i].gen;
            rc.k = d->busy[i].k;
            d->busy[i] = d->busy[--d->n_busy];
            break;
        }
    }
    if (gen != d->gen || discard) {
        d->n_open--;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        roClose(rc);
        return;
    }
    if (d->n_idle == d->cap_idle) {
        d->cap_idle = d->cap_idle ? d->cap_idle * 2 : 8;
        d->idle = realloc(d->idle, (size_t)d->cap_idle * sizeof *d->idle);
    }
    d->idle[d->n_idle++] = rc;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}


/* Record index with the entry's changes and commit them. Returns 0, or
 * the code of a failure of this node's own (policy_node_local): then nothing of the
 * transaction remains. Another failure (a deferred constraint) is every
 * replica's: the transaction is rolled back there too. */
int dbCommitWithIndex(db *d, uint64_t index)
{
    sqlite3 *c = d->w;
    if (sqlite3_get_autocommit(c))
        dbExecSimple(c, "BEGIN", NULL);
    char *err = NULL;
    int rc = 0;
    /* CDC: the entry's events are out before its index is in (capture.c). */
    if (dbCaptureFlush(d, index) != 0) {
        rq_logl(RQ_LOG_WARN, "db", "cannot hand the change events of the entry at index %llu to CDC",
                (unsigned long long)index);
        dbExecSimple(c, "ROLLBACK", NULL);
        return SQLITE_IOERR;
    }
    if (writeIndex(c, index) != 0 || dbExecSimple(c, "COMMIT", &err) != 0) {
        rc = sqlite3_errcode(c);
        rq_logl(RQ_LOG_WARN, "db", "cannot commit the entry at index %llu: %s", (unsigned long long)index,
                err ? err : sqlite3_errmsg(c));
        free(err);
        if (!sqlite3_get_autocommit(c))
            dbExecSimple(c, "ROLLBACK", NULL);
        return policy_node_local(rc, true, false) ? rc : 0;
    }
    __atomic_store_n(&d->index, index, __ATOMIC_RELAXED);
    return 0;
}

int dbSyncPath(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

void dbSyncDir(const char *path)
{
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    dbSyncPath(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    free(dir);
}

/* ---- whole-database images ------------------------------------------------ */

/* A memory database over a copy of an image (read-only), or NULL with
 * *err. A WAL image says so in its header (bytes 18-19); a memory database
 * cannot be WAL, so it is read as a rollback one. index != 0: written in
 * the copy's application_id, the entry's index going in with the pages. */
static sqlite3 *imageOpen(const void *data, size_t len, uint64_t index, char **err)
{
    sqlite3 *m = NULL;
    if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) != SQLITE_OK) {
        *err = strdup("cannot open memory database");
        sqlite3_close(m);
        return NULL;
    }
    if (len == 0)
        return m;
    unsigned char *copy = sqlite3_malloc64(len);
    if (copy == NULL) {
        sqlite3_close(m);
        *err = strdup("out of memory");
        return NULL;
    }
    memcpy(copy, data, len);
    if (len >= 20 && copy[18] == 2 && copy[19] == 2)
        copy[18] = copy[19] = 1;
    if (index && len >= 100) {
        uint32_t v = (uint32_t)index;
        copy[68] = (unsigned char)(v >> 24);
        copy[69] = (unsigned char)(v >> 16);
        copy[70] = (unsigned char)(v >> 8);
        copy[71] = (unsigned char)v;
    }
    int rc = sqlite3_deserialize(m, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                                 SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
    if (rc != SQLITE_OK) {
        *err = dbErrdup("invalid database image: ", sqlite3_errmsg(m));
        sqlite3_close(m);
        return NULL;
    }
    return m;
}

/* The checks of db_image_check on an opened image. */
static int imageVerify(db *d, sqlite3 *m, char **err)
{
    if (d && loadExtensions(m, d->opts.extensions, d->opts.n_extensions, err) != 0)
        return -1;
    /* The same guards as our own connections: a schema that needs
     * writable_schema or untrusted functions to work is refused now,
     * rather than on every node after it is installed. */
    if (policy_install(m, false, 0) != SQLITE_OK) {
        *err = strdup("invalid database image: cannot check it");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    policy_internal(1);
    int rc = sqlite3_prepare_v2(m, "PRAGMA quick_check", -1, &st, NULL);
    const char *first = NULL;
    int rows = 0;
    char result[256] = "";
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows++ == 0 && (first = (const char *)sqlite3_column_text(st, 0)) != NULL)
            snprintf(result, sizeof result, "%s", first);
        rc = SQLITE_OK;
    }
    policy_internal(0);
    if (rc != SQLITE_DONE) {
        *err = dbErrdup("invalid database image: ", sqlite3_errmsg(m));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (rows != 1 || strcmp(result, "ok") != 0) {
        *err = dbErrdup("invalid database image: integrity check failed: ", result);
        return -1;
    }
    return 0;
}

int db_image_check(db *d, const void *data, size_t len, char **err)
{
    const unsigned char *p = data;
    if (len == 0)
        return 0; /* an empty database */
    if (len < 100 || memcmp(p, "SQLite format 3", 16) != 0) {
        *err = strdup("invalid database image: not a SQLite database");
        return -1;
    }
    unsigned page = (unsigned)p[16] << 8 | p[17];
    if (page == 1)
        page = 65536;
    if (page < 512 || (page & (page - 1)) != 0) {
        *err = rq_sprintf("invalid database image: page size %u", page);
        return -1;
    }
    if (len % page != 0) {
        *err = rq_sprintf("invalid database image: %zu bytes is not a whole number of %u-byte pages", len, page);
        return -1;
    }
    if (p[18] < 1 || p[18] > 2 || p[19] < 1 || p[19] > 2) {
        *err = strdup("invalid database image: unknown file format version");
        return -1;
    }
    sqlite3 *m = imageOpen(data, len, 0, err);
    if (m == NULL)
        return -1;
    int rc = imageVerify(d, m, err);
    sqlite3_close(m);
    return rc;
}

int db_restore(db *d, const void *data, size_t len, uint64_t index, char **err)
{
    /* Checked again here, the same way on every node: an entry written
     * before images were checked when proposed is refused alike. */
    if (db_image_check(d, data, len, err) != 0)
        return -1;
    sqlite3 *src = imageOpen(data, len, index, err);
    if (src == NULL)
        return -1;
    sqlite3_backup *bk = sqlite3_backup_init(d->w, "main", src, "main");
    if (bk == NULL) {
        *err = dbErrdup("restore: ", sqlite3_errmsg(d->w));
        sqlite3_close(src);
        return -1;
    }
    int rc = sqlite3_backup_step(bk, -1);
    dbStat(d, rc == SQLITE_DONE ? DBSTAT_BACKUP_STEP_DONES : DBSTAT_BACKUP_STEP_ERRORS, 1);
    sqlite3_backup_finish(bk);
    sqlite3_close(src);
    if (rc != SQLITE_DONE) {
        *err = dbErrdup("restore: ", sqlite3_errstr(rc));
        return -1;
    }
    if (len == 0 && index)
        dbCommitWithIndex(d, index); /* an empty image carries no header */
    else if (index)
        __atomic_store_n(&d->index, index, __ATOMIC_RELAXED);
    /* A fresh write connection, as rqlite's after a swap: last_insert_id
     * and rows_affected start from zero again. */
    dbReopenWriter(d);
    d->carry_id = 0;
    return 0;
}

int db_backup_file(db *d, const char *dest, unsigned flags, db_progress_fn progress, void *arg,
                   uint32_t *index_low, char **err)
{
    sqlite3 *c = dbRoGet(d);
    if (c == NULL) {
        *err = strdup("unable to open database connection");
        return -1;
    }
    unlink(dest);
    int rc = 0;
    if (flags & DB_BACKUP_VACUUM) {
        char *sql = sqlite3_mprintf("VACUUM INTO %Q", dest);
        determinism_own_open(1); /* our own copy, beside the database */
        rc = dbExecSimple(c, sql, err);
        determinism_own_open(0);
        sqlite3_free(sql);
        if (index_low)
            *index_low = readIndexLow(c);
        dbRoPut(d, c, false);
        return rc;
    }
    /* One read transaction: the copy is the state of one moment, while the
     * write connection goes on. Pages go through a small cache to the
     * destination file, so memory does not grow with the database. */
    dbExecSimple(c, "BEGIN", NULL);
    dbExecSimple(c, "SELECT 1 FROM sqlite_master LIMIT 1", NULL);
    if (index_low)
        *index_low = readIndexLow(c);
    sqlite3 *o = NULL;
    if (sqlite3_open_v2(dest, &o, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        dbExecSimple(o, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096", err) != 0) {
        if (*err == NULL)
            *err = dbErrdup("backup: cannot create ", dest);
        rc = -1;
    } else {
        sqlite3_backup *bk = sqlite3_backup_init(o, "main", c, "main");
        if (bk == NULL) {
            *err = dbErrdup("backup: ", sqlite3_errmsg(o));
            rc = -1;
        } else {
            int st;
            long long page = (long long)pragmaInt(c, "PRAGMA page_size");
            while ((st = sqlite3_backup_step(bk, 8192)) == SQLITE_OK || st == SQLITE_BUSY ||
                   st == SQLITE_LOCKED) {
                if (progress)
                    progress(arg, (sqlite3_backup_pagecount(bk) - sqlite3_backup_remaining(bk)) * page,
                             sqlite3_backup_pagecount(bk) * page);
                if (st != SQLITE_OK) {
                    dbStat(d, DBSTAT_BACKUP_SLEEPS, 1);
                    usleep(1000);
                }
            }
            dbStat(d, st == SQLITE_DONE ? DBSTAT_BACKUP_STEP_DONES : DBSTAT_BACKUP_STEP_ERRORS, 1);
            sqlite3_backup_finish(bk);
            if (st != SQLITE_DONE) {
                *err = dbErrdup("backup: ", sqlite3_errstr(st));
                rc = -1;
            } else if (!(flags & DB_BACKUP_KEEP_INDEX)) {
                writeIndex(o, 0);
            }
        }
    }
    sqlite3_close(o);
    dbExecSimple(c, "COMMIT", NULL);
    dbRoPut(d, c, false);
    if (rc != 0)
        unlink(dest);
    return rc;
}

int db_install_file(db *d, const char *path, char **err)
{
    /* Connections in use read the old file to the end; none opens until the
     * new file is in place (one opened before the rename would join the
     * pool with the old file, and serve it from then on). */
    pthread_mutex_lock(&d->mu);
    d->gen++;
    d->swapping = true;
    for (int i = 0; i < d->n_idle; i++)
        roClose(d->idle[i]);
    d->n_open -= d->n_idle;
    d->n_idle = 0;
    pthread_mutex_unlock(&d->mu);
    /* The old file's WAL is not worth checkpointing: it is replaced. */
    sqlite3_db_config(d->w, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    dbCacheClear(&d->cache);
    dbCaptureConnClosing(d);
    sqlite3_close(d->w);
    d->w = NULL;
    int rc = 0;
    unlinkSidecars(d->path);
    if (rename(path, d->path) != 0) {
        *err = dbErrdup("install database file: ", strerror(errno));
        rc = -1;
    }
    dbSyncDir(d->path);
    char *oerr = NULL;
    int orc = dbOpenConn(d, false, &d->w, &oerr);
    pthread_mutex_lock(&d->mu);
    d->swapping = false;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (orc != 0) {
        if (rc == 0)
            *err = oerr;
        else
            free(oerr);
        return -1;
    }
    /* Only the low 32 bits are stored: db_resolve_index() completes them. */
    __atomic_store_n(&d->index, readIndexLow(d->w), __ATOMIC_RELAXED);
    return rc;
}

static int checkpointRun(db *d, int mode, int busy_ms)
{
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", d->path);
    struct stat sb;
    dbStatSet(d, DBSTAT_PRECOMPACT_WAL_SIZE, stat(wal, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    if (access(wal, F_OK) == 0 && dbSyncPath(wal, O_RDWR) != 0)
        return -1;
    dbSyncDir(d->path);
    /* Copy first, sync the file, and only then let SQLite cut the WAL:
     * its own TRUNCATE would cut it before our sync of the file. */
    int nlog = -1, nckpt = -1;
    int crc = sqlite3_wal_checkpoint_v2(d->w, "main", SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
    if (nckpt > 0)
        dbStat(d, DBSTAT_CHECKPOINTED_MOVES, (uint64_t)nckpt);
    /* Even a checkpoint that failed part way may have written pages. */
    if (dbSyncPath(d->path, O_RDWR) != 0)
        return -1;
    if (crc != SQLITE_OK || nckpt != nlog) {
        dbStat(d, DBSTAT_CHECKPOINT_BUSY, 1);
        return 1;
    }
    if (mode != SQLITE_CHECKPOINT_TRUNCATE)
        return 0;
    /* Nothing left to copy: this waits for readers still in the WAL, then
     * empties it. Its cut need not be synced: the WAL it cuts is synced
     * whole, and the file holds all of it. */
    sqlite3_busy_timeout(d->w, busy_ms);
    crc = sqlite3_wal_checkpoint_v2(d->w, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
    sqlite3_busy_timeout(d->w, busyMs(d));
    bool cut = crc == SQLITE_OK && nlog <= 0;
    dbStat(d, cut ? DBSTAT_CHECKPOINT_TRUNCATED : DBSTAT_CHECKPOINT_PARTIAL, 1);
    return cut ? 0 : 1;
}

/* Counted as rqlite counts its checkpoints: every attempt, those that ran
 * (held back by readers or not) with the latest one's duration, errors. */
int dbCheckpoint(db *d, int mode, int busy_ms)
{
    int64_t t0 = rq_now_ms();
    dbStat(d, DBSTAT_CHECKPOINT_TOTAL, 1);
    int rc = checkpointRun(d, mode, busy_ms);
    if (rc < 0) {
        dbStat(d, DBSTAT_CHECKPOINT_ERRORS, 1);
    } else {
        dbStat(d, DBSTAT_CHECKPOINTS, 1);
        dbStatSet(d, DBSTAT_CHECKPOINT_MS, (uint64_t)(rq_now_ms() - t0));
    }
    return rc;
}

int db_sync(db *d)
{
    /* The WAL synced holds every entry applied. The checkpoint empties it
     * (its size calls for the next snapshot, as rqlite's does) unless
     * readers hold some of it back: then it copies what it can, without
     * waiting, and the WAL is reused from its start once they are done. */
    if (dbCaptureSync(d) != 0)
        return -1;
    return dbCheckpoint(d, SQLITE_CHECKPOINT_TRUNCATE, 0) < 0 ? -1 : 0;
}

int db_vacuum(db *d, char **err)
{
    char *msg = NULL;
    if (sqlite3_exec(d->w, "VACUUM", NULL, NULL, &msg) != SQLITE_OK) {
        *err = strdup(msg ? msg : sqlite3_errmsg(d->w));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

uint64_t db_unguarded(db *d) { return d->unguarded; }

/* Does name appear in the comma-separated list (NULL: every table)? */
static bool listed(const char *list, const char *name)
{
    if (list == NULL || *list == '\0')
        return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, name, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

int db_dump(db *d, const char *tables, buf *out, char **err)
{
    sqlite3 *c = dbRoGet(d);
    if (c == NULL) {
        *err = strdup("unable to open database connection");
        return -1;
    }
    dbExecSimple(c, "BEGIN", NULL);
    buf_puts(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c, "SELECT name, sql FROM sqlite_master WHERE sql NOT NULL AND "
                                   "type == 'table' ORDER BY name", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 1);
        if (!listed(tables, name))
            continue;
        if (strcmp(name, "sqlite_sequence") == 0) {
            buf_puts(out, "DELETE FROM \"sqlite_sequence\";\n");
        } else if (strcmp(name, "sqlite_stat1") == 0) {
            buf_puts(out, "ANALYZE \"sqlite_master\";\n");
        } else if (strncmp(name, "sqlite_", 7) == 0) {
            continue;
        } else {
            buf_printf(out, "%s;\n", sql);
        }
        /* One INSERT per row, values quoted by SQLite itself. */
        char *cols = sqlite3_mprintf("SELECT group_concat('quote(\"' || replace(name, '\"', '\"\"') "
                                     "|| '\")', ' || '','' || ') FROM pragma_table_info(%Q)", name);
        sqlite3_stmt *cs = NULL;
        char *expr = NULL;
        if (sqlite3_prepare_v2(c, cols, -1, &cs, NULL) == SQLITE_OK && sqlite3_step(cs) == SQLITE_ROW &&
            sqlite3_column_text(cs, 0))
            expr = strdup((const char *)sqlite3_column_text(cs, 0));
        sqlite3_finalize(cs);
        sqlite3_free(cols);
        if (expr == NULL)
            continue;
        char *q = sqlite3_mprintf("SELECT 'INSERT INTO \"%w\" VALUES(' || %s || ');' FROM \"%w\"", name,
                                  expr, name);
        free(expr);
        sqlite3_stmt *rs = NULL;
        if (sqlite3_prepare_v2(c, q, -1, &rs, NULL) == SQLITE_OK) {
            while (sqlite3_step(rs) == SQLITE_ROW) {
                buf_append(out, sqlite3_column_text(rs, 0), (size_t)sqlite3_column_bytes(rs, 0));
                buf_putc(out, '\n');
            }
        }
        sqlite3_finalize(rs);
        sqlite3_free(q);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(c, "SELECT sql FROM sqlite_master WHERE sql NOT NULL AND "
                              "type IN ('index','trigger','view')", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            buf_printf(out, "%s;\n", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    buf_puts(out, "COMMIT;\n");
    dbExecSimple(c, "COMMIT", NULL);
    dbRoPut(d, c, false);
    return 0;
}
