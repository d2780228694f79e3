/*
 * raftio.c: what the store changes in libraft's raft_io, by wrapping its
 * send, receive and start (storeRaftioWrap, before raft_init's first use
 * of them). Three reasons, all on the Raft thread:
 *
 * - Read index (readindex.c): AppendEntries and InstallSnapshot sent to
 *   each voter, and the results received from it, are counted per term.
 * - Snapshot transfer (fetch.c): an InstallSnapshot whose database index
 *   our file does not hold is held back until the sender's file is here.
 * - Two libraft 0.15 bugs around a stale log tail (a follower's entries
 *   from an old term beyond what the leader sent): it commits up to its
 *   own log length instead of the last new entry, and it answers with its
 *   whole log length, which the leader takes as replicated. Both are
 *   clamped to what the message covered.
 *
 * The wrapped append times this node's disk writes of entries (store_stage).
 *
 * The wrapped receive also records the leader's commit index as the
 * leader said it (freshness_strict) and, on the leader, when each node was
 * last heard from (reaping, freshness).
 */
#include <stdlib.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/os.h"

/* A send of ours around libraft's, to learn whether it was delivered. */
typedef struct sendWrap {
    struct raft_io_send req;
    struct raft_io_send *orig;
    raft_io_send_cb cb;
    store *s;
    raft_id id;
    raft_term term;
} sendWrap;

/* A send counted for the read index completed. */
static void sendWrapCb(struct raft_io_send *req, int status)
{
    sendWrap *w = req->data;
    store *s = w->s;
    /* A failed send was not delivered: it will never be answered. */
    if (status != 0 && s->raft.current_term == w->term) {
        peerCount *p = storePeer(s, w->id);
        if (p->sent > p->recvd)
            p->sent--;
    }
    w->cb(w->orig, status);
    free(w);
}

/* Every message sent passes here before libraft's send encodes it. */
static int wrappedSend(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                       raft_io_send_cb cb)
{
    store *s = ((struct raft *)io->data)->data;
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && s->answering_ae &&
        m->append_entries_result.rejected == 0 &&
        m->append_entries_result.last_log_index > s->ae_limit) {
        /* libraft 0.15 answers a matching AppendEntries with its whole log
         * length, including a stale tail the leader never sent (left by
         * an old term). The leader would take that tail as replicated and
         * ignore the follower's later rejections forever. Only what the
         * message covered is known to match. (uv send encodes at once, so
         * a copy on the stack is enough.) */
        struct raft_message fixed = *m;
        fixed.append_entries_result.last_log_index = s->ae_limit;
        return s->io_send(io, req, &fixed, cb);
    }
    if (m->type != RAFT_IO_APPEND_ENTRIES && m->type != RAFT_IO_INSTALL_SNAPSHOT)
        return s->io_send(io, req, m, cb);
    sendWrap *w = malloc(sizeof *w);
    if (w == NULL)
        return RAFT_NOMEM;
    w->req.data = w;
    w->orig = req;
    w->cb = cb;
    w->s = s;
    w->id = m->server_id;
    w->term = s->raft.current_term;
    int rv = s->io_send(io, &w->req, m, sendWrapCb);
    if (rv != 0) {
        free(w);
        return rv;
    }
    storePeer(s, m->server_id)->sent++;
    return 0;
}

/* An append of ours around libraft's, to time the disk write. */
typedef struct appendWrap {
    struct raft_io_append req;
    struct raft_io_append *orig;
    raft_io_append_cb cb;
    store *s;
    unsigned n;
    double t0;
} appendWrap;

static void appendWrapCb(struct raft_io_append *req, int status)
{
    appendWrap *w = req->data;
    if (status == 0) {
        store_stage(w->s, STORE_STAGE_APPEND, rq_now_sec() - w->t0);
        __atomic_fetch_add(&w->s->appended, w->n, __ATOMIC_RELAXED);
    }
    w->cb(w->orig, status);
    free(w);
}

/* libraft's uv backend writes the appends that queue while one is in
 * flight together, with one fdatasync: each of ours is timed from its
 * request to its callback. */
static int wrappedAppend(struct raft_io *io, struct raft_io_append *req, const struct raft_entry *entries, unsigned n,
                         raft_io_append_cb cb)
{
    store *s = ((struct raft *)io->data)->data;
    appendWrap *w = malloc(sizeof *w);
    if (w == NULL)
        return RAFT_NOMEM;
    *w = (appendWrap){.orig = req, .cb = cb, .s = s, .n = n, .t0 = rq_now_sec()};
    w->req.data = w;
    int rv = s->io_append(io, &w->req, entries, n, appendWrapCb);
    if (rv != 0)
        free(w);
    return rv;
}

/* An InstallSnapshot whose database our file does not hold waits for the
 * sender's file (fetch.c): true when it was taken for that. */
static bool holdInstall(store *s, struct raft_message *m)
{
    codec_snapshot snap;
    const struct raft_buffer *d = &m->install_snapshot.data;
    if (codec_snap_decode(d->base, d->len, &snap) != 0)
        return false;
    json_decref(snap.metas);
    if (snap.version != 2 || m->install_snapshot.term < s->raft.current_term)
        return false;
    db_resolve_index(s->db, snap.db_index);
    if (db_index(s->db) >= snap.db_index)
        return false;
    storeFetchStart(s, m, snap.db_index);
    return true;
}

/* Raft's rule is commit = min(leaderCommit, index of the last new entry);
 * libraft 0.15 uses its own log length instead, which could commit a stale
 * tail. Clamp the leader's commit to what the message covers, and remember
 * that limit while libraft answers (wrappedSend). */
static void recvAppendEntries(store *s, struct raft_io *io, struct raft_message *m)
{
    struct raft_append_entries *ae = &m->append_entries;
    /* What the leader has committed, before the clamp below: a follower
     * catching up is behind it (freshness_strict). */
    if (ae->term > s->leader_commit_term) {
        s->leader_commit_term = ae->term;
        s->leader_commit_seen = 0;
    }
    if (ae->term == s->leader_commit_term && ae->leader_commit > s->leader_commit_seen)
        s->leader_commit_seen = ae->leader_commit;
    raft_index limit = ae->prev_log_index + ae->n_entries;
    if (ae->leader_commit > limit)
        ae->leader_commit = limit;
    s->answering_ae = true;
    s->ae_limit = limit;
    s->raft_recv(io, m);
    s->answering_ae = false;
}

/* Every message received passes here before libraft sees it. */
static void wrappedRecv(struct raft_io *io, struct raft_message *m)
{
    struct raft *r = io->data;
    store *s = r->data;
    if (r->state == RAFT_LEADER)
        storePeer(s, m->server_id)->heard_ms = rq_now_ms();
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT && holdInstall(s, m))
        return;
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && r->state == RAFT_LEADER &&
        m->append_entries_result.term == r->current_term)
        storePeer(s, m->server_id)->recvd++;
    if (m->type == RAFT_IO_APPEND_ENTRIES)
        recvAppendEntries(s, io, m);
    else
        s->raft_recv(io, m);
}

/* libraft's receive and tick callbacks are only known at start. */
static int wrappedStart(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    store *s = ((struct raft *)io->data)->data;
    s->raft_recv = recv;
    s->raft_tick = tick;
    return s->io_start(io, msecs, tick, wrappedRecv);
}

void storeRaftioWrap(store *s)
{
    s->io_send = s->io.send;
    s->io_start = s->io.start;
    s->io_append = s->io.append;
    s->io.send = wrappedSend;
    s->io.start = wrappedStart;
    s->io.append = wrappedAppend;
}
