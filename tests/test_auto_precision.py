"""precision="auto" on OpenVINO: FP32, BF16 (where the CPU has it) and INT8 built, compared with FP32 on held-back
images and timed side by side; the fastest that meets the tolerances is kept, and the engine runs it as chosen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import yolo_adapters
from tests.support.needs import require
from yolo_adapters.errors import OptionError
from yolo_adapters.quantize import choice

require("openvino")
nncf = require("nncf")
from ultralytics import YOLO  # noqa: E402

from yolo_adapters.backends.openvino import engine as ov_engine  # noqa: E402

pytestmark = pytest.mark.usefixtures("quick_auto_timing")

# Boxes and confident people judged with the defaults; keypoints not judged, so that on every host a correct
# INT8 can qualify (at 320 its keypoints move a few px: docs/quantization.md) and the choice is by speed.
BOXES_ONLY = {"mean_keypoint_px": None, "worst_person_keypoint_px": None}
AUTO = {
    "imgsz": 320,
    "precision": "auto",
    "calibration_size": 4,
    "holdout": 2,
    "fast_bias_correction": True,
    "tolerance": BOXES_ONLY,
}


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory: pytest.TempPathFactory, images: list[Path]) -> Path:
    """Six offline images with people in each: bus, zidane, flips and crops of them."""
    import cv2

    folder = tmp_path_factory.mktemp("auto_images")
    bus, zidane = (cv2.imread(str(p)) for p in images)
    for name, image in {
        "a_bus": bus,
        "b_bus_flip": bus[:, ::-1],
        "c_zidane": zidane,
        "d_zidane_crop": zidane[:, 200:1000],
        "e_zidane_flip": zidane[:, ::-1],
        "f_bus_crop": bus[100:900],
    }.items():
        cv2.imwrite(str(folder / f"{name}.jpg"), image)
    return folder


def _run(checkpoint: Path, image: Path, backend: str = "openvino", **options) -> tuple:
    yolo_adapters.activate(backend, **options)
    model = YOLO(str(checkpoint))
    result = model.predict(str(image), verbose=False)[0]
    return result, model.predictor.model


def _fake_quantize_ops(xml: Path) -> int:
    import openvino as ov

    return sum(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(xml)).get_ops())


# -- the judgement (pure) -----------------------------------------------------------------------------------
def test_pick_is_the_fastest_that_meets_the_tolerances() -> None:
    measured = {
        "fp32": {"fps": 30.0, "shortfalls": []},
        "bf16": {"fps": 60.0, "shortfalls": ["mean_keypoint_px 3.8 > 1.5"]},
        "int8": {"fps": 45.0, "shortfalls": []},
    }
    assert choice.pick(measured) == "int8"
    measured["int8"]["shortfalls"] = ["confident_recall 0.8 < 1"]
    assert choice.pick(measured) == "fp32", "nothing else meets them: the reference"
    measured["bf16"]["shortfalls"] = []
    assert choice.pick(measured) == "bf16"
    # within SPEED_MARGIN of the fastest, the more precise one wins
    assert choice.pick({"fp32": {"fps": 50.0, "shortfalls": []}, "int8": {"fps": 51.0, "shortfalls": []}}) == "fp32"


def test_shortfalls_name_each_figure_out_of_bounds() -> None:
    tolerance = choice.tolerance_of({})
    agreement = {
        "confident_recall": 1.0,
        "mean_box_iou": 0.99,
        "mean_keypoint_px": 3.55,
        "worst_person_keypoint_px": 11.1,
        "top1_agreement": None,
    }
    assert choice.shortfalls(agreement, tolerance) == [
        "mean_keypoint_px 3.55 > 1.5",
        "worst_person_keypoint_px 11.1 > 5",
    ]
    assert choice.shortfalls({**agreement, "mean_keypoint_px": 1.2, "worst_person_keypoint_px": 4.0}, tolerance) == []
    assert choice.shortfalls(
        {**agreement, "confident_recall": 0.75}, choice.tolerance_of({"tolerance": BOXES_ONLY})
    ) == ["confident_recall 0.75 < 1"]
    assert choice.shortfalls(None, tolerance), "no measurement never qualifies"
    dense = {"min_pixel_agreement": 0.955, "mean_depth_diff": None, "confident_recall": None}
    assert choice.shortfalls(dense, tolerance) == ["min_pixel_agreement 0.955 < 0.97"]
    assert choice.shortfalls({"mean_depth_diff": 0.06, "max_depth_diff": 0.63}, tolerance) == [
        "mean_depth_diff 0.06 > 0.02"
    ]
    # keypoints judged by similarity instead of pixels (docs/quantization.md: close-ups)
    by_oks = choice.tolerance_of(
        {"tolerance": {"mean_keypoint_px": None, "worst_person_keypoint_px": None, "min_confident_person_oks": 0.95}}
    )
    assert choice.shortfalls({**agreement, "min_confident_person_oks": 0.934}, by_oks) == [
        "min_confident_person_oks 0.934 < 0.95"
    ]
    assert choice.shortfalls({**agreement, "min_confident_person_oks": 0.988}, by_oks) == []


def test_tolerance_option_is_checked() -> None:
    assert choice.tolerance_of({"tolerance": {"mean_keypoint_px": 3}})["mean_keypoint_px"] == 3.0
    assert "worst_person_keypoint_px" not in choice.tolerance_of({"tolerance": {"worst_person_keypoint_px": None}})
    with pytest.raises(OptionError, match="keypoint_distance is not an agreement figure.*mean_keypoint_px"):
        choice.tolerance_of({"tolerance": {"keypoint_distance": 1}})
    with pytest.raises(OptionError, match="must be a number"):
        choice.tolerance_of({"tolerance": {"mean_box_iou": "high"}})
    from yolo_adapters.backends.openvino import OpenVINOPlugin

    with pytest.raises(OptionError, match="tolerance bounds what precision='auto' may keep.*'int8'"):
        OpenVINOPlugin().validate_options({"precision": "int8", "tolerance": {"mean_keypoint_px": 3}})
    with pytest.raises(OptionError, match="not an agreement figure"):  # before any export
        OpenVINOPlugin().validate_options({"precision": "auto", "tolerance": {"keypoints": 3}})


def test_any_plugin_listing_int8_and_auto_gets_their_options_and_checks() -> None:
    """The INT8/auto options and the tolerance check come with ``precisions`` and ``PrecisionFlows``, not with an
    engine: a plugin without them rejects the options; one with them checks them before any export."""
    from yolo_adapters.backends.base import BackendPlugin
    from yolo_adapters.quantize import PrecisionFlows

    class Plain(BackendPlugin):
        name = "plain"

        def missing_requirements(self):
            return None

        def export_plan(self, device, options, imgsz, batch):
            return self.precision_plan(self.make_plan("onnx", options, imgsz, batch, cpu=True), options, device)

        def load(self, artifact, device, options):
            raise NotImplementedError

    class Calibrated(PrecisionFlows, Plain):
        name = "calibrated"
        precisions = ("fp32", "int8", "auto")

    with pytest.raises(OptionError, match="Unknown option 'calibration' for backend 'plain'"):
        Plain().validate_options({"calibration": "images"})
    assert Calibrated().validate_options({"precision": "int8", "calibration": "images"})["calibration"] == "images"
    with pytest.raises(OptionError, match="tolerance bounds what precision='auto' may keep"):
        Calibrated().validate_options({"precision": "int8", "tolerance": {"mean_box_iou": 0.9}})
    with pytest.raises(OptionError, match="precision='auto' measures each precision.*'fp32', 'int8'"):
        Calibrated().export_plan("cpu", {"precision": "auto"}, (320, 320), 1)


def test_auto_needs_images_to_judge_on(pose_pt: Path, images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="precision='auto' measures each precision against FP32.*calibration="):
        _run(pose_pt, images[0], imgsz=320, precision="auto", cache_dir=str(tmp_path))
    require("onnxruntime")
    with pytest.raises(OptionError, match="precision='auto' measures.*calibration=.*'fp32', 'fp16', 'int8'"):
        _run(pose_pt, images[0], "onnxruntime", precision="auto", cache_dir=str(tmp_path))
    two = tmp_path / "two"
    two.mkdir()
    for image in images:
        (two / image.name).write_bytes(image.read_bytes())
    with pytest.raises(OptionError, match="holdout must be >= 1"):
        _run(
            pose_pt,
            images[0],
            "onnxruntime",
            precision="auto",
            calibration=str(two),
            holdout=0,
            cache_dir=str(tmp_path),
        )
    from yolo_adapters.backends.onnxruntime import ONNXRuntimePlugin

    with pytest.raises(OptionError, match="tolerance bounds what precision='auto' may keep"):
        ONNXRuntimePlugin().validate_options({"precision": "int8", "tolerance": {"mean_keypoint_px": 3}})
    assert not list(tmp_path.rglob("*.xml")) and not list(tmp_path.rglob("*.onnx")), "nothing exported before the check"


# -- the real thing --------------------------------------------------------------------------------------------
def test_auto_keeps_the_fastest_that_agrees(pose_pt: Path, images: list[Path], people_dir: Path) -> None:
    result, module = _run(pose_pt, images[0], calibration=str(people_dir), **AUTO)
    recorded = choice.read_choice(module.artifact)
    assert recorded is not None, "precision_choice.json beside the kept IR"
    candidates = recorded["candidates"]
    expected = {"fp32", "int8"} | ({"bf16"} if ov_engine.bf16_supported("CPU") else set())
    assert set(candidates) == expected
    assert all(c["fps"] > 0 and len(c["fps_rounds"]) == 2 for c in candidates.values()), "every candidate timed"
    assert candidates["int8"]["agreement"]["confident_reference"] >= 1, "INT8 compared with FP32 on people"
    assert recorded["chosen"] == choice.pick(candidates)
    chosen = recorded["chosen"]
    fastest = max(c["fps"] for c in candidates.values() if not c["shortfalls"])
    assert candidates[chosen]["fps"] * choice.SPEED_MARGIN >= fastest and not candidates[chosen]["shortfalls"]

    # the engine runs what was chosen: INT8 IR (FakeQuantize ops) or the FP32 IR, compiled f32 or bf16
    assert module.engine.precision == chosen and module.engine.calls >= 1
    assert (_fake_quantize_ops(Path(module.artifact)) > 0) is (chosen == "int8")
    hint = str(module.engine.compiled.get_property("INFERENCE_PRECISION_HINT"))
    assert ("bf16" in hint or "bfloat16" in hint) is (chosen == "bf16"), hint
    entry = Path(module.artifact).parent.parent
    assert [p.name for p in entry.glob("*_openvino_model")] == [Path(module.artifact).parent.name], "only the kept IR"
    assert len(result.boxes) >= 1, "the kept model finds people on bus.jpg"


def test_cli_convert_auto_prints_the_choice(
    pose_pt: Path, people_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same conversion from the CLI (cached by the test above when run in one process): one line per candidate
    and the choice; ``cache list`` says what auto kept."""
    from yolo_adapters.tools.cli import main

    argv = [
        "convert",
        str(pose_pt),
        "-b",
        "openvino",
        "--precision",
        "auto",
        "--data",
        str(people_dir),
        "--imgsz",
        "320",
        "-o",
        "calibration_size=4",
        "-o",
        "holdout=2",
        "-o",
        "fast_bias_correction=True",
        "-o",
        f"tolerance={BOXES_ONLY!r}",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    recorded = choice.read_choice(out.strip())
    assert recorded is not None and f"precision='auto' chose {recorded['chosen']}" in err
    assert all(f"  {name:5s}" in err for name in recorded["candidates"]) and "img/s" in err
    assert main(["cache", "list"]) == 0
    assert f"auto: {recorded['chosen']}" in capsys.readouterr().out

    # `check` against PyTorch says which precision it compared (the same cached conversion)
    options = {k: v for k, v in AUTO.items() if k != "imgsz"}
    report = yolo_adapters.check(
        pose_pt, backends=["openvino"], imgsz=320, options={**options, "calibration": str(people_dir)}, progress=False
    )
    (engine,) = report.engines
    assert engine.chosen_precision == recorded["chosen"] and engine.artifact == out.strip()
    assert f"(auto: {recorded['chosen']})" in engine.name and engine.engine_calls >= 1


def test_auto_never_keeps_a_broken_int8(
    pose_pt: Path, images: list[Path], people_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliberately broken INT8 (its raw output halved: boxes shrink, scores fall under 0.5, FP32's people are
    lost) is judged against FP32 like any candidate and left out, however fast it runs."""
    from openvino import opset13 as ops

    real = nncf.quantize

    def broken(model, *args, **kwargs):
        quantized = real(model, *args, **kwargs)
        result = quantized.get_results()[0]
        halved = ops.multiply(result.input_value(0), np.float32(0.5))
        result.input(0).replace_source_output(halved.output(0))
        quantized.validate_nodes_and_infer_types()
        return quantized

    monkeypatch.setattr(nncf, "quantize", broken)
    _, module = _run(pose_pt, images[0], calibration=str(people_dir), cache_dir=str(tmp_path), **AUTO)
    recorded = choice.read_choice(module.artifact)
    misses = " ".join(recorded["candidates"]["int8"]["shortfalls"])
    assert "confident_recall" in misses, misses
    assert recorded["chosen"] != "int8" and module.engine.precision == recorded["chosen"]


def test_auto_on_an_ir_given_as_is(pose_pt: Path, images: list[Path], tmp_path: Path, caplog) -> None:
    """An IR given directly has no choice beside it: it runs FP32, said once; with a choice file, as chosen."""
    _, fp32_module = _run(pose_pt, images[0], imgsz=320, cache_dir=str(tmp_path / "cache"))
    ir = tmp_path / "given"
    ir.mkdir()
    for f in Path(fp32_module.artifact).parent.iterdir():
        (ir / f.name).write_bytes(f.read_bytes())
    xml = ir / Path(fp32_module.artifact).name
    with caplog.at_level("WARNING", logger="yolo_adapters"):
        _, module = _run(xml, images[0], imgsz=320, precision="auto", compile_cache=False)
    assert module.engine.precision == "fp32"
    assert any("was given as is and runs as FP32" in r.getMessage() for r in caplog.records)
    (ir / choice.CHOICE_FILE).write_text(json.dumps({"chosen": "bf16"}))
    _, module = _run(xml, images[1], imgsz=320, precision="auto", compile_cache=False)
    assert module.engine.precision == "bf16"


# -- ONNX Runtime: FP32 or INT8 --------------------------------------------------------------------------------
def _quantize_linear_nodes(path: Path) -> int:
    import onnx

    return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def _fp16_weights(path: Path) -> bool:
    import onnx

    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(path)).graph.initializer)


def test_onnxruntime_auto_keeps_the_faster_that_agrees(
    pose_pt: Path, images: list[Path], people_dir: Path, tmp_path: Path
) -> None:
    require("onnxruntime")
    options = {k: v for k, v in AUTO.items() if k != "fast_bias_correction"}  # an NNCF option
    result, module = _run(
        pose_pt, images[0], "onnxruntime", calibration=str(people_dir), cache_dir=str(tmp_path), **options
    )
    recorded = choice.read_choice(module.artifact)
    assert recorded is not None and recorded["provider"] == "CPUExecutionProvider"
    candidates = recorded["candidates"]
    assert set(candidates) == {"fp32", "fp16", "int8"}
    assert all(c["fps"] > 0 and len(c["fps_rounds"]) == 2 for c in candidates.values()), "every candidate timed"
    assert candidates["int8"]["agreement"]["confident_reference"] >= 1, "INT8 compared with FP32 on people"
    assert candidates["fp16"]["agreement"]["confident_reference"] >= 1, "FP16 too"
    assert recorded["chosen"] == choice.pick(candidates)
    chosen = recorded["chosen"]
    # the engine runs the kept file, and only that file is left: QDQ nodes iff INT8, FP16 weights iff FP16 was kept
    assert module.engine.precision == chosen and module.engine.calls >= 1
    assert (_quantize_linear_nodes(Path(module.artifact)) > 0) is (chosen == "int8")
    assert _fp16_weights(Path(module.artifact)) is (chosen == "fp16")
    assert [p.name for p in Path(module.artifact).parent.glob("*.onnx")] == [Path(module.artifact).name]
    assert (Path(module.artifact).parent / "quantization_report.json").exists() is (chosen == "int8")
    assert len(result.boxes) >= 1


def test_onnxruntime_auto_never_keeps_a_broken_int8(
    pose_pt: Path, images: list[Path], people_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ONNX Runtime's INT8 with its raw output halved is judged like any candidate and left out."""
    require("onnxruntime")
    import onnx
    import onnxruntime.quantization as ort_quantization
    from onnx import helper, numpy_helper

    real = ort_quantization.quantize_static

    def broken(model_input, model_output, *args, **kwargs):
        real(model_input, model_output, *args, **kwargs)
        model = onnx.load(str(model_output))
        output = model.graph.output[0]
        for node in model.graph.node:  # the producer of the output now writes a tensor that is halved
            node.output[:] = [f"{o}_unhalved" if o == output.name else o for o in node.output]
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        model.graph.node.append(helper.make_node("Mul", [f"{output.name}_unhalved", "half"], [output.name]))
        onnx.save(model, str(model_output))

    monkeypatch.setattr(ort_quantization, "quantize_static", broken)
    options = {k: v for k, v in AUTO.items() if k != "fast_bias_correction"}
    _, module = _run(pose_pt, images[0], "onnxruntime", calibration=str(people_dir), cache_dir=str(tmp_path), **options)
    recorded = choice.read_choice(module.artifact)
    misses = " ".join(recorded["candidates"]["int8"]["shortfalls"])
    assert "confident_recall" in misses, misses
    assert recorded["chosen"] != "int8" and module.engine.precision == recorded["chosen"]
    assert _quantize_linear_nodes(Path(module.artifact)) == 0


def test_onnxruntime_auto_goes_on_without_int8(
    pose_pt: Path, images: list[Path], people_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """A quantizer that fails leaves INT8 out, said in one warning line; FP32 and FP16 still compete."""
    require("onnxruntime")
    import onnxruntime.quantization as ort_quantization

    def failing(*args, **kwargs):
        raise RuntimeError("no calibration today")

    monkeypatch.setattr(ort_quantization, "quantize_static", failing)
    options = {k: v for k, v in AUTO.items() if k != "fast_bias_correction"}
    with caplog.at_level("WARNING", logger="yolo_adapters"):
        _, module = _run(
            pose_pt, images[0], "onnxruntime", calibration=str(people_dir), cache_dir=str(tmp_path), **options
        )
    recorded = choice.read_choice(module.artifact)
    assert recorded["candidates"]["int8"]["shortfalls"][0].startswith("not built: ")
    assert "fps" not in recorded["candidates"]["int8"] and recorded["chosen"] in ("fp32", "fp16")
    assert any("precision='auto' leaves INT8 out" in r.getMessage() for r in caplog.records)
    assert module.engine.precision == recorded["chosen"]
