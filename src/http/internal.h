/*
 * internal.h: what the files of http/ share with each other, and nothing
 * outside http/ sees (the public API is http.h).
 *
 * A request's way through the files:
 *   server.c            libmicrohttpd, the connections we accept and cap,
 *                       request intake (framing checks, body-size limit,
 *                       the watchdog), then router_dispatch();
 *   router.c            the route table: path, methods, permission and
 *                       handler of every endpoint;
 *   handlers_db.c       /db/execute, /db/query, /db/request (and ?queue),
 *                       /db/backup, /db/load, /boot, /db/sql;
 *   handlers_cluster.c  /join, /notify, /remove, /leader, /nodes,
 *                       /snapshot, /reap;
 *   handlers_status.c   /status, /readyz, /debug/vars, /debug/pprof,
 *                       /licenses;
 *   params.c            what the query string says;
 *   respond.c           answers in rqlite's byte format, and forwarding a
 *                       request to the leader;
 *   queue.c, pretty.c   queued writes (queue.h), ?pretty (pretty.h);
 *   tls.c               HTTPS: certificates, their reload, client
 *                       verification (-http-cert ... -http-verify-*).
 *
 * Names: a function shared between these files starts with its file's
 * name (params_*, respond_*, router_*, http_server_* in server.c); the
 * endpoints' handlers are handle_<endpoint>, in handlers_<group>.c.
 *
 * Threads: libmicrohttpd runs one thread per connection, and a handler runs
 * on its connection's thread; handlers may block (the store waits for Raft).
 */
#ifndef RQ_HTTP_INTERNAL_H
#define RQ_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "auth/auth.h"
#include "http/http.h"
#include "http/queue.h"
#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/log.h"

typedef struct http_conn http_conn;
typedef struct http_tls http_tls;

/* Counters of /debug/vars kept by the HTTP layer, in rqlite's "http" map,
 * and in its "cluster" map for the node-to-node requests that reach us
 * over HTTP (/join, /notify). handlers_status.c names them. */
typedef enum {
    HSTAT_NONE = 0,
    HSTAT_LEADER_NOT_FOUND,
    HSTAT_EXECUTIONS,
    HSTAT_EXECUTE_STMTS_RX,
    HSTAT_QUEUED_EXECUTIONS,
    HSTAT_QUEUED_EXECUTIONS_WAIT,
    HSTAT_QUEUED_EXECUTIONS_WAIT_TIMEOUT,
    HSTAT_QUERIES,
    HSTAT_QUERY_STMTS_RX,
    HSTAT_REQUESTS,
    HSTAT_REQUEST_STMTS_RX,
    HSTAT_READYZ,
    HSTAT_STATUS,
    HSTAT_BACKUPS,
    HSTAT_LOADS,
    HSTAT_BOOT,
    HSTAT_USER_SNAPSHOTS,
    HSTAT_USER_REAPS,
    HSTAT_SQL_ANALYZE,
    HSTAT_UI,
    HSTAT_AUTH_OK,
    HSTAT_AUTH_FAIL,
    HSTAT_QUEUED_EXECUTIONS_OK,           /* batches applied */
    HSTAT_QUEUED_EXECUTIONS_STMTS_RX,     /* statements flushed, */
    HSTAT_QUEUED_EXECUTIONS_STMTS_TX,     /* ... of them applied */
    HSTAT_QUEUED_EXECUTIONS_NO_LEADER,    /* failed tries, by reason */
    HSTAT_QUEUED_EXECUTIONS_NOT_LEADER,
    HSTAT_QUEUED_EXECUTIONS_LEADERSHIP_LOST,
    HSTAT_QUEUED_EXECUTIONS_UNKNOWN_ERROR,
    HSTAT_QUEUED_EXECUTIONS_FAILED,       /* every failed try */
    HSTAT_JOIN_REQ,   /* "cluster" */
    HSTAT_NOTIFY_REQ, /* "cluster" */
    /* "proxy": requests this node forwarded to the leader, by route;
     * failed: no answer from it, or a 5xx. */
    HSTAT_REMOTE_EXECUTIONS,
    HSTAT_REMOTE_EXECUTIONS_FAILED,
    HSTAT_REMOTE_QUERIES,
    HSTAT_REMOTE_QUERIES_FAILED,
    HSTAT_REMOTE_REQUESTS,
    HSTAT_REMOTE_REQUESTS_FAILED,
    HSTAT_REMOTE_LOADS,
    HSTAT_REMOTE_BACKUPS,
    HSTAT_REMOTE_REMOVE_NODE,
    HSTAT_REMOTE_STEPDOWNS,
    HSTAT_N
} http_stat;

/* Routes the metrics can tell apart (router.c checks the table fits), and
 * the statuses they count one by one (the last slot: any other). */
#define HTTP_MAX_ROUTES 32
#define HTTP_N_CODES 15
extern const unsigned http_codes[HTTP_N_CODES - 1];

struct http_server {
    const config *cfg;
    struct MHD_Daemon *mhd;
    store *st;              /* set once, read atomically: http_server_store() */
    struct timespec start_real, start_mono; /* when it started (/status node) */
    queue *queue;           /* ?queue writes */
    pthread_mutex_t notify_mu;
    store_node *notified;   /* -bootstrap-expect: nodes that POSTed /notify */
    int n_notified;
    http_tls *tls;          /* NULL: plain HTTP */
    uint64_t stats[HSTAT_N]; /* any thread, atomically: http_stat_add() */
    /* http_server_add_status/_vars: an entry is written, then its count
     * raised (release); readers read the count first (acquire). */
    struct httpSection {
        const char *key;
        http_section_fn fn;
        void *arg;
    } status_sections[HTTP_MAX_SECTIONS], vars_sections[HTTP_MAX_SECTIONS];
    int n_status_sections, n_vars_sections;
    /* /metrics: per route (router_index; the last: no route), by status
     * (HTTP_CODES), and latency from headers in to response sent. */
    uint64_t codes[HTTP_MAX_ROUTES + 1][HTTP_N_CODES];
    metrics_hist latency[HTTP_MAX_ROUTES + 1];
    uint64_t forwarded;     /* requests relayed to the leader */

    /* The rest is server.c's. */
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
    rq_log_limit mhd_log;   /* libmicrohttpd's messages */
    rq_log_limit fail_log;  /* router.c: failing requests */
};

typedef struct http_route http_route;

/* One request, from its headers to its answer (libmicrohttpd's con_cls):
 * the whole body, gathered before the handler runs. */
typedef struct request {
    buf body;
    double t0;               /* when its headers arrived (?timings) */
    const char *method;      /* set by the router: as the client sent it */
    const char *url;         /* set by the router: the path, without the query */
    const http_route *route; /* set by the router: the route it matched */
    unsigned status;         /* set by the router: the status answered */
    char why[160];           /* ... and for 4xx/5xx the cause it gave */
    char *user, *pass;       /* set by the router with -auth: the Basic
                              * credentials, NULL when none (anonymous);
                              * freed with the request */
} request;

/* ---- server.c */

/* Count n events of which (HSTAT_*); any thread. */
static inline void http_stat_add(http_server *h, http_stat which, uint64_t n)
{
    __atomic_fetch_add(&h->stats[which], n, __ATOMIC_RELAXED);
}

/* The store, or NULL until main has opened it (handlers answer 503 or
 * rqlite's "store not open" meanwhile). */
store *http_server_store(http_server *h);

/* ---- router.c: the route table */

/* Permissions are auth/'s AUTH_PERM_* bits (rqlite's "perms" of an -auth
 * file). */
/* Methods a route answers, as bits. */
enum {
    ROUTE_GET = 1u << 0,
    ROUTE_POST = 1u << 1,
    ROUTE_DELETE = 1u << 2,
    ROUTE_OTHER = 1u << 3, /* any other method: PUT, HEAD, PATCH... */
    ROUTE_ANY = ROUTE_GET | ROUTE_POST | ROUTE_DELETE | ROUTE_OTHER,
};

/* How a route's path matches a request's: exactly, or also as the first
 * segments of a longer one (rqlite's prefix routes: /db/query/x is
 * /db/query, /db/queryx is nothing). */
typedef enum { ROUTE_EXACT, ROUTE_PREFIX } route_match;

/* A handler answers the request (rq->method and rq->route are set); it
 * returns what libmicrohttpd's queueing of the answer returned. */
typedef enum MHD_Result (*http_handler)(http_server *h, struct MHD_Connection *c, request *rq);

struct http_route {
    const char *path;
    route_match match;
    unsigned methods;     /* ROUTE_* bits; another method gets 405 */
    unsigned perms;       /* AUTH_PERM_* bits (never none): every one of them
                           * needed, or with any_perm one of them (/join: the
                           * handler then asks for join from a voter, which
                           * only the body tells) */
    bool any_perm;
    http_handler handler;
    http_stat stat;       /* counted for every request to it (rqlite counts
                           * before it checks credentials or the method) */
};

/* Answer the request (url without its query string): OPTIONS is 200 on
 * any path, an unknown path 404; with -auth, a request without the route's
 * permissions 401 with an empty body; a method the route does not take
 * 405 (rqlite's order). */
enum MHD_Result router_dispatch(http_server *h, struct MHD_Connection *c, const char *url, const char *method,
                                request *rq);
/* May the request's credentials do every one of perms? Always with auth
 * off. */
bool router_permitted(http_server *h, const request *rq, unsigned perms);
/* The route for url, NULL if none. */
const http_route *router_find(const char *url);
/* Does r take method? */
bool router_allows(const http_route *r, const char *method);
/* The whole table (*n routes), for the tests. */
const http_route *router_routes(size_t *n);
/* A route's place in the table; NULL: the slot after the last route. */
int router_index(const http_route *r);

/* ---- params.c: the query string. Parameters are presence flags: ?pretty,
 * ?pretty=false and ?pretty=0 all mean on (rqlite's rule). */

bool params_has(struct MHD_Connection *c, const char *key);
/* The first value of key ("" for a bare ?key), NULL when absent. */
const char *params_value(struct MHD_Connection *c, const char *key);
/* The query string, re-encoded, appended to out ("" when none). */
void params_raw_query(struct MHD_Connection *c, buf *out);
/* ?transaction, ?timings, ?associative, ?blob_array, ?qualify_columns as
 * DB_* flags. */
unsigned params_db_flags(struct MHD_Connection *c);
/* A read's ?level, ?freshness, ?freshness_strict, ?db_timeout and
 * ?linearizable_timeout into *rd; NULL, or the message of a 400. */
const char *params_read(struct MHD_Connection *c, store_read *rd);
/* ?timeout as milliseconds into *ms (def when absent); false when it is
 * not a duration. */
bool params_timeout(struct MHD_Connection *c, uint64_t def, uint64_t *ms);
/* Any duration parameter likewise (rounded up to whole milliseconds; a
 * negative one is 0). */
bool params_duration_ms(struct MHD_Connection *c, const char *key, uint64_t def, uint64_t *ms);

/* ---- respond.c: every answer carries X-RQLITE-VERSION, the CORS headers
 * and, when set, X-RQLITE-SERVED-BY. Each returns what MHD_queue_response
 * did. */

/* X-RQLITE-SERVED-BY for the rest of the request on this thread (NULL:
 * none). */
void respond_served_by(const char *who);
/* The status of the response this thread queued last (0: none) and, for
 * 4xx/5xx, the start of its body (why, size; may be NULL), cleared. */
unsigned respond_take_status(char *why, size_t size);
/* Queue r (consumed) with status and ctype (NULL: no Content-Type). */
enum MHD_Result respond_with(http_server *h, struct MHD_Connection *c, unsigned status, const char *ctype,
                             struct MHD_Response *r);
/* body (taken; NULL: empty) as the answer. */
enum MHD_Result respond_buf(http_server *h, struct MHD_Connection *c, unsigned status, const char *ctype,
                            buf *body);
enum MHD_Result respond_empty(http_server *h, struct MHD_Connection *c, unsigned status);
/* Go's http.Error: msg + "\n" as text/plain. */
enum MHD_Result respond_text(http_server *h, struct MHD_Connection *c, unsigned status, const char *msg);
/* respond_text of "prefix: err" ("err" when prefix is ""), err taken;
 * fallback when err is NULL. */
enum MHD_Result respond_error(http_server *h, struct MHD_Connection *c, unsigned status, const char *prefix,
                              char *err, const char *fallback);
/* body (taken), compact JSON, re-indented when pretty. */
enum MHD_Result respond_json(http_server *h, struct MHD_Connection *c, unsigned status, buf *body, bool pretty);
/* doc (taken) with sorted keys; pretty: jansson's 4-space indent. */
enum MHD_Result respond_jansson(http_server *h, struct MHD_Connection *c, unsigned status, json_t *doc,
                                bool pretty);
/* 503 "leader not found", counted (leader_not_found). */
enum MHD_Result respond_no_leader(http_server *h, struct MHD_Connection *c);
/* {"results":[],"error":msg}, status 200: rqlite's whole-request error. */
enum MHD_Result respond_results_error(http_server *h, struct MHD_Connection *c, const char *msg, bool pretty);
/* 301 to location (?redirect, and /join on a follower). */
enum MHD_Result respond_redirect(http_server *h, struct MHD_Connection *c, const char *location);
/* The same with another status (302 for "/"). */
enum MHD_Result respond_redirect_with(http_server *h, struct MHD_Connection *c, unsigned status, const char *location);
/* Replay the request on the leader at its route's path (same method, query
 * string, body, Content-Type and Authorization, which the leader checks
 * again) and answer with the leader's answer (a 401 in rqlite's words:
 * "remote Execute not authorized"); 301 there with ?redirect; 503 when no
 * leader is known or it cannot be reached. */
enum MHD_Result respond_forward(http_server *h, struct MHD_Connection *c, request *rq);

/* ---- tls.c: HTTPS (see its top comment) */

/* One HTTPS connection's transport, kept by server.c with the connection
 * (http_conn) from NOTIFY_STARTED until libmicrohttpd has ended its
 * session. */
typedef struct http_tls_conn {
    http_tls *tls;
    int fd;
    bool checked; /* its first bytes were a TLS record */
} http_tls_conn;

/* With -http-cert and -http-key: reads and checks the pair (and the CA of
 * -http-ca-cert for -http-verify-client) into *out; 0, or -1 with *err
 * saying which file is wrong and why. Without them: 0 and *out NULL. */
int http_tls_open(const config *cfg, http_tls **out, char **err);
/* libmicrohttpd's HTTPS options for t (priorities, certificate callback,
 * trusted CA), ending in MHD_OPTION_END; only the end for t NULL. Valid
 * while t is. */
const struct MHD_OptionItem *http_tls_options(const http_tls *t);
/* A new connection's gnutls session (libmicrohttpd's, before its
 * handshake): its transport becomes tc (fd), and with -http-verify-client
 * a client certificate is required and verified. tc must outlive the
 * session. */
void http_tls_attach(http_tls *t, http_tls_conn *tc, void *session, int fd);
/* Writes data on c's TLS session, outside libmicrohttpd (an answer it
 * cannot queue); 0 when all of it went. */
int http_tls_send(struct MHD_Connection *c, const void *data, size_t len);
/* /status's http.tls, rqlite's shape. */
json_t *http_tls_status(const http_tls *t);
/* rqlite's http.tls_cert_fetched: handshakes that asked for the
 * certificate (re-read first when its files changed). t NULL: 0. */
uint64_t http_tls_cert_fetches(http_tls *t);
/* NULL is allowed; after libmicrohttpd has stopped. */
void http_tls_close(http_tls *t);

/* ---- handlers_*.c: one http_handler per route, named after its path. */

enum MHD_Result handle_execute(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_query(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_request(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_backup(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_load(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_boot(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_status(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_nodes(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_readyz(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_leader(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_snapshot(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_vars(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_pprof(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_licenses(http_server *h, struct MHD_Connection *c, request *rq);
/* /debug/vars as a document (caller owns), for it and /metrics. */
json_t *http_vars_doc(http_server *h);
enum MHD_Result handle_metrics(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_console(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_reap(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_sql(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_join(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_notify(http_server *h, struct MHD_Connection *c, request *rq);
enum MHD_Result handle_remove(http_server *h, struct MHD_Connection *c, request *rq);

/* The queue's flush (queue_flush_fn, ctx the server): a merged batch of
 * ?queue writes applied here if leader, else forwarded to the leader with
 * its requests' credentials. */
int handle_execute_flush(void *ctx, const cmd_view *stmts, bool tx, const char *authorization);

#endif
