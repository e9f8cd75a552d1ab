"""The examples are the README's promise: they run as plain scripts, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.needs import require

require("openvino")


def test_pose_openvino_example_finds_four_people(repo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated.jpg"
    done = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "pose_openvino.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "engine: openvino on CPU" in done.stdout
    assert "4 people found" in done.stdout
    assert done.stdout.count("keypoints (") == 4
    assert out.is_file() and out.stat().st_size > 10_000
