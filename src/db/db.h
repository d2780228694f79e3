/*
 * db: one SQLite database file, as rqlite uses it.
 *
 * A db has one write connection (used only by the state machine, i.e. the
 * Raft thread) and a pool of read-only connections that any thread may use
 * through db_query(). The file persists across restarts: it records the
 * Raft index of the last entry it holds in its header (application_id, low
 * 32 bits), written in the same SQLite transaction as the entry's changes,
 * so a restart applies exactly the entries after it. Entries that run their
 * own transactions (BEGIN, VACUUM, PRAGMA...) are guarded instead: the WAL
 * is emptied first, and a crash in the middle of one drops the WAL at the
 * next db_open.
 *
 * Durability. As in rqlite, the file is in WAL mode with synchronous=OFF
 * and no automatic checkpoints: commits are never synced, since the Raft
 * log (synced by libraft) holds every entry the file may lose to a power
 * failure, and a restart applies them again. The file is synced when a
 * snapshot is taken (db_sync: the log before it may go then) and around
 * checkpoints, which only db_sync, the crash guard and db_close make, each
 * with the syncs synchronous=NORMAL would make (dbCheckpoint, walfile.c):
 * after a power failure the file is whole, at an entry no older than the
 * latest snapshot.
 *
 * Statements come as a command (command/command.h): SQL text with typed
 * parameters, built and validated by the HTTP layer, decoded from the log
 * entry on every node. What client SQL may do is decided by SQLite itself
 * through one authorizer on every connection (policy.c: disallowed pragmas,
 * connection state that lasts one request, files ATTACH may open), with
 * defensive mode and trusted_schema off.
 *
 * Results are written as JSON straight into a buf, in rqlite's exact byte
 * format: the *contents* of the "results" array (no enclosing brackets), e.g.
 *   {"last_insert_id":1,"rows_affected":1},{"error":"no such table: nope"}
 * so that callers can wrap them ({"results":[ ... ],"time":...}).
 */
#ifndef RQ_DB_DB_H
#define RQ_DB_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command/command.h"
#include "util/buf.h"

typedef struct db db;

/* Flags for db_execute / db_query / db_request. */
enum {
    DB_TX = 1 << 0,          /* ?transaction: all-or-nothing, stop at first error */
    DB_TIMINGS = 1 << 1,     /* ?timings: per-statement "time" */
    DB_ASSOC = 1 << 2,       /* ?associative: rows as objects */
    DB_BLOB_ARRAY = 1 << 3,  /* ?blob_array: blobs as byte arrays */
    DB_QUALIFY = 1 << 4,     /* ?qualify_columns */
    DB_READ_ROWS = 1 << 5,   /* db_execute: reads return rows (/db/request);
                                otherwise only RETURNING does, as in rqlite */
};

typedef struct db_options {
    bool fk;            /* PRAGMA foreign_keys=ON on every connection */
    int max_ro_conns;   /* read pool bound, 0 = unlimited */
    int busy_ms;        /* how long a connection waits for a lock, 0 = 5 s */
    int64_t max_length; /* SQLITE_LIMIT_LENGTH and _SQL_LENGTH, 0 = SQLite's */
    size_t max_result;  /* bytes of one statement's rows, 0 = any ("result too large") */
    /* SQLite extensions (-extensions-path) loaded into every connection,
     * through the C API only (SQL's load_extension() stays off); the
     * array must outlive the db. A connection that cannot load one fails
     * to open. */
    const char *const *extensions;
    int n_extensions;
} db_options;

/* Open (creating if needed) the database at path. On error returns non-zero
 * and sets *err (caller frees). */
int db_open(const char *path, const db_options *opts, db **out, char **err);
void db_close(db *d);
/* Load each of the n extension files into a scratch connection: 0, or -1
 * with *err naming the one that does not load and SQLite's reason. For a
 * start that stops before anything else when one would not load. */
int db_extensions_check(const char *const *paths, int n, char **err);
/* db_open dropped the WAL of an entry cut short by a crash. */
bool db_recovered(db *d);

/* The Raft index of the last entry the file holds. Only its low 32 bits are
 * stored: db_resolve_index() picks the full value nearest to a known index
 * (the latest Raft snapshot's). */
uint64_t db_index(db *d);
void db_resolve_index(db *d, uint64_t near);
/* The index a database file at path holds (resolved near near), without
 * opening it as ours: a transferred file is checked before it is installed.
 * Returns 0, or -1 if it cannot be read. */
int db_file_index(const char *path, uint64_t near, uint64_t *out);
/* The Raft index the next db_execute() records with its changes (0: none). */
void db_set_entry_index(db *d, uint64_t index);
/* Entries run without the crash guard because readers kept the WAL busy. */
uint64_t db_unguarded(db *d);
/* Make everything applied so far durable (WAL, directory), then move the
 * WAL into the file (a checkpoint, synced). 0, or -1 when a sync failed. */
int db_sync(db *d);
/* -auto-vacuum-int: VACUUM the file on the write connection (Raft thread,
 * between entries). The content is unchanged, its index too (VACUUM keeps
 * the header's application_id), so each node does it on its own schedule.
 * 0, or -1 with *err. */
int db_vacuum(db *d, char **err);

/* The clock and random seed for the following db_execute() calls: SQLite's
 * 'now' (date/time functions, CURRENT_TIMESTAMP) reads unix_ms, and
 * random()/randomblob() draw from a generator seeded with seed, so that
 * every replica applying the same entry computes the same values.
 * unix_ms 0 means the real clock. */
void db_set_entropy(db *d, int64_t unix_ms, uint64_t seed);

/* The VM step budget of the next db_execute() (0: none): once the entry
 * has run that many steps of SQLite's virtual machine (counted in grains of
 * 1,000, the same on every replica), its statements fail with "execute
 * timeout". */
void db_set_step_budget(db *d, uint64_t steps);

/* Run a command's statements on the write connection (Raft thread only).
 * Appends the results (see above) to out when out != NULL; with out ==
 * NULL the statements run but nothing is encoded (followers). Statements
 * with RETURNING produce query-shaped results, and so do reads with
 * DB_READ_ROWS; other reads give execute-shaped ones, like rqlite's
 * /db/execute.
 *
 * Returns 0, or the SQLite result code of a failure that is this node's
 * alone (policy.c: I/O error, our database locked by another process, disk
 * full or out of memory while recording the index) while an entry
 * (db_set_entry_index) ran: other replicas applied it, so its changes were
 * rolled back and its index not recorded, and the caller must stop before
 * applying anything later (a restart applies the entry again). Every other
 * failure is an answer, the same on every replica. */
int db_execute(db *d, const cmd_view *stmts, unsigned flags, buf *out);

enum { DB_CHECK_OK = 0, DB_CHECK_DISALLOWED_PRAGMA = 1 };

/* Run read statements on a read-only pooled connection; any thread. A write
 * statement yields {"error":"attempt to change database via query operation"}.
 * timeout_us > 0 (rqlite's ?db_timeout): a statement still running that long
 * after the call is interrupted, and yields {"error":"query timeout"}.
 * Returns DB_CHECK_DISALLOWED_PRAGMA when a statement was refused for a
 * disallowed pragma (rqlite answers the whole request then), else
 * DB_CHECK_OK: reads need no db_check() first. */
int db_query(db *d, const cmd_view *stmts, unsigned flags, uint64_t timeout_us, buf *out);

/* The leader's look at a request before proposing it, on a read-only
 * connection (any thread): DB_CHECK_DISALLOWED_PRAGMA when a statement sets
 * a pragma the policy refuses (rqlite answers the whole request with
 * "disallowed pragma"), and *readonly when every statement only reads
 * (/db/request then serves it as a query). A statement that cannot be
 * prepared yet counts as a write; the policy still applies when it runs. */
int db_check(db *d, const cmd_view *stmts, bool *readonly);

/* Is data (len bytes) a SQLite database image that can replace ours: the
 * header sane (page size, format), the pages whole, PRAGMA quick_check "ok"
 * with our policy (the schema parses without writable_schema)? The check
 * runs with d's extensions loaded (d may be NULL: none), as the image's
 * CHECK constraints may call them. 0, or -1 with *err ("invalid database
 * image: ..."). An empty image is valid. */
int db_image_check(db *d, const void *data, size_t len, char **err);

/* Replace the whole database with an image (Raft thread only), recording
 * index with it, after db_image_check (the same verdict on every node).
 * Readers see either the old or the new content. */
int db_restore(db *d, const void *data, size_t len, uint64_t index, char **err);

typedef void (*db_progress_fn)(void *arg, long long done_bytes, long long total_bytes);
enum {
    DB_BACKUP_VACUUM = 1 << 0,     /* a VACUUMed copy (?vacuum) */
    DB_BACKUP_KEEP_INDEX = 1 << 1, /* keep the Raft index in the copy (snapshots) */
};
/* A consistent copy of the database written to a new file at dest, taken
 * on a read-only connection (any thread) with memory bounded whatever the
 * size; *index_low: the stored index of the copied state. */
int db_backup_file(db *d, const char *dest, unsigned flags, db_progress_fn progress, void *arg,
                   uint32_t *index_low, char **err);
/* Replace the database by the file at path (renamed into place; Raft
 * thread only). db_index() is then the file's stored index: resolve it. */
int db_install_file(db *d, const char *path, char **err);
/* rqlite's SQL text dump (/db/backup?fmt=sql), optionally limited to the
 * comma-separated tables; any thread. */
int db_dump(db *d, const char *tables, buf *out, char **err);

/* Does sql (len bytes, one or more statements) parse as SQLite's grammar?
 * It is compiled against an empty in-memory database and never run, so
 * that unknown tables or columns are no error: only syntax is (/db/sql).
 * 0, or -1 with SQLite's message in *err. */
int db_sql_check(const char *sql, size_t len, char **err);

/* -auto-optimize-int: the statements that bring the query planner's
 * statistics up to date, decided on a read-only connection (any thread):
 * "PRAGMA analysis_limit=400" then "ANALYZE <table>" for each table that
 * has indexes and rows, and no statistics or statistics off by 25 times or
 * more from its row count (what SQLite's own PRAGMA optimize looks for).
 * Appended to out; returns the number of tables (0: nothing to do), or -1
 * when the database cannot be read. Run through the log, the statements
 * give every replica the same statistics, where PRAGMA optimize would
 * consult each connection's own history. */
int db_optimize_plan(db *d, cmd_batch *out);

/* The read pool for /metrics: connections open (idle + busy), idle, and
 * the most there may be (-db-max-ro-conns analog; 0: no limit). */
void db_pool_stats(db *d, int *open, int *idle, int *max);

/* Change data capture (-cdc-config, cdc/cdc.h): the rows each entry
 * inserts, updates or deletes and keeps (failed statements, rolled-back
 * savepoints and transactions leave nothing), as rqlite's JSON events:
 *   [{"op":"INSERT","table":"t","new_row_id":1,"after":{"id":1,..}},..]
 * (before/after left out with row_ids_only). All callbacks run on the Raft
 * thread, during db_execute. */
typedef struct db_cdc_sink {
    void *arg;
    bool row_ids_only;
    /* Is a change to table captured? Asked once per table name. */
    bool (*want)(void *arg, const char *table);
    /* The events of the entry at index (ts: its Unix ms), called just
     * before the COMMIT that records the index with the entry's changes:
     * they must be safe from a crash of the process (written to the
     * kernel) when it returns 0. -1: the entry fails on this node (a
     * node-local failure, see db_execute), to be applied again. */
    int (*entry)(void *arg, uint64_t index, int64_t ts_ms, const char *events, size_t len);
    /* Make what entry() took durable (db_sync, before the log is
     * compacted). 0, or -1. */
    int (*sync)(void *arg);
} db_cdc_sink;
/* Capture from now on, on the write connection (before the store applies
 * anything). The sink is copied. 0, or -1 with *err when this SQLite
 * lacks the pre-update hook. */
int db_cdc_enable(db *d, const db_cdc_sink *sink, char **err);

/* rqlite's expvar maps (new objects, caller owns; any thread): "db",
 * d's counters (statements run and failed per kind, ?transaction
 * requests, checkpoints and the latest one's duration, backup steps, CDC
 * hooks), all 0 for d == NULL (no database yet); and "db.wal", which we
 * keep at 0 (see vars.c). */
json_t *db_vars(db *d);
json_t *db_wal_vars(void);

/* For /status. */
const char *db_path(db *d);
long long db_file_size(db *d);
long long db_wal_size(db *d);

/* The settings of a connection, as /status shows them (rqlite's
 * store.sqlite3.pragmas): each PRAGMA's value as text. */
typedef struct db_pragmas {
    char busy_timeout[24], foreign_keys[24], journal_mode[24], synchronous[24], wal_autocheckpoint[24];
} db_pragmas;
/* Any thread: *ro read now on a read-only connection, *rw as the write
 * connection (the Raft thread's) was set up when it was opened. 0, or -1
 * when no read connection could be had (*ro then empty). */
int db_get_pragmas(db *d, db_pragmas *ro, db_pragmas *rw);

#endif
