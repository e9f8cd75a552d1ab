"""What several commands parse the same way: ``-o key=value`` pairs."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from yolo_adapters.errors import OptionError


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``-o hint=throughput -o imgsz=[736,1280]`` -> {"hint": "throughput", "imgsz": [736, 1280]}."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"Option {pair!r} must look like key=value (e.g. -o hint=throughput).")
        try:
            options[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key.strip()] = raw
    return options
