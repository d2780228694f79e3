#!/usr/bin/python3
"""Fault injection against a real rqlited cluster on loopback.

    tests/chaos/chaos.py [--nodes 3|5] [--seed N] [--duration SECONDS]
                         [--faults N] [--build DIR] [--keep] [--unsafe-reads]
                         [--no-hostile] [--hostile-rate R] [--hostile-inputs PREFIXES]
                         [--node-tls] [--secure]

Starts N nodes (free ports on 127.0.0.1, a temporary directory), runs
concurrent clients for --duration seconds (or until --faults faults were
injected), and meanwhile injects faults chosen by a seeded random generator:
kill -9 and restart, SIGSTOP/SIGCONT pauses, wiping a node's data and
restarting it with or without -join, and killing the leader. At most a
minority of nodes is down or paused at any time.

Clients: unique inserts; read-modify-write registers (writes, and reads at
strong and linearizable levels, recorded with their call and return times);
bank transfers (single-statement and ?transaction) with invariant reads at
level none on every node; weak reads whose answers may not go backwards on
the node that served them; reads at level none with freshness_strict, which
must see every write acknowledged more than the freshness (plus slack) before;
queued writes, which must apply in the order the accepting node took them;
and (unless --no-hostile) a hostile client sending random inputs of
tests/hostile/inputs.py to random nodes, a few a second (--hostile-rate).

Every few faults (and soon after a wipe) a checkpoint heals the cluster,
holds the clients, and compares every node at one applied index: the same
index must mean the same content, also on a node just restored from a
snapshot (nodes check every second and take one once 256 entries were
applied since the last, so a wiped node is restored from one). Descriptors and memory of each node process are sampled there,
while idle, and may not keep growing over its life.

Checks once the cluster is healed: every acknowledged insert is on every
node; all nodes hold the same content at the same applied index; the register histories are
linearizable (linearizability.py); the bank total is conserved and no
balance was ever negative; at most one leader per term; a leader within a
bound after each leader kill; no node exited on its own, logged a crash or
stopped itself; file descriptors and memory stayed bounded; with the hostile
client, the cluster still takes a write at the end and the table the hostile
inputs write to is the same on every node. A violation prints the seed,
the offending history and the node logs, and exits 1.

--node-tls runs every node with mutual node-to-node TLS (-node-cert,
-node-key, -node-ca-cert, -node-verify-client), with a CA and a certificate
per node (for its address) made by the openssl command for the run.
--secure adds, on top of that, HTTPS with mutual TLS on the API (the same
certificates: -http-cert, -http-key, -http-ca-cert, -http-verify-client)
and -auth with one user that every client and -join-as use; the hostile
client is off then (its inputs speak plain HTTP without credentials).
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import harness  # noqa: E402
import inputs  # noqa: E402
from linearizability import INF, check, shrink  # noqa: E402

ACCOUNTS = 5
START_BALANCE = 100
KEYS = 3
LEADER_BOUND_S = 15.0
FRESHNESS_S = 1.0
FRESHNESS_SLACK_S = 1.0  # two election timeouts of the harness's fast timers
CHECKPOINT_EVERY = 8     # faults between checkpoints (and after a wipe, 3 at least)
FD_GROWTH = 16           # descriptors a process may gain over what it settled at (fd_baseline)
RSS_GROWTH_MB = 48       # resident memory it may gain after its first checkpoint
SNAP_ENTRIES = 256       # -raft-snap: frequent snapshots, so wiped nodes restore from one
HOSTILE_STEPS = "20000000"  # -db-max-write-steps with the hostile client: a runaway write ends in about a second
CRASH_MARKS = ("fatal signal", "stopping now")  # a crash (backtrace), a node stopping itself
# Each kind of client operation the run claims, and the least it must have
# done: a rate per second the clients ran, well under what a run does on a
# loaded machine (see the totals it prints), with a floor. A client that
# silently did nothing, or almost, fails the run.
ACTIVITY = {
    "insert": 2.0,
    "register write": 1.0,
    "register read": 1.0,
    "bank transfer": 0.3,
    "bank transfer (transaction)": 0.3,
    "bank transfer that moved money": 0.3,
    "bank invariant read": 0.5,
    "weak read": 2.0,
    "clock write": 1.0,
    "freshness read": 0.5,
    "queued write accepted": 2.0,
    "queued write applied": 1.0,
}
PROCESS_FAULTS = ["kill", "pause", "wipe", "wipe_nojoin", "kill_leader"]
NET_FAULTS = ["isolate", "isolate_leader", "oneway", "split"]
HOSTILE_ACTIVITY = 0.3   # answered hostile requests per second, of --hostile-rate (2) at most
ACTIVITY_FLOOR = 10


class Violation(Exception):
    pass


class Net:
    """Network namespaces, one per node, on a bridge in the root namespace,
    so that faults can cut links between nodes: a blackhole route in node
    i's namespace towards node j's address drops what i sends to j (a
    one-way drop); both directions make a partition. The harness talks to
    every node over the bridge and is never cut off."""

    def __init__(self, n):
        tag = "%x" % (os.getpid() & 0xffff)
        self.bridge = "rqbr" + tag
        self.ns = ["rq%s-%d" % (tag, i) for i in range(1, n + 1)]
        self.subnet = 10 + os.getpid() % 200
        self.cut = set()    # (i, j): i cannot send to j
        self.ready = False

    def ip(self, i):
        return "10.77.%d.%d" % (self.subnet, i)

    def sh(self, *cmd):
        import subprocess
        r = subprocess.run(list(cmd), capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError("%s: %s" % (" ".join(cmd), r.stderr.strip()))

    def setup(self):
        self.sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.sh("ip", "addr", "add", "10.77.%d.254/24" % self.subnet, "dev", self.bridge)
        self.sh("ip", "link", "set", self.bridge, "up")
        for i, ns in enumerate(self.ns, 1):
            veth = "rqv%s%d" % (self.bridge[4:], i)
            self.sh("ip", "netns", "add", ns)
            self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.sh("ip", "link", "set", veth, "master", self.bridge, "up")
            self.sh("ip", "-n", ns, "addr", "add", self.ip(i) + "/24", "dev", "eth0")
            self.sh("ip", "-n", ns, "link", "set", "eth0", "up")
            self.sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.ready = True

    def drop(self, i, j):
        if (i, j) not in self.cut:
            self.sh("ip", "-n", self.ns[i - 1], "route", "add", "blackhole", self.ip(j) + "/32")
            self.cut.add((i, j))

    def heal(self):
        for i, j in sorted(self.cut):
            try:
                self.sh("ip", "-n", self.ns[i - 1], "route", "del", "blackhole", self.ip(j) + "/32")
            except OSError:
                pass
        self.cut.clear()

    def teardown(self):
        import subprocess
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class NsNode(harness.Node):
    """A node in its own network namespace, on fixed ports at its own address."""

    def __init__(self, tmp_path, node_id, net):
        super().__init__(tmp_path, node_id)
        self.net = net
        self.index = int(node_id)

    @property
    def http_addr(self):
        return "%s:4001" % self.net.ip(self.index)

    @property
    def raft_addr(self):
        return "%s:4002" % self.net.ip(self.index)

    def args(self, join=None):
        return ["ip", "netns", "exec", self.net.ns[self.index - 1]] + super().args(join)


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="rq-chaos-")
        self.nodes = []
        self.down = set()      # node ids killed and not restarted yet
        self.paused = set()    # node ids SIGSTOPped
        self.isolated = set()  # node ids cut off by network faults
        self.expected_exit = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.acked = set()
        self.ins_index = {}    # (c, n) -> Raft index of the acknowledged insert
        self.reg_ops = {k: [] for k in range(KEYS)}
        self.violations = []
        self.leaders = {}      # term -> node id
        self.faults = []       # (time, description)
        self.leaderless = []   # seconds without a leader after a leader kill
        self.weak_seen = {}    # (node id, process start) -> highest count
        self.bank_reads = 0
        self.clock_acks = []   # (monotonic ack time, value written)
        self.fresh_reads = 0
        self.queued = []       # ((node id, pid), client, n) in acceptance order
        self.gate = threading.Condition()
        self.open = True       # clients may send requests (False during a checkpoint)
        self.inflight = 0      # client requests under way
        self.checkpoints = 0
        self.wiped = False     # a node was wiped since the last checkpoint
        self.restored_checked = 0  # snapshot-restored nodes compared at a checkpoint
        self.restores_seen = {}    # node id -> (pid, restores) at the last checkpoint
        self.samples = {}      # (node id, pid) -> [(t, fds, rss MB)] at checkpoints
        self.hostile_sent = 0
        self.hostile_status = {}   # HTTP status (or "no answer") -> count
        self.done = {}         # operation kind -> how many succeeded (see ACTIVITY)
        self.clients_s = 0.0   # seconds the clients ran
        self.t0 = time.monotonic()

    # ---- cluster ------------------------------------------------------
    def start(self):
        path = type("P", (), {"__truediv__": lambda s, x: os.path.join(self.tmp, x)})()
        self.net = None
        if not self.args.no_net:
            net = Net(self.args.nodes)
            try:
                net.setup()
                self.net = net
            except OSError as e:
                net.teardown()
                # Asked for (the default) but impossible: a run without them
                # would pass having tested less than it says.
                self.violation("network faults were asked for but cannot be made: cannot create network "
                               "namespaces (%s); run as root, or with --no-net to do without them" % e)
                raise Violation()
        for i in range(1, self.args.nodes + 1):
            n = NsNode(path, i, self.net) if self.net else harness.Node(path, i)
            n.extra += ["-raft-snap", str(SNAP_ENTRIES), "-raft-snap-int", "1s"]
            if self.args.node_tls or self.args.secure:
                n.extra += self.node_tls_flags(n)
            if self.args.secure:
                self.secure(n)
            if self.args.hostile:
                n.extra += ["-db-max-write-steps", HOSTILE_STEPS]
            n.cwd = self.tmp  # relative paths in hostile SQL land here
            self.nodes.append(n)
        n1 = self.nodes[0].start().wait_ready()
        for n in self.nodes[1:]:
            n.start(join=n1.url)
        for n in self.nodes:
            n.wait_ready()
        harness.wait_members(n1, self.args.nodes)
        leader = self.leader()
        leader.execute(["CREATE TABLE ins (id INTEGER PRIMARY KEY, c INT, n INT, UNIQUE(c, n))",
                        "CREATE TABLE reg (k INTEGER PRIMARY KEY, v INT)",
                        "CREATE TABLE bank (acct INTEGER PRIMARY KEY, bal INT NOT NULL)",
                        "CREATE TABLE clock (k INTEGER PRIMARY KEY, v REAL)",
                        "CREATE TABLE qw (id INTEGER PRIMARY KEY AUTOINCREMENT, c INT, n INT)"])
        leader.execute([["INSERT INTO bank(acct, bal) VALUES (?, ?)", a, START_BALANCE]
                        for a in range(ACCOUNTS)])
        if self.args.hostile:
            self.scratch = os.path.join(self.tmp, "scratch")
            os.mkdir(self.scratch)
            leader.execute(inputs.SETUP)

    def node_tls_flags(self, node):
        """A certificate of the run's CA for node's address (made on first use),
        and the flags for mutual TLS with it."""
        d = os.path.join(self.tmp, "certs")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

        import subprocess

        def run(*args):
            r = subprocess.run(args, cwd=d, capture_output=True, text=True)
            if r.returncode != 0:
                raise OSError("%s: %s" % (" ".join(args), r.stderr.strip()))
        if not os.path.isdir(d):
            os.mkdir(d)
            run("openssl", "req", "-x509", *newkey, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=chaos-ca")
        name = "node%s" % node.id
        host = node.raft_addr.rsplit(":", 1)[0]
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=IP:%s,IP:127.0.0.1\n" % host)
        run("openssl", "req", *newkey, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
        return ["-node-cert", os.path.join(d, name + ".crt"), "-node-key", os.path.join(d, name + ".key"),
                "-node-ca-cert", os.path.join(d, "ca.crt"), "-node-verify-client"]

    def secure(self, node):
        """HTTPS with mutual TLS and -auth on node, with the certificate
        node_tls_flags made for it; its clients (harness and ours) send the
        CA, a client certificate and the run's credentials."""
        d = os.path.join(self.tmp, "certs")
        name = os.path.join(d, "node%s" % node.id)
        auth = os.path.join(d, "auth.json")
        with open(auth, "w") as f:
            json.dump([{"username": "chaos", "password": "chaos-pw", "perms": ["all"]}], f)
        node.extra += ["-http-cert", name + ".crt", "-http-key", name + ".key", "-http-ca-cert",
                       os.path.join(d, "ca.crt"), "-http-verify-client", "-auth", auth, "-join-as", "chaos"]
        node.scheme = "https"
        node.tls = {"verify": os.path.join(d, "ca.crt"), "cert": (name + ".crt", name + ".key"),
                    "auth": ("chaos", "chaos-pw")}

    def live(self):
        return [n for n in self.nodes if n.id not in self.down and n.id not in self.paused]

    def leader(self, timeout=30):
        return harness.leader_of(self.live(), timeout)

    def log(self, msg):
        print("[chaos %6.1fs] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def tally(self, kind):
        with self.lock:
            self.done[kind] = self.done.get(kind, 0) + 1

    def violation(self, msg):
        with self.lock:
            self.violations.append(msg)
        self.log("VIOLATION: " + msg)

    # ---- clients ------------------------------------------------------
    def pick(self):
        nodes = self.live()
        return self.rng_local().choice(nodes) if nodes else None

    def rng_local(self):
        # Clients must not consume the fault generator's sequence.
        t = threading.current_thread()
        if not hasattr(t, "rng"):
            t.rng = random.Random(hash((self.args.seed, t.name)))
        return t.rng

    def live_nodes(self):
        """A running node for each client request, until the run stops. The
        request runs while the generator is suspended at the yield, and counts
        as in flight until the client asks for the next node."""
        while not self.stop.is_set():
            if not self.enter():
                continue
            try:
                node = self.pick()
                if node is None:
                    time.sleep(0.05)
                    continue
                yield node
            finally:
                self.leave()

    def enter(self):
        """Wait while a checkpoint holds the clients; False if it took too long."""
        with self.gate:
            if not self.gate.wait_for(lambda: self.open or self.stop.is_set(), 1.0):
                return False
            self.inflight += 1
            return True

    def leave(self):
        with self.gate:
            self.inflight -= 1
            self.gate.notify_all()

    def post(self, node, path, body, timeout=5):
        return requests.post(node.url + path, json=body, timeout=timeout, **node.tls)

    @staticmethod
    def first_result(r):
        """The first statement's result of a 200 answer, or None (a whole-
        request error such as {"results":[],"error":...}, or another status)."""
        if r.status_code != 200:
            return None
        body = r.json()
        results = body.get("results") or []
        if body.get("error") or not results:
            return None
        return results[0]

    def inserter(self, c):
        n = 0
        for node in self.live_nodes():
            n += 1
            try:
                r = self.post(node, "/db/execute", [["INSERT INTO ins(c, n) VALUES (?, ?)", c, n]])
                res = self.first_result(r)
                if res is not None and "error" not in res:
                    with self.lock:
                        self.acked.add((c, n))
                        self.ins_index[(c, n)] = r.json().get("raft_index")
                    self.tally("insert")
            except (requests.RequestException, ValueError):
                pass

    def register_client(self, c):
        rng = self.rng_local()
        seq = 0
        for node in self.live_nodes():
            k = rng.randrange(KEYS)
            if rng.random() < 0.5:
                seq += 1
                v = c * 1_000_000 + seq
                op = {"kind": "w", "value": v, "call": time.monotonic(), "ret": INF, "ok": False}
                try:
                    r = self.post(node, "/db/execute",
                                  [["INSERT OR REPLACE INTO reg(k, v) VALUES (?, ?)", k, v]])
                    res = self.first_result(r)
                    if res is not None and "error" not in res:
                        op["ret"], op["ok"] = time.monotonic(), True
                        self.tally("register write")
                    elif r.status_code in (400,):
                        op = None  # refused outright: never happened
                except (requests.ConnectionError,) as e:
                    if "Connection refused" in str(e):
                        op = None
                except (requests.RequestException, ValueError):
                    pass
                if op:
                    with self.lock:
                        self.reg_ops[k].append(op)
            else:
                level = rng.choice(("strong", "linearizable")) if not self.args.unsafe_reads else "none"
                call = time.monotonic()
                try:
                    r = requests.get(node.url + "/db/query", params={
                        "q": "SELECT v FROM reg WHERE k = %d" % k, "level": level}, timeout=5, **node.tls)
                    if r.status_code != 200:
                        continue
                    res = r.json()["results"][0]
                    if "error" in res:
                        continue
                    vals = res.get("values") or []
                    v = vals[0][0] if vals else None
                    op = {"kind": "r", "value": v, "call": call, "ret": time.monotonic(), "ok": True,
                          "level": level, "node": node.id}
                    with self.lock:
                        self.reg_ops[k].append(op)
                    self.tally("register read")
                except (requests.RequestException, ValueError, KeyError, IndexError):
                    pass

    def banker(self, c):
        rng = self.rng_local()
        for node in self.live_nodes():
            a, b = rng.sample(range(ACCOUNTS), 2)
            amt = rng.randint(1, 60)
            try:
                if rng.random() < 0.5:
                    stmt = [["UPDATE bank SET bal = bal + CASE acct WHEN ? THEN ? ELSE -? END "
                             "WHERE acct IN (?, ?) AND (SELECT bal FROM bank WHERE acct = ?) >= ?",
                             b, amt, amt, a, b, a, amt]]
                    r = self.post(node, "/db/execute", stmt)
                    kind = "bank transfer"
                else:
                    # two statements in one transaction: the credit happens
                    # only if the debit did (changes() of the statement before)
                    r = self.post(node, "/db/execute?transaction", [
                        ["UPDATE bank SET bal = bal - ? WHERE acct = ? AND bal >= ?", amt, a, amt],
                        ["UPDATE bank SET bal = bal + ? WHERE acct = ? AND changes() = 1", amt, b]])
                    kind = "bank transfer (transaction)"
                res = self.first_result(r)
                if res is not None and "error" not in res:
                    self.tally(kind)
                    if res.get("rows_affected"):
                        self.tally("bank transfer that moved money")
            except (requests.RequestException, ValueError):
                pass
            # invariant read on some node, at level none: every applied state must satisfy it
            node = self.pick()
            if node is None:
                continue
            try:
                r = requests.get(node.url + "/db/query", params={
                    "q": "SELECT SUM(bal), MIN(bal), COUNT(*) FROM bank", "level": "none"}, timeout=5, **node.tls)
                if r.status_code == 200:
                    vals = r.json()["results"][0].get("values")
                    if vals:
                        total, low, count = vals[0]
                        self.bank_reads += 1
                        self.tally("bank invariant read")
                        if total != ACCOUNTS * START_BALANCE or low < 0 or count != ACCOUNTS:
                            self.violation("bank invariant broken on node %s: sum=%s min=%s count=%s"
                                           % (node.id, total, low, count))
            except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
                pass

    def weak_reader(self):
        for node in self.live_nodes():
            try:
                r = requests.get(node.url + "/db/query", params={
                    "q": "SELECT COUNT(*) FROM ins", "level": "weak"}, timeout=5, **node.tls)
                if r.status_code != 200:
                    continue
                count = r.json()["results"][0]["values"][0][0]
                served = r.headers.get("X-RQLITE-SERVED-BY", "?")
                who = [n for n in self.nodes if n.http_addr == served or n.raft_addr == served]
                if not who:
                    continue
                key = (who[0].id, who[0].proc.pid)
                with self.lock:
                    prev = self.weak_seen.get(key, 0)
                    if count < prev:
                        self.violation("weak read went backwards on node %s: %d after %d"
                                       % (who[0].id, count, prev))
                    self.weak_seen[key] = max(prev, count)
                self.tally("weak read")
            except (requests.RequestException, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.01)

    def queue_writer(self, c):
        """Queued writes (?queue): those one node accepted must be applied in
        the order it accepted them (queued writes may be lost with a node that
        crashes before flushing them, and a batch may apply twice)."""
        n = 0
        node = None
        while not self.stop.is_set():
            if not self.enter():
                continue
            try:
                if node is None or node not in self.live():
                    node = self.pick()
                    if node is None:
                        time.sleep(0.05)
                        continue
                n += 1
                try:
                    r = self.post(node, "/db/execute?queue", [["INSERT INTO qw(c, n) VALUES (?, ?)", c, n]])
                    if r.status_code == 200 and not r.json().get("error"):
                        with self.lock:
                            self.queued.append(((node.id, node.proc.pid), c, n))
                        self.tally("queued write accepted")
                except (requests.RequestException, ValueError):
                    node = None
            finally:
                self.leave()
            time.sleep(0.005)

    def clock_writer(self):
        """Writes the time into one row; acknowledgements feed fresh_reader."""
        for node in self.live_nodes():
            v = time.time()
            try:
                # max(): a write that timed out here may still be applied
                # after a later one; the row must only move forward
                r = self.post(node, "/db/execute", [["INSERT INTO clock(k, v) VALUES (0, ?) ON CONFLICT(k) "
                                                     "DO UPDATE SET v = max(v, excluded.v)", v]])
                res = self.first_result(r)
                if res is not None and "error" not in res:
                    with self.lock:
                        self.clock_acks.append((time.monotonic(), v))
                    self.tally("clock write")
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.02)

    def fresh_reader(self):
        """level=none&freshness=F&freshness_strict on any node: a write
        acknowledged more than F (plus slack) before the read was sent must
        be visible, or the node must refuse."""
        for node in self.live_nodes():
            call = time.monotonic()
            try:
                r = requests.get(node.url + "/db/query", params={
                    "q": "SELECT v FROM clock WHERE k = 0", "level": "none",
                    "freshness": "%dms" % int(FRESHNESS_S * 1000), "freshness_strict": "true"}, timeout=5, **node.tls)
                if r.status_code == 200 and r.json().get("error") == "stale read":
                    self.tally("freshness read refused as stale")
                res = self.first_result(r)
                if res is None or "error" in res:
                    continue
                got = (res.get("values") or [[0.0]])[0][0]
            except (requests.RequestException, ValueError, KeyError, IndexError):
                continue
            self.fresh_reads += 1
            self.tally("freshness read")
            limit = call - FRESHNESS_S - FRESHNESS_SLACK_S
            with self.lock:
                older = [v for t, v in self.clock_acks if t <= limit]
            if older and got < max(older):
                self.violation("node %s answered freshness=%.1fs with a value %.2fs older than a write "
                               "acknowledged before the limit" % (node.id, FRESHNESS_S, max(older) - got))
            time.sleep(0.01)

    def hostile_client(self):
        """Random inputs of tests/hostile/inputs.py (not the heavy ones) to
        random live nodes, at most --hostile-rate a second and at most
        duration x rate in all. Their answers are not judged here (nodes come
        and go); the run's own checks must hold regardless."""
        rng = self.rng_local()
        corpus = inputs.for_chaos()
        if self.args.hostile_inputs:
            prefixes = tuple(self.args.hostile_inputs.split(","))
            corpus = [i for i in corpus if i.name.startswith(prefixes)]
        if not corpus:
            self.violation("--hostile-inputs %r names no input" % self.args.hostile_inputs)
            return
        period = 1.0 / self.args.hostile_rate
        budget = int(self.args.duration * self.args.hostile_rate) + 10
        next_t = time.monotonic()
        for node in self.live_nodes():
            if self.hostile_sent >= budget:
                break
            inp = rng.choice(corpus)
            ctx = {"leader_dir": os.path.abspath(rng.choice(self.nodes).dir),
                   "node_dir": os.path.abspath(node.dir), "scratch": self.scratch}
            a = inputs.send(inp, node.url, ctx, timeout=min(inp.timeout, 10))
            with self.lock:
                self.hostile_sent += 1
                key = a.status if a.status is not None else "no answer"
                self.hostile_status[key] = self.hostile_status.get(key, 0) + 1
            if a.status is not None:
                self.tally("hostile request answered")
            next_t += period  # pacing, not synchronisation
            if next_t > time.monotonic():
                self.stop.wait(next_t - time.monotonic())
            else:
                next_t = time.monotonic()

    def monitor(self):
        """At most one leader per term, seen through every node's /status."""
        while not self.stop.is_set():
            for n in self.live():
                try:
                    raft = requests.get(n.url + "/status", timeout=1, **n.tls).json()["store"]["raft"]
                except (requests.RequestException, ValueError, KeyError):
                    continue
                if raft.get("state") == "Leader":
                    term = raft.get("term")
                    with self.lock:
                        other = self.leaders.setdefault(term, n.id)
                    if other != n.id:
                        self.violation("two leaders in term %s: nodes %s and %s" % (term, other, n.id))
            time.sleep(0.1)

    # ---- faults -------------------------------------------------------
    def max_down(self):
        return (self.args.nodes - 1) // 2

    def current_leader_id(self):
        for n in self.live():
            if n.is_leader():
                return n.id
        return None

    def wait_leader(self, after):
        t = time.monotonic()
        try:
            harness.leader_of(self.live(), LEADER_BOUND_S)
        except AssertionError:
            self.violation("no leader within %.0fs after %s" % (LEADER_BOUND_S, after))
            return
        self.leaderless.append(time.monotonic() - t)

    def wait_leader_among(self, nodes, after):
        try:
            harness.leader_of(nodes, LEADER_BOUND_S)
        except AssertionError:
            self.violation("no leader among the majority within %.0fs after %s" % (LEADER_BOUND_S, after))

    def node(self, nid):
        return [n for n in self.nodes if n.id == nid][0]


    def inject(self):
        rng = self.rng
        up = [n for n in self.nodes if n.id not in self.down and n.id not in self.paused]
        kinds = list(PROCESS_FAULTS)
        if self.net:
            kinds += NET_FAULTS
        if self.args.kinds:
            kinds = [k for k in kinds if k in self.args.kinds.split(",")]
        kind = rng.choice(kinds)
        if len(self.down) + len(self.paused) + len(self.isolated) >= self.max_down() or \
                (kind in ("split",) and (self.down or self.paused or self.isolated)):
            kind = "heal"
        if kind == "heal":
            self.heal()
            self.faults.append((time.monotonic() - self.t0, "heal"))
            self.log("heal: every node running")
            return kind
        leader_id = self.current_leader_id()
        if kind in ("kill_leader", "isolate_leader"):
            victim = self.node(leader_id) if leader_id else rng.choice(up)
        elif kind.startswith("wipe"):
            # a wiped node must reach the others to come back at all
            victim = rng.choice([n for n in up if n.id not in self.isolated])
        else:
            victim = rng.choice(up)
        if kind in ("isolate", "isolate_leader"):
            others = [n for n in self.nodes if n is not victim]
            for o in others:
                self.net.drop(victim.index, o.index)
                self.net.drop(o.index, victim.index)
            self.isolated.add(victim.id)
            desc = "isolate node %s%s from the others" % (victim.id, " (leader)" if victim.id == leader_id else "")
            self.faults.append((time.monotonic() - self.t0, desc))
            self.log(desc)
            if victim.id == leader_id:
                self.wait_leader_among([n for n in self.live() if n is not victim], desc)
            return kind
        if kind == "oneway":
            other = rng.choice([n for n in self.nodes if n is not victim])
            self.net.drop(victim.index, other.index)
            self.isolated.add(victim.id)  # counts against the minority budget
            desc = "drop everything node %s sends to node %s" % (victim.id, other.id)
            self.faults.append((time.monotonic() - self.t0, desc))
            self.log(desc)
            return kind
        if kind == "split":
            ids = [n.index for n in self.nodes]
            rng.shuffle(ids)
            minority = ids[:self.max_down()]
            for a in minority:
                for b in ids[self.max_down():]:
                    self.net.drop(a, b)
                    self.net.drop(b, a)
            self.isolated.update(str(a) for a in minority)
            desc = "partition %s | %s" % (sorted(minority), sorted(ids[self.max_down():]))
            self.faults.append((time.monotonic() - self.t0, desc))
            self.log(desc)
            return kind
        desc = "%s node %s%s" % (kind, victim.id, " (leader)" if victim.id == leader_id else "")
        self.faults.append((time.monotonic() - self.t0, desc))
        self.log(desc)
        if kind == "pause":
            os.kill(victim.proc.pid, signal.SIGSTOP)
            self.paused.add(victim.id)
            return kind
        victim.proc.kill()
        victim.wait_exit(10)
        self.down.add(victim.id)
        if kind.startswith("wipe"):
            victim.wipe()
        if victim.id == leader_id:
            self.wait_leader("killing leader %s" % victim.id)
        if kind in ("kill", "kill_leader") or rng.random() < 0.5:
            # come back at once (the common crash-restart case)
            join = None
            if kind == "wipe":
                others = [n for n in self.live()]
                join = others[0].url if others else None
            self.restart(victim, join=join)
        return kind

    def heal(self):
        """Every link back, every paused node resumed, every node running."""
        if self.net:
            self.net.heal()
        self.isolated.clear()
        for nid in sorted(self.paused):
            os.kill(self.node(nid).proc.pid, signal.SIGCONT)
        self.paused.clear()
        for nid in sorted(self.down):
            self.restart(self.node(nid), join=None)

    def restart(self, node, join=None):
        node.start(join=join)
        self.down.discard(node.id)
        if node.id in self.isolated:
            return  # cannot be ready before the network heals; checkpoints wait for it
        try:
            node.wait_ready(60)
        except AssertionError as e:
            self.violation("node %s did not become ready after restart: %s" % (node.id, str(e)[:300]))

    # ---- checkpoints --------------------------------------------------
    def status(self, node):
        return requests.get(node.url + "/status", timeout=2, **node.tls).json()["store"]

    def agree(self, timeout, what):
        """Poll until every node reports the same applied index before and
        after reading its content, and all contents are equal. Returns (index,
        content, statuses), or None after recording a violation."""
        last = {}

        def same():
            before = {n.id: self.status(n)["db_applied_index"] for n in self.nodes}
            if len(set(before.values())) != 1:
                last["why"] = "applied indexes differ: %r" % before
                return None
            dumps = {n.id: self.dump(n) for n in self.nodes}
            after = {n.id: self.status(n) for n in self.nodes}
            if any(after[i]["db_applied_index"] != before[i] for i in before):
                last["why"] = "applied indexes moved while reading"
                return None
            first = self.nodes[0].id
            for i, d in dumps.items():
                if d != dumps[first]:
                    diff = {}
                    for t in d:
                        a, b = d[t], dumps[first][t]
                        if a == b:
                            continue
                        if isinstance(a, str) or isinstance(b, str):
                            diff[t] = (a, b)
                        else:
                            ra, rb = set(map(tuple, a)), set(map(tuple, b))
                            diff[t] = {"only on node %s" % i: sorted(ra - rb)[:10],
                                       "only on node %s" % first: sorted(rb - ra)[:10]}
                            if t == "ins":  # where in the log the missing inserts were
                                ka, kb = {tuple(x[1:]) for x in a}, {tuple(x[1:]) for x in b}
                                for who, gone in ((i, kb - ka), (first, ka - kb)):
                                    idx = sorted(self.ins_index[k] for k in gone if self.ins_index.get(k))
                                    if idx:
                                        diff[t]["Raft indexes of acknowledged inserts missing on node %s"
                                                % who] = idx[:10]
                    last["why"] = ("node %s holds different content from node %s at applied index %s "
                                   "(differing rows: %r)" % (i, first, before[i], diff))
                    return None
            return before[first], dumps[first], after
        try:
            return harness.poll(same, timeout, interval=0.2, what=what)
        except AssertionError as e:
            self.violation("%s: %s (%s)" % (what, last.get("why", "no answer"), str(e)[:200]))
            return None

    def checkpoint(self):
        """Heal, hold the clients, and compare every node at one applied index;
        a node restored from a snapshot since the last checkpoint is thereby
        compared with the others. Also samples descriptors and memory of every
        node process while idle, for the growth check."""
        self.heal()
        with self.gate:
            self.open = False
            if not self.gate.wait_for(lambda: self.inflight == 0, 30):
                self.violation("client requests still under way 30 s into a checkpoint")
        try:
            for n in self.nodes:
                try:
                    n.wait_ready(60)
                except AssertionError as e:
                    self.violation("node %s not ready at a checkpoint: %s" % (n.id, str(e)[:300]))
                    return
            got = self.agree(60, "checkpoint %d" % (self.checkpoints + 1))
            if got is None:
                return
            self.checkpoints += 1
            index, _, st = got
            restored = []
            for n in self.nodes:
                # restores: libraft installed a snapshot (its own at a restart,
                # or one the leader sent); transfers: the file came from the leader
                count = (st[n.id]["num_restores"] + st[n.id]["num_restores_start_skipped"],
                         st[n.id]["num_snapshot_transfers"])
                prev = self.restores_seen.get(n.id)
                if prev is None or prev[0] != n.proc.pid:
                    prev = (n.proc.pid, (0, 0))
                if count[0] > prev[1][0] or count[1] > prev[1][1]:
                    restored.append("%s (%s)" % (n.id, "sent by the leader" if count[1] > prev[1][1]
                                                 else "its own, at restart"))
                self.restores_seen[n.id] = (n.proc.pid, count)
                self.sample(n)
            self.restored_checked += len(restored)
            self.log("checkpoint %d: every node at applied index %s with the same content%s"
                     % (self.checkpoints, index, "; restored from a snapshot since the last one: node %s"
                        % ", ".join(restored) if restored else ""))
        finally:
            with self.gate:
                self.open = True
                self.gate.notify_all()

    @staticmethod
    def usage(node):
        """(open file descriptors, resident MB, descriptors by kind) of a node's process."""
        kinds = {}
        tcp = harness.tcp_sockets(node.proc.pid)
        for target in harness.fd_targets(node.proc.pid):
            if target.startswith("socket:["):
                sock = tcp.get(target[8:-1])
                # ephemeral ports as *: sockets of one kind add up
                ports = [str(x) if x < 32768 else "*" for x in sock[1:]] if sock else None
                kind = "tcp %s :%s -> :%s" % (sock[0], ports[0], ports[1]) if sock else "socket (not TCP)"
            elif target.startswith(("pipe:", "anon_inode:")):
                kind = target.split(":")[0]
            else:
                kind = target
            kinds[kind] = kinds.get(kind, 0) + 1
        return sum(kinds.values()), harness.proc_mb(node.proc.pid, "VmRSS"), kinds

    def sample(self, node):
        """usage() now, also kept for check_growth()."""
        u = self.usage(node)
        self.samples.setdefault((node.id, node.proc.pid), []).append((time.monotonic() - self.t0,) + u)
        return u

    @staticmethod
    def fd_baseline(smp, n):
        """The sample a process settled at: the one with the most descriptors
        over the first half of its n samples (n at least 4; None before). Pools fill up after a restart, and a
        node's share of them moves with the leader and the clients: raft
        connections (up to two per peer), read connections, forwarding handles
        of client connections kept alive. A leak keeps growing past them."""
        if n < 4:
            return None
        return max(smp[:n // 2], key=lambda x: x[1])

    def settle(self, node, timeout=60.0):
        """Wait (bounded) until node's descriptors are back within the growth
        bound. The clients have just stopped: requests they gave up on may still
        be served (a forward waits up to 30 s), each holding its connection
        thread, its client socket and a curl handle. A leak does not go away;
        those do."""
        smp = self.samples.get((node.id, node.proc.pid), [])
        base = self.fd_baseline(smp, len(smp) + 1)  # the sample to come counts
        if base is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.usage(node)[0] > base[1] + FD_GROWTH:
            time.sleep(0.5)

    def check_growth(self):
        """Descriptors and memory sampled at checkpoints (clients idle) must not
        keep growing within one process's life."""
        longest = None
        for (nid, pid), smp in self.samples.items():
            if len(smp) < 3:
                continue
            if longest is None or smp[-1][0] - smp[0][0] > longest[2][-1][0] - longest[2][0][0]:
                longest = (nid, pid, smp)
            base = self.fd_baseline(smp, len(smp))
            if base is not None and smp[-1][1] > base[1] + FD_GROWTH:
                ref, last = base[3], smp[-1][3]
                grew = {k: "%d -> %d" % (ref.get(k, 0), v) for k, v in last.items() if v > ref.get(k, 0)}
                self.violation("node %s (pid %d) went from %d (the most over its first %d checkpoints) to %d "
                               "open descriptors over %d checkpoints (grew: %r)"
                               % (nid, pid, base[1], len(smp) // 2, smp[-1][1], len(smp), grew))
            # the first sample may predate a catch-up; growth counts from the second
            if smp[-1][2] > smp[1][2] + RSS_GROWTH_MB and not os.environ.get("RQ_SANITIZED"):
                self.violation("node %s (pid %d) grew from %.0f to %.0f MB resident over %d checkpoints"
                               % (nid, pid, smp[1][2], smp[-1][2], len(smp)))
        if longest:
            nid, pid, smp = longest
            first, last = smp[0][3], smp[-1][3]
            grew = {k: "%d -> %d" % (first.get(k, 0), v) for k, v in last.items()
                    if v > first.get(k, 0) and "/raft/" not in k}
            self.log("longest-lived process: node %s over %.0fs and %d checkpoints: descriptors %s, "
                     "resident MB %s; descriptors gained: %r" % (
                         nid, smp[-1][0] - smp[0][0], len(smp), " ".join(str(x[1]) for x in smp),
                         " ".join("%.0f" % x[2] for x in smp), grew))

    # ---- run and check ------------------------------------------------
    def check_kinds(self):
        """--kinds may only name faults this run can inject."""
        if not self.args.kinds:
            return
        for k in self.args.kinds.split(","):
            if k in NET_FAULTS and self.args.no_net:
                self.violation("--kinds %s needs network faults, which --no-net turns off" % k)
            elif k not in PROCESS_FAULTS + NET_FAULTS:
                self.violation("--kinds: no fault named %r (known: %s)" % (k, ", ".join(PROCESS_FAULTS + NET_FAULTS)))
        if self.violations:
            raise Violation()

    def check_activity(self, applied_queued):
        """Every kind of operation the run claims happened, at least so often."""
        done = dict(self.done, **{"queued write applied": applied_queued})
        secs = self.clients_s
        want = dict(ACTIVITY)
        if self.args.hostile:
            want["hostile request answered"] = min(HOSTILE_ACTIVITY, self.args.hostile_rate / 2)
        for kind, rate in sorted(want.items()):
            need = max(ACTIVITY_FLOOR, int(rate * secs))
            if done.get(kind, 0) < need:
                self.violation("too little activity: %d %s over the %.0f s the clients ran (at least %d "
                               "expected); a client failed or did (almost) nothing" % (
                                   done.get(kind, 0), kind, secs, need))
        self.log("operations over %.0f s: %s" % (secs, ", ".join(
            "%s %d" % (k, v) for k, v in sorted(done.items()))))
        real = [d for _, d in self.faults if d != "heal"]
        net_kinds = ("isolate", "drop everything", "partition")
        net_asked = not self.args.kinds or any(k in NET_FAULTS for k in self.args.kinds.split(","))
        if self.net and net_asked and len(real) >= 12 and not any(d.startswith(net_kinds) for d in real):
            self.violation("network faults were asked for, but none of the %d faults was one" % len(real))

    def run(self):
        self.check_kinds()
        self.start()
        self.log("cluster of %d nodes up, seed %d" % (self.args.nodes, self.args.seed))
        threads = [threading.Thread(target=self.inserter, args=(c,), name="ins%d" % c) for c in range(3)]
        threads += [threading.Thread(target=self.register_client, args=(c,), name="reg%d" % c)
                    for c in range(1, 5)]
        threads += [threading.Thread(target=self.banker, args=(c,), name="bank%d" % c) for c in range(2)]
        threads += [threading.Thread(target=self.queue_writer, args=(c,), name="queue%d" % c) for c in range(2)]
        threads += [threading.Thread(target=self.clock_writer, name="clock"),
                    threading.Thread(target=self.fresh_reader, name="fresh"),
                    threading.Thread(target=self.weak_reader, name="weak"),
                    threading.Thread(target=self.monitor, name="monitor")]
        if self.args.hostile:
            threads.append(threading.Thread(target=self.hostile_client, name="hostile"))
        clients_t0 = time.monotonic()
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.args.duration
        injected = 0
        since = 0  # faults since the last checkpoint
        try:
            while time.monotonic() < deadline and injected < self.args.faults and not self.violations:
                time.sleep(self.rng.uniform(0.5, 2.5))
                kind = self.inject()
                injected += 1
                since += 1
                self.wiped |= kind.startswith("wipe")
                if since >= CHECKPOINT_EVERY or (self.wiped and since >= 3):
                    self.checkpoint()
                    since, self.wiped = 0, False
        finally:
            self.heal()
            time.sleep(1.0)  # let clients write against the healed cluster (not a synchronisation)
            self.stop.set()
            self.clients_s = time.monotonic() - clients_t0
            for t in threads:
                t.join(30)
            for t in threads:
                if t.is_alive():
                    self.violation("client thread %s still running 30 s after the stop" % t.name)
        self.log("%d faults injected; checking" % len([f for f in self.faults if f[1] != "heal"]))
        self.check()

    def final_write(self):
        """With the hostile client: the healed cluster still takes a write."""
        deadline = time.monotonic() + 30
        last = None
        while time.monotonic() < deadline:
            try:
                r = self.post(self.leader(), "/db/execute", [["INSERT OR IGNORE INTO ins(c, n) VALUES (?, ?)", -1, 1]],
                              timeout=10)
                res = self.first_result(r)
                if res is not None and "error" not in res:
                    with self.lock:
                        self.acked.add((-1, 1))
                    return
                last = "HTTP %d %s" % (r.status_code, r.text[:200])
            except (requests.RequestException, ValueError, AssertionError) as e:
                last = repr(e)[:200]
            time.sleep(0.5)
        self.violation("the cluster takes no write at the end of the run (last answer: %s)" % last)

    def dump(self, node):
        out = {}
        tables = (("ins", "c, n"), ("reg", "k"), ("bank", "acct"), ("clock", "k"), ("qw", "id"))
        if self.args.hostile:
            tables += (("t", "id"),)  # what the hostile inputs wrote
        for table, order in tables:
            r = requests.get(node.url + "/db/query", params={
                "q": "SELECT * FROM %s ORDER BY %s" % (table, order), "level": "none"}, timeout=10, **node.tls)
            res = r.json()["results"][0]
            # an error stands in for the rows, so that it shows in a mismatch
            out[table] = ("error: " + res["error"]) if "error" in res else (res.get("values") or [])
        return out

    def check(self):
        for n in self.nodes:
            if n.proc.poll() is not None:
                self.violation("node %s exited on its own with %s" % (n.id, n.proc.returncode))
        for n in self.nodes:
            n.wait_ready(60)
        if self.args.hostile:
            self.final_write()
        got = self.agree(90, "final comparison of all nodes")
        if got is None:
            return
        index, want, _ = got
        rows = {(c, n) for _, c, n in want["ins"]}
        missing = self.acked - rows
        if missing:
            self.violation("%d acknowledged inserts missing, e.g. %r" % (len(missing), sorted(missing)[:5]))
        # queued writes: each client's writes accepted by one node process
        # (one after the other) are applied in that order
        pos = {}
        for row_id, c, n in want["qw"]:
            pos.setdefault((c, n), row_id)  # first application
        by_node = {}
        for who, c, n in self.queued:
            if (c, n) in pos:
                by_node.setdefault((who, c), []).append((pos[(c, n)], c, n))
        for who, seq in by_node.items():
            for a, b in zip(seq, seq[1:]):
                if a[0] > b[0]:
                    self.violation("queued writes accepted by node %s in the order %r then %r were applied "
                                   "the other way round" % (who[0][0], a[1:], b[1:]))
                    break
        self.check_activity(len(want["qw"]))
        bal = [b for _, b in want["bank"]]
        if sum(bal) != ACCOUNTS * START_BALANCE or min(bal) < 0:
            self.violation("bank final state wrong: %r" % want["bank"])
        for k, ops in self.reg_ops.items():
            ok, why = check(ops)
            if not ok:
                path = os.path.join(os.getcwd(), "chaos-history-seed%d-key%d.json" % (self.args.seed, k))
                with open(path, "w") as f:
                    json.dump(ops, f, indent=0, default=str)
                short = shrink(ops)
                tail = "\n".join("      %-5s %-12s call %8.3f ret %8s%s" % (
                    "write" if o["kind"] == "w" else "read", o["value"], o["call"] - self.t0,
                    "?" if o["ret"] == INF else "%8.3f" % (o["ret"] - self.t0),
                    " (%s on node %s)" % (o["level"], o["node"]) if o["kind"] == "r" else "")
                    for o in short[-12:])
                self.violation("register %d history not linearizable (%d operations, saved in %s): %s\n"
                               "    the earliest failing cut has %d operations; its last ones (seconds "
                               "into the run):\n%s" % (k, len(ops), path, why, len(short), tail))
        for n in self.nodes:
            logs = n.logs()
            for m in CRASH_MARKS:
                at = logs.find(m)
                if at >= 0:
                    self.violation("node %s logged a crash (%r): %s" % (n.id, m, logs[at:at + 300].strip()))
                    break
            self.settle(n)
            fds, rss, _ = self.sample(n)
            if fds > 200:
                self.violation("node %s has %d open file descriptors" % (n.id, fds))
            if rss > 200 and not os.environ.get("RQ_SANITIZED"):  # ASan inflates RSS
                self.violation("node %s uses %.0f MB" % (n.id, rss))
        self.check_growth()
        if os.environ.get("RQ_SANITIZED"):
            # an orderly stop, so that LeakSanitizer reports at exit
            for n in self.nodes:
                try:
                    n.stop()
                except AssertionError as e:
                    self.violation(str(e))
        refused = 0
        for n in self.nodes:
            logs = n.logs()
            report = harness.sanitizer_report(logs)
            if report:
                self.violation("node %s logged a sanitizer report:\n%s" % (n.id, report))
            # transfers a node refused because its own file was newer (store/fetch.c):
            # each one would have lost entries before that guard
            refused += logs.count("is older than ours")
        self.log("transferred databases refused as older than the receiving node's file: %d" % refused)
        nops = sum(len(v) for v in self.reg_ops.values())
        self.log("acknowledged inserts %d (rows %d), register operations %d, bank invariant reads %d, "
                 "freshness reads %d, queued writes accepted %d (applied %d), terms with a leader %d, "
                 "longest leaderless stretch after a leader kill %.2fs; %d checkpoints compared every node at "
                 "one applied index, %d times including a node restored from a snapshot; final applied "
                 "index %s"
                 % (len(self.acked), len(rows), nops, self.bank_reads, self.fresh_reads, len(self.queued),
                    len(want["qw"]), len(self.leaders), max(self.leaderless or [0]), self.checkpoints,
                    self.restored_checked, index))

    def report(self):
        if self.args.hostile:
            print("hostile requests sent: %d (answers by status: %s)" % (self.hostile_sent, ", ".join(
                "%s: %d" % (k, v) for k, v in sorted(self.hostile_status.items(), key=lambda x: str(x[0])))
                or "none"))
        if self.violations:
            print("\nFAILED, seed %d: %d violation(s)" % (self.args.seed, len(self.violations)))
            for v in self.violations:
                print(" - " + v)
            print("faults: %s" % "; ".join("%.1fs %s" % f for f in self.faults))
            for n in self.nodes:
                print("\n===== log of node %s (last 60 lines) =====" % n.id)
                print("\n".join(n.logs().splitlines()[-60:]))
            return 1
        print("PASSED, seed %d: %d faults, no violation%s" % (
            self.args.seed, len([f for f in self.faults if f[1] != "heal"]),
            " (node TLS, HTTPS with mutual TLS, -auth)" if self.args.secure else
            " (node-to-node TLS)" if self.args.node_tls else ""))
        return 0

    def close(self):
        for n in self.nodes:
            try:
                if n.proc and n.proc.poll() is None:
                    os.kill(n.proc.pid, signal.SIGCONT)
                n.kill()
            except Exception:
                pass
        if getattr(self, "net", None):
            self.net.teardown()
        if self.args.keep or self.violations:
            print("data directories and logs kept in %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=180)
    ap.add_argument("--faults", type=int, default=1000)
    ap.add_argument("--build", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    ap.add_argument("--no-net", action="store_true", help="no network namespaces (no partition faults)")
    ap.add_argument("--kinds", default="",
                    help="only these faults, comma-separated (kill, pause, wipe, wipe_nojoin, kill_leader, "
                         "isolate, isolate_leader, oneway, split)")
    ap.add_argument("--no-hostile", dest="hostile", action="store_false",
                    help="no hostile client (random inputs of tests/hostile/inputs.py)")
    ap.add_argument("--hostile-rate", type=float, default=2.0, help="hostile requests a second, at most")
    ap.add_argument("--hostile-inputs", default="",
                    help="only the hostile inputs whose names start so, comma-separated (nul/,pragma/ ...)")
    ap.add_argument("--secure", action="store_true",
                    help="node TLS, HTTPS with mutual TLS and -auth on every node (the hostile client off)")
    ap.add_argument("--node-tls", action="store_true",
                    help="mutual node-to-node TLS on every node (certificates made for the run with openssl)")
    ap.add_argument("--unsafe-reads", action="store_true",
                    help="read registers at level none (stale reads): shows the checker catching them")
    args = ap.parse_args()
    if args.secure:
        args.hostile = False  # its inputs are plain HTTP without credentials
    if args.build:
        harness.RQLITED = os.path.abspath(os.path.join(args.build, "rqlited"))
    # A timeout's SIGTERM still tears down the nodes and namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    c = Chaos(args)
    try:
        c.run()
    except Violation:
        pass
    finally:
        rc = c.report()
        c.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
