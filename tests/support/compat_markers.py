"""A pytest plugin (``-p tests.support.compat_markers``) that prints, at the end of collection, each test's node id
and its compat_* markers: what .ci/compat's ``-m`` selections see. tests/test_ci.py reads it."""

from __future__ import annotations

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        marks = sorted({m.name for m in item.iter_markers() if m.name.startswith("compat_")})
        print(f"COMPAT {item.nodeid} {' '.join(marks)}".rstrip())
