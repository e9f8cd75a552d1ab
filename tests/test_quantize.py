"""INT8 with NNCF: calibration at the real input shape, head kept in float, every task, report, the INT8 model runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from yolo_adapters.errors import OptionError
from yolo_adapters.runtime import AdapterBackend

pytest.importorskip("openvino")
nncf = pytest.importorskip("nncf")
from ultralytics import YOLO  # noqa: E402

from yolo_adapters import quantize  # noqa: E402

TASKS = ("detect", "segment", "pose", "obb", "classify")
# 4 calibration images, 1 held back for the report; NNCF's fast bias correction (the default, full, runs for pose)
SMALL = {"imgsz": 320, "calibration_size": 4, "holdout": 1, "fast_bias_correction": True}
FULL = {**SMALL, "fast_bias_correction": False}


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """Five offline calibration images: bus, zidane, and flips/crops/rescales of them (people in every one)."""
    import cv2

    folder = tmp_path_factory.mktemp("calibration")
    bus, zidane = (cv2.imread(str(p)) for p in images)
    cv2.imwrite(str(folder / "a_bus.jpg"), bus)
    cv2.imwrite(str(folder / "b_bus_flip.jpg"), bus[:, ::-1])
    cv2.imwrite(str(folder / "c_zidane.jpg"), zidane)  # the held-back image (the middle one)
    cv2.imwrite(str(folder / "d_zidane_crop.jpg"), zidane[:, 200:1000])
    nested = folder / "more"
    nested.mkdir()
    cv2.imwrite(str(nested / "e_bus_small.png"), cv2.resize(bus, (405, 540)))
    return folder


@pytest.fixture
def fed_to_nncf(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of every tensor NNCF's calibration dataset hands the model (spied on nncf.quantize)."""
    shapes: list[tuple[int, ...]] = []
    real = nncf.quantize

    def spy(model, calibration_dataset, **kwargs):
        shapes.extend(tuple(np.asarray(t).shape) for t in calibration_dataset.get_inference_data())
        return real(model, calibration_dataset, **kwargs)

    monkeypatch.setattr(nncf, "quantize", spy)
    return shapes


def _runtime_int8_ops(module: AdapterBackend) -> int:
    """Convolutions the compiled model executes in int8/uint8 (OpenVINO's execution graph, not the IR)."""
    runtime = module.engine.compiled.get_runtime_model()
    count = 0
    for op in runtime.get_ops():
        info = op.get_rt_info()
        kind, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
        count += kind == "Convolution" and precision.lower() in ("i8", "u8")
    return count


def _assert_head_in_float(xml: Path) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    assert sum(k == "FakeQuantize" for k in kinds.values()) > 10, "the IR is not quantized"
    head = quantize.head_postprocessing(model)
    assert head, "no post-processing found"
    assert not [n for n in head if kinds[n] == "FakeQuantize"], "a quantizer sits inside the head's decode"


# -- no data -----------------------------------------------------------------------------------------------
def test_no_calibration_data_is_a_clear_error(
    checkpoints: dict, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics.engine.exporter as exporter

    def no_export(*args, **kwargs):
        raise AssertionError("the exporter ran (and might download coco8) before the missing data was reported")

    monkeypatch.setattr(exporter.Exporter, "__call__", no_export)
    model = YOLO(str(checkpoints["pose"]))
    yolo_adapters.activate("openvino", precision="int8", imgsz=320)
    with pytest.raises(OptionError, match="calibration images.*calibration='IMAGES_DIR'.*--data"):
        model.predict(str(images[0]), verbose=False)
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(OptionError, match="holds no images"):
        quantize.quantize_model(checkpoints["pose"], tmp_path, imgsz=320)
    with pytest.raises(OptionError, match="does not exist"):
        quantize.quantize_model(checkpoints["pose"], tmp_path / "missing", imgsz=320)

    from yolo_adapters.cli import main

    assert main(["convert", str(checkpoints["pose"]), "-b", "openvino", "--precision", "int8"]) == 2


def test_calibration_content_is_in_the_cache_key(calib_dir: Path, tmp_path: Path) -> None:
    import shutil

    from yolo_adapters.backends.base import ExportPlan
    from yolo_adapters.cache import make_key

    plan = ExportPlan("openvino", (320, 320), 1, True, "int8")
    other = tmp_path / "copy"
    shutil.copytree(calib_dir, other)
    same = [make_key({"plan": quantize.int8_plan(plan, {"calibration": d})}) for d in (calib_dir, other)]
    assert same[0] == same[1], "the folder's path must not matter, only its content"
    (other / "a_bus.jpg").write_bytes((other / "a_bus.jpg").read_bytes()[:-10])
    changed = make_key({"plan": quantize.int8_plan(plan, {"calibration": other})})
    assert changed != same[0]
    assert make_key({"plan": quantize.int8_plan(plan, {"calibration": calib_dir, "calibration_size": 2})}) != same[0]


def test_holdout_split() -> None:
    files = [Path(f"{i}.jpg") for i in range(10)]
    calib, held = quantize.split_holdout(files)
    assert len(held) == 2 and not set(calib) & set(held) and len(calib) + len(held) == 10
    assert quantize.split_holdout(files, 0) == (files, [])
    assert quantize.split_holdout(files[:1]) == (files[:1], files[:1])


# -- every task --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_every_task_quantizes(task: str, checkpoints: dict, images: list[Path], calib_dir: Path, fed_to_nncf: list) -> None:
    options = FULL if task == "pose" else SMALL
    result = quantize.quantize_model(checkpoints[task], calib_dir, **options)
    artifact = result.artifact
    assert artifact.parent.name.endswith("_int8_openvino_model") and artifact.suffix == ".xml"
    assert fed_to_nncf == [(1, 3, 320, 320)] * 4, "calibration tensors must have the model's input shape"
    _assert_head_in_float(artifact)

    report = result.report
    assert report is not None and report == json.loads((artifact.parent / quantize.REPORT_FILE).read_text())
    assert report["task"] == task and report["input_shape"] == [1, 3, 320, 320]
    assert report["calibration"]["images"] == 4 and report["calibration"]["held_back"] == ["c_zidane.jpg"]
    assert report["quantization"]["preset"] == "mixed" and report["quantization"]["fake_quantize"] > 10
    assert report["quantization"]["settings"]["fast_bias_correction"] is (task != "pose")
    kept = report["quantization"]["kept_in_float"]
    agreement = report["agreement"]
    if task == "classify":
        assert kept.get("Softmax", 0) >= 1
        assert agreement["top1_agreement"] is not None
    else:
        assert kept.get("Sigmoid", 0) >= 1 and kept.get("Softmax", 0) >= 1  # class scores, DFL
        assert report["quantization"]["kept_in_float_by_reason"]["head_outputs"] >= 6  # box + class convs x 3 levels
        assert agreement["reference_detections"] > 0 and agreement["matched"] > 0
        assert agreement["mean_box_iou"] > 0.8

    # The same options through activate(): the cached INT8 model is what Ultralytics' predictor runs.
    yolo_adapters.activate("openvino", precision="int8", calibration=str(calib_dir), **options)
    model = YOLO(str(checkpoints[task]))
    result = model.predict(str(images[0]), verbose=False)[0]
    module = model.predictor.model
    assert isinstance(module, AdapterBackend) and module.artifact == artifact
    assert module.engine.calls >= 1 and _runtime_int8_ops(module) > 10
    found = result.probs if task == "classify" else (result.obb if task == "obb" else result.boxes)
    assert found is not None and (task == "classify" or len(found) > 0)


def test_pose_int8_keeps_people_and_keypoints(checkpoints: dict, images: list[Path], calib_dir: Path) -> None:
    """Real COCO weights: on the held-back image INT8 finds every confident person FP32 finds, keypoints close."""
    report = quantize.quantize_model(checkpoints["pose"], calib_dir, **FULL).report
    agreement = report["agreement"]
    assert agreement["confident_reference"] >= 2
    assert agreement["confident_found"] == agreement["confident_reference"], agreement["unmatched"]
    assert agreement["mean_keypoint_px"] < 6.0  # at 320 input on a 1280x720 image (the 640 figure is in the docs)
    assert agreement["min_box_iou"] > 0.9


# -- rectangular static shape, batch 2 ---------------------------------------------------------------------
def test_rectangular_static_int8(checkpoints: dict, images: list[Path], calib_dir: Path, fed_to_nncf: list) -> None:
    options = {**SMALL, "imgsz": [736, 1280], "dynamic": False, "batch": 2}
    result = quantize.quantize_model(checkpoints["pose"], calib_dir, **options)
    assert fed_to_nncf == [(2, 3, 736, 1280)] * 2, "calibration tensors must have the model's static input shape"
    assert result.report["input_shape"] == [2, 3, 736, 1280] and result.report["dynamic"] is False
    _assert_head_in_float(result.artifact)

    yolo_adapters.activate("openvino", precision="int8", calibration=str(calib_dir), **options)
    model = YOLO(str(checkpoints["pose"]))
    results = model.predict([str(p) for p in images], verbose=False)
    module = model.predictor.model
    assert module.artifact == result.artifact and module.engine.input_shape == (2, 3, 736, 1280)
    assert _runtime_int8_ops(module) > 10
    assert [len(r.boxes) >= 2 for r in results] == [True, True]


# -- both conversion routes ----------------------------------------------------------------------------------
def test_head_found_in_onnx_route(checkpoints: dict) -> None:
    """The ignored scope comes from the graph, so an ONNX -> OpenVINO conversion (other node names) works too."""
    import openvino as ov

    from yolo_adapters import registry
    from yolo_adapters.runtime import resolve_artifact

    pytest.importorskip("onnxruntime")
    backend = registry.get_backend("onnxruntime")
    onnx_file = resolve_artifact(str(checkpoints["pose"]), backend, "cpu", backend.validate_options({"imgsz": 320}))
    model = ov.Core().read_model(str(onnx_file))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    head = quantize.head_postprocessing(model)
    found = {kinds[n] for n in head}
    assert {"Sigmoid", "Softmax", "Multiply", "Concat"} <= found
    learned = [n for n in head if kinds[n] in ("Convolution", "MatMul")]
    assert len(learned) == 1, f"only the DFL's fixed convolution belongs to the decode, got {learned}"


# -- the CLI ---------------------------------------------------------------------------------------------------
def test_cli_convert_int8_prints_report(checkpoints: dict, calib_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from yolo_adapters.cli import main

    argv = ["convert", str(checkpoints["pose"]), "-b", "openvino", "--precision", "int8", "--data", str(calib_dir),
            "--imgsz", "320", "-o", "calibration_size=4", "-o", "holdout=1"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("_int8_openvino_model/model.xml")
    assert "INT8 vs FP32 on 1 held-back images" in err and "mean keypoint distance" in err
