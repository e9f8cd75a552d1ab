"""The layering of docs/architecture.md holds: import-linter's contracts in pyproject.toml, imports inside
functions counted. A broken contract fails here with import-linter's own report of the offending import chain."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: The maintainers' notes beside the repository, spelled in pieces so this file does not point at them itself.
OUTSIDE = ("DESIGN" + ".md", ".." + "/shared")


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"{len(contracts)} kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_nothing_points_outside_the_repository() -> None:
    """Users cannot follow a reference to the maintainers' notes beside the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name.startswith(".ci/") or path.suffix not in (".py", ".md", ".toml", ".yml", ".yaml"):
            continue
        text = path.read_text(errors="replace")
        if any(marker in text for marker in OUTSIDE):
            offenders.append(name)
    assert not offenders, f"these files point at files outside the repository: {offenders}"


def test_architecture_page_lists_the_layers_of_the_contract() -> None:
    """docs/architecture.md's layer table is the layers contract, row for row: the page cannot drift from the code."""
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    expected = [{name.strip() for name in row.split("|")} for row in contract["layers"]]
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("| layer (top to bottom) | packages |") :].split("\n\n")[0].splitlines()[2:]
    documented = [{f"yolo_adapters.{name}" for name in re.findall(r"`([\w.]+)`", row.split("|")[2])} for row in table]
    assert documented == expected
