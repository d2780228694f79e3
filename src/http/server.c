/*
 * server.c: the HTTP server itself, on libmicrohttpd: lifecycle, the
 * connections we accept and cap, request intake, and the watchdog. What a
 * request asks for is router.c's business from router_dispatch() on.
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
 *
 * With -http-cert and -http-key every connection is TLS: libmicrohttpd
 * runs the GnuTLS sessions, tls.c gives each its certificate, its
 * transport and the client verification.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/os.h"

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
    http_tls_conn tls; /* HTTPS: the session's transport */
};

static int64_t nextDeadline(http_server *h)
{
    return rq_now_ms() + (int64_t)h->cfg->http_request_timeout_ms;
}

/* NULL for a connection the watchdog does not watch (see onConnection). */
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

/* libmicrohttpd's connection notifications: a started connection goes on
 * the watchdog's list; a closed one comes off it and stops counting
 * against the cap (the acceptor counted it when it admitted it). */
static void onConnection(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    http_server *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *si =
            h->tls ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
        http_conn *k = calloc(1, sizeof *k);
        if (k == NULL || ci == NULL || (h->tls && (si == NULL || si->tls_session == NULL))) {
            /* Not watched: only MHD's inactivity timeout applies. An
             * HTTPS connection without its transport (hence without client
             * verification) is not served at all. */
            if (h->tls && ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            free(k);
            return;
        }
        k->fd = ci->connect_fd;
        if (h->tls)
            http_tls_attach(h->tls, &k->tls, si->tls_session, k->fd);
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
        rq_logl(RQ_LOG_WARN, "http", "back under the connection limit (%d open); %lu connections refused meanwhile",
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

/* Writes a whole answer straight to the socket (through c's TLS session on
 * HTTPS), for the cases where libmicrohttpd cannot queue one: a refused
 * connection (never given to it, c NULL) and a body that outgrew the limit
 * while being read (MHD_queue_response refuses while a body is being
 * received). Nothing else is being written on the socket then; the answer
 * is small and the socket's buffer empty, so one non-blocking send does
 * it. The write side is then shut so the client sees the end of the answer
 * before the close. */
static void sendRaw(http_server *h, struct MHD_Connection *c, int fd, unsigned status, const char *reason,
                    const char *msg)
{
    char out[640];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "X-RQLITE-VERSION: %s\r\n%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     status, reason, RQ_VERSION, status == 503 ? "Retry-After: 1\r\n" : "",
                     h->cfg->creds ? "WWW-Authenticate: Basic realm=\"rqlite\"\r\n" : "", strlen(msg) + 1, msg);
    if (h->tls ? c == NULL || http_tls_send(c, out, (size_t)n) != 0
               : send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return;
    shutdown(fd, SHUT_WR);
}

/* Over the cap: 503 and close, without libmicrohttpd. What the client has
 * already sent is read first (up to a bound), so that the close does not
 * turn into a reset that could overtake the answer. On HTTPS there is no
 * session to answer in (the handshake is libmicrohttpd's): the connection
 * is closed unanswered. */
static void refuse(http_server *h, int fd)
{
    sendRaw(h, NULL, fd, 503, "Service Unavailable", "too many connections");
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
                rq_logl(RQ_LOG_WARN, "http", "cannot accept connections: %s (%lu times since the last such line)",
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
                rq_log("http", "connection limit reached (%d, -http-max-conns): new connections get %s "
                       "until some close", cap, h->tls ? "closed unanswered (HTTPS)" : "503");
            h->at_cap = true;
            h->refused++;
        }
        pthread_mutex_unlock(&h->conns_mu);
        if (!admit) {
            refuse(h, fd);
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
    return respond_with(h, c, status, "text/plain; charset=utf-8", r);
}

typedef struct framing {
    int n_length, n_encoding;
    bool length_bad, length_conflict, chunked;
    uint64_t length;
} framing;

/* Counts every Content-Length and Transfer-Encoding header: libmicrohttpd
 * reads only the first, and it is a repeated or mixed one that makes a
 * length ambiguous. */
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

/* libmicrohttpd's access handler: called once the headers are in, then
 * for each piece of body, then once more with none, when the request is
 * complete and is routed. Limits are applied at each step so that nothing
 * beyond them is ever read or kept. */
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
                sendRaw(h, c, ci->connect_fd, 413, "Content Too Large", "request body too large");
            return MHD_NO;
        }
        buf_append(&rq->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!connBusy(c))
        return MHD_NO; /* the watchdog cut it as it completed */
    return router_dispatch(h, c, url, method, rq);
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
    if (rq && rq->status) {
        int r = router_index(rq->route);
        int k = 0;
        while (k < HTTP_N_CODES - 1 && http_codes[k] != rq->status)
            k++;
        __atomic_fetch_add(&h->codes[r][k], 1, __ATOMIC_RELAXED);
        metrics_observe(&h->latency[r], rq_now_sec() - rq->t0);
    }
    if (rq) {
        buf_free(&rq->body);
        free(rq->user);
        auth_free_secret(rq->pass);
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
    /* What libmicrohttpd says of every failed TLS handshake. */
    if (h->tls && strcmp(msg, "Error: received handshake message out of context.") == 0)
        snprintf(msg, sizeof msg, "TLS handshake failed (plain HTTP, TLS older than 1.2, a client certificate "
                                  "missing or refused, or the client gave up)");
    unsigned long dropped = 0;
    bool show = rq_log_limit_take(&h->mhd_log, 10, 10000, &dropped);
    if (show && dropped)
        rq_log("http", "libmicrohttpd: %s (%lu earlier messages not logged)", msg, dropped);
    else if (show)
        rq_log("http", "libmicrohttpd: %s", msg);
}

/* ---- lifecycle ------------------------------------------------------------------------ */


/* The listening socket: SO_REUSEADDR (a restart binds while old connections
 * linger in TIME_WAIT) but not SO_REUSEPORT, so a second node on the same
 * port fails instead of sharing it. */
static int listenOn(const char *addr, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (addr_resolve(addr, true, &ss, &sslen, err) != 0)
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
    h->mhd_log = (rq_log_limit)RQ_LOG_LIMIT_INIT;
    h->fail_log = (rq_log_limit)RQ_LOG_LIMIT_INIT;
    h->cfg = cfg;
    clock_gettime(CLOCK_REALTIME, &h->start_real);
    clock_gettime(CLOCK_MONOTONIC, &h->start_mono);
    h->wake[0] = h->wake[1] = -1;
    /* The certificates first: a pair that cannot be used binds nothing. */
    if (http_tls_open(cfg, &h->tls, err) != 0) {
        free(h);
        return -1;
    }
    h->listen_fd = listenOn(cfg->http_addr, err);
    if (h->listen_fd < 0 || pipe2(h->wake, O_CLOEXEC) != 0) {
        if (h->listen_fd >= 0) {
            *err = rq_sprintf("cannot create a pipe: %s", strerror(errno));
            close(h->listen_fd);
        }
        http_tls_close(h->tls);
        free(h);
        return -1;
    }
    /* Everything a request may touch exists before the first one arrives. */
    h->queue = queue_start(cfg->write_queue_capacity, cfg->write_queue_batch_size,
                           cfg->write_queue_timeout_ms, cfg->write_queue_tx, handle_execute_flush, h);
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
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
                     (h->tls ? MHD_USE_TLS : 0);
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, onRequest, h,
                              MHD_OPTION_EXTERNAL_LOGGER, mhdLog, h, /* first, to catch all */
                              MHD_OPTION_NOTIFY_COMPLETED, onCompleted, h,
                              MHD_OPTION_NOTIFY_CONNECTION, onConnection, h,
                              MHD_OPTION_CONNECTION_TIMEOUT, idle,
                              MHD_OPTION_CONNECTION_LIMIT, limit,
                              MHD_OPTION_THREAD_STACK_SIZE, stack,
                              MHD_OPTION_ARRAY, http_tls_options(h->tls),
                              MHD_OPTION_END);
    if (h->mhd == NULL || pthread_create(&h->acceptor, NULL, acceptThread, h) != 0) {
        *err = rq_sprintf("cannot start the HTTP server on %s", cfg->http_addr);
        if (h->mhd)
            MHD_stop_daemon(h->mhd);
        queue_stop(h->queue);
        close(h->listen_fd);
        close(h->wake[0]);
        close(h->wake[1]);
        http_tls_close(h->tls);
        free(h);
        return -1;
    }
    h->watching = cfg->http_request_timeout_ms > 0 &&
                  pthread_create(&h->watchdog, NULL, watchdogThread, h) == 0;
    if (h->tls) /* rqlite's line */
        rq_log("http", "secure HTTPS server enabled with cert %s, key %s%s%s%s%s%s%s", cfg->http_cert, cfg->http_key,
               cfg->http_ca_cert && *cfg->http_ca_cert ? ", CA cert " : "",
               cfg->http_ca_cert && *cfg->http_ca_cert ? cfg->http_ca_cert : "",
               cfg->http_verify_client ? ", mutual TLS enabled" : ", mutual TLS disabled",
               cfg->http_verify_common_name && *cfg->http_verify_common_name ? ", required client CN \"" : "",
               cfg->http_verify_common_name && *cfg->http_verify_common_name ? cfg->http_verify_common_name : "",
               cfg->http_verify_common_name && *cfg->http_verify_common_name ? "\"" : "");
    rq_log("http", "service listening on %s (at most %d connections, %llu-byte bodies, %llu ms to send a request)",
           cfg->http_addr, cfg->http_max_conns, (unsigned long long)cfg->http_max_body_size,
           (unsigned long long)cfg->http_request_timeout_ms);
    *out = h;
    return 0;
}

store *http_server_store(http_server *h)
{
    return __atomic_load_n(&h->st, __ATOMIC_ACQUIRE);
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
        rq_logl(RQ_LOG_WARN, "http", "cannot wake the acceptor: %s", strerror(errno));
    pthread_join(h->acceptor, NULL);
    close(h->listen_fd);
    pthread_mutex_lock(&h->conns_mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->conns_cv);
    pthread_mutex_unlock(&h->conns_mu);
    if (h->watching)
        pthread_join(h->watchdog, NULL);
    MHD_stop_daemon(h->mhd); /* NOTIFY_CLOSED frees what is left of conns */
    http_tls_close(h->tls);
    queue_stop(h->queue); /* flushes what is queued while the store is open */
    rq_log("http", "service on %s stopped", h->cfg->http_addr);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h->notified);
    pthread_mutex_destroy(&h->conns_mu);
    pthread_cond_destroy(&h->conns_cv);
    pthread_mutex_destroy(&h->mhd_log.mu);
    pthread_mutex_destroy(&h->fail_log.mu);
    free(h);
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
