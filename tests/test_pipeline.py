"""The stream pipeline (yolo_adapters.integration.pipeline): order, completeness, bounded memory, errors, abandonment, patching.

Nothing here is timed: speed is measured by `yolo-adapters bench` (docs/benchmarks.md), not asserted in tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from yolo_adapters.core import logs
from yolo_adapters.integration import patching, pipeline

SIZE = (192, 128)  # video frame width, height: small, so 1000 frames decode and infer quickly
BITS = 10  # frame index written as 10 black/white blocks: 1000 frames need 10 bits


def _write_video(path: Path, frames: int, images: list[Path] | None = None) -> Path:
    """Frame i shows i in binary (top row of blocks); with ``images`` the picture alternates beneath it."""
    import cv2

    width, height = SIZE
    pictures = [cv2.resize(cv2.imread(str(p)), SIZE) for p in images] if images else None
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, SIZE)
    block = width // BITS
    for i in range(frames):
        frame = pictures[i % len(pictures)].copy() if pictures else np.full((height, width, 3), 90, np.uint8)
        for bit in range(BITS):
            frame[:16, bit * block : (bit + 1) * block] = 255 if (i >> bit) & 1 else 0
        writer.write(frame)
    writer.release()
    return path


def _frame_index(image: np.ndarray) -> int:
    block = SIZE[0] // BITS
    return sum(1 << bit for bit in range(BITS) if image[4:12, bit * block + 4 : (bit + 1) * block - 4].mean() > 127)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list:
    """The Pipeline objects that ran a loader (proves the pipeline engaged, not the stock loop)."""
    seen: list = []
    original = pipeline.Pipeline.prefetch

    def recording(self, iterator, *args, **kwargs):
        seen.append(self)
        return original(self, iterator, *args, **kwargs)

    monkeypatch.setattr(pipeline.Pipeline, "prefetch", recording)
    return seen


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_video(tmp_path_factory.mktemp("video") / "count.avi", 1000)


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_1000_frames_in_order_once_each_with_bounded_memory(
    hint: str, pose_pt: Path, long_video: Path, spy: list
) -> None:
    from ultralytics import YOLO

    yolo_adapters.activate("openvino", hint=hint)
    model = YOLO(str(pose_pt))
    indices, rss = [], {}
    peak_after_200 = 0.0
    for n, result in enumerate(model.predict(str(long_video), stream=True, imgsz=160, verbose=False), 1):
        indices.append(_frame_index(result.orig_img))
        del result
        if n == 200:
            rss[200] = _rss_mb()
        if n > 200 and n % 50 == 0:
            peak_after_200 = max(peak_after_200, _rss_mb())
    assert len(spy) == 1, "the stream did not run through the pipeline"
    assert indices == list(range(1000)), "frames missing, repeated or out of order"
    engine = model.predictor.model.engine
    assert engine.calls == 1000  # one inference per frame: nothing run twice, nothing skipped
    assert 1 <= spy[0].ahead_max <= spy[0].depth
    assert engine._idle.qsize() == engine.parallel + 1  # every infer request was given back
    # Memory does not grow with the frame count: RSS between frame 200 and 1000 stays within 40 MB of frame 200's
    # (a pipeline that kept each frame's 192x128 image and 160x160 tensor would add ~280 MB over 800 frames).
    assert peak_after_200 - rss[200] < 40, (rss, peak_after_200)


@pytest.mark.parametrize("options", [{"hint": "latency"}, {"hint": "throughput"}, {"hint": "throughput", "batch": 3}])
def test_pipelined_results_match_the_serial_loop(
    options: dict, pose_pt: Path, images: list[Path], tmp_path: Path, spy: list
) -> None:
    """Each result holds its own frame's detections: the pipelined stream equals the serial one frame by frame."""
    from ultralytics import YOLO

    video = _write_video(tmp_path / "people.avi", 24, images)
    batch = options.pop("batch", 1)

    def keypoints(**extra) -> list[np.ndarray]:
        yolo_adapters.activate("openvino", **options, **extra)
        try:
            model = YOLO(str(pose_pt))
            stream = model.predict(str(video), stream=True, imgsz=320, verbose=False, batch=batch)
            return [r.keypoints.data.numpy().copy() for r in stream]
        finally:
            yolo_adapters.deactivate()

    serial = keypoints(pipeline=False)
    assert not spy
    piped = keypoints()
    assert len(spy) == 1
    assert len(serial) == len(piped) == 24
    assert any(k.shape[0] for k in serial), "no people found: the check would prove nothing"
    for i, (a, b) in enumerate(zip(serial, piped)):
        assert a.shape == b.shape, f"frame {i}"
        np.testing.assert_allclose(a, b, atol=1e-3, err_msg=f"frame {i}")
    # neighbouring frames differ (bus / zidane), so a result shifted by one frame would have failed above
    assert serial[0].shape != serial[1].shape or not np.allclose(serial[0], serial[1], atol=1)


def test_onnxruntime_stream_is_pipelined_in_order(pose_pt: Path, tmp_path: Path, spy: list) -> None:
    from ultralytics import YOLO

    video = _write_video(tmp_path / "count.avi", 40)
    yolo_adapters.activate("onnxruntime")
    model = YOLO(str(pose_pt))
    indices = [_frame_index(r.orig_img) for r in model.predict(str(video), stream=True, imgsz=160, verbose=False)]
    assert len(spy) == 1 and indices == list(range(40))


def test_abandoned_stream_returns_requests_and_predictor_stays_usable(pose_pt: Path, tmp_path: Path, spy: list) -> None:
    from ultralytics import YOLO

    video = _write_video(tmp_path / "count.avi", 60)
    yolo_adapters.activate("openvino", hint="throughput")
    model = YOLO(str(pose_pt))
    stream = model.predict(str(video), stream=True, imgsz=160, verbose=False)
    first = [_frame_index(next(stream).orig_img) for _ in range(5)]
    stream.close()  # what `break` in a for loop does
    assert first == [0, 1, 2, 3, 4]
    engine = model.predictor.model.engine
    assert engine._idle.qsize() == engine.parallel + 1
    again = [_frame_index(r.orig_img) for r in model.predict(str(video), stream=True, imgsz=160, verbose=False)]
    assert again == list(range(60))
    assert pipeline.active() is None


def test_engine_error_surfaces_at_its_frame(pose_pt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ultralytics import YOLO

    video = _write_video(tmp_path / "count.avi", 30)
    yolo_adapters.activate("openvino")
    model = YOLO(str(pose_pt))
    model.predict(str(video), stream=False, imgsz=160, verbose=False, vid_stride=30)  # builds the predictor
    engine = model.predictor.model.engine
    original, calls = engine.submit, []

    def failing(batch):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("engine broke on frame 7")
        return original(batch)

    monkeypatch.setattr(engine, "submit", failing)
    seen = []
    with pytest.raises(RuntimeError, match="frame 7"):
        for r in model.predict(str(video), stream=True, imgsz=160, verbose=False):
            seen.append(_frame_index(r.orig_img))
    assert seen == list(range(7))
    assert engine._idle.qsize() == engine.parallel + 1


@pytest.mark.compat_pipeline
def test_single_image_stays_in_step_and_folders_are_pipelined(
    pose_pt: Path, images: list[Path], tmp_path: Path, spy: list
) -> None:
    """One image (the latency case) never goes through the pipeline; a folder does, with unchanged results."""
    import shutil

    from ultralytics import YOLO

    yolo_adapters.activate("openvino")
    model = YOLO(str(pose_pt))
    single = model.predict(str(images[0]), verbose=False)
    assert len(single) == 1 and not spy
    for i in range(3):
        for image in images:
            shutil.copy(image, tmp_path / f"{i}_{image.name}")
    folder = model.predict(str(tmp_path), verbose=False)
    assert len(spy) == 1
    assert [Path(r.path).name for r in folder] == sorted(p.name for p in tmp_path.iterdir())
    bus = next(r for r in folder if r.path.endswith("bus.jpg"))
    np.testing.assert_allclose(bus.keypoints.data.numpy(), single[0].keypoints.data.numpy(), atol=1e-3)


@pytest.mark.compat_patching
def test_pipeline_patch_is_idempotent_reversible_and_version_checked() -> None:
    import ultralytics.engine.predictor as predictor

    patching.install()
    patching.install()
    for name in ("BasePredictor.setup_source", "BasePredictor.stream_inference", "BasePredictor.preprocess"):
        assert patching.is_patched("ultralytics.engine.predictor", name), name
    wrapped = vars(predictor.BasePredictor)["preprocess"]
    assert not hasattr(wrapped.__wrapped__, "_self_yolo_adapters_patch")  # one layer, not two
    patching.uninstall()
    try:
        for name in ("BasePredictor.setup_source", "BasePredictor.stream_inference", "BasePredictor.preprocess"):
            assert not patching.is_patched("ultralytics.engine.predictor", name), name
        assert vars(predictor.BasePredictor)["preprocess"] is wrapped.__wrapped__
    finally:
        patching.install()

    # A release whose stream loop lacks a name the pipeline needs: this target is skipped quietly (no warning, nothing
    # wrapped), the engine swap stays on.
    import dataclasses

    from yolo_adapters.integration.patching import installer
    from yolo_adapters.integration.patching.targets import TARGETS

    target = next(t for t in TARGETS if t.optional)
    changed = dataclasses.replace(target, names=("_no_such_loader",))
    assert "_no_such_loader" in (installer._shape_problem(predictor, changed) or "")
    patching.uninstall()
    try:
        installer._installed = True
        installer._on_import(predictor, changed)
        assert not patching.is_patched("ultralytics.engine.predictor", "BasePredictor.preprocess")
        assert (installer.LOGGER.name, f"{target.module}:{target.owner}") not in logs._said
    finally:
        patching.install()


# -- in-memory sources: engine-sized batches run ahead ------------------------------------------------
def _frames(images: list[Path], count: int, same_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """``count`` BGR frames alternating the test photos (mixed shapes), or all resized to ``same_size``."""
    import cv2

    photos = [cv2.imread(str(p)) for p in images]
    if same_size:
        photos = [cv2.resize(p, same_size) for p in photos]
    return [photos[i % len(photos)].copy() for i in range(count)]


def _answers(results: list) -> list[tuple]:
    return [(r.path, r.orig_shape, r.keypoints.data.numpy().copy()) for r in results]


@pytest.mark.compat_pipeline
@pytest.mark.parametrize("same_size", [None, (480, 320)], ids=["mixed-shapes", "same-shapes"])
def test_in_memory_list_runs_in_engine_batches_with_stock_results(
    same_size: tuple | None, pose_pt: Path, images: list[Path], spy: list
) -> None:
    """A list of frames gives what the stock loop gives for the whole list (paths, order, the whole list's letterbox
    decision), in batches of the engine's size, at most ``depth`` ahead, the first result after the first batches."""
    from ultralytics import YOLO

    frames = _frames(images, 13, same_size)

    def run(**options) -> tuple[list, YOLO, int]:
        yolo_adapters.activate("openvino", hint="throughput", **options)
        model = YOLO(str(pose_pt))
        model.predict(frames[:1], imgsz=320, verbose=False)  # build and compile outside the measured call
        before = model.predictor.model.engine.calls
        first_at = None
        results = []
        for result in model.predict(frames, stream=True, imgsz=320, verbose=False):
            if first_at is None:
                first_at = model.predictor.model.engine.calls - before
            results.append(result)
        return results, model, first_at

    stock, _, stock_first = run(pipeline=False)
    assert not spy
    piped, model, piped_first = run()
    assert len(spy) == 1, "the in-memory list did not run through the pipeline"
    assert any(len(r.boxes) for r in stock), "nobody found: the comparison would prove nothing"
    assert len(piped) == len(stock) == 13
    for i, (a, b) in enumerate(zip(_answers(stock), _answers(piped))):
        assert a[0] == b[0] == f"image{i}.jpg" and a[1] == b[1], f"frame {i}"
        np.testing.assert_allclose(a[2], b[2], atol=1e-3, err_msg=f"frame {i}")
    engine = model.predictor.model.engine
    size = max(engine.parallel, 1)
    assert 1 <= spy[0].ahead_max <= spy[0].depth
    assert piped_first <= (spy[0].depth + 1) * size < 13, "the first result waited for the whole list"
    assert stock_first >= 2  # stock runs the whole list as one batch before its first result
    assert engine._idle.qsize() == engine.parallel + 1  # every infer request was given back


def test_tensor_source_runs_in_engine_batches_with_stock_results(pose_pt: Path, images: list[Path], spy: list) -> None:
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((320, 320), auto=False)
    frames = [letterbox(image=f)[..., ::-1].transpose(2, 0, 1) for f in _frames(images, 5)]
    tensor = torch.from_numpy(np.ascontiguousarray(np.stack(frames))).float() / 255

    def run(**options) -> list:
        yolo_adapters.activate("openvino", hint="throughput", **options)
        return list(YOLO(str(pose_pt)).predict(tensor, stream=True, imgsz=320, verbose=False))

    stock, piped = run(pipeline=False), run()
    assert len(spy) == 1 and len(piped) == len(stock) == 5
    for i, (a, b) in enumerate(zip(_answers(stock), _answers(piped))):
        assert a[0] == b[0] and a[1] == b[1], f"frame {i}"
        np.testing.assert_allclose(a[2], b[2], atol=1e-3, err_msg=f"frame {i}")


# -- no hang: a request that never completes is an error after request_timeout ------------------------------------
class _StuckRequest:
    """An OpenVINO infer request that never completes, as on a hung device or driver."""

    def start_async(self, inputs) -> None:
        pass

    def wait_for(self, milliseconds: int) -> bool:
        import time

        time.sleep(min(milliseconds, 100) / 1000)
        return False

    def cancel(self) -> None:
        pass


class _StuckCompiled:
    def __init__(self, real) -> None:
        self._real = real

    def create_infer_request(self) -> _StuckRequest:
        return _StuckRequest()

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def _consume_in_thread(model, source, seconds: float = 90) -> dict:
    import threading

    outcome: dict = {}

    def consume() -> None:
        try:
            outcome["results"] = list(model.predict(source, stream=True, imgsz=160, verbose=False))
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(seconds)
    outcome["hung"] = thread.is_alive()
    return outcome


def test_stuck_openvino_request_is_an_error_not_a_hang(pose_pt: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    from yolo_adapters.errors import EngineTimeoutError

    video = _write_video(tmp_path / "stuck.avi", 30)
    yolo_adapters.activate("openvino", hint="throughput", request_timeout=1)
    model = YOLO(str(pose_pt))
    model.predict(np.full((128, 192, 3), 90, np.uint8), imgsz=160, verbose=False)  # built, compiled, in step
    engine = model.predictor.model.engine
    assert engine.timeout == 1
    engine.compiled = _StuckCompiled(engine.compiled)  # every request made from now on never completes
    outcome = _consume_in_thread(model, str(video))
    assert not outcome["hung"], "the stream hung on a request that never completes"
    assert isinstance(outcome.get("error"), EngineTimeoutError), outcome
    assert "did not complete within 1 s" in str(outcome["error"]) or "came free within 1 s" in str(outcome["error"])


def test_stuck_onnxruntime_run_is_an_error_not_a_hang(
    pose_pt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from ultralytics import YOLO

    from yolo_adapters.backends.onnxruntime import ONNXRuntimeEngine
    from yolo_adapters.errors import EngineTimeoutError

    video = _write_video(tmp_path / "stuck.avi", 30)
    yolo_adapters.activate("onnxruntime", request_timeout=1)
    model = YOLO(str(pose_pt))
    model.predict(np.full((128, 192, 3), 90, np.uint8), imgsz=160, verbose=False)
    release = threading.Event()
    real = ONNXRuntimeEngine.infer

    def stuck(self, batch):
        release.wait(120)  # a run that does not come back (let go at the end of the test)
        return real(self, batch)

    monkeypatch.setattr(ONNXRuntimeEngine, "infer", stuck)
    try:
        outcome = _consume_in_thread(model, str(video))
    finally:
        release.set()
    assert not outcome["hung"], "the stream hung on a run that never completes"
    assert isinstance(outcome.get("error"), EngineTimeoutError), outcome


# -- multi-stream sources and every release: the same pipeline ---------------------------------------
@pytest.mark.compat_pipeline
def test_streams_file_is_pipelined_with_the_serial_results(
    pose_pt: Path, images: list[Path], tmp_path: Path, spy: list
) -> None:
    """A ``.streams`` file naming two videos (LoadStreams, one frame of each per batch): read ahead by the pipeline,
    every frame of each stream once and in order, and the same people as the serial loop. ``stream_buffer=True``
    makes LoadStreams keep every frame, so both runs see the same frames."""
    from ultralytics import YOLO

    first = _write_video(tmp_path / "a.avi", 12, images)
    second = _write_video(tmp_path / "b.avi", 12, images[::-1])
    streams = tmp_path / "two.streams"
    streams.write_text(f"{first}\n{second}\n")

    def run(**options) -> list[tuple[str, int, np.ndarray]]:
        yolo_adapters.activate("openvino", hint="throughput", **options)
        try:
            model = YOLO(str(pose_pt))
            stream = model.predict(str(streams), stream=True, stream_buffer=True, imgsz=320, verbose=False)
            return [(Path(r.path).name, _frame_index(r.orig_img), r.keypoints.data.numpy().copy()) for r in stream]
        finally:
            yolo_adapters.deactivate()

    serial = run(pipeline=False)
    assert not spy
    piped = run()
    assert len(spy) == 1, "the streams did not run through the pipeline"
    assert 1 <= spy[0].ahead_max <= spy[0].depth
    for name in ("a.avi", "b.avi"):
        assert [i for n, i, _ in piped if n.endswith(name)] == list(range(12)), name  # path: the cleaned source name
    assert [(n, i) for n, i, _ in piped] == [(n, i) for n, i, _ in serial]
    assert any(k.shape[0] for _, _, k in serial), "no people found: the check would prove nothing"
    for (name, index, a), (_, _, b) in zip(serial, piped):
        np.testing.assert_allclose(a, b, atol=1e-3, err_msg=f"{name} frame {index}")
