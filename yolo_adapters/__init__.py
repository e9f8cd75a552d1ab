"""Run unchanged Ultralytics YOLO code on OpenVINO, ONNX Runtime and Huawei Ascend engines.

    import yolo_adapters.openvino            # or: yolo_adapters.activate("openvino", device="GPU")
    YOLO("yolo11n-pose.pt").predict("bus.jpg")

    YOLO("yolo11n-pose.pt").predict("bus.jpg", device="openvino:GPU")   # no import needed once installed

Importing this package is cheap: no torch, openvino or onnxruntime until a backend is used.
"""

from typing import TYPE_CHECKING, Any

from yolo_adapters._version import __version__

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from yolo_adapters.core.registry import available_backends
    from yolo_adapters.core.registry import register as register_backend
    from yolo_adapters.integration.activation import activate, active, deactivate, use
    from yolo_adapters.tools.check import check

__all__ = ["__version__", "activate", "active", "available_backends", "check", "deactivate", "register_backend", "use"]

_LAZY = {
    "activate": ("integration.activation", "activate"),
    "deactivate": ("integration.activation", "deactivate"),
    "use": ("integration.activation", "use"),
    "active": ("integration.activation", "active"),
    "available_backends": ("core.registry", "available_backends"),
    "register_backend": ("core.registry", "register"),
    "check": ("tools.check", "check"),
}


def __getattr__(name: str) -> Any:  # PEP 562: the startup hook imports this package at every interpreter start
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
