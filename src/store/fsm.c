/*
 * fsm.c: the state machine libraft drives: apply, snapshot, restore (all
 * on the Raft thread), and the /snapshot request.
 *
 * Exactly-once application. The SQLite file persists and records, in the
 * same transaction as an entry's changes, the index of the last entry it
 * holds (db.h). The FSM skips SQL entries at or below that index, so after
 * a restart libraft's replay of the log tail costs nothing, whatever the
 * size of the database, and no entry is applied twice.
 *
 * Entries (codec.h): execute (the command module's RQCMD001; the older
 * RQEXEC01 and JSON forms are still applied), load (a whole database
 * image), and node metadata. The node that proposed an entry finds its
 * waiting request by ORIGIN/SEQ and index (s->pending, added by ops.c) and
 * only it encodes results; every node, the proposer included, runs the
 * statements decoded from the entry's bytes.
 *
 * Snapshots carry no data, only a marker (codec.h: "RQSNAP02" with the
 * Raft index, the database index, the node metadata). Taking one makes the
 * file durable up to that index (db_sync) before libraft compacts the log;
 * restoring one finds the file already holding it (a follower that needs
 * it downloads the leader's file first: fetch.c). The old "RQSNAP01"
 * format, with the image inline, is still restored.
 *
 * When to snapshot is decided here, not by libraft, whose threshold stays
 * out of reach (SNAP_NEVER) except while a snapshot is wanted: then it is
 * 1, and libraft takes one after the next entry it applies (it has no call
 * to take one at once). Three things want one: the -raft-snap-int check
 * (storeSnapCheck: -raft-snap entries since the last snapshot, or a WAL of
 * -raft-snap-wal-size bytes, as rqlite checks them), -raft-snap-wal-size
 * bytes of entries applied since the last snapshot (checked after every
 * entry, because libraft holds them in memory), and /snapshot.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/os.h"

/* -raft-snap, and the entries kept after a snapshot (before fsmSnapshot
 * trims them by size). */
unsigned storeSnapThreshold(const config *cfg)
{
    return (unsigned)(cfg->raft_snap ? cfg->raft_snap : 8192);
}

unsigned storeSnapTrailing(const config *cfg)
{
    return storeSnapThreshold(cfg) * 5 / 4;
}

/* libraft's threshold while no snapshot is wanted: never reached. */
#define SNAP_NEVER UINT_MAX

/* libraft's threshold: 1 while a snapshot is wanted (one is taken after
 * the next applied entry), else out of reach. */
static void snapRearm(store *s)
{
    bool want = s->snap_wait || s->size_snap || s->snap_due;
    raft_set_snapshot_threshold(&s->raft, want ? 1 : SNAP_NEVER);
}

void storeSnapInit(store *s)
{
    raft_set_snapshot_threshold(&s->raft, SNAP_NEVER);
    raft_set_snapshot_trailing(&s->raft, storeSnapTrailing(s->cfg));
}

/* The next -raft-snap-int check: one to two intervals from now, as
 * hashicorp raft staggers it, so that the nodes of a cluster do not all
 * snapshot at once. An interval of 0 is hashicorp's default, 2 minutes. */
static int64_t nextSnapCheck(store *s, int64_t now)
{
    uint64_t iv = s->cfg->raft_snap_int_ms ? s->cfg->raft_snap_int_ms : 120000;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)now * 2654435761u;
    return now + (int64_t)(iv + r % iv);
}

/* Nobody waits for the barrier that gives libraft an entry to apply. */
static void freeBarrier(struct raft_barrier *b, int status)
{
    (void)status;
    free(b);
}

/* A leader has an entry applied soon, so that libraft takes the wanted
 * snapshot now; a follower takes it after the next entry it receives. */
static void snapSoon(store *s)
{
    if (s->raft.state != RAFT_LEADER)
        return;
    struct raft_barrier *b = calloc(1, sizeof *b);
    if (b && raft_barrier(&s->raft, b, freeBarrier) != 0)
        free(b);
}

void storeSnapCheck(store *s)
{
    int64_t now = rq_now_ms();
    if (s->snap_check_ms == 0)
        s->snap_check_ms = nextSnapCheck(s, now);
    if (now < s->snap_check_ms)
        return;
    s->snap_check_ms = nextSnapCheck(s, now);
    const config *cfg = s->cfg;
    struct raft *r = &s->raft;
    uint64_t since = r->last_applied - r->log.snapshot.last_index;
    bool by_count = since >= storeSnapThreshold(cfg);
    /* rqlite checks its WAL only with an interval set; a snapshot
     * checkpoints ours (db_sync), but only one with something new in it
     * can be taken. */
    bool by_wal = cfg->raft_snap_int_ms && cfg->raft_snap_wal_size && since > 0 &&
                  (uint64_t)db_wal_size(s->db) >= cfg->raft_snap_wal_size;
    if (s->snap_due || !(by_count || by_wal))
        return;
    s->snap_due = true;
    snapRearm(s);
    snapSoon(s);
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
static void applyLoad(store *s, const codec_load_entry *e, raft_index index)
{
    char *err = NULL;
    op *o = e->origin == s->id ? pendingFind(s, e->seq, index) : NULL;
    if (db_restore(s->db, e->image, e->image_len, index, &err) != 0) {
        rq_logl(RQ_LOG_WARN, "store", "load at index %llu refused: %s", (unsigned long long)index, err ? err : "?");
        if (o && o->want_results) {
            buf_puts(&o->out, "{\"error\":");
            buf_json_cstr(&o->out, err ? err : "load failed");
            buf_putc(&o->out, '}');
        }
        free(err);
    } else {
        rq_log("store", "database loaded from a %zu-byte image", e->image_len);
    }
    if (o)
        storeOpApplied(s, o, rq_now_sec());
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
        rq_logl(RQ_LOG_WARN, "store",
                "stopping now: the entry at index %llu failed on this node alone (SQLite code %d), "
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
    double t0 = o ? rq_now_sec() : 0;
    runEntry(s, o, &e->stmts, (unsigned)e->flags, (int64_t)e->unix_ms, e->seed, e->steps, index);
    if (o) {
        double t1 = rq_now_sec();
        store_stage(s, STORE_STAGE_COMMIT, t0 - o->t_proposed);
        store_stage(s, STORE_STAGE_APPLY, t1 - t0);
        storeOpApplied(s, o, t1);
    }
}

/* Statements in the JSON of entries written before commands existed: read
 * as a request body is, the same way on every node (what it cannot read,
 * such as SQL with a NUL byte, is skipped everywhere). */
static void applyLegacy(store *s, const codec_exec_entry *ex, raft_index index)
{
    op *o = ex->origin == s->id ? pendingFind(s, ex->seq, index) : NULL;
    cmd_batch b;
    char *err = NULL;
    if (cmd_from_json(ex->json, ex->json_len, &b, &err) != 0) {
        rq_log("store", "skipping execute entry at index %llu that no node can read: %s",
               (unsigned long long)index, err ? err : "?");
        free(err);
    } else {
        cmd_view v = cmd_batch_view(&b);
        runEntry(s, o, &v, (unsigned)ex->flags, (int64_t)ex->ms, ex->seed, 0, index);
        cmd_batch_free(&b);
    }
    if (o)
        storeOpApplied(s, o, rq_now_sec());
}

/* The binary entries, told apart by their magic (codec.h): false when b is
 * none of them. A malformed one is skipped, alike on every node, since
 * decoding depends on the bytes alone. */
static bool applyBinary(store *s, const struct raft_buffer *b, raft_index index, bool held)
{
    const char *kind;
    int rc;
    cmd_entry ce;
    codec_exec_entry ex;
    codec_load_entry ld;
    if (held && b->len >= 8 && memcmp(b->base, CMD_ENTRY_MAGIC, 8) == 0) {
        return true; /* the file has it: not even decompressed */
    } else if ((rc = cmd_entry_decode(b->base, b->len, &ce)) <= 0) {
        kind = "command";
        if (rc == 0) {
            applyCommand(s, &ce, index);
            cmd_entry_free(&ce);
        }
    } else if ((rc = codec_exec_decode(b->base, b->len, &ex)) <= 0) {
        kind = "execute";
        if (rc == 0 && !held)
            applyLegacy(s, &ex, index);
    } else if ((rc = codec_load_decode(b->base, b->len, &ld)) <= 0) {
        kind = "load";
        if (rc == 0 && !held)
            applyLoad(s, &ld, index);
    } else {
        return false;
    }
    if (rc < 0)
        rq_log("store", "skipping malformed %s entry at index %llu", kind, (unsigned long long)index);
    return true;
}

/* The JSON entries: node metadata (applied even when the file holds the
 * entry: the table lives in memory), and execute entries of the oldest
 * format. */
static void applyJson(store *s, const struct raft_buffer *b, raft_index index, bool held)
{
    json_error_t jerr;
    json_t *e = json_loadb(b->base, b->len, 0, &jerr);
    if (e == NULL) {
        rq_log("store", "skipping undecodable log entry: %s", jerr.text);
        return;
    }
    codec_exec_entry ex;
    codec_meta_entry me;
    char *q = held ? NULL : codec_jexec_decode(e, &ex);
    if (q != NULL)
        applyLegacy(s, &ex, index);
    else if (codec_meta_decode(e, &me) == 0)
        storeMetaUpsert(s, me.id, me.rid, me.addr, me.api);
    free(q);
    json_decref(e);
}

/* Never fails: the entry is committed and every node must move past it
 * identically. */
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
        snapRearm(s);
    }
    bool held = index <= db_index(s->db); /* the file has it already */
    double t0 = rq_now_sec();
    if (!applyBinary(s, b, index, held))
        applyJson(s, b, index, held);
    if (s->pending)
        storeOpSettle(s, index);
    double took = rq_now_sec() - t0;
    metrics_observe(&s->m_apply, took);
    storeStatSet(s, SSTAT_FSM_APPLY_US, (uint64_t)(took * 1e6));
    return 0;
}

/* How many entries to keep after a snapshot: -raft-snap's share (or what
 * a /snapshot request asked for), but no more than TRAIL_BYTES of them,
 * since libraft holds them in memory. */
#define TRAIL_BYTES (8u << 20)

/* Counted from the newest entry back, since those are the ones a lagging
 * follower needs next. */
static unsigned sizedTrailing(store *s)
{
    struct raft_log *l = &s->raft.log;
    unsigned want = storeSnapTrailing(s->cfg);
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

/* rqlite's counters of a failed snapshot (and of one wanted by size). */
static void snapFailed(store *s, bool by_size)
{
    storeStat(s, SSTAT_SNAPSHOTS_FAILED);
    if (by_size)
        storeStat(s, SSTAT_WAL_SNAPSHOTS_FAILED);
}

/* A snapshot is only a marker: the database file is the state. */
static int fsmSnapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    store *s = fsm->data;
    double t0 = rq_now_sec();
    bool by_size = s->size_snap;
    raft_set_snapshot_trailing(&s->raft, sizedTrailing(s));
    /* This snapshot is the one wanted by size or by the interval check. */
    s->log_bytes = 0;
    s->size_snap = s->snap_due = false;
    snapRearm(s);
    storeVacuumMaybe(s); /* nothing writes meanwhile; the sync covers it */
    /* The log up to here may go once libraft has the snapshot: the file
     * must hold it durably first. */
    double t_sync = rq_now_sec();
    if (db_sync(s->db) != 0) {
        snapFailed(s, by_size);
        rq_logl(RQ_LOG_WARN, "store", "snapshot failed: cannot sync the database file");
        return RAFT_IOERR;
    }
    storeStatSet(s, SSTAT_SNAPSHOT_SYNC_MS, (uint64_t)((rq_now_sec() - t_sync) * 1000));
    codec_snapshot snap = {.raft_index = s->raft.last_applied, .db_index = db_index(s->db), .metas = storeMetasToJson(s)};
    s->snap_buf.base = codec_snap_encode(&snap, &s->snap_buf.len);
    json_decref(snap.metas);
    if (s->snap_buf.base == NULL) {
        snapFailed(s, by_size);
        return RAFT_NOMEM;
    }
    if (by_size)
        storeStat(s, SSTAT_WAL_SNAPSHOTS);
    *bufs = &s->snap_buf;
    *n_bufs = 1;
    double took = rq_now_sec() - t0;
    metrics_observe(&s->m_snapshot, took);
    storeStatSet(s, SSTAT_SNAPSHOT_CREATE_MS, (uint64_t)(took * 1000));
    storeStatSet(s, SSTAT_SNAPSHOT_PERSIST_SIZE, s->snap_buf.len);
    s->snap_taken_ms = rq_now_ms();
    return 0;
}

/* libraft has written the snapshot: the marker can go. */
static int fsmSnapshotFinalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    store *s = fsm->data;
    (void)bufs;
    (void)n_bufs;
    raft_free(s->snap_buf.base);
    s->snap_buf.base = NULL;
    storeStat(s, SSTAT_SNAPSHOTS);
    storeStatSet(s, SSTAT_SNAPSHOT_PERSIST_MS, (uint64_t)(rq_now_ms() - s->snap_taken_ms));
    rq_log("store", "snapshot taken at index %llu (database %lld bytes, not copied)",
           (unsigned long long)s->raft.last_applied, db_file_size(s->db));
    return 0;
}

/* At start, and after an install (whose file fetch.c has put in place
 * already): the file normally holds the snapshot; only the old format
 * carries an image to restore. */
static int fsmRestore(struct raft_fsm *fsm, struct raft_buffer *b)
{
    store *s = fsm->data;
    codec_snapshot snap;
    if (codec_snap_decode(b->base, b->len, &snap) != 0) {
        storeStat(s, SSTAT_RESTORES_FAILED);
        rq_logl(RQ_LOG_WARN, "store", "refusing to restore snapshot: unknown format");
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
            storeStat(s, SSTAT_RESTORES_FAILED);
            rq_logl(RQ_LOG_WARN, "store", "restore failed: %s", err ? err : "?");
            free(err);
            json_decref(metas);
            return RAFT_IOERR;
        }
        storeStat(s, SSTAT_RESTORES);
        if (!s->raft_started)
            storeStat(s, SSTAT_RESTORES_START);
        rq_log("store", "restored snapshot (%zu bytes of database, old format)", image_len);
    } else {
        db_resolve_index(s->db, index);
        if (db_index(s->db) < index) {
            /* Installs fetch the file first (raftio.c, fetch.c) and store_open
             * refuses a file behind its snapshot: this is a bug. */
            rq_logl(RQ_LOG_WARN, "store",
                    "cannot restore a snapshot of index %llu: the database file holds only index %llu",
                    (unsigned long long)index, (unsigned long long)db_index(s->db));
            storeStat(s, SSTAT_RESTORES_FAILED);
            json_decref(metas);
            return RAFT_IOERR;
        }
        /* libraft restores at raft_start (the file held it already: the
         * restore rqlite skips at start), or installs one a leader sent,
         * whose database fetch.c has put in place. */
        storeStat(s, s->raft_started ? SSTAT_RESTORES : SSTAT_RESTORES_START_SKIPPED);
        rq_log("store", "snapshot (database index %llu) restored: the database file already holds index %llu",
               (unsigned long long)index, (unsigned long long)db_index(s->db));
    }
    if (metas)
        storeMetasFromJson(s, metas);
    json_decref(metas);
    raft_free(b->base);
    return 0;
}

/* A user snapshot (/snapshot): libraft snapshots only past a threshold of
 * applied entries, so lower it to 1 until the next apply has taken one. */
void storeSnapStart(store *s, op *o)
{
    struct raft *r = &s->raft;
    if (r->last_applied <= r->log.snapshot.last_index) {
        o->raft_rc = 1; /* nothing new to snapshot */
        storeOpComplete(o, STORE_OK, NULL);
        return;
    }
    if (s->snap_wait) {
        storeOpComplete(o, STORE_ERROR, strdup("a snapshot is already in progress"));
        return;
    }
    o->index = r->last_applied;
    o->deadline_ms = rq_now_ms() + 10000;
    s->snap_wait = o;
    snapRearm(s);
    snapSoon(s);
}

void storeSnapProgress(store *s)
{
    op *o = s->snap_wait;
    if (o == NULL)
        return;
    struct raft *r = &s->raft;
    bool taken = r->log.snapshot.last_index >= o->index;
    if (!taken && rq_now_ms() < o->deadline_ms)
        return;
    s->snap_wait = NULL;
    snapRearm(s);
    if (taken)
        storeOpComplete(o, STORE_OK, NULL);
    else
        storeOpComplete(o, STORE_ERROR, strdup("timeout waiting for the snapshot"));
}

/* The op completes once libraft has taken the snapshot (storeSnapProgress);
 * raft_rc 1 says there was nothing new to take. */
int store_snapshot(store *s, uint64_t trailing, bool *nothing_new, char **err)
{
    op *o = storeOpNew(s, OP_SNAPSHOT);
    o->trailing = trailing;
    int rc = storeOpRun(s, o, 15000);
    *nothing_new = rc == STORE_OK && o->raft_rc == 1;
    if (rc == STORE_ERROR)
        *err = storeOpTakeErr(o, "timeout waiting for the snapshot");
    storeOpRelease(s, o);
    if (rc == STORE_OK && !*nothing_new) {
        storeStat(s, SSTAT_USER_SNAPSHOTS);
        rq_log("store", "user-requested snapshot taken");
    } else if (rc != STORE_OK) {
        storeStat(s, SSTAT_USER_SNAPSHOTS_FAILED);
    }
    return rc;
}

void storeFsmInit(store *s)
{
    s->fsm.version = 2;
    s->fsm.data = s;
    s->fsm.apply = fsmApply;
    s->fsm.snapshot = fsmSnapshot;
    s->fsm.restore = fsmRestore;
    s->fsm.snapshot_finalize = fsmSnapshotFinalize;
}
