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

#include "store/store.h"
#include "util/buf.h"

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

#endif
