"""What the environment asks of yolo_adapters: the variables read at start-up and at activation.

The bottom layer: standard library only, so the start-up hook (run by ``yolo_adapters.pth`` in every Python
process) can read it without importing anything heavy, and every layer above can too.
"""

from __future__ import annotations

import os

#: ``YOLO_ADAPTERS=openvino[:DEVICE]`` activates a backend for an unchanged script.
BACKEND_ENV = "YOLO_ADAPTERS"
#: ``YOLO_ADAPTERS_DISABLE=1`` turns everything off, even in scripts that import a backend module.
DISABLE_ENV = "YOLO_ADAPTERS_DISABLE"
#: Folder of the converted-model cache (default ``~/.cache/yolo_adapters``).
CACHE_ENV = "YOLO_ADAPTERS_CACHE"


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def split_spec(text: str) -> tuple[str, str]:
    """``"OpenVINO:GPU.1"`` -> ``("openvino", "GPU.1")``; ``"onnxruntime:cuda:1"`` -> ``("onnxruntime", "cuda:1")``.

    The one parser of ``backend[:device]`` text (``YOLO_ADAPTERS``, ``device=``, ``--backend``, ``--device``): it
    lives in this bottom layer so the start-up hook can use it; ``core.devices`` re-exports it.
    """
    prefix, _, spec = str(text).strip().partition(":")
    return prefix.strip().lower(), spec.strip()


def requested_backend() -> tuple[str, str] | None:
    """``YOLO_ADAPTERS=openvino:GPU`` -> ("openvino", "GPU"); unset, empty or "off" -> None."""
    value = os.environ.get(BACKEND_ENV, "").strip()
    if not value or value.lower() in ("0", "off", "none", "false"):
        return None
    return split_spec(value)
