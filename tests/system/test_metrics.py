"""GET /metrics: Prometheus' text format, checked by promtool, and scraped
by a real Prometheus server (Debian's) from a 3-node cluster."""
import re
import shutil
import subprocess

import pytest
import requests

from harness import free_port, poll, start_with_users


def scrape(node, auth=None):
    r = requests.get(node.url + "/metrics", auth=auth, timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


def samples(text):
    """{name{labels}: value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool_check(text):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is needed (Debian's prometheus; make deps installs it)")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def test_metrics_exposition_is_valid_and_counters_move(cluster):
    n1, n2, n3 = cluster.start_three()
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    before = scrape(n1)
    promtool_check(before)
    families = set(re.findall(r"^# TYPE (\S+) ", before, re.M))
    for want in ("rqlite_http_requests_total", "rqlite_http_request_duration_seconds", "rqlite_raft_state",
                 "rqlite_raft_term", "rqlite_raft_commit_index", "rqlite_raft_applied_index",
                 "rqlite_raft_leader_changes_total", "rqlite_raft_log_entries", "rqlite_fsm_apply_duration_seconds",
                 "rqlite_snapshot_duration_seconds", "rqlite_sqlite_file_size_bytes", "rqlite_sqlite_wal_size_bytes",
                 "rqlite_sqlite_read_connections", "rqlite_http_queued_writes", "rqlite_http_forwarded_requests_total",
                 "rqlite_expvar_store_snapshots_total", "process_resident_memory_bytes", "process_open_fds",
                 "rqlite_process_threads", "process_cpu_seconds_total"):
        assert want in families, want
    assert len(families) >= 60, len(families)
    s0 = samples(before)
    assert s0['rqlite_raft_state{state="leader"}'] == 1 and s0['rqlite_raft_state{state="follower"}'] == 0
    for i in range(10):
        n1.execute([["INSERT INTO t(v) VALUES(?)", "x%d" % i]])
    n1.query("SELECT * FROM t")
    assert requests.get(n1.url + "/nope", timeout=10).status_code == 404
    # a follower forwards a write to the leader
    assert requests.post(n2.url + "/db/execute", json=[["INSERT INTO t(v) VALUES(?)", "f"]],
                         timeout=10).status_code == 200
    s1 = samples(scrape(n1))
    key = 'rqlite_http_requests_total{endpoint="/db/execute",code="200"}'
    assert s1[key] >= s0.get(key, 0) + 10, (s0.get(key), s1[key])
    assert s1['rqlite_http_requests_total{endpoint="other",code="404"}'] >= 1
    assert s1["rqlite_fsm_apply_duration_seconds_count"] >= s0["rqlite_fsm_apply_duration_seconds_count"] + 11
    assert s1["rqlite_raft_applied_index"] >= s0["rqlite_raft_applied_index"] + 11
    hist = 'rqlite_http_request_duration_seconds_count{endpoint="/db/execute"}'
    assert s1[hist] >= s0[hist] + 10
    inf = 'rqlite_http_request_duration_seconds_bucket{endpoint="/db/execute",le="+Inf"}'
    assert s1[inf] == s1[hist]
    s2 = samples(scrape(n2))
    assert s2["rqlite_http_forwarded_requests_total"] >= 1
    assert s2['rqlite_raft_state{state="follower"}'] == 1
    assert s2["rqlite_raft_leader_changes_total"] >= 1
    assert s2["process_resident_memory_bytes"] > 1e6


def test_metrics_need_the_status_permission(cluster, tmp_path):
    users = [{"username": "admin", "password": "pw", "perms": ["all"]},
             {"username": "mon", "password": "pw2", "perms": ["status"]},
             {"username": "q", "password": "pw3", "perms": ["query"]}]
    n1 = start_with_users(cluster, tmp_path, users, ("admin", "pw"))
    assert requests.get(n1.url + "/metrics", timeout=10).status_code == 401
    assert requests.get(n1.url + "/metrics", auth=("q", "pw3"), timeout=10).status_code == 401
    promtool_check(scrape(n1, auth=("mon", "pw2")))
    assert requests.post(n1.url + "/metrics", auth=("mon", "pw2"), timeout=10).status_code == 405


def test_a_real_prometheus_scrapes_the_cluster(cluster, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.fail("prometheus is needed (Debian's prometheus; make deps installs it)")
    nodes = cluster.start_three()
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    targets = ", ".join('"%s"' % n.http_addr for n in nodes)
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: rqlite\n    static_configs:\n      - targets: [%s]\n" % targets)
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen([prom, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                          "--web.listen-address=127.0.0.1:%d" % port], stdout=log, stderr=subprocess.STDOUT)
    api = "http://127.0.0.1:%d/api/v1/" % port
    try:
        def targets_up():
            t = requests.get(api + "targets", timeout=5).json()["data"]["activeTargets"]
            return len(t) == 3 and all(x["health"] == "up" for x in t) and t
        up = poll(targets_up, timeout=60, interval=0.5, what="every target up")
        assert sorted(x["labels"]["instance"] for x in up) == sorted(n.http_addr for n in nodes)

        def query(q):
            r = requests.get(api + "query", params={"query": q}, timeout=5).json()
            assert r["status"] == "success", r
            return r["data"]["result"]
        # one leader among the three, as Prometheus sees it
        poll(lambda: len(query('rqlite_raft_state{state="leader"} == 1')) == 1, timeout=30, what="one leader")
        leader = [n for n in nodes if n.is_leader()][0]

        def applied():
            res = query('rqlite_raft_applied_index{instance="%s"}' % leader.http_addr)
            return float(res[0]["value"][1]) if res else None
        start = poll(applied, timeout=30, what="the applied index scraped")
        leader.execute(["CREATE TABLE m (v)"] + [["INSERT INTO m VALUES(?)", i] for i in range(5)])
        poll(lambda: applied() > start, timeout=30, what="the applied index moving in Prometheus")
        poll(lambda: query('sum(rqlite_http_requests_total{endpoint="/db/execute"})'), timeout=30,
             what="execute requests counted")
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
