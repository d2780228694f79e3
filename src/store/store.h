/*
 * store: the replicated state machine. SQLite (db/) replicated by Raft
 * (canonical/raft with its libuv I/O backend), run on a thread of its own.
 *
 * Every function here is thread-safe and may block the calling thread (an
 * HTTP worker) until the Raft thread has done the work; none may be called
 * from the Raft thread itself.
 *
 * Return codes: STORE_OK; STORE_NOT_LEADER when the operation needs the
 * leader and this node is not it (callers forward to store_leader()'s API
 * address, or answer 503 "leader not found" when there is none);
 * STORE_ERROR with *err set to a message for the client (caller frees);
 * STORE_DISALLOWED when a statement sets a pragma the policy refuses
 * (rqlite's whole-request "disallowed pragma"); STORE_INVALID (400) and
 * STORE_TOO_LARGE (413) for input refused before anything is proposed,
 * with *err.
 */
#ifndef RQ_STORE_STORE_H
#define RQ_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "command/command.h"
#include "config.h"
#include "db/db.h"
#include "util/buf.h"

typedef struct store store;

enum {
    STORE_OK = 0,
    STORE_NOT_LEADER = 1,
    STORE_ERROR = 2,
    STORE_DISALLOWED = 3,
    STORE_INVALID = 4,
    STORE_TOO_LARGE = 5,
};

/* Read consistency levels (?level=). */
typedef enum {
    STORE_LEVEL_WEAK = 0, STORE_LEVEL_NONE, STORE_LEVEL_STRONG, STORE_LEVEL_LINEARIZABLE, STORE_LEVEL_AUTO
} store_level;

/* How a read is to be served: its level, ?freshness (microseconds, 0:
 * any) with ?freshness_strict, ?db_timeout (microseconds, 0: none):
 * statements still running that long after the read started fail with
 * "query timeout", and ?linearizable_timeout. (A strong read runs after a
 * barrier entry, on the read connection too.) */
typedef struct store_read {
    store_level level;
    uint64_t freshness_us;
    bool freshness_strict;
    uint64_t db_timeout_us;
    uint64_t linearizable_timeout_ms; /* linearizable: how long the leader,
                                       * its leadership confirmed, may wait
                                       * to apply up to the read's index
                                       * (0: 1 s, rqlite's) */
} store_read;

/* A member of the cluster as /nodes and /status show it. */
typedef struct store_node {
    char id[256];
    char addr[256];      /* Raft address */
    char api_addr[300];  /* "http://host:port", "" if not known yet */
    bool voter;
} store_node;

/* Open the data directory, start the Raft thread and form or rejoin the
 * cluster as the config says (bootstrap / restart; -join is done by main
 * through cluster/). Returns 0 or -1 with *err set. */
int store_open(const config *cfg, store **out, char **err);
/* store_open for -bootstrap-expect: a brand-new node bootstraps a cluster
 * of the n_boot given voters (ids, Raft and API addresses), identical on
 * every one of them. */
int store_open_with(const config *cfg, const store_node *boot, int n_boot, store **out, char **err);
/* -bootstrap-expect, before the store opens: the Raft port answers
 * metadata probes (the others may know us by our Raft address only) until
 * closed, which must precede store_open. */
typedef struct transport_responder store_early_port;
int store_early_port_open(const config *cfg, store_early_port **out, char **err);
void store_early_port_close(store_early_port *p);
/* Orderly stop: transfer leadership if leader and stepdown is wanted, stop
 * Raft, close the database, free s. Stop the HTTP service first. */
void store_close(store *s);

/* True once the node has a leader and has applied the log up to the commit
 * index it knew when the leader appeared, and is not held (below). */
bool store_ready(store *s);
/* Hold the node not ready (store_ready, /readyz, /status) whatever Raft
 * says, or release it: -auto-restore holds it until its one-shot restore
 * is done or skipped, as rqlite does. */
void store_hold_ready(store *s, bool hold);
/* The Raft index of the last entry that changed the database (rqlite's
 * DBAppliedIndex): what an auto-backup records as its id. Any thread. */
uint64_t store_db_index(store *s);
bool store_is_leader(store *s);
/* The current leader, if any: returns false when unknown. */
bool store_leader(store *s, store_node *leader);
/* Whether a leader is replicating to this node (its Raft ID is known, its
 * node ID perhaps not yet: a joiner receiving the database). */
bool store_heard_leader(store *s);
/* Wait up to timeout_ms for a leader to be known; true if one is. */
bool store_wait_leader(store *s, uint64_t timeout_ms);
/* Wait up to timeout_ms until this node has applied everything the leader
 * had committed when called (its commit index as its last AppendEntries
 * said; the leader's own on the leader): rqlite's /readyz?sync. */
bool store_wait_synced(store *s, uint64_t timeout_ms);

/* The policy's verdict on a command before anything is proposed (any node):
 * STORE_DISALLOWED, or STORE_OK with *readonly set when it only reads. */
int store_check(store *s, const cmd_view *stmts, bool *readonly);

/* Writes: the statements become one Raft entry, the command's own bytes;
 * blocks until it is applied locally (leader) and appends the results
 * array contents to out. db_timeout_us (?db_timeout, 0: none) lowers the
 * entry's VM step budget (-db-max-write-steps) to about that much work, at
 * STORE_STEPS_PER_MS steps a millisecond, counted alike on every node. */
#define STORE_STEPS_PER_MS 50000
int store_execute(store *s, const cmd_view *stmts, unsigned db_flags, uint64_t db_timeout_us, buf *out,
                  uint64_t *raft_index, char **err);
/* Replace the whole database, on every node, with a SQLite image (one log
 * entry), once db_image_check() accepts it (else STORE_INVALID). Leader
 * only. boot: for /boot, counted as rqlite's num_boots, not num_loads. */
int store_load(store *s, const void *image, size_t len, bool boot, char **err);
/* Would store_load() take this image (db_image_check)? 0, or -1 with *err. */
int store_image_check(store *s, const void *image, size_t len, char **err);
/* Reads at a consistency level; none/weak/linearizable run on a read-only
 * connection, strong goes through the log. */
int store_query(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err);
/* Mixed: read-only batches are served as queries, others as one entry run
 * on the write connection (reads in it return rows). */
int store_request(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err);

/* Membership (leader only). Join is idempotent for the same id and address;
 * a different address for a known id (or a known address under another id)
 * replaces the old entry. api_addr is recorded for forwarding and /nodes.
 * reset: the node lost its state (wiped); a member with the same id and
 * address is removed and re-added so that replication to it restarts.
 * With node TLS, a node whose Raft port refuses this node's certificate,
 * or shows one this node cannot verify, is not added (STORE_ERROR). */
int store_join(store *s, const char *id, const char *raft_addr,
               const char *api_addr, bool voter, bool reset, char **err);
int store_remove(store *s, const char *id, char **err);
/* Leadership transfer to id (NULL: any up-to-date voter). */
int store_stepdown(store *s, const char *id, char **err);

/* Cluster members; returns the count, *nodes is malloc'd (caller frees). */
int store_nodes(store *s, store_node **nodes);
/* This node's API address as the cluster's metadata records it ("" when
 * none is applied yet): store_nodes lists our own from our flags. */
void store_recorded_api(store *s, char *api, size_t size);
/* The "store" section of /status (caller owns). */
json_t *store_status(store *s);
/* Prometheus families of the store (metrics.h): Raft state and indexes,
 * leader changes, log entries, apply/snapshot/transfer latencies, the
 * database's file and WAL sizes and the read pool, appended to b. */
void store_metrics(store *s, buf *b);
/* Where a write's time goes, stage by stage, as the histograms of
 * /metrics' rqlite_write_stage_seconds{stage}. The HTTP layer notes its own stages; the
 * store notes the rest. APPEND is this node's disk write of a batch of
 * entries (every node, leaders and followers); the others are of the
 * writes this node proposed. */
enum {
    STORE_STAGE_PARSE,   /* headers arrived -> statements read from the body */
    STORE_STAGE_ENCODE,  /* checks, the entry packed (LZ4 when it pays) */
    STORE_STAGE_QUEUE,   /* handed to the Raft thread -> proposed (raft_apply) */
    STORE_STAGE_COMMIT,  /* proposed -> committed: append + fdatasync, replication, quorum */
    STORE_STAGE_APPLY,   /* the leader's FSM apply of the entry */
    STORE_STAGE_WAKE,    /* applied -> the request's thread runs again */
    STORE_STAGE_RESPOND, /* the results -> the response queued */
    STORE_STAGE_TOTAL,   /* headers arrived -> the response queued */
    STORE_STAGE_APPEND,  /* one disk write of entries, fdatasync included */
    STORE_STAGE_N
};
/* Note a stage's duration; any thread. */
void store_stage(store *s, int stage, double seconds);

/* rqlite's "store" map of /debug/vars: its counters (num_snapshots,
 * num_restores, num_ignored_joins...) by their rqlite names (caller owns);
 * s NULL: every key at 0. */
json_t *store_vars(store *s);
/* Set in doc the /debug/vars maps of the store and what it holds: "store"
 * (store_vars), "db" and "db.wal" (db_vars), "mux" (the Raft port),
 * "snapshot" and "snapshot.plan", each with every key of rqlite's map;
 * s NULL (not open yet): all 0. Any thread. */
void store_vars_sections(store *s, json_t *doc);
/* Local snapshot + log truncation (/snapshot). On a follower the snapshot
 * is taken when the next entry is applied (the caller can cause one with a
 * strong read on the leader). trailing > 0: keep that many entries of the
 * log after it (?trailing_logs) instead of the configured number (within
 * the same memory cap). *nothing_new: nothing applied since the last
 * snapshot. */
int store_snapshot(store *s, uint64_t trailing, bool *nothing_new, char **err);
/* A consistent copy of the local database (db_backup_file's flags) in a
 * file already unlinked: returns its descriptor (caller closes) and *size,
 * or -1 with *err. Any thread; memory does not grow with the database. */
int store_copy(store *s, unsigned flags, db_progress_fn progress, void *arg, uint64_t *size, char **err);
/* The local database as rqlite's SQL text dump (/db/backup?fmt=sql),
 * appended to out; tables: NULL for all, else comma-separated names. Any
 * thread; reads the local copy whether leader or not. 0, or -1 with *err. */
int store_dump(store *s, const char *tables, buf *out, char **err);
/* True when the data directory held no Raft state at store_open() (a new
 * or wiped node): only such a node acts on -join. */
bool store_was_new(store *s);
/* For a new node that did not bootstrap because a leader reached it (a
 * wiped member): that leader's Raft address, else NULL. */
const char *store_contacted_by(store *s);
/* This node's own identity. */
const char *store_node_id(store *s);

#endif
