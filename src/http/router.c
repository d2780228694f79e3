/*
 * router.c: the route table, rqlite's endpoints as data: path, how it
 * matches, the methods it takes, the permissions it needs and its handler.
 *
 * Dispatch is rqlite's: OPTIONS is answered 200 on any path (CORS
 * preflight); an unknown path gets 404 and a known one asked with a method
 * it does not take 405, both with an empty body. X-RQLITE-SERVED-BY is set
 * for any path under /db/, found or not, before anything is answered.
 *
 * Nothing checks perms yet: auth (issue 15) will, between finding the
 * route and running its handler.
 */
#include <stddef.h>
#include <string.h>

#include "http/internal.h"

static const http_route routes[] = {
    {"/db/execute", ROUTE_PREFIX, ROUTE_POST, HTTP_PERM_EXECUTE, handle_execute},
    {"/db/query", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, HTTP_PERM_QUERY, handle_query},
    {"/db/request", ROUTE_PREFIX, ROUTE_GET | ROUTE_POST, HTTP_PERM_EXECUTE | HTTP_PERM_QUERY, handle_request},
    {"/db/backup", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_BACKUP, handle_backup},
    {"/db/load", ROUTE_PREFIX, ROUTE_POST, HTTP_PERM_LOAD, handle_load},
    {"/boot", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_LOAD, handle_boot},
    {"/status", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_STATUS, handle_status},
    {"/nodes", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_STATUS, handle_nodes},
    {"/readyz", ROUTE_PREFIX, ROUTE_GET, HTTP_PERM_READY, handle_readyz},
    {"/leader", ROUTE_EXACT, ROUTE_GET | ROUTE_POST, HTTP_PERM_LEADER_OPS, handle_leader},
    {"/snapshot", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_SNAPSHOT, handle_snapshot},
    /* Any method, as rqlite's expvar handler takes. */
    {"/debug/vars", ROUTE_EXACT, ROUTE_ANY, HTTP_PERM_STATUS, handle_vars},
    {"/join", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_JOIN, handle_join},
    {"/notify", ROUTE_EXACT, ROUTE_POST, HTTP_PERM_JOIN, handle_notify},
    {"/remove", ROUTE_PREFIX, ROUTE_DELETE, HTTP_PERM_REMOVE, handle_remove},
};

/* Indexed by bit number: HTTP_PERM_ALL is bit 0. */
static const char *const perm_names[HTTP_PERM_COUNT] = {
    "all",  "execute",        "query",  "load",     "backup",     "status", "ready",
    "join", "join-read-only", "remove", "snapshot", "leader-ops", "ui",
};

const http_route *router_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}

const char *router_perm_name(unsigned perm)
{
    for (int i = 0; i < HTTP_PERM_COUNT; i++)
        if (perm == 1u << i)
            return perm_names[i];
    return NULL;
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

enum MHD_Result router_dispatch(http_server *h, struct MHD_Connection *c, const char *url, const char *method,
                                request *rq)
{
    respond_served_by(strncmp(url, "/db/", 4) == 0 ? h->cfg->http_adv_addr : NULL);
    if (strcmp(method, "OPTIONS") == 0)
        return respond_empty(h, c, 200);
    const http_route *r = router_find(url);
    if (r == NULL)
        return respond_empty(h, c, 404);
    if (!router_allows(r, method))
        return respond_empty(h, c, 405);
    rq->method = method;
    rq->route = r;
    return r->handler(h, c, rq);
}
