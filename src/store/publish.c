/*
 * publish.c: the state other threads may read. After every iteration of
 * its loop (a uv_check handle) the Raft thread copies what callers need
 * (role, leader, indexes, members, contact times) into struct store under
 * s->mu, reacts to role changes, and completes the reads and snapshots
 * that were waiting for the state to move. Callers read only this copy:
 * store_ready, store_is_leader, store_leader, store_wait_leader,
 * store_nodes and store_status (the "store" section of /status).
 */
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/internal.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/os.h"

/* The leader's barrier of its own term applied: everything committed
 * before is applied too (ready, read index), and the leader may write
 * node metadata. */
static void leaderBarrierCb(struct raft_barrier *req, int status)
{
    store *s = req->data;
    s->leader_barrier_pending = false;
    free(req);
    if (status != 0 || s->raft.state != RAFT_LEADER)
        return;
    s->leader_ready = true;
    storeMetaOnLeader(s);
}

/* libraft's role as rqlite names it (logs, /status). */
static const char *stateName(int st)
{
    switch (st) {
    case RAFT_LEADER: return "Leader";
    case RAFT_FOLLOWER: return "Follower";
    case RAFT_CANDIDATE: return "Candidate";
    default: return "Shutdown";
    }
}

/* Under s->mu: the members as /nodes shows them, from libraft's
 * configuration and the node metadata. */
static void rebuildNodesLocked(store *s)
{
    struct raft_configuration *c = &s->raft.configuration;
    free(s->nodes);
    s->nodes = calloc(c->n ? c->n : 1, sizeof *s->nodes);
    s->n_nodes = 0;
    for (unsigned i = 0; i < c->n; i++) {
        struct raft_server *srv = &c->servers[i];
        if (srv->role == RAFT_SPARE)
            continue;
        store_node *n = &s->nodes[s->n_nodes++];
        meta *m = storeMetaFind(s, srv->id);
        /* Ourselves by our own flags: our metadata entry may not be
         * applied yet when the configuration listing us is. */
        if (srv->id == s->id)
            snprintf(n->id, sizeof n->id, "%s", s->cfg->node_id);
        else
            snprintf(n->id, sizeof n->id, "%s", m && m->id[0] ? m->id : srv->address);
        snprintf(n->addr, sizeof n->addr, "%s", srv->address);
        snprintf(n->api_addr, sizeof n->api_addr, "%s",
                 srv->id == s->id ? s->cfg->http_api_url : m ? m->api : "");
        n->voter = srv->role == RAFT_VOTER;
    }
    meta *self = storeMetaFind(s, s->id);
    snprintf(s->recorded_api, sizeof s->recorded_api, "%s", self ? self->api : "");
}

/* Log role and leader changes as rqlite does; a new leader first commits
 * a barrier of its own term (leaderBarrierCb). */
static void roleChange(store *s, raft_id lid, const char *laddr)
{
    struct raft *r = &s->raft;
    if (r->state != s->prev_state) {
        if (r->state == RAFT_LEADER)
            rq_log("store", "this node (ID=%s, addr=%s) is now Leader", s->cfg->node_id,
                   s->cfg->raft_adv_addr);
        else if (s->cfg->raft_log <= CONFIG_LOG_INFO)
            rq_log("raft", "entering %s state: term=%llu", stateName(r->state),
                   (unsigned long long)r->current_term);
        if (r->state != RAFT_LEADER)
            s->leader_ready = false;
        if (r->state == RAFT_LEADER && !s->leader_barrier_pending) {
            struct raft_barrier *breq = calloc(1, sizeof *breq);
            breq->data = s;
            if (raft_barrier(r, breq, leaderBarrierCb) == 0)
                s->leader_barrier_pending = true;
            else
                free(breq);
        }
        s->prev_state = r->state;
    }
    if (lid != s->prev_leader) {
        if (lid == 0)
            rq_log("store", "Leader is now unknown");
        else if (lid != s->id)
            rq_log("store", "node at %s is now Leader", laddr ? laddr : "?");
        s->prev_leader = lid;
    }
}

/* Follower, under s->mu: when the leader was last heard from, and since
 * when without a gap (freshness). */
static void contactLocked(store *s)
{
    struct raft *r = &s->raft;
    /* libraft restarts a follower's election timer on each message from
     * the leader: that is the last contact. */
    raft_time t = s->io.time(&s->io);
    uint64_t age = t > r->election_timer_start ? t - r->election_timer_start : 0;
    int64_t contact = rq_now_ms() - (int64_t)age;
    /* After a silence (a partition), the first messages may be old ones
     * TCP kept and delivers late: the contact is real, what they say is
     * not recent. A steady stream (heartbeats every hb_ms) is. */
    if (s->last_contact_ms == 0 || contact - s->last_contact_ms > 3 * (int64_t)s->hb_ms)
        s->contact_since_ms = contact;
    s->last_contact_ms = contact;
}

/* Under s->mu. Ready: a leader is known and we have applied what was
 * committed when we first saw it (the leader: its own term's barrier).
 * Latched. */
static void readyLocked(store *s, raft_id lid)
{
    struct raft *r = &s->raft;
    if (s->ready || lid == 0)
        return;
    if (r->state == RAFT_LEADER) {
        s->ready = s->leader_ready;
    } else {
        if (s->ready_target == 0)
            s->ready_target = r->commit_index ? r->commit_index : 1;
        if (r->last_applied >= s->ready_target && r->commit_index > 0)
            s->ready = true;
    }
    if (s->ready)
        rq_log("store", "store is ready (applied index %llu)", (unsigned long long)r->last_applied);
}

void storeOnCheck(uv_check_t *h)
{
    store *s = h->data;
    struct raft *r = &s->raft;
    if (!s->raft_started || s->raft_shut != RAFT_RUNNING)
        return; /* what storeShutdownRaft published stays */
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(r, &lid, &laddr);
    roleChange(s, lid, laddr);

    int64_t quorum_ms = r->state == RAFT_LEADER ? storeQuorumContactMs(s) : 0;
    char lnode[sizeof s->leader_node], lapi[sizeof s->leader_api];
    storeLeaderIdentity(s, lid, lnode, sizeof lnode, lapi, sizeof lapi);
    pthread_mutex_lock(&s->mu);
    s->quorum_contact_ms = quorum_ms;
    bool leader_changed = s->leader_id != lid || strcmp(s->leader_node, lnode) != 0 ||
                          strcmp(s->leader_api, lapi) != 0;
    s->state = r->state;
    s->term = r->current_term;
    s->commit_index = r->commit_index;
    s->applied_index = r->last_applied;
    s->leader_commit = s->leader_commit_seen > r->commit_index ? s->leader_commit_seen : r->commit_index;
    s->last_index = raft_last_index(r);
    s->snapshot_index = r->log.snapshot.last_index;
    s->snapshot_term = r->log.snapshot.last_term;
    s->last_term = r->log.front != r->log.back
                       ? r->log.entries[(r->log.back + r->log.size - 1) % r->log.size].term
                       : r->log.snapshot.last_term;
    s->first_index = r->log.front != r->log.back ? r->log.offset + 1 : 0;
    if (r->state == RAFT_FOLLOWER && lid != 0)
        contactLocked(s);
    if (lid != 0 && lid != s->leader_id)
        s->leader_changes++;
    s->leader_id = lid;
    snprintf(s->leader_addr, sizeof s->leader_addr, "%s", laddr ? laddr : "");
    snprintf(s->leader_node, sizeof s->leader_node, "%s", lnode);
    snprintf(s->leader_api, sizeof s->leader_api, "%s", lapi);
    raft_index conf_index = r->configuration_uncommitted_index ? r->configuration_uncommitted_index
                                                               : r->configuration_index;
    if (s->meta_dirty || conf_index != s->published_conf_index || s->nodes == NULL) {
        rebuildNodesLocked(s);
        s->published_conf_index = conf_index;
        s->meta_dirty = false;
    }
    readyLocked(s, lid);
    if (leader_changed || s->ready)
        pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
    storeReadsProgress(s); /* completes ops: takes s->mu itself */
    storeSnapProgress(s);
}

void storePublishMembers(store *s)
{
    pthread_mutex_lock(&s->mu);
    rebuildNodesLocked(s);
    pthread_mutex_unlock(&s->mu);
}

bool store_ready(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->ready && !s->ready_held;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void store_hold_ready(store *s, bool hold)
{
    pthread_mutex_lock(&s->mu);
    s->ready_held = hold;
    pthread_mutex_unlock(&s->mu);
}

uint64_t store_db_index(store *s)
{
    return db_index(s->db);
}

bool store_is_leader(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->state == RAFT_LEADER;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* Under s->mu: the leader, once we know who it is. libraft names the
 * leader (its Raft ID and address) from its first message, but a Raft ID
 * is a hash of the node ID: the node ID and API address come from the
 * node metadata, which a joining node has only once it has applied the
 * leader's first entries. Until then there is no leader to report (rqlite
 * reports both or neither), nor one to forward to. */
static bool leaderLocked(store *s, store_node *leader)
{
    if (s->leader_id == 0 || s->leader_node[0] == '\0')
        return false;
    memset(leader, 0, sizeof *leader);
    snprintf(leader->id, sizeof leader->id, "%s", s->leader_node);
    snprintf(leader->addr, sizeof leader->addr, "%s", s->leader_addr);
    snprintf(leader->api_addr, sizeof leader->api_addr, "%s", s->leader_api);
    leader->voter = true;
    return true;
}

bool store_heard_leader(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->leader_id != 0;
    pthread_mutex_unlock(&s->mu);
    return r;
}

bool store_leader(store *s, store_node *leader)
{
    pthread_mutex_lock(&s->mu);
    bool r = leaderLocked(s, leader);
    pthread_mutex_unlock(&s->mu);
    return r;
}

bool store_wait_leader(store *s, uint64_t timeout_ms)
{
    struct timespec deadline;
    rq_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&s->mu);
    store_node leader;
    while (!leaderLocked(s, &leader) && !s->closing) {
        if (pthread_cond_timedwait(&s->changed, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    bool r = leaderLocked(s, &leader);
    pthread_mutex_unlock(&s->mu);
    return r;
}

bool store_wait_synced(store *s, uint64_t timeout_ms)
{
    int64_t deadline = rq_now_ms() + (int64_t)timeout_ms;
    pthread_mutex_lock(&s->mu);
    raft_index target = s->leader_commit > 0 ? s->leader_commit : 1;
    bool synced;
    while (!(synced = s->applied_index >= target) && !s->closing) {
        int64_t left = deadline - rq_now_ms();
        if (left <= 0)
            break;
        /* Broadcast on every publish once ready; a short wait all the same. */
        struct timespec ts;
        rq_deadline(&ts, (uint64_t)(left < 10 ? left : 10));
        pthread_cond_timedwait(&s->changed, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return synced;
}

void store_recorded_api(store *s, char *api, size_t size)
{
    pthread_mutex_lock(&s->mu);
    snprintf(api, size, "%s", s->recorded_api);
    pthread_mutex_unlock(&s->mu);
}

int store_nodes(store *s, store_node **nodes)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n_nodes;
    *nodes = calloc(n ? (size_t)n : 1, sizeof **nodes);
    if (n)
        memcpy(*nodes, s->nodes, (size_t)n * sizeof **nodes);
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* rqlite's names of the SSTAT_* counters. */
static const char *const stat_names[SSTAT_N] = {
    [SSTAT_SNAPSHOTS] = "num_snapshots",
    [SSTAT_USER_SNAPSHOTS] = "num_user_snapshots",
    [SSTAT_RESTORES] = "num_restores",
    [SSTAT_RESTORES_START] = "num_restores_start",
    [SSTAT_RESTORES_START_SKIPPED] = "num_restores_start_skipped",
    [SSTAT_SNAPSHOT_TRANSFERS] = "num_snapshot_transfers",
    [SSTAT_JOINS] = "num_joins",
    [SSTAT_IGNORED_JOINS] = "num_ignored_joins",
    [SSTAT_REMOVED_BEFORE_JOINS] = "num_removed_before_joins",
    [SSTAT_LOADS] = "num_loads",
    [SSTAT_BACKUPS] = "num_backups",
    [SSTAT_RECOVERIES] = "num_recoveries",
    [SSTAT_AUTO_OPTIMIZES] = "num_auto_optimizes",
    [SSTAT_AUTO_OPTIMIZES_FAILED] = "num_auto_optimizes_failed",
    [SSTAT_AUTO_VACUUMS] = "num_auto_vacuums",
    [SSTAT_AUTO_VACUUMS_FAILED] = "num_auto_vacuums_failed",
    [SSTAT_NODES_REAPED_OK] = "nodes_reaped_ok",
    [SSTAT_NODES_REAPED_FAILED] = "nodes_reaped_failed",
    [SSTAT_SNAPSHOTS_FAILED] = "num_snapshots_failed",
    [SSTAT_USER_SNAPSHOTS_FAILED] = "num_user_snapshots_failed",
    [SSTAT_WAL_SNAPSHOTS] = "num_wal_snapshots",
    [SSTAT_WAL_SNAPSHOTS_FAILED] = "num_wal_snapshots_failed",
    [SSTAT_BOOTS] = "num_boots",
    [SSTAT_RESTORES_FAILED] = "num_restores_failed",
    [SSTAT_COMPRESSED_COMMANDS] = "num_compressed_commands",
    [SSTAT_UNCOMPRESSED_COMMANDS] = "num_uncompressed_commands",
    [SSTAT_VERIFY_LEADER] = "num_verify_leader",
    [SSTAT_VERIFY_LEADER_FAILED] = "num_verify_leader_failed",
    [SSTAT_DB_STATS_ERRORS] = "num_db_stats_errors",
    [SSTAT_FSM_APPLY_US] = "fsm_apply_duration_us",
    [SSTAT_SNAPSHOT_CREATE_MS] = "snapshot_create_duration",
    [SSTAT_SNAPSHOT_SYNC_MS] = "snapshot_sync_duration",
    [SSTAT_SNAPSHOT_PERSIST_MS] = "snapshot_persist_duration",
    [SSTAT_SNAPSHOT_PERSIST_SIZE] = NULL, /* the "snapshot" map's persist_size */
    [SSTAT_VERIFY_LEADER_MS] = "verify_leader_duration",
    [SSTAT_AUTO_OPTIMIZE_MS] = "auto_optimize_duration",
};

static uint64_t statOf(store *s, int which)
{
    return s ? __atomic_load_n(&s->stats[which], __ATOMIC_RELAXED) : 0;
}

/* The counters from SSTAT 0 up to n, by rqlite's names. */
static json_t *counters(store *s, int n)
{
    json_t *v = json_object();
    for (int i = 0; i < n; i++)
        if (stat_names[i])
            json_object_set_new(v, stat_names[i], json_integer((json_int_t)statOf(s, i)));
    json_object_set_new(v, "auto_vacuum_duration",
                        json_integer(s ? (json_int_t)__atomic_load_n(&s->vac_duration_ms, __ATOMIC_RELAXED) : 0));
    return v;
}

static void setZeros(json_t *v, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_object_set_new(v, keys[i], json_integer(0));
}

json_t *store_vars(store *s)
{
    json_t *v = counters(s, SSTAT_N);
    uint64_t snaps = statOf(s, SSTAT_SNAPSHOTS), changes = 0;
    if (s) {
        pthread_mutex_lock(&s->mu);
        changes = s->leader_changes;
        pthread_mutex_unlock(&s->mu);
    }
    /* Every snapshot is a full one (the synced file), persisted by libraft
     * once finalized. */
    json_object_set_new(v, "num_snapshots_full", json_integer((json_int_t)snaps));
    json_object_set_new(v, "num_snapshot_persists", json_integer((json_int_t)snaps));
    json_object_set_new(v, "leader_changes_observed", json_integer((json_int_t)changes));
    /* Kept at 0: incremental (WAL) snapshots, their CRC32 files and
     * libraft's failed writes (it does not report them to the FSM); the
     * auto-backup uploader reads the store directly, with its own counters
     * in "uploader" (rqlite's provider); libraft has no observer channel
     * that could drop leader changes or report failed heartbeats; -auto-
     * restore's counters (num_auto_restores*) are added by main. */
    static const char *const zeros[] = {
        "num_snapshots_incremental", "num_snapshot_persists_failed", "snapshot_crc32_create_duration",
        "num_provider_checks", "num_provider_provides", "num_provider_provides_fail", "leader_changes_dropped",
        "failed_heartbeat_observed", "num_auto_restores", "num_auto_restores_skipped", "num_auto_restores_failed",
    };
    setZeros(v, zeros, sizeof zeros / sizeof *zeros);
    return v;
}

/* rqlite's "snapshot" map: its snapshot store. Ours is libraft's, holding
 * a marker per snapshot (the database file is the state): what is written
 * for each, and how long libraft took. Kept at 0: incremental sinks and
 * their CRC32 checks, the reaping of older snapshots and WALs (libraft
 * keeps its own two; /reap has nothing to do), read timeouts of a store
 * read while being written, and the upgrade of older on-disk formats
 * (ours are read as they are, see fsmRestore). */
static json_t *snapshotVars(store *s)
{
    json_t *v = json_object();
    json_object_set_new(v, "persist_size", json_integer((json_int_t)statOf(s, SSTAT_SNAPSHOT_PERSIST_SIZE)));
    json_object_set_new(v, "persist_duration_ms", json_integer((json_int_t)statOf(s, SSTAT_SNAPSHOT_PERSIST_MS)));
    json_object_set_new(v, "sink_full_total", json_integer((json_int_t)statOf(s, SSTAT_SNAPSHOTS)));
    static const char *const zeros[] = {
        "sink_incremental_total", "sink_errors", "sink_full_crc32_duration_ms", "auto_reap_duration_ms",
        "reap_execute_duration_ms", "reap_total", "reap_errors", "reap_snapshots", "reap_wals",
        "reap_plan_recovered", "read_timeout_total", "upgrade_ok", "upgrade_fail",
    };
    setZeros(v, zeros, sizeof zeros / sizeof *zeros);
    return v;
}

void store_vars_sections(store *s, json_t *doc)
{
    json_object_set_new(doc, "store", store_vars(s));
    json_object_set_new(doc, "db", db_vars(s ? s->db : NULL));
    json_object_set_new(doc, "db.wal", db_wal_vars());
    uint64_t handled = 0, unregistered = 0, certs = 0;
    if (s)
        transport_mux_counts(&s->transport, &handled, &unregistered, &certs);
    json_object_set_new(doc, "mux", json_pack("{s:I,s:I,s:I}", "num_connections_handled", (json_int_t)handled,
                                              "num_unregistered_handlers", (json_int_t)unregistered,
                                              "num_tls_cert_fetched", (json_int_t)certs));
    json_object_set_new(doc, "snapshot", snapshotVars(s));
    /* rqlite plans snapshot-store operations (checkpoints, CRC32 files)
     * and times them; libraft's snapshot store has no such plans. */
    json_object_set_new(doc, "snapshot.plan",
                        json_pack("{s:i,s:i}", "checkpoint_duration_ms", 0, "calc_crc32_duration_ms", 0));
}

/* A duration in milliseconds as Go prints it ("10s", "50ms"), as rqlite
 * shows its timeouts in /status. */
static json_t *goDuration(uint64_t ms)
{
    char out[48];
    rq_duration_format((int64_t)ms * 1000000, out, sizeof out);
    return json_string(out);
}

/* rqlite's friendly byte counts ("1.2 MB"). */
static json_t *friendlyBytes(long long n)
{
    static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    char out[32];
    if (u == 0)
        snprintf(out, sizeof out, "%lld bytes", n);
    else
        snprintf(out, sizeof out, "%.1f %s", v, units[u]);
    return json_string(out);
}

/* The bytes of the regular files in dir and its subdirectories (rqlite's
 * dir_size). */
static long long dirSize(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[4608];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0)
            continue;
        if (S_ISREG(sb.st_mode))
            total += sb.st_size;
        else if (S_ISDIR(sb.st_mode) && depth < 4)
            total += dirSize(p, depth + 1);
    }
    closedir(d);
    return total;
}

/* rqlite's snapshot_store: the directory and the IDs of the snapshots in
 * it, oldest first. libraft names its snapshot files
 * snapshot-<term>-<index>-<its loop clock, ms> (and a .meta): the ID is
 * the part after "snapshot-", as rqlite's "2-18-1686659761026". */
static json_t *snapshotStore(store *s)
{
    json_t *ids = json_array();
    long long size = 0;
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(s->raft_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        unsigned long long t, i, ms;
        int end = 0;
        if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%n", &t, &i, &ms, &end) != 3)
            continue;
        char p[4608];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", s->raft_dir, e->d_name);
        if (stat(p, &sb) == 0)
            size += sb.st_size;
        if (e->d_name[end] != '\0')
            continue; /* its .meta */
        char **more = realloc(names, (n + 1) * sizeof *names);
        if (more == NULL)
            break;
        names = more;
        names[n++] = strdup(e->d_name + strlen("snapshot-"));
    }
    if (d)
        closedir(d);
    /* By index, then time: numerically, not as text (a handful of them). */
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0; b--) {
            unsigned long long ta, ia, ma, tb, ib, mb;
            sscanf(names[b - 1], "%llu-%llu-%llu", &ta, &ia, &ma);
            sscanf(names[b], "%llu-%llu-%llu", &tb, &ib, &mb);
            if (ia < ib || (ia == ib && ma <= mb))
                break;
            char *tmp = names[b];
            names[b] = names[b - 1];
            names[b - 1] = tmp;
        }
    for (size_t k = 0; k < n; k++) {
        json_array_append_new(ids, json_string(names[k]));
        free(names[k]);
    }
    free(names);
    return json_pack("{s:s,s:I,s:o}", "dir", s->raft_dir, "dir_size", (json_int_t)size, "snapshots", ids);
}

/* store.sqlite3: the database file and its connections. */
static json_t *sqliteStatus(store *s)
{
    db_pragmas ro, rw;
    if (db_get_pragmas(s->db, &ro, &rw) != 0)
        storeStat(s, SSTAT_DB_STATS_ERRORS);
    json_t *pragmas = json_pack("{s:{s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s,s:s}}", "ro", "busy_timeout",
                                ro.busy_timeout, "foreign_keys", ro.foreign_keys, "journal_mode", ro.journal_mode,
                                "synchronous", ro.synchronous, "wal_autocheckpoint", ro.wal_autocheckpoint, "rw",
                                "busy_timeout", rw.busy_timeout, "foreign_keys", rw.foreign_keys, "journal_mode",
                                rw.journal_mode, "synchronous", rw.synchronous, "wal_autocheckpoint",
                                rw.wal_autocheckpoint);
    json_t *opts = json_array();
    const char *o;
    for (int i = 0; (o = sqlite3_compileoption_get(i)) != NULL; i++)
        json_array_append_new(opts, json_string(o));
    return json_pack("{s:s,s:s,s:I,s:I,s:o,s:o}", "version", sqlite3_libversion(), "path", db_path(s->db),
                     "size", (json_int_t)db_file_size(s->db), "wal_size", (json_int_t)db_wal_size(s->db),
                     "compile_options", opts, "pragmas", pragmas);
}

/* rqlite's store.sqlite3.extensions: the file names of the extensions
 * every connection loads. */
static json_t *extensionNames(const config *cfg)
{
    json_t *names = json_array();
    for (int i = 0; i < cfg->n_extensions; i++) {
        const char *slash = strrchr(cfg->extensions[i], '/');
        json_array_append_new(names, json_string(slash ? slash + 1 : cfg->extensions[i]));
    }
    return names;
}

json_t *store_status(store *s)
{
    /* Files first, without the lock. */
    json_t *sqlite = sqliteStatus(s);
    json_object_set_new(sqlite, "extensions", extensionNames(s->cfg));
    json_t *snaps = snapshotStore(s);
    long long dir_size = dirSize(s->cfg->data_dir, 0);
    const config *cfg = s->cfg;
    pthread_mutex_lock(&s->mu);
    store_node leader;
    bool has_leader = leaderLocked(s, &leader);
    json_t *nodes = json_array();
    for (int i = 0; i < s->n_nodes; i++)
        json_array_append_new(nodes, json_pack("{s:s,s:s,s:s}", "id", s->nodes[i].id, "addr",
                                               s->nodes[i].addr, "suffrage",
                                               s->nodes[i].voter ? "voter" : "nonvoter"));
    bool voter = false;
    for (int i = 0; i < s->n_nodes; i++)
        if (strcmp(s->nodes[i].id, cfg->node_id) == 0)
            voter = s->nodes[i].voter;
    json_t *raft = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:i}", "state", stateName(s->state), "term",
        (json_int_t)s->term, "commit_index", (json_int_t)s->commit_index, "applied_index",
        (json_int_t)s->applied_index, "last_log_index", (json_int_t)s->last_index,
        "last_snapshot_index", (json_int_t)s->snapshot_index, "fsm_pending",
        (json_int_t)(s->commit_index > s->applied_index ? s->commit_index - s->applied_index : 0),
        "voter", voter, "num_peers", s->n_nodes > 0 ? s->n_nodes - 1 : 0);
    json_object_set_new(raft, "last_log_term", json_integer((json_int_t)s->last_term));
    /* libraft's heartbeat: how often an idle leader sends AppendEntries. */
    json_object_set_new(raft, "heartbeat_interval", goDuration(s->hb_ms));
    json_object_set_new(raft, "last_snapshot_term", json_integer((json_int_t)s->snapshot_term));
    json_object_set_new(raft, "leader_commit_index", json_integer((json_int_t)s->leader_commit));
    json_object_set_new(raft, "first_log_index", json_integer((json_int_t)s->first_index));
    json_object_set_new(raft, "last_contact_ms_ago",
                        json_integer(s->last_contact_ms ? (json_int_t)(rq_now_ms() - s->last_contact_ms) : -1));
    /* rqlite's: "never", 0 on the leader, else how long ago. */
    if (s->state == RAFT_LEADER)
        json_object_set_new(raft, "last_contact", json_integer(0));
    else if (s->last_contact_ms == 0)
        json_object_set_new(raft, "last_contact", json_string("never"));
    else
        json_object_set_new(raft, "last_contact", goDuration((uint64_t)(rq_now_ms() - s->last_contact_ms)));
    json_t *st = json_pack(
        "{s:s,s:s,s:s,s:b,s:{s:s,s:s},s:o,s:o,s:I,s:I}", "node_id", cfg->node_id, "addr",
        cfg->raft_adv_addr, "dir", cfg->data_dir, "ready", s->ready && !s->ready_held, "leader", "node_id",
        has_leader ? leader.id : "", "addr", has_leader ? leader.addr : "", "nodes", nodes, "raft", raft,
        "fsm_index", (json_int_t)s->applied_index, "db_applied_index", (json_int_t)db_index(s->db));
    storeVacuumStatus(s, st);
    pthread_mutex_unlock(&s->mu);
    json_object_set_new(st, "open", json_true());
    json_object_set_new(st, "sqlite3", sqlite);
    json_object_set_new(st, "snapshot_store", snaps);
    json_object_set_new(st, "dir_size", json_integer((json_int_t)dir_size));
    json_object_set_new(st, "dir_size_friendly", friendlyBytes(dir_size));
    json_object_set_new(st, "apply_timeout", goDuration(cfg->raft_apply_timeout_ms));
    json_object_set_new(st, "heartbeat_timeout", goDuration(cfg->raft_heartbeat_timeout_ms));
    json_object_set_new(st, "election_timeout", goDuration(cfg->raft_election_timeout_ms));
    json_object_set_new(st, "commit_timeout", goDuration(cfg->raft_commit_timeout_ms));
    json_object_set_new(st, "snapshot_threshold", json_integer((json_int_t)storeSnapThreshold(cfg)));
    json_object_set_new(st, "snapshot_interval", goDuration(cfg->raft_snap_int_ms));
    json_object_set_new(st, "trailing_logs", json_integer((json_int_t)storeSnapTrailing(cfg)));
    json_object_set_new(st, "auto_optimize_interval", goDuration(cfg->auto_optimize_int_ms));
    json_object_set_new(st, "reap_timeout", goDuration(cfg->raft_reap_node_timeout_ms));
    json_object_set_new(st, "reap_read_only_timeout", goDuration(cfg->raft_reap_read_only_node_timeout_ms));
    json_object_set_new(st, "db_unguarded_entries", json_integer((json_int_t)db_unguarded(s->db)));
    json_object_set_new(st, "db_conf", json_pack("{s:b}", "fk_constraints", cfg->fk));
    /* rqlite's: capture on (-cdc-config) and hooked to the service. */
    json_object_set_new(st, "cdc", json_pack("{s:b,s:b}", "enabled", cfg->cdc != NULL, "registered", cfg->cdc != NULL));
    json_t *vars = counters(s, SSTAT_N_STATUS); /* our counters, rqlite's expvar names */
    json_object_update(st, vars);
    json_decref(vars);
    return st;
}
