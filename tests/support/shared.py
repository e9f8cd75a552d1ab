"""Folders and files one test run shares between its pytest-xdist workers, so that what every worker needs (test
checkpoints, engine conversions) is made once per run instead of once per worker.

Safe because what is shared is content-keyed and published atomically: the conversion cache locks each key and
renames a finished entry into place (yolo_adapters.core.cache), and ``built_once`` does the same for a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def run_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` under the run's base temporary folder, the same for every xdist worker of the run (removed with it);
    without xdist, a fresh folder of this session."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp(name)
    folder = tmp_path_factory.getbasetemp().parent / name  # each worker's basetemp is <run>/popen-gwN
    folder.mkdir(exist_ok=True)
    return folder


def built_once(folder: Path, name: str, build: Callable[[Path], Path]) -> Path:
    """``folder/name``, made by ``build(staging)`` (which returns the file it wrote) by whichever worker gets there
    first; the others wait on its lock and reuse it. ``build`` may return a file outside ``staging`` (a file that
    exists already, such as the real pose weights): that path is returned as it is."""
    from filelock import FileLock

    target = folder / name
    with FileLock(str(folder / f"{name}.lock")):
        if target.exists():
            return target
        staging = folder / f".{name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            made = build(staging)
            if staging not in made.parents:
                return made
            os.replace(made, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
