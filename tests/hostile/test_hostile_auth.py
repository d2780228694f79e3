"""Hostile Authorization headers against nodes with -auth (issue 15).

A 2-node cluster whose nodes share inputs.AUTH_FILE. Every input of
inputs.AUTH_INPUTS (malformed Basic credentials, NUL bytes, near misses of
the password, the bcrypt hash sent as the password, repeated and huge
headers) goes to the leader and to the follower: none may get in (401 with
an empty body, or a refusal of the malformed request), and after each both
nodes must still run and serve the right credentials. (test_hostile.py
sends the same headers to nodes without -auth, where they mean nothing.)
"""
import json

import pytest
import requests

import harness
import inputs

ADMIN = ("admin", "adminpw")
CRASH_MARKS = ("fatal signal", "Segmentation fault", "Assertion", "AddressSanitizer", "LeakSanitizer",
               "runtime error:")


def ready(node):
    try:
        return requests.get(node.url + "/readyz", auth=ADMIN, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def pair(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(inputs.AUTH_FILE))
    extra = ["-auth", str(path), "-join-as", "admin"]
    nodes = [harness.Node(tmp_path, i, extra) for i in (1, 2)]
    try:
        nodes[0].start()
        harness.poll(lambda: ready(nodes[0]), 60, what="node 1 ready")
        nodes[1].start(join=nodes[0].url)
        harness.poll(lambda: ready(nodes[1]), 60, what="node 2 ready")
        yield nodes
    finally:
        for n in nodes:
            n.kill()


def test_hostile_authorization(pair):
    leader = harness.poll(lambda: [n for n in pair if requests.get(
        n.url + "/status", auth=ADMIN, timeout=5).json()["store"]["raft"]["state"] == "Leader"], 30,
        what="a leader")[0]
    follower = [n for n in pair if n is not leader][0]
    problems = []
    for inp in inputs.AUTH_INPUTS:
        for role, node in (("leader", leader), ("follower", follower)):
            a = inputs.send(inp, node.url)
            found = inputs.generic_problems(inp, a) + inputs.expected_problems(inp, a)
            if a.status == 200:
                found.append("let in: %s" % a.brief())
            for n in pair:
                if n.proc.poll() is not None:
                    pytest.fail("node %s exited after %s to the %s:\n%s" % (n.id, inp.name, role, n.logs()[-3000:]))
                if not ready(n):
                    found.append("node %s not ready with the right credentials afterwards" % n.id)
            problems += ["%s (to the %s): %s" % (inp.name, role, p) for p in found]
    # The right credentials still work, forwarded too.
    r = requests.post(follower.url + "/db/execute", auth=ADMIN, json=["CREATE TABLE IF NOT EXISTS h (v)"], timeout=10)
    assert r.status_code == 200 and "error" not in r.json()["results"][0], r.text
    r = requests.post(follower.url + "/db/execute", auth=("hashed", "s3cret"), json=["SELECT 1"], timeout=10)
    assert r.status_code == 200, r.text
    for n in pair:
        logs = n.logs()
        problems += ["node %s log: %r" % (n.id, m) for m in CRASH_MARKS if m in logs]
    assert not problems, "\n".join(problems)
