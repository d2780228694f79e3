"""HTTPS on the API (-http-cert, -http-key, -http-ca-cert, -http-verify-client,
-http-verify-common-name): TLS 1.2 or later, plain HTTP answered with an error
only, clusters that join and forward over https://, mutual TLS, and
certificates replaced on disk served without a restart.

Certificates are made here with the openssl command: a CA, a rogue CA, server
certificates for 127.0.0.1 (IP SAN), client certificates."""
import os
import socket
import ssl
import subprocess
import warnings

import pytest
import requests

from harness import FAST, RQLITE, RQLITED, free_port, leader_of, poll, wait_members


class PKI:
    """Keys and certificates under dir, made with the openssl command (EC
    P-256 keys: quick to make)."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=60)

    def _key(self, name):
        self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", self.path(name + ".key"))

    def ca(self, name, cn):
        self._key(name)
        self._run("req", "-x509", "-new", "-key", self.path(name + ".key"), "-out", self.path(name + ".pem"),
                  "-days", "2", "-subj", "/CN=" + cn,
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        return self.path(name + ".pem")

    def cert(self, name, cn, ca="ca", server=True, client=False):
        """name.pem and name.key, signed by ca; returns (cert, key)."""
        self._key(name)
        self._run("req", "-new", "-key", self.path(name + ".key"), "-out", self.path(name + ".csr"),
                  "-subj", "/CN=" + cn)
        ext = []
        if server:
            ext.append("subjectAltName=IP:127.0.0.1,DNS:localhost")
        ext.append("extendedKeyUsage=" + ",".join(
            (["serverAuth"] if server else []) + (["clientAuth"] if client else [])))
        with open(self.path(name + ".ext"), "w") as f:
            f.write("\n".join(ext) + "\n")
        self._run("x509", "-req", "-in", self.path(name + ".csr"), "-CA", self.path(ca + ".pem"),
                  "-CAkey", self.path(ca + ".key"), "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                  "-days", "2", "-extfile", self.path(name + ".ext"), "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), self.path(name + ".key")


@pytest.fixture
def pki(tmp_path):
    p = PKI(str(tmp_path / "pki"))
    p.ca("ca", "rqlite test CA")
    p.ca("rogue", "rogue CA")
    return p


def https_node(cluster, node_id, cert, key, extra=(), tls=None):
    """A node of cluster serving HTTPS with cert and key (not started)."""
    n = cluster.node(node_id, ["-http-cert", cert, "-http-key", key] + list(extra))
    n.scheme = "https"
    n.tls = dict(tls or {})
    return n


def served_cert(port, ca, client=None):
    """The DER of the certificate the node on port serves, verified against ca."""
    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_https_serves_and_refuses_plain_http(cluster, pki):
    cert, key = pki.cert("node1", "node1")
    ca = pki.path("ca.pem")
    n = https_node(cluster, 1, cert, key, tls={"verify": ca}).start().wait_ready()
    assert n.url.startswith("https://")

    st = n.status()
    assert st["cluster"]["api_addr"] == "https://" + n.http_addr
    assert st["cluster"]["https"] is True
    tls = st["http"]["tls"]
    assert tls["enabled"] == "true" and tls["client_auth"] == "NoClientCert"
    assert tls["cert_file"] == cert and tls["key_file"] == key
    assert "http/1.1" in tls["next_protos"]
    assert "node HTTP API available at https://%s" % n.http_addr in n.logs()
    assert "secure HTTPS server enabled with cert %s, key %s, mutual TLS disabled" % (cert, key) in n.logs()

    n.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES('x')"])
    assert n.query("SELECT v FROM t")["results"][0]["values"] == [["x"]]
    assert n.nodes()[0]["api_addr"] == "https://" + n.http_addr

    # Not trusted without the CA (the system's roots do not know it).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(n.url + "/status", timeout=5)

    # Plain HTTP on the HTTPS port: Go's error, then the close; no data.
    r = requests.get("http://%s/db/query?q=SELECT+v+FROM+t" % n.http_addr, timeout=5)
    assert r.status_code == 400
    assert r.text == "Client sent an HTTP request to an HTTPS server.\n"
    assert "X-RQLITE-VERSION" not in r.headers
    # Bytes that are neither TLS nor HTTP: closed without a word.
    with socket.create_connection(("127.0.0.1", n.http_port), timeout=5) as s:
        s.sendall(b"\x00\x01\x02\x03garbage\r\n\r\n")
        assert s.recv(100) == b""
    # The node still serves.
    assert n.ready()


def test_tls_1_1_refused(cluster, pki):
    cert, key = pki.cert("node1", "node1")
    ca = pki.path("ca.pem")
    n = https_node(cluster, 1, cert, key, tls={"verify": ca}).start().wait_ready()

    def handshake(version):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this OpenSSL offer TLS 1.1 at all
            ctx.minimum_version = version
            ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", n.http_port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                return t.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    try:
        got = handshake(ssl.TLSVersion.TLSv1_1)
    except (ssl.SSLError, ConnectionError, OSError) as e:
        if "NO_PROTOCOLS_AVAILABLE" in str(e) or "no protocols available" in str(e):
            pytest.skip("this OpenSSL will not offer TLS 1.1: %s" % e)
        return  # refused by the node
    pytest.fail("the node accepted %s" % got)


def test_https_cluster_joins_and_forwards(cluster, pki):
    """Three nodes, each with a certificate of its own from one CA: node 2
    joins with node 1's https:// URL, node 3 with its http:// URL (a 400,
    then https://, as rqlite v6 does). A follower forwards writes to the
    leader, or answers 301 with the leader's https:// URL."""
    ca = pki.path("ca.pem")
    nodes = []
    for i in (1, 2, 3):
        cert, key = pki.cert("node%d" % i, "node%d" % i)
        nodes.append(https_node(cluster, i, cert, key, ["-http-ca-cert", ca], tls={"verify": ca}))
    n1, n2, n3 = nodes
    n1.start().wait_ready()
    n2.start(join=n1.url)
    n3.start(join="http://" + n1.http_addr)
    for n in (n2, n3):
        n.wait_ready()
    wait_members(n1, 3)
    assert "join via HTTP failed, trying via HTTPS" in n3.logs()

    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    for n in nodes:
        api = {x["id"]: x["api_addr"] for x in n.nodes()}
        assert api == {m.id: "https://" + m.http_addr for m in nodes}, api
        assert n.status()["cluster"]["api_addr"] == "https://" + n.http_addr

    follower.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"])
    r = follower.execute([["INSERT INTO t(v) VALUES(?)", "via follower"]])
    assert r["results"][0]["rows_affected"] == 1, r
    r = requests.post(follower.url + "/db/execute?redirect", json=["INSERT INTO t(v) VALUES('y')"],
                      allow_redirects=False, timeout=10, **follower.tls)
    assert r.status_code == 301
    assert r.headers["Location"] == "https://%s/db/execute?redirect" % leader.http_addr
    assert leader.query("SELECT v FROM t", level="strong")["results"][0]["values"] == [["via follower"]]
    # Strong reads on a follower go to the leader too.
    assert follower.query("SELECT COUNT(*) FROM t", level="strong")["results"][0]["values"] == [[1]]


def test_https_bootstrap_expect(cluster, pki):
    """-bootstrap-expect over HTTPS, the -join list naming the nodes in each
    form: a bare API address (taken as https://, what this node speaks), an
    https:// URL, and a Raft address (whose node answers with its https://
    API address)."""
    ca = pki.path("ca.pem")
    nodes = []
    for i in (1, 2, 3):
        cert, key = pki.cert("node%d" % i, "node%d" % i)
        nodes.append(https_node(cluster, i, cert, key, ["-http-ca-cert", ca, "-bootstrap-expect", "3"],
                                tls={"verify": ca}))
    joins = ",".join([nodes[0].http_addr, nodes[1].url, nodes[2].raft_addr])
    for n in nodes:
        n.start(join=joins)
    for n in nodes:
        n.wait_ready()
    leader = leader_of(nodes)
    wait_members(leader, 3)
    assert any("bootstrapped a cluster of 3 nodes" in n.logs() for n in nodes)
    api = {x["id"]: x["api_addr"] for x in leader.nodes()}
    assert api == {m.id: "https://" + m.http_addr for m in nodes}, api
    leader.execute(["CREATE TABLE b (v)", "INSERT INTO b VALUES (1)"])
    for n in nodes:
        poll(lambda: n.count("b") == 1, what="row on node %s" % n.id)


def test_mutual_tls(cluster, pki):
    ca = pki.path("ca.pem")
    cert, key = pki.cert("node1", "node1")
    good = pki.cert("client", "client", server=False, client=True)
    other_cn = pki.cert("other", "someone else", server=False, client=True)
    rogue = pki.cert("rogue-client", "client", ca="rogue", server=False, client=True)
    server_only = pki.cert("server-only", "client", server=True, client=False)
    n = https_node(cluster, 1, cert, key, ["-http-ca-cert", ca, "-http-verify-client"],
                   tls={"verify": ca, "cert": good}).start().wait_ready()
    assert n.status()["http"]["tls"]["client_auth"] == "RequireAndVerifyClientCert"
    assert "mutual TLS enabled" in n.logs()

    def get(client):
        kw = {"verify": ca, "timeout": 5}
        if client:
            kw["cert"] = client
        return requests.get(n.url + "/status", **kw)

    assert get(good).status_code == 200
    assert get(other_cn).status_code == 200  # no CN asked for
    for refused in (None, rogue, server_only):
        with pytest.raises(requests.exceptions.ConnectionError):
            get(refused)
    assert "refused a client certificate" in n.logs()
    assert get(good).status_code == 200


def test_shell_over_mutual_tls_with_credentials(cluster, pki, tmp_path):
    """The shell against a node with HTTPS, mutual TLS and -auth: -s https,
    -c (CA), -d/-k (client certificate) and -u together write and read;
    without the client certificate it connects to nothing, and with a
    wrong password it is told it is unauthorized."""
    ca = pki.path("ca.pem")
    cert, key = pki.cert("node1", "node1")
    client = pki.cert("client", "client", server=False, client=True)
    auth = tmp_path / "auth.json"
    auth.write_text('[{"username": "admin", "password": "pw", "perms": ["all"]}]')
    n = https_node(cluster, 1, cert, key, ["-http-ca-cert", ca, "-http-verify-client", "-auth", str(auth)],
                   tls={"verify": ca, "cert": client, "auth": ("admin", "pw")}).start().wait_ready()

    def shell(lines, *flags):
        p = subprocess.run([RQLITE, "-H", "127.0.0.1", "-p", str(n.http_port), "-s", "https", "-c", ca] +
                           list(flags), input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
        return p.stdout + p.stderr

    mtls = ["-d", client[0], "-k", client[1]]
    out = shell(["CREATE TABLE t (v TEXT);", "INSERT INTO t VALUES ('over tls');", "SELECT * FROM t;"],
                *(mtls + ["-u", "admin:pw"]))
    assert "Connected to https://127.0.0.1:%d" % n.http_port in out, out
    assert "1 row affected" in out and "| over tls |" in out, out
    out = shell(["SELECT * FROM t;"], "-u", "admin:pw")
    assert "Welcome" not in out and "ERR! " in out and "over tls" not in out, out
    out = shell(["SELECT * FROM t;", ".backup %s" % (tmp_path / "b.sqlite")], *(mtls + ["-u", "admin:wrong"]))
    assert "ERR! server responded with 401 Unauthorized" in out and "ERR! unauthorized" in out, out
    assert "over tls" not in out and not (tmp_path / "b.sqlite").exists() or \
        (tmp_path / "b.sqlite").stat().st_size == 0, out


def test_mutual_tls_common_name(cluster, pki):
    ca = pki.path("ca.pem")
    cert, key = pki.cert("node1", "node1")
    good = pki.cert("client", "client", server=False, client=True)
    other_cn = pki.cert("other", "someone else", server=False, client=True)
    n = https_node(cluster, 1, cert, key,
                   ["-http-ca-cert", ca, "-http-verify-client", "-http-verify-common-name", "client"],
                   tls={"verify": ca, "cert": good}).start().wait_ready()
    assert 'required client CN "client"' in n.logs()
    assert requests.get(n.url + "/status", verify=ca, cert=good, timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(n.url + "/status", verify=ca, cert=other_cn, timeout=5)
    poll(lambda: 'matches CN "client"' in n.logs(), timeout=10, what="the refusal logged")


def test_mutual_tls_cluster(cluster, pki):
    """With mTLS on every API, nodes present their own certificates to each
    other: joining, forwarding and /nodes' reachability work."""
    ca = pki.path("ca.pem")
    client = pki.cert("client", "client", server=False, client=True)
    nodes = []
    for i in (1, 2):
        cert, key = pki.cert("node%d" % i, "node%d" % i, client=True)
        nodes.append(https_node(cluster, i, cert, key, ["-http-ca-cert", ca, "-http-verify-client"],
                                tls={"verify": ca, "cert": client}))
    n1, n2 = nodes
    n1.start().wait_ready()
    n2.start(join=n1.url).wait_ready()
    wait_members(n1, 2)
    leader = leader_of(nodes)
    follower = n2 if leader is n1 else n1
    r = follower.execute(["CREATE TABLE t (v)", "INSERT INTO t VALUES(1)"])
    assert r["results"][1]["rows_affected"] == 1, r
    poll(lambda: all(x["reachable"] for x in follower.nodes()), timeout=20, what="all nodes reachable")


def test_certificate_reload(cluster, pki):
    """Replacing the certificate and key files changes what is served within
    a few seconds, without a restart; a key that does not match keeps the
    pair in use."""
    ca = pki.path("ca.pem")
    a_cert, a_key = pki.cert("a", "first")
    b_cert, b_key = pki.cert("b", "second")
    cert, key = pki.path("served.pem"), pki.path("served.key")
    for src, dst in ((a_cert, cert), (a_key, key)):
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
    n = https_node(cluster, 1, cert, key, tls={"verify": ca}).start().wait_ready()
    pid = n.proc.pid
    assert served_cert(n.http_port, ca) == der_of(a_cert)

    def replace(src, dst):
        tmp = dst + ".new"
        with open(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.replace(tmp, dst)

    # The certificate alone: it does not match the key in use, so the node
    # keeps serving the first pair (and says so), checked on each handshake.
    replace(b_cert, cert)
    poll(lambda: served_cert(n.http_port, ca) and "failed to reload certificate" in n.logs(),
         timeout=20, what="the mismatched pair refused")
    assert served_cert(n.http_port, ca) == der_of(a_cert)

    # Then the key: the new pair is served.
    replace(b_key, key)
    poll(lambda: served_cert(n.http_port, ca) == der_of(b_cert), timeout=20, what="the new certificate served")
    assert "reloading certificate at %s and key at %s" % (cert, key) in n.logs()
    assert n.proc.pid == pid and n.proc.poll() is None
    assert n.ready()


def _start_fails(tmp_path, extra):
    http, raft = free_port(), free_port()
    data = str(tmp_path / ("data-%d" % http))
    args = [RQLITED, "-node-id", "1", "-http-addr", "127.0.0.1:%d" % http,
            "-raft-addr", "127.0.0.1:%d" % raft] + FAST + extra + [data]
    proc = subprocess.run(args, capture_output=True, timeout=30)
    assert proc.returncode == 1, (extra, proc.returncode, proc.stderr)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", http)) != 0, "port bound by a node that refused to start"
    return proc.stderr.decode()


def test_https_start_up_errors(tmp_path, pki):
    cert, key = pki.cert("node1", "node1")
    other_cert, other_key = pki.cert("node2", "node2")
    missing = str(tmp_path / "no" / "such.pem")
    junk = str(tmp_path / "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    cases = [
        (["-http-cert", cert], "fatal: either both -http-cert and -http-key must be set, or neither"),
        (["-http-key", key], "fatal: either both -http-cert and -http-key must be set, or neither"),
        (["-http-cert", missing, "-http-key", key],
         "fatal: cannot read -http-cert file %s: No such file or directory" % missing),
        (["-http-cert", cert, "-http-key", key, "-http-ca-cert", missing],
         "fatal: cannot read -http-ca-cert file %s: No such file or directory" % missing),
        (["-http-cert", junk, "-http-key", key], "no X.509 certificate in %s" % junk),
        (["-http-cert", cert, "-http-key", junk], "no usable private key in %s" % junk),
        (["-http-cert", cert, "-http-key", other_key],
         "the private key in %s does not match the certificate in %s" % (other_key, cert)),
        (["-http-cert", cert, "-http-key", key, "-http-verify-client", "-http-ca-cert", junk],
         "cannot use -http-ca-cert %s" % junk),
        (["-http-cert", cert, "-http-key", key, "-http-verify-common-name", "x"],
         "fatal: -http-verify-common-name requires -http-verify-client"),
        (["-http-verify-client"], "fatal: -http-verify-client requires -http-cert and -http-key"),
    ]
    for extra, message in cases:
        err = _start_fails(tmp_path, extra)
        assert message in err, (extra, err)
