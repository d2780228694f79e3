/*
 * store: SQLite replicated by canonical/raft (0.15, with its libuv I/O
 * backend), run on a thread of its own. This file opens and closes it;
 * the rest of store/ is divided by concern, as canonical/raft divides its
 * own code:
 *
 *   client.c      writes proposed as log entries, reads at each level
 *   ops.c         how a caller thread gets work done by the Raft thread
 *   fsm.c         apply, snapshot, restore; the /snapshot request
 *   readindex.c   linearizable reads without a log write
 *   raftio.c      the wrapped raft_io: read-index counts, held snapshot
 *                 installs, the libraft 0.15 workarounds
 *   fetch.c       a follower's copy of the leader's database
 *   membership.c  node metadata, join, remove, stepdown, reaping
 *   publish.c     the state other threads read, and /status
 *   recover.c     data-directory checks at open, peers.json recovery
 *   codec.c       the bytes of log entries and snapshots
 *   transport.c   the Raft port (libraft's TCP, metadata probes, images)
 *
 * Threads. The Raft instance, its libuv loop, the FSM and the database's
 * write connection belong to one thread, the "Raft thread" (raftThread).
 * Callers (HTTP workers) reach it through ops (ops.c) and read the copy of
 * its state it publishes after every loop iteration (publish.c); both
 * under s->mu. The snapshot transfer (fetch.c) and the transport's image
 * senders have threads of their own.
 *
 * Opening, in order: the data directory (new or not, ours or not), the
 * database (it must hold what the latest snapshot stands for), whether to
 * bootstrap, the loop and libraft, the first configuration or peers.json
 * recovery, and the Raft thread. Errors leave the process to exit: the
 * half-open store is not freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cdc/cdc.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/os.h"

/* The loop's timer: the snapshot check, reaping and the like run on it,
 * and it keeps storeOnCheck running while the cluster is idle. */
static void onTick(uv_timer_t *t)
{
    store *s = t->data;
    if (s && s->raft_started && s->raft_shut == RAFT_RUNNING) {
        storeLeaseCheck(s);
        storeSnapCheck(s);
        storeReapCheck(s);
        storeOptimizeCheck(s);
        storeRemovalCheck(s);
    }
}

/* uv_walk callback: the loop ends once every handle is closed. */
static void closeHandle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* libraft has stopped: fail whatever still waits, then let the loop end. */
static void raftClosed(struct raft *r)
{
    store *s = r->data;
    if (s->snap_wait) {
        storeOpComplete(s->snap_wait, STORE_ERROR, strdup("store closed"));
        s->snap_wait = NULL;
    }
    storeOpFailAll(&s->reads, "store closed");
    storeOpFailAll(&s->pending, "store closed");
    uv_walk(&s->loop, closeHandle, NULL);
}

/* The message of an op that came after libraft was shut down. */
#define SHUT_MSG "raft is shut down: this node was removed from the cluster"

/* libraft has stopped after storeShutdownRaft: fail what waited on it; the
 * loop goes on (HTTP callers still reach the store) until store_close. */
static void raftShut(struct raft *r)
{
    store *s = r->data;
    if (s->snap_wait) {
        storeOpComplete(s->snap_wait, STORE_ERROR, strdup(SHUT_MSG));
        s->snap_wait = NULL;
    }
    storeOpFailAll(&s->reads, SHUT_MSG);
    storeOpFailAll(&s->pending, SHUT_MSG);
    s->raft_shut = RAFT_SHUT_DONE;
    if (s->close_after_shut)
        uv_walk(&s->loop, closeHandle, NULL);
}

void storeShutdownRaft(store *s, const char *why)
{
    if (s->raft_shut != RAFT_RUNNING)
        return;
    rq_log("store", "%s: shutting down Raft (-raft-remove-shutdown)", why);
    s->raft_shut = RAFT_SHUT_CLOSING;
    pthread_mutex_lock(&s->mu);
    s->state = RAFT_UNAVAILABLE;
    s->leader_id = 0;
    s->leader_addr[0] = s->leader_node[0] = s->leader_api[0] = '\0';
    s->ready = false;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
    storeOpFailQueued(s, SHUT_MSG);
    raft_close(&s->raft, raftShut);
}

/* Raft thread: orderly close, requested through its own async handle so
 * that it works whatever is queued. */
static void onCloseRequest(uv_async_t *h)
{
    store *s = h->data;
    storeOpFailQueued(s, "store closed");
    if (s->raft_shut == RAFT_RUNNING)
        raft_close(&s->raft, raftClosed);
    else if (s->raft_shut == RAFT_SHUT_DONE)
        uv_walk(&s->loop, closeHandle, NULL);
    else
        s->close_after_shut = true; /* raftShut ends the loop */
}

static void *raftThread(void *arg)
{
    store *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* libraft's metadata files tell a node with Raft state from a new one. */
static bool fileExists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The store before anything is opened: identity, locks, sequence base. */
static store *newStore(const config *cfg)
{
    store *s = calloc(1, sizeof *s);
    s->cfg = cfg;
    s->id = storeRaftId(cfg->node_id);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->prev_state = -1;
    /* Sequence numbers of this process's proposals: from a random base, so
     * that a restart within the same second does not reuse them. */
    uint32_t base = 0;
    if (getrandom(&base, sizeof base, 0) != (ssize_t)sizeof base)
        base = (uint32_t)time(NULL);
    s->next_seq = (uint64_t)base << 24;
    return s;
}

/* The data directory: created if needed, told new (no Raft state: a new or
 * wiped node) or not, checked to be this node's; files that no log stands
 * for are removed. */
static int openDataDir(store *s, bool *is_new, char **err)
{
    const config *cfg = s->cfg;
    if (asprintf(&s->raft_dir, "%s/raft", cfg->data_dir) < 0 ||
        asprintf(&s->db_path, "%s/db.sqlite", cfg->data_dir) < 0) {
        *err = strdup("out of memory");
        return -1;
    }
    if (rq_mkdir_all(s->raft_dir) != 0) {
        *err = rq_sprintf("cannot create %s: %s", s->raft_dir, strerror(errno));
        return -1;
    }
    *is_new = !fileExists(s->raft_dir, "metadata1") && !fileExists(s->raft_dir, "metadata2");
    s->was_new = *is_new;
    if (*is_new)
        rq_log("store", "no preexisting node state detected in %s, node may be bootstrapping",
               cfg->data_dir);
    else
        rq_log("store", "preexisting node state detected in %s", cfg->data_dir);

    if (storeCheckIdentity(s, *is_new, err) != 0)
        return -1;
    char p[4200];
    snprintf(p, sizeof p, "%s.install", s->db_path);
    unlink(p); /* a transfer cut short */
    s->fetch_path = strdup(p);
    if (*is_new) {
        /* No Raft state: whatever file is here belongs to no log. */
        const char *suffixes[] = {"", "-wal", "-shm", "-journal", "-rqentry"};
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s%s", s->db_path, suffixes[i]);
            unlink(p);
        }
    }
    return 0;
}

/* The database, which must hold what the latest snapshot stands for: the
 * log before it is gone, so an older file could never catch up. */
static int openDatabase(store *s, bool is_new, char **err)
{
    const config *cfg = s->cfg;
    /* A value or SQL text no longer than a request's entry may be; a
     * statement's result bounded too (hostile input: src/db/policy.c). */
    db_options dopts = {.fk = cfg->fk,
                        .max_ro_conns = cfg->db_max_ro_conns,
                        .max_length = (int64_t)cfg->raft_max_entry_size,
                        .max_result = (size_t)cfg->db_max_result_size,
                        .extensions = (const char *const *)cfg->extensions,
                        .n_extensions = cfg->n_extensions};
    if (db_open(s->db_path, &dopts, &s->db, err) != 0)
        return -1;
    if (cfg->cdc && db_cdc_enable(s->db, cdc_sink(cfg->cdc), err) != 0)
        return -1;
    if (db_recovered(s->db))
        rq_log("store", "an entry cut short by a crash was rolled back; the log applies it again");
    raft_index need = 0;
    bool snap_v1 = false;
    s->start_snap_index = storeLatestSnapshot(s->raft_dir, &need, &snap_v1);
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
    return 0;
}

/* The one-line JSON the Raft port answers metadata probes with, so that
 * "-join host:raftport" finds our API. */
static void probeMeta(const config *cfg, char *out, size_t size)
{
    json_t *m = json_pack("{s:s,s:s,s:s}", "id", cfg->node_id, "addr", cfg->raft_adv_addr, "api_addr",
                          cfg->http_api_url);
    char *t = json_dumps(m, JSON_COMPACT);
    snprintf(out, size, "%s", t);
    free(t);
    json_decref(m);
}

int store_early_port_open(const config *cfg, store_early_port **out, char **err)
{
    char meta_json[1024];
    probeMeta(cfg, meta_json, sizeof meta_json);
    return transport_responder_start(cfg->raft_addr, meta_json, cfg->node_tls, out, err);
}

void store_early_port_close(store_early_port *p)
{
    transport_responder_stop(p);
}

/* Whether this node bootstraps a cluster: 1, 0, or -1 with *err. Only a
 * new node does, and only if it is not to join one. */
static int wantBootstrap(store *s, bool is_new, int n_boot, const char *meta_json, char **err)
{
    const config *cfg = s->cfg;
    if (is_new && n_boot > 0)
        return 1; /* -bootstrap-expect: the nodes main.c gathered */
    if (!is_new || cfg->n_join != 0 || cfg->bootstrap_expect != 0)
        return 0;
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
    int contacted = transport_probe(cfg->raft_addr, meta_json, cfg->node_tls, window, &s->contacted_by, err);
    if (contacted < 0)
        return -1;
    if (contacted) {
        rq_log("store", "an existing cluster lists this node: not bootstrapping, "
                        "waiting for its leader to replicate the state");
        return 0;
    }
    return 1;
}

/* The handles of the Raft thread's loop besides libraft's. */
static void initLoop(store *s)
{
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, storeOnWake);
    s->wake.data = s;
    uv_check_init(&s->loop, &s->publish);
    s->publish.data = s;
    uv_check_start(&s->publish, storeOnCheck);
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, onTick, 50, 50);
    uv_async_init(&s->loop, &s->close_async, onCloseRequest);
    s->close_async.data = s;
}

/* libraft's election and heartbeat timeouts from the configuration. */
static void setTimeouts(store *s)
{
    const config *cfg = s->cfg;
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
    /* -raft-commit-timeout: the longest an idle leader waits before it
     * sends AppendEntries, which tell followers the commit index (hashicorp
     * raft's CommitTimeout). libraft's heartbeat is that message: a
     * shorter commit timeout shortens it. */
    if (cfg->raft_commit_timeout_ms > 0 && cfg->raft_commit_timeout_ms < hb)
        hb = (unsigned)cfg->raft_commit_timeout_ms;
    if (hb > et / 2)
        hb = et / 2;
    raft_set_election_timeout(&s->raft, et);
    raft_set_heartbeat_timeout(&s->raft, hb);
    s->hb_ms = hb;
}

/* libraft's debug traces, as [raft] log lines (-raft-log-level DEBUG). */
static void traceEmit(struct raft_tracer *t, const char *file, int line, const char *message)
{
    (void)t;
    rq_log("raft", "%s:%d %s", file, line, message);
}

/* -raft-log-level: libraft has no levels of its own, only debug traces,
 * which DEBUG and TRACE turn on; INFO adds our [raft] lines (role
 * changes), WARN (the default) and above leave both out. */
static void setTracing(store *s)
{
    s->tracer.impl = s;
    s->tracer.enabled = s->cfg->raft_log <= CONFIG_LOG_DEBUG;
    s->tracer.emit = traceEmit;
    s->raft.tracer = &s->tracer;
    raft_uv_set_tracer(&s->io, &s->tracer);
}

/* A CDC high-water mark from the leader (transport.h). */
static void storeCdcHwm(void *arg, uint64_t hwm)
{
    cdc_hwm_received(arg, hwm);
}

/* libraft on our transport, FSM and wrapped I/O, with its settings. */
static int initRaft(store *s, const char *meta_json, char **err)
{
    const config *cfg = s->cfg;
    int rv = transport_init(&s->transport, &s->loop, cfg->raft_addr, meta_json, storeImageCopy, s, cfg->node_tls);
    if (rv != 0) {
        *err = rq_sprintf("transport: %s", raft_strerror(rv));
        return -1;
    }
    if (cfg->cdc)
        transport_set_hwm(&s->transport, storeCdcHwm, cfg->cdc);
    rv = raft_uv_init(&s->io, &s->loop, s->raft_dir, &s->transport);
    if (rv != 0) {
        *err = rq_sprintf("raft I/O: %s", s->io.errmsg);
        return -1;
    }
    raft_uv_set_connect_retry_delay(&s->io, 250);
    raft_uv_set_snapshot_compression(&s->io, false); /* a few hundred bytes of JSON */
    storeFsmInit(s);
    rv = raft_init(&s->raft, &s->io, &s->fsm, s->id, cfg->raft_adv_addr);
    if (rv != 0) {
        *err = rq_sprintf("raft: %s", raft_errmsg(&s->raft));
        return -1;
    }
    s->raft.data = s;
    setTracing(s);
    setTimeouts(s);
    raft_set_pre_vote(&s->raft, true);
    /* A follower downloads the database before answering an InstallSnapshot;
     * a leader that times out and sends it again meanwhile is ignored
     * (storeFetchStart), so libraft's default timeout is fine and retries a
     * failed transfer soon. */
    raft_set_install_snapshot_timeout(&s->raft, 30000);
    storeRaftioWrap(s);
    storeSnapInit(s);
    storeVacuumInit(s);
    return 0;
}

/* The first configuration: this node alone, or the n_boot voters of
 * -bootstrap-expect. */
static int bootstrap(store *s, const store_node *boot, int n_boot, char **err)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    if (n_boot == 0)
        raft_configuration_add(&conf, s->id, s->cfg->raft_adv_addr, RAFT_VOTER);
    for (int i = 0; i < n_boot; i++) {
        /* Every node bootstraps this same configuration, and knows
         * the same API addresses from the start. */
        raft_id rid = storeRaftId(boot[i].id);
        raft_configuration_add(&conf, rid, boot[i].addr, RAFT_VOTER);
        storeMetaUpsert(s, boot[i].id, rid, boot[i].addr, boot[i].api_addr);
        s->boot_metas_pending = true;
    }
    int rv = raft_bootstrap(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        *err = rq_sprintf("bootstrap: %s", raft_errmsg(&s->raft));
        return -1;
    }
    rq_log("store", "executing new cluster bootstrap with %d voter(s)", n_boot ? n_boot : 1);
    return 0;
}

/* libraft loads its state and starts; then the Raft thread runs the loop. */
static int startRaft(store *s, char **err)
{
    int rv = raft_start(&s->raft);
    if (rv != 0) {
        *err = rq_sprintf("raft start: %s", raft_errmsg(&s->raft));
        return -1;
    }
    s->raft_started = true;
    rq_log("store", "raft started: last log index %llu, snapshot index %llu",
           (unsigned long long)raft_last_index(&s->raft),
           (unsigned long long)s->raft.log.snapshot.last_index);
    /* The members libraft loaded, for callers as soon as this returns
     * (main.c looks before it joins); no other thread runs yet. */
    storePublishMembers(s);
    if (pthread_create(&s->thread, NULL, raftThread, s) != 0) {
        *err = strdup("cannot start raft thread");
        return -1;
    }
    return 0;
}

int store_open(const config *cfg, store **out, char **err)
{
    return store_open_with(cfg, NULL, 0, out, err);
}

int store_open_with(const config *cfg, const store_node *boot, int n_boot, store **out, char **err)
{
    store *s = newStore(cfg);
    bool is_new = false;
    if (openDataDir(s, &is_new, err) != 0 || openDatabase(s, is_new, err) != 0)
        return -1;
    char meta_json[1024];
    probeMeta(cfg, meta_json, sizeof meta_json);
    int boot_now = wantBootstrap(s, is_new, n_boot, meta_json, err);
    if (boot_now < 0)
        return -1;
    initLoop(s);
    if (initRaft(s, meta_json, err) != 0)
        return -1;
    if (boot_now && bootstrap(s, boot, n_boot, err) != 0)
        return -1;
    if (!is_new && storeRecoverFromPeers(s, err) != 0)
        return -1;
    if (!is_new && storeFollowOwnAddress(s, err) != 0)
        return -1;
    if (startRaft(s, err) != 0)
        return -1;
    *out = s;
    return 0;
}

/* -raft-shutdown-stepdown: a leader hands leadership over before it goes,
 * so that the cluster does not wait an election timeout for a new one. */
static void stepDownBeforeClose(store *s)
{
    int voters = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_nodes; i++)
        voters += s->nodes[i].voter;
    pthread_mutex_unlock(&s->mu);
    if (voters > 1) {
        rq_log("store", "stepping down as leader before shutdown");
        op *o = storeOpNew(s, OP_TRANSFER);
        storeOpRun(s, o, 3000);
        storeOpRelease(s, o);
    }
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->cfg->raft_shutdown_stepdown && store_is_leader(s))
        stepDownBeforeClose(s);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->close_async);
    pthread_join(s->thread, NULL);
    storeFetchClose(s);
    storeOptimizeClose(s);
    storeRemovalClose(s);
    raft_uv_close(&s->io);
    transport_free(&s->transport);
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

bool store_was_new(store *s) { return s->was_new; }
const char *store_contacted_by(store *s) { return s->contacted_by; }
const char *store_node_id(store *s) { return s->cfg->node_id; }
