/*
 * sqlite.c: the db module over SQLite: connections, request parsing,
 * statement execution and rqlite's result encoding.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "db/internal.h"
#include "util/log.h"
#include "util/os.h"

#define BUSY_TIMEOUT_MS 5000
#define STMT_CACHE 32
typedef struct stmtCache {
    struct {
        char *sql;
        size_t len;
        sqlite3_stmt *st;
        unsigned long use;
    } e[STMT_CACHE];
    unsigned long clock;
} stmtCache;

struct db {
    char *path;
    db_options opts;
    sqlite3 *w;              /* write connection: Raft thread only */
    pthread_mutex_t mu;      /* guards the read pool */
    pthread_cond_t cv;
    sqlite3 **idle;          /* idle read-only connections */
    int n_idle, cap_idle;
    int n_open;              /* read-only connections open (idle + busy) */
    int64_t entry_ms;        /* clock and seed of the entry being applied */
    uint64_t rng;
    uint64_t entry_index;    /* Raft index the next db_execute records */
    uint64_t index;          /* Raft index of the last entry the file holds */
    unsigned gen;            /* bumped when the file is swapped */
    bool swapping;           /* db_install_file at work: no new connections */
    struct { sqlite3 *c; unsigned gen; } *busy; /* read connections in use */
    int n_busy, cap_busy;
    char *marker;            /* "<path>-rqentry": an unguarded entry is running */
    bool recovered;          /* db_open dropped a cut-short entry */
    uint64_t unguarded;      /* control entries run without the guard */
    stmtCache cache;         /* the write connection's prepared statements */
};

static void cacheClear(stmtCache *k);

static char *errdup(const char *prefix, const char *msg)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", prefix, msg) < 0)
        return NULL;
    return s;
}

/* A failed statement's message. Only a read's deadline interrupts
 * (db_query): rqlite says "query timeout". */
static const char *stmtErrmsg(sqlite3 *c)
{
    return sqlite3_errcode(c) == SQLITE_INTERRUPT ? "query timeout" : sqlite3_errmsg(c);
}

static int execSimple(sqlite3 *c, const char *sql, char **err)
{
    char *e = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &e) != SQLITE_OK) {
        if (err)
            *err = errdup("", e ? e : sqlite3_errmsg(c));
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

static int busyMs(const db *d) { return d->opts.busy_ms > 0 ? d->opts.busy_ms : BUSY_TIMEOUT_MS; }

static int openConn(db *d, bool ro, sqlite3 **out, char **err)
{
    int flags = SQLITE_OPEN_NOMUTEX | (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sqlite3 *c = NULL;
    if (sqlite3_open_v2(d->path, &c, flags, ro ? NULL : det_vfs_name()) != SQLITE_OK) {
        if (err)
            *err = errdup("open database: ", c ? sqlite3_errmsg(c) : "out of memory");
        sqlite3_close(c);
        return -1;
    }
    sqlite3_busy_timeout(c, busyMs(d));
    sqlite3_extended_result_codes(c, 0);
    if (!ro && execSimple(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", err) != 0) {
        sqlite3_close(c);
        return -1;
    }
    if (!ro && det_install(c, &d->rng) != SQLITE_OK) {
        if (err)
            *err = errdup("install functions: ", sqlite3_errmsg(c));
        sqlite3_close(c);
        return -1;
    }
    if (execSimple(c, d->opts.fk ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", err) != 0) {
        sqlite3_close(c);
        return -1;
    }
    *out = c;
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
    return execSimple(c, sql, NULL);
}

static void unlinkSidecars(const char *path)
{
    char p[4200];
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static void sqliteGlobalConfig(void)
{
    /* Memory statistics put a global mutex around every SQLite allocation;
     * nothing reads them. Must precede sqlite3_initialize(). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int db_open(const char *path, const db_options *opts, db **out, char **err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqliteGlobalConfig);
    db *d = calloc(1, sizeof *d);
    d->path = strdup(path);
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
    if (openConn(d, false, &d->w, err) != 0) {
        db_close(d);
        return -1;
    }
    /* Only the low 32 bits are stored: db_resolve_index() completes them. */
    __atomic_store_n(&d->index, readIndexLow(d->w), __ATOMIC_RELAXED);
    *out = d;
    return 0;
}

bool db_recovered(db *d) { return d->recovered; }

void db_close(db *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->n_idle; i++)
        sqlite3_close(d->idle[i]);
    free(d->idle);
    free(d->busy);
    cacheClear(&d->cache);
    if (d->w)
        sqlite3_close(d->w);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->path);
    free(d->marker);
    free(d);
}

uint64_t db_index(db *d) { return __atomic_load_n(&d->index, __ATOMIC_RELAXED); }

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

void db_set_entry_index(db *d, uint64_t index) { d->entry_index = index; }

const char *db_path(db *d) { return d->path; }

long long db_file_size(db *d)
{
    struct stat st;
    return stat(d->path, &st) == 0 ? (long long)st.st_size : 0;
}

/* ---- read pool ----------------------------------------------------------- */

static void busyAdd(db *d, sqlite3 *c, unsigned gen)
{
    if (d->n_busy == d->cap_busy) {
        d->cap_busy = d->cap_busy ? d->cap_busy * 2 : 8;
        d->busy = realloc(d->busy, (size_t)d->cap_busy * sizeof *d->busy);
    }
    d->busy[d->n_busy].c = c;
    d->busy[d->n_busy].gen = gen;
    d->n_busy++;
}

static sqlite3 *roGet(db *d)
{
    pthread_mutex_lock(&d->mu);
    for (;;) {
        if (d->swapping) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        if (d->n_idle > 0) {
            sqlite3 *c = d->idle[--d->n_idle];
            busyAdd(d, c, d->gen);
            pthread_mutex_unlock(&d->mu);
            return c;
        }
        if (d->opts.max_ro_conns <= 0 || d->n_open < d->opts.max_ro_conns)
            break;
        pthread_cond_wait(&d->cv, &d->mu);
    }
    d->n_open++;
    unsigned gen = d->gen;
    pthread_mutex_unlock(&d->mu);
    sqlite3 *c = NULL;
    if (openConn(d, true, &c, NULL) != 0) {
        pthread_mutex_lock(&d->mu);
        d->n_open--;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        return NULL;
    }
    pthread_mutex_lock(&d->mu);
    busyAdd(d, c, gen); /* the file it opened: maybe swapped since */
    pthread_mutex_unlock(&d->mu);
    return c;
}

/* Back to the pool, unless the file was swapped while c was in use: c still
 * reads the old file, so it is closed. */
static void roPut(db *d, sqlite3 *c)
{
    pthread_mutex_lock(&d->mu);
    unsigned gen = d->gen;
    for (int i = 0; i < d->n_busy; i++) {
        if (d->busy[i].c == c) {
            gen = d->busy[i].gen;
            d->busy[i] = d->busy[--d->n_busy];
            break;
        }
    }
    if (gen != d->gen) {
        d->n_open--;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        sqlite3_close(c);
        return;
    }
    if (d->n_idle == d->cap_idle) {
        d->cap_idle = d->cap_idle ? d->cap_idle * 2 : 8;
        d->idle = realloc(d->idle, (size_t)d->cap_idle * sizeof *d->idle);
    }
    d->idle[d->n_idle++] = c;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* ---- request parsing --------------------------------------------------- */

/* x'ABCD' (whitespace trimmed, even number of hex digits) is a BLOB. */
static bool hexBlobLiteral(const char *s, size_t *start, size_t *nhex)
{
    size_t n = strlen(s), i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    while (n > i && isspace((unsigned char)s[n - 1])) n--;
    if (n - i < 3 || (s[i] != 'x' && s[i] != 'X') || s[i + 1] != '\'' || s[n - 1] != '\'')
        return false;
    size_t h = i + 2, e = n - 1;
    if ((e - h) % 2)
        return false;
    for (size_t k = h; k < e; k++)
        if (!isxdigit((unsigned char)s[k]))
            return false;
    *start = h;
    *nhex = e - h;
    return true;
}

static bool byteArray(const json_t *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 255)
            return false;
    }
    return true;
}

static bool validParam(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER: case JSON_REAL: case JSON_TRUE: case JSON_FALSE:
    case JSON_NULL: case JSON_STRING:
        return true;
    case JSON_ARRAY:
        return byteArray(v);
    default:
        return false;
    }
}

json_t *db_parse_request(const char *body, size_t len, char **err)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len || body[i] != '[') {
        *err = strdup("invalid request");
        return NULL;
    }
    json_error_t jerr;
    json_t *a = json_loadb(body, len, 0, &jerr);
    if (a == NULL) {
        *err = strdup("invalid JSON body");
        return NULL;
    }
    if (!json_is_array(a)) {
        json_decref(a);
        *err = strdup("invalid request");
        return NULL;
    }
    if (json_array_size(a) == 0) {
        json_decref(a);
        *err = strdup("no statements");
        return NULL;
    }
    size_t k;
    json_t *s;
    json_array_foreach(a, k, s) {
        if (json_is_string(s))
            continue;
        if (!json_is_array(s) || json_array_size(s) == 0 || !json_is_string(json_array_get(s, 0))) {
            json_decref(a);
            *err = strdup("invalid request");
            return NULL;
        }
        for (size_t p = 1; p < json_array_size(s); p++) {
            json_t *v = json_array_get(s, p);
            bool ok = true;
            if (json_is_object(v)) {
                const char *key;
                json_t *nv;
                json_object_foreach(v, key, nv) ok = ok && validParam(nv);
            } else {
                ok = validParam(v);
            }
            if (!ok) {
                json_decref(a);
                *err = strdup("unsupported type");
                return NULL;
            }
        }
    }
    return a;
}

/* ---- binding -------------------------------------------------------------- */

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int bindValue(sqlite3_stmt *st, int idx, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        return sqlite3_bind_int64(st, idx, (sqlite3_int64)json_integer_value(v));
    case JSON_REAL:
        return sqlite3_bind_double(st, idx, json_real_value(v));
    case JSON_TRUE:
        return sqlite3_bind_int(st, idx, 1);
    case JSON_FALSE:
        return sqlite3_bind_int(st, idx, 0);
    case JSON_NULL:
        return sqlite3_bind_null(st, idx);
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t start, nhex;
        if (hexBlobLiteral(s, &start, &nhex)) {
            unsigned char *b = malloc(nhex / 2 + 1);
            for (size_t i = 0; i < nhex / 2; i++)
                b[i] = (unsigned char)(hexval(s[start + 2 * i]) << 4 | hexval(s[start + 2 * i + 1]));
            return sqlite3_bind_blob(st, idx, b, (int)(nhex / 2), free);
        }
        return sqlite3_bind_text(st, idx, s, (int)json_string_length(v), SQLITE_TRANSIENT);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        unsigned char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)json_integer_value(json_array_get(v, i));
        return sqlite3_bind_blob(st, idx, b, (int)n, free);
    }
    default:
        return SQLITE_MISMATCH;
    }
}

/* Bind the parameters of one request element to a prepared statement. */
static int bindParams(sqlite3_stmt *st, const json_t *params, char **err)
{
    if (params == NULL)
        return 0;
    int pos = 1;
    for (size_t p = 1; p < json_array_size(params); p++) {
        json_t *v = json_array_get(params, p);
        if (json_is_object(v)) {
            const char *key;
            json_t *nv;
            json_object_foreach(v, key, nv) {
                static const char prefixes[] = ":@$";
                for (int k = 0; k < 3; k++) {
                    char name[512];
                    snprintf(name, sizeof name, "%c%s", prefixes[k], key);
                    int idx = sqlite3_bind_parameter_index(st, name);
                    if (idx > 0 && bindValue(st, idx, nv) != SQLITE_OK) {
                        *err = strdup(sqlite3_errmsg(sqlite3_db_handle(st)));
                        return -1;
                    }
                }
            }
            continue;
        }
        if (pos > sqlite3_bind_parameter_count(st)) {
            pos++;
            continue; /* extra positional values are ignored by Go's driver too */
        }
        if (bindValue(st, pos++, v) != SQLITE_OK) {
            *err = strdup(sqlite3_errmsg(sqlite3_db_handle(st)));
            return -1;
        }
    }
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */


static bool textLike(const char *t)
{
    static const char *prefixes[] = {"varchar", "varying character", "nchar",
                                     "native character", "nvarchar", "clob"};
    if (t[0] == '\0' || strcmp(t, "text") == 0 || strcmp(t, "json") == 0)
        return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(t, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static bool timeType(const char *t)
{
    return strcmp(t, "date") == 0 || strcmp(t, "datetime") == 0 || strcmp(t, "timestamp") == 0;
}

static void putTime(buf *b, time_t secs, long nsec)
{
    struct tm tm;
    gmtime_r(&secs, &tm);
    char tmp[64];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_putc(b, '"');
    buf_puts(b, tmp);
    if (nsec) {
        char frac[32];
        snprintf(frac, sizeof frac, ".%09ld", nsec);
        size_t n = strlen(frac);
        while (frac[n - 1] == '0')
            frac[--n] = '\0';
        buf_puts(b, frac);
    }
    buf_puts(b, "Z\"");
}

/* Text in a date/datetime/timestamp column, as go-sqlite3 parses it. */
static void putTimeText(buf *b, const char *s)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", s);
    size_t n = strlen(tmp);
    if (n && tmp[n - 1] == 'Z')
        tmp[--n] = '\0';
    int Y, M, D, h = 0, m = 0, sec = 0, consumed = 0;
    double fsec = 0;
    struct tm tm = {0};
    if (sscanf(tmp, "%4d-%2d-%2d%n", &Y, &M, &D, &consumed) == 3) {
        const char *p = tmp + consumed;
        int tzoff = 0;
        if (*p == ' ' || *p == 'T') {
            int c2 = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &h, &m, &c2) != 2)
                goto bad;
            p += 1 + c2;
            if (*p == ':') {
                char *end;
                fsec = strtod(p + 1, &end);
                p = end;
            }
            if (*p == '+' || *p == '-') {
                int th, tm_;
                if (sscanf(p + 1, "%2d:%2d", &th, &tm_) != 2)
                    goto bad;
                tzoff = (th * 60 + tm_) * 60 * (*p == '-' ? -1 : 1);
                p += 6;
            }
        }
        if (*p != '\0')
            goto bad;
        sec = (int)fsec;
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = sec;
        time_t t = timegm(&tm) - tzoff;
        long ns = (long)((fsec - sec) * 1e9 + 0.5);
        putTime(b, t, ns >= 1000000000L ? 0 : ns);
        return;
    }
bad:
    buf_puts(b, "\"0001-01-01T00:00:00Z\"");
}

static void putValue(buf *b, sqlite3_stmt *st, int i, const char *type, unsigned flags)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: {
        sqlite3_int64 v = sqlite3_column_int64(st, i);
        if (strcmp(type, "boolean") == 0) {
            buf_puts(b, v > 0 ? "true" : "false");
        } else if (timeType(type)) {
            if (v > 1000000000000LL || v < -1000000000000LL)
                putTime(b, (time_t)(v / 1000), (long)(v % 1000) * 1000000L);
            else
                putTime(b, (time_t)v, 0);
        } else {
            json_int(b, v);
        }
        break;
    }
    case SQLITE_FLOAT:
        json_double(b, sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        if (timeType(type))
            putTimeText(b, t);
        else
            json_str(b, t, (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        if (textLike(type)) {
            json_str(b, p ? p : "", n);
        } else if (flags & DB_BLOB_ARRAY) {
            buf_putc(b, '[');
            for (size_t k = 0; k < n; k++) {
                if (k)
                    buf_putc(b, ',');
                json_int(b, ((const unsigned char *)p)[k]);
            }
            buf_putc(b, ']');
        } else {
            json_base64(b, p, n);
        }
        break;
    }
    default:
        buf_puts(b, "null");
    }
}

typedef struct colinfo {
    char *name;
    char *type;
} colinfo;

static int cmpCol(const void *a, const void *b)
{
    const colinfo *x = *(colinfo *const *)a, *y = *(colinfo *const *)b;
    return strcmp(x->name, y->name);
}

static void putTime_(buf *b, unsigned flags, double t0)
{
    if (flags & DB_TIMINGS) {
        buf_puts(b, ",\"time\":");
        json_double(b, rq_now_sec() - t0);
    }
}

/* Step a row-returning statement and write a query-shaped result. Returns
 * 0, or -1 with the result replaced by an error (written by the caller). */
static int encodeRows(sqlite3_stmt *st, unsigned flags, buf *out, double t0, char **err)
{
    int nc = sqlite3_column_count(st);
    colinfo *cols = calloc((size_t)nc, sizeof *cols);
    colinfo **order = calloc((size_t)nc, sizeof *order);
    for (int i = 0; i < nc; i++) {
        const char *name = sqlite3_column_name(st, i);
        const char *tbl = (flags & DB_QUALIFY) ? sqlite3_column_table_name(st, i) : NULL;
        if (tbl) {
            if (asprintf(&cols[i].name, "%s.%s", tbl, name ? name : "") < 0)
                cols[i].name = NULL;
        } else {
            cols[i].name = strdup(name ? name : "");
        }
        const char *dt = sqlite3_column_decltype(st, i);
        cols[i].type = strdup(dt ? dt : "");
        for (char *p = cols[i].type; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        order[i] = &cols[i];
    }
    int rc = sqlite3_step(st);
    bool has_row = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        *err = strdup(stmtErrmsg(sqlite3_db_handle(st)));
        goto fail;
    }
    if (has_row) { /* undeclared types come from the first row */
        for (int i = 0; i < nc; i++) {
            if (cols[i].type[0])
                continue;
            const char *t = "";
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: t = "integer"; break;
            case SQLITE_FLOAT: t = "real"; break;
            case SQLITE_TEXT: t = "text"; break;
            case SQLITE_BLOB: t = "text"; break; /* rqlite's quirk, see RQLITE-BEHAVIOUR 2.2 */
            }
            free(cols[i].type);
            cols[i].type = strdup(t);
        }
    }
    size_t start = out->len;
    if (flags & DB_ASSOC) {
        qsort(order, (size_t)nc, sizeof *order, cmpCol);
        buf_putc(out, '{');
        if (nc > 0) {
            buf_puts(out, "\"types\":{");
            for (int i = 0; i < nc; i++) {
                if (i)
                    buf_putc(out, ',');
                json_cstr(out, order[i]->name);
                buf_putc(out, ':');
                json_cstr(out, order[i]->type);
            }
            buf_puts(out, "},");
        }
        buf_puts(out, "\"rows\":[");
        bool first = true;
        while (rc == SQLITE_ROW) {
            buf_puts(out, first ? "{" : ",{");
            first = false;
            for (int i = 0; i < nc; i++) {
                int ci = (int)(order[i] - cols);
                if (i)
                    buf_putc(out, ',');
                json_cstr(out, order[i]->name);
                buf_putc(out, ':');
                putValue(out, st, ci, cols[ci].type, flags);
            }
            buf_putc(out, '}');
            rc = sqlite3_step(st);
        }
        buf_putc(out, ']');
    } else {
        buf_puts(out, "{\"columns\":[");
        for (int i = 0; i < nc; i++) {
            if (i)
                buf_putc(out, ',');
            json_cstr(out, cols[i].name);
        }
        buf_puts(out, "],\"types\":[");
        for (int i = 0; i < nc; i++) {
            if (i)
                buf_putc(out, ',');
            json_cstr(out, cols[i].type);
        }
        buf_putc(out, ']');
        if (has_row) {
            buf_puts(out, ",\"values\":[");
            bool first = true;
            while (rc == SQLITE_ROW) {
                buf_puts(out, first ? "[" : ",[");
                first = false;
                for (int i = 0; i < nc; i++) {
                    if (i)
                        buf_putc(out, ',');
                    putValue(out, st, i, cols[i].type, flags);
                }
                buf_putc(out, ']');
                rc = sqlite3_step(st);
            }
            buf_putc(out, ']');
        }
    }
    if (rc != SQLITE_DONE) {
        out->len = start;
        out->data[start] = '\0';
        *err = strdup(stmtErrmsg(sqlite3_db_handle(st)));
        goto fail;
    }
    putTime_(out, flags, t0);
    buf_putc(out, '}');
    for (int i = 0; i < nc; i++) {
        free(cols[i].name);
        free(cols[i].type);
    }
    free(cols);
    free(order);
    return 0;
fail:
    for (int i = 0; i < nc; i++) {
        free(cols[i].name);
        free(cols[i].type);
    }
    free(cols);
    free(order);
    return -1;
}

static void putError(buf *out, const char *msg, unsigned flags, double t0)
{
    buf_puts(out, "{\"error\":");
    json_cstr(out, msg);
    putTime_(out, flags, t0);
    buf_putc(out, '}');
}

static void putExecResult(buf *out, sqlite3 *c, unsigned flags, double t0)
{
    sqlite3_int64 id = sqlite3_last_insert_rowid(c);
    int changes = sqlite3_changes(c);
    buf_putc(out, '{');
    bool any = false;
    if (id) {
        buf_puts(out, "\"last_insert_id\":");
        json_int(out, id);
        any = true;
    }
    if (changes) {
        buf_puts(out, any ? ",\"rows_affected\":" : "\"rows_affected\":");
        json_int(out, changes);
        any = true;
    }
    if (flags & DB_ASSOC) {
        buf_puts(out, any ? ",\"rows\":null" : "\"rows\":null");
        any = true;
    }
    if (flags & DB_TIMINGS) {
        buf_puts(out, any ? ",\"time\":" : "\"time\":");
        json_double(out, rq_now_sec() - t0);
    }
    buf_putc(out, '}');
}

static bool blankSql(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s) && *s != ';')
            return false;
    return true;
}

/* ---- prepared statements kept on the write connection ----------------------- */

static sqlite3_stmt *cacheGet(stmtCache *k, const char *sql)
{
    size_t n = strlen(sql);
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
static void cachePut(stmtCache *k, const char *sql, sqlite3_stmt *st)
{
    int v = 0;
    for (int i = 1; i < STMT_CACHE; i++)
        if (k->e[i].use < k->e[v].use)
            v = i;
    sqlite3_finalize(k->e[v].st);
    free(k->e[v].sql);
    k->e[v].sql = strdup(sql);
    k->e[v].len = strlen(sql);
    k->e[v].st = st;
    k->e[v].use = ++k->clock;
}

static void cacheClear(stmtCache *k)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(k->e[i].st);
        free(k->e[i].sql);
    }
    memset(k, 0, sizeof *k);
}

static void stmtRelease(sqlite3_stmt *st, bool cached)
{
    if (cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
}

/* Run one request element on connection c. Writes one result (unless the
 * SQL is empty) and returns false if it was an error. ro: refuse writes. */
static bool runOne(sqlite3 *c, stmtCache *cache, const json_t *elem, unsigned flags, bool ro, buf *out,
                   bool *wrote)
{
    const char *sql = json_is_string(elem) ? json_string_value(elem)
                                           : json_string_value(json_array_get(elem, 0));
    const json_t *params = json_is_array(elem) ? elem : NULL;
    *wrote = false;
    if (sql == NULL || blankSql(sql))
        return true;
    double t0 = rq_now_sec();
    const char *tail = sql;
    size_t mark = out ? out->len : 0;
    bool ok = true;
    while (tail && *tail) {
        sqlite3_stmt *st = NULL;
        const char *next = NULL;
        /* A statement alone in its string stays prepared on the write
         * connection: bulk requests repeat the same INSERT thousands of times. */
        bool cacheable = cache && tail == sql;
        bool cached = cacheable && (st = cacheGet(cache, sql)) != NULL;
        if (cached)
            next = sql + strlen(sql);
        else if (sqlite3_prepare_v3(c, tail, -1, cacheable ? SQLITE_PREPARE_PERSISTENT : 0, &st, &next) !=
                 SQLITE_OK) {
            if (out) {
                out->len = mark;
                if (out->data) out->data[mark] = '\0';
                putError(out, stmtErrmsg(c), flags, t0);
            }
            *wrote = true;
            return false;
        }
        tail = next;
        if (st == NULL)
            continue; /* whitespace or comment */
        if (!cached && cacheable && blankSql(next)) {
            cachePut(cache, sql, st);
            cached = true;
        }
        if (ro && !sqlite3_stmt_readonly(st)) {
            stmtRelease(st, cached);
            if (out) {
                out->len = mark;
                if (out->data) out->data[mark] = '\0';
                putError(out, "attempt to change database via query operation", flags, t0);
            }
            *wrote = true;
            return false;
        }
        char *berr = NULL;
        if (bindParams(st, params, &berr) != 0) {
            stmtRelease(st, cached);
            if (out) {
                out->len = mark;
                if (out->data) out->data[mark] = '\0';
                putError(out, berr, flags, t0);
            }
            free(berr);
            *wrote = true;
            return false;
        }
        /* Only the last statement of a multi-statement string reports. */
        if (out) {
            out->len = mark;
            if (out->data) out->data[mark] = '\0';
        }
        if (sqlite3_column_count(st) > 0 && (ro || (flags & DB_READ_ROWS) || !sqlite3_stmt_readonly(st))) {
            char *qerr = NULL;
            buf scratch = BUF_INIT;
            if (encodeRows(st, flags, out ? out : &scratch, t0, &qerr) != 0) {
                if (out)
                    putError(out, qerr, flags, t0);
                free(qerr);
                ok = false;
            }
            buf_free(&scratch);
        } else {
            int rc;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
            if (rc != SQLITE_DONE) {
                if (out)
                    putError(out, stmtErrmsg(c), flags, t0);
                ok = false;
            } else if (out) {
                putExecResult(out, c, flags, t0);
            }
        }
        stmtRelease(st, cached);
        *wrote = true;
        if (!ok)
            break;
    }
    return ok;
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
static bool batchable(const json_t *stmts)
{
    size_t i;
    json_t *e;
    json_array_foreach(stmts, i, e) {
        const char *sql = json_is_string(e) ? json_string_value(e) : json_string_value(json_array_get(e, 0));
        if (sql && anyStatementStarts(sql, controlWord))
            return false;
    }
    return true;
}

static void truncateTo(buf *out, size_t n)
{
    if (out) {
        out->len = n;
        if (out->data)
            out->data[n] = '\0';
    }
}

/* A failure of this node alone, not an answer to the SQL: the other
 * replicas applied the same entry without it. Of statements, only codes no
 * SQL can produce count (PRAGMA max_page_count makes SQLITE_FULL an answer,
 * a runaway query SQLITE_NOMEM); recording the entry's index may also fail
 * for want of disk or memory. */
static bool nodeLocal(int rc, bool recording)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_IOERR:
        return true;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
        return recording;
    default:
        return false;
    }
}

/* Run each element, separating results with commas. sp: a savepoint per
 * statement (inside our transaction). Stops at the first failure when tx,
 * when a failure ended the transaction itself (*lost), and, if fault is
 * given, at a failure of this node's own (nodeLocal; its code in *fault).
 * Returns whether any statement failed. */
static bool runList(sqlite3 *c, stmtCache *cache, const json_t *stmts, unsigned flags, bool ro, buf *out, bool sp, bool tx,
                    bool *lost, int *fault)
{
    size_t i;
    json_t *e;
    bool first = true, failed = false;
    *lost = false;
    json_array_foreach(stmts, i, e) {
        if (out && !first)
            buf_putc(out, ',');
        size_t before = out ? out->len : 0;
        bool wrote;
        if (sp)
            execSimple(c, "SAVEPOINT s", NULL);
        bool ok = runOne(c, cache, e, flags, ro, out, &wrote);
        if (!ok && fault && nodeLocal(sqlite3_errcode(c), false)) {
            *fault = sqlite3_errcode(c);
            return true;
        }
        if (sp && !ok && sqlite3_get_autocommit(c)) {
            *lost = true; /* an ON CONFLICT ROLLBACK undid the transaction */
            return true;
        }
        if (sp)
            execSimple(c, ok ? "RELEASE s" : "ROLLBACK TO s; RELEASE s", NULL);
        if (!wrote && out && !first) /* nothing written: drop the comma */
            truncateTo(out, before - 1);
        if (wrote)
            first = false;
        if (!ok) {
            failed = true;
            if (tx)
                break;
        }
    }
    return failed;
}

/* Statement by statement in autocommit mode (reads, and entries that run
 * their own transactions); ?transaction wraps them in one. */
static void runAll(sqlite3 *c, stmtCache *cache, const json_t *stmts, unsigned flags, bool ro, buf *out)
{
    bool tx = (flags & DB_TX) && !ro;
    if (tx)
        execSimple(c, "BEGIN", NULL);
    bool lost;
    bool failed = runList(c, cache, stmts, flags, ro, out, false, tx, &lost, NULL);
    /* A statement that failed inside the client's own BEGIN would leave the
     * shared write connection in a transaction for every later request. */
    if (!tx && !ro && failed && sqlite3_get_autocommit(c) == 0)
        execSimple(c, "ROLLBACK", NULL);
    if (tx && (failed || sqlite3_get_autocommit(c) == 0))
        execSimple(c, failed ? "ROLLBACK" : "COMMIT", NULL);
}

void db_set_entropy(db *d, int64_t unix_ms, uint64_t seed)
{
    d->entry_ms = unix_ms;
    d->rng = seed;
}

/* Record index with the entry's changes and commit them. Returns 0, or
 * the code of a failure of this node's own (nodeLocal): then nothing of the
 * transaction remains. Another failure (a deferred constraint) is every
 * replica's: the transaction is rolled back there too. */
static int commitWithIndex(db *d, uint64_t index)
{
    sqlite3 *c = d->w;
    if (sqlite3_get_autocommit(c))
        execSimple(c, "BEGIN", NULL);
    char *err = NULL;
    int rc = 0;
    if (writeIndex(c, index) != 0 || execSimple(c, "COMMIT", &err) != 0) {
        rc = sqlite3_errcode(c);
        rq_log("db", "cannot commit the entry at index %llu: %s", (unsigned long long)index,
               err ? err : sqlite3_errmsg(c));
        free(err);
        if (!sqlite3_get_autocommit(c))
            execSimple(c, "ROLLBACK", NULL);
        return nodeLocal(rc, true) ? rc : 0;
    }
    __atomic_store_n(&d->index, index, __ATOMIC_RELAXED);
    return 0;
}

static int syncPath(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void syncDir(const char *path)
{
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    syncPath(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    free(dir);
}

/* An entry that cannot run inside one transaction of ours (its own
 * BEGIN/COMMIT, VACUUM, PRAGMA...). The WAL is checkpointed away first and
 * automatic checkpoints are off until the index is recorded, while a marker
 * file says so: after a crash in between, db_open drops the WAL and the file
 * is back at the previous entry. */
static int runGuarded(db *d, const json_t *stmts, unsigned flags, buf *out, uint64_t index)
{
    sqlite3 *c = d->w;
    bool guarded = false;
    if (index && d->marker) {
        int nlog = -1, nckpt = -1;
        /* Readers may hold the WAL: wait for them only briefly, this is the
         * Raft thread. */
        sqlite3_busy_timeout(c, 200);
        int crc = sqlite3_wal_checkpoint_v2(c, "main", SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
        sqlite3_busy_timeout(c, busyMs(d));
        if (crc == SQLITE_OK && nlog <= 0) {
            int fd = open(d->marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                char text[32];
                int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)index);
                guarded = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
                close(fd);
                syncDir(d->marker);
            }
        }
        if (guarded)
            execSimple(c, "PRAGMA wal_autocheckpoint=0", NULL);
        else
            d->unguarded++;
    }
    runAll(c, &d->cache, stmts, flags, false, out);
    int fault = index ? commitWithIndex(d, index) : 0;
    if (fault) {
        /* The statements' own commits are in the WAL: with the marker left,
         * a restart drops them (db_open), and the entry runs again whole. */
        if (!guarded)
            rq_log("db", "the entry at index %llu ran without the guard: a restart may apply some of it twice",
                   (unsigned long long)index);
        return fault;
    }
    if (guarded) {
        unlink(d->marker);
        execSimple(c, "PRAGMA wal_autocheckpoint=1000", NULL);
    }
    return 0;
}

int db_execute(db *d, const json_t *stmts, unsigned flags, buf *out)
{
    sqlite3 *c = d->w;
    uint64_t index = d->entry_index;
    d->entry_index = 0;
    det_freeze(d->entry_ms);
    if (!sqlite3_get_autocommit(c) || !batchable(stmts)) {
        int fault = runGuarded(d, stmts, flags, out, index);
        det_freeze(0);
        return fault;
    }
    /* One transaction holds the whole entry and its index. Without
     * ?transaction each statement still succeeds or fails on its own (a
     * savepoint each). */
    bool tx = flags & DB_TX;
    size_t n = json_array_size(stmts);
    bool sp = !tx && n > 1;
    size_t start = out ? out->len : 0;
    execSimple(c, "BEGIN", NULL);
    bool lost;
    int fault = 0;
    bool failed = runList(c, &d->cache, stmts, flags, false, out, sp, tx, &lost, index ? &fault : NULL);
    if (fault) {
        rq_log("db", "the entry at index %llu failed on this node: %s", (unsigned long long)index,
               sqlite3_errstr(fault));
        if (!sqlite3_get_autocommit(c))
            execSimple(c, "ROLLBACK", NULL);
        truncateTo(out, start);
    } else if (lost) {
        /* Nothing of the batch remains: start over statement by statement.
         * (A single statement or a ?transaction that fails that way has
         * its answer; the index commit below is then harmless.) */
        truncateTo(out, start);
        fault = runGuarded(d, stmts, flags, out, index);
    } else if (tx && failed) {
        execSimple(c, "ROLLBACK", NULL);
    } else if (index) {
        fault = commitWithIndex(d, index);
    } else if (execSimple(c, "COMMIT", NULL) != 0) {
        execSimple(c, "ROLLBACK", NULL);
    }
    det_freeze(0);
    return fault;
}

/* Progress handler of a read with a deadline (seconds, rq_now_sec). */
static int pastDeadline(void *arg)
{
    return rq_now_sec() > *(const double *)arg;
}

void db_query(db *d, const json_t *stmts, unsigned flags, int64_t timeout_ms, buf *out)
{
    sqlite3 *c = roGet(d);
    if (c == NULL) {
        size_t n = json_array_size(stmts);
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(out, ',');
            putError(out, "unable to open database connection", 0, 0);
        }
        return;
    }
    double deadline = rq_now_sec() + (double)timeout_ms / 1000.0;
    if (timeout_ms > 0)
        sqlite3_progress_handler(c, 1000, pastDeadline, &deadline);
    runAll(c, NULL, stmts, flags & ~DB_TX, true, out);
    if (timeout_ms > 0)
        sqlite3_progress_handler(c, 0, NULL, NULL);
    roPut(d, c);
}

bool db_all_readonly(db *d, const json_t *stmts)
{
    sqlite3 *c = roGet(d);
    if (c == NULL)
        return false;
    bool ro = true;
    size_t i;
    json_t *e;
    json_array_foreach(stmts, i, e) {
        const char *sql = json_is_string(e) ? json_string_value(e) : json_string_value(json_array_get(e, 0));
        const char *tail = sql;
        while (ro && tail && *tail) {
            sqlite3_stmt *st = NULL;
            const char *next = NULL;
            if (sqlite3_prepare_v2(c, tail, -1, &st, &next) != SQLITE_OK) {
                ro = false;
                break;
            }
            if (st && !sqlite3_stmt_readonly(st))
                ro = false;
            sqlite3_finalize(st);
            tail = next;
        }
        if (!ro)
            break;
    }
    roPut(d, c);
    return ro;
}

bool db_has_disallowed_pragma(const json_t *stmts)
{
    static const char *bad[] = {"pragmajournal_mode=", "pragmawal_autocheckpoint=",
                                "pragmawal_checkpoint", "pragmasynchronous=", "pragmaquery_only="};
    size_t i;
    json_t *e;
    json_array_foreach(stmts, i, e) {
        const char *sql = json_is_string(e) ? json_string_value(e) : json_string_value(json_array_get(e, 0));
        if (sql == NULL)
            continue;
        size_t n = strlen(sql);
        char *norm = malloc(n + 1);
        size_t k = 0;
        for (size_t j = 0; j < n; j++)
            if (!isspace((unsigned char)sql[j]))
                norm[k++] = (char)tolower((unsigned char)sql[j]);
        norm[k] = '\0';
        bool hit = false;
        for (size_t b = 0; b < sizeof bad / sizeof bad[0] && !hit; b++)
            hit = strstr(norm, bad[b]) != NULL;
        free(norm);
        if (hit)
            return true;
    }
    return false;
}

/* ---- whole-database images ------------------------------------------------ */

int db_restore(db *d, const void *data, size_t len, uint64_t index, char **err)
{
    sqlite3 *src = NULL;
    if (sqlite3_open_v2(":memory:", &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) != SQLITE_OK) {
        *err = strdup("cannot open memory database");
        sqlite3_close(src);
        return -1;
    }
    if (len > 0) {
        unsigned char *copy = sqlite3_malloc64(len);
        if (copy == NULL) {
            sqlite3_close(src);
            *err = strdup("out of memory");
            return -1;
        }
        memcpy(copy, data, len);
        /* The image of a WAL database says so in its header (bytes 18-19);
         * a memory database can't be WAL, so read it as a rollback one. */
        if (len >= 20 && copy[18] == 2 && copy[19] == 2)
            copy[18] = copy[19] = 1;
        /* The entry's index goes in with the pages (application_id). */
        if (len >= 100) {
            uint32_t v = (uint32_t)index;
            copy[68] = (unsigned char)(v >> 24);
            copy[69] = (unsigned char)(v >> 16);
            copy[70] = (unsigned char)(v >> 8);
            copy[71] = (unsigned char)v;
        }
        int rc = sqlite3_deserialize(src, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                                     SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
        if (rc != SQLITE_OK) {
            *err = errdup("cannot load database image: ", sqlite3_errmsg(src));
            sqlite3_close(src);
            return -1;
        }
    }
    sqlite3_backup *bk = sqlite3_backup_init(d->w, "main", src, "main");
    if (bk == NULL) {
        *err = errdup("restore: ", sqlite3_errmsg(d->w));
        sqlite3_close(src);
        return -1;
    }
    int rc = sqlite3_backup_step(bk, -1);
    sqlite3_backup_finish(bk);
    if (rc != SQLITE_DONE) {
        *err = errdup("restore: ", sqlite3_errstr(rc));
        sqlite3_close(src);
        return -1;
    }
    sqlite3_close(src);
    if (len == 0 && index)
        commitWithIndex(d, index); /* an empty image carries no header */
    else if (index)
        __atomic_store_n(&d->index, index, __ATOMIC_RELAXED);
    /* A fresh write connection, as rqlite's after a swap: last_insert_id
     * and rows_affected start from zero again. */
    sqlite3 *w = NULL;
    if (openConn(d, false, &w, NULL) == 0) {
        cacheClear(&d->cache);
        sqlite3_close(d->w);
        d->w = w;
    }
    return 0;
}

int db_backup_file(db *d, const char *dest, unsigned flags, db_progress_fn progress, void *arg,
                   uint32_t *index_low, char **err)
{
    sqlite3 *c = roGet(d);
    if (c == NULL) {
        *err = strdup("unable to open database connection");
        return -1;
    }
    unlink(dest);
    int rc = 0;
    if (flags & DB_BACKUP_VACUUM) {
        char *sql = sqlite3_mprintf("VACUUM INTO %Q", dest);
        rc = execSimple(c, sql, err);
        sqlite3_free(sql);
        if (index_low)
            *index_low = readIndexLow(c);
        roPut(d, c);
        return rc;
    }
    /* One read transaction: the copy is the state of one moment, while the
     * write connection goes on. Pages go through a small cache to the
     * destination file, so memory does not grow with the database. */
    execSimple(c, "BEGIN", NULL);
    execSimple(c, "SELECT 1 FROM sqlite_master LIMIT 1", NULL);
    if (index_low)
        *index_low = readIndexLow(c);
    sqlite3 *o = NULL;
    if (sqlite3_open_v2(dest, &o, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        execSimple(o, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096", err) != 0) {
        if (*err == NULL)
            *err = errdup("backup: cannot create ", dest);
        rc = -1;
    } else {
        sqlite3_backup *bk = sqlite3_backup_init(o, "main", c, "main");
        if (bk == NULL) {
            *err = errdup("backup: ", sqlite3_errmsg(o));
            rc = -1;
        } else {
            int st;
            long long page = (long long)pragmaInt(c, "PRAGMA page_size");
            while ((st = sqlite3_backup_step(bk, 8192)) == SQLITE_OK || st == SQLITE_BUSY ||
                   st == SQLITE_LOCKED) {
                if (progress)
                    progress(arg, (sqlite3_backup_pagecount(bk) - sqlite3_backup_remaining(bk)) * page,
                             sqlite3_backup_pagecount(bk) * page);
                if (st != SQLITE_OK)
                    usleep(1000);
            }
            sqlite3_backup_finish(bk);
            if (st != SQLITE_DONE) {
                *err = errdup("backup: ", sqlite3_errstr(st));
                rc = -1;
            } else if (!(flags & DB_BACKUP_KEEP_INDEX)) {
                writeIndex(o, 0);
            }
        }
    }
    sqlite3_close(o);
    execSimple(c, "COMMIT", NULL);
    roPut(d, c);
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
        sqlite3_close(d->idle[i]);
    d->n_open -= d->n_idle;
    d->n_idle = 0;
    pthread_mutex_unlock(&d->mu);
    /* The old file's WAL is not worth checkpointing: it is replaced. */
    sqlite3_db_config(d->w, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    cacheClear(&d->cache);
    sqlite3_close(d->w);
    d->w = NULL;
    int rc = 0;
    unlinkSidecars(d->path);
    if (rename(path, d->path) != 0) {
        *err = errdup("install database file: ", strerror(errno));
        rc = -1;
    }
    syncDir(d->path);
    char *oerr = NULL;
    int orc = openConn(d, false, &d->w, &oerr);
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

int db_sync(db *d)
{
    char p[4200];
    snprintf(p, sizeof p, "%s-wal", d->path);
    int rc = 0;
    if (access(p, F_OK) == 0)
        rc |= syncPath(p, O_RDWR);
    rc |= syncPath(d->path, O_RDWR);
    syncDir(d->path);
    /* Keep the WAL short; readers may hold some of it back, that's fine. */
    sqlite3_wal_checkpoint_v2(d->w, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc ? -1 : 0;
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
    sqlite3 *c = roGet(d);
    if (c == NULL) {
        *err = strdup("unable to open database connection");
        return -1;
    }
    execSimple(c, "BEGIN", NULL);
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
    execSimple(c, "COMMIT", NULL);
    roPut(d, c);
    return 0;
}
