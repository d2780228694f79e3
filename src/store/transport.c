/*
 * transport: libraft's TCP handshake plus metadata probes on one port.
 * This file is the raft_uv_transport itself, the plaintext port, image
 * transfers and probe mode; with -node-cert the same port speaks TLS,
 * which transport_tls.c adds (the struct both share: transport_int.h).
 *
 * Incoming connections are read exactly as far as the handshake goes (the
 * alloc callback never offers more room than the bytes still expected), so
 * that nothing libraft sends after the handshake is consumed here.
 *
 * Image requests (CLUSTER_IMAGE_MAGIC, framing in cluster/cluster.h) leave
 * the loop at once: the connection's socket is handed to a thread of its
 * own, which has the store make a consistent copy of the database (the
 * transport_image_fn given at init) and sends it with sendfile(), from the file to
 * the socket (over TLS: through the session, a chunk at a time), so that
 * memory does not depend on the database size and the Raft thread never
 * waits for a disk or a slow follower. At most TRANSPORT_MAX_IMAGE_SENDERS
 * run at once (each copy takes the database's size on disk until sent);
 * more are answered with an error, and retried.
 */
#include "store/transport_int.h"

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

typedef struct incoming {
    rqTransport *t;
    struct incoming *next, *prev;
    uv_tcp_t *tcp;                  /* raft_malloc'd: libraft frees it */
    uint64_t preamble[3];           /* protocol, id, address length */
    size_t nread;                   /* bytes of the current stage read */
    char *address;
    size_t address_len;
    int stage;                      /* 0: first word, 1: preamble rest, 2: address */
    bool hwm;                       /* a CDC high-water mark, not a handshake */
} incoming;

int transport_resolve_bind(const char *addr, struct sockaddr_storage *ss, char **err)
{
    return addr_resolve(addr, true, ss, NULL, err);
}


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
    transportMaybeFinishClose(t);
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

/* A plaintext transfer: its thread, and the socket tClose() shuts down. */
typedef struct imageSender {
    rqTransport *t;
    struct imageSender *next, *prev; /* under t->mu */
    imageOut out;                    /* out.fd: the connection, blocking */
} imageSender;

void transportThreadStarted(rqTransport *t)
{
    pthread_mutex_lock(&t->mu);
    t->n_threads++;
    pthread_mutex_unlock(&t->mu);
}

void transportThreadEnded(rqTransport *t)
{
    pthread_mutex_lock(&t->mu);
    t->n_threads--;
    pthread_cond_broadcast(&t->thread_done);
    pthread_mutex_unlock(&t->mu);
}

bool transportImageSlot(rqTransport *t)
{
    pthread_mutex_lock(&t->mu);
    bool ok = t->n_images < TRANSPORT_MAX_IMAGE_SENDERS;
    if (ok)
        t->n_images++;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void imageHeader(unsigned char h[CLUSTER_IMAGE_HEADER], const char *tag, uint64_t a, uint64_t b)
{
    memcpy(h, tag, 8);
    le64_put(h + 8, a);
    le64_put(h + 16, b);
}

void transportImageRefusal(const char *why, char **out, size_t *len)
{
    size_t n = strlen(why);
    if (n > CLUSTER_IMAGE_MAX_ERROR)
        n = CLUSTER_IMAGE_MAX_ERROR;
    *out = malloc(CLUSTER_IMAGE_HEADER + n);
    *len = 0;
    if (*out == NULL)
        return;
    imageHeader((unsigned char *)*out, CLUSTER_IMAGE_ERROR, n, 0);
    memcpy(*out + CLUSTER_IMAGE_HEADER, why, n);
    *len = CLUSTER_IMAGE_HEADER + n;
}

/* Sender threads write with blocking sends; a vanished follower fails
 * them (SO_SNDTIMEO, TCP_USER_TIMEOUT) rather than raising SIGPIPE. Over
 * TLS, the session's send gives up after as long, or at close. */
static int outSend(imageOut *o, const void *data, size_t n)
{
    if (o->tls) {
        if (tls_send_all(o->tls, data, n, 30000) == TLS_OK)
            return 0;
        snprintf(o->err, sizeof o->err, "%s", tls_conn_error(o->tls));
        return -1;
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(o->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            snprintf(o->err, sizeof o->err, "%s", strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* size bytes of file from *off to o: sendfile() from the file to the
 * socket when plaintext, else through the session a chunk at a time. */
static int outFile(imageOut *o, int file, uint64_t size, off_t *off)
{
    char *chunk = o->tls ? malloc(256 * 1024) : NULL;
    if (o->tls && chunk == NULL) {
        snprintf(o->err, sizeof o->err, "out of memory");
        return -1;
    }
    int rc = 0;
    while (rc == 0 && (uint64_t)*off < size) {
        uint64_t left = size - (uint64_t)*off;
        size_t want = left > (1u << 20) ? (1u << 20) : (size_t)left;
        ssize_t w;
        if (o->tls) {
            w = pread(file, chunk, want < 256 * 1024 ? want : 256 * 1024, *off);
            if (w > 0 && outSend(o, chunk, (size_t)w) != 0)
                rc = -1;
            else if (w > 0)
                *off += w;
        } else {
            w = sendfile(o->fd, file, off, want);
        }
        if (rc == 0 && w < 0 && errno == EINTR)
            continue;
        if (rc == 0 && w <= 0) {
            snprintf(o->err, sizeof o->err, "%s", w == 0 ? "the copy is shorter than it was" : strerror(errno));
            rc = -1;
        }
    }
    free(chunk);
    return rc;
}

/* Called by the copy: keep the requester informed, about once a second. A
 * failed write is noticed when the copy is sent. */
static void imageProgress(void *parg, long long done, long long total)
{
    imageOut *o = parg;
    int64_t now = rq_now_ms();
    if (now - o->last_progress_ms < 1000)
        return;
    o->last_progress_ms = now;
    unsigned char h[CLUSTER_IMAGE_HEADER];
    imageHeader(h, CLUSTER_IMAGE_COPYING, (uint64_t)done, (uint64_t)total);
    (void)outSend(o, h, sizeof h);
}

void transportImageServe(rqTransport *t, imageOut *o)
{
    int64_t t0 = rq_now_ms();
    o->last_progress_ms = t0;
    rq_log("store", "snapshot image requested by %s: copying the database", o->peer);
    uint64_t size = 0;
    char *err = NULL;
    unsigned char h[CLUSTER_IMAGE_HEADER];
    int file = t->image(t->image_arg, imageProgress, o, &size, &err);
    if (file < 0) {
        const char *text = err ? err : "cannot copy the database";
        rq_logl(RQ_LOG_WARN, "store", "snapshot image for %s failed: %s", o->peer, text);
        char *refusal;
        size_t n;
        transportImageRefusal(text, &refusal, &n);
        if (refusal)
            (void)outSend(o, refusal, n);
        free(refusal);
    } else {
        imageHeader(h, CLUSTER_IMAGE_OK, size, size);
        off_t off = 0;
        int rc = outSend(o, h, sizeof h);
        if (rc == 0)
            rc = outFile(o, file, size, &off);
        double secs = (double)(rq_now_ms() - t0) / 1000.0;
        if (rc == 0)
            rq_log("store", "snapshot image: sent %llu bytes to %s%s in %.2f s", (unsigned long long)size, o->peer,
                   o->tls ? " over TLS" : "", secs);
        else
            rq_logl(RQ_LOG_WARN, "store", "snapshot image: sending to %s failed after %lld of %llu bytes: %s", o->peer,
                    (long long)off, (unsigned long long)size, o->err);
        close(file);
    }
    free(err);
    pthread_mutex_lock(&t->mu);
    t->n_images--;
    pthread_mutex_unlock(&t->mu);
}

/* A plaintext sender thread: copying and sending a database takes as long
 * as it is large, so it runs off the loop, on a blocking duplicate of the
 * socket. Its socket is closed under the lock so that tClose() never
 * shuts down a descriptor number reused meanwhile. */
static void *imageThread(void *arg)
{
    imageSender *is = arg;
    rqTransport *t = is->t;
    int fd = is->out.fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    /* A follower that stops reading is given up on (TCP_USER_TIMEOUT from
     * transportTuneFd() also catches one that vanished). */
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    transportImageServe(t, &is->out);
    pthread_mutex_lock(&t->mu);
    if (is->prev)
        is->prev->next = is->next;
    else
        t->senders = is->next;
    if (is->next)
        is->next->prev = is->prev;
    close(fd);
    pthread_mutex_unlock(&t->mu);
    free(is);
    transportThreadEnded(t);
    return NULL;
}

/* An image request refused: the error header and text, then close. */
static void imageRefuse(incoming *in, const char *why)
{
    char *out;
    size_t n;
    transportImageRefusal(why, &out, &n);
    if (out == NULL) {
        incomingAbort(in);
        return;
    }
    replyAndClose(in, out, n, out);
}

void transportPeerName(int fd, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    addr_format(getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 ? (struct sockaddr *)&ss : NULL, out, n);
}

/* Loop thread: hand a plaintext image request's socket to a sender thread. */
static void imageStart(incoming *in)
{
    rqTransport *t = in->t;
    if (t->image == NULL) {
        imageRefuse(in, "this node is starting: it has no database to send yet");
        return;
    }
    if (!transportImageSlot(t)) {
        imageRefuse(in, "too many database transfers in progress: try again later");
        return;
    }
    uv_os_fd_t ufd;
    imageSender *is = calloc(1, sizeof *is);
    if (is == NULL || uv_fileno((uv_handle_t *)in->tcp, &ufd) != 0 ||
        (is->out.fd = fcntl(ufd, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(is);
        pthread_mutex_lock(&t->mu);
        t->n_images--;
        pthread_mutex_unlock(&t->mu);
        incomingAbort(in);
        return;
    }
    is->t = t;
    transportPeerName(is->out.fd, is->out.peer, sizeof is->out.peer);
    pthread_mutex_lock(&t->mu);
    is->next = t->senders;
    if (t->senders)
        t->senders->prev = is;
    t->senders = is;
    t->n_threads++;
    pthread_mutex_unlock(&t->mu);
    int rc = rq_thread_detached(imageThread, is);
    if (rc != 0) {
        pthread_mutex_lock(&t->mu);
        t->senders = is->next;
        if (is->next)
            is->next->prev = NULL;
        close(is->out.fd);
        t->n_images--;
        pthread_mutex_unlock(&t->mu);
        free(is);
        transportThreadEnded(t);
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
            transportCountConn(t, true);
            cluster_stat(CLUSTER_STAT_GET_NODE_API_REQ);
            uv_read_stop(s);
            replyAndClose(in, t->meta, strlen(t->meta), NULL);
            cluster_stat(CLUSTER_STAT_GET_NODE_API_RESP);
            return;
        }
        if (memcmp(in->preamble, CLUSTER_IMAGE_MAGIC, 8) == 0) {
            transportCountConn(t, true);
            uv_read_stop(s);
            imageStart(in);
            return;
        }
        if (memcmp(in->preamble, CLUSTER_HWM_MAGIC, 8) == 0 && t->hwm) {
            transportCountConn(t, true);
            cluster_stat(CLUSTER_STAT_BROADCAST_HWM_REQ);
            in->hwm = true; /* its 16 bytes fill the rest of the preamble */
            in->stage = 1;
            return;
        }
        bool raft = le64_get((const unsigned char *)&in->preamble[0]) == TRANSPORT_HANDSHAKE_PROTOCOL;
        transportCountConn(t, raft);
        if (!raft) {
            unsigned char *p = (unsigned char *)in->preamble;
            if (p[0] == 0x16 && p[1] == 0x03) { /* a TLS handshake record */
                uv_os_fd_t fd;
                char peer[300] = "?";
                if (uv_fileno((uv_handle_t *)in->tcp, &fd) == 0)
                    transportPeerName(fd, peer, sizeof peer);
                transportLogRefused(t, peer, "it speaks TLS, and this node's Raft port is plaintext "
                                             "(no -node-cert/-node-key)");
            }
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
        if (in->hwm) {
            uv_read_stop(s);
            t->hwm(t->hwm_arg, le64_get((const unsigned char *)&in->preamble[1]));
            replyAndClose(in, CLUSTER_HWM_OK, 8, NULL);
            return;
        }
        in->address_len = (size_t)le64_get((const unsigned char *)&in->preamble[2]);
        if (in->address_len == 0 || in->address_len > TRANSPORT_MAX_ADDRESS_LEN) {
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
void transportTuneFd(int fd)
{
    int one = 1, idle = 5, intvl = 2, cnt = 3;
    unsigned timeout_ms = 15000;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof timeout_ms);
}

/* transportTuneFd on a libuv handle (which libuv is told about too). */
static void tuneSocket(uv_tcp_t *tcp)
{
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, 5);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0)
        transportTuneFd(fd);
}

void transportLogRefused(rqTransport *t, const char *peer, const char *why)
{
    cluster_stat(CLUSTER_STAT_CONN_REJECTED);
    char key[sizeof t->refused[0].key];
    const char *colon = strrchr(peer, ':');
    int host_len = colon ? (int)(colon - peer) : (int)strlen(peer);
    snprintf(key, sizeof key, "%.*s %s", host_len, peer, why);
    int64_t now = rq_now_ms();
    int unlogged = 0;
    bool emit = true;
    pthread_mutex_lock(&t->mu);
    struct refusedLog *slot = &t->refused[0];
    for (size_t i = 0; i < sizeof t->refused / sizeof t->refused[0]; i++) {
        struct refusedLog *r = &t->refused[i];
        if (strcmp(r->key, key) == 0) {
            slot = r;
            break;
        }
        if (r->logged_ms < slot->logged_ms)
            slot = r; /* the oldest, unless the key is there */
    }
    if (strcmp(slot->key, key) == 0 && now - slot->logged_ms < 10000) {
        slot->unlogged++;
        emit = false;
    } else {
        unlogged = strcmp(slot->key, key) == 0 ? slot->unlogged : 0;
        snprintf(slot->key, sizeof slot->key, "%s", key);
        slot->logged_ms = now;
        slot->unlogged = 0;
    }
    pthread_mutex_unlock(&t->mu);
    if (emit && unlogged > 0)
        rq_logl(RQ_LOG_WARN, "raft",
                "refused a connection from %s on the Raft port: %s (and %d more like it since the last "
                "such line)",
                peer, why, unlogged);
    else if (emit)
        rq_logl(RQ_LOG_WARN, "raft", "refused a connection from %s on the Raft port: %s", peer, why);
}

/* Every incoming connection starts in our hands, so that probes and image
 * requests can be told from libraft's. */
static void onConnection(uv_stream_t *server, int status)
{
    rqTransport *t = server->data;
    if (status != 0 || t->closing)
        return;
    if (t->tls) {
        tlsTransportAccept(t, server);
        return;
    }
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

/* Outgoing connections are the inner raft_uv_tcp transport's (over TLS,
 * ours: their handshake carries id and address). */
void transport_mux_counts(struct raft_uv_transport *outer, uint64_t *handled, uint64_t *unregistered,
                          uint64_t *tls_certs)
{
    rqTransport *t = outer->impl;
    *handled = t ? __atomic_load_n(&t->n_handled, __ATOMIC_RELAXED) : 0;
    *unregistered = t ? __atomic_load_n(&t->n_unregistered, __ATOMIC_RELAXED) : 0;
    *tls_certs = t ? __atomic_load_n(&t->n_tls_certs, __ATOMIC_RELAXED) : 0;
}

static int tInit(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    rqTransport *t = outer->impl;
    t->self_id = id;
    free(t->self_address);
    t->self_address = strdup(address);
    if (t->self_address == NULL)
        return RAFT_NOMEM;
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
        rq_logl(RQ_LOG_WARN, "raft", "%s", err ? err : "listen failed");
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
    if (t->closing)
        return RAFT_CANCELED;
    if (t->tls)
        return tlsTransportConnect(t, req, address, cb);
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
void transportMaybeFinishClose(rqTransport *t)
{
    if (!t->closing || t->listening || t->n_incoming > 0 || t->close_cb == NULL)
        return;
    if (t->tls && !tlsTransportClosed(t))
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
    transportMaybeFinishClose(t);
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
    pthread_mutex_lock(&t->mu);
    for (imageSender *is = t->senders; is != NULL; is = is->next)
        shutdown(is->out.fd, SHUT_RDWR);
    pthread_mutex_unlock(&t->mu);
    if (t->tls)
        tlsTransportClose(t);
    for (incoming *in = t->incomings; in != NULL; in = in->next)
        if (!uv_is_closing((uv_handle_t *)in->tcp))
            uv_close((uv_handle_t *)in->tcp, incomingFree);
    if (t->listening)
        uv_close((uv_handle_t *)&t->listener, listenerClosed);
    else
        transportMaybeFinishClose(t);
}

int transport_init(struct raft_uv_transport *outer, uv_loop_t *loop, const char *bind_addr,
                   const char *meta_json, transport_image_fn image, void *image_arg, tls_ctx *tls)
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
    t->cancel_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->thread_done, NULL);
    t->bind_addr = strdup(bind_addr);
    if (asprintf(&t->meta, "%s\n", meta_json) < 0)
        t->meta = NULL;
    t->tls = tls;
    if (tls && tlsTransportInit(t) != 0) {
        raft_uv_tcp_close(&t->inner);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->thread_done);
        free(t->bind_addr);
        free(t->meta);
        free(t);
        return RAFT_IOERR;
    }
    memset(outer, 0, sizeof *outer);
    outer->impl = t;
    outer->init = tInit;
    outer->listen = tListen;
    outer->connect = tConnect;
    outer->close = tClose;
    return 0;
}

void transport_set_hwm(struct raft_uv_transport *outer, transport_hwm_fn fn, void *arg)
{
    rqTransport *t = outer->impl;
    t->hwm = fn;
    t->hwm_arg = arg;
}

void transport_free(struct raft_uv_transport *outer)
{
    rqTransport *t = outer->impl;
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->n_images > 0)
        rq_log("store", "waiting for %d snapshot image transfer(s) to end", t->n_images);
    while (t->n_threads > 0)
        pthread_cond_wait(&t->thread_done, &t->mu);
    pthread_mutex_unlock(&t->mu);
    if (t->tls)
        tlsTransportFree(t);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->thread_done);
    raft_uv_tcp_close(&t->inner);
    free(t->bind_addr);
    free(t->meta);
    free(t->self_address);
    free(t->contacted_by);
    free(t);
    outer->impl = NULL;
}

/* Probe mode */

#define PROBE_TLS_GRACE_MS 5000

/* Probe mode: the window is over, nobody reached us; unless a TLS
 * connection is still mid-handshake (a thread each, on a busy machine
 * that takes time), which may be the leader: bootstrapping beside a
 * cluster that lists us is what the window is there to prevent. */
static void probeTimeout(uv_timer_t *timer)
{
    rqTransport *t = timer->data;
    if (t->tls && rq_now_ms() < t->probe_grace_until && tlsTransportBusy(t)) {
        uv_timer_start(timer, probeTimeout, 50, 0);
        return;
    }
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

int transport_probe(const char *bind_addr, const char *meta_json, tls_ctx *tls, unsigned timeout_ms,
                    char **contacted_by, char **err)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct raft_uv_transport outer;
    if (transport_init(&outer, &loop, bind_addr, meta_json, NULL, NULL, tls) != 0) {
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
        timer.data = t;
        t->probe_grace_until = rq_now_ms() + timeout_ms + PROBE_TLS_GRACE_MS;
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

/* Responder: probe mode on a thread of its own, until stopped. */

struct transport_responder {
    pthread_t thread;
    char *bind_addr, *meta;
    tls_ctx *tls;
    uv_async_t stop;           /* valid once state is 1 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;                 /* under mu: 0 starting, 1 listening, -1 failed (err set) */
    char *err;
};

static void responderStop(uv_async_t *a)
{
    uv_close((uv_handle_t *)a, NULL);
    uv_stop(a->loop);
}

static void responderSet(transport_responder *r, int state)
{
    pthread_mutex_lock(&r->mu);
    r->state = state;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* The responder's thread: its own loop, as transport_probe's, that runs
 * until the stop handle fires. */
static void *responderThread(void *arg)
{
    transport_responder *r = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct raft_uv_transport outer;
    if (transport_init(&outer, &loop, r->bind_addr, r->meta, NULL, NULL, r->tls) != 0) {
        uv_loop_close(&loop);
        r->err = strdup("cannot create transport");
        responderSet(r, -1);
        return NULL;
    }
    rqTransport *t = outer.impl;
    if (startListening(t, &r->err) == 0) {
        uv_async_init(&loop, &r->stop, responderStop);
        responderSet(r, 1);
        uv_run(&loop, UV_RUN_DEFAULT);
    } else {
        responderSet(r, -1);
    }
    tClose(&outer, probeClosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    transport_free(&outer);
    uv_loop_close(&loop);
    return NULL;
}

static void responderFree(transport_responder *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->err);
    free(r->bind_addr);
    free(r->meta);
    free(r);
}

int transport_responder_start(const char *bind_addr, const char *meta_json, tls_ctx *tls,
                              transport_responder **out, char **err)
{
    transport_responder *r = calloc(1, sizeof *r);
    if (r == NULL || (r->bind_addr = strdup(bind_addr)) == NULL || (r->meta = strdup(meta_json)) == NULL) {
        if (r)
            free(r->bind_addr);
        free(r);
        *err = strdup("out of memory");
        return -1;
    }
    r->tls = tls;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int state = -1;
    if (pthread_create(&r->thread, NULL, responderThread, r) == 0) {
        pthread_mutex_lock(&r->mu);
        while (r->state == 0)
            pthread_cond_wait(&r->cv, &r->mu);
        state = r->state;
        pthread_mutex_unlock(&r->mu);
        if (state < 0)
            pthread_join(r->thread, NULL);
    } else {
        r->err = strdup("cannot start a thread");
    }
    if (state < 0) {
        *err = r->err ? r->err : strdup("cannot listen");
        r->err = NULL;
        responderFree(r);
        return -1;
    }
    *out = r;
    return 0;
}

void transport_responder_stop(transport_responder *r)
{
    if (r == NULL)
        return;
    uv_async_send(&r->stop);
    pthread_join(r->thread, NULL);
    responderFree(r);
}
