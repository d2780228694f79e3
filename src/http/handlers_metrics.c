/*
 * handlers_metrics.c: GET /metrics (perm status), Prometheus' text format,
 * beyond rqlite (which offers expvar and OTLP only).
 *
 * Families: HTTP requests by endpoint and status with their latency, open
 * connections, queued writes and forwarded requests (this file); Raft,
 * FSM, snapshots, SQLite files and the read pool (store_metrics); every
 * number of /debug/vars, named after its section and key, so that the
 * counters of modules that add sections (uploader, cdc) appear too, as
 * rqlite_expvar_<section>_<key>; and
 * the process (memory, descriptors, threads, CPU), under the names
 * Prometheus' own client libraries use.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http/internal.h"
#include "util/os.h"

const unsigned http_codes[HTTP_N_CODES - 1] = {200, 204, 301, 302, 400, 401, 403, 404, 405, 408, 413, 429, 500, 503};

static void httpFamilies(http_server *h, buf *b)
{
    size_t n;
    const http_route *routes = router_routes(&n);
    metrics_family(b, "rqlite_http_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
    for (size_t r = 0; r <= n; r++) {
        for (int k = 0; k < HTTP_N_CODES; k++) {
            uint64_t v = __atomic_load_n(&h->codes[r][k], __ATOMIC_RELAXED);
            if (v == 0)
                continue;
            buf l = BUF_INIT;
            metrics_label(&l, "endpoint", r < n ? routes[r].path : "other");
            char code[16];
            snprintf(code, sizeof code, "%u", k < HTTP_N_CODES - 1 ? http_codes[k] : 0);
            metrics_label(&l, "code", k < HTTP_N_CODES - 1 ? code : "other");
            metrics_sample(b, "rqlite_http_requests_total", l.data, (double)v);
            buf_free(&l);
        }
    }
    metrics_family(b, "rqlite_http_request_duration_seconds", "histogram",
                   "Time from a request's headers to its response, by endpoint.");
    for (size_t r = 0; r <= n; r++) {
        if (__atomic_load_n(&h->latency[r].count, __ATOMIC_RELAXED) == 0)
            continue;
        buf l = BUF_INIT;
        metrics_label(&l, "endpoint", r < n ? routes[r].path : "other");
        metrics_hist_write(b, "rqlite_http_request_duration_seconds", l.data, &h->latency[r]);
        buf_free(&l);
    }
    pthread_mutex_lock(&h->conns_mu);
    int conns = h->n_conns;
    pthread_mutex_unlock(&h->conns_mu);
    metrics_one(b, "rqlite_http_connections", "gauge", "HTTP connections open.", conns);
    metrics_one(b, "rqlite_http_queued_writes", "gauge", "Queued writes (?queue) waiting for their batch.",
                h->queue ? queue_depth(h->queue) : 0);
    metrics_one(b, "rqlite_http_forwarded_requests_total", "counter", "Requests this node relayed to the leader.",
                (double)__atomic_load_n(&h->forwarded, __ATOMIC_RELAXED));
}

/* A metric name from expvar's section and key: lower case, [a-z0-9_]. */
static void metricName(char *out, size_t size, const char *section, const char *key, const char *suffix)
{
    snprintf(out, size, "rqlite_expvar_%s_%s%s", section, key, suffix);
    for (char *p = out; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '_';
        else
            *p = (char)tolower((unsigned char)*p);
}

static bool endsWith(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The maps whose every key is a counter, but sizes and durations. */
static bool counterSection(const char *section)
{
    static const char *const all[] = {"http", "cluster", "proxy", "queue", "proto", "db", "db.wal", "mux",
                                      "sql.processor"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(section, all[i]) == 0)
            return true;
    return false;
}

/* Every number of /debug/vars: "num_x", "x_total" and the counters of the
 * sections that hold only counters become rqlite_expvar_<section>_<x>_total;
 * durations (_duration and _duration_ms in milliseconds, _duration_us in
 * microseconds) become _seconds gauges; anything else a gauge. */
static void varsFamilies(http_server *h, buf *b)
{
    json_t *doc = http_vars_doc(h);
    const char *section;
    json_t *map;
    json_object_foreach(doc, section, map)
    {
        if (!json_is_object(map) || strcmp(section, "memstats") == 0)
            continue;
        bool counters = counterSection(section);
        const char *key;
        json_t *v;
        json_object_foreach(map, key, v)
        {
            if (!json_is_number(v))
                continue;
            double x = json_number_value(v);
            char name[256], base[200];
            const char *type, *help;
            size_t kl = strlen(key);
            const char *units[][2] = {{"_duration", "1e3"}, {"_duration_ms", "1e3"}, {"_duration_us", "1e6"}};
            int unit = -1;
            for (int u = 0; u < 3; u++)
                if (endsWith(key, units[u][0]))
                    unit = u;
            if (unit >= 0) {
                size_t cut = strlen(units[unit][0]) - strlen("_duration");
                snprintf(base, sizeof base, "%.*s", (int)(kl - cut), key);
                metricName(name, sizeof name, section, base, "_seconds");
                type = "gauge", help = "expvar duration (the latest), in seconds.";
                x /= atof(units[unit][1]);
            } else if (strcmp(key, "queued_sequence_number") != 0 &&
                       (strncmp(key, "num_", 4) == 0 || endsWith(key, "_total") ||
                        (counters && !endsWith(key, "_size")))) {
                const char *k = strncmp(key, "num_", 4) == 0 ? key + 4 : key;
                metricName(name, sizeof name, section, k, endsWith(k, "_total") ? "" : "_total");
                type = "counter", help = "expvar counter.";
            } else {
                metricName(name, sizeof name, section, key, "");
                type = "gauge", help = "expvar value.";
            }
            char full[512];
            snprintf(full, sizeof full, "/debug/vars %s.%s: %s", section, key, help);
            metrics_one(b, name, type, full, x);
        }
    }
    json_decref(doc);
}

static long countFds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void processFamilies(buf *b)
{
    rq_proc_stats ps;
    rq_proc_read(&ps);
    metrics_one(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", (double)ps.rss);
    metrics_one(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", (double)ps.vsize);
    metrics_one(b, "process_open_fds", "gauge", "Number of open file descriptors.", (double)countFds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metrics_one(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", (double)rl.rlim_cur);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        metrics_one(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                    (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                        ru.ru_stime.tv_usec / 1e6);
    metrics_one(b, "rqlite_process_threads", "gauge", "Threads of this process.", (double)ps.threads);
}

enum MHD_Result handle_metrics(http_server *h, struct MHD_Connection *c, request *rq)
{
    (void)rq;
    buf b = BUF_INIT;
    httpFamilies(h, &b);
    store *st = http_server_store(h);
    if (st)
        store_metrics(st, &b);
    varsFamilies(h, &b);
    processFamilies(&b);
    metrics_one(&b, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.",
                (double)h->start_real.tv_sec + h->start_real.tv_nsec / 1e9);
    return respond_buf(h, c, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
