"""Node-to-node TLS (-node-cert, -node-key, -node-ca-cert, -node-verify-client,
-node-verify-common-name, -node-verify-server-name, -node-no-verify): everything
on the Raft port is encrypted (Raft, metadata probes, database images); a node
whose certificate does not verify, or that cannot verify its peers', neither
joins nor connects; plaintext gets nothing and nothing hangs. Certificates are
made with the openssl command, in the test's directory."""
import secrets
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from harness import TcpProxy, leader_of, poll, wait_members


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and node certificates for 127.0.0.1 (Common Name rqnode); a rogue CA
    and a certificate of it; a certificate naming only db.internal; one with
    another Common Name; a self-signed one."""
    d = tmp_path_factory.mktemp("certs")

    def run(*args):
        subprocess.run(args, cwd=d, check=True, capture_output=True)

    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def ca(name):
        run("openssl", "req", "-x509", *newkey, "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
            "-subj", "/CN=" + name)

    def cert(name, issuer, san, cn="rqnode"):
        (d / (name + ".ext")).write_text("subjectAltName=%s\n" % san)
        run("openssl", "req", *newkey, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", issuer + ".crt", "-CAkey", issuer + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")

    ca("ca")
    ca("rogueca")
    for i in range(1, 5):
        cert("n%d" % i, "ca", "IP:127.0.0.1")
    cert("rogue", "rogueca", "IP:127.0.0.1")
    cert("named", "ca", "DNS:db.internal")
    cert("othercn", "ca", "IP:127.0.0.1", cn="intruder")
    (d / "self.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "req", "-x509", *newkey, "-keyout", "self.key", "-out", "self.crt", "-days", "2",
        "-subj", "/CN=rqnode", "-addext", "subjectAltName=IP:127.0.0.1")
    return d


def tls(certs, name, ca="ca", mutual=True, extra=()):
    """The flags of a node presenting certs/<name>.crt and trusting <ca>."""
    f = ["-node-cert", str(certs / (name + ".crt")), "-node-key", str(certs / (name + ".key"))]
    if ca:
        f += ["-node-ca-cert", str(certs / (ca + ".crt"))]
    if mutual:
        f += ["-node-verify-client", "-node-verify-common-name", "rqnode"]
    return f + list(extra)


def exits(node, timeout=60):
    """The exit status of a node expected to give up."""
    try:
        return node.wait_exit(timeout)
    except subprocess.TimeoutExpired:
        node.kill()
        raise AssertionError("node %s did not exit:\n%s" % (node.id, node.logs()[-3000:]))


def replicated_through_recorder(cluster, flags_of):
    """Node 1, and node 2 behind a recorder (its advertised Raft address),
    joined through node 1's Raft address; a random marker written on node 1
    reaches node 2 through the recorder. Returns (marker, recorded bytes)."""
    n1 = cluster.node(1, flags_of(1)).start().wait_ready()
    n2 = cluster.node(2, flags_of(2))
    rec = TcpProxy(n2.raft_port)
    n2.extra += ["-raft-adv-addr", "127.0.0.1:%d" % rec.port]
    n2.start(join=n1.raft_addr).wait_ready()
    wait_members(n1, 2)
    marker = "marker-" + secrets.token_hex(16)
    n1.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", ["INSERT INTO t(v) VALUES(?)", marker]])
    poll(lambda: n2.count("t") == 1, what="the marker on node 2")
    data = rec.data()
    rec.close()
    return marker, data, n1, n2


def test_recorder_sees_plaintext_raft(cluster):
    """The control: without TLS the recorder does see the marker, so the test
    below would notice plaintext."""
    marker, data, _, _ = replicated_through_recorder(cluster, lambda i: [])
    assert marker.encode() in data


def test_mutual_tls_cluster_forms_replicates_encrypted(cluster, certs):
    """Mutual TLS with a required Common Name: joins through a Raft address
    (a probe inside TLS) and through the HTTP API; writes replicate; what went
    over node 2's Raft port is TLS records, without the marker or the probe
    node 1 made before adding node 2."""
    marker, data, n1, n2 = replicated_through_recorder(cluster, lambda i: tls(certs, "n%d" % i))
    n3 = cluster.node(3, tls(certs, "n3")).start(join=n1.url).wait_ready()
    wait_members(n1, 3)
    poll(lambda: n3.count("t") == 1, what="the marker on node 3")
    assert len(data) > 2000, len(data)
    assert marker.encode() not in data
    assert b"api_addr" not in data and b"RQMETA" not in data
    assert b"\x17\x03\x03" in data  # TLS application data records
    for n in (n1, n2, n3):
        assert "enabling node-to-node encryption with cert: " in n.logs()
    # Writes through a follower, and a linearizable read, keep working.
    n3.execute([["INSERT INTO t(v) VALUES(?)", "via-3"]])
    for n in (n1, n2, n3):
        poll(lambda: n.count("t") == 2, what="row 2 on node %s" % n.id)
    assert n2.query("SELECT COUNT(*) FROM t", level="linearizable")["results"][0]["values"] == [[2]]


def test_wiped_node_catches_up_over_tls(cluster, certs):
    """A compacted log: a wiped node restarted without -join is reached by the
    leader over TLS, rejoins through the leader's Raft address, and fetches the
    database image through the TLS session."""
    def flags(i):
        return tls(certs, "n%d" % i, extra=["-raft-snap", "16", "-raft-snap-int", "1s"])
    n1 = cluster.node(1, flags(1)).start().wait_ready()
    n2 = cluster.node(2, flags(2)).start(join=n1.url)
    n3 = cluster.node(3, flags(3)).start(join=n1.raft_addr)
    n2.wait_ready()
    n3.wait_ready()
    wait_members(n1, 3)
    leader = leader_of([n1, n2, n3])
    leader.execute(["CREATE TABLE s (id INTEGER PRIMARY KEY, v INT)"])
    for i in range(0, 120, 4):
        leader.execute([["INSERT INTO s(v) VALUES(?)", i + k] for k in range(4)])
    # a snapshot that compacted the log past the start: a wiped node needs it
    poll(lambda: leader.status()["store"]["raft"]["first_log_index"] > 1, what="the log compacted")
    victim = [n for n in (n1, n2, n3) if n is not leader][0]
    poll(lambda: victim.count("s") == 120, what="rows on the victim")
    victim.kill()
    victim.wipe()
    leader.execute([["INSERT INTO s(v) VALUES(?)", 999]])
    victim.start()
    poll(lambda: victim.count("s") == 121, what="the wiped node restored over TLS")
    assert victim.query("SELECT SUM(v) FROM s")["results"][0]["values"] == [[sum(range(120)) + 999]]
    assert "fetching the database from %s (its Raft port, TLS)" % leader.raft_addr in victim.logs()
    assert "snapshot transfer done" in victim.logs()
    assert "over TLS in" in leader.logs()


def test_rogue_nodes_cannot_join(cluster, certs):
    """A certificate of another CA, or of the right CA with the wrong Common
    Name, or a node that cannot verify the cluster's certificates: no join
    (through a Raft address or the HTTP API), a clear message on the joiner,
    the refusals in the cluster's log, and the cluster unchanged."""
    n1 = cluster.node(1, tls(certs, "n1")).start().wait_ready()
    once = ["-join-attempts", "1"]
    # Its own CA: it cannot verify node 1.
    r = cluster.node(4, tls(certs, "rogue", ca="rogueca", extra=once)).start(join=n1.raft_addr)
    assert exits(r) == 1
    assert "fatal: clustering failure: failed to join cluster via {0}: TLS with {0} failed: certificate " \
           "verification failed".format(n1.raft_addr) in r.logs()
    # Trusting the cluster's CA, with a rogue certificate: node 1 refuses it
    # on its Raft port, and will not add it when asked through the HTTP API.
    r = cluster.node(5, tls(certs, "rogue", extra=once)).start(join=n1.raft_addr)
    assert exits(r) == 1
    assert "certificate" in r.logs().split("fatal:")[-1]
    r = cluster.node(6, tls(certs, "rogue", extra=once)).start(join=n1.url)
    assert exits(r) == 1
    assert "refusing to add node 6" in r.logs()
    assert "refusing to add node 6" in n1.logs()
    # A certificate node 1 accepts, but trusting another CA: it cannot verify
    # node 1, so a join through the HTTP API fails too (node 1's check of
    # its Raft port is refused by the joiner) instead of adding a member
    # that cannot talk to the leader.
    r = cluster.node(8, tls(certs, "n2", ca="rogueca", mutual=False, extra=once)).start(join=n1.url)
    assert exits(r) == 1
    assert "refusing to add node 8" in r.logs().split("fatal:")[-1], r.logs()[-2000:]
    assert "certificate verification failed" in r.logs(), r.logs()[-2000:]
    # The right CA, another Common Name.
    r = cluster.node(7, tls(certs, "othercn", extra=once)).start(join=n1.raft_addr)
    assert exits(r) == 1
    poll(lambda: 'its Common Name is "intruder", not the required "rqnode"' in n1.logs(),
         what="the Common Name refusal in node 1's log")
    assert "refused a connection from 127.0.0.1:" in n1.logs()
    assert [x["id"] for x in n1.nodes()] == ["1"]
    n1.execute(["CREATE TABLE ok (id INT)"])
    assert n1.ready()


def test_plaintext_and_certless_clients_get_nothing(cluster, certs, tmp_path):
    """Plaintext on a TLS Raft port (libraft's handshake, a probe, an image
    request, HTTP, silence) and TLS without a client certificate: no answer,
    the connection closed within the handshake timeout, the node unharmed. A
    client with a certificate of the CA gets the probe's answer; and a
    certificate replaced on disk is presented to the next connection."""
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(certs / "n1.crt", live_crt)
    shutil.copy(certs / "n1.key", live_key)
    n1 = cluster.node(1, ["-node-cert", str(live_crt), "-node-key", str(live_key),
                          "-node-ca-cert", str(certs / "ca.crt"), "-node-verify-client"]).start().wait_ready()
    raft_hs = (1).to_bytes(8, "little") + (9).to_bytes(8, "little") + (16).to_bytes(8, "little") + \
        b"127.0.0.1:9\0\0\0\0\0"
    for payload in (raft_hs, b"RQMETA\r\n", b"RQIMAGE\n", b"GET /status HTTP/1.0\r\n\r\n", b""):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", n1.raft_port), timeout=20) as s:
            s.sendall(payload)
            got = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:  # an alert, then a reset: also nothing
                    break
                if not chunk:
                    break
                got += chunk
        assert time.monotonic() - t0 < 15, payload  # closed by the node, not by our timeout
        assert b"api_addr" not in got and b"RQIMG" not in got and len(got) < 64, (payload, got)

    def tls_client(cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(certs / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(certs / (cert + ".crt")), str(certs / (cert + ".key")))
        with socket.create_connection(("127.0.0.1", n1.raft_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                peer = s.getpeercert()
                got = b""
                try:  # TLS 1.3: a refused client learns it after its handshake
                    s.sendall(b"RQMETA\r\n")
                    while b"\n" not in got:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except (ssl.SSLError, OSError):
                    pass
                cn = dict(x[0] for x in peer["subject"])["commonName"]
                return got, cn

    got, cn = tls_client()  # no client certificate
    assert b"api_addr" not in got
    got, cn = tls_client("n4")
    assert b'"api_addr":"http://%s"' % n1.http_addr.encode() in got
    assert cn == "rqnode"
    shutil.copy(certs / "othercn.crt", live_crt)
    shutil.copy(certs / "othercn.key", live_key)
    subprocess.run(["touch", "-d", "+5 seconds", str(live_crt)], check=True)
    got, cn = tls_client("n4")
    assert cn == "intruder"
    assert "reloaded certificate %s" % live_crt in n1.logs()
    poll(lambda: "refused a connection from 127.0.0.1:" in n1.logs(), what="the refusals logged")
    n1.execute(["CREATE TABLE still (id INT)"])
    assert n1.proc.poll() is None and n1.ready()


def test_no_verify_lets_unverifiable_certificates_join(cluster, certs):
    """rqlite's TestJoinEncryptedNoVerify: nodes sharing a self-signed
    certificate (no CA can vouch for it) cannot form a cluster, unless they
    skip verification with -node-no-verify."""
    self_signed = tls(certs, "self", ca=None, mutual=False)
    n1 = cluster.node(1, self_signed).start().wait_ready()
    n2 = cluster.node(2, self_signed + ["-join-attempts", "1"]).start(join=n1.raft_addr)
    assert exits(n2) == 1
    assert "certificate verification failed" in n2.logs()
    n1.kill()
    lax = self_signed + ["-node-no-verify"]
    n3 = cluster.node(3, lax).start().wait_ready()
    n4 = cluster.node(4, lax).start(join=n3.raft_addr).wait_ready()
    wait_members(n3, 2)
    n3.execute(["CREATE TABLE nv (id INT)", "INSERT INTO nv VALUES (1)"])
    poll(lambda: n4.count("nv") == 1, what="replicated without verification")


def test_verify_server_name(cluster, certs):
    """Certificates naming only db.internal, dialled at 127.0.0.1: the join
    fails on the name, unless -node-verify-server-name db.internal says which
    name to expect."""
    named = tls(certs, "named", mutual=False)
    n1 = cluster.node(1, named).start().wait_ready()
    n2 = cluster.node(2, named + ["-join-attempts", "1"]).start(join=n1.raft_addr)
    assert exits(n2) == 1
    assert "certificate verification failed (expected name 127.0.0.1)" in n2.logs()
    n1.kill()
    by_name = named + ["-node-verify-server-name", "db.internal"]
    n3 = cluster.node(3, by_name).start().wait_ready()
    n4 = cluster.node(4, by_name).start(join=n3.raft_addr).wait_ready()
    wait_members(n3, 2)
    n3.execute(["CREATE TABLE sn (id INT)", "INSERT INTO sn VALUES (1)"])
    poll(lambda: n4.count("sn") == 1, what="replicated with the server name")


def test_with_https_api(cluster, certs):
    """Node TLS beside HTTPS on the API (the same certificates): a node joins
    through a Raft address (whose probe, inside TLS, answers an https:// API
    address) and writes replicate."""
    def node(i):
        crt, key, ca = (str(certs / ("n%d.crt" % i)), str(certs / ("n%d.key" % i)), str(certs / "ca.crt"))
        n = cluster.node(i, tls(certs, "n%d" % i) + ["-http-cert", crt, "-http-key", key, "-http-ca-cert", ca])
        n.scheme = "https"
        n.tls = {"verify": ca}
        return n
    n1 = node(1).start().wait_ready()
    n2 = node(2).start(join=n1.raft_addr).wait_ready()
    wait_members(n1, 2)
    assert {x["id"]: x["api_addr"] for x in n1.nodes()} == {"1": n1.url, "2": n2.url}
    n2.execute(["CREATE TABLE h (id INT)", "INSERT INTO h VALUES (1)"])  # forwarded over HTTPS
    poll(lambda: n1.count("h") == 1 and n2.count("h") == 1, what="replicated")
