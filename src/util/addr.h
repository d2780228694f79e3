/*
 * addr: "host:port" strings as flags, peers and the Raft configuration
 * spell them ("localhost:4001", "10.0.0.1:4002", "[::1]:4001", ":4001"),
 * split, checked and resolved in one place.
 */
#ifndef RQ_UTIL_ADDR_H
#define RQ_UTIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Split at the last colon; IPv6 brackets are removed from the host, which
 * may be empty. Returns 0, or -1 (no colon, no port, or a part longer than
 * its buffer). */
int addr_split(const char *addr, char *host, size_t hn, char *port, size_t pn);
/* The numeric port (0-65535) after the last colon, or -1. */
int addr_port(const char *addr);
/* Resolve for binding (passive) or connecting: IPv4 first, as Go does for
 * "localhost", then any family. Returns 0, or -1 with *err (if err). */
int addr_resolve(const char *addr, bool passive, struct sockaddr_storage *ss, socklen_t *len, char **err);
/* addr with its host replaced by an IPv4 address when it is a name (a copy
 * of addr when it is numeric already or cannot be resolved). */
void addr_numeric_ipv4(const char *addr, char *out, size_t n);
/* A socket address as Go's net.JoinHostPort spells it ("127.0.0.1:4001",
 * "[::1]:4001"), for logs and errors; "?" when sa is NULL or of another
 * family. */
void addr_format(const struct sockaddr *sa, char *out, size_t n);

#endif
