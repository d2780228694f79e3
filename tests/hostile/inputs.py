"""Hostile and careless inputs for rqlited, as data.

Each Input is one HTTP request (method, path, headers, body bytes) with the
answer the server must give, or none when the answer is not defined (then
only the cluster's invariants apply, and no 5xx other than 503). Used by
tests/hostile/test_hostile.py (each input sent to the leader and to a
follower, the cluster checked after each) and by tests/chaos/chaos.py's
hostile client (random inputs to random nodes during a fault run).

Placeholders, replaced in the path and body before sending (render()):
  {leader_dir}  the data directory of the leader (absolute)
  {node_dir}    the data directory of the node the request is sent to
  {scratch}     a directory outside every node's data directory
Files the inputs try to create inside data directories are named in
PLANTED; none may ever exist there.

Checks are functions of the Answer returning a problem (str) or None.
"""
import json
import os
import random
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.parse

import requests

JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}
OCTET = {"Content-Type": "application/octet-stream"}

# The tables the inputs use; created once on a new cluster.
SETUP = [
    "CREATE TABLE IF NOT EXISTS canary (i INTEGER)",
    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v)",
    "CREATE TABLE IF NOT EXISTS qbarrier (n INTEGER)",
    "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS fts_hostile USING fts3(a)",
    "INSERT INTO fts_hostile(a) VALUES ('hello world')",
]

# Names of files inputs try to plant in a data directory (also: any name
# containing "hostile").
PLANTED = ("peers.json", "snapshot-1-999999-1", "snapshot-1-999999-1.meta")

NUL_ANSWER = "invalid request: SQL text contains a NUL byte"
RUNAWAY_CTE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
# A read that takes a second or so: slow enough for any timeout under 1 ms
# to fire, short enough to end by itself.
SLOW_READ = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 3000000) SELECT count(*) FROM c"


class Input:
    def __init__(self, name, method, path, headers=None, body=b"", status=None, check=None,
                 strict_on=("leader", "follower"), post=None, refused=False, heavy=False,
                 raw=False, may_close=False, timeout=30.0, taints=False, stream=False):
        self.name = name
        self.method = method
        self.path = path
        self.headers = dict(headers or {})
        self._body = body          # bytes, or a function returning bytes (built on first use)
        self.status = status       # expected status, None when not defined
        self.check = check         # extra check of the answer, when defined
        self.strict_on = strict_on  # which targets the expectation applies to
        self.post = post           # name of a cluster check made after (test_hostile.POST)
        self.refused = refused     # nothing may be proposed to the Raft log
        self.heavy = heavy         # large or slow: left out of the chaos client
        self.raw = raw             # body is the whole request, sent on a socket
        self.may_close = may_close  # the server may close the connection without answering
        self.timeout = timeout     # an answer must come within this many seconds
        self.taints = taints       # if it gets through, it may leave state behind
        self.stream = stream       # read the answer in chunks, keep its head only
        self.defined = status is not None or check is not None

    @property
    def body(self):
        if callable(self._body):
            self._body = self._body()
        return self._body

    def __repr__(self):
        return "Input(%s)" % self.name


class Answer:
    """What came back: status (None when no answer), content type, body
    (the first MB at most when streamed), full length, error text."""

    def __init__(self, status=None, ctype="", body=b"", length=0, error=None, elapsed=0.0):
        self.status, self.ctype, self.body = status, ctype, body
        self.length, self.error, self.elapsed = length, error, elapsed

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return strict_json(self.body)

    def brief(self, n=300):
        if self.status is None:
            return "no answer (%s) after %.1fs" % (self.error, self.elapsed)
        b = self.body[:n]
        more = "..." if self.length > n else ""
        return "HTTP %s %s %r%s" % (self.status, self.ctype.split(";")[0], b, more)


def _no_constants(name):
    raise ValueError("not JSON: %s" % name)


def strict_json(data):
    """JSON as RFC 8259 has it: no NaN or Infinity."""
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data,
                      parse_constant=_no_constants)


# ---- sending ---------------------------------------------------------------

def render(inp, ctx):
    """(path, body) with the placeholders of ctx filled in."""
    path, body = inp.path, inp.body
    for k, v in (ctx or {}).items():
        token = "{%s}" % k
        if token in path:
            path = path.replace(token, urllib.parse.quote(v, safe="/"))
        if token.encode() in body:
            body = body.replace(token.encode(), v.encode())
    return path, body


def send(inp, base_url, ctx=None, timeout=None):
    """Send inp to base_url ("http://host:port"); never raises for the
    server's behaviour (a closed connection or a timeout is an Answer)."""
    path, body = render(inp, ctx)
    timeout = timeout or inp.timeout
    t0 = time.monotonic()
    if inp.raw:
        return _send_raw(base_url, body, timeout, t0)
    try:
        r = requests.request(inp.method, base_url + path, data=body if body else None,
                             headers=dict(inp.headers, Connection="close"), timeout=timeout,
                             stream=inp.stream, allow_redirects=False)
        if inp.stream:
            head, n = b"", 0
            for chunk in r.iter_content(1 << 20):
                if len(head) < (1 << 20):
                    head += chunk[:(1 << 20) - len(head)]
                n += len(chunk)
                if time.monotonic() - t0 > timeout:
                    r.close()
                    return Answer(r.status_code, r.headers.get("Content-Type", ""), head, n,
                                  "answer still streaming after %.0fs" % timeout, time.monotonic() - t0)
            return Answer(r.status_code, r.headers.get("Content-Type", ""), head, n, None,
                          time.monotonic() - t0)
        return Answer(r.status_code, r.headers.get("Content-Type", ""), r.content, len(r.content), None,
                      time.monotonic() - t0)
    except requests.RequestException as e:
        return Answer(None, "", b"", 0, "%s: %s" % (type(e).__name__, str(e)[:200]), time.monotonic() - t0)


def _send_raw(base_url, data, timeout, t0):
    host, port = base_url.split("//", 1)[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    got = b""
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close early; read what it said
        deadline = t0 + timeout
        while time.monotonic() < deadline and len(got) < (1 << 20):
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    if not got.startswith(b"HTTP/"):
        return Answer(None, "", got, len(got), "connection closed without an HTTP answer", time.monotonic() - t0)
    return _parse_raw(got, t0)


def _parse_raw(got, t0):
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Answer(None, "", got, len(got), "unreadable status line %r" % lines[0][:80], time.monotonic() - t0)
    if status == 100:  # Expect: 100-continue; the answer follows
        return _parse_raw(body, t0) if body.startswith(b"HTTP/") else Answer(
            None, "", got, len(got), "nothing after 100 Continue", time.monotonic() - t0)
    ctype, length, chunked = "", None, False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k, v = k.strip().lower(), v.strip()
        if k == b"content-type":
            ctype = v.decode("latin-1")
        elif k == b"content-length" and v.isdigit():
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    # the first answer only (pipelined requests get several)
    if chunked:
        out, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            try:
                n = int(size.split(b";")[0], 16)
            except ValueError:
                break
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    elif length is not None:
        body = body[:length]
    return Answer(status, ctype, body, len(body), None, time.monotonic() - t0)


# ---- judging ------------------------------------------------------------------

def generic_problems(inp, a):
    """What is wrong with any answer, defined or not: no answer (unless the
    input may be dropped), a 5xx other than 503 (503 is judged by the caller,
    who knows whether there was a leader), JSON that is not JSON."""
    if a.status is None:
        if inp.may_close or inp.raw:
            return []
        return ["no answer: %s" % a.error]
    out = []
    if a.status >= 500 and a.status != 503:
        out.append("HTTP %d (a server error) for a client's input: %s" % (a.status, a.brief()))
    if a.error:
        out.append(a.error)
    if a.ctype.startswith("application/json") and not inp.stream and a.body:
        try:
            strict_json(a.body)
        except ValueError as e:
            out.append("Content-Type is JSON but the body is not JSON (%s): %s" % (str(e)[:80], a.brief()))
    return out


def expected_problems(inp, a):
    """What is wrong with the answer against the input's defined answer
    (no answer at all is generic_problems' to report)."""
    if not inp.defined or a.status is None:
        return []
    out = []
    if inp.status is not None and a.status != inp.status:
        out.append("expected HTTP %d, got %s" % (inp.status, a.brief()))
        return out
    if inp.check:
        try:
            p = inp.check(a)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            p = "answer not as expected (%s: %s): %s" % (type(e).__name__, e, a.brief())
        if p:
            out.append(p)
    return out


# ---- checks of defined answers ------------------------------------------------

def text_plain(a):
    return a.ctype.startswith("text/plain")


def nul_refused(a):
    if not text_plain(a):
        return "expected a text/plain answer, got %s" % a.brief()
    if a.text().rstrip("\n") != NUL_ANSWER:
        return "expected %r, got %s" % (NUL_ANSWER, a.brief())
    return None


def starts(prefix):
    def check(a):
        if not a.text().startswith(prefix):
            return "expected a body starting with %r, got %s" % (prefix, a.brief())
        return None
    return check


def plain_reason(a):
    if not text_plain(a) or not a.text().strip():
        return "expected a plain-text reason, got %s" % a.brief()
    return None


def disallowed(a):
    if a.json() != {"results": [], "error": "disallowed pragma"}:
        return 'expected {"results":[],"error":"disallowed pragma"}, got %s' % a.brief()
    return None


def results_ok(n=None):
    """Every statement succeeded (n results when given)."""
    def check(a):
        d = a.json()
        res = d.get("results")
        if d.get("error") or not isinstance(res, list) or (n is not None and len(res) != n):
            return "expected %s results without error, got %s" % (n or "some", a.brief())
        bad = [r for r in res if "error" in r]
        if bad:
            return "a statement failed: %r" % bad[0]
        return None
    return check


def per_statement(a):
    """Answered statement by statement (errors or not), not refused whole."""
    d = a.json()
    if not isinstance(d.get("results"), list) or not d["results"]:
        return "expected per-statement results, got %s" % a.brief()
    return None


def first_error(pred, what):
    def check(a):
        d = a.json()
        res = d.get("results") or []
        err = res[0].get("error") if res else None
        if not isinstance(err, str) or not pred(err):
            return "expected the first statement's error to be %s, got %s" % (what, a.brief())
        return None
    return check


def values(expected):
    def check(a):
        d = a.json()
        got = d["results"][0].get("values")
        if got != expected:
            return "expected values %r, got %s" % (expected, a.brief())
        return None
    return check


def columns_no_error(col):
    def check(a):
        r = a.json()["results"][0]
        if "error" in r or r.get("columns") != [col]:
            return "expected a %r column, got %s" % (col, a.brief())
        return None
    return check


def stale(a):
    d = a.json()
    if "stale" not in str(d.get("error", "")) or d.get("results"):
        return 'expected {"results":[],"error":"stale read"} (not served), got %s' % a.brief()
    return None


# ---- bodies -----------------------------------------------------------------

def J(obj):
    return json.dumps(obj).encode()


def sql_text(s):
    return s.encode() if isinstance(s, str) else s


def _image(build):
    """A SQLite image made by build(path) with Python's sqlite3 module."""
    d = tempfile.mkdtemp(prefix="rq-hostile-img-")
    path = os.path.join(d, "img.db")
    try:
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=DELETE")
        build(con, path)
        con.close()
        with open(path, "rb") as f:
            return f.read()
    finally:
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))
        os.rmdir(d)


def _base(con, path):
    con.execute("CREATE TABLE loaded (id INTEGER PRIMARY KEY, x TEXT)")
    con.executemany("INSERT INTO loaded(x) VALUES (?)", [("row %d " % i + "z" * 200,) for i in range(200)])
    con.commit()


_valid = None


def valid_image():
    """A sound image of about a dozen 4 KB pages (the corrupt ones start from it)."""
    global _valid
    if _valid is None:
        _valid = _image(_base)
    return _valid


def img_truncated_mid():
    b = valid_image()
    return b[:len(b) // 2 + 123]


def img_first_page_only():
    return valid_image()[:4096]


def img_garbage_pages():
    b = valid_image()
    rng = random.Random(13)
    return b[:4096] + bytes(rng.getrandbits(8) for _ in range(len(b) - 4096))


def img_page_size(n):
    def make():
        b = bytearray(valid_image())
        struct.pack_into(">H", b, 16, n)
        return bytes(b)
    return make


def img_header_only():
    return valid_image()[:100]


def img_schema_cli():
    """A schema row with malformed SQL, written with Debian's sqlite3 CLI."""
    def build(con, path):
        _base(con, path)
        con.close()
        subprocess.run(["sqlite3", path, "PRAGMA writable_schema=ON; "
                        "UPDATE sqlite_schema SET sql='CREATE TABLE loaded(' WHERE name='loaded';"],
                       check=True, capture_output=True, timeout=30)
    return _image(build)


def img_schema_rootpage():
    def build(con, path):
        _base(con, path)
        con.execute("PRAGMA writable_schema=ON")
        con.execute("UPDATE sqlite_schema SET rootpage=9999 WHERE name='loaded'")
        con.commit()
    return _image(build)


def img_schema_not_create():
    def build(con, path):
        _base(con, path)
        con.execute("PRAGMA writable_schema=ON")
        con.execute("UPDATE sqlite_schema SET sql='DROP TABLE canary' WHERE name='loaded'")
        con.commit()
    return _image(build)


CORRUPT_IMAGES = [
    ("truncated-mid-page", img_truncated_mid),
    ("first-page-only", img_first_page_only),
    ("garbage-pages", img_garbage_pages),
    ("page-size-3000", img_page_size(3000)),
    ("page-size-1024-on-4096-pages", img_page_size(1024)),
    ("header-only", img_header_only),
    ("schema-malformed-sql-cli", img_schema_cli),
    ("schema-bad-rootpage", img_schema_rootpage),
    ("schema-not-create", img_schema_not_create),
]


def deep(n, open_="[", close="]", inner=""):
    return (open_ * n + inner + close * n).encode()


def nul_10mb():
    return b'[["INSERT INTO t(v) VALUES(?)", "' + b"\\u0000" * (10 << 20) + b'"]]'


def a_10mb():
    return b'[["INSERT INTO t(v) VALUES(?)", "' + b"a" * (10 << 20) + b'"]]'


def many(stmt, n):
    def make():
        return J([stmt] * n)
    return make


def over_limit():
    return b"[" + b" " * (65 << 20) + b"]"


def raw_req(head, body=b""):
    return head.replace(b"\n", b"\r\n") + body


# ---- the corpus -----------------------------------------------------------------

def corpus():
    I = Input
    out = []
    add = out.append

    # -- SQL text holding a NUL byte: refused on every path, nothing proposed.
    nul = dict(status=400, check=nul_refused, refused=True, post="t_empty")
    add(I("nul/text-execute", "POST", "/db/execute", TEXT, b"INSERT INTO t(v) VALUES('nul-text')\x00", **nul))
    add(I("nul/text-execute-middle", "POST", "/db/execute", TEXT,
          b"INSERT INTO t(v) VALUES('a');\x00INSERT INTO t(v) VALUES('b')", **nul))
    add(I("nul/text-query", "POST", "/db/query", TEXT, b"SELECT 'nul-text'\x00", **nul))
    add(I("nul/text-request", "POST", "/db/request", TEXT, b"INSERT INTO t(v) VALUES('nul-req')\x00", **nul))
    add(I("nul/json-escaped-execute", "POST", "/db/execute", JSON,
          b'["INSERT INTO t(v) VALUES(\'x\')\\u0000"]', **nul))
    add(I("nul/json-escaped-middle", "POST", "/db/execute", JSON,
          b'["INSERT INTO t(v) VALUES(\'a\');\\u0000INSERT INTO t(v) VALUES(\'b\')"]', **nul))
    add(I("nul/json-escaped-parameterised-sql", "POST", "/db/execute", JSON,
          b'[["INSERT INTO t(v) VALUES(?)\\u0000", 1]]', **nul))
    add(I("nul/json-escaped-query", "POST", "/db/query", JSON, b'["SELECT 1\\u0000"]', **nul))
    add(I("nul/json-escaped-request", "POST", "/db/request", JSON,
          b'["INSERT INTO t(v) VALUES(1)\\u0000"]', **nul))
    add(I("nul/get-query-q-trailing", "GET", "/db/query?q=SELECT%201%00", **nul))
    add(I("nul/get-query-q-leading", "GET", "/db/query?q=%00SELECT%201", **nul))
    add(I("nul/load-sql-text", "POST", "/db/load", TEXT, b"INSERT INTO t(v) VALUES('nul-load')\x00", **nul))
    add(I("nul/load-sql-text-middle", "POST", "/db/load", TEXT,
          b"INSERT INTO t(v) VALUES('a');\x00INSERT INTO t(v) VALUES('b')", **nul))
    add(I("nul/raw-byte-outside-json-strings", "POST", "/db/execute", JSON,
          b'["INSERT INTO t(v) VALUES(3)"]\x00', status=400, check=starts("invalid JSON body"),
          refused=True, post="t_empty"))
    add(I("nul/raw-byte-inside-json-string", "POST", "/db/execute", JSON,
          b'["INSERT INTO t(v) VALUES(3)\x00"]', status=400, check=starts("invalid"), refused=True,
          post="t_empty"))
    # (own) not among the defined paths: any answer, but no split
    add(I("nul/queue-text", "POST", "/db/execute?queue", TEXT, b"INSERT INTO t(v) VALUES('nul-q')\x00"))
    add(I("nul/named-parameter-name", "POST", "/db/execute", JSON,
          b'[["INSERT INTO t(v) VALUES(:a)", {"a\\u0000": 1}]]'))
    add(I("nul/overlong-utf8-nul-text", "POST", "/db/execute", TEXT, b"INSERT INTO t(v) VALUES('\xc0\x80')"))

    # -- parameters holding NULs: stored and returned exactly, on every node.
    add(I("nulparam/positional", "POST", "/db/execute", JSON,
          b'[["INSERT INTO t(v) VALUES(?)", "a\\u0000b"]]', status=200, check=results_ok(1), post="nul_param"))
    add(I("nulparam/named", "POST", "/db/execute", JSON,
          b'[["INSERT INTO t(v) VALUES(:v)", {"v": "a\\u0000b"}]]', status=200, check=results_ok(1),
          post="nul_param"))
    add(I("nulparam/query", "POST", "/db/query", JSON, b'[["SELECT ? AS v", "a\\u0000b"]]', status=200,
          check=values([["a\x00b"]])))
    add(I("nulparam/10MB", "POST", "/db/execute", JSON, nul_10mb, status=200, check=results_ok(1),
          post="nul_10mb", heavy=True, timeout=60))
    # the same size without NULs: the bound on bytes written admits a 10 MB entry
    add(I("nulparam/10MB control without NULs", "POST", "/db/execute", JSON, a_10mb, status=200,
          check=results_ok(1), post="a_10mb", heavy=True, timeout=60))

    # -- disallowed pragmas, whatever the spelling, on every path.
    pragmas = ["PRAGMA main.query_only=1", "PRAGMA/**/query_only = 1", "PRAGMA query_only(1)",
               "-- c\nPRAGMA synchronous=OFF", "PRAGMA main.journal_mode=DELETE",
               "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA writable_schema=1", "PRAGMA locking_mode=EXCLUSIVE",
               "PRAGMA trusted_schema=1", "PRAGMA hard_heap_limit=1"]
    dis = dict(status=200, check=disallowed, taints=True)
    for p in pragmas:
        short = p.replace("\n", " ")
        add(I("pragma/execute: " + short, "POST", "/db/execute", JSON, J([p]), **dis))
        add(I("pragma/query: " + short, "POST", "/db/query", JSON, J([p]), **dis))
        add(I("pragma/request: " + short, "POST", "/db/request", JSON, J([p]), **dis))
        add(I("pragma/queue: " + short, "POST", "/db/execute?queue", JSON, J([p]), **dis))
        add(I("pragma/load-sql: " + short, "POST", "/db/load", TEXT, p.encode(), **dis))
    # more spellings of the same
    for p in ['PRAGMA "query_only"=1', "PRAGMA main.\"query_only\" = 1", "pragma QUERY_ONLY = true",
              "/* x */ PRAGMA query_only=1", "PRAGMA query_only=1;", "SELECT 1; PRAGMA query_only=1",
              "PRAGMA\nmain\n.\nquery_only\n=\n1", "PRAGMA [query_only]=1", "PRAGMA temp.journal_mode=OFF",
              "PRAGMA main.wal_autocheckpoint = 0", "PRAGMA `synchronous` = 0"]:
        add(I("pragma/spelling: " + p.replace("\n", "\\n"), "POST", "/db/execute", JSON, J([p]), **dis))
    add(I("pragma/writable_schema edit of t's schema row", "POST", "/db/execute", JSON,
          J(["PRAGMA writable_schema=1", "UPDATE sqlite_schema SET sql = 'CREATE TABLE t(' WHERE name = 't'",
             "PRAGMA writable_schema=0"]), **dis))
    add(I("pragma/get-query-q: PRAGMA main.query_only=1", "GET",
          "/db/query?q=" + urllib.parse.quote("PRAGMA main.query_only=1"), **dis))
    add(I("pragma/request-mixed: INSERT then PRAGMA main.query_only=1", "POST", "/db/request", JSON,
          J(["INSERT INTO t(v) VALUES('before pragma')", "PRAGMA main.query_only=1"]), post="t_empty", **dis))
    # reading a pragma is allowed; a string that mentions one is ordinary data
    add(I("pragma-ok/read synchronous (query)", "POST", "/db/query", JSON, J(["PRAGMA synchronous"]),
          status=200, check=columns_no_error("synchronous")))
    add(I("pragma-ok/read synchronous (request)", "POST", "/db/request", JSON, J(["PRAGMA synchronous"]),
          status=200, check=columns_no_error("synchronous")))
    add(I("pragma-ok/read query_only", "POST", "/db/query", JSON, J(["PRAGMA query_only"]),
          status=200, check=values([[0]])))
    add(I("pragma-ok/string literal insert", "POST", "/db/execute", JSON,
          J(["INSERT INTO t(v) VALUES('PRAGMA query_only=1')"]), status=200, check=results_ok(1),
          post="literal_row"))
    add(I("pragma-ok/string literal select", "POST", "/db/query", JSON, J(["SELECT 'PRAGMA synchronous=OFF'"]),
          status=200, check=values([["PRAGMA synchronous=OFF"]])))
    add(I("pragma-ok/string literal parameter", "POST", "/db/execute", JSON,
          J([["INSERT INTO t(v) VALUES(?)", "PRAGMA main.journal_mode=DELETE"]]), status=200,
          check=results_ok(1)))
    # (own) not defined
    add(I("pragma-own/comment mentions one", "POST", "/db/execute", JSON,
          J(["INSERT INTO t(v) VALUES('x') -- PRAGMA query_only=1"])))
    for p in ["PRAGMA foreign_keys=ON", "PRAGMA max_page_count=1", "PRAGMA cache_size=-1000000000",
              "PRAGMA mmap_size=2147418112", "PRAGMA schema_version=1", "PRAGMA application_id=2147483647",
              "PRAGMA user_version=42", "PRAGMA recursive_triggers=OFF", "PRAGMA ignore_check_constraints=1",
              "PRAGMA count_changes=1", "PRAGMA busy_timeout=600000", "PRAGMA secure_delete=OFF",
              "PRAGMA temp_store_directory='/nonexistent'", "PRAGMA soft_heap_limit=1", "PRAGMA page_size=512",
              "PRAGMA auto_vacuum=FULL", "PRAGMA shrink_memory", "PRAGMA optimize"]:
        add(I("pragma-own/execute: " + p, "POST", "/db/execute", JSON, J([p, "INSERT INTO t(v) VALUES(1)"]),
              taints=True))
    for p in ["PRAGMA reverse_unordered_selects=1", "PRAGMA cache_size=-1000000000", "PRAGMA foreign_keys=ON",
              "PRAGMA journal_mode", "PRAGMA table_info(t)", "PRAGMA integrity_check",
              "SELECT * FROM pragma_journal_mode('DELETE')"]:
        add(I("pragma-own/query: " + p, "POST", "/db/query", JSON, J([p]), taints=True))
    add(I("pragma-own/foreign_keys=ON inside one request", "POST", "/db/execute", JSON,
          J(["PRAGMA foreign_keys=ON", "INSERT INTO child(pid) VALUES(424242)", "PRAGMA foreign_keys=OFF"]),
          taints=True))

    # -- corrupt images: refused with a reason, nothing installed.
    for label, make in CORRUPT_IMAGES:
        add(I("image/load: " + label, "POST", "/db/load", OCTET, make, status=400, check=plain_reason,
              refused=True, taints=True))
        add(I("image/boot: " + label, "POST", "/boot", OCTET, make, status=400, check=plain_reason,
              refused=True, taints=True))
    add(I("image-own/load: header-only 16 bytes", "POST", "/db/load", OCTET, b"SQLite format 3\x00",
          taints=True))
    add(I("image-own/load: image as text/plain", "POST", "/db/load", TEXT, img_garbage_pages, taints=True))

    # -- runaway writes end with 'execute timeout'; the cluster takes writes after.
    add(I("runaway/insert recursive CTE", "POST", "/db/execute", JSON, J(["INSERT INTO t(v) " + RUNAWAY_CTE]),
          status=200, check=first_error(lambda e: e.startswith("execute timeout"), "'execute timeout...'"),
          post="t_empty"))
    add(I("runaway/insert recursive CTE ?db_timeout=50ms", "POST", "/db/execute?db_timeout=50ms", JSON,
          J(["INSERT INTO t(v) " + RUNAWAY_CTE]), status=200,
          check=first_error(lambda e: "timeout" in e, "a timeout"), post="t_empty"))
    # (own) the same on other paths and shapes: must end, any answer
    add(I("runaway-own/request", "POST", "/db/request", JSON, J(["INSERT INTO t(v) " + RUNAWAY_CTE])))
    add(I("runaway-own/transaction", "POST", "/db/execute?transaction", JSON,
          J(["INSERT INTO t(v) VALUES('before')", "INSERT INTO t(v) " + RUNAWAY_CTE])))
    add(I("runaway-own/load-sql-text", "POST", "/db/load", TEXT, ("INSERT INTO t(v) " + RUNAWAY_CTE).encode()))
    add(I("runaway-own/select on execute", "POST", "/db/execute", JSON,
          J(["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"])))
    add(I("runaway-own/delete with runaway subquery", "POST", "/db/execute", JSON,
          J(["DELETE FROM t WHERE id IN (%s)" % RUNAWAY_CTE])))
    add(I("runaway-own/trigger fan-out", "POST", "/db/execute", JSON,
          J(["CREATE TABLE IF NOT EXISTS fan (x)",
             "CREATE TRIGGER IF NOT EXISTS fan_out AFTER INSERT ON fan BEGIN "
             "INSERT INTO fan VALUES (new.x + 1); INSERT INTO fan VALUES (new.x + 1); END",
             "INSERT INTO fan VALUES (0)"])))
    add(I("runaway-own/queue", "POST", "/db/execute?queue", JSON, J(["INSERT INTO t(v) " + RUNAWAY_CTE])))

    # -- ATTACH, VACUUM INTO: never a node stop; the data directory is off limits.
    add(I("attach/self via pragma_database_list, BEGIN, write", "POST", "/db/execute", JSON,
          J(["ATTACH DATABASE (SELECT file FROM pragma_database_list WHERE name='main') AS me", "BEGIN",
             "INSERT INTO me.t(v) VALUES(2)"]), status=200, check=per_statement))
    add(I("attach/one scratch file under two names, write both in BEGIN", "POST", "/db/execute", JSON,
          J(["ATTACH DATABASE '{scratch}/hostile-twice.db' AS a1", "ATTACH DATABASE '{scratch}/hostile-twice.db' AS a2",
             "BEGIN", "CREATE TABLE IF NOT EXISTS a1.x (v)", "INSERT INTO a1.x VALUES (1)",
             "INSERT INTO a2.x VALUES (2)", "COMMIT"]), status=200, check=per_statement))
    inside = first_error(lambda e: True, "an error (a path inside the data directory)")
    for label, stmts in [
            ("vacuum into a new file in the leader's data dir", ["VACUUM INTO '{leader_dir}/hostile-vacuum.db'"]),
            ("vacuum into raft/peers.json", ["VACUUM INTO '{leader_dir}/raft/peers.json'"]),
            ("vacuum into raft/snapshot meta", ["VACUUM INTO '{leader_dir}/raft/snapshot-1-999999-1.meta'"]),
            ("vacuum into raft/../hostile-dotdot.db", ["VACUUM INTO '{leader_dir}/raft/../hostile-dotdot.db'"]),
            ("attach a new file in the leader's data dir", ["ATTACH '{leader_dir}/hostile-attach.db' AS h",
                                                            "CREATE TABLE h.x (a)"]),
            ("attach the leader's db.sqlite", ["ATTACH '{leader_dir}/db.sqlite' AS me2", "BEGIN",
                                               "INSERT INTO me2.t(v) VALUES (2)"]),
            ("attach raft/metadata1", ["ATTACH '{leader_dir}/raft/metadata1' AS m", "CREATE TABLE m.x (a)"]),
            ("attach by URI in the leader's data dir", ["ATTACH 'file:{leader_dir}/hostile-uri.db?mode=rwc' AS u",
                                                        "CREATE TABLE u.x (a)"])]:
        add(I("datadir/" + label, "POST", "/db/execute", JSON, J(stmts), status=200, check=inside, taints=True))
    # (own)
    add(I("datadir-own/vacuum into the receiving node's data dir", "POST", "/db/execute", JSON,
          J(["VACUUM INTO '{node_dir}/hostile-node-vacuum.db'"]), taints=True))
    add(I("datadir-own/attach a relative path", "POST", "/db/execute", JSON,
          J(["ATTACH 'hostile-rel.db' AS r", "CREATE TABLE IF NOT EXISTS r.x (a)"]), taints=True))
    add(I("datadir-own/vacuum into scratch", "POST", "/db/execute", JSON,
          J(["VACUUM INTO '{scratch}/hostile-scratch-%d.db'" % i for i in range(1)]), taints=True))
    add(I("datadir-own/attach :memory: and empty name", "POST", "/db/execute", JSON,
          J(["ATTACH ':memory:' AS mem", "CREATE TABLE mem.x (a)", "ATTACH '' AS tmpdb", "DETACH mem",
             "DETACH tmpdb"]), taints=True))
    add(I("datadir-own/detach main", "POST", "/db/execute", JSON, J(["DETACH main", "DETACH temp"])))
    add(I("datadir-own/eleven attachments", "POST", "/db/execute", JSON,
          J(["ATTACH ':memory:' AS m%d" % i for i in range(11)])))

    # -- freshness and db_timeout under 1 ms are not 'off'.
    for f in ("1us", "1ns", "499us"):
        add(I("fresh/level none freshness=%s" % f, "GET",
              "/db/query?level=none&freshness=%s&q=SELECT%%201" % f, status=200, check=stale,
              strict_on=("follower",)))
    add(I("fresh/level none freshness=1us freshness_strict", "GET",
          "/db/query?level=none&freshness=1us&freshness_strict&q=SELECT%201", status=200, check=stale,
          strict_on=("follower",)))
    for t in ("1us", "1ns", "499us"):
        add(I("dbtimeout/slow read db_timeout=%s" % t, "GET",
              "/db/query?db_timeout=%s&q=%s" % (t, urllib.parse.quote(SLOW_READ)), status=200,
              check=first_error(lambda e: e == "query timeout", "'query timeout'")))
    # (own)
    for q in ("level=none&freshness=-1s", "level=none&freshness=99999999999999h", "db_timeout=-5ms",
              "db_timeout=1e309s", "level=bogus", "level=none&freshness_strict", "freshness=0s&level=none"):
        add(I("params-own/" + q, "GET", "/db/query?%s&q=SELECT%%201" % q))

    # -- own: JSON shapes and values
    for label, body in [
            ("empty body", b""), ("empty array", b"[]"), ("empty string statement", b'[""]'),
            ("blank statement", b'["   "]'), ("semicolons", b'[";;;"]'), ("comment only", b'["-- c"]'),
            ("unterminated comment", b'["/*"]'), ("null statement", b"[null]"), ("empty inner array", b"[[]]"),
            ("null sql", b"[[null]]"), ("number sql", b"[[1]]"), ("object", b"{}"), ("string", b'"SELECT 1"'),
            ("number", b"42"), ("null", b"null"), ("true", b"true"), ("missing parameter", b'[["SELECT ?"]]'),
            ("extra parameter", b'[["SELECT 1", 2]]'), ("trailing garbage", b'["SELECT 1"] xyz'),
            ("two values", b'["SELECT 1"]["SELECT 2"]'), ("duplicate keys", b'[["SELECT :a", {"a": 1, "a": 2}]]'),
            ("lone surrogate", b'["SELECT \'\\ud800\'"]'), ("surrogate pair", b'["SELECT \'\\ud83d\\ude00\'"]'),
            ("invalid utf-8 in string", b'["SELECT \'\xff\xfe\'"]'), ("NaN", b'[["SELECT ?", NaN]]'),
            ("Infinity", b'[["SELECT ?", Infinity]]'), ("-Infinity", b'[["SELECT ?", -Infinity]]'),
            ("huge integer", b'[["SELECT ?", 123456789012345678901234567890]]'),
            ("uint64 max", b'[["SELECT ?", 18446744073709551615]]'), ("real overflow", b'[["SELECT ?", 1e309]]'),
            ("real underflow", b'[["SELECT ?", 1e-400]]'), ("BOM", b'\xef\xbb\xbf["SELECT 1"]'),
            ("UTF-16", '["SELECT 1"]'.encode("utf-16")), ("unbalanced deep", b"[" * 100000),
            ("deep array", deep(100000)), ("deep parameter", b'[["SELECT ?", ' + deep(100000) + b"]]"),
            ("deep object parameter", b'[["SELECT :a", {"a": ' + deep(50000, '{"a":', "}", "1") + b"}]]"),
            ("object positional parameter", b'[["SELECT ?", {"a": 1}]]'),
            ("array of objects", b'[{"sql": "SELECT 1"}]')]:
        add(I("json/execute: " + label, "POST", "/db/execute", JSON, body))
        if label in ("empty body", "empty array", "null sql", "trailing garbage", "lone surrogate",
                     "invalid utf-8 in string", "NaN", "huge integer", "deep array", "deep parameter", "BOM"):
            add(I("json/query: " + label, "POST", "/db/query", JSON, body))
    # values that must replicate identically (the dump comparison checks)
    for label, stmt in [
            ("int64 edges", [["INSERT INTO t(v) VALUES(?), (?)", 9223372036854775807, -9223372036854775808]]),
            ("reals", [["INSERT INTO t(v) VALUES(?), (?), (?), (?), (?)", 1.7976931348623157e308, 5e-324, -0.0,
                        0.1, 3.141592653589793]]),
            ("exponent integer", None), ("bools and null", [["INSERT INTO t(v) VALUES(?), (?), (?)", True, False,
                                                             None]]),
            ("blob as byte array", [["INSERT INTO t(v) VALUES(?)", [0, 1, 2, 255]]]),
            ("empty byte array", [["INSERT INTO t(v) VALUES(?)", []]]),
            ("byte array out of range", [["INSERT INTO t(v) VALUES(?)", [256, -1]]]),
            ("byte array of mixed types", [["INSERT INTO t(v) VALUES(?)", [1, "a", 1.5]]]),
            ("large byte array", [["INSERT INTO t(v) VALUES(?)", [7] * 100000]]),
            ("string that looks like hex", [["INSERT INTO t(v) VALUES(?)", "x'00ff'"]]),
            ("hex literal", ["INSERT INTO t(v) VALUES(x'00ff10')"]),
            ("odd hex literal", ["INSERT INTO t(v) VALUES(x'0')"]),
            ("bad hex literal", ["INSERT INTO t(v) VALUES(X'ZZ')"]),
            ("unicode separators", ["INSERT INTO t(v) VALUES('\u2028\u2029\ufeff\u0085\U0001F600')"]),
            ("named :a $a @a", [["INSERT INTO t(v) VALUES(:a), ($b), (@c)", {"a": 1, "b": 2, "c": 3}]]),
            ("named with prefixes in keys", [["INSERT INTO t(v) VALUES(:a)", {":a": 1}]]),
            ("named with a space", [["INSERT INTO t(v) VALUES(:a)", {"a b": 1}]]),
            ("named empty", [["INSERT INTO t(v) VALUES(:a)", {"": 1}]]),
            ("named non-ascii", [["INSERT INTO t(v) VALUES(:\u00e9)", {"\u00e9": 1}]]),
            ("named 10k chars", [["INSERT INTO t(v) VALUES(:%s)" % ("n" * 10000), {"n" * 10000: 1}]]),
            ("numbered ?1 ?2 ?1", [["INSERT INTO t(v) VALUES(?1), (?2), (?1)", 1, 2]]),
            ("?0", [["INSERT INTO t(v) VALUES(?0)", 1]]), ("?999999", [["INSERT INTO t(v) VALUES(?999999)", 1]]),
            ("too many parameters", [["INSERT INTO t(v) VALUES(?)"] + list(range(1000))]),
            ("100k parameters", [["SELECT 1 WHERE 0 IN (" + ",".join(["?"] * 100000) + ")"] + [1] * 100000]),
            ("1e999 and overflow", ["INSERT INTO t(v) VALUES(1e999), (-1e999), (9223372036854775807 + 1)"]),
            ("changes() total_changes() last_insert_rowid()",
             ["INSERT INTO t(v) VALUES(changes())", "INSERT INTO t(v) VALUES(total_changes())",
              "INSERT INTO t(v) VALUES(last_insert_rowid())"]),
            ("random and time", ["INSERT INTO t(v) VALUES(random()), (randomblob(8)), (datetime('now')), "
                                 "(julianday('now')), (strftime('%f', 'now')), (unixepoch())"]),
            ("sqlite_version", ["INSERT INTO t(v) VALUES(sqlite_version()), (sqlite_source_id())"]),
            ("zeroblob 1e9", ["INSERT INTO t(v) VALUES(zeroblob(1000000000))"]),
            ("randomblob 1e6", ["INSERT INTO t(v) VALUES(randomblob(1000000))"])]:
        if stmt is None:
            body = b'[["INSERT INTO t(v) VALUES(?)", 1E2]]'
        else:
            body = J(stmt)
        add(I("values/" + label, "POST", "/db/execute", JSON, body))
    for label, q in [("1e999", "SELECT 1e999, -1e999"), ("abs(min int)", "SELECT abs(-9223372036854775808)"),
                     ("blob parameter", None), ("zeroblob", "SELECT zeroblob(16), x'00ff'"),
                     ("deep SQLite json", "SELECT json('%s')" % ("[" * 3000 + "]" * 3000)),
                     ("deep parentheses", "SELECT " + "(" * 5000 + "1" + ")" * 5000),
                     ("long plus chain", "SELECT " + "+".join(["1"] * 100000)),
                     ("long IN list", "SELECT 1 IN (" + ",".join(str(i) for i in range(100000)) + ")"),
                     ("long identifier", "SELECT 1 AS " + "a" * 100000),
                     ("compound select 1000", " UNION ALL ".join(["SELECT 1"] * 1000)),
                     ("load_extension", "SELECT load_extension('x')"),
                     ("load_extension libc", "SELECT load_extension('libc.so.6')"),
                     ("fts3_tokenizer pointer read", "SELECT hex(fts3_tokenizer('simple'))"),
                     ("fts3 match", "SELECT * FROM fts_hostile WHERE fts_hostile MATCH 'hello'"),
                     ("readfile", "SELECT readfile('/etc/passwd')"),
                     ("regexp", "SELECT 'a' REGEXP 'a'"),
                     ("write on query", "INSERT INTO t(v) VALUES('via query')")]:
        if q is None:
            body = J([["SELECT ?", [0, 255, 7]]])
        else:
            body = J([q])
        add(I("sql-own/query: " + label, "POST", "/db/query", JSON, body))
    add(I("sql-own/randomblob 1e9 on query", "POST", "/db/query", JSON,
          J(["SELECT length(randomblob(1000000000))"]), heavy=True, timeout=60))
    add(I("sql-own/zeroblob 1e8 returned", "POST", "/db/query", JSON, J(["SELECT zeroblob(100000000)"]),
          heavy=True, stream=True, timeout=120))
    add(I("sql-own/fts3_tokenizer pointer write then fts3 table (execute)", "POST", "/db/execute", JSON,
          J(["SELECT fts3_tokenizer('simple', x'4141414141414141')",
             "CREATE VIRTUAL TABLE IF NOT EXISTS hostile_fts USING fts3(a, tokenize=simple)",
             "INSERT INTO hostile_fts VALUES ('x')"]), taints=True))
    add(I("sql-own/fts3_tokenizer pointer write then match (query)", "POST", "/db/query", JSON,
          J(["SELECT fts3_tokenizer('simple', x'4141414141414141')",
             "SELECT * FROM fts_hostile WHERE fts_hostile MATCH 'hello'"]), taints=True))
    for label, stmts in [
            ("load_extension on execute", ["SELECT load_extension('x')"]),
            ("open transaction left open", ["BEGIN", "INSERT INTO t(v) VALUES('open-tx')"]),
            ("savepoint left open", ["SAVEPOINT s1", "INSERT INTO t(v) VALUES('open-sp')"]),
            ("commit alone", ["COMMIT"]), ("rollback alone", ["ROLLBACK"]), ("release unknown", ["RELEASE nope"]),
            ("begin exclusive", ["BEGIN EXCLUSIVE", "INSERT INTO t(v) VALUES(1)", "END"]),
            ("temp table and temp trigger", ["CREATE TABLE IF NOT EXISTS trig_src (x)",
                                             "CREATE TABLE IF NOT EXISTS trig_dst (x)",
                                             "CREATE TEMP TRIGGER IF NOT EXISTS hostile_tt AFTER INSERT ON trig_src "
                                             "BEGIN INSERT INTO trig_dst VALUES (new.x); END",
                                             "INSERT INTO trig_src VALUES (1)", "CREATE TEMP TABLE tt (x)"]),
            ("trigger with random()", ["CREATE TABLE IF NOT EXISTS rnd_src (x)", "CREATE TABLE IF NOT EXISTS rnd_dst (x)",
                                      "CREATE TRIGGER IF NOT EXISTS rnd_tr AFTER INSERT ON rnd_src BEGIN "
                                      "INSERT INTO rnd_dst VALUES (random()); END", "INSERT INTO rnd_src VALUES (1)"]),
            ("self-recursive trigger", ["CREATE TABLE IF NOT EXISTS rec (x)",
                                        "CREATE TRIGGER IF NOT EXISTS rec_tr AFTER INSERT ON rec BEGIN "
                                        "INSERT INTO rec VALUES (new.x + 1); END", "INSERT INTO rec VALUES (0)"]),
            ("trigger raising", ["CREATE TABLE IF NOT EXISTS rz (x)", "CREATE TRIGGER IF NOT EXISTS rz_tr BEFORE "
                                 "INSERT ON rz BEGIN SELECT RAISE(ABORT, 'no'); END", "INSERT INTO rz VALUES (1)"]),
            ("vacuum", ["VACUUM"]), ("reindex analyze", ["REINDEX", "ANALYZE"]),
            ("fts5 and rtree", ["CREATE VIRTUAL TABLE IF NOT EXISTS f5 USING fts5(a)", "INSERT INTO f5 VALUES ('x')",
                                "CREATE VIRTUAL TABLE IF NOT EXISTS rt USING rtree(id, a, b)"]),
            ("dbstat", ["CREATE VIRTUAL TABLE IF NOT EXISTS temp.ds USING dbstat", "SELECT count(*) FROM temp.ds"]),
            ("alter rename to sqlite_", ["CREATE TABLE IF NOT EXISTS ren (x)", "ALTER TABLE ren RENAME TO sqlite_ren"]),
            ("create table named like shadow", ["CREATE TABLE IF NOT EXISTS fts_hostile_content2 (x)"]),
            ("quoted odd names", ['CREATE TABLE IF NOT EXISTS "odd""name; DROP TABLE t;--" ("c""1" INT)',
                                  'INSERT INTO "odd""name; DROP TABLE t;--" VALUES (1)']),
            ("insert into sqlite_schema", ["INSERT INTO sqlite_schema VALUES('table','x','x',0,'CREATE TABLE x(')"]),
            ("update sqlite_schema", ["UPDATE sqlite_schema SET sql = 'CREATE TABLE t(' WHERE name = 't'"]),
            ("long string literal", ["INSERT INTO t(v) VALUES('%s')" % ("q" * 1000000)]),
            ("1000 statements in ?transaction", None)]:
        path = "/db/execute"
        if stmts is None:
            stmts, path = ["INSERT INTO t(v) VALUES(%d)" % i for i in range(1000)], "/db/execute?transaction"
        add(I("sql-own/execute: " + label, "POST", path, JSON, J(stmts), taints=True))
    add(I("sql-own/nested BEGIN in ?transaction", "POST", "/db/execute?transaction", JSON,
          J(["BEGIN", "INSERT INTO t(v) VALUES(1)", "COMMIT"])))
    add(I("sql-own/100k statements (execute)", "POST", "/db/execute", JSON,
          many("INSERT INTO t(v) VALUES(1)", 100000), heavy=True, timeout=120))
    add(I("sql-own/100k statements (query)", "POST", "/db/query", JSON, many("SELECT 1", 100000), heavy=True,
          timeout=120))
    add(I("sql-own/10 MB string literal (query)", "POST", "/db/query", JSON,
          lambda: J(["SELECT length('%s')" % ("a" * (10 << 20))]), heavy=True, timeout=60))
    # A result of gigabytes (1,000 rows of 10 MB): cut at -db-max-result-size
    # instead of growing the response until the node runs out of memory.
    big = ("SELECT randomblob(10000000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
           "LIMIT 1000) SELECT x FROM c)")
    add(I("sql-own/gigabytes of result (query)", "POST", "/db/query", JSON, J([big]), status=200,
          check=first_error(lambda e: e.startswith("result too large"), "'result too large...'"), heavy=True,
          timeout=120))
    add(I("sql-own/gigabytes of result (request, write path)", "POST", "/db/request", JSON,
          J(["INSERT INTO t(v) VALUES ('x') RETURNING randomblob(10000000), v", big]), status=200, heavy=True,
          timeout=120))

    # -- own: content types
    for label, headers, body in [
            ("form-urlencoded", {"Content-Type": "application/x-www-form-urlencoded"}, b"q=SELECT+1"),
            ("multipart", {"Content-Type": "multipart/form-data; boundary=xx"},
             b'--xx\r\nContent-Disposition: form-data; name="q"\r\n\r\nSELECT 1\r\n--xx--\r\n'),
            ("no content type, JSON body", {}, b'["INSERT INTO t(v) VALUES(1)"]'),
            ("text/plain with a JSON array", TEXT, b'["INSERT INTO t(v) VALUES(1)"]'),
            ("text/plain prefix", {"Content-Type": "text/plainly"}, b"INSERT INTO t(v) VALUES(1)"),
            ("octet-stream JSON", OCTET, b'["INSERT INTO t(v) VALUES(1)"]'),
            ("latin-1 text", {"Content-Type": "text/plain; charset=latin-1"}, b"INSERT INTO t(v) VALUES('\xe9')"),
            ("invalid utf-8 text", TEXT, b"INSERT INTO t(v) VALUES('\xff\xfe')"),
            ("empty text", TEXT, b""),
            ("JSON content type with charset", {"Content-Type": "application/json; charset=utf-16"},
             b'["INSERT INTO t(v) VALUES(1)"]')]:
        add(I("ctype/execute: " + label, "POST", "/db/execute", headers, body))
    add(I("ctype/query text/plain multi-statement", "POST", "/db/query", TEXT, b"SELECT 1; SELECT 2"))
    add(I("ctype/get query q invalid utf-8", "GET", "/db/query?q=SELECT%20%27%ff%27"))
    add(I("ctype/get query bad percent", "GET", "/db/query?q=SELECT%201%"))
    add(I("ctype/get query empty q", "GET", "/db/query?q="))

    # -- own: paths, methods, other endpoints
    for method, path in [("GET", "/db/execute"), ("PUT", "/db/query"), ("DELETE", "/db/load"),
                         ("PATCH", "/status"), ("HEAD", "/db/query?q=SELECT%201"), ("OPTIONS", "/db/execute"),
                         ("TRACE", "/"), ("GET", "/nope"), ("GET", "/db/"), ("GET", "/db"),
                         ("GET", "/db/execute/../../status"), ("POST", "//db/execute"), ("GET", "/%00"),
                         ("GET", "/db/query%00?q=SELECT%201"), ("POST", "/db/executex"),
                         ("GET", "/db/query?" + "&".join("a%d=%d" % (i, i) for i in range(10000))),
                         ("GET", "/status?key=" + ".".join(["a"] * 5000)), ("GET", "/nodes?ver=999"),
                         ("GET", "/readyz?sync&timeout=bogus"), ("GET", "/readyz?sync&timeout=1ns"),
                         ("GET", "/db/backup?fmt=bogus&noleader"), ("GET", "/db/backup?fmt=sql&tables=" + "x," * 5000),
                         ("GET", "/db/backup?fmt=sql&tables=t%27;DROP%20TABLE%20t;--"),
                         ("GET", "/debug/vars?key=%00"), ("POST", "/snapshot?trailing_logs=abc"),
                         ("POST", "/snapshot?trailing_logs=-1"), ("GET", "/" + "x" * 100000),
                         ("GET", "/nodes?timeout=1ns"), ("GET", "/nodes?timeout=-5s"), ("GET", "/leader?timeout=1ns"),
                         ("GET", "/db/query?linearizable_timeout=1ns&level=linearizable&q=SELECT%201"),
                         ("GET", "/db/query?linearizable_timeout=-1s&level=linearizable&q=SELECT%201"),
                         ("GET", "/db/sql?q=" + "(" * 5000 + "1" + ")" * 5000), ("GET", "/db/sql?q=%00"),
                         ("GET", "/db/sql?q=ATTACH%20%27%2Fetc%2Fpasswd%27%20AS%20x"), ("POST", "/reap"),
                         ("GET", "/reap"), ("GET", "/debug/pprof/../../status"), ("GET", "/debug/pprof/%00"),
                         ("PUT", "/debug/pprof/cmdline"), ("GET", "/licenses?pretty")]:
        add(I("http/%s %s" % (method, path[:60]), method, path))
    for body in (b"{garbage", b"[]", J(["SELECT 1\u0000"]), J([["SELECT ?", {"a": [1, 2]}]]),
                 J(["SELECT " + "1+" * 100000 + "1"])):
        add(I("http/POST /db/sql %r" % body[:20], "POST", "/db/sql", JSON, body))
    for path, body in [("/join", b"{garbage"), ("/join", b'{"id": "", "addr": ""}'), ("/join", b"[1,2]"),
                       ("/notify", b"{garbage"), ("/notify", b'{"id": 5}')]:
        add(I("http/POST %s %r" % (path, body[:20]), "POST", path, JSON, body))
    add(I("http/DELETE /remove garbage", "DELETE", "/remove", JSON, b"{garbage"))
    add(I("http/DELETE /remove non-string id", "DELETE", "/remove", JSON, b'{"id": 5}'))
    add(I("http/POST /leader invalid JSON", "POST", "/leader", JSON, b"{garbage"))
    add(I("http/POST /db/execute?queue&wait&timeout=1ns", "POST", "/db/execute?queue&wait&timeout=1ns", JSON,
          J(["INSERT INTO t(v) VALUES(1)"])))
    add(I("http/POST /db/execute?queue empty array", "POST", "/db/execute?queue", JSON, b"[]"))
    add(I("http/body over the limit", "POST", "/db/execute", JSON, over_limit, status=413, may_close=True,
          heavy=True, timeout=120))

    # -- own: raw bytes on a socket
    for label, data in [
            ("garbage", b"\x00\x01\x02 garbage\r\n\r\n"),
            ("HTTP/0.9", b"GET /status\r\n\r\n"),
            ("HTTP/1.1 without Host", b"GET /status HTTP/1.1\r\n\r\n"),
            ("negative Content-Length", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nContent-Length: -1\n\n")),
            ("huge Content-Length", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nContent-Length: "
                                            b"99999999999999999999\n\n", b'["SELECT 1"]')),
            ("short body", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                                   b"Content-Length: 1000\n\n", b'["SELECT 1"]')),
            ("bad chunk size", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
                                       b"ZZZ\r\nabc\r\n0\r\n\r\n")),
            ("huge chunk size", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
                                        b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n")),
            ("Content-Length and chunked", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nContent-Length: 4\n"
                                                   b"Transfer-Encoding: chunked\n\n",
                                                   b'e\r\n["SELECT 1"]  \r\n0\r\n\r\n')),
            ("header bomb", b"GET /status HTTP/1.1\r\nHost: x\r\n" + b"".join(
                b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(1000)) + b"\r\n"),
            ("long header line", b"GET /status HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 200000 + b"\r\n\r\n"),
            ("pipelined", b"GET /status HTTP/1.1\r\nHost: x\r\n\r\nGET /db/query?q=SELECT%201 HTTP/1.1\r\n"
                          b"Host: x\r\nConnection: close\r\n\r\n"),
            ("Expect 100-continue", raw_req(b"POST /db/execute HTTP/1.1\nHost: x\nExpect: 100-continue\n"
                                            b"Content-Type: application/json\nContent-Length: 12\n"
                                            b"Connection: close\n\n", b'["SELECT 1"]')),
            ("NUL in request line", b"GET /db/query?q=SELECT\x001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            ("bare LF", b"GET /status HTTP/1.1\nHost: x\nConnection: close\n\n")]:
        add(I("raw/" + label, "RAW", "", None, data, raw=True, timeout=10))
    return out


# ---- Authorization headers ---------------------------------------------------------

# The credentials file of tests/hostile/test_hostile_auth.py: an admin, a
# user whose password is a bcrypt hash (of "s3cret"), and "*" with a
# permission no input needs.
BCRYPT = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"
AUTH_FILE = [{"username": "admin", "password": "adminpw", "perms": ["all"]},
             {"username": "hashed", "password": BCRYPT, "perms": ["all"]},
             {"username": "*", "perms": ["ui"]}]


def _basic(raw):
    import base64
    return "Basic " + base64.b64encode(raw).decode()


def empty_refusal(a):
    if a.body:
        return "expected an empty body, got %s" % a.brief()
    return None


def not_admitted(a):
    """A request the server may refuse as malformed or close, but never serve."""
    if a.status is not None and a.status not in (400, 401, 413, 431):
        return "expected a refusal (401, or 400/413/431 for the request itself), got %s" % a.brief()
    return None


def authz_corpus(auth_on):
    """Hostile and malformed Authorization headers, names "authz/...". With
    -auth (AUTH_FILE) none of them may get in: 401 with an empty body, or
    a refusal of the malformed request itself. Without -auth the header is
    no one's business: the endpoint answers as it would without it."""
    I = Input
    out = []
    good = b"admin:adminpw"
    values = [
        ("empty", ""), ("scheme only", "Basic"), ("scheme and space", "Basic "), ("padding only", "Basic ===="),
        ("not base64", "Basic !!!!"), ("base64url", "Basic " + _basic(good)[6:].replace("=", "").replace("/", "_")),
        ("unpadded", _basic(good).rstrip("=")), ("extra padding", _basic(good) + "="),
        ("truncated", _basic(good)[:-2]), ("two schemes", _basic(good) + " " + _basic(good)),
        ("no colon", _basic(b"adminadminpw")), ("empty user", _basic(b":adminpw")), ("empty both", _basic(b":")),
        ("NUL after the password", _basic(good + b"\x00")), ("NUL in the user", _basic(b"adm\x00in:adminpw")),
        ("NUL before the colon", _basic(b"admin\x00:adminpw")),
        ("password prefix", _basic(b"admin:adminp")), ("password longer", _basic(b"admin:adminpwX")),
        ("password invalid UTF-8", _basic(b"admin:adminpw\xff")), ("long password", _basic(b"admin:" + b"x" * 6000)),
        ("at the length limit", "Basic " + "A" * 8186), ("past the length limit", "Basic " + "A" * 9000),
        ("bcrypt hash as the password", _basic(b"hashed:" + BCRYPT.encode())),
        ("bcrypt hash, one byte off", _basic(b"hashed:" + BCRYPT[:-1].encode())),
        ("bcrypt password, 72 bytes and more", _basic(b"hashed:s3cret" + b"x" * 100)),
        ("Bearer", "Bearer " + _basic(good)[6:]), ("Digest", 'Digest username="admin", response="x"'),
        ("latin-1 bytes", "Basic \xe9\xe9\xe9\xe9"),
    ]
    for label, value in values:
        for method, path, body in (("GET", "/status", b""), ("POST", "/db/execute", J(["SELECT 1"]))):
            headers = dict(JSON, Authorization=value.encode("latin-1"))
            if auth_on:
                out.append(I("authz/%s (%s %s)" % (label, method, path), method, path, headers, body, status=401,
                             check=empty_refusal))
            else:
                out.append(I("authz/%s (%s %s)" % (label, method, path), method, path, headers, body, status=200))
    good_b64 = _basic(good).encode()
    for label, head in [
            ("NUL in the header value", b"Authorization: Basic YWRt\x00aW46YWRtaW5wdw==\n"),
            ("CR in the header value", b"Authorization: Basic YWRt\raW46YWRtaW5wdw==\n"),
            ("a bad one first, a good one second", b"Authorization: Basic !!!!\nAuthorization: " + good_b64 + b"\n"),
            ("empty first, a good one second", b"Authorization:\nAuthorization: " + good_b64 + b"\n"),
            ("a thousand of them", b"".join(b"Authorization: Basic %d\n" % i for i in range(1000))),
            ("100 KB", b"Authorization: Basic " + b"A" * 100000 + b"\n"),
            ("name with a space", b"Authorization : " + good_b64 + b"\n"),
            ("a folded line", b"Authorization: Basic\n " + good_b64[6:] + b"\n")]:
        data = raw_req(b"GET /status HTTP/1.1\nHost: x\n" + head + b"Connection: close\n\n")
        if auth_on:
            check = not_admitted
            if label == "a folded line":
                check = None  # obs-fold: a server may join the lines (RFC 9112 5.2)
            out.append(I("authz/raw: " + label, "RAW", "", None, data, raw=True, timeout=10, check=check))
        else:
            out.append(I("authz/raw: " + label, "RAW", "", None, data, raw=True, timeout=10))
    return out


INPUTS = corpus() + authz_corpus(False)
AUTH_INPUTS = authz_corpus(True)
BY_NAME = {i.name: i for i in INPUTS}
assert len(BY_NAME) == len(INPUTS), "duplicate input names"


def for_chaos():
    """The inputs the chaos client may send: not heavy."""
    return [i for i in INPUTS if not i.heavy]
