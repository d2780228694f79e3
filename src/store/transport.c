/*
 * transport: libraft's TCP handshake plus metadata probes on one port.
 *
 * Incoming connections are read exactly as far as the handshake goes (the
 * alloc callback never offers more room than the bytes still expected), so
 * that nothing libraft sends after the handshake is consumed here.
 *
 * Image requests (CLUSTER_IMAGE_MAGIC, framing in cluster/cluster.h) leave
 * the loop at once: the connection's socket is handed to a thread of its
 * own, which has the store make a consistent copy of the database (the
 * transport_image_fn given at init) and sends it with sendfile(), from the file to
 * the socket, so that memory does not depend on the database size and the
 * Raft thread never waits for a disk or a slow follower. At most
 * MAX_IMAGE_SENDERS run at once (each copy takes the database's size on
 * disk until sent); more are answered with an error, and retried.
 */
#include "store/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/os.h"
#include "util/le.h"

#define HANDSHAKE_PROTOCOL 1
#define MAX_ADDRESS_LEN 4096
#define MAX_IMAGE_SENDERS 4

typedef struct rqTransport {
    struct raft_uv_transport inner; /* raft_uv_tcp: outgoing connections */
    struct raft_uv_transport *outer;
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    char *bind_addr;
    char *meta;                     /* probe answer, with trailing '\n' */
    raft_uv_accept_cb accept_cb;    /* NULL in probe mode */
    int contacted;                  /* probe mode: raft handshakes seen */
    char *contacted_by;             /* probe mode: the first caller's address */
    int n_incoming;                 /* connections mid-handshake */
    struct incoming *incomings;     /* list of them, to abort on close */
    bool closing;
    bool inner_inited;              /* libraft called init (not in probe mode) */
    raft_uv_transport_close_cb close_cb;
    transport_image_fn image;              /* NULL: image requests get an error */
    void *image_arg;
    pthread_mutex_t img_mu;
    pthread_cond_t img_done;
    struct imageSender *senders;    /* under img_mu: transfers in progress */
    int n_senders;                  /* under img_mu */
} rqTransport;

typedef struct incoming {
    rqTransport *t;
    struct incoming *next, *prev;
    uv_tcp_t *tcp;                  /* raft_malloc'd: libraft frees it */
    uint64_t preamble[3];           /* protocol, id, address length */
    size_t nread;                   /* bytes of the current stage read */
    char *address;
    size_t address_len;
    int stage;                      /* 0: first word, 1: preamble rest, 2: address */
} incoming;

int transport_resolve_bind(const char *addr, struct sockaddr_storage *ss, char **err)
{
    return addr_resolve(addr, true, ss, NULL, err);
}

static void maybeFinishClose(rqTransport *t);

/* An incoming connection leaves the list tClose() closes. */
static void incomingUnlink(incoming *in)
{
    rqTransport *t = in->t;
    if (in->prev)
        in->prev->next = in->next;
    else if (t->incomings == in)
        t->incomings = in->next;
    if (in->next)
        in->next->prev = in->prev;
    in->next = in->prev = NULL;
    t->n_incoming--;
}

/* Close callback of an incoming connection we keep no longer; the
 * transport may finish closing once the last is gone. */
static void incomingFree(uv_handle_t *h)
{
    incoming *in = h->data;
    rqTransport *t = in->t;
    raft_free(in->tcp);
    free(in->address);
    incomingUnlink(in);
    free(in);
    maybeFinishClose(t);
}

/* Drop an incoming connection (once: it may already be closing). */
static void incomingAbort(incoming *in)
{
    if (uv_is_closing((uv_handle_t *)in->tcp))
        return;
    uv_close((uv_handle_t *)in->tcp, incomingFree);
}

/* Read exactly what the current stage of the handshake still lacks,
 * so that nothing of what follows it is consumed here: libraft reads
 * the rest of the stream once it has the connection. */
static void allocExact(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    incoming *in = h->data;
    (void)suggested;
    switch (in->stage) {
    case 0:
        b->base = (char *)in->preamble + in->nread;
        b->len = 8 - in->nread;
        break;
    case 1:
        b->base = (char *)in->preamble + in->nread;
        b->len = sizeof in->preamble - in->nread;
        break;
    default:
        b->base = in->address + in->nread;
        b->len = in->address_len - in->nread;
        break;
    }
}

/* A short answer written from the loop (a metadata probe's, or an image
 * request's refusal), after which the connection is closed. */
typedef struct replyWrite {
    uv_write_t req;
    incoming *in;
    char *owned;                    /* the bytes, if not static */
} replyWrite;

/* The answer is out: the connection has served its purpose. */
static void replyWritten(uv_write_t *req, int status)
{
    replyWrite *w = (replyWrite *)req;
    (void)status;
    incomingAbort(w->in);
    free(w->owned);
    free(w);
}

/* Takes owned (may be NULL if data is static). */
static void replyAndClose(incoming *in, const char *data, size_t len, char *owned)
{
    replyWrite *w = calloc(1, sizeof *w);
    if (w == NULL) {
        free(owned);
        incomingAbort(in);
        return;
    }
    w->in = in;
    w->owned = owned;
    uv_buf_t out = uv_buf_init((char *)data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)in->tcp, &out, 1, replyWritten) != 0) {
        free(w->owned);
        free(w);
        incomingAbort(in);
    }
}

/* ---- image requests ---------------------------------------------------- */

typedef struct imageSender {
    rqTransport *t;
    struct imageSender *next, *prev; /* under t->img_mu */
    int fd;                          /* the connection, blocking */
    char peer[INET6_ADDRSTRLEN + 8];
    int64_t last_progress_ms;
} imageSender;

/* Under t->img_mu: a sender is done. It leaves the list tClose() shuts
 * sockets down from, and the count transport_free() waits on; its socket
 * is closed under the lock so that tClose() never shuts down a descriptor
 * number reused meanwhile. */
static void senderRemoveLocked(rqTransport *t, imageSender *is)
{
    if (is->prev)
        is->prev->next = is->next;
    else
        t->senders = is->next;
    if (is->next)
        is->next->prev = is->prev;
    close(is->fd);
    t->n_senders--;
    pthread_cond_broadcast(&t->img_done);
}

static void imageHeader(unsigned char h[CLUSTER_IMAGE_HEADER], const char *tag, uint64_t a, uint64_t b)
{
    memcpy(h, tag, 8);
    le64_put(h + 8, a);
    le64_put(h + 16, b);
}

/* Sender threads write with blocking sends; a vanished follower fails
 * them (SO_SNDTIMEO, TCP_USER_TIMEOUT) rather than raising SIGPIPE. */
static int sendAll(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Called by the copy: keep the requester informed, about once a second. A
 * failed write is noticed when the copy is sent. */
static void imageProgress(void *parg, long long done, long long total)
{
    imageSender *is = parg;
    int64_t now = rq_now_ms();
    if (now - is->last_progress_ms < 1000)
        return;
    is->last_progress_ms = now;
    unsigned char h[CLUSTER_IMAGE_HEADER];
    imageHeader(h, CLUSTER_IMAGE_COPYING, (uint64_t)done, (uint64_t)total);
    (void)sendAll(is->fd, h, sizeof h);
}

/* A sender thread: copying and sending a database takes as long as it is
 * large, so it runs off the loop, on a blocking duplicate of the socket. */
static void *imageThread(void *arg)
{
    imageSender *is = arg;
    rqTransport *t = is->t;
    int fd = is->fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    /* A follower that stops reading is given up on (TCP_USER_TIMEOUT from
     * tuneSocket() also catches one that vanished). */
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int64_t t0 = rq_now_ms();
    is->last_progress_ms = t0;
    rq_log("store", "snapshot image requested by %s: copying the database", is->peer);
    uint64_t size = 0;
    char *err = NULL;
    unsigned char h[CLUSTER_IMAGE_HEADER];
    int file = t->image(t->image_arg, imageProgress, is, &size, &err);
    if (file < 0) {
        const char *text = err ? err : "cannot copy the database";
        rq_log("store", "snapshot image for %s failed: %s", is->peer, text);
        size_t n = strlen(text);
        if (n > CLUSTER_IMAGE_MAX_ERROR)
            n = CLUSTER_IMAGE_MAX_ERROR;
        imageHeader(h, CLUSTER_IMAGE_ERROR, n, 0);
        if (sendAll(fd, h, sizeof h) == 0)
            (void)sendAll(fd, text, n);
    } else {
        imageHeader(h, CLUSTER_IMAGE_OK, size, size);
        int rc = sendAll(fd, h, sizeof h);
        off_t off = 0;
        while (rc == 0 && (uint64_t)off < size) {
            uint64_t left = size - (uint64_t)off;
            ssize_t w = sendfile(fd, file, &off, left > (1u << 20) ? (1u << 20) : (size_t)left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                if (w == 0)
                    errno = EIO; /* the copy is shorter than it was */
                rc = -1;
            }
        }
        double secs = (double)(rq_now_ms() - t0) / 1000.0;
        if (rc == 0)
            rq_log("store", "snapshot image: sent %llu bytes to %s in %.2f s", (unsigned long long)size,
                   is->peer, secs);
        else
            rq_log("store", "snapshot image: sending to %s failed after %lld of %llu bytes: %s", is->peer,
                   (long long)off, (unsigned long long)size, strerror(errno));
        close(file);
    }
    free(err);
    pthread_mutex_lock(&t->img_mu);
    senderRemoveLocked(t, is);
    pthread_mutex_unlock(&t->img_mu);
    free(is);
    return NULL;
}

/* An image request refused: the error header and text, then close. */
static void imageRefuse(incoming *in, const char *why)
{
    size_t n = strlen(why);
    char *out = malloc(CLUSTER_IMAGE_HEADER + n);
    if (out == NULL) {
        incomingAbort(in);
        return;
    }
    imageHeader((unsigned char *)out, CLUSTER_IMAGE_ERROR, n, 0);
    memcpy(out + CLUSTER_IMAGE_HEADER, why, n);
    replyAndClose(in, out, CLUSTER_IMAGE_HEADER + n, out);
}

/* Loop thread: hand an image request's socket to a sender thread. */
static void imageStart(incoming *in)
{
    rqTransport *t = in->t;
    if (t->image == NULL) {
        imageRefuse(in, "this node is starting: it has no database to send yet");
        return;
    }
    uv_os_fd_t ufd;
    imageSender *is = calloc(1, sizeof *is);
    if (is == NULL || uv_fileno((uv_handle_t *)in->tcp, &ufd) != 0 ||
        (is->fd = fcntl(ufd, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(is);
        incomingAbort(in);
        return;
    }
    is->t = t;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(is->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(is->peer, sizeof is->peer, "%s:%d", host, port);
    pthread_mutex_lock(&t->img_mu);
    bool busy = t->n_senders >= MAX_IMAGE_SENDERS;
    if (!busy) {
        is->next = t->senders;
        if (t->senders)
            t->senders->prev = is;
        t->senders = is;
        t->n_senders++;
    }
    pthread_mutex_unlock(&t->img_mu);
    if (busy) {
        close(is->fd);
        free(is);
        imageRefuse(in, "too many database transfers in progress: try again later");
        return;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, imageThread, is);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&t->img_mu);
        senderRemoveLocked(t, is);
        pthread_mutex_unlock(&t->img_mu);
        free(is);
        imageRefuse(in, "cannot start a thread for the transfer");
        return;
    }
    /* The sender has its own descriptor for the socket. */
    incomingAbort(in);
}

/* What the first bytes of an incoming connection are: a metadata probe,
 * an image request, or libraft's handshake (protocol, id, address), which
 * hands the connection to libraft once complete. */
static void onRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    incoming *in = s->data;
    rqTransport *t = in->t;
    (void)b;
    if (nread == 0)
        return;
    if (nread < 0 || t->closing) {
        uv_read_stop(s);
        incomingAbort(in);
        return;
    }
    in->nread += (size_t)nread;
    if (in->stage == 0) {
        if (in->nread < 8)
            return;
        if (memcmp(in->preamble, CLUSTER_META_MAGIC, 8) == 0) {
            uv_read_stop(s);
            replyAndClose(in, t->meta, strlen(t->meta), NULL);
            return;
        }
        if (memcmp(in->preamble, CLUSTER_IMAGE_MAGIC, 8) == 0) {
            uv_read_stop(s);
            imageStart(in);
            return;
        }
        if (le64_get((const unsigned char *)&in->preamble[0]) != HANDSHAKE_PROTOCOL) {
            uv_read_stop(s);
            incomingAbort(in);
            return;
        }
        in->stage = 1;
        return;
    }
    if (in->stage == 1) {
        if (in->nread < sizeof in->preamble)
            return;
        in->address_len = (size_t)le64_get((const unsigned char *)&in->preamble[2]);
        if (in->address_len == 0 || in->address_len > MAX_ADDRESS_LEN) {
            uv_read_stop(s);
            incomingAbort(in);
            return;
        }
        in->address = calloc(1, in->address_len + 1);
        in->nread = 0;
        in->stage = 2;
        return;
    }
    if (in->nread < in->address_len)
        return;
    uv_read_stop(s);
    if (t->accept_cb == NULL) {
        /* Probe mode: a leader is trying to reach the node we are. */
        t->contacted++;
        if (t->contacted_by == NULL) {
            in->address[in->address_len] = 0;
            t->contacted_by = strdup(in->address);
        }
        incomingAbort(in);
        return;
    }
    raft_id id = le64_get((const unsigned char *)&in->preamble[1]);
    in->address[in->address_len] = 0;
    uv_tcp_t *tcp = in->tcp;
    char *address = in->address;
    incomingUnlink(in);
    free(in);
    tcp->data = NULL;
    t->accept_cb(t->outer, id, address, (uv_stream_t *)tcp);
    free(address);
}

/* A peer that dies behind a partition sends no FIN: without probes its
 * connection would stay open for good on our side (one descriptor per such
 * event, seen in the chaos runs). Keepalive notices an idle dead peer in
 * about 11 s, the user timeout one that leaves our data unacknowledged
 * for 15 s; libraft reconnects once the network heals. */
static void tuneSocket(uv_tcp_t *tcp)
{
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, 5);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0)
        return;
    int intvl = 2, cnt = 3;
    unsigned timeout_ms = 15000;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
}

/* Every incoming connection starts in our hands, so that probes and image
 * requests can be told from libraft's. */
static void onConnection(uv_stream_t *server, int status)
{
    rqTransport *t = server->data;
    if (status != 0 || t->closing)
        return;
    incoming *in = calloc(1, sizeof *in);
    in->t = t;
    in->tcp = raft_malloc(sizeof *in->tcp);
    uv_tcp_init(t->loop, in->tcp);
    in->tcp->data = in;
    t->n_incoming++;
    in->next = t->incomings;
    if (t->incomings)
        t->incomings->prev = in;
    t->incomings = in;
    if (uv_accept(server, (uv_stream_t *)in->tcp) != 0 ||
        uv_read_start((uv_stream_t *)in->tcp, allocExact, onRead) != 0) {
        incomingAbort(in);
        return;
    }
    tuneSocket(in->tcp);
}

/* Bind the Raft port: for libraft (tListen) or for a probe. */
static int startListening(rqTransport *t, char **err)
{
    struct sockaddr_storage ss;
    if (transport_resolve_bind(t->bind_addr, &ss, err) != 0)
        return -1;
    uv_tcp_init(t->loop, &t->listener);
    t->listener.data = t;
    int rc = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&t->listener, 128, onConnection);
    if (rc != 0) {
        if (err && asprintf(err, "cannot listen on %s: %s", t->bind_addr, uv_strerror(rc)) < 0)
            *err = NULL;
        uv_close((uv_handle_t *)&t->listener, NULL);
        return -1;
    }
    t->listening = true;
    return 0;
}

/* raft_uv_transport methods */

/* Outgoing connections are the inner raft_uv_tcp transport's. */
static int tInit(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    rqTransport *t = outer->impl;
    int rv = t->inner.init(&t->inner, id, address);
    t->inner_inited = rv == 0;
    return rv;
}

/* libraft listens: we accept, and pass it its connections (onRead). */
static int tListen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    rqTransport *t = outer->impl;
    char *err = NULL;
    t->accept_cb = cb;
    if (startListening(t, &err) != 0) {
        snprintf(outer->errmsg, sizeof outer->errmsg, "%s", err ? err : "listen failed");
        rq_log("raft", "%s", err ? err : "listen failed");
        free(err);
        return RAFT_IOERR;
    }
    return 0;
}

/* libraft 0.15 only dials numeric IPv4 "a.b.c.d:port"; peers are often
 * named ("localhost:4004"), so resolve here (IPv4, like the listener). */
static void numericAddress(const char *address, char *out, size_t n)
{
    addr_numeric_ipv4(address, out, n);
}

/* An outgoing connection: made by the inner transport, tuned here. */
typedef struct connecting {
    struct raft_uv_connect req; /* the inner transport's */
    struct raft_uv_connect *outer;
    raft_uv_connect_cb cb;
} connecting;

/* The inner transport connected: tune the socket before libraft has it. */
static void connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    connecting *c = req->data;
    if (status == 0 && stream)
        tuneSocket((uv_tcp_t *)stream);
    struct raft_uv_connect *outer = c->outer;
    raft_uv_connect_cb cb = c->cb;
    free(c);
    cb(outer, stream, status);
}

/* Dial through the inner transport, at a numeric address. */
static int tConnect(struct raft_uv_transport *outer, struct raft_uv_connect *req,
                    raft_id id, const char *address, raft_uv_connect_cb cb)
{
    rqTransport *t = outer->impl;
    char numeric[300];
    numericAddress(address, numeric, sizeof numeric);
    connecting *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_NOMEM;
    c->req.data = c;
    c->outer = req;
    c->cb = cb;
    int rv = t->inner.connect(&t->inner, &c->req, id, numeric, connected);
    if (rv != 0)
        free(c);
    return rv;
}

/* The inner transport is closed: ours is, too. */
static void innerClosed(struct raft_uv_transport *inner)
{
    rqTransport *t = inner->data;
    raft_uv_transport_close_cb cb = t->close_cb;
    t->close_cb = NULL;
    if (cb)
        cb(t->outer);
}

/* The transport is closed once the listener and every incoming connection
 * are; the inner transport closes last. */
static void maybeFinishClose(rqTransport *t)
{
    if (!t->closing || t->listening || t->n_incoming > 0 || t->close_cb == NULL)
        return;
    if (!t->inner_inited) { /* nothing of the inner transport to close */
        raft_uv_transport_close_cb cb = t->close_cb;
        t->close_cb = NULL;
        cb(t->outer);
        return;
    }
    t->inner.data = t;
    t->inner.close(&t->inner, innerClosed);
}

/* Close callback of the listener. */
static void listenerClosed(uv_handle_t *h)
{
    rqTransport *t = h->data;
    t->listening = false;
    maybeFinishClose(t);
}

/* libraft closes the transport: end image transfers, incoming
 * connections and the listener; maybeFinishClose() completes it. */
static void tClose(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    rqTransport *t = outer->impl;
    t->closing = true;
    t->close_cb = cb;
    /* Image transfers in progress end at their next write;
     * transport_free() waits for their threads. */
    pthread_mutex_lock(&t->img_mu);
    for (imageSender *is = t->senders; is != NULL; is = is->next)
        shutdown(is->fd, SHUT_RDWR);
    pthread_mutex_unlock(&t->img_mu);
    for (incoming *in = t->incomings; in != NULL; in = in->next)
        if (!uv_is_closing((uv_handle_t *)in->tcp))
            uv_close((uv_handle_t *)in->tcp, incomingFree);
    if (t->listening)
        uv_close((uv_handle_t *)&t->listener, listenerClosed);
    else
        maybeFinishClose(t);
}

int transport_init(struct raft_uv_transport *outer, uv_loop_t *loop,
                      const char *bind_addr, const char *meta_json,
                      transport_image_fn image, void *image_arg)
{
    rqTransport *t = calloc(1, sizeof *t);
    if (t == NULL)
        return RAFT_NOMEM;
    int rc = raft_uv_tcp_init(&t->inner, loop);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->outer = outer;
    t->loop = loop;
    t->image = image;
    t->image_arg = image_arg;
    pthread_mutex_init(&t->img_mu, NULL);
    pthread_cond_init(&t->img_done, NULL);
    t->bind_addr = strdup(bind_addr);
    if (asprintf(&t->meta, "%s\n", meta_json) < 0)
        t->meta = NULL;
    memset(outer, 0, sizeof *outer);
    outer->impl = t;
    outer->init = tInit;
    outer->listen = tListen;
    outer->connect = tConnect;
    outer->close = tClose;
    return 0;
}

void transport_free(struct raft_uv_transport *outer)
{
    rqTransport *t = outer->impl;
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->img_mu);
    if (t->n_senders > 0)
        rq_log("store", "waiting for %d snapshot image transfer(s) to end", t->n_senders);
    while (t->n_senders > 0)
        pthread_cond_wait(&t->img_done, &t->img_mu);
    pthread_mutex_unlock(&t->img_mu);
    pthread_mutex_destroy(&t->img_mu);
    pthread_cond_destroy(&t->img_done);
    raft_uv_tcp_close(&t->inner);
    free(t->bind_addr);
    free(t->meta);
    free(t);
    outer->impl = NULL;
}

/* Probe mode */

/* Probe mode: the window is over, nobody reached us. */
static void probeTimeout(uv_timer_t *timer)
{
    uv_stop(timer->loop);
}

/* Probe mode: a leader reached us; no need to wait longer. */
static void probeContactCheck(uv_check_t *check)
{
    rqTransport *t = check->data;
    if (t->contacted)
        uv_stop(check->loop);
}

/* Probe mode has no libraft above the transport: nothing to tell. */
static void probeClosed(struct raft_uv_transport *outer) { (void)outer; }

int transport_probe(const char *bind_addr, const char *meta_json,
                       unsigned timeout_ms, char **contacted_by, char **err)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct raft_uv_transport outer;
    if (transport_init(&outer, &loop, bind_addr, meta_json, NULL, NULL) != 0) {
        uv_loop_close(&loop);
        *err = strdup("cannot create transport");
        return -1;
    }
    rqTransport *t = outer.impl;
    int result = -1;
    if (startListening(t, err) == 0) {
        uv_timer_t timer;
        uv_check_t check;
        uv_timer_init(&loop, &timer);
        uv_check_init(&loop, &check);
        check.data = t;
        uv_timer_start(&timer, probeTimeout, timeout_ms, 0);
        uv_check_start(&check, probeContactCheck);
        uv_run(&loop, UV_RUN_DEFAULT);
        result = t->contacted > 0;
        *contacted_by = t->contacted_by;
        t->contacted_by = NULL;
        uv_close((uv_handle_t *)&timer, NULL);
        uv_close((uv_handle_t *)&check, NULL);
    }
    tClose(&outer, probeClosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    transport_free(&outer);
    uv_loop_close(&loop);
    return result;
}
