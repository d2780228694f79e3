/*
 * membership.c: who is in the cluster. The node metadata table (node IDs,
 * Raft and API addresses, kept in the log as metadata entries and in
 * snapshots), join, remove, leadership transfer, and the leader's reaping
 * of nodes unreachable for too long.
 *
 * A node's Raft ID is a hash of its node ID, the same on every node, so
 * that any node can name any other in a configuration change. The
 * configuration itself is libraft's; the metadata only adds what libraft
 * does not keep (the node ID and the API address), for /nodes and for
 * forwarding to the leader.
 *
 * store_join, store_remove and store_stepdown run on caller threads
 * through ops; the metadata table, reaping and -raft-remove-shutdown's
 * watch for this node's own removal belong to the Raft thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "cluster/cluster.h"
#include "store/codec.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/os.h"

raft_id storeRaftId(const char *node_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)node_id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h &= 0x7fffffffffffffffULL; /* fits a JSON integer */
    return h ? h : 1;
}

meta *storeMetaFind(store *s, raft_id rid)
{
    for (int i = 0; i < s->n_metas; i++)
        if (s->metas[i].rid == rid)
            return &s->metas[i];
    return NULL;
}

void storeMetaUpsert(store *s, const char *id, raft_id rid, const char *addr, const char *api)
{
    meta *m = storeMetaFind(s, rid);
    if (m == NULL) {
        s->metas = realloc(s->metas, (size_t)(s->n_metas + 1) * sizeof *s->metas);
        m = &s->metas[s->n_metas++];
        memset(m, 0, sizeof *m);
        m->rid = rid;
    }
    snprintf(m->id, sizeof m->id, "%s", id ? id : "");
    snprintf(m->addr, sizeof m->addr, "%s", addr ? addr : "");
    snprintf(m->api, sizeof m->api, "%s", api ? api : "");
    s->meta_dirty = true;
}

json_t *storeMetasToJson(store *s)
{
    json_t *a = json_array();
    for (int i = 0; i < s->n_metas; i++) {
        meta *m = &s->metas[i];
        json_array_append_new(a, json_pack("{s:s,s:I,s:s,s:s}", "id", m->id, "rid",
                                           (json_int_t)m->rid, "addr", m->addr, "api", m->api));
    }
    return a;
}

void storeMetasFromJson(store *s, json_t *a)
{
    free(s->metas);
    s->metas = NULL;
    s->n_metas = 0;
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m)
    {
        storeMetaUpsert(s, json_string_value(json_object_get(m, "id")),
                   (raft_id)json_integer_value(json_object_get(m, "rid")),
                   json_string_value(json_object_get(m, "addr")),
                   json_string_value(json_object_get(m, "api")));
    }
    s->meta_dirty = true;
}

void storeLeaderIdentity(store *s, raft_id lid, char *id, size_t id_size, char *api, size_t api_size)
{
    id[0] = api[0] = '\0';
    if (lid == 0)
        return;
    if (lid == s->id) {
        snprintf(id, id_size, "%s", s->cfg->node_id);
        snprintf(api, api_size, "%s", s->cfg->http_api_url);
        return;
    }
    meta *m = storeMetaFind(s, lid);
    if (m && m->id[0]) {
        snprintf(id, id_size, "%s", m->id);
        snprintf(api, api_size, "%s", m->api);
    }
}

/* Nobody waits for a metadata entry the leader appends on its own. */
static void freeApplyReq(struct raft_apply *req, int status, void *result)
{
    (void)status;
    (void)result;
    free(req);
}

/* Raft thread, leader: append a metadata entry, nobody waiting for it. */
static void appendMeta(store *s, const char *id, raft_id rid, const char *addr, const char *api)
{
    codec_meta_entry me = {.id = id, .rid = rid, .addr = addr, .api = api};
    struct raft_buffer b;
    b.base = codec_meta_encode(&me, &b.len);
    if (b.base == NULL)
        return;
    struct raft_apply *areq = calloc(1, sizeof *areq);
    if (raft_apply(&s->raft, areq, &b, 1, freeApplyReq) != 0) {
        raft_free(b.base);
        free(areq);
    }
}

void storeMetaOnLeader(store *s)
{
    if (s->boot_metas_pending) {
        /* -bootstrap-expect: every node started knowing the others' API
         * addresses; put them in the log, ours included, so that restarts
         * keep them and nodes joining later learn them (a node that does
         * not know the leader's node ID reports no leader). */
        s->boot_metas_pending = false;
        for (int i = 0; i < s->n_metas; i++)
            appendMeta(s, s->metas[i].id, s->metas[i].rid, s->metas[i].addr, s->metas[i].api);
        return;
    }
    char api[300];
    snprintf(api, sizeof api, "%s", s->cfg->http_api_url);
    meta *m = storeMetaFind(s, s->id);
    if (m && strcmp(m->api, api) == 0 && strcmp(m->addr, s->cfg->raft_adv_addr) == 0 &&
        strcmp(m->id, s->cfg->node_id) == 0)
        return;
    appendMeta(s, s->cfg->node_id, s->id, s->cfg->raft_adv_addr, api);
}

/* A reaping removal finished: the next may start. */
static void reapCb(struct raft_change *req, int status)
{
    store *s = req->data;
    s->reap_pending = false;
    storeStat(s, status == 0 ? SSTAT_NODES_REAPED_OK : SSTAT_NODES_REAPED_FAILED);
    if (status != 0)
        rq_logl(RQ_LOG_WARN, "store", "reaping failed: %s", raft_strerror(status));
    free(req);
}

/* Leader: remove voters unreachable for -raft-reap-node-timeout and
 * non-voters unreachable for -raft-reap-read-only-node-timeout (rqlite's
 * reaping). The clock starts when we become leader. */
void storeReapCheck(store *s)
{
    uint64_t tv = s->cfg->raft_reap_node_timeout_ms, tr = s->cfg->raft_reap_read_only_node_timeout_ms;
    if ((!tv && !tr) || s->raft.state != RAFT_LEADER || !s->leader_ready || s->reap_pending)
        return;
    int64_t now = rq_now_ms();
    if (s->reap_term != s->raft.current_term) {
        s->reap_term = s->raft.current_term;
        for (unsigned i = 0; i < s->raft.configuration.n; i++)
            storePeer(s, s->raft.configuration.servers[i].id)->heard_ms = now;
    }
    for (unsigned i = 0; i < s->raft.configuration.n; i++) {
        struct raft_server *sv = &s->raft.configuration.servers[i];
        if (sv->id == s->id)
            continue;
        peerCount *p = storePeer(s, sv->id);
        if (p->heard_ms == 0)
            p->heard_ms = now;
        uint64_t limit = sv->role == RAFT_VOTER ? tv : tr;
        if (!limit || (uint64_t)(now - p->heard_ms) <= limit)
            continue;
        meta *m = storeMetaFind(s, sv->id);
        rq_log("store", "reaping %s node %s at %s: unreachable for %lld ms",
               sv->role == RAFT_VOTER ? "voting" : "non-voting", m ? m->id : "?", sv->address,
               (long long)(now - p->heard_ms));
        struct raft_change *req = calloc(1, sizeof *req);
        req->data = s;
        if (raft_remove(&s->raft, req, sv->id, reapCb) != 0) {
            free(req);
            return;
        }
        s->reap_pending = true;
        return;
    }
}

/* ---- -raft-remove-shutdown ---------------------------------------------------------- */

/* Does the other members' leader still list us? Asked of each member's API
 * in turn (/status?key=store), the first that knows a leader answering:
 * libraft's leader stops sending to a follower as soon as it removes it,
 * so the follower never hears of its removal from Raft itself. */
static void *removalProbe(void *arg)
{
    store *s = arg;
    store_node *nodes = NULL;
    int n = store_nodes(s, &nodes);
    char *auth = cluster_own_authorization(s->cfg);
    for (int i = 0; i < n; i++) {
        if (strcmp(nodes[i].id, s->cfg->node_id) == 0 || nodes[i].api_addr[0] == '\0')
            continue;
        char url[400];
        snprintf(url, sizeof url, "%s/status?key=store", nodes[i].api_addr);
        cluster_response resp;
        char *err = NULL;
        if (cluster_forward("GET", url, NULL, 0, NULL, auth, 2000, &resp, &err) != 0) {
            free(err);
            continue;
        }
        json_t *st = resp.status == 200 ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
        cluster_response_free(&resp);
        const char *leader = json_string_value(json_object_get(json_object_get(st, "leader"), "node_id"));
        json_t *members = json_object_get(st, "nodes");
        if (leader && *leader && json_is_array(members) && json_array_size(members) > 0) {
            bool listed = false;
            size_t k;
            json_t *m;
            json_array_foreach(members, k, m)
                listed |= json_is_string(json_object_get(m, "id")) &&
                          strcmp(json_string_value(json_object_get(m, "id")), s->cfg->node_id) == 0;
            json_decref(st);
            if (!listed)
                __atomic_store_n(&s->removal_told, true, __ATOMIC_RELEASE);
            break;
        }
        json_decref(st);
    }
    auth_free_secret(auth);
    free(nodes);
    job_done(&s->removal);
    return NULL;
}

void storeRemovalCheck(store *s)
{
    struct raft *r = &s->raft;
    if (!s->cfg->raft_remove_shutdown)
        return;
    bool listed = false;
    for (unsigned i = 0; i < r->configuration.n; i++)
        listed |= r->configuration.servers[i].id == s->id;
    if (listed) {
        s->was_member = true;
    } else if (s->was_member && r->configuration_uncommitted_index == 0) {
        /* A leader that removed itself, or a follower that got the change. */
        storeShutdownRaft(s, "this node was removed from the cluster's configuration");
        return;
    }
    if (__atomic_load_n(&s->removal_told, __ATOMIC_ACQUIRE)) {
        storeShutdownRaft(s, "the cluster's leader no longer lists this node");
        return;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(r, &lid, &laddr);
    int64_t now = rq_now_ms();
    if (lid != 0 || !s->was_member) {
        s->leaderless_ms = 0;
        return;
    }
    if (s->leaderless_ms == 0)
        s->leaderless_ms = now;
    /* Without a leader for two election timeouts, ask, every two seconds. */
    int64_t et = (int64_t)s->cfg->raft_election_timeout_ms;
    if (now - s->leaderless_ms < 2 * et || now - s->removal_asked_ms < 2000 || job_busy(&s->removal))
        return;
    s->removal_asked_ms = now;
    job_start(&s->removal, removalProbe, s);
}

void storeRemovalClose(store *s)
{
    job_close(&s->removal);
}

/* Caller thread: one configuration change (OP_ADD, OP_ASSIGN, OP_REMOVE),
 * retried while libraft is busy with another. */
/* changeOp's answer when libraft gave up promoting a node that did not
 * catch up in time (RAFT_NOCONNECTION), besides the STORE_* codes. */
#define STORE_NOT_CAUGHT_UP 100

static int changeOp(store *s, int type, raft_id rid, const char *addr, int role, char **err)
{
    /* libraft runs one configuration change at a time: retry while busy. */
    int64_t deadline = rq_now_ms() + 60000;
    for (;;) {
        op *o = storeOpNew(s, type);
        o->rid = rid;
        o->role = role;
        if (addr)
            snprintf(o->addr, sizeof o->addr, "%s", addr);
        int rc = storeOpRun(s, o, 60000);
        int raft_rc = o->raft_rc;
        /* A node added earlier whose promotion failed is still a spare:
         * adding it again is a no-op, its promotion is retried next. */
        if (rc == STORE_OK || (type == OP_ADD && raft_rc == RAFT_DUPLICATEID)) {
            storeOpRelease(s, o);
            return STORE_OK;
        }
        if (rc == STORE_ERROR && raft_rc == RAFT_CANTCHANGE && rq_now_ms() < deadline) {
            storeOpRelease(s, o);
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc == STORE_ERROR)
            *err = storeOpTakeErr(o, "timeout waiting for the membership change");
        storeOpRelease(s, o);
        return rc == STORE_ERROR && raft_rc == RAFT_NOCONNECTION ? STORE_NOT_CAUGHT_UP : rc;
    }
}

/* A voter-to-be becomes a standby first (a spare gets nothing; a standby
 * gets the log and, if need be, the database), then a voter. libraft
 * promotes only a node that keeps up with its catch-up rounds: one still
 * receiving a large database fails that, stays a standby, and asks again
 * once it has caught up (main.c); its join succeeds meanwhile, instead of
 * failing while the transfer runs. */
static int assignRole(store *s, const char *id, raft_id rid, bool voter, bool is_spare, char **err)
{
    int rc;
    if (!voter || is_spare) {
        if ((rc = changeOp(s, OP_ASSIGN, rid, NULL, RAFT_STANDBY, err)) != STORE_OK || !voter)
            return rc;
    }
    rc = changeOp(s, OP_ASSIGN, rid, NULL, RAFT_VOTER, err);
    if (rc == STORE_NOT_CAUGHT_UP) {
        rq_log("store", "node %s has not caught up yet (%s): it stays a non-voter until it asks again", id,
               *err ? *err : "?");
        free(*err);
        *err = NULL;
        return STORE_OK;
    }
    return rc;
}

/* Caller thread: record a node's metadata in the log before it is added,
 * so that every node can forward to its API once it is a member. */
static int applyMeta(store *s, const char *id, const char *addr, const char *api, char **err)
{
    op *o = storeOpNewApply(s);
    codec_meta_entry me = {.id = id, .rid = storeRaftId(id), .addr = addr, .api = api};
    o->entry = codec_meta_encode(&me, &o->entry_len);
    if (o->entry == NULL)
        return storeOpNoMemory(s, o, err);
    int rc = storeOpRun(s, o, 10000);
    if (rc == STORE_ERROR)
        *err = storeOpTakeErr(o, "timeout recording node metadata");
    storeOpRelease(s, o);
    return rc;
}

/* With node TLS, a node joins only if this node can make a TLS session
 * with its Raft port, each side verifying the other as configured: a join
 * through the HTTP API does not cross the Raft port, and would otherwise
 * add a member nobody can talk to (a rogue certificate, a wrong CA). A
 * node that does not answer at all is added, as without TLS (it may be
 * starting, or behind a partition). Runs on the caller's thread. */
static int checkPeerTls(store *s, const char *id, const char *raft_addr, char **err)
{
    bool refused = false;
    char *why = NULL;
    free(cluster_api_url(s->cfg->node_tls, raft_addr, 2000, &refused, &why));
    if (!refused) {
        free(why);
        return STORE_OK;
    }
    rq_logl(RQ_LOG_WARN, "store", "refusing to add node %s at %s: %s", id, raft_addr, why ? why : "TLS failed");
    *err = rq_sprintf("refusing to add node %s: %s", id, why ? why : "TLS failed");
    free(why);
    return STORE_ERROR;
}

int store_join(store *s, const char *id, const char *raft_addr, const char *api_addr,
               bool voter, bool reset, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    raft_id rid = storeRaftId(id);
    store_node *nodes = NULL;
    int n = store_nodes(s, &nodes);
    bool same = false, same_voter = false, api_same = false;
    raft_id conflicts[2];
    int n_conflicts = 0;
    for (int i = 0; i < n; i++) {
        bool id_eq = strcmp(nodes[i].id, id) == 0;
        bool addr_eq = strcmp(nodes[i].addr, raft_addr) == 0;
        if (id_eq && addr_eq) {
            same = true;
            same_voter = nodes[i].voter == voter;
            api_same = !api_addr || !*api_addr || strcmp(nodes[i].api_addr, api_addr) == 0;
        } else if ((id_eq || addr_eq) && n_conflicts < 2) {
            conflicts[n_conflicts++] = storeRaftId(nodes[i].id);
        }
    }
    free(nodes);
    int rc;
    bool noop = same && !reset && same_voter && api_same;
    if (!noop && s->cfg->node_tls && (rc = checkPeerTls(s, id, raft_addr, err)) != STORE_OK)
        return rc;
    if (same && reset) {
        /* The node lost its state: the leader's view of its log (match
         * index) is wrong now and Raft never lowers it, so replication to
         * it would stall. Removing and re-adding it starts afresh. */
        rq_log("store", "node %s at %s rejoins without state: removing and re-adding it", id,
               raft_addr);
        if ((rc = changeOp(s, OP_REMOVE, rid, NULL, 0, err)) != STORE_OK)
            return rc;
        storeStat(s, SSTAT_REMOVED_BEFORE_JOINS);
        same = false;
    } else if (same && same_voter && api_same) {
        rq_log("store", "node %s at %s is already a member, ignoring join request", id, raft_addr);
        storeStat(s, SSTAT_IGNORED_JOINS);
        return STORE_OK;
    }
    for (int i = 0; i < n_conflicts; i++) {
        rq_log("store", "removing node %llx before re-adding %s at %s",
               (unsigned long long)conflicts[i], id, raft_addr);
        if ((rc = changeOp(s, OP_REMOVE, conflicts[i], NULL, 0, err)) != STORE_OK)
            return rc;
        storeStat(s, SSTAT_REMOVED_BEFORE_JOINS);
    }
    if ((rc = applyMeta(s, id, raft_addr, api_addr, err)) != STORE_OK)
        return rc;
    if (!same) {
        rq_log("store", "adding node %s at %s (voter=%s)", id, raft_addr, voter ? "true" : "false");
        if ((rc = changeOp(s, OP_ADD, rid, raft_addr, 0, err)) != STORE_OK)
            return rc;
    }
    if ((!same || !same_voter) && (rc = assignRole(s, id, rid, voter, !same, err)) != STORE_OK)
        return rc;
    rq_log("store", "node %s at %s joined successfully", id, raft_addr);
    storeStat(s, SSTAT_JOINS);
    return STORE_OK;
}

/* Whether a node ID is in the published configuration. */
static bool isMember(store *s, const char *id)
{
    store_node *nodes = NULL;
    int n = store_nodes(s, &nodes);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= strcmp(nodes[i].id, id) == 0;
    free(nodes);
    return found;
}

int store_remove(store *s, const char *id, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    if (!isMember(s, id)) {
        *err = rq_sprintf("node %s not found in cluster", id);
        return STORE_ERROR;
    }
    rq_log("store", "removing node %s from cluster", id);
    return changeOp(s, OP_REMOVE, storeRaftId(id), NULL, 0, err);
}

int store_stepdown(store *s, const char *id, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    raft_id rid = 0;
    if (id && *id) {
        if (strcmp(id, s->cfg->node_id) == 0) {
            *err = strdup("cannot step down to the current Leader");
            return STORE_ERROR;
        }
        if (!isMember(s, id)) {
            *err = strdup("node not found in cluster");
            return STORE_ERROR;
        }
        rid = storeRaftId(id);
    }
    op *o = storeOpNew(s, OP_TRANSFER);
    o->rid = rid;
    int rc = storeOpRun(s, o, 10000);
    if (rc == STORE_ERROR)
        *err = storeOpTakeErr(o, "timeout waiting for leadership transfer");
    storeOpRelease(s, o);
    return rc;
}
