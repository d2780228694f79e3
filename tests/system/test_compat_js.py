"""The real rqlite-js client from npm against a 3-node cluster."""
import json
import os
import shutil
import subprocess

import pytest

import harness

VERSION = "2.5.7"


def install_rqlite_js():
    """npm install into build/compat once; later runs reuse it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the rqlite-js compatibility test")
    prefix = os.path.abspath(os.path.join(harness.BUILD, "compat"))
    if not os.path.isdir(os.path.join(prefix, "node_modules", "@babel", "runtime")):
        os.makedirs(prefix, exist_ok=True)
        # rqlite-js's built files require @babel/runtime without declaring it.
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", prefix,
                        "rqlite-js@" + VERSION, "@babel/runtime@7"], check=True,
                       capture_output=True, timeout=300)
    return os.path.join(prefix, "node_modules")


def test_rqlite_js(three):
    node_path = install_rqlite_js()
    cluster, nodes = three
    script = os.path.join(os.path.dirname(__file__), "compat_rqlite_js.js")
    # The follower first: the client must be served through forwarding too.
    leader = harness.leader_of(nodes)
    hosts = [n.url for n in nodes if n is not leader] + [leader.url]
    p = subprocess.run(["node", script] + hosts, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NODE_PATH=node_path))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["create_error"] is False
    assert out["insert_id"] == 1
    assert out["param_ids"] == [2, 3]
    assert out["name1"] == "fiona"
    assert out["rows_affected"] == 1
    assert out["tx_error"] is True and "no such table: bar" in out["tx_error_text"]
    for level in ("none", "weak", "strong"):
        if level == "none":
            continue  # may lag on a follower; checked at the other levels
        assert out["count_" + level] == 3, (level, out)
    assert out["query_error"] is True
    assert out["dump_head"] == ["PRAGMA foreign_keys=OFF;", "BEGIN TRANSACTION;",
                                "CREATE TABLE foo (id integer not null primary key, name text);"]
    assert out["binary_magic"] == "SQLite format 3"
    assert out["loaded"] == 7
    assert out["status_leader"] is True
