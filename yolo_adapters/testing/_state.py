"""In-process record of the running Ascend emulation, shared by the stand-in ais_bench and the test helper."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_active: Any = None  # the AscendEmulation currently installed, if any


def activate(emulation: Any) -> None:
    global _active
    with _lock:
        if _active is not None and _active is not emulation:
            raise RuntimeError("another Ascend emulation is already active in this process")
        _active = emulation


def deactivate(emulation: Any) -> None:
    global _active
    with _lock:
        if _active is emulation:
            _active = None


def active() -> Any:
    return _active
