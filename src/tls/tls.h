/*
 * tls: node-to-node TLS over GnuTLS (TLS 1.2 and 1.3 only), for the Raft
 * port: a context built once from the -node-* flags, sessions on
 * connected sockets, blocking reads and writes with deadlines (for
 * threads), non-blocking ones (for the Raft thread's loop, which relays
 * libraft's streams: see tls.c for how and why).
 *
 * Every call that waits takes a deadline and a cancel descriptor: it
 * returns as soon as the descriptor becomes readable (an eventfd written
 * once when the owner shuts down; -1 for none), so that no thread of ours
 * waits longer than asked on a peer that stopped answering.
 *
 * Threads: a tls_ctx is shared by any number of threads; a tls_conn
 * belongs to one thread at a time.
 */
#ifndef RQ_TLS_TLS_H
#define RQ_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The -node-* flags. Strings are copied by tls_ctx_new. */
typedef struct tls_settings {
    const char *cert_file;     /* -node-cert: presented as server, and as client */
    const char *key_file;      /* -node-key */
    const char *ca_file;       /* -node-ca-cert; NULL: the system's trusted roots */
    bool verify_client;        /* -node-verify-client: clients must present a cert the CA signed */
    const char *verify_cn;     /* -node-verify-common-name: ...whose Common Name is this */
    const char *server_name;   /* -node-verify-server-name: expected in servers' certs */
    bool no_verify;            /* -node-no-verify: do not verify servers' certs */
} tls_settings;

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

/* What went wrong, for callers that act on it (a join gives up on a node
 * whose certificate it cannot verify, but tries a port that does not speak
 * TLS as an HTTP address). */
enum {
    TLS_OK = 0,
    TLS_ERR_VERIFY = -1,   /* a certificate was refused (ours or theirs) */
    TLS_ERR_PROTOCOL = -2, /* the peer does not speak TLS, or broke it */
    TLS_ERR_IO = -3,       /* the connection failed or was closed */
    TLS_ERR_TIMEOUT = -4,  /* the deadline passed */
    TLS_ERR_CANCELED = -5, /* the cancel descriptor became readable */
    TLS_AGAIN = -6,        /* non-blocking: nothing to do until the socket is ready */
};

/* Load the certificate, key and CA files (all PEM). Returns 0, or -1 with
 * *err set (malloc'd) naming the file and GnuTLS's reason: a file that
 * cannot be read or parsed, a key that is not the certificate's, a CA
 * file without certificates. The certificate and key are read again, for
 * new connections, whenever either file's modification time changes (a
 * reload that fails keeps the previous pair and says so in the log). */
int tls_ctx_new(const tls_settings *s, tls_ctx **out, char **err);
/* Once no tls_conn of it is left. */
void tls_ctx_free(tls_ctx *c);
/* One line for the log: which files, which checks. Malloc'd. */
char *tls_ctx_describe(const tls_ctx *c);

/* Handshake as client on connected socket fd, verifying the server's
 * certificate against the CA (unless no_verify) for server_name if set,
 * else for host (the host part of the address dialled: a name or an IP
 * address). As server: verify the client's certificate if verify_client
 * (and its Common Name if verify_cn). The socket stays the caller's (it
 * is made non-blocking); tls_conn_free does not close it. Returns TLS_OK
 * with *out, or a TLS_ERR_* with *err set. timeout_ms bounds the whole
 * handshake; cancel_fd is as above. */
int tls_client(tls_ctx *c, int fd, const char *host, int timeout_ms, int cancel_fd, tls_conn **out,
               char **err);
int tls_server(tls_ctx *c, int fd, int timeout_ms, int cancel_fd, tls_conn **out, char **err);
/* While a node joins through the HTTP API, the leader reaches its Raft port
 * (to check it before adding it) without crossing the leader's own port:
 * the joiner verifies the leader's certificate as a client would a server
 * (against the CA, and -node-verify-server-name if set; not with
 * -node-no-verify), so that a node that cannot verify the leader is not
 * added. tls_server requires and checks the caller's certificate so
 * while joining is set. */
void tls_ctx_set_joining(tls_ctx *c, bool joining);

/* Up to n bytes, waiting at most timeout_ms (-1: no limit): > 0 bytes
 * read, 0 at the peer's orderly end, or a TLS_ERR_* (TLS_ERR_TIMEOUT
 * when nothing came in time). */
ssize_t tls_recv(tls_conn *t, void *buf, size_t n, int timeout_ms);
/* All n bytes, within timeout_ms (-1: no limit). TLS_OK or a TLS_ERR_*. */
int tls_send_all(tls_conn *t, const void *buf, size_t n, int timeout_ms);
/* Non-blocking, for an event loop that polls the socket itself. Reading:
 * > 0 bytes, 0 at the peer's orderly end, TLS_AGAIN when the socket has
 * no more (everything GnuTLS had buffered was returned first: poll for
 * readable before calling again), or a TLS_ERR_*. Writing: > 0 bytes of
 * buf taken, or TLS_AGAIN (poll for writable, then call again with the
 * same buf and n, as GnuTLS requires), or a TLS_ERR_*. */
ssize_t tls_recv_nb(tls_conn *t, void *buf, size_t n);
ssize_t tls_send_nb(tls_conn *t, const void *buf, size_t n);
/* Tell the peer we are done: a close_notify alert, for which a blocking
 * session waits at most a second for room, a non-blocking one not at all. */
void tls_bye(tls_conn *t);
/* Text of the last error on t (valid until the next call on t). */
const char *tls_conn_error(const tls_conn *t);
/* The peer certificate's Common Name, "" if none. */
const char *tls_peer_cn(const tls_conn *t);
/* Release the session (not the socket). NULL is fine. */
void tls_conn_free(tls_conn *t);

#endif
