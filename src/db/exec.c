/*
 * exec.c: running a command's statements.
 *
 * Writes run on the write connection (the Raft thread), one log entry at a
 * time: in one transaction of ours with a savepoint per statement when they
 * can, else statement by statement under the crash guard (runGuarded). Each
 * entry starts from the same connection state on every replica: connection
 * state a request changes (setting pragmas, ATTACH, temp objects; see
 * policy.c) is dropped after its entry, last_insert_rowid() starts at 0,
 * and a budget of VM steps, counted by a progress handler and so the same on
 * every node, bounds how long the entry may hold the Raft thread.
 *
 * Reads run on pooled read-only connections with a wall-clock deadline
 * (?db_timeout). db_check() is the leader's look at a request before it is
 * proposed: disallowed pragmas, and whether it only reads.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "db/db.h"
#include "db/internal.h"
#include "util/log.h"
#include "util/os.h"

/* VM steps between two calls of the write connection's progress handler:
 * the budget's grain. */
#define STEP_GRAIN 1000

/* Why an interrupt happened, for the statement's error: this thread runs
 * either reads ("query timeout", rqlite's text) or entries. */
static __thread const char *interruptMsg;

const char *dbErrmsg(sqlite3 *c)
{
    if (sqlite3_errcode(c) == SQLITE_INTERRUPT && interruptMsg)
        return interruptMsg;
    return sqlite3_errmsg(c);
}

/* ---- binding ---------------------------------------------------------------- */

/* Text and blobs are bound without a copy: the command outlives the statement run. */
static int bindOne(sqlite3_stmt *st, int idx, const cmd_param *p)
{
    switch (p->type) {
    case CMD_INT:
        return sqlite3_bind_int64(st, idx, p->i);
    case CMD_REAL:
        return sqlite3_bind_double(st, idx, p->r);
    case CMD_TEXT:
        return sqlite3_bind_text64(st, idx, p->n ? p->p : "", p->n, SQLITE_STATIC, SQLITE_UTF8);
    case CMD_BLOB:
        return sqlite3_bind_blob64(st, idx, p->n ? p->p : "", p->n, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, idx);
    }
}

/* Bind s's parameters to st: positional ones in order (extra ones ignored,
 * as Go's driver does), named ones to :name, @name and $name. The values
 * stay in the command's bytes, which outlive the statement's run. */
static int bindParams(sqlite3_stmt *st, const cmd_stmt *s, char **err)
{
    cmd_param_iter it;
    cmd_param p;
    int pos = 1, rc;
    cmd_param_iter_init(&it, s);
    while ((rc = cmd_param_next(&it, &p)) == 1) {
        if (p.name) {
            static const char prefixes[] = ":@$";
            char small[256];
            char *name = p.name_len + 2 <= sizeof small ? small : malloc(p.name_len + 2);
            for (int k = 0; k < 3; k++) {
                name[0] = prefixes[k];
                memcpy(name + 1, p.name, p.name_len + 1);
                int idx = sqlite3_bind_parameter_index(st, name);
                if (idx > 0 && bindOne(st, idx, &p) != SQLITE_OK) {
                    *err = strdup(sqlite3_errmsg(sqlite3_db_handle(st)));
                    if (name != small)
                        free(name);
                    return -1;
                }
            }
            if (name != small)
                free(name);
            continue;
        }
        if (pos > sqlite3_bind_parameter_count(st)) {
            pos++;
            continue;
        }
        if (bindOne(st, pos++, &p) != SQLITE_OK) {
            *err = strdup(sqlite3_errmsg(sqlite3_db_handle(st)));
            return -1;
        }
    }
    if (rc < 0) { /* cannot happen: the command was validated */
        *err = strdup("malformed parameters");
        return -1;
    }
    return 0;
}

/* ---- prepared statements kept by a connection (the write one's, each read one's) */

/* Bulk requests repeat one statement: a linear probe of 32 beats hashing here. */
static sqlite3_stmt *cacheGet(stmtCache *k, const char *sql, size_t n)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        if (k->e[i].st && k->e[i].len == n && memcmp(k->e[i].sql, sql, n) == 0) {
            k->e[i].use = ++k->clock;
            return k->e[i].st;
        }
    }
    return NULL;
}

/* Keep st (prepared from sql) in place of the least recently used one: the
 * cache owns it now. */
static void cachePut(stmtCache *k, const char *sql, size_t n, sqlite3_stmt *st)
{
    int v = 0;
    for (int i = 1; i < STMT_CACHE; i++)
        if (k->e[i].use < k->e[v].use)
            v = i;
    sqlite3_finalize(k->e[v].st);
    free(k->e[v].sql);
    k->e[v].sql = strndup(sql, n);
    k->e[v].len = n;
    k->e[v].st = st;
    k->e[v].use = ++k->clock;
}

void dbCacheClear(stmtCache *k)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(k->e[i].st);
        free(k->e[i].sql);
    }
    for (int i = 0; i < SYS_N; i++)
        sqlite3_finalize(k->sys[i]);
    memset(k, 0, sizeof *k);
}

/* Run one of our own statements (SYS_*), prepared on first use. Returns 0
 * or -1, as dbExecSimple. */
static int execSys(db *d, int which)
{
    static const char *const text[SYS_N] = {"SAVEPOINT s", "RELEASE s", "ROLLBACK TO s"};
    sqlite3_stmt **st = &d->cache.sys[which];
    policy_internal(1); /* a re-prepare inside step is ours too */
    int rc = SQLITE_OK;
    if (*st == NULL)
        rc = sqlite3_prepare_v3(d->w, text[which], -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(*st);
        sqlite3_reset(*st);
    }
    policy_internal(0);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A cached statement is reset for its next use; any other is finalized. */
static void stmtRelease(sqlite3_stmt *st, bool cached)
{
    if (cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
}

/* ---- one statement ------------------------------------------------------------ */

/* How statements run: on the write connection (d set: its cache, budget and
 * entry bookkeeping) or on a read connection (ro). */
typedef struct runCtx {
    sqlite3 *c;
    db *d;          /* write connection's db, NULL for reads */
    stmtCache *cache; /* c's kept statements (NULL: none) */
    bool ro;        /* refuse writes (/db/query) */
    unsigned flags;
    buf *out;       /* NULL: run without encoding results (followers) */
    unsigned seen;  /* policy decisions seen while preparing (POLICY_SEEN_*) */
    size_t max_result; /* bytes of one statement's rows, 0: any */
    uint64_t n_failed; /* statements that failed (db's counters) */
    uint64_t n_rows;   /* write path: statements that returned rows */
} runCtx;

/* Empty statements ("", ";") produce no result, as in rqlite. */
static bool blankSql(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s) && *s != ';')
            return false;
    return true;
}

/* Results are written in place: a statement's partial output is cut back. */
static void truncateTo(buf *out, size_t n)
{
    if (out) {
        out->len = n;
        if (out->data)
            out->data[n] = '\0';
    }
}

/* The budget's progress handler: interrupt once the entry has used up its
 * steps. Counts calls, not time, so every replica stops at the same step. */
static int budgetCheck(void *arg)
{
    db *d = arg;
    if (d->steps_left == 0) {
        d->steps_out = true;
        return 1;
    }
    d->steps_left--;
    return 0;
}

/* Count steps only while statements run: preparing one may load the schema
 * with statements of SQLite's own, and whether it must differs by node. */
static void budgetOn(runCtx *x, bool on)
{
    if (x->d && x->d->entry_steps)
        sqlite3_progress_handler(x->c, on ? STEP_GRAIN : 0, on ? budgetCheck : NULL, on ? x->d : NULL);
}

/* changes() in an entry that has changed no rows yet would read what an
 * earlier entry left on this connection, and a replica that restarted has
 * 0 there: make it 0 (a statement that changes no rows on the connection's
 * own temp table; dropping that table is a change of state, after which
 * the connection is new). */
static void zeroChanges(runCtx *x)
{
    if (sqlite3_total_changes64(x->c) == x->d->entry_total && sqlite3_changes(x->c) != 0 &&
        dbExecSimple(x->c, "DELETE FROM temp." DB_NOCHANGE_TABLE, NULL) != 0)
        rq_logl(RQ_LOG_WARN, "db", "cannot reset changes(): %s", sqlite3_errmsg(x->c));
}

/* Prepare the next statement of sql at *tail (kept by its connection,
 * x->cache, when it stands alone in its string). NULL st: only whitespace
 * or a comment was left. Returns SQLite's code. */
static int prepareNext(runCtx *x, const cmd_stmt *s, const char **tail, sqlite3_stmt **st, bool *cached)
{
    stmtCache *cache = x->cache;
    bool cacheable = cache && *tail == s->sql;
    *cached = false;
    *st = NULL;
    if (cacheable && (*st = cacheGet(cache, s->sql, s->sql_len)) != NULL) {
        *cached = true;
        *tail = s->sql + s->sql_len;
        return SQLITE_OK;
    }
    const char *next = NULL;
    x->seen |= policy_take(); /* re-prepares inside a step decide too */
    /* The length counts the terminator: SQLite then need not copy the text. */
    int rc = sqlite3_prepare_v3(x->c, *tail, (int)(s->sql + s->sql_len + 1 - *tail),
                                cacheable ? SQLITE_PREPARE_PERSISTENT : 0, st, &next);
    unsigned seen = policy_take();
    x->seen |= seen;
    if (rc != SQLITE_OK)
        return rc;
    *tail = next;
    if (x->d && (seen & POLICY_SEEN_CHANGES))
        zeroChanges(x);
    /* A statement that changes connection state or reads changes() is not
     * kept: the policy sees it only when it is prepared. */
    if (*st && cacheable && blankSql(next) && !(seen & (POLICY_SEEN_STATE | POLICY_SEEN_CHANGES))) {
        cachePut(cache, s->sql, s->sql_len, *st);
        *cached = true;
    }
    return SQLITE_OK;
}

/* A statement's failure in place of its result. */
static void putFailure(runCtx *x, size_t mark, const char *msg, double t0)
{
    if (x->out) {
        truncateTo(x->out, mark);
        dbPutError(x->out, msg, x->flags, t0);
    }
}

/* Step st to the end and write its result. Returns false on failure. */
static bool stepOne(runCtx *x, sqlite3_stmt *st, double t0)
{
    bool ok = true;
    /* SQLite calls the progress handler at a phase set by the steps this
     * statement object ran before: a cached statement must start from 0,
     * as a fresh one (on a replica that just restarted) does. */
    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
    budgetOn(x, true);
    if (sqlite3_column_count(st) > 0 && (x->ro || (x->flags & DB_READ_ROWS) || !sqlite3_stmt_readonly(st))) {
        if (x->d)
            x->n_rows++;
        char *qerr = NULL;
        buf scratch = BUF_INIT;
        if (dbEncodeRows(st, x->flags, x->max_result, x->out ? x->out : &scratch, t0, &qerr) != 0) {
            if (x->out)
                dbPutError(x->out, qerr, x->flags, t0);
            ok = false;
        }
        free(qerr);
        buf_free(&scratch);
    } else {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
        if (rc != SQLITE_DONE) {
            if (x->out)
                dbPutError(x->out, dbErrmsg(x->c), x->flags, t0);
            ok = false;
        } else if (x->out) {
            sqlite3_int64 id = sqlite3_last_insert_rowid(x->c);
            dbPutExecResult(x->out, id ? id : (x->d ? x->d->carry_id : 0), sqlite3_changes(x->c), x->flags, t0);
        }
    }
    budgetOn(x, false);
    return ok;
}

/* Run one statement of a command (its SQL may hold several; only the last
 * reports). Writes one result unless the SQL is empty (*wrote), and returns
 * false if it failed. sp: inside our transaction, a string of several
 * statements first opens a savepoint (*opened), so that a failure undoes
 * the ones before it too. A single statement needs none: SQLite undoes a
 * failed statement itself, keeping what OR FAIL keeps, as rqlite's
 * statement-by-statement commits do; a failure that ends the whole
 * transaction is seen by the caller. A write with RETURNING opens one too:
 * its rows are written before they are read, and our own limits may stop
 * the reading. */
static bool runOne(runCtx *x, const cmd_stmt *s, bool sp, bool *opened, bool *wrote)
{
    *wrote = false;
    *opened = false;
    if (blankSql(s->sql))
        return true;
    double t0 = rq_now_sec();
    const char *tail = s->sql;
    size_t mark = x->out ? x->out->len : 0;
    bool ok = true;
    while (ok && *tail) {
        sqlite3_stmt *st;
        bool cached;
        if (prepareNext(x, s, &tail, &st, &cached) != SQLITE_OK) {
            const char *m = sqlite3_errcode(x->c) == SQLITE_AUTH ? policy_denied_message(x->seen) : NULL;
            putFailure(x, mark, m ? m : dbErrmsg(x->c), t0);
            *wrote = true;
            return false;
        }
        if (st == NULL)
            continue; /* whitespace or comment */
        if (x->ro && !sqlite3_stmt_readonly(st)) {
            stmtRelease(st, cached);
            putFailure(x, mark, "attempt to change database via query operation", t0);
            *wrote = true;
            return false;
        }
        char *berr = NULL;
        if (bindParams(st, s, &berr) != 0) {
            stmtRelease(st, cached);
            putFailure(x, mark, berr, t0);
            free(berr);
            *wrote = true;
            return false;
        }
        truncateTo(x->out, mark); /* only the last statement of the string reports */
        if (sp && !*opened && (!blankSql(tail) || (sqlite3_column_count(st) > 0 && !sqlite3_stmt_readonly(st)))) {
            execSys(x->d, SYS_SAVEPOINT);
            *opened = true;
        }
        size_t cdc_mark = dbCaptureMark(x->d);
        ok = stepOne(x, st, t0);
        dbCaptureStatementDone(x->d, st, ok, cdc_mark);
        stmtRelease(st, cached);
        *wrote = true;
    }
    return ok;
}

/* ---- lists of statements ---------------------------------------------------- */

/* Is a database other than main and temp attached to c? */
static bool attached(sqlite3 *c)
{
    return sqlite3_db_name(c, 2) != NULL;
}

/* Run every statement of v, separating results with commas. sp: each
 * statement succeeds or fails on its own inside our transaction (runOne). Stops at the first
 * failure when tx, when a failure ended the transaction itself (*lost), and,
 * if fault is given, at a failure of this node's own (policy_node_local; its
 * code in *fault). Returns whether any statement failed. */
static bool runList(runCtx *x, const cmd_view *v, bool sp, bool tx, bool *lost, int *fault)
{
    cmd_iter it;
    cmd_stmt s;
    bool first = true, failed = false;
    *lost = false;
    cmd_iter_init(&it, v);
    while (cmd_next(&it, &s) == 1) {
        if (x->out && !first)
            buf_putc(x->out, ',');
        size_t before = x->out ? x->out->len : 0;
        bool wrote, opened;
        size_t cdc_mark = dbCaptureMark(x->d);
        bool ok = runOne(x, &s, sp, &opened, &wrote);
        if (!ok && fault && policy_node_local(sqlite3_errcode(x->c), false, attached(x->c))) {
            *fault = sqlite3_errcode(x->c);
            return true;
        }
        if (sp && !ok && sqlite3_get_autocommit(x->c)) {
            *lost = true; /* an ON CONFLICT ROLLBACK or an interrupt undid the transaction */
            return true;
        }
        if (opened && !ok) {
            dbCaptureTruncate(x->d, cdc_mark);
            execSys(x->d, SYS_ROLLBACK_TO);
        }
        if (opened)
            execSys(x->d, SYS_RELEASE);
        if (!wrote && x->out && !first) /* nothing written: drop the comma */
            truncateTo(x->out, before - 1);
        if (wrote)
            first = false;
        if (!ok) {
            failed = true;
            x->n_failed++;
            if (tx)
                break;
        }
    }
    return failed;
}

/* Statement by statement in autocommit mode (reads, and entries that run
 * their own transactions); ?transaction wraps them in one. */
static int runAll(runCtx *x, const cmd_view *v)
{
    bool tx = (x->flags & DB_TX) && !x->ro;
    if (tx)
        dbExecSimple(x->c, "BEGIN", NULL);
    bool lost;
    int fault = 0;
    bool failed = runList(x, v, false, tx, &lost, x->d ? &fault : NULL);
    /* A statement that failed inside the client's own BEGIN would leave the
     * shared write connection in a transaction for every later request. */
    if (!tx && !x->ro && failed && sqlite3_get_autocommit(x->c) == 0)
        dbExecSimple(x->c, "ROLLBACK", NULL);
    if (tx && (failed || sqlite3_get_autocommit(x->c) == 0))
        dbExecSimple(x->c, failed ? "ROLLBACK" : "COMMIT", NULL);
    return fault;
}

/* The first keyword of each statement in sql (split on ';' outside
 * literals, identifiers and comments) is passed to fn; stops when fn
 * returns true, and returns whether it did. */
static bool anyStatementStarts(const char *sql, bool (*fn)(const char *w, size_t n))
{
    const char *p = sql;
    bool at_start = true;
    while (p && *p) {
        if (isspace((unsigned char)*p)) {
            p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/'))
                p++;
            if (*p)
                p += 2;
        } else if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
            char close = *p == '[' ? ']' : *p;
            p++;
            while (*p && *p != close)
                p++;
            if (*p)
                p++;
            at_start = false;
        } else if (*p == ';') {
            p++;
            at_start = true;
        } else if (at_start && isalpha((unsigned char)*p)) {
            const char *w = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            if (fn(w, (size_t)(p - w)))
                return true;
            at_start = false;
        } else {
            p++;
            at_start = false;
        }
    }
    return false;
}

/* Statements that manage transactions or connections, or cannot run
 * inside a transaction (or would behave differently there). */
static bool controlWord(const char *w, size_t n)
{
    static const char *words[] = {"begin", "commit", "end", "rollback", "savepoint", "release",
                                  "vacuum", "pragma", "attach", "detach"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (strlen(words[k]) == n && strncasecmp(w, words[k], n) == 0)
            return true;
    return false;
}

/* Can every statement run inside one transaction of ours? (A trigger body's
 * END counts as control: such batches take the guarded path, still exact.) */
static bool batchable(const cmd_view *v)
{
    cmd_iter it;
    cmd_stmt s;
    cmd_iter_init(&it, v);
    while (cmd_next(&it, &s) == 1)
        if (anyStatementStarts(s.sql, controlWord))
            return false;
    return true;
}

/* ---- entries ------------------------------------------------------------------- */

void db_set_entropy(db *d, int64_t unix_ms, uint64_t seed)
{
    d->entry_ms = unix_ms;
    d->rng = seed;
}

void db_set_entry_index(db *d, uint64_t index) { d->entry_index = index; }

void db_set_step_budget(db *d, uint64_t steps) { d->entry_steps = steps; }

/* A fresh budget for (a run of) the entry. */
static void budgetReset(db *d)
{
    d->steps_left = d->entry_steps ? (d->entry_steps + STEP_GRAIN - 1) / STEP_GRAIN : 0;
    d->steps_out = false;
}

/* What the client left open when its statements end: its transaction is
 * committed (a failure of it is the entry's answer on every node: its
 * changes are gone everywhere) and its attached files detached, so that
 * recording the index touches our database alone. Returns a failure of
 * this node's own, or 0. */
static int closeClientState(db *d)
{
    sqlite3 *c = d->w;
    if (!sqlite3_get_autocommit(c) && dbExecSimple(c, "COMMIT", NULL) != 0) {
        int rc = sqlite3_errcode(c);
        if (policy_node_local(rc, false, attached(c)))
            return rc;
        rq_logl(RQ_LOG_WARN, "db", "the client's open transaction failed to commit: %s (rolled back)",
                sqlite3_errmsg(c));
        dbExecSimple(c, "ROLLBACK", NULL);
    }
    for (int i = 64; i >= 2; i--) {
        const char *name = sqlite3_db_name(c, i);
        if (name == NULL)
            continue;
        char *sql = sqlite3_mprintf("DETACH %Q", name);
        dbExecSimple(c, sql, NULL);
        sqlite3_free(sql);
    }
    return 0;
}

/* An entry that cannot run inside one transaction of ours (its own
 * BEGIN/COMMIT, VACUUM, PRAGMA...). The WAL is checkpointed away first, and
 * until the index is recorded a marker file says so: after a crash in
 * between, db_open drops the WAL and the file is back at the previous
 * entry (nothing checkpoints meanwhile: only dbCheckpoint does, on this
 * thread). */
static int runGuarded(runCtx *x, const cmd_view *v, uint64_t index)
{
    db *d = x->d;
    bool guarded = false;
    if (index && d->marker) {
        /* Readers may hold the WAL: wait for them only briefly, this is the
         * Raft thread. The file is synced: the marker drops what follows. */
        if (dbCheckpoint(d, SQLITE_CHECKPOINT_TRUNCATE, 200) == 0) {
            int fd = open(d->marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                char text[32];
                int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)index);
                guarded = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
                close(fd);
                dbSyncDir(d->marker);
            }
        }
        if (!guarded)
            d->unguarded++;
    }
    budgetReset(d);
    int fault = runAll(x, v);
    if (!fault)
        fault = closeClientState(d);
    if (!fault && index)
        fault = dbCommitWithIndex(d, index);
    if (fault) {
        /* The statements' own commits are in the WAL: with the marker left,
         * a restart drops them (db_open), and the entry runs again whole. */
        rq_logl(RQ_LOG_WARN, "db", "the entry at index %llu failed on this node: %s", (unsigned long long)index,
                sqlite3_errstr(fault));
        if (!guarded)
            rq_log("db", "the entry at index %llu ran without the guard: a restart may apply some of it twice",
                   (unsigned long long)index);
        return fault;
    }
    if (guarded)
        unlink(d->marker);
    return 0;
}

/* The whole entry in one transaction of ours with its index. Without
 * ?transaction each statement still succeeds or fails on its own (a
 * savepoint each). */
static int runBatch(runCtx *x, const cmd_view *v, uint64_t index)
{
    db *d = x->d;
    sqlite3 *c = d->w;
    bool tx = x->flags & DB_TX;
    bool sp = !tx && v->n > 1;
    size_t start = x->out ? x->out->len : 0;
    dbExecSimple(c, "BEGIN", NULL);
    bool lost;
    int fault = 0;
    budgetReset(d);
    bool failed = runList(x, v, sp, tx, &lost, index ? &fault : NULL);
    if (fault) {
        rq_logl(RQ_LOG_WARN, "db", "the entry at index %llu failed on this node: %s", (unsigned long long)index,
                sqlite3_errstr(fault));
        if (!sqlite3_get_autocommit(c))
            dbExecSimple(c, "ROLLBACK", NULL);
        truncateTo(x->out, start);
    } else if (lost) {
        /* Nothing of the batch remains: start over statement by statement,
         * with the budget afresh. (A single statement or a ?transaction
         * that fails that way has its answer; the index commit below is
         * then harmless.) */
        truncateTo(x->out, start);
        fault = runGuarded(x, v, index);
    } else if (tx && failed) {
        /* Nothing of it stays, but the entry counts as applied: a restart
         * does not run it again. */
        dbExecSimple(c, "ROLLBACK", NULL);
        if (index)
            fault = dbCommitWithIndex(d, index);
    } else if (index) {
        fault = dbCommitWithIndex(d, index);
    } else if (dbExecSimple(c, "COMMIT", NULL) != 0) {
        dbExecSimple(c, "ROLLBACK", NULL);
    }
    return fault;
}

int db_execute(db *d, const cmd_view *v, unsigned flags, buf *out)
{
    sqlite3 *c = d->w;
    uint64_t index = d->entry_index;
    d->entry_index = 0;
    runCtx x = {.c = c, .d = d, .cache = &d->cache, .flags = flags, .out = out, .max_result = d->opts.max_result};
    determinism_freeze(d->entry_ms);
    interruptMsg = "execute timeout";
    /* last_insert_rowid() starts from 0 in every entry, as on a replica
     * that just restarted; the id rqlite reports for statements that
     * insert nothing still carries over (carry_id). */
    sqlite3_int64 last = sqlite3_last_insert_rowid(c);
    if (last)
        d->carry_id = last;
    sqlite3_set_last_insert_rowid(c, 0);
    d->entry_total = sqlite3_total_changes64(c);
    dbCaptureBegin(d);
    int fault = (!sqlite3_get_autocommit(c) || !batchable(v)) ? runGuarded(&x, v, index) : runBatch(&x, v, index);
    x.seen |= policy_take();
    /* As rqlite counts: statements, and requests that are a transaction;
     * /db/request's statements (DB_READ_ROWS) as requests. */
    bool req = flags & DB_READ_ROWS;
    dbStat(d, req ? DBSTAT_REQUESTS : DBSTAT_EXECUTIONS, v->n);
    if (flags & DB_TX)
        dbStat(d, req ? DBSTAT_REQUEST_TX : DBSTAT_EXECUTE_TX, 1);
    dbStat(d, DBSTAT_EXECUTION_ERRORS, x.n_failed);
    dbStat(d, DBSTAT_FORCE_QUERIES, x.n_rows);
    if (!fault && d->steps_out)
        rq_log("db", "the entry at index %llu used up its budget of %llu VM steps", (unsigned long long)index,
               (unsigned long long)d->entry_steps);
    /* The next entry starts from a fresh connection if this one changed
     * its state (see policy.c). */
    if (!fault && ((x.seen & POLICY_SEEN_STATE) || attached(c))) {
        sqlite3_int64 id = sqlite3_last_insert_rowid(c);
        if (id)
            d->carry_id = id;
        if (dbReopenWriter(d) != 0)
            rq_logl(RQ_LOG_WARN, "db", "cannot reopen the write connection after a change of its state");
    }
    d->entry_steps = 0;
    interruptMsg = NULL;
    determinism_freeze(0);
    return fault;
}

/* ---- reads ------------------------------------------------------------------------ */

/* Progress handler of a read with a deadline (seconds, rq_now_sec). */
static int pastDeadline(void *arg)
{
    return rq_now_sec() > *(const double *)arg;
}

int db_query(db *d, const cmd_view *v, unsigned flags, uint64_t timeout_us, buf *out)
{
    sqlite3 *c = dbRoGet(d);
    if (c == NULL) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                buf_putc(out, ',');
            dbPutError(out, "unable to open database connection", 0, 0);
        }
        return DB_CHECK_OK;
    }
    double deadline = rq_now_sec() + (double)timeout_us / 1e6;
    /* A deadline under the handler's grain is checked every few steps. */
    if (timeout_us > 0)
        sqlite3_progress_handler(c, timeout_us < 1000 ? 1 : 1000, pastDeadline, &deadline);
    interruptMsg = "query timeout";
    runCtx x = {.c = c,
                .cache = dbRoCache(d, c),
                .ro = true,
                .flags = flags & ~DB_TX,
                .out = out,
                .max_result = d->opts.max_result};
    runAll(&x, v);
    x.seen |= policy_take();
    dbStat(d, DBSTAT_QUERIES, v->n);
    if (flags & DB_TX)
        dbStat(d, DBSTAT_QUERY_TX, 1);
    dbStat(d, DBSTAT_QUERY_ERRORS, x.n_failed);
    interruptMsg = NULL;
    if (timeout_us > 0)
        sqlite3_progress_handler(c, 0, NULL, NULL);
    dbRoPut(d, c, (x.seen & POLICY_SEEN_STATE) != 0);
    return x.seen & POLICY_SEEN_DENIED_PRAGMA ? DB_CHECK_DISALLOWED_PRAGMA : DB_CHECK_OK;
}

int db_check(db *d, const cmd_view *v, bool *readonly)
{
    *readonly = true;
    sqlite3 *c = dbRoGet(d);
    if (c == NULL) {
        *readonly = false;
        return DB_CHECK_OK;
    }
    stmtCache *k = dbRoCache(d, c);
    int verdict = DB_CHECK_OK;
    unsigned seen = 0;
    cmd_iter it;
    cmd_stmt s;
    const char *prev = NULL;
    size_t prev_len = 0;
    cmd_iter_init(&it, v);
    while (verdict == DB_CHECK_OK && cmd_next(&it, &s) == 1) {
        /* Bulk requests repeat one statement: look at it once. */
        if (prev && prev_len == s.sql_len && memcmp(prev, s.sql, s.sql_len) == 0)
            continue;
        prev = s.sql;
        prev_len = s.sql_len;
        const char *tail = s.sql;
        while (*tail) {
            sqlite3_stmt *st = tail == s.sql && k ? cacheGet(k, s.sql, s.sql_len) : NULL;
            if (st) { /* prepared before, alone in its string, the policy silent */
                if (!sqlite3_stmt_readonly(st))
                    *readonly = false;
                break;
            }
            const char *next = NULL;
            policy_take();
            int rc = sqlite3_prepare_v2(c, tail, (int)(s.sql + s.sql_len + 1 - tail), &st, &next);
            unsigned now = policy_take();
            seen |= now;
            if (now & POLICY_SEEN_DENIED_PRAGMA)
                verdict = DB_CHECK_DISALLOWED_PRAGMA;
            if (rc != SQLITE_OK) {
                /* Not preparable here (it may use a table the request
                 * itself creates): a write, decided when it runs. */
                *readonly = false;
                break;
            }
            if (st && !sqlite3_stmt_readonly(st))
                *readonly = false;
            if (st && k && tail == s.sql && blankSql(next) && now == 0)
                cachePut(k, s.sql, s.sql_len, st); /* kept for the next check of it */
            else
                sqlite3_finalize(st);
            tail = next;
        }
    }
    /* Some pragmas take effect when they are prepared. */
    dbRoPut(d, c, (seen & POLICY_SEEN_STATE) != 0);
    return verdict;
}
