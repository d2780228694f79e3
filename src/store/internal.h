/*
 * store/internal.h: what the files of store/ share, and nothing outside
 * store/ may use. One struct store per node; its fields are grouped by the
 * thread that may touch them (the Raft thread alone, or any thread under
 * s->mu), and each group says so. Functions shared between the files are
 * named storeXxx (public ones keep store_xxx, in store.h); each is
 * declared here under the file that defines it, with its contract.
 */
#ifndef RQ_STORE_INTERNAL_H
#define RQ_STORE_INTERNAL_H

#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "metrics/metrics.h"
#include "store/store.h"
#include "store/transport.h"
#include "util/buf.h"
#include "util/job.h"

enum { RAFT_RUNNING = 0, RAFT_SHUT_CLOSING, RAFT_SHUT_DONE };

/* What an op asks of the Raft thread (startOp, ops.c). */
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

/* A request to the Raft thread (ops.c). */
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
    bool batchable;        /* a command entry: the FSM completes it (ops.c) */
    /* raft requests */
    struct raft_barrier barrier;
    struct raft_change change;
    struct raft_transfer transfer;
    /* OP_READINDEX */
    raft_term term;
    readMark *marks;
    unsigned n_marks;
    bool confirmed;
    int64_t deadline_ms;   /* of the confirmation, then (confirmed) of the apply */
    uint64_t wait_ms;      /* OP_READINDEX: the apply's, once confirmed */
    int64_t start_ms;      /* OP_READINDEX: registered (verify_leader_duration) */
    double t_queued;       /* OP_APPLY's stages (store_stage), rq_now_sec */
    double t_proposed;
    double t_applied;
    struct op *next;       /* queue / pending list */
    struct store *s;
} op;

/* rqlite's "store" expvar counters (publish.c names them, store_vars()).
 * Any thread adds to them, atomically (storeStat). */
enum {
    SSTAT_SNAPSHOTS,              /* libraft snapshots taken */
    SSTAT_USER_SNAPSHOTS,         /* of them, asked for (/snapshot) */
    SSTAT_RESTORES,               /* snapshots installed: sent by a leader, or
                                   * of the old format restored at start */
    SSTAT_RESTORES_START,         /* at start, a database rebuilt from a snapshot */
    SSTAT_RESTORES_START_SKIPPED, /* at start, the file already held the snapshot */
    SSTAT_SNAPSHOT_TRANSFERS,     /* databases fetched from a leader (fetch.c) */
    SSTAT_JOINS,                  /* joins that changed the configuration */
    SSTAT_IGNORED_JOINS,          /* joins of a node already a member as asked */
    SSTAT_REMOVED_BEFORE_JOINS,   /* members removed to let a join re-add them */
    SSTAT_LOADS,                  /* /db/load and /boot images applied */
    SSTAT_BACKUPS,                /* backups and dumps made */
    SSTAT_RECOVERIES,             /* peers.json recoveries */
    SSTAT_AUTO_OPTIMIZES,         /* PRAGMA optimize runs (-auto-optimize-int) */
    SSTAT_AUTO_OPTIMIZES_FAILED,
    SSTAT_AUTO_VACUUMS,           /* VACUUMs at snapshots (-auto-vacuum-int) */
    SSTAT_AUTO_VACUUMS_FAILED,
    SSTAT_NODES_REAPED_OK,        /* reaping (-raft-reap-*-timeout) */
    SSTAT_NODES_REAPED_FAILED,
    SSTAT_N_STATUS,               /* the ones above are in /status too */
    SSTAT_SNAPSHOTS_FAILED = SSTAT_N_STATUS, /* fsmSnapshot failed */
    SSTAT_USER_SNAPSHOTS_FAILED,
    SSTAT_WAL_SNAPSHOTS,          /* snapshots wanted by -raft-snap-wal-size */
    SSTAT_WAL_SNAPSHOTS_FAILED,
    SSTAT_BOOTS,                  /* /boot images applied (not in num_loads) */
    SSTAT_RESTORES_FAILED,        /* fsmRestore refused a snapshot */
    SSTAT_COMPRESSED_COMMANDS,    /* execute entries proposed, LZ4 or not */
    SSTAT_UNCOMPRESSED_COMMANDS,
    SSTAT_VERIFY_LEADER,          /* linearizable reads' leadership checks, */
    SSTAT_VERIFY_LEADER_FAILED,   /* ... not confirmed */
    SSTAT_DB_STATS_ERRORS,        /* /status could not read the pragmas */
    /* Latest values, set rather than added. */
    SSTAT_FSM_APPLY_US,           /* one entry through the FSM */
    SSTAT_SNAPSHOT_CREATE_MS,     /* fsmSnapshot, the sync included */
    SSTAT_SNAPSHOT_SYNC_MS,       /* its db_sync */
    SSTAT_SNAPSHOT_PERSIST_MS,    /* libraft writing it (until finalize) */
    SSTAT_SNAPSHOT_PERSIST_SIZE,  /* the bytes libraft wrote */
    SSTAT_VERIFY_LEADER_MS,
    SSTAT_AUTO_OPTIMIZE_MS,
    SSTAT_N
};

/* A node's metadata (membership.c): what libraft's configuration lacks. */
typedef struct meta {
    char id[256];
    raft_id rid;
    char addr[256];
    char api[300];
} meta;

struct store {
    /* Set by store_open, then read-only. */
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
    struct raft_tracer tracer;  /* -raft-log-level DEBUG/TRACE: libraft's traces */
    bool raft_started;
    /* Raft thread: libraft shut down because this node was removed
     * (-raft-remove-shutdown): RAFT_SHUT_CLOSING until its close callback,
     * then RAFT_SHUT_DONE; ops fail from then on, the loop runs on until
     * store_close. */
    int raft_shut;
    bool close_after_shut;  /* store_close came while it was closing */
    bool was_new;
    char *contacted_by;    /* Raft address of the leader that reached a wiped node */

    /* Any thread, atomically (storeStat). */
    uint64_t stats[SSTAT_N];
    /* metrics.c: latency histograms (any thread updates, scrapes read) */
    metrics_hist m_apply;    /* one entry through the FSM */
    metrics_hist m_snapshot; /* taking a snapshot (sync, marker) */
    metrics_hist m_transfer; /* a database fetched from the leader */
    metrics_hist m_stage[STORE_STAGE_N]; /* store_stage */
    uint64_t appended;       /* entries written by the appends of m_stage[APPEND] */
    uint64_t leader_changes; /* s->mu: a new leader seen */

    /* Any thread, under mu. */
    pthread_mutex_t mu;
    op *queue;             /* ops waiting for the Raft thread, LIFO is fine */
    bool closing;          /* store_close has begun */
    uint64_t next_seq;

    /* Published by the Raft thread under mu (publish.c). */
    int state;
    raft_term term;
    raft_index commit_index, applied_index, last_index, snapshot_index;
    raft_term last_term, snapshot_term;
    raft_index first_index;  /* of the log libraft holds, 0 if empty */
    raft_index leader_commit;   /* the leader's commit index as last told (followers) */
    int64_t quorum_contact_ms;  /* leader: when a majority was last heard from */
    raft_id leader_id;       /* as libraft knows it: from its first message */
    char leader_addr[256];
    char leader_node[256];   /* its node ID from node metadata, "" while unknown:
                              * callers see no leader until it is known */
    char leader_api[300];    /* its API address from node metadata */
    store_node *nodes;
    int n_nodes;
    bool ready;
    bool ready_held;         /* store_hold_ready: not ready whatever Raft says */
    int64_t last_contact_ms; /* follower: monotonic ms of the leader's last message */
    int64_t contact_since_ms; /* follower: start of the current unbroken contact */
    unsigned hb_ms;          /* heartbeat interval given to libraft */
    pthread_cond_t changed;  /* broadcast on every publish that changes leader */

    /* Raft thread only, by the file that keeps them. */
    /* ops.c */
    op *pending;           /* applied ops waiting for their entry (fsm.c finds them) */
    bool reads_started;    /* drainQueue registered linearizable reads */
    /* fsm.c */
    uint64_t log_bytes;     /* entry bytes applied since the last snapshot */
    bool size_snap;         /* a snapshot triggered by log_bytes is due */
    bool snap_due;          /* the -raft-snap-int check wants a snapshot */
    int64_t snap_check_ms;  /* when that check runs next (0: not set yet) */
    op *snap_wait;          /* a user snapshot waiting to be taken */
    struct raft_buffer snap_buf; /* held between snapshot and finalize */
    int64_t snap_taken_ms;  /* when fsmSnapshot returned it (persist duration) */
    raft_index start_snap_index;  /* latest snapshot on disk at start */
    /* membership.c */
    meta *metas;
    int n_metas;
    char recorded_api[300];  /* under mu: our API address as the metadata has it ("" unknown) */
    bool meta_dirty;        /* changed since publish.c last rebuilt the nodes */
    bool boot_metas_pending; /* bootstrapped with others' metadata not yet in the log */
    bool raft_addr_changed;  /* the Raft address differs from the last start's */
    bool reap_pending;      /* a reaping removal in flight */
    raft_term reap_term;    /* term whose leadership started the reaping clocks */
    /* -raft-remove-shutdown */
    bool was_member;        /* a configuration listed us: a removal can be told */
    int64_t leaderless_ms;  /* since when no leader is known (0: one is) */
    int64_t removal_asked_ms; /* when the members were last asked */
    job removal;            /* the members being asked (membership.c) */
    bool removal_told;      /* atomically: a leader's configuration lacks us */
    /* publish.c */
    raft_index published_conf_index;
    int prev_state;
    raft_id prev_leader;
    bool leader_barrier_pending;
    bool leader_ready;      /* barrier of our term applied */
    raft_index ready_target;
    /* client.c: -auto-optimize-int */
    int64_t optimize_due_ms;  /* leader: when the next pass is due (0: not leading) */
    job optimize;             /* a pass under way */
    /* vacuum.c: -auto-vacuum-int, in Unix ms (s->mu for /status) */
    int64_t vac_base_ms, vac_last_ms;
    uint64_t vac_duration_ms; /* the latest VACUUM took */
    /* readindex.c */
    peerCount *peers;       /* read-index counters, reset on each leadership */
    unsigned n_peers;
    raft_term peers_term;   /* the term the counters belong to */
    op *reads;              /* linearizable reads waiting for confirmation */
    int64_t lease_tick_ms;  /* -raft-leader-lease-timeout: the previous check */
    int64_t lease_from_ms;  /* ... when the lease clock (re)started */
    raft_term lease_term;   /* ... the term it started in (0: not leading) */
    /* raftio.c */
    int (*io_send)(struct raft_io *, struct raft_io_send *, const struct raft_message *,
                   raft_io_send_cb);
    int (*io_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    int (*io_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry *, unsigned,
                     raft_io_append_cb);
    raft_io_recv_cb raft_recv;
    raft_io_tick_cb raft_tick;  /* libraft's, for storeHeartbeatNow() */
    raft_index leader_commit_seen; /* highest leader_commit in this term's AppendEntries */
    raft_term leader_commit_term;
    bool answering_ae;      /* follower: inside libraft's AppendEntries handling */
    raft_index ae_limit;    /* ... whose entries end at this index */

    /* fetch.c: snapshot image transfer (follower). The InstallSnapshot
     * message waits in fetch_msg while a thread downloads the sender's
     * file. */
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

/* ---------------------------------------------------------------- ops.c
 * Ops carry a request from a caller thread to the Raft thread and its
 * outcome back. An op starts with two references, the caller's and the
 * Raft thread's; whoever drops the last frees it (under s->mu). */

/* A new op of type (OP_*), referenced twice. */
op *storeOpNew(store *s, int type);
/* Raft thread: finish o with rc (STORE_*) and err (taken; kept only if o
 * has no message yet), wake its waiter, drop the Raft thread's reference. */
void storeOpComplete(op *o, int rc, char *err);
/* Caller thread: queue o for the Raft thread and wait up to timeout_ms.
 * Returns o's rc, or STORE_ERROR when it timed out (o->done false) or the
 * store is closing. The caller still holds its reference (storeOpRelease). */
int storeOpRun(store *s, op *o, uint64_t timeout_ms);
/* Drop the caller's reference. */
void storeOpRelease(store *s, op *o);
/* The error message of a finished op, taken out of it (malloc'd), or
 * timeout_msg when it did not finish. */
char *storeOpTakeErr(op *o, const char *timeout_msg);
/* Caller thread: a new OP_APPLY op with the next sequence number of this
 * process (o->seq), for an entry that is yet to be encoded with it. */
op *storeOpNewApply(store *s);
/* Caller thread: an op never run, because its entry could not be
 * allocated: dropped; STORE_ERROR with *err "out of memory". */
int storeOpNoMemory(store *s, op *o, char **err);
/* Raft thread: complete every op of *list (emptied) with STORE_ERROR and
 * why; the ops still queued by callers likewise. */
void storeOpFailAll(op **list, const char *why);
/* Raft thread, FSM: o's entry is applied (its results in o->out at
 * t_applied): off the pending list, completed. */
void storeOpApplied(store *s, op *o, double t_applied);
/* Raft thread, FSM, after each entry: a pending op at or below applied
 * lost its entry to another leader's; it fails. */
void storeOpSettle(store *s, raft_index applied);
void storeOpFailQueued(store *s, const char *why);
/* Raft thread (s->wake): a finished snapshot transfer, then queued ops. */
void storeOnWake(uv_async_t *h);

/* ---------------------------------------------------------------- fsm.c */

/* Fill s->fsm (before raft_init). */
void storeFsmInit(store *s);

/* -raft-snap (entries between snapshots) and the entries kept after one
 * (before fsmSnapshot trims them by size). */
unsigned storeSnapThreshold(const config *cfg);
unsigned storeSnapTrailing(const config *cfg);
/* Before raft_start: libraft's snapshot threshold out of reach (fsm.c
 * decides when to snapshot) and its trailing entries. */
void storeSnapInit(store *s);
/* Raft thread, on each tick: every -raft-snap-int (one to two intervals,
 * staggered), want a snapshot if -raft-snap entries were applied since the
 * last one, or the WAL has reached -raft-snap-wal-size bytes; a leader
 * takes it at once, a follower after the next entry it applies. */
void storeSnapCheck(store *s);
/* Raft thread: a user snapshot (OP_SNAPSHOT) begins; storeSnapProgress,
 * after every loop iteration, completes it once taken or timed out. */
void storeSnapStart(store *s, op *o);
void storeSnapProgress(store *s);

/* ------------------------------------------------------------- client.c */

/* Raft thread, on each tick: every -auto-optimize-int of leadership, start
 * a pass that proposes the statements db_optimize_plan() finds (on a thread
 * of its own: it waits for its entry like any write). */
void storeOptimizeCheck(store *s);
/* store_close, after the Raft thread stopped: wait for a pass under way. */
void storeOptimizeClose(store *s);

/* ------------------------------------------------------------- vacuum.c */

/* store_open: load the auto-vacuum schedule (or start one, or drop it). */
void storeVacuumInit(store *s);
/* Raft thread, in a snapshot before the file is synced: VACUUM if an
 * interval has passed since the last one (or since it was enabled). */
void storeVacuumMaybe(store *s);
/* /status: the "auto_vacuum" map when enabled (s->mu held). */
void storeVacuumStatus(store *s, json_t *st);

/* ---------------------------------------------------------- readindex.c */

/* Raft thread: the read-index counters of voter id (created at zero;
 * reset when the term changes). */
peerCount *storePeer(store *s, raft_id id);
/* Raft thread, leader: register a linearizable read; storeReadsProgress,
 * after every loop iteration, completes the reads confirmed and applied,
 * failed (leadership lost) or timed out. */
void storeReadStart(store *s, op *o);
void storeReadsProgress(store *s);
/* Raft thread, leader: send a round of AppendEntries now. */
void storeHeartbeatNow(store *s);
/* Raft thread, leader: the latest time by which a majority of voters
 * (counting us, now) had been heard from; 0 when unknown. A leader cut off
 * from the others keeps believing it leads for up to an election timeout:
 * this dates its data for freshness. */
int64_t storeQuorumContactMs(store *s);
/* Raft thread, on each tick, with -raft-leader-lease-timeout: a leader
 * that has not heard from a quorum of voters for that long steps down, as
 * hashicorp raft's does, instead of after libraft's one to two election
 * timeouts. */
void storeLeaseCheck(store *s);

/* ------------------------------------------------------------- raftio.c */

/* Put the store's send, receive and start in s->io, keeping libraft's
 * (s->io_send, s->io_start; the receive callback when started). */
void storeRaftioWrap(store *s);

/* -------------------------------------------------------------- fetch.c */

/* The transport's transport_image_fn: a consistent copy of the database. */
int storeImageCopy(void *arg, transport_progress_fn progress, void *parg, uint64_t *size, char **err);
/* Raft thread: InstallSnapshot message m (taken) stands for database index
 * need, which our file does not hold: download the sender's file, then
 * hand m to libraft (storeFetchDone, on wake). */
void storeFetchStart(store *s, struct raft_message *m, raft_index need);
void storeFetchDone(store *s);
/* store_close, after the Raft thread stopped: wait for a transfer still
 * running (it gives up when it sees s->closing), drop what it left. */
void storeFetchClose(store *s);

/* --------------------------------------------------------- membership.c */

/* The Raft ID of a node ID (a hash: the same on every node). */
raft_id storeRaftId(const char *node_id);
/* Raft thread: the node metadata table (IDs, addresses), as applied from
 * the log and restored from snapshots. */
meta *storeMetaFind(store *s, raft_id rid);
void storeMetaUpsert(store *s, const char *id, raft_id rid, const char *addr, const char *api);
json_t *storeMetasToJson(store *s);
void storeMetasFromJson(store *s, json_t *a);
/* Raft thread: the node ID and API address of the leader whose Raft ID
 * is lid, from the node metadata (known before the configuration is: a
 * wiped node fetching the leader's database has the metadata of the
 * snapshot it holds, storeFetchDone()); "" when not known yet. */
void storeLeaderIdentity(store *s, raft_id lid, char *id, size_t id_size, char *api, size_t api_size);
/* Raft thread, leader, once its term's barrier is applied: put in the log
 * the metadata of a -bootstrap-expect cluster, and ours if the log lacks
 * or differs from it. */
void storeMetaOnLeader(store *s);
/* Raft thread, on each tick: the leader removes unreachable nodes. */
void storeReapCheck(store *s);
/* Raft thread, on each tick, with -raft-remove-shutdown: tell whether this
 * node was removed from the cluster (its committed configuration lacks it,
 * or, without a leader for a while, the other members' leader's does) and
 * shut libraft down then (storeShutdownRaft). */
void storeRemovalCheck(store *s);
/* store_close, after the Raft thread stopped: wait for a removal check. */
void storeRemovalClose(store *s);

/* ------------------------------------------------------------- store.c */

/* Raft thread: stop libraft for good (this node was removed, why says how
 * we know), keeping the loop, the HTTP API and the database: /status says
 * "Shutdown", no leader, ops fail. */
void storeShutdownRaft(store *s, const char *why);

/* ------------------------------------------------------------ publish.c */

/* Count one of the SSTAT_* events; any thread. */
static inline void storeStat(store *s, int which)
{
    __atomic_fetch_add(&s->stats[which], 1, __ATOMIC_RELAXED);
}

static inline void storeStatSet(store *s, int which, uint64_t v)
{
    __atomic_store_n(&s->stats[which], v, __ATOMIC_RELAXED);
}

/* Raft thread (s->publish, after every loop iteration): copy the state
 * other threads read under s->mu, and react to role changes. */
void storeOnCheck(uv_check_t *h);
/* Publish the members of libraft's configuration (the Raft thread, or
 * store_open before it starts). */
void storePublishMembers(store *s);

/* ------------------------------------------------------------ recover.c */

/* The newest snapshot libraft keeps in dir: its Raft index (0: none), the
 * database index it stands for (*need) and whether it is of the old
 * inline format (*v1). */
raft_index storeLatestSnapshot(const char *dir, raft_index *need, bool *v1);
/* The data directory's recorded node ID and Raft address match ours
 * (recorded now when is_new). 0, or -1 with *err. */
int storeCheckIdentity(store *s, bool is_new, char **err);
/* peers.json recovery, when the file exists. 0, or -1 with *err. */
int storeRecoverFromPeers(store *s, char **err);
/* Before raft_start, after a Raft address change: a node that is the only
 * voter of its configuration (nobody else to tell) records its new
 * address itself. 0, or -1 with *err. */
int storeFollowOwnAddress(store *s, char **err);

#endif
