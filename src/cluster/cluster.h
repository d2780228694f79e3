/*
 * cluster: node-to-node HTTP, over libcurl.
 *
 * - Joining: cluster_join() asks the cluster, through any node, to add this
 *   node, following 301 redirects to the leader, retrying per -join-attempts
 *   and -join-interval. Join targets are either an HTTP API URL
 *   ("http://host:4001", the seed's form; a bare "host:port" that answers HTTP
 *   is treated the same) or a Raft address ("host:4002", rqlite v8+), which is
 *   resolved to the node's API URL by asking it over the Raft port. An
 *   http:// address that answers 400 is tried again over https:// (rqlite
 *   v6), and a bare API address is taken to speak what this node speaks.
 * - Forwarding: cluster_forward() replays an HTTP request on the leader and
 *   returns its answer verbatim.
 * - The Raft port's other services, as a client: metadata probes
 *   (cluster_api_url) and database images (cluster_fetch_image), inside
 *   TLS when the node runs with -node-cert (cfg->node_tls).
 * - Credentials: with -auth and -join-as, this node's own requests (join,
 *   notify, the leader check of -bootstrap-expect) go as the -join-as user;
 *   forwarded requests carry their client's Authorization instead.
 */
#ifndef RQ_CLUSTER_CLUSTER_H
#define RQ_CLUSTER_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "tls/tls.h"
#include "util/buf.h"

/* First 8 bytes a client sends on the Raft port to ask for a node's metadata
 * instead of speaking Raft (libraft's handshake starts with the 64-bit
 * little-endian protocol number 1, so the two cannot be confused). The node
 * answers one JSON line {"id":..,"addr":..,"api_addr":"http://..."} and
 * closes the connection. */
#define CLUSTER_META_MAGIC "RQMETA\r\n"

/* First 8 bytes a node sends on the Raft port to ask for a consistent copy
 * of the node's SQLite file, Raft index included (a follower catching up
 * from a snapshot, store/fetch.c). Node-to-node traffic only: the HTTP API does
 * not serve it. The node answers with 24-byte headers, each an 8-byte tag
 * and two 64-bit little-endian numbers a, b:
 *   "RQIMGCP\n" done total  still copying (about once a second meanwhile, so
 *                           that a slow copy is not taken for a dead node);
 *   "RQIMGOK\n" size size   the copy follows: exactly size bytes, then the
 *                           node closes the connection;
 *   "RQIMGER\n" len 0       it failed: len (at most 4096) bytes of error text
 *                           follow, then the node closes the connection.
 * A transfer that ends before size bytes is truncated, and fails. */
#define CLUSTER_IMAGE_MAGIC "RQIMAGE\n"
#define CLUSTER_IMAGE_COPYING "RQIMGCP\n"
#define CLUSTER_IMAGE_OK "RQIMGOK\n"
#define CLUSTER_IMAGE_ERROR "RQIMGER\n"
#define CLUSTER_IMAGE_HEADER 24
#define CLUSTER_IMAGE_MAX_ERROR 4096

/* First 8 bytes the CDC leader sends on the Raft port to tell a voter its
 * high-water mark (-cdc-config, cdc/cdc.h): every change event up to that
 * Raft index was delivered, so the voter may drop them from its queue.
 * Kept out of the Raft log on purpose, as rqlite does (its cluster
 * service's HWM broadcast): a log entry per mark would itself be an entry
 * to apply. The sender follows the magic with the mark (64-bit little
 * endian) and 8 zero bytes (reserved); the node answers CLUSTER_HWM_OK
 * and closes the connection. Inside TLS with node TLS, as everything on
 * the port. */
#define CLUSTER_HWM_MAGIC "RQCDCHWM"
#define CLUSTER_HWM_OK "RQHWMOK\n"

/* Before any other call: the settings HTTPS to other nodes uses
 * (-http-ca-cert to verify them, -http-cert and -http-key to present when
 * asked for a client certificate). cfg must outlive every request. Without
 * it, https:// URLs are verified against the system's roots. */
void cluster_init(const config *cfg);

/* Join through targets (-join values, or NULL for cfg->join). reset: this
 * node has no state (new or wiped), so the leader must re-add it even if it
 * is already a member. Returns 0 once joined, -1 after all attempts failed
 * (*err set). */
int cluster_join(const config *cfg, char *const *targets, int n_targets, bool reset, char **err);

typedef struct cluster_response {
    long status;          /* HTTP status, 0 if the request failed */
    buf body;
    char content_type[128];
} cluster_response;

/* method "GET"/"POST"/"DELETE"; url is the leader's API base
 * ("http://host:port") + path + "?" + query. Returns 0 when an HTTP answer
 * came back (whatever its status), -1 on transport failure (*err set). */
int cluster_forward(const char *method, const char *url, const char *body,
                    size_t body_len, const char *content_type,
                    const char *authorization, uint64_t timeout_ms,
                    cluster_response *resp, char **err);
/* cluster_forward for a request that only reads, whatever its method
 * (POST /db/query): it may use the shared keep-alive pool, as GETs do. */
int cluster_forward_read(const char *method, const char *url, const char *body, size_t body_len,
                         const char *content_type, const char *authorization, uint64_t timeout_ms,
                         cluster_response *resp, char **err);
void cluster_response_free(cluster_response *resp);
/* rqlite's num_client_force_new_conn: forwarded reads that found their
 * pooled connection stale (the node behind it restarted). */
uint64_t cluster_force_new_conns(void);

/* rqlite's "cluster" counters that have a counterpart here, process-wide
 * (any thread, relaxed atomics): node-to-node requests served on the Raft
 * port (counted by the transport) and this node's HTTP client's timeouts. */
enum {
    CLUSTER_STAT_GET_NODE_API_REQ,   /* metadata probes received */
    CLUSTER_STAT_GET_NODE_API_RESP,  /* ... and answered in full */
    CLUSTER_STAT_BROADCAST_HWM_REQ,  /* CDC high-water marks received */
    CLUSTER_STAT_CLIENT_READ_TIMEOUTS, /* requests to other nodes that timed out */
    CLUSTER_STAT_CONN_REJECTED,      /* connections to the Raft port refused */
    CLUSTER_STAT_N
};
void cluster_stat(int which);
/* rqlite's "cluster" expvar map (a new object, caller owns), every key but
 * num_join_req and num_notify_req, which the HTTP layer counts and adds. */
json_t *cluster_vars(void);

/* The Authorization header value of this node's own requests to others
 * (join, notify, remove on shutdown): "Basic ..." for the -join-as user and
 * its password in the -auth file, read anew each time (a reload may change
 * it); malloc'd, free with auth_free_secret(). NULL without -join-as, or
 * when the user is no longer in the file (logged). */
char *cluster_own_authorization(const config *cfg);

/* -bootstrap-expect: tell target (a -join value) that this node exists
 * (POST /notify {"id","addr","api_addr"}). 0 when it answered 200. */
int cluster_notify(const config *cfg, const char *target, char **err);
/* Is target part of a cluster with a leader already (its /readyz is 200)? */
bool cluster_target_has_leader(const config *cfg, const char *target);

/* Ask the node behind a Raft address for its API base URL (metadata probe
 * over the Raft port; inside TLS with tls, NULL for plaintext). Returns a
 * malloc'd "http://host:port" (https:// for a node serving HTTPS), or NULL
 * with *err set if err is not NULL; *refused (if not NULL) then says
 * whether TLS verification failed, its certificate refused by us or ours
 * by it, rather than the address not answering as a Raft port. */
char *cluster_api_url(tls_ctx *tls, const char *raft_addr, uint64_t timeout_ms, bool *refused, char **err);

/* Fetch a consistent copy of the SQLite file of the node whose Raft port is
 * raft_addr (CLUSTER_IMAGE_MAGIC; inside TLS with tls) into a new file at path, fsynced. It is
 * streamed to disk: memory does not depend on the size. progress(arg,
 * copying, done, total) is called about once a second, with copying true
 * while the node is still making its copy; a nonzero return abandons the
 * transfer. A node that sends nothing for 30 s is given up on. Returns 0
 * (*bytes = the size), or -1 with *err set (the file is removed). */
/* Send high-water mark hwm to the node whose Raft port is raft_addr
 * (CLUSTER_HWM_MAGIC; inside TLS with tls). 0 once it acknowledged, or -1
 * with *err set. */
int cluster_send_hwm(tls_ctx *tls, const char *raft_addr, uint64_t hwm, uint64_t timeout_ms, char **err);

typedef int (*cluster_image_progress_fn)(void *arg, bool copying, long long done_bytes,
                                         long long total_bytes);
int cluster_fetch_image(tls_ctx *tls, const char *raft_addr, const char *path,
                        cluster_image_progress_fn progress, void *arg, long long *bytes, char **err);

#endif
