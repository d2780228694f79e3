/*
 * readindex.c: level=linearizable without a log write (Raft dissertation
 * 6.4). Note the commit index, then wait until a majority of voters has
 * answered an AppendEntries (or InstallSnapshot) sent *after* the read
 * arrived, which proves we were still the leader then, and until that
 * index is applied.
 *
 * libraft does not expose this, so the raft_io's send and receive are
 * wrapped (raftio.c) to count, per voter, the messages submitted and the
 * results received in the current term. Results come back in the order the
 * follower processed the messages, and lost messages only remove results,
 * so the (K+1)-th result counted after K sends were submitted answers a
 * message sent after the read: that is the confirmation. A read that is
 * not confirmed in time falls back to a barrier through the log
 * (store_query).
 *
 * Everything here runs on the Raft thread. The per-voter counters also
 * keep when each node was last heard from, for reaping (membership.c), the
 * leader's freshness (publish.c) and its lease (storeLeaseCheck).
 */
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/os.h"

peerCount *storePeer(store *s, raft_id id)
{
    if (s->peers_term != s->raft.current_term) { /* counts are per term */
        for (unsigned i = 0; i < s->n_peers; i++)
            s->peers[i].sent = s->peers[i].recvd = 0;
        s->peers_term = s->raft.current_term;
    }
    for (unsigned i = 0; i < s->n_peers; i++)
        if (s->peers[i].id == id)
            return &s->peers[i];
    s->peers = realloc(s->peers, (s->n_peers + 1) * sizeof *s->peers);
    peerCount *p = &s->peers[s->n_peers++];
    p->id = id;
    p->sent = p->recvd = 0;
    p->heard_ms = 0;
    return p;
}

void storeReadStart(store *s, op *o)
{
    struct raft *r = &s->raft;
    o->index = r->commit_index;
    o->term = r->current_term;
    o->start_ms = rq_now_ms();
    o->marks = calloc(r->configuration.n ? r->configuration.n : 1, sizeof *o->marks);
    o->n_marks = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        struct raft_server *srv = &r->configuration.servers[i];
        if (srv->role != RAFT_VOTER || srv->id == s->id)
            continue;
        o->marks[o->n_marks].id = srv->id;
        o->marks[o->n_marks].sent = storePeer(s, srv->id)->sent;
        o->n_marks++;
    }
    o->next = s->reads;
    s->reads = o;
}

/* Whether a majority of voters, us included, has answered a message sent
 * after read o was registered: we were still the leader when it came. */
static bool quorumAnswered(store *s, op *o)
{
    struct raft *r = &s->raft;
    unsigned voters = 0, acks = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        struct raft_server *srv = &r->configuration.servers[i];
        if (srv->role != RAFT_VOTER)
            continue;
        voters++;
        if (srv->id == s->id) {
            acks++;
            continue;
        }
        for (unsigned k = 0; k < o->n_marks; k++)
            if (o->marks[k].id == srv->id && storePeer(s, srv->id)->recvd > o->marks[k].sent)
                acks++;
    }
    return acks > voters / 2;
}

void storeReadsProgress(store *s)
{
    struct raft *r = &s->raft;
    int64_t now = rq_now_ms();
    for (op **pp = &s->reads; *pp;) {
        op *o = *pp;
        int rc = -1;
        if (r->state != RAFT_LEADER || r->current_term != o->term) {
            rc = STORE_NOT_LEADER;
        } else {
            if (!o->confirmed && (o->confirmed = quorumAnswered(s, o))) {
                o->deadline_ms = now + (int64_t)o->wait_ms; /* now to apply up to o->index */
                storeStatSet(s, SSTAT_VERIFY_LEADER_MS, (uint64_t)(now - o->start_ms));
            }
            if (o->confirmed && r->last_applied >= o->index)
                rc = STORE_OK;
            else if (now >= o->deadline_ms)
                rc = STORE_ERROR;
        }
        if (rc < 0) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        o->next = NULL;
        /* rqlite's VerifyLeader: every check, and those that failed. */
        storeStat(s, SSTAT_VERIFY_LEADER);
        if (!o->confirmed)
            storeStat(s, SSTAT_VERIFY_LEADER_FAILED);
        free(o->marks);
        o->marks = NULL;
        char *why = NULL;
        if (rc == STORE_ERROR && o->confirmed)
            why = rq_sprintf("index %llu: timeout waiting for fsm", (unsigned long long)o->index);
        else if (rc == STORE_ERROR)
            why = strdup("read index not confirmed in time");
        else if (rc == STORE_NOT_LEADER)
            why = strdup("leadership lost");
        storeOpComplete(o, rc, why);
    }
}

/* Send a round of AppendEntries to every follower now, instead of at the
 * next heartbeat: linearizable reads registered just before are confirmed
 * by the answers (a round trip, not up to a heartbeat interval). libraft
 * has no call for it; its tick with a zero heartbeat interval does it. */
void storeHeartbeatNow(store *s)
{
    struct raft *r = &s->raft;
    if (r->state != RAFT_LEADER || s->raft_tick == NULL)
        return;
    unsigned hb = r->heartbeat_timeout;
    r->heartbeat_timeout = 0;
    s->raft_tick(&s->io);
    r->heartbeat_timeout = hb;
}

int64_t storeQuorumContactMs(store *s)
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

/* libraft has no call to step down. Its leader does on a tick once an
 * election timeout has passed since its last check without an answer from
 * a quorum (tickLeader): make it look so, and tick. */
static void stepDownNow(store *s)
{
    struct raft *r = &s->raft;
    if (r->state != RAFT_LEADER || s->raft_tick == NULL)
        return;
    for (unsigned i = 0; i < r->configuration.n; i++)
        r->leader_state.progress[i].recent_recv = false;
    raft_time now = r->io->time(r->io);
    r->election_timer_start = now > r->election_timeout ? now - r->election_timeout : 0;
    s->raft_tick(&s->io);
}

/* A stall of the Raft thread longer than this (a long entry) restarts the
 * lease: the answers it could not read meanwhile wait in the sockets. */
#define LEASE_STALL_MS 150

void storeLeaseCheck(store *s)
{
    struct raft *r = &s->raft;
    uint64_t lease = s->cfg->raft_leader_lease_timeout_ms;
    int64_t now = rq_now_ms(), prev = s->lease_tick_ms;
    s->lease_tick_ms = now;
    if (lease == 0 || r->state != RAFT_LEADER) {
        s->lease_term = 0;
        return;
    }
    if (s->lease_term != r->current_term || now - prev > LEASE_STALL_MS) {
        s->lease_term = r->current_term; /* the lease runs from now */
        s->lease_from_ms = now;
        return;
    }
    int64_t contact = storeQuorumContactMs(s);
    if (contact < s->lease_from_ms)
        contact = s->lease_from_ms;
    if (now - contact < (int64_t)lease)
        return;
    char d[32];
    rq_duration_format((int64_t)lease * 1000000, d, sizeof d);
    rq_logl(RQ_LOG_WARN, "store",
            "failed to contact a quorum of nodes for %lld ms (-raft-leader-lease-timeout %s): "
            "stepping down",
            (long long)(now - contact), d);
    stepDownNow(s);
}
