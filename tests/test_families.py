"""Every model family and task the installed Ultralytics ships, on every backend, against PyTorch.

The models come from tests/support/family_models.py (built offline from Ultralytics' YAML files, outputs that depend on
the image, margins far from every tolerance). Each case runs ``yolo_adapters.check`` (the same comparison users
run) on bus.jpg and zidane.jpg. A family or task the installed Ultralytics lacks is not collected, so the
compatibility matrix runs the families a release has (.ci/compat's ``compat_families`` entries: on OpenVINO, whose
export route differs by release); the other tests here skip such a case with the reason. YOLO11 (YOLOv8 before
Ultralytics 8.3, which cannot build YOLO11) runs in test_openvino.py, test_onnxruntime.py and test_ascend_parity.py
(tests/support/models.py), so not here as well; docs/families.md has the whole table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import yolo_adapters
from tests.support.family_models import FAMILIES, available
from tests.support.models import task_model_family

BACKENDS = ("openvino", "onnxruntime", "ascend")
# The compatibility matrix runs the OpenVINO cases on one legacy release (.ci/compat: compat_families): OpenVINO's
# export route is the one that differs by release.
BACKEND_PARAMS = [pytest.param(b, marks=pytest.mark.compat_families) if b == "openvino" else b for b in BACKENDS]
# What the installed Ultralytics ships: a family or task it lacks (YOLO26 before 8.4, YOLO12 before 8.3.78, YOLOv10
# before 8.2) is not a test on that release, so each compatibility-matrix entry runs the families its release has
# (and not the few whose test model cannot be compared there: family_models.NOT_COMPARABLE_BEFORE).
# The family of tests/support/models.py's task models is tested every task, every backend, in the backend test files.
CASES = [
    (f, task)
    for f, tasks in FAMILIES.items()
    if f != task_model_family()
    for task in tasks
    if available(f, task) is None
]


def run_check(pt: Path, backend: str, tmp_path: Path, **kwargs):
    """``yolo_adapters.check`` on one backend; Ascend through the emulated toolkit on a 910B, where precision="fp32"
    compiles to "origin" (FP32 throughout) and the shared tolerances hold. The FP16 arithmetic of the 310-series
    default and of precision="fp16" is tested per mode, at its own tolerances, in tests/test_ascend_parity.py and
    tests/test_ascend_precision.py."""
    if backend == "ascend":
        from yolo_adapters.testing import emulate_ascend

        with emulate_ascend(tmp_path, cards=1, chip="910B3"):
            return yolo_adapters.check(pt, backends=["ascend:0"], progress=False, **kwargs)
    return yolo_adapters.check(pt, backends=[backend], progress=False, **kwargs)


def assert_meaningful(report) -> None:
    """The comparison had something to compare: detections, distinct classes, a varied map."""
    (engine,) = report.engines
    assert engine.engine_calls >= len(report.sources), "the engine itself must have answered"
    for item in engine.images:
        a = item.agreement
        if report.task in ("detect", "segment", "pose", "obb"):
            assert a.reference > 0 and a.matched == a.reference, f"{Path(item.image).name}: {a.as_dict()}"


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize(("family", "task"), CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_family_task_matches_pytorch(family: str, task: str, backend: str, family_checkpoint, tmp_path: Path) -> None:
    pt = family_checkpoint(family, task)
    report = run_check(pt, backend, tmp_path)
    assert report.task == task
    assert report.passed, report.table(per_image=True)
    assert_meaningful(report)
    print(report.table(per_image=True))  # the measured agreement, shown by pytest -rP


# -- the comparisons can fail -----------------------------------------------------------------------------------
MUTATION_FAMILY = "YOLO26"  # the one family with all seven tasks


def zero_one_convolution(onnx_file: Path, out_dir: Path) -> tuple[Path, str]:
    """A copy of ``onnx_file`` with the weights of its middle convolution (in graph order) set to zero."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    initializers = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in initializers]
    victim = convs[len(convs) // 2]
    weight = initializers[victim.input[1]]
    weight.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(weight)), weight.name))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "corrupted.onnx"
    onnx.save(model, str(target))
    return target, victim.name


@pytest.mark.parametrize("task", list(FAMILIES[MUTATION_FAMILY]))
def test_corrupted_engine_model_fails_the_comparison(task: str, family_checkpoint, tmp_path: Path) -> None:
    """One convolution zeroed in the exported graph: ``check`` must fail for every task (the ONNX Runtime
    artifact the parity test converted, through the session cache)."""
    pytest.importorskip("onnx")
    from yolo_adapters.core import registry
    from yolo_adapters.integration.runtime import resolve_artifact

    pt = family_checkpoint(MUTATION_FAMILY, task)
    artifact = resolve_artifact(pt, registry.get_backend("onnxruntime"), "cpu", {})
    intact = yolo_adapters.check(pt, backends=["onnxruntime"], engine_model=artifact, progress=False)
    assert intact.passed, intact.table()
    corrupted, conv = zero_one_convolution(artifact, tmp_path / "mutant")
    report = yolo_adapters.check(pt, backends=["onnxruntime"], engine_model=corrupted, progress=False)
    assert not report.passed, f"zeroing {conv} went unnoticed:\n{report.table(per_image=True)}"
    (engine,) = report.engines
    assert engine.error is None and engine.engine_calls >= 2, "the corrupted model ran; only the comparison failed"
    print(f"{task}: zeroed {conv}: {report.failures[:3]}")


# -- output layouts ------------------------------------------------------------------------------------------------
def test_layouts_every_head_knows() -> None:
    from yolo_adapters.core.model_info import ModelInfo

    def info(task: str, nc: int = 1, **meta) -> ModelInfo:
        base = {"task": task, "names": {i: str(i) for i in range(nc)}, **meta}
        return ModelInfo.from_metadata(base)

    assert info("detect").layout_problem([(1, 5, 2100)]) is None
    assert info("detect", end2end=True).layout_problem([(1, 300, 6)]) is None
    assert info("segment", end2end=True).layout_problem([(1, 300, 38), (1, 32, 80, 80)]) is None
    assert info("pose", end2end=True, kpt_shape=[17, 3]).layout_problem([(1, 300, 57)]) is None
    assert info("obb", end2end=True).layout_problem([(1, 300, 7)]) is None
    assert info("detect", 80, head="RTDETRDecoder").layout_problem([(1, 300, 84)]) is None
    assert info("semantic", 3).layout_problem([(1, 320, 256)]) is None
    assert info("semantic", 3).layout_problem([(1, 3, 320, 256)]) is None
    assert info("depth").layout_problem([(1, 1, 320, 256)]) is None
    assert info("classify", 4).layout_problem([(1, 4)]) is None
    assert info("detect", 80, head="RTDETRDecoder").layout_problem([(1, 300, 6)]) is None
    assert "RT-DETR head outputs (B, queries, 6)" in info("detect", 80, head="RTDETRDecoder").layout_problem(
        [(1, 84, 300)]
    )
    assert "end-to-end" in info("detect", end2end=True).layout_problem([(1, 5, 2100)])
    assert "(B, 1, H, W)" in info("depth").layout_problem([(1, 3, 320, 256)])
    # exports before Ultralytics 8.4 name no head: RT-DETR is known by the model name in the description
    old_rtdetr = info("detect", description="Ultralytics rtdetr-l model trained on coco.yaml")
    assert old_rtdetr.layout_problem([(1, 300, 5)]) is None
    assert info("detect", description="Ultralytics YOLOv8n model").layout_problem([(1, 300, 5)]) is not None


def test_unknown_layout_names_the_family_and_what_was_found(
    family_checkpoint, images: list[Path], tmp_path: Path
) -> None:
    """RT-DETR's output under metadata that claims a YOLO Detect head: the error names the family and the shapes,
    and does not send the user to the cache (the cache is not the problem)."""
    import yaml
    from ultralytics import YOLO

    from yolo_adapters.core import registry
    from yolo_adapters.errors import ModelFormatError
    from yolo_adapters.integration.runtime import resolve_artifact

    pt = family_checkpoint("RT-DETR", "detect")
    ir = resolve_artifact(pt, registry.get_backend("openvino"), "CPU", {})
    import shutil

    folder = tmp_path / "relabelled_openvino_model"
    shutil.copytree(ir.parent, folder)
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["head"] = "Detect"
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(ModelFormatError) as caught:
        YOLO(str(folder), task="detect").predict(str(images[0]), device="openvino", verbose=False)
    message = str(caught.value)
    assert "rtdetr-l" in message and "(1, 300, 6)" in message and "Detect head" in message, message
    assert "cache" not in message, message


# -- end-to-end (NMS-free) heads --------------------------------------------------------------------------------
E2E_CASES = [("YOLO26", "detect", "onnx"), ("YOLO26", "pose", "openvino"), ("YOLOv10", "detect", "onnx")]


@pytest.mark.parametrize(("family", "task", "fmt"), E2E_CASES, ids=[f"{f}-{t}-{x}" for f, t, x in E2E_CASES])
def test_end_to_end_export_matches_pytorch_one_to_one_head(
    family: str, task: str, fmt: str, family_checkpoint, tmp_path: Path
) -> None:
    """An engine model Ultralytics exported NMS-free (``nms=False``: ``(B, 300, 6 + extra)``, end2end in its
    metadata) runs through the plugin, and ``check`` compares it with PyTorch's one-to-one head."""
    import shutil

    from ultralytics import YOLO

    pt = family_checkpoint(family, task)
    local = tmp_path / pt.name
    shutil.copy(pt, local)
    exported = Path(YOLO(str(local)).export(format=fmt, nms=False, imgsz=320, dynamic=True, verbose=False))
    report = yolo_adapters.check(pt, engine_model=exported, progress=False)
    assert report.passed, report.table(per_image=True)
    (engine,) = report.engines
    assert engine.engine_calls >= 2
    for item in engine.images:
        assert item.agreement.reference > 0 and item.agreement.matched == item.agreement.reference


def test_predict_nms_false_runs_the_one_to_one_head_like_pytorch(family_checkpoint, images: list[Path]) -> None:
    """``predict(nms=False, device=...)`` on a YOLO26 checkpoint: Ultralytics asks AutoBackend for the end-to-end
    head, so the engine model is exported NMS-free (its own cache entry) and gives PyTorch's one-to-one results,
    not the one-to-many head's with NMS (which differ: the first assertion shows the two heads disagree here)."""
    import numpy as np
    from ultralytics import YOLO

    pt = family_checkpoint("YOLO26", "detect")

    def boxes(**kwargs) -> np.ndarray:
        result = YOLO(str(pt)).predict(str(images[0]), imgsz=320, verbose=False, **kwargs)[0]
        rows = np.concatenate([result.boxes.xyxy.numpy(), result.boxes.conf.numpy()[:, None]], axis=1)
        return rows[np.argsort(-rows[:, 4], kind="stable")]

    one_to_one, one_to_many = boxes(nms=False), boxes()
    assert one_to_one.shape != one_to_many.shape or not np.allclose(one_to_one, one_to_many, atol=1e-3)
    for backend in ("openvino", "onnxruntime"):
        engine = boxes(nms=False, device=backend)
        assert engine.shape == one_to_one.shape, (backend, engine, one_to_one)
        np.testing.assert_allclose(engine[:, :4], one_to_one[:, :4], atol=0.05, err_msg=backend)
        np.testing.assert_allclose(engine[:, 4], one_to_one[:, 4], atol=1e-3, err_msg=backend)
        stock = boxes(device=backend)
        assert stock.shape == one_to_many.shape, (backend, "default predict keeps the one-to-many head")
