/*
 * capture.c: change data capture on the write connection (db_cdc_enable).
 *
 * SQLite's pre-update hook reports each row change before it is made; its
 * commit and rollback hooks report the end of each transaction. Nothing
 * reports a statement or a savepoint that was undone, so the events of an
 * entry are kept in order with marks (event counts):
 *   - committed: the events of transactions that committed (the commit
 *     hook); a rollback (its hook) drops everything after it;
 *   - a statement that failed inside a transaction and left changes() at 0
 *     was rolled back by SQLite (ABORT, the default): its events go; one
 *     that failed with changes() > 0 (ON CONFLICT FAIL) kept its rows, and
 *     its events stay;
 *   - our own per-statement savepoints (exec.c runList) and the client's
 *     SAVEPOINT / RELEASE / ROLLBACK TO (tracked from their SQL) cut the
 *     events back on ROLLBACK TO.
 * The hook may not run SQL on the connection, so it keeps each value as
 * JSON text without its column name; once the statement is over the names
 * are read on the same connection (PRAGMA table_xinfo, which sees the
 * entry's own schema changes) and the events become rqlite's JSON
 * (cdc/json/marshal.go: keys sorted, as Go marshals a map).
 *
 * The entry's events go to the sink in dbCommitWithIndex, just before the
 * COMMIT that records its index: were it the other way round, a crash in
 * between would leave an entry applied whose events replay never makes.
 */
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/internal.h"
#include "util/log.h"
#include "util/os.h"

/* Weak: a SQLite built without the hook still runs the node, and
 * db_cdc_enable says why CDC cannot be had. */
extern __typeof__(sqlite3_preupdate_hook) sqlite3_preupdate_hook __attribute__((weak));
extern __typeof__(sqlite3_preupdate_old) sqlite3_preupdate_old __attribute__((weak));
extern __typeof__(sqlite3_preupdate_new) sqlite3_preupdate_new __attribute__((weak));
extern __typeof__(sqlite3_preupdate_count) sqlite3_preupdate_count __attribute__((weak));

typedef struct capEvent {
    int op;                     /* SQLITE_INSERT, _UPDATE, _DELETE */
    int table;                  /* in cap->tables */
    sqlite3_int64 old_id, new_id;
    int ncol;
    bool has_old, has_new;      /* values captured (not with row_ids_only) */
    size_t vals;                /* in cap->vals: old values then new, each a u32 length and JSON */
    size_t json;                /* in cap->out, once finalized */
} capEvent;

typedef struct capTable {
    char *schema, *name;
    bool want;
} capTable;

typedef struct capSavepoint {
    char *name;
    size_t mark;
} capSavepoint;

struct dbCapture {
    db_cdc_sink sink;
    capEvent *ev;
    size_t n, cap;
    size_t committed;           /* events of committed transactions */
    size_t finalized;           /* events whose JSON is in out */
    buf vals, out;
    capTable *tables;
    int n_tables;
    capSavepoint *sp;
    int n_sp, cap_sp;
    sqlite3_stmt *names;        /* the column-name query, prepared on names_conn */
    sqlite3 *names_conn;
};

static int tableFind(dbCapture *k, const char *schema, const char *name)
{
    for (int i = 0; i < k->n_tables; i++)
        if (strcmp(k->tables[i].name, name) == 0 && strcmp(k->tables[i].schema, schema) == 0)
            return i;
    k->tables = realloc(k->tables, (size_t)(k->n_tables + 1) * sizeof *k->tables);
    capTable *t = &k->tables[k->n_tables];
    t->schema = strdup(schema);
    t->name = strdup(name);
    t->want = k->sink.want ? k->sink.want(k->sink.arg, name) : true;
    return k->n_tables++;
}

/* One value as Go's encoding/json writes what go-sqlite3 gives: integers,
 * floats, text as strings, blobs in base64. Infinity, which Go refuses to
 * marshal (rqlite loses the whole batch), is written as null. */
static void putValue(buf *b, sqlite3_value *v)
{
    switch (v ? sqlite3_value_type(v) : SQLITE_NULL) {
    case SQLITE_INTEGER:
        buf_json_int(b, sqlite3_value_int64(v));
        break;
    case SQLITE_FLOAT: {
        double f = sqlite3_value_double(v);
        if (isinf(f) || isnan(f))
            buf_puts(b, "null");
        else
            buf_json_double(b, f);
        break;
    }
    case SQLITE_TEXT:
        buf_json_str(b, (const char *)sqlite3_value_text(v), (size_t)sqlite3_value_bytes(v));
        break;
    case SQLITE_BLOB:
        buf_json_base64(b, sqlite3_value_blob(v), (size_t)sqlite3_value_bytes(v));
        break;
    default:
        buf_puts(b, "null");
    }
}

static void putRow(dbCapture *k, sqlite3 *c, int ncol, bool old)
{
    for (int i = 0; i < ncol; i++) {
        sqlite3_value *v = NULL;
        if ((old ? sqlite3_preupdate_old(c, i, &v) : sqlite3_preupdate_new(c, i, &v)) != SQLITE_OK)
            v = NULL;
        size_t at = k->vals.len;
        uint32_t len = 0;
        buf_append(&k->vals, &len, sizeof len);
        putValue(&k->vals, v);
        len = (uint32_t)(k->vals.len - at - sizeof len);
        memcpy(k->vals.data + at, &len, sizeof len);
    }
}

static void preupdateHook(void *arg, sqlite3 *c, int op, const char *schema, const char *table,
                          sqlite3_int64 key1, sqlite3_int64 key2)
{
    dbCapture *k = ((db *)arg)->capture;
    dbStat(arg, DBSTAT_PREUPDATES, 1);
    int t = tableFind(k, schema, table);
    if (!k->tables[t].want)
        return;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->ev = realloc(k->ev, k->cap * sizeof *k->ev);
    }
    capEvent *e = &k->ev[k->n++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->table = t;
    if (op != SQLITE_INSERT)
        e->old_id = key1;
    if (op != SQLITE_DELETE)
        e->new_id = key2;
    e->vals = k->vals.len;
    if (k->sink.row_ids_only)
        return;
    e->ncol = sqlite3_preupdate_count(c);
    e->has_old = op != SQLITE_INSERT;
    e->has_new = op != SQLITE_DELETE;
    if (e->has_old)
        putRow(k, c, e->ncol, true);
    if (e->has_new)
        putRow(k, c, e->ncol, false);
}

/* Forget events from mark on (never those of committed transactions). */
static void truncateEvents(dbCapture *k, size_t mark)
{
    if (mark < k->committed)
        mark = k->committed;
    if (mark >= k->n)
        return;
    k->vals.len = k->ev[mark].vals;
    if (k->finalized > mark) {
        k->out.len = k->ev[mark].json;
        k->finalized = mark;
    }
    k->n = mark;
}

static void clearSavepoints(dbCapture *k)
{
    for (int i = 0; i < k->n_sp; i++)
        free(k->sp[i].name);
    k->n_sp = 0;
}

static int commitHook(void *arg)
{
    dbCapture *k = ((db *)arg)->capture;
    dbStat(arg, DBSTAT_COMMIT_HOOKS, 1);
    k->committed = k->n;
    clearSavepoints(k);
    return 0;
}

static void rollbackHook(void *arg)
{
    dbCapture *k = ((db *)arg)->capture;
    truncateEvents(k, k->committed);
    clearSavepoints(k);
}

void dbCaptureInstall(db *d, sqlite3 *c)
{
    if (d->capture == NULL)
        return;
    sqlite3_preupdate_hook(c, preupdateHook, d);
    sqlite3_commit_hook(c, commitHook, d);
    sqlite3_rollback_hook(c, rollbackHook, d);
}

int db_cdc_enable(db *d, const db_cdc_sink *sink, char **err)
{
    if (sqlite3_preupdate_hook == NULL || !sqlite3_compileoption_used("ENABLE_PREUPDATE_HOOK")) {
        *err = rq_sprintf("CDC needs SQLite's pre-update hook, and the SQLite library in use (%s) is built "
                          "without SQLITE_ENABLE_PREUPDATE_HOOK", sqlite3_libversion());
        return -1;
    }
    dbCapture *k = calloc(1, sizeof *k);
    k->sink = *sink;
    d->capture = k;
    dbCaptureInstall(d, d->w);
    return 0;
}

void dbCaptureConnClosing(db *d)
{
    dbCapture *k = d->capture;
    if (k == NULL)
        return;
    sqlite3_finalize(k->names);
    k->names = NULL;
    k->names_conn = NULL;
}

void dbCaptureFree(db *d)
{
    dbCapture *k = d->capture;
    if (k == NULL)
        return;
    dbCaptureConnClosing(d);
    for (int i = 0; i < k->n_tables; i++) {
        free(k->tables[i].schema);
        free(k->tables[i].name);
    }
    clearSavepoints(k);
    free(k->sp);
    free(k->tables);
    free(k->ev);
    buf_free(&k->vals);
    buf_free(&k->out);
    free(k);
    d->capture = NULL;
}

void dbCaptureBegin(db *d)
{
    dbCapture *k = d->capture;
    if (k == NULL)
        return;
    k->n = k->committed = k->finalized = 0;
    buf_reset(&k->vals);
    buf_reset(&k->out);
    clearSavepoints(k);
}

size_t dbCaptureMark(db *d) { return d && d->capture ? d->capture->n : 0; }

void dbCaptureTruncate(db *d, size_t mark)
{
    if (d && d->capture)
        truncateEvents(d->capture, mark);
}

/* ---- client savepoints, from the statement's SQL ---------------------------- */

/* Skip spaces and comments. */
static const char *skipBlank(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* The keyword w at *p (case-insensitive, whole word): advances past it. */
static bool keyword(const char **p, const char *w)
{
    const char *s = skipBlank(*p);
    size_t n = strlen(w);
    if (strncasecmp(s, w, n) != 0)
        return false;
    char c = s[n];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
        (unsigned char)c >= 0x80)
        return false;
    *p = s + n;
    return true;
}

/* An identifier, bare or quoted ("x", [x], `x`, 'x'), unquoted (malloc'd). */
static char *identifier(const char *p)
{
    p = skipBlank(p);
    buf b = BUF_INIT;
    char q = *p == '[' ? ']' : (*p == '"' || *p == '`' || *p == '\'') ? *p : 0;
    if (q) {
        for (p++; *p; p++) {
            if (*p == q && !(q != ']' && p[1] == q))
                break;
            if (*p == q)
                p++;
            buf_putc(&b, *p);
        }
    } else {
        while (*p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '$' || (unsigned char)*p >= 0x80))
            buf_putc(&b, *p++);
    }
    if (b.len == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

static int findSavepoint(dbCapture *k, const char *name)
{
    for (int i = k->n_sp - 1; i >= 0; i--)
        if (sqlite3_stricmp(k->sp[i].name, name) == 0)
            return i;
    return -1;
}

static void popSavepoints(dbCapture *k, int keep)
{
    while (k->n_sp > keep)
        free(k->sp[--k->n_sp].name);
}

/* A statement that succeeded: SAVEPOINT, RELEASE or ROLLBACK TO? */
static void trackSavepoint(dbCapture *k, const char *sql, size_t mark)
{
    const char *p = sql;
    if (p == NULL)
        return;
    if (keyword(&p, "savepoint")) {
        char *name = identifier(p);
        if (name == NULL)
            return;
        if (k->n_sp == k->cap_sp) {
            k->cap_sp = k->cap_sp ? k->cap_sp * 2 : 8;
            k->sp = realloc(k->sp, (size_t)k->cap_sp * sizeof *k->sp);
        }
        k->sp[k->n_sp].name = name;
        k->sp[k->n_sp++].mark = mark;
    } else if (keyword(&p, "release")) {
        keyword(&p, "savepoint");
        char *name = identifier(p);
        int i = name ? findSavepoint(k, name) : -1;
        if (i >= 0)
            popSavepoints(k, i);
        free(name);
    } else if (keyword(&p, "rollback")) {
        keyword(&p, "transaction");
        if (!keyword(&p, "to"))
            return; /* a whole rollback: its hook did it */
        keyword(&p, "savepoint");
        char *name = identifier(p);
        int i = name ? findSavepoint(k, name) : -1;
        if (i >= 0) {
            truncateEvents(k, k->sp[i].mark);
            popSavepoints(k, i + 1);
        }
        free(name);
    }
}

/* ---- events as JSON ------------------------------------------------------------ */

typedef struct colName {
    char *name;
    int col;
} colName;

static int byName(const void *a, const void *b)
{
    return strcmp(((const colName *)a)->name, ((const colName *)b)->name);
}

/* The table's columns as SELECT * shows them (hidden virtual-table
 * columns left out), sorted by name; -1 when they cannot be read. */
static int columnNames(dbCapture *k, sqlite3 *c, const capTable *t, colName **out)
{
    *out = NULL;
    if (k->names_conn != c) {
        /* Kept prepared: preparing it for every statement doubled the
         * capture's cost. SQLite re-prepares it after a schema change. */
        sqlite3_finalize(k->names);
        k->names = NULL;
        policy_internal(1);
        int rc = sqlite3_prepare_v3(c, "SELECT name FROM pragma_table_xinfo(?1, ?2) WHERE hidden <> 1", -1,
                                    SQLITE_PREPARE_PERSISTENT, &k->names, NULL);
        policy_internal(0);
        if (rc != SQLITE_OK)
            return -1;
        k->names_conn = c;
    }
    sqlite3_stmt *st = k->names;
    policy_internal(1); /* a re-prepare inside step is our own too */
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->schema, -1, SQLITE_STATIC);
    int n = 0, cap = 0;
    colName *v = NULL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = realloc(v, (size_t)cap * sizeof *v);
        }
        v[n].name = strdup((const char *)sqlite3_column_text(st, 0));
        v[n].col = n;
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    policy_internal(0);
    qsort(v, (size_t)n, sizeof *v, byName);
    *out = v;
    return n;
}

/* The JSON of value col of a row whose values start at p. */
static void rowValue(const char *p, int col, const char **json, uint32_t *len)
{
    uint32_t l;
    for (int i = 0;; i++) {
        memcpy(&l, p, sizeof l);
        if (i == col)
            break;
        p += sizeof l + l;
    }
    *json = p + sizeof l;
    *len = l;
}

static const char *skipRow(const char *p, int ncol)
{
    for (int i = 0; i < ncol; i++) {
        uint32_t l;
        memcpy(&l, p, sizeof l);
        p += sizeof l + l;
    }
    return p;
}

static void putRowObject(buf *out, const char *p, const colName *names, int n)
{
    buf_putc(out, '{');
    for (int i = 0; i < n; i++) {
        const char *v;
        uint32_t l;
        rowValue(p, names[i].col, &v, &l);
        if (i)
            buf_putc(out, ',');
        buf_json_cstr(out, names[i].name);
        buf_putc(out, ':');
        buf_append(out, v, l);
    }
    buf_putc(out, '}');
}

static void putEvent(dbCapture *k, const capEvent *e, const colName *names, int n)
{
    buf *out = &k->out;
    static const char *const ops[] = {[SQLITE_DELETE] = "DELETE", [SQLITE_INSERT] = "INSERT",
                                      [SQLITE_UPDATE] = "UPDATE"};
    buf_puts(out, "{\"op\":\"");
    buf_puts(out, ops[e->op]);
    buf_puts(out, "\",\"table\":");
    buf_json_cstr(out, k->tables[e->table].name);
    /* Go's omitempty: a row id of 0 is left out, as rqlite does. */
    if (e->new_id) {
        buf_puts(out, ",\"new_row_id\":");
        buf_json_int(out, e->new_id);
    }
    if (e->old_id) {
        buf_puts(out, ",\"old_row_id\":");
        buf_json_int(out, e->old_id);
    }
    if (!e->has_old && !e->has_new) {
        buf_putc(out, '}');
        return;
    }
    if (n != e->ncol) {
        buf_puts(out, n < 0 ? ",\"error\":\"failed to get column names for table\"}"
                            : e->has_old ? ",\"error\":\"mismatched column names and old CDC row column count\"}"
                                         : ",\"error\":\"mismatched column names and new CDC row column count\"}");
        return;
    }
    const char *p = k->vals.data + e->vals;
    if (e->has_old && n > 0) {
        buf_puts(out, ",\"before\":");
        putRowObject(out, p, names, n);
        p = skipRow(p, e->ncol);
    }
    if (e->has_new && n > 0) {
        buf_puts(out, ",\"after\":");
        putRowObject(out, p, names, n);
    }
    buf_putc(out, '}');
}

/* Events not yet JSON become JSON, column names read now. */
static void finalize(db *d)
{
    dbCapture *k = d->capture;
    if (k->finalized == k->n)
        return;
    int cached = -1, n = -1;
    colName *names = NULL;
    for (size_t i = k->finalized; i < k->n; i++) {
        capEvent *e = &k->ev[i];
        if (!k->sink.row_ids_only && e->table != cached) {
            for (int j = 0; j < n; j++)
                free(names[j].name);
            free(names);
            n = columnNames(k, d->w, &k->tables[e->table], &names);
            cached = e->table;
        }
        e->json = k->out.len;
        if (i)
            buf_putc(&k->out, ',');
        putEvent(k, e, names, n);
    }
    for (int j = 0; j < n; j++)
        free(names[j].name);
    free(names);
    k->finalized = k->n;
}

void dbCaptureStatementDone(db *d, sqlite3_stmt *st, bool ok, size_t mark)
{
    if (d == NULL || d->capture == NULL)
        return;
    dbCapture *k = d->capture;
    sqlite3 *c = d->w;
    if (!ok && !sqlite3_get_autocommit(c) && sqlite3_changes(c) == 0)
        truncateEvents(k, mark);
    else if (ok)
        trackSavepoint(k, sqlite3_sql(st), mark);
    finalize(d);
}

int dbCaptureFlush(db *d, uint64_t index)
{
    dbCapture *k = d->capture;
    if (k == NULL || k->n == 0 || index == 0)
        return 0;
    finalize(d);
    int64_t ts = d->entry_ms ? d->entry_ms : rq_now_ms();
    /* The JSON of the events is one array; the out buffer lacks its brackets. */
    buf_reserve(&k->out, 2);
    memmove(k->out.data + 1, k->out.data, k->out.len);
    k->out.data[0] = '[';
    k->out.len++;
    buf_putc(&k->out, ']');
    int rc = k->sink.entry(k->sink.arg, index, ts, k->out.data, k->out.len);
    dbCaptureBegin(d);
    return rc;
}

int dbCaptureSync(db *d)
{
    dbCapture *k = d->capture;
    return k && k->sink.sync ? k->sink.sync(k->sink.arg) : 0;
}
