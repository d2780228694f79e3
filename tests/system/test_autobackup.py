"""-auto-backup and -auto-restore against real object stores: s3rver (an
S3 server from npm, installed into build/ once) and the file type, plus a
recording HTTP server that checks the SigV4 signature independently
(s3rver accepts any V4 signature)."""
import glob
import gzip
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

import harness

S3RVER_VERSION = "3.7.1"
BUCKET = "rqbk"
KEY = "S3RVER"  # s3rver's built-in credentials
SECRET = "S3RVER"


def install_s3rver():
    """npm install into build/s3rver once; later runs reuse it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the S3 tests (make deps installs them)")
    prefix = os.path.abspath(os.path.join(harness.BUILD, "s3rver"))
    main = os.path.join(prefix, "node_modules", "s3rver", "bin", "s3rver.js")
    if not os.path.isfile(main):
        os.makedirs(prefix, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", prefix,
                        "s3rver@" + S3RVER_VERSION], check=True, capture_output=True, timeout=300)
    return main


class S3rver:
    """One s3rver on 127.0.0.1, its data in a directory of the test's, with
    the bucket made at start; stop() and start() keep port and data."""

    def __init__(self, tmp_path):
        self.main = install_s3rver()
        self.port = harness.free_port()
        self.dir = str(tmp_path / "s3rver")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = str(tmp_path / "s3rver.log")
        self.proc = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", self.main, "-d", self.dir, "-a", "127.0.0.1", "-p", str(self.port),
                                      "--configure-bucket", BUCKET], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        harness.poll(lambda: harness.listening(self.port), 30, what="s3rver listening")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    # s3rver lets unsigned requests through: the test reads what the node wrote.
    def get(self, key):
        r = requests.get("%s/%s/%s" % (self.endpoint, BUCKET, key), timeout=10)
        return r

    def head_id(self, key):
        r = requests.head("%s/%s/%s" % (self.endpoint, BUCKET, key), timeout=10)
        r.raise_for_status()
        return r.headers.get("x-amz-meta-x-rqlite-auto-backup-id")

    def keys(self, prefix):
        r = requests.get("%s/%s" % (self.endpoint, BUCKET), params={"prefix": prefix}, timeout=10)
        r.raise_for_status()
        return re.findall(r"<Key>([^<]+)</Key>", r.text)


@pytest.fixture
def s3(tmp_path):
    srv = S3rver(tmp_path).start()
    yield srv
    srv.stop()


def write_json(tmp_path, name, doc):
    p = str(tmp_path / name)
    with open(p, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def s3_sub(s3, path, **kw):
    sub = {"access_key_id": "$RQ_TEST_S3_KEY", "secret_access_key": "${RQ_TEST_S3_SECRET}",
           "endpoint": s3.endpoint, "region": "us-east-1", "bucket": BUCKET, "path": path,
           "force_path_style": True}
    sub.update(kw)
    return sub


def vars_of(node):
    r = requests.get(node.url + "/debug/vars", timeout=10)
    r.raise_for_status()
    return r.json()


def uploads(node):
    return vars_of(node)["uploader"]


def wait_uploads(node, field, at_least, timeout=30):
    return harness.poll(lambda: uploads(node)[field] >= at_least and uploads(node), timeout,
                        what="uploader.%s >= %d" % (field, at_least))


def sqlite_rows(data, tmp_path, sql):
    """The rows sql gives on the SQLite image data (bytes)."""
    p = str(tmp_path / ("image-%d.db" % time.monotonic_ns()))
    with open(p, "wb") as f:
        f.write(data)
    con = sqlite3.connect(p)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def backup_node(cluster, tmp_path, cfg, node_id=1, extra=None):
    path = write_json(tmp_path, "backup-%s.json" % node_id, cfg)
    n = cluster.node(node_id, ["-auto-backup", path] + (extra or []))
    n.env = {"RQ_TEST_S3_KEY": KEY, "RQ_TEST_S3_SECRET": SECRET}
    return n


def test_s3_backup_skip_and_restore(cluster, s3, tmp_path):
    """The object appears, gzipped SQLite with the rows and the applied index
    as metadata; nothing new is skipped; a restart with the same data skips
    on the stored ID; a fresh node restores from it, and is not ready until
    the rows are there."""
    key = "backups/db.sqlite.gz"
    cfg = {"version": 1, "type": "s3", "interval": "500ms", "sub": s3_sub(s3, key)}
    n1 = backup_node(cluster, tmp_path, cfg).start().wait_ready()
    n1.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)"] +
               ["INSERT INTO foo(name) VALUES('row%d')" % i for i in range(25)])
    wait_uploads(n1, "num_uploads_ok", 1)
    r = harness.poll(lambda: s3.get(key).status_code == 200 and s3.get(key), 10, what="object")
    image = gzip.decompress(r.content)
    assert image[:16] == b"SQLite format 3\x00"
    assert sqlite_rows(image, tmp_path, "SELECT COUNT(*), MAX(name) FROM foo") == [(25, "row9")]
    status = n1.status()
    ab = status["auto_backups"]
    assert ab["upload_destination"] == "%s/%s/%s" % (s3.endpoint, BUCKET, key)
    assert ab["upload_interval"] == "500ms"
    assert s3.head_id(key) == ab["last_index"] == str(status["store"]["db_applied_index"])
    # Nothing new: skipped, not uploaded again.
    before = uploads(n1)
    harness.poll(lambda: uploads(n1)["num_uploads_skipped"] >= before["num_uploads_skipped"] + 3, 15,
                 what="skipped uploads")
    assert uploads(n1)["num_uploads_ok"] == before["num_uploads_ok"]
    assert "completed auto upload of" in n1.logs()

    # A restart with the same data: the first upload is skipped on the ID.
    n1.stop()
    n1.start().wait_ready()
    wait_uploads(n1, "num_uploads_skipped_id", 1)
    assert uploads(n1)["num_uploads_ok"] == 0
    # Something new is uploaded again, under a new ID.
    n1.execute(["INSERT INTO foo(name) VALUES('late')"])
    wait_uploads(n1, "num_uploads_ok", 1)
    harness.poll(lambda: s3.head_id(key) == str(n1.status()["store"]["db_applied_index"]), 10,
                 what="new ID stored")

    # A fresh node restores from the object: never ready without the rows.
    rcfg = write_json(tmp_path, "restore.json", {"version": 1, "type": "s3", "timeout": "10s",
                                                  "sub": s3_sub(s3, key)})
    n2 = cluster.node(2, ["-auto-restore", rcfg])
    n2.env = {"RQ_TEST_S3_KEY": KEY, "RQ_TEST_S3_SECRET": SECRET}
    n2.start()
    seen_ready = []

    def restored():
        if n2.proc.poll() is not None:
            raise AssertionError("node exited:\n" + n2.logs()[-2000:])
        ready = n2.ready()
        count = n2.count("foo")
        if ready:
            seen_ready.append(count)
            assert count == 26, "ready before the restore was loaded (count %r)" % count
        return ready and count == 26
    harness.poll(restored, 30, what="restored node ready with the rows")
    assert all(c == 26 for c in seen_ready)
    store_vars = vars_of(n2)["store"]
    assert store_vars["num_auto_restores"] == 1
    assert store_vars["num_auto_restores_failed"] == 0
    assert vars_of(n2)["downloader"]["num_downloads_ok"] == 1
    assert "node auto-restored successfully" in n2.logs()
    # A restart of the restored node has data: nothing is downloaded.
    n2.stop()
    n2.start().wait_ready()
    assert vars_of(n2)["downloader"]["num_downloads_ok"] == 0
    assert n2.count("foo") == 26
    assert "auto-restore requested, but data already exists" in n2.logs()


def test_s3_restore_skipped_on_the_nodes_that_do_not_lead(cluster, s3, tmp_path):
    """Three nodes formed with -bootstrap-expect, all with -auto-restore:
    the first leader loads the file, the others skip it (another node led
    first), and all end up with the rows through the log."""
    db = str(tmp_path / "src.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE foo (id INTEGER PRIMARY KEY)")
    con.executemany("INSERT INTO foo VALUES (?)", [(i,) for i in range(10)])
    con.commit()
    con.close()
    with open(db, "rb") as f:
        body = gzip.compress(f.read())
    requests.put("%s/%s/three.gz" % (s3.endpoint, BUCKET), data=body, timeout=30).raise_for_status()
    rcfg = write_json(tmp_path, "restore.json", {"version": 1, "type": "s3", "sub": s3_sub(s3, "three.gz")})
    nodes = [cluster.node(i, ["-auto-restore", rcfg, "-bootstrap-expect", "3"]) for i in (1, 2, 3)]
    joins = ",".join(n.raft_addr for n in nodes)
    for n in nodes:
        n.env = {"RQ_TEST_S3_KEY": KEY, "RQ_TEST_S3_SECRET": SECRET}
        n.start(join=joins)
    for n in nodes:
        n.wait_ready(60)
    leader = harness.leader_of(nodes)
    for n in nodes:
        harness.poll(lambda: n.count("foo") == 10, 30, what="rows on node %s" % n.id)
        sv = vars_of(n)["store"]
        want = (1, 0) if n is leader else (0, 1)
        assert (sv["num_auto_restores"], sv["num_auto_restores_skipped"]) == want, (n.id, sv)
        assert vars_of(n)["downloader"]["download_bytes"] == len(body)
    assert any("different node became leader, not performing auto-restore" in n.logs() for n in nodes)


def test_s3_restore_held_not_ready_while_loading(cluster, s3, tmp_path):
    """A 40 MB database, not gzipped, loads for a while after the node is
    leader: /readyz never says ready before all its rows are there."""
    db = str(tmp_path / "big.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)")
    con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) "
                "INSERT INTO big SELECT i, randomblob(1000000) FROM n")
    con.commit()
    con.close()
    with open(db, "rb") as f:
        requests.put("%s/%s/big.db" % (s3.endpoint, BUCKET), data=f, timeout=60).raise_for_status()
    rcfg = write_json(tmp_path, "restore.json", {"version": 1, "type": "s3", "sub": s3_sub(s3, "big.db")})
    n = cluster.node(1, ["-auto-restore", rcfg])
    n.env = {"RQ_TEST_S3_KEY": KEY, "RQ_TEST_S3_SECRET": SECRET}
    n.start()
    deadline = time.monotonic() + 60
    checks = 0
    while time.monotonic() < deadline:
        assert n.proc.poll() is None, n.logs()[-2000:]
        checks += 1
        if n.ready():
            break
        try:
            if n.status()["store"].get("ready"):
                assert n.count("big") == 40, "/status ready before the restore was loaded"
        except requests.RequestException:
            pass
        time.sleep(0.005)
    else:
        raise AssertionError("not ready after 60 s:\n" + n.logs()[-2000:])
    assert n.count("big") == 40, "ready before the restore was loaded"
    assert vars_of(n)["downloader"]["download_bytes"] == os.path.getsize(db)
    assert checks > 1


def test_s3_restore_missing_object(cluster, s3, tmp_path):
    """A download that fails stops the node, unless continue_on_failure."""
    rcfg = write_json(tmp_path, "restore.json", {"version": 1, "type": "s3", "timeout": "5s",
                                                  "sub": s3_sub(s3, "no/such/object.gz")})
    proc, _, _ = harness.start_bare(tmp_path, ["-auto-restore", rcfg])
    out, err = harness.output_at_exit(proc)
    err = err.decode()
    assert proc.returncode == 1, err
    assert "fatal: failed to download auto-restore file" in err
    assert "HTTP 404 NoSuchKey" in err
    assert "fatal signal" not in err

    rcfg = write_json(tmp_path, "restore2.json", {"version": 1, "type": "s3", "continue_on_failure": True,
                                                   "sub": s3_sub(s3, "no/such/object.gz")})
    n = cluster.node(1, ["-auto-restore", rcfg])
    n.env = {"RQ_TEST_S3_KEY": KEY, "RQ_TEST_S3_SECRET": SECRET}
    n.start().wait_ready()
    assert "continuing with node startup anyway" in n.logs()
    assert n.query("SELECT name FROM sqlite_master")["results"][0].get("values") is None
    assert vars_of(n)["downloader"]["num_downloads_fail"] == 1
    assert vars_of(n)["store"]["num_auto_restores"] == 0


def test_s3_timestamp_accumulates(cluster, s3, tmp_path):
    cfg = {"version": 1, "type": "s3", "interval": "1s", "timestamp": True,
           "sub": s3_sub(s3, "ts/db.sqlite.gz")}
    n = backup_node(cluster, tmp_path, cfg).start().wait_ready()
    n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (1)"])
    wait_uploads(n, "num_uploads_ok", 1)
    n.execute(["INSERT INTO foo VALUES (2)"])
    wait_uploads(n, "num_uploads_ok", 2)
    keys = s3.keys("ts/")
    assert len(keys) >= 2, keys
    assert all(re.fullmatch(r"ts/\d{14}_db\.sqlite\.gz", k) for k in keys), keys
    newest = gzip.decompress(s3.get(sorted(keys)[-1]).content)
    assert sqlite_rows(newest, tmp_path, "SELECT COUNT(*) FROM foo") == [(2,)]
    # The plain key was never written: the first upload found no ID there.
    assert s3.get("ts/db.sqlite.gz").status_code == 404
    assert uploads(n)["num_sum_get_fail"] >= 1


def test_s3_upload_failure_then_recovery(cluster, s3, tmp_path):
    """The S3 server goes away: uploads fail and are counted, the node
    serves on; once it is back, the next interval uploads."""
    key = "flaky/db.sqlite.gz"
    cfg = {"version": 1, "type": "s3", "interval": "500ms", "sub": s3_sub(s3, key)}
    n = backup_node(cluster, tmp_path, cfg).start().wait_ready()
    n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (1)"])
    wait_uploads(n, "num_uploads_ok", 1)
    s3.stop()
    n.execute(["INSERT INTO foo VALUES (2)"])
    wait_uploads(n, "num_uploads_fail", 2)
    assert n.ready()
    assert n.execute(["INSERT INTO foo VALUES (3)"])["results"][0]["rows_affected"] == 1
    assert "failed to upload to" in n.logs()
    ok = uploads(n)["num_uploads_ok"]
    assert ok == 1
    s3.start()
    wait_uploads(n, "num_uploads_ok", 2)
    image = gzip.decompress(s3.get(key).content)
    assert sqlite_rows(image, tmp_path, "SELECT COUNT(*) FROM foo") == [(3,)]


# ---- the file type ---------------------------------------------------------

def test_file_backup_metadata_and_skip_id(cluster, tmp_path):
    out = str(tmp_path / "out")
    cfg = {"version": 1, "type": "file", "interval": "500ms", "vacuum": True,
           "sub": {"dir": out, "name": "db.sqlite.gz"}}
    n = backup_node(cluster, tmp_path, cfg).start().wait_ready()
    n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO foo(v) VALUES('a')"])
    wait_uploads(n, "num_uploads_ok", 1)
    with open(os.path.join(out, "METADATA.json")) as f:
        raw = f.read()
    md = json.loads(raw)
    assert list(md) == ["id", "timestamp", "name"], raw
    assert md["name"] == os.path.join(out, "db.sqlite.gz")
    assert md["id"] == n.status()["auto_backups"]["last_index"]
    assert abs(md["timestamp"] / 1000 - time.time()) < 60
    with gzip.open(md["name"]) as f:
        image = f.read()
    assert sqlite_rows(image, tmp_path, "SELECT v FROM foo") == [("a",)]
    assert sorted(os.listdir(out)) == ["METADATA.json", "db.sqlite.gz"]  # no temporary left
    n.stop()
    n.start().wait_ready()
    wait_uploads(n, "num_uploads_skipped_id", 1)
    assert uploads(n)["num_uploads_ok"] == 0


def test_file_backup_timestamp_uncompressed(cluster, tmp_path):
    out = str(tmp_path / "out")
    cfg = {"version": 1, "type": "file", "interval": "1s", "timestamp": True, "no_compress": True,
           "sub": {"dir": out, "name": "backup.sqlite"}}
    n = backup_node(cluster, tmp_path, cfg).start().wait_ready()
    n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (1)"])
    wait_uploads(n, "num_uploads_ok", 1)
    n.execute(["INSERT INTO foo VALUES (2)"])
    wait_uploads(n, "num_uploads_ok", 2)
    files = sorted(glob.glob(os.path.join(out, "*_backup.sqlite")))
    assert len(files) >= 2, files
    assert all(re.fullmatch(r"\d{14}_backup\.sqlite", os.path.basename(f)) for f in files)
    with open(files[-1], "rb") as f:
        image = f.read()
    assert image[:16] == b"SQLite format 3\x00"  # not compressed
    assert sqlite_rows(image, tmp_path, "SELECT COUNT(*) FROM foo") == [(2,)]
    with open(os.path.join(out, "METADATA.json")) as f:
        assert json.load(f)["name"] == files[-1]


def test_uploads_only_on_the_leader(cluster, tmp_path):
    """Three nodes with the same file destination: only the leader uploads."""
    out = str(tmp_path / "out")
    path = write_json(tmp_path, "backup.json", {"version": 1, "type": "file", "interval": "300ms",
                                                "sub": {"dir": out, "name": "db.gz"}})
    nodes = cluster.start_three(["-auto-backup", path])
    leader = harness.leader_of(nodes)
    leader.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (1)"])
    wait_uploads(leader, "num_uploads_ok", 1)
    harness.poll(lambda: uploads(leader)["num_uploads_skipped"] >= 3, 15, what="leader idle")
    for n in nodes:
        if n is not leader:
            u = uploads(n)
            assert u["num_uploads_ok"] == u["num_uploads_skipped"] == u["num_uploads_fail"] == 0, u


# ---- bad configurations ------------------------------------------------------

GOOD_SUB = {"dir": "/tmp/rq-never-written", "name": "b.gz"}
BAD_BACKUP = {
    "not_json": ("{version: 1", "invalid JSON"),
    "empty": ("", "invalid JSON"),
    "array": ("[]", "cannot unmarshal array"),
    "version_2": ({"version": 2, "type": "file", "interval": "1s", "sub": GOOD_SUB}, "invalid version"),
    "interval_0": ({"version": 1, "type": "file", "interval": "0s", "sub": GOOD_SUB}, "invalid interval"),
    "interval_zero_ns": ({"version": 1, "type": "file", "interval": 0, "sub": GOOD_SUB}, "invalid interval"),
    "interval_negative": ({"version": 1, "type": "file", "interval": "-5s", "sub": GOOD_SUB}, "invalid interval"),
    "interval_garbage": ({"version": 1, "type": "file", "interval": "often", "sub": GOOD_SUB},
                         "invalid duration"),
    "interval_missing": ({"version": 1, "type": "file", "sub": GOOD_SUB}, "interval is required"),
    "type_unknown": ({"version": 1, "type": "azure", "interval": "1s", "sub": GOOD_SUB},
                     "unsupported storage type"),
    "type_gcs": ({"version": 1, "type": "gcs", "interval": "1s",
                  "sub": {"bucket": "b", "name": "n", "project_id": "p", "credentials_path": "/c"}},
                 "Google Cloud Storage is not supported by this build"),
    "relative_dir": ({"version": 1, "type": "file", "interval": "1s", "sub": {"dir": "out", "name": "b"}},
                     "directory path must be absolute"),
    "s3_no_bucket": ({"version": 1, "type": "s3", "interval": "1s", "sub": {"path": "p"}}, "\"bucket\" is required"),
    "unset_var_bucket": ({"version": 1, "type": "s3", "interval": "1s",
                          "sub": {"bucket": "$RQ_TEST_SURELY_UNSET", "path": "p"}}, "\"bucket\" is required"),
}


@pytest.mark.parametrize("case", sorted(BAD_BACKUP))
def test_bad_backup_config_refused(tmp_path, case):
    doc, want = BAD_BACKUP[case]
    path = write_json(tmp_path, "bad.json", doc)
    proc, http_port, data = harness.start_bare(tmp_path, ["-auto-backup", path])
    out, err = harness.output_at_exit(proc)
    err = err.decode()
    assert proc.returncode == 1, err
    assert "fatal: failed to start auto-backups: failed to parse auto-backup file %s: " % path in err, err
    assert want in err, err
    assert "fatal signal" not in err
    assert not os.path.exists(data), "refused before touching the data directory"


def test_backup_config_file_unreadable(tmp_path):
    for path, want in ((str(tmp_path / "missing.json"), "no such file or directory"),
                       (str(tmp_path), "is a directory")):
        proc, _, _ = harness.start_bare(tmp_path, ["-auto-backup", path])
        out, err = harness.output_at_exit(proc)
        err = err.decode()
        assert proc.returncode == 1, err
        assert "failed to read auto-backup file" in err and want in err.lower(), err
    # A file destination that cannot be written stops the start too.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    path = write_json(tmp_path, "b.json", {"version": 1, "type": "file", "interval": "1s",
                                           "sub": {"dir": str(blocker / "sub"), "name": "b"}})
    proc, _, _ = harness.start_bare(tmp_path, ["-auto-backup", path])
    out, err = harness.output_at_exit(proc)
    assert proc.returncode == 1 and b"failed to create directory" in err, err


@pytest.mark.parametrize("doc,want", [
    ({"version": 1, "type": "file", "sub": {"dir": "/tmp", "name": "b"}}, "unsupported storage type"),
    ({"version": 3, "type": "s3", "sub": {"bucket": "b", "path": "p"}}, "invalid version"),
    ({"version": 1, "type": "s3", "timeout": "-1s", "sub": {"bucket": "b", "path": "p"}}, "invalid interval"),
    ({"version": 1, "type": "gcs", "sub": {"bucket": "b", "name": "n"}}, "not supported by this build"),
])
def test_bad_restore_config_refused(tmp_path, doc, want):
    path = write_json(tmp_path, "bad.json", doc)
    proc, _, _ = harness.start_bare(tmp_path, ["-auto-restore", path])
    out, err = harness.output_at_exit(proc)
    err = err.decode()
    assert proc.returncode == 1 and "failed to parse auto-restore file" in err and want in err, err


def test_restore_with_join_refused(tmp_path):
    path = write_json(tmp_path, "r.json", {"version": 1, "type": "s3", "sub": {"bucket": "b", "path": "p"}})
    proc, _, _ = harness.start_bare(tmp_path, ["-auto-restore", path, "-join", "127.0.0.1:1"])
    out, err = harness.output_at_exit(proc)
    assert proc.returncode == 1 and b"auto-restoring cannot be used when joining a cluster" in err, err


def test_unset_variable_expands_to_empty(cluster, tmp_path):
    """$VAR of a variable that is not set is "" (Go's os.ExpandEnv)."""
    out = str(tmp_path / "out")
    n = backup_node(cluster, tmp_path, {"version": 1, "type": "file", "interval": "${RQ_TEST_SURELY_UNSET}2s",
                                        "sub": {"dir": out + "$RQ_TEST_SURELY_UNSET", "name": "b.gz"}})
    n.start().wait_ready()
    ab = n.status()["auto_backups"]
    assert ab["upload_interval"] == "2s"
    assert ab["upload_destination"] == "dir:%s, file:b.gz" % out
    assert ab["last_index"] == "0" and ab["last_upload_time"] == "0001-01-01T00:00:00Z"


def test_vars_without_auto_backup(cluster):
    """rqlite shows the uploader and downloader maps on every node."""
    n = cluster.node(1).start().wait_ready()
    v = vars_of(n)
    assert v["uploader"] == {"num_uploads_ok": 0, "num_uploads_fail": 0, "num_uploads_skipped": 0,
                             "num_uploads_skipped_id": 0, "num_sum_get_fail": 0, "total_upload_bytes": 0,
                             "last_upload_bytes": 0}
    assert v["downloader"] == {"num_downloads_ok": 0, "num_downloads_fail": 0, "download_bytes": 0}
    assert v["store"]["num_auto_restores"] == 0
    assert "auto_backups" not in n.status()


# ---- SigV4, checked independently -----------------------------------------

def sigv4_expected(method, path, query, headers, secret, region):
    """AWS Signature Version 4 of a request as S3 computes it (AWS's
    published algorithm, written here from the specification)."""
    auth = headers["authorization"]
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", auth)
    assert m, auth
    _, date, reg, signed, _ = m.groups()
    assert reg == region
    names = signed.split(";")
    canon_headers = "".join("%s:%s\n" % (h, " ".join(headers[h].split())) for h in names)
    canon_query = "&".join(sorted(query.split("&"))) if query else ""
    creq = "\n".join([method, path, canon_query, canon_headers, signed, headers["x-amz-content-sha256"]])
    scope = "%s/%s/s3/aws4_request" % (date, region)
    sts = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), m.group(5)


class Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *a):
        pass

    def _record(self, body=b""):
        url = urllib.parse.urlsplit(self.path)
        Recorder.seen.append((self.command, url.path, url.query,
                              {k.lower(): v for k, v in self.headers.items()}, body))

    def do_HEAD(self):
        self._record()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = b""
        while len(body) < n:
            chunk = self.rfile.read(n - len(body))
            if not chunk:
                break
            body += chunk
        self._record(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_s3_requests_are_signed(cluster, tmp_path):
    """HEAD and PUT carry a valid SigV4 signature (recomputed here), the ID
    as metadata, and the gzipped database as the body."""
    Recorder.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        cfg = {"version": 1, "type": "s3", "interval": "500ms",
               "sub": {"access_key_id": "AKIDEXAMPLE", "secret_access_key": secret, "region": "eu-central-1",
                       "endpoint": "127.0.0.1:%d" % srv.server_address[1], "bucket": "bk",
                       "path": "dir one/db+1.gz"}}
        # An endpoint without a scheme is https to rqlite: give ours one.
        cfg["sub"]["endpoint"] = "http://" + cfg["sub"]["endpoint"]
        n = backup_node(cluster, tmp_path, cfg).start().wait_ready()
        n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY)", "INSERT INTO foo VALUES (7)"])
        wait_uploads(n, "num_uploads_ok", 1)
        assert uploads(n)["num_sum_get_fail"] == 1  # the HEAD got 404
        methods = [s[0] for s in Recorder.seen]
        assert methods[:2] == ["HEAD", "PUT"], methods
        for method, path, query, headers, body in Recorder.seen[:2]:
            assert path == "/bk/dir%20one/db%2B1.gz"
            want, got = sigv4_expected(method, path, query, headers, secret, "eu-central-1")
            assert want == got, (method, headers)
        _, _, _, headers, body = Recorder.seen[1]
        assert "x-amz-meta-x-rqlite-auto-backup-id" in headers["authorization"]
        assert headers["x-amz-meta-x-rqlite-auto-backup-id"] == str(n.status()["store"]["db_applied_index"])
        assert int(headers["content-length"]) == len(body)
        assert sqlite_rows(gzip.decompress(body), tmp_path, "SELECT id FROM foo") == [(7,)]
    finally:
        srv.shutdown()
        srv.server_close()
