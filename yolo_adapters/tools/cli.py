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
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import runpy
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from yolo_adapters.errors import AdapterError, OptionError


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
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


def _split_backend(text: str) -> tuple[str, dict[str, Any]]:
    backend, _, device = text.partition(":")
    return backend.strip().lower(), ({"device": device} if device else {})


# -- run ------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Activate in this process, then run the target as ``__main__`` (child processes inherit YOLO_ADAPTERS)."""
    from yolo_adapters.integration.activation import activate

    backend, options = _split_backend(args.backend)
    if args.device:
        options["device"] = args.device
    options.update(_parse_options(args.option))
    os.environ["YOLO_ADAPTERS"] = backend + (f":{options['device']}" if options.get("device") else "")
    activate(backend, **options)

    if args.module:
        sys.path.insert(0, os.getcwd())  # as `python -m` does
        sys.argv = [args.module, *args.args]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        return 0
    if not args.args:
        raise OptionError("Nothing to run: give a script, -m module, or a command such as `yolo predict ...`.")
    target, rest = args.args[0], args.args[1:]
    path = Path(target)
    if not path.is_file():
        found = shutil.which(target)
        if not found:
            raise OptionError(f"{target!r} is neither a file nor a command on PATH.")
        path = Path(found)
        if not _is_python_script(path):  # a native program: it activates through the startup hook
            os.execvpe(str(path), [target, *rest], os.environ)
    sys.argv = [str(path), *rest]
    sys.path.insert(0, str(path.resolve().parent))
    runpy.run_path(str(path), run_name="__main__")
    return 0


def _is_python_script(path: Path) -> bool:
    if path.suffix == ".py":
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


# -- convert ----------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from yolo_adapters.core import registry
    from yolo_adapters.integration.runtime import resolve_artifact

    backend_name, options = _split_backend(args.backend)
    backend = registry.get_backend(backend_name)
    missing = backend.missing_requirements()
    if missing:
        raise AdapterError(missing)
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
    options.update(_parse_options(args.option))
    device = backend.normalize_device(backend.name, str(options.get("device") or ""))
    options = backend.validate_options(options)
    artifact = resolve_artifact(args.model, backend, device, options)
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


# -- info and cache ---------------------------------------------------------------------------------
def collect_info() -> dict[str, Any]:
    """Versions, backends and why one cannot run, devices, cache and patch state (see yolo_adapters.tools.info)."""
    from yolo_adapters.tools.info import collect_info as collect

    return collect()


def cmd_info(args: argparse.Namespace) -> int:
    from yolo_adapters.tools.info import format_info

    info = collect_info()
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from yolo_adapters.core.cache import ArtifactCache, describe_entry

    cache = ArtifactCache()
    if args.action == "list":
        rows = [describe_entry(e) for e in cache.entries()]
        for row in rows:  # precision="auto": say what it kept
            if row["precision"] == "auto":
                from yolo_adapters.quantize.choice import chosen_in

                row["precision"] = f"auto: {chosen_in(Path(str(row['path']))) or '?'}"
        if args.json:
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
    removed = cache.clear()
    print(f"removed {removed} entries from {cache.root}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every engine matches PyTorch on every image, 1 when one does not (2: bad arguments)."""
    import dataclasses

    from yolo_adapters.compare.parity import DEFAULT_TOLERANCES
    from yolo_adapters.tools.check import check

    tolerances = _parse_options(args.tolerance)
    try:
        tol = dataclasses.replace(DEFAULT_TOLERANCES, **{k: float(v) for k, v in tolerances.items()})
    except (TypeError, ValueError) as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(DEFAULT_TOLERANCES))
        raise OptionError(f"--tolerance takes name=number with name one of {fields} ({exc}).") from exc
    with _stdout_to_stderr(args.json):  # Ultralytics logs to stdout; --json output must stay parseable
        report = _run_check(check, args, tol)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table(per_image=args.per_image))
    return 0 if report.passed else 1


def _run_check(check: Any, args: argparse.Namespace, tol: Any) -> Any:
    return check(
        args.model,
        backends=args.backend or None,
        source=args.source or None,
        imgsz=args.imgsz,
        engine_model=args.engine_model,
        options=_parse_options(args.option),
        conf=args.conf,
        tol=tol,
        torch_device=args.torch_device,
        progress=not args.no_progress,
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolo-adapters", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a script, module or command with a backend active")
    run.add_argument("--backend", "-b", required=True, help="backend name, optionally with a device: openvino:GPU")
    run.add_argument("--device", "-d", help="engine device (same as BACKEND:DEVICE)")
    run.add_argument("--option", "-o", action="append", default=[], help="backend option key=value (repeatable)")
    run.add_argument("-m", dest="module", help="run a module like python -m")
    run.add_argument("args", nargs=argparse.REMAINDER, help="script.py ARGS, or a command such as yolo predict ...")
    run.set_defaults(func=cmd_run)

    conv = sub.add_parser("convert", help="convert a .pt for a backend ahead of time (cached)")
    conv.add_argument("model")
    conv.add_argument("--backend", "-b", required=True)
    conv.add_argument("--device", "-d")
    conv.add_argument("--imgsz", type=int, nargs="+")
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

    info = sub.add_parser("info", help="versions, backends, devices, cache")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    cache = sub.add_parser("cache", help="list or clear converted models")
    cache.add_argument("action", choices=["list", "clear"])
    cache.add_argument("--json", action="store_true", help="list as JSON")
    cache.set_defaults(func=cmd_cache)

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
    chk.add_argument("--option", "-o", action="append", default=[], help="backend option key=value (repeatable)")
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

    from yolo_adapters.tools import bench as _bench

    bch = sub.add_parser(
        "bench",
        help="benchmark stock Ultralytics and each engine side by side on the same frames (docs/benchmarks.md)",
    )
    _bench.add_arguments(bch)
    bch.set_defaults(func=cmd_bench)

    pds = sub.add_parser(
        "predict-dataset", help="batch inference over images on Ray Data, written as Parquet (docs/ray.md)"
    )
    pds.add_argument("source", nargs="+", help="folder, glob, image path or URI (s3://, gs://...), repeatable")
    pds.add_argument("--model", "-m", required=True, help="a .pt (converted once, here) or an engine model")
    pds.add_argument("--device", "-d", default="openvino", help="backend[:device], e.g. openvino, onnxruntime:cuda")
    pds.add_argument("--output", required=True, help="Parquet folder (local or a URI pyarrow can write)")
    pds.add_argument("--address", help="Ray cluster: auto, ray://HOST:10001; default RAY_ADDRESS or a local Ray")
    pds.add_argument("--batch-size", type=int, default=8)
    pds.add_argument("--concurrency", type=int, help="actors (default: the cluster's CPUs / --num-cpus)")
    pds.add_argument("--num-cpus", type=float, help="CPUs per actor, also its engine threads (default 1)")
    pds.add_argument(
        "--fail-fast", action="store_true", help="stop at the first unreadable image (default: error rows)"
    )
    pds.add_argument("--option", "-o", action="append", default=[], help="backend option key=value (repeatable)")
    pds.add_argument(
        "--arg", "-a", action="append", default=[], help="predict argument key=value: -a conf=0.3 -a imgsz=640"
    )
    pds.set_defaults(func=cmd_predict_dataset)
    return parser


def cmd_predict_dataset(args: argparse.Namespace) -> int:
    from yolo_adapters.ray._cli import run  # imports ray: only here

    return run(args, _parse_options(args.option), _parse_options(args.arg))


def cmd_bench(args: argparse.Namespace) -> int:
    from yolo_adapters.tools import bench

    return bench.main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AdapterError as exc:
        print(f"yolo-adapters: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
