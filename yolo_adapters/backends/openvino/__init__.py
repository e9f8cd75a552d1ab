"""OpenVINO: Ultralytics models as compiled OpenVINO models on CPU, GPU, NPU or any virtual device.

``plugin`` (devices, options, conversion plan), ``engine`` (the compiled model and its infer requests), ``convert``
(ONNX to IR, for Ultralytics releases whose own exporter cannot run with this OpenVINO), ``int8``
(NNCF quantization of the FP32 IR, imported only when something is quantized).
"""

from .engine import OpenVINOEngine, core
from .plugin import OpenVINOPlugin

__all__ = ["OpenVINOEngine", "OpenVINOPlugin", "core"]
