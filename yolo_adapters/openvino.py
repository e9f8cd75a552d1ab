"""``import yolo_adapters.openvino``: every Ultralytics predict, stream, val and track runs on OpenVINO.

Options go through ``yolo_adapters.activate("openvino", ...)`` instead when defaults do not fit.
"""

from yolo_adapters import activate as _activate

_activate("openvino")
