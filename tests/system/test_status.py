"""What a node says about itself and its cluster: /status, /debug/vars,
the smaller endpoints, and the flags that tune them."""
import os
import re
import signal
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


def expvar(node, key=None):
    r = requests.get(node.url + "/debug/vars" + ("?key=" + key if key else ""), timeout=10)
    assert r.status_code == 200 and r.text.startswith("{\n") and r.text.endswith("\n}\n"), r.text[:200]
    return r.json()


def test_expvar_counters_of_joins_snapshots_and_restores(cluster):
    """/debug/vars counts, under rqlite's names, what its end-to-end tests
    read: join requests served (cluster.num_join_req), joins of a member
    already in the configuration (store.num_ignored_joins), snapshots asked
    for (http.user_snapshots) and taken (store.num_snapshots), reaps, a new
    node restored from the leader's snapshot (store.num_restores) and a
    restart that finds its database already holding the snapshot
    (store.num_restores_start_skipped)."""
    n1 = cluster.node(1).start().wait_ready()
    doc = expvar(n1)
    assert set(doc) >= {"cmdline", "memstats", "http", "cluster", "store"}
    assert doc["cluster"]["num_join_req"] == 0
    assert doc["store"]["num_snapshots"] == 0 and doc["store"]["num_restores"] == 0
    assert list(expvar(n1, "cluster")) == ["cluster"]

    n2 = cluster.node(2).start(join=n1.raft_addr).wait_ready()
    wait_members(n1, 2)
    assert expvar(n1)["cluster"]["num_join_req"] == 1
    assert expvar(n1)["store"]["num_joins"] == 1
    # the same node, same ID and address, joins again: accepted, no change
    n2.stop()
    n2.start(join=n1.raft_addr).wait_ready()
    poll(lambda: expvar(n1)["store"]["num_ignored_joins"] == 1, what="ignored join counted")
    v = expvar(n1)
    assert v["cluster"]["num_join_req"] == 2 and v["store"]["num_joins"] == 1
    assert "is already a member, ignoring join request" in n1.logs()

    # snapshots: asked for, taken; the log compacted to one entry after it
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"] +
               [["INSERT INTO t(v) VALUES(?)", "r%d" % i] for i in range(20)])
    for i in range(5):
        n1.execute([["INSERT INTO t(v) VALUES(?)", "s%d" % i]])
    r = requests.post(n1.url + "/snapshot?trailing_logs=1", timeout=20)
    assert r.status_code == 200, r.text
    v = expvar(n1)
    assert v["http"]["user_snapshots"] == 1
    assert v["store"]["num_user_snapshots"] == 1 and v["store"]["num_snapshots"] >= 1
    r = requests.post(n1.url + "/reap", timeout=10)
    assert r.status_code == 200 and r.text == '{"snapshots_reaped":0,"wals_checkpointed":0}\n'
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert expvar(n1)["http"]["user_reaps"] == 1

    # a node joining now starts from the leader's snapshot: one restore
    n3 = cluster.node(3).start(join=n1.raft_addr).wait_ready()
    poll(lambda: n3.count("t") == 25, what="rows on the new node")
    st = expvar(n3)["store"]
    assert st["num_restores"] == 1 and st["num_snapshot_transfers"] == 1, st
    assert st["num_restores_start"] == 0 and st["num_restores_start_skipped"] == 0, st

    # a restart finds its database holding its own snapshot: no restore
    n1.stop()
    n1.start().wait_ready()
    st = expvar(n1)["store"]
    assert st["num_restores_start_skipped"] == 1 and st["num_restores_start"] == 0, st
    assert st["num_restores"] == 0, st

    # http counters, per endpoint and per statement
    base = expvar(n1)["http"]
    leader = leader_of([n1, n2, n3])
    leader.execute(["INSERT INTO t(v) VALUES('a')", "INSERT INTO t(v) VALUES('b')"])
    leader.query("SELECT 1")
    requests.post(leader.url + "/db/request", json=["SELECT 1", "SELECT 2", "SELECT 3"])
    h = expvar(leader)["http"]
    if leader is n1:
        assert h["executions"] == base["executions"] + 1 and h["execute_stmts_rx"] == base["execute_stmts_rx"] + 2
        assert h["queries"] == base["queries"] + 1 and h["request_stmts_rx"] == base["request_stmts_rx"] + 3
    assert h["num_status"] >= 1 and h["auth_ok"] == 0 and h["auth_fail"] == 0


# rqlite v10's expvar maps and their keys (each package's ResetStats).
RQLITE_VARS = {
    "cdc.service": """dropped_failed_to_send retries num_events_tx_ok num_events_tx_failed num_bytes_tx
        snapshot_sync batcher_writes batcher_events_write batcher_reads batcher_write_ignored
        fifo_enqueue_ignored hwm_ignored fifo_size""",
    "cluster": """num_get_node_api_req num_get_node_api_resp num_execute_req num_query_req num_request_req
        num_backup_req num_load_req num_remove_node_req num_get_node_api_req_local num_notify_req num_join_req
        num_stepdown_req num_broadcast_hwm_req num_hwm_update_dropped num_client_retries
        num_get_node_api_req_retries num_client_load_retries num_client_execute_retries
        num_client_query_retries num_client_request_retries num_client_read_timeouts num_client_write_timeouts
        num_client_force_new_conn num_conn_rejected""",
    "db": """open_duration_ms checkpoints checkpoint_errors checkpointed_moves checkpoint_duration_ms
        create_compacted_wal_duration_ms precompact_wal_size compacted_wal_size checkpoint_total
        checkpoint_busy_errors checkpoint_invariant_errors checkpoint_partial checkpoint_wal_truncated
        executions execution_errors executions_force_queries queries query_errors requests
        execute_transactions query_transactions request_transactions backup_step_errors backup_step_dones
        backup_sleeps preupdates preupdates_errors preupdates_callback_errors update_hooks
        update_hooks_callback_errors update_hooks_errors commit_hooks dropped_cdc_events""",
    "db.wal": """compact_scan_duration_ms compact_write_duration_ms compact_frames_input compact_frames_output
        compact_scan_errors""",
    "downloader": "num_downloads_ok num_downloads_fail download_bytes",
    "http": """leader_not_found ui executions execute_stmts_rx queued_executions queued_executions_ok
        queued_executions_num_stmts_rx queued_executions_num_stmts_tx queued_executions_no_leader
        queued_executions_not_leader queued_executions_leadership_lost queued_executions_unknown_error
        queued_executions_failed queued_executions_wait queued_executions_wait_timeout queries query_stmts_rx
        requests request_stmts_rx num_readyz num_status backups loads boot user_snapshots user_reaps
        sql_analyze auth_ok auth_fail tls_cert_fetched""",
    "mux": "num_connections_handled num_unregistered_handlers num_tls_cert_fetched",
    "proto": """num_requests num_compressed_requests num_uncompressed_requests num_compressed_bytes
        num_precompressed_bytes num_uncompressed_bytes num_compression_misses""",
    "proxy": """remote_remove_node remote_backups remote_loads remote_stepdowns remote_executions
        remote_executions_failed remote_queries remote_queries_failed remote_requests
        remote_requests_failed""",
    "queue": "objects_rx objects_tx num_timeout num_flush",
    "snapshot": """persist_size persist_duration_ms sink_full_total sink_incremental_total sink_errors
        sink_full_crc32_duration_ms auto_reap_duration_ms reap_execute_duration_ms reap_total reap_errors
        reap_snapshots reap_wals reap_plan_recovered read_timeout_total upgrade_ok upgrade_fail""",
    "snapshot.plan": "checkpoint_duration_ms calc_crc32_duration_ms",
    "sql.processor": "num_rewritten_stmts num_parser_panics",
    "store": """num_snapshots num_snapshots_failed num_user_snapshots num_user_snapshots_failed
        num_wal_snapshots num_wal_snapshots_failed num_snapshots_full num_snapshots_incremental
        num_auto_vacuums num_auto_vacuums_failed auto_vacuum_duration num_auto_optimizes
        num_auto_optimizes_failed auto_optimize_duration num_boots num_backups num_loads num_restores
        num_restores_failed num_restores_start num_restores_start_skipped num_recoveries num_provider_checks
        num_provider_provides num_provider_provides_fail num_auto_restores num_auto_restores_skipped
        num_auto_restores_failed num_uncompressed_commands num_compressed_commands num_joins
        num_ignored_joins num_removed_before_joins num_db_stats_errors num_verify_leader
        num_verify_leader_failed verify_leader_duration fsm_apply_duration_us snapshot_create_duration
        snapshot_sync_duration num_snapshot_persists num_snapshot_persists_failed snapshot_persist_duration
        snapshot_crc32_create_duration leader_changes_observed leader_changes_dropped
        failed_heartbeat_observed nodes_reaped_ok nodes_reaped_failed""",
    "uploader": """num_uploads_ok num_uploads_fail num_uploads_skipped num_uploads_skipped_id
        num_sum_get_fail total_upload_bytes last_upload_bytes""",
}
# Ours on top of rqlite's: the queue's latest sequence number, and
# databases fetched from a leader to install its snapshot.
OUR_EXTRA_VARS = {"http": {"queued_sequence_number"}, "store": {"num_snapshot_transfers"}}
MEMSTATS = {"Sys", "Alloc", "HeapAlloc", "HeapInuse", "HeapIdle", "HeapSys", "HeapReleased", "PeakRSS"}


def check_var_keys(doc):
    assert set(doc) == set(RQLITE_VARS) | {"cmdline", "memstats"}, sorted(doc)
    for section, keys in RQLITE_VARS.items():
        want = set(keys.split()) | OUR_EXTRA_VARS.get(section, set())
        got = set(doc[section])
        assert got == want, (section, sorted(want - got), sorted(got - want))
        assert all(isinstance(v, int) for v in doc[section].values()), (section, doc[section])
    assert set(doc["memstats"]) == MEMSTATS, doc["memstats"]


def test_expvar_every_rqlite_section_and_key(cluster):
    """/debug/vars has every map of rqlite v10 with exactly its keys (plus
    two of ours), numbers only, in Go's sorted layout, and ?key= still
    picks one; memstats holds the process's real figures."""
    n1 = cluster.node(1).start().wait_ready()
    doc = expvar(n1)
    check_var_keys(doc)
    m = doc["memstats"]
    assert m["HeapAlloc"] > 0 and m["HeapSys"] > 0 and m["Sys"] > 0 and m["PeakRSS"] >= m["Sys"], m
    r = requests.get(n1.url + "/debug/vars", timeout=10)
    keys = re.findall(r'^"([^"]+)": ', r.text, re.M)
    assert keys == sorted(keys) and len(keys) == len(RQLITE_VARS) + 2, keys
    for key in ("db.wal", "snapshot.plan", "mux"):
        assert list(expvar(n1, key)) == [key]
    st = doc["store"]
    assert st["leader_changes_observed"] >= 1, st
    assert doc["db"]["open_duration_ms"] >= 0


def test_expvar_counters_move(cluster):
    """The counters with a counterpart here count for real: statements run
    by the database (db), entries encoded (proto, store), queued writes
    (queue, http), connections on the Raft port (mux), metadata probes
    served to joiners (cluster), requests a follower forwards (proxy), checkpoints at
    snapshots (db, store) and linearizable reads' leadership checks."""
    n1 = cluster.node(1).start().wait_ready()
    nodes = [n1] + [cluster.node(i).start(join=n1.raft_addr).wait_ready() for i in (2, 3)]
    wait_members(n1, 3)
    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    before = expvar(leader)
    leader.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                    ["INSERT INTO t(v) VALUES(?)", "x" * 10000]])
    leader.execute([["INSERT INTO t(v) VALUES(?)", "a"], ["INSERT INTO t(v) VALUES(?)", "b"]],
                   params="?transaction")
    leader.query("SELECT * FROM t")
    leader.query("SELECT COUNT(*) FROM t", level="linearizable")
    r = requests.post(leader.url + "/db/execute", json=["INSERT INTO nope VALUES(1)"], timeout=10)
    assert r.status_code == 200 and "error" in r.json()["results"][0], r.text
    after = expvar(leader)
    check_var_keys(after)
    db0, db1 = before["db"], after["db"]
    assert db1["executions"] >= db0["executions"] + 5, (db0, db1)
    assert db1["execute_transactions"] >= db0["execute_transactions"] + 1
    assert db1["execution_errors"] >= db0["execution_errors"] + 1
    assert db1["queries"] >= db0["queries"] + 2
    p0, p1 = before["proto"], after["proto"]
    assert p1["num_requests"] >= p0["num_requests"] + 3, (p0, p1)
    assert p1["num_compressed_requests"] >= p0["num_compressed_requests"] + 1, p1   # the 10 kB row
    assert p1["num_compressed_bytes"] > p0["num_compressed_bytes"]
    assert p1["num_precompressed_bytes"] > p0["num_precompressed_bytes"] + 10000
    s0, s1 = before["store"], after["store"]
    assert s1["num_compressed_commands"] >= s0["num_compressed_commands"] + 1
    assert s1["num_uncompressed_commands"] >= s0["num_uncompressed_commands"] + 2
    assert s1["num_verify_leader"] >= s0["num_verify_leader"] + 1
    assert s1["leader_changes_observed"] >= 1
    # the followers apply the same statements
    poll(lambda: expvar(follower)["db"]["executions"] >= 5, what="follower's db.executions")
    # Raft and probe connections on every node's Raft port
    assert after["mux"]["num_connections_handled"] > 0, after["mux"]
    assert after["mux"]["num_unregistered_handlers"] == 0, after["mux"]

    # the joiners, given n1's Raft address, probed it for its API address
    c1 = expvar(n1)["cluster"]
    assert c1["num_get_node_api_req"] >= 2 and c1["num_get_node_api_resp"] == c1["num_get_node_api_req"], c1
    assert c1["num_join_req"] >= 2, c1

    # a follower forwards writes, reads and requests to the leader
    f0 = expvar(follower)["proxy"]
    follower.execute([["INSERT INTO t(v) VALUES(?)", "via follower"]])
    follower.query("SELECT 1", level="strong")
    requests.post(follower.url + "/db/request", json=["INSERT INTO t(v) VALUES('r')"],
                  timeout=10).raise_for_status()
    f1 = expvar(follower)["proxy"]
    assert f1["remote_executions"] == f0["remote_executions"] + 1, (f0, f1)
    assert f1["remote_queries"] == f0["remote_queries"] + 1, (f0, f1)
    assert f1["remote_requests"] == f0["remote_requests"] + 1, (f0, f1)
    assert f1["remote_executions_failed"] == f0["remote_executions_failed"]
    assert expvar(leader)["db"]["requests"] >= db1["requests"] + 1

    # queued writes: statements in, batches out, applied
    q0 = expvar(leader)
    for i in range(3):
        r = requests.post(leader.url + "/db/execute?queue", json=[["INSERT INTO t(v) VALUES(?)", "q%d" % i]],
                          timeout=10)
        assert r.status_code == 200, r.text
    r = requests.post(leader.url + "/db/execute?queue&wait", json=[], timeout=20)
    assert r.status_code == 200, r.text

    def queued():
        v = expvar(leader)
        return v if v["http"]["queued_executions_num_stmts_tx"] >= \
            q0["http"]["queued_executions_num_stmts_tx"] + 3 else None
    q1 = poll(queued, what="queued statements applied")
    assert q1["queue"]["objects_rx"] == q0["queue"]["objects_rx"] + 3, (q0["queue"], q1["queue"])
    assert q1["queue"]["objects_tx"] >= q0["queue"]["objects_tx"] + 3
    assert q1["queue"]["num_flush"] == q0["queue"]["num_flush"] + 1
    assert q1["http"]["queued_executions_ok"] >= q0["http"]["queued_executions_ok"] + 1
    assert q1["http"]["queued_executions_failed"] == q0["http"]["queued_executions_failed"]

    # a snapshot checkpoints the WAL, timed
    r = requests.post(leader.url + "/snapshot", timeout=20)
    assert r.status_code == 200, r.text
    v = expvar(leader)
    assert v["store"]["num_snapshots"] >= 1 and v["store"]["num_snapshots_full"] == v["store"]["num_snapshots"]
    assert v["store"]["num_snapshots_failed"] == 0 and v["store"]["num_user_snapshots_failed"] == 0
    assert v["snapshot"]["sink_full_total"] == v["store"]["num_snapshots"] and v["snapshot"]["persist_size"] > 0
    assert v["db"]["checkpoint_total"] >= 1 and v["db"]["checkpoints"] >= 1, v["db"]
    assert v["db"]["checkpoint_wal_truncated"] + v["db"]["checkpoint_partial"] + \
        v["db"]["checkpoint_busy_errors"] >= 1, v["db"]
    assert v["db"]["checkpointed_moves"] > 0 and v["db"]["checkpoint_errors"] == 0, v["db"]


def test_leader_not_found_counted(cluster):
    """A follower without a leader answers 503 leader not found, counted
    as rqlite counts it (http.leader_not_found)."""
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    n1.kill()
    poll(lambda: requests.get(n2.url + "/status?key=store.leader").json()["addr"] == "", timeout=30,
         what="leader lost")
    r = requests.post(n2.url + "/db/execute", json=["SELECT 1"], timeout=10)
    assert r.status_code == 503 and r.text == "leader not found\n"
    assert expvar(n2)["http"]["leader_not_found"] >= 1


def test_single_node_cluster_refuses_to_join_another(cluster):
    """A node that is the only member of its own cluster, restarted with
    -join to another cluster, exits with rqlite's message instead of
    joining it."""
    n1 = cluster.node(1).start().wait_ready()
    other = cluster.node(9).start().wait_ready()
    n1.stop()
    n1.start(join=other.raft_addr)
    assert n1.wait_exit(20) == 1
    assert "node is the only node in a single-node cluster, joining other clusters not supported" in n1.logs()
    assert len(other.nodes()) == 1


def test_status_sections(cluster):
    """/status has the sections and fields rqlite's tools read, with this
    node's real values: the snapshot store's snapshots, the SQLite
    connections' pragmas, durations in Go's form, the cluster, http and
    node sections."""
    n = cluster.node(1, ["-http-allow-origin", "https://example.com", "-raft-snap-int", "1.5s",
                         "-raft-commit-timeout", "300ms", "-cluster-connect-timeout", "1m2s", "-fk"])
    n.start().wait_ready()
    assert "-http-allow-origin" not in n.logs().split("launch command")[-1].split("\n", 1)[-1]  # no warning
    n.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES (1)"])
    assert requests.post(n.url + "/snapshot", timeout=20).status_code == 200
    st = n.status()
    store = st["store"]
    snaps = store["snapshot_store"]
    assert snaps["dir"].startswith(n.dir) and len(snaps["snapshots"]) >= 1
    for sid in snaps["snapshots"]:
        term, index, ms = (int(x) for x in sid.split("-"))
        assert term >= 1 and index >= 1 and ms >= 0
    assert int(snaps["snapshots"][-1].split("-")[1]) == store["raft"]["last_snapshot_index"]
    pragmas = store["sqlite3"]["pragmas"]
    for conn in ("ro", "rw"):
        p = pragmas[conn]
        assert set(p) == {"busy_timeout", "foreign_keys", "journal_mode", "synchronous", "wal_autocheckpoint"}
        assert p["busy_timeout"] == "5000" and p["journal_mode"] == "wal" and p["foreign_keys"] == "1", p
    # rqlite's settings: no syncs on commit, no automatic checkpoints on the
    # write connection (the Raft log is the durable copy; see README)
    assert pragmas["ro"]["synchronous"] == "0" and pragmas["ro"]["wal_autocheckpoint"] == "1000"
    assert pragmas["rw"]["synchronous"] == "0" and pragmas["rw"]["wal_autocheckpoint"] == "0"
    assert store["sqlite3"]["path"] == n.dir + "/db.sqlite"
    assert store["sqlite3"]["wal_size"] >= 0 and store["sqlite3"]["compile_options"]
    assert store["snapshot_interval"] == "1.5s" and store["commit_timeout"] == "300ms"
    assert store["apply_timeout"] == "10s" and store["election_timeout"] == "500ms"
    assert store["trailing_logs"] == 10240 and store["snapshot_threshold"] == 8192
    assert store["dir_size"] > 0 and store["open"] is True
    assert store["raft"]["last_contact"] == 0  # the leader
    assert store["raft"]["last_log_term"] == store["raft"]["term"]
    assert st["cluster"] == {"addr": n.raft_addr, "api_addr": n.url, "https": False}
    assert st["http"]["allow_origin"] == "https://example.com"
    assert st["http"]["cluster"] == {"timeout": "1m2s", "local_node_addr": n.raft_addr}
    assert st["http"]["bind_addr"] == n.http_addr and st["http"]["auth"] == "disabled"
    assert st["http"]["queue"]["_default"]["timeout"] == "50ms"
    node = st["node"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", node["start_time"]), node
    assert node["current_time"] >= node["start_time"]
    assert re.fullmatch(r"[0-9hms.]+", node["uptime"]), node
    assert st["os"]["executable"].endswith("/rqlited")
    assert requests.get(n.url + "/status?key=store.sqlite3.pragmas.ro").json() == pragmas["ro"]
    # a follower: last_contact is how long ago the leader was heard from
    f = cluster.node(2).start(join=n.url).wait_ready()
    raft = f.status()["store"]["raft"]
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", raft["last_contact"]), raft["last_contact"]


def test_small_endpoints(cluster):
    """/db/sql, /licenses, /debug/pprof answer (rqlite's shapes); their
    permissions are checked in test_auth.py."""
    n = cluster.node(1).start().wait_ready()
    r = requests.get(n.url + "/db/sql", params={"q": "SELECT random()"})
    assert r.status_code == 200
    assert r.json() == {"results": [{"original": "SELECT random()", "rewritten": "SELECT random()"}]}
    r = requests.post(n.url + "/db/sql?timings", json=["INSERT INTO nowhere VALUES (datetime('now'))",
                                                       "SELEC 1", ["SELECT ?", 1]])
    res = r.json()
    assert res["results"][0] == {"original": "INSERT INTO nowhere VALUES (datetime('now'))",
                                 "rewritten": "INSERT INTO nowhere VALUES (datetime('now'))"}
    assert res["results"][1] == {"original": "SELEC 1", "error": 'near "SELEC": syntax error'}
    assert res["results"][2]["rewritten"] == "SELECT ?" and "time" in res
    r = requests.get(n.url + "/db/sql")
    assert r.status_code == 400 and r.text == "query not specified\n"
    assert requests.post(n.url + "/db/sql", data="nope").status_code == 400
    assert expvar(n)["http"]["sql_analyze"] == 4
    r = requests.get(n.url + "/licenses")
    assert r.status_code == 200 and "SQLite" in r.text and r.headers["Content-Type"].startswith("text/plain")
    assert requests.post(n.url + "/licenses").status_code == 405
    for path in ("/debug/pprof", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"):
        r = requests.get(n.url + path)
        assert r.status_code == 200 and "/debug/pprof/cmdline" in r.text, path
    r = requests.get(n.url + "/debug/pprof/cmdline")
    assert r.status_code == 200 and r.text.split("\0")[0].endswith("rqlited") and n.dir in r.text.split("\0")
    assert requests.get(n.url + "/debug/pprofx").status_code == 404
    assert requests.post(n.url + "/reap").status_code == 200
    assert requests.get(n.url + "/reap").status_code == 405


def test_raft_flags(cluster, tmp_path):
    """-raft-log-level, -raft-commit-timeout; -raft-snap-int and
    -raft-leader-lease-timeout are used (no warning), and a lease longer than
    the heartbeat timeout stops the start, as hashicorp raft refuses it."""
    n1 = cluster.node(1, ["-raft-log-level", "DEBUG", "-raft-commit-timeout", "5ms"]).start().wait_ready()
    # DEBUG: libraft's own traces, as [raft] lines naming its source
    poll(lambda: re.search(r"\[raft\] .* [a-z_/]+\.c:\d+ ", n1.logs()), what="libraft traces")
    assert n1.status()["store"]["raft"]["heartbeat_interval"] == "5ms"
    n2 = cluster.node(2, ["-raft-log-level", "info", "-raft-snap-int", "2s",
                          "-raft-leader-lease-timeout", "400ms"]).start(join=n1.url).wait_ready()
    logs = n2.logs()
    assert "[raft]" in logs and "entering Follower state" in logs
    assert not re.search(r"\[raft\] .* [a-z_/]+\.c:\d+ ", logs)  # no traces below DEBUG
    assert "warning" not in logs
    assert n2.status()["store"]["snapshot_interval"] == "2s"
    assert n2.status()["store"]["raft"]["heartbeat_interval"] == "20ms"
    # WARN (the default): no [raft] role lines
    n3 = cluster.node(3).start(join=n1.url).wait_ready()
    assert "[raft]" not in n3.logs() and "warning" not in n3.logs()
    # a level that does not exist stops the start
    bad = cluster.node(4, ["-raft-log-level", "LOUD"]).start()
    assert bad.wait_exit(20) == 1
    assert "invalid -raft-log-level LOUD" in bad.logs()
    # so does a lease longer than the heartbeat timeout (500 ms here)
    bad = cluster.node(5, ["-raft-leader-lease-timeout", "750ms"]).start()
    assert bad.wait_exit(20) == 1
    assert "LeaderLeaseTimeout cannot be larger than heartbeat timeout" in bad.logs()


def test_otlp_flags_accepted(cluster):
    """The -otlp-* flags are accepted and checked as rqlite checks them; the
    export itself is not built, and the node says so."""
    n = cluster.node(1, ["-otlp-endpoint", "localhost:4317", "-otlp-interval", "10s", "-otlp-insecure"])
    n.start().wait_ready()
    assert "warning: -otlp-endpoint is accepted but not supported yet by this build; ignored" in n.logs()
    for extra, msg in ((["-otlp-insecure"], "OTLP options require -otlp-endpoint"),
                       (["-otlp-endpoint", "http://h:1"], "-otlp-endpoint must not include a protocol scheme"),
                       (["-otlp-endpoint", "h"], "-otlp-endpoint is not a valid address"),
                       (["-otlp-endpoint", "h:1", "-otlp-interval", "0s"], "-otlp-interval must be greater than zero"),
                       (["-otlp-endpoint", "h:1", "-otlp-cert", "c.pem"],
                        "either both -otlp-cert and -otlp-key must be set, or neither"),
                       (["-otlp-endpoint", "h:1", "-otlp-insecure", "-otlp-no-verify"],
                        "-otlp-insecure cannot be used with other OTLP TLS options")):
        b = cluster.node(len(cluster.nodes) + 1, extra).start()
        assert b.wait_exit(20) == 1, extra
        assert "fatal: " + msg in b.logs(), (extra, b.logs()[-500:])


def test_auto_optimize_gives_every_replica_the_same_statistics(cluster):
    """-auto-optimize-int: the leader brings the planner's statistics up to
    date through the log, so that every node has the same sqlite_stat1 (a
    PRAGMA optimize run on each node alone would not)."""
    extra = ["-auto-optimize-int", "1s"]
    n1 = cluster.node(1, extra).start().wait_ready()
    n2 = cluster.node(2, extra).start(join=n1.url).wait_ready()
    n3 = cluster.node(3, extra).start(join=n1.url).wait_ready()
    wait_members(n1, 3)
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, k INT, v TEXT)", "CREATE INDEX tk ON t(k)",
                "CREATE TABLE plain (v)", "INSERT INTO plain VALUES (1)"] +
               [["INSERT INTO t(k, v) VALUES(?, ?)", i % 7, "v%d" % i] for i in range(200)])

    def stats(n):
        r = n.query("SELECT tbl, idx, stat FROM sqlite_stat1 ORDER BY tbl, idx", level="none")["results"][0]
        return r.get("values") if "error" not in r else None
    want = poll(lambda: stats(n1), timeout=20, what="statistics on the leader")
    assert ["t", "tk", "200 29"] in want, want
    assert not any(row[0] == "plain" for row in want)  # no index: nothing to plan with
    for n in (n2, n3):
        poll(lambda: stats(n) == want, timeout=20, what="the same statistics on node %s" % n.id)
    assert expvar(n1)["store"]["num_auto_optimizes"] >= 1
    assert "auto-optimize: statistics of 1 table(s) brought up to date on every node" in n1.logs()
    # up to date: the next passes propose nothing
    index = n1.status()["store"]["raft"]["last_log_index"]
    poll(lambda: expvar(n1)["store"]["num_auto_optimizes"] >= 3, timeout=20, what="more passes")
    assert n1.status()["store"]["raft"]["last_log_index"] == index
    # 0h: never
    off = cluster.node(4, ["-auto-optimize-int", "0h"]).start().wait_ready()
    off.execute(["CREATE TABLE t (k INT)", "CREATE INDEX tk ON t(k)", "INSERT INTO t VALUES (1)"])
    assert off.status()["store"]["auto_optimize_interval"] == "0s"
    assert n1.status()["store"]["auto_optimize_interval"] == "1s"


def test_readyz_sync_waits_for_the_leaders_commit_index(cluster):
    """/readyz?sync on a follower catching up: it answers once the follower
    has applied what the leader had committed when asked, not merely what
    the follower itself knows to be committed (which lags while the
    entries are still on their way)."""
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    n3 = cluster.node(3).start(join=n1.url).wait_ready()
    wait_members(n1, 3)
    n1.execute(["CREATE TABLE t (v BLOB)"])
    os.kill(n3.proc.pid, signal.SIGSTOP)
    s = requests.Session()
    try:
        # entries that take the follower a while to apply (CPU, not bytes:
        # its commits sync nothing), during which it is observably behind
        for i in range(20):
            n1.execute(["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) "
                        "INSERT INTO t SELECT randomblob(1000) FROM c WHERE x = 1"])
        target = n1.status()["store"]["raft"]["commit_index"]
    finally:
        os.kill(n3.proc.pid, signal.SIGCONT)

    def behind_but_locally_synced():
        r = s.get(n3.url + "/status?key=store.raft", timeout=5).json()
        if r["applied_index"] >= target:
            raise AssertionError("caught up before it could be observed behind: %r" % r)
        return r["leader_commit_index"] >= target and r["applied_index"] == r["commit_index"]
    poll(behind_but_locally_synced, timeout=30, interval=0.001, what="the follower behind the leader's commit")
    r = s.get(n3.url + "/readyz?sync&timeout=20s", timeout=30)
    applied = s.get(n3.url + "/status?key=store.raft", timeout=5).json()["applied_index"]
    assert r.status_code == 200 and r.text.endswith("[+]sync ok\n[+]db ok"), r.text
    assert applied >= target, (applied, target)
    assert n3.count("t") == 20
    # a bad timeout is rqlite's 400
    assert requests.get(n3.url + "/readyz?sync&timeout=soon").status_code == 400


def test_nodes_timeout_and_linearizable_timeout(cluster):
    """/nodes?timeout bounds how long an unresponsive member is waited for
    (rqlite's 'timeout waiting for node to respond'); linearizable_timeout
    is a duration like the others."""
    n1 = cluster.node(1).start().wait_ready()
    n2 = cluster.node(2).start(join=n1.url).wait_ready()
    n3 = cluster.node(3).start(join=n1.url).wait_ready()
    wait_members(n1, 3)
    os.kill(n3.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        t0 = time.monotonic()
        r = requests.get(n1.url + "/nodes?timeout=700ms", timeout=30)
        took = time.monotonic() - t0
        ns = r.json()
        assert 0.6 <= took < 5, took
        assert ns["3"]["reachable"] is False and ns["3"]["error"] == "timeout waiting for node to respond", ns
        assert ns["2"]["reachable"] is True and ns["1"]["leader"] is True
        t0 = time.monotonic()
        r = requests.get(n1.url + "/nodes?ver=2&timeout=1.5s", timeout=30)
        assert 1.4 <= time.monotonic() - t0 < 6
        assert requests.get(n1.url + "/nodes?timeout=x").status_code == 400
    finally:
        os.kill(n3.proc.pid, signal.SIGCONT)
    for level in ("linearizable", "strong", "weak"):
        r = requests.get(n2.url + "/db/query", params={"q": "SELECT 1", "level": level,
                                                          "linearizable_timeout": "1.5s"})
        assert r.status_code == 200 and r.json()["results"][0]["values"] == [[1]], r.text
    r = requests.get(n1.url + "/db/query", params={"q": "SELECT 1", "linearizable_timeout": "later"})
    assert r.status_code == 400 and r.text == "linearizable_timeout is not a valid duration\n"
    # every duration parameter takes Go's forms
    for v in ("1.5s", "300ms", "1h2m", "500us", "2m0.5s"):
        for p in ("timeout", "freshness", "db_timeout", "linearizable_timeout"):
            r = requests.get(n1.url + "/db/query", params={"q": "SELECT 1", "level": "none", p: v})
            # (a freshness of 500us is honoured: the leader heard from a
            # majority longer ago than that, a stale read)
            assert r.status_code == 200, (p, v, r.text)
            assert r.json() in ({"results": [{"columns": ["1"], "types": ["integer"], "values": [[1]]}]},
                                {"results": [], "error": "stale read"}), (p, v, r.text)


def test_unreachable_join_url_keeps_status_up(cluster):
    """A join URL without a port (rqlite accepts http://host) that leads
    nowhere: the node answers /status and /readyz (not ready, no leader)
    while it tries, then gives up with rqlite's clustering failure."""
    n = cluster.node(1, ["-join-attempts", "3", "-join-interval", "500ms"])
    n.start(join="http://nonsense.invalid")
    poll(lambda: requests.get(n.url + "/status", timeout=2).status_code == 200, what="status answering")
    r = requests.get(n.url + "/readyz")
    assert r.status_code == 503 and r.text == "[+]node ok\n[+]leader does not exist"
    assert requests.get(n.url + "/readyz?noleader").status_code == 200
    assert requests.get(n.url + "/readyz?sync").status_code == 503
    assert n.wait_exit(30) == 1
    assert "clustering failure" in n.logs()
    bad = cluster.node(2).start(join="nonsense")
    assert bad.wait_exit(20) == 1 and "fatal: nonsense is an invalid join address" in bad.logs()


def test_raft_remove_shutdown(cluster):
    """-raft-remove-shutdown: a removed node shuts its Raft down and keeps
    answering (state Shutdown, no leader), whether it was a follower (which
    libraft never tells: it asks the others once it has no leader) or the
    leader removing itself. Without the flag a removed node runs on."""
    flag = ["-raft-remove-shutdown=true"]
    n1 = cluster.node(1, flag).start().wait_ready()
    n2 = cluster.node(2, flag).start(join=n1.url).wait_ready()
    n3 = cluster.node(3, flag).start(join=n1.url).wait_ready()
    n4 = cluster.node(4).start(join=n1.url).wait_ready()
    wait_members(n1, 4)
    leader = leader_of([n1, n2, n3, n4])
    follower = [n for n in (n1, n2, n3) if n is not leader][0]
    assert requests.delete(leader.url + "/remove", json={"id": follower.id}).status_code == 200
    poll(lambda: follower.status()["store"]["raft"]["state"] == "Shutdown", timeout=30,
         what="the removed follower's Raft shut down")
    st = follower.status()["store"]
    assert st["leader"] == {"node_id": "", "addr": ""}
    assert "shutting down Raft (-raft-remove-shutdown)" in follower.logs()
    assert requests.get(follower.url + "/readyz").status_code == 503
    r = requests.post(follower.url + "/db/execute", json=["SELECT 1"])
    assert r.status_code == 503
    assert follower.proc.poll() is None
    # the leader removes itself: libraft steps it down, its configuration lacks it
    others = [n for n in (n1, n2, n3, n4) if n is not follower]
    leader = leader_of(others)
    if leader is not n4:
        r = requests.delete(leader.url + "/remove", json={"id": leader.id}, timeout=30)
        assert r.status_code == 200, r.text
        poll(lambda: leader.status()["store"]["raft"]["state"] == "Shutdown", timeout=30,
             what="the leader that removed itself shut down")
        others = [n for n in others if n is not leader]
    new_leader = leader_of(others)
    new_leader.execute(["CREATE TABLE after (v)"])
    # without the flag: removed, it runs on (libraft never elects it)
    r = requests.delete(new_leader.url + "/remove", json={"id": n4.id}, timeout=30)
    if n4 is not new_leader:
        assert r.status_code == 200
        assert n4.status()["store"]["raft"]["state"] != "Shutdown"
    follower.stop()  # an orderly stop after the shutdown


def test_joining_itself_is_refused(cluster):
    """A node whose -join names its own Raft address (alone or among
    others), without -bootstrap-expect, stops with rqlite's message."""
    for i, target in enumerate(["{raft}", "127.0.0.1:1,{raft}"]):
        n = cluster.node(1 + i)
        n.start(join=target.format(raft=n.raft_addr))
        assert n.wait_exit(20) == 1
        assert "node cannot join with itself unless bootstrapping" in n.logs(), n.logs()[-1000:]


def test_auto_vacuum_at_snapshots_shrinks_the_file_and_keeps_its_schedule(cluster):
    """-auto-vacuum-int: a snapshot due after the interval VACUUMs the file
    first (rqlite folds it into snapshotting), on each node on its own: the
    file shrinks after a mass delete, the rows and the applied index stay,
    /status shows the schedule, and a restart keeps it."""
    extra = ["-auto-vacuum-int", "1s", "-raft-snap", "8", "-raft-snap-int", "200ms"]
    n1 = cluster.node(1, extra).start().wait_ready()
    n2 = cluster.node(2, extra).start(join=n1.url).wait_ready()
    wait_members(n1, 2)
    assert "last_vacuum" not in n1.status()["store"]["auto_vacuum"]
    assert "next_vacuum_after" in n1.status()["store"]["auto_vacuum"]
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"])
    for _ in range(8):
        n1.execute([["INSERT INTO t(v) VALUES(randomblob(?))", 100000]] * 10)
    n1.execute(["DELETE FROM t WHERE id > 4"])

    def db_size(n):
        sq = n.status()["store"]["sqlite3"]
        return sq["size"] + sq["wal_size"]
    rows = [4]

    def vacuumed_and_small(n):
        # snapshots come every -raft-snap entries: keep writing a few
        n1.execute([["INSERT INTO t(v) VALUES(?)", "x"]] * 10)
        rows[0] += 10
        return expvar(n)["store"]["num_auto_vacuums"] >= 1 and db_size(n) < 2_000_000
    for n in (n1, n2):
        assert db_size(n) > 7_000_000
    for n in (n1, n2):
        poll(lambda: vacuumed_and_small(n), interval=0.3, timeout=30, what="a VACUUM on node %s" % n.id)
        poll(lambda: n.count("t") == rows[0], what="node %s's rows" % n.id)
        av = n.status()["store"]["auto_vacuum"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", av["last_vacuum"]), av
        assert expvar(n)["store"]["num_auto_vacuums_failed"] == 0
        assert "database vacuumed in" in n.logs()
    # the stored index survived the VACUUM: a restart applies nothing twice
    last = n2.status()["store"]["auto_vacuum"]["last_vacuum"]
    n2.stop()
    n2.start().wait_ready()
    assert n2.count("t") == rows[0]
    assert n2.status()["store"]["auto_vacuum"]["last_vacuum"] >= last
    # without the flag: no map, nothing vacuumed, the schedule forgotten
    n2.stop()
    n2.extra = ["-raft-snap", "8"]
    n2.start().wait_ready()
    assert "auto_vacuum" not in n2.status()["store"]
    assert expvar(n2)["store"]["num_auto_vacuums"] == 0
    assert not os.path.exists(os.path.join(n2.dir, "auto_vacuum"))


def test_log_level_and_failing_requests_logged_once_with_their_cause(cluster, tmp_path):
    """-log-level (beyond rqlite): each failing request is one line with its
    cause (4xx at INFO, 5xx at WARN), DEBUG adds every request, WARN keeps
    only warnings; a bad value stops the start."""
    n1 = cluster.node(1).start().wait_ready()
    assert requests.post(n1.url + "/db/execute", data="not json", timeout=10).status_code == 400
    assert requests.get(n1.url + "/nope", timeout=10).status_code == 404
    assert requests.get(n1.url + "/db/query?q=SELECT%201", timeout=10).status_code == 200

    def lines(n, what):
        return [ln for ln in n.logs().splitlines() if what in ln]
    bad = poll(lambda: lines(n1, "failing request: POST /db/execute"), what="the 400 logged")
    assert len(bad) == 1 and ": 400: " in bad[0] and "from 127.0.0.1:" in bad[0], bad
    assert re.match(r"^\[http\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d failing request", bad[0]), bad
    assert len(lines(n1, "failing request: GET /nope")) == 1
    assert lines(n1, "GET /db/query from") == []  # a success is not logged at INFO
    # a flood of bad requests: at most 20 lines per 10 s
    for _ in range(60):
        requests.get(n1.url + "/nope2", timeout=10)
    assert len(lines(n1, "failing request: GET /nope2")) <= 20
    # DEBUG: every request
    d = cluster.node(2, ["-log-level", "debug"]).start().wait_ready()
    requests.get(d.url + "/db/query?q=SELECT%201", timeout=10)
    poll(lambda: lines(d, "GET /db/query from 127.0.0.1:"), what="the request logged at DEBUG")
    # WARN: no INFO lines at all, failing 4xx included
    w = cluster.node(3, ["-log-level", "WARN"]).start().wait_ready()
    assert requests.get(w.url + "/nope", timeout=10).status_code == 404
    assert "store is ready" not in w.logs() and "failing request" not in w.logs()
    # a bad level refuses the start
    n = cluster.node(4, ["-log-level", "loud"])
    n.start()
    assert n.wait_exit() == 1
    assert "fatal: invalid -log-level loud: use DEBUG, INFO, WARN, ERROR or OFF" in n.logs()
