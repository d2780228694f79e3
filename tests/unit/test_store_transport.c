/*
 * The two ends of a snapshot image transfer over the Raft port, on
 * loopback: store/transport.c serving image requests (CLUSTER_IMAGE_MAGIC)
 * from a fake transport_image_fn, and cluster_fetch_image() receiving, against
 * the real sender and against scripted fake senders (truncation, errors,
 * garbage, abandonment); then the same over TLS (tls/), with refusals,
 * and libraft's streams through the TLS relays of two transports. Every
 * wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "store/transport.h"
#include "util/le.h"

static char tmpdir[64];

static int64_t nowMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listening socket on 127.0.0.1 (port in *port). */
static int listenLoopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    *port = ntohs(a.sin_port);
    return fd;
}

static int freePort(void)
{
    int port;
    close(listenLoopback(&port));
    return port;
}

static unsigned char pattern(uint64_t i) { return (unsigned char)(i * 7 + (i >> 13)); }

/* ---- a real transport, with a fake database copy ----------------------- */

typedef struct imageCtx {
    uint64_t size;       /* bytes of the fake copy */
    const char *fail;    /* non-NULL: the copy fails with this error */
    bool gated;          /* copies wait for open_gate */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int copying;         /* copies waiting at the gate */
    bool open_gate;
} imageCtx;

static int fakeImage(void *arg, transport_progress_fn progress, void *parg, uint64_t *size, char **err)
{
    imageCtx *c = arg;
    pthread_mutex_lock(&c->mu);
    c->copying++;
    pthread_cond_broadcast(&c->cond);
    while (c->gated && !c->open_gate)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    progress(parg, 0, (long long)c->size);
    if (c->fail) {
        *err = strdup(c->fail);
        return -1;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/copy-XXXXXX", tmpdir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    unsigned char *b = malloc(1 << 16);
    for (uint64_t off = 0; off < c->size;) {
        size_t n = c->size - off < (1 << 16) ? (size_t)(c->size - off) : (1 << 16);
        for (size_t i = 0; i < n; i++)
            b[i] = pattern(off + i);
        assert_int_equal(write(fd, b, n), (ssize_t)n);
        off += n;
    }
    free(b);
    *size = c->size;
    return fd;
}

typedef struct server {
    uv_loop_t loop;
    uv_async_t stop;
    struct raft_uv_transport t;
    pthread_t thread;
    char addr[64];
} server;

static void acceptNothing(struct raft_uv_transport *t, raft_id id, const char *address, struct uv_stream_s *s)
{
    (void)t, (void)id, (void)address;
    uv_close((uv_handle_t *)s, (uv_close_cb)raft_free);
}

static void transportClosed(struct raft_uv_transport *t) { (void)t; }

static void onStop(uv_async_t *a)
{
    server *sv = a->data;
    sv->t.close(&sv->t, transportClosed);
    uv_close((uv_handle_t *)a, NULL);
}

static void *serverThread(void *arg)
{
    server *sv = arg;
    uv_run(&sv->loop, UV_RUN_DEFAULT);
    return NULL;
}

static server *serverStartTls(imageCtx *ctx, tls_ctx *tls)
{
    server *sv = calloc(1, sizeof *sv);
    snprintf(sv->addr, sizeof sv->addr, "127.0.0.1:%d", freePort());
    uv_loop_init(&sv->loop);
    uv_async_init(&sv->loop, &sv->stop, onStop);
    sv->stop.data = sv;
    assert_int_equal(transport_init(&sv->t, &sv->loop, sv->addr, "{\"id\":\"1\",\"api_addr\":\"http://127.0.0.1:9\"}",
                                    ctx ? fakeImage : NULL, ctx, tls), 0);
    assert_int_equal(sv->t.listen(&sv->t, acceptNothing), 0);
    assert_int_equal(pthread_create(&sv->thread, NULL, serverThread, sv), 0);
    return sv;
}

static server *serverStart(imageCtx *ctx) { return serverStartTls(ctx, NULL); }

static void serverStop(server *sv)
{
    uv_async_send(&sv->stop);
    pthread_join(sv->thread, NULL);
    transport_free(&sv->t); /* waits for image threads */
    assert_int_equal(uv_loop_close(&sv->loop), 0);
    free(sv);
}

static void imageCtxInit(imageCtx *c, uint64_t size)
{
    memset(c, 0, sizeof *c);
    c->size = size;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
}

static void destPath(char *p, size_t n, const char *name)
{
    snprintf(p, n, "%s/%s", tmpdir, name);
}

static void checkPattern(const char *path, uint64_t size)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, size);
    unsigned char *b = malloc(1 << 16);
    for (uint64_t off = 0; off < size;) {
        ssize_t n = read(fd, b, 1 << 16);
        assert_true(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != pattern(off + (uint64_t)i))
                fail_msg("byte %llu differs", (unsigned long long)(off + (uint64_t)i));
        off += (uint64_t)n;
    }
    free(b);
    close(fd);
}

static void test_image_round_trip(void **st)
{
    imageCtx ctx;
    imageCtxInit(&ctx, 8 * 1024 * 1024 + 123);
    server *sv = serverStart(&ctx);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "round-trip");
    long long bytes = 0;
    int rc = cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err);
    if (rc != 0)
        fail_msg("fetch: %s", err);
    assert_int_equal(bytes, (long long)ctx.size);
    checkPattern(path, ctx.size);
    unlink(path);
    /* An empty database is a valid answer too. */
    ctx.size = 0;
    assert_int_equal(cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err), 0);
    assert_int_equal(bytes, 0);
    unlink(path);
    /* The metadata probe still works beside image requests. */
    char *api = cluster_api_url(NULL, sv->addr, 2000, NULL, NULL);
    assert_non_null(api);
    assert_string_equal(api, "http://127.0.0.1:9");
    free(api);
    serverStop(sv);
}

static void test_image_copy_fails(void **st)
{
    imageCtx ctx;
    imageCtxInit(&ctx, 100);
    ctx.fail = "backup: disk on fire";
    server *sv = serverStart(&ctx);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "fails");
    long long bytes = 0;
    assert_int_equal(cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "failed to copy its database: backup: disk on fire"));
    assert_int_equal(access(path, F_OK), -1);
    free(err);
    serverStop(sv);

    /* A transport without a database (probe mode) says so. */
    sv = serverStart(NULL);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "no database to send yet"));
    free(err);
    serverStop(sv);

    /* Nobody listening. */
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, "127.0.0.1:1", path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "cannot connect to 127.0.0.1:1"));
    free(err);
}

typedef struct fetchJob {
    char addr[64];           /* a copy: the server may be gone first */
    tls_ctx *tls;
    char path[128];
    int rc;
    char *err;
    pthread_t th;
} fetchJob;

static void *fetchJobRun(void *arg)
{
    fetchJob *j = arg;
    long long bytes;
    j->rc = cluster_fetch_image(j->tls, j->addr, j->path, NULL, NULL, &bytes, &j->err);
    return NULL;
}

/* Waits (bounded) until n copies are at the gate. */
static void waitCopying(imageCtx *c, int n)
{
    int64_t deadline = nowMs() + 20000;
    pthread_mutex_lock(&c->mu);
    while (c->copying < n && nowMs() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    int got = c->copying;
    pthread_mutex_unlock(&c->mu);
    assert_int_equal(got, n);
}

/* At most 4 transfers at once (each copy costs the database's size on
 * disk): a fifth is refused, and the four complete. */
static void test_image_senders_bounded(void **st)
{
    imageCtx ctx;
    imageCtxInit(&ctx, 300000);
    ctx.gated = true;
    server *sv = serverStart(&ctx);
    fetchJob jobs[4];
    for (int i = 0; i < 4; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        snprintf(jobs[i].addr, sizeof jobs[i].addr, "%s", sv->addr);
        snprintf(jobs[i].path, sizeof jobs[i].path, "%s/job-%d", tmpdir, i);
        assert_int_equal(pthread_create(&jobs[i].th, NULL, fetchJobRun, &jobs[i]), 0);
    }
    waitCopying(&ctx, 4);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "fifth");
    long long bytes;
    assert_int_equal(cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "too many database transfers"));
    free(err);
    pthread_mutex_lock(&ctx.mu);
    ctx.open_gate = true;
    pthread_cond_broadcast(&ctx.cond);
    pthread_mutex_unlock(&ctx.mu);
    for (int i = 0; i < 4; i++) {
        pthread_join(jobs[i].th, NULL);
        if (jobs[i].rc != 0)
            fail_msg("job %d: %s", i, jobs[i].err);
        checkPattern(jobs[i].path, ctx.size);
        unlink(jobs[i].path);
    }
    serverStop(sv);
}

/* Closing the transport cuts a transfer in progress, and transport_free
 * waits for its thread. */
static void test_image_close_cuts_transfer(void **st)
{
    imageCtx ctx;
    imageCtxInit(&ctx, 300000);
    ctx.gated = true;
    server *sv = serverStart(&ctx);
    fetchJob job = {0};
    snprintf(job.addr, sizeof job.addr, "%s", sv->addr);
    destPath(job.path, sizeof job.path, "cut");
    assert_int_equal(pthread_create(&job.th, NULL, fetchJobRun, &job), 0);
    waitCopying(&ctx, 1);
    uv_async_send(&sv->stop);
    pthread_join(sv->thread, NULL); /* the loop is done: the transport closed */
    pthread_mutex_lock(&ctx.mu);
    ctx.open_gate = true;
    pthread_cond_broadcast(&ctx.cond);
    pthread_mutex_unlock(&ctx.mu);
    transport_free(&sv->t);
    assert_int_equal(uv_loop_close(&sv->loop), 0);
    free(sv);
    pthread_join(job.th, NULL);
    assert_int_equal(job.rc, -1);
    assert_non_null(job.err);
    free(job.err);
    assert_int_equal(access(job.path, F_OK), -1);
}

/* ---- cluster_fetch_image against scripted senders ---------------------- */

typedef struct fake {
    int listen_fd;
    const void *reply;
    size_t reply_len;
    int hold_ms;        /* keep the connection open this long after replying */
    bool got_magic;
    pthread_t th;
    char addr[64];
} fake;

static void *fakeRun(void *arg)
{
    fake *f = arg;
    int c = accept(f->listen_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char m[8];
    size_t got = 0;
    while (got < 8) {
        ssize_t n = read(c, m + got, 8 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    f->got_magic = got == 8 && memcmp(m, CLUSTER_IMAGE_MAGIC, 8) == 0;
    if (f->reply_len && write(c, f->reply, f->reply_len) != (ssize_t)f->reply_len)
        fprintf(stderr, "fake: short write\n");
    if (f->hold_ms) {
        /* until the receiver hangs up, or hold_ms */
        struct timeval tv = {f->hold_ms / 1000, (f->hold_ms % 1000) * 1000};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char b;
        (void)!read(c, &b, 1);
    }
    close(c);
    return NULL;
}

static void fakeStart(fake *f, const void *reply, size_t len, int hold_ms)
{
    int port;
    f->listen_fd = listenLoopback(&port);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    f->reply = reply;
    f->reply_len = len;
    f->hold_ms = hold_ms;
    assert_int_equal(pthread_create(&f->th, NULL, fakeRun, f), 0);
}

static void fakeStop(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->listen_fd);
    assert_true(f->got_magic);
}

static size_t header(unsigned char *p, const char *tag, uint64_t a, uint64_t b)
{
    memcpy(p, tag, 8);
    le64_put(p + 8, a);
    le64_put(p + 16, b);
    return CLUSTER_IMAGE_HEADER;
}

static void test_fetch_detects_truncation(void **st)
{
    unsigned char reply[CLUSTER_IMAGE_HEADER + 600];
    size_t n = header(reply, CLUSTER_IMAGE_OK, 1000, 1000);
    memset(reply + n, 'x', 600);
    fake f;
    fakeStart(&f, reply, sizeof reply, 0);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "truncated");
    long long bytes = -1;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "truncated: 600 of 1000 bytes"));
    assert_int_equal(access(path, F_OK), -1); /* nothing half-written is left */
    free(err);

    /* Cut inside a header. */
    fakeStart(&f, reply, 10, 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "closed the connection"));
    free(err);
}

static void test_fetch_progress_then_data(void **st)
{
    unsigned char reply[3 * CLUSTER_IMAGE_HEADER + 5];
    size_t n = header(reply, CLUSTER_IMAGE_COPYING, 10, 100);
    n += header(reply + n, CLUSTER_IMAGE_COPYING, 100, 100);
    n += header(reply + n, CLUSTER_IMAGE_OK, 5, 5);
    memcpy(reply + n, "hello", 5);
    fake f;
    fakeStart(&f, reply, sizeof reply, 0);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "progress");
    long long bytes = -1;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), 0);
    fakeStop(&f);
    assert_int_equal(bytes, 5);
    char got[8] = "";
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, got, sizeof got), 5);
    close(fd);
    assert_memory_equal(got, "hello", 5);
    unlink(path);
}

static void test_fetch_error_and_garbage(void **st)
{
    const char *why = "backup: database is locked";
    unsigned char reply[CLUSTER_IMAGE_HEADER + 64];
    size_t n = header(reply, CLUSTER_IMAGE_ERROR, strlen(why), 0);
    memcpy(reply + n, why, strlen(why));
    fake f;
    fakeStart(&f, reply, n + strlen(why), 0);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "error");
    long long bytes;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, why));
    free(err);

    /* An error text longer than the limit is not read. */
    header(reply, CLUSTER_IMAGE_ERROR, 1 << 30, 0);
    fakeStart(&f, reply, CLUSTER_IMAGE_HEADER, 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "failed to copy its database"));
    free(err);

    /* Not an rqlite node of this build (an HTTP server, say). */
    const char *http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    fakeStart(&f, http, strlen(http), 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "sent no database image"));
    free(err);
    assert_int_equal(access(path, F_OK), -1);
}

static int progressCalls;
static bool progressCopying;
static long long progressDone, progressTotal;

static int abandon(void *arg, bool copying, long long done, long long total)
{
    (void)arg;
    progressCalls++;
    progressCopying = copying;
    progressDone = done;
    progressTotal = total;
    return 1;
}

/* Progress is reported about once a second, also while the sender only
 * copies; a nonzero answer abandons the transfer (the store closing). */
static void test_fetch_abandoned(void **st)
{
    unsigned char reply[CLUSTER_IMAGE_HEADER];
    header(reply, CLUSTER_IMAGE_COPYING, 42, 4200);
    fake f;
    fakeStart(&f, reply, sizeof reply, 10000);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "abandoned");
    long long bytes;
    int64_t t0 = nowMs();
    assert_int_equal(cluster_fetch_image(NULL, f.addr, path, abandon, NULL, &bytes, &err), -1);
    int64_t took = nowMs() - t0;
    fakeStop(&f);
    assert_string_equal(err, "transfer abandoned");
    free(err);
    assert_int_equal(progressCalls, 1);
    assert_true(progressCopying);
    assert_int_equal(progressDone, 42);
    assert_int_equal(progressTotal, 4200);
    assert_true(took >= 900 && took < 5000);
}

/* ---- the same port over TLS ----------------------------------------------- */

/* Certificates made once, with the openssl command: a CA and two nodes'
 * certificates for 127.0.0.1, a rogue CA and a certificate of it. */
static void makeCerts(void)
{
    static bool made;
    if (made)
        return;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
             "for ca in ca rogueca; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout $ca.key -out $ca.crt -days 2 -subj /CN=$ca 2>/dev/null || exit 1; done && "
             "for n in a:ca b:ca rogue:rogueca; do name=${n%%:*}; ca=${n#*:}; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $name.key -out $name.csr "
             "-subj /CN=$name 2>/dev/null && openssl x509 -req -in $name.csr -CA $ca.crt -CAkey $ca.key "
             "-CAcreateserial -out $name.crt -days 2 -extfile ext 2>/dev/null || exit 1; done",
             tmpdir);
    assert_int_equal(system(cmd), 0);
    made = true;
}

static tls_ctx *tlsOf(const char *name, const char *ca, bool verify_client)
{
    makeCerts();
    char c[128], k[128], a[128];
    snprintf(c, sizeof c, "%s/%s.crt", tmpdir, name);
    snprintf(k, sizeof k, "%s/%s.key", tmpdir, name);
    snprintf(a, sizeof a, "%s/%s.crt", tmpdir, ca);
    tls_settings s = {.cert_file = c, .key_file = k, .ca_file = a, .verify_client = verify_client};
    tls_ctx *t = NULL;
    char *err = NULL;
    if (tls_ctx_new(&s, &t, &err) != 0)
        fail_msg("%s", err);
    return t;
}

/* Images and probes inside TLS; refusals both ways; a plaintext client
 * gets nothing, a TLS client of a plaintext port neither, and the port
 * keeps serving. */
static void test_tls_image_and_probe(void **st)
{
    tls_ctx *srv = tlsOf("a", "ca", true), *cli = tlsOf("b", "ca", false);
    tls_ctx *rogue = tlsOf("rogue", "ca", false), *lost = tlsOf("b", "rogueca", false);
    imageCtx ctx;
    imageCtxInit(&ctx, 8 * 1024 * 1024 + 77);
    server *sv = serverStartTls(&ctx, srv);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "tls");
    long long bytes = 0;
    if (cluster_fetch_image(cli, sv->addr, path, NULL, NULL, &bytes, &err) != 0)
        fail_msg("fetch: %s", err);
    assert_int_equal(bytes, (long long)ctx.size);
    checkPattern(path, ctx.size);
    unlink(path);
    bool refused = true;
    char *api = cluster_api_url(cli, sv->addr, 2000, &refused, &err);
    assert_non_null(api);
    assert_false(refused);
    assert_string_equal(api, "http://127.0.0.1:9");
    free(api);
    /* Plaintext against TLS: no answer, no image. */
    assert_null(cluster_api_url(NULL, sv->addr, 2000, &refused, &err));
    assert_false(refused);
    free(err);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    free(err);
    err = NULL;
    /* A client certificate of another CA; a server certificate we cannot verify. */
    assert_null(cluster_api_url(rogue, sv->addr, 2000, &refused, &err));
    assert_true(refused);
    free(err);
    err = NULL;
    assert_null(cluster_api_url(lost, sv->addr, 2000, &refused, &err));
    assert_true(refused);
    assert_non_null(strstr(err, "certificate verification failed"));
    free(err);
    err = NULL;
    assert_int_equal(cluster_fetch_image(lost, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "certificate verification failed"));
    free(err);
    err = NULL;
    /* Still serving. */
    api = cluster_api_url(cli, sv->addr, 2000, &refused, &err);
    assert_non_null(api);
    free(api);
    serverStop(sv);
    /* TLS against a plaintext port: refused quickly, not as a certificate. */
    sv = serverStart(&ctx);
    int64_t t0 = nowMs();
    assert_null(cluster_api_url(cli, sv->addr, 2000, &refused, &err));
    assert_false(refused);
    assert_true(nowMs() - t0 < 1500);
    free(err);
    serverStop(sv);
    tls_ctx_free(srv);
    tls_ctx_free(cli);
    tls_ctx_free(rogue);
    tls_ctx_free(lost);
}

/* A closing TLS transport cuts an image transfer too (its thread's waits
 * end at once), and four at once are the most. */
static void test_tls_image_close_and_bound(void **st)
{
    tls_ctx *srv = tlsOf("a", "ca", true), *cli = tlsOf("b", "ca", false);
    imageCtx ctx;
    imageCtxInit(&ctx, 300000);
    ctx.gated = true;
    server *sv = serverStartTls(&ctx, srv);
    fetchJob jobs[4];
    for (int i = 0; i < 4; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        snprintf(jobs[i].addr, sizeof jobs[i].addr, "%s", sv->addr);
        jobs[i].tls = cli;
        snprintf(jobs[i].path, sizeof jobs[i].path, "%s/tjob-%d", tmpdir, i);
        assert_int_equal(pthread_create(&jobs[i].th, NULL, fetchJobRun, &jobs[i]), 0);
    }
    waitCopying(&ctx, 4);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "tfifth");
    long long bytes;
    assert_int_equal(cluster_fetch_image(cli, sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "too many database transfers"));
    free(err);
    uv_async_send(&sv->stop);
    pthread_join(sv->thread, NULL);
    pthread_mutex_lock(&ctx.mu);
    ctx.open_gate = true;
    pthread_cond_broadcast(&ctx.cond);
    pthread_mutex_unlock(&ctx.mu);
    transport_free(&sv->t);
    assert_int_equal(uv_loop_close(&sv->loop), 0);
    free(sv);
    for (int i = 0; i < 4; i++) {
        pthread_join(jobs[i].th, NULL);
        assert_int_equal(jobs[i].rc, -1);
        free(jobs[i].err);
    }
    tls_ctx_free(srv);
    tls_ctx_free(cli);
}

/* ---- libraft's streams through the relays ------------------------------ */

typedef struct rnode {
    uv_loop_t loop;
    uv_async_t wake;
    struct raft_uv_transport t;
    pthread_t th;
    char addr[64];
    const char *dial;             /* client: the server's address */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;                    /* under mu: close on the next wake */
    uv_stream_t *in, *out;        /* loop */
    raft_id from_id;              /* under mu: what the accept callback got */
    char from_addr[64];
    size_t received;              /* under mu */
    bool bytes_ok;
    int connect_status;           /* under mu: 1 until the callback */
    struct raft_uv_connect req;
    uv_write_t wr;
    uv_buf_t payload;
} rnode;

static unsigned char streamByte(size_t i) { return (unsigned char)(i * 31 + (i >> 9)); }

static void rAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(suggested);
    b->len = suggested;
}

static void rRead(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rnode *r = s->data;
    pthread_mutex_lock(&r->mu);
    for (ssize_t i = 0; i < n; i++)
        if ((unsigned char)b->base[i] != streamByte(r->received + (size_t)i))
            r->bytes_ok = false;
    if (n > 0)
        r->received += (size_t)n;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    free(b->base);
}

static void rAccept(struct raft_uv_transport *t, raft_id id, const char *address, struct uv_stream_s *s)
{
    rnode *r = t->data;
    pthread_mutex_lock(&r->mu);
    r->from_id = id;
    snprintf(r->from_addr, sizeof r->from_addr, "%s", address);
    pthread_mutex_unlock(&r->mu);
    r->in = s;
    s->data = r;
    uv_read_start(s, rAlloc, rRead);
}

static void rWritten(uv_write_t *w, int status) { (void)w, (void)status; }

static void rConnected(struct raft_uv_connect *req, struct uv_stream_s *s, int status)
{
    rnode *r = req->data;
    r->out = s;
    if (status == 0)
        uv_write(&r->wr, s, &r->payload, 1, rWritten);
    pthread_mutex_lock(&r->mu);
    r->connect_status = status;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void rClosed(struct raft_uv_transport *t) { (void)t; }

static void rWake(uv_async_t *a)
{
    rnode *r = a->data;
    pthread_mutex_lock(&r->mu);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    if (!stop) {
        r->req.data = r;
        assert_int_equal(r->t.connect(&r->t, &r->req, 1, r->dial, rConnected), 0);
        return;
    }
    if (r->in)
        uv_close((uv_handle_t *)r->in, (uv_close_cb)raft_free);
    if (r->out)
        uv_close((uv_handle_t *)r->out, (uv_close_cb)raft_free);
    r->t.close(&r->t, rClosed);
    uv_close((uv_handle_t *)a, NULL);
}

static void *rRun(void *arg)
{
    rnode *r = arg;
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void rStart(rnode *r, raft_id id, tls_ctx *tls, bool listen)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->bytes_ok = true;
    r->connect_status = 1;
    snprintf(r->addr, sizeof r->addr, "127.0.0.1:%d", freePort());
    uv_loop_init(&r->loop);
    uv_async_init(&r->loop, &r->wake, rWake);
    r->wake.data = r;
    assert_int_equal(transport_init(&r->t, &r->loop, r->addr, "{}", NULL, NULL, tls), 0);
    r->t.data = r;
    assert_int_equal(r->t.init(&r->t, id, r->addr), 0);
    if (listen)
        assert_int_equal(r->t.listen(&r->t, rAccept), 0);
    assert_int_equal(pthread_create(&r->th, NULL, rRun, r), 0);
}

static void rStop(rnode *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
    pthread_join(r->th, NULL);
    transport_free(&r->t);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

/* Waits (bounded) until cond(r) holds, under r->mu. */
static bool rWait(rnode *r, bool (*cond)(rnode *), int ms)
{
    int64_t deadline = nowMs() + ms;
    pthread_mutex_lock(&r->mu);
    while (!cond(r) && nowMs() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cond, &r->mu, &ts);
    }
    bool ok = cond(r);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

#define STREAM_BYTES (4 * 1024 * 1024 + 5)
static bool allReceived(rnode *r) { return r->received >= STREAM_BYTES; }
static bool connectAnswered(rnode *r) { return r->connect_status != 1; }

/* A client transport connects to a server transport over mutual TLS:
 * libraft's accept callback gets the client's id and address (our
 * handshake inside the session), and megabytes written to the client's
 * stream arrive intact on the server's. */
static void test_tls_raft_stream(void **st)
{
    tls_ctx *a = tlsOf("a", "ca", true), *b = tlsOf("b", "ca", true);
    rnode *srv = calloc(1, sizeof *srv), *cli = calloc(1, sizeof *cli);
    rStart(srv, 1, a, true);
    cli->dial = srv->addr;
    cli->payload.len = STREAM_BYTES;
    cli->payload.base = malloc(STREAM_BYTES);
    for (size_t i = 0; i < STREAM_BYTES; i++)
        cli->payload.base[i] = (char)streamByte(i);
    rStart(cli, 2, b, false);
    uv_async_send(&cli->wake);
    assert_true(rWait(cli, connectAnswered, 10000));
    assert_int_equal(cli->connect_status, 0);
    assert_true(rWait(srv, allReceived, 20000));
    assert_true(srv->bytes_ok);
    assert_int_equal(srv->received, STREAM_BYTES);
    assert_int_equal(srv->from_id, 2);
    assert_string_equal(srv->from_addr, cli->addr);
    rStop(cli);
    rStop(srv);
    free(cli->payload.base);
    free(srv);
    free(cli);
    tls_ctx_free(a);
    tls_ctx_free(b);
}

/* A connect in progress (a peer that accepts TCP but never answers TLS)
 * is answered RAFT_CANCELED when the transport closes, at once; a peer
 * whose certificate we refuse is answered RAFT_NOCONNECTION. */
static void test_tls_connect_canceled_and_refused(void **st)
{
    tls_ctx *b = tlsOf("b", "ca", true), *rogue = tlsOf("rogue", "rogueca", false);
    int port;
    int silent = listenLoopback(&port);
    rnode *cli = calloc(1, sizeof *cli);
    char dial[64];
    snprintf(dial, sizeof dial, "127.0.0.1:%d", port);
    cli->dial = dial;
    rStart(cli, 2, b, false);
    uv_async_send(&cli->wake);
    struct pollfd pf = {.fd = silent, .events = POLLIN}; /* the dial reached the backlog */
    assert_int_equal(poll(&pf, 1, 5000), 1);
    int64_t t0 = nowMs();
    rStop(cli);
    assert_true(nowMs() - t0 < 2000);
    assert_int_equal(cli->connect_status, RAFT_CANCELED);
    close(silent);
    free(cli);

    rnode *srv = calloc(1, sizeof *srv);
    cli = calloc(1, sizeof *cli);
    rStart(srv, 1, rogue, true);
    cli->dial = srv->addr;
    rStart(cli, 2, b, false);
    uv_async_send(&cli->wake);
    assert_true(rWait(cli, connectAnswered, 10000));
    assert_int_equal(cli->connect_status, RAFT_NOCONNECTION);
    rStop(cli);
    rStop(srv);
    assert_int_equal(srv->received, 0);
    free(srv);
    free(cli);
    tls_ctx_free(b);
    tls_ctx_free(rogue);
}

static int setupDir(void **st)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq-image-test-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardownDir(void **st)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in rqlited: a receiver that hangs up is an error, not a signal */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_round_trip),
        cmocka_unit_test(test_image_copy_fails),
        cmocka_unit_test(test_image_senders_bounded),
        cmocka_unit_test(test_image_close_cuts_transfer),
        cmocka_unit_test(test_fetch_detects_truncation),
        cmocka_unit_test(test_fetch_progress_then_data),
        cmocka_unit_test(test_fetch_error_and_garbage),
        cmocka_unit_test(test_fetch_abandoned),
        cmocka_unit_test(test_tls_image_and_probe),
        cmocka_unit_test(test_tls_image_close_and_bound),
        cmocka_unit_test(test_tls_raft_stream),
        cmocka_unit_test(test_tls_connect_canceled_and_refused),
    };
    return cmocka_run_group_tests(tests, setupDir, teardownDir);
}
