"""INT8 post-training quantization and precision="auto", calibrated on the images the model will really see.

The flow (``precision="int8"``): Ultralytics exports an FP32 model into the cache's staging folder, then the
plugin (``PrecisionFlows``) quantizes it with its engine's quantizer (``backends.openvino.int8``: NNCF;
``backends.onnxruntime.int8``: ``onnxruntime.quantization.quantize_static``, QDQ), whose shared steps
(``int8.Quantizer.run``)

1. letterbox the calibration images exactly as Ultralytics' predictor will at run time (``LetterBox`` with
   ``auto=False`` at the model's static input shape, or at ``imgsz`` for a dynamic model; classify models get
   Ultralytics' classify transforms), batched to the model's static batch;
2. keep the head's post-processing in float: the ops between the last learned layers and the outputs (DFL,
   box/keypoint/angle decode, Sigmoid, Softmax...) are found by walking the graph back from its outputs
   (``yolo_adapters.quantize.graph``: one walk, with adapters for OpenVINO's and ONNX's graphs), whatever the node names;
3. hand the engine's quantizer the batches and that float scope (NNCF: MIXED preset, and with ``max_drop`` or
   ``max_keypoint_px`` accuracy control; ONNX Runtime: per-channel symmetric int8 weights, asymmetric uint8
   activations);
4. compare INT8 with FP32 on held-back images of the calibration folder (``yolo_adapters.compare.parity``), add FP32
   and INT8 mAP when those images have YOLO labels, and write ``quantization_report.json`` beside the model.

Only images are needed (labels for ``max_drop`` and the mAP figures); with no calibration data it fails before
any export (Ultralytics would download coco8).

This package is the engine-neutral part, below the engine packages that use it: ``calibration`` (the images, their
split and labels, the tensors, ``static_shape``), ``plan`` (options checked, cache key), ``int8`` (the INT8 flow),
``report`` (agreement, metrics, ``quantization_report.json``), ``choice`` and ``auto`` (``precision="auto"``), and
``plugin`` (``PrecisionFlows``: both flows behind the plugin contract's hooks). This module holds
``quantize_model`` and re-exports the rest. NNCF, OpenVINO, ONNX, ONNX Runtime and Ultralytics are imported only
inside the functions that use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_adapters.errors import BackendUnavailableError, OptionError
from yolo_adapters.quantize import graph
from yolo_adapters.quantize.calibration import (
    DEFAULT_CALIBRATION_SIZE,
    IMAGE_SUFFIXES,
    calibration_batches,
    class_of,
    data_root,
    find_images,
    images_digest,
    label_file,
    labelled,
    preprocess,
    split_holdout,
    static_shape,
)
from yolo_adapters.quantize.int8 import Quantizer
from yolo_adapters.quantize.plan import int8_plan, plan_settings
from yolo_adapters.quantize.plugin import PrecisionFlows
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

__all__ = [
    "DEFAULT_CALIBRATION_SIZE",
    "IMAGE_SUFFIXES",
    "REPORT_FILE",
    "PrecisionFlows",
    "QuantizationResult",
    "Quantizer",
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
    "static_shape",
    "summarize_agreement",
    "write_report",
]

# -- what stays in float (yolo_adapters.quantize.graph: one walk for OpenVINO and ONNX graphs) -------------------------
head_postprocessing = graph.head_postprocessing
float_scope = graph.float_scope


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
