"""The quantization report: how INT8 compares with FP32, and how it is saved and shown.

Both quantizers end the same way: the same report layout, completed with INT8-vs-FP32 agreement on the held-back
images (Ultralytics' predictor, ``yolo_adapters.compare.parity``) and, where those images have labels, FP32 and INT8 metrics
from Ultralytics' own validator; ``quantization_report.json`` beside the model; ``format_report`` for the CLI.
Ultralytics, torch and the engines are imported only inside the functions that run them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from yolo_adapters.compare.parity import compare_results, match_detections
from yolo_adapters.core.model_info import read_artifact_info
from yolo_adapters.errors import OptionError
from yolo_adapters.integration.export import quiet_ultralytics
from yolo_adapters.integration.patching import install
from yolo_adapters.quantize import graph
from yolo_adapters.quantize.calibration import class_of, labelled

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan
    from yolo_adapters.integration.module import EngineModule

REPORT_FILE = "quantization_report.json"
#: The tasks whose labelled metrics the report computes (Ultralytics' validators; classify: ClassifyMetrics).
METRIC_TASKS = ("detect", "segment", "pose", "obb", "classify")


class _AgreementFigures(TypedDict):
    """The figures every agreement section has (``summarize_agreement``); None where the task has none."""

    images: int
    reference_detections: int
    candidate_detections: int
    matched: int
    confident_reference: int
    confident_found: int
    min_box_iou: float | None
    mean_box_iou: float | None
    max_score_diff: float | None
    mean_keypoint_px: float | None
    max_keypoint_px: float | None
    worst_person_keypoint_px: float | None
    worst_person: str | None
    worst_confident_person_keypoint_px: float | None
    mean_person_oks: float | None
    min_confident_person_oks: float | None
    min_mask_iou: float | None
    min_pixel_agreement: float | None
    max_depth_diff: float | None
    mean_depth_diff: float | None
    top1_agreement: float | None
    max_prob_diff: float | None
    unmatched: list[str]


class AgreementSection(_AgreementFigures, total=False):
    """A report's ``agreement`` section: a candidate against FP32 on the held-back images (``choice`` judges it)."""

    confident_recall: float  # only where FP32 has detections with conf >= 0.5
    anchor_keypoint_px: float | None  # pose only (``anchor_keypoint_px``)


def int8_report(
    plugin: BackendPlugin,
    fp32: Path,
    int8: Path,
    plan: ExportPlan,
    info: Any,
    shape: Sequence[int],
    calibration: dict,
    held: list[Path],
    quantization: dict,
    accuracy_control: dict | None = None,
) -> dict[str, Any]:
    """The report both quantizers write, beside ``int8``: what was converted, ``calibration`` and ``quantization``
    (each quantizer's own sections), ``accuracy_control``, then agreement and metrics on the ``held`` images."""
    task = info.task or "detect"
    report = {
        "backend": plugin.name,
        "task": task,
        "precision": "int8",
        "artifact": int8.name,
        "input_shape": [int(v) for v in shape],
        "dynamic": plan.dynamic,
        "calibration": calibration,
        "quantization": quantization,
        "accuracy_control": accuracy_control,
    }
    _finish_report(report, fp32, int8, held, plan, task, info, plugin)
    write_report(int8.parent, report)
    return report


def kept_in_float(model: Any, scope: Mapping[str, Sequence[str]], ignored: Sequence[str]) -> dict[str, Any]:
    """The ``quantization`` section's float scope: the ops kept in float by type and by reason (either graph)."""
    return {
        "kept_in_float": graph.count_kinds(model, ignored),
        "kept_in_float_by_reason": {k: len(v) for k, v in scope.items()},
    }


def _finish_report(
    report: dict,
    fp32: Path,
    int8: Path,
    held: list[Path],
    plan: ExportPlan,
    task: str,
    info: Any,
    plugin: BackendPlugin,
) -> None:
    """The agreement and (where the held-back images have labels) mAP sections of ``report``."""
    report["agreement"] = agreement_report(fp32, int8, held, plan, task, plugin) if held else None
    images = labelled(held, task, info.names) if task in METRIC_TASKS else []  # no validator wired for semantic/depth
    report["metrics"] = None
    if images:
        report["metrics"] = {"images": len(images), "validator": "ultralytics " + _ultralytics_version()}
        for path, precision in ((fp32, "fp32"), (int8, "int8")):
            report["metrics"][precision] = labelled_metrics(
                _engine_module(path, plan, precision, plugin), images, task, plan.imgsz
            )


def _ultralytics_version() -> str:
    import ultralytics

    return ultralytics.__version__


def _predictor(task: str, module: Any, imgsz: Sequence[int]) -> Any:
    """Ultralytics' own predictor for ``task``, running ``module`` (an EngineModule) with no AutoBackend."""
    from ultralytics.models import yolo

    classes = {
        "detect": yolo.detect.DetectionPredictor,
        "segment": yolo.segment.SegmentationPredictor,
        "pose": yolo.pose.PosePredictor,
        "obb": yolo.obb.OBBPredictor,
        "classify": yolo.classify.ClassificationPredictor,
    }
    # YOLO26's dense tasks: looked up only for them (Ultralytics 8.4.1xx, the only releases that have them)
    if task == "semantic":
        classes["semantic"] = yolo.semantic.SemanticSegmentationPredictor
    elif task == "depth":
        classes["depth"] = yolo.depth.DepthPredictor
    predictor = classes[task](overrides={"imgsz": list(imgsz), "verbose": False, "save": False, "conf": 0.25})
    predictor.model = module
    predictor.device = module.device
    predictor.done_warmup = True
    return predictor


def _engine_module(path: Path, plan: ExportPlan, precision: str, plugin: BackendPlugin) -> EngineModule:
    """The model at ``path`` as the EngineModule Ultralytics' predictor and validator run, on the plugin's
    default (CPU) device; OpenVINO's compiled-blob cache is left out for these one-off models."""
    from yolo_adapters.integration.module import EngineModule  # torch: only when a report is made

    options = {
        "precision": precision,
        "dynamic": plan.dynamic,
        "imgsz": list(plan.imgsz),
        "batch": plan.batch,
        "compile_cache": False,
    }
    engine = plugin.load(path, plugin.default_device, options)
    return EngineModule(engine, read_artifact_info(path), plugin.name, plugin.default_device, path, pipeline=False)


def agreement_report(
    reference: Path,
    candidate: Path,
    images: Sequence[Path],
    plan: ExportPlan,
    task: str,
    plugin: BackendPlugin,
    conf: float = 0.25,
    precision: str = "int8",
) -> AgreementSection:
    """``candidate`` run at ``precision`` (INT8, or bf16 on the FP32 IR) vs FP32 on ``images`` through
    Ultralytics' predictor: matched detections, IoU, keypoints, masks, top-1; for pose also the keypoint distance
    at the same anchor (``anchor_keypoint_px``)."""
    runs: list[list[Any]] = []
    modules: list[EngineModule] = []
    with quiet_ultralytics():
        for path, mode in ((reference, "fp32"), (candidate, precision)):
            modules.append(_engine_module(path, plan, mode, plugin))
            predictor = _predictor(task, modules[-1], plan.imgsz)
            runs.append([predictor(source=str(p), stream=False)[0] for p in images])
    total = summarize_agreement(runs[0], runs[1], [p.name for p in images], conf, match_detections, compare_results)
    if task == "pose":
        total["anchor_keypoint_px"] = anchor_keypoint_px(modules[0], modules[1], images, plan.imgsz)
    return total


def anchor_keypoint_px(
    reference: Any, candidate: Any, images: Sequence[Path], imgsz: Sequence[int], conf: float = 0.5
) -> float | None:
    """Mean keypoint distance between two pose models at the same anchor, before NMS, over the anchors the
    reference scores >= ``conf``, in original-image pixels: the quantization error itself.

    After NMS a person's keypoints are those of whichever neighbouring anchor scores highest. Where the
    reference's best anchors are near-tied (zidane.jpg at 640: 0.891, 0.890, 0.889), a 0.01 score change picks
    another anchor whose keypoints the FP32 model itself puts 8 to 19 px elsewhere, and the matched person's
    keypoints jump by that much whatever the quantizer did. None for an NMS-free (end-to-end) head."""
    import torch

    from yolo_adapters.quantize.calibration import preprocess

    hw = (int(imgsz[0]), int(imgsz[-1]))
    per_image = []
    for image in images:
        x = torch.from_numpy(preprocess(Path(image), hw, "pose", int(reference.stride))[None])
        a, b = (_first_output(module(x))[0].float().numpy() for module in (reference, candidate))
        try:
            distance = same_anchor_keypoint_distance(a, b, len(reference.names), reference.kpt_shape, conf)
        except ValueError:
            return None  # end-to-end head: its output is already one row per person
        if distance is not None:
            height, width = _image_size(image)
            per_image.append(distance / min(hw[0] / height, hw[1] / width))
    return float(np.mean(per_image)) if per_image else None


def same_anchor_keypoint_distance(
    reference: np.ndarray, candidate: np.ndarray, classes: int, kpt_shape: Sequence[int] | None, conf: float = 0.5
) -> float | None:
    """Mean keypoint distance in model-input pixels between two raw pose outputs (channels x anchors: 4 box,
    ``classes`` scores, keypoints) at the anchors ``reference`` scores >= ``conf``; None when it scores none so
    high. ValueError when the output is not laid out so (an end-to-end head's one row per person)."""
    keypoints, dims = kpt_shape or (0, 0)
    offset = 4 + classes
    if not keypoints or reference.ndim != 2 or reference.shape[0] != offset + int(keypoints) * int(dims):
        raise ValueError(f"not a pose output with anchors: shape {reference.shape}")
    confident = reference[4:offset].max(axis=0) >= conf
    if not confident.any():
        return None
    ka = reference[offset:].reshape(int(keypoints), int(dims), -1)[:, :2, confident]
    kb = candidate[offset:].reshape(int(keypoints), int(dims), -1)[:, :2, confident]
    return float(np.linalg.norm(ka - kb, axis=1).mean())


def _first_output(out: Any) -> Any:
    return out[0] if isinstance(out, (list, tuple)) else out


def _image_size(image: Any) -> tuple[int, int]:
    import cv2

    pixels = cv2.imread(str(image))
    if pixels is None:
        raise OptionError(f"Image {image} cannot be read (corrupt, or not an image).")
    return int(pixels.shape[0]), int(pixels.shape[1])


def labelled_metrics(module: Any, images: Sequence[Path], task: str, imgsz: Sequence[int]) -> dict[str, float]:
    """The accuracy of ``module`` (an EngineModule) on labelled ``images``, by Ultralytics' own classes:

    detect/segment/pose/obb: the task's validator (``DetectionValidator``... on a temporary dataset listing
    exactly these images; labels are the YOLO files beside them), its ``metrics/...`` results (mAP50, mAP50-95
    per box/mask/pose); classify: the predictor's top-5 and ``ClassifyMetrics`` (top-1, top-5), the label being
    the class folder."""
    with quiet_ultralytics():
        if task == "classify":
            return _classify_metrics(module, images, imgsz)
        return _validator_metrics(module, images, task, imgsz)


def _classify_metrics(module: Any, images: Sequence[Path], imgsz: Sequence[int]) -> dict[str, float]:
    import torch
    from ultralytics.utils.metrics import ClassifyMetrics

    predictor = _predictor("classify", module, imgsz)
    targets, top5 = [], []
    for image in images:
        target = class_of(image, module.names)
        if target is None:
            continue
        probs = predictor(source=str(image), stream=False)[0].probs
        targets.append(torch.tensor([target]))
        top5.append(torch.tensor([list(probs.top5)]))
    metrics = ClassifyMetrics()
    if targets:
        metrics.process(targets, top5)
    return {k: float(v) for k, v in metrics.results_dict.items() if k.startswith("metrics/")}


def _validator_metrics(module: Any, images: Sequence[Path], task: str, imgsz: Sequence[int]) -> dict[str, float]:
    from ultralytics.models import yolo

    install()  # the patched AutoBackend hands the validator ``module`` itself (runtime.build_engine_module)
    classes = {
        "detect": yolo.detect.DetectionValidator,
        "segment": yolo.segment.SegmentationValidator,
        "pose": yolo.pose.PoseValidator,
        "obb": yolo.obb.OBBValidator,
    }
    with tempfile.TemporaryDirectory(prefix="yolo_adapters_val_") as tmp:
        folder = Path(tmp)
        (folder / "images.txt").write_text("".join(f"{Path(p).resolve()}\n" for p in images))
        data: dict[str, Any] = {
            "path": str(folder),
            "train": "images.txt",
            "val": "images.txt",
            "names": {int(k): str(v) for k, v in module.names.items()},
        }
        if task == "pose" and module.kpt_shape:
            data["kpt_shape"] = list(module.kpt_shape)
            data["flip_idx"] = list((module.metadata or {}).get("flip_idx") or range(int(module.kpt_shape[0])))
        (folder / "data.yaml").write_text(json.dumps(data))  # JSON is YAML
        args = {
            "task": task,
            "data": str(folder / "data.yaml"),
            "imgsz": max(int(v) for v in imgsz),
            "batch": 1,
            "workers": 0,
            "plots": False,
            "verbose": False,
            "save_json": False,
            "device": f"{module.backend_name}:{module.engine_device}",
            "rect": True,
            "mode": "val",
        }
        validator = classes[task](save_dir=folder / "val", args=args)
        stats = validator(model=module)
    return {k: float(v) for k, v in (stats or {}).items() if str(k).startswith("metrics/")}


def summarize_agreement(
    reference: list, candidate: list, names: list[str], conf: float, match: Any, compare: Any
) -> AgreementSection:
    """Aggregate per-image ``parity.compare_results`` into one report section.

    Pose: ``mean_keypoint_px`` is the mean over every matched keypoint, ``max_keypoint_px`` the single farthest
    keypoint, and ``worst_person_keypoint_px`` the largest of the per-person means (each matched person's mean
    keypoint distance), named by ``worst_person`` ("IMAGE: person I", I the FP32 detection's index): one person
    whose skeleton moved is visible there even when the many others pull the overall mean down;
    ``worst_confident_person_keypoint_px`` is the same over the people FP32 finds with conf >= 0.5 (below that,
    FP32's own keypoints are unsure, and those people move most). ``mean_person_oks`` and
    ``min_confident_person_oks`` say the same in COCO's object keypoint similarity with FP32 as the ground truth
    (``person_keypoint_oks``): pixels are relative to the person's size there, and INT8's keypoint error grows with
    it (docs/quantization.md), so a close-up's 3 px and a small figure's 3 px read differently."""
    total: AgreementSection = {
        "images": len(names),
        "reference_detections": 0,
        "candidate_detections": 0,
        "matched": 0,
        "confident_reference": 0,
        "confident_found": 0,
        "min_box_iou": None,
        "mean_box_iou": None,
        "max_score_diff": None,
        "mean_keypoint_px": None,
        "max_keypoint_px": None,
        "worst_person_keypoint_px": None,
        "worst_person": None,
        "worst_confident_person_keypoint_px": None,
        "mean_person_oks": None,
        "min_confident_person_oks": None,
        "min_mask_iou": None,
        "min_pixel_agreement": None,
        "max_depth_diff": None,
        "mean_depth_diff": None,
        "top1_agreement": None,
        "max_prob_diff": None,
        "unmatched": [],
    }
    ious: list[float] = []
    kpt_sum, kpt_n = 0.0, 0
    top1: list[float] = []
    oks: list[float] = []
    for ref, cand, name in zip(reference, candidate, names):
        agreement = compare(ref, cand, conf=conf)
        if agreement.task == "classify":
            top1.append(agreement.top1_agree)
            total["max_prob_diff"] = max(total["max_prob_diff"] or 0.0, agreement.max_prob_diff)
            continue
        if agreement.task == "semantic":  # share of pixels with FP32's class, the worst image
            total["min_pixel_agreement"] = _lowest(total["min_pixel_agreement"], agreement.pixel_agreement)
            continue
        if agreement.task == "depth":  # largest depth difference as a share of FP32's depth range, the worst image
            total["max_depth_diff"] = max(total["max_depth_diff"] or 0.0, agreement.max_depth_diff)
            total["mean_depth_diff"] = max(total["mean_depth_diff"] or 0.0, agreement.mean_depth_diff)
            continue
        total["reference_detections"] += agreement.reference
        total["candidate_detections"] += agreement.candidate
        total["matched"] += agreement.matched
        total["unmatched"] += [f"{name}: {u}" for u in agreement.unmatched]
        boxes_ref = ref.obb if agreement.task == "obb" else ref.boxes
        boxes_cand = cand.obb if agreement.task == "obb" else cand.boxes
        pairs = match(boxes_ref, boxes_cand, agreement.task)
        ious += [iou for _, _, iou in pairs]
        confident = [i for i in range(len(boxes_ref)) if float(boxes_ref.conf[i]) >= 0.5]
        found = {i for i, _, _ in pairs}
        total["confident_reference"] += len(confident)
        total["confident_found"] += sum(i in found for i in confident)
        if agreement.matched:
            total["max_score_diff"] = max(total["max_score_diff"] or 0.0, agreement.max_score_diff)
            if agreement.task == "pose":
                kpt_sum += agreement.mean_keypoint_px * agreement.matched
                kpt_n += agreement.matched
                total["max_keypoint_px"] = max(total["max_keypoint_px"] or 0.0, agreement.max_keypoint_px)
                for i, person_px in person_keypoint_px(ref, cand, pairs):
                    if total["worst_person_keypoint_px"] is None or person_px > total["worst_person_keypoint_px"]:
                        total["worst_person_keypoint_px"], total["worst_person"] = person_px, f"{name}: person {i}"
                    if i in confident:
                        worst = total["worst_confident_person_keypoint_px"]
                        total["worst_confident_person_keypoint_px"] = max(worst or 0.0, person_px)
                for i, person_oks in person_keypoint_oks(ref, cand, pairs):
                    oks.append(person_oks)
                    if i in confident:
                        total["min_confident_person_oks"] = _lowest(total["min_confident_person_oks"], person_oks)
            if agreement.task == "segment":
                total["min_mask_iou"] = _lowest(total["min_mask_iou"], agreement.min_mask_iou)
    if ious:
        total["min_box_iou"], total["mean_box_iou"] = min(ious), sum(ious) / len(ious)
    if kpt_n:
        total["mean_keypoint_px"] = kpt_sum / kpt_n
    if oks:
        total["mean_person_oks"] = sum(oks) / len(oks)
    if top1:
        total["top1_agreement"] = sum(top1) / len(top1)
    if total["confident_reference"]:
        total["confident_recall"] = total["confident_found"] / total["confident_reference"]
    return total


def _lowest(current: float | None, value: float) -> float:
    """The running minimum of a figure that starts unset (None): an image at 0.0 stays the minimum."""
    return value if current is None else min(current, value)


def person_keypoint_px(
    reference: Any, candidate: Any, pairs: Sequence[tuple[int, int, float]]
) -> list[tuple[int, float]]:
    """(FP32 detection index, mean keypoint distance in original-image pixels) for each matched person."""
    if reference.keypoints is None or candidate.keypoints is None:
        return []
    kr, kc = reference.keypoints.xy.float().cpu(), candidate.keypoints.xy.float().cpu()
    return [(int(i), float((kr[i] - kc[j]).norm(dim=-1).mean())) for i, j, _ in pairs]


def person_keypoint_oks(
    reference: Any, candidate: Any, pairs: Sequence[tuple[int, int, float]]
) -> list[tuple[int, float]]:
    """(FP32 detection index, object keypoint similarity of the candidate's keypoints to FP32's) per matched person.

    COCO's OKS through Ultralytics' ``kpt_iou``, as its pose validator scores a prediction against a label: FP32's
    keypoints are the label (those FP32 itself gives conf >= 0.5 count, all when it gives no confidences), the
    person's scale is FP32's box area x 0.53 (the validator's stand-in for a segment area), the sigmas COCO's for
    17 keypoints, else equal ones. 1.0 is the same skeleton. A person with no such keypoint is left out."""
    if reference.keypoints is None or candidate.keypoints is None or not pairs:
        return []
    import torch
    from ultralytics.utils.metrics import OKS_SIGMA, kpt_iou

    kr, kc = reference.keypoints, candidate.keypoints
    count = int(kr.xy.shape[1])
    visible = (kr.conf >= 0.5).float() if kr.conf is not None else torch.ones(kr.xy.shape[:2])
    truth = torch.cat([kr.xy.float().cpu(), visible.cpu()[..., None]], dim=-1)
    guess = torch.cat([kc.xy.float().cpu(), torch.ones(kc.xy.shape[:2])[..., None]], dim=-1)
    wh = (reference.boxes.xyxy[:, 2:] - reference.boxes.xyxy[:, :2]).float().cpu()
    sigma: np.ndarray = OKS_SIGMA if count == 17 else np.ones(count) / count
    out = []
    for i, j, _ in pairs:
        if not bool(truth[i, :, 2].any()):  # FP32 sure of none of this person's keypoints: nothing to compare
            continue
        area = wh[i].prod()[None] * 0.53
        # Ultralytics annotates sigma as list[float] but computes with it as an array (its OKS_SIGMA is one)
        oks = kpt_iou(truth[i : i + 1], guess[j : j + 1], area, sigma)  # type: ignore[arg-type]
        out.append((int(i), float(oks[0, 0])))
    return out


def write_report(folder: Path, report: Mapping[str, Any]) -> Path:
    return write_beside(folder, REPORT_FILE, report)


def read_report(artifact: str | Path) -> dict[str, Any] | None:
    """The quantization report saved beside an INT8 artifact (its folder or file), or None."""
    return read_beside(artifact, REPORT_FILE)


def write_beside(folder: Path, name: str, record: Mapping[str, Any]) -> Path:
    """A JSON record (a report, precision="auto"'s choice) in the model's folder: it travels with the cache entry."""
    path = folder / name
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def read_beside(artifact: str | Path, name: str) -> dict[str, Any] | None:
    """The JSON record ``name`` beside ``artifact`` (its folder or file); None when there is none or it is unreadable."""
    path = Path(artifact)
    try:
        return json.loads(((path if path.is_dir() else path.parent) / name).read_text())
    except (OSError, ValueError):
        return None


def format_report(report: Mapping[str, Any]) -> str:
    """A few human-readable lines (the CLI prints them after an INT8 conversion)."""
    cal, q, a = report.get("calibration", {}), report.get("quantization", {}), report.get("agreement")
    quantizers = q.get("quantizers", q.get("fake_quantize"))
    target = q.get("target") or {}
    recipe = f", recipe {target['recipe']} for {target['device']} {target['isa']}" if target else ""
    lines = [
        f"INT8 ({q.get('tool')}, preset {q.get('preset')}{recipe}): {quantizers} quantizers; "
        f"kept in float: {', '.join(f'{k} x{v}' for k, v in (q.get('kept_in_float') or {}).items()) or 'nothing'}",
        f"calibration: {cal.get('images')} images from {cal.get('folder')} at input shape {report.get('input_shape')}",
    ]
    control = report.get("accuracy_control")
    if control and control.get("max_keypoint_px") is not None:
        lines.append(
            f"accuracy control: keypoints at the same anchor within {control['max_keypoint_px']} px of FP32 "
            f"(model input; {control['validations']} validations on {control['images']} held-back images; "
            f"{control['keypoint_px_before']:.3f} px before, {control['keypoint_px']:.3f} px after; "
            f"{control['fake_quantize_left']} quantizers left)"
        )
    elif control:
        lines.append(
            f"accuracy control: {control['metric']} may drop by at most {control['max_drop']} "
            f"({control['validations']} validations on {control['images']} labelled images; "
            f"{control['fake_quantize_left']} quantizers left)"
        )
    if control and control.get("int8_weights") is False:
        lines.append(
            f"  weights kept as NNCF validated them (fake-quantized floats): with int8 weights the model "
            f"measured {control['int8_weights_value']:.4g}, outside the limit"
        )
    if not a:
        lines.append("agreement: no held-back images (holdout=0 or a one-image folder)")
    else:
        lines.append(f"INT8 vs FP32 on {a['images']} held-back images:")
        if a.get("top1_agreement") is not None:
            lines.append(
                f"  top-1 agreement {a['top1_agreement']:.1%}, max probability difference {a['max_prob_diff']:.4f}"
            )
        elif a.get("min_pixel_agreement") is not None:
            lines.append(f"  pixels with FP32's class, worst image: {a['min_pixel_agreement']:.2%}")
        elif a.get("max_depth_diff") is not None:
            lines.append(
                f"  depth difference, worst image: mean {a.get('mean_depth_diff') or 0.0:.2%}, largest "
                f"{a['max_depth_diff']:.2%} of FP32's depth range"
            )
        else:
            lines.append(
                f"  detections FP32 {a['reference_detections']}, INT8 {a['candidate_detections']}, "
                f"matched {a['matched']}; FP32 conf>=0.5 found: {a['confident_found']}/{a['confident_reference']}"
            )
            for key, label in (
                ("mean_box_iou", "mean box IoU"),
                ("min_box_iou", "min box IoU"),
                ("max_score_diff", "max score difference"),
                ("mean_keypoint_px", "mean keypoint distance px"),
                ("max_keypoint_px", "max keypoint distance px"),
                ("min_mask_iou", "min mask IoU"),
            ):
                if a.get(key) is not None:
                    lines.append(f"  {label}: {a[key]:.4f}")
                if key == "mean_keypoint_px" and a.get("anchor_keypoint_px") is not None:
                    lines.append(
                        f"  keypoint distance at the same anchor, before NMS (the quantization error) px: "
                        f"{a['anchor_keypoint_px']:.4f}"
                    )
                if key == "max_keypoint_px" and a.get("worst_person_keypoint_px") is not None:
                    lines.append(
                        f"  worst person's mean keypoint distance px: {a['worst_person_keypoint_px']:.4f} "
                        f"({a['worst_person']}; FP32 conf>=0.5 only: "
                        f"{a.get('worst_confident_person_keypoint_px') or 0.0:.4f})"
                    )
                if key == "max_keypoint_px" and a.get("mean_person_oks") is not None:
                    lines.append(
                        f"  keypoint similarity to FP32 (COCO OKS, FP32 as ground truth): mean "
                        f"{a['mean_person_oks']:.4f}, lowest FP32 conf>=0.5 person "
                        f"{a['min_confident_person_oks'] if a.get('min_confident_person_oks') is not None else float('nan'):.4f}"
                    )
    metrics = report.get("metrics")
    if metrics:
        lines.append(f"accuracy on {metrics['images']} labelled held-back images (Ultralytics' validator):")
        for key in metrics.get("fp32", {}):
            name = key.replace("metrics/", "")
            lines.append(
                f"  {name}: FP32 {metrics['fp32'][key]:.4f}, INT8 {metrics['int8'].get(key, float('nan')):.4f}"
            )
    return "\n".join(lines)
