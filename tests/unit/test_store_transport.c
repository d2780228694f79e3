/*
 * The two ends of a snapshot image transfer over the Raft port, on
 * loopback: store/transport.c serving image requests (CLUSTER_IMAGE_MAGIC)
 * from a fake transport_image_fn, and cluster_fetch_image() receiving, against
 * the real sender and against scripted fake senders (truncation, errors,
 * garbage, abandonment). Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

static server *serverStart(imageCtx *ctx)
{
    server *sv = calloc(1, sizeof *sv);
    snprintf(sv->addr, sizeof sv->addr, "127.0.0.1:%d", freePort());
    uv_loop_init(&sv->loop);
    uv_async_init(&sv->loop, &sv->stop, onStop);
    sv->stop.data = sv;
    assert_int_equal(transport_init(&sv->t, &sv->loop, sv->addr, "{\"id\":\"1\",\"api_addr\":\"http://127.0.0.1:9\"}",
                                       ctx ? fakeImage : NULL, ctx), 0);
    assert_int_equal(sv->t.listen(&sv->t, acceptNothing), 0);
    assert_int_equal(pthread_create(&sv->thread, NULL, serverThread, sv), 0);
    return sv;
}

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
    int rc = cluster_fetch_image(sv->addr, path, NULL, NULL, &bytes, &err);
    if (rc != 0)
        fail_msg("fetch: %s", err);
    assert_int_equal(bytes, (long long)ctx.size);
    checkPattern(path, ctx.size);
    unlink(path);
    /* An empty database is a valid answer too. */
    ctx.size = 0;
    assert_int_equal(cluster_fetch_image(sv->addr, path, NULL, NULL, &bytes, &err), 0);
    assert_int_equal(bytes, 0);
    unlink(path);
    /* The metadata probe still works beside image requests. */
    char *api = cluster_api_url(sv->addr, 2000);
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
    assert_int_equal(cluster_fetch_image(sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "failed to copy its database: backup: disk on fire"));
    assert_int_equal(access(path, F_OK), -1);
    free(err);
    serverStop(sv);

    /* A transport without a database (probe mode) says so. */
    sv = serverStart(NULL);
    err = NULL;
    assert_int_equal(cluster_fetch_image(sv->addr, path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "no database to send yet"));
    free(err);
    serverStop(sv);

    /* Nobody listening. */
    err = NULL;
    assert_int_equal(cluster_fetch_image("127.0.0.1:1", path, NULL, NULL, &bytes, &err), -1);
    assert_non_null(strstr(err, "cannot connect to 127.0.0.1:1"));
    free(err);
}

typedef struct fetchJob {
    const char *addr;
    char path[128];
    int rc;
    char *err;
    pthread_t th;
} fetchJob;

static void *fetchJobRun(void *arg)
{
    fetchJob *j = arg;
    long long bytes;
    j->rc = cluster_fetch_image(j->addr, j->path, NULL, NULL, &bytes, &j->err);
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
        jobs[i].addr = sv->addr;
        snprintf(jobs[i].path, sizeof jobs[i].path, "%s/job-%d", tmpdir, i);
        assert_int_equal(pthread_create(&jobs[i].th, NULL, fetchJobRun, &jobs[i]), 0);
    }
    waitCopying(&ctx, 4);
    char path[128], *err = NULL;
    destPath(path, sizeof path, "fifth");
    long long bytes;
    assert_int_equal(cluster_fetch_image(sv->addr, path, NULL, NULL, &bytes, &err), -1);
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
    fetchJob job = {.addr = sv->addr};
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
    for (int i = 0; i < 8; i++) {
        p[8 + i] = (unsigned char)(a >> (8 * i));
        p[16 + i] = (unsigned char)(b >> (8 * i));
    }
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
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "truncated: 600 of 1000 bytes"));
    assert_int_equal(access(path, F_OK), -1); /* nothing half-written is left */
    free(err);

    /* Cut inside a header. */
    fakeStart(&f, reply, 10, 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), -1);
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
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), 0);
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
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, why));
    free(err);

    /* An error text longer than the limit is not read. */
    header(reply, CLUSTER_IMAGE_ERROR, 1 << 30, 0);
    fakeStart(&f, reply, CLUSTER_IMAGE_HEADER, 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), -1);
    fakeStop(&f);
    assert_non_null(strstr(err, "failed to copy its database"));
    free(err);

    /* Not an rqlite node of this build (an HTTP server, say). */
    const char *http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    fakeStart(&f, http, strlen(http), 0);
    err = NULL;
    assert_int_equal(cluster_fetch_image(f.addr, path, NULL, NULL, &bytes, &err), -1);
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
    assert_int_equal(cluster_fetch_image(f.addr, path, abandon, NULL, &bytes, &err), -1);
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
    };
    return cmocka_run_group_tests(tests, setupDir, teardownDir);
}
