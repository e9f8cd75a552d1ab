"""CI cannot go green with an engine skipped: a broken engine import fails CI mode, and each compatibility-matrix
entry must run every test it selects (its count of passed tests is checked against the count collected)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _run_broken_engine(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    """A test file needing ``openvino`` where ``import openvino`` fails as a broken install does."""
    fake = tmp_path / "site" / "openvino"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libopenvino.so.2026.4.1: cannot open shared object file')\n")
    test_file = tmp_path / "test_needs_openvino.py"
    test_file.write_text(
        "from tests.support.needs import require\n\nrequire('openvino')\n\n\ndef test_engine_runs():\n    pass\n"
    )
    (tmp_path / "test_other.py").write_text("def test_other_engine():\n    pass\n")  # the rest of a suite
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(TESTS.parent)])
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test_file),
            str(tmp_path / "test_other.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_broken_engine_import_fails_under_ci(tmp_path: Path) -> None:
    done = _run_broken_engine(tmp_path, ci=True)
    assert done.returncode != 0, done.stdout
    assert "under CI every engine must run" in done.stdout and "cannot open shared object file" in done.stdout


def test_broken_engine_import_skips_locally(tmp_path: Path) -> None:
    done = _run_broken_engine(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped" in done.stdout


@pytest.mark.parametrize(
    ("collected", "summary", "ok"),
    [
        ("21", "21 passed in 80.1s", True),
        ("21", "19 passed, 2 skipped in 80.1s", False),  # an engine skipped: not green
        ("21", "20 passed, 1 failed in 80.1s", False),
        ("0", "no tests ran in 0.5s", False),  # a selection that matches nothing
        ("21", "17 passed in 60.0s", False),  # fewer ran than were collected
    ],
)
def test_compat_entry_count_check(collected: str, summary: str, ok: bool) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "compat"), "--verify-count", collected, summary],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode == 0) is ok, done.stdout + done.stderr


def test_readme_and_compatibility_page_name_every_matrix_entry() -> None:
    """README.md and docs/compatibility.md state what CI runs from one source: .ci/compat's entries."""
    listed = subprocess.run(
        ["bash", str(ROOT / ".ci" / "compat"), "--list"], capture_output=True, text=True, check=True
    )
    names = [line.split("|")[1].strip() for line in listed.stdout.splitlines() if line.startswith("|")]
    assert len(names) >= 5
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "compatibility.md").read_text()
    table = {line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")}
    for name in names:
        assert f"`{name}`" in readme, f"README.md does not name the matrix entry {name}"
        assert name in table, f"docs/compatibility.md's table has no row for the matrix entry {name}"
