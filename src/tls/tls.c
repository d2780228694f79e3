/*
 * tls.c: node-to-node TLS with GnuTLS: the node's credentials (reloaded
 * when their files change), handshakes and verification, blocking reads
 * and writes with deadlines for threads, non-blocking ones for a loop.
 *
 * How libraft's streams go over TLS. libraft (0.15) reads and writes its
 * connections itself, on the uv_stream_t the transport hands it, with
 * uv_read_start and uv_write; it has no hook for a TLS layer. So the
 * transport gives it one end of a socketpair (a uv_pipe_t, a uv_stream_t
 * like any other), and something moves the bytes between the other end
 * and a GnuTLS session on the TCP socket. Two places for that something
 * were built and measured (BENCHMARKS.md, "node TLS: relay threads or the
 * Raft thread's loop"):
 *
 *   (a) a thread per connection, blocking in poll() on both descriptors;
 *   (b) the Raft thread's own loop: the other end a uv_pipe_t there too,
 *       the TCP socket a uv_poll_t, GnuTLS non-blocking (tls_recv_nb,
 *       tls_send_nb).
 *
 * On this 2-core machine, 64-client INSERTs on 3 nodes stayed within 5%
 * of plaintext with (b) in every round, and fell 13-19% below it in one
 * round of two with (a); a 1-client INSERT's p50 grew by 40-175 us either
 * way (within the machine's noise of each other). Each message through
 * (a) wakes two more threads per hop, on two cores shared with the Raft
 * and HTTP threads (bench/tlsrelay: a 100-byte round trip of 150-240 us
 * through relay threads, 45-105 us with the session driven by the caller
 * after a socketpair hop, in its quieter runs). What (b) puts on the Raft
 * thread instead is the encryption, about 0.7-1 GB/s here: microseconds
 * for a typical entry, milliseconds only for entries of megabytes. So (b)
 * (store/transport_tls.c). Handshakes run in threads, where they may wait
 * (with deadlines) without holding up the loop, and so do the image
 * transfers and probes, which need no relay: their thread reads and writes
 * the session directly (tls_recv, tls_send_all).
 *
 * Reloading: each new session takes the credentials of the moment, after
 * a stat() of the certificate and key files; if either changed they are
 * loaded again first (as rqlite's CertReloader does). Sessions hold a
 * reference to the credentials they started with, freed with the last.
 */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "util/log.h"
#include "util/os.h"

/* TLS 1.2 and 1.3 only (rqlite: MinVersion TLS 1.2). */
#define PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* A loaded certificate, key and trust list, shared by the sessions that
 * started with it. */
typedef struct creds {
    gnutls_certificate_credentials_t cred;
    int refs;                     /* under the context's mu */
} creds;

struct tls_ctx {
    char *cert_file, *key_file, *ca_file, *verify_cn, *server_name;
    bool verify_client, no_verify;
    _Atomic bool joining;         /* tls_ctx_set_joining */
    gnutls_priority_t prio;
    pthread_mutex_t mu;
    creds *cur;                   /* under mu: what new sessions get */
    struct timespec mtime;        /* under mu: newest mtime of cert and key, when cur was loaded */
    struct timespec bad_mtime;    /* under mu: a version that failed to load (logged once) */
};

struct tls_conn {
    tls_ctx *ctx;
    creds *creds;
    gnutls_session_t s;
    int fd, cancel_fd;
    bool server;
    bool nonblock;                /* a loop's: I/O returns EAGAIN instead of waiting */
    int64_t deadline_ms;          /* blocking I/O gives up then (-1: never) */
    int why;                      /* TLS_ERR_TIMEOUT/CANCELED/IO seen by push or pull */
    bool eof;                     /* pull saw the TCP connection end */
    int sys_errno;                /* push or pull failed with this */
    bool verify_failed;           /* our verification refused the peer */
    char verify_name[256];        /* the name the peer's certificate must carry ("": any) */
    char cn[256];                 /* the peer certificate's Common Name */
    char err[768];
};

/* ---- credentials --------------------------------------------------------- */

/* The newest modification time of the certificate and the key. */
static int filesMtime(const tls_ctx *c, struct timespec *out)
{
    struct stat a, b;
    if (stat(c->cert_file, &a) != 0 || stat(c->key_file, &b) != 0)
        return -1;
    *out = a.st_mtim;
    if (b.st_mtim.tv_sec > out->tv_sec || (b.st_mtim.tv_sec == out->tv_sec && b.st_mtim.tv_nsec > out->tv_nsec))
        *out = b.st_mtim;
    return 0;
}

static bool sameTime(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Read the files into new credentials (refs 1), or NULL with *err. */
static creds *loadCreds(const tls_ctx *c, char **err)
{
    creds *cr = calloc(1, sizeof *cr);
    if (cr == NULL || gnutls_certificate_allocate_credentials(&cr->cred) < 0) {
        free(cr);
        *err = strdup("out of memory");
        return NULL;
    }
    cr->refs = 1;
    int rc = gnutls_certificate_set_x509_key_file2(cr->cred, c->cert_file, c->key_file, GNUTLS_X509_FMT_PEM,
                                                   NULL, 0);
    if (rc < 0) {
        *err = rq_sprintf("cannot load certificate %s with key %s: %s", c->cert_file, c->key_file,
                          gnutls_strerror(rc));
        goto fail;
    }
    if (c->ca_file) {
        rc = gnutls_certificate_set_x509_trust_file(cr->cred, c->ca_file, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            *err = rq_sprintf("cannot load CA certificate %s: %s", c->ca_file,
                              rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
            goto fail;
        }
    } else if (!c->no_verify || c->verify_client) {
        rc = gnutls_certificate_set_x509_system_trust(cr->cred);
        if (rc < 0)
            rq_logl(RQ_LOG_WARN, "tls", "cannot load the system's trusted certificates (%s): peers will not verify",
                    gnutls_strerror(rc));
    }
    return cr;
fail:
    gnutls_certificate_free_credentials(cr->cred);
    free(cr);
    return NULL;
}

static void credsRelease(tls_ctx *c, creds *cr)
{
    if (cr == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    bool last = --cr->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) {
        gnutls_certificate_free_credentials(cr->cred);
        free(cr);
    }
}

/* The credentials for a new session, reloaded first if the files changed
 * since (a failed reload keeps the old ones, logged once per version). */
static creds *credsAcquire(tls_ctx *c)
{
    struct timespec now;
    bool changed = false;
    pthread_mutex_lock(&c->mu);
    if (filesMtime(c, &now) == 0 && !sameTime(now, c->mtime) && !sameTime(now, c->bad_mtime))
        changed = true;
    pthread_mutex_unlock(&c->mu);
    if (changed) {
        /* Loaded outside the lock: a slow disk holds up nobody's session. */
        char *err = NULL;
        creds *fresh = loadCreds(c, &err);
        creds *old = NULL;
        pthread_mutex_lock(&c->mu);
        if (fresh) {
            old = c->cur;
            c->cur = fresh;
            c->mtime = now;
        } else {
            c->bad_mtime = now;
        }
        pthread_mutex_unlock(&c->mu);
        if (fresh)
            rq_log("tls", "reloaded certificate %s and key %s", c->cert_file, c->key_file);
        else
            rq_logl(RQ_LOG_WARN, "tls", "reloading failed, keeping the previous certificate: %s", err ? err : "?");
        free(err);
        credsRelease(c, old);
    }
    pthread_mutex_lock(&c->mu);
    creds *cr = c->cur;
    cr->refs++;
    pthread_mutex_unlock(&c->mu);
    return cr;
}

static char *dupOrNull(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int tls_ctx_new(const tls_settings *s, tls_ctx **out, char **err)
{
    *out = NULL;
    if (s->cert_file == NULL || !*s->cert_file || s->key_file == NULL || !*s->key_file) {
        *err = strdup("a certificate and its key are both needed");
        return -1;
    }
    tls_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    c->cert_file = strdup(s->cert_file);
    c->key_file = strdup(s->key_file);
    c->ca_file = dupOrNull(s->ca_file);
    c->verify_cn = dupOrNull(s->verify_cn);
    c->server_name = dupOrNull(s->server_name);
    c->verify_client = s->verify_client;
    c->no_verify = s->no_verify;
    pthread_mutex_init(&c->mu, NULL);
    const char *at = NULL;
    int rc = gnutls_priority_init(&c->prio, PRIORITIES, &at);
    if (rc < 0) {
        *err = rq_sprintf("TLS priorities: %s", gnutls_strerror(rc));
        c->prio = NULL;
        tls_ctx_free(c);
        return -1;
    }
    filesMtime(c, &c->mtime);
    c->cur = loadCreds(c, err);
    if (c->cur == NULL) {
        tls_ctx_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void tls_ctx_free(tls_ctx *c)
{
    if (c == NULL)
        return;
    if (c->cur)
        credsRelease(c, c->cur);
    if (c->prio)
        gnutls_priority_deinit(c->prio);
    pthread_mutex_destroy(&c->mu);
    free(c->cert_file);
    free(c->key_file);
    free(c->ca_file);
    free(c->verify_cn);
    free(c->server_name);
    free(c);
}

char *tls_ctx_describe(const tls_ctx *c)
{
    return rq_sprintf("cert: %s, key: %s%s%s, mutual TLS %s%s%s%s, %s%s%s", c->cert_file, c->key_file,
                      c->ca_file ? ", CA cert " : ", system CAs", c->ca_file ? c->ca_file : "",
                      c->verify_client ? "enabled" : "disabled",
                      c->verify_cn ? ", required peer common name \"" : "", c->verify_cn ? c->verify_cn : "",
                      c->verify_cn ? "\"" : "",
                      c->no_verify ? "server certificates not verified" : "server certificates verified",
                      c->server_name && !c->no_verify ? " for name " : "",
                      c->server_name && !c->no_verify ? c->server_name : "");
}

/* ---- the session's transport: deadlines and cancellation --------------- */

/* Wait until fd is ready for ev: 1, or 0 when the deadline passed (why =
 * TLS_ERR_TIMEOUT) or the cancel descriptor fired (TLS_ERR_CANCELED). */
static int waitFd(tls_conn *t, short ev)
{
    for (;;) {
        int timeout = -1;
        if (t->deadline_ms >= 0) {
            int64_t left = t->deadline_ms - rq_now_ms();
            if (left <= 0) {
                t->why = TLS_ERR_TIMEOUT;
                return 0;
            }
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p[2] = {{.fd = t->fd, .events = ev}, {.fd = t->cancel_fd, .events = POLLIN}};
        int n = poll(p, t->cancel_fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            t->why = TLS_ERR_IO;
            return 0;
        }
        if (n > 0 && t->cancel_fd >= 0 && p[1].revents) {
            t->why = TLS_ERR_CANCELED;
            return 0;
        }
        if (n > 0 && p[0].revents)
            return 1; /* errors too: the next call reports them */
    }
}

/* After a send or recv that failed with errno: true to try again
 * (interrupted, or the socket became ready within the wait); false with
 * GnuTLS's errno set (EAGAIN for a wait that gave up, which leaves the
 * session usable; the callers see t->why and stop). */
static bool ioRetry(tls_conn *t, short events)
{
    if (errno == EINTR)
        return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
        t->sys_errno = errno;
        gnutls_transport_set_errno(t->s, errno);
        return false;
    }
    if (t->nonblock || !waitFd(t, events)) {
        gnutls_transport_set_errno(t->s, EAGAIN);
        return false;
    }
    return true;
}

/* GnuTLS's push: never blocks the socket itself, so a wait is bounded. */
static ssize_t connPush(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    tls_conn *t = p;
    for (;;) {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(t->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (!ioRetry(t, POLLOUT))
            return -1;
    }
}

/* GnuTLS's pull, likewise; a zero read marks the peer's end. */
static ssize_t connPull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
    tls_conn *t = p;
    for (;;) {
        ssize_t r = recv(t->fd, buf, n, MSG_DONTWAIT);
        if (r >= 0) {
            if (r == 0)
                t->eof = true;
            return r;
        }
        if (!ioRetry(t, POLLIN))
            return -1;
    }
}

/* GnuTLS asks whether data is there within ms (used only by its own
 * timers, which are off; given so it never falls back to treating the
 * transport pointer as a descriptor). */
static int connPullTimeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    tls_conn *t = p;
    struct pollfd pf = {.fd = t->fd, .events = POLLIN};
    int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : ms > INT_MAX ? INT_MAX : (int)ms;
    int n = poll(&pf, 1, timeout);
    return n < 0 ? -1 : n;
}

/* ---- verification --------------------------------------------------------- */

/* The Common Name of the peer's first certificate into t->cn. */
static void peerCN(tls_conn *t)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
    t->cn[0] = '\0';
    if (certs == NULL || n == 0)
        return;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return;
    size_t len = sizeof t->cn;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, t->cn, &len) < 0)
        t->cn[0] = '\0';
    gnutls_x509_crt_deinit(crt);
}

/* Called by GnuTLS when the peer's certificate arrives: the chain against
 * the trusted CAs, the name (a client checking a server; a joining server
 * with -node-verify-server-name), the Common Name (a server with
 * verify_cn). Non-zero ends the handshake. */
static int verifyPeer(gnutls_session_t s)
{
    tls_conn *t = gnutls_session_get_ptr(s);
    unsigned status = 0;
    bool named = t->verify_name[0] != '\0';
    peerCN(t);
    int rc = gnutls_certificate_verify_peers3(s, named ? t->verify_name : NULL, &status);
    if (rc < 0) {
        snprintf(t->err, sizeof t->err, "certificate verification failed: %s", gnutls_strerror(rc));
        t->verify_failed = true;
        return -1;
    }
    if (status != 0) {
        gnutls_datum_t text = {NULL, 0};
        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        snprintf(t->err, sizeof t->err, "certificate verification failed%s%s%s: %s",
                 named ? " (expected name " : "", t->verify_name, named ? ")" : "",
                 text.data ? (char *)text.data : "rejected");
        gnutls_free(text.data);
        size_t n = strlen(t->err);
        while (n > 0 && t->err[n - 1] == ' ')
            t->err[--n] = '\0';
        t->verify_failed = true;
        return -1;
    }
    if (t->server && t->ctx->verify_cn && strcmp(t->cn, t->ctx->verify_cn) != 0) {
        snprintf(t->err, sizeof t->err, "certificate verification failed: its Common Name is \"%s\", "
                 "not the required \"%s\"", t->cn, t->ctx->verify_cn);
        t->verify_failed = true;
        return -1;
    }
    return 0;
}

/* Alerts that mean the peer refused our certificate. */
static bool certAlert(gnutls_alert_description_t a)
{
    switch (a) {
    case GNUTLS_A_BAD_CERTIFICATE:
    case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
    case GNUTLS_A_CERTIFICATE_REVOKED:
    case GNUTLS_A_CERTIFICATE_EXPIRED:
    case GNUTLS_A_CERTIFICATE_UNKNOWN:
    case GNUTLS_A_UNKNOWN_CA:
    case GNUTLS_A_ACCESS_DENIED:
    case GNUTLS_A_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

/* A GnuTLS failure as a TLS_ERR_*, with t->err saying what happened (a
 * verification failure has said so already). */
static int fail(tls_conn *t, int rc, bool handshake)
{
    if (t->why == TLS_ERR_TIMEOUT) {
        snprintf(t->err, sizeof t->err, "timed out%s", handshake ? " during the TLS handshake" : "");
        return TLS_ERR_TIMEOUT;
    }
    if (t->why == TLS_ERR_CANCELED) {
        snprintf(t->err, sizeof t->err, "canceled");
        return TLS_ERR_CANCELED;
    }
    if (t->verify_failed)
        return TLS_ERR_VERIFY;
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED) {
        snprintf(t->err, sizeof t->err, "certificate verification failed: the peer presented no certificate "
                 "(none signed by a CA this node trusts)");
        return TLS_ERR_VERIFY;
    }
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        gnutls_alert_description_t a = gnutls_alert_get(t->s);
        const char *name = gnutls_alert_get_name(a);
        if (certAlert(a)) {
            snprintf(t->err, sizeof t->err, "the peer refused our certificate (TLS alert: %s)", name ? name : "?");
            return TLS_ERR_VERIFY;
        }
        snprintf(t->err, sizeof t->err, "the peer ended the TLS session (alert: %s)", name ? name : "?");
        return TLS_ERR_PROTOCOL;
    }
    if (t->eof || rc == GNUTLS_E_PREMATURE_TERMINATION) {
        snprintf(t->err, sizeof t->err, "%s", handshake ? "the peer closed the connection during the TLS "
                 "handshake (is its port plaintext, or does it refuse our certificate?)" : "the peer closed the connection");
        return handshake ? TLS_ERR_PROTOCOL : TLS_ERR_IO;
    }
    if (rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR) {
        snprintf(t->err, sizeof t->err, "%s", strerror(t->sys_errno ? t->sys_errno : EIO));
        return TLS_ERR_IO;
    }
    snprintf(t->err, sizeof t->err, "%s%s", handshake ? "TLS handshake failed: " : "TLS: ", gnutls_strerror(rc));
    return TLS_ERR_PROTOCOL;
}

/* ---- sessions ------------------------------------------------------------ */

static bool isIpLiteral(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

static int handshake(tls_conn *t, int timeout_ms, tls_conn **out, char **err)
{
    t->deadline_ms = rq_now_ms() + timeout_ms;
    int rc;
    do {
        rc = gnutls_handshake(t->s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc) && t->why == 0);
    if (rc < 0) {
        int code = fail(t, rc, true);
        if ((code == TLS_ERR_VERIFY || code == TLS_ERR_PROTOCOL) && rc != GNUTLS_E_FATAL_ALERT_RECEIVED) {
            /* Tell the peer why (GnuTLS leaves it to us): a refused
             * certificate is then a clear error there too. */
            t->deadline_ms = rq_now_ms() + 1000;
            t->why = 0;
            gnutls_alert_send_appropriate(t->s, rc);
        }
        *err = strdup(t->err);
        tls_conn_free(t);
        return code;
    }
    if (!t->server || t->ctx->verify_client)
        peerCN(t);
    t->deadline_ms = -1;
    *out = t;
    return TLS_OK;
}

static tls_conn *connNew(tls_ctx *c, int fd, bool server, int cancel_fd, char **err)
{
    tls_conn *t = calloc(1, sizeof *t);
    if (t == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    t->ctx = c;
    t->fd = fd;
    t->cancel_fd = cancel_fd;
    t->server = server;
    t->deadline_ms = -1;
    int rc = gnutls_init(&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS);
    if (rc < 0) {
        *err = rq_sprintf("TLS: %s", gnutls_strerror(rc));
        free(t);
        return NULL;
    }
    t->creds = credsAcquire(c);
    gnutls_priority_set(t->s, c->prio);
    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, t->creds->cred);
    gnutls_session_set_ptr(t->s, t);
    gnutls_transport_set_ptr(t->s, t);
    gnutls_transport_set_vec_push_function(t->s, connPush);
    gnutls_transport_set_pull_function(t->s, connPull);
    gnutls_transport_set_pull_timeout_function(t->s, connPullTimeout);
    gnutls_handshake_set_timeout(t->s, 0); /* our deadline applies instead */
    return t;
}

int tls_client(tls_ctx *c, int fd, const char *host, int timeout_ms, int cancel_fd, tls_conn **out, char **err)
{
    *out = NULL;
    tls_conn *t = connNew(c, fd, false, cancel_fd, err);
    if (t == NULL)
        return TLS_ERR_IO;
    snprintf(t->verify_name, sizeof t->verify_name, "%s", c->server_name ? c->server_name : host);
    if (!isIpLiteral(t->verify_name))
        gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, t->verify_name, strlen(t->verify_name));
    if (!c->no_verify)
        gnutls_session_set_verify_function(t->s, verifyPeer);
    return handshake(t, timeout_ms, out, err);
}

int tls_server(tls_ctx *c, int fd, int timeout_ms, int cancel_fd, tls_conn **out, char **err)
{
    *out = NULL;
    tls_conn *t = connNew(c, fd, true, cancel_fd, err);
    if (t == NULL)
        return TLS_ERR_IO;
    bool joining = atomic_load(&c->joining) && !c->no_verify;
    if (c->verify_client || joining) {
        if (joining && c->server_name)
            snprintf(t->verify_name, sizeof t->verify_name, "%s", c->server_name);
        gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_function(t->s, verifyPeer);
    }
    return handshake(t, timeout_ms, out, err);
}

void tls_ctx_set_joining(tls_ctx *c, bool joining)
{
    atomic_store(&c->joining, joining);
}

static void setDeadline(tls_conn *t, int timeout_ms)
{
    t->deadline_ms = timeout_ms < 0 ? -1 : rq_now_ms() + timeout_ms;
    t->why = 0;
}

ssize_t tls_recv(tls_conn *t, void *buf, size_t n, int timeout_ms)
{
    setDeadline(t, timeout_ms);
    for (;;) {
        ssize_t r = gnutls_record_recv(t->s, buf, n);
        if (r >= 0)
            return r;
        if ((r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) && t->why == 0)
            continue;
        return fail(t, (int)r, false);
    }
}

/* Whether the cancel descriptor has fired, without waiting. */
static bool canceled(tls_conn *t)
{
    struct pollfd p = {.fd = t->cancel_fd, .events = POLLIN};
    if (t->cancel_fd < 0 || poll(&p, 1, 0) <= 0)
        return false;
    t->why = TLS_ERR_CANCELED;
    snprintf(t->err, sizeof t->err, "canceled");
    return true;
}

int tls_send_all(tls_conn *t, const void *buf, size_t n, int timeout_ms)
{
    setDeadline(t, timeout_ms);
    if (canceled(t)) /* a sender with room in the socket's buffer would never wait, nor stop */
        return TLS_ERR_CANCELED;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = gnutls_record_send(t->s, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if ((w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) && t->why == 0) {
            continue; /* the same data again, as GnuTLS requires */
        } else {
            return fail(t, (int)w, false);
        }
    }
    return TLS_OK;
}

ssize_t tls_recv_nb(tls_conn *t, void *buf, size_t n)
{
    t->nonblock = true;
    t->why = 0;
    for (;;) {
        ssize_t r = gnutls_record_recv(t->s, buf, n);
        if (r >= 0)
            return r;
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r == GNUTLS_E_AGAIN)
            return TLS_AGAIN;
        if (r == GNUTLS_E_PREMATURE_TERMINATION)
            return 0; /* the peer's TCP end without close_notify: an end all the same */
        return fail(t, (int)r, false);
    }
}

ssize_t tls_send_nb(tls_conn *t, const void *buf, size_t n)
{
    t->nonblock = true;
    t->why = 0;
    for (;;) {
        ssize_t w = gnutls_record_send(t->s, buf, n);
        if (w >= 0)
            return w;
        if (w == GNUTLS_E_INTERRUPTED)
            continue;
        if (w == GNUTLS_E_AGAIN)
            return TLS_AGAIN;
        return fail(t, (int)w, false);
    }
}

void tls_bye(tls_conn *t)
{
    if (t == NULL)
        return;
    setDeadline(t, 1000);
    int rc;
    do {
        rc = gnutls_bye(t->s, GNUTLS_SHUT_WR);
    } while ((rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) && t->why == 0 && !t->nonblock);
}

const char *tls_conn_error(const tls_conn *t) { return t->err; }
const char *tls_peer_cn(const tls_conn *t) { return t->cn; }

void tls_conn_free(tls_conn *t)
{
    if (t == NULL)
        return;
    gnutls_deinit(t->s);
    credsRelease(t->ctx, t->creds);
    free(t);
}
