/*
 * client: the shell's HTTP transport to one rqlited node (libcurl): the
 * base URL (scheme, host, port, prefix), basic auth, TLS options, the
 * request timeout, and following redirects as rqlite's client does.
 */
#ifndef RQ_CLI_CLIENT_H
#define RQ_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/shell.h"
#include "util/buf.h"

typedef struct client client;

/* An answer. body is owned by the caller once client_request returned 0. */
typedef struct client_resp {
    long status;
    buf body;
    char version[64]; /* X-RQLITE-VERSION, "unknown" when absent */
} client_resp;

/* client_request's results besides 0 (an HTTP answer came back). */
#define CLIENT_FAILED -1  /* transport failure, message in err */
#define CLIENT_REFUSED -2 /* connection refused: nothing listens there */

/* opts is copied; its strings must outlive the client. */
client *client_new(const shell_opts *opts);
void client_free(client *c);

/* One request to base URL + path. body may be NULL (no body); ctype is
 * its Content-Type (application/json when NULL). */
int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *ctype, client_resp *r, char *err, size_t errlen);

/* A POST like client_request's, without the -t limit: an upload (.restore,
 * .boot) takes as long as the file and the node's load of it do, as in
 * rqlite, which lifts its timeout for these two. */
int client_upload(client *c, const char *path, const char *body, size_t len, const char *ctype, client_resp *r,
                  char *err, size_t errlen);

/* Go's http.StatusText for the codes rqlited sends ("" otherwise). */
const char *client_status_text(long code);

#endif
