/*
 * service.c: rqlite's HTTP API over libmicrohttpd.
 *
 * One thread per connection (store calls block until Raft commits). Each
 * request's body is gathered into a buf, then routed by path; the data
 * endpoints write their results straight into the response buffer.
 *
 * Resources are bounded against hostile or broken clients (see "connections
 * and request intake" below): we accept connections ourselves and hand them
 * to libmicrohttpd, answering 503 beyond -http-max-conns; request framing
 * is checked before a body is read (413 beyond -http-max-body-size, 400 for
 * ambiguous lengths); and a watchdog closes connections that take longer
 * than -http-request-timeout to deliver a request, however slowly they drip
 * it. BENCHMARKS.md has the figures behind keeping a thread per connection.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sys/stat.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cluster/cluster.h"
#include "db/db.h"
#include "http/http.h"
#include "http/pretty.h"
#include "command/command.h"
#include "http/queue.h"
#include "util/log.h"
#include "util/os.h"

#define FORWARD_TIMEOUT_MS 30000

typedef struct http_conn http_conn;

struct http_server {
    const config *cfg;
    struct MHD_Daemon *mhd;
    store *st;              /* set once, read atomically */
    time_t start_time;
    queue *queue;          /* ?queue writes */
    pthread_mutex_t notify_mu;
    store_node *notified;   /* -bootstrap-expect: nodes that POSTed /notify */
    int n_notified;

    int listen_fd;
    int wake[2];            /* a byte here stops the accept thread */
    pthread_t acceptor, watchdog;
    bool watching;          /* the watchdog runs (-http-request-timeout > 0) */
    /* conns_mu guards the fields below. */
    pthread_mutex_t conns_mu;
    pthread_cond_t conns_cv; /* wakes the watchdog to stop */
    bool stopping;
    http_conn *conns;       /* started and not yet closed, for the watchdog */
    int n_conns;            /* admitted by the acceptor and not yet closed */
    bool at_cap;            /* refusing since the last "back under" log line */
    unsigned long refused;  /* 503s since at_cap was set */
    unsigned long cut;      /* timed-out connections not yet logged */
    int64_t cut_logged_ms;
    pthread_mutex_t log_mu; /* libmicrohttpd's messages, rate-limited */
    int64_t log_window_ms;
    int log_lines;
    unsigned long log_dropped;
};

typedef struct request {
    buf body;
    double t0;
} request;


static store *getStore(http_server *h)
{
    return __atomic_load_n(&h->st, __ATOMIC_ACQUIRE);
}

/* ---- query parameters ---------------------------------------------------- */

typedef struct param_find {
    const char *key;
    bool found;
    const char *value;
} param_find;

static enum MHD_Result findParam(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    param_find *f = cls;
    (void)kind;
    if (strcmp(key, f->key) == 0) {
        f->found = true;
        f->value = value;
        return MHD_NO; /* first value wins */
    }
    return MHD_YES;
}

/* Parameters are presence flags: ?pretty, ?pretty=false and ?pretty=0 all
 * mean on (rqlite's rule). */
static bool hasParam(struct MHD_Connection *c, const char *key)
{
    param_find f = {key, false, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, findParam, &f);
    return f.found;
}

static const char *paramValue(struct MHD_Connection *c, const char *key)
{
    param_find f = {key, false, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, findParam, &f);
    return f.found ? (f.value ? f.value : "") : NULL;
}

static void urlEncode(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_putc(b, (char)*p);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[*p >> 4]);
            buf_putc(b, hex[*p & 15]);
        }
    }
}

static enum MHD_Result rebuildQuery(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    buf *b = cls;
    (void)kind;
    if (b->len)
        buf_putc(b, '&');
    urlEncode(b, key);
    if (value) {
        buf_putc(b, '=');
        urlEncode(b, value);
    }
    return MHD_YES;
}

/* The request's query string, re-encoded ("" when none). */
static void rawQuery(struct MHD_Connection *c, buf *out)
{
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, rebuildQuery, out);
}

/* ---- responses ------------------------------------------------------------ */

/* X-RQLITE-SERVED-BY for the request this thread is answering (a thread
 * serves one connection at a time): this node's API address for local data
 * requests, the leader's Raft address for forwarded ones. */
static __thread char served_by[300];

static enum MHD_Result replyWith(http_server *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, struct MHD_Response *r);

static enum MHD_Result reply(http_server *h, struct MHD_Connection *c, unsigned status,
                            const char *ctype, buf *body)
{
    size_t len = 0;
    char *data = body ? buf_detach(body, &len) : NULL;
    struct MHD_Response *r =
        data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    return replyWith(h, c, status, ctype, r);
}

/* Queue r (consumed) with the headers every answer carries. */
static enum MHD_Result replyWith(http_server *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, struct MHD_Response *r)
{
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-RQLITE-VERSION", RQ_VERSION);
    if (served_by[0])
        MHD_add_response_header(r, "X-RQLITE-SERVED-BY", served_by);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "OPTIONS, GET, POST");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type");
    if (h->cfg->http_allow_origin && *h->cfg->http_allow_origin)
        MHD_add_response_header(r, "Access-Control-Allow-Origin", h->cfg->http_allow_origin);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result sendEmpty(http_server *h, struct MHD_Connection *c, unsigned status)
{
    return reply(h, c, status, NULL, NULL);
}

/* Go's http.Error: message + "\n" as text/plain. */
static enum MHD_Result sendText(http_server *h, struct MHD_Connection *c, unsigned status, const char *msg)
{
    buf b = BUF_INIT;
    buf_puts(&b, msg);
    buf_putc(&b, '\n');
    return reply(h, c, status, "text/plain; charset=utf-8", &b);
}

/* sendText for "prefix: err", taking ownership of err. */
static enum MHD_Result sendError(http_server *h, struct MHD_Connection *c, unsigned status,
                                 const char *prefix, char *err, const char *fallback)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s%s%s\n", prefix, prefix[0] ? ": " : "", err ? err : fallback);
    free(err);
    return reply(h, c, status, "text/plain; charset=utf-8", &b);
}

static enum MHD_Result sendJson(http_server *h, struct MHD_Connection *c, unsigned status,
                                buf *body, bool pretty)
{
    if (pretty) {
        buf p = BUF_INIT;
        pretty_json(body->data ? body->data : "", body->len, &p);
        buf_free(body);
        *body = p;
    }
    return reply(h, c, status, "application/json; charset=utf-8", body);
}

static enum MHD_Result sendJansson(http_server *h, struct MHD_Connection *c, unsigned status,
                                   json_t *doc, bool pretty)
{
    char *text = json_dumps(doc, JSON_SORT_KEYS | (pretty ? JSON_INDENT(4) : JSON_COMPACT));
    json_decref(doc);
    buf b = BUF_INIT;
    buf_puts(&b, text ? text : "{}");
    free(text);
    return reply(h, c, status, "application/json; charset=utf-8", &b);
}

/* {"results":[],"error":msg} with status 200: whole-request store errors. */
static enum MHD_Result sendResultsError(http_server *h, struct MHD_Connection *c, const char *msg, bool pretty)
{
    buf b = BUF_INIT;
    buf_puts(&b, "{\"results\":[],\"error\":");
    json_cstr(&b, msg);
    buf_putc(&b, '}');
    return sendJson(h, c, 200, &b, pretty);
}

/* 301 to the leader (?redirect, and /join on a follower). */
static enum MHD_Result sendRedirect(struct MHD_Connection *c, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", location);
    MHD_add_response_header(r, "X-RQLITE-VERSION", RQ_VERSION);
    enum MHD_Result ret = MHD_queue_response(c, 301, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- forwarding to the leader ---------------------------------------------- */

static enum MHD_Result forwardOrFail(http_server *h, struct MHD_Connection *c, const char *method,
                                     const char *path, request *rq)
{
    store *st = getStore(h);
    store_node leader;
    if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
        return sendText(h, c, 503, "leader not found");
    buf q = BUF_INIT;
    rawQuery(c, &q);
    buf url = BUF_INIT;
    buf_printf(&url, "%s%s%s%s", leader.api_addr, path, q.len ? "?" : "", q.len ? q.data : "");
    buf_free(&q);
    if (hasParam(c, "redirect")) {
        enum MHD_Result ret = sendRedirect(c, url.data);
        buf_free(&url);
        return ret;
    }
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(served_by, sizeof served_by, "%s", leader.addr);
    cluster_response resp;
    char *err = NULL;
    /* Longer than the leader may take to apply, so a slow write is not cut. */
    uint64_t timeout = h->cfg->raft_apply_timeout_ms + 5000;
    int rc = cluster_forward(method, url.data, rq->body.data, rq->body.len, ctype, auth,
                             timeout, &resp, &err);
    buf_free(&url);
    if (rc != 0) {
        return sendError(h, c, 503, "forwarding to leader failed", err, "?");
    }
    enum MHD_Result ret = reply(h, c, (unsigned)resp.status,
                               resp.content_type[0] ? resp.content_type : NULL, &resp.body);
    cluster_response_free(&resp);
    return ret;
}

/* ---- data endpoints ---------------------------------------------------------- */

static unsigned dbFlags(struct MHD_Connection *c)
{
    unsigned f = 0;
    if (hasParam(c, "transaction")) f |= DB_TX;
    if (hasParam(c, "timings")) f |= DB_TIMINGS;
    if (hasParam(c, "associative")) f |= DB_ASSOC;
    if (hasParam(c, "blob_array")) f |= DB_BLOB_ARRAY;
    if (hasParam(c, "qualify_columns")) f |= DB_QUALIFY;
    return f;
}

static store_level parseLevel(struct MHD_Connection *c)
{
    const char *l = paramValue(c, "level");
    if (l == NULL) return LEVEL_WEAK;
    if (strcasecmp(l, "none") == 0) return LEVEL_NONE;
    if (strcasecmp(l, "strong") == 0) return LEVEL_STRONG;
    if (strcasecmp(l, "linearizable") == 0) return LEVEL_LINEARIZABLE;
    if (strcasecmp(l, "auto") == 0) return LEVEL_AUTO;
    return LEVEL_WEAK;
}

static bool isTextPlain(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    return ct && strncasecmp(ct, "text/plain", 10) == 0;
}

/* The statements of a request: a JSON array, or with text/plain the whole
 * body as one statement. Returns 0, or -1 with *err (400 material). */
static int requestStatements(struct MHD_Connection *c, request *rq, cmd_batch *out, char **err)
{
    if (isTextPlain(c))
        return cmd_from_sql(rq->body.data, rq->body.len, out, err);
    return cmd_from_json(rq->body.data ? rq->body.data : "", rq->body.len, out, err);
}

/* Answer a store code other than STORE_OK and STORE_NOT_LEADER, taking
 * err: input refused before anything was proposed gets its HTTP status,
 * other failures rqlite's whole-request error (HTTP 200). */
static enum MHD_Result sendStoreError(http_server *h, struct MHD_Connection *c, int rc, char *err, bool pretty)
{
    enum MHD_Result ret;
    switch (rc) {
    case STORE_DISALLOWED:
        ret = sendResultsError(h, c, "disallowed pragma", pretty);
        break;
    case STORE_INVALID:
        ret = sendText(h, c, 400, err ? err : "invalid request");
        break;
    case STORE_TOO_LARGE:
        ret = sendText(h, c, 413, err ? err : "request too large");
        break;
    default:
        ret = sendResultsError(h, c, err ? err : "unknown error", pretty);
        break;
    }
    free(err);
    return ret;
}

/* Responses are built in place: the envelope's head goes into the buffer
 * before the store appends the results, the tail after, so large results
 * are never copied into a second buffer. */
#define RESULTS_HEAD "{\"results\":["

static void finishResults(buf *out, request *rq, unsigned flags, uint64_t raft_index)
{
    buf_putc(out, ']');
    if (flags & DB_TIMINGS) {
        buf_puts(out, ",\"time\":");
        json_double(out, rq_now_sec() - rq->t0);
    }
    if (raft_index) {
        buf_puts(out, ",\"raft_index\":");
        json_int(out, (int64_t)raft_index);
    }
    buf_putc(out, '}');
}

/* A read's ?freshness, ?freshness_strict and ?db_timeout; returns false
 * after answering 400. */
static bool readParams(http_server *h, struct MHD_Connection *c, store_read *rd, enum MHD_Result *ret)
{
    const char *f = paramValue(c, "freshness");
    const char *t = paramValue(c, "db_timeout");
    uint64_t ns = 0;
    rd->freshness_strict = hasParam(c, "freshness_strict");
    /* Microseconds, rounded up: 1ns asks for a fresh read, not none. */
    if (f && config_parse_duration_ns(f, &ns) != 0) {
        *ret = sendText(h, c, 400, "freshness is not a valid duration");
        return false;
    }
    rd->freshness_us = (ns + 999) / 1000;
    if (rd->freshness_strict && f == NULL) {
        *ret = sendText(h, c, 400, "freshness_strict requires freshness");
        return false;
    }
    ns = 0;
    if (t && config_parse_duration_ns(t, &ns) != 0) {
        *ret = sendText(h, c, 400, "db_timeout is not a valid duration");
        return false;
    }
    rd->db_timeout_us = (ns + 999) / 1000;
    return true;
}

/* Queued writes: apply a merged batch here if leader, else on the leader. */
static int flushQueued(void *ctx, const cmd_view *stmts, bool tx)
{
    http_server *h = ctx;
    store *st = getStore(h);
    if (st == NULL)
        return -1;
    char *err = NULL;
    int rc = store_execute(st, stmts, tx ? DB_TX : 0, 0, NULL, NULL, &err);
    free(err);
    if (rc == STORE_OK)
        return 0;
    if (rc != STORE_NOT_LEADER)
        return rc == STORE_ERROR ? -1 : 1; /* refused for good: not retried */
    store_node leader;
    if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
        return -1;
    char url[400];
    snprintf(url, sizeof url, "%s/db/execute%s", leader.api_addr, tx ? "?transaction" : "");
    char *body = cmd_to_json(stmts);
    cluster_response resp;
    rc = cluster_forward("POST", url, body, strlen(body), "application/json", NULL,
                         FORWARD_TIMEOUT_MS, &resp, &err);
    free(body);
    if (rc != 0) {
        free(err);
        return -1;
    }
    long status = resp.status;
    bool whole_error = resp.body.data && strstr(resp.body.data, "{\"results\":[],\"error\"") != NULL;
    cluster_response_free(&resp);
    if (status == 400 || status == 413)
        return 1;
    return status == 200 && !whole_error ? 0 : -1;
}

static enum MHD_Result handleQueued(http_server *h, struct MHD_Connection *c, request *rq, bool pretty)
{
    store *st = getStore(h);
    store_node leader;
    if (!hasParam(c, "noleader") && !store_leader(st, &leader))
        return sendText(h, c, 503, "leader not found");
    bool wait = hasParam(c, "wait");
    char *err = NULL;
    cmd_batch b;
    cmd_batch_init(&b);
    if (requestStatements(c, rq, &b, &err) != 0) {
        /* rqlite's quirk: anything unparsable but an empty request is
         * accepted and dropped; SQL with a NUL byte is refused as on every
         * other path. */
        bool refuse = err && (strcmp(err, "no statements") == 0 ? !wait : strstr(err, "NUL") != NULL);
        if (refuse) {
            enum MHD_Result ret = sendText(h, c, 400, err);
            free(err);
            return ret;
        }
        free(err);
        cmd_batch_init(&b);
    }
    /* The policy looks at queued statements now, while the client is here
     * to be told. */
    cmd_view v = cmd_batch_view(&b);
    bool readonly;
    if (b.n > 0 && store_check(st, &v, &readonly) == STORE_DISALLOWED) {
        cmd_batch_free(&b);
        return sendResultsError(h, c, "disallowed pragma", pretty);
    }
    int64_t seq = queue_add(h->queue, &b);
    if (wait) {
        uint64_t timeout = 30000;
        const char *t = paramValue(c, "timeout");
        if (t && config_parse_duration(t, &timeout) != 0)
            return sendText(h, c, 400, "timeout is not a valid duration");
        if (!queue_wait(h->queue, seq, timeout))
            return sendText(h, c, 408, "queue wait timeout");
    }
    buf out = BUF_INIT;
    buf_printf(&out, "{\"results\":[],\"sequence_number\":%lld}", (long long)seq);
    return sendJson(h, c, 200, &out, pretty);
}

typedef enum { KIND_EXECUTE, KIND_QUERY, KIND_REQUEST } data_kind;

static enum MHD_Result handleData(http_server *h, struct MHD_Connection *c, data_kind kind,
                                  const char *method, const char *path, request *rq)
{
    store *st = getStore(h);
    bool pretty = hasParam(c, "pretty");
    if (st == NULL)
        return sendResultsError(h, c, "store not open", pretty);
    if (kind == KIND_EXECUTE && hasParam(c, "queue"))
        return handleQueued(h, c, rq, pretty);
    unsigned flags = dbFlags(c);
    cmd_batch b;
    char *err = NULL;
    enum MHD_Result ret;
    if (kind == KIND_QUERY && strcmp(method, "GET") == 0) {
        /* The whole decoded value, NUL bytes (%00) included, so that SQL
         * with a NUL is refused here as on every other path. */
        const char *qv = NULL;
        size_t qlen = 0;
        if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "q", 1, &qv, &qlen) != MHD_YES) {
            buf e = BUF_INIT;
            buf_puts(&e, "{\"results\":[]}");
            return sendJson(h, c, 200, &e, pretty);
        }
        if (qv == NULL || qlen == 0)
            return sendText(h, c, 400, "query parameter not set");
        if (cmd_from_sql(qv, qlen, &b, &err) != 0) {
            ret = sendText(h, c, 400, err);
            free(err);
            return ret;
        }
    } else if (requestStatements(c, rq, &b, &err) != 0) {
        ret = sendText(h, c, 400, err ? err : "invalid request");
        free(err);
        return ret;
    }
    store_read rd = {.level = parseLevel(c)};
    if (!readParams(h, c, &rd, &ret)) {
        cmd_batch_free(&b);
        return ret;
    }
    cmd_view v = cmd_batch_view(&b);
    buf results = BUF_INIT;
    buf_puts(&results, RESULTS_HEAD);
    uint64_t raft_index = 0;
    int rc;
    switch (kind) {
    case KIND_EXECUTE:
        rc = store_execute(st, &v, flags, rd.db_timeout_us, &results, &raft_index, &err);
        break;
    case KIND_QUERY:
        rc = store_query(st, &v, flags, &rd, &results, &err);
        break;
    default:
        rc = store_request(st, &v, flags, &rd, &results, &err);
        break;
    }
    cmd_batch_free(&b);
    if (rc == STORE_NOT_LEADER) {
        buf_free(&results);
        free(err);
        return forwardOrFail(h, c, method, path, rq);
    }
    if (rc != STORE_OK) {
        buf_free(&results);
        return sendStoreError(h, c, rc, err, pretty);
    }
    finishResults(&results, rq, flags, hasParam(c, "raft_index") ? raft_index : 0);
    return sendJson(h, c, 200, &results, pretty);
}

/* ---- backup and load ------------------------------------------------------------ */

static const char sqliteHeader[16] = "SQLite format 3";  /* with its NUL */

static bool isSqliteImage(const buf *b)
{
    return b->len >= 16 && memcmp(b->data, sqliteHeader, 16) == 0;
}

/* gzip in into out; returns 0 or -1. */
static int gzipBuf(const void *in, size_t n, buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)n);
    buf_reserve(out, cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    out->len += cap - z.avail_out;
    out->data[out->len] = '\0';
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

typedef struct copyProgress {
    const char *what;
    int64_t last_ms;
} copyProgress;

static void logCopyProgress(void *arg, long long done, long long total)
{
    copyProgress *p = arg;
    int64_t now = rq_now_ms();
    if (now - p->last_ms < 1000 || total <= 0)
        return;
    p->last_ms = now;
    rq_log("http", "%s: copied %lld of %lld bytes (%d%%)", p->what, done, total, (int)(done * 100 / total));
}

/* A consistent copy of the database (store_copy), progress logged.
 * Returns the descriptor (size in *size) or -1 with *err set. */
static int copyToFd(store *st, unsigned flags, const char *what, off_t *size, char **err)
{
    copyProgress prog = {what, rq_now_ms()};
    uint64_t n = 0;
    int fd = store_copy(st, flags, logCopyProgress, &prog, &n, err);
    *size = (off_t)n;
    return fd;
}

/* ?compress on a binary backup: the copy gzipped while it is sent, so that
 * memory does not grow with the database. */
typedef struct gzStream {
    int fd;
    bool eof, done;
    z_stream z;
    unsigned char in[64 * 1024];
} gzStream;

static ssize_t gzRead(void *cls, uint64_t pos, char *out, size_t max)
{
    gzStream *g = cls;
    (void)pos;
    if (g->done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    g->z.next_out = (Bytef *)out;
    g->z.avail_out = (uInt)(max > (1u << 30) ? (1u << 30) : max);
    uInt room = g->z.avail_out;
    while (g->z.avail_out == room && !g->done) {
        if (g->z.avail_in == 0 && !g->eof) {
            ssize_t n = read(g->fd, g->in, sizeof g->in);
            if (n < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            g->eof = n == 0;
            g->z.next_in = g->in;
            g->z.avail_in = (uInt)n;
        }
        int rc = deflate(&g->z, g->eof ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            g->done = true;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = room - g->z.avail_out;
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void gzFree(void *cls)
{
    gzStream *g = cls;
    deflateEnd(&g->z);
    close(g->fd);
    free(g);
}

/* Takes fd; NULL if zlib cannot start (fd closed). */
static struct MHD_Response *gzResponse(int fd)
{
    gzStream *g = calloc(1, sizeof *g);
    if (g == NULL || deflateInit2(&g->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        close(fd);
        return NULL;
    }
    g->fd = fd;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, gzRead, g, gzFree);
    if (r == NULL)
        gzFree(g);
    return r;
}

static enum MHD_Result handleBackup(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = getStore(h);
    if (st == NULL)
        return sendText(h, c, 503, "store not open");
    if (!hasParam(c, "noleader") && !store_is_leader(st))
        return forwardOrFail(h, c, "GET", "/db/backup", rq);
    const char *fmt = paramValue(c, "fmt");
    bool sql = fmt && strcmp(fmt, "sql") == 0;
    if (sql && hasParam(c, "vacuum"))
        return sendText(h, c, 500, "invalid backup format");
    buf body = BUF_INIT;
    char *err = NULL;
    const char *ctype = "application/octet-stream";
    if (sql) {
        if (store_dump(st, paramValue(c, "tables"), &body, &err) != 0)
            goto fail;
        ctype = "application/sql";
    } else {
        off_t size = 0;
        int fd = copyToFd(st, hasParam(c, "vacuum") ? DB_BACKUP_VACUUM : 0, "backup", &size, &err);
        if (fd < 0)
            goto fail;
        /* fmt=delete: the same pages, header saying rollback journal. */
        unsigned char ver[2];
        if (fmt && strcmp(fmt, "delete") == 0 && pread(fd, ver, 2, 18) == 2 && ver[0] == 2) {
            ver[0] = ver[1] = 1;
            if (pwrite(fd, ver, 2, 18) != 2)
                rq_log("http", "backup: cannot rewrite the journal mode bytes");
        }
        bool gz = hasParam(c, "compress");
        rq_log("http", "backup (binary%s) of %lld bytes served", gz ? ", gzipped as sent" : "", (long long)size);
        if (!gz)
            return replyWith(h, c, 200, ctype, MHD_create_response_from_fd((uint64_t)size, fd));
        struct MHD_Response *r = gzResponse(fd);
        if (r == NULL)
            return sendText(h, c, 500, "compression failed");
        return replyWith(h, c, 200, ctype, r);
    }
    rq_log("http", "backup (sql) of %zu bytes served", body.len);
    if (hasParam(c, "compress")) {
        buf z = BUF_INIT;
        if (gzipBuf(body.data ? body.data : "", body.len, &z) != 0) {
            buf_free(&z);
            buf_free(&body);
            return sendText(h, c, 500, "compression failed");
        }
        buf_free(&body);
        body = z;
    }
    return reply(h, c, 200, ctype, &body);
fail:
    buf_free(&body);
    return sendError(h, c, 500, "", err, "backup failed");
}

/* POST /db/load: a SQLite image (replicated as one load entry) or SQL text
 * (run as one request, a failing statement rolling back an open transaction). POST /boot: an image, single-node only. */
static enum MHD_Result handleLoad(http_server *h, struct MHD_Connection *c, request *rq, bool boot)
{
    store *st = getStore(h);
    if (st == NULL)
        return sendText(h, c, 503, "store not open");
    bool image = isSqliteImage(&rq->body);
    if (boot) {
        if (!image)
            return sendText(h, c, 400, "invalid SQLite data");
        /* A bad image is the client's to hear of first, wherever it lands. */
        char *ierr = NULL;
        if (store_image_check(rq->body.data, rq->body.len, &ierr) != 0)
            return sendError(h, c, 400, "", ierr, "invalid database image");
        store_node *nodes = NULL;
        int n = store_nodes(st, &nodes);
        free(nodes);
        if (!store_is_leader(st))
            return sendText(h, c, 503, "not leader");
        if (n != 1)
            return sendText(h, c, 503, "not single-node");
    }
    char *err = NULL;
    int rc;
    buf results = BUF_INIT;
    buf_puts(&results, RESULTS_HEAD);
    if (image) {
        rq_log("http", "loading a %zu-byte SQLite image", rq->body.len);
        rc = store_load(st, rq->body.data, rq->body.len, &err);
    } else {
        cmd_batch b;
        if (cmd_from_sql(rq->body.data, rq->body.len, &b, &err) != 0) {
            enum MHD_Result ret = sendText(h, c, 400, err);
            free(err);
            buf_free(&results);
            return ret;
        }
        cmd_view v = cmd_batch_view(&b);
        rc = store_execute(st, &v, 0, 0, &results, NULL, &err);
        cmd_batch_free(&b);
    }
    if (rc == STORE_NOT_LEADER) {
        buf_free(&results);
        free(err);
        if (boot)
            return sendText(h, c, 503, "not leader");
        return forwardOrFail(h, c, "POST", "/db/load", rq);
    }
    if (rc != STORE_OK) {
        buf_free(&results);
        if (boot && (rc == STORE_ERROR || rc == STORE_DISALLOWED)) {
            enum MHD_Result ret = sendText(h, c, 503, err ? err : "boot failed");
            free(err);
            return ret;
        }
        return sendStoreError(h, c, rc, err ? err : strdup("load failed"), false);
    }
    if (boot) {
        buf_free(&results);
        return sendEmpty(h, c, 200);
    }
    finishResults(&results, rq, 0, 0);
    return sendJson(h, c, 200, &results, hasParam(c, "pretty"));
}

/* ---- status and cluster endpoints ---------------------------------------------- */

static json_t *statusDoc(http_server *h)
{
    const config *cfg = h->cfg;
    struct utsname un;
    uname(&un);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    char nowbuf[64], startbuf[64];
    strftime(nowbuf, sizeof nowbuf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    strftime(startbuf, sizeof startbuf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&h->start_time));
    char uptime[64];
    snprintf(uptime, sizeof uptime, "%lds", (long)(now - h->start_time));
    char api[300];
    snprintf(api, sizeof api, "http://%s", cfg->http_adv_addr);
    json_t *doc = json_object();
    json_object_set_new(doc, "build", json_pack("{s:s,s:s,s:s,s:s,s:s}", "version", RQ_VERSION,
                                                "commit", "unknown", "branch", "main", "build_time",
                                                __DATE__ " " __TIME__, "compiler", "gcc"));
    json_object_set_new(doc, "cluster", json_pack("{s:s,s:s,s:b}", "addr", cfg->raft_adv_addr,
                                                  "api_addr", api, "https", false));
    char qtimeout[32];
    snprintf(qtimeout, sizeof qtimeout, "%llums", (unsigned long long)cfg->write_queue_timeout_ms);
    json_object_set_new(doc, "http", json_pack("{s:s,s:s,s:{s:s},s:{s:{s:i,s:i,s:I,s:s}}}", "auth",
                                               "disabled", "bind_addr", cfg->http_addr, "tls", "enabled",
                                               "false", "queue", "_default", "batch_size",
                                               cfg->write_queue_batch_size, "max_size",
                                               cfg->write_queue_capacity, "sequence_number",
                                               (json_int_t)queue_sequence(h->queue), "timeout", qtimeout));
    json_object_set_new(doc, "node", json_pack("{s:s,s:s,s:s}", "current_time", nowbuf,
                                               "start_time", startbuf, "uptime", uptime));
    json_object_set_new(doc, "os", json_pack("{s:s,s:i,s:i,s:i}", "hostname", host, "page_size",
                                             (int)sysconf(_SC_PAGESIZE), "pid", (int)getpid(), "ppid",
                                             (int)getppid()));
    json_object_set_new(doc, "runtime", json_pack("{s:s,s:s,s:i,s:i}", "GOOS", "linux", "GOARCH",
                                                  un.machine, "num_cpu", (int)sysconf(_SC_NPROCESSORS_ONLN),
                                                  "GOMAXPROCS", (int)sysconf(_SC_NPROCESSORS_ONLN)));
    store *st = getStore(h);
    json_object_set_new(doc, "store", st ? store_status(st) : json_pack("{s:b}", "open", false));
    return doc;
}

static enum MHD_Result handleStatus(http_server *h, struct MHD_Connection *c)
{
    json_t *doc = statusDoc(h);
    const char *key = paramValue(c, "key");
    if (key && *key) {
        json_t *cur = doc;
        char *k = strdup(key), *save = NULL;
        for (char *part = strtok_r(k, ".", &save); part && cur; part = strtok_r(NULL, ".", &save))
            cur = json_object_get(cur, part);
        free(k);
        json_t *sub = cur && json_is_object(cur) ? json_incref(cur) : json_object();
        json_decref(doc);
        return sendJansson(h, c, 200, sub, false);
    }
    return sendJansson(h, c, 200, doc, hasParam(c, "pretty"));
}

typedef struct probe {
    store_node node;
    bool self, is_leader, reachable;
    double time;
    char error[256];
    pthread_t thread;
} probe;

static void *probeNode(void *arg)
{
    probe *p = arg;
    double t0 = rq_now_sec();
    if (p->self) {
        p->reachable = true;
    } else if (p->node.api_addr[0] == '\0') {
        snprintf(p->error, sizeof p->error, "node API address unknown");
    } else {
        char url[400];
        snprintf(url, sizeof url, "%s/status?key=build", p->node.api_addr);
        cluster_response resp;
        char *err = NULL;
        if (cluster_forward("GET", url, NULL, 0, NULL, NULL, 5000, &resp, &err) == 0 && resp.status == 200) {
            p->reachable = true;
        } else {
            snprintf(p->error, sizeof p->error, "%s", err ? err : "timeout waiting for node to respond");
        }
        if (err == NULL)
            cluster_response_free(&resp);
        free(err);
    }
    p->time = rq_now_sec() - t0;
    return NULL;
}

static int cmpProbe(const void *a, const void *b)
{
    return strcmp(((const probe *)a)->node.id, ((const probe *)b)->node.id);
}

/* Go's time.Duration.String() for a probe time ("38.1µs", "1.25ms"). */
static void goDuration(buf *b, double seconds)
{
    long long ns = (long long)(seconds * 1e9 + 0.5);
    char tmp[64];
    const char *unit;
    double v;
    if (ns < 1000) {
        buf_printf(b, "%lldns", ns);
        return;
    } else if (ns < 1000000) {
        v = ns / 1e3, unit = "µs";
        snprintf(tmp, sizeof tmp, "%.3f", v);
    } else if (ns < 1000000000LL) {
        v = ns / 1e6, unit = "ms";
        snprintf(tmp, sizeof tmp, "%.6f", v);
    } else {
        v = ns / 1e9, unit = "s";
        snprintf(tmp, sizeof tmp, "%.9f", v);
    }
    size_t n = strlen(tmp);
    while (tmp[n - 1] == '0')
        tmp[--n] = '\0';
    if (tmp[n - 1] == '.')
        tmp[--n] = '\0';
    buf_printf(b, "%s%s", tmp, unit);
}

static void putNode(buf *b, const probe *p)
{
    buf_puts(b, "{\"id\":");
    json_cstr(b, p->node.id);
    if (p->node.api_addr[0]) {
        buf_puts(b, ",\"api_addr\":");
        json_cstr(b, p->node.api_addr);
    }
    buf_puts(b, ",\"addr\":");
    json_cstr(b, p->node.addr);
    buf_puts(b, ",\"version\":");
    json_cstr(b, p->reachable ? RQ_VERSION : "");
    buf_printf(b, ",\"voter\":%s,\"reachable\":%s,\"leader\":%s", p->node.voter ? "true" : "false",
               p->reachable ? "true" : "false", p->is_leader ? "true" : "false");
    buf_puts(b, ",\"time\":");
    json_double(b, p->time);
    buf_puts(b, ",\"time_s\":\"");
    goDuration(b, p->time);
    buf_putc(b, '"');
    if (p->error[0]) {
        buf_puts(b, ",\"error\":");
        json_cstr(b, p->error);
    }
    buf_putc(b, '}');
}

static int probeNodes(http_server *h, bool nonvoters, probe **out)
{
    store *st = getStore(h);
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes);
    store_node leader;
    bool has_leader = store_leader(st, &leader);
    probe *ps = calloc(n ? (size_t)n : 1, sizeof *ps);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!nodes[i].voter && !nonvoters)
            continue;
        probe *p = &ps[k++];
        p->node = nodes[i];
        p->self = strcmp(nodes[i].id, store_node_id(st)) == 0;
        p->is_leader = has_leader && strcmp(leader.addr, nodes[i].addr) == 0;
    }
    free(nodes);
    for (int i = 0; i < k; i++)
        if (pthread_create(&ps[i].thread, NULL, probeNode, &ps[i]) != 0)
            probeNode(&ps[i]), ps[i].thread = 0;
    for (int i = 0; i < k; i++)
        if (ps[i].thread)
            pthread_join(ps[i].thread, NULL);
    for (int i = 0; i < k; i++)
        if (!ps[i].reachable)
            ps[i].is_leader = false;
    qsort(ps, (size_t)k, sizeof *ps, cmpProbe);
    *out = ps;
    return k;
}

static enum MHD_Result handleNodes(http_server *h, struct MHD_Connection *c)
{
    if (getStore(h) == NULL)
        return sendText(h, c, 503, "store nodes: store not open");
    probe *ps = NULL;
    int n = probeNodes(h, hasParam(c, "nonvoters"), &ps);
    const char *ver = paramValue(c, "ver");
    bool v2 = ver && strcmp(ver, "2") == 0;
    buf b = BUF_INIT;
    buf_puts(&b, v2 ? "{\"nodes\":[" : "{");
    for (int i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        if (!v2) {
            json_cstr(&b, ps[i].node.id);
            buf_putc(&b, ':');
        }
        putNode(&b, &ps[i]);
    }
    buf_puts(&b, v2 ? "]}" : "}");
    free(ps);
    return sendJson(h, c, 200, &b, hasParam(c, "pretty"));
}

static enum MHD_Result handleReadyz(http_server *h, struct MHD_Connection *c)
{
    buf b = BUF_INIT;
    buf_puts(&b, "[+]node ok");
    if (hasParam(c, "noleader"))
        return reply(h, c, 200, "text/plain; charset=utf-8", &b);
    store *st = getStore(h);
    store_node leader;
    if (st == NULL || !store_leader(st, &leader)) {
        buf_puts(&b, "\n[+]leader does not exist");
        return reply(h, c, 503, "text/plain; charset=utf-8", &b);
    }
    buf_puts(&b, "\n[+]leader ok");
    if (!store_ready(st)) {
        buf_puts(&b, "\n[+]store not ready");
        return reply(h, c, 503, "text/plain; charset=utf-8", &b);
    }
    buf_puts(&b, "\n[+]store ok");
    if (hasParam(c, "sync")) {
        /* Wait until this node has applied what it knows to be committed. */
        uint64_t timeout = 5000;
        const char *t = paramValue(c, "timeout");
        if (t && config_parse_duration(t, &timeout) != 0) {
            buf_free(&b);
            return sendText(h, c, 400, "timeout is not a valid duration");
        }
        double deadline = rq_now_sec() + (double)timeout / 1000.0;
        bool synced = false;
        for (;;) {
            json_t *ss = store_status(st);
            json_t *raft = json_object_get(ss, "raft");
            synced = json_integer_value(json_object_get(raft, "applied_index")) >=
                     json_integer_value(json_object_get(raft, "commit_index"));
            json_decref(ss);
            if (synced || rq_now_sec() >= deadline)
                break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (!synced) {
            buf_puts(&b, "\n[+]sync timeout");
            return reply(h, c, 503, "text/plain; charset=utf-8", &b);
        }
        buf_puts(&b, "\n[+]sync ok");
    }
    cmd_batch q;
    char *qerr = NULL;
    buf r = BUF_INIT;
    if (cmd_from_sql("SELECT 1", 8, &q, &qerr) == 0) {
        cmd_view v = cmd_batch_view(&q);
        store_read none = {.level = LEVEL_NONE};
        if (store_query(st, &v, 0, &none, &r, &qerr) != STORE_OK)
            buf_puts(&r, "\"error\"");
        cmd_batch_free(&q);
    }
    free(qerr);
    bool ok = r.data && strstr(r.data, "\"error\"") == NULL;
    buf_free(&r);
    buf_puts(&b, ok ? "\n[+]db ok" : "\n[+]db not ok");
    return reply(h, c, ok ? 200 : 503, "text/plain; charset=utf-8", &b);
}

static enum MHD_Result handleLeader(http_server *h, struct MHD_Connection *c, const char *method,
                                    request *rq)
{
    store *st = getStore(h);
    if (st == NULL)
        return sendText(h, c, 503, "store not open");
    if (strcmp(method, "GET") == 0) {
        probe *ps = NULL;
        int n = probeNodes(h, true, &ps);
        for (int i = 0; i < n; i++) {
            if (ps[i].is_leader) {
                buf b = BUF_INIT;
                putNode(&b, &ps[i]);
                free(ps);
                return sendJson(h, c, 200, &b, hasParam(c, "pretty"));
            }
        }
        free(ps);
        return sendText(h, c, 503, "leader not found");
    }
    const char *id = NULL;
    json_t *body = NULL;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct && strcmp(ct, "application/json") == 0 && rq->body.len) {
        body = json_loadb(rq->body.data, rq->body.len, 0, NULL);
        if (body == NULL)
            return sendText(h, c, 400, "invalid JSON body");
        id = json_string_value(json_object_get(body, "id"));
    }
    char *err = NULL;
    int rc = store_stepdown(st, id, &err);
    json_decref(body);
    if (rc == STORE_NOT_LEADER) {
        free(err);
        return forwardOrFail(h, c, "POST", "/leader", rq);
    }
    if (rc != STORE_OK) {
        return sendError(h, c, 500, "stepdown", err, "?");
    }
    return sendEmpty(h, c, 200);
}

/* /join and /notify are open while auth is off (as in rqlite without
 * -auth), so their bodies are checked strictly before anything is done:
 * a JSON object of exactly these fields. */
typedef struct peerRequest {
    const char *id, *addr, *api; /* api NULL if absent */
    bool voter, reset;
} peerRequest;

#define PEER_FIELD_MAX 255

/* A host name or IPv4 address, or an IPv6 address in brackets. */
static bool validHost(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return true;
}

/* host:port, the port numeric in 1-65535. */
static bool validHostPort(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL || !validHost(a, (size_t)(colon - a)))
        return false;
    const char *p = colon + 1;
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;
    long port = strtol(p, NULL, 10);
    return port >= 1 && port <= 65535;
}

/* A string field of at most PEER_FIELD_MAX bytes without control
 * characters (NUL cannot occur: the parser rejects \u0000). */
static const char *peerString(json_t *body, const char *key, bool required, const char **out, char *why,
                              size_t wn)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL) {
        if (required)
            snprintf(why, wn, "missing \"%s\"", key);
        return required ? why : NULL;
    }
    if (!json_is_string(v)) {
        snprintf(why, wn, "\"%s\" must be a string", key);
        return why;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > PEER_FIELD_MAX) {
        snprintf(why, wn, "\"%s\" must be 1 to %d bytes long", key, PEER_FIELD_MAX);
        return why;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            snprintf(why, wn, "\"%s\" must not contain control characters", key);
            return why;
        }
    }
    *out = s;
    return NULL;
}

/* Parse and check a /join (join true) or /notify body. Returns NULL, or
 * the reason for a 400 (in why). *body is the parsed JSON (decref it). */
static const char *parsePeerRequest(const request *rq, bool join, json_t **body, peerRequest *p, char *why,
                                    size_t wn)
{
    memset(p, 0, sizeof *p);
    p->voter = true;
    *body = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, JSON_REJECT_DUPLICATES, NULL);
    if (*body == NULL)
        return "invalid JSON body";
    if (!json_is_object(*body))
        return "body must be a JSON object";
    const char *key;
    json_t *v;
    json_object_foreach(*body, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "addr") != 0 && strcmp(key, "api_addr") != 0 &&
            strcmp(key, "voter") != 0 && !(join && strcmp(key, "reset") == 0))
            return "unknown field in body";
    }
    if (peerString(*body, "id", true, &p->id, why, wn) || peerString(*body, "addr", true, &p->addr, why, wn) ||
        peerString(*body, "api_addr", false, &p->api, why, wn))
        return why;
    if (!validHostPort(p->addr))
        return "\"addr\" must be host:port with a port in 1-65535";
    if (p->api) {
        const char *hp = strncmp(p->api, "http://", 7) == 0    ? p->api + 7
                         : strncmp(p->api, "https://", 8) == 0 ? p->api + 8
                                                               : NULL;
        if (hp == NULL || !validHostPort(hp))
            return "\"api_addr\" must be http://host:port or https://host:port";
    }
    v = json_object_get(*body, "voter");
    if (v) {
        if (!json_is_boolean(v))
            return "\"voter\" must be a boolean";
        p->voter = json_is_true(v);
    }
    v = json_object_get(*body, "reset"); /* our extension: the joiner has no state */
    if (v) {
        if (!json_is_boolean(v))
            return "\"reset\" must be a boolean";
        p->reset = json_is_true(v);
    }
    return NULL;
}

static enum MHD_Result handleJoin(http_server *h, struct MHD_Connection *c, request *rq)
{
    json_t *body = NULL;
    peerRequest p;
    char why[128];
    const char *bad = parsePeerRequest(rq, true, &body, &p, why, sizeof why);
    if (bad) {
        json_decref(body);
        return sendText(h, c, 400, bad);
    }
    store *st = getStore(h);
    if (st == NULL) {
        json_decref(body);
        return sendText(h, c, 503, "store not open");
    }
    char *err = NULL;
    int rc = store_join(st, p.id, p.addr, p.api, p.voter, p.reset, &err);
    json_decref(body);
    if (rc == STORE_NOT_LEADER) {
        free(err);
        store_node leader;
        if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
            return sendText(h, c, 503, "leader not found");
        char loc[400];
        snprintf(loc, sizeof loc, "%s/join", leader.api_addr);
        return sendRedirect(c, loc);
    }
    if (rc != STORE_OK) {
        return sendError(h, c, 500, "", err, "join failed");
    }
    return sendEmpty(h, c, 200);
}

/* Distinct nodes /notify remembers: a -bootstrap-expect cluster is far
 * smaller, and a flood of made-up ids must not grow memory without end. */
#define MAX_NOTIFIED 256

/* POST /notify {"id","addr"[,"api_addr"]}: a node started with
 * -bootstrap-expect announces itself (main.c counts them). */
static enum MHD_Result handleNotify(http_server *h, struct MHD_Connection *c, request *rq)
{
    json_t *body = NULL;
    peerRequest p;
    char why[128];
    const char *bad = parsePeerRequest(rq, false, &body, &p, why, sizeof why);
    if (bad) {
        json_decref(body);
        return sendText(h, c, 400, bad);
    }
    pthread_mutex_lock(&h->notify_mu);
    int i = 0;
    while (i < h->n_notified && strcmp(h->notified[i].id, p.id) != 0)
        i++;
    if (i == h->n_notified) {
        store_node *more = i < MAX_NOTIFIED ? realloc(h->notified, (size_t)(i + 1) * sizeof *h->notified) : NULL;
        if (more == NULL) {
            pthread_mutex_unlock(&h->notify_mu);
            json_decref(body);
            return sendText(h, c, 503, "too many nodes have notified this node");
        }
        h->notified = more;
        h->n_notified++;
        rq_log("http", "node %s at %s notified us (%d known)", p.id, p.addr, h->n_notified);
    }
    store_node *n = &h->notified[i];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", p.id);
    snprintf(n->addr, sizeof n->addr, "%s", p.addr);
    snprintf(n->api_addr, sizeof n->api_addr, "%s", p.api ? p.api : "");
    n->voter = true;
    pthread_mutex_unlock(&h->notify_mu);
    json_decref(body);
    return sendEmpty(h, c, 200);
}

int http_server_notified(http_server *h, store_node **out)
{
    pthread_mutex_lock(&h->notify_mu);
    int n = h->n_notified;
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (n)
        memcpy(*out, h->notified, (size_t)n * sizeof **out);
    pthread_mutex_unlock(&h->notify_mu);
    return n;
}

static enum MHD_Result handleRemove(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = getStore(h);
    if (st == NULL)
        return sendText(h, c, 503, "store not open");
    json_t *body = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(body, "id"));
    if (!json_is_object(body) || json_object_size(body) != 1 || id == NULL) {
        json_decref(body);
        return sendEmpty(h, c, 400);
    }
    char *err = NULL;
    int rc = store_remove(st, id, &err);
    json_decref(body);
    if (rc == STORE_NOT_LEADER) {
        free(err);
        return forwardOrFail(h, c, "DELETE", "/remove", rq);
    }
    if (rc != STORE_OK) {
        return sendError(h, c, 500, "", err, "remove failed");
    }
    return sendEmpty(h, c, 200);
}

/* GET /debug/vars: expvar-style counters, in Go's expvar layout
 * ("{\n" + sorted "key": value lines joined by ",\n" + "\n}\n"). */
static enum MHD_Result handleVars(http_server *h, struct MHD_Connection *c)
{
    json_t *doc = json_object();
    json_t *cmdline = json_array();
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (f) {
        char arg[4096];
        size_t n = 0;
        int ch;
        while ((ch = fgetc(f)) != EOF) {
            if (ch == 0 || n == sizeof arg - 1) {
                arg[n] = 0;
                json_array_append_new(cmdline, json_string(arg));
                n = 0;
            } else {
                arg[n++] = (char)ch;
            }
        }
        fclose(f);
    }
    json_object_set_new(doc, "cmdline", cmdline);
    long rss = 0;
    f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    json_object_set_new(doc, "memstats", json_pack("{s:I}", "Sys", (json_int_t)rss * sysconf(_SC_PAGESIZE)));
    store *st = getStore(h);
    json_t *ss = st ? store_status(st) : NULL;
    json_object_set_new(doc, "store", json_pack("{s:I,s:I}", "num_snapshots",
                                                json_integer_value(json_object_get(ss, "num_snapshots")),
                                                "num_restores",
                                                json_integer_value(json_object_get(ss, "num_restores"))));
    json_decref(ss);
    json_object_set_new(doc, "http", json_pack("{s:I}", "queued_sequence_number",
                                               (json_int_t)queue_sequence(h->queue)));
    const char *key = paramValue(c, "key");
    buf b = BUF_INIT;
    buf_puts(&b, "{\n");
    const char *keys[] = {"cmdline", "http", "memstats", "store"};
    bool first = true;
    for (size_t i = 0; i < 4; i++) {
        if (key && *key && strcmp(key, keys[i]) != 0)
            continue;
        char *v = json_dumps(json_object_get(doc, keys[i]), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        buf_printf(&b, "%s\"%s\": %s", first ? "" : ",\n", keys[i], v ? v : "null");
        free(v);
        first = false;
    }
    buf_puts(&b, "\n}\n");
    json_decref(doc);
    return reply(h, c, 200, "application/json; charset=utf-8", &b);
}

/* POST /snapshot: a local snapshot and log truncation. A follower takes it
 * when it next applies an entry, so it nudges the leader with strong reads
 * (each one a log entry) until its snapshot is done. */
typedef struct snapJob {
    store *st;
    uint64_t trailing;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, nothing_new;
    int rc;
    char *err;
} snapJob;

static void *snapThread(void *arg)
{
    snapJob *j = arg;
    bool nothing = false;
    char *err = NULL;
    int rc = store_snapshot(j->st, j->trailing, &nothing, &err);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->err = err;
    j->nothing_new = nothing;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static enum MHD_Result handleSnapshot(http_server *h, struct MHD_Connection *c)
{
    store *st = getStore(h);
    if (st == NULL)
        return sendText(h, c, 503, "store not open");
    const char *tl = paramValue(c, "trailing_logs");
    if (tl && (*tl == '\0' || strspn(tl, "0123456789") != strlen(tl)))
        return sendText(h, c, 400, "trailing_logs is not a valid integer");
    snapJob j = {.st = st, .trailing = tl ? strtoull(tl, NULL, 10) : 0};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, snapThread, &j) != 0)
        return sendText(h, c, 500, "cannot start snapshot");
    double deadline = rq_now_sec() + 15;
    pthread_mutex_lock(&j.mu);
    while (!j.done && rq_now_sec() < deadline) {
        pthread_mutex_unlock(&j.mu);
        store_node leader;
        if (!store_is_leader(st) && store_leader(st, &leader) && leader.api_addr[0]) {
            char url[400];
            snprintf(url, sizeof url, "%s/db/query?q=SELECT%%201&level=strong", leader.api_addr);
            cluster_response resp;
            char *err = NULL;
            if (cluster_forward("GET", url, NULL, 0, NULL, NULL, 5000, &resp, &err) == 0)
                cluster_response_free(&resp);
            free(err);
        }
        pthread_mutex_lock(&j.mu);
        struct timespec ts;
        rq_deadline(&ts, 200);
        if (!j.done)
            pthread_cond_timedwait(&j.cv, &j.mu, &ts);
    }
    pthread_mutex_unlock(&j.mu);
    pthread_join(t, NULL); /* store_snapshot's own timeout bounds this */
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv);
    if (j.rc != STORE_OK) {
        return sendError(h, c, 500, "snapshot", j.err, "failed");
    }
    return sendEmpty(h, c, j.nothing_new ? 204 : 200);
}

/* ---- routing --------------------------------------------------------------------- */

static bool prefix(const char *url, const char *p)
{
    size_t n = strlen(p);
    return strncmp(url, p, n) == 0 && (url[n] == '\0' || url[n] == '/');
}

static enum MHD_Result route(http_server *h, struct MHD_Connection *c, const char *url,
                             const char *method, request *rq)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    served_by[0] = '\0';
    if (strncmp(url, "/db/", 4) == 0)
        snprintf(served_by, sizeof served_by, "%s", h->cfg->http_adv_addr);
    if (strcmp(method, "OPTIONS") == 0)
        return sendEmpty(h, c, 200);
    if (prefix(url, "/db/execute")) {
        if (!post) return sendEmpty(h, c, 405);
        return handleData(h, c, KIND_EXECUTE, method, "/db/execute", rq);
    }
    if (prefix(url, "/db/query")) {
        if (!get && !post) return sendEmpty(h, c, 405);
        return handleData(h, c, KIND_QUERY, method, "/db/query", rq);
    }
    if (prefix(url, "/db/request")) {
        if (!get && !post) return sendEmpty(h, c, 405);
        return handleData(h, c, KIND_REQUEST, method, "/db/request", rq);
    }
    if (prefix(url, "/db/backup")) {
        if (!get) return sendEmpty(h, c, 405);
        return handleBackup(h, c, rq);
    }
    if (prefix(url, "/db/load")) {
        if (!post) return sendEmpty(h, c, 405);
        return handleLoad(h, c, rq, false);
    }
    if (strcmp(url, "/boot") == 0) {
        if (!post) return sendEmpty(h, c, 405);
        return handleLoad(h, c, rq, true);
    }
    if (prefix(url, "/status")) {
        if (!get) return sendEmpty(h, c, 405);
        return handleStatus(h, c);
    }
    if (prefix(url, "/nodes")) {
        if (!get) return sendEmpty(h, c, 405);
        return handleNodes(h, c);
    }
    if (prefix(url, "/readyz")) {
        if (!get) return sendEmpty(h, c, 405);
        return handleReadyz(h, c);
    }
    if (strcmp(url, "/leader") == 0) {
        if (!get && !post) return sendEmpty(h, c, 405);
        return handleLeader(h, c, method, rq);
    }
    if (strcmp(url, "/snapshot") == 0) {
        if (!post) return sendEmpty(h, c, 405);
        return handleSnapshot(h, c);
    }
    if (strcmp(url, "/debug/vars") == 0)
        return handleVars(h, c);
    if (strcmp(url, "/join") == 0) {
        if (!post) return sendEmpty(h, c, 405);
        return handleJoin(h, c, rq);
    }
    if (strcmp(url, "/notify") == 0) {
        if (!post) return sendEmpty(h, c, 405);
        return handleNotify(h, c, rq);
    }
    if (prefix(url, "/remove")) {
        if (strcmp(method, "DELETE") != 0) return sendEmpty(h, c, 405);
        return handleRemove(h, c, rq);
    }
    return sendEmpty(h, c, 404);
}

/* ---- connections and request intake ----------------------------------------------- */

/* One connection libmicrohttpd serves, from MHD_CONNECTION_NOTIFY_STARTED
 * to MHD_CONNECTION_NOTIFY_CLOSED (its socket context). deadline is when
 * the watchdog shuts the socket down: -http-request-timeout after the
 * connection was accepted or the previous response was sent, so it bounds
 * both the wait between requests and the time to deliver one, however the
 * bytes are spread. While a handler runs or a response is sent it is
 * CONN_BUSY (not cut: the Raft wait and the client's reading are bounded
 * elsewhere); CONN_CUT once the watchdog has shut it down. The connection
 * thread and the watchdog change it only by compare-and-swap, so a request
 * is either cut before its handler starts or not at all. */
#define CONN_BUSY 0
#define CONN_CUT (-1)

struct http_conn {
    int fd;
    int64_t deadline; /* ms on rq_now_ms()'s clock, CONN_BUSY or CONN_CUT */
    http_conn *prev, *next;
};

static int64_t nextDeadline(http_server *h)
{
    return rq_now_ms() + (int64_t)h->cfg->http_request_timeout_ms;
}

static http_conn *connOf(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The request on c is complete (or answered early): the watchdog leaves it
 * alone until its response is sent. False if the watchdog cut it first. */
static bool connBusy(struct MHD_Connection *c)
{
    http_conn *k = connOf(c);
    if (k == NULL)
        return true;
    int64_t d = __atomic_load_n(&k->deadline, __ATOMIC_ACQUIRE);
    while (d != CONN_CUT && d != CONN_BUSY &&
           !__atomic_compare_exchange_n(&k->deadline, &d, CONN_BUSY, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
    return d != CONN_CUT;
}

/* Below this many connections after refusing some, the "back under" line is
 * logged (a margin, so that a client hovering at the cap logs two lines per
 * episode, not two per connection). */
static int lowWater(int cap)
{
    return cap - (cap + 9) / 10;
}

static void onConnection(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    http_server *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_conn *k = calloc(1, sizeof *k);
        if (k == NULL || ci == NULL) { /* not watched: only MHD's inactivity timeout applies */
            free(k);
            return;
        }
        k->fd = ci->connect_fd;
        k->deadline = nextDeadline(h);
        pthread_mutex_lock(&h->conns_mu);
        k->next = h->conns;
        if (h->conns)
            h->conns->prev = k;
        h->conns = k;
        pthread_mutex_unlock(&h->conns_mu);
        *socket_context = k;
        return;
    }
    /* CLOSED fires before libmicrohttpd closes the socket (daemon.c,
     * MHD_cleanup_connections), so once k is unlinked here under conns_mu
     * the watchdog can no longer shut down a descriptor number that has
     * been reused for another file. */
    http_conn *k = *socket_context;
    pthread_mutex_lock(&h->conns_mu);
    if (k) {
        if (k->prev)
            k->prev->next = k->next;
        else
            h->conns = k->next;
        if (k->next)
            k->next->prev = k->prev;
    }
    h->n_conns--;
    if (h->at_cap && h->n_conns <= lowWater(h->cfg->http_max_conns)) {
        rq_log("http", "back under the connection limit (%d open); %lu connections refused meanwhile",
               h->n_conns, h->refused);
        h->at_cap = false;
        h->refused = 0;
    }
    pthread_mutex_unlock(&h->conns_mu);
    free(k);
    *socket_context = NULL;
}

/* Shuts down the sockets of connections past their deadline; libmicrohttpd
 * then sees the end of the stream and closes them itself (the watchdog
 * never closes a descriptor it does not own). */
static void *watchdogThread(void *arg)
{
    http_server *h = arg;
    int64_t period = (int64_t)h->cfg->http_request_timeout_ms / 10;
    period = period < 50 ? 50 : period > 1000 ? 1000 : period;
    pthread_mutex_lock(&h->conns_mu);
    while (!h->stopping) {
        int64_t now = rq_now_ms();
        for (http_conn *k = h->conns; k; k = k->next) {
            int64_t d = __atomic_load_n(&k->deadline, __ATOMIC_ACQUIRE);
            if (d > 0 && now >= d &&
                __atomic_compare_exchange_n(&k->deadline, &d, CONN_CUT, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                shutdown(k->fd, SHUT_RDWR);
                h->cut++;
            }
        }
        /* At most one line per 10 s however many connections are cut. */
        if (h->cut && now - h->cut_logged_ms >= 10000) {
            rq_log("http", "closed %lu connections that were idle or had not sent a whole request "
                   "after %llu ms (-http-request-timeout)", h->cut,
                   (unsigned long long)h->cfg->http_request_timeout_ms);
            h->cut = 0;
            h->cut_logged_ms = now;
        }
        struct timespec ts;
        rq_deadline(&ts, (uint64_t)period);
        pthread_cond_timedwait(&h->conns_cv, &h->conns_mu, &ts);
    }
    pthread_mutex_unlock(&h->conns_mu);
    return NULL;
}

/* Writes a whole answer straight to the socket, for the cases where
 * libmicrohttpd cannot queue one: a refused connection (never given to it)
 * and a body that outgrew the limit while being read (MHD_queue_response
 * refuses while a body is being received). Nothing else is being written on
 * the socket then; the answer is small and the socket's buffer empty, so
 * one non-blocking send does it. The write side is then shut so the client
 * sees the end of the answer before the close. */
static void sendRaw(int fd, unsigned status, const char *reason, const char *msg)
{
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "X-RQLITE-VERSION: %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     status, reason, RQ_VERSION, status == 503 ? "Retry-After: 1\r\n" : "",
                     strlen(msg) + 1, msg);
    if (send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return;
    shutdown(fd, SHUT_WR);
}

/* Over the cap: 503 and close, without libmicrohttpd. What the client has
 * already sent is read first (up to a bound), so that the close does not
 * turn into a reset that could overtake the answer. */
static void refuse(int fd)
{
    sendRaw(fd, 503, "Service Unavailable", "too many connections");
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

/* Accepts connections and hands them to libmicrohttpd, up to
 * -http-max-conns at once. n_conns counts a connection from here to its
 * NOTIFY_CLOSED; the one case that never reaches NOTIFY_STARTED after
 * MHD_add_connection succeeded (libmicrohttpd failing to allocate its
 * memory pool) would leave it counted. */
static void *acceptThread(void *arg)
{
    http_server *h = arg;
    int cap = h->cfg->http_max_conns;
    bool starved = false;     /* out of descriptors (EMFILE) or the like: pause before the next accept */
    int64_t starved_log = 0;  /* at most one line per 10 s about it */
    unsigned long failures = 0;
    struct pollfd p[2] = {{.fd = h->listen_fd, .events = POLLIN}, {.fd = h->wake[0], .events = POLLIN}};
    for (;;) {
        /* Starved, the listening socket stays readable: wait on the wake
         * pipe alone, 100 ms, instead of spinning on accept. */
        int rc = starved ? poll(&p[1], 1, 100) : poll(p, 2, -1);
        if (rc < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        starved = fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED;
        if (starved) {
            failures++;
            if (rq_now_ms() - starved_log >= 10000) {
                rq_log("http", "cannot accept connections: %s (%lu times since the last such line)",
                       strerror(errno), failures);
                starved_log = rq_now_ms();
                failures = 0;
            }
        }
        if (fd < 0)
            continue;
        pthread_mutex_lock(&h->conns_mu);
        bool admit = cap <= 0 || h->n_conns < cap;
        if (admit) {
            h->n_conns++;
        } else {
            if (!h->at_cap)
                rq_log("http", "connection limit reached (%d, -http-max-conns): new connections get 503 "
                       "until some close", cap);
            h->at_cap = true;
            h->refused++;
        }
        pthread_mutex_unlock(&h->conns_mu);
        if (!admit) {
            refuse(fd);
            continue;
        }
        if (MHD_add_connection(h->mhd, fd, (struct sockaddr *)&ss, len) != MHD_YES) {
            /* libmicrohttpd has closed fd */
            pthread_mutex_lock(&h->conns_mu);
            h->n_conns--;
            pthread_mutex_unlock(&h->conns_mu);
        }
    }
    return NULL;
}

/* An answer to a request whose framing is refused before its body is read;
 * libmicrohttpd then closes the connection (an early response discards
 * the rest of the request), and says so. */
static enum MHD_Result sendFinal(http_server *h, struct MHD_Connection *c, unsigned status, const char *msg)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s\n", msg);
    size_t len = 0;
    char *data = buf_detach(&b, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Connection", "close");
    return replyWith(h, c, status, "text/plain; charset=utf-8", r);
}

typedef struct framing {
    int n_length, n_encoding;
    bool length_bad, length_conflict, chunked;
    uint64_t length;
} framing;

static enum MHD_Result scanFraming(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    framing *f = cls;
    (void)kind;
    if (strcasecmp(key, "Content-Length") == 0) {
        uint64_t n = 0;
        bool ok = value && *value;
        for (const char *p = value; ok && *p; p++) {
            ok = *p >= '0' && *p <= '9' && n <= (UINT64_MAX - 9) / 10;
            n = n * 10 + (uint64_t)(*p - '0');
        }
        if (!ok)
            f->length_bad = true;
        else if (f->n_length && n != f->length)
            f->length_conflict = true;
        f->length = n;
        f->n_length++;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->chunked = f->n_encoding == 0 && value && strcasecmp(value, "chunked") == 0;
        f->n_encoding++;
    }
    return MHD_YES;
}

/* Refuses, before the body is read, a request whose length is ambiguous
 * (the ground of request smuggling: libmicrohttpd reads the first
 * Content-Length and lets Transfer-Encoding win silently) or above
 * -http-max-body-size. libmicrohttpd itself answers 400 to a first
 * Content-Length that is not a number, and 413 to one beyond 64 bits.
 * Returns true with *ret when it answered. */
static bool refuseFraming(http_server *h, struct MHD_Connection *c, enum MHD_Result *ret)
{
    framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scanFraming, &f);
    const char *why = NULL;
    unsigned status = 400;
    if (f.n_length && f.n_encoding)
        why = "Content-Length and Transfer-Encoding together";
    else if (f.length_bad)
        why = "invalid Content-Length";
    else if (f.length_conflict)
        why = "conflicting Content-Length headers";
    else if (f.n_encoding && !f.chunked)
        why = "unsupported Transfer-Encoding";
    else if (h->cfg->http_max_body_size && f.n_length && f.length > h->cfg->http_max_body_size) {
        why = "request body too large";
        status = 413;
    }
    if (why == NULL)
        return false;
    connBusy(c);
    *ret = sendFinal(h, c, status, why);
    return true;
}

static enum MHD_Result onRequest(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    http_server *h = cls;
    (void)version;
    request *rq = *con_cls;
    if (rq == NULL) { /* headers in, body not read yet */
        rq = calloc(1, sizeof *rq);
        if (rq == NULL)
            return MHD_NO;
        buf_init(&rq->body);
        rq->t0 = rq_now_sec();
        *con_cls = rq;
        enum MHD_Result ret;
        return refuseFraming(h, c, &ret) ? ret : MHD_YES;
    }
    if (*upload_size) {
        uint64_t max = h->cfg->http_max_body_size;
        if (max && rq->body.len + *upload_size > max) {
            /* A chunked body outgrew the limit: answer now and close
             * rather than read (or keep) the rest. */
            const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
            connBusy(c);
            if (ci)
                sendRaw(ci->connect_fd, 413, "Content Too Large", "request body too large");
            return MHD_NO;
        }
        buf_append(&rq->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!connBusy(c))
        return MHD_NO; /* the watchdog cut it as it completed */
    return route(h, c, url, method, rq);
}

/* After the response was sent (or the request failed): the connection has
 * -http-request-timeout again to send the next request. */
static void onCompleted(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    http_server *h = cls;
    (void)toe;
    http_conn *k = connOf(c);
    if (k) {
        int64_t busy = CONN_BUSY;
        __atomic_compare_exchange_n(&k->deadline, &busy, nextDeadline(h), false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
    request *rq = *con_cls;
    if (rq) {
        buf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's messages, tagged and rate-limited: it reports each
 * connection it closes on an error (a client gone mid-request, one cut by
 * the watchdog, a malformed request), which under a flood of hostile
 * connections would be a line each. At most 10 lines per 10 s; how many
 * were dropped is said with the next one let through. */
static void mhdLog(void *cls, const char *fmt, va_list ap)
{
    http_server *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    int64_t now = rq_now_ms();
    unsigned long dropped = 0;
    pthread_mutex_lock(&h->log_mu);
    if (now - h->log_window_ms >= 10000) {
        h->log_window_ms = now;
        h->log_lines = 0;
    }
    bool show = h->log_lines < 10;
    if (show) {
        h->log_lines++;
        dropped = h->log_dropped;
        h->log_dropped = 0;
    } else {
        h->log_dropped++;
    }
    pthread_mutex_unlock(&h->log_mu);
    if (show && dropped)
        rq_log("http", "libmicrohttpd: %s (%lu earlier messages not logged)", msg, dropped);
    else if (show)
        rq_log("http", "libmicrohttpd: %s", msg);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char **err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        if (asprintf(err, "invalid HTTP address %s", addr) < 0)
            *err = NULL;
        return -1;
    }
    char host[256];
    size_t n = (size_t)(colon - addr);
    if (n >= sizeof host)
        n = sizeof host - 1;
    memcpy(host, addr, n);
    host[n] = '\0';
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    hints.ai_family = AF_INET; /* like Go: "localhost" binds 127.0.0.1 */
    int rc = getaddrinfo(n ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(n ? host : NULL, colon + 1, &hints, &res);
    }
    if (rc != 0) {
        if (asprintf(err, "cannot resolve %s: %s", addr, gai_strerror(rc)) < 0)
            *err = NULL;
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The listening socket: SO_REUSEADDR (a restart binds while old connections
 * linger in TIME_WAIT) but not SO_REUSEPORT, so a second node on the same
 * port fails instead of sharing it. */
static int listenOn(const char *addr, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(addr, &ss, &sslen, err) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = rq_sprintf("cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int http_server_start(const config *cfg, http_server **out, char **err)
{
    http_server *h = calloc(1, sizeof *h);
    pthread_mutex_init(&h->notify_mu, NULL);
    pthread_mutex_init(&h->conns_mu, NULL);
    pthread_cond_init(&h->conns_cv, NULL);
    pthread_mutex_init(&h->log_mu, NULL);
    h->log_window_ms = rq_now_ms();
    h->cfg = cfg;
    h->start_time = time(NULL);
    h->wake[0] = h->wake[1] = -1;
    h->listen_fd = listenOn(cfg->http_addr, err);
    if (h->listen_fd < 0 || pipe2(h->wake, O_CLOEXEC) != 0) {
        if (h->listen_fd >= 0) {
            *err = rq_sprintf("cannot create a pipe: %s", strerror(errno));
            close(h->listen_fd);
        }
        free(h);
        return -1;
    }
    /* Everything a request may touch exists before the first one arrives. */
    h->queue = queue_start(cfg->write_queue_capacity, cfg->write_queue_batch_size,
                            cfg->write_queue_timeout_ms, cfg->write_queue_tx, flushQueued, h);
    /* libmicrohttpd's own limit only backs ours up (the acceptor counts a
     * connection a moment before libmicrohttpd does, and stops counting it
     * a moment earlier); its default would be FD_SETSIZE - 4. Its timeout
     * is one of inactivity: here it bounds a client that stops reading a
     * response, the watchdog bounds the rest. */
    unsigned limit = cfg->http_max_conns > 0 ? (unsigned)cfg->http_max_conns + 64 : 1u << 20;
    /* Connection threads get 1 MiB of stack, not glibc's 8 MiB: at the
     * default cap that is 1 GB of address space instead of 8 (it counts
     * against vm.overcommit_memory=2 and ulimit -v), and resident memory is
     * what the thread touches either way. SQLite at its deepest expression
     * (SQLITE_MAX_EXPR_DEPTH, 1000) needs between 384 and 512 KiB here. */
    size_t stack = 1024 * 1024;
    unsigned idle = (unsigned)((cfg->http_request_timeout_ms + 999) / 1000);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, onRequest, h,
                              MHD_OPTION_EXTERNAL_LOGGER, mhdLog, h, /* first, to catch all */
                              MHD_OPTION_NOTIFY_COMPLETED, onCompleted, h,
                              MHD_OPTION_NOTIFY_CONNECTION, onConnection, h,
                              MHD_OPTION_CONNECTION_TIMEOUT, idle,
                              MHD_OPTION_CONNECTION_LIMIT, limit,
                              MHD_OPTION_THREAD_STACK_SIZE, stack,
                              MHD_OPTION_END);
    if (h->mhd == NULL || pthread_create(&h->acceptor, NULL, acceptThread, h) != 0) {
        *err = rq_sprintf("cannot start the HTTP server on %s", cfg->http_addr);
        if (h->mhd)
            MHD_stop_daemon(h->mhd);
        queue_stop(h->queue);
        close(h->listen_fd);
        close(h->wake[0]);
        close(h->wake[1]);
        free(h);
        return -1;
    }
    h->watching = cfg->http_request_timeout_ms > 0 &&
                  pthread_create(&h->watchdog, NULL, watchdogThread, h) == 0;
    rq_log("http", "service listening on %s (at most %d connections, %llu-byte bodies, %llu ms to send a request)",
           cfg->http_addr, cfg->http_max_conns, (unsigned long long)cfg->http_max_body_size,
           (unsigned long long)cfg->http_request_timeout_ms);
    *out = h;
    return 0;
}

void http_server_set_store(http_server *h, store *s)
{
    __atomic_store_n(&h->st, s, __ATOMIC_RELEASE);
}

void http_server_stop(http_server *h)
{
    if (h == NULL)
        return;
    if (write(h->wake[1], "x", 1) != 1)
        rq_log("http", "cannot wake the acceptor: %s", strerror(errno));
    pthread_join(h->acceptor, NULL);
    close(h->listen_fd);
    pthread_mutex_lock(&h->conns_mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->conns_cv);
    pthread_mutex_unlock(&h->conns_mu);
    if (h->watching)
        pthread_join(h->watchdog, NULL);
    MHD_stop_daemon(h->mhd); /* NOTIFY_CLOSED frees what is left of conns */
    queue_stop(h->queue); /* flushes what is queued while the store is open */
    rq_log("http", "service on %s stopped", h->cfg->http_addr);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h->notified);
    pthread_mutex_destroy(&h->conns_mu);
    pthread_cond_destroy(&h->conns_cv);
    pthread_mutex_destroy(&h->log_mu);
    free(h);
}
