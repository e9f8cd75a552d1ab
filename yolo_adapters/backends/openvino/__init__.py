"""OpenVINO: Ultralytics models as compiled OpenVINO models on CPU, GPU, NPU or any virtual device.

``plugin`` (devices, options, conversion plan), ``engine`` (the compiled model and its infer requests), ``convert``
(ONNX to IR, for Ultralytics releases whose own exporter cannot run with this OpenVINO), ``int8``
(NNCF quantization of the FP32 IR, imported only when something is quantized).
"""

from yolo_adapters.backends.openvino.engine import OpenVINOEngine, core
from yolo_adapters.backends.openvino.plugin import OpenVINOPlugin

__all__ = ["OpenVINOEngine", "OpenVINOPlugin", "core"]
