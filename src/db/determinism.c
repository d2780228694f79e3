/*
 * determinism.c: make the write connection's non-deterministic SQL
 * (RANDOM(), RANDOMBLOB(), 'now', CURRENT_TIMESTAMP...) replay identically.
 *
 * rqlite rewrites such SQL text before replication. We instead let the
 * proposing node stamp each log entry with a time and a random seed, and
 * every node applies the entry with SQLite's clock frozen at that time (a
 * VFS whose xCurrentTimeInt64 answers it) and random()/randomblob() drawn
 * from a generator seeded with it. Every replica, and every replay after a
 * restart, computes the same values, including cases rqlite leaves
 * non-deterministic (CURRENT_TIMESTAMP defaults, ORDER BY random()).
 */
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db/internal.h"

#define DET_VFS "rq-deterministic"

/* Julian day in ms of the Unix epoch (SQLite's time base). */
#define UNIX_EPOCH_JMS 210866760000000LL

static sqlite3_vfs detVfs;
static sqlite3_vfs *baseVfs;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* The frozen clock, per thread: only the Raft thread uses the VFS. */
static __thread sqlite3_int64 frozen_jms;

/* SQLite's 'now': the entry's frozen clock on the Raft thread, else real time. */
static int detCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    if (frozen_jms) {
        *out = frozen_jms;
        return SQLITE_OK;
    }
    return baseVfs->xCurrentTimeInt64(baseVfs, out);
}

/* The older, floating-point clock method, for SQLite code that still calls it. */
static int detCurrentTime(sqlite3_vfs *v, double *out)
{
    sqlite3_int64 t;
    int rc = detCurrentTimeInt64(v, &t);
    *out = (double)t / 86400000.0;
    return rc;
}

/* ---- files client SQL may not open ------------------------------------------ */

#define MAX_PROTECTED 64
static pthread_mutex_t protMu = PTHREAD_MUTEX_INITIALIZER;
static char *protected[MAX_PROTECTED]; /* real paths of data directories */
static __thread int ownOpen;

void determinism_own_open(int on)
{
    ownOpen += on ? 1 : -1;
}

void determinism_protect_dir(const char *dir)
{
    char *real = realpath(dir, NULL);
    if (real == NULL)
        return;
    pthread_mutex_lock(&protMu);
    for (int i = 0; i < MAX_PROTECTED; i++) {
        if (protected[i] == NULL) {
            protected[i] = real;
            real = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&protMu);
    free(real);
}

void determinism_unprotect_dir(const char *dir)
{
    char *real = realpath(dir, NULL);
    if (real == NULL)
        return;
    pthread_mutex_lock(&protMu);
    for (int i = 0; i < MAX_PROTECTED; i++) {
        if (protected[i] && strcmp(protected[i], real) == 0) {
            free(protected[i]);
            protected[i] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&protMu);
    free(real);
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0' || (n == 1 && dir[0] == '/'));
}

/* Is dir, or one of its parents, a node's data directory (a raft/
 * directory beside a db.sqlite or holding rqnode.json)? Other nodes of a
 * cluster on one host, as in the walk-through, have theirs nearby. */
static bool insideDataDir(const char *dir)
{
    char *p = strdup(dir);
    bool found = false;
    while (p && !found) {
        char probe[PATH_MAX + 32];
        struct stat st;
        snprintf(probe, sizeof probe, "%s/raft", p);
        if (stat(probe, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(probe, sizeof probe, "%s/raft/rqnode.json", p);
            found = stat(probe, &st) == 0;
            snprintf(probe, sizeof probe, "%s/db.sqlite", p);
            found = found || stat(probe, &st) == 0;
        }
        char *slash = strrchr(p, '/');
        if (slash == NULL || slash == p)
            break;
        *slash = '\0';
    }
    free(p);
    return found;
}

/* May client SQL (ATTACH, VACUUM INTO) open this database file? Not one
 * inside a node's data directory, ours or another's (the database, the Raft
 * log, peers.json: an attached copy of our own file deadlocks writes,
 * another node's file would be changed behind its back, a VACUUM INTO there
 * could plant files a node trips on at its next start), nor a special file
 * (a FIFO blocks the thread for good, /proc and /dev files fail with I/O
 * errors). */
static bool clientMayOpen(const char *name)
{
    struct stat st;
    if (stat(name, &st) == 0 && !S_ISREG(st.st_mode))
        return false;
    char *copy = strdup(name);
    char *real = copy ? realpath(dirname(copy), NULL) : NULL;
    free(copy);
    if (real == NULL)
        return true; /* no such directory: the open fails by itself */
    bool ok = !under(real, "/proc") && !under(real, "/dev") && !under(real, "/sys") && !insideDataDir(real);
    pthread_mutex_lock(&protMu);
    for (int i = 0; ok && i < MAX_PROTECTED; i++)
        if (protected[i] && under(real, protected[i]))
            ok = false;
    pthread_mutex_unlock(&protMu);
    free(real);
    return ok;
}

/* The guard (clientMayOpen) in front of the default VFS's xOpen; WAL
 * files with their header synced (walfile.c). */
static int detOpen(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    if (name && ownOpen == 0 && (flags & SQLITE_OPEN_MAIN_DB) && !clientMayOpen(name)) {
        f->pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    if (flags & SQLITE_OPEN_WAL)
        return dbWalOpen(baseVfs, name, f, flags, out);
    return baseVfs->xOpen(baseVfs, name, f, flags, out);
}

/* The default VFS with our clock and open guard: same files, locks and shm. */
static void registerVfs(void)
{
    baseVfs = sqlite3_vfs_find(NULL);
    detVfs = *baseVfs; /* same files, locks and shared memory as the default */
    detVfs.zName = DET_VFS;
    detVfs.pNext = NULL;
    detVfs.szOsFile = dbWalFileSize(baseVfs); /* the larger of the two */
    if (detVfs.iVersion >= 2)
        detVfs.xCurrentTimeInt64 = detCurrentTimeInt64;
    detVfs.xCurrentTime = detCurrentTime;
    detVfs.xOpen = detOpen;
    sqlite3_vfs_register(&detVfs, 0);
}

const char *determinism_vfs_name(void)
{
    pthread_once(&once, registerVfs);
    return DET_VFS;
}

/* splitmix64: small, fast, good enough for SQL-level randomness. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void fnRandom(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    uint64_t *s = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, (sqlite3_int64)next(s));
}

/* randomblob(n) from the entry's seed; n bounded like any SQLite value. */
static void fnRandomBlob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    uint64_t *s = sqlite3_user_data(ctx);
    sqlite3_int64 n = sqlite3_value_int64(argv[0]);
    if (n < 1)
        n = 1;
    if (n > sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1)) {
        sqlite3_result_error_toobig(ctx);
        return;
    }
    unsigned char *p = sqlite3_malloc64((sqlite3_uint64)n);
    if (p == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    for (sqlite3_int64 i = 0; i < n; i += 8) {
        uint64_t r = next(s);
        size_t k = n - i < 8 ? (size_t)(n - i) : 8;
        memcpy(p + i, &r, k);
    }
    sqlite3_result_blob64(ctx, p, (sqlite3_uint64)n, sqlite3_free);
}

int determinism_install(sqlite3 *c, uint64_t *state)
{
    /* Innocuous, like SQLite's own: triggers and views may use them with
     * trusted_schema off. */
    int rc = sqlite3_create_function(c, "random", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, state, fnRandom, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(c, "randomblob", 1, SQLITE_UTF8 | SQLITE_INNOCUOUS, state, fnRandomBlob,
                                     NULL, NULL);
    return rc;
}

void determinism_freeze(int64_t unix_ms)
{
    frozen_jms = unix_ms ? UNIX_EPOCH_JMS + unix_ms : 0;
}
