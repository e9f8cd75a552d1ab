"""What the Ascend test files share: predicting through the emulated toolkit and holding results to a precision
mode's tolerances (fixtures ``emu``, ``emu_fp32`` and ``square_references`` are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yolo_adapters
from yolo_adapters.backends.ascend import AscendPlugin, tolerances
from yolo_adapters.compare.parity import Tolerances, compare_results

#: precision="fp32" (the default) on the emulated Ascend310P3: --precision_mode_v2=cube_fp16in_fp32out
DEFAULT_MODE_TOL = tolerances("cube_fp16in_fp32out")


def predict(
    model_path: Path | str,
    images: Sequence[Path | str],
    device: str = "ascend:0",
    task: str | None = None,
    predict_args: Mapping[str, Any] | None = None,
    **options: Any,
) -> tuple[Any, list[Any]]:
    """``YOLO(model_path).predict(images, device=device)`` with the Ascend backend activated with ``options``."""
    from ultralytics import YOLO

    with yolo_adapters.use("ascend", **options):
        model = YOLO(str(model_path), task=task) if task else YOLO(str(model_path))
        results = model.predict(images, device=device, verbose=False, **(predict_args or {}))
    return model, results


def assert_parity(refs: Sequence[Any], results: Sequence[Any], tol: Tolerances = DEFAULT_MODE_TOL) -> None:
    assert len(refs) == len(results)
    for ref, res in zip(refs, results):
        agreement = compare_results(ref, res, tol=tol)
        assert agreement.passed(tol), agreement.failures(tol)
        if agreement.task != "classify":
            assert agreement.matched > 0, "no detections to compare: the test would prove nothing"


def assert_fp16_parity(task: str, refs: Sequence[Any], results: Sequence[Any], tol: Tolerances) -> None:
    """Parity where float16 rounds the head's scores: two overlapping anchors can then tie, and NMS may keep the
    neighbour, whose keypoints / mask coefficients differ (bus.jpg: one person of six, box IoU 0.98). Pose and
    segment must find the same people with the same boxes and scores; their keypoints and masks are held to
    the shared tolerances on average only (docs/ascend.md, "Parity"). A classifier's top-1 may change only
    between classes whose reference probabilities lie within the probability tolerance of each other."""
    if task == "classify":
        for ref, res in zip(refs, results):
            agreement = compare_results(ref, res, tol=tol)
            assert agreement.max_prob_diff <= tol.prob, agreement.as_dict()
            p_ref = ref.probs.data.float().cpu()
            top_ref, top_res = int(p_ref.argmax()), int(res.probs.data.float().cpu().argmax())
            assert abs(float(p_ref[top_ref] - p_ref[top_res])) <= tol.prob, agreement.as_dict()
        return
    if task not in ("pose", "segment"):
        assert_parity(refs, results, tol)
        return
    for ref, res in zip(refs, results):
        agreement = compare_results(ref, res, tol=tol)
        assert agreement.matched == agreement.reference == agreement.candidate > 0 and not agreement.unmatched
        assert agreement.min_box_iou >= tol.box_iou and agreement.max_score_diff <= tol.score, agreement.as_dict()
        if task == "pose":
            assert agreement.mean_keypoint_px <= 2 * tol.keypoint_px, agreement.as_dict()


def engine_of(model: Any) -> Any:
    """The Ascend engine behind a YOLO model that predicted through the backend."""
    return model.predictor.model.engine


def load_engine(checkpoints: Mapping[str, Path], device: str = "0", **options: Any) -> Any:
    """The detect checkpoint converted (through the session cache) and loaded on ``device``, without Ultralytics'
    predictor."""
    from yolo_adapters.integration.runtime import resolve_artifact

    backend = AscendPlugin()
    options = backend.validate_options(options)
    om = resolve_artifact(str(checkpoints["detect"]), backend, device, options)
    return backend.load(om, device, options)


def converted_om(checkpoints: Mapping[str, Path]) -> Path:
    """The detect checkpoint's .om at the default options, from the session cache."""
    from yolo_adapters.integration.runtime import resolve_artifact

    backend = AscendPlugin()
    return resolve_artifact(str(checkpoints["detect"]), backend, "0", backend.validate_options({}))
