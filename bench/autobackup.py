#!/usr/bin/env python3
"""Upload time and peak memory of one -auto-backup of a large database to
s3rver (build/s3rver, installed by tests/system/test_autobackup.py).

    bench/autobackup.py [--mb 1024] [--build build]

Fills a node through /db/execute (rows of hex(randomblob()), which gzip
halves), restarts it with -auto-backup pointing at s3rver, and reports the
node's log line for the upload and its VmHWM before and after."""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    sys.exit("timed out waiting for " + what)


def hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    s3main = os.path.join(build, "s3rver", "node_modules", "s3rver", "bin", "s3rver.js")
    if not os.path.exists(s3main):
        sys.exit("s3rver missing: run tests/system/test_autobackup.py once")
    work = tempfile.mkdtemp(prefix="rq-autobackup-bench-", dir=os.environ.get("TMPDIR", "/tmp"))
    s3port, hport, rport = free_port(), free_port(), free_port()
    s3 = subprocess.Popen(["node", s3main, "-d", work + "/s3", "-a", "127.0.0.1", "-p", str(s3port), "-s",
                           "--configure-bucket", "bench"])
    node = None
    try:
        args = [build + "/rqlited", "-node-id", "1", "-http-addr", "127.0.0.1:%d" % hport,
                "-raft-addr", "127.0.0.1:%d" % rport]
        url = "http://127.0.0.1:%d" % hport
        log = open(work + "/node.log", "ab")
        node = subprocess.Popen(args + [work + "/data"], stdout=log, stderr=subprocess.STDOUT)
        wait(lambda: requests.get(url + "/readyz", timeout=2).ok, 30, "node ready")
        requests.post(url + "/db/execute", json=["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"],
                      timeout=30).raise_for_status()
        t0 = time.monotonic()
        for i in range(a.mb // 16):  # 16 rows of 1 MB each per request
            r = requests.post(url + "/db/execute", timeout=120, json=[
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16) "
                "INSERT INTO t(v) SELECT hex(randomblob(524288)) FROM n"])
            r.raise_for_status()
        print("loaded %d MB in %.1f s" % (a.mb, time.monotonic() - t0))
        node.send_signal(2)
        node.wait(120)
        cfg = {"version": 1, "type": "s3", "interval": "2s",
               "sub": {"access_key_id": "S3RVER", "secret_access_key": "S3RVER", "region": "us-east-1",
                       "endpoint": "http://127.0.0.1:%d" % s3port, "bucket": "bench", "path": "db.sqlite.gz",
                       "force_path_style": True}}
        with open(work + "/backup.json", "w") as f:
            json.dump(cfg, f)
        node = subprocess.Popen(args + ["-auto-backup", work + "/backup.json", work + "/data"], stdout=log,
                                stderr=subprocess.STDOUT)
        wait(lambda: requests.get(url + "/readyz", timeout=2).ok, 120, "node ready again")
        before = hwm(node.pid)
        wait(lambda: requests.get(url + "/debug/vars", timeout=5).json()["uploader"]["num_uploads_ok"] >= 1
             or requests.get(url + "/debug/vars", timeout=5).json()["uploader"]["num_uploads_fail"] >= 1,
             1800, "the upload")
        after = hwm(node.pid)
        up = requests.get(url + "/debug/vars", timeout=5).json()["uploader"]
        with open(work + "/node.log") as f:
            lines = [ln.rstrip() for ln in f if "[uploader]" in ln]
        print("\n".join(lines))
        print("db file %.0f MB; uploaded %.0f MB; VmHWM %d MB before the upload, %d MB after; uploader %s" % (
            os.path.getsize(work + "/data/db.sqlite") / 1e6 if os.path.exists(work + "/data/db.sqlite") else -1,
            up["last_upload_bytes"] / 1e6, before, after, up))
    finally:
        if node and node.poll() is None:
            node.send_signal(2)
            node.wait(60)
        s3.terminate()
        s3.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
