/*
 * router.c: the route table, rqlite's endpoints as data: path, how it
 * matches, the methods it takes, the permissions it needs and its handler.
 * A route cannot be added without permissions (test_http checks the table).
 *
 * Dispatch is rqlite's: OPTIONS is answered 200 on any path (CORS
 * preflight); an unknown path gets 404. With -auth, a request whose Basic
 * credentials do not grant the route's permissions gets 401 (rqlite checks
 * before the method); a known path asked with a method it does not take
 * gets 405. All three with an empty body. X-RQLITE-SERVED-BY is set for
 * any path under /db/, found or not, before anything is answered.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "http/internal.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/os.h"

static const http_route routes[] = {
    {"/db/execute", ROUTE_PREFIX, ROUTE_POST, AUTH_PERM_EXECUTE, false, handle_execute, HSTAT_EXECUTIONS},
    {"/db/query", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_QUERY, false, handle_query, HSTAT_QUERIES},
    {"/db/request", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_EXECUTE | AUTH_PERM_QUERY, false,
     handle_request, HSTAT_REQUESTS},
    {"/db/backup", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_BACKUP, false, handle_backup, HSTAT_BACKUPS},
    {"/db/load", ROUTE_PREFIX, ROUTE_POST, AUTH_PERM_LOAD, false, handle_load, HSTAT_LOADS},
    {"/db/sql", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, AUTH_PERM_QUERY, false, handle_sql, HSTAT_SQL_ANALYZE},
    {"/boot", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_LOAD, false, handle_boot, HSTAT_BOOT},
    {"/status", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_STATUS, false, handle_status, HSTAT_STATUS},
    {"/nodes", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_STATUS, false, handle_nodes, HSTAT_NONE},
    {"/readyz", ROUTE_PREFIX, ROUTE_GET, AUTH_PERM_READY, false, handle_readyz, HSTAT_READYZ},
    {"/leader", ROUTE_EXACT, ROUTE_GET | ROUTE_POST, AUTH_PERM_LEADER_OPS, false, handle_leader, HSTAT_NONE},
    {"/snapshot", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_SNAPSHOT, false, handle_snapshot, HSTAT_USER_SNAPSHOTS},
    {"/reap", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_SNAPSHOT, false, handle_reap, HSTAT_USER_REAPS},
    {"/console", ROUTE_PREFIX, ROUTE_ANY, AUTH_PERM_UI, false, handle_console, HSTAT_UI},
    {"/metrics", ROUTE_EXACT, ROUTE_GET, AUTH_PERM_STATUS, false, handle_metrics, HSTAT_NONE},
    {"/licenses", ROUTE_EXACT, ROUTE_GET, AUTH_PERM_STATUS, false, handle_licenses, HSTAT_NONE},
    /* Any method, as rqlite's expvar and pprof handlers take. */
    {"/debug/vars", ROUTE_EXACT, ROUTE_ANY, AUTH_PERM_STATUS, false, handle_vars, HSTAT_NONE},
    {"/debug/pprof", ROUTE_PREFIX, ROUTE_ANY, AUTH_PERM_STATUS, false, handle_pprof, HSTAT_NONE},
    /* A voter needs join (handle_join checks), a non-voter join-read-only will do. */
    {"/join", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_JOIN | AUTH_PERM_JOIN_READ_ONLY, true, handle_join,
     HSTAT_JOIN_REQ},
    {"/notify", ROUTE_EXACT, ROUTE_POST, AUTH_PERM_JOIN, false, handle_notify, HSTAT_NOTIFY_REQ},
    {"/remove", ROUTE_PREFIX, ROUTE_DELETE, AUTH_PERM_REMOVE, false, handle_remove, HSTAT_NONE},
};

_Static_assert(sizeof routes / sizeof *routes <= HTTP_MAX_ROUTES, "HTTP_MAX_ROUTES too small for the table");

int router_index(const http_route *r)
{
    return r ? (int)(r - routes) : (int)(sizeof routes / sizeof *routes);
}

const http_route *router_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}

const http_route *router_find(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        const http_route *r = &routes[i];
        size_t n = strlen(r->path);
        if (strncmp(url, r->path, n) != 0)
            continue;
        if (url[n] == '\0' || (r->match == ROUTE_PREFIX && url[n] == '/'))
            return r;
    }
    return NULL;
}

bool router_allows(const http_route *r, const char *method)
{
    unsigned m = strcmp(method, "GET") == 0      ? ROUTE_GET
                 : strcmp(method, "POST") == 0   ? ROUTE_POST
                 : strcmp(method, "DELETE") == 0 ? ROUTE_DELETE
                                                 : ROUTE_OTHER;
    return (r->methods & m) != 0;
}

bool router_permitted(http_server *h, const request *rq, unsigned perms)
{
    return h->cfg->creds == NULL || auth_allowed(h->cfg->creds, rq->user, rq->pass, perms);
}

/* The route's permissions for this request: its Basic credentials (none,
 * or not well-formed: anonymous, as Go's BasicAuth) against the file. */
static bool routePermitted(http_server *h, struct MHD_Connection *c, const http_route *r, request *rq)
{
    if (h->cfg->creds == NULL)
        return true;
    const char *value = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                      strlen(MHD_HTTP_HEADER_AUTHORIZATION), &value, &len) == MHD_YES)
        auth_parse_basic(value, len, &rq->user, &rq->pass);
    bool ok = false;
    if (!r->any_perm)
        ok = router_permitted(h, rq, r->perms);
    for (unsigned bit = 1; r->any_perm && !ok && bit && bit <= r->perms; bit <<= 1)
        ok = (r->perms & bit) && router_permitted(h, rq, bit);
    http_stat_add(h, ok ? HSTAT_AUTH_OK : HSTAT_AUTH_FAIL, 1);
    return ok;
}

/* Each failing request once, with its cause: 4xx at INFO, 5xx at WARN,
 * at most FAIL_LINES lines per 10 s (a flood of bad requests must not
 * flood the log; how many were left out is said with the next one). With
 * -log-level DEBUG, every request. */
#define FAIL_LINES 20
static void logRequest(http_server *h, struct MHD_Connection *c, const char *method, const char *url,
                       const request *rq)
{
    /* /readyz's 503 is an answer to a probe (clients poll it at start-up),
     * not a failure. */
    bool failed = rq->status >= 400 && !(rq->route && rq->route->handler == handle_readyz);
    int level = !failed ? RQ_LOG_DEBUG : rq->status >= 500 ? RQ_LOG_WARN : RQ_LOG_INFO;
    if (!rq_log_enabled(level))
        return;
    unsigned long dropped = 0;
    if (failed && !rq_log_enabled(RQ_LOG_DEBUG) && !rq_log_limit_take(&h->fail_log, FAIL_LINES, 10000, &dropped))
        return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[80];
    addr_format(ci ? ci->client_addr : NULL, peer, sizeof peer);
    double ms = (rq_now_sec() - rq->t0) * 1000.0;
    const char *why = rq->why[0] ? rq->why : failed ? MHD_get_reason_phrase_for(rq->status) : "";
    char more[64] = "";
    if (dropped)
        snprintf(more, sizeof more, " (%lu more not logged before it)", dropped);
    if (failed)
        rq_logl(level, "http", "failing request: %s %s from %s: %u%s%s (%.1f ms)%s", method, url, peer, rq->status,
                why && why[0] ? ": " : "", why ? why : "", ms, more);
    else
        rq_logl(level, "http", "%s %s from %s: %u (%.1f ms)", method, url, peer, rq->status, ms);
}

static enum MHD_Result route(http_server *h, struct MHD_Connection *c, const char *url, const char *method,
                             request *rq)
{
    respond_served_by(strncmp(url, "/db/", 4) == 0 ? h->cfg->http_adv_addr : NULL);
    if (strcmp(method, "OPTIONS") == 0)
        return respond_empty(h, c, 200);
    /* rqlite's redirects to the console, before any permission check. */
    if (url[0] == '\0' || strcmp(url, "/") == 0)
        return respond_redirect_with(h, c, 302, "/console/");
    if (strcmp(url, "/console") == 0)
        return respond_redirect_with(h, c, 301, "/console/");
    const http_route *r = router_find(url);
    if (r == NULL)
        return respond_empty(h, c, 404);
    if (r->stat != HSTAT_NONE)
        http_stat_add(h, r->stat, 1);
    if (!routePermitted(h, c, r, rq))
        return respond_empty(h, c, 401);
    if (!router_allows(r, method))
        return respond_empty(h, c, 405);
    rq->method = method;
    rq->url = url;
    rq->route = r;
    return r->handler(h, c, rq);
}

enum MHD_Result router_dispatch(http_server *h, struct MHD_Connection *c, const char *url, const char *method,
                                request *rq)
{
    respond_take_status(NULL, 0);
    enum MHD_Result ret = route(h, c, url, method, rq);
    rq->status = respond_take_status(rq->why, sizeof rq->why);
    logRequest(h, c, method, url, rq);
    return ret;
}
