"""One node: the HTTP API's shapes and error handling, and the piped shell."""
import subprocess

import requests

from harness import RQLITE


def test_crud_shapes(cluster):
    n = cluster.node(1).start().wait_ready()
    r = requests.post(n.url + "/db/execute", json=[
        "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER)",
        ["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20],
        ["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "declan", "age": 30}],
        "INSERT INTO nope VALUES(1)",
    ])
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.text == ('{"results":[{},{"last_insert_id":1,"rows_affected":1},'
                      '{"last_insert_id":2,"rows_affected":1},{"error":"no such table: nope"}]}')

    r = requests.get(n.url + "/db/query", params={"q": "SELECT * FROM foo ORDER BY id"})
    assert r.text == ('{"results":[{"columns":["id","name","age"],"types":["integer","text","integer"],'
                      '"values":[[1,"fiona",20],[2,"declan",30]]}]}')

    r = requests.post(n.url + "/db/query", json=[["SELECT name FROM foo WHERE age > ?", 25]])
    assert r.json()["results"][0]["values"] == [["declan"]]

    # Empty result: no "values" key.
    r = requests.get(n.url + "/db/query", params={"q": "SELECT * FROM foo WHERE id = 99"})
    assert r.json() == {"results": [{"columns": ["id", "name", "age"],
                                     "types": ["integer", "text", "integer"]}]}

    # Associative rows and every level on a single node.
    for level in ("none", "weak", "strong", "linearizable", "auto"):
        r = requests.get(n.url + "/db/query", params={"q": "SELECT COUNT(*) AS c FROM foo",
                                                      "level": level, "associative": ""})
        assert r.json() == {"results": [{"types": {"c": "integer"}, "rows": [{"c": 2}]}]}, level

    # A read sent to /db/execute gives an execute result, as in rqlite (the
    # numbers are the connection's last ones); RETURNING gives rows.
    r = requests.post(n.url + "/db/execute", json=["SELECT * FROM foo"]).json()
    assert r == {"results": [{"last_insert_id": 2, "rows_affected": 1}]}
    r = requests.post(n.url + "/db/execute",
                      json=["UPDATE foo SET age = age + 1 WHERE id = 1 RETURNING age"]).json()
    assert r == {"results": [{"columns": ["age"], "types": ["integer"], "values": [[21]]}]}
    # A write sent to /db/query is refused per statement.
    r = requests.get(n.url + "/db/query", params={"q": "DELETE FROM foo"})
    assert r.json()["results"][0]["error"] == "attempt to change database via query operation"
    assert n.count("foo") == 2


def test_transaction_pretty_timings(cluster):
    n = cluster.node(1).start().wait_ready()
    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"])
    r = n.execute(["INSERT INTO t(v) VALUES('a')", "INSERT INTO t(v) VALUES('a')",
                   "INSERT INTO t(v) VALUES('b')"], params="?transaction")
    res = r["results"]
    assert len(res) == 2  # stops at the failing statement
    assert res[1]["error"] == "UNIQUE constraint failed: t.v"
    assert n.count("t") == 0  # rolled back

    r = requests.post(n.url + "/db/execute?timings", json=["INSERT INTO t(v) VALUES('c')"]).json()
    assert isinstance(r["time"], float) and "time" in r["results"][0]

    r = requests.get(n.url + "/db/query?pretty", params={"q": "SELECT v FROM t"})
    assert r.text == ('{\n    "results": [\n        {\n            "columns": [\n                "v"\n'
                      '            ],\n            "types": [\n                "text"\n            ],\n'
                      '            "values": [\n                [\n                    "c"\n'
                      '                ]\n            ]\n        }\n    ]\n}')


def test_request_endpoint_mixes(cluster):
    n = cluster.node(1).start().wait_ready()
    r = requests.post(n.url + "/db/request", json=[
        "CREATE TABLE r (x)", "INSERT INTO r VALUES (7)", "SELECT x FROM r", "SELECT * FROM nope"])
    assert r.json() == {"results": [{}, {"last_insert_id": 1, "rows_affected": 1},
                                    {"columns": ["x"], "types": ["integer"], "values": [[7]]},
                                    {"error": "no such table: nope"}]}


def test_bad_input_keeps_serving(cluster):
    n = cluster.node(1).start().wait_ready()
    cases = [
        ("post", "/db/execute", b"not json", 400),
        ("post", "/db/execute", b"[", 400),
        ("post", "/db/execute", b"[]", 400),
        ("post", "/db/execute", b'[{"a":1}]', 400),
        ("post", "/db/query", b"{}", 400),
        ("get", "/no/such/endpoint", None, 404),
        ("get", "/db/execute", None, 405),
        ("delete", "/db/query", None, 405),
        ("post", "/status", b"", 405),
        ("delete", "/remove", b"{}", 400),
    ]
    for method, path, body, code in cases:
        r = requests.request(method, n.url + path, data=body,
                             headers={"Content-Type": "application/json"})
        assert r.status_code == code, (method, path, body, r.status_code, r.text)
        if code == 400 and path.startswith("/db/"):
            assert r.text.strip() in ("invalid request", "invalid JSON body", "no statements")
    r = requests.get(n.url + "/db/query", params={"q": ""})
    assert r.status_code == 400 and r.text == "query parameter not set\n"
    # Still serving after all of it.
    n.execute(["CREATE TABLE ok (id INT)"])
    assert n.count("ok") == 0
    assert n.proc.poll() is None


def test_db_timeout_interrupts_reads(cluster):
    n = cluster.node(1).start().wait_ready()
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    for level in ("none", "weak", "linearizable", "strong"):
        r = requests.get(n.url + "/db/query", params={"q": endless, "db_timeout": "50ms", "level": level},
                         timeout=10)
        assert r.status_code == 200 and r.json()["results"] == [{"error": "query timeout"}], (level, r.text)
    r = requests.post(n.url + "/db/request?db_timeout=50ms", json=[endless], timeout=10)
    assert r.json()["results"] == [{"error": "query timeout"}]
    # a read within its time is answered as usual
    r = requests.get(n.url + "/db/query", params={"q": "SELECT 1", "db_timeout": "5s"}, timeout=10)
    assert r.json()["results"][0]["values"] == [[1]]
    for path in ("/db/query?q=SELECT%201&db_timeout=soon", "/db/execute?db_timeout=10"):
        r = requests.post(n.url + path, json=["SELECT 1"], timeout=10)
        assert r.status_code == 400 and r.text == "db_timeout is not a valid duration\n", (path, r.text)
    assert n.proc.poll() is None


def test_status_nodes_readyz(cluster):
    n = cluster.node(1).start().wait_ready()
    st = n.status()
    assert st["store"]["node_id"] == "1"
    assert st["store"]["leader"]["node_id"] == "1"
    assert st["store"]["raft"]["state"] == "Leader"
    nodes = requests.get(n.url + "/nodes").json()
    assert nodes["1"]["leader"] is True and nodes["1"]["reachable"] is True
    assert nodes["1"]["api_addr"] == n.url and nodes["1"]["addr"] == n.raft_addr
    r = requests.get(n.url + "/readyz")
    assert r.status_code == 200 and r.text == "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok"


def test_shell_piped_stdin(cluster):
    n = cluster.node(1).start().wait_ready()
    script = "CREATE TABLE foo (id INT);\nINSERT INTO foo VALUES (1);\nSELECT * FROM foo;\n" \
             "SELECT * FROM missing;\n.tables\n"
    out = subprocess.run([RQLITE, "-H", "127.0.0.1", "-p", str(n.http_port)], input=script,
                         capture_output=True, text=True, timeout=30).stdout
    assert "Connected to http://127.0.0.1:%d running version" % n.http_port in out
    assert "0 row affected" in out and "1 row affected" in out
    assert "+----+\n| id |\n+----+\n| 1  |\n+----+\n" in out
    assert "Error: no such table: missing" in out
    assert "| name |\n+------+\n| foo  |" in out
    assert out.rstrip().endswith("bye~")


def test_shell_no_server():
    port = __import__("harness").free_port()
    p = subprocess.run([RQLITE, "-p", str(port)], input="", capture_output=True, text=True, timeout=30)
    # rqlite v10's words: its failover client turns "connection refused" into
    # "no host available" before the start-up could name it
    assert p.returncode == 0
    assert p.stdout == "ERR! no host available to perform the request\n", p.stdout
    assert "host '127.0.0.1:%d' is unavailable, retrying with the next available host" % port in p.stderr


def test_flags_errors():
    p = subprocess.run([__import__("harness").RQLITED], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "DataPath" in p.stderr
    p = subprocess.run([__import__("harness").RQLITED, "-nope", "/tmp/x"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 1 and "flag provided but not defined: -nope" in p.stderr
    p = subprocess.run([__import__("harness").RQLITED, "-version"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("rqlited ")


def test_garbage_requests_never_crash(cluster):
    """Bounded random input on every endpoint: clear 2xx/4xx answers, node
    alive. The one 5xx allowed is rqlite's 500 for a stepdown that cannot
    happen (POST /leader on a single node: "stepdown: ..."); 503 would mean
    no leader, which a single node always has."""
    import random
    rnd = random.Random(1234)
    n = cluster.node(1).start().wait_ready()
    n.execute(["CREATE TABLE g (id INTEGER PRIMARY KEY, v)"])
    paths = ["/db/execute", "/db/query", "/db/request", "/status", "/nodes", "/readyz",
             "/join", "/remove", "/leader", "/db/execute?transaction&pretty&timings",
             "/db/query?level=strong&associative", "/db/query?q=%ZZ", "/db/query?freshness=1x"]
    pieces = ['[', ']', '{', '}', '"', ',', ':', '1', '-1e999', 'null', 'true', '"SELECT 1"',
              '"INSERT INTO g(v) VALUES(1)"', '["SELECT ?", 1]', '[[]]', '\\u0000', '\xff', ' ']
    seen = {}
    for i in range(300):
        body = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
        if rnd.random() < 0.1:
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
        method = rnd.choice(["GET", "POST", "DELETE", "PUT"])
        path = rnd.choice(paths)
        r = requests.request(method, n.url + path, data=body, timeout=10,
                             headers={"Content-Type": rnd.choice(["application/json", "text/plain"])})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        if r.status_code == 500 and method == "POST" and path == "/leader":
            assert r.text.startswith("stepdown: "), r.text
            continue
        assert r.status_code in (200, 400, 404, 405), (method, path, body, r.status_code, r.text)
    print("answers by status: %r" % seen)
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0   # the input reached the handlers
    assert n.proc.poll() is None
    assert n.ready()
    r = n.execute(["INSERT INTO g(v) VALUES ('still here')"])
    assert r["results"][0]["rows_affected"] == 1


def test_shell_backup_dump_restore_boot(cluster, tmp_path):
    n = cluster.node(1).start().wait_ready()
    n.execute(["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES ('a')"])
    b, d = str(tmp_path / "b.sqlite"), str(tmp_path / "d.sql")
    script = (".backup %s\n.dump %s\nDROP TABLE foo;\n.restore %s\nSELECT name FROM foo;\n"
              "DROP TABLE foo;\n.boot %s\n.boot %s\nSELECT COUNT(*) FROM foo;\n" % (b, d, d, d, b))
    out = subprocess.run([RQLITE, "-p", str(n.http_port)], input=script, capture_output=True,
                         text=True, timeout=30).stdout
    assert "backup file written successfully" in out
    assert "SQL text file written successfully" in out
    assert "Database restored successfully." in out
    assert "| a    |" in out
    assert "ERR! %s is not a valid SQLite file" % d in out
    assert "Node booted successfully." in out
    assert "| COUNT(*) |\n+----------+\n| 1        |" in out
    assert open(d).read().startswith("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE foo")


def test_debug_vars_and_status_sections(cluster):
    n = cluster.node(1).start().wait_ready()
    r = requests.get(n.url + "/debug/vars")
    assert r.status_code == 200 and r.text.startswith("{\n") and r.text.endswith("\n}\n")
    doc = r.json()
    assert "cmdline" in doc and doc["cmdline"][0].endswith("rqlited")
    assert set(doc) >= {"cmdline", "memstats", "store", "http"}
    assert list(requests.get(n.url + "/debug/vars?key=store").json()) == ["store"]
    st = n.status()
    assert set(st) >= {"build", "cluster", "http", "node", "os", "runtime", "store"}
    assert st["store"]["sqlite3"]["version"].startswith("3.")
    assert st["http"]["queue"]["_default"]["batch_size"] == 128
    assert requests.get(n.url + "/status?key=store.raft").json()["state"] == "Leader"


def test_body_over_limit_is_413(cluster):
    n = cluster.node(1).start().wait_ready()
    body = b'["' + b"x" * (64 * 1024 * 1024 + 16) + b'"]'
    r = requests.post(n.url + "/db/execute", data=body, timeout=60,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert n.execute(["CREATE TABLE after413 (x)"])["results"] == [{}]
