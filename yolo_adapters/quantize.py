"""INT8 post-training quantization with NNCF, calibrated on the images the model will really see.

The flow (``precision="int8"``): Ultralytics exports an FP32 OpenVINO IR into the cache's staging folder, then
``quantize_openvino`` (called from the backend's ``finish_artifact``)

1. letterboxes the calibration images exactly as Ultralytics' predictor will at run time (``LetterBox`` with
   ``auto=False`` at the model's static input shape, or at ``imgsz`` for a dynamic IR; classify models get
   Ultralytics' classify transforms), batched to the model's static batch;
2. keeps the head's post-processing in float: the ops between the last learned layers and the outputs (DFL,
   box/keypoint/angle decode, Sigmoid, Softmax...) are found by walking the graph back from its outputs, so it
   works for every task and for IRs from either conversion route, whatever the node names;
3. runs ``nncf.quantize`` with the MIXED preset (symmetric weights, asymmetric activations);
4. compares INT8 with FP32 on held-back images of the calibration folder (``yolo_adapters.parity``) and writes
   ``quantization_report.json`` next to the INT8 model.

Only images are needed; with no calibration data it fails before any export (Ultralytics would download coco8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .errors import BackendUnavailableError, ConversionError, OptionError

if TYPE_CHECKING:
    from .backends.base import ExportPlan

LOGGER = logging.getLogger("yolo_adapters")

REPORT_FILE = "quantization_report.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Options every backend that supports precision="int8" accepts (see docs/quantization.md).
QUANT_OPTIONS: dict[str, tuple[type, ...]] = {
    "calibration": (str, Path, type(None)),  # folder of images (searched recursively)
    "calibration_size": (int,),  # at most this many calibration images (default 300, NNCF's default)
    "holdout": (int, type(None)),  # images kept back for the report (default: 20% of the folder, 1..50)
    "fast_bias_correction": (bool,),  # NNCF's fast bias correction: about 2x quicker calibration, less accurate
}
DEFAULT_CALIBRATION_SIZE = 300
PRESET = "mixed"
#: Learned layers: where the walk back from the outputs stops.
_LEARNED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
#: Ops that only move data around: a constant-weight layer fed by a Softmax through these is a decode op (DFL).
_LAYOUT = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert", "Split", "VariadicSplit", "StridedSlice", "Slice")
_PLAN_KEY = "yolo_adapters_int8"  # not an Ultralytics exporter argument: it only enters the cache key


# -- calibration data ----------------------------------------------------------------------------------
def find_images(source: str | Path | None) -> list[Path]:
    """Every image under ``source`` (a folder, searched recursively), sorted; a clear error when there are none."""
    if source is None or str(source) == "":
        raise OptionError(
            "precision='int8' needs calibration images: pass calibration='IMAGES_DIR' (Python) or --data IMAGES_DIR "
            "(CLI), a folder with a few hundred images like the ones the model will see (no labels needed). "
            "yolo_adapters never downloads a dataset for you."
        )
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise OptionError(f"Calibration folder {folder} does not exist (or is not a folder): give a folder of images.")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise OptionError(
            f"Calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): put a few hundred "
            "representative images in it."
        )
    return images


def images_digest(images: Sequence[Path], root: Path) -> str:
    """Content hash of a calibration set (names relative to ``root`` and bytes): it belongs in the cache key."""
    digest = hashlib.sha256()
    for path in images:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def split_holdout(images: Sequence[Path], holdout: int | None = None) -> tuple[list[Path], list[Path]]:
    """(calibration images, held-back images): every k-th image is held back for the report.

    Default: 20% of the folder, between 1 and 50; a folder of one image is both calibrated and reported on.
    """
    images = list(images)
    n = len(images)
    count = min(50, max(1, round(0.2 * n))) if holdout is None else int(holdout)
    if n < 2 or count <= 0:
        return images, images if n < 2 else []
    count = min(count, n - 1)
    step = n / count
    held = {int(i * step + step / 2) for i in range(count)}
    return [p for i, p in enumerate(images) if i not in held], [p for i, p in enumerate(images) if i in held]


def preprocess(image: Path, hw: tuple[int, int], task: str, stride: int = 32) -> np.ndarray:
    """One image as the model sees it at run time: CHW float32 RGB in [0, 1] at exactly ``hw``.

    Detect/segment/pose/obb: Ultralytics' LetterBox with auto=False (what the predictor uses for a static
    shape). Classify: Ultralytics' classify transforms.
    """
    import cv2

    bgr = cv2.imread(str(image))
    if bgr is None:
        raise OptionError(f"Calibration image {image} cannot be read (corrupt, or not an image).")
    if task == "classify":
        from PIL import Image
        from ultralytics.data.augment import classify_transforms

        rgb = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        size = hw if hw[0] != hw[1] else hw[0]
        return classify_transforms(size)(rgb).numpy().astype(np.float32)
    from ultralytics.data.augment import LetterBox

    boxed = LetterBox(new_shape=tuple(hw), auto=False, stride=stride)(image=bgr)
    return np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0


def calibration_batches(
    images: Sequence[Path], shape: Sequence[int], task: str, stride: int = 32, desc: str = "letterboxing"
) -> list[np.ndarray]:
    """Calibration tensors of exactly ``shape`` (N, C, H, W); a short last batch is filled from the first images."""
    batch, hw = int(shape[0]), (int(shape[2]), int(shape[3]))
    tensors = [preprocess(p, hw, task, stride) for p in tqdm(images, desc=f"yolo_adapters: {desc}", unit="img")]
    out = []
    for start in range(0, len(tensors), batch):
        chunk = tensors[start : start + batch]
        chunk += [tensors[i % len(tensors)] for i in range(batch - len(chunk))]
        out.append(np.stack(chunk))
    return out


# -- what stays in float ---------------------------------------------------------------------------------
def _producer(port: Any) -> Any:
    return port.get_source_output().get_node()


def _is_constant(node: Any, memo: dict[str, bool] | None = None) -> bool:
    """A Constant, or an op computed only from constants (decompressed FP16 weights: Constant -> Convert)."""
    memo = {} if memo is None else memo
    name = node.get_friendly_name()
    if name not in memo:
        kind = node.get_type_name()
        if kind == "Constant":
            memo[name] = True
        elif kind in ("Parameter", "ShapeOf", "Result") or node.get_input_size() == 0:
            memo[name] = False
        else:
            memo[name] = False  # cycles cannot happen in a DAG, but be safe while recursing
            memo[name] = all(_is_constant(_producer(i), memo) for i in node.inputs())
    return memo[name]


def _is_learned(node: Any, memo: dict[str, bool]) -> bool:
    """A trained layer (conv/matmul with constant weights) whose data input is not a Softmax (DFL's fixed conv)."""
    if node.get_type_name() not in _LEARNED or node.get_input_size() < 2:
        return False
    if not _is_constant(_producer(node.input(1)), memo):
        return False  # attention's activation x activation MatMul
    source = _producer(node.input(0))
    while source.get_type_name() in _LAYOUT and source.get_input_size():
        source = _producer(source.input(0))
    return source.get_type_name() not in ("Softmax", "SoftMax")


def head_postprocessing(model: Any) -> list[str]:
    """Friendly names of the ops after the last learned layers: the decode that must stay in float.

    Walks back from every output and stops at learned layers (and constants, inputs, ShapeOf): what it visits
    is the post-processing of every Ultralytics head (DFL, dist2bbox, stride Multiply, Sigmoid, keypoint and
    angle decode, classify Softmax, the concats feeding them). A learned layer's own bias Add is left to it.
    """
    memo: dict[str, bool] = {}
    seen: dict[str, Any] = {}
    stack = [_producer(r.input(0)) for r in model.get_results()]
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        kind = node.get_type_name()
        if name in seen or kind in ("Parameter", "Result") or _is_constant(node, memo) or _is_learned(node, memo):
            continue
        seen[name] = node
        if kind != "ShapeOf":  # a shape read does not make its producer post-processing
            stack.extend(_producer(i) for i in node.inputs())
    names = []
    for name, node in seen.items():
        if node.get_type_name() == "Add" and any(_is_learned(_producer(i), memo) for i in node.inputs()):
            continue  # bias of a learned layer (fused with it)
        names.append(name)
    return sorted(names)


def float_scope(model: Any) -> dict[str, list[str]]:
    """Every op left in float, by reason (all found from the graph structure, never from node names):

    - ``decode``: the head's post-processing (``head_postprocessing``);
    - ``head_outputs``: the learned layers that feed the decode directly (the last 1x1 convs of the box, class,
      keypoint, mask-coefficient and angle branches: their outputs are coordinates, not features);
    - ``attention``: activation x activation MatMuls and their Softmax (C2PSA / area attention).
    """
    memo: dict[str, bool] = {}
    decode = head_postprocessing(model)
    wanted = set(decode)
    head_outputs: set[str] = set()
    attention: list[str] = []
    for op in model.get_ops():
        name, kind = op.get_friendly_name(), op.get_type_name()
        if name in wanted:
            for port in op.inputs():
                source = _producer(port)
                if source.get_type_name() == "Add":  # through a learned layer's bias
                    candidates = [_producer(i) for i in source.inputs()]
                else:
                    candidates = [source]
                head_outputs.update(c.get_friendly_name() for c in candidates if _is_learned(c, memo))
        elif kind == "MatMul" and op.get_input_size() == 2 and not _is_constant(_producer(op.input(1)), memo):
            attention.append(name)
        elif kind in ("Softmax", "SoftMax"):
            attention.append(name)
    return {"decode": decode, "head_outputs": sorted(head_outputs), "attention": sorted(attention)}


# -- the cache key and plan ------------------------------------------------------------------------------
def int8_plan(plan: "ExportPlan", options: Mapping[str, Any]) -> "ExportPlan":
    """``plan`` for precision='int8': FP32 export, plus the calibration settings (content hash in the key,
    folder path outside it). Fails here, before any export, when there is no calibration data or no NNCF."""
    require_nncf()
    images = find_images(options.get("calibration"))
    root = Path(options["calibration"]).expanduser()
    size = int(options.get("calibration_size") or DEFAULT_CALIBRATION_SIZE)
    if size < 1:
        raise OptionError(f"calibration_size={size} must be at least 1.")
    holdout = options.get("holdout")
    if holdout is not None and holdout < 0:
        raise OptionError(f"holdout={holdout} must be >= 0.")
    import nncf

    fast = bool(options.get("fast_bias_correction", False))
    key = (("data", images_digest(images, root)), ("size", size), ("holdout", holdout), ("preset", PRESET),
           ("fast_bias_correction", fast), ("nncf", nncf.__version__), ("scheme", 2))  # fmt: skip
    return dataclasses.replace(
        plan, extra=tuple(plan.extra) + ((_PLAN_KEY, key),), inputs={"calibration": str(root.resolve())}
    )


def require_nncf() -> None:
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        raise BackendUnavailableError(
            "precision='int8' quantizes with NNCF, which is not installed: pip install 'yolo-adapters[int8]' "
            "(or pip install nncf)."
        )


def plan_settings(plan: "ExportPlan") -> dict[str, Any]:
    settings = dict(dict(plan.extra).get(_PLAN_KEY, ()))
    settings["calibration"] = (plan.inputs or {}).get("calibration")
    return settings


# -- OpenVINO ---------------------------------------------------------------------------------------------
def quantize_openvino(fp32_xml: Path, plan: "ExportPlan") -> Path:
    """Quantize the FP32 IR at ``fp32_xml`` into a sibling ``*_int8_openvino_model/`` folder; returns its .xml.

    The report goes next to it; the FP32 IR is removed afterwards (the cache keeps only what runs).
    """
    require_nncf()
    import nncf
    import openvino as ov

    from .runtime import read_artifact_info

    settings = plan_settings(plan)
    info = read_artifact_info(fp32_xml)
    task = info.task or "detect"
    root = Path(settings["calibration"])
    calib_images, held = split_holdout(find_images(root), settings.get("holdout"))
    calib_images = calib_images[: settings.get("size") or DEFAULT_CALIBRATION_SIZE]

    core = ov.Core()
    model = core.read_model(str(fp32_xml))
    shape = static_shape(model, plan)
    batches = calibration_batches(calib_images, shape, task, info.stride or 32)
    scope = float_scope(model)
    ignored = sorted({name for names in scope.values() for name in names})
    LOGGER.info("yolo_adapters: INT8 calibration on %d images at %s; %d ops kept in float",
                len(calib_images), shape, len(ignored))  # fmt: skip

    bar = tqdm(total=len(batches), desc="yolo_adapters: INT8 calibration", unit="batch")

    def feed(tensor: np.ndarray) -> np.ndarray:
        if bar.n < bar.total:
            bar.update()
        return tensor

    try:
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches, feed),
            **quantize_arguments(nncf, fast=bool(settings.get("fast_bias_correction"))),
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        )
    except Exception as exc:
        raise ConversionError(f"NNCF could not quantize {fp32_xml}: {type(exc).__name__}: {exc}") from exc
    finally:
        bar.close()

    fp32_dir = fp32_xml.parent
    out_dir = fp32_dir.with_name(fp32_dir.name.replace("_openvino_model", "") + "_int8_openvino_model")
    out_dir.mkdir(parents=True, exist_ok=True)
    int8_xml = out_dir / fp32_xml.name
    ov.save_model(quantized, str(int8_xml), compress_to_fp16=False)
    for extra in fp32_dir.iterdir():  # metadata.yaml and anything else Ultralytics wrote beside the IR
        if extra.suffix not in (".xml", ".bin") and extra.is_file():
            shutil.copy2(extra, out_dir / extra.name)

    report = {
        "backend": "openvino",
        "task": task,
        "precision": "int8",
        "artifact": int8_xml.name,
        "input_shape": [int(v) for v in shape],
        "dynamic": plan.dynamic,
        "calibration": {
            "folder": str(root),
            "digest": settings.get("data"),
            "images": len(calib_images),
            "batches": len(batches),
            "held_back": [str(p.relative_to(root)) for p in held],
        },
        "quantization": {
            "tool": f"nncf {nncf.__version__}",
            "preset": PRESET,
            "settings": {"model_type": "transformer", "activation_ranges": "minmax",
                         "fast_bias_correction": bool(settings.get("fast_bias_correction"))},
            "kept_in_float": _summarize_types(model, ignored),
            "kept_in_float_by_reason": {k: len(v) for k, v in scope.items()},
            "fake_quantize": count_fake_quantize(quantized),
        },
    }
    report["agreement"] = agreement_report(fp32_xml, int8_xml, held, plan, task) if held else None
    write_report(out_dir, report)
    shutil.rmtree(fp32_dir, ignore_errors=True)
    return int8_xml


def quantize_arguments(nncf: Any, fast: bool = False) -> dict[str, Any]:
    """The NNCF settings (measured on yolo11n-pose, docs/quantization.md): MIXED preset, the transformer model
    type (attention-aware quantizer placement), full bias correction and plain min/max activation ranges."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return {
        "preset": nncf.QuantizationPreset.MIXED,
        "model_type": nncf.ModelType.TRANSFORMER,
        "fast_bias_correction": fast,
        "advanced_parameters": AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        ),
    }


def static_shape(model: Any, plan: "ExportPlan") -> tuple[int, int, int, int]:
    """The input shape calibration tensors must have: the IR's own where static, else batch x imgsz."""
    partial = model.input(0).get_partial_shape()
    fallback = (plan.batch, 3, *plan.imgsz)
    return tuple(int(d.get_length()) if d.is_static else int(f) for d, f in zip(partial, fallback))  # type: ignore[return-value]


def count_fake_quantize(model: Any) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def _summarize_types(model: Any, names: Iterable[str]) -> dict[str, int]:
    wanted = set(names)
    counts: dict[str, int] = {}
    for op in model.get_ops():
        if op.get_friendly_name() in wanted:
            counts[op.get_type_name()] = counts.get(op.get_type_name(), 0) + 1
    return dict(sorted(counts.items()))


# -- the report -------------------------------------------------------------------------------------------
def _predictor(task: str, module: Any, imgsz: Sequence[int]) -> Any:
    """Ultralytics' own predictor for ``task``, running ``module`` (an AdapterBackend) with no AutoBackend."""
    from ultralytics.models import yolo

    classes = {
        "detect": yolo.detect.DetectionPredictor, "segment": yolo.segment.SegmentationPredictor,
        "pose": yolo.pose.PosePredictor, "obb": yolo.obb.OBBPredictor, "classify": yolo.classify.ClassificationPredictor,
    }  # fmt: skip
    predictor = classes[task](overrides={"imgsz": list(imgsz), "verbose": False, "save": False, "conf": 0.25})
    predictor.model = module
    predictor.device = module.device
    predictor.done_warmup = True
    return predictor


def _adapter(xml: Path, plan: "ExportPlan", precision: str) -> Any:
    from .backends.openvino import OpenVINOEngine
    from .runtime import AdapterBackend, read_artifact_info

    options = {"precision": precision, "compile_cache": False, "dynamic": plan.dynamic, "imgsz": list(plan.imgsz),
               "batch": plan.batch}  # fmt: skip
    return AdapterBackend(OpenVINOEngine(xml, "CPU", options), read_artifact_info(xml), "openvino", "CPU", xml)


def agreement_report(
    reference_xml: Path, candidate_xml: Path, images: Sequence[Path], plan: "ExportPlan", task: str, conf: float = 0.25
) -> dict[str, Any]:
    """INT8 vs FP32 on ``images`` through Ultralytics' predictor: matched detections, IoU, keypoints, masks, top-1."""
    from .convert import quiet_ultralytics
    from .parity import _match, compare_results

    runs = []
    with quiet_ultralytics():
        for xml, precision in ((reference_xml, "fp32"), (candidate_xml, "int8")):
            predictor = _predictor(task, _adapter(xml, plan, precision), plan.imgsz)
            runs.append([predictor(source=str(p), stream=False)[0] for p in images])
    return summarize_agreement(runs[0], runs[1], [p.name for p in images], conf, _match, compare_results)


def summarize_agreement(reference: list, candidate: list, names: list[str], conf: float, match: Any, compare: Any) -> dict:
    """Aggregate per-image ``parity.compare_results`` into one report section."""
    total = {"images": len(names), "reference_detections": 0, "candidate_detections": 0, "matched": 0,
             "confident_reference": 0, "confident_found": 0, "min_box_iou": None, "mean_box_iou": None,
             "max_score_diff": None, "mean_keypoint_px": None, "max_keypoint_px": None, "min_mask_iou": None,
             "top1_agreement": None, "max_prob_diff": None, "unmatched": []}  # fmt: skip
    ious: list[float] = []
    kpt_sum, kpt_n, top1 = 0.0, 0, []
    for ref, cand, name in zip(reference, candidate, names):
        agreement = compare(ref, cand, conf=conf)
        if agreement.task == "classify":
            top1.append(agreement.top1_agree)
            total["max_prob_diff"] = max(total["max_prob_diff"] or 0.0, agreement.max_prob_diff)
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
            if agreement.task == "segment":
                total["min_mask_iou"] = min(total["min_mask_iou"] or 1.0, agreement.min_mask_iou)
    if ious:
        total["min_box_iou"], total["mean_box_iou"] = min(ious), sum(ious) / len(ious)
    if kpt_n:
        total["mean_keypoint_px"] = kpt_sum / kpt_n
    if top1:
        total["top1_agreement"] = sum(top1) / len(top1)
    if total["confident_reference"]:
        total["confident_recall"] = total["confident_found"] / total["confident_reference"]
    return total


def write_report(folder: Path, report: Mapping[str, Any]) -> Path:
    path = folder / REPORT_FILE
    path.write_text(json.dumps(report, indent=1, default=str))
    return path


def read_report(artifact: str | Path) -> dict[str, Any] | None:
    """The quantization report saved beside an INT8 artifact (its folder or file), or None."""
    path = Path(artifact)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def format_report(report: Mapping[str, Any]) -> str:
    """A few human-readable lines (the CLI prints them after an INT8 conversion)."""
    cal, q, a = report.get("calibration", {}), report.get("quantization", {}), report.get("agreement")
    lines = [
        f"INT8 ({q.get('tool')}, preset {q.get('preset')}): {q.get('fake_quantize')} quantizers; "
        f"kept in float: {', '.join(f'{k} x{v}' for k, v in (q.get('kept_in_float') or {}).items()) or 'nothing'}",
        f"calibration: {cal.get('images')} images from {cal.get('folder')} at input shape {report.get('input_shape')}",
    ]
    if not a:
        lines.append("agreement: no held-back images (holdout=0 or a one-image folder)")
        return "\n".join(lines)
    lines.append(f"INT8 vs FP32 on {a['images']} held-back images:")
    if a.get("top1_agreement") is not None:
        lines.append(f"  top-1 agreement {a['top1_agreement']:.1%}, max probability difference {a['max_prob_diff']:.4f}")
    else:
        lines.append(f"  detections FP32 {a['reference_detections']}, INT8 {a['candidate_detections']}, "
                     f"matched {a['matched']}; FP32 conf>=0.5 found: {a['confident_found']}/{a['confident_reference']}")  # fmt: skip
        for key, label in (("mean_box_iou", "mean box IoU"), ("min_box_iou", "min box IoU"),
                           ("max_score_diff", "max score difference"), ("mean_keypoint_px", "mean keypoint distance px"),
                           ("max_keypoint_px", "max keypoint distance px"), ("min_mask_iou", "min mask IoU")):  # fmt: skip
            if a.get(key) is not None:
                lines.append(f"  {label}: {a[key]:.4f}")
    return "\n".join(lines)


# -- Python entry point -----------------------------------------------------------------------------------
@dataclass
class QuantizationResult:
    """What ``quantize_model`` returns: the cached INT8 artifact and its report (``quantization_report.json``)."""

    artifact: Path
    report: dict[str, Any] | None

    def __str__(self) -> str:
        return f"{self.artifact}\n{format_report(self.report) if self.report else '(no report)'}"


def quantize_model(model: Any, calibration: str | Path, backend: str = "openvino", **options: Any) -> QuantizationResult:
    """Convert ``model`` (a .pt path or an Ultralytics model) to INT8 for ``backend``, calibrated on the images
    in ``calibration``; cached like every conversion (the same call later returns at once).

    ``activate(backend, precision="int8", calibration=...)`` does the same on first use; this returns the report.
    """
    from . import registry
    from .errors import BackendUnavailableError as Unavailable
    from .runtime import resolve_artifact

    plugin = registry.get_backend(backend)
    missing = plugin.missing_requirements()
    if missing:
        raise Unavailable(missing)
    if "int8" not in plugin.precisions:
        raise OptionError(f"The {plugin.name!r} backend has no INT8 conversion; precisions: {plugin.precisions}.")
    checked = plugin.validate_options({**options, "precision": "int8", "calibration": calibration})
    device = plugin.normalize_device(plugin.name, str(checked.get("device") or ""))
    plugin.check_device(device)
    from ultralytics.engine.model import Model

    if isinstance(model, Model):  # YOLO("x.pt"): convert the network it wraps
        model = model.ckpt_path or model.model
    artifact = resolve_artifact(model, plugin, device, checked)
    return QuantizationResult(artifact, read_report(artifact))
