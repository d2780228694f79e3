/*
 * http: rqlite's HTTP API on libmicrohttpd, one thread per connection.
 *
 * Routing, query-parameter parsing, request bodies, JSON responses in
 * rqlite's byte format, status codes, and transparent forwarding of
 * leader-only requests from followers to the leader (cluster_forward).
 * Connections, request sizes and the time to send a request are bounded
 * (-http-max-conns, -http-max-body-size, -http-request-timeout). HTTPS
 * with -http-cert and -http-key (tls.c). The module's files are listed in
 * internal.h.
 */
#ifndef RQ_HTTP_HTTP_H
#define RQ_HTTP_HTTP_H

#include "config.h"
#include "store/store.h"

typedef struct http_server http_server;

/* Start listening on cfg->http_addr ("localhost" binds 127.0.0.1). The store
 * may be NULL until http_server_set_store() is called: endpoints that need it
 * answer 503 meanwhile, /status answers early. Returns 0 or -1 with *err. */
int http_server_start(const config *cfg, http_server **out, char **err);
void http_server_set_store(http_server *h, store *s);
/* Stop accepting, close every connection, flush the ?queue writes (the
 * store must still be open) and free h. NULL is allowed. */
void http_server_stop(http_server *h);
/* The nodes that announced themselves on POST /notify (-bootstrap-expect),
 * as a malloc'd array (caller frees); returns the count. */
int http_server_notified(http_server *h, store_node **out);

/* A section of /status or /debug/vars that another module keeps (rqlite's
 * RegisterStatus): fn(arg) makes its JSON (the caller owns it) whenever
 * the document is made. In /debug/vars a key the HTTP layer has already
 * (such as "store") gets fn's members added to its own. fn runs on HTTP
 * threads and must stay callable until http_server_stop. At most
 * HTTP_MAX_SECTIONS; main adds them at start-up. */
#define HTTP_MAX_SECTIONS 8
typedef json_t *(*http_section_fn)(void *arg);
void http_server_add_status(http_server *h, const char *key, http_section_fn fn, void *arg);
void http_server_add_vars(http_server *h, const char *key, http_section_fn fn, void *arg);

#endif
