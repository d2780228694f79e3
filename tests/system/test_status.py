"""What a node says about itself and its cluster: /status, /debug/vars,
the smaller endpoints, and the flags that tune them."""
import time

import requests

from harness import leader_of, poll, wait_members


def first_known_leader(node, timeout=30):
    """Poll node's /status as fast as it answers until store.leader.addr is
    set; return that first store.leader seen with an address."""
    s = requests.Session()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError("node %s exited:\n%s" % (node.id, node.logs()[-2000:]))
        try:
            lr = s.get(node.url + "/status?key=store.leader", timeout=2).json()
        except (requests.RequestException, ValueError):
            continue
        if lr.get("addr"):
            return lr
    raise AssertionError("node %s never reported a leader" % node.id)


def test_leader_id_known_as_soon_as_its_address(cluster):
    """A node that reports the leader's address reports its node ID too,
    from the very first /status that names it: right after a join, while
    the joiner is still catching up with the log (rqlite's e2e helpers
    check exactly this, and a joiner used to know the address first)."""
    n1 = cluster.node(1).start().wait_ready()
    # A log to catch up with, so that the leader is heard from well before
    # its entries are applied.
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"])
    for i in range(20):
        n1.execute([["INSERT INTO t(v) VALUES(randomblob(?))", 200000]] * 5)
    want = {"node_id": "1", "addr": n1.raft_addr}
    for i in range(2, 7):
        n = cluster.node(i).start(join=n1.raft_addr)
        assert first_known_leader(n) == want, "node %d" % i
        # ready with it (rqlite's e2e helpers ask /readyz next)
        assert requests.get(n.url + "/readyz").status_code == 200
        # and its own entry in the configuration carries its own ID
        st = n.status()["store"]
        assert st["leader"] == want
        assert any(x["id"] == str(i) for x in st["nodes"]), st["nodes"]
        assert st["raft"]["voter"] is True
    wait_members(n1, 6)
