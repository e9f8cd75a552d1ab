"""``yolo-adapters info``: versions, backends (and why one cannot run), devices, cache, patch state."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    info = sub.add_parser("info", help="versions, backends, devices, cache")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from yolo_adapters.tools.info import collect_info, format_info

    info = collect_info()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
