"""Security: flags this build cannot honour refuse the start; the database
image is node-to-node traffic, on the Raft port only."""
import os
import socket
import subprocess

from harness import RQLITED, FAST, free_port, leader_of, poll, wait_members


def _listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(tmp_path, extra):
    http, raft = free_port(), free_port()
    data = str(tmp_path / ("data-%d" % http))
    args = [RQLITED, "-node-id", "1", "-http-addr", "127.0.0.1:%d" % http,
            "-raft-addr", "127.0.0.1:%d" % raft] + FAST + extra + [data]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE), http, data


def test_security_flags_refuse_to_start(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text('[{"username": "fiona", "password": "secret1", "perms": ["all"]}]\n')
    missing = str(tmp_path / "no" / "such.json")
    cases = [
        (["-auth", str(auth)], "fatal: -auth is not supported by this build yet: refusing to start without "
                               "the access control it asks for"),
        (["-auth", missing], "fatal: cannot read -auth file %s: No such file or directory" % missing),
        (["-node-cert", str(auth), "-node-key", str(auth)], "fatal: -node-cert is not supported by this build yet"),
        (["-http-verify-client"], "fatal: -http-verify-client is not supported by this build yet"),
    ]
    for extra, message in cases:
        proc, http, data = _run(tmp_path, extra)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert proc.returncode == 1, (extra, proc.returncode, err)
        assert message in err.decode(), (extra, err)
        # main() creates the data directory, then starts the HTTP server: a
        # refusal leaves no directory, so the port was never bound.
        assert not os.path.exists(data), extra
        assert b"rqlited starting" not in out + err
        assert not _listening(http)

    # Control: the same command line without the security flag starts and
    # serves its HTTP port (so the checks above are not vacuous).
    proc, http, data = _run(tmp_path, ["-http-verify-client=false", "-auth", ""])
    try:
        poll(lambda: proc.poll() is None and _listening(http), timeout=30, what="control node listening")
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
