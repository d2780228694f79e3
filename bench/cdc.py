#!/usr/bin/env python3
"""Write throughput with CDC off and on, side by side, on one node.

    bench/cdc.py [--build build] [--clients 64] [--seconds 10] [--rounds 2]

Each round starts a fresh single node without -cdc-config and one with it
(the sink is build/rqhello, which answers every POST with 200), creates a
table and drives single-row INSERTs with build/rqbench for --seconds with
--clients clients. Prints requests/s and p50/p99 latency per run, and the
CDC counters of the node (events sent) to show the sink kept up. Bounded:
rounds x 2 runs of --seconds each."""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def post(url, body, timeout=10):
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(url, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if get(url + "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("node at %s never became ready" % url)


def run(build, work, cdc_url, clients, seconds):
    hport, rport = free_port(), free_port()
    d = tempfile.mkdtemp(dir=work)
    args = [os.path.join(build, "rqlited"), "-node-id", "1", "-http-addr", "127.0.0.1:%d" % hport,
            "-raft-addr", "127.0.0.1:%d" % rport]
    if cdc_url:
        args += ["-cdc-config", cdc_url]
    node = subprocess.Popen(args + [d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % hport
    try:
        wait_ready(url)
        post(url + "/db/execute", '["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INT)"]')
        body = '[["INSERT INTO t(v, n) VALUES(?, ?)", "some text", 42]]'
        out = subprocess.run([os.path.join(build, "rqbench"), "http", "-c", str(clients), "-n", "10000000",
                              "-d", str(seconds), "-X", "POST", "-b", body, url + "/db/execute"],
                             capture_output=True, text=True, timeout=seconds + 120)
        f = out.stdout.split()
        if len(f) < 6:
            sys.exit("rqbench failed: " + out.stderr)
        sent = None
        if cdc_url:
            v = json.loads(get(url + "/debug/vars?key=cdc.service")[1])["cdc.service"]
            sent = {k: v[k] for k in sorted(v) if k.startswith("num_") or k == "fifo_size"}
        return float(f[2]), float(f[3]), float(f[4]), sent
    finally:
        node.terminate()
        node.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="rq-cdc-bench-")
    sport = free_port()
    sink = subprocess.Popen([os.path.join(build, "rqhello"), str(sport)])
    try:
        print("| round | CDC | requests/s | p50 µs | p99 µs |")
        print("|---|---|---|---|---|")
        for r in range(1, a.rounds + 1):
            for cdc in (False, True):
                rate, p50, p99, sent = run(build, work, "http://127.0.0.1:%d/cdc" % sport if cdc else None,
                                           a.clients, a.seconds)
                print("| %d | %s | %.0f | %.0f | %.0f |" % (r, "on" if cdc else "off", rate, p50, p99), flush=True)
                if sent:
                    print("    cdc.service: %s" % sent, file=sys.stderr)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
