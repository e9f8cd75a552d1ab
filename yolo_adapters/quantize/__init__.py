"""INT8 post-training quantization, calibrated on the images the model will really see.

The flow (``precision="int8"``): Ultralytics exports an FP32 model (an OpenVINO IR, or an ONNX file for ONNX
Runtime) into the cache's staging folder, then the plugin's ``finish_artifact`` calls its engine package's INT8
module (``backends.openvino.int8``: NNCF; ``backends.onnxruntime.int8``: ``onnxruntime.quantization.quantize_static``,
QDQ), which

1. letterbox the calibration images exactly as Ultralytics' predictor will at run time (``LetterBox`` with
   ``auto=False`` at the model's static input shape, or at ``imgsz`` for a dynamic model; classify models get
   Ultralytics' classify transforms), batched to the model's static batch;
2. keep the head's post-processing in float: the ops between the last learned layers and the outputs (DFL,
   box/keypoint/angle decode, Sigmoid, Softmax...) are found by walking the graph back from its outputs
   (``yolo_adapters.quantize.graph``: one walk, with adapters for OpenVINO's and ONNX's graphs), whatever the node names;
3. quantize (NNCF: MIXED preset; ONNX Runtime: per-channel symmetric int8 weights, asymmetric uint8
   activations). With ``max_drop`` and a labelled dataset, NNCF's ``quantize_with_accuracy_control`` reverts
   layers to float until the task's mAP50-95 (top-1 for classify), measured by Ultralytics' own validator on the
   held-back images, drops by at most ``max_drop``; with ``max_keypoint_px`` (pose, no labels needed) until the
   keypoints at the same anchors are within that many model-input pixels of the FP32 model's own;
4. compare INT8 with FP32 on held-back images of the calibration folder (``yolo_adapters.compare.parity``), add FP32
   and INT8 mAP when those images have YOLO labels, and write ``quantization_report.json`` beside the model.

Only images are needed (labels for ``max_drop`` and the mAP figures); with no calibration data it fails before
any export (Ultralytics would download coco8).

This package is the engine-neutral part, below the engine packages that use it: ``calibration`` (the images, their
split and labels, the tensors), ``report`` (agreement, metrics, ``quantization_report.json``), ``choice`` and
``auto`` (``precision="auto"``: the tolerances, the timing rounds, the kept choice); this module holds the
options, the cache key and plan (``int8_plan``, ``plan_settings``) and ``quantize_model``, and re-exports the rest.
Each engine's quantizer lives in its own package (``yolo_adapters.backends.<engine>.int8``). NNCF, OpenVINO, ONNX,
ONNX Runtime and Ultralytics are imported only inside the functions that use them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_adapters.errors import BackendUnavailableError, OptionError
from yolo_adapters.quantize import graph
from yolo_adapters.quantize.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    IMAGE_SUFFIXES,
    LABELS_NEEDED,
    calibration_batches,
    class_of,
    data_root,
    find_images,
    images_digest,
    label_file,
    labelled,
    preprocess,
    split_holdout,
)
from yolo_adapters.quantize.report import (
    REPORT_FILE,
    agreement_report,
    anchor_keypoint_px,
    format_report,
    labelled_metrics,
    read_report,
    summarize_agreement,
    write_report,
)

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan

__all__ = [
    "DEFAULT_CALIBRATION_SIZE",
    "IMAGE_SUFFIXES",
    "QUANT_OPTIONS",
    "REPORT_FILE",
    "QuantizationResult",
    "agreement_report",
    "anchor_keypoint_px",
    "calibration_batches",
    "class_of",
    "data_root",
    "find_images",
    "float_scope",
    "format_report",
    "head_postprocessing",
    "images_digest",
    "int8_plan",
    "label_file",
    "labelled",
    "labelled_metrics",
    "plan_settings",
    "preprocess",
    "quantize_model",
    "read_report",
    "split_holdout",
    "summarize_agreement",
    "write_report",
]

#: Options every backend that supports precision="int8" accepts (see docs/quantization.md).
QUANT_OPTIONS: dict[str, tuple[type, ...]] = {
    "calibration": (str, Path, type(None)),  # folder of images (searched recursively), or a YOLO data.yaml
    "calibration_size": (int,),  # at most this many calibration images (default 300, NNCF's default)
    "holdout": (int, type(None)),  # images kept back for the report (default: 20% of the folder, 1..50)
    "fast_bias_correction": (bool,),  # NNCF's fast bias correction: about 2x quicker calibration, less accurate
    "max_drop": (float, int, type(None)),  # accuracy-controlled NNCF quantization: largest metric drop allowed
    "max_keypoint_px": (float, int, type(None)),  # accuracy control on agreement with FP32 (pose, no labels needed)
}
_PLAN_KEY = "yolo_adapters_int8"  # not an Ultralytics exporter argument: it only enters the cache key

# -- what stays in float (yolo_adapters.quantize.graph: one walk for OpenVINO and ONNX graphs) -------------------------
head_postprocessing = graph.head_postprocessing
float_scope = graph.float_scope


# -- the cache key and plan ------------------------------------------------------------------------------
def int8_plan(plan: ExportPlan, options: Mapping[str, Any], plugin: BackendPlugin) -> ExportPlan:
    """``plan`` for precision='int8': FP32 export, plus the calibration settings (content hash in the key,
    folder path outside it). Fails here, before any export, when there is no calibration data, no quantizer,
    ``max_drop`` without labels, or accuracy control without held-back images."""
    tool = plugin.quantizer_version()
    images = find_images(options.get("calibration"))
    root = data_root(options["calibration"])
    size = int(options.get("calibration_size") or DEFAULT_CALIBRATION_SIZE)
    if size < 1:
        raise OptionError(f"calibration_size={size} must be at least 1.")
    holdout = options.get("holdout")
    if holdout is not None and holdout < 0:
        raise OptionError(f"holdout={holdout} must be >= 0.")
    max_drop = options.get("max_drop")
    if max_drop is not None and options.get("max_keypoint_px") is not None:
        raise OptionError("max_drop and max_keypoint_px are two kinds of accuracy control: give one of them.")
    if max_drop is not None:
        max_drop = float(max_drop)
        if not 0 <= max_drop < 1:
            raise OptionError(
                f"max_drop={max_drop} is an absolute metric drop (mAP50-95 or top-1 in 0..1): use e.g. 0.01."
            )
        if not plugin.accuracy_control:
            raise OptionError(
                f"max_drop (accuracy-controlled quantization) is NNCF's, on the openvino backend; the {plugin.name!r} "
                "backend quantizes with fixed settings: leave max_drop out, or use --backend openvino."
            )
        _, held = split_holdout(images, holdout)
        if not held:
            raise OptionError("max_drop needs held-back images to measure the metric on: holdout must be >= 1.")
        if not labelled(held, root=root):
            raise OptionError(
                f"max_drop needs labels for the held-back images of {options['calibration']} (none of "
                f"{', '.join(p.name for p in held[:3])}{'...' if len(held) > 3 else ''} has one): give {LABELS_NEEDED}."
            )
    max_keypoint_px = options.get("max_keypoint_px")
    if max_keypoint_px is not None:
        max_keypoint_px = float(max_keypoint_px)
        if not max_keypoint_px > 0:
            raise OptionError(
                f"max_keypoint_px={max_keypoint_px} is a keypoint distance in model-input pixels: use e.g. 1.0."
            )
        if not plugin.accuracy_control:
            raise OptionError(
                f"max_keypoint_px (accuracy-controlled quantization) is NNCF's, on the openvino backend; the "
                f"{plugin.name!r} backend quantizes with fixed settings: leave it out, or use --backend openvino."
            )
        if not split_holdout(images, holdout)[1]:
            raise OptionError("max_keypoint_px needs held-back images to measure keypoints on: holdout must be >= 1.")
    fast = bool(options.get("fast_bias_correction", False))
    key = (
        ("data", images_digest(images, root, labels=True)),
        ("size", size),
        ("holdout", holdout),
        ("fast_bias_correction", fast),
        ("max_drop", max_drop),
        ("max_keypoint_px", max_keypoint_px),
        ("tool", tool),
        ("scheme", 6),
    )
    return dataclasses.replace(
        plan,
        extra=tuple(plan.extra) + ((_PLAN_KEY, key),),
        inputs={"calibration": str(Path(options["calibration"]).expanduser().resolve())},
    )


def plan_settings(plan: ExportPlan) -> dict[str, Any]:
    settings = dict(dict(plan.extra).get(_PLAN_KEY, ()))
    settings["calibration"] = (plan.inputs or {}).get("calibration")
    return settings


# -- Python entry point -----------------------------------------------------------------------------------
@dataclass
class QuantizationResult:
    """What ``quantize_model`` returns: the cached INT8 artifact and its report (``quantization_report.json``)."""

    artifact: Path
    report: dict[str, Any] | None

    def __str__(self) -> str:
        return f"{self.artifact}\n{format_report(self.report) if self.report else '(no report)'}"


def quantize_model(
    model: Any, calibration: str | Path, backend: str = "openvino", **options: Any
) -> QuantizationResult:
    """Convert ``model`` (a .pt path or an Ultralytics model) to INT8 for ``backend``, calibrated on the images
    in ``calibration``; cached like every conversion (the same call later returns at once).

    ``calibration`` is a folder of images, or a labelled YOLO dataset (a data.yaml, or a folder with images/ and
    labels/): with labels the report gets FP32 and INT8 mAP, and ``max_drop=0.01`` (openvino) quantizes under
    accuracy control. ``activate(backend, precision="int8", calibration=...)`` does the same on first use; this
    returns the report.
    """
    from yolo_adapters.core import registry
    from yolo_adapters.integration.runtime import resolve_artifact

    plugin = registry.get_backend(backend)
    missing = plugin.missing_requirements()
    if missing:
        raise BackendUnavailableError(missing)
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
