/*
 * metrics.c: the store's Prometheus families (store_metrics). What Raft
 * published under s->mu (publish.c) is read once, the histograms without
 * a lock (metrics.h), and the write stages (store_stage).
 */
#include <string.h>

#include "store/internal.h"

static const char *const stageNames[STORE_STAGE_N] = {
    [STORE_STAGE_PARSE] = "parse",     [STORE_STAGE_ENCODE] = "encode", [STORE_STAGE_QUEUE] = "queue",
    [STORE_STAGE_COMMIT] = "commit",   [STORE_STAGE_APPLY] = "apply",   [STORE_STAGE_WAKE] = "wake",
    [STORE_STAGE_RESPOND] = "respond", [STORE_STAGE_TOTAL] = "total",   [STORE_STAGE_APPEND] = "append",
};

void store_stage(store *s, int stage, double seconds)
{
    if (s && stage >= 0 && stage < STORE_STAGE_N)
        metrics_observe(&s->m_stage[stage], seconds > 0 ? seconds : 0);
}

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

    metrics_family(b, "rqlite_write_stage_seconds", "histogram",
                   "Where a write's time goes, by stage (append: one disk write of entries, on every node; "
                   "the others: writes this node proposed).");
    for (int i = 0; i < STORE_STAGE_N; i++) {
        buf l = BUF_INIT;
        metrics_label(&l, "stage", stageNames[i]);
        metrics_hist_write(b, "rqlite_write_stage_seconds", l.data, &s->m_stage[i]);
        buf_free(&l);
    }
    metrics_one(b, "rqlite_raft_appended_entries_total", "counter",
                "Entries this node wrote to its log (divided by the append stage's count: entries per disk write).",
                (double)__atomic_load_n(&s->appended, __ATOMIC_RELAXED));

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
