/*
 * transport: the Raft port. A raft_uv_transport that accepts libraft's TCP
 * handshake like raft_uv_tcp does, and also answers cluster metadata probes
 * (CLUSTER_META_MAGIC, see cluster/cluster.h) on the same port, so that
 * "-join host:raftport" can find a node's HTTP API, and image requests
 * (CLUSTER_IMAGE_MAGIC), streaming a copy of the database to a follower
 * catching up from a snapshot. Outgoing connections are made by an inner
 * raft_uv_tcp transport.
 *
 * With a tls_ctx (-node-cert/-node-key) everything on the port is TLS:
 * each connection's handshake is made by a thread of the transport's own
 * (verifying the peer as the context says), which then reads the first
 * bytes inside the session and answers the probe or sends the image, or
 * hands a Raft connection to the loop: libraft reads and writes one end of
 * a socketpair, and the loop relays between the other end and the session
 * (see tls/tls.c for why). Refused connections are logged (each reason
 * from each host at most every 10 s).
 */
#ifndef RQ_STORE_TRANSPORT_H
#define RQ_STORE_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tls/tls.h"

/* Image requests (CLUSTER_IMAGE_MAGIC): make a consistent copy of the
 * database and return a descriptor open on it, its size in *size (the
 * transport sends it and closes the descriptor), or -1 with *err set
 * (malloc'd). Called on a thread of the transport's own, never the loop's,
 * possibly on several at once; progress(parg, done, total) may be called
 * while copying (its type is db_progress_fn's, so that it can be passed on). */
typedef void (*transport_progress_fn)(void *parg, long long done_bytes, long long total_bytes);
typedef int (*transport_image_fn)(void *arg, transport_progress_fn progress, void *parg,
                           uint64_t *size, char **err);

/* Initialise t on loop. bind_addr is "host:port" ("localhost" binds
 * 127.0.0.1). meta_json is the one-line JSON answered to probes (copied).
 * image(image_arg, ...) serves image requests; NULL answers them with an
 * error. tls: NULL for a plaintext port, else the node's TLS context
 * (which must outlive the transport). Release with transport_free() after the transport's close
 * callback: it waits for image transfers in progress (closing cut their
 * connections), so image_arg must stay valid until it returns. As in any
 * libuv program, the process must ignore SIGPIPE (a follower hanging up
 * during a transfer is an error, not a signal). */
int transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const char *bind_addr,
                   const char *meta_json, transport_image_fn image, void *image_arg, tls_ctx *tls);
void transport_free(struct raft_uv_transport *t);

/* rqlite's mux counters, any thread: connections to the port whose first
 * bytes named what they want (Raft, probe, image, high-water mark), those
 * that named nothing we know, and TLS handshakes that presented our
 * certificate. */
void transport_mux_counts(struct raft_uv_transport *t, uint64_t *handled, uint64_t *unregistered,
                          uint64_t *tls_certs);

/* CDC high-water marks (CLUSTER_HWM_MAGIC, cluster/cluster.h) go to
 * fn(arg, hwm), which must not block: it is called on the loop's thread
 * (plaintext) or a connection's (TLS). Set before the transport listens. */
typedef void (*transport_hwm_fn)(void *arg, uint64_t hwm);
void transport_set_hwm(struct raft_uv_transport *t, transport_hwm_fn fn, void *arg);

/* Before a brand-new node bootstraps itself: listen on bind_addr for up to
 * timeout_ms, answering metadata probes, and report whether a Raft leader
 * tried to reach us (i.e. the cluster already lists this node, as after a
 * wipe). Runs its own loop, answering image requests with an error;
 * returns 1 if contacted (*contacted_by = the caller's Raft address,
 * malloc'd), 0 if not, -1 if the port cannot be bound (*err set). */
int transport_probe(const char *bind_addr, const char *meta_json, tls_ctx *tls, unsigned timeout_ms,
                    char **contacted_by, char **err);

/* Before a brand-new node with -bootstrap-expect knows its cluster: answer
 * metadata probes on bind_addr (so that nodes given our Raft address as a
 * -join target find our HTTP API) on a thread of its own until stopped.
 * Returns 0 once listening, or -1 with *err set. */
typedef struct transport_responder transport_responder;
int transport_responder_start(const char *bind_addr, const char *meta_json, tls_ctx *tls,
                              transport_responder **out, char **err);
/* Stop listening and free r (NULL: nothing). */
void transport_responder_stop(transport_responder *r);

/* Resolve "host:port" for binding, IPv4 first. Returns 0 on success. */
int transport_resolve_bind(const char *addr, struct sockaddr_storage *ss, char **err);

#endif
