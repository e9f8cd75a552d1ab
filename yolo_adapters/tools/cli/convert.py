"""``yolo-adapters convert``: a .pt converted for a backend ahead of time, into the cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from yolo_adapters.core.settings import split_spec
from yolo_adapters.tools.cli._options import parse_options


def add_parser(sub: Any) -> None:
    conv = sub.add_parser("convert", help="convert a .pt for a backend ahead of time (cached)")
    conv.add_argument("model")
    conv.add_argument("--backend", "-b", required=True)
    conv.add_argument("--device", "-d")
    conv.add_argument("--imgsz", type=int, nargs="+")
    conv.add_argument(
        "--shapes",
        nargs="+",
        metavar="HxW",
        help="static models: convert for each of these input shapes (height x width, e.g. 384x640 for 1280x720 "
        "video at imgsz 640), so that predict(..., shapes=[(384, 640)]) converts nothing at run time",
    )
    conv.add_argument("--batch", type=int)
    conv.add_argument("--precision", choices=["fp32", "fp16", "int8", "bf16", "auto"])
    conv.add_argument(
        "--data",
        help="--precision int8 or auto: folder of calibration images (no labels needed), or a "
        "labelled YOLO dataset (data.yaml, or a folder with images/ and labels/) for mAP in the report",
    )
    conv.add_argument(
        "--max-drop",
        type=float,
        help="--precision int8 on openvino: accuracy-controlled quantization, "
        "the task's mAP50-95 (top-1) on the labelled held-back images may drop by at most this much",
    )
    conv.add_argument(
        "--max-keypoint-px",
        type=float,
        help="--precision int8 on openvino, pose: accuracy-controlled "
        "quantization without labels, keypoints within this many model-input pixels of FP32's",
    )
    conv.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=None)
    conv.add_argument("--option", "-o", action="append", default=[])
    conv.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from yolo_adapters.core.registry import resolve_spec
    from yolo_adapters.integration.runtime import resolve_artifact

    backend, device = split_spec(args.backend)
    options = _options(args, device)
    plugin, device, options = resolve_spec(backend, options=options)  # -d and -o device= win over BACKEND:DEVICE
    if args.shapes:
        from yolo_adapters.integration.shapes import parse_shapes

        options.setdefault("dynamic", False)  # a pinned shape is a static model's
        for h, w in parse_shapes(args.shapes):
            print(resolve_artifact(args.model, plugin, device, dict(options, imgsz=[h, w])))
        return 0
    artifact = resolve_artifact(args.model, plugin, device, options)
    if options.get("precision") in ("int8", "auto"):
        from yolo_adapters.quantize import format_report, read_report
        from yolo_adapters.quantize.choice import format_choice, read_choice

        report = read_report(artifact)
        if report:
            print(format_report(report), file=sys.stderr)
        choice = read_choice(artifact)
        if choice:
            print(format_choice(choice), file=sys.stderr)
    print(artifact)
    return 0


def _options(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """The backend options the flags ask for; ``-o key=value`` last, so it overrides a flag."""
    options: dict[str, Any] = {"device": device} if device else {}
    if args.device:
        options["device"] = args.device
    if args.imgsz:
        options["imgsz"] = args.imgsz[0] if len(args.imgsz) == 1 else list(args.imgsz)
    if args.batch:
        options["batch"] = args.batch
    if args.precision:
        options["precision"] = args.precision
    if args.dynamic is not None:
        options["dynamic"] = args.dynamic
    if args.data:  # INT8 calibration images (yolo_adapters.quantize)
        options["calibration"] = args.data
    if args.max_drop is not None:  # accuracy-controlled INT8 (NNCF), needs a labelled --data
        options["max_drop"] = args.max_drop
    if args.max_keypoint_px is not None:  # accuracy control on keypoint agreement with FP32 (NNCF, pose)
        options["max_keypoint_px"] = args.max_keypoint_px
    options.update(parse_options(args.option))
    return options
