import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402

# make asan test: nodes stop in order (LeakSanitizer reports at exit), and a
# sanitizer report in any node's log fails the test that ran it.
SANITIZED = bool(os.environ.get("RQ_SANITIZED"))


def pytest_sessionstart(session):
    for b in (harness.RQLITED, harness.RQLITE):
        if not os.access(b, os.X_OK):
            raise pytest.UsageError("binary missing: %s (run make first)" % b)


class Cluster:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.nodes = []

    def node(self, node_id, extra=None):
        n = harness.Node(self.tmp_path, node_id, extra)
        self.nodes.append(n)
        return n

    def start_three(self, extra=None):
        """Nodes 1-3 formed the seed's way (HTTP join URL to node 1), each
        started with the extra flags; returns them once all are ready."""
        n1 = self.node(1, extra).start().wait_ready()
        others = [self.node(i, extra).start(join=n1.url) for i in (2, 3)]
        for n in others:
            n.wait_ready()
        harness.wait_members(n1, 3)
        return [n1] + others

    def stop_all(self):
        for n in self.nodes:
            try:
                if SANITIZED:
                    n.stop()
                n.kill()
            except Exception:
                pass

    def sanitizer_reports(self):
        found = [(n.id, harness.sanitizer_report(n.logs())) for n in self.nodes]
        return ["node %s: %s" % (nid, rep) for nid, rep in found if rep]


@pytest.fixture
def cluster(tmp_path, request):
    c = Cluster(tmp_path)
    yield c
    reps = [getattr(request.node, "rep_" + w, None) for w in ("setup", "call")]
    c.stop_all()
    if any(r is not None and r.failed for r in reps):
        for n in c.nodes:
            sys.stderr.write("\n===== log of node %s =====\n%s" % (n.id, n.logs()[-6000:]))
    reports = c.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer report in a node's log:\n" + "\n".join(reports), pytrace=False)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def three(cluster):
    """A 3-node cluster formed the seed's way (HTTP join URL)."""
    return cluster, cluster.start_three()
