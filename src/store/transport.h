/*
 * transport: the Raft port. A raft_uv_transport that accepts libraft's TCP
 * handshake like raft_uv_tcp does, and also answers cluster metadata probes
 * (CLUSTER_META_MAGIC, see cluster/cluster.h) on the same port, so that
 * "-join host:raftport" can find a node's HTTP API. Outgoing connections are
 * made by an inner raft_uv_tcp transport.
 */
#ifndef RQ_STORE_TRANSPORT_H
#define RQ_STORE_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

/* Initialise t on loop. bind_addr is "host:port" ("localhost" binds
 * 127.0.0.1). meta_json is the one-line JSON answered to probes (copied).
 * Release with rq_transport_free() after the transport's close callback. */
int rq_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      const char *bind_addr, const char *meta_json);
void rq_transport_free(struct raft_uv_transport *t);

/* Before a brand-new node bootstraps itself: listen on bind_addr for up to
 * timeout_ms, answering metadata probes, and report whether a Raft leader
 * tried to reach us (i.e. the cluster already lists this node, as after a
 * wipe). Runs its own loop; returns 1 if contacted (*contacted_by = the
 * caller's Raft address, malloc'd), 0 if not, -1 if the
 * port cannot be bound (*err set). */
int rq_transport_probe(const char *bind_addr, const char *meta_json,
                       unsigned timeout_ms, char **contacted_by, char **err);

/* Resolve "host:port" for binding, IPv4 first. Returns 0 on success. */
int rq_resolve_bind(const char *addr, struct sockaddr_storage *ss, char **err);

#endif
