/*
 * tlsrelay: what carrying a stream over TLS through a socketpair costs,
 * on loopback, the two ways src/tls/tls.c weighs.
 *
 *   rqtlsrelay [round-trips] [megabytes]
 *
 * Four ways for two threads to talk over TCP, each measured by a ping-pong
 * of 100-byte messages (round-trip time) and one-way bulk (MB/s):
 *
 *   plain   the threads read and write the TCP socket;
 *   direct  they read and write a TLS session on it themselves;
 *   hop     as direct, but each message also crosses a socketpair in the
 *           same thread: what the transport does, GnuTLS driven from the
 *           Raft thread's loop (libraft reads and writes a socketpair);
 *   thread  they read and write a socketpair; a relay thread per side
 *           carries the bytes over TLS (the design measured and not kept).
 *
 * Certificates are made with the openssl command in a temporary directory.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls/tls.h"

#define MSG 100

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "tlsrelay: %s\n", what);
    exit(1);
}

/* A connected pair of TCP sockets on 127.0.0.1. */
static void tcpPair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &n) != 0)
        die("listen");
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[0], (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    fds[1] = accept(l, NULL, NULL);
    close(l);
    int one = 1;
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* How a side reads and writes, whatever the mode. */
typedef struct side {
    int fd;             /* plain: TCP; relay: the app's socketpair end */
    tls_conn *tls;      /* direct, hop */
    int hop[2];         /* hop: the socketpair crossed in the same thread */
} side;

static void sendAll(side *s, const char *p, size_t n)
{
    if (s->tls) {
        if (s->hop[0] >= 0) { /* through the socketpair first, as libraft's bytes would */
            char tmp[64 * 1024];
            for (size_t off = 0; off < n;) {
                size_t k = n - off < sizeof tmp ? n - off : sizeof tmp;
                if (write(s->hop[0], p + off, k) != (ssize_t)k || read(s->hop[1], tmp, k) != (ssize_t)k)
                    die("hop");
                if (tls_send_all(s->tls, tmp, k, -1) != 0)
                    die("tls send");
                off += k;
            }
            return;
        }
        if (tls_send_all(s->tls, p, n, -1) != 0)
            die("tls send");
        return;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s->fd, p + off, n - off);
        if (w <= 0)
            die("write");
        off += (size_t)w;
    }
}

static size_t recvSome(side *s, char *p, size_t n)
{
    ssize_t r;
    if (s->tls) {
        r = tls_recv(s->tls, p, n, -1);
        if (r > 0 && s->hop[0] >= 0 &&
            (write(s->hop[0], p, (size_t)r) != r || read(s->hop[1], p, (size_t)r) != r))
            die("hop");
    } else {
        r = read(s->fd, p, n);
    }
    if (r <= 0)
        die("read");
    return (size_t)r;
}

static void recvAll(side *s, char *p, size_t n)
{
    for (size_t got = 0; got < n;)
        got += recvSome(s, p + got, n - got);
}

typedef struct job {
    side *s;
    int rounds;
    long long bytes;
} job;

/* The far side: echo the ping-pong, then swallow the bulk. */
static void *echo(void *arg)
{
    job *j = arg;
    char buf[MSG];
    for (int i = 0; i < j->rounds; i++) {
        recvAll(j->s, buf, MSG);
        sendAll(j->s, buf, MSG);
    }
    char *big = malloc(256 * 1024);
    for (long long got = 0; got < j->bytes;)
        got += (long long)recvSome(j->s, big, 256 * 1024);
    sendAll(j->s, "k", 1);
    free(big);
    return NULL;
}

typedef struct relayArg {
    tls_conn *t;
    int net;
    int app;
} relayArg;

/* A relay thread: both directions, GnuTLS non-blocking, poll() on both
 * descriptors, until the app's end goes. */
static void *relayThread(void *arg)
{
    relayArg *r = arg;
    static __thread char up[65536], down[16384];
    size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
    for (;;) {
        bool progress = false;
        short net_ev = 0, app_ev = 0;
        if (down_off == down_len) {
            ssize_t n = tls_recv_nb(r->t, down, sizeof down);
            if (n > 0) {
                down_len = (size_t)n;
                down_off = 0;
                progress = true;
            } else if (n == TLS_AGAIN) {
                net_ev |= POLLIN;
            } else {
                return NULL;
            }
        }
        if (down_off < down_len) {
            ssize_t w = send(r->app, down + down_off, down_len - down_off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                down_off += (size_t)w;
                progress = true;
            } else if (w < 0 && errno == EAGAIN) {
                app_ev |= POLLOUT;
            } else {
                return NULL;
            }
        }
        if (up_off == up_len) {
            ssize_t n = recv(r->app, up, sizeof up, MSG_DONTWAIT);
            if (n > 0) {
                up_len = (size_t)n;
                up_off = 0;
                progress = true;
            } else if (n < 0 && errno == EAGAIN) {
                app_ev |= POLLIN;
            } else {
                return NULL;
            }
        }
        if (up_off < up_len) {
            ssize_t w = tls_send_nb(r->t, up + up_off, up_len - up_off);
            if (w > 0) {
                up_off += (size_t)w;
                progress = true;
            } else if (w == TLS_AGAIN) {
                net_ev |= POLLOUT;
            } else {
                return NULL;
            }
        }
        if (progress)
            continue;
        struct pollfd p[2] = {{.fd = net_ev ? r->net : -1, .events = net_ev},
                              {.fd = app_ev ? r->app : -1, .events = app_ev}};
        poll(p, 2, -1);
    }
}

typedef struct hs {
    tls_ctx *ctx;
    int fd;
    tls_conn *t;
} hs;

static void *serverHandshake(void *arg)
{
    hs *h = arg;
    char *err = NULL;
    if (tls_server(h->ctx, h->fd, 5000, -1, &h->t, &err) != 0)
        die(err);
    return NULL;
}

static void run(const char *mode, tls_ctx *ctx, int rounds, long long bytes)
{
    int tcp[2];
    tcpPair(tcp);
    side a = {tcp[0], NULL, {-1, -1}}, b = {tcp[1], NULL, {-1, -1}};
    pthread_t relays[2];
    relayArg ra[2];
    bool tls = strcmp(mode, "plain") != 0;
    bool relayed = strcmp(mode, "thread") == 0;
    if (tls) {
        hs h = {ctx, tcp[1], NULL};
        pthread_t th;
        pthread_create(&th, NULL, serverHandshake, &h);
        char *err = NULL;
        if (tls_client(ctx, tcp[0], "127.0.0.1", 5000, -1, &a.tls, &err) != 0)
            die(err);
        pthread_join(th, NULL);
        b.tls = h.t;
        if (strcmp(mode, "hop") == 0) {
            socketpair(AF_UNIX, SOCK_STREAM, 0, a.hop);
            socketpair(AF_UNIX, SOCK_STREAM, 0, b.hop);
        }
        if (relayed) {
            int pa[2], pb[2];
            socketpair(AF_UNIX, SOCK_STREAM, 0, pa);
            socketpair(AF_UNIX, SOCK_STREAM, 0, pb);
            ra[0] = (relayArg){a.tls, tcp[0], pa[1]};
            ra[1] = (relayArg){b.tls, tcp[1], pb[1]};
            pthread_create(&relays[0], NULL, relayThread, &ra[0]);
            pthread_create(&relays[1], NULL, relayThread, &ra[1]);
            a = (side){pa[0], NULL, {-1, -1}};
            b = (side){pb[0], NULL, {-1, -1}};
        }
    }
    job j = {&b, rounds, bytes};
    pthread_t far;
    pthread_create(&far, NULL, echo, &j);
    char buf[MSG];
    memset(buf, 'x', sizeof buf);
    double t0 = now();
    for (int i = 0; i < rounds; i++) {
        sendAll(&a, buf, MSG);
        recvAll(&a, buf, MSG);
    }
    double rtt = (now() - t0) / rounds * 1e6;
    char *big = calloc(1, 256 * 1024);
    t0 = now();
    for (long long sent = 0; sent < bytes; sent += 256 * 1024)
        sendAll(&a, big, 256 * 1024);
    recvAll(&a, buf, 1);
    double secs = now() - t0;
    pthread_join(far, NULL);
    printf("%-7s round trip %7.1f us   bulk %7.1f MB/s\n", mode, rtt, (double)bytes / 1e6 / secs);
    free(big);
    if (relayed) {
        close(a.fd); /* the relays see their app ends go, and end */
        close(b.fd);
        pthread_join(relays[0], NULL);
        pthread_join(relays[1], NULL);
        tls_conn_free(ra[0].t);
        tls_conn_free(ra[1].t);
        close(ra[0].app);
        close(ra[1].app);
    } else {
        tls_conn_free(a.tls);
        tls_conn_free(b.tls);
        for (int i = 0; i < 2; i++) {
            if (a.hop[i] >= 0)
                close(a.hop[i]);
            if (b.hop[i] >= 0)
                close(b.hop[i]);
        }
    }
    close(tcp[0]);
    close(tcp[1]);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    long long mb = argc > 2 ? atoll(argv[2]) : 256;
    char dir[] = "/tmp/rqtlsrelay-XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt "
             "-days 2 -subj /CN=bench-ca 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout n.key -out n.csr "
             "-subj /CN=node 2>/dev/null && "
             "openssl x509 -req -in n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out n.crt -days 2 "
             "-extfile ext 2>/dev/null",
             dir);
    if (system(cmd) != 0)
        die("openssl failed");
    char cert[128], key[128], ca[128];
    snprintf(cert, sizeof cert, "%s/n.crt", dir);
    snprintf(key, sizeof key, "%s/n.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    tls_settings s = {.cert_file = cert, .key_file = key, .ca_file = ca, .verify_client = true};
    tls_ctx *ctx;
    char *err = NULL;
    if (tls_ctx_new(&s, &ctx, &err) != 0)
        die(err);
    long long bytes = mb * 1024 * 1024;
    run("plain", ctx, rounds, bytes);
    run("direct", ctx, rounds, bytes);
    run("hop", ctx, rounds, bytes);
    run("thread", ctx, rounds, bytes);
    tls_ctx_free(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
