"""Device strings: which backend and engine device a Ultralytics ``device=`` argument asks for.

``"openvino:GPU.1"``, ``"intel:gpu"``, ``"onnxruntime:cuda:1"``, ``"ascend:0,1"``... are claimed by a backend;
anything else (``"cpu"``, ``"0"``, ``None``) is Ultralytics' own, unless a backend was activated globally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yolo_adapters.core import registry, state
from yolo_adapters.core.settings import split_spec

__all__ = ["Selection", "resolve", "split_spec"]


@dataclass(frozen=True)
class Selection:
    """What the patched ``select_device`` hands to the patched ``AutoBackend``: a plugin route, not a torch device."""

    backend: str
    device: str
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    # Ultralytics code that peeks at a device's type between select_device and AutoBackend sees a CPU:
    # all pre- and post-processing stays on the CPU with every plugin backend.
    type = "cpu"
    index = None

    def __str__(self) -> str:
        return f"{self.backend}:{self.device}"


def resolve(device: Any) -> Selection | None:
    """The plugin route for ``device``, or None to leave it to Ultralytics."""
    if isinstance(device, Selection):
        return device
    current = state.current()
    if isinstance(device, str) and device.strip():
        prefix, spec = split_spec(device)
        backend = registry.backend_for_device_prefix(prefix)
        if backend is not None:
            options = dict(current.options) if current and current.backend == backend.name else {}
            engine_device = backend.normalize_device(prefix, spec) if spec or prefix != backend.name else ""
            engine_device = engine_device or options.get("device") or backend.default_device
            options["device"] = engine_device
            return Selection(backend.name, engine_device, options)
    if current is not None:
        backend = registry.get_backend(current.backend)
        engine_device = current.options.get("device") or backend.default_device
        return Selection(backend.name, engine_device, dict(current.options))
    return None
