"""No growth without bound: the same mixed traffic, repeated in rounds against a
3-node cluster, must leave every node with the same open descriptors and
about the same resident memory after each round (bounded rounds and
requests; the figures are printed with -s)."""
import os
import time

import requests

from harness import fd_targets, leader_of, poll, proc_mb, tcp_sockets

ROUNDS = int(os.environ.get("RQ_GROWTH_ROUNDS", "12"))
WARM = 3            # rounds that fill caches, pools and the Raft log up to its snapshots
SANITIZED = bool(os.environ.get("RQ_SANITIZED"))
FD_SLACK = 4        # a pooled connection more or less
# Resident memory still rises slowly as the database grows (page caches of the
# connections); 0.2 MB a round is ~180 bytes a request. One malloc arena per
# connection thread, before main() capped them, cost 0.33 MB a round.
RSS_MB_PER_ROUND = 0.2


def usage(node):
    return len(fd_targets(node.proc.pid)), proc_mb(node.proc.pid, "VmRSS")


def connections(node, port):
    """TCP connections of node's process to port (any state but LISTEN)."""
    tcp = tcp_sockets(node.proc.pid)
    mine = [tcp.get(t[8:-1]) for t in fd_targets(node.proc.pid) if t.startswith("socket:[")]
    return len([s for s in mine if s and s[2] == port and s[0] != "LISTEN"])


def round_of_traffic(leader, follower, r):
    """About 1,100 requests of every kind, good and bad, direct and forwarded."""
    keep = requests.Session()  # keep-alive connections as well as fresh ones
    for node in (leader, follower):
        base = node.url
        for i in range(100):
            rv = keep.post(base + "/db/execute", json=[["INSERT INTO t(r, i, v) VALUES (?, ?, ?)", r, i,
                                                         "x" * (i % 50)]], timeout=10)
            assert rv.status_code == 200 and "error" not in rv.json()["results"][0], rv.text
        if node is follower:
            # a hundred writes forwarded for one keep-alive client: the
            # follower keeps no connection to the leader per write
            held = connections(follower, leader.http_port)
            assert held <= 2, "follower holds %d connections to the leader" % held
        rv = requests.post(base + "/db/execute?transaction", json=[
            "UPDATE t SET v = v || 'y' WHERE r = %d" % r, "DELETE FROM t WHERE r = %d AND i %% 10 = 0" % r],
            timeout=10)
        assert rv.status_code == 200, rv.text
        for level in ("none", "weak", "strong", "linearizable"):
            for _ in range(25):
                rv = keep.get(base + "/db/query", params={"q": "SELECT COUNT(*), MAX(v) FROM t",
                                                          "level": level}, timeout=10)
                assert rv.status_code == 200, rv.text
        rv = keep.post(base + "/db/request?associative", json=["SELECT * FROM t WHERE r = %d" % r,
                                                                "INSERT INTO t(r, i, v) VALUES (-1, 0, 'q')"],
                       timeout=10)
        assert rv.status_code == 200, rv.text
        for i in range(30):
            rv = keep.post(base + "/db/execute?queue", json=[["INSERT INTO q(v) VALUES (?)", i]], timeout=10)
            assert rv.status_code == 200, rv.text
        # bad input of every sort: errors, never a crash or a leak
        bad = [("post", "/db/execute", b"{not json"), ("post", "/db/execute", b'["INSERT INTO nope VALUES (1)"]'),
               ("post", "/db/query", b'["SELEC 1"]'), ("get", "/db/query?q=SELECT+1&level=bogus", None),
               ("post", "/db/execute", b'[["INSERT INTO t(r) VALUES (?)", {"a": 1}]]'),
               ("get", "/nope", None), ("post", "/db/load", b"garbage that is not a database")]
        for _ in range(10):
            for method, path, body in bad:
                rv = getattr(requests, method)(base + path, data=body, timeout=10)
                assert rv.status_code < 500 or rv.status_code == 503, (path, rv.status_code, rv.text)
        for path in ("/status", "/nodes", "/readyz", "/db/backup", "/db/backup?fmt=sql"):
            for _ in range(5):
                rv = requests.get(base + path, timeout=10)
                assert rv.status_code == 200, (path, rv.status_code)
    keep.close()


def test_descriptors_and_memory_do_not_grow(cluster):
    nodes = cluster.start_three(["-raft-snap", "256", "-raft-snap-int", "1s"])
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    leader.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, r INT, i INT, v TEXT)",
                    "CREATE TABLE q (id INTEGER PRIMARY KEY, v INT)"])
    seen = {n.id: [] for n in nodes}
    t0 = time.monotonic()
    for r in range(ROUNDS):
        round_of_traffic(leader, follower, r)
        # idle point: queued writes flushed and applied everywhere
        want = leader.count("q", level="strong")
        for n in nodes:
            poll(lambda: n.count("q") == want, what="queued writes applied on node %s" % n.id)
        for n in nodes:
            seen[n.id].append(usage(n))
    print("\n%d rounds in %.1fs" % (ROUNDS, time.monotonic() - t0))
    for n in nodes:
        print("node %s: descriptors %s; resident MB %s" % (
            n.id, " ".join(str(f) for f, _ in seen[n.id]), " ".join("%.1f" % m for _, m in seen[n.id])))
    for n in nodes:
        s = seen[n.id]
        base_fds = max(f for f, _ in s[:WARM])
        assert max(f for f, _ in s[WARM:]) <= base_fds + FD_SLACK, \
            "node %s descriptors grew: %r" % (n.id, [f for f, _ in s])
        if not SANITIZED:
            per_round = (s[-1][1] - s[WARM - 1][1]) / (len(s) - WARM)
            assert per_round <= RSS_MB_PER_ROUND, \
                "node %s resident memory grew %.2f MB a round: %r" % (
                    n.id, per_round, ["%.1f" % m for _, m in s])
