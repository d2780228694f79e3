/*
 * respond.c: answers in rqlite's byte format, and forwarding a request to
 * the leader (see internal.h for each function's contract).
 *
 * Every answer but a redirect goes out through respond_with(), which adds
 * the headers rqlite puts on every response; the bodies are built whole in
 * a buf and handed to libmicrohttpd, which frees them once sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "http/internal.h"
#include "http/pretty.h"

/* X-RQLITE-SERVED-BY for the request this thread is answering (a thread
 * serves one connection at a time): this node's API address for local data
 * requests, the leader's Raft address for forwarded ones. */
static __thread char served_by[300];
/* What this thread answered last, for the request's metrics and log:
 * the status, and for a refusal its text (the cause). */
static __thread unsigned answered;
static __thread char answered_why[160];

unsigned respond_take_status(char *why, size_t size)
{
    unsigned s = answered;
    if (why && size)
        snprintf(why, size, "%s", answered_why);
    answered = 0;
    answered_why[0] = '\0';
    return s;
}

void respond_served_by(const char *who)
{
    snprintf(served_by, sizeof served_by, "%s", who ? who : "");
}

/* What rqlite puts on every answer before it looks at the request: its
 * version, CORS, and with -auth the Basic challenge (on successes too) and
 * leave for browsers to send credentials across origins. */
static void addCommonHeaders(http_server *h, struct MHD_Response *r)
{
    bool auth = h->cfg->creds != NULL;
    MHD_add_response_header(r, "X-RQLITE-VERSION", RQ_VERSION);
    if (h->cfg->http_allow_origin && *h->cfg->http_allow_origin)
        MHD_add_response_header(r, "Access-Control-Allow-Origin", h->cfg->http_allow_origin);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "OPTIONS, GET, POST");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", auth ? "Content-Type, Authorization" : "Content-Type");
    if (auth) {
        MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"rqlite\"");
    }
}

enum MHD_Result respond_with(http_server *h, struct MHD_Connection *c, unsigned status, const char *ctype,
                             struct MHD_Response *r)
{
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    addCommonHeaders(h, r);
    if (served_by[0])
        MHD_add_response_header(r, "X-RQLITE-SERVED-BY", served_by);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    answered = status;
    return ret;
}

enum MHD_Result respond_buf(http_server *h, struct MHD_Connection *c, unsigned status, const char *ctype,
                            buf *body)
{
    if (status >= 400 && body && body->len) { /* the cause, for the log */
        size_t n = body->len < sizeof answered_why - 1 ? body->len : sizeof answered_why - 1;
        memcpy(answered_why, body->data, n);
        while (n && (answered_why[n - 1] == '\n' || answered_why[n - 1] == '\r'))
            n--;
        answered_why[n] = '\0';
        for (size_t i = 0; i < n; i++) /* one line */
            if (answered_why[i] == '\n' || answered_why[i] == '\r')
                answered_why[i] = ' ';
    }
    size_t len = 0;
    char *data = body ? buf_detach(body, &len) : NULL;
    struct MHD_Response *r =
        data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    return respond_with(h, c, status, ctype, r);
}

enum MHD_Result respond_empty(http_server *h, struct MHD_Connection *c, unsigned status)
{
    return respond_buf(h, c, status, NULL, NULL);
}

enum MHD_Result respond_text(http_server *h, struct MHD_Connection *c, unsigned status, const char *msg)
{
    buf b = BUF_INIT;
    buf_puts(&b, msg);
    buf_putc(&b, '\n');
    return respond_buf(h, c, status, "text/plain; charset=utf-8", &b);
}

enum MHD_Result respond_error(http_server *h, struct MHD_Connection *c, unsigned status, const char *prefix,
                              char *err, const char *fallback)
{
    buf b = BUF_INIT;
    buf_printf(&b, "%s%s%s\n", prefix, prefix[0] ? ": " : "", err ? err : fallback);
    free(err);
    return respond_buf(h, c, status, "text/plain; charset=utf-8", &b);
}

enum MHD_Result respond_json(http_server *h, struct MHD_Connection *c, unsigned status, buf *body, bool pretty)
{
    if (pretty) {
        buf p = BUF_INIT;
        pretty_json(body->data ? body->data : "", body->len, &p);
        buf_free(body);
        *body = p;
    }
    return respond_buf(h, c, status, "application/json; charset=utf-8", body);
}

enum MHD_Result respond_jansson(http_server *h, struct MHD_Connection *c, unsigned status, json_t *doc,
                                bool pretty)
{
    char *text = json_dumps(doc, JSON_SORT_KEYS | (pretty ? JSON_INDENT(4) : JSON_COMPACT));
    json_decref(doc);
    buf b = BUF_INIT;
    buf_puts(&b, text ? text : "{}");
    free(text);
    return respond_buf(h, c, status, "application/json; charset=utf-8", &b);
}

enum MHD_Result respond_results_error(http_server *h, struct MHD_Connection *c, const char *msg, bool pretty)
{
    buf b = BUF_INIT;
    buf_puts(&b, "{\"results\":[],\"error\":");
    buf_json_cstr(&b, msg);
    buf_putc(&b, '}');
    return respond_json(h, c, 200, &b, pretty);
}

/* Not through respond_with(): no X-RQLITE-SERVED-BY, since this node
 * serves nothing. */
enum MHD_Result respond_redirect(http_server *h, struct MHD_Connection *c, const char *location)
{
    return respond_redirect_with(h, c, 301, location);
}

enum MHD_Result respond_redirect_with(http_server *h, struct MHD_Connection *c, unsigned status, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", location);
    addCommonHeaders(h, r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    answered = status;
    return ret;
}

/* rqlite's words when the leader refuses a forwarded request's
 * credentials (its cluster service checks them again). */
static const char *remoteRefusal(const http_route *r)
{
    if (r->handler == handle_execute)
        return "remote Execute not authorized";
    if (r->handler == handle_query)
        return "remote query not authorized";
    if (r->handler == handle_request)
        return "remote Request not authorized";
    if (r->handler == handle_backup)
        return "remote backup not authorized";
    if (r->handler == handle_load || r->handler == handle_boot)
        return "remote load not authorized";
    if (r->handler == handle_remove)
        return "remote remove node not authorized";
    if (r->handler == handle_leader)
        return "remote stepdown not authorized";
    return "remote request not authorized";
}

enum MHD_Result respond_no_leader(http_server *h, struct MHD_Connection *c)
{
    http_stat_add(h, HSTAT_LEADER_NOT_FOUND, 1);
    return respond_text(h, c, 503, "leader not found");
}

/* rqlite's "proxy" counters of a forwarded route (HSTAT_NONE: not one of
 * them), and the one counting its failures. */
static http_stat proxyStat(const char *path, http_stat *failed)
{
    *failed = HSTAT_NONE;
    if (strcmp(path, "/db/execute") == 0)
        return *failed = HSTAT_REMOTE_EXECUTIONS_FAILED, HSTAT_REMOTE_EXECUTIONS;
    if (strcmp(path, "/db/query") == 0)
        return *failed = HSTAT_REMOTE_QUERIES_FAILED, HSTAT_REMOTE_QUERIES;
    if (strcmp(path, "/db/request") == 0)
        return *failed = HSTAT_REMOTE_REQUESTS_FAILED, HSTAT_REMOTE_REQUESTS;
    if (strcmp(path, "/db/load") == 0 || strcmp(path, "/boot") == 0)
        return HSTAT_REMOTE_LOADS;
    if (strcmp(path, "/db/backup") == 0)
        return HSTAT_REMOTE_BACKUPS;
    if (strcmp(path, "/remove") == 0)
        return HSTAT_REMOTE_REMOVE_NODE;
    if (strcmp(path, "/leader") == 0)
        return HSTAT_REMOTE_STEPDOWNS;
    return HSTAT_NONE;
}

enum MHD_Result respond_forward(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = http_server_store(h);
    store_node leader;
    if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
        return respond_no_leader(h, c);
    buf q = BUF_INIT;
    params_raw_query(c, &q);
    buf url = BUF_INIT;
    buf_printf(&url, "%s%s%s%s", leader.api_addr, rq->route->path, q.len ? "?" : "", q.len ? q.data : "");
    buf_free(&q);
    if (params_has(c, "redirect")) {
        enum MHD_Result ret = respond_redirect(h, c, url.data);
        buf_free(&url);
        return ret;
    }
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    respond_served_by(leader.addr);
    __atomic_fetch_add(&h->forwarded, 1, __ATOMIC_RELAXED);
    cluster_response resp;
    char *err = NULL;
    /* Longer than the leader may take to apply, so a slow write is not cut. */
    uint64_t timeout = h->cfg->raft_apply_timeout_ms + 5000;
    /* /db/query only reads (the leader refuses writes there): it may go on
     * a pooled connection whatever its method. */
    int rc = strcmp(rq->route->path, "/db/query") == 0
                 ? cluster_forward_read(rq->method, url.data, rq->body.data, rq->body.len, ctype, auth, timeout,
                                        &resp, &err)
                 : cluster_forward(rq->method, url.data, rq->body.data, rq->body.len, ctype, auth, timeout, &resp,
                                   &err);
    buf_free(&url);
    http_stat failed, kind = proxyStat(rq->route->path, &failed);
    http_stat_add(h, kind, 1);
    if (rc != 0 || resp.status >= 500)
        http_stat_add(h, failed, 1);
    if (rc != 0)
        return respond_error(h, c, 503, "forwarding to leader failed", err, "?");
    if (resp.status == 401) { /* the leader checked the credentials again */
        cluster_response_free(&resp);
        return respond_text(h, c, 401, remoteRefusal(rq->route));
    }
    enum MHD_Result ret =
        respond_buf(h, c, (unsigned)resp.status, resp.content_type[0] ? resp.content_type : NULL, &resp.body);
    cluster_response_free(&resp);
    return ret;
}
