"""Static-shape engines at the source's rect shape (yolo_adapters.integration.shapes).

A static model (every Ascend .om, ``dynamic=False`` on OpenVINO and ONNX Runtime) used to letterbox every frame to
the square imgsz, where PyTorch letterboxes a portrait 810x1080 frame to 640x480, and answered differently. The
panned-video case: a portrait video of bus.jpg panned sideways must give PyTorch's people on every frame, on each
engine, at the rect shape; the square model, run on the same frames, must fail the same comparison (so it can fail).
These tests convert into their own cache so that the rect conversions they make never reach the other tests.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import yolo_adapters
from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, compare_results
from yolo_adapters.core.cache import ArtifactCache
from yolo_adapters.errors import OptionError
from yolo_adapters.integration.shapes import ShapeBook, ShapeError, parse_shapes

FRAMES = 6
MIN_FRAMES = 3  # the shape rule's tests: frames of a size a mixed source brings before that size converts
PORTRAIT = (640, 480)  # Ultralytics' rect letterbox of an 810x1080 frame at imgsz 640 (height, width)


@pytest.fixture(scope="module")
def rect_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("rect_cache"))


@pytest.fixture(scope="module")
def panned_video(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """bus.jpg (810x1080, portrait) panned sideways, one frame a step: people enter and leave the padding's edge."""
    bus = cv2.imread(str(images[0]))
    path = tmp_path_factory.mktemp("pan") / "pan.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (bus.shape[1], bus.shape[0]))
    for i in range(FRAMES):
        writer.write(np.roll(bus, i * 60, axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def pytorch_on_video(pose_pt: Path, panned_video: Path) -> list:
    from ultralytics import YOLO

    results = list(YOLO(str(pose_pt)).predict(str(panned_video), stream=True, verbose=False))
    assert len(results) == FRAMES and all(len(r.boxes) for r in results)
    return results


def _engine_context(backend: str, tmp_path: Path) -> contextlib.AbstractContextManager:
    if backend != "ascend":
        return contextlib.nullcontext()
    from yolo_adapters.testing import emulate_ascend

    return emulate_ascend(tmp_path, cards=1, chip="910B3")  # precision="fp32": FP32 throughout, shared tolerances


def _on_video(backend: str, pose_pt: Path, video: Path, cache: str, tmp_path: Path, **options):
    from ultralytics import YOLO

    static = {} if backend == "ascend" else {"dynamic": False}
    device = "ascend:0" if backend == "ascend" else backend
    with _engine_context(backend, tmp_path) as emu, yolo_adapters.use(backend, cache_dir=cache, **static, **options):
        model = YOLO(str(pose_pt))
        results = list(model.predict(str(video), stream=True, verbose=False, device=device))
        fed = [feed["nbytes"] for e in emu.of("infer") for feed in e["feeds"]] if emu is not None else None
    return model.predictor.model, results, fed


def _agreeing_frames(reference: list, results: list) -> list[bool]:
    assert len(reference) == len(results)
    return [
        compare_results(ref, got).passed(DEFAULT_TOLERANCES) and len(ref.boxes) == len(got.boxes)
        for ref, got in zip(reference, results)
    ]


@pytest.mark.parametrize("backend", ["ascend", "openvino", "onnxruntime"])
def test_panned_video_gives_pytorchs_people_on_every_frame(
    backend, pose_pt, panned_video, pytorch_on_video, rect_cache, tmp_path
):
    module, results, fed = _on_video(backend, pose_pt, panned_video, rect_cache, tmp_path)
    assert all(_agreeing_frames(pytorch_on_video, results)), [
        compare_results(r, g).failures(DEFAULT_TOLERANCES) for r, g in zip(pytorch_on_video, results)
    ]
    # the static engine really ran, at the rect shape, from the first frame
    assert not module.dynamic and module.imgsz == [640, 640] and module.last_shape == PORTRAIT
    assert module.calls == FRAMES and module.shapes.engines[PORTRAIT].calls == FRAMES
    if backend == "ascend":
        from yolo_adapters.testing.om_format import read_om

        om = next(Path(rect_cache).rglob("*.om"), None)
        headers = [read_om(p)[0].input_shape for p in Path(rect_cache).rglob("*.om")]
        assert om is not None and [1, 3, *PORTRAIT] in headers
        assert fed == [3 * PORTRAIT[0] * PORTRAIT[1] * 4] * FRAMES  # a quarter fewer bytes than 640x640


@pytest.mark.parametrize("backend", ["ascend", "openvino"])
def test_the_square_static_model_fails_the_same_comparison(
    backend, pose_pt, panned_video, pytorch_on_video, rect_cache, tmp_path
):
    """rect=False (every frame padded to 640x640, Ultralytics' own static exports): the comparison above catches
    the answers that change near the padding."""
    module, results, fed = _on_video(backend, pose_pt, panned_video, rect_cache, tmp_path, rect=False)
    assert module.shapes is None and module.last_shape == (640, 640) and module.calls == FRAMES
    assert not all(_agreeing_frames(pytorch_on_video, results))
    if fed is not None:
        assert fed == [3 * 640 * 640 * 4] * FRAMES


def test_pinned_shapes_convert_ahead_and_refuse_a_shape_left_out(pose_pt, images, rect_cache, capsys):
    """``yolo-adapters convert --shapes`` converts ahead; predict(shapes=[...]) then converts nothing, runs the
    pinned shape, and a frame that needs another shape is an error that says how to add it."""
    from ultralytics import YOLO

    from yolo_adapters.tools.cli import main

    assert (
        main(["convert", str(pose_pt), "-b", "onnxruntime", "--shapes", "640x480", "-o", f"cache_dir={rect_cache}"])
        == 0
    )
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and Path(printed[-1]).is_file()
    before = len(ArtifactCache(rect_cache).entries())
    reference = YOLO(str(pose_pt)).predict(str(images[0]), verbose=False)[0]
    with yolo_adapters.use("onnxruntime", cache_dir=rect_cache, dynamic=False, shapes=[(640, 480)]):
        model = YOLO(str(pose_pt))
        got = model.predict(str(images[0]), verbose=False)[0]
        assert len(ArtifactCache(rect_cache).entries()) == before, "a pinned shape converted at run time"
        assert model.predictor.model.last_shape == PORTRAIT and model.predictor.model.imgsz == [640, 640]
        agreement = compare_results(reference, got)
        assert agreement.passed(DEFAULT_TOLERANCES) and agreement.matched > 0, agreement.failures(DEFAULT_TOLERANCES)
        with pytest.raises(ShapeError, match=r"384x640.*--shapes 384x640"):
            model.predict(str(images[1]), verbose=False)  # zidane.jpg, 1280x720: 384x640


def test_a_shape_converted_ahead_runs_from_the_first_photo(pose_pt, images, rect_cache):
    """A single photo (which alone would stay square) runs at its rect shape when that shape's conversion is cached
    already: it costs no conversion."""
    from ultralytics import YOLO

    from yolo_adapters.tools.cli import main

    assert (
        main(
            [
                "convert",
                str(pose_pt),
                "-b",
                "onnxruntime",
                "--shapes",
                "640x480",
                "640x640",
                "-o",
                f"cache_dir={rect_cache}",
            ]
        )
        == 0
    )
    before = len(ArtifactCache(rect_cache).entries())  # the rect shape and the square, converted ahead
    with yolo_adapters.use("onnxruntime", cache_dir=rect_cache, dynamic=False):
        model = YOLO(str(pose_pt))
        model.predict(str(images[0]), verbose=False)
    assert model.predictor.model.last_shape == PORTRAIT
    assert len(ArtifactCache(rect_cache).entries()) == before


def test_photos_of_mixed_sizes_stay_square_and_convert_nothing_more(pose_pt, images, tmp_path):
    """Two photos of different sizes, one call each: neither shape repeats, so both run on the square engine (the
    answers of rect=False exactly) and the only conversion is the square one."""
    from ultralytics import YOLO

    with yolo_adapters.use("openvino", cache_dir=str(tmp_path), dynamic=False, rect=False):
        square = [YOLO(str(pose_pt)).predict(str(image), verbose=False)[0] for image in images]
    with yolo_adapters.use("openvino", cache_dir=str(tmp_path), dynamic=False):
        model = YOLO(str(pose_pt))
        got = [model.predict(str(image), verbose=False)[0] for image in images]
    module = model.predictor.model
    assert list(module.shapes.engines) == [(640, 640)] and len(ArtifactCache(str(tmp_path)).entries()) == 1
    assert module.shapes.letterboxed == {(1080, 810, 3): PORTRAIT, (720, 1280, 3): (384, 640)}
    for a, b in zip(square, got):
        assert len(a.boxes) == len(b.boxes) > 0 and np.array_equal(a.boxes.data.numpy(), b.boxes.data.numpy())


# -- the shape rule (no engines) ----------------------------------------------------------------------------------
class _Engine:
    def __init__(self, shape):
        self.input_shape, self.calls = (1, 3, *shape), 0

    def close(self):
        pass


def _book(budget=2, pinned=None, cached=()):
    built = []

    def build(shape):
        built.append(shape)
        return _Engine(shape)

    book = ShapeBook(
        (640, 640),
        build,
        budget=budget,
        min_frames=MIN_FRAMES,
        pinned=pinned,
        engines={(640, 640): _Engine((640, 640))},
        cached=lambda shape: shape in cached,
    )
    return book, built


def test_uniform_sources_take_their_shape_at_once_and_odd_photos_stay_square():
    book, built = _book()
    assert book.admit((384, 640), frames=1, uniform=True)  # a video: from its first frame
    assert all(not book.admit((640, 480), frames=1, uniform=False) for _ in range(MIN_FRAMES - 1))
    assert book.admit((640, 480), frames=1, uniform=False)  # the shape repeated: now it is worth a conversion
    assert book.engine((640, 480)) is not None and built == [(640, 480)]
    assert book.engine((512, 640)) is None  # never admitted: never built


def test_cached_shapes_need_no_repeats_and_the_budget_bounds_conversions():
    book, built = _book(budget=2, cached={(640, 480)})
    assert book.admit((640, 480), frames=1, uniform=False)
    assert book.admit((384, 640), frames=2, uniform=False) is False
    assert book.admit((384, 640), frames=1, uniform=True)
    assert not book.admit((512, 640), frames=1, uniform=True)  # two rect shapes already: square from now on
    assert not book.admit((512, 640), frames=1, uniform=True)
    assert book.admit((640, 640), frames=1, uniform=False)  # the square always runs
    assert built == []  # admitted shapes build on their first batch, not before


def test_pinned_shapes_are_the_only_shapes():
    book, _ = _book(pinned=((640, 480),))
    assert book.admit((640, 480), frames=1, uniform=False)
    with pytest.raises(ShapeError, match=r"384x640.*shapes=\[\(640, 480\)\].*--shapes 384x640"):
        book.admit((384, 640), frames=1, uniform=True)
    with pytest.raises(ShapeError, match="640x640"):
        book.admit((640, 640), frames=1, uniform=True)
    with_square, _ = _book(pinned=((640, 480), (640, 640)))
    assert not with_square.admit((384, 640), frames=1, uniform=True)  # runs square, as pinned


def test_shapes_option_is_checked():
    assert parse_shapes([(384, 640), "640x480", [384, 640]]) == ((384, 640), (640, 480))
    for bad in ([], [(384,)], ["big"], [(0, 640)]):
        with pytest.raises(OptionError):
            parse_shapes(bad)
