/*
 * client: the shell's HTTP transport (libcurl) to the node it was pointed
 * at and its -a alternatives, as rqlite's shell client behaves: basic
 * auth, TLS options, the request timeout, redirects followed, and
 * failover: a request that fails at transport level (nothing listening,
 * a timeout, TLS, too many redirects) moves on to the next host in the
 * list, logging each one to stderr, and the client stays on the host that
 * answered.
 */
#ifndef RQ_CLI_CLIENT_H
#define RQ_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/shell.h"
#include "util/buf.h"

typedef struct client client;

/* An answer. body is owned by the caller once a request returned 0. */
typedef struct client_resp {
    long status;
    buf body;
    char version[64];      /* X-RQLITE-VERSION, "unknown" when absent */
    char status_text[128]; /* "200 OK": the status line, as Go's resp.Status */
} client_resp;

/* What a request returns besides 0 (an HTTP answer came back): every host
 * failed; err holds rqlite's "no host available to perform the request". */
#define CLIENT_FAILED -1

/* opts is copied; its strings must outlive the client. The host list is
 * opts' host:port then the alternatives (see client_host_list). */
client *client_new(const shell_opts *opts);
void client_free(client *c);

/* One request to the current host's base URL + path, failing over as
 * described above. body may be NULL (no body); ctype is its Content-Type
 * (application/json when NULL, none when ""). */
int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *ctype, client_resp *r, char *err, size_t errlen);

/* A POST like client_request's, without the -t limit: an upload (.restore,
 * .boot) takes as long as the file and the node's load of it do, as in
 * rqlite, which lifts its timeout for these two. Like rqlite's (a copy of
 * its client), a failover here does not move the client's current host. */
int client_upload(client *c, const char *path, const char *body, size_t len, const char *ctype, client_resp *r,
                  char *err, size_t errlen);

/* GET of a full URL (.sysdump's per-node URLs): no failover, redirects not
 * followed. On a transport failure returns CLIENT_FAILED with Go's words
 * in err ("Get \"URL\": dial tcp ...: connect: connection refused"). */
int client_get_direct(client *c, const char *url, client_resp *r, char *err, size_t errlen);

/* Called during requests with the bytes moved so far and the total when
 * the other side said it (0 otherwise): the upload's while a body is
 * sent, else the download's. */
typedef void (*client_progress_fn)(void *ud, double done, double total);

/* Report the progress of the requests that follow to fn (NULL: stop). */
void client_on_progress(client *c, client_progress_fn fn, void *ud);

/* One GET of path from the current host, for the line editor's table
 * completion: timeout_ms for all of it, connecting included; no failover,
 * nothing logged, the current host unchanged. Returns 0 with r filled, or
 * CLIENT_FAILED. */
int client_get_quick(client *c, const char *path, long timeout_ms, client_resp *r);

/* The host the last request was answered by when it had to leave the
 * current one for it (rqlite's HostChangedError), else NULL. */
const char *client_host_change(const client *c);

/* rqlite's failover list: "host:port" (the host bracketed when it holds a
 * ':'), then each comma-separated entry of alternatives with blanks
 * trimmed, empty ones skipped. Returns the count; *hosts is one
 * allocation the caller frees. */
size_t client_host_list(const char *host, const char *port, const char *alternatives, char ***hosts);

/* Go's http.StatusText for the codes rqlited sends ("" otherwise). */
const char *client_status_text(long code);

#endif
