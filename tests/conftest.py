"""Shared fixtures: offline settings, one conversion cache per test session, models for every task, images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # nothing may download at run time
os.environ.pop("YOLO_ADAPTERS", None)
os.environ.pop("YOLO_ADAPTERS_DISABLE", None)
sys.path.insert(0, str(Path(__file__).parent))

from models import build_checkpoint, pose_weights  # noqa: E402

TASKS = ("detect", "segment", "pose", "obb", "classify")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion cache for the whole run, so each model converts once per backend."""
    root = tmp_path_factory.mktemp("yolo_adapters_cache")
    os.environ["YOLO_ADAPTERS_CACHE"] = str(root)
    return root


@pytest.fixture(autouse=True)
def stock_after_each_test():
    """Every test starts and ends with nothing activated."""
    import yolo_adapters

    yolo_adapters.deactivate()
    yield
    yolo_adapters.deactivate()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TASK -> .pt path for the five tasks (pose: the real COCO weights)."""
    out = tmp_path_factory.mktemp("checkpoints")
    return {task: build_checkpoint(task, out) for task in TASKS}


@pytest.fixture(scope="session")
def pose_pt() -> Path:
    return pose_weights()


@pytest.fixture(scope="session")
def images() -> list[Path]:
    from ultralytics.utils import ASSETS

    return [ASSETS / "bus.jpg", ASSETS / "zidane.jpg"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
