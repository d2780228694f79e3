/*
 * transport_tls.c: the Raft port over TLS (transport.h says what it
 * serves; tls/tls.c why libraft's streams are relayed by the loop).
 *
 * Incoming: the loop accepts and hands the socket to a thread of its own,
 * which makes the TLS handshake (verifying the client's certificate with
 * -node-verify-client), reads the first bytes inside the session and
 * serves what they ask for, as the plaintext port does: a metadata probe
 * (the answer, then close), an image (transportImageServe, through the
 * session), or libraft's handshake. For the last, the thread hands the
 * session and its socket to the loop (t->async) and ends; the loop makes
 * a socketpair, gives libraft one end (a uv_pipe_t, to its accept
 * callback) and relays between the other end and the session (loopRelay).
 *
 * Outgoing: libraft's connect starts a thread that dials, makes the
 * handshake (verifying the server's certificate for the host dialled, or
 * -node-verify-server-name), writes libraft's own handshake (our id and
 * address, as raft_uv_tcp does) and hands the session to the loop the same
 * way, where libraft's connect callback gets its end of the socketpair.
 *
 * Every wait of these threads has a deadline and ends at once when the
 * transport closes (t->cancel_fd). A refused connection is logged on the
 * side that refused it (transportLogRefused) and on the dialling side
 * (dialLogResult: at each new reason, else every 10 s), since libraft
 * retries every 250 ms.
 */
#include "store/transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "util/addr.h"
#include "util/le.h"
#include "util/log.h"
#include "util/os.h"

#define HANDSHAKE_MS 10000   /* an incoming connection's TLS handshake and first request */
#define DIAL_MS 5000         /* an outgoing one: TCP, TLS and libraft's handshake */
#define MAX_HANDSHAKING 64   /* incoming connections not past their first request; more are refused */
#define DIAL_LOG_MS 10000    /* the same dialling failure is logged again after this */

/* A thread's result, for the loop. */
typedef enum { DONE_ACCEPTED, DONE_CONTACT, DONE_DIALED } doneKind;

typedef struct tlsDone {
    struct tlsDone *next;
    doneKind kind;
    tls_conn *tls;           /* ACCEPTED, DIALED: the session, for the loop to relay (NULL: failed) */
    int net;                 /* ...on this socket (-1: none) */
    raft_id id;              /* ACCEPTED: the caller's */
    char *address;           /* ACCEPTED, CONTACT: the caller's Raft address */
    struct tlsDial *dial;    /* DIALED */
    char *err;               /* DIALED: why it failed */
} tlsDone;

/* An outgoing connection libraft waits for (loop). */
typedef struct tlsDial {
    struct tlsDial *next, *prev;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    char address[300];       /* as libraft gave it */
    bool answered;           /* canceled at close: the thread's result is dropped */
} tlsDial;

/* The last failure logged for an address dialled (loop). */
typedef struct dialLog {
    struct dialLog *next;
    char address[300];
    char last[600];
    int64_t logged_ms;
    int failures;            /* in a row */
} dialLog;

static int msLeft(int64_t deadline)
{
    int64_t left = deadline - rq_now_ms();
    return left < 0 ? 0 : (int)left;
}

/* A result for the loop (thread side). After the close it stays queued,
 * for tlsTransportFree. */
static void post(rqTransport *t, tlsDone *d)
{
    pthread_mutex_lock(&t->mu);
    d->next = NULL;
    *t->done_tail = d;
    t->done_tail = &d->next;
    if (!t->async_closed)
        uv_async_send(&t->async);
    pthread_mutex_unlock(&t->mu);
}

static void doneFree(tlsDone *d)
{
    tls_conn_free(d->tls);
    if (d->net >= 0)
        close(d->net);
    free(d->address);
    free(d->err);
    free(d);
}

/* Exactly n bytes from the session before the deadline. */
static int recvExact(tls_conn *c, void *buf, size_t n, int64_t deadline)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = tls_recv(c, (char *)buf + got, n - got, msLeft(deadline));
        if (r <= 0)
            return r == 0 ? TLS_ERR_IO : (int)r;
        got += (size_t)r;
    }
    return TLS_OK;
}

/* ---- incoming ------------------------------------------------------------ */

typedef struct serveJob {
    rqTransport *t;
    int net;                 /* -1 once handed to the loop, with the session */
    char peer[300];
    bool handshaking;        /* still counted in t->n_handshaking */
} serveJob;

static void handshakeOver(serveJob *j)
{
    if (!j->handshaking)
        return;
    j->handshaking = false;
    pthread_mutex_lock(&j->t->mu);
    j->t->n_handshaking--;
    pthread_mutex_unlock(&j->t->mu);
}

/* An image request over the session: served here, on this thread. */
static void serveImage(serveJob *j, tls_conn *c)
{
    rqTransport *t = j->t;
    const char *refuse = NULL;
    if (t->image == NULL)
        refuse = "this node is starting: it has no database to send yet";
    else if (!transportImageSlot(t))
        refuse = "too many database transfers in progress: try again later";
    if (refuse) {
        char *out;
        size_t n;
        transportImageRefusal(refuse, &out, &n);
        if (out)
            (void)tls_send_all(c, out, n, 5000);
        free(out);
    } else {
        imageOut o = {.fd = j->net, .tls = c};
        snprintf(o.peer, sizeof o.peer, "%s", j->peer);
        transportImageServe(t, &o);
    }
    tls_bye(c);
}

/* libraft's handshake (its protocol number was the first word): the
 * caller's id and address, then the stream is libraft's. */
static void serveRaft(serveJob *j, tls_conn **cp, int64_t deadline)
{
    tls_conn *c = *cp;
    rqTransport *t = j->t;
    unsigned char rest[16];
    if (recvExact(c, rest, sizeof rest, deadline) != TLS_OK) {
        transportLogRefused(t, j->peer, "its Raft handshake was cut short");
        return;
    }
    raft_id id = le64_get(rest);
    uint64_t len = le64_get(rest + 8);
    if (len == 0 || len > TRANSPORT_MAX_ADDRESS_LEN) {
        transportLogRefused(t, j->peer, "its Raft handshake is malformed");
        return;
    }
    char *address = calloc(1, (size_t)len + 1);
    if (address == NULL || recvExact(c, address, (size_t)len, deadline) != TLS_OK) {
        transportLogRefused(t, j->peer, "its Raft handshake was cut short");
        free(address);
        return;
    }
    tlsDone *d = calloc(1, sizeof *d);
    if (d == NULL) {
        free(address);
        return;
    }
    d->address = address;
    d->id = id;
    d->net = -1;
    if (t->accept_cb == NULL) { /* probe mode: a leader is trying to reach the node we are */
        d->kind = DONE_CONTACT;
        post(t, d); /* before handshakeOver: the probe is never idle in between */
        handshakeOver(j);
        return;
    }
    handshakeOver(j);
    d->kind = DONE_ACCEPTED; /* the loop relays: the session and socket are its now */
    d->tls = c;
    d->net = j->net;
    *cp = NULL;
    j->net = -1;
    post(t, d);
}

/* Close a refused connection so that the peer reads why: closing a
 * socket with unread bytes (a TLS 1.3 client's first request, sent before
 * it learns of the refusal) makes the kernel answer with a reset, which
 * loses the alert on the way. So: end our side, read what comes until the
 * peer ends too, half a second at most (or the close). */
static void lingerClose(rqTransport *t, int fd)
{
    shutdown(fd, SHUT_WR);
    int64_t deadline = rq_now_ms() + 500;
    char sink[4096];
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = t->cancel_fd, .events = POLLIN}};
        if (poll(p, 2, msLeft(deadline)) <= 0 || p[1].revents)
            break;
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    close(fd);
}

/* An incoming connection's thread: handshake, first request, service. */
static void *serveThread(void *arg)
{
    serveJob *j = arg;
    rqTransport *t = j->t;
    int64_t deadline = rq_now_ms() + HANDSHAKE_MS;
    tls_conn *c = NULL;
    char *err = NULL;
    __atomic_fetch_add(&t->n_tls_certs, 1, __ATOMIC_RELAXED); /* rqlite's mux.num_tls_cert_fetched */
    int rc = tls_server(t->tls, j->net, HANDSHAKE_MS, t->cancel_fd, &c, &err);
    if (rc != TLS_OK) {
        if (rc != TLS_ERR_CANCELED)
            transportLogRefused(t, j->peer, err ? err : "TLS handshake failed");
        handshakeOver(j);
        lingerClose(t, j->net);
        j->net = -1;
        goto out;
    }
    unsigned char first[8];
    rc = recvExact(c, first, sizeof first, deadline);
    if (rc != TLS_OK) {
        if (rc != TLS_ERR_CANCELED)
            transportLogRefused(t, j->peer, rc == TLS_ERR_TIMEOUT ? "no request within 10 s of its TLS handshake"
                                                                  : tls_conn_error(c));
        goto out;
    }
    bool known = memcmp(first, CLUSTER_META_MAGIC, 8) == 0 || memcmp(first, CLUSTER_IMAGE_MAGIC, 8) == 0 ||
                 (memcmp(first, CLUSTER_HWM_MAGIC, 8) == 0 && t->hwm) ||
                 le64_get(first) == TRANSPORT_HANDSHAKE_PROTOCOL;
    transportCountConn(t, known);
    if (memcmp(first, CLUSTER_META_MAGIC, 8) == 0) {
        cluster_stat(CLUSTER_STAT_GET_NODE_API_REQ);
        handshakeOver(j);
        if (tls_send_all(c, t->meta, strlen(t->meta), msLeft(deadline)) == TLS_OK) {
            cluster_stat(CLUSTER_STAT_GET_NODE_API_RESP);
            tls_bye(c);
        }
    } else if (memcmp(first, CLUSTER_IMAGE_MAGIC, 8) == 0) {
        handshakeOver(j);
        serveImage(j, c);
    } else if (memcmp(first, CLUSTER_HWM_MAGIC, 8) == 0 && t->hwm) {
        cluster_stat(CLUSTER_STAT_BROADCAST_HWM_REQ);
        handshakeOver(j);
        unsigned char rest[16];
        if (recvExact(c, rest, sizeof rest, deadline) == TLS_OK) {
            t->hwm(t->hwm_arg, le64_get(rest));
            if (tls_send_all(c, CLUSTER_HWM_OK, 8, msLeft(deadline)) == TLS_OK)
                tls_bye(c);
        }
    } else if (le64_get(first) == TRANSPORT_HANDSHAKE_PROTOCOL) {
        serveRaft(j, &c, deadline);
    } else {
        transportLogRefused(t, j->peer, "an unknown request after its TLS handshake");
    }
out:
    handshakeOver(j);
    free(err);
    tls_conn_free(c);
    if (j->net >= 0)
        close(j->net);
    free(j);
    transportThreadEnded(t);
    return NULL;
}

/* Close callback of an accepted handle whose socket a thread has (dup). */
static void acceptedClosed(uv_handle_t *h)
{
    rqTransport *t = h->data;
    free(h);
    t->n_tcp_closing--;
    transportMaybeFinishClose(t);
}

void tlsTransportAccept(rqTransport *t, uv_stream_t *server)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (tcp == NULL)
        return;
    uv_tcp_init(t->loop, tcp);
    tcp->data = t;
    int net = -1;
    uv_os_fd_t fd;
    if (uv_accept(server, (uv_stream_t *)tcp) == 0 && uv_fileno((uv_handle_t *)tcp, &fd) == 0)
        net = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    t->n_tcp_closing++;
    uv_close((uv_handle_t *)tcp, acceptedClosed);
    if (net < 0)
        return;
    transportTuneFd(net);
    serveJob *j = calloc(1, sizeof *j);
    if (j == NULL) {
        close(net);
        return;
    }
    j->t = t;
    j->net = net;
    j->handshaking = true;
    transportPeerName(net, j->peer, sizeof j->peer);
    pthread_mutex_lock(&t->mu);
    bool busy = t->n_handshaking >= MAX_HANDSHAKING;
    if (!busy) {
        t->n_handshaking++;
        t->n_threads++;
    }
    pthread_mutex_unlock(&t->mu);
    if (busy) {
        transportLogRefused(t, j->peer, "too many TLS handshakes in progress");
        close(net);
        free(j);
        return;
    }
    if (rq_thread_detached(serveThread, j) != 0) {
        rq_logl(RQ_LOG_WARN, "raft", "cannot start a thread for the connection from %s", j->peer);
        handshakeOver(j);
        close(net);
        free(j);
        transportThreadEnded(t);
    }
}

/* ---- outgoing ------------------------------------------------------------ */

typedef struct dialJob {
    rqTransport *t;
    tlsDial *dial;
    char address[300];
} dialJob;

/* A TCP connection to address within the deadline (non-blocking connect,
 * so that the close cancels it too). Returns the socket, or -1 with *err. */
static int dialTcp(rqTransport *t, const char *address, int64_t deadline, char **err)
{
    char numeric[300];
    addr_numeric_ipv4(address, numeric, sizeof numeric);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (addr_resolve(numeric, false, &ss, &len, err) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = rq_sprintf("socket: %s", strerror(errno));
        return -1;
    }
    int e = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        e = errno;
        while (e == EINPROGRESS || e == EINTR) {
            struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = t->cancel_fd, .events = POLLIN}};
            int n = poll(p, 2, msLeft(deadline));
            if (n == 0) {
                e = ETIMEDOUT;
            } else if (n > 0 && p[1].revents) {
                e = ECANCELED;
            } else if (n > 0) {
                socklen_t el = sizeof e;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
                    e = errno;
            } else if (errno != EINTR) {
                e = errno;
            }
        }
    }
    if (e != 0) {
        *err = rq_sprintf("%s", strerror(e));
        close(fd);
        return -1;
    }
    transportTuneFd(fd);
    return fd;
}

/* libraft's handshake, as raft_uv_tcp writes it: protocol, our id, the
 * length of our address padded to 8 bytes, the address NUL-padded. */
static int sendPreamble(rqTransport *t, tls_conn *c, int64_t deadline)
{
    size_t alen = strlen(t->self_address) + 1;
    size_t padded = (alen + 7) & ~(size_t)7;
    unsigned char *b = calloc(1, 24 + padded);
    if (b == NULL)
        return TLS_ERR_IO;
    le64_put(b, TRANSPORT_HANDSHAKE_PROTOCOL);
    le64_put(b + 8, t->self_id);
    le64_put(b + 16, padded);
    memcpy(b + 24, t->self_address, alen - 1);
    int rc = tls_send_all(c, b, 24 + padded, msLeft(deadline));
    free(b);
    return rc;
}

static void *dialThread(void *arg)
{
    dialJob *j = arg;
    rqTransport *t = j->t;
    int64_t deadline = rq_now_ms() + DIAL_MS;
    tls_conn *c = NULL;
    tlsDone *d = calloc(1, sizeof *d);
    if (d == NULL)
        abort(); /* libraft waits for an answer: there is no other way to give one */
    d->kind = DONE_DIALED;
    d->dial = j->dial;
    d->net = -1;
    int net = dialTcp(t, j->address, deadline, &d->err);
    if (net >= 0) {
        char host[300], port[32];
        if (addr_split(j->address, host, sizeof host, port, sizeof port) != 0)
            snprintf(host, sizeof host, "%s", j->address);
        int rc = tls_client(t->tls, net, host, msLeft(deadline), t->cancel_fd, &c, &d->err);
        if (rc == TLS_OK && sendPreamble(t, c, deadline) != TLS_OK) {
            d->err = rq_sprintf("sending the Raft handshake: %s", tls_conn_error(c));
        } else if (rc == TLS_OK) { /* the loop relays: the session and socket are its now */
            d->tls = c;
            d->net = net;
            c = NULL;
            net = -1;
        }
    }
    post(t, d); /* d is the loop's now */
    tls_conn_free(c);
    if (net >= 0)
        close(net);
    free(j);
    transportThreadEnded(t);
    return NULL;
}

int tlsTransportConnect(rqTransport *t, struct raft_uv_connect *req, const char *address, raft_uv_connect_cb cb)
{
    tlsDial *dl = calloc(1, sizeof *dl);
    dialJob *j = calloc(1, sizeof *j);
    if (dl == NULL || j == NULL) {
        free(dl);
        free(j);
        return RAFT_NOMEM;
    }
    dl->req = req;
    dl->cb = cb;
    snprintf(dl->address, sizeof dl->address, "%s", address);
    j->t = t;
    j->dial = dl;
    snprintf(j->address, sizeof j->address, "%s", address);
    transportThreadStarted(t);
    if (rq_thread_detached(dialThread, j) != 0) {
        free(dl);
        free(j);
        transportThreadEnded(t);
        return RAFT_IOERR;
    }
    dl->next = t->dials;
    if (t->dials)
        t->dials->prev = dl;
    t->dials = dl;
    return 0;
}

/* ---- the relay, on the loop ------------------------------------------------ */

#define RELAY_READ 65536          /* from libraft, at most, per read */
#define RELAY_RECORD 16384        /* a TLS record's plaintext, at most */
#define RELAY_DOWN_LIMIT (1 << 20) /* bytes for libraft not written yet: beyond, stop reading the peer */

/* An established connection relayed by the loop: libraft's bytes arrive
 * on our end of the socketpair (app) and go into the session; the peer's,
 * decrypted, are written to app. */
typedef struct loopRelay {
    rqTransport *t;
    struct loopRelay *next, *prev;
    tls_conn *tls;
    int net;
    uv_poll_t poll;               /* the TCP socket */
    uv_pipe_t app;
    int events;                   /* what poll waits for now */
    size_t up_len, up_off;        /* up: from libraft, not all taken by GnuTLS yet */
    bool app_reading;             /* reading libraft stops while up holds bytes */
    size_t down_pending;          /* bytes queued to app whose write has not completed */
    bool closing;
    int open_handles;
    char up[RELAY_READ];
    char record[RELAY_RECORD];    /* the peer's record being handed to libraft */
} loopRelay;

typedef struct downWrite {
    uv_write_t req;
    loopRelay *r;
    size_t len;
    char buf[];
} downWrite;

static void relayClose(loopRelay *r);
static void relayPumpDown(loopRelay *r);
static void relayOnPoll(uv_poll_t *p, int status, int events);
static void relayOnAppRead(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

/* Reads go to r->up, which is free whenever reading is on. */
static void relayAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    loopRelay *r = h->data;
    (void)suggested;
    b->base = r->up;
    b->len = sizeof r->up;
}

/* Poll for what is wanted: readable unless libraft has too much unwritten,
 * writable while GnuTLS holds back our data. */
static void relayUpdatePoll(loopRelay *r)
{
    if (r->closing)
        return;
    int ev = (r->down_pending < RELAY_DOWN_LIMIT ? UV_READABLE : 0) | (r->up_off < r->up_len ? UV_WRITABLE : 0);
    if (ev == r->events)
        return;
    r->events = ev;
    if (ev)
        uv_poll_start(&r->poll, ev, relayOnPoll);
    else
        uv_poll_stop(&r->poll);
}

/* libraft's bytes into the session, as far as the socket takes them. */
static void relayFlushUp(loopRelay *r)
{
    while (r->up_off < r->up_len) {
        ssize_t w = tls_send_nb(r->tls, r->up + r->up_off, r->up_len - r->up_off);
        if (w == TLS_AGAIN)
            break;
        if (w < 0) {
            relayClose(r);
            return;
        }
        r->up_off += (size_t)w;
    }
    /* Back-pressure: read libraft again only once all of it went out. */
    bool held = r->up_off < r->up_len;
    if (!held && !r->app_reading && uv_read_start((uv_stream_t *)&r->app, relayAlloc, relayOnAppRead) == 0)
        r->app_reading = true;
    else if (held && r->app_reading && uv_read_stop((uv_stream_t *)&r->app) == 0)
        r->app_reading = false;
    relayUpdatePoll(r);
}

static void relayOnAppRead(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    loopRelay *r = s->data;
    (void)b; /* r->up */
    if (n < 0) { /* libraft closed its end: the connection is over */
        tls_bye(r->tls);
        relayClose(r);
        return;
    }
    r->up_len = (size_t)n;
    r->up_off = 0;
    relayFlushUp(r);
}

static void relayDownWritten(uv_write_t *req, int status)
{
    downWrite *w = (downWrite *)req;
    loopRelay *r = w->r;
    r->down_pending -= w->len;
    free(w);
    if (status != 0) {
        relayClose(r);
        return;
    }
    if (!r->closing && r->down_pending < RELAY_DOWN_LIMIT)
        relayPumpDown(r);
}

/* The peer's records to libraft, until the socket has no more (what
 * GnuTLS buffered comes first), or libraft has enough unwritten. A record
 * goes straight into the socketpair when it has room (uv_try_write, which
 * never jumps a queued write); what does not fit is queued. */
static void relayPumpDown(loopRelay *r)
{
    while (!r->closing && r->down_pending < RELAY_DOWN_LIMIT) {
        ssize_t n = tls_recv_nb(r->tls, r->record, sizeof r->record);
        if (n <= 0) {
            if (n != TLS_AGAIN)
                relayClose(r); /* the peer's end, or an error */
            break;
        }
        uv_buf_t b = uv_buf_init(r->record, (unsigned)n);
        int done = uv_try_write((uv_stream_t *)&r->app, &b, 1);
        if (done == UV_EAGAIN)
            done = 0;
        if (done < 0) {
            relayClose(r);
            return;
        }
        if (done == n)
            continue;
        downWrite *w = malloc(sizeof *w + (size_t)n - (size_t)done);
        if (w == NULL) {
            relayClose(r);
            return;
        }
        w->r = r;
        w->len = (size_t)n - (size_t)done;
        memcpy(w->buf, r->record + done, w->len);
        r->down_pending += w->len;
        b = uv_buf_init(w->buf, (unsigned)w->len);
        if (uv_write(&w->req, (uv_stream_t *)&r->app, &b, 1, relayDownWritten) != 0) {
            r->down_pending -= w->len;
            free(w);
            relayClose(r);
            return;
        }
    }
    relayUpdatePoll(r);
}

static void relayOnPoll(uv_poll_t *p, int status, int events)
{
    loopRelay *r = p->data;
    if (status < 0) {
        relayClose(r);
        return;
    }
    if (events & UV_WRITABLE)
        relayFlushUp(r);
    if (!r->closing && (events & UV_READABLE))
        relayPumpDown(r);
}

static void relayHandleClosed(uv_handle_t *h)
{
    loopRelay *r = h->data;
    if (--r->open_handles > 0)
        return;
    rqTransport *t = r->t;
    if (r->prev)
        r->prev->next = r->next;
    else
        t->relays = r->next;
    if (r->next)
        r->next->prev = r->prev;
    close(r->net);
    tls_conn_free(r->tls);
    free(r);
    transportMaybeFinishClose(t);
}

static void relayClose(loopRelay *r)
{
    if (r->closing)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->poll, relayHandleClosed);
    uv_close((uv_handle_t *)&r->app, relayHandleClosed);
}

/* Relay session tls on socket net for libraft: returns libraft's end of
 * a socketpair as a stream (raft_malloc'd, libraft frees it), or NULL
 * (everything closed). */
static uv_stream_t *relayStart(rqTransport *t, tls_conn *tls, int net)
{
    int sp[2];
    loopRelay *r = calloc(1, sizeof *r);
    uv_pipe_t *theirs = raft_malloc(sizeof *theirs);
    if (r == NULL || theirs == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        free(r);
        raft_free(theirs);
        tls_conn_free(tls);
        close(net);
        return NULL;
    }
    r->t = t;
    r->tls = tls;
    r->net = net;
    uv_pipe_init(t->loop, theirs, 0);
    uv_pipe_init(t->loop, &r->app, 0);
    uv_poll_init_socket(t->loop, &r->poll, net);
    r->app.data = r->poll.data = r;
    r->open_handles = 2;
    r->next = t->relays;
    if (t->relays)
        t->relays->prev = r;
    t->relays = r;
    if (uv_pipe_open(theirs, sp[0]) != 0 || uv_pipe_open(&r->app, sp[1]) != 0) {
        close(sp[0]);
        close(sp[1]);
        uv_close((uv_handle_t *)theirs, (uv_close_cb)raft_free);
        relayClose(r);
        return NULL;
    }
    if (uv_read_start((uv_stream_t *)&r->app, relayAlloc, relayOnAppRead) == 0)
        r->app_reading = true;
    /* The handshake's thread may have left records in the session's buffer,
     * which no poll would announce. */
    relayPumpDown(r);
    return (uv_stream_t *)theirs;
}

/* ---- the loop's side ------------------------------------------------------ */

/* A dialling failure in the log when its reason is new, else every
 * DIAL_LOG_MS; a success after failures too. */
static void dialLogResult(rqTransport *t, const char *address, const char *err)
{
    dialLog *l = t->dial_logs;
    while (l && strcmp(l->address, address) != 0)
        l = l->next;
    if (l == NULL) {
        if (err == NULL || (l = calloc(1, sizeof *l)) == NULL)
            return;
        snprintf(l->address, sizeof l->address, "%s", address);
        l->next = t->dial_logs;
        t->dial_logs = l;
    }
    if (err == NULL) {
        if (l->failures > 0)
            rq_logl(RQ_LOG_WARN, "raft", "connected to %s over TLS, after %d failed attempt%s", address, l->failures,
                    l->failures == 1 ? "" : "s");
        l->failures = 0;
        l->last[0] = '\0';
        return;
    }
    l->failures++;
    int64_t now = rq_now_ms();
    if (strcmp(l->last, err) != 0 || now - l->logged_ms >= DIAL_LOG_MS) {
        rq_logl(RQ_LOG_WARN, "raft", "cannot connect to %s over TLS: %s (attempt %d)", address, err, l->failures);
        snprintf(l->last, sizeof l->last, "%s", err);
        l->logged_ms = now;
    }
}

static void dialFinished(rqTransport *t, tlsDone *d)
{
    tlsDial *dl = d->dial;
    if (dl->prev)
        dl->prev->next = dl->next;
    else
        t->dials = dl->next;
    if (dl->next)
        dl->next->prev = dl->prev;
    if (dl->answered) {
        free(dl);
        return; /* doneFree closes the session, if any */
    }
    uv_stream_t *s = NULL;
    if (d->tls) {
        s = relayStart(t, d->tls, d->net);
        d->tls = NULL;
        d->net = -1;
    }
    if (s == NULL && d->err == NULL)
        d->err = strdup("cannot open the stream");
    dialLogResult(t, dl->address, s ? NULL : d->err ? d->err : "failed");
    raft_uv_connect_cb cb = dl->cb;
    struct raft_uv_connect *req = dl->req;
    free(dl);
    cb(req, s, s ? 0 : RAFT_NOCONNECTION);
}

/* The threads' results, on the loop. */
static void onResults(uv_async_t *a)
{
    rqTransport *t = a->data;
    pthread_mutex_lock(&t->mu);
    tlsDone *d = t->done;
    t->done = NULL;
    t->done_tail = &t->done;
    pthread_mutex_unlock(&t->mu);
    while (d) {
        tlsDone *next = d->next;
        uv_stream_t *s;
        switch (d->kind) {
        case DONE_CONTACT:
            t->contacted++;
            if (t->contacted_by == NULL) {
                t->contacted_by = d->address;
                d->address = NULL;
            }
            break;
        case DONE_ACCEPTED:
            if (t->closing || t->accept_cb == NULL)
                break; /* doneFree closes the session */
            s = relayStart(t, d->tls, d->net);
            d->tls = NULL;
            d->net = -1;
            if (s)
                t->accept_cb(t->outer, d->id, d->address, s);
            break;
        case DONE_DIALED:
            dialFinished(t, d);
            break;
        }
        doneFree(d);
        d = next;
    }
}

int tlsTransportInit(rqTransport *t)
{
    t->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->cancel_fd < 0)
        return -1;
    if (uv_async_init(t->loop, &t->async, onResults) != 0) {
        close(t->cancel_fd);
        t->cancel_fd = -1;
        return -1;
    }
    t->async.data = t;
    t->async_open = true;
    t->done_tail = &t->done;
    return 0;
}

static void asyncClosed(uv_handle_t *h)
{
    rqTransport *t = h->data;
    t->async_open = false;
    transportMaybeFinishClose(t);
}

/* Every thread's wait ends (they see the cancel descriptor); results
 * still to come stay queued; libraft's pending connects are answered now,
 * as raft_uv_tcp does at close. */
void tlsTransportClose(rqTransport *t)
{
    uint64_t one = 1;
    if (write(t->cancel_fd, &one, sizeof one) != (ssize_t)sizeof one)
        rq_logl(RQ_LOG_WARN, "raft", "cannot signal the TLS threads to stop: %s", strerror(errno));
    pthread_mutex_lock(&t->mu);
    t->async_closed = true;
    pthread_mutex_unlock(&t->mu);
    uv_close((uv_handle_t *)&t->async, asyncClosed);
    for (loopRelay *r = t->relays; r != NULL; r = r->next)
        relayClose(r);
    for (tlsDial *dl = t->dials; dl != NULL; dl = dl->next) {
        if (dl->answered)
            continue;
        dl->answered = true;
        dl->cb(dl->req, NULL, RAFT_CANCELED);
    }
}

bool tlsTransportBusy(rqTransport *t)
{
    pthread_mutex_lock(&t->mu);
    bool busy = t->n_handshaking > 0 || t->done != NULL;
    pthread_mutex_unlock(&t->mu);
    return busy;
}

bool tlsTransportClosed(const rqTransport *t)
{
    return !t->async_open && t->n_tcp_closing == 0 && t->relays == NULL;
}

/* After every thread ended: what they queued after the close. */
void tlsTransportFree(rqTransport *t)
{
    for (tlsDone *d = t->done, *next; d != NULL; d = next) {
        next = d->next;
        doneFree(d); /* and the session handed to the loop, if any */
    }
    t->done = NULL;
    for (tlsDial *dl = t->dials, *next; dl != NULL; dl = next) {
        next = dl->next;
        free(dl);
    }
    t->dials = NULL;
    for (dialLog *l = t->dial_logs, *next; l != NULL; l = next) {
        next = l->next;
        free(l);
    }
    t->dial_logs = NULL;
    if (t->cancel_fd >= 0)
        close(t->cancel_fd);
}
