"""The rqlite shell's dot commands and flags, against real nodes.

Dot commands are typed into real terminals (tmux); each test opens its own
window on a node shared by the module (or on its own cluster), and reads
what one command printed: the text between the echoed line and the next
prompt. Flags are checked against a small local HTTP server standing in
for a node, which records the paths and credentials it was sent (auth,
URL prefixes and HTTPS are not in rqlited yet).
"""
import base64
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
from harness import poll
from terminal import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


# ---- fixtures ---------------------------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One node for the module's single-node tests (each uses its own tables)."""
    n = harness.Node(tmp_path_factory.mktemp("node"), 1).start().wait_ready()
    yield n
    n.kill()


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    t = Tmux(tmp_path_factory.mktemp("term"), session="shell")
    yield t
    t.kill()


class Shell:
    """An interactive rqlite in a tmux window."""

    def __init__(self, term, name, port, flags=""):
        self.term, self.name = term, name
        self.prompt = "127.0.0.1:%d> " % port
        term.window(name, "rqlite -H 127.0.0.1 -p %d %s" % (port, flags))
        term.wait_for(name, self.prompt, timeout=15)

    def screen(self):
        return self.term.screen(self.name)

    def run(self, line, timeout=15, prompt=None):
        """Type line; return what it printed before the next prompt (prompt,
        when the line is to change it)."""
        return self.keys([line], line, timeout, prompt)

    def keys(self, steps, echoed, timeout=15, prompt=None):
        """Type steps (strings typed as they are; ("Tab",) and the like are
        keys by tmux's names), then Enter; echoed is the line the screen
        shows for them (completion's trailing blank aside). Returns what it
        printed before the next prompt."""
        mark = len(self.screen().rstrip())
        if prompt:
            self.prompt = prompt

        def printed():
            tail = self.screen()[mark:]
            at = tail.find(echoed)
            if at < 0:
                return None
            rest = tail[at + len(echoed):]
            end = rest.find(self.prompt)
            return None if end < 0 else rest[:end]
        for step in steps:
            if isinstance(step, tuple):
                self.term.keys(self.name, *step)
            else:
                self.term.literal(self.name, step)
        self.term.keys(self.name, "Enter")
        out = poll(printed, timeout, what="%r to finish in window %s" % (echoed, self.name))
        out = re.sub(r"^ +\n", "\n", out)   # the blank a completion leaves after its word
        return out[1:] if out.startswith("\n") else out

    def editing(self):
        """The line being edited: the screen's last line with anything on it."""
        lines = [x for x in self.screen().splitlines() if x.strip()]
        return lines[-1].rstrip() if lines else ""

    def exit(self):
        self.term.type(self.name, ".exit")
        self.term.wait_for(self.name, "bye~", timeout=10)


def table(rows):
    """rqlite's bordered table for rows (header first), as the shell prints it."""
    w = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]))]
    border = "+" + "+".join("-" * (x + 2) for x in w) + "+"
    lines = [border]
    for r in rows:
        lines.append("|" + "|".join(" " + str(v).ljust(x + 1) for v, x in zip(r, w)) + "|")
        lines.append(border)
    return "\n".join(lines) + "\n"


def last_log_index(n):
    return n.status()["store"]["raft"]["last_log_index"]


# ---- dot commands on one node -------------------------------------------------

def test_mode(node, term):
    node.execute(["CREATE TABLE m (id INTEGER PRIMARY KEY, name TEXT, note TEXT)",
                  "INSERT INTO m VALUES (1, 'a,b', NULL), (2, 'x\"y', 'z')"])
    sh = Shell(term, "mode", node.http_port)
    q = "SELECT * FROM m ORDER BY id"
    assert sh.run(".mode") == "column\n"
    assert sh.run(q) == table([("id", "name", "note"), (1, "a,b", "<nil>"), (2, 'x"y', "z")])
    assert sh.run(".mode csv") == ""
    assert sh.run(".mode") == "csv\n"
    assert sh.run(q) == 'id,name,note\n1,"a,b",NULL\n2,"x""y",z\n'
    assert sh.run(".mode json") == ""
    assert sh.run(q) == ('[\n  {\n    "id": 1,\n    "name": "a,b",\n    "note": null\n  },\n'
                         '  {\n    "id": 2,\n    "name": "x\\"y",\n    "note": "z"\n  }\n]\n')
    assert sh.run(".mode line") == ""
    assert sh.run(q) == "  id = 1\nname = a,b\nnote = NULL\n\n  id = 2\nname = x\"y\nnote = z\n"
    assert sh.run(".mode table") == "ERR! invalid mode 'table'. Use 'column', 'csv', 'json', or 'line'\n"
    assert sh.run(".mode") == "line\n"
    # Writes are counted the same in every mode; the mode is for query results.
    assert sh.run("UPDATE m SET note = 'n'") == "2 rows affected\n"
    assert sh.run(".mode column") == ""
    assert sh.run("SELECT COUNT(*) AS n FROM m") == table([("n",), (2,)])
    sh.exit()


def test_timer(node, term):
    node.execute(["CREATE TABLE tm (id INTEGER PRIMARY KEY)"])
    sh = Shell(term, "timer", node.http_port)
    assert sh.run(".timer") == "off\n"
    assert sh.run("INSERT INTO tm VALUES (1)") == "1 row affected\n"
    assert sh.run("SELECT id FROM tm") == table([("id",), (1,)])
    assert sh.run(".timer on") == ""
    assert sh.run(".timer") == "on\n"
    assert re.fullmatch(r"1 row affected \(\d+\.\d{6} sec\)\n", sh.run("INSERT INTO tm VALUES (2)"))
    out = sh.run("SELECT id FROM tm ORDER BY id")
    assert out.startswith(table([("id",), (1,), (2,)]))
    assert re.fullmatch(r"Run Time: \d+\.\d{6} seconds\n", out[len(table([("id",), (1,), (2,)])):])
    assert re.fullmatch(r"\+-+\+\n\| name +\|\n(.|\n)*Run Time: \d+\.\d{6} seconds\n", sh.run(".tables"))
    assert sh.run(".timer maybe") == "ERR! invalid option 'maybe'. Use 'on' or 'off' (default)\n"
    assert sh.run(".timer off") == ""
    assert sh.run("SELECT COUNT(*) AS n FROM tm") == table([("n",), (2,)])
    sh.exit()


def test_consistency(node, term):
    """The level goes with .tables, .schema and .indexes only, as in rqlite
    v10: a strong read goes through the Raft log (one entry each), while SQL
    lines go to /db/request without a level, so they never do."""
    node.execute(["CREATE TABLE c (id INTEGER PRIMARY KEY)", "INSERT INTO c VALUES (7)"])
    sh = Shell(term, "consistency", node.http_port)
    q = "SELECT id FROM c"
    assert sh.run(".consistency") == "weak\n"
    before = last_log_index(node)
    assert sh.run(q) == table([("id",), (7,)])
    assert sh.run(".tables").startswith("+")
    assert last_log_index(node) == before
    assert sh.run(".consistency strong") == ""
    assert sh.run(".consistency") == "strong\n"
    assert sh.run(".tables").startswith("+")
    assert sh.run(".schema").startswith("+")
    assert last_log_index(node) == before + 2
    assert sh.run(q) == table([("id",), (7,)])   # no level: not through the log
    assert last_log_index(node) == before + 2
    for level in ("linearizable", "none"):
        assert sh.run(".consistency " + level) == ""
        assert sh.run(".indexes").startswith("+")
        assert last_log_index(node) == before + 2
    assert sh.run(".consistency eventual") == \
        "ERR! invalid consistency 'eventual'. Use 'none', 'weak', 'linearizable', or 'strong'\n"
    assert sh.run(".show").splitlines()[2] == "  consistency: none"
    sh.exit()


def test_output(node, term, tmp_path):
    node.execute(["CREATE TABLE o (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO o VALUES (1, 'one')"])
    sh = Shell(term, "output", node.http_port)
    out = str(tmp_path / "results.txt")
    assert sh.run(".output " + out) == ""
    # Results go to the file and not the screen...
    assert sh.run("SELECT * FROM o") == ""
    assert sh.run("INSERT INTO o VALUES (2, 'two')") == ""
    assert sh.run("SELECT * FROM nothere") == ""
    # ...while settings and errors stay on the screen.
    assert "  output: %s\n" % out in sh.run(".show")
    assert sh.run(".output /nonexistent/dir/x.txt") == \
        "ERR! open /nonexistent/dir/x.txt: no such file or directory\n"
    assert sh.run("SELECT v FROM o WHERE id = 2") == ""
    assert sh.run(".output") == ""
    assert sh.run("SELECT COUNT(*) AS n FROM o") == table([("n",), (2,)])
    want = (table([("id", "v"), (1, "one")]) + "1 row affected\nError: no such table: nothere\n" +
            table([("v",), ("two",)]))
    with open(out) as f:
        assert f.read() == want
    sh.exit()


def test_read(node, term, tmp_path):
    script = tmp_path / "script.sql"
    script.write_text("-- a comment line\n"
                      "CREATE TABLE r (id INTEGER PRIMARY KEY, name TEXT)\n"
                      "\n"
                      "   INSERT INTO r(name) VALUES ('fiona')   \n"
                      "INSERT INTO r(name) VALUES ('sinead'), ('declan')\n"
                      "INSERT INTO nope VALUES (1)\n"
                      "SELECT name FROM r ORDER BY id\n")
    sh = Shell(term, "read", node.http_port)
    out = sh.run(".read %s" % script)
    # (a DDL statement reports SQLite's count of the connection's last write)
    first, rest = out.split("\n", 1)
    assert re.fullmatch(r"[01] row affected", first), out
    assert rest == ("1 row affected\n2 rows affected\nError: no such table: nope\n" +
                    table([("name",), ("fiona",), ("sinead",), ("declan",)]))
    # The statements ran on the node, each once.
    res = node.query("SELECT id, name FROM r ORDER BY id", level="strong")["results"][0]
    assert res["values"] == [[1, "fiona"], [2, "sinead"], [3, "declan"]]
    assert sh.run(".read %s" % (tmp_path / "missing.sql")) == \
        "ERR! open %s: no such file or directory\n" % (tmp_path / "missing.sql")
    assert sh.run(".read") == "ERR! please specify an input file to read from\n"
    sh.exit()


def test_read_sqlite3_style(node, term, tmp_path):
    """A file whose statements end in ';' is read as sqlite3 reads one:
    statements spanning lines, two on a line, a trigger body with its own
    ';'s, and dot commands run as commands (a file without ';' is rqlite's
    line-per-statement, test_read)."""
    script = tmp_path / "multi.sql"
    script.write_text("-- made by hand\n"
                      "CREATE TABLE rm (\n"
                      "  id INTEGER PRIMARY KEY,\n"
                      "  name TEXT  -- who\n"
                      ");\n"
                      "CREATE TABLE rm_log (name TEXT);\n"
                      "CREATE TRIGGER rm_t AFTER INSERT ON rm BEGIN\n"
                      "  INSERT INTO rm_log VALUES (new.name);\n"
                      "END;\n"
                      "INSERT INTO rm(name) VALUES ('a;b'); INSERT INTO rm(name)\n"
                      "  VALUES ('c');\n"
                      ".mode csv\n"
                      "SELECT name\n  FROM rm_log\n  ORDER BY name;\n"
                      ".mode column\n"
                      "SELECT COUNT(*) AS n FROM rm\n")
    sh = Shell(term, "readmulti", node.http_port)
    out = sh.run(".read %s" % script)
    lines = out.splitlines()
    # (DDL reports SQLite's count of the connection's last write: whatever ran before)
    assert all(re.fullmatch(r"\d+ rows? affected", x) for x in lines[:3]), out
    assert "\n".join(lines[3:]) + "\n" == ("1 row affected\n1 row affected\nname\na;b\nc\n" +
                                           table([("n",), (2,)])), out
    assert sh.run(".mode") == "column\n"
    res = node.query("SELECT id, name FROM rm ORDER BY id", level="strong")["results"][0]
    assert res["values"] == [[1, "a;b"], [2, "c"]]
    sh.exit()


def test_node_tools(node, term, tmp_path):
    """.expvar, .extensions, .reap and .sysdump against a real node."""
    sh = Shell(term, "tools", node.http_port)
    out = sh.run(".expvar")
    assert out.startswith("cdc.service:\n"), out  # sorted, as Go's expvar
    # every key of rqlite's maps, sorted within each
    assert re.search(r"\ncluster:\n(  \w+: \d+\n)*  num_client_force_new_conn: 0\n(  \w+: \d+\n)*  num_join_req: 0\n",
                     out), out
    assert "\ndb.wal:\n  compact_frames_input: 0\n" in out, out
    assert "\ncmdline: [%s -node-id 1 " % harness.RQLITED in out, out
    assert re.search(r"\n  queued_sequence_number: \d{6,}\n", out), out   # an integer, not 1.7e+18
    assert "e+" not in out, out
    assert re.fullmatch(r"cmdline: \[\S+rqlited -node-id 1 .*\]\n", sh.run(".expvar cmdline"))
    assert sh.run(".expvar nosuchkey") == ""
    assert sh.run(".extensions") == ""   # none loaded
    assert sh.run(".reap") == "snapshots reaped: 0, WALs checkpointed: 0\n"
    # one node: nobody to hand over to (rqlite answers 500 too)
    assert sh.run(".stepdown") == "ERR! server responded with 500 Internal Server Error\n"

    dump = tmp_path / "sysdump.txt"
    assert sh.run(".sysdump %s" % dump) == ""
    text = dump.read_text()
    sections = text.split("\n=========================================\n")
    assert sections[0] == "" and len(sections) == 5, text[:2000]
    for section, path in zip(sections[1:], ("/status?pretty", "/nodes?pretty", "/readyz", "/debug/vars")):
        head, body = section.split("\n\n", 1)
        assert head == "URL: %s%s\nStatus: 200 OK" % (node.url, path), section[:300]
        if path != "/readyz":
            assert json.loads(body), section[:300]
    assert json.loads(sections[1].split("\n\n", 1)[1])["store"]["node_id"] == node.id
    assert "[+]node ok" in sections[3]
    assert sh.run(".sysdump") == "ERR! please specify an output file for the sysdump\n"
    assert sh.run(".sysdump /nonexistent/dir/d.txt") == \
        "ERR! open /nonexistent/dir/d.txt: no such file or directory\n"
    assert sh.run(".sysdump %s" % tmp_path) == "ERR! open %s: is a directory\n" % tmp_path
    assert sh.run(".sysdump /dev/full") == "ERR! write /dev/full: no space left on device\n"
    assert sh.run(".status store node_id").startswith("store:\n")   # the shell carries on
    sh.exit()


# ---- ours: .headers, Tab completion, progress of long transfers ------------------

def test_headers(node, term):
    """.headers (sqlite3's; rqlite's shell has none): on by default, which
    is rqlite's output; off drops the names in csv and column modes."""
    node.execute(["CREATE TABLE hd (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO hd VALUES (1, 'a'), (2, 'b')"])
    sh = Shell(term, "headers", node.http_port)
    q = "SELECT * FROM hd ORDER BY id"
    assert sh.run(".headers") == "on\n"
    assert "  forcewrites: off\n  headers: on\n  mode: column\n" in sh.run(".show")
    assert sh.run(q) == table([("id", "name"), (1, "a"), (2, "b")])
    assert sh.run(".mode csv") == ""
    assert sh.run(q) == "id,name\n1,a\n2,b\n"
    assert sh.run(".headers off") == ""
    assert sh.run(".headers") == "off\n"
    assert sh.run(q) == "1,a\n2,b\n"
    assert sh.run("SELECT * FROM hd WHERE id > 5") == ""
    assert "  headers: off\n" in sh.run(".show")
    assert sh.run(".mode column") == ""
    assert sh.run(q) == "+---+---+\n| 1 | a |\n+---+---+\n| 2 | b |\n+---+---+\n"
    assert sh.run(".mode line") == ""
    assert sh.run(q) == "  id = 1\nname = a\n\n  id = 2\nname = b\n"   # names are line mode's layout
    assert sh.run(".headers yes") == "ERR! invalid option 'yes'. Use 'on' or 'off' (default)\n"
    assert sh.run(".headers on") == ""
    assert sh.run(".mode csv") == ""
    assert sh.run(q) == "id,name\n1,a\n2,b\n"
    help = sh.run(".help").splitlines()
    at = help.index(".headers [on|off]                             "
                    "Show setting, or set display of column names in column and csv modes")
    assert help[at - 1].startswith(".forcewrites ") and help[at + 1].startswith(".help ")
    assert len(help) == 31
    sh.exit()


def test_complete(node, term):
    """Tab completes dot commands, their choices, table names the node has
    (one the shell itself just made too) and keywords in the case typed."""
    node.execute(["CREATE TABLE completion_target (id INTEGER)", "INSERT INTO completion_target VALUES (7)"])
    sh = Shell(term, "complete", node.http_port)
    # a dot command: had Tab done nothing, ".heaoff" would be an unknown command
    assert sh.keys([".hea", ("Tab",), "off"], ".headers off") == ""
    assert sh.run(".headers") == "off\n"
    assert sh.keys([".hea", ("Tab",), "o", ("Tab",), "n"], ".headers on") == ""
    assert sh.keys([".mode j", ("Tab",)], ".mode json") == ""
    assert sh.run(".mode") == "json\n"
    assert sh.run(".mode column") == ""
    # a table name, as the node spells it
    n = table([("n",), (1,)])
    assert sh.keys(["SELECT COUNT(*) AS n FROM COMPLETION_T", ("Tab",)],
                   "SELECT COUNT(*) AS n FROM completion_target") == n
    # keywords, in the case typed
    assert sh.keys(["sel", ("Tab",), "7 AS k"], "select 7 AS k") == table([("k",), (7,)])
    assert sh.keys(["SELECT 8 AS k WHER", ("Tab",), "1"], "SELECT 8 AS k WHERE 1") == table([("k",), (8,)])
    # a table made in this shell is offered on the next Tab
    assert re.fullmatch(r"[01] row affected\n", sh.run("CREATE TABLE made_here_by_shell (v)"))
    assert sh.keys(["SELECT COUNT(*) AS n FROM made_here", ("Tab",)],
                   "SELECT COUNT(*) AS n FROM made_here_by_shell") == table([("n",), (0,)])
    sh.exit()


def test_complete_node_down(tmp_path, term):
    """With the node stopped (SIGSTOP: it accepts connections and answers
    nothing) or gone, Tab still completes keywords at once, and a table
    name the shell already knew."""
    n = harness.Node(tmp_path, "cd").start().wait_ready()
    try:
        n.execute(["CREATE TABLE known_before (id INTEGER)"])
        stuck = Shell(term, "stuck", n.http_port)
        gone = Shell(term, "gone", n.http_port)
        assert gone.keys(["SELECT COUNT(*) AS n FROM known_b", ("Tab",)],
                         "SELECT COUNT(*) AS n FROM known_before") == table([("n",), (0,)])

        def bounded(sh, typed, want, limit):
            t0 = time.monotonic()
            for step in typed:
                if isinstance(step, tuple):
                    term.keys(sh.name, *step)
                else:
                    term.literal(sh.name, step)
            poll(lambda: sh.editing() == sh.prompt + want, timeout=10,
                 what="%r on the line in window %s" % (want, sh.name))
            took = time.monotonic() - t0
            term.keys(sh.name, "C-u")
            poll(lambda: sh.editing() == sh.prompt.rstrip(), timeout=10, what="line cleared")
            return took

        n.signal(signal.SIGSTOP)
        try:
            took = bounded(stuck, ["SELECT 1 WHER", ("Tab",), "x"], "SELECT 1 WHERE x", 10)
            assert took < 3, took
            took = bounded(stuck, ["sel", ("Tab",), "x"], "select x", 10)   # no second wait
            assert took < 1.5, took
        finally:
            n.signal(signal.SIGCONT)
        n.kill()
        took = bounded(gone, ["SELECT * FROM known_", ("Tab",), "x ORD", ("Tab",), "x"],
                       "SELECT * FROM known_before x ORDER x", 10)
        assert took < 3, took
        stuck.term.type(stuck.name, ".exit")
        gone.term.type(gone.name, ".exit")
    finally:
        n.signal(signal.SIGCONT)
        n.kill()


PROGRESS = r"  \d+\.\d MB / (\d+\.\d MB)  100%  \d+\.\d [kMG]?B/s *\n"   # (blanks: a longer line erased)


def big_node(tmp_path, mb):
    """A node holding about mb MB of random blobs (bounded inserts)."""
    n = harness.Node(tmp_path, "big").start().wait_ready()
    n.execute(["CREATE TABLE big (b BLOB)"])
    for _ in range(mb * 2):
        n.execute(["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) "
                   "INSERT INTO big SELECT randomblob(10000) FROM c"], timeout=30)
    return n


def test_progress(tmp_path, term):
    """.backup, .dump, .restore and .boot of some MB draw a progress line in
    a terminal (redrawn in place: the transfer here is slowed by a proxy,
    so the line is seen part-way), then print rqlite's message unchanged."""
    n = big_node(tmp_path, 4)
    proxy = harness.TcpProxy(n.http_port, rate=2_000_000)
    try:
        sh = Shell(term, "progress", proxy.port)
        b = tmp_path / "b.sqlite"
        mark = len(sh.screen().rstrip())
        term.type(sh.name, ".backup %s" % b)
        partial = poll(lambda: re.search(r"\n  \d+\.\d [kM]?B / \d+\.\d MB  ([1-9]\d?)%  ",
                                         sh.screen()[mark:]),
                       timeout=20, what="a progress line part-way")
        assert 0 < int(partial.group(1)) < 100
        term.wait_for(sh.name, "backup file written successfully", after=mark)
        out = sh.screen()[mark:]
        body = out[out.index(".backup %s" % b) + len(".backup %s" % b) + 1:out.rindex(sh.prompt)]
        m = re.fullmatch(PROGRESS + "backup file written successfully\n", body)
        assert m, body   # one line, overwritten in place, then rqlite's
        size = os.path.getsize(b)
        assert size > 4_000_000 and m.group(1) == "%.1f MB" % (size / 1e6)
        out = sh.run(".dump %s" % (tmp_path / "d.sql"), timeout=60)
        assert re.fullmatch(PROGRESS + "SQL text file written successfully\n", out), out
        out = sh.run(".restore %s" % b, timeout=60)
        assert re.fullmatch(PROGRESS + "Database restored successfully.\n", out), out
        assert sh.run("SELECT COUNT(*) AS n FROM big") == table([("n",), (400,)])
        # small transfers print what they always did
        s = tmp_path / "small.sqlite"
        assert sh.run("DELETE FROM big") == "400 rows affected\n"
        assert re.fullmatch(r"\d+ rows? affected\n", sh.run("VACUUM"))   # (SQLite's count of the last write)
        assert sh.run(".backup %s" % s) == "backup file written successfully\n"
        out = sh.run(".boot %s" % b, timeout=60)
        assert re.fullmatch(PROGRESS + "Node booted successfully.\n", out), out
        assert sh.run("SELECT COUNT(*) AS n FROM big") == table([("n",), (400,)])
        sh.exit()
    finally:
        proxy.close()
        n.kill()


def test_progress_quiet_when_piped(tmp_path, term):
    """No progress line when the output is not a terminal: stdout and
    stderr piped, or only stdout (stderr still the terminal)."""
    n = big_node(tmp_path, 2)
    try:
        b, d = tmp_path / "b.sqlite", tmp_path / "d.sql"
        rc, out, err = shell_piped(n.http_port, [], ".backup %s\n.dump %s\n.restore %s\n" % (b, d, b), timeout=60)
        p = "127.0.0.1:%d> " % n.http_port
        assert out.endswith("%sbackup file written successfully\n%sSQL text file written successfully\n"
                            "%sDatabase restored successfully.\n%s\nbye~\n" % (p, p, p, p)), out
        assert err == "" and "MB/s" not in out and "\r" not in out
        assert os.path.getsize(b) > 2_000_000
        # in a terminal, output piped to cat: rqlite's lines only
        term.window("piped", "rqlite -H 127.0.0.1 -p %d | cat" % n.http_port)
        term.wait_for("piped", "Connected to")   # (the line editor's prompt waits in stdout's buffer)
        term.type("piped", ".backup %s" % b)
        term.wait_for("piped", "backup file written successfully")
        term.type("piped", ".restore %s" % b)
        screen = term.wait_for("piped", "Database restored successfully.")
        assert "MB/s" not in screen and " / " not in screen, screen
        term.type("piped", ".exit")
        term.wait_for("piped", "bye~")
    finally:
        n.kill()


# ---- .leader, .ready, .remove on a cluster -----------------------------------------

def test_leader_ready_remove(cluster, term):
    nodes = cluster.start_three()
    leader = harness.leader_of(nodes)
    follower, other = [n for n in nodes if n is not leader]
    # The shell talks to a follower: .leader must name the leader, not the node it is on.
    sh = Shell(term, "cluster", follower.http_port)
    out = sh.run(".leader")
    assert out.startswith("%s:\n  addr: %s\n  api_addr: %s\n  id: %s\n  leader: true\n  reachable: true\n" %
                          (leader.id, leader.raft_addr, leader.url, leader.id)), out
    assert sh.run(".ready") == "ready\n"

    assert sh.run(".remove %s" % other.id) == ""
    poll(lambda: sorted(x["id"] for x in leader.nodes()) == sorted([leader.id, follower.id]),
         what="node %s gone from /nodes" % other.id)
    assert sorted(l.rstrip(":") for l in sh.run(".nodes").splitlines() if not l.startswith(" ")) == \
        sorted([leader.id, follower.id])
    assert sh.run(".remove") == "ERR! please specify a node ID\n"
    other.kill()

    # Without its leader the follower (one of two voters now) cannot be ready.
    leader.kill()
    deadline = time.monotonic() + 20
    while sh.run(".ready") != "not ready\n":
        assert time.monotonic() < deadline, "follower still ready without a leader"
    assert sh.run(".leader").startswith("ERR! ")
    sh.exit()


def test_stepdown_and_sysdump(cluster, term, tmp_path):
    """.stepdown with and without a node ID, from a follower; .sysdump of a
    cluster with a node down."""
    nodes = cluster.start_three()
    leader = harness.leader_of(nodes)
    follower = [n for n in nodes if n is not leader][0]
    sh = Shell(term, "stepdown", follower.http_port)
    assert sh.run(".stepdown") == ""
    new = poll(lambda: (lambda l: l is not leader and l)(harness.leader_of(nodes)),
               what="another leader after .stepdown")
    target = [n for n in nodes if n is not new][0]
    assert sh.run(".stepdown %s" % target.id) == ""
    poll(lambda: harness.leader_of(nodes) is target, what="node %s leading after .stepdown %s"
         % (target.id, target.id))
    assert sh.run(".leader").startswith("%s:\n" % target.id)
    assert sh.run(".stepdown nosuchnode").startswith("ERR! server responded with ")

    down = [n for n in nodes if n is not target and n is not follower][0]
    down.kill()
    dump = tmp_path / "cluster.txt"
    assert sh.run(".sysdump %s" % dump, timeout=60) == ""
    text = dump.read_text()
    for n in nodes:
        assert "\nURL: %s/status?pretty\n" % n.url in text
    assert text.count("Status: 200 OK") == 8, text[:3000]
    assert text.count("Status: Get \"%s/" % down.url) == 4
    assert "dial tcp %s: connect: connection refused" % down.http_addr in text
    sh.exit()


def test_failover(tmp_path, term):
    """-a: two single nodes stand for a cluster's members. When the node the
    shell is on goes, the next request moves to the alternative (the
    client's log lines on stderr), and the prompt shows the new host."""
    x = harness.Node(tmp_path, "x").start().wait_ready()
    y = harness.Node(tmp_path, "y").start().wait_ready()
    try:
        for n in (x, y):
            n.execute(["CREATE TABLE fo (who TEXT)", ["INSERT INTO fo VALUES (?)", n.id]])
        q = "SELECT who FROM fo"
        sh = Shell(term, "failover", x.http_port, "-a ' ,,127.0.0.1:%d '" % y.http_port)
        assert sh.run(q) == table([("who",), ("x",)])
        x.kill()
        unavailable = r"\[client\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d host '%s' is unavailable, " \
                      r"retrying with the next available host\n"
        out = sh.run(q, prompt="127.0.0.1:%d> " % y.http_port)
        assert re.fullmatch(unavailable % x.http_addr + re.escape(table([("who",), ("y",)])), out), out
        assert sh.run(".ready") == "ready\n"       # it stays on y
        y.kill()
        out = sh.run(".ready")
        assert re.fullmatch(unavailable % y.http_addr + unavailable % x.http_addr +
                            r"\[client\] .* none of the available hosts are responsive\n"
                            r"ERR! no host available to perform the request\n", out), out
        # x back: a dot command after a failover prints nothing (as rqlite's), the next one does
        x.start().wait_ready()
        out = sh.run(".ready", prompt="127.0.0.1:%d> " % x.http_port)
        assert re.fullmatch(unavailable % y.http_addr, out), out
        assert sh.run(".ready") == "ready\n"
        sh.exit()

        # at start-up rqlite takes an answer from an alternative for an error
        dead = harness.free_port()
        rc, out, err = shell_piped(dead, ["-a", x.http_addr], "SELECT 1\n")
        assert rc == 0 and out == "ERR! HostChangedErr: new host is '%s'\n" % x.http_addr, out
        assert "host '127.0.0.1:%d' is unavailable" % dead in err
        rc, out, err = shell_piped(dead, ["-a", "bad host,,%s" % "127.0.0.1:%d" % harness.free_port()], "")
        assert rc == 0 and out == "ERR! no host available to perform the request\n", out
        assert "host 'bad host' is unavailable" in err and "none of the available hosts are responsive" in err
        rc, out, _ = shell_piped(x.http_port, ["--alternatives=,, ,"], "SELECT who FROM fo\n")
        assert table([("who",), ("x",)]) in out, out
    finally:
        x.kill()
        y.kill()


def shell_env(value, flags, script, timeout=20):
    """rqlite with RQLITE_HOST=value (None: unset) and only flags."""
    env = dict(os.environ)
    env.pop("RQLITE_HOST", None)
    if value is not None:
        env["RQLITE_HOST"] = value
    p = subprocess.run([harness.RQLITE] + flags, input=script, capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def test_rqlite_host(node):
    """RQLITE_HOST gives the scheme, host and port unless -H, -p or -s does;
    a value rqlite refuses is its message on stderr (exit status 0)."""
    rc, out, _ = shell_env("http://127.0.0.1:%d" % node.http_port, [], "SELECT 1\n")
    assert "Connected to http://127.0.0.1:%d running version" % node.http_port in out, out
    assert "127.0.0.1:%d> " % node.http_port in out and table([("1",), (1,)]) in out, out
    rc, out, _ = shell_env("//localhost:%d/some/path" % node.http_port, [], "")
    assert "Connected to http://localhost:%d running version" % node.http_port in out, out
    # the scheme is taken: HTTPS to a plain node fails
    rc, out, _ = shell_env("https://127.0.0.1:%d" % node.http_port, [], "")
    assert rc == 0 and out == "ERR! no host available to perform the request\n", out
    # -p (or -H, -s) given: RQLITE_HOST is not read at all
    rc, out, _ = shell_env("ftp://[nonsense", ["-p", str(node.http_port)], "")
    assert "Connected to http://127.0.0.1:%d" % node.http_port in out, out
    for value, msg in (("ftp://127.0.0.1:4001", "unsupported protocol ftp"),
                       ("", "RQLITE_HOST does not contain a hostname"),
                       ("127.0.0.1:4001", 'parse "127.0.0.1:4001": first path segment in URL cannot contain colon'),
                       ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
                       ("http://h:99999", "port number 99999 is outside of valid range [0, 65535]"),
                       ("http://h:x", 'parse "http://h:x": invalid port ":x" after host'),
                       ("http://a\x01b", 'parse "http://a\\x01b": net/url: invalid control character in URL'),
                       ("http://" + "a" * 100000, "RQLITE_HOST's hostname is too long")):
        rc, out, err = shell_env(value, [], "SELECT 1\n")
        assert (rc, out, err) == (0, "", msg + "\n"), (value[:40], out, err)


# ---- flags, against a stand-in node ---------------------------------------------

class FakeNode:
    """A local HTTP(S) server answering as a node would, behind an optional
    URL prefix and basic-auth credentials; records (method, path, auth) of
    every request. Queries can be held back until release() to test -t."""

    def __init__(self, prefix="/", creds=None, cert=None, slow=False):
        self.requests = []
        self.released = threading.Event()
        if not slow:
            self.released.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, code, body, ctype="application/json"):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("X-RQLITE-VERSION", "v-fake")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                auth = self.headers.get("Authorization")
                fake.requests.append((self.command, self.path, auth))
                if creds and auth != "Basic " + base64.b64encode(creds.encode()).decode():
                    return self.answer(401, "unauthorized\n", "text/plain")
                if not self.path.startswith(prefix):
                    return self.answer(404, "", "text/plain")
                path = "/" + self.path[len(prefix):]
                if path.startswith("/status"):
                    return self.answer(200, json.dumps({"store": {"node_id": "fake"}}))
                if path.startswith("/db/"):
                    fake.released.wait(10)
                    return self.answer(200, json.dumps({"results": [
                        {"columns": ["who"], "types": ["text"], "values": [["fake"]]}]}))
                return self.answer(404, "", "text/plain")

            do_GET = do_POST = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*cert)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def release(self):
        self.released.set()

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    made = []

    def make(**kw):
        f = FakeNode(**kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def shell_piped(port, flags, script, timeout=20):
    """rqlite with flags and script on stdin; returns (exit code, stdout, stderr)."""
    p = subprocess.run([harness.RQLITE, "-H", "127.0.0.1", "-p", str(port)] + flags, input=script,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


FAKE_TABLE = table([("who",), ("fake",)])


def test_flag_prefix_and_user(fake, term):
    f = fake(prefix="/rq/", creds="alice:s3cr:et")
    # -P and -u typed at a terminal, as a user would
    sh = Shell(term, "flags", f.port, "-P /rq/ -u alice:s3cr:et")
    assert "Connected to http://127.0.0.1:%d running version v-fake" % f.port in sh.screen()
    assert sh.run("SELECT who") == FAKE_TABLE
    assert sh.run(".tables") == FAKE_TABLE
    assert sh.run(".status") == "store:\n  node_id: fake\n"
    sh.exit()
    want_auth = "Basic " + base64.b64encode(b"alice:s3cr:et").decode()
    assert [m for m, _, _ in f.requests] == ["GET", "POST", "GET", "GET"]
    assert [p.split("?")[0] for _, p, _ in f.requests] == ["/rq/status", "/rq/db/request", "/rq/db/query",
                                                           "/rq/status"]
    assert all(a == want_auth for _, _, a in f.requests)

    # Without the prefix the node's paths are not found; without -u, refused.
    rc, out, _ = shell_piped(f.port, ["-u", "alice:s3cr:et"], "SELECT who\n.status\n")
    assert rc == 0 and "ERR! server responded with 404 Not Found: \n" in out
    rc, out, _ = shell_piped(f.port, ["-P", "/rq"], "SELECT who\n.status\n")
    assert "ERR! server responded with 401 Unauthorized: unauthorized\n" in out
    assert "ERR! unauthorized\n" in out
    rc, out, err = shell_piped(f.port, ["-u", "alice"], "")
    assert rc == 1 and err == "ERR! invalid Basic Auth credential format\n" and out == ""


def test_flag_timeout(fake):
    f = fake(slow=True)
    t0 = time.monotonic()
    rc, out, _ = shell_piped(f.port, ["-t", "300ms"], "SELECT who\n")
    took = time.monotonic() - t0
    f.release()
    # a host that does not answer in time is unavailable, and no other is left
    assert "ERR! no host available to perform the request\n" in out, out
    assert took < 5, took   # the fake holds queries for 10 s
    # Once the node answers in time, the same shell command works.
    rc, out, _ = shell_piped(f.port, ["--http-timeout=2s"], "SELECT who\n")
    assert FAKE_TABLE in out
    rc, out, err = shell_piped(f.port, ["-t", "5x"], "")
    assert rc == 1 and err == 'ERR! time: unknown unit "x" in duration "5x"\n'
    rc, out, err = shell_piped(f.port, ["-t", "5"], "")
    assert rc == 1 and err == 'ERR! time: missing unit in duration "5"\n'


@pytest.fixture
def cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    c, k = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", k, "-out", c, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return c, k


def test_flag_scheme(fake, cert, node):
    f = fake(cert=cert)
    banner = "Connected to https://127.0.0.1:%d running version v-fake" % f.port
    # -s https with the CA given (-c), or without verification (-i)
    for flags in (["-s", "https", "-c", cert[0]], ["--scheme=https", "-i"]):
        rc, out, _ = shell_piped(f.port, flags, "SELECT who\n")
        assert rc == 0 and banner in out and FAKE_TABLE in out, (flags, out)
    # an unverifiable certificate, or plain HTTP spoken to HTTPS, connects to nothing
    for flags in (["-s", "https"], ["-s", "http"], []):
        rc, out, _ = shell_piped(f.port, flags, "SELECT who\n")
        assert rc == 0 and out.startswith("ERR! ") and "Welcome" not in out, (flags, out)
    assert len([r for r in f.requests if r[1] == "/db/request"]) == 2
    # and HTTPS spoken to a plain node
    rc, out, _ = shell_piped(node.http_port, ["-s", "https"], "")
    assert rc == 0 and out.startswith("ERR! ") and "Welcome" not in out, out
