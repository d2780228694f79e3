/*
 * encode.c: results in rqlite's JSON byte format, written straight into
 * the response buffer (see db.h): rows with go-sqlite3's type quirks,
 * execute results, errors.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/internal.h"
#include "util/duration.h"
#include "util/os.h"


/* go-sqlite3 returns BLOBs in text-typed columns as strings. */
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

/* Go's time.Time JSON form (RFC 3339, nanoseconds without trailing zeros). */
static void putTime(buf *b, time_t secs, long nsec)
{
    char tmp[64];
    rq_go_time(secs, nsec, tmp, sizeof tmp);
    buf_putc(b, '"');
    buf_puts(b, tmp);
    buf_putc(b, '"');
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

/* One value as go-sqlite3 and encoding/json would write it, by the column's declared type. */
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
            buf_json_int(b, v);
        }
        break;
    }
    case SQLITE_FLOAT:
        buf_json_double(b, sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        if (timeType(type))
            putTimeText(b, t);
        else
            buf_json_str(b, t, (size_t)sqlite3_column_bytes(st, i));
        break;
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        if (textLike(type)) {
            buf_json_str(b, p ? p : "", n);
        } else if (flags & DB_BLOB_ARRAY) {
            buf_putc(b, '[');
            for (size_t k = 0; k < n; k++) {
                if (k)
                    buf_putc(b, ',');
                buf_json_int(b, ((const unsigned char *)p)[k]);
            }
            buf_putc(b, ']');
        } else {
            buf_json_base64(b, p, n);
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

/* ?timings: the statement's time in seconds, as rqlite writes it. */
static void putTime_(buf *b, unsigned flags, double t0)
{
    if (flags & DB_TIMINGS) {
        buf_puts(b, ",\"time\":");
        buf_json_double(b, rq_now_sec() - t0);
    }
}

/* Step a row-returning statement and write a query-shaped result. Returns
 * 0, or -1 with the result replaced by an error (written by the caller). */
static void truncateOut(buf *out, size_t n)
{
    out->len = n;
    if (out->data)
        out->data[n] = '\0';
}

/* Not an SQLite code: the result grew past its cap. */
#define RESULT_CAPPED (-2)

/* The next row, unless the result has grown past max bytes (0: no cap):
 * then RESULT_CAPPED. A runaway result would take the node's memory; the
 * cut falls at the same row on every node, the bytes being the same. */
static int nextRow(sqlite3_stmt *st, const buf *out, size_t start, size_t max)
{
    if (max && out->len - start > max)
        return RESULT_CAPPED;
    return sqlite3_step(st);
}

/* A statement's columns: names (qualified with ?qualify_columns) and
 * declared types, lower-cased, as go-sqlite3 reports them. */
typedef struct colset {
    int n;
    colinfo *cols;
    colinfo **order; /* cols sorted by name, for ?associative */
} colset;

/* Read once per statement, not per row: names and types are the same for
 * every row, and the sorted order is what ?associative needs. */
static void colsetOpen(colset *cs, sqlite3_stmt *st, unsigned flags)
{
    cs->n = sqlite3_column_count(st);
    cs->cols = calloc((size_t)cs->n + 1, sizeof *cs->cols);
    cs->order = calloc((size_t)cs->n + 1, sizeof *cs->order);
    for (int i = 0; i < cs->n; i++) {
        const char *name = sqlite3_column_name(st, i);
        const char *tbl = (flags & DB_QUALIFY) ? sqlite3_column_table_name(st, i) : NULL;
        cs->cols[i].name = tbl ? rq_sprintf("%s.%s", tbl, name ? name : "") : strdup(name ? name : "");
        const char *dt = sqlite3_column_decltype(st, i);
        cs->cols[i].type = strdup(dt ? dt : "");
        for (char *p = cs->cols[i].type; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        cs->order[i] = &cs->cols[i];
    }
}

/* Columns without a declared type take the first row's (rqlite's rule). */
static void colsetTypesFromRow(colset *cs, sqlite3_stmt *st)
{
    for (int i = 0; i < cs->n; i++) {
        if (cs->cols[i].type[0])
            continue;
        const char *t = "";
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER: t = "integer"; break;
        case SQLITE_FLOAT: t = "real"; break;
        case SQLITE_TEXT: t = "text"; break;
        case SQLITE_BLOB: t = "text"; break; /* rqlite's quirk, see RQLITE-BEHAVIOUR 2.2 */
        }
        free(cs->cols[i].type);
        cs->cols[i].type = strdup(t);
    }
}

/* Frees what colsetOpen allocated. */
static void colsetFree(colset *cs)
{
    for (int i = 0; i < cs->n; i++) {
        free(cs->cols[i].name);
        free(cs->cols[i].type);
    }
    free(cs->cols);
    free(cs->order);
}

/* ?associative: {"types":{name:type...},"rows":[{name:value...}...] up to
 * the closing bracket of rows. Returns the last step's code. */
static int putRowsAssoc(buf *out, sqlite3_stmt *st, colset *cs, int rc, unsigned flags, size_t start, size_t max)
{
    qsort(cs->order, (size_t)cs->n, sizeof *cs->order, cmpCol);
    buf_putc(out, '{');
    if (cs->n > 0) {
        buf_puts(out, "\"types\":{");
        for (int i = 0; i < cs->n; i++) {
            if (i)
                buf_putc(out, ',');
            buf_json_cstr(out, cs->order[i]->name);
            buf_putc(out, ':');
            buf_json_cstr(out, cs->order[i]->type);
        }
        buf_puts(out, "},");
    }
    buf_puts(out, "\"rows\":[");
    for (bool first = true; rc == SQLITE_ROW; first = false) {
        buf_puts(out, first ? "{" : ",{");
        for (int i = 0; i < cs->n; i++) {
            int ci = (int)(cs->order[i] - cs->cols);
            if (i)
                buf_putc(out, ',');
            buf_json_cstr(out, cs->order[i]->name);
            buf_putc(out, ':');
            putValue(out, st, ci, cs->cols[ci].type, flags);
        }
        buf_putc(out, '}');
        rc = nextRow(st, out, start, max);
    }
    buf_putc(out, ']');
    return rc;
}

/* {"columns":[...],"types":[...],"values":[[...]...] (values only when
 * there are rows). Returns the last step's code. */
static int putRowsArray(buf *out, sqlite3_stmt *st, colset *cs, int rc, unsigned flags, size_t start, size_t max)
{
    buf_puts(out, "{\"columns\":[");
    for (int i = 0; i < cs->n; i++) {
        if (i)
            buf_putc(out, ',');
        buf_json_cstr(out, cs->cols[i].name);
    }
    buf_puts(out, "],\"types\":[");
    for (int i = 0; i < cs->n; i++) {
        if (i)
            buf_putc(out, ',');
        buf_json_cstr(out, cs->cols[i].type);
    }
    buf_putc(out, ']');
    if (rc != SQLITE_ROW)
        return rc;
    buf_puts(out, ",\"values\":[");
    for (bool first = true; rc == SQLITE_ROW; first = false) {
        buf_puts(out, first ? "[" : ",[");
        for (int i = 0; i < cs->n; i++) {
            if (i)
                buf_putc(out, ',');
            putValue(out, st, i, cs->cols[i].type, flags);
        }
        buf_putc(out, ']');
        rc = nextRow(st, out, start, max);
    }
    buf_putc(out, ']');
    return rc;
}

int dbEncodeRows(sqlite3_stmt *st, unsigned flags, size_t max, buf *out, double t0, char **err)
{
    colset cs;
    /* The columns after the first step: a kept statement that SQLite
     * prepares again for a changed schema may have others by then. */
    int rc = sqlite3_step(st);
    colsetOpen(&cs, st, flags);
    if (rc == SQLITE_ROW)
        colsetTypesFromRow(&cs, st);
    size_t start = out->len;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = (flags & DB_ASSOC) ? putRowsAssoc(out, st, &cs, rc, flags, start, max)
                                : putRowsArray(out, st, &cs, rc, flags, start, max);
    colsetFree(&cs);
    if (rc != SQLITE_DONE) {
        truncateOut(out, start);
        if (rc == RESULT_CAPPED)
            *err = rq_sprintf("result too large: over %zu bytes (-db-max-result-size)", max);
        else
            *err = strdup(dbErrmsg(sqlite3_db_handle(st)));
        return -1;
    }
    putTime_(out, flags, t0);
    buf_putc(out, '}');
    return 0;
}

void dbPutError(buf *out, const char *msg, unsigned flags, double t0)
{
    buf_puts(out, "{\"error\":");
    buf_json_cstr(out, msg);
    putTime_(out, flags, t0);
    buf_putc(out, '}');
}

void dbPutExecResult(buf *out, sqlite3_int64 id, int changes, unsigned flags, double t0)
{
    buf_putc(out, '{');
    bool any = false;
    if (id) {
        buf_puts(out, "\"last_insert_id\":");
        buf_json_int(out, id);
        any = true;
    }
    if (changes) {
        buf_puts(out, any ? ",\"rows_affected\":" : "\"rows_affected\":");
        buf_json_int(out, changes);
        any = true;
    }
    if (flags & DB_ASSOC) {
        buf_puts(out, any ? ",\"rows\":null" : "\"rows\":null");
        any = true;
    }
    if (flags & DB_TIMINGS) {
        buf_puts(out, any ? ",\"time\":" : "\"time\":");
        buf_json_double(out, rq_now_sec() - t0);
    }
    buf_putc(out, '}');
}
