"""Warnings a process gives once: a fallback or a missing feature is said on its first use, not on every frame.

Every module logs through ``logging.getLogger(__name__)``, under the package's ``yolo_adapters`` logger.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_said: set[tuple[str, str]] = set()


def warn_once(logger: logging.Logger, key: str, message: str, *args: object) -> bool:
    """Log ``message % args`` at WARNING the first time ``key`` is seen for ``logger``; True when it was logged."""
    with _lock:
        if (logger.name, key) in _said:
            return False
        _said.add((logger.name, key))
    logger.warning(message, *args)
    return True
