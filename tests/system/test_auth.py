"""Users and permissions (-auth, -join-as): every permission on the leader
and on a follower, joins that need credentials, the leader checking a
forwarded request's credentials again, reloads (SIGHUP, a changed file),
files that stop the node, the shell with -u, CORS.

Every wait is a poll with a deadline."""
import json
import os
import signal
import subprocess

import requests

from harness import RQLITE, listening, output_at_exit, poll, start_bare

# bcrypt of "s3cret" (cost 4): its password works, the hash itself never.
HASH = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"
PERMS = ["execute", "query", "load", "backup", "status", "ready", "join", "join-read-only",
         "join-read-replica", "remove", "snapshot", "leader-ops", "ui"]
JOINS = {"join", "join-read-only", "join-read-replica"}
ADMIN = ("admin", "adminpw")
CHALLENGE = 'Basic realm="rqlite"'


def base_users(everyone=("ui",)):
    """admin (all); node, the -join-as user (its query lets a follower's
    /snapshot nudge the leader); hashed (all, a bcrypt hash); per permission
    P, has-P with exactly P and lacks-P with every other (lacking all three
    join permissions for a join one); "*" with everyone's permissions."""
    users = [{"username": "admin", "password": "adminpw", "perms": ["all"]},
             {"username": "node", "password": "nodepw", "perms": ["join", "remove", "ready", "query"]},
             {"username": "hashed", "password": HASH, "perms": ["all"]},
             {"username": "*", "perms": list(everyone)}]
    for p in PERMS:
        users.append({"username": "has-" + p, "password": "pw-" + p, "perms": [p]})
        drop = JOINS if p in JOINS else {p}
        users.append({"username": "lacks-" + p, "password": "pw-" + p,
                      "perms": [q for q in PERMS if q not in drop]})
    users.append({"username": "has-execute+query", "password": "pw-eq", "perms": ["execute", "query"]})
    return users


def write_auth(path, users):
    """Replace the file the way editors do (a rename), so that a node never
    reads half of it."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(users, f, indent=1)
    os.replace(tmp, str(path))


def req(node, method, path, auth=None, timeout=20, **kw):
    return requests.request(method, node.url + path, auth=auth, timeout=timeout, allow_redirects=False, **kw)


def refused(r):
    return r.status_code == 401 and r.content == b"" and r.headers.get("WWW-Authenticate") == CHALLENGE


def wait_ready(node, timeout=30):
    def ready():
        if node.proc.poll() is not None:
            raise AssertionError("node %s exited with %s:\n%s" % (node.id, node.proc.returncode, node.logs()[-3000:]))
        return req(node, "GET", "/readyz", ADMIN, timeout=2).status_code == 200
    poll(ready, timeout, what="node %s ready" % node.id)
    return node


def state(node):
    return req(node, "GET", "/status", ADMIN, timeout=5).json()["store"]["raft"]["state"]


def leader_of(nodes, timeout=30):
    def find():
        live = [n for n in nodes if n.proc and n.proc.poll() is None]
        leaders = [n for n in live if state(n) == "Leader"]
        return leaders[0] if len(leaders) == 1 else None
    return poll(find, timeout, what="a single leader")


def members(node, nonvoters=True):
    r = req(node, "GET", "/nodes?ver=2" + ("&nonvoters" if nonvoters else ""), ADMIN)
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["nodes"]}


def wait_members(node, ids, timeout=30):
    def ok():
        ms = members(node)
        return sorted(ms) == sorted(ids) and all(m["reachable"] for m in ms.values())
    poll(ok, timeout, what="members %s" % ids)


def count(node, table, level="none"):
    r = req(node, "GET", "/db/query", ADMIN, params={"q": "SELECT COUNT(*) FROM %s" % table, "level": level})
    res = r.json()["results"][0]
    return None if "error" in res else res["values"][0][0]


def auth_node(cluster, tmp_path, node_id, users=None, extra=()):
    """A node with its own credentials file (tmp_path/auth-ID.json)."""
    path = tmp_path / ("auth-%s.json" % node_id)
    write_auth(path, users if users is not None else base_users())
    n = cluster.node(node_id, ["-auth", str(path), "-join-as", "node"] + list(extra))
    n.auth_path = path
    return n


def three_with_auth(cluster, tmp_path):
    """Node 1, then node 2 joining through node 1 and node 3 through node 2
    (a follower: its 301 to the leader must keep the credentials)."""
    n1 = wait_ready(auth_node(cluster, tmp_path, 1).start())
    n2 = wait_ready(auth_node(cluster, tmp_path, 2).start(join=n1.url))
    n3 = wait_ready(auth_node(cluster, tmp_path, 3).start(join=n2.url))
    nodes = [n1, n2, n3]
    leader = leader_of(nodes)
    wait_members(leader, ["1", "2", "3"])
    assert all(m["voter"] for m in members(leader).values())
    return nodes, leader


# Each endpoint: the permission(s) that grant it, the request, and the
# statuses it may answer once let in (none of them 401).
CASES = [
    (["execute"], "POST", "/db/execute", {"json": ["CREATE TABLE IF NOT EXISTS authz (v TEXT)"]}, {200}),
    (["query"], "GET", "/db/query?q=SELECT+1", {}, {200}),
    (["query"], "POST", "/db/query", {"json": ["SELECT 1"]}, {200}),
    (["execute", "query"], "POST", "/db/request", {"json": ["SELECT 1"]}, {200}),
    (["load"], "POST", "/db/load", {"data": b"SELECT 1", "headers": {"Content-Type": "text/plain"}}, {200}),
    (["load"], "POST", "/boot", {"data": b"not a database"}, {400}),
    (["backup"], "GET", "/db/backup", {}, {200}),
    (["status"], "GET", "/status", {}, {200}),
    (["status"], "GET", "/nodes", {}, {200}),
    (["status"], "GET", "/debug/vars", {}, {200}),
    (["status"], "PUT", "/debug/vars", {}, {200}),
    (["ready"], "GET", "/readyz", {}, {200}),
    (["join"], "POST", "/join", {"data": b"{bad"}, {400}),
    (["join-read-only"], "POST", "/join", {"data": b"{bad"}, {400}),
    (["join-read-replica"], "POST", "/join", {"data": b"{bad"}, {400}),
    (["join"], "POST", "/notify", {"json": {"id": "x", "addr": "127.0.0.1:9"}}, {200}),
    (["remove"], "DELETE", "/remove", {"json": {"id": "no-such-node"}}, {500}),
    (["snapshot"], "POST", "/snapshot", {}, {200, 204}),
    (["snapshot"], "POST", "/reap", {}, {200}),
    (["query"], "GET", "/db/sql?q=SELECT+1", {}, {200}),
    (["query"], "POST", "/db/sql", {"json": ["SELECT 1"]}, {200}),
    (["status"], "GET", "/licenses", {}, {200}),
    (["status"], "GET", "/debug/pprof/", {}, {200}),
    (["status"], "GET", "/debug/pprof/cmdline", {}, {200}),
    (["leader-ops"], "GET", "/leader", {}, {200}),
]


def check_case(node, perms, method, path, kw, ok):
    where = "%s %s on node %s" % (method, path, node.id)

    def admitted(auth):
        r = req(node, method, path, auth, **kw)
        assert r.status_code in ok, (where, auth, r.status_code, r.text[:300])
        assert r.headers.get("WWW-Authenticate") == CHALLENGE, (where, r.headers)

    def denied(auth):
        r = req(node, method, path, auth, **kw)
        assert refused(r), (where, auth, r.status_code, r.headers, r.text[:300])

    holder = ("has-execute+query", "pw-eq") if len(perms) > 1 else ("has-" + perms[0], "pw-" + perms[0])
    denied(None)
    denied((holder[0], "wrong"))
    denied((holder[0], ""))
    denied(("nobody", holder[1]))
    for p in perms:
        denied(("lacks-" + p, "pw-" + p))
        if len(perms) > 1:  # /db/request: one of the two is not enough
            denied(("has-" + p, "pw-" + p))
    admitted(holder)
    admitted(ADMIN)
    admitted(("hashed", "s3cret"))
    denied(("hashed", HASH))
    denied(("hashed", HASH[:-1]))
    denied(("admin", HASH))


def test_every_permission_on_leader_and_follower(cluster, tmp_path):
    nodes, leader = three_with_auth(cluster, tmp_path)
    follower = [n for n in nodes if n is not leader][0]
    for node in (leader, follower):
        for perms, method, path, kw, ok in CASES:
            check_case(node, perms, method, path, kw, ok)
        # Refused before anything happens: no stepdown, no removal.
        for auth in (None, ("lacks-leader-ops", "pw-leader-ops"), ("has-leader-ops", "no")):
            assert refused(req(node, "POST", "/leader", auth))
        for auth in (None, ("lacks-remove", "pw-remove"), ("has-execute", "pw-execute")):
            assert refused(req(node, "DELETE", "/remove", auth, json={"id": "3"}))
        # rqlite checks the permission before the method: 401 without it,
        # 405 with it; 404 and OPTIONS need no credentials, and say so.
        assert refused(req(node, "GET", "/db/execute"))
        r = req(node, "GET", "/db/execute", ("has-execute", "pw-execute"))
        assert r.status_code == 405 and r.headers["WWW-Authenticate"] == CHALLENGE
        for method, path, code in (("GET", "/no/such/path", 404), ("OPTIONS", "/db/execute", 200),
                                   ("GET", "/console", 301), ("GET", "/", 302)):
            r = req(node, method, path)
            assert r.status_code == code and r.headers["WWW-Authenticate"] == CHALLENGE, (method, path)
            assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
        # ?redirect answers carry the challenge too.
        r = req(node, "POST", "/db/execute?redirect", ("has-execute", "pw-execute"), json=["SELECT 1"])
        assert r.status_code == (200 if node is leader else 301)
        assert r.headers["WWW-Authenticate"] == CHALLENGE
        assert req(node, "GET", "/status?key=http", ADMIN).json()["auth"] == "enabled"
    assert sorted(members(leader)) == ["1", "2", "3"]
    assert state(leader) == "Leader"

    # "*": a permission given to everyone needs no credentials, and wrong
    # ones do not matter (rqlite looks at "*" first). Every node reloads
    # its file on SIGHUP.
    for n in nodes:
        write_auth(n.auth_path, base_users(everyone=[p for p in PERMS]))
        n.signal(signal.SIGHUP)
    for n in nodes:
        poll(lambda: req(n, "GET", "/db/backup").status_code == 200, what="'*' in force on node %s" % n.id)
    for node in (leader, follower):
        for perms, method, path, kw, ok in CASES:
            for auth in (None, ("admin", "wrong"), ("nobody", "x"), ("hashed", HASH)):
                r = req(node, method, path, auth, **kw)
                assert r.status_code in ok, (node.id, method, path, auth, r.status_code, r.text[:200])
    # Back: anonymous is refused again.
    for n in nodes:
        write_auth(n.auth_path, base_users())
        n.signal(signal.SIGHUP)
    for n in nodes:
        poll(lambda: refused(req(n, "GET", "/db/backup")), what="'*' gone on node %s" % n.id)
        assert "reloaded credentials from %s" % n.auth_path in n.logs()


def test_leader_checks_forwarded_credentials(cluster, tmp_path):
    """A follower forwards a request with its client's credentials and the
    leader checks them against its own file: a user only the follower
    knows gets nothing written, through the API or the queue."""
    n1 = wait_ready(auth_node(cluster, tmp_path, 1).start())
    n2 = wait_ready(auth_node(cluster, tmp_path, 2).start(join=n1.url))
    leader = leader_of([n1, n2])
    follower = n2 if leader is n1 else n1
    assert req(leader, "POST", "/db/execute", ADMIN, json=["CREATE TABLE f (v TEXT)"]).status_code == 200
    poll(lambda: count(follower, "f") == 0, what="table on the follower")
    users = base_users() + [{"username": "mallory", "password": "m", "perms": ["execute", "query", "status"]}]
    write_auth(follower.auth_path, users)
    follower.signal(signal.SIGHUP)
    mallory = ("mallory", "m")
    poll(lambda: req(follower, "GET", "/status", mallory).status_code == 200, what="mallory on the follower")
    assert refused(req(leader, "GET", "/status", mallory))
    # Let in by the follower, refused by the leader.
    r = req(follower, "POST", "/db/execute", mallory, json=[["INSERT INTO f VALUES(?)", "mallory"]])
    assert r.status_code == 401 and r.text == "remote Execute not authorized\n", (r.status_code, r.text)
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    r = req(follower, "GET", "/db/query", mallory, params={"q": "SELECT * FROM f", "level": "strong"})
    assert r.status_code == 401 and r.text == "remote query not authorized\n", (r.status_code, r.text)
    r = req(follower, "POST", "/db/request", mallory, json=["INSERT INTO f VALUES('m')"])
    assert r.status_code == 401 and r.text == "remote Request not authorized\n", (r.status_code, r.text)
    # The same through the follower's queue: accepted there, refused by the
    # leader, dropped; a user the leader knows gets through it.
    r = req(follower, "POST", "/db/execute?queue", mallory, json=[["INSERT INTO f VALUES(?)", "queued-m"]])
    assert r.status_code == 200 and "sequence_number" in r.json(), r.text
    r = req(follower, "POST", "/db/execute?queue&wait", ("has-execute", "pw-execute"),
            json=[["INSERT INTO f VALUES(?)", "queued-ok"]])
    assert r.status_code == 200, r.text
    r = req(follower, "POST", "/db/execute", ("has-execute", "pw-execute"), json=[["INSERT INTO f VALUES(?)", "ok"]])
    assert r.status_code == 200 and r.json()["results"][0]["rows_affected"] == 1, r.text
    poll(lambda: "refused, dropped" in follower.logs(), what="mallory's queued write dropped")
    r = req(leader, "GET", "/db/query", ADMIN, params={"q": "SELECT v FROM f ORDER BY v", "level": "strong"})
    assert r.json()["results"][0]["values"] == [["ok"], ["queued-ok"]], r.text


def test_join_needs_permission(cluster, tmp_path):
    n1 = wait_ready(auth_node(cluster, tmp_path, 1).start())

    def refused_join(node, words):
        node.start(join=n1.url)
        assert node.wait_exit(60) != 0
        logs = node.logs()
        assert "not authorized (401)" in logs and words in logs, logs[-3000:]
        assert "fatal: clustering failure" in logs

    # No credentials at all.
    n2 = cluster.node(2, ["-join-attempts", "1"])
    refused_join(n2, "the cluster requires credentials")
    # A -join-as user without join.
    for user in ("lacks-join", "has-query", "has-join-read-only"):
        path = tmp_path / "auth-j.json"
        write_auth(path, base_users())
        n = cluster.node("v-" + user, ["-auth", str(path), "-join-as", user, "-join-attempts", "1"])
        refused_join(n, "the cluster refused the credentials of -join-as user %s" % user)
    # The right user, the wrong password in the joiner's file.
    users = [u if u["username"] != "node" else dict(u, password="other") for u in base_users()]
    path = tmp_path / "auth-wrong.json"
    write_auth(path, users)
    n = cluster.node("v-wrongpw", ["-auth", str(path), "-join-as", "node", "-join-attempts", "1"])
    refused_join(n, "-join-as user node")
    assert sorted(members(n1)) == ["1"]
    # join-read-only and join-read-replica admit non-voters, and so does
    # join (rqlite v10 would refuse join alone for a non-voter).
    ro = [auth_node(cluster, tmp_path, i, extra=["-raft-non-voter"]) for i in (4, 5, 6)]
    for n, user in zip(ro, ("has-join", "has-join-read-only", "has-join-read-replica")):
        n.extra[n.extra.index("-join-as") + 1] = user
        wait_ready(n.start(join=n1.url))
    wait_members(n1, ["1", "4", "5", "6"])
    assert [m["voter"] for _, m in sorted(members(n1).items())] == [True, False, False, False]
    assert sorted(members(n1, nonvoters=False)) == ["1"]
    req(n1, "POST", "/db/execute", ADMIN, json=["CREATE TABLE j (v)", "INSERT INTO j VALUES (1)"])
    for n in ro:
        poll(lambda: count(n, "j") == 1, what="the row on non-voter %s" % n.id)
    # A voter with join; leaving on shutdown goes as the -join-as user
    # (node: join and remove).
    n7 = auth_node(cluster, tmp_path, 7, extra=["-raft-cluster-remove-shutdown"])
    wait_ready(n7.start(join=ro[0].url))  # through a non-voter: 301 to the leader
    wait_members(n1, ["1", "4", "5", "6", "7"])
    assert members(n1)["7"]["voter"]
    n7.stop()
    assert "removed this node (7) from the cluster" in n7.logs(), n7.logs()[-2000:]
    poll(lambda: sorted(members(n1)) == ["1", "4", "5", "6"], what="node 7 removed")


def test_bootstrap_expect_with_auth(cluster, tmp_path):
    """-bootstrap-expect: /notify and the leader check go as -join-as."""
    nodes = [auth_node(cluster, tmp_path, i, extra=["-bootstrap-expect", "3"]) for i in (1, 2, 3)]
    joins = ",".join(n.url for n in nodes)
    for n in nodes:
        n.start(join=joins)
    for n in nodes:
        wait_ready(n)
    leader = leader_of(nodes)
    wait_members(leader, ["1", "2", "3"])
    # Without the join permission the announcements are refused.
    path = tmp_path / "auth-x.json"
    write_auth(path, base_users())
    lone = cluster.node(9, ["-auth", str(path), "-join-as", "has-query", "-bootstrap-expect", "2",
                            "-bootstrap-expect-timeout", "4s"])
    lone.start(join=nodes[0].url)
    assert lone.wait_exit(60) != 0
    assert "answered 401: not authorized" in lone.logs(), lone.logs()[-2000:]


def test_reload(cluster, tmp_path):
    """SIGHUP reloads the file; so does a change to it without a signal; a
    file that does not parse keeps the credentials before it."""
    n = wait_ready(auth_node(cluster, tmp_path, 1).start())
    newbie = ("newbie", "first")
    assert refused(req(n, "GET", "/db/backup", newbie))
    # A signal. (The file is older than a second by the time the signal is
    # sent, so the change itself may have been seen first: either way it
    # must be in force, and logged.)
    write_auth(n.auth_path, base_users() + [{"username": "newbie", "password": "first", "perms": ["backup"]}])
    n.signal(signal.SIGHUP)
    poll(lambda: req(n, "GET", "/db/backup", newbie).status_code == 200, what="newbie after SIGHUP")
    poll(lambda: "reloaded credentials from %s" % n.auth_path in n.logs(), what="the reload logged")
    # A changed file, no signal: taken at the next request a second later.
    sighups = n.logs().count("received SIGHUP")
    write_auth(n.auth_path, base_users() + [{"username": "newbie", "password": "second", "perms": ["backup"]}])
    poll(lambda: req(n, "GET", "/db/backup", ("newbie", "second")).status_code == 200, what="the new password")
    assert refused(req(n, "GET", "/db/backup", newbie))
    assert n.logs().count("received SIGHUP") == sighups
    assert "(file changed)" in n.logs()
    # A broken file: logged, the credentials before it stay, by signal and
    # by change alike; a good one afterwards is taken.
    with open(n.auth_path, "w") as f:
        f.write('[{"username": "newbie", "password": "third"')
    n.signal(signal.SIGHUP)
    poll(lambda: n.logs().count("cannot reload credentials") >= 1, what="the failed reload logged")
    assert req(n, "GET", "/db/backup", ("newbie", "second")).status_code == 200
    assert refused(req(n, "GET", "/db/backup", ("newbie", "third")))
    assert "keeping the" in n.logs()
    write_auth(n.auth_path, base_users() + [{"username": "newbie", "password": "fourth", "perms": ["backup"]}])
    poll(lambda: req(n, "GET", "/db/backup", ("newbie", "fourth")).status_code == 200, what="the good file")
    assert n.proc.poll() is None


def test_bad_auth_file_stops_the_node(tmp_path):
    """Security never fails open: a file that cannot be read or is not
    rqlite's credentials stops the node at start, before it binds a port or
    makes its data directory, with exit status 1 and a message saying why."""
    good = tmp_path / "good.json"
    write_auth(good, base_users())

    def bad(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)
    missing = str(tmp_path / "no" / "such.json")
    cases = [
        (["-auth", missing], "fatal: cannot read -auth file %s: No such file or directory" % missing),
        (["-auth", str(tmp_path)], "fatal: cannot read -auth file %s: Is a directory" % tmp_path),
        (["-auth", bad("empty.json", "")], "fatal: failed to load credentials (-auth): "),
        (["-auth", bad("broken.json", '[{"username": "a", "password": "b"')], "invalid JSON at line 1"),
        (["-auth", bad("object.json", '{"username": "a", "password": "b"}')], "not a JSON array of credentials"),
        (["-auth", bad("nouser.json", '[{"password": "b", "perms": ["all"]}]')], "entry 1 has no username"),
        (["-auth", bad("nopw.json", '[{"username": "a", "perms": ["all"]}]')], "entry 1 (user a) has no password"),
        (["-auth", bad("perms.json", '[{"username": "a", "password": "b", "perms": "all"}]')],
         "perms must be an array of strings"),
        (["-auth", bad("hash.json", '[{"username": "a", "password": "$2b$10$tooshort"}]')],
         "not a valid one"),
        (["-auth", str(good), "-join-as", "nobody"],
         "fatal: -join-as: user nobody is not a user in the credentials file"),
        (["-auth", str(good), "-join-as", "hashed"], "bcrypt hash for a password"),
        (["-join-as", "node"], "fatal: -join-as requires -auth"),
    ]
    for extra, message in cases:
        proc, http, data = start_bare(tmp_path, extra)
        out, err = output_at_exit(proc)
        text = (out + err).decode()
        assert proc.returncode == 1, (extra, proc.returncode, text)
        assert message in text, (extra, text)
        assert not os.path.exists(data), extra
        assert not listening(http)


def test_shell_with_credentials(cluster, tmp_path):
    n1 = wait_ready(auth_node(cluster, tmp_path, 1).start())
    n2 = wait_ready(auth_node(cluster, tmp_path, 2).start(join=n1.url))
    leader = leader_of([n1, n2])
    follower = n2 if leader is n1 else n1

    def shell(node, lines, *flags):
        host, port = node.http_addr.split(":")
        p = subprocess.run([RQLITE, "-H", host, "-p", port] + list(flags), input="\n".join(lines) + "\n",
                           capture_output=True, text=True, timeout=60)
        return p.stdout + p.stderr
    out = shell(follower, ["CREATE TABLE s (v TEXT);", "INSERT INTO s VALUES ('hi');", "SELECT * FROM s;",
                           ".backup %s" % (tmp_path / "b.sqlite")], "-u", "admin:adminpw")
    assert "1 row affected" in out and "| hi |" in out and "backup file written successfully" in out, out
    for flags in ([], ["-u", "admin:wrong"], ["-u", "has-query:pw-query"]):
        out = shell(follower, ["INSERT INTO s VALUES ('no');", ".backup %s" % (tmp_path / "x.sqlite"),
                               ".remove 9", ".snapshot"], *flags)
        # rqlite's words: SQL and .snapshot report the status ("server
        # responded with 401 Unauthorized: "), .backup and .remove say
        # "unauthorized"
        assert out.count("ERR! server responded with 401 Unauthorized: ") == 2, (flags, out)
        assert out.count("ERR! unauthorized") == 2, (flags, out)
        assert "Traceback" not in out and "panic" not in out
    # SQL lines go to /db/request, which wants query and execute both (as
    # rqlite's); .tables is a query
    out = shell(follower, ["SELECT * FROM s;", ".tables"], "-u", "has-query:pw-query")
    assert "ERR! server responded with 401 Unauthorized: " in out and "| hi |" not in out, out
    assert "| name |" in out and "| s    |" in out, out
    out = shell(follower, ["SELECT * FROM s;"], "-u", "adminadminpw")
    assert "invalid Basic Auth credential format" in out, out
    assert count(leader, "s", "strong") == 1


def test_cors_with_auth(cluster, tmp_path):
    n = wait_ready(auth_node(cluster, tmp_path, 1, extra=["-http-allow-origin", "https://app.example"]).start())
    for method, path, auth, code in (("OPTIONS", "/db/query", None, 200), ("GET", "/status", None, 401),
                                     ("GET", "/status", ADMIN, 200)):
        r = req(n, method, path, auth)
        assert r.status_code == code
        assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert r.headers["Access-Control-Allow-Methods"] == "OPTIONS, GET, POST"
        assert r.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        assert r.headers["WWW-Authenticate"] == CHALLENGE
    assert "not supported" not in n.logs()
