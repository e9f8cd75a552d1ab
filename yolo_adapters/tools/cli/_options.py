"""What several commands parse the same way: ``-o key=value`` backend options and ``-a key=value`` predict arguments."""

from __future__ import annotations

import argparse
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


def add_option_arguments(parser: argparse.ArgumentParser, *, predict_args: bool = False) -> None:
    """``-o key=value`` (backend options) and, for commands that run Ultralytics' predict, ``-a key=value``."""
    parser.add_argument("--option", "-o", action="append", default=[], help="backend option key=value (repeatable)")
    if predict_args:
        parser.add_argument(
            "--arg", "-a", action="append", default=[], help="predict argument key=value: -a conf=0.3 -a imgsz=640"
        )
