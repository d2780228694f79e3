/*
 * handlers_cluster.c: the cluster's membership and leadership as the API
 * shows them. /nodes and GET /leader probe every member's /status in
 * parallel (rqlite's reachability check); POST /leader steps down;
 * /join adds a node (a follower answers 301 to the leader, as rqlite);
 * /notify records the nodes of a -bootstrap-expect cluster for main.c;
 * /remove takes a node out; /snapshot snapshots this node's log.
 *
 * /join and /notify are open while auth is off (as in rqlite without
 * -auth), so their bodies are checked strictly before anything is done.
 * With -auth, /join from a voter needs join, from a non-voter join or
 * join-read-only (the router checks the latter, handle_join the former).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "http/internal.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/os.h"

/* ---- probing the members: /nodes and GET /leader ---------------------------------- */

typedef struct probe {
    store_node node;
    uint64_t timeout_ms;     /* ?timeout */
    bool self, is_leader, reachable;
    const char *applied_auth; /* ?applied: ask for the applied index too,
                               * with the client's Authorization ("" none) */
    long long applied;        /* -1: not known */
    double time;
    char error[256];
    pthread_t thread;
} probe;

/* How long a member has to answer by default (rqlite's ?timeout default). */
#define PROBE_TIMEOUT_MS 30000

/* ?applied (the console's lag column, beyond rqlite): the member's
 * applied index from its /status, asked with the client's credentials. */
static void probeApplied(probe *p)
{
    char url[400];
    snprintf(url, sizeof url, "%s/status?key=store", p->node.api_addr);
    cluster_response resp;
    char *err = NULL;
    if (cluster_forward("GET", url, NULL, 0, NULL, p->applied_auth[0] ? p->applied_auth : NULL, p->timeout_ms, &resp,
                        &err) != 0) {
        free(err);
        return;
    }
    json_t *st = resp.status == 200 ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    json_t *v = json_object_get(st, "fsm_index");
    if (json_is_integer(v))
        p->applied = (long long)json_integer_value(v);
    json_decref(st);
    cluster_response_free(&resp);
}

/* One member's reachability, on a thread of its own so that an unreachable
 * node costs the request one timeout, not one each. */
static void *probeNode(void *arg)
{
    probe *p = arg;
    double t0 = rq_now_sec();
    p->applied = -1;
    if (p->applied_auth && p->node.api_addr[0])
        probeApplied(p);
    if (p->self) {
        p->reachable = true;
    } else if (p->node.api_addr[0] == '\0') {
        snprintf(p->error, sizeof p->error, "node API address unknown");
    } else {
        char url[400];
        snprintf(url, sizeof url, "%s/status?key=build", p->node.api_addr);
        cluster_response resp;
        char *err = NULL;
        /* With -auth a node may refuse our anonymous probe: answering at
         * all is what reachable means. */
        if (cluster_forward("GET", url, NULL, 0, NULL, NULL, p->timeout_ms, &resp, &err) == 0 &&
            (resp.status == 200 || resp.status == 401)) {
            p->reachable = true;
        } else if (err == NULL || strcmp(err, "Timeout was reached") == 0 || /* libcurl's timeout */
                   rq_now_sec() - t0 >= (double)p->timeout_ms / 1000.0) {
            snprintf(p->error, sizeof p->error, "timeout waiting for node to respond");
        } else {
            snprintf(p->error, sizeof p->error, "%s", err);
        }
        if (err == NULL)
            cluster_response_free(&resp);
        free(err);
    }
    p->time = rq_now_sec() - t0;
    return NULL;
}

/* rqlite lists nodes sorted by id. */
static int cmpProbe(const void *a, const void *b)
{
    return strcmp(((const probe *)a)->node.id, ((const probe *)b)->node.id);
}

/* Go's time.Duration.String() for a probe time ("38.1µs", "1.25ms"). */
static void goDuration(buf *b, double seconds)
{
    long long ns = (long long)(seconds * 1e9 + 0.5);
    char tmp[64];
    const char *unit;
    double v;
    if (ns < 1000) {
        buf_printf(b, "%lldns", ns);
        return;
    } else if (ns < 1000000) {
        v = ns / 1e3, unit = "µs";
        snprintf(tmp, sizeof tmp, "%.3f", v);
    } else if (ns < 1000000000LL) {
        v = ns / 1e6, unit = "ms";
        snprintf(tmp, sizeof tmp, "%.6f", v);
    } else {
        v = ns / 1e9, unit = "s";
        snprintf(tmp, sizeof tmp, "%.9f", v);
    }
    size_t n = strlen(tmp);
    while (tmp[n - 1] == '0')
        tmp[--n] = '\0';
    if (tmp[n - 1] == '.')
        tmp[--n] = '\0';
    buf_printf(b, "%s%s", tmp, unit);
}

/* One member as rqlite prints it: fields in Go's struct order, api_addr and
 * error left out when empty. */
static void putNode(buf *b, const probe *p)
{
    buf_puts(b, "{\"id\":");
    buf_json_cstr(b, p->node.id);
    if (p->node.api_addr[0]) {
        buf_puts(b, ",\"api_addr\":");
        buf_json_cstr(b, p->node.api_addr);
    }
    buf_puts(b, ",\"addr\":");
    buf_json_cstr(b, p->node.addr);
    buf_puts(b, ",\"version\":");
    buf_json_cstr(b, p->reachable ? RQ_VERSION : "");
    buf_printf(b, ",\"voter\":%s,\"reachable\":%s,\"leader\":%s", p->node.voter ? "true" : "false",
               p->reachable ? "true" : "false", p->is_leader ? "true" : "false");
    if (p->applied >= 0)
        buf_printf(b, ",\"applied_index\":%lld", p->applied);
    buf_puts(b, ",\"time\":");
    buf_json_double(b, p->time);
    buf_puts(b, ",\"time_s\":\"");
    goDuration(b, p->time);
    buf_putc(b, '"');
    if (p->error[0]) {
        buf_puts(b, ",\"error\":");
        buf_json_cstr(b, p->error);
    }
    buf_putc(b, '}');
}

/* The members (voters only unless nonvoters), probed, sorted by id into
 * *out (caller frees); returns the count. The leader the store names counts
 * as leader only when it answered, as in rqlite. */
static int probeNodes(http_server *h, bool nonvoters, uint64_t timeout_ms, const char *applied_auth, probe **out)
{
    store *st = http_server_store(h);
    store_node *nodes = NULL;
    int n = store_nodes(st, &nodes);
    store_node leader;
    bool has_leader = store_leader(st, &leader);
    probe *ps = calloc(n ? (size_t)n : 1, sizeof *ps);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!nodes[i].voter && !nonvoters)
            continue;
        probe *p = &ps[k++];
        p->node = nodes[i];
        p->timeout_ms = timeout_ms ? timeout_ms : 1;
        p->applied_auth = applied_auth;
        p->self = strcmp(nodes[i].id, store_node_id(st)) == 0;
        p->is_leader = has_leader && strcmp(leader.addr, nodes[i].addr) == 0;
    }
    free(nodes);
    for (int i = 0; i < k; i++)
        if (pthread_create(&ps[i].thread, NULL, probeNode, &ps[i]) != 0)
            probeNode(&ps[i]), ps[i].thread = 0;
    for (int i = 0; i < k; i++)
        if (ps[i].thread)
            pthread_join(ps[i].thread, NULL);
    for (int i = 0; i < k; i++)
        if (!ps[i].reachable)
            ps[i].is_leader = false;
    qsort(ps, (size_t)k, sizeof *ps, cmpProbe);
    *out = ps;
    return k;
}

enum MHD_Result handle_nodes(http_server *h, struct MHD_Connection *c, request *rq)
{
    if (http_server_store(h) == NULL)
        return respond_text(h, c, 503, "store nodes: store not open");
    uint64_t timeout;
    if (!params_timeout(c, PROBE_TIMEOUT_MS, &timeout))
        return respond_text(h, c, 400, "timeout is not a valid duration");
    probe *ps = NULL;
    const char *auth = NULL;
    if (params_has(c, "applied")) {
        auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth == NULL)
            auth = "";
    }
    int n = probeNodes(h, params_has(c, "nonvoters"), timeout, auth, &ps);
    const char *ver = params_value(c, "ver");
    bool v2 = ver && strcmp(ver, "2") == 0;
    buf b = BUF_INIT;
    buf_puts(&b, v2 ? "{\"nodes\":[" : "{");
    for (int i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        if (!v2) {
            buf_json_cstr(&b, ps[i].node.id);
            buf_putc(&b, ':');
        }
        putNode(&b, &ps[i]);
    }
    buf_puts(&b, v2 ? "]}" : "}");
    free(ps);
    return respond_json(h, c, 200, &b, params_has(c, "pretty"));
}

/* The answer to a membership change only the leader makes (stepdown,
 * remove), err taken: a follower forwards the request, a failure is 500
 * "prefix: err" (fallback without err), success 200 with no body. */
static enum MHD_Result answerLeaderOp(http_server *h, struct MHD_Connection *c, request *rq, int rc, char *err,
                                      const char *prefix, const char *fallback)
{
    if (rc == STORE_NOT_LEADER) {
        free(err);
        return respond_forward(h, c, rq);
    }
    if (rc != STORE_OK)
        return respond_error(h, c, 500, prefix, err, fallback);
    return respond_empty(h, c, 200);
}

/* GET /leader: the leader this node knows, probed within ?timeout. As in
 * rqlite, a known leader that does not answer in time is still 200 (with
 * reachable false and the error); only an unknown leader is 503. */
static enum MHD_Result getLeader(http_server *h, struct MHD_Connection *c, store *st)
{
    uint64_t timeout;
    if (!params_timeout(c, PROBE_TIMEOUT_MS, &timeout))
        return respond_text(h, c, 400, "timeout is not a valid duration");
    probe p;
    memset(&p, 0, sizeof p);
    if (!store_leader(st, &p.node))
        return respond_no_leader(h, c);
    p.timeout_ms = timeout ? timeout : 1;
    p.self = strcmp(p.node.id, store_node_id(st)) == 0;
    probeNode(&p);
    p.is_leader = p.reachable;
    buf b = BUF_INIT;
    putNode(&b, &p);
    return respond_json(h, c, 200, &b, params_has(c, "pretty"));
}

enum MHD_Result handle_leader(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = http_server_store(h);
    if (st == NULL)
        return respond_text(h, c, 503, "store not open");
    if (strcmp(rq->method, "GET") == 0)
        return getLeader(h, c, st);
    const char *id = NULL;
    json_t *body = NULL;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct && strcmp(ct, "application/json") == 0 && rq->body.len) {
        body = json_loadb(rq->body.data, rq->body.len, 0, NULL);
        if (body == NULL)
            return respond_text(h, c, 400, "invalid JSON body");
        id = json_string_value(json_object_get(body, "id"));
    }
    char *err = NULL;
    int rc = store_stepdown(st, id, &err);
    json_decref(body);
    return answerLeaderOp(h, c, rq, rc, err, "stepdown", "?");
}

/* ---- /join, /notify, /remove ----------------------------------------------------- */

/* A /join or /notify body: a JSON object of exactly these fields. The
 * strings point into body (json_decref it when done). */
typedef struct peerRequest {
    json_t *body;
    const char *id, *addr, *api; /* api NULL if absent */
    bool voter, reset;
    char why[128];               /* a 400's reason, when built */
} peerRequest;

#define PEER_FIELD_MAX 255

/* A host name or IPv4 address, or an IPv6 address in brackets. */
static bool validHost(const char *h, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return true;
}

/* host:port, the port numeric in 1-65535. */
static bool validHostPort(const char *a)
{
    const char *colon = strrchr(a, ':');
    return colon && validHost(a, (size_t)(colon - a)) && addr_port(a) >= 1;
}

/* A string field of at most PEER_FIELD_MAX bytes without control
 * characters (NUL cannot occur: the parser rejects \u0000). */
static const char *peerString(json_t *body, const char *key, bool required, const char **out, char *why,
                              size_t wn)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL) {
        if (required)
            snprintf(why, wn, "missing \"%s\"", key);
        return required ? why : NULL;
    }
    if (!json_is_string(v)) {
        snprintf(why, wn, "\"%s\" must be a string", key);
        return why;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > PEER_FIELD_MAX) {
        snprintf(why, wn, "\"%s\" must be 1 to %d bytes long", key, PEER_FIELD_MAX);
        return why;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            snprintf(why, wn, "\"%s\" must not contain control characters", key);
            return why;
        }
    }
    *out = s;
    return NULL;
}

/* Check a /join (join true) or /notify body. */
static const char *checkPeerRequest(const request *rq, bool join, peerRequest *p)
{
    char *why = p->why;
    size_t wn = sizeof p->why;
    p->voter = true;
    p->body = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, JSON_REJECT_DUPLICATES, NULL);
    if (p->body == NULL)
        return "invalid JSON body";
    if (!json_is_object(p->body))
        return "body must be a JSON object";
    const char *key;
    json_t *v;
    json_object_foreach(p->body, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "addr") != 0 && strcmp(key, "api_addr") != 0 &&
            strcmp(key, "voter") != 0 && !(join && strcmp(key, "reset") == 0))
            return "unknown field in body";
    }
    if (peerString(p->body, "id", true, &p->id, why, wn) || peerString(p->body, "addr", true, &p->addr, why, wn) ||
        peerString(p->body, "api_addr", false, &p->api, why, wn))
        return why;
    if (!validHostPort(p->addr))
        return "\"addr\" must be host:port with a port in 1-65535";
    if (p->api) {
        const char *hp = strncmp(p->api, "http://", 7) == 0    ? p->api + 7
                         : strncmp(p->api, "https://", 8) == 0 ? p->api + 8
                                                               : NULL;
        if (hp == NULL || !validHostPort(hp))
            return "\"api_addr\" must be http://host:port or https://host:port";
    }
    v = json_object_get(p->body, "voter");
    if (v) {
        if (!json_is_boolean(v))
            return "\"voter\" must be a boolean";
        p->voter = json_is_true(v);
    }
    v = json_object_get(p->body, "reset"); /* our extension: the joiner has no state */
    if (v) {
        if (!json_is_boolean(v))
            return "\"reset\" must be a boolean";
        p->reset = json_is_true(v);
    }
    return NULL;
}

/* Parse and check a /join (join true) or /notify body into *p. Returns
 * NULL, or the reason for a 400 (p then holds nothing to free). */
static const char *parsePeerRequest(const request *rq, bool join, peerRequest *p)
{
    memset(p, 0, sizeof *p);
    const char *bad = checkPeerRequest(rq, join, p);
    if (bad) {
        json_decref(p->body);
        p->body = NULL;
    }
    return bad;
}

enum MHD_Result handle_join(http_server *h, struct MHD_Connection *c, request *rq)
{
    peerRequest p;
    const char *bad = parsePeerRequest(rq, true, &p);
    if (bad)
        return respond_text(h, c, 400, bad);
    /* The router let join or join-read-only in; a voter needs join. */
    if (p.voter && !router_permitted(h, rq, AUTH_PERM_JOIN)) {
        json_decref(p.body);
        return respond_empty(h, c, 401);
    }
    store *st = http_server_store(h);
    if (st == NULL) {
        json_decref(p.body);
        return respond_text(h, c, 503, "store not open");
    }
    char *err = NULL;
    int rc = store_join(st, p.id, p.addr, p.api, p.voter, p.reset, &err);
    json_decref(p.body);
    if (rc == STORE_NOT_LEADER) {
        free(err);
        store_node leader;
        if (!store_leader(st, &leader) || leader.api_addr[0] == '\0')
            return respond_no_leader(h, c);
        char loc[400];
        snprintf(loc, sizeof loc, "%s/join", leader.api_addr);
        return respond_redirect(h, c, loc);
    }
    if (rc != STORE_OK)
        return respond_error(h, c, 500, "", err, "join failed");
    return respond_empty(h, c, 200);
}

/* Distinct nodes /notify remembers: a -bootstrap-expect cluster is far
 * smaller, and a flood of made-up ids must not grow memory without end. */
#define MAX_NOTIFIED 256

/* POST /notify {"id","addr"[,"api_addr"]}: a node started with
 * -bootstrap-expect announces itself (main.c counts them). */
enum MHD_Result handle_notify(http_server *h, struct MHD_Connection *c, request *rq)
{
    peerRequest p;
    const char *bad = parsePeerRequest(rq, false, &p);
    if (bad)
        return respond_text(h, c, 400, bad);
    pthread_mutex_lock(&h->notify_mu);
    int i = 0;
    while (i < h->n_notified && strcmp(h->notified[i].id, p.id) != 0)
        i++;
    if (i == h->n_notified) {
        store_node *more = i < MAX_NOTIFIED ? realloc(h->notified, (size_t)(i + 1) * sizeof *h->notified) : NULL;
        if (more == NULL) {
            pthread_mutex_unlock(&h->notify_mu);
            json_decref(p.body);
            return respond_text(h, c, 503, "too many nodes have notified this node");
        }
        h->notified = more;
        h->n_notified++;
        rq_log("http", "node %s at %s notified us (%d known)", p.id, p.addr, h->n_notified);
    }
    store_node *n = &h->notified[i];
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", p.id);
    snprintf(n->addr, sizeof n->addr, "%s", p.addr);
    snprintf(n->api_addr, sizeof n->api_addr, "%s", p.api ? p.api : "");
    n->voter = true;
    pthread_mutex_unlock(&h->notify_mu);
    json_decref(p.body);
    return respond_empty(h, c, 200);
}

enum MHD_Result handle_remove(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = http_server_store(h);
    if (st == NULL)
        return respond_text(h, c, 503, "store not open");
    json_t *body = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(body, "id"));
    if (!json_is_object(body) || json_object_size(body) != 1 || id == NULL) {
        json_decref(body);
        return respond_empty(h, c, 400);
    }
    char *err = NULL;
    int rc = store_remove(st, id, &err);
    json_decref(body);
    return answerLeaderOp(h, c, rq, rc, err, "", "remove failed");
}

/* ---- /snapshot, /reap ------------------------------------------------------------ */

/* POST /reap: rqlite folds its incremental snapshots into one and
 * checkpoints their WAL files. Ours are markers in libraft's store, which
 * deletes superseded ones itself each time it takes a snapshot, and hold
 * no WAL files: there is never anything to reap, and the answer says so. */
enum MHD_Result handle_reap(http_server *h, struct MHD_Connection *c, request *rq)
{
    if (http_server_store(h) == NULL)
        return respond_text(h, c, 503, "store not open");
    buf b = BUF_INIT;
    buf_puts(&b, "{\"snapshots_reaped\":0,\"wals_checkpointed\":0}\n");
    return respond_buf(h, c, 200, "application/json; charset=utf-8", &b);
}

/* POST /snapshot: a local snapshot and log truncation. A follower takes it
 * when it next applies an entry, so it nudges the leader with strong reads
 * (each one a log entry) until its snapshot is done. */
typedef struct snapJob {
    store *st;
    uint64_t trailing;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, nothing_new;
    int rc;
    char *err;
} snapJob;

/* store_snapshot() on a thread of its own: on a follower it returns only
 * once an entry is applied, which the request's thread meanwhile causes. */
static void *snapThread(void *arg)
{
    snapJob *j = arg;
    bool nothing = false;
    char *err = NULL;
    int rc = store_snapshot(j->st, j->trailing, &nothing, &err);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->err = err;
    j->nothing_new = nothing;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

enum MHD_Result handle_snapshot(http_server *h, struct MHD_Connection *c, request *rq)
{
    store *st = http_server_store(h);
    if (st == NULL)
        return respond_text(h, c, 503, "store not open");
    const char *tl = params_value(c, "trailing_logs");
    if (tl && (*tl == '\0' || strspn(tl, "0123456789") != strlen(tl)))
        return respond_text(h, c, 400, "trailing_logs is not a valid integer");
    snapJob j = {.st = st, .trailing = tl ? strtoull(tl, NULL, 10) : 0};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, snapThread, &j) != 0)
        return respond_text(h, c, 500, "cannot start snapshot");
    double deadline = rq_now_sec() + 15;
    /* With -auth the nudges go with the client's credentials, or if those
     * may not query, with this node's own (-join-as). */
    const char *client = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    char *own = NULL;
    bool use_own = false;
    pthread_mutex_lock(&j.mu);
    while (!j.done && rq_now_sec() < deadline) {
        pthread_mutex_unlock(&j.mu);
        store_node leader;
        if (!store_is_leader(st) && store_leader(st, &leader) && leader.api_addr[0]) {
            char url[400];
            snprintf(url, sizeof url, "%s/db/query?q=SELECT%%201&level=strong", leader.api_addr);
            cluster_response resp;
            char *err = NULL;
            if (use_own && own == NULL)
                own = cluster_own_authorization(h->cfg);
            if (cluster_forward("GET", url, NULL, 0, NULL, use_own ? own : client, 5000, &resp, &err) == 0) {
                use_own = use_own || resp.status == 401;
                cluster_response_free(&resp);
            }
            free(err);
        }
        pthread_mutex_lock(&j.mu);
        struct timespec ts;
        rq_deadline(&ts, 200);
        if (!j.done)
            pthread_cond_timedwait(&j.cv, &j.mu, &ts);
    }
    pthread_mutex_unlock(&j.mu);
    auth_free_secret(own);
    pthread_join(t, NULL); /* store_snapshot's own timeout bounds this */
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv);
    if (j.rc != STORE_OK)
        return respond_error(h, c, 500, "snapshot", j.err, "failed");
    return respond_empty(h, c, j.nothing_new ? 204 : 200);
}
