/*
 * policy.c: what client SQL may do to a node, decided by SQLite itself.
 *
 * Every connection has the same authorizer (sqlite3_set_authorizer), called
 * while a statement is prepared, so it sees what the statement really does:
 * a pragma however it is spelled (main.x, comments, x(1), x = 1), never the
 * words inside a string literal. Its decisions depend on the SQL alone, so
 * every replica decides alike.
 *
 * Pragmas (the table below):
 *  - refused when set (rqlite's "disallowed pragma"): those that change
 *    durability (synchronous, fullfsync), journaling (journal_mode,
 *    wal_autocheckpoint; wal_checkpoint in any form, since reading it runs a
 *    checkpoint), locking (locking_mode, busy_timeout), query_only, the
 *    schema's integrity (writable_schema, schema_version, trusted_schema),
 *    the node's own bookkeeping (application_id holds the Raft index) and
 *    process-wide settings (heap limits, threads, mmap_size, directories);
 *  - "connection state" when set (foreign_keys, recursive_triggers,
 *    cache_size, ...): allowed, but a replica that restarts, or catches up
 *    from a copy, opens a fresh connection without that state. So the state
 *    lasts one request: the write connection is reset after an entry that
 *    changed it (db.c), a read connection is closed instead of pooled;
 *  - everything else (reads of any pragma, table_info(x), integrity_check,
 *    optimize; user_version, page_size, auto_vacuum and encoding, which
 *    live in the file) is allowed.
 *
 * Other connection state is scoped the same way: ATTACH/DETACH and temp
 * objects mark the connection for a reset after the entry. ATTACH and
 * VACUUM INTO are allowed as in rqlite, except for files inside the node's
 * own data directory (the VFS refuses them, determinism.c).
 * total_changes() is refused in writes: it counts what the connection did
 * since it opened, which differs between replicas; changes() in an entry
 * that has changed no rows yet reads 0 (exec.c). So are the tables whose
 * rows are the node's own (file paths in pragma_database_list, the
 * connection's statements in sqlite_stmt, data_version, page layout in
 * dbstat, page_count, freelist_count). fts3_tokenizer() is refused
 * everywhere: Debian's SQLite lets its two-argument form install a
 * function pointer given by the client. URI filenames are off, so ATTACH
 * cannot name another VFS.
 *
 * Decisions are also recorded per thread (policy_take), so that callers can
 * answer "disallowed pragma" for the whole request, as rqlite does, and know
 * when a connection needs a reset.
 */
#include <sqlite3.h>
#include <string.h>
#include <strings.h>

#include "db/internal.h"

typedef enum { PR_OK, PR_STATE, PR_DENY_SET, PR_DENY } pragmaRule;

static const struct {
    const char *name;
    pragmaRule rule;
} pragmaRules[] = {
    {"analysis_limit", PR_STATE},
    {"application_id", PR_DENY_SET},
    {"auto_vacuum", PR_OK},
    {"automatic_index", PR_STATE},
    {"busy_timeout", PR_DENY_SET},
    {"cache_size", PR_STATE},
    {"cache_spill", PR_STATE},
    {"case_sensitive_like", PR_STATE},
    {"cell_size_check", PR_STATE},
    {"checkpoint_fullfsync", PR_DENY_SET},
    {"count_changes", PR_STATE},
    {"data_store_directory", PR_DENY_SET},
    {"defer_foreign_keys", PR_STATE},
    {"empty_result_callbacks", PR_STATE},
    {"foreign_keys", PR_STATE},
    {"full_column_names", PR_STATE},
    {"fullfsync", PR_DENY_SET},
    {"hard_heap_limit", PR_DENY_SET},
    {"ignore_check_constraints", PR_STATE},
    {"journal_mode", PR_DENY_SET},
    {"journal_size_limit", PR_STATE},
    {"legacy_alter_table", PR_STATE},
    {"legacy_file_format", PR_STATE},
    {"encoding", PR_OK},
    {"locking_mode", PR_DENY_SET},
    {"max_page_count", PR_STATE},
    {"mmap_size", PR_DENY_SET},
    {"page_size", PR_OK},
    {"parser_trace", PR_DENY_SET},
    {"query_only", PR_DENY_SET},
    {"read_uncommitted", PR_STATE},
    {"recursive_triggers", PR_STATE},
    {"reverse_unordered_selects", PR_STATE},
    {"schema_version", PR_DENY_SET},
    {"secure_delete", PR_STATE},
    {"short_column_names", PR_STATE},
    {"soft_heap_limit", PR_DENY_SET},
    {"synchronous", PR_DENY_SET},
    {"temp_store", PR_STATE},
    {"temp_store_directory", PR_DENY_SET},
    {"threads", PR_DENY_SET},
    {"trusted_schema", PR_DENY_SET},
    {"user_version", PR_OK},
    {"vdbe_addoptrace", PR_DENY_SET},
    {"vdbe_debug", PR_DENY_SET},
    {"vdbe_listing", PR_DENY_SET},
    {"vdbe_trace", PR_DENY_SET},
    {"wal_autocheckpoint", PR_DENY_SET},
    {"wal_checkpoint", PR_DENY},
    {"writable_schema", PR_DENY_SET},
};

/* Pragmas whose argument names a table or index, or that run a check or
 * maintenance: an argument does not set anything on the connection. */
static const char *const pragmaQueries[] = {
    "foreign_key_check", "foreign_key_list", "incremental_vacuum", "index_info", "index_list",
    "index_xinfo", "integrity_check", "optimize", "quick_check", "shrink_memory", "table_info",
    "table_list", "table_xinfo",
};

/* What this thread's connection did since policy_take() last looked. */
static __thread struct {
    int internal;   /* > 0: our own statements, not the client's */
    unsigned seen;
} pol;

void policy_internal(int on)
{
    pol.internal += on ? 1 : -1;
}

unsigned policy_take(void)
{
    unsigned s = pol.seen;
    pol.seen = 0;
    return s;
}

int policy_pragma_rule(const char *name, bool has_value)
{
    for (size_t i = 0; i < sizeof pragmaRules / sizeof pragmaRules[0]; i++) {
        if (strcasecmp(name, pragmaRules[i].name) != 0)
            continue;
        switch (pragmaRules[i].rule) {
        case PR_DENY:
            return POLICY_DENY;
        case PR_DENY_SET:
            return has_value ? POLICY_DENY : POLICY_OK;
        case PR_STATE:
            return has_value ? POLICY_STATE : POLICY_OK;
        default:
            return POLICY_OK;
        }
    }
    if (!has_value)
        return POLICY_OK;
    for (size_t i = 0; i < sizeof pragmaQueries / sizeof pragmaQueries[0]; i++)
        if (strcasecmp(name, pragmaQueries[i]) == 0)
            return POLICY_OK;
    return POLICY_STATE; /* unknown to us: assume it sets something */
}

/* Tables (virtual, eponymous) whose rows are this node's own. */
static bool nodeLocalTable(const char *name)
{
    static const char *const names[] = {"pragma_database_list", "pragma_data_version", "sqlite_stmt", "dbstat",
                                        "pragma_page_count", "pragma_freelist_count", "pragma_stats"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

/* SQLite's authorizer callback: the policy above, per action. */
static int authorize(void *arg, int action, const char *a1, const char *a2, const char *dbname,
                     const char *trigger)
{
    (void)dbname;
    (void)trigger;
    bool write = arg != NULL;
    if (pol.internal > 0)
        return SQLITE_OK;
    switch (action) {
    case SQLITE_PRAGMA: {
        int r = policy_pragma_rule(a1, a2 != NULL);
        if (r == POLICY_DENY) {
            pol.seen |= POLICY_SEEN_DENIED_PRAGMA;
            return SQLITE_DENY;
        }
        if (r == POLICY_STATE)
            pol.seen |= POLICY_SEEN_STATE;
        return SQLITE_OK;
    }
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
        pol.seen |= POLICY_SEEN_STATE;
        return SQLITE_OK;
    case SQLITE_READ:
        /* What differs between nodes must not flow into the database:
         * file paths, this connection's prepared statements and data
         * version, the file's physical layout. */
        if (write && a1 && nodeLocalTable(a1)) {
            pol.seen |= POLICY_SEEN_DENIED_FUNCTION;
            return SQLITE_DENY;
        }
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        /* Debian's SQLite enables fts3_tokenizer(name, pointer): a pointer
         * from the client, called. Refused everywhere. */
        if (a2 && strcasecmp(a2, "fts3_tokenizer") == 0) {
            pol.seen |= POLICY_SEEN_DENIED_FUNCTION;
            return SQLITE_DENY;
        }
        if (write && a2 && strcasecmp(a2, "total_changes") == 0) {
            pol.seen |= POLICY_SEEN_DENIED_FUNCTION;
            return SQLITE_DENY;
        }
        if (write && a2 && strcasecmp(a2, "changes") == 0)
            pol.seen |= POLICY_SEEN_CHANGES;
        return SQLITE_OK;
    default:
        return SQLITE_OK;
    }
}

int policy_install(sqlite3 *c, bool write, sqlite3_int64 max_length)
{
    static int tag;
    int on = 1, off = 0;
    /* No edits of the schema's text, of shadow tables or of raw pages, and
     * functions in the schema (views, triggers, defaults) must be innocuous:
     * a loaded image cannot make a node run what its SQL does not say. */
    if (sqlite3_db_config(c, SQLITE_DBCONFIG_DEFENSIVE, on, NULL) != SQLITE_OK ||
        sqlite3_db_config(c, SQLITE_DBCONFIG_TRUSTED_SCHEMA, off, NULL) != SQLITE_OK ||
        sqlite3_db_config(c, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, off, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    /* A single value or SQL text no larger than what a request may carry:
     * zeroblob(1e9) fails the same way everywhere ("string or blob too big")
     * instead of allocating a gigabyte on every node. Sorts stay on this
     * thread (no worker threads), as the step budget expects. */
    if (max_length > 0) {
        sqlite3_limit(c, SQLITE_LIMIT_LENGTH, (int)(max_length > 0x7fffffff ? 0x7fffffff : max_length));
        sqlite3_limit(c, SQLITE_LIMIT_SQL_LENGTH, (int)(max_length > 0x7fffffff ? 0x7fffffff : max_length));
    }
    sqlite3_limit(c, SQLITE_LIMIT_WORKER_THREADS, 0);
    return sqlite3_set_authorizer(c, authorize, write ? (void *)&tag : NULL);
}

const char *policy_denied_message(unsigned seen)
{
    if (seen & POLICY_SEEN_DENIED_PRAGMA)
        return "disallowed pragma";
    return NULL; /* SQLite says which function it refused */
}

/* ---- failures: an answer, or this node's own ----------------------------------
 *
 * A statement's failure is an answer to the client when every replica gets
 * it the same way from the same entry: SQL errors (syntax, constraints, a
 * refused statement, "database is locked" or an I/O error on a file the
 * request attached,
 * SQLITE_FULL from PRAGMA max_page_count, string or blob too big, the step
 * budget's interrupt, out of memory in a runaway statement). It is this
 * node's own when it comes from this node's disk or neighbours: an I/O
 * error, the main database locked by another process (busy with nothing
 * attached), and disk full, out of memory or no file while recording the
 * entry's index. Then the entry is rolled back and not recorded, and the
 * node stops: other replicas applied it, and a restart applies it again.
 * With a file attached by the request, busy and I/O errors are answers:
 * they come from that file (the same one on every node, as the request
 * named it), since our own database is never locked by another process
 * while the node runs. */
bool policy_node_local(int rc, bool recording, bool attached)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_IOERR:
        return !attached;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
        return recording;
    default:
        return false;
    }
}
