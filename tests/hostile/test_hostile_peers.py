"""Hostile peers: the services a node talks to on its own initiative (an S3
server for -auto-backup/-auto-restore, the CDC endpoint) misbehave. The
node answers its clients throughout, counts and logs the failure, never
hangs its shutdown, and never lets what comes back fill its disk."""
import gzip
import http.server
import json
import os
import shutil
import socket
import sqlite3
import threading
import time

import pytest
import requests

import harness
from harness import poll


class Peer(http.server.BaseHTTPRequestHandler):
    """A scripted server: behaviour(handler, method) answers each request."""
    protocol_version = "HTTP/1.1"
    behaviour = None

    def log_message(self, *a):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        left = n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        return n

    def do_HEAD(self):
        type(self).behaviour(self, "HEAD")

    def do_GET(self):
        type(self).behaviour(self, "GET")

    def do_PUT(self):
        self._body()
        type(self).behaviour(self, "PUT")

    def do_POST(self):
        self._body()
        type(self).behaviour(self, "POST")


def answer(h, status, body=b"", headers=()):
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


@pytest.fixture
def peer():
    servers = []

    def start(behaviour):
        cls = type("P", (Peer,), {"behaviour": staticmethod(behaviour)})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1]
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def nodes(tmp_path):
    made = []

    def node(node_id, extra):
        n = harness.Node(tmp_path, node_id, extra)
        made.append(n)
        return n
    yield node
    for n in made:
        try:
            n.kill()
        except Exception:
            pass


def s3_cfg(tmp_path, port, name, kind="backup", **extra):
    cfg = {"version": 1, "type": "s3",
           "sub": {"access_key_id": "k", "secret_access_key": "s", "endpoint": "http://127.0.0.1:%d" % port,
                   "region": "us-east-1", "bucket": "b", "path": "db.gz", "force_path_style": True}}
    cfg.update({"interval": "300ms"} if kind == "backup" else {"timeout": "10s"})
    cfg.update(extra)
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return str(p)


def uploader(n):
    return requests.get(n.url + "/debug/vars?key=uploader", timeout=10).json()["uploader"]


def still_serving(n):
    n.execute([["INSERT INTO t(v) VALUES(?)", "x"]])
    return n.query("SELECT COUNT(*) FROM t")["results"][0]["values"][0][0]


def test_s3_that_answers_garbage_or_errors(tmp_path, peer, nodes):
    """HEAD with a huge junk metadata header, PUT answered 500 with HTML:
    each upload fails, is counted and retried; the node serves."""
    def behaviour(h, method):
        if method == "HEAD":
            answer(h, 200, headers=[("x-amz-meta-x-rqlite-auto-backup-id", "z" * 60000)])
        else:
            answer(h, 500, b"<html>" + b"x" * 200000 + b"</html>", [("Content-Type", "text/html")])
    port = peer(behaviour)
    n = nodes(1, ["-auto-backup", s3_cfg(tmp_path, port, "b.json")]).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    for i in range(3):
        still_serving(n)
        poll(lambda: uploader(n)["num_uploads_fail"] >= i + 1, timeout=30, what="failed upload %d" % (i + 1))
    assert uploader(n)["num_uploads_ok"] == 0
    assert n.proc.poll() is None


def test_s3_that_never_answers_does_not_hold_the_node_or_its_stop(tmp_path, peer, nodes):
    """A PUT the server takes and never answers: writes and reads go on,
    and SIGTERM still stops the node promptly."""
    stuck = threading.Event()

    def behaviour(h, method):
        if method == "HEAD":
            answer(h, 404)
            return
        stuck.set()
        time.sleep(120)  # never answers within the test
    port = peer(behaviour)
    n = nodes(1, ["-auto-backup", s3_cfg(tmp_path, port, "b.json")]).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    assert stuck.wait(30), "no upload reached the server"
    for i in range(20):
        assert still_serving(n) == i + 1
    t0 = time.monotonic()
    n.proc.terminate()
    assert n.wait_exit(timeout=20) == 0
    assert time.monotonic() - t0 < 15


def restore_node(nodes, tmp_path, port, node_id=1, extra=(), **cfg):
    path = s3_cfg(tmp_path, port, "r%d.json" % node_id, kind="restore", **cfg)
    return nodes(node_id, ["-auto-restore", path] + list(extra))


def serve_object(data):
    def behaviour(h, method):
        answer(h, 200, data, [("Content-Type", "application/octet-stream")])
    return behaviour


def test_restore_of_a_gzip_bomb_stops_at_the_load_limit(tmp_path, peer, nodes):
    """64 MiB of zeros gzipped to ~64 KiB, with -raft-max-entry-size 1 MiB:
    decompression stops at the limit (the disk is not filled), the start
    fails with a clear error; with continue_on_failure the node starts
    empty."""
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    assert len(bomb) < 200000
    port = peer(serve_object(bomb))
    n = restore_node(nodes, tmp_path, port, extra=["-raft-max-entry-size", "1048576"]).start()
    assert n.wait_exit(timeout=30) == 1
    assert "decompressed data exceeds 1048576 bytes" in n.logs(), n.logs()[-1000:]
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(n.dir) for f in fs)
    assert size < 8 << 20, size
    m = restore_node(nodes, tmp_path, port, node_id=2, extra=["-raft-max-entry-size", "1048576"],
                     continue_on_failure=True).start().wait_ready()
    assert "continuing with node startup anyway" in m.logs()
    m.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    assert still_serving(m) == 1


def test_restore_of_garbage_is_refused_at_start(tmp_path, peer, nodes):
    port = peer(serve_object(os.urandom(100000)))
    n = restore_node(nodes, tmp_path, port).start()
    assert n.wait_exit(timeout=30) == 1
    assert "is not a valid SQLite file" in n.logs(), n.logs()[-1000:]


def test_restore_of_a_corrupt_database_fails_the_load_not_the_node(tmp_path, peer, nodes):
    """A file with SQLite's header and a damaged body: the load through
    the log is refused (the image check), counted and logged; the node
    becomes ready, empty, and serves."""
    db = tmp_path / "src.db"
    c = sqlite3.connect(str(db))
    c.execute("CREATE TABLE big (v BLOB)")
    c.executemany("INSERT INTO big VALUES (randomblob(3000))", [()] * 200)
    c.commit()
    c.close()
    data = bytearray(db.read_bytes())
    for off in range(8192, len(data), 4096):  # every page but the first two: junk
        data[off:off + 64] = os.urandom(64)
    port = peer(serve_object(gzip.compress(bytes(data))))
    n = restore_node(nodes, tmp_path, port).start().wait_ready(timeout=60)
    logs = n.logs()
    assert "failed to auto-restore" in logs, logs[-1500:]
    v = requests.get(n.url + "/debug/vars?key=store", timeout=10).json()["store"]
    assert v["num_auto_restores_failed"] == 1 and v["num_auto_restores"] == 0
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    assert still_serving(n) == 1


def test_cdc_endpoint_that_hangs_then_recovers(tmp_path, peer, nodes):
    """The endpoint takes POSTs and never answers (transmit_timeout 500 ms,
    retries every 100 ms): writes go on unhindered; once it answers,
    everything queued arrives."""
    got = []
    hang = threading.Event()
    hang.set()

    def behaviour(h, method):
        if hang.is_set():
            time.sleep(3)
            return  # no answer: the connection is dropped after the sleep
        got.append(h)
        answer(h, 200)
    port = peer(behaviour)
    cfg = tmp_path / "cdc.json"
    cfg.write_text(json.dumps({"endpoint": "http://127.0.0.1:%d/cdc" % port, "transmit_timeout": 500_000_000,
                               "transmit_min_backoff": 100_000_000, "transmit_max_backoff": 200_000_000,
                               "max_batch_size": 50}))
    n = nodes(1, ["-cdc-config", str(cfg)]).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    t0 = time.monotonic()
    for i in range(100):
        assert still_serving(n) == i + 1
    assert time.monotonic() - t0 < 30  # the hung endpoint costs the writes nothing like its timeouts

    def cdc():
        return requests.get(n.url + "/debug/vars?key=cdc.service", timeout=10).json()["cdc.service"]
    poll(lambda: cdc()["fifo_size"] >= 100, timeout=30, what="events queued")
    hang.clear()
    poll(lambda: cdc()["fifo_size"] == 0, timeout=60, what="the queue delivered and pruned")
    assert got


def test_cdc_endpoint_with_an_endless_answer(tmp_path, nodes):
    """The endpoint answers 200 and then streams a body without end: the
    node's memory stays flat and the delivery counts (the body is not
    kept)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.5)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:  # closed at the end of the test
                return
            threading.Thread(target=endless, args=(c,), daemon=True).start()

    def endless(c):
        try:
            c.recv(65536)
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                c.sendall(chunk)
        except OSError:
            pass
        finally:
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    try:
        cfg = tmp_path / "cdc.json"
        cfg.write_text(json.dumps({"endpoint": "http://127.0.0.1:%d/cdc" % port, "transmit_timeout": 2_000_000_000,
                                   "transmit_min_backoff": 100_000_000}))
        n = nodes(1, ["-cdc-config", str(cfg)]).start().wait_ready()
        n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
        for _ in range(5):
            still_serving(n)
        rss0 = harness.proc_mb(n.proc.pid, "VmRSS")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            still_serving(n)
        assert harness.proc_mb(n.proc.pid, "VmHWM") < rss0 + 64, (rss0, harness.proc_mb(n.proc.pid, "VmHWM"))
        assert n.proc.poll() is None
    finally:
        stop.set()
        srv.close()


def test_backup_file_destination_removed_under_the_node(tmp_path, nodes):
    """-auto-backup's directory disappears after the start: uploads fail and
    are counted, the node serves; recreated, uploads resume."""
    d = tmp_path / "bk"
    d.mkdir()
    cfg = tmp_path / "f.json"
    cfg.write_text(json.dumps({"version": 1, "type": "file", "interval": "200ms",
                               "sub": {"dir": str(d), "name": "db.sqlite"}}))
    n = nodes(1, ["-auto-backup", str(cfg)]).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    poll(lambda: uploader(n)["num_uploads_ok"] >= 1, what="a first upload")
    shutil.rmtree(d)
    still_serving(n)
    poll(lambda: uploader(n)["num_uploads_fail"] >= 1, what="a failed upload")
    d.mkdir()
    ok = uploader(n)["num_uploads_ok"]
    still_serving(n)
    poll(lambda: uploader(n)["num_uploads_ok"] > ok, what="uploads resumed")
