/*
 * tls/: handshakes and verification (CA, names, IP addresses, client
 * certificates, Common Name, -node-no-verify), reading and writing with
 * deadlines and cancellation, non-blocking use as the loop's relay makes
 * of it, and certificate reload. Certificates are made with the openssl
 * command in a temporary directory; every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tls/tls.h"

static char dir[64];

static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static const char *path(const char *name)
{
    static char buf[8][256];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* A CA, or a certificate for name signed by ca with the given SAN. */
static void makeCA(const char *name)
{
    sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
       "-out %s.crt -days 2 -subj /CN=%s 2>/dev/null",
       dir, name, name, name);
}

static void makeCert(const char *name, const char *ca, const char *san)
{
    sh("cd %s && printf 'subjectAltName=%s\\n' > %s.ext && "
       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr "
       "-subj /CN=%s 2>/dev/null && "
       "openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -out %s.crt -days 2 "
       "-extfile %s.ext 2>/dev/null",
       dir, san, name, name, name, name, name, ca, ca, name, name);
}

static int setupAll(void **st)
{
    (void)st;
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/test_tls_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    makeCA("ca");
    makeCA("rogueca");
    makeCert("node", "ca", "IP:127.0.0.1,DNS:localhost");
    makeCert("other", "ca", "IP:127.0.0.1");
    makeCert("named", "ca", "DNS:db.internal");
    makeCert("rogue", "rogueca", "IP:127.0.0.1");
    return 0;
}

static int teardownAll(void **st)
{
    (void)st;
    sh("rm -rf %s", dir);
    return 0;
}

static tls_ctx *ctxOf(const char *cert, const char *ca, bool verify_client, const char *cn, const char *server_name,
                      bool no_verify)
{
    char c[128], k[128], a[128];
    snprintf(c, sizeof c, "%s.crt", cert);
    snprintf(k, sizeof k, "%s.key", cert);
    snprintf(a, sizeof a, "%s.crt", ca ? ca : "");
    tls_settings s = {.cert_file = path(c), .key_file = path(k), .ca_file = ca ? path(a) : NULL,
                      .verify_client = verify_client, .verify_cn = cn, .server_name = server_name,
                      .no_verify = no_verify};
    tls_ctx *ctx = NULL;
    char *err = NULL;
    if (tls_ctx_new(&s, &ctx, &err) != 0)
        fail_msg("tls_ctx_new: %s", err);
    return ctx;
}

/* ---- a handshake between two contexts over a socketpair of TCP sockets - */

static void tcpPair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &n), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    fds[1] = accept(l, NULL, NULL);
    assert_true(fds[1] >= 0);
    close(l);
}

typedef struct serverSide {
    tls_ctx *ctx;
    int fd;
    int cancel;
    int timeout_ms;
    int rc;
    tls_conn *conn;
    char *err;
    bool read_first;      /* then read 1 byte (TLS 1.3 clients learn of refusals here) */
    ssize_t first;
} serverSide;

static void *serverRun(void *arg)
{
    serverSide *s = arg;
    s->rc = tls_server(s->ctx, s->fd, s->timeout_ms ? s->timeout_ms : 5000, s->cancel, &s->conn, &s->err);
    if (s->rc == TLS_OK && s->read_first) {
        char b;
        s->first = tls_recv(s->conn, &b, 1, 5000);
    }
    return NULL;
}

typedef struct pairResult {
    int client_rc, server_rc;
    char *client_err, *server_err;
    ssize_t client_read; /* the client's first read after it sent a byte */
    tls_conn *client, *server;
    int fds[2];
} pairResult;

/* Client ctx dials server ctx; the client sends a byte, the server reads
 * it, the client then reads (a refusal shows there in TLS 1.3). */
static void handshakePair(tls_ctx *client, tls_ctx *server, const char *host, pairResult *r)
{
    memset(r, 0, sizeof *r);
    tcpPair(r->fds);
    serverSide s = {.ctx = server, .fd = r->fds[1], .cancel = -1, .read_first = true};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serverRun, &s), 0);
    r->client_rc = tls_client(client, r->fds[0], host, 5000, -1, &r->client, &r->client_err);
    if (r->client_rc == TLS_OK) {
        assert_int_equal(tls_send_all(r->client, "x", 1, 5000), TLS_OK);
        char b;
        r->client_read = tls_recv(r->client, &b, 1, 3000);
    }
    pthread_join(th, NULL);
    r->server_rc = s.rc;
    r->server_err = s.err;
    r->server = s.conn;
}

static void pairFree(pairResult *r)
{
    tls_conn_free(r->client);
    tls_conn_free(r->server);
    free(r->client_err);
    free(r->server_err);
    close(r->fds[0]);
    close(r->fds[1]);
}

static void test_ctx_errors(void **st)
{
    (void)st;
    tls_ctx *c = NULL;
    char *err = NULL;
    tls_settings s = {.cert_file = path("node.crt"), .key_file = path("other.key")};
    assert_int_equal(tls_ctx_new(&s, &c, &err), -1);
    assert_non_null(strstr(err, "cannot load certificate"));
    free(err);
    err = NULL;
    s = (tls_settings){.cert_file = path("node.crt"), .key_file = path("node.key"), .ca_file = path("node.key")};
    assert_int_equal(tls_ctx_new(&s, &c, &err), -1);
    assert_non_null(strstr(err, "cannot load CA certificate"));
    free(err);
    err = NULL;
    s = (tls_settings){.cert_file = path("node.key"), .key_file = path("node.key")};
    assert_int_equal(tls_ctx_new(&s, &c, &err), -1);
    free(err);
    err = NULL;
    s = (tls_settings){.cert_file = path("node.crt")};
    assert_int_equal(tls_ctx_new(&s, &c, &err), -1);
    free(err);
    c = ctxOf("node", "ca", true, "node", NULL, false);
    char *d = tls_ctx_describe(c);
    assert_non_null(strstr(d, "mutual TLS enabled"));
    assert_non_null(strstr(d, "required peer common name \"node\""));
    free(d);
    tls_ctx_free(c);
}

static void test_verify_server(void **st)
{
    (void)st;
    tls_ctx *server = ctxOf("node", "ca", false, NULL, NULL, false);
    tls_ctx *client = ctxOf("other", "ca", false, NULL, NULL, false);
    pairResult r;
    /* The IP address dialled is in the certificate; so is "localhost". */
    handshakePair(client, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_int_equal(r.server_rc, TLS_OK);
    assert_string_equal(tls_peer_cn(r.client), "node");
    pairFree(&r);
    handshakePair(client, server, "localhost", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    pairFree(&r);
    /* A name not in it. */
    handshakePair(client, server, "10.1.2.3", &r);
    assert_int_equal(r.client_rc, TLS_ERR_VERIFY);
    assert_non_null(strstr(r.client_err, "certificate verification failed (expected name 10.1.2.3)"));
    pairFree(&r);
    /* An unknown issuer. */
    tls_ctx *rogue = ctxOf("rogue", "rogueca", false, NULL, NULL, false);
    handshakePair(client, rogue, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_ERR_VERIFY);
    assert_non_null(strstr(r.client_err, "issuer is unknown"));
    pairFree(&r);
    /* -node-no-verify: anything goes. */
    tls_ctx *trusting = ctxOf("other", NULL, false, NULL, NULL, true);
    handshakePair(trusting, rogue, "10.1.2.3", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_int_equal(r.server_rc, TLS_OK);
    pairFree(&r);
    /* -node-verify-server-name: that name instead of the one dialled. */
    tls_ctx *named = ctxOf("named", "ca", false, NULL, NULL, false);
    handshakePair(client, named, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_ERR_VERIFY);
    pairFree(&r);
    tls_ctx *byname = ctxOf("other", "ca", false, NULL, "db.internal", false);
    handshakePair(byname, named, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    pairFree(&r);
    handshakePair(byname, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_ERR_VERIFY);
    assert_non_null(strstr(r.client_err, "expected name db.internal"));
    pairFree(&r);
    tls_ctx_free(server);
    tls_ctx_free(client);
    tls_ctx_free(rogue);
    tls_ctx_free(trusting);
    tls_ctx_free(named);
    tls_ctx_free(byname);
}

static void test_verify_client(void **st)
{
    (void)st;
    tls_ctx *server = ctxOf("node", "ca", true, NULL, NULL, false);
    tls_ctx *client = ctxOf("other", "ca", false, NULL, NULL, false);
    pairResult r;
    handshakePair(client, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_int_equal(r.server_rc, TLS_OK);
    assert_string_equal(tls_peer_cn(r.server), "other");
    pairFree(&r);
    /* A client certificate from another CA: the server refuses, and the
     * client learns it (at the handshake, or at its first read). */
    tls_ctx *rogue = ctxOf("rogue", "ca", false, NULL, NULL, false);
    handshakePair(rogue, server, "127.0.0.1", &r);
    assert_int_equal(r.server_rc, TLS_ERR_VERIFY);
    if (!(r.client_rc == TLS_ERR_VERIFY || r.client_read == TLS_ERR_VERIFY))
        fail_msg("client rc %d read %zd: %s / %s; server: %s", r.client_rc, r.client_read, r.client_err ? r.client_err : "", r.client ? tls_conn_error(r.client) : "", r.server_err);
    pairFree(&r);
    /* The Common Name required. */
    tls_ctx *cn = ctxOf("node", "ca", true, "node", NULL, false);
    handshakePair(client, cn, "127.0.0.1", &r);
    assert_int_equal(r.server_rc, TLS_ERR_VERIFY);
    assert_non_null(strstr(r.server_err, "Common Name is \"other\", not the required \"node\""));
    pairFree(&r);
    tls_ctx *same = ctxOf("node", "ca", false, NULL, NULL, false);
    handshakePair(same, cn, "127.0.0.1", &r);
    assert_int_equal(r.server_rc, TLS_OK);
    pairFree(&r);
    tls_ctx_free(server);
    tls_ctx_free(client);
    tls_ctx_free(rogue);
    tls_ctx_free(cn);
    tls_ctx_free(same);
}

/* Plaintext against a TLS server, TLS against a server that says nothing:
 * answers within the deadline, never a hang; the cancel descriptor ends a
 * wait at once. */
static void test_no_hangs(void **st)
{
    (void)st;
    tls_ctx *ctx = ctxOf("node", "ca", true, NULL, NULL, false);
    int fds[2];
    tcpPair(fds);
    serverSide s = {.ctx = ctx, .fd = fds[1], .cancel = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serverRun, &s), 0);
    static const unsigned char raft[24] = {1};
    assert_int_equal(write(fds[0], raft, sizeof raft), (ssize_t)sizeof raft);
    pthread_join(th, NULL);
    assert_int_equal(s.rc, TLS_ERR_PROTOCOL);
    free(s.err);
    close(fds[0]);
    close(fds[1]);

    /* A TLS client before a silent server: the deadline. */
    tcpPair(fds);
    tls_conn *c = NULL;
    char *err = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tls_client(ctx, fds[0], "127.0.0.1", 300, -1, &c, &err), TLS_ERR_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(secs >= 0.25 && secs < 3);
    free(err);
    err = NULL;
    /* A server whose client is silent: cancelled. */
    int cancel = eventfd(0, EFD_CLOEXEC);
    s = (serverSide){.ctx = ctx, .fd = fds[1], .cancel = cancel, .timeout_ms = 60000};
    assert_int_equal(pthread_create(&th, NULL, serverRun, &s), 0);
    uint64_t one = 1;
    assert_int_equal(write(cancel, &one, sizeof one), (ssize_t)sizeof one);
    pthread_join(th, NULL);
    assert_int_equal(s.rc, TLS_ERR_CANCELED);
    free(s.err);
    close(cancel);
    close(fds[0]);
    close(fds[1]);
    /* A TLS client against a peer that closes at once. */
    tcpPair(fds);
    close(fds[1]);
    assert_int_equal(tls_client(ctx, fds[0], "127.0.0.1", 3000, -1, &c, &err), TLS_ERR_PROTOCOL);
    free(err);
    close(fds[0]);
    tls_ctx_free(ctx);
}

/* ---- non-blocking use (the loop's relay) ---------------------------------- */

typedef struct reader {
    tls_conn *t;
    size_t n;
    bool ok;
} reader;

static unsigned char byteAt(size_t i) { return (unsigned char)((i * 131) ^ (i >> 11)); }

static void *readAll(void *arg)
{
    reader *r = arg;
    unsigned char buf[50000];
    r->ok = true;
    for (size_t off = 0; off < r->n;) {
        ssize_t k = tls_recv(r->t, buf, sizeof buf, 10000);
        if (k <= 0) {
            r->ok = false;
            return NULL;
        }
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] != byteAt(off + (size_t)i))
                r->ok = false;
        off += (size_t)k;
    }
    return NULL;
}

static void waitFor(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    assert_int_equal(poll(&p, 1, 10000), 1);
}

/* TLS_AGAIN when the socket has nothing; what GnuTLS buffered comes before
 * it (no poll would announce it); a send that would block is taken up
 * again with the same data; megabytes arrive intact; the peer's close is 0. */
static void test_nonblocking(void **st)
{
    (void)st;
    tls_ctx *ctx = ctxOf("node", "ca", true, NULL, NULL, false);
    pairResult r;
    handshakePair(ctx, ctx, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_int_equal(r.server_rc, TLS_OK);
    char buf[64];
    assert_int_equal(tls_recv_nb(r.client, buf, sizeof buf), TLS_AGAIN);
    assert_int_equal(tls_send_all(r.server, "hello world", 11, 5000), TLS_OK);
    waitFor(r.fds[0], POLLIN);
    assert_int_equal(tls_recv_nb(r.client, buf, 5), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(tls_recv_nb(r.client, buf, sizeof buf), 6);
    assert_memory_equal(buf, " world", 6);
    assert_int_equal(tls_recv_nb(r.client, buf, sizeof buf), TLS_AGAIN);
    /* 32 MB one way, the reader started once the socket is full. */
    size_t n = 32 * 1024 * 1024 + 333;
    reader rd = {r.server, n, false};
    pthread_t th;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = byteAt(i);
    int again = 0;
    for (size_t off = 0; off < n;) {
        ssize_t w = tls_send_nb(r.client, big + off, n - off);
        if (w == TLS_AGAIN) {
            if (again++ == 0)
                assert_int_equal(pthread_create(&th, NULL, readAll, &rd), 0);
            waitFor(r.fds[0], POLLOUT);
            continue; /* the same data again */
        }
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_true(again > 0);
    pthread_join(th, NULL);
    assert_true(rd.ok);
    free(big);
    tls_bye(r.server);
    waitFor(r.fds[0], POLLIN);
    assert_int_equal(tls_recv_nb(r.client, buf, sizeof buf), 0);
    pairFree(&r);
    tls_ctx_free(ctx);
}

/* A certificate replaced on disk is used by the next session; a broken
 * replacement keeps the previous one. */
static void test_reload(void **st)
{
    (void)st;
    sh("cd %s && cp node.crt live.crt && cp node.key live.key", dir);
    tls_ctx *server = ctxOf("live", "ca", false, NULL, NULL, false);
    tls_ctx *client = ctxOf("other", "ca", false, NULL, NULL, false);
    pairResult r;
    handshakePair(client, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_string_equal(tls_peer_cn(r.client), "node");
    pairFree(&r);
    /* A later mtime, for filesystems with coarse timestamps. */
    sh("cd %s && cp other.crt live.crt && cp other.key live.key && touch -d '+2 seconds' live.crt", dir);
    handshakePair(client, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_string_equal(tls_peer_cn(r.client), "other");
    pairFree(&r);
    sh("cd %s && echo garbage > live.crt && touch -d '+4 seconds' live.crt", dir);
    handshakePair(client, server, "127.0.0.1", &r);
    assert_int_equal(r.client_rc, TLS_OK);
    assert_string_equal(tls_peer_cn(r.client), "other");
    pairFree(&r);
    tls_ctx_free(server);
    tls_ctx_free(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_errors),   cmocka_unit_test(test_verify_server),
        cmocka_unit_test(test_verify_client), cmocka_unit_test(test_no_hangs),
        cmocka_unit_test(test_nonblocking),  cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, setupAll, teardownAll);
}
