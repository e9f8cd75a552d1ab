"""ONNX Runtime engine: every task matches PyTorch, the session really runs, providers and options behave."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import yolo_adapters
from tests.support.engine_checks import assert_engine_ran_not_pytorch
from tests.support.needs import require
from yolo_adapters.compare.parity import DEFAULT_TOLERANCES, Tolerances, compare_results
from yolo_adapters.core import logs
from yolo_adapters.errors import BackendUnavailableError, DeviceError, ModelFormatError, OptionError
from yolo_adapters.integration.module import EngineModule

ort = require("onnxruntime")
onnx = require("onnx")
from ultralytics import YOLO  # noqa: E402

from yolo_adapters.backends.onnxruntime import fp16 as ort_convert  # noqa: E402
from yolo_adapters.backends.onnxruntime import plugin as ort_backend  # noqa: E402

TASKS = ("detect", "segment", "pose", "obb", "classify")
CPU = "CPUExecutionProvider"


def _predict(model: YOLO, images: list[Path], **kwargs):
    return [model.predict(str(im), verbose=False, **kwargs)[0] for im in images]


def _assert_agrees(reference: list, candidate: list, tol: Tolerances = DEFAULT_TOLERANCES) -> None:
    assert len(reference) == len(candidate)
    for ref, cand in zip(reference, candidate):
        agreement = compare_results(ref, cand, tol=tol)
        failures = agreement.failures(tol)
        if failures:
            print(f"{agreement.task}: {failures}")
        assert agreement.passed(tol), failures


@pytest.fixture(scope="module")
def pose_reference(checkpoints: dict, images: list[Path]) -> list:
    return _predict(YOLO(str(checkpoints["pose"])), images, device="cpu")


@pytest.fixture
def pose_onnx(checkpoints: dict, images: list[Path], tmp_path: Path) -> Path:
    """The converted pose model copied out of the cache, as a user's own .onnx file."""
    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="onnxruntime", verbose=False)
    target = tmp_path / "pose.onnx"
    shutil.copy(model.predictor.model.artifact, target)
    return target


# -- parity and proof the engine ran -------------------------------------------------------------------
@pytest.mark.compat_parity
@pytest.mark.parametrize("task", TASKS)
def test_every_task_matches_pytorch(task: str, checkpoints: dict, images: list[Path]) -> None:
    # Separate model objects: Ultralytics < 8.4 keeps the first predictor's device for a model's lifetime.
    reference = _predict(YOLO(str(checkpoints[task])), images, device="cpu")
    model = YOLO(str(checkpoints[task]))
    candidate = _predict(model, images, device="onnxruntime")

    engine_module = model.predictor.model
    assert isinstance(engine_module, EngineModule) and engine_module.format == "onnxruntime"
    assert engine_module.engine.calls >= len(images)
    assert engine_module.engine.providers[0] == CPU
    assert Path(engine_module.artifact).suffix == ".onnx"
    _assert_agrees(reference, candidate)
    if task != "classify":
        assert all(len(r.boxes if task != "obb" else r.obb) > 0 for r in reference), "test model should find people"


def test_engine_runs_not_pytorch(checkpoints: dict, images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert_engine_ran_not_pytorch(checkpoints["pose"], images[0], "onnxruntime", monkeypatch)


@pytest.mark.compat_activation
def test_import_activates(checkpoints: dict, images: list[Path]) -> None:
    sys.modules.pop("yolo_adapters.onnxruntime", None)
    importlib.import_module("yolo_adapters.onnxruntime")
    assert yolo_adapters.active() == "onnxruntime"
    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), verbose=False)  # no device given: the activation routes it
    assert model.predictor.model.format == "onnxruntime"


def test_val_reports_metrics(pose_pt: Path, tiny_pose_dataset: Path) -> None:
    model = YOLO(str(pose_pt))
    metrics = model.val(
        data=str(tiny_pose_dataset), device="onnxruntime", imgsz=640, batch=1, plots=False, verbose=False
    )
    assert metrics.box.map50 > 0.3  # real people in real photos, labelled from the reference model
    assert metrics.pose.map50 > 0.3


# -- providers --------------------------------------------------------------------------------------
def test_device_spellings(checkpoints: dict, images: list[Path]) -> None:
    model = YOLO(str(checkpoints["pose"]))
    for device in ("onnxruntime", "onnxruntime:cpu", "ort", "ORT:CPU", "onnxruntime:CPUExecutionProvider"):
        result = model.predict(str(images[0]), device=device, verbose=False)[0]
        assert isinstance(model.predictor.model, EngineModule), device
        assert model.predictor.model.engine_device == "cpu", device
        assert model.predictor.model.engine.providers == [CPU], device
        assert len(result.boxes) == 4


def test_missing_provider_lists_available(checkpoints: dict, images: list[Path]) -> None:
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime build has TensorRT")
    model = YOLO(str(checkpoints["pose"]))
    with pytest.raises(
        DeviceError, match=r"no TensorrtExecutionProvider here.*Available providers:.*CPUExecutionProvider"
    ):
        model.predict(str(images[0]), device="onnxruntime:tensorrt", verbose=False)
    with pytest.raises(DeviceError, match="knows no execution provider 'quantum'.*CPUExecutionProvider"):
        model.predict(str(images[0]), device="onnxruntime:quantum", verbose=False)
    with pytest.raises(DeviceError, match="takes no device"):
        model.predict(str(images[0]), device="onnxruntime:cpu:1", verbose=False)


def test_fallback_warns_once_and_runs_on_cpu(
    checkpoints: dict,
    images: list[Path],
    pose_reference: list,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime build has TensorRT")
    monkeypatch.setattr(logs, "_said", set())
    yolo_adapters.activate("onnxruntime", device="tensorrt", fallback=True)
    with caplog.at_level("WARNING", logger="yolo_adapters"):
        first = _predict(YOLO(str(checkpoints["pose"])), images)
        model = YOLO(str(checkpoints["pose"]))
        second = _predict(model, images)
    assert model.predictor.model.engine.providers == [CPU]
    warnings = [r.message for r in caplog.records if "fallback=True" in r.message]
    assert len(warnings) == 1 and "TensorrtExecutionProvider" in warnings[0], warnings
    _assert_agrees(pose_reference, first)
    _assert_agrees(pose_reference, second)


def test_provider_chain_and_device_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider list handed to InferenceSession, for GPU providers this CPU machine lacks."""
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    )
    backend = ort_backend.ONNXRuntimePlugin()
    extra = {"provider_options": {"arena_extend_strategy": "kSameAsRequested"}}
    assert backend.resolve_providers("cuda:1", extra) == [
        ("CUDAExecutionProvider", {"device_id": 1, "arena_extend_strategy": "kSameAsRequested"}),
        (CPU, {}),
    ]
    assert backend.resolve_providers(backend.normalize_device("onnxruntime", "TensorrtExecutionProvider:2"), {}) == [
        ("TensorrtExecutionProvider", {"device_id": 2}),
        ("CUDAExecutionProvider", {"device_id": 2}),
        (CPU, {}),
    ]
    assert backend.resolve_providers("cpu", extra) == [(CPU, {"arena_extend_strategy": "kSameAsRequested"})]
    with pytest.raises(DeviceError, match="OpenVINOExecutionProvider.*Available providers: TensorrtExecutionProvider"):
        backend.resolve_providers("openvino:GPU", {})
    # GPU providers get one static serving shape by default, the CPU a dynamic one; opset joins the cache key.
    gpu_plan = backend.export_plan("cuda:0", {"opset": 17}, (640, 640), 4)
    assert (gpu_plan.dynamic, gpu_plan.batch, dict(gpu_plan.extra)) == (False, 4, {"opset": 17})
    cpu_plan = backend.export_plan("cpu", {}, (640, 640), 4)
    assert (cpu_plan.dynamic, cpu_plan.batch, cpu_plan.extra) == (True, 1, ())
    # FP16 is our own pass on an FP32 export: Ultralytics is never asked for half precision.
    from yolo_adapters.integration.export import _exporter_args

    fp16_plan = backend.export_plan("cpu", {"precision": "fp16"}, (640, 640), 1)
    exporter_args = _exporter_args(fp16_plan)
    assert fp16_plan.precision == "fp16" and not exporter_args.get("half") and exporter_args.get("quantize") is None


# -- options ----------------------------------------------------------------------------------------
def test_session_options_and_io_binding(checkpoints: dict, images: list[Path], pose_reference: list) -> None:
    yolo_adapters.activate("onnxruntime", intra_op_threads=1, graph_optimization="basic", io_binding=True)
    model = YOLO(str(checkpoints["pose"]))
    candidate = _predict(model, images)
    engine = model.predictor.model.engine
    session_options = engine.session.get_session_options()
    assert session_options.intra_op_num_threads == 1
    assert session_options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert engine.io_binding is True and engine.calls == len(images)
    _assert_agrees(pose_reference, candidate)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(OptionError, match="graph_optimization='max'"):
        yolo_adapters.activate("onnxruntime", graph_optimization="max")
    with pytest.raises(OptionError, match="'io_binding'.*must be"):
        yolo_adapters.activate("onnxruntime", io_binding="yes")
    with pytest.raises(OptionError, match="'fallback'.*must be bool"):
        yolo_adapters.activate("onnxruntime", fallback=1)
    with pytest.raises(OptionError, match="'intra_op_threads'.*must be int"):
        yolo_adapters.activate("onnxruntime", intra_op_threads="2")
    with pytest.raises(OptionError, match="'opset'.*must be int"):
        yolo_adapters.activate("onnxruntime", opset="17")
    with pytest.raises(OptionError, match="'provider_options'.*must be dict"):
        yolo_adapters.activate("onnxruntime", provider_options=[("device_id", 0)])
    with pytest.raises(OptionError, match="Unknown option 'hint'"):
        yolo_adapters.activate("onnxruntime", hint="latency")  # OpenVINO's option, not ours


def test_opset_is_part_of_the_cache_key(checkpoints: dict, images: list[Path], pose_reference: list) -> None:
    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="onnxruntime", verbose=False)
    default_artifact = model.predictor.model.artifact
    yolo_adapters.activate("onnxruntime", opset=17)
    model17 = YOLO(str(checkpoints["pose"]))
    candidate = _predict(model17, images)
    artifact = model17.predictor.model.artifact
    assert artifact != default_artifact
    assert {o.domain: o.version for o in onnx.load(str(artifact)).opset_import}[""] == 17
    _assert_agrees(pose_reference, candidate)


def test_static_shape_and_batch_padding(checkpoints: dict, images: list[Path]) -> None:
    """A static batch-2 model run on 3 images pads and splits, and gives batch-1's answers."""
    three = [str(images[0]), str(images[1]), str(images[0])]
    yolo_adapters.activate("onnxruntime", dynamic=False, imgsz=320, batch=2)
    model = YOLO(str(checkpoints["pose"]))
    batched = model.predict(three, verbose=False)
    engine_module = model.predictor.model
    assert engine_module.dynamic is False and engine_module.imgsz == [320, 320]
    assert engine_module.engine.input_shape == (2, 3, 320, 320)

    yolo_adapters.activate("onnxruntime", dynamic=False, imgsz=320, batch=1)
    single = YOLO(str(checkpoints["pose"])).predict(three, verbose=False)
    assert len(batched) == len(single) == 3
    _assert_agrees(single, batched)


# -- fp16 -------------------------------------------------------------------------------------------
def _has_fp16_weights(path: Path) -> bool:
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(path)).graph.initializer)


FP16 = Tolerances(box_iou=0.98, score=5e-3, keypoint_px=2.0)  # half precision moves scores by ~1e-3


def test_fp16_precision_converts_separately(checkpoints: dict, images: list[Path], pose_reference: list) -> None:
    yolo_adapters.activate("onnxruntime", precision="fp16")
    model = YOLO(str(checkpoints["pose"]))
    candidate = _predict(model, images)
    artifact = Path(model.predictor.model.artifact)
    assert _has_fp16_weights(artifact)
    assert model.predictor.model.engine.input_dtype == np.float32  # float32 inputs and outputs kept
    _assert_agrees(pose_reference, candidate, FP16)


def test_fp16_pass_is_idempotent(pose_onnx: Path, images: list[Path], pose_reference: list) -> None:
    """The FP16 pass converts an FP32 file once and leaves an FP16 one alone."""
    assert not _has_fp16_weights(pose_onnx)
    assert ort_convert.ensure_fp16(pose_onnx) is True
    assert _has_fp16_weights(pose_onnx)
    assert ort_convert.ensure_fp16(pose_onnx) is False  # already FP16: left alone
    model = YOLO(str(pose_onnx), task="pose")
    candidate = _predict(model, images, device="onnxruntime")
    assert model.predictor.model.engine.input_dtype == np.float32  # float32 inputs and outputs kept
    _assert_agrees(pose_reference, candidate, FP16)


def test_fp16_inputs_follow_the_model(pose_onnx: Path, images: list[Path], pose_reference: list) -> None:
    """A GPU-style FP16 export (float16 inputs and outputs) gets float16 input and float32 tensors back."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(pose_onnx)), keep_io_types=False), str(pose_onnx))
    model = YOLO(str(pose_onnx), task="pose")
    candidate = _predict(model, images, device="onnxruntime")
    engine_module = model.predictor.model
    assert engine_module.engine.input_dtype == np.float16
    raw = engine_module(torch.zeros(1, 3, 640, 640))
    assert raw.dtype == torch.float32
    _assert_agrees(pose_reference, candidate, FP16)


# -- model files ------------------------------------------------------------------------------------
def test_existing_onnx_used_as_is(pose_onnx: Path, images: list[Path], pose_reference: list) -> None:
    model = YOLO(str(pose_onnx), task="pose")
    candidate = _predict(model, images, device="onnxruntime")
    assert Path(model.predictor.model.artifact) == pose_onnx
    assert model.predictor.model.engine.calls == len(images)
    _assert_agrees(pose_reference, candidate)


def test_corrupt_onnx_is_a_clear_error(tmp_path: Path, images: list[Path]) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelFormatError, match="ONNX"):
        YOLO(str(broken), task="pose").predict(str(images[0]), device="onnxruntime", verbose=False)


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match=r"yolo-adapters\[onnxruntime\]"):
        yolo_adapters.activate("onnxruntime")
