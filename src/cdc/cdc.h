/*
 * cdc: change data capture (-cdc-config), as rqlite's cdc package.
 *
 * Every voting node captures the rows each Raft entry changes (db.h's
 * db_cdc_sink, on the Raft thread) into a queue of its own on disk,
 * <data>/cdc/fifo.db (a SQLite file: one row per entry with changes,
 * keyed by Raft index). Only the leader sends them, in batches of up to
 * max_batch_size entries, to the endpoint (an HTTP POST of rqlite's JSON
 * envelope, or a line on stdout); 200 and 202 mean delivered, anything else
 * is retried per the policy. Delivered means the high-water mark (HWM)
 * moves to the batch's last index; every high_watermark_interval the
 * leader prunes its queue up to it and sends it to the other voters over
 * the Raft port (CLUSTER_HWM_MAGIC, cluster/cluster.h), which prune theirs.
 * A new leader sends from its own HWM on: delivery is at least once, and a
 * receiver deduplicates by index.
 *
 * Threads: the sink runs on the Raft thread and only appends to the queue
 * (no network); a sender thread and an HWM thread do the rest.
 */
#ifndef RQ_CDC_CDC_H
#define RQ_CDC_CDC_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "tls/tls.h"

/* The settings (rqlite's cdc.Config). Durations are nanoseconds, as the
 * JSON file gives them. */
typedef struct cdc_config {
    char *endpoint;             /* "stdout" or an http(s):// URL */
    char *service_id;           /* "" for none */
    bool row_ids_only;
    char *table_filter;         /* NULL: every table */
    regex_t filter;             /* compiled when table_filter is set */
    char *ca_cert_file, *cert_file, *key_file, *server_name; /* tls.*, NULL when unset */
    bool insecure_skip_verify;
    int max_batch_size;         /* 10 */
    uint64_t max_batch_delay_ns;        /* 200 ms */
    uint64_t hwm_interval_ns;           /* 1 s */
    uint64_t transmit_timeout_ns;       /* 5 s */
    int64_t transmit_max_retries;       /* attempts before a batch is dropped; <= 0: forever */
    int transmit_retry_policy;          /* 0 linear, 1 exponential */
    uint64_t transmit_min_backoff_ns;   /* 1 s */
    uint64_t transmit_max_backoff_ns;   /* 30 s */
} cdc_config;

enum { CDC_RETRY_LINEAR = 0, CDC_RETRY_EXPONENTIAL = 1 };

/* -cdc-config's value: "stdout", an http:// or https:// URL (the defaults
 * with that endpoint), or else the path of a JSON file. 0, or -1 with
 * *err (caller frees) for anything wrong: an unreadable file, JSON that is
 * not an object or has a field of the wrong type (durations must be
 * integers), a table_filter that does not compile, a TLS file that cannot
 * be read. The file's table_filter is a POSIX extended regular expression
 * (Go's RE2 in rqlite): a leading (?i) and \d, \D are translated; other
 * RE2-only syntax is refused or differs (see README). */
int cdc_config_parse(const char *value, cdc_config *out, char **err);
void cdc_config_free(cdc_config *c);
/* Does the table filter let changes to table through? */
bool cdc_config_wants(const cdc_config *c, const char *table);

/* What the service needs to know of the cluster, from the store. */
typedef struct cdc_cluster {
    void *arg;
    bool (*is_leader)(void *arg);
    /* The Raft addresses of the other voters: returns their number, and
     * *addrs, malloc'd strings in a malloc'd array (caller frees both). */
    int (*other_voters)(void *arg, char ***addrs);
} cdc_cluster;

typedef struct cdc_service cdc_service;

/* Open the queue in data_dir/cdc and set up the sink; takes cfg (freed
 * with the service). node_tls: the Raft port's TLS (NULL: plaintext), for
 * the HWM. 0, or -1 with *err. Nothing is sent before cdc_start. */
int cdc_open(cdc_config *cfg, const char *node_id, const char *data_dir, tls_ctx *node_tls, cdc_service **out,
             char **err);
/* The capture sink for db_cdc_enable; valid while s is. */
const db_cdc_sink *cdc_sink(cdc_service *s);
/* An HWM from the leader (the Raft port): never blocks, any thread. */
void cdc_hwm_received(cdc_service *s, uint64_t hwm);
/* Start the sender and HWM threads (the store open: cl usable). */
int cdc_start(cdc_service *s, const cdc_cluster *cl, char **err);
/* Stop the threads and close the queue (after the store is closed). */
void cdc_close(cdc_service *s);

/* rqlite's expvar map "cdc.service" (/debug/vars) and the "cdc" section
 * of /status. Caller owns. */
/* rqlite's "cdc.service" expvar map (s NULL: CDC off, every counter 0, as
 * rqlite shows it), and the "cdc" section of /status. */
json_t *cdc_vars(cdc_service *s);
json_t *cdc_status(cdc_service *s);

/* The envelope of a batch (rqlite's cdc/json): each entry's events are
 * the JSON array the capture made. Exposed for the unit tests. */
typedef struct cdc_entry {
    uint64_t index;
    int64_t ts_ms;
    char *events;
    size_t len;
} cdc_entry;
void cdc_envelope(buf *out, const char *service_id, const char *node_id, const cdc_entry *e, int n);

/* The on-disk queue (fifo.c), exposed for the unit tests. Thread-safe. */
typedef struct cdc_fifo cdc_fifo;
int cdc_fifo_open(const char *path, cdc_fifo **out, char **err);
void cdc_fifo_close(cdc_fifo *f);
/* 1 queued, 0 ignored (index at or below the highest queued: a replay),
 * -1 on a write error (logged). */
int cdc_fifo_enqueue(cdc_fifo *f, uint64_t index, int64_t ts_ms, const char *events, size_t len);
/* Up to max entries above index after, oldest first, into *out (caller
 * frees with cdc_entries_free). Returns their number, or -1. */
int cdc_fifo_read(cdc_fifo *f, uint64_t after, int max, cdc_entry **out);
void cdc_entries_free(cdc_entry *e, int n);
/* Drop the entries up to index upto, and remember it as the HWM. */
int cdc_fifo_prune(cdc_fifo *f, uint64_t upto);
uint64_t cdc_fifo_hwm(cdc_fifo *f);
uint64_t cdc_fifo_highest(cdc_fifo *f);
long long cdc_fifo_len(cdc_fifo *f);
/* Everything queued durable (fsync): before a snapshot compacts the log. */
int cdc_fifo_sync(cdc_fifo *f);

#endif
