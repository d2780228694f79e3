"""Security: an -auth file that cannot be read, TLS files that do not load,
and TLS flags that ask for what the others do not give refuse the start
(test_auth.py has the rest of -auth, test_https.py HTTPS, test_node_tls.py
node-to-node TLS); the database image is node-to-node
traffic, on the Raft port only; /join and /notify reject hostile input
without touching the cluster configuration."""
import os
import socket

from harness import free_port, leader_of, listening, output_at_exit, poll, start_bare, wait_members


def test_security_flags_refuse_to_start(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text('[{"username": "fiona", "password": "secret1", "perms": ["all"]}]\n')
    missing = str(tmp_path / "no" / "such.json")
    cases = [
        (["-auth", missing], "fatal: cannot read -auth file %s: No such file or directory" % missing),
        # Node TLS is built: a certificate that does not load stops the start.
        (["-node-cert", str(auth), "-node-key", str(auth)], "fatal: node-to-node TLS: cannot load certificate"),
        (["-node-ca-cert", str(auth)], "fatal: -node-ca-cert requires -node-cert and -node-key"),
        (["-http-verify-client"], "fatal: -http-verify-client requires -http-cert and -http-key"),
    ]
    for extra, message in cases:
        proc, http, data = start_bare(tmp_path, extra)
        out, err = output_at_exit(proc)
        assert proc.returncode == 1, (extra, proc.returncode, err)
        assert message in err.decode(), (extra, err)
        # main() creates the data directory, then starts the HTTP server: a
        # refusal leaves no directory, so the port was never bound.
        assert not os.path.exists(data), extra
        assert b"rqlited starting" not in out + err
        assert not listening(http)

    # Control: the same command line without the security flag starts and
    # serves its HTTP port (so the checks above are not vacuous).
    proc, http, data = start_bare(tmp_path, ["-node-verify-client=false", "-http-verify-client=false", "-auth", ""])
    try:
        poll(lambda: proc.poll() is None and listening(http), timeout=30, what="control node listening")
        assert os.path.isdir(data)
    finally:
        proc.kill()
        proc.communicate(timeout=10)



def fetch_image(raft_addr, timeout=30):
    """A node's database image over its Raft port (CLUSTER_IMAGE_MAGIC in
    src/cluster/cluster.h): 24-byte headers, then exactly size bytes."""
    import struct
    host, port = raft_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(b"RQIMAGE\n")

        def read(n):
            out = b""
            while len(out) < n:
                chunk = s.recv(min(1 << 20, n - len(out)))
                assert chunk, "connection closed after %d of %d bytes" % (len(out), n)
                out += chunk
            return out
        while True:
            tag, a, b = struct.unpack("<8sQQ", read(24))
            if tag == b"RQIMGCP\n":
                continue
            assert tag == b"RQIMGOK\n", (tag, read(a) if tag == b"RQIMGER\n" else None)
            data = read(a)
            assert s.recv(1) == b""  # nothing after the image
            return data


def test_image_only_on_raft_port(three, tmp_path):
    import sqlite3
    import requests
    cluster, nodes = three
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE img (id INTEGER PRIMARY KEY, v TEXT)"])
    leader.execute([["INSERT INTO img(v) VALUES(?)", "row %d" % i] for i in range(50)])
    for n in nodes:
        poll(lambda: n.count("img") == 50, what="rows on node %s" % n.id)
        # anyone who reaches the HTTP API cannot download the database
        r = requests.get(n.url + "/_rq/image", timeout=10)
        assert r.status_code == 404
        # the node-to-node port serves a consistent copy
        data = fetch_image(n.raft_addr)
        assert data[:16] == b"SQLite format 3\x00"
        path = str(tmp_path / ("image-%s.sqlite" % n.id))
        with open(path, "wb") as f:
            f.write(data)
        db = sqlite3.connect(path)
        try:
            assert db.execute("SELECT COUNT(*), MAX(v) FROM img").fetchone() == (50, "row 9")
        finally:
            db.close()


def _hostile_bodies():
    """Bodies /join and /notify must refuse. Most are well-formed joins of a
    non-voter '9' at an address nobody serves, apart from one bad detail:
    accepted, they would add a fourth member (a non-voter needs no catch-up
    to be added, so such a join would succeed at once)."""
    import json
    good = {"id": "9", "addr": "127.0.0.1:9", "api_addr": "http://127.0.0.1:8", "voter": False}

    def with_(**kw):
        d = dict(good)
        for k, v in kw.items():
            if v is KeyError:
                d.pop(k, None)
            else:
                d[k] = v
        return json.dumps(d).encode()

    raw = [b"", b"{", b"[]", b"null", b'"x"', b"123", b"\xff\xfe\x00\x01",
           json.dumps([good]).encode(),
           json.dumps(good).encode() + b" {}",
           b'{"id":"9","id":"10","addr":"127.0.0.1:9","voter":false}',
           b'{"id":"9\\u0000","addr":"127.0.0.1:9","voter":false}',
           b'{"id":"9","addr":"127.0.0.1:9\\u0000","voter":false}',
           b'{"id":' + b"[" * 3000 + b"]" * 3000 + b',"addr":"127.0.0.1:9","voter":false}']
    typed = [with_(id=9), with_(id=None), with_(id=["9"]), with_(id={"x": {"y": "9"}}), with_(id=True),
             with_(addr=9), with_(addr={"host": "127.0.0.1", "port": 9}), with_(addr=["127.0.0.1:9"]),
             with_(api_addr=8), with_(api_addr={"u": "http://127.0.0.1:8"}),
             with_(voter="false"), with_(voter=0), with_(voter=None),
             with_(id=KeyError), with_(addr=KeyError),
             with_(extra={"nested": [{"deep": True}]})]
    strings = [with_(id="x" * 256), with_(id="x" * 1000000), with_(addr="a" * 1000000 + ":9"),
               with_(api_addr="http://" + "a" * 300 + ":8"), with_(id=""), with_(addr=""),
               with_(id="9\u0001"), with_(id="9\n"), with_(id="\u001b[31m9"), with_(id="9\u007f"),
               with_(addr="127.0.0.1:9\r\n")]
    ports = [with_(addr="127.0.0.1:" + p) for p in ("0", "65536", "99999999999", "-1", "", "abc", "1.5", "9x",
                                                     " 9")]
    ports += [with_(addr="127.0.0.1"), with_(addr="http://127.0.0.1:9"), with_(addr=":9"),
              with_(addr="host name:9"), with_(addr="::1:9"),
              with_(api_addr="127.0.0.1:8"), with_(api_addr="javascript:alert(1)"),
              with_(api_addr="http://127.0.0.1:0"), with_(api_addr="http://127.0.0.1:8/x")]
    return raw + typed + strings + ports


def test_join_notify_reject_hostile_input(three):
    import requests
    cluster, nodes = three
    leader = leader_of(nodes)
    leader.execute(["CREATE TABLE h (id INTEGER PRIMARY KEY, v TEXT)"])
    for body in _hostile_bodies():
        for n in nodes:
            for path in ("/join", "/notify"):
                r = requests.post(n.url + path, data=body, timeout=10, allow_redirects=False,
                                  headers={"Content-Type": "application/json"})
                assert r.status_code == 400, (n.id, path, body[:200], r.status_code, r.text[:200])
                assert r.text.strip(), (path, body[:200])  # a reason
                assert len(r.text) < 200
        # after every body: a later one must not undo what an earlier did
        assert sorted(m["id"] for m in leader.nodes()) == ["1", "2", "3"], body[:200]
    # Exactly the three original members, all healthy, on every node.
    for n in nodes:
        members = n.nodes()
        assert sorted(m["id"] for m in members) == ["1", "2", "3"], members
        assert all(m["voter"] and m["reachable"] for m in members), members
        assert n.proc.poll() is None
    wait_members(leader, 3)
    r = leader.execute([["INSERT INTO h(v) VALUES(?)", "still writable"]])
    assert r["results"][0]["rows_affected"] == 1
    for n in nodes:
        poll(lambda: n.count("h") == 1, what="the write on node %s" % n.id)
    # A well-formed join still works (and is undone): validation is not a wall.
    r = requests.post(leader.url + "/join", json={"id": "9", "addr": "127.0.0.1:%d" % free_port(),
                                                  "voter": False}, timeout=10)
    assert r.status_code == 200, r.text
    assert sorted(m["id"] for m in leader.nodes()) == ["1", "2", "3", "9"]
    r = requests.delete(leader.url + "/remove", json={"id": "9"}, timeout=10)
    assert r.status_code == 200, r.text
    poll(lambda: sorted(m["id"] for m in leader.nodes()) == ["1", "2", "3"], what="node 9 removed")
