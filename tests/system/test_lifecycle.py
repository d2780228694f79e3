"""Cluster lifecycle on real processes: large databases (catch-up of a wiped
follower from a streamed snapshot, restart without replay), identity checks,
crash restarts applying every entry exactly once."""
import json
import os
import signal
import threading
import time
import zlib

import pytest
import requests

from harness import free_port, leader_of, poll, proc_mb, wait_members

BIG_MB = int(os.environ.get("RQ_BIG_MB", "200"))
# ASan's shadow memory and quarantine make RSS meaningless (make asan test).
SANITIZED = bool(os.environ.get("RQ_SANITIZED"))


def vm_hwm_mb(node):
    """Peak resident memory of a node's process so far (MB)."""
    return proc_mb(node.proc.pid, "VmHWM")


def execute_through_leader_changes(node, stmts, timeout=120):
    """node.execute, tried again after a 503 (no leader known: nothing was
    proposed). Snapshots of these tests' hundreds of MB checkpoint the WAL
    on the Raft thread, and on a loaded machine a leader can lose its lease
    meanwhile; what these tests measure is catch-up and restart, not that."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return node.execute(stmts, timeout=timeout)
        except requests.HTTPError as e:
            if e.response.status_code != 503 or time.monotonic() > deadline:
                raise
            poll(lambda: node.status()["store"]["leader"].get("node_id"), what="a leader again")


def fill(node, mb):
    """Grow the database by about mb MB in 10 MB entries (one statement each:
    the log stays small, every node generates the same pages)."""
    node.execute(["CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, v BLOB)"])
    for _ in range(max(1, mb // 10)):
        execute_through_leader_changes(node, ["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT "
                                              "1000) INSERT INTO big(v) SELECT randomblob(10000) FROM c"])


def test_large_database_catch_up_and_restart(cluster):
    """A wiped follower of a BIG_MB database comes back from a snapshot
    streamed to disk (peak RSS far below the database size), and a node
    restarts on the same data without replaying or copying it."""
    n1, n2, n3 = cluster.start_three(["-raft-snap", "4", "-raft-snap-int", "1s"])
    leader = leader_of([n1, n2, n3])
    t0 = time.monotonic()
    fill(leader, BIG_MB)
    rows = leader.count("big", level="strong")  # whoever leads now
    print("\nloaded %d rows (%d MB) in %.1fs" % (rows, BIG_MB, time.monotonic() - t0))
    # a snapshot that compacted the log past the start: a wiped node needs it
    poll(lambda: leader.status()["store"]["raft"]["first_log_index"] > 1, what="the log compacted")
    victim = [n for n in (n2, n3) if n is not leader][0]
    poll(lambda: victim.count("big") == rows, timeout=120, what="rows on the victim")
    victim.kill()
    victim.wipe()
    # more writes so that the victim's log position is gone from the leader's log
    for i in range(12):
        execute_through_leader_changes(leader, [["INSERT INTO big(v) VALUES(?)", "after %d" % i]])
    db_size = os.path.getsize(os.path.join(leader.dir, "db.sqlite"))
    t0 = time.monotonic()
    victim.start(join=leader.url)
    poll(lambda: victim.count("big") == rows + 12, timeout=300, what="wiped follower caught up")
    catch_up = time.monotonic() - t0
    hwm = vm_hwm_mb(victim)
    logs = victim.logs()
    assert "snapshot transfer done" in logs
    print("wiped follower: %.0f MB caught up in %.2fs (%.0f MB/s), peak RSS %.1f MB; leader peak RSS %.1f MB"
          % (db_size / 1e6, catch_up, db_size / 1e6 / catch_up, hwm, vm_hwm_mb(leader)))
    if not SANITIZED:
        assert hwm < 100, "peak RSS %.1f MB while catching up %d MB" % (hwm, BIG_MB)
        assert vm_hwm_mb(leader) < 150
    same = "SELECT COUNT(*), SUM(LENGTH(v)), MAX(id) FROM big"
    want = leader.query(same, level="strong")["results"][0]["values"]
    assert victim.query(same, level="none")["results"][0]["values"] == want

    # restart on the same data: no transfer, no replay of the big entries
    victim.stop()
    t0 = time.monotonic()
    victim.start().wait_ready()
    poll(lambda: victim.count("big") == rows + 12, what="restarted follower")
    restart = time.monotonic() - t0
    print("restart with %.0f MB: ready in %.2fs, peak RSS %.1f MB" % (db_size / 1e6, restart, vm_hwm_mb(victim)))
    assert victim.logs().count("snapshot transfer done") == 1
    assert "already holds index" in victim.logs()
    assert victim.query(same, level="none")["results"][0]["values"] == want
    assert restart < 20
    assert SANITIZED or vm_hwm_mb(victim) < 100

    # a gzipped backup is compressed as it is sent: memory does not follow the size
    z = zlib.decompressobj(16 + zlib.MAX_WBITS)
    raw = 0
    head = b""
    with requests.get(victim.url + "/db/backup?compress&noleader", stream=True, timeout=300) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(1 << 20):
            out = z.decompress(chunk)
            head = head or out[:16]
            raw += len(out)
    raw += len(z.flush())
    assert head == b"SQLite format 3\x00" and z.eof
    assert raw >= db_size * 0.9
    print("gzipped backup of %.0f MB, peak RSS %.1f MB" % (raw / 1e6, vm_hwm_mb(victim)))
    assert SANITIZED or vm_hwm_mb(victim) < 100


def test_data_directory_identity(cluster):
    """Restarting a data directory under another node ID is refused with a
    clear message; under another Raft address it is accepted (rqlite's, and
    Kubernetes', restarts rely on it) and recorded; the data is kept."""
    n1 = cluster.node(1).start().wait_ready()
    n1.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    n1.stop()
    real_id = n1.id
    n1.id = "other"
    n1.start()
    assert n1.wait_exit(20) != 0
    assert "belongs to node ID 1, not other" in n1.logs()
    n1.id = real_id
    old_raft = n1.raft_addr
    n1.raft_port = free_port()
    n1.start().wait_ready()
    assert "Raft address changed from %s to %s" % (old_raft, n1.raft_addr) in n1.logs()
    assert n1.count("t") == 1
    n1.execute(["INSERT INTO t VALUES (2)"])
    n1.stop()
    with open(os.path.join(n1.dir, "raft", "rqnode.json")) as f:
        assert json.load(f)["addr"] == n1.raft_addr
    n1.start().wait_ready()
    assert n1.count("t") == 2


@pytest.mark.parametrize("snap", [False, True])
def test_single_node_records_its_new_raft_address(cluster, snap):
    """A single-node cluster restarted with another Raft address has nobody
    to tell: it records the address in its configuration itself (from the
    last change entry in its log, or, once the log is compacted, from its
    snapshot), so /nodes shows it and a node joining later can reach it."""
    n1 = cluster.node(1, ["-raft-snap", "4", "-raft-snap-int", "1s"] if snap else []).start().wait_ready()
    n1.execute(["CREATE TABLE t (v)"])
    for i in range(12 if snap else 1):
        n1.execute([["INSERT INTO t VALUES (?)", i]])
    if snap:  # compacted past the first configuration (index 1)
        poll(lambda: n1.status()["store"]["raft"]["first_log_index"] > 1, what="the log compacted")
    for _ in range(2):  # the second time, from the configuration the first wrote
        n1.stop()
        n1.raft_port = free_port()
        n1.start().wait_ready()
        assert "recorded its new Raft address %s" % n1.raft_addr in n1.logs()
        assert [x["addr"] for x in n1.nodes()] == [n1.raft_addr]
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    wait_members(n1, 2)
    n1.execute(["INSERT INTO t VALUES (99)"])
    poll(lambda: n2.count("t") == (13 if snap else 2), what="replication to the node that joined")


def member(node, of):
    """node's entry in of's /nodes (None if not listed)."""
    for x in of.nodes():
        if x["id"] == node.id:
            return x
    return None


def test_follower_restarted_with_new_addresses(cluster):
    """A follower restarted with another Raft and HTTP address, without
    -join, has the leader re-add it under the new Raft address and record
    the new API address; writes reach it, and it forwards to the leader."""
    n1, n2, n3 = cluster.start_three()
    leader = leader_of([n1, n2, n3])
    f = [n for n in (n1, n2, n3) if n is not leader][0]
    leader.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    f.stop()
    f.raft_port, f.http_port = free_port(), free_port()
    f.start().wait_ready()
    poll(lambda: (member(f, leader) or {}).get("addr") == f.raft_addr, what="the new Raft address in /nodes")
    poll(lambda: (member(f, leader) or {}).get("api_addr") == f.url, what="the new API address in /nodes")
    leader.execute(["INSERT INTO t VALUES (2)"])
    poll(lambda: f.count("t") == 2, what="the write on the moved follower")
    f.execute(["INSERT INTO t VALUES (3)"])  # forwarded to the leader
    poll(lambda: leader.count("t") == 3, what="the forwarded write")
    assert requests.get(leader.url + "/debug/vars", timeout=10).json()["store"]["num_removed_before_joins"] == 1
    # Only the HTTP address changes: the node tells the leader once caught up.
    f.stop()
    f.http_port = free_port()
    f.start().wait_ready()
    poll(lambda: (member(f, leader) or {}).get("api_addr") == f.url, what="the second API address in /nodes")
    assert "HTTP API address changed" in f.logs()
    assert (member(f, leader) or {}).get("addr") == f.raft_addr


def test_follower_rejoins_with_new_addresses_through_join(cluster):
    """rqlite's test_change_addresses: a follower restarted with new
    addresses and -join is removed and re-added (num_removed_before_joins),
    and catches up with what was written while it was down."""
    n1, n2, n3 = cluster.start_three()
    leader = leader_of([n1, n2, n3])
    f = [n for n in (n1, n2, n3) if n is not leader][0]
    leader.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    poll(lambda: f.count("t") == 1, what="the first row on the follower")
    f.stop()
    leader.execute(["INSERT INTO t VALUES (2)"])
    f.raft_port, f.http_port = free_port(), free_port()
    f.start(join=leader.raft_addr).wait_ready()
    poll(lambda: f.count("t") == 2, what="the catch-up")
    assert requests.get(leader.url + "/debug/vars", timeout=10).json()["store"]["num_removed_before_joins"] == 1
    assert (member(f, leader) or {}).get("addr") == f.raft_addr


def test_kill9_under_load_applies_each_write_once(cluster):
    """Nodes killed -9 while writes (plain and with their own BEGIN/COMMIT)
    stream in restart with exactly the acknowledged rows, each once, and
    agree with each other."""
    n1, n2, n3 = cluster.start_three()
    leader = leader_of([n1, n2, n3])
    leader.execute(["CREATE TABLE k (id INTEGER PRIMARY KEY, w INT, n INT, UNIQUE(w, n))"])
    acked = set()
    lock = threading.Lock()
    stop = threading.Event()
    nodes = [n1, n2, n3]

    def writer(w):
        n = 0
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and n < 2000:
            n += 1
            if n % 5 == 0:
                stmts = ["BEGIN", "INSERT INTO k(w, n) VALUES (%d, %d)" % (w, n), "COMMIT"]
            else:
                stmts = ["INSERT INTO k(w, n) VALUES (%d, %d)" % (w, n)]
            for node in nodes:
                try:
                    r = requests.post(node.url + "/db/execute", json=stmts, timeout=5)
                    res = r.json().get("results", []) if r.status_code == 200 else []
                    if res and not any("error" in x for x in res):
                        with lock:
                            acked.add((w, n))
                        break
                    if res and any("UNIQUE" in x.get("error", "") for x in res):
                        with lock:  # an earlier try was applied after all
                            acked.add((w, n))
                        break
                except (requests.RequestException, ValueError):
                    continue
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        for victim in (n2, n3, n1):
            poll(lambda: len(acked) > 50, what="writes flowing")
            before = len(acked)
            victim.signal(signal.SIGKILL)
            victim.wait_exit(10)
            poll(lambda: len(acked) > before + 30, what="writes continue without the victim")
            victim.start().wait_ready()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    for n in nodes:
        n.wait_ready()
    leader = leader_of(nodes)
    q = "SELECT w, n FROM k ORDER BY w, n"
    rows = leader.query(q, level="strong")["results"][0]["values"]
    got = {(w, n) for w, n in rows}
    assert len(rows) == len(got)  # UNIQUE(w, n) too: nothing applied twice
    assert acked <= got, "acknowledged writes missing: %r" % sorted(acked - got)[:10]
    for n in nodes:
        poll(lambda: n.query(q, level="none")["results"][0].get("values") == rows, timeout=30,
             what="node %s converged" % n.id)
    print("\n%d acknowledged writes, %d rows, 3 nodes killed -9 in turn" % (len(acked), len(rows)))


@pytest.mark.parametrize("by", ["url", "raft_addr"])
def test_bootstrap_expect(cluster, by):
    """Three nodes started at once with -bootstrap-expect 3 and the same
    -join list (HTTP URLs, or Raft addresses as rqlite v8+ uses: the Raft
    port answers from the start) form one cluster, whichever starts first;
    a fourth started later the same way joins it; a restart keeps the
    cluster."""
    nodes = [cluster.node(i) for i in (1, 2, 3)]
    joins = ",".join(getattr(n, by) for n in nodes)
    for n in reversed(nodes):
        n.extra += ["-bootstrap-expect", "3"]
        n.start(join=joins)
    for n in nodes:
        n.wait_ready()
    leader = leader_of(nodes)
    wait_members(leader, 3)
    assert all(x["api_addr"] for x in leader.nodes())
    leader.execute(["CREATE TABLE b (v)", "INSERT INTO b VALUES (1)"])
    for n in nodes:
        poll(lambda: n.count("b") == 1, what="row on node %s" % n.id)
    # one cluster: one leader, each node lists all three
    assert sum(1 for n in nodes if n.is_leader()) == 1
    n4 = cluster.node(4, ["-bootstrap-expect", "3"]).start(join=joins)
    n4.wait_ready()
    wait_members(leader, 4)
    poll(lambda: n4.count("b") == 1, what="row on the late node")
    assert "already has a leader, joining it" in n4.logs()
    # Each of the three bootstrapped with the other two, or, when one of them
    # had already done so and leads, joined it (a race the start order decides;
    # the outcome is the same one cluster, checked above).
    outcomes = [("bootstrapped a cluster of 3 nodes" in n.logs(), "already has a leader, joining it" in n.logs())
                for n in nodes]
    assert all(b != j for b, j in outcomes), outcomes
    assert any(b for b, _ in outcomes), outcomes
    # a follower's restart: state is kept, no second bootstrap
    f = [n for n in nodes if n is not leader][0]
    f.stop()
    bootstrapped = f.logs().count("bootstrapped a cluster of 3 nodes")
    f.start(join=joins).wait_ready()  # the same command
    assert f.logs().count("bootstrapped a cluster of 3 nodes") == bootstrapped
    assert "preexisting node state detected, joining again through the join addresses" in f.logs()
    poll(lambda: f.count("b") == 1, what="row after restart")


def test_peers_json_recovers_lost_quorum(cluster):
    """rqlite's peers.json procedure: a 3-node cluster loses two nodes for
    good; the survivor restarted with peers.json listing only itself leads
    again with all the data; a bad peers.json is refused clearly."""
    import json
    nodes = cluster.start_three()
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE p (v)", "INSERT INTO p VALUES (1)", "INSERT INTO p VALUES (2)"])
    survivor = nodes[1]
    poll(lambda: survivor.count("p") == 2, what="rows on the survivor")
    for n in nodes:
        n.kill()
    peers = os.path.join(survivor.dir, "raft", "peers.json")
    with open(peers, "w") as f:
        f.write("[{\"id\": \"9\"}]")
    survivor.start()
    assert survivor.wait_exit(20) != 0
    assert "needs \"id\" and \"address\"" in survivor.logs()
    with open(peers, "w") as f:
        json.dump([{"id": survivor.id, "address": survivor.raft_addr, "non_voter": False}], f)
    survivor.start().wait_ready()
    poll(survivor.is_leader, what="the survivor leads alone")
    assert "node recovered successfully" in survivor.logs()
    assert not os.path.exists(peers) and os.path.exists(peers[:-4] + "info")
    survivor.execute(["INSERT INTO p VALUES (3)"])
    assert survivor.query("SELECT SUM(v) FROM p", level="strong")["results"][0]["values"] == [[6]]
    assert [x["id"] for x in survivor.nodes()] == [survivor.id]
    # restarts normally afterwards
    survivor.stop()
    survivor.start().wait_ready()
    poll(survivor.is_leader, what="leader after restart")
    assert survivor.count("p") == 3


def test_remove_on_shutdown(cluster):
    """-raft-cluster-remove-shutdown: a follower, then the leader, leave the
    cluster when stopped; the last node carries on alone and writable."""
    nodes = cluster.start_three(["-raft-cluster-remove-shutdown=true"])
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE r (v)", "INSERT INTO r VALUES (1)"])
    follower = [n for n in nodes if n is not leader][0]
    follower.stop()
    assert "removed this node (%s) from the cluster" % follower.id in follower.logs()
    poll(lambda: len(leader.nodes()) == 2, what="follower removed")
    rest = [n for n in nodes if n is not leader and n is not follower][0]
    leader.stop()
    assert "removed this node (%s) from the cluster" % leader.id in leader.logs()
    poll(rest.is_leader, what="the last node leads")
    poll(lambda: [x["id"] for x in rest.nodes()] == [rest.id], what="cluster of one")
    rest.execute(["INSERT INTO r VALUES (2)"])
    assert rest.count("r") == 2


def test_reaping_unreachable_nodes(cluster):
    """With -raft-reap-node-timeout / -raft-reap-read-only-node-timeout the
    leader removes a voter and a non-voter that stay unreachable."""
    reap = ["-raft-reap-node-timeout", "2s", "-raft-reap-read-only-node-timeout", "1s"]
    nodes = cluster.start_three(reap)
    ro = cluster.node(4, reap + ["-raft-non-voter=true"]).start(join=nodes[0].url).wait_ready()
    leader = leader_of(nodes)
    poll(lambda: len(leader.nodes()) == 4, what="4 nodes")
    victim = [n for n in nodes if n is not leader][0]
    ro.kill()
    victim.kill()
    poll(lambda: sorted(x["id"] for x in leader.nodes()) ==
         sorted(n.id for n in nodes if n is not victim), timeout=30, what="both reaped")
    logs = leader.logs()
    assert "reaping non-voting node 4" in logs
    assert "reaping voting node %s" % victim.id in logs
    leader.execute(["CREATE TABLE ok (v)"])  # quorum of the 2 remaining voters


def test_bulk_requests_keep_memory_bounded(cluster):
    """150 MB written as 1 MB requests: the log is snapshotted by size
    (-raft-snap-wal-size) and trimmed by size, so no node holds the log in
    memory (libraft keeps its log in RAM)."""
    # RQ_TEST_EXTRA="-raft-snap-wal-size 0" shows the test failing (~165 MB)
    nodes = cluster.start_three(os.environ.get("RQ_TEST_EXTRA", "").split())
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)"])
    # Random text: a request of repeated values would be compressed (LZ4)
    # to almost nothing, and the log would not grow by size at all.
    import base64
    for i in range(150):
        rows = [base64.b64encode(os.urandom(7500)).decode() for _ in range(100)]
        leader.execute([["INSERT INTO m(v) VALUES(?)", v] for v in rows], timeout=60)
    for n in nodes:
        poll(lambda: n.count("m") == 15000, timeout=60, what="rows on node %s" % n.id)
    peaks = [vm_hwm_mb(n) for n in nodes]
    print("\npeak RSS after 150 MB of 1 MB requests: %s MB" % ", ".join("%.0f" % p for p in peaks))
    assert SANITIZED or max(peaks) < 100, peaks
    assert leader.status()["store"]["raft"]["last_snapshot_index"] > 0


def test_graceful_leader_shutdown_hands_over(cluster):
    """Ctrl-C on the leader transfers leadership before stopping: with a 5 s
    election timeout, writes resume far sooner than an election could
    happen (without the hand-over they would wait >= 5 s)."""
    nodes = cluster.start_three(["-raft-election-timeout", "5s"])
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE g (v)"])
    others = [n for n in nodes if n is not leader]
    t0 = time.monotonic()
    leader.signal(signal.SIGINT)

    def write():
        for n in others:
            try:
                r = requests.post(n.url + "/db/execute", json=["INSERT INTO g VALUES (1)"], timeout=2)
                if r.status_code == 200 and "error" not in r.json()["results"][0]:
                    return True
            except requests.RequestException:
                pass
        return False
    poll(write, timeout=30, what="a write after the leader's shutdown")
    pause = time.monotonic() - t0
    print("\nwrites paused %.2fs while the leader handed over (election timeout 5s)" % pause)
    assert leader.wait_exit(20) == 0
    assert "stepping down as leader before shutdown" in leader.logs()
    assert pause < 4.0


def snapshots_taken(node):
    return requests.get(node.url + "/debug/vars", timeout=10).json()["store"]["num_snapshots"]


def test_snapshot_interval_decides_when_to_snapshot(cluster):
    """-raft-snap-int: every interval (staggered: one to two of them) the
    node checks whether -raft-snap entries were applied since its last
    snapshot, and only then takes one, as rqlite does. With a 6 s interval
    none is taken before 6 s have passed since the start, however far past
    the threshold the log is; with 300 ms one follows within a second or so."""
    slow = cluster.node(1, ["-raft-snap", "10", "-raft-snap-int", "6s"])
    t_slow = time.monotonic()
    slow.start()
    fast = cluster.node(2, ["-raft-snap", "10", "-raft-snap-int", "300ms"]).start()
    for n in (slow, fast):
        n.wait_ready()
        n.execute(["CREATE TABLE s (v)"])
        for i in range(30):
            n.execute([["INSERT INTO s VALUES (?)", i]])
    assert time.monotonic() - t_slow < 5.0, "too slow a start to tell the intervals apart"
    t_fast = time.monotonic()
    poll(lambda: snapshots_taken(fast) >= 1, timeout=10, what="a snapshot on the 300 ms node")
    print("\n300 ms interval: snapshot %.2fs after the writes" % (time.monotonic() - t_fast))
    assert fast.status()["store"]["raft"]["last_snapshot_index"] >= 30
    # the 6 s node: 30+ entries past its threshold, and no snapshot until 6 s
    # after it started (sampled until just before then)
    while time.monotonic() - t_slow < 5.5:
        assert snapshots_taken(slow) == 0, "snapshot %.1fs after start" % (time.monotonic() - t_slow)
        assert slow.status()["store"]["raft"]["last_snapshot_index"] == 0
    poll(lambda: snapshots_taken(slow) >= 1, timeout=15, what="a snapshot on the 6 s node")
    took = time.monotonic() - t_slow
    print("6 s interval: snapshot %.1fs after start" % took)
    assert took < 14.0  # at most two intervals, and a tick
    assert slow.status()["store"]["raft"]["last_snapshot_index"] >= 30


def test_kill9_single_node_file_whole_and_every_write_kept(cluster, tmp_path):
    """The write connection syncs nothing on commit (synchronous=OFF, no
    automatic checkpoints; the Raft log is the durable copy). A lone node,
    snapshotting (and so checkpointing) every 200 ms or so, is killed -9
    three times while writers stream plain, guarded (BEGIN/COMMIT) and
    page-heavy entries: each restart comes back with every acknowledged row,
    once, and the file as the last kill left it passes integrity_check.
    (A kill keeps the page cache: this shows crash safety, not power-loss
    safety, which rests on the syncs argued in src/db/db.h.)"""
    import shutil
    import sqlite3
    n = cluster.node(1, ["-raft-snap", "40", "-raft-snap-int", "100ms", "-raft-snap-wal-size", "262144"])
    n.start().wait_ready()
    n.execute(["CREATE TABLE k (w INT, n INT, pad BLOB, UNIQUE(w, n))"])
    acked, lock, stop = set(), threading.Lock(), threading.Event()

    def writer(w):
        i = 0
        while not stop.is_set():
            i += 1
            row = "INSERT INTO k(w, n, pad) VALUES (%d, %d, randomblob(%d))" % (w, i, 3000 if i % 3 else 10)
            stmts = ["BEGIN", row, "COMMIT"] if i % 7 == 0 else [row]
            try:
                r = requests.post(n.url + "/db/execute", json=stmts, timeout=5)
                res = r.json().get("results", []) if r.status_code == 200 else []
            except (requests.RequestException, ValueError):
                res = []
            if res and (not any("error" in x for x in res) or any("UNIQUE" in x.get("error", "") for x in res)):
                with lock:
                    acked.add((w, i))
            elif not res:
                i -= 1  # not known to be applied: the same row again
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            before = len(acked)
            poll(lambda: len(acked) > before + 150, timeout=60, what="writes flowing")
            n.signal(signal.SIGKILL)
            n.wait_exit(10)
            n.start().wait_ready()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert n.status()["store"]["raft"]["last_snapshot_index"] > 0
    # the file as a kill leaves it: a copy, opened by SQLite (WAL recovery)
    n.signal(signal.SIGKILL)
    n.wait_exit(10)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in os.listdir(n.dir):
        if name.startswith("db.sqlite"):
            shutil.copy(os.path.join(n.dir, name), copy / name)
    c = sqlite3.connect(str(copy / "db.sqlite"))
    assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    in_file = c.execute("SELECT COUNT(*) FROM k").fetchone()[0]
    c.close()
    n.start().wait_ready()
    r = n.query("PRAGMA integrity_check")
    assert r["results"][0]["values"] == [["ok"]], r
    rows = n.query("SELECT w, n FROM k")["results"][0]["values"]
    got = {(w, i) for w, i in rows}
    assert len(rows) == len(got)  # nothing applied twice
    assert acked <= got, "acknowledged writes missing: %r" % sorted(acked - got)[:10]
    print("\n%d acknowledged writes, %d rows (%d in the killed file, the log had the rest), 4 kills"
          % (len(acked), len(rows), in_file))


def test_disco_dns(cluster, tmp_path):
    """-disco-mode dns: three nodes with -bootstrap-expect 3 find each other
    through the lookup (RQLITE_DISCO_DNS_HOSTS standing in for the DNS
    answer, as in rqlite's tests) and form one cluster; a read-only node
    started later the same way joins it; a real lookup (localhost, with the
    configured port) finds a node too."""
    conf = tmp_path / "disco.json"
    conf.write_text('{"name": "rqlite.cluster"}')
    nodes = [cluster.node(i) for i in (1, 2, 3)]
    hosts = ",".join(n.raft_addr for n in nodes)
    for n in nodes:
        n.extra += ["-bootstrap-expect", "3", "-disco-mode", "dns", "-disco-config", str(conf)]
        n.env = {"RQLITE_DISCO_DNS_HOSTS": hosts}
        n.start()
    for n in nodes:
        n.wait_ready()
    leader = leader_of(nodes)
    wait_members(leader, 3)
    ro = cluster.node(4, ["-raft-non-voter=true", "-disco-mode", "dns", "-disco-config", str(conf)])
    ro.env = {"RQLITE_DISCO_DNS_HOSTS": hosts}
    ro.start().wait_ready()
    poll(lambda: [x["voter"] for x in leader.nodes() if x["id"] == ro.id] == [False], what="the read-only node")
    assert "discovery found 3 node(s)" in ro.logs()
    # The lookup itself: localhost resolves to 127.0.0.1, with the port given.
    n5 = cluster.node(5, ["-disco-mode", "dns", "-disco-config",
                          '{"name": "localhost", "port": %d}' % leader.raft_port]).start()
    n5.wait_ready()
    poll(lambda: any(x["id"] == n5.id for x in leader.nodes()), what="the node found by a real lookup")


def test_disco_refuses_what_it_cannot_do(cluster, tmp_path):
    """A discovery mode this build does not have, or a configuration it
    cannot read, stops the node at start; a name that never resolves ends
    it after -bootstrap-expect-timeout, with the reason."""
    cases = [(["-disco-mode", "consul-kv"], "-disco-mode consul-kv is not supported by this build"),
             (["-disco-mode", "zookeeper"], "invalid disco mode zookeeper"),
             (["-disco-mode", "dns", "-disco-config", "{not json"], "error reading DNS configuration"),
             (["-disco-mode", "dns", "-disco-config", '{"port": 4002}'], '"name" is required'),
             (["-disco-mode", "dns", "-disco-config", '{"name": "x", "port": 70000}'], "invalid port"),
             (["-disco-mode", "dns-srv", "-disco-config", '{"name": "nothing.invalid"}', "-bootstrap-expect",
               "2", "-bootstrap-expect-timeout", "2s"], "discovery found no nodes before -bootstrap-expect-timeout")]
    for i, (flags, words) in enumerate(cases):
        n = cluster.node(10 + i, flags).start()
        assert n.wait_exit(30) != 0, flags
        assert words in n.logs(), (flags, n.logs()[-1500:])
    # Garbage in the stand-in answer: nobody to reach, the timeout's reason.
    n = cluster.node(30, ["-disco-mode", "dns", "-disco-config", '{"name": "x"}', "-bootstrap-expect", "2",
                          "-bootstrap-expect-timeout", "2s"])
    n.env = {"RQLITE_DISCO_DNS_HOSTS": ",, ,garbage,[::1,127.0.0.1:0,%s" % ("x" * 3000)}
    n.start()
    assert n.wait_exit(30) != 0
    assert "fatal: " in n.logs() and "fatal signal" not in n.logs(), n.logs()[-1500:]
