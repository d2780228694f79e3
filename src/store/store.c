/*
 * store: SQLite replicated by canonical/raft.
 *
 * Threads. The Raft instance, its libuv loop, the FSM and the database's
 * write connection belong to one thread (the "Raft thread"). Other threads
 * talk to it through ops: an op is queued under s->mu, the loop is woken
 * with uv_async_send(), the Raft thread starts the Raft call, and the op
 * completes (condition variable) from the Raft callback. A waiter that gives
 * up (timeout) leaves the op to be freed by the Raft thread.
 *
 * After every loop iteration the Raft thread publishes a copy of the state
 * other threads need (role, leader, indexes, members) under s->mu.
 *
 * Exactly-once application. The SQLite file persists and records, in the
 * same transaction as an entry's changes, the index of the last entry it
 * holds (db.h). The FSM skips SQL entries at or below that index, so after
 * a restart libraft's replay of the log tail costs nothing, whatever the
 * size of the database, and no entry is applied twice.
 *
 * Snapshots carry no data, only a marker: "RQSNAP02", u32 length, a JSON
 * map {"i": Raft index, "d": index of the last SQL entry then (what a file
 * must hold to stand for the snapshot), "m": node metadata}. Taking one
 * makes the file durable up to that index (db_sync) before libraft
 * compacts the log. A follower that
 * needs a snapshot is behind the file of any up-to-date node: when an
 * InstallSnapshot arrives and its own file is older, it streams a
 * consistent copy of the sender's file over the sender's Raft port
 * (cluster_fetch_image; imageCopy() makes the copy on the sending side;
 * written to disk as it arrives, progress in the log), swaps it in, and
 * only then hands the message to libraft. Memory stays bounded whatever
 * the database size.
 * (Format "RQSNAP01", with the whole image inline, is still restored.)
 *
 * Log entries:
 *   "RQEXEC01" origin seq flags ms seed len (u64 LE) + statements JSON
 *                                                     execute (applyExec)
 *   "RQLOAD01" origin seq len + SQLite image           load (applyLoad)
 *   {"t":"m","id":..,"rid":..,"addr":..,"api":..}     node metadata
 *   {"t":"x",...,"q":[statements]}                    execute, older format
 * ORIGIN/SEQ let the proposing node find the waiting request when the entry
 * is applied, so that only that node encodes results (and it applies the
 * statements it already parsed). MS/SEED are the proposer's clock and a
 * random seed: every replica evaluates 'now' and
 * random() from them, so non-deterministic SQL replicates identically.
 *
 * Snapshots: "RQSNAP01", u32 length of a JSON metadata map, the map, then
 * the SQLite database image.
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/cluster.h"
#include "store/codec.h"
#include "store/transport.h"
#include "util/log.h"
#include "util/os.h"


/* freshness_strict: how long contact must have been steady (no gap over
 * three heartbeat intervals) before what the leader says counts as news. */
#define CONTACT_SETTLE_MS 200

enum {
    OP_APPLY = 1,
    OP_BARRIER,
    OP_ADD,
    OP_ASSIGN,
    OP_REMOVE,
    OP_TRANSFER,
    OP_SNAPSHOT,
    OP_READINDEX,
};

/* Read-index bookkeeping for one voter: AppendEntries/InstallSnapshot sent
 * to it and results received from it in the current term (Raft thread). */
typedef struct peerCount {
    raft_id id;
    uint64_t sent, recvd;
    int64_t heard_ms;       /* last message from it (reaping), kept across terms */
} peerCount;

/* A voter's count of sends when a linearizable read was registered. */
typedef struct readMark {
    raft_id id;
    uint64_t sent;
} readMark;

typedef struct op {
    int type;
    int refs;              /* waiter + Raft thread, under s->mu */
    bool done;
    int rc;                /* STORE_* */
    int raft_rc;           /* libraft code, for retries (RAFT_CANTCHANGE) */
    char *err;
    pthread_cond_t cond;
    /* inputs */
    char *entry;           /* OP_APPLY: raft_malloc'd, handed to raft */
    size_t entry_len;
    uint64_t seq;
    raft_id rid;
    char addr[256];
    int role;
    uint64_t trailing;     /* OP_SNAPSHOT: entries to keep, 0 = configured */
    /* outputs */
    buf out;               /* results of an applied execute */
    raft_index index;
    bool want_results;
    /* raft requests */
    struct raft_apply apply;
    struct raft_barrier barrier;
    struct raft_change change;
    struct raft_transfer transfer;
    /* OP_READINDEX */
    raft_term term;
    readMark *marks;
    unsigned n_marks;
    bool confirmed;
    int64_t deadline_ms;
    struct op *next;       /* queue / pending list */
    struct store *s;
} op;

typedef struct meta {
    char id[256];
    raft_id rid;
    char addr[256];
    char api[300];
} meta;

struct store {
    const config *cfg;
    char *raft_dir;
    char *db_path;
    db *db;
    raft_id id;

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_async_t close_async;
    uv_check_t publish;
    uv_timer_t tick;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool raft_started;
    bool was_new;
    char *contacted_by;    /* Raft address of the leader that reached a wiped node */

    pthread_mutex_t mu;
    op *queue;             /* ops waiting for the Raft thread, LIFO is fine */
    bool closing;
    bool closed;
    uint64_t next_seq;

    /* Published by the Raft thread under mu. */
    int state;
    raft_term term;
    raft_index commit_index, applied_index, last_index, snapshot_index;
    raft_index first_index;  /* of the log libraft holds, 0 if empty */
    raft_index leader_commit;   /* the leader's commit index as last told (followers) */
    int64_t quorum_contact_ms;  /* leader: when a majority was last heard from */
    raft_id leader_id;
    char leader_addr[256];
    char leader_api[300];    /* the leader's API address from node metadata, "" if unknown */
    store_node *nodes;
    int n_nodes;
    bool ready;
    int64_t last_contact_ms; /* follower: monotonic ms of the leader's last message */
    int64_t contact_since_ms; /* follower: start of the current unbroken contact */
    unsigned hb_ms;          /* heartbeat interval given to libraft */
    pthread_cond_t changed;  /* broadcast on every publish that changes leader */

    /* Raft thread only. */
    op *pending;           /* applied ops waiting for their entry */
    meta *metas;
    int n_metas;
    bool meta_dirty;
    raft_index published_conf_index;
    int prev_state;
    raft_id prev_leader;
    bool leader_barrier_pending;
    bool leader_ready;      /* barrier of our term applied */
    bool boot_metas_pending; /* bootstrapped with others' metadata not yet in the log */
    bool reap_pending;      /* a reaping removal in flight */
    uint64_t log_bytes;     /* entry bytes applied since the last snapshot */
    bool size_snap;         /* a snapshot triggered by log_bytes is due */
    raft_term reap_term;    /* term whose leadership started the reaping clocks */
    peerCount *peers;       /* read-index counters, reset on each leadership */
    unsigned n_peers;
    raft_term peers_term;   /* the term the counters belong to */
    op *reads;              /* linearizable reads waiting for confirmation */
    op *snap_wait;          /* a user snapshot waiting to be taken */
    int (*io_send)(struct raft_io *, struct raft_io_send *, const struct raft_message *,
                   raft_io_send_cb);
    int (*io_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    raft_io_recv_cb raft_recv;
    raft_io_tick_cb raft_tick;  /* libraft's, for heartbeatNow() */
    bool reads_started;     /* drainQueue registered linearizable reads */
    raft_index leader_commit_seen; /* highest leader_commit in this term's AppendEntries */
    raft_term leader_commit_term;
    bool answering_ae;      /* follower: inside libraft's AppendEntries handling */
    raft_index ae_limit;    /* ... whose entries end at this index */
    raft_index ready_target;
    struct raft_buffer snap_buf; /* held between snapshot and finalize */
    uint64_t num_snapshots, num_restores, num_restores_skipped, num_fetches;
    raft_index start_snap_index;  /* latest snapshot on disk at start */

    /* Snapshot image transfer (follower). The InstallSnapshot message waits
     * in fetch_msg while a thread downloads the sender's file. */
    bool fetching;            /* Raft thread */
    struct raft_message fetch_msg;
    raft_index fetch_need;    /* database index the snapshot stands for */
    char *fetch_from;         /* sender's Raft address (fetch_msg points here) */
    char *fetch_path;         /* where the image lands */
    pthread_t fetch_thread;
    bool fetch_joinable;
    bool fetch_done;          /* under mu: the thread finished */
    int fetch_rc;             /* under mu */
    char *fetch_err;          /* under mu */
    int64_t fetch_started_ms;
    long long fetch_bytes;
};

/* ------------------------------------------------------------------ ids */

/* -raft-snap, and the entries kept after a snapshot (before fsmSnapshot
 * trims them by size). */
static unsigned snapThreshold(const config *cfg)
{
    return (unsigned)(cfg->raft_snap ? cfg->raft_snap : 8192);
}

static unsigned snapTrailing(const config *cfg)
{
    return snapThreshold(cfg) * 5 / 4;
}

static raft_id nodeRaftId(const char *node_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)node_id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h &= 0x7fffffffffffffffULL; /* fits a JSON integer */
    return h ? h : 1;
}




/* ------------------------------------------------------------------ ops */

static op *opNew(store *s, int type)
{
    op *o = calloc(1, sizeof *o);
    o->type = type;
    o->refs = 2;
    o->s = s;
    buf_init(&o->out);
    pthread_cond_init(&o->cond, NULL);
    return o;
}

static void opFree(op *o)
{
    pthread_cond_destroy(&o->cond);
    buf_free(&o->out);
    free(o->err);
    if (o->entry)
        raft_free(o->entry);
    free(o);
}

/* Drop one reference; caller holds s->mu. */
static void opUnrefLocked(op *o)
{
    if (--o->refs == 0)
        opFree(o);
}

/* Raft thread: finish an op and wake its waiter. */
static void opComplete(op *o, int rc, char *err)
{
    store *s = o->s;
    pthread_mutex_lock(&s->mu);
    o->done = true;
    o->rc = rc;
    if (err && !o->err)
        o->err = err;
    else
        free(err);
    pthread_cond_broadcast(&o->cond);
    opUnrefLocked(o);
    pthread_mutex_unlock(&s->mu);
}

/* Caller thread: queue an op, wait for it up to timeout_ms. Returns with
 * the op still referenced by the caller (release with opRelease) or NULL
 * when the store is closing (op freed). On timeout, rc is STORE_ERROR with
 * a timeout message. */
static int opRun(store *s, op *o, uint64_t timeout_ms)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        o->refs = 1;
        o->rc = STORE_ERROR;
        o->err = strdup("store not open");
        o->done = true;
        return o->rc;
    }
    o->next = s->queue;
    s->queue = o;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);

    struct timespec deadline;
    rq_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!o->done) {
        if (pthread_cond_timedwait(&o->cond, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    int rc = o->done ? o->rc : STORE_ERROR;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void opRelease(store *s, op *o)
{
    pthread_mutex_lock(&s->mu);
    opUnrefLocked(o);
    pthread_mutex_unlock(&s->mu);
}

/* Take the error message out of a finished op (or a timeout message). */
static char *opTakeErr(op *o, const char *timeout_msg)
{
    if (!o->done)
        return strdup(timeout_msg);
    char *e = o->err;
    o->err = NULL;
    return e ? e : strdup("unknown error");
}

/* A log entry from JSON text. libraft's encoders (disk and network) assume
 * entry lengths are multiples of 8, so pad with JSON whitespace. */
static void *entryFromText(const char *text, size_t *len)
{
    size_t n = strlen(text);
    size_t padded = (n + 7) & ~(size_t)7;
    char *p = raft_malloc(padded);
    memcpy(p, text, n);
    memset(p + n, ' ', padded - n);
    *len = padded;
    return p;
}

/* ------------------------------------------------------------------ FSM */

static meta *metaFind(store *s, raft_id rid)
{
    for (int i = 0; i < s->n_metas; i++)
        if (s->metas[i].rid == rid)
            return &s->metas[i];
    return NULL;
}

static void metaUpsert(store *s, const char *id, raft_id rid, const char *addr, const char *api)
{
    meta *m = metaFind(s, rid);
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

static json_t *metasToJson(store *s)
{
    json_t *a = json_array();
    for (int i = 0; i < s->n_metas; i++) {
        meta *m = &s->metas[i];
        json_array_append_new(a, json_pack("{s:s,s:I,s:s,s:s}", "id", m->id, "rid",
                                           (json_int_t)m->rid, "addr", m->addr, "api", m->api));
    }
    return a;
}

static void metasFromJson(store *s, json_t *a)
{
    free(s->metas);
    s->metas = NULL;
    s->n_metas = 0;
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m)
    {
        metaUpsert(s, json_string_value(json_object_get(m, "id")),
                   (raft_id)json_integer_value(json_object_get(m, "rid")),
                   json_string_value(json_object_get(m, "addr")),
                   json_string_value(json_object_get(m, "api")));
    }
    s->meta_dirty = true;
}

/* The leader's API address by its Raft address, from the node metadata:
 * known before the configuration is (a wiped node fetching the leader's
 * database has the metadata of the snapshot it holds, fetchDone()). */
static void leaderApiLocked(store *s)
{
    s->leader_api[0] = '\0';
    for (int i = 0; i < s->n_metas && s->leader_addr[0]; i++)
        if (strcmp(s->metas[i].addr, s->leader_addr) == 0)
            snprintf(s->leader_api, sizeof s->leader_api, "%s", s->metas[i].api);
}

static op *pendingTake(store *s, uint64_t seq)
{
    for (op **pp = &s->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->seq == seq) {
            op *o = *pp;
            *pp = o->next;
            o->next = NULL;
            return o;
        }
    }
    return NULL;
}

/* The request waiting for the entry at index that this node proposed with
 * seq. The index must match too: an entry an earlier process of this node
 * proposed (with its own sequence) may commit only now, and must run as
 * written, not as whatever request of ours carries the same number. */
static op *pendingFind(store *s, uint64_t seq, raft_index index)
{
    for (op *o = s->pending; o; o = o->next)
        if (o->seq == seq)
            return o->index == index ? o : NULL;
    return NULL;
}

/* A load entry swaps the whole database (codec.h). Binary, not JSON, so
 * that an image costs its own size in the log. An image every node refuses
 * alike (db_restore checks it) leaves the database as it was. */
static void applyLoad(store *s, const rq_load_entry *e, raft_index index)
{
    raft_id origin = e->origin;
    uint64_t seq = e->seq;
    size_t n = e->image_len;
    char *err = NULL;
    op *o = origin == s->id ? pendingFind(s, seq, index) : NULL;
    if (db_restore(s->db, e->image, n, index, &err) != 0) {
        rq_log("store", "load at index %llu refused: %s", (unsigned long long)index, err ? err : "?");
        if (o && o->want_results) {
            buf_puts(&o->out, "{\"error\":");
            json_cstr(&o->out, err ? err : "load failed");
            buf_putc(&o->out, '}');
        }
        free(err);
        return;
    }
    rq_log("store", "database loaded from a %zu-byte image", n);
}

/* Run an entry's statements with its clock, seed and step budget,
 * recording its index; results go to the waiting request, if this node
 * proposed it. An entry that failed here alone (db_execute: disk, I/O,
 * lock) stops the node, as rqlite does on a failure it cannot take back:
 * going on would leave this replica without the entry for good, while the
 * Raft log keeps it, and the file not its index, so a restart applies it
 * again. */
static void runEntry(store *s, op *o, const cmd_view *stmts, unsigned flags, int64_t ms, uint64_t seed,
                     uint64_t steps, raft_index index)
{
    db_set_entropy(s->db, ms, seed);
    db_set_entry_index(s->db, index);
    db_set_step_budget(s->db, steps);
    int fault = db_execute(s->db, stmts, flags, o && o->want_results ? &o->out : NULL);
    if (fault) {
        rq_log("store", "stopping now: the entry at index %llu failed on this node alone (SQLite code %d), "
               "and the others applied it; restarting is safe and applies it again",
               (unsigned long long)index, fault);
        _exit(EXIT_FAILURE);
    }
}

/* A command entry (command.h): every node, the proposer included, applies
 * the statements decoded from the entry's bytes, so all apply the same. */
static void applyCommand(store *s, const cmd_entry *e, raft_index index)
{
    op *o = e->origin == s->id ? pendingFind(s, e->seq, index) : NULL;
    runEntry(s, o, &e->stmts, (unsigned)e->flags, (int64_t)e->unix_ms, e->seed, e->steps, index);
}

/* Statements in the JSON of entries written before commands existed: read
 * as a request body is, the same way on every node (what it cannot read,
 * such as SQL with a NUL byte, is skipped everywhere). */
static void applyLegacy(store *s, op *o, const char *json, size_t len, unsigned flags, int64_t ms, uint64_t seed,
                        raft_index index)
{
    cmd_batch b;
    char *err = NULL;
    if (cmd_from_json(json, len, &b, &err) != 0) {
        rq_log("store", "skipping execute entry at index %llu that no node can read: %s",
               (unsigned long long)index, err ? err : "?");
        free(err);
        return;
    }
    cmd_view v = cmd_batch_view(&b);
    runEntry(s, o, &v, flags, ms, seed, 0, index);
    cmd_batch_free(&b);
}

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *b, void **result)
{
    store *s = fsm->data;
    *result = NULL;
    /* libraft moves last_applied on after each apply returns. */
    raft_index index = s->raft.last_applied + 1;
    s->log_bytes += b->len;
    if (s->cfg->raft_snap_wal_size && s->log_bytes >= s->cfg->raft_snap_wal_size && !s->size_snap) {
        /* libraft keeps the log in memory: snapshot by size too (rqlite's
         * -raft-snap-wal-size), right after this apply. */
        s->size_snap = true;
        raft_set_snapshot_threshold(&s->raft, 1);
    }
    bool held = index <= db_index(s->db); /* the file has it already */
    /* Never fail an apply: the entry is committed and every node must move
     * past it identically; decoding depends on the bytes alone. */
    cmd_entry ce;
    int rc = cmd_entry_decode(b->base, b->len, &ce);
    if (rc == 0 && !held)
        applyCommand(s, &ce, index);
    if (rc <= 0) {
        if (rc < 0)
            rq_log("store", "skipping malformed command entry at index %llu", (unsigned long long)index);
        return 0;
    }
    rq_exec_entry ex;
    rc = rq_exec_decode(b->base, b->len, &ex);
    if (rc == 0 && !held)
        applyLegacy(s, ex.origin == s->id ? pendingFind(s, ex.seq, index) : NULL, ex.json, ex.json_len,
                    (unsigned)ex.flags, (int64_t)ex.ms, ex.seed, index);
    if (rc <= 0) {
        if (rc < 0)
            rq_log("store", "skipping malformed execute entry at index %llu", (unsigned long long)index);
        return 0;
    }
    rq_load_entry ld;
    rc = rq_load_decode(b->base, b->len, &ld);
    if (rc == 0 && !held)
        applyLoad(s, &ld, index);
    if (rc <= 0) {
        if (rc < 0)
            rq_log("store", "skipping malformed load entry at index %llu", (unsigned long long)index);
        return 0;
    }
    json_error_t jerr;
    json_t *e = json_loadb(b->base, b->len, 0, &jerr);
    if (e == NULL) {
        rq_log("store", "skipping undecodable log entry: %s", jerr.text);
        return 0;
    }
    const char *t = json_string_value(json_object_get(e, "t"));
    if (t && strcmp(t, "x") == 0 && !held) {
        raft_id origin = (raft_id)json_integer_value(json_object_get(e, "o"));
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "s"));
        unsigned flags = (unsigned)json_integer_value(json_object_get(e, "f"));
        char *q = json_dumps(json_object_get(e, "q"), JSON_COMPACT | JSON_ENCODE_ANY);
        applyLegacy(s, origin == s->id ? pendingFind(s, seq, index) : NULL, q ? q : "", q ? strlen(q) : 0, flags,
                    (int64_t)json_integer_value(json_object_get(e, "ts")),
                    (uint64_t)json_integer_value(json_object_get(e, "r")), index);
        free(q);
    } else if (t && strcmp(t, "m") == 0) {
        metaUpsert(s, json_string_value(json_object_get(e, "id")),
                   (raft_id)json_integer_value(json_object_get(e, "rid")),
                   json_string_value(json_object_get(e, "addr")),
                   json_string_value(json_object_get(e, "api")));
    }
    json_decref(e);
    return 0;
}

/* How many entries to keep after a snapshot: -raft-snap's share (or what
 * a /snapshot request asked for), but no more than TRAIL_BYTES of them,
 * since libraft holds them in memory. */
#define TRAIL_BYTES (8u << 20)
static unsigned sizedTrailing(store *s)
{
    struct raft_log *l = &s->raft.log;
    unsigned want = snapTrailing(s->cfg);
    if (s->snap_wait && s->snap_wait->trailing > 0)
        want = s->snap_wait->trailing > UINT_MAX ? UINT_MAX : (unsigned)s->snap_wait->trailing;
    size_t n = l->size ? (l->back + l->size - l->front) % l->size : 0;
    size_t bytes = 0;
    unsigned keep = 0;
    while (keep < want && keep < n) {
        const struct raft_entry *e = &l->entries[(l->front + n - 1 - keep) % l->size];
        if (bytes + e->buf.len > TRAIL_BYTES)
            break;
        bytes += e->buf.len;
        keep++;
    }
    return keep;
}

static int fsmSnapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    store *s = fsm->data;
    raft_set_snapshot_trailing(&s->raft, sizedTrailing(s));
    s->log_bytes = 0;
    if (s->size_snap) {
        s->size_snap = false;
        if (s->snap_wait == NULL)
            raft_set_snapshot_threshold(&s->raft, snapThreshold(s->cfg));
    }
    /* The log up to here may go once libraft has the snapshot: the file
     * must hold it durably first. */
    if (db_sync(s->db) != 0) {
        rq_log("store", "snapshot failed: cannot sync the database file");
        return RAFT_IOERR;
    }
    json_t *j = json_pack("{s:I,s:I,s:o}", "i", (json_int_t)s->raft.last_applied, "d",
                          (json_int_t)db_index(s->db), "m", metasToJson(s));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t mlen = strlen(text);
    unsigned char *p = raft_malloc(12 + mlen);
    memcpy(p, RQ_SNAP_MAGIC, 8);
    p[8] = (unsigned char)(mlen >> 24);
    p[9] = (unsigned char)(mlen >> 16);
    p[10] = (unsigned char)(mlen >> 8);
    p[11] = (unsigned char)mlen;
    memcpy(p + 12, text, mlen);
    free(text);
    s->snap_buf.base = p;
    s->snap_buf.len = 12 + mlen;
    *bufs = &s->snap_buf;
    *n_bufs = 1;
    return 0;
}

static int fsmSnapshotFinalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    store *s = fsm->data;
    (void)bufs;
    (void)n_bufs;
    raft_free(s->snap_buf.base);
    s->snap_buf.base = NULL;
    s->num_snapshots++;
    rq_log("store", "snapshot taken at index %llu (database %lld bytes, not copied)",
           (unsigned long long)s->raft.last_applied, db_file_size(s->db));
    return 0;
}

static int fsmRestore(struct raft_fsm *fsm, struct raft_buffer *b)
{
    store *s = fsm->data;
    rq_snapshot snap;
    if (rq_snap_decode(b->base, b->len, &snap) != 0) {
        rq_log("store", "refusing to restore snapshot: unknown format");
        return RAFT_MALFORMED;
    }
    int version = snap.version;
    raft_index index = snap.db_index;
    json_t *metas = snap.metas;
    const unsigned char *image = snap.image;
    size_t image_len = snap.image_len;
    if (version == 1) {
        /* libraft set the log's snapshot index before an install; at start
         * it is the one found on disk. */
        index = s->raft.log.snapshot.last_index ? s->raft.log.snapshot.last_index : s->start_snap_index;
        char *err = NULL;
        if (db_restore(s->db, image, image_len, index, &err) != 0) {
            rq_log("store", "restore failed: %s", err ? err : "?");
            free(err);
            json_decref(metas);
            return RAFT_IOERR;
        }
        s->num_restores++;
        rq_log("store", "restored snapshot (%zu bytes of database, old format)", image_len);
    } else {
        db_resolve_index(s->db, index);
        if (db_index(s->db) < index) {
            /* Installs fetch the file first (wrappedRecv) and store_open
             * refuses a file behind its snapshot: this is a bug. */
            rq_log("store", "cannot restore a snapshot of index %llu: the database file holds only index %llu",
                   (unsigned long long)index, (unsigned long long)db_index(s->db));
            json_decref(metas);
            return RAFT_IOERR;
        }
        s->num_restores_skipped++;
        rq_log("store", "snapshot (database index %llu) restored: the database file already holds index %llu",
               (unsigned long long)index, (unsigned long long)db_index(s->db));
    }
    if (metas)
        metasFromJson(s, metas);
    json_decref(metas);
    raft_free(b->base);
    return 0;
}

/* ------------------------------------------------------ Raft thread ops */

/* Finish an op from a libraft callback status. A lost leadership is
 * lost_rc with lost_msg; other failures are "<what>: <libraft error>". */
static void opFromStatus(op *o, int status, int lost_rc, const char *lost_msg, const char *what)
{
    if (status == 0)
        opComplete(o, STORE_OK, NULL);
    else if (status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER)
        opComplete(o, lost_rc, strdup(lost_msg));
    else
        opComplete(o, STORE_ERROR, rq_sprintf("%s%s", what, raft_strerror(status)));
}

static void applyCb(struct raft_apply *req, int status, void *result)
{
    op *o = req->data;
    (void)result;
    pendingTake(o->s, o->seq);
    /* The entry may still commit under the next leader: not retryable. */
    opFromStatus(o, status, STORE_ERROR, "leadership lost while committing log", "apply failed: ");
}

static void barrierCb(struct raft_barrier *req, int status)
{
    opFromStatus(req->data, status, STORE_NOT_LEADER, "leadership lost", "barrier failed: ");
}

static void changeCb(struct raft_change *req, int status)
{
    op *o = req->data;
    o->raft_rc = status;
    opFromStatus(o, status, STORE_NOT_LEADER, "not leader", "");
}

static void transferCb(struct raft_transfer *req)
{
    op *o = req->data;
    store *s = o->s;
    /* The transfer callback carries no status: success means someone else
     * leads now. */
    if (s->raft.state != RAFT_LEADER)
        opComplete(o, STORE_OK, NULL);
    else
        opComplete(o, STORE_ERROR, strdup("leadership transfer failed"));
}

/* ---------------------------------------------------------- read index
 *
 * level=linearizable without a log write (Raft dissertation 6.4): note the
 * commit index, then wait until a majority of voters has answered an
 * AppendEntries (or InstallSnapshot) sent *after* the read arrived, which
 * proves we were still the leader then, and until that index is applied.
 *
 * libraft does not expose this, so the raft_io's send and receive are
 * wrapped to count, per voter, the messages submitted and the results
 * received in the current term. Results come back in the order the
 * follower processed the messages, and lost messages only remove results,
 * so the (K+1)-th result counted after K sends were submitted answers a
 * message sent after the read: that is the confirmation. A read that is
 * not confirmed in time falls back to a barrier through the log. */

static peerCount *peerFor(store *s, raft_id id)
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

typedef struct sendWrap {
    struct raft_io_send req;
    struct raft_io_send *orig;
    raft_io_send_cb cb;
    store *s;
    raft_id id;
    raft_term term;
} sendWrap;

static void sendWrapCb(struct raft_io_send *req, int status)
{
    sendWrap *w = req->data;
    store *s = w->s;
    /* A failed send was not delivered: it will never be answered. */
    if (status != 0 && s->raft.current_term == w->term) {
        peerCount *p = peerFor(s, w->id);
        if (p->sent > p->recvd)
            p->sent--;
    }
    w->cb(w->orig, status);
    free(w);
}

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
    peerFor(s, m->server_id)->sent++;
    return 0;
}

/* ------------------------------------------------- snapshot image fetch */

int store_copy(store *s, unsigned flags, db_progress_fn progress, void *arg, uint64_t *size, char **err)
{
    char *tmp = rq_sprintf("%s.copy-%lx-%llx", s->db_path, (unsigned long)pthread_self(),
                           (unsigned long long)rq_now_ms());
    int64_t t0 = rq_now_ms();
    if (db_backup_file(s->db, tmp, flags, progress, arg, NULL, err) != 0) {
        free(tmp);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CLOEXEC);
    int e = errno;
    unlink(tmp);
    free(tmp);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        *err = rq_sprintf("cannot read the copy: %s", strerror(fd < 0 ? e : errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)sb.st_size;
    rq_log("store", "%lld-byte copy of the database made in %lld ms", (long long)sb.st_size,
           (long long)(rq_now_ms() - t0));
    return fd;
}

/* The transport's rq_image_fn (a sender thread, never the Raft thread): a
 * consistent copy of the database with its Raft index. */
static int imageCopy(void *arg, rq_image_progress_fn progress, void *parg, uint64_t *size, char **err)
{
    return store_copy(arg, DB_BACKUP_KEEP_INDEX, progress, parg, size, err);
}

/* Progress of a transfer (about once a second); nonzero when the store is
 * closing, which abandons it. */
static int fetchLog(void *arg, bool copying, long long done, long long total)
{
    store *s = arg;
    double secs = (double)(rq_now_ms() - s->fetch_started_ms) / 1000.0;
    if (copying)
        rq_log("store", "snapshot transfer: the sender is copying its database, %lld of %lld bytes (%d%%)",
               done, total, total > 0 ? (int)(done * 100 / total) : 0);
    else if (total > 0)
        rq_log("store", "snapshot transfer: %lld of %lld bytes (%d%%), %.1f MB/s", done, total,
               (int)(done * 100 / total), secs > 0 ? (double)done / 1e6 / secs : 0.0);
    else
        rq_log("store", "snapshot transfer: %lld bytes, %.1f MB/s", done,
               secs > 0 ? (double)done / 1e6 / secs : 0.0);
    pthread_mutex_lock(&s->mu);
    bool closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    return closing;
}

/* For tests only: with RQ_TEST_FETCH_GATE=<file> in the environment, a
 * transferred database waits until that file exists (at most a minute)
 * before fetchDone() sees it, so that a test can have entries applied
 * meanwhile (tests/system/test_cluster.py). */
static void testGate(store *s, int rc)
{
    const char *gate = getenv("RQ_TEST_FETCH_GATE");
    if (gate == NULL || rc != 0)
        return;
    rq_log("store", "test gate: holding the transferred database until %s exists", gate);
    for (int i = 0; i < 600 && access(gate, F_OK) != 0; i++) {
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (closing)
            return;
        usleep(100000);
    }
}

static void *fetchThread(void *arg)
{
    store *s = arg;
    char *err = NULL;
    int rc = -1;
    long long bytes = 0;
    pthread_mutex_lock(&s->mu); /* the Raft thread may replace the held message */
    char *from = strdup(s->fetch_from);
    pthread_mutex_unlock(&s->mu);
    for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
        free(err);
        err = NULL;
        rq_log("store", "fetching the database from %s (its Raft port)", from);
        rc = cluster_fetch_image(from, s->fetch_path, fetchLog, s, &bytes, &err);
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (closing)
            break;
    }
    free(from);
    testGate(s, rc);
    pthread_mutex_lock(&s->mu);
    s->fetch_done = true;
    s->fetch_rc = rc;
    s->fetch_err = err;
    s->fetch_bytes = bytes;
    if (!s->closing) /* the loop closes its handles only after closing is set */
        uv_async_send(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void releaseMessage(struct raft_message *m)
{
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_free(m->install_snapshot.data.base);
        raft_configuration_close(&m->install_snapshot.conf);
    }
}

/* Raft thread: an InstallSnapshot whose state our file does not hold yet.
 * Keep the message, fetch the sender's file; fetchDone() delivers it. */
static void holdMessage(store *s, struct raft_message *m, raft_index need)
{
    s->fetch_msg = *m;
    s->fetch_need = need;
    free(s->fetch_from);
    s->fetch_from = strdup(m->server_address);
    s->fetch_msg.server_address = s->fetch_from;
}

static void fetchLaunch(store *s);

static void fetchStart(store *s, struct raft_message *m, raft_index need)
{
    if (s->fetching) {
        /* The leader sent it again (a retry, or a newer snapshot after a
         * membership change): one transfer is enough, but answer the newest
         * message, the one the leader waits for. The transfer in progress
         * brings the sender's current file, which normally covers it. */
        struct raft_install_snapshot *held = &s->fetch_msg.install_snapshot;
        if (m->install_snapshot.term > held->term ||
            (m->install_snapshot.term == held->term && m->install_snapshot.last_index >= held->last_index)) {
            pthread_mutex_lock(&s->mu); /* the thread copies fetch_from under mu */
            releaseMessage(&s->fetch_msg);
            holdMessage(s, m, need);
            pthread_mutex_unlock(&s->mu);
        } else {
            releaseMessage(m);
        }
        return;
    }
    holdMessage(s, m, need);
    fetchLaunch(s);
}

static void fetchLaunch(store *s)
{
    struct raft_message *m = &s->fetch_msg;
    raft_index need = s->fetch_need;
    s->fetching = true;
    s->fetch_done = false;
    s->fetch_started_ms = rq_now_ms();
    rq_log("store", "snapshot %llu from %s needs database index %llu (this file holds %llu): "
           "transferring the database", (unsigned long long)m->install_snapshot.last_index, s->fetch_from,
           (unsigned long long)need, (unsigned long long)db_index(s->db));
    if (pthread_create(&s->fetch_thread, NULL, fetchThread, s) != 0) {
        rq_log("store", "cannot start the snapshot transfer thread");
        releaseMessage(&s->fetch_msg);
        s->fetching = false;
        return;
    }
    s->fetch_joinable = true;
}

/* Raft thread, on wake: a finished transfer. */
static void fetchDone(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool done = s->fetching && s->fetch_done;
    pthread_mutex_unlock(&s->mu);
    if (!done)
        return;
    pthread_join(s->fetch_thread, NULL);
    s->fetch_joinable = false;
    s->fetching = false;
    raft_index want = s->fetch_need;
    double secs = (double)(rq_now_ms() - s->fetch_started_ms) / 1000.0;
    if (s->fetch_rc != 0) {
        rq_log("store", "snapshot transfer failed: %s (the leader will retry)",
               s->fetch_err ? s->fetch_err : "?");
        free(s->fetch_err);
        s->fetch_err = NULL;
        releaseMessage(&s->fetch_msg);
        return;
    }
    uint64_t got = 0;
    if (db_file_index(s->fetch_path, want, &got) == 0 && got < db_index(s->db)) {
        /* Entries applied during the transfer (from a newer leader, say)
         * took our file past the copy: installing it would lose them, since
         * libraft will not apply them again. */
        rq_log("store", "transferred database (index %llu) is older than ours (index %llu): kept ours",
               (unsigned long long)got, (unsigned long long)db_index(s->db));
        unlink(s->fetch_path);
    } else {
        /* Forwarded requests need the leader's API address the moment the
         * file is in: take the snapshot's node metadata now rather than when
         * libraft restores it (fsmRestore). */
        rq_snapshot snap;
        const struct raft_buffer *sd = &s->fetch_msg.install_snapshot.data;
        if (rq_snap_decode(sd->base, sd->len, &snap) == 0) {
            if (json_is_array(snap.metas)) {
                metasFromJson(s, snap.metas);
                pthread_mutex_lock(&s->mu);
                leaderApiLocked(s);
                pthread_mutex_unlock(&s->mu);
            }
            json_decref(snap.metas);
        }
        char *err = NULL;
        if (db_install_file(s->db, s->fetch_path, &err) != 0) {
            rq_log("store", "cannot install the transferred database: %s", err ? err : "?");
            free(err);
            releaseMessage(&s->fetch_msg);
            return;
        }
        db_resolve_index(s->db, want);
        s->num_fetches++;
        rq_log("store", "snapshot transfer done: %lld bytes in %.2f s (%.1f MB/s), database at index %llu",
               s->fetch_bytes, secs, secs > 0 ? (double)s->fetch_bytes / 1e6 / secs : 0.0,
               (unsigned long long)db_index(s->db));
    }
    if (db_index(s->db) < want) {
        rq_log("store", "the database (index %llu) is older than the snapshot (needs index %llu): fetching again",
               (unsigned long long)db_index(s->db), (unsigned long long)want);
        fetchLaunch(s);
        return;
    }
    s->raft_recv(&s->io, &s->fetch_msg);
}

static void wrappedRecv(struct raft_io *io, struct raft_message *m)
{
    struct raft *r = io->data;
    store *s = r->data;
    if (r->state == RAFT_LEADER)
        peerFor(s, m->server_id)->heard_ms = rq_now_ms();
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        rq_snapshot snap;
        const struct raft_buffer *d = &m->install_snapshot.data;
        if (rq_snap_decode(d->base, d->len, &snap) == 0) {
            json_decref(snap.metas);
            if (snap.version == 2 && m->install_snapshot.term >= r->current_term) {
                db_resolve_index(s->db, snap.db_index);
                if (db_index(s->db) < snap.db_index) {
                    fetchStart(s, m, snap.db_index);
                    return;
                }
            }
        }
    }
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && r->state == RAFT_LEADER &&
        m->append_entries_result.term == r->current_term)
        peerFor(s, m->server_id)->recvd++;
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        /* Raft's rule is commit = min(leaderCommit, index of the last new
         * entry); libraft 0.15 uses its own log length instead, which could
         * commit a stale tail. Clamp the leader's commit to what the
         * message covers, and remember it for the answer (wrappedSend). */
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
        return;
    }
    s->raft_recv(io, m);
}

static int wrappedStart(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    store *s = ((struct raft *)io->data)->data;
    s->raft_recv = recv;
    s->raft_tick = tick;
    return s->io_start(io, msecs, tick, wrappedRecv);
}

/* Raft thread: register a linearizable read (leader only). */
static void readStart(store *s, op *o)
{
    struct raft *r = &s->raft;
    o->index = r->commit_index;
    o->term = r->current_term;
    o->marks = calloc(r->configuration.n ? r->configuration.n : 1, sizeof *o->marks);
    o->n_marks = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        struct raft_server *srv = &r->configuration.servers[i];
        if (srv->role != RAFT_VOTER || srv->id == s->id)
            continue;
        o->marks[o->n_marks].id = srv->id;
        o->marks[o->n_marks].sent = peerFor(s, srv->id)->sent;
        o->n_marks++;
    }
    o->next = s->reads;
    s->reads = o;
}

/* Raft thread, after every loop iteration: confirm and finish reads. */
static void readsProgress(store *s)
{
    struct raft *r = &s->raft;
    int64_t now = rq_now_ms();
    for (op **pp = &s->reads; *pp;) {
        op *o = *pp;
        int rc = -1;
        if (r->state != RAFT_LEADER || r->current_term != o->term) {
            rc = STORE_NOT_LEADER;
        } else {
            if (!o->confirmed) {
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
                        if (o->marks[k].id == srv->id && peerFor(s, srv->id)->recvd > o->marks[k].sent)
                            acks++;
                }
                o->confirmed = acks > voters / 2;
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
        free(o->marks);
        o->marks = NULL;
        opComplete(o, rc, rc == STORE_ERROR ? strdup("read index not confirmed in time")
                          : rc == STORE_NOT_LEADER ? strdup("leadership lost") : NULL);
    }
}

static void freeBarrier(struct raft_barrier *b, int status)
{
    (void)status;
    free(b);
}

/* A user snapshot (/snapshot): libraft snapshots only past a threshold of
 * applied entries, so lower it to 1 until the next apply has taken one. */
static void snapStart(store *s, op *o)
{
    struct raft *r = &s->raft;
    if (r->last_applied <= r->log.snapshot.last_index) {
        o->raft_rc = 1; /* nothing new to snapshot */
        opComplete(o, STORE_OK, NULL);
        return;
    }
    if (s->snap_wait) {
        opComplete(o, STORE_ERROR, strdup("a snapshot is already in progress"));
        return;
    }
    o->index = r->last_applied;
    o->deadline_ms = rq_now_ms() + 10000;
    s->snap_wait = o;
    raft_set_snapshot_threshold(r, 1);
    if (r->state == RAFT_LEADER) { /* an entry to apply, so the check runs */
        struct raft_barrier *b = calloc(1, sizeof *b);
        if (raft_barrier(r, b, freeBarrier) != 0)
            free(b);
    }
}

static void snapProgress(store *s)
{
    op *o = s->snap_wait;
    if (o == NULL)
        return;
    struct raft *r = &s->raft;
    bool taken = r->log.snapshot.last_index >= o->index;
    if (!taken && rq_now_ms() < o->deadline_ms)
        return;
    s->snap_wait = NULL;
    raft_set_snapshot_threshold(r, snapThreshold(s->cfg));
    if (taken)
        opComplete(o, STORE_OK, NULL);
    else
        opComplete(o, STORE_ERROR, strdup("timeout waiting for the snapshot"));
}

static void startOp(store *s, op *o)
{
    int rv = 0;
    if (o->type == OP_SNAPSHOT) {
        snapStart(s, o);
        return;
    }
    if (s->raft.state != RAFT_LEADER) {
        opComplete(o, STORE_NOT_LEADER, strdup("not leader"));
        return;
    }
    switch (o->type) {
    case OP_APPLY: {
        struct raft_buffer b = {o->entry, o->entry_len};
        o->apply.data = o;
        rv = raft_apply(&s->raft, &o->apply, &b, 1, applyCb);
        if (rv == 0) {
            o->entry = NULL; /* raft owns it now */
            o->index = raft_last_index(&s->raft);
            o->next = s->pending;
            s->pending = o;
        }
        break;
    }
    case OP_BARRIER:
        o->barrier.data = o;
        rv = raft_barrier(&s->raft, &o->barrier, barrierCb);
        break;
    case OP_ADD:
        o->change.data = o;
        rv = raft_add(&s->raft, &o->change, o->rid, o->addr, changeCb);
        break;
    case OP_ASSIGN:
        o->change.data = o;
        rv = raft_assign(&s->raft, &o->change, o->rid, o->role, changeCb);
        break;
    case OP_REMOVE:
        o->change.data = o;
        rv = raft_remove(&s->raft, &o->change, o->rid, changeCb);
        break;
    case OP_READINDEX:
        if (!s->leader_ready) {
            /* Nothing committed in this term yet: the commit index may be
             * stale, so go through the log once (rqlite's upgrade). */
            o->barrier.data = o;
            rv = raft_barrier(&s->raft, &o->barrier, barrierCb);
        } else {
            readStart(s, o);
            s->reads_started = true;
        }
        break;
    case OP_TRANSFER:
        o->transfer.data = o;
        rv = raft_transfer(&s->raft, &o->transfer, o->rid, transferCb);
        break;
    default:
        rv = RAFT_INVALID;
    }
    if (rv != 0) {
        o->raft_rc = rv;
        if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST)
            opComplete(o, STORE_NOT_LEADER, strdup("not leader"));
        else
            opComplete(o, STORE_ERROR, rq_sprintf("%s", raft_errmsg(&s->raft)[0] ? raft_errmsg(&s->raft)
                                                                         : raft_strerror(rv)));
    }
}

/* Send a round of AppendEntries to every follower now, instead of at the
 * next heartbeat: linearizable reads registered just before are confirmed
 * by the answers (a round trip, not up to a heartbeat interval). libraft
 * has no call for it; its tick with a zero heartbeat interval does it. */
static void heartbeatNow(store *s)
{
    struct raft *r = &s->raft;
    if (r->state != RAFT_LEADER || s->raft_tick == NULL)
        return;
    unsigned hb = r->heartbeat_timeout;
    r->heartbeat_timeout = 0;
    s->raft_tick(&s->io);
    r->heartbeat_timeout = hb;
}

static void drainQueue(store *s)
{
    pthread_mutex_lock(&s->mu);
    op *q = s->queue;
    s->queue = NULL;
    pthread_mutex_unlock(&s->mu);
    /* Reverse to start ops in arrival order. */
    op *rev = NULL;
    while (q) {
        op *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    while (rev) {
        op *n = rev->next;
        rev->next = NULL;
        startOp(s, rev);
        rev = n;
    }
    if (s->reads_started) {
        s->reads_started = false;
        heartbeatNow(s);
    }
}

static void onWake(uv_async_t *h)
{
    store *s = h->data;
    if (s->raft_started) {
        fetchDone(s);
        drainQueue(s);
    }
}

static void freeApplyReq(struct raft_apply *req, int status, void *result)
{
    (void)status;
    (void)result;
    free(req);
}

/* The leader confirms its term with a barrier; once applied, everything
 * committed before is applied too, and it records its own metadata. */
/* The text of a node metadata entry (malloc'd). */
static char *metaEntryText(const char *id, raft_id rid, const char *addr, const char *api)
{
    json_t *e = json_pack("{s:s,s:s,s:I,s:s,s:s}", "t", "m", "id", id, "rid", (json_int_t)rid, "addr",
                          addr, "api", api ? api : "");
    char *text = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return text;
}

/* Raft thread, leader: append a metadata entry, nobody waiting for it. */
static void appendMeta(store *s, const char *id, raft_id rid, const char *addr, const char *api)
{
    char *text = metaEntryText(id, rid, addr, api);
    struct raft_buffer b;
    b.base = entryFromText(text, &b.len);
    free(text);
    struct raft_apply *areq = calloc(1, sizeof *areq);
    if (raft_apply(&s->raft, areq, &b, 1, freeApplyReq) != 0) {
        raft_free(b.base);
        free(areq);
    }
}

static void leaderBarrierCb(struct raft_barrier *req, int status)
{
    store *s = req->data;
    s->leader_barrier_pending = false;
    free(req);
    if (status != 0 || s->raft.state != RAFT_LEADER)
        return;
    s->leader_ready = true;
    if (s->boot_metas_pending) {
        /* -bootstrap-expect: every node started knowing the others' API
         * addresses; put them in the log so that restarts keep them. */
        s->boot_metas_pending = false;
        for (int i = 0; i < s->n_metas; i++)
            if (s->metas[i].rid != s->id)
                appendMeta(s, s->metas[i].id, s->metas[i].rid, s->metas[i].addr, s->metas[i].api);
    }
    char api[300];
    snprintf(api, sizeof api, "http://%s", s->cfg->http_adv_addr);
    meta *m = metaFind(s, s->id);
    if (m && strcmp(m->api, api) == 0 && strcmp(m->addr, s->cfg->raft_adv_addr) == 0 &&
        strcmp(m->id, s->cfg->node_id) == 0)
        return;
    appendMeta(s, s->cfg->node_id, s->id, s->cfg->raft_adv_addr, api);
}

static const char *stateName(int st)
{
    switch (st) {
    case RAFT_LEADER: return "Leader";
    case RAFT_FOLLOWER: return "Follower";
    case RAFT_CANDIDATE: return "Candidate";
    default: return "Shutdown";
    }
}

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
        meta *m = metaFind(s, srv->id);
        snprintf(n->id, sizeof n->id, "%s", m && m->id[0] ? m->id : srv->address);
        snprintf(n->addr, sizeof n->addr, "%s", srv->address);
        snprintf(n->api_addr, sizeof n->api_addr, "%s", m ? m->api : "");
        n->voter = srv->role == RAFT_VOTER;
    }
}

/* After every loop iteration: publish state, react to role changes. */
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
        times[n++] = sv->id == s->id ? rq_now_ms() : peerFor(s, sv->id)->heard_ms;
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

static void onCheck(uv_check_t *h)
{
    store *s = h->data;
    struct raft *r = &s->raft;
    if (!s->raft_started)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(r, &lid, &laddr);

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

    int64_t quorum_ms = r->state == RAFT_LEADER ? quorumContactMs(s) : 0;
    pthread_mutex_lock(&s->mu);
    s->quorum_contact_ms = quorum_ms;
    bool leader_changed = s->leader_id != lid;
    s->state = r->state;
    s->term = r->current_term;
    s->commit_index = r->commit_index;
    s->applied_index = r->last_applied;
    s->leader_commit = s->leader_commit_seen > r->commit_index ? s->leader_commit_seen : r->commit_index;
    s->last_index = raft_last_index(r);
    s->snapshot_index = r->log.snapshot.last_index;
    s->first_index = r->log.front != r->log.back ? r->log.offset + 1 : 0;
    if (r->state == RAFT_FOLLOWER && lid != 0) {
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
    s->leader_id = lid;
    snprintf(s->leader_addr, sizeof s->leader_addr, "%s", laddr ? laddr : "");
    raft_index conf_index = r->configuration_uncommitted_index ? r->configuration_uncommitted_index
                                                               : r->configuration_index;
    if (s->meta_dirty || conf_index != s->published_conf_index || s->nodes == NULL) {
        rebuildNodesLocked(s);
        leaderApiLocked(s);
        s->published_conf_index = conf_index;
        s->meta_dirty = false;
    } else if (leader_changed) {
        leaderApiLocked(s);
    }
    /* Ready: a leader is known and we have applied what was committed when
     * we first saw it (the leader: its own term's barrier). Latched. */
    if (!s->ready && lid != 0) {
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
    if (leader_changed || s->ready)
        pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
    readsProgress(s); /* completes ops: takes s->mu itself */
    snapProgress(s);
}

static void onCloseRequest(uv_async_t *h);

static void reapCb(struct raft_change *req, int status)
{
    store *s = req->data;
    s->reap_pending = false;
    if (status != 0)
        rq_log("store", "reaping failed: %s", raft_strerror(status));
    free(req);
}

/* Leader: remove voters unreachable for -raft-reap-node-timeout and
 * non-voters unreachable for -raft-reap-read-only-node-timeout (rqlite's
 * reaping). The clock starts when we become leader. */
static void reapCheck(store *s)
{
    uint64_t tv = s->cfg->raft_reap_node_timeout_ms, tr = s->cfg->raft_reap_read_only_node_timeout_ms;
    if ((!tv && !tr) || s->raft.state != RAFT_LEADER || !s->leader_ready || s->reap_pending)
        return;
    int64_t now = rq_now_ms();
    if (s->reap_term != s->raft.current_term) {
        s->reap_term = s->raft.current_term;
        for (unsigned i = 0; i < s->raft.configuration.n; i++)
            peerFor(s, s->raft.configuration.servers[i].id)->heard_ms = now;
    }
    for (unsigned i = 0; i < s->raft.configuration.n; i++) {
        struct raft_server *sv = &s->raft.configuration.servers[i];
        if (sv->id == s->id)
            continue;
        peerCount *p = peerFor(s, sv->id);
        if (p->heard_ms == 0)
            p->heard_ms = now;
        uint64_t limit = sv->role == RAFT_VOTER ? tv : tr;
        if (!limit || (uint64_t)(now - p->heard_ms) <= limit)
            continue;
        meta *m = metaFind(s, sv->id);
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

static void onTick(uv_timer_t *t)
{
    /* Also keeps onCheck running while idle. */
    store *s = t->data;
    if (s && s->raft_started)
        reapCheck(s);
}

static void closeHandle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void raftClosed(struct raft *r)
{
    store *s = r->data;
    /* Fail whatever still waits. */
    if (s->snap_wait) {
        opComplete(s->snap_wait, STORE_ERROR, strdup("store closed"));
        s->snap_wait = NULL;
    }
    while (s->reads) {
        op *o = s->reads;
        s->reads = o->next;
        o->next = NULL;
        free(o->marks);
        o->marks = NULL;
        opComplete(o, STORE_ERROR, strdup("store closed"));
    }
    while (s->pending) {
        op *o = s->pending;
        s->pending = o->next;
        o->next = NULL;
        opComplete(o, STORE_ERROR, strdup("store closed"));
    }
    uv_walk(&s->loop, closeHandle, NULL);
}

static void *raftThread(void *arg)
{
    store *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ----------------------------------------------------------- lifecycle */


static bool fileExists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}


/* The newest snapshot libraft keeps in dir (files snapshot-TERM-INDEX-TS
 * and .meta): its Raft index, the database index it stands for (*need),
 * and whether it has the old inline format (*v1). */
static raft_index latestSnapshot(const char *dir, raft_index *need, bool *v1)
{
    raft_index best = 0;
    char name[512] = "";
    *v1 = false;
    *need = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long term, index, ts;
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".meta") == 0 &&
            sscanf(e->d_name, "snapshot-%llu-%llu-%llu", &term, &index, &ts) == 3 && index >= best) {
            best = index;
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
        }
    }
    closedir(d);
    if (best == 0)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char head[4096];
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    /* Snapshots were LZ4-compressed (libraft's default) only by versions
     * that wrote the old inline format. */
    static const unsigned char lz4[4] = {0x04, 0x22, 0x4d, 0x18};
    rq_snapshot snap;
    if (n >= 8 && (memcmp(head, RQ_SNAP_MAGIC_V1, 8) == 0 || memcmp(head, lz4, 4) == 0)) {
        *v1 = true;
    } else if (rq_snap_decode(head, n, &snap) == 0) {
        *need = snap.db_index;
        json_decref(snap.metas);
    } else {
        *need = best; /* unreadable: assume the worst */
    }
    return best;
}

/* A data directory belongs to one node: its ID and Raft address are
 * recorded at first start and must match afterwards (a different identity
 * would corrupt the cluster's configuration silently). */
static int checkIdentity(store *s, bool is_new, char **err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/rqnode.json", s->raft_dir);
    json_t *j = is_new ? NULL : json_load_file(path, 0, NULL);
    if (j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *addr = json_string_value(json_object_get(j, "addr"));
        int rc = 0;
        if (id && strcmp(id, s->cfg->node_id) != 0) {
            *err = rq_sprintf("data directory %s belongs to node ID %s, not %s: start it with "
                              "-node-id %s, or use another directory",
                              s->cfg->data_dir, id, s->cfg->node_id, id);
            rc = -1;
        } else if (addr && strcmp(addr, s->cfg->raft_adv_addr) != 0) {
            *err = rq_sprintf("data directory %s belongs to the node at Raft address %s, not %s: "
                              "start it with -raft-addr (or -raft-adv-addr) %s, or use another directory",
                              s->cfg->data_dir, addr, s->cfg->raft_adv_addr, addr);
            rc = -1;
        }
        json_decref(j);
        return rc;
    }
    j = json_pack("{s:s,s:s}", "id", s->cfg->node_id, "addr", s->cfg->raft_adv_addr);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_COMPACT);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        *err = rq_sprintf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* rqlite's recovery of a cluster that lost quorum: the operator writes
 * <data>/raft/peers.json, [{"id":..,"address":..,"non_voter":false},...],
 * on each surviving node and restarts it; the listed nodes become the
 * configuration (a new configuration entry at the end of the log) and the
 * file is renamed peers.info. */
static int recoverFromPeers(store *s, char **err)
{
    char path[4200], info[4200];
    snprintf(path, sizeof path, "%s/peers.json", s->raft_dir);
    snprintf(info, sizeof info, "%s/peers.info", s->raft_dir);
    if (access(path, F_OK) != 0)
        return 0;
    rq_log("store", "attempting node recovery using %s", path);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!json_is_array(j) || json_array_size(j) == 0) {
        *err = rq_sprintf("failed to read peers file %s: %s", path,
                          j ? "expected a non-empty JSON array" : jerr.text);
        json_decref(j);
        return -1;
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    size_t i;
    json_t *p;
    bool self = false;
    json_array_foreach(j, i, p) {
        const char *id = json_string_value(json_object_get(p, "id"));
        const char *addr = json_string_value(json_object_get(p, "address"));
        bool non_voter = json_is_true(json_object_get(p, "non_voter"));
        if (id == NULL || addr == NULL || !*id || !*addr) {
            *err = rq_sprintf("failed to read peers file %s: entry %zu needs \"id\" and \"address\"",
                              path, i);
            raft_configuration_close(&conf);
            json_decref(j);
            return -1;
        }
        raft_id rid = nodeRaftId(id);
        self = self || rid == s->id;
        if (raft_configuration_add(&conf, rid, addr, non_voter ? RAFT_STANDBY : RAFT_VOTER) != 0) {
            *err = rq_sprintf("failed to read peers file %s: duplicate or invalid node %s", path, id);
            raft_configuration_close(&conf);
            json_decref(j);
            return -1;
        }
        meta *m = metaFind(s, rid);
        metaUpsert(s, id, rid, addr, m ? m->api : "");
    }
    json_decref(j);
    if (!self) {
        raft_configuration_close(&conf);
        *err = rq_sprintf("peers file %s does not list this node (%s)", path, s->cfg->node_id);
        return -1;
    }
    int rv = raft_recover(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        *err = rq_sprintf("failed to recover node: %s", raft_strerror(rv));
        return -1;
    }
    if (rename(path, info) != 0) {
        *err = rq_sprintf("failed to move %s after recovery: %s", path, strerror(errno));
        return -1;
    }
    rq_log("store", "node recovered successfully using %s", path);
    return 0;
}

int store_open(const config *cfg, store **out, char **err)
{
    return store_open_with(cfg, NULL, 0, out, err);
}

int store_open_with(const config *cfg, const store_node *boot, int n_boot, store **out, char **err)
{
    bool snap_v1 = false;
    store *s = calloc(1, sizeof *s);
    s->cfg = cfg;
    s->id = nodeRaftId(cfg->node_id);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->prev_state = -1;
    /* Sequence numbers of this process's proposals: from a random base, so
     * that a restart within the same second does not reuse them. */
    uint32_t base = 0;
    if (getrandom(&base, sizeof base, 0) != (ssize_t)sizeof base)
        base = (uint32_t)time(NULL);
    s->next_seq = (uint64_t)base << 24;
    if (asprintf(&s->raft_dir, "%s/raft", cfg->data_dir) < 0 ||
        asprintf(&s->db_path, "%s/db.sqlite", cfg->data_dir) < 0) {
        *err = strdup("out of memory");
        return -1;
    }
    if (rq_mkdir_all(s->raft_dir) != 0) {
        *err = rq_sprintf("cannot create %s: %s", s->raft_dir, strerror(errno));
        return -1;
    }
    bool is_new = !fileExists(s->raft_dir, "metadata1") && !fileExists(s->raft_dir, "metadata2");
    s->was_new = is_new;
    if (is_new)
        rq_log("store", "no preexisting node state detected in %s, node may be bootstrapping",
               cfg->data_dir);
    else
        rq_log("store", "preexisting node state detected in %s", cfg->data_dir);

    if (checkIdentity(s, is_new, err) != 0)
        return -1;
    char p[4200];
    snprintf(p, sizeof p, "%s.install", s->db_path);
    unlink(p); /* a transfer cut short */
    s->fetch_path = strdup(p);
    if (is_new) {
        /* No Raft state: whatever file is here belongs to no log. */
        const char *suffixes[] = {"", "-wal", "-shm", "-journal", "-rqentry"};
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s%s", s->db_path, suffixes[i]);
            unlink(p);
        }
    }
    /* A value or SQL text no longer than a request's entry may be; a
     * statement's result bounded too (hostile input: src/db/policy.c). */
    db_options dopts = {.fk = cfg->fk,
                        .max_ro_conns = cfg->db_max_ro_conns,
                        .max_length = (int64_t)cfg->raft_max_entry_size,
                        .max_result = (size_t)cfg->db_max_result_size};
    if (db_open(s->db_path, &dopts, &s->db, err) != 0)
        return -1;
    if (db_recovered(s->db))
        rq_log("store", "an entry cut short by a crash was rolled back; the log applies it again");
    raft_index need = 0;
    s->start_snap_index = latestSnapshot(s->raft_dir, &need, &snap_v1);
    db_resolve_index(s->db, need);
    rq_log("store", "opening store with node ID %s, database at %s (%lld bytes, holds index %llu)",
           cfg->node_id, s->db_path, db_file_size(s->db), (unsigned long long)db_index(s->db));
    if (!is_new && !snap_v1 && db_index(s->db) < need) {
        *err = rq_sprintf("the database file %s holds log index %llu but the Raft log was compacted up "
                          "to snapshot %llu, which needs index %llu: the file was replaced or lost. "
                          "Remove the whole data directory %s to rejoin the cluster and copy the data "
                          "from its leader", s->db_path, (unsigned long long)db_index(s->db),
                          (unsigned long long)s->start_snap_index, (unsigned long long)need, cfg->data_dir);
        return -1;
    }

    char meta_json[1024];
    {
        json_t *m = json_pack("{s:s,s:s,s:s+}", "id", cfg->node_id, "addr", cfg->raft_adv_addr,
                              "api_addr", "http://", cfg->http_adv_addr);
        char *t = json_dumps(m, JSON_COMPACT);
        snprintf(meta_json, sizeof meta_json, "%s", t);
        free(t);
        json_decref(m);
    }

    bool bootstrap = false;
    if (is_new && n_boot > 0) {
        bootstrap = true; /* -bootstrap-expect: the nodes main.c gathered */
    } else if (is_new && cfg->n_join == 0 && cfg->bootstrap_expect == 0) {
        if (cfg->raft_non_voter) {
            *err = strdup("cannot create a new non-voting node without joining it to an existing cluster");
            return -1;
        }
        /* A wiped member restarted without -join must not lead a cluster of
         * its own (and, at an equal term, trip libraft's one-leader-per-term
         * invariant). Give a leader that still lists us the time to reach us
         * first; only if none does is this a brand-new cluster. */
        unsigned window = (unsigned)(cfg->raft_election_timeout_ms * 3 / 2);
        if (window < 1000)
            window = 1000;
        rq_log("store", "waiting up to %u ms for an existing cluster to contact this node", window);
        int contacted = rq_transport_probe(cfg->raft_addr, meta_json, window, &s->contacted_by, err);
        if (contacted < 0)
            return -1;
        if (contacted) {
            rq_log("store", "an existing cluster lists this node: not bootstrapping, "
                            "waiting for its leader to replicate the state");
        } else {
            bootstrap = true;
        }
    }

    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, onWake);
    s->wake.data = s;
    uv_check_init(&s->loop, &s->publish);
    s->publish.data = s;
    uv_check_start(&s->publish, onCheck);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, onTick, 50, 50);
    uv_async_init(&s->loop, &s->close_async, onCloseRequest);
    s->close_async.data = s;

    int rv = rq_transport_init(&s->transport, &s->loop, cfg->raft_addr, meta_json, imageCopy, s);
    if (rv != 0) {
        *err = rq_sprintf("transport: %s", raft_strerror(rv));
        return -1;
    }
    rv = raft_uv_init(&s->io, &s->loop, s->raft_dir, &s->transport);
    if (rv != 0) {
        *err = rq_sprintf("raft I/O: %s", s->io.errmsg);
        return -1;
    }
    raft_uv_set_connect_retry_delay(&s->io, 250);
    raft_uv_set_snapshot_compression(&s->io, false); /* a few hundred bytes of JSON */
    s->fsm.version = 2;
    s->fsm.data = s;
    s->fsm.apply = fsmApply;
    s->fsm.snapshot = fsmSnapshot;
    s->fsm.restore = fsmRestore;
    s->fsm.snapshot_finalize = fsmSnapshotFinalize;
    rv = raft_init(&s->raft, &s->io, &s->fsm, s->id, cfg->raft_adv_addr);
    if (rv != 0) {
        *err = rq_sprintf("raft: %s", raft_errmsg(&s->raft));
        return -1;
    }
    s->raft.data = s;
    unsigned et = (unsigned)cfg->raft_election_timeout_ms;
    /* libraft's heartbeat interval. Short, because a linearizable read waits
     * for the next heartbeat round to confirm leadership (a few hundred
     * tiny messages a second on an idle cluster). */
    unsigned hb = (unsigned)(cfg->raft_heartbeat_timeout_ms / 10);
    if (hb > 20)
        hb = 20;
    if (et < 50)
        et = 50;
    if (hb < 10)
        hb = 10;
    if (hb > et / 2)
        hb = et / 2;
    raft_set_election_timeout(&s->raft, et);
    raft_set_heartbeat_timeout(&s->raft, hb);
    s->hb_ms = hb;
    raft_set_pre_vote(&s->raft, true);
    /* A follower downloads the database before answering an InstallSnapshot;
     * a leader that times out and sends it again meanwhile is ignored
     * (fetchStart), so libraft's default timeout is fine and retries a
     * failed transfer soon. */
    raft_set_install_snapshot_timeout(&s->raft, 30000);
    /* Count AppendEntries traffic for read-index reads (see above). */
    s->io_send = s->io.send;
    s->io_start = s->io.start;
    s->io.send = wrappedSend;
    s->io.start = wrappedStart;
    raft_set_snapshot_threshold(&s->raft, snapThreshold(cfg));
    raft_set_snapshot_trailing(&s->raft, snapTrailing(cfg));
    /* (fsmSnapshot lowers the trailing count when the entries are large.) */

    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        if (n_boot == 0)
            raft_configuration_add(&conf, s->id, cfg->raft_adv_addr, RAFT_VOTER);
        for (int i = 0; i < n_boot; i++) {
            /* Every node bootstraps this same configuration, and knows
             * the same API addresses from the start. */
            raft_id rid = nodeRaftId(boot[i].id);
            raft_configuration_add(&conf, rid, boot[i].addr, RAFT_VOTER);
            metaUpsert(s, boot[i].id, rid, boot[i].addr, boot[i].api_addr);
            s->boot_metas_pending = true;
        }
        rv = raft_bootstrap(&s->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            *err = rq_sprintf("bootstrap: %s", raft_errmsg(&s->raft));
            return -1;
        }
        rq_log("store", "executing new cluster bootstrap with %d voter(s)", n_boot ? n_boot : 1);
    }
    if (!is_new && recoverFromPeers(s, err) != 0)
        return -1;
    rv = raft_start(&s->raft);
    if (rv != 0) {
        *err = rq_sprintf("raft start: %s", raft_errmsg(&s->raft));
        return -1;
    }
    s->raft_started = true;
    rq_log("store", "raft started: last log index %llu, snapshot index %llu",
           (unsigned long long)raft_last_index(&s->raft),
           (unsigned long long)s->raft.log.snapshot.last_index);
    if (pthread_create(&s->thread, NULL, raftThread, s) != 0) {
        *err = strdup("cannot start raft thread");
        return -1;
    }
    *out = s;
    return 0;
}

/* Raft thread: orderly close, requested through its own async handle so
 * that it works whatever is queued. */
static void onCloseRequest(uv_async_t *h)
{
    store *s = h->data;
    pthread_mutex_lock(&s->mu);
    op *q = s->queue;
    s->queue = NULL;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        op *n = q->next;
        q->next = NULL;
        opComplete(q, STORE_ERROR, strdup("store closed"));
        q = n;
    }
    raft_close(&s->raft, raftClosed);
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->cfg->raft_shutdown_stepdown && store_is_leader(s)) {
        int voters = 0;
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->n_nodes; i++)
            voters += s->nodes[i].voter;
        pthread_mutex_unlock(&s->mu);
        if (voters > 1) {
            rq_log("store", "stepping down as leader before shutdown");
            op *o = opNew(s, OP_TRANSFER);
            opRun(s, o, 3000);
            opRelease(s, o);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->close_async);
    pthread_join(s->thread, NULL);
    if (s->fetch_joinable) {
        pthread_join(s->fetch_thread, NULL);
        releaseMessage(&s->fetch_msg);
        unlink(s->fetch_path);
        free(s->fetch_err);
    }
    raft_uv_close(&s->io);
    rq_transport_free(&s->transport);
    uv_loop_close(&s->loop);
    db_close(s->db);
    rq_log("store", "store closed");
    free(s->metas);
    free(s->nodes);
    free(s->peers);
    free(s->raft_dir);
    free(s->db_path);
    free(s->contacted_by);
    free(s->fetch_from);
    free(s->fetch_path);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    /* Callers stop the HTTP service first (its threads use s). */
    free(s);
}

/* ------------------------------------------------------------ queries */

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

static bool leaderLocked(store *s, store_node *leader)
{
    if (s->leader_id == 0)
        return false;
    memset(leader, 0, sizeof *leader);
    snprintf(leader->addr, sizeof leader->addr, "%s", s->leader_addr);
    snprintf(leader->api_addr, sizeof leader->api_addr, "%s", s->leader_api);
    for (int i = 0; i < s->n_nodes; i++) {
        if (strcmp(s->nodes[i].addr, s->leader_addr) == 0) {
            *leader = s->nodes[i];
            return true;
        }
    }
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
    while (s->leader_id == 0 && !s->closing) {
        if (pthread_cond_timedwait(&s->changed, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    bool r = s->leader_id != 0;
    pthread_mutex_unlock(&s->mu);
    return r;
}

db *store_db(store *s) { return s->db; }
bool store_was_new(store *s) { return s->was_new; }
const char *store_contacted_by(store *s) { return s->contacted_by; }
const char *store_node_id(store *s) { return s->cfg->node_id; }

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

/* ------------------------------------------------------------- writes */

int store_check(store *s, const cmd_view *stmts, bool *readonly)
{
    return db_check(s->db, stmts, readonly) == DB_CHECK_DISALLOWED_PRAGMA ? STORE_DISALLOWED : STORE_OK;
}

/* The VM step budget of an entry: -db-max-write-steps, lowered to about
 * db_timeout_us worth of work. 0: none. */
static uint64_t stepBudget(store *s, uint64_t db_timeout_us)
{
    uint64_t steps = s->cfg->db_max_write_steps;
    if (db_timeout_us > 0) {
        uint64_t t = db_timeout_us * STORE_STEPS_PER_MS / 1000;
        if (t == 0)
            t = 1;
        if (steps == 0 || t < steps)
            steps = t;
    }
    return steps;
}

/* Propose a command entry (leader only) and wait for it to be applied. */
static int applyEntry(store *s, const cmd_view *stmts, unsigned flags, uint64_t db_timeout_us, buf *out,
                      uint64_t *raft_index, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    /* Refused here, not by every node after it is committed. */
    if (!cmd_valid(stmts)) {
        *err = strdup("invalid request");
        return STORE_INVALID;
    }
    size_t size = cmd_entry_size(stmts->len);
    if (s->cfg->raft_max_entry_size && size > s->cfg->raft_max_entry_size) {
        *err = rq_sprintf("request too large: its log entry would be %zu bytes (-raft-max-entry-size %llu)", size,
                          (unsigned long long)s->cfg->raft_max_entry_size);
        return STORE_TOO_LARGE;
    }
    op *o = opNew(s, OP_APPLY);
    pthread_mutex_lock(&s->mu);
    o->seq = ++s->next_seq;
    pthread_mutex_unlock(&s->mu);
    /* The proposer fixes the entry's clock and random seed: every replica
     * evaluates 'now' and random() from them (see db_set_entropy). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ULL ^ o->seq;
    cmd_entry ce = {.origin = s->id,
                    .seq = o->seq,
                    .flags = flags,
                    .unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
                    .seed = seed & 0x7fffffffffffffffULL,
                    .steps = stepBudget(s, db_timeout_us),
                    .stmts = *stmts};
    o->entry = raft_malloc(size);
    if (o->entry == NULL) {
        opRelease(s, o);
        opRelease(s, o);
        *err = strdup("out of memory");
        return STORE_ERROR;
    }
    cmd_entry_encode(&ce, o->entry);
    o->entry_len = size;
    o->want_results = out != NULL;
    if (out) { /* the FSM appends straight into the caller's buffer */
        o->out = *out;
        buf_init(out);
    }
    int rc = opRun(s, o, s->cfg->raft_apply_timeout_ms ? s->cfg->raft_apply_timeout_ms : 10000);
    if (rc == STORE_OK) {
        if (out) {
            *out = o->out;
            buf_init(&o->out);
        }
        if (raft_index)
            *raft_index = o->index;
    } else if (rc == STORE_ERROR) {
        *err = opTakeErr(o, "timeout waiting for the write to be applied");
    }
    opRelease(s, o);
    return rc;
}

int store_image_check(const void *image, size_t len, char **err)
{
    return db_image_check(image, len, err);
}

int store_load(store *s, const void *image, size_t len, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    size_t padded = (RQ_LOAD_HDR + len + 7) & ~(size_t)7;
    if (s->cfg->raft_max_entry_size && padded > s->cfg->raft_max_entry_size) {
        *err = rq_sprintf("database image too large: its log entry would be %zu bytes (-raft-max-entry-size %llu)",
                          padded, (unsigned long long)s->cfg->raft_max_entry_size);
        return STORE_TOO_LARGE;
    }
    /* Every node checks again when it applies the entry, alike; this is so
     * that the client hears of a bad image, and nothing is proposed. */
    if (db_image_check(image, len, err) != 0)
        return STORE_INVALID;
    op *o = opNew(s, OP_APPLY);
    pthread_mutex_lock(&s->mu);
    o->seq = ++s->next_seq;
    pthread_mutex_unlock(&s->mu);
    unsigned char *e = raft_malloc(padded);
    if (e == NULL) {
        opRelease(s, o);
        opRelease(s, o);
        *err = strdup("out of memory");
        return STORE_ERROR;
    }
    memcpy(e, RQ_LOAD_MAGIC, 8);
    rq_put64(e + 8, s->id);
    rq_put64(e + 16, o->seq);
    rq_put64(e + 24, len);
    if (len)
        memcpy(e + RQ_LOAD_HDR, image, len);
    memset(e + RQ_LOAD_HDR + len, 0, padded - RQ_LOAD_HDR - len);
    o->entry = (char *)e;
    o->entry_len = padded;
    o->want_results = true;
    int rc = opRun(s, o, s->cfg->raft_apply_timeout_ms ? s->cfg->raft_apply_timeout_ms * 6 : 60000);
    if (rc == STORE_OK && o->out.len) {
        rc = STORE_ERROR;
        *err = strdup("load failed: invalid database image");
    } else if (rc == STORE_ERROR) {
        *err = opTakeErr(o, "timeout waiting for the load to be applied");
    }
    opRelease(s, o);
    return rc;
}

int store_execute(store *s, const cmd_view *stmts, unsigned db_flags, uint64_t db_timeout_us, buf *out,
                  uint64_t *raft_index, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    bool readonly;
    if (store_check(s, stmts, &readonly) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    return applyEntry(s, stmts, db_flags, db_timeout_us, out, raft_index, err);
}

/* Wait until the leader has confirmed its leadership and applied
 * everything committed before now, through the log. */
static int barrier(store *s, char **err)
{
    op *o = opNew(s, OP_BARRIER);
    int rc = opRun(s, o, s->cfg->raft_apply_timeout_ms ? s->cfg->raft_apply_timeout_ms : 10000);
    if (rc == STORE_ERROR)
        *err = opTakeErr(o, "timeout waiting for the read barrier");
    opRelease(s, o);
    return rc;
}


/* Is a contact age_ms old (a whole number of milliseconds, so up to a
 * millisecond older than that) too old for freshness_us? A freshness under
 * a millisecond is honoured, not rounded away. */
static bool tooOld(int64_t age_ms, uint64_t freshness_us)
{
    return age_ms < 0 || (uint64_t)(age_ms + 1) * 1000 > freshness_us;
}

/* The policy looks at the statements as they run (db_query). */
int store_query(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err)
{
    store_level level = r->level;
    uint64_t freshness_us = r->freshness_us;
    bool freshness_strict = r->freshness_strict;
    if (level == LEVEL_AUTO)
        level = s->cfg->raft_non_voter ? LEVEL_NONE : LEVEL_WEAK;
    if (level == LEVEL_NONE) {
        if (freshness_us > 0 && store_is_leader(s)) {
            /* A leader's data is as fresh as its last contact with a
             * majority (an isolated leader has not stepped down yet). */
            pthread_mutex_lock(&s->mu);
            int64_t q = s->quorum_contact_ms;
            pthread_mutex_unlock(&s->mu);
            if (q == 0 || tooOld(rq_now_ms() - q, freshness_us)) {
                *err = strdup("stale read");
                return STORE_ERROR;
            }
        } else if (freshness_us > 0) {
            /* A follower refuses to answer from data older than asked. */
            pthread_mutex_lock(&s->mu);
            bool known = s->leader_id != 0 && s->last_contact_ms > 0;
            int64_t now = rq_now_ms();
            int64_t age = now - s->last_contact_ms;
            /* Strict: caught up with what the leader last said it had
             * committed, and that said after a settling time, so that a
             * backlog delivered after a partition is not taken for news. */
            bool behind = s->leader_commit > s->applied_index || now - s->contact_since_ms < CONTACT_SETTLE_MS ||
                          age > 3 * (int64_t)s->hb_ms;
            pthread_mutex_unlock(&s->mu);
            if (!known || tooOld(age, freshness_us) || (freshness_strict && behind)) {
                *err = strdup("stale read");
                return STORE_ERROR;
            }
        }
        return db_query(s->db, stmts, db_flags, r->db_timeout_us, out) == DB_CHECK_OK ? STORE_OK : STORE_DISALLOWED;
    }
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    if (level == LEVEL_LINEARIZABLE) {
        op *o = opNew(s, OP_READINDEX);
        o->deadline_ms = rq_now_ms() + 1000;
        int rc = opRun(s, o, 5000);
        if (rc == STORE_ERROR && o->done) {
            /* Not confirmed in time: confirm through the log instead. */
            opRelease(s, o);
            rc = barrier(s, err);
        } else {
            if (rc == STORE_ERROR)
                *err = opTakeErr(o, "timeout waiting for the read index");
            opRelease(s, o);
        }
        if (rc != STORE_OK)
            return rc;
    } else if (level == LEVEL_STRONG) {
        /* Through the log: a barrier entry, then read locally. */
        int rc = barrier(s, err);
        if (rc != STORE_OK)
            return rc;
    }
    return db_query(s->db, stmts, db_flags, r->db_timeout_us, out) == DB_CHECK_OK ? STORE_OK : STORE_DISALLOWED;
}

int store_request(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err)
{
    bool readonly;
    if (store_check(s, stmts, &readonly) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    if (r->level != LEVEL_STRONG && readonly) {
        store_read q = *r;
        if (q.level == LEVEL_AUTO)
            q.level = LEVEL_WEAK;
        return store_query(s, stmts, db_flags, &q, out, err);
    }
    return applyEntry(s, stmts, db_flags | DB_READ_ROWS, r->db_timeout_us, out, NULL, err);
}

/* ---------------------------------------------------------- membership */

static int changeOp(store *s, int type, raft_id rid, const char *addr, int role, char **err)
{
    /* libraft runs one configuration change at a time: retry while busy. */
    int64_t deadline = rq_now_ms() + 60000;
    for (;;) {
        op *o = opNew(s, type);
        o->rid = rid;
        o->role = role;
        if (addr)
            snprintf(o->addr, sizeof o->addr, "%s", addr);
        int rc = opRun(s, o, 60000);
        int raft_rc = o->raft_rc;
        /* A node added earlier whose promotion failed is still a spare:
         * adding it again is a no-op, its promotion is retried next. */
        if (rc == STORE_OK || (type == OP_ADD && raft_rc == RAFT_DUPLICATEID)) {
            opRelease(s, o);
            return STORE_OK;
        }
        if (rc == STORE_ERROR && raft_rc == RAFT_CANTCHANGE && rq_now_ms() < deadline) {
            opRelease(s, o);
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc == STORE_ERROR)
            *err = opTakeErr(o, "timeout waiting for the membership change");
        opRelease(s, o);
        return rc;
    }
}

static int applyMeta(store *s, const char *id, const char *addr, const char *api, char **err)
{
    op *o = opNew(s, OP_APPLY);
    char *text = metaEntryText(id, nodeRaftId(id), addr, api);
    pthread_mutex_lock(&s->mu);
    o->seq = ++s->next_seq;
    pthread_mutex_unlock(&s->mu);
    o->entry = entryFromText(text, &o->entry_len);
    free(text);
    int rc = opRun(s, o, 10000);
    if (rc == STORE_ERROR)
        *err = opTakeErr(o, "timeout recording node metadata");
    opRelease(s, o);
    return rc;
}

int store_join(store *s, const char *id, const char *raft_addr, const char *api_addr,
               bool voter, bool reset, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    raft_id rid = nodeRaftId(id);
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
            conflicts[n_conflicts++] = nodeRaftId(nodes[i].id);
        }
    }
    free(nodes);
    int rc;
    if (same && reset) {
        /* The node lost its state: the leader's view of its log (match
         * index) is wrong now and Raft never lowers it, so replication to
         * it would stall. Removing and re-adding it starts afresh. */
        rq_log("store", "node %s at %s rejoins without state: removing and re-adding it", id,
               raft_addr);
        if ((rc = changeOp(s, OP_REMOVE, rid, NULL, 0, err)) != STORE_OK)
            return rc;
        same = false;
    } else if (same && same_voter && api_same) {
        rq_log("store", "node %s at %s is already a member, ignoring join request", id, raft_addr);
        return STORE_OK;
    }
    for (int i = 0; i < n_conflicts; i++) {
        rq_log("store", "removing node %llx before re-adding %s at %s",
               (unsigned long long)conflicts[i], id, raft_addr);
        if ((rc = changeOp(s, OP_REMOVE, conflicts[i], NULL, 0, err)) != STORE_OK)
            return rc;
    }
    if ((rc = applyMeta(s, id, raft_addr, api_addr, err)) != STORE_OK)
        return rc;
    if (!same) {
        rq_log("store", "adding node %s at %s (voter=%s)", id, raft_addr, voter ? "true" : "false");
        if ((rc = changeOp(s, OP_ADD, rid, raft_addr, 0, err)) != STORE_OK)
            return rc;
    }
    if (!same || !same_voter) {
        if ((rc = changeOp(s, OP_ASSIGN, rid, NULL, voter ? RAFT_VOTER : RAFT_STANDBY, err)) != STORE_OK)
            return rc;
    }
    rq_log("store", "node %s at %s joined successfully", id, raft_addr);
    return STORE_OK;
}

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
    return changeOp(s, OP_REMOVE, nodeRaftId(id), NULL, 0, err);
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
        rid = nodeRaftId(id);
    }
    op *o = opNew(s, OP_TRANSFER);
    o->rid = rid;
    int rc = opRun(s, o, 10000);
    if (rc == STORE_ERROR)
        *err = opTakeErr(o, "timeout waiting for leadership transfer");
    opRelease(s, o);
    return rc;
}

int store_snapshot(store *s, uint64_t trailing, bool *nothing_new, char **err)
{
    op *o = opNew(s, OP_SNAPSHOT);
    o->trailing = trailing;
    int rc = opRun(s, o, 15000);
    *nothing_new = rc == STORE_OK && o->raft_rc == 1;
    if (rc == STORE_ERROR)
        *err = opTakeErr(o, "timeout waiting for the snapshot");
    opRelease(s, o);
    if (rc == STORE_OK && !*nothing_new)
        rq_log("store", "user-requested snapshot taken");
    return rc;
}

/* --------------------------------------------------------------- status */

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

int store_dump(store *s, const char *tables, buf *out, char **err)
{
    return db_dump(s->db, tables, out, err);
}
