/*
 * rqbench: the load generator behind bench/run.
 *
 *   rqbench http [-c clients] [-n requests] [-d seconds] [-X GET|POST|PUT] [-b body]
 *                [--cacert FILE] [--fresh] [--unique] [--expect TEXT] URL
 *       keep-alive HTTP load (one connection per client thread; --fresh: a
 *       new connection, and for https:// a new TLS handshake, per request;
 *       --cacert: the CA to verify an https:// node with; --unique: URL is a
 *       prefix, each request goes to URL<client>-<i>, a key of its own;
 *       --expect: a 200 whose body does not begin with TEXT is an error too,
 *       for servers that answer errors with 200); prints
 *       "requests secs req_per_s p50_us p99_us p999_us errors"
 *   rqbench fsync DIR [-n writes]
 *       fdatasync latency of 4 KiB appends in DIR: "p50_us p99_us"
 *   rqbench sqlite DIR
 *       raw SQLite (WAL, synchronous=FULL), one connection: "single_tx_per_s
 *       batch_rows_per_s" (single-row INSERT transactions; 1,000-row ones)
 *
 * Every loop is bounded by a count and a duration.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpD(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* ---- http ----------------------------------------------------------------- */

#define EXPECT_MAX 64 /* --expect compares at most this many bytes */

typedef struct client {
    pthread_t t;
    const char *url, *method, *body;
    const char *cacert; /* https: the CA to verify with, or NULL */
    bool fresh;         /* a new connection per request */
    bool unique;        /* url is a prefix: append "<client>-<i>" per request */
    const char *expect; /* the body must begin with this, or NULL */
    int id;             /* client number, for unique keys */
    char head[EXPECT_MAX]; /* the first bytes of the current response body */
    size_t headLen;
    long max;           /* requests for this client */
    double deadline;
    double *lat;        /* seconds */
    long n, errors;
} client;

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    client *c = u;
    size_t len = s * n, room = sizeof c->head - c->headLen;
    size_t k = len < room ? len : room;
    memcpy(c->head + c->headLen, p, k);
    c->headLen += k;
    return len;
}

static void *run(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (c->fresh) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L); /* a full handshake each time */
    }
    if (strcmp(c->method, "POST") == 0 || strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        if (c->method[1] == 'U')
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    size_t expectLen = c->expect ? strlen(c->expect) : 0;
    size_t urlCap = strlen(c->url) + 48;
    char *url = c->unique ? malloc(urlCap) : NULL;
    while (c->n < c->max && now() < c->deadline) {
        if (url) {
            snprintf(url, urlCap, "%s%d-%ld", c->url, c->id, c->n);
            curl_easy_setopt(h, CURLOPT_URL, url);
        }
        c->headLen = 0;
        double t0 = now();
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status != 200 ||
            (c->expect && (c->headLen < expectLen || memcmp(c->head, c->expect, expectLen) != 0)))
            c->errors++;
        c->lat[c->n++] = now() - t0;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(url);
    return NULL;
}

static int httpMode(int argc, char **argv)
{
    int clients = 1;
    long total = 1000;
    double secs = 10;
    const char *method = "GET", *body = NULL, *url = NULL, *cacert = NULL, *expect = NULL;
    bool fresh = false, unique = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) total = atol(argv[++i]);
        else if (!strcmp(argv[i], "-d") && i + 1 < argc) secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "-X") && i + 1 < argc) method = argv[++i];
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) body = argv[++i];
        else if (!strcmp(argv[i], "--cacert") && i + 1 < argc) cacert = argv[++i];
        else if (!strcmp(argv[i], "--fresh")) fresh = true;
        else if (!strcmp(argv[i], "--unique")) unique = true;
        else if (!strcmp(argv[i], "--expect") && i + 1 < argc) expect = argv[++i];
        else url = argv[i];
    }
    if (url == NULL || clients < 1 || total < 1 ||
        (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "PUT")) ||
        (expect && strlen(expect) > EXPECT_MAX)) {
        fprintf(stderr, "usage: rqbench http [-c N] [-n N] [-d S] [-X GET|POST|PUT] [-b BODY] [--cacert FILE] "
                        "[--fresh] [--unique] [--expect TEXT (<= 64 bytes)] URL\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    client *cs = calloc((size_t)clients, sizeof *cs);
    double start = now();
    for (int i = 0; i < clients; i++) {
        cs[i].url = url;
        cs[i].method = method;
        cs[i].body = body;
        cs[i].cacert = cacert;
        cs[i].fresh = fresh;
        cs[i].unique = unique;
        cs[i].expect = expect;
        cs[i].id = i;
        cs[i].max = total / clients + (i < total % clients);
        cs[i].deadline = start + secs;
        cs[i].lat = malloc(sizeof(double) * (size_t)(cs[i].max ? cs[i].max : 1));
        pthread_create(&cs[i].t, NULL, run, &cs[i]);
    }
    long n = 0, errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(cs[i].t, NULL);
        n += cs[i].n;
        errors += cs[i].errors;
    }
    double elapsed = now() - start;
    double *all = malloc(sizeof(double) * (size_t)(n ? n : 1));
    long k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, cs[i].lat, sizeof(double) * (size_t)cs[i].n);
        k += cs[i].n;
        free(cs[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, cmpD);
    printf("%ld %.2f %.0f %.0f %.0f %.0f %ld\n", n, elapsed, (double)n / elapsed,
           pct(all, (size_t)n, 0.50) * 1e6, pct(all, (size_t)n, 0.99) * 1e6,
           pct(all, (size_t)n, 0.999) * 1e6, errors);
    free(all);
    free(cs);
    curl_global_cleanup();
    return errors ? 1 : 0;
}

/* ---- floor: fdatasync ------------------------------------------------------- */

static int fsyncMode(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rqbench fsync DIR [-n writes]\n");
        return 2;
    }
    int n = argc > 4 && !strcmp(argv[3], "-n") ? atoi(argv[4]) : 200;
    char path[4096];
    snprintf(path, sizeof path, "%s/rqbench-fsync.tmp", argv[2]);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char block[4096];
    memset(block, 'x', sizeof block);
    double *lat = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double t0 = now();
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            perror("write/fdatasync");
            close(fd);
            return 1;
        }
        lat[i] = now() - t0;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)n, sizeof *lat, cmpD);
    printf("%.0f %.0f\n", pct(lat, (size_t)n, 0.5) * 1e6, pct(lat, (size_t)n, 0.99) * 1e6);
    free(lat);
    return 0;
}

/* ---- anchor: raw SQLite ------------------------------------------------------- */

static int sqliteMode(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rqbench sqlite DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/rqbench.sqlite", argv[2]);
    unlink(path);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return 1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", NULL, NULL, NULL);
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES ('benchmark row')", -1, &ins, NULL);
    /* single-row transactions, up to 2 s or 5,000 */
    double t0 = now();
    long singles = 0;
    while (singles < 100000 && now() - t0 < 2) {
        sqlite3_step(ins);
        sqlite3_reset(ins);
        singles++;
    }
    double single_rate = (double)singles / (now() - t0);
    /* 1,000-row transactions, up to 2 s or 100 */
    t0 = now();
    long rows = 0;
    for (int b = 0; b < 100 && now() - t0 < 2; b++) {
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (int i = 0; i < 1000; i++) {
            sqlite3_step(ins);
            sqlite3_reset(ins);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        rows += 1000;
    }
    double batch_rate = (double)rows / (now() - t0);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    char wal[4200];
    unlink(path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
    printf("%.0f %.0f\n", single_rate, batch_rate);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "http"))
        return httpMode(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "fsync"))
        return fsyncMode(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "sqlite"))
        return sqliteMode(argc, argv);
    fprintf(stderr, "usage: rqbench http|fsync|sqlite ...\n");
    return 2;
}
