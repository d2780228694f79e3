/*
 * publish.c: the state other threads may read. After every iteration of
 * its loop (a uv_check handle) the Raft thread copies what callers need
 * (role, leader, indexes, members, contact times) into struct store under
 * s->mu, reacts to role changes, and completes the reads and snapshots
 * that were waiting for the state to move. Callers read only this copy:
 * store_ready, store_is_leader, store_leader, store_wait_leader,
 * store_nodes and store_status (the "store" section of /status).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
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
}

/* Leader: the latest time by which a majority of voters (counting us, now)
 * had been heard from; 0 when unknown. A leader cut off from the others
 * keeps believing it leads for up to an election timeout: this dates its
 * data for freshness. */
static int64_t quorumContactMs(store *s)
{
    struct raft *r = &s->raft;
    int64_t times[64];
    unsigned n = 0;
    for (unsigned i = 0; i < r->configuration.n && n < 64; i++) {
        struct raft_server *sv = &r->configuration.servers[i];
        if (sv->role != RAFT_VOTER)
            continue;
        times[n++] = sv->id == s->id ? rq_now_ms() : storePeer(s, sv->id)->heard_ms;
    }
    if (n == 0)
        return 0;
    /* The (n/2+1)-th most recent contact. */
    for (unsigned i = 1; i < n; i++)
        for (unsigned k = i; k > 0 && times[k] > times[k - 1]; k--) {
            int64_t t = times[k];
            times[k] = times[k - 1];
            times[k - 1] = t;
        }
    return times[n / 2];
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
        else
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
    if (!s->raft_started)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(r, &lid, &laddr);
    roleChange(s, lid, laddr);

    int64_t quorum_ms = r->state == RAFT_LEADER ? quorumContactMs(s) : 0;
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
    s->first_index = r->log.front != r->log.back ? r->log.offset + 1 : 0;
    if (r->state == RAFT_FOLLOWER && lid != 0)
        contactLocked(s);
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

bool store_ready(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->ready;
    pthread_mutex_unlock(&s->mu);
    return r;
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

json_t *store_status(store *s)
{
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
        if (strcmp(s->nodes[i].id, s->cfg->node_id) == 0)
            voter = s->nodes[i].voter;
    json_t *raft = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:i}", "state", stateName(s->state), "term",
        (json_int_t)s->term, "commit_index", (json_int_t)s->commit_index, "applied_index",
        (json_int_t)s->applied_index, "last_log_index", (json_int_t)s->last_index,
        "last_snapshot_index", (json_int_t)s->snapshot_index, "fsm_pending",
        (json_int_t)(s->commit_index > s->applied_index ? s->commit_index - s->applied_index : 0),
        "voter", voter, "num_peers", s->n_nodes > 0 ? s->n_nodes - 1 : 0);
    json_object_set_new(raft, "leader_commit_index", json_integer((json_int_t)s->leader_commit));
    json_object_set_new(raft, "first_log_index", json_integer((json_int_t)s->first_index));
    json_object_set_new(raft, "last_contact_ms_ago",
                        json_integer(s->last_contact_ms ? (json_int_t)(rq_now_ms() - s->last_contact_ms) : -1));
    json_t *st = json_pack(
        "{s:s,s:s,s:s,s:b,s:{s:s,s:s},s:o,s:o,s:I,s:I,s:{s:s,s:s,s:I}}", "node_id",
        s->cfg->node_id, "addr", s->cfg->raft_adv_addr, "dir", s->cfg->data_dir, "ready", s->ready,
        "leader", "node_id", has_leader ? leader.id : "", "addr", has_leader ? leader.addr : "",
        "nodes", nodes, "raft", raft, "fsm_index", (json_int_t)s->applied_index,
        "db_applied_index", (json_int_t)db_index(s->db), "sqlite3", "version",
        sqlite3_libversion(), "path", db_path(s->db), "size", (json_int_t)db_file_size(s->db));
    json_object_set_new(st, "snapshot_threshold", json_integer((json_int_t)s->cfg->raft_snap));
    json_object_set_new(st, "apply_timeout", json_integer((json_int_t)s->cfg->raft_apply_timeout_ms));
    json_object_set_new(st, "election_timeout",
                        json_integer((json_int_t)s->cfg->raft_election_timeout_ms));
    json_object_set_new(st, "heartbeat_timeout",
                        json_integer((json_int_t)s->cfg->raft_heartbeat_timeout_ms));
    json_object_set_new(st, "num_snapshots", json_integer((json_int_t)s->num_snapshots));
    json_object_set_new(st, "num_restores", json_integer((json_int_t)s->num_restores));
    json_object_set_new(st, "num_restores_skipped", json_integer((json_int_t)s->num_restores_skipped));
    json_object_set_new(st, "num_snapshot_transfers", json_integer((json_int_t)s->num_fetches));
    json_object_set_new(st, "db_unguarded_entries", json_integer((json_int_t)db_unguarded(s->db)));
    json_object_set_new(st, "db_conf", json_pack("{s:b}", "fk_constraints", s->cfg->fk));
    pthread_mutex_unlock(&s->mu);
    return st;
}
