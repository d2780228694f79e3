/*
 * router.c: which handler answers a request, by path and method, as
 * rqlite routes them.
 */
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

static bool prefix(const char *url, const char *p)
{
    size_t n = strlen(p);
    return strncmp(url, p, n) == 0 && (url[n] == '\0' || url[n] == '/');
}

enum MHD_Result router_dispatch(http_server *h, struct MHD_Connection *c, const char *url, const char *method,
                                request *rq)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    respond_served_by(strncmp(url, "/db/", 4) == 0 ? h->cfg->http_adv_addr : NULL);
    if (strcmp(method, "OPTIONS") == 0)
        return respond_empty(h, c, 200);
    if (prefix(url, "/db/execute")) {
        if (!post) return respond_empty(h, c, 405);
        return handle_data(h, c, KIND_EXECUTE, method, "/db/execute", rq);
    }
    if (prefix(url, "/db/query")) {
        if (!get && !post) return respond_empty(h, c, 405);
        return handle_data(h, c, KIND_QUERY, method, "/db/query", rq);
    }
    if (prefix(url, "/db/request")) {
        if (!get && !post) return respond_empty(h, c, 405);
        return handle_data(h, c, KIND_REQUEST, method, "/db/request", rq);
    }
    if (prefix(url, "/db/backup")) {
        if (!get) return respond_empty(h, c, 405);
        return handle_backup(h, c, rq);
    }
    if (prefix(url, "/db/load")) {
        if (!post) return respond_empty(h, c, 405);
        return handle_load(h, c, rq, false);
    }
    if (strcmp(url, "/boot") == 0) {
        if (!post) return respond_empty(h, c, 405);
        return handle_load(h, c, rq, true);
    }
    if (prefix(url, "/status")) {
        if (!get) return respond_empty(h, c, 405);
        return handle_status(h, c);
    }
    if (prefix(url, "/nodes")) {
        if (!get) return respond_empty(h, c, 405);
        return handle_nodes(h, c);
    }
    if (prefix(url, "/readyz")) {
        if (!get) return respond_empty(h, c, 405);
        return handle_readyz(h, c);
    }
    if (strcmp(url, "/leader") == 0) {
        if (!get && !post) return respond_empty(h, c, 405);
        return handle_leader(h, c, method, rq);
    }
    if (strcmp(url, "/snapshot") == 0) {
        if (!post) return respond_empty(h, c, 405);
        return handle_snapshot(h, c);
    }
    if (strcmp(url, "/debug/vars") == 0)
        return handle_vars(h, c);
    if (strcmp(url, "/join") == 0) {
        if (!post) return respond_empty(h, c, 405);
        return handle_join(h, c, rq);
    }
    if (strcmp(url, "/notify") == 0) {
        if (!post) return respond_empty(h, c, 405);
        return handle_notify(h, c, rq);
    }
    if (prefix(url, "/remove")) {
        if (strcmp(method, "DELETE") != 0) return respond_empty(h, c, 405);
        return handle_remove(h, c, rq);
    }
    return respond_empty(h, c, 404);
}
