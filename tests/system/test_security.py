"""Security: flags this build cannot honour refuse the start; /join and
/notify reject hostile input without touching the cluster configuration."""
import os
import socket
import subprocess

from harness import RQLITED, FAST, free_port, poll, wait_members  # noqa: F401


def _listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(tmp_path, extra):
    http, raft = free_port(), free_port()
    data = str(tmp_path / ("data-%d" % http))
    args = [RQLITED, "-node-id", "1", "-http-addr", "127.0.0.1:%d" % http,
            "-raft-addr", "127.0.0.1:%d" % raft] + FAST + extra + [data]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE), http, data


def test_security_flags_refuse_to_start(tmp_path):
    auth = tmp_path / "auth.json"
    auth.write_text('[{"username": "fiona", "password": "secret1", "perms": ["all"]}]\n')
    missing = str(tmp_path / "no" / "such.json")
    cases = [
        (["-auth", str(auth)], "fatal: -auth is not supported by this build yet: refusing to start without "
                               "the access control it asks for"),
        (["-auth", missing], "fatal: cannot read -auth file %s: No such file or directory" % missing),
        (["-node-cert", str(auth), "-node-key", str(auth)], "fatal: -node-cert is not supported by this build yet"),
        (["-http-verify-client"], "fatal: -http-verify-client is not supported by this build yet"),
    ]
    for extra, message in cases:
        proc, http, data = _run(tmp_path, extra)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert proc.returncode == 1, (extra, proc.returncode, err)
        assert message in err.decode(), (extra, err)
        # main() creates the data directory, then starts the HTTP server: a
        # refusal leaves no directory, so the port was never bound.
        assert not os.path.exists(data), extra
        assert b"rqlited starting" not in out + err
        assert not _listening(http)

    # Control: the same command line without the security flag starts and
    # serves its HTTP port (so the checks above are not vacuous).
    proc, http, data = _run(tmp_path, ["-http-verify-client=false", "-auth", ""])
    try:
        poll(lambda: proc.poll() is None and _listening(http), timeout=30, what="control node listening")
        assert os.path.isdir(data)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
