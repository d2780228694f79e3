/*
 * metrics.c: the store's Prometheus families (store_metrics). What Raft
 * published under s->mu (publish.c) is read once, the histograms without
 * a lock (metrics.h).
 */
#include <string.h>

#include "store/internal.h"

void store_metrics(store *s, buf *b)
{
    pthread_mutex_lock(&s->mu);
    int state = s->state;
    uint64_t term = s->term, commit = s->commit_index, applied = s->applied_index, last = s->last_index,
             first = s->first_index, snap = s->snapshot_index, changes = s->leader_changes;
    bool has_leader = s->leader_id != 0, ready = s->ready;
    pthread_mutex_unlock(&s->mu);

    static const struct {
        int st;
        const char *name;
    } states[] = {{RAFT_FOLLOWER, "follower"}, {RAFT_CANDIDATE, "candidate"}, {RAFT_LEADER, "leader"}};
    metrics_family(b, "rqlite_raft_state", "gauge", "1 for this node's current Raft role, 0 for the others.");
    bool known = false;
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        char l[40];
        snprintf(l, sizeof l, "state=\"%s\"", states[i].name);
        known |= state == states[i].st;
        metrics_sample(b, "rqlite_raft_state", l, state == states[i].st);
    }
    metrics_sample(b, "rqlite_raft_state", "state=\"shutdown\"", !known);
    metrics_one(b, "rqlite_raft_term", "gauge", "Current Raft term.", (double)term);
    metrics_one(b, "rqlite_raft_commit_index", "gauge", "Highest log index known to be committed.", (double)commit);
    metrics_one(b, "rqlite_raft_applied_index", "gauge", "Highest log index applied to the database.", (double)applied);
    metrics_one(b, "rqlite_raft_last_log_index", "gauge", "Index of the last entry in the log.", (double)last);
    metrics_one(b, "rqlite_raft_snapshot_index", "gauge", "Last log index covered by the latest snapshot.", (double)snap);
    metrics_one(b, "rqlite_raft_log_entries", "gauge", "Entries held in the log (after the latest snapshot).",
                first && last >= first ? (double)(last - first + 1) : 0);
    metrics_one(b, "rqlite_raft_leader_changes_total", "counter", "Times this node saw a new leader.",
                (double)changes);
    metrics_one(b, "rqlite_raft_has_leader", "gauge", "1 when this node knows a leader.", has_leader);
    metrics_one(b, "rqlite_store_ready", "gauge", "1 when the node is ready (as /readyz).", ready);

    metrics_family(b, "rqlite_fsm_apply_duration_seconds", "histogram", "Time to apply one log entry to SQLite.");
    metrics_hist_write(b, "rqlite_fsm_apply_duration_seconds", "", &s->m_apply);
    metrics_family(b, "rqlite_snapshot_duration_seconds", "histogram",
                   "Time to take a snapshot (making the database durable and writing the marker).");
    metrics_hist_write(b, "rqlite_snapshot_duration_seconds", "", &s->m_snapshot);
    metrics_family(b, "rqlite_snapshot_transfer_duration_seconds", "histogram",
                   "Time to fetch and install the leader's database (a follower restored from a snapshot).");
    metrics_hist_write(b, "rqlite_snapshot_transfer_duration_seconds", "", &s->m_transfer);

    metrics_one(b, "rqlite_sqlite_file_size_bytes", "gauge", "Size of the SQLite database file.",
                (double)db_file_size(s->db));
    metrics_one(b, "rqlite_sqlite_wal_size_bytes", "gauge", "Size of the SQLite WAL file.", (double)db_wal_size(s->db));
    int open, idle, max;
    db_pool_stats(s->db, &open, &idle, &max);
    metrics_one(b, "rqlite_sqlite_read_connections", "gauge", "Read-only connections open (idle and in use).", open);
    metrics_one(b, "rqlite_sqlite_read_connections_in_use", "gauge", "Read-only connections running a read now.",
                open - idle);
    metrics_one(b, "rqlite_sqlite_read_connections_max", "gauge", "Most read-only connections allowed (0: no limit).",
                max);
}
