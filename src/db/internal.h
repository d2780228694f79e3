/*
 * internal: what the db module's files share (not for other modules).
 */
#ifndef RQ_DB_INTERNAL_H
#define RQ_DB_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "command/command.h"
#include "db/db.h"
#include "util/buf.h"

#define BUSY_TIMEOUT_MS 5000
/* The write connection's own temp table (see db_execute). */
#define DB_NOCHANGE_TABLE "_rq_nochange"
#define STMT_CACHE 32

/* The savepoint statements of our own that wrap each statement of a batch
 * (see runList): kept prepared, a parse each would cost more than a
 * bulk INSERT's own statement. */
enum { SYS_SAVEPOINT, SYS_RELEASE, SYS_ROLLBACK_TO, SYS_N };

/* The write connection's prepared statements, by SQL text (LRU), and our
 * own (sys, apart: the authorizer saw them as ours when they were prepared). */
typedef struct stmtCache {
    struct {
        char *sql;
        size_t len;
        sqlite3_stmt *st;
        unsigned long use;
    } e[STMT_CACHE];
    unsigned long clock;
    sqlite3_stmt *sys[SYS_N];
} stmtCache;

/* A pooled read connection with the statements it keeps (its own: a
 * virtual table keeps statements of its own on the connection too). */
typedef struct roConn {
    sqlite3 *c;
    stmtCache *k;
} roConn;

/* rqlite's "db" expvar counters (vars.c names them, db_vars()), in
 * struct db; *_MS ones hold the latest duration, the others add up.
 * Relaxed atomics: readers are /debug/vars requests on any thread. */
enum {
    DBSTAT_OPEN_MS,
    DBSTAT_CHECKPOINTS,            /* checkpoints that ran (some frames may be held back) */
    DBSTAT_CHECKPOINT_ERRORS,      /* a sync failed */
    DBSTAT_CHECKPOINTED_MOVES,     /* frames copied into the file */
    DBSTAT_CHECKPOINT_MS,
    DBSTAT_PRECOMPACT_WAL_SIZE,    /* the WAL's bytes before the latest checkpoint */
    DBSTAT_CHECKPOINT_TOTAL,       /* attempts */
    DBSTAT_CHECKPOINT_BUSY,        /* readers kept frames back */
    DBSTAT_CHECKPOINT_PARTIAL,     /* every frame copied, the WAL not emptied */
    DBSTAT_CHECKPOINT_TRUNCATED,   /* the WAL emptied */
    DBSTAT_EXECUTIONS,             /* statements, as rqlite counts them */
    DBSTAT_EXECUTION_ERRORS,
    DBSTAT_FORCE_QUERIES,          /* statements on the write path that return rows */
    DBSTAT_QUERIES,
    DBSTAT_QUERY_ERRORS,
    DBSTAT_REQUESTS,
    DBSTAT_EXECUTE_TX,             /* ?transaction requests, per kind */
    DBSTAT_QUERY_TX,
    DBSTAT_REQUEST_TX,
    DBSTAT_BACKUP_STEP_ERRORS,     /* sqlite3_backup_step: failed, */
    DBSTAT_BACKUP_STEP_DONES,      /* finished, */
    DBSTAT_BACKUP_SLEEPS,          /* waited for a lock */
    DBSTAT_PREUPDATES,             /* CDC's pre-update hook calls */
    DBSTAT_COMMIT_HOOKS,           /* CDC's commit hook calls */
    DBSTAT_N
};

struct db {
    uint64_t stats[DBSTAT_N]; /* DBSTAT_*, any thread */
    char *path;
    char *dir;               /* its directory, guarded from client SQL */
    db_options opts;
    sqlite3 *w;              /* write connection: Raft thread only */
    pthread_mutex_t mu;      /* guards the read pool */
    pthread_cond_t cv;
    struct roConn *idle;     /* idle read-only connections */
    int n_idle, cap_idle;
    int n_open;              /* read-only connections open (idle + busy) */
    int64_t entry_ms;        /* clock and seed of the entry being applied */
    uint64_t rng;
    uint64_t entry_index;    /* Raft index the next db_execute records */
    uint64_t entry_steps;    /* VM step budget of the next db_execute */
    uint64_t steps_left;     /* ... while it runs, in progress-handler calls */
    bool steps_out;          /* the budget ran out during this entry */
    sqlite3_int64 carry_id;  /* last_insert_id reported by earlier entries */
    sqlite3_int64 entry_total; /* total_changes() when the entry started */
    uint64_t index;          /* Raft index of the last entry the file holds */
    unsigned gen;            /* bumped when the file is swapped */
    bool swapping;           /* db_install_file at work: no new connections */
    struct { sqlite3 *c; unsigned gen; stmtCache *k; } *busy; /* read connections in use */
    int n_busy, cap_busy;
    char *marker;            /* "<path>-rqentry": an unguarded entry is running */
    bool recovered;          /* db_open dropped a cut-short entry */
    uint64_t unguarded;      /* control entries run without the guard */
    stmtCache cache;         /* the write connection's prepared statements */
    db_pragmas rw_pragmas;   /* the write connection's settings when opened, under mu */
    struct dbCapture *capture; /* CDC (capture.c), NULL when off */
};

static inline void dbStat(db *d, int which, uint64_t n)
{
    __atomic_fetch_add(&d->stats[which], n, __ATOMIC_RELAXED);
}

static inline void dbStatSet(db *d, int which, uint64_t v)
{
    __atomic_store_n(&d->stats[which], v, __ATOMIC_RELAXED);
}

/* ---- sqlite.c: connections, files ---- */

char *dbErrdup(const char *prefix, const char *msg);
/* Our own SQL on c (bypasses the policy); *err if given. */
int dbExecSimple(sqlite3 *c, const char *sql, char **err);
/* A new connection to d's file (ro: a read-only one for the pool). */
int dbOpenConn(db *d, bool ro, sqlite3 **out, char **err);
/* Replace the write connection by a fresh one (connection state dropped). */
int dbReopenWriter(db *d);
sqlite3 *dbRoGet(db *d);
/* Back to the pool; discard: close it instead (its state was changed). */
void dbRoPut(db *d, sqlite3 *c, bool discard);
/* The statements a read connection in use keeps (dbRoGet's; NULL when
 * none could be allocated). */
stmtCache *dbRoCache(db *d, sqlite3 *c);
void dbCacheClear(stmtCache *k);
/* Record index with the open transaction's changes and commit (policy.c
 * says which failures are returned). */
int dbCommitWithIndex(db *d, uint64_t index);
int dbSyncPath(const char *path, int flags);
void dbSyncDir(const char *path);
/* The only checkpoints of the write connection (synchronous=OFF,
 * wal_autocheckpoint=0: SQLite makes none by itself), with the syncs of
 * synchronous=NORMAL made by hand: the WAL (all commits so far) before its
 * frames are copied, so that a copy cut short by a power loss can be redone
 * from it, and the database file after, before the WAL may start over (its
 * new header is synced too: walfile.c). The directory is synced first: a
 * crash-guard marker removed earlier must not come back once the entries
 * after it are in the file. mode: SQLITE_CHECKPOINT_PASSIVE or _TRUNCATE,
 * which waits up to busy_ms for readers. Returns 0 when every frame was
 * copied (and, for TRUNCATE, the WAL emptied), 1 when readers kept some
 * back, -1 on an error (a sync failed). */
int dbCheckpoint(db *d, int mode, int busy_ms);

/* ---- walfile.c: WAL files whose header is synced ---- */

/* The size of our file objects (the VFS's szOsFile). */
int dbWalFileSize(sqlite3_vfs *base);
/* Open a WAL file through base, wrapped so that its header write is
 * followed by a sync. */
int dbWalOpen(sqlite3_vfs *base, sqlite3_filename name, sqlite3_file *f, int flags, int *out);

/* ---- encode.c: rqlite's result format ---- */

/* Step a row-returning statement, writing a query-shaped result of at most
 * about max bytes (0: any size). Returns 0, or -1 with *err (the caller
 * writes the error). */
int dbEncodeRows(sqlite3_stmt *st, unsigned flags, size_t max, buf *out, double t0, char **err);
void dbPutError(buf *out, const char *msg, unsigned flags, double t0);
void dbPutExecResult(buf *out, sqlite3_int64 id, int changes, unsigned flags, double t0);

/* ---- capture.c: change data capture (db_cdc_enable) ---- */

typedef struct dbCapture dbCapture;
/* Its hooks on a new write connection c (nothing when CDC is off). */
void dbCaptureInstall(db *d, sqlite3 *c);
void dbCaptureFree(db *d);
/* The write connection is about to close: its statements of ours go. */
void dbCaptureConnClosing(db *d);
/* A new entry: nothing captured yet. */
void dbCaptureBegin(db *d);
/* The events so far (a mark), and dropping those after a mark (a
 * savepoint of ours rolled back). d may be NULL (reads): no-ops. */
size_t dbCaptureMark(db *d);
void dbCaptureTruncate(db *d, size_t mark);
/* After each statement on the write connection: ok or failed, with the
 * mark taken before it ran. */
void dbCaptureStatementDone(db *d, sqlite3_stmt *st, bool ok, size_t mark);
/* Just before the COMMIT that records index: the entry's events to the
 * sink. 0, or -1 when the sink could not take them. */
int dbCaptureFlush(db *d, uint64_t index);
/* The sink's events durable (db_sync). */
int dbCaptureSync(db *d);

/* ---- exec.c ---- */

/* A failed statement's message on c: an interrupt is this thread's reason
 * ("query timeout" for reads, "execute timeout" for writes), a refusal the
 * policy's message. */
const char *dbErrmsg(sqlite3 *c);

/* ---- determinism.c ---- */

/* The name of the VFS with a freezable clock and a guarded xOpen
 * (registered on first use). Every connection of ours uses it. */
const char *determinism_vfs_name(void);
/* Replace random() and randomblob() on c with a generator over *state. */
int determinism_install(sqlite3 *c, uint64_t *state);
/* Freeze SQLite's clock on this thread at unix_ms (0: real clock). */
void determinism_freeze(int64_t unix_ms);
/* Files inside dir (a node's data directory) may be opened only as the
 * connections' own database (between determinism_own_open(1) and determinism_own_open(0)
 * on this thread), never by ATTACH or VACUUM INTO. Special files (/dev,
 * /proc, /sys) are never opened by client SQL either. */
void determinism_protect_dir(const char *dir);
void determinism_unprotect_dir(const char *dir);
void determinism_own_open(int on);

/* ---- policy.c ---- */

enum { POLICY_OK = 0, POLICY_STATE = 1, POLICY_DENY = 2 };
enum {
    POLICY_SEEN_DENIED_PRAGMA = 1 << 0,
    POLICY_SEEN_DENIED_FUNCTION = 1 << 1,
    POLICY_SEEN_STATE = 1 << 2,   /* connection state changed: reset it */
    POLICY_SEEN_CHANGES = 1 << 3, /* changes() is called (write connection) */
};
/* The authorizer, defensive mode, trusted_schema off and the limits, on c
 * (write: the write connection, where some functions are refused too).
 * max_length: SQLITE_LIMIT_LENGTH and SQL_LENGTH (0: SQLite's). */
int policy_install(sqlite3 *c, bool write, sqlite3_int64 max_length);
/* Our own statements bypass the policy while on (nests). */
void policy_internal(int on);
/* What the policy saw on this thread since the last call (POLICY_SEEN_*). */
unsigned policy_take(void);
/* The rule for a pragma (POLICY_*), set or read; exposed for unit tests. */
int policy_pragma_rule(const char *name, bool has_value);
/* The message for a refusal in seen, or NULL. */
const char *policy_denied_message(unsigned seen);
/* Is failure rc this node's own (see policy.c), not an answer? recording:
 * while the entry's index was being recorded; attached: a file attached by
 * the request was in use. */
bool policy_node_local(int rc, bool recording, bool attached);

#endif
