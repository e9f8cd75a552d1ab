"""``import yolo_adapters.onnxruntime``: every Ultralytics predict, stream, val and track runs on ONNX Runtime.

Options go through ``yolo_adapters.activate("onnxruntime", ...)`` instead when defaults do not fit
(e.g. ``device="cuda:1"``, ``fallback=True``, ``intra_op_threads=2``); see docs/onnxruntime.md.
"""

from yolo_adapters import activate as _activate

_activate("onnxruntime")
