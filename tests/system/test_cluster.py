"""Three nodes: formation, forwarding, failover, restart."""
import os
import subprocess
import time

import requests

import harness
from harness import leader_of, poll, wait_members


def test_formation_http_join_and_replication(three):
    cluster, nodes = three
    t0 = time.monotonic()
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY, v TEXT)",
                    ["INSERT INTO foo(v) VALUES(?)", "x"]])
    for n in nodes:
        poll(lambda: n.count("foo") == 1, what="row on node %s" % n.id)
    ns = nodes[0].nodes()
    assert sorted(x["id"] for x in ns) == ["1", "2", "3"]
    assert all(x["voter"] for x in ns)
    assert sum(1 for x in ns if x["leader"]) == 1
    print("replication to all nodes: %.3fs" % (time.monotonic() - t0))


def test_formation_raft_address_join(cluster):
    t0 = time.monotonic()
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.raft_addr)   # bare host:port of the Raft port
    n3 = cluster.node(3).start(join="%s,%s" % (n2.raft_addr, n1.raft_addr))
    n2.wait_ready()
    n3.wait_ready()
    wait_members(n1, 3)
    print("3-node formation (raft-address join): %.3fs" % (time.monotonic() - t0))
    n1.execute(["CREATE TABLE j (id INT)", "INSERT INTO j VALUES (5)"])
    poll(lambda: n3.count("j") == 1, what="replicated row")


def test_follower_forwards_writes_and_reads(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    r = requests.post(follower.url + "/db/execute",
                      json=["CREATE TABLE f (id INTEGER PRIMARY KEY, v TEXT)",
                            ["INSERT INTO f(v) VALUES(?)", "via follower"]])
    assert r.status_code == 200
    assert r.headers["X-RQLITE-SERVED-BY"] == leader.raft_addr
    local = requests.get(follower.url + "/db/query", params={"q": "SELECT 1", "level": "none"})
    assert local.headers["X-RQLITE-SERVED-BY"] == follower.http_addr
    assert r.json() == {"results": [{}, {"last_insert_id": 1, "rows_affected": 1}]}
    # weak and strong reads on a follower are served by the leader
    for level in ("weak", "strong"):
        res = follower.query("SELECT v FROM f", level=level)
        assert res["results"][0]["values"] == [["via follower"]], level
    assert leader.count("f", level="strong") == 1
    # ?redirect gives rqlite's 301 instead
    r = requests.post(follower.url + "/db/execute?redirect", json=["SELECT 1"],
                      allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"].startswith(leader.url + "/db/execute?redirect")


def test_kill_leader_new_leader_and_catch_up(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE k (id INTEGER PRIMARY KEY, v INT)", "INSERT INTO k(v) VALUES (1)"])
    for n in nodes:
        poll(lambda: n.count("k") == 1, what="row on %s" % n.id)
    t0 = time.monotonic()
    leader.kill()
    rest = [n for n in nodes if n is not leader]
    new_leader = leader_of(rest)
    print("new leader after kill -9: %.3fs" % (time.monotonic() - t0))
    assert new_leader is not leader
    follower = [n for n in rest if n is not new_leader][0]
    # writes continue, also through the remaining follower
    poll(lambda: requests.post(follower.url + "/db/execute",
                               json=["INSERT INTO k(v) VALUES (2)"], timeout=10).json()
         ["results"][0].get("rows_affected") == 1, what="write through follower")
    new_leader.execute(["INSERT INTO k(v) VALUES (3)"])
    # the killed node comes back with its state (no -join) and catches up
    leader.start()
    poll(lambda: leader.count("k") == 3, what="restarted node catching up")
    wait_members(new_leader, 3)


def test_whole_cluster_restart_keeps_data(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE w (id INTEGER PRIMARY KEY, v TEXT)"] +
                   [["INSERT INTO w(v) VALUES(?)", "row%d" % i] for i in range(50)])
    for n in nodes:
        poll(lambda: n.count("w") == 50, what="rows on %s" % n.id)
    for n in nodes:
        n.stop()
    t0 = time.monotonic()
    # restart with the original commands (nodes 2 and 3 still carry -join: they
    # ask to join again, which the leader ignores, as rqlite's does)
    nodes[0].start()
    nodes[1].start(join=nodes[0].url)
    nodes[2].start(join=nodes[0].url)
    leader = leader_of(nodes)
    for n in nodes:
        n.wait_ready()
        poll(lambda: n.count("w") == 50, what="rows after restart on %s" % n.id)
    print("whole-cluster restart to ready: %.3fs" % (time.monotonic() - t0))
    assert "joining again through the join addresses" in nodes[1].logs()
    leader.execute(["INSERT INTO w(v) VALUES ('after')"])
    for n in nodes:
        poll(lambda: n.count("w") == 51, what="new row on %s" % n.id)


def test_no_leader_is_503(cluster):
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    wait_members(n1, 2)
    n1.kill()
    # n2 alone cannot elect itself; writes and reads that need the leader answer 503
    def no_leader():
        r = requests.post(n2.url + "/db/execute", json=["CREATE TABLE z (id INT)"], timeout=15)
        return r.status_code == 503 and "leader not found" in r.text
    poll(no_leader, what="503 without a leader")
    for level in ("weak", "strong", "linearizable", "auto"):
        r = requests.get(n2.url + "/db/query", params={"q": "SELECT 1", "level": level}, timeout=15)
        assert r.status_code == 503 and "leader not found" in r.text, (level, r.status_code, r.text)
    r = requests.post(n2.url + "/db/request", json=["SELECT 1"], timeout=15)
    assert r.status_code == 503 and "leader not found" in r.text, (r.status_code, r.text)
    # a read at level none is the node's own: still answered
    r = requests.get(n2.url + "/db/query", params={"q": "SELECT 1", "level": "none"}, timeout=15)
    assert r.status_code == 200 and r.json()["results"][0]["values"] == [[1]], r.text
    assert harness.Node.ready(n2) is False


def test_wiped_node_catches_up_from_snapshot(cluster):
    """Small -raft-snap: the log is compacted, so a wiped node needs the leader's
    snapshot (SQLite image + metadata) to come back, then the entries after it."""
    snap = ["-raft-snap", "16", "-raft-snap-int", "1s"]
    n1 = cluster.node(1, snap).start().wait_ready()
    n2 = cluster.node(2, snap).start(join=n1.url)
    n3 = cluster.node(3, snap).start(join=n1.url)
    n2.wait_ready()
    n3.wait_ready()
    wait_members(n1, 3)
    leader = leader_of([n1, n2, n3])
    leader.execute(["CREATE TABLE s (id INTEGER PRIMARY KEY, v INT)"])
    for i in range(120):
        leader.execute([["INSERT INTO s(v) VALUES(?)", i]])
    # a snapshot that compacted the log past the start: a wiped node needs it
    poll(lambda: leader.status()["store"]["raft"]["first_log_index"] > 1, what="the log compacted")
    victim = [n for n in (n2, n3) if n is not leader][0]
    poll(lambda: victim.count("s") == 120, what="rows on the victim")
    victim.kill()
    victim.wipe()
    leader.execute([["INSERT INTO s(v) VALUES(?)", 999]])
    t0 = time.monotonic()
    victim.start()   # original command: no -join, empty directory
    poll(lambda: victim.count("s") == 121, what="wiped node restored from the snapshot")
    print("wiped node restored from a snapshot in %.2fs" % (time.monotonic() - t0))
    # A weak read is forwarded to the leader: its API address comes with the
    # snapshot's metadata, taken before the file goes in (no 503 window).
    assert victim.query("SELECT SUM(v) FROM s")["results"][0]["values"] == [[sum(range(120)) + 999]]
    assert "snapshot transfer done" in victim.logs()
    # and it restarts from its own file with the same content (exactly once),
    # without copying anything again
    victim.stop()
    victim.start().wait_ready()
    poll(lambda: victim.count("s") == 121, what="restarted node")
    assert victim.logs().count("snapshot transfer done") == 1
    assert victim.query("SELECT SUM(v) FROM s")["results"][0]["values"] == [[sum(range(120)) + 999]]


def test_older_transferred_database_is_not_installed(cluster, tmp_path):
    """A node behind the leader's snapshot fetches the leader's database; a new
    leader whose log reaches further back may meanwhile replicate newer entries
    to it. Installing the older copy then would lose those entries for good
    (libraft does not apply them again): the node keeps its own file. A test
    gate holds the transferred copy back until then (RQ_TEST_FETCH_GATE)."""
    gate = str(tmp_path / "gate")
    n1 = cluster.node(1, ["-raft-snap", "16", "-raft-snap-int", "1s"]).start().wait_ready()
    n2 = cluster.node(2, ["-raft-snap", "100000"]).start(join=n1.url)
    n3 = cluster.node(3, ["-raft-snap", "16", "-raft-snap-int", "1s"]).start(join=n1.url)
    n2.wait_ready()
    n3.wait_ready()
    wait_members(n1, 3)
    assert leader_of([n1, n2, n3]) is n1
    n1.execute(["CREATE TABLE g (id INTEGER PRIMARY KEY, v INT)"])
    poll(lambda: n3.count("g") == 0, what="the table on node 3")
    held = n3.status()["store"]["raft"]["last_log_index"]
    n3.kill()
    for i in range(100):
        n1.execute([["INSERT INTO g(v) VALUES(?)", i]])
    # node 1's log compacted past node 3's (a snapshot is checked for every
    # second); then writes for a while. libraft queues its messages to a peer
    # it cannot reach until its next connection attempt (every 250 ms here),
    # which keeps the newest three: AppendEntries made before the compaction
    # would give node 3 the entries it lacks without the snapshot.
    poll(lambda: n1.status()["store"]["raft"]["first_log_index"] > held + 1, what="a snapshot on node 1")
    rows, until = 100, time.monotonic() + 0.8
    while time.monotonic() < until:
        n1.execute([["INSERT INTO g(v) VALUES(?)", rows]])
        rows += 1
    n3.env = {"RQ_TEST_FETCH_GATE": gate}
    n3.start(join=n1.url)
    poll(lambda: "test gate: holding" in n3.logs(), what="node 3 holding the transferred database")
    n1.kill()
    assert leader_of([n2, n3]) is n2
    for i in range(rows, rows + 20):
        n2.execute([["INSERT INTO g(v) VALUES(?)", i]])
    rows += 20
    poll(lambda: n3.count("g") == rows, what="node 3 applying node 2's entries during the transfer")
    open(gate, "w").close()
    poll(lambda: "is older than ours" in n3.logs() or "snapshot transfer done" in n3.logs(),
         what="node 3 done with the transfer")
    assert n3.count("g") == rows
    assert "is older than ours" in n3.logs()
    n2.execute([["INSERT INTO g(v) VALUES(?)", rows]])
    poll(lambda: n3.count("g") == rows + 1, what="node 3 applying later entries")
    want = [[sum(range(rows + 1))]]
    assert n3.query("SELECT SUM(v) FROM g", level="none")["results"][0]["values"] == want
    assert n2.query("SELECT SUM(v) FROM g", level="none")["results"][0]["values"] == want


def test_nondeterministic_sql_replicates_identically(three):
    """RANDOM(), RANDOMBLOB(), 'now' and CURRENT_TIMESTAMP: every replica stores the
    same values, and a restarted node still has them (it reopens its own
    file, which records the Raft index it holds: no entry is applied again)."""
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    follower.execute(["CREATE TABLE nd (id INTEGER PRIMARY KEY, r INT, b BLOB, t TEXT, "
                      "j REAL, c TEXT DEFAULT CURRENT_TIMESTAMP)"])
    for _ in range(5):
        follower.execute(["INSERT INTO nd(r, b, t, j) VALUES (random(), randomblob(16), "
                          "datetime('now'), julianday('now'))"])
    sql = "SELECT * FROM nd ORDER BY id"
    want = leader.query(sql, level="strong")["results"][0]["values"]
    assert len(want) == 5 and len({row[1] for row in want}) == 5
    for n in nodes:
        poll(lambda: n.query(sql, level="none")["results"][0].get("values") == want,
             what="identical rows on node %s" % n.id)
    follower.stop()
    follower.start()
    poll(lambda: follower.query(sql, level="none")["results"][0].get("values") == want,
         what="identical rows after restart")


def test_backup_and_load_replicated(three, tmp_path):
    import gzip
    import sqlite3
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    leader.execute(["CREATE TABLE bk (id INTEGER PRIMARY KEY, name TEXT)",
                    "INSERT INTO bk(name) VALUES ('fiona'), ('it''s')", "CREATE INDEX bki ON bk(name)"])
    # binary backup, served by the leader even when asked through a follower
    r = requests.get(follower.url + "/db/backup", timeout=10)
    assert r.status_code == 200 and r.content[:16] == b"SQLite format 3\x00"
    path = tmp_path / "backup.sqlite"
    path.write_bytes(r.content)
    with sqlite3.connect(str(path)) as c:
        assert c.execute("SELECT name FROM bk ORDER BY id").fetchall() == [("fiona",), ("it's",)]
    gz = requests.get(leader.url + "/db/backup?compress", timeout=10).content
    assert gzip.decompress(gz)[:16] == b"SQLite format 3\x00"
    assert r.content[18:20] == b"\x02\x02"   # the live file is in WAL mode
    d = requests.get(leader.url + "/db/backup?fmt=delete", timeout=10).content
    assert d[18:20] == b"\x01\x01"
    v = requests.get(leader.url + "/db/backup?vacuum", timeout=10).content
    (tmp_path / "vac.sqlite").write_bytes(v)
    with sqlite3.connect(str(tmp_path / "vac.sqlite")) as c:
        assert c.execute("SELECT COUNT(*) FROM bk").fetchone() == (2,)
    assert requests.get(leader.url + "/db/backup?fmt=sql&vacuum").status_code == 500
    # SQL dump in rqlite's format
    dump = requests.get(leader.url + "/db/backup?fmt=sql", timeout=10).text
    assert dump == ("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
                    "CREATE TABLE bk (id INTEGER PRIMARY KEY, name TEXT);\n"
                    "INSERT INTO \"bk\" VALUES(1,'fiona');\nINSERT INTO \"bk\" VALUES(2,'it''s');\n"
                    "CREATE INDEX bki ON bk(name);\nCOMMIT;\n")
    # load an image through a follower: replaces the database on every node
    with sqlite3.connect(str(tmp_path / "other.sqlite")) as c:
        c.execute("CREATE TABLE other (v)")
        c.executemany("INSERT INTO other VALUES (?)", [(i,) for i in range(100)])
    r = requests.post(follower.url + "/db/load", data=(tmp_path / "other.sqlite").read_bytes(),
                      headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"results": []}
    for n in nodes:
        poll(lambda: n.count("other") == 100 and n.count("bk") is None, what="loaded image on %s" % n.id)
    # load the SQL dump back (text): both tables now
    r = requests.post(leader.url + "/db/load", data=dump, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and "error" not in r.json()["results"][0]
    for n in nodes:
        poll(lambda: n.count("bk") == 2 and n.count("other") == 100, what="loaded dump on %s" % n.id)
    # a restarted node comes back with the same state: its own file, which
    # records the Raft index it holds (no entry is applied again)
    follower.stop()
    follower.start()
    poll(lambda: follower.count("bk") == 2 and follower.count("other") == 100, what="state after restart")
    # garbage is not an image: runs as SQL and fails cleanly; bytes that are not
    # UTF-8 are refused before reaching the log
    r = requests.post(leader.url + "/db/load", data=b"garbage", timeout=10)
    assert r.status_code == 200 and "syntax error" in r.json()["results"][0]["error"]
    r = requests.post(leader.url + "/db/load", data=b"garbage \xff\xfe", timeout=10)
    assert r.status_code == 400 and "UTF-8" in r.text
    # /boot needs a single-node cluster
    r = requests.post(leader.url + "/boot", data=path.read_bytes(), timeout=10)
    assert r.status_code == 503 and "not single-node" in r.text


def test_queued_writes(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    leader.execute(["CREATE TABLE q (id INTEGER PRIMARY KEY, v INT)"])
    s = requests.Session()
    seqs = []
    for i in range(200):
        r = s.post(follower.url + "/db/execute?queue", json=[["INSERT INTO q(v) VALUES(?)", i]])
        assert r.status_code == 200
        body = r.json()
        assert body["results"] == []
        seqs.append(body["sequence_number"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 200
    # ?wait returns once its batch (and every earlier one) is applied
    r = s.post(follower.url + "/db/execute?queue&wait", json=[["INSERT INTO q(v) VALUES(?)", -1]])
    assert r.status_code == 200 and r.json()["sequence_number"] > seqs[-1]
    assert leader.count("q", level="strong") == 201
    assert follower.status()["http"]["queue"]["_default"]["sequence_number"] >= r.json()["sequence_number"]
    # batching: far fewer Raft entries than requests
    idx = leader.status()["store"]["raft"]["last_log_index"]
    assert idx < 150, idx
    # an empty list is refused unless waiting (then it is a flush marker)
    assert s.post(follower.url + "/db/execute?queue", json=[]).status_code == 400
    assert s.post(follower.url + "/db/execute?queue&wait", json=[]).status_code == 200


def test_freshness_on_followers(cluster):
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    n3 = cluster.node(3).start(join=n1.url).wait_ready()
    wait_members(n1, 3)
    leader = leader_of([n1, n2, n3])
    leader.execute(["CREATE TABLE fr (x)", "INSERT INTO fr VALUES (1)"])
    follower = [n for n in (n1, n2, n3) if n is not leader][0]
    poll(lambda: follower.count("fr") == 1, what="replicated row")
    q = {"q": "SELECT x FROM fr", "level": "none"}
    r = requests.get(follower.url + "/db/query", params=dict(q, freshness="5s")).json()
    assert r["results"][0]["values"] == [[1]]
    # cut the follower off: both other nodes die, its data ages
    for n in (n1, n2, n3):
        if n is not follower:
            n.kill()
    def stale():
        r = requests.get(follower.url + "/db/query", params=dict(q, freshness="200ms"), timeout=5).json()
        return r == {"results": [], "error": "stale read"}
    poll(stale, what="stale read on an isolated follower")
    # without freshness a none read still answers
    assert requests.get(follower.url + "/db/query", params=q).json()["results"][0]["values"] == [[1]]
    r = requests.get(follower.url + "/db/query", params=dict(q, freshness_strict=""))
    assert r.status_code == 400 and r.text == "freshness_strict requires freshness\n"


def slow_followers(cluster, extra=()):
    """Node 1 with the harness's fast timers (it bootstraps the cluster, and
    would wait 1.5 election timeouts for an existing one first), nodes 2 and
    3 with a 20 s election timeout: they keep a stopped leader as theirs, and
    as leaders keep leading without a majority, for 20 s at least."""
    n1 = cluster.node(1, list(extra)).start().wait_ready()
    others = [cluster.node(i, ["-raft-election-timeout", "20s"] + list(extra)).start(join=n1.url)
              for i in (2, 3)]
    for n in others:
        n.wait_ready()
    wait_members(n1, 3)
    return [n1] + others


def test_follower_refuses_reads_older_than_freshness(cluster):
    """A follower answers a level=none read with freshness=F only while its
    last contact with the leader is younger than F. The leader is stopped
    (SIGSTOP) with an election timeout (20 s) far longer than F (1 s): the
    follower still knows that leader, and it is the age alone that makes it
    refuse ("stale read") about F after the stop."""
    import signal
    n1, n2, n3 = slow_followers(cluster)
    leader = leader_of([n1, n2, n3])
    assert leader is n1
    follower = n2
    leader.execute(["CREATE TABLE age (x)", "INSERT INTO age VALUES (1)"])
    poll(lambda: follower.count("age") == 1, what="replicated row")
    q = {"q": "SELECT x FROM age", "level": "none"}

    def read(freshness):
        return requests.get(follower.url + "/db/query", params=dict(q, freshness=freshness), timeout=10).json()
    assert read("1s")["results"][0]["values"] == [[1]]
    leader.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        poll(lambda: read("1s") == {"results": [], "error": "stale read"}, timeout=10,
             what="stale read on a follower whose leader is stopped")
        waited = time.monotonic() - t0
        print("freshness=1s read refused %.2fs after the leader stopped" % waited)
        st = follower.status()["store"]
        # Refused while the follower still had its leader: because of the age.
        assert st["raft"]["state"] == "Follower" and st["leader"]["node_id"] == leader.id, st["leader"]
        assert waited > 0.5, waited   # not before the data was about F old
        # a freshness longer than the age is still answered, and so is a read without one
        assert read("1h")["results"][0]["values"] == [[1]]
        assert requests.get(follower.url + "/db/query", params=q, timeout=10).json()["results"][0]["values"] == [[1]]
    finally:
        leader.signal(signal.SIGCONT)
    poll(lambda: read("1s")["results"][0]["values"] == [[1]], what="fresh reads again once the leader is back")


def test_non_voter_read_replica(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE nv (x)", "INSERT INTO nv VALUES (1)"])
    n4 = cluster.node(4, ["-raft-non-voter"]).start(join=nodes[0].url).wait_ready()
    poll(lambda: n4.count("nv") == 1, what="row on the read replica")
    voters = requests.get(leader.url + "/nodes?ver=2").json()["nodes"]
    assert sorted(n["id"] for n in voters) == ["1", "2", "3"]
    everyone = {n["id"]: n for n in n4.nodes()}
    assert everyone["4"]["voter"] is False and everyone["4"]["reachable"] is True
    assert n4.status()["store"]["raft"]["voter"] is False
    # level=auto reads locally on a non-voter (served by it, not the leader)...
    auto = {"q": "SELECT x FROM nv", "level": "auto"}
    r = requests.get(n4.url + "/db/query", params=auto, timeout=10)
    assert r.json()["results"][0]["values"] == [[1]]
    assert r.headers["X-RQLITE-SERVED-BY"] == n4.http_addr
    # ...and is a weak read, served by the leader, on a voter
    follower = next(n for n in nodes if n is not leader)
    r = requests.get(follower.url + "/db/query", params=auto, timeout=10)
    assert r.json()["results"][0]["values"] == [[1]]
    assert r.headers["X-RQLITE-SERVED-BY"] == leader.raft_addr
    # writes through it are forwarded
    r = requests.post(n4.url + "/db/execute", json=["INSERT INTO nv VALUES (2)"]).json()
    assert r["results"][0]["rows_affected"] == 1
    assert leader.count("nv", level="strong") == 2
    poll(lambda: n4.count("nv") == 2, what="the write on the read replica")
    # with the leader stopped, the read replica still answers level=auto at once
    import signal
    leader.signal(signal.SIGSTOP)
    try:
        r = requests.get(n4.url + "/db/query", params=dict(auto, q="SELECT COUNT(*) FROM nv"), timeout=5)
        assert r.json()["results"][0]["values"] == [[2]]
        assert r.headers["X-RQLITE-SERVED-BY"] == n4.http_addr
    finally:
        leader.signal(signal.SIGCONT)


def test_linearizable_reads_cost_no_log_write(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    leader.execute(["CREATE TABLE lin (x)"])
    s = requests.Session()
    for i in range(20):
        s.post(leader.url + "/db/execute", json=[["INSERT INTO lin VALUES (?)", i]]).raise_for_status()
        # read-your-write at every step, from the leader and through a follower
        for n in (leader, follower):
            r = s.get(n.url + "/db/query", params={"q": "SELECT COUNT(*) FROM lin",
                                                    "level": "linearizable"}).json()
            assert r["results"][0]["values"] == [[i + 1]], (n.id, r)
    before = leader.status()["store"]["raft"]["last_log_index"]
    t0 = time.monotonic()
    for _ in range(50):
        r = s.get(leader.url + "/db/query", params={"q": "SELECT COUNT(*) FROM lin",
                                                    "level": "linearizable"}).json()
        assert r["results"][0]["values"] == [[20]]
    print("50 linearizable reads: %.1f ms each" % ((time.monotonic() - t0) * 1000 / 50))
    assert leader.status()["store"]["raft"]["last_log_index"] == before
    # strong reads do go through the log
    s.get(leader.url + "/db/query", params={"q": "SELECT 1", "level": "strong"}).raise_for_status()
    assert leader.status()["store"]["raft"]["last_log_index"] == before + 1


def test_isolated_leader_refuses_linearizable_reads(cluster):
    """A leader cut off from the others (both followers SIGSTOPped) goes on
    believing it leads until an election timeout passes (20 s here). A
    linearizable read must confirm that leadership with a majority first, so
    on that leader it fails instead of answering from local data that a new
    leader elsewhere could have made stale; level=none still answers."""
    import signal
    n1, n2, n3 = slow_followers(cluster, ["-raft-apply-timeout", "2s"])
    r = requests.post(n1.url + "/leader", json={"id": n2.id}, timeout=30)
    assert r.status_code == 200, r.text
    poll(n2.is_leader, what="leadership moved to node 2 (20 s election timeout)")
    leader, followers = n2, [n1, n3]
    leader.execute(["CREATE TABLE iso (x)", "INSERT INTO iso VALUES (1)"])
    lin = {"q": "SELECT x FROM iso", "level": "linearizable"}
    r = requests.get(leader.url + "/db/query", params=lin, timeout=30)
    assert r.status_code == 200 and r.json()["results"][0]["values"] == [[1]], r.text
    for f in followers:
        f.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = requests.get(leader.url + "/db/query", params=lin, timeout=30)
        took = time.monotonic() - t0
        print("linearizable read on the isolated leader: %d %s after %.1fs" % (r.status_code, r.text.strip(), took))
        assert "values" not in r.text, (r.status_code, r.text)
        assert r.status_code == 503 or r.json().get("error"), (r.status_code, r.text)
        # refused while it still took itself for the leader (not after stepping down)
        assert leader.is_leader(), "the isolated leader stepped down after %.1fs" % took
        r = requests.get(leader.url + "/db/query", params=dict(lin, level="none"), timeout=10)
        assert r.status_code == 200 and r.json()["results"][0]["values"] == [[1]], r.text
    finally:
        for f in followers:
            f.signal(signal.SIGCONT)
    # with a majority back, linearizable reads are answered again
    poll(lambda: requests.get(leader.url + "/db/query", params=lin, timeout=30).json()["results"][0]
         .get("values") == [[1]], what="a linearizable read once the followers are back")


def test_leader_lease_steps_down_without_a_quorum(cluster):
    """-raft-leader-lease-timeout: a leader that has not heard from a quorum
    for that long steps down (hashicorp raft's lease), where libraft's own
    rule would wait one to two election timeouts (20 s on nodes 2 and 3).
    Both followers are SIGSTOPped; their leader must be a follower again
    within a few seconds, and the cluster leads again once they are back."""
    import signal
    n1, n2, n3 = slow_followers(cluster, ["-raft-leader-lease-timeout", "300ms"])
    r = requests.post(n1.url + "/leader", json={"id": n2.id}, timeout=30)
    assert r.status_code == 200, r.text
    poll(n2.is_leader, what="leadership moved to node 2 (20 s election timeout)")
    n2.execute(["CREATE TABLE lease (x)", "INSERT INTO lease VALUES (1)"])
    # a healthy leader keeps its lease under writes
    for i in range(50):
        n2.execute([["INSERT INTO lease VALUES (?)", i]])
    assert n2.is_leader() and "stepping down" not in n2.logs()
    followers = [n1, n3]
    for f in followers:
        f.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        poll(lambda: n2.status()["store"]["raft"]["state"] != "Leader", timeout=8,
             what="the isolated leader stepping down")
        took = time.monotonic() - t0
        print("\nisolated leader stepped down after %.2fs (lease 300ms)" % took)
        assert "failed to contact a quorum of nodes" in n2.logs()
        r = requests.post(n2.url + "/db/execute", json=["INSERT INTO lease VALUES (2)"], timeout=10)
        assert r.status_code == 503, (r.status_code, r.text)
    finally:
        for f in followers:
            f.signal(signal.SIGCONT)
    leader = leader_of([n1, n2, n3])
    leader.execute(["INSERT INTO lease VALUES (3)"])
    assert leader.count("lease", level="strong") == 52  # not the refused write


def test_leader_stepdown_remove_and_readyz_sync(three):
    import re
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    r = requests.get(follower.url + "/leader").json()
    assert r["id"] == leader.id and r["leader"] is True and r["api_addr"] == leader.url
    ns = requests.get(leader.url + "/nodes").json()
    assert all(re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", n["time_s"]) for n in ns.values()), ns
    r = requests.get(follower.url + "/readyz?sync")
    assert r.status_code == 200 and r.text == "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok\n[+]db ok"
    # stepdown, optionally to a given node, sent through a follower
    target = follower.id
    r = requests.post(follower.url + "/leader", json={"id": target})
    assert r.status_code == 200, r.text
    poll(lambda: follower.is_leader(), what="leadership moved to node %s" % target)
    new_leader = follower
    r = requests.post(new_leader.url + "/leader", json={"id": new_leader.id})
    assert r.status_code == 500 and r.text.startswith("stepdown: ")
    # remove a node through a follower; the cluster keeps serving with two
    victim = [n for n in nodes if n is not new_leader][0]
    other = [n for n in nodes if n is not new_leader and n is not victim][0]
    r = requests.delete(other.url + "/remove", json={"id": victim.id})
    assert r.status_code == 200, r.text
    poll(lambda: sorted(x["id"] for x in new_leader.nodes()) == sorted([new_leader.id, other.id]),
         what="node removed")
    r = requests.delete(new_leader.url + "/remove", json={"id": "nope"})
    assert r.status_code == 500 and "not found" in r.text
    new_leader.execute(["CREATE TABLE after_remove (x)"])
    poll(lambda: other.count("after_remove") == 0, what="replication without the removed node")


def test_user_snapshot(three):
    cluster, nodes = three
    leader = leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    leader.execute(["CREATE TABLE us (x)"] + [["INSERT INTO us VALUES (?)", i] for i in range(10)])
    poll(lambda: follower.count("us") == 10, what="rows on the follower")
    assert leader.status()["store"]["raft"]["last_snapshot_index"] == 0
    r = requests.post(leader.url + "/snapshot", timeout=20)
    assert r.status_code == 200, r.text
    assert leader.status()["store"]["raft"]["last_snapshot_index"] > 0
    assert requests.post(leader.url + "/snapshot", timeout=20).status_code in (200, 204)
    # a follower snapshots itself too
    r = requests.post(follower.url + "/snapshot", timeout=20)
    assert r.status_code == 200, r.text
    assert follower.status()["store"]["raft"]["last_snapshot_index"] > 0
    assert requests.post(follower.url + "/snapshot?trailing_logs=x").status_code == 400
    # ?trailing_logs=N: the log keeps N entries after the snapshot (default: all of these)
    raft = leader.status()["store"]["raft"]
    assert raft["first_log_index"] == 1
    for i in range(20):
        leader.execute([["INSERT INTO us VALUES (?)", 100 + i]])
    assert requests.post(leader.url + "/snapshot?trailing_logs=5", timeout=20).status_code == 200
    raft = leader.status()["store"]["raft"]
    assert raft["first_log_index"] == raft["last_snapshot_index"] - 4, raft
    poll(lambda: follower.count("us") == 30, what="rows on the follower")
    follower.stop()
    follower.start()
    poll(lambda: follower.count("us") == 30, what="rows after restart from the user snapshot")
    # from the shell: a snapshot that takes in entries written since the last one
    for i in range(5):
        leader.execute([["INSERT INTO us VALUES (?)", 200 + i]])
    before = leader.status()["store"]
    last = before["raft"]["last_log_index"]
    assert before["raft"]["last_snapshot_index"] < last
    out = subprocess.run([harness.RQLITE, "-p", str(leader.http_port)], input=".snapshot\n",
                         capture_output=True, text=True, timeout=30).stdout
    assert "ERR!" not in out, out
    after = leader.status()["store"]
    assert after["num_snapshots"] == before["num_snapshots"] + 1, (before["num_snapshots"], after["num_snapshots"])
    assert after["raft"]["last_snapshot_index"] >= last, (after["raft"], last)
    # .snapshot N passes trailing_logs: the log keeps N entries after it
    for i in range(5):
        leader.execute([["INSERT INTO us VALUES (?)", 300 + i]])
    out = subprocess.run([harness.RQLITE, "-p", str(leader.http_port)], input=".snapshot 2\n",
                         capture_output=True, text=True, timeout=30).stdout
    assert "ERR!" not in out, out
    raft = leader.status()["store"]["raft"]
    assert raft["first_log_index"] == raft["last_snapshot_index"] - 1, raft
    out = subprocess.run([harness.RQLITE, "-p", str(leader.http_port)], input=".snapshot x\n",
                         capture_output=True, text=True, timeout=30).stdout
    assert "ERR! server responded with 400 Bad Request" in out, out


def test_forwarded_write_applied_at_most_once(cluster):
    """The leader stalls (SIGSTOP) while a follower forwards a write to it: the
    forward times out, and the write, applied later by the resumed leader or
    not at all, never lands twice (rqlite issue #1628)."""
    import signal
    n1, n2, n3 = cluster.start_three(["-raft-apply-timeout", "1s"])
    leader = leader_of([n1, n2, n3])
    follower = [n for n in (n1, n2, n3) if n is not leader][0]
    leader.execute(["CREATE TABLE once (id INTEGER PRIMARY KEY, v TEXT)"])  # duplicates possible
    s = requests.Session()
    # warm a keep-alive connection follower -> leader first
    s.post(follower.url + "/db/execute", json=[["INSERT INTO once(v) VALUES(?)", "warm"]]).raise_for_status()
    leader.signal(signal.SIGSTOP)
    try:
        r = s.post(follower.url + "/db/execute", json=["INSERT INTO once(v) VALUES('x')"], timeout=30)
        assert r.status_code in (200, 503)
    finally:
        leader.signal(signal.SIGCONT)
    rest = [n for n in (n1, n2, n3)]
    new_leader = leader_of(rest)
    def settled():
        vals = new_leader.query("SELECT v FROM once WHERE v = 'x'", level="strong")["results"][0]
        return vals
    rows = poll(settled, what="a settled answer")
    assert len(rows.get("values", [])) <= 1
    # and nothing else got duplicated
    r = new_leader.query("SELECT COUNT(*), COUNT(DISTINCT v) FROM once", level="strong")
    total, distinct = r["results"][0]["values"][0]
    assert total == distinct


def test_leader_killed_with_an_uncommitted_write(cluster):
    """A leader appends an entry it cannot commit (followers stopped) and dies.
    Whether that entry survives depends on whether it reached a follower before
    the stop (either is correct Raft); what must hold is that the restarted old
    leader converges on exactly the new leader's data and replication goes on."""
    import signal
    n1, n2, n3 = cluster.start_three(["-raft-apply-timeout", "1s"])
    old = leader_of([n1, n2, n3])
    others = [n for n in (n1, n2, n3) if n is not old]
    old.execute(["CREATE TABLE tail (v TEXT)", "INSERT INTO tail VALUES ('committed')"])
    for n in others:
        poll(lambda: n.count("tail") == 1, what="replicated row")
    for n in others:
        n.signal(signal.SIGSTOP)
    try:
        r = requests.post(old.url + "/db/execute", json=["INSERT INTO tail VALUES ('uncertain')"],
                          timeout=10)
        assert "error" in r.json()   # not committed while the followers are stopped
    finally:
        old.kill()
        for n in others:
            n.signal(signal.SIGCONT)
    new = leader_of(others)
    for i in range(3):
        new.execute([["INSERT INTO tail VALUES (?)", "new%d" % i]])
    sql = "SELECT v FROM tail ORDER BY rowid"
    want = new.query(sql, level="strong")["results"][0]["values"]
    assert want[0] == ["committed"] and want[-3:] == [["new0"], ["new1"], ["new2"]]
    old.start()
    poll(lambda: old.query(sql, level="none")["results"][0].get("values") == want,
         what="the restarted old leader converging on the new leader's data")
    new.execute(["INSERT INTO tail VALUES ('after')"])
    poll(lambda: old.count("tail") == len(want) + 1, what="replication continuing")


def test_node_local_failure_stops_the_node_and_restart_applies_it(cluster):
    """The one kind of failure that stops a node (src/db/policy.c): its own
    database locked by another process while it applies an entry. The
    node stops with the entry rolled back and unrecorded; once the lock is
    gone, a restart applies it again and the node agrees with the others.
    A SQL error in the same situation would have been an answer."""
    import sqlite3
    n1, n2, n3 = cluster.start_three()
    leader = harness.leader_of([n1, n2, n3])
    follower = next(n for n in (n1, n2, n3) if n is not leader)
    leader.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    harness.poll(lambda: follower.count("t") == 1, what="follower has the first row")
    holder = sqlite3.connect(os.path.join(follower.dir, "db.sqlite"), timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a write lock, as an operator's sqlite3 shell could hold
    try:
        leader.execute(["INSERT INTO t VALUES (2)"])  # committed by the other two
        follower.proc.wait(timeout=30)  # busy for 5 s, then the node stops itself
        assert "stopping now: the entry at index" in follower.logs()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    follower.log.close()
    follower.log = None
    follower.start().wait_ready()
    harness.poll(lambda: follower.count("t") == 2, what="the restarted follower applied the entry")
    assert follower.logs().count("stopping now") == 1
    assert follower.query("SELECT v FROM t ORDER BY rowid")["results"][0]["values"] == [[1], [2]]


def test_get_leader_on_a_follower_when_the_leader_does_not_answer(cluster):
    """GET /leader names the leader the node knows even when its probe times
    out (rqlite: 200, reachable false, the error); 503 is only for a node
    that knows no leader. Nodes 2 and 3 keep the stopped node 1 as their
    leader for their 20 s election timeout."""
    import signal
    n1, n2, _ = slow_followers(cluster)
    n1.signal(signal.SIGSTOP)
    try:
        r = requests.get(n2.url + "/leader", params={"timeout": "300ms"}, timeout=10)
    finally:
        n1.signal(signal.SIGCONT)
    assert r.status_code == 200, (r.status_code, r.text)
    got = r.json()
    assert got["id"] == n1.id and got["reachable"] is False and got["leader"] is False, got
    assert got["error"] == "timeout waiting for node to respond", got
    r = requests.get(n2.url + "/leader", params={"timeout": "1ns"}, timeout=10)
    assert r.status_code == 200 and r.json()["id"] == n1.id, (r.status_code, r.text)


def test_wiped_node_rejoins_while_a_long_transfer_runs(cluster):
    """A wiped node started with -join to a cluster whose database takes
    longer to send than a join may take (the leader's Raft port, where
    followers fetch the database, behind a 2 MB/s proxy; 40 MB): the join is
    answered as soon as the node is admitted, the joiner does not give up
    while data comes in, and it is promoted to voter once caught up
    (rqlite's behaviour with a 10 GB database). Nodes 2 and 3 have a 20 s
    election timeout, so node 1 stays the leader."""
    snap = ["-raft-snap", "8", "-raft-snap-int", "1s"]  # the log is compacted: a wiped node needs the database itself
    n1 = cluster.node(1, list(snap))
    throttle = harness.TcpProxy(n1.raft_port, rate=2 * 1024 * 1024)
    n1.extra += ["-raft-adv-addr", "127.0.0.1:%d" % throttle.port]
    try:
        n1.start().wait_ready()
        n2, n3 = [cluster.node(i, ["-raft-election-timeout", "20s"] + snap).start(join=n1.url) for i in (2, 3)]
        for n in (n2, n3):
            n.wait_ready()
        wait_members(n1, 3)
        n1.execute(["CREATE TABLE big (b BLOB)",
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40) "
                    "INSERT INTO big SELECT zeroblob(1000000) FROM c"], timeout=60)
        for i in range(10):
            n1.execute(["INSERT INTO big VALUES (x'01')"])
        poll(lambda: n1.status()["store"]["raft"]["first_log_index"] > 1, what="node 1's log compacted")
        poll(lambda: n3.count("big") == 50, what="rows on node 3")
        n3.stop()
        n3.wipe()
        before = throttle.carried
        n3.extra += ["-join-attempts", "2", "-join-interval", "1s"]
        t0 = time.monotonic()
        n3.start(join=n1.url)
        poll(lambda: n3.count("big") == 50, timeout=120, what="the database on the rejoined node")
        took = time.monotonic() - t0
        print("rejoined with a 40 MB transfer at 2 MB/s in %.1fs" % took)
        assert n3.proc.poll() is None, n3.logs()[-3000:]
        assert throttle.carried - before >= 40 * 1000 * 1000  # it did come the slow way
        poll(lambda: [x["voter"] for x in n1.nodes() if x["id"] == n3.id] == [True],
             what="the rejoined node promoted to voter")
        assert "has not caught up yet" in n1.logs() and "stays a non-voter until it asks again" in n1.logs()
        assert "asking the leader to update this node: it is a voter left a non-voter" in n3.logs()
        n1.execute(["INSERT INTO big VALUES (x'00')"])
        poll(lambda: n3.count("big") == 51, what="a write after the rejoin")
    finally:
        throttle.close()


def test_joiner_admitted_without_an_answer_stays(cluster):
    """A join whose answer is lost (a proxy forwards it to the leader, waits
    until the leader lists the node, then hangs up) leaves the node a
    member that the leader replicates to: it goes on instead of exiting."""
    import socket
    import threading
    n1 = cluster.node(1).start().wait_ready()
    n1.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    n2 = cluster.node(2, ["-join-attempts", "1"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def swallow():
        c, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += c.recv(65536)
        requests.post(n1.url + "/join", data=body, headers={"Content-Type": "application/json"}, timeout=30)
        poll(lambda: any(x["id"] == n2.id for x in n1.nodes()), what="node 2 listed by the leader")
        c.close()

    threading.Thread(target=swallow, daemon=True).start()
    try:
        n2.start(join="http://127.0.0.1:%d" % listener.getsockname()[1])
        poll(lambda: n2.count("t") == 1, what="the data on the node whose join answer was lost")
        poll(lambda: "join not confirmed" in n2.logs(), what="the lost answer noted on node 2")
        assert n2.proc.poll() is None, n2.logs()[-2000:]
    finally:
        listener.close()


def test_forwarding_pool_survives_a_restarted_leader(three):
    """rqlite's TestEndToEndConnectionPools: followers' forwarded reads share
    pooled connections to the leader; after the leader restarts and leads
    again, those are stale, and each follower opens a fresh one once
    (num_client_force_new_conn) instead of failing."""
    _, nodes = three
    l0 = leader_of(nodes)

    def strong_reads_through_followers(leader, post=False):
        for f in [n for n in nodes if n is not leader and n.proc.poll() is None]:
            if post:  # a read in a POST body may use the pool too (rqlite's e2e reads so)
                r = requests.post(f.url + "/db/query?level=strong", json=["SELECT 1"], timeout=10)
            else:
                r = requests.get(f.url + "/db/query", params={"q": "SELECT 1", "level": "strong"}, timeout=10)
            assert r.status_code == 200 and r.json()["results"][0]["values"] == [[1]], r.text

    strong_reads_through_followers(l0)
    l0.stop()
    l1 = leader_of([n for n in nodes if n is not l0])
    strong_reads_through_followers(l1)
    l0.start().wait_ready()
    r = requests.post(l1.url + "/leader", json={"id": l0.id}, timeout=30)
    assert r.status_code == 200, r.text
    poll(l0.is_leader, what="leadership back on the restarted node")
    strong_reads_through_followers(l0)
    for f in [n for n in nodes if n is not l0]:
        v = requests.get(f.url + "/debug/vars", timeout=10).json()["cluster"]
        assert v["num_client_force_new_conn"] == 1, (f.id, v)
    # One pool for all client connections (each served by a thread of its
    # own): sequential reads through a follower keep using one connection.
    def to_leader():
        out = subprocess.run(["ss", "-tnH", "state", "established", "dst", "127.0.0.1:%d" % l0.http_port],
                             capture_output=True, text=True, check=True).stdout
        return {line.split()[2] for line in out.splitlines() if line.strip()}
    before = to_leader()
    strong_reads_through_followers(l0)
    strong_reads_through_followers(l0, post=True)
    assert len(before) == 2 and to_leader() == before, (before, to_leader())  # one per follower, reused
