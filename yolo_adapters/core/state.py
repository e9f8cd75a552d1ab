"""Which backend is active process-wide: the state ``activation`` writes and device routing reads.

Kept apart from ``activation`` (which installs the patch layer) so that the patch layer's device routing can read
it without importing the module that installs the patch layer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Activation:
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)


#: Held by ``activation`` around every change of the state and of the patch layer that goes with it.
lock = threading.RLock()
_current: Activation | None = None


def current() -> Activation | None:
    return _current


def set_current(value: Activation | None) -> None:
    global _current
    with lock:
        _current = value
