import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def pytest_sessionstart(session):
    if not os.access(harness.RQLITED, os.X_OK):
        raise pytest.UsageError("binary missing: %s (run make first)" % harness.RQLITED)
