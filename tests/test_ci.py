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


# -- the matrix's selections: pytest markers, so a renamed test keeps its place and one that loses its marker fails --
TASKS = ("detect", "segment", "pose", "obb", "classify")
ACTIVATION = "tests/test_activation.py::test_"
#: The tests each compat_* marker must select (on the Ultralytics of the main suite); compat_families: every
#: OpenVINO case of tests/test_families.py's family parity (which families depends on the release).
COMPAT_TESTS: dict[str, list[str]] = {
    "compat_activation": [
        f"{ACTIVATION}import_activates_in_either_order[import-before-ultralytics]",
        f"{ACTIVATION}import_activates_in_either_order[import-after-ultralytics]",
        f"{ACTIVATION}device_string_needs_no_import",
        f"{ACTIVATION}env_var_activates_unchanged_script",
        f"{ACTIVATION}deactivate_keeps_device_strings_working",
        f"{ACTIVATION}deactivate_uninstall_restores_stock_ultralytics",
        f"{ACTIVATION}survives_predictor_recreation",
        f"{ACTIVATION}two_threads_predicting_at_once",
        "tests/test_onnxruntime.py::test_import_activates",
    ],
    "compat_patching": [
        f"{ACTIVATION}disable_env_turns_everything_off",
        f"{ACTIVATION}use_context_restores_previous_state",
        f"{ACTIVATION}install_is_idempotent",
        f"{ACTIVATION}fails_open_when_a_patch_point_moved",
        f"{ACTIVATION}version_guard",
        f"{ACTIVATION}hook_errors_never_escape",
        "tests/test_pipeline.py::test_pipeline_patch_is_idempotent_reversible_and_version_checked",
    ],
    "compat_pipeline": [
        "tests/test_pipeline.py::test_single_image_stays_in_step_and_folders_are_pipelined",
        "tests/test_pipeline.py::test_in_memory_list_runs_in_engine_batches_with_stock_results[mixed-shapes]",
        "tests/test_pipeline.py::test_in_memory_list_runs_in_engine_batches_with_stock_results[same-shapes]",
        "tests/test_pipeline.py::test_streams_file_is_pipelined_with_the_serial_results",
    ],
    "compat_parity": [
        *(f"tests/test_ascend_parity.py::test_parity_every_task[{t}]" for t in TASKS),
        "tests/test_ascend_parity.py::test_dynamic_batch",
        *(f"tests/test_onnxruntime.py::test_every_task_matches_pytorch[{t}]" for t in TASKS),
        *(f"tests/test_openvino.py::test_every_task_matches_pytorch[{t}]" for t in TASKS),
    ],
    "compat_openvino": [f"tests/test_openvino.py::test_every_task_matches_pytorch[{t}]" for t in TASKS],
}
#: The markers each matrix entry's selection must combine (.ci/compat --selections).
ENTRY_MARKERS = {
    "wrapt-1.x": {"compat_activation", "compat_patching", "compat_pipeline"},
    "8.4.20": {"compat_activation", "compat_parity", "compat_pipeline", "compat_families"},
    "8.3.0": {"compat_activation", "compat_parity", "compat_pipeline", "compat_families"},
    "8.2.48": {"compat_activation", "compat_parity", "compat_pipeline"},
    "8.1.47": {"compat_activation", "compat_parity", "compat_pipeline"},
    "8.3.0+openvino<2026": {"compat_activation", "compat_openvino"},
}


def _compat(*args: str) -> str:
    done = subprocess.run(["bash", str(ROOT / ".ci" / "compat"), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def collected_markers() -> dict[str, set[str]]:
    """Node id -> compat_* markers of every test in the files .ci/compat collects, as a collection there sees them."""
    files = _compat("--files").split()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["-p", "tests.support.compat_markers", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("COMPAT ")]
    return {row[0]: set(row[1:]) for row in rows}


@pytest.mark.parametrize("marker", [*COMPAT_TESTS, "compat_families"])
def test_each_compat_marker_selects_its_tests(marker: str, collected_markers: dict[str, set[str]]) -> None:
    """A test that loses its marker (or is renamed) drops out of the matrix: that fails here, not silently there."""
    selected = {node for node, marks in collected_markers.items() if marker in marks}
    if marker == "compat_families":
        expected = {
            node
            for node in collected_markers
            if node.startswith("tests/test_families.py::test_family_task_matches_pytorch[")
            and node.endswith("-openvino]")
        }
        assert len(expected) >= 10, "the newest Ultralytics ships more families than this"
    else:
        expected = set(COMPAT_TESTS[marker])
    assert selected == expected, {"missing": sorted(expected - selected), "unexpected": sorted(selected - expected)}


def test_compat_entries_combine_the_registered_markers() -> None:
    """Each entry's -m expression names the markers it is meant to, and only registered ones (pyproject.toml)."""
    import re

    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    registered = set(re.findall(r"^@pytest\.mark\.(compat_\w+):", listed.stdout, flags=re.M))
    assert registered == {m for names in ENTRY_MARKERS.values() for m in names}, listed.stdout
    selections = dict(line.split("|", 1) for line in _compat("--selections").splitlines())
    assert set(selections) == set(ENTRY_MARKERS)
    for entry, expression in selections.items():
        names = set(re.findall(r"\w+", expression)) - {"or", "and", "not"}
        assert names == ENTRY_MARKERS[entry], (entry, expression)
