"""The seed walk-through, typed into real terminals (tmux).

Nodes and the shell run in tmux windows with the build directory first on
PATH and HOME set to the test's directory, so the commands are the
walk-through's own. The default ports (4001-4006) are used when free;
otherwise the same commands get free ports substituted.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

import harness
from harness import poll
from terminal import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


def port_free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    # Stop every rqlited of this test before the tmux server goes.
    for w in ("n1", "n2", "n3"):
        try:
            t.ctrl_c(w)
        except Exception:
            pass
    subprocess.run(["pkill", "-f", t.home], capture_output=True)
    t.kill()


def seed_commands():
    if all(port_free(p) for p in range(4001, 4007)):
        ports = list(range(4001, 4007))
    else:
        ports = [harness.free_port() for _ in range(6)]
    h1, r1, h2, r2, h3, r3 = ports
    if ports[0] == 4001:
        c1 = "rqlited -node-id 1 ~/node.1"
        shell = "rqlite"
    else:
        c1 = "rqlited -node-id 1 -http-addr localhost:%d -raft-addr localhost:%d ~/node.1" % (h1, r1)
        shell = "rqlite -p %d" % h1
    c2 = ("rqlited -node-id 2 -http-addr localhost:%d -raft-addr localhost:%d "
          "-join http://localhost:%d ~/node.2" % (h2, r2, h1))
    c3 = ("rqlited -node-id 3 -http-addr localhost:%d -raft-addr localhost:%d "
          "-join http://localhost:%d ~/node.3" % (h3, r3, h1))
    return (c1, c2, c3, shell), ["http://127.0.0.1:%d" % p for p in (h1, h2, h3)], h1


def count_foo(url):
    r = requests.get(url + "/db/query", params={"q": "SELECT * FROM foo", "level": "none"}, timeout=5)
    res = r.json()["results"][0]
    return res.get("values") == [[1]]


def members(url):
    ns = requests.get(url + "/nodes?ver=2", timeout=10).json()["nodes"]
    return len(ns) == 3 and all(n["reachable"] for n in ns) and sum(n["leader"] for n in ns) == 1


def ready(url):
    try:
        return requests.get(url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stopped(url):
    try:
        requests.get(url + "/status", timeout=1)
        return False
    except requests.ConnectionError:
        return True


def test_seed_walkthrough(tmux):
    (c1, c2, c3, shell), urls, port = seed_commands()
    t0 = time.monotonic()
    tmux.window("n1", c1)
    poll(lambda: ready(urls[0]), what="node 1 ready")
    tmux.window("n2", c2)
    tmux.window("n3", c3)
    poll(lambda: members(urls[0]), what="3-node cluster")
    print("\n3-node cluster formed in %.2fs (from the first command)" % (time.monotonic() - t0))

    tmux.window("sh", shell)
    tmux.wait_for("sh", "127.0.0.1:%d> " % port)
    scr = tmux.screen("sh")
    assert "Welcome to the rqlite CLI." in scr
    assert "Connected to http://127.0.0.1:%d running version" % port in scr
    tmux.type("sh", "CREATE TABLE foo (id INT);")
    tmux.wait_for("sh", "0 row affected")
    tmux.type("sh", "INSERT INTO foo VALUES (1);")
    tmux.wait_for("sh", "1 row affected")
    tmux.type("sh", "SELECT * FROM foo;")
    tmux.wait_for("sh", "+----+\n| id |\n+----+\n| 1  |\n+----+")
    tmux.type("sh", ".schema")
    tmux.wait_for("sh", "+---------------------------+\n| sql                       |\n"
                        "+---------------------------+\n| CREATE TABLE foo (id INT) |\n"
                        "+---------------------------+")

    # Node 1 stopped with Ctrl-C, its data deleted, started again with the same command.
    for u in urls:
        poll(lambda: count_foo(u), what="row replicated to %s" % u)
    tmux.ctrl_c("n1")
    poll(lambda: stopped(urls[0]), what="node 1 stopped")
    tmux.wait_for("n1", "rqlite server stopped")
    shutil.rmtree(os.path.join(tmux.home, "node.1"))
    t1 = time.monotonic()
    tmux.type("n1", c1)
    poll(lambda: count_foo(urls[0]), what="wiped node 1 holding the data again")
    recovered = time.monotonic() - t1
    poll(lambda: members(urls[1]), what="3 members after the wiped restart")
    print("wiped node 1 (no -join) recovered the data in %.2fs" % recovered)
    st = requests.get(urls[0] + "/status", timeout=5).json()["store"]
    assert st["raft"]["state"] in ("Follower", "Leader")
    assert len(st["nodes"]) == 3

    # The shell, still pointed at node 1, sees the table again.
    mark = len(tmux.screen("sh"))
    tmux.type("sh", "SELECT * FROM foo;")
    tmux.wait_for("sh", "| 1  |", after=mark)
    tmux.type("sh", ".exit")
    tmux.wait_for("sh", "bye~")

    # Variant: a wiped member restarted WITH -join (node 2's own command).
    tmux.ctrl_c("n2")
    poll(lambda: stopped(urls[1]), what="node 2 stopped")
    tmux.wait_for("n2", "rqlite server stopped")   # the process has exited
    shutil.rmtree(os.path.join(tmux.home, "node.2"))
    t2 = time.monotonic()
    tmux.type("n2", c2)
    poll(lambda: count_foo(urls[1]), what="wiped node 2 (with -join) holding the data")
    print("wiped node 2 (with -join) recovered the data in %.2fs" % (time.monotonic() - t2))
    poll(lambda: members(urls[0]), what="3 members after the second wipe")

    # Writes still work everywhere.
    r = requests.post(urls[2] + "/db/execute", json=["INSERT INTO foo VALUES (2)"], timeout=10)
    assert r.json()["results"][0]["rows_affected"] == 1
    for u in urls:
        poll(lambda: requests.get(u + "/db/query", params={"q": "SELECT COUNT(*) FROM foo",
                                                           "level": "none"}).json()
             ["results"][0]["values"] == [[2]], what="second row on %s" % u)


def test_shell_in_terminal(tmux, cluster):
    n = cluster.node(1).start().wait_ready()
    tmux.window("sh", "rqlite -H 127.0.0.1 -p %d" % n.http_port)
    prompt = "127.0.0.1:%d> " % n.http_port
    tmux.wait_for("sh", prompt)
    tmux.type("sh", ".help")
    tmux.wait_for("sh", ".timer [on|off]                               Show setting, or set query timings on or off")
    tmux.type("sh", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);")
    tmux.wait_for("sh", "0 row affected")
    tmux.type("sh", "INSERT INTO t(name) VALUES ('a'), ('bb');")
    tmux.wait_for("sh", "2 rows affected")
    tmux.type("sh", "SELEC oops;")
    tmux.wait_for("sh", "Error: near \"SELEC\": syntax error")
    tmux.type("sh", ".tables")
    tmux.wait_for("sh", "| name |\n+------+\n| t    |")
    tmux.type("sh", ".indexes")
    tmux.wait_for("sh", "| sql |")
    tmux.type("sh", ".nodes")
    tmux.wait_for("sh", "  leader: true")
    tmux.type("sh", ".status")
    tmux.wait_for("sh", "  node_id: 1")
    # Line editing: recall the previous command with Up and run it again.
    mark = len(tmux.screen("sh"))
    tmux.run("send-keys", "-t", "seed:sh", "Up")
    tmux.run("send-keys", "-t", "seed:sh", "Enter")
    tmux.wait_for("sh", "  node_id: 1", after=mark)
    tmux.type("sh", ".quit")
    tmux.wait_for("sh", "bye~")
    # History persisted in ~/.rqlite_history
    hist = open(os.path.join(tmux.home, ".rqlite_history")).read()
    assert ".tables" in hist
    # Ctrl-D exits too.
    tmux.type("sh", "rqlite -H 127.0.0.1 -p %d" % n.http_port)
    poll(lambda: tmux.screen("sh").count(prompt) >= 1 and tmux.screen("sh").rstrip().endswith(prompt.rstrip()),
         what="second shell prompt")
    tmux.run("send-keys", "-t", "seed:sh", "C-d")
    poll(lambda: tmux.screen("sh").count("bye~") >= 2, what="bye~ after Ctrl-D")
