"""Process-wide activation: which backend takes every Ultralytics predict/val when none is named.

``activate`` and ``deactivate`` are the only writers; the patch layer reads ``current()`` at each
predictor/validator setup, so a change takes effect the next time Ultralytics builds its model.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .errors import BackendUnavailableError


@dataclass(frozen=True)
class Activation:
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)


_lock = threading.RLock()
_current: Activation | None = None


def current() -> Activation | None:
    return _current


def active() -> str | None:
    """Name of the globally active backend, or None when Ultralytics runs stock (device strings still route)."""
    return _current.backend if _current else None


def activate(backend: str = "openvino", **options: Any) -> None:
    """Route every Ultralytics predict, stream, val and track through ``backend``.

    Options are the backend's (see docs/options.md), e.g. ``device="GPU"``, ``hint="throughput"``,
    ``precision="fp16"``. Calling it again replaces the previous activation.
    """
    global _current
    from . import patching, registry
    from ._startup import disabled

    if disabled():
        import logging

        logging.getLogger("yolo_adapters").info("yolo_adapters: YOLO_ADAPTERS_DISABLE is set; not activating %s", backend)
        return
    plugin = registry.get_backend(backend)
    missing = plugin.missing_requirements()
    if missing:
        raise BackendUnavailableError(missing)
    checked = plugin.validate_options(options)
    with _lock:
        _current = Activation(plugin.name, checked)
        patching.install()


def deactivate() -> None:
    """Stop routing and remove every patch: Ultralytics behaves exactly as if yolo_adapters were absent."""
    global _current
    from . import patching

    with _lock:
        _current = None
        patching.uninstall()


@contextmanager
def use(backend: str = "openvino", **options: Any) -> Iterator[None]:
    """``with use("openvino"):`` activates inside the block and restores what was active before."""
    global _current
    from . import patching

    with _lock:
        previous, was_installed = _current, patching.is_installed()
    activate(backend, **options)
    try:
        yield
    finally:
        with _lock:
            _current = previous
            if not was_installed and previous is None:
                patching.uninstall()
