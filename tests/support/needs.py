"""``require``: pytest.importorskip, except under CI, where a package the README's test command installs must work.

A module-level ``pytest.importorskip("openvino")`` turns a broken engine install into a skipped test file and a green
run. Under CI (``CI`` set to true) a package that does not import fails the run with its import error instead: CI
installs every engine (``.[all,test]``), so a skip there can only hide a broken engine.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(name: str, extra: str = "all,test") -> ModuleType:
    """Import ``name``; skip (locally) or fail (under CI) with the import error when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} cannot be imported ({type(exc).__name__}: {exc}); pip install -e '.[{extra}]'"
        if under_ci():
            pytest.fail(f"under CI every engine must run: {message}", pytrace=False)
        pytest.skip(message, allow_module_level=True)
