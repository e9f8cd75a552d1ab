"""A plugin loaded into every script must never be why it fails: faults, load and bad input."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from tests.support.needs import require
from yolo_adapters.compare.parity import compare_results
from yolo_adapters.errors import ConversionError, ModelFormatError, OptionError

require("openvino")
from ultralytics import YOLO  # noqa: E402


def _convert_cmd(pt: Path) -> list[str]:
    return [sys.executable, "-m", "yolo_adapters", "convert", str(pt), "--backend", "openvino", "--imgsz", "320"]


def test_real_conversion_killed_half_way_then_reconverts(checkpoints: dict, tmp_path: Path) -> None:
    env = {**os.environ, "YOLO_ADAPTERS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        _convert_cmd(checkpoints["detect"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    artifacts = tmp_path / "cache" / "artifacts"
    deadline = time.time() + 120
    while not (artifacts.exists() and any(p.name.startswith(".staging-") for p in artifacts.iterdir())):
        assert proc.poll() is None and time.time() < deadline, "conversion finished before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p for p in artifacts.iterdir() if not p.name.startswith(".")] == []  # nothing loadable

    done = subprocess.run(_convert_cmd(checkpoints["detect"]), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    xml = Path(done.stdout.strip().splitlines()[-1])
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert not any(p.name.startswith(".staging-") for p in artifacts.iterdir())


def test_two_processes_converting_the_same_model(checkpoints: dict, images: list, tmp_path: Path) -> None:
    env = {**os.environ, "YOLO_ADAPTERS_CACHE": str(tmp_path / "cache")}
    procs = [
        subprocess.Popen(
            _convert_cmd(checkpoints["obb"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    paths = {o.strip().splitlines()[-1] for o, _ in outs}
    assert len(paths) == 1
    xml = Path(paths.pop())
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    model = YOLO(str(xml.parent), task="obb")
    assert len(model.predict(str(images[0]), device="openvino", verbose=False)[0].obb) > 0


def test_full_disk_during_conversion_is_a_clear_error(
    checkpoints: dict, images: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from yolo_adapters.integration import export

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "export_model", no_space)
    yolo_adapters.activate("openvino", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConversionError, match="No space left on device"):
        YOLO(str(checkpoints["pose"])).predict(str(images[0]), verbose=False)
    artifacts = tmp_path / "cache" / "artifacts"
    assert list(artifacts.iterdir()) == []  # the staging folder was removed


def test_eight_threads_through_one_model(pose_pt: Path, images: list) -> None:
    reference = [YOLO(str(pose_pt)).predict(str(im), device="cpu", verbose=False)[0] for im in images]
    model = YOLO(str(pose_pt))
    model.predict(str(images[0]), device="openvino", verbose=False)  # build once, then share it
    errors: list[BaseException] = []
    agreements: list[bool] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        try:
            for k in range(3):
                result = model.predict(str(images[(index + k) % 2]), device="openvino", verbose=False)[0]
                with lock:
                    agreements.append(compare_results(reference[(index + k) % 2], result).passed())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(agreements) == 24 and all(agreements)


def test_engine_error_mid_stream_reaches_caller_and_next_predict_works(
    pose_pt: Path, images: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):  # a folder streams one image per batch
        shutil.copy(images[0], folder / f"frame{i}.jpg")
    model = YOLO(str(pose_pt))
    model.predict(str(images[0]), device="openvino", verbose=False)
    engine_class = type(model.predictor.model.engine)
    state = {"n": 0}

    def flaky(real):  # the 3rd batch fails, whether it goes through infer() or the pipeline's submit()
        def run(self, batch: np.ndarray):
            state["n"] += 1
            if state["n"] == 3:
                raise RuntimeError("device lost")
            return real(self, batch)

        return run

    for method in ("infer", "submit"):
        monkeypatch.setattr(engine_class, method, flaky(getattr(engine_class, method)))
    seen = []
    with pytest.raises(RuntimeError, match="device lost"):
        for result in model.predict(str(folder), device="openvino", stream=True, verbose=False):
            seen.append(len(result.boxes))
    assert seen == [4, 4]
    assert len(model.predict(str(images[0]), device="openvino", verbose=False)[0].boxes) == 4


def test_long_stream_keeps_memory_flat(checkpoints: dict, tmp_path: Path) -> None:
    """5,000 frames through the engine: resident memory after 5,000 is what it was after 1,000."""
    import cv2
    import psutil

    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    rng = np.random.default_rng(0)
    for _ in range(5000):
        writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    writer.release()

    model = YOLO(str(checkpoints["detect"]))
    process = psutil.Process()
    rss, count = {}, 0
    for count, _ in enumerate(model.predict(str(video), device="openvino", imgsz=64, stream=True, verbose=False), 1):
        if count in (1000, 5000):
            rss[count] = process.memory_info().rss
    assert count == 5000
    assert rss[5000] - rss[1000] < 40 * 2**20, f"RSS grew by {(rss[5000] - rss[1000]) / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        (b"not a checkpoint", ".pt", "Could not load"),
        (b"\x08\x01garbage", ".onnx", "corrupt or incomplete|not a readable ONNX"),
    ],
    ids=["corrupt-pt", "corrupt-onnx"],
)
def test_corrupt_model_files(tmp_path: Path, images: list, content: bytes, suffix: str, message: str) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    from yolo_adapters.core.devices import Selection
    from yolo_adapters.integration.runtime import build_engine_module

    with pytest.raises(ModelFormatError, match=message):
        build_engine_module(str(path), Selection("openvino", "CPU", {"device": "CPU"}))


def test_empty_and_unreadable_sources(pose_pt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    model = YOLO(str(pose_pt))
    with pytest.raises(FileNotFoundError):  # Ultralytics' own, clear message: no images or videos found
        model.predict(str(empty), device="openvino", verbose=False)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    stock = YOLO(str(pose_pt)).predict(str(tmp_path / "bad.jpg"), device="cpu", verbose=False)
    routed = model.predict(str(tmp_path / "bad.jpg"), device="openvino", verbose=False)
    assert routed == stock == []  # Ultralytics warns "Image Read Error" and skips it; the engine changes nothing


def test_wrong_option_types_from_device_route() -> None:
    with pytest.raises(OptionError, match="imgsz"):
        yolo_adapters.activate("openvino", imgsz="big")
    with pytest.raises(OptionError, match="dynamic"):
        yolo_adapters.activate("onnxruntime", dynamic="yes")


def test_wrong_task_for_the_model_is_a_clear_error(checkpoints: dict, images: list, tmp_path: Path) -> None:
    import shutil

    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="openvino", verbose=False)
    folder = tmp_path / "people_openvino_model"
    shutil.copytree(Path(model.predictor.model.artifact).parent, folder)
    with pytest.raises(ModelFormatError, match="is a pose model but the predictor was set up for task='detect'"):
        YOLO(str(folder), task="detect").predict(str(images[0]), device="openvino", verbose=False)
    assert (
        len(YOLO(str(folder), task="pose").predict(str(images[0]), device="openvino", verbose=False)[0].keypoints) == 4
    )
