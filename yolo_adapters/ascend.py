"""``import yolo_adapters.ascend``: every Ultralytics predict, stream, val and track runs on a Huawei Ascend NPU.

Options (SoC, NPU ids, precision and ATC precision mode, FP16 outputs, dynamic batch...) go through
``yolo_adapters.activate("ascend", ...)`` instead when defaults do not fit; see docs/ascend.md.
"""

from yolo_adapters import activate as _activate

_activate("ascend")
