/*
 * handlers_db.c: the data endpoints. /db/execute, /db/query and
 * /db/request (rqlite's JSON envelope around the store's results, ?queue
 * writes through queue.c), /db/backup (a binary copy, streamed and
 * optionally gzipped as it is sent, or a SQL dump), /db/load and /boot (a
 * SQLite image or SQL text).
 *
 * A request that reaches a follower is forwarded to the leader
 * (respond_forward) once the store answers STORE_NOT_LEADER, so that the
 * store, not this layer, decides what needs the leader; a backup, which
 * the store serves anywhere, is forwarded unless ?noleader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "cluster/cluster.h"
#include "http/internal.h"
#include "util/log.h"
#include "util/os.h"

/* A queued batch forwarded to the leader. */
#define FORWARD_TIMEOUT_MS 30000

/* ---- requests and results ------------------------------------------------------- */

/* rqlite takes a text/plain body (any charset) as one SQL statement. */
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
        ret = respond_results_error(h, c, "disallowed pragma", pretty);
        break;
    case STORE_INVALID:
        ret = respond_text(h, c, 400, err ? err : "invalid request");
        break;
    case STORE_TOO_LARGE:
        ret = respond_text(h, c, 413, err ? err : "request too large");
        break;
    default:
        ret = respond_results_error(h, c, err ? err : "unknown error", pretty);
        break;
    }
    free(err);
    return ret;
}

/* Responses are built in place: the envelope's head goes into the buffer
 * before the store appends the results, the tail after, so large results
 * are never copied into a second buffer. */
#define RESULTS_HEAD "{\"results\":["

/* The envelope's tail: ?timings' "time" and ?raft_index's "raft_index"
 * after the results, in rqlite's order. */
static void finishResults(buf *out, request *rq, unsigned flags, uint64_t raft_index)
{
    buf_putc(out, ']');
    if (flags & DB_TIMINGS) {
        buf_puts(out, ",\"time\":");
        buf_json_double(out, rq_now_sec() - rq->t0);
    }
    if (raft_index) {
        buf_puts(out, ",\"raft_index\":");
        buf_json_int(out, (int64_t)raft_index);
    }
    buf_putc(out, '}');
}

/* ---- execute, query, request ------------------------------------------------------- */

/* A queued batch applied (here or by the leader). Returns 0. */
static int queuedApplied(http_server *h, const cmd_view *stmts)
{
    http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_OK, 1);
    http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_STMTS_TX, stmts->n);
    return 0;
}

/* A failed try of a queued batch, counted by rqlite's reasons (why: an
 * error text, NULL for none known). Returns rc. */
static int queuedFailed(http_server *h, http_stat reason, const char *why, int rc)
{
    if (why && strstr(why, "leadership lost"))
        reason = HSTAT_QUEUED_EXECUTIONS_LEADERSHIP_LOST;
    else if (why && strstr(why, "not leader"))
        reason = HSTAT_QUEUED_EXECUTIONS_NOT_LEADER;
    http_stat_add(h, reason, 1);
    http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_FAILED, 1);
    return rc;
}

int handle_execute_flush(void *ctx, const cmd_view *stmts, bool tx, const char *authorization)
{
    http_server *h = ctx;
    /* Every try is counted: the queue retries a batch that failed. */
    http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_STMTS_RX, stmts->n);
    store *st = http_server_store(h);
    if (st == NULL)
        return queuedFailed(h, HSTAT_QUEUED_EXECUTIONS_NO_LEADER, NULL, -1);
    char *err = NULL;
    int rc = store_execute(st, stmts, tx ? DB_TX : 0, 0, NULL, NULL, &err);
    if (rc == STORE_OK) {
        free(err);
        return queuedApplied(h, stmts);
    }
    if (rc != STORE_NOT_LEADER) {
        rc = queuedFailed(h, HSTAT_QUEUED_EXECUTIONS_UNKNOWN_ERROR, err, rc == STORE_ERROR ? -1 : 1);
        free(err); /* refused for good (> 0): not retried */
        return rc;
    }
    free(err);
    store_node leader;
    if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
        return queuedFailed(h, HSTAT_QUEUED_EXECUTIONS_NO_LEADER, NULL, -1);
    char url[400];
    snprintf(url, sizeof url, "%s/db/execute%s", leader.api_addr, tx ? "?transaction" : "");
    char *body = cmd_to_json(stmts);
    cluster_response resp;
    rc = cluster_forward("POST", url, body, strlen(body), "application/json", authorization, FORWARD_TIMEOUT_MS,
                         &resp, &err);
    free(body);
    if (rc != 0) {
        free(err);
        return queuedFailed(h, HSTAT_QUEUED_EXECUTIONS_UNKNOWN_ERROR, NULL, -1);
    }
    long status = resp.status;
    bool whole_error = resp.body.data && strstr(resp.body.data, "{\"results\":[],\"error\"") != NULL;
    int ret = 0;
    /* 401: the leader refuses these credentials (its -auth file differs
     * from ours); retrying would hold up the whole queue behind them. */
    if (status == 400 || status == 413 || status == 401)
        ret = 1;
    else if (status != 200 || whole_error)
        ret = -1;
    if (ret != 0)
        queuedFailed(h, HSTAT_QUEUED_EXECUTIONS_UNKNOWN_ERROR, resp.body.data, ret);
    cluster_response_free(&resp);
    return ret == 0 ? queuedApplied(h, stmts) : ret;
}

/* /db/execute?queue: acknowledged with a sequence number before it is
 * applied (?wait: after). */
static enum MHD_Result handleQueued(http_server *h, struct MHD_Connection *c, request *rq, bool pretty)
{
    store *st = http_server_store(h);
    store_node leader;
    http_stat_add(h, HSTAT_QUEUED_EXECUTIONS, 1);
    if (!params_has(c, "noleader") && !store_leader(st, &leader))
        return respond_no_leader(h, c);
    bool wait = params_has(c, "wait");
    char *err = NULL;
    cmd_batch b;
    cmd_batch_init(&b);
    if (requestStatements(c, rq, &b, &err) != 0) {
        /* rqlite's quirk: anything unparsable but an empty request is
         * accepted and dropped; SQL with a NUL byte is refused as on every
         * other path. */
        bool refuse = err && (strcmp(err, "no statements") == 0 ? !wait : strstr(err, "NUL") != NULL);
        if (refuse) {
            enum MHD_Result ret = respond_text(h, c, 400, err);
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
        return respond_results_error(h, c, "disallowed pragma", pretty);
    }
    /* Kept with the request: a follower forwards it with them (the leader
     * checks them again). */
    const char *creds = h->cfg->creds ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization") : NULL;
    int64_t seq = queue_add(h->queue, &b, creds);
    if (wait) {
        uint64_t timeout;
        if (!params_timeout(c, 30000, &timeout))
            return respond_text(h, c, 400, "timeout is not a valid duration");
        http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_WAIT, 1);
        if (!queue_wait(h->queue, seq, timeout)) {
            http_stat_add(h, HSTAT_QUEUED_EXECUTIONS_WAIT_TIMEOUT, 1);
            return respond_text(h, c, 408, "queue wait timeout");
        }
    }
    buf out = BUF_INIT;
    buf_printf(&out, "{\"results\":[],\"sequence_number\":%lld}", (long long)seq);
    return respond_json(h, c, 200, &out, pretty);
}

/* The statements of a data request: ?q's decoded value (qv, qlen: NUL
 * bytes included, so that SQL with a NUL is refused here as on every other
 * path) when from_query, else the body. Answers the 400 itself and sets
 * *ret; true when b holds the statements. */
static bool statementsOr400(http_server *h, struct MHD_Connection *c, request *rq, bool from_query, const char *qv,
                            size_t qlen, cmd_batch *b, enum MHD_Result *ret)
{
    char *err = NULL;
    int rc;
    if (from_query) {
        if (qv == NULL || qlen == 0) {
            *ret = respond_text(h, c, 400, "query parameter not set");
            return false;
        }
        rc = cmd_from_sql(qv, qlen, b, &err);
    } else {
        rc = requestStatements(c, rq, b, &err);
    }
    if (rc == 0)
        return true;
    *ret = respond_text(h, c, 400, err ? err : "invalid request");
    free(err);
    return false;
}

typedef enum { KIND_EXECUTE, KIND_QUERY, KIND_REQUEST } data_kind;

/* The three data endpoints differ only in the store call and in what
 * they accept: ?queue on execute, a GET's ?q= on query. */
static enum MHD_Result handleData(http_server *h, struct MHD_Connection *c, data_kind kind, request *rq)
{
    store *st = http_server_store(h);
    bool pretty = params_has(c, "pretty");
    if (st == NULL)
        return respond_results_error(h, c, "store not open", pretty);
    if (kind == KIND_EXECUTE && params_has(c, "queue"))
        return handleQueued(h, c, rq, pretty);
    unsigned flags = params_db_flags(c);
    cmd_batch b;
    char *err = NULL;
    enum MHD_Result ret;
    bool from_query = kind == KIND_QUERY && strcmp(rq->method, "GET") == 0;
    const char *qv = NULL;
    size_t qlen = 0;
    if (from_query && MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "q", 1, &qv, &qlen) != MHD_YES) {
        buf e = BUF_INIT;
        buf_puts(&e, "{\"results\":[]}");
        return respond_json(h, c, 200, &e, pretty);
    }
    if (!statementsOr400(h, c, rq, from_query, qv, qlen, &b, &ret))
        return ret;
    if (kind == KIND_EXECUTE)
        store_stage(st, STORE_STAGE_PARSE, rq_now_sec() - rq->t0);
    http_stat_add(h, kind == KIND_EXECUTE ? HSTAT_EXECUTE_STMTS_RX
                     : kind == KIND_QUERY ? HSTAT_QUERY_STMTS_RX
                                          : HSTAT_REQUEST_STMTS_RX,
                  (uint64_t)b.n);
    store_read rd;
    const char *bad = params_read(c, &rd);
    if (bad) {
        cmd_batch_free(&b);
        return respond_text(h, c, 400, bad);
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
        return respond_forward(h, c, rq);
    }
    if (rc != STORE_OK) {
        buf_free(&results);
        return sendStoreError(h, c, rc, err, pretty);
    }
    double t_done = rq_now_sec();
    finishResults(&results, rq, flags, params_has(c, "raft_index") ? raft_index : 0);
    ret = respond_json(h, c, 200, &results, pretty);
    if (kind == KIND_EXECUTE) {
        double t = rq_now_sec();
        store_stage(st, STORE_STAGE_RESPOND, t - t_done);
        store_stage(st, STORE_STAGE_TOTAL, t - rq->t0);
    }
    return ret;
}

enum MHD_Result handle_execute(http_server *h, struct MHD_Connection *c, request *rq)
{
    return handleData(h, c, KIND_EXECUTE, rq);
}

enum MHD_Result handle_query(http_server *h, struct MHD_Connection *c, request *rq)
{
    return handleData(h, c, KIND_QUERY, rq);
}

enum MHD_Result handle_request(http_server *h, struct MHD_Connection *c, request *rq)
{
    return handleData(h, c, KIND_REQUEST, rq);
}

/* GET|POST /db/sql: how each statement would be rewritten before it goes
 * into the log. Ours never are: a node applies an entry with the
 * proposer's clock and random seed instead (db/determinism.c), so
 * "rewritten" is the statement as sent, or "error" when it does not parse.
 * The statements are rqlite's ?q= or request body. */
enum MHD_Result handle_sql(http_server *h, struct MHD_Connection *c, request *rq)
{
    cmd_batch b;
    char *err = NULL;
    enum MHD_Result ret;
    bool from_query = strcmp(rq->method, "GET") == 0;
    const char *qv = NULL;
    size_t qlen = 0;
    if (from_query && MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "q", 1, &qv, &qlen) != MHD_YES)
        return respond_text(h, c, 400, "query not specified");
    if (!statementsOr400(h, c, rq, from_query, qv, qlen, &b, &ret))
        return ret;
    cmd_view v = cmd_batch_view(&b);
    cmd_iter it;
    cmd_stmt stmt;
    cmd_iter_init(&it, &v);
    buf out = BUF_INIT;
    buf_puts(&out, "{\"results\":[");
    for (int i = 0; cmd_next(&it, &stmt) == 1; i++) {
        buf_puts(&out, i ? ",{\"original\":" : "{\"original\":");
        buf_json_str(&out, stmt.sql, stmt.sql_len);
        if (db_sql_check(stmt.sql, stmt.sql_len, &err) == 0) {
            buf_puts(&out, ",\"rewritten\":");
            buf_json_str(&out, stmt.sql, stmt.sql_len);
        } else {
            buf_puts(&out, ",\"error\":");
            buf_json_cstr(&out, err);
            free(err);
            err = NULL;
        }
        buf_putc(&out, '}');
    }
    cmd_batch_free(&b);
    buf_putc(&out, ']');
    if (params_has(c, "timings")) {
        buf_puts(&out, ",\"time\":");
        buf_json_double(&out, rq_now_sec() - rq->t0);
    }
    buf_putc(&out, '}');
    return respond_json(h, c, 200, &out, params_has(c, "pretty"));
}

/* ---- backup, load, boot -------------------------------------------------------------- */

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

/* A consistent copy of the database (store_copy), progress logged.
 * Returns the descriptor (size in *size) or -1 with *err set. */
static int copyToFd(store *st, unsigned flags, const char *what, off_t *size, char **err)
{
    /* copying gigabytes takes minutes: a line a second */
    rq_progress prog = {"http", what, 1000, rq_now_ms(), rq_now_ms()};
    uint64_t n = 0;
    int fd = store_copy(st, flags, rq_progress_log, &prog, &n, err);
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

/* libmicrohttpd's content reader: deflates from the copy until out holds
 * something (deflate may consume input without producing any), so that an
 * empty return only ever means the end. */
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

/* libmicrohttpd frees the reader when the response is done or dropped. */
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

enum MHD_Result handle_backup(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = http_server_store(h);
    if (st == NULL)
        return respond_text(h, c, 503, "store not open");
    if (!params_has(c, "noleader") && !store_is_leader(st))
        return respond_forward(h, c, rq);
    const char *fmt = params_value(c, "fmt");
    bool sql = fmt && strcmp(fmt, "sql") == 0;
    if (sql && params_has(c, "vacuum"))
        return respond_text(h, c, 500, "invalid backup format");
    buf body = BUF_INIT;
    char *err = NULL;
    const char *ctype = "application/octet-stream";
    if (sql) {
        if (store_dump(st, params_value(c, "tables"), &body, &err) != 0)
            goto fail;
        ctype = "application/sql";
    } else {
        off_t size = 0;
        int fd = copyToFd(st, params_has(c, "vacuum") ? DB_BACKUP_VACUUM : 0, "backup", &size, &err);
        if (fd < 0)
            goto fail;
        /* fmt=delete: the same pages, header saying rollback journal. */
        unsigned char ver[2];
        if (fmt && strcmp(fmt, "delete") == 0 && pread(fd, ver, 2, 18) == 2 && ver[0] == 2) {
            ver[0] = ver[1] = 1;
            if (pwrite(fd, ver, 2, 18) != 2)
                rq_logl(RQ_LOG_WARN, "http", "backup: cannot rewrite the journal mode bytes");
        }
        bool gz = params_has(c, "compress");
        rq_log("http", "backup (binary%s) of %lld bytes served", gz ? ", gzipped as sent" : "", (long long)size);
        if (!gz)
            return respond_with(h, c, 200, ctype, MHD_create_response_from_fd((uint64_t)size, fd));
        struct MHD_Response *r = gzResponse(fd);
        if (r == NULL)
            return respond_text(h, c, 500, "compression failed");
        return respond_with(h, c, 200, ctype, r);
    }
    rq_log("http", "backup (sql) of %zu bytes served", body.len);
    if (params_has(c, "compress")) {
        buf z = BUF_INIT;
        if (gzipBuf(body.data ? body.data : "", body.len, &z) != 0) {
            buf_free(&z);
            buf_free(&body);
            return respond_text(h, c, 500, "compression failed");
        }
        buf_free(&body);
        body = z;
    }
    return respond_buf(h, c, 200, ctype, &body);
fail:
    buf_free(&body);
    return respond_error(h, c, 500, "", err, "backup failed");
}

/* POST /db/load: a SQLite image (replicated as one load entry) or SQL text
 * (run as one request, a failing statement rolling back an open
 * transaction). POST /boot: an image, single-node only, never forwarded. */
static enum MHD_Result loadOrBoot(http_server *h, struct MHD_Connection *c, request *rq, bool boot)
{
    store *st = http_server_store(h);
    if (st == NULL)
        return respond_text(h, c, 503, "store not open");
    bool image = isSqliteImage(&rq->body);
    if (boot) {
        if (!image)
            return respond_text(h, c, 400, "invalid SQLite data");
        /* A bad image is the client's to hear of first, wherever it lands. */
        char *ierr = NULL;
        if (store_image_check(st, rq->body.data, rq->body.len, &ierr) != 0)
            return respond_error(h, c, 400, "", ierr, "invalid database image");
        store_node *nodes = NULL;
        int n = store_nodes(st, &nodes);
        free(nodes);
        if (!store_is_leader(st))
            return respond_text(h, c, 503, "not leader");
        if (n != 1)
            return respond_text(h, c, 503, "not single-node");
    }
    char *err = NULL;
    int rc;
    buf results = BUF_INIT;
    buf_puts(&results, RESULTS_HEAD);
    if (image) {
        rq_log("http", "loading a %zu-byte SQLite image", rq->body.len);
        rc = store_load(st, rq->body.data, rq->body.len, boot, &err);
    } else {
        cmd_batch b;
        if (cmd_from_sql(rq->body.data, rq->body.len, &b, &err) != 0) {
            enum MHD_Result ret = respond_text(h, c, 400, err);
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
            return respond_text(h, c, 503, "not leader");
        return respond_forward(h, c, rq);
    }
    if (rc != STORE_OK) {
        buf_free(&results);
        if (boot && (rc == STORE_ERROR || rc == STORE_DISALLOWED)) {
            enum MHD_Result ret = respond_text(h, c, 503, err ? err : "boot failed");
            free(err);
            return ret;
        }
        return sendStoreError(h, c, rc, err ? err : strdup("load failed"), false);
    }
    if (boot) {
        buf_free(&results);
        return respond_empty(h, c, 200);
    }
    finishResults(&results, rq, 0, 0);
    return respond_json(h, c, 200, &results, params_has(c, "pretty"));
}

enum MHD_Result handle_load(http_server *h, struct MHD_Connection *c, request *rq)
{
    return loadOrBoot(h, c, rq, false);
}

enum MHD_Result handle_boot(http_server *h, struct MHD_Connection *c, request *rq)
{
    return loadOrBoot(h, c, rq, true);
}
