"""ONNX to OpenVINO IR, for Ultralytics releases whose own OpenVINO exporter cannot run with the installed OpenVINO.

The result is laid out as Ultralytics' OpenVINO export lays it out (``<name>_openvino_model/<name>.xml`` + ``.bin``
and ``metadata.yaml``), so the cache, INT8 and every reader of the folder see no difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from yolo_adapters.core.model_info import onnx_metadata, write_metadata_yaml
from yolo_adapters.errors import ConversionError

if TYPE_CHECKING:
    from yolo_adapters.backends.base import ExportPlan


def onnx_to_ir(onnx_file: Path, plan: ExportPlan) -> Path:
    """``openvino.convert_model`` on Ultralytics' ONNX export; returns the IR folder (FP16 weights for fp16)."""
    import openvino as ov

    folder = onnx_file.parent / f"{onnx_file.stem}_openvino_model"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        model = ov.convert_model(str(onnx_file))
        ov.save_model(model, str(folder / f"{onnx_file.stem}.xml"), compress_to_fp16=plan.precision == "fp16")
    except Exception as exc:
        raise ConversionError(f"OpenVINO could not convert Ultralytics' ONNX export {onnx_file}: {exc}") from exc
    write_metadata_yaml(folder, onnx_metadata(onnx_file))
    onnx_file.unlink()  # the cache keeps only what runs
    return folder
