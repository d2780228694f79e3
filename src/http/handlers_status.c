/*
 * handlers_status.c: what a node says about itself. GET /status (rqlite's
 * status document, ?key=a.b for a part), GET /readyz (plain-text checks,
 * the first failing one answering 503) and /debug/vars (Go's expvar
 * layout, the counters rqlite's end-to-end tests read).
 *
 * These answer before the store is open too (main opens it after the HTTP
 * service, so that -bootstrap-expect peers can reach /notify).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "http/internal.h"
#include "util/os.h"

/* Go's field names and shapes (GOOS, GOARCH, ...), for the clients and
 * tests written against rqlite's /status. */
static json_t *statusDoc(http_server *h)
{
    const config *cfg = h->cfg;
    struct utsname un;
    uname(&un);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    char nowbuf[64], startbuf[64];
    strftime(nowbuf, sizeof nowbuf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    strftime(startbuf, sizeof startbuf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&h->start_time));
    char uptime[64];
    snprintf(uptime, sizeof uptime, "%lds", (long)(now - h->start_time));
    json_t *doc = json_object();
    json_object_set_new(doc, "build", json_pack("{s:s,s:s,s:s,s:s,s:s}", "version", RQ_VERSION,
                                                "commit", "unknown", "branch", "main", "build_time",
                                                __DATE__ " " __TIME__, "compiler", "gcc"));
    json_object_set_new(doc, "cluster", json_pack("{s:s,s:s,s:b}", "addr", cfg->raft_adv_addr,
                                                  "api_addr", cfg->http_api_url, "https", config_https(cfg)));
    char qtimeout[32];
    snprintf(qtimeout, sizeof qtimeout, "%llums", (unsigned long long)cfg->write_queue_timeout_ms);
    json_object_set_new(doc, "http", json_pack("{s:s,s:s,s:o,s:{s:{s:i,s:i,s:I,s:s}}}", "auth",
                                               cfg->creds ? "enabled" : "disabled", "bind_addr", cfg->http_addr,
                                               "tls", http_tls_status(h->tls), "queue", "_default", "batch_size",
                                               cfg->write_queue_batch_size, "max_size",
                                               cfg->write_queue_capacity, "sequence_number",
                                               (json_int_t)queue_sequence(h->queue), "timeout", qtimeout));
    json_object_set_new(doc, "node", json_pack("{s:s,s:s,s:s}", "current_time", nowbuf,
                                               "start_time", startbuf, "uptime", uptime));
    json_object_set_new(doc, "os", json_pack("{s:s,s:i,s:i,s:i}", "hostname", host, "page_size",
                                             (int)sysconf(_SC_PAGESIZE), "pid", (int)getpid(), "ppid",
                                             (int)getppid()));
    json_object_set_new(doc, "runtime", json_pack("{s:s,s:s,s:i,s:i}", "GOOS", "linux", "GOARCH",
                                                  un.machine, "num_cpu", (int)sysconf(_SC_NPROCESSORS_ONLN),
                                                  "GOMAXPROCS", (int)sysconf(_SC_NPROCESSORS_ONLN)));
    store *st = http_server_store(h);
    json_object_set_new(doc, "store", st ? store_status(st) : json_pack("{s:b}", "open", false));
    return doc;
}

enum MHD_Result handle_status(http_server *h, struct MHD_Connection *c, request *rq)
{
    json_t *doc = statusDoc(h);
    const char *key = params_value(c, "key");
    if (key && *key) {
        json_t *cur = doc;
        char *k = strdup(key), *save = NULL;
        for (char *part = strtok_r(k, ".", &save); part && cur; part = strtok_r(NULL, ".", &save))
            cur = json_object_get(cur, part);
        free(k);
        json_t *sub = cur && json_is_object(cur) ? json_incref(cur) : json_object();
        json_decref(doc);
        return respond_jansson(h, c, 200, sub, false);
    }
    return respond_jansson(h, c, 200, doc, params_has(c, "pretty"));
}

/* ?sync: wait until this node has applied what it knows to be committed,
 * polling every 10 ms (the store has no wait for it). */
static bool waitSynced(store *st, uint64_t timeout_ms)
{
    double deadline = rq_now_sec() + (double)timeout_ms / 1000.0;
    for (;;) {
        json_t *ss = store_status(st);
        json_t *raft = json_object_get(ss, "raft");
        bool synced = json_integer_value(json_object_get(raft, "applied_index")) >=
                      json_integer_value(json_object_get(raft, "commit_index"));
        json_decref(ss);
        if (synced)
            return true;
        if (rq_now_sec() >= deadline)
            return false;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* readyz's last check, as rqlite's: SELECT 1 on the local database. */
static bool dbAnswers(store *st)
{
    cmd_batch q;
    char *qerr = NULL;
    buf r = BUF_INIT;
    if (cmd_from_sql("SELECT 1", 8, &q, &qerr) == 0) {
        cmd_view v = cmd_batch_view(&q);
        store_read none = {.level = STORE_LEVEL_NONE};
        if (store_query(st, &v, 0, &none, &r, &qerr) != STORE_OK)
            buf_puts(&r, "\"error\"");
        cmd_batch_free(&q);
    }
    free(qerr);
    bool ok = r.data && strstr(r.data, "\"error\"") == NULL;
    buf_free(&r);
    return ok;
}

enum MHD_Result handle_readyz(http_server *h, struct MHD_Connection *c, request *rq)
{
    buf b = BUF_INIT;
    buf_puts(&b, "[+]node ok");
    if (params_has(c, "noleader"))
        return respond_buf(h, c, 200, "text/plain; charset=utf-8", &b);
    store *st = http_server_store(h);
    store_node leader;
    if (st == NULL || !store_leader(st, &leader)) {
        buf_puts(&b, "\n[+]leader does not exist");
        return respond_buf(h, c, 503, "text/plain; charset=utf-8", &b);
    }
    buf_puts(&b, "\n[+]leader ok");
    if (!store_ready(st)) {
        buf_puts(&b, "\n[+]store not ready");
        return respond_buf(h, c, 503, "text/plain; charset=utf-8", &b);
    }
    buf_puts(&b, "\n[+]store ok");
    if (params_has(c, "sync")) {
        uint64_t timeout;
        if (!params_timeout(c, 5000, &timeout)) {
            buf_free(&b);
            return respond_text(h, c, 400, "timeout is not a valid duration");
        }
        if (!waitSynced(st, timeout)) {
            buf_puts(&b, "\n[+]sync timeout");
            return respond_buf(h, c, 503, "text/plain; charset=utf-8", &b);
        }
        buf_puts(&b, "\n[+]sync ok");
    }
    bool ok = dbAnswers(st);
    buf_puts(&b, ok ? "\n[+]db ok" : "\n[+]db not ok");
    return respond_buf(h, c, ok ? 200 : 503, "text/plain; charset=utf-8", &b);
}

/* Go's os.Args, which expvar publishes: our own arguments as the kernel
 * keeps them (an argument longer than 4 KiB is split). */
static json_t *cmdline(void)
{
    json_t *args = json_array();
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (f == NULL)
        return args;
    char arg[4096];
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        if (ch == 0 || n == sizeof arg - 1) {
            arg[n] = 0;
            json_array_append_new(args, json_string(arg));
            n = 0;
        } else {
            arg[n++] = (char)ch;
        }
    }
    fclose(f);
    return args;
}

/* GET /debug/vars: expvar-style counters, in Go's expvar layout
 * ("{\n" + sorted "key": value lines joined by ",\n" + "\n}\n"). */
enum MHD_Result handle_vars(http_server *h, struct MHD_Connection *c, request *rq)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "cmdline", cmdline());
    long rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    json_object_set_new(doc, "memstats", json_pack("{s:I}", "Sys", (json_int_t)rss * sysconf(_SC_PAGESIZE)));
    store *st = http_server_store(h);
    json_t *ss = st ? store_status(st) : NULL;
    json_object_set_new(doc, "store", json_pack("{s:I,s:I}", "num_snapshots",
                                                json_integer_value(json_object_get(ss, "num_snapshots")),
                                                "num_restores",
                                                json_integer_value(json_object_get(ss, "num_restores"))));
    json_decref(ss);
    json_object_set_new(doc, "http", json_pack("{s:I}", "queued_sequence_number",
                                               (json_int_t)queue_sequence(h->queue)));
    const char *key = params_value(c, "key");
    buf b = BUF_INIT;
    buf_puts(&b, "{\n");
    const char *keys[] = {"cmdline", "http", "memstats", "store"};
    bool first = true;
    for (size_t i = 0; i < 4; i++) {
        if (key && *key && strcmp(key, keys[i]) != 0)
            continue;
        char *v = json_dumps(json_object_get(doc, keys[i]), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        buf_printf(&b, "%s\"%s\": %s", first ? "" : ",\n", keys[i], v ? v : "null");
        free(v);
        first = false;
    }
    buf_puts(&b, "\n}\n");
    json_decref(doc);
    return respond_buf(h, c, 200, "application/json; charset=utf-8", &b);
}
