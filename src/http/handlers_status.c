/*
 * handlers_status.c: what a node says about itself. GET /status (rqlite's
 * status document, ?key=a.b for a part), GET /readyz (plain-text checks,
 * the first failing one answering 503), /debug/vars (Go's expvar layout,
 * rqlite's counters), /debug/pprof (what there is instead of Go's
 * profiles) and /licenses.
 *
 * These answer before the store is open too (main opens it after the HTTP
 * service, so that -bootstrap-expect peers can reach /notify).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "http/internal.h"
#include "util/duration.h"
#include "util/os.h"

/* Go's time.Time in JSON (RFC 3339 with nanoseconds, UTC). */
static json_t *goTime(const struct timespec *t)
{
    struct tm tm;
    gmtime_r(&t->tv_sec, &tm);
    char date[32], out[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%09ldZ", date, t->tv_nsec);
    return json_string(out);
}

/* rqlite's extension store (-extensions-path): its directory and the
 * names of what it holds, which every SQLite connection loads. */
static json_t *extensionsStatus(const config *cfg)
{
    json_t *names = json_array();
    for (int i = 0; i < cfg->n_extensions; i++) {
        const char *slash = strrchr(cfg->extensions[i], '/');
        json_array_append_new(names, json_string(slash ? slash + 1 : cfg->extensions[i]));
    }
    return json_pack("{s:s,s:o}", "dir", cfg->extensions_dir ? cfg->extensions_dir : "", "names", names);
}

/* Go's field names and shapes (GOOS, GOARCH, ...), for the clients and
 * tests written against rqlite's /status. */
static json_t *statusDoc(http_server *h)
{
    const config *cfg = h->cfg;
    struct utsname un;
    uname(&un);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct timespec now, mono;
    clock_gettime(CLOCK_REALTIME, &now);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    char uptime[48];
    int64_t up_ns = (int64_t)(mono.tv_sec - h->start_mono.tv_sec) * 1000000000LL +
                    (mono.tv_nsec - h->start_mono.tv_nsec);
    rq_duration_format(up_ns, uptime, sizeof uptime);
    json_t *doc = json_object();
    json_object_set_new(doc, "build", json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "version", RQ_VERSION, "commit",
                                                "unknown", "branch", "main", "build_time", __DATE__ " " __TIME__,
                                                "compiler", "gcc", "compiler_toolchain", __VERSION__));
    json_object_set_new(doc, "cluster", json_pack("{s:s,s:s,s:b}", "addr", cfg->raft_adv_addr,
                                                  "api_addr", cfg->http_api_url, "https", config_https(cfg)));
    char qtimeout[48], ctimeout[48];
    rq_duration_format((int64_t)cfg->write_queue_timeout_ms * 1000000, qtimeout, sizeof qtimeout);
    rq_duration_format((int64_t)cfg->cluster_connect_timeout_ms * 1000000, ctimeout, sizeof ctimeout);
    json_t *http = json_pack("{s:s,s:s,s:o,s:{s:{s:i,s:i,s:I,s:s}},s:{s:s,s:s}}", "auth",
                             cfg->creds ? "enabled" : "disabled", "bind_addr", cfg->http_addr, "tls",
                             http_tls_status(h->tls), "queue", "_default", "batch_size", cfg->write_queue_batch_size,
                             "max_size", cfg->write_queue_capacity, "sequence_number",
                             (json_int_t)queue_sequence(h->queue), "timeout", qtimeout, "cluster", "timeout",
                             ctimeout, "local_node_addr", cfg->raft_adv_addr);
    if (cfg->http_allow_origin && *cfg->http_allow_origin)
        json_object_set_new(http, "allow_origin", json_string(cfg->http_allow_origin));
    json_object_set_new(http, "tls_cert_fetched", json_integer((json_int_t)http_tls_cert_fetches(h->tls)));
    json_object_set_new(doc, "http", http);
    json_object_set_new(doc, "node", json_pack("{s:o,s:o,s:s}", "current_time", goTime(&now), "start_time",
                                               goTime(&h->start_real), "uptime", uptime));
    json_t *os = json_pack("{s:s,s:i,s:i,s:i}", "hostname", host, "page_size", (int)sysconf(_SC_PAGESIZE), "pid",
                           (int)getpid(), "ppid", (int)getppid());
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        json_object_set_new(os, "executable", json_string(exe));
    }
    json_object_set_new(doc, "os", os);
    json_object_set_new(doc, "runtime", json_pack("{s:s,s:s,s:i,s:i}", "GOOS", "linux", "GOARCH",
                                                  un.machine, "num_cpu", (int)sysconf(_SC_NPROCESSORS_ONLN),
                                                  "GOMAXPROCS", (int)sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(doc, "extensions", extensionsStatus(cfg));
    store *st = http_server_store(h);
    json_object_set_new(doc, "store", st ? store_status(st) : json_pack("{s:b}", "open", false));
    int nsec = __atomic_load_n(&h->n_status_sections, __ATOMIC_ACQUIRE);
    for (int i = 0; i < nsec; i++) {
        const struct httpSection *sec = &h->status_sections[i];
        json_object_set_new(doc, sec->key, sec->fn(sec->arg));
    }
    return doc;
}

static void addSection(struct httpSection *secs, int *n, const char *key, http_section_fn fn, void *arg)
{
    int i = __atomic_load_n(n, __ATOMIC_ACQUIRE);
    if (i >= HTTP_MAX_SECTIONS)
        return;
    secs[i] = (struct httpSection){key, fn, arg};
    __atomic_store_n(n, i + 1, __ATOMIC_RELEASE);
}

void http_server_add_status(http_server *h, const char *key, http_section_fn fn, void *arg)
{
    addSection(h->status_sections, &h->n_status_sections, key, fn, arg);
}

void http_server_add_vars(http_server *h, const char *key, http_section_fn fn, void *arg)
{
    addSection(h->vars_sections, &h->n_vars_sections, key, fn, arg);
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
        if (!params_timeout(c, 30000, &timeout)) {
            buf_free(&b);
            return respond_text(h, c, 400, "timeout is not a valid duration");
        }
        /* Everything the leader had committed when asked, applied here. */
        if (!store_wait_synced(st, timeout)) {
            buf_puts(&b, "\n[+]sync timeout");
            return respond_buf(h, c, 503, "text/plain; charset=utf-8", &b);
        }
        buf_puts(&b, "\n[+]sync ok");
    }
    bool ok = dbAnswers(st);
    buf_puts(&b, ok ? "\n[+]db ok" : "\n[+]db not ok");
    return respond_buf(h, c, ok ? 200 : 503, "text/plain; charset=utf-8", &b);
}

static int cmpKey(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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

/* The maps of /debug/vars the HTTP layer keeps (HSTAT_*), and their
 * counters' names in rqlite's. */
static const struct {
    const char *map, *name;
} stat_names[HSTAT_N] = {
    [HSTAT_LEADER_NOT_FOUND] = {"http", "leader_not_found"},
    [HSTAT_EXECUTIONS] = {"http", "executions"},
    [HSTAT_EXECUTE_STMTS_RX] = {"http", "execute_stmts_rx"},
    [HSTAT_QUEUED_EXECUTIONS] = {"http", "queued_executions"},
    [HSTAT_QUEUED_EXECUTIONS_WAIT] = {"http", "queued_executions_wait"},
    [HSTAT_QUEUED_EXECUTIONS_WAIT_TIMEOUT] = {"http", "queued_executions_wait_timeout"},
    [HSTAT_QUERIES] = {"http", "queries"},
    [HSTAT_QUERY_STMTS_RX] = {"http", "query_stmts_rx"},
    [HSTAT_REQUESTS] = {"http", "requests"},
    [HSTAT_REQUEST_STMTS_RX] = {"http", "request_stmts_rx"},
    [HSTAT_READYZ] = {"http", "num_readyz"},
    [HSTAT_STATUS] = {"http", "num_status"},
    [HSTAT_BACKUPS] = {"http", "backups"},
    [HSTAT_LOADS] = {"http", "loads"},
    [HSTAT_BOOT] = {"http", "boot"},
    [HSTAT_USER_SNAPSHOTS] = {"http", "user_snapshots"},
    [HSTAT_USER_REAPS] = {"http", "user_reaps"},
    [HSTAT_SQL_ANALYZE] = {"http", "sql_analyze"},
    [HSTAT_UI] = {"http", "ui"},
    [HSTAT_AUTH_OK] = {"http", "auth_ok"},
    [HSTAT_AUTH_FAIL] = {"http", "auth_fail"},
    [HSTAT_QUEUED_EXECUTIONS_OK] = {"http", "queued_executions_ok"},
    [HSTAT_QUEUED_EXECUTIONS_STMTS_RX] = {"http", "queued_executions_num_stmts_rx"},
    [HSTAT_QUEUED_EXECUTIONS_STMTS_TX] = {"http", "queued_executions_num_stmts_tx"},
    [HSTAT_QUEUED_EXECUTIONS_NO_LEADER] = {"http", "queued_executions_no_leader"},
    [HSTAT_QUEUED_EXECUTIONS_NOT_LEADER] = {"http", "queued_executions_not_leader"},
    [HSTAT_QUEUED_EXECUTIONS_LEADERSHIP_LOST] = {"http", "queued_executions_leadership_lost"},
    [HSTAT_QUEUED_EXECUTIONS_UNKNOWN_ERROR] = {"http", "queued_executions_unknown_error"},
    [HSTAT_QUEUED_EXECUTIONS_FAILED] = {"http", "queued_executions_failed"},
    [HSTAT_JOIN_REQ] = {"cluster", "num_join_req"},
    [HSTAT_NOTIFY_REQ] = {"cluster", "num_notify_req"},
    [HSTAT_REMOTE_EXECUTIONS] = {"proxy", "remote_executions"},
    [HSTAT_REMOTE_EXECUTIONS_FAILED] = {"proxy", "remote_executions_failed"},
    [HSTAT_REMOTE_QUERIES] = {"proxy", "remote_queries"},
    [HSTAT_REMOTE_QUERIES_FAILED] = {"proxy", "remote_queries_failed"},
    [HSTAT_REMOTE_REQUESTS] = {"proxy", "remote_requests"},
    [HSTAT_REMOTE_REQUESTS_FAILED] = {"proxy", "remote_requests_failed"},
    [HSTAT_REMOTE_LOADS] = {"proxy", "remote_loads"},
    [HSTAT_REMOTE_BACKUPS] = {"proxy", "remote_backups"},
    [HSTAT_REMOTE_REMOVE_NODE] = {"proxy", "remote_remove_node"},
    [HSTAT_REMOTE_STEPDOWNS] = {"proxy", "remote_stepdowns"},
};

/* Go's runtime.MemStats has no counterpart in C: our process's real
 * figures under its names, from the kernel (Sys: resident bytes, as
 * before) and glibc's allocator (mallinfo2: Alloc and HeapAlloc the bytes
 * in use, HeapInuse the same plus mmap'd chunks, HeapIdle the free bytes
 * it holds, HeapSys all it got, HeapReleased what it could give back),
 * plus the peak resident size (PeakRSS, ours). No GC figures: none exist. */
static json_t *memstats(void)
{
    rq_proc_stats ps;
    rq_proc_read(&ps);
    struct mallinfo2 mi = mallinfo2();
    json_int_t inuse = (json_int_t)mi.uordblks, mapped = (json_int_t)mi.hblkhd;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "Sys", (json_int_t)ps.rss, "Alloc",
                     inuse + mapped, "HeapAlloc", inuse + mapped, "HeapInuse", inuse + mapped, "HeapIdle",
                     (json_int_t)mi.fordblks, "HeapSys", (json_int_t)mi.arena + mapped, "HeapReleased",
                     (json_int_t)mi.keepcost, "PeakRSS", (json_int_t)ps.peak_rss);
}

/* GET /debug/vars: Go's expvar layout ("{\n" + sorted "key": value lines
 * joined by ",\n" + "\n}\n"), with rqlite's maps and counter names: cmdline,
 * memstats, and every map rqlite v10 has, each with all its keys: http,
 * proxy and the cluster requests that reach us over HTTP (this layer's),
 * queue, proto and sql.processor (command), cluster (the cluster module),
 * store, db, db.wal, mux, snapshot and snapshot.plan (the store's), and
 * the sections other modules register (uploader, downloader, cdc.service,
 * the auto-restore keys of store). ?key=X: that entry only. */
json_t *http_vars_doc(http_server *h)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "cmdline", cmdline());
    json_object_set_new(doc, "memstats", memstats());
    json_t *http = json_pack("{s:I}", "queued_sequence_number", (json_int_t)queue_sequence(h->queue));
    json_t *clus = cluster_vars(), *proxy = json_object();
    for (int i = 1; i < HSTAT_N; i++) {
        const char *map = stat_names[i].map;
        json_t *into = strcmp(map, "http") == 0 ? http : strcmp(map, "proxy") == 0 ? proxy : clus;
        json_object_set_new(into, stat_names[i].name,
                            json_integer((json_int_t)__atomic_load_n(&h->stats[i], __ATOMIC_RELAXED)));
    }
    json_object_set_new(http, "tls_cert_fetched", json_integer((json_int_t)http_tls_cert_fetches(h->tls)));
    json_object_set_new(doc, "http", http);
    json_object_set_new(doc, "proxy", proxy);
    json_object_set_new(doc, "cluster", clus);
    json_object_set_new(doc, "queue", queue_vars(h->queue));
    json_object_set_new(doc, "proto", command_vars());
    json_object_set_new(doc, "sql.processor", command_sql_vars());
    store_vars_sections(http_server_store(h), doc);
    int nsec = __atomic_load_n(&h->n_vars_sections, __ATOMIC_ACQUIRE);
    for (int i = 0; i < nsec; i++) {
        const struct httpSection *sec = &h->vars_sections[i];
        json_t *part = sec->fn(sec->arg), *have = json_object_get(doc, sec->key);
        if (have && json_is_object(have) && json_is_object(part)) {
            json_object_update(have, part);
            json_decref(part);
        } else {
            json_object_set_new(doc, sec->key, part);
        }
    }
    return doc;
}

enum MHD_Result handle_vars(http_server *h, struct MHD_Connection *c, request *rq)
{
    json_t *doc = http_vars_doc(h);
    const char *key = params_value(c, "key");
    buf b = BUF_INIT;
    buf_puts(&b, "{\n");
    bool first = true;
    const char *k;
    json_t *v;
    void *tmp;
    /* jansson keeps insertion order: sort as Go's expvar.Do does. */
    /* Our maps (below 32) and the registered sections. */
    const char *keys[32 + HTTP_MAX_SECTIONS];
    size_t nk = 0;
    json_object_foreach_safe(doc, tmp, k, v)
    {
        if (nk < sizeof keys / sizeof *keys)
            keys[nk++] = k;
    }
    qsort(keys, nk, sizeof *keys, cmpKey);
    for (size_t i = 0; i < nk; i++) {
        if (key && *key && strcmp(key, keys[i]) != 0)
            continue;
        char *text = json_dumps(json_object_get(doc, keys[i]), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        buf_printf(&b, "%s\"%s\": %s", first ? "" : ",\n", keys[i], text ? text : "null");
        free(text);
        first = false;
    }
    buf_puts(&b, "\n}\n");
    json_decref(doc);
    return respond_buf(h, c, 200, "application/json; charset=utf-8", &b);
}

/* GET /debug/pprof/...: Go's profiles do not exist in a C program. The
 * command line is served as Go's pprof serves it (arguments joined by NUL
 * bytes); every other path gets a short index saying what there is. */
enum MHD_Result handle_pprof(http_server *h, struct MHD_Connection *c, request *rq)
{
    buf b = BUF_INIT;
    if (strcmp(rq->url, "/debug/pprof/cmdline") == 0) {
        json_t *args = cmdline();
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a)
        {
            if (i)
                buf_putc(&b, '\0');
            buf_puts(&b, json_string_value(a));
        }
        json_decref(args);
        return respond_buf(h, c, 200, "text/plain; charset=utf-8", &b);
    }
    buf_puts(&b, "/debug/pprof/\n\n"
                 "rqlited is written in C: Go's runtime profiles (heap, goroutine, profile, trace...)\n"
                 "do not exist here. Available:\n"
                 "  /debug/pprof/cmdline  the command line, arguments separated by NUL bytes\n"
                 "  /debug/vars           counters (expvar layout)\n"
                 "  /status               node, store, Raft and SQLite status\n");
    return respond_buf(h, c, 200, "text/plain; charset=utf-8", &b);
}

/* GET /licenses: the licences of what rqlited is built from. */
enum MHD_Result handle_licenses(http_server *h, struct MHD_Connection *c, request *rq)
{
    buf b = BUF_INIT;
    buf_puts(&b, "rqlited (C) links the following libraries; each is used under its own licence:\n\n"
                 "SQLite            public domain\n"
                 "canonical/raft    LGPL-3.0-only, with a static linking exception\n"
                 "libuv             MIT\n"
                 "libmicrohttpd     LGPL-2.1-or-later\n"
                 "GnuTLS            LGPL-2.1-or-later\n"
                 "jansson           MIT\n"
                 "libcurl           curl (MIT-style)\n"
                 "zlib              Zlib\n"
                 "LZ4               BSD-2-Clause\n"
                 "libarchive        BSD-2-Clause\n"
                 "libxcrypt         LGPL-2.1-or-later\n"
                 "libedit (shell)   BSD-3-Clause\n");
    return respond_buf(h, c, 200, "text/plain; charset=utf-8", &b);
}
