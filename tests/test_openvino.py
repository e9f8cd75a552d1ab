"""OpenVINO engine: every task matches PyTorch, the engine really runs, options and bad input behave."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import yolo_adapters
from tests.support.engine_checks import assert_engine_ran_not_pytorch
from tests.support.needs import require
from yolo_adapters.compare.parity import compare_results
from yolo_adapters.errors import (
    BackendUnavailableError,
    ConversionError,
    DeviceError,
    ModelFormatError,
    OptionError,
    UnknownBackendError,
)
from yolo_adapters.integration.module import EngineModule

require("openvino")
from ultralytics import YOLO  # noqa: E402

TASKS = ("detect", "segment", "pose", "obb", "classify")


def _predict(model: YOLO, images: list[Path], **kwargs):
    return [model.predict(str(im), verbose=False, **kwargs)[0] for im in images]


@pytest.mark.compat_openvino
@pytest.mark.compat_parity
@pytest.mark.parametrize("task", TASKS)
def test_every_task_matches_pytorch(task: str, checkpoints: dict, images: list[Path]) -> None:
    # Separate model objects: Ultralytics < 8.4 keeps the first predictor's device for a model's lifetime.
    reference = _predict(YOLO(str(checkpoints[task])), images, device="cpu")
    model = YOLO(str(checkpoints[task]))
    candidate = _predict(model, images, device="openvino")

    engine_module = model.predictor.model
    assert isinstance(engine_module, EngineModule) and engine_module.format == "openvino"
    assert engine_module.engine.calls >= len(images)
    for ref, cand in zip(reference, candidate):
        agreement = compare_results(ref, cand)
        assert agreement.passed(), agreement.failures()
        if task != "classify":
            assert agreement.reference > 0, "the test model should find someone on this image"


def test_engine_runs_not_pytorch(checkpoints: dict, images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert_engine_ran_not_pytorch(checkpoints["pose"], images[0], "openvino", monkeypatch)


def test_device_spellings(checkpoints: dict, images: list[Path]) -> None:
    model = YOLO(str(checkpoints["pose"]))
    for device in ("openvino:CPU", "openvino:cpu", "intel:cpu", "OpenVINO"):
        result = model.predict(str(images[0]), device=device, verbose=False)[0]
        assert isinstance(model.predictor.model, EngineModule), device
        assert model.predictor.model.engine_device == "CPU"
        assert len(result.boxes) == 4


def test_unknown_openvino_device_lists_available(checkpoints: dict, images: list[Path]) -> None:
    model = YOLO(str(checkpoints["pose"]))
    with pytest.raises(DeviceError, match=r"no device 'XPU'.*Available: CPU"):
        model.predict(str(images[0]), device="openvino:XPU", verbose=False)
    with pytest.raises(DeviceError, match="GPU"):
        model.predict(str(images[0]), device="openvino:MULTI:GPU,CPU", verbose=False)


def test_existing_ir_folder_and_xml_used_as_is(checkpoints: dict, images: list[Path], tmp_path: Path) -> None:
    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="openvino", verbose=False)
    cached_xml = Path(model.predictor.model.artifact)
    folder = tmp_path / "pose_openvino_model"
    shutil.copytree(cached_xml.parent, folder)

    for given in (folder, folder / cached_xml.name):
        ir = YOLO(str(given), task="pose")
        result = ir.predict(str(images[0]), device="openvino", verbose=False)[0]
        assert Path(ir.predictor.model.artifact).parent == folder
        assert len(result.keypoints) == 4


def test_static_shape_and_batch_padding(checkpoints: dict, images: list[Path]) -> None:
    """A static batch-2 model run on 3 images pads and splits, and gives batch-1's answers."""
    three = [str(images[0]), str(images[1]), str(images[0])]
    yolo_adapters.activate("openvino", dynamic=False, imgsz=320, batch=2)
    model = YOLO(str(checkpoints["pose"]))
    batched = model.predict(three, imgsz=320, verbose=False)  # Ultralytics < 8.4 does not adopt a static model's size
    engine_module = model.predictor.model
    assert engine_module.dynamic is False and engine_module.imgsz == [320, 320]
    assert engine_module.engine.input_shape == (2, 3, 320, 320)

    yolo_adapters.activate("openvino", dynamic=False, imgsz=320, batch=1)
    single = YOLO(str(checkpoints["pose"])).predict(three, imgsz=320, verbose=False)
    assert len(batched) == len(single) == 3
    for a, b in zip(batched, single):
        agreement = compare_results(b, a)
        assert agreement.passed(), agreement.failures()


def test_val_reports_metrics(pose_pt: Path, tiny_pose_dataset: Path) -> None:
    model = YOLO(str(pose_pt))
    metrics = model.val(data=str(tiny_pose_dataset), device="openvino", imgsz=640, batch=1, plots=False, verbose=False)
    assert metrics.box.map50 > 0.3  # real people in real photos, labelled from the reference model
    assert metrics.pose.map50 > 0.3


def test_corrupt_ir_is_a_clear_error(tmp_path: Path, images: list[Path]) -> None:
    folder = tmp_path / "broken_openvino_model"
    folder.mkdir()
    (folder / "model.xml").write_text("<net>this is not an IR")
    (folder / "metadata.yaml").write_text("task: pose\nnames: {0: person}\nkpt_shape: [17, 3]\nstride: 32\n")
    with pytest.raises(ModelFormatError, match="corrupt or incomplete"):
        YOLO(str(folder), task="pose").predict(str(images[0]), device="openvino", verbose=False)


def test_mismatched_ir_metadata_is_a_clear_error(checkpoints: dict, images: list[Path], tmp_path: Path) -> None:
    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="openvino", verbose=False)
    folder = tmp_path / "mixed_openvino_model"
    shutil.copytree(Path(model.predictor.model.artifact).parent, folder)
    meta = (folder / "metadata.yaml").read_text().replace("kpt_shape:\n- 17\n- 3", "kpt_shape:\n- 5\n- 3")
    assert "- 5" in meta
    (folder / "metadata.yaml").write_text(meta)
    with pytest.raises(ModelFormatError, match="does not match its metadata"):
        YOLO(str(folder), task="pose").predict(str(images[0]), device="openvino", verbose=False)


def test_missing_openvino_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match=r"yolo-adapters\[openvino\]"):
        yolo_adapters.activate("openvino")


def test_unknown_backend_lists_registered() -> None:
    with pytest.raises(UnknownBackendError, match="openvino"):
        yolo_adapters.activate("tensorflow-lite")


def test_bad_options_are_rejected() -> None:
    with pytest.raises(OptionError, match="hint"):
        yolo_adapters.activate("openvino", hint="fast")
    with pytest.raises(OptionError, match="must be int"):
        yolo_adapters.activate("openvino", batch="2")
    with pytest.raises(OptionError, match="Unknown option 'trheads'"):
        yolo_adapters.activate("openvino", trheads=2)


def test_bad_imgsz_names_the_stride(checkpoints: dict, images: list[Path]) -> None:
    yolo_adapters.activate("openvino", imgsz=333, dynamic=False)
    with pytest.raises(ModelFormatError, match="multiples of the model stride 32"):
        YOLO(str(checkpoints["pose"])).predict(str(images[0]), verbose=False)


def test_unwritable_cache_falls_back_with_warning(
    checkpoints: dict, images: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    yolo_adapters.activate("openvino", cache_dir=str(blocker / "cache"))
    with caplog.at_level("WARNING", logger="yolo_adapters"):
        result = YOLO(str(checkpoints["pose"])).predict(str(images[0]), verbose=False)[0]
    assert len(result.boxes) == 4
    assert any("not writable" in r.message for r in caplog.records)


def test_fp16_precision_converts_separately(checkpoints: dict, images: list[Path]) -> None:
    model = YOLO(str(checkpoints["pose"]))
    fp32 = model.predict(str(images[0]), device="openvino", verbose=False)[0]
    fp32_artifact = model.predictor.model.artifact
    yolo_adapters.activate("openvino", precision="fp16")
    model16 = YOLO(str(checkpoints["pose"]))
    fp16 = model16.predict(str(images[0]), verbose=False)[0]
    assert model16.predictor.model.artifact != fp32_artifact
    assert len(fp16.boxes) == len(fp32.boxes)
    assert torch.allclose(fp16.boxes.conf, fp32.boxes.conf, atol=0.05)


def test_submit_copies_the_batch(checkpoints: dict, images: list[Path]) -> None:
    """Once submit() returns, the engine owns its input: the caller's array may be reused at once. OpenVINO's
    zero-copy inputs (share_inputs=True) broke this and, over a long stream, crashed the process."""
    import numpy as np

    model = YOLO(str(checkpoints["pose"]))
    model.predict(str(images[0]), device="openvino", imgsz=320, verbose=False)
    engine = model.predictor.model.engine
    rng = np.random.default_rng(0)
    batches = [rng.random((1, 3, 320, 320), dtype=np.float32) for _ in range(8)]
    expected = [engine.infer(b.copy()) for b in batches]
    for batch, want in zip(batches, expected):
        pending = engine.submit(batch)
        batch[:] = 0.0  # what a caller recycling its buffer does
        for got, ref in zip(pending.result(), want):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


# -- conversion chosen by what works (issue 17) --------------------------------------------------------------
def _old_exporter(monkeypatch: pytest.MonkeyPatch, failing: tuple[str, ...]) -> None:
    """Ultralytics' exporter failing for ``failing`` formats as 8.1-8.3's does with OpenVINO 2026."""
    from ultralytics.engine import exporter

    real = exporter.Exporter.__call__

    def call(self, model=None):
        if self.args.format in failing:
            raise AttributeError("module 'openvino' has no attribute 'runtime'")
        return real(self, model)

    monkeypatch.setattr(exporter.Exporter, "__call__", call)


@pytest.mark.parametrize("task", ("detect", "segment"))
def test_exporter_that_cannot_make_openvino_falls_back_to_onnx(
    task: str,
    checkpoints: dict,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ONNX route (Ultralytics' ONNX export + openvino.convert_model) gives the cache layout of Ultralytics' own
    OpenVINO export and PyTorch's results."""
    import logging

    _old_exporter(monkeypatch, ("openvino",))
    reference = _predict(YOLO(str(checkpoints[task])), images, device="cpu")
    yolo_adapters.activate("openvino", cache_dir=str(tmp_path / "cache"))
    model = YOLO(str(checkpoints[task]))
    with caplog.at_level(logging.WARNING, logger="yolo_adapters"):
        candidate = _predict(model, images)
    assert any("through Ultralytics' onnx export instead" in r.message for r in caplog.records)
    artifact = model.predictor.model.artifact
    assert artifact.suffix == ".xml" and artifact.parent.name.endswith("_openvino_model")
    assert (artifact.parent / "metadata.yaml").is_file() and artifact.with_suffix(".bin").is_file()
    assert not list(artifact.parent.parent.glob("*.onnx")), "the cache keeps only what runs"
    for ref, cand in zip(reference, candidate):
        agreement = compare_results(ref, cand)
        assert agreement.passed(), agreement.failures()


def test_no_route_to_openvino_is_one_error_naming_versions(
    checkpoints: dict, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics

    from yolo_adapters.core import registry

    _old_exporter(monkeypatch, ("openvino", "onnx"))
    yolo_adapters.activate("openvino", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConversionError) as caught:
        YOLO(str(checkpoints["detect"])).predict(str(images[0]), verbose=False)
    message = str(caught.value)
    version = registry.get_backend("openvino").engine_version()
    assert f"Ultralytics {ultralytics.__version__} cannot convert the model for the openvino backend" in message
    assert f"installed engine ({version})" in message
    assert "pip install -U ultralytics" in message and "onnx route failed too" in message
