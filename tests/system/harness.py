"""Process harness for system tests: real rqlited nodes on 127.0.0.1.

Every wait is a poll with a deadline; nothing sleeps to synchronise.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import requests

BUILD = os.environ.get("RQ_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
RQLITED = os.path.abspath(os.path.join(BUILD, "rqlited"))
RQLITE = os.path.abspath(os.path.join(BUILD, "rqlite"))

# Short Raft timers keep elections quick on loopback.
FAST = ["-raft-election-timeout", "500ms", "-raft-timeout", "500ms"]


_handed_out = set()


def free_port():
    """A port free now and never handed out before in this run (the kernel
    may give the same ephemeral port to two binds in a row)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING"}


def tcp_sockets(pid):
    """The TCP sockets of pid's network namespace: inode -> (state, local
    port, remote port), from /proc/<pid>/net/tcp."""
    out = {}
    try:
        with open("/proc/%d/net/tcp" % pid) as f:
            next(f)
            for line in f:
                p = line.split()
                lport, rport = (int(a.split(":")[1], 16) for a in p[1:3])
                out[p[9]] = (TCP_STATES.get(p[3], p[3]), lport, rport)
    except OSError:
        pass
    return out


def fd_targets(pid):
    """What each open descriptor of pid points at ("socket:[inode]", a path...)."""
    fd_dir = "/proc/%d/fd" % pid
    out = []
    for fd in os.listdir(fd_dir):
        try:
            out.append(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    return out


def proc_mb(pid, field):
    """A memory figure of pid from /proc/<pid>/status ("VmRSS", "VmHWM"), in MB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no %s for pid %d" % (field, pid))


# What ASan, LeakSanitizer and UBSan print (make asan test).
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(logs):
    """The stretch of a node's log where its first sanitizer report starts, or None."""
    found = [at for at in (logs.find(m) for m in SANITIZER_REPORTS) if at >= 0]
    if not found:
        return None
    at = min(found)
    return logs[max(0, at - 200):at + 3000]


def poll(fn, timeout=30.0, interval=0.05, what="condition"):
    """Call fn until it returns a truthy value; return it. Fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (requests.RequestException, ValueError, KeyError, IndexError) as e:
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last error: %r)"
                         % (timeout, what, last_exc))


class Node:
    def __init__(self, tmp_path, node_id, extra=None):
        self.id = str(node_id)
        self.http_port = free_port()
        self.raft_port = free_port()
        self.dir = str(tmp_path / ("node.%s" % self.id))
        self.log_path = str(tmp_path / ("node.%s.log" % self.id))
        self.extra = list(extra or [])
        self.env = {}  # added to the environment of the next start()
        self.cwd = None  # the process's working directory (None: the test's)
        self.scheme = "http"  # "https" for a node started with -http-cert/-http-key
        self.tls = {}  # what requests needs for its HTTPS: verify=CA file, cert=(cert, key)
        self.proc = None
        self.log = None

    @property
    def http_addr(self):
        return "127.0.0.1:%d" % self.http_port

    @property
    def raft_addr(self):
        return "127.0.0.1:%d" % self.raft_port

    @property
    def url(self):
        return self.scheme + "://" + self.http_addr

    def args(self, join=None):
        a = [RQLITED, "-node-id", self.id, "-http-addr", self.http_addr,
             "-raft-addr", self.raft_addr] + FAST + self.extra
        if join:
            a += ["-join", join]
        return a + [self.dir]

    def start(self, join=None):
        assert self.proc is None or self.proc.poll() is not None
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(self.args(join), stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.cwd)
        return self

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.log:
                self.log.close()
                self.log = None

    def stop(self):
        """Ctrl-C / SIGTERM: orderly stop; SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.wait_exit(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.wait_exit(5)
            raise AssertionError("node %s did not stop on SIGINT" % self.id)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.wait_exit(10)

    def wipe(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ---- HTTP helpers -------------------------------------------------
    def execute(self, stmts, params="", timeout=10):
        r = requests.post(self.url + "/db/execute" + params, json=stmts, timeout=timeout, **self.tls)
        r.raise_for_status()
        return r.json()

    def query(self, sql, level=None, params="", timeout=10):
        q = {"q": sql}
        if level:
            q["level"] = level
        r = requests.get(self.url + "/db/query" + params, params=q, timeout=timeout, **self.tls)
        r.raise_for_status()
        return r.json()

    def status(self):
        r = requests.get(self.url + "/status", timeout=5, **self.tls)
        r.raise_for_status()
        return r.json()

    def nodes(self):
        r = requests.get(self.url + "/nodes?ver=2&nonvoters", timeout=10, **self.tls)
        r.raise_for_status()
        return r.json()["nodes"]

    def is_leader(self):
        try:
            return self.status()["store"]["raft"]["state"] == "Leader"
        except (requests.RequestException, KeyError, ValueError):
            return False

    def ready(self):
        try:
            return requests.get(self.url + "/readyz", timeout=2, **self.tls).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout=30):
        def ready_or_dead():
            if self.proc.poll() is not None:
                raise AssertionError("node %s exited with %s:\n%s" % (
                    self.id, self.proc.returncode, self.logs()[-2000:]))
            return self.ready()
        poll(ready_or_dead, timeout, what="node %s ready" % self.id)
        return self

    def count(self, table, level="none"):
        r = self.query("SELECT COUNT(*) FROM %s" % table, level=level)
        if not r.get("results"):
            return None  # e.g. store not open yet
        res = r["results"][0]
        if "error" in res:
            return None
        return res["values"][0][0]


def leader_of(nodes, timeout=30):
    def find():
        live = [n for n in nodes if n.proc and n.proc.poll() is None]
        leaders = [n for n in live if n.is_leader()]
        return leaders[0] if len(leaders) == 1 else None
    return poll(find, timeout, what="a single leader")


def wait_members(node, n, timeout=30):
    """Wait until node's /nodes lists n reachable voters."""
    def ok():
        ns = node.nodes()
        voters = [x for x in ns if x.get("voter") and x.get("reachable")]
        return len(voters) == n and any(x.get("leader") for x in ns)
    poll(ok, timeout, what="%d reachable voters" % n)


def json_compact(doc):
    return json.dumps(doc, separators=(",", ":"))


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of a local port. It keeps every
    byte it carries both ways (data()) and counts those from the target
    (carried); with rate, those go at most rate bytes/s (transfers that
    outlast timeouts without gigabytes of data)."""

    def __init__(self, target_port, rate=None):
        self.target, self.rate = target_port, rate
        self.carried = 0
        self._data = bytearray()
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, from_target):
        try:
            while True:
                chunk = src.recv(16384)
                if not chunk:
                    break
                with self._lock:
                    self._data += chunk
                    if from_target:
                        self.carried += len(chunk)
                dst.sendall(chunk)
                if from_target and self.rate:
                    time.sleep(len(chunk) / self.rate)  # pacing the proxy, not synchronising a test
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def data(self):
        with self._lock:
            return bytes(self._data)

    def close(self):
        self.listener.close()


def listening(port):
    """Does something accept connections on 127.0.0.1:port?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_bare(tmp_path, extra):
    """rqlited with free ports, a data directory of its own and extra flags,
    its output piped (for starts that must be refused). Returns (process,
    HTTP port, data directory)."""
    http, raft = free_port(), free_port()
    data = str(tmp_path / ("data-%d" % http))
    args = [RQLITED, "-node-id", "1", "-http-addr", "127.0.0.1:%d" % http,
            "-raft-addr", "127.0.0.1:%d" % raft] + FAST + extra + [data]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE), http, data


def output_at_exit(proc, timeout=20):
    """(stdout, stderr) of a process expected to exit within timeout; killed
    if it has not."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def start_with_users(cluster, tmp_path, users, admin, node_id=1):
    """A node with -auth over a credentials file of these users, started and
    polled ready with the admin's (user, password)."""
    path = tmp_path / ("auth-%s.json" % node_id)
    path.write_text(json.dumps(users))
    n = cluster.node(node_id, ["-auth", str(path)]).start()
    poll(lambda: requests.get(n.url + "/readyz", auth=admin, timeout=5).status_code == 200,
         what="node %s ready" % node_id)
    return n
