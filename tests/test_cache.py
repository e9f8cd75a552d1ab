"""The conversion cache never hands out a half-written entry, and concurrent converters share one result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from yolo_adapters.core.cache import ArtifactCache, make_key

BUILDER = """
import sys, time
from pathlib import Path
from yolo_adapters.core.cache import ArtifactCache

root, key, log, delay = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])

def build(staging):
    with log.open("a") as f:
        f.write("build\\n")
    (staging / "model.xml").write_text("half")
    Path(sys.argv[3] + ".started").write_text("yes")
    time.sleep(delay)
    (staging / "model.xml").write_text("complete")
    return staging / "model.xml"

print(ArtifactCache(root).get_or_build(key, build).read_text())
"""


def _start(tmp_path: Path, root: Path, key: str, delay: float) -> subprocess.Popen:
    script = tmp_path / "builder.py"
    script.write_text(textwrap.dedent(BUILDER))
    return subprocess.Popen(
        [sys.executable, str(script), str(root), key, str(tmp_path / "builds.log"), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")

    def broken(staging: Path) -> Path:
        (staging / "model.xml").write_text("half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        cache.get_or_build("k1", broken)
    assert cache.lookup("k1") is None
    assert list(cache.artifacts.iterdir()) == []


def test_killed_conversion_is_never_loaded_and_reconverts(tmp_path: Path) -> None:
    root = tmp_path / "c"
    proc = _start(tmp_path, root, "k2", delay=60)
    _wait_for(tmp_path / "builds.log.started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    cache = ArtifactCache(root)
    assert cache.lookup("k2") is None  # the half-written staging folder is not an entry
    assert any(p.name.startswith(".staging-k2-") for p in cache.artifacts.iterdir())

    artifact = cache.get_or_build("k2", lambda s: (s / "model.xml").write_text("fresh") and s / "model.xml")
    assert artifact.read_text() == "fresh"
    assert not any(p.name.startswith(".staging-") for p in cache.artifacts.iterdir())


def test_two_processes_converting_at_once_share_one_build(tmp_path: Path) -> None:
    root = tmp_path / "c"
    first = _start(tmp_path, root, "k3", delay=2)
    _wait_for(tmp_path / "builds.log.started")
    second = _start(tmp_path, root, "k3", delay=2)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == ["complete", "complete"]
    assert (tmp_path / "builds.log").read_text().count("build") == 1


def test_key_changes_with_every_field() -> None:
    base = {"weights": "abc", "imgsz": (640, 640), "precision": "fp32"}
    keys = {make_key(base), make_key({**base, "imgsz": (320, 320)}), make_key({**base, "precision": "fp16"})}
    assert len(keys) == 3 and make_key(dict(base)) in keys


def test_clear_removes_entries(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")
    cache.get_or_build("k4", lambda s: (s / "m.onnx").write_bytes(b"x") and s / "m.onnx", {"backend": "onnxruntime"})
    assert [e["key"] for e in cache.entries()] == ["k4"] and cache.entries()[0]["fields"]["backend"] == "onnxruntime"
    assert cache.clear() == 1 and cache.entries() == [] and cache.lookup("k4") is None
