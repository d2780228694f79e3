"""-cdc-config: change events delivered to an HTTP sink, at least once and in
order, through failures of the sink, kill -9 of the leader and of a single
node; nothing from failed statements or rolled-back transactions; starts
refused for bad configurations and on non-voters."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import harness
from harness import leader_of, output_at_exit, poll, start_bare


class Sink:
    """An HTTP endpoint on 127.0.0.1 recording every envelope it accepts.
    The first `refuse` POSTs get 503; while `down` is set, all do."""

    def __init__(self, refuse=0):
        self.lock = threading.Lock()
        self.refuse = refuse
        self.down = False
        self.accepted = []   # envelopes, in arrival order
        self.refused = 0
        self.content_types = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.content_types.add(self.headers.get("Content-Type"))
                    if sink.down or sink.refuse > 0:
                        sink.refuse = max(0, sink.refuse - 1)
                        sink.refused += 1
                        code = 503
                    else:
                        sink.accepted.append(json.loads(body))
                        code = 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/cdc" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def messages(self):
        """Every payload message received, in arrival order."""
        with self.lock:
            return [m for env in self.accepted for m in env["payload"]]

    def by_index(self):
        return {m["index"]: m for m in self.messages()}

    def events(self):
        return [e for m in sorted(self.by_index().values(), key=lambda m: m["index"]) for e in m["events"]]


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def write_config(tmp_path, name="cdc.json", **fields):
    p = tmp_path / name
    p.write_text(json.dumps(fields))
    return str(p)


def fast_config(tmp_path, url, **more):
    """Short delays (nanoseconds, as the file takes them) so tests run quickly."""
    fields = dict(endpoint=url, max_batch_delay=50_000_000, high_watermark_interval=200_000_000,
                  transmit_min_backoff=100_000_000, transmit_max_backoff=200_000_000, transmit_timeout=2_000_000_000)
    fields.update(more)
    return write_config(tmp_path, **fields)


def first_arrivals_in_order(sink):
    """The index of each message as first received must only increase."""
    seen, order = set(), []
    for m in sink.messages():
        if m["index"] not in seen:
            seen.add(m["index"])
            order.append(m["index"])
    return order == sorted(order)


def vars_of(node):
    return requests.get(node.url + "/debug/vars", timeout=5).json()["cdc.service"]


def test_events_before_after_and_order_through_a_refusing_sink(cluster, tmp_path):
    s = Sink(refuse=3)
    try:
        cfg = fast_config(tmp_path, s.url, service_id="svc-7")
        n = cluster.node(1, ["-cdc-config", cfg]).start().wait_ready()
        n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, r REAL, b BLOB)"])
        n.execute([["INSERT INTO t(id, name, r, b) VALUES(?, ?, ?, x'0102ff')", 5, "a<b", 1.5]])
        n.execute(["UPDATE t SET name='z', r=2 WHERE id=5"])
        n.execute(["INSERT INTO t(id, name) VALUES(6, 'six')", "DELETE FROM t WHERE id=5"])
        n.execute(["UPDATE t SET name='none' WHERE id=999"])  # changes nothing: no message
        n.execute(["INSERT INTO t(id, name) VALUES(7, 'marker')"])
        poll(lambda: any(e["op"] == "INSERT" and e["new_row_id"] == 7 for e in s.events()), what="marker event")
        ev = s.events()
        assert ev == [
            {"op": "INSERT", "table": "t", "new_row_id": 5,
             "after": {"b": "AQL/", "id": 5, "name": "a<b", "r": 1.5}},
            {"op": "UPDATE", "table": "t", "new_row_id": 5, "old_row_id": 5,
             "before": {"b": "AQL/", "id": 5, "name": "a<b", "r": 1.5},
             "after": {"b": "AQL/", "id": 5, "name": "z", "r": 2}},
            {"op": "INSERT", "table": "t", "new_row_id": 6,
             "after": {"b": None, "id": 6, "name": "six", "r": None}},
            {"op": "DELETE", "table": "t", "old_row_id": 5,
             "before": {"b": "AQL/", "id": 5, "name": "z", "r": 2}},
            {"op": "INSERT", "table": "t", "new_row_id": 7,
             "after": {"b": None, "id": 7, "name": "marker", "r": None}},
        ]
        assert s.refused >= 3, "the sink's refusals were retried"
        assert first_arrivals_in_order(s)
        with s.lock:
            envs = list(s.accepted)
        assert all(e["service_id"] == "svc-7" and e["node_id"] == "1" for e in envs)
        assert all(isinstance(m["commit_timestamp"], int) and m["commit_timestamp"] > 1600000000000
                   for m in s.messages())
        assert s.content_types == {"application/json"}
        v = vars_of(n)
        assert v["retries"] >= 3 and v["num_events_tx_failed"] >= 3 and v["num_events_tx_ok"] >= 1
    finally:
        s.close()


def test_failed_statements_and_rollbacks_emit_nothing(cluster, tmp_path, sink):
    n = cluster.node(1, ["-cdc-config", fast_config(tmp_path, sink.url)]).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"])
    n.execute(["INSERT INTO t(id, v) VALUES(1, 'one')"])
    # A failed statement among others (each on its own savepoint).
    r = n.execute(["INSERT INTO t(id, v) VALUES(2, 'two')", "INSERT INTO t(id, v) VALUES(3, 'one')",
                   "INSERT INTO t(id, v) VALUES(4, 'four')"])
    assert "error" in r["results"][1]
    # A lone failing statement, a multi-row one that fails at its second row.
    n.execute(["INSERT INTO t(id, v) VALUES(5, 'one')"])
    n.execute(["INSERT INTO t(id, v) VALUES(6, 'six'), (7, 'one')"])
    # ?transaction: all or nothing.
    r = n.execute(["INSERT INTO t(id, v) VALUES(8, 'eight')", "INSERT INTO t(id, v) VALUES(9, 'one')"],
                  params="?transaction")
    assert any("error" in x for x in r["results"])
    # The client's own transaction rolled back, and a savepoint rolled back.
    n.execute(["BEGIN", "INSERT INTO t(id, v) VALUES(10, 'ten')", "ROLLBACK"])
    n.execute(["BEGIN", "INSERT INTO t(id, v) VALUES(11, 'eleven')", "SAVEPOINT sp1",
               "INSERT INTO t(id, v) VALUES(12, 'twelve')", "ROLLBACK TO sp1", "RELEASE sp1", "COMMIT"])
    n.execute(["INSERT INTO t(id, v) VALUES(99, 'marker')"])
    poll(lambda: any(e.get("new_row_id") == 99 for e in sink.events()), what="marker event")
    got = sorted(e["new_row_id"] for e in sink.events())
    assert got == [1, 2, 4, 11, 99], got
    rows = n.query("SELECT id FROM t ORDER BY id", level="strong")["results"][0]["values"]
    assert [x[0] for x in rows] == got, "the events are the table's rows"


def test_row_ids_only_and_table_filter(cluster, tmp_path, sink):
    cfg = fast_config(tmp_path, sink.url, row_ids_only=True, table_filter="^keep")
    n = cluster.node(1, ["-cdc-config", cfg]).start().wait_ready()
    n.execute(["CREATE TABLE keep_a (id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE skip_b (id INTEGER PRIMARY KEY)"])
    n.execute(["INSERT INTO skip_b(id) VALUES(1)", "INSERT INTO keep_a(id, v) VALUES(3, 'x')"])
    n.execute(["INSERT INTO skip_b(id) VALUES(2)"])  # filtered out: no message at all
    n.execute(["UPDATE keep_a SET id=4 WHERE id=3"])
    poll(lambda: len(sink.events()) >= 2, what="two events")
    assert sink.events() == [{"op": "INSERT", "table": "keep_a", "new_row_id": 3},
                             {"op": "UPDATE", "table": "keep_a", "new_row_id": 4, "old_row_id": 3}]
    assert "service_id" not in sink.accepted[0]


def write_rows(nodes, count, stop_at=None, on_stop=None):
    """INSERT rows v=0..count-1 one request each, through whichever node
    leads; returns the values acknowledged. on_stop() runs once after
    stop_at rows."""
    acked = []
    i = 0
    while i < count:
        if stop_at is not None and i == stop_at and on_stop:
            on_stop()
            on_stop = None
        live = [n for n in nodes if n.proc and n.proc.poll() is None]
        try:
            ldr = leader_of(live, timeout=30)
            r = ldr.execute([["INSERT INTO w(v) VALUES(?)", i]], timeout=5)
            if "error" not in r["results"][0]:
                acked.append(i)
                i += 1
        except (requests.RequestException, AssertionError):
            pass
    return acked


def test_leader_kill9_midstream_loses_nothing(cluster, tmp_path, sink):
    cfg = fast_config(tmp_path, sink.url)
    nodes = cluster.start_three(["-cdc-config", cfg])
    ldr = leader_of(nodes)
    ldr.execute(["CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)"])
    killed = []

    def kill_leader():
        old = leader_of(nodes)
        old.kill()
        killed.append(old)

    write_rows(nodes, 300, stop_at=120, on_stop=kill_leader)
    survivors = [n for n in nodes if n is not killed[0]]
    new = leader_of(survivors)
    rows = new.query("SELECT v FROM w", level="strong")["results"][0]["values"]
    values = {r[0] for r in rows}
    assert len(values) >= 300

    def delivered():
        got = {e["after"]["v"] for e in sink.events() if e["op"] == "INSERT"}
        return values <= got
    poll(delivered, timeout=60, what="an INSERT event for every row")
    assert first_arrivals_in_order(sink)
    # The followers drop what the new leader delivered once its mark reaches them.
    last = max(sink.by_index())
    for f in survivors:
        if f is new:
            continue
        poll(lambda: requests.get(f.url + "/status", timeout=5).json()["cdc"]["highwater_mark"] >= last,
             what="follower %s's high-water mark" % f.id)
        poll(lambda: vars_of(f)["fifo_size"] == 0, what="follower %s's queue pruned" % f.id)
    poll(lambda: vars_of(new)["fifo_size"] == 0, what="leader's queue pruned")


def test_followers_prune_after_the_high_water_mark(cluster, tmp_path, sink):
    cfg = fast_config(tmp_path, sink.url)
    nodes = cluster.start_three(["-cdc-config", cfg])
    ldr = leader_of(nodes)
    ldr.execute(["CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)"])
    sink.down = True
    for i in range(20):
        ldr.execute([["INSERT INTO w(v) VALUES(?)", i]])
    followers = [n for n in nodes if n is not ldr]
    for f in followers:  # queued everywhere while the sink is down
        poll(lambda: vars_of(f)["fifo_size"] == 20, what="20 entries queued on follower %s" % f.id)
    sink.down = False
    poll(lambda: len([e for e in sink.events() if e["op"] == "INSERT"]) == 20, what="20 events")
    for f in followers:
        poll(lambda: vars_of(f)["fifo_size"] == 0, what="follower %s pruned" % f.id)
        assert requests.get(f.url + "/status", timeout=5).json()["cdc"]["highwater_mark"] == max(sink.by_index())


def test_single_node_kill9_and_restart_loses_nothing(cluster, tmp_path, sink):
    cfg = fast_config(tmp_path, sink.url)
    n = cluster.node(1, ["-cdc-config", cfg]).start().wait_ready()
    n.execute(["CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)"])
    sink.down = True  # nothing delivered: everything must survive in the queue
    for i in range(100):
        n.execute([["INSERT INTO w(v) VALUES(?)", i]])
    n.kill()
    n.start().wait_ready()
    for i in range(100, 150):
        n.execute([["INSERT INTO w(v) VALUES(?)", i]])
    sink.down = False
    poll(lambda: {e["after"]["v"] for e in sink.events() if e["op"] == "INSERT"} == set(range(150)),
         timeout=60, what="150 INSERT events")
    assert first_arrivals_in_order(sink)
    # Replay after the restart added nothing twice to the queue.
    assert sorted(sink.by_index()) == sorted(set(sink.by_index()))


def test_non_voter_refused(tmp_path):
    proc, _, _ = start_bare(tmp_path, ["-raft-non-voter", "-cdc-config", "stdout"])
    out, err = output_at_exit(proc)
    assert proc.returncode != 0
    assert b"CDC cannot be enabled on non-voting nodes" in err


BAD_CONFIGS = {
    "not_json": "this is not json",
    "array": "[1, 2]",
    "bad_regex": json.dumps({"endpoint": "http://127.0.0.1:1/x", "table_filter": "(unclosed"}),
    "duration_string": json.dumps({"endpoint": "http://127.0.0.1:1/x", "max_batch_delay": "1s"}),
    "duration_float": json.dumps({"endpoint": "http://127.0.0.1:1/x", "transmit_timeout": 1.5}),
    "batch_size_string": json.dumps({"endpoint": "http://127.0.0.1:1/x", "max_batch_size": "10"}),
    "row_ids_only_int": json.dumps({"endpoint": "http://127.0.0.1:1/x", "row_ids_only": 1}),
    "no_endpoint": json.dumps({"service_id": "x"}),
    "ftp_endpoint": json.dumps({"endpoint": "ftp://127.0.0.1/x"}),
    "retry_policy_7": json.dumps({"endpoint": "http://127.0.0.1:1/x", "transmit_retry_policy": 7}),
    "negative_interval": json.dumps({"endpoint": "http://127.0.0.1:1/x", "high_watermark_interval": -5}),
    "missing_ca": json.dumps({"endpoint": "https://127.0.0.1:1/x", "tls": {"ca_cert_file": "/nonexistent/ca.pem"}}),
    "cert_without_key": json.dumps({"endpoint": "https://127.0.0.1:1/x", "tls": {"cert_file": "/etc/hostname"}}),
    "tls_not_object": json.dumps({"endpoint": "https://127.0.0.1:1/x", "tls": "yes"}),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS) + ["unreadable_file", "directory"])
def test_bad_configs_refused_at_start(tmp_path, name):
    if name == "unreadable_file":
        path = str(tmp_path / "missing.json")
    elif name == "directory":
        path = str(tmp_path)
    else:
        path = str(tmp_path / ("%s.json" % name))
        with open(path, "w") as f:
            f.write(BAD_CONFIGS[name])
    proc, port, data = start_bare(tmp_path, ["-cdc-config", path])
    out, err = output_at_exit(proc)
    assert proc.returncode != 0, "started with a bad CDC config (%s)" % name
    assert b"CDC" in err, err
    assert not harness.listening(port)


def test_unreadable_tls_key_refused(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    key = tmp_path / "k.pem"
    key.mkdir()  # cannot be read as a file, even by root
    cfg = write_config(tmp_path, endpoint="https://127.0.0.1:1/x", tls={"cert_file": str(cert), "key_file": str(key)})
    proc, _, _ = start_bare(tmp_path, ["-cdc-config", cfg])
    _, err = output_at_exit(proc)
    assert proc.returncode != 0 and b"key_file" in err
