"""FP16 for ONNX Runtime: the exported FP32 ONNX file made FP16 with ONNX Runtime's own converter."""

from __future__ import annotations

import shutil
from pathlib import Path

from yolo_adapters.errors import ConversionError


def ensure_fp16(path: Path) -> bool:
    """Make the ONNX file at ``path`` FP16 (float32 inputs and outputs kept); False if it already was.

    Ultralytics' own CPU FP16 export exists only in recent versions (older ones drop or reject half=True on a
    CPU ONNX export), so the backend always exports FP32 and runs the maintained converter that ships with
    onnxruntime (onnxruntime.transformers.float16) here, with the settings Ultralytics 8.4 uses.
    """
    import onnx

    model = onnx.load(str(path))
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return False
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # very old onnxruntime builds without the transformers tools
        raise ConversionError(
            f"precision='fp16' needs onnxruntime.transformers.float16 ({exc}); upgrade onnxruntime or use fp32."
        ) from exc
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(path))
    return True


def fp16_copy(fp32: Path) -> Path:
    """An FP16 copy of the FP32 ONNX file beside it (``<stem>_fp16.onnx``); none left when the converter fails."""
    fp16 = fp32.with_name(fp32.stem + "_fp16.onnx")
    shutil.copyfile(fp32, fp16)
    try:
        ensure_fp16(fp16)
    except BaseException:
        fp16.unlink(missing_ok=True)
        raise
    return fp16
