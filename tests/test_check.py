"""`yolo-adapters check` and `yolo_adapters.check()`: PyTorch vs each engine on the same images, gated by the
parity tolerances; passes for the real pose model, fails for an engine model exported from other weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import yolo_adapters
from yolo_adapters.tools import cli
from yolo_adapters.tools.check import _infer_backend, resolve_images


def test_api_pose_matches_on_openvino_and_onnxruntime(pose_pt: Path) -> None:
    report = yolo_adapters.check(pose_pt, backends=["openvino", "onnxruntime"], progress=False)
    assert report.passed, report.failures
    assert report.task == "pose" and len(report.sources) == 2
    assert [e.name for e in report.engines] == ["openvino:CPU", "onnxruntime:cpu"]
    for engine in report.engines:
        assert engine.engine_calls >= 2, "the engine itself must have answered, not PyTorch"
        assert Path(engine.artifact).exists()
        summary = engine.summary()
        assert summary["matched"] == summary["reference"] == 6  # 4 people on bus.jpg, 2 on zidane.jpg
        assert summary["min_box_iou"] >= 0.99 and summary["max_keypoint_px"] <= 1.0
        assert 0.99 <= summary["mean_box_iou"] <= 1.0
    table = report.table(per_image=True)
    assert (
        sum(line.endswith("  PASS") for line in table.splitlines()) == 2
        and "bus.jpg" in table
        and "keypoint px max/mean" in table
    )
    assert table.splitlines()[-1] == "PASSED"


def test_cli_passes_with_json_and_progress_bar(pose_pt: Path, capsys: pytest.CaptureFixture) -> None:
    rc = cli.main(["check", str(pose_pt), "--backend", "openvino", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    report = json.loads(out)  # nothing but the JSON on stdout
    assert report["passed"] is True and report["failures"] == []
    (engine,) = report["engines"]
    assert engine["backend"] == "openvino" and engine["summary"]["matched"] == 6
    assert [Path(i["image"]).name for i in engine["images"]] == ["bus.jpg", "zidane.jpg"]
    assert "yolo_adapters: checking" in err and "2/2" in err  # the tqdm bar over the images


def test_cli_fails_when_a_tolerance_is_missed(pose_pt: Path, capsys: pytest.CaptureFixture) -> None:
    # Same engine, a tolerance no real run can meet: the gate must close (exit 1, FAIL in the table).
    rc = cli.main(
        ["check", str(pose_pt), "-b", "onnxruntime", "-t", "score=0", "-t", "keypoint_px=1e-12", "--no-progress"]
    )
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "FAIL" in out.splitlines()[3] and "keypoint distance" in out and out.rstrip().endswith("FAILED")


@pytest.fixture(scope="module")
def mismatched_ir(tmp_path_factory: pytest.TempPathFactory, pose_pt: Path) -> Path:
    """An OpenVINO IR converted by `yolo-adapters convert` from *other* weights: the pose model with its
    keypoint branch scaled by 1.2 (same architecture, same metadata, different answers)."""
    import torch
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("mismatched")
    yolo = YOLO(str(pose_pt))
    head = yolo.model.model[-1]
    with torch.no_grad():
        for p in head.cv4.parameters():
            p.mul_(1.2)
    other = folder / "other-pose.pt"
    yolo.save(str(other))
    assert cli.main(["convert", str(other), "--backend", "openvino"]) == 0
    return other


def test_cli_fails_on_ir_from_different_weights(
    pose_pt: Path, mismatched_ir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    from yolo_adapters.core import registry
    from yolo_adapters.integration.runtime import resolve_artifact

    ir = resolve_artifact(mismatched_ir, registry.get_backend("openvino"), "CPU", {})  # the cached IR, no reconversion
    shipped = tmp_path / "shipped_openvino_model"
    shutil.copytree(ir.parent, shipped)  # the folder a deployment would ship

    rc = cli.main(["check", str(pose_pt), "--engine-model", str(shipped), "--per-image", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1, out
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("openvino:CPU"))
    assert row.split()[-1] == "FAIL"
    assert "keypoint distance" in out and lines[-1] == "FAILED"

    rc = cli.main(
        ["check", str(pose_pt), "-e", str(shipped / "model.xml"), "-b", "openvino", "--json", "--no-progress"]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["passed"] is False
    (engine,) = report["engines"]
    assert engine["artifact"] == str(shipped / "model.xml") and engine["engine_calls"] >= 2
    assert any("keypoint distance" in f for f in report["failures"])

    # The same IR checked against the weights it came from passes: the failure above is the weights, not the IR.
    assert cli.main(["check", str(mismatched_ir), "-e", str(shipped), "--no-progress"]) == 0


def test_bad_arguments_exit_2(pose_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "model.xml").write_text("<net/>")
    cases = {
        ("check", str(tmp_path / "model.xml")): "must be an existing Ultralytics .pt",
        ("check", str(pose_pt), "-b", "nope"): "Unknown yolo_adapters backend 'nope'",
        ("check", str(pose_pt), "-b", "openvino", "-s", str(tmp_path / "missing*.jpg")): "neither an image",
        (
            "check",
            str(pose_pt),
            "-e",
            str(tmp_path / "model.xml"),
            "-b",
            "openvino",
            "-b",
            "onnxruntime",
        ): "at most one",
        ("check", str(pose_pt), "-b", "openvino", "-t", "iou=3"): "--tolerance takes",
        ("check", str(pose_pt), "-b", "openvino", "-o", "hint=fast"): "not an OpenVINO performance hint",
    }
    for argv, message in cases.items():
        assert cli.main(list(argv)) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_sources_and_backend_inference(tmp_path: Path, images: list[Path]) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for image in images:
        shutil.copy(image, folder / image.name)
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in resolve_images(folder)] == ["bus.jpg", "zidane.jpg"]
    assert [p.name for p in resolve_images(str(folder / "z*.jpg"))] == ["zidane.jpg"]
    assert [p.name for p in resolve_images([images[0]])] == ["bus.jpg"]
    assert [p.name for p in resolve_images(None)] == ["bus.jpg", "zidane.jpg"]
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m_openvino_model").mkdir()
    (tmp_path / "m_openvino_model" / "m.xml").write_text("")
    assert _infer_backend(tmp_path / "m.onnx") == "onnxruntime"
    assert _infer_backend(tmp_path / "m_openvino_model") == "openvino"


def test_api_pose_matches_on_emulated_ascend(pose_pt: Path, tmp_path: Path) -> None:
    from yolo_adapters.testing import emulate_ascend

    with emulate_ascend(tmp_path, cards=1) as emu:
        report = yolo_adapters.check(pose_pt, backends=["ascend:0"], progress=False)
    assert report.passed, report.failures
    (engine,) = report.engines
    assert engine.name == "ascend:0" and engine.artifact.endswith(".om") and engine.engine_calls >= 2
    assert emu.device_ids() == [0] and len(emu.of("infer")) >= 2
