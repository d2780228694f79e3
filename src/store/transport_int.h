/*
 * transport_int.h: what transport.c (the raft_uv_transport, the plaintext
 * port, image transfers, probe mode) and transport_tls.c (the same port
 * over TLS) share. Private to those two files.
 *
 * Threads. The loop's thread owns the libuv handles and the fields marked
 * "loop". Threads of the transport's own (image senders; with TLS, one per
 * connection until its handshake is done, or its probe or image served)
 * share the fields marked "mu" with it. transport_free waits until
 * n_threads is back to zero.
 */
#ifndef RQ_STORE_TRANSPORT_INT_H
#define RQ_STORE_TRANSPORT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/transport.h"
#include "tls/tls.h"

#define TRANSPORT_HANDSHAKE_PROTOCOL 1
#define TRANSPORT_MAX_ADDRESS_LEN 4096
#define TRANSPORT_MAX_IMAGE_SENDERS 4

typedef struct rqTransport {
    struct raft_uv_transport inner; /* raft_uv_tcp: outgoing plaintext connections */
    struct raft_uv_transport *outer;
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;                 /* loop */
    char *bind_addr;
    char *meta;                     /* probe answer, with trailing '\n' */
    raft_id self_id;                /* given by libraft to init: what our handshakes say */
    char *self_address;
    raft_uv_accept_cb accept_cb;    /* NULL in probe mode */
    int contacted;                  /* loop; probe mode: raft handshakes seen */
    char *contacted_by;             /* loop; probe mode: the first caller's address */
    int n_incoming;                 /* loop: plaintext connections mid-handshake */
    struct incoming *incomings;     /* loop: list of them, to abort on close */
    bool closing;                   /* loop */
    bool inner_inited;              /* libraft called init (not in probe mode) */
    raft_uv_transport_close_cb close_cb;
    transport_image_fn image;       /* NULL: image requests get an error */
    void *image_arg;
    transport_hwm_fn hwm;           /* NULL: CDC high-water marks are refused */
    void *hwm_arg;

    pthread_mutex_t mu;
    pthread_cond_t thread_done;     /* a thread ended (n_threads went down) */
    int n_threads;                  /* mu: threads of ours still running */
    struct imageSender *senders;    /* mu: plaintext transfers, shut down at close */
    int n_images;                   /* mu: transfers in progress, both kinds */
    struct refusedLog {             /* mu: recent refusals, by peer host and reason */
        char key[400];
        int64_t logged_ms;
        int unlogged;
    } refused[16];

    /* TLS (transport_tls.c); tls NULL: the port is plaintext. */
    tls_ctx *tls;
    int cancel_fd;                  /* eventfd written at close: every TLS wait ends */
    uv_async_t async;               /* threads hand their results to the loop */
    bool async_open;                /* loop: the handle is not closed yet */
    bool async_closed;              /* mu: threads queue results without waking the loop */
    struct tlsDone *done;           /* mu: results for the loop, oldest first */
    struct tlsDone **done_tail;     /* mu */
    struct tlsDial *dials;          /* loop: outgoing connections being made */
    struct dialLog *dial_logs;      /* loop: failures logged per address */
    int n_handshaking;              /* mu: incoming TLS handshakes in progress */
    int n_tcp_closing;              /* loop: accepted handles whose socket moved to a thread */
    struct loopRelay *relays;       /* loop: established TLS connections, relayed by the loop */
    int64_t probe_grace_until;      /* probe mode: the most the window waits for handshakes */
    /* rqlite's "mux" counters (transport_mux_counts), relaxed atomics:
     * connections whose first bytes named a known kind, and the others. */
    uint64_t n_handled, n_unregistered, n_tls_certs;
} rqTransport;

static inline void transportCountConn(rqTransport *t, bool known)
{
    __atomic_fetch_add(known ? &t->n_handled : &t->n_unregistered, 1, __ATOMIC_RELAXED);
}

/* Where an image goes: a plaintext socket (blocking) or a TLS session. */
typedef struct imageOut {
    int fd;
    tls_conn *tls;
    char peer[300];                 /* ip:port, for the log */
    char err[256];                  /* why the last send failed */
    int64_t last_progress_ms;
} imageOut;

/* Serve an image request on the calling thread: copy the database and
 * send it to out (headers as cluster/cluster.h says). The caller holds an
 * image slot (transportImageSlot). */
void transportImageServe(rqTransport *t, imageOut *out);
/* Take one of the TRANSPORT_MAX_IMAGE_SENDERS slots (false: all busy);
 * released by transportImageServe. */
bool transportImageSlot(rqTransport *t);
/* The refusal answered to an image request that cannot be served. */
void transportImageRefusal(const char *why, char **out, size_t *len);

/* A refused incoming connection, in the log: each reason from each host
 * at most every 10 s (libraft retries every 250 ms). */
void transportLogRefused(rqTransport *t, const char *peer, const char *why);
/* "ip:port" of a socket's peer. */
void transportPeerName(int fd, char *out, size_t n);
/* Keepalive and a user timeout on a TCP socket (see transport.c). */
void transportTuneFd(int fd);
/* A thread of ours starts (n_threads++) or ends (n_threads--, wakes
 * transport_free). */
void transportThreadStarted(rqTransport *t);
void transportThreadEnded(rqTransport *t);

/* The loop: finish closing once nothing is left open (see transport.c). */
void transportMaybeFinishClose(rqTransport *t);

/* The TLS side, called from transport.c. */
int tlsTransportInit(rqTransport *t);
void tlsTransportAccept(rqTransport *t, uv_stream_t *server);
int tlsTransportConnect(rqTransport *t, struct raft_uv_connect *req, const char *address,
                        raft_uv_connect_cb cb);
void tlsTransportClose(rqTransport *t);
bool tlsTransportClosed(const rqTransport *t);
/* Whether a connection is mid-handshake or a result is not handed over yet. */
bool tlsTransportBusy(rqTransport *t);
void tlsTransportFree(rqTransport *t);

#endif
