/*
 * rqlited: one rqlite node. Parses flags, loads the credentials (-auth),
 * starts the HTTP API (it answers /status before the store is open), opens
 * the store (which bootstraps or rejoins per its data directory), joins a
 * cluster if asked, then waits for SIGINT/SIGTERM, reloading the
 * credentials on SIGHUP. A second signal during shutdown forces exit.
 */
#include <errno.h>
#include <malloc.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "auth/auth.h"
#include "backup/backup.h"
#include "cdc/cdc.h"
#include "cluster/cluster.h"
#include "config.h"
#include "db/db.h"
#include "disco/disco.h"
#include "ext/ext.h"
#include "http/http.h"
#include "store/store.h"
#include "tls/tls.h"
#include "util/addr.h"
#include "util/job.h"
#include "util/log.h"
#include "util/os.h"


/* A start-up failure ends the process at once: the HTTP server's threads
 * are running, and exit()'s handlers would tear down state under them.
 * (Nor is a half-opened store worth unwinding just before the process goes.) */
static void fatal(const char *what, char *err)
{
    fprintf(stderr, "fatal: %s%s%s\n", what, err ? ": " : "", err ? err : "");
    fflush(NULL);
    _exit(1);
}

/* A crash leaves a backtrace in the log instead of vanishing silently. */
static void crashHandler(int sig)
{
    void *frames[64];
    int n = backtrace(frames, 64);
    static const char msg[] = "[rqlited] fatal signal, backtrace:\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(128 + sig);
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* After the first signal the main thread shuts down; this thread turns a
 * second one into an immediate exit. */
static void *forceExitThread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    rq_log("rqlited", "received second signal, forcing exit");
    _exit(1);
    return NULL;
}

/* -bootstrap-expect applies to new nodes only: has this one Raft state already? */
static bool hasRaftState(const config *cfg)
{
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/raft/metadata1", cfg->data_dir);
    if (stat(p, &sb) == 0)
        return true;
    snprintf(p, sizeof p, "%s/raft/metadata2", cfg->data_dir);
    return stat(p, &sb) == 0;
}

/* -disco-mode: the join targets are what the lookup gives now (kept as
 * they were when it gives nothing, or fails: a name not published yet). */
static void refreshTargets(config *cfg, disco *d, bool log)
{
    char *targets[DISCO_MAX_TARGETS], *err = NULL;
    int n = disco_lookup(d, targets, &err);
    if (n == 0) {
        if (log)
            rq_log("rqlited", "discovery found no nodes yet%s%s", err ? ": " : "", err ? err : "");
        free(err);
        return;
    }
    for (int i = 0; i < cfg->n_join; i++)
        free(cfg->join[i]);
    for (int i = 0; i < n; i++)
        cfg->join[i] = targets[i];
    cfg->n_join = n;
    free(err);
}

/* -disco-mode for a node without state: wait (up to
 * -bootstrap-expect-timeout) until the lookup names someone to contact. */
static void discoverTargets(config *cfg, disco *d)
{
    int64_t deadline = rq_now_ms() + (int64_t)cfg->bootstrap_expect_timeout_ms;
    struct timespec pause = {1, 0};
    for (int round = 0; cfg->n_join == 0; round++) {
        refreshTargets(cfg, d, round % 10 == 0);
        if (cfg->n_join == 0 && rq_now_ms() >= deadline)
            fatal("clustering failure", strdup("discovery found no nodes before -bootstrap-expect-timeout"));
        if (cfg->n_join == 0)
            nanosleep(&pause, NULL);
    }
    rq_log("rqlited", "discovery found %d node(s), the first at %s", cfg->n_join, cfg->join[0]);
}

/* bootstrapExpect's rounds of notifying, while the Raft port answers. */
static int bootstrapExpectRounds(config *cfg, disco *d, http_server *http, store_node **out)
{
    int64_t deadline = rq_now_ms() + (int64_t)cfg->bootstrap_expect_timeout_ms;
    for (int round = 0;; round++) {
        if (d && round > 0)
            refreshTargets(cfg, d, false);
        for (int i = 0; i < cfg->n_join; i++) {
            char *err = NULL;
            if (cluster_notify(cfg, cfg->join[i], &err) != 0 && round % 10 == 0)
                rq_logl(RQ_LOG_WARN, "rqlited", "bootstrap-expect: cannot notify %s: %s", cfg->join[i],
                        err ? err : "?");
            free(err);
        }
        for (int i = 0; i < cfg->n_join; i++) {
            if (cluster_target_has_leader(cfg, cfg->join[i])) {
                rq_log("rqlited", "bootstrap-expect: %s already has a leader, joining it", cfg->join[i]);
                return 0;
            }
        }
        store_node *known = NULL;
        int n = http_server_notified(http, &known);
        bool self = false;
        for (int i = 0; i < n; i++)
            self = self || strcmp(known[i].id, cfg->node_id) == 0;
        if (!self) { /* our own join list need not name us */
            known = realloc(known, (size_t)(n + 1) * sizeof *known);
            memset(&known[n], 0, sizeof known[n]);
            snprintf(known[n].id, sizeof known[n].id, "%s", cfg->node_id);
            snprintf(known[n].addr, sizeof known[n].addr, "%s", cfg->raft_adv_addr);
            snprintf(known[n].api_addr, sizeof known[n].api_addr, "%s", cfg->http_api_url);
            known[n].voter = true;
            n++;
        }
        if (n >= cfg->bootstrap_expect) {
            /* Those that told us they exist may not have heard from us
             * (they were not listening yet when we first tried): once more,
             * so that they all bootstrap the same nodes. */
            for (int i = 0; i < cfg->n_join; i++) {
                char *err = NULL;
                cluster_notify(cfg, cfg->join[i], &err);
                free(err);
            }
            rq_log("rqlited", "bootstrap-expect: %d nodes known, bootstrapping", n);
            *out = known;
            return n;
        }
        free(known);
        if (rq_now_ms() >= deadline)
            fatal("bootstrap-expect", rq_sprintf("only %d of %d nodes announced themselves within %llu ms",
                                                 n, cfg->bootstrap_expect,
                                                 (unsigned long long)cfg->bootstrap_expect_timeout_ms));
        /* Not a synchronisation sleep: the pace of announcements. */
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* -bootstrap-expect N with -join targets, for a node without state: tell
 * every target we exist (POST /notify) until N distinct nodes have told us
 * the same, then all of them bootstrap one cluster of those nodes. If a
 * target already belongs to a cluster with a leader, join it instead
 * (returns 0). Fatal after -bootstrap-expect-timeout. */
static int bootstrapExpect(config *cfg, disco *d, http_server *http, store_node **out)
{
    rq_log("rqlited", "bootstrap-expect: waiting for %d nodes to announce themselves (join targets: %d)",
           cfg->bootstrap_expect, cfg->n_join);
    store_early_port *port = NULL;
    char *perr = NULL;
    if (store_early_port_open(cfg, &port, &perr) != 0)
        fatal("cannot listen on the Raft address", perr);
    int n = bootstrapExpectRounds(cfg, d, http, out);
    store_early_port_close(port);
    return n;
}


/* -extensions-path: copy or extract the extensions into <data>/extensions
 * and load each once, before anything binds a port: one that is missing,
 * unreadable, corrupt or does not load stops the start. The list goes in
 * cfg for the store (every connection loads it) and /status. */
static void installExtensions(config *cfg)
{
    ext_list l;
    char *err = NULL;
    if (ext_install(cfg->data_dir, cfg->extensions_path, &l, &err) != 0)
        fatal("failed to install extensions", err);
    if (db_extensions_check((const char *const *)l.paths, l.n, &err) != 0)
        fatal("failed to load extensions", err);
    cfg->extensions_dir = l.dir;
    cfg->extensions = l.paths;
    cfg->n_extensions = l.n;
    if (l.n == 0)
        return;
    char names[4096] = "";
    size_t n = 0;
    for (int i = 0; i < l.n && n < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", ext_name(l.paths[i]));
    rq_log("db", "loaded extensions: %s", names);
}

/* -raft-cluster-remove-shutdown: leave the cluster before stopping. A
 * leader hands over first; the (new) leader then removes us. */
static void leaveCluster(const config *cfg, store *st)
{
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes);
    free(nodes);
    if (n <= 1) {
        rq_log("rqlited", "sole member of the cluster: not removing this node");
        return;
    }
    char *err = NULL;
    if (store_is_leader(st)) {
        rq_log("rqlited", "leader leaving the cluster: transferring leadership first");
        if (store_stepdown(st, NULL, &err) != STORE_OK) {
            rq_logl(RQ_LOG_WARN, "rqlited", "cannot transfer leadership: %s", err ? err : "?");
            free(err);
            return;
        }
    }
    int64_t deadline = rq_now_ms() + 10000;
    for (;;) {
        store_node leader;
        if (store_leader(st, &leader) && strcmp(leader.id, cfg->node_id) != 0 && leader.api_addr[0]) {
            char *url = rq_sprintf("%s/remove", leader.api_addr);
            char *body = rq_sprintf("{\"id\":\"%s\"}", cfg->node_id);
            cluster_response resp;
            char *auth = cluster_own_authorization(cfg);
            int rc = cluster_forward("DELETE", url, body, strlen(body), "application/json", auth, 10000,
                                     &resp, &err);
            auth_free_secret(auth);
            /* 503: the node we take for the leader has not taken office yet
             * (a handover is under way), so ask again until the deadline. */
            if (rc == 0 && resp.status == 503 && rq_now_ms() < deadline) {
                cluster_response_free(&resp);
                rc = -1;
            }
            if (rc == 0) {
                if (resp.status == 200)
                    rq_log("rqlited", "removed this node (%s) from the cluster", cfg->node_id);
                else
                    rq_logl(RQ_LOG_WARN, "rqlited", "removing this node failed: HTTP %ld %.*s", resp.status,
                            (int)resp.body.len, resp.body.data ? resp.body.data : "");
                cluster_response_free(&resp);
                free(url);
                free(body);
                return;
            }
            free(url);
            free(body);
            free(err);
            err = NULL;
        }
        if (rq_now_ms() >= deadline) {
            rq_logl(RQ_LOG_WARN, "rqlited", "cannot remove this node from the cluster: no reachable leader");
            return;
        }
        store_wait_leader(st, 200);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Every HTTP connection holds a descriptor, and the default soft limit
 * (1024 on most systems) would exhaust the node near 1,000 connections,
 * below -http-max-conns' default: raise the soft limit to the hard one. */
static void raiseFileLimit(const config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    unsigned long long was = (unsigned long long)rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rq_logl(RQ_LOG_WARN, "rqlited", "cannot raise the open files limit from %llu: %s", was, strerror(errno));
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    rq_log("rqlited", "open files limit %llu (was %llu, hard limit %llu)", (unsigned long long)rl.rlim_cur,
           was, (unsigned long long)rl.rlim_max);
    /* Raft, SQLite and the node's own clients need some too. */
    if (cfg->http_max_conns > 0 && rl.rlim_cur < (rlim_t)cfg->http_max_conns + 256)
        rq_log("rqlited", "warning: %llu open files may not be enough for -http-max-conns %d",
               (unsigned long long)rl.rlim_cur, cfg->http_max_conns);
}

/* SQLite's own error log, for what is not the statement's fault: a write
 * that fails locally (busy, I/O, corruption) while the same entry succeeds
 * on other nodes would make this replica diverge, so it must be visible.
 * SQL errors (syntax, constraints) are answered to the client instead. */
static void sqliteLog(void *arg, int code, const char *msg)
{
    (void)arg;
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOTICE:
        rq_log("sqlite", "(%d) %s", code, msg);
        break;
    default:
        break;
    }
}

/* Signals: SIGINT/SIGTERM (stop) and SIGHUP (reload the credentials) are
 * taken synchronously by sigwait (every thread created from here on
 * inherits the block, set); a crash leaves a backtrace. */
static void setupSignals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* backtrace() loads libgcc on first use, which is not safe inside a
     * signal handler: do it now. */
    void *frame;
    backtrace(&frame, 1);
    signal(SIGSEGV, crashHandler);
    signal(SIGBUS, crashHandler);
    signal(SIGABRT, crashHandler);
    signal(SIGFPE, crashHandler);
}

/* -node-cert/-node-key: the node's TLS context, for everything on the
 * Raft port. Files that do not load (or a key that is not the
 * certificate's) stop the start, before anything is bound or created. */
static void startNodeTls(config *cfg)
{
    if (cfg->node_cert == NULL || !*cfg->node_cert)
        return;
    tls_settings ts = {.cert_file = cfg->node_cert,
                       .key_file = cfg->node_key,
                       .ca_file = cfg->node_ca_cert,
                       .verify_client = cfg->node_verify_client,
                       .verify_cn = cfg->node_verify_common_name,
                       .server_name = cfg->node_verify_server_name,
                       .no_verify = cfg->node_no_verify};
    char *err = NULL;
    if (tls_ctx_new(&ts, &cfg->node_tls, &err) != 0)
        fatal("node-to-node TLS", err);
}

/* The CDC service's sections of /debug/vars and /status. */
static json_t *cdcVars(void *arg) { return cdc_vars(arg); }
static json_t *cdcStatus(void *arg) { return cdc_status(arg); }

/* -cdc-config: read and checked before any port is bound (a bad file
 * stops the start), its queue opened before the store applies anything
 * and after installExtensions, whose check sets SQLite's process-wide
 * settings before the queue's connection would initialise SQLite. */
static void openCdc(config *cfg)
{
    if (cfg->cdc_config == NULL || *cfg->cdc_config == '\0')
        return;
    cdc_config cc;
    char *err = NULL;
    if (cdc_config_parse(cfg->cdc_config, &cc, &err) != 0)
        fatal("failed to create CDC config (-cdc-config)", err);
    if (cdc_open(&cc, cfg->node_id, cfg->data_dir, cfg->node_tls, &cfg->cdc, &err) != 0)
        fatal("failed to create CDC service", err);
}

static bool cdcIsLeader(void *arg) { return store_is_leader(arg); }

/* The voters the leader sends its CDC high-water mark to. */
static int cdcOtherVoters(void *arg, char ***addrs)
{
    store *st = arg;
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes), k = 0;
    *addrs = calloc(n > 0 ? (size_t)n : 1, sizeof **addrs);
    for (int i = 0; i < n; i++)
        if (nodes[i].voter && strcmp(nodes[i].id, store_node_id(st)) != 0)
            (*addrs)[k++] = strdup(nodes[i].addr);
    free(nodes);
    return k;
}

/* rqlite's first lines: version and the exact command line. */
static void logLaunch(int argc, char **argv)
{
    rq_log("rqlited", "rqlited starting, version %s, SQLite %s", RQ_VERSION, sqlite3_libversion());
    char cmd[2048] = "";
    size_t n = 0;
    for (int i = 0; i < argc && n < sizeof cmd - 2; i++)
        n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%s", i ? " " : "", argv[i]);
    rq_log("rqlited", "launch command: %s", cmd);
}

/* A node with state started with -join asks to join again, as rqlite's
 * does: the leader ignores the request (num_ignored_joins) when the node
 * is a member under the same ID and address, and re-adds it otherwise. A
 * node that is the sole member of a cluster of its own may not join
 * another (rqlite's refusal). If no target answers, the node goes on with
 * the cluster it belongs to (rqlite exits instead: a full cluster
 * restarted with its -join flags would then depend on the order of the
 * starts). */
static void rejoin(const config *cfg, store *st)
{
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes);
    bool alone = n == 1 && strcmp(nodes[0].id, cfg->node_id) == 0;
    free(nodes);
    if (alone)
        fatal("clustering failure",
              strdup("node is the only node in a single-node cluster, joining other clusters not supported"));
    char *err = NULL;
    rq_log("rqlited", "preexisting node state detected, joining again through the join addresses");
    if (cluster_join(cfg, NULL, 0, false, &err) != 0) {
        rq_log("rqlited", "could not join again (%s): going on with the cluster in this node's state",
               err ? err : "?");
        free(err);
    }
}

/* A member restarted with another Raft address (and no -join): the others
 * still dial the old one, so the node asks the leader, through the other
 * members it knows, to re-add it under the new address (remove and add,
 * as for a -join with changed addresses). A single-node cluster has no one
 * to ask and goes on as it is. */
static void followRaftAddressChange(const config *cfg, store *st)
{
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes);
    const store_node *self = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(nodes[i].id, cfg->node_id) == 0)
            self = &nodes[i];
    char **targets = calloc(n ? (size_t)n : 1, sizeof *targets);
    int k = 0;
    for (int i = 0; self && targets && i < n; i++)
        if (&nodes[i] != self)
            targets[k++] = nodes[i].api_addr[0] ? nodes[i].api_addr : nodes[i].addr;
    if (self && strcmp(self->addr, cfg->raft_adv_addr) != 0) {
        if (k == 0) {
            rq_log("rqlited", "Raft address changed from %s, and no other member to tell: "
                   "the configuration keeps the old address", self->addr);
        } else {
            char *err = NULL;
            rq_log("rqlited", "Raft address changed from %s to %s: rejoining through the other members",
                   self->addr, cfg->raft_adv_addr);
            if (cluster_join(cfg, targets, k, false, &err) != 0)
                rq_logl(RQ_LOG_WARN, "rqlited", "rejoin under the new Raft address failed: %s", err ? err : "?");
            free(err);
        }
    }
    free(targets);
    free(nodes);
}

/* After start, once the node has caught up (so that its view of the
 * configuration and metadata is the cluster's), what it still has to ask
 * the leader for, if anything: a voter the leader left a non-voter while
 * it caught up (a large database, see store_join) asks to be promoted; a
 * member restarted with another HTTP address (and no -join, which would
 * have carried it) asks to have it recorded. Runs on its own thread,
 * asking every few seconds until done or the node stops. */
typedef struct memberWatch {
    const config *cfg;
    store *st;
    bool check_api;
    job job;
    _Atomic bool stop;
} memberWatch;

/* What memberWatch still wants (NULL: nothing): a reason for the log. */
static const char *memberWants(memberWatch *w)
{
    char recorded[300];
    store_recorded_api(w->st, recorded, sizeof recorded);
    if (w->check_api && strcmp(recorded, w->cfg->http_api_url) != 0)
        return "its HTTP API address changed";
    store_node *nodes = NULL;
    int n = store_nodes(w->st, &nodes);
    bool standby = false;
    for (int i = 0; i < n; i++)
        standby |= strcmp(nodes[i].id, w->cfg->node_id) == 0 && !nodes[i].voter;
    free(nodes);
    return standby && !w->cfg->raft_non_voter ? "it is a voter left a non-voter while it caught up" : NULL;
}

static void *watchMembership(void *arg)
{
    memberWatch *w = arg;
    struct timespec tick = {0, 100 * 1000000L};
    int64_t next_ask = 0;
    while (!atomic_load(&w->stop)) {
        /* Synced, not just ready: a node restored from a snapshot sees the
         * configuration changes after it (its own re-adding) only once it
         * has applied the entries the leader has committed since. */
        const char *why = store_ready(w->st) && store_wait_synced(w->st, 0) ? memberWants(w) : "";
        if (why == NULL)
            break;
        store_node leader;
        /* A leader records its own address itself (storeMetaOnLeader). */
        if (*why && rq_now_ms() >= next_ask && store_leader(w->st, &leader) && leader.api_addr[0] &&
            strcmp(leader.id, w->cfg->node_id) != 0) {
            rq_log("rqlited", "asking the leader to update this node: %s", why);
            char *target = leader.api_addr, *err = NULL;
            if (cluster_join(w->cfg, &target, 1, false, &err) != 0)
                rq_log("rqlited", "the leader did not update this node: %s", err ? err : "?");
            free(err);
            next_ask = rq_now_ms() + 3000;
        }
        nanosleep(&tick, NULL);
    }
    job_done(&w->job);
    return NULL;
}

/* After the store is open: join through -join if the node is new, or
 * rejoin through the leader that reached a wiped member. */
static void joinCluster(const config *cfg, store *st, int n_boot)
{
    char *err = NULL;
    if (n_boot > 0) {
        rq_log("rqlited", "bootstrapped a cluster of %d nodes", n_boot);
    } else if (cfg->n_join > 0 && store_was_new(st)) {
        if (cfg->node_tls)
            tls_ctx_set_joining(cfg->node_tls, true);
        int rc = cluster_join(cfg, NULL, 0, true, &err);
        if (cfg->node_tls)
            tls_ctx_set_joining(cfg->node_tls, false);
        if (rc != 0 && store_heard_leader(st)) {
            /* Admitted after all (an answer lost, a slow leader): it
             * replicates to us, so we are a member; going away would
             * throw the transfer in progress away. */
            rq_log("rqlited", "join not confirmed (%s), but a leader is replicating to this node: going on",
                   err ? err : "?");
            free(err);
        } else if (rc != 0) {
            rq_logl(RQ_LOG_WARN, "rqlited", "clustering failure: %s", err ? err : "?");
            fatal("clustering failure", err);
        }
    } else if (cfg->n_join > 0) {
        rejoin(cfg, st);
    } else if (store_contacted_by(st)) {
        /* A wiped member restarted without -join: ask the leader that
         * reached us (through its Raft address) to re-add us. */
        char *via = strdup(store_contacted_by(st));
        rq_log("rqlited", "no join addresses set, rejoining through the leader at %s", via);
        if (cluster_join(cfg, &via, 1, true, &err) != 0) {
            rq_logl(RQ_LOG_WARN, "rqlited", "rejoin failed: %s", err ? err : "?");
            free(err);
        }
        free(via);
    } else if (store_was_new(st)) {
        rq_log("rqlited", "no join addresses set");
    } else {
        followRaftAddressChange(cfg, st);
    }
}

/* -auth: the credentials, before anything binds a port or touches the
 * data directory; a file that is wrong in any way stops the node (never a
 * node open to all by mistake), and so does a -join-as user whose password
 * the file cannot give. */
static void loadCredentials(config *cfg)
{
    if (cfg->auth == NULL || *cfg->auth == '\0')
        return;
    char *err = NULL;
    if (auth_open(cfg->auth, &cfg->creds, &err) != 0)
        fatal("failed to load credentials (-auth)", err);
    if (cfg->join_as && *cfg->join_as) {
        char *h = auth_basic_header(cfg->creds, cfg->join_as, &err);
        if (h == NULL)
            fatal("-join-as", err);
        auth_free_secret(h);
    }
}

/* -auto-backup and -auto-restore: what the node does with them, and the
 * sections of /debug/vars and /status they show (rqlite shows the
 * "uploader" and "downloader" counters whether or not they are used). */
typedef struct autoState {
    backup_config up_cfg, down_cfg;
    bool up_on, down_on;
    backup_uploader *up;  /* set once started, read atomically by HTTP threads */
    backup_restore *down; /* set before the store is given to HTTP */
} autoState;

static json_t *uploaderVars(void *arg)
{
    autoState *a = arg;
    return backup_uploader_vars(__atomic_load_n(&a->up, __ATOMIC_ACQUIRE));
}

static json_t *uploaderStatus(void *arg)
{
    autoState *a = arg;
    return backup_uploader_status(__atomic_load_n(&a->up, __ATOMIC_ACQUIRE));
}

static json_t *downloaderVars(void *arg)
{
    autoState *a = arg;
    return backup_downloader_vars(__atomic_load_n(&a->down, __ATOMIC_ACQUIRE));
}

static json_t *restoreVars(void *arg)
{
    autoState *a = arg;
    return backup_restore_store_vars(__atomic_load_n(&a->down, __ATOMIC_ACQUIRE));
}

/* Both files are read and checked before anything binds a port or
 * touches the data directory: a bad one stops the node, as a bad flag. */
static void loadAutoConfigs(const config *cfg, autoState *a)
{
    char *err = NULL;
    if (cfg->auto_backup && *cfg->auto_backup) {
        if (backup_config_load(cfg->auto_backup, BACKUP_FOR_UPLOAD, &a->up_cfg, &err) != 0 ||
            backup_check_destination(&a->up_cfg, &err) != 0)
            fatal("failed to start auto-backups", err);
        a->up_on = true;
    }
    if (cfg->auto_restore && *cfg->auto_restore) {
        if (backup_config_load(cfg->auto_restore, BACKUP_FOR_RESTORE, &a->down_cfg, &err) != 0)
            fatal("failed to start auto-restore", err);
        a->down_on = true;
    }
}

/* -auto-restore, before the store opens: a node without state downloads
 * the file (a failure stops it unless continue_on_failure). */
static void downloadRestore(const config *cfg, autoState *a)
{
    if (!a->down_on)
        return;
    if (hasRaftState(cfg)) {
        rq_log("rqlited", "auto-restore requested, but data already exists in %s, skipping", cfg->data_dir);
        return;
    }
    char *err = NULL;
    backup_restore *r = NULL;
    if (backup_restore_download(&a->down_cfg, cfg->data_dir, cfg->raft_max_entry_size, &r, &err) != 0)
        fatal(err, NULL);
    __atomic_store_n(&a->down, r, __ATOMIC_RELEASE);
}

/* -auto-backup, once the node serves: uploads start (leader only). */
static void startUploads(const config *cfg, autoState *a, store *st, http_server *http)
{
    if (!a->up_on)
        return;
    char *err = NULL;
    backup_uploader *u = NULL;
    if (backup_uploader_start(&a->up_cfg, st, cfg->data_dir, &u, &err) != 0)
        fatal("failed to start auto-backups", err);
    __atomic_store_n(&a->up, u, __ATOMIC_RELEASE);
    http_server_add_status(http, "auto_backups", uploaderStatus, a);
}

/* Wait for SIGINT or SIGTERM (returned); a SIGHUP meanwhile reloads the
 * credentials file (a failed reload keeps the old credentials). */
static int waitForStop(config *cfg, sigset_t *set)
{
    for (;;) {
        int sig = 0;
        sigwait(set, &sig);
        if (sig != SIGHUP)
            return sig;
        if (cfg->creds) {
            rq_log("rqlited", "received SIGHUP, reloading the credentials file %s", cfg->auth);
            auth_reload(cfg->creds, NULL);
        } else {
            rq_log("rqlited", "received SIGHUP: nothing to reload (no -auth)");
        }
    }
}

/* rqlite's lines once the node serves: consensus, API address, how to connect. */
static void logReady(const config *cfg, store *st)
{
    if (store_wait_leader(st, 1500))
        rq_log("rqlited", "store has reached consensus");
    rq_log("rqlited", "node HTTP API available at %s", cfg->http_api_url);
    char host[256], port[16];
    if (addr_split(cfg->http_adv_addr, host, sizeof host, port, sizeof port) == 0)
        rq_log("rqlited", "connect using the command-line tool via 'rqlite -H %s -p %s'", host, port);
}

int main(int argc, char **argv)
{
    /* Each connection thread would get a malloc arena of its own, and what an
     * arena frees it keeps: resident memory crept up with connection churn
     * (tests/system/test_growth.py). Two arenas keep it flat, at no measured
     * cost in throughput. MALLOC_ARENA_MAX in the environment still wins. */
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 2);

    config cfg;
    int exit_code = 0;
    if (config_parse(&cfg, argc, argv, &exit_code) != 0)
        return exit_code;
    rq_log_set_level(cfg.log);
    cluster_init(&cfg);
    sigset_t set;
    setupSignals(&set);
    sqlite3_config(SQLITE_CONFIG_LOG, sqliteLog, NULL);
    char *err = NULL;
    startNodeTls(&cfg);
    logLaunch(argc, argv);
    if (cfg.node_tls) {
        char *what = tls_ctx_describe(cfg.node_tls);
        rq_log("rqlited", "enabling node-to-node encryption with %s", what);
        free(what);
    }
    loadCredentials(&cfg);
    autoState autos = {0};
    loadAutoConfigs(&cfg, &autos);
    raiseFileLimit(&cfg);
    if (rq_mkdir_all(cfg.data_dir) != 0)
        fatal("cannot create data directory", strdup(strerror(errno)));
    installExtensions(&cfg);
    downloadRestore(&cfg, &autos);
    openCdc(&cfg);

    http_server *http = NULL;
    if (http_server_start(&cfg, &http, &err) != 0)
        fatal("failed to start HTTP server", err);
    http_server_add_vars(http, "uploader", uploaderVars, &autos);
    http_server_add_vars(http, "downloader", downloaderVars, &autos);
    http_server_add_vars(http, "store", restoreVars, &autos);
    http_server_add_vars(http, "cdc.service", cdcVars, cfg.cdc);
    if (cfg.cdc)
        http_server_add_status(http, "cdc", cdcStatus, cfg.cdc);
    store_node *boot = NULL;
    int n_boot = 0;
    disco *dsc = NULL;
    if (disco_new(&cfg, &dsc, &err) != 0)
        fatal("discovery", err);
    if (dsc && !hasRaftState(&cfg))
        discoverTargets(&cfg, dsc);
    if (cfg.bootstrap_expect > 0 && !hasRaftState(&cfg))
        n_boot = bootstrapExpect(&cfg, dsc, http, &boot);
    disco_free(dsc);
    store *st = NULL;
    if (store_open_with(&cfg, boot, n_boot, &st, &err) != 0)
        fatal("failed to open store", err);
    free(boot);
    backup_restore_start(autos.down, st); /* not ready until it is done */
    http_server_set_store(http, st);
    if (cfg.cdc) {
        cdc_cluster cl = {.arg = st, .is_leader = cdcIsLeader, .other_voters = cdcOtherVoters};
        if (cdc_start(cfg.cdc, &cl, &err) != 0)
            fatal("failed to start CDC service", err);
    }
    joinCluster(&cfg, st, n_boot);
    memberWatch watch = {.cfg = &cfg, .st = st, .check_api = !store_was_new(st) && cfg.n_join == 0};
    job_start(&watch.job, watchMembership, &watch);
    logReady(&cfg, st);
    startUploads(&cfg, &autos, st, http);

    int sig = waitForStop(&cfg, &set);
    rq_log("rqlited", "received signal %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sigdelset(&set, SIGHUP); /* a reload is no reason to force the exit */
    pthread_t forcer;
    pthread_create(&forcer, NULL, forceExitThread, &set);
    atomic_store(&watch.stop, true);
    job_close(&watch.job);
    if (cfg.raft_cluster_remove_shutdown)
        leaveCluster(&cfg, st);
    http_server_stop(http);
    backup_uploader_stop(autos.up);
    backup_restore_stop(autos.down);
    backup_config_free(&autos.up_cfg);
    backup_config_free(&autos.down_cfg);
    store_close(st);
    cdc_close(cfg.cdc);
    tls_ctx_free(cfg.node_tls);
    rq_log("rqlited", "rqlite server stopped");
    auth_close(cfg.creds);
    config_free(&cfg);
    return 0;
}
