"""INT8 with ONNX Runtime on an ONNX file: ``onnxruntime.quantization.quantize_static``, QDQ.

The onnxruntime backend's side of ``precision="int8"``: ONNX Runtime's own static quantizer (no NNCF needed), fed
the same calibration batches and given the same float scope as NNCF, its settings, and the saved model with
Ultralytics' metadata. ``onnx`` and ``onnxruntime`` are imported inside the functions, so ``quantize_static`` is
looked up on ``onnxruntime.quantization`` when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from yolo_adapters.core.model_info import read_artifact_info
from yolo_adapters.errors import ConversionError
from yolo_adapters.quantize import graph, plan_settings
from yolo_adapters.quantize.calibration import calibration_inputs, calibration_section, calibration_split
from yolo_adapters.quantize.report import int8_report, kept_in_float

if TYPE_CHECKING:
    from yolo_adapters.backends.base import BackendPlugin, ExportPlan


def quantize_onnx(fp32_onnx: Path, plan: ExportPlan, plugin: BackendPlugin, keep_fp32: bool = False) -> Path:
    """Quantize the FP32 ONNX file at ``fp32_onnx`` with ``onnxruntime.quantization.quantize_static`` (QDQ) into
    ``model_int8.onnx`` beside it; returns its path. The report goes next to it; the FP32 file is removed unless
    ``keep_fp32`` (precision="auto" runs both)."""
    plugin.quantizer_version()  # onnx and onnxruntime installed, or the error saying so
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    settings = plan_settings(plan)
    info = read_artifact_info(fp32_onnx)
    task = info.task or "detect"
    root, calib_images, held = calibration_split(settings)

    model = onnx.load(str(fp32_onnx))
    if graph.name_nodes(model):  # an ignore list needs node names
        onnx.save(model, str(fp32_onnx))
    input_value = model.graph.input[0]
    shape = static_shape(model, plan)
    batches, scope, ignored = calibration_inputs(model, calib_images, shape, task, info.stride or 32)

    bar = tqdm(total=len(batches), desc="yolo_adapters: INT8 calibration", unit="batch")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._items, None)
            if tensor is None:
                return None
            bar.update()
            return {input_value.name: tensor}

    int8_onnx = fp32_onnx.with_name(fp32_onnx.stem + "_int8.onnx")
    try:
        quantize_static(
            str(fp32_onnx),
            str(int8_onnx),
            Reader(),
            **onnx_quantize_arguments(QuantFormat, QuantType, CalibrationMethod),
            nodes_to_exclude=ignored,
        )
    except Exception as exc:
        raise ConversionError(f"ONNX Runtime could not quantize {fp32_onnx}: {type(exc).__name__}: {exc}") from exc
    finally:
        bar.close()
    quantized = onnx.load(str(int8_onnx))
    if not quantized.metadata_props:  # Ultralytics' metadata (task, names, stride...) lives in the ONNX file
        quantized.metadata_props.extend(model.metadata_props)
        onnx.save(quantized, str(int8_onnx))

    quantization = {
        "tool": f"onnxruntime {onnxruntime.__version__}",
        "preset": "qdq u8s8",
        "settings": {
            "format": "QDQ",
            "activations": "uint8 asymmetric",
            "weights": "int8 symmetric per-channel",
            "calibration": "minmax",
        },
        **kept_in_float(model, scope, ignored),
        "quantizers": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node),
    }
    section = calibration_section(settings, root, calib_images, held, len(batches))
    int8_report(plugin, fp32_onnx, int8_onnx, plan, info, shape, section, held, quantization)
    if not keep_fp32:
        fp32_onnx.unlink(missing_ok=True)
    return int8_onnx


def static_shape(model: Any, plan: ExportPlan) -> tuple[int, ...]:
    """The ONNX model's input shape with its dynamic dimensions set from the plan (batch, 3, imgsz)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    sizes = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]
    return tuple(int(d) if d > 0 else int(f) for d, f in zip(sizes, (plan.batch, 3, *plan.imgsz)))


def onnx_quantize_arguments(QuantFormat: Any, QuantType: Any, CalibrationMethod: Any) -> dict[str, Any]:
    """ONNX Runtime's counterpart of the NNCF MIXED preset: QDQ, symmetric per-channel int8 weights, asymmetric
    uint8 activations (U8S8, what its CPU kernels run fastest), min/max ranges; at most 16 batches of
    intermediate outputs held at once during calibration (same ranges, bounded memory)."""
    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
        "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibMaxIntermediateOutputs": 16},
    }
