"""``yolo-adapters check``: PyTorch and each engine on the same images; exit 1 when an engine misses a tolerance."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from yolo_adapters.errors import OptionError
from yolo_adapters.tools.cli._options import add_option_arguments, parse_options


def add_parser(sub: Any) -> None:
    chk = sub.add_parser(
        "check",
        help="run PyTorch and engines on the same images; exit 1 if any engine misses the parity tolerances",
        description="Compare each engine with PyTorch on the same images (docs/cli.md). MODEL is the reference .pt; "
        "by default each engine runs MODEL converted for it, --engine-model runs a given engine model instead.",
    )
    chk.add_argument("model", help="the reference Ultralytics .pt")
    chk.add_argument(
        "--backend",
        "-b",
        action="append",
        default=[],
        help="backend[:device] to check (repeatable); default: every backend that can run here",
    )
    chk.add_argument(
        "--engine-model", "-e", help="engine model to check (IR, .onnx, .om...) instead of converting MODEL"
    )
    chk.add_argument(
        "--source",
        "-s",
        action="append",
        default=[],
        help="image, folder or glob (repeatable); default: Ultralytics' bus.jpg and zidane.jpg",
    )
    chk.add_argument("--imgsz", type=int, nargs="+", help="inference and conversion size: 640, or 384 640")
    chk.add_argument("--conf", type=float, default=0.25, help="confidence threshold for both sides (default 0.25)")
    add_option_arguments(chk)
    chk.add_argument(
        "--tolerance",
        "-t",
        action="append",
        default=[],
        help="override a tolerance, e.g. -t box_iou=0.98 -t score=2e-3",
    )
    chk.add_argument("--torch-device", default="cpu", help="device PyTorch runs the reference on (default cpu)")
    chk.add_argument("--per-image", action="store_true", help="one table row per image under each engine")
    chk.add_argument("--no-progress", action="store_true", help="no progress bar")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every engine matches PyTorch on every image, 1 when one does not (2: bad arguments)."""
    import dataclasses

    from yolo_adapters.compare.parity import DEFAULT_TOLERANCES
    from yolo_adapters.tools.check import check

    tolerances = parse_options(args.tolerance)
    try:
        tol = dataclasses.replace(DEFAULT_TOLERANCES, **{k: float(v) for k, v in tolerances.items()})
    except (TypeError, ValueError) as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(DEFAULT_TOLERANCES))
        raise OptionError(f"--tolerance takes name=number with name one of {fields} ({exc}).") from exc
    with _stdout_to_stderr(args.json):  # Ultralytics logs to stdout; --json output must stay parseable
        report = check(
            args.model,
            backends=args.backend or None,
            source=args.source or None,
            imgsz=args.imgsz,
            engine_model=args.engine_model,
            options=parse_options(args.option),
            conf=args.conf,
            tol=tol,
            torch_device=args.torch_device,
            progress=not args.no_progress,
        )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table(per_image=args.per_image))
    return 0 if report.passed else 1


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """Send prints and Ultralytics' log (a handler bound to stdout at import) to stderr for the block."""
    if not enabled:
        yield
        return
    import logging

    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics  # noqa: F401 - import-time messages go to stderr too

        moved = [
            (h, h.stream)
            for h in logging.getLogger("ultralytics").handlers
            if isinstance(h, logging.StreamHandler) and h.stream not in (sys.stderr, sys.__stderr__)
        ]
        for handler, _ in moved:
            handler.setStream(sys.stderr)
        try:
            yield
        finally:
            for handler, stream in moved:
                handler.setStream(stream)
