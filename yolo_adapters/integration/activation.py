"""Process-wide activation: which backend takes every Ultralytics predict/val when none is named.

``activate`` and ``deactivate`` are the only writers; the patch layer reads ``current()`` at each
predictor/validator setup, so a change takes effect the next time Ultralytics builds its model. ``deactivate``
leaves the state a new process starts in: nothing active, plugin device strings routed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from yolo_adapters.core import registry, state
from yolo_adapters.core.settings import disabled
from yolo_adapters.core.state import Activation, current
from yolo_adapters.integration import patching

__all__ = ["Activation", "activate", "active", "current", "deactivate", "use"]


def active() -> str | None:
    """Name of the globally active backend, or None when Ultralytics runs stock (device strings still route)."""
    value = current()
    return value.backend if value else None


def activate(backend: str = "openvino", **options: Any) -> None:
    """Route every Ultralytics predict, stream, val and track through ``backend``.

    Options are the backend's (see docs/options.md), e.g. ``device="GPU"``, ``hint="throughput"``,
    ``precision="fp16"``. Calling it again replaces the previous activation.
    """
    if disabled():
        logging.getLogger(__name__).info("YOLO_ADAPTERS_DISABLE is set; not activating %s", backend)
        return
    plugin, _, checked = registry.resolve_spec(backend, options=options)
    with state.lock:
        state.set_current(Activation(plugin.name, checked))
        patching.install()


def deactivate(uninstall: bool = False) -> None:
    """Stop routing every predict, stream, val and track through the active backend.

    Ultralytics then behaves as in a new process with yolo_adapters installed: a plugin device string
    (``device="openvino"``) still runs on its engine, through the start-up hook's passive patch layer, and everything
    else is stock. ``uninstall=True`` also removes every patch: Ultralytics exactly as if yolo_adapters were absent
    (a plugin device string then gets Ultralytics' own "Invalid device" error)."""
    with state.lock:
        state.set_current(None)
        if uninstall or disabled():
            patching.uninstall()
        else:
            patching.install()  # passive: routes plugin device strings only


@contextmanager
def use(backend: str = "openvino", **options: Any) -> Iterator[None]:
    """``with use("openvino"):`` activates inside the block and restores what was active before."""
    with state.lock:
        previous, was_installed = current(), patching.is_installed()
    activate(backend, **options)
    try:
        yield
    finally:
        with state.lock:
            state.set_current(previous)
            if not was_installed and previous is None:
                patching.uninstall()
