/*
 * vars.c: rqlite's expvar maps of the db module, "db" (DBSTAT_*, counted
 * where the events happen) and "db.wal".
 */
#include "db/internal.h"

/* rqlite's names, and the keys of its map we have no counterpart for
 * (kept at 0): it writes a compacted copy of the WAL into incremental
 * snapshots (create_compacted_wal_duration_ms, compacted_wal_size), checks
 * an invariant of that scheme (checkpoint_invariant_errors) and uses
 * SQLite's update hook besides the pre-update one (update_hooks*); our
 * snapshots are the synced file, CDC reads the pre-update hook only, and
 * a failing CDC sink fails the entry instead of dropping events. */
static const char *const names[DBSTAT_N] = {
    [DBSTAT_OPEN_MS] = "open_duration_ms",
    [DBSTAT_CHECKPOINTS] = "checkpoints",
    [DBSTAT_CHECKPOINT_ERRORS] = "checkpoint_errors",
    [DBSTAT_CHECKPOINTED_MOVES] = "checkpointed_moves",
    [DBSTAT_CHECKPOINT_MS] = "checkpoint_duration_ms",
    [DBSTAT_PRECOMPACT_WAL_SIZE] = "precompact_wal_size",
    [DBSTAT_CHECKPOINT_TOTAL] = "checkpoint_total",
    [DBSTAT_CHECKPOINT_BUSY] = "checkpoint_busy_errors",
    [DBSTAT_CHECKPOINT_PARTIAL] = "checkpoint_partial",
    [DBSTAT_CHECKPOINT_TRUNCATED] = "checkpoint_wal_truncated",
    [DBSTAT_EXECUTIONS] = "executions",
    [DBSTAT_EXECUTION_ERRORS] = "execution_errors",
    [DBSTAT_FORCE_QUERIES] = "executions_force_queries",
    [DBSTAT_QUERIES] = "queries",
    [DBSTAT_QUERY_ERRORS] = "query_errors",
    [DBSTAT_REQUESTS] = "requests",
    [DBSTAT_EXECUTE_TX] = "execute_transactions",
    [DBSTAT_QUERY_TX] = "query_transactions",
    [DBSTAT_REQUEST_TX] = "request_transactions",
    [DBSTAT_BACKUP_STEP_ERRORS] = "backup_step_errors",
    [DBSTAT_BACKUP_STEP_DONES] = "backup_step_dones",
    [DBSTAT_BACKUP_SLEEPS] = "backup_sleeps",
    [DBSTAT_PREUPDATES] = "preupdates",
    [DBSTAT_COMMIT_HOOKS] = "commit_hooks",
};
static const char *const zeros[] = {
    "create_compacted_wal_duration_ms", "compacted_wal_size", "checkpoint_invariant_errors",
    "preupdates_errors", "preupdates_callback_errors", "update_hooks", "update_hooks_callback_errors",
    "update_hooks_errors", "dropped_cdc_events",
};

json_t *db_vars(db *d)
{
    json_t *v = json_object();
    for (int i = 0; i < DBSTAT_N; i++)
        json_object_set_new(v, names[i],
                            json_integer(d ? (json_int_t)__atomic_load_n(&d->stats[i], __ATOMIC_RELAXED) : 0));
    for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
        json_object_set_new(v, zeros[i], json_integer(0));
    return v;
}

json_t *db_wal_vars(void)
{
    /* rqlite's db.wal counts its scans of the WAL to compact it into an
     * incremental snapshot; our snapshots never read the WAL. */
    return json_pack("{s:i,s:i,s:i,s:i,s:i}", "compact_scan_duration_ms", 0, "compact_write_duration_ms", 0,
                     "compact_frames_input", 0, "compact_frames_output", 0, "compact_scan_errors", 0);
}
