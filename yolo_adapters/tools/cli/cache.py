"""``yolo-adapters cache list|clear``: the converted models in the cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    cache = sub.add_parser("cache", help="list or clear converted models")
    cache.add_argument("action", choices=["list", "clear"])
    cache.add_argument("--json", action="store_true", help="list as JSON")
    cache.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    from yolo_adapters.core.cache import ArtifactCache

    cache = ArtifactCache()
    if args.action == "list":
        return _list(cache, as_json=args.json)
    removed = cache.clear()
    print(f"removed {removed} entries from {cache.root}")
    return 0


def _list(cache: Any, *, as_json: bool) -> int:
    from yolo_adapters.core.cache import describe_entry

    rows = [describe_entry(e) for e in cache.entries()]
    for row in rows:  # precision="auto": say what it kept
        if row["precision"] == "auto":
            from yolo_adapters.quantize.choice import chosen_in

            row["precision"] = f"auto: {chosen_in(Path(str(row['path']))) or '?'}"
    if as_json:
        print(json.dumps({"root": str(cache.root), "entries": rows}, indent=2))
        return 0
    if not rows:
        print(f"no converted models in {cache.root}")
        return 0
    header = ("model", "task", "backend", "shape", "precision", "size", "created", "key")
    table = [header] + [
        (
            r["model"],
            r["task"],
            r["backend"],
            r["shape"],
            r["precision"],
            f"{r['size'] / 1e6:.1f} MB",
            r["created"],
            r["key"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    total = sum(r["size"] for r in rows)
    print(f"{len(rows)} entries, {total / 1e6:.1f} MB in {cache.artifacts}")
    return 0
