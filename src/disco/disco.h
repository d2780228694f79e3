/*
 * disco: rqlite's DNS-based node discovery (-disco-mode dns, dns-srv), a
 * source of Raft addresses that main.c uses as -join targets, looked up
 * again on every round of -bootstrap-expect or of joining.
 *
 *   dns:     {"name": "rqlite.local", "port": 4002}: every address the
 *            name resolves to, with the port (default: our own Raft port).
 *   dns-srv: {"name": "rqlite.local", "service": "rqlite-raft"}: the SRV
 *            records of _service._tcp.name, as host:port.
 *
 * RQLITE_DISCO_DNS_HOSTS (host:port,host:port) replaces the lookup for dns
 * mode, as in rqlite (its e2e tests run several nodes on one host that way).
 * The KV modes (consul-kv, etcd-kv) are not supported: the node refuses
 * to start with them rather than run without the discovery it was told to use.
 */
#ifndef RQ_DISCO_H
#define RQ_DISCO_H

#include <jansson.h>

#include "config.h"

#define DISCO_MAX_TARGETS CONFIG_MAX_JOIN

typedef struct disco disco;

/* From -disco-mode and -disco-config (JSON text, or a path to a file of
 * it). NULL in *out when no mode is set. Returns 0, or -1 with *err set
 * (unknown or unsupported mode, unreadable or invalid configuration). */
int disco_new(const config *cfg, disco **out, char **err);
void disco_free(disco *d);

/* Look the targets up now: up to DISCO_MAX_TARGETS malloc'd "host:port"
 * strings into targets; returns how many (0 when nothing resolves: try
 * again later), *err set (malloc'd) when the lookup failed. */
int disco_lookup(disco *d, char **targets, char **err);

/* /status "disco": mode and configuration, as rqlite reports them. */
json_t *disco_status(const disco *d);

#endif
