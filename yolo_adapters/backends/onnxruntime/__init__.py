"""ONNX Runtime: Ultralytics models as ONNX files run by one InferenceSession on any execution provider.

``plugin`` (provider device strings, options, conversion plan), ``engine`` (the session), ``convert`` (FP16 pass),
``int8`` (``onnxruntime.quantization``, imported only when something is quantized).
"""

from yolo_adapters.backends.onnxruntime.engine import ONNXRuntimeEngine
from yolo_adapters.backends.onnxruntime.plugin import ONNXRuntimePlugin, short_name

__all__ = ["ONNXRuntimeEngine", "ONNXRuntimePlugin", "short_name"]
