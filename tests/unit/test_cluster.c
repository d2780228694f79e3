/*
 * Unit tests for cluster/: joining, notifying, forwarding, the metadata
 * probe and the image transfer, against fake peers inside this process. A
 * fake peer is a thread serving a loopback port: it records every request
 * (HTTP, metadata probe or image request) and answers what the test
 * scripted. Nothing sleeps to synchronise: the calls under test are
 * synchronous, and a test stops a peer (joining its thread) before it reads
 * what the peer recorded. Every wait is bounded by the client's own timeouts.
 *
 * One file of ~1,100 lines, not one per concern: the fake peer (the first
 * third) serves every group of tests, and splitting it into a shared file
 * would give the unit-test build a second kind of source to link.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "config.h"
#include "util/le.h"
#include "util/os.h"

/* ---- fake peers ---------------------------------------------------------- */

#define MAX_SCRIPT 8
#define MAX_REQS 32
#define MAX_CONNS 32

enum { REQ_HTTP, REQ_META, REQ_IMAGE };

typedef struct reply {
    char *data;  /* NULL: close the connection without answering */
    size_t len;
    bool keep;   /* leave the connection open afterwards (keep-alive, or
                    hold it until the client hangs up) */
} reply;

typedef struct rec {
    int kind;
    int conn;             /* serial number of the connection it came on */
    char method[16];
    char target[256];
    char *headers;        /* the header lines as received */
    char *body;
    size_t body_len;
} rec;

typedef struct peer {
    int lfd, wake[2];
    char addr[64];        /* "127.0.0.1:port" */
    char url[80];         /* "http://127.0.0.1:port" */
    reply script[MAX_SCRIPT]; /* answers to HTTP and image requests in turn; the last repeats */
    int n_script, next;
    reply meta;           /* the answer to a metadata probe */
    rec reqs[MAX_REQS];
    int n_reqs;           /* requests seen (only the first MAX_REQS are kept) */
    int n_conns;
    pthread_t th;
} peer;

typedef struct conn {
    int fd, id;
    char *in;
    size_t len;
} conn;

/* Length of the first complete request in b, or 0 while incomplete. */
static size_t requestLen(const char *b, size_t n, int *kind)
{
    if (n >= 8 && memcmp(b, CLUSTER_META_MAGIC, 8) == 0) {
        *kind = REQ_META;
        return 8;
    }
    if (n >= 8 && memcmp(b, CLUSTER_IMAGE_MAGIC, 8) == 0) {
        *kind = REQ_IMAGE;
        return 8;
    }
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t hl = (size_t)(end + 4 - b), cl = 0;
    char *h = strndup(b, hl);
    for (const char *l = strstr(h, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            cl = strtoul(l + 17, NULL, 10);
    free(h);
    if (n < hl + cl)
        return 0;
    *kind = REQ_HTTP;
    return hl + cl;
}

static void record(peer *p, int kind, int conn_id, const char *b, size_t n)
{
    if (p->n_reqs++ >= MAX_REQS)
        return;
    rec *r = &p->reqs[p->n_reqs - 1];
    r->kind = kind;
    r->conn = conn_id;
    if (kind != REQ_HTTP)
        return;
    char *s = malloc(n + 1); /* NUL-terminated, to parse the head */
    memcpy(s, b, n);
    s[n] = 0;
    sscanf(s, "%15s %255s", r->method, r->target);
    char *hs = strstr(s, "\r\n") + 2, *he = strstr(s, "\r\n\r\n") + 2;
    r->headers = strndup(hs, (size_t)(he - hs));
    r->body_len = n - (size_t)(he + 2 - s);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, he + 2, r->body_len + 1);
    free(s);
}

static void sendAll(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client hung up: what it got is the test's business */
        p += w;
        n -= (size_t)w;
    }
}

/* Answer the complete requests buffered on c; false once c is to close. */
static bool serve(peer *p, conn *c)
{
    int kind;
    size_t n;
    while ((n = requestLen(c->in, c->len, &kind)) > 0) {
        record(p, kind, c->id, c->in, n);
        memmove(c->in, c->in + n, c->len - n);
        c->len -= n;
        const reply *r = kind == REQ_META ? &p->meta
                         : p->n_script   ? &p->script[p->next < p->n_script ? p->next++ : p->n_script - 1]
                                         : NULL;
        if (r == NULL || r->data == NULL)
            return false;
        sendAll(c->fd, r->data, r->len);
        if (!r->keep)
            return false;
    }
    return true;
}

static void *peerRun(void *arg)
{
    peer *p = arg;
    conn cs[MAX_CONNS];
    int nc = 0;
    for (;;) {
        struct pollfd pf[MAX_CONNS + 2] = {{.fd = p->wake[0], .events = POLLIN},
                                           {.fd = p->lfd, .events = POLLIN}};
        for (int i = 0; i < nc; i++)
            pf[2 + i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
        int polled = nc;
        if (poll(pf, (nfds_t)(2 + polled), -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[0].revents)
            break;
        for (int i = 0; i < polled; i++) {
            if (pf[2 + i].revents == 0)
                continue;
            char b[65536];
            ssize_t r = recv(cs[i].fd, b, sizeof b, 0);
            bool open = r > 0;
            if (open) {
                cs[i].in = realloc(cs[i].in, cs[i].len + (size_t)r);
                memcpy(cs[i].in + cs[i].len, b, (size_t)r);
                cs[i].len += (size_t)r;
                open = serve(p, &cs[i]);
            }
            if (!open) {
                close(cs[i].fd);
                cs[i].fd = -1;
            }
        }
        int kept = 0;
        for (int i = 0; i < nc; i++) {
            if (cs[i].fd >= 0)
                cs[kept++] = cs[i];
            else
                free(cs[i].in);
        }
        nc = kept;
        if (pf[1].revents & POLLIN) {
            int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0 && nc < MAX_CONNS)
                cs[nc++] = (conn){.fd = fd, .id = p->n_conns++};
            else if (fd >= 0)
                close(fd);
        }
    }
    for (int i = 0; i < nc; i++) {
        close(cs[i].fd);
        free(cs[i].in);
    }
    return NULL;
}

static void peerAdd(peer *p, const void *data, size_t len, bool keep)
{
    assert_true(p->n_script < MAX_SCRIPT);
    reply *r = &p->script[p->n_script++];
    r->data = data ? malloc(len + 1) : NULL;
    if (data)
        memcpy(r->data, data, len);
    r->len = len;
    r->keep = keep;
}

/* An HTTP answer; headers are extra "Name: value\r\n" lines. */
static void peerHttp(peer *p, int status, const char *headers, const char *body, bool keep)
{
    const char *reason = status == 200 ? "OK" : status == 301 ? "Moved Permanently"
                         : status == 503 ? "Service Unavailable" : "Whatever";
    char *r = rq_sprintf("HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s\r\n%s", status, reason,
                         headers ? headers : "", strlen(body), keep ? "" : "Connection: close\r\n", body);
    peerAdd(p, r, strlen(r), keep);
    free(r);
}

/* A listening peer, not serving yet (script it, then peerGo). A metadata
 * probe gets what an HTTP server answers a request line it cannot parse. */
static peer *peerNew(void)
{
    peer *p = calloc(1, sizeof *p);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    socklen_t n = sizeof a;
    getsockname(p->lfd, (struct sockaddr *)&a, &n);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(p->url, sizeof p->url, "http://%s", p->addr);
    assert_int_equal(pipe2(p->wake, O_CLOEXEC), 0);
    const char *bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    p->meta = (reply){strdup(bad), strlen(bad), false};
    return p;
}

static void peerMeta(peer *p, const char *line, bool keep)
{
    free(p->meta.data);
    p->meta = (reply){line ? strdup(line) : NULL, line ? strlen(line) : 0, keep};
}

static void peerGo(peer *p)
{
    assert_int_equal(pthread_create(&p->th, NULL, peerRun, p), 0);
}

static void peerStop(peer *p)
{
    assert_int_equal(write(p->wake[1], "x", 1), 1);
    pthread_join(p->th, NULL);
}

static void peerFree(peer *p)
{
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    for (int i = 0; i < p->n_script; i++)
        free(p->script[i].data);
    free(p->meta.data);
    for (int i = 0; i < p->n_reqs && i < MAX_REQS; i++) {
        free(p->reqs[i].headers);
        free(p->reqs[i].body);
    }
    free(p);
}

/* A loopback address nobody listens on. */
static void deadAddr(char *out, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    snprintf(out, n, "127.0.0.1:%d", ntohs(a.sin_port));
    close(fd);
}

static void assertHttp(const rec *r, const char *method, const char *target)
{
    assert_int_equal(r->kind, REQ_HTTP);
    assert_string_equal(r->method, method);
    assert_string_equal(r->target, target);
}

/* ---- configuration, as rqlited builds it ---------------------------------- */

/* config_parse of rqlited's flags: node n1 advertising http and raft, one
 * join attempt 10 ms apart unless the extra flags (NULL-terminated) say
 * otherwise. */
static void makeConfig(config *c, const char *http, const char *raft, ...)
{
    char *argv[32] = {"rqlited", "-node-id", "n1", "-http-addr", (char *)http, "-raft-addr", (char *)raft,
                      "-join-attempts", "1", "-join-interval", "10ms"};
    int argc = 11, code = -1;
    va_list ap;
    va_start(ap, raft);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 30;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc++] = "/tmp/rq-test-cluster-data"; /* never touched: only parsed */
    memset(c, 0, sizeof *c);
    assert_int_equal(config_parse(c, argc, argv, &code), 0);
}

/* A join or notify body: exactly these members (voter, reset: -1 absent). */
static void assertPeerBody(const rec *r, const char *id, const char *addr, const char *api, int voter,
                           int reset)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (j == NULL)
        fail_msg("body is not JSON: %s (%s)", r->body, je.text);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 3 + (voter >= 0) + (reset >= 0));
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "addr")), addr);
    assert_string_equal(json_string_value(json_object_get(j, "api_addr")), api);
    if (voter >= 0) {
        assert_true(json_is_boolean(json_object_get(j, "voter")));
        assert_int_equal(json_is_true(json_object_get(j, "voter")), voter);
    }
    if (reset >= 0) {
        assert_true(json_is_boolean(json_object_get(j, "reset")));
        assert_int_equal(json_is_true(json_object_get(j, "reset")), reset);
    }
    json_decref(j);
    assert_non_null(strcasestr(r->headers, "Content-Type: application/json\r\n"));
}

/* ---- join ------------------------------------------------------------------ */

/* POST /join {"id","addr","voter","api_addr","reset"}: rqlite's v6/v7 body
 * (id, addr, voter) plus our api_addr and reset; targets NULL means -join. */
static void test_join_body(void **st)
{
    peer *p = peerNew();
    peerHttp(p, 200, NULL, "", false);
    peerGo(p);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", "-join", p->url, NULL);
    char *err = NULL;
    assert_int_equal(cluster_join(&c, NULL, 0, false, &err), 0);
    assert_null(err);
    config_free(&c);
    /* A non-voter without state. */
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", "-node-id", "n7", "-raft-non-voter",
               "-http-adv-addr", "node7.example:4001", "-raft-adv-addr", "node7.example:4002", NULL);
    assert_int_equal(cluster_join(&c, (char *[]){p->url}, 1, true, &err), 0);
    config_free(&c);
    peerStop(p);

    assert_int_equal(p->n_reqs, 2);
    assertHttp(&p->reqs[0], "POST", "/join");
    assertPeerBody(&p->reqs[0], "n1", "127.0.0.1:4002", "http://127.0.0.1:4001", true, false);
    assertHttp(&p->reqs[1], "POST", "/join");
    assertPeerBody(&p->reqs[1], "n7", "node7.example:4002", "http://node7.example:4001", false, true);
    peerFree(p);
}

/* A follower answers 301 to the leader's /join: the same POST follows. */
static void test_join_follows_redirect(void **st)
{
    peer *leader = peerNew(), *follower = peerNew();
    peerHttp(leader, 200, NULL, "", false);
    char *loc = rq_sprintf("Location: %s/join\r\n", leader->url);
    peerHttp(follower, 301, loc, "", false);
    free(loc);
    peerGo(leader);
    peerGo(follower);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", "-join", follower->url, NULL);
    char *err = NULL;
    assert_int_equal(cluster_join(&c, NULL, 0, false, &err), 0);
    peerStop(leader);
    peerStop(follower);
    assert_int_equal(follower->n_reqs, 1);
    assert_int_equal(leader->n_reqs, 1);
    assertHttp(&leader->reqs[0], "POST", "/join");
    assert_int_equal(leader->reqs[0].body_len, follower->reqs[0].body_len);
    assert_memory_equal(leader->reqs[0].body, follower->reqs[0].body, leader->reqs[0].body_len);
    assertPeerBody(&leader->reqs[0], "n1", "127.0.0.1:4002", "http://127.0.0.1:4001", true, false);
    peerFree(leader);
    peerFree(follower);

    /* A node redirecting to itself forever is given up on. */
    peer *loop = peerNew();
    loc = rq_sprintf("Location: %s/join\r\n", loop->url);
    peerHttp(loop, 301, loc, "", false);
    free(loc);
    peerGo(loop);
    assert_int_equal(cluster_join(&c, (char *[]){loop->url}, 1, false, &err), -1);
    peerStop(loop);
    assert_true(loop->n_reqs > 1 && loop->n_reqs < MAX_REQS);
    assert_non_null(strstr(err, loop->url));
    free(err);
    peerFree(loop);
    config_free(&c);
}

/* -join-attempts / -join-interval: a 503 (no leader yet) is retried after
 * the interval, and the second attempt's 200 ends the join. */
static void test_join_retries_then_succeeds(void **st)
{
    peer *p = peerNew();
    peerHttp(p, 503, NULL, "leader not found", false);
    peerHttp(p, 200, NULL, "", false);
    peerGo(p);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", "-join", p->url, "-join-attempts", "3",
               "-join-interval", "100ms", NULL);
    char *err = NULL;
    int64_t t0 = rq_now_ms();
    assert_int_equal(cluster_join(&c, NULL, 0, true, &err), 0);
    int64_t took = rq_now_ms() - t0;
    peerStop(p);
    assert_null(err);
    assert_int_equal(p->n_reqs, 2); /* not the third attempt */
    assert_true(took >= 100 && took < 3000);
    for (int i = 0; i < 2; i++) {
        assertHttp(&p->reqs[i], "POST", "/join");
        assertPeerBody(&p->reqs[i], "n1", "127.0.0.1:4002", "http://127.0.0.1:4001", true, true);
    }
    config_free(&c);
    peerFree(p);
}

/* After all attempts (each trying every target), the error says where the
 * last one failed and what the node answered. */
static void test_join_gives_up(void **st)
{
    peer *a = peerNew(), *b = peerNew();
    peerHttp(a, 503, NULL, "leader not found", false);
    peerHttp(b, 500, NULL, "join failed: disk full", false);
    peerGo(a);
    peerGo(b);
    char both[200];
    snprintf(both, sizeof both, "%s,%s", a->url, b->url);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", "-join", both, "-join-attempts", "3",
               "-join-interval", "20ms", NULL);
    char *err = NULL;
    int64_t t0 = rq_now_ms();
    assert_int_equal(cluster_join(&c, NULL, 0, false, &err), -1);
    int64_t took = rq_now_ms() - t0;
    peerStop(a);
    peerStop(b);
    assert_int_equal(a->n_reqs, 3);
    assert_int_equal(b->n_reqs, 3);
    assert_true(took >= 40); /* two intervals: none after the last attempt */
    assert_non_null(err);
    assert_non_null(strstr(err, "failed to join cluster"));
    assert_non_null(strstr(err, b->url));
    assert_non_null(strstr(err, "500"));
    assert_non_null(strstr(err, "join failed: disk full"));
    free(err);
    config_free(&c);
    peerFree(a);
    peerFree(b);
}

/* Answers that are not HTTP, a connection closed unanswered, nobody
 * listening: each is a failed attempt naming its target, and the next
 * target is still tried. */
static void test_join_bad_peers(void **st)
{
    peer *garbage = peerNew(), *mute = peerNew(), *good = peerNew();
    const char *junk = "\x01\x02 this is not HTTP\r\n\r\n";
    peerAdd(garbage, junk, strlen(junk), false);
    peerAdd(mute, NULL, 0, false);
    peerHttp(good, 200, NULL, "", false);
    peerGo(garbage);
    peerGo(mute);
    peerGo(good);
    char dead[64], dead_url[80];
    deadAddr(dead, sizeof dead);
    snprintf(dead_url, sizeof dead_url, "http://%s", dead);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", NULL);
    char *targets[] = {garbage->url, mute->url, dead_url};
    for (int i = 0; i < 3; i++) {
        char *err = NULL;
        assert_int_equal(cluster_join(&c, &targets[i], 1, false, &err), -1);
        assert_non_null(err);
        if (strstr(err, targets[i]) == NULL)
            fail_msg("error for %s does not name it: %s", targets[i], err);
        free(err);
    }
    char *all[] = {garbage->url, mute->url, dead_url, good->url};
    char *err = NULL;
    assert_int_equal(cluster_join(&c, all, 4, false, &err), 0);
    peerStop(garbage);
    peerStop(mute);
    peerStop(good);
    assert_int_equal(garbage->n_reqs, 2);
    assert_int_equal(mute->n_reqs, 2);
    assert_int_equal(good->n_reqs, 1);
    assertHttp(&mute->reqs[1], "POST", "/join");
    assertHttp(&good->reqs[0], "POST", "/join");
    config_free(&c);
    peerFree(garbage);
    peerFree(mute);
    peerFree(good);
}

/* A node does not join through itself (its advertised HTTP or Raft
 * address, in any spelling cluster.h accepts): not even a probe is sent. */
static void test_join_skips_self(void **st)
{
    peer *http = peerNew(), *raft = peerNew(), *other = peerNew();
    peerHttp(other, 200, NULL, "", false);
    peerGo(http);
    peerGo(raft);
    peerGo(other);
    config c;
    makeConfig(&c, http->addr, raft->addr, "-join-attempts", "2", NULL);
    char slash[100];
    snprintf(slash, sizeof slash, "%s/", http->url);
    char *self[] = {http->url, slash, http->addr, raft->addr};
    char *err = NULL;
    assert_int_equal(cluster_join(&c, self, 4, false, &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "no join address usable"));
    free(err);
    err = NULL;
    char *mixed[] = {raft->addr, other->url};
    assert_int_equal(cluster_join(&c, mixed, 2, false, &err), 0);
    peerStop(http);
    peerStop(raft);
    peerStop(other);
    assert_int_equal(http->n_conns, 0);
    assert_int_equal(raft->n_conns, 0);
    assert_int_equal(other->n_reqs, 1);
    assertPeerBody(&other->reqs[0], "n1", raft->addr, http->url, true, false);
    config_free(&c);
    peerFree(http);
    peerFree(raft);
    peerFree(other);
}

/* The forms of a join target (cluster.h): an http:// URL is used as is (no
 * probe, a trailing slash dropped); a bare host:port is first probed over
 * the Raft port: a node answering the probe gives its API URL, a node that
 * does not (an HTTP API) is taken as http://host:port. */
static void test_join_target_forms(void **st)
{
    peer *api = peerNew(), *raft = peerNew();
    peerHttp(api, 200, NULL, "", false);
    char *line = rq_sprintf("{\"id\":\"n2\",\"addr\":\"%s\",\"api_addr\":\"%s\"}\n", raft->addr, api->url);
    peerMeta(raft, line, false);
    free(line);
    peerGo(api);
    peerGo(raft);
    config c;
    makeConfig(&c, "127.0.0.1:4001", "127.0.0.1:4002", NULL);
    char slash[100];
    snprintf(slash, sizeof slash, "%s/", api->url);
    char *err = NULL;
    assert_int_equal(cluster_join(&c, (char *[]){slash}, 1, false, &err), 0);      /* URL */
    assert_int_equal(cluster_join(&c, (char *[]){api->addr}, 1, false, &err), 0);  /* bare HTTP */
    assert_int_equal(cluster_join(&c, (char *[]){raft->addr}, 1, false, &err), 0); /* bare Raft */
    peerStop(api);
    peerStop(raft);
    assert_null(err);
    assert_int_equal(api->n_reqs, 4);
    assertHttp(&api->reqs[0], "POST", "/join");
    assert_int_equal(api->reqs[1].kind, REQ_META); /* probed, refused, then... */
    assertHttp(&api->reqs[2], "POST", "/join");    /* ...taken as an HTTP address */
    assertHttp(&api->reqs[3], "POST", "/join");    /* the Raft node's API */
    for (int i = 0; i < 4; i++)
        if (i != 1)
            assertPeerBody(&api->reqs[i], "n1", "127.0.0.1:4002", "http://127.0.0.1:4001", true, false);
    assert_int_equal(raft->n_reqs, 1);
    assert_int_equal(raft->reqs[0].kind, REQ_META);
    config_free(&c);
    peerFree(api);
    peerFree(raft);
}

/* ---- notify, has_leader ------------------------------------------------------ */

static void test_notify(void **st)
{
    peer *p = peerNew();
    peerHttp(p, 200, NULL, "", false);
    peerHttp(p, 200, NULL, "", false);
    peerHttp(p, 503, NULL, "too many nodes have notified this node", false);
    peerGo(p);
    config c;
    makeConfig(&c, "10.0.0.1:4001", "10.0.0.1:4002", "-node-id", "node-a", NULL);
    char *err = NULL;
    assert_int_equal(cluster_notify(&c, p->url, &err), 0);
    assert_null(err);
    assert_int_equal(cluster_notify(&c, p->addr, &err), 0); /* bare host:port of an HTTP API */
    assert_null(err);
    assert_int_equal(cluster_notify(&c, p->url, &err), -1);
    peerStop(p);
    assert_non_null(err);
    assert_non_null(strstr(err, "503"));
    assert_non_null(strstr(err, p->url));
    free(err);
    assert_int_equal(p->n_reqs, 4);
    assertHttp(&p->reqs[0], "POST", "/notify");
    assertPeerBody(&p->reqs[0], "node-a", "10.0.0.1:4002", "http://10.0.0.1:4001", -1, -1);
    assert_int_equal(p->reqs[1].kind, REQ_META);
    assertHttp(&p->reqs[2], "POST", "/notify");
    assertPeerBody(&p->reqs[2], "node-a", "10.0.0.1:4002", "http://10.0.0.1:4001", -1, -1);
    assertHttp(&p->reqs[3], "POST", "/notify");

    /* Nobody there. */
    char dead[64];
    deadAddr(dead, sizeof dead);
    err = NULL;
    assert_int_equal(cluster_notify(&c, dead, &err), -1);
    assert_non_null(err);
    free(err);
    config_free(&c);
    peerFree(p);
}

/* Is there a leader behind target: its /readyz answers 200. Never asked of
 * ourselves. */
static void test_target_has_leader(void **st)
{
    peer *p = peerNew(), *self = peerNew();
    peerHttp(p, 200, NULL, "[+]node ok\n[+]leader ok\n[+]store ok\n", false);
    peerHttp(p, 503, NULL, "[+]node ok\n[-]leader not ok\n", false);
    peerHttp(self, 200, NULL, "[+]node ok\n[+]leader ok\n[+]store ok\n", false);
    peerGo(p);
    peerGo(self);
    char dead[64];
    deadAddr(dead, sizeof dead);
    config c;
    makeConfig(&c, self->addr, "127.0.0.1:4002", NULL);
    assert_true(cluster_target_has_leader(&c, p->url));
    assert_false(cluster_target_has_leader(&c, p->url));
    assert_false(cluster_target_has_leader(&c, dead));
    assert_false(cluster_target_has_leader(&c, self->url));
    assert_false(cluster_target_has_leader(&c, self->addr));
    peerStop(p);
    peerStop(self);
    assert_int_equal(p->n_reqs, 2);
    assertHttp(&p->reqs[0], "GET", "/readyz");
    assertHttp(&p->reqs[1], "GET", "/readyz");
    assert_int_equal(self->n_conns, 0);
    config_free(&c);
    peerFree(p);
    peerFree(self);
}

/* ---- forwarding ------------------------------------------------------------- */

/* The request is replayed as given (method, path and query, body, Content-
 * Type, Authorization), without "Expect: 100-continue" (which would cost a
 * second per large write), and the answer comes back verbatim. */
static void test_forward_verbatim(void **st)
{
    peer *p = peerNew();
    const char *answer = "{\"results\":[{\"last_insert_id\":1,\"rows_affected\":1}]}";
    peerHttp(p, 200, "Content-Type: application/json; charset=utf-8\r\nX-Other: 1\r\n", answer, false);
    peerHttp(p, 404, "Content-Type: text/plain\r\n", "no such node", false);
    peerGo(p);
    size_t big = 1536 * 1024; /* past libcurl's Expect thresholds, old (1 KiB) and new (1 MiB) */
    char *body = malloc(big);
    for (size_t i = 0; i < big; i++)
        body[i] = (char)('a' + i % 26);
    char *url = rq_sprintf("%s/db/execute?timings&level=strong", p->url);
    cluster_response r;
    char *err = NULL;
    assert_int_equal(cluster_forward("POST", url, body, big, "application/json", "Basic dXNlcjpwYXNz", 5000,
                                     &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json; charset=utf-8");
    assert_int_equal(r.body.len, strlen(answer));
    assert_memory_equal(r.body.data, answer, strlen(answer));
    cluster_response_free(&r);
    free(url);
    url = rq_sprintf("%s/remove", p->url);
    assert_int_equal(cluster_forward("DELETE", url, "{\"id\":\"n3\"}", 11, "application/json", NULL, 5000, &r,
                                     &err), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "text/plain");
    assert_int_equal(r.body.len, 12);
    assert_memory_equal(r.body.data, "no such node", 12);
    cluster_response_free(&r);
    free(url);
    peerStop(p);
    assert_null(err);
    assert_int_equal(p->n_reqs, 2);
    assertHttp(&p->reqs[0], "POST", "/db/execute?timings&level=strong");
    assert_int_equal(p->reqs[0].body_len, big);
    assert_memory_equal(p->reqs[0].body, body, big);
    assert_non_null(strcasestr(p->reqs[0].headers, "Content-Type: application/json\r\n"));
    assert_non_null(strcasestr(p->reqs[0].headers, "Authorization: Basic dXNlcjpwYXNz\r\n"));
    assert_null(strcasestr(p->reqs[0].headers, "Expect:"));
    assertHttp(&p->reqs[1], "DELETE", "/remove");
    assert_string_equal(p->reqs[1].body, "{\"id\":\"n3\"}");
    assert_null(strcasestr(p->reqs[1].headers, "Authorization:"));
    free(body);
    peerFree(p);
}

/* Reads may reuse a kept-alive connection to the leader; writes never do:
 * libcurl re-sends a request on a reused connection found dead, and a write
 * the leader already applied would be applied twice (rqlite #1628). */
static void test_forward_writes_fresh_connections(void **st)
{
    peer *p = peerNew();
    peerHttp(p, 200, "Content-Type: application/json\r\n", "{}", true);
    peerGo(p);
    char *url = rq_sprintf("%s/db/query?q=SELECT+1", p->url);
    const char *methods[] = {"GET", "GET", "POST", "POST"};
    for (int i = 0; i < 4; i++) {
        cluster_response r;
        char *err = NULL;
        assert_int_equal(cluster_forward(methods[i], url, "[\"SELECT 1\"]", 12, "application/json", NULL, 5000,
                                         &r, &err), 0);
        assert_int_equal(r.status, 200);
        cluster_response_free(&r);
    }
    free(url);
    peerStop(p);
    assert_int_equal(p->n_reqs, 4);
    assertHttp(&p->reqs[0], "GET", "/db/query?q=SELECT+1");
    assertHttp(&p->reqs[2], "POST", "/db/query?q=SELECT+1");
    assert_int_equal(p->reqs[1].conn, p->reqs[0].conn); /* the read's connection was kept */
    assert_int_not_equal(p->reqs[2].conn, p->reqs[0].conn);
    assert_int_not_equal(p->reqs[3].conn, p->reqs[0].conn);
    assert_int_not_equal(p->reqs[3].conn, p->reqs[2].conn);
    peerFree(p);
}

/* Any HTTP answer is returned (0, its status); no answer is -1. */
static void test_forward_failures(void **st)
{
    peer *p = peerNew();
    peerHttp(p, 503, NULL, "leader not found", false);
    peerAdd(p, NULL, 0, false);     /* closes unanswered */
    peerAdd(p, "", 0, true);        /* never answers */
    peerGo(p);
    cluster_response r;
    char *err = NULL;
    char *url = rq_sprintf("%s/db/execute", p->url);
    assert_int_equal(cluster_forward("POST", url, "[]", 2, "application/json", NULL, 5000, &r, &err), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "leader not found");
    cluster_response_free(&r);
    assert_int_equal(cluster_forward("POST", url, "[]", 2, "application/json", NULL, 5000, &r, &err), -1);
    assert_non_null(err);
    assert_int_equal(r.status, 0);
    free(err);
    err = NULL;
    int64_t t0 = rq_now_ms();
    assert_int_equal(cluster_forward("POST", url, "[]", 2, "application/json", NULL, 200, &r, &err), -1);
    int64_t took = rq_now_ms() - t0;
    assert_non_null(err);
    free(err);
    assert_true(took >= 150 && took < 3000); /* the caller's timeout, not curl's default */
    free(url);
    peerStop(p);
    assert_int_equal(p->n_reqs, 3);

    char dead[64];
    deadAddr(dead, sizeof dead);
    url = rq_sprintf("http://%s/db/query", dead);
    err = NULL;
    assert_int_equal(cluster_forward("GET", url, NULL, 0, NULL, NULL, 5000, &r, &err), -1);
    assert_non_null(err);
    free(err);
    free(url);
    peerFree(p);
}

/* ---- metadata probe over the Raft port ------------------------------------------ */

static char *probe(const char *line, bool keep, uint64_t timeout_ms, int *kind)
{
    peer *p = peerNew();
    peerMeta(p, line, keep);
    peerGo(p);
    char *api = cluster_api_url(NULL, p->addr, timeout_ms, NULL, NULL);
    peerStop(p);
    assert_int_equal(p->n_reqs, 1);
    *kind = p->reqs[0].kind;
    peerFree(p);
    return api;
}

static void test_meta_probe(void **st)
{
    int kind = -1;
    char *api = probe("{\"id\":\"n2\",\"addr\":\"10.0.0.2:4002\",\"api_addr\":\"http://10.0.0.2:4001\"}\n", false,
                      2000, &kind);
    assert_int_equal(kind, REQ_META);
    assert_non_null(api);
    assert_string_equal(api, "http://10.0.0.2:4001");
    free(api);
    /* The line is all that is read: what follows it does not matter. */
    api = probe("{\"api_addr\":\"http://10.0.0.3:4001\"}\ntrailing junk", false, 2000, &kind);
    assert_non_null(api);
    assert_string_equal(api, "http://10.0.0.3:4001");
    free(api);
    /* A node that keeps the connection open after its line is not waited for. */
    int64_t t0 = rq_now_ms();
    api = probe("{\"api_addr\":\"http://10.0.0.5:4001\"}\n", true, 3000, &kind);
    assert_true(rq_now_ms() - t0 < 1500);
    assert_non_null(api);
    assert_string_equal(api, "http://10.0.0.5:4001");
    free(api);
    /* Closing without the newline ends the line too. */
    api = probe("{\"api_addr\":\"http://10.0.0.4:4001\"}", false, 2000, &kind);
    assert_non_null(api);
    assert_string_equal(api, "http://10.0.0.4:4001");
    free(api);

    const char *bad[] = {
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", /* an HTTP server */
        "not json at all\n",
        "{\"id\":\"n2\",\"addr\":\"10.0.0.2:4002\"}\n",           /* no api_addr */
        "{\"api_addr\":42}\n",
        "{\"api_addr\":\"\"}\n",
        "[\"http://10.0.0.2:4001\"]\n",
        "\"http://10.0.0.2:4001\"\n",
        "",                                                       /* closes unanswered */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        api = probe(bad[i], false, 2000, &kind);
        if (api)
            fail_msg("reply %zu gave %s", i, api);
    }
    /* A node that says nothing is given up on after the timeout. */
    t0 = rq_now_ms();
    assert_null(probe("", true, 150, &kind));
    int64_t took = rq_now_ms() - t0;
    assert_true(took >= 100 && took < 2000);
    char dead[64];
    deadAddr(dead, sizeof dead);
    assert_null(cluster_api_url(NULL, dead, 1000, NULL, NULL));
    assert_null(cluster_api_url(NULL, "no-port-here", 1000, NULL, NULL));
}

/* ---- image fetch framing ----------------------------------------------------- */

static char tmpdir[64];

static size_t header(unsigned char *p, const char *tag, uint64_t a, uint64_t b)
{
    memcpy(p, tag, 8);
    le64_put(p + 8, a);
    le64_put(p + 16, b);
    return CLUSTER_IMAGE_HEADER;
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 31 + (i >> 9)); }

/* A fake node whose image answer is reply[0..n), then closes (or holds). */
static peer *imagePeer(const unsigned char *reply, size_t n, bool hold)
{
    peer *p = peerNew();
    peerAdd(p, reply, n, hold);
    peerGo(p);
    return p;
}

static void assertOneImageRequest(peer *p)
{
    peerStop(p);
    assert_int_equal(p->n_reqs, 1);
    assert_int_equal(p->reqs[0].kind, REQ_IMAGE);
    peerFree(p);
}

/* Progress headers, then RQIMGOK and exactly size bytes: the file holds
 * those bytes and nothing the node sent after them. */
static void test_image_exact_size(void **st)
{
    size_t size = 200001; /* several receive chunks, not a multiple of them */
    size_t n = 0, cap = 3 * CLUSTER_IMAGE_HEADER + size + 16;
    unsigned char *reply = malloc(cap);
    n += header(reply + n, CLUSTER_IMAGE_COPYING, 0, 9000);
    n += header(reply + n, CLUSTER_IMAGE_COPYING, 9000, 9000);
    n += header(reply + n, CLUSTER_IMAGE_OK, size, size);
    for (size_t i = 0; i < size; i++)
        reply[n + i] = pattern(i);
    n += size;
    memcpy(reply + n, "EXTRA BYTES", 11);
    n += 11;
    peer *p = imagePeer(reply, n, false);
    char path[128], *err = NULL;
    snprintf(path, sizeof path, "%s/exact", tmpdir);
    long long bytes = -1;
    int rc = cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err);
    if (rc != 0)
        fail_msg("fetch: %s", err);
    assertOneImageRequest(p);
    assert_int_equal(bytes, (long long)size);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, (off_t)size);
    unsigned char *got = malloc(size);
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, got, size), (ssize_t)size);
    close(fd);
    assert_memory_equal(got, reply + 3 * CLUSTER_IMAGE_HEADER, size);
    free(got);
    unlink(path);

    /* An empty database: RQIMGOK 0 and nothing else. */
    header(reply, CLUSTER_IMAGE_OK, 0, 0);
    p = imagePeer(reply, CLUSTER_IMAGE_HEADER, false);
    bytes = -1;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), 0);
    assertOneImageRequest(p);
    assert_int_equal(bytes, 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    unlink(path);
    free(reply);
}

/* RQIMGER: the node's error text (up to CLUSTER_IMAGE_MAX_ERROR bytes) is
 * passed on; a longer length is refused unread; a text cut short fails. */
static void test_image_error_text(void **st)
{
    unsigned char reply[2 * CLUSTER_IMAGE_HEADER + CLUSTER_IMAGE_MAX_ERROR + 1];
    char text[CLUSTER_IMAGE_MAX_ERROR + 2];
    memset(text, 'e', sizeof text - 1);
    memcpy(text, "backup: ", 8);
    text[CLUSTER_IMAGE_MAX_ERROR] = 0;
    size_t n = header(reply, CLUSTER_IMAGE_COPYING, 5, 10);
    n += header(reply + n, CLUSTER_IMAGE_ERROR, CLUSTER_IMAGE_MAX_ERROR, 0);
    memcpy(reply + n, text, CLUSTER_IMAGE_MAX_ERROR);
    n += CLUSTER_IMAGE_MAX_ERROR;
    peer *p = imagePeer(reply, n, false);
    char path[128], *err = NULL;
    snprintf(path, sizeof path, "%s/error", tmpdir);
    long long bytes = -1;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    char *want = rq_sprintf("%s failed to copy its database: %s", p->addr, text);
    assertOneImageRequest(p);
    assert_string_equal(err, want);
    free(want);
    free(err);
    assert_int_equal(bytes, 0);
    assert_int_equal(access(path, F_OK), -1);

    /* One byte over the limit: refused without reading the text. */
    n = header(reply, CLUSTER_IMAGE_ERROR, CLUSTER_IMAGE_MAX_ERROR + 1, 0);
    memset(reply + n, 'x', CLUSTER_IMAGE_MAX_ERROR + 1);
    n += CLUSTER_IMAGE_MAX_ERROR + 1;
    p = imagePeer(reply, n, false);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    want = rq_sprintf("%s failed to copy its database", p->addr);
    assertOneImageRequest(p);
    assert_string_equal(err, want);
    free(want);
    free(err);

    /* The text announced is 100 bytes; 10 come. */
    n = header(reply, CLUSTER_IMAGE_ERROR, 100, 0);
    memcpy(reply + n, "backup: di", 10);
    p = imagePeer(reply, n + 10, false);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    assertOneImageRequest(p);
    assert_non_null(strstr(err, "closed the connection"));
    free(err);
    assert_int_equal(access(path, F_OK), -1);
}

/* A node that closes before size bytes: an error, never a short file (the
 * file is removed, even one that was there before). */
static void test_image_truncated(void **st)
{
    size_t size = 200000, sent = 100000;
    unsigned char *reply = malloc(2 * CLUSTER_IMAGE_HEADER + sent);
    size_t n = header(reply, CLUSTER_IMAGE_COPYING, 1, 2);
    n += header(reply + n, CLUSTER_IMAGE_OK, size, size);
    memset(reply + n, 'd', sent);
    n += sent;
    char path[128], *err = NULL;
    snprintf(path, sizeof path, "%s/truncated", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(write(fd, "old", 3), 3);
    close(fd);
    peer *p = imagePeer(reply, n, false);
    long long bytes = -1;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    assertOneImageRequest(p);
    assert_non_null(strstr(err, "truncated: 100000 of 200000 bytes"));
    free(err);
    assert_int_equal(bytes, 0);
    assert_int_equal(access(path, F_OK), -1);

    /* Cut inside the RQIMGOK header. */
    p = imagePeer(reply + CLUSTER_IMAGE_HEADER, 12, false);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    assertOneImageRequest(p);
    assert_non_null(strstr(err, "closed the connection"));
    free(err);
    assert_int_equal(access(path, F_OK), -1);

    /* A header that is none of the three, after progress. */
    memcpy(reply + CLUSTER_IMAGE_HEADER, "RQIMGXX\n", 8);
    p = imagePeer(reply, 2 * CLUSTER_IMAGE_HEADER, false);
    err = NULL;
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, NULL, NULL, &bytes, &err), -1);
    assertOneImageRequest(p);
    assert_non_null(strstr(err, "sent no database image"));
    free(err);
    free(reply);
}

typedef struct progressLog {
    int calls;
    bool copying;
    long long done, total;
} progressLog;

static int stopAtFirstReport(void *arg, bool copying, long long done, long long total)
{
    progressLog *l = arg;
    l->calls++;
    l->copying = copying;
    l->done = done;
    l->total = total;
    return 1;
}

/* While the bytes come, progress reports them (copying false, bytes so far
 * of size); abandoning then removes the partial file. Takes about a second:
 * the report period. */
static void test_image_abandoned_while_receiving(void **st)
{
    unsigned char reply[CLUSTER_IMAGE_HEADER + 400];
    size_t n = header(reply, CLUSTER_IMAGE_OK, 1000, 1000);
    memset(reply + n, 'p', 400);
    peer *p = imagePeer(reply, sizeof reply, true);
    char path[128], *err = NULL;
    snprintf(path, sizeof path, "%s/abandoned", tmpdir);
    progressLog log = {0};
    long long bytes = -1;
    int64_t t0 = rq_now_ms();
    assert_int_equal(cluster_fetch_image(NULL, p->addr, path, stopAtFirstReport, &log, &bytes, &err), -1);
    int64_t took = rq_now_ms() - t0;
    assertOneImageRequest(p);
    assert_string_equal(err, "transfer abandoned");
    free(err);
    assert_int_equal(log.calls, 1);
    assert_false(log.copying);
    assert_int_equal(log.done, 400);
    assert_int_equal(log.total, 1000);
    assert_true(took >= 900 && took < 5000);
    assert_int_equal(bytes, 0);
    assert_int_equal(access(path, F_OK), -1);
}

static int setupDir(void **st)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rq-cluster-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardownDir(void **st)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in rqlited */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_body),
        cmocka_unit_test(test_join_follows_redirect),
        cmocka_unit_test(test_join_retries_then_succeeds),
        cmocka_unit_test(test_join_gives_up),
        cmocka_unit_test(test_join_bad_peers),
        cmocka_unit_test(test_join_skips_self),
        cmocka_unit_test(test_join_target_forms),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_target_has_leader),
        cmocka_unit_test(test_forward_verbatim),
        cmocka_unit_test(test_forward_writes_fresh_connections),
        cmocka_unit_test(test_forward_failures),
        cmocka_unit_test(test_meta_probe),
        cmocka_unit_test(test_image_exact_size),
        cmocka_unit_test(test_image_error_text),
        cmocka_unit_test(test_image_truncated),
        cmocka_unit_test(test_image_abandoned_while_receiving),
    };
    return cmocka_run_group_tests(tests, setupDir, teardownDir);
}
