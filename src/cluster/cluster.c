/*
 * cluster: joining a cluster and forwarding requests, over libcurl.
 *
 * Join follows rqlite's v6 protocol (POST /join {"id","addr","voter"}, 301 to
 * the leader), which every node serves. A Raft address given to -join
 * (rqlite v8+ form) is first turned into that node's API URL by asking it
 * over the Raft port (see store/transport.c for the server side).
 *
 * A follower catching up from a snapshot fetches the leader's database file
 * over the Raft port too (cluster_fetch_image, CLUSTER_IMAGE_MAGIC).
 *
 * With node TLS (cfg->node_tls), everything said on a Raft port is said
 * inside a TLS session (raftDial), the server's certificate verified.
 * HTTPS to other nodes (an https:// API address): TLS 1.2 or later, the
 * node's certificate verified against -http-ca-cert, or the system's roots
 * without it, host name included; this node's -http-cert and -http-key are
 * presented when the other node asks for a client certificate
 * (-http-verify-client). rqlite v6's HTTP join trusted -http-ca-cert the
 * same way (and sent no certificate, which a cluster with mTLS on its API
 * would refuse).
 */
#include "cluster/cluster.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls/tls.h"
#include "auth/auth.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/os.h"
#include "util/le.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;     /* per-thread handle, see threadCurl() */
static const config *tls_cfg;      /* cluster_init(): HTTPS settings, read-only */

void cluster_init(const config *cfg)
{
    tls_cfg = cfg;
}

static void curlKeyFree(void *c) { curl_easy_cleanup(c); }

/* One connection pool for all threads (MHD serves each client connection
 * on its own thread): a follower's forwarded reads reuse keep-alive
 * connections to the leader whichever client they come from. */
static CURLSH *curl_share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static void shareLock(CURL *c, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)c, (void)a, (void)u;
    pthread_mutex_lock(&share_mu[d]);
}

static void shareUnlock(CURL *c, curl_lock_data d, void *u)
{
    (void)c, (void)u;
    pthread_mutex_unlock(&share_mu[d]);
}

static void curlGlobalInit(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    pthread_key_create(&curl_key, curlKeyFree);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_mu[i], NULL);
    curl_share = curl_share_init();
    if (curl_share) {
        curl_share_setopt(curl_share, CURLSHOPT_LOCKFUNC, shareLock);
        curl_share_setopt(curl_share, CURLSHOPT_UNLOCKFUNC, shareUnlock);
        curl_share_setopt(curl_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(curl_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
}

/* rqlite's num_client_force_new_conn: requests that found the pooled
 * connections to their node stale (the node restarted) and had to open a
 * new one. libcurl does that by itself; we see it as a request that took a
 * connection from the pool as we count them (idle ones, per node) and
 * still connected. Approximate when the pool evicts, never negative. */
#define POOL_NODES 16
#define POOL_MAX_IDLE 8
static struct {
    pthread_mutex_t mu;
    struct { char base[160]; int idle; } node[POOL_NODES];
    uint64_t force_new_conn;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The pool's entry for url's scheme://host:port, created (or recycled). Under pool.mu. */
static int *poolIdle(const char *url)
{
    const char *p = strstr(url, "://");
    size_t n = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?") : strlen(url);
    if (n >= sizeof pool.node[0].base)
        n = sizeof pool.node[0].base - 1;
    int empty = -1;
    for (int i = 0; i < POOL_NODES; i++) {
        if (strncmp(pool.node[i].base, url, n) == 0 && pool.node[i].base[n] == '\0')
            return &pool.node[i].idle;
        if (empty < 0 && pool.node[i].idle == 0)
            empty = i;
    }
    if (empty < 0)
        empty = 0;
    memcpy(pool.node[empty].base, url, n);
    pool.node[empty].base[n] = '\0';
    pool.node[empty].idle = 0;
    return &pool.node[empty].idle;
}

/* A GET is about to go: take an idle connection off the count if any. */
static bool poolTake(const char *url)
{
    pthread_mutex_lock(&pool.mu);
    int *idle = poolIdle(url);
    bool took = *idle > 0;
    if (took)
        (*idle)--;
    pthread_mutex_unlock(&pool.mu);
    return took;
}

/* The GET is over: its connection is idle in the pool (when it succeeded),
 * and if it had to connect although it took one, that one was stale. */
static void poolGive(const char *url, bool took, bool ok, long connects)
{
    pthread_mutex_lock(&pool.mu);
    int *idle = poolIdle(url);
    if (ok && *idle < POOL_MAX_IDLE)
        (*idle)++;
    if (took && connects > 0)
        pool.force_new_conn++;
    pthread_mutex_unlock(&pool.mu);
}

uint64_t cluster_force_new_conns(void)
{
    pthread_mutex_lock(&pool.mu);
    uint64_t n = pool.force_new_conn;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

static uint64_t cstats[CLUSTER_STAT_N];

void cluster_stat(int which)
{
    __atomic_fetch_add(&cstats[which], 1, __ATOMIC_RELAXED);
}

json_t *cluster_vars(void)
{
    static const char *const names[CLUSTER_STAT_N] = {
        [CLUSTER_STAT_GET_NODE_API_REQ] = "num_get_node_api_req",
        [CLUSTER_STAT_GET_NODE_API_RESP] = "num_get_node_api_resp",
        [CLUSTER_STAT_BROADCAST_HWM_REQ] = "num_broadcast_hwm_req",
        [CLUSTER_STAT_CLIENT_READ_TIMEOUTS] = "num_client_read_timeouts",
        [CLUSTER_STAT_CONN_REJECTED] = "num_conn_rejected",
    };
    /* Kept at 0: rqlite forwards writes, reads, backups, loads, removals
     * and stepdowns over its cluster service (num_*_req there); we forward
     * them to the leader's HTTP API, which counts them in "http" (and this
     * side in "proxy"). Its client retries on a fresh connection and asks
     * itself for its own address (num_get_node_api_req_local); ours does
     * neither, and the CDC high-water mark is handed over without a queue
     * that could drop it. Send and receive timeouts are one (libcurl's):
     * counted as read timeouts. */
    static const char *const zeros[] = {
        "num_execute_req", "num_query_req", "num_request_req", "num_backup_req", "num_load_req",
        "num_remove_node_req", "num_get_node_api_req_local", "num_stepdown_req", "num_hwm_update_dropped",
        "num_client_retries", "num_get_node_api_req_retries", "num_client_load_retries",
        "num_client_execute_retries", "num_client_query_retries", "num_client_request_retries",
        "num_client_write_timeouts",
    };
    json_t *v = json_object();
    for (int i = 0; i < CLUSTER_STAT_N; i++)
        json_object_set_new(v, names[i], json_integer((json_int_t)__atomic_load_n(&cstats[i], __ATOMIC_RELAXED)));
    for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
        json_object_set_new(v, zeros[i], json_integer(0));
    json_object_set_new(v, "num_client_force_new_conn", json_integer((json_int_t)cluster_force_new_conns()));
    return v;
}

/* Keeps the Content-Type of a forwarded answer, to answer with the same. */
static size_t headerCb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cluster_response *r = userdata;
    size_t n = size * nmemb;
    if (n > 13 && strncasecmp(ptr, "Content-Type:", 13) == 0) {
        const char *v = ptr + 13;
        size_t vn = n - 13;
        while (vn && (*v == ' ' || *v == '\t')) { v++; vn--; }
        while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
        if (vn >= sizeof r->content_type)
            vn = sizeof r->content_type - 1;
        memcpy(r->content_type, v, vn);
        r->content_type[vn] = 0;
    }
    return n;
}

/* The TLS side of a request, used when its URL is https:// (see the top
 * of the file). libcurl reads the files when it opens a connection, so a
 * renewed certificate is presented from the next one on. */
static void tlsOptions(CURL *c)
{
    const config *cfg = tls_cfg;
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (cfg == NULL)
        return;
    if (cfg->http_ca_cert && *cfg->http_ca_cert)
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->http_ca_cert);
    if (config_https(cfg)) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cfg->http_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, cfg->http_key);
    }
}

/* One curl handle per thread, so that keep-alive connections to the leader
 * are reused across forwarded requests served by the same HTTP worker; the
 * key's destructor frees it when the (per-connection) thread ends. */
static CURL *threadCurl(void)
{
    pthread_once(&curl_once, curlGlobalInit);
    CURL *c = pthread_getspecific(curl_key);
    if (c == NULL) {
        c = curl_easy_init();
        pthread_setspecific(curl_key, c);
    } else {
        curl_easy_reset(c);
    }
    if (c) {
        tlsOptions(c);
        if (curl_share)
            curl_easy_setopt(c, CURLOPT_SHARE, curl_share);
    }
    return c;
}

/* rqlite's answer to a 400 from an http:// node (v6 join): it may be an
 * HTTPS port answering plain HTTP (Go's "Client sent an HTTP request to an
 * HTTPS server", which our server sends too), so try https:// once.
 * Returns the URL to try, malloc'd, or NULL. */
static char *httpsInstead(const char *url, long status)
{
    if (status != 400 || strncmp(url, "http://", 7) != 0)
        return NULL;
    return rq_sprintf("https://%s", url + 7);
}

static int forward(const char *method, bool idempotent, const char *url, const char *body, size_t body_len,
                   const char *content_type, const char *authorization, uint64_t timeout_ms,
                   cluster_response *resp, char **err);

int cluster_forward(const char *method, const char *url, const char *body,
                    size_t body_len, const char *content_type,
                    const char *authorization, uint64_t timeout_ms,
                    cluster_response *resp, char **err)
{
    return forward(method, strcmp(method, "GET") == 0, url, body, body_len, content_type, authorization, timeout_ms,
                   resp, err);
}

int cluster_forward_read(const char *method, const char *url, const char *body, size_t body_len,
                         const char *content_type, const char *authorization, uint64_t timeout_ms,
                         cluster_response *resp, char **err)
{
    return forward(method, true, url, body, body_len, content_type, authorization, timeout_ms, resp, err);
}

/* A request on the shared pool if it is idempotent (libcurl may send it
 * twice, on a pooled connection found dead and then a fresh one), else on
 * a connection of its own. */
static int forward(const char *method, bool idempotent, const char *url, const char *body, size_t body_len,
                   const char *content_type, const char *authorization, uint64_t timeout_ms,
                   cluster_response *resp, char **err)
{
    CURL *c = threadCurl();
    struct curl_slist *hdrs = NULL;
    char line[1024];
    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body);
    if (c == NULL) {
        *err = strdup("cannot create HTTP client");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* The shared pool keeps a few idle connections: to the current leader,
     * mostly (writes keep none, see below). */
    curl_easy_setopt(c, CURLOPT_MAXCONNECTS, (long)POOL_MAX_IDLE);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 30000));
    /* -cluster-connect-timeout (30 s by default), as rqlite dials other nodes. */
    uint64_t connect_ms = tls_cfg && tls_cfg->cluster_connect_timeout_ms ? tls_cfg->cluster_connect_timeout_ms : 30000;
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, headerCb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    bool took = idempotent && poolTake(url);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    if (!idempotent) {
        /* At most once: libcurl silently re-sends a request when a reused
         * keep-alive connection turns out to be dead, which for a write the
         * leader already applied means applying it twice (rqlite #1628).
         * Writes get a fresh connection, never that retry. */
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L); /* ...and none is kept for them */
    }
    if (content_type && *content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (authorization && *authorization) {
        snprintf(line, sizeof line, "Authorization: %s", authorization);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (idempotent) {
        long connects = 0;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        poolGive(url, took, rc == CURLE_OK, connects);
    }
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            cluster_stat(CLUSTER_STAT_CLIENT_READ_TIMEOUTS);
        *err = rq_sprintf("%s", curl_easy_strerror(rc));
        buf_free(&resp->body);
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    return 0;
}

void cluster_response_free(cluster_response *resp)
{
    buf_free(&resp->body);
}


/* A blocking TCP connection to a node's Raft port ("host:port",
 * "localhost" meaning 127.0.0.1 as in rqlite), with send and receive
 * timeouts of timeout_ms (SO_SNDTIMEO also bounds connect()). Returns the
 * descriptor, or -1 with *err set if err is not NULL. */
static int dialRaftPort(const char *raft_addr, uint64_t timeout_ms, char **err)
{
    char host[256], port[32];
    if (addr_split(raft_addr, host, sizeof host, port, sizeof port) != 0) {
        if (err)
            *err = rq_sprintf("invalid address %s", raft_addr);
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_INET;
    int grc = getaddrinfo(host, port, &hints, &res);
    if (grc != 0) {
        hints.ai_family = AF_UNSPEC;
        grc = getaddrinfo(host, port, &hints, &res);
    }
    if (grc != 0) {
        if (err)
            *err = rq_sprintf("cannot resolve %s: %s", raft_addr, gai_strerror(grc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            int e = errno;
            close(fd);
            fd = -1;
            errno = e;
        }
    }
    if (fd < 0 && err)
        *err = rq_sprintf("cannot connect to %s: %s", raft_addr, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* A connection to a node's Raft port: the socket, and the TLS session
 * over it when this node has -node-cert (then every node has). */
typedef struct raftConn {
    int fd;
    tls_conn *tls;
    int code;           /* the last failure's TLS_ERR_* (TLS only) */
    char err[512];
} raftConn;

#define RECV_TIMEOUT (-2)

/* Dial raft_addr and, with tls, make the handshake (the server's
 * certificate verified for the host dialled, as tls_client says), all
 * within timeout_ms. Returns 0, -1 (*err: no connection) or a TLS_ERR_*
 * (*err). */
static int raftDial(tls_ctx *tls, const char *raft_addr, uint64_t timeout_ms, raftConn *c, char **err)
{
    memset(c, 0, sizeof *c);
    int64_t t0 = rq_now_ms();
    c->fd = dialRaftPort(raft_addr, timeout_ms, err);
    if (c->fd < 0)
        return -1;
    if (tls == NULL)
        return 0;
    char host[256], port[32];
    if (addr_split(raft_addr, host, sizeof host, port, sizeof port) != 0)
        snprintf(host, sizeof host, "%s", raft_addr);
    int64_t left = (int64_t)timeout_ms - (rq_now_ms() - t0);
    char *why = NULL;
    int rc = tls_client(tls, c->fd, host, left > 0 ? (int)left : 1, -1, &c->tls, &why);
    if (rc != TLS_OK) {
        *err = rq_sprintf("TLS with %s failed: %s", raft_addr, why ? why : "?");
        free(why);
        close(c->fd);
        c->fd = -1;
        return rc;
    }
    return 0;
}

/* > 0 bytes, 0 at the peer's end, RECV_TIMEOUT when nothing came within
 * timeout_ms (plaintext: the socket's SO_RCVTIMEO applies), or -1 with
 * c->err set. */
static ssize_t raftRecv(raftConn *c, void *buf, size_t n, int timeout_ms)
{
    if (c->tls) {
        ssize_t r = tls_recv(c->tls, buf, n, timeout_ms);
        if (r >= 0)
            return r;
        if (r == TLS_ERR_TIMEOUT)
            return RECV_TIMEOUT;
        c->code = (int)r;
        snprintf(c->err, sizeof c->err, "%s", tls_conn_error(c->tls));
        return -1;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return RECV_TIMEOUT;
        snprintf(c->err, sizeof c->err, "%s", strerror(errno));
        return -1;
    }
}

/* All n bytes; 0, or -1 with c->err set. */
static int raftSend(raftConn *c, const void *buf, size_t n)
{
    if (c->tls) {
        if (tls_send_all(c->tls, buf, n, 5000) == TLS_OK)
            return 0;
        snprintf(c->err, sizeof c->err, "%s", tls_conn_error(c->tls));
        return -1;
    }
    if (send(c->fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n)
        return 0;
    snprintf(c->err, sizeof c->err, "%s", strerror(errno));
    return -1;
}

static void raftClose(raftConn *c)
{
    if (c->tls) {
        tls_bye(c->tls);
        tls_conn_free(c->tls);
        c->tls = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

char *cluster_api_url(tls_ctx *tls, const char *raft_addr, uint64_t timeout_ms, bool *refused, char **err)
{
    raftConn c;
    char *why = NULL;
    if (refused)
        *refused = false;
    int rc = raftDial(tls, raft_addr, timeout_ms, &c, &why);
    if (rc != 0) {
        if (refused)
            *refused = rc == TLS_ERR_VERIFY;
        if (err)
            *err = why;
        else
            free(why);
        return NULL;
    }
    char *api = NULL;
    char reply[2048];
    size_t got = 0;
    int64_t deadline = rq_now_ms() + (int64_t)timeout_ms;
    if (raftSend(&c, CLUSTER_META_MAGIC, 8) != 0)
        goto out;
    while (got < sizeof reply - 1 && rq_now_ms() < deadline) {
        ssize_t n = raftRecv(&c, reply + got, sizeof reply - 1 - got, (int)(deadline - rq_now_ms()));
        if (n == RECV_TIMEOUT)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(reply, '\n', got))
            break;
    }
    reply[got] = 0;
    json_t *j = json_loads(reply, JSON_DISABLE_EOF_CHECK, NULL);
    const char *a = j ? json_string_value(json_object_get(j, "api_addr")) : NULL;
    if (a && *a)
        api = strdup(a);
    json_decref(j);
out:
    if (api == NULL && got == 0 && c.err[0]) {
        /* TLS 1.3: a server refusing our certificate says so after our
         * side of the handshake is over, on the first read. */
        if (refused)
            *refused = c.code == TLS_ERR_VERIFY;
        if (err)
            *err = rq_sprintf("%s: %s", raft_addr, c.err);
    } else if (api == NULL && err) {
        *err = rq_sprintf("%s gave no API address", raft_addr);
    }
    raftClose(&c);
    return api;
}

int cluster_send_hwm(tls_ctx *tls, const char *raft_addr, uint64_t hwm, uint64_t timeout_ms, char **err)
{
    raftConn c;
    char *why = NULL;
    if (raftDial(tls, raft_addr, timeout_ms, &c, &why) != 0) {
        *err = why;
        return -1;
    }
    unsigned char msg[24] = {0};
    memcpy(msg, CLUSTER_HWM_MAGIC, 8);
    le64_put(msg + 8, hwm);
    char reply[8];
    size_t got = 0;
    int64_t deadline = rq_now_ms() + (int64_t)timeout_ms;
    int rc = raftSend(&c, msg, sizeof msg);
    while (rc == 0 && got < sizeof reply && rq_now_ms() < deadline) {
        ssize_t n = raftRecv(&c, reply + got, sizeof reply - got, (int)(deadline - rq_now_ms()));
        if (n == RECV_TIMEOUT)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (rc != 0 || got != sizeof reply || memcmp(reply, CLUSTER_HWM_OK, 8) != 0) {
        *err = rq_sprintf("%s: %s", raft_addr, c.err[0] ? c.err : "no acknowledgement of the high-water mark");
        rc = -1;
    }
    raftClose(&c);
    return rc;
}

char *cluster_own_authorization(const config *cfg)
{
    if (cfg->creds == NULL || cfg->join_as == NULL || *cfg->join_as == '\0')
        return NULL;
    char *why = NULL;
    char *h = auth_basic_header(cfg->creds, cfg->join_as, &why);
    if (h == NULL)
        rq_log("cluster", "-join-as: %s: this node's request goes without credentials", why);
    free(why);
    return h;
}

/* Why a join was refused with 401, in words that say what to change. */
static char *joinRefused(const config *cfg, bool sent)
{
    if (!sent)
        return strdup("not authorized (401): the cluster requires credentials; start this node with -auth and "
                      "-join-as naming a user with the join permission");
    return rq_sprintf("not authorized (401): the cluster refused the credentials of -join-as user %s, which "
                      "needs the join permission (join-read-only is enough for a non-voter) and the same "
                      "password in the leader's -auth file", cfg->join_as);
}

/* POST our join request to base_url/join; curl follows 301s to the leader,
 * our credentials (if any) with it, though it is another host:port.
 * Returns 0 when joined; else *status is the HTTP status (0: none). */
static int postJoin(const config *cfg, const char *base_url, bool reset, long *status, char **why)
{
    json_t *req = json_pack("{s:s, s:s, s:b, s:s, s:b}", "id", cfg->node_id, "addr",
                            cfg->raft_adv_addr, "voter", !cfg->raft_non_voter,
                            "api_addr", cfg->http_api_url, "reset", reset);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *url = rq_sprintf("%s/join", base_url);
    CURL *c = threadCurl();
    buf out = BUF_INIT;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    char *auth = cluster_own_authorization(cfg);
    if (auth) {
        char *line = rq_sprintf("Authorization: %s", auth);
        hdrs = curl_slist_append(hdrs, line);
        auth_free_secret(line);
        curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 1L);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 21L);
    curl_easy_setopt(c, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    CURLcode rc = curl_easy_perform(c);
    int ret = -1;
    *status = 0;
    if (rc != CURLE_OK) {
        *why = rq_sprintf("%s", curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (*status == 200)
            ret = 0;
        else if (*status == 401)
            *why = joinRefused(cfg, auth != NULL);
        else
            *why = rq_sprintf("node returned: %ld: (%.*s)", *status,
                                  (int)(out.len > 200 ? 200 : out.len), out.data ? out.data : "");
    }
    auth_free_secret(auth);
    curl_slist_free_all(hdrs);
    buf_free(&out);
    free(url);
    free(body);
    return ret;
}

/* A node must not join through itself: its own HTTP or Raft address. */
static bool isOwnAddress(const config *cfg, const char *target)
{
    const char *t = target;
    if (strncmp(t, "http://", 7) == 0)
        t += 7;
    else if (strncmp(t, "https://", 8) == 0)
        t += 8;
    size_t n = strlen(t);
    while (n && t[n - 1] == '/')
        n--;
    return (strlen(cfg->http_adv_addr) == n && strncmp(t, cfg->http_adv_addr, n) == 0) ||
           (strlen(cfg->raft_adv_addr) == n && strncmp(t, cfg->raft_adv_addr, n) == 0);
}

/* Turn a -join value into an API base URL to POST /join to, or NULL with
 * *err when the target is a Raft port whose TLS refused us (or we it). */
static char *joinBaseUrl(const config *cfg, const char *target, char **err)
{
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        char *u = strdup(target);
        size_t n = strlen(u);
        while (n && u[n - 1] == '/')
            u[--n] = 0;
        return u;
    }
    /* A bare host:port is a Raft address (v8+) when the node answers our meta
     * probe there, else an HTTP API address (v6 accepted those too), taken
     * to speak what this node speaks. A certificate refused either way is
     * final: that is a Raft port, and this node cannot be part of its
     * cluster (rqlite's join fails too). */
    bool refused = false;
    char *why = NULL;
    char *api = cluster_api_url(cfg->node_tls, target, 1000, &refused, &why);
    if (api) {
        free(why);
        return api;
    }
    if (refused) {
        *err = why;
        return NULL;
    }
    if (cfg->node_tls && why)
        rq_log("cluster", "%s does not answer as a TLS Raft port (%s): trying it as an HTTP API address", target,
               why);
    free(why);
    return rq_sprintf("%s://%s", config_https(cfg) ? "https" : "http", target);
}

int cluster_join(const config *cfg, char *const *targets, int n_targets, bool reset, char **err)
{
    char *last = NULL;           /* why the last try failed... */
    const char *last_target = NULL; /* ...and where: the error names it */
    if (targets == NULL) {
        targets = cfg->join;
        n_targets = cfg->n_join;
    }
    for (int attempt = 0; attempt < cfg->join_attempts; attempt++) {
        for (int i = 0; i < n_targets; i++) {
            const char *target = targets[i];
            if (isOwnAddress(cfg, target)) {
                rq_log("cluster", "ignoring join address %s equal to this node's address", target);
                continue;
            }
            char *why = NULL, *https;
            char *base = joinBaseUrl(cfg, target, &why);
            long status;
            int rc = -1;
            if (base) {
                rq_log("cluster", "attempting to join %s (via %s) as node %s", target, base, cfg->node_id);
                rc = postJoin(cfg, base, reset, &status, &why);
                if (rc != 0 && (https = httpsInstead(base, status)) != NULL) {
                    rq_logl(RQ_LOG_WARN, "cluster", "join via HTTP failed, trying via HTTPS");
                    free(why);
                    why = NULL;
                    free(base);
                    base = https;
                    rc = postJoin(cfg, base, reset, &status, &why);
                }
                free(base);
            }
            if (rc == 0) {
                rq_log("cluster", "successfully joined cluster at %s", target);
                free(last);
                return 0;
            }
            rq_logl(RQ_LOG_WARN, "cluster", "failed to join via %s: %s", target, why ? why : "?");
            free(last);
            last = why;
            last_target = target;
        }
        if (attempt + 1 < cfg->join_attempts) {
            rq_logl(RQ_LOG_WARN, "cluster", "failed to join cluster, sleeping %llu ms before retry",
                    (unsigned long long)cfg->join_interval_ms);
            struct timespec ts = {(time_t)(cfg->join_interval_ms / 1000),
                                  (long)(cfg->join_interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (last_target)
        *err = rq_sprintf("failed to join cluster via %s: %s", last_target, last ? last : "?");
    else
        *err = strdup("failed to join cluster: no join address usable");
    free(last);
    return -1;
}

/* ------------------------------------------------ snapshot image fetch */

#define IMAGE_STALL_MS 30000
#define CHUNK (64 * 1024)

typedef struct imageFetch {
    const char *addr;
    cluster_image_progress_fn progress;
    void *arg;
    bool copying;
    long long done, total;
    int64_t last_byte_ms, last_report_ms;
} imageFetch;

/* About once a second: report progress (which may abandon the transfer),
 * and give up on a node that has sent nothing for IMAGE_STALL_MS. */
static int tick(imageFetch *f, char **err)
{
    int64_t now = rq_now_ms();
    if (now - f->last_report_ms >= 1000) {
        f->last_report_ms = now;
        if (f->progress && f->progress(f->arg, f->copying, f->done, f->total) != 0) {
            *err = strdup("transfer abandoned");
            return -1;
        }
    }
    if (now - f->last_byte_ms >= IMAGE_STALL_MS) {
        *err = rq_sprintf("%s sent nothing for %d s", f->addr, IMAGE_STALL_MS / 1000);
        return -1;
    }
    return 0;
}

/* Read exactly n bytes from c (waiting at most a second at a time),
 * ticking meanwhile. Returns 0, or -1 with *err set. */
static int readFull(imageFetch *f, raftConn *c, void *dst, size_t n, char **err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = raftRecv(c, (char *)dst + got, n - got, 1000);
        if (r > 0) {
            got += (size_t)r;
            f->last_byte_ms = rq_now_ms();
        } else if (r == 0) {
            *err = rq_sprintf("%s closed the connection", f->addr);
            return -1;
        } else if (r != RECV_TIMEOUT) {
            *err = rq_sprintf("reading from %s: %s", f->addr, c->err);
            return -1;
        }
        if (tick(f, err) != 0)
            return -1;
    }
    return 0;
}

/* The sender's headers until the image's own: progress while it copies,
 * then the size (0) or an error (-1, *err). */
static int awaitImage(imageFetch *f, raftConn *sock, uint64_t *size, char **err)
{
    unsigned char h[CLUSTER_IMAGE_HEADER];
    for (;;) {
        if (readFull(f, sock, h, sizeof h, err) != 0)
            return -1;
        if (memcmp(h, CLUSTER_IMAGE_COPYING, 8) == 0) {
            f->done = (long long)le64_get(h + 8);
            f->total = (long long)le64_get(h + 16);
            continue;
        }
        if (memcmp(h, CLUSTER_IMAGE_ERROR, 8) == 0) {
            uint64_t n = le64_get(h + 8);
            char text[CLUSTER_IMAGE_MAX_ERROR + 1];
            if (n > CLUSTER_IMAGE_MAX_ERROR) {
                *err = rq_sprintf("%s failed to copy its database", f->addr);
                return -1;
            }
            if (readFull(f, sock, text, (size_t)n, err) != 0)
                return -1;
            text[n] = '\0';
            *err = rq_sprintf("%s failed to copy its database: %s", f->addr, text);
            return -1;
        }
        if (memcmp(h, CLUSTER_IMAGE_OK, 8) != 0) {
            *err = rq_sprintf("%s sent no database image (not an rqlite node of this build?)", f->addr);
            return -1;
        }
        *size = le64_get(h + 8);
        return 0;
    }
}

/* The image's size bytes from sock into file through one buffer, so that
 * memory does not grow with the database; tick() reports and gives up. */
static int receiveImage(imageFetch *f, raftConn *sock, int file, const char *path, uint64_t size, char **err)
{
    char *chunk = malloc(CHUNK);
    if (chunk == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    int rc = 0;
    while (rc == 0 && (uint64_t)f->done < size) {
        size_t want = size - (uint64_t)f->done < CHUNK ? (size_t)(size - (uint64_t)f->done) : CHUNK;
        ssize_t r = raftRecv(sock, chunk, want, 1000);
        if (r == 0) {
            *err = rq_sprintf("transfer from %s truncated: %lld of %llu bytes", f->addr, f->done,
                              (unsigned long long)size);
            rc = -1;
        } else if (r < 0 && r != RECV_TIMEOUT) {
            *err = rq_sprintf("reading from %s: %s (after %lld of %llu bytes)", f->addr, sock->err, f->done,
                              (unsigned long long)size);
            rc = -1;
        } else if (r > 0 && rq_write_all(file, chunk, (size_t)r) != 0) {
            *err = rq_sprintf("writing %s: %s", path, strerror(errno));
            rc = -1;
        } else {
            if (r > 0) {
                f->done += r;
                f->last_byte_ms = rq_now_ms();
            }
            rc = tick(f, err);
        }
    }
    free(chunk);
    return rc;
}

int cluster_fetch_image(tls_ctx *tls, const char *raft_addr, const char *path, cluster_image_progress_fn progress,
                        void *arg, long long *bytes, char **err)
{
    imageFetch f = {.addr = raft_addr, .progress = progress, .arg = arg, .copying = true,
                    .last_byte_ms = rq_now_ms(), .last_report_ms = rq_now_ms()};
    *bytes = 0;
    raftConn conn, *sock = &conn;
    if (raftDial(tls, raft_addr, 5000, sock, err) != 0)
        return -1;
    /* Short receive timeouts: tick() runs at least once a second. */
    struct timeval tv = {1, 0};
    setsockopt(sock->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int file = -1, rc = -1;
    uint64_t size = 0;
    if (raftSend(sock, CLUSTER_IMAGE_MAGIC, 8) != 0) {
        *err = rq_sprintf("writing to %s: %s", raft_addr, sock->err);
    } else if (awaitImage(&f, sock, &size, err) == 0) {
        file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (file < 0) {
            *err = rq_sprintf("cannot create %s: %s", path, strerror(errno));
        } else {
            f.copying = false;
            f.done = 0;
            f.total = (long long)size;
            if (receiveImage(&f, sock, file, path, size, err) != 0)
                ;
            else if (fsync(file) != 0)
                *err = rq_sprintf("fsync %s: %s", path, strerror(errno));
            else
                rc = 0;
        }
    }
    *bytes = rc == 0 ? f.done : 0;
    raftClose(sock);
    if (file >= 0) {
        close(file);
        if (rc != 0)
            unlink(path);
    }
    return rc;
}

/* cluster_forward, and once more over https:// when an http:// URL got
 * 400 (httpsInstead). */
static int forwardOrHttps(const char *method, const char *url, const char *body, const char *auth,
                          uint64_t timeout_ms, cluster_response *resp, char **err)
{
    size_t len = body ? strlen(body) : 0;
    const char *ctype = body ? "application/json" : NULL;
    int rc = cluster_forward(method, url, body, len, ctype, auth, timeout_ms, resp, err);
    char *https = rc == 0 ? httpsInstead(url, resp->status) : NULL;
    if (https) {
        cluster_response_free(resp);
        rc = cluster_forward(method, https, body, len, ctype, auth, timeout_ms, resp, err);
        free(https);
    }
    return rc;
}

int cluster_notify(const config *cfg, const char *target, char **err)
{
    char *base = joinBaseUrl(cfg, target, err);
    if (base == NULL)
        return -1;
    char *url = rq_sprintf("%s/notify", base);
    json_t *j = json_pack("{s:s,s:s,s:s}", "id", cfg->node_id, "addr", cfg->raft_adv_addr, "api_addr",
                          cfg->http_api_url);
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    cluster_response resp;
    char *auth = cluster_own_authorization(cfg);
    int rc = forwardOrHttps("POST", url, body, auth, 2000, &resp, err);
    if (rc == 0) {
        if (resp.status == 401) {
            *err = rq_sprintf("%s answered 401: not authorized (-join-as needs the join permission)", url);
            rc = -1;
        } else if (resp.status != 200) {
            *err = rq_sprintf("%s answered %ld", url, resp.status);
            rc = -1;
        }
        cluster_response_free(&resp);
    }
    auth_free_secret(auth);
    free(body);
    free(url);
    free(base);
    return rc;
}

bool cluster_target_has_leader(const config *cfg, const char *target)
{
    if (isOwnAddress(cfg, target))
        return false;
    char *err = NULL;
    char *base = joinBaseUrl(cfg, target, &err);
    if (base == NULL) {
        free(err);
        return false;
    }
    char *url = rq_sprintf("%s/readyz", base);
    cluster_response resp;
    char *auth = cluster_own_authorization(cfg);
    bool ok = forwardOrHttps("GET", url, NULL, auth, 2000, &resp, &err) == 0 && resp.status == 200;
    if (err == NULL)
        cluster_response_free(&resp);
    auth_free_secret(auth);
    free(err);
    free(url);
    free(base);
    return ok;
}
