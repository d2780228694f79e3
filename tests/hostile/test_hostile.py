"""Hostile input never stops, bricks or splits a cluster (issue 13).

One 3-node cluster (-db-max-write-steps 20000000, harness.FAST timers) for
the run. Every input of inputs.py is sent to the leader and to a follower
(forwarding is a path of its own); its answer is checked when it is defined
(no 5xx other than 503 without a leader when not), then the invariants:

- every node process alive, nothing in its log that means a crash or a
  self-inflicted stop, /readyz 200;
- a canary write acknowledged and then readable at level none on every node,
  and every canary acknowledged before still there;
- every node at the same applied index holds the same database
  (/db/backup?fmt=sql&noleader, byte for byte);
- nothing an input tried to plant is in a data directory.

An input that breaks an invariant (or gets through and may leave state
behind) fails, and the cluster is replaced by a fresh one before the next
send, so that each failure names its own input; the last test fails if that
ever happened. The last test also kills every node (-9), restarts them all,
and compares the three databases and the canaries.
"""
import os
import re
import time

import pytest
import requests

import harness
import inputs

EXTRA = ["-db-max-write-steps", "20000000"]
CRASH_MARKS = ("fatal signal", "stopping now", "Segmentation fault", "Assertion", "AddressSanitizer",
               "LeakSanitizer", "runtime error:")
WRITE_LIMIT_10MB = 45  # MB: entry ~10 MB + the row into the WAL and the file ~20 MB; a 60 MB entry alone exceeds it


class HCluster:
    def __init__(self, base):
        self.base = base
        self.gen = 0
        self.nodes = []
        self.every_node = []   # (generation, node), for the log scan at the end
        self.acked = []        # canaries acknowledged in this generation
        self.canary_n = 0
        self.broken = None     # why the cluster must be replaced before the next send
        self.rebuilds = []     # (input, reason)
        self.covered = []      # inputs sent to this generation
        self.log_pos = {}

    # ---- lifecycle ----------------------------------------------------
    def start(self):
        self.gen += 1
        d = self.base / ("gen%d" % self.gen)
        d.mkdir()
        self.dir = d
        self.scratch = str(d / "scratch")
        os.mkdir(self.scratch)
        self.nodes = []
        for i in (1, 2, 3):
            n = harness.Node(d, i, EXTRA)
            n.cwd = str(d)  # relative paths in SQL land here, not in the source tree
            self.nodes.append(n)
            self.every_node.append((self.gen, n))
        n1 = self.nodes[0].start().wait_ready(60)
        for n in self.nodes[1:]:
            n.start(join=n1.url)
        for n in self.nodes[1:]:
            n.wait_ready(60)
        harness.wait_members(n1, 3, 60)
        r = requests.post(self.leader().url + "/db/execute", json=inputs.SETUP, timeout=30)
        assert r.status_code == 200 and all("error" not in x for x in r.json()["results"]), r.text
        self.acked, self.covered, self.broken = [], [], None
        self.log_pos = {n.id: len(n.logs()) for n in self.nodes}
        # a canary, so that the first input is compared with a settled cluster
        probs = self.invariants()
        assert not probs, "a fresh cluster fails the invariants: %s" % probs

    def stop(self):
        for n in self.nodes:
            try:
                if n.proc and n.proc.poll() is None:
                    os.kill(n.proc.pid, 18)  # SIGCONT, in case
                n.kill()
            except Exception:
                pass

    def ensure(self):
        if self.broken:
            self.stop()
            self.start()

    def mark_broken(self, name, why):
        self.broken = why
        self.rebuilds.append((name, why))

    # ---- looking at nodes ---------------------------------------------
    def node(self, nid):
        return [n for n in self.nodes if n.id == nid][0]

    def leader(self, timeout=30):
        return harness.leader_of(self.nodes, timeout)

    def follower(self):
        leader = self.leader()
        return [n for n in self.nodes if n is not leader and n.proc.poll() is None][0]

    @staticmethod
    def raft(node):
        try:
            return requests.get(node.url + "/status", timeout=5).json()["store"]
        except (requests.RequestException, ValueError, KeyError):
            return None

    def ctx(self, node, leader):
        return {"leader_dir": os.path.abspath(leader.dir), "node_dir": os.path.abspath(node.dir),
                "scratch": self.scratch}

    def q(self, node, sql, *params):
        """One read at level none on node: the rows, or raises."""
        body = [[sql] + list(params)] if params else [sql]
        r = requests.post(node.url + "/db/query?level=none", json=body, timeout=10)
        r.raise_for_status()
        res = r.json()["results"][0]
        if "error" in res:
            raise ValueError(res["error"])
        return res.get("values") or []

    def wait_rows(self, node, sql, params, want, timeout=30):
        last = {}

        def ok():
            if node.proc.poll() is not None:
                raise AssertionError("exited")  # ends the poll
            try:
                last["got"] = self.q(node, sql, *params)
            except (requests.RequestException, ValueError) as e:
                last["got"] = "error: %s" % str(e)[:200]
                return False
            return last["got"] == want
        try:
            harness.poll(ok, timeout, 0.05, "rows")
            return None
        except AssertionError:
            if node.proc.poll() is not None:
                return "node %s exited with status %s" % (node.id, node.proc.returncode)
            return "node %s: %s gave %r, expected %r" % (node.id, sql[:80], last.get("got"), want)

    # ---- invariants -----------------------------------------------------
    def scan_logs(self):
        out = []
        for n in self.nodes:
            logs = n.logs()
            new = logs[self.log_pos.get(n.id, 0):]
            self.log_pos[n.id] = len(logs)
            for m in CRASH_MARKS:
                at = new.find(m)
                if at >= 0:
                    out.append("node %s logged %r: %s" % (n.id, m, new[max(0, at - 300):at + 500].strip()))
                    break
        return out

    def planted(self):
        out = []
        for n in self.nodes:
            for root, _, files in os.walk(n.dir):
                for f in files:
                    if f in inputs.PLANTED or "hostile" in f:
                        out.append("node %s's data directory holds %s (planted by SQL)"
                                   % (n.id, os.path.join(root, f)))
        return out

    def write(self, what, stmts):
        """Have the leader apply stmts, retrying (up to 30 s) while there is
        no leader or leadership moves (503, a whole-request error); a
        statement's error is an answer. Returns None or a problem."""
        deadline = time.monotonic() + 30
        last = None
        while time.monotonic() < deadline:
            try:
                leader = self.leader(max(1, deadline - time.monotonic()))
                r = requests.post(leader.url + "/db/execute", json=stmts, timeout=15)
                d = r.json() if r.status_code == 200 else {}
                res = d.get("results") or []
                if r.status_code == 200 and res and not d.get("error") and all("error" not in x for x in res):
                    return None
                last = "HTTP %d %s" % (r.status_code, r.text[:200])
                if r.status_code != 503 and not (r.status_code == 200 and d.get("error")):
                    break
            except (requests.RequestException, ValueError, AssertionError) as e:
                last = repr(e)[:200]
            time.sleep(0.2)
        return "%s was not acknowledged: %s" % (what, last)

    def canary(self):
        """Write the next canary; (its number, None) or (None, a problem)."""
        self.canary_n += 1
        n = self.canary_n
        err = self.write("the canary write", [["INSERT INTO canary(i) VALUES(?)", n]])
        if err:
            return None, err
        self.acked.append(n)
        return n, None

    def compare(self, timeout=30):
        """Every node at one applied index holds the same dump; a problem or None."""
        last = {}

        def same():
            dead = ["node %s exited with status %s" % (n.id, n.proc.returncode) for n in self.nodes
                    if n.proc.poll() is not None]
            if dead:
                last["why"] = "; ".join(dead)
                raise AssertionError(last["why"])  # ends the poll
            before = {n.id: (self.raft(n) or {}).get("db_applied_index") for n in self.nodes}
            if None in before.values() or len(set(before.values())) != 1:
                last["why"] = "applied indexes differ: %r" % before
                return False
            dumps = {}
            for n in self.nodes:
                r = requests.get(n.url + "/db/backup?fmt=sql&noleader", timeout=30)
                if r.status_code != 200:
                    last["why"] = "node %s: /db/backup?fmt=sql&noleader gave HTTP %d %r" % (
                        n.id, r.status_code, r.text[:200])
                    return False
                dumps[n.id] = r.content
            after = {n.id: (self.raft(n) or {}).get("db_applied_index") for n in self.nodes}
            if after != before:
                last["why"] = "applied indexes moved while dumping"
                return False
            first = self.nodes[0].id
            for nid, d in dumps.items():
                if d != dumps[first]:
                    a, b = d.split(b"\n"), dumps[first].split(b"\n")
                    only_a = [x for x in a if x not in set(b)][:3]
                    only_b = [x for x in b if x not in set(a)][:3]
                    # the same applied index before and after: this is what they hold
                    if sorted(a) == sorted(b):
                        last["diverged"] = ("node %s and node %s give different dumps at applied index %s: the same "
                                            "lines in another order (a setting of a read connection left behind?)"
                                            % (nid, first, before[first]))
                    else:
                        last["diverged"] = ("node %s and node %s hold different databases at applied index %s: "
                                            "only on %s: %r; only on %s: %r" % (
                                                nid, first, before[first], nid, [x[:200] for x in only_a], first,
                                                [x[:200] for x in only_b]))
                    return True
            return True
        try:
            harness.poll(same, timeout, 0.1, "the same database on every node")
            return last.get("diverged")
        except AssertionError as e:
            return last.get("why") or str(e)

    def alive(self):
        probs = ["node %s exited with status %s" % (n.id, n.proc.returncode) for n in self.nodes
                 if n.proc.poll() is not None]
        return probs + self.scan_logs()

    def invariants(self, queue_node=None):
        probs = self.check(queue_node)
        # a crash while we looked (a read connection left in a bad state by
        # the input, say) is this input's too
        probs += [p for p in self.alive() if p not in probs]
        return probs

    def check(self, queue_node):
        probs = self.alive()
        if any("exited" in p for p in probs):
            return probs
        for n in self.nodes:
            try:
                harness.poll(n.ready, 30, 0.1, "readyz")
            except AssertionError:
                try:
                    r = requests.get(n.url + "/readyz", timeout=5)
                    probs.append("node %s: /readyz is HTTP %d %r after 30 s" % (n.id, r.status_code, r.text))
                except requests.RequestException as e:
                    probs.append("node %s: /readyz does not answer (%r)" % (n.id, e))
        if probs:
            return probs
        if queue_node is not None:
            # everything this node queued is applied before we look
            try:
                r = requests.post(queue_node.url + "/db/execute?queue&wait&timeout=20s",
                                  json=[["INSERT INTO qbarrier(n) VALUES(?)", self.canary_n]], timeout=30)
                if r.status_code != 200 or r.json().get("error"):
                    probs.append("node %s: a queued write with ?wait gave HTTP %d %r"
                                 % (queue_node.id, r.status_code, r.text[:200]))
            except (requests.RequestException, ValueError) as e:
                probs.append("node %s: a queued write with ?wait got no answer (%r)" % (queue_node.id, e))
        # a schema change: every connection reloads the schema (and
        # reconnects virtual tables) before its next statement
        err = self.write("a schema change", ["DROP TABLE IF EXISTS poke", "CREATE TABLE poke (x)"])
        if err:
            return probs + [err]
        n, err = self.canary()
        if err:
            return probs + [err]
        deadline = time.monotonic() + 30  # for all three
        for node in self.nodes:
            p = self.wait_rows(node, "SELECT count(*) FROM canary WHERE i = ?", [n], [[1]],
                               max(1, deadline - time.monotonic()))
            if p:
                probs.append("canary %d not readable at level none: %s" % (n, p))
        if probs:
            return probs
        for node in self.nodes:
            try:
                have = {r[0] for r in self.q(node, "SELECT i FROM canary")}
            except (requests.RequestException, ValueError) as e:
                probs.append("node %s: cannot read the canaries (%s)" % (node.id, e))
                continue
            lost = [c for c in self.acked if c not in have]
            if lost:
                probs.append("node %s lost %d acknowledged canaries, e.g. %r" % (node.id, len(lost), lost[:5]))
        p = self.compare()
        if p:
            probs.append(p)
        probs += self.planted()
        return probs

    def cleanup(self):
        """Empty t, and wait (up to 30 s) until every node has applied that:
        the next send starts from a settled cluster."""
        try:
            requests.post(self.leader().url + "/db/execute", json=["DELETE FROM t"], timeout=30)
            harness.poll(lambda: len({(self.raft(n) or {}).get("db_applied_index") for n in self.nodes}) == 1,
                         30, 0.05, "every node at one applied index")
        except (requests.RequestException, AssertionError):
            pass


# ---- checks after particular inputs ------------------------------------------

def write_bytes(node):
    with open("/proc/%d/io" % node.proc.pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def post_t_empty(hc, inp, a, pre):
    out = []
    for n in hc.nodes:
        try:
            c = hc.q(n, "SELECT count(*) FROM t")[0][0]
        except (requests.RequestException, ValueError, IndexError) as e:
            out.append("node %s: cannot count t (%s)" % (n.id, e))
            continue
        if c:
            out.append("node %s has %d row(s) in t: the input was applied there" % (n.id, c))
    return out


def inserted_id(a):
    try:
        return a.json()["results"][0]["last_insert_id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def post_nul_param(hc, inp, a, pre):
    rid = inserted_id(a)
    if rid is None:
        return []  # the answer was already found wrong
    out = []
    for n in hc.nodes:
        p = hc.wait_rows(n, "SELECT v, hex(CAST(v AS BLOB)), typeof(v) FROM t WHERE id = ?", [rid],
                         [["a\x00b", "610062", "text"]], timeout=20)
        if p:
            out.append(p)
    return out


def pre_bytes(hc):
    return {n.id: write_bytes(n) for n in hc.nodes}


def post_10mb(same):
    """A 10 MB parameter of one repeated character: every node holds it
    exactly, and wrote (log entry, WAL, file) no more than a ~10 MB entry
    makes it write; the invariants' writes since are small."""
    def check(hc, inp, a, pre):
        rid = inserted_id(a)
        out = []
        for n in hc.nodes:
            grew = (write_bytes(n) - pre[n.id]) / 1e6
            if grew > WRITE_LIMIT_10MB:
                out.append("node %s wrote %.0f MB to storage for a 10 MB parameter (at most %d MB: the log entry is "
                           "not ~10 MB)" % (n.id, grew, WRITE_LIMIT_10MB))
            if rid is not None:
                p = hc.wait_rows(n, "SELECT length(CAST(v AS BLOB)), %s, typeof(v) FROM t WHERE id = ?" % same,
                                 [rid], [[10485760, 1, "text"]], timeout=30)
                if p:
                    out.append(p)
        return out
    return check


def post_literal_row(hc, inp, a, pre):
    if inserted_id(a) is None:
        return []  # refused: the answer was already found wrong
    out = []
    for n in hc.nodes:
        p = hc.wait_rows(n, "SELECT count(*) FROM t WHERE v = 'PRAGMA query_only=1'", [], [[1]], timeout=20)
        if p:
            out.append(p)
    return out


POST = {"t_empty": post_t_empty, "nul_param": post_nul_param, "nul_10mb": post_10mb("CAST(v AS BLOB) = zeroblob(10485760)"),
        "a_10mb": post_10mb("v = printf('%.*c', 10485760, 'a')"), "literal_row": post_literal_row}
PRE = {"nul_10mb": pre_bytes, "a_10mb": pre_bytes}


# ---- the run -----------------------------------------------------------------

@pytest.fixture(scope="module")
def hc(tmp_path_factory):
    c = HCluster(tmp_path_factory.mktemp("hostile"))
    c.start()
    yield c
    c.stop()


def send_one(hc, inp, role):
    """Send inp to the leader or a follower and check everything; returns
    (problems with the answer, broken invariants), each naming the node."""
    leader = hc.leader()
    node = leader if role == "leader" else hc.follower()
    st = hc.raft(leader) or {}
    term, idx = st.get("raft", {}).get("term"), st.get("raft", {}).get("last_log_index")
    pre = PRE[inp.post](hc) if inp.post in PRE else None
    a = inputs.send(inp, node.url, hc.ctx(node, leader))
    hc.covered.append((inp.name, role))
    probs = inputs.generic_problems(inp, a)
    after = hc.raft(leader) or {}
    still = after.get("raft", {}).get("state") == "Leader" and after.get("raft", {}).get("term") == term
    if a.status == 503 and still:
        probs.append("HTTP 503 although node %s was the leader throughout (term %s): %s"
                     % (leader.id, term, a.brief()))
    if role in inp.strict_on:
        probs += inputs.expected_problems(inp, a)
    if inp.refused and still and after["raft"].get("last_log_index") != idx:
        probs.append("something was proposed: the leader's (node %s) last log index went from %s to %s"
                     % (leader.id, idx, after["raft"].get("last_log_index")))
    broken = hc.invariants(queue_node=node if "queue" in inp.path else None)
    if inp.post and not any("exited" in b for b in broken):
        try:
            probs += POST[inp.post](hc, inp, a, pre)
        except (requests.RequestException, AssertionError, ValueError) as e:
            probs.append("check %s failed: %r" % (inp.post, e))
    if not broken:
        hc.cleanup()
    where = "%s (node %s)" % (role, node.id)
    probs = list(dict.fromkeys(probs))  # once each
    return (["%s: %s" % (where, p) for p in probs], ["%s: %s" % (where, p) for p in broken], a)


@pytest.mark.parametrize("inp", inputs.INPUTS, ids=[i.name for i in inputs.INPUTS])
def test_input(hc, inp):
    failures = []
    for role in ("leader", "follower"):
        hc.ensure()
        probs, broken, a = send_one(hc, inp, role)
        failures += probs + ["invariant broken after %s" % b for b in broken]
        if broken:
            hc.mark_broken(inp.name, "%s: %s" % (role, broken[0][:300]))
        elif probs and inp.taints:
            # it got through and may have left state behind: a fresh cluster for the next input
            hc.mark_broken(inp.name, "%s: %s" % (role, probs[0][:300]))
    if failures:
        pytest.fail("%s\n  %s" % (inp.name, "\n  ".join(f[:1500] for f in failures)), pytrace=False)


def test_corrupt_images_are_corrupt(tmp_path):
    """The images the corpus calls corrupt are: SQLite itself refuses them
    (otherwise a 400 for them would be a wrong answer)."""
    import sqlite3
    for label, make in inputs.CORRUPT_IMAGES:
        data = make()
        assert data.startswith(b"SQLite format 3\x00"), label
        p = tmp_path / ("%s.db" % label)
        p.write_bytes(data)
        try:
            con = sqlite3.connect(str(p))
            rows = con.execute("PRAGMA integrity_check").fetchall()
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
            for name in names:
                con.execute('SELECT * FROM "%s"' % name.replace('"', '""')).fetchall()
            con.close()
            assert rows != [("ok",)], "%s: SQLite finds nothing wrong with it" % label
        except sqlite3.DatabaseError:
            pass


def test_zz_restart_all_and_compare(hc):
    """kill -9 every node, restart them all with the same flags: they come
    back, agree byte for byte, keep every canary, and take writes."""
    hc.ensure()
    covered = len(hc.covered)
    for n in hc.nodes:
        n.kill()
    for n in hc.nodes:
        n.start()
    problems = []
    for n in hc.nodes:
        try:
            n.wait_ready(90)
        except AssertionError as e:
            problems.append("node %s did not come back after kill -9 and restart: %s" % (n.id, str(e)[-1500:]))
    if not problems:
        p = hc.compare(60)
        if p:
            problems.append("after the restart: " + p)
        for node in hc.nodes:
            try:
                have = {r[0] for r in hc.q(node, "SELECT i FROM canary")}
                lost = [c for c in hc.acked if c not in have]
                if lost:
                    problems.append("node %s lost %d acknowledged canaries in the restart, e.g. %r"
                                    % (node.id, len(lost), lost[:5]))
            except (requests.RequestException, ValueError) as e:
                problems.append("node %s: cannot read the canaries after the restart (%s)" % (node.id, e))
        n, err = hc.canary()
        if err:
            problems.append("after the restart: " + err)
        else:
            for node in hc.nodes:
                p = hc.wait_rows(node, "SELECT count(*) FROM canary WHERE i = ?", [n], [[1]])
                if p:
                    problems.append("after the restart: canary not readable: " + p)
    for gen, n in hc.every_node:
        logs = n.logs()
        for m in CRASH_MARKS:
            at = logs.find(m)
            if at >= 0:
                problems.append("cluster %d, node %s logged %r: %s" % (gen, n.id, m, logs[at:at + 300].strip()))
                break
    if hc.rebuilds:
        names = list(dict.fromkeys(name for name, _ in hc.rebuilds))
        problems.append("the cluster had to be replaced %d times (%d sends reached the last one), after %d inputs: %s"
                        % (len(hc.rebuilds), covered, len(names), "; ".join(names)))
    if problems:
        hc.broken = "restart check failed"
        pytest.fail("\n".join(problems), pytrace=False)
