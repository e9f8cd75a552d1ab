"""``yolo-adapters``: run unchanged programs on an engine, convert models ahead of time, inspect the setup.

yolo-adapters run --backend openvino their_script.py ARGS
yolo-adapters run --backend openvino -m their.module ARGS
yolo-adapters run --backend openvino yolo predict model=yolo11n-pose.pt source=bus.jpg
yolo-adapters convert yolo11n-pose.pt --backend openvino [--imgsz 640] [--precision fp16]
yolo-adapters convert yolo11n-pose.pt --backend openvino --precision int8 --data IMAGES_DIR [--imgsz H W]
yolo-adapters convert yolo11n-pose.pt --backend openvino --precision int8 --data DATASET --max-drop 0.01
yolo-adapters convert yolo11n-pose.pt --backend openvino --precision int8 --data IMAGES_DIR --max-keypoint-px 1
yolo-adapters convert yolo11n-pose.pt --backend openvino --precision auto --data IMAGES_DIR  (fastest that agrees with FP32)
yolo-adapters info [--json]
yolo-adapters check yolo11n-pose.pt [--backend openvino ...] [--engine-model IR] [--source IMAGES] [--json]
yolo-adapters cache list|clear [--json]
yolo-adapters predict-dataset SOURCE --model M --device openvino --output DIR [--address auto] [--concurrency N]
yolo-adapters serve MODEL --device openvino [--port 8000] [--replicas N] [--max-batch-size 8]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from yolo_adapters.errors import AdapterError
from yolo_adapters.tools.cli import bench, cache, check, convert, info, predict_dataset, run, serve

__all__ = ["build_parser", "main"]

#: One module per command, in the order ``--help`` lists them; each adds its subparser and sets ``func``.
COMMANDS = (run, convert, info, cache, check, bench, predict_dataset, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolo-adapters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: exit 2 with one line for every AdapterError (bad arguments, missing engine...)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AdapterError as exc:
        print(f"yolo-adapters: error: {exc}", file=sys.stderr)
        return 2
