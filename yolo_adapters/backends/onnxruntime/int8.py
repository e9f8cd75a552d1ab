"""INT8 with ONNX Runtime on an ONNX file: ``onnxruntime.quantization.quantize_static``, QDQ.

The onnxruntime backend's side of ``precision="int8"`` (``ORTQuantizer``, the engine steps of
``quantize.int8.Quantizer.run``): ONNX Runtime's own static quantizer (no NNCF needed), fed the same calibration
batches and given the same float scope as NNCF, its settings, and the saved model with Ultralytics' metadata.
``onnx`` and ``onnxruntime`` are imported inside the methods, so ``quantize_static`` is looked up on
``onnxruntime.quantization`` when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from yolo_adapters.quantize import graph
from yolo_adapters.quantize.int8 import Int8Job, Quantizer


class ORTQuantizer(Quantizer):
    """``quantize_static`` (QDQ) into ``<stem>_int8.onnx`` beside the FP32 file."""

    label = "ONNX Runtime"

    def read(self, fp32: Path) -> Any:
        import onnx

        model = onnx.load(str(fp32))
        if graph.name_nodes(model):  # an ignore list needs node names
            onnx.save(model, str(fp32))
        return model

    def int8_path(self, fp32: Path) -> Path:
        return fp32.with_name(fp32.stem + "_int8.onnx")

    def quantize_graph(self, job: Int8Job) -> tuple[Any, dict[str, Any] | None]:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        input_name = job.model.graph.input[0].name

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._items = iter(job.batches)

            def get_next(self) -> dict[str, np.ndarray] | None:
                tensor = next(self._items, None)
                return None if tensor is None else {input_name: job.progress(tensor)}

        quantize_static(
            str(job.fp32),
            str(job.int8),
            Reader(),
            **onnx_quantize_arguments(QuantFormat, QuantType, CalibrationMethod),
            nodes_to_exclude=job.ignored,
        )
        return onnx.load(str(job.int8)), None

    def save(self, quantized: Any, job: Int8Job) -> None:
        import onnx

        if not quantized.metadata_props:  # Ultralytics' metadata (task, names, stride...) lives in the ONNX file
            quantized.metadata_props.extend(job.model.metadata_props)
            onnx.save(quantized, str(job.int8))

    def describe(self, quantized: Any, job: Int8Job) -> dict[str, Any]:
        import onnxruntime

        return {
            "tool": f"onnxruntime {onnxruntime.__version__}",
            "preset": "qdq u8s8",
            "settings": {
                "format": "QDQ",
                "activations": "uint8 asymmetric",
                "weights": "int8 symmetric per-channel",
                "calibration": "minmax",
            },
            "quantizers": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node),
        }

    def remove_fp32(self, fp32: Path) -> None:
        fp32.unlink(missing_ok=True)


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
