"""``yolo-adapters bench``: stock Ultralytics and each engine side by side (the work is in tools/bench.py)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    from yolo_adapters.tools import bench

    bch = sub.add_parser(
        "bench",
        help="benchmark stock Ultralytics and each engine side by side on the same frames (docs/benchmarks.md)",
    )
    bench.add_arguments(bch)
    bch.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from yolo_adapters.tools import bench

    return bench.main(args)
