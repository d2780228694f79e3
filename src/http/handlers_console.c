/*
 * handlers_console.c: the web console (perm ui). rqlite's redirects come
 * first, before any permission check, as in rqlite: "/" answers 302 and
 * "/console" 301, both to "/console/" (router_dispatch). The files are the
 * binary's own (console.h); the page uses the API with the browser's
 * credentials.
 */
#include <string.h>

#include "http/console.h"
#include "http/internal.h"

static const char *contentType(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    return "application/octet-stream";
}

enum MHD_Result handle_console(http_server *h, struct MHD_Connection *c, request *rq)
{
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0)
        return respond_empty(h, c, 405);
    const char *name = rq->url + strlen("/console/");
    if (*name == '\0')
        name = "index.html";
    for (const console_file *f = console_files; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return respond_with(h, c, 200, contentType(name),
                                MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT));
    return respond_empty(h, c, 404);
}
