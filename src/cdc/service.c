/*
 * service.c: the CDC service (rqlite's cdc/service.go): the capture sink,
 * the leader's sender, the high-water mark, the counters.
 *
 * The sender reads the queue above its cursor, at most max_batch_size
 * entries, and waits up to max_batch_delay for a batch to fill. It starts
 * each term as leader from the HWM, which is where the cluster is known to
 * have delivered to. A failed POST (not 200 or 202, or no answer within
 * transmit_timeout) is retried after transmit_min_backoff (linear), or
 * twice the last wait up to transmit_max_backoff (exponential, doubled
 * before the first retry as rqlite does); after transmit_max_retries
 * attempts the batch is dropped (logged, dropped_failed_to_send). Losing
 * leadership stops the retries: the next leader sends from its HWM.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cdc/cdc.h"
#include "cluster/cluster.h"
#include "util/log.h"
#include "util/os.h"

/* rqlite's expvar names (cdc.service), in its order. */
enum {
    ST_DROPPED, ST_RETRIES, ST_TX_OK, ST_TX_FAILED, ST_BYTES_TX, ST_SNAPSHOT_SYNC, ST_BATCHER_WRITES,
    ST_BATCHER_EVENTS, ST_BATCHER_READS, ST_BATCHER_IGNORED, ST_FIFO_IGNORED, ST_HWM_IGNORED, ST_N
};
static const char *const stat_names[ST_N] = {
    "dropped_failed_to_send", "retries", "num_events_tx_ok", "num_events_tx_failed", "num_bytes_tx",
    "snapshot_sync", "batcher_writes", "batcher_events_write", "batcher_reads", "batcher_write_ignored",
    "fifo_enqueue_ignored", "hwm_ignored",
};

struct cdc_service {
    cdc_config cfg;
    char *node_id, *dir;
    tls_ctx *node_tls;
    cdc_fifo *fifo;
    db_cdc_sink sink;
    cdc_cluster cl;
    _Atomic uint64_t hwm;       /* delivered by the cluster up to here */
    _Atomic bool leader;        /* the sender's view */
    _Atomic uint64_t stats[ST_N];
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* something queued, or stopping */
    bool stop;                  /* mu */
    bool started;
    pthread_t sender, hwmer;
    CURL *curl;                 /* the sender's, kept for keep-alive */
    struct curl_slist *headers;
    struct curl_slist *connect_to; /* tls.server_name */
};

static void count(cdc_service *s, int st, uint64_t n) { atomic_fetch_add(&s->stats[st], n); }

/* ---- capture sink: on the Raft thread ------------------------------------- */

static bool sinkWant(void *arg, const char *table)
{
    cdc_service *s = arg;
    return cdc_config_wants(&s->cfg, table);
}

static uint64_t countEvents(const char *json, size_t len)
{
    uint64_t n = 0;
    const char *end = json + len;
    for (const char *p = json; p && p < end; p++) {
        p = memmem(p, (size_t)(end - p), "{\"op\":", 6);
        if (p == NULL)
            break;
        n++;
    }
    return n;
}

static int sinkEntry(void *arg, uint64_t index, int64_t ts_ms, const char *events, size_t len)
{
    cdc_service *s = arg;
    if (index <= atomic_load(&s->hwm)) {
        /* Delivered already (a follower behind the leader's HWM). */
        count(s, ST_BATCHER_IGNORED, 1);
        return 0;
    }
    int rc = cdc_fifo_enqueue(s->fifo, index, ts_ms, events, len);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        count(s, ST_FIFO_IGNORED, 1);
        return 0;
    }
    count(s, ST_BATCHER_WRITES, 1);
    count(s, ST_BATCHER_EVENTS, countEvents(events, len));
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int sinkSync(void *arg)
{
    cdc_service *s = arg;
    count(s, ST_SNAPSHOT_SYNC, 1);
    return cdc_fifo_sync(s->fifo);
}

/* ---- envelope ---------------------------------------------------------------- */

void cdc_envelope(buf *out, const char *service_id, const char *node_id, const cdc_entry *e, int n)
{
    buf_putc(out, '{');
    if (service_id && *service_id) {
        buf_puts(out, "\"service_id\":");
        buf_json_cstr(out, service_id);
        buf_putc(out, ',');
    }
    buf_puts(out, "\"node_id\":");
    buf_json_cstr(out, node_id);
    buf_puts(out, ",\"payload\":[");
    for (int i = 0; i < n; i++) {
        buf_printf(out, "%s{\"index\":%llu", i ? "," : "", (unsigned long long)e[i].index);
        if (e[i].ts_ms) /* omitempty */
            buf_printf(out, ",\"commit_timestamp\":%lld", (long long)e[i].ts_ms);
        buf_puts(out, ",\"events\":");
        buf_append(out, e[i].events, e[i].len);
        buf_putc(out, '}');
    }
    buf_puts(out, "]}");
}

/* ---- sending ------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* The endpoint's host replaced by tls.server_name, reached at the real
 * host through CURLOPT_CONNECT_TO: curl then sends it as SNI and verifies
 * the certificate against it, as Go's tls.Config.ServerName does. */
static void serverName(cdc_service *s)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *url = NULL;
    if (curl_url_set(u, CURLUPART_URL, s->cfg.endpoint, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_HOST, s->cfg.server_name, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
        char *map = rq_sprintf("%s:%s:%s:%s", s->cfg.server_name, port, host, port);
        char *hosthdr = rq_sprintf("Host: %s:%s", host, port);
        s->connect_to = curl_slist_append(s->connect_to, map);
        s->headers = curl_slist_append(s->headers, hosthdr);
        curl_easy_setopt(s->curl, CURLOPT_CONNECT_TO, s->connect_to);
        curl_easy_setopt(s->curl, CURLOPT_URL, url);
        free(map);
        free(hosthdr);
    }
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
}

static void curlSetup(cdc_service *s)
{
    s->curl = curl_easy_init();
    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(s->curl, CURLOPT_URL, s->cfg.endpoint);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)(s->cfg.transmit_timeout_ns / 1000000));
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, discard);
    if (s->cfg.ca_cert_file)
        curl_easy_setopt(s->curl, CURLOPT_CAINFO, s->cfg.ca_cert_file);
    if (s->cfg.cert_file) {
        curl_easy_setopt(s->curl, CURLOPT_SSLCERT, s->cfg.cert_file);
        curl_easy_setopt(s->curl, CURLOPT_SSLKEY, s->cfg.key_file);
    }
    if (s->cfg.insecure_skip_verify) {
        curl_easy_setopt(s->curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(s->curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (s->cfg.server_name && strncmp(s->cfg.endpoint, "https://", 8) == 0)
        serverName(s);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->headers);
}

/* One attempt: 0 when the endpoint took the batch (200 or 202). */
static int transmit(cdc_service *s, const buf *body, char *why, size_t why_size)
{
    count(s, ST_BYTES_TX, body->len);
    if (strcasecmp(s->cfg.endpoint, "stdout") == 0) {
        if (fwrite(body->data, 1, body->len, stdout) != body->len || fputc('\n', stdout) == EOF ||
            fflush(stdout) != 0) {
            snprintf(why, why_size, "cannot write to stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    CURLcode rc = curl_easy_perform(s->curl);
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        snprintf(why, why_size, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200 && status != 202) {
        snprintf(why, why_size, "HTTP request failed with status %ld", status);
        return -1;
    }
    return 0;
}

/* Wait on the condition up to ms; false once stopping. */
static bool waitMs(cdc_service *s, uint64_t ms)
{
    struct timespec ts;
    rq_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    if (!s->stop)
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    bool go = !s->stop;
    pthread_mutex_unlock(&s->mu);
    return go;
}

static bool stopping(cdc_service *s)
{
    pthread_mutex_lock(&s->mu);
    bool st = s->stop;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Send one batch until delivered, dropped, or leadership is lost (false:
 * not delivered and not dropped: the cursor stays). */
static bool sendBatch(cdc_service *s, const cdc_entry *e, int n)
{
    buf body = BUF_INIT;
    cdc_envelope(&body, s->cfg.service_id, s->node_id, e, n);
    uint64_t delay_ns = s->cfg.transmit_min_backoff_ns;
    char why[512];
    bool done = false;
    for (int64_t attempts = 1;; attempts++) {
        if (transmit(s, &body, why, sizeof why) == 0) {
            atomic_store(&s->hwm, e[n - 1].index);
            count(s, ST_TX_OK, 1);
            done = true;
            break;
        }
        count(s, ST_TX_FAILED, 1);
        if (s->cfg.transmit_max_retries > 0 && attempts >= s->cfg.transmit_max_retries) {
            rq_logl(RQ_LOG_WARN, "cdc",
                    "dropping the events of indexes %llu to %llu: the endpoint failed %lld times, last: %s",
                    (unsigned long long)e[0].index, (unsigned long long)e[n - 1].index, (long long)attempts, why);
            count(s, ST_DROPPED, 1);
            done = true;
            break;
        }
        if (attempts == 1 || attempts % 100 == 0)
            rq_logl(RQ_LOG_WARN, "cdc", "sending to the endpoint failed (%s): retrying", why);
        if (s->cfg.transmit_retry_policy == CDC_RETRY_EXPONENTIAL) {
            delay_ns *= 2;
            if (delay_ns > s->cfg.transmit_max_backoff_ns)
                delay_ns = s->cfg.transmit_max_backoff_ns;
        }
        count(s, ST_RETRIES, 1);
        int64_t until = rq_now_ms() + (int64_t)((delay_ns + 999999) / 1000000);
        while (rq_now_ms() < until && !stopping(s))
            waitMs(s, (uint64_t)(until - rq_now_ms()));
        if (stopping(s) || !s->cl.is_leader(s->cl.arg))
            break;
    }
    buf_free(&body);
    return done;
}

static void *senderThread(void *arg)
{
    cdc_service *s = arg;
    bool was_leader = false;
    uint64_t cursor = 0;
    int64_t first_seen = 0;
    uint64_t delay_ms = (s->cfg.max_batch_delay_ns + 999999) / 1000000;
    while (!stopping(s)) {
        bool leader = s->cl.is_leader(s->cl.arg);
        atomic_store(&s->leader, leader);
        if (leader != was_leader)
            rq_log("cdc", leader ? "this node (ID:%s) is now leader: starting CDC transmission"
                                 : "this node (ID:%s) is no longer leader: pausing CDC transmission",
                   s->node_id);
        if (!leader) {
            was_leader = false;
            waitMs(s, 100);
            continue;
        }
        if (!was_leader)
            cursor = atomic_load(&s->hwm); /* anything above may be undelivered */
        was_leader = true;
        if (cursor < atomic_load(&s->hwm))
            cursor = atomic_load(&s->hwm);
        cdc_entry *e = NULL;
        int n = cdc_fifo_read(s->fifo, cursor, s->cfg.max_batch_size, &e);
        if (n <= 0) {
            cdc_entries_free(e, 0);
            first_seen = 0;
            waitMs(s, 100);
            continue;
        }
        int64_t now = rq_now_ms();
        if (n < s->cfg.max_batch_size) {
            if (first_seen == 0)
                first_seen = now;
            if (now - first_seen < (int64_t)delay_ms) {
                cdc_entries_free(e, n);
                waitMs(s, (uint64_t)(first_seen + (int64_t)delay_ms - now));
                continue;
            }
        }
        first_seen = 0;
        count(s, ST_BATCHER_READS, 1);
        if (sendBatch(s, e, n))
            cursor = e[n - 1].index;
        cdc_entries_free(e, n);
    }
    return NULL;
}

/* ---- high-water mark ------------------------------------------------------- */

void cdc_hwm_received(cdc_service *s, uint64_t hwm)
{
    uint64_t cur = atomic_load(&s->hwm);
    while (hwm > cur && !atomic_compare_exchange_weak(&s->hwm, &cur, hwm))
        ;
}

/* Every high_watermark_interval: the leader tells the other voters its
 * HWM (even unchanged: a node that was away learns it too); every node
 * prunes its queue up to the HWM it knows. */
static void *hwmThread(void *arg)
{
    cdc_service *s = arg;
    uint64_t interval_ms = (s->cfg.hwm_interval_ns + 999999) / 1000000;
    uint64_t pruned = cdc_fifo_hwm(s->fifo);
    int64_t last_err_log = 0;
    while (waitMs(s, interval_ms)) {
        uint64_t hwm = atomic_load(&s->hwm);
        if (hwm == 0)
            continue;
        if (s->cl.is_leader(s->cl.arg)) {
            char **addrs = NULL;
            int n = s->cl.other_voters(s->cl.arg, &addrs);
            for (int i = 0; i < n; i++) {
                char *err = NULL;
                if (cluster_send_hwm(s->node_tls, addrs[i], hwm, 2000, &err) != 0 &&
                    rq_now_ms() - last_err_log > 10000) {
                    rq_logl(RQ_LOG_WARN, "cdc", "cannot send the high-water mark to %s: %s", addrs[i], err ? err : "?");
                    last_err_log = rq_now_ms();
                }
                free(err);
                free(addrs[i]);
            }
            free(addrs);
        }
        if (hwm > pruned && cdc_fifo_prune(s->fifo, hwm) == 0)
            pruned = hwm;
    }
    return NULL;
}

/* ---- life ---------------------------------------------------------------------- */

int cdc_open(cdc_config *cfg, const char *node_id, const char *data_dir, tls_ctx *node_tls, cdc_service **out,
             char **err)
{
    cdc_service *s = calloc(1, sizeof *s);
    s->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    s->node_id = strdup(node_id);
    s->node_tls = node_tls;
    s->dir = rq_sprintf("%s/cdc", data_dir);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST) {
        *err = rq_sprintf("cannot create the CDC directory %s: %s", s->dir, strerror(errno));
        cdc_close(s);
        return -1;
    }
    char *path = rq_sprintf("%s/fifo.db", s->dir);
    int rc = cdc_fifo_open(path, &s->fifo, err);
    free(path);
    if (rc != 0) {
        cdc_close(s);
        return -1;
    }
    atomic_store(&s->hwm, cdc_fifo_hwm(s->fifo));
    s->sink = (db_cdc_sink){.arg = s,
                            .row_ids_only = s->cfg.row_ids_only,
                            .want = sinkWant,
                            .entry = sinkEntry,
                            .sync = sinkSync};
    *out = s;
    return 0;
}

const db_cdc_sink *cdc_sink(cdc_service *s) { return &s->sink; }

int cdc_start(cdc_service *s, const cdc_cluster *cl, char **err)
{
    s->cl = *cl;
    if (strcasecmp(s->cfg.endpoint, "stdout") != 0)
        curlSetup(s);
    if (pthread_create(&s->sender, NULL, senderThread, s) != 0) {
        *err = strdup("cannot start the CDC sender thread");
        return -1;
    }
    if (pthread_create(&s->hwmer, NULL, hwmThread, s) != 0) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sender, NULL);
        *err = strdup("cannot start the CDC high-water mark thread");
        return -1;
    }
    s->started = true;
    if (*s->cfg.service_id)
        rq_log("cdc", "service started with ID %s, node ID %s, sending to %s", s->cfg.service_id, s->node_id,
               s->cfg.endpoint);
    else
        rq_log("cdc", "service started with node ID %s, sending to %s", s->node_id, s->cfg.endpoint);
    return 0;
}

void cdc_close(cdc_service *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sender, NULL);
        pthread_join(s->hwmer, NULL);
    }
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    curl_slist_free_all(s->connect_to);
    cdc_fifo_close(s->fifo);
    cdc_config_free(&s->cfg);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->node_id);
    free(s->dir);
    free(s);
}

json_t *cdc_vars(cdc_service *s)
{
    json_t *v = json_object();
    for (int i = 0; i < ST_N; i++)
        json_object_set_new(v, stat_names[i], json_integer(s ? (json_int_t)atomic_load(&s->stats[i]) : 0));
    json_object_set_new(v, "fifo_size", json_integer(s ? (json_int_t)cdc_fifo_len(s->fifo) : 0));
    return v;
}

/* The endpoint without credentials (rqlite's RemoveBasicAuth). */
static char *displayEndpoint(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at == NULL || (slash && slash < at))
        return strdup(url);
    return rq_sprintf("%.*s%s", (int)(scheme + 3 - url), url, at + 1);
}

json_t *cdc_status(cdc_service *s)
{
    long long len = cdc_fifo_len(s->fifo);
    char *sink = displayEndpoint(s->cfg.endpoint);
    json_t *st = json_pack("{s:s,s:s,s:I,s:b,s:s,s:{s:b,s:I}}", "node_id", s->node_id, "dir", s->dir,
                           "highwater_mark", (json_int_t)atomic_load(&s->hwm), "is_leader", atomic_load(&s->leader),
                           "sink", sink, "fifo",
                           "has_next", len > 0, "length", (json_int_t)len);
    free(sink);
    if (*s->cfg.service_id)
        json_object_set_new(st, "service_id", json_string(s->cfg.service_id));
    return st;
}
